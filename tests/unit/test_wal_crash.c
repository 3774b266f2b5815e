/* Crash and I/O-error tests of the write-ahead log, in the SQLite manner:
 * run one deterministic workload against memfs, count its injection points
 * (every write, fsync, directory fsync, create, rename, unlink...), then for
 * EVERY point N rerun the workload and
 *
 *   - crash the machine at call N, once per way of treating unsynced data
 *     (dropped, a prefix kept, the last write torn, bytes garbled, writes
 *     landing out of order), sometimes crash again during the recovery, and
 *     recover with wal_open; or
 *   - make call N alone fail with EIO (or ENOSPC) and check that the WAL
 *     reports it, refuses to go on, and never called anything durable that
 *     a power cut then takes away.
 *
 * The oracle is a model of the log. The workload is a list of steps (a
 * ready batch, or a snapshot taken by the host), each ending with
 * wal_sync(); a step's records are appended in order. So after a crash
 * during step k the disk must hold exactly the model after steps 0..k-1
 * plus some prefix of step k's records: everything acknowledged, nothing
 * half-written, nothing invented. wal_open must never return
 * SABHA_ECORRUPT for damage confined to unsynced data. After recovery the
 * log must also keep working: a follow-up batch is written, synced, and
 * must survive a power cut exactly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/prng.h"
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

#define STEPS 60
#define OPS_MAX 12
#define ENTRY_BYTES_MAX 160
#define SNAP_BYTES_MAX 48
#define INDEX_MAX 400
#define SEGMENT_BYTES 1024

/* ---- the model ---- */

enum op_kind { OP_HS = 1, OP_SNAP, OP_TRUNC, OP_PUT };

struct mentry {
  uint64_t term;
  uint32_t type;
  uint32_t size;
  uint8_t data[ENTRY_BYTES_MAX];
};

struct op {
  int kind;
  struct sabha_hard_state hs;
  struct sabha_snapshot_meta snap;
  uint8_t snap_data[SNAP_BYTES_MAX];
  size_t snap_size;
  uint64_t from;
  uint64_t index;
  struct mentry e;
};

struct step {
  bool host_snapshot; /* wal_save_snapshot rather than a ready batch */
  struct op ops[OPS_MAX];
  size_t n_ops;
};

struct model {
  bool has_hs;
  struct sabha_hard_state hs;
  bool has_snap;
  struct sabha_snapshot_meta snap;
  uint8_t snap_data[SNAP_BYTES_MAX];
  size_t snap_size;
  uint64_t last;
  struct mentry e[INDEX_MAX + 1]; /* by index; (snap.index, last] count */
};

static uint64_t model_snap(const struct model *m) {
  return m->has_snap ? m->snap.index : 0;
}

/* The WAL's rules, written out plainly (wal.h, "records"). */
static void model_apply(struct model *m, const struct op *op) {
  uint64_t snap = model_snap(m);
  switch (op->kind) {
  case OP_HS:
    m->has_hs = true;
    m->hs = op->hs;
    break;
  case OP_SNAP:
    m->has_snap = true;
    m->snap = op->snap;
    memcpy(m->snap_data, op->snap_data, op->snap_size);
    m->snap_size = op->snap_size;
    if (m->last < op->snap.index)
      m->last = op->snap.index;
    break;
  case OP_TRUNC:
    if (op->from - 1 < m->last)
      m->last = op->from - 1 > snap ? op->from - 1 : snap;
    break;
  case OP_PUT:
    if (op->index <= snap)
      break;
    if (op->index > m->last + 1 || op->index > INDEX_MAX)
      abort(); /* the generator broke its own rules */
    m->e[op->index] = op->e;
    if (op->index > m->last)
      m->last = op->index;
    break;
  default:
    abort();
  }
}

/* Does the recovered state equal the model? Says why not in `why`. */
static bool model_matches(const struct model *m,
                          const struct sabha_persisted *p, char *why,
                          size_t why_size) {
  struct sabha_hard_state hs = m->has_hs ? m->hs : (struct sabha_hard_state){0};
  uint64_t commit = hs.commit < m->last ? hs.commit : m->last;
  uint64_t snap = model_snap(m);
  if (p->hard_state.term != hs.term || p->hard_state.vote != hs.vote ||
      p->hard_state.commit != commit) {
    snprintf(why, why_size, "hard state (%llu,%u,%llu) want (%llu,%u,%llu)",
             (unsigned long long)p->hard_state.term, p->hard_state.vote,
             (unsigned long long)p->hard_state.commit,
             (unsigned long long)hs.term, hs.vote, (unsigned long long)commit);
    return false;
  }
  if (p->has_snapshot != m->has_snap || p->applied != snap ||
      (m->has_snap &&
       (p->snapshot.index != m->snap.index ||
        p->snapshot.term != m->snap.term ||
        p->snapshot_size_bytes != m->snap_size ||
        (m->snap_size > 0 &&
         memcmp(p->snapshot_data, m->snap_data, m->snap_size) != 0)))) {
    snprintf(why, why_size, "snapshot at %llu want %llu",
             (unsigned long long)(p->has_snapshot ? p->snapshot.index : 0),
             (unsigned long long)snap);
    return false;
  }
  if (p->n_entries != m->last - snap) {
    snprintf(why, why_size, "%zu entries want %llu", p->n_entries,
             (unsigned long long)(m->last - snap));
    return false;
  }
  for (size_t k = 0; k < p->n_entries; k++) {
    const struct sabha_entry *e = &p->entries[k];
    const struct mentry *want = &m->e[snap + 1 + k];
    if (e->index != snap + 1 + k || e->term != want->term ||
        e->type != want->type || e->size_bytes != want->size ||
        (want->size > 0 && memcmp(e->data, want->data, want->size) != 0)) {
      snprintf(why, why_size, "entry %llu differs",
               (unsigned long long)(snap + 1 + k));
      return false;
    }
  }
  return true;
}

