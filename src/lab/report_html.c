/* report.html: one self-contained page (inline CSS and SVG, no script, no
 * network) that an architect or a learner can read without the terminal.
 *
 * Top: what was run, a verdict (did every consensus engine keep its safety
 * promises), an overview table of every case, and how to read the figures.
 * Then per scenario: its story, nodes and timeline; a side-by-side table
 * of its variants if it has any; and per case the generated paragraph, the
 * summary table (medians with min-max over seeds), recovery after each
 * event, the throughput and latency timelines (first seed) and the latency
 * distribution (all seeds). */
#include <errno.h>
#include <string.h>

#include "lab/lab.h"
#include "lab/report.h"
#include "lab/svg.h"

static const char style[] =
    "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "margin:0 auto;max-width:960px;padding:0 16px 48px;color:#222}"
    "h1{margin-top:24px}h2{margin-top:48px;border-bottom:2px solid #ddd}"
    "h3{margin-top:32px}"
    "table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}"
    "th,td{padding:3px 8px;border-bottom:1px solid #e4e4e4;"
    "text-align:right;vertical-align:top}"
    "th{background:#f4f4f4}td.l,th.l{text-align:left}"
    ".rng{color:#888;font-size:11px;display:block}"
    ".bad{color:#b00;font-weight:bold}.warn{color:#a60}.ok{color:#070}"
    ".story{background:#f8f8f4;border-left:4px solid #cc9;padding:8px 12px}"
    ".narr{background:#f3f7fb;border-left:4px solid #79b;padding:8px 12px}"
    ".verdict{font-size:17px;padding:8px 12px;border:2px solid}"
    ".verdict.good{border-color:#7b7}.verdict.fail{border-color:#c44}"
    ".sw{display:inline-block;width:10px;height:10px;margin-right:5px}"
    "svg{max-width:100%;height:auto;display:block;margin:4px 0 12px}"
    "svg text{font:11px system-ui,sans-serif;fill:#444}"
    "svg .grid{stroke:#eee}svg .axis{stroke:#999}"
    "svg .line{fill:none;stroke-width:1.6}"
    "svg .p99{stroke-dasharray:2 2;stroke-width:1;opacity:.7}"
    "svg .ticks{stroke-width:1.2}"
    "svg .fault{fill:#f2b8b8;opacity:.35}svg .fault.crash{fill:#c9b6e8}"
    "svg .event{stroke:#a33;stroke-dasharray:4 3}"
    "svg .evlabel{fill:#a33;font-size:10px}"
    "svg .note{fill:#888;font-size:10px}"
    "code{background:#f2f2f2;padding:0 3px}"
    "nav ul{columns:2}";

static void esc(FILE *f, const char *s) {
  lab_html_escape(f, s);
}

/* "<td>median<span>min-max</span></td>" with `scale` applied. */
static void td_stat(FILE *f, const struct lab_stat *st, double scale,
                    const char *fmt, bool show_range) {
  if (st->n == 0) {
    fputs("<td>-</td>", f);
    return;
  }
  char v[64];
  fputs("<td>", f);
  snprintf(v, sizeof v, fmt, st->median * scale);
  fputs(v, f);
  if (show_range && st->max > st->min) {
    fputs("<span class=\"rng\">", f);
    snprintf(v, sizeof v, fmt, st->min * scale);
    fputs(v, f);
    fputs("&ndash;", f);
    snprintf(v, sizeof v, fmt, st->max * scale);
    fputs(v, f);
    fputs("</span>", f);
  }
  fputs("</td>", f);
}

static void td_engine(FILE *f, const char *engine) {
  fprintf(f,
          "<td class=\"l\"><span class=\"sw\" style=\"background:%s\">"
          "</span>%s</td>",
          lab_engine_color(engine), lab_engine_title(engine));
}

