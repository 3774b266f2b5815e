/* Raft membership: learners and single-server changes (thesis §4).
 *
 * A membership is a CONFIG entry in the log. As the thesis has it (§4.1), a
 * server uses the newest membership in its log from the moment the entry is
 * appended, committed or not; if the entry is truncated away (it was never
 * committed) the server falls back to the one before it, and a snapshot
 * carries the membership as of its index. Safety comes from changing one
 * server at a time: any majority of the old voters and any majority of the
 * new ones share a server, so two leaders cannot be elected in one term by
 * disjoint majorities. Two more rules keep it so:
 *
 *   - one change at a time: a leader proposes a change only once the
 *     previous one is committed;
 *   - a new leader proposes no change before an entry of its own term is
 *     committed (Ongaro, "bug in single-server membership changes",
 *     raft-dev, 2015): without it, a change still uncommitted from an
 *     earlier term and a new one can each have a majority that shares no
 *     server with the other's, and a committed entry can be lost.
 *
 * Learners (thesis §4.2.1: "new servers join as non-voting members") get
 * the log, from a snapshot when it was compacted, and count in no quorum
 * (not for commit, elections, CheckQuorum or reads); a learner is promoted
 * only once it holds everything committed, so that adding a voter never
 * leaves the group waiting for a node that is far behind.
 *
 * Removal (thesis §4.2.2): a removed leader keeps leading until the change
 * commits, without counting itself, then steps down and asks the most
 * caught-up voter to campaign at once (TimeoutNow, §3.10). A removed
 * server no longer campaigns; the leader keeps sending the log to it until
 * the next change, so that it learns of its removal and says so
 * (sabha_status.removed). One that never hears of it may ask for
 * pre-votes, which a majority that follows a leader refuses (§4.2.3, with
 * the lease rule of raft.c), so it cannot disrupt the group; and a member
 * that hears it campaign answers with a REMOVED notice naming the committed
 * membership that left it out (as etcd answers a removed member), upon
 * which it stops as if it had read that membership itself. Only a
 * member's notice counts, and only for a membership newer than the one the
 * node has: a notice that is stale or replayed never stops a member. */
#include <assert.h>
#include <string.h>

#include "raft/raft.h"

int raft_slot(const struct raft *r, uint32_t id) {
  if (id == SABHA_NODE_NONE)
    return -1;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if (r->peers[i].id == id)
      return (int)i;
  return -1;
}

bool raft_is_voter(const struct raft *r, uint32_t id) {
  return membership_is_voter(&r->conf, id);
}

uint32_t raft_voter_mask(const struct raft *r) {
  uint32_t mask = 0;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if (r->peers[i].id != SABHA_NODE_NONE && raft_is_voter(r, r->peers[i].id))
      mask |= 1u << i;
  return mask;
}

static void slot_clear(struct raft *r, uint32_t i) {
  r->votes_granted &= ~(1u << i);
  r->votes_refused &= ~(1u << i);
  readq_forget(&r->reads, i);
  r->leaving[i] = false;
}

/* Gives every member of `conf` a slot, and takes them from those that left
 * (on a leader, after one change as `leaving`). */
void raft_conf_sync_peers(struct raft *r) {
  bool leader = r->role == SABHA_ROLE_LEADER;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &r->peers[i];
    if (pr->id == SABHA_NODE_NONE)
      continue;
    const struct sabha_member *x = sabha_membership_find(&r->conf, pr->id);
    if (x != NULL) {
      pr->learner = x->role != SABHA_MEMBER_VOTER &&
                    !(r->cfg.bugs & SABHA_BUG_LEARNER_QUORUM);
      r->leaving[i] = false;
    } else if (leader && !r->leaving[i]) {
      r->leaving[i] = true;
      pr->learner = true;
    } else {
      slot_clear(r, i);
      pr->id = SABHA_NODE_NONE;
    }
  }
  for (uint32_t k = 0; k < r->conf.n; k++) {
    const struct sabha_member *x = &r->conf.members[k];
    if (raft_slot(r, x->id) >= 0)
      continue;
    int free_slot = -1;
    for (uint32_t i = 0; i < SABHA_NODES_MAX && free_slot < 0; i++)
      if (r->peers[i].id == SABHA_NODE_NONE)
        free_slot = (int)i;
    for (uint32_t i = 0; i < SABHA_NODES_MAX && free_slot < 0; i++)
      if (r->leaving[i])
        free_slot = (int)i; /* members come before leavers */
    assert(free_slot >= 0); /* members are at most SABHA_NODES_MAX */
    struct progress *pr = &r->peers[free_slot];
    slot_clear(r, (uint32_t)free_slot);
    pr->id = x->id;
    pr->learner = x->role != SABHA_MEMBER_VOTER &&
                  !(r->cfg.bugs & SABHA_BUG_LEARNER_QUORUM);
    progress_reset(pr, log_last_index(&r->rl.log) + 1);
    if (x->id == r->cfg.id) {
      pr->match = replog_self_match(&r->rl);
      pr->state = PROGRESS_REPLICATE;
    }
  }
}

