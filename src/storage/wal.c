/* The write side of the WAL: turning a ready batch into records, grouping
 * them in a buffer, moving to a new segment when one is full, syncing, and
 * storing snapshots. wal_open() lives here too but hands the reading back to
 * wal_recover.c. The format and the durability rules are in wal.h.
 *
 * Two rules shape this file. First, a write or fsync that fails leaves the
 * handle failed for good (w->failed): after such an error the kernel may
 * have dropped the unsynced pages and the next fsync could report success
 * without writing them, so the only honest course is to stop and let
 * recovery decide what is on disk. Second, a ready batch is checked whole
 * before the first byte is written, so a refused batch changes nothing. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"
#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/wal_internal.h"

void wal_options_init(struct wal_options *opt, const char *dir) {
  assert(opt != NULL);
  memset(opt, 0, sizeof *opt);
  opt->dir = dir;
  opt->segment_size_bytes = WAL_SEGMENT_BYTES_DEFAULT;
  opt->entry_size_bytes_max = WAL_ENTRY_BYTES_DEFAULT;
  opt->snapshot_size_bytes_max = WAL_SNAPSHOT_BYTES_DEFAULT;
  opt->buffer_size_bytes = WAL_BUFFER_BYTES_DEFAULT;
  opt->zero_ahead_bytes = WAL_ZERO_AHEAD_BYTES_DEFAULT;
}

/* ---- errors ---- */

int wal_error(struct wal *w, int code, const char *fmt, ...) {
  assert(code < 0);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
  va_end(ap);
  return code;
}

int wal_io_error(struct wal *w, int rv, const char *what, const char *path) {
  assert(rv < 0);
  int code = rv == -ENOMEM ? SABHA_ENOMEM : SABHA_EIO;
  wal_error(w, code, "%s %s: %s", what, path, strerror(-rv));
  w->failed = code;
  return code;
}

static int wal_nomem(struct wal *w, const char *what) {
  wal_error(w, SABHA_ENOMEM, "out of memory (%s)", what);
  w->failed = SABHA_ENOMEM;
  return SABHA_ENOMEM;
}

const char *wal_errmsg(const struct wal *w) {
  return w->errmsg;
}

/* ---- paths ---- */

static const char *path_join(char *out, const char *dir, const char *name) {
  int n = snprintf(out, WAL_IO_PATH_MAX, "%s/%s", dir, name);
  /* wal_open refused directories too long for any name we use. */
  assert(n > 0 && n < WAL_IO_PATH_MAX);
  (void)n;
  return out;
}

const char *wal_path(struct wal *w, const char *name) {
  return path_join(w->path, w->dir, name);
}

const char *wal_path2(struct wal *w, const char *name) {
  return path_join(w->path2, w->dir, name);
}

static struct wal_seg *active(struct wal *w) {
  assert(w->n_segs > 0);
  return &w->segs[w->n_segs - 1];
}

static const char *active_path(struct wal *w) {
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, active(w)->seq);
  return wal_path(w, name);
}

/* ---- syncing ---- */

void wal_fsync_latency(struct wal *w, uint64_t ns) {
  uint64_t us = ns / 1000;
  struct wal_stats *st = &w->stats;
  st->fsyncs++;
  st->fsync_us_last = us;
  st->fsync_us_total += us;
  if (us > st->fsync_us_max)
    st->fsync_us_max = us;
  unsigned b = 0;
  while (b + 1 < WAL_FSYNC_HIST_BUCKETS && (us >> (b + 1)) != 0)
    b++;
  st->fsync_us_hist[b]++;
}

int wal_flush(struct wal *w) {
  if (w->failed)
    return w->failed;
  if (w->buf_len == 0)
    return 0;
  assert(w->fd >= 0);
  struct wal_seg *s = active(w);
  int rv = w->io.write(w->io.ctx, w->fd, s->size_bytes, w->buf, w->buf_len);
  if (rv != 0)
    return wal_io_error(w, rv, "write", active_path(w));
  s->size_bytes += w->buf_len;
  if (w->file_bytes < s->size_bytes)
    w->file_bytes = s->size_bytes;
  w->stats.bytes_written += w->buf_len;
  w->buf_len = 0;
  return 0;
}

/* ---- zeros ahead of the records (ZEROS AHEAD in wal.h) ---- */

static const uint8_t zeros[64u << 10];

static uint64_t zero_ahead_bytes(const struct wal *w) {
  uint64_t quarter = w->opt.segment_size_bytes / 4;
  return w->opt.zero_ahead_bytes < quarter ? w->opt.zero_ahead_bytes : quarter;
}

static int write_zeros(struct wal *w, int fd, uint64_t from, uint64_t to) {
  while (from < to) {
    size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
    int rv = w->io.write(w->io.ctx, fd, from, zeros, n);
    if (rv != 0)
      return rv;
    from += n;
    w->stats.zero_bytes_written += n;
  }
  return 0;
}

/* Called before the active segment is synced: when fewer than half the
 * zeros ahead of its records remain, writes more, so that this sync pays
 * for the file's new size once and the next ones overwrite in place. */
