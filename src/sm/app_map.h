/* A hash index from byte-string keys to the positions of records kept
 * elsewhere, for the applications of src/sm/app.c.
 *
 * Why an index and not a map: every application keeps its records in an
 * array in the order they were made, because that order is what snapshots,
 * hashes and SEATS.ANY walk, and it is the same on every replica. The index
 * only answers "where is the record with this key"; it never decides an
 * order, so where things land in it cannot make replicas differ.
 *
 * Open addressing with linear probing, at most half full, deletion by
 * backward shift (only the dedup tables delete). Each slot keeps the key's
 * hash so that growing never needs the keys. The caller gives a function
 * that returns the key of a record position, used to compare on a probe.
 * Growing is separate from inserting (app_map_reserve), so that an apply can
 * take all its memory before it changes anything. */
#ifndef SABHA_SM_APP_MAP_H
#define SABHA_SM_APP_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm/app.h"

#define APP_MAP_NONE UINT32_MAX

struct app_map_slot {
  uint32_t pos1; /* record position + 1; 0: empty */
  uint32_t hash;
};

struct app_map {
  struct app_map_slot *slots;
  uint32_t cap; /* a power of two, or 0 */
  uint32_t n;
  uint64_t key[2]; /* app_config.hash_key, taken by the first reserve */
};

/* The key of the record at position pos. */
typedef struct app_arg (*app_map_key_fn)(const void *ctx, uint32_t pos);

/* The hash of a key, as the index m places it. */
uint32_t app_map_hash(const struct app_map *m, const uint8_t *p, size_t len);

/* Makes room for n_total keys without growing again. Returns 0 or
 * SABHA_ENOMEM (the index unchanged). */
int app_map_reserve(const struct app_config *cfg, struct app_map *m,
                    uint64_t n_total);

/* The position stored under key, or APP_MAP_NONE. */
uint32_t app_map_find(const struct app_map *m, struct app_arg key,
                      app_map_key_fn key_of, const void *ctx);

/* Adds key -> pos; the key must be absent and room reserved. */
void app_map_insert(struct app_map *m, struct app_arg key, uint32_t pos);

/* Removes key, which must be present. */
void app_map_remove(struct app_map *m, struct app_arg key,
                    app_map_key_fn key_of, const void *ctx);

/* Forgets every key, keeping the room. */
void app_map_clear(struct app_map *m);

void app_map_free(const struct app_config *cfg, struct app_map *m);

#endif
