/* bench_wal: how fast the write-ahead log makes entries durable on a real
 * disk, and what group commit buys.
 *
 * For each batch size (1, 16 and 128 entries of 100 bytes by default) it
 * opens a fresh WAL in a directory under /tmp, appends batches, and calls
 * wal_sync() once per batch, as a node does once per ready batch. The POSIX
 * I/O calls are wrapped so that every fdatasync is timed on its own; the
 * wal_sync() call (write plus fdatasync) is timed as well. Output is
 * `key: value` lines for scripts to collect; nothing is asserted (benchmarks
 * measure, tests decide). Each size runs for --seconds or --batches,
 * whichever ends first, after a few warm-up batches.
 *
 * Build (standalone, from the project root):
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc
 *      bench/bench_wal.c $(ls src/storage/[a-z]*.c) src/core/prng.c
 *      src/core/error.c -o bench_wal
 * (one line; every .c file of src/storage, the PRNG and the error table).
 *
 *   bench_wal [--dir PARENT] [--seconds S] [--batches N] [--entry-bytes N]
 *             [--seed N] [--keep] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "core/prng.h"
#include "core/stats.h"
#include "sabha/error.h"
#include "storage/wal.h"

#ifndef SABHA_COMMIT
#define SABHA_COMMIT "unknown"
#endif

#define BATCH_MAX 128
#define SAMPLES_MAX 200000
#define WARMUP_BATCHES 5

/* The POSIX calls, with every sync() timed into `samples`. */
struct timed_io {
  struct wal_io inner;
  double *samples_ms;
  size_t n_samples;
};

static struct timed_io g_timed; /* the bench's one instance */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int timed_sync(void *ctx, int fd, bool data_only) {
  struct timed_io *t = ctx;
  double t0 = now_ms();
  int rv = t->inner.sync(t->inner.ctx, fd, data_only);
  if (t->n_samples < SAMPLES_MAX)
    t->samples_ms[t->n_samples++] = now_ms() - t0;
  return rv;
}

/* The other calls pass straight through. */
static const struct wal_io *in(void *c) {
  return &((struct timed_io *)c)->inner;
}
static int t_open(void *c, const char *p, unsigned f, int *fd) {
  return in(c)->open(in(c)->ctx, p, f, fd);
}
static int t_close(void *c, int fd) {
  return in(c)->close(in(c)->ctx, fd);
}
static int t_read(void *c, int fd, uint64_t o, void *b, size_t n, size_t *r) {
  return in(c)->read(in(c)->ctx, fd, o, b, n, r);
}
static int t_write(void *c, int fd, uint64_t o, const void *b, size_t n) {
  return in(c)->write(in(c)->ctx, fd, o, b, n);
}
static int t_truncate(void *c, int fd, uint64_t n) {
  return in(c)->truncate(in(c)->ctx, fd, n);
}
static int t_size(void *c, int fd, uint64_t *n) {
  return in(c)->size(in(c)->ctx, fd, n);
}
static int t_rename(void *c, const char *a, const char *b) {
  return in(c)->rename(in(c)->ctx, a, b);
}
static int t_unlink(void *c, const char *p) {
  return in(c)->unlink(in(c)->ctx, p);
}
static int t_mkdir(void *c, const char *p) {
  return in(c)->mkdir(in(c)->ctx, p);
}
static int t_sync_dir(void *c, const char *p) {
  return in(c)->sync_dir(in(c)->ctx, p);
}
static int t_list(void *c, const char *p, int (*each)(void *, const char *),
                  void *arg) {
  return in(c)->list(in(c)->ctx, p, each, arg);
}
static uint64_t t_clock_ns(void *c) {
  return in(c)->clock_ns(in(c)->ctx);
}
static int64_t t_time_s(void *c) {
  return in(c)->time_s(in(c)->ctx);
}

