/* Raft: creation, time, role changes and the ready/advance cycle.
 *
 * This file holds what every Raft role shares: the message dispatcher that
 * applies the term rules of Figure 2 ("if RPC request or response contains
 * term T > currentTerm: set currentTerm = T, convert to follower") together
 * with the lease rule that keeps a healthy leader in place (thesis §4.2.3,
 * §6.2), the timers, and the translation of internal state into the ready
 * batch of include/sabha/engine.h, and how Raft's messages read in a trace
 * (sabha_msg_describe). The protocol proper lives beside it, one
 * file per concern (see raft.h). */
#include "raft/raft.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "core/engine_impl.h"

uint32_t raft_quorum(const struct raft *r) {
  return membership_quorum(&r->conf);
}

void raft_reset_election_timer(struct raft *r) {
  /* §5.2: randomized timeouts make split votes rare. */
  r->election_deadline_ms =
      r->now_ms + prng_range(&r->prng, r->cfg.election_timeout_ms_min,
                             r->cfg.election_timeout_ms_max);
}

/* A leader (or a follower that heard one within the minimum election
 * timeout) ignores requests to vote in a higher term: a node that merely
 * lost touch must not depose a leader the majority still follows (thesis
 * §4.2.3; Howard & Abraham 2020 show the liveness failures without it). */
bool raft_in_lease(const struct raft *r) {
  if (!r->cfg.check_quorum)
    return false;
  if (r->role == SABHA_ROLE_LEADER)
    return true;
  return r->leader != SABHA_NODE_NONE &&
         r->now_ms < r->leader_contact_ms + r->cfg.election_timeout_ms_min;
}

void raft_send(struct raft *r, struct sabha_msg *m, bool after_persist) {
  m->from = r->cfg.id;
  if (m->term == 0)
    m->term = r->term;
  /* A message the outbox cannot hold is a message lost: Raft copes. */
  (void)outbox_send(&r->out, m, after_persist);
}

void raft_become_follower(struct raft *r, uint64_t term, uint32_t leader) {
  assert(term >= r->term);
  if (term > r->term) {
    r->terms_burned += term - r->term;
    r->term = term;
    r->vote = SABHA_NODE_NONE;
  }
  if (r->role == SABHA_ROLE_LEADER)
    raft_reads_drop(r);
  /* Commands not yet in an entry are dropped: their clients time out and
   * retry with the next leader. */
  r->batch_n = 0;
  r->batch_bytes = 0;
  r->role = SABHA_ROLE_FOLLOWER;
  r->leader = leader;
  r->transferee = SABHA_NODE_NONE;
  if (leader != SABHA_NODE_NONE)
    r->leader_contact_ms = r->now_ms;
  raft_reset_election_timer(r);
}

void raft_become_leader(struct raft *r) {
  assert(r->role == SABHA_ROLE_CANDIDATE);
  r->role = SABHA_ROLE_LEADER;
  r->leader = r->cfg.id;
  r->elections_won++;
  r->transferee = SABHA_NODE_NONE;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &r->peers[i];
    r->leaving[i] = false;
    if (pr->id == SABHA_NODE_NONE)
      continue;
    progress_reset(pr, log_last_index(&r->rl.log) + 1);
    if (pr->id == r->cfg.id) {
      pr->match = replog_self_match(&r->rl);
      pr->state = PROGRESS_REPLICATE;
    }
  }
  r->heartbeat_due_ms = r->now_ms + r->cfg.heartbeat_ms;
  r->check_quorum_due_ms = r->now_ms + r->cfg.election_timeout_ms_min;
  /* §8, thesis §6.4: a no-op of the new term lets the leader learn which
   * entries are committed, and unblocks reads, as soon as it commits. */
  int rv = raft_append_local(r, SABHA_ENTRY_NOOP, NULL, 0);
  assert(rv == 0 || rv == SABHA_ENOMEM);
  (void)rv;
  r->term_start_index = log_last_index(&r->rl.log);
  raft_guard_check(r); /* elected by a majority of the others: whole */
  raft_broadcast_append(r);
  raft_maybe_commit(r); /* a single-node group may commit at once */
}

/* ---- creation ---------------------------------------------------------- */

