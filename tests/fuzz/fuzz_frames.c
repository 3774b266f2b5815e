/* Fuzz target for the peer stream's framing: what a node does with the
 * bytes that arrive on a peer connection before and after the handshake.
 *
 * The transport (src/net/transport.c, conn_process) cuts its receive
 * buffer into length-prefixed frames, bounds a frame by the connection's
 * state (a stranger a few hundred bytes, an authenticated peer the codec's
 * maximum), and hands each to the decoder of that state: REFUSE in any
 * state, HELLO, then AUTH when a secret is configured, then codec messages
 * of the cluster's kind. That loop is welded to libuv and the connection
 * struct; this target runs the same rules over the same pure decoders, so
 * that every decoder is fuzzed in the order and under the bounds a real
 * stream reaches it. (A HELLO is taken at face value here: identity checks
 * are hs_hello_check's, covered by the handshake target and the unit
 * tests.)
 *
 * Input layout: byte 0 bit 0 says a secret is configured (an AUTH frame
 * follows the HELLO), byte 1 is the size of each read, less one; the rest
 * is the stream.
 *
 * Oracles: reads of any size deliver the same frames, in the same order,
 * with the same outcome, as one read of the whole stream; the buffer never
 * holds more than a read beyond one frame's bound; a message that decodes
 * lies inside its frame and encodes back to it. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "fuzz.h"
#include "net/codec.h"
#include "net/handshake.h"
#include "sabha/error.h"

enum state { HELLO, AUTH, ESTABLISHED, CLOSED };

struct conn {
  enum state state;
  bool secret;
  uint8_t kind; /* the message kind the HELLO's engine names */
  struct codec_buf rb;
  uint64_t digest; /* of every event: frame kinds, sizes, outcomes */
  unsigned events;
};

static struct sabha_entry entries[CODEC_ENTRIES_MAX];

static void note(struct conn *c, uint64_t v) {
  c->digest = (c->digest ^ v) * 1099511628211ull;
  c->events++;
}

static void on_msg(struct conn *c, const uint8_t *frame, size_t n) {
  if (frame[5] != c->kind) {
    note(c, 0xbad0);
    c->state = CLOSED;
    return;
  }
  struct sabha_msg m;
  if (codec_decode(frame, n, &m, entries, CODEC_ENTRIES_MAX) != 0) {
    note(c, 0xbad1);
    c->state = CLOSED;
    return;
  }
  size_t again;
  REQUIRE(codec_frame_size(&m, &again) == 0 && again == n);
  uint8_t *out = malloc(n);
  REQUIRE(out != NULL);
  codec_write(&m, frame[5], out, n);
  REQUIRE(memcmp(out, frame, n) == 0);
  free(out);
  note(c, ((uint64_t)m.type << 32) ^ m.term ^ n);
}

/* A bundle: each frame in it as if alone, until one closes the
 * connection; a malformed bundle closes it too. Oracle: the frames lie
 * inside the bundle, back to back. */
static void on_bundle(struct conn *c, const uint8_t *frame, size_t n) {
  size_t at = 0, inner_bytes = 0;
  const uint8_t *inner = NULL;
  const uint8_t *next = frame + CODEC_HEADER_BYTES;
  int rc;
  while ((rc = codec_bundle_next(frame, n, &at, &inner, &inner_bytes)) == 1) {
    REQUIRE(inner == next && inner + inner_bytes <= frame + n);
    next = inner + inner_bytes;
    on_msg(c, inner, inner_bytes);
    if (c->state == CLOSED)
      return;
  }
  if (rc != 0) {
    note(c, 0xbad5);
    c->state = CLOSED;
    return;
  }
  REQUIRE(next == frame + n);
}

