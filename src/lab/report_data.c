/* The lab's machine-readable output: results.json (everything, nested by
 * scenario case, engine and seed) and CSV files (one table each: runs,
 * summary, recovery, timeseries, leaders), for spreadsheets and scripts.
 * A figure that was not measured (no recovery within the window, say) is
 * null in JSON and empty in CSV. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "check/json.h"
#include "lab/lab.h"
#include "lab/report.h"

/* A cell's figures by the name both files give them, in the order both list
 * them. baseline_ops_per_s is last because summary.csv has never carried it
 * (CELL_STATS_CSV_N stops before it); results.json has. */
struct named_stat {
  const char *key;
  const struct lab_stat *st;
};
enum { CELL_STATS_N = 15, CELL_STATS_CSV_N = CELL_STATS_N - 1 };

static void cell_stats(const struct lab_cell *cell,
                       struct named_stat out[CELL_STATS_N]) {
  const struct named_stat stats[CELL_STATS_N] = {
      {"throughput_ops_per_s", &cell->throughput},
      {"success_rate", &cell->success},
      {"latency_ms_mean", &cell->latency_mean},
      {"latency_ms_p50", &cell->latency_p50},
      {"latency_ms_p99", &cell->latency_p99},
      {"latency_ms_p999", &cell->latency_p999},
      {"latency_ms_max", &cell->latency_max},
      {"availability", &cell->availability},
      {"leader_changes", &cell->leader_changes},
      {"elections_started", &cell->elections_started},
      {"msgs_per_op", &cell->msgs_per_op},
      {"bytes_per_op", &cell->bytes_per_op},
      {"acked_writes_lost", &cell->acked_lost},
      {"client_s", &cell->client_s},
      {"baseline_ops_per_s", &cell->baseline}};
  memcpy(out, stats, sizeof stats);
}

/* Median, min and max of `st`, -1 (written as null or empty) when no run
 * gave the figure. */