static void raft_destroy(void *state) {
  struct raft *r = state;
  if (r == NULL)
    return;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    progress_free(&r->peers[i]);
  readq_free(&r->reads);
  free(r->batch);
  replog_free(&r->rl);
  outbox_free(&r->out);
  free(r);
}

static int raft_create(void **state, const struct sabha_config *cfg,
                       const struct sabha_persisted *persisted) {
  struct raft *r = calloc(1, sizeof *r);
  if (r == NULL)
    return SABHA_ENOMEM;
  r->cfg = *cfg;
  prng_seed(&r->prng, cfg->seed ^ ((uint64_t)cfg->id << 32));
  replog_init(&r->rl);
  outbox_init(&r->out);
  int rv = readq_init(&r->reads);
  /* Every slot's ring now, so that a change needs no allocation. */
  for (uint32_t i = 0; i < SABHA_NODES_MAX && rv == 0; i++)
    rv = progress_init(&r->peers[i], SABHA_NODE_NONE, cfg->inflight_msgs_max);
  struct sabha_membership initial;
  membership_initial(cfg, &initial);
  if (rv == 0)
    rv =
        raft_conf_set_snap(r, persisted != NULL && persisted->membership != NULL
                                  ? persisted->membership
                                  : &initial);
  if (rv == 0 && persisted != NULL) {
    r->term = persisted->hard_state.term;
    r->vote = persisted->hard_state.vote;
    r->rl.guard_off = (cfg->bugs & SABHA_BUG_NO_REPAIR_GUARD) != 0;
    r->rl.count_self_early = (cfg->bugs & SABHA_BUG_COUNT_SELF_EARLY) != 0;
    rv = replog_restore(&r->rl, persisted);
    /* Raft logs never go back in term (Log Matching keeps them so), and a
     * snapshot's term is that of its last entry: an entry after it with a
     * lower term contradicts it. That is the stale suffix a snapshot
     * install drops (§5.1 of the thesis: a follower whose entry at the
     * snapshot's index has another term discards its log) showing up
     * without its truncation; refuse it rather than start from it. */
    uint64_t term_before = r->rl.log.snap_term;
    for (uint64_t i = log_first_index(&r->rl.log);
         rv == 0 && i <= log_last_index(&r->rl.log); i++) {
      uint64_t term = log_get(&r->rl.log, i)->term;
      if (term < term_before)
        rv = SABHA_EINVAL;
      term_before = term;
    }
    if (rv == 0 && r->conf_snap.index > r->rl.log.snap_index)
      rv = SABHA_EINVAL; /* a membership from after its snapshot */
    uint64_t last = log_last_index(&r->rl.log);
    r->commit_on_disk = persisted->hard_state.commit < last
                            ? persisted->hard_state.commit
                            : last;
  }
  if (rv == 0)
    rv = raft_conf_reload(r) == 0 ? 0 : SABHA_EINVAL;
  r->removals_conf = r->conf_snap;
  r->removals_scanned = r->rl.log.snap_index;
  if (persisted != NULL)
    r->removed_notice = persisted->removed_notice_index;
  if (rv == 0)
    raft_conf_scan_self(r);
  if (rv != 0) {
    raft_destroy(r);
    return rv;
  }
  r->role = SABHA_ROLE_FOLLOWER;
  raft_reset_election_timer(r);
  *state = r;
  return 0;
}

/* ---- inputs ------------------------------------------------------------ */

static void raft_check_quorum(struct raft *r) {
  /* §6.2: a leader that has not heard from a majority within an election
   * timeout steps down, so that clients stop waiting on it. */
  uint32_t active = progress_take_active(r->peers, SABHA_NODES_MAX, r->cfg.id);
  if (active < raft_quorum(r))
    raft_become_follower(r, r->term, SABHA_NODE_NONE);
}

