/* Recovery: what wal_open does before it hands a node its durable state.
 *
 * The steps, in order (the rules themselves are in wal.h, RECOVERY and
 * DISCARDING):
 *   1. create the directory if needed; delete leftover temporary files;
 *      finish a discard that a crash interrupted (discard.intent);
 *   2. load the snapshot file: it is the base of the log (entries at or
 *      below its index are ignored, and a SNAPSHOT record must never claim
 *      more than it holds);
 *   3. replay the segments in order, one whole file at a time into one
 *      buffer, cutting a torn tail off the last one;
 *   4. on corruption, with discard_corrupt, salvage the hard state if it is
 *      provably intact and move the damaged log aside;
 *   5. make what was found durable (fsync the last segment and the
 *      directory), open the last segment for appending, and write the end
 *      of a snapshot install a crash interrupted.
 *
 * Why starting from the snapshot file is right even though SNAPSHOT records
 * sit somewhere in the middle of the log: the segments deleted after a
 * snapshot held only entries it covers, every entry above it is in a later
 * segment, and a snapshot only ever drops entries at or below its index. So
 * the entries above the file's index come out the same whether the replay
 * starts from nothing and meets the record, or starts from the file. The
 * truncation that goes with a snapshot install is in its INSTALL record,
 * durable before the file is renamed; install_resolve settles an install
 * a crash interrupted by whether the file holds its snapshot.
 *
 * Everything is loops over bounded buffers; nothing recurses. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/wal_internal.h"

/* ---- the directory listing ---- */

struct listing {
  uint64_t *seqs; /* sorted after list_dir */
  size_t n;
  size_t cap;
  bool snapshot;
  bool snapshot_tmp;
  bool snapshot_own_tmp;
  bool segment_tmp;
  bool intent;
  bool intent_tmp;
  bool hsf_tmp;
};

static int list_each(void *arg, const char *name) {
  struct listing *l = arg;
  uint64_t seq;
  if (wal_seg_name_parse(name, &seq)) {
    if (l->n == l->cap) {
      size_t cap = l->cap == 0 ? 64 : l->cap * 2;
      uint64_t *v = realloc(l->seqs, cap * sizeof *v);
      if (v == NULL)
        return -ENOMEM;
      l->seqs = v;
      l->cap = cap;
    }
    l->seqs[l->n++] = seq;
  } else if (strcmp(name, WAL_SNAP_NAME) == 0) {
    l->snapshot = true;
  } else if (strcmp(name, WAL_SNAP_TMP_NAME) == 0) {
    l->snapshot_tmp = true;
  } else if (strcmp(name, WAL_SNAP_OWN_TMP_NAME) == 0) {
    l->snapshot_own_tmp = true;
  } else if (strcmp(name, WAL_SEG_TMP_NAME) == 0) {
    l->segment_tmp = true;
  } else if (strcmp(name, WAL_INTENT_NAME) == 0) {
    l->intent = true;
  } else if (strcmp(name, WAL_INTENT_TMP_NAME) == 0) {
    l->intent_tmp = true;
  } else if (strcmp(name, WAL_HSF_TMP_NAME) == 0) {
    l->hsf_tmp = true;
  }
  return 0; /* anything else (damaged-* folders, operators' files) stays */
}

static int seq_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int list_dir(struct wal *w, struct listing *l) {
  free(l->seqs);
  memset(l, 0, sizeof *l);
  int rv = w->io.list(w->io.ctx, w->dir, list_each, l);
  if (rv != 0)
    return wal_io_error(w, rv, "list", w->dir);
  if (l->n > 1)
    qsort(l->seqs, l->n, sizeof *l->seqs, seq_cmp);
  for (size_t i = 1; i < l->n; i++)
    assert(l->seqs[i - 1] < l->seqs[i]);
  return 0;
}

/* ---- the replayed state ---- */

struct rentry {
  uint64_t term;
  uint32_t type;
  uint32_t size_bytes;
  size_t offset; /* into bytes */
};

struct replay {
  bool has_snap;
  struct sabha_snapshot_meta snap;
  uint8_t *snap_data;
  size_t snap_size;
  bool has_hs;
  struct sabha_hard_state hs;
  struct rentry *v; /* v[k] holds index base + 1 + k */
  size_t n;
  size_t cap;
  uint8_t *bytes; /* entry payloads; overwritten ones stay as garbage */
  size_t bytes_len;
  size_t bytes_cap;
  uint8_t *img; /* one segment, as read */
  size_t img_cap;
  uint32_t prev_version; /* of the segment replayed last; 0: none yet */
  /* An INSTALL record not yet followed by its SNAPSHOT or ABORT, and where
   * it is (segment, offset), for messages. */
  bool installing;
  uint64_t inst_index;
  uint64_t inst_term;
  uint64_t inst_from;
  uint64_t inst_seq;
  uint64_t inst_off;
  /* Set by install_resolve when the log ends inside an install: the record
   * (WAL_REC_SNAPSHOT or WAL_REC_ABORT) recovery appends to close it. */
  uint8_t inst_end;
  /* Where replay met the damage it failed on: the snapshot file, or the
   * first bad byte as (segment, offset), offset 0 when the whole segment
   * is bad (see REPAIRING). */
  bool bad_known;
  bool bad_snapshot;
  uint64_t bad_seq;
  uint64_t bad_off;
};

static void note_bad(struct replay *r, uint64_t seq, uint64_t off) {
  if (r->bad_known)
    return;
  r->bad_known = true;
  r->bad_seq = seq;
  r->bad_off = off;
}

static void replay_free(struct replay *r) {
  free(r->snap_data);
  free(r->v);
  free(r->bytes);
  free(r->img);
  memset(r, 0, sizeof *r);
}

/* Forgets the log part, keeping the image buffer for reuse. */
static void replay_reset(struct replay *r) {
  uint8_t *img = r->img;
  size_t img_cap = r->img_cap;
  r->img = NULL;
  replay_free(r);
  r->img = img;
  r->img_cap = img_cap;
}

static uint64_t replay_base(const struct replay *r) {
  return r->has_snap ? r->snap.index : 0;
}

static int corrupt_at(struct wal *w, const char *path, uint64_t offset,
                      const char *why) {
  return wal_error(w, SABHA_ECORRUPT, "%s: offset %llu: %s", path,
                   (unsigned long long)offset, why);
}

static int put_entry(struct wal *w, struct replay *r, uint64_t index,
                     uint64_t term, uint32_t type, const uint8_t *data,
                     uint32_t size_bytes, const char *path, uint64_t off) {
  uint64_t base = replay_base(r);
  if (index <= base)
    return 0; /* the snapshot holds it */
  uint64_t k = index - base - 1;
  if (k > r->n) {
    char why[128];
    snprintf(why, sizeof why, "entry %llu leaves a gap: the log ends at %llu",
             (unsigned long long)index, (unsigned long long)(base + r->n));
    return corrupt_at(w, path, off, why);
  }
  if (r->bytes_len + size_bytes > r->bytes_cap) {
    size_t cap = r->bytes_cap < 65536 ? 65536 : r->bytes_cap;
    while (cap < r->bytes_len + size_bytes)
      cap *= 2;
    uint8_t *b = realloc(r->bytes, cap);
    if (b == NULL)
      return wal_error(w, SABHA_ENOMEM, "out of memory (recovered entries)");
    r->bytes = b;
    r->bytes_cap = cap;
  }
  if (k == r->n) {
    if (r->n == r->cap) {
      size_t cap = r->cap == 0 ? 1024 : r->cap * 2;
      struct rentry *v = realloc(r->v, cap * sizeof *v);
      if (v == NULL)
        return wal_error(w, SABHA_ENOMEM, "out of memory (recovered log)");
      r->v = v;
      r->cap = cap;
    }
    r->n++;
  }
  if (size_bytes > 0)
    memcpy(r->bytes + r->bytes_len, data, size_bytes);
  r->v[k] = (struct rentry){.term = term,
                            .type = type,
                            .size_bytes = size_bytes,
                            .offset = r->bytes_len};
  r->bytes_len += size_bytes;
  return 0;
}

