/* The paragraph under each case: what happened, said from the numbers.
 *
 * Every sentence is chosen by a comparison of measured medians (and their
 * min-max ranges across seeds), never written in advance: if Raft was not
 * faster, the text does not say it was. The mechanism named next to a
 * figure is the one the engines implement (src/raft, src/paxos, src/async)
 * and is only named when the run shows it at work (a leader change in the
 * window, a write lost). Where ranges across seeds overlap, the text says
 * the difference is within seed-to-seed noise. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lab/lab.h"
#include "lab/report.h"
#include "node/runtime.h"

#define MARKS_NARRATED_MAX 4 /* events told one by one; the rest summed up */

struct text {
  char *buf;
  size_t size;
  size_t used;
};

__attribute__((format(printf, 2, 3))) static void
tprintf(struct text *t, const char *fmt, ...) {
  if (t->used + 1 >= t->size)
    return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(t->buf + t->used, t->size - t->used, fmt, ap);
  va_end(ap);
  if (w > 0)
    t->used +=
        (size_t)w < t->size - t->used ? (size_t)w : t->size - t->used - 1;
}

void lab_settings_effective(const struct lab_settings *st, uint32_t *et_min_ms,
                            uint32_t *et_max_ms, uint32_t *heartbeat_ms,
                            bool *pre_vote, bool *check_quorum) {
  struct sabha_config cfg;
  uint32_t voters[1] = {1};
  sabha_config_init(&cfg, 1, voters, 1);
  *et_min_ms = st->election_timeout_ms_min ? st->election_timeout_ms_min
                                           : cfg.election_timeout_ms_min;
  *et_max_ms = st->election_timeout_ms_max ? st->election_timeout_ms_max
                                           : cfg.election_timeout_ms_max;
  *heartbeat_ms = st->heartbeat_ms ? st->heartbeat_ms : cfg.heartbeat_ms;
  *pre_vote = st->pre_vote == SIM_SWITCH_DEFAULT
                  ? cfg.pre_vote
                  : st->pre_vote == SIM_SWITCH_ON;
  *check_quorum = st->check_quorum == SIM_SWITCH_DEFAULT
                      ? cfg.check_quorum
                      : st->check_quorum == SIM_SWITCH_ON;
}

void lab_case_setup_text(const struct lab_case *c, char *buf, size_t size) {
  const struct lab_scenario *sc = c->sc;
  uint32_t lo, hi, hb;
  bool pv, cq;
  lab_settings_effective(&c->settings, &lo, &hi, &hb, &pv, &cq);
  char load[64];
  if (sc->workload.ops > 0)
    snprintf(load, sizeof load, "%llu operations",
             (unsigned long long)sc->workload.ops);
  else
    snprintf(load, sizeof load, "for %.1f s", sc->workload.duration_ms / 1e3);
  snprintf(buf, size,
           "%u nodes in %u region%s, %s workload, %u clients %s, election "
           "timeout %u-%u ms, heartbeat %u ms, batch %u, PreVote %s, "
           "CheckQuorum %s",
           sc->n_nodes, sc->n_regions, sc->n_regions == 1 ? "" : "s",
           sc->workload.name, c->clients, load, lo, hi, hb,
           c->settings.batch ? c->settings.batch : LAB_DEFAULT_BATCH,
           pv ? "on" : "off", cq ? "on" : "off");
  if (c->settings.timing == SIM_SWITCH_ON) {
    /* The timeouts above are where adaptive timing starts. */
    size_t used = strlen(buf);
    snprintf(buf + used, size - used,
             "; adaptive timing from there, election timeout %u..%u ms",
             c->settings.timing_floor_ms ? c->settings.timing_floor_ms
                                         : RT_TIMING_FLOOR_MS_DEFAULT,
             c->settings.timing_ceiling_ms ? c->settings.timing_ceiling_ms
                                           : RT_TIMING_CEILING_MS_DEFAULT);
  }
}

/* ---- helpers ------------------------------------------------------------- */

static const char *title(const struct lab_cell *cell) {
  return lab_engine_title(cell->engine);
}

