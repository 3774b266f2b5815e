/* Membership helpers the engines share: the initial membership, voter
 * counts and quorums, and a CONFIG entry's bytes built from a change.
 *
 * The public half (encode, decode, find) is declared in
 * include/sabha/engine.h; this header adds what only engines need. */
#ifndef SABHA_CORE_MEMBERSHIP_H
#define SABHA_CORE_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/progress.h"
#include "sabha/engine.h"

/* Every voter of `cfg` (none for a joining node), index 0, no addresses. */
void membership_initial(const struct sabha_config *cfg,
                        struct sabha_membership *out);
uint32_t membership_voters(const struct sabha_membership *m);
/* A majority of the voters (at least 1). */
uint32_t membership_quorum(const struct sabha_membership *m);
bool membership_is_voter(const struct sabha_membership *m, uint32_t id);

/* The membership `cur` becomes under a change, checked (engine.h,
 * sabha_engine_change: SABHA_EINVAL for a change that does not fit).
 * `out->index` is left 0 for the caller to set. */
int membership_apply_change(const struct sabha_membership *cur,
                            enum sabha_change_type type, uint32_t id,
                            const char *addr, struct sabha_membership *out);

/* The membership a CONFIG entry holds (its index set from the entry).
 * Returns 0 or SABHA_ECORRUPT. */
int membership_of_entry(const struct sabha_entry *e,
                        struct sabha_membership *out);
/* True when every CONFIG entry among `entries` decodes: a peer's entries
 * are checked before any is taken. */
bool membership_entries_valid(const struct sabha_entry *entries, uint32_t n);
/* The membership a snapshot message carries: its one CONFIG entry, of an
 * index the snapshot covers. Returns 0 or SABHA_ECORRUPT. */
int membership_of_snapshot_msg(const struct sabha_msg *m,
                               struct sabha_membership *out);
/* The CONFIG entry that carries `m` (encoded into `buf` of
 * SABHA_MEMBERSHIP_BYTES_MAX bytes) in snapshot messages; an empty entry
 * (no members: a joining node) gives *len 0. Returns 0 or SABHA_EINVAL. */
int membership_snapshot_entry(const struct sabha_membership *m, uint8_t *buf,
                              size_t *len, struct sabha_entry *entry);

/* A member a leader may promote: it holds everything committed and is
 * being replicated to (the leader itself always is). */
bool membership_caught_up(const struct progress *pr, uint32_t self_id,
                          uint64_t commit);
/* Could the voters of `next` commit and elect without the ones that are
 * down? A leader refuses a removal or a promotion otherwise, as etcd's
 * strict reconfiguration check does: with five voters of which two are
 * down, removing a third working one leaves two working of four, and
 * promoting a learner that has gone silent leaves three working of six;
 * either way the group can neither finish the change nor elect a leader,
 * and if the leader removed itself nobody leads until a node comes back.
 * Repaired nodes make it worse: one under a repair guard needs a leader to
 * catch up before it may vote again. Working here is: the leader itself
 * (`self_id`), or a voter of `peers` (the SABHA_NODES_MAX slots) heard
 * from within the last two CheckQuorum periods, that has taken what this
 * leader wrote from `term_start_index` on (so the benefit of the doubt a
 * new leader gives every peer does not count) and says no repair guard
 * holds it. */
bool membership_working_majority(const struct sabha_membership *next,
                                 const struct progress *peers,
                                 uint32_t self_id, uint64_t term_start_index);
/* Fills each member's match and caught_up from a leader's `peers` (the
 * SABHA_NODES_MAX slots; `self_match` for the leader itself). */
void membership_fill_progress(struct sabha_membership *m,
                              const struct progress *peers, uint32_t self_id,
                              uint64_t self_match, uint64_t commit);

/* Who a committed history of memberships removed, for answering a node
 * that never learnt it was (docs/engines.md, "Removed nodes that were
 * away"). A removal counts only when one committed membership names an id
 * and the next committed one does not; an id that a later committed one
 * names again is forgotten (the engine does not forbid reusing an id, and a
 * member is never told it was removed). Bounded: the oldest removal makes
 * room for a new one, and what a snapshot compacted before this node read
 * it is not known, so a node may go unanswered, never wrongly answered. */
#define MEMBERSHIP_REMOVALS_MAX 32u

struct membership_removals {
  uint32_t n;
  uint32_t id[MEMBERSHIP_REMOVALS_MAX];
  uint64_t index[MEMBERSHIP_REMOVALS_MAX]; /* the removing membership's */
};

/* Notes what changed from committed membership `before` to the next
 * committed one, `after` (whose index is the removal's). A `before` with
 * no members (a joining node's) removes nobody. */
void membership_removals_note(struct membership_removals *t,
                              const struct sabha_membership *before,
                              const struct sabha_membership *after);
/* The index of the committed membership that removed `id`, or 0. */
uint64_t membership_removed_at(const struct membership_removals *t,
                               uint32_t id);
/* Is a REMOVED notice `m` to be believed by node `self_id`, whose own
 * membership is `own` and which believed one naming `believed` already
 * (0: none)? The peer link proves the sender is of the cluster, not that
 * it is still a member or that it speaks of today: a member's word only,
 * and only about a membership newer than both; or about `own` itself when
 * `own` leaves this node out (it is saying that membership committed,
 * which stays true however old the notice). */
bool membership_notice_believed(const struct sabha_membership *own,
                                uint32_t self_id, uint64_t believed,
                                const struct sabha_msg *m);
/* Does a notice naming `index` (0: none) still stop node `self_id` whose
 * membership is `own`: is it newer, or about `own` leaving it out? A newer
 * membership ends it (one naming the node again, were an id reused). */
bool membership_notice_holds(const struct sabha_membership *own,
                             uint32_t self_id, uint64_t index);

#endif
