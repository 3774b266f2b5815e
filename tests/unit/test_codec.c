/* Unit tests for the wire codec (src/net/codec.c).
 *
 * Randomized messages of every shape (no entries, many, empty and large
 * entries, snapshot chunks, extreme field values) survive a round trip
 * unchanged; the encoding is canonical (decode then encode gives back the
 * same bytes); every truncation and every extension of a valid frame is
 * refused; each limit is enforced on both sides at its exact boundary; and
 * random damage never makes the decoder misbehave (run under ASan and UBSan
 * by `make test`, which would catch a read out of bounds). Seeds are fixed,
 * so a failure reproduces. Run with a test name as the argument to run only
 * that test. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/endian.h"
#include "core/prng.h"
#include "net/codec.h"
#include "sabha/error.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- random messages ---------------------------------------------------- */

#define POOL_BYTES (1u << 20)
#define GEN_ENTRIES_MAX 300u

/* Random bytes that generated entries and snapshot chunks point into. */
static uint8_t pool[POOL_BYTES];

static void pool_fill(uint64_t seed) {
  struct prng p;
  prng_seed(&p, seed);
  for (size_t i = 0; i < POOL_BYTES; i++)
    pool[i] = (uint8_t)prng_next(&p);
}

/* Mostly small values, with the boundaries a codec gets wrong. */
static uint64_t gen_u64(struct prng *p) {
  static const uint64_t edges[] = {
      0,          1,         UINT32_MAX,
      1ull << 32, INT64_MAX, UINT64_MAX - 1,
      UINT64_MAX, 0x80u,     0xff00ff00ff00ff00ull};
  switch (prng_below(p, 4)) {
  case 0:
    return edges[prng_below(p, N(edges))];
  case 1:
    return prng_next(p);
  default:
    return prng_below(p, 1000);
  }
}

static uint32_t gen_u32(struct prng *p) {
  return (uint32_t)gen_u64(p);
}

static uint32_t gen_size(struct prng *p) {
  uint64_t r = prng_below(p, 10);
  if (r < 3)
    return 0;
  if (r < 9)
    return (uint32_t)prng_range(p, 1, 100);
  return (uint32_t)prng_range(p, 101, 64u << 10);
}

static const uint8_t *gen_data(struct prng *p, uint32_t size) {
  if (size == 0)
    return NULL;
  return pool + prng_below(p, POOL_BYTES - size + 1);
}

static void gen_msg(struct prng *p, struct sabha_msg *m,
                    struct sabha_entry *entries) {
  memset(m, 0, sizeof *m);
  m->type = gen_u32(p);
  m->from = gen_u32(p);
  m->to = gen_u32(p);
  m->reject = gen_u32(p);
  m->term = gen_u64(p);
  m->index = gen_u64(p);
  m->log_term = gen_u64(p);
  m->commit = gen_u64(p);
  m->hint_index = gen_u64(p);
  m->hint_term = gen_u64(p);
  m->context = gen_u64(p);
  uint64_t r = prng_below(p, 10);
  m->n_entries = r < 5   ? 0
                 : r < 9 ? (uint32_t)prng_range(p, 1, 8)
                         : (uint32_t)prng_range(p, 9, GEN_ENTRIES_MAX);
  for (uint32_t i = 0; i < m->n_entries; i++) {
    struct sabha_entry *e = &entries[i];
    e->index = gen_u64(p);
    e->term = gen_u64(p);
    e->type = prng_chance(p, 0.8) ? SABHA_ENTRY_COMMAND : SABHA_ENTRY_NOOP;
    /* Keep the large ones rare when there are many, so a frame stays
     * under a few MiB. */
    e->size_bytes =
        m->n_entries > 8 ? (uint32_t)prng_below(p, 200) : gen_size(p);
    e->data = gen_data(p, e->size_bytes);
  }
  m->entries = m->n_entries > 0 ? entries : NULL;
  m->snap.index = gen_u64(p);
  m->snap.term = gen_u64(p);
  if (prng_chance(p, 0.3)) {
    m->snap_size_bytes = gen_size(p);
    m->snap_data = gen_data(p, m->snap_size_bytes);
    uint64_t extra = gen_u64(p);
    if (extra > UINT64_MAX - m->snap_size_bytes)
      extra = UINT64_MAX - m->snap_size_bytes;
    m->snap_total_bytes = m->snap_size_bytes + extra;
    m->snap_offset = prng_range(p, 0, m->snap_total_bytes - m->snap_size_bytes);
  }
}

static bool bytes_equal(const uint8_t *a, const uint8_t *b, size_t n) {
  return n == 0 || (a != NULL && b != NULL && memcmp(a, b, n) == 0);
}

