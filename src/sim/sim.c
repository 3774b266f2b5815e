/* The simulator's run: options, the event loop, the phases of a run, and
 * the result.
 *
 * A run has three phases:
 *   clients   the clients do their n_ops operations while the nemesis
 *             breaks things;
 *   quiesce   the nemesis stops and everything heals (links, clocks, slow
 *             nodes; crashed nodes restart); a barrier command goes through
 *             the log and the run waits, up to quiesce_ms_max, until every
 *             node has applied it (not getting there is a liveness
 *             failure);
 *   done      the final checks (checks.c).
 * The loop pops one event at a time from the queue (queue.c), folds it into
 * the trace hash and hands it to its owner. Nothing else moves time, so the
 * same options replay the same run. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim_internal.h"
#include "sim/workload.h"
#include "sm/app.h"
#include "sm/kvstore.h"

#define CHECK_PERIOD_US 100000u /* log matching, during the run */
#define QUIESCE_POLL_US 10000u
#define BARRIER_RETRY_US 100000u

/* ---- helpers ------------------------------------------------------------- */

static void oom(void) {
  fprintf(stderr, "sabha sim: out of memory\n");
  abort();
}

void *sim_xmalloc(size_t size) {
  void *p = malloc(size == 0 ? 1 : size);
  if (p == NULL)
    oom();
  return p;
}

void *sim_xcalloc(size_t n, size_t size) {
  void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
  if (p == NULL)
    oom();
  return p;
}

void *sim_xrealloc(void *p, size_t size) {
  void *q = realloc(p, size == 0 ? 1 : size);
  if (q == NULL)
    oom();
  return q;
}

uint64_t sim_hash_bytes(const uint8_t *data, size_t size) {
  /* Eight bytes per step: entries are hashed on every apply and commit. */
  uint64_t h = 0xcbf29ce484222325ull ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    memcpy(&w, data + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  for (; i < size; i++)
    h = (h ^ data[i]) * 0x100000001b3ull;
  return sim_mix(h, size);
}

void sim_fail(struct sim *s, enum fail_kind kind, const char *fmt, ...) {
  struct sim_result *r = s->res;
  switch (kind) {
  case FAIL_SAFETY:
    r->safety_violations++;
    s->stop = true;
    break;
  case FAIL_LINEARIZABILITY:
    r->linearizability_failures++;
    break;
  case FAIL_LIVENESS:
    r->liveness_failures++;
    break;
  case FAIL_LIMIT:
    r->liveness_failures++;
    s->stop = true;
    break;
  case FAIL_ACKED_LOST:
    break;
  case FAIL_INVARIANT:
    r->invariant_violations++;
    /* The async baseline breaks the applications' invariants by design
     * (it loses acknowledged transfers and bookings on failover): counted
     * as its result, not a failed run (sim.h, judge_safety). */
    if (!s->o.judge_safety)
      return;
    s->stop = true;
    break;
  }
  if (r->failed)
    return;
  r->failed = true;
  int used = snprintf(r->failure, sizeof r->failure,
                      "at %.3f ms: ", (double)s->now_us / 1000.0);
  if (used < 0 || (size_t)used >= sizeof r->failure)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->failure + used, sizeof r->failure - (size_t)used, fmt, ap);
  va_end(ap);
}

/* ---- options ------------------------------------------------------------- */

static const char *const fault_names[] = {
    "partition", "crash", "loss", "dup",        "reorder",
    "slow",      "clock", "disk", "membership",
};
#define FAULT_NAMES_N (sizeof fault_names / sizeof fault_names[0])

int sim_faults_parse(const char *list, uint32_t *mask, char *err,
                     size_t err_size) {
  *mask = 0;
  if (list == NULL || list[0] == '\0') {
    snprintf(err, err_size,
             "--faults needs a value: none, all, or a comma "
             "list of partition,crash,loss,dup,reorder,slow,clock,disk,"
             "membership");
    return SABHA_EINVAL;
  }
  if (strcmp(list, "none") == 0)
    return 0;
  if (strcmp(list, "all") == 0) {
    *mask = SIM_FAULT_ALL;
    return 0;
  }
  const char *p = list;
  for (;;) {
    size_t len = strcspn(p, ",");
    if (len == 3 && strncmp(p, "all", 3) == 0) {
      *mask |= SIM_FAULT_ALL;
      if (p[len] == '\0')
        return 0;
      p += len + 1;
      continue;
    }
    size_t k = 0;
    while (k < FAULT_NAMES_N && !(strlen(fault_names[k]) == len &&
                                  strncmp(fault_names[k], p, len) == 0))
      k++;
    if (k == FAULT_NAMES_N) {
      snprintf(err, err_size,
               "unknown fault '%.*s' in --faults %s (known: "
               "none, all, partition, crash, loss, dup, reorder, slow, clock, "
               "disk, membership)",
               (int)len, p, list);
      return SABHA_EINVAL;
    }
    *mask |= 1u << k;
    if (p[len] == '\0')
      return 0;
    p += len + 1;
  }
}

void sim_faults_format(uint32_t mask, char *buf, size_t size) {
  if (size == 0)
    return;
  buf[0] = '\0';
  if (mask == 0 || (mask & SIM_FAULT_ALL) == SIM_FAULT_ALL) {
    snprintf(buf, size, "%s%s", mask == 0 ? "none" : "all",
             (mask & SIM_FAULT_MEMBERSHIP) ? ",membership" : "");
    return;
  }
  size_t used = 0;
  for (size_t k = 0; k < FAULT_NAMES_N && used < size; k++)
    if (mask & (1u << k)) {
      int w = snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                       fault_names[k]);
      if (w < 0)
        return;
      used += (size_t)w;
    }
}

