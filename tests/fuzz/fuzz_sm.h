/* Helpers shared by the fuzz targets of the state machines (kvstore, app,
 * snapshot, commands) and by gen_corpus.c, which writes their seeds.
 *
 * A restore that fails must leave the state as it was, so the targets
 * restore over a machine that already holds something: sm_kv_populate()
 * and sm_app_populate() apply a few commands of every kind to a fresh one.
 * Snapshots end in a CRC32C that random bytes almost never match, which
 * would keep a fuzzer at the checksum forever: fuzz_fix_crc() lets a target
 * rewrite it (when the input asks) so that the parser behind it is reached.
 *
 * Header-only (static functions), because each fuzz target is a single
 * file linked with either libFuzzer or replay.c. */
#ifndef SABHA_FUZZ_SM_H
#define SABHA_FUZZ_SM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "sm/app.h"
#include "sm/kvstore.h"
#include "storage/crc32c.h"

/* Small bounds, so that "more than this config allows" is reachable with
 * inputs of a few kilobytes. */
static inline struct kvstore_config sm_kv_config(void) {
  struct kvstore_config c = {
      .key_bytes_max = 64,
      .value_bytes_max = 256,
      .keys_max = 64,
      .data_bytes_max = 4096,
      .sessions_max = 16,
      .leases_max = 4,
      .lease_keys_max = 4,
      .reply_bytes_max = 1024, /* four values: a TXN's reads reach it */
      .hash_key = {0x736162686121ull, 0x66757a7a6564ull},
  };
  return c;
}
static inline struct app_config sm_app_config(void) {
  struct app_config c = {.dedup_max = 8, .objects_max = 128};
  return c;
}

/* Rewrites the u32 trailer of p[0, n) as the CRC32C of the bytes before
 * it. */
static inline void fuzz_fix_crc(uint8_t *p, size_t n) {
  if (n < 4)
    return;
  uint32_t crc = wal_crc32c(0, p, n - 4);
  for (int i = 0; i < 4; i++)
    p[n - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static inline struct kvstore_slice sm_str(const char *s) {
  struct kvstore_slice x = {(const uint8_t *)s, strlen(s)};
  return x;
}

/* Applies one encoded command; the population must succeed. */
static inline int64_t sm_kv_apply(struct kvstore *kv, const uint8_t *cmd,
                                  size_t n) {
  struct kvstore_result r;
  REQUIRE(n > 0 && kvstore_apply(kv, cmd, n, &r) == 0);
  return r.integer;
}

/* A session, keys with and without expiry, a counter, a swapped value, a
 * lease with a key, a transaction. */
static inline void sm_kv_populate(struct kvstore *kv) {
  uint8_t cmd[512];
  size_t n = kvstore_encode_register(cmd, sizeof cmd, 1000, 7);
  uint64_t session = (uint64_t)sm_kv_apply(kv, cmd, n);
  struct kvstore_hdr h = {.session = session, .seq = 1, .now_ms = 1001};
  n = kvstore_encode_set(cmd, sizeof cmd, &h, sm_str("city"), sm_str("mumbai"),
                         0, 0);
  sm_kv_apply(kv, cmd, n);
  h.seq++;
  n = kvstore_encode_set(cmd, sizeof cmd, &h, sm_str("ttl"), sm_str("soon"),
                         KVSTORE_SET_PX, 5000);
  sm_kv_apply(kv, cmd, n);
  h.seq++;
  n = kvstore_encode_incrby(cmd, sizeof cmd, &h, sm_str("n"), 41);
  sm_kv_apply(kv, cmd, n);
  h.seq++;
  struct kvstore_slice expected = sm_str("mumbai");
  n = kvstore_encode_cas(cmd, sizeof cmd, &h, sm_str("city"), &expected,
                         sm_str("delhi"));
  sm_kv_apply(kv, cmd, n);
  h.seq++;
  kvstore_set_revision(kv, 9);
  n = kvstore_encode_lease(cmd, sizeof cmd, &h, KVSTORE_OP_LEASE_GRANT, 3000);
  uint64_t lease = (uint64_t)sm_kv_apply(kv, cmd, n);
  h.seq++;
  n = kvstore_encode_set_ex(cmd, sizeof cmd, &h, sm_str("svc/a"),
                            sm_str("10.0.0.1"), KVSTORE_SET_LEASE, 0, lease);
  sm_kv_apply(kv, cmd, n);
  h.seq++;
  kvstore_set_revision(kv, 12);
  uint8_t sub[2][64];
  struct kvstore_slice subs[2];
  subs[0].len = kvstore_encode_append(sub[0], sizeof sub[0], &h, sm_str("n"),
                                      sm_str("0"));
  subs[1].len = kvstore_encode_getdel(sub[1], sizeof sub[1], &h, sm_str("ttl"));
  subs[0].ptr = sub[0];
  subs[1].ptr = sub[1];
  struct kvstore_slice watch = sm_str("city");
  n = kvstore_encode_txn(cmd, sizeof cmd, &h, &watch, 1, 12, subs, 2);
  sm_kv_apply(kv, cmd, n);
}

static inline void sm_app_do(struct app *a, uint64_t now_ms, enum app_op op,
                             const char *const *words, size_t argc) {
  struct app_arg argv[APP_ARGS_MAX];
  for (size_t i = 0; i < argc; i++) {
    argv[i].ptr = (const uint8_t *)words[i];
    argv[i].len = strlen(words[i]);
  }
  uint8_t cmd[1024];
  struct app_hdr h = {.now_ms = now_ms, .tag = 0};
  size_t n = app_encode(cmd, sizeof cmd, &h, op, argv, argc);
  struct app_reply r;
  REQUIRE(n > 0 && n <= sizeof cmd && app_apply(a, cmd, n, &r) == 0);
}

#define SM_APP_DO(a, t, op, ...)                                               \
  do {                                                                         \
    const char *const w_[] = {__VA_ARGS__};                                    \
    sm_app_do((a), (t), (op), w_, sizeof w_ / sizeof w_[0]);                   \
  } while (0)

/* A record of every application: accounts and a transfer, seats and a
 * booking, a lock and a fenced write, an order moved along. */
static inline void sm_app_populate(struct app *a) {
  SM_APP_DO(a, 100, APP_LEDGER_OPEN, "asha", "1000");
  SM_APP_DO(a, 101, APP_LEDGER_OPEN, "ravi", "50");
  SM_APP_DO(a, 102, APP_LEDGER_TRANSFER, "tx1", "asha", "ravi", "250");
  SM_APP_DO(a, 103, APP_SEATS_ADD, "12951", "2024-03-01", "A1", "A2");
  SM_APP_DO(a, 104, APP_SEATS_BOOK, "r1", "12951", "2024-03-01", "A2", "meera");
  SM_APP_DO(a, 105, APP_LOCK_ACQUIRE, "leader", "n1", "3000");
  SM_APP_DO(a, 106, APP_FENCED_SET, "cfg", "v1", "leader", "1");
  SM_APP_DO(a, 107, APP_ORDER_CREATE, "o1", "asha", "999");
  SM_APP_DO(a, 108, APP_ORDER_ADVANCE, "o1", "PAYMENT_CONFIRMED");
}

#endif