/* Drops every replayed entry at index >= from. */
static void replay_truncate(struct replay *r, uint64_t from) {
  uint64_t base = replay_base(r);
  if (from <= base + 1)
    r->n = 0;
  else if (from - base - 1 < r->n)
    r->n = (size_t)(from - base - 1);
}

static int install_broken(struct wal *w, const struct replay *r,
                          const char *path, uint64_t off, const char *what) {
  char why[224];
  snprintf(why, sizeof why,
           "%s the snapshot install at index %llu begun in segment %llu at "
           "offset %llu",
           what, (unsigned long long)r->inst_index,
           (unsigned long long)r->inst_seq, (unsigned long long)r->inst_off);
  return corrupt_at(w, path, off, why);
}

/* The SNAPSHOT (done) or ABORT record that ends an install. */
static int install_end(struct wal *w, struct replay *r, uint8_t type,
                       uint64_t index, uint64_t term, const char *path,
                       uint64_t off) {
  if (!r->installing)
    return 0; /* its INSTALL was in a segment deleted since */
  if (index != r->inst_index || term != r->inst_term)
    return install_broken(w, r, path, off, "an end that does not match");
  if (type == WAL_REC_SNAPSHOT && r->inst_from != 0)
    replay_truncate(r, r->inst_from);
  r->installing = false;
  return 0;
}

/* Applies one checked record to the replayed state. */
static int apply(struct wal *w, struct replay *r, const struct wal_rec *rec,
                 struct wal_seg *seg, const char *path, uint64_t off) {
  const uint8_t *p = rec->payload;
  /* Between an INSTALL and its end the writer appends nothing but the
   * hard state a new segment restates. */
  if (r->installing && rec->type != WAL_REC_HARD_STATE &&
      rec->type != WAL_REC_SNAPSHOT && rec->type != WAL_REC_ABORT)
    return install_broken(w, r, path, off, "a record inside");
  switch (rec->type) {
  case WAL_REC_HARD_STATE:
    r->has_hs = true;
    wal_hard_state_decode(rec, &r->hs);
    return 0;
  case WAL_REC_ENTRY: {
    uint64_t index = le_get_u64(p);
    uint32_t size = le_get_u32(p + 20);
    assert(WAL_ENTRY_HEADER_BYTES + size == rec->payload_bytes);
    if (index > seg->index_max)
      seg->index_max = index;
    return put_entry(w, r, index, le_get_u64(p + 8), le_get_u32(p + 16),
                     p + WAL_ENTRY_HEADER_BYTES, size, path, off);
  }
  case WAL_REC_TRUNCATE:
    replay_truncate(r, le_get_u64(p));
    return 0;
  case WAL_REC_SNAPSHOT: {
    uint64_t index = le_get_u64(p), term = le_get_u64(p + 8);
    char why[160];
    if (!r->has_snap || index > r->snap.index) {
      snprintf(why, sizeof why,
               "snapshot record for index %llu, but the snapshot file %s",
               (unsigned long long)index,
               r->has_snap ? "is older" : "is missing");
      return corrupt_at(w, path, off, why);
    }
    if (index == r->snap.index && term != r->snap.term) {
      snprintf(why, sizeof why,
               "snapshot record says term %llu, the snapshot file %llu",
               (unsigned long long)term, (unsigned long long)r->snap.term);
      return corrupt_at(w, path, off, why);
    }
    return install_end(w, r, rec->type, index, term, path, off);
  }
  case WAL_REC_INSTALL:
    r->installing = true;
    r->inst_index = le_get_u64(p);
    r->inst_term = le_get_u64(p + 8);
    r->inst_from = le_get_u64(p + 16);
    r->inst_seq = seg->seq;
    r->inst_off = off;
    return 0;
  case WAL_REC_ABORT:
    return install_end(w, r, rec->type, le_get_u64(p), le_get_u64(p + 8), path,
                       off);
  case WAL_REC_CLOSE: {
    /* The log as replayed so far is the log as it was closed. (When a
     * later snapshot covers its end, the entries are gone: no check.) */
    uint64_t last = le_get_u64(p), base = replay_base(r);
    if (last < base || base + r->n == last)
      return 0;
    char why[160];
    snprintf(why, sizeof why,
             "clean-shutdown record says the log ended at %llu, but it "
             "ends at %llu here",
             (unsigned long long)last, (unsigned long long)(base + r->n));
    return corrupt_at(w, path, off, why);
  }
  default:
    assert(0 && "wal_rec_check let an unknown type through");
    return SABHA_ECORRUPT;
  }
}

/* ---- reading one segment ---- */

/* Reads the whole segment file `fd` into r->img; *size is its length. */
static int read_image(struct wal *w, struct replay *r, int fd, const char *path,
                      uint64_t *size) {
  int rv = w->io.size(w->io.ctx, fd, size);
  if (rv != 0)
    return wal_io_error(w, rv, "stat", path);
  if (*size > WAL_SEGMENT_BYTES_LIMIT)
    return corrupt_at(w, path, WAL_SEGMENT_BYTES_LIMIT,
                      "larger than any segment sabha writes");
  if (*size > r->img_cap) {
    uint8_t *img = realloc(r->img, (size_t)*size);
    if (img == NULL)
      return wal_error(w, SABHA_ENOMEM, "out of memory (segment buffer)");
    r->img = img;
    r->img_cap = (size_t)*size;
  }
  size_t n = 0;
  rv = w->io.read(w->io.ctx, fd, 0, r->img, (size_t)*size, &n);
  if (rv != 0)
    return wal_io_error(w, rv, "read", path);
  if (n != *size)
    return wal_error(w, SABHA_EIO, "read %s: file shrank while read", path);
  return 0;
}

static bool all_zero(const uint8_t *p, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (p[i] != 0)
      return false;
  return true;
}

/* How much checksumming one search for a record (find_witness, find_next)
 * may do: WAL_SEARCH_CRC_PER_BYTE bytes per byte it searches, and
 * WAL_SEARCH_CRC_MIN_BYTES at least. Intact records do not overlap, so
 * checking every one of them costs the bytes they hold, once. Only bytes
 * made so that record headers overlap, each claiming the rest of the file
 * as its payload, cost more: the file once per header, hours for a crafted
 * 64 MiB segment (days for 1 GiB) before wal_open returns. A search that
 * spends its budget gives up, and its caller takes the worse case: damage,
 * never a torn tail to cut. */
