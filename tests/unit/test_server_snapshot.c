/* Tests of sabhad's snapshot container (src/server/snapshot.h): two parts
 * round-trip in place; an older node's bare kvstore snapshot ("SKV1") still
 * opens; every flipped byte, every truncation and lengths that do not add
 * up are refused, never read past the buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "node/snapshot.h"
#include "sabha/error.h"
#include "sm/kvstore.h"
#include "storage/crc32c.h"

static int failures;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)
#define RUN(test)                                                              \
  do {                                                                         \
    int before_ = failures;                                                    \
    test();                                                                    \
    printf("%s %s\n", failures == before_ ? "ok  " : "FAIL", #test);           \
  } while (0)

static const char KV[] = "SKV1 pretend store bytes";
static const char APP[] = "SAP1 pretend app bytes, a little longer";
static const char CONF[] = "SCF1 pretend membership";

/* A container of KV, APP and CONF, built in place as the node builds it. */
static uint8_t *build(size_t *size) {
  size_t kv_len = sizeof KV - 1, app_len = sizeof APP - 1;
  size_t conf_len = sizeof CONF - 1;
  uint8_t *buf = malloc(rt_snap_size(kv_len, app_len, conf_len));
  if (buf == NULL)
    return NULL;
  memcpy(rt_snap_kv_at(buf), KV, kv_len);
  memcpy(rt_snap_app_at(buf, kv_len), APP, app_len);
  memcpy(rt_snap_conf_at(buf, kv_len, app_len), CONF, conf_len);
  *size = rt_snap_seal(buf, kv_len, app_len, conf_len);
  return buf;
}

static void snapshot_container_round_trips_both_parts(void) {
  size_t size = 0;
  uint8_t *buf = build(&size);
  CHECK(buf != NULL);
  CHECK(size == RT_SNAP_OVERHEAD_BYTES + sizeof KV - 1 + sizeof APP - 1 +
                    sizeof CONF - 1);
  CHECK(memcmp(buf, "SND3", 4) == 0);
  struct rt_snap_parts p;
  int rc = rt_snap_open(buf, size, &p);
  int ok = rc == 0 && p.kv_len == sizeof KV - 1 &&
           memcmp(p.kv, KV, p.kv_len) == 0 && p.app != NULL &&
           p.app_len == sizeof APP - 1 && memcmp(p.app, APP, p.app_len) == 0 &&
           p.conf != NULL && p.conf_len == sizeof CONF - 1 &&
           memcmp(p.conf, CONF, p.conf_len) == 0;
  free(buf);
  CHECK(ok);
}

/* A container written before memberships were kept ("SND2": no third
 * length) still opens, with no membership. */
static void snapshot_container_opens_a_version_2_container(void) {
  size_t kv_len = sizeof KV - 1, app_len = sizeof APP - 1;
  size_t size = 4 + 8 + kv_len + 8 + app_len + 4;
  uint8_t *buf = malloc(size);
  CHECK(buf != NULL);
  memcpy(buf, "SND2", 4);
  le_put_u64(buf + 4, kv_len);
  memcpy(buf + 12, KV, kv_len);
  le_put_u64(buf + 12 + kv_len, app_len);
  memcpy(buf + 20 + kv_len, APP, app_len);
  le_put_u32(buf + size - 4, wal_crc32c(0, buf, size - 4));
  struct rt_snap_parts p;
  int rc = rt_snap_open(buf, size, &p);
  int ok = rc == 0 && p.kv_len == kv_len && p.app_len == app_len &&
           memcmp(p.app, APP, app_len) == 0 && p.conf == NULL;
  le_put_u64(buf + 12 + kv_len, app_len - 1); /* lengths must add up */
  le_put_u32(buf + size - 4, wal_crc32c(0, buf, size - 4));
  ok = ok && rt_snap_open(buf, size, &p) == SABHA_ECORRUPT;
  free(buf);
  CHECK(ok);
}