static bool is(const struct lab_cell *cell, const char *engine) {
  return strcmp(cell->engine, engine) == 0;
}

static bool ranges_overlap(const struct lab_stat *a, const struct lab_stat *b) {
  return a->n > 0 && b->n > 0 && a->min <= b->max && b->min <= a->max;
}

/* Event kinds that take something away (as opposed to heal and restart). */
static bool mark_is_fault(const struct lab_case *c, uint32_t k) {
  const struct lab_scenario *sc = c->sc;
  for (uint32_t i = 0; i < sc->n_events; i++) {
    const struct lab_event *ev = &sc->events[i];
    if (ev->at_ms * 1000u == c->marks.at_us[k] && ev->kind != LAB_EV_HEAL &&
        ev->kind != LAB_EV_RESTART)
      return true;
  }
  return false;
}

/* What a new leadership is called in each engine. */
static const char *election_word(const struct lab_cell *cell) {
  if (is(cell, "raft"))
    return "election";
  if (is(cell, "multipaxos"))
    return "phase-1 takeover with a higher ballot";
  if (is(cell, "async"))
    return "backup promotion";
  return "new proposer";
}

/* "0.3 s" for one value, "0.1-0.4 s" for a range. */
static void range_text(char *buf, size_t size, const struct lab_stat *st) {
  if (st->max - st->min < 0.05)
    snprintf(buf, size, "%.1f s", st->median);
  else
    snprintf(buf, size, "%.1f-%.1f s", st->min, st->max);
}

static const struct lab_cell *cell_of(const struct lab_case *c,
                                      const char *engine) {
  for (uint32_t e = 0; e < c->n_cells; e++)
    if (is(&c->cells[e], engine))
      return &c->cells[e];
  return NULL;
}

/* ---- steady state -------------------------------------------------------- */

static void narrate_steady(struct text *t, const struct lab_case *c) {
  bool before = c->marks.n > 0;
  tprintf(t, "%s", before ? "Before the first event, " : "Over the run, ");
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    double rate = before && cell->baseline.n ? cell->baseline.median
                                             : cell->throughput.median;
    tprintf(t, "%s%s answered %.0f ops/s",
            e == 0 ? "" : (e + 1 == c->n_cells ? " and " : ", "), title(cell),
            rate);
  }
  tprintf(t, "%s. ", before ? " (median per 100 ms, as a rate)" : "");
  /* Latency: over the whole run, which the table gives too. */
  tprintf(t, "Over the whole run the median latency was ");
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    tprintf(t, "%s%.0f ms for %s",
            e == 0 ? "" : (e + 1 == c->n_cells ? " and " : ", "),
            cell->latency_p50.median, title(cell));
  }
  tprintf(t, ". ");
  const struct lab_cell *raft = cell_of(c, "raft"),
                        *mp = cell_of(c, "multipaxos");
  const struct lab_cell *paxos = cell_of(c, "paxos"),
                        *async = cell_of(c, "async");
  if (raft && mp && raft->latency_p50.median > 0) {
    double d = mp->latency_p50.median / raft->latency_p50.median;
    if (fabs(d - 1) < 0.015)
      tprintf(t, "Raft and Multi-Paxos have the same median latency: with a "
                 "stable leader both need one round trip to a majority per "
                 "command. ");
    else if (d > 0.85 && d < 1.15)
      tprintf(t,
              "Raft's and Multi-Paxos's median latencies are within %.0f%% "
              "of each other: with a stable leader both need one round "
              "trip to a majority per command. ",
              fabs(d - 1) * 100);
  }
  if (paxos && raft && raft->latency_p50.median > 0 &&
      paxos->latency_p50.median > 1.5 * raft->latency_p50.median) {
    double x = paxos->latency_p50.median / raft->latency_p50.median;
    tprintf(t,
            "Classic Paxos's median is %.1fx Raft's: every command runs "
            "both phases (prepare, then accept), two round trips",
            x);
    if (x > 3 && paxos->elections_started.median >
                     paxos->throughput.median * paxos->client_s.median)
      tprintf(t,
              ", which alone would make it about 2x; the rest is waiting "
              "behind one instance at a time per node and retrying after "
              "collisions (%.0f phase-1 rounds for %.0f acknowledged "
              "operations at the median). ",
              paxos->elections_started.median,
              paxos->throughput.median * paxos->client_s.median);
    else
      tprintf(t, ". ");
  }
  if (async && async->latency_p50.median > 0) {
    bool fastest = true;
    for (uint32_t e = 0; e < c->n_cells; e++)
      if (&c->cells[e] != async &&
          c->cells[e].latency_p50.median < 1.25 * async->latency_p50.median)
        fastest = false;
    if (fastest)
      tprintf(t, "async has the lowest median because its primary "
                 "acknowledges a write before any backup has it. ");
  }
}