static void td_verdict(FILE *f, const struct lab_cell *cell) {
  char v[80];
  lab_cell_verdict(cell, v, sizeof v);
  const char *cls = strcmp(v, "ok") == 0                             ? "ok"
                    : cell->runs_fatal > 0 || cell->runs_not_run > 0 ? "bad"
                                                                     : "warn";
  fprintf(f, "<td class=\"l %s\">", cls);
  esc(f, v);
  fputs("</td>", f);
}

/* ---- the top of the page ------------------------------------------------- */

static void page_head(FILE *f, const struct lab *lab) {
  fprintf(f,
          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
          "charset=\"utf-8\">\n<meta name=\"viewport\" "
          "content=\"width=device-width, initial-scale=1\">\n"
          "<title>sabha lab report</title>\n<style>%s</style>\n</head>\n"
          "<body>\n<h1>sabha lab</h1>\n",
          style);
  fprintf(f, "<p>%zu scenario case%s &times; %u engine%s (", lab->n_cases,
          lab->n_cases == 1 ? "" : "s", lab->opt.n_engines,
          lab->opt.n_engines == 1 ? "" : "s");
  for (uint32_t e = 0; e < lab->opt.n_engines; e++)
    fprintf(f, "%s%s", e ? ", " : "", lab_engine_title(lab->opt.engines[e]));
  fprintf(f,
          ") &times; %u seed%s (%llu&ndash;%llu) = %u simulator runs in "
          "%.1f s of wall time. Every engine in a case ran the same nodes, "
          "links, clients, operations and fault timeline on the same seeds; "
          "only the protocol differs. All safety checkers were on.</p>\n",
          lab->opt.n_seeds, lab->opt.n_seeds == 1 ? "" : "s",
          (unsigned long long)lab->opt.seed_first,
          (unsigned long long)(lab->opt.seed_first + lab->opt.n_seeds - 1),
          lab->runs_total, lab->wall_s);
  if (lab->runs_fatal == 0)
    fputs("<p class=\"verdict good\">Verdict: no consensus engine broke a "
          "safety check or lost an acknowledged write in any run.</p>\n",
          f);
  else
    fprintf(f,
            "<p class=\"verdict fail\">Verdict: FAILED. %u run(s) of a "
            "consensus engine broke a safety check; the cases marked "
            "<span class=\"bad\">SAFETY BROKEN</span> below say where, and "
            "results.json holds each run's first failure.</p>\n",
            lab->runs_fatal);
}

static void how_to_read(FILE *f) {
  fputs("<h2 id=\"read\">How to read this report</h2>\n<ul>\n"
        "<li><b>ops/s</b>: acknowledged operations per simulated second of "
        "the client phase; <b>success</b>: acknowledged / attempted (the "
        "rest timed out or were refused).</li>\n"
        "<li><b>latency</b>: from a client's call to its acknowledgement, "
        "retries after a failover included (p50, p99, p99.9, max; mean in "
        "the CSV). A p99 needs at least 100 acknowledged operations in a "
        "run and a p99.9 at least 1000; with fewer it would only be the "
        "maximum again, so it is shown as '-' (null in JSON).</li>\n"
        "<li><b>availability</b>: the share of 100 ms slices of the load "
        "phase (the client phase up to the workload's duration, start-up "
        "election included) in which at least one write was acknowledged. "
        "An engine answering fewer than a few operations per 100 ms leaves "
        "slices empty with no fault at all: read it with ops/s.</li>\n"
        "<li><b>recovery</b> after an event: if throughput dropped below "
        "half the rate seen before the first event (at the event, or later "
        "for two 100 ms slices in a row) before the next event, the time "
        "from the event to the first slice from which two slices in a row "
        "are back at half that rate; 0 means it never dropped; '-' means "
        "it did not come back before the next event. <b>first commit</b> "
        "(JSON/CSV): to the first write both issued and acknowledged after "
        "the event.</li>\n"
        "<li><b>leader changes</b>: new leaderships after the first, in the "
        "client phase. For classic Paxos every proposer that wins phase 1 "
        "counts, so its figure measures contention, not failover. "
        "<b>elections started</b>: elections (Raft, async) or phase-1 rounds "
        "(Paxos) begun by any node, won or not: many started and few won is "
        "a cluster that cannot agree on a leader.</li>\n"
        "<li><b>msgs/op, bytes/op</b>: messages and bytes between nodes per "
        "acknowledged operation, counted over the whole run (the catch-up "
        "after the clients stop included).</li>\n"
        "<li><b>lost</b>: acknowledged writes missing from the nodes' state "
        "at the end. <b>checks</b>: election safety, log matching, state "
        "machine safety, linearizability and application invariants.</li>\n"
        "<li>Tables give the median over seeds with the min&ndash;max range "
        "under it. Timelines show the first seed over a window shared by the "
        "engines (the load phase; the note under a chart says who ran past "
        "it); shaded bands are faults "
        "(violet: a node down), dashed lines the timeline's events, ticks "
        "under the axis each engine's leader changes.</li>\n"
        "<li>async is not consensus: a primary-backup baseline that "
        "acknowledges before replicating, shown to make the price of "
        "consensus (and what it buys) visible.</li>\n</ul>\n",
        f);
}

