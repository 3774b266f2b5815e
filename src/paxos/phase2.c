/* Multi-Paxos phase 2 and everything a settled leader does: accepts,
 * learning what is chosen, heartbeats, reads, catch-up and transfer.
 *
 * Paxos Made Simple §2.2 (phase 2) and §3: in steady state the leader sends
 * accept(ballot, slot, value) for new slots only; an acceptor accepts unless
 * it promised a higher ballot; a value accepted by a majority under one
 * ballot is chosen. Slots are streamed with the same pipelining and flow
 * control as Raft (core/progress.h), several per message.
 *
 * Learning (§2.3) rides on the accepts and heartbeats: the leader sends the
 * highest slot it knows chosen with everything before it. An acceptor may
 * take that as chosen only for slots it accepted under the leader's own
 * ballot (one value per slot per ballot, so those values are the leader's),
 * which is what `accepted_upto` tracks; slots still holding a value from an
 * older ballot wait until the leader's accept replaces them.
 *
 * Reads use the same ReadIndex scheme as Raft (core/readq.h): a round of
 * heartbeats acknowledged by a majority proves no higher ballot has been
 * promised by a majority, so the leader's chosen prefix is current. */
#include <assert.h>

#include "paxos/mp.h"

/* The leader's view of `id`, or NULL for a node it keeps no slot for. */
static struct progress *progress_of(struct mp *p, uint32_t id) {
  int slot = mp_slot(p, id);
  return slot < 0 ? NULL : &p->peers[slot];
}

void mp_send_snapshot(struct mp *p, struct progress *pr) {
  if (pr->state != PROGRESS_SNAPSHOT || pr->snap_index != p->rl.log.snap_index)
    progress_become_snapshot(pr, p->rl.log.snap_index);
  uint64_t left = p->rl.snap_size - pr->snap_offset;
  uint32_t chunk = left < p->cfg.snapshot_chunk_bytes
                       ? (uint32_t)left
                       : p->cfg.snapshot_chunk_bytes;
  struct sabha_msg m = {
      .type = MP_MSG_SNAPSHOT,
      .to = pr->id,
      .snap = {.index = p->rl.log.snap_index, .term = p->rl.log.snap_term},
      .snap_offset = pr->snap_offset,
      .snap_total_bytes = p->rl.snap_size,
      .snap_size_bytes = chunk,
      .snap_data = chunk > 0 ? p->rl.snap_data + pr->snap_offset : NULL,
  };
  /* The membership in force after the snapshot travels with every chunk. */
  if (p->conf_snap_len > 0) {
    m.entries = &p->conf_snap_entry;
    m.n_entries = 1;
  }
  mp_send(p, &m, false);
}

bool mp_send_accept(struct mp *p, struct progress *pr, bool empty_ok) {
  assert(pr->id != p->cfg.id);
  if (progress_paused(pr))
    return false;
  if (pr->next <= p->rl.log.snap_index) {
    mp_send_snapshot(p, pr); /* the slots it needs are compacted (§5) */
    return true;
  }
  uint32_t n =
      log_batch_count(&p->rl.log, pr->next, log_last_index(&p->rl.log) + 1,
                      p->cfg.entries_per_msg_max, p->cfg.bytes_per_msg_max);
  if (n == 0 && !empty_ok)
    return false;
  struct sabha_msg m = {
      .type = MP_MSG_ACCEPT,
      .to = pr->id,
      .index = pr->next,
      .commit = p->rl.commit,
      .n_entries = n,
      .entries = n > 0 ? log_get(&p->rl.log, pr->next) : NULL,
  };
  if (pr->log_lost)
    m.hint_index = log_last_index(&p->rl.log);
  mp_send(p, &m, false);
  progress_sent(pr, pr->next + n - 1, n);
  return true;
}

static void send_all(struct mp *p, struct progress *pr) {
  while (mp_send_accept(p, pr, false) && pr->state == PROGRESS_REPLICATE &&
         pr->next <= log_last_index(&p->rl.log))
    ;
}

void mp_broadcast_accept(struct mp *p) {
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if (p->peers[i].id != p->cfg.id && p->peers[i].id != SABHA_NODE_NONE)
      send_all(p, &p->peers[i]);
}

