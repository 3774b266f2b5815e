/* Behaviour tests of the write-ahead log (src/storage/wal.h), one rule per
 * test: what survives a power cut, how overwrites, truncations, segments
 * and snapshots replay, how damage is told apart from a torn tail and
 * reported, and what discarding a damaged log keeps. Most run on memfs so
 * that a power cut is one call; one runs on a real directory under /tmp.
 * The exhaustive crash-point enumeration lives in test_wal_crash.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/endian.h"
#include "storage/crc32c.h"
#include "storage/memfs.h"
#include "storage/wal.h"

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

#define SEG1 "wal/wal-0000000000000001.log"
#define SEG2 "wal/wal-0000000000000002.log"

struct fx {
  struct memfs *fs;
  struct wal_io io;
  struct wal_options opt;
  struct wal *w;
  struct sabha_persisted p;
  char err[WAL_ERRMSG_MAX];
};

static void fx_init(struct fx *f, uint32_t segment_size_bytes) {
  memset(f, 0, sizeof *f);
  if (memfs_new(&f->fs, 42) != 0)
    abort();
  memfs_io(f->fs, &f->io);
  wal_options_init(&f->opt, "wal");
  /* Most tests here check that damage is found and named: refuse it. */
  f->opt.refuse_corrupt = true;
  f->opt.io = &f->io;
  f->opt.segment_size_bytes = segment_size_bytes;
  f->opt.entry_size_bytes_max = 256;
}

static int fx_open(struct fx *f) {
  f->w = NULL;
  return wal_open(&f->w, &f->opt, &f->p, f->err, sizeof f->err);
}

/* The process dies and starts again; the machine stays up. */
static int fx_restart(struct fx *f) {
  wal_close(f->w);
  return fx_open(f);
}

/* The machine loses power: only what was fsynced is left. */
static int fx_power_cut(struct fx *f) {
  wal_close(f->w);
  memfs_crash(f->fs, MEMFS_CRASH_DROP);
  return fx_open(f);
}

static void fx_free(struct fx *f) {
  wal_close(f->w);
  memfs_free(f->fs);
}

/* Entry payloads are "e<index>t<term>", so a recovered entry checks
 * itself. */
static char texts[64][32];

static int append(struct wal *w, uint64_t from, uint64_t n, uint64_t term) {
  struct sabha_entry e[64];
  if (n > 64)
    abort();
  for (uint64_t i = 0; i < n; i++) {
    snprintf(texts[i], sizeof texts[i], "e%llut%llu",
             (unsigned long long)(from + i), (unsigned long long)term);
    e[i] = (struct sabha_entry){.index = from + i,
                                .term = term,
                                .type = SABHA_ENTRY_COMMAND,
                                .size_bytes = (uint32_t)strlen(texts[i]),
                                .data = (const uint8_t *)texts[i]};
  }
  struct sabha_ready rd = {.entries = e, .n_entries = n};
  return wal_append_ready(w, &rd);
}

static int append_sync(struct wal *w, uint64_t from, uint64_t n,
                       uint64_t term) {
  int rv = append(w, from, n, term);
  return rv != 0 ? rv : wal_sync(w);
}

static int hard_state(struct wal *w, uint64_t term, uint32_t vote,
                      uint64_t commit) {
  struct sabha_ready rd = {.has_hard_state = true,
                           .hard_state = {term, vote, commit}};
  int rv = wal_append_ready(w, &rd);
  return rv != 0 ? rv : wal_sync(w);
}

static int truncate_from(struct wal *w, uint64_t from) {
  struct sabha_ready rd = {.truncate_from = from};
  return wal_append_ready(w, &rd);
}

/* True when p holds exactly entries first..last, written under the terms
 * `term_of` gives. */
static bool log_is(const struct sabha_persisted *p, uint64_t first,
                   uint64_t last, uint64_t (*term_of)(uint64_t index)) {
  if (p->n_entries != last + 1 - first)
    return false;
  for (uint64_t i = first; i <= last; i++) {
    const struct sabha_entry *e = &p->entries[i - first];
    char want[32];
    snprintf(want, sizeof want, "e%llut%llu", (unsigned long long)i,
             (unsigned long long)term_of(i));
    if (e->index != i || e->term != term_of(i) ||
        e->size_bytes != strlen(want) ||
        memcmp(e->data, want, e->size_bytes) != 0 ||
        e->type != SABHA_ENTRY_COMMAND)
      return false;
  }
  return true;
}

static uint64_t term1(uint64_t i) {
  (void)i;
  return 1;
}

static void wal_fresh_directory_recovers_empty(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(f.err[0] == '\0');
  CHECK(f.p.n_entries == 0 && !f.p.has_snapshot && f.p.applied == 0);
  CHECK(f.p.hard_state.term == 0 && f.p.hard_state.vote == 0);
  CHECK(memfs_exists(f.fs, SEG1));
  struct wal_stats st;
  wal_stats(f.w, &st);
  CHECK(st.segments == 1 && st.first_index == 1 && st.last_index == 0);
  CHECK(fx_power_cut(&f) == 0 && f.p.n_entries == 0);
  fx_free(&f);
}

static void wal_synced_entries_and_hard_state_survive_power_cut(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 3, 2, 7) == 0);
  CHECK(append_sync(f.w, 1, 10, 1) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 2);
  CHECK(f.p.hard_state.commit == 7);
  CHECK(log_is(&f.p, 1, 10, term1));
  fx_free(&f);
}

static void wal_commit_hint_is_clamped_to_the_recovered_log(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 3, 1) == 0);
  CHECK(hard_state(f.w, 1, 0, 9) == 0);
  CHECK(fx_restart(&f) == 0);
  CHECK(f.p.hard_state.commit == 3);
  fx_free(&f);
}

static void wal_unsynced_appends_are_not_durable(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 2, 1) == 0);
  CHECK(append(f.w, 3, 2, 1) == 0); /* in the buffer only */
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 2, term1));
  fx_free(&f);
}

/* The background sync (wal_sync_begin, wal_sync_job_run, wal_sync_end):
 * the fsync covers what was written before it began, not what was
 * appended while it ran; and a move to a new segment meanwhile keeps the
 * job's file open until its end. */
static void wal_background_sync_covers_what_was_written_before_it(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append(f.w, 1, 4, 1) == 0);
  struct wal_sync_job job;
  CHECK(wal_sync_begin(f.w, &job) == 0 && job.fd >= 0);
  CHECK(append(f.w, 5, 4, 1) == 0); /* while the job runs */
  wal_sync_job_run(&job);
  CHECK(job.rv == 0);
  CHECK(wal_sync_end(f.w, &job) == 0);
  /* What was appended while it ran reaches the file with the next job's
   * begin, unsynced until that job runs, which a power cut prevents. */
  CHECK(wal_sync_begin(f.w, &job) == 0 && job.fd >= 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1));
  fx_free(&f);

  fx_init(&f, 1024); /* small segments: appends move to new ones */
  CHECK(fx_open(&f) == 0);
  CHECK(append(f.w, 1, 4, 1) == 0);
  CHECK(wal_sync_begin(f.w, &job) == 0 && job.fd >= 0);
  uint64_t next = 5;
  struct wal_stats st;
  for (int k = 0; k < 64; k++, next += 4) {
    CHECK(append(f.w, next, 4, 1) == 0);
    wal_stats(f.w, &st);
    if (st.segments >= 3)
      break;
  }
  CHECK(st.segments >= 3);
  wal_sync_job_run(&job); /* on the first segment's file, still open */
  CHECK(job.rv == 0);
  CHECK(wal_sync_end(f.w, &job) == 0);
  CHECK(wal_sync(f.w) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, next + 3, term1));
  fx_free(&f);
}

/* A job's fsync fails (the kernel drops the pages it could not write and
 * reports it once per open file description); before wal_sync_end the
 * loop syncs the same segment itself, for a move to a new segment or a
 * snapshot install. That sync must fail too: were it to succeed over the
 * dropped bytes, the segment left whole or the records written after it
 * would vouch for them, and a restart would find damage (refused here,
 * refuse_corrupt) where there was only a failed fsync. */
static void failed_job_then_loop_sync(bool install) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 4, 1) == 0);
  CHECK(append(f.w, 5, 4, 1) == 0);
  struct wal_sync_job job;
  CHECK(wal_sync_begin(f.w, &job) == 0 && job.fd >= 0);
  memfs_fail_at(f.fs, memfs_counts(f.fs).calls + 1, EIO);
  wal_sync_job_run(&job);
  CHECK(job.rv == -EIO);
  memfs_fail_at(f.fs, 0, 0);
  int rv = 0;
  struct wal_stats st = {0};
  if (install) {
    struct sabha_snapshot_meta m = {.index = 8, .term = 1};
    rv = wal_save_snapshot(f.w, &m, "state@8", 7);
  } else {
    for (uint64_t i = 9; rv == 0 && i < 9 + 64; i++) {
      rv = append(f.w, i, 1, 1);
      wal_stats(f.w, &st);
      if (st.segments > 1)
        break;
    }
  }
  CHECK(rv == SABHA_EIO);
  wal_stats(f.w, &st);
  CHECK(st.segments == 1 && st.snapshots_saved == 0);
  CHECK(wal_sync_end(f.w, &job) == SABHA_EIO);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1) && !f.p.has_snapshot);
  fx_free(&f);
}

static void wal_rollover_after_a_failed_job_fails(void) {
  failed_job_then_loop_sync(false);
}

static void wal_snapshot_install_after_a_failed_job_fails(void) {
  failed_job_then_loop_sync(true);
}

/* wal_sync_jobs_run: several logs (a process's groups) synced by one job.
 * The io's sync_many here syncs each file through memfs, as syncfs()
 * covers every file; `many_rv` makes it fail, or decline (-ENOTSUP), which
 * must fall back to a sync per file. */