struct bug_name {
  const char *name;
  uint32_t engine_bugs;
  uint32_t host_bugs;
};

static const struct bug_name bug_table[] = {
    {"none", 0, 0},
    {"vote-twice", SABHA_BUG_VOTE_TWICE, 0},
    {"stale-commit", SABHA_BUG_STALE_COMMIT, 0},
    {"skip-log-check", SABHA_BUG_SKIP_LOG_CHECK, 0},
    {"ack-before-fsync", 0, SIM_HOST_BUG_ACK_BEFORE_FSYNC},
    {"stale-read", 0, SIM_HOST_BUG_STALE_READ},
    {"accept-lower-ballot", SABHA_BUG_ACCEPT_LOWER_BALLOT, 0},
    {"no-adopt", SABHA_BUG_NO_ADOPT, 0},
    {"no-dedup", 0, SIM_HOST_BUG_NO_DEDUP},
    {"snapshot-reply", 0, SIM_HOST_BUG_SNAPSHOT_REPLY},
    {"wall-clock-read", 0, SIM_HOST_BUG_WALL_CLOCK_READ},
    {"watch-resume-skip", 0, SIM_HOST_BUG_WATCH_RESUME_SKIP},
    {"txn-partial", 0, SIM_HOST_BUG_TXN_PARTIAL},
    {"no-repair-guard", SABHA_BUG_NO_REPAIR_GUARD, 0},
    {"learner-quorum", SABHA_BUG_LEARNER_QUORUM, 0},
    {"timing-ratchet", 0, SIM_HOST_BUG_TIMING_RATCHET},
    {"count-self-before-durable", SABHA_BUG_COUNT_SELF_EARLY, 0},
    {"watch-delta-order", 0, SIM_HOST_BUG_WATCH_DELTA_ORDER},
};
#define BUG_TABLE_N (sizeof bug_table / sizeof bug_table[0])

/* The names, fixed at compile time (a table filled on first use would be
 * state the lab's threads race on); bug_table's, in its order. */
static const char *const bug_names[] = {"none",
                                        "vote-twice",
                                        "stale-commit",
                                        "skip-log-check",
                                        "ack-before-fsync",
                                        "stale-read",
                                        "accept-lower-ballot",
                                        "no-adopt",
                                        "no-dedup",
                                        "snapshot-reply",
                                        "wall-clock-read",
                                        "watch-resume-skip",
                                        "txn-partial",
                                        "no-repair-guard",
                                        "learner-quorum",
                                        "timing-ratchet",
                                        "count-self-before-durable",
                                        "watch-delta-order",
                                        NULL};
_Static_assert(sizeof bug_names / sizeof bug_names[0] == BUG_TABLE_N + 1,
               "a name per bug");

const char *const *sim_bug_names(void) {
  return bug_names;
}

int sim_bug_parse(const char *name, uint32_t *engine_bugs, uint32_t *host_bugs,
                  char *err, size_t err_size) {
  for (size_t i = 0; name != NULL && i < BUG_TABLE_N; i++)
    if (strcmp(bug_table[i].name, name) == 0) {
      *engine_bugs = bug_table[i].engine_bugs;
      *host_bugs = bug_table[i].host_bugs;
      return 0;
    }
  snprintf(err, err_size,
           "unknown bug '%s' (known: none, vote-twice, "
           "stale-commit, skip-log-check, ack-before-fsync, stale-read, "
           "snapshot-reply, wall-clock-read, watch-resume-skip, "
           "watch-delta-order, txn-partial, no-repair-guard, "
           "count-self-before-durable; "
           "for Paxos: "
           "accept-lower-ballot, "
           "no-adopt; for the application workloads: no-dedup; with "
           "--timing adaptive: timing-ratchet)",
           name != NULL ? name : "");
  return SABHA_EINVAL;
}

void sim_options_init(struct sim_options *o) {
  memset(o, 0, sizeof *o);
  o->protocol = "raft";
  o->n_nodes = 5;
  o->n_groups = 1;
  o->n_clients = 5;
  o->n_ops = 1000;
  o->n_keys = 5;
  o->seed = 1;
  o->faults = SIM_FAULT_ALL;
  o->compact_entries = 0;
  o->snapshot_chunk_bytes = 0;
  o->op_timeout_ms = 5000;
  o->sim_time_ms_max = 0;
  o->events_max = 0;
  o->quiesce_ms_max = 20000;
  o->check_linearizability = true;
  o->judge_safety = true;
  o->proposer_backoff = true;
  o->expiry = true;
}

static bool protocol_known(const char *name) {
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    if (strcmp(*p, name) == 0)
      return true;
  return false;
}

/* Whether the engine takes membership changes: asked of a throwaway one,
 * which answers SABHA_ENOTSUPP when its membership is fixed. */
static bool protocol_changes_membership(const char *name) {
  uint32_t voters[1] = {1};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 1);
  struct sabha_engine *e = NULL;
  if (sabha_engine_new(&e, name, &cfg, NULL) != 0)
    return false;
  int rv = sabha_engine_change(e, SABHA_CHANGE_REMOVE, 2, NULL);
  sabha_engine_free(e);
  return rv != SABHA_ENOTSUPP;
}

