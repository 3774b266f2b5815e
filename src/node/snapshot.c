/* The "SND3" snapshot container of sabhad: snapshot.h specifies it. */
#include "node/snapshot.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include "core/endian.h"
#include "sabha/error.h"
#include "storage/crc32c.h"

#define MAGIC_BYTES 4u
#define LEN_BYTES 8u
#define CRC_BYTES 4u

size_t rt_snap_size(size_t kv_len, size_t app_len, size_t conf_len) {
  return RT_SNAP_OVERHEAD_BYTES + kv_len + app_len + conf_len;
}

uint8_t *rt_snap_kv_at(uint8_t *buf) {
  return buf + MAGIC_BYTES + LEN_BYTES;
}

uint8_t *rt_snap_app_at(uint8_t *buf, size_t kv_len) {
  return buf + MAGIC_BYTES + LEN_BYTES + kv_len + LEN_BYTES;
}

uint8_t *rt_snap_conf_at(uint8_t *buf, size_t kv_len, size_t app_len) {
  return rt_snap_app_at(buf, kv_len) + app_len + LEN_BYTES;
}

size_t rt_snap_seal(uint8_t *buf, size_t kv_len, size_t app_len,
                    size_t conf_len) {
  assert(buf != NULL);
  memcpy(buf, RT_SNAP_MAGIC, MAGIC_BYTES);
  le_put_u64(buf + MAGIC_BYTES, kv_len);
  le_put_u64(rt_snap_app_at(buf, kv_len) - LEN_BYTES, app_len);
  le_put_u64(rt_snap_conf_at(buf, kv_len, app_len) - LEN_BYTES, conf_len);
  size_t body = rt_snap_size(kv_len, app_len, conf_len) - CRC_BYTES;
  le_put_u32(buf + body, wal_crc32c(0, buf, body));
  assert(rt_snap_conf_at(buf, kv_len, app_len) + conf_len == buf + body);
  return body + CRC_BYTES;
}

int rt_snap_open(const uint8_t *data, size_t len, struct rt_snap_parts *out) {
  memset(out, 0, sizeof *out);
  if (len >= MAGIC_BYTES && memcmp(data, RT_SNAP_KV_MAGIC, MAGIC_BYTES) == 0) {
    out->kv = data; /* an older node's snapshot: the store alone */
    out->kv_len = len;
    return 0;
  }
  bool v3 = len >= MAGIC_BYTES && memcmp(data, RT_SNAP_MAGIC, MAGIC_BYTES) == 0;
  bool v2 =
      len >= MAGIC_BYTES && memcmp(data, RT_SNAP_V2_MAGIC, MAGIC_BYTES) == 0;
  /* Version 2 has one length field fewer. */
  size_t overhead = RT_SNAP_OVERHEAD_BYTES - (v3 ? 0 : LEN_BYTES);
  if ((!v3 && !v2) || len < overhead)
    return SABHA_ECORRUPT;
  /* Each length is checked against what is left before it is used, so no
   * sum can wrap. */
  size_t left = len - overhead;
  uint64_t kv_len = le_get_u64(data + MAGIC_BYTES);
  if (kv_len > left)
    return SABHA_ECORRUPT;
  left -= (size_t)kv_len;
  const uint8_t *kv = data + MAGIC_BYTES + LEN_BYTES;
  uint64_t app_len = le_get_u64(kv + kv_len);
  if (app_len > left || (v2 && app_len != left))
    return SABHA_ECORRUPT;
  left -= (size_t)app_len;
  const uint8_t *app = kv + kv_len + LEN_BYTES;
  uint64_t conf_len = 0;
  if (v3) {
    conf_len = le_get_u64(app + app_len);
    if (conf_len != left)
      return SABHA_ECORRUPT;
  }
  size_t body = len - CRC_BYTES;
  if (wal_crc32c(0, data, body) != le_get_u32(data + body))
    return SABHA_ECORRUPT;
  out->kv = kv;
  out->kv_len = (size_t)kv_len;
  out->app = app;
  out->app_len = (size_t)app_len;
  if (conf_len > 0) {
    out->conf = app + app_len + LEN_BYTES;
    out->conf_len = (size_t)conf_len;
  }
  assert((v3 ? app + app_len + LEN_BYTES + conf_len : app + app_len) ==
         data + body);
  return 0;
}
