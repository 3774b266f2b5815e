/* The snapshot file: the state machine's bytes at some log index, kept
 * beside the segments as one file that is replaced whole.
 *
 * Why a file of its own and not records in the log: a snapshot can be far
 * larger than any record, it replaces rather than adds, and the segments it
 * covers are deleted once it is safe. "Replaced whole" is the classic
 * sequence: write snapshot.tmp, fsync it, rename it over snapshot, fsync the
 * directory. A crash at any point leaves either the old snapshot or the new
 * one, complete; a leftover snapshot.tmp is deleted by recovery. The header
 * (see wal.h) carries the index and term and a CRC of the data, so a
 * damaged snapshot is reported, never installed. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/wal_internal.h"

static void header_encode(uint8_t *h, const struct sabha_snapshot_meta *m,
                          const void *data, size_t size_bytes) {
  memcpy(h, WAL_SNAP_MAGIC, 8);
  le_put_u32(h + 8, WAL_SNAP_VERSION);
  le_put_u32(h + 12, WAL_SNAP_HEADER_BYTES);
  le_put_u64(h + 16, m->index);
  le_put_u64(h + 24, m->term);
  le_put_u64(h + 32, size_bytes);
  le_put_u32(h + 40, wal_crc32c(0, data, size_bytes));
  le_put_u32(h + 44, wal_crc32c(0, h, 44));
}

int wal_snapshot_file_write(const struct wal_io *io, const char *tmp,
                            const struct sabha_snapshot_meta *meta,
                            const void *data, size_t size_bytes,
                            const char **what, uint64_t *fsync_ns) {
  assert(meta->index >= 1);
  assert(data != NULL || size_bytes == 0);
  int fd;
  *what = "create";
  int rv = io->open(io->ctx, tmp, WAL_IO_CREATE | WAL_IO_TRUNC, &fd);
  if (rv != 0)
    return rv;
  uint8_t h[WAL_SNAP_HEADER_BYTES];
  header_encode(h, meta, data, size_bytes);
  assert(le_get_u64(h + 16) == meta->index && le_get_u64(h + 32) == size_bytes);
  *what = "write";
  rv = io->write(io->ctx, fd, 0, h, sizeof h);
  if (rv == 0 && size_bytes > 0)
    rv = io->write(io->ctx, fd, sizeof h, data, size_bytes);
  if (rv == 0) {
    *what = "fsync";
    uint64_t t0 = io->clock_ns(io->ctx);
    rv = io->sync(io->ctx, fd, false);
    *fsync_ns = io->clock_ns(io->ctx) - t0;
  }
  io->close(io->ctx, fd);
  return rv;
}

int wal_snapshot_rename(struct wal *w, const char *tmp) {
  const char *dst = wal_path2(w, WAL_SNAP_NAME);
  int rv = w->io.rename(w->io.ctx, tmp, dst);
  if (rv != 0)
    return wal_io_error(w, rv, "rename to snapshot", tmp);
  return wal_sync_dir(w);
}

int wal_snapshot_write(struct wal *w, const struct sabha_snapshot_meta *meta,
                       const void *data, size_t size_bytes) {
  if (w->failed)
    return w->failed;
  const char *tmp = wal_path(w, WAL_SNAP_TMP_NAME);
  const char *what;
  uint64_t ns = 0;
  int rv = wal_snapshot_file_write(&w->io, tmp, meta, data, size_bytes, &what,
                                   &ns);
  if (rv != 0)
    return wal_io_error(w, rv, what, tmp);
  wal_fsync_latency(w, ns);
  return wal_snapshot_rename(w, tmp);
}

static int corrupt(struct wal *w, const char *path, uint64_t offset,
                   const char *why) {
  return wal_error(w, SABHA_ECORRUPT, "%s: offset %llu: %s", path,
                   (unsigned long long)offset, why);
}

/* Reads the checked header; 0 or an error with the message set. */
static int read_header(struct wal *w, int fd, const char *path,
                       struct sabha_snapshot_meta *meta, uint64_t *size,
                       uint32_t *crc) {
  uint64_t file_size;
  int rv = w->io.size(w->io.ctx, fd, &file_size);
  if (rv != 0)
    return wal_io_error(w, rv, "stat", path);
  uint8_t h[WAL_SNAP_HEADER_BYTES];
  size_t n = 0;
  if (file_size >= sizeof h) {
    rv = w->io.read(w->io.ctx, fd, 0, h, sizeof h, &n);
    if (rv != 0)
      return wal_io_error(w, rv, "read", path);
  }
  if (n < sizeof h)
    return corrupt(w, path, 0, "incomplete snapshot header");
  if (memcmp(h, WAL_SNAP_MAGIC, 8) != 0 ||
      wal_crc32c(0, h, 44) != le_get_u32(h + 44))
    return corrupt(w, path, 0, "bad snapshot header");
  if (le_get_u32(h + 8) != WAL_SNAP_VERSION ||
      le_get_u32(h + 12) != WAL_SNAP_HEADER_BYTES)
    return wal_error(w, SABHA_EINVAL,
                     "%s: written in a format version this build does not "
                     "read (%u)",
                     path, le_get_u32(h + 8));
  meta->index = le_get_u64(h + 16);
  meta->term = le_get_u64(h + 24);
  *size = le_get_u64(h + 32);
  *crc = le_get_u32(h + 40);
  if (meta->index == 0)
    return corrupt(w, path, 16, "snapshot at index 0");
  if (*size != file_size - sizeof h)
    return corrupt(w, path, 32, "snapshot size disagrees with the file's");
  return 0;
}