static int script_check(const struct sim_options *o, char *err,
                        size_t err_size) {
  for (size_t k = 0; k < o->n_script; k++) {
    const struct sim_script_event *se = &o->script[k];
    bool follower =
        se->op == SIM_SCRIPT_ISOLATE && se->peer == SIM_PEER_FOLLOWER;
    bool bad =
        se->node > o->n_nodes || (se->peer > o->n_nodes && !follower) ||
        se->op < SIM_SCRIPT_PARTITION || se->op > SIM_SCRIPT_ISOLATE ||
        !(se->loss >= 0 && se->loss <= 1) ||
        (se->op == SIM_SCRIPT_CLOCK && !(se->rate > 0 && se->rate < 1000)) ||
        ((se->slow_flags != 0 || se->entry_us != 0) &&
         se->op != SIM_SCRIPT_SLOW) ||
        (se->slow_flags &
         ~(uint32_t)(SIM_SLOW_FOLLOW_LEADER | SIM_SLOW_LATE_TIMERS)) != 0 ||
        ((se->slow_flags & SIM_SLOW_FOLLOW_LEADER) && se->node != 0);
    if ((se->op == SIM_SCRIPT_BLOCK || se->op == SIM_SCRIPT_UNBLOCK ||
         se->op == SIM_SCRIPT_RESTART) &&
        ((se->node == 0 && se->op != SIM_SCRIPT_RESTART) ||
         (se->op != SIM_SCRIPT_RESTART && se->peer == 0)))
      bad = true;
    if (bad) {
      snprintf(err, err_size, "scripted fault %zu (at %llu ms) is invalid", k,
               (unsigned long long)se->at_ms);
      return SABHA_EINVAL;
    }
  }
  return 0;
}

static int options_check(const struct sim_options *o, char *err,
                         size_t err_size) {
  const char *why = NULL;
  if (o->protocol == NULL)
    why = "no protocol";
  else if (o->n_nodes < 1 || o->n_nodes > SABHA_NODES_MAX)
    why = "nodes must be 1..16";
  else if (o->n_groups < 1 || o->n_groups > SIM_GROUPS_MAX)
    why = "groups must be 1..64";
  else if (o->n_groups > 1 && o->workload != SIM_WORKLOAD_KV)
    why = "with several groups the workload must be kv (the applications' "
          "commands have no key: group 0 serves them all)";
  else if (o->n_groups > 1 && (o->faults & SIM_FAULT_MEMBERSHIP))
    why = "membership changes need one group (sabhad refuses them with "
          "--groups above 1)";
  else if (o->n_clients < 1 || o->n_clients > SIM_CLIENTS_MAX)
    why = "clients must be 1..256";
  else if (o->n_ops < 1 || o->n_ops > SIM_OPS_MAX)
    why = "ops must be 1..1000000";
  else if (o->n_keys < 1 || o->n_keys > SIM_KEYS_MAX)
    why = "keys must be 1..1024";
  else if (o->faults & ~(uint32_t)(SIM_FAULT_ALL | SIM_FAULT_MEMBERSHIP))
    why = "unknown fault bits";
  else if (o->host_bugs &
           ~(uint32_t)(SIM_HOST_BUG_ACK_BEFORE_FSYNC | SIM_HOST_BUG_STALE_READ |
                       SIM_HOST_BUG_NO_DEDUP | SIM_HOST_BUG_SNAPSHOT_REPLY |
                       SIM_HOST_BUG_WALL_CLOCK_READ |
                       SIM_HOST_BUG_WATCH_RESUME_SKIP |
                       SIM_HOST_BUG_TXN_PARTIAL | SIM_HOST_BUG_TIMING_RATCHET |
                       SIM_HOST_BUG_WATCH_DELTA_ORDER))
    why = "unknown host bug bits";
  else if (o->fsync > RT_FSYNC_THREAD)
    why = "fsync takes enum rt_fsync_mode";
  else if (o->timing > RT_TIMING_ADAPTIVE)
    why = "timing takes enum rt_timing_mode";
  else if ((o->timing_floor_ms > 0 &&
            o->timing_floor_ms < RT_TIMING_FLOOR_MS_MIN) ||
           o->timing_ceiling_ms > RT_TIMING_CEILING_MS_MAX ||
           (o->timing_ceiling_ms > 0 &&
            o->timing_ceiling_ms < (o->timing_floor_ms > 0
                                        ? o->timing_floor_ms
                                        : RT_TIMING_FLOOR_MS_DEFAULT)))
    why = "timing bounds need 10 <= floor <= ceiling <= 300000 ms";
  else if ((uint32_t)o->workload >= SIM_WORKLOAD_COUNT)
    why = "unknown workload";
  else if (o->op_timeout_ms < 1 || o->quiesce_ms_max < 1)
    why = "limits must be positive";
  else if (o->n_script > 0 && o->script == NULL)
    why = "script has no events";
  else if (o->election_timeout_ms_min > 0 && o->election_timeout_ms_max > 0 &&
           o->election_timeout_ms_min > o->election_timeout_ms_max)
    why = "election timeout min is above max";
  else if (o->pre_vote > SIM_SWITCH_ON || o->check_quorum > SIM_SWITCH_ON)
    why = "pre_vote and check_quorum take enum sim_switch";
  if (why != NULL) {
    snprintf(err, err_size, "%s", why);
    return SABHA_EINVAL;
  }
  if ((o->faults & SIM_FAULT_MEMBERSHIP) && protocol_known(o->protocol) &&
      !protocol_changes_membership(o->protocol)) {
    snprintf(err, err_size,
             "--faults membership: the %s engine's membership is fixed "
             "(raft and multipaxos change theirs)",
             o->protocol);
    return SABHA_EINVAL;
  }
  if (!protocol_known(o->protocol)) {
    snprintf(err, err_size, "unknown protocol '%s'", o->protocol);
    return SABHA_EPROTO;
  }
  return script_check(o, err, err_size);
}

