/* SipHash-2-4, keyed: see siphash.c. */
#ifndef SABHA_CORE_SIPHASH_H
#define SABHA_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const uint8_t *p, size_t n, const uint64_t key[2]);

/* The hashes of several prefixes of one string at the cost of hashing it
 * once: siphash24_walk_at(w, n) is siphash24(p, n, key), for n that do
 * not go down from one call to the next. The walk keeps the state after
 * the whole 8-byte blocks it absorbed and finishes a copy for each n. p
 * must stay valid for the walk. */
struct siphash24_walk {
  uint64_t v[4];
  const uint8_t *p;
  size_t absorbed; /* bytes of p in v: a multiple of 8 */
};
void siphash24_walk_init(struct siphash24_walk *w, const uint8_t *p,
                         const uint64_t key[2]);
uint64_t siphash24_walk_at(struct siphash24_walk *w, size_t n);

#endif