static void stat_figures(const struct lab_stat *st, double out[3]) {
  out[0] = st->n ? st->median : -1;
  out[1] = st->n ? st->min : -1;
  out[2] = st->n ? st->max : -1;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_num(FILE *f, double v) {
  if (!isfinite(v) || v < 0)
    fputs("null", f);
  else
    fprintf(f, "%.6g", v);
}

static void json_stat(FILE *f, const char *key, const struct lab_stat *st) {
  double v[3];
  stat_figures(st, v);
  fprintf(f, "\"%s\":{\"median\":", key);
  json_num(f, v[0]);
  fputs(",\"min\":", f);
  json_num(f, v[1]);
  fputs(",\"max\":", f);
  json_num(f, v[2]);
  fprintf(f, ",\"n\":%u}", st->n);
}

static void json_run(FILE *f, const struct lab_run *run,
                     const struct lab_marks *mk) {
  const struct lab_metrics *m = &run->m;
  fprintf(f, "{\"seed\":%llu,\"ran\":%s", (unsigned long long)run->seed,
          run->rv == 0 ? "true" : "false");
  if (run->rv != 0) {
    fputs(",\"error\":", f);
    json_fput_text(f, run->err);
    fputc('}', f);
    return;
  }
  fprintf(f,
          ",\"ops_total\":%llu,\"ops_ok\":%llu,\"ops_failed\":%llu,"
          "\"ops_indeterminate\":%llu,\"writes_ok\":%llu,"
          "\"latency_samples\":%zu",
          (unsigned long long)m->ops_total, (unsigned long long)m->ops_ok,
          (unsigned long long)m->ops_failed, (unsigned long long)m->ops_info,
          (unsigned long long)m->writes_ok, m->n_latencies);
  const struct {
    const char *key;
    double v;
  } nums[] = {{"client_s", m->client_s},
              {"throughput_ops_per_s", m->throughput},
              {"success_rate", m->success_rate},
              {"latency_ms_mean", m->latency_ms_mean},
              {"latency_ms_p50", m->latency_ms_p50},
              {"latency_ms_p99", m->latency_ms_p99},
              {"latency_ms_p999", m->latency_ms_p999},
              {"latency_ms_max", m->latency_ms_max},
              {"availability", m->availability},
              {"baseline_ops_per_s", m->baseline_ops_per_s},
              {"msgs_per_op", m->msgs_per_op},
              {"bytes_per_op", m->bytes_per_op},
              {"wall_s", m->wall_s}};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    fprintf(f, ",\"%s\":", nums[i].key);
    json_num(f, nums[i].v);
  }
  fprintf(
      f,
      ",\"leader_changes\":%llu,\"elections_started\":%llu,"
      "\"msgs_sent\":%llu,\"msg_bytes_sent\":%llu,"
      "\"acked_writes_lost\":%llu,\"safety_violations\":%llu,"
      "\"linearizability_failures\":%llu,\"liveness_failures\":%llu,"
      "\"invariant_violations\":%llu,\"failed\":%s,\"fatal\":%s,"
      "\"op_cap_hit\":%s,\"events\":%llu,\"trace_hash\":\"0x%016llx\"",
      (unsigned long long)m->leader_changes,
      (unsigned long long)m->elections_started,
      (unsigned long long)m->msgs_sent, (unsigned long long)m->msg_bytes_sent,
      (unsigned long long)m->acked_writes_lost,
      (unsigned long long)m->safety_violations,
      (unsigned long long)m->linearizability_failures,
      (unsigned long long)m->liveness_failures,
      (unsigned long long)m->invariant_violations, m->failed ? "true" : "false",
      m->fatal ? "true" : "false", m->op_cap_hit ? "true" : "false",
      (unsigned long long)m->events, (unsigned long long)m->trace_hash);
  fputs(",\"failure\":", f);
  json_fput_text(f, m->failure);
  fputs(",\"recovery_s\":[", f);
  for (uint32_t k = 0; k < mk->n; k++) {
    fputs(k ? "," : "", f);
    json_num(f, m->recovery_s[k]);
  }
  fputs("],\"first_commit_s\":[", f);
  for (uint32_t k = 0; k < mk->n; k++) {
    fputs(k ? "," : "", f);
    json_num(f, m->first_commit_s[k]);
  }
  fputs("],\"leaders\":[", f);
  for (size_t i = 0; i < m->n_leaders; i++)
    fprintf(f, "%s{\"t_ms\":%.1f,\"node\":%u,\"term\":%llu}", i ? "," : "",
            m->leaders[i].time_us / 1e3, m->leaders[i].node,
            (unsigned long long)m->leaders[i].term);
  fputs("]", f);
  if (m->n_groups > 1) {
    fputs(",\"groups\":[", f);
    for (uint32_t g = 0; g < m->n_groups; g++) {
      const struct lab_group_figures *gf = &m->groups[g];
      fprintf(f,
              "%s{\"group\":%u,\"leader\":%u,\"keys\":%u,\"ops_ok\":%llu,"
              "\"leader_changes\":%u,\"latency_ms_p50\":",
              g ? "," : "", g, gf->leader, gf->keys,
              (unsigned long long)gf->ops_ok, gf->leader_changes);
      json_num(f, gf->latency_ms_p50);
      fputc('}', f);
    }
    fputc(']', f);
  }
  fputc('}', f);
}

static void json_cell(FILE *f, const struct lab_cell *cell,
                      const struct lab_case *c, uint32_t n_seeds) {
  char verdict[80];
  fputs("{\"engine\":", f);
  json_fput_text(f, cell->engine);
  fputs(",\"verdict\":", f);
  json_fput_text(f, lab_cell_verdict(cell, verdict, sizeof verdict));
  fprintf(f,
          ",\"runs_fatal\":%u,\"runs_failed\":%u,\"acked_writes_lost\":%llu,"
          "\"safety_violations\":%llu,\"linearizability_failures\":%llu,"
          "\"liveness_failures\":%llu,\"invariant_violations\":%llu,"
          "\"summary\":{",
          cell->runs_fatal, cell->runs_failed,
          (unsigned long long)cell->acked_lost_total,
          (unsigned long long)cell->safety_total,
          (unsigned long long)cell->linearizability_total,
          (unsigned long long)cell->liveness_total,
          (unsigned long long)cell->invariant_total);
  struct named_stat stats[CELL_STATS_N];
  cell_stats(cell, stats);
  for (size_t i = 0; i < CELL_STATS_N; i++) {
    fputs(i ? "," : "", f);
    json_stat(f, stats[i].key, stats[i].st);
  }
  fputs("},\"after_events\":[", f);
  for (uint32_t k = 0; k < c->marks.n; k++) {
    fprintf(f, "%s{\"at_ms\":%.0f,\"event\":", k ? "," : "",
            c->marks.at_us[k] / 1e3);
    json_fput_text(f, c->marks.label[k]);
    fputc(',', f);
    json_stat(f, "recovery_s", &cell->recovery[k]);
    fputc(',', f);
    json_stat(f, "first_commit_s", &cell->first_commit[k]);
    fputc(',', f);
    json_stat(f, "writes_until_next_event", &cell->window_writes[k + 1]);
    fputc(',', f);
    json_stat(f, "leader_changes_until_next_event",
              &cell->window_leader_changes[k + 1]);
    fputc('}', f);
  }
  fputs("],\"runs\":[", f);
  for (uint32_t s = 0; s < n_seeds; s++) {
    fputs(s ? "," : "", f);
    json_run(f, &cell->runs[s], &c->marks);
  }
  fputs("]}", f);
}