/* ---- the workload ---- */

/* How often a step installs a leader's snapshot, and how often such an
 * install also truncates the log after it (Raft: the log did not hold the
 * snapshot's last entry). */
struct mix {
  double install;
  double install_truncates;
  double install_inside; /* at an index before the log's last entry */
};

static const struct mix mix_default = {0.08, 0.5, 0};
/* Installs in a third of the steps, each with a truncation, mostly inside
 * the log so that a stale suffix is there to be dropped. */
static const struct mix mix_installs = {0.35, 1.0, 0.8};

struct workload {
  struct step steps[STEPS];
  struct model *after; /* after[k]: the model once steps 0..k-1 are done */
};

static struct op *push_op(struct step *st, int kind) {
  if (st->n_ops == OPS_MAX)
    abort();
  struct op *op = &st->ops[st->n_ops++];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  return op;
}

static void fill_entry(struct prng *g, struct op *op, uint64_t index,
                       uint64_t term) {
  op->index = index;
  op->e.term = term;
  op->e.type = prng_chance(g, 0.1) ? SABHA_ENTRY_NOOP : SABHA_ENTRY_COMMAND;
  /* Mostly small, sometimes large, so segments hold several and roll. */
  op->e.size =
      (uint32_t)(prng_chance(g, 0.2) ? prng_below(g, ENTRY_BYTES_MAX + 1)
                                     : prng_below(g, 24));
  for (uint32_t i = 0; i < op->e.size; i++)
    op->e.data[i] = (uint8_t)prng_next(g);
}

static void apply_step(struct model *m, const struct step *st) {
  for (size_t i = 0; i < st->n_ops; i++)
    model_apply(m, &st->ops[i]);
}

/* A deterministic mix of everything a host asks of the WAL: new terms and
 * votes, appends, Raft truncate-and-rewrite, Paxos overwrites in place,
 * snapshots from a leader (beyond the log, inside it, with and without a
 * truncation) and host compactions. */
static void workload_make(struct workload *wl, uint64_t seed,
                          const struct mix *mix) {
  struct prng g;
  prng_seed(&g, seed);
  wl->after = calloc(STEPS + 1, sizeof *wl->after);
  if (wl->after == NULL)
    abort();
  struct model m;
  memset(&m, 0, sizeof m);
  uint64_t term = 1;
  uint32_t vote_in_term = 0;
  for (size_t s = 0; s < STEPS; s++) {
    struct step *st = &wl->steps[s];
    memset(st, 0, sizeof *st);
    wl->after[s] = m;
    uint64_t snap = model_snap(&m);
    if (m.last > snap && prng_chance(&g, 0.1)) {
      st->host_snapshot = true;
      struct op *op = push_op(st, OP_SNAP);
      uint64_t at = prng_range(&g, snap + 1, m.last);
      op->snap = (struct sabha_snapshot_meta){at, m.e[at].term};
      op->snap_size = (size_t)prng_below(&g, SNAP_BYTES_MAX + 1);
      for (size_t i = 0; i < op->snap_size; i++)
        op->snap_data[i] = (uint8_t)prng_next(&g);
      model_apply(&m, op);
      continue;
    }
    if (prng_chance(&g, 0.3)) {
      struct op *op = push_op(st, OP_HS);
      /* As an engine does: the term never goes back, and within a term
       * the vote is set once (the hard state file relies on both). */
      uint64_t next = term + prng_below(&g, 2);
      uint32_t vote = (uint32_t)prng_below(&g, 4);
      if (next == term && vote_in_term != 0)
        vote = vote_in_term;
      term = next;
      vote_in_term = vote;
      op->hs = (struct sabha_hard_state){
          .term = term, .vote = vote, .commit = prng_below(&g, m.last + 2)};
      model_apply(&m, op);
    }
    if (prng_chance(&g, mix->install)) {
      struct op *op = push_op(st, OP_SNAP);
      uint64_t at = prng_range(&g, snap + 1, m.last + 3);
      if (mix->install_inside > 0 && m.last > snap + 1 &&
          prng_chance(&g, mix->install_inside))
        at = prng_range(&g, snap + 1, m.last - 1);
      op->snap =
          (struct sabha_snapshot_meta){at, at <= m.last ? m.e[at].term : term};
      op->snap_size = (size_t)prng_below(&g, SNAP_BYTES_MAX + 1);
      for (size_t i = 0; i < op->snap_size; i++)
        op->snap_data[i] = (uint8_t)prng_next(&g);
      model_apply(&m, op);
      if (prng_chance(&g, mix->install_truncates)) {
        /* Raft: the log did not hold the snapshot's last entry. */
        op = push_op(st, OP_TRUNC);
        op->from = at + 1;
        model_apply(&m, op);
      }
    }
    snap = model_snap(&m);
    bool truncated = st->n_ops > 0 && st->ops[st->n_ops - 1].kind == OP_TRUNC;
    if (!truncated && m.last > snap && prng_chance(&g, 0.15)) {
      /* Raft: drop a suffix and write it again under a newer term. */
      struct op *op = push_op(st, OP_TRUNC);
      op->from = prng_range(&g, snap + 1, m.last);
      model_apply(&m, op);
      term++;
    } else if (m.last > snap && prng_chance(&g, 0.15)) {
      /* Paxos: a slot accepted again under a higher ballot. */
      struct op *op = push_op(st, OP_PUT);
      fill_entry(&g, op, prng_range(&g, snap + 1, m.last), term + 1);
      model_apply(&m, op);
    }
    uint64_t n = prng_below(&g, 5);
    for (uint64_t i = 0; i < n && st->n_ops < OPS_MAX; i++) {
      struct op *op = push_op(st, OP_PUT);
      fill_entry(&g, op, m.last + 1, term);
      model_apply(&m, op);
    }
  }
  wl->after[STEPS] = m;
}

