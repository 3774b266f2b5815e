/* A token bucket (rate.h). */
#include "net/rate.h"

#include <assert.h>
#include <stddef.h>

void rate_bucket_init(struct rate_bucket *b, uint32_t per_second,
                      uint64_t now_ms) {
  assert(b != NULL && per_second <= RATE_PER_SECOND_MAX);
  b->per_second = per_second;
  b->tokens_milli = (uint64_t)per_second * 1000u;
  b->last_ms = now_ms;
}

bool rate_bucket_take(struct rate_bucket *b, uint64_t now_ms) {
  assert(b->per_second <= RATE_PER_SECOND_MAX);
  if (b->per_second == 0)
    return true;
  uint64_t full_milli = (uint64_t)b->per_second * 1000u;
  assert(b->tokens_milli <= full_milli);
  if (now_ms > b->last_ms) {
    /* A second refills it whole; capping the gap first keeps the product
     * small whatever time passed. */
    uint64_t gap_ms = now_ms - b->last_ms;
    if (gap_ms > 1000u)
      gap_ms = 1000u;
    b->tokens_milli += gap_ms * b->per_second;
    if (b->tokens_milli > full_milli)
      b->tokens_milli = full_milli;
    b->last_ms = now_ms;
  }
  if (b->tokens_milli < 1000u)
    return false;
  b->tokens_milli -= 1000u;
  return true;
}
