/* async replication: appends, heartbeats, flow control, the commit point,
 * the stable point and rollback.
 *
 * Appends carry the index and term of the entry before them and a backup
 * accepts only if its log holds that entry, as in Raft (§5.3): so logs that
 * hold one (index, term) agree on everything before it, and the primary
 * probes back to where a backup's log matches, a term per round trip, and
 * then streams (core/progress.h: PROBE, REPLICATE, SNAPSHOT). That part is
 * the same machinery; what differs is what an entry's presence means.
 *
 * The commit point is the primary's own durable log (async_commit_own): no
 * backup is waited for. A backup commits what the primary says is
 * committed, capped at what it holds matching the primary's log.
 *
 * Rollback. A backup's log may hold entries the primary lacks: written by
 * an earlier primary that failed before they reached this one (if this
 * node was that primary, it acknowledged them to clients). They go as soon
 * as the primary's log shows they cannot be its: a conflicting entry
 * arrives, or the backup holds an entry of an older term past the primary's
 * last index (a primary only ever appends entries of its own term, so it
 * will never send one there). async_rollback() cuts them; if the host had
 * applied any of them, the node also goes back to its newest snapshot.
 *
 * The stable point is the highest index every voter is known to hold. As
 * no primary can lack those entries, none of them is ever rolled back, and
 * snapshot.c lets nobody compact past it. */
#include <assert.h>
#include <string.h>

#include "async/async.h"

bool async_commit_own(struct async_node *a) {
  assert(a->role == SABHA_ROLE_LEADER);
  uint64_t durable = replog_self_match(&a->rl);
  int slot = async_voter_slot(a, a->cfg.id);
  assert(slot >= 0);
  a->peers[slot].match = durable;
  async_update_stable(a);
  if (durable <= a->rl.commit)
    return false;
  a->rl.commit = durable;
  return true;
}

void async_update_stable(struct async_node *a) {
  uint64_t lowest = UINT64_MAX;
  for (uint32_t i = 0; i < a->cfg.n_voters; i++)
    if (a->peers[i].match < lowest)
      lowest = a->peers[i].match;
  if (lowest != UINT64_MAX && lowest > a->stable)
    a->stable = lowest;
}

void async_rollback(struct async_node *a, uint64_t from) {
  struct replog *rl = &a->rl;
  /* Snapshots only cover stable entries, and stable entries are never cut
   * (snapshot.c): what goes is always after the snapshot. */
  assert(from > rl->log.snap_index);
  if (from > log_last_index(&rl->log))
    return;
  log_truncate_from(&rl->log, from);
  replog_note_truncation(rl, from);
  if (from > rl->applied) {
    if (rl->commit >= from)
      rl->commit = from - 1;
    return;
  }
  /* The host has applied entries that are gone. It cannot unapply them, so
   * it goes back to this node's newest snapshot (its own: every node's
   * snapshot is at or below the stable point, so it predates anything that
   * can be cut) and applies forward from there as the primary's log comes
   * in. The engine hands the snapshot out again (ready.snapshot); with no
   * snapshot yet that is index 0 and no bytes: the empty state machine. */
  rl->applied = rl->log.snap_index;
  rl->commit = rl->log.snap_index;
  rl->snap_to_install = true;
  a->rollbacks++;
}

/* ---- the primary's side -------------------------------------------------- */

bool async_send_append(struct async_node *a, struct progress *pr,
                       bool empty_ok) {
  assert(pr->id != a->cfg.id);
  if (progress_paused(pr))
    return false;
  struct sabha_msg m = {
      .type = ASYNC_MSG_APPEND,
      .to = pr->id,
      .commit = a->rl.commit,
      .hint_index = a->stable,
      .context = log_last_index(&a->rl.log),
  };
  if (progress_fill_append(pr, &a->rl.log, a->cfg.entries_per_msg_max,
                           a->cfg.bytes_per_msg_max, &m) != 0) {
    async_send_snapshot(a, pr); /* it needs entries compacted away */
    return true;
  }
  if (m.n_entries == 0 && !empty_ok)
    return false;
  async_send(a, &m, false);
  progress_sent(pr, m.index + m.n_entries, m.n_entries);
  return true;
}

static void async_send_all(struct async_node *a, struct progress *pr) {
  while (async_send_append(a, pr, false) && pr->state == PROGRESS_REPLICATE &&
         pr->next <= log_last_index(&a->rl.log))
    ;
}

void async_broadcast_append(struct async_node *a) {
  for (uint32_t i = 0; i < a->cfg.n_voters; i++)
    if (a->peers[i].id != a->cfg.id)
      async_send_all(a, &a->peers[i]);
}

/* Heartbeats carry the commit and stable points, each capped at what the
 * backup is known to hold, and the primary's last index so that a backup
 * with a divergent tail rolls it back even when no write comes. */
