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
#include <string.h>

#include "lab/lab.h"
#include "lab/report.h"

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

/* ---- steady state -------------------------------------------------------- */

static void narrate_steady(struct text *t, const struct lab_case *c) {
  bool before = c->marks.n > 0;
  tprintf(t, "%s", before ? "Before the first event, " : "Over the run, ");
  const struct lab_cell *raft = NULL, *paxos = NULL, *async = NULL;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    double rate = before && cell->baseline.n ? cell->baseline.median
                                             : cell->throughput.median;
    tprintf(t, "%s%s answered %.0f ops/s (p50 %.0f ms, p99 %.0f ms)",
            e == 0 ? "" : (e + 1 == c->n_cells ? " and " : ", "), title(cell),
            rate, cell->latency_p50.median, cell->latency_p99.median);
    raft = is(cell, "raft") ? cell : raft;
    paxos = is(cell, "paxos") ? cell : paxos;
    async = is(cell, "async") ? cell : async;
  }
  tprintf(t, ". ");
  const struct lab_cell *mp = NULL;
  for (uint32_t e = 0; e < c->n_cells; e++)
    mp = is(&c->cells[e], "multipaxos") ? &c->cells[e] : mp;
  if (raft && mp && raft->latency_p50.median > 0) {
    double d = mp->latency_p50.median / raft->latency_p50.median;
    if (d > 0.85 && d < 1.15)
      tprintf(t,
              "Raft and Multi-Paxos are within %.0f%% of each other at "
              "the median: with a stable leader both need one round trip "
              "to a majority per command. ",
              fabs(d - 1) * 100);
  }
  if (paxos && raft &&
      paxos->latency_p50.median > 1.5 * raft->latency_p50.median)
    tprintf(t,
            "Classic Paxos's median is %.1fx Raft's: every command runs "
            "both phases (prepare, then accept), two round trips, and "
            "proposers that collide must retry. ",
            paxos->latency_p50.median / raft->latency_p50.median);
  if (async && raft &&
      async->latency_p50.median < 0.8 * raft->latency_p50.median)
    tprintf(t, "async is fastest at the median because its primary "
               "acknowledges a write before any backup has it. ");
}

/* ---- each event ---------------------------------------------------------- */

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
    if (r->max < 0.05)
      tprintf(t, "kept its pace");
    else
      tprintf(t, "was back to half its earlier rate after %.1f s", r->median);
    if (r->n < n_seeds)
      tprintf(t, " (in %u of %u runs)", r->n, n_seeds);
    if (lc->median >= 1 && !is(cell, "paxos"))
      tprintf(t, " with %.0f new leader%s (%s)", lc->median,
              lc->median >= 2 ? "s" : "", election_word(cell));
    else if (r->max >= 0.05 && lc->median < 1 && !is(cell, "paxos"))
      tprintf(t, " without a leader change");
  }
  for (uint32_t e = 0; e < c->n_cells; e++)
    if (c->cells[e].recovery[k].n == 0)
      tprintf(t,
              "%s%s never got back to half its earlier rate before the "
              "next event",
              n > 0 || e > 0 ? "; " : "", title(&c->cells[e]));
  tprintf(t, ". ");
}

/* Writes during the window after mark k: who kept committing, who did not. */
static void narrate_window(struct text *t, const struct lab_case *c,
                           uint32_t k) {
  const struct lab_window_span {
    double from, to;
  } span = {c->marks.at_us[k] / 1e6,
            k + 1 < c->marks.n ? c->marks.at_us[k + 1] / 1e6 : -1};
  char when[64];
  if (span.to >= 0)
    snprintf(when, sizeof when, "Between %.1f and %.1f s", span.from, span.to);
  else
    snprintf(when, sizeof when, "From %.1f s to the end", span.from);
  tprintf(t, "%s ", when);
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
    said++;
  }
  if (none > 0) {
    tprintf(t, "%s", said ? "; " : "");
    uint32_t k2 = 0;
    for (uint32_t e = 0; e < c->n_cells; e++)
      if (c->cells[e].window_writes[k + 1].max == 0)
        tprintf(t, "%s%s", k2++ ? (k2 == none ? " and " : ", ") : "",
                title(&c->cells[e]));
    tprintf(t, " acknowledged no write at all (no majority could be "
               "reached, so no command could be chosen)");
  }
  tprintf(t, ". ");
}

