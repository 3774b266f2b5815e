/* The lab's terminal output: per case, a table of medians over seeds (one
 * row per engine), the recovery after each timeline event, and the
 * generated paragraph, wrapped for an 80-column terminal. The min-max
 * ranges live in report.html and results.json. */
#include <string.h>

#include "lab/lab.h"
#include "lab/report.h"

static void print_wrapped(FILE *f, const char *text, size_t width,
                          const char *indent) {
  size_t col = 0;
  const char *p = text;
  fputs(indent, f);
  while (*p != '\0') {
    size_t word = strcspn(p, " ");
    if (col > 0 && col + 1 + word > width) {
      fprintf(f, "\n%s", indent);
      col = 0;
    } else if (col > 0) {
      fputc(' ', f);
      col++;
    }
    fwrite(p, 1, word, f);
    col += word;
    p += word;
    while (*p == ' ')
      p++;
  }
  fputc('\n', f);
}

const char *lab_cell_verdict(const struct lab_cell *cell, char *buf,
                             size_t size) {
  if (cell->runs_not_run > 0)
    snprintf(buf, size, "NOT RUN (%u)", cell->runs_not_run);
  else if (cell->runs_fatal > 0)
    snprintf(buf, size, "SAFETY BROKEN (%u runs)", cell->runs_fatal);
  else if (!lab_engine_is_consensus(cell->engine) && cell->acked_lost_total > 0)
    snprintf(buf, size, "LOST %llu acked writes",
             (unsigned long long)cell->acked_lost_total);
  else if (!lab_engine_is_consensus(cell->engine) && cell->invariant_total > 0)
    snprintf(buf, size, "BROKE %llu invariants",
             (unsigned long long)cell->invariant_total);
  else if (!lab_engine_is_consensus(cell->engine) &&
           (cell->safety_total > 0 || cell->linearizability_total > 0))
    snprintf(buf, size, "broke %llu checks",
             (unsigned long long)(cell->safety_total +
                                  cell->linearizability_total +
                                  cell->invariant_total));
  else if (cell->liveness_total > 0)
    snprintf(buf, size, "stuck %llu run%s",
             (unsigned long long)cell->liveness_total,
             cell->liveness_total == 1 ? "" : "s");
  else
    snprintf(buf, size, "ok");
  return buf;
}

static void print_case_header(FILE *f, const struct lab *lab,
                              const struct lab_case *c) {
  const struct lab_scenario *sc = c->sc;
  fprintf(f, "\n== %s: %s", c->id, sc->title);
  if (c->variant >= 0)
    fprintf(f, " [%s]",
            sc->variants[c->variant].text[0] ? sc->variants[c->variant].text
                                             : sc->variants[c->variant].name);
  fprintf(f, "\n");
  char setup[256];
  lab_case_setup_text(c, setup, sizeof setup);
  fprintf(f, "   %s; %u seed%s, medians\n", setup, lab->opt.n_seeds,
          lab->opt.n_seeds == 1 ? "" : "s");
}

/* A median right-aligned in `width`, or "-" when no run measured it. */
static const char *fmt_stat(char *buf, size_t size, int width,
                            const struct lab_stat *st, double scale,
                            int decimals) {
  if (st->n == 0)
    snprintf(buf, size, "%*s", width, "-");
  else
    snprintf(buf, size, "%*.*f", width, decimals, st->median * scale);
  return buf;
}

static void print_main_table(FILE *f, const struct lab_case *c) {
  fprintf(f, "   %-13s %7s %6s %7s %7s %8s %8s %6s %7s %7s %8s %4s  %s\n",
          "engine", "ops/s", "succ", "mean ms", "p50 ms", "p99 ms", "p99.9 ms",
          "max s", "avail", "leader", "msgs/op", "lost", "checks");
  bool short_tail = false;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    char verdict[64], p99[16], p999[16];
    short_tail = short_tail || cell->latency_p99.n < cell->latency_p50.n ||
                 cell->latency_p999.n < cell->latency_p50.n;
    fprintf(f,
            "   %-13s %7.1f %5.1f%% %7.1f %7.1f %s %s %6.2f %6.1f%% "
            "%7.0f %8.1f %4.0f  %s\n",
            lab_engine_title(cell->engine), cell->throughput.median,
            100 * cell->success.median, cell->latency_mean.median,
            cell->latency_p50.median,
            fmt_stat(p99, sizeof p99, 8, &cell->latency_p99, 1, 1),
            fmt_stat(p999, sizeof p999, 8, &cell->latency_p999, 1, 1),
            cell->latency_max.median / 1000.0, 100 * cell->availability.median,
            cell->leader_changes.median, cell->msgs_per_op.median,
            cell->acked_lost.median,
            lab_cell_verdict(cell, verdict, sizeof verdict));
  }
  if (short_tail)
    fprintf(f,
            "   (p99 needs %u acknowledged operations in a run, p99.9 "
            "%u; '-' or a median over fewer seeds where a run had "
            "fewer)\n",
            LAB_P99_SAMPLES_MIN, LAB_P999_SAMPLES_MIN);
}

