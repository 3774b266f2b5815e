/* Multi-Paxos: creation, time, ballot rules, dispatch and the ready/advance
 * cycle (see mp.h for the protocol and where each part lives).
 *
 * The ballot rules play the part of Raft's term rules: a message carrying a
 * higher ballot makes the receiver promise it (durably, with its owner) and
 * follow, except a prepare or probe that arrives while the receiver still
 * hears a live leader (the lease: a node that merely lost touch must not
 * depose a leader the majority follows). A message with a lower ballot is
 * answered with a refusal carrying the promised one, so stale leaders and
 * candidates learn and step aside. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "core/engine_impl.h"
#include "paxos/mp.h"

void mp_reset_election_timer(struct mp *p) {
  /* Randomized, so that candidates pre-empted in phase 1 back off by
   * different amounts and one of them gets through. */
  p->election_deadline_ms =
      p->now_ms + prng_range(&p->prng, p->cfg.election_timeout_ms_min,
                             p->cfg.election_timeout_ms_max);
}

bool mp_in_lease(const struct mp *p) {
  if (!p->cfg.check_quorum)
    return false;
  if (p->role == SABHA_ROLE_LEADER)
    return true;
  return p->leader != SABHA_NODE_NONE &&
         p->now_ms < p->leader_contact_ms + p->cfg.election_timeout_ms_min;
}

/* True when `m` keeps the engine's own message limits, the ones
 * codec_check_config() holds against the wire's: at most
 * entries_per_msg_max entries of at most bytes_per_msg_max bytes in all
 * (a single entry goes whatever its size) and a snapshot chunk of at most
 * snapshot_chunk_bytes. A message beyond them could be refused by the
 * transport on every try, and the protocol would wait for it forever. */
static bool within_msg_limits(const struct mp *p, const struct sabha_msg *m) {
  uint32_t entries_max = m->type == MP_MSG_PROMISE ? mp_promise_entries_max(p)
                                                   : p->cfg.entries_per_msg_max;
  if (m->n_entries > entries_max ||
      m->snap_size_bytes > p->cfg.snapshot_chunk_bytes)
    return false;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < m->n_entries; i++)
    bytes += m->entries[i].size_bytes;
  return m->n_entries <= 1 || bytes <= p->cfg.bytes_per_msg_max;
}

void mp_send(struct mp *p, struct sabha_msg *m, bool after_persist) {
  assert(within_msg_limits(p, m));
  m->from = p->cfg.id;
  if (m->term == 0)
    m->term = p->promised;
  (void)outbox_send(&p->out, m, after_persist);
}

/* The highest slot from `from` on such that every slot up to it holds a
 * value accepted under the promised ballot. */
uint64_t mp_scan_accepted(const struct mp *p, uint64_t from) {
  uint64_t upto = from;
  const struct log *l = &p->rl.log;
  while (upto < log_last_index(l)) {
    const struct sabha_entry *e = log_get(l, upto + 1);
    if (e == NULL || e->term != p->promised)
      break;
    upto++;
  }
  return upto;
}

void mp_become_follower(struct mp *p, uint32_t leader) {
  if (p->role == SABHA_ROLE_LEADER)
    readq_drop(&p->reads);
  /* Commands not yet in a slot are dropped: their clients time out and
   * retry with the next leader. */
  p->batch_n = 0;
  p->batch_bytes = 0;
  p->sealed_n = 0;
  if (p->role == SABHA_ROLE_CANDIDATE)
    mp_p1_clear(p);
  p->role = SABHA_ROLE_FOLLOWER;
  p->leader = leader;
  p->transferee = SABHA_NODE_NONE;
  if (leader != SABHA_NODE_NONE)
    p->leader_contact_ms = p->now_ms;
  mp_reset_election_timer(p);
}

