/* The hash index of the applications (see app_map.h for why it is only an
 * index). Linear probing at most half full keeps probes short without
 * tombstones; backward-shift deletion keeps it so after the dedup tables
 * evict. */
#include "sm/app_map.h"

#include <assert.h>
#include <string.h>

#include "core/siphash.h"
#include "sabha/error.h"
#include "sm/app_internal.h"

/* Keyed: an unkeyed hash (FNV-1a, before) lets a client open thousands
 * of accounts or locks whose names share a slot, and then every command on
 * any of them walks the whole run, on every replica. */
uint32_t app_map_hash(const struct app_map *m, const uint8_t *p, size_t len) {
  uint64_t h = siphash24(len > 0 ? p : (const uint8_t *)"", len, m->key);
  return (uint32_t)(h ^ (h >> 32));
}

static bool key_equal(struct app_arg a, struct app_arg b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Places a slot whose key is known to be absent. */
static void place(struct app_map_slot *slots, uint32_t cap,
                  struct app_map_slot s) {
  uint32_t mask = cap - 1;
  uint32_t i = s.hash & mask;
  while (slots[i].pos1 != 0)
    i = (i + 1) & mask;
  slots[i] = s;
}

int app_map_reserve(const struct app_config *cfg, struct app_map *m,
                    uint64_t n_total) {
  assert(m != NULL && m->n <= m->cap / 2);
  if (n_total <= m->cap / 2)
    return 0;
  if (m->cap == 0) {
    m->key[0] = cfg->hash_key[0];
    m->key[1] = cfg->hash_key[1];
  }
  if (n_total > (uint64_t)1 << 30)
    return SABHA_ENOMEM; /* beyond any config's bound */
  uint32_t cap = m->cap ? m->cap : 8;
  while (cap / 2 < n_total)
    cap *= 2;
  struct app_map_slot *slots =
      allocator_zalloc(&cfg->alloc, (size_t)cap * sizeof *slots);
  if (slots == NULL)
    return SABHA_ENOMEM;
  for (uint32_t i = 0; i < m->cap; i++)
    if (m->slots[i].pos1 != 0)
      place(slots, cap, m->slots[i]);
  allocator_free(&cfg->alloc, m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

static uint32_t find_slot(const struct app_map *m, struct app_arg key,
                          app_map_key_fn key_of, const void *ctx) {
  if (m->cap == 0)
    return APP_MAP_NONE;
  uint32_t mask = m->cap - 1;
  uint32_t h = app_map_hash(m, key.ptr, key.len);
  for (uint32_t i = h & mask;; i = (i + 1) & mask) {
    const struct app_map_slot *s = &m->slots[i];
    if (s->pos1 == 0)
      return APP_MAP_NONE;
    if (s->hash == h && key_equal(key_of(ctx, s->pos1 - 1), key))
      return i;
  }
}

uint32_t app_map_find(const struct app_map *m, struct app_arg key,
                      app_map_key_fn key_of, const void *ctx) {
  assert(m != NULL && key_of != NULL);
  uint32_t i = find_slot(m, key, key_of, ctx);
  return i == APP_MAP_NONE ? APP_MAP_NONE : m->slots[i].pos1 - 1;
}

void app_map_insert(struct app_map *m, struct app_arg key, uint32_t pos) {
  assert(m != NULL && m->n + 1 <= m->cap / 2);
  assert(pos < APP_MAP_NONE - 1);
  struct app_map_slot s = {pos + 1, app_map_hash(m, key.ptr, key.len)};
  place(m->slots, m->cap, s);
  m->n++;
}

void app_map_remove(struct app_map *m, struct app_arg key,
                    app_map_key_fn key_of, const void *ctx) {
  uint32_t hole = find_slot(m, key, key_of, ctx);
  assert(hole != APP_MAP_NONE && m->n > 0);
  uint32_t mask = m->cap - 1;
  /* Backward shift: pull later slots of the run into the hole when their
   * home is not between the hole and them. */
  for (uint32_t i = (hole + 1) & mask; m->slots[i].pos1 != 0;
       i = (i + 1) & mask) {
    uint32_t home = m->slots[i].hash & mask;
    bool stays = ((i - home) & mask) < ((i - hole) & mask);
    if (stays)
      continue;
    m->slots[hole] = m->slots[i];
    hole = i;
  }
  m->slots[hole].pos1 = 0;
  m->slots[hole].hash = 0;
  m->n--;
}

void app_map_clear(struct app_map *m) {
  if (m->cap > 0)
    memset(m->slots, 0, (size_t)m->cap * sizeof *m->slots);
  m->n = 0;
}

void app_map_free(const struct app_config *cfg, struct app_map *m) {
  allocator_free(&cfg->alloc, m->slots);
  memset(m, 0, sizeof *m);
}
