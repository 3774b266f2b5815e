/* Raft log replication: AppendEntries, heartbeats, flow control, commit.
 *
 * §5.3 and thesis §3.5: the leader sends its entries with the index and term
 * of the entry before them; a follower accepts only if its log holds that
 * entry (the consistency check that gives Log Matching), deletes a conflicting
 * suffix and appends. On a refusal the follower returns a hint (the last
 * index at or before the refused one whose term is no newer than the
 * leader's entry there) so the leader skips a whole term per round trip
 * instead of one entry (§5.3, "the protocol can be optimized").
 *
 * Thesis §10.2.1: the leader pipelines appends (REPLICATE: up to
 * inflight_msgs_max in flight per follower, each bounded in entries and
 * bytes) once a follower's log matches, and probes one message at a time
 * (PROBE) until then.
 *
 * §5.4.2 and Figure 8: the commit index only moves to an entry of the
 * leader's own term replicated on a majority; earlier entries commit with
 * it, never by being counted themselves. */
#include <assert.h>
#include <string.h>

#include "raft/raft.h"

static int append_entry(struct raft *r, uint32_t type, const void *data,
                        size_t size) {
  struct sabha_entry e = {
      .index = log_last_index(&r->rl.log) + 1,
      .term = r->term,
      .type = type,
      .size_bytes = (uint32_t)size,
      .data = data,
  };
  return log_append(&r->rl.log, &e);
}

int raft_flush_batch(struct raft *r) {
  if (r->batch_n == 0)
    return 0;
  bool one = r->batch_n == 1; /* a lone command goes in plain */
  int rv = append_entry(r, one ? SABHA_ENTRY_COMMAND : SABHA_ENTRY_BATCH,
                        one ? r->batch + 4 : r->batch,
                        one ? r->batch_bytes - 4 : r->batch_bytes);
  r->batch_n = 0;
  r->batch_bytes = 0;
  return rv;
}

/* The commands proposed before an entry of another kind come before it. */
int raft_append_local(struct raft *r, uint32_t type, const void *data,
                      size_t size) {
  int rv = raft_flush_batch(r);
  return rv != 0 ? rv : append_entry(r, type, data, size);
}

bool raft_send_append(struct raft *r, struct progress *pr, bool empty_ok) {
  assert(pr->id != r->cfg.id);
  if (progress_paused(pr))
    return false;
  struct sabha_msg m = {
      .type = RAFT_MSG_APPEND, .to = pr->id, .commit = r->rl.commit};
  if (pr->log_lost)
    m.hint_index = log_last_index(&r->rl.log);
  if (progress_fill_append(pr, &r->rl.log, r->cfg.entries_per_msg_max,
                           r->cfg.bytes_per_msg_max, &m) != 0) {
    /* The entries it needs are compacted away: send the snapshot (§5). */
    raft_send_snapshot(r, pr);
    return true;
  }
  if (m.n_entries == 0 && !empty_ok)
    return false;
  raft_send(r, &m, false);
  progress_sent(pr, m.index + m.n_entries, m.n_entries);
  return true;
}

static void raft_send_all(struct raft *r, struct progress *pr) {
  while (raft_send_append(r, pr, false) && pr->state == PROGRESS_REPLICATE &&
         pr->next <= log_last_index(&r->rl.log))
    ;
}

void raft_broadcast_append(struct raft *r) {
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &r->peers[i];
    if (pr->id != r->cfg.id && pr->id != SABHA_NODE_NONE)
      raft_send_all(r, pr);
  }
}

/* After the commit index moves, followers that are up to date hear of it
 * through an empty append rather than waiting for the next heartbeat. */
static void raft_broadcast_commit(struct raft *r) {
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &r->peers[i];
    if (pr->id == r->cfg.id || pr->id == SABHA_NODE_NONE)
      continue;
    if (pr->state == PROGRESS_REPLICATE &&
        pr->next > log_last_index(&r->rl.log))
      raft_send_append(r, pr, true);
    else
      raft_send_all(r, pr);
  }
}

void raft_broadcast_heartbeat(struct raft *r, uint64_t read_round) {
  progress_send_heartbeats(r->peers, SABHA_NODES_MAX, r->cfg.id,
                           RAFT_MSG_HEARTBEAT, r->term, r->rl.commit,
                           read_round, &r->out);
}