static int zero_ahead(struct wal *w) {
  struct wal_seg *s = active(w);
  uint64_t ahead = zero_ahead_bytes(w);
  if (w->file_bytes >= s->size_bytes + ahead / 2)
    return 0;
  uint64_t to = s->size_bytes + ahead;
  if (to > w->opt.segment_size_bytes)
    to = w->opt.segment_size_bytes;
  if (to <= w->file_bytes)
    return 0;
  int rv = write_zeros(w, w->fd, w->file_bytes, to);
  if (rv != 0)
    return wal_io_error(w, rv, "write of zeros ahead of the records in",
                        active_path(w));
  w->file_bytes = to;
  return 0;
}

/* Cuts the zeros after the active segment's records, durably, so that a
 * segment the log moves past ends at its last record (recovery reads any
 * other bytes there as damage). */
static int trim_zeros(struct wal *w) {
  struct wal_seg *s = active(w);
  if (w->file_bytes <= s->size_bytes)
    return 0;
  int rv = w->io.truncate(w->io.ctx, w->fd, s->size_bytes);
  if (rv == 0)
    rv = w->io.sync(w->io.ctx, w->fd, false);
  if (rv != 0)
    return wal_io_error(w, rv, "truncate of the zeros after the records in",
                        active_path(w));
  w->file_bytes = s->size_bytes;
  return 0;
}

int wal_sync_active(struct wal *w) {
  int rv = wal_flush(w);
  if (rv != 0)
    return rv;
  struct wal_seg *s = active(w);
  assert(w->durable_bytes <= s->size_bytes);
  if (w->durable_bytes == s->size_bytes)
    return 0;
  rv = zero_ahead(w);
  if (rv != 0)
    return rv;
  uint64_t t0 = w->io.clock_ns(w->io.ctx);
  rv = w->io.sync(w->io.ctx, w->fd, true);
  uint64_t t1 = w->io.clock_ns(w->io.ctx);
  if (rv != 0)
    return wal_io_error(w, rv, "fdatasync", active_path(w));
  wal_fsync_latency(w, t1 - t0);
  w->durable_bytes = s->size_bytes;
  return 0;
}

int wal_sync_dir(struct wal *w) {
  if (w->failed)
    return w->failed;
  int rv = w->io.sync_dir(w->io.ctx, w->dir);
  w->stats.dir_fsyncs++;
  if (rv != 0)
    return wal_io_error(w, rv, "fsync of directory", w->dir);
  return 0;
}

int wal_sync_begin(struct wal *w, struct wal_sync_job *job) {
  assert(!w->job_running);
  memset(job, 0, sizeof *job);
  job->io = w->io;
  job->fd = -1;
  int rv = wal_flush(w);
  if (rv != 0)
    return rv;
  struct wal_seg *s = active(w);
  if (w->durable_bytes < s->size_bytes) {
    rv = zero_ahead(w);
    if (rv != 0)
      return rv;
    assert(w->sync_fd >= 0);
    job->fd = w->sync_fd;
    job->seg_seq = s->seq;
    job->size_bytes = s->size_bytes;
  }
  w->job_running = true;
  w->job_fd = job->fd;
  return 0;
}

void wal_sync_job_run(struct wal_sync_job *job) {
  if (job->fd < 0)
    return;
  uint64_t t0 = job->io.clock_ns(job->io.ctx);
  job->rv = job->io.sync(job->io.ctx, job->fd, true);
  job->ns = job->io.clock_ns(job->io.ctx) - t0;
}

void wal_sync_jobs_run(struct wal_sync_job *const *jobs, size_t n) {
  assert(n <= WAL_SYNC_JOBS_MAX);
  int fds[WAL_SYNC_JOBS_MAX];
  struct wal_sync_job *due[WAL_SYNC_JOBS_MAX];
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (jobs[i]->fd >= 0) {
      due[k] = jobs[i];
      fds[k++] = jobs[i]->fd;
    }
  if (k == 0)
    return;
  const struct wal_io *io = &due[0]->io;
  if (k >= 2 && io->sync_many != NULL) {
    uint64_t t0 = io->clock_ns(io->ctx);
    int rv = io->sync_many(io->ctx, fds, k);
    if (rv != -ENOTSUP) {
      uint64_t ns = io->clock_ns(io->ctx) - t0;
      for (size_t i = 0; i < k; i++) {
        due[i]->rv = rv;
        due[i]->ns = ns;
      }
      return;
    }
  }
  for (size_t i = 0; i < k; i++)
    wal_sync_job_run(due[i]);
}

int wal_sync_end(struct wal *w, const struct wal_sync_job *job) {
  assert(w->job_running);
  w->job_running = false;
  w->job_fd = -1;
  if (w->fd_to_close >= 0) {
    w->io.close(w->io.ctx, w->fd_to_close);
    w->fd_to_close = -1;
  }
  if (w->failed)
    return w->failed;
  if (job->fd >= 0) {
    if (job->rv != 0) {
      char name[WAL_SEG_NAME_BYTES + 1];
      wal_seg_name(name, job->seg_seq);
      return wal_io_error(w, job->rv, "fdatasync", wal_path(w, name));
    }
    wal_fsync_latency(w, job->ns);
    /* The segment may have been synced further meanwhile, or left. */
    if (w->fd >= 0 && active(w)->seq == job->seg_seq &&
        w->durable_bytes < job->size_bytes)
      w->durable_bytes = job->size_bytes;
  }
  /* As wal_sync: a new term, vote or guard in the hard state file too. A
   * newer one than the job covered is no harm there (recovery takes the
   * later term with its vote, and the larger guard). */
  if (wal_hsf_stale(w))
    return wal_hsf_write(w, w->has_hs, &w->hs);
  return 0;
}

