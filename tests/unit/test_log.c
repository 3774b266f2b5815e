/* Unit tests for the in-memory log (src/core/log.c).
 *
 * The log keeps entry bytes in shared blocks and its metadata in one array
 * (log.h), so these tests pin what that must not change: contents after
 * every kind of write, Paxos's overwrite in place, suffix truncation, prefix
 * compaction, entries too big for a shared block, the pointer rules log.h
 * documents, and that compaction gives memory back. A randomized run checks
 * the log against a plain model after every operation. Run under ASan by
 * `make test`, which turns any pointer that outlives its block into a
 * failure. Seeds are fixed; pass a test name to run only that test. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/prng.h"
#include "sabha/error.h"
#include "check.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define BIG_BYTES (1024u * 1024u)

/* The byte at `offset` of an entry written with `tag`: every entry's bytes
 * differ, so a pointer into the wrong place shows. */
static uint8_t pattern(uint64_t tag, size_t offset) {
  return (uint8_t)(tag * 131u + offset * 7u + (offset >> 8));
}

static void fill(uint8_t *buf, size_t size, uint64_t tag) {
  for (size_t i = 0; i < size; i++)
    buf[i] = pattern(tag, i);
}

static bool holds(const uint8_t *data, size_t size, uint64_t tag) {
  for (size_t i = 0; i < size; i++)
    if (data[i] != pattern(tag, i))
      return false;
  return true;
}

/* Appends (or puts) an entry of `size` bytes written with `tag`. */
static int write_entry(struct log *l, bool put, uint64_t index, uint64_t term,
                       size_t size, uint64_t tag) {
  static uint8_t buf[BIG_BYTES + 64]; /* test scratch, not log state */
  fill(buf, size, tag);
  struct sabha_entry e = {.index = index,
                          .term = term,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = (uint32_t)size,
                          .data = buf};
  return put ? log_put(l, &e) : log_append(l, &e);
}

static bool entry_is(const struct log *l, uint64_t index, uint64_t term,
                     size_t size, uint64_t tag) {
  const struct sabha_entry *e = log_get(l, index);
  return e != NULL && e->index == index && e->term == term &&
         e->size_bytes == size && (size == 0 ? e->data == NULL : true) &&
         holds(e->data, size, tag);
}

static void log_append_and_get_round_trip(void) {
  struct log l;
  log_init(&l);
  CHECK(log_first_index(&l) == 1 && log_last_index(&l) == 0);
  CHECK(log_last_term(&l) == 0 && log_get(&l, 1) == NULL);
  for (uint64_t i = 1; i <= 5000; i++)
    CHECK(write_entry(&l, false, i, 1 + i / 100, i % 300, i) == 0);
  CHECK(log_last_index(&l) == 5000 && log_last_term(&l) == 51);
  for (uint64_t i = 1; i <= 5000; i++)
    CHECK(entry_is(&l, i, 1 + i / 100, i % 300, i));
  /* Bytes start aligned, as they did from malloc. */
  for (uint64_t i = 1; i <= 5000; i++)
    CHECK(log_get(&l, i)->size_bytes == 0 ||
          (uintptr_t)log_get(&l, i)->data % 8 == 0);
  uint64_t term = 0;
  CHECK(log_term(&l, 0, &term) == 0 && term == 0);
  CHECK(log_term(&l, 5001, &term) == SABHA_EUNAVAILABLE);
  CHECK(log_term_or_zero(&l, 250) == 3);
  log_free(&l);
  CHECK(log_last_index(&l) == 0 && log_heap_bytes(&l) == 0);
}

/* A Paxos slot accepted again: the entry is replaced, later ones stay, and
 * the bytes of every other entry stay where they were. */