/* ---- phases -------------------------------------------------------------- */

void sim_clients_done(struct sim *s) {
  if (s->phase != PHASE_CLIENTS)
    return;
  s->phase = PHASE_QUIESCE;
  s->res->client_time_us = s->now_us;
  nemesis_stop_and_heal(s);
  s->quiesce_deadline_us = s->now_us + (uint64_t)s->o.quiesce_ms_max * 1000u;
  sim_at(s, s->now_us + QUIESCE_POLL_US, ev_new(s, EV_QUIESCE, 0));
}

void sim_note_leader(struct sim *s, uint32_t i, uint32_t g) {
  struct sim_result *r = s->res;
  if ((r->n_leader_changes & (r->n_leader_changes - 1)) == 0)
    r->leader_changes =
        sim_xrealloc(r->leader_changes,
                     (r->n_leader_changes == 0 ? 1 : 2 * r->n_leader_changes) *
                         sizeof *r->leader_changes);
  uint64_t term = s->nodes[i].grp[g].last_term;
  r->leader_changes[r->n_leader_changes++] = (struct sim_leader_change){
      .time_us = s->now_us, .term = term, .node = i + 1, .group = g};
  if (s->trace != NULL && s->n_groups == 1)
    trace_line(s, i + 1, "leads term %llu", (unsigned long long)term);
  else if (s->trace != NULL)
    trace_line(s, i + 1, "leads group %u in term %llu", g,
               (unsigned long long)term);
}

/* client_time_ms is up: the op budget shrinks to what was issued, so no
 * client starts another and the phase ends when the last one finishes
 * (client_finish_op), or now if none is out. */
static void sim_on_clients_stop(struct sim *s) {
  if (s->phase != PHASE_CLIENTS)
    return;
  s->o.n_ops = s->ops_issued;
  if (s->ops_done >= s->ops_issued)
    sim_clients_done(s);
}

void sim_note_barrier(struct sim *s, uint32_t g, uint64_t index) {
  /* Unjudged (async), an applied barrier can be rolled back: the newest
   * apply is the one to wait for (see barrier_lost()). */
  struct checks *ck = &s->ck[g];
  if (s->phase == PHASE_QUIESCE &&
      (ck->barrier_index == 0 || !s->o.judge_safety))
    ck->barrier_index = index;
}

/* True when the barrier must be sent (again): never applied yet, or, for the
 * async baseline, applied by a primary whose log lost it (the current
 * leader's log ends before it). Consensus never undoes an applied barrier. */
static bool barrier_lost(struct sim *s, uint32_t g) {
  if (s->ck[g].barrier_index == 0)
    return true;
  int l = node_group_leader(s, g);
  if (s->o.judge_safety || l < 0)
    return false;
  struct sabha_status st;
  node_status(&s->nodes[l], &st);
  return st.last_index < s->ck[g].barrier_index;
}

/* The barrier: a write of a key no client uses (client.c), sent after
 * healing through the real request path, to the leader if there is one,
 * else to each node in turn, every 100 ms until some node applies it. It
 * is ordered after every write acknowledged before it was sent, so once
 * every node has applied it, every node has applied them all; and getting
 * it through needs a working cluster (a leader, for the protocols that have
 * one). A protocol-neutral way to wait for quiet. */
static void sim_send_barrier(struct sim *s, uint32_t g) {
  int l = node_group_leader(s, g);
  uint32_t node = l >= 0 ? (uint32_t)l : s->barrier_sent % s->n_nodes;
  client_send_barrier(s, node, g);
  s->barrier_next_us = s->now_us + BARRIER_RETRY_US;
}

/* True when every node is up and has applied group g's barrier; otherwise
 * writes why not into `why`. */
static bool group_converged(struct sim *s, uint32_t g, char *why,
                            size_t why_size) {
  const struct checks *ck = &s->ck[g];
  char gn[24] = "";
  if (s->n_groups > 1)
    snprintf(gn, sizeof gn, "group %u: ", g);
  if (ck->barrier_index == 0) {
    snprintf(why, why_size, "%sthe barrier command was never applied (%s)", gn,
             node_group_leader(s, g) < 0 ? "no leader"
                                         : "a leader, but no progress");
    return false;
  }
  /* The application checkers compare every node with the whole committed
   * stream, and a command may commit past the barrier (classic Paxos fills
   * slots out of order): those workloads wait for every committed index.
   * Not for the async baseline: its "committed" indices may have been
   * rolled back and will never be applied again. */
  uint64_t target = ck->barrier_index;
  if (s->o.judge_safety && ck->applied_max > target)
    target = ck->applied_max;
  /* Only members must converge: a removed node stopped hearing the log. */
  membership_final(s);
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (!s->final_member[i])
      continue;
    uint64_t applied =
        n->grp[g].rt != NULL ? rt_applied_index(n->grp[g].rt) : 0;
    if (!n->up || applied < target) {
      snprintf(
          why, why_size,
          "%snode %u %s (applied %llu, barrier at %llu, waiting for "
          "%llu)",
          gn, i + 1, n->up ? "lags" : "is down", (unsigned long long)applied,
          (unsigned long long)ck->barrier_index, (unsigned long long)target);
      return false;
    }
  }
  return true;
}

/* True when every node is up and has applied every group's barrier;
 * otherwise writes why not into `why`. */
static bool sim_converged(struct sim *s, char *why, size_t why_size) {
  for (uint32_t g = 0; g < s->n_groups; g++)
    if (!group_converged(s, g, why, why_size))
      return false;
  return true;
}