static void workload_free(struct workload *wl) {
  free(wl->after);
}

/* The ready batch for a (non-host-snapshot) step; `e` holds its entries. */
static void ready_of(const struct step *st, struct sabha_ready *rd,
                     struct sabha_entry *e) {
  memset(rd, 0, sizeof *rd);
  for (size_t i = 0; i < st->n_ops; i++) {
    const struct op *op = &st->ops[i];
    switch (op->kind) {
    case OP_HS:
      rd->has_hard_state = true;
      rd->hard_state = op->hs;
      break;
    case OP_SNAP:
      rd->has_snapshot = true;
      rd->snapshot = op->snap;
      rd->snapshot_data = op->snap_data;
      rd->snapshot_size_bytes = op->snap_size;
      break;
    case OP_TRUNC:
      rd->truncate_from = op->from;
      break;
    case OP_PUT:
      e[rd->n_entries++] = (struct sabha_entry){.index = op->index,
                                                .term = op->e.term,
                                                .type = op->e.type,
                                                .size_bytes = op->e.size,
                                                .data = op->e.data};
      break;
    default:
      abort();
    }
  }
  rd->entries = e;
}

/* Carries out one step and syncs; 0 or the first error. */
static int run_step(struct wal *w, const struct step *st) {
  int rv;
  if (st->host_snapshot) {
    const struct op *op = &st->ops[0];
    rv = wal_save_snapshot(w, &op->snap, op->snap_data, op->snap_size);
  } else {
    struct sabha_ready rd;
    struct sabha_entry e[OPS_MAX];
    ready_of(st, &rd, e);
    rv = wal_append_ready(w, &rd);
  }
  return rv != 0 ? rv : wal_sync(w);
}

/* ---- one run ---- */

struct harness {
  struct memfs *fs;
  struct wal_io io;
  struct wal_options opt;
  struct wal *w;
  struct sabha_persisted p;
  char err[WAL_ERRMSG_MAX];
  bool close_clean; /* the workload ends with wal_close_clean */
};

static void h_init(struct harness *h, uint64_t fs_seed,
                   uint32_t buffer_size_bytes) {
  memset(h, 0, sizeof *h);
  if (memfs_new(&h->fs, fs_seed) != 0)
    abort();
  memfs_io(h->fs, &h->io);
  wal_options_init(&h->opt, "wal");
  h->opt.io = &h->io;
  h->opt.segment_size_bytes = SEGMENT_BYTES;
  h->opt.entry_size_bytes_max = ENTRY_BYTES_MAX;
  h->opt.snapshot_size_bytes_max = SNAP_BYTES_MAX;
  h->opt.buffer_size_bytes = buffer_size_bytes;
  /* Damage is to be found and named here; REPAIRING has its own test. */
  h->opt.refuse_corrupt = true;
  h->close_clean = true;
}

static int h_open(struct harness *h) {
  wal_close(h->w);
  h->w = NULL;
  return wal_open(&h->w, &h->opt, &h->p, h->err, sizeof h->err);
}

static void h_free(struct harness *h) {
  wal_close(h->w);
  memfs_free(h->fs);
}

/* Runs the workload until an error; returns the step in progress then
 * (STEPS when none failed, or when the clean close that ends it failed)
 * and its error in *rv. */
static size_t h_workload(struct harness *h, const struct workload *wl,
                         int *rv) {
  *rv = h_open(h);
  if (*rv != 0)
    return 0;
  for (size_t k = 0; k < STEPS; k++) {
    *rv = run_step(h->w, &wl->steps[k]);
    if (*rv != 0)
      return k;
  }
  if (h->close_clean) {
    *rv = wal_close_clean(h->w);
    h->w = NULL;
  }
  return STEPS;
}

/* Does op j of `st` install a snapshot whose truncation is op j + 1? */
static bool install_then_truncate(const struct step *st, size_t j) {
  return st->ops[j].kind == OP_SNAP && j + 1 < st->n_ops &&
         st->ops[j + 1].kind == OP_TRUNC;
}

/* Which prefix of step k's records the recovered state shows, or -1. A
 * snapshot and the truncation that goes with it count as one record: the
 * state between them (the new snapshot over the old log's suffix) is one
 * the node never had, and must never come back. */
static int match_prefix(const struct workload *wl, size_t k,
                        const struct sabha_persisted *p, struct model *out,
                        char *why, size_t why_size) {
  *out = wl->after[k];
  char before[160] = "", after[160] = "";
  if (model_matches(out, p, before, sizeof before))
    return 0;
  const struct step *st = &wl->steps[k];
  for (size_t j = 0; k < STEPS && j < st->n_ops; j++) {
    model_apply(out, &st->ops[j]);
    if (install_then_truncate(st, j))
      continue;
    if (model_matches(out, p, after, sizeof after))
      return (int)j + 1;
  }
  snprintf(why, why_size, "no prefix of the step matches: before it, %s%s%s",
           before, after[0] ? "; after it, " : "", after);
  return -1;
}

