/* Membership changes (engine.h, sabha_engine_change), held to the pitfalls
 * the literature names, with the synchronous test cluster:
 *
 *   - a learner gets the log (from a snapshot when it was compacted), counts
 *     in no quorum and never campaigns, and is promoted only once caught up;
 *   - a leader proposes no change before it has committed an entry of its
 *     own term, and one change at a time (the single-server change bug,
 *     Ongaro, raft-dev 2015);
 *   - a membership truncated away is no longer in force (Raft thesis §4.1);
 *   - a removed node cannot disrupt the group with elections (§4.2.3), and a
 *     removed leader hands over (§4.2.2, §3.10);
 *   - a node that was down while it was removed is told so by a member when
 *     it comes back, stops, and stays stopped after a restart; a notice
 *     that is stale, or not a member's, stops nobody;
 *   - the membership survives restarts, in the log and with snapshots.
 *
 * The cluster's checkers (two leaders in a term, conflicting applies) run
 * throughout and must stay at zero. */
#include <stdint.h>
#include <string.h>

#include "core/membership.h"
#include "node/runtime.h"
#include "paxos/mp.h"
#include "raft/raft.h"
#include "rt_host.h"
#include "tcluster.h"

static int change(struct tcluster *tc, uint32_t leader,
                  enum sabha_change_type type, uint32_t id) {
  int rv =
      sabha_engine_change(tc->node[leader].e, type, id,
                          type == SABHA_CHANGE_ADD_LEARNER ? "node-x:1" : NULL);
  tc_settle(tc);
  return rv;
}

static uint32_t role_of(struct tcluster *tc, uint32_t at, uint32_t id) {
  struct sabha_membership m = tc_members(tc, at);
  const struct sabha_member *x = sabha_membership_find(&m, id);
  return x == NULL ? 0 : x->role;
}

static bool safe(struct tcluster *tc) {
  return tc->two_leaders == 0 && tc->conflicts == 0 && tc->unsettled == 0;
}

/* A three-voter group led by node 1 with a few entries committed. */
static bool three_with_leader(struct tcluster *tc, const char *protocol) {
  tc_init(tc, protocol, 3, NULL);
  if (!tc_elect(tc, 1))
    return false;
  tc_tick_all(tc, 60);
  for (int i = 0; i < 5; i++)
    tc_propose(tc, 1, "w");
  tc_tick_all(tc, 60);
  /* Raft's leader adds a no-op of its term; Multi-Paxos's has none. */
  return tc_status(tc, 1).commit >= 5 &&
         tc_status(tc, 1).commit == tc_status(tc, 1).last_index;
}

static void learner_catches_up_then_is_promoted(const char *protocol) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, protocol));
  tc_join(&tc, 4);
  CHECK(tc_members(&tc, 4).n == 0); /* knows nothing yet */
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  CHECK(role_of(&tc, 1, 4) == SABHA_MEMBER_LEARNER);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 4).commit == tc_status(&tc, 1).commit);
  CHECK(role_of(&tc, 4, 4) == SABHA_MEMBER_LEARNER);
  struct sabha_membership m = tc_members(&tc, 1);
  CHECK(sabha_membership_find(&m, 4)->caught_up);
  CHECK(strcmp(sabha_membership_find(&m, 4)->addr, "node-x:1") == 0);
  CHECK(change(&tc, 1, SABHA_CHANGE_PROMOTE, 4) == 0);
  tc_tick_all(&tc, 200);
  CHECK(role_of(&tc, 2, 4) == SABHA_MEMBER_VOTER);
  CHECK(tc_status(&tc, 4).voter);
  /* Four voters: a majority is three, so 1 and 4 alone commit nothing. */
  tc_isolate(&tc, 2);
  tc_isolate(&tc, 3);
  uint64_t commit = tc_status(&tc, 1).commit;
  tc_propose(&tc, 1, "needs three");
  tc_tick(&tc, 1, 40);
  CHECK(tc_status(&tc, 1).commit == commit);
  tc_heal(&tc);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 4).commit > commit);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_learner_catches_up_then_is_promoted(void) {
  learner_catches_up_then_is_promoted("raft");
}

static void learners_count_in_no_quorum_and_never_campaign(const char *p) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, p));
  tc_join(&tc, 4);
  tc_join(&tc, 5);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 100);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 5) == 0);
  tc_tick_all(&tc, 100);
  /* Leader and two learners are three of five nodes but one voter of
   * three: nothing commits. */
  tc_isolate(&tc, 2);
  tc_isolate(&tc, 3);
  uint64_t commit = tc_status(&tc, 1).commit;
  tc_propose(&tc, 1, "x");
  tc_tick(&tc, 1, 40);
  CHECK(tc_status(&tc, 4).commit == commit);
  CHECK(tc_status(&tc, 1).commit == commit);
  /* Cut off from everyone, a learner stays quiet for ever. */
  tc_heal(&tc);
  tc_isolate(&tc, 4);
  uint64_t term = tc_status(&tc, 4).term;
  tc_tick(&tc, 4, 3000);
  CHECK(tc_status(&tc, 4).term == term);
  CHECK(tc_status(&tc, 4).role == SABHA_ROLE_FOLLOWER);
  CHECK(!tc_status(&tc, 4).voter);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_learners_count_in_no_quorum_and_never_campaign(void) {
  learners_count_in_no_quorum_and_never_campaign("raft");
}

static void mp_learner_catches_up_then_is_promoted(void) {
  learner_catches_up_then_is_promoted("multipaxos");
}

static void mp_learners_count_in_no_quorum_and_never_campaign(void) {
  learners_count_in_no_quorum_and_never_campaign("multipaxos");
}

