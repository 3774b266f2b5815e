/* The repair guard (include/sabha/engine.h, repair_until; docs/engines.md):
 * a node whose disk was repaired may lack entries it acknowledged, so until
 * its log is whole again it neither votes nor promises. Each engine is
 * started as node 1 of 3 from a repaired disk (hard state term 5, guard at
 * index 20, log 1..10), asked for a vote or a promise, and must refuse; the
 * same with the deliberate bug (SABHA_BUG_NO_REPAIR_GUARD) grants, which
 * is what the simulator's checkers then catch. Then the leader refills the
 * log and the guard goes, in a hard state the host persists. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "paxos/mp.h"
#include "raft/raft.h"
#include "sabha/engine.h"
#include "sabha/error.h"

/* Classic Paxos's message numbers (src/paxos/classic.c). */
enum { CP_PREPARE = 1, CP_PROMISE = 2 };

#define GUARD 20u

static const uint8_t byte = 'x';

/* n one-byte commands of term 5 from index `first`. */
static void fill(struct sabha_entry *e, uint64_t first, size_t n) {
  for (size_t i = 0; i < n; i++)
    e[i] = (struct sabha_entry){.index = first + i,
                                .term = 5,
                                .type = SABHA_ENTRY_COMMAND,
                                .size_bytes = 1,
                                .data = &byte};
}

static struct sabha_engine *start(const char *protocol, uint32_t bugs) {
  static const uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  cfg.bugs = bugs;
  struct sabha_entry e[10];
  fill(e, 1, 10);
  struct sabha_persisted p = {
      .hard_state = {.term = 5, .vote = 2, .repair_until = GUARD},
      .entries = e,
      .n_entries = 10};
  struct sabha_engine *eng = NULL;
  if (sabha_engine_new(&eng, protocol, &cfg, &p) != 0)
    return NULL;
  return eng;
}

/* Runs one ready batch; counts the messages of `type` to `to` (both
 * lists) and whether any says reject; returns the batch's guard as
 * persisted (UINT64_MAX when it carries no hard state). */
static uint64_t drain(struct sabha_engine *eng, uint32_t type, uint32_t to,
                      int *n, int *rejects) {
  *n = 0;
  *rejects = 0;
  uint64_t guard = UINT64_MAX;
  while (sabha_engine_has_ready(eng)) {
    struct sabha_ready rd;
    sabha_engine_ready(eng, &rd);
    if (rd.has_hard_state)
      guard = rd.hard_state.repair_until;
    const struct sabha_msg *lists[2] = {rd.msgs, rd.msgs_after_persist};
    size_t counts[2] = {rd.n_msgs, rd.n_msgs_after_persist};
    for (int l = 0; l < 2; l++)
      for (size_t i = 0; i < counts[l]; i++)
        if (lists[l][i].type == type && lists[l][i].to == to) {
          (*n)++;
          *rejects += lists[l][i].reject != 0;
        }
    sabha_engine_advance(eng, &rd);
    sabha_engine_persisted(eng, rd.seq); /* a host that syncs at once */
  }
  return guard;
}

static uint64_t guard_of(const struct sabha_engine *eng) {
  struct sabha_status st;
  sabha_engine_status(eng, &st);
  return st.repair_until;
}

/* Raft: a candidate whose log is as up to date (term 6, last 10/5) asks. */
static void raft_guarded_node_refuses_votes(void) {
  for (int bug = 0; bug < 2; bug++) {
    struct sabha_engine *eng =
        start("raft", bug ? SABHA_BUG_NO_REPAIR_GUARD : 0);
    CHECK(eng != NULL);
    CHECK(guard_of(eng) == GUARD);
    int n, rejects;
    drain(eng, 0, 0, &n, &rejects);
    for (uint32_t type = RAFT_MSG_PREVOTE; type <= RAFT_MSG_VOTE;
         type += RAFT_MSG_VOTE - RAFT_MSG_PREVOTE) {
      struct sabha_msg m = {.type = type,
                            .from = 3,
                            .to = 1,
                            .term = 6,
                            .index = 10,
                            .log_term = 5};
      CHECK(sabha_engine_step(eng, &m) == 0);
      uint32_t resp =
          type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PREVOTE_RESP;
      drain(eng, resp, 3, &n, &rejects);
      CHECK(n == 1);
      CHECK(rejects == (bug ? 0 : 1));
    }
    sabha_engine_free(eng);
  }
}