void mp_adopt_ballot(struct mp *p, uint64_t ballot, uint32_t leader) {
  assert(ballot > p->promised);
  p->ballots_burned++;
  p->promised = ballot;
  p->vote = mp_ballot_node(ballot);
  /* Nothing is accepted under the new ballot yet. */
  p->accepted_upto = p->rl.commit;
  mp_become_follower(p, leader);
}

/* ---- creation ---------------------------------------------------------- */

static void mp_destroy(void *state) {
  struct mp *p = state;
  if (p == NULL)
    return;
  mp_p1_clear(p);
  free(p->p1);
  free(p->batch);
  for (uint32_t i = 0; i < MP_SEALED_MAX; i++)
    free(p->sealed[i].data);
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    progress_free(&p->peers[i]);
  readq_free(&p->reads);
  replog_free(&p->rl);
  outbox_free(&p->out);
  free(p);
}

static int mp_create(void **state, const struct sabha_config *cfg,
                     const struct sabha_persisted *persisted) {
  if (cfg->n_voters > 255)
    return SABHA_EINVAL;
  for (uint32_t i = 0; i < cfg->n_voters; i++)
    if (cfg->voters[i] > 255)
      return SABHA_EINVAL; /* node ids live in the ballot's low byte */
  struct mp *p = calloc(1, sizeof *p);
  if (p == NULL)
    return SABHA_ENOMEM;
  p->cfg = *cfg;
  prng_seed(&p->prng, cfg->seed ^ ((uint64_t)cfg->id << 32) ^ 0x9a05);
  replog_init(&p->rl);
  outbox_init(&p->out);
  int rv = readq_init(&p->reads);
  /* Every slot's ring now, so that a change needs no allocation. */
  for (uint32_t i = 0; i < SABHA_NODES_MAX && rv == 0; i++)
    rv = progress_init(&p->peers[i], SABHA_NODE_NONE, cfg->inflight_msgs_max);
  if (rv == 0 && persisted != NULL) {
    p->promised = persisted->hard_state.term;
    p->vote = persisted->hard_state.vote;
    p->rl.guard_off = (cfg->bugs & SABHA_BUG_NO_REPAIR_GUARD) != 0;
    p->rl.count_self_early = (cfg->bugs & SABHA_BUG_COUNT_SELF_EARLY) != 0;
    rv = replog_restore(&p->rl, persisted);
    /* Every slot up to the durable commit holds its chosen value (replog.c
     * writes no further), so it is known chosen again: above all, the
     * memberships chosen there, without which a restarted group could be
     * left asking members that were removed long ago. */
    uint64_t c = persisted->hard_state.commit;
    if (c > log_last_index(&p->rl.log))
      c = log_last_index(&p->rl.log);
    if (rv == 0 && c > p->rl.commit)
      p->rl.commit = c;
  }
  /* The membership in force after the snapshot (or the configured one),
   * then every change the chosen log holds. */
  struct sabha_membership initial;
  membership_initial(cfg, &initial);
  const struct sabha_membership *snap =
      persisted != NULL && persisted->membership != NULL ? persisted->membership
                                                         : &initial;
  if (rv == 0 && !membership_entries_valid(p->rl.log.entries + p->rl.log.head,
                                           (uint32_t)p->rl.log.n))
    rv = SABHA_EINVAL;
  if (rv == 0)
    mp_conf_note(p, p->rl.log.entries + p->rl.log.head, (uint32_t)p->rl.log.n);
  if (rv == 0)
    rv = mp_conf_init(p, snap) == 0 ? 0 : SABHA_EINVAL;
  if (persisted != NULL)
    p->removed_notice = persisted->removed_notice_index;
  if (rv != 0) {
    mp_destroy(p);
    return rv;
  }
  p->accepted_upto = mp_scan_accepted(p, p->rl.commit);
  p->role = SABHA_ROLE_FOLLOWER;
  mp_reset_election_timer(p);
  *state = p;
  return 0;
}

/* ---- inputs ------------------------------------------------------------ */

