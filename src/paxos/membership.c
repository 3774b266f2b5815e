/* Multi-Paxos membership: configurations in the log, in force alpha slots
 * later (Lamport, "Reconfiguring a state machine", Lamport, Malkhi & Zhou,
 * SIGACT News 2010; the alpha approach of "Paxos Made Simple" §3 and of
 * "The Part-Time Parliament").
 *
 * The state machine decides its own membership: a CONFIG entry chosen at
 * slot i names the acceptors that choose slots i + alpha and later. So the
 * membership of slot s follows from the chosen prefix up to s - alpha, and
 * a leader that keeps at most alpha slots beyond its chosen prefix in
 * flight always knows whose acceptance chooses each slot it proposes. The
 * leader judges slots one at a time, in order, each against its own
 * membership, so when it judges slot s every slot before it, and every
 * membership that governs s, is chosen.
 *
 * Phase 1 covers every slot from the candidate's first unknown one, and
 * slots far ahead may be governed by memberships chosen in slots it has
 * not learnt. Its quorum must therefore be a majority of every membership
 * that may govern a slot it asks about: those its chosen prefix names for
 * the next alpha slots, and any membership that a promise shows was
 * accepted after them (it may have been chosen). Each is added as it is
 * seen, its voters asked too, until the grants hold a majority of every
 * one. By induction on the memberships chosen after the candidate's
 * prefix, the majority of each known one meets the acceptors that chose
 * the next, so it sees it (Paxos Made Simple §2.2, P2c, per membership).
 *
 * One change at a time, and only once the one before is in force, so at
 * most two memberships matter to any window of alpha slots. Once a change
 * is chosen the leader fills the slots up to where it takes effect with
 * no-ops, so that it takes effect without waiting for clients' writes.
 * Learners are acceptors that count in no quorum; a removed leader leads
 * until the membership without it is in force, then hands over
 * (TimeoutNow to the voter that holds the most). Compaction waits while a
 * change is chosen but not yet in force, so a snapshot carries one
 * membership: the one in force at the slot after it.
 *
 * A node that was away while its removal was chosen never reads it in its
 * own log, and would probe for ever: a member that hears from it once the
 * removal is in force answers with a REMOVED notice naming that
 * membership, and it stops as if it had read it. Only a member's notice
 * counts, and only for a membership newer than any this node knows
 * chosen, so a stale or replayed one never stops a member. */
#include <assert.h>
#include <string.h>

#include "paxos/mp.h"

int mp_slot(const struct mp *p, uint32_t id) {
  if (id == SABHA_NODE_NONE)
    return -1;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if (p->peers[i].id == id)
      return (int)i;
  return -1;
}

int mp_slot_ensure(struct mp *p, uint32_t id) {
  int slot = mp_slot(p, id);
  if (slot >= 0)
    return slot;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &p->peers[i];
    if (pr->id != SABHA_NODE_NONE)
      continue;
    pr->id = id;
    pr->learner = true; /* until mp_conf_sync_peers says otherwise */
    progress_reset(pr, log_last_index(&p->rl.log) + 1);
    if (id == p->cfg.id) {
      pr->match = replog_self_match(&p->rl);
      pr->state = PROGRESS_REPLICATE;
    }
    p->grants &= ~(1u << i);
    p->refusals &= ~(1u << i);
    p->p1_more &= ~(1u << i);
    p->p1_next[i] = p->p1_from;
    readq_forget(&p->reads, i);
    return (int)i;
  }
  return -1;
}

const struct sabha_membership *mp_conf_at(const struct mp *p, uint64_t slot) {
  for (uint32_t k = p->n_hist; k-- > 0;)
    if (p->hist[k].index + p->cfg.alpha <= slot)
      return &p->hist[k];
  return &p->conf_base;
}

const struct sabha_membership *mp_conf_latest(const struct mp *p) {
  return p->n_hist > 0 ? &p->hist[p->n_hist - 1] : &p->conf_base;
}

bool mp_is_voter(const struct mp *p) {
  if (mp_notice_holds(p))
    return false;
  return membership_is_voter(mp_conf_at(p, p->rl.commit + 1), p->cfg.id) &&
         membership_is_voter(mp_conf_latest(p), p->cfg.id);
}

