/* The checkers: what must hold in every run, whatever the faults.
 *
 * During the run (Raft paper Figure 3; they hold for any correct log-based
 * consensus behind engine.h):
 *   - election safety: at most one leader per term. After every engine call
 *     the node's status is read; a node seen leading a term for the first
 *     time is entered in a term -> leader map;
 *   - state machine safety: no two nodes apply different commands at one
 *     index. The first apply of an index, or the first time a leader's
 *     commit index covers it, records the hash of the entry's type and
 *     bytes; every later apply or leader commit must match. (Not the term:
 *     Multi-Paxos re-proposes a chosen value under its new ballot.);
 *   - log matching: every 100 ms and at the end, for every pair of live
 *     nodes, over the indices both hold: for Raft, if the logs hold the
 *     same term at some index they are identical up to there (§5.3); for
 *     other protocols, entries with the same index and term are identical;
 *   - leader completeness (Raft, Multi-Paxos): a node that becomes leader
 *     of term T holds every entry committed or applied anywhere, in a term
 *     before T, at an index still in its log;
 *   - the host/engine contract: what a node's log holds once a ready batch
 *     is written matches its engine's log (checked with the
 *     ack-before-fsync bug off).
 * With several groups (sim_options.n_groups) each group is checked as a
 * cluster of its own.
 * At the end, once healed and quiet:
 *   - no acknowledged write lost: every write a client was told succeeded is
 *     in every node's applied-operation set;
 *   - linearizability of the client history (check/linearize.h); an unknown
 *     result (search budget exhausted) is a failure.
 * The application workloads add their invariants (workload.c,
 * app_checks.h), and their ops are left out of the two checks above.
 * A failure is recorded with sim_fail(); a safety failure stops the run.
 * Without judge_safety (the async baseline, sim.h) state machine safety, log
 * matching, lost acknowledged writes and linearizability are counted in the
 * result instead (check_breach()); election safety and the host/engine
 * contract still fail the run, as a breach of those is a bug in the engine,
 * not the baseline's documented weakness. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/linearize.h"
#include "sim/sim_internal.h"
#include "sim/workload.h"
#include "sm/kvstore.h"

#define CHECK_TERMS_INITIAL 256u
#define CHECK_LOG_VIEW_MAX 1000000u /* a log longer than this is not viewed */

static void checks_init_group(struct sim *s, struct checks *ck) {
  memset(ck, 0, sizeof *ck);
  /* Raft keeps a leader's log as it is, so logs that agree at one (index,
   * term) agree on everything before it; Paxos adopts values slot by slot
   * under new ballots, so only one value per (slot, ballot) is promised.
   * Raft's and Multi-Paxos's leaders hold every chosen entry once elected
   * (Raft by its vote rule, Multi-Paxos by phase 1 over all open slots);
   * classic Paxos has no leader, only proposers of one slot each. Unknown
   * protocols get only the checks every consensus log owes. */
  bool raft = strcmp(s->o.protocol, "raft") == 0;
  ck->log_matching = raft;
  ck->leader_completeness = raft || strcmp(s->o.protocol, "multipaxos") == 0;
  ck->terms_cap = CHECK_TERMS_INITIAL;
  ck->terms = sim_xcalloc(ck->terms_cap, sizeof *ck->terms);
}

/* Every group is a cluster of its own: each has its own terms, log and
 * committed stream, and each checker runs on each group. */
void checks_init(struct sim *s) {
  for (uint32_t g = 0; g < s->n_groups; g++)
    checks_init_group(s, &s->ck[g]);
}

void checks_free(struct sim *s) {
  for (uint32_t g = 0; g < s->n_groups; g++) {
    struct checks *ck = &s->ck[g];
    free(ck->terms);
    free(ck->applied);
    for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
      free(ck->views[i].term);
      free(ck->views[i].hash);
    }
    memset(ck, 0, sizeof *ck);
  }
}

/* Names the group in a failure, when the run has several ("group 2: "). */
static const char *gname(const struct sim *s, uint32_t g, char *buf,
                         size_t size) {
  if (s->n_groups == 1)
    buf[0] = '\0';
  else
    snprintf(buf, size, "group %u: ", g);
  return buf;
}

/* A breach of a property the protocol under test may not promise: fails
 * the run when judged, else is counted and the run goes on. */