static int raft_tick(void *state, uint64_t now_ms) {
  struct raft *r = state;
  if (!r->clock_started) {
    /* Timers were drawn before the host's clock was known: start them now,
     * or a restarted node would campaign at once. */
    r->clock_started = true;
    r->now_ms = now_ms;
    raft_reset_election_timer(r);
  }
  if (now_ms > r->now_ms)
    r->now_ms = now_ms;
  if (r->role != SABHA_ROLE_LEADER) {
    /* Learners, joining and removed nodes never campaign (thesis §4);
     * one whose removal is not committed may (raft_may_campaign). */
    if (!raft_may_campaign(r))
      raft_reset_election_timer(r);
    else if (r->now_ms >= r->election_deadline_ms)
      raft_campaign(r, r->cfg.pre_vote, false);
    return 0;
  }
  if (r->now_ms >= r->heartbeat_due_ms) {
    r->heartbeat_due_ms = r->now_ms + r->cfg.heartbeat_ms;
    raft_broadcast_heartbeat(r, r->reads.round);
  }
  if (r->transferee != SABHA_NODE_NONE && r->now_ms >= r->transfer_deadline_ms)
    r->transferee = SABHA_NODE_NONE; /* §3.10: abort, resume service */
  if (r->cfg.check_quorum && r->now_ms >= r->check_quorum_due_ms) {
    r->check_quorum_due_ms = r->now_ms + r->cfg.election_timeout_ms_min;
    raft_check_quorum(r);
  }
  return 0;
}

static bool from_leader(uint32_t type) {
  return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT ||
         type == RAFT_MSG_SNAPSHOT;
}

/* The term rules every message goes through first. Returns false when the
 * message is to be dropped. */
static bool raft_step_term(struct raft *r, const struct sabha_msg *m) {
  if (m->term > r->term) {
    bool vote_request = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
    if (vote_request && m->context != 1 && raft_in_lease(r))
      return false;
    if (m->type == RAFT_MSG_PREVOTE)
      return true; /* a pre-vote never changes our term (thesis §9.6) */
    if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject)
      return true; /* granted for the term the pre-candidate would take */
    raft_become_follower(r, m->term,
                         from_leader(m->type) ? m->from : SABHA_NODE_NONE);
    return true;
  }
  if (m->term < r->term) {
    if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT) {
      /* Figure 2: reply with our term so a deposed leader steps down. With
       * PreVote it might never hear a higher term otherwise. */
      struct sabha_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
      resp.reject = 1;
      raft_send(r, &resp, true);
    } else if (m->type == RAFT_MSG_PREVOTE) {
      struct sabha_msg resp = {.type = RAFT_MSG_PREVOTE_RESP, .to = m->from};
      resp.reject = 1;
      raft_send(r, &resp, false);
    }
    return false;
  }
  return true;
}

void raft_guard_check(struct raft *r) {
  /* The repair guard (replog.h) may go before the commit index reaches it
   * once the log holds an entry of a term above the one the node restarted
   * in. Such an entry came from that term's leader with the log before it
   * (Log Matching, §5.3), and that leader held every entry committed in an
   * earlier term (Leader Completeness, §5.4), which is every entry this
   * node's acknowledgement could have helped commit: it acknowledged
   * nothing in a later term. */
  if (r->rl.repair_until != 0 && log_last_term(&r->rl.log) > r->rl.repair_term)
    replog_guard_lift(&r->rl);
}