static void json_case(FILE *f, const struct lab_case *c, uint32_t n_seeds) {
  const struct lab_scenario *sc = c->sc;
  char setup[512];
  lab_case_setup_text(c, setup, sizeof setup);
  fputs("{\"name\":", f);
  json_fput_text(f, sc->name);
  fputs(",\"case\":", f);
  json_fput_text(f, c->id);
  fputs(",\"variant\":", f);
  if (c->variant >= 0)
    json_fput_text(f, sc->variants[c->variant].name);
  else
    fputs("null", f);
  fputs(",\"title\":", f);
  json_fput_text(f, sc->title);
  fputs(",\"story\":", f);
  json_fput_text(f, sc->story);
  fputs(",\"source\":", f);
  json_fput_text(f, sc->source);
  fputs(",\"setup\":", f);
  json_fput_text(f, setup);
  fputs(",\"nodes\":[", f);
  for (uint32_t i = 0; i < sc->n_nodes; i++) {
    fputs(i ? ",{\"name\":" : "{\"name\":", f);
    json_fput_text(f, sc->node_name[i]);
    fputs(",\"region\":", f);
    json_fput_text(f, sc->region_name[sc->node_region[i]]);
    fputc('}', f);
  }
  fputs("],\"events\":[", f);
  for (uint32_t k = 0; k < sc->n_events; k++) {
    fprintf(f, "%s{\"at_ms\":%llu,\"event\":", k ? "," : "",
            (unsigned long long)sc->events[k].at_ms);
    json_fput_text(f, sc->events[k].label);
    fputc('}', f);
  }
  fputs("],\"narrative\":", f);
  json_fput_text(f, c->narrative);
  fputs(",\"engines\":[", f);
  for (uint32_t e = 0; e < c->n_cells; e++) {
    fputs(e ? ",\n" : "\n", f);
    json_cell(f, &c->cells[e], c, n_seeds);
  }
  fputs("]}", f);
}

static int io_error(const char *path, char *err, size_t err_size) {
  snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
  return SABHA_EIO;
}

int lab_write_json(const struct lab *lab, const char *path, char *err,
                   size_t err_size) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return io_error(path, err, err_size);
  fprintf(f, "{\"tool\":\"sabha lab\",\"bucket_ms\":%u,\"seeds\":[",
          LAB_BUCKET_US / 1000u);
  for (uint32_t s = 0; s < lab->opt.n_seeds; s++)
    fprintf(f, "%s%llu", s ? "," : "",
            (unsigned long long)(lab->opt.seed_first + s));
  fputs("],\"engines\":[", f);
  for (uint32_t e = 0; e < lab->opt.n_engines; e++) {
    fputs(e ? "," : "", f);
    json_fput_text(f, lab->opt.engines[e]);
  }
  fprintf(f,
          "],\"runs\":%u,\"runs_fatal\":%u,\"runs_liveness\":%u,"
          "\"wall_seconds\":%.2f,\"scenarios\":[",
          lab->runs_total, lab->runs_fatal, lab->runs_liveness, lab->wall_s);
  for (size_t i = 0; i < lab->n_cases; i++) {
    fputs(i ? ",\n" : "\n", f);
    json_case(f, &lab->cases[i], lab->opt.n_seeds);
  }
  fputs("]}\n", f);
  if (ferror(f) || fclose(f) != 0)
    return io_error(path, err, err_size);
  return 0;
}

