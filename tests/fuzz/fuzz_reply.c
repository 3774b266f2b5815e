/* Fuzz target for the reply scanner of forwarding links (resp_reply_scan,
 * src/node/resp.c): what a follower runs on every byte the leader's client
 * port sends back (src/node/forward.c relays each reply it delimits byte
 * for byte to the client that asked).
 *
 * The input is the stream from the leader. The target delimits replies one
 * after another, as rt_fwd_input() does, and asserts the scanner's
 * contract: a complete reply lies inside the bytes, starts with a RESP type
 * byte, ends in CRLF and scans alone to the same length; every shorter
 * prefix of it is still incomplete (the scanner must never relay half a
 * reply); and an incomplete stream becomes complete or malformed only when
 * more bytes arrive, never by losing some. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "node/resp.h"

/* Replies checked in full per input (prefixes are quadratic in work). */
#define REPLIES_PREFIX_CHECKED 8u
/* resp.h's bound on one line: past it, a line still without its CRLF is
 * refused, so a prefix may be malformed where the whole is not. Inputs
 * longer than this skip the prefix checks. */
#define LINE_BYTES_MAX (64u << 10)

static bool is_type(uint8_t b) {
  return b == '+' || b == '-' || b == ':' || b == '$' || b == '*';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  for (unsigned n = 0;; n++) {
    size_t rest = size - off;
    size_t used = 0;
    int rc = resp_reply_scan(data + off, rest, &used);
    REQUIRE(rc >= -1 && rc <= 1);
    if (rc <= 0) {
      /* A stream cut short stays incomplete when cut shorter still: every
       * prefix of an incomplete one is incomplete (or already malformed,
       * which the whole would then be as well). */
      if (rc == 0 && rest > 0 && size <= LINE_BYTES_MAX) {
        size_t used_prefix = 0;
        REQUIRE(resp_reply_scan(data + off, rest - 1, &used_prefix) == 0);
      }
      break;
    }
    const uint8_t *r = data + off;
    REQUIRE(used >= 3 && used <= rest);
    REQUIRE(is_type(r[0]));
    REQUIRE(r[used - 2] == '\r' && r[used - 1] == '\n');
    size_t again = 0;
    REQUIRE(resp_reply_scan(r, used, &again) == 1 && again == used);
    if (n < REPLIES_PREFIX_CHECKED && size <= LINE_BYTES_MAX)
      for (size_t k = 0; k < used; k++) {
        size_t x = 0;
        REQUIRE(resp_reply_scan(r, k, &x) == 0);
      }
    off += used;
  }
  return 0;
}
