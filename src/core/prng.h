/* A small seeded pseudo-random generator (xoshiro256** seeded through
 * splitmix64), so that engines and the simulator draw reproducible numbers
 * from a seed and never touch rand(). One generator per owner: no global
 * state. */
#ifndef SABHA_CORE_PRNG_H
#define SABHA_CORE_PRNG_H

#include <stdint.h>

struct prng {
  uint64_t s[4];
};

void prng_seed(struct prng *p, uint64_t seed);
uint64_t prng_next(struct prng *p);
/* Uniform in [0, bound); bound > 0. */
uint64_t prng_below(struct prng *p, uint64_t bound);
/* Uniform in [lo, hi]; lo <= hi. */
uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi);
/* Uniform in [0, 1). */
double prng_unit(struct prng *p);
/* True with probability `chance` (0..1). */
int prng_chance(struct prng *p, double chance);

#endif
