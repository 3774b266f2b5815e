/* The in-memory log; see log.h. */
#include "core/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void log_init(struct log *l) { memset(l, 0, sizeof *l); }

static void entry_release(struct sabha_entry *e) {
  free((void *)e->data);
  e->data = NULL;
}

void log_free(struct log *l) {
  for (size_t i = 0; i < l->n; i++)
    entry_release(&l->entries[i]);
  free(l->entries);
  log_init(l);
}

uint64_t log_last_term(const struct log *l) {
  return l->n == 0 ? l->snap_term : l->entries[l->n - 1].term;
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
  *term = l->entries[index - l->snap_index - 1].term;
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
  return &l->entries[index - l->snap_index - 1];
}

static uint8_t *copy_data(const struct sabha_entry *e, int *rv) {
  *rv = 0;
  if (e->size_bytes == 0)
    return NULL;
  uint8_t *copy = malloc(e->size_bytes);
  if (copy == NULL)
    *rv = SABHA_ENOMEM;
  else
    memcpy(copy, e->data, e->size_bytes);
  return copy;
}

int log_put(struct log *l, const struct sabha_entry *e) {
  if (e->index <= l->snap_index || e->index > log_last_index(l) + 1)
    return SABHA_EINVAL;
  if (e->index == log_last_index(l) + 1)
    return log_append(l, e);
  int rv;
  uint8_t *copy = copy_data(e, &rv);
  if (rv != 0)
    return rv;
  struct sabha_entry *slot = &l->entries[e->index - l->snap_index - 1];
  entry_release(slot);
  *slot = *e;
  slot->data = copy;
  return 0;
}

int log_append(struct log *l, const struct sabha_entry *e) {
  assert(e->index == log_last_index(l) + 1);
  if (l->n == l->cap) {
    size_t cap = l->cap == 0 ? 256 : l->cap * 2;
    struct sabha_entry *grown = realloc(l->entries, cap * sizeof *grown);
    if (grown == NULL)
      return SABHA_ENOMEM;
    l->entries = grown;
    l->cap = cap;
  }
  int rv;
  uint8_t *copy = copy_data(e, &rv);
  if (rv != 0)
    return rv;
  struct sabha_entry *slot = &l->entries[l->n++];
  *slot = *e;
  slot->data = copy;
  return 0;
}

void log_truncate_from(struct log *l, uint64_t index) {
  assert(index > l->snap_index);
  if (index > log_last_index(l))
    return;
  size_t keep = (size_t)(index - l->snap_index - 1);
  for (size_t i = keep; i < l->n; i++)
    entry_release(&l->entries[i]);
  l->n = keep;
}

void log_compact(struct log *l, uint64_t index, uint64_t term) {
  assert(index >= l->snap_index);
  size_t drop = index >= log_last_index(l) ? l->n
                                           : (size_t)(index - l->snap_index);
  for (size_t i = 0; i < drop; i++)
    entry_release(&l->entries[i]);
  if (l->n > drop)
    memmove(l->entries, l->entries + drop,
            (l->n - drop) * sizeof *l->entries);
  l->n -= drop;
  l->snap_index = index;
  l->snap_term = term;
}