/* Writes one more batch on the recovered log, syncs, cuts the power and
 * checks that exactly it was added: the log goes on after a repair. */
static bool follow_up(struct harness *h, struct model *m, char *why,
                      size_t why_size) {
  struct step st;
  memset(&st, 0, sizeof st);
  struct op *op = push_op(&st, OP_HS);
  op->hs =
      (struct sabha_hard_state){.term = h->p.hard_state.term + 1, .vote = 1};
  for (uint64_t i = 0; i < 3; i++) {
    op = push_op(&st, OP_PUT);
    op->index = m->last + 1 + i;
    op->e.term = h->p.hard_state.term + 1;
    op->e.type = SABHA_ENTRY_COMMAND;
    op->e.size = 20;
    memset(op->e.data, 'f' + (int)i, op->e.size);
  }
  int rv = run_step(h->w, &st);
  if (rv != 0) {
    snprintf(why, why_size, "follow-up batch failed: %s", wal_errmsg(h->w));
    return false;
  }
  apply_step(m, &st);
  wal_close(h->w);
  h->w = NULL;
  memfs_crash(h->fs, MEMFS_CRASH_DROP);
  rv = h_open(h);
  if (rv != 0) {
    snprintf(why, why_size, "reopen after follow-up: %s", h->err);
    return false;
  }
  return model_matches(m, &h->p, why, why_size);
}

struct tally {
  uint64_t runs;
  uint64_t in_installs; /* crashed in a step that installs and truncates */
  uint64_t installs_finished;  /* by recovery: the snapshot was stored */
  uint64_t installs_abandoned; /* by recovery: it was not */
  uint64_t torn_tails_cut;
  uint64_t partial_steps; /* recovered inside the step that crashed */
  uint64_t double_crashes;
};

/* Crash at injection point `point` with `mode`; every claim checked. */
static void crash_run(const struct workload *wl, uint32_t buffer_bytes,
                      uint64_t point, enum memfs_crash_mode mode,
                      uint64_t fs_seed, struct tally *t) {
  struct harness h;
  h_init(&h, fs_seed, buffer_bytes);
  memfs_crash_at(h.fs, point);
  int rv;
  size_t k = h_workload(&h, wl, &rv);
  if (!memfs_dead(h.fs)) {
    fprintf(stderr, "point %llu: no crash (rv %d)\n", (unsigned long long)point,
            rv);
    failures++;
    h_free(&h);
    return;
  }
  if (rv != SABHA_EIO) {
    fprintf(stderr, "point %llu: the crash surfaced as %d, not SABHA_EIO\n",
            (unsigned long long)point, rv);
    failures++;
  }
  memfs_crash(h.fs, mode);
  if (point % 3 == 0) {
    /* Crash again, during recovery this time. */
    memfs_crash_at(h.fs, memfs_counts(h.fs).calls + 1 + point % 7);
    rv = h_open(&h);
    if (rv != 0) {
      t->double_crashes++;
      memfs_crash(h.fs,
                  (enum memfs_crash_mode)((mode + 1) % MEMFS_CRASH_MODES));
    } else {
      memfs_crash_at(h.fs, 0);
    }
  }
  rv = h_open(&h);
  char why[WAL_ERRMSG_MAX + 64] = "";
  struct model m;
  int j = -1;
  if (rv == 0) {
    j = match_prefix(wl, k, &h.p, &m, why, sizeof why);
    struct wal_stats st;
    wal_stats(h.w, &st);
    t->torn_tails_cut += st.recovered_tail_bytes > 0;
    t->installs_finished += strstr(h.err, "finished a snapshot") != NULL;
    t->installs_abandoned += strstr(h.err, "abandoned a snapshot") != NULL;
  }
  if (rv == 0 && j >= 0 && !follow_up(&h, &m, why, sizeof why))
    j = -2;
  if (rv != 0 || j < 0) {
    fprintf(stderr,
            "crash at call %llu (step %zu, mode %s, fs seed %llu): %s%s\n",
            (unsigned long long)point, k, memfs_crash_mode_name(mode),
            (unsigned long long)fs_seed, rv != 0 ? "recovery failed: " : "",
            rv != 0 ? h.err : why);
    failures++;
  } else {
    t->runs++;
    t->partial_steps += j > 0 && (size_t)j < wl->steps[k].n_ops;
  }
  for (size_t i = 0; k < STEPS && i < wl->steps[k].n_ops; i++)
    t->in_installs += install_then_truncate(&wl->steps[k], i);
  h_free(&h);
}

static uint64_t count_points(const struct workload *wl, uint32_t buffer_bytes,
                             struct memfs_counts *c) {
  struct harness h;
  h_init(&h, 1, buffer_bytes);
  int rv;
  size_t k = h_workload(&h, wl, &rv);
  if (rv != 0 || k != STEPS)
    abort();
  *c = memfs_counts(h.fs);
  h_free(&h);
  return c->calls;
}

/* The workload alone, no faults: the model and the WAL agree. */
static void wal_crash_workload_runs_clean(void) {
  struct workload wl;
  workload_make(&wl, 1, &mix_default);
  struct harness h;
  h_init(&h, 1, WAL_BUFFER_BYTES_DEFAULT);
  h.close_clean = false;
  int rv;
  CHECK(h_workload(&h, &wl, &rv) == STEPS && rv == 0);
  struct wal_stats st;
  wal_stats(h.w, &st);
  CHECK(st.snapshots_saved > 0 && st.segments_deleted > 0);
  CHECK(st.bytes_written > 4 * SEGMENT_BYTES); /* several rollovers */
  memfs_crash(h.fs, MEMFS_CRASH_DROP);
  CHECK(h_open(&h) == 0);
  char why[WAL_ERRMSG_MAX + 64];
  CHECK(model_matches(&wl.after[STEPS], &h.p, why, sizeof why));
  h_free(&h);
  workload_free(&wl);
}

