/* core/endian.h writes every integer sabha puts on a disk or a wire, so its
 * byte order is the format: these tests pin the exact bytes, not only that
 * a value comes back, and use odd offsets, where a cast to a wider type
 * would be an unaligned access. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/endian.h"
#include "core/prng.h"

static void endian_puts_least_significant_byte_first(void) {
  uint8_t b[9];
  memset(b, 0xee, sizeof b);
  le_put_u16(b + 1, 0x0102);
  static const uint8_t want16[] = {0xee, 0x02, 0x01, 0xee};
  CHECK(memcmp(b, want16, sizeof want16) == 0);

  memset(b, 0xee, sizeof b);
  le_put_u32(b + 1, 0x01020304u);
  static const uint8_t want32[] = {0xee, 0x04, 0x03, 0x02, 0x01, 0xee};
  CHECK(memcmp(b, want32, sizeof want32) == 0);

  le_put_u64(b + 1, UINT64_C(0x0102030405060708));
  static const uint8_t want64[] = {0xee, 8, 7, 6, 5, 4, 3, 2, 1};
  CHECK(memcmp(b, want64, sizeof want64) == 0);
}

static void endian_gets_least_significant_byte_first(void) {
  static const uint8_t b[] = {0xff, 0x08, 0x07, 0x06, 0x05,
                              0x04, 0x03, 0x02, 0x81, 0xff};
  CHECK(le_get_u16(b + 1) == 0x0708);
  CHECK(le_get_u32(b + 1) == 0x05060708u);
  CHECK(le_get_u64(b + 1) == UINT64_C(0x8102030405060708));
  /* The top byte must not be sign-extended into the others. */
  static const uint8_t high[] = {0x80, 0x80, 0x80, 0x80,
                                 0x80, 0x80, 0x80, 0x80};
  CHECK(le_get_u16(high) == 0x8080);
  CHECK(le_get_u32(high) == 0x80808080u);
  CHECK(le_get_u64(high) == UINT64_C(0x8080808080808080));
}

static void endian_round_trips_at_every_offset(void) {
  struct prng p;
  prng_seed(&p, 7);
  static const uint64_t edges[] = {0,          1,          0xff,      0x100,
                                   UINT16_MAX, UINT32_MAX, UINT64_MAX};
  for (int i = 0; i < 1000; i++) {
    uint64_t v = i < 7 ? edges[i] : prng_next(&p);
    for (size_t off = 0; off < 8; off++) {
      uint8_t b[16] = {0};
      le_put_u16(b + off, (uint16_t)v);
      CHECK(le_get_u16(b + off) == (uint16_t)v);
      le_put_u32(b + off, (uint32_t)v);
      CHECK(le_get_u32(b + off) == (uint32_t)v);
      le_put_u64(b + off, v);
      CHECK(le_get_u64(b + off) == v);
      /* Nothing outside the eight bytes was written. */
      for (size_t j = 0; j < sizeof b; j++)
        CHECK(j - off < 8 || b[j] == 0);
    }
  }
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(endian_puts_least_significant_byte_first),
      TEST(endian_gets_least_significant_byte_first),
      TEST(endian_round_trips_at_every_offset),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
