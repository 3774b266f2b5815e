/* The removed marker: the one thing a node learns from a peer rather than
 * from its own log that it must remember across restarts.
 *
 * A node that was away while the group removed it never reads that change
 * in its log; a member tells it (engine.h, removed_notice_index). Without a
 * durable note of it, every restart would campaign again until told again.
 * The note lives in its own small file, not in the hard state: it is
 * written once in a node's life, and its loss costs one more round of
 * asking, never safety (the engine believes a notice only from a member,
 * about a newer membership, and a removed node cannot disrupt the group). */
#include <assert.h>
#include <string.h>

#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/wal_internal.h"

#define RMV_MAGIC "SABHARMV"
#define RMV_VERSION 1u
#define RMV_BYTES 32u
#define RMV_CRC_AT 28u
#define RMV_NAME "removed"
#define RMV_TMP_NAME "removed.tmp"

int wal_removed_save(struct wal *w, uint64_t index) {
  assert(index != 0);
  if (w->failed)
    return w->failed;
  uint8_t b[RMV_BYTES];
  memset(b, 0, sizeof b);
  memcpy(b, RMV_MAGIC, 8);
  le_put_u32(b + 8, RMV_VERSION);
  le_put_u64(b + 16, index);
  le_put_u32(b + RMV_CRC_AT, wal_crc32c(0, b, RMV_CRC_AT));
  return wal_write_whole(w, RMV_TMP_NAME, RMV_NAME, b, sizeof b);
}

int wal_removed_load(struct wal *w, uint64_t *index) {
  *index = 0;
  uint8_t b[RMV_BYTES + 1];
  size_t n = 0;
  bool absent = false;
  int rv = wal_read_whole(w, RMV_NAME, b, sizeof b, &n, &absent);
  if (rv != 0 || absent)
    return rv;
  /* Renamed into place whole: anything else is damage. */
  if (n != RMV_BYTES || memcmp(b, RMV_MAGIC, 8) != 0 ||
      le_get_u32(b + 8) != RMV_VERSION || le_get_u32(b + 12) != 0 ||
      le_get_u32(b + 24) != 0 ||
      wal_crc32c(0, b, RMV_CRC_AT) != le_get_u32(b + RMV_CRC_AT) ||
      le_get_u64(b + 16) == 0)
    return wal_error(w, SABHA_ECORRUPT, "%s: not a whole removed marker",
                     wal_path(w, RMV_NAME));
  *index = le_get_u64(b + 16);
  return 0;
}