/* Why the first two differ, when they differ by more than the noise. */
static void narrate_faster(struct text *t, const struct lab_case *c,
                           uint32_t k) {
  const struct lab_cell *raft = NULL, *mp = NULL;
  for (uint32_t e = 0; e < c->n_cells; e++) {
    raft = is(&c->cells[e], "raft") ? &c->cells[e] : raft;
    mp = is(&c->cells[e], "multipaxos") ? &c->cells[e] : mp;
  }
  if (raft == NULL || mp == NULL)
    return;
  const struct lab_stat *a = &raft->recovery[k], *b = &mp->recovery[k];
  if (a->n == 0 || b->n == 0 || (a->median < 0.05 && b->median < 0.05))
    return;
  if (ranges_overlap(a, b) || fabs(a->median - b->median) < 0.1) {
    tprintf(t,
            "Raft and Multi-Paxos recovered in overlapping ranges "
            "(%.1f-%.1f s and %.1f-%.1f s): the same failure detector "
            "(election timeout and heartbeat) sets the pace, and the "
            "difference is within seed-to-seed noise. ",
            a->min, a->max, b->min, b->max);
    return;
  }
  const struct lab_cell *fast = a->median < b->median ? raft : mp;
  const struct lab_cell *slow = fast == raft ? mp : raft;
  tprintf(t, "%s recovered faster in every seed (%.1f s against %.1f s). ",
          title(fast), (fast == raft ? a : b)->median,
          (fast == raft ? b : a)->median);
  if (fast == raft)
    tprintf(t,
            "Both detect the loss with the same timeouts; a new Raft "
            "leader only needs the votes of nodes whose logs are no "
            "newer than its own, while a new %s leader first runs phase 1 "
            "and re-proposes every slot it learns was accepted but not "
            "chosen. ",
            title(slow));
  else
    tprintf(t,
            "Both detect the loss with the same timeouts; any %s node "
            "may take over with a higher ballot (phase 1 brings it the "
            "accepted values it lacks), while Raft can only elect a "
            "candidate whose log is at least as up to date as a "
            "majority's, which can take more than one election. ",
            title(fast));
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
      narrate_window(t, c, k);
    narrate_faster(t, c, k);
  }
}

/* Classic Paxos under contention: when most operations fail and phase-1
 * rounds outnumber acknowledged operations, say so, with the numbers. */
static void narrate_collapse(struct text *t, const struct lab_case *c) {
  for (uint32_t e = 0; e < c->n_cells; e++) {
    const struct lab_cell *cell = &c->cells[e];
    if (!is(cell, "paxos") || cell->success.median >= 0.5)
      continue;
    const struct lab_run *run = &cell->runs[0];
    tprintf(t,
            "Classic Paxos collapsed here: only %.0f%% of operations "
            "were acknowledged, with %.0f phase-1 rounds started (seed "
            "%llu: %llu rounds for %llu acknowledged operations). One "
            "instance at a time per node and two round trips each put "
            "its latency above the clients' 200-500 ms retry timeout; "
            "each retry went to another node, whose proposer then "
            "pre-empted the first: dueling proposers (Paxos Made Simple "
            "section 2.4), which a distinguished leader (Multi-Paxos, "
            "Raft) avoids. ",
            100 * cell->success.median, cell->elections_started.median,
            (unsigned long long)run->seed,
            (unsigned long long)run->m.elections_started,
            (unsigned long long)run->m.ops_ok);
  }
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
  for (size_t i = 0; i < n; i++) {
    const struct lab_cell *cell = &cs[i].cells[e];
    tprintf(t,
            "%s%s %.0f%% available, %.0f ops/s, %.0f leader change%s, "
            "%.0f elections started",
            i ? "; " : "", variant_name(&cs[i]),
            100 * cell->availability.median, cell->throughput.median,
            cell->leader_changes.median,
            cell->leader_changes.median == 1 ? "" : "s",
            cell->elections_started.median);
    if (cell->availability.median > cs[best].cells[e].availability.median)
      best = i;
  }
  double spread = 0;
  for (size_t i = 0; i < n; i++) {
    double d = cs[best].cells[e].availability.median -
               cs[i].cells[e].availability.median;
    spread = d > spread ? d : spread;
  }
  if (spread >= 0.05)
    tprintf(t, " (most available with %s, by up to %.0f points)",
            variant_name(&cs[best]), 100 * spread);
  else
    tprintf(t, " (the settings made no difference to availability)");
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
