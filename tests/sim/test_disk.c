/* Tests of the simulator's disk model (src/sim/disk.h): what survives an
 * fsync and a crash, and how truncations and snapshots rewrite the log. */
#include <stdio.h>
#include <string.h>

#include "sim/disk.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const uint8_t payload[4] = {'a', 'b', 'c', 'd'};

/* A ready batch persisting entries [first, last] of `term`. */
static void write_entries(struct disk *d, uint64_t first, uint64_t last,
                          uint64_t term, uint64_t truncate_from) {
  struct sabha_entry e[16];
  size_t n = 0;
  for (uint64_t i = first; i <= last; i++, n++)
    e[n] = (struct sabha_entry){.index = i,
                                .term = term,
                                .type = SABHA_ENTRY_COMMAND,
                                .size_bytes = sizeof payload,
                                .data = payload};
  struct sabha_ready rd;
  memset(&rd, 0, sizeof rd);
  rd.has_hard_state = true;
  rd.hard_state =
      (struct sabha_hard_state){.term = term, .vote = 1, .commit = last};
  rd.truncate_from = truncate_from;
  rd.entries = e;
  rd.n_entries = n;
  CHECK(disk_write_ready(d, &rd) == 1 + (truncate_from != 0) + n);
}

static void disk_sync_makes_pending_records_durable(void) {
  struct disk d;
  disk_init(&d);
  struct sabha_persisted p;
  CHECK(!disk_persisted(&d, &p)); /* empty: a fresh node */
  write_entries(&d, 1, 3, 1, 0);
  CHECK(disk_last_index(&d) == 0 && d.n_pending == 4);
  disk_sync(&d);
  CHECK(d.n_pending == 0 && disk_first_index(&d) == 1);
  CHECK(disk_last_index(&d) == 3);
  CHECK(disk_persisted(&d, &p) && p.n_entries == 3);
  CHECK(p.hard_state.term == 1 && p.hard_state.vote == 1);
  CHECK(p.entries[2].index == 3 && memcmp(p.entries[2].data, payload, 4) == 0);
  disk_free(&d);
}

static void disk_crash_keeps_a_prefix_of_pending_records(void) {
  struct disk d;
  disk_init(&d);
  write_entries(&d, 1, 2, 1, 0);
  disk_sync(&d);
  write_entries(&d, 3, 6, 2, 0); /* hard state (commit 6), 3, 4, 5, 6 */
  disk_crash(&d, 2);             /* hard state and entry 3 survive */
  CHECK(d.n_pending == 0 && disk_last_index(&d) == 3);
  struct sabha_persisted p;
  CHECK(disk_persisted(&d, &p));
  CHECK(p.hard_state.term == 2);
  CHECK(p.hard_state.commit == 3); /* clamped to what survived */
  write_entries(&d, 4, 4, 2, 0);
  disk_crash(&d, 0); /* nothing survives */
  CHECK(disk_last_index(&d) == 3);
  disk_free(&d);
}

static void disk_truncation_replaces_a_conflicting_suffix(void) {
  struct disk d;
  disk_init(&d);
  write_entries(&d, 1, 5, 1, 0);
  write_entries(&d, 3, 3, 2, 3); /* truncate from 3, then entry 3 of term 2 */
  disk_sync(&d);
  CHECK(disk_last_index(&d) == 3);
  CHECK(disk_entry_at(&d, 3)->term == 2 && disk_entry_at(&d, 2)->term == 1);
  CHECK(disk_entry_at(&d, 4) == NULL);
  disk_free(&d);
}

static void disk_installed_snapshot_drops_only_what_it_covers(void) {
  struct disk d;
  disk_init(&d);
  write_entries(&d, 1, 6, 3, 0);
  disk_sync(&d);
  struct sabha_ready rd;
  memset(&rd, 0, sizeof rd);
  rd.has_snapshot = true;
  rd.snapshot = (struct sabha_snapshot_meta){.index = 4, .term = 3};
  rd.snapshot_data = payload;
  rd.snapshot_size_bytes = 2;
  CHECK(disk_write_ready(&d, &rd) == 1);
  disk_sync(&d);
  CHECK(disk_first_index(&d) == 5 && disk_last_index(&d) == 6);
  struct sabha_persisted p;
  CHECK(disk_persisted(&d, &p) && p.has_snapshot && p.applied == 4);
  CHECK(p.snapshot_size_bytes == 2 && p.n_entries == 2);
  /* Whatever the terms, the suffix stays unless the batch truncates it
   * (Raft's engine does, when its log disagrees with the snapshot). */
  rd.snapshot = (struct sabha_snapshot_meta){.index = 5, .term = 9};
  disk_write_ready(&d, &rd);
  disk_sync(&d);
  CHECK(disk_first_index(&d) == 6 && disk_last_index(&d) == 6);
  write_entries(&d, 7, 8, 3, 0);
  disk_sync(&d);
  rd.snapshot = (struct sabha_snapshot_meta){.index = 6, .term = 9};
  rd.truncate_from = 7; /* in one batch: snapshot, then truncation */
  CHECK(disk_write_ready(&d, &rd) == 2);
  disk_sync(&d);
  CHECK(disk_first_index(&d) == 7 && disk_last_index(&d) == 6);
  rd.truncate_from = 0;
  /* An older snapshot changes nothing. */
  rd.snapshot = (struct sabha_snapshot_meta){.index = 2, .term = 3};
  disk_write_ready(&d, &rd);
  disk_sync(&d);
  CHECK(disk_first_index(&d) == 7 && p.has_snapshot);
  disk_free(&d);
}

static void disk_compaction_drops_the_covered_prefix_at_once(void) {
  struct disk d;
  disk_init(&d);
  write_entries(&d, 1, 8, 1, 0);
  disk_sync(&d);
  write_entries(&d, 9, 9, 1, 0); /* pending while the host compacts */
  disk_store_snapshot(&d, (struct sabha_snapshot_meta){.index = 5, .term = 1},
                      payload, 3);
  CHECK(disk_first_index(&d) == 6 && disk_last_index(&d) == 8);
  disk_sync(&d);
  CHECK(disk_last_index(&d) == 9 && d.violations == 0);
  disk_free(&d);
}

static void disk_flags_entries_that_leave_a_gap(void) {
  struct disk d;
  disk_init(&d);
  write_entries(&d, 1, 2, 1, 0);
  write_entries(&d, 5, 5, 1, 0);
  disk_sync(&d);
  CHECK(d.violations == 1 && disk_last_index(&d) == 2);
  CHECK(strstr(d.violation, "gap") != NULL);
  disk_free(&d);
}

int main(void) {
  disk_sync_makes_pending_records_durable();
  disk_crash_keeps_a_prefix_of_pending_records();
  disk_truncation_replaces_a_conflicting_suffix();
  disk_installed_snapshot_drops_only_what_it_covers();
  disk_compaction_drops_the_covered_prefix_at_once();
  disk_flags_entries_that_leave_a_gap();
  if (failures > 0) {
    fprintf(stderr, "test_disk: %d checks failed\n", failures);
    return 1;
  }
  printf("test_disk: ok\n");
  return 0;
}