int wal_sync(struct wal *w) {
  assert(w != NULL);
  if (w->failed)
    return w->failed;
  int rv = wal_sync_active(w);
  /* A new term, vote or guard goes to the hard state file as well, once
   * the log holds it durably, before the caller acts on it. */
  if (rv == 0 && wal_hsf_stale(w))
    rv = wal_hsf_write(w, w->has_hs, &w->hs);
  return rv;
}

/* ---- records ---- */

/* Writes at `h` one record of segment `seq` written when `durable` bytes
 * of that segment had been fsynced. */
static void record_encode(uint8_t *h, uint64_t seq, uint64_t durable,
                          uint8_t type, const uint8_t *head,
                          uint32_t head_bytes, const uint8_t *body,
                          uint32_t body_bytes) {
  uint32_t payload = head_bytes + body_bytes;
  le_put_u32(h + 4, payload);
  h[8] = type;
  h[9] = 0;
  le_put_u16(h + 10, 0);
  le_put_u32(h + 12, (uint32_t)durable);
  memcpy(h + WAL_REC_HEADER_BYTES, head, head_bytes);
  if (body_bytes > 0)
    memcpy(h + WAL_REC_HEADER_BYTES + head_bytes, body, body_bytes);
  le_put_u32(h, wal_rec_crc(seq, h, payload));
  assert(le_get_u32(h + 4) == payload && h[8] == type);
}

/* Encodes one record into the buffer. The caller made sure it fits in the
 * active segment. */
static int encode_record(struct wal *w, uint8_t type, const uint8_t *head,
                         uint32_t head_bytes, const uint8_t *body,
                         uint32_t body_bytes) {
  size_t payload = (size_t)head_bytes + body_bytes;
  size_t need = w->buf_len + WAL_REC_HEADER_BYTES + payload;
  if (need > w->buf_cap) {
    size_t cap = w->buf_cap < 4096 ? 4096 : w->buf_cap;
    while (cap < need)
      cap *= 2;
    uint8_t *b = realloc(w->buf, cap);
    if (b == NULL)
      return wal_nomem(w, "record buffer");
    w->buf = b;
    w->buf_cap = cap;
  }
  uint64_t offset = active(w)->size_bytes + w->buf_len;
  assert(w->durable_bytes <= offset);
  record_encode(w->buf + w->buf_len, active(w)->seq, w->durable_bytes, type,
                head, head_bytes, body, body_bytes);
  w->buf_len = need;
  w->stats.records_written++;
  return 0;
}

int wal_segs_push(struct wal *w, struct wal_seg seg) {
  if (w->n_segs == w->cap_segs) {
    size_t cap = w->cap_segs == 0 ? 16 : w->cap_segs * 2;
    struct wal_seg *v = realloc(w->segs, cap * sizeof *v);
    if (v == NULL)
      return wal_nomem(w, "segment list");
    w->segs = v;
    w->cap_segs = cap;
  }
  w->segs[w->n_segs++] = seg;
  return 0;
}

/* A segment is born whole. Its header and the hard state it restates
 * (every segment begins with it, so that deleting older segments, or
 * damage in them, can never take the latest one away) are written under a
 * temporary name and fsynced, and only then is the file renamed to its
 * segment name and the directory fsynced. So a segment under its own name
 * always holds both, durably: a shorter or damaged start is damage, never
 * a creation a crash interrupted (that leaves segment.tmp, which recovery
 * deletes). The cost is the same two fsyncs as creating it in place. */
