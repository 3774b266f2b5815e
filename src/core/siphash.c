/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed hash for the tables
 * whose keys clients choose. With a secret key, nobody can pick keys that
 * all land in one place, which would make every lookup walk them all. */
#include "core/siphash.h"

#include <assert.h>

#include "core/endian.h"

static uint64_t rotl(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

struct sip {
  uint64_t v0, v1, v2, v3;
};

static void sip_round(struct sip *s) {
  s->v0 += s->v1;
  s->v1 = rotl(s->v1, 13);
  s->v1 ^= s->v0;
  s->v0 = rotl(s->v0, 32);
  s->v2 += s->v3;
  s->v3 = rotl(s->v3, 16);
  s->v3 ^= s->v2;
  s->v0 += s->v3;
  s->v3 = rotl(s->v3, 21);
  s->v3 ^= s->v0;
  s->v2 += s->v1;
  s->v1 = rotl(s->v1, 17);
  s->v1 ^= s->v2;
  s->v2 = rotl(s->v2, 32);
}

static void sip_absorb(struct sip *s, uint64_t m) {
  s->v3 ^= m;
  sip_round(s);
  sip_round(s);
  s->v0 ^= m;
}

static void sip_init(struct sip *s, const uint64_t key[2]) {
  s->v0 = 0x736f6d6570736575ull ^ key[0];
  s->v1 = 0x646f72616e646f6dull ^ key[1];
  s->v2 = 0x6c7967656e657261ull ^ key[0];
  s->v3 = 0x7465646279746573ull ^ key[1];
}

/* The last block (the bytes past the whole blocks, and n) and the
 * finalization, on a state that absorbed p's whole blocks. */
static uint64_t sip_finish(struct sip s, const uint8_t *p, size_t n) {
  size_t whole = n - n % 8;
  uint64_t last = (uint64_t)n << 56;
  for (size_t i = whole; i < n; i++)
    last |= (uint64_t)p[i] << (8 * (i - whole));
  sip_absorb(&s, last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; i++)
    sip_round(&s);
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t siphash24(const uint8_t *p, size_t n, const uint64_t key[2]) {
  struct sip s;
  sip_init(&s, key);
  size_t whole = n - n % 8;
  for (size_t i = 0; i < whole; i += 8)
    sip_absorb(&s, le_get_u64(p + i));
  return sip_finish(s, p, n);
}

void siphash24_walk_init(struct siphash24_walk *w, const uint8_t *p,
                         const uint64_t key[2]) {
  struct sip s;
  sip_init(&s, key);
  w->v[0] = s.v0;
  w->v[1] = s.v1;
  w->v[2] = s.v2;
  w->v[3] = s.v3;
  w->p = p;
  w->absorbed = 0;
}

uint64_t siphash24_walk_at(struct siphash24_walk *w, size_t n) {
  assert(n >= w->absorbed); /* prefixes in order */
  struct sip s = {w->v[0], w->v[1], w->v[2], w->v[3]};
  size_t whole = n - n % 8;
  for (; w->absorbed < whole; w->absorbed += 8)
    sip_absorb(&s, le_get_u64(w->p + w->absorbed));
  w->v[0] = s.v0;
  w->v[1] = s.v1;
  w->v[2] = s.v2;
  w->v[3] = s.v3;
  return sip_finish(s, w->p, n);
}