static void sim_on_quiesce(struct sim *s, struct sim_event *ev) {
  char why[200];
  if (s->now_us >= s->barrier_next_us)
    for (uint32_t g = 0; g < s->n_groups; g++)
      if (barrier_lost(s, g))
        sim_send_barrier(s, g);
  if (sim_converged(s, why, sizeof why)) {
    ev_free(s, ev);
    s->phase = PHASE_DONE;
    return;
  }
  if (s->now_us >= s->quiesce_deadline_us) {
    ev_free(s, ev);
    sim_fail(s, FAIL_LIVENESS,
             "liveness: the cluster did not converge within %u ms after "
             "healing: %s",
             s->o.quiesce_ms_max, why);
    s->phase = PHASE_DONE;
    return;
  }
  sim_at(s, s->now_us + QUIESCE_POLL_US, ev);
}

/* ---- the loop ------------------------------------------------------------ */

static void sim_trace(struct sim *s, const struct sim_event *ev) {
  uint64_t h = sim_mix(s->trace_hash, s->now_us);
  h = sim_mix(h, ((uint64_t)ev->kind << 32) | ev->target);
  if (ev->kind == EV_PEER_MSG) {
    const struct sabha_msg *m = &ev->u.pkt->msg;
    h = sim_mix(h,
                ((uint64_t)m->type << 40) | ((uint64_t)m->from << 20) | m->to);
    h = sim_mix(h, m->term);
    h = sim_mix(h, m->index);
  }
  s->trace_hash = h;
}

static void sim_dispatch(struct sim *s, struct sim_event *ev) {
  switch (ev->kind) {
  case EV_TICK:
  case EV_WAKE:
  case EV_FSYNC_DONE:
  case EV_SNAP_DONE:
  case EV_FLUSH:
  case EV_PEER_MSG:
  case EV_CONN_OPEN:
    node_on_event(s, ev);
    break;
  case EV_CONN_DATA:
  case EV_CONN_UP:
  case EV_CONN_DOWN:
    if (ev->aux == 1)
      client_on_event(s, ev); /* to a client */
    else
      node_on_event(s, ev);
    break;
  case EV_CLIENT_TIMER:
    client_on_event(s, ev);
    break;
  case EV_NEMESIS:
  case EV_HEAL:
  case EV_RESTART:
  case EV_SCRIPT:
  case EV_STRIKE:
  case EV_STALL_CRASH:
  case EV_UNISOLATE:
  case EV_HEAR:
    nemesis_on_event(s, ev);
    break;
  case EV_CHECK:
    check_log_matching(s);
    sim_at(s, s->now_us + CHECK_PERIOD_US, ev);
    break;
  case EV_QUIESCE:
    sim_on_quiesce(s, ev);
    break;
  case EV_CLIENTS_STOP:
    ev_free(s, ev);
    sim_on_clients_stop(s);
    break;
  case EV_MEMBERSHIP:
    membership_nemesis_step(s, ev);
    break;
  default:
    assert(0 && "unknown event kind");
    ev_free(s, ev);
  }
}

static void sim_loop(struct sim *s) {
  uint64_t time_max_us = s->o.sim_time_ms_max * 1000u;
  while (s->phase != PHASE_DONE && !s->stop) {
    uint64_t t;
    struct sim_event *ev = evq_pop(&s->q, &t);
    if (ev == NULL) {
      sim_fail(s, FAIL_LIMIT, "the event queue ran dry");
      return;
    }
    assert(t >= s->now_us);
    s->now_us = t;
    if (t > time_max_us || s->res->events >= s->o.events_max) {
      if (ev->kind == EV_PEER_MSG)
        packet_free(ev->u.pkt);
      else if (ev->kind == EV_CONN_DATA)
        chunk_free(ev->u.c.chunk);
      ev_free(s, ev);
      sim_fail(s, FAIL_LIMIT,
               "liveness: the run hit its cap (%llu ms simulated, %llu "
               "events) with %llu of %llu operations done",
               (unsigned long long)s->o.sim_time_ms_max,
               (unsigned long long)s->o.events_max,
               (unsigned long long)s->ops_done, (unsigned long long)s->o.n_ops);
      return;
    }
    s->res->events++;
    sim_trace(s, ev);
    if (s->trace != NULL)
      trace_event(s, ev);
    sim_dispatch(s, ev);
  }
}

/* ---- setup and teardown -------------------------------------------------- */

/* The lab's engine settings (sim.h): only those it set replace the
 * engine's defaults. */
static void engine_overrides(const struct sim_options *o,
                             struct sabha_config *cfg) {
  if (o->election_timeout_ms_min > 0)
    cfg->election_timeout_ms_min = o->election_timeout_ms_min;
  if (o->election_timeout_ms_max > 0)
    cfg->election_timeout_ms_max = o->election_timeout_ms_max;
  if (cfg->election_timeout_ms_max < cfg->election_timeout_ms_min)
    cfg->election_timeout_ms_max = cfg->election_timeout_ms_min;
  if (o->heartbeat_ms > 0)
    cfg->heartbeat_ms = o->heartbeat_ms;
  if (o->commands_per_slot_max > 0)
    cfg->commands_per_slot_max = o->commands_per_slot_max;
  if (o->pre_vote != SIM_SWITCH_DEFAULT)
    cfg->pre_vote = o->pre_vote == SIM_SWITCH_ON;
  if (o->check_quorum != SIM_SWITCH_DEFAULT)
    cfg->check_quorum = o->check_quorum == SIM_SWITCH_ON;
}