static struct wal_io many_base;
static int many_rv, many_calls, many_fds;

static int many_sync(void *ctx, const int *fds, size_t n) {
  many_calls++;
  many_fds = (int)n;
  if (many_rv != 0)
    return many_rv;
  for (size_t i = 0; i < n; i++) {
    int rv = many_base.sync(ctx, fds[i], true);
    if (rv != 0)
      return rv;
  }
  return 0;
}

/* Three logs on one memfs: 0 and 2 have appends, 1 has nothing new. Runs
 * one job over all three, then cuts the power. */
static void sync_three_logs(int rv, bool *ok) {
  struct memfs *fs;
  *ok = false;
  if (memfs_new(&fs, 7) != 0)
    abort();
  struct wal_io io;
  memfs_io(fs, &io);
  many_base = io;
  io.sync_many = many_sync;
  many_rv = rv;
  many_calls = many_fds = 0;
  static const char *const dirs[] = {"g0", "g1", "g2"};
  struct wal_options opt[3];
  struct wal *w[3] = {NULL, NULL, NULL};
  struct sabha_persisted p;
  char err[WAL_ERRMSG_MAX];
  struct wal_sync_job jobs[3];
  struct wal_sync_job *jp[3] = {&jobs[0], &jobs[1], &jobs[2]};
  for (int g = 0; g < 3; g++) {
    wal_options_init(&opt[g], dirs[g]);
    opt[g].io = &io;
    opt[g].entry_size_bytes_max = 256;
    CHECK(wal_open(&w[g], &opt[g], &p, err, sizeof err) == 0);
  }
  CHECK(append(w[0], 1, 3, 1) == 0);
  CHECK(append(w[2], 1, 5, 1) == 0);
  for (int g = 0; g < 3; g++)
    CHECK(wal_sync_begin(w[g], &jobs[g]) == 0);
  CHECK(jobs[0].fd >= 0 && jobs[1].fd < 0 && jobs[2].fd >= 0);
  wal_sync_jobs_run(jp, 3);
  int ends[3];
  for (int g = 0; g < 3; g++)
    ends[g] = wal_sync_end(w[g], &jobs[g]);
  for (int g = 0; g < 3; g++)
    wal_close(w[g]);
  if (rv == -EIO) {
    /* One call covered both: both fail, the log with nothing due does not. */
    CHECK(many_calls == 1 && many_fds == 2);
    CHECK(jobs[0].rv == -EIO && jobs[2].rv == -EIO);
    CHECK(ends[0] == SABHA_EIO && ends[1] == 0 && ends[2] == SABHA_EIO);
    memfs_free(fs);
    *ok = true;
    return;
  }
  CHECK(ends[0] == 0 && ends[1] == 0 && ends[2] == 0);
  CHECK(many_calls == 1 && many_fds == 2);
  memfs_crash(fs, MEMFS_CRASH_DROP);
  CHECK(wal_open(&w[0], &opt[0], &p, err, sizeof err) == 0);
  CHECK(log_is(&p, 1, 3, term1));
  wal_close(w[0]);
  CHECK(wal_open(&w[2], &opt[2], &p, err, sizeof err) == 0);
  CHECK(log_is(&p, 1, 5, term1));
  wal_close(w[2]);
  memfs_free(fs);
  *ok = true;
}

static void wal_one_job_syncs_the_logs_of_several_groups(void) {
  bool ok;
  sync_three_logs(0, &ok); /* one call for both */
  CHECK(ok);
  sync_three_logs(-ENOTSUP, &ok); /* declined: each synced on its own */
  CHECK(ok);
  sync_three_logs(-EIO, &ok);
  CHECK(ok);
}

/* A process crash leaves written-but-unsynced records in the page cache;
 * wal_open returns them, so it must make them durable before it does. */
static void wal_open_makes_what_it_recovers_durable(void) {
  struct fx f;
  fx_init(&f, 4096);
  f.opt.buffer_size_bytes = 0; /* every record goes to the file at once */
  CHECK(fx_open(&f) == 0);
  CHECK(append(f.w, 1, 4, 1) == 0);
  CHECK(fx_restart(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1));
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1));
  fx_free(&f);
}

static uint64_t term_3_is_2(uint64_t i) {
  return i == 3 ? 2 : 1;
}

static void wal_put_at_existing_index_overwrites_and_keeps_later(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 5, 1) == 0);
  CHECK(append_sync(f.w, 3, 1, 2) == 0); /* slot 3 accepted again */
  struct wal_stats st;
  wal_stats(f.w, &st);
  CHECK(st.last_index == 5);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 5, term_3_is_2));
  fx_free(&f);
}

static uint64_t term_from_4_is_2(uint64_t i) {
  return i >= 4 ? 2 : 1;
}

static void wal_truncation_drops_the_suffix(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 6, 1) == 0);
  CHECK(truncate_from(f.w, 4) == 0);
  CHECK(append_sync(f.w, 4, 2, 2) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 5, term_from_4_is_2));
  CHECK(truncate_from(f.w, 3) == 0 && wal_sync(f.w) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 2, term1));
  fx_free(&f);
}

static void wal_refuses_gaps_and_oversized_entries_whole(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 2, 1) == 0);
  struct wal_stats before, after;
  wal_stats(f.w, &before);
  CHECK(append(f.w, 4, 1, 1) == SABHA_EINVAL);
  CHECK(strstr(wal_errmsg(f.w), "gap") != NULL);
  static uint8_t big[257];
  struct sabha_entry e[2] = {
      {.index = 3, .term = 1, .type = 1, .size_bytes = 1, .data = big},
      {.index = 4, .term = 1, .type = 1, .size_bytes = 257, .data = big}};
  struct sabha_ready rd = {.has_hard_state = true,
                           .hard_state = {5, 1, 0},
                           .entries = e,
                           .n_entries = 2};
  CHECK(wal_append_ready(f.w, &rd) == SABHA_ETOOBIG);
  wal_stats(f.w, &after);
  CHECK(after.records_written == before.records_written);
  CHECK(after.bytes == before.bytes);
  CHECK(append_sync(f.w, 3, 1, 1) == 0); /* still usable */
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 3, term1) && f.p.hard_state.term == 0);
  fx_free(&f);
}

static void wal_rolls_over_to_new_segments(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 4, 1, 0) == 0);
  for (uint64_t i = 1; i <= 100; i += 10)
    CHECK(append_sync(f.w, i, 10, 1) == 0);
  struct wal_stats st;
  wal_stats(f.w, &st);
  CHECK(st.segments >= 4);
  CHECK(st.entries == 100 && st.entries_written == 100);
  CHECK(memfs_exists(f.fs, SEG2));
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 100, term1));
  CHECK(f.p.hard_state.term == 4 && f.p.hard_state.vote == 1);
  wal_stats(f.w, &st);
  CHECK(st.segments >= 4);
  fx_free(&f);
}

static void wal_snapshot_deletes_covered_segments_and_keeps_the_boundary(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 2, 3, 0) == 0); /* only in segment 1 */
  for (uint64_t i = 1; i <= 100; i += 10)
    CHECK(append_sync(f.w, i, 10, 1) == 0);
  struct wal_stats st;
  wal_stats(f.w, &st);
  uint64_t segments = st.segments;
  struct sabha_snapshot_meta m = {.index = 60, .term = 1};
  CHECK(wal_save_snapshot(f.w, &m, "state@60", 8) == 0);
  wal_stats(f.w, &st);
  CHECK(st.segments < segments && st.segments_deleted > 0);
  CHECK(!memfs_exists(f.fs, SEG1));
  CHECK(st.first_index == 61 && st.last_index == 100 && st.entries == 40);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.has_snapshot && f.p.snapshot.index == 60);
  CHECK(f.p.snapshot.term == 1 && f.p.applied == 60);
  CHECK(f.p.snapshot_size_bytes == 8);
  CHECK(memcmp(f.p.snapshot_data, "state@60", 8) == 0);
  CHECK(log_is(&f.p, 61, 100, term1)); /* starts at index + 1, exactly */
  CHECK(f.p.hard_state.term == 2 && f.p.hard_state.vote == 3);
  CHECK(append(f.w, 100, 1, 1) == 0); /* the boundary holds for writes */
  CHECK(append_sync(f.w, 101, 1, 1) == 0);
  CHECK(fx_restart(&f) == 0);
  CHECK(log_is(&f.p, 61, 101, term1));
  fx_free(&f);
}

/* A snapshot written off the WAL's thread (wal_snapshot_begin, _job_run,
 * _end): appends and syncs go on while the job is out, a power cut before
 * its end leaves the old snapshot and the whole log (and recovery deletes
 * the job's file), after its end the new one. */
static void wal_snapshot_job_runs_beside_appends(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  for (uint64_t i = 1; i <= 60; i += 10)
    CHECK(append_sync(f.w, i, 10, 1) == 0);
  struct sabha_snapshot_meta m = {.index = 50, .term = 1};
  struct wal_snap_job job;
  CHECK(wal_snapshot_begin(f.w, &job, &m, "state@50", 8) == 0);
  wal_snapshot_job_run(&job);
  CHECK(job.rv == 0 && memfs_exists(f.fs, "wal/snapshot.own.tmp"));
  CHECK(append_sync(f.w, 61, 10, 1) == 0); /* the log goes on meanwhile */
  /* Power lost before the end: the file is written, but nothing says it
   * is the snapshot. */
  CHECK(fx_power_cut(&f) == 0);
  CHECK(!f.p.has_snapshot && log_is(&f.p, 1, 70, term1));
  CHECK(!memfs_exists(f.fs, "wal/snapshot.own.tmp"));

  CHECK(wal_snapshot_begin(f.w, &job, &m, "state@50", 8) == 0);
  CHECK(append_sync(f.w, 71, 5, 1) == 0);
  wal_snapshot_job_run(&job);
  CHECK(wal_snapshot_end(f.w, &job) == 0);
  CHECK(!memfs_exists(f.fs, "wal/snapshot.own.tmp"));
  CHECK(!memfs_exists(f.fs, SEG1)); /* covered, dropped */
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.has_snapshot && f.p.snapshot.index == 50);
  CHECK(f.p.snapshot_size_bytes == 8);
  CHECK(memcmp(f.p.snapshot_data, "state@50", 8) == 0);
  CHECK(log_is(&f.p, 51, 75, term1));
  fx_free(&f);
}