/* ---- each event ---------------------------------------------------------- */

/* True when a partition at mark k leaves no group with a majority. */
static bool mark_leaves_no_majority(const struct lab_case *c, uint32_t k) {
  const struct lab_scenario *sc = c->sc;
  for (uint32_t i = 0; i < sc->n_events; i++) {
    const struct lab_event *ev = &sc->events[i];
    if (ev->at_ms * 1000u != c->marks.at_us[k] || ev->kind != LAB_EV_PARTITION)
      continue;
    uint32_t size[SABHA_NODES_MAX + 1] = {0}, largest = 0;
    for (uint32_t n = 0; n < sc->n_nodes && n < SABHA_NODES_MAX; n++)
      if (ev->group[n] <= SABHA_NODES_MAX)
        size[ev->group[n]]++;
    for (uint32_t g = 0; g <= SABHA_NODES_MAX; g++)
      largest = size[g] > largest ? size[g] : largest;
    if (2 * largest <= sc->n_nodes)
      return true;
  }
  return false;
}

static void narrate_recovery_order(struct text *t, const struct lab_case *c,
                                   uint32_t k, uint32_t n_seeds) {
  uint32_t order[LAB_ENGINES_MAX], n = 0;
  for (uint32_t e = 0; e < c->n_cells; e++)
    if (c->cells[e].recovery[k].n > 0)
      order[n++] = e;
  for (uint32_t i = 1; i < n; i++) /* by median recovery */
    for (uint32_t j = i; j > 0 && c->cells[order[j]].recovery[k].median <
                                      c->cells[order[j - 1]].recovery[k].median;
         j--) {
      uint32_t x = order[j];
      order[j] = order[j - 1];
      order[j - 1] = x;
    }
  for (uint32_t i = 0; i < n; i++) {
    const struct lab_cell *cell = &c->cells[order[i]];
    const struct lab_stat *r = &cell->recovery[k];
    const struct lab_stat *lc = &cell->window_leader_changes[k + 1];
    tprintf(t, "%s%s ", i == 0 ? "" : "; ", title(cell));
    if (r->max == 0)
      tprintf(t, "stayed above half its earlier rate");
    else if (r->median == 0)
      tprintf(t,
              "mostly stayed above half its earlier rate (below it for "
              "up to %.1f s in some seeds)",
              r->max);
    else
      tprintf(t, "was back to half its earlier rate %.1f s after the event",
              r->median);
    if (r->n < n_seeds)
      tprintf(t,
              " (in %u of %u runs; in the others it did not come back "
              "before the next event)",
              r->n, n_seeds);
    if (lc->median >= 1 && !is(cell, "paxos"))
      tprintf(t, ", with %.0f new leader%s (%s)", lc->median,
              lc->median >= 2 ? "s" : "", election_word(cell));
    else if (r->max > 0 && lc->max == 0 && !is(cell, "paxos"))
      tprintf(t, ", without a leader change");
  }
  uint32_t never = 0;
  for (uint32_t e = 0; e < c->n_cells; e++)
    never += c->cells[e].recovery[k].n == 0;
  if (never > 0) {
    tprintf(t, "%s", n > 0 ? "; " : "");
    uint32_t said = 0;
    for (uint32_t e = 0; e < c->n_cells; e++)
      if (c->cells[e].recovery[k].n == 0) {
        said++;
        tprintf(t, "%s%s", said == 1 ? "" : (said == never ? " and " : ", "),
                title(&c->cells[e]));
      }
    tprintf(t,
            " dropped below half %s earlier rate and did not get back "
            "to it before the %s in any seed",
            never == 1 ? "its" : "their",
            k + 1 < c->marks.n ? "next event" : "end of the load");
  }
  tprintf(t, ". ");
}

