/* The in-memory log an engine keeps: entries [first, last] after a snapshot
 * that covers everything up to snap_index.
 *
 * Indices are 1-based and contiguous; index 0 with term 0 is the empty
 * prefix every log agrees on. Entry bytes are copied in and owned by the
 * log. The durable copy is the host's business: the log only says what to
 * persist through the ready batch.
 *
 * Memory. The log sits on every write's hot path, so it allocates per block,
 * never per entry (a malloc per entry was the largest cost of a proposal).
 * Entry metadata is one contiguous array (callers hand runs of it out as
 * arrays: ready batches, append messages); compaction only moves a head
 * offset, and the array is slid down or grown when an append reaches its
 * end. Entry bytes are bump-allocated in blocks of LOG_BLOCK_BYTES; an entry
 * larger than LOG_BLOCK_BIG_BYTES gets a block of its own so that it cannot
 * waste the rest of a shared one. Each block counts the live entries whose
 * bytes it holds and is freed when the count drops to zero (compaction,
 * truncation, an overwriting put, log_free), except that the log keeps the
 * block it is filling and at most one empty spare, so that steady appending
 * with periodic compaction allocates nothing. Bytes start 8-byte aligned.
 *
 * Pointer validity (what callers may rely on, no more than before blocks):
 *   - A `const struct sabha_entry *` from log_get (and the runs that follow
 *     it) is valid until the next log_append, log_put, log_truncate_from,
 *     log_compact or log_free: any of them may move the metadata array.
 *   - An entry's `data` stays valid until that entry leaves the log
 *     (overwritten by log_put, truncated, compacted) or log_free; appends
 *     and changes to other entries never move it. A ready batch therefore
 *     stays valid until advance(), since the host calls nothing in between
 *     (engine.h). */
#ifndef SABHA_CORE_LOG_H
#define SABHA_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "sabha/engine.h"

/* Shared blocks hold this many bytes; larger entries than the second bound
 * get a block to themselves. */
#define LOG_BLOCK_BYTES (64u * 1024u)
#define LOG_BLOCK_BIG_BYTES (LOG_BLOCK_BYTES / 4u)

struct log_block; /* private to log.c */

/* Read-only outside log.c, except snap_index and snap_term. */
struct log {
  /* entries[head + i].index == snap_index + 1 + i for i < n; owner[head + i]
   * is the block holding that entry's bytes (NULL for an empty entry). */
  struct sabha_entry *entries;
  struct log_block **owner;
  size_t head;
  size_t n;
  size_t cap;
  size_t n_peak;           /* most entries held since the last compaction */
  struct log_block *tail;  /* the shared block being filled, or NULL */
  struct log_block *spare; /* an empty block kept for reuse, or NULL */
  size_t blocks_n;         /* every block held, tail and spare included */
  size_t block_bytes;      /* their capacities summed */
  uint64_t snap_index;     /* last index covered by the snapshot (0: none) */
  uint64_t snap_term;
};

void log_init(struct log *l);
void log_free(struct log *l);

static inline uint64_t log_first_index(const struct log *l) {
  return l->snap_index + 1;
}
static inline uint64_t log_last_index(const struct log *l) {
  return l->snap_index + l->n;
}
uint64_t log_last_term(const struct log *l);

/* Sets *term to the term at `index`. Returns 0, SABHA_ECOMPACTED (index
 * below the snapshot) or SABHA_EUNAVAILABLE (past the end). */
int log_term(const struct log *l, uint64_t index, uint64_t *term);
/* The term at `index`, or 0 when it is not known. */
uint64_t log_term_or_zero(const struct log *l, uint64_t index);
/* The entry at `index`, or NULL when it is compacted or absent. */
const struct sabha_entry *log_get(const struct log *l, uint64_t index);

/* Where two logs can last agree, seen from this one: the last index at or
 * before `index` (capped at the last index) whose term is at most `term`.
 * Every entry after it here is of a newer term than the other side holds at
 * `index`, so none of them can match there (Raft §5.3, "the protocol can be
 * optimized": one round trip per term, not per entry). Stops at the
 * snapshot. *found_term is the term there, 0 when it is compacted away.
 * Raft and async use it on both sides of a refused append. */
uint64_t log_find_conflict_by_term(const struct log *l, uint64_t index,
                                   uint64_t term, uint64_t *found_term);
/* How many of the entries [from, end), all held by the log, go into one
 * message: at most `n_max` and `bytes_max` bytes in all, but the first always
 * goes, however large, so that one oversized entry cannot stall
 * replication. Every engine that sends entries batches them this way. */
uint32_t log_batch_count(const struct log *l, uint64_t from, uint64_t end,
                         uint32_t n_max, uint64_t bytes_max);

/* Appends a copy of `e` (e->index must be last + 1). Returns 0 or
 * SABHA_ENOMEM (the log is unchanged). */
int log_append(struct log *l, const struct sabha_entry *e);
/* Stores a copy of `e` at e->index: replaces the entry there (entries after
 * it stay: a Paxos slot accepted again), or appends when e->index is last + 1.
 * Returns 0, SABHA_EINVAL (a gap or a compacted index) or SABHA_ENOMEM (the
 * log is unchanged). */
int log_put(struct log *l, const struct sabha_entry *e);
/* Removes every entry at index >= `index` (index > snap_index). */
void log_truncate_from(struct log *l, uint64_t index);
/* Drops every entry at index <= `index` and records the snapshot there.
 * `index` may be past the end: the log is then empty after it. */
void log_compact(struct log *l, uint64_t index, uint64_t term);

/* Heap bytes the log holds now (metadata arrays and blocks), for tests and
 * benchmarks that check that compaction gives memory back. */
size_t log_heap_bytes(const struct log *l);

#endif