#define check_breach(s, ...)                                                   \
  do {                                                                         \
    if ((s)->o.judge_safety)                                                   \
      sim_fail((s), FAIL_SAFETY, __VA_ARGS__);                                 \
    else                                                                       \
      (s)->res->safety_violations++;                                           \
  } while (0)

static uint64_t entry_hash(const struct sabha_entry *e) {
  return sim_mix(sim_hash_bytes(e->data, e->size_bytes), e->type);
}

/* ---- state machine safety ------------------------------------------------ */

/* Records that node i applied (applied) or, as leader, committed the entry
 * `e`; the first record of an index fixes it, later ones must agree. */
static void check_committed(struct sim *s, uint32_t i, uint32_t g,
                            const struct sabha_entry *e, bool applied,
                            uint64_t term) {
  struct checks *ck = &s->ck[g];
  char gn[24];
  if (e->index >= ck->applied_cap) {
    size_t cap = ck->applied_cap == 0 ? 4096 : ck->applied_cap;
    while (cap <= e->index)
      cap *= 2;
    ck->applied = sim_xrealloc(ck->applied, cap * sizeof *ck->applied);
    memset(ck->applied + ck->applied_cap, 0,
           (cap - ck->applied_cap) * sizeof *ck->applied);
    ck->applied_cap = cap;
  }
  struct applied_slot *a = &ck->applied[e->index];
  uint64_t hash = entry_hash(e);
  if (a->node == 0) {
    *a = (struct applied_slot){.term = e->term,
                               .hash = hash,
                               .commit_term = term,
                               .node = i + 1,
                               .applied = applied};
    if (e->index > ck->applied_max)
      ck->applied_max = e->index;
    return;
  }
  if (a->hash == hash) {
    if (term < a->commit_term)
      a->commit_term = term;
    return;
  }
  check_breach(s,
               "%sstate machine safety: node %u %s a different entry at "
               "index %llu (term %llu) than node %u %s (term %llu)",
               gname(s, g, gn, sizeof gn), i + 1,
               applied ? "applied" : "committed as leader",
               (unsigned long long)e->index, (unsigned long long)e->term,
               a->node, a->applied ? "applied" : "committed as leader",
               (unsigned long long)a->term);
  /* Unjudged, the run goes on: the newer entry (the one that won a
   * rollback) is what later applies are compared with, so each overwrite
   * counts once rather than once per node that follows it. */
  *a = (struct applied_slot){.term = e->term,
                             .hash = hash,
                             .commit_term = term,
                             .node = i + 1,
                             .applied = applied};
}

void check_apply(struct sim *s, uint32_t i, uint32_t g,
                 const struct sabha_entry *e) {
  /* Its term bounds the commit's (none known while it opens: a replay of
   * what it applied before). */
  struct rt *rt = s->nodes[i].grp[g].rt;
  struct sabha_status st = {.term = UINT64_MAX};
  if (rt != NULL)
    rt_status(rt, &st);
  check_committed(s, i, g, e, true, st.term);
  if (e->type == SABHA_ENTRY_CONFIG && e->index > s->config_seen) {
    s->config_seen = e->index;
    s->res->membership_changes++;
  }
}

/* A leader's commit index moved: what it now covers is committed (Raft
 * §5.3), whether or not anyone applied it yet. Recording it here, not only
 * at apply time, lets leader completeness judge the leaders that follow
 * against every entry a leader ever declared committed. */
static void check_leader_commit(struct sim *s, uint32_t i, uint32_t g,
                                const struct sabha_status *st) {
  struct node_group *ng = &s->nodes[i].grp[g];
  uint64_t from = ng->commit_seen + 1;
  if (from < st->first_index)
    from = st->first_index;
  ng->commit_seen = st->commit;
  for (uint64_t idx = from; idx <= st->commit && !s->stop; idx++) {
    struct sabha_entry e;
    if (sabha_engine_entry(rt_engine(ng->rt), idx, &e) != 0) {
      char gn[24];
      sim_fail(s, FAIL_SAFETY,
               "%sengine contract: leader node %u committed index %llu that "
               "is not in its log",
               gname(s, g, gn, sizeof gn), i + 1, (unsigned long long)idx);
      return;
    }
    check_committed(s, i, g, &e, false, st->term);
  }
}