static void log_put_overwrites_in_place_and_keeps_later_entries(void) {
  struct log l;
  log_init(&l);
  for (uint64_t i = 1; i <= 10; i++)
    CHECK(write_entry(&l, false, i, 1, 100, i) == 0);
  const uint8_t *six = log_get(&l, 6)->data;
  CHECK(write_entry(&l, true, 5, 7, 40, 500) == 0);
  CHECK(entry_is(&l, 5, 7, 40, 500));
  for (uint64_t i = 6; i <= 10; i++)
    CHECK(entry_is(&l, i, 1, 100, i));
  CHECK(log_get(&l, 6)->data == six && log_last_index(&l) == 10);
  /* From the log's own bytes, its own entry's included. */
  struct sabha_entry e = *log_get(&l, 8);
  e.index = 3;
  CHECK(log_put(&l, &e) == 0 && entry_is(&l, 3, 1, 100, 8));
  e = *log_get(&l, 3);
  e.term = 9;
  CHECK(log_put(&l, &e) == 0 && entry_is(&l, 3, 9, 100, 8));
  /* To empty, past a big one, at the end, and refused. */
  CHECK(write_entry(&l, true, 4, 2, 0, 0) == 0 && entry_is(&l, 4, 2, 0, 0));
  CHECK(write_entry(&l, true, 4, 3, BIG_BYTES, 44) == 0);
  CHECK(entry_is(&l, 4, 3, BIG_BYTES, 44));
  CHECK(write_entry(&l, true, 11, 1, 10, 11) == 0 && log_last_index(&l) == 11);
  CHECK(write_entry(&l, true, 13, 1, 10, 13) == SABHA_EINVAL);
  log_compact(&l, 2, 1);
  CHECK(write_entry(&l, true, 2, 1, 10, 2) == SABHA_EINVAL);
  CHECK(entry_is(&l, 3, 9, 100, 8) && entry_is(&l, 10, 1, 100, 10));
  log_free(&l);
}

static void log_truncate_from_drops_the_suffix_only(void) {
  struct log l;
  log_init(&l);
  for (uint64_t i = 1; i <= 100; i++)
    CHECK(write_entry(&l, false, i, 1, 100, i) == 0);
  const uint8_t *fifty = log_get(&l, 50)->data;
  log_truncate_from(&l, 60);
  CHECK(log_last_index(&l) == 59 && log_get(&l, 60) == NULL);
  CHECK(log_get(&l, 50)->data == fifty && entry_is(&l, 50, 1, 100, 50));
  log_truncate_from(&l, 200); /* past the end: nothing */
  CHECK(log_last_index(&l) == 59);
  for (uint64_t i = 60; i <= 200; i++)
    CHECK(write_entry(&l, false, i, 2, 100, 1000 + i) == 0);
  for (uint64_t i = 1; i <= 200; i++)
    CHECK(entry_is(&l, i, i < 60 ? 1 : 2, 100, i < 60 ? i : 1000 + i));
  log_truncate_from(&l, 1);
  CHECK(log_last_index(&l) == 0 && log_last_term(&l) == 0);
  CHECK(l.blocks_n <= 1); /* the emptied tail is rewound, not kept full */
  log_free(&l);
}

static void log_compact_drops_the_prefix_and_records_the_snapshot(void) {
  struct log l;
  log_init(&l);
  for (uint64_t i = 1; i <= 1000; i++)
    CHECK(write_entry(&l, false, i, 1 + i / 10, 50, i) == 0);
  log_compact(&l, 500, 51);
  uint64_t term = 0;
  CHECK(log_first_index(&l) == 501 && log_last_index(&l) == 1000);
  CHECK(log_term(&l, 500, &term) == 0 && term == 51);
  CHECK(log_term(&l, 499, &term) == SABHA_ECOMPACTED);
  CHECK(log_get(&l, 500) == NULL);
  for (uint64_t i = 501; i <= 1000; i++)
    CHECK(entry_is(&l, i, 1 + i / 10, 50, i));
  /* A run handed out as an array (ready batches, messages) is contiguous. */
  const struct sabha_entry *run = log_get(&l, 501);
  for (uint64_t i = 0; i < 500; i++)
    CHECK(run + i == log_get(&l, 501 + i));
  log_compact(&l, 2000, 9); /* past the end: empty after the snapshot */
  CHECK(log_first_index(&l) == 2001 && log_last_index(&l) == 2000);
  CHECK(log_last_term(&l) == 9);
  CHECK(write_entry(&l, false, 2001, 9, 5, 1) == 0);
  CHECK(entry_is(&l, 2001, 9, 5, 1));
  log_free(&l);
}

