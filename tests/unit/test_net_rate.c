/* Unit tests for the token bucket (src/net/rate.c) that bounds the TLS
 * handshakes a node serves per second: a full bucket passes one second's
 * worth at once and no more, refills at its rate (in fractions of a
 * token, so a slow rate still refills between close calls), never holds
 * more than a second's worth however long it idled, takes nothing back
 * when the clock steps back, and with rate 0 never refuses. Run with a
 * test name as the argument to run only that test. */
#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "net/rate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t takes(struct rate_bucket *b, uint64_t now_ms, uint32_t n) {
  uint32_t got = 0;
  for (uint32_t i = 0; i < n; i++)
    got += rate_bucket_take(b, now_ms) ? 1u : 0u;
  return got;
}

static void rate_full_bucket_passes_one_second_then_refuses(void) {
  struct rate_bucket b;
  rate_bucket_init(&b, 50, 1000);
  CHECK(takes(&b, 1000, 80) == 50);
  CHECK(!rate_bucket_take(&b, 1000));
}

static void rate_refills_at_its_rate(void) {
  struct rate_bucket b;
  rate_bucket_init(&b, 50, 0);
  CHECK(takes(&b, 0, 50) == 50);
  /* 50 a second is one per 20 ms: 19 ms is not enough, 20 is. */
  CHECK(!rate_bucket_take(&b, 19));
  CHECK(rate_bucket_take(&b, 20));
  CHECK(!rate_bucket_take(&b, 20));
  /* Half a second later, half the bucket. */
  CHECK(takes(&b, 520, 100) == 25);
}

static void rate_slow_rate_refills_by_fractions(void) {
  struct rate_bucket b;
  rate_bucket_init(&b, 3, 0);
  CHECK(takes(&b, 0, 10) == 3);
  /* A call every millisecond must not lose the thousandths it earned. */
  uint32_t got = 0;
  for (uint64_t t = 1; t <= 1000; t++)
    got += rate_bucket_take(&b, t) ? 1u : 0u;
  CHECK(got == 3);
}

static void rate_idle_bucket_holds_one_second_only(void) {
  struct rate_bucket b;
  rate_bucket_init(&b, RATE_PER_SECOND_MAX, 0);
  CHECK(takes(&b, 0, RATE_PER_SECOND_MAX) == RATE_PER_SECOND_MAX);
  /* A year idle: no overflow, and still one second's worth. */
  uint64_t later_ms = 365ull * 86400u * 1000u;
  CHECK(takes(&b, later_ms, RATE_PER_SECOND_MAX + 5) == RATE_PER_SECOND_MAX);
}

static void rate_clock_going_back_refills_nothing(void) {
  struct rate_bucket b;
  rate_bucket_init(&b, 10, 5000);
  CHECK(takes(&b, 5000, 10) == 10);
  CHECK(!rate_bucket_take(&b, 1000));
  CHECK(!rate_bucket_take(&b, 5000));
  CHECK(rate_bucket_take(&b, 5100));
}

static void rate_zero_means_no_limit(void) {
  struct rate_bucket b;
  rate_bucket_init(&b, 0, 0);
  CHECK(takes(&b, 0, 100000) == 100000);
}

static const struct test tests[] = {
    TEST(rate_full_bucket_passes_one_second_then_refuses),
    TEST(rate_refills_at_its_rate),
    TEST(rate_slow_rate_refills_by_fractions),
    TEST(rate_idle_bucket_holds_one_second_only),
    TEST(rate_clock_going_back_refills_nothing),
    TEST(rate_zero_means_no_limit),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
