/* async: creation, time, the message dispatcher and the ready/advance cycle.
 *
 * The term rules are Raft's (a message from a higher term makes a node a
 * follower of that term; a stale primary's append is answered with the
 * current term so it steps down), as is the lease that keeps a follower that
 * hears a live primary from voting in a new term: without it, a backup that
 * was cut off would depose a healthy primary whenever it came back. What the
 * baseline leaves out is said in async.h. */
#include "async/async.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_impl.h"

int async_voter_slot(const struct async_node *a, uint32_t id) {
  for (uint32_t i = 0; i < a->cfg.n_voters; i++)
    if (a->cfg.voters[i] == id)
      return (int)i;
  return -1;
}

static uint32_t async_quorum(const struct async_node *a) {
  return a->cfg.n_voters / 2 + 1;
}

void async_reset_election_timer(struct async_node *a) {
  /* Priority, part one: the windows of successive ranks do not overlap,
   * so of the nodes that lost the primary at once the highest-priority live
   * one stands first (MongoDB's priority takeover serves the same end). */
  uint64_t window_ms = a->cfg.election_timeout_ms_max -
                       a->cfg.election_timeout_ms_min + a->cfg.heartbeat_ms;
  uint64_t offset_ms = (uint64_t)a->rank * window_ms;
  a->election_deadline_ms = a->now_ms + offset_ms +
                            prng_range(&a->prng, a->cfg.election_timeout_ms_min,
                                       a->cfg.election_timeout_ms_max);
}

static bool async_in_lease(const struct async_node *a) {
  if (!a->cfg.check_quorum)
    return false;
  if (a->role == SABHA_ROLE_LEADER)
    return true;
  return a->leader != SABHA_NODE_NONE &&
         a->now_ms < a->leader_contact_ms + a->cfg.election_timeout_ms_min;
}

void async_send(struct async_node *a, struct sabha_msg *m, bool after_persist) {
  m->from = a->cfg.id;
  if (m->term == 0)
    m->term = a->term;
  /* A message the outbox cannot hold is a message lost: the protocol
   * copes, as with the network. */
  (void)outbox_send(&a->out, m, after_persist);
}

void async_become_follower(struct async_node *a, uint64_t term,
                           uint32_t leader) {
  assert(term >= a->term);
  if (term > a->term) {
    a->terms_burned += term - a->term;
    a->term = term;
    a->vote = SABHA_NODE_NONE;
    a->best_candidate = SABHA_NODE_NONE;
  }
  a->role = SABHA_ROLE_FOLLOWER;
  a->leader = leader;
  if (leader != SABHA_NODE_NONE)
    a->leader_contact_ms = a->now_ms;
  async_reset_election_timer(a);
}

void async_become_primary(struct async_node *a) {
  assert(a->role == SABHA_ROLE_CANDIDATE);
  a->role = SABHA_ROLE_LEADER;
  a->leader = a->cfg.id;
  a->elections_won++;
  for (uint32_t i = 0; i < a->cfg.n_voters; i++) {
    struct progress *pr = &a->peers[i];
    progress_reset(pr, log_last_index(&a->rl.log) + 1);
    if (pr->id == a->cfg.id) {
      pr->match = replog_self_match(&a->rl);
      pr->state = PROGRESS_REPLICATE;
    }
  }
  a->heartbeat_due_ms = a->now_ms + a->cfg.heartbeat_ms;
  a->check_quorum_due_ms = a->now_ms + a->cfg.election_timeout_ms_min;
  /* No no-op entry, unlike Raft: nothing waits for an entry of the new term
   * to commit, because the primary's log is by definition the truth. */
  async_commit_own(a);
  async_broadcast_append(a);
}

/* ---- creation ---------------------------------------------------------- */

static void async_destroy(void *state) {
  struct async_node *a = state;
  if (a == NULL)
    return;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    progress_free(&a->peers[i]);
  replog_free(&a->rl);
  outbox_free(&a->out);
  free(a);
}

static uint32_t rank_of(const struct sabha_config *cfg) {
  uint32_t rank = 0;
  for (uint32_t i = 0; i < cfg->n_voters; i++)
    rank += cfg->voters[i] < cfg->id;
  return rank;
}

