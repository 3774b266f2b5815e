/* Quantiles and medians of samples: one definition of each, for every
 * figure sabha prints (the simulator's latency_ms_p50/p99, the lab's
 * tables, charts and results, INFO's fsync quantiles, the benchmarks).
 *
 * A quantile is by nearest rank: the q-quantile of n sorted samples is the
 * ceil(q n)-th smallest (1-based, and at least the first). It is always a
 * value that was observed, so a p99 latency is one some operation really
 * had, and it needs no arithmetic on the samples, so it works as well on a
 * histogram's counts (stats_rank). With fewer than 1 / (1 - q) samples the
 * q-quantile is the maximum.
 *
 * A median is the other kind, for figures that are themselves summaries (a
 * lab cell's value over seeds): the middle sample, or the mean of the two
 * middle ones when n is even, so that two seeds give their midpoint rather
 * than the larger.
 *
 * All take samples sorted in ascending order; sorting is the caller's, who
 * often sorts once for several quantiles. */
#ifndef SABHA_CORE_STATS_H
#define SABHA_CORE_STATS_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* The 1-based rank of the q-quantile (0 <= q <= 1) of n > 0 samples:
 * ceil(q n) clamped to 1..n. */
static inline uint64_t stats_rank(uint64_t n, double q) {
  assert(n > 0 && q >= 0 && q <= 1);
  /* A little less than q n, so that 0.99 * 100, which binary floating
   * point may make a hair above 99, is rank 99 and not 100. */
  double x = q * (double)n - 1e-9;
  uint64_t rank = x > 0 ? (uint64_t)x : 0;
  if ((double)rank < x)
    rank++; /* ceil without libm: the cores may not include math.h */
  return rank < 1 ? 1 : rank > n ? n : rank;
}

/* The q-quantile of n sorted samples; 0 when there are none. */
static inline uint32_t stats_quantile_u32(const uint32_t *sorted, size_t n,
                                          double q) {
  assert(sorted != NULL || n == 0);
  return n ? sorted[stats_rank(n, q) - 1] : 0;
}

static inline double stats_quantile(const double *sorted, size_t n, double q) {
  assert(sorted != NULL || n == 0);
  return n ? sorted[stats_rank(n, q) - 1] : 0;
}

/* The median of n > 0 sorted samples. */
static inline double stats_median(const double *sorted, size_t n) {
  assert(sorted != NULL && n > 0);
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

#endif