/* ---- election safety ----------------------------------------------------- */

static struct term_slot *term_slot(struct checks *ck, uint64_t term) {
  size_t mask = ck->terms_cap - 1;
  size_t i = (size_t)(sim_mix(0, term) & mask);
  while (ck->terms[i].term != 0 && ck->terms[i].term != term)
    i = (i + 1) & mask;
  return &ck->terms[i];
}

static void terms_grow(struct checks *ck) {
  struct term_slot *old = ck->terms;
  size_t old_cap = ck->terms_cap;
  ck->terms_cap *= 2;
  ck->terms = sim_xcalloc(ck->terms_cap, sizeof *ck->terms);
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].term != 0)
      *term_slot(ck, old[i].term) = old[i];
  free(old);
}

/* Leader completeness for node i, leader of st->term since just now. */
static void check_leader_complete(struct sim *s, uint32_t i, uint32_t g,
                                  const struct sabha_status *st) {
  struct checks *ck = &s->ck[g];
  struct node_group *ng = &s->nodes[i].grp[g];
  uint64_t from = st->first_index > 1 ? st->first_index : 1;
  for (uint64_t idx = from; idx <= ck->applied_max; idx++) {
    const struct applied_slot *a = &ck->applied[idx];
    /* Only what was committed before its term: a leader elected in an
     * old term and not yet told of newer ones (its vote replies were
     * late) may lack what later terms committed, as Raft's §5.4 allows.
     * Seed 109 of raft --nodes 3 --groups 4 --faults all has one. */
    if (a->node == 0 || a->commit_term >= st->term)
      continue;
    struct sabha_entry e;
    int rv = idx > st->last_index
                 ? SABHA_EUNAVAILABLE
                 : sabha_engine_entry(rt_engine(ng->rt), idx, &e);
    if (rv == SABHA_ECOMPACTED)
      continue;
    if (rv != 0 || entry_hash(&e) != a->hash) {
      char gn[24];
      sim_fail(s, FAIL_SAFETY,
               "%sleader completeness: node %u became leader of term %llu "
               "without the entry at index %llu (term %llu) that node %u "
               "%s; it has %s",
               gname(s, g, gn, sizeof gn), i + 1, (unsigned long long)st->term,
               (unsigned long long)idx, (unsigned long long)a->term, a->node,
               a->applied ? "applied" : "committed as leader",
               rv != 0 ? "no entry there" : "a different entry");
      return;
    }
  }
}

void check_status_group(struct sim *s, uint32_t i, uint32_t g) {
  struct node_group *ng = &s->nodes[i].grp[g];
  if (ng->rt == NULL)
    return;
  struct sabha_status st;
  rt_status(ng->rt, &st);
  bool new_leadership =
      st.role == SABHA_ROLE_LEADER &&
      (ng->last_role != SABHA_ROLE_LEADER || ng->last_term != st.term);
  ng->last_role = st.role;
  ng->last_term = st.term;
  /* The nemesis's leader episodes follow group 0, the front. */
  if (!new_leadership) {
    if (st.role == SABHA_ROLE_LEADER && st.commit > ng->commit_seen) {
      check_leader_commit(s, i, g, &st);
      if (!s->stop && g == 0)
        nemesis_on_leader_commit(s, i);
    }
    return;
  }
  struct checks *ck = &s->ck[g];
  char gn[24];
  if (2 * (ck->terms_n + 1) > ck->terms_cap)
    terms_grow(ck);
  struct term_slot *slot = term_slot(ck, st.term);
  if (slot->term == 0) {
    slot->term = st.term;
    slot->leader = i + 1;
    ck->terms_n++;
    s->res->elections++;
    s->res->groups[g].elections++;
    if (ck->leader_completeness)
      check_leader_complete(s, i, g, &st);
    ng->commit_seen = st.commit;
    if (s->stop)
      return;
    if (g == 0)
      nemesis_on_new_leader(s, i);
    else
      sim_note_leader(s, i, g);
  } else if (slot->leader != i + 1) {
    sim_fail(s, FAIL_SAFETY,
             "%selection safety: term %llu has two leaders, node %u and "
             "node %u",
             gname(s, g, gn, sizeof gn), (unsigned long long)st.term,
             slot->leader, i + 1);
  }
}