/* Opens the snapshot file and reads its header; *fd stays open (-1 when
 * the open failed). */
static int open_header(struct wal *w, int *fd, const char **path,
                       struct sabha_snapshot_meta *meta, uint64_t *size,
                       uint32_t *crc) {
  *path = wal_path(w, WAL_SNAP_NAME);
  *size = 0;
  *crc = 0;
  int rv = w->io.open(w->io.ctx, *path, 0, fd);
  if (rv != 0) {
    *fd = -1;
    return wal_io_error(w, rv, "open", *path);
  }
  return read_header(w, *fd, *path, meta, size, crc);
}

int wal_snapshot_peek(struct wal *w, struct sabha_snapshot_meta *meta) {
  int fd;
  const char *path;
  uint64_t size;
  uint32_t crc;
  int rv = open_header(w, &fd, &path, meta, &size, &crc);
  if (fd >= 0)
    w->io.close(w->io.ctx, fd);
  return rv;
}

int wal_snapshot_read(struct wal *w, struct sabha_snapshot_meta *meta,
                      uint8_t **data, size_t *size_bytes) {
  *data = NULL;
  *size_bytes = 0;
  int fd;
  const char *path;
  uint64_t size;
  uint32_t crc;
  int rv = open_header(w, &fd, &path, meta, &size, &crc);
  if (fd < 0)
    return rv;
  if (rv == 0 && size > w->opt.snapshot_size_bytes_max)
    rv = wal_error(w, SABHA_ETOOBIG,
                   "%s: %llu bytes, above snapshot_size_bytes_max (%llu)", path,
                   (unsigned long long)size,
                   (unsigned long long)w->opt.snapshot_size_bytes_max);
  uint8_t *buf = NULL;
  if (rv == 0 && size > 0) {
    buf = malloc((size_t)size);
    if (buf == NULL)
      rv = wal_error(w, SABHA_ENOMEM, "out of memory (snapshot)");
  }
  if (rv == 0 && size > 0) {
    size_t n = 0;
    rv =
        w->io.read(w->io.ctx, fd, WAL_SNAP_HEADER_BYTES, buf, (size_t)size, &n);
    if (rv != 0)
      rv = wal_io_error(w, rv, "read", path);
    else if (n != size)
      rv = corrupt(w, path, WAL_SNAP_HEADER_BYTES + n, "snapshot cut short");
  }
  if (rv == 0 && wal_crc32c(0, buf, (size_t)size) != crc)
    rv = corrupt(w, path, WAL_SNAP_HEADER_BYTES,
                 "snapshot data checksum mismatch");
  w->io.close(w->io.ctx, fd);
  if (rv != 0) {
    free(buf);
    return rv;
  }
  assert(meta->index >= 1);
  *data = buf;
  *size_bytes = (size_t)size;
  return 0;
}
