/* Inline SVG charts for report.html: no scripts, no fonts to fetch, no
 * network; a browser (or a printer) draws them from the page alone.
 *
 *   timeline   throughput or latency per 100 ms bucket, one line per
 *              engine, fault windows shaded, timeline events as dashed
 *              lines, each engine's leader changes as ticks under the axis;
 *   cdf        the latency distribution of every acknowledged operation
 *              (all seeds pooled), log-scaled, one curve per engine. */
#ifndef SABHA_LAB_SVG_H
#define SABHA_LAB_SVG_H

#include <stdio.h>

#include "lab/lab.h"

enum lab_timeline_kind { LAB_CHART_THROUGHPUT, LAB_CHART_LATENCY };

void lab_svg_timeline(FILE *f, const struct lab_case *c,
                      enum lab_timeline_kind kind);
void lab_svg_cdf(FILE *f, const struct lab_case *c, uint32_t n_seeds);

/* The time window (seconds from 0) the timelines of a case share. */
double lab_svg_window_s(const struct lab_case *c);

/* The colour an engine is drawn in, everywhere in the report. */
const char *lab_engine_color(const char *engine);

/* Writes `s` with &, <, >, " escaped. */
void lab_html_escape(FILE *f, const char *s);

#endif
