/* Raft through the engine API where a trace cannot look: error codes for
 * bad input. The protocol's scenarios (elections, replication and repair,
 * Figure 8, PreVote, CheckQuorum, reads, snapshots, transfer, the follower's
 * AppendEntries rules) are golden traces in tests/trace/testdata/raft. */
#include <string.h>

#include "check.h"
#include "raft/raft.h"
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

/* An append whose entries do not follow its previous index, as only a
 * broken or hostile peer sends, is dropped whole: it once tripped an
 * assertion and stopped the follower (and, without assertions, would have
 * put entries at the wrong places in its log). */
static void append_with_entries_out_of_place_is_dropped(void) {
  struct sabha_config cfg;
  uint32_t voters[3] = {1, 2, 3};
  struct sabha_engine *e = NULL;
  sabha_config_init(&cfg, 2, voters, 3);
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == 0);
  if (e == NULL)
    return;
  struct sabha_entry entries[2] = {{.index = 1,
                                    .term = 1,
                                    .type = SABHA_ENTRY_COMMAND,
                                    .size_bytes = 1,
                                    .data = (const uint8_t *)"a"},
                                   {.index = 3,
                                    .term = 1,
                                    .type = SABHA_ENTRY_COMMAND,
                                    .size_bytes = 1,
                                    .data = (const uint8_t *)"b"}};
  struct sabha_msg m = {.type = RAFT_MSG_APPEND,
                        .from = 1,
                        .to = 2,
                        .term = 1,
                        .commit = 2,
                        .n_entries = 2,
                        .entries = entries};
  struct sabha_status st;
  CHECK(sabha_engine_step(e, &m) == 0); /* a gap after the first */
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 0 && st.commit == 0);
  entries[0].index = 5; /* not after the previous index, 0 */
  entries[1].index = 6;
  CHECK(sabha_engine_step(e, &m) == 0);
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 0 && st.commit == 0);
  m.index = UINT64_MAX; /* entries past the last index there can be */
  entries[0].index = 0;
  entries[1].index = 1;
  CHECK(sabha_engine_step(e, &m) == 0);
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 0 && st.commit == 0);
  entries[1].index = 2; /* in place: taken */
  entries[0].index = 1;
  m.index = 0;
  CHECK(sabha_engine_step(e, &m) == 0);
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 2 && st.commit == 2);
  sabha_engine_free(e);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(engine_new_rejects_bad_config),
      TEST(protocol_names_match_the_engines),
      TEST(append_with_entries_out_of_place_is_dropped),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