static void overview(FILE *f, const struct lab *lab) {
  fputs("<h2 id=\"overview\">Overview</h2>\n<table>\n<tr><th "
        "class=\"l\">case</th><th class=\"l\">engine</th><th>ops/s</th>"
        "<th>p99 ms</th><th>avail.</th><th>leader changes</th><th>lost</th>"
        "<th class=\"l\">checks</th></tr>\n",
        f);
  for (size_t i = 0; i < lab->n_cases; i++) {
    const struct lab_case *c = &lab->cases[i];
    for (uint32_t e = 0; e < c->n_cells; e++) {
      const struct lab_cell *cell = &c->cells[e];
      fputs("<tr>", f);
      if (e == 0) {
        fprintf(f, "<td class=\"l\" rowspan=\"%u\"><a href=\"#c-", c->n_cells);
        esc(f, c->id);
        fputs("\">", f);
        esc(f, c->id);
        fputs("</a></td>", f);
      }
      td_engine(f, cell->engine);
      td_stat(f, &cell->throughput, 1, "%.0f", false);
      td_stat(f, &cell->latency_p99, 1, "%.0f", false);
      td_stat(f, &cell->availability, 100, "%.0f%%", false);
      td_stat(f, &cell->leader_changes, 1, "%.0f", false);
      td_stat(f, &cell->acked_lost, 1, "%.0f", false);
      td_verdict(f, cell);
      fputs("</tr>\n", f);
    }
  }
  fputs("</table>\n", f);
}

/* ---- a scenario ---------------------------------------------------------- */

static void scenario_intro(FILE *f, const struct lab_scenario *sc) {
  fputs("<h2 id=\"s-", f);
  esc(f, sc->name);
  fputs("\">", f);
  esc(f, sc->name);
  fputs(": ", f);
  esc(f, sc->title);
  fputs("</h2>\n", f);
  if (sc->story[0]) {
    fputs("<p class=\"story\">", f);
    esc(f, sc->story);
    fputs("</p>\n", f);
  }
  fputs("<p><b>Nodes:</b> ", f);
  for (uint32_t i = 0; i < sc->n_nodes; i++) {
    fputs(i ? ", " : "", f);
    esc(f, sc->node_name[i]);
    fputs(" (", f);
    esc(f, sc->region_name[sc->node_region[i]]);
    fputs(")", f);
  }
  fputs(". <b>Links:</b> ", f);
  for (uint32_t k = 0; k < sc->n_links; k++) {
    const struct lab_link *l = &sc->links[k];
    fprintf(f, "%s%s%s%s", k ? "; " : "",
            l->a.kind == LAB_END_ANY    ? "*"
            : l->a.kind == LAB_END_NODE ? sc->node_name[l->a.index]
                                        : sc->region_name[l->a.index],
            l->one_way ? " &rarr; " : " &harr; ",
            l->b.kind == LAB_END_ANY    ? "*"
            : l->b.kind == LAB_END_NODE ? sc->node_name[l->b.index]
                                        : sc->region_name[l->b.index]);
    if (l->has_latency)
      fprintf(f, " %.0f ms", l->latency_us / 1e3);
    if (l->has_jitter)
      fprintf(f, " &plusmn;%.0f", l->jitter_us / 1e3);
    if (l->has_loss)
      fprintf(f, " loss %.1f%%", l->loss * 100);
  }
  if (sc->n_links == 0)
    fputs("1 ms &plusmn;0.5 between every pair (a LAN)", f);
  fputs(". Clients reach every node.</p>\n", f);
  if (sc->n_events > 0) {
    fputs("<p><b>Timeline:</b></p><ul>\n", f);
    for (uint32_t k = 0; k < sc->n_events; k++) {
      fprintf(f, "<li>%.1f s: <code>", sc->events[k].at_ms / 1e3);
      esc(f, sc->events[k].label);
      fputs("</code></li>\n", f);
    }
    fputs("</ul>\n", f);
  }
  fputs("<p class=\"note\">Source: <code>", f);
  esc(f, sc->source);
  fputs("</code></p>\n", f);
}