static int raft_step(void *state, const struct sabha_msg *m) {
  struct raft *r = state;
  /* Senders outside the membership are heard (thesis §4.1: a new voter
   * may need the vote of a server that has not yet heard of it); what a
   * leader hears from a node without a slot it ignores. */
  if (m->to != r->cfg.id || m->from == SABHA_NODE_NONE || m->from == r->cfg.id)
    return SABHA_EINVAL;
  if (m->type == RAFT_MSG_REMOVED) {
    raft_recv_removed(r, m); /* no term of its own to adopt */
    return 0;
  }
  /* A node a committed membership removed is told so when it campaigns:
   * it was away when the change committed, and would otherwise campaign
   * for ever (membership.c). The message is still handled as any other:
   * this node may lag behind a membership that named the id again, and
   * the sender, a voter then, must keep its vote and its leader's log
   * reaching it (the notice is not believed by a node that knows better). */
  if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
    uint64_t removed_at = raft_removed_at(r, m->from);
    if (removed_at != 0) {
      struct sabha_msg notice = {
          .type = RAFT_MSG_REMOVED, .to = m->from, .index = removed_at};
      raft_send(r, &notice, false);
    }
  }
  /* Only this node's leader, in its own term, may hand leadership over
   * (thesis §3.10): the transferee has acknowledged that term before it is
   * asked. Anyone else asking, or asking in another term, would unseat a
   * healthy leader with a campaign that sets the voters' leases aside; a
   * higher term is not even adopted from such a message. */
  if (m->type == RAFT_MSG_TIMEOUT_NOW &&
      (m->term != r->term || m->from != r->leader))
    return 0;
  if (!raft_step_term(r, m))
    return 0;
  switch (m->type) {
  case RAFT_MSG_APPEND:
  case RAFT_MSG_HEARTBEAT:
  case RAFT_MSG_SNAPSHOT:
    if (r->role == SABHA_ROLE_LEADER)
      return 0; /* two leaders in one term: impossible unless broken */
    if (r->role != SABHA_ROLE_FOLLOWER || r->leader != m->from)
      raft_become_follower(r, m->term, m->from);
    r->leader_contact_ms = r->now_ms;
    raft_reset_election_timer(r);
    if (m->type == RAFT_MSG_APPEND)
      raft_recv_append(r, m);
    else if (m->type == RAFT_MSG_HEARTBEAT)
      raft_recv_heartbeat(r, m);
    else
      raft_recv_snapshot(r, m);
    raft_guard_check(r);
    return 0;
  case RAFT_MSG_APPEND_RESP:
    if (r->role == SABHA_ROLE_LEADER)
      raft_recv_append_resp(r, m);
    return 0;
  case RAFT_MSG_HEARTBEAT_RESP:
    if (r->role == SABHA_ROLE_LEADER)
      raft_recv_heartbeat_resp(r, m);
    return 0;
  case RAFT_MSG_SNAPSHOT_RESP:
    if (r->role == SABHA_ROLE_LEADER)
      raft_recv_snapshot_resp(r, m);
    return 0;
  case RAFT_MSG_PREVOTE:
  case RAFT_MSG_VOTE:
    raft_recv_vote(r, m);
    return 0;
  case RAFT_MSG_PREVOTE_RESP:
  case RAFT_MSG_VOTE_RESP:
    raft_recv_vote_resp(r, m);
    return 0;
  case RAFT_MSG_TIMEOUT_NOW:
    raft_recv_timeout_now(r, m);
    return 0;
  default:
    return SABHA_EINVAL;
  }
}

