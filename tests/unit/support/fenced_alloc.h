/* An allocator (core/allocator.h) that lets a test fence off a module's
 * largest record: the first block of at least 1 MiB it is asked for gets a
 * mapping of its own (kept across resizes), whose pages the test can then
 * make unreadable, and fenced_alloc_faults tells whether an operation read
 * them. So a test asserts what an operation does not read (a value INCR
 * need not parse, seat records INFO need not walk) as a count of pages
 * touched, never as a time. Every other block is the C library's.
 *
 * Header only, like failing_alloc.h. _DEFAULT_SOURCE (or _GNU_SOURCE)
 * must come before the first include, for MAP_ANONYMOUS and
 * malloc_usable_size. */
#ifndef SABHA_TESTS_FENCED_ALLOC_H
#define SABHA_TESTS_FENCED_ALLOC_H

#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/allocator.h"

#define FENCED_ALLOC_BYTES_MIN (1u << 20)

struct fenced_alloc {
  uint8_t *block; /* the fenced block, or NULL */
  size_t map_bytes;
};

static inline void *fenced_alloc_fn(void *ctx, void *p, size_t n) {
  struct fenced_alloc *f = ctx;
  bool ours = p != NULL && p == f->block;
  if (ours && n == 0) {
    munmap(f->block, f->map_bytes);
    f->block = NULL;
    return NULL;
  }
  if (!ours && (n == 0 || n < FENCED_ALLOC_BYTES_MIN || f->block != NULL)) {
    if (n == 0) {
      free(p);
      return NULL;
    }
    return realloc(p, n);
  }
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t map_bytes = (n + page - 1) / page * page;
  uint8_t *m = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  if (ours) {
    memcpy(m, f->block, f->map_bytes < n ? f->map_bytes : n);
    munmap(f->block, f->map_bytes);
  } else if (p != NULL) {
    size_t old = malloc_usable_size(p);
    memcpy(m, p, old < n ? old : n);
    free(p);
  }
  f->block = m;
  f->map_bytes = map_bytes;
  return m;
}

static inline struct allocator fenced_allocator(struct fenced_alloc *f) {
  struct allocator a = {fenced_alloc_fn, f};
  return a;
}

/* Makes the block's whole pages from byte `from` on unreadable (fence)
 * or readable again. Returns false when there is no block or mprotect
 * fails. */
static inline bool fenced_alloc_fence(struct fenced_alloc *f, size_t from,
                                      bool fence) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t start = (from + page - 1) / page * page;
  if (f->block == NULL || start >= f->map_bytes)
    return false;
  return mprotect(f->block + start, f->map_bytes - start,
                  fence ? PROT_NONE : PROT_READ | PROT_WRITE) == 0;
}

static sigjmp_buf fenced_alloc_jump;

static inline void fenced_alloc_on_fault(int sig) {
  (void)sig;
  siglongjmp(fenced_alloc_jump, 1);
}

/* Runs fn(ctx); returns true when it touched fenced pages (it is then cut
 * short there, and whatever it was changing is left half done). */
static inline bool fenced_alloc_faults(void (*fn)(void *ctx), void *ctx) {
  struct sigaction on, was_segv, was_bus;
  memset(&on, 0, sizeof on);
  on.sa_handler = fenced_alloc_on_fault;
  sigemptyset(&on.sa_mask);
  if (sigaction(SIGSEGV, &on, &was_segv) != 0 ||
      sigaction(SIGBUS, &on, &was_bus) != 0)
    abort();
  volatile bool faulted = false;
  if (sigsetjmp(fenced_alloc_jump, 1) == 0)
    fn(ctx);
  else
    faulted = true;
  sigaction(SIGSEGV, &was_segv, NULL);
  sigaction(SIGBUS, &was_bus, NULL);
  return faulted;
}

#endif
