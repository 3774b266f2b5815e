/* A window of log lines: how sabha keeps lines that others can cause
 * again and again (a client closed for a limit, a stranger refused at the
 * peer port) from filling a node's log at the rate they cause them. At
 * most `max` lines pass in each window of `window_ms`; the rest are
 * counted, and the first line of a later window is preceded by a line that
 * says how many were left out. Time comes in as an argument, so the window
 * is a pure function of its inputs. */
#ifndef SABHA_CORE_LOGWIN_H
#define SABHA_CORE_LOGWIN_H

#include <stdbool.h>
#include <stdint.h>

struct log_window {
  uint64_t from_ms; /* the window's start */
  uint32_t lines;   /* written in it */
  uint64_t skipped; /* left out of it */
};

/* Whether a line may be written at now_ms. *ended_skipped gets the lines
 * left out of the window that this call ended (the caller says so first),
 * 0 when none were. A zeroed struct is a window that started at 0. */
bool log_window_take(struct log_window *w, uint64_t now_ms, uint32_t window_ms,
                     uint32_t max, uint64_t *ended_skipped);

#endif
