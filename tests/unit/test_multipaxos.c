/* Multi-Paxos where a trace cannot look: a malformed BATCH entry is reported
 * by sabha_batch_next, not read past its end. The protocol's scenarios
 * (phase 1 and 2, adoption and its deliberate bug, minority values, the
 * lease, reads, catch-up, transfer, batching) are golden traces in
 * tests/trace/testdata/multipaxos. */
#include "check.h"
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

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(batch_next_reports_malformed_batch),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
