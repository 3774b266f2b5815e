/* Running the lab: every case x engine x seed is one simulator run, handed
 * to a small pool of threads (sim_run() keeps no global state, so runs are
 * independent), with a progress line on stderr.
 *
 * The results do not depend on the number of threads: each run is
 * deterministic and writes only its own slot. The main thread only
 * watches the counter and draws progress. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lab/lab.h"

const char *lab_engine_title(const char *engine) {
  if (strcmp(engine, "raft") == 0)
    return "Raft";
  if (strcmp(engine, "multipaxos") == 0)
    return "Multi-Paxos";
  if (strcmp(engine, "paxos") == 0)
    return "classic Paxos";
  return engine;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- set-up -------------------------------------------------------------- */

/* The timeline's distinct instants, with the labels of their events. */
static void case_marks(struct lab_case *c) {
  const struct lab_scenario *sc = c->sc;
  struct lab_marks *mk = &c->marks;
  memset(mk, 0, sizeof *mk);
  mk->load_end_us = sc->workload.ops > 0 ? 0 : sc->workload.duration_ms * 1000u;
  for (uint32_t k = 0; k < sc->n_events; k++) {
    const struct lab_event *ev = &sc->events[k];
    uint64_t at_us = ev->at_ms * 1000u;
    if (mk->n == 0 || mk->at_us[mk->n - 1] != at_us) {
      mk->at_us[mk->n] = at_us;
      mk->label[mk->n][0] = '\0';
      mk->n++;
    }
    char *label = mk->label[mk->n - 1];
    size_t used = strlen(label);
    snprintf(label + used, sizeof mk->label[0] - used, "%s%s",
             used ? " + " : "", ev->label);
  }
}

static int case_init(struct lab_case *c, const struct lab_options *opt,
                     const struct lab_scenario *sc, int variant) {
  const struct lab_variant *v = variant >= 0 ? &sc->variants[variant] : NULL;
  memset(c, 0, sizeof *c);
  c->sc = sc;
  c->variant = variant;
  snprintf(c->id, sizeof c->id, "%s%s%s", sc->name, v ? "/" : "",
           v ? v->name : "");
  c->settings = lab_settings_merged(sc, v);
  c->clients = v && v->clients ? v->clients : sc->workload.clients;
  case_marks(c);
  c->n_cells = opt->n_engines;
  for (uint32_t e = 0; e < opt->n_engines; e++) {
    struct lab_cell *cell = &c->cells[e];
    cell->engine = opt->engines[e];
    cell->runs = calloc(opt->n_seeds, sizeof *cell->runs);
    if (cell->runs == NULL)
      return SABHA_ENOMEM;
    for (uint32_t s = 0; s < opt->n_seeds; s++)
      cell->runs[s].seed = opt->seed_first + s;
  }
  return 0;
}

int lab_init(struct lab *lab, const struct lab_options *opt,
             const struct lab_scenario *scenarios, size_t n_scenarios,
             char *err, size_t err_size) {
  memset(lab, 0, sizeof *lab);
  if (opt->n_engines == 0 || opt->n_engines > LAB_ENGINES_MAX ||
      opt->n_seeds == 0 || opt->n_seeds > LAB_SEEDS_MAX) {
    snprintf(err, err_size, "engines must be 1..%u and seeds 1..%u",
             LAB_ENGINES_MAX, LAB_SEEDS_MAX);
    return SABHA_EINVAL;
  }
  lab->opt = *opt;
  lab->scenarios = scenarios;
  lab->n_scenarios = n_scenarios;
  size_t n = 0;
  for (size_t i = 0; i < n_scenarios; i++)
    n += scenarios[i].n_variants ? scenarios[i].n_variants : 1;
  lab->cases = calloc(n ? n : 1, sizeof *lab->cases);
  if (lab->cases == NULL)
    return SABHA_ENOMEM;
  for (size_t i = 0; i < n_scenarios; i++) {
    const struct lab_scenario *sc = &scenarios[i];
    int nv = (int)sc->n_variants;
    for (int v = nv ? 0 : -1; v < nv; v++) {
      lab->n_cases++;
      if (case_init(&lab->cases[lab->n_cases - 1], opt, sc, v) != 0) {
        snprintf(err, err_size, "out of memory");
        return SABHA_ENOMEM;
      }
    }
  }
  lab->runs_total = (uint32_t)(lab->n_cases * opt->n_engines * opt->n_seeds);
  return 0;
}