/* The median over seeds of the rate in window w (answers after the grace)
 * as a share of the rate before the first event; < 0 when unknown. */
static double window_share(const struct lab_cell *cell, uint32_t w,
                           uint32_t n_seeds) {
  double v[LAB_SEEDS_MAX];
  size_t n = 0;
  for (uint32_t s = 0; s < n_seeds; s++) {
    const struct lab_run *run = &cell->runs[s];
    if (run->rv != 0 || run->m.baseline_ops_per_s <= 0 || w >= run->m.n_windows)
      continue;
    const struct lab_window *win = &run->m.windows[w];
    double len_s = (double)(win->to_us - win->from_us) / 1e6 -
                   (w > 0 ? LAB_WINDOW_GRACE_US / 1e6 : 0);
    if (len_s <= 0.2)
      continue;
    v[n++] = (double)win->ops / len_s / run->m.baseline_ops_per_s;
  }
  struct lab_stat st = lab_stat_of(v, n);
  return st.n > 0 ? st.median : -1;
}

/* Writes during the window after mark k: who kept committing, who did not. */
static void narrate_window(struct text *t, const struct lab_case *c, uint32_t k,
                           uint32_t n_seeds) {
  double from = c->marks.at_us[k] / 1e6;
  if (k + 1 < c->marks.n)
    tprintf(t, "Between %.1f and %.1f s ", from, c->marks.at_us[k + 1] / 1e6);
  else
    tprintf(t, "From %.1f s to the end ", from);
  uint32_t none = 0;
  for (uint32_t e = 0; e < c->n_cells; e++)
    none += c->cells[e].window_writes[k + 1].max == 0;
  uint32_t said = 0;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_stat *w = &c->cells[e].window_writes[k + 1];
    if (w->max == 0)
      continue;
    tprintf(t, "%s%s acknowledged %.0f writes", said ? ", " : "",
            title(&c->cells[e]), w->median);
    double share = window_share(&c->cells[e], k + 1, n_seeds);
    if (w->max > w->min)
      tprintf(t, " (%.0f-%.0f%s", w->min, w->max, share >= 0 ? "; " : ")");
    else if (share >= 0)
      tprintf(t, " (");
    if (share >= 0)
      tprintf(t, "all operations at %.0f%% of its earlier rate)", 100 * share);
    said++;
  }
  if (none > 0) {
    tprintf(t, "%s", said ? "; " : "");
    uint32_t k2 = 0;
    for (uint32_t e = 0; e < c->n_cells; e++)
      if (c->cells[e].window_writes[k + 1].max == 0)
        tprintf(t, "%s%s", k2++ ? (k2 == none ? " and " : ", ") : "",
                title(&c->cells[e]));
    tprintf(t, " acknowledged no write in any seed");
    if (mark_leaves_no_majority(c, k))
      tprintf(t, " (no side of the partition held a majority, so no "
                 "command could be chosen)");
  }
  tprintf(t, ". ");
}

/* Why Raft and Multi-Paxos differ, when they differ by more than the noise;
 * a mechanism is named only when both changed leader in the window. */