int raft_membership_at(const struct raft *r, uint64_t index,
                       struct sabha_membership *out) {
  const struct log *l = &r->rl.log;
  if (index < l->snap_index || index > log_last_index(l))
    return SABHA_EINVAL;
  for (uint64_t i = index; i > l->snap_index; i--) {
    const struct sabha_entry *e = log_get(l, i);
    if (e->type == SABHA_ENTRY_CONFIG)
      return membership_of_entry(e, out) == 0 ? 0 : SABHA_ECORRUPT;
  }
  *out = r->conf_snap;
  return 0;
}

int raft_conf_reload(struct raft *r) {
  struct sabha_membership m;
  int rv = raft_membership_at(r, log_last_index(&r->rl.log), &m);
  if (rv != 0)
    return rv;
  r->conf = m;
  r->conf_named_self |= sabha_membership_find(&m, r->cfg.id) != NULL;
  raft_conf_sync_peers(r);
  return 0;
}

void raft_conf_scan_self(struct raft *r) {
  const struct log *l = &r->rl.log;
  for (uint64_t i = log_first_index(l);
       i <= log_last_index(l) && !r->conf_named_self; i++) {
    const struct sabha_entry *e = log_get(l, i);
    struct sabha_membership m;
    if (e->type == SABHA_ENTRY_CONFIG && membership_of_entry(e, &m) == 0)
      r->conf_named_self = sabha_membership_find(&m, r->cfg.id) != NULL;
  }
}

int raft_conf_set_snap(struct raft *r, const struct sabha_membership *m) {
  r->conf_snap = *m;
  r->conf_named_self |= sabha_membership_find(m, r->cfg.id) != NULL;
  return membership_snapshot_entry(m, r->conf_snap_bytes, &r->conf_snap_len,
                                   &r->conf_snap_entry);
}

/* Is the membership in force committed, as far as this node knows? */
static bool conf_committed(const struct raft *r) {
  return r->conf.index <= r->rl.commit || r->conf.index <= r->commit_on_disk;
}

/* A believed notice stands until this node reads a newer membership (one
 * that names it again, were an id ever reused). */
bool raft_notice_holds(const struct raft *r) {
  return membership_notice_holds(&r->conf, r->cfg.id, r->removed_notice);
}

bool raft_removed(const struct raft *r) {
  if (raft_notice_holds(r))
    return true;
  return r->conf.n > 0 && sabha_membership_find(&r->conf, r->cfg.id) == NULL &&
         conf_committed(r) && (r->conf_named_self || !r->cfg.join);
}

/* Reads the committed memberships not read yet for removals; what a
 * snapshot covered is known only as the membership it carries. */
static void removals_scan(struct raft *r) {
  const struct log *l = &r->rl.log;
  if (r->removals_scanned < l->snap_index) {
    if (r->conf_snap.index > r->removals_conf.index) {
      membership_removals_note(&r->removals, &r->removals_conf, &r->conf_snap);
      r->removals_conf = r->conf_snap;
    }
    r->removals_scanned = l->snap_index;
  }
  uint64_t upto = r->rl.commit > r->commit_on_disk ? r->rl.commit
                                                   : r->commit_on_disk;
  if (upto > log_last_index(l))
    upto = log_last_index(l);
  for (uint64_t i = r->removals_scanned + 1; i <= upto; i++) {
    const struct sabha_entry *e = log_get(l, i);
    struct sabha_membership m;
    if (e->type != SABHA_ENTRY_CONFIG || membership_of_entry(e, &m) != 0)
      continue;
    membership_removals_note(&r->removals, &r->removals_conf, &m);
    r->removals_conf = m;
  }
  if (upto > r->removals_scanned)
    r->removals_scanned = upto;
}

uint64_t raft_removed_at(struct raft *r, uint32_t id) {
  if (sabha_membership_find(&r->conf, id) != NULL)
    return 0; /* a member here, whatever an older membership said */
  removals_scan(r);
  return membership_removed_at(&r->removals, id);
}