/* Drops every acknowledgement of entries: a leader elected now can commit
 * nothing. */
static bool drop_append_acks(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->type == RAFT_MSG_APPEND_RESP;
}

/* The fix to single-server changes: no change before the leader's own term
 * has committed, and one change at a time. */
static void raft_change_waits_for_own_term_and_previous_change(void) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, "raft"));
  tc_join(&tc, 4);
  /* Node 2 takes over, but hears no acknowledgement: its no-op cannot
   * commit, so neither may a change. */
  tc.filter = drop_append_acks;
  CHECK(sabha_engine_transfer_leadership(tc.node[1].e, 2) == 0);
  tc_settle(&tc);
  CHECK(tc_status(&tc, 2).role == SABHA_ROLE_LEADER);
  CHECK(tc_status(&tc, 2).commit < tc_status(&tc, 2).last_index);
  CHECK(sabha_engine_change(tc.node[2].e, SABHA_CHANGE_ADD_LEARNER, 4, "a:1") ==
        SABHA_EBUSY);
  tc.filter = NULL;
  tc_tick_all(&tc, 60);
  CHECK(tc_status(&tc, 2).role == SABHA_ROLE_LEADER);
  CHECK(tc_status(&tc, 2).commit == tc_status(&tc, 2).last_index);
  /* Now it may; but not a second change before the first commits. */
  tc.filter = drop_append_acks;
  CHECK(sabha_engine_change(tc.node[2].e, SABHA_CHANGE_ADD_LEARNER, 4, "a:1") ==
        0);
  tc_settle(&tc);
  CHECK(sabha_engine_change(tc.node[2].e, SABHA_CHANGE_REMOVE, 3, NULL) ==
        SABHA_EBUSY);
  /* Bad changes are refused whatever the state. */
  CHECK(sabha_engine_change(tc.node[3].e, SABHA_CHANGE_REMOVE, 1, NULL) ==
        SABHA_ENOTLEADER);
  tc.filter = NULL;
  tc_tick_all(&tc, 100);
  CHECK(sabha_engine_change(tc.node[2].e, SABHA_CHANGE_ADD_LEARNER, 4, "a:1") ==
        SABHA_EINVAL); /* already a member */
  CHECK(sabha_engine_change(tc.node[2].e, SABHA_CHANGE_PROMOTE, 3, NULL) ==
        SABHA_EINVAL); /* already a voter */
  CHECK(sabha_engine_change(tc.node[2].e, SABHA_CHANGE_ADD_LEARNER, 6,
                            "has space") == SABHA_EINVAL);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* A membership in force on a follower (appended, not committed) is undone
 * when the entry is truncated away. */
static void raft_config_truncated_away_reverts(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 5, NULL);
  CHECK(tc_elect(&tc, 1));
  tc_tick_all(&tc, 100);
  CHECK(tc_status(&tc, 1).commit == tc_status(&tc, 1).last_index);
  /* Only node 2 hears of the change. */
  for (uint32_t id = 3; id <= 5; id++)
    tc_cut(&tc, 1, id);
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 5) == 0);
  CHECK(tc_members(&tc, 2).n == 4); /* in force as soon as appended */
  CHECK(tc_members(&tc, 3).n == 5);
  /* Nodes 1 and 2 are gone; 3, 4 and 5 elect one of them, which then
   * overwrites node 2's log. */
  tc_isolate(&tc, 1);
  tc_isolate(&tc, 2);
  uint32_t leader = 0;
  for (int i = 0; i < 3000 && (leader = tc_leader(&tc)) < 3; i++)
    tc_tick_all(&tc, 1);
  CHECK(leader >= 3);
  tc_heal(&tc);
  tc_isolate(&tc, 1);
  tc_propose(&tc, leader, "new");
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 2).commit == tc_status(&tc, leader).commit);
  CHECK(tc_members(&tc, 2).n == 5);
  CHECK(tc_members(&tc, 2).index == 0); /* back to the initial one */
  CHECK(role_of(&tc, 2, 5) == SABHA_MEMBER_VOTER);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* A node removed while cut off never hears of it; when it comes back it
 * campaigns, but with PreVote and leases it cannot move the group's term or
 * unseat its leader. */
static void raft_removed_node_cannot_disrupt(void) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, "raft"));
  tc_isolate(&tc, 3);
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == 0);
  tc_tick_all(&tc, 100);
  CHECK(tc_status(&tc, 1).commit == tc_status(&tc, 1).last_index);
  CHECK(tc_members(&tc, 1).n == 2);
  /* The next change frees its slot: nobody sends it anything any more. */
  tc_join(&tc, 4);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 100);
  uint64_t term = tc_status(&tc, 1).term;
  tc_heal(&tc);
  tc_tick_all(&tc, 3000);
  CHECK(tc_leader(&tc) == 1);
  CHECK(tc_status(&tc, 1).term == term);
  CHECK(tc_status(&tc, 2).term == term);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* A removed follower that hears of it says so and stops campaigning. */
static void raft_removed_node_learns_it_and_stays_quiet(void) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, "raft"));
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == 0);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 3).removed);
  CHECK(!tc_status(&tc, 3).voter);
  tc_isolate(&tc, 3);
  uint64_t term = tc_status(&tc, 3).term;
  tc_tick(&tc, 3, 3000);
  CHECK(tc_status(&tc, 3).term == term);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* A removed node that learnt of its removal still knows it after a
 * restart, though its state machine (and so the commit index it starts
 * from) is behind the removal: the commit index it made durable says the
 * removal committed. Otherwise it would take itself for a voter whose
 * removal is still pending (raft_may_campaign) and ask for votes at every
 * election timeout for good, since no leader sends it the log any more. */
