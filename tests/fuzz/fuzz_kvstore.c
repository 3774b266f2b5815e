/* Fuzz target for kvstore_restore (src/sm/kvstore.c): a snapshot of the
 * key-value store, which a node reads from its disk at start-up and
 * receives from the leader when it falls too far behind.
 *
 * Input layout: byte 0 bit 0 asks for the CRC32C trailer to be rewritten
 * to match (fuzz_sm.h says why); bit 1 restores into a store with the
 * default bounds instead of small ones. The rest is the snapshot.
 *
 * Oracles, from kvstore.h: a refused snapshot is SABHA_ECORRUPT (or
 * SABHA_ENOMEM) and leaves the store exactly as it was (its own snapshot
 * is byte for byte the same); an accepted one describes a store that
 * snapshots, restores elsewhere and snapshots again to as many bytes, with
 * as many keys and sessions and the same clock. Not to the same bytes: the
 * store's table is laid out by insertion history and capacity, so two
 * stores with the same contents may list their keys in another order (a
 * restored replica's snapshot is not the leader's, byte for byte). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_sm.h"
#include "sabha/error.h"

static uint8_t *snapshot_of(const struct kvstore *kv, size_t *n) {
  *n = kvstore_snapshot_size(kv);
  uint8_t *p = malloc(*n);
  REQUIRE(p != NULL);
  REQUIRE(kvstore_snapshot(kv, p, *n) == *n);
  return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  size_t n = size - 1;
  uint8_t *input = malloc(n > 0 ? n : 1);
  REQUIRE(input != NULL);
  memcpy(input, data + 1, n);
  if (flags & 1)
    fuzz_fix_crc(input, n);
  struct kvstore_config cfg =
      flags & 2 ? kvstore_config_default : sm_kv_config();

  struct kvstore *kv = NULL, *other = NULL;
  REQUIRE(kvstore_new(&kv, &cfg) == 0 && kvstore_new(&other, &cfg) == 0);
  sm_kv_populate(kv);
  size_t before_n;
  uint8_t *before = snapshot_of(kv, &before_n);

  int rc = kvstore_restore(kv, input, n);
  if (rc != 0) {
    REQUIRE(rc == SABHA_ECORRUPT || rc == SABHA_ENOMEM);
    size_t after_n;
    uint8_t *after = snapshot_of(kv, &after_n);
    REQUIRE(after_n == before_n && memcmp(after, before, before_n) == 0);
    free(after);
  } else {
    size_t first_n, second_n;
    uint8_t *first = snapshot_of(kv, &first_n);
    REQUIRE(kvstore_restore(other, first, first_n) == 0);
    uint8_t *second = snapshot_of(other, &second_n);
    REQUIRE(second_n == first_n);
    REQUIRE(kvstore_dbsize(other) == kvstore_dbsize(kv));
    REQUIRE(kvstore_n_sessions(other) == kvstore_n_sessions(kv));
    REQUIRE(kvstore_clock_ms(other) == kvstore_clock_ms(kv));
    REQUIRE(kvstore_dbsize(kv) <= cfg.keys_max);
    REQUIRE(kvstore_n_sessions(kv) <= cfg.sessions_max);
    free(first);
    free(second);
  }
  free(before);
  free(input);
  kvstore_free(kv);
  kvstore_free(other);
  return 0;
}
