/* Fuzz target for app_restore (src/sm/app.c): a snapshot of the
 * applications machine (ledger, seats, locks, fenced keys, orders and
 * their dedup tables), read from disk at start-up or sent by the leader.
 *
 * Input layout: byte 0 bit 0 asks for the CRC32C trailer to be rewritten
 * to match (fuzz_sm.h says why); bit 1 restores into a machine with the
 * default bounds instead of small ones. The rest is the snapshot.
 *
 * Oracles, from app.h: a refused snapshot is SABHA_ECORRUPT (or
 * SABHA_ENOMEM) and leaves the state as it was (same state hash, same
 * snapshot bytes); an accepted one is canonical: its state snapshots to
 * exactly the input (records keep their order, so there is one way to
 * write a state), and restores elsewhere to the same state hash. A
 * version-1 or version-2 snapshot (byte 4), which nodes still read after
 * an upgrade, is written back as version 3: that one must be canonical in
 * turn. The
 * ledger's audit must add up to the balances it lists. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_sm.h"
#include "sabha/error.h"

static uint8_t *snapshot_of(const struct app *a, size_t *n) {
  *n = app_snapshot_size(a);
  uint8_t *p = malloc(*n);
  REQUIRE(p != NULL);
  REQUIRE(app_snapshot(a, p, *n) == *n);
  return p;
}

struct audit {
  uint64_t accounts;
  int64_t total;
  int overflow;
};

static void add_balance(void *ctx, const struct app_arg *name, int64_t balance,
                        int64_t opened_with) {
  struct audit *au = ctx;
  REQUIRE(name->len >= 1 && name->len <= APP_ARG_BYTES_MAX);
  (void)opened_with;
  au->accounts++;
  if (__builtin_add_overflow(au->total, balance, &au->total))
    au->overflow = 1;
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
  struct app_config cfg = flags & 2 ? app_config_default : sm_app_config();

  struct app *a = NULL, *other = NULL;
  REQUIRE(app_new(&a, &cfg) == 0 && app_new(&other, &cfg) == 0);
  sm_app_populate(a);
  uint64_t hash_before = app_state_hash(a);
  size_t before_n;
  uint8_t *before = snapshot_of(a, &before_n);

  int rc = app_restore(a, input, n);
  if (rc != 0) {
    REQUIRE(rc == SABHA_ECORRUPT || rc == SABHA_ENOMEM);
    REQUIRE(app_state_hash(a) == hash_before);
    size_t after_n;
    uint8_t *after = snapshot_of(a, &after_n);
    REQUIRE(after_n == before_n && memcmp(after, before, before_n) == 0);
    free(after);
  } else {
    size_t again_n;
    uint8_t *again = snapshot_of(a, &again_n);
    REQUIRE(n > 4 && input[4] >= 1 && input[4] <= 3);
    if (input[4] == 3)
      REQUIRE(again_n == n && memcmp(again, input, n) == 0);
    REQUIRE(app_restore(other, again, again_n) == 0);
    REQUIRE(app_state_hash(other) == app_state_hash(a));
    size_t third_n;
    uint8_t *third = snapshot_of(other, &third_n);
    REQUIRE(third_n == again_n && memcmp(third, again, again_n) == 0);
    free(third);
    REQUIRE(app_clock_ms(other) == app_clock_ms(a));
    struct audit au = {0, 0, 0};
    app_ledger_foreach(a, add_balance, &au);
    uint64_t accounts;
    int64_t total;
    app_ledger_audit(a, &accounts, &total);
    REQUIRE(au.accounts == accounts && !au.overflow && au.total == total);
    free(again);
  }
  free(before);
  free(input);
  app_free(a);
  app_free(other);
  return 0;
}