/* ---- CSV ----------------------------------------------------------------- */

static void csv_str(FILE *f, const char *s) {
  if (strpbrk(s, ",\"\n") == NULL) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', f);
    fputc(*s == '\n' ? ' ' : *s, f);
  }
  fputc('"', f);
}

static void csv_num(FILE *f, double v) {
  if (isfinite(v) && v >= 0)
    fprintf(f, "%.6g", v);
}

/* "scenario,variant,engine" for a row. */
static void csv_key(FILE *f, const struct lab_case *c, const char *engine) {
  csv_str(f, c->sc->name);
  fputc(',', f);
  csv_str(f, c->variant >= 0 ? c->sc->variants[c->variant].name : "");
  fputc(',', f);
  csv_str(f, engine);
}

/* Calls `row` for every run, by case, engine and seed: the order of every
 * per-run CSV file. */
static void csv_each_run(FILE *f, const struct lab *lab,
                         void (*row)(FILE *, const struct lab_case *,
                                     const char *engine,
                                     const struct lab_run *)) {
  for (size_t i = 0; i < lab->n_cases; i++)
    for (uint32_t e = 0; e < lab->cases[i].n_cells; e++)
      for (uint32_t s = 0; s < lab->opt.n_seeds; s++) {
        const struct lab_case *c = &lab->cases[i];
        row(f, c, c->cells[e].engine, &c->cells[e].runs[s]);
      }
}

static void csv_runs_row(FILE *f, const struct lab_case *c, const char *engine,
                         const struct lab_run *run) {
  const struct lab_metrics *m = &run->m;
  csv_key(f, c, engine);
  fprintf(f, ",%llu,%llu,%llu,%llu,%llu,", (unsigned long long)run->seed,
          (unsigned long long)m->ops_total, (unsigned long long)m->ops_ok,
          (unsigned long long)m->ops_failed, (unsigned long long)m->ops_info);
  fprintf(f, "%llu,%.3f,%.3f,%.4f,%.3f,%.3f,", (unsigned long long)m->writes_ok,
          m->client_s, m->throughput, m->success_rate, m->latency_ms_mean,
          m->latency_ms_p50);
  csv_num(f, m->latency_ms_p99); /* empty: too few operations for it */
  fputc(',', f);
  csv_num(f, m->latency_ms_p999);
  fprintf(f, ",%.3f,%.4f,%llu,", m->latency_ms_max, m->availability,
          (unsigned long long)m->leader_changes);
  fprintf(f,
          "%llu,%llu,%llu,%.2f,%.1f,%llu,%llu,%llu,%llu,%llu,%d,%d,"
          "%.3f,",
          (unsigned long long)m->elections_started,
          (unsigned long long)m->msgs_sent,
          (unsigned long long)m->msg_bytes_sent, m->msgs_per_op,
          m->bytes_per_op, (unsigned long long)m->acked_writes_lost,
          (unsigned long long)m->safety_violations,
          (unsigned long long)m->linearizability_failures,
          (unsigned long long)m->liveness_failures,
          (unsigned long long)m->invariant_violations, m->failed, m->fatal,
          m->wall_s);
  fprintf(f, "%llu,0x%016llx,", (unsigned long long)m->events,
          (unsigned long long)m->trace_hash);
  csv_str(f, run->rv ? run->err : m->failure);
  fputc('\n', f);
}

static void csv_runs(FILE *f, const struct lab *lab) {
  fputs("scenario,variant,engine,seed,ops_total,ops_ok,ops_failed,"
        "ops_indeterminate,writes_ok,client_s,throughput_ops_per_s,"
        "success_rate,latency_ms_mean,latency_ms_p50,latency_ms_p99,"
        "latency_ms_p999,latency_ms_max,availability,leader_changes,"
        "elections_started,msgs_sent,msg_bytes_sent,msgs_per_op,bytes_per_op,"
        "acked_writes_lost,safety_violations,linearizability_failures,"
        "liveness_failures,invariant_violations,failed,fatal,wall_s,events,"
        "trace_hash,failure\n",
        f);
  csv_each_run(f, lab, csv_runs_row);
}

