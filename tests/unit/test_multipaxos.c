/* Multi-Paxos where a trace cannot look: a malformed BATCH entry is reported
 * by sabha_batch_next, not read past its end. The protocol's scenarios
 * (phase 1 and 2, adoption and its deliberate bug, minority values, the
 * lease, reads, catch-up, transfer, batching) are golden traces in
 * tests/trace/testdata/multipaxos. */
#include "check.h"
#include "paxos/mp.h"
#include "sabha/engine.h"

static void batch_next_reports_malformed_batch(void) {
  const uint8_t *cmd = NULL;
  size_t size = 0;
  size_t offset = 0;
  /* A length of 9 with two bytes behind it. */
  uint8_t bad[6] = {9, 0, 0, 0, 'x', 'y'};
  struct sabha_entry broken = {
      .type = SABHA_ENTRY_BATCH, .size_bytes = 6, .data = bad};
  CHECK(sabha_batch_next(&broken, &offset, &cmd, &size) == SABHA_ECORRUPT);
  /* A length cut short. */
  offset = 0;
  broken.size_bytes = 3;
  CHECK(sabha_batch_next(&broken, &offset, &cmd, &size) == SABHA_ECORRUPT);
  /* A well-formed one walks to its end and stops. */
  uint8_t good[9] = {1, 0, 0, 0, 'a', 0, 0, 0, 0};
  struct sabha_entry batch = {
      .type = SABHA_ENTRY_BATCH, .size_bytes = 9, .data = good};
  offset = 0;
  CHECK(sabha_batch_next(&batch, &offset, &cmd, &size) == 1 && size == 1 &&
        cmd[0] == 'a');
  CHECK(sabha_batch_next(&batch, &offset, &cmd, &size) == 1 && size == 0);
  CHECK(sabha_batch_next(&batch, &offset, &cmd, &size) == 0);
}

/* An accept whose entries do not sit at its slot and the ones after it,
 * as only a broken or hostile peer sends, is dropped whole: it once
 * tripped an assertion and stopped the acceptor. */
static void accept_with_entries_out_of_place_is_dropped(void) {
  struct sabha_config cfg;
  uint32_t voters[3] = {1, 2, 3};
  struct sabha_engine *e = NULL;
  sabha_config_init(&cfg, 2, voters, 3);
  CHECK(sabha_engine_new(&e, "multipaxos", &cfg, NULL) == 0);
  if (e == NULL)
    return;
  struct sabha_entry entries[2] = {{.index = 1,
                                    .term = 0x101,
                                    .type = SABHA_ENTRY_COMMAND,
                                    .size_bytes = 1,
                                    .data = (const uint8_t *)"a"},
                                   {.index = 3,
                                    .term = 0x101,
                                    .type = SABHA_ENTRY_COMMAND,
                                    .size_bytes = 1,
                                    .data = (const uint8_t *)"b"}};
  struct sabha_msg m = {.type = MP_MSG_ACCEPT,
                        .from = 1,
                        .to = 2,
                        .term = 0x101,
                        .index = 1,
                        .n_entries = 2,
                        .entries = entries};
  struct sabha_status st;
  CHECK(sabha_engine_step(e, &m) == 0); /* a gap after the first */
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 0);
  entries[0].index = 5; /* not at the accept's slot, 1 */
  entries[1].index = 6;
  CHECK(sabha_engine_step(e, &m) == 0);
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 0);
  m.index = 0; /* slot 0 is no slot */
  entries[0].index = 0;
  entries[1].index = 1;
  CHECK(sabha_engine_step(e, &m) == 0);
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 0);
  m.index = 1; /* in place: accepted */
  entries[0].index = 1;
  entries[1].index = 2;
  CHECK(sabha_engine_step(e, &m) == 0);
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 2);
  sabha_engine_free(e);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(batch_next_reports_malformed_batch),
      TEST(accept_with_entries_out_of_place_is_dropped),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