static int raft_propose(void *state, const void *data, size_t size_bytes) {
  struct raft *r = state;
  if (r->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (r->transferee != SABHA_NODE_NONE)
    return SABHA_ETRANSFER;
  if (size_bytes > r->cfg.entry_size_bytes_max)
    return SABHA_ETOOBIG;
  if (size_bytes > UINT32_MAX - 4)
    return SABHA_ETOOBIG;
  size_t framed = 4 + size_bytes;
  if (r->batch_n > 0 &&
      (r->batch_n >= r->cfg.commands_per_slot_max ||
       r->batch_bytes + framed > r->cfg.bytes_per_slot_max ||
       r->batch_bytes + framed > r->cfg.entry_size_bytes_max)) {
    int rv = raft_flush_batch(r); /* this entry is full: start the next */
    if (rv != 0)
      return rv;
  }
  /* The batch is one entry: a command that joins it adds none. */
  if (r->batch_n == 0 && log_last_index(&r->rl.log) - r->rl.commit >=
                             r->cfg.uncommitted_entries_max)
    return SABHA_EBUSY;
  if (r->batch_bytes + framed > r->batch_cap) {
    size_t cap = r->batch_cap ? r->batch_cap : 4096;
    while (cap < r->batch_bytes + framed)
      cap *= 2;
    uint8_t *grown = realloc(r->batch, cap);
    if (grown == NULL)
      return SABHA_ENOMEM;
    r->batch = grown;
    r->batch_cap = cap;
  }
  uint8_t *out = r->batch + r->batch_bytes;
  le_put_u32(out, (uint32_t)size_bytes);
  if (size_bytes > 0)
    memcpy(out + 4, data, size_bytes);
  r->batch_bytes += framed;
  r->batch_n++;
  /* Sending waits for ready(): every proposal that arrives before the host
   * collects the batch travels in the same entry and the same append
   * (§10.2.1 batching). */
  return 0;
}

static int raft_read_index_op(void *state, uint64_t request_id) {
  return raft_read_index(state, request_id);
}

/* ---- the ready/advance cycle ------------------------------------------- */

static bool raft_has_ready(const void *state) {
  const struct raft *r = state;
  return !outbox_empty(&r->out) || r->batch_n > 0 ||
         replog_has_ready(&r->rl, r->term, r->vote);
}

static void raft_ready(void *state, struct sabha_ready *rd) {
  struct raft *r = state;
  /* Proposals gathered since the last batch: one entry, one append per
   * peer. Out of memory, the commands are lost, as if the leader had
   * crashed; clients retry. */
  if (r->role == SABHA_ROLE_LEADER)
    (void)raft_flush_batch(r);
  if (r->role == SABHA_ROLE_LEADER &&
      r->rl.unstable_from <= log_last_index(&r->rl.log))
    raft_broadcast_append(r);
  replog_fill_ready(&r->rl, r->term, r->vote, &r->out, rd);
  readq_sent(&r->reads);
  if (rd->has_snapshot)
    rd->snapshot_membership = &r->conf_snap;
}

/* The leader counts its own copy only once it is durable. */
static void raft_count_self(struct raft *r) {
  if (r->role == SABHA_ROLE_LEADER && raft_maybe_commit(r) &&
      r->role == SABHA_ROLE_LEADER) /* the commit may make it step down */
    raft_broadcast_append(r);
}

static void raft_advance(void *state, const struct sabha_ready *rd) {
  struct raft *r = state;
  replog_advance(&r->rl, rd);
  outbox_reset(&r->out);
  /* Its own copy may count already (nothing needed writing), or at once
   * under the deliberate bug (replog_advance). */
  raft_count_self(r);
}

static void raft_persisted(void *state, uint64_t seq) {
  struct raft *r = state;
  (void)replog_persisted(&r->rl, seq);
  raft_count_self(r);
}

static void raft_status(const void *state, struct sabha_status *st) {
  const struct raft *r = state;
  st->id = r->cfg.id;
  st->role = r->role;
  st->term = r->term;
  st->vote = r->vote;
  st->leader = r->leader;
  st->commit = r->rl.commit;
  st->applied = r->rl.applied;
  st->first_index = log_first_index(&r->rl.log);
  st->last_index = log_last_index(&r->rl.log);
  st->snapshot_index = r->rl.log.snap_index;
  st->elections_started = r->elections_started;
  st->campaigns_started = r->campaigns_started;
  st->elections_won = r->elections_won;
  st->ballots_burned = r->terms_burned;
  st->repair_until = replog_guard_until(&r->rl);
  st->voter = raft_is_voter(r, r->cfg.id) && !raft_removed(r);
  st->removed = raft_removed(r);
  st->config_index = r->conf.index;
  st->removed_notice_index = raft_notice_holds(r) ? r->removed_notice : 0;
}

static int raft_transfer_leadership(void *state, uint32_t to) {
  struct raft *r = state;
  if (r->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  int slot = raft_slot(r, to);
  if (slot < 0 || to == r->cfg.id || !raft_is_voter(r, to))
    return SABHA_EINVAL;
  r->transferee = to;
  r->transfer_deadline_ms = r->now_ms + r->cfg.election_timeout_ms_min;
  struct progress *pr = &r->peers[slot];
  if (pr->match == log_last_index(&r->rl.log))
    raft_transfer_check(r, pr);
  else
    raft_send_append(r, pr, true);
  return 0;
}

static int raft_compact_op(void *state, uint64_t index, const void *data,
                           size_t size_bytes) {
  struct raft *r = state;
  /* The membership as of `index` goes with the snapshot. */
  struct sabha_membership m = r->conf_snap;
  if (index > r->rl.log.snap_index && index <= log_last_index(&r->rl.log) &&
      raft_membership_at(r, index, &m) != 0)
    return SABHA_EINVAL;
  int rv = replog_compact(&r->rl, index, data, size_bytes);
  if (rv == 0)
    rv = raft_conf_set_snap(r, &m);
  return rv;
}

static int raft_entry(const void *state, uint64_t index,
                      struct sabha_entry *out) {
  const struct raft *r = state;
  return replog_entry(&r->rl, index, out);
}

/* ---- how messages read (sabha_msg_describe) ----------------------------- */

static void raft_describe(struct describe *t, const struct sabha_msg *m) {
  static const char *const names[] = {
      [RAFT_MSG_APPEND] = "append",
      [RAFT_MSG_APPEND_RESP] = "append-resp",
      [RAFT_MSG_HEARTBEAT] = "heartbeat",
      [RAFT_MSG_HEARTBEAT_RESP] = "heartbeat-resp",
      [RAFT_MSG_PREVOTE] = "prevote",
      [RAFT_MSG_PREVOTE_RESP] = "prevote-resp",
      [RAFT_MSG_VOTE] = "vote",
      [RAFT_MSG_VOTE_RESP] = "vote-resp",
      [RAFT_MSG_SNAPSHOT] = "snapshot",
      [RAFT_MSG_SNAPSHOT_RESP] = "snapshot-resp",
      [RAFT_MSG_TIMEOUT_NOW] = "timeout-now",
      [RAFT_MSG_REMOVED] = "removed",
  };
  if (!describe_name(t, names, sizeof names / sizeof names[0], m->type))
    return;
  describe_term(t, "term", m->term);
  switch (m->type) {
  case RAFT_MSG_APPEND:
    describe_at(t, "prev", m->index, m->log_term,
                DESCRIBE_INDEX | DESCRIBE_LOG_TERM);
    describe_entries(t, "entries", m);
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    break;
  case RAFT_MSG_APPEND_RESP:
    describe_append_resp(t, m);
    break;
  case RAFT_MSG_HEARTBEAT:
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    if (m->context != 0)
      describe_u64(t, "ctx", m->context, DESCRIBE_CONTEXT);
    break;
  case RAFT_MSG_HEARTBEAT_RESP:
    if (m->context != 0)
      describe_u64(t, "ctx", m->context, DESCRIBE_CONTEXT);
    break;
  case RAFT_MSG_PREVOTE:
  case RAFT_MSG_VOTE:
    describe_at(t, "last", m->index, m->log_term,
                DESCRIBE_INDEX | DESCRIBE_LOG_TERM);
    if (m->context == 1) {
      describe_text(t, " forced"); /* by TimeoutNow: ignores leases */
      t->shown |= DESCRIBE_CONTEXT;
    }
    break;
  case RAFT_MSG_PREVOTE_RESP:
  case RAFT_MSG_VOTE_RESP:
    describe_verdict(t, m, "granted");
    break;
  case RAFT_MSG_SNAPSHOT:
    describe_snapshot_chunk(t, m);
    if (m->n_entries == 1 && m->entries[0].type == SABHA_ENTRY_CONFIG) {
      /* The membership it carries: which entry set it. */
      describe_text(t, " members=%llu",
                    (unsigned long long)m->entries[0].index);
      t->shown |= DESCRIBE_ENTRIES;
    }
    break;
  case RAFT_MSG_SNAPSHOT_RESP:
    describe_snapshot_resp(t, m);
    break;
  case RAFT_MSG_REMOVED:
    describe_u64(t, "config", m->index, DESCRIBE_INDEX);
    break;
  default: /* TIMEOUT_NOW: the term says it all */
    break;
  }
}

/* sabha_engine_set_timing: the timers read cfg when they are armed. */
static struct sabha_config *raft_config(void *state) {
  struct raft *x = state;
  return &x->cfg;
}

const struct engine_ops raft_engine_ops = {
    .name = "raft",
    .create = raft_create,
    .destroy = raft_destroy,
    .tick = raft_tick,
    .step = raft_step,
    .propose = raft_propose,
    .read_index = raft_read_index_op,
    .has_ready = raft_has_ready,
    .ready = raft_ready,
    .advance = raft_advance,
    .persisted = raft_persisted,
    .status = raft_status,
    .transfer_leadership = raft_transfer_leadership,
    .compact = raft_compact_op,
    .entry = raft_entry,
    .change = raft_change,
    .members = raft_members,
    .membership_at = raft_membership_at_op,
    .config = raft_config,
    .describe = raft_describe,
};
