/* The report's charts, written as SVG elements straight into the page
 * (svg.h). Coordinates are computed here; styling is in report_html.c's
 * stylesheet (classes), colours per engine are inline so a chart copied
 * out of the page keeps them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lab/svg.h"

#define W 880.0
#define H_PLOT 200.0
#define M_LEFT 86.0
#define M_RIGHT 16.0
#define M_TOP 30.0
#define TICK_ROW 11.0 /* one row of leader-change ticks per engine */

const char *lab_engine_color(const char *engine) {
  static const struct {
    const char *engine, *color;
  } colors[] = {{"raft", "#1f77b4"},
                {"multipaxos", "#e8770e"},
                {"paxos", "#2ca02c"},
                {"async", "#d62728"}};
  for (size_t i = 0; i < sizeof colors / sizeof colors[0]; i++)
    if (strcmp(colors[i].engine, engine) == 0)
      return colors[i].color;
  return "#7f7f7f";
}

void lab_html_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '&')
      fputs("&amp;", f);
    else if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '"')
      fputs("&quot;", f);
    else
      fputc(*s, f);
  }
}

/* ---- scales -------------------------------------------------------------- */

/* A "nice" step (1, 2 or 5 times a power of ten) for about n ticks. */
static double nice_step(double range, int n) {
  double raw = range / n;
  double p = pow(10, floor(log10(raw > 0 ? raw : 1)));
  double m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

struct axes {
  double x0, x1; /* data range, seconds or log10 ms */
  double y0, y1; /* data range; log10 when log_y */
  bool log_y;
  double top, height; /* plot area in pixels */
};

static double px(const struct axes *a, double x) {
  return M_LEFT + (x - a->x0) / (a->x1 - a->x0) * (W - M_LEFT - M_RIGHT);
}

static double py(const struct axes *a, double y) {
  double v = a->log_y ? log10(y > 0 ? y : 1e-9) : y;
  if (v < a->y0)
    v = a->y0;
  if (v > a->y1)
    v = a->y1;
  return a->top + a->height - (v - a->y0) / (a->y1 - a->y0) * a->height;
}

static void axis_y(FILE *f, const struct axes *a, const char *unit) {
  if (a->log_y) {
    for (double d = ceil(a->y0); d <= a->y1 + 1e-9; d++) {
      double y = py(a, pow(10, d));
      fprintf(f,
              "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
              "y2=\"%.1f\"/><text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
              "text-anchor=\"end\">%g</text>\n",
              M_LEFT, y, W - M_RIGHT, y, M_LEFT - 4, y + 4, pow(10, d));
    }
  } else {
    double step = nice_step(a->y1 - a->y0, 4);
    for (double v = 0; v <= a->y1 + 1e-9; v += step) {
      double y = py(a, v);
      fprintf(f,
              "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
              "y2=\"%.1f\"/><text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
              "text-anchor=\"end\">%g</text>\n",
              M_LEFT, y, W - M_RIGHT, y, M_LEFT - 4, y + 4, v);
    }
  }
  fprintf(f,
          "<text class=\"unit\" x=\"12\" y=\"%.1f\" transform=\"rotate(-90 "
          "12 %.1f)\" text-anchor=\"middle\">%s</text>\n",
          a->top + a->height / 2, a->top + a->height / 2, unit);
}

static void axis_x_seconds(FILE *f, const struct axes *a, double y_axis) {
  double step = nice_step(a->x1 - a->x0, 10);
  for (double v = 0; v <= a->x1 + 1e-9; v += step)
    fprintf(f,
            "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
            "text-anchor=\"middle\">%g s</text>\n",
            px(a, v), y_axis, v);
}

static void legend(FILE *f, const struct lab_case *c, const char *extra) {
  double x = M_LEFT;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const char *name = lab_engine_title(c->cells[e].engine);
    fprintf(f,
            "<rect x=\"%.1f\" y=\"8\" width=\"14\" height=\"4\" "
            "fill=\"%s\"/><text class=\"legend\" x=\"%.1f\" "
            "y=\"14\">%s</text>\n",
            x, lab_engine_color(c->cells[e].engine), x + 18, name);
    x += 30 + 7.0 * (double)strlen(name);
  }
  if (extra != NULL)
    fprintf(f, "<text class=\"legend note\" x=\"%.1f\" y=\"14\">%s</text>\n",
            x + 10, extra);
}

/* ---- fault windows and events ------------------------------------------- */

/* When the fault that `ev` starts ends: the next heal (restart for a
 * crash), or the end of the client phase. */