static void log_big_entries_get_their_own_block(void) {
  struct log l;
  log_init(&l);
  CHECK(write_entry(&l, false, 1, 1, 10, 1) == 0);
  size_t blocks = l.blocks_n, bytes = l.block_bytes;
  CHECK(write_entry(&l, false, 2, 1, BIG_BYTES, 2) == 0);
  CHECK(l.blocks_n == blocks + 1 && l.block_bytes == bytes + BIG_BYTES);
  CHECK(write_entry(&l, false, 3, 1, LOG_BLOCK_BIG_BYTES, 3) == 0);
  CHECK(write_entry(&l, false, 4, 1, LOG_BLOCK_BIG_BYTES + 1, 4) == 0);
  CHECK(write_entry(&l, false, 5, 1, 10, 5) == 0);
  CHECK(entry_is(&l, 1, 1, 10, 1) && entry_is(&l, 2, 1, BIG_BYTES, 2));
  CHECK(entry_is(&l, 3, 1, LOG_BLOCK_BIG_BYTES, 3));
  CHECK(entry_is(&l, 4, 1, LOG_BLOCK_BIG_BYTES + 1, 4));
  CHECK(entry_is(&l, 5, 1, 10, 5));
  /* Entry 3 fits a shared block; 2 and 4 had blocks of their own. */
  CHECK(l.blocks_n == blocks + 2);
  log_compact(&l, 2, 1);
  CHECK(l.block_bytes == bytes + LOG_BLOCK_BIG_BYTES + 1);
  log_truncate_from(&l, 4);
  CHECK(l.block_bytes == bytes && entry_is(&l, 3, 1, LOG_BLOCK_BIG_BYTES, 3));
  log_free(&l);
}

/* log.h: data stays put until its entry leaves the log, whatever else is
 * appended, overwritten, truncated or compacted. */
static void log_data_pointers_live_until_their_entry_leaves(void) {
  struct log l;
  log_init(&l);
  const uint8_t *data[100];
  for (uint64_t i = 1; i <= 100; i++) {
    CHECK(write_entry(&l, false, i, 1, 100, i) == 0);
    data[i - 1] = log_get(&l, i)->data;
  }
  for (uint64_t i = 101; i <= 100000; i++)
    CHECK(write_entry(&l, false, i, 1, i % 2000, i) == 0);
  CHECK(write_entry(&l, true, 40, 2, 100, 4040) == 0);
  log_truncate_from(&l, 50000);
  log_compact(&l, 20, 1);
  for (uint64_t i = 21; i <= 100; i++) {
    if (i == 40)
      continue;
    CHECK(log_get(&l, i)->data == data[i - 1]);
    CHECK(holds(data[i - 1], 100, i));
  }
  log_free(&l);
}

/* Compaction frees blocks as they empty; a steady cycle of appends and
 * compactions reuses what it has; a log that was long once shrinks back. */
static void log_memory_is_returned_after_compaction(void) {
  struct log l;
  log_init(&l);
  for (uint64_t i = 1; i <= 100000; i++)
    CHECK(write_entry(&l, false, i, 1, 100, i) == 0);
  size_t long_bytes = log_heap_bytes(&l);
  CHECK(long_bytes > 100000u * 100u);
  log_compact(&l, 100000, 1);
  CHECK(l.blocks_n <= 2 && l.block_bytes <= 2 * LOG_BLOCK_BYTES);
  /* The metadata goes back once a whole cycle shows it is not needed. */
  for (uint64_t i = 100001; i <= 100010; i++)
    CHECK(write_entry(&l, false, i, 1, 100, i) == 0);
  log_compact(&l, 100010, 1);
  CHECK(log_heap_bytes(&l) < 2 * LOG_BLOCK_BYTES + 64 * 1024);
  CHECK(log_heap_bytes(&l) * 20 < long_bytes);
  /* Steady state: the block count stays put cycle after cycle. */
  uint64_t next = 100011;
  size_t blocks_max = 0;
  for (int cycle = 0; cycle < 50; cycle++) {
    for (int k = 0; k < 5000; k++, next++)
      CHECK(write_entry(&l, false, next, 1, 100, next) == 0);
    log_compact(&l, next - 500, 1);
    if (cycle == 5)
      blocks_max = l.blocks_n;
    if (cycle > 5)
      CHECK(l.blocks_n <= blocks_max);
  }
  /* The same slot accepted again and again keeps one entry's bytes. */
  for (int k = 0; k < 20000; k++)
    CHECK(write_entry(&l, true, next - 1, 2, 1000, (uint64_t)k) == 0);
  CHECK(entry_is(&l, next - 1, 2, 1000, 19999));
  CHECK(l.block_bytes <= blocks_max * LOG_BLOCK_BYTES + 2 * LOG_BLOCK_BYTES);
  log_free(&l);
}