int wal_segment_create(struct wal *w, uint64_t seq, uint32_t flags) {
  assert(w->fd < 0 && w->buf_len == 0);
  if (w->failed)
    return w->failed;
  enum {
    BIRTH_BYTES_MAX =
        WAL_SEG_HEADER_BYTES + WAL_REC_HEADER_BYTES + WAL_HARD_STATE_GUARD_BYTES
  };
  uint8_t birth[BIRTH_BYTES_MAX];
  uint32_t birth_bytes = WAL_SEG_HEADER_BYTES;
  if (w->has_hs)
    flags |= WAL_SEG_FLAG_HARD_STATE;
  /* A guard in force is restated too: it must outlive the segments that
   * held it as surely as term and vote do. */
  if (w->has_hs && w->hs.repair_until != 0)
    flags |= WAL_SEG_FLAG_GUARD;
  wal_seg_header_encode(birth, seq, flags);
  if (w->has_hs) {
    uint8_t p[WAL_HARD_STATE_GUARD_BYTES];
    uint32_t n = wal_hard_state_encode(p, &w->hs);
    record_encode(birth + birth_bytes, seq, WAL_SEG_HEADER_BYTES,
                  WAL_REC_HARD_STATE, p, n, NULL, 0);
    birth_bytes += WAL_REC_HEADER_BYTES + n;
    w->stats.records_written++;
  }
  char name[WAL_SEG_NAME_BYTES + 1];
  wal_seg_name(name, seq);
  const char *tmp = wal_path(w, WAL_SEG_TMP_NAME);
  int fd;
  int rv = w->io.open(w->io.ctx, tmp, WAL_IO_CREATE | WAL_IO_TRUNC, &fd);
  if (rv != 0)
    return wal_io_error(w, rv, "create", tmp);
  const char *what = "write";
  rv = w->io.write(w->io.ctx, fd, 0, birth, birth_bytes);
  /* Born with zeros ahead too: its first records overwrite in place. */
  uint64_t file_bytes = birth_bytes + zero_ahead_bytes(w);
  if (file_bytes > w->opt.segment_size_bytes)
    file_bytes = w->opt.segment_size_bytes;
  if (rv == 0) {
    what = "write of zeros";
    rv = write_zeros(w, fd, birth_bytes, file_bytes);
  }
  if (rv == 0) {
    what = "fdatasync";
    uint64_t t0 = w->io.clock_ns(w->io.ctx);
    rv = w->io.sync(w->io.ctx, fd, true);
    if (rv == 0)
      wal_fsync_latency(w, w->io.clock_ns(w->io.ctx) - t0);
  }
  if (rv == 0) {
    what = "rename to its segment name";
    rv = w->io.rename(w->io.ctx, tmp, wal_path2(w, name));
  }
  if (rv != 0) {
    w->io.close(w->io.ctx, fd);
    return wal_io_error(w, rv, what, tmp);
  }
  w->fd = fd;
  rv = wal_segs_push(w, (struct wal_seg){.seq = seq,
                                         .size_bytes = birth_bytes,
                                         .version = WAL_FORMAT_VERSION});
  if (rv == 0)
    rv = wal_open_sync_fd(w);
  if (rv != 0)
    return rv;
  w->durable_bytes = birth_bytes;
  w->file_bytes = file_bytes;
  w->stats.bytes_written += birth_bytes;
  /* The name must be durable before anything written into the file is
   * acknowledged: a sync of the file alone does not promise it. */
  return wal_sync_dir(w);
}

int wal_write_whole(struct wal *w, const char *tmp_name, const char *name,
                    const void *data, size_t size) {
  const char *tmp = wal_path(w, tmp_name);
  int fd;
  int rv = w->io.open(w->io.ctx, tmp, WAL_IO_CREATE | WAL_IO_TRUNC, &fd);
  if (rv != 0)
    return wal_io_error(w, rv, "create", tmp);
  rv = w->io.write(w->io.ctx, fd, 0, data, size);
  if (rv == 0)
    rv = w->io.sync(w->io.ctx, fd, false);
  w->io.close(w->io.ctx, fd);
  if (rv != 0)
    return wal_io_error(w, rv, "write", tmp);
  rv = w->io.rename(w->io.ctx, tmp, wal_path2(w, name));
  if (rv != 0)
    return wal_io_error(w, rv, "rename", tmp);
  return wal_sync_dir(w);
}

int wal_read_whole(struct wal *w, const char *name, void *buf, size_t size,
                   size_t *n, bool *absent) {
  *n = 0;
  *absent = false;
  const char *path = wal_path(w, name);
  int fd;
  int rv = w->io.open(w->io.ctx, path, 0, &fd);
  if (rv == -ENOENT) {
    *absent = true;
    return 0;
  }
  if (rv != 0)
    return wal_io_error(w, rv, "open", path);
  rv = w->io.read(w->io.ctx, fd, 0, buf, size, n);
  w->io.close(w->io.ctx, fd);
  if (rv != 0)
    return wal_io_error(w, rv, "read", path);
  return 0;
}

int wal_open_sync_fd(struct wal *w) {
  assert(w->fd >= 0 && w->sync_fd < 0);
  const char *path = active_path(w);
  int fd;
  int rv = w->io.open(w->io.ctx, path, 0, &fd);
  if (rv != 0)
    return wal_io_error(w, rv, "open for the disk job", path);
  w->sync_fd = fd;
  return 0;
}

void wal_close_active(struct wal *w) {
  if (w->fd >= 0)
    w->io.close(w->io.ctx, w->fd);
  w->fd = -1;
  if (w->sync_fd >= 0 && w->job_running && w->job_fd == w->sync_fd) {
    assert(w->fd_to_close < 0);
    w->fd_to_close = w->sync_fd; /* the job's fsync may still use it */
  } else if (w->sync_fd >= 0) {
    w->io.close(w->io.ctx, w->sync_fd);
  }
  w->sync_fd = -1;
}

