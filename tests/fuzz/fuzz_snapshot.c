/* Fuzz target for the runtime's snapshot container (rt_snap_open,
 * src/node/snapshot.c) and the two restores behind it, in the order the
 * runtime runs them when it builds its state from a snapshot it read from
 * disk or received from the leader.
 *
 * Input layout: byte 0 asks for checksums to be rewritten to match, so that
 * the fuzzer gets past them (fuzz_sm.h): bit 0 the key-value part's, bit 1
 * the applications part's (both only where the container's lengths are
 * sane), bit 2 the container's, last. The rest is the snapshot.
 *
 * Oracles, from snapshot.h: an opened container's parts lie inside it and
 * fill it exactly, and sealing the same parts again gives back exactly the
 * input; a bare "SKV1" opens as a key-value part alone. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_sm.h"
#include "node/snapshot.h"
#include "sabha/error.h"

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* The parts' trailers, where the container's lengths (read as
 * snapshot.h lays them out) put them. */
static void fix_parts(uint8_t *p, size_t n, uint8_t flags) {
  if (n < RT_SNAP_OVERHEAD_BYTES || memcmp(p, RT_SNAP_MAGIC, 4) != 0)
    return;
  uint64_t kv_len = get_u64(p + 4);
  if (kv_len > n - RT_SNAP_OVERHEAD_BYTES)
    return;
  if (flags & 1)
    fuzz_fix_crc(p + 12, (size_t)kv_len);
  if (flags & 2)
    fuzz_fix_crc(p + 20 + kv_len, n - RT_SNAP_OVERHEAD_BYTES - kv_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  size_t n = size - 1;
  uint8_t *input = malloc(n > 0 ? n : 1);
  REQUIRE(input != NULL);
  memcpy(input, data + 1, n);
  fix_parts(input, n, flags);
  if (flags & 4)
    fuzz_fix_crc(input, n);

  struct rt_snap_parts parts;
  int rc = rt_snap_open(input, n, &parts);
  if (rc != 0) {
    REQUIRE(rc == SABHA_ECORRUPT);
    free(input);
    return 0;
  }
  REQUIRE(parts.kv >= input && parts.kv_len <= n &&
          (size_t)(parts.kv - input) <= n - parts.kv_len);
  if (parts.app == NULL) {
    REQUIRE(memcmp(input, RT_SNAP_KV_MAGIC, 4) == 0);
    REQUIRE(parts.kv == input && parts.kv_len == n);
  } else if (memcmp(input, RT_SNAP_MAGIC, 4) == 0) {
    /* The current version seals back to the same bytes (an older "SND2"
     * would be sealed as the current one). */
    REQUIRE(rt_snap_size(parts.kv_len, parts.app_len, parts.conf_len) == n);
    uint8_t *sealed = malloc(n);
    REQUIRE(sealed != NULL);
    memcpy(rt_snap_kv_at(sealed), parts.kv, parts.kv_len);
    memcpy(rt_snap_app_at(sealed, parts.kv_len), parts.app, parts.app_len);
    if (parts.conf_len > 0)
      memcpy(rt_snap_conf_at(sealed, parts.kv_len, parts.app_len), parts.conf,
             parts.conf_len);
    REQUIRE(rt_snap_seal(sealed, parts.kv_len, parts.app_len, parts.conf_len) ==
            n);
    REQUIRE(memcmp(sealed, input, n) == 0);
    free(sealed);
  }

  /* What the runtime does next (build_state in src/node/runtime.c). */
  struct kvstore *kv = NULL;
  struct app *app = NULL;
  struct kvstore_config kc = sm_kv_config();
  struct app_config ac = sm_app_config();
  REQUIRE(kvstore_new(&kv, &kc) == 0 && app_new(&app, &ac) == 0);
  rc = kvstore_restore(kv, parts.kv, parts.kv_len);
  REQUIRE(rc == 0 || rc == SABHA_ECORRUPT || rc == SABHA_ENOMEM);
  if (rc == 0 && parts.app != NULL) {
    rc = app_restore(app, parts.app, parts.app_len);
    REQUIRE(rc == 0 || rc == SABHA_ECORRUPT || rc == SABHA_ENOMEM);
  }
  kvstore_free(kv);
  app_free(app);
  free(input);
  return 0;
}
