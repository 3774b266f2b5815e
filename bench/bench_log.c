/* bench_log: what the in-memory log costs per entry on the write path, in
 * time and in heap allocations.
 *
 * It appends --entries entries of --entry-bytes bytes (1M of 100 by default)
 * to one log and compacts it every --compact-every entries down to the last
 * --keep, as an engine does when the host snapshots; the whole run is timed
 * --rounds times and the median reported. malloc, realloc, calloc and free
 * are wrapped by the linker (--wrap, GNU ld) so that every heap call the
 * log makes is counted. Output is `key: value` lines for scripts to
 * collect; nothing is asserted (benchmarks measure, tests decide).
 *
 * Build (standalone, from the project root; one line):
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc
 *      bench/bench_log.c src/core/log.c src/core/prng.c src/core/error.c
 *      -Wl,--wrap=malloc,--wrap=realloc,--wrap=calloc,--wrap=free
 *      -o bench_log
 *
 *   bench_log [--entries N] [--entry-bytes N] [--compact-every N]
 *             [--keep N] [--rounds N] [--seed N] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "core/log.h"
#include "core/prng.h"
#include "core/stats.h"

#ifndef SABHA_COMMIT
#define SABHA_COMMIT "unknown"
#endif

#define ROUNDS_MAX 64
#define ENTRY_BYTES_MAX (1u << 20)

/* Heap calls seen since the last reset: the bench's one instance, since the
 * linker's wrappers take no context. */
static struct {
  uint64_t mallocs; /* malloc, calloc and realloc: each may take memory */
  uint64_t frees;
} g_heap;

void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_calloc(size_t n, size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_calloc(size_t n, size_t size);
void __wrap_free(void *p);

void *__wrap_malloc(size_t size) {
  g_heap.mallocs++;
  return __real_malloc(size);
}
void *__wrap_realloc(void *p, size_t size) {
  g_heap.mallocs++;
  return __real_realloc(p, size);
}
void *__wrap_calloc(size_t n, size_t size) {
  g_heap.mallocs++;
  return __real_calloc(n, size);
}
void __wrap_free(void *p) {
  if (p != NULL)
    g_heap.frees++;
  __real_free(p);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

struct opts {
  uint64_t entries;
  uint32_t entry_bytes;
  uint64_t compact_every;
  uint64_t keep;
  int rounds;
  uint64_t seed;
};

struct run {
  double ns;
  uint64_t mallocs;
  uint64_t frees;
  size_t heap_bytes_max;
};

/* One run: a fresh log, o->entries appends with compaction, then free. */
static int run_once(const struct opts *o, const uint8_t *payload,
                    struct run *out) {
  struct log l;
  log_init(&l);
  memset(&g_heap, 0, sizeof g_heap);
  size_t heap_max = 0;
  double t0 = now_ns();
  for (uint64_t i = 1; i <= o->entries; i++) {
    struct sabha_entry e = {.index = i,
                            .term = 1,
                            .type = SABHA_ENTRY_COMMAND,
                            .size_bytes = o->entry_bytes,
                            .data = payload + (i % 64)};
    if (log_append(&l, &e) != 0) {
      log_free(&l);
      return -1;
    }
    if (i % o->compact_every == 0 && i > o->keep) {
      size_t heap = log_heap_bytes(&l);
      if (heap > heap_max)
        heap_max = heap;
      log_compact(&l, i - o->keep, 1);
    }
  }
  out->ns = now_ns() - t0;
  out->mallocs = g_heap.mallocs;
  out->frees = g_heap.frees;
  out->heap_bytes_max = heap_max;
  log_free(&l);
  return 0;
}

static int parse(int argc, char **argv, struct opts *o) {
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc)
      return -1;
    const char *k = argv[i], *v = argv[++i];
    unsigned long long n = strtoull(v, NULL, 10);
    if (strcmp(k, "--entries") == 0)
      o->entries = n;
    else if (strcmp(k, "--entry-bytes") == 0 && n <= ENTRY_BYTES_MAX)
      o->entry_bytes = (uint32_t)n;
    else if (strcmp(k, "--compact-every") == 0 && n > 0)
      o->compact_every = n;
    else if (strcmp(k, "--keep") == 0)
      o->keep = n;
    else if (strcmp(k, "--rounds") == 0 && n > 0 && n <= ROUNDS_MAX)
      o->rounds = (int)n;
    else if (strcmp(k, "--seed") == 0)
      o->seed = n;
    else
      return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct opts o = {.entries = 1000000,
                   .entry_bytes = 100,
                   .compact_every = 10000,
                   .keep = 1000,
                   .rounds = 5,
                   .seed = 1};
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: bench_log [--entries N] [--entry-bytes N] "
                    "[--compact-every N] [--keep N] [--rounds N] "
                    "[--seed N]\n");
    return 2;
  }
  /* Random bytes, read at a shifting offset so no entry is all one value. */
  uint8_t *payload = malloc(o.entry_bytes + 64);
  if (payload == NULL)
    return 1;
  struct prng r;
  prng_seed(&r, o.seed);
  for (size_t i = 0; i < o.entry_bytes + 64; i++)
    payload[i] = (uint8_t)prng_next(&r);

  struct utsname u;
  uname(&u);
  printf("bench: log\ncommit: %s\nmachine: %s %s\nseed: %" PRIu64 "\n",
         SABHA_COMMIT, u.machine, u.release, o.seed);
  printf("entries: %" PRIu64 "\nentry_bytes: %" PRIu32 "\n", o.entries,
         o.entry_bytes);
  printf("compact_every: %" PRIu64 "\nkeep: %" PRIu64 "\nrounds: %d\n",
         o.compact_every, o.keep, o.rounds);

  double ns[ROUNDS_MAX];
  struct run last = {0};
  for (int i = 0; i < o.rounds; i++) {
    if (run_once(&o, payload, &last) != 0) {
      fprintf(stderr, "bench_log: out of memory\n");
      free(payload);
      return 1;
    }
    ns[i] = last.ns;
  }
  qsort(ns, (size_t)o.rounds, sizeof ns[0], cmp_double);
  double n = (double)o.entries;
  double ns_median = stats_median(ns, (size_t)o.rounds);
  printf("ns_per_entry_median: %.1f\n", ns_median / n);
  printf("ns_per_entry_min: %.1f\n", ns[0] / n);
  printf("entries_per_s_median: %.0f\n", n / (ns_median / 1e9));
  printf("mallocs_per_entry: %.5f\n", (double)last.mallocs / n);
  printf("frees_per_entry: %.5f\n", (double)last.frees / n);
  printf("mallocs: %" PRIu64 "\n", last.mallocs);
  printf("heap_bytes_max: %zu\n", last.heap_bytes_max);
  free(payload);
  return 0;
}