#define WAL_SEARCH_CRC_PER_BYTE 4u
#define WAL_SEARCH_CRC_MIN_BYTES (1u << 20)

struct search {
  uint64_t crc_bytes_left;
  bool gave_up; /* the budget ran out: what was not checked is unknown */
};

static struct search search_start(uint64_t size, uint64_t from) {
  uint64_t n = size > from ? size - from : 0;
  return (struct search){.crc_bytes_left = WAL_SEARCH_CRC_PER_BYTE * n +
                                           WAL_SEARCH_CRC_MIN_BYTES};
}

/* Could a record start at `y`? Cheap tests first; the CRC last, within the
 * search's budget. */
static bool record_at(const uint8_t *img, uint64_t size, uint64_t seq,
                      uint64_t y, struct search *sr) {
  const uint8_t *h = img + y;
  if (h[8] < WAL_REC_HARD_STATE || h[8] > WAL_REC_TYPE_MAX || h[9] != 0 ||
      h[10] != 0 || h[11] != 0)
    return false;
  /* As wal_rec_check, which asks for no CRC of these either. */
  uint32_t durable = le_get_u32(h + 12);
  if (durable < WAL_SEG_HEADER_BYTES || durable > y)
    return false;
  uint64_t payload_bytes = le_get_u32(h + 4);
  if (payload_bytes > size - y - WAL_REC_HEADER_BYTES)
    return false; /* incomplete */
  if (payload_bytes + WAL_REC_HEADER_BYTES > sr->crc_bytes_left) {
    sr->gave_up = true;
    return false;
  }
  sr->crc_bytes_left -= payload_bytes + WAL_REC_HEADER_BYTES;
  struct wal_rec rec;
  const char *why;
  return wal_rec_check(img, size, y, seq, &rec, &why);
}

/* The offset of the first intact record after `x` whose durable-bytes field
 * covers x, or 0 (with *gave_up set when the search spent its budget first,
 * see WAL_SEARCH_CRC_PER_BYTE). Such a record proves that the bytes at x
 * had been fsynced before it was written. Durable-bytes values are record
 * boundaries, so covering x means covering the whole record that starts
 * there. */
static uint64_t find_witness(const uint8_t *img, uint64_t size, uint64_t seq,
                             uint64_t x, bool *gave_up) {
  struct search sr = search_start(size, x);
  uint64_t found = 0;
  for (uint64_t y = x + 1; y + WAL_REC_HEADER_BYTES <= size && !sr.gave_up;
       y++) {
    uint32_t durable = le_get_u32(img + y + 12);
    if (durable > x && durable <= y && record_at(img, size, seq, y, &sr)) {
      found = y;
      break;
    }
  }
  *gave_up = sr.gave_up;
  return found;
}

/* The offset of the first intact record at or after `from`, or 0 (also
 * when the search spent its budget: the damage then runs to the end). */
static uint64_t find_next(const uint8_t *img, uint64_t size, uint64_t seq,
                          uint64_t from) {
  struct search sr = search_start(size, from);
  for (uint64_t y = from; y + WAL_REC_HEADER_BYTES <= size && !sr.gave_up; y++)
    if (record_at(img, size, seq, y, &sr))
      return y;
  return 0;
}

struct seg_ctx {
  uint64_t seq;
  bool first;
  bool last;
};

/* Cuts the torn tail at `off` off the last segment, durably. */
static int cut_tail(struct wal *w, int fd, const char *path, uint64_t off,
                    uint64_t size, char *note, size_t note_size) {
  int rv = w->io.truncate(w->io.ctx, fd, off);
  if (rv == 0)
    rv = w->io.sync(w->io.ctx, fd, false);
  if (rv != 0)
    return wal_io_error(w, rv, "truncate", path);
  w->stats.recovered_tail_bytes += size - off;
  snprintf(note, note_size,
           "cut %llu bytes of an unsynced tail off %s at offset %llu",
           (unsigned long long)(size - off), path, (unsigned long long)off);
  return 0;
}

/* Could a last segment whose header is incomplete or damaged be one whose
 * creation a crash interrupted? Only if an older build made it, creating
 * segments in place: the segment before it is of version 1. This build
 * names a segment only once its header is durable, so from it such a
 * header is damage. */
static bool maybe_unborn(bool last, uint64_t size, uint32_t prev_version) {
  return last && size <= WAL_SEG_HEADER_BYTES && prev_version == 1;
}

/* Removes a last segment whose creation a crash interrupted (its header
 * never became durable, so nothing in it was ever acknowledged). */
static int remove_unborn(struct wal *w, int fd, const char *path, char *note,
                         size_t note_size) {
  w->io.close(w->io.ctx, fd);
  int rv = w->io.unlink(w->io.ctx, path);
  if (rv != 0)
    return wal_io_error(w, rv, "unlink", path);
  snprintf(note, note_size, "removed %s: a crash interrupted its creation",
           path);
  return wal_sync_dir(w);
}