/* A newer snapshot installed while the job was out (a leader's) wins: the
 * job's end says ECOMPACTED, deletes its file and leaves the handle
 * working; a job whose write failed fails the handle. */
static void wal_snapshot_job_yields_to_a_newer_snapshot(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 40, 1) == 0);
  struct sabha_snapshot_meta m = {.index = 20, .term = 1};
  struct wal_snap_job job;
  CHECK(wal_snapshot_begin(f.w, &job, &m, "state@20", 8) == 0);
  wal_snapshot_job_run(&job);
  struct sabha_snapshot_meta newer = {.index = 30, .term = 1};
  CHECK(wal_save_snapshot(f.w, &newer, "state@30", 8) == 0);
  CHECK(wal_snapshot_end(f.w, &job) == SABHA_ECOMPACTED);
  CHECK(!memfs_exists(f.fs, "wal/snapshot.own.tmp"));
  CHECK(append_sync(f.w, 41, 1, 1) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.has_snapshot && f.p.snapshot.index == 30);
  CHECK(memcmp(f.p.snapshot_data, "state@30", 8) == 0);
  CHECK(log_is(&f.p, 31, 41, term1));

  m.index = 35;
  CHECK(wal_snapshot_begin(f.w, &job, &m, "state@35", 8) == 0);
  wal_snapshot_job_run(&job);
  job.rv = -EIO; /* as if its fsync had failed */
  job.what = "fsync";
  CHECK(wal_snapshot_end(f.w, &job) == SABHA_EIO);
  CHECK(append_sync(f.w, 42, 1, 1) == SABHA_EIO);
  fx_free(&f);
}

/* Whatever call of a snapshot fails, a restart ends with the snapshot
 * either not taken or taken, and covered segments deleted. */
static void wal_open_finishes_deletions_a_failure_interrupted(void) {
  bool saw_leftover = false;
  for (uint64_t point = 1; point < 40; point++) {
    struct fx f;
    fx_init(&f, 1024);
    CHECK(fx_open(&f) == 0);
    for (uint64_t i = 1; i <= 100; i += 10)
      CHECK(append_sync(f.w, i, 10, 1) == 0);
    memfs_fail_at(f.fs, memfs_counts(f.fs).calls + point, EIO);
    struct sabha_snapshot_meta m = {.index = 60, .term = 1};
    int rv = wal_save_snapshot(f.w, &m, "s60", 3);
    memfs_fail_at(f.fs, 0, 0);
    bool leftover = rv != 0 && memfs_exists(f.fs, SEG1);
    CHECK(fx_restart(&f) == 0);
    if (f.p.has_snapshot) {
      CHECK(!memfs_exists(f.fs, SEG1));
      CHECK(f.p.snapshot.index == 60 && log_is(&f.p, 61, 100, term1));
      saw_leftover |= leftover;
    } else {
      CHECK(log_is(&f.p, 1, 100, term1));
    }
    fx_free(&f);
    if (rv == 0)
      break;
  }
  CHECK(saw_leftover);
}

/* The same for a snapshot written off the WAL's thread: whichever call of
 * the job or of its end fails, a restart finds the old snapshot and the
 * whole log, or the new snapshot and its log, and no leftover file. */
static void wal_snapshot_job_failures_leave_old_or_new(void) {
  bool saw_new = false, saw_old = false;
  for (uint64_t point = 1; point < 40; point++) {
    struct fx f;
    fx_init(&f, 1024);
    CHECK(fx_open(&f) == 0);
    for (uint64_t i = 1; i <= 100; i += 10)
      CHECK(append_sync(f.w, i, 10, 1) == 0);
    struct sabha_snapshot_meta m = {.index = 60, .term = 1};
    struct wal_snap_job job;
    CHECK(wal_snapshot_begin(f.w, &job, &m, "s60", 3) == 0);
    memfs_fail_at(f.fs, memfs_counts(f.fs).calls + point, EIO);
    wal_snapshot_job_run(&job);
    int rv = wal_snapshot_end(f.w, &job);
    memfs_fail_at(f.fs, 0, 0);
    CHECK(fx_power_cut(&f) == 0);
    CHECK(!memfs_exists(f.fs, "wal/snapshot.own.tmp"));
    if (f.p.has_snapshot) {
      CHECK(f.p.snapshot.index == 60 && log_is(&f.p, 61, 100, term1));
      CHECK(memcmp(f.p.snapshot_data, "s60", 3) == 0);
      saw_new = true;
    } else {
      CHECK(log_is(&f.p, 1, 100, term1));
      saw_old = true;
    }
    fx_free(&f);
    if (rv == 0)
      break;
  }
  CHECK(saw_new && saw_old);
}

static void wal_snapshot_beyond_the_log_leaves_it_empty(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 5, 1) == 0);
  /* A follower installs a leader's snapshot (Raft: log does not match). */
  struct sabha_ready rd = {.has_hard_state = true,
                           .hard_state = {3, 0, 10},
                           .has_snapshot = true,
                           .snapshot = {.index = 10, .term = 3},
                           .snapshot_data = (const uint8_t *)"s10",
                           .snapshot_size_bytes = 3,
                           .truncate_from = 11};
  CHECK(wal_append_ready(f.w, &rd) == 0 && wal_sync(f.w) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.has_snapshot && f.p.snapshot.index == 10 && f.p.n_entries == 0);
  CHECK(f.p.hard_state.commit == 10 && f.p.applied == 10);
  CHECK(append(f.w, 12, 1, 3) == SABHA_EINVAL);
  CHECK(append(f.w, 5, 1, 3) == 0); /* covered: skipped, not written */
  CHECK(append_sync(f.w, 11, 2, 3) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.n_entries == 2 && f.p.entries[0].index == 11);
  fx_free(&f);
}

static void wal_snapshot_keeps_entries_after_it(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 10, 1) == 0);
  struct sabha_ready rd = {.has_snapshot = true,
                           .snapshot = {.index = 5, .term = 1},
                           .snapshot_data = (const uint8_t *)"s5",
                           .snapshot_size_bytes = 2};
  CHECK(wal_append_ready(f.w, &rd) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.snapshot.index == 5 && log_is(&f.p, 6, 10, term1));
  struct sabha_snapshot_meta m = {.index = 5, .term = 1};
  CHECK(wal_save_snapshot(f.w, &m, "x", 1) == SABHA_ECOMPACTED);
  m.index = 0;
  CHECK(wal_save_snapshot(f.w, &m, "x", 1) == SABHA_EINVAL);
  m.index = 7;
  CHECK(wal_save_snapshot(f.w, &m, NULL, 0) == 0); /* empty state is fine */
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.snapshot.index == 7 && f.p.snapshot_size_bytes == 0);
  CHECK(log_is(&f.p, 8, 10, term1));
  fx_free(&f);
}

/* The async baseline rolls its state machine back to the snapshot the node
 * holds (index 0 and no bytes with none, engine.h): the batch names that
 * snapshot with a truncation, and only the truncation is written. */
static void wal_rollback_to_the_held_snapshot_writes_the_truncation(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 6, 1) == 0);
  struct sabha_ready rd = {.has_snapshot = true,
                           .snapshot = {.index = 0, .term = 0},
                           .truncate_from = 4};
  CHECK(wal_append_ready(f.w, &rd) == 0 && wal_sync(f.w) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(!f.p.has_snapshot && log_is(&f.p, 1, 3, term1));
  struct sabha_snapshot_meta m = {.index = 2, .term = 1};
  CHECK(wal_save_snapshot(f.w, &m, "s2", 2) == 0);
  rd.snapshot = m;
  rd.snapshot_data = (const uint8_t *)"s2";
  rd.snapshot_size_bytes = 2;
  rd.truncate_from = 3;
  CHECK(wal_append_ready(f.w, &rd) == 0 && wal_sync(f.w) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.snapshot.index == 2 && f.p.n_entries == 0);
  fx_free(&f);
}

/* A batch using every part, in the contract's order. */
static uint64_t term_from_9_is_4(uint64_t i) {
  return i >= 9 ? 4 : 1;
}

static void wal_ready_parts_apply_in_contract_order(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 10, 1) == 0);
  struct sabha_entry e[2];
  char t[2][32];
  for (int i = 0; i < 2; i++) {
    snprintf(t[i], sizeof t[i], "e%dt4", 9 + i);
    e[i] = (struct sabha_entry){.index = (uint64_t)(9 + i),
                                .term = 4,
                                .type = SABHA_ENTRY_COMMAND,
                                .size_bytes = (uint32_t)strlen(t[i]),
                                .data = (const uint8_t *)t[i]};
  }
  struct sabha_ready rd = {.has_hard_state = true,
                           .hard_state = {4, 2, 0},
                           .has_snapshot = true,
                           .snapshot = {.index = 6, .term = 1},
                           .snapshot_data = (const uint8_t *)"s6",
                           .snapshot_size_bytes = 2,
                           .truncate_from = 9,
                           .entries = e,
                           .n_entries = 2};
  CHECK(wal_append_ready(f.w, &rd) == 0 && wal_sync(f.w) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.hard_state.term == 4 && f.p.hard_state.vote == 2);
  CHECK(f.p.snapshot.index == 6 && log_is(&f.p, 7, 10, term_from_9_is_4));
  fx_free(&f);
}