void raft_recv_removed(struct raft *r, const struct sabha_msg *m) {
  if (raft_removed(r) ||
      !membership_notice_believed(&r->conf, r->cfg.id, r->removed_notice, m))
    return; /* knows it already, or not a notice to believe */
  r->removed_notice = m->index;
  raft_become_follower(r, r->term, SABHA_NODE_NONE);
}

/* A voter of the membership in force campaigns; so does a node that only
 * an uncommitted change leaves out, if the membership before that change
 * made it a voter. Without that, a removal could wedge the group: say the
 * leader appends its own removal, one voter gets the entry and then loses
 * its log (it rejoins under a repair guard, refusing every vote until it
 * holds the entry again), and the leader loses touch and steps down. The
 * old leader is now the only node with the entry, so no voter that lacks
 * it gets its vote, and it may not campaign itself: nobody can win. Letting
 * it campaign is safe for the same reason as its leading on until the
 * change commits (§4.2.2): it counts the votes of the membership in force,
 * not its own, and any majority of that membership shares a voter with
 * any majority of the one before (one change at a time). Once elected it
 * commits an entry of its term, the change with it, and hands over
 * (raft_conf_after_commit). Learners and nodes being added still never
 * campaign. */
bool raft_may_campaign(const struct raft *r) {
  if (raft_notice_holds(r))
    return false;
  if (raft_is_voter(r, r->cfg.id))
    return true;
  if (conf_committed(r) || sabha_membership_find(&r->conf, r->cfg.id) != NULL)
    return false; /* removed for good, or a learner */
  struct sabha_membership before;
  if (raft_membership_at(r, r->conf.index - 1, &before) != 0)
    return false;
  return membership_is_voter(&before, r->cfg.id);
}

/* A leader that the committed membership leaves out steps down and hands
 * over to the voter that holds the most (thesis §4.2.2, §3.10). */
void raft_conf_after_commit(struct raft *r) {
  if (r->role != SABHA_ROLE_LEADER || raft_is_voter(r, r->cfg.id) ||
      r->conf.index > r->rl.commit)
    return;
  struct progress *best = NULL;
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &r->peers[i];
    if (pr->id != SABHA_NODE_NONE && pr->id != r->cfg.id && !pr->learner &&
        (best == NULL || pr->match > best->match))
      best = pr;
  }
  if (best != NULL) {
    struct sabha_msg m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = best->id};
    raft_send(r, &m, false);
  }
  raft_become_follower(r, r->term, SABHA_NODE_NONE);
}

int raft_change(void *state, enum sabha_change_type type, uint32_t id,
                const char *addr) {
  struct raft *r = state;
  if (r->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (r->transferee != SABHA_NODE_NONE)
    return SABHA_ETRANSFER;
  /* One change at a time, and none before this term has committed. */
  if (r->rl.commit < r->term_start_index || r->conf.index > r->rl.commit)
    return SABHA_EBUSY;
  struct sabha_membership next;
  int rv = membership_apply_change(&r->conf, type, id, addr, &next);
  if (rv != 0)
    return rv;
  if (type != SABHA_CHANGE_ADD_LEARNER &&
      !membership_working_majority(&next, r->peers, r->cfg.id,
                                   r->term_start_index))
    return SABHA_EQUORUM;
  if (type == SABHA_CHANGE_PROMOTE) {
    int slot = raft_slot(r, id);
    if (slot < 0 ||
        !membership_caught_up(&r->peers[slot], r->cfg.id, r->rl.commit))
      return SABHA_EBUSY;
  }
  if (log_last_index(&r->rl.log) - r->rl.commit >=
      r->cfg.uncommitted_entries_max)
    return SABHA_EBUSY;
  uint8_t buf[SABHA_MEMBERSHIP_BYTES_MAX];
  size_t len = sabha_membership_encode(&next, buf, sizeof buf);
  if (len == 0)
    return SABHA_EINVAL;
  rv = raft_append_local(r, SABHA_ENTRY_CONFIG, buf, len);
  if (rv != 0)
    return rv;
  next.index = log_last_index(&r->rl.log);
  r->conf = next; /* in force now, not when committed (§4.1) */
  raft_conf_sync_peers(r);
  return 0;
}

void raft_members(const void *state, struct sabha_membership *out) {
  const struct raft *r = state;
  *out = r->conf;
  if (r->role != SABHA_ROLE_LEADER)
    return;
  membership_fill_progress(out, r->peers, r->cfg.id, replog_self_match(&r->rl),
                           r->rl.commit);
}

int raft_membership_at_op(const void *state, uint64_t index,
                          struct sabha_membership *out) {
  return raft_membership_at(state, index, out);
}