/* A non-voter that has heard no leader for an election timeout says so to
 * the voters it knows: a PROBE at the ballot it has, which asks for no
 * promise (none is given for a ballot the acceptor has passed or holds)
 * and costs each a refusal. It matters to one node: a voter restarted with
 * a commit index that lags the slot its promotion took effect at takes
 * itself for a learner and would wait, silent, for a leader that, if the
 * group removed it meanwhile, never comes; a member that hears the probe
 * tells it of its removal (membership.c). */
static void nudge_members(struct mp *p) {
  if (mp_removed(p))
    return;
  const struct sabha_membership *m = mp_conf_latest(p);
  for (uint32_t i = 0; i < m->n; i++) {
    if (m->members[i].id == p->cfg.id ||
        m->members[i].role != SABHA_MEMBER_VOTER)
      continue;
    struct sabha_msg probe = {.type = MP_MSG_PROBE, .to = m->members[i].id};
    mp_send(p, &probe, false);
  }
}

static void mp_check_quorum(struct mp *p) {
  uint32_t active = progress_take_active(p->peers, SABHA_NODES_MAX, p->cfg.id);
  if (active < membership_quorum(mp_conf_at(p, p->rl.commit + 1)))
    mp_become_follower(p, SABHA_NODE_NONE);
}

static int mp_tick(void *state, uint64_t now_ms) {
  struct mp *p = state;
  if (!p->clock_started) {
    p->clock_started = true;
    p->now_ms = now_ms;
    mp_reset_election_timer(p);
  }
  if (now_ms > p->now_ms)
    p->now_ms = now_ms;
  if (p->role != SABHA_ROLE_LEADER) {
    if (!mp_is_voter(p) && p->role == SABHA_ROLE_FOLLOWER) {
      /* Learners, joining and removed nodes never campaign. */
      if (p->now_ms >= p->election_deadline_ms) {
        nudge_members(p);
        mp_reset_election_timer(p);
      }
    } else if (!mp_is_voter(p))
      mp_become_follower(p, SABHA_NODE_NONE);
    else if (p->now_ms >= p->election_deadline_ms)
      mp_campaign(p, p->cfg.pre_vote, false);
    else if (p->role == SABHA_ROLE_CANDIDATE)
      mp_p1_resend(p);
    return 0;
  }
  if (p->now_ms >= p->heartbeat_due_ms) {
    p->heartbeat_due_ms = p->now_ms + p->cfg.heartbeat_ms;
    mp_broadcast_heartbeat(p, p->reads.round);
  }
  if (p->transferee != SABHA_NODE_NONE && p->now_ms >= p->transfer_deadline_ms)
    p->transferee = SABHA_NODE_NONE;
  if (p->cfg.check_quorum && p->now_ms >= p->check_quorum_due_ms) {
    p->check_quorum_due_ms = p->now_ms + p->cfg.election_timeout_ms_min;
    mp_check_quorum(p);
  }
  return 0;
}

static bool from_leader(uint32_t type) {
  return type == MP_MSG_ACCEPT || type == MP_MSG_HEARTBEAT ||
         type == MP_MSG_SNAPSHOT;
}

static void refuse_lower(struct mp *p, const struct sabha_msg *m) {
  uint32_t type = 0;
  switch (m->type) {
  case MP_MSG_ACCEPT:
  case MP_MSG_HEARTBEAT:
    type = MP_MSG_ACCEPTED;
    break;
  case MP_MSG_PREPARE:
    type = MP_MSG_PROMISE;
    break;
  case MP_MSG_PROBE:
    type = MP_MSG_PROBE_RESP;
    break;
  default:
    return;
  }
  struct sabha_msg resp = {.type = type, .to = m->from, .reject = 1};
  mp_send(p, &resp, false);
}