/* Variants side by side: one row per variant and engine. */
static void variants_table(FILE *f, const struct lab *lab, size_t first,
                           size_t n) {
  const struct lab_case *c0 = &lab->cases[first];
  uint32_t main_mark = 0; /* the first event: the fault the story is about */
  fputs("<h3>Variants side by side</h3>\n<table>\n<tr><th "
        "class=\"l\">variant</th><th class=\"l\">engine</th><th>ops/s</th>"
        "<th>p99 ms</th><th>avail.</th><th>leader changes</th>"
        "<th>elections started</th>",
        f);
  if (c0->marks.n > 0) /* the label can be long: it goes in a tooltip */
    fprintf(f,
            "<th title=\"%s\">recovery after the first event (%.1f s), "
            "s</th>",
            "see the timeline above", c0->marks.at_us[main_mark] / 1e6);
  fputs("<th>lost</th><th class=\"l\">checks</th></tr>\n", f);
  for (size_t i = first; i < first + n; i++) {
    const struct lab_case *c = &lab->cases[i];
    const struct lab_variant *v = &c->sc->variants[c->variant];
    for (uint32_t e = 0; e < c->n_cells; e++) {
      const struct lab_cell *cell = &c->cells[e];
      fputs("<tr>", f);
      if (e == 0) {
        fprintf(f, "<td class=\"l\" rowspan=\"%u\"><b>", c->n_cells);
        esc(f, v->name);
        fputs("</b><span class=\"rng\">", f);
        esc(f, v->text);
        fputs("</span></td>", f);
      }
      td_engine(f, cell->engine);
      td_stat(f, &cell->throughput, 1, "%.0f", true);
      td_stat(f, &cell->latency_p99, 1, "%.0f", true);
      td_stat(f, &cell->availability, 100, "%.0f%%", true);
      td_stat(f, &cell->leader_changes, 1, "%.0f", true);
      td_stat(f, &cell->elections_started, 1, "%.0f", true);
      if (c0->marks.n > 0)
        td_stat(f, &cell->recovery[main_mark], 1, "%.1f", true);
      td_stat(f, &cell->acked_lost, 1, "%.0f", true);
      td_verdict(f, cell);
      fputs("</tr>\n", f);
    }
  }
  fputs("</table>\n", f);
  char text[LAB_NARRATIVE_BYTES];
  lab_narrate_variants(&lab->cases[first], n, text, sizeof text);
  fputs("<p class=\"narr\">", f);
  esc(f, text);
  fputs("</p>\n", f);
}

/* ---- a case -------------------------------------------------------------- */