static void narrate_faster(struct text *t, const struct lab_case *c,
                           uint32_t k) {
  const struct lab_cell *raft = cell_of(c, "raft"),
                        *mp = cell_of(c, "multipaxos");
  if (raft == NULL || mp == NULL)
    return;
  const struct lab_stat *a = &raft->recovery[k], *b = &mp->recovery[k];
  if (a->n == 0 || b->n == 0 || (a->max == 0 && b->max == 0))
    return;
  bool both_changed = raft->window_leader_changes[k + 1].median >= 1 &&
                      mp->window_leader_changes[k + 1].median >= 1;
  char ra[48], rb[48];
  range_text(ra, sizeof ra, a);
  range_text(rb, sizeof rb, b);
  if (ranges_overlap(a, b) || fabs(a->median - b->median) < 0.1) {
    tprintf(t,
            "Raft (%s) and Multi-Paxos (%s) recovered in overlapping "
            "ranges over the seeds, so the difference is within "
            "seed-to-seed noise",
            ra, rb);
    if (both_changed)
      tprintf(t, "; both changed leader, and the same failure detector "
                 "(election timeout and heartbeat) sets the pace");
    tprintf(t, ". ");
    return;
  }
  const struct lab_cell *fast = a->median < b->median ? raft : mp;
  tprintf(t, "%s recovered faster in every seed (%s against %s)", title(fast),
          fast == raft ? ra : rb, fast == raft ? rb : ra);
  if (!both_changed) {
    bool raft_changed = raft->window_leader_changes[k + 1].median >= 1;
    bool mp_changed = mp->window_leader_changes[k + 1].median >= 1;
    if (raft_changed || mp_changed)
      tprintf(t,
              "; only %s changed leader in this window (median over "
              "the seeds). ",
              raft_changed ? "Raft" : "Multi-Paxos");
    else
      tprintf(t, "; neither changed leader in this window, so the gap is "
                 "not an election. ");
    return;
  }
  double lc_r = raft->window_leader_changes[k + 1].median;
  double lc_m = mp->window_leader_changes[k + 1].median;
  if (lc_r != lc_m) {
    double lc_fast = fast == raft ? lc_r : lc_m;
    tprintf(t,
            ": %s changed leader %.0f time%s in this window and %s %.0f "
            "(medians), and each change costs an election timeout. ",
            title(fast), lc_fast, lc_fast == 1 ? "" : "s",
            fast == raft ? "Multi-Paxos" : "Raft", fast == raft ? lc_m : lc_r);
    return;
  }
  tprintf(t, ". Both changed leader as often, after the same timeouts; the "
             "gap is in what a new leader must do before it commits: ");
  if (fast == raft)
    tprintf(t, "a Raft candidate already holds every committed entry "
               "(the vote requires an up-to-date log), while a new "
               "Multi-Paxos leader runs phase 1 over the open slots and "
               "re-proposes what it learns. ");
  else
    tprintf(t, "any Multi-Paxos node may take over with a higher ballot "
               "(phase 1 brings it the accepted values it lacks), while "
               "Raft elects only a candidate whose log is at least as up "
               "to date as a majority's, which can take more than one "
               "election. ");
}

static void narrate_marks(struct text *t, const struct lab_case *c,
                          uint32_t n_seeds) {
  uint32_t told = 0;
  for (uint32_t k = 0; k < c->marks.n; k++) {
    if (told == MARKS_NARRATED_MAX) {
      tprintf(t,
              "The timeline has %u more events; the recovery table "
              "gives each. ",
              c->marks.n - k);
      break;
    }
    told++;
    tprintf(t, "After \"%s\" at %.1f s: ", c->marks.label[k],
            c->marks.at_us[k] / 1e6);
    narrate_recovery_order(t, c, k, n_seeds);
    if (mark_is_fault(c, k))
      narrate_window(t, c, k, n_seeds);
    narrate_faster(t, c, k);
  }
}

/* Classic Paxos under contention: when most operations fail and phase-1
 * rounds outnumber acknowledged operations, say so, with the numbers. */