int wal_rollover(struct wal *w) {
  /* Only a crafted or damaged directory gets here (2^64 segments): the
   * next number would wrap to 0, which names no segment. */
  if (active(w)->seq == UINT64_MAX) {
    char name[WAL_SEG_NAME_BYTES + 1];
    wal_seg_name(name, active(w)->seq);
    return wal_error(w, SABHA_ECORRUPT,
                     "%s: the last segment number there is; no segment can "
                     "follow it",
                     wal_path(w, name));
  }
  int rv = wal_sync_active(w);
  if (rv == 0)
    rv = trim_zeros(w);
  if (rv != 0)
    return rv;
  uint64_t seq = active(w)->seq + 1;
  wal_close_active(w);
  return wal_segment_create(w, seq, 0);
}

int wal_append_record(struct wal *w, uint8_t type, const uint8_t *head,
                      uint32_t head_bytes, const uint8_t *body,
                      uint32_t body_bytes) {
  if (w->failed)
    return w->failed;
  uint64_t size = WAL_REC_HEADER_BYTES + (uint64_t)head_bytes + body_bytes;
  /* wal_open checked that a fresh segment holds the largest record. */
  assert(WAL_SEG_HEADER_BYTES + WAL_REC_HEADER_BYTES +
             WAL_HARD_STATE_GUARD_BYTES + size <=
         w->opt.segment_size_bytes);
  if (active(w)->size_bytes + w->buf_len + size > w->opt.segment_size_bytes) {
    int rv = wal_rollover(w);
    if (rv != 0)
      return rv;
  }
  int rv = encode_record(w, type, head, head_bytes, body, body_bytes);
  if (rv == 0 && w->buf_len >= w->opt.buffer_size_bytes)
    rv = wal_flush(w);
  return rv;
}

int wal_append_hard_state(struct wal *w, const struct sabha_hard_state *hs) {
  /* Terms and ballots never go back; DISCARDING relies on it. */
  assert(!w->has_hs || hs->term >= w->hs.term);
  uint8_t p[WAL_HARD_STATE_GUARD_BYTES];
  uint32_t n = wal_hard_state_encode(p, hs);
  int rv = wal_append_record(w, WAL_REC_HARD_STATE, p, n, NULL, 0);
  if (rv == 0) {
    w->has_hs = true;
    w->hs = *hs;
  }
  return rv;
}

static uint64_t snap_index(const struct wal *w) {
  return w->has_snapshot ? w->snap.index : 0;
}

/* The log's new end once every entry at index >= from is dropped. */
static void truncate_last_index(struct wal *w, uint64_t from) {
  assert(from >= 1);
  if (from - 1 < w->last_index)
    w->last_index = from - 1 > snap_index(w) ? from - 1 : snap_index(w);
  assert(w->last_index >= snap_index(w));
}

static int append_truncate(struct wal *w, uint64_t from) {
  uint8_t p[WAL_TRUNCATE_BYTES];
  le_put_u64(p, from);
  int rv = wal_append_record(w, WAL_REC_TRUNCATE, p, sizeof p, NULL, 0);
  if (rv == 0)
    truncate_last_index(w, from);
  return rv;
}

static int append_entry(struct wal *w, const struct sabha_entry *e) {
  assert(e->index > snap_index(w) && e->index <= w->last_index + 1);
  assert(e->data != NULL || e->size_bytes == 0);
  uint8_t p[WAL_ENTRY_HEADER_BYTES];
  le_put_u64(p, e->index);
  le_put_u64(p + 8, e->term);
  le_put_u32(p + 16, e->type);
  le_put_u32(p + 20, e->size_bytes);
  int rv =
      wal_append_record(w, WAL_REC_ENTRY, p, sizeof p, e->data, e->size_bytes);
  if (rv != 0)
    return rv;
  struct wal_seg *s = active(w);
  if (e->index > s->index_max)
    s->index_max = e->index;
  if (e->index > w->last_index)
    w->last_index = e->index;
  w->stats.entries_written++;
  return 0;
}

/* ---- snapshots ---- */

static int snapshot_check(struct wal *w, const struct sabha_snapshot_meta *m,
                          size_t size_bytes) {
  if (m->index == 0)
    return wal_error(w, SABHA_EINVAL, "snapshot at index 0");
  if (w->has_snapshot && m->index <= w->snap.index)
    return wal_error(w, SABHA_ECOMPACTED,
                     "snapshot at %llu is not newer than the one at %llu",
                     (unsigned long long)m->index,
                     (unsigned long long)w->snap.index);
  if (size_bytes > w->opt.snapshot_size_bytes_max)
    return wal_error(
        w, SABHA_ETOOBIG, "snapshot of %zu bytes is above the limit of %llu",
        size_bytes, (unsigned long long)w->opt.snapshot_size_bytes_max);
  return 0;
}

int wal_delete_covered(struct wal *w) {
  assert(w->has_snapshot && w->n_segs > 0);
  size_t n = 0;
  int rv = 0;
  while (n + 1 < w->n_segs && w->segs[n].index_max <= w->snap.index) {
    char name[WAL_SEG_NAME_BYTES + 1];
    wal_seg_name(name, w->segs[n].seq);
    const char *path = wal_path(w, name);
    rv = w->io.unlink(w->io.ctx, path);
    if (rv != 0 && rv != -ENOENT) {
      rv = wal_io_error(w, rv, "unlink", path);
      break;
    }
    rv = wal_sync_dir(w);
    if (rv != 0)
      break;
    n++;
  }
  memmove(w->segs, w->segs + n, (w->n_segs - n) * sizeof *w->segs);
  w->n_segs -= n;
  w->stats.segments_deleted += n;
  return rv;
}

