/* The in-memory log; see log.h for the layout, the block scheme and which
 * pointers stay valid for how long. */
#include "core/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The metadata array never shrinks below this many entries. */
#define LOG_ENTRIES_MIN 256u

/* Entry bytes start on this boundary, as they did when each came from its
 * own malloc (codecs may load fixed-width fields in place). */
#define LOG_DATA_ALIGN 8u

struct log_block {
  size_t refs;       /* live entries whose bytes are here */
  size_t used_bytes; /* bump offset into data */
  size_t size_bytes; /* capacity of data */
  _Alignas(LOG_DATA_ALIGN) uint8_t data[];
};

void log_init(struct log *l) {
  memset(l, 0, sizeof *l);
}

static struct log_block *block_new(struct log *l, size_t size_bytes) {
  struct log_block *b = malloc(sizeof *b + size_bytes);
  if (b == NULL)
    return NULL;
  b->refs = 0;
  b->used_bytes = 0;
  b->size_bytes = size_bytes;
  l->blocks_n++;
  l->block_bytes += size_bytes;
  return b;
}

static void block_delete(struct log *l, struct log_block *b) {
  assert(b->refs == 0 && l->blocks_n > 0);
  l->blocks_n--;
  l->block_bytes -= b->size_bytes;
  free(b);
}

/* Drops one entry's hold on `b`. An emptied block goes: the tail is rewound
 * in place, one shared block is kept as the spare, anything else is freed.
 * Only entries that already left the log pointed into it, so no valid
 * pointer dangles. */
static void block_unref(struct log *l, struct log_block *b) {
  if (b == NULL)
    return;
  assert(b->refs > 0);
  if (--b->refs > 0)
    return;
  if (b == l->tail) {
    b->used_bytes = 0;
  } else if (l->spare == NULL && b->size_bytes == LOG_BLOCK_BYTES) {
    b->used_bytes = 0;
    l->spare = b;
  } else {
    block_delete(l, b);
  }
}

/* Room for `size_bytes` (> 0) of entry bytes; sets *owner to the block that
 * holds them. Returns NULL on ENOMEM, with nothing changed that a caller
 * could see (a new tail may have replaced a full one). */
static uint8_t *bytes_alloc(struct log *l, size_t size_bytes,
                            struct log_block **owner) {
  assert(size_bytes > 0);
  if (size_bytes > LOG_BLOCK_BIG_BYTES) {
    struct log_block *b = block_new(l, size_bytes);
    if (b == NULL)
      return NULL;
    b->used_bytes = size_bytes;
    *owner = b;
    return b->data;
  }
  size_t need =
      (size_bytes + LOG_DATA_ALIGN - 1) & ~(size_t)(LOG_DATA_ALIGN - 1);
  struct log_block *t = l->tail;
  if (t == NULL || t->size_bytes - t->used_bytes < need) {
    struct log_block *fresh = l->spare;
    if (fresh != NULL)
      l->spare = NULL;
    else if ((fresh = block_new(l, LOG_BLOCK_BYTES)) == NULL)
      return NULL;
    /* The full tail lives on while entries point into it (an emptied tail
     * is rewound, not left full, so it always has some). */
    assert(t == NULL || t->refs > 0);
    l->tail = t = fresh;
  }
  uint8_t *p = t->data + t->used_bytes;
  t->used_bytes += need;
  assert(t->used_bytes <= t->size_bytes);
  *owner = t;
  return p;
}

void log_free(struct log *l) {
  for (size_t i = l->head; i < l->head + l->n; i++)
    block_unref(l, l->owner[i]);
  if (l->tail != NULL)
    block_delete(l, l->tail);
  if (l->spare != NULL)
    block_delete(l, l->spare);
  assert(l->blocks_n == 0 && l->block_bytes == 0);
  free(l->entries);
  free(l->owner);
  log_init(l);
}

size_t log_heap_bytes(const struct log *l) {
  return l->cap * (sizeof *l->entries + sizeof *l->owner) + l->block_bytes +
         l->blocks_n * sizeof(struct log_block);
}

static struct sabha_entry *slot_at(const struct log *l, uint64_t index) {
  return &l->entries[l->head + (size_t)(index - l->snap_index - 1)];
}

uint64_t log_last_term(const struct log *l) {
  return l->n == 0 ? l->snap_term : l->entries[l->head + l->n - 1].term;
}

int log_term(const struct log *l, uint64_t index, uint64_t *term) {
  if (index == l->snap_index) {
    *term = l->snap_term;
    return 0;
  }
  if (index < l->snap_index)
    return SABHA_ECOMPACTED;
  if (index > log_last_index(l))
    return SABHA_EUNAVAILABLE;
  *term = slot_at(l, index)->term;
  return 0;
}

uint64_t log_term_or_zero(const struct log *l, uint64_t index) {
  uint64_t term = 0;
  if (log_term(l, index, &term) != 0)
    return 0;
  return term;
}

uint64_t log_find_conflict_by_term(const struct log *l, uint64_t index,
                                   uint64_t term, uint64_t *found_term) {
  uint64_t last = log_last_index(l);
  if (index > last)
    index = last;
  /* Bounded: each round steps back one entry and the snapshot stops it. */
  for (;;) {
    uint64_t t = 0;
    if (log_term(l, index, &t) != 0) {
      *found_term = 0;
      return index;
    }
    if (t <= term || index <= l->snap_index) {
      *found_term = t;
      return index;
    }
    index--;
  }
}