static void removed_node_stays_removed_after_restart(const char *protocol) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, protocol));
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == 0);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 3).removed);
  /* The next change frees its slot: nobody sends it anything any more. */
  tc_join(&tc, 4);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 200);
  tc_crash(&tc, 3);
  tc_restart(&tc, 3);
  CHECK(tc_status(&tc, 3).removed);
  CHECK(!tc_status(&tc, 3).voter);
  uint64_t term = tc_status(&tc, 3).term;
  bool campaigned = false;
  for (int i = 0; i < 3000 && !campaigned; i++) {
    tc_tick(&tc, 3, 1);
    campaigned = tc_status(&tc, 3).role != SABHA_ROLE_FOLLOWER;
  }
  CHECK(!campaigned);
  CHECK(tc_status(&tc, 3).term == term);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_removed_node_stays_removed_after_restart(void) {
  removed_node_stays_removed_after_restart("raft");
}

static void mp_removed_node_stays_removed_after_restart(void) {
  removed_node_stays_removed_after_restart("multipaxos");
}

/* Was it ever anything but a follower during `ms` of ticking the group? */
static bool campaigns_within(struct tcluster *tc, uint32_t id, int ms) {
  bool campaigned = false;
  for (int i = 0; i < ms; i++) {
    tc_tick_all(tc, 1);
    campaigned |= tc_status(tc, id).role != SABHA_ROLE_FOLLOWER;
  }
  return campaigned;
}

/* Issue 12: a node down while its removal committed never reads that
 * change. When it comes back, the members it asks for votes (or promises)
 * answer that it was removed, naming the membership; it stops as if it had
 * read it, says so, and keeps it across a restart. */
static void removed_while_down_is_told_and_stops(const char *protocol) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, protocol));
  tc_crash(&tc, 3);
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == 0);
  tc_tick_all(&tc, 200);
  struct sabha_membership without = tc_members(&tc, 1);
  CHECK(without.n == 2 && without.index > 0);
  /* The next change frees its slot: nobody sends it anything any more. */
  tc_join(&tc, 4);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 200);
  tc_restart(&tc, 3);
  CHECK(!tc_status(&tc, 3).removed); /* its log does not say so */
  tc_tick_all(&tc, 1000);
  CHECK(tc_status(&tc, 3).removed);
  CHECK(!tc_status(&tc, 3).voter);
  CHECK(tc_status(&tc, 3).removed_notice_index == without.index);
  CHECK(!campaigns_within(&tc, 3, 3000));
  /* Kept: after a restart it neither campaigns nor needs telling again. */
  tc_crash(&tc, 3);
  tc_restart(&tc, 3);
  CHECK(tc_status(&tc, 3).removed);
  tc_isolate(&tc, 3);
  CHECK(!campaigns_within(&tc, 3, 3000));
  tc_heal(&tc);
  CHECK(tc_leader(&tc) == 1);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_removed_while_down_is_told_and_stops(void) {
  removed_while_down_is_told_and_stops("raft");
}

static void mp_removed_while_down_is_told_and_stops(void) {
  removed_while_down_is_told_and_stops("multipaxos");
}

/* Node 3 holds its removal but never learns that it committed: every
 * append or heartbeat to it that says so is lost. */
static uint64_t removal_index;
static bool hide_removal_commit(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->to == 3 && m->commit >= removal_index &&
         (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT);
}

/* A Raft voter whose own removal it holds uncommitted may campaign
 * (raft_may_campaign); once the change committed, a member's notice about
 * that very membership, though not newer than its own, stops it. */
static void raft_removal_held_uncommitted_is_told_and_stops(void) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, "raft"));
  removal_index = tc_status(&tc, 1).last_index + 1;
  tc.filter = hide_removal_commit;
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == 0);
  tc_tick_all(&tc, 200);
  CHECK(tc_members(&tc, 3).index == removal_index);
  CHECK(tc_status(&tc, 1).commit >= removal_index);
  tc_join(&tc, 4);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 1000);
  CHECK(tc_status(&tc, 3).removed);
  CHECK(tc_status(&tc, 3).removed_notice_index == removal_index);
  CHECK(!campaigns_within(&tc, 3, 3000));
  CHECK(tc_leader(&tc) == 1);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* A notice stops only the node it is for: one from a node outside the
 * receiver's membership, or naming a membership the receiver already has
 * or has passed (stale, or replayed), leaves a live voter voting. */
static void stale_or_foreign_notice_stops_nobody(const char *protocol,
                                                 uint32_t type) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, protocol));
  tc_join(&tc, 4);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 200);
  uint64_t have = tc_status(&tc, 2).config_index;
  CHECK(have > 0);
  struct sabha_msg m = {.type = type, .from = 1, .to = 2, .index = have};
  m.term = tc_status(&tc, 1).term;
  sabha_engine_step(tc.node[2].e, &m); /* the membership it has */
  m.index = have - 1; /* an older one */
  sabha_engine_step(tc.node[2].e, &m);
  m.from = 9; /* never a member */
  m.index = have + 100;
  sabha_engine_step(tc.node[2].e, &m);
  CHECK(!tc_status(&tc, 2).removed);
  CHECK(tc_status(&tc, 2).voter);
  CHECK(tc_status(&tc, 2).removed_notice_index == 0);
  tc_tick_all(&tc, 500);
  CHECK(tc_leader(&tc) == 1);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_stale_or_foreign_notice_stops_nobody(void) {
  stale_or_foreign_notice_stops_nobody("raft", RAFT_MSG_REMOVED);
}

static void mp_stale_or_foreign_notice_stops_nobody(void) {
  stale_or_foreign_notice_stops_nobody("multipaxos", MP_MSG_REMOVED);
}