uint32_t mp_voter_mask(const struct mp *p, const struct sabha_membership *m) {
  uint32_t mask = 0;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if (p->peers[i].id != SABHA_NODE_NONE &&
        membership_is_voter(m, p->peers[i].id))
      mask |= 1u << i;
  return mask;
}

/* True when `id` matters to this node now: a member of a membership that
 * governs a slot from the commit index on, or of one pending in the log, or
 * (while campaigning) of one phase 1 must satisfy. */
static bool wanted(const struct mp *p, uint32_t id) {
  if (sabha_membership_find(mp_conf_at(p, p->rl.commit + 1), id) != NULL ||
      sabha_membership_find(mp_conf_latest(p), id) != NULL)
    return true;
  if (p->role == SABHA_ROLE_CANDIDATE || p->role == SABHA_ROLE_PRECANDIDATE)
    for (uint32_t k = 0; k < p->n_p1_need; k++)
      if (sabha_membership_find(&p->p1_need[k], id) != NULL)
        return true;
  const struct log *l = &p->rl.log;
  for (uint64_t s = p->rl.commit + 1; s <= log_last_index(l); s++) {
    const struct sabha_entry *e = log_get(l, s);
    struct sabha_membership m;
    if (e != NULL && e->type == SABHA_ENTRY_CONFIG &&
        membership_of_entry(e, &m) == 0 && sabha_membership_find(&m, id))
      return true;
  }
  return false;
}

static void add_members(struct mp *p, const struct sabha_membership *m) {
  for (uint32_t k = 0; k < m->n; k++)
    (void)mp_slot_ensure(p, m->members[k].id); /* full: stays unknown */
}

void mp_conf_sync_peers(struct mp *p) {
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &p->peers[i];
    if (pr->id != SABHA_NODE_NONE && !wanted(p, pr->id)) {
      readq_forget(&p->reads, i);
      pr->id = SABHA_NODE_NONE;
    }
  }
  add_members(p, mp_conf_at(p, p->rl.commit + 1));
  add_members(p, mp_conf_latest(p));
  const struct log *l = &p->rl.log;
  for (uint64_t s = p->rl.commit + 1; s <= log_last_index(l); s++) {
    const struct sabha_entry *e = log_get(l, s);
    struct sabha_membership m;
    if (e != NULL && e->type == SABHA_ENTRY_CONFIG &&
        membership_of_entry(e, &m) == 0)
      add_members(p, &m);
  }
  /* CheckQuorum counts the voters that govern the next slot. */
  const struct sabha_membership *now = mp_conf_at(p, p->rl.commit + 1);
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if (p->peers[i].id != SABHA_NODE_NONE)
      p->peers[i].learner = !membership_is_voter(now, p->peers[i].id);
}

static void hist_push(struct mp *p, const struct sabha_membership *m) {
  if (p->n_hist == 2) {
    /* The oldest is in force for every slot still to be judged: a change
     * is proposed only once the one before it is in force. */
    p->conf_base = p->hist[0];
    p->hist[0] = p->hist[1];
    p->n_hist = 1;
  }
  p->hist[p->n_hist++] = *m;
  p->conf_named_self |= sabha_membership_find(m, p->cfg.id) != NULL;
}

void mp_conf_scan(struct mp *p) {
  const struct log *l = &p->rl.log;
  if (p->conf_scanned < l->snap_index)
    p->conf_scanned = l->snap_index;
  uint64_t upto =
      p->rl.commit < log_last_index(l) ? p->rl.commit : log_last_index(l);
  bool changed = false;
  for (uint64_t s = p->conf_scanned + 1; s <= upto; s++) {
    const struct sabha_entry *e = log_get(l, s);
    struct sabha_membership m;
    if (e->type == SABHA_ENTRY_CONFIG && membership_of_entry(e, &m) == 0) {
      membership_removals_note(&p->removals, mp_conf_latest(p), &m);
      hist_push(p, &m);
      changed = true;
    }
  }
  if (upto > p->conf_scanned)
    p->conf_scanned = upto;
  if (changed)
    mp_conf_sync_peers(p);
}

int mp_conf_set_snap(struct mp *p, const struct sabha_membership *m) {
  p->conf_snap = *m;
  return membership_snapshot_entry(m, p->conf_snap_bytes, &p->conf_snap_len,
                                   &p->conf_snap_entry);
}