bool raft_maybe_commit(struct raft *r) {
  assert(r->role == SABHA_ROLE_LEADER);
  uint64_t q = progress_quorum_index(r->peers, SABHA_NODES_MAX, r->cfg.id,
                                     replog_self_match(&r->rl), raft_quorum(r));
  if (q <= r->rl.commit)
    return false;
  uint64_t term = 0;
  if (log_term(&r->rl.log, q, &term) != 0)
    return false;
  /* Figure 8: never commit an earlier term's entry by counting replicas. */
  if (term != r->term && !(r->cfg.bugs & SABHA_BUG_STALE_COMMIT))
    return false;
  bool first_of_term = r->rl.commit < r->term_start_index;
  r->rl.commit = q;
  if (first_of_term && r->rl.commit >= r->term_start_index)
    raft_reads_on_term_commit(r);
  raft_conf_after_commit(r);
  return true;
}

/* The entries of an append sit at m->index + 1 on, one after the other
 * (§5.3), within the indexes there are. */
static bool append_entries_in_place(const struct sabha_msg *m) {
  if (m->n_entries > UINT64_MAX - m->index)
    return false;
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (m->entries[i].index != m->index + 1 + i)
      return false;
  return true;
}

void raft_recv_append(struct raft *r, const struct sabha_msg *m) {
  /* A membership that does not decode would leave this node with a view
   * of the group no other node shares, and entries out of place would
   * land where the log says others are: refuse the whole message (only a
   * broken or hostile peer sends one). */
  if (!membership_entries_valid(m->entries, m->n_entries) ||
      !append_entries_in_place(m))
    return;
  struct sabha_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
  if (m->index < r->rl.commit) {
    /* Everything up to commit matches any leader's log already. */
    resp.index = r->rl.commit;
    if (m->hint_index != 0 && r->rl.commit >= m->hint_index &&
        r->rl.repair_until != 0)
      replog_guard_lift(&r->rl); /* see below */
    if (replog_guard_until(&r->rl) != 0)
      resp.context = RAFT_LOG_LOST;
    raft_send(r, &resp, true);
    return;
  }
  uint64_t prev_term = 0;
  if (log_term(&r->rl.log, m->index, &prev_term) != 0 ||
      prev_term != m->log_term) {
    resp.reject = 1;
    resp.index = m->index;
    resp.hint_index = log_find_conflict_by_term(&r->rl.log, m->index,
                                                m->log_term, &resp.hint_term);
    if (replog_guard_until(&r->rl) != 0)
      resp.context = RAFT_LOG_LOST;
    raft_send(r, &resp, true);
    return;
  }
  uint64_t last_new = m->index;
  bool conf_touched = false;
  for (uint32_t i = 0; i < m->n_entries; i++) {
    const struct sabha_entry *e = &m->entries[i];
    assert(e->index == m->index + 1 + i);
    uint64_t have = 0;
    int rv = log_term(&r->rl.log, e->index, &have);
    if (rv == 0 && have == e->term) {
      last_new = e->index;
      continue; /* already there: a duplicate or reordered append */
    }
    if (rv == 0) {
      /* §5.3: a conflict; it can only be an uncommitted entry. */
      assert(e->index > r->rl.commit);
      log_truncate_from(&r->rl.log, e->index);
      replog_note_truncation(&r->rl, e->index);
      /* A membership truncated away is no longer in force (§4.1). */
      conf_touched |= r->conf.index >= e->index;
    }
    if (log_append(&r->rl.log, e) != 0)
      break; /* out of memory: acknowledge what we hold */
    conf_touched |= e->type == SABHA_ENTRY_CONFIG;
    last_new = e->index;
  }
  if (conf_touched) {
    int rv = raft_conf_reload(r);
    assert(rv == 0); /* every entry was checked above */
    (void)rv;
  }
  /* Commit no further than what is known to match the leader's log. */
  uint64_t commit = m->commit < last_new ? m->commit : last_new;
  if (commit > r->rl.commit)
    r->rl.commit = commit;
  /* The repair guard may go once this log holds the leader's whole log
   * (hint_index: its last index when it sent this): a leader holds every
   * committed entry (§5.4), so every one this node's lost acknowledgements
   * helped commit is here again. */
  if (m->hint_index != 0 && last_new >= m->hint_index &&
      r->rl.repair_until != 0)
    replog_guard_lift(&r->rl);
  if (replog_guard_until(&r->rl) != 0)
    resp.context = RAFT_LOG_LOST;
  resp.index = last_new;
  raft_send(r, &resp, true);
}