static int replay_segment(struct wal *w, struct replay *r,
                          const struct seg_ctx *sc, char *note,
                          size_t note_size) {
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, sc->seq);
  char path[WAL_IO_PATH_MAX];
  snprintf(path, sizeof path, "%s", wal_path(w, name));
  int fd;
  int rv = w->io.open(w->io.ctx, path, 0, &fd);
  if (rv != 0)
    return wal_io_error(w, rv, "open", path);
  uint64_t size = 0;
  rv = read_image(w, r, fd, path, &size);
  struct wal_seg_header hd = {0};
  const char *why = NULL;
  if (rv == 0) {
    rv = wal_seg_header_check(r->img, size, &hd, &why);
    if (rv == SABHA_ECORRUPT && maybe_unborn(sc->last, size, r->prev_version))
      return remove_unborn(w, fd, path, note, note_size);
    if (rv == SABHA_EINVAL)
      rv = wal_error(w, rv, "%s: %s", path, why);
    else if (rv != 0)
      rv = corrupt_at(w, path, 0, why);
    else if (hd.seq != sc->seq)
      rv = corrupt_at(w, path, 16, "header names another segment");
    else if (sc->first && sc->seq != 1 && !r->has_snap &&
             !(hd.flags & WAL_SEG_FLAG_LOG_START))
      rv = corrupt_at(w, path, 0,
                      "the log starts here but there is no snapshot: "
                      "earlier segments are missing");
    else if (!sc->first && (hd.flags & WAL_SEG_FLAG_LOG_START))
      rv = corrupt_at(w, path, 24,
                      "a segment that starts a new log follows older ones");
  }
  struct wal_seg seg = {.seq = sc->seq, .version = hd.version};
  uint64_t born = rv == 0 ? wal_seg_born_bytes(&hd) : 0;
  if (rv == 0 && size < born)
    rv = corrupt_at(w, path, size,
                    "the segment ends before the hard state it was created "
                    "with (fsynced before the segment had its name)");
  /* Damage before the first record leaves nothing of the segment. */
  if (rv == SABHA_ECORRUPT)
    note_bad(r, sc->seq, 0);
  uint64_t off = WAL_SEG_HEADER_BYTES;
  uint8_t last_type = 0; /* of the last intact record */
  bool cut = false;
  uint64_t zeros_from = 0; /* where a tail of zeros begins */
  while (rv == 0 && off < size) {
    struct wal_rec rec;
    bool ok = wal_rec_check(r->img, size, off, sc->seq, &rec, &why);
    if (ok && off < born && rec.type != WAL_REC_HARD_STATE) {
      ok = false;
      why = "a record of another type";
    }
    /* Where a repair would cut if this record is bad or contradicts the
     * log: at its start, or the whole segment in its birth bytes. */
    uint64_t cut_at = off < born ? 0 : off;
    if (ok) {
      rv = apply(w, r, &rec, &seg, path, off);
      if (rv == SABHA_ECORRUPT)
        note_bad(r, sc->seq, cut_at);
      off += WAL_REC_HEADER_BYTES + rec.payload_bytes;
      last_type = rec.type;
      continue;
    }
    char msg[192];
    if (off < born) {
      snprintf(msg, sizeof msg,
               "%s where the hard state the segment was created with belongs "
               "(it was fsynced before the segment had its name)",
               why);
      rv = corrupt_at(w, path, off, msg);
      note_bad(r, sc->seq, cut_at);
      break;
    }
    /* Zeros to the end: room the log made ready for records (ZEROS
     * AHEAD in wal.h), kept for the records to come. Nothing can follow
     * them, so nothing there was ever a record, durable or not. */
    if (sc->last && all_zero(r->img + off, size - off)) {
      zeros_from = off;
      break;
    }
    if (!sc->last) {
      snprintf(msg, sizeof msg, "%s in a segment before the last", why);
      rv = corrupt_at(w, path, off, msg);
      note_bad(r, sc->seq, cut_at);
      break;
    }
    bool gave_up = false;
    uint64_t y = find_witness(r->img, size, sc->seq, off, &gave_up);
    if (y != 0 || gave_up) {
      if (gave_up)
        snprintf(msg, sizeof msg,
                 "%s, and after it more overlapping record headers than "
                 "recovery checks for a witness: not cut as a torn write",
                 why);
      else
        snprintf(msg, sizeof msg,
                 "%s, in bytes the %s at offset %llu shows were fsynced", why,
                 r->img[y + 8] == WAL_REC_CLOSE
                     ? "log was closed by a clean shutdown: its record"
                     : "record",
                 (unsigned long long)y);
      rv = corrupt_at(w, path, off, msg);
      note_bad(r, sc->seq, cut_at);
      break;
    }
    rv = cut_tail(w, fd, path, off, size, note, note_size);
    size = off;
    cut = true;
  }
  if (sc->last) {
    w->stats.closed_clean = last_type == WAL_REC_CLOSE && !cut;
    w->file_bytes = size;
    if (zeros_from != 0)
      size = zeros_from;
  }
  seg.size_bytes = size;
  r->prev_version = hd.version;
  if (rv == 0)
    rv = wal_segs_push(w, seg);
  if (rv != 0 || !sc->last) {
    w->io.close(w->io.ctx, fd);
    return rv;
  }
  w->fd = fd;
  return 0;
}

/* The log ends inside a snapshot install (a crash came between its
 * INSTALL record and its end). The INSTALL was durable before the snapshot
 * file was renamed, so the file says how far the install got: if it holds
 * the install's snapshot, the install is done and its truncation applies;
 * if not, the install never happened. Either way make_ready() appends the
 * record that says so, so that an INSTALL is never followed by anything
 * else. */
static int install_resolve(struct wal *w, struct replay *r) {
  if (!r->installing)
    return 0;
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, r->inst_seq);
  char path[WAL_IO_PATH_MAX];
  snprintf(path, sizeof path, "%s", wal_path(w, name));
  bool done = r->has_snap && r->snap.index == r->inst_index;
  const char *broken = NULL;
  if (r->has_snap && r->snap.index > r->inst_index)
    broken = "the snapshot file is newer than";
  else if (done && r->snap.term != r->inst_term)
    broken = "the snapshot file has another term than";
  if (broken != NULL) {
    note_bad(r, r->inst_seq, r->inst_off);
    return install_broken(w, r, path, r->inst_off, broken);
  }
  uint8_t end = done ? WAL_REC_SNAPSHOT : WAL_REC_ABORT;
  int rv =
      install_end(w, r, end, r->inst_index, r->inst_term, path, r->inst_off);
  assert(rv == 0 && !r->installing);
  r->inst_end = end;
  return rv;
}

static int replay_all(struct wal *w, struct replay *r, const struct listing *l,
                      char *note, size_t note_size) {
  if (l->snapshot) {
    int rv = wal_snapshot_read(w, &r->snap, &r->snap_data, &r->snap_size);
    r->bad_snapshot = rv == SABHA_ECORRUPT;
    if (rv != 0)
      return rv;
    r->has_snap = true;
  }
  for (size_t i = 0; i < l->n; i++) {
    if (i > 0 && l->seqs[i] != l->seqs[i - 1] + 1) {
      note_bad(r, l->seqs[i], 0); /* what comes after a lost segment */
      char name[WAL_SEG_NAME_BYTES + 1];
      wal_seg_name(name, l->seqs[i - 1] + 1);
      return wal_error(w, SABHA_ECORRUPT,
                       "%s: segment missing (the log jumps from %llu to %llu)",
                       wal_path(w, name), (unsigned long long)l->seqs[i - 1],
                       (unsigned long long)l->seqs[i]);
    }
    struct seg_ctx sc = {
        .seq = l->seqs[i], .first = i == 0, .last = i + 1 == l->n};
    int rv = replay_segment(w, r, &sc, note, note_size);
    if (rv != 0)
      return rv;
  }
  return install_resolve(w, r);
}

/* Undoes what a failed replay set up on the handle. */
static void unwind(struct wal *w) {
  wal_close_active(w);
  w->n_segs = 0;
  w->buf_len = 0;
  w->file_bytes = 0;
}

/* ---- discarding a damaged log ---- */

/* A position in the log: segment ordinal, then byte offset. */
static uint64_t pos_key(size_t ordinal, uint64_t offset) {
  return ((uint64_t)ordinal << 32) | offset;
}

struct salvage {
  bool has_hs;
  struct sabha_hard_state hs;
  uint64_t hs_key;
  bool damaged;
  uint64_t damage_key;
  char damage_at[WAL_IO_PATH_MAX + 32];
  /* For the repair guard: the highest index any intact record names, how
   * many entries the damage could have held, and the segments missing
   * between others. */
  uint64_t index_max;
  uint64_t damaged_entries;
  uint64_t lost_segments;
};

/* How many entries the damaged bytes [off, end) of a segment image could
 * have held. One, when the record header at `off` says the record ends at
 * `end`, the next intact record (or the end of the file): a record whose
 * payload went bad; its length agreeing with the boundary after it is no
 * accident a single fault makes. Otherwise as many as the smallest entry
 * record fits. */
static uint64_t damaged_capacity(const uint8_t *img, uint64_t off, uint64_t end,
                                 bool at_record) {
  const uint64_t per = WAL_REC_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES;
  if (at_record && end - off >= WAL_REC_HEADER_BYTES &&
      WAL_REC_HEADER_BYTES + (uint64_t)le_get_u32(img + off + 4) == end - off)
    return 1;
  return (end - off + per - 1) / per;
}