uint32_t log_batch_count(const struct log *l, uint64_t from, uint64_t end,
                         uint32_t n_max, uint64_t bytes_max) {
  uint32_t n = 0;
  uint64_t bytes = 0;
  for (uint64_t i = from; i < end && n < n_max; i++) {
    const struct sabha_entry *e = log_get(l, i);
    assert(e != NULL); /* the caller names entries the log holds */
    uint64_t size = e->size_bytes;
    if (n > 0 && bytes + size > bytes_max)
      break;
    bytes += size;
    n++;
  }
  return n;
}

const struct sabha_entry *log_get(const struct log *l, uint64_t index) {
  if (index <= l->snap_index || index > log_last_index(l))
    return NULL;
  return slot_at(l, index);
}

/* Moves the live entries to the front of the arrays and resizes them to
 * `cap` (>= n). Returns 0 or SABHA_ENOMEM; on failure the entries have
 * moved but nothing else changed. */
static int arrays_resize(struct log *l, size_t cap) {
  assert(cap >= l->n);
  if (l->head > 0) {
    memmove(l->entries, l->entries + l->head, l->n * sizeof *l->entries);
    memmove(l->owner, l->owner + l->head, l->n * sizeof *l->owner);
    l->head = 0;
  }
  if (cap == l->cap)
    return 0;
  struct sabha_entry *entries = realloc(l->entries, cap * sizeof *entries);
  if (entries == NULL)
    return SABHA_ENOMEM;
  l->entries = entries;
  struct log_block **owner = realloc(l->owner, cap * sizeof *owner);
  if (owner == NULL) {
    /* entries is at least n long whichever way it moved: keep the two
     * capacities equal by remembering the smaller. */
    if (cap < l->cap)
      l->cap = cap;
    return SABHA_ENOMEM;
  }
  l->owner = owner;
  l->cap = cap;
  return 0;
}

/* Makes room for one more entry at the end: slides the live entries down
 * when at least half the array is compacted away (amortized O(1): n moves
 * buy head >= n free slots), grows it twofold otherwise. */
static int room_for_one(struct log *l) {
  if (l->head + l->n < l->cap)
    return 0;
  if (l->head > 0 && l->head >= l->n)
    return arrays_resize(l, l->cap);
  size_t cap = l->cap == 0 ? LOG_ENTRIES_MIN : l->cap * 2;
  return arrays_resize(l, cap);
}

/* Copies the bytes of `e` into the log. Returns 0 or SABHA_ENOMEM. */
static int copy_data(struct log *l, const struct sabha_entry *e,
                     const uint8_t **data, struct log_block **owner) {
  *data = NULL;
  *owner = NULL;
  if (e->size_bytes == 0)
    return 0;
  uint8_t *copy = bytes_alloc(l, e->size_bytes, owner);
  if (copy == NULL)
    return SABHA_ENOMEM;
  memcpy(copy, e->data, e->size_bytes);
  (*owner)->refs++;
  *data = copy;
  return 0;
}

int log_put(struct log *l, const struct sabha_entry *e) {
  if (e->index <= l->snap_index || e->index > log_last_index(l) + 1)
    return SABHA_EINVAL;
  if (e->index == log_last_index(l) + 1)
    return log_append(l, e);
  const uint8_t *data;
  struct log_block *owner;
  /* Copy before letting go of the old bytes: e->data may point at them. */
  int rv = copy_data(l, e, &data, &owner);
  if (rv != 0)
    return rv;
  size_t i = l->head + (size_t)(e->index - l->snap_index - 1);
  struct log_block *old = l->owner[i];
  l->entries[i] = *e;
  l->entries[i].data = data;
  l->owner[i] = owner;
  block_unref(l, old); /* the old bytes stay until their block empties */
  return 0;
}

int log_append(struct log *l, const struct sabha_entry *e) {
  assert(e->index == log_last_index(l) + 1);
  /* `e` may point into the array that room_for_one moves. */
  struct sabha_entry copy = *e;
  int rv = room_for_one(l);
  if (rv != 0)
    return rv;
  const uint8_t *data;
  struct log_block *owner;
  rv = copy_data(l, &copy, &data, &owner);
  if (rv != 0)
    return rv;
  size_t i = l->head + l->n++;
  l->entries[i] = copy;
  l->entries[i].data = data;
  l->owner[i] = owner;
  if (l->n > l->n_peak)
    l->n_peak = l->n;
  return 0;
}

void log_truncate_from(struct log *l, uint64_t index) {
  assert(index > l->snap_index);
  if (index > log_last_index(l))
    return;
  size_t keep = (size_t)(index - l->snap_index - 1);
  for (size_t i = l->head + keep; i < l->head + l->n; i++)
    block_unref(l, l->owner[i]);
  l->n = keep;
}

/* Gives the metadata arrays back when they are four times what the whole
 * last compaction cycle needed: a log that was long once (a follower
 * catching up) returns to its working size, while a steady cycle of
 * appends and compactions never reallocates. */
static void arrays_maybe_shrink(struct log *l) {
  size_t want = l->cap;
  while (want / 2 >= LOG_ENTRIES_MIN && want / 2 >= 2 * l->n_peak)
    want /= 2;
  if (want < l->cap)
    (void)arrays_resize(l, want); /* on failure the larger arrays serve */
  l->n_peak = l->n;
}

void log_compact(struct log *l, uint64_t index, uint64_t term) {
  assert(index >= l->snap_index);
  size_t drop =
      index >= log_last_index(l) ? l->n : (size_t)(index - l->snap_index);
  for (size_t i = l->head; i < l->head + drop; i++)
    block_unref(l, l->owner[i]);
  l->head += drop;
  l->n -= drop;
  if (l->n == 0)
    l->head = 0;
  l->snap_index = index;
  l->snap_term = term;
  arrays_maybe_shrink(l);
}