void lab_free(struct lab *lab) {
  for (size_t i = 0; i < lab->n_cases; i++)
    for (uint32_t e = 0; e < lab->cases[i].n_cells; e++) {
      struct lab_cell *cell = &lab->cases[i].cells[e];
      for (uint32_t s = 0; cell->runs && s < lab->opt.n_seeds; s++)
        lab_metrics_free(&cell->runs[s].m);
      free(cell->runs);
    }
  free(lab->cases);
  memset(lab, 0, sizeof *lab);
}

/* ---- one run ------------------------------------------------------------- */

static void run_one(const struct lab_case *c, const char *engine,
                    struct lab_run *run) {
  struct sim_options o;
  struct sim_result r;
  size_t n_script = lab_script_size(c);
  struct sim_script_event *script =
      calloc(n_script ? n_script : 1, sizeof *script);
  if (script == NULL) {
    run->rv = SABHA_ENOMEM;
    snprintf(run->err, sizeof run->err, "out of memory");
    return;
  }
  lab_build_options(c, engine, run->seed, &o, script, &run->op_cap);
  run->rv = sim_run(&o, &r, run->err, sizeof run->err);
  if (run->rv == 0) {
    run->rv = lab_metrics_compute(engine, &r, &c->marks, run->op_cap, &run->m);
    if (run->rv != 0)
      snprintf(run->err, sizeof run->err, "out of memory");
    sim_result_free(&r);
  }
  free(script);
}

/* ---- the pool ------------------------------------------------------------ */

struct pool {
  struct lab *lab;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint32_t next;     /* next job to hand out */
  uint32_t finished; /* jobs done */
  char last[160];    /* what finished last, for the progress line */
};

static void job_find(struct lab *lab, uint32_t job, struct lab_case **c,
                     struct lab_cell **cell, struct lab_run **run) {
  uint32_t per_case = lab->opt.n_engines * lab->opt.n_seeds;
  *c = &lab->cases[job / per_case];
  uint32_t rest = job % per_case;
  *cell = &(*c)->cells[rest / lab->opt.n_seeds];
  *run = &(*cell)->runs[rest % lab->opt.n_seeds];
}

static void *worker(void *arg) {
  struct pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    uint32_t job = p->next < p->lab->runs_total ? p->next++ : UINT32_MAX;
    pthread_mutex_unlock(&p->mu);
    if (job == UINT32_MAX)
      return NULL;
    struct lab_case *c;
    struct lab_cell *cell;
    struct lab_run *run;
    job_find(p->lab, job, &c, &cell, &run);
    run_one(c, cell->engine, run);
    pthread_mutex_lock(&p->mu);
    run->done = true;
    p->finished++;
    snprintf(p->last, sizeof p->last, "%s %s seed %llu", c->id, cell->engine,
             (unsigned long long)run->seed);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
}

/* Progress after the first second: one redrawn line on a terminal, a plain
 * line every few seconds otherwise (logs stay readable). */
static void progress_draw(struct lab *lab, struct pool *p, double start,
                          double *last_line, bool final) {
  FILE *f = lab->opt.progress;
  double t = now_s() - start;
  if (f == NULL || (t < 1.0 && !final) || (final && *last_line == 0))
    return;
  double eta =
      p->finished > 0 ? t / p->finished * (lab->runs_total - p->finished) : 0;
  if (lab->opt.progress_tty) {
    fprintf(f, "\r\033[Klab: %u/%u runs, %.0f s elapsed, ~%.0f s left  (%s)",
            p->finished, lab->runs_total, t, eta, p->last);
    if (final)
      fputc('\n', f);
    *last_line = t;
  } else if (final || t - *last_line >= 5.0) {
    fprintf(f, "lab: %u/%u runs, %.0f s elapsed, ~%.0f s left (last: %s)\n",
            p->finished, lab->runs_total, t, eta, p->last);
    *last_line = t;
  }
  fflush(f);
}

static uint32_t jobs_for(const struct lab *lab) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t jobs =
      lab->opt.jobs ? lab->opt.jobs : (cpus > 0 ? (uint32_t)cpus : 1);
  if (jobs > LAB_JOBS_MAX)
    jobs = LAB_JOBS_MAX;
  if (jobs > lab->runs_total)
    jobs = lab->runs_total ? lab->runs_total : 1;
  return jobs;
}

