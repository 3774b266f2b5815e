/* The wire codec (see codec.h for the format and docs/wire.md for the
 * specification).
 *
 * Encoding computes the frame size first, grows the output once and writes
 * straight through; it never allocates per entry. Decoding walks the buffer
 * with a cursor whose every read is checked against the bytes left and which
 * stays failed once a read falls short, so that no input, however hostile,
 * makes it read outside the buffer; each length is also checked against its
 * limit before anything is sized from it. */
#include "net/codec.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"

/* Offsets inside a message body (after the version and kind bytes). */
enum {
  OFF_TYPE = 0,
  OFF_FROM = 4,
  OFF_TO = 8,
  OFF_REJECT = 12,
  OFF_TERM = 16,
  OFF_INDEX = 24,
  OFF_LOG_TERM = 32,
  OFF_COMMIT = 40,
  OFF_HINT_INDEX = 48,
  OFF_HINT_TERM = 56,
  OFF_CONTEXT = 64,
  OFF_SNAP_INDEX = 72,
  OFF_SNAP_TERM = 80,
  OFF_SNAP_OFFSET = 88,
  OFF_SNAP_TOTAL = 96,
  OFF_N_ENTRIES = 104,
  OFF_SNAP_SIZE = 108,
  OFF_END = 112,
};

_Static_assert(OFF_END == CODEC_MSG_FIXED_BYTES, "fixed block size");
_Static_assert((uint64_t)CODEC_ENTRIES_MAX *(CODEC_ENTRY_HEADER_BYTES +
                                             CODEC_ENTRY_BYTES_MAX) <
                   UINT64_MAX / 2,
               "frame sizes are summed in uint64_t without overflow");

int codec_kind_of_engine(const char *engine_name) {
  assert(engine_name != NULL);
  if (strcmp(engine_name, "raft") == 0)
    return CODEC_KIND_RAFT;
  if (strcmp(engine_name, "multipaxos") == 0)
    return CODEC_KIND_MULTIPAXOS;
  if (strcmp(engine_name, "paxos") == 0)
    return CODEC_KIND_PAXOS;
  if (strcmp(engine_name, "async") == 0)
    return CODEC_KIND_ASYNC;
  return SABHA_EPROTO;
}

int codec_kind_is_msg(uint32_t kind) {
  return kind == CODEC_KIND_RAFT || kind == CODEC_KIND_MULTIPAXOS ||
         kind == CODEC_KIND_PAXOS || kind == CODEC_KIND_ASYNC;
}

int codec_bundle_next(const uint8_t *buf, size_t len, size_t *at,
                      const uint8_t **frame, size_t *frame_bytes) {
  assert(buf != NULL && at != NULL && frame != NULL && frame_bytes != NULL);
  if (len < CODEC_HEADER_BYTES || buf[5] != CODEC_KIND_BUNDLE ||
      buf[4] != CODEC_VERSION ||
      le_get_u32(buf) != (uint64_t)len - CODEC_LENGTH_BYTES)
    return SABHA_ECORRUPT;
  if (*at == 0) {
    if (len == CODEC_HEADER_BYTES)
      return SABHA_ECORRUPT; /* a bundle of nothing is no sender's */
    *at = CODEC_HEADER_BYTES;
  }
  assert(*at >= CODEC_HEADER_BYTES && *at <= len);
  size_t rest = len - *at;
  if (rest == 0)
    return 0;
  const uint8_t *p = buf + *at;
  if (rest < CODEC_HEADER_BYTES)
    return SABHA_ECORRUPT;
  uint32_t payload_bytes = le_get_u32(p);
  if (payload_bytes < 2 || payload_bytes > rest - CODEC_LENGTH_BYTES ||
      p[5] == CODEC_KIND_BUNDLE)
    return SABHA_ECORRUPT;
  *frame = p;
  *frame_bytes = CODEC_LENGTH_BYTES + (size_t)payload_bytes;
  *at += *frame_bytes;
  return 1;
}

int codec_peek(const uint8_t *buf, size_t len, struct codec_header *h) {
  assert(buf != NULL && h != NULL);
  assert(len >= CODEC_HEADER_BYTES);
  h->payload_bytes = le_get_u32(buf);
  h->version = buf[4];
  h->kind = buf[5];
  if (h->payload_bytes < 2 || h->payload_bytes > CODEC_PAYLOAD_BYTES_MAX)
    return SABHA_ECORRUPT;
  if (h->version != CODEC_VERSION && h->version != CODEC_VERSION_GROUP)
    return SABHA_ECORRUPT;
  return 0;
}

