/* A token bucket: how sabhad bounds work that strangers can make it do,
 * such as the asymmetric crypto of a TLS handshake it serves for every
 * connection it accepts (docs/operations.md, tls-handshakes-per-second).
 *
 * It holds at most one second's worth of tokens, `per_second`, and gains
 * them back continuously at that rate: a burst of that many passes at once
 * (a restart's reconnect storm), then the pace is the rate. Time comes in
 * as an argument in milliseconds of a monotonic clock, so the bucket is a
 * pure function of its inputs and the unit tests drive it by hand. Tokens
 * are counted in thousandths so that a rate below one per millisecond
 * still refills between calls a millisecond apart. */
#ifndef SABHA_NET_RATE_H
#define SABHA_NET_RATE_H

#include <stdbool.h>
#include <stdint.h>

/* The largest rate a bucket takes; 0 means no limit. */
#define RATE_PER_SECOND_MAX 1000000u

struct rate_bucket {
  uint32_t per_second;   /* 0: every take succeeds */
  uint64_t tokens_milli; /* at most per_second * 1000 */
  uint64_t last_ms;      /* when tokens_milli was last brought up to date */
};

/* A full bucket at now_ms. per_second <= RATE_PER_SECOND_MAX. */
void rate_bucket_init(struct rate_bucket *b, uint32_t per_second,
                      uint64_t now_ms);
/* Takes one token at now_ms: true if there was one, false (nothing taken)
 * when the bucket is empty. A clock that went back (now_ms < the last
 * call's) refills nothing. */
bool rate_bucket_take(struct rate_bucket *b, uint64_t now_ms);

#endif
