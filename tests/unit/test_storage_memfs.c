/* Tests of memfs, the crash-modelling file system the WAL's crash tests
 * stand on: if it were kinder than POSIX (keeping unsynced data, making
 * names durable without a directory fsync), those tests would prove
 * nothing. Each test states one rule of the model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/memfs.h"

static int failures;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)
#define RUN(test)                                                              \
  do {                                                                         \
    int before_ = failures;                                                    \
    test();                                                                    \
    printf("%s %s\n", failures == before_ ? "ok  " : "FAIL", #test);           \
  } while (0)

struct fx {
  struct memfs *fs;
  struct wal_io io;
};

static void fx_init(struct fx *f, uint64_t seed) {
  if (memfs_new(&f->fs, seed) != 0)
    abort();
  memfs_io(f->fs, &f->io);
}

static int open_file(struct fx *f, const char *path, unsigned flags) {
  int fd = -1;
  int rv = f->io.open(f->io.ctx, path, flags, &fd);
  return rv == 0 ? fd : rv;
}

static int put_str(struct fx *f, int fd, uint64_t off, const char *s) {
  return f->io.write(f->io.ctx, fd, off, s, strlen(s));
}

/* Reads `path` whole into buf (NUL-terminated); -errno if absent. */
static int slurp(struct fx *f, const char *path, char *buf, size_t cap) {
  int fd = open_file(f, path, 0);
  if (fd < 0)
    return fd;
  size_t n = 0;
  int rv = f->io.read(f->io.ctx, fd, 0, buf, cap - 1, &n);
  f->io.close(f->io.ctx, fd);
  buf[n] = '\0';
  return rv == 0 ? (int)n : rv;
}

static void memfs_synced_data_survives_every_crash_mode(void) {
  for (int mode = 0; mode < MEMFS_CRASH_MODES; mode++) {
    struct fx f;
    fx_init(&f, 7 + (uint64_t)mode);
    CHECK(f.io.mkdir(f.io.ctx, "d") == 0);
    int fd = open_file(&f, "d/a", WAL_IO_CREATE);
    CHECK(fd >= 0);
    CHECK(put_str(&f, fd, 0, "durable") == 0);
    CHECK(f.io.sync(f.io.ctx, fd, true) == 0);
    CHECK(f.io.sync_dir(f.io.ctx, "d") == 0);
    CHECK(f.io.sync_dir(f.io.ctx, ".") == 0);
    CHECK(put_str(&f, fd, 7, "+unsynced") == 0);
    memfs_crash(f.fs, (enum memfs_crash_mode)mode);
    char buf[64];
    int n = slurp(&f, "d/a", buf, sizeof buf);
    CHECK(n >= 7 && memcmp(buf, "durable", 7) == 0);
    if (mode == MEMFS_CRASH_DROP)
      CHECK(n == 7);
    memfs_free(f.fs);
  }
}

static void memfs_names_need_a_directory_fsync(void) {
  struct fx f;
  fx_init(&f, 1);
  int fd = open_file(&f, "a", WAL_IO_CREATE);
  CHECK(fd >= 0);
  CHECK(put_str(&f, fd, 0, "x") == 0);
  CHECK(f.io.sync(f.io.ctx, fd, false) == 0); /* data, not the name */
  memfs_crash(f.fs, MEMFS_CRASH_DROP);
  CHECK(!memfs_exists(f.fs, "a"));

  fd = open_file(&f, "b", WAL_IO_CREATE);
  CHECK(fd >= 0);
  CHECK(put_str(&f, fd, 0, "old") == 0);
  CHECK(f.io.sync(f.io.ctx, fd, false) == 0);
  CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
  int tmp = open_file(&f, "b.tmp", WAL_IO_CREATE);
  CHECK(put_str(&f, tmp, 0, "new") == 0);
  CHECK(f.io.sync(f.io.ctx, tmp, false) == 0);
  CHECK(f.io.rename(f.io.ctx, "b.tmp", "b") == 0);
  char buf[16];
  CHECK(slurp(&f, "b", buf, sizeof buf) == 3 && strcmp(buf, "new") == 0);
  memfs_crash(f.fs, MEMFS_CRASH_DROP); /* the rename was never synced */
  CHECK(slurp(&f, "b", buf, sizeof buf) == 3 && strcmp(buf, "old") == 0);

  tmp = open_file(&f, "b.tmp", WAL_IO_CREATE);
  CHECK(put_str(&f, tmp, 0, "new") == 0);
  CHECK(f.io.sync(f.io.ctx, tmp, false) == 0);
  CHECK(f.io.rename(f.io.ctx, "b.tmp", "b") == 0);
  CHECK(f.io.sync_dir(f.io.ctx, "/") == 0);
  memfs_crash(f.fs, MEMFS_CRASH_DROP);
  CHECK(slurp(&f, "b", buf, sizeof buf) == 3 && strcmp(buf, "new") == 0);
  CHECK(!memfs_exists(f.fs, "b.tmp"));
  memfs_free(f.fs);
}

