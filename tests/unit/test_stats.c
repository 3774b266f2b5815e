/* core/stats.h defines the quantiles and medians every printed figure uses
 * (nearest rank; the mean of the middle two for an even median). These
 * tests pin the definition on small cases worked by hand, its edges, and
 * that it is the ceil(q n)-th smallest for every n the lab and the
 * simulator meet, so a p99 never moves because of how 0.99 * n rounds. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "core/stats.h"

static void stats_rank_is_ceil_q_n_within_one_to_n(void) {
  CHECK(stats_rank(1, 0) == 1);
  CHECK(stats_rank(1, 1) == 1);
  CHECK(stats_rank(10, 0) == 1);
  CHECK(stats_rank(10, 0.05) == 1);
  CHECK(stats_rank(10, 0.1) == 1);
  CHECK(stats_rank(10, 0.11) == 2);
  CHECK(stats_rank(10, 0.5) == 5);
  CHECK(stats_rank(11, 0.5) == 6);
  CHECK(stats_rank(10, 1) == 10);
  CHECK(stats_rank(100, 0.99) == 99);
  CHECK(stats_rank(101, 0.99) == 100);
  CHECK(stats_rank(99, 0.99) == 99); /* under 100 samples: the maximum */
  CHECK(stats_rank(1000, 0.999) == 999);
  CHECK(stats_rank(UINT64_C(1) << 40, 0.5) == UINT64_C(1) << 39);
}

static void stats_rank_ignores_binary_rounding_of_q_n(void) {
  /* q n is an integer in exact arithmetic for each of these; whatever
   * rounding the product suffers, the rank is that integer. */
  static const double qs[] = {0.5, 0.9, 0.99, 0.999, 0.1, 0.3, 0.7};
  static const double per[] = {2, 10, 100, 1000, 10, 10, 10};
  for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++)
    for (uint64_t m = 1; m <= 2000; m++) {
      uint64_t n = m * (uint64_t)per[k];
      uint64_t want = (uint64_t)llround(qs[k] * (double)n);
      CHECK(stats_rank(n, qs[k]) == want);
    }
  /* Otherwise it is the ceiling. */
  for (uint64_t n = 1; n <= 5000; n++)
    for (size_t k = 0; k < 4; k++) {
      double exact = qs[k] * (double)n;
      if (fabs(exact - round(exact)) < 1e-6)
        continue;
      CHECK(stats_rank(n, qs[k]) == (uint64_t)ceil(exact));
    }
}

static void stats_quantiles_are_observed_samples(void) {
  static const uint32_t u[] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  CHECK(stats_quantile_u32(u, 10, 0.5) == 50);
  CHECK(stats_quantile_u32(u, 10, 0.99) == 100);
  CHECK(stats_quantile_u32(u, 10, 0) == 10);
  CHECK(stats_quantile_u32(u, 4, 0.5) == 20);
  CHECK(stats_quantile_u32(u, 0, 0.5) == 0);
  CHECK(stats_quantile_u32(NULL, 0, 0.99) == 0);
  static const double d[] = {0.5, 1.5, 2.5, 3.5};
  CHECK(stats_quantile(d, 4, 0.5) == 1.5);
  CHECK(stats_quantile(d, 4, 0.75) == 2.5);
  CHECK(stats_quantile(d, 4, 0.76) == 3.5);
  CHECK(stats_quantile(d, 0, 0.5) == 0);
}

static void stats_median_averages_the_middle_two_when_even(void) {
  static const double d[] = {1, 2, 4, 8};
  CHECK(stats_median(d, 1) == 1);
  CHECK(stats_median(d, 2) == 1.5);
  CHECK(stats_median(d, 3) == 2);
  CHECK(stats_median(d, 4) == 3);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(stats_rank_is_ceil_q_n_within_one_to_n),
      TEST(stats_rank_ignores_binary_rounding_of_q_n),
      TEST(stats_quantiles_are_observed_samples),
      TEST(stats_median_averages_the_middle_two_when_even),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