static int async_create(void **state, const struct sabha_config *cfg,
                        const struct sabha_persisted *persisted) {
  struct async_node *a = calloc(1, sizeof *a);
  if (a == NULL)
    return SABHA_ENOMEM;
  a->cfg = *cfg;
  a->rank = rank_of(cfg);
  prng_seed(&a->prng, cfg->seed ^ ((uint64_t)cfg->id << 32));
  replog_init(&a->rl);
  outbox_init(&a->out);
  int rv = 0;
  for (uint32_t i = 0; i < cfg->n_voters && rv == 0; i++)
    rv = progress_init(&a->peers[i], cfg->voters[i], cfg->inflight_msgs_max);
  if (rv == 0 && persisted != NULL) {
    a->term = persisted->hard_state.term;
    a->vote = persisted->hard_state.vote;
    a->rl.guard_off = (cfg->bugs & SABHA_BUG_NO_REPAIR_GUARD) != 0;
    rv = replog_restore(&a->rl, persisted);
  }
  if (rv != 0) {
    async_destroy(a);
    return rv;
  }
  /* Whatever a snapshot covers was stable when it was taken. */
  a->stable = a->rl.log.snap_index;
  a->role = SABHA_ROLE_FOLLOWER;
  async_reset_election_timer(a);
  *state = a;
  return 0;
}

/* ---- inputs ------------------------------------------------------------ */

static void async_check_quorum(struct async_node *a) {
  /* A primary that has not heard from a majority for an election timeout
   * steps down (MongoDB does the same), so that clients look elsewhere.
   * Until then it goes on acknowledging writes nobody else will see. */
  uint32_t active = progress_take_active(a->peers, a->cfg.n_voters, a->cfg.id);
  if (active < async_quorum(a))
    async_become_follower(a, a->term, SABHA_NODE_NONE);
}

static int async_tick(void *state, uint64_t now_ms) {
  struct async_node *a = state;
  if (!a->clock_started) {
    /* Timers were drawn before the host's clock was known. */
    a->clock_started = true;
    a->now_ms = now_ms;
    async_reset_election_timer(a);
  }
  if (now_ms > a->now_ms)
    a->now_ms = now_ms;
  if (a->role != SABHA_ROLE_LEADER) {
    if (a->now_ms >= a->election_deadline_ms)
      async_campaign(a);
    return 0;
  }
  if (a->now_ms >= a->heartbeat_due_ms) {
    a->heartbeat_due_ms = a->now_ms + a->cfg.heartbeat_ms;
    async_broadcast_heartbeat(a);
  }
  if (a->cfg.check_quorum && a->now_ms >= a->check_quorum_due_ms) {
    a->check_quorum_due_ms = a->now_ms + a->cfg.election_timeout_ms_min;
    async_check_quorum(a);
  }
  return 0;
}

static bool from_primary(uint32_t type) {
  return type == ASYNC_MSG_APPEND || type == ASYNC_MSG_HEARTBEAT ||
         type == ASYNC_MSG_SNAPSHOT;
}

/* The term rules every message goes through first. Returns false when the
 * message is to be dropped. */
static bool async_step_term(struct async_node *a, const struct sabha_msg *m) {
  if (m->term > a->term) {
    if (m->type == ASYNC_MSG_VOTE && async_in_lease(a))
      return false;
    async_become_follower(a, m->term,
                          from_primary(m->type) ? m->from : SABHA_NODE_NONE);
    return true;
  }
  if (m->term < a->term) {
    if (m->type == ASYNC_MSG_APPEND || m->type == ASYNC_MSG_HEARTBEAT) {
      /* Tell a deposed primary the new term so that it steps down. */
      struct sabha_msg resp = {.type = ASYNC_MSG_APPEND_RESP, .to = m->from};
      resp.reject = 1;
      async_send(a, &resp, true);
    }
    return false;
  }
  return true;
}