static void narrate_collapse(struct text *t, const struct lab_case *c) {
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    const struct lab_run *run = &cell->runs[0];
    if (!is(cell, "paxos") || cell->success.median >= 0.5 || run->rv != 0 ||
        run->m.elections_started <= run->m.ops_ok)
      continue;
    tprintf(t,
            "Classic Paxos collapsed here: only %.0f%% of operations "
            "were acknowledged, with %.0f phase-1 rounds started (seed "
            "%llu: %llu rounds for %llu acknowledged operations). ",
            100 * cell->success.median, cell->elections_started.median,
            (unsigned long long)run->seed,
            (unsigned long long)run->m.elections_started,
            (unsigned long long)run->m.ops_ok);
    if (cell->latency_p50.median > 200)
      tprintf(t,
              "Its median latency (%.0f ms) is above the clients' "
              "200-500 ms retry timeout, so clients retried at other "
              "nodes, whose proposers pre-empted the first: dueling "
              "proposers (Paxos Made Simple section 2.4), which a "
              "distinguished leader (Multi-Paxos, Raft) avoids. ",
              cell->latency_p50.median);
    else
      tprintf(t, "More rounds than answers is proposers pre-empting each "
                 "other (Paxos Made Simple section 2.4). ");
  }
}

/* Availability counts 100 ms buckets with an acknowledged write: an engine
 * slower than that leaves buckets empty without any fault. */
static void narrate_availability_caveat(struct text *t,
                                        const struct lab_case *c) {
  uint32_t slow = 0;
  for (uint32_t e = 0; e < c->n_cells; e++)
    slow +=
        c->cells[e].throughput.median > 0 && c->cells[e].throughput.median < 20;
  if (slow == 0)
    return;
  uint32_t said = 0;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    if (!(cell->throughput.median > 0 && cell->throughput.median < 20))
      continue;
    tprintf(t, "%s%s's availability (%.0f%%)", said++ ? " and " : "",
            title(cell), 100 * cell->availability.median);
  }
  tprintf(t,
          " %s low partly because at under 2 acknowledged operations "
          "per 100 ms many slices have no write even when nothing is "
          "wrong. ",
          slow == 1 ? "is" : "are");
}

/* ---- safety and liveness ------------------------------------------------- */

/* What the application checkers promise, for the sentence about async. */
static const char *app_invariant_text(const char *workload) {
  if (strcmp(workload, "ledger") == 0)
    return "money is never made or lost, and every transfer a client saw "
           "succeed moved money exactly once";
  if (strcmp(workload, "seats") == 0)
    return "a seat is never held twice, and every PNR a client received "
           "is still held";
  if (strcmp(workload, "locks") == 0)
    return "one holder per lock, fencing tokens only grow";
  if (strcmp(workload, "orders") == 0)
    return "valid transitions only, and every acknowledged change kept";
  return "the application's rules";
}

static void narrate_checks(struct text *t, const struct lab_case *c,
                           uint32_t n_seeds) {
  bool consensus_clean = true;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    if (!lab_engine_is_consensus(cell->engine))
      continue;
    if (cell->runs_fatal > 0 || cell->runs_not_run > 0) {
      consensus_clean = false;
      tprintf(t,
              "SAFETY: %s broke a check in %u of %u runs (%llu "
              "acknowledged writes lost, %llu safety violations, %llu "
              "linearizability failures, %llu invariant violations); "
              "see results.json for the first failure of each run. ",
              title(cell), cell->runs_fatal + cell->runs_not_run, n_seeds,
              (unsigned long long)cell->acked_lost_total,
              (unsigned long long)cell->safety_total,
              (unsigned long long)cell->linearizability_total,
              (unsigned long long)cell->invariant_total);
    }
    if (cell->liveness_total > 0)
      tprintf(t,
              "%s did not converge after everything healed in %llu of "
              "%u runs (the simulator's liveness check). ",
              title(cell), (unsigned long long)cell->liveness_total, n_seeds);
  }
  if (consensus_clean)
    tprintf(t, "No consensus engine lost an acknowledged write or broke a "
               "safety check in any seed. ");
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    if (lab_engine_is_consensus(cell->engine))
      continue;
    if (cell->acked_lost_total > 0)
      tprintf(t,
              "async LOST %llu acknowledged writes (%.0f per run at the "
              "median, in %u runs): its primary acknowledged them before "
              "any backup had them, and the node that took over never "
              "got them; a consensus engine acknowledges only what a "
              "majority holds. ",
              (unsigned long long)cell->acked_lost_total,
              cell->acked_lost.median, cell->acked_lost.n);
    else if (cell->invariant_total > 0)
      tprintf(t,
              "async broke the %s workload's invariants %llu times (%s) "
              "and rolled back %llu applied entries: operations its "
              "primary acknowledged before any backup had them were "
              "undone when a node that never got them took over. ",
              c->sc->workload.name, (unsigned long long)cell->invariant_total,
              app_invariant_text(c->sc->workload.name),
              (unsigned long long)cell->safety_total);
    else if (cell->linearizability_total + cell->safety_total > 0)
      tprintf(t,
              "async lost no acknowledged write but broke %llu checks "
              "(entries rolled back after they were applied, or reads "
              "that no single order explains). ",
              (unsigned long long)(cell->linearizability_total +
                                   cell->safety_total));
    else
      tprintf(t, "async lost no acknowledged write here: its weakness "
                 "shows only when a primary dies with writes it has not "
                 "copied yet. ");
  }
}