void codec_buf_init(struct codec_buf *b) {
  b->data = NULL;
  b->size_bytes = 0;
  b->cap_bytes = 0;
}

void codec_buf_free(struct codec_buf *b) {
  free(b->data);
  codec_buf_init(b);
}

static int buf_grow(struct codec_buf *b, size_t more_bytes, int exact) {
  assert(b->size_bytes <= b->cap_bytes);
  if (more_bytes > SIZE_MAX / 2 - b->size_bytes)
    return SABHA_ENOMEM;
  size_t need = b->size_bytes + more_bytes;
  if (need <= b->cap_bytes)
    return 0;
  size_t cap = need;
  if (!exact) {
    /* Starting at 4 KiB avoids a run of tiny reallocations for the first
     * heartbeats. */
    cap = b->cap_bytes > 0 ? b->cap_bytes : 4096;
    while (cap < need)
      cap *= 2;
  }
  uint8_t *grown = realloc(b->data, cap);
  if (grown == NULL)
    return SABHA_ENOMEM;
  b->data = grown;
  b->cap_bytes = cap;
  return 0;
}

int codec_buf_reserve(struct codec_buf *b, size_t more_bytes) {
  return buf_grow(b, more_bytes, 0);
}

int codec_buf_reserve_exact(struct codec_buf *b, size_t more_bytes) {
  return buf_grow(b, more_bytes, 1);
}

uint64_t codec_frame_bytes_wanted(const struct sabha_msg *m) {
  assert(m != NULL);
  uint64_t payload = 2 + (uint64_t)CODEC_MSG_FIXED_BYTES + m->snap_size_bytes +
                     (m->group > 0 ? CODEC_GROUP_BYTES : 0);
  for (uint32_t i = 0; i < m->n_entries && m->entries != NULL; i++)
    payload += CODEC_ENTRY_HEADER_BYTES + (uint64_t)m->entries[i].size_bytes;
  return CODEC_LENGTH_BYTES + payload;
}

int codec_frame_size(const struct sabha_msg *m, size_t *frame_bytes) {
  assert(m != NULL && frame_bytes != NULL);
  if (m->n_entries > 0 && m->entries == NULL)
    return SABHA_EINVAL;
  if (m->snap_size_bytes > 0 && m->snap_data == NULL)
    return SABHA_EINVAL;
  if (m->n_entries > CODEC_ENTRIES_MAX ||
      m->snap_size_bytes > CODEC_SNAP_CHUNK_BYTES_MAX)
    return SABHA_ETOOBIG;
  if (m->snap_offset > m->snap_total_bytes ||
      m->snap_size_bytes > m->snap_total_bytes - m->snap_offset)
    return SABHA_EINVAL;
  for (uint32_t i = 0; i < m->n_entries; i++) {
    const struct sabha_entry *e = &m->entries[i];
    if (e->type < SABHA_ENTRY_COMMAND || e->type > SABHA_ENTRY_CONFIG)
      return SABHA_EINVAL;
    if (e->size_bytes > 0 && e->data == NULL)
      return SABHA_EINVAL;
    if (e->size_bytes > CODEC_ENTRY_BYTES_MAX)
      return SABHA_ETOOBIG;
  }
  uint64_t frame = codec_frame_bytes_wanted(m);
  if (frame - CODEC_LENGTH_BYTES > CODEC_PAYLOAD_BYTES_MAX)
    return SABHA_ETOOBIG;
  *frame_bytes = (size_t)frame;
  return 0;
}

