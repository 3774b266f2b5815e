/* async elections: by priority, with no look at the logs.
 *
 * A backup that hears no primary for its election timeout becomes a
 * candidate: it takes the next term, votes for itself and asks the others.
 * A majority of votes makes it primary, and each node votes once per term,
 * so there is never more than one primary in a term (election safety holds,
 * as in Raft §5.2).
 *
 * Priority: the lower the node id, the higher the priority. Higher-priority
 * nodes time out sooner (async.c: the ranks' windows do not overlap), so of
 * the nodes that lose a primary together the best live one usually stands
 * first; and a node grants its vote only to a candidate whose priority is
 * at least that of every candidate it has heard from in the term (with one
 * vote per term, that bar matters when the better candidate asked while
 * this node could not vote for it). What a voter does NOT do is Raft's §5.4.1 check that
 * the candidate's log is at least as up to date as its own. That is the
 * point of the baseline: a node that missed the newest acknowledged writes
 * can win, its log wins, and those writes are rolled back everywhere. */
#include <assert.h>

#include "async/async.h"

static uint32_t count_bits(uint32_t x) {
  uint32_t n = 0;
  for (; x != 0; x &= x - 1)
    n++;
  return n;
}

static void async_tally(struct async_node *a, uint32_t from, bool granted) {
  int slot = async_voter_slot(a, from);
  assert(slot >= 0);
  uint32_t bit = 1u << slot;
  if (granted)
    a->votes_granted |= bit;
  else
    a->votes_refused |= bit;
}

static void async_check_tally(struct async_node *a) {
  uint32_t quorum = a->cfg.n_voters / 2 + 1;
  if (count_bits(a->votes_granted) >= quorum)
    async_become_primary(a);
  else if (count_bits(a->votes_refused) >= quorum)
    async_become_follower(a, a->term, SABHA_NODE_NONE);
}

/* True when `id` has a priority at least that of `other` (none: any). */
static bool priority_at_least(uint32_t id, uint32_t other) {
  return other == SABHA_NODE_NONE || id <= other;
}

void async_campaign(struct async_node *a) {
  assert(a->role != SABHA_ROLE_LEADER);
  a->role = SABHA_ROLE_CANDIDATE;
  a->term++;
  a->terms_burned++;
  a->vote = a->cfg.id;
  a->best_candidate = a->cfg.id;
  a->leader = SABHA_NODE_NONE;
  a->elections_started++;
  a->votes_granted = 0;
  a->votes_refused = 0;
  async_reset_election_timer(a);
  async_tally(a, a->cfg.id, true);
  for (uint32_t i = 0; i < a->cfg.n_voters; i++) {
    uint32_t id = a->cfg.voters[i];
    if (id == a->cfg.id)
      continue;
    struct sabha_msg m = {.type = ASYNC_MSG_VOTE, .to = id};
    /* After the self-vote is durable: a node that crashed before writing
     * it could otherwise vote for another in the same term. */
    async_send(a, &m, true);
  }
  async_check_tally(a); /* a group of one wins at once */
}

void async_recv_vote(struct async_node *a, const struct sabha_msg *m) {
  /* Every candidate heard counts towards the bar, granted or not. */
  bool best = priority_at_least(m->from, a->best_candidate);
  if (best)
    a->best_candidate = m->from;
  bool can_vote = a->vote == m->from ||
                  (a->vote == SABHA_NODE_NONE && a->leader == SABHA_NODE_NONE);
  struct sabha_msg resp = {.type = ASYNC_MSG_VOTE_RESP, .to = m->from};
  if (can_vote && best && a->role != SABHA_ROLE_LEADER) {
    a->vote = m->from;
    async_reset_election_timer(a);
  } else {
    resp.reject = 1;
  }
  /* The vote is durable before the candidate hears of it. */
  async_send(a, &resp, true);
}

void async_recv_vote_resp(struct async_node *a, const struct sabha_msg *m) {
  if (a->role != SABHA_ROLE_CANDIDATE || m->term != a->term)
    return;
  async_tally(a, m->from, !m->reject);
  async_check_tally(a);
}