/* The removals a history of committed memberships shows: only a member
 * that a later committed membership leaves out, and not once one names it
 * again. */
static void removals_are_members_left_out_and_not_named_again(void) {
  struct sabha_membership a = {.index = 0, .n = 3};
  for (uint32_t i = 0; i < 3; i++)
    a.members[i] = (struct sabha_member){.id = i + 1,
                                         .role = SABHA_MEMBER_VOTER};
  struct sabha_membership b = a; /* 3 leaves at 10 */
  b.n = 2;
  b.index = 10;
  struct sabha_membership c = b; /* 4 joins at 12 */
  c.members[c.n++] = (struct sabha_member){.id = 4,
                                           .role = SABHA_MEMBER_LEARNER};
  c.index = 12;
  struct sabha_membership empty = {.index = 0, .n = 0};
  struct membership_removals t = {.n = 0};
  membership_removals_note(&t, &empty, &a); /* a joining node's first */
  CHECK(t.n == 0);
  membership_removals_note(&t, &a, &b);
  membership_removals_note(&t, &b, &c);
  CHECK(membership_removed_at(&t, 3) == 10);
  CHECK(membership_removed_at(&t, 4) == 0); /* being added */
  CHECK(membership_removed_at(&t, 7) == 0); /* never seen */
  struct sabha_membership d = a; /* 3 named again at 20 */
  d.index = 20;
  membership_removals_note(&t, &c, &d);
  CHECK(membership_removed_at(&t, 3) == 0);
  CHECK(membership_removed_at(&t, 4) == 20);
  /* Bounded: the oldest makes room. */
  for (uint32_t k = 0; k < 2 * MEMBERSHIP_REMOVALS_MAX; k++) {
    struct sabha_membership x = {.index = 100 + 2 * k, .n = 2};
    x.members[0] = (struct sabha_member){.id = 1, .role = SABHA_MEMBER_VOTER};
    x.members[1] = (struct sabha_member){.id = 200 + k,
                                         .role = SABHA_MEMBER_LEARNER};
    struct sabha_membership y = x;
    y.n = 1;
    y.index = x.index + 1;
    membership_removals_note(&t, &x, &y);
  }
  CHECK(t.n == MEMBERSHIP_REMOVALS_MAX);
  CHECK(membership_removed_at(&t, 200) == 0);
  CHECK(membership_removed_at(&t, 200 + 2 * MEMBERSHIP_REMOVALS_MAX - 1) != 0);
}

/* A removal that would leave fewer than a majority of the remaining voters
 * working is refused (etcd's strict reconfiguration check): with two of
 * five down, removing a third working voter leaves two working of four.
 * Removing one of the down ones is fine, and so is the same removal once
 * they are back. */
/* Five voters led by node 1. */
static bool five_with_leader(struct tcluster *tc, const char *protocol) {
  tc_init(tc, protocol, 5, NULL);
  if (!tc_elect(tc, 1))
    return false;
  tc_tick_all(tc, 100);
  return true;
}

/* Crashes the nodes of `down` (a bit per id) and lets two CheckQuorum
 * periods pass without a word from them; true if node 1 still leads. */
static bool crash_silent(struct tcluster *tc, uint32_t down) {
  for (uint32_t id = 1; id <= tc->n; id++)
    if (down & (1u << id))
      tc_crash(tc, id);
  tc_tick_all(tc, 400);
  return tc_leader(tc) == 1;
}

/* A node that joins after an earlier removal gets the log from the start:
 * it holds, committed, the membership that removed node 5 (and never named
 * it) before it holds the one that adds it. That is being behind, not
 * being removed: it must not say it was (sabhad logs "this node was
 * removed ... it takes no part any more" and turns its clients away when
 * it knows no leader). The real-process chaos test with --membership
 * showed it on every node it added. The leader here hands it one entry at
 * a time, and the filter looks at its status before each. */
struct joiner_watch {
  struct tcluster *tc;
  uint32_t id;
  uint32_t said_removed;
};

static bool one_entry_at_a_time(void *arg, struct sabha_msg *m) {
  struct joiner_watch *w = arg;
  if (m->to != w->id)
    return false;
  if (m->n_entries > 1)
    m->n_entries = 1;
  if (tc_status(w->tc, w->id).removed)
    w->said_removed++;
  return false;
}

static void joining_node_behind_a_removal_is_not_removed(const char *p) {
  struct tcluster tc;
  CHECK(five_with_leader(&tc, p));
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 5) == 0);
  tc_tick_all(&tc, 200);
  CHECK(role_of(&tc, 1, 5) == 0);
  for (int i = 0; i < 5; i++)
    tc_propose(&tc, 1, "after the removal");
  tc_tick_all(&tc, 100);
  tc_crash(&tc, 5); /* gone for good */
  tc_join(&tc, 6);
  struct joiner_watch w = {&tc, 6, 0};
  tc.filter = one_entry_at_a_time;
  tc.filter_arg = &w;
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 6) == 0);
  tc_tick_all(&tc, 3000); /* a slot per heartbeat round, for Multi-Paxos */
  tc.filter = NULL;
  CHECK(w.said_removed == 0);
  CHECK(!tc_status(&tc, 6).removed);
  CHECK(tc_status(&tc, 6).commit == tc_status(&tc, 1).commit);
  CHECK(role_of(&tc, 6, 6) == SABHA_MEMBER_LEARNER);
  /* Node 5 knows it was removed, as before. */
  tc_restart(&tc, 5);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 5).removed);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_joining_node_behind_a_removal_is_not_removed(void) {
  joining_node_behind_a_removal_is_not_removed("raft");
}

