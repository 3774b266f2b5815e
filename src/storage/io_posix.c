/* The real file-system calls behind struct wal_io (see wal_io.h).
 *
 * This is the only file in src/storage that touches the operating system.
 * It adds nothing to the calls except what the vtable's conventions ask:
 * retrying EINTR and short transfers, and turning -1/errno into -errno. */
/* syncfs() is a Linux call, declared only with _GNU_SOURCE. */
#define _GNU_SOURCE
#include "storage/wal_io.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static int posix_open(void *ctx, const char *path, unsigned flags, int *fd) {
  (void)ctx;
  assert(path != NULL && fd != NULL);
  int oflags = O_RDWR | O_CLOEXEC;
  if (flags & WAL_IO_CREATE)
    oflags |= O_CREAT;
  if (flags & WAL_IO_TRUNC)
    oflags |= O_TRUNC;
  int f;
  do
    f = open(path, oflags, 0644);
  while (f < 0 && errno == EINTR);
  if (f < 0)
    return -errno;
  *fd = f;
  return 0;
}

static int posix_close(void *ctx, int fd) {
  (void)ctx;
  /* No retry on EINTR: on Linux the descriptor is released either way. */
  return close(fd) == 0 ? 0 : -errno;
}

static int posix_read(void *ctx, int fd, uint64_t offset, void *buf,
                      size_t size, size_t *n_read) {
  (void)ctx;
  assert(buf != NULL || size == 0);
  size_t done = 0;
  while (done < size) {
    ssize_t n =
        pread(fd, (char *)buf + done, size - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      break; /* end of file */
    done += (size_t)n;
  }
  *n_read = done;
  return 0;
}

static int posix_write(void *ctx, int fd, uint64_t offset, const void *buf,
                       size_t size) {
  (void)ctx;
  assert(buf != NULL || size == 0);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, (const char *)buf + done, size - done,
                       (off_t)(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO; /* no progress and no error: give up rather than spin */
    done += (size_t)n;
  }
  return 0;
}

static int posix_sync(void *ctx, int fd, bool data_only) {
  (void)ctx;
  /* No EINTR retry: a sync that was interrupted may have lost the error it
   * would have reported, so the caller treats it as a failure. */
  int rv = data_only ? fdatasync(fd) : fsync(fd);
  return rv == 0 ? 0 : -errno;
}

/* syncfs() reports write-back errors (EIO from a page of any of our files
 * that failed to reach the disk) only since Linux 5.8; before, it returned 0
 * whatever happened, which would acknowledge lost data. */
static bool syncfs_reports_errors(void) {
  /* Asked each time (a microsecond beside the sync): no state to share
   * between the loop and the disk thread. */
  struct utsname u;
  unsigned major = 0, minor = 0;
  return uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2 &&
         (major > 5 || (major == 5 && minor >= 8));
}

static int posix_sync_many(void *ctx, const int *fds, size_t n) {
  (void)ctx;
  assert(n > 0);
  if (!syncfs_reports_errors())
    return -ENOTSUP;
  struct stat first;
  if (fstat(fds[0], &first) != 0)
    return -errno;
  for (size_t i = 1; i < n; i++) {
    struct stat st;
    if (fstat(fds[i], &st) != 0)
      return -errno;
    if (st.st_dev != first.st_dev)
      return -ENOTSUP;
  }
  /* As posix_sync: no EINTR retry. */
  return syncfs(fds[0]) == 0 ? 0 : -errno;
}

static int posix_truncate(void *ctx, int fd, uint64_t size) {
  (void)ctx;
  int rv;
  do
    rv = ftruncate(fd, (off_t)size);
  while (rv < 0 && errno == EINTR);
  return rv == 0 ? 0 : -errno;
}

static int posix_size(void *ctx, int fd, uint64_t *size) {
  (void)ctx;
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -errno;
  assert(st.st_size >= 0);
  *size = (uint64_t)st.st_size;
  return 0;
}

static int posix_rename(void *ctx, const char *from, const char *to) {
  (void)ctx;
  return rename(from, to) == 0 ? 0 : -errno;
}

static int posix_unlink(void *ctx, const char *path) {
  (void)ctx;
  return unlink(path) == 0 ? 0 : -errno;
}

static int posix_mkdir(void *ctx, const char *path) {
  (void)ctx;
  return mkdir(path, 0755) == 0 ? 0 : -errno;
}

static int posix_sync_dir(void *ctx, const char *path) {
  (void)ctx;
  int fd;
  do
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return -errno;
  int rv = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rv;
}

static int posix_list(void *ctx, const char *path,
                      int (*each)(void *arg, const char *name), void *arg) {
  (void)ctx;
  DIR *d = opendir(path);
  if (d == NULL)
    return -errno;
  int rv = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      rv = errno != 0 ? -errno : 0;
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    rv = each(arg, de->d_name);
    if (rv != 0)
      break;
  }
  closedir(d);
  return rv;
}

static uint64_t posix_clock_ns(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t posix_time_s(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}

void wal_io_posix(struct wal_io *io) {
  assert(io != NULL);
  memset(io, 0, sizeof *io);
  io->open = posix_open;
  io->close = posix_close;
  io->read = posix_read;
  io->write = posix_write;
  io->sync = posix_sync;
  io->truncate = posix_truncate;
  io->size = posix_size;
  io->rename = posix_rename;
  io->unlink = posix_unlink;
  io->mkdir = posix_mkdir;
  io->sync_dir = posix_sync_dir;
  io->sync_many = posix_sync_many;
  io->list = posix_list;
  io->clock_ns = posix_clock_ns;
  io->time_s = posix_time_s;
}