static void broadcast_commit(struct mp *p) {
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &p->peers[i];
    if (pr->id == p->cfg.id || pr->id == SABHA_NODE_NONE)
      continue;
    if (pr->state == PROGRESS_REPLICATE &&
        pr->next > log_last_index(&p->rl.log))
      mp_send_accept(p, pr, true);
    else
      send_all(p, pr);
  }
}

void mp_broadcast_heartbeat(struct mp *p, uint64_t read_round) {
  progress_send_heartbeats(p->peers, SABHA_NODES_MAX, p->cfg.id,
                           MP_MSG_HEARTBEAT, p->promised, p->rl.commit,
                           read_round, &p->out);
}

/* True when the voters of the membership that governs slot `s` (every
 * slot before it is chosen: membership.c) accepted it, by a majority. */
static bool chosen(const struct mp *p, uint64_t s) {
  const struct sabha_membership *c = mp_conf_at(p, s);
  uint32_t acks = 0;
  for (uint32_t k = 0; k < c->n; k++) {
    const struct sabha_member *x = &c->members[k];
    if (x->role != SABHA_MEMBER_VOTER &&
        !(p->cfg.bugs & SABHA_BUG_LEARNER_QUORUM))
      continue;
    int slot = mp_slot(p, x->id);
    if (x->id == p->cfg.id ? replog_self_match(&p->rl) >= s
                           : slot >= 0 && p->peers[slot].match >= s)
      acks++;
  }
  return acks >= membership_quorum(c);
}

bool mp_maybe_commit(struct mp *p) {
  assert(p->role == SABHA_ROLE_LEADER);
  uint64_t before = p->rl.commit;
  /* One slot at a time, each judged by its own membership, learning the
   * memberships chosen on the way (they govern slots alpha on). */
  while (p->rl.commit < log_last_index(&p->rl.log) &&
         chosen(p, p->rl.commit + 1)) {
    p->rl.commit++;
    if (log_get(&p->rl.log, p->rl.commit)->type == SABHA_ENTRY_CONFIG)
      mp_conf_scan(p);
  }
  if (p->rl.commit == before)
    return false;
  mp_conf_scan(p);
  if (before < p->term_start_index && p->rl.commit >= p->term_start_index)
    mp_reads_on_start_commit(p);
  mp_conf_after_commit(p); /* fill a change's window; a removed leader
                              steps down */
  return true;
}

/* Learns the leader's chosen prefix as far as this acceptor holds the
 * leader's own values. */
static void learn_commit(struct mp *p, uint64_t leader_commit) {
  uint64_t c =
      leader_commit < p->accepted_upto ? leader_commit : p->accepted_upto;
  if (c > p->rl.commit)
    p->rl.commit = c;
}

/* The entries of an accept sit at its slot m->index (1 or more) and the
 * slots after it, one after the other, within the slots there are. */
static bool accept_entries_in_place(const struct sabha_msg *m) {
  if (m->n_entries == 0)
    return true;
  if (m->index == 0 || m->n_entries - 1 > UINT64_MAX - m->index)
    return false;
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (m->entries[i].index != m->index + i)
      return false;
  return true;
}