void check_status(struct sim *s, uint32_t i) {
  for (uint32_t g = 0; g < s->n_groups && !s->stop; g++)
    check_status_group(s, i, g);
}

/* ---- log matching -------------------------------------------------------- */

/* Reads node i's log into its view. Returns false for an empty log. */
static bool view_load(struct sim *s, uint32_t i, uint32_t g) {
  struct rt *rt = s->nodes[i].grp[g].rt;
  struct log_view *v = &s->ck[g].views[i];
  struct sabha_status st;
  rt_status(rt, &st);
  if (st.last_index < st.first_index ||
      st.last_index - st.first_index >= CHECK_LOG_VIEW_MAX)
    return false;
  size_t len = (size_t)(st.last_index - st.first_index + 1);
  if (v->cap < len) {
    v->cap = len * 2;
    v->term = sim_xrealloc(v->term, v->cap * sizeof *v->term);
    v->hash = sim_xrealloc(v->hash, v->cap * sizeof *v->hash);
  }
  v->first = st.first_index;
  v->last = st.last_index;
  for (size_t k = 0; k < len; k++) {
    struct sabha_entry e;
    if (sabha_engine_entry(rt_engine(rt), v->first + k, &e) != 0) {
      char gn[24];
      sim_fail(s, FAIL_SAFETY,
               "%sengine contract: node %u reports log [%llu, %llu] but has "
               "no entry at %llu",
               gname(s, g, gn, sizeof gn), i + 1, (unsigned long long)v->first,
               (unsigned long long)v->last, (unsigned long long)(v->first + k));
      return false;
    }
    v->term[k] = e.term;
    v->hash[k] = entry_hash(&e);
  }
  return true;
}

/* Log Matching proper (Raft §5.3): if the two logs hold the same term at
 * some index, they are identical up to there. */
static void check_pair_prefix(struct sim *s, uint32_t g, uint32_t a, uint32_t b,
                              uint64_t lo, uint64_t hi) {
  const struct log_view *va = &s->ck[g].views[a], *vb = &s->ck[g].views[b];
  uint64_t match = 0;
  for (uint64_t idx = hi; idx >= lo; idx--)
    if (va->term[idx - va->first] == vb->term[idx - vb->first]) {
      match = idx;
      break;
    }
  for (uint64_t idx = lo; match != 0 && idx <= match; idx++) {
    size_t ka = (size_t)(idx - va->first), kb = (size_t)(idx - vb->first);
    if (va->term[ka] != vb->term[kb] || va->hash[ka] != vb->hash[kb]) {
      char gn[24];
      check_breach(s,
                   "%slog matching: nodes %u and %u both hold index %llu with "
                   "term %llu but differ at index %llu",
                   gname(s, g, gn, sizeof gn), a + 1, b + 1,
                   (unsigned long long)match,
                   (unsigned long long)va->term[match - va->first],
                   (unsigned long long)idx);
      return;
    }
  }
}

/* What every ballot-based log promises: one value per (index, term). */
static void check_pair_slots(struct sim *s, uint32_t g, uint32_t a, uint32_t b,
                             uint64_t lo, uint64_t hi) {
  const struct log_view *va = &s->ck[g].views[a], *vb = &s->ck[g].views[b];
  for (uint64_t idx = lo; idx <= hi; idx++) {
    size_t ka = (size_t)(idx - va->first), kb = (size_t)(idx - vb->first);
    if (va->term[ka] == vb->term[kb] && va->hash[ka] != vb->hash[kb]) {
      char gn[24];
      check_breach(s,
                   "%slog matching: nodes %u and %u hold different entries "
                   "at index %llu under the same term %llu",
                   gname(s, g, gn, sizeof gn), a + 1, b + 1,
                   (unsigned long long)idx, (unsigned long long)va->term[ka]);
      return;
    }
  }
}

static void check_pair(struct sim *s, uint32_t g, uint32_t a, uint32_t b) {
  const struct log_view *va = &s->ck[g].views[a], *vb = &s->ck[g].views[b];
  uint64_t lo = va->first > vb->first ? va->first : vb->first;
  uint64_t hi = va->last < vb->last ? va->last : vb->last;
  if (lo > hi)
    return;
  if (s->ck[g].log_matching)
    check_pair_prefix(s, g, a, b, lo, hi);
  else
    check_pair_slots(s, g, a, b, lo, hi);
}

