/* The lab: scenarios -> simulator runs of every engine on the same seeds ->
 * figures, a terminal table, and a report (HTML with SVG charts, JSON, CSV).
 *
 * A "case" is one scenario, or one variant of a scenario that has variants.
 * Each case runs every engine ("cell") on every seed ("run"). The same
 * scenario, engine settings and seed give every engine the same topology,
 * clients, operation sequence and fault timeline; only the protocol
 * differs, which is what makes the comparison fair.
 *
 * Flow: lab_init() with parsed scenarios -> lab_run_all() (threads, one
 * simulator run each; progress on stderr) -> lab_summarize() (medians over
 * seeds, the paragraphs) -> the writers (report_*.c) -> lab_free(). */
#ifndef SABHA_LAB_LAB_H
#define SABHA_LAB_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lab/metrics.h"
#include "lab/scenario.h"

#define LAB_ENGINES_MAX 8
#define LAB_SEEDS_MAX 100
#define LAB_JOBS_MAX 64
#define LAB_NARRATIVE_BYTES 6144

struct lab_options {
  const char *engines[LAB_ENGINES_MAX];
  uint32_t n_engines;
  uint32_t n_seeds;    /* seeds seed_first .. seed_first + n_seeds - 1 */
  uint64_t seed_first; /* default 1 */
  uint32_t jobs;       /* worker threads; 0: one per CPU */
  FILE *progress;      /* NULL: none */
  bool progress_tty;   /* redraw one line (else plain lines) */
};

struct lab_run {
  uint64_t seed;
  bool done;
  int rv; /* sim_run()'s; nonzero: the run did not happen (err) */
  char err[256];
  uint64_t op_cap;
  struct lab_metrics m;
};

/* One engine in one case: its runs and their figures over seeds. */
struct lab_cell {
  const char *engine;
  struct lab_run *runs; /* [n_seeds] */
  struct lab_stat throughput, success, latency_mean, latency_p50, latency_p99,
      latency_p999, latency_max, availability, leader_changes,
      elections_started, msgs_per_op, bytes_per_op, acked_lost, client_s,
      baseline;
  struct lab_stat recovery[LAB_MARKS_MAX];
  struct lab_stat first_commit[LAB_MARKS_MAX];
  struct lab_stat window_writes[LAB_MARKS_MAX + 1];
  struct lab_stat window_leader_changes[LAB_MARKS_MAX + 1];
  uint64_t acked_lost_total, safety_total, linearizability_total,
      liveness_total, invariant_total;
  uint32_t runs_fatal, runs_failed, runs_not_run, runs_cap_hit;
};

struct lab_case {
  const struct lab_scenario *sc;
  int variant; /* index in sc->variants, or -1 */
  char id[2 * LAB_NAME_BYTES];
  struct lab_settings settings; /* merged: what the runs used */
  uint32_t clients;
  struct lab_marks marks;
  struct lab_cell cells[LAB_ENGINES_MAX];
  uint32_t n_cells;
  char narrative[LAB_NARRATIVE_BYTES];
};

struct lab {
  struct lab_options opt;
  const struct lab_scenario *scenarios;
  size_t n_scenarios;
  struct lab_case *cases;
  size_t n_cases;
  double wall_s;
  uint32_t runs_total;
  uint32_t runs_fatal;    /* consensus safety broken (or sim errors) */
  uint32_t runs_liveness; /* did not converge after healing */
};

/* Lab defaults for an engine setting left unset by the scenario. They are
 * the same for every engine, so that only the protocol differs. */
#define LAB_DEFAULT_BATCH 64u
#define LAB_DEFAULT_INFLIGHT 64u
#define LAB_QUIESCE_MS 10000u

/* Sets up the cases for `scenarios` (kept by pointer: they must outlive
 * the lab). Returns 0, SABHA_EINVAL (err says why) or SABHA_ENOMEM. */
int lab_init(struct lab *lab, const struct lab_options *opt,
             const struct lab_scenario *scenarios, size_t n_scenarios,
             char *err, size_t err_size);
void lab_free(struct lab *lab);

/* Runs every case x engine x seed. Returns 0 once all have run (whatever
 * they found), or SABHA_ENOMEM. */
int lab_run_all(struct lab *lab);

/* Medians over seeds and the generated paragraphs (narrative.c). */
void lab_summarize(struct lab *lab);
void lab_narrate(struct lab_case *c, uint32_t n_seeds);
/* A paragraph comparing the n cases (variants of one scenario, adjacent in
 * lab->cases) engine by engine. */
void lab_narrate_variants(const struct lab_case *cases, size_t n, char *buf,
                          size_t size);

/* Builds the simulator options for one run; `script` must hold
 * lab_script_size(c) events and outlives the run. */
size_t lab_script_size(const struct lab_case *c);
void lab_build_options(const struct lab_case *c, const char *engine,
                       uint64_t seed, struct sim_options *o,
                       struct sim_script_event *script, uint64_t *op_cap);

/* Writers. Each returns 0 or SABHA_EIO (err says which file). */
int lab_write_html(const struct lab *lab, const char *path, char *err,
                   size_t err_size);
int lab_write_json(const struct lab *lab, const char *path, char *err,
                   size_t err_size);
int lab_write_csv(const struct lab *lab, const char *dir, char *err,
                  size_t err_size);
/* The terminal summary: one table per case, then its paragraph. */
void lab_print_tables(const struct lab *lab, FILE *f);

/* Display names ("Raft", "Multi-Paxos", "classic Paxos", "async"). */
const char *lab_engine_title(const char *engine);

#endif
