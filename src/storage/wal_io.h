/* The file-system calls the write-ahead log makes, behind a small vtable.
 *
 * Why a vtable: the WAL's promises are about what survives a crash, and a
 * crash cannot be tested against the real disk. Every file operation of the
 * WAL therefore goes through `struct wal_io`; wal_io_posix() fills one with
 * the real calls, and memfs.h provides an in-memory file system that models
 * the page cache (unsynced writes lost, torn or garbled at a simulated crash)
 * and fails the Nth call on request. Nothing in src/storage calls open(),
 * pwrite() or fsync() except io_posix.c.
 *
 * Conventions, shared by every implementation:
 *   - Functions return 0 on success or a negative errno value (-EIO, -ENOSPC,
 *     -ENOENT, -EEXIST...), never -1 with errno set.
 *   - Paths are complete ("dir/name"), at most WAL_IO_PATH_MAX bytes with the
 *     terminating NUL.
 *   - write() writes every byte or fails; a failed write may have written a
 *     prefix (the caller must treat the file's tail as unknown).
 *   - read() stops short only at end of file (*n_read says how far it got).
 *   - Durability follows POSIX, no more: written bytes reach the disk only
 *     with sync() of that file; a created, renamed or unlinked name only with
 *     sync_dir() of the directory that holds it. */
#ifndef SABHA_STORAGE_WAL_IO_H
#define SABHA_STORAGE_WAL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_IO_PATH_MAX 4096

enum wal_io_open_flags {
  WAL_IO_CREATE = 1u << 0, /* create the file (empty) if it does not exist */
  WAL_IO_TRUNC = 1u << 1,  /* empty an existing file */
};

struct wal_io {
  void *ctx; /* handed back as the first argument of every call */

  /* Opens `path` for reading and writing (flags: enum wal_io_open_flags).
   * 0 and *fd set, or -ENOENT when it is absent and not created. */
  int (*open)(void *ctx, const char *path, unsigned flags, int *fd);
  /* Releases `fd`. Never fails in a way the WAL could act on; returns 0 or
   * -errno for the record. */
  int (*close)(void *ctx, int fd);
  /* Reads up to `size` bytes at `offset`; *n_read < size only at EOF. */
  int (*read)(void *ctx, int fd, uint64_t offset, void *buf, size_t size,
              size_t *n_read);
  /* Writes all `size` bytes at `offset`, extending the file if needed. */
  int (*write)(void *ctx, int fd, uint64_t offset, const void *buf,
               size_t size);
  /* fdatasync (data_only) or fsync: every byte written to `fd`, and its
   * size, is durable when it returns 0. After a failure nothing about the
   * unsynced data is known (on Linux it may be gone for good, even if a
   * later sync succeeds). */
  int (*sync)(void *ctx, int fd, bool data_only);
  /* Sets the file's size (shrinking drops the bytes past it). Durable only
   * after sync(). */
  int (*truncate)(void *ctx, int fd, uint64_t size);
  /* The file's current size. */
  int (*size)(void *ctx, int fd, uint64_t *size);
  /* Atomically replaces `to` with `from` (same file system). */
  int (*rename)(void *ctx, const char *from, const char *to);
  int (*unlink)(void *ctx, const char *path);
  /* Creates a directory; -EEXIST if something has that name. */
  int (*mkdir)(void *ctx, const char *path);
  /* fsync of the directory `path`: the names created, renamed or unlinked
   * in it become durable. */
  int (*sync_dir)(void *ctx, const char *path);
  /* Optional (NULL: not offered). One call that makes every byte written to
   * each of `fds`, and its size, durable, as sync() of each would, when it
   * can do so more cheaply than one sync() per file (POSIX: one syncfs()
   * when they share a file system, so one journal commit and one cache
   * flush serve them all). -ENOTSUP when it cannot here (different file
   * systems, or a kernel whose syncfs() does not report write-back errors):
   * the caller then syncs each file. */
  int (*sync_many)(void *ctx, const int *fds, size_t n);
  /* Calls `each` once per name in directory `path` (not "." or ".."), in no
   * particular order. A nonzero return from `each` stops the listing and is
   * returned. */
  int (*list)(void *ctx, const char *path,
              int (*each)(void *arg, const char *name), void *arg);
  /* A monotonic clock in nanoseconds, for fsync latency. */
  uint64_t (*clock_ns)(void *ctx);
  /* Wall-clock seconds since the Unix epoch, for naming folders. */
  int64_t (*time_s)(void *ctx);
};

/* Fills `io` with the POSIX implementation (fdatasync, directory fsync through
 * an O_RDONLY descriptor, CLOCK_MONOTONIC). Its ctx is unused. */
void wal_io_posix(struct wal_io *io);

#endif