void lab_narrate(struct lab_case *c, uint32_t n_seeds) {
  struct text t = {.buf = c->narrative, .size = sizeof c->narrative};
  c->narrative[0] = '\0';
  narrate_steady(&t, c);
  narrate_marks(&t, c, n_seeds);
  narrate_collapse(&t, c);
  narrate_availability_caveat(&t, c);
  narrate_checks(&t, c, n_seeds);
  if (t.used > 0 && c->narrative[t.used - 1] == ' ')
    c->narrative[--t.used] = '\0';
}

/* ---- variants ------------------------------------------------------------ */

static const char *variant_name(const struct lab_case *c) {
  return c->variant >= 0 ? c->sc->variants[c->variant].name : c->id;
}

/* One engine across the variants: the figures that tell settings apart. */
static void narrate_engine_variants(struct text *t, const struct lab_case *cs,
                                    size_t n, uint32_t e) {
  tprintf(t, "%s: ", title(&cs[0].cells[e]));
  size_t best = 0;
  bool identical = true;
  for (size_t i = 0; i < n; i++) {
    const struct lab_cell *cell = &cs[i].cells[e];
    const struct lab_cell *first = &cs[0].cells[e];
    tprintf(t,
            "%s%s %.0f%% available, %.0f ops/s, %.0f leader change%s, "
            "%.0f election%s started",
            i ? "; " : "", variant_name(&cs[i]),
            100 * cell->availability.median, cell->throughput.median,
            cell->leader_changes.median,
            cell->leader_changes.median == 1 ? "" : "s",
            cell->elections_started.median,
            cell->elections_started.median == 1 ? "" : "s");
    if (cell->availability.median > cs[best].cells[e].availability.median)
      best = i;
    identical = identical && cell->runs[0].rv == 0 && first->runs[0].rv == 0 &&
                cell->runs[0].m.trace_hash == first->runs[0].m.trace_hash;
  }
  double spread = 0;
  for (size_t i = 0; i < n; i++) {
    double d = cs[best].cells[e].availability.median -
               cs[i].cells[e].availability.median;
    spread = d > spread ? d : spread;
  }
  if (identical)
    tprintf(t, " (the same runs, event for event: these settings do not "
               "change this engine)");
  else if (spread >= 0.05)
    tprintf(t, " (most available with %s, by up to %.0f points)",
            variant_name(&cs[best]), 100 * spread);
  else
    tprintf(t, " (availability differs by less than 5 points across the "
               "settings)");
  tprintf(t, ". ");
}

void lab_narrate_variants(const struct lab_case *cases, size_t n, char *buf,
                          size_t size) {
  struct text t = {.buf = buf, .size = size};
  buf[0] = '\0';
  if (n < 2)
    return;
  tprintf(&t, "Side by side (medians): ");
  for (uint32_t e = 0; e < cases[0].n_cells; e++)
    narrate_engine_variants(&t, cases, n, e);
  if (t.used > 0 && buf[t.used - 1] == ' ')
    buf[--t.used] = '\0';
}