/* Installs a snapshot and, with truncate_from != 0, drops the log from
 * there in the same step (see SNAPSHOTS in wal.h for why the order is what
 * it is). */
/* `written`: the snapshot's file, written and fsynced already
 * (wal_snapshot_job_run); NULL: write `data` here. */
static int snapshot_install(struct wal *w, const struct sabha_snapshot_meta *m,
                            const void *data, size_t size_bytes,
                            uint64_t truncate_from, const char *written) {
  /* The INSTALL record, and everything appended before it, is durable
   * before the snapshot file is. A crash before the file's rename leaves
   * the record without its snapshot: recovery then abandons it (the old
   * snapshot, the old log). A crash after leaves both: recovery applies
   * the truncation the record carries (the new snapshot, the truncated
   * log). Nothing in between exists on the disk. */
  uint8_t p[WAL_INSTALL_BYTES];
  le_put_u64(p, m->index);
  le_put_u64(p + 8, m->term);
  le_put_u64(p + 16, truncate_from);
  int rv = wal_append_record(w, WAL_REC_INSTALL, p, sizeof p, NULL, 0);
  if (rv == 0)
    rv = wal_sync_active(w);
  if (rv == 0)
    rv = written != NULL ? wal_snapshot_rename(w, written)
                         : wal_snapshot_write(w, m, data, size_bytes);
  if (rv != 0)
    return rv;
  w->has_snapshot = true;
  w->snap = *m;
  if (w->last_index < m->index)
    w->last_index = m->index;
  if (truncate_from != 0)
    truncate_last_index(w, truncate_from);
  /* The SNAPSHOT record says the install is done: no record but a
   * restated hard state ever comes between it and its INSTALL. */
  rv = wal_append_record(w, WAL_REC_SNAPSHOT, p, WAL_SNAPSHOT_REC_BYTES, NULL,
                         0);
  if (rv == 0)
    rv = wal_sync_active(w);
  /* The latest hard state cannot go with the deleted segments: it is in
   * the active segment, which stays, or restated at its start. */
  if (rv == 0)
    rv = wal_delete_covered(w);
  if (rv == 0)
    w->stats.snapshots_saved++;
  return rv;
}

/* What a snapshot of this node's own must pass before anything of it is
 * written: a working handle, and snapshot_check. */
static int own_snapshot_check(struct wal *w,
                              const struct sabha_snapshot_meta *meta,
                              const void *data, size_t size_bytes) {
  assert(w != NULL && meta != NULL);
  assert(data != NULL || size_bytes == 0);
  (void)data;
  if (w->failed)
    return w->failed;
  return snapshot_check(w, meta, size_bytes);
}

int wal_save_snapshot(struct wal *w, const struct sabha_snapshot_meta *meta,
                      const void *data, size_t size_bytes) {
  int rv = own_snapshot_check(w, meta, data, size_bytes);
  return rv != 0 ? rv : snapshot_install(w, meta, data, size_bytes, 0, NULL);
}

int wal_snapshot_begin(struct wal *w, struct wal_snap_job *job,
                       const struct sabha_snapshot_meta *meta,
                       const void *data, size_t size_bytes) {
  assert(job != NULL);
  int rv = own_snapshot_check(w, meta, data, size_bytes);
  if (rv != 0)
    return rv;
  memset(job, 0, sizeof *job);
  job->io = w->io;
  snprintf(job->tmp, sizeof job->tmp, "%s",
           wal_path(w, WAL_SNAP_OWN_TMP_NAME));
  job->meta = *meta;
  job->data = data;
  job->size_bytes = size_bytes;
  job->rv = -EINPROGRESS; /* until it has run */
  return 0;
}

void wal_snapshot_job_run(struct wal_snap_job *job) {
  job->rv = wal_snapshot_file_write(&job->io, job->tmp, &job->meta, job->data,
                                    job->size_bytes, &job->what, &job->ns);
}

void wal_snapshot_abandon(const struct wal_snap_job *job) {
  /* Recovery deletes it anyway: an error here loses nothing. */
  (void)job->io.unlink(job->io.ctx, job->tmp);
}

int wal_snapshot_end(struct wal *w, const struct wal_snap_job *job) {
  assert(w != NULL && job != NULL && job->rv != -EINPROGRESS);
  assert(!w->job_running); /* it syncs the log (see wal_sync_begin) */
  if (w->failed) {
    wal_snapshot_abandon(job);
    return w->failed;
  }
  if (job->rv != 0)
    return wal_io_error(w, job->rv, job->what, job->tmp);
  /* A leader's snapshot may have come in while the job ran: it is newer,
   * and this one is of no use. */
  if (w->has_snapshot && job->meta.index <= w->snap.index) {
    wal_snapshot_abandon(job);
    return wal_error(w, SABHA_ECOMPACTED,
                     "snapshot at %llu is not newer than the one at %llu",
                     (unsigned long long)job->meta.index,
                     (unsigned long long)w->snap.index);
  }
  wal_fsync_latency(w, job->ns);
  return snapshot_install(w, &job->meta, NULL, job->size_bytes, 0, job->tmp);
}

