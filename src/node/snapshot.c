/* The "SND2" snapshot container of sabhad: snapshot.h specifies it. */
#include "node/snapshot.h"

#include <assert.h>
#include <string.h>

#include "core/endian.h"
#include "sabha/error.h"
#include "storage/crc32c.h"

#define MAGIC_BYTES 4u
#define LEN_BYTES 8u
#define CRC_BYTES 4u

size_t rt_snap_size(size_t kv_len, size_t app_len) {
  return RT_SNAP_OVERHEAD_BYTES + kv_len + app_len;
}

uint8_t *rt_snap_kv_at(uint8_t *buf) {
  return buf + MAGIC_BYTES + LEN_BYTES;
}

uint8_t *rt_snap_app_at(uint8_t *buf, size_t kv_len) {
  return buf + MAGIC_BYTES + LEN_BYTES + kv_len + LEN_BYTES;
}

size_t rt_snap_seal(uint8_t *buf, size_t kv_len, size_t app_len) {
  assert(buf != NULL);
  memcpy(buf, RT_SNAP_MAGIC, MAGIC_BYTES);
  le_put_u64(buf + MAGIC_BYTES, kv_len);
  le_put_u64(rt_snap_app_at(buf, kv_len) - LEN_BYTES, app_len);
  size_t body = rt_snap_size(kv_len, app_len) - CRC_BYTES;
  le_put_u32(buf + body, wal_crc32c(0, buf, body));
  assert(rt_snap_app_at(buf, kv_len) + app_len == buf + body);
  return body + CRC_BYTES;
}

int rt_snap_open(const uint8_t *data, size_t len, struct rt_snap_parts *out) {
  memset(out, 0, sizeof *out);
  if (len >= MAGIC_BYTES && memcmp(data, RT_SNAP_KV_MAGIC, MAGIC_BYTES) == 0) {
    out->kv = data; /* an older node's snapshot: the store alone */
    out->kv_len = len;
    return 0;
  }
  if (len < RT_SNAP_OVERHEAD_BYTES ||
      memcmp(data, RT_SNAP_MAGIC, MAGIC_BYTES) != 0)
    return SABHA_ECORRUPT;
  /* Each length is checked against what is left before it is used, so no
   * sum can wrap. */
  uint64_t kv_len = le_get_u64(data + MAGIC_BYTES);
  if (kv_len > len - RT_SNAP_OVERHEAD_BYTES)
    return SABHA_ECORRUPT;
  const uint8_t *kv = data + MAGIC_BYTES + LEN_BYTES;
  uint64_t app_len = le_get_u64(kv + kv_len);
  if (app_len != len - RT_SNAP_OVERHEAD_BYTES - kv_len)
    return SABHA_ECORRUPT;
  size_t body = len - CRC_BYTES;
  if (wal_crc32c(0, data, body) != le_get_u32(data + body))
    return SABHA_ECORRUPT;
  out->kv = kv;
  out->kv_len = (size_t)kv_len;
  out->app = kv + kv_len + LEN_BYTES;
  out->app_len = (size_t)app_len;
  assert(out->app + out->app_len == data + body);
  return 0;
}