void codec_write(const struct sabha_msg *m, uint8_t kind, uint8_t *out,
                 size_t frame_bytes) {
  assert(codec_kind_is_msg(kind));
  assert(frame_bytes >= CODEC_MSG_FRAME_BYTES_MIN);
  le_put_u32(out, (uint32_t)(frame_bytes - CODEC_LENGTH_BYTES));
  out[4] = m->group > 0 ? CODEC_VERSION_GROUP : CODEC_VERSION;
  out[5] = kind;
  uint8_t *f = out + CODEC_HEADER_BYTES;
  if (m->group > 0) {
    le_put_u32(f, m->group);
    f += CODEC_GROUP_BYTES;
  }
  le_put_u32(f + OFF_TYPE, m->type);
  le_put_u32(f + OFF_FROM, m->from);
  le_put_u32(f + OFF_TO, m->to);
  le_put_u32(f + OFF_REJECT, m->reject);
  le_put_u64(f + OFF_TERM, m->term);
  le_put_u64(f + OFF_INDEX, m->index);
  le_put_u64(f + OFF_LOG_TERM, m->log_term);
  le_put_u64(f + OFF_COMMIT, m->commit);
  le_put_u64(f + OFF_HINT_INDEX, m->hint_index);
  le_put_u64(f + OFF_HINT_TERM, m->hint_term);
  le_put_u64(f + OFF_CONTEXT, m->context);
  le_put_u64(f + OFF_SNAP_INDEX, m->snap.index);
  le_put_u64(f + OFF_SNAP_TERM, m->snap.term);
  le_put_u64(f + OFF_SNAP_OFFSET, m->snap_offset);
  le_put_u64(f + OFF_SNAP_TOTAL, m->snap_total_bytes);
  le_put_u32(f + OFF_N_ENTRIES, m->n_entries);
  le_put_u32(f + OFF_SNAP_SIZE, m->snap_size_bytes);
  uint8_t *p = f + OFF_END;
  for (uint32_t i = 0; i < m->n_entries; i++) {
    const struct sabha_entry *e = &m->entries[i];
    le_put_u64(p, e->index);
    le_put_u64(p + 8, e->term);
    le_put_u32(p + 16, e->type);
    le_put_u32(p + 20, e->size_bytes);
    p += CODEC_ENTRY_HEADER_BYTES;
    if (e->size_bytes > 0)
      memcpy(p, e->data, e->size_bytes);
    p += e->size_bytes;
  }
  if (m->snap_size_bytes > 0)
    memcpy(p, m->snap_data, m->snap_size_bytes);
  p += m->snap_size_bytes;
  /* The size and the writer must agree to the byte, or a peer would read
   * our next frame's length from the middle of this one. */
  assert((size_t)(p - out) == frame_bytes);
}

int codec_encode(const struct sabha_msg *m, uint8_t kind, struct codec_buf *b) {
  assert(codec_kind_is_msg(kind));
  size_t frame_bytes;
  int rc = codec_frame_size(m, &frame_bytes);
  if (rc != 0)
    return rc;
  rc = codec_buf_reserve(b, frame_bytes);
  if (rc != 0)
    return rc;
  codec_write(m, kind, b->data + b->size_bytes, frame_bytes);
  b->size_bytes += frame_bytes;
  return 0;
}

/* A bounds-checked reader. Once a read falls short, `ok` stays false and
 * every later read returns zeros without touching memory, so the decoder
 * can check once at the points where a value is used to size something. */
struct cursor {
  const uint8_t *p;
  size_t left;
  int ok;
};

static const uint8_t *cursor_take(struct cursor *c, size_t n) {
  if (!c->ok || n > c->left) {
    c->ok = 0;
    return NULL;
  }
  const uint8_t *at = c->p;
  c->p += n;
  c->left -= n;
  return at;
}

static uint32_t cursor_u32(struct cursor *c) {
  const uint8_t *at = cursor_take(c, 4);
  return at != NULL ? le_get_u32(at) : 0;
}

static uint64_t cursor_u64(struct cursor *c) {
  const uint8_t *at = cursor_take(c, 8);
  return at != NULL ? le_get_u64(at) : 0;
}

static void decode_fixed(struct cursor *c, struct sabha_msg *out) {
  out->type = cursor_u32(c);
  out->from = cursor_u32(c);
  out->to = cursor_u32(c);
  out->reject = cursor_u32(c);
  out->term = cursor_u64(c);
  out->index = cursor_u64(c);
  out->log_term = cursor_u64(c);
  out->commit = cursor_u64(c);
  out->hint_index = cursor_u64(c);
  out->hint_term = cursor_u64(c);
  out->context = cursor_u64(c);
  out->snap.index = cursor_u64(c);
  out->snap.term = cursor_u64(c);
  out->snap_offset = cursor_u64(c);
  out->snap_total_bytes = cursor_u64(c);
  out->n_entries = cursor_u32(c);
  out->snap_size_bytes = cursor_u32(c);
}

static int decode_entry(struct cursor *c, struct sabha_entry *e) {
  e->index = cursor_u64(c);
  e->term = cursor_u64(c);
  e->type = cursor_u32(c);
  e->size_bytes = cursor_u32(c);
  if (!c->ok)
    return SABHA_ECORRUPT;
  if (e->type < SABHA_ENTRY_COMMAND || e->type > SABHA_ENTRY_CONFIG)
    return SABHA_ECORRUPT;
  if (e->size_bytes > CODEC_ENTRY_BYTES_MAX)
    return SABHA_ECORRUPT;
  e->data = NULL;
  if (e->size_bytes > 0) {
    e->data = cursor_take(c, e->size_bytes);
    if (e->data == NULL)
      return SABHA_ECORRUPT;
  }
  return 0;
}