/* ---- ready batches ---- */

/* Refuses a batch that could not be written whole, before writing any of
 * it, by replaying its effect on the log's bounds. */
/* A batch's snapshot at the index of the one the disk holds (0 with none) is
 * a state machine going back to that snapshot (the async baseline's
 * rollback, see engine.h): the disk already has it, and only the batch's
 * truncation is new. */
static bool snapshot_is_held(const struct wal *w,
                             const struct sabha_ready *rd) {
  return rd->has_snapshot && rd->snapshot.index == snap_index(w);
}

static int ready_check(struct wal *w, const struct sabha_ready *rd) {
  uint64_t snap = snap_index(w);
  uint64_t last = w->last_index;
  if (rd->has_snapshot && !snapshot_is_held(w, rd)) {
    int rv = snapshot_check(w, &rd->snapshot, rd->snapshot_size_bytes);
    if (rv != 0)
      return rv;
    snap = rd->snapshot.index;
    if (last < snap)
      last = snap;
  }
  if (rd->truncate_from != 0 && rd->truncate_from - 1 < last)
    last = rd->truncate_from - 1 > snap ? rd->truncate_from - 1 : snap;
  for (size_t i = 0; i < rd->n_entries; i++) {
    const struct sabha_entry *e = &rd->entries[i];
    if (e->size_bytes > w->opt.entry_size_bytes_max)
      return wal_error(w, SABHA_ETOOBIG,
                       "entry %llu of %u bytes is above the limit of %u",
                       (unsigned long long)e->index, e->size_bytes,
                       w->opt.entry_size_bytes_max);
    if (e->index <= snap)
      continue;
    if (e->index > last + 1)
      return wal_error(w, SABHA_EINVAL,
                       "entry %llu would leave a gap: the log ends at %llu",
                       (unsigned long long)e->index, (unsigned long long)last);
    if (e->index == last + 1)
      last++;
  }
  return 0;
}

int wal_append_ready(struct wal *w, const struct sabha_ready *rd) {
  assert(w != NULL && rd != NULL);
  assert(rd->entries != NULL || rd->n_entries == 0);
  if (w->failed)
    return w->failed;
  int rv = ready_check(w, rd);
  if (rv != 0)
    return rv;
  /* A batch that lifts the repair guard writes the lift last, after its
   * entries: the entries are what make the lift true, and a torn batch
   * keeps a prefix of its records, never the lift without them. */
  struct sabha_hard_state hs = rd->hard_state;
  bool lift = rd->has_hard_state && hs.repair_until == 0 && w->has_hs &&
              w->hs.repair_until != 0;
  if (lift)
    hs.repair_until = w->hs.repair_until;
  if (rd->has_hard_state)
    rv = wal_append_hard_state(w, &hs);
  /* A snapshot carries the batch's truncation: the two are one step. */
  if (rv == 0 && rd->has_snapshot && !snapshot_is_held(w, rd))
    rv = snapshot_install(w, &rd->snapshot, rd->snapshot_data,
                          rd->snapshot_size_bytes, rd->truncate_from, NULL);
  else if (rv == 0 && rd->truncate_from != 0)
    rv = append_truncate(w, rd->truncate_from);
  for (size_t i = 0; rv == 0 && i < rd->n_entries; i++)
    if (rd->entries[i].index > snap_index(w))
      rv = append_entry(w, &rd->entries[i]);
  if (rv == 0 && lift)
    rv = wal_append_hard_state(w, &rd->hard_state);
  return rv;
}

/* ---- open, stats, close ---- */

uint64_t wal_segment_bytes_min(uint64_t entry_size_bytes_max) {
  /* A fresh segment: its header, the hard state with its guard, and one
   * entry record. */
  return (uint64_t)WAL_SEG_HEADER_BYTES + WAL_REC_HEADER_BYTES +
         WAL_HARD_STATE_GUARD_BYTES + WAL_REC_HEADER_BYTES +
         WAL_ENTRY_HEADER_BYTES + entry_size_bytes_max;
}

static int options_check(const struct wal_options *o, char *err,
                         size_t err_size) {
  const char *why = NULL;
  uint64_t fresh_min = wal_segment_bytes_min(o->entry_size_bytes_max);
  if (o->dir == NULL || o->dir[0] == '\0')
    why = "no directory given";
  else if (strlen(o->dir) + 1 + 64 > WAL_IO_PATH_MAX)
    why = "directory path too long";
  else if (o->entry_size_bytes_max == 0 ||
           o->entry_size_bytes_max > WAL_SEGMENT_BYTES_LIMIT / 2)
    why = "entry_size_bytes_max out of range";
  else if (o->segment_size_bytes > WAL_SEGMENT_BYTES_LIMIT)
    why = "segment_size_bytes above WAL_SEGMENT_BYTES_LIMIT";
  else if (o->segment_size_bytes < fresh_min)
    why = "segment_size_bytes cannot hold an entry of entry_size_bytes_max";
  else if (o->snapshot_size_bytes_max > SIZE_MAX - WAL_SNAP_HEADER_BYTES)
    why = "snapshot_size_bytes_max out of range";
  else if (o->zero_ahead_bytes > WAL_SEGMENT_BYTES_LIMIT)
    why = "zero_ahead_bytes above WAL_SEGMENT_BYTES_LIMIT";
  if (why == NULL)
    return 0;
  if (err != NULL && err_size > 0)
    snprintf(err, err_size, "wal options: %s", why);
  return SABHA_EINVAL;
}