static void memfs_failed_fsync_loses_data_for_good(void) {
  struct fx f;
  fx_init(&f, 2);
  int fd = open_file(&f, "a", WAL_IO_CREATE);
  CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
  CHECK(put_str(&f, fd, 0, "lost") == 0);
  uint64_t next = memfs_counts(f.fs).calls + 1;
  memfs_fail_at(f.fs, next, EIO);
  CHECK(f.io.sync(f.io.ctx, fd, true) == -EIO);
  char buf[16];
  CHECK(slurp(&f, "a", buf, sizeof buf) == 4); /* still readable */
  CHECK(f.io.sync(f.io.ctx, fd, true) == 0);   /* and "synced" */
  memfs_crash(f.fs, MEMFS_CRASH_DROP);
  CHECK(slurp(&f, "a", buf, sizeof buf) == 0); /* yet gone */
  memfs_free(f.fs);
}

/* errseq: a failed write-back is reported once through every descriptor
 * that was open when it happened, not once per file. A second description
 * of the file (a disk thread's, say) that saw the failure does not make the
 * first one's next sync succeed over the lost bytes. */
static void memfs_failed_fsync_reported_once_per_descriptor(void) {
  struct fx f;
  fx_init(&f, 6);
  int a = open_file(&f, "a", WAL_IO_CREATE);
  CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
  int b = open_file(&f, "a", 0);
  CHECK(a >= 0 && b >= 0 && a != b);
  CHECK(put_str(&f, a, 0, "lost") == 0);
  memfs_fail_at(f.fs, memfs_counts(f.fs).calls + 1, EIO);
  CHECK(f.io.sync(f.io.ctx, b, true) == -EIO); /* b's sync fails */
  CHECK(f.io.sync(f.io.ctx, b, true) == 0);    /* b has reported it */
  int c = open_file(&f, "a", 0);               /* opened after: seen */
  CHECK(put_str(&f, a, 4, "kept") == 0);
  /* a was open at the failure: its sync writes "kept" but reports it. */
  CHECK(f.io.sync(f.io.ctx, a, true) == -EIO);
  CHECK(f.io.sync(f.io.ctx, a, true) == 0);
  CHECK(f.io.sync(f.io.ctx, c, true) == 0);
  memfs_crash(f.fs, MEMFS_CRASH_DROP);
  char buf[16];
  CHECK(slurp(&f, "a", buf, sizeof buf) == 8);
  CHECK(memcmp(buf, "\0\0\0\0kept", 8) == 0);

  /* A descriptor opened after a failure does not report it. */
  a = open_file(&f, "a", 0);
  CHECK(put_str(&f, a, 0, "gone") == 0);
  memfs_fail_at(f.fs, memfs_counts(f.fs).calls + 1, ENOSPC);
  CHECK(f.io.sync(f.io.ctx, a, true) == -ENOSPC);
  b = open_file(&f, "a", 0);
  CHECK(f.io.sync(f.io.ctx, b, true) == 0);
  memfs_free(f.fs);
}