static void async_step_from_primary(struct async_node *a,
                                    const struct sabha_msg *m) {
  if (a->role == SABHA_ROLE_LEADER)
    return; /* two primaries in one term: impossible unless broken */
  if (a->role != SABHA_ROLE_FOLLOWER || a->leader != m->from)
    async_become_follower(a, m->term, m->from);
  a->leader_contact_ms = a->now_ms;
  async_reset_election_timer(a);
  if (m->type == ASYNC_MSG_APPEND)
    async_recv_append(a, m);
  else if (m->type == ASYNC_MSG_HEARTBEAT)
    async_recv_heartbeat(a, m);
  else
    async_recv_snapshot(a, m);
}

static int async_step(void *state, const struct sabha_msg *m) {
  struct async_node *a = state;
  if (m->to != a->cfg.id || async_voter_slot(a, m->from) < 0 ||
      m->from == a->cfg.id)
    return SABHA_EINVAL;
  if (!async_step_term(a, m))
    return 0;
  bool primary = a->role == SABHA_ROLE_LEADER;
  switch (m->type) {
  case ASYNC_MSG_APPEND:
  case ASYNC_MSG_HEARTBEAT:
  case ASYNC_MSG_SNAPSHOT:
    async_step_from_primary(a, m);
    return 0;
  case ASYNC_MSG_APPEND_RESP:
    if (primary)
      async_recv_append_resp(a, m);
    return 0;
  case ASYNC_MSG_HEARTBEAT_RESP:
    if (primary)
      async_recv_heartbeat_resp(a, m);
    return 0;
  case ASYNC_MSG_SNAPSHOT_RESP:
    if (primary)
      async_recv_snapshot_resp(a, m);
    return 0;
  case ASYNC_MSG_VOTE:
    async_recv_vote(a, m);
    return 0;
  case ASYNC_MSG_VOTE_RESP:
    async_recv_vote_resp(a, m);
    return 0;
  default:
    return SABHA_EINVAL;
  }
}