static void case_table(FILE *f, const struct lab_case *c) {
  fputs(
      "<table>\n<tr><th class=\"l\">engine</th><th>ops/s</th>"
      "<th>success</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th>"
      "<th>max ms</th><th>avail.</th><th>leader changes</th>"
      "<th>elections started</th><th>msgs/op</th><th>bytes/op</th><th>lost</th>"
      "<th class=\"l\">checks</th></tr>\n",
      f);
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    fputs("<tr>", f);
    td_engine(f, cell->engine);
    td_stat(f, &cell->throughput, 1, "%.1f", true);
    td_stat(f, &cell->success, 100, "%.1f%%", true);
    td_stat(f, &cell->latency_p50, 1, "%.1f", true);
    td_stat(f, &cell->latency_p99, 1, "%.1f", true);
    td_stat(f, &cell->latency_p999, 1, "%.1f", true);
    td_stat(f, &cell->latency_max, 1, "%.0f", true);
    td_stat(f, &cell->availability, 100, "%.1f%%", true);
    td_stat(f, &cell->leader_changes, 1, "%.0f", true);
    td_stat(f, &cell->elections_started, 1, "%.0f", true);
    td_stat(f, &cell->msgs_per_op, 1, "%.1f", true);
    td_stat(f, &cell->bytes_per_op, 1, "%.0f", true);
    td_stat(f, &cell->acked_lost, 1, "%.0f", true);
    td_verdict(f, cell);
    fputs("</tr>\n", f);
  }
  fputs("</table>\n", f);
}

static void recovery_table(FILE *f, const struct lab_case *c) {
  if (c->marks.n == 0)
    return;
  fputs("<p><b>Recovery after each event</b> (seconds to half the "
        "earlier throughput; writes acknowledged until the next "
        "event):</p>\n<table>\n<tr><th class=\"l\">event</th>",
        f);
  for (uint32_t e = 0; e < c->n_cells; e++)
    fprintf(f, "<th>%s<span class=\"rng\">recovery / writes</span></th>",
            lab_engine_title(c->cells[e].engine));
  fputs("</tr>\n", f);
  for (uint32_t k = 0; k < c->marks.n; k++) {
    fprintf(f, "<tr><td class=\"l\">%.1f s <code>", c->marks.at_us[k] / 1e6);
    esc(f, c->marks.label[k]);
    fputs("</code></td>", f);
    for (uint32_t e = 0; e < c->n_cells; e++) {
      const struct lab_cell *cell = &c->cells[e];
      const struct lab_stat *r = &cell->recovery[k];
      const struct lab_stat *w = &cell->window_writes[k + 1];
      fputs("<td>", f);
      if (r->n == 0)
        fputs("-", f);
      else
        fprintf(f, "%.1f s", r->median);
      if (r->n > 0 && r->max > r->min)
        fprintf(f, "<span class=\"rng\">%.1f&ndash;%.1f</span>", r->min,
                r->max);
      fprintf(f, "<span class=\"rng\">%.0f writes</span></td>", w->median);
    }
    fputs("</tr>\n", f);
  }
  fputs("</table>\n", f);
}

/* With several groups: per engine and group, where it prefers its leader,
 * who led it at the end, its leader changes and median latency. */
static void groups_table(FILE *f, const struct lab_case *c, uint32_t n_seeds) {
  uint32_t groups = lab_case_groups(c);
  if (groups <= 1)
    return;
  const struct lab_scenario *sc = c->sc;
  fprintf(f,
          "<p><b>Groups</b> (%u per node; the leader at the end of most "
          "runs, and in how many runs it was the preferred node; medians "
          "over the runs):</p>\n<table>\n<tr><th class=\"l\">engine</th>"
          "<th>group</th><th class=\"l\">prefers</th>"
          "<th class=\"l\">led by</th><th>at home</th><th>keys</th>"
          "<th>leader changes</th><th>p50 ms</th></tr>\n",
          groups);
  for (uint32_t e = 0; e < c->n_cells; e++)
    for (uint32_t g = 0; g < groups; g++) {
      struct lab_group_row row;
      lab_group_row(c, &c->cells[e], g, n_seeds, &row);
      fputs("<tr>", f);
      td_engine(f, c->cells[e].engine);
      fprintf(f, "<td>%u</td><td class=\"l\">", g);
      esc(f, row.prefers != 0 ? sc->node_name[row.prefers - 1] : "-");
      fputs("</td><td class=\"l\">", f);
      esc(f, row.led_by != 0 ? sc->node_name[row.led_by - 1] : "none");
      if (row.prefers != 0)
        fprintf(f, "</td><td>%u/%u", row.at_home, row.runs);
      else
        fputs("</td><td>-", f);
      fprintf(f, "</td><td>%u</td><td>%.0f</td>", row.keys, row.changes);
      if (row.p50_ms < 0)
        fputs("<td>-</td></tr>\n", f);
      else
        fprintf(f, "<td>%.1f</td></tr>\n", row.p50_ms);
    }
  fputs("</table>\n", f);
}

