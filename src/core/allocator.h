/* Where a module gets its memory: an optional realloc-style hook, so that
 * a test can make any one allocation fail (the Nth, or every one after a
 * point) and prove that the module then fails cleanly, leaks nothing and
 * leaves its state as it was (STYLE.md, anomaly tests).
 *
 * The hook's contract is Lua's allocator's: fn(ctx, NULL, n) allocates n
 * bytes, fn(ctx, p, n) resizes p to n bytes, fn(ctx, p, 0) frees p and
 * returns NULL; for n > 0 a NULL result is a failure and p is untouched.
 * A NULL fn means the C library's malloc, realloc and free. A module keeps
 * a struct allocator in its configuration and calls only the helpers
 * below, never malloc or free directly. */
#ifndef SABHA_CORE_ALLOCATOR_H
#define SABHA_CORE_ALLOCATOR_H

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct allocator {
  void *(*fn)(void *ctx, void *ptr, size_t size); /* NULL: the C library */
  void *ctx;                                      /* handed to fn */
};

/* Resizes p (NULL: allocates) to size > 0 bytes; NULL on failure, p then
 * still valid. */
static inline void *allocator_realloc(const struct allocator *a, void *p,
                                      size_t size) {
  assert(a != NULL && size > 0);
  return a->fn != NULL ? a->fn(a->ctx, p, size) : realloc(p, size);
}

static inline void *allocator_malloc(const struct allocator *a, size_t size) {
  return allocator_realloc(a, NULL, size);
}

/* size > 0 bytes, all zero. */
static inline void *allocator_zalloc(const struct allocator *a, size_t size) {
  void *p = allocator_malloc(a, size);
  if (p != NULL)
    memset(p, 0, size);
  return p;
}

/* Frees p; NULL is fine. */
static inline void allocator_free(const struct allocator *a, void *p) {
  assert(a != NULL);
  if (p == NULL)
    return;
  if (a->fn != NULL)
    (void)a->fn(a->ctx, p, 0);
  else
    free(p);
}

#endif