void async_broadcast_heartbeat(struct async_node *a) {
  uint64_t last = log_last_index(&a->rl.log);
  for (uint32_t i = 0; i < a->cfg.n_voters; i++) {
    const struct progress *pr = &a->peers[i];
    if (pr->id == a->cfg.id)
      continue;
    struct sabha_msg m = {
        .type = ASYNC_MSG_HEARTBEAT,
        .to = pr->id,
        .commit = pr->match < a->rl.commit ? pr->match : a->rl.commit,
        .hint_index = pr->match < a->stable ? pr->match : a->stable,
        .context = last,
    };
    async_send(a, &m, false);
  }
}

static struct progress *progress_of(struct async_node *a, uint32_t id) {
  int slot = async_voter_slot(a, id);
  assert(slot >= 0);
  return &a->peers[slot];
}

void async_recv_append_resp(struct async_node *a, const struct sabha_msg *m) {
  struct progress *pr = progress_of(a, m->from);
  pr->recent_active = true;
  if (m->reject) {
    if (progress_on_append_refused(pr, &a->rl.log, m->index, m->hint_index,
                                   m->hint_term))
      async_send_append(a, pr, true);
    return;
  }
  if (progress_on_append_ok(pr, m->index))
    async_update_stable(a);
  async_send_all(a, pr);
}

void async_recv_heartbeat_resp(struct async_node *a,
                               const struct sabha_msg *m) {
  struct progress *pr = progress_of(a, m->from);
  pr->recent_active = true;
  if (pr->state == PROGRESS_SNAPSHOT) {
    async_send_snapshot(a, pr); /* the last chunk may have been lost */
    return;
  }
  if (pr->match >= log_last_index(&a->rl.log))
    return;
  /* Alive but behind: whatever was sent may be lost. An append goes even
   * when empty, so that a backup that lost the tail of a pipeline refuses
   * it and the primary probes back. */
  progress_unpause(pr);
  if (async_send_append(a, pr, true))
    async_send_all(a, pr);
}

/* ---- the backup's side --------------------------------------------------- */

/* Cuts a tail the primary can never send: an entry of an older term past
 * the primary's last index. */
static void drop_foreign_tail(struct async_node *a, uint64_t primary_last,
                              uint64_t primary_term) {
  uint64_t term = 0;
  if (primary_last < a->rl.log.snap_index ||
      log_term(&a->rl.log, primary_last + 1, &term) != 0)
    return;
  if (term != primary_term)
    async_rollback(a, primary_last + 1);
}

static void learn_commit(struct async_node *a, uint64_t commit,
                         uint64_t stable, uint64_t matched) {
  if (commit > matched)
    commit = matched;
  if (commit > a->rl.commit)
    a->rl.commit = commit;
  if (stable > matched)
    stable = matched;
  if (stable > a->stable)
    a->stable = stable;
}

/* Appends the entries of `m` after its prev entry, which matches. Returns
 * the last index now known to match the primary's log. */
static uint64_t append_entries(struct async_node *a,
                               const struct sabha_msg *m) {
  uint64_t last_new = m->index;
  for (uint32_t i = 0; i < m->n_entries; i++) {
    const struct sabha_entry *e = &m->entries[i];
    assert(e->index == m->index + 1 + i);
    uint64_t have = 0;
    int rv = log_term(&a->rl.log, e->index, &have);
    if (e->index <= a->rl.log.snap_index || (rv == 0 && have == e->term)) {
      last_new = e->index; /* already here */
      continue;
    }
    if (rv == 0)
      async_rollback(a, e->index); /* the primary's entry wins */
    if (log_append(&a->rl.log, e) != 0)
      break; /* out of memory: acknowledge what we hold */
    last_new = e->index;
  }
  return last_new;
}

void async_recv_append(struct async_node *a, const struct sabha_msg *m) {
  struct sabha_msg resp = {.type = ASYNC_MSG_APPEND_RESP, .to = m->from};
  drop_foreign_tail(a, m->context, m->term);
  uint64_t prev_term = 0;
  /* Entries at or below the snapshot are stable, hence the primary's too. */
  bool prev_ok = m->index <= a->rl.log.snap_index ||
                 (log_term(&a->rl.log, m->index, &prev_term) == 0 &&
                  prev_term == m->log_term);
  if (!prev_ok) {
    resp.reject = 1;
    resp.index = m->index;
    resp.hint_index = log_find_conflict_by_term(&a->rl.log, m->index,
                                                m->log_term, &resp.hint_term);
    async_send(a, &resp, true);
    return;
  }
  uint64_t last_new = append_entries(a, m);
  learn_commit(a, m->commit, m->hint_index, last_new);
  resp.index = last_new;
  async_send(a, &resp, true); /* once the entries are durable */
}

void async_recv_heartbeat(struct async_node *a, const struct sabha_msg *m) {
  drop_foreign_tail(a, m->context, m->term);
  /* The primary capped both points at what it knows this node holds. */
  learn_commit(a, m->commit, m->hint_index, log_last_index(&a->rl.log));
  struct sabha_msg resp = {.type = ASYNC_MSG_HEARTBEAT_RESP, .to = m->from};
  async_send(a, &resp, true);
}