static void case_section(FILE *f, const struct lab *lab,
                         const struct lab_case *c) {
  char setup[512];
  lab_case_setup_text(c, setup, sizeof setup);
  fputs("<h3 id=\"c-", f);
  esc(f, c->id);
  fputs("\">", f);
  esc(f, c->id);
  if (c->variant >= 0 && c->sc->variants[c->variant].text[0]) {
    fputs(" <small>(", f);
    esc(f, c->sc->variants[c->variant].text);
    fputs(")</small>", f);
  }
  fputs("</h3>\n<p>", f);
  esc(f, setup);
  fprintf(f, "; %u seed%s.</p>\n<p class=\"narr\">", lab->opt.n_seeds,
          lab->opt.n_seeds == 1 ? "" : "s");
  esc(f, c->narrative);
  fputs("</p>\n", f);
  case_table(f, c);
  recovery_table(f, c);
  groups_table(f, c, lab->opt.n_seeds);
  fprintf(f, "<p><b>Throughput</b> (seed %llu):</p>\n",
          (unsigned long long)lab->opt.seed_first);
  lab_svg_timeline(f, c, LAB_CHART_THROUGHPUT);
  fprintf(f, "<p><b>Latency</b> (seed %llu):</p>\n",
          (unsigned long long)lab->opt.seed_first);
  lab_svg_timeline(f, c, LAB_CHART_LATENCY);
  fputs("<p><b>Latency distribution</b> (every acknowledged operation, "
        "all seeds):</p>\n",
        f);
  lab_svg_cdf(f, c, lab->opt.n_seeds);
}

static void contents(FILE *f, const struct lab *lab) {
  fputs("<nav><ul>\n<li><a href=\"#overview\">Overview</a></li>\n<li><a "
        "href=\"#read\">How to read this report</a></li>\n",
        f);
  for (size_t i = 0; i < lab->n_cases; i++) {
    fputs("<li><a href=\"#c-", f);
    esc(f, lab->cases[i].id);
    fputs("\">", f);
    esc(f, lab->cases[i].id);
    fputs("</a></li>\n", f);
  }
  fputs("</ul></nav>\n", f);
}

int lab_write_html(const struct lab *lab, const char *path, char *err,
                   size_t err_size) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
    return SABHA_EIO;
  }
  page_head(f, lab);
  contents(f, lab);
  overview(f, lab);
  how_to_read(f);
  for (size_t i = 0; i < lab->n_cases;) {
    const struct lab_scenario *sc = lab->cases[i].sc;
    size_t n = 1;
    while (i + n < lab->n_cases && lab->cases[i + n].sc == sc)
      n++;
    scenario_intro(f, sc);
    if (sc->n_variants > 0)
      variants_table(f, lab, i, n);
    for (size_t k = i; k < i + n; k++)
      case_section(f, lab, &lab->cases[k]);
    i += n;
  }
  fputs("<p class=\"note\">Made by <code>sabha lab</code>; the figures are "
        "in results.json and the CSV files next to this page.</p>\n"
        "</body>\n</html>\n",
        f);
  if (ferror(f) || fclose(f) != 0) {
    snprintf(err, err_size, "cannot write %s", path);
    return SABHA_EIO;
  }
  return 0;
}
