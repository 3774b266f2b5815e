/* xoshiro256** (Blackman and Vigna), seeded through splitmix64 so that any
 * 64-bit seed, including 0, gives a well-mixed state. */
#include "core/prng.h"

#include <assert.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void prng_seed(struct prng *p, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    p->s[i] = splitmix64(&seed);
}

uint64_t prng_next(struct prng *p) {
  uint64_t *s = p->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t prng_below(struct prng *p, uint64_t bound) {
  assert(bound > 0);
  /* Lemire's multiply-shift with rejection: unbiased and cheap. */
  uint64_t x = prng_next(p);
  __uint128_t m = (__uint128_t)x * bound;
  uint64_t low = (uint64_t)m;
  if (low < bound) {
    uint64_t threshold = -bound % bound;
    while (low < threshold) {
      x = prng_next(p);
      m = (__uint128_t)x * bound;
      low = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi) {
  assert(lo <= hi);
  if (hi - lo == UINT64_MAX)
    return prng_next(p);
  return lo + prng_below(p, hi - lo + 1);
}

double prng_unit(struct prng *p) {
  return (double)(prng_next(p) >> 11) * (1.0 / 9007199254740992.0);
}

int prng_chance(struct prng *p, double chance) {
  if (chance <= 0)
    return 0;
  return prng_unit(p) < chance;
}