void mp_recv_accept(struct mp *p, const struct sabha_msg *m) {
  /* A membership that does not decode could never be acted on alike by
   * every node, and entries out of place would land in slots others hold:
   * refuse the whole message (a broken or hostile peer). */
  if (!membership_entries_valid(m->entries, m->n_entries) ||
      !accept_entries_in_place(m))
    return;
  mp_conf_note(p, m->entries, m->n_entries);
  struct sabha_msg resp = {.type = MP_MSG_ACCEPTED, .to = m->from};
  bool lower = m->term < p->promised; /* only with the deliberate bug */
  if (lower)
    resp.term = m->term;
  uint64_t first = m->index;
  if (!lower && first > p->accepted_upto + 1) {
    /* A gap: slots before `first` are not yet ours under this ballot. */
    resp.reject = 1;
    resp.hint_index = p->accepted_upto;
    resp.index = first;
    if (replog_guard_until(&p->rl) != 0)
      resp.context = MP_LOG_LOST;
    mp_send(p, &resp, true);
    return;
  }
  if (lower && first > log_last_index(&p->rl.log) + 1)
    return;
  uint64_t last = first;
  bool ok = true;
  for (uint32_t i = 0; i < m->n_entries && ok; i++) {
    const struct sabha_entry *e = &m->entries[i];
    assert(e->index == first + i);
    last = e->index;
    if (e->index <= p->rl.commit)
      continue; /* chosen already: the same value, maybe compacted */
    ok = log_put(&p->rl.log, e) == 0;
    if (ok)
      replog_note_put(&p->rl, e->index);
    else
      last = e->index - 1;
  }
  if (lower) {
    resp.index = m->n_entries > 0 ? last : first - 1;
    mp_send(p, &resp, true);
    return;
  }
  if (m->n_entries > 0 && last > p->accepted_upto)
    p->accepted_upto = last;
  learn_commit(p, m->commit);
  mp_conf_scan(p);
  /* The repair guard may go once this acceptor holds, under the leader's
   * ballot, every slot up to the leader's last: a leader past phase 1
   * proposes the chosen value of every chosen slot (a majority of the
   * others met every quorum this acceptor was part of), so what its lost
   * accepts helped choose is here again. */
  if (m->hint_index != 0 && p->accepted_upto >= m->hint_index &&
      p->rl.repair_until != 0)
    replog_guard_lift(&p->rl);
  if (replog_guard_until(&p->rl) != 0)
    resp.context = MP_LOG_LOST;
  resp.index = p->accepted_upto;
  mp_send(p, &resp, true); /* accepted only once durable (§2.2) */
}

void mp_transfer_check(struct mp *p, struct progress *pr) {
  if (p->transferee != pr->id || pr->match != log_last_index(&p->rl.log))
    return;
  struct sabha_msg m = {.type = MP_MSG_TIMEOUT_NOW, .to = pr->id};
  mp_send(p, &m, false);
}

void mp_recv_accepted(struct mp *p, const struct sabha_msg *m) {
  if (m->term != p->promised)
    return;
  struct progress *pr = progress_of(p, m->from);
  if (pr == NULL)
    return;
  /* No acceptor holds this ballot's values beyond the leader's last slot:
   * such an answer is a broken or hostile peer's. Taken as its match it
   * would count towards choosing each later slot before any other node
   * held it, and its next slot would wrap to 0 (a storm of snapshots). */
  uint64_t last = log_last_index(&p->rl.log);
  if (m->reject ? m->hint_index > last : m->index > last)
    return;
  pr->recent_active = true;
  bool lost_before = pr->log_lost;
  pr->log_lost = m->context == MP_LOG_LOST;
  if (m->reject) {
    if (pr->state == PROGRESS_SNAPSHOT)
      return;
    /* The acceptor holds our values only up to hint_index (it restarted,
     * or accepts were lost): resend from there. What it acknowledged was
     * durable when it said so, so `match` stands (a repaired disk that
     * lost it since is answered by its repair guard). */
    progress_become_probe(pr);
    pr->next = m->hint_index + 1;
    mp_send_accept(p, pr, true);
    return;
  }
  bool updated = progress_on_append_ok(pr, m->index);
  /* A guarded acceptor that has it all is told so: one empty accept with
   * the leader's last slot (once per step forward, no more). */
  if (pr->log_lost && (updated || !lost_before) &&
      pr->match >= log_last_index(&p->rl.log))
    mp_send_accept(p, pr, true);
  if (updated && mp_maybe_commit(p)) {
    if (p->role == SABHA_ROLE_LEADER) /* unless it stepped down */
      broadcast_commit(p);
    return;
  }
  send_all(p, pr);
  mp_transfer_check(p, pr);
}

void mp_recv_heartbeat(struct mp *p, const struct sabha_msg *m) {
  struct sabha_msg resp = {
      .type = MP_MSG_HEARTBEAT_RESP, .to = m->from, .context = m->context};
  if (m->term < p->promised) {
    /* Only with the deliberate bug: follow a deposed leader's word. */
    uint64_t last = log_last_index(&p->rl.log);
    uint64_t c = m->commit < last ? m->commit : last;
    if (c > p->rl.commit)
      p->rl.commit = c;
    resp.term = m->term;
    mp_send(p, &resp, true);
    return;
  }
  learn_commit(p, m->commit);
  mp_conf_scan(p);
  mp_send(p, &resp, true);
}