/* The highest log index an intact record speaks of. */
static uint64_t rec_index(const struct wal_rec *rec) {
  switch (rec->type) {
  case WAL_REC_ENTRY:
  case WAL_REC_SNAPSHOT:
  case WAL_REC_INSTALL:
  case WAL_REC_ABORT:
  case WAL_REC_CLOSE:
    return le_get_u64(rec->payload);
  default:
    return 0;
  }
}

static void note_damage(struct salvage *s, uint64_t key, const char *path,
                        uint64_t off) {
  s->damaged = true;
  s->damage_key = key;
  snprintf(s->damage_at, sizeof s->damage_at, "%s offset %llu", path,
           (unsigned long long)off);
}

/* Reads every segment, past damage, to find the last intact hard state and
 * the last damaged byte that could have held a later one. */
static int salvage_scan(struct wal *w, struct replay *r,
                        const struct listing *l, struct salvage *s) {
  memset(s, 0, sizeof *s);
  uint32_t prev_version = 0;
  for (size_t i = 0; i < l->n; i++) {
    char name[WAL_SEG_NAME_BYTES + 1];
    wal_seg_name(name, l->seqs[i]);
    char path[WAL_IO_PATH_MAX];
    snprintf(path, sizeof path, "%s", wal_path(w, name));
    bool last = i + 1 == l->n;
    if (i > 0 && l->seqs[i] != l->seqs[i - 1] + 1) {
      note_damage(s, pos_key(i, 0), path, 0); /* a lost segment before */
      s->lost_segments += l->seqs[i] - l->seqs[i - 1] - 1;
    }
    int fd;
    int rv = w->io.open(w->io.ctx, path, 0, &fd);
    if (rv != 0)
      return wal_io_error(w, rv, "open", path);
    uint64_t size = 0;
    rv = read_image(w, r, fd, path, &size);
    w->io.close(w->io.ctx, fd);
    if (rv != 0)
      return rv;
    struct wal_seg_header hd = {0};
    const char *why;
    uint64_t off = WAL_SEG_HEADER_BYTES;
    uint64_t born = 0;
    bool header_ok = wal_seg_header_check(r->img, size, &hd, &why) == 0;
    if (!header_ok && maybe_unborn(last, size, prev_version))
      continue;
    prev_version = hd.version;
    if (header_ok)
      born = wal_seg_born_bytes(&hd);
    if (size < born)
      note_damage(s, pos_key(i, size), path, size);
    if (!header_ok) {
      note_damage(s, pos_key(i, 0), path, 0);
      off = size > off ? find_next(r->img, size, l->seqs[i], off) : 0;
      s->damaged_entries +=
          damaged_capacity(r->img, 0, off == 0 ? size : off, false);
      if (off == 0)
        continue;
    }
    while (off < size) {
      struct wal_rec rec;
      if (wal_rec_check(r->img, size, off, l->seqs[i], &rec, &why)) {
        if (rec.type == WAL_REC_HARD_STATE) {
          s->has_hs = true;
          wal_hard_state_decode(&rec, &s->hs);
          s->hs_key = pos_key(i, off);
        }
        if (rec_index(&rec) > s->index_max)
          s->index_max = rec_index(&rec);
        off += WAL_REC_HEADER_BYTES + rec.payload_bytes;
        continue;
      }
      bool gave_up = false;
      if (last && off >= born &&
          find_witness(r->img, size, l->seqs[i], off, &gave_up) == 0 &&
          !gave_up)
        break; /* an unsynced tail: never acknowledged, hides nothing */
      note_damage(s, pos_key(i, off), path, off);
      uint64_t next = find_next(r->img, size, l->seqs[i], off + 1);
      s->damaged_entries +=
          damaged_capacity(r->img, off, next == 0 ? size : next, true);
      off = next;
      if (off == 0)
        break;
    }
  }
  return 0;
}

static void intent_encode(uint8_t *p, bool has_hs,
                          const struct sabha_hard_state *hs, const char *folder,
                          uint64_t new_seq) {
  memset(p, 0, WAL_INTENT_BYTES);
  memcpy(p, WAL_INTENT_MAGIC, 8);
  le_put_u32(p + 8, WAL_INTENT_VERSION);
  le_put_u32(p + 12, WAL_INTENT_BYTES);
  le_put_u64(p + 16, hs->term);
  le_put_u32(p + 24, hs->vote);
  le_put_u32(p + 28, has_hs ? 1 : 0);
  le_put_u64(p + 32, hs->commit);
  le_put_u64(p + 40, new_seq);
  assert(strlen(folder) < WAL_INTENT_FOLDER_MAX);
  memcpy(p + 48, folder, strlen(folder));
  le_put_u32(p + 92, wal_crc32c(0, p, 92));
}

struct intent {
  bool has_hs;
  struct sabha_hard_state hs;
  uint64_t new_seq;
  char folder[WAL_INTENT_FOLDER_MAX];
};

static int intent_read(struct wal *w, struct intent *in) {
  /* The intent holds no repair guard (the hard state file got it before
   * the intent was written, and recovery merges it back): zero, never
   * whatever the caller's memory held, which the new log's first record
   * and then the hard state file would keep as a guard for good. */
  memset(in, 0, sizeof *in);
  uint8_t p[WAL_INTENT_BYTES + 1];
  size_t n = 0;
  bool absent = false;
  int rv = wal_read_whole(w, WAL_INTENT_NAME, p, sizeof p, &n, &absent);
  if (rv != 0)
    return rv;
  const char *path = wal_path(w, WAL_INTENT_NAME);
  if (absent) /* listed a moment ago */
    return wal_io_error(w, -ENOENT, "open", path);
  /* It was fsynced before it got its name: damage here is real. */
  if (n != WAL_INTENT_BYTES || memcmp(p, WAL_INTENT_MAGIC, 8) != 0 ||
      le_get_u32(p + 8) != WAL_INTENT_VERSION ||
      wal_crc32c(0, p, 92) != le_get_u32(p + 92) ||
      p[48 + WAL_INTENT_FOLDER_MAX - 1] != 0 || p[48] == 0 ||
      le_get_u64(p + 40) == 0)
    return corrupt_at(w, path, 0, "damaged discard intent");
  in->hs.term = le_get_u64(p + 16);
  in->hs.vote = le_get_u32(p + 24);
  in->has_hs = le_get_u32(p + 28) != 0;
  in->hs.commit = le_get_u64(p + 32);
  in->new_seq = le_get_u64(p + 40);
  memcpy(in->folder, p + 48, WAL_INTENT_FOLDER_MAX);
  if (strchr(in->folder, '/') != NULL || strcmp(in->folder, "..") == 0 ||
      strcmp(in->folder, ".") == 0)
    return corrupt_at(w, path, 48, "bad folder name in discard intent");
  return 0;
}

/* Writes discard.intent through a temporary name, durably. */
static int intent_write(struct wal *w, const struct intent *in) {
  uint8_t p[WAL_INTENT_BYTES];
  intent_encode(p, in->has_hs, &in->hs, in->folder, in->new_seq);
  return wal_write_whole(w, WAL_INTENT_TMP_NAME, WAL_INTENT_NAME, p, sizeof p);
}

/* Carries out a recorded discard; safe to repeat after a crash. The new
 * log is made durable first, so the hard state is never only in the
 * intent; then every other segment and the snapshot move into the folder;
 * the intent goes last. */