/* Raft: a candidate whose log is as up to date as one that ended at the
 * guard, in the term the node restarted in (20/5), or has a later term's
 * entry, holds whatever the node may have lost: the node may vote for it.
 * One short of that is refused. Without this, guarded voters can leave a
 * group with no candidate that wins (a removal, then two repaired voters
 * of four). */
static void raft_guarded_node_votes_for_a_log_past_its_guard(void) {
  static const struct {
    uint64_t index, log_term;
    bool granted;
  } cases[] = {{GUARD, 5, true},
               {GUARD + 7, 5, true},
               {3, 6, true},
               {GUARD - 1, 5, false},
               {GUARD + 9, 4, false}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (uint32_t type = RAFT_MSG_PREVOTE; type <= RAFT_MSG_VOTE;
         type += RAFT_MSG_VOTE - RAFT_MSG_PREVOTE) {
      struct sabha_engine *eng = start("raft", 0);
      CHECK(eng != NULL);
      int n, rejects;
      drain(eng, 0, 0, &n, &rejects);
      struct sabha_msg m = {.type = type,
                            .from = 3,
                            .to = 1,
                            .term = 6,
                            .index = cases[c].index,
                            .log_term = cases[c].log_term};
      CHECK(sabha_engine_step(eng, &m) == 0);
      drain(eng,
            type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PREVOTE_RESP,
            3, &n, &rejects);
      CHECK(n == 1);
      CHECK(rejects == (cases[c].granted ? 0 : 1));
      sabha_engine_free(eng);
    }
  }
}

/* Raft: the leader refills the log to its last index, 25: the guard goes
 * (an append that ends at the leader's last index), and the lift is in
 * the hard state of a batch. */
static void raft_guard_lifts_once_the_log_is_the_leaders(void) {
  struct sabha_engine *eng = start("raft", 0);
  CHECK(eng != NULL);
  int n, rejects;
  drain(eng, 0, 0, &n, &rejects);
  struct sabha_entry e[15];
  fill(e, 11, 15);
  /* First 11..15 with commit 12: below the guard, and not the leader's
   * whole log: still guarded, and the answer says the log was lost. */
  struct sabha_msg m = {.type = RAFT_MSG_APPEND,
                        .from = 2,
                        .to = 1,
                        .term = 5,
                        .index = 10,
                        .log_term = 5,
                        .commit = 12,
                        .hint_index = 25,
                        .entries = e,
                        .n_entries = 5};
  CHECK(sabha_engine_step(eng, &m) == 0);
  CHECK(guard_of(eng) == GUARD);
  drain(eng, 0, 0, &n, &rejects);
  m.index = 15;
  m.entries = e + 5;
  m.n_entries = 10;
  CHECK(sabha_engine_step(eng, &m) == 0);
  CHECK(guard_of(eng) == 0);
  CHECK(drain(eng, 0, 0, &n, &rejects) == 0);
  sabha_engine_free(eng);
}

/* Paxos: no promise while guarded (Multi-Paxos: a PREPARE of a higher
 * ballot; classic Paxos: a PREPARE for an undecided slot), and a refused
 * Multi-Paxos probe; the bug promises. */
static void paxos_guarded_acceptors_do_not_promise(void) {
  static const struct {
    const char *protocol;
    uint32_t prepare, promise;
    uint64_t slot;
  } cases[] = {{"multipaxos", MP_MSG_PREPARE, MP_MSG_PROMISE, 1},
               {"paxos", CP_PREPARE, CP_PROMISE, 5}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int bug = 0; bug < 2; bug++) {
      struct sabha_engine *eng =
          start(cases[c].protocol, bug ? SABHA_BUG_NO_REPAIR_GUARD : 0);
      CHECK(eng != NULL);
      CHECK(guard_of(eng) == GUARD);
      int n, rejects;
      drain(eng, 0, 0, &n, &rejects);
      uint64_t ballot = (uint64_t)100 << 8 | 3;
      if (cases[c].prepare == MP_MSG_PREPARE) {
        struct sabha_msg probe = {
            .type = MP_MSG_PROBE, .from = 3, .to = 1, .term = ballot};
        CHECK(sabha_engine_step(eng, &probe) == 0);
        drain(eng, MP_MSG_PROBE_RESP, 3, &n, &rejects);
        CHECK(n == 1 && rejects == (bug ? 0 : 1));
      }
      struct sabha_msg m = {.type = cases[c].prepare,
                            .from = 3,
                            .to = 1,
                            .term = ballot,
                            .index = cases[c].slot};
      CHECK(sabha_engine_step(eng, &m) == 0);
      drain(eng, cases[c].promise, 3, &n, &rejects);
      CHECK(n == (bug ? 1 : 0));
      sabha_engine_free(eng);
    }
}