static void mp_joining_node_behind_a_removal_is_not_removed(void) {
  joining_node_behind_a_removal_is_not_removed("multipaxos");
}

/* An id a membership removed may be named again, for a new node
 * (SABHA.MEMBER REMOVE 5, then ADD 5). Node 4 reads the removal of 5,
 * committed, and is cut off while the new node 5 is added and promoted:
 * its history still says 5 was removed. 5 is a voter all the same, and
 * may lead or campaign; node 4 must treat it as the voter it is (the
 * simulator found a Multi-Paxos node that dropped its new leader's
 * accepts and never caught up, seed 307 with --faults all,membership). A
 * notice goes only in reply to a campaign, and the one that knows the
 * newer membership does not believe it. */
struct reused_id_watch {
  uint32_t removed_type;
  uint32_t campaign_type[2];
  uint32_t only_campaigner; /* others' campaign messages are lost; 0: none */
  uint32_t notices;         /* removal notices from 4 to 5 */
};

static bool watch_reused_id(void *arg, struct sabha_msg *m) {
  struct reused_id_watch *w = arg;
  if (m->type == w->removed_type && m->from == 4 && m->to == 5)
    w->notices++;
  bool campaign = m->type == w->campaign_type[0] ||
                  m->type == w->campaign_type[1];
  return campaign && w->only_campaigner != 0 && m->from != w->only_campaigner;
}

static bool node_4_behind_a_reused_id(struct tcluster *tc, const char *p) {
  if (!five_with_leader(tc, p))
    return false;
  if (change(tc, 1, SABHA_CHANGE_REMOVE, 5) != 0)
    return false;
  tc_tick_all(tc, 200);
  if (role_of(tc, 4, 5) != 0 ||
      tc_status(tc, 4).commit < tc_members(tc, 4).index)
    return false;
  tc_crash(tc, 5);
  tc_isolate(tc, 4);
  tc_rejoin(tc, 5);
  if (change(tc, 1, SABHA_CHANGE_ADD_LEARNER, 5) != 0)
    return false;
  tc_tick_all(tc, 300);
  if (change(tc, 1, SABHA_CHANGE_PROMOTE, 5) != 0)
    return false;
  tc_tick_all(tc, 200);
  return role_of(tc, 1, 5) == SABHA_MEMBER_VOTER &&
         role_of(tc, 5, 5) == SABHA_MEMBER_VOTER && role_of(tc, 4, 5) == 0 &&
         !tc_status(tc, 5).removed;
}

/* The reused id leads: node 4 takes its heartbeats and appends (accepts,
 * for Multi-Paxos), catches up, and answers none with a notice. */
static void reused_id_leads_a_lagging_member(const char *p,
                                             struct reused_id_watch w) {
  struct tcluster tc;
  CHECK(node_4_behind_a_reused_id(&tc, p));
  CHECK(sabha_engine_transfer_leadership(tc.node[1].e, 5) == 0);
  tc_tick_all(&tc, 50);
  CHECK(tc_leader(&tc) == 5);
  tc.filter = watch_reused_id;
  tc.filter_arg = &w;
  tc_heal(&tc);
  tc_tick_all(&tc, 100);
  for (int i = 0; i < 3; i++)
    CHECK(tc_propose(&tc, 5, "led by the id named again") == 0);
  tc_tick_all(&tc, 500);
  CHECK(tc_leader(&tc) == 5);
  CHECK(tc_status(&tc, 4).commit == tc_status(&tc, 5).commit);
  CHECK(role_of(&tc, 4, 5) == SABHA_MEMBER_VOTER);
  CHECK(w.notices == 0);
  CHECK(!tc_status(&tc, 5).removed);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* The reused id campaigns, and wins only with node 4's vote (promise):
 * 1 and 2 are down and no one else's campaign gets through. Node 4 may
 * say 5 was removed, but still answers the campaign as it would anyone's;
 * 5, which holds the membership that named it again, stays a voter. */
static void reused_id_campaigns_to_a_lagging_member(const char *p,
                                                    struct reused_id_watch w) {
  struct tcluster tc;
  CHECK(node_4_behind_a_reused_id(&tc, p));
  tc_crash(&tc, 1);
  tc_crash(&tc, 2);
  w.only_campaigner = 5;
  tc.filter = watch_reused_id;
  tc.filter_arg = &w;
  tc_heal(&tc);
  for (int i = 0; i < 3000 && tc_leader(&tc) != 5; i++)
    tc_tick_all(&tc, 1);
  CHECK(tc_leader(&tc) == 5);
  CHECK(w.notices > 0); /* the notice 5 must not believe was sent */
  CHECK(!tc_status(&tc, 5).removed);
  CHECK(tc_status(&tc, 5).voter);
  CHECK(tc_status(&tc, 5).removed_notice_index == 0);
  CHECK(tc_propose(&tc, 5, "after the campaign") == 0);
  tc_tick_all(&tc, 500);
  CHECK(tc_leader(&tc) == 5);
  CHECK(tc_status(&tc, 4).commit == tc_status(&tc, 5).commit);
  CHECK(role_of(&tc, 4, 5) == SABHA_MEMBER_VOTER);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static const struct reused_id_watch raft_watch = {
    .removed_type = RAFT_MSG_REMOVED,
    .campaign_type = {RAFT_MSG_PREVOTE, RAFT_MSG_VOTE}};
static const struct reused_id_watch mp_watch = {
    .removed_type = MP_MSG_REMOVED,
    .campaign_type = {MP_MSG_PROBE, MP_MSG_PREPARE}};

static void raft_reused_id_leads_a_lagging_member(void) {
  reused_id_leads_a_lagging_member("raft", raft_watch);
}

static void mp_reused_id_leads_a_lagging_member(void) {
  reused_id_leads_a_lagging_member("multipaxos", mp_watch);
}

static void raft_reused_id_campaigns_to_a_lagging_member(void) {
  reused_id_campaigns_to_a_lagging_member("raft", raft_watch);
}

static void mp_reused_id_campaigns_to_a_lagging_member(void) {
  reused_id_campaigns_to_a_lagging_member("multipaxos", mp_watch);
}

static void removal_without_a_working_majority_is_refused(const char *protocol) {
  struct tcluster tc;
  CHECK(five_with_leader(&tc, protocol));
  CHECK(crash_silent(&tc, 1u << 4 | 1u << 5));
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == SABHA_EQUORUM);
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 1) == SABHA_EQUORUM);
  CHECK(tc_members(&tc, 1).n == 5); /* nothing was appended */
  tc_restart(&tc, 4);
  tc_restart(&tc, 5);
  tc_tick_all(&tc, 200);
  CHECK(tc_leader(&tc) == 1);
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 3) == 0);
  tc_tick_all(&tc, 100);
  CHECK(tc_members(&tc, 1).n == 4);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* Promoting a learner raises the quorum too: with two of five voters
 * down, a sixth voter makes it four, and if the learner has gone silent
 * since it caught up, three working voters can neither commit the change
 * (in force once appended) nor elect anyone. So a promotion, like a
 * removal, is refused unless a majority of the voters it leaves would be
 * working, the learner counted only if it is. */
