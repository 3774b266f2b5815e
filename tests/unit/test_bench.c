/* `sabha bench`'s two pieces that must be exact for its figures and checks
 * to mean anything: the latency histogram (its quantiles within a bucket's
 * width of the true ones, its maximum exact) and the RESP reply parser,
 * which reads what a node sends (every split of a reply is incomplete until
 * its last byte, nested arrays are skipped without losing the elements
 * after them, and bytes that are not RESP are refused). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cli/bench.h"

static struct bench_hist hist; /* 16 KiB: not on the stack */

/* Within one bucket's width: 1/64 of the value, or exact below 128. */
static int close_enough(uint64_t got, uint64_t want) {
  uint64_t slack = want < 128 ? 0 : want / 64 + 1;
  return got + slack >= want && got <= want + slack;
}

static void bench_hist_quantiles_within_a_bucket(void) {
  memset(&hist, 0, sizeof hist);
  CHECK(hist_quantile_ns(&hist, 0.5) == 0);
  /* 1 .. 1,000,000 ns, each once: the q-quantile is q * 1e6. */
  for (uint64_t v = 1; v <= 1000000; v++)
    hist_add(&hist, v);
  CHECK(hist.count == 1000000 && hist.max_ns == 1000000);
  CHECK(close_enough(hist_quantile_ns(&hist, 0.5), 500000));
  CHECK(close_enough(hist_quantile_ns(&hist, 0.9), 900000));
  CHECK(close_enough(hist_quantile_ns(&hist, 0.99), 990000));
  CHECK(close_enough(hist_quantile_ns(&hist, 0.999), 999000));
  CHECK(hist_quantile_ns(&hist, 1.0) == 1000000);
}

static void bench_hist_single_values_and_the_last_bucket(void) {
  static const uint64_t values[] = {0,   1,    127,  128,       129,       255,
                                    256, 1000, 4095, 123456789, 1ull << 36};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    memset(&hist, 0, sizeof hist);
    hist_add(&hist, values[i]);
    /* Never above the largest value seen: a single value is exact. */
    CHECK(hist_quantile_ns(&hist, 0.5) == values[i]);
  }
  /* Beyond 2^37 ns everything lands in the last bucket; the max stays. */
  memset(&hist, 0, sizeof hist);
  hist_add(&hist, 1ull << 40);
  hist_add(&hist, 1ull << 41);
  CHECK(hist.bucket[HIST_BUCKETS - 1] == 2);
  CHECK(hist_quantile_ns(&hist, 1.0) == 1ull << 41);
}

static int parse(const char *s, struct bench_reply *r, size_t *used) {
  return bench_reply_parse((const uint8_t *)s, strlen(s), r, used);
}

static void bench_reply_parses_each_type(void) {
  struct bench_reply r;
  size_t used;
  CHECK(parse("+OK\r\n", &r, &used) == 1 && used == 5 &&
        bench_reply_is(&r, '+', "OK"));
  CHECK(parse("-TRYAGAIN no leader\r\n", &r, &used) == 1 &&
        bench_reply_error_is(&r, "TRYAGAIN") &&
        !bench_reply_error_is(&r, "TRY"));
  CHECK(parse(":-42\r\n", &r, &used) == 1 && r.type == ':' && r.integer == -42);
  CHECK(parse("$5\r\nPNR01\r\n", &r, &used) == 1 &&
        bench_reply_is(&r, '$', "PNR01") && used == 11);
  CHECK(parse("$-1\r\n", &r, &used) == 1 && r.type == '_');
  CHECK(parse("*-1\r\n", &r, &used) == 1 && r.type == '_');
  /* A bulk holding CR LF is read by its length, not by lines. */
  CHECK(parse("$4\r\na\r\nb\r\n", &r, &used) == 1 && r.str.len == 4);
}

static void bench_reply_skips_nested_arrays(void) {
  struct bench_reply r;
  size_t used;
  const char *s = "*4\r\n$2\r\nS1\r\n*2\r\n*1\r\n:1\r\n+x\r\n:7\r\n$-1\r\n";
  CHECK(parse(s, &r, &used) == 1 && used == strlen(s));
  CHECK(r.type == '*' && r.n == 4);
  CHECK(r.elem[0].type == '$' && r.elem[0].str.len == 2);
  CHECK(r.elem[1].type == '*');
  CHECK(r.elem[2].type == ':' && r.elem[2].integer == 7);
  CHECK(r.elem[3].type == '_');
  /* More elements than are kept: all consumed, the first ones kept. */
  const char *big = "*10\r\n:0\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n"
                    ":8\r\n:9\r\n+after\r\n";
  CHECK(parse(big, &r, &used) == 1 && r.n == 10 &&
        r.elem[BENCH_ELEMS_MAX - 1].integer == BENCH_ELEMS_MAX - 1);
  CHECK(strncmp(big + used, "+after", 6) == 0);
}

static void bench_reply_is_incomplete_until_its_last_byte(void) {
  static const char *const replies[] = {
      "+OK\r\n", ":123\r\n", "$3\r\nabc\r\n", "$-1\r\n",
      "*3\r\n$1\r\na\r\n*1\r\n:2\r\n-ERR x\r\n"};
  struct bench_reply r;
  size_t used;
  for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
    size_t n = strlen(replies[i]);
    for (size_t k = 0; k < n; k++)
      CHECK(bench_reply_parse((const uint8_t *)replies[i], k, &r, &used) == 0);
    CHECK(bench_reply_parse((const uint8_t *)replies[i], n, &r, &used) == 1 &&
          used == n);
  }
}

static void bench_reply_refuses_what_is_not_resp(void) {
  struct bench_reply r;
  size_t used;
  CHECK(parse("hello\r\n", &r, &used) == -1);
  CHECK(parse(":12a\r\n", &r, &used) == -1);
  CHECK(parse(":\r\n", &r, &used) == -1);
  CHECK(parse("$-2\r\n", &r, &used) == -1);
  CHECK(parse("$99999999999\r\n", &r, &used) == -1);
  CHECK(parse("*99999999\r\n", &r, &used) == -1);
  CHECK(parse("*2\r\n:1\r\n?\r\n", &r, &used) == -1);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(bench_hist_quantiles_within_a_bucket),
      TEST(bench_hist_single_values_and_the_last_bucket),
      TEST(bench_reply_parses_each_type),
      TEST(bench_reply_skips_nested_arrays),
      TEST(bench_reply_is_incomplete_until_its_last_byte),
      TEST(bench_reply_refuses_what_is_not_resp),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