static void csv_summary(FILE *f, const struct lab *lab) {
  fputs("scenario,variant,engine,metric,median,min,max,n\n", f);
  for (size_t i = 0; i < lab->n_cases; i++)
    for (uint32_t e = 0; e < lab->cases[i].n_cells; e++) {
      const struct lab_case *c = &lab->cases[i];
      const struct lab_cell *cell = &c->cells[e];
      struct named_stat stats[CELL_STATS_N];
      cell_stats(cell, stats);
      for (size_t k = 0; k < CELL_STATS_CSV_N; k++) {
        double v[3];
        stat_figures(stats[k].st, v);
        csv_key(f, c, cell->engine);
        fprintf(f, ",%s,", stats[k].key);
        csv_num(f, v[0]);
        fputc(',', f);
        csv_num(f, v[1]);
        fputc(',', f);
        csv_num(f, v[2]);
        fprintf(f, ",%u\n", stats[k].st->n);
      }
    }
}

static void csv_recovery_rows(FILE *f, const struct lab_case *c,
                              const char *engine, const struct lab_run *run) {
  for (uint32_t k = 0; run->rv == 0 && k < c->marks.n; k++) {
    const struct lab_window *w = &run->m.windows[k + 1];
    csv_key(f, c, engine);
    fprintf(f, ",%llu,%.0f,", (unsigned long long)run->seed,
            c->marks.at_us[k] / 1e3);
    csv_str(f, c->marks.label[k]);
    fputc(',', f);
    csv_num(f, run->m.recovery_s[k]);
    fputc(',', f);
    csv_num(f, run->m.first_commit_s[k]);
    fprintf(f, ",%.0f,%llu,%u\n", w->to_us / 1e3, (unsigned long long)w->writes,
            w->leader_changes);
  }
}

static void csv_recovery(FILE *f, const struct lab *lab) {
  fputs("scenario,variant,engine,seed,event_at_ms,event,recovery_s,"
        "first_commit_s,window_until_ms,writes_in_window,"
        "leader_changes_in_window\n",
        f);
  csv_each_run(f, lab, csv_recovery_rows);
}

static void csv_timeseries_rows(FILE *f, const struct lab_case *c,
                                const char *engine, const struct lab_run *run) {
  const struct lab_series *ts = &run->m.series;
  for (uint32_t b = 0; run->rv == 0 && b < ts->n; b++) {
    csv_key(f, c, engine);
    fprintf(f, ",%llu,%u,%u,%u,", (unsigned long long)run->seed,
            b * (LAB_BUCKET_US / 1000u), ts->ops[b], ts->writes[b]);
    csv_num(f, ts->p50_ms[b]);
    fputc(',', f);
    csv_num(f, ts->p99_ms[b]);
    fputc('\n', f);
  }
}

static void csv_timeseries(FILE *f, const struct lab *lab) {
  fputs("scenario,variant,engine,seed,t_ms,ops,writes,latency_ms_p50,"
        "latency_ms_p99\n",
        f);
  csv_each_run(f, lab, csv_timeseries_rows);
}

static void csv_leaders_rows(FILE *f, const struct lab_case *c,
                             const char *engine, const struct lab_run *run) {
  for (size_t k = 0; run->rv == 0 && k < run->m.n_leaders; k++) {
    csv_key(f, c, engine);
    fprintf(f, ",%llu,%.1f,%u,%llu\n", (unsigned long long)run->seed,
            run->m.leaders[k].time_us / 1e3, run->m.leaders[k].node,
            (unsigned long long)run->m.leaders[k].term);
  }
}

static void csv_leaders(FILE *f, const struct lab *lab) {
  fputs("scenario,variant,engine,seed,t_ms,node,term\n", f);
  csv_each_run(f, lab, csv_leaders_rows);
}

int lab_write_csv(const struct lab *lab, const char *dir, char *err,
                  size_t err_size) {
  static const struct {
    const char *name;
    void (*write)(FILE *, const struct lab *);
  } files[] = {{"runs.csv", csv_runs},
               {"summary.csv", csv_summary},
               {"recovery.csv", csv_recovery},
               {"timeseries.csv", csv_timeseries},
               {"leaders.csv", csv_leaders}};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
      return io_error(path, err, err_size);
    files[i].write(f, lab);
    if (ferror(f) || fclose(f) != 0)
      return io_error(path, err, err_size);
  }
  return 0;
}