/* The oracle can fail. A WAL that acknowledges before it syncs (appends
 * the last batch, skips the fsync, says "done") loses that batch at a power
 * cut, and the check must say so. */
static void wal_crash_oracle_catches_acknowledged_but_lost_data(void) {
  struct workload wl;
  workload_make(&wl, 1, &mix_default);
  size_t last = STEPS;
  for (size_t k = 0; k < STEPS; k++)
    if (!wl.steps[k].host_snapshot && wl.steps[k].n_ops > 0)
      last = k;
  CHECK(last < STEPS);
  struct harness h;
  h_init(&h, 1, WAL_BUFFER_BYTES_DEFAULT);
  CHECK(h_open(&h) == 0);
  for (size_t k = 0; k < last; k++)
    CHECK(run_step(h.w, &wl.steps[k]) == 0);
  /* The broken host: append, and call it durable without wal_sync. */
  struct sabha_ready rd;
  struct sabha_entry e[OPS_MAX];
  ready_of(&wl.steps[last], &rd, e);
  CHECK(wal_append_ready(h.w, &rd) == 0);
  wal_close(h.w);
  h.w = NULL;
  memfs_crash(h.fs, MEMFS_CRASH_DROP);
  CHECK(h_open(&h) == 0);
  char why[WAL_ERRMSG_MAX + 64];
  CHECK(model_matches(&wl.after[last], &h.p, why, sizeof why) ||
        rd.has_snapshot);
  CHECK(!model_matches(&wl.after[last + 1], &h.p, why, sizeof why));
  h_free(&h);
  workload_free(&wl);
}

/* The model as wal_open would return it; `e` holds its entries. */
static void persisted_of(const struct model *m, struct sabha_persisted *p,
                         struct sabha_entry *e) {
  memset(p, 0, sizeof *p);
  uint64_t snap = model_snap(m);
  if (m->has_hs)
    p->hard_state = m->hs;
  if (p->hard_state.commit > m->last)
    p->hard_state.commit = m->last;
  p->has_snapshot = m->has_snap;
  p->snapshot = m->snap;
  p->snapshot_data = m->snap_data;
  p->snapshot_size_bytes = m->snap_size;
  p->applied = snap;
  for (uint64_t i = snap + 1; i <= m->last; i++)
    e[i - snap - 1] = (struct sabha_entry){.index = i,
                                           .term = m->e[i].term,
                                           .type = m->e[i].type,
                                           .size_bytes = m->e[i].size,
                                           .data = m->e[i].data};
  p->entries = e;
  p->n_entries = (size_t)(m->last - snap);
}

/* The oracle can fail here too: the new snapshot over the old log's
 * suffix (the install without its truncation) is refused, the install
 * with it accepted. */
static void wal_crash_oracle_refuses_a_snapshot_without_its_truncation(void) {
  struct workload wl;
  workload_make(&wl, 11, &mix_installs);
  static struct sabha_entry e[INDEX_MAX];
  size_t tried = 0;
  for (size_t k = 0; k < STEPS; k++) {
    const struct step *st = &wl.steps[k];
    for (size_t j = 0; j + 1 < st->n_ops; j++) {
      if (!install_then_truncate(st, j))
        continue;
      struct model m = wl.after[k];
      for (size_t i = 0; i <= j; i++)
        model_apply(&m, &st->ops[i]);
      struct model whole = m;
      model_apply(&whole, &st->ops[j + 1]);
      if (whole.last == m.last)
        continue; /* nothing after the snapshot to drop */
      struct sabha_persisted p;
      struct model out;
      char why[WAL_ERRMSG_MAX];
      persisted_of(&m, &p, e);
      CHECK(match_prefix(&wl, k, &p, &out, why, sizeof why) == -1);
      persisted_of(&whole, &p, e);
      CHECK(match_prefix(&wl, k, &p, &out, why, sizeof why) == (int)j + 2);
      tried++;
    }
  }
  CHECK(tried > 5);
  workload_free(&wl);
}

/* `buffer_bytes` small makes a batch many writes, so that a crash can
 * tear, garble or reorder the middle of a batch, not only its end. */
static void crash_every_point(uint64_t seed, uint32_t buffer_bytes,
                              const struct mix *mix, struct tally *t) {
  struct workload wl;
  workload_make(&wl, seed, mix);
  struct memfs_counts c;
  uint64_t points = count_points(&wl, buffer_bytes, &c);
  *t = (struct tally){0};
  for (uint64_t point = 1; point <= points; point++)
    for (int mode = 0; mode < MEMFS_CRASH_MODES; mode++)
      crash_run(&wl, buffer_bytes, point, (enum memfs_crash_mode)mode,
                seed * 1000003 + point * 7 + (uint64_t)mode, t);
  printf("     workload %llu, buffer %u: %llu injection points (%llu writes, "
         "%llu fsyncs), %llu crash runs recovered, %llu inside a step, %llu "
         "torn tails cut, %llu crashed again in recovery, %llu inside an "
         "install that truncates (%llu finished by recovery, %llu "
         "abandoned)\n",
         (unsigned long long)seed, buffer_bytes, (unsigned long long)points,
         (unsigned long long)c.writes, (unsigned long long)c.syncs,
         (unsigned long long)t->runs, (unsigned long long)t->partial_steps,
         (unsigned long long)t->torn_tails_cut,
         (unsigned long long)t->double_crashes,
         (unsigned long long)t->in_installs,
         (unsigned long long)t->installs_finished,
         (unsigned long long)t->installs_abandoned);
  workload_free(&wl);
}

