/* An allocator (core/allocator.h) that fails one chosen call: the anomaly
 * tests' way to run a module out of memory at its 1st, 2nd, ... Nth
 * allocation and check that it then fails cleanly and changes nothing.
 *
 * Header only, like check.h: a test includes it, sets fail_at before the
 * operation under test and reads calls after it. */
#ifndef SABHA_TESTS_FAILING_ALLOC_H
#define SABHA_TESTS_FAILING_ALLOC_H

#include <stdlib.h>

#include "core/allocator.h"

struct failing_alloc {
  long calls;   /* allocations and resizes so far; frees are not counted */
  long fail_at; /* the call that fails; 0: none */
};

static inline void *failing_alloc_fn(void *ctx, void *p, size_t size) {
  struct failing_alloc *f = ctx;
  if (size == 0) {
    free(p);
    return NULL;
  }
  if (++f->calls == f->fail_at)
    return NULL;
  return realloc(p, size);
}

static inline struct allocator failing_allocator(struct failing_alloc *f) {
  struct allocator a = {failing_alloc_fn, f};
  return a;
}

#endif
