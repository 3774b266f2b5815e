/* Raft leader election: PreVote, RequestVote and TimeoutNow.
 *
 * §5.2 and thesis §3.4: a follower that hears nothing for a randomized
 * election timeout becomes a candidate, increments its term, votes for
 * itself and asks the others; a majority makes it leader. Thesis §9.6
 * (PreVote): before disrupting anyone, a node first asks whether it could
 * win, without raising its term, so a node that was cut off cannot force a
 * healthy cluster into a new term when it returns. Thesis §3.10: TimeoutNow
 * makes the target of a leadership transfer campaign at once. */
#include <assert.h>

#include "raft/raft.h"

bool raft_log_up_to_date(const struct raft *r, uint64_t last_index,
                         uint64_t last_term) {
  /* §5.4.1: compare the terms of the last entries, then the lengths. */
  uint64_t my_term = log_last_term(&r->rl.log);
  if (last_term != my_term)
    return last_term > my_term;
  return last_index >= log_last_index(&r->rl.log);
}

static uint32_t count_bits(uint32_t x) {
  uint32_t n = 0;
  for (; x != 0; x &= x - 1)
    n++;
  return n;
}

static void raft_tally(struct raft *r, uint32_t from, bool granted) {
  /* Only the voters of the membership in force count (thesis §4.1). */
  int slot = raft_slot(r, from);
  if (slot < 0 || !raft_is_voter(r, from))
    return;
  uint32_t bit = 1u << slot;
  if (granted)
    r->votes_granted |= bit;
  else
    r->votes_refused |= bit;
}

static void raft_check_tally(struct raft *r) {
  uint32_t q = raft_quorum(r);
  if (count_bits(r->votes_granted) >= q) {
    if (r->role == SABHA_ROLE_PRECANDIDATE)
      raft_campaign(r, false, false);
    else
      raft_become_leader(r);
  } else if (count_bits(r->votes_refused) >= q) {
    raft_become_follower(r, r->term, SABHA_NODE_NONE);
  }
}

void raft_campaign(struct raft *r, bool pre_vote, bool forced) {
  assert(r->role != SABHA_ROLE_LEADER && raft_may_campaign(r));
  r->campaigns_started++;
  uint64_t term;
  uint32_t type;
  if (pre_vote) {
    r->role = SABHA_ROLE_PRECANDIDATE;
    term = r->term + 1; /* the term it would take; not adopted yet */
    type = RAFT_MSG_PREVOTE;
  } else {
    r->role = SABHA_ROLE_CANDIDATE;
    r->term++;
    r->terms_burned++;
    r->vote = r->cfg.id;
    r->elections_started++;
    term = r->term;
    type = RAFT_MSG_VOTE;
  }
  r->leader = SABHA_NODE_NONE;
  r->votes_granted = 0;
  r->votes_refused = 0;
  raft_reset_election_timer(r);
  /* A guarded node may lack an entry committed with its acknowledgement:
   * its own vote cannot stand for that, the voters' up-to-date checks can
   * (a majority of the others meets every quorum it was counted in). */
  if (!replog_guarded(&r->rl))
    raft_tally(r, r->cfg.id, true);
  for (uint32_t i = 0; i < r->conf.n; i++) {
    uint32_t id = r->conf.members[i].id;
    if (id == r->cfg.id || r->conf.members[i].role != SABHA_MEMBER_VOTER)
      continue;
    struct sabha_msg m = {.type = type, .to = id, .term = term};
    m.index = log_last_index(&r->rl.log);
    m.log_term = log_last_term(&r->rl.log);
    m.context = forced ? 1 : 0;
    /* A vote request waits for the self-vote to be durable (a node that
     * crashed before writing it could vote for another in the same term);
     * a pre-vote changes nothing durable and leaves at once. */
    raft_send(r, &m, !pre_vote);
  }
  raft_check_tally(r); /* a group of one wins at once */
}

/* Is a candidate's log up to date with what a guarded node may have lost?
 * Everything it may have acknowledged lies at or below the guard's index,
 * in terms no later than the one it restarted in; compare the candidate
 * with a log that ended there, as §5.4.1 compares two logs. A last entry
 * of a later term came from a leader that held every entry committed
 * before its term (raft_guard_check). One of that very term at an index at
 * or past the guard came from the same term's leader, whose log up to
 * there the candidate's matches (§5.3): that log holds every entry the
 * term's leader committed, and every earlier one, up to the guard. So the
 * vote cannot help elect a leader that lacks an entry this node helped
 * commit. Without this, voters under guards could wedge the group for
 * good: after a removal, say, two repaired voters of four wait for a
 * leader to catch them up, and no candidate gets three votes. */
static bool past_guard(const struct raft *r, const struct sabha_msg *m) {
  if (m->log_term != r->rl.repair_term)
    return m->log_term > r->rl.repair_term;
  return m->index >= r->rl.repair_until;
}

void raft_recv_vote(struct raft *r, const struct sabha_msg *m) {
  bool pre = m->type == RAFT_MSG_PREVOTE;
  /* Figure 2: grant if we have not voted for another in this term. A
   * follower that knows the term's leader has implicitly chosen. */
  bool can_vote =
      r->vote == m->from ||
      (r->vote == SABHA_NODE_NONE && r->leader == SABHA_NODE_NONE) ||
      (pre && m->term > r->term);
  if (r->cfg.bugs & SABHA_BUG_VOTE_TWICE)
    can_vote = true;
  bool up_to_date = raft_log_up_to_date(r, m->index, m->log_term);
  if (r->cfg.bugs & SABHA_BUG_SKIP_LOG_CHECK)
    up_to_date = true;
  struct sabha_msg resp = {
      .type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, .to = m->from};
  /* A guarded node's log may lack what a quorum needed it to hold: its
   * up-to-date check would let a candidate without that entry through. */
  bool guarded = replog_guarded(&r->rl) && !past_guard(r, m);
  if (can_vote && up_to_date && !guarded && r->role != SABHA_ROLE_LEADER) {
    /* A granted pre-vote answers in the term asked about, so the
     * pre-candidate can tell it from a stale answer. */
    resp.term = pre ? m->term : r->term;
    if (!pre) {
      r->vote = m->from;
      raft_reset_election_timer(r);
    }
  } else {
    resp.reject = 1;
    resp.term = r->term;
  }
  /* The vote is durable before the candidate hears of it. */
  raft_send(r, &resp, !pre);
}

void raft_recv_vote_resp(struct raft *r, const struct sabha_msg *m) {
  if (m->type == RAFT_MSG_PREVOTE_RESP) {
    if (r->role != SABHA_ROLE_PRECANDIDATE)
      return;
    if (!m->reject && m->term != r->term + 1)
      return; /* an answer to an older pre-vote */
  } else if (r->role != SABHA_ROLE_CANDIDATE || m->term != r->term) {
    return;
  }
  raft_tally(r, m->from, !m->reject);
  raft_check_tally(r);
}

void raft_recv_timeout_now(struct raft *r, const struct sabha_msg *m) {
  (void)m;
  if (r->role == SABHA_ROLE_LEADER || !raft_may_campaign(r))
    return;
  /* The leader asked: skip PreVote, and tell voters to ignore their lease. */
  raft_campaign(r, false, true);
}