/* Returns false when the message is to be dropped. */
static bool mp_step_ballot(struct mp *p, const struct sabha_msg *m) {
  if (m->term > p->promised) {
    bool asks = m->type == MP_MSG_PREPARE || m->type == MP_MSG_PROBE;
    if (asks && m->context != 1 && mp_in_lease(p))
      return false;
    if (asks)
      return true; /* the handlers decide what to promise */
    if (m->type == MP_MSG_PROBE_RESP && !m->reject)
      return true;
    mp_adopt_ballot(p, m->term,
                    from_leader(m->type) ? m->from : SABHA_NODE_NONE);
    return true;
  }
  if (m->term < p->promised) {
    /* The deliberately broken acceptor: phase 2 traffic of a lower ballot
     * is taken as if no higher one had been promised. */
    if ((m->type == MP_MSG_ACCEPT || m->type == MP_MSG_HEARTBEAT) &&
        (p->cfg.bugs & SABHA_BUG_ACCEPT_LOWER_BALLOT))
      return true;
    refuse_lower(p, m);
    return false;
  }
  return true;
}

static int mp_step(void *state, const struct sabha_msg *m) {
  struct mp *p = state;
  /* Any node may be heard (a new member, one not yet known here); what a
   * leader or candidate hears from a node it keeps no slot for it ignores.
   * Ids live in the ballot's low byte. */
  if (m->to != p->cfg.id || m->from == SABHA_NODE_NONE || m->from > 255 ||
      m->from == p->cfg.id)
    return SABHA_EINVAL;
  if (m->type == MP_MSG_REMOVED) {
    mp_recv_removed(p, m); /* no ballot of its own to adopt */
    return 0;
  }
  /* A node whose removal is in force is told so when it probes or
   * prepares: it was away when the change was chosen, and would otherwise
   * probe for ever (membership.c). The message is still handled as any
   * other: this node may lag behind a membership that named the id again,
   * and the sender, a voter then, must keep this acceptor's promise and
   * its leader's accepts reaching it (the notice is not believed by a
   * node that knows better). */
  if (m->type == MP_MSG_PROBE || m->type == MP_MSG_PREPARE) {
    uint64_t removed_at = mp_removed_at(p, m->from);
    if (removed_at != 0) {
      struct sabha_msg notice = {
          .type = MP_MSG_REMOVED, .to = m->from, .index = removed_at};
      mp_send(p, &notice, false);
    }
  }
  /* Only the leader this acceptor follows, in its own ballot, may hand
   * leadership over: the transferee has accepted in that ballot before it
   * is asked. Anyone else asking, or for another ballot, would unseat a
   * healthy leader with a campaign that skips the probe round; a higher
   * ballot is not even adopted from such a message. */
  if (m->type == MP_MSG_TIMEOUT_NOW &&
      (m->term != p->promised || m->from != p->leader))
    return 0;
  if (!mp_step_ballot(p, m))
    return 0;
  switch (m->type) {
  case MP_MSG_ACCEPT:
  case MP_MSG_HEARTBEAT:
  case MP_MSG_SNAPSHOT:
    if (m->term < p->promised) { /* only with the deliberate bug */
      if (m->type == MP_MSG_ACCEPT)
        mp_recv_accept(p, m);
      else
        mp_recv_heartbeat(p, m);
      return 0;
    }
    if (m->term == p->promised && p->role == SABHA_ROLE_LEADER)
      return 0; /* ballots are disjoint: only a broken peer sends this */
    if (m->type == MP_MSG_SNAPSHOT && m->term == p->promised &&
        mp_ballot_node(m->term) == p->cfg.id) {
      /* Our own ballot, which no leader but us can send: a removed node
       * hands over the chosen prefix this candidate lacks (phase1.c). It
       * follows nobody for it. The campaign goes on while chunks arrive;
       * once the snapshot is whole it ends, and the next starts after it. */
      bool whole = replog_chunk_fits(&p->rl, m) &&
                   m->snap_offset + m->snap_size_bytes == m->snap_total_bytes &&
                   m->snap.index > p->rl.commit;
      if (whole && p->role != SABHA_ROLE_FOLLOWER)
        mp_become_follower(p, SABHA_NODE_NONE);
      mp_recv_snapshot(p, m);
      return 0;
    }
    if (m->term == p->promised &&
        (p->role != SABHA_ROLE_FOLLOWER || p->leader != m->from))
      mp_become_follower(p, m->from);
    p->leader_contact_ms = p->now_ms;
    mp_reset_election_timer(p);
    if (m->type == MP_MSG_ACCEPT)
      mp_recv_accept(p, m);
    else if (m->type == MP_MSG_HEARTBEAT)
      mp_recv_heartbeat(p, m);
    else
      mp_recv_snapshot(p, m);
    return 0;
  case MP_MSG_ACCEPTED:
    if (p->role == SABHA_ROLE_LEADER)
      mp_recv_accepted(p, m);
    return 0;
  case MP_MSG_HEARTBEAT_RESP:
    if (p->role == SABHA_ROLE_LEADER)
      mp_recv_heartbeat_resp(p, m);
    return 0;
  case MP_MSG_SNAPSHOT_RESP:
    /* A removed node goes on with a snapshot it hands over (phase1.c). */
    if (p->role == SABHA_ROLE_LEADER || mp_removed(p))
      mp_recv_snapshot_resp(p, m);
    return 0;
  case MP_MSG_PROBE:
    mp_recv_probe(p, m);
    return 0;
  case MP_MSG_PROBE_RESP:
    mp_recv_probe_resp(p, m);
    return 0;
  case MP_MSG_PREPARE:
    mp_recv_prepare(p, m);
    return 0;
  case MP_MSG_PROMISE:
    mp_recv_promise(p, m);
    return 0;
  case MP_MSG_TIMEOUT_NOW:
    if (p->role != SABHA_ROLE_LEADER && mp_is_voter(p))
      mp_campaign(p, false, true);
    return 0;
  default:
    return SABHA_EINVAL;
  }
}

