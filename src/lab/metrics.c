/* Lab figures from one simulator run (definitions in metrics.h and
 * docs/lab.md).
 *
 * The client history is the ground truth: the simulator's clients are
 * closed-loop with retries, so an operation's latency includes every retry
 * after a failover, and a stretch with no acknowledged write is a stretch in
 * which no write could commit. Time series are cut into 100 ms buckets of
 * answer time. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"
#include "lab/metrics.h"

bool lab_engine_is_consensus(const char *engine) {
  return strcmp(engine, "async") != 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

struct lab_stat lab_stat_of(const double *values, size_t n) {
  struct lab_stat st = {.median = -1, .min = -1, .max = -1, .n = 0};
  double *v = malloc((n > 0 ? n : 1) * sizeof *v);
  if (v == NULL)
    return st;
  for (size_t i = 0; i < n; i++)
    if (values[i] >= 0)
      v[st.n++] = values[i];
  if (st.n > 0) {
    qsort(v, st.n, sizeof v[0], cmp_double);
    st.min = v[0];
    st.max = v[st.n - 1];
    st.median = stats_median(v, st.n);
  }
  free(v);
  return st;
}

static bool op_is_write(const struct hist_op *h) {
  return h->kind != HIST_GET; /* put, cas, and application commands */
}

/* ---- latency ------------------------------------------------------------- */