void mp_recv_heartbeat_resp(struct mp *p, const struct sabha_msg *m) {
  struct progress *pr = progress_of(p, m->from);
  if (pr == NULL)
    return;
  pr->recent_active = true;
  readq_ack(&p->reads, (uint32_t)(pr - p->peers), m->context);
  mp_reads_on_ack(p);
  if (pr->state == PROGRESS_SNAPSHOT) {
    mp_send_snapshot(p, pr);
    return;
  }
  if (pr->match >= log_last_index(&p->rl.log))
    return;
  progress_unpause(pr); /* alive but behind: what was sent may be lost */
  if (mp_send_accept(p, pr, true))
    send_all(p, pr);
}

void mp_recv_snapshot(struct mp *p, const struct sabha_msg *m) {
  struct sabha_membership conf;
  if (membership_of_snapshot_msg(m, &conf) != 0)
    return; /* without it this node could not know who chooses */
  struct sabha_msg ack = {.type = MP_MSG_ACCEPTED, .to = m->from};
  if (m->snap.index <= p->rl.commit) {
    ack.index = p->accepted_upto;
    mp_send(p, &ack, true);
    return;
  }
  uint64_t received = 0;
  if (replog_snapshot_chunk(&p->rl, m, &received) == 0) {
    struct sabha_msg resp = {.type = MP_MSG_SNAPSHOT_RESP, .to = m->from};
    resp.snap = m->snap;
    resp.context = received;
    mp_send(p, &resp, false);
    return;
  }
  /* An acceptor never forgets an accepted value: the slots after the
   * snapshot stay, whatever their ballot. */
  replog_install_snapshot(&p->rl, false);
  int rv = mp_conf_init(p, &conf); /* in force after the snapshot */
  assert(rv == 0);                 /* decoded above */
  (void)rv;
  uint64_t from =
      p->rl.commit > p->accepted_upto ? p->rl.commit : p->accepted_upto;
  p->accepted_upto = mp_scan_accepted(p, from);
  ack.index = p->accepted_upto;
  mp_send(p, &ack, true);
}

void mp_recv_snapshot_resp(struct mp *p, const struct sabha_msg *m) {
  struct progress *pr = progress_of(p, m->from);
  if (pr == NULL)
    return;
  pr->recent_active = true;
  if (pr->state != PROGRESS_SNAPSHOT || m->snap.index != pr->snap_index ||
      pr->snap_index != p->rl.log.snap_index)
    return;
  pr->snap_offset = m->context <= p->rl.snap_size ? m->context : 0;
  if (pr->snap_offset < p->rl.snap_size)
    mp_send_snapshot(p, pr);
}

int mp_read_index(struct mp *p, uint64_t request_id) {
  if (p->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  /* Until the slots phase 1 re-proposed are chosen, this leader does not
   * know the chosen prefix. */
  if (p->rl.commit < p->term_start_index)
    return readq_defer(&p->reads, request_id);
  int64_t round = readq_add(&p->reads, request_id, p->rl.commit);
  if (round < 0)
    return (int)round;
  if (round > 0) /* else it joined a round whose heartbeats wait to leave */
    mp_broadcast_heartbeat(p, (uint64_t)round);
  mp_reads_on_ack(p);
  return 0;
}

void mp_reads_on_ack(struct mp *p) {
  /* A majority of the membership in force: any higher ballot's phase 1
   * needed one of it too (membership.c). */
  const struct sabha_membership *now = mp_conf_at(p, p->rl.commit + 1);
  int self = mp_slot(p, p->cfg.id);
  readq_release(&p->reads, self < 0 ? SABHA_NODES_MAX : (uint32_t)self,
                mp_voter_mask(p, now), membership_quorum(now), &p->out);
}

void mp_reads_on_start_commit(struct mp *p) {
  uint64_t round = readq_undefer(&p->reads, p->rl.commit);
  if (round == 0)
    return;
  mp_broadcast_heartbeat(p, round);
  mp_reads_on_ack(p);
}
