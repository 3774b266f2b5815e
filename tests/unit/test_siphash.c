/* core/siphash.h: the keyed hash of the tables whose keys clients choose.
 * The walk over a string's prefixes (the watch index's lookups, watch.c)
 * must give each prefix exactly the hash siphash24 gives it, or a watcher
 * registered under one would never be found by the other. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/prng.h"
#include "core/siphash.h"

/* The reference vector of SipHash-2-4's paper (appendix A): key 00..0f,
 * message 00..0e. */
static void siphash_matches_the_reference_vector(void) {
  uint8_t m[15];
  for (int i = 0; i < 15; i++)
    m[i] = (uint8_t)i;
  const uint64_t key[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
  CHECK(siphash24(m, sizeof m, key) == 0xa129ca6149be45e5ull);
}

/* Every prefix length, and skipped ones, of strings up to 100 bytes. */
static void the_prefix_walk_hashes_each_prefix_as_siphash24_does(void) {
  struct prng r;
  prng_seed(&r, 57);
  uint8_t s[100];
  const uint64_t key[2] = {prng_next(&r), prng_next(&r)};
  for (int round = 0; round < 200; round++) {
    size_t len = (size_t)prng_below(&r, sizeof s + 1);
    for (size_t i = 0; i < len; i++)
      s[i] = (uint8_t)prng_next(&r);
    struct siphash24_walk w;
    siphash24_walk_init(&w, s, key);
    uint64_t step = 1 + prng_below(&r, 9);
    for (size_t n = (size_t)prng_below(&r, 3); n <= len; n += step)
      CHECK(siphash24_walk_at(&w, n) == siphash24(s, n, key));
  }
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(siphash_matches_the_reference_vector),
      TEST(the_prefix_walk_hashes_each_prefix_as_siphash24_does),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
