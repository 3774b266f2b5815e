/* core/decimal.h is the one parser of numbers written as text: flags,
 * config and scenario words, RESP arguments, application commands,
 * history files. These tests pin what each form accepts and refuses at
 * every edge: 64-bit limits, bounds, signs, spaces, leading zeros, and that
 * a syntax error is reported as one even after the value has overflowed. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/decimal.h"

static enum dec_result u64(const char *s, enum dec_spelling sp, uint64_t lo,
                           uint64_t hi, uint64_t *out) {
  return dec_parse_u64(s, strlen(s), sp, lo, hi, out);
}

static enum dec_result i64(const char *s, int64_t *out) {
  return dec_parse_i64(s, strlen(s), out);
}

static void decimal_u64_reads_digits_up_to_the_64_bit_limit(void) {
  uint64_t v = 0;
  CHECK(u64("0", DEC_CANONICAL, 0, UINT64_MAX, &v) == DEC_OK && v == 0);
  CHECK(u64("42", DEC_CANONICAL, 0, UINT64_MAX, &v) == DEC_OK && v == 42);
  CHECK(u64("18446744073709551615", DEC_CANONICAL, 0, UINT64_MAX, &v) ==
            DEC_OK &&
        v == UINT64_MAX);
  v = 7;
  CHECK(u64("18446744073709551616", DEC_CANONICAL, 0, UINT64_MAX, &v) ==
            DEC_RANGE &&
        v == 7);
  CHECK(u64("99999999999999999999999", DEC_LEADING_ZEROS, 0, UINT64_MAX, &v) ==
        DEC_RANGE);
  /* Only the n bytes given are read. */
  CHECK(dec_parse_u64("123x", 3, DEC_CANONICAL, 0, 1000, &v) == DEC_OK &&
        v == 123);
}

static void decimal_u64_keeps_to_its_bounds(void) {
  uint64_t v = 0;
  CHECK(u64("1", DEC_CANONICAL, 1, 100, &v) == DEC_OK && v == 1);
  CHECK(u64("100", DEC_CANONICAL, 1, 100, &v) == DEC_OK && v == 100);
  CHECK(u64("0", DEC_CANONICAL, 1, 100, &v) == DEC_RANGE);
  CHECK(u64("101", DEC_CANONICAL, 1, 100, &v) == DEC_RANGE);
  CHECK(u64("65536", DEC_LEADING_ZEROS, 0, 65535, &v) == DEC_RANGE);
}

static void decimal_u64_refuses_everything_but_digits(void) {
  static const char *const bad[] = {"",         " 1",    "1 ",   "+1",
                                    "-1",       "0x10",  "1e3",  "1.0",
                                    "\xd9\xa3", "1,000", "1_000"};
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(u64(bad[i], DEC_LEADING_ZEROS, 0, UINT64_MAX, &v) == DEC_SYNTAX);
    CHECK(u64(bad[i], DEC_CANONICAL, 0, UINT64_MAX, &v) == DEC_SYNTAX);
  }
  CHECK(dec_parse_u64(NULL, 0, DEC_CANONICAL, 0, 1, &v) == DEC_SYNTAX);
  /* A NUL inside the bytes is not a digit. */
  CHECK(dec_parse_u64("1\0002", 3, DEC_LEADING_ZEROS, 0, 1000, &v) ==
        DEC_SYNTAX);
}

static void decimal_leading_zeros_only_where_allowed(void) {
  uint64_t v = 0;
  CHECK(u64("007", DEC_LEADING_ZEROS, 0, 100, &v) == DEC_OK && v == 7);
  CHECK(u64("0000000000000000000000001", DEC_LEADING_ZEROS, 0, 1, &v) ==
            DEC_OK &&
        v == 1);
  CHECK(u64("007", DEC_CANONICAL, 0, 100, &v) == DEC_SYNTAX);
  CHECK(u64("00", DEC_CANONICAL, 0, 100, &v) == DEC_SYNTAX);
}

static void decimal_syntax_wins_over_range(void) {
  uint64_t v = 0;
  int64_t s = 0;
  CHECK(u64("99999999999999999999x", DEC_LEADING_ZEROS, 0, UINT64_MAX, &v) ==
        DEC_SYNTAX);
  CHECK(u64("500x", DEC_LEADING_ZEROS, 0, 100, &v) == DEC_SYNTAX);
  CHECK(i64("-99999999999999999999x", &s) == DEC_SYNTAX);
}

static void decimal_i64_follows_redis(void) {
  int64_t v = 0;
  CHECK(i64("0", &v) == DEC_OK && v == 0);
  CHECK(i64("-1", &v) == DEC_OK && v == -1);
  CHECK(i64("9223372036854775807", &v) == DEC_OK && v == INT64_MAX);
  CHECK(i64("-9223372036854775808", &v) == DEC_OK && v == INT64_MIN);
  CHECK(i64("9223372036854775808", &v) == DEC_RANGE);
  CHECK(i64("-9223372036854775809", &v) == DEC_RANGE);
  static const char *const bad[] = {"",   "-",  "-0", "00",  "01", "-01",
                                    "+1", " 1", "1 ", "--1", "1-", "0x1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(i64(bad[i], &v) == DEC_SYNTAX);
}

static void decimal_flags_are_c_strings_with_leading_zeros(void) {
  uint64_t v = 0;
  CHECK(dec_parse_flag("5", 1, 16, &v) && v == 5);
  CHECK(dec_parse_flag("05", 1, 16, &v) && v == 5);
  CHECK(!dec_parse_flag("17", 1, 16, &v));
  CHECK(!dec_parse_flag("0", 1, 16, &v));
  CHECK(!dec_parse_flag("", 0, 16, &v));
  CHECK(!dec_parse_flag(NULL, 0, 16, &v));
  CHECK(!dec_parse_flag("5ms", 0, 16, &v));
  CHECK(!dec_parse_flag("-5", 0, 16, &v));
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(decimal_u64_reads_digits_up_to_the_64_bit_limit),
      TEST(decimal_u64_keeps_to_its_bounds),
      TEST(decimal_u64_refuses_everything_but_digits),
      TEST(decimal_leading_zeros_only_where_allowed),
      TEST(decimal_syntax_wins_over_range),
      TEST(decimal_i64_follows_redis),
      TEST(decimal_flags_are_c_strings_with_leading_zeros),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