static double span_end_s(const struct lab_scenario *sc, uint32_t k,
                         double end_s) {
  const struct lab_event *ev = &sc->events[k];
  for (uint32_t j = k + 1; j < sc->n_events; j++) {
    uint8_t kind = sc->events[j].kind;
    if (ev->kind == LAB_EV_CRASH ? kind == LAB_EV_RESTART : kind == LAB_EV_HEAL)
      return sc->events[j].at_ms / 1e3 < end_s ? sc->events[j].at_ms / 1e3
                                               : end_s;
  }
  return end_s;
}

static void fault_shading(FILE *f, const struct lab_case *c,
                          const struct axes *a) {
  const struct lab_scenario *sc = c->sc;
  for (uint32_t k = 0; k < sc->n_events; k++) {
    uint8_t kind = sc->events[k].kind;
    if (kind == LAB_EV_HEAL || kind == LAB_EV_RESTART)
      continue;
    double from = sc->events[k].at_ms / 1e3;
    double to = span_end_s(sc, k, a->x1);
    if (from >= a->x1)
      continue;
    if (to <= from)
      continue;
    fprintf(f,
            "<rect class=\"fault%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"><title>",
            kind == LAB_EV_CRASH ? " crash" : "", px(a, from), a->top,
            px(a, to) - px(a, from), a->height);
    lab_html_escape(f, sc->events[k].label);
    fprintf(f, " (%.1f-%.1f s)</title></rect>\n", from, to);
  }
  for (uint32_t k = 0; k < c->marks.n; k++) {
    if (c->marks.at_us[k] / 1e6 > a->x1)
      continue;
    double x = px(a, c->marks.at_us[k] / 1e6);
    fprintf(f,
            "<line class=\"event\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
            "y2=\"%.1f\"/><text class=\"evlabel\" x=\"%.1f\" "
            "y=\"%.1f\">",
            x, a->top - 2, x, a->top + a->height, x + 3,
            a->top + 10 + 10.0 * (k % 3));
    char label[40];
    size_t len = strlen(c->marks.label[k]);
    if (len < sizeof label) {
      memcpy(label, c->marks.label[k], len + 1);
    } else { /* cut, and say so */
      memcpy(label, c->marks.label[k], sizeof label - 4);
      memcpy(label + sizeof label - 4, "...", 4);
    }
    lab_html_escape(f, label);
    fputs("</text>\n", f);
  }
}

/* ---- the timeline -------------------------------------------------------- */

static double bucket_value(const struct lab_series *s, uint32_t b,
                           enum lab_timeline_kind kind) {
  if (kind == LAB_CHART_THROUGHPUT)
    return s->ops[b] * (1e6 / LAB_BUCKET_US);
  return s->p50_ms[b];
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* The shared time window of a case's timelines, in seconds: the load phase
 * (up to the workload's duration; after it the clients only finish what
 * they started), or for a run bounded by an operation count, 1.25 times
 * the median engine's client phase, so that one engine's long tail does
 * not squash the others into the left edge. */
double lab_svg_window_s(const struct lab_case *c) {
  double len[LAB_ENGINES_MAX], longest = 0;
  uint32_t n = 0;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_run *run = &c->cells[e].runs[0];
    if (run->rv != 0)
      continue;
    len[n] = run->m.series.n * (LAB_BUCKET_US / 1e6);
    longest = len[n] > longest ? len[n] : longest;
    n++;
  }
  if (n == 0)
    return 1;
  double x1;
  if (c->marks.load_end_us > 0) {
    x1 = c->marks.load_end_us / 1e6;
  } else {
    qsort(len, n, sizeof len[0], cmp_double);
    x1 = ceil(len[n / 2] * 1.25);
  }
  if (x1 > longest)
    x1 = longest;
  return x1 > 0.1 ? x1 : 1;
}

static uint32_t buckets_in(const struct lab_series *s, double x1) {
  uint32_t n = (uint32_t)ceil(x1 / (LAB_BUCKET_US / 1e6) - 1e-9);
  return n < s->n ? n : s->n;
}