static void on_frame(struct conn *c, const uint8_t *frame, size_t n) {
  if (frame[5] == CODEC_KIND_REFUSE) {
    enum hs_refusal reason;
    int rc = hs_refuse_decode(frame, n, &reason);
    note(c, rc == HS_ACCEPTED ? 0x4ef0 + (uint64_t)reason : 0xbad2);
    c->state = CLOSED; /* refused, or a malformed REFUSE: closed either way */
    return;
  }
  switch (c->state) {
  case HELLO: {
    struct hs_hello h;
    int rc = hs_hello_decode(frame, n, &h);
    int kind = rc == HS_ACCEPTED ? codec_kind_of_engine(h.engine) : -1;
    if (kind <= 0) {
      note(c, 0xbad3);
      c->state = CLOSED;
      return;
    }
    REQUIRE(strlen(h.engine) >= 1 && strlen(h.cluster_id) >= 1);
    c->kind = (uint8_t)kind;
    c->state = c->secret ? AUTH : ESTABLISHED;
    note(c, 0x4e11 ^ h.node_id);
    return;
  }
  case AUTH: {
    uint8_t mac[HS_MAC_BYTES];
    if (hs_auth_decode(frame, n, mac) != HS_ACCEPTED) {
      note(c, 0xbad4);
      c->state = CLOSED;
      return;
    }
    c->state = ESTABLISHED;
    note(c, 0xa07 ^ mac[0]);
    return;
  }
  case ESTABLISHED:
    if (frame[5] == CODEC_KIND_BUNDLE)
      on_bundle(c, frame, n);
    else
      on_msg(c, frame, n);
    return;
  case CLOSED:
    break;
  }
  REQUIRE(false);
}

/* conn_process(): every complete frame in the buffer, then keep the rest. */
static void process(struct conn *c) {
  struct codec_buf *rb = &c->rb;
  size_t off = 0;
  while (c->state != CLOSED) {
    size_t avail = rb->size_bytes - off;
    if (avail < CODEC_HEADER_BYTES)
      break;
    const uint8_t *frame = rb->data + off;
    uint32_t payload_bytes = le_get_u32(frame);
    uint32_t limit = c->state == ESTABLISHED
                         ? CODEC_PAYLOAD_BYTES_MAX
                         : HS_FRAME_BYTES_MAX - CODEC_LENGTH_BYTES;
    if (payload_bytes < 2 || payload_bytes > limit) {
      note(c, 0xbad5 ^ payload_bytes);
      c->state = CLOSED;
      break;
    }
    size_t frame_bytes = CODEC_LENGTH_BYTES + (size_t)payload_bytes;
    if (avail < frame_bytes)
      break;
    off += frame_bytes;
    on_frame(c, frame, frame_bytes);
  }
  if (c->state == CLOSED)
    return;
  memmove(rb->data, rb->data + off, rb->size_bytes - off);
  rb->size_bytes -= off;
}

static void feed(struct conn *c, const uint8_t *p, size_t n, size_t read_max) {
  for (size_t at = 0; at < n && c->state != CLOSED;) {
    size_t k = n - at < read_max ? n - at : read_max;
    REQUIRE(codec_buf_reserve(&c->rb, k) == 0);
    memcpy(c->rb.data + c->rb.size_bytes, p + at, k);
    c->rb.size_bytes += k;
    at += k;
    process(c);
    REQUIRE(c->state == CLOSED ||
            c->rb.size_bytes < CODEC_LENGTH_BYTES + CODEC_PAYLOAD_BYTES_MAX);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  bool secret = data[0] & 1;
  size_t read_max = (size_t)data[1] + 1;
  struct conn whole = {.state = HELLO, .secret = secret};
  struct conn parts = {.state = HELLO, .secret = secret};
  codec_buf_init(&whole.rb);
  codec_buf_init(&parts.rb);
  feed(&whole, data + 2, size - 2, size);
  feed(&parts, data + 2, size - 2, read_max);
  REQUIRE(whole.events == parts.events && whole.digest == parts.digest);
  REQUIRE(whole.state == parts.state);
  codec_buf_free(&whole.rb);
  codec_buf_free(&parts.rb);
  return 0;
}