int mp_conf_init(struct mp *p, const struct sabha_membership *snap) {
  int rv = mp_conf_set_snap(p, snap);
  if (rv != 0)
    return rv;
  if (snap->index > mp_conf_latest(p)->index) /* a snapshot's jump */
    membership_removals_note(&p->removals, mp_conf_latest(p), snap);
  p->conf_named_self |= sabha_membership_find(snap, p->cfg.id) != NULL;
  p->conf_base = *snap;
  p->n_hist = 0;
  p->conf_scanned = p->rl.log.snap_index;
  mp_conf_scan(p);
  mp_conf_sync_peers(p);
  return 0;
}

void mp_conf_note(struct mp *p, const struct sabha_entry *entries, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    struct sabha_membership m;
    if (entries[i].type == SABHA_ENTRY_CONFIG &&
        entries[i].index > p->conf_self_seen &&
        membership_of_entry(&entries[i], &m) == 0 &&
        sabha_membership_find(&m, p->cfg.id) != NULL) {
      p->conf_self_seen = entries[i].index;
      p->conf_named_self = true;
    }
  }
}

bool mp_notice_holds(const struct mp *p) {
  return membership_notice_holds(mp_conf_latest(p), p->cfg.id,
                                 p->removed_notice);
}

uint64_t mp_removed_at(const struct mp *p, uint32_t id) {
  /* Not while it may still accept for slots the removal does not govern
   * yet, nor once a newer membership names it again. */
  if (sabha_membership_find(mp_conf_at(p, p->rl.commit + 1), id) != NULL ||
      sabha_membership_find(mp_conf_latest(p), id) != NULL)
    return 0;
  return membership_removed_at(&p->removals, id);
}

void mp_recv_removed(struct mp *p, const struct sabha_msg *m) {
  if (mp_removed(p) || !membership_notice_believed(mp_conf_latest(p),
                                                   p->cfg.id,
                                                   p->removed_notice, m))
    return; /* knows it already, or not a notice to believe */
  p->removed_notice = m->index;
  mp_become_follower(p, SABHA_NODE_NONE);
}

bool mp_removed(const struct mp *p) {
  if (mp_notice_holds(p))
    return true;
  const struct sabha_membership *now = mp_conf_at(p, p->rl.commit + 1);
  const struct sabha_membership *latest = mp_conf_latest(p);
  return latest->n > 0 && sabha_membership_find(now, p->cfg.id) == NULL &&
         sabha_membership_find(latest, p->cfg.id) == NULL &&
         p->conf_self_seen <= latest->index &&
         (p->conf_named_self || !p->cfg.join);
}

/* The slot a pending change (chosen, not yet in force at the next slot)
 * takes effect at, or 0 when none is pending. */
static uint64_t pending_until(const struct mp *p) {
  const struct sabha_membership *latest = mp_conf_latest(p);
  if (p->n_hist == 0 || latest->index + p->cfg.alpha <= p->rl.commit + 1)
    return 0;
  return latest->index + p->cfg.alpha;
}

void mp_conf_after_commit(struct mp *p) {
  if (p->role != SABHA_ROLE_LEADER)
    return;
  /* A chosen change takes effect alpha slots on: fill them, so that it
   * does without waiting for writes (within the window: the change's
   * slot is chosen, so its last filler is at most commit + alpha - 1). */
  uint64_t until = pending_until(p);
  while (until != 0 && log_last_index(&p->rl.log) + 1 < until) {
    struct sabha_entry e = {.index = log_last_index(&p->rl.log) + 1,
                            .term = p->promised,
                            .type = SABHA_ENTRY_NOOP};
    if (log_append(&p->rl.log, &e) != 0)
      break; /* out of memory: the next commit tries again */
  }
  const struct sabha_membership *now = mp_conf_at(p, p->rl.commit + 1);
  if (membership_is_voter(now, p->cfg.id))
    return;
  /* The membership in force leaves this leader out: hand over. */
  struct progress *best = NULL;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &p->peers[i];
    if (pr->id != SABHA_NODE_NONE && pr->id != p->cfg.id &&
        membership_is_voter(now, pr->id) &&
        (best == NULL || pr->match > best->match))
      best = pr;
  }
  if (best != NULL) {
    struct sabha_msg m = {.type = MP_MSG_TIMEOUT_NOW, .to = best->id};
    mp_send(p, &m, false);
  }
  mp_become_follower(p, SABHA_NODE_NONE);
}

