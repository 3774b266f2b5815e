/* The WAL's on-disk format in code: segment names, segment headers and the
 * check every record must pass before recovery believes it. The writer
 * (wal.c) encodes with the same constants; keeping the checks here, in one
 * place, is what stops the two from drifting apart. The layout is specified
 * in wal.h. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/wal_internal.h"

/* Decodes a HARD_STATE payload of either length (see wal.h). */
void wal_hard_state_decode(const struct wal_rec *rec,
                           struct sabha_hard_state *hs) {
  const uint8_t *p = rec->payload;
  hs->term = le_get_u64(p);
  hs->vote = le_get_u32(p + 8);
  hs->commit = le_get_u64(p + 16);
  hs->repair_until = rec->payload_bytes == WAL_HARD_STATE_GUARD_BYTES
                         ? le_get_u64(p + WAL_HARD_STATE_BYTES)
                         : 0;
}

uint32_t wal_hard_state_encode(uint8_t *p, const struct sabha_hard_state *hs) {
  le_put_u64(p, hs->term);
  le_put_u32(p + 8, hs->vote);
  le_put_u32(p + 12, 0);
  le_put_u64(p + 16, hs->commit);
  if (hs->repair_until == 0)
    return WAL_HARD_STATE_BYTES;
  le_put_u64(p + WAL_HARD_STATE_BYTES, hs->repair_until);
  return WAL_HARD_STATE_GUARD_BYTES;
}

/* The payload length a record of `type` must have, given its payload (which
 * holds the entry size for ENTRY). 0 for an unknown type. */
static uint64_t payload_bytes_expected(uint8_t type, const uint8_t *payload,
                                       uint32_t payload_bytes) {
  switch (type) {
  case WAL_REC_HARD_STATE:
    return payload_bytes == WAL_HARD_STATE_GUARD_BYTES
               ? WAL_HARD_STATE_GUARD_BYTES
               : WAL_HARD_STATE_BYTES;
  case WAL_REC_ENTRY:
    if (payload_bytes < WAL_ENTRY_HEADER_BYTES)
      return WAL_ENTRY_HEADER_BYTES;
    return WAL_ENTRY_HEADER_BYTES + (uint64_t)le_get_u32(payload + 20);
  case WAL_REC_TRUNCATE:
    return WAL_TRUNCATE_BYTES;
  case WAL_REC_SNAPSHOT:
    return WAL_SNAPSHOT_REC_BYTES;
  case WAL_REC_INSTALL:
    return WAL_INSTALL_BYTES;
  case WAL_REC_ABORT:
    return WAL_ABORT_BYTES;
  case WAL_REC_CLOSE:
    return WAL_CLOSE_BYTES;
  default:
    return 0;
  }
}

uint32_t wal_rec_crc(uint64_t seq, const uint8_t *h, uint32_t payload_bytes) {
  uint8_t salt[8];
  le_put_u64(salt, seq);
  uint32_t crc = wal_crc32c(0, salt, sizeof salt);
  crc = wal_crc32c(crc, h + 4, WAL_REC_HEADER_BYTES - 4);
  return wal_crc32c(crc, h + WAL_REC_HEADER_BYTES, payload_bytes);
}

bool wal_rec_check(const uint8_t *seg, uint64_t size, uint64_t offset,
                   uint64_t seq, struct wal_rec *rec, const char **why) {
  assert(seg != NULL && offset <= size);
  if (size - offset < WAL_REC_HEADER_BYTES) {
    *why = "incomplete record header";
    return false;
  }
  const uint8_t *h = seg + offset;
  uint32_t payload_bytes = le_get_u32(h + 4);
  uint8_t type = h[8];
  uint32_t durable = le_get_u32(h + 12);
  if (type < WAL_REC_HARD_STATE || type > WAL_REC_TYPE_MAX || h[9] != 0 ||
      le_get_u16(h + 10) != 0) {
    *why = "bad record header";
    return false;
  }
  /* A record cannot know of fsyncs that covered bytes after its start. */
  if (durable < WAL_SEG_HEADER_BYTES || durable > offset) {
    *why = "bad record header";
    return false;
  }
  if (payload_bytes > size - offset - WAL_REC_HEADER_BYTES) {
    *why = "incomplete record";
    return false;
  }
  if (wal_rec_crc(seq, h, payload_bytes) != le_get_u32(h)) {
    *why = "checksum mismatch";
    return false;
  }
  const uint8_t *payload = h + WAL_REC_HEADER_BYTES;
  if (payload_bytes_expected(type, payload, payload_bytes) != payload_bytes) {
    /* The checksum matched, so the writer made it: a bug, not bit rot. */
    *why = "record payload of the wrong length";
    return false;
  }
  rec->payload_bytes = payload_bytes;
  rec->type = type;
  rec->durable_bytes = durable;
  rec->payload = payload;
  return true;
}

void wal_seg_header_encode(uint8_t *p, uint64_t seq, uint32_t flags) {
  assert(seq >= 1);
  memcpy(p, WAL_SEG_MAGIC, 8);
  le_put_u32(p + 8, WAL_FORMAT_VERSION);
  le_put_u32(p + 12, WAL_SEG_HEADER_BYTES);
  le_put_u64(p + 16, seq);
  le_put_u32(p + 24, flags);
  le_put_u32(p + 28, wal_crc32c(0, p, 28));
  assert(le_get_u64(p + 16) == seq);
}

int wal_seg_header_check(const uint8_t *p, uint64_t size,
                         struct wal_seg_header *h, const char **why) {
  if (size < WAL_SEG_HEADER_BYTES) {
    *why = "incomplete segment header";
    return SABHA_ECORRUPT;
  }
  if (memcmp(p, WAL_SEG_MAGIC, 8) != 0 ||
      wal_crc32c(0, p, 28) != le_get_u32(p + 28)) {
    *why = "bad segment header";
    return SABHA_ECORRUPT;
  }
  uint32_t version = le_get_u32(p + 8);
  if (version < WAL_SEG_VERSION_OLDEST || version > WAL_FORMAT_VERSION ||
      le_get_u32(p + 12) != WAL_SEG_HEADER_BYTES) {
    *why = "segment written in a format version this build does not read";
    return SABHA_EINVAL;
  }
  h->seq = le_get_u64(p + 16);
  h->version = version;
  h->flags = le_get_u32(p + 24);
  return 0;
}

uint64_t wal_seg_born_bytes(const struct wal_seg_header *h) {
  if (h->version < 2)
    return 0;
  if (h->flags & WAL_SEG_FLAG_HARD_STATE)
    return WAL_SEG_HEADER_BYTES + WAL_REC_HEADER_BYTES +
           (h->flags & WAL_SEG_FLAG_GUARD ? WAL_HARD_STATE_GUARD_BYTES
                                          : WAL_HARD_STATE_BYTES);
  return WAL_SEG_HEADER_BYTES;
}

void wal_seg_name(char *name, uint64_t seq) {
  int n = snprintf(name, WAL_SEG_NAME_BYTES + 1, "wal-%016llx.log",
                   (unsigned long long)seq);
  assert(n == (int)WAL_SEG_NAME_BYTES);
  (void)n;
}

bool wal_seg_name_parse(const char *name, uint64_t *seq) {
  if (strlen(name) != WAL_SEG_NAME_BYTES || memcmp(name, "wal-", 4) != 0 ||
      strcmp(name + 20, ".log") != 0)
    return false;
  uint64_t v = 0;
  for (int i = 4; i < 20; i++) {
    char c = name[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else
      return false;
    v = (v << 4) | d;
  }
  if (v == 0)
    return false;
  *seq = v;
  return true;
}
