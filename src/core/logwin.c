/* A window of log lines; see logwin.h. */
#include "core/logwin.h"

bool log_window_take(struct log_window *w, uint64_t now_ms, uint32_t window_ms,
                     uint32_t max, uint64_t *ended_skipped) {
  *ended_skipped = 0;
  if (now_ms - w->from_ms >= window_ms) {
    *ended_skipped = w->skipped;
    w->from_ms = now_ms;
    w->lines = 0;
    w->skipped = 0;
  }
  if (w->lines >= max) {
    w->skipped++;
    return false;
  }
  w->lines++;
  return true;
}