static void wal_crash_at_every_point_recovers_a_prefix(void) {
  int before = failures;
  struct tally t;
  for (uint64_t seed = 1; seed <= 4; seed++)
    crash_every_point(seed, seed % 2 ? WAL_BUFFER_BYTES_DEFAULT : 100,
                      &mix_default, &t);
  CHECK(failures == before);
}

/* A follower installing a leader's snapshot drops the log suffix that
 * contradicts it. The snapshot file and that truncation must become durable
 * together: a crash anywhere must leave the old snapshot with the old log
 * or the new snapshot with the truncated log, never the new snapshot over
 * the stale suffix (match_prefix refuses that state). */
static void wal_snapshot_and_its_truncation_survive_a_crash_together(void) {
  int before = failures;
  struct tally sum = {0};
  for (uint64_t seed = 11; seed <= 12; seed++) {
    struct tally t;
    crash_every_point(seed, seed % 2 ? WAL_BUFFER_BYTES_DEFAULT : 100,
                      &mix_installs, &t);
    sum.in_installs += t.in_installs;
    sum.installs_finished += t.installs_finished;
    sum.installs_abandoned += t.installs_abandoned;
  }
  CHECK(failures == before);
  /* The workload does what it is for: crashes inside installs, on both
   * sides of the snapshot file's rename. */
  CHECK(sum.in_installs > 100);
  CHECK(sum.installs_finished > 0 && sum.installs_abandoned > 0);
}

/* ---- damage after a clean shutdown ---- */

#define FILES_MAX 32

struct files {
  char path[FILES_MAX][64];
  size_t n;
  size_t last_seg; /* index of the highest-numbered segment */
};

static int files_each(void *arg, const char *name) {
  struct files *f = arg;
  if (f->n == FILES_MAX)
    abort();
  snprintf(f->path[f->n], sizeof f->path[f->n], "wal/%s", name);
  if (strncmp(name, "wal-", 4) == 0 &&
      strcmp(f->path[f->n], f->path[f->last_seg]) > 0)
    f->last_seg = f->n;
  f->n++;
  return 0;
}

/* Runs workload 5 to its clean close and lists the files it leaves. */
static void clean_workload(struct workload *wl, struct harness *h,
                           struct files *fl) {
  workload_make(wl, 5, &mix_default);
  h_init(h, 1, WAL_BUFFER_BYTES_DEFAULT);
  int rv;
  CHECK(h_workload(h, wl, &rv) == STEPS && rv == 0);
  CHECK(h->io.list(h->io.ctx, "wal", files_each, fl) == 0);
}

/* The hard state file keeps two copies: a bit flipped in one (every 16th
 * byte of the file, both blocks, padding too) is no damage to the node's
 * state: the log comes back whole, and the bad block is written again. */
static void hard_state_file_flips(struct harness *h, const struct workload *wl,
                                  const char *path, uint64_t size) {
  CHECK(size == 2 * 4096);
  for (uint64_t off = 0; off < size; off += 16) {
    CHECK(memfs_corrupt(h->fs, path, off, (uint8_t)(1u << (off % 8))) == 0);
    CHECK(h_open(h) == 0);
    CHECK(strstr(h->err, "hard state file") != NULL);
    char why[WAL_ERRMSG_MAX + 64];
    CHECK(model_matches(&wl->after[STEPS], &h->p, why, sizeof why));
    CHECK(h_open(h) == 0); /* rewritten: nothing left to repair */
    CHECK(strstr(h->err, "hard state file") == NULL);
    CHECK(model_matches(&wl->after[STEPS], &h->p, why, sizeof why));
  }
}

/* After wal_close_clean nothing in the log is unsynced: a bit flipped at
 * ANY byte of any file must be reported as corruption, never cut as a torn
 * tail. The one exception is the clean-shutdown record itself, which holds
 * no data: damage there is cut, and the log comes back whole. */
