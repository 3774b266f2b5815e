/* memfs: an in-memory file system behind struct wal_io that crashes the way
 * a real machine does, and fails calls on request. It exists to test the
 * write-ahead log's crash recovery: the WAL's claims ("what was fsynced is
 * recovered exactly; damage to what was not is repaired, never reported as
 * corruption") can only be checked by crashing at every point of a workload,
 * which a real disk cannot do.
 *
 * The model (POSIX's promises and nothing more):
 *   - Each file has durable bytes and, on top of them, the writes and
 *     truncations made since its last sync(), kept in order ("the page
 *     cache"). Reads see everything; sync() makes all of it durable.
 *   - Names are durable separately: create, rename, unlink and mkdir are
 *     pending until sync_dir() of a directory they touch, which makes that
 *     operation and every pending one before it durable (metadata reaches
 *     the disk in order, as a journal writes it). A file's sync does not make
 *     its name durable.
 *   - A simulated crash (memfs_crash) keeps what is durable. For pending name
 *     operations it keeps a prefix (none in MEMFS_CRASH_DROP). For each
 *     file's unsynced data, it applies one of the modes below, with choices
 *     drawn from the seeded PRNG, so a seed reproduces the crash exactly.
 *   - A failed sync() (memfs_fail_at on a sync) behaves like Linux after
 *     "fsyncgate": the unsynced data stays readable but will never reach the
 *     disk, even when a later sync() succeeds.
 *   - Which sync() reports that failure follows Linux (4.13 on, "errseq"):
 *     the file keeps a count of failed write-backs, and each descriptor
 *     (each open(), as each open file description in the kernel) the count
 *     it last reported, sampled at open. A sync() on a descriptor whose
 *     count is behind the file's writes what is cached, then fails with the
 *     error and catches up: every descriptor open at the time of a failure
 *     reports it once, the one whose sync failed included, and a later
 *     sync() through the same descriptor succeeds over the lost bytes. A
 *     descriptor opened after a failure does not report it (Linux would,
 *     had no sync() reported it yet; here the failing sync() always has).
 *     A crash forgets the errors with the page cache.
 *
 * Injection points. Every call that changes something (write, sync,
 * sync_dir, truncate, rename, unlink, mkdir, open that creates or empties a
 * file) is counted, from 1. memfs_crash_at(n) makes call n the moment the
 * machine dies: a write or name change in progress still lands in the page
 * cache (a crash mode then decides its fate), a sync does not happen, and
 * that call and every later one fail with -EIO until memfs_crash().
 * memfs_fail_at(n, err) makes call n alone fail with -err and no effect.
 *
 * Limits: MEMFS_FILES_MAX files and directories, MEMFS_PATH_MAX bytes per
 * path, MEMFS_FDS_MAX open descriptors, MEMFS_PENDING_NAMES_MAX unsynced name
 * operations; beyond them calls fail with -ENOSPC, -ENAMETOOLONG or -EMFILE.
 * Not thread-safe. */
#ifndef SABHA_STORAGE_MEMFS_H
#define SABHA_STORAGE_MEMFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/wal_io.h"

#define MEMFS_FILES_MAX 256
#define MEMFS_PATH_MAX 256
#define MEMFS_FDS_MAX 256 /* a node of the simulator: 64 logs of 3 */
#define MEMFS_PENDING_NAMES_MAX 256

/* What happens at a crash to data written since the last sync of a file. */
enum memfs_crash_mode {
  MEMFS_CRASH_DROP = 0, /* all of it is lost */
  MEMFS_CRASH_PREFIX,   /* the first k writes survive, whole */
  MEMFS_CRASH_TEAR,     /* the first k survive, and a prefix of write k+1 */
  MEMFS_CRASH_GARBLE,   /* the first k survive, with some bytes garbled */
  MEMFS_CRASH_REORDER,  /* each write survives or not on its own: holes */
  MEMFS_CRASH_MODES
};

const char *memfs_crash_mode_name(enum memfs_crash_mode mode);

struct memfs;

struct memfs_counts {
  uint64_t calls;  /* injection points so far (see above) */
  uint64_t writes; /* of which write() */
  uint64_t syncs;  /* of which sync() and sync_dir() */
};

/* Creates an empty file system whose crash choices come from `seed`.
 * Returns 0 or SABHA_ENOMEM. */
int memfs_new(struct memfs **out, uint64_t seed);
void memfs_free(struct memfs *fs);

/* Fills `io` with this file system's calls. The clock starts at 0 and moves
 * only when a sync() or sync_dir() completes, by `sync_latency_ns` (default
 * 1 ms), so latency figures in tests are exact. */
void memfs_io(struct memfs *fs, struct wal_io *io);
void memfs_set_sync_latency(struct memfs *fs, uint64_t sync_latency_ns);

struct memfs_counts memfs_counts(const struct memfs *fs);

/* Arms a crash at injection point `call_n` (>= 1; 0 disarms). */
void memfs_crash_at(struct memfs *fs, uint64_t call_n);
/* Makes injection point `call_n` fail with -err (err > 0; call_n 0
 * disarms). */
void memfs_fail_at(struct memfs *fs, uint64_t call_n, int err);
/* True once an armed crash point has been reached. */
bool memfs_dead(const struct memfs *fs);

/* The machine restarts: keeps durable data, treats unsynced data by `mode`,
 * closes every descriptor and disarms the injections. */
void memfs_crash(struct memfs *fs, enum memfs_crash_mode mode);

/* Test helpers that act on the medium directly (durable and cached bytes
 * alike), bypassing the counters. Each returns 0 or -ENOENT / -EINVAL. */
/* XORs the byte at `offset` of `path` with `mask` (bit rot). */
int memfs_corrupt(struct memfs *fs, const char *path, uint64_t offset,
                  uint8_t mask);
/* Shortens `path` to `size` bytes (a lost tail). */
int memfs_cut(struct memfs *fs, const char *path, uint64_t size);
/* Creates or replaces `path` with durable contents `data` (its directory
 * must exist). */
int memfs_put(struct memfs *fs, const char *path, const void *data,
              size_t size);
/* The size of `path` as a reader sees it. */
int memfs_size(const struct memfs *fs, const char *path, uint64_t *size);
bool memfs_exists(const struct memfs *fs, const char *path);

#endif