static void timeline_ranges(const struct lab_case *c,
                            enum lab_timeline_kind kind, struct axes *a) {
  double x1 = lab_svg_window_s(c), y1 = 0, y_min = 1e9;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_run *run = &c->cells[e].runs[0];
    if (run->rv != 0)
      continue;
    const struct lab_series *s = &run->m.series;
    for (uint32_t b = 0; b < buckets_in(s, x1); b++) {
      double v =
          kind == LAB_CHART_LATENCY ? s->p99_ms[b] : bucket_value(s, b, kind);
      if (v > y1)
        y1 = v;
      if (kind == LAB_CHART_LATENCY && s->p50_ms[b] > 0 && s->p50_ms[b] < y_min)
        y_min = s->p50_ms[b];
    }
  }
  a->x0 = 0;
  a->x1 = x1;
  a->log_y = kind == LAB_CHART_LATENCY;
  if (a->log_y) {
    a->y0 = floor(log10(y_min < 1e9 ? y_min : 1));
    a->y1 = ceil(log10(y1 > 1 ? y1 : 10));
    if (a->y1 <= a->y0)
      a->y1 = a->y0 + 1;
  } else {
    double step = nice_step(y1 > 0 ? y1 * 1.05 : 1, 4);
    a->y0 = 0;
    a->y1 = ceil((y1 > 0 ? y1 * 1.05 : 1) / step) * step;
  }
}

/* One engine's series as a path; buckets with no value break the line. */
static void series_path(FILE *f, const struct lab_series *s,
                        const struct axes *a, enum lab_timeline_kind kind,
                        bool p99, const char *color) {
  fprintf(f, "<path class=\"%s\" stroke=\"%s\" d=\"", p99 ? "line p99" : "line",
          color);
  bool pen = false;
  for (uint32_t b = 0; b < buckets_in(s, a->x1); b++) {
    double v = p99 ? s->p99_ms[b] : bucket_value(s, b, kind);
    if (kind == LAB_CHART_LATENCY && v <= 0) {
      pen = false;
      continue;
    }
    double x = px(a, (b + 0.5) * (LAB_BUCKET_US / 1e6));
    fprintf(f, "%c%.1f %.1f", pen ? 'L' : 'M', x, py(a, v));
    pen = true;
  }
  fputs("\"/>\n", f);
}

static void leader_ticks(FILE *f, const struct lab_case *c,
                         const struct axes *a, double y0) {
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_run *run = &c->cells[e].runs[0];
    double y = y0 + TICK_ROW * e;
    const char *color = lab_engine_color(c->cells[e].engine);
    fprintf(f,
            "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
            "text-anchor=\"end\">%s</text>\n",
            M_LEFT - 4, y + 8, lab_engine_title(c->cells[e].engine));
    if (run->rv != 0)
      continue;
    size_t n = run->m.n_leaders, step = n > 400 ? n / 400 : 1;
    fprintf(f, "<path stroke=\"%s\" class=\"ticks\" d=\"", color);
    for (size_t i = 0; i < n; i += step) {
      if (run->m.leaders[i].time_us / 1e6 > a->x1)
        break;
      double x = px(a, run->m.leaders[i].time_us / 1e6);
      fprintf(f, "M%.1f %.1fv8", x, y + 1);
    }
    fputs("\"/>\n", f);
  }
}

void lab_svg_timeline(FILE *f, const struct lab_case *c,
                      enum lab_timeline_kind kind) {
  struct axes a = {.top = M_TOP, .height = H_PLOT};
  timeline_ranges(c, kind, &a);
  double ticks_y = M_TOP + H_PLOT + 22;
  double h = ticks_y + TICK_ROW * c->n_cells + 30;
  const char *what = kind == LAB_CHART_THROUGHPUT
                         ? "acknowledged operations per second, per 100 ms"
                         : "latency of the operations answered in each "
                           "100 ms (ms, log scale)";
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f "
          "%.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" "
          "aria-label=\"%s\">\n",
          W, h, W, h, what);
  legend(f, c, kind == LAB_CHART_LATENCY ? "solid: p50, dotted: p99" : NULL);
  fault_shading(f, c, &a);
  axis_y(f, &a, kind == LAB_CHART_THROUGHPUT ? "ops/s" : "ms");
  axis_x_seconds(f, &a, M_TOP + H_PLOT + 14);
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_run *run = &c->cells[e].runs[0];
    if (run->rv != 0)
      continue;
    const char *color = lab_engine_color(c->cells[e].engine);
    series_path(f, &run->m.series, &a, kind, false, color);
    if (kind == LAB_CHART_LATENCY)
      series_path(f, &run->m.series, &a, kind, true, color);
  }
  fprintf(f,
          "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
          "y2=\"%.1f\"/>\n",
          M_LEFT, M_TOP + H_PLOT, W - M_RIGHT, M_TOP + H_PLOT);
  leader_ticks(f, c, &a, ticks_y);
  fprintf(f,
          "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">ticks: a new leader "
          "(classic Paxos: a proposer winning phase 1); shaded: a fault "
          "until it heals</text>\n",
          M_LEFT, h - 16);
  /* Say where the window ends and who ran past it. */
  fprintf(f, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">time axis: ", M_LEFT,
          h - 4);
  if (c->marks.load_end_us > 0)
    fprintf(f, "0 to %.1f s, when the clients stop starting operations", a.x1);
  else
    fprintf(f, "0 to %.1f s, 1.25x the median engine's client phase", a.x1);
  uint32_t past = 0;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_run *run = &c->cells[e].runs[0];
    double end_s = run->rv == 0 ? run->m.client_s : 0;
    if (end_s > a.x1 + 0.5) /* more than the last answers trickling in */
      fprintf(f, "%s%s until %.1f s", past++ ? ", " : "; ran past it: ",
              lab_engine_title(c->cells[e].engine), end_s);
  }
  fputs("</text>\n</svg>\n", f);
}

