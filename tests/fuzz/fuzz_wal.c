/* Fuzz target for write-ahead log recovery (wal_open, src/storage/
 * wal_recover.c): whatever a node finds in its data directory at start-up,
 * after a crash, a full disk or bit rot.
 *
 * The input is written into an in-memory file system (storage/memfs.h) as
 * up to two segment files and a snapshot file, and the log is opened from
 * there. Layout: byte 0 flags (bit 0 discard_corrupt; bit 1 rewrite every
 * checksum to match, so that the fuzzer gets past them to the record
 * parser and the replay rules; bit 2 make the third file's checksums
 * match; bit 3 the third file is the hard state file, not the snapshot;
 * bit 4 refuse_corrupt, else damage is repaired), then u16 sizes
 * (little-endian) of the first segment, the second and the snapshot file (0:
 * absent), then their bytes in that order (sizes are cut to what the input
 * holds). A segment is named after the sequence number in its header, as the
 * WAL names them, or 1 and 2 when it is too short to hold one.
 *
 * Oracles, from wal.h: wal_open fails only with SABHA_ECORRUPT or
 * SABHA_EINVAL (the medium never fails here); what it recovers is a log
 * contiguous from the snapshot with commit within it; and it is durable
 * and usable: one more entry appended, synced and closed cleanly, the log
 * reopens with the same hard state (guard included), snapshot and entries
 * plus that one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/memfs.h"
#include "storage/wal.h"
#include "storage/wal_internal.h"

#define DIR "wal"

static uint16_t get_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
  return get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}
static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the header's and every whole record's CRC, with the WAL's own
 * record checksum. */
static void fix_segment(uint8_t *p, size_t n) {
  if (n < WAL_SEG_HEADER_BYTES)
    return;
  put_u32(p + 28, wal_crc32c(0, p, 28));
  uint64_t seq = get_u64(p + 16);
  size_t off = WAL_SEG_HEADER_BYTES;
  while (n - off >= WAL_REC_HEADER_BYTES) {
    uint32_t payload = get_u32(p + off + 4);
    if (payload > n - off - WAL_REC_HEADER_BYTES)
      break;
    put_u32(p + off, wal_rec_crc(seq, p + off, payload));
    off += WAL_REC_HEADER_BYTES + payload;
  }
}

/* A hard state file is 8 KiB, more than an input holds: the input gives
 * the 64-byte record of block 0, then block 1's, then bytes that land in
 * block 0's padding (which must be zero); the rest of the file is zeros.
 * With `fix`, both records get their CRC. Returns the file's length. */
static size_t build_hsf(uint8_t *file, const uint8_t *in, size_t n, bool fix) {
  memset(file, 0, 2 * WAL_HSF_BLOCK_BYTES);
  size_t a = n < 64 ? n : 64;
  size_t b = n - a < 64 ? n - a : 64;
  size_t pad = n - a - b < WAL_HSF_BLOCK_BYTES - 64 ? n - a - b
                                                    : WAL_HSF_BLOCK_BYTES - 64;
  memcpy(file, in, a);
  memcpy(file + WAL_HSF_BLOCK_BYTES, in + a, b);
  memcpy(file + 64, in + a + b, pad);
  if (fix)
    for (size_t at = 0; at < 2 * WAL_HSF_BLOCK_BYTES; at += WAL_HSF_BLOCK_BYTES)
      put_u32(file + at + 60, wal_crc32c(0, file + at, 60));
  if (b == 0)
    return a; /* block 0 cut short, no block 1 */
  return b < 64 ? WAL_HSF_BLOCK_BYTES + b : 2 * WAL_HSF_BLOCK_BYTES;
}

static void fix_snapshot(uint8_t *p, size_t n) {
  if (n < WAL_SNAP_HEADER_BYTES)
    return;
  uint64_t data_bytes = get_u64(p + 32);
  if (data_bytes <= n - WAL_SNAP_HEADER_BYTES)
    put_u32(p + 40, wal_crc32c(0, p + WAL_SNAP_HEADER_BYTES, data_bytes));
  put_u32(p + 44, wal_crc32c(0, p, 44));
}

struct fs {
  struct memfs *mem;
  struct wal_io io;
  struct wal_options opt;
};

static struct wal *open_log(struct fs *fs, struct sabha_persisted *p, int *rc) {
  struct wal *w = NULL;
  char err[WAL_ERRMSG_MAX];
  *rc = wal_open(&w, &fs->opt, p, err, sizeof err);
  REQUIRE(strlen(err) < sizeof err);
  return *rc == 0 ? w : NULL;
}

static void check_shape(const struct sabha_persisted *p) {
  uint64_t first = p->has_snapshot ? p->snapshot.index + 1 : 1;
  for (size_t i = 0; i < p->n_entries; i++) {
    REQUIRE(p->entries[i].index == first + i);
    REQUIRE(p->entries[i].size_bytes == 0 || p->entries[i].data != NULL);
  }
  REQUIRE(p->hard_state.commit <= first - 1 + p->n_entries);
  REQUIRE(!p->has_snapshot || p->applied == p->snapshot.index);
}

static bool same_entry(const struct sabha_entry *a,
                       const struct sabha_entry *b) {
  return a->index == b->index && a->term == b->term && a->type == b->type &&
         a->size_bytes == b->size_bytes &&
         (a->size_bytes == 0 || memcmp(a->data, b->data, a->size_bytes) == 0);
}

/* Appends one entry to what was recovered, closes cleanly and reopens:
 * everything recovered, and the new entry, must be there. */
