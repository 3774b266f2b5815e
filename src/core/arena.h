/* A bump allocator for the payloads of outgoing messages.
 *
 * An engine copies the entries it sends into the arena when it builds a
 * message, so that a message stays correct even if the log changes (a leader
 * that steps down and truncates) before the host collects it. Everything is
 * freed at once when the host calls advance(); chunks are kept and reused, so
 * the steady state allocates nothing. Memory never moves: pointers into the
 * arena stay valid until the reset. */
#ifndef SABHA_CORE_ARENA_H
#define SABHA_CORE_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
  struct arena_chunk *head;    /* every chunk, in allocation order */
  struct arena_chunk *current; /* where the next allocation is tried */
};

void arena_init(struct arena *a);
void arena_free(struct arena *a);
/* Returns `size` bytes aligned to 8, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t size);
/* Forgets every allocation; keeps the chunks for reuse. */
void arena_reset(struct arena *a);

#endif