int wal_open(struct wal **out, const struct wal_options *opt,
             struct sabha_persisted *recovered, char *err, size_t err_size) {
  assert(out != NULL && opt != NULL && recovered != NULL);
  if (err != NULL && err_size > 0)
    err[0] = '\0';
  memset(recovered, 0, sizeof *recovered);
  int rv = options_check(opt, err, err_size);
  if (rv != 0)
    return rv;
  struct wal *w = calloc(1, sizeof *w);
  if (w == NULL) {
    if (err != NULL && err_size > 0)
      snprintf(err, err_size, "out of memory");
    return SABHA_ENOMEM;
  }
  if (opt->io != NULL)
    w->io = *opt->io;
  else
    wal_io_posix(&w->io);
  w->opt = *opt;
  snprintf(w->dir, sizeof w->dir, "%s", opt->dir);
  for (size_t n = strlen(w->dir); n > 1 && w->dir[n - 1] == '/'; n--)
    w->dir[n - 1] = '\0'; /* "data/" names the same place as "data" */
  w->opt.dir = w->dir;
  w->opt.io = NULL;
  w->fd = -1;
  w->sync_fd = -1;
  w->job_fd = -1;
  w->fd_to_close = -1;
  char note[WAL_ERRMSG_MAX] = "";
  rv = wal_recover(w, recovered, note, sizeof note);
  if (rv != 0) {
    if (err != NULL && err_size > 0)
      snprintf(err, err_size, "%s", w->errmsg);
    memset(recovered, 0, sizeof *recovered);
    wal_close(w);
    return rv;
  }
  assert(w->fd >= 0 && w->sync_fd >= 0 && w->n_segs > 0 && !w->failed);
  if (err != NULL && err_size > 0)
    snprintf(err, err_size, "%s", note);
  *out = w;
  return 0;
}

void wal_stats(const struct wal *w, struct wal_stats *st) {
  assert(w != NULL && st != NULL);
  *st = w->stats;
  st->snapshot_index = snap_index(w);
  st->first_index = st->snapshot_index + 1;
  st->last_index = w->last_index;
  st->entries = w->last_index - st->snapshot_index;
  st->segments = w->n_segs;
  st->bytes = w->buf_len;
  for (size_t i = 0; i < w->n_segs; i++)
    st->bytes += w->segs[i].size_bytes;
}

uint64_t wal_fsync_us_quantile(const struct wal_stats *st, double q) {
  assert(q > 0 && q <= 1);
  uint64_t total = 0;
  for (unsigned b = 0; b < WAL_FSYNC_HIST_BUCKETS; b++)
    total += st->fsync_us_hist[b];
  if (total == 0)
    return 0;
  uint64_t rank = stats_rank(total, q);
  uint64_t seen = 0;
  for (unsigned b = 0; b < WAL_FSYNC_HIST_BUCKETS; b++) {
    seen += st->fsync_us_hist[b];
    if (seen >= rank)
      return (uint64_t)1 << (b + 1);
  }
  return (uint64_t)1 << WAL_FSYNC_HIST_BUCKETS;
}

void wal_release_recovered(struct wal *w) {
  assert(w != NULL);
  free(w->rec_bytes);
  free(w->rec_entries);
  free(w->rec_snap);
  w->rec_bytes = NULL;
  w->rec_entries = NULL;
  w->rec_snap = NULL;
}

int wal_close_clean(struct wal *w) {
  if (w == NULL)
    return 0;
  /* Sync first, so that the CLOSE record's durable bytes cover every byte
   * before it: it is then the witness that makes damage anywhere in the
   * segment corruption (see RECOVERY), the last batch included. */
  int rv = wal_sync(w);
  if (rv == 0) {
    uint8_t p[WAL_CLOSE_BYTES];
    le_put_u64(p, w->last_index);
    rv = wal_append_record(w, WAL_REC_CLOSE, p, sizeof p, NULL, 0);
  }
  if (rv == 0)
    rv = wal_sync_active(w);
  if (rv == 0)
    rv = trim_zeros(w);
  assert(rv != 0 || w->durable_bytes == active(w)->size_bytes);
  wal_close(w);
  return rv;
}

void wal_close(struct wal *w) {
  if (w == NULL)
    return;
  if (w->fd_to_close >= 0)
    w->io.close(w->io.ctx, w->fd_to_close);
  w->fd_to_close = -1;
  w->job_running = false; /* the host waited for its job (wal.h) */
  wal_close_active(w);
  wal_release_recovered(w);
  free(w->buf);
  free(w->segs);
  free(w);
}