static void snapshot_container_opens_an_older_bare_kvstore_snapshot(void) {
  struct kvstore *kv = NULL;
  CHECK(kvstore_new(&kv, &kvstore_config_default) == 0);
  size_t cap = kvstore_snapshot_size(kv);
  uint8_t *buf = malloc(cap);
  size_t len = buf != NULL ? kvstore_snapshot(kv, buf, cap) : 0;
  struct rt_snap_parts p;
  int rc = buf != NULL ? rt_snap_open(buf, len, &p) : -1;
  int ok = rc == 0 && p.kv == buf && p.kv_len == len && p.app == NULL &&
           kvstore_restore(kv, p.kv, p.kv_len) == 0;
  free(buf);
  kvstore_free(kv);
  CHECK(ok);
}

static void snapshot_container_refuses_any_flipped_byte(void) {
  size_t size = 0;
  uint8_t *buf = build(&size);
  CHECK(buf != NULL);
  int accepted = 0;
  for (size_t i = 0; i < size; i++) {
    for (unsigned bit = 0; bit < 8; bit++) {
      buf[i] ^= (uint8_t)(1u << bit);
      struct rt_snap_parts p;
      /* A flip in the magic may turn it into "SKV1"'s: that is a bare
       * kvstore snapshot, whose own checksum catches it on restore. */
      if (rt_snap_open(buf, size, &p) == 0 && p.app != NULL)
        accepted++;
      buf[i] ^= (uint8_t)(1u << bit);
    }
  }
  free(buf);
  CHECK(accepted == 0);
}

static void snapshot_container_refuses_every_truncation(void) {
  size_t size = 0;
  uint8_t *buf = build(&size);
  CHECK(buf != NULL);
  int accepted = 0;
  for (size_t len = 0; len < size; len++) {
    /* A copy of exactly len bytes, so a read past it shows in ASan. */
    uint8_t *cut = malloc(len > 0 ? len : 1);
    if (cut == NULL)
      break;
    memcpy(cut, buf, len);
    struct rt_snap_parts p;
    accepted += rt_snap_open(cut, len, &p) == 0;
    free(cut);
  }
  free(buf);
  CHECK(accepted == 0);
}

/* Lengths that point past the end, with a checksum that matches them:
 * refused on the lengths alone. */
static void snapshot_container_refuses_lengths_that_do_not_add_up(void) {
  size_t size = 0;
  uint8_t *buf = build(&size);
  CHECK(buf != NULL);
  const uint64_t bad[] = {UINT64_MAX, UINT64_MAX - 7, size, sizeof KV};
  int accepted = 0;
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    uint8_t *copy = malloc(size);
    if (copy == NULL)
      break;
    memcpy(copy, buf, size);
    le_put_u64(copy + 4, bad[k]);
    le_put_u32(copy + size - 4, wal_crc32c(0, copy, size - 4));
    struct rt_snap_parts p;
    accepted += rt_snap_open(copy, size, &p) == 0;
    free(copy);
  }
  free(buf);
  CHECK(accepted == 0);
}

static void snapshot_container_refuses_an_unknown_magic(void) {
  static const uint8_t junk[40] = "XXXX and then some bytes";
  struct rt_snap_parts p;
  CHECK(rt_snap_open(junk, sizeof junk, &p) == SABHA_ECORRUPT);
  CHECK(rt_snap_open(junk, 0, &p) == SABHA_ECORRUPT);
}

int main(void) {
  RUN(snapshot_container_round_trips_both_parts);
  RUN(snapshot_container_opens_a_version_2_container);
  RUN(snapshot_container_opens_an_older_bare_kvstore_snapshot);
  RUN(snapshot_container_refuses_any_flipped_byte);
  RUN(snapshot_container_refuses_every_truncation);
  RUN(snapshot_container_refuses_lengths_that_do_not_add_up);
  RUN(snapshot_container_refuses_an_unknown_magic);
  return failures == 0 ? 0 : 1;
}