/* The leader runs at most alpha slots ahead of the chosen prefix, so that
 * it knows the membership of every slot it proposes (membership.c). */
static bool window_open(const struct mp *p) {
  return log_last_index(&p->rl.log) + 1 <= p->rl.commit + p->cfg.alpha;
}

/* Appends `n` framed commands in `data` as the next slot. */
static int append_slot(struct mp *p, const uint8_t *data, size_t bytes,
                       uint32_t n) {
  struct sabha_entry e = {
      .index = log_last_index(&p->rl.log) + 1,
      .term = p->promised,
      .type = n == 1 ? SABHA_ENTRY_COMMAND : SABHA_ENTRY_BATCH,
      /* A lone command goes in plain, without its frame. */
      .size_bytes = (uint32_t)(n == 1 ? bytes - 4 : bytes),
      .data = n == 1 ? data + 4 : data,
  };
  return log_append(&p->rl.log, &e);
}

int mp_flush_batch(struct mp *p) {
  while (p->sealed_n > 0) {
    if (!window_open(p))
      return SABHA_EBUSY; /* they wait, and the batch behind them */
    struct mp_sealed *z = &p->sealed[p->sealed_head];
    int rv = append_slot(p, z->data, z->bytes, z->n);
    p->sealed_head = (p->sealed_head + 1) % MP_SEALED_MAX;
    p->sealed_n--;
    if (rv != 0)
      return rv;
  }
  if (p->batch_n == 0)
    return 0;
  if (!window_open(p))
    return SABHA_EBUSY; /* the commands wait in the batch */
  int rv = append_slot(p, p->batch, p->batch_bytes, p->batch_n);
  p->batch_n = 0;
  p->batch_bytes = 0;
  return rv;
}

/* The window is shut and the batch is a full slot: seal it, to take a slot
 * once the window opens, and start an empty batch. The sealed slot and
 * the batch swap buffers, so that none is allocated in the steady state.
 * SABHA_EBUSY when alpha slots are sealed already. */