static void print_recovery_table(FILE *f, const struct lab_case *c,
                                 uint32_t n_seeds) {
  if (c->marks.n == 0)
    return;
  fprintf(f, "   recovery after each event (s; '-' not within its window):\n");
  for (uint32_t k = 0; k < c->marks.n; k++) {
    fprintf(f, "     %6.1f s %-40.40s", c->marks.at_us[k] / 1e6,
            c->marks.label[k]);
    for (uint32_t e = 0; e < c->n_cells; e++) {
      const struct lab_stat *st = &c->cells[e].recovery[k];
      char v[32];
      if (st->n == 0)
        snprintf(v, sizeof v, "-");
      else if (st->n < n_seeds)
        snprintf(v, sizeof v, "%.1f(%u/%u)", st->median, st->n, n_seeds);
      else
        snprintf(v, sizeof v, "%.1f", st->median);
      fprintf(f, " %s %-9s", c->cells[e].engine, v);
    }
    fprintf(f, "\n");
  }
}

/* A case with several groups: per engine, each group's preferred node (its
 * city), the node that led it at the end of each run (how many runs ended
 * with it in its city), its leader changes and median latency (medians
 * over the runs). */
uint32_t lab_case_groups(const struct lab_case *c) {
  return c->settings.groups ? c->settings.groups : 1;
}

void lab_group_row(const struct lab_case *c, const struct lab_cell *cell,
                   uint32_t g, uint32_t n_seeds, struct lab_group_row *row) {
  const struct lab_settings *st = &c->settings;
  uint32_t groups = lab_case_groups(c);
  memset(row, 0, sizeof *row);
  row->prefers = st->n_group_leaders == groups ? st->group_leader[g] : 0;
  uint32_t votes[SABHA_NODES_MAX + 1] = {0};
  double p50[LAB_SEEDS_MAX], changes[LAB_SEEDS_MAX];
  uint32_t n_p50 = 0;
  for (uint32_t s = 0; s < n_seeds; s++) {
    const struct lab_run *run = &cell->runs[s];
    if (run->rv != 0 || run->m.n_groups != groups)
      continue;
    const struct lab_group_figures *gf = &run->m.groups[g];
    if (gf->leader <= SABHA_NODES_MAX)
      votes[gf->leader]++;
    row->at_home += row->prefers != 0 && gf->leader == row->prefers;
    row->keys = gf->keys;
    changes[row->runs++] = gf->leader_changes;
    if (gf->latency_ms_p50 >= 0)
      p50[n_p50++] = gf->latency_ms_p50;
  }
  for (uint32_t id = 1; id <= SABHA_NODES_MAX; id++)
    if (votes[id] > votes[row->led_by])
      row->led_by = id;
  row->changes = lab_stat_of(changes, row->runs).median;
  struct lab_stat sp = lab_stat_of(p50, n_p50);
  row->p50_ms = sp.n > 0 ? sp.median : -1;
}

static void print_groups_table(FILE *f, const struct lab_case *c,
                               uint32_t n_seeds) {
  uint32_t groups = lab_case_groups(c);
  if (groups <= 1)
    return;
  const struct lab_scenario *sc = c->sc;
  fprintf(f,
          "   groups (%u per node): leader at the end of each run, "
          "medians over the runs\n",
          groups);
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    fprintf(f, "   %s\n     %-5s %-12s %-12s %8s %7s %7s %7s\n",
            lab_engine_title(cell->engine), "group", "prefers", "led by",
            "at home", "keys", "changes", "p50 ms");
    for (uint32_t g = 0; g < groups; g++) {
      struct lab_group_row row;
      lab_group_row(c, cell, g, n_seeds, &row);
      char at_home[16] = "-";
      if (row.prefers != 0)
        snprintf(at_home, sizeof at_home, "%u/%u", row.at_home, row.runs);
      fprintf(f, "     %-5u %-12s %-12s %8s %7u %7.0f ", g,
              row.prefers != 0 ? sc->node_name[row.prefers - 1] : "-",
              row.led_by != 0 ? sc->node_name[row.led_by - 1] : "none", at_home,
              row.keys, row.changes);
      if (row.p50_ms < 0)
        fprintf(f, "%7s\n", "-");
      else
        fprintf(f, "%7.1f\n", row.p50_ms);
    }
  }
}

void lab_print_tables(const struct lab *lab, FILE *f) {
  for (size_t i = 0; i < lab->n_cases; i++) {
    const struct lab_case *c = &lab->cases[i];
    print_case_header(f, lab, c);
    print_main_table(f, c);
    print_recovery_table(f, c, lab->opt.n_seeds);
    print_groups_table(f, c, lab->opt.n_seeds);
    fputc('\n', f);
    print_wrapped(f, c->narrative, 76, "   ");
    size_t first = i, n = 1;
    while (first > 0 && lab->cases[first - 1].sc == c->sc)
      first--, n++;
    bool last = i + 1 == lab->n_cases || lab->cases[i + 1].sc != c->sc;
    if (last && c->variant >= 0 && n > 1) {
      char text[LAB_NARRATIVE_BYTES];
      lab_narrate_variants(&lab->cases[first], n, text, sizeof text);
      fprintf(f, "\n== %s: the variants side by side\n", c->sc->name);
      print_wrapped(f, text, 76, "   ");
    }
  }
}