static void promotion_without_a_working_majority_is_refused(const char *protocol) {
  struct tcluster tc;
  CHECK(five_with_leader(&tc, protocol));
  tc_join(&tc, 6);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 6) == 0);
  tc_tick_all(&tc, 200);
  struct sabha_membership m = tc_members(&tc, 1);
  CHECK(sabha_membership_find(&m, 6)->caught_up);
  CHECK(crash_silent(&tc, 1u << 4 | 1u << 5 | 1u << 6));
  CHECK(change(&tc, 1, SABHA_CHANGE_PROMOTE, 6) == SABHA_EQUORUM);
  CHECK(role_of(&tc, 1, 6) == SABHA_MEMBER_LEARNER);
  /* With the learner back, four of six would work: it goes. */
  tc_restart(&tc, 6);
  tc_tick_all(&tc, 200);
  CHECK(change(&tc, 1, SABHA_CHANGE_PROMOTE, 6) == 0);
  tc_tick_all(&tc, 100);
  CHECK(tc_status(&tc, 1).commit == tc_status(&tc, 1).last_index);
  CHECK(role_of(&tc, 1, 6) == SABHA_MEMBER_VOTER);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_removal_without_a_working_majority_is_refused(void) {
  removal_without_a_working_majority_is_refused("raft");
}

static void mp_removal_without_a_working_majority_is_refused(void) {
  removal_without_a_working_majority_is_refused("multipaxos");
}

static void raft_promotion_without_a_working_majority_is_refused(void) {
  promotion_without_a_working_majority_is_refused("raft");
}

static void mp_promotion_without_a_working_majority_is_refused(void) {
  promotion_without_a_working_majority_is_refused("multipaxos");
}

/* A leader whose own removal is appended but not committed, and which then
 * loses its followers and steps down, may campaign again: it could be the
 * only node that holds the change (a follower that took it may have lost
 * its log), and a group whose voters all wait for it would never elect. */
static void raft_leader_removed_uncommitted_may_campaign(void) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, "raft"));
  CHECK(sabha_engine_change(tc.node[1].e, SABHA_CHANGE_REMOVE, 1, NULL) == 0);
  tc_isolate(&tc, 1);
  tc_settle(&tc);
  CHECK(!tc_status(&tc, 1).voter);
  CHECK(!tc_status(&tc, 1).removed); /* not committed */
  bool campaigned = false;
  for (int i = 0; i < 3000 && !campaigned; i++) {
    tc_tick(&tc, 1, 1);
    campaigned = tc_status(&tc, 1).role == SABHA_ROLE_PRECANDIDATE;
  }
  CHECK(campaigned);
  /* Back together, the group settles one way or the other: the removal
   * commits, or the others elect without it and it is truncated away. */
  tc_heal(&tc);
  tc_tick_all(&tc, 3000);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  CHECK(tc_propose(&tc, leader, "after") == 0);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, leader).commit == tc_status(&tc, leader).last_index);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* Removing the leader: it leads until the change commits, then steps down
 * and another voter takes over without waiting for a timeout. */
static void removed_leader_hands_over(const char *protocol) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, protocol));
  CHECK(change(&tc, 1, SABHA_CHANGE_REMOVE, 1) == 0);
  tc_tick_all(&tc, 5); /* well below the election timeout */
  uint32_t leader = tc_leader(&tc);
  CHECK(leader == 2 || leader == 3);
  CHECK(tc_status(&tc, 1).removed);
  CHECK(tc_status(&tc, 1).role == SABHA_ROLE_FOLLOWER);
  CHECK(tc_propose(&tc, leader, "after") == 0);
  tc_tick_all(&tc, 100);
  CHECK(tc_status(&tc, 2).commit == tc_status(&tc, leader).last_index);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* The membership comes back after a restart: from the log, and from a
 * snapshot's membership once the log is compacted; a learner added after
 * compaction gets the snapshot and its membership. */