void check_log_matching(struct sim *s) {
  for (uint32_t g = 0; g < s->n_groups && !s->stop; g++) {
    bool loaded[SABHA_NODES_MAX] = {false};
    for (uint32_t i = 0; i < s->n_nodes && !s->stop; i++)
      loaded[i] =
          s->nodes[i].up && s->nodes[i].grp[g].rt != NULL && view_load(s, i, g);
    for (uint32_t a = 0; a < s->n_nodes && !s->stop; a++)
      for (uint32_t b = a + 1; b < s->n_nodes && !s->stop; b++)
        if (loaded[a] && loaded[b])
          check_pair(s, g, a, b);
  }
}

/* ---- the host/engine contract -------------------------------------------- */

/* After an fsync, the log on disk (the WAL) ends where the engine's log
 * does or before: the host never persists what the engine did not give it,
 * nor keeps what the engine truncated. */
void check_persisted(struct sim *s, uint32_t i, uint32_t g) {
  struct rt *rt = s->nodes[i].grp[g].rt;
  if ((s->o.host_bugs & SIM_HOST_BUG_ACK_BEFORE_FSYNC) || rt == NULL)
    return;
  struct sabha_status st;
  rt_status(rt, &st);
  struct wal_stats ws;
  rt_wal_stats(rt, &ws);
  char gn[24];
  if (ws.last_index > st.last_index && ws.last_index > st.snapshot_index)
    sim_fail(
        s, FAIL_SAFETY,
        "%sengine contract: after a batch node %u's log on disk ends "
        "at index %llu but its engine's log is [%llu, %llu]",
        gname(s, g, gn, sizeof gn), i + 1, (unsigned long long)ws.last_index,
        (unsigned long long)st.first_index, (unsigned long long)st.last_index);
}

/* ---- the end ------------------------------------------------------------- */

/* No acknowledged write lost: every put or cas a client saw succeed is in
 * the committed stream (sim_observe_command), which every node applied
 * (their states are compared below); and every counter holds at least the
 * increments clients saw succeed and at most those plus the ones whose
 * outcome is unknown: one more, and an increment applied twice. */
static void check_acked_writes(struct sim *s) {
  uint64_t lost = 0;
  for (uint64_t id = 0; id < s->ops_issued; id++) {
    const struct hist_op *h = &s->hist[id];
    bool write = h->kind == HIST_PUT || (h->kind == HIST_CAS && h->output);
    int64_t written = h->value / SIM_VALUE_STRIDE; /* the id on the wire */
    if (h->status != HIST_OK || !write || written <= 0 ||
        s->op_committed[written - 1])
      continue;
    if (lost++ == 0 && s->o.judge_safety)
      sim_fail(s, FAIL_ACKED_LOST,
               "acknowledged write lost: op %llu (client %u %s k%u=v%lld) is "
               "not in the committed log",
               (unsigned long long)id, h->client,
               h->kind == HIST_PUT ? "put" : "cas", h->key, (long long)written);
  }
  for (uint32_t k = 0; k < s->n_counters; k++) {
    const struct node *n = &s->nodes[s->final_ref];
    char key[16];
    int klen = snprintf(key, sizeof key, "c%u", k);
    const uint8_t *v;
    size_t vlen;
    int64_t value = 0;
    struct rt *rt =
        n->grp[rt_key_group((const uint8_t *)key, (size_t)klen, s->n_groups)]
            .rt;
    if (kvstore_get(rt_kvstore(rt), (const uint8_t *)key, (size_t)klen, 0, &v,
                    &vlen)) {
      for (size_t b = 0; b < vlen && v[b] >= '0' && v[b] <= '9'; b++)
        value = value * 10 + (v[b] - '0');
    }
    uint64_t acked = s->incr_acked[k], maybe = s->incr_maybe[k];
    if ((uint64_t)value < acked) {
      lost += acked - (uint64_t)value;
      if (s->o.judge_safety)
        sim_fail(s, FAIL_ACKED_LOST,
                 "acknowledged write lost: counter c%u holds %lld after %llu "
                 "acknowledged increments",
                 k, (long long)value, (unsigned long long)acked);
    } else if ((uint64_t)value > acked + maybe && s->o.judge_safety) {
      sim_fail(s, FAIL_LINEARIZABILITY,
               "exactly once: counter c%u holds %lld, but only %llu "
               "increments were acknowledged and %llu may have applied: one "
               "was applied twice",
               k, (long long)value, (unsigned long long)acked,
               (unsigned long long)maybe);
    }
  }
  s->res->acked_writes_lost = lost;
}