/* ---- the latency distribution -------------------------------------------- */

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return (a > b) - (a < b);
}

/* Every seed's latencies for one engine, sorted (malloc'd). */
static uint32_t *pooled(const struct lab_cell *cell, uint32_t n_seeds,
                        size_t *n) {
  size_t total = 0;
  for (uint32_t s = 0; s < n_seeds; s++)
    total += cell->runs[s].rv == 0 ? cell->runs[s].m.n_latencies : 0;
  uint32_t *v = malloc((total ? total : 1) * sizeof *v);
  if (v == NULL)
    return NULL;
  size_t k = 0;
  for (uint32_t s = 0; s < n_seeds; s++)
    if (cell->runs[s].rv == 0) {
      memcpy(v + k, cell->runs[s].m.latencies_us,
             cell->runs[s].m.n_latencies * sizeof *v);
      k += cell->runs[s].m.n_latencies;
    }
  qsort(v, k, sizeof *v, cmp_u32);
  *n = k;
  return v;
}

void lab_svg_cdf(FILE *f, const struct lab_case *c, uint32_t n_seeds) {
  uint32_t *lat[LAB_ENGINES_MAX];
  size_t n[LAB_ENGINES_MAX];
  double lo = 1e12, hi = 0;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    lat[e] = pooled(&c->cells[e], n_seeds, &n[e]);
    if (lat[e] != NULL && n[e] > 0) {
      lo = lat[e][0] / 1e3 < lo ? lat[e][0] / 1e3 : lo;
      hi = lat[e][n[e] - 1] / 1e3 > hi ? lat[e][n[e] - 1] / 1e3 : hi;
    }
  }
  struct axes a = {
      .top = M_TOP, .height = H_PLOT, .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 100};
  a.x0 = floor(log10(lo < 1e12 && lo > 0.01 ? lo : 1));
  a.x1 = ceil(log10(hi > 1 ? hi : 10));
  if (a.x1 <= a.x0)
    a.x1 = a.x0 + 1;
  double h = M_TOP + H_PLOT + 34;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f "
          "%.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" "
          "aria-label=\"latency distribution\">\n",
          W, h, W, h);
  legend(f, c, "share of acknowledged operations at or under a latency");
  axis_y(f, &a, "% of ops");
  for (double d = a.x0; d <= a.x1 + 1e-9; d++)
    fprintf(f,
            "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
            "y2=\"%.1f\"/><text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
            "text-anchor=\"middle\">%g ms</text>\n",
            px(&a, d), M_TOP, px(&a, d), M_TOP + H_PLOT, px(&a, d),
            M_TOP + H_PLOT + 14, pow(10, d));
  for (uint32_t e = 0; e < c->n_cells; e++) {
    if (lat[e] == NULL || n[e] == 0)
      continue;
    fprintf(f, "<path class=\"line\" stroke=\"%s\" d=\"",
            lab_engine_color(c->cells[e].engine));
    for (int q = 0; q <= 400; q++) {
      double share = q / 400.0;
      size_t idx = (size_t)(share * (double)(n[e] - 1));
      double ms = lat[e][idx] / 1e3;
      fprintf(f, "%c%.1f %.1f", q ? 'L' : 'M',
              px(&a, log10(ms > 0.001 ? ms : 0.001)), py(&a, share * 100));
    }
    fputs("\"/>\n", f);
  }
  fprintf(f,
          "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">latency (ms, log "
          "scale); operations pooled over the seeds: ",
          M_LEFT, h - 4);
  for (uint32_t e = 0; e < c->n_cells; e++)
    fprintf(f, "%s%s %zu", e ? ", " : "", lab_engine_title(c->cells[e].engine),
            lat[e] != NULL ? n[e] : (size_t)0);
  fputs("</text>\n", f);
  for (uint32_t e = 0; e < c->n_cells; e++)
    free(lat[e]);
  fputs("</svg>\n", f);
}
