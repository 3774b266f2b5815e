/* Chunked bump allocation; see arena.h for why. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>

#define ARENA_CHUNK_BYTES_MIN (64u << 10)

struct arena_chunk {
  struct arena_chunk *next;
  size_t size;
  size_t used;
  _Alignas(8) unsigned char bytes[];
};

void arena_init(struct arena *a) {
  a->head = NULL;
  a->current = NULL;
}

void arena_free(struct arena *a) {
  struct arena_chunk *c = a->head;
  while (c != NULL) {
    struct arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  arena_init(a);
}

void *arena_alloc(struct arena *a, size_t size) {
  size = (size + 7u) & ~(size_t)7u;
  /* Try the current chunk, then the ones after it (kept from earlier use). */
  for (struct arena_chunk *c = a->current; c != NULL; c = c->next) {
    if (c->size - c->used >= size) {
      void *p = c->bytes + c->used;
      c->used += size;
      a->current = c;
      return p;
    }
  }
  size_t chunk_size = size > ARENA_CHUNK_BYTES_MIN ? size : ARENA_CHUNK_BYTES_MIN;
  struct arena_chunk *c = malloc(sizeof *c + chunk_size);
  if (c == NULL)
    return NULL;
  c->next = NULL;
  c->size = chunk_size;
  c->used = size;
  /* Append at the tail so that reuse after a reset walks the same order. */
  struct arena_chunk **tail = &a->head;
  while (*tail != NULL)
    tail = &(*tail)->next;
  *tail = c;
  a->current = c;
  return c->bytes;
}

void arena_reset(struct arena *a) {
  for (struct arena_chunk *c = a->head; c != NULL; c = c->next)
    c->used = 0;
  a->current = a->head;
}