/* Nodes that applied the same log hold the same keys: what a snapshot
 * restored differently from a replay, or a read of the wrong clock, would
 * break. */
/* Whether two nodes applied every group's log to the same index. */
static bool same_applied(const struct sim *s, const struct node *a,
                         const struct node *b) {
  for (uint32_t g = 0; g < s->n_groups; g++)
    if (rt_applied_index(a->grp[g].rt) != rt_applied_index(b->grp[g].rt))
      return false;
  return true;
}

static void check_same_state(struct sim *s) {
  const struct node *first = &s->nodes[s->final_ref];
  uint64_t h = sim_node_state_hash(s, first);
  for (uint32_t i = s->final_ref + 1; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (!s->final_member[i])
      continue; /* removed: it stopped hearing the log */
    if (!same_applied(s, n, first))
      continue; /* not comparable */
    if (sim_node_state_hash(s, n) == h)
      continue;
    check_breach(s,
                 "state machine safety: nodes %u and %u applied up to index "
                 "%llu but hold different keys",
                 first->id, i + 1, (unsigned long long)rt_applied_index(n->rt));
    return;
  }
}

static void check_linearizable(struct sim *s) {
  struct lin_report rep;
  memset(&rep, 0, sizeof rep);
  /* Application ops are judged by their invariants (workload.c): the kv
   * model sees the kv ops only. */
  struct hist_op *ops = s->hist;
  size_t n = (size_t)s->ops_issued;
  if (s->wl != NULL) {
    ops = sim_xmalloc(n * sizeof *ops);
    n = 0;
    for (uint64_t id = 0; id < s->ops_issued; id++)
      if (s->hist[id].kind != SIM_HIST_APP)
        ops[n++] = s->hist[id];
  }
  int rv = lin_check(ops, n, &lin_model_kv, 0, &rep);
  if (ops != s->hist)
    free(ops);
  if ((rv != 0 || rep.result != LIN_OK) && !s->o.judge_safety) {
    s->res->linearizability_failures++;
    return;
  }
  if (rv != 0) {
    sim_fail(s, FAIL_LINEARIZABILITY, "linearizability: checker error: %s",
             sabha_strerror(rv));
    return;
  }
  if (rep.result == LIN_OK)
    return;
  sim_fail(s, FAIL_LINEARIZABILITY, "linearizability: %s on key %llu: %s",
           rep.result == LIN_VIOLATION ? "violation"
                                       : "unknown (search budget exhausted)",
           (unsigned long long)rep.partition, rep.message);
}

/* A removal notice stops only a node the group removed: one believed by a
 * member of the final membership (a stale or replayed notice taken, or
 * one sent for the wrong node) would silence a live member. */
static void check_told_removed(struct sim *s) {
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (n->rt == NULL)
      continue;
    struct sabha_status st;
    rt_status(n->rt, &st);
    if (st.removed_notice_index == 0)
      continue;
    s->res->removed_told++;
    if (s->final_member[i])
      check_breach(s,
                   "membership: node %u, a member, was told it was removed "
                   "(membership of index %llu)",
                   i + 1, (unsigned long long)st.removed_notice_index);
  }
}

void checks_final(struct sim *s) {
  check_log_matching(s);
  if (s->stop)
    return;
  if (s->res->liveness_failures == 0) {
    check_same_state(s);
    check_told_removed(s);
    check_acked_writes(s);
  }
  if (s->res->liveness_failures == 0 && s->wl != NULL)
    workload_final(s);
  if (s->o.check_linearizability)
    check_linearizable(s);
  /* The log may be rolled back without consensus (the async baseline):
   * there is no one committed stream to hold the watcher to. */
  if (!s->stop && s->o.judge_safety)
    watcher_final(s);
}