static void wal_every_bit_flip_after_a_clean_shutdown_is_reported(void) {
  struct workload wl;
  struct harness h;
  struct files fl = {.n = 0};
  clean_workload(&wl, &h, &fl);
  int rv;
  CHECK(strncmp(fl.path[fl.last_seg], "wal/wal-", 8) == 0);
  uint64_t size_last;
  CHECK(memfs_size(h.fs, fl.path[fl.last_seg], &size_last) == 0);
  const uint64_t close_bytes = 16 + 8;
  uint64_t flips = 0;
  for (size_t i = 0; i < fl.n; i++) {
    uint64_t size;
    CHECK(memfs_size(h.fs, fl.path[i], &size) == 0);
    if (i == fl.last_seg)
      size -= close_bytes; /* the record itself: below */
    if (strcmp(fl.path[i], "wal/hardstate") == 0) {
      hard_state_file_flips(&h, &wl, fl.path[i], size);
      continue;
    }
    for (uint64_t off = 0; off < size; off++) {
      uint8_t mask = (uint8_t)(1u << (off % 8));
      CHECK(memfs_corrupt(h.fs, fl.path[i], off, mask) == 0);
      rv = h_open(&h);
      if (rv != SABHA_ECORRUPT)
        fprintf(stderr, "%s offset %llu: open gave %d (%s)\n", fl.path[i],
                (unsigned long long)off, rv, h.err);
      CHECK(rv == SABHA_ECORRUPT); /* and nothing was written */
      CHECK(memfs_corrupt(h.fs, fl.path[i], off, mask) == 0);
      flips++;
    }
  }
  printf("     %llu bit flips in %zu files, every one reported\n",
         (unsigned long long)flips, fl.n);
  CHECK(flips > 1000 && fl.n >= 3);
  h_free(&h);
  for (uint64_t k = 0; k < close_bytes; k++) {
    h_init(&h, 1, WAL_BUFFER_BYTES_DEFAULT);
    CHECK(h_workload(&h, &wl, &rv) == STEPS && rv == 0);
    CHECK(memfs_corrupt(h.fs, fl.path[fl.last_seg], size_last - close_bytes + k,
                        0x10) == 0);
    CHECK(h_open(&h) == 0);
    char why[WAL_ERRMSG_MAX + 64];
    CHECK(model_matches(&wl.after[STEPS], &h.p, why, sizeof why));
    struct wal_stats st;
    wal_stats(h.w, &st);
    CHECK(!st.closed_clean && st.recovered_tail_bytes == close_bytes);
    h_free(&h);
  }
  h_init(&h, 1, WAL_BUFFER_BYTES_DEFAULT); /* and undamaged: clean */
  CHECK(h_workload(&h, &wl, &rv) == STEPS && rv == 0);
  CHECK(h_open(&h) == 0);
  struct wal_stats st;
  wal_stats(h.w, &st);
  CHECK(st.closed_clean && st.recovered_tail_bytes == 0);
  h_free(&h);
  workload_free(&wl);
}

/* Call `point` fails with `err`: the WAL says so, refuses to continue, and
 * what it acknowledged before survives a power cut. */
static void error_run(const struct workload *wl, uint32_t buffer_bytes,
                      uint64_t point, int err, enum memfs_crash_mode mode,
                      uint64_t *reported) {
  struct harness h;
  h_init(&h, point, buffer_bytes);
  memfs_fail_at(h.fs, point, err);
  int rv;
  size_t k = h_workload(&h, wl, &rv);
  if (rv != 0) {
    (*reported)++;
    if (rv != SABHA_EIO) {
      fprintf(stderr, "error at call %llu: got %d, want SABHA_EIO\n",
              (unsigned long long)point, rv);
      failures++;
    }
    if (h.w != NULL && k < STEPS &&
        (wal_sync(h.w) != SABHA_EIO ||
         run_step(h.w, &wl->steps[k]) != SABHA_EIO)) {
      fprintf(stderr, "error at call %llu: handle not failed\n",
              (unsigned long long)point);
      failures++;
    }
  } else if (point <= memfs_counts(h.fs).calls) {
    /* The failed call was one whose failure is harmless and reported
     * nowhere: only a leftover-file unlink could be; there is none here. */
    fprintf(stderr, "error at call %llu went unreported\n",
            (unsigned long long)point);
    failures++;
  }
  wal_close(h.w);
  h.w = NULL;
  memfs_crash(h.fs, mode);
  rv = h_open(&h);
  char why[WAL_ERRMSG_MAX + 64] = "";
  struct model m;
  if (rv != 0 || match_prefix(wl, k, &h.p, &m, why, sizeof why) < 0) {
    fprintf(stderr, "error %d at call %llu (step %zu, %s): %s\n", err,
            (unsigned long long)point, k, memfs_crash_mode_name(mode),
            rv != 0 ? h.err : why);
    failures++;
  }
  h_free(&h);
}

static void wal_io_error_at_every_point_is_reported_and_not_acknowledged(void) {
  struct workload wl;
  workload_make(&wl, 3, &mix_default);
  int before = failures;
  const uint32_t buffers[2] = {WAL_BUFFER_BYTES_DEFAULT, 100};
  for (int b = 0; b < 2; b++) {
    struct memfs_counts c;
    uint64_t points = count_points(&wl, buffers[b], &c);
    uint64_t reported = 0;
    for (uint64_t point = 1; point <= points; point++) {
      int err = point % 5 == 0 ? ENOSPC : EIO;
      error_run(&wl, buffers[b], point, err, MEMFS_CRASH_DROP, &reported);
      error_run(&wl, buffers[b], point, err, MEMFS_CRASH_PREFIX, &reported);
    }
    printf("     buffer %u: %llu injection points, %llu errors reported\n",
           buffers[b], (unsigned long long)points,
           (unsigned long long)reported);
    CHECK(reported == 2 * points);
  }
  CHECK(failures == before);
  workload_free(&wl);
}

/* Did the log ever hold this entry at its index (after some step)? A
 * repaired log is the log as it was at the damage: an entry rewritten
 * later (Raft truncated it, Paxos accepted the slot again) comes back in
 * its older form, as on a node that never heard of the rewrite. */
static bool entry_in_history(const struct workload *wl,
                             const struct sabha_entry *e) {
  for (size_t s = 0; s <= STEPS; s++) {
    const struct model *m = &wl->after[s];
    const struct mentry *want = &m->e[e->index];
    if (e->index > model_snap(m) && e->index <= m->last &&
        e->term == want->term && e->size_bytes == want->size &&
        (want->size == 0 || memcmp(e->data, want->data, want->size) == 0))
      return true;
  }
  return false;
}

