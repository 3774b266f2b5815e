/* sabha_engine_set_timing: every engine takes valid timing and refuses
 * the rest, and Raft and Multi-Paxos followers wait for the new election
 * timeout, not the old one, once they have re-armed their timers. */
#include <string.h>

#include "tcluster.h"

static const char *const all_protocols[] = {"raft", "multipaxos", "paxos",
                                            "async"};

static void set_timing_checks_its_input(void) {
  for (size_t k = 0; k < 4; k++) {
    struct tcluster tc;
    tc_init(&tc, all_protocols[k], 3, NULL);
    struct sabha_engine *e = tc.node[1].e;
    const struct sabha_timing bad[] = {
        {150, 300, 0},                       /* no heartbeat */
        {50, 300, 50},                       /* min not above heartbeat */
        {300, 299, 50},                      /* max below min */
        {300, SABHA_TIMING_MS_MAX + 1u, 50}, /* beyond the bound */
    };
    struct sabha_timing before, t;
    sabha_engine_timing(e, &before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      CHECK(sabha_engine_set_timing(e, &bad[i]) == SABHA_EINVAL);
      sabha_engine_timing(e, &t);
      CHECK(memcmp(&t, &before, sizeof t) == 0); /* nothing changed */
    }
    CHECK(sabha_engine_set_timing(e, NULL) == SABHA_EINVAL);
    const struct sabha_timing good = {400, SABHA_TIMING_MS_MAX, 80};
    CHECK(sabha_engine_set_timing(e, &good) == 0);
    sabha_engine_timing(e, &t);
    CHECK(t.election_timeout_ms_min == 400 &&
          t.election_timeout_ms_max == SABHA_TIMING_MS_MAX &&
          t.heartbeat_ms == 80);
    tc_free(&tc);
  }
}

/* Followers given 2000 ms re-arm with it at the leader's next heartbeat;
 * with the leader cut off, none campaigns within 1900 ms (the default
 * 150-300 ms would have had one do so six times over), and one does by
 * 4100 ms. */
static void followers_wait_for_the_new_timeout(const char *protocol) {
  struct tcluster tc;
  tc_init(&tc, protocol, 3, NULL);
  CHECK(tc_elect(&tc, 1));
  const struct sabha_timing slow = {2000, 2000, 100};
  for (uint32_t id = 2; id <= 3; id++)
    CHECK(sabha_engine_set_timing(tc.node[id].e, &slow) == 0);
  tc_tick_all(&tc, 400); /* heartbeats re-arm the followers' timers */
  uint64_t started =
      tc_status(&tc, 2).elections_started + tc_status(&tc, 3).elections_started;
  tc_isolate(&tc, 1);
  tc_tick_all(&tc, 1900);
  CHECK(tc_status(&tc, 2).elections_started +
            tc_status(&tc, 3).elections_started ==
        started);
  tc_tick_all(&tc, 2200);
  CHECK(tc_status(&tc, 2).elections_started +
            tc_status(&tc, 3).elections_started >
        started);
  tc_free(&tc);
}

static void raft_followers_wait_for_the_new_timeout(void) {
  followers_wait_for_the_new_timeout("raft");
}

static void multipaxos_followers_wait_for_the_new_timeout(void) {
  followers_wait_for_the_new_timeout("multipaxos");
}

int main(void) {
  RUN(set_timing_checks_its_input);
  RUN(raft_followers_wait_for_the_new_timeout);
  RUN(multipaxos_followers_wait_for_the_new_timeout);
  return tc_failures == 0 ? 0 : 1;
}