static int discard_finish(struct wal *w, const struct intent *in) {
  unwind(w);
  w->has_hs = in->has_hs;
  w->hs = in->hs;
  w->has_snapshot = false;
  char folder[WAL_IO_PATH_MAX];
  snprintf(folder, sizeof folder, "%s", wal_path(w, in->folder));
  int rv = w->io.mkdir(w->io.ctx, folder);
  if (rv != 0 && rv != -EEXIST)
    return wal_io_error(w, rv, "mkdir", folder);
  rv = wal_segment_create(w, in->new_seq, WAL_SEG_FLAG_LOG_START);
  if (rv == 0)
    rv = wal_sync_active(w);
  unwind(w);
  if (rv != 0)
    return rv;
  struct listing l = {0};
  rv = list_dir(w, &l);
  for (size_t i = 0; rv == 0 && i <= l.n; i++) {
    char name[WAL_SEG_NAME_BYTES + 1];
    if (i == l.n && !l.snapshot)
      break;
    if (i < l.n && l.seqs[i] == in->new_seq)
      continue;
    if (i < l.n)
      wal_seg_name(name, l.seqs[i]);
    else
      snprintf(name, sizeof name, "%s", WAL_SNAP_NAME);
    char to[WAL_IO_PATH_MAX];
    int n = snprintf(to, sizeof to, "%s/%s", folder, name);
    assert(n > 0 && n < (int)sizeof to);
    (void)n;
    rv = w->io.rename(w->io.ctx, wal_path(w, name), to);
    if (rv != 0)
      rv = wal_io_error(w, rv, "rename", w->path);
  }
  free(l.seqs);
  if (rv == 0) {
    rv = w->io.sync_dir(w->io.ctx, folder);
    if (rv != 0)
      rv = wal_io_error(w, rv, "fsync of directory", folder);
  }
  if (rv == 0)
    rv = wal_sync_dir(w);
  if (rv == 0) {
    const char *path = wal_path(w, WAL_INTENT_NAME);
    rv = w->io.unlink(w->io.ctx, path);
    if (rv != 0)
      rv = wal_io_error(w, rv, "unlink", path);
  }
  if (rv == 0)
    rv = wal_sync_dir(w);
  if (rv == 0)
    w->stats.discarded = true;
  return rv;
}

/* Picks a fresh damaged-<date>[-n] folder name and creates the folder. */
static int make_folder(struct wal *w, char *folder) {
  time_t t = (time_t)w->io.time_s(w->io.ctx);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL)
    memset(&tm, 0, sizeof tm);
  char stamp[16]; /* YYYYMMDD-HHMMSS */
  if (strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm) == 0)
    snprintf(stamp, sizeof stamp, "undated");
  for (int k = 1; k < 100; k++) {
    if (k == 1)
      snprintf(folder, WAL_INTENT_FOLDER_MAX, "damaged-%s", stamp);
    else
      snprintf(folder, WAL_INTENT_FOLDER_MAX, "damaged-%s-%d", stamp, k);
    const char *path = wal_path(w, folder);
    int rv = w->io.mkdir(w->io.ctx, path);
    if (rv == 0)
      return wal_sync_dir(w);
    if (rv != -EEXIST)
      return wal_io_error(w, rv, "mkdir", path);
  }
  return wal_error(w, SABHA_EIO, "%s: no free name for a damaged-* folder",
                   w->dir);
}

/* Gives the whole damaged log up: the segments and the snapshot move into
 * a damaged-* folder and a new log starts with the hard state alone. */
static int discard_all(struct wal *w, const struct listing *l, bool has_hs,
                       const struct sabha_hard_state *hs, const char *reason,
                       char *note, size_t note_size) {
  struct intent in = {.has_hs = has_hs, .hs = *hs, .new_seq = 1};
  if (l->n > 0 && l->seqs[l->n - 1] == UINT64_MAX)
    return wal_error(w, SABHA_ECORRUPT,
                     "%s; not discarding the log: its last segment's number "
                     "leaves none to start a new log at",
                     reason);
  if (l->n > 0)
    in.new_seq = l->seqs[l->n - 1] + 1;
  int rv = make_folder(w, in.folder);
  if (rv == 0)
    rv = intent_write(w, &in);
  if (rv == 0)
    rv = discard_finish(w, &in);
  if (rv == 0)
    snprintf(note, note_size,
             "discarded a damaged log into %s/%s (term %llu, vote %u kept): "
             "%s",
             w->dir, in.folder, (unsigned long long)in.hs.term, in.hs.vote,
             reason);
  return rv;
}

/* Cuts the log at the first damage: segment `seq` keeps its bytes before
 * `off` (none when off is 0), every later segment moves into a damaged-*
 * folder. Safe to repeat: a crash part way leaves the same damage at the
 * same place for the next start, and the guard is already in the hard
 * state file. The moves are durable before the cut, so the segments after
 * the damage never come back behind a clean prefix. */
static int cut_log(struct wal *w, const struct listing *l, uint64_t seq,
                   uint64_t off, const char *folder, size_t *moved) {
  *moved = 0;
  int rv = 0;
  for (size_t i = l->n; rv == 0 && i-- > 0;) {
    if (l->seqs[i] < seq || (l->seqs[i] == seq && off > 0))
      continue;
    char name[WAL_SEG_NAME_BYTES + 1];
    wal_seg_name(name, l->seqs[i]);
    char to[WAL_IO_PATH_MAX];
    int n = snprintf(to, sizeof to, "%s/%s/%s", w->dir, folder, name);
    assert(n > 0 && n < (int)sizeof to);
    (void)n;
    rv = w->io.rename(w->io.ctx, wal_path(w, name), to);
    if (rv != 0)
      return wal_io_error(w, rv, "rename", w->path);
    (*moved)++;
  }
  const char *dir = wal_path(w, folder);
  rv = w->io.sync_dir(w->io.ctx, dir);
  if (rv != 0)
    return wal_io_error(w, rv, "fsync of directory", dir);
  rv = wal_sync_dir(w);
  if (rv != 0 || off == 0)
    return rv;
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, seq);
  const char *path = wal_path(w, name);
  int fd;
  rv = w->io.open(w->io.ctx, path, 0, &fd);
  if (rv != 0)
    return wal_io_error(w, rv, "open", path);
  rv = w->io.truncate(w->io.ctx, fd, off);
  if (rv == 0)
    rv = w->io.sync(w->io.ctx, fd, false);
  w->io.close(w->io.ctx, fd);
  if (rv != 0)
    return wal_io_error(w, rv, "truncate", path);
  return 0;
}

/* The highest index this node may have acknowledged, from what survives
 * of a damaged log (REPAIRING in wal.h): the highest index an intact
 * record or the snapshot names, plus as many entries as the damage and the
 * lost segments could have held (damaged_capacity). The log has no gaps,
 * so an entry in the damage is at most that many past the highest index
 * before it. */
/* The largest guard a repair sets: an index no log reaches in practice
 * (2^48 entries), far below where the arithmetic wraps. */
#define WAL_GUARD_MAX (UINT64_C(1) << 48)