static int seal_batch(struct mp *p) {
  uint32_t max = p->cfg.alpha < MP_SEALED_MAX ? p->cfg.alpha : MP_SEALED_MAX;
  if (p->sealed_n >= max)
    return SABHA_EBUSY;
  struct mp_sealed *z =
      &p->sealed[(p->sealed_head + p->sealed_n) % MP_SEALED_MAX];
  uint8_t *spare = z->data;
  size_t spare_cap = z->cap;
  z->data = p->batch;
  z->cap = p->batch_cap;
  z->bytes = p->batch_bytes;
  z->n = p->batch_n;
  p->sealed_n++;
  p->batch = spare;
  p->batch_cap = spare_cap;
  p->batch_bytes = 0;
  p->batch_n = 0;
  return 0;
}

static int mp_propose(void *state, const void *data, size_t size_bytes) {
  struct mp *p = state;
  if (p->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (p->transferee != SABHA_NODE_NONE)
    return SABHA_ETRANSFER;
  if (size_bytes > p->cfg.entry_size_bytes_max || size_bytes > UINT32_MAX - 4)
    return SABHA_ETOOBIG;
  size_t framed = 4 + size_bytes;
  if (p->batch_n > 0 && (p->batch_n >= p->cfg.commands_per_slot_max ||
                         p->batch_bytes + framed > p->cfg.bytes_per_slot_max)) {
    int rv = mp_flush_batch(p); /* this slot is full: start the next */
    if (rv == SABHA_EBUSY)
      rv = seal_batch(p);
    if (rv != 0)
      return rv;
  }
  uint64_t slots = log_last_index(&p->rl.log) - p->rl.commit + 1 + p->sealed_n;
  if (slots > p->cfg.uncommitted_entries_max)
    return SABHA_EBUSY;
  if (p->batch_bytes + framed > p->batch_cap) {
    size_t cap = p->batch_cap ? p->batch_cap : 4096;
    while (cap < p->batch_bytes + framed)
      cap *= 2;
    uint8_t *grown = realloc(p->batch, cap);
    if (grown == NULL)
      return SABHA_ENOMEM;
    p->batch = grown;
    p->batch_cap = cap;
  }
  uint8_t *out = p->batch + p->batch_bytes;
  le_put_u32(out, (uint32_t)size_bytes);
  if (size_bytes > 0)
    memcpy(out + 4, data, size_bytes);
  p->batch_bytes += framed;
  p->batch_n++;
  /* The slot goes out at the next ready(), with every command before it. */
  return 0;
}

static int mp_read_index_op(void *state, uint64_t request_id) {
  return mp_read_index(state, request_id);
}

/* ---- the ready/advance cycle ------------------------------------------- */

static bool mp_has_ready(const void *state) {
  const struct mp *p = state;
  return !outbox_empty(&p->out) ||
         ((p->batch_n > 0 || p->sealed_n > 0) && window_open(p)) ||
         replog_has_ready(&p->rl, p->promised, p->vote);
}

static void mp_ready(void *state, struct sabha_ready *rd) {
  struct mp *p = state;
  if (p->role == SABHA_ROLE_LEADER && window_open(p))
    (void)mp_flush_batch(p); /* out of memory: the commands are lost, as
                                 if the leader had crashed; clients retry */
  if (p->role == SABHA_ROLE_LEADER &&
      p->rl.unstable_from <= log_last_index(&p->rl.log))
    mp_broadcast_accept(p);
  replog_fill_ready(&p->rl, p->promised, p->vote, &p->out, rd);
  readq_sent(&p->reads);
  if (rd->has_snapshot)
    rd->snapshot_membership = &p->conf_snap;
}

/* The leader's own acceptance counts once it is durable. */
static void mp_count_self(struct mp *p) {
  if (p->role == SABHA_ROLE_LEADER && mp_maybe_commit(p) &&
      p->role == SABHA_ROLE_LEADER) /* the commit may make it step down */
    mp_broadcast_accept(p);
}

static void mp_advance(void *state, const struct sabha_ready *rd) {
  struct mp *p = state;
  replog_advance(&p->rl, rd);
  outbox_reset(&p->out);
  /* Its own copy may count already (nothing needed writing), or at once
   * under the deliberate bug (replog_advance). */
  mp_count_self(p);
}

static void mp_persisted(void *state, uint64_t seq) {
  struct mp *p = state;
  (void)replog_persisted(&p->rl, seq);
  mp_count_self(p);
}

static void mp_status(const void *state, struct sabha_status *st) {
  const struct mp *p = state;
  st->id = p->cfg.id;
  st->role = p->role;
  st->term = p->promised;
  st->vote = p->vote;
  st->leader = p->leader;
  st->commit = p->rl.commit;
  st->applied = p->rl.applied;
  st->first_index = log_first_index(&p->rl.log);
  st->last_index = log_last_index(&p->rl.log);
  st->snapshot_index = p->rl.log.snap_index;
  st->elections_started = p->elections_started;
  st->campaigns_started = p->campaigns_started;
  st->elections_won = p->elections_won;
  st->ballots_burned = p->ballots_burned;
  st->repair_until = replog_guard_until(&p->rl);
  st->voter = mp_is_voter(p);
  st->removed = mp_removed(p);
  st->config_index = mp_conf_at(p, p->rl.commit + 1)->index;
  st->removed_notice_index = mp_notice_holds(p) ? p->removed_notice : 0;
}

static int mp_transfer_leadership(void *state, uint32_t to) {
  struct mp *p = state;
  if (p->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  int slot = mp_slot(p, to);
  if (slot < 0 || to == p->cfg.id ||
      !membership_is_voter(mp_conf_at(p, p->rl.commit + 1), to))
    return SABHA_EINVAL;
  p->transferee = to;
  p->transfer_deadline_ms = p->now_ms + p->cfg.election_timeout_ms_min;
  struct progress *pr = &p->peers[slot];
  if (pr->match == log_last_index(&p->rl.log))
    mp_transfer_check(p, pr);
  else
    mp_send_accept(p, pr, true);
  return 0;
}

static int mp_compact_op(void *state, uint64_t index, const void *data,
                         size_t size_bytes) {
  struct mp *p = state;
  /* Not while a change waits to take effect: the snapshot carries one
   * membership, the one in force after it. */
  struct sabha_membership m = p->conf_snap;
  if (index > p->rl.log.snap_index) {
    int rv = mp_compact_check(p, index, &m);
    if (rv != 0)
      return rv;
  }
  int rv = replog_compact(&p->rl, index, data, size_bytes);
  if (rv == 0)
    rv = mp_conf_set_snap(p, &m);
  return rv;
}

static int mp_entry(const void *state, uint64_t index,
                    struct sabha_entry *out) {
  const struct mp *p = state;
  return replog_entry(&p->rl, index, out);
}

/* ---- how messages read (sabha_msg_describe) ----------------------------- */

static void mp_describe(struct describe *t, const struct sabha_msg *m) {
  static const char *const names[] = {
      [MP_MSG_PROBE] = "probe",
      [MP_MSG_PROBE_RESP] = "probe-resp",
      [MP_MSG_PREPARE] = "prepare",
      [MP_MSG_PROMISE] = "promise",
      [MP_MSG_ACCEPT] = "accept",
      [MP_MSG_ACCEPTED] = "accepted",
      [MP_MSG_HEARTBEAT] = "heartbeat",
      [MP_MSG_HEARTBEAT_RESP] = "heartbeat-resp",
      [MP_MSG_SNAPSHOT] = "snapshot",
      [MP_MSG_SNAPSHOT_RESP] = "snapshot-resp",
      [MP_MSG_TIMEOUT_NOW] = "timeout-now",
      [MP_MSG_REMOVED] = "removed",
  };
  t->ballots = true;
  if (!describe_name(t, names, sizeof names / sizeof names[0], m->type))
    return;
  describe_term(t, "ballot", m->term);
  switch (m->type) {
  case MP_MSG_PROBE:
  case MP_MSG_PREPARE:
    describe_u64(t, "from", m->index, DESCRIBE_INDEX); /* first slot asked */
    if (m->context == 1) {
      describe_text(t, " forced"); /* a transfer: ignores leases */
      t->shown |= DESCRIBE_CONTEXT;
    }
    break;
  case MP_MSG_PROBE_RESP:
    describe_verdict(t, m, "granted");
    break;
  case MP_MSG_PROMISE:
    /* Whatever a promise carries is shown as it is: how many slots one
     * promise holds is phase1.c's business, not this line's. */
    if (m->reject) {
      describe_verdict(t, m, "ok");
      break;
    }
    /* A chunk: from the slot asked for up to the one it covers (phase1.c),
     * and whether more follow. */
    describe_u64(t, "from", m->index, DESCRIBE_INDEX);
    if (m->hint_index >= m->index)
      describe_u64(t, "to", m->hint_index, DESCRIBE_HINT);
    else
      t->shown |= DESCRIBE_HINT;
    describe_entries(t, "accepted", m);
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    if (m->context == MP_BEHIND) {
      describe_text(t, " behind"); /* compacted past the slots asked for */
      t->shown |= DESCRIBE_CONTEXT;
    } else if (m->context == MP_MORE) {
      describe_text(t, " more");
      t->shown |= DESCRIBE_CONTEXT;
    }
    break;
  case MP_MSG_ACCEPT:
    describe_u64(t, "slot", m->index, DESCRIBE_INDEX);
    describe_entries(t, "entries", m);
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    break;
  case MP_MSG_ACCEPTED:
    if (!m->reject || m->index != 0)
      describe_u64(t, "index", m->index, DESCRIBE_INDEX);
    describe_verdict(t, m, "ok");
    if (m->reject && m->index != 0)
      describe_u64(t, "hint", m->hint_index, DESCRIBE_HINT);
    break;
  case MP_MSG_HEARTBEAT:
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    if (m->context != 0)
      describe_u64(t, "ctx", m->context, DESCRIBE_CONTEXT);
    break;
  case MP_MSG_HEARTBEAT_RESP:
    if (m->context != 0)
      describe_u64(t, "ctx", m->context, DESCRIBE_CONTEXT);
    break;
  case MP_MSG_SNAPSHOT:
    describe_snapshot_chunk(t, m);
    if (m->n_entries == 1 && m->entries[0].type == SABHA_ENTRY_CONFIG) {
      /* The membership it carries: which entry set it. */
      describe_text(t, " members=%llu",
                    (unsigned long long)m->entries[0].index);
      t->shown |= DESCRIBE_ENTRIES;
    }
    break;
  case MP_MSG_SNAPSHOT_RESP:
    describe_snapshot_resp(t, m);
    break;
  case MP_MSG_REMOVED:
    describe_u64(t, "config", m->index, DESCRIBE_INDEX);
    break;
  default: /* TIMEOUT_NOW */
    break;
  }
}

/* sabha_engine_set_timing: the timers read cfg when they are armed. */
static struct sabha_config *mp_config(void *state) {
  struct mp *x = state;
  return &x->cfg;
}

const struct engine_ops multipaxos_engine_ops = {
    .name = "multipaxos",
    .create = mp_create,
    .destroy = mp_destroy,
    .tick = mp_tick,
    .step = mp_step,
    .propose = mp_propose,
    .read_index = mp_read_index_op,
    .has_ready = mp_has_ready,
    .ready = mp_ready,
    .advance = mp_advance,
    .persisted = mp_persisted,
    .status = mp_status,
    .transfer_leadership = mp_transfer_leadership,
    .compact = mp_compact_op,
    .entry = mp_entry,
    .change = mp_change,
    .members = mp_members,
    .membership_at = mp_membership_at,
    .config = mp_config,
    .describe = mp_describe,
};