static void memfs_failed_write_changes_nothing(void) {
  struct fx f;
  fx_init(&f, 3);
  int fd = open_file(&f, "a", WAL_IO_CREATE);
  memfs_fail_at(f.fs, memfs_counts(f.fs).calls + 1, ENOSPC);
  CHECK(put_str(&f, fd, 0, "nope") == -ENOSPC);
  uint64_t size = 1;
  CHECK(f.io.size(f.io.ctx, fd, &size) == 0 && size == 0);
  CHECK(put_str(&f, fd, 0, "yes") == 0); /* only that one call failed */
  memfs_free(f.fs);
}

static void memfs_crash_point_kills_every_later_call(void) {
  struct fx f;
  fx_init(&f, 4);
  int fd = open_file(&f, "a", WAL_IO_CREATE);
  CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
  struct memfs_counts c = memfs_counts(f.fs);
  CHECK(c.calls == 2 && c.syncs == 1 && c.writes == 0);
  memfs_crash_at(f.fs, 4);
  CHECK(put_str(&f, fd, 0, "one") == 0);    /* call 3 */
  CHECK(put_str(&f, fd, 3, "two") == -EIO); /* call 4: the crash */
  CHECK(memfs_dead(f.fs));
  CHECK(f.io.sync(f.io.ctx, fd, true) == -EIO);
  char buf[16];
  CHECK(slurp(&f, "a", buf, sizeof buf) == -EIO);
  CHECK(memfs_counts(f.fs).calls == 4);
  memfs_crash(f.fs, MEMFS_CRASH_PREFIX);
  CHECK(!memfs_dead(f.fs));
  int n = slurp(&f, "a", buf, sizeof buf);
  /* Whole writes, in order: nothing, "one" or "onetwo". */
  CHECK(n == 0 || strcmp(buf, "one") == 0 || strcmp(buf, "onetwo") == 0);
  memfs_free(f.fs);
}

/* Over many seeds, each mode produces exactly the outcomes it promises. */
static void memfs_crash_modes_do_what_they_say(void) {
  const char *w1 = "AAAAAAAA", *w2 = "BBBBBBBB";
  int seen_tear = 0, seen_hole = 0, seen_garble = 0;
  for (int mode = 0; mode < MEMFS_CRASH_MODES; mode++) {
    for (uint64_t seed = 0; seed < 200; seed++) {
      struct fx f;
      fx_init(&f, seed);
      int fd = open_file(&f, "a", WAL_IO_CREATE);
      CHECK(put_str(&f, fd, 0, "S") == 0);
      CHECK(f.io.sync(f.io.ctx, fd, true) == 0);
      CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
      CHECK(put_str(&f, fd, 1, w1) == 0);
      CHECK(put_str(&f, fd, 9, w2) == 0);
      memfs_crash(f.fs, (enum memfs_crash_mode)mode);
      char buf[32];
      int n = slurp(&f, "a", buf, sizeof buf);
      CHECK(n >= 1 && buf[0] == 'S');
      bool exact_prefix = (n == 1) || (n == 9 && memcmp(buf + 1, w1, 8) == 0) ||
                          (n == 17 && memcmp(buf + 1, w1, 8) == 0 &&
                           memcmp(buf + 9, w2, 8) == 0);
      switch (mode) {
      case MEMFS_CRASH_DROP:
        CHECK(n == 1);
        break;
      case MEMFS_CRASH_PREFIX:
        CHECK(exact_prefix);
        break;
      case MEMFS_CRASH_TEAR:
        CHECK(n < 17);
        if (!exact_prefix)
          seen_tear++;
        break;
      case MEMFS_CRASH_GARBLE:
        CHECK(n == 1 || n == 9 || n == 17);
        if (!exact_prefix)
          seen_garble++;
        break;
      case MEMFS_CRASH_REORDER:
        CHECK(n == 1 || n == 9 || n == 17);
        if (n == 17 && buf[1] == 0)
          seen_hole++;
        break;
      default:
        break;
      }
      memfs_free(f.fs);
    }
  }
  CHECK(seen_tear > 0 && seen_hole > 0 && seen_garble > 0);
}