static bool msg_equal(const struct sabha_msg *a, const struct sabha_msg *b) {
  if (a->type != b->type || a->from != b->from || a->to != b->to ||
      a->reject != b->reject || a->term != b->term || a->index != b->index ||
      a->log_term != b->log_term || a->commit != b->commit ||
      a->hint_index != b->hint_index || a->hint_term != b->hint_term ||
      a->context != b->context || a->n_entries != b->n_entries ||
      a->snap.index != b->snap.index || a->snap.term != b->snap.term ||
      a->snap_offset != b->snap_offset ||
      a->snap_total_bytes != b->snap_total_bytes ||
      a->snap_size_bytes != b->snap_size_bytes)
    return false;
  for (uint32_t i = 0; i < a->n_entries; i++) {
    const struct sabha_entry *x = &a->entries[i], *y = &b->entries[i];
    if (x->index != y->index || x->term != y->term || x->type != y->type ||
        x->size_bytes != y->size_bytes ||
        !bytes_equal(x->data, y->data, x->size_bytes))
      return false;
  }
  return bytes_equal(a->snap_data, b->snap_data, a->snap_size_bytes);
}

/* Encodes m as one frame of a fresh buffer; the caller frees it. */
static struct codec_buf encode_one(const struct sabha_msg *m, uint8_t kind) {
  struct codec_buf b;
  codec_buf_init(&b);
  int rc = codec_encode(m, kind, &b);
  if (rc != 0)
    codec_buf_free(&b);
  return b;
}

static struct sabha_entry decoded_entries[CODEC_ENTRIES_MAX];

/* ---- tests -------------------------------------------------------------- */

static void codec_round_trip_keeps_every_field_of_random_messages(void) {
  pool_fill(1);
  struct prng p;
  prng_seed(&p, 42);
  static struct sabha_entry entries[GEN_ENTRIES_MAX];
  for (int iter = 0; iter < 3000; iter++) {
    struct sabha_msg m;
    gen_msg(&p, &m, entries);
    uint8_t kind = (uint8_t)prng_range(&p, CODEC_KIND_RAFT, CODEC_KIND_PAXOS);
    size_t frame_bytes = 0;
    CHECK(codec_frame_size(&m, &frame_bytes) == 0);
    struct codec_buf b = encode_one(&m, kind);
    CHECK(b.size_bytes == frame_bytes);
    struct codec_header h;
    CHECK(codec_peek(b.data, b.size_bytes, &h) == 0);
    CHECK(h.kind == kind && h.version == CODEC_VERSION);
    CHECK(h.payload_bytes + CODEC_LENGTH_BYTES == frame_bytes);
    struct sabha_msg out;
    CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                       CODEC_ENTRIES_MAX) == 0);
    CHECK(msg_equal(&m, &out));
    /* Zero-copy: data points into the frame, never elsewhere. */
    for (uint32_t i = 0; i < out.n_entries; i++) {
      const uint8_t *d = out.entries[i].data;
      CHECK(d == NULL ? out.entries[i].size_bytes == 0
                      : d >= b.data && d < b.data + b.size_bytes);
    }
    /* Canonical: encoding what was decoded gives the same bytes. */
    struct codec_buf again = encode_one(&out, kind);
    CHECK(again.size_bytes == b.size_bytes &&
          memcmp(again.data, b.data, b.size_bytes) == 0);
    codec_buf_free(&again);
    codec_buf_free(&b);
  }
}

static void codec_frames_appended_to_one_buffer_split_back_apart(void) {
  /* A sender batches frames into one buffer; a reader walks them with
   * codec_peek, as the transport does. */
  pool_fill(2);
  struct prng p;
  prng_seed(&p, 7);
  static struct sabha_entry entries[50][GEN_ENTRIES_MAX];
  struct sabha_msg msgs[50];
  struct codec_buf b;
  codec_buf_init(&b);
  for (size_t i = 0; i < N(msgs); i++) {
    gen_msg(&p, &msgs[i], entries[i]);
    CHECK(codec_encode(&msgs[i], CODEC_KIND_MULTIPAXOS, &b) == 0);
  }
  size_t off = 0;
  for (size_t i = 0; i < N(msgs); i++) {
    struct codec_header h;
    CHECK(b.size_bytes - off >= CODEC_HEADER_BYTES);
    CHECK(codec_peek(b.data + off, b.size_bytes - off, &h) == 0);
    size_t n = CODEC_LENGTH_BYTES + h.payload_bytes;
    struct sabha_msg out;
    CHECK(codec_decode(b.data + off, n, &out, decoded_entries,
                       CODEC_ENTRIES_MAX) == 0);
    CHECK(msg_equal(&msgs[i], &out));
    off += n;
  }
  CHECK(off == b.size_bytes);
  codec_buf_free(&b);
}