static int latency_figures(const struct sim_result *r, struct lab_metrics *m) {
  size_t n = 0;
  m->latencies_us =
      malloc((r->n_history > 0 ? r->n_history : 1) * sizeof *m->latencies_us);
  if (m->latencies_us == NULL)
    return SABHA_ENOMEM;
  double sum_us = 0;
  for (size_t i = 0; i < r->n_history; i++) {
    const struct hist_op *h = &r->history[i];
    if (h->status != HIST_OK)
      continue;
    uint64_t lat = h->return_us - h->call_us;
    m->latencies_us[n++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
    sum_us += (double)lat;
  }
  qsort(m->latencies_us, n, sizeof *m->latencies_us, cmp_u32);
  m->n_latencies = n;
  m->latency_ms_mean = n > 0 ? sum_us / (double)n / 1000.0 : 0;
  m->latency_ms_p50 = stats_quantile_u32(m->latencies_us, n, 0.50) / 1000.0;
  /* A tail quantile from fewer samples than it needs is only the maximum
   * (or close to it) under another name: report it as not measured. */
  m->latency_ms_p99 =
      n >= LAB_P99_SAMPLES_MIN
          ? stats_quantile_u32(m->latencies_us, n, 0.99) / 1000.0
          : -1;
  m->latency_ms_p999 =
      n >= LAB_P999_SAMPLES_MIN
          ? stats_quantile_u32(m->latencies_us, n, 0.999) / 1000.0
          : -1;
  m->latency_ms_max = n > 0 ? m->latencies_us[n - 1] / 1000.0 : 0;
  return 0;
}

/* ---- the time series ----------------------------------------------------- */

static int series_alloc(struct lab_series *s, uint32_t n) {
  s->n = n;
  s->ops = calloc(n ? n : 1, sizeof *s->ops);
  s->writes = calloc(n ? n : 1, sizeof *s->writes);
  s->p50_ms = calloc(n ? n : 1, sizeof *s->p50_ms);
  s->p99_ms = calloc(n ? n : 1, sizeof *s->p99_ms);
  return s->ops && s->writes && s->p50_ms && s->p99_ms ? 0 : SABHA_ENOMEM;
}

/* Per-bucket latency quantiles: latencies grouped by bucket, each group
 * sorted. */
static int series_latency(const struct sim_result *r, struct lab_series *s,
                          uint64_t end_us) {
  uint32_t *start = calloc((size_t)s->n + 1, sizeof *start);
  uint32_t *lat = malloc((r->n_history ? r->n_history : 1) * sizeof *lat);
  if (start == NULL || lat == NULL) {
    free(start);
    free(lat);
    return SABHA_ENOMEM;
  }
  for (uint32_t b = 0, acc = 0; b <= s->n; b++) {
    start[b] = acc;
    acc += b < s->n ? s->ops[b] : 0;
  }
  uint32_t *fill = calloc(s->n ? s->n : 1, sizeof *fill);
  if (fill == NULL) {
    free(start);
    free(lat);
    return SABHA_ENOMEM;
  }
  for (size_t i = 0; i < r->n_history; i++) {
    const struct hist_op *h = &r->history[i];
    if (h->status != HIST_OK || h->return_us >= end_us)
      continue;
    uint32_t b = (uint32_t)(h->return_us / LAB_BUCKET_US);
    uint64_t l = h->return_us - h->call_us;
    lat[start[b] + fill[b]++] = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
  }
  for (uint32_t b = 0; b < s->n; b++) {
    uint32_t *g = lat + start[b];
    qsort(g, s->ops[b], sizeof *g, cmp_u32);
    s->p50_ms[b] = s->ops[b]
                       ? (float)(stats_quantile_u32(g, s->ops[b], 0.5) / 1000.0)
                       : -1.0f;
    s->p99_ms[b] =
        s->ops[b] ? (float)(stats_quantile_u32(g, s->ops[b], 0.99) / 1000.0)
                  : -1.0f;
  }
  free(fill);
  free(start);
  free(lat);
  return 0;
}

/* The end of the load phase: the client phase, cut at the workload's
 * duration (after it the clients start nothing, so fewer answers there
 * are not a fault). */
static uint64_t load_end_us(const struct sim_result *r,
                            const struct lab_marks *marks) {
  uint64_t end_us = r->client_time_us;
  return marks->load_end_us > 0 && marks->load_end_us < end_us
             ? marks->load_end_us
             : end_us;
}

static int series_figures(const struct sim_result *r, struct lab_metrics *m,
                          const struct lab_marks *marks) {
  uint64_t end_us = r->client_time_us;
  uint64_t n = (end_us + LAB_BUCKET_US - 1) / LAB_BUCKET_US;
  if (n > LAB_BUCKETS_MAX)
    n = LAB_BUCKETS_MAX;
  end_us = n * LAB_BUCKET_US < end_us ? n * LAB_BUCKET_US : end_us;
  struct lab_series *s = &m->series;
  if (series_alloc(s, (uint32_t)n) != 0)
    return SABHA_ENOMEM;
  for (size_t i = 0; i < r->n_history; i++) {
    const struct hist_op *h = &r->history[i];
    if (h->status != HIST_OK || h->return_us >= end_us)
      continue;
    uint32_t b = (uint32_t)(h->return_us / LAB_BUCKET_US);
    s->ops[b]++;
    s->writes[b] += op_is_write(h);
  }
  uint64_t n_load = (load_end_us(r, marks) + LAB_BUCKET_US - 1) / LAB_BUCKET_US;
  if (n_load > s->n)
    n_load = s->n;
  uint32_t up = 0;
  for (uint32_t b = 0; b < n_load; b++)
    up += s->writes[b] > 0;
  m->availability = n_load > 0 ? (double)up / (double)n_load : 0;
  return series_latency(r, s, end_us);
}

/* ---- faults: windows, recovery, first commit ----------------------------- */

/* Median acknowledged ops per bucket before the first mark (from 0.5 s, so
 * the first election is not counted as normal), in ops/s; the whole run
 * when there is too little before it. */
static double baseline_ops_per_s(const struct lab_series *s,
                                 const struct lab_marks *marks) {
  uint32_t from = 5, to = s->n;
  if (marks->n > 0 && marks->at_us[0] / LAB_BUCKET_US < to)
    to = (uint32_t)(marks->at_us[0] / LAB_BUCKET_US);
  if (to < from + 3) {
    from = 0;
    to = s->n;
  }
  double *vals = malloc((to > from ? to - from : 1) * sizeof *vals);
  if (vals == NULL)
    return 0;
  for (uint32_t b = from; b < to; b++)
    vals[b - from] = s->ops[b];
  struct lab_stat st = lab_stat_of(vals, to > from ? to - from : 0);
  free(vals);
  return st.median > 0 ? st.median * (1e6 / LAB_BUCKET_US) : 0;
}

/* Recovery after an event at `at_us`, looking no further than `until_us`
 * (buckets wholly inside [at, until)): the first dip (the first bucket
 * under half the baseline, or later two in a row under it) is found; the result
 * is the time from the event to the start of the first bucket after it from
 * which two buckets in a row reach half the baseline again. 0 when there is no
 * dip in the window (the engine kept its pace, however late in the window a dip
 * could have come); -1 when it dipped and did not come back within the window.
 */
static double recovery_after(const struct lab_series *s, double base_per_s,
                             uint64_t at_us, uint64_t until_us) {
  double need = base_per_s * 0.5 * LAB_BUCKET_US / 1e6;
  uint64_t b0 = (at_us + LAB_BUCKET_US - 1) / LAB_BUCKET_US;
  uint64_t b_end = until_us / LAB_BUCKET_US;
  if (b_end > s->n)
    b_end = s->n;
  if (base_per_s <= 0 || b0 + 1 >= b_end)
    return -1;
  /* Down already at the event (a heal, a restart): the first bucket is
   * below; otherwise two in a row, so one thin bucket is not a dip. */
  uint64_t dip = b_end;
  for (uint64_t b = b0; b + 1 < b_end && dip == b_end; b++)
    if (s->ops[b] < need && (b == b0 || s->ops[b + 1] < need))
      dip = b;
  if (dip == b_end)
    return 0;
  for (uint64_t b = dip + 1; b + 1 < b_end; b++)
    if (s->ops[b] >= need && s->ops[b + 1] >= need)
      return (double)(b * LAB_BUCKET_US - at_us) / 1e6;
  return -1;
}

static double first_commit_after(const struct sim_result *r, uint64_t at_us,
                                 uint64_t until_us) {
  uint64_t best = UINT64_MAX;
  for (size_t i = 0; i < r->n_history; i++) {
    const struct hist_op *h = &r->history[i];
    if (h->status == HIST_OK && op_is_write(h) && h->call_us >= at_us &&
        h->return_us < best)
      best = h->return_us;
  }
  if (best == UINT64_MAX || best >= until_us)
    return -1;
  return (double)(best - at_us) / 1e6;
}

static void window_figures(const struct sim_result *r, struct lab_metrics *m,
                           const struct lab_marks *marks) {
  uint64_t end_us = r->client_time_us;
  m->n_windows = marks->n + 1;
  for (uint32_t k = 0; k < m->n_windows; k++) {
    struct lab_window *w = &m->windows[k];
    w->from_us = k == 0 ? 0 : marks->at_us[k - 1];
    w->to_us = k < marks->n ? marks->at_us[k] : end_us;
    if (w->to_us > end_us)
      w->to_us = end_us;
    uint64_t from = k == 0 ? 0 : w->from_us + LAB_WINDOW_GRACE_US;
    for (size_t i = 0; i < r->n_history; i++) {
      const struct hist_op *h = &r->history[i];
      if (h->status != HIST_OK || h->return_us < from ||
          h->return_us >= w->to_us)
        continue;
      w->ops++;
      w->writes += op_is_write(h);
    }
    for (size_t i = 0; i < m->n_leaders; i++)
      if (m->leaders[i].time_us >= w->from_us &&
          m->leaders[i].time_us < w->to_us)
        w->leader_changes++;
  }
  m->baseline_ops_per_s = baseline_ops_per_s(&m->series, marks);
  for (uint32_t k = 0; k < marks->n; k++) {
    uint64_t until = k + 1 < marks->n ? marks->at_us[k + 1] : end_us;
    uint64_t load_until =
        k + 1 < marks->n ? until : load_end_us(r, marks); /* no tail */
    m->recovery_s[k] = recovery_after(&m->series, m->baseline_ops_per_s,
                                      marks->at_us[k], load_until);
    m->first_commit_s[k] = first_commit_after(r, marks->at_us[k], until);
  }
}

/* ---- the run ------------------------------------------------------------- */

static int leader_figures(const struct sim_result *r, struct lab_metrics *m) {
  size_t n = 0;
  m->leaders = malloc((r->n_leader_changes ? r->n_leader_changes : 1) *
                      sizeof *m->leaders);
  if (m->leaders == NULL)
    return SABHA_ENOMEM;
  uint32_t per_group[LAB_GROUPS_MAX] = {0};
  for (size_t i = 0; i < r->n_leader_changes; i++)
    if (r->leader_changes[i].time_us <= r->client_time_us) {
      m->leaders[n++] = r->leader_changes[i];
      per_group[r->leader_changes[i].group]++;
    }
  m->n_leaders = n;
  /* A change is a group's leader after its first. */
  m->leader_changes = 0;
  uint32_t groups = r->n_groups > 0 ? r->n_groups : 1;
  for (uint32_t g = 0; g < groups; g++) {
    uint32_t changes = per_group[g] > 0 ? per_group[g] - 1 : 0;
    m->leader_changes += changes;
    m->groups[g].leader_changes = changes;
  }
  return 0;
}

/* Each group's keys, leader at the end, acknowledged operations and their
 * median latency. */
static int group_figures(const struct sim_result *r, struct lab_metrics *m) {
  m->n_groups = r->n_groups > 0 ? r->n_groups : 1;
  if (m->n_groups == 1)
    return 0;
  uint32_t *lat =
      malloc((r->n_latencies > 0 ? r->n_latencies : 1) * sizeof *lat);
  if (lat == NULL)
    return SABHA_ENOMEM;
  for (uint32_t g = 0; g < m->n_groups; g++) {
    struct lab_group_figures *gf = &m->groups[g];
    gf->leader = r->groups[g].leader;
    gf->keys = r->groups[g].keys;
    gf->ops_ok = r->groups[g].ops_ok;
    size_t n = 0;
    for (size_t i = 0; i < r->n_latencies; i++)
      if (r->latency_groups[i] == g)
        lat[n++] = r->latencies_us[i];
    qsort(lat, n, sizeof *lat, cmp_u32);
    gf->latency_ms_p50 = n > 0 ? stats_quantile_u32(lat, n, 0.50) / 1000.0 : -1;
  }
  free(lat);
  return 0;
}

static void count_ops(const struct sim_result *r, struct lab_metrics *m) {
  m->ops_total = r->n_history;
  m->ops_ok = r->ops_ok;
  m->ops_failed = r->ops_failed;
  m->ops_info = r->ops_indeterminate;
  for (size_t i = 0; i < r->n_history; i++)
    m->writes_ok +=
        r->history[i].status == HIST_OK && op_is_write(&r->history[i]);
  m->client_s = (double)r->client_time_us / 1e6;
  m->throughput = m->client_s > 0 ? (double)m->ops_ok / m->client_s : 0;
  m->success_rate =
      m->ops_total > 0 ? (double)m->ops_ok / (double)m->ops_total : 0;
}

/* Which failures fail the lab: any broken safety check of a consensus
 * engine; for the async baseline only what it still promises (election
 * safety, the engine contract: the simulator fails those even for it). A
 * run that only did not converge is a finding, not a broken promise. */
static void judge(const char *engine, const struct sim_result *r,
                  struct lab_metrics *m) {
  m->acked_writes_lost = r->acked_writes_lost;
  m->safety_violations = r->safety_violations;
  m->linearizability_failures = r->linearizability_failures;
  m->liveness_failures = r->liveness_failures;
  m->invariant_violations = r->invariant_violations;
  m->failed = r->failed;
  memcpy(m->failure, r->failure, sizeof m->failure);
  m->failure[sizeof m->failure - 1] = '\0';
  bool broken_run = r->failed && r->liveness_failures == 0;
  if (lab_engine_is_consensus(engine))
    m->fatal = broken_run || r->safety_violations > 0 ||
               r->linearizability_failures > 0 || r->acked_writes_lost > 0 ||
               r->invariant_violations > 0;
  else
    m->fatal = broken_run;
}

int lab_metrics_compute(const char *engine, const struct sim_result *r,
                        const struct lab_marks *marks, uint64_t op_cap,
                        struct lab_metrics *m) {
  assert(marks->n <= LAB_MARKS_MAX);
  memset(m, 0, sizeof *m);
  count_ops(r, m);
  judge(engine, r, m);
  if (latency_figures(r, m) != 0 || series_figures(r, m, marks) != 0 ||
      leader_figures(r, m) != 0 || group_figures(r, m) != 0) {
    lab_metrics_free(m);
    return SABHA_ENOMEM;
  }
  window_figures(r, m, marks);
  m->elections_started = r->phase1_rounds;
  m->msgs_sent = r->msgs_sent;
  m->msg_bytes_sent = r->msg_bytes_sent;
  m->msgs_per_op = m->ops_ok ? (double)r->msgs_sent / (double)m->ops_ok : 0;
  m->bytes_per_op =
      m->ops_ok ? (double)r->msg_bytes_sent / (double)m->ops_ok : 0;
  m->wall_s = r->wall_seconds;
  m->events = r->events;
  m->trace_hash = r->trace_hash;
  m->op_cap_hit = op_cap > 0 && r->n_history >= op_cap;
  return 0;
}

void lab_metrics_free(struct lab_metrics *m) {
  free(m->series.ops);
  free(m->series.writes);
  free(m->series.p50_ms);
  free(m->series.p99_ms);
  free(m->latencies_us);
  free(m->leaders);
  memset(&m->series, 0, sizeof m->series);
  m->latencies_us = NULL;
  m->leaders = NULL;
}
