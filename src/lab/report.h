/* Helpers the lab's writers share (report_text.c, report_html.c,
 * report_data.c, narrative.c): small pieces of text about a case or a
 * cell, so the terminal, the HTML and the JSON say the same thing. */
#ifndef SABHA_LAB_REPORT_H
#define SABHA_LAB_REPORT_H

#include <stddef.h>

#include "lab/lab.h"

/* "5 nodes in 5 regions, kv workload, 10 clients for 10 s, election
 * timeout 150-300 ms, heartbeat 50 ms, batch 64, PreVote on, CheckQuorum
 * on". */
void lab_case_setup_text(const struct lab_case *c, char *buf, size_t size);

/* "ok", "lost 12 acked (no consensus)", "SAFETY BROKEN (1 runs)", ... */
const char *lab_cell_verdict(const struct lab_cell *cell, char *buf,
                             size_t size);

/* The engine's settings as run (the lab's defaults where the scenario left
 * them). */
void lab_settings_effective(const struct lab_settings *st, uint32_t *et_min_ms,
                            uint32_t *et_max_ms, uint32_t *heartbeat_ms,
                            bool *pre_vote, bool *check_quorum);

/* One group of a case with several, for one engine, over the runs. */
struct lab_group_row {
  uint32_t prefers; /* node id it prefers as leader; 0: sabhad's rule */
  uint32_t led_by;  /* node id that led it at the end of most runs; 0 */
  uint32_t at_home; /* runs that ended with `prefers` leading it */
  uint32_t runs;    /* runs counted */
  uint32_t keys;    /* the workload's keys in it */
  double changes;   /* leader changes, median */
  double p50_ms;    /* median latency, median over the runs; < 0: none */
};

/* The number of groups the case ran (1 for one). */
uint32_t lab_case_groups(const struct lab_case *c);
void lab_group_row(const struct lab_case *c, const struct lab_cell *cell,
                   uint32_t g, uint32_t n_seeds, struct lab_group_row *row);

#endif