int mp_change(void *state, enum sabha_change_type type, uint32_t id,
              const char *addr) {
  struct mp *p = state;
  if (p->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (p->transferee != SABHA_NODE_NONE)
    return SABHA_ETRANSFER;
  if (id > 255)
    return SABHA_EINVAL; /* node ids live in the ballot's low byte */
  /* The slots phase 1 re-proposed are chosen, the change before is in
   * force, none waits in the log, and the window has room. */
  uint64_t last = log_last_index(&p->rl.log);
  if (p->rl.commit < p->term_start_index || pending_until(p) != 0 ||
      last + 1 > p->rl.commit + p->cfg.alpha)
    return SABHA_EBUSY;
  for (uint64_t s = p->rl.commit + 1; s <= last; s++)
    if (log_get(&p->rl.log, s)->type == SABHA_ENTRY_CONFIG)
      return SABHA_EBUSY;
  struct sabha_membership next;
  int rv = membership_apply_change(mp_conf_latest(p), type, id, addr, &next);
  if (rv != 0)
    return rv;
  /* The old voters would choose the change and the slots up to where it
   * takes effect, and then the new ones could choose nothing more. */
  if (type != SABHA_CHANGE_ADD_LEARNER &&
      !membership_working_majority(&next, p->peers, p->cfg.id,
                                   p->term_start_index))
    return SABHA_EQUORUM;
  if (type == SABHA_CHANGE_PROMOTE) {
    int slot = mp_slot(p, id);
    if (slot < 0 ||
        !membership_caught_up(&p->peers[slot], p->cfg.id, p->rl.commit))
      return SABHA_EBUSY;
  }
  rv = mp_flush_batch(p); /* commands before it keep their order */
  if (rv != 0 && rv != SABHA_EBUSY)
    return rv;
  if (p->batch_n > 0 || p->sealed_n > 0 ||
      log_last_index(&p->rl.log) + 1 > p->rl.commit + p->cfg.alpha)
    return SABHA_EBUSY;
  uint8_t buf[SABHA_MEMBERSHIP_BYTES_MAX];
  size_t len = sabha_membership_encode(&next, buf, sizeof buf);
  if (len == 0)
    return SABHA_EINVAL;
  struct sabha_entry e = {.index = log_last_index(&p->rl.log) + 1,
                          .term = p->promised,
                          .type = SABHA_ENTRY_CONFIG,
                          .size_bytes = (uint32_t)len,
                          .data = buf};
  rv = log_append(&p->rl.log, &e);
  if (rv != 0)
    return rv;
  mp_conf_sync_peers(p); /* a new member hears the log from now on */
  return 0;
}

void mp_members(const void *state, struct sabha_membership *out) {
  const struct mp *p = state;
  *out = *mp_conf_at(p, p->rl.commit + 1);
  if (p->role != SABHA_ROLE_LEADER)
    return;
  membership_fill_progress(out, p->peers, p->cfg.id, replog_self_match(&p->rl),
                           p->rl.commit);
}

int mp_compact_check(const struct mp *p, uint64_t index,
                     struct sabha_membership *out) {
  if (index > p->rl.commit)
    return SABHA_EINVAL;
  /* Every membership chosen at or before `index` must be in force at the
   * slot after it, and the history must reach back that far. */
  if (p->conf_base.index != 0 &&
      p->conf_base.index + p->cfg.alpha > index + 1 &&
      p->conf_base.index > p->rl.log.snap_index)
    return SABHA_EBUSY;
  for (uint32_t k = 0; k < p->n_hist; k++)
    if (p->hist[k].index <= index &&
        p->hist[k].index + p->cfg.alpha > index + 1)
      return SABHA_EBUSY;
  *out = *mp_conf_at(p, index + 1);
  return 0;
}

int mp_membership_at(const void *state, uint64_t index,
                     struct sabha_membership *out) {
  return mp_compact_check(state, index, out);
}