/* Node 1 as the leader of term 6 over log 1..10 (and its no-op at 11),
 * with node 2 known to match up to 11. */
static struct sabha_engine *leader_matched_by_2(void) {
  static const uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  struct sabha_entry e[10];
  fill(e, 1, 10);
  struct sabha_persisted p = {
      .hard_state = {.term = 5}, .entries = e, .n_entries = 10};
  struct sabha_engine *eng = NULL;
  if (sabha_engine_new(&eng, "raft", &cfg, &p) != 0)
    return NULL;
  int n, rejects;
  sabha_engine_tick(eng, 1);
  sabha_engine_tick(eng, 10000); /* election timeout: pre-vote */
  drain(eng, 0, 0, &n, &rejects);
  struct sabha_msg grant = {
      .type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 6};
  sabha_engine_step(eng, &grant);
  drain(eng, 0, 0, &n, &rejects);
  grant.type = RAFT_MSG_VOTE_RESP;
  sabha_engine_step(eng, &grant);
  drain(eng, 0, 0, &n, &rejects);
  struct sabha_msg ack = {
      .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 6, .index = 11};
  sabha_engine_step(eng, &ack);
  drain(eng, 0, 0, &n, &rejects);
  return eng;
}

/* A follower whose log went back behind the WAL's back (a segment cut
 * short looks like a torn tail: no guard) refuses an append pointing below
 * what it had acknowledged. The refusal is not stale: the leader probes
 * again from where the follower's log now ends, or it would wait for ever
 * on a follower that can never match. */
static void raft_leader_probes_a_follower_whose_log_went_back(void) {
  struct sabha_engine *eng = leader_matched_by_2();
  CHECK(eng != NULL);
  struct sabha_status st;
  sabha_engine_status(eng, &st);
  CHECK(st.role == SABHA_ROLE_LEADER && st.term == 6);
  struct sabha_msg reject = {.type = RAFT_MSG_APPEND_RESP,
                             .from = 2,
                             .to = 1,
                             .term = 6,
                             .index = 11,
                             .reject = 1,
                             .hint_index = 4,
                             .hint_term = 5};
  CHECK(sabha_engine_step(eng, &reject) == 0);
  bool probed = false;
  while (sabha_engine_has_ready(eng)) {
    struct sabha_ready rd;
    sabha_engine_ready(eng, &rd);
    for (size_t i = 0; i < rd.n_msgs; i++)
      if (rd.msgs[i].type == RAFT_MSG_APPEND && rd.msgs[i].to == 2 &&
          rd.msgs[i].index <= 4)
        probed = true;
    sabha_engine_advance(eng, &rd);
    sabha_engine_persisted(eng, rd.seq); /* a host that syncs at once */
  }
  CHECK(probed);
  sabha_engine_free(eng);
}

/* No guard in the persisted state: nothing changes (the same vote is
 * granted), and no batch speaks of a guard. */
static void no_guard_no_change(void) {
  static const uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  struct sabha_persisted p = {.hard_state = {.term = 5}};
  struct sabha_engine *eng = NULL;
  CHECK(sabha_engine_new(&eng, "raft", &cfg, &p) == 0);
  CHECK(guard_of(eng) == 0);
  struct sabha_msg m = {
      .type = RAFT_MSG_VOTE, .from = 3, .to = 1, .term = 6, .index = 0};
  CHECK(sabha_engine_step(eng, &m) == 0);
  int n, rejects;
  CHECK(drain(eng, RAFT_MSG_VOTE_RESP, 3, &n, &rejects) == 0);
  CHECK(n == 1 && rejects == 0);
  sabha_engine_free(eng);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(raft_guarded_node_refuses_votes),
      TEST(raft_guarded_node_votes_for_a_log_past_its_guard),
      TEST(raft_guard_lifts_once_the_log_is_the_leaders),
      TEST(paxos_guarded_acceptors_do_not_promise),
      TEST(raft_leader_probes_a_follower_whose_log_went_back),
      TEST(no_guard_no_change),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