static void log_conflict_search_and_batching_see_the_right_terms(void) {
  struct log l;
  log_init(&l);
  for (uint64_t i = 1; i <= 30; i++)
    CHECK(write_entry(&l, false, i, 1 + i / 10, 10, i) == 0);
  uint64_t found = 0;
  CHECK(log_find_conflict_by_term(&l, 25, 2, &found) == 19 && found == 2);
  CHECK(log_batch_count(&l, 1, 31, 100, 55) == 5);
  CHECK(log_batch_count(&l, 1, 31, 3, 1000) == 3);
  log_compact(&l, 15, 2);
  CHECK(log_find_conflict_by_term(&l, 25, 1, &found) == 15 && found == 2);
  log_free(&l);
}

/* Random appends, puts, truncations and compactions, entry sizes from empty
 * to bigger than a block, checked entry by entry against a plain model. */
struct model_entry {
  uint64_t term;
  size_t size;
  uint64_t tag;
};

static void log_random_operations_match_a_model(void) {
  enum { SLOTS = 4096 };
  struct model_entry *m = calloc(SLOTS, sizeof *m); /* by index % SLOTS */
  CHECK(m != NULL);
  struct log l;
  log_init(&l);
  struct prng r;
  prng_seed(&r, 42);
  uint64_t tag = 1;
  for (int op = 0; op < 40000; op++) {
    uint64_t first = log_first_index(&l), last = log_last_index(&l);
    uint64_t pick = prng_below(&r, 100);
    size_t size = prng_chance(&r, 0.01) ? (size_t)prng_range(&r, 16384, 100000)
                  : prng_chance(&r, 0.05) ? 0
                                          : (size_t)prng_below(&r, 600);
    if (pick < 70 && last - first + 1 < SLOTS - 1) {
      CHECK(write_entry(&l, false, last + 1, 1, size, tag) == 0);
      m[(last + 1) % SLOTS] = (struct model_entry){1, size, tag++};
    } else if (pick < 85 && last >= first) {
      uint64_t at = prng_range(&r, first, last);
      CHECK(write_entry(&l, true, at, 2, size, tag) == 0);
      m[at % SLOTS] = (struct model_entry){2, size, tag++};
    } else if (pick < 92 && last >= first) {
      log_truncate_from(&l, prng_range(&r, first, last));
    } else if (last >= first) {
      uint64_t at = prng_range(&r, first, last);
      log_compact(&l, at, m[at % SLOTS].term);
    }
    if (op % 97 != 0)
      continue;
    for (uint64_t i = log_first_index(&l); i <= log_last_index(&l); i++) {
      const struct model_entry *me = &m[i % SLOTS];
      CHECK(entry_is(&l, i, me->term, me->size, me->tag));
    }
  }
  log_free(&l);
  free(m);
}

static const struct test tests[] = {
    TEST(log_append_and_get_round_trip),
    TEST(log_put_overwrites_in_place_and_keeps_later_entries),
    TEST(log_truncate_from_drops_the_suffix_only),
    TEST(log_compact_drops_the_prefix_and_records_the_snapshot),
    TEST(log_big_entries_get_their_own_block),
    TEST(log_data_pointers_live_until_their_entry_leaves),
    TEST(log_memory_is_returned_after_compaction),
    TEST(log_conflict_search_and_batching_see_the_right_terms),
    TEST(log_random_operations_match_a_model),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