/* What every node's runtime starts with: the engine's settings, the
 * timeouts, the host bugs, the compaction interval drawn from the seed. */
static void runtime_setup(struct sim *s) {
  const struct sim_options *o = &s->o;
  uint32_t voters[SABHA_NODES_MAX];
  for (uint32_t k = 0; k < s->n_nodes; k++)
    voters[k] = k + 1;
  struct rt_config *cfg = &s->rt_cfg;
  rt_config_init(cfg, 1, voters, s->n_nodes);
  sabha_config_init(&cfg->engine, 1, voters, s->n_nodes);
  cfg->engine.bugs = o->engine_bugs;
  cfg->engine.snapshot_chunk_bytes = o->snapshot_chunk_bytes;
  cfg->engine.entries_per_msg_max = o->entries_per_msg_max;
  cfg->engine.inflight_msgs_max = o->inflight_msgs_max;
  cfg->engine.proposer_backoff = o->proposer_backoff;
  /* Entries up to 128 KiB (the clients' largest values fit with room), so
   * that the WAL's segments can be small. */
  cfg->engine.entry_size_bytes_max = 128u << 10;
  engine_overrides(o, &cfg->engine);
  snprintf(cfg->protocol, sizeof cfg->protocol, "%s", o->protocol);
  cfg->compact_entries = o->compact_entries;
  /* sabhad's rule in every third run: snapshots are rarer and larger. */
  cfg->compact_growth_pct = o->seed % 3 == 0 ? 100u : 0u;
  /* In every fourth run the bytes come first: a few batched entries are
   * enough for a snapshot (sabhad's compact-bytes, made small). */
  cfg->compact_bytes = o->seed % 4 == 1 ? 2048u : 0u;
  /* In every fifth run the watch window holds 4 KiB, a few dozen changes:
   * it wraps and drops all the time, and the watcher falls behind and
   * resumes under the watch checker. */
  if (o->seed % 5 == 3)
    cfg->watch_window_bytes = 4096u;
  if (o->priorities != NULL)
    memcpy(cfg->priority, o->priorities, sizeof cfg->priority);
  /* Shorter than sabhad's: the clients give up on an attempt after
   * 200-500 ms, and a run's faults last seconds. */
  cfg->leader_wait_ms = 2000;
  cfg->request_timeout_ms = 4000;
  cfg->clients_max = 4 * SIM_CLIENTS_MAX;
  /* Every id a run uses stays known, so the end checks may rely on it; the
   * table never fills, so the retention window (sabhad's default, from
   * rt_config_init) never refuses a new id either. */
  cfg->dedup_max = (uint32_t)(o->n_ops + 64);
  cfg->bugs =
      ((o->host_bugs & SIM_HOST_BUG_ACK_BEFORE_FSYNC) ? RT_BUG_ACK_BEFORE_FSYNC
                                                      : 0) |
      ((o->host_bugs & SIM_HOST_BUG_STALE_READ) ? RT_BUG_STALE_READ : 0) |
      ((o->host_bugs & SIM_HOST_BUG_SNAPSHOT_REPLY) ? RT_BUG_SNAPSHOT_REPLY
                                                    : 0) |
      ((o->host_bugs & SIM_HOST_BUG_WALL_CLOCK_READ) ? RT_BUG_WALL_CLOCK_READ
                                                     : 0) |
      ((o->host_bugs & SIM_HOST_BUG_WATCH_RESUME_SKIP)
           ? RT_BUG_WATCH_RESUME_SKIP
           : 0) |
      ((o->host_bugs & SIM_HOST_BUG_TXN_PARTIAL) ? RT_BUG_TXN_PARTIAL : 0) |
      ((o->host_bugs & SIM_HOST_BUG_TIMING_RATCHET) ? RT_BUG_TIMING_RATCHET
                                                    : 0) |
      ((o->host_bugs & SIM_HOST_BUG_WATCH_DELTA_ORDER)
           ? RT_BUG_WATCH_DELTA_ORDER
           : 0);
  cfg->timing = (enum rt_timing_mode)o->timing;
  /* The ack-before-fsync bug's fsync comes whenever the host gets to it:
   * on the loop there would be no window for a crash to find. */
  cfg->fsync = (o->host_bugs & SIM_HOST_BUG_ACK_BEFORE_FSYNC)
                   ? RT_FSYNC_THREAD
                   : (enum rt_fsync_mode)o->fsync;
  if (o->timing_floor_ms > 0)
    cfg->election_timeout_ms_floor = o->timing_floor_ms;
  if (o->timing_ceiling_ms > 0)
    cfg->election_timeout_ms_ceiling = o->timing_ceiling_ms;
  cfg->app_bugs = (o->host_bugs & SIM_HOST_BUG_NO_DEDUP) ? APP_BUG_NO_DEDUP : 0;
}