static void codec_every_truncation_of_a_valid_frame_is_refused(void) {
  pool_fill(3);
  struct prng p;
  prng_seed(&p, 3);
  static struct sabha_entry entries[GEN_ENTRIES_MAX];
  struct sabha_msg out;
  for (int iter = 0; iter < 40; iter++) {
    struct sabha_msg m;
    gen_msg(&p, &m, entries);
    if (iter < 10) {
      /* Small frames, so that every cut is tried across every field. */
      m.n_entries = (uint32_t)(iter % 3);
      for (uint32_t i = 0; i < m.n_entries; i++) {
        entries[i].size_bytes = (uint32_t)i * 5;
        entries[i].data = entries[i].size_bytes ? pool : NULL;
      }
      m.entries = m.n_entries ? entries : NULL;
    }
    struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
    CHECK(b.data != NULL);
    /* Every cut of a small frame; of a large one, every cut near either
     * end (headers and the last entry's data) and a sample between, to keep
     * the test linear. Each cut goes into a buffer of its own size, so that
     * ASan sees any read past it. */
    for (size_t len = 0; len < b.size_bytes; len++) {
      if (b.size_bytes > 4096 && len > 1024 && len + 1024 < b.size_bytes &&
          !prng_chance(&p, 0.002))
        continue;
      uint8_t *cut = malloc(len > 0 ? len : 1);
      CHECK(cut != NULL);
      memcpy(cut, b.data, len);
      CHECK(codec_decode(cut, len, &out, decoded_entries, CODEC_ENTRIES_MAX) ==
            SABHA_ECORRUPT);
      /* Also with a length field that agrees with the cut, so that the
       * refusal comes from the fields, not only the length check. */
      if (len >= CODEC_LENGTH_BYTES) {
        le_put_u32(cut, (uint32_t)(len - CODEC_LENGTH_BYTES));
        CHECK(codec_decode(cut, len, &out, decoded_entries,
                           CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
      }
      free(cut);
    }
    codec_buf_free(&b);
  }
}

static void codec_trailing_bytes_are_refused(void) {
  pool_fill(4);
  struct prng p;
  prng_seed(&p, 4);
  static struct sabha_entry entries[GEN_ENTRIES_MAX];
  struct sabha_msg m, out;
  for (int iter = 0; iter < 50; iter++) {
    gen_msg(&p, &m, entries);
    struct codec_buf b = encode_one(&m, CODEC_KIND_PAXOS);
    size_t n = b.size_bytes;
    for (size_t extra = 1; extra <= 9; extra++) {
      CHECK(codec_buf_reserve(&b, extra) == 0);
      memset(b.data + n, 0, extra);
      /* The length field covers the extra bytes: the body is too long. */
      le_put_u32(b.data, (uint32_t)(n + extra - CODEC_LENGTH_BYTES));
      CHECK(codec_decode(b.data, n + extra, &out, decoded_entries,
                         CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
      /* The length field is right, but the buffer is longer. */
      le_put_u32(b.data, (uint32_t)(n - CODEC_LENGTH_BYTES));
      CHECK(codec_decode(b.data, n + extra, &out, decoded_entries,
                         CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
    }
    CHECK(codec_decode(b.data, n, &out, decoded_entries, CODEC_ENTRIES_MAX) ==
          0);
    codec_buf_free(&b);
  }
}

/* A frame with no entries and no snapshot whose fixed fields the tests
 * below then damage one at a time. */
static struct codec_buf plain_frame(void) {
  struct sabha_msg m;
  memset(&m, 0, sizeof m);
  m.type = 1;
  m.from = 2;
  m.to = 3;
  m.term = 9;
  return encode_one(&m, CODEC_KIND_RAFT);
}

/* Offsets of the fixed fields inside a frame (header included). */
#define AT_N_ENTRIES (CODEC_HEADER_BYTES + 104u)
#define AT_SNAP_SIZE (CODEC_HEADER_BYTES + 108u)
#define AT_SNAP_OFFSET (CODEC_HEADER_BYTES + 88u)
#define AT_SNAP_TOTAL (CODEC_HEADER_BYTES + 96u)

static void codec_wrong_version_or_kind_is_refused(void) {
  struct sabha_msg out;
  for (unsigned v = 0; v < 256; v++) {
    struct codec_buf b = plain_frame();
    b.data[4] = (uint8_t)v;
    int rc = codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                          CODEC_ENTRIES_MAX);
    CHECK(v == CODEC_VERSION ? rc == 0 : rc == SABHA_ECORRUPT);
    codec_buf_free(&b);
  }
  for (unsigned k = 0; k < 256; k++) {
    struct codec_buf b = plain_frame();
    b.data[5] = (uint8_t)k;
    int rc = codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                          CODEC_ENTRIES_MAX);
    CHECK(codec_kind_is_msg(k) ? rc == 0 : rc == SABHA_ECORRUPT);
    codec_buf_free(&b);
  }
}

static void codec_entry_counts_are_bounded_by_limit_and_caller(void) {
  uint8_t data[3] = {1, 2, 3};
  struct sabha_entry e[4];
  for (int i = 0; i < 4; i++)
    e[i] = (struct sabha_entry){.index = (uint64_t)i + 1,
                                .term = 1,
                                .type = SABHA_ENTRY_COMMAND,
                                .size_bytes = 3,
                                .data = data};
  struct sabha_msg m = {.type = 1, .n_entries = 4, .entries = e};
  struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
  struct sabha_msg out;
  struct sabha_entry small[4];
  CHECK(codec_decode(b.data, b.size_bytes, &out, small, 4) == 0);
  CHECK(codec_decode(b.data, b.size_bytes, &out, small, 3) == SABHA_ECORRUPT);
  /* A count far beyond what the bytes hold, and one beyond the limit. */
  le_put_u32(b.data + AT_N_ENTRIES, 5);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  le_put_u32(b.data + AT_N_ENTRIES, CODEC_ENTRIES_MAX + 1);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  le_put_u32(b.data + AT_N_ENTRIES, UINT32_MAX);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  codec_buf_free(&b);

  /* The encoder's side of the same limit. */
  static struct sabha_entry many[CODEC_ENTRIES_MAX + 1];
  for (uint32_t i = 0; i < N(many); i++)
    many[i] = (struct sabha_entry){.type = SABHA_ENTRY_NOOP};
  m = (struct sabha_msg){.n_entries = CODEC_ENTRIES_MAX, .entries = many};
  b = encode_one(&m, CODEC_KIND_RAFT);
  CHECK(b.data != NULL);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == 0);
  CHECK(out.n_entries == CODEC_ENTRIES_MAX);
  codec_buf_free(&b);
  m.n_entries = CODEC_ENTRIES_MAX + 1;
  size_t size;
  CHECK(codec_frame_size(&m, &size) == SABHA_ETOOBIG);
}

static void codec_sizes_beyond_the_bytes_left_are_refused(void) {
  uint8_t data[8] = {0};
  struct sabha_entry e = {.index = 1,
                          .term = 1,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = 8,
                          .data = data};
  struct sabha_msg m = {.n_entries = 1, .entries = &e};
  struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
  struct sabha_msg out;
  size_t at_size = CODEC_MSG_FRAME_BYTES_MIN + 20; /* the entry's size */
  uint32_t sizes[] = {9, 100, CODEC_ENTRY_BYTES_MAX, CODEC_ENTRY_BYTES_MAX + 1,
                      UINT32_MAX};
  for (size_t i = 0; i < N(sizes); i++) {
    le_put_u32(b.data + at_size, sizes[i]);
    CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                       CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  }
  le_put_u32(b.data + at_size, 7); /* shorter: one byte left over */
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  codec_buf_free(&b);

  b = plain_frame();
  uint32_t snap_sizes[] = {1, CODEC_SNAP_CHUNK_BYTES_MAX + 1, UINT32_MAX};
  for (size_t i = 0; i < N(snap_sizes); i++) {
    le_put_u32(b.data + AT_SNAP_SIZE, snap_sizes[i]);
    le_put_u64(b.data + AT_SNAP_TOTAL, UINT64_MAX);
    CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                       CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  }
  codec_buf_free(&b);
}

static void codec_snapshot_chunk_beyond_its_total_is_refused(void) {
  uint8_t data[16];
  memset(data, 0xab, sizeof data);
  struct sabha_msg m = {.snap_offset = 100,
                        .snap_total_bytes = 116,
                        .snap_size_bytes = 16,
                        .snap_data = data};
  struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
  CHECK(b.data != NULL); /* the chunk ends exactly at the total */
  struct sabha_msg out;
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == 0);
  CHECK(out.snap_data == b.data + b.size_bytes - 16);
  le_put_u64(b.data + AT_SNAP_TOTAL, 115);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  /* offset + size overflows 64 bits: must not wrap into "fits". */
  le_put_u64(b.data + AT_SNAP_TOTAL, UINT64_MAX);
  le_put_u64(b.data + AT_SNAP_OFFSET, UINT64_MAX - 8);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  le_put_u64(b.data + AT_SNAP_TOTAL, 10);
  le_put_u64(b.data + AT_SNAP_OFFSET, 11);
  CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                     CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  codec_buf_free(&b);

  size_t size;
  m.snap_total_bytes = 115;
  CHECK(codec_frame_size(&m, &size) == SABHA_EINVAL);
  m.snap_total_bytes = UINT64_MAX;
  m.snap_offset = UINT64_MAX - 8;
  CHECK(codec_frame_size(&m, &size) == SABHA_EINVAL);
}

static void codec_unknown_entry_type_is_refused(void) {
  uint8_t data[1] = {7};
  struct sabha_entry e = {
      .type = SABHA_ENTRY_NOOP, .size_bytes = 1, .data = data};
  struct sabha_msg m = {.n_entries = 1, .entries = &e};
  struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
  struct sabha_msg out;
  size_t at_type = CODEC_MSG_FRAME_BYTES_MIN + 16;
  uint32_t types[] = {0, SABHA_ENTRY_CONFIG + 1, 0x100, UINT32_MAX};
  for (size_t i = 0; i < N(types); i++) {
    le_put_u32(b.data + at_type, types[i]);
    CHECK(codec_decode(b.data, b.size_bytes, &out, decoded_entries,
                       CODEC_ENTRIES_MAX) == SABHA_ECORRUPT);
  }
  codec_buf_free(&b);
  e.type = SABHA_ENTRY_CONFIG + 1;
  size_t size;
  CHECK(codec_frame_size(&m, &size) == SABHA_EINVAL);
  e.type = SABHA_ENTRY_BATCH; /* Multi-Paxos slots carry batches */
  CHECK(codec_frame_size(&m, &size) == 0);
  e.type = SABHA_ENTRY_CONFIG; /* memberships travel in entries too */
  CHECK(codec_frame_size(&m, &size) == 0);
}

static void codec_frame_length_beyond_the_limit_is_refused(void) {
  uint8_t hdr[CODEC_HEADER_BYTES] = {
      0, 0, 0, 0, CODEC_VERSION, CODEC_KIND_RAFT};
  struct codec_header h;
  le_put_u32(hdr, CODEC_PAYLOAD_BYTES_MAX);
  CHECK(codec_peek(hdr, sizeof hdr, &h) == 0);
  le_put_u32(hdr, CODEC_PAYLOAD_BYTES_MAX + 1);
  CHECK(codec_peek(hdr, sizeof hdr, &h) == SABHA_ECORRUPT);
  CHECK(h.payload_bytes == CODEC_PAYLOAD_BYTES_MAX + 1);
  le_put_u32(hdr, UINT32_MAX);
  CHECK(codec_peek(hdr, sizeof hdr, &h) == SABHA_ECORRUPT);
  le_put_u32(hdr, 1);
  CHECK(codec_peek(hdr, sizeof hdr, &h) == SABHA_ECORRUPT);
  hdr[4] = CODEC_VERSION_GROUP + 1;
  le_put_u32(hdr, 100);
  CHECK(codec_peek(hdr, sizeof hdr, &h) == SABHA_ECORRUPT);
  CHECK(h.version == CODEC_VERSION_GROUP + 1);
}

/* One command entry, "abc" at index 7 of term 2. */
static struct sabha_entry abc_entry(void) {
  static const uint8_t abc[3] = {'a', 'b', 'c'};
  return (struct sabha_entry){.index = 7,
                              .term = 2,
                              .type = SABHA_ENTRY_COMMAND,
                              .size_bytes = 3,
                              .data = abc};
}

/* docs/wire.md, "Groups": group 0's frame is the version-1 frame of old,
 * another group's is version 2 with the group in front of the fixed block;
 * a version-2 frame that names group 0 is not canonical, and refused. */
static void codec_group_frames_carry_the_group(void) {
  struct sabha_entry e = abc_entry();
  struct sabha_msg m = {
      .type = 1, .from = 1, .to = 2, .term = 2, .n_entries = 1, .entries = &e};
  struct codec_buf b0, b5;
  codec_buf_init(&b0);
  codec_buf_init(&b5);
  CHECK(codec_encode(&m, CODEC_KIND_RAFT, &b0) == 0);
  m.group = 5;
  CHECK(codec_encode(&m, CODEC_KIND_RAFT, &b5) == 0);
  CHECK(b0.data[4] == CODEC_VERSION && b5.data[4] == CODEC_VERSION_GROUP);
  CHECK(b5.size_bytes == b0.size_bytes + CODEC_GROUP_BYTES);
  CHECK(le_get_u32(b5.data + CODEC_HEADER_BYTES) == 5);
  /* Apart from the version and the group, the bytes are the same. */
  CHECK(memcmp(b0.data + CODEC_HEADER_BYTES,
               b5.data + CODEC_HEADER_BYTES + CODEC_GROUP_BYTES,
               b0.size_bytes - CODEC_HEADER_BYTES) == 0);
  struct sabha_msg out;
  struct sabha_entry ents[4];
  CHECK(codec_decode(b0.data, b0.size_bytes, &out, ents, 4) == 0);
  CHECK(out.group == 0);
  CHECK(codec_decode(b5.data, b5.size_bytes, &out, ents, 4) == 0);
  CHECK(out.group == 5 && out.n_entries == 1 && out.entries[0].index == 7);
  le_put_u32(b5.data + CODEC_HEADER_BYTES, 0);
  CHECK(codec_decode(b5.data, b5.size_bytes, &out, ents, 4) == SABHA_ECORRUPT);
  /* A version-1 frame relabelled version 2 no longer adds up. */
  CHECK(codec_decode(b0.data, b0.size_bytes, &out, ents, 4) == 0);
  b0.data[4] = CODEC_VERSION_GROUP;
  CHECK(codec_decode(b0.data, b0.size_bytes, &out, ents, 4) == SABHA_ECORRUPT);
  codec_buf_free(&b0);
  codec_buf_free(&b5);
}

/* A bundle of frames as a transport builds it: a header, then frames. */
static void bundle_of(struct codec_buf *b, const struct sabha_msg *msgs,
                      size_t n) {
  codec_buf_init(b);
  CHECK(codec_buf_reserve(b, CODEC_HEADER_BYTES) == 0);
  b->size_bytes = CODEC_HEADER_BYTES;
  for (size_t i = 0; i < n; i++)
    CHECK(codec_encode(&msgs[i], CODEC_KIND_RAFT, b) == 0);
  le_put_u32(b->data, (uint32_t)(b->size_bytes - CODEC_LENGTH_BYTES));
  b->data[4] = CODEC_VERSION;
  b->data[5] = CODEC_KIND_BUNDLE;
}

/* Counts a bundle's frames that decode: -1 when the bundle is refused. */
static int bundle_walk(const uint8_t *buf, size_t len) {
  size_t at = 0;
  const uint8_t *f = NULL;
  size_t n = 0;
  int count = 0, rc;
  while ((rc = codec_bundle_next(buf, len, &at, &f, &n)) == 1) {
    if (f < buf || f + n > buf + len)
      return -2; /* outside the bundle: never */
    struct sabha_msg out;
    if (codec_decode(f, n, &out, decoded_entries, CODEC_ENTRIES_MAX) == 0)
      count++;
  }
  return rc == 0 ? count : -1;
}

static void codec_bundles_carry_whole_frames_and_refuse_the_rest(void) {
  struct sabha_entry e = abc_entry();
  struct sabha_msg m[3] = {
      {.type = 1, .from = 1, .to = 2, .term = 2, .n_entries = 1, .entries = &e},
      {.type = 2, .from = 1, .to = 2, .term = 2, .group = 3},
      {.type = 1, .from = 1, .to = 2, .term = 3, .group = 7}};
  struct codec_buf b;
  bundle_of(&b, m, 3);
  CHECK(bundle_walk(b.data, b.size_bytes) == 3);
  size_t at = 0, n = 0;
  const uint8_t *f = NULL;
  CHECK(codec_bundle_next(b.data, b.size_bytes, &at, &f, &n) == 1);
  struct sabha_msg out;
  CHECK(codec_decode(f, n, &out, decoded_entries, CODEC_ENTRIES_MAX) == 0);
  CHECK(out.n_entries == 1 && out.entries[0].index == 7);
  CHECK(codec_bundle_next(b.data, b.size_bytes, &at, &f, &n) == 1);
  CHECK(codec_decode(f, n, &out, decoded_entries, CODEC_ENTRIES_MAX) == 0);
  CHECK(out.group == 3);
  /* Every cut of the bundle disagrees with its length. */
  for (size_t cut = 0; cut < b.size_bytes; cut++)
    CHECK(bundle_walk(b.data, cut) == -1);
  /* A bundle whose length field is cut with it still ends in a cut
   * frame. */
  size_t whole = b.size_bytes;
  for (size_t cut = CODEC_HEADER_BYTES + 1; cut < whole; cut++) {
    le_put_u32(b.data, (uint32_t)(cut - CODEC_LENGTH_BYTES));
    int got = bundle_walk(b.data, cut);
    CHECK(got == -1 || got >= 1); /* refused, or cut at a frame's end */
  }
  le_put_u32(b.data, (uint32_t)(whole - CODEC_LENGTH_BYTES));
  CHECK(bundle_walk(b.data, whole) == 3);
  /* An inner length below 2, or reaching past the bundle. */
  uint32_t first = le_get_u32(b.data + CODEC_HEADER_BYTES);
  le_put_u32(b.data + CODEC_HEADER_BYTES, 1);
  CHECK(bundle_walk(b.data, whole) == -1);
  le_put_u32(b.data + CODEC_HEADER_BYTES, (uint32_t)whole);
  CHECK(bundle_walk(b.data, whole) == -1);
  le_put_u32(b.data + CODEC_HEADER_BYTES, first);
  /* A bundle inside a bundle, and a bundle of another version. */
  b.data[CODEC_HEADER_BYTES + 5] = CODEC_KIND_BUNDLE;
  CHECK(bundle_walk(b.data, whole) == -1);
  b.data[CODEC_HEADER_BYTES + 5] = CODEC_KIND_RAFT;
  b.data[4] = CODEC_VERSION_GROUP;
  CHECK(bundle_walk(b.data, whole) == -1);
  b.data[4] = CODEC_VERSION;
  CHECK(bundle_walk(b.data, whole) == 3);
  /* A frame that is not a bundle is not walked. */
  b.data[5] = CODEC_KIND_RAFT;
  CHECK(bundle_walk(b.data, whole) == -1);
  codec_buf_free(&b);
  /* A bundle of nothing. */
  bundle_of(&b, m, 0);
  CHECK(b.size_bytes == CODEC_HEADER_BYTES);
  CHECK(bundle_walk(b.data, b.size_bytes) == -1);
  codec_buf_free(&b);
}

static void codec_encoder_refuses_messages_beyond_the_limits(void) {
  /* The sizes are checked before any data is read, so a one-byte buffer
   * stands for an enormous one. */
  uint8_t byte = 0;
  struct sabha_entry e[3];
  for (int i = 0; i < 3; i++)
    e[i] = (struct sabha_entry){.type = SABHA_ENTRY_COMMAND,
                                .size_bytes = CODEC_ENTRY_BYTES_MAX,
                                .data = &byte};
  struct sabha_msg m = {.n_entries = 1, .entries = e};
  size_t size;
  CHECK(codec_frame_size(&m, &size) == 0);
  CHECK(size == CODEC_MSG_FRAME_BYTES_MIN + CODEC_ENTRY_HEADER_BYTES +
                    CODEC_ENTRY_BYTES_MAX);
  e[0].size_bytes = CODEC_ENTRY_BYTES_MAX + 1;
  CHECK(codec_frame_size(&m, &size) == SABHA_ETOOBIG);
  e[0].size_bytes = CODEC_ENTRY_BYTES_MAX;
  m.n_entries = 2; /* 16 MiB of data plus headers: over the frame limit */
  CHECK(codec_frame_size(&m, &size) == SABHA_ETOOBIG);
  m.n_entries = 0;
  m.snap_size_bytes = CODEC_SNAP_CHUNK_BYTES_MAX + 1;
  m.snap_total_bytes = UINT64_MAX;
  m.snap_data = &byte;
  CHECK(codec_frame_size(&m, &size) == SABHA_ETOOBIG);
  /* On error the buffer is left as it was. */
  struct codec_buf b;
  codec_buf_init(&b);
  struct sabha_msg ok = {.type = 1};
  CHECK(codec_encode(&ok, CODEC_KIND_RAFT, &b) == 0);
  size_t before = b.size_bytes;
  CHECK(codec_encode(&m, CODEC_KIND_RAFT, &b) == SABHA_ETOOBIG);
  CHECK(b.size_bytes == before);
  codec_buf_free(&b);
}

static void codec_largest_entry_and_chunk_round_trip(void) {
  uint8_t *big = malloc(CODEC_ENTRY_BYTES_MAX);
  CHECK(big != NULL);
  for (size_t i = 0; i < CODEC_ENTRY_BYTES_MAX; i++)
    big[i] = (uint8_t)(i * 31 + 7);
  struct sabha_entry e = {.index = 5,
                          .term = 2,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = CODEC_ENTRY_BYTES_MAX,
                          .data = big};
  struct sabha_msg m = {.n_entries = 1, .entries = &e};
  struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
  struct sabha_msg out;
  bool ok = b.data != NULL &&
            codec_decode(b.data, b.size_bytes, &out, decoded_entries, 1) == 0 &&
            msg_equal(&m, &out);
  codec_buf_free(&b);
  m = (struct sabha_msg){.snap_total_bytes = CODEC_SNAP_CHUNK_BYTES_MAX,
                         .snap_size_bytes = CODEC_SNAP_CHUNK_BYTES_MAX,
                         .snap_data = big};
  b = encode_one(&m, CODEC_KIND_RAFT);
  ok = ok && b.data != NULL &&
       codec_decode(b.data, b.size_bytes, &out, decoded_entries, 0) == 0 &&
       msg_equal(&m, &out);
  codec_buf_free(&b);
  free(big);
  CHECK(ok);
}

static void codec_random_damage_never_crashes_and_stays_canonical(void) {
  /* The oracle: whatever the decoder accepts must encode back to exactly
   * the bytes it read (nothing it accepts is ambiguous), and nothing it
   * reads lies outside the buffer (ASan). */
  pool_fill(5);
  struct prng p;
  prng_seed(&p, 5);
  static struct sabha_entry entries[GEN_ENTRIES_MAX];
  int accepted = 0, refused = 0;
  for (int iter = 0; iter < 20000; iter++) {
    struct sabha_msg m;
    gen_msg(&p, &m, entries);
    if (m.n_entries > 8)
      m.n_entries = 8; /* small frames: more damage per byte */
    for (uint32_t i = 0; i < m.n_entries; i++) {
      if (entries[i].size_bytes > 64) {
        entries[i].size_bytes = 64;
        entries[i].data = pool;
      }
    }
    if (m.snap_size_bytes > 64) {
      m.snap_size_bytes = 64;
      m.snap_data = pool;
    }
    struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
    CHECK(b.data != NULL);
    size_t len = b.size_bytes;
    /* Damage: flips, and sometimes a truncation or a rewritten length. */
    int flips = (int)prng_range(&p, 1, 8);
    for (int f = 0; f < flips; f++)
      b.data[prng_below(&p, len)] ^= (uint8_t)prng_range(&p, 1, 255);
    if (prng_chance(&p, 0.2))
      len = prng_below(&p, len + 1);
    if (prng_chance(&p, 0.2) && len >= CODEC_LENGTH_BYTES)
      le_put_u32(b.data, (uint32_t)(len - CODEC_LENGTH_BYTES));
    uint8_t *copy = malloc(len > 0 ? len : 1); /* exact size for ASan */
    CHECK(copy != NULL);
    memcpy(copy, b.data, len);
    struct sabha_msg out;
    if (codec_decode(copy, len, &out, decoded_entries, CODEC_ENTRIES_MAX) ==
        0) {
      accepted++;
      struct codec_buf again = encode_one(&out, copy[5]);
      bool same = again.size_bytes == len && memcmp(again.data, copy, len) == 0;
      codec_buf_free(&again);
      if (!same) {
        free(copy);
        codec_buf_free(&b);
      }
      CHECK(same);
    } else {
      refused++;
    }
    free(copy);
    codec_buf_free(&b);
  }
  /* Flips in the payload leave frames valid; flips in lengths do not. Both
   * must have happened, or the test tested nothing. */
  CHECK(accepted > 100 && refused > 100);
}

static void codec_random_garbage_is_refused_without_crashing(void) {
  struct prng p;
  prng_seed(&p, 6);
  uint8_t buf[512];
  for (int iter = 0; iter < 50000; iter++) {
    size_t len = prng_below(&p, sizeof buf + 1);
    for (size_t i = 0; i < len; i++)
      buf[i] = (uint8_t)prng_next(&p);
    /* Make some of them look like frames, so the decoder gets past the
     * header. */
    if (len >= CODEC_HEADER_BYTES && prng_chance(&p, 0.5)) {
      le_put_u32(buf, (uint32_t)(len - CODEC_LENGTH_BYTES));
      buf[4] = CODEC_VERSION;
      buf[5] = CODEC_KIND_RAFT;
    }
    struct sabha_msg out;
    int rc = codec_decode(buf, len, &out, decoded_entries, CODEC_ENTRIES_MAX);
    CHECK(rc == 0 || rc == SABHA_ECORRUPT);
  }
}

static void codec_engine_names_map_to_kinds(void) {
  CHECK(codec_kind_of_engine("raft") == CODEC_KIND_RAFT);
  CHECK(codec_kind_of_engine("multipaxos") == CODEC_KIND_MULTIPAXOS);
  CHECK(codec_kind_of_engine("paxos") == CODEC_KIND_PAXOS);
  CHECK(codec_kind_of_engine("Raft") == SABHA_EPROTO);
  CHECK(codec_kind_of_engine("") == SABHA_EPROTO);
  /* Every engine this build has must have a kind. */
  for (const char *const *name = sabha_protocols(); *name != NULL; name++)
    CHECK(codec_kind_of_engine(*name) > 0);
}

static void codec_default_engine_config_fits_the_limits(void) {
  uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  CHECK(codec_check_config(&cfg) == 0);
  struct sabha_config c = cfg;
  c.entries_per_msg_max = CODEC_ENTRIES_MAX + 1;
  CHECK(codec_check_config(&c) == SABHA_ETOOBIG);
  c = cfg;
  c.entry_size_bytes_max = CODEC_ENTRY_BYTES_MAX + 1;
  CHECK(codec_check_config(&c) == SABHA_ETOOBIG);
  c = cfg;
  c.snapshot_chunk_bytes = CODEC_SNAP_CHUNK_BYTES_MAX + 1;
  CHECK(codec_check_config(&c) == SABHA_ETOOBIG);
  c = cfg;
  c.bytes_per_msg_max = CODEC_PAYLOAD_BYTES_MAX;
  CHECK(codec_check_config(&c) == SABHA_ETOOBIG);
  /* A Multi-Paxos slot shares commands up to bytes_per_slot_max: one slot
   * is an entry, however small each command. */
  c = cfg;
  c.bytes_per_slot_max = CODEC_ENTRY_BYTES_MAX + 1;
  CHECK(codec_check_config(&c) == SABHA_ETOOBIG);
  c = cfg;
  c.bytes_per_slot_max = CODEC_ENTRY_BYTES_MAX;
  c.bytes_per_msg_max = CODEC_PAYLOAD_BYTES_MAX / 2;
  c.entries_per_msg_max = 2;
  CHECK(codec_check_config(&c) == 0);
}

static void codec_integers_are_little_endian(void) {
  struct sabha_msg m = {.type = 0x04030201u, .term = 0x0807060504030201ull};
  struct codec_buf b = encode_one(&m, CODEC_KIND_RAFT);
  CHECK(b.data != NULL);
  const uint8_t *f = b.data;
  CHECK(f[0] == CODEC_MSG_FIXED_BYTES + 2 && f[1] == 0 && f[2] == 0 &&
        f[3] == 0);
  CHECK(f[4] == CODEC_VERSION && f[5] == CODEC_KIND_RAFT);
  CHECK(f[6] == 1 && f[7] == 2 && f[8] == 3 && f[9] == 4);
  for (int i = 0; i < 8; i++)
    CHECK(f[CODEC_HEADER_BYTES + 16 + i] == i + 1);
  codec_buf_free(&b);
}

static const struct test tests[] = {
    TEST(codec_round_trip_keeps_every_field_of_random_messages),
    TEST(codec_frames_appended_to_one_buffer_split_back_apart),
    TEST(codec_every_truncation_of_a_valid_frame_is_refused),
    TEST(codec_trailing_bytes_are_refused),
    TEST(codec_wrong_version_or_kind_is_refused),
    TEST(codec_entry_counts_are_bounded_by_limit_and_caller),
    TEST(codec_sizes_beyond_the_bytes_left_are_refused),
    TEST(codec_snapshot_chunk_beyond_its_total_is_refused),
    TEST(codec_unknown_entry_type_is_refused),
    TEST(codec_frame_length_beyond_the_limit_is_refused),
    TEST(codec_group_frames_carry_the_group),
    TEST(codec_bundles_carry_whole_frames_and_refuse_the_rest),
    TEST(codec_encoder_refuses_messages_beyond_the_limits),
    TEST(codec_largest_entry_and_chunk_round_trip),
    TEST(codec_random_damage_never_crashes_and_stays_canonical),
    TEST(codec_random_garbage_is_refused_without_crashing),
    TEST(codec_engine_names_map_to_kinds),
    TEST(codec_default_engine_config_fits_the_limits),
    TEST(codec_integers_are_little_endian),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