static void membership_survives_restart_and_snapshot(const char *protocol) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, protocol));
  tc_join(&tc, 4);
  CHECK(change(&tc, 1, SABHA_CHANGE_ADD_LEARNER, 4) == 0);
  tc_tick_all(&tc, 100);
  CHECK(change(&tc, 1, SABHA_CHANGE_PROMOTE, 4) == 0);
  tc_tick_all(&tc, 100);
  uint64_t conf_index = tc_members(&tc, 2).index;
  CHECK(conf_index > 0);
  tc_crash(&tc, 2);
  tc_restart(&tc, 2);
  /* Raft has it from its log at once; a Multi-Paxos acceptor once it
   * learns again how far the log is chosen (its commit index is a hint). */
  tc_tick_all(&tc, 100);
  CHECK(tc_members(&tc, 2).n == 4 && tc_members(&tc, 2).index == conf_index);
  for (int i = 0; i < 5; i++)
    tc_propose(&tc, 1, "more");
  tc_tick_all(&tc, 100);
  for (uint32_t id = 1; id <= 4; id++)
    CHECK(tc_compact(&tc, id) == 0);
  for (uint32_t id = 1; id <= 4; id++) {
    tc_crash(&tc, id);
    tc_restart(&tc, id);
    CHECK(tc_members(&tc, id).n == 4);
    CHECK(role_of(&tc, id, 4) == SABHA_MEMBER_VOTER);
  }
  tc_tick_all(&tc, 1000);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  tc_join(&tc, 5);
  CHECK(change(&tc, leader, SABHA_CHANGE_ADD_LEARNER, 5) == 0);
  tc_tick_all(&tc, 300);
  CHECK(tc_status(&tc, 5).snapshot_index > 0);
  CHECK(tc_members(&tc, 5).n == 5);
  CHECK(role_of(&tc, 5, 5) == SABHA_MEMBER_LEARNER);
  CHECK(tc_status(&tc, 5).commit == tc_status(&tc, leader).commit);
  tc_crash(&tc, 5);
  tc_restart(&tc, 5);
  CHECK(!tc_status(&tc, 5).removed);
  tc_tick_all(&tc, 100);
  CHECK(tc_members(&tc, 5).n == 5);
  CHECK(safe(&tc));
  tc_free(&tc);
}

static void raft_removed_leader_hands_over(void) {
  removed_leader_hands_over("raft");
}

static void mp_removed_leader_hands_over(void) {
  removed_leader_hands_over("multipaxos");
}

static void raft_membership_survives_restart_and_snapshot(void) {
  membership_survives_restart_and_snapshot("raft");
}

static void mp_membership_survives_restart_and_snapshot(void) {
  membership_survives_restart_and_snapshot("multipaxos");
}

/* Multi-Paxos: a membership chosen at slot i governs slots from i + alpha
 * on (Lamport's reconfiguration). Until then the old voters choose: with
 * the new voter promoted but the window not yet passed, two of the three
 * old voters still make a majority; the leader fills the window with
 * no-ops so the change takes effect without writes. */
static void mp_membership_takes_effect_alpha_slots_later(void) {
  struct tcluster tc;
  CHECK(three_with_leader(&tc, "multipaxos"));
  tc_join(&tc, 4);
  CHECK(sabha_engine_change(tc.node[1].e, SABHA_CHANGE_ADD_LEARNER, 4, "x:1") ==
        0);
  uint64_t chosen_at = tc_status(&tc, 1).last_index;
  /* One change at a time: the next waits until this one is in force. */
  CHECK(sabha_engine_change(tc.node[1].e, SABHA_CHANGE_ADD_LEARNER, 5, "x:2") ==
        SABHA_EBUSY);
  CHECK(role_of(&tc, 1, 4) == 0);
  tc_settle(&tc);
  /* Chosen, then the window filled with no-ops so that it takes effect
   * alpha slots on. */
  CHECK(tc_status(&tc, 1).last_index >= chosen_at + tc.cfg[1].alpha - 1);
  tc_tick_all(&tc, 100);
  CHECK(tc_members(&tc, 1).index == chosen_at);
  CHECK(role_of(&tc, 2, 4) == SABHA_MEMBER_LEARNER);
  CHECK(role_of(&tc, 4, 4) == SABHA_MEMBER_LEARNER);
  /* It is in force now: the next change may go. */
  CHECK(sabha_engine_change(tc.node[1].e, SABHA_CHANGE_PROMOTE, 4, NULL) == 0);
  CHECK(sabha_engine_change(tc.node[1].e, SABHA_CHANGE_REMOVE, 2, NULL) ==
        SABHA_EBUSY);
  tc_tick_all(&tc, 100);
  CHECK(role_of(&tc, 3, 4) == SABHA_MEMBER_VOTER);
  CHECK(safe(&tc));
  tc_free(&tc);
}

/* The encoding is checked as a peer's input must be. */
static void membership_decoding_refuses_bad_input(void) {
  struct sabha_membership m = {.n = 2};
  m.members[0] = (struct sabha_member){.id = 1, .role = SABHA_MEMBER_VOTER};
  m.members[1] = (struct sabha_member){.id = 7, .role = SABHA_MEMBER_LEARNER};
  strcpy(m.members[1].addr, "127.0.0.1:7000");
  uint8_t buf[SABHA_MEMBERSHIP_BYTES_MAX];
  size_t len = sabha_membership_encode(&m, buf, sizeof buf);
  CHECK(len > 0);
  struct sabha_membership out;
  CHECK(sabha_membership_decode(buf, len, &out) == 0);
  CHECK(out.n == 2 && out.members[1].id == 7 &&
        strcmp(out.members[1].addr, "127.0.0.1:7000") == 0);
  for (size_t cut = 0; cut < len; cut++)
    CHECK(sabha_membership_decode(buf, cut, &out) == SABHA_ECORRUPT);
  uint8_t bad[SABHA_MEMBERSHIP_BYTES_MAX + 1];
  memcpy(bad, buf, len);
  bad[len] = 0;
  CHECK(sabha_membership_decode(bad, len + 1, &out) == SABHA_ECORRUPT);
  memcpy(bad, buf, len);
  bad[8 + 4] = 9; /* an unknown role */
  CHECK(sabha_membership_decode(bad, len, &out) == SABHA_ECORRUPT);
  m.members[1].id = 1; /* a repeated id */
  CHECK(sabha_membership_encode(&m, buf, sizeof buf) == 0);
  m.members[1].id = 7;
  m.members[0].role = SABHA_MEMBER_LEARNER; /* no voter */
  CHECK(sabha_membership_encode(&m, buf, sizeof buf) == 0);
  m.members[0].role = SABHA_MEMBER_VOTER;
  strcpy(m.members[1].addr, "with space");
  CHECK(sabha_membership_encode(&m, buf, sizeof buf) == 0);
}