void raft_transfer_check(struct raft *r, struct progress *pr) {
  if (r->transferee != pr->id || pr->match != log_last_index(&r->rl.log))
    return;
  struct sabha_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = pr->id};
  raft_send(r, &m, false);
}

/* The leader's view of `id`, or NULL for a node it keeps no slot for (one
 * removed, or not yet added as far as this leader knows). */
static struct progress *progress_of(struct raft *r, uint32_t id) {
  int slot = raft_slot(r, id);
  return slot < 0 ? NULL : &r->peers[slot];
}

void raft_recv_append_resp(struct raft *r, const struct sabha_msg *m) {
  struct progress *pr = progress_of(r, m->from);
  if (pr == NULL)
    return;
  /* No follower holds entries beyond the leader's last (§5.3): such an
   * acknowledgement is a broken or hostile peer's, and taken as its match
   * it would count towards committing each later entry before any other
   * node held it. */
  if (!m->reject && m->index > log_last_index(&r->rl.log))
    return;
  pr->recent_active = true;
  bool lost_before = pr->log_lost;
  pr->log_lost = m->context == RAFT_LOG_LOST;
  if (m->reject) {
    /* A follower whose disk lost what it acknowledged (a repaired log, or
     * one cut short behind the WAL's back, which looks like a torn tail):
     * what the leader knew to match may be gone, so a refusal that points
     * below the match is not stale. The commit index never goes back; only
     * where to probe does, and a late refusal costs one probe. */
    if ((m->context == RAFT_LOG_LOST || m->hint_index < pr->match) &&
        progress_on_log_lost(pr, m->hint_index)) {
      raft_send_append(r, pr, true);
      return;
    }
    if (progress_on_append_refused(pr, &r->rl.log, m->index, m->hint_index,
                                   m->hint_term))
      raft_send_append(r, pr, true);
    return;
  }
  bool updated = progress_on_append_ok(pr, m->index);
  if (updated && raft_maybe_commit(r) && r->role == SABHA_ROLE_LEADER)
    raft_broadcast_commit(r); /* unless the commit made it step down */
  else
    raft_send_all(r, pr);
  /* A guarded follower that has it all is told so: one empty append
   * carrying the leader's last index (once per step forward, no more). */
  if (pr->log_lost && (updated || !lost_before) &&
      pr->match >= log_last_index(&r->rl.log))
    raft_send_append(r, pr, true);
  raft_transfer_check(r, pr);
}

void raft_recv_heartbeat(struct raft *r, const struct sabha_msg *m) {
  uint64_t commit = m->commit;
  if (commit > log_last_index(&r->rl.log))
    commit = log_last_index(&r->rl.log);
  /* The leader bounds this commit by the match it knows, which a guarded
   * node's repair made stale: the log it kept may hold older entries where
   * it had acknowledged the leader's (the overwrites were in the part cut
   * away). Only appends, which check that the logs match, move its commit
   * index until the guard lifts. */
  if (commit > r->rl.commit && replog_guard_until(&r->rl) == 0)
    r->rl.commit = commit;
  struct sabha_msg resp = {
      .type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from, .context = m->context};
  raft_send(r, &resp, true);
}

void raft_recv_heartbeat_resp(struct raft *r, const struct sabha_msg *m) {
  struct progress *pr = progress_of(r, m->from);
  if (pr == NULL)
    return;
  pr->recent_active = true;
  readq_ack(&r->reads, (uint32_t)(pr - r->peers), m->context);
  raft_reads_on_ack(r);
  if (pr->state == PROGRESS_SNAPSHOT) {
    raft_send_snapshot(r, pr); /* the last chunk may have been lost */
    return;
  }
  if (pr->match >= log_last_index(&r->rl.log))
    return;
  /* The follower is alive but behind: whatever we sent may be lost. An
   * append is sent even when it would be empty, so that a follower that
   * lost the tail of a pipeline refuses it and the leader probes back. */
  progress_unpause(pr);
  if (raft_send_append(r, pr, true))
    raft_send_all(r, pr);
}
