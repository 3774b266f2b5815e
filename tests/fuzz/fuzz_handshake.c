/* Fuzz target for the handshake decoders (src/net/handshake.c): the first
 * bytes any stranger who connects to a peer port gets to send us.
 *
 * The input is one candidate frame, tried as a HELLO, an AUTH and a REFUSE.
 * Besides the sanitizers' checks, a HELLO the decoder accepts must encode
 * back to exactly the input, and the decoders may only answer with the
 * reasons they document. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct hs_hello h;
  int rc = hs_hello_decode(data, size, &h);
  if (rc == HS_ACCEPTED) {
    uint8_t again[HS_HELLO_FRAME_BYTES_MAX];
    if (strlen(h.cluster_id) < 1 || strlen(h.engine) < 1)
      abort();
    size_t n = hs_hello_encode(&h, again);
    if (n != size || memcmp(again, data, size) != 0)
      abort();
  } else if (rc != HS_REFUSED_MALFORMED && rc != HS_REFUSED_VERSION) {
    abort();
  }
  uint8_t mac[HS_MAC_BYTES];
  rc = hs_auth_decode(data, size, mac);
  if (rc != HS_ACCEPTED && rc != HS_REFUSED_MALFORMED)
    abort();
  enum hs_refusal reason;
  rc = hs_refuse_decode(data, size, &reason);
  if (rc == HS_ACCEPTED) {
    if (reason <= HS_ACCEPTED || reason >= HS_REFUSAL_COUNT)
      abort();
  } else if (rc != HS_REFUSED_MALFORMED) {
    abort();
  }
  return 0;
}