/* The addresses sabhad puts in a membership entry parse back; anything
 * else is refused. */
static void member_address_parses_or_is_refused(void) {
  struct rt_addr peer, client;
  CHECK(rt_member_addr_parse("peer=127.0.0.1:17203,client=10.0.0.4:17003",
                             &peer, &client));
  CHECK(strcmp(peer.host, "127.0.0.1") == 0 && peer.port == 17203);
  CHECK(strcmp(client.host, "10.0.0.4") == 0 && client.port == 17003);
  static const char *const bad[] = {
      "",
      "sim",
      "peer=127.0.0.1:17203",
      "peer=127.0.0.1:0,client=127.0.0.1:1",
      "peer=127.0.0.1:65536,client=127.0.0.1:1",
      "peer=:1,client=127.0.0.1:1",
      "peer=h:1,client=h:x",
      "client=h:1,peer=h:2",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(!rt_member_addr_parse(bad[i], &peer, &client));
}

/* The reply of node 1, alone and leading, to one command line. */
static const char *alone_says(struct rt_node *n, struct rt_stream *c,
                              const char *line) {
  rt_stream_input(c, line, strlen(line));
  rt_node_settle(n);
  return rt_stream_said(c);
}

/* SABHA.MEMBER ADD takes only an address sabhad can use: one it cannot
 * parse would be committed for good while no member dials the new node or
 * lets it in, so it never catches up and its promotion waits forever. */
static void member_add_refuses_an_address_no_node_can_use(void) {
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL && c != NULL);
  static const char *const bad[] = {
      "SABHA.MEMBER ADD 4 node-x:1\r\n",
      "SABHA.MEMBER ADD 4 peer=127.0.0.1:17204\r\n",
      "SABHA.MEMBER ADD 4 peer=127.0.0.1:0,client=127.0.0.1:17004\r\n",
      /* Names: the transport dials numeric addresses only (as --peers). */
      "SABHA.MEMBER ADD 4 peer=node4:17204,client=127.0.0.1:17004\r\n",
      "SABHA.MEMBER ADD 4 peer=127.0.0.1:17204,client=localhost:17004\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(strncmp(alone_says(&n, c, bad[i]), "-ERR the address", 16) == 0);
  CHECK(alone_says(&n, c,
                   "SABHA.MEMBER ADD 4 "
                   "peer=127.0.0.1:17204,client=127.0.0.1:17004\r\n")[0] ==
        ':');
  rt_node_close(&n);
}

int main(void) {
  RUN(membership_decoding_refuses_bad_input);
  RUN(member_address_parses_or_is_refused);
  RUN(member_add_refuses_an_address_no_node_can_use);
  RUN(raft_learner_catches_up_then_is_promoted);
  RUN(raft_learners_count_in_no_quorum_and_never_campaign);
  RUN(raft_change_waits_for_own_term_and_previous_change);
  RUN(raft_config_truncated_away_reverts);
  RUN(raft_removed_node_cannot_disrupt);
  RUN(raft_removed_node_learns_it_and_stays_quiet);
  RUN(raft_removed_leader_hands_over);
  RUN(raft_removed_node_stays_removed_after_restart);
  RUN(removals_are_members_left_out_and_not_named_again);
  RUN(raft_removed_while_down_is_told_and_stops);
  RUN(raft_stale_or_foreign_notice_stops_nobody);
  RUN(raft_removal_held_uncommitted_is_told_and_stops);
  RUN(raft_removal_without_a_working_majority_is_refused);
  RUN(raft_promotion_without_a_working_majority_is_refused);
  RUN(raft_leader_removed_uncommitted_may_campaign);
  RUN(raft_membership_survives_restart_and_snapshot);
  RUN(mp_learner_catches_up_then_is_promoted);
  RUN(mp_learners_count_in_no_quorum_and_never_campaign);
  RUN(mp_removed_leader_hands_over);
  RUN(mp_removed_node_stays_removed_after_restart);
  RUN(mp_removed_while_down_is_told_and_stops);
  RUN(mp_stale_or_foreign_notice_stops_nobody);
  RUN(mp_membership_survives_restart_and_snapshot);
  RUN(mp_membership_takes_effect_alpha_slots_later);
  RUN(mp_removal_without_a_working_majority_is_refused);
  RUN(mp_promotion_without_a_working_majority_is_refused);
  RUN(raft_joining_node_behind_a_removal_is_not_removed);
  RUN(mp_joining_node_behind_a_removal_is_not_removed);
  RUN(raft_reused_id_leads_a_lagging_member);
  RUN(mp_reused_id_leads_a_lagging_member);
  RUN(raft_reused_id_campaigns_to_a_lagging_member);
  RUN(mp_reused_id_campaigns_to_a_lagging_member);
  return tc_failures == 0 ? 0 : 1;
}