static int guard_bound(struct wal *w, const struct replay *r,
                       const struct listing *l, const struct salvage *s,
                       const char *reason, uint64_t *out) {
  uint64_t base = 0;
  if (l->snapshot && !r->bad_snapshot) {
    base = r->snap.index;
  } else if (l->snapshot) {
    struct sabha_snapshot_meta m;
    if (wal_snapshot_peek(w, &m) != 0)
      return wal_error(w, SABHA_ECORRUPT,
                       "%s; not repairing the log: the snapshot file's "
                       "header is damaged too, so nothing says how far the "
                       "log reached",
                       reason);
    base = m.index;
  }
  const uint64_t per = WAL_REC_HEADER_BYTES + WAL_ENTRY_HEADER_BYTES;
  uint64_t top = s->index_max > base ? s->index_max : base;
  /* A gap in the segments' numbers comes from the directory's names: one
   * far ahead would make the product wrap, and the guard with it. A guard
   * past any index a log could reach would also keep the node from ever
   * voting: either way, not a repair. */
  uint64_t lost, guard;
  if (__builtin_mul_overflow(s->lost_segments,
                             w->opt.segment_size_bytes / per, &lost) ||
      __builtin_add_overflow(top, s->damaged_entries, &guard) ||
      __builtin_add_overflow(guard, lost, &guard) ||
      guard > WAL_GUARD_MAX)
    return wal_error(w, SABHA_ECORRUPT,
                     "%s; not repairing the log: its segments' numbers "
                     "leave a gap of %llu segments, too many to bound what "
                     "they held",
                     reason, (unsigned long long)s->lost_segments);
  *out = guard;
  return 0;
}

/* The log is damaged (the reason is in w->errmsg). Unless told to refuse,
 * repair it (REPAIRING in wal.h): establish the hard state (the log's last
 * intact one, merged with the hard state file; refuse if neither can be
 * trusted), persist a repair guard in the hard state file, then cut the
 * log at the damage, or give it all up when the snapshot is damaged (or
 * discard_corrupt asks for that). */
static int repair(struct wal *w, struct replay *r, const struct listing *l,
                  char *note, size_t note_size) {
  char reason[WAL_ERRMSG_MAX];
  snprintf(reason, sizeof reason, "%s", w->errmsg);
  unwind(w);
  struct salvage s;
  int rv = salvage_scan(w, r, l, &s);
  if (rv != 0)
    return rv;
  bool has_hs = s.has_hs;
  struct sabha_hard_state hs = s.hs;
  bool hidden = s.damaged && (!s.has_hs || s.hs_key < s.damage_key);
  if (w->hsf.good > 0) {
    rv = wal_hs_merge(w, &has_hs, &hs, &w->hsf);
    if (rv != 0)
      return rv;
    hidden = false; /* the file holds every term and vote acted on */
  }
  if (hidden)
    return wal_error(w, SABHA_ECORRUPT,
                     "%s; not repairing the log: the damage at %s could hide "
                     "a newer hard state than the last intact one, and the "
                     "hard state file is %s",
                     reason, s.damage_at,
                     w->hsf.present ? "damaged too" : "missing");
  uint64_t until = 0;
  rv = guard_bound(w, r, l, &s, reason, &until);
  if (rv != 0)
    return rv;
  if (until > hs.repair_until)
    hs.repair_until = until;
  if (hs.repair_until != 0)
    has_hs = true;
  /* The guard is durable before anything is cut or moved. */
  rv = wal_hsf_write(w, has_hs, &hs);
  if (rv != 0)
    return rv;
  w->stats.repaired = true;
  w->stats.repair_until = hs.repair_until;
  if (!r->bad_known || r->bad_snapshot || w->opt.discard_corrupt)
    return discard_all(w, l, has_hs, &hs, reason, note, note_size);
  char folder[WAL_INTENT_FOLDER_MAX];
  rv = make_folder(w, folder);
  size_t moved = 0;
  if (rv == 0)
    rv = cut_log(w, l, r->bad_seq, r->bad_off, folder, &moved);
  if (rv != 0)
    return rv;
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, r->bad_seq);
  snprintf(note, note_size,
           "repaired a damaged log: %s. Kept the log before %s offset %llu, "
           "moved %zu segment(s) after it into %s/%s; the node catches up "
           "from its peers and neither votes nor promises until it holds "
           "the entries up to index %llu (the most it may have "
           "acknowledged)",
           reason, name, (unsigned long long)r->bad_off, moved, w->dir, folder,
           (unsigned long long)hs.repair_until);
  return 0;
}

/* ---- putting it together ---- */

static int ensure_dir(struct wal *w) {
  int rv = w->io.mkdir(w->io.ctx, w->dir);
  if (rv == -EEXIST)
    return 0;
  if (rv != 0)
    return wal_io_error(w, rv, "mkdir", w->dir);
  /* The new directory's own name must survive a crash too. */
  char parent[WAL_IO_PATH_MAX];
  snprintf(parent, sizeof parent, "%s", w->dir);
  size_t n = strlen(parent);
  while (n > 1 && parent[n - 1] == '/')
    parent[--n] = '\0';
  char *slash = strrchr(parent, '/');
  if (slash == NULL)
    snprintf(parent, sizeof parent, ".");
  else if (slash == parent)
    parent[1] = '\0';
  else
    *slash = '\0';
  rv = w->io.sync_dir(w->io.ctx, parent);
  if (rv != 0)
    return wal_io_error(w, rv, "fsync of directory", parent);
  return 0;
}

/* Deletes leftovers of interrupted writes and finishes an interrupted
 * discard; leaves a fresh listing in *l. */
static int tidy(struct wal *w, struct listing *l, char *note,
                size_t note_size) {
  int rv = list_dir(w, l);
  if (rv != 0)
    return rv;
  const char *tmps[5] = {l->snapshot_tmp ? WAL_SNAP_TMP_NAME : NULL,
                         l->snapshot_own_tmp ? WAL_SNAP_OWN_TMP_NAME : NULL,
                         l->segment_tmp ? WAL_SEG_TMP_NAME : NULL,
                         l->intent_tmp ? WAL_INTENT_TMP_NAME : NULL,
                         l->hsf_tmp ? WAL_HSF_TMP_NAME : NULL};
  bool removed = false;
  for (int i = 0; i < 5; i++) {
    if (tmps[i] == NULL)
      continue;
    const char *path = wal_path(w, tmps[i]);
    rv = w->io.unlink(w->io.ctx, path);
    if (rv != 0 && rv != -ENOENT)
      return wal_io_error(w, rv, "unlink", path);
    removed = true;
  }
  if (removed) {
    rv = wal_sync_dir(w);
    if (rv != 0)
      return rv;
  }
  if (l->intent) {
    struct intent in;
    rv = intent_read(w, &in);
    if (rv == 0)
      rv = discard_finish(w, &in);
    if (rv == 0)
      snprintf(note, note_size,
               "finished discarding a damaged log into %s/%s (term %llu, "
               "vote %u kept)",
               w->dir, in.folder, (unsigned long long)in.hs.term, in.hs.vote);
  }
  if (rv == 0 && (l->intent || removed))
    rv = list_dir(w, l);
  return rv;
}