static void memfs_same_seed_same_crash(void) {
  char out[2][32];
  int n[2];
  for (int run = 0; run < 2; run++) {
    struct fx f;
    fx_init(&f, 99);
    int fd = open_file(&f, "a", WAL_IO_CREATE);
    CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
    for (int i = 0; i < 8; i++)
      CHECK(put_str(&f, fd, (uint64_t)i * 4, "wxyz") == 0);
    memfs_crash(f.fs, MEMFS_CRASH_GARBLE);
    n[run] = slurp(&f, "a", out[run], sizeof out[run]);
    memfs_free(f.fs);
  }
  CHECK(n[0] == n[1] && memcmp(out[0], out[1], (size_t)n[0]) == 0);
}

static int count_name(void *arg, const char *name) {
  (void)name;
  (*(int *)arg)++;
  return 0;
}

static void memfs_lists_one_directory(void) {
  struct fx f;
  fx_init(&f, 5);
  CHECK(f.io.mkdir(f.io.ctx, "d") == 0);
  CHECK(f.io.mkdir(f.io.ctx, "d") == -EEXIST);
  CHECK(f.io.mkdir(f.io.ctx, "d/e") == 0);
  CHECK(open_file(&f, "d/x", WAL_IO_CREATE) >= 0);
  CHECK(open_file(&f, "d/e/y", WAL_IO_CREATE) >= 0);
  CHECK(open_file(&f, "nope/z", WAL_IO_CREATE) == -ENOENT);
  int n = 0;
  CHECK(f.io.list(f.io.ctx, "d", count_name, &n) == 0 && n == 2);
  n = 0;
  CHECK(f.io.list(f.io.ctx, "d/e", count_name, &n) == 0 && n == 1);
  CHECK(f.io.rename(f.io.ctx, "d/x", "d/e/x") == 0);
  n = 0;
  CHECK(f.io.list(f.io.ctx, "d/e", count_name, &n) == 0 && n == 2);
  memfs_free(f.fs);
}

/* A file unlinked, or replaced by a rename, is gone for good once the
 * directory is synced: a node that rotates segments and snapshots for hours
 * without a crash must not run out of inodes (MEMFS_FILES_MAX). */
static void memfs_synced_unlink_and_rename_free_the_file(void) {
  struct fx f;
  fx_init(&f, 3);
  for (int i = 0; i < 3 * MEMFS_FILES_MAX; i++) {
    int fd = open_file(&f, "seg", WAL_IO_CREATE);
    CHECK(fd >= 0);
    CHECK(f.io.close(f.io.ctx, fd) == 0);
    int tmp = open_file(&f, "snap.tmp", WAL_IO_CREATE);
    CHECK(tmp >= 0);
    CHECK(put_str(&f, tmp, 0, "s") == 0);
    CHECK(f.io.close(f.io.ctx, tmp) == 0);
    CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
    CHECK(f.io.rename(f.io.ctx, "snap.tmp", "snap") == 0);
    CHECK(f.io.unlink(f.io.ctx, "seg") == 0);
    CHECK(f.io.sync_dir(f.io.ctx, "") == 0);
  }
  memfs_free(f.fs);
}

int main(void) {
  RUN(memfs_synced_data_survives_every_crash_mode);
  RUN(memfs_names_need_a_directory_fsync);
  RUN(memfs_failed_fsync_loses_data_for_good);
  RUN(memfs_failed_write_changes_nothing);
  RUN(memfs_failed_fsync_reported_once_per_descriptor);
  RUN(memfs_crash_point_kills_every_later_call);
  RUN(memfs_crash_modes_do_what_they_say);
  RUN(memfs_same_seed_same_crash);
  RUN(memfs_lists_one_directory);
  RUN(memfs_synced_unlink_and_rename_free_the_file);
  return failures == 0 ? 0 : 1;
}