static void sim_setup(struct sim *s) {
  const struct sim_options *o = &s->o;
  s->n_nodes = o->n_nodes;
  s->n_groups = o->n_groups;
  s->res->n_groups = o->n_groups;
  s->n_clients = o->n_clients;
  s->quorum = o->n_nodes / 2 + 1;
  s->active_node = -1;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    s->final_member[i] = true; /* until membership_final says otherwise */
  s->final_ref = 0;
  prng_seed(&s->prng_net, sim_mix(o->seed, 0x6e6574));
  prng_seed(&s->prng_nemesis, sim_mix(o->seed, 0x6e656d));
  prng_seed(&s->prng_client, sim_mix(o->seed, 0x636c69));
  prng_seed(&s->prng_disk, sim_mix(o->seed, 0x64736b));
  prng_seed(&s->prng_node, sim_mix(o->seed, 0x6e6f64));
  prng_seed(&s->prng_config, sim_mix(o->seed, 0x636667));
  prng_seed(&s->prng_quiet, sim_mix(o->seed, 0x717569));
  if (s->o.sim_time_ms_max == 0)
    s->o.sim_time_ms_max =
        600000ull + s->o.n_ops * s->o.op_timeout_ms / s->o.n_clients / 10;
  if (s->o.events_max == 0)
    s->o.events_max = 10000000ull + 50000ull * s->o.n_ops;
  static const uint32_t entries_choices[] = {1, 4, 64, 256};
  static const uint32_t inflight_choices[] = {1, 4, 64};
  static const uint32_t compact_choices[] = {16, 32, 64, 256};
  static const uint32_t chunk_choices[] = {512, 4096, 65536};
  if (s->o.entries_per_msg_max == 0)
    s->o.entries_per_msg_max = entries_choices[prng_below(&s->prng_config, 4)];
  if (s->o.inflight_msgs_max == 0)
    s->o.inflight_msgs_max = inflight_choices[prng_below(&s->prng_config, 3)];
  /* Small compaction intervals, so that snapshots are taken, sent and
   * installed in most runs. */
  if (s->o.compact_entries == 0)
    s->o.compact_entries = compact_choices[prng_below(&s->prng_config, 4)];
  if (s->o.snapshot_chunk_bytes == 0)
    s->o.snapshot_chunk_bytes = chunk_choices[prng_below(&s->prng_config, 3)];
  /* The key-value workload's keys: registers, counters for INCR and keys
   * that always expire (client.c). */
  s->n_registers = o->n_keys;
  s->n_counters =
      o->workload == SIM_WORKLOAD_KV || o->workload == SIM_WORKLOAD_MIXED
          ? (o->n_keys + 1) / 2
          : 0;
  s->n_expiring = s->o.expiry ? s->n_counters : 0;
  evq_init(&s->q);
  net_init(s);
  conns_init(s);
  checks_init(s);
  s->hist = sim_xcalloc((size_t)o->n_ops, sizeof *s->hist);
  s->ops = sim_xcalloc((size_t)o->n_ops, sizeof *s->ops);
  s->op_committed = sim_xcalloc((size_t)o->n_ops, 1);
  s->incr_acked = sim_xcalloc(s->n_counters + 1, sizeof *s->incr_acked);
  s->incr_maybe = sim_xcalloc(s->n_counters + 1, sizeof *s->incr_maybe);
  s->scratch = sim_xmalloc(SIM_SCRATCH_BYTES);
  resp_buf_init(&s->request, 1u << 20);
  s->value_next = 1;
  s->key_group = sim_xcalloc(sim_keys(s) + 1, sizeof *s->key_group);
  for (uint32_t k = 0; k < sim_keys(s); k++) {
    char key[16];
    int klen = sim_key_name(s, k, key, sizeof key);
    s->key_group[k] =
        rt_key_group((const uint8_t *)key, (size_t)klen, s->n_groups);
    s->res->groups[s->key_group[k]].keys++;
  }
  sim_barrier_keys(s);
  workload_setup(s);
  runtime_setup(s);
  s->trace = o->trace;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    node_init(s, i);
  for (uint32_t i = 0; i < s->n_nodes && !s->stop; i++)
    node_start(s, i);
  clients_init(s);
  /* The watcher reads every key's changes and the coordination client's
   * transactions span keys: what sabhad refuses across groups. With
   * several groups they are left out (sim.h). */
  bool one_group = s->n_groups == 1;
  if (one_group) {
    watcher_init(s);
    coord_init(s);
  }
  clients_start(s);
  if (one_group) {
    watcher_start(s);
    coord_start(s);
  }
  nemesis_init(s);
  membership_nemesis_init(s);
  sim_at(s, CHECK_PERIOD_US, ev_new(s, EV_CHECK, 0));
  if (o->client_time_ms > 0)
    sim_at(s, o->client_time_ms * 1000u, ev_new(s, EV_CLIENTS_STOP, 0));
}

