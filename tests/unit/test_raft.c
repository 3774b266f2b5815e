/* Raft through the engine API where a trace cannot look: error codes for
 * bad input. The protocol's scenarios (elections, replication and repair,
 * Figure 8, PreVote, CheckQuorum, reads, snapshots, transfer, the follower's
 * AppendEntries rules) are golden traces in tests/trace/testdata/raft. */
#include <string.h>

#include "check.h"
#include "sabha/engine.h"

/* Bad input: unknown protocol and bad configs are refused with a code. */
static void engine_new_rejects_bad_config(void) {
  struct sabha_config cfg;
  uint32_t voters[3] = {1, 2, 3};
  struct sabha_engine *e = NULL;
  sabha_config_init(&cfg, 1, voters, 3);
  CHECK(sabha_engine_new(&e, "zab", &cfg, NULL) == SABHA_EPROTO);
  cfg.id = 9;
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == SABHA_EINVAL);
  cfg.id = 1;
  cfg.election_timeout_ms_min = 10; /* not above the heartbeat */
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == SABHA_EINVAL);
  CHECK(strcmp(sabha_strerror(SABHA_ENOTLEADER),
               "this node is not the leader") == 0);
}

/* Every name sabha_protocols() lists (a table fixed at compile time, so
 * that threads can share it) creates that engine, which reports the name. */
static void protocol_names_match_the_engines(void) {
  struct sabha_config cfg;
  uint32_t voters[3] = {1, 2, 3};
  sabha_config_init(&cfg, 1, voters, 3);
  size_t n = 0;
  for (const char *const *p = sabha_protocols(); *p != NULL; p++, n++) {
    struct sabha_engine *e = NULL;
    CHECK(sabha_engine_new(&e, *p, &cfg, NULL) == 0);
    if (e == NULL)
      continue;
    CHECK(strcmp(sabha_engine_protocol(e), *p) == 0);
    sabha_engine_free(e);
  }
  CHECK(n == 4);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(engine_new_rejects_bad_config),
      TEST(protocol_names_match_the_engines),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