static void check_durable_and_usable(struct fs *fs, struct wal *w,
                                     const struct sabha_persisted *p) {
  static const uint8_t payload[] = "one more";
  uint64_t last = (p->has_snapshot ? p->snapshot.index : 0) + p->n_entries;
  struct sabha_entry e = {.index = last + 1,
                          .term = p->hard_state.term,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = sizeof payload,
                          .data = payload};
  struct sabha_ready rd;
  memset(&rd, 0, sizeof rd);
  rd.entries = &e;
  rd.n_entries = 1;
  REQUIRE(wal_append_ready(w, &rd) == 0);
  REQUIRE(wal_close_clean(w) == 0);

  struct sabha_persisted q;
  int rc;
  struct wal *again = open_log(fs, &q, &rc);
  REQUIRE(rc == 0);
  struct wal_stats st;
  wal_stats(again, &st);
  REQUIRE(st.closed_clean && st.recovered_tail_bytes == 0);
  REQUIRE(q.hard_state.term == p->hard_state.term &&
          q.hard_state.vote == p->hard_state.vote &&
          q.hard_state.repair_until == p->hard_state.repair_until);
  REQUIRE(q.has_snapshot == p->has_snapshot);
  if (p->has_snapshot)
    REQUIRE(q.snapshot.index == p->snapshot.index &&
            q.snapshot.term == p->snapshot.term &&
            q.snapshot_size_bytes == p->snapshot_size_bytes &&
            (p->snapshot_size_bytes == 0 ||
             memcmp(q.snapshot_data, p->snapshot_data,
                    p->snapshot_size_bytes) == 0));
  REQUIRE(q.n_entries == p->n_entries + 1);
  for (size_t i = 0; i < p->n_entries; i++)
    REQUIRE(same_entry(&q.entries[i], &p->entries[i]));
  REQUIRE(same_entry(&q.entries[p->n_entries], &e));
  wal_close(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 7)
    return 0;
  uint8_t flags = data[0];
  size_t sizes[3] = {get_u16(data + 1), get_u16(data + 3), get_u16(data + 5)};
  const uint8_t *at = data + 7;
  size_t left = size - 7;

  struct fs fs;
  REQUIRE(memfs_new(&fs.mem, 1) == 0);
  memfs_io(fs.mem, &fs.io);
  REQUIRE(fs.io.mkdir(fs.io.ctx, DIR) == 0);
  wal_options_init(&fs.opt, DIR);
  fs.opt.io = &fs.io;
  fs.opt.segment_size_bytes = 4096;
  fs.opt.entry_size_bytes_max = 1024;
  fs.opt.snapshot_size_bytes_max = 4096;
  fs.opt.buffer_size_bytes = 512;
  fs.opt.discard_corrupt = flags & 1;
  fs.opt.refuse_corrupt = (flags & 16) != 0;

  for (int i = 0; i < 3; i++) {
    size_t take = sizes[i] < left ? sizes[i] : left, n = take;
    if (sizes[i] == 0)
      continue;
    uint8_t *file =
        malloc(n > 2 * WAL_HSF_BLOCK_BYTES ? n : 2 * WAL_HSF_BLOCK_BYTES);
    REQUIRE(file != NULL);
    memcpy(file, at, n);
    char path[64];
    if (i < 2) {
      if (flags & 2)
        fix_segment(file, n);
      char name[WAL_SEG_NAME_BYTES + 1];
      uint64_t seq = n >= 24 ? get_u64(file + 16) : (uint64_t)i + 1;
      wal_seg_name(name, seq);
      snprintf(path, sizeof path, "%s/%s", DIR, name);
    } else if (flags & 8) {
      n = build_hsf(file, at, n, flags & 4);
      snprintf(path, sizeof path, "%s/%s", DIR, WAL_HSF_NAME);
    } else {
      if (flags & 4)
        fix_snapshot(file, n);
      snprintf(path, sizeof path, "%s/%s", DIR, WAL_SNAP_NAME);
    }
    at += take;
    left -= take;
    REQUIRE(memfs_put(fs.mem, path, file, n) == 0);
    free(file);
  }

  struct sabha_persisted p;
  int rc;
  struct wal *w = open_log(&fs, &p, &rc);
  if (w == NULL) {
    REQUIRE(rc == SABHA_ECORRUPT || rc == SABHA_EINVAL);
  } else {
    check_shape(&p);
    /* Keep a copy: the handle owns `p`, and closing it frees it. */
    struct sabha_persisted copy = p;
    struct sabha_entry *entries = malloc((p.n_entries + 1) * sizeof *entries);
    uint8_t *snap = malloc(p.snapshot_size_bytes + 1);
    REQUIRE(entries != NULL && snap != NULL);
    size_t bytes = 0;
    for (size_t i = 0; i < p.n_entries; i++)
      bytes += p.entries[i].size_bytes;
    uint8_t *blob = malloc(bytes + 1), *cursor = blob;
    REQUIRE(blob != NULL);
    for (size_t i = 0; i < p.n_entries; i++) {
      entries[i] = p.entries[i];
      if (p.entries[i].size_bytes > 0)
        memcpy(cursor, p.entries[i].data, p.entries[i].size_bytes);
      entries[i].data = cursor;
      cursor += p.entries[i].size_bytes;
    }
    if (p.snapshot_size_bytes > 0)
      memcpy(snap, p.snapshot_data, p.snapshot_size_bytes);
    copy.entries = entries;
    copy.snapshot_data = snap;
    check_durable_and_usable(&fs, w, &copy);
    free(entries);
    free(snap);
    free(blob);
  }
  memfs_free(fs.mem);
  return 0;
}