/* Hands the replayed state to the handle and to `p`, taking its memory. */
static int hand_over(struct wal *w, struct replay *r,
                     struct sabha_persisted *p) {
  static const uint8_t empty[1];
  uint64_t base = replay_base(r);
  w->has_hs = r->has_hs;
  w->hs = r->hs;
  w->has_snapshot = r->has_snap;
  w->snap = r->snap;
  w->last_index = base + r->n;
  if (r->n > 0) {
    w->rec_entries = malloc(r->n * sizeof *w->rec_entries);
    if (w->rec_entries == NULL)
      return wal_error(w, SABHA_ENOMEM, "out of memory (recovered log)");
  }
  for (size_t k = 0; k < r->n; k++) {
    const struct rentry *e = &r->v[k];
    assert(e->offset + e->size_bytes <= r->bytes_len);
    w->rec_entries[k] = (struct sabha_entry){
        .index = base + 1 + k,
        .term = e->term,
        .type = e->type,
        .size_bytes = e->size_bytes,
        .data = e->size_bytes > 0 ? r->bytes + e->offset : empty};
  }
  w->rec_bytes = r->bytes;
  w->rec_snap = r->snap_data;
  r->bytes = NULL;
  r->snap_data = NULL;
  p->hard_state = r->hs;
  /* The commit hint may name entries a torn tail took away. */
  if (p->hard_state.commit > w->last_index)
    p->hard_state.commit = w->last_index;
  p->has_snapshot = r->has_snap;
  p->snapshot = r->snap;
  p->snapshot_data = w->rec_snap;
  p->snapshot_size_bytes = r->snap_size;
  p->entries = w->rec_entries;
  p->n_entries = r->n;
  p->applied = base;
  return 0;
}

/* Adds a sentence to the note wal_open returns. */
static void note_add(char *note, size_t note_size, const char *sentence) {
  size_t n = strlen(note);
  if (n + 1 < note_size)
    snprintf(note + n, note_size - n, "%s%s", n > 0 ? "; " : "", sentence);
}

/* Makes the last segment, as recovered, durable and open for appending. */
static int sync_last(struct wal *w) {
  /* The previous process may have died with its last writes still in the
   * page cache: readable now, gone after a power cut. Sync before anyone
   * acts on them. */
  struct wal_seg *s = &w->segs[w->n_segs - 1];
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, s->seq);
  int rv = 0;
  if (w->fd < 0) {
    /* The last file was an unborn segment, removed: append to the one
     * before it, which was complete and fsynced when it was left. */
    rv = w->io.open(w->io.ctx, wal_path(w, name), 0, &w->fd);
    if (rv != 0)
      return wal_io_error(w, rv, "open", w->path);
    w->file_bytes = s->size_bytes;
  }
  uint64_t t0 = w->io.clock_ns(w->io.ctx);
  rv = w->io.sync(w->io.ctx, w->fd, false);
  if (rv != 0)
    return wal_io_error(w, rv, "fsync", wal_path(w, name));
  wal_fsync_latency(w, w->io.clock_ns(w->io.ctx) - t0);
  w->durable_bytes = s->size_bytes;
  rv = wal_open_sync_fd(w);
  if (rv != 0)
    return rv;
  return wal_sync_dir(w);
}

/* Appends, durably, the end of the install a crash interrupted (see
 * install_resolve). */
static int install_close(struct wal *w, const struct replay *r, char *note,
                         size_t note_size) {
  uint8_t p[WAL_SNAPSHOT_REC_BYTES];
  static_assert(WAL_SNAPSHOT_REC_BYTES == WAL_ABORT_BYTES, "one layout");
  le_put_u64(p, r->inst_index);
  le_put_u64(p + 8, r->inst_term);
  int rv = wal_append_record(w, r->inst_end, p, sizeof p, NULL, 0);
  if (rv == 0)
    rv = wal_sync_active(w);
  if (rv == 0)
    note_add(note, note_size,
             r->inst_end == WAL_REC_SNAPSHOT
                 ? "finished a snapshot install a crash interrupted"
                 : "abandoned a snapshot install a crash interrupted before "
                   "its snapshot was stored");
  return rv;
}

/* Makes the recovered state durable and the last segment ready for
 * appending (or creates the first one), and finishes what a crash left
 * half done. */
static int make_ready(struct wal *w, const struct listing *l,
                      const struct replay *r, char *note, size_t note_size) {
  int rv;
  if (w->n_segs == 0) {
    uint64_t seq = l->n > 0 ? l->seqs[l->n - 1] : 1;
    rv = wal_segment_create(w, seq, 0);
  } else {
    rv = sync_last(w);
    /* Only segments of this format get appended to: an older build then
     * refuses the log (a version it does not read) rather than misreads
     * it, and every segment this build appends to was born whole. */
    if (rv == 0 && w->segs[w->n_segs - 1].version != WAL_FORMAT_VERSION)
      rv = wal_rollover(w);
  }
  if (rv == 0 && r->inst_end != 0)
    rv = install_close(w, r, note, note_size);
  /* A crash between a snapshot and the deletions it allows leaves covered
   * segments behind; finish the job. */
  if (rv == 0 && w->has_snapshot)
    rv = wal_delete_covered(w);
  return rv;
}

int wal_recover(struct wal *w, struct sabha_persisted *recovered, char *note,
                size_t note_size) {
  struct listing l = {0};
  struct replay r = {0};
  int rv = ensure_dir(w);
  if (rv == 0)
    rv = tidy(w, &l, note, note_size);
  if (rv == 0)
    rv = wal_hsf_read(w, &w->hsf);
  if (rv == 0) {
    rv = replay_all(w, &r, &l, note, note_size);
    if (rv == SABHA_ECORRUPT && !w->opt.refuse_corrupt) {
      rv = repair(w, &r, &l, note, note_size);
      if (rv == 0) {
        char kept[WAL_ERRMSG_MAX];
        snprintf(kept, sizeof kept, "%s", note);
        replay_reset(&r);
        rv = list_dir(w, &l);
        if (rv == 0)
          rv = replay_all(w, &r, &l, note, note_size);
        snprintf(note, note_size, "%s", kept);
      }
    }
  }
  /* The hard state file may know a later term, vote or guard than the
   * log (a repair wrote it first; a block of the log's is bad): the log
   * gets a record of the merged state, and the file both blocks again
   * when one was bad (or it is new: a log from an older build). */
  struct sabha_hard_state logged = r.hs;
  bool had_hs = r.has_hs;
  if (rv == 0)
    rv = wal_hs_merge(w, &r.has_hs, &r.hs, &w->hsf);
  if (rv == 0)
    rv = hand_over(w, &r, recovered);
  if (rv == 0)
    rv = make_ready(w, &l, &r, note, note_size);
  if (rv == 0 && r.has_hs &&
      (!had_hs || logged.term != r.hs.term || logged.vote != r.hs.vote ||
       logged.repair_until != r.hs.repair_until)) {
    rv = wal_append_hard_state(w, &w->hs);
    if (rv == 0)
      rv = wal_sync_active(w);
  }
  if (rv == 0 && w->hsf.present && !w->hsf.whole) {
    note_add(note, note_size, "rewrote a damaged block of the hard state file");
    w->stats.hsf_repaired = true;
  }
  if (rv == 0 && wal_hsf_stale(w))
    rv = wal_hsf_write(w, w->has_hs, &w->hs);
  if (rv != 0)
    unwind(w);
  free(l.seqs);
  replay_free(&r);
  return rv;
}