int lab_run_all(struct lab *lab) {
  struct pool p = {.lab = lab};
  pthread_mutex_init(&p.mu, NULL);
  pthread_cond_init(&p.cv, NULL);
  double start = now_s(), last_line = 0;
  uint32_t jobs = jobs_for(lab), started = 0;
  pthread_t th[LAB_JOBS_MAX];
  for (; started < jobs; started++)
    if (pthread_create(&th[started], NULL, worker, &p) != 0)
      break;
  if (started == 0)
    worker(&p); /* no threads to be had: run them here */
  pthread_mutex_lock(&p.mu);
  while (p.finished < lab->runs_total) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 250000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p.cv, &p.mu, &ts);
    progress_draw(lab, &p, start, &last_line, false);
  }
  progress_draw(lab, &p, start, &last_line, true);
  pthread_mutex_unlock(&p.mu);
  for (uint32_t k = 0; k < started; k++)
    pthread_join(th[k], NULL);
  pthread_cond_destroy(&p.cv);
  pthread_mutex_destroy(&p.mu);
  lab->wall_s = now_s() - start;
  return 0;
}

/* ---- summaries ----------------------------------------------------------- */

#define STAT_OF(cell, field, expr)                                             \
  do {                                                                         \
    double v_[LAB_SEEDS_MAX] = {0};                                            \
    size_t n_ = 0;                                                             \
    for (uint32_t s_ = 0; s_ < n_seeds; s_++) {                                \
      const struct lab_run *run = &(cell)->runs[s_];                           \
      if (run->rv == 0)                                                        \
        v_[n_++] = (expr);                                                     \
    }                                                                          \
    (cell)->field = lab_stat_of(v_, n_);                                       \
  } while (0)

static void cell_counts(struct lab_cell *cell, uint32_t n_seeds,
                        struct lab *lab) {
  for (uint32_t s = 0; s < n_seeds; s++) {
    const struct lab_run *run = &cell->runs[s];
    if (run->rv != 0) {
      cell->runs_not_run++;
      lab->runs_fatal++;
      continue;
    }
    const struct lab_metrics *m = &run->m;
    cell->acked_lost_total += m->acked_writes_lost;
    cell->safety_total += m->safety_violations;
    cell->linearizability_total += m->linearizability_failures;
    cell->liveness_total += m->liveness_failures;
    cell->invariant_total += m->invariant_violations;
    cell->runs_failed += m->failed;
    cell->runs_fatal += m->fatal;
    cell->runs_cap_hit += m->op_cap_hit;
    lab->runs_fatal += m->fatal;
    lab->runs_liveness += m->liveness_failures > 0;
  }
}

static void cell_summarize(struct lab_cell *cell, const struct lab_marks *mk,
                           uint32_t n_seeds) {
  STAT_OF(cell, throughput, run->m.throughput);
  STAT_OF(cell, success, run->m.success_rate);
  STAT_OF(cell, latency_mean, run->m.latency_ms_mean);
  STAT_OF(cell, latency_p50, run->m.latency_ms_p50);
  STAT_OF(cell, latency_p99, run->m.latency_ms_p99);
  STAT_OF(cell, latency_p999, run->m.latency_ms_p999);
  STAT_OF(cell, latency_max, run->m.latency_ms_max);
  STAT_OF(cell, availability, run->m.availability);
  STAT_OF(cell, leader_changes, (double)run->m.leader_changes);
  STAT_OF(cell, elections_started, (double)run->m.elections_started);
  STAT_OF(cell, msgs_per_op, run->m.msgs_per_op);
  STAT_OF(cell, bytes_per_op, run->m.bytes_per_op);
  STAT_OF(cell, acked_lost, (double)run->m.acked_writes_lost);
  STAT_OF(cell, client_s, run->m.client_s);
  STAT_OF(cell, baseline, run->m.baseline_ops_per_s);
  for (uint32_t k = 0; k < mk->n; k++) {
    STAT_OF(cell, recovery[k], run->m.recovery_s[k]);
    STAT_OF(cell, first_commit[k], run->m.first_commit_s[k]);
  }
  for (uint32_t k = 0; k <= mk->n; k++) {
    STAT_OF(cell, window_writes[k], (double)run->m.windows[k].writes);
    STAT_OF(cell, window_leader_changes[k],
            (double)run->m.windows[k].leader_changes);
  }
}

void lab_summarize(struct lab *lab) {
  lab->runs_fatal = lab->runs_liveness = 0;
  for (size_t i = 0; i < lab->n_cases; i++) {
    struct lab_case *c = &lab->cases[i];
    for (uint32_t e = 0; e < c->n_cells; e++) {
      cell_counts(&c->cells[e], lab->opt.n_seeds, lab);
      cell_summarize(&c->cells[e], &c->marks, lab->opt.n_seeds);
    }
    lab_narrate(c, lab->opt.n_seeds);
  }
}