static void wal_corruption_in_a_closed_segment_names_file_and_offset(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  for (uint64_t i = 1; i <= 60; i += 10)
    CHECK(append_sync(f.w, i, 10, 1) == 0);
  CHECK(memfs_exists(f.fs, SEG2));
  wal_close(f.w);
  f.w = NULL;
  /* The first record starts at 32, after the segment header. */
  CHECK(memfs_corrupt(f.fs, SEG1, 32 + 16 + 3, 0x40) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT && f.w == NULL);
  CHECK(strstr(f.err, SEG1) != NULL);
  CHECK(strstr(f.err, "offset 32:") != NULL);
  CHECK(strstr(f.err, "checksum") != NULL);
  fx_free(&f);
}

/* Record offsets in a segment holding hard-state-free entries "e<i>t1" of
 * one digit: 16 + 24 + 4 bytes each. */
#define REC1_BYTES (16 + 24 + 4)

static void
wal_corruption_before_the_tail_of_the_last_segment_is_reported(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  for (uint64_t i = 1; i <= 5; i++)
    CHECK(append_sync(f.w, i, 1, 1) == 0); /* one fsync each */
  wal_close(f.w);
  f.w = NULL;
  uint64_t second = 32 + REC1_BYTES;
  CHECK(memfs_corrupt(f.fs, SEG1, second + 20, 0x01) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  char want[64];
  snprintf(want, sizeof want, "offset %llu:", (unsigned long long)second);
  CHECK(strstr(f.err, want) != NULL && strstr(f.err, SEG1) != NULL);
  CHECK(strstr(f.err, "fsynced") != NULL);
  fx_free(&f);
}

static void wal_torn_tail_is_cut_and_the_log_goes_on(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  for (uint64_t i = 1; i <= 5; i++)
    CHECK(append_sync(f.w, i, 1, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  uint64_t size;
  CHECK(memfs_size(f.fs, SEG1, &size) == 0);
  CHECK(size > 32 + 5 * REC1_BYTES); /* the records, then zeros ahead */
  size = 32 + 5 * REC1_BYTES;
  CHECK(memfs_cut(f.fs, SEG1, size - 7) == 0); /* half a record */
  CHECK(fx_open(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1));
  CHECK(strstr(f.err, "cut") != NULL);
  struct wal_stats st;
  wal_stats(f.w, &st);
  CHECK(st.recovered_tail_bytes == REC1_BYTES - 7);
  CHECK(append_sync(f.w, 5, 2, 1) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 6, term1));
  fx_free(&f);
}

static void wal_garbage_in_the_last_record_is_cut(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  for (uint64_t i = 1; i <= 5; i++)
    CHECK(append_sync(f.w, i, 1, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  CHECK(memfs_corrupt(f.fs, SEG1, 32 + 4 * REC1_BYTES + 1, 0x80) == 0);
  CHECK(fx_open(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1));
  fx_free(&f);
}

/* After wal_close_clean nothing in the log is unsynced, so damage anywhere
 * in it, the last record included, is corruption: reported with file and
 * offset, never cut as a torn tail. */
static void wal_reports_a_bit_flip_after_a_clean_shutdown(void) {
  static const uint64_t flips[] = {1, 20, REC1_BYTES - 1}; /* crc, body */
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    struct fx f;
    fx_init(&f, 4096);
    CHECK(fx_open(&f) == 0);
    for (uint64_t k = 1; k <= 5; k++)
      CHECK(append_sync(f.w, k, 1, 1) == 0);
    CHECK(append(f.w, 6, 1, 1) == 0); /* wal_close_clean syncs it */
    CHECK(wal_close_clean(f.w) == 0);
    f.w = NULL;
    uint64_t last = 32 + 5 * REC1_BYTES; /* entry 6 */
    CHECK(memfs_corrupt(f.fs, SEG1, last + flips[i], 0x08) == 0);
    CHECK(fx_open(&f) == SABHA_ECORRUPT);
    char want[64];
    snprintf(want, sizeof want, "%s: offset %llu:", SEG1,
             (unsigned long long)last);
    CHECK(strstr(f.err, want) != NULL);
    CHECK(strstr(f.err, "clean shutdown") != NULL);
    fx_free(&f);
  }
}

/* After a clean shutdown the log opens whole, says it was closed cleanly,
 * and goes on: the marker is then one record among others, and a later
 * crash is judged by the torn-tail rule again. */
static void wal_clean_shutdown_then_crash_keeps_the_torn_tail_rule(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 2, 1, 0) == 0);
  CHECK(append_sync(f.w, 1, 3, 1) == 0);
  CHECK(wal_close_clean(f.w) == 0);
  f.w = NULL;
  CHECK(fx_open(&f) == 0 && f.err[0] == '\0');
  struct wal_stats st;
  wal_stats(f.w, &st);
  CHECK(st.closed_clean);
  CHECK(log_is(&f.p, 1, 3, term1) && f.p.hard_state.term == 2);
  CHECK(append_sync(f.w, 4, 1, 1) == 0);
  wal_stats(f.w, &st);
  uint64_t size = st.bytes; /* where the records end, zeros after them */
  wal_close(f.w);           /* a crash, as far as the log can tell */
  f.w = NULL;
  CHECK(memfs_cut(f.fs, SEG1, size - 7) == 0); /* entry 4, torn */
  CHECK(fx_open(&f) == 0);
  CHECK(strstr(f.err, "cut") != NULL && log_is(&f.p, 1, 3, term1));
  wal_stats(f.w, &st);
  CHECK(!st.closed_clean);
  CHECK(append_sync(f.w, 4, 2, 1) == 0);
  CHECK(wal_close_clean(f.w) == 0);
  f.w = NULL;
  CHECK(fx_open(&f) == 0 && log_is(&f.p, 1, 5, term1));
  fx_free(&f);
}

/* Appends and syncs `n` entries one by one: how many of the syncs found
 * segment 1 longer than the one before (~0u if one failed). */
static unsigned syncs_that_grew_the_file(struct fx *f, uint64_t from,
                                         uint64_t n) {
  unsigned grew = 0;
  uint64_t before, after;
  if (memfs_size(f->fs, SEG1, &before) != 0)
    return ~0u;
  for (uint64_t i = from; i < from + n; i++) {
    if (append_sync(f->w, i, 1, 1) != 0 || memfs_size(f->fs, SEG1, &after) != 0)
      return ~0u;
    grew += after != before;
    before = after;
  }
  return grew;
}

static bool zeros_from(struct fx *f, const char *path, uint64_t from) {
  uint64_t size;
  uint8_t buf[4096];
  size_t n = 0;
  int fd;
  if (memfs_size(f->fs, path, &size) != 0 || size <= from ||
      size - from > sizeof buf || f->io.open(f->io.ctx, path, 0, &fd) != 0)
    return false;
  int rv = f->io.read(f->io.ctx, fd, from, buf, (size_t)(size - from), &n);
  f->io.close(f->io.ctx, fd);
  if (rv != 0 || n != size - from)
    return false;
  for (size_t i = 0; i < n; i++)
    if (buf[i] != 0)
      return false;
  return true;
}

/* ZEROS AHEAD in wal.h: records land on zeros the file already holds, so
 * few syncs find it longer; a crash leaves the zeros, which recovery keeps
 * as room, not as a torn tail; a clean close and a move to the next
 * segment trim them, so no earlier segment ends in zeros. */
static void wal_keeps_zeros_ahead_of_its_records(void) {
  struct fx f;
  fx_init(&f, 4096); /* zeros ahead: a quarter of it, 1024 bytes */
  CHECK(fx_open(&f) == 0);
  uint64_t size;
  CHECK(memfs_size(f.fs, SEG1, &size) == 0);
  CHECK(size == 32 + 1024 && zeros_from(&f, SEG1, 32)); /* born with them */
  /* 2,691 bytes of records: the file grows once per 512 bytes or so. */
  unsigned grew = syncs_that_grew_the_file(&f, 1, 60);
  CHECK(grew >= 3 && grew <= 6);
  struct wal_stats st;
  wal_stats(f.w, &st);
  uint64_t end = st.bytes; /* the records of segment 1 */
  CHECK(end > 32 + 60 * REC1_BYTES && zeros_from(&f, SEG1, end));
  CHECK(st.zero_bytes_written > 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.err[0] == '\0' && log_is(&f.p, 1, 60, term1));
  wal_stats(f.w, &st);
  CHECK(st.recovered_tail_bytes == 0 && st.bytes == end);
  CHECK(zeros_from(&f, SEG1, end)); /* kept, and written over next */
  CHECK(append_sync(f.w, 61, 1, 1) == 0);
  CHECK(fx_power_cut(&f) == 0 && log_is(&f.p, 1, 61, term1));
  /* A clean close leaves the records only. */
  CHECK(wal_close_clean(f.w) == 0);
  f.w = NULL;
  CHECK(fx_open(&f) == 0 && f.err[0] == '\0');
  wal_stats(f.w, &st);
  CHECK(st.closed_clean);
  CHECK(memfs_size(f.fs, SEG1, &size) == 0 && size == st.bytes);
  /* Moving on to segment 2 trims segment 1 to its last record. */
  uint64_t i = 62;
  while (!memfs_exists(f.fs, SEG2))
    CHECK(append_sync(f.w, i++, 1, 1) == 0);
  CHECK(memfs_size(f.fs, SEG1, &size) == 0);
  uint8_t last = 0;
  size_t n = 0;
  int fd;
  CHECK(f.io.open(f.io.ctx, SEG1, 0, &fd) == 0);
  CHECK(f.io.read(f.io.ctx, fd, size - 1, &last, 1, &n) == 0 && n == 1);
  f.io.close(f.io.ctx, fd);
  CHECK(last != 0); /* the last byte of an entry's text */
  CHECK(fx_power_cut(&f) == 0 && log_is(&f.p, 1, i - 1, term1));
  fx_free(&f);
  /* With zero_ahead_bytes 0 the file is its records, as before. */
  fx_init(&f, 4096);
  f.opt.zero_ahead_bytes = 0;
  CHECK(fx_open(&f) == 0);
  CHECK(syncs_that_grew_the_file(&f, 1, 10) == 10);
  CHECK(memfs_size(f.fs, SEG1, &size) == 0 && size == 32 + 9 * REC1_BYTES + 45);
  fx_free(&f);
}

/* Zeros are room only at the end of the last segment. In a segment the
 * log has moved past they are bytes that should not be there: damage,
 * reported (the trim before a new segment is what keeps them out). */
static void wal_zeros_after_an_earlier_segment_are_damage(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  uint64_t i = 1;
  while (!memfs_exists(f.fs, SEG2))
    CHECK(append_sync(f.w, i++, 1, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  uint64_t size;
  CHECK(memfs_size(f.fs, SEG1, &size) == 0);
  static const uint8_t z[100];
  int fd;
  CHECK(f.io.open(f.io.ctx, SEG1, 0, &fd) == 0);
  CHECK(f.io.write(f.io.ctx, fd, size, z, sizeof z) == 0);
  CHECK(f.io.sync(f.io.ctx, fd, false) == 0);
  f.io.close(f.io.ctx, fd);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  CHECK(strstr(f.err, SEG1) != NULL &&
        strstr(f.err, "in a segment before the last") != NULL);
  fx_free(&f);
}

/* After a crash some file systems show blocks of a deleted file inside the
 * unsynced part of a new one. A record of segment 1 found at the same
 * offset in segment 2, past a hole, must not count as proof that the hole
 * was fsynced. */
static void wal_stale_records_of_another_segment_are_not_witnesses(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  uint64_t i = 1;
  while (!memfs_exists(f.fs, SEG2))
    CHECK(append_sync(f.w, i++, 1, 1) == 0); /* one fsync each */
  CHECK(append_sync(f.w, i, 2, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  uint64_t size2;
  CHECK(memfs_size(f.fs, SEG2, &size2) == 0);
  uint64_t at = 32 + 9 * REC1_BYTES + 3 * (REC1_BYTES + 1); /* entry 13 */
  CHECK(at > size2 + 64);
  uint8_t rec[REC1_BYTES + 1];
  int fd;
  size_t n;
  CHECK(f.io.open(f.io.ctx, SEG1, 0, &fd) == 0);
  CHECK(f.io.read(f.io.ctx, fd, at, rec, sizeof rec, &n) == 0);
  f.io.close(f.io.ctx, fd);
  /* It shows up at the same offset of segment 2, far past its end. */
  CHECK(f.io.open(f.io.ctx, SEG2, 0, &fd) == 0);
  CHECK(f.io.write(f.io.ctx, fd, at, rec, n) == 0);
  CHECK(f.io.sync(f.io.ctx, fd, true) == 0);
  f.io.close(f.io.ctx, fd);
  CHECK(fx_open(&f) == 0);
  CHECK(log_is(&f.p, 1, i + 1, term1));
  fx_free(&f);
}

/* A tail made of record headers 48 bytes apart, each claiming the rest of
 * the file as its payload and the bytes before it as fsynced, asks the
 * search for a witness for a checksum of the file once per header: 1 MiB
 * took a second, a 64 MiB segment over an hour. The search gives up within
 * a budget, and a tail it could not judge is damage, never a torn write
 * to cut. */
static void wal_overlapping_headers_after_damage_are_damage(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 5, 2, 0) == 0);
  CHECK(append_sync(f.w, 1, 3, 1) == 0);
  struct wal_stats st;
  wal_stats(f.w, &st);
  uint64_t x = st.bytes; /* the end of the records: one segment */
  wal_close(f.w);
  f.w = NULL;
  const size_t size = 512u << 10;
  uint8_t *img = calloc(1, size);
  CHECK(img != NULL);
  int fd;
  size_t n;
  CHECK(f.io.open(f.io.ctx, SEG1, 0, &fd) == 0);
  CHECK(f.io.read(f.io.ctx, fd, 0, img, x, &n) == 0 && n == x);
  f.io.close(f.io.ctx, fd);
  for (uint64_t y = x; y + 16 <= size; y += 48) {
    le_put_u32(img + y, 0xdeadbeef); /* no CRC matches */
    le_put_u32(img + y + 4, (uint32_t)(size - y - 16));
    img[y + 8] = 2;
    le_put_u32(img + y + 12, (uint32_t)x + 1);
  }
  CHECK(memfs_put(f.fs, SEG1, img, size) == 0);
  free(img);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  CHECK(strstr(f.err, SEG1) != NULL &&
        strstr(f.err, "overlapping record headers") != NULL);
  /* Repaired, it keeps the records before the damage, under a guard. */
  f.opt.refuse_corrupt = false;
  CHECK(fx_open(&f) == 0);
  CHECK(log_is(&f.p, 1, 3, term1) && f.p.hard_state.term == 5);
  wal_stats(f.w, &st);
  CHECK(st.repaired && f.p.hard_state.repair_until > 3);
  fx_free(&f);
}

/* A gap in the segments' numbers counts each missing segment as full of
 * entries the guard must cover. A file named far ahead (written by hand,
 * or damage to the directory) made that product overflow and wrap to a
 * small guard, under which the repaired node could vote for a log missing
 * entries it had acknowledged. The bound is now computed without wrapping,
 * and a gap too large to bound is refused, not repaired. */
static void wal_a_gap_too_large_to_bound_is_not_repaired(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 5, 2, 0) == 0);
  CHECK(append_sync(f.w, 1, 3, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  static const uint8_t junk[64] = {1, 2, 3};
  CHECK(memfs_put(f.fs, "wal/wal-0a3d70a3d70a3d71.log", junk, sizeof junk) ==
        0);
  f.opt.refuse_corrupt = false;
  int rc = fx_open(&f);
  if (rc == 0)
    fprintf(stderr, "repaired under a guard of %llu\n",
            (unsigned long long)f.p.hard_state.repair_until);
  CHECK(rc == SABHA_ECORRUPT);
  CHECK(strstr(f.err, "too many to bound") != NULL);
  fx_free(&f);
}

static void wal_missing_segment_is_reported(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  for (uint64_t i = 1; i <= 60; i += 10)
    CHECK(append_sync(f.w, i, 10, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  CHECK(f.io.unlink(f.io.ctx, SEG2) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  CHECK(strstr(f.err, SEG2) != NULL && strstr(f.err, "missing") != NULL);
  fx_free(&f);
}

static void wal_damaged_snapshot_is_reported(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 5, 1) == 0);
  struct sabha_snapshot_meta m = {.index = 3, .term = 1};
  CHECK(wal_save_snapshot(f.w, &m, "abcdef", 6) == 0);
  wal_close(f.w);
  f.w = NULL;
  CHECK(memfs_corrupt(f.fs, "wal/snapshot", 48 + 2, 0x10) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  CHECK(strstr(f.err, "wal/snapshot: offset 48") != NULL);
  fx_free(&f);
}

static void wal_leftovers_of_interrupted_writes_are_removed(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 3, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  CHECK(memfs_put(f.fs, "wal/snapshot.tmp", "half a snap", 11) == 0);
  /* A segment whose creation a crash interrupted: it never had its name. */
  CHECK(memfs_put(f.fs, "wal/segment.tmp", "SABHAW", 6) == 0);
  CHECK(fx_open(&f) == 0);
  CHECK(!memfs_exists(f.fs, "wal/snapshot.tmp"));
  CHECK(!memfs_exists(f.fs, "wal/segment.tmp") && !memfs_exists(f.fs, SEG2));
  CHECK(log_is(&f.p, 1, 3, term1));
  CHECK(append_sync(f.w, 4, 1, 1) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 4, term1));
  fx_free(&f);
}

/* ---- logs written by hand (older builds, impossible logs) ---- */

struct hand_seg {
  uint64_t seq;
  uint8_t b[1024];
  size_t n;
};

static void hand_begin(struct hand_seg *s, uint64_t seq, uint32_t version) {
  memset(s, 0, sizeof *s);
  s->seq = seq;
  memcpy(s->b, "SABHAWAL", 8);
  le_put_u32(s->b + 8, version);
  le_put_u32(s->b + 12, 32);
  le_put_u64(s->b + 16, seq);
  le_put_u32(s->b + 28, wal_crc32c(0, s->b, 28));
  s->n = 32;
}

/* Appends a record; all before it was fsynced. */
static void hand_record(struct hand_seg *s, uint8_t type,
                        const uint8_t *payload, uint32_t size) {
  uint8_t *h = s->b + s->n;
  le_put_u32(h + 4, size);
  h[8] = type;
  le_put_u32(h + 12, s->n);
  memcpy(h + 16, payload, size);
  uint8_t salt[8];
  le_put_u64(salt, s->seq);
  uint32_t crc = wal_crc32c(0, salt, 8);
  crc = wal_crc32c(crc, h + 4, 12);
  le_put_u32(h, wal_crc32c(crc, h + 16, size));
  s->n += 16 + size;
}

static void hand_entry(struct hand_seg *s, uint64_t index, uint64_t term) {
  uint8_t p[64] = {0};
  int n = snprintf((char *)p + 24, 40, "e%llut%llu", (unsigned long long)index,
                   (unsigned long long)term);
  le_put_u64(p, index);
  le_put_u64(p + 8, term);
  le_put_u32(p + 16, SABHA_ENTRY_COMMAND);
  le_put_u32(p + 20, (uint32_t)n);
  hand_record(s, 2, p, 24 + (uint32_t)n);
}

/* A log left by an older build, whose last segment that build's crash left
 * with half a header (it created segments in place), still opens: the
 * half-made segment is removed, and new records go into a new segment of
 * the current version, never into the old one. */
static void wal_reads_a_version_1_log_and_appends_in_version_2(void) {
  struct fx f;
  fx_init(&f, 4096);
  struct hand_seg s;
  hand_begin(&s, 1, 1);
  uint8_t hs[24] = {0};
  le_put_u64(hs, 5);
  le_put_u32(hs + 8, 2);
  hand_record(&s, 1, hs, sizeof hs);
  for (uint64_t i = 1; i <= 3; i++)
    hand_entry(&s, i, 1);
  CHECK(f.io.mkdir(f.io.ctx, "wal") == 0);
  CHECK(memfs_put(f.fs, SEG1, s.b, s.n) == 0);
  CHECK(memfs_put(f.fs, SEG2, "SABHAW", 6) == 0);
  CHECK(fx_open(&f) == 0);
  CHECK(strstr(f.err, "removed") != NULL && strstr(f.err, SEG2) != NULL);
  CHECK(f.p.hard_state.term == 5 && f.p.hard_state.vote == 2);
  CHECK(log_is(&f.p, 1, 3, term1));
  CHECK(append_sync(f.w, 4, 1, 1) == 0);
  uint64_t size;
  CHECK(memfs_size(f.fs, SEG1, &size) == 0 && size == s.n); /* untouched */
  int fd;
  size_t n;
  uint8_t h[32];
  CHECK(f.io.open(f.io.ctx, SEG2, 0, &fd) == 0);
  CHECK(f.io.read(f.io.ctx, fd, 0, h, sizeof h, &n) == 0 && n == sizeof h);
  f.io.close(f.io.ctx, fd);
  CHECK(h[8] == WAL_FORMAT_VERSION && WAL_FORMAT_VERSION == 3);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.hard_state.term == 5 && f.p.hard_state.vote == 2);
  CHECK(log_is(&f.p, 1, 4, term1));
  fx_free(&f);
}

/* Recovery checks that the log agrees with itself; each check can fail: a
 * clean-shutdown record that disagrees with the log before it, and a
 * record inside a snapshot install (between its INSTALL and its end). */
static void wal_reports_a_log_that_contradicts_its_own_records(void) {
  for (int variant = 0; variant < 2; variant++) {
    struct fx f;
    fx_init(&f, 4096);
    struct hand_seg s;
    hand_begin(&s, 1, WAL_FORMAT_VERSION);
    for (uint64_t i = 1; i <= 3; i++)
      hand_entry(&s, i, 1);
    uint8_t p[24] = {0};
    if (variant == 0) {
      le_put_u64(p, 5); /* "the log ended at 5" */
      hand_record(&s, 7, p, 8);
    } else {
      le_put_u64(p, 10);
      le_put_u64(p + 8, 1);
      hand_record(&s, 5, p, 24); /* INSTALL of a snapshot at 10 */
      hand_entry(&s, 4, 1);
    }
    uint64_t at = s.n - (variant == 0 ? 16 + 8 : 16 + 24 + 4);
    CHECK(f.io.mkdir(f.io.ctx, "wal") == 0);
    CHECK(memfs_put(f.fs, SEG1, s.b, s.n) == 0);
    CHECK(fx_open(&f) == SABHA_ECORRUPT);
    char want[64];
    snprintf(want, sizeof want, "%s: offset %llu:", SEG1,
             (unsigned long long)at);
    CHECK(strstr(f.err, want) != NULL);
    CHECK(strstr(f.err, variant == 0 ? "clean-shutdown record says"
                                     : "inside the snapshot install") != NULL);
    fx_free(&f);
  }
}

/* The name of the highest-numbered segment in "wal", as "wal/<name>". */
struct last_seg {
  char path[64];
};

static int find_last_segment(void *arg, const char *name) {
  struct last_seg *l = arg;
  char path[64];
  snprintf(path, sizeof path, "wal/%s", name);
  if (strncmp(name, "wal-", 4) == 0 && strcmp(path, l->path) > 0)
    snprintf(l->path, sizeof l->path, "%s", path);
  return 0;
}

/* A log whose only segment was created restating term 3 / vote 1 (the
 * snapshot deleted the segment where they were first written) and holds
 * acknowledged entries after it. Returns that segment's path in `l`. */
static void only_segment_restating_the_vote(struct fx *f, struct last_seg *l) {
  fx_init(f, 1024);
  if (fx_open(f) != 0 || hard_state(f->w, 3, 1, 0) != 0)
    abort();
  for (uint64_t i = 1; i <= 100; i += 10)
    if (append_sync(f->w, i, 10, 1) != 0)
      abort();
  struct sabha_snapshot_meta m = {.index = 95, .term = 1};
  if (wal_save_snapshot(f->w, &m, "s95", 3) != 0)
    abort();
  struct wal_stats st;
  wal_stats(f->w, &st);
  if (st.segments != 1)
    abort();
  wal_close(f->w);
  f->w = NULL;
  l->path[0] = '\0';
  f->io.list(f->io.ctx, "wal", find_last_segment, l);
}

/* A node that forgets its vote can vote twice in a term. Cutting the
 * segment that holds it down to (or into) its header is damage, not a
 * segment whose creation a crash interrupted: recovery must refuse, naming
 * the file and offset, never come back with term 0 and no vote. */
static void
wal_keeps_term_and_vote_when_last_segment_is_cut_to_its_header(void) {
  static const uint64_t cuts[] = {32, 20, 0};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    struct fx f;
    struct last_seg l;
    only_segment_restating_the_vote(&f, &l);
    CHECK(fx_restart(&f) == 0);
    CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
    wal_close(f.w);
    f.w = NULL;
    CHECK(memfs_cut(f.fs, l.path, cuts[i]) == 0);
    int rv = fx_open(&f);
    CHECK(rv == 0 || rv == SABHA_ECORRUPT);
    if (rv == 0) /* only acceptable if the vote came back */
      CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
    CHECK(rv == SABHA_ECORRUPT);
    CHECK(strstr(f.err, l.path) != NULL && strstr(f.err, "offset") != NULL);
    /* Repairing: the damage hides the vote in the log, but the hard state
     * file holds it, and one bad block of the file does not change that;
     * with both of its blocks bad as well, nothing can: refused. */
    f.opt.refuse_corrupt = false;
    CHECK(memfs_corrupt(f.fs, "wal/hardstate", 4096 + 24, 0x01) == 0);
    CHECK(memfs_corrupt(f.fs, "wal/hardstate", 24, 0x01) == 0);
    CHECK(fx_open(&f) == SABHA_ECORRUPT);
    CHECK(strstr(f.err, "not repairing") != NULL);
    CHECK(memfs_corrupt(f.fs, "wal/hardstate", 24, 0x01) == 0);
    CHECK(fx_open(&f) == 0);
    CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
    CHECK(fx_restart(&f) == 0); /* the bad block was rewritten */
    CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
    fx_free(&f);
  }
}

/* The same for a bit flipped in that restated hard state when nothing
 * follows it (here the records after it are cut away): it was fsynced
 * before the segment got its name, so it is no torn tail. */
static void wal_reports_damage_to_the_hard_state_a_segment_began_with(void) {
  struct fx f;
  struct last_seg l;
  only_segment_restating_the_vote(&f, &l);
  CHECK(memfs_cut(f.fs, l.path, 32 + 16 + 24) == 0);
  CHECK(memfs_corrupt(f.fs, l.path, 32 + 16 + 8, 0x01) == 0); /* the vote */
  int rv = fx_open(&f);
  if (rv == 0)
    CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
  CHECK(rv == SABHA_ECORRUPT);
  CHECK(strstr(f.err, l.path) != NULL && strstr(f.err, "offset 32") != NULL);
  fx_free(&f);
}

/* A power cut just after a new segment was created, before the batch that
 * made it was synced: the restart deletes the older segment (the snapshot
 * covers it), so the new one must hold the hard state durably from its
 * creation on, or the next restart forgets the vote. */
static void wal_keeps_term_and_vote_when_a_crash_follows_a_new_segment(void) {
  bool found = false;
  for (uint64_t n = 1; n < 40 && !found; n++) {
    struct fx f;
    fx_init(&f, 1024);
    CHECK(fx_open(&f) == 0);
    CHECK(hard_state(f.w, 3, 1, 0) == 0);
    for (uint64_t i = 1; i <= n; i++)
      CHECK(append_sync(f.w, i, 1, 1) == 0);
    struct sabha_snapshot_meta m = {.index = n, .term = 1};
    CHECK(wal_save_snapshot(f.w, &m, "s", 1) == 0);
    if (!memfs_exists(f.fs, SEG2)) {
      CHECK(append(f.w, n + 1, 1, 1) == 0); /* not synced */
      found = memfs_exists(f.fs, SEG2);
    }
    if (found) {
      CHECK(fx_power_cut(&f) == 0);
      CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
      CHECK(!memfs_exists(f.fs, SEG1));
      CHECK(fx_restart(&f) == 0);
      CHECK(f.p.hard_state.term == 3 && f.p.hard_state.vote == 1);
    }
    fx_free(&f);
  }
  CHECK(found);
}

/* A young log's first segment, cut inside its header, is damage too: the
 * header was durable before the segment had its name. */
static void wal_reports_a_first_segment_cut_inside_its_header(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 3, 1, 0) == 0);
  CHECK(append_sync(f.w, 1, 3, 3) == 0);
  wal_close(f.w);
  f.w = NULL;
  CHECK(memfs_cut(f.fs, SEG1, 20) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  CHECK(strstr(f.err, SEG1) != NULL && strstr(f.err, "offset 0") != NULL);
  fx_free(&f);
}

static void wal_newer_format_is_refused_not_called_corrupt(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  wal_close(f.w);
  f.w = NULL;
  /* A well-formed header of a format version this build does not know. */
  uint8_t h[32];
  memcpy(h, "SABHAWAL", 8);
  const uint8_t rest[20] = {WAL_FORMAT_VERSION + 1, 0, 0, 0, 32, 0, 0, 0, 1};
  memcpy(h + 8, rest, sizeof rest);
  le_put_u32(h + 28, wal_crc32c(0, h, 28));
  CHECK(memfs_put(f.fs, SEG1, h, sizeof h) == 0);
  f.opt.discard_corrupt = true; /* must not count as damage */
  f.opt.refuse_corrupt = false;
  CHECK(fx_open(&f) == SABHA_EINVAL);
  CHECK(strstr(f.err, "format version") != NULL);
  CHECK(memfs_exists(f.fs, SEG1));
  fx_free(&f);
}

static int count_entries(void *arg, const char *name) {
  (void)name;
  (*(int *)arg)++;
  return 0;
}

struct find_ctx {
  char name[64];
};

static int find_damaged(void *arg, const char *name) {
  struct find_ctx *c = arg;
  if (strncmp(name, "damaged-", 8) == 0)
    snprintf(c->name, sizeof c->name, "%s", name);
  return 0;
}

static void wal_discard_moves_damaged_log_aside_keeping_hard_state(void) {
  struct fx f;
  fx_init(&f, 1024);
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 5, 2, 0) == 0);
  for (uint64_t i = 1; i <= 60; i += 10)
    CHECK(append_sync(f.w, i, 10, 1) == 0);
  struct wal_stats st;
  wal_stats(f.w, &st);
  uint64_t segments = st.segments;
  CHECK(segments >= 3);
  wal_close(f.w);
  f.w = NULL;
  CHECK(memfs_corrupt(f.fs, SEG1, 32 + 16 + 3, 0x40) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  f.opt.discard_corrupt = true;
  f.opt.refuse_corrupt = false;
  CHECK(fx_open(&f) == 0);
  CHECK(strstr(f.err, "discarded") != NULL);
  CHECK(f.p.hard_state.term == 5 && f.p.hard_state.vote == 2);
  CHECK(f.p.n_entries == 0 && !f.p.has_snapshot);
  wal_stats(f.w, &st);
  CHECK(st.discarded && st.segments == 1);
  struct find_ctx c = {""};
  CHECK(f.io.list(f.io.ctx, "wal", find_damaged, &c) == 0);
  CHECK(strcmp(c.name, "damaged-20231114-221320") == 0);
  char folder[128];
  snprintf(folder, sizeof folder, "wal/%s", c.name);
  int n = 0;
  CHECK(f.io.list(f.io.ctx, folder, count_entries, &n) == 0);
  CHECK((uint64_t)n == segments);
  CHECK(!memfs_exists(f.fs, SEG1) && !memfs_exists(f.fs, "wal/discard.intent"));
  /* The new log is an ordinary one: it grows and survives power cuts. */
  f.opt.discard_corrupt = false;
  f.opt.refuse_corrupt = true;
  CHECK(append_sync(f.w, 1, 3, 6) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(f.p.hard_state.term == 5 && f.p.n_entries == 3);
  fx_free(&f);
}

static void wal_discard_refused_when_damage_could_hide_the_hard_state(void) {
  struct fx f;
  fx_init(&f, 4096);
  f.opt.discard_corrupt = true;
  f.opt.refuse_corrupt = false;
  CHECK(fx_open(&f) == 0);
  CHECK(hard_state(f.w, 5, 2, 0) == 0);
  for (uint64_t i = 1; i <= 5; i++)
    CHECK(append_sync(f.w, i, 1, 1) == 0);
  wal_close(f.w);
  f.w = NULL;
  uint64_t second = 32 + (16 + 24) + REC1_BYTES; /* hard state, entry 1 */
  CHECK(memfs_corrupt(f.fs, SEG1, second + 20, 0x01) == 0);
  /* Only the hard state file can say the vote survived: with both of its
   * blocks bad, refused, and nothing moved. */
  CHECK(memfs_corrupt(f.fs, "wal/hardstate", 30, 0x10) == 0);
  CHECK(memfs_corrupt(f.fs, "wal/hardstate", 4096 + 8000 % 4096, 0x10) == 0);
  CHECK(fx_open(&f) == SABHA_ECORRUPT);
  CHECK(strstr(f.err, "not repairing") != NULL);
  CHECK(memfs_exists(f.fs, SEG1));
  /* One good block is enough. */
  CHECK(memfs_corrupt(f.fs, "wal/hardstate", 30, 0x10) == 0);
  CHECK(fx_open(&f) == 0);
  CHECK(f.p.hard_state.term == 5 && f.p.hard_state.vote == 2);
  CHECK(!memfs_exists(f.fs, SEG1) && f.p.n_entries == 0);
  fx_free(&f);
}

/* Fills the stack below the caller with non-zero bytes, so that a local the
 * code under test forgets to set reads as garbage, not as a lucky 0. */
static __attribute__((noinline)) void poison_stack(void) {
  volatile uint8_t junk[64u << 10];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = 0xa5;
}

/* A crash at any point of a discard leaves a directory that the next open
 * (asked to discard) turns into the same result, the guard included: a
 * discard finished from discard.intent reads nothing the intent did not
 * fill. Point 0 runs the discard through, for the guard it sets. */
static void wal_discard_survives_a_crash_at_every_step(void) {
  uint64_t guard = 0;
  for (uint64_t point = 0;; point++) {
    struct fx f;
    fx_init(&f, 1024);
    CHECK(fx_open(&f) == 0);
    CHECK(hard_state(f.w, 7, 3, 0) == 0);
    for (uint64_t i = 1; i <= 40; i += 10)
      CHECK(append_sync(f.w, i, 10, 1) == 0);
    struct sabha_snapshot_meta m = {.index = 5, .term = 1};
    CHECK(wal_save_snapshot(f.w, &m, "s", 1) == 0);
    wal_close(f.w);
    f.w = NULL;
    CHECK(memfs_corrupt(f.fs, "wal/snapshot", 48, 0x01) == 0);
    f.opt.discard_corrupt = true;
    f.opt.refuse_corrupt = false;
    if (point > 0)
      memfs_crash_at(f.fs, memfs_counts(f.fs).calls + point);
    int rv = fx_open(&f);
    bool done = rv == 0;
    if (point == 0) {
      CHECK(done && f.p.hard_state.repair_until >= 40);
      guard = f.p.hard_state.repair_until;
    }
    wal_close(f.w);
    f.w = NULL;
    memfs_crash(f.fs, (enum memfs_crash_mode)(point % MEMFS_CRASH_MODES));
    poison_stack();
    CHECK(fx_open(&f) == 0);
    CHECK(f.p.hard_state.term == 7 && f.p.hard_state.vote == 3);
    CHECK(f.p.hard_state.repair_until == guard);
    CHECK(f.p.n_entries == 0 && !f.p.has_snapshot);
    f.opt.discard_corrupt = false;
    f.opt.refuse_corrupt = true;
    CHECK(fx_restart(&f) == 0 && f.p.hard_state.term == 7);
    fx_free(&f);
    if (done && point > 0)
      break;
    CHECK(point < 1000);
  }
}

/* Recovery reads whatever is on the disk: random damage anywhere (bit
 * flips, cut files, in segments and the snapshot) must give a clean error
 * or a log that keeps the persisted contract, never a crash (run under the
 * sanitizers too). */
static void wal_recovery_survives_random_damage(void) {
  static const char *files[] = {SEG1, SEG2, "wal/wal-0000000000000003.log",
                                "wal/snapshot"};
  uint64_t opened = 0, refused = 0;
  for (uint64_t round = 0; round < 300; round++) {
    struct fx f;
    fx_init(&f, 1024);
    CHECK(fx_open(&f) == 0);
    CHECK(hard_state(f.w, 1 + round % 3, 1, 0) == 0);
    for (uint64_t i = 1; i <= 80; i += 8)
      CHECK(append_sync(f.w, i, 8, 1) == 0);
    struct sabha_snapshot_meta m = {.index = 20, .term = 1};
    CHECK(wal_save_snapshot(f.w, &m, "snapshot-bytes", 14) == 0);
    wal_close(f.w);
    f.w = NULL;
    uint64_t x = round * 2654435761u + 12345;
    for (int k = 0; k < 1 + (int)(round % 4); k++) {
      x = x * 6364136223846793005u + 1442695040888963407u;
      const char *file = files[(x >> 33) % 4];
      uint64_t size;
      if (memfs_size(f.fs, file, &size) != 0 || size == 0)
        continue;
      uint64_t at = (x >> 13) % size;
      if ((x >> 60) == 0)
        memfs_cut(f.fs, file, at);
      else
        memfs_corrupt(f.fs, file, at, (uint8_t)(1 + (x >> 40) % 255));
    }
    f.opt.discard_corrupt = round % 2 == 1;
    f.opt.refuse_corrupt = !f.opt.discard_corrupt;
    int rv = fx_open(&f);
    CHECK(rv == 0 || rv == SABHA_ECORRUPT || rv == SABHA_EINVAL);
    if (rv != 0) {
      refused++;
      CHECK(strstr(f.err, "wal/") != NULL); /* names a file */
    } else {
      opened++;
      uint64_t first = f.p.has_snapshot ? f.p.snapshot.index + 1 : 1;
      CHECK(f.p.applied == first - 1);
      for (size_t k = 0; k < f.p.n_entries; k++)
        CHECK(f.p.entries[k].index == first + k);
      CHECK(append_sync(f.w, first + f.p.n_entries, 1, 9) == 0);
    }
    fx_free(&f);
  }
  CHECK(opened > 0 && refused > 0);
}

static void wal_io_error_fails_the_handle(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  CHECK(append_sync(f.w, 1, 2, 1) == 0);
  CHECK(append(f.w, 3, 1, 1) == 0);
  memfs_fail_at(f.fs, memfs_counts(f.fs).calls + 2, EIO); /* the fsync */
  CHECK(wal_sync(f.w) == SABHA_EIO);
  CHECK(strstr(wal_errmsg(f.w), "fdatasync") != NULL);
  CHECK(strstr(wal_errmsg(f.w), "Input/output error") != NULL);
  CHECK(wal_sync(f.w) == SABHA_EIO); /* never "fixed" */
  CHECK(append(f.w, 4, 1, 1) == SABHA_EIO);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(log_is(&f.p, 1, 2, term1));
  f.opt.buffer_size_bytes = 0;
  CHECK(fx_restart(&f) == 0);
  memfs_fail_at(f.fs, memfs_counts(f.fs).calls + 1, ENOSPC);
  CHECK(append(f.w, 3, 1, 1) == SABHA_EIO);
  CHECK(strstr(wal_errmsg(f.w), "No space left") != NULL);
  fx_free(&f);
}

static void wal_stats_report_fsync_latency(void) {
  struct fx f;
  fx_init(&f, 4096);
  memfs_set_sync_latency(f.fs, 3000000); /* 3 ms each */
  CHECK(fx_open(&f) == 0);
  struct wal_stats st;
  wal_stats(f.w, &st);
  uint64_t before = st.fsyncs;
  for (uint64_t i = 1; i <= 10; i++)
    CHECK(append_sync(f.w, i, 1, 1) == 0);
  CHECK(wal_sync(f.w) == 0); /* nothing new: no fsync */
  wal_stats(f.w, &st);
  CHECK(st.fsyncs == before + 10);
  CHECK(st.fsync_us_last == 3000 && st.fsync_us_max == 3000);
  CHECK(st.fsync_us_hist[11] >= 10); /* 2048 <= 3000 < 4096 */
  CHECK(wal_fsync_us_quantile(&st, 0.5) == 4096);
  CHECK(st.bytes == 32 + 10 * REC1_BYTES + 1); /* e10t1 is 1 longer */
  fx_free(&f);
}

static void wal_options_are_checked(void) {
  struct fx f;
  fx_init(&f, 100);
  CHECK(fx_open(&f) == SABHA_EINVAL);
  CHECK(strstr(f.err, "segment_size_bytes") != NULL);
  f.opt.segment_size_bytes = 4096;
  f.opt.dir = "";
  CHECK(fx_open(&f) == SABHA_EINVAL);
  fx_free(&f);
}

static int remove_in(void *arg, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", (const char *)arg, name);
  unlink(path);
  return 0;
}

static void wal_works_on_a_real_directory(void) {
  char root[] = "/tmp/sabha-test-wal-XXXXXX";
  CHECK(mkdtemp(root) != NULL);
  char dir[64];
  snprintf(dir, sizeof dir, "%s/data", root);
  struct wal_options opt;
  wal_options_init(&opt, dir);
  opt.segment_size_bytes = 2048;
  opt.entry_size_bytes_max = 256;
  struct wal *w = NULL;
  struct sabha_persisted p;
  char err[WAL_ERRMSG_MAX];
  CHECK(wal_open(&w, &opt, &p, err, sizeof err) == 0);
  CHECK(hard_state(w, 2, 1, 0) == 0);
  for (uint64_t i = 1; i <= 200; i += 20)
    CHECK(append_sync(w, i, 20, 1) == 0);
  struct sabha_snapshot_meta m = {.index = 150, .term = 1};
  CHECK(wal_save_snapshot(w, &m, "real", 4) == 0);
  wal_close(w);
  CHECK(wal_open(&w, &opt, &p, err, sizeof err) == 0);
  CHECK(p.hard_state.term == 2 && p.snapshot.index == 150);
  CHECK(log_is(&p, 151, 200, term1));
  struct wal_stats st;
  wal_stats(w, &st);
  CHECK(st.fsyncs >= 1 && st.segments >= 1);
  /* Two logs of one process synced by one job (syncfs, one file system). */
  char dir2[64];
  snprintf(dir2, sizeof dir2, "%s/data2", root);
  struct wal_options opt2;
  wal_options_init(&opt2, dir2);
  opt2.entry_size_bytes_max = 256;
  struct wal *w2 = NULL;
  CHECK(wal_open(&w2, &opt2, &p, err, sizeof err) == 0);
  CHECK(append(w, 201, 4, 1) == 0);
  CHECK(append(w2, 1, 4, 1) == 0);
  struct wal_sync_job jobs[2];
  struct wal_sync_job *jp[2] = {&jobs[0], &jobs[1]};
  CHECK(wal_sync_begin(w, &jobs[0]) == 0 && wal_sync_begin(w2, &jobs[1]) == 0);
  wal_sync_jobs_run(jp, 2);
  CHECK(jobs[0].rv == 0 && jobs[1].rv == 0);
  CHECK(wal_sync_end(w, &jobs[0]) == 0 && wal_sync_end(w2, &jobs[1]) == 0);
  wal_close(w);
  wal_close(w2);
  CHECK(wal_open(&w2, &opt2, &p, err, sizeof err) == 0);
  CHECK(log_is(&p, 1, 4, term1));
  wal_close(w2);
  struct wal_io io;
  wal_io_posix(&io);
  io.list(io.ctx, dir, remove_in, dir);
  io.list(io.ctx, dir2, remove_in, dir2);
  rmdir(dir);
  rmdir(dir2);
  rmdir(root);
}

/* The removal notice a node believed (wal_removed.c) survives a power
 * cut once saved, is absent on a fresh log, and a damaged one is reported
 * as such, not taken. */
static void wal_removed_marker_survives_and_damage_is_refused(void) {
  struct fx f;
  fx_init(&f, 4096);
  CHECK(fx_open(&f) == 0);
  uint64_t index = 99;
  CHECK(wal_removed_load(f.w, &index) == 0 && index == 0);
  CHECK(wal_removed_save(f.w, 42) == 0);
  CHECK(fx_power_cut(&f) == 0);
  CHECK(wal_removed_load(f.w, &index) == 0 && index == 42);
  CHECK(memfs_corrupt(f.fs, "wal/removed", 17, 0x10) == 0);
  CHECK(wal_removed_load(f.w, &index) == SABHA_ECORRUPT && index == 0);
  CHECK(strstr(wal_errmsg(f.w), "removed marker") != NULL);
  fx_free(&f);
}

int main(void) {
  RUN(wal_fresh_directory_recovers_empty);
  RUN(wal_removed_marker_survives_and_damage_is_refused);
  RUN(wal_synced_entries_and_hard_state_survive_power_cut);
  RUN(wal_commit_hint_is_clamped_to_the_recovered_log);
  RUN(wal_unsynced_appends_are_not_durable);
  RUN(wal_background_sync_covers_what_was_written_before_it);
  RUN(wal_rollover_after_a_failed_job_fails);
  RUN(wal_snapshot_install_after_a_failed_job_fails);
  RUN(wal_one_job_syncs_the_logs_of_several_groups);
  RUN(wal_open_makes_what_it_recovers_durable);
  RUN(wal_put_at_existing_index_overwrites_and_keeps_later);
  RUN(wal_truncation_drops_the_suffix);
  RUN(wal_refuses_gaps_and_oversized_entries_whole);
  RUN(wal_rolls_over_to_new_segments);
  RUN(wal_snapshot_deletes_covered_segments_and_keeps_the_boundary);
  RUN(wal_snapshot_job_runs_beside_appends);
  RUN(wal_snapshot_job_yields_to_a_newer_snapshot);
  RUN(wal_snapshot_job_failures_leave_old_or_new);
  RUN(wal_open_finishes_deletions_a_failure_interrupted);
  RUN(wal_snapshot_beyond_the_log_leaves_it_empty);
  RUN(wal_snapshot_keeps_entries_after_it);
  RUN(wal_ready_parts_apply_in_contract_order);
  RUN(wal_rollback_to_the_held_snapshot_writes_the_truncation);
  RUN(wal_corruption_in_a_closed_segment_names_file_and_offset);
  RUN(wal_corruption_before_the_tail_of_the_last_segment_is_reported);
  RUN(wal_torn_tail_is_cut_and_the_log_goes_on);
  RUN(wal_garbage_in_the_last_record_is_cut);
  RUN(wal_reports_a_bit_flip_after_a_clean_shutdown);
  RUN(wal_clean_shutdown_then_crash_keeps_the_torn_tail_rule);
  RUN(wal_keeps_zeros_ahead_of_its_records);
  RUN(wal_zeros_after_an_earlier_segment_are_damage);
  RUN(wal_stale_records_of_another_segment_are_not_witnesses);
  RUN(wal_overlapping_headers_after_damage_are_damage);
  RUN(wal_a_gap_too_large_to_bound_is_not_repaired);
  RUN(wal_missing_segment_is_reported);
  RUN(wal_damaged_snapshot_is_reported);
  RUN(wal_leftovers_of_interrupted_writes_are_removed);
  RUN(wal_keeps_term_and_vote_when_last_segment_is_cut_to_its_header);
  RUN(wal_reports_damage_to_the_hard_state_a_segment_began_with);
  RUN(wal_reports_a_first_segment_cut_inside_its_header);
  RUN(wal_keeps_term_and_vote_when_a_crash_follows_a_new_segment);
  RUN(wal_reads_a_version_1_log_and_appends_in_version_2);
  RUN(wal_reports_a_log_that_contradicts_its_own_records);
  RUN(wal_newer_format_is_refused_not_called_corrupt);
  RUN(wal_discard_moves_damaged_log_aside_keeping_hard_state);
  RUN(wal_discard_refused_when_damage_could_hide_the_hard_state);
  RUN(wal_discard_survives_a_crash_at_every_step);
  RUN(wal_recovery_survives_random_damage);
  RUN(wal_io_error_fails_the_handle);
  RUN(wal_stats_report_fsync_latency);
  RUN(wal_options_are_checked);
  RUN(wal_works_on_a_real_directory);
  return failures == 0 ? 0 : 1;
}