/* What a repaired log may be: the model's hard state (term and vote,
 * whatever block went bad), its snapshot or none (a damaged snapshot is
 * given up with the log), entries the log held at their indexes, and,
 * when entries were lost, a guard at or above the last index the log
 * held: every index the node may have acknowledged. */
static bool repair_matches(const struct workload *wl,
                           const struct sabha_persisted *p, char *why,
                           size_t why_size) {
  const struct model *m = &wl->after[STEPS];
  uint64_t snap = model_snap(m);
  if (p->hard_state.term != m->hs.term || p->hard_state.vote != m->hs.vote) {
    snprintf(why, why_size, "hard state (%llu,%u) want (%llu,%u)",
             (unsigned long long)p->hard_state.term, p->hard_state.vote,
             (unsigned long long)m->hs.term, m->hs.vote);
    return false;
  }
  uint64_t base = p->has_snapshot ? p->snapshot.index : 0;
  if (p->has_snapshot &&
      (!m->has_snap || p->snapshot.index != snap ||
       p->snapshot_size_bytes != m->snap_size ||
       (m->snap_size > 0 &&
        memcmp(p->snapshot_data, m->snap_data, m->snap_size) != 0))) {
    snprintf(why, why_size, "a snapshot at %llu that is not the model's",
             (unsigned long long)p->snapshot.index);
    return false;
  }
  for (size_t k = 0; k < p->n_entries; k++) {
    const struct sabha_entry *e = &p->entries[k];
    uint64_t index = base + 1 + k;
    if (e->index != index || index > INDEX_MAX || !entry_in_history(wl, e)) {
      snprintf(why, why_size, "entry %llu is not the model's",
               (unsigned long long)index);
      return false;
    }
  }
  if (base + p->n_entries < m->last && p->hard_state.repair_until < m->last) {
    snprintf(why, why_size, "log cut to %llu of %llu with a guard at %llu",
             (unsigned long long)(base + p->n_entries),
             (unsigned long long)m->last,
             (unsigned long long)p->hard_state.repair_until);
    return false;
  }
  return true;
}

/* The same flips, repaired instead of refused (REPAIRING in wal.h): the
 * node starts, keeps its term and vote, keeps the log before the damage,
 * and carries a guard covering everything it may have acknowledged, also
 * after a restart, which finds no damage left in the live files. */
static void wal_every_bit_flip_after_a_clean_shutdown_is_repaired(void) {
  struct workload wl;
  struct harness h;
  struct files fl = {.n = 0};
  clean_workload(&wl, &h, &fl);
  int rv;
  uint64_t sizes[FILES_MAX];
  for (size_t i = 0; i < fl.n; i++)
    CHECK(memfs_size(h.fs, fl.path[i], &sizes[i]) == 0);
  h_free(&h);
  uint64_t flips = 0, cut = 0;
  for (size_t i = 0; i < fl.n; i++) {
    if (strcmp(fl.path[i], "wal/hardstate") == 0)
      continue; /* hard_state_file_flips */
    uint64_t stride = sizes[i] / 64 + 1;
    for (uint64_t off = i % stride; off < sizes[i]; off += stride) {
      h_init(&h, 1, WAL_BUFFER_BYTES_DEFAULT);
      CHECK(h_workload(&h, &wl, &rv) == STEPS && rv == 0);
      CHECK(memfs_corrupt(h.fs, fl.path[i], off, 0x04) == 0);
      h.opt.refuse_corrupt = false;
      rv = h_open(&h);
      if (strcmp(fl.path[i], "wal/snapshot") == 0 && off < 48) {
        /* The one place left where nothing can say how far the log
         * reached: refused, naming why (docs/storage.md). */
        CHECK(rv == SABHA_ECORRUPT && strstr(h.err, "not repairing") != NULL);
        h_free(&h);
        continue;
      }
      if (rv != 0)
        fprintf(stderr, "%s offset %llu: %s\n", fl.path[i],
                (unsigned long long)off, h.err);
      CHECK(rv == 0);
      char why[WAL_ERRMSG_MAX + 64] = "";
      bool ok = repair_matches(&wl, &h.p, why, sizeof why);
      if (!ok)
        fprintf(stderr, "%s offset %llu: %s\n", fl.path[i],
                (unsigned long long)off, why);
      CHECK(ok);
      uint64_t guard = h.p.hard_state.repair_until;
      /* A restart finds a clean log (the damage is cut off or moved
       * away: refusing damage, it still opens) and keeps the guard. */
      h.opt.refuse_corrupt = true;
      CHECK(h_open(&h) == 0);
      CHECK(h.p.hard_state.repair_until == guard);
      CHECK(repair_matches(&wl, &h.p, why, sizeof why));
      cut += guard != 0;
      flips++;
      h_free(&h);
    }
  }
  printf("     %llu bit flips repaired, %llu with a guard\n",
         (unsigned long long)flips, (unsigned long long)cut);
  workload_free(&wl);
  CHECK(flips > 100 && cut > 0);
}

int main(void) {
  RUN(wal_crash_workload_runs_clean);
  RUN(wal_crash_oracle_catches_acknowledged_but_lost_data);
  RUN(wal_crash_oracle_refuses_a_snapshot_without_its_truncation);
  RUN(wal_crash_at_every_point_recovers_a_prefix);
  RUN(wal_snapshot_and_its_truncation_survive_a_crash_together);
  RUN(wal_every_bit_flip_after_a_clean_shutdown_is_reported);
  RUN(wal_every_bit_flip_after_a_clean_shutdown_is_repaired);
  RUN(wal_io_error_at_every_point_is_reported_and_not_acknowledged);
  return failures == 0 ? 0 : 1;
}
