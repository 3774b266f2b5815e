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

#endif
