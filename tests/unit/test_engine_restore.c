/* Tests of what an engine accepts as its persisted state at start-up
 * (struct sabha_persisted in include/sabha/engine.h): the last line of
 * defence when a disk hands back a state no correct run could have left.
 * The write-ahead log makes a snapshot and the truncation that goes with
 * it durable together (docs/storage.md); these tests check that an engine
 * refuses such a mix anyway, should a host or a disk ever produce one,
 * instead of starting from a log that contradicts its own snapshot. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "sabha/engine.h"
#include "sabha/error.h"

static const char *const protocols[] = {"raft", "multipaxos", "paxos"};

/* Starts `protocol` as node 1 of 3 from a snapshot at (10, term 3) and
 * `n` entries from index `first` with the given terms. */
static int start(const char *protocol, uint64_t first, const uint64_t *terms,
                 size_t n) {
  static const uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  struct sabha_entry e[8];
  static const uint8_t byte = 'x';
  for (size_t i = 0; i < n; i++)
    e[i] = (struct sabha_entry){.index = first + i,
                                .term = terms[i],
                                .type = SABHA_ENTRY_COMMAND,
                                .size_bytes = 1,
                                .data = &byte};
  struct sabha_persisted p = {.hard_state = {5, 0, 10},
                              .has_snapshot = true,
                              .snapshot = {.index = 10, .term = 3},
                              .snapshot_data = &byte,
                              .snapshot_size_bytes = 1,
                              .entries = e,
                              .n_entries = n,
                              .applied = 10};
  struct sabha_engine *eng = NULL;
  int rv = sabha_engine_new(&eng, protocol, &cfg, &p);
  sabha_engine_free(eng);
  return rv;
}

/* The state a snapshot install leaves when its truncation is lost: the
 * new snapshot at (10, term 3), then the stale suffix of a log whose entry
 * 10 had term 2. Raft logs never go back in term, and the snapshot's term
 * is its last entry's, so entry 11 at term 2 contradicts it. */
static void raft_refuses_entries_older_than_the_snapshot_they_follow(void) {
  static const uint64_t stale[] = {2, 2};
  CHECK(start("raft", 11, stale, 2) == SABHA_EINVAL);
  static const uint64_t ok[] = {3, 4};
  CHECK(start("raft", 11, ok, 2) == 0); /* the same shape, consistent */
  static const uint64_t later_drop[] = {3, 4, 3};
  CHECK(start("raft", 11, later_drop, 3) == SABHA_EINVAL);
}

/* Every engine: the entries start right after the snapshot, without a
 * gap and without overlap (the contract of struct sabha_persisted). */
static void engines_refuse_entries_that_do_not_start_after_the_snapshot(void) {
  static const uint64_t terms[] = {3, 3};
  for (size_t i = 0; i < sizeof protocols / sizeof protocols[0]; i++) {
    CHECK(start(protocols[i], 11, terms, 2) == 0);
    CHECK(start(protocols[i], 12, terms, 2) == SABHA_EINVAL);
    CHECK(start(protocols[i], 10, terms, 2) == SABHA_EINVAL);
  }
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(raft_refuses_entries_older_than_the_snapshot_they_follow),
      TEST(engines_refuse_entries_that_do_not_start_after_the_snapshot),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