static void sim_teardown(struct sim *s) {
  for (size_t k = 0; k < s->q.n; k++) {
    struct sim_event *ev = s->q.heap[k].ev;
    if (ev->kind == EV_PEER_MSG)
      packet_free(ev->u.pkt);
    else if (ev->kind == EV_CONN_DATA)
      chunk_free(ev->u.c.chunk);
  }
  for (uint32_t i = 0; i < s->n_nodes; i++)
    node_free(s, i);
  clients_free(s);
  watcher_free(s);
  coord_free(s);
  conns_free(s);
  checks_free(s);
  workload_teardown(s);
  evq_free(&s->q);
  free(s->hist);
  free(s->ops);
  free(s->op_committed);
  free(s->key_group);
  free(s->incr_acked);
  free(s->incr_maybe);
  free(s->scratch);
  resp_buf_free(&s->request);
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- what the nodes apply --------------------------------------------------
 */

/* The register value a SET or CAS writes ("v<id>..."), or -1. */
static int64_t written_id(const struct kvstore_slice *v) {
  if (v->len < 2 || v->ptr[0] != 'v')
    return -1;
  int64_t id = 0;
  for (size_t i = 1; i < v->len && v->ptr[i] >= '0' && v->ptr[i] <= '9'; i++)
    id = id * 10 + (v->ptr[i] - '0');
  return id;
}

void sim_observe_command(struct sim *s, struct node *n, uint32_t g,
                         uint64_t index, uint32_t pos, const uint8_t *cmd,
                         size_t len, const struct rt_applied *res) {
  /* Each log position of a group is seen once, at its first apply
   * anywhere (state machine safety makes that every node's). */
  struct checks *ck = &s->ck[g];
  bool first = index > ck->seen_index ||
               (index == ck->seen_index && pos >= ck->seen_pos);
  if (first) {
    ck->seen_index = index;
    ck->seen_pos = pos + 1;
  }
  if (res->is_app) {
    if (s->wl != NULL)
      workload_observe(s, n, index, pos, cmd, len, res->app, first);
    return;
  }
  if (first)
    watcher_observe(s, index, cmd, len);
  struct kvstore_cmd_view v;
  if (kvstore_decode(cmd, len, &v) != 0)
    return;
  if (v.op == KVSTORE_OP_CLOCK && first && s->wl != NULL)
    workload_observe_clock(s, v.hdr.now_ms);
  if (v.op != KVSTORE_OP_SET && v.op != KVSTORE_OP_CAS)
    return;
  if (v.key.len == strlen(s->barrier_key[g]) &&
      memcmp(v.key.ptr, s->barrier_key[g], v.key.len) == 0) {
    sim_note_barrier(s, g, index);
    return;
  }
  /* A put or cas that took effect: its value is in the committed stream. */
  const struct kvstore_result *r = res->kv;
  bool took = r->outcome == KVSTORE_APPLIED &&
              (r->kind == KVSTORE_REPLY_OK ||
               (r->kind == KVSTORE_REPLY_INT && r->integer == 1));
  int64_t id = written_id(&v.value);
  if (took && id > 0 && (uint64_t)id <= s->o.n_ops)
    s->op_committed[id - 1] = 1;
}

uint32_t sim_keys(const struct sim *s) {
  return s->n_registers + s->n_counters + s->n_expiring;
}

int sim_key_name(const struct sim *s, uint32_t key, char *buf, size_t size) {
  if (key < s->n_registers)
    return snprintf(buf, size, "r%u", key);
  key -= s->n_registers;
  if (key < s->n_counters)
    return snprintf(buf, size, "c%u", key);
  return snprintf(buf, size, "e%u", key - s->n_counters);
}

/* A hash of a node's state: every key the workload uses, as the store
 * holds it, and the applications' state. */
static uint64_t node_state_hash(const struct sim *s, const struct node *n) {
  uint64_t h = 0x5ab4a;
  for (uint32_t k = 0; k < sim_keys(s); k++) {
    const struct kvstore *kv = rt_kvstore(n->grp[s->key_group[k]].rt);
    char key[16];
    int klen = sim_key_name(s, k, key, sizeof key);
    const uint8_t *v;
    size_t vlen;
    if (kvstore_get(kv, (const uint8_t *)key, (size_t)klen, 0, &v, &vlen))
      h = sim_mix(h, sim_hash_bytes(v, vlen));
    else
      h = sim_mix(h, 0x6e696c);
  }
  return workload_state_hash(s, n, h);
}

/* Each group's leader at the end and how far its log got. */
static void group_results(struct sim *s) {
  for (uint32_t g = 0; g < s->n_groups; g++) {
    int l = node_group_leader(s, g);
    s->res->groups[g].leader = l >= 0 ? (uint32_t)l + 1 : 0;
    s->res->groups[g].commit = s->ck[g].applied_max;
  }
}

/* The state every node converged to (they are compared in checks.c): the
 * first live node's. */
static uint64_t final_state_hash(const struct sim *s) {
  for (uint32_t i = 0; i < s->n_nodes; i++)
    if (s->final_member[i] && s->nodes[i].up && s->nodes[i].rt != NULL)
      return node_state_hash(s, &s->nodes[i]);
  return 0;
}

uint64_t sim_node_state_hash(const struct sim *s, const struct node *n) {
  return node_state_hash(s, n);
}

int sim_run(const struct sim_options *o, struct sim_result *result, char *err,
            size_t err_size) {
  assert(o != NULL && result != NULL);
  memset(result, 0, sizeof *result);
  int rv = options_check(o, err, err_size);
  if (rv != 0)
    return rv;
  double wall_start = wall_seconds();
  struct sim *s = sim_xcalloc(1, sizeof *s);
  s->o = *o;
  s->res = result;
  /* The async baseline promises none of what consensus does: its breaches
   * are counted as its result (sim.h, judge_safety). */
  if (strcmp(o->protocol, "async") == 0)
    s->o.judge_safety = false;
  sim_setup(s);
  sim_loop(s);
  if (!s->stop && s->phase == PHASE_DONE)
    checks_final(s);
  if (s->phase == PHASE_CLIENTS)
    result->client_time_us = s->now_us;
  result->sim_time_us = s->now_us;
  result->trace_hash = s->trace_hash;
  result->state_hash = final_state_hash(s);
  group_results(s);
  result->n_history = (size_t)s->ops_issued;
  result->history = s->hist;
  result->app_history = workload_take_history(s);
  s->hist = NULL;
  sim_teardown(s);
  free(s);
  result->wall_seconds = wall_seconds() - wall_start;
  return 0;
}

void sim_result_free(struct sim_result *result) {
  if (result == NULL)
    return;
  free(result->latencies_us);
  free(result->latency_groups);
  result->latency_groups = NULL;
  free(result->history);
  free(result->app_history);
  free(result->leader_changes);
  result->leader_changes = NULL;
  result->n_leader_changes = 0;
  result->latencies_us = NULL;
  result->history = NULL;
  result->app_history = NULL;
}