int codec_decode(const uint8_t *buf, size_t len, struct sabha_msg *out,
                 struct sabha_entry *entries, uint32_t entries_max) {
  assert(buf != NULL || len == 0);
  assert(out != NULL);
  assert(entries != NULL || entries_max == 0);
  memset(out, 0, sizeof *out);
  if (len < CODEC_MSG_FRAME_BYTES_MIN)
    return SABHA_ECORRUPT;
  struct codec_header h;
  if (codec_peek(buf, len, &h) != 0)
    return SABHA_ECORRUPT;
  /* The length must describe exactly this buffer: a shorter one is a torn
   * frame, a longer one hides trailing bytes. */
  if ((uint64_t)h.payload_bytes + CODEC_LENGTH_BYTES != len)
    return SABHA_ECORRUPT;
  if (!codec_kind_is_msg(h.kind))
    return SABHA_ECORRUPT;

  struct cursor c = {buf + CODEC_HEADER_BYTES, len - CODEC_HEADER_BYTES, 1};
  if (h.version == CODEC_VERSION_GROUP) {
    /* Group 0 has one encoding only, version 1: canonical. */
    out->group = cursor_u32(&c);
    if (!c.ok || out->group == 0)
      return SABHA_ECORRUPT;
  }
  decode_fixed(&c, out);
  if (!c.ok)
    return SABHA_ECORRUPT;
  if (out->n_entries > CODEC_ENTRIES_MAX || out->n_entries > entries_max)
    return SABHA_ECORRUPT;
  /* Every entry has a header: refuse a count the bytes cannot hold before
   * walking it, so that a short frame with a large count costs nothing. */
  if ((uint64_t)out->n_entries * CODEC_ENTRY_HEADER_BYTES > c.left)
    return SABHA_ECORRUPT;
  if (out->snap_size_bytes > CODEC_SNAP_CHUNK_BYTES_MAX)
    return SABHA_ECORRUPT;
  if (out->snap_offset > out->snap_total_bytes ||
      out->snap_size_bytes > out->snap_total_bytes - out->snap_offset)
    return SABHA_ECORRUPT;

  for (uint32_t i = 0; i < out->n_entries; i++) {
    if (decode_entry(&c, &entries[i]) != 0)
      return SABHA_ECORRUPT;
  }
  out->entries = out->n_entries > 0 ? entries : NULL;
  out->snap_data = NULL;
  if (out->snap_size_bytes > 0) {
    out->snap_data = cursor_take(&c, out->snap_size_bytes);
    if (out->snap_data == NULL)
      return SABHA_ECORRUPT;
  }
  if (c.left != 0)
    return SABHA_ECORRUPT;
  return 0;
}

int codec_check_config(const struct sabha_config *cfg) {
  assert(cfg != NULL);
  /* The largest entry: one command, or (Multi-Paxos) several commands
   * sharing a slot, up to bytes_per_slot_max. */
  uint64_t entry = cfg->entry_size_bytes_max > cfg->bytes_per_slot_max
                       ? cfg->entry_size_bytes_max
                       : cfg->bytes_per_slot_max;
  if (cfg->entries_per_msg_max > CODEC_ENTRIES_MAX ||
      entry > CODEC_ENTRY_BYTES_MAX ||
      cfg->snapshot_chunk_bytes > CODEC_SNAP_CHUNK_BYTES_MAX)
    return SABHA_ETOOBIG;
  /* An append, an accept or a chunk of a promise holds at most
   * bytes_per_msg_max of data, except that a single entry is always sent
   * even when it alone is larger. */
  uint64_t data =
      cfg->bytes_per_msg_max > entry ? cfg->bytes_per_msg_max : entry;
  uint64_t entries = cfg->entries_per_msg_max > SABHA_PROMISE_ENTRIES_MIN
                         ? cfg->entries_per_msg_max
                         : SABHA_PROMISE_ENTRIES_MIN;
  uint64_t payload = 2 + (uint64_t)CODEC_MSG_FIXED_BYTES +
                     entries * CODEC_ENTRY_HEADER_BYTES + data;
  if (payload > CODEC_PAYLOAD_BYTES_MAX)
    return SABHA_ETOOBIG;
  return 0;
}