static void timed_io_init(struct wal_io *io) {
  wal_io_posix(&g_timed.inner);
  *io = (struct wal_io){.ctx = &g_timed,
                        .open = t_open,
                        .close = t_close,
                        .read = t_read,
                        .write = t_write,
                        .sync = timed_sync,
                        .truncate = t_truncate,
                        .size = t_size,
                        .rename = t_rename,
                        .unlink = t_unlink,
                        .mkdir = t_mkdir,
                        .sync_dir = t_sync_dir,
                        .list = t_list,
                        .clock_ns = t_clock_ns,
                        .time_s = t_time_s};
}

static int double_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int remove_each(void *arg, const char *name) {
  char path[WAL_IO_PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", (const char *)arg, name);
  unlink(path);
  return 0;
}

struct result {
  uint64_t entries;
  uint64_t batches;
  uint64_t fsyncs;
  double wall_s;
  double fsync_ms_p50, fsync_ms_p99, fsync_ms_max;
  double sync_ms_p50, sync_ms_p99;
};

static int run(const char *parent, size_t batch, double seconds,
               uint64_t batches_max, uint32_t entry_bytes, uint64_t seed,
               bool keep, struct result *res, double *sync_ms) {
  char dir[WAL_IO_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/sabha-bench-wal-%d-b%zu", parent, (int)getpid(),
           batch);
  struct wal_io io;
  timed_io_init(&io);
  struct wal_options opt;
  wal_options_init(&opt, dir);
  opt.io = &io;
  struct wal *w = NULL;
  struct sabha_persisted p;
  char err[WAL_ERRMSG_MAX];
  int rv = wal_open(&w, &opt, &p, err, sizeof err);
  if (rv != 0) {
    fprintf(stderr, "bench_wal: %s: %s\n", sabha_strerror(rv), err);
    return 1;
  }
  uint8_t *data = malloc((size_t)entry_bytes * batch);
  if (data == NULL) {
    wal_close(w);
    return 1;
  }
  struct prng g;
  prng_seed(&g, seed);
  for (size_t i = 0; i < (size_t)entry_bytes * batch; i++)
    data[i] = (uint8_t)prng_next(&g);
  struct sabha_entry e[BATCH_MAX];
  uint64_t index = 1;
  size_t n_sync = 0;
  double start = 0;
  uint64_t fsyncs_before = 0;
  for (uint64_t b = 0; b < batches_max + WARMUP_BATCHES; b++) {
    if (b == WARMUP_BATCHES) {
      struct wal_stats st;
      wal_stats(w, &st);
      fsyncs_before = st.fsyncs;
      g_timed.n_samples = 0;
      start = now_ms();
    }
    for (size_t i = 0; i < batch; i++)
      e[i] = (struct sabha_entry){.index = index++,
                                  .term = 1,
                                  .type = SABHA_ENTRY_COMMAND,
                                  .size_bytes = entry_bytes,
                                  .data = data + i * entry_bytes};
    struct sabha_ready rd = {.entries = e, .n_entries = batch};
    double t0 = now_ms();
    rv = wal_append_ready(w, &rd);
    if (rv == 0)
      rv = wal_sync(w);
    if (rv != 0) {
      fprintf(stderr, "bench_wal: %s: %s\n", sabha_strerror(rv), wal_errmsg(w));
      break;
    }
    if (b >= WARMUP_BATCHES) {
      if (n_sync < SAMPLES_MAX)
        sync_ms[n_sync++] = now_ms() - t0;
      res->batches++;
      res->entries += batch;
      if (now_ms() - start >= seconds * 1e3)
        break;
    }
  }
  res->wall_s = (now_ms() - start) / 1e3;
  struct wal_stats st;
  wal_stats(w, &st);
  res->fsyncs = st.fsyncs - fsyncs_before;
  qsort(g_timed.samples_ms, g_timed.n_samples, sizeof(double), double_cmp);
  res->fsync_ms_p50 = stats_quantile(g_timed.samples_ms, g_timed.n_samples, 0.5);
  res->fsync_ms_p99 = stats_quantile(g_timed.samples_ms, g_timed.n_samples, 0.99);
  res->fsync_ms_max =
      g_timed.n_samples ? g_timed.samples_ms[g_timed.n_samples - 1] : 0;
  qsort(sync_ms, n_sync, sizeof(double), double_cmp);
  res->sync_ms_p50 = stats_quantile(sync_ms, n_sync, 0.5);
  res->sync_ms_p99 = stats_quantile(sync_ms, n_sync, 0.99);
  wal_close(w);
  free(data);
  if (!keep) {
    g_timed.inner.list(NULL, dir, remove_each, dir);
    rmdir(dir);
  }
  return rv == 0 ? 0 : 1;
}

static int usage(void) {
  fprintf(stderr, "usage: bench_wal [--dir PARENT] [--seconds S] "
                  "[--batches N] [--entry-bytes N] [--seed N] [--keep]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *parent = "/tmp";
  double seconds = 3.0;
  uint64_t batches_max = 100000;
  uint32_t entry_bytes = 100;
  uint64_t seed = 1;
  bool keep = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--keep") == 0) {
      keep = true;
      continue;
    }
    if (v == NULL)
      return usage();
    i++;
    if (strcmp(a, "--dir") == 0)
      parent = v;
    else if (strcmp(a, "--seconds") == 0)
      seconds = atof(v);
    else if (strcmp(a, "--batches") == 0)
      batches_max = strtoull(v, NULL, 10);
    else if (strcmp(a, "--entry-bytes") == 0)
      entry_bytes = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--seed") == 0)
      seed = strtoull(v, NULL, 10);
    else
      return usage();
  }
  if (seconds <= 0 || batches_max == 0 || entry_bytes == 0 ||
      entry_bytes > WAL_ENTRY_BYTES_DEFAULT)
    return usage();
  g_timed.samples_ms = malloc(SAMPLES_MAX * sizeof(double));
  double *sync_ms = malloc(SAMPLES_MAX * sizeof(double));
  if (g_timed.samples_ms == NULL || sync_ms == NULL) {
    fprintf(stderr, "bench_wal: out of memory\n");
    return 1;
  }
  struct utsname machine;
  if (uname(&machine) != 0)
    strcpy(machine.machine, "unknown");
  printf("bench: wal\n");
  printf("commit: %s\n", SABHA_COMMIT);
  printf("machine: %s %s %s\n", machine.sysname, machine.release,
         machine.machine);
  printf("dir: %s\n", parent);
  printf("seed: %" PRIu64 "\n", seed);
  printf("entry_bytes: %" PRIu32 "\n", entry_bytes);
  printf("seconds_per_batch_size: %g\n", seconds);
  const size_t sizes[3] = {1, 16, 128};
  int status = 0;
  for (int k = 0; k < 3; k++) {
    struct result r = {0};
    if (run(parent, sizes[k], seconds, batches_max, entry_bytes, seed, keep, &r,
            sync_ms) != 0) {
      status = 1;
      continue;
    }
    double s = r.wall_s > 0 ? r.wall_s : 1e-9;
    printf("batch_%zu_entries: %" PRIu64 "\n", sizes[k], r.entries);
    printf("batch_%zu_entries_per_s: %.0f\n", sizes[k], (double)r.entries / s);
    printf("batch_%zu_fsyncs_per_s: %.0f\n", sizes[k], (double)r.fsyncs / s);
    printf("batch_%zu_fsync_ms_p50: %.3f\n", sizes[k], r.fsync_ms_p50);
    printf("batch_%zu_fsync_ms_p99: %.3f\n", sizes[k], r.fsync_ms_p99);
    printf("batch_%zu_fsync_ms_max: %.3f\n", sizes[k], r.fsync_ms_max);
    printf("batch_%zu_sync_call_ms_p50: %.3f\n", sizes[k], r.sync_ms_p50);
    printf("batch_%zu_sync_call_ms_p99: %.3f\n", sizes[k], r.sync_ms_p99);
    fflush(stdout);
  }
  free(g_timed.samples_ms);
  free(sync_ms);
  return status;
}