static int async_propose(void *state, const void *data, size_t size_bytes) {
  struct async_node *a = state;
  if (a->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (size_bytes > a->cfg.entry_size_bytes_max)
    return SABHA_ETOOBIG;
  /* Only the primary's own fsync stands between a write and its commit, so
   * this bounds the writes waiting for one. */
  if (log_last_index(&a->rl.log) - a->rl.commit >=
      a->cfg.uncommitted_entries_max)
    return SABHA_EBUSY;
  struct sabha_entry e = {
      .index = log_last_index(&a->rl.log) + 1,
      .term = a->term,
      .type = SABHA_ENTRY_COMMAND,
      .size_bytes = (uint32_t)size_bytes,
      .data = data,
  };
  /* Sending waits for ready(): proposals gathered until then travel in one
   * append per backup. */
  return log_append(&a->rl.log, &e);
}

/* Reads are served at once at the primary's commit index, with no round of
 * heartbeats to confirm it is still primary: a deposed primary that has
 * not heard of its successor answers stale (part of the baseline). */
static int async_read_index(void *state, uint64_t request_id) {
  struct async_node *a = state;
  if (a->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  int rv = outbox_read_state(&a->out, request_id, a->rl.commit);
  return rv == SABHA_ENOMEM ? SABHA_EBUSY : rv;
}

/* ---- the ready/advance cycle ------------------------------------------- */

static bool async_has_ready(const void *state) {
  const struct async_node *a = state;
  return !outbox_empty(&a->out) || replog_has_ready(&a->rl, a->term, a->vote);
}

static void async_ready(void *state, struct sabha_ready *rd) {
  struct async_node *a = state;
  /* Backups get new entries while the primary writes them: replication
   * runs beside the primary's fsync, never in front of the acknowledgement. */
  if (a->role == SABHA_ROLE_LEADER &&
      a->rl.unstable_from <= log_last_index(&a->rl.log))
    async_broadcast_append(a);
  replog_fill_ready(&a->rl, a->term, a->vote, &a->out, rd);
}

static void async_advance(void *state, const struct sabha_ready *rd) {
  struct async_node *a = state;
  replog_advance(&a->rl, rd);
  outbox_reset(&a->out);
  if (a->role == SABHA_ROLE_LEADER)
    async_commit_own(a);
}

static void async_persisted(void *state, uint64_t seq) {
  struct async_node *a = state;
  (void)replog_persisted(&a->rl, seq);
  /* The commit point: what the primary itself now holds durably. */
  if (a->role == SABHA_ROLE_LEADER)
    async_commit_own(a);
}

static void async_status(const void *state, struct sabha_status *st) {
  const struct async_node *a = state;
  st->id = a->cfg.id;
  st->role = a->role;
  st->term = a->term;
  st->vote = a->vote;
  st->leader = a->leader;
  st->commit = a->rl.commit;
  st->applied = a->rl.applied;
  st->first_index = log_first_index(&a->rl.log);
  st->last_index = log_last_index(&a->rl.log);
  st->snapshot_index = a->rl.log.snap_index;
  st->elections_started = a->elections_started;
  st->elections_won = a->elections_won;
  st->ballots_burned = a->terms_burned;
  st->repair_until = replog_guard_until(&a->rl);
}

/* MongoDB steps a primary down and lets the priorities decide; the
 * baseline has no targeted hand-over. */
static int async_transfer_leadership(void *state, uint32_t to) {
  struct async_node *a = state;
  if (a->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  (void)to;
  return SABHA_ENOTSUPP;
}

static int async_compact_op(void *state, uint64_t index, const void *data,
                            size_t size_bytes) {
  return async_compact(state, index, data, size_bytes);
}

static int async_entry(const void *state, uint64_t index,
                       struct sabha_entry *out) {
  const struct async_node *a = state;
  return replog_entry(&a->rl, index, out);
}

/* ---- how messages read (sabha_msg_describe) ----------------------------- */

/* The primary's commit and stable points and its last index, which appends
 * and heartbeats both carry (async.h). */
static void describe_points(struct describe *t, const struct sabha_msg *m) {
  describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
  describe_u64(t, "stable", m->hint_index, DESCRIBE_HINT);
  describe_u64(t, "last", m->context, DESCRIBE_CONTEXT);
}

static void async_describe(struct describe *t, const struct sabha_msg *m) {
  static const char *const names[] = {
      [ASYNC_MSG_APPEND] = "append",
      [ASYNC_MSG_APPEND_RESP] = "append-resp",
      [ASYNC_MSG_HEARTBEAT] = "heartbeat",
      [ASYNC_MSG_HEARTBEAT_RESP] = "heartbeat-resp",
      [ASYNC_MSG_VOTE] = "vote",
      [ASYNC_MSG_VOTE_RESP] = "vote-resp",
      [ASYNC_MSG_SNAPSHOT] = "snapshot",
      [ASYNC_MSG_SNAPSHOT_RESP] = "snapshot-resp",
  };
  if (!describe_name(t, names, sizeof names / sizeof names[0], m->type))
    return;
  describe_term(t, "term", m->term);
  switch (m->type) {
  case ASYNC_MSG_APPEND:
    describe_at(t, "prev", m->index, m->log_term,
                DESCRIBE_INDEX | DESCRIBE_LOG_TERM);
    describe_entries(t, "entries", m);
    describe_points(t, m);
    break;
  case ASYNC_MSG_HEARTBEAT:
    describe_points(t, m);
    break;
  case ASYNC_MSG_APPEND_RESP:
    describe_append_resp(t, m);
    break;
  case ASYNC_MSG_VOTE_RESP:
    describe_verdict(t, m, "granted");
    break;
  case ASYNC_MSG_SNAPSHOT:
    describe_snapshot_chunk(t, m);
    break;
  case ASYNC_MSG_SNAPSHOT_RESP:
    describe_snapshot_resp(t, m);
    break;
  default: /* HEARTBEAT_RESP, VOTE: nothing beyond the term */
    break;
  }
}

/* sabha_engine_set_timing: the timers read cfg when they are armed. */
static struct sabha_config *async_config(void *state) {
  struct async_node *x = state;
  return &x->cfg;
}

const struct engine_ops async_engine_ops = {
    .name = "async",
    .create = async_create,
    .destroy = async_destroy,
    .tick = async_tick,
    .step = async_step,
    .propose = async_propose,
    .read_index = async_read_index,
    .has_ready = async_has_ready,
    .ready = async_ready,
    .advance = async_advance,
    .persisted = async_persisted,
    .status = async_status,
    .transfer_leadership = async_transfer_leadership,
    .compact = async_compact_op,
    .entry = async_entry,
    .config = async_config,
    .describe = async_describe,
};
