/* The wire codec: one versioned binary encoding of struct sabha_msg.
 *
 * Engines hand their hosts messages as C structs with pointers inside; a
 * peer on the other end of a TCP connection (or a simulator that wants to
 * see real sizes and real bugs) needs them as bytes. This module turns a
 * message into one self-delimiting frame and back, and nothing else: no
 * sockets, no clock, no allocation in decode, so that it can be fuzzed on its
 * own and used by any host. docs/wire.md is the byte-by-byte specification;
 * this comment is its summary.
 *
 * A frame is
 *
 *   u32 payload_bytes        length of everything after this field
 *   u8  version              CODEC_VERSION; anything else is refused
 *   u8  kind                 what the payload is (enum codec_kind): the
 *                            engine whose message it carries, or a
 *                            handshake frame (src/net/handshake.h)
 *   ...                      payload_bytes - 2 bytes of body
 *
 * All integers are little-endian and unaligned. A message body is a fixed
 * block of CODEC_MSG_FIXED_BYTES (every scalar field of struct sabha_msg),
 * then n_entries entries of {u64 index, u64 term, u32 type, u32 size_bytes,
 * size_bytes of data}, then snap_size_bytes of snapshot data.
 *
 * Decoding is strict: the encoding is canonical (one message, one byte
 * string), so a decoder that accepts a frame and an encoder that rewrites it
 * give back the same bytes. Everything that could make a reader trust a
 * length is checked before use: the frame length against the buffer and
 * CODEC_PAYLOAD_BYTES_MAX, counts against CODEC_ENTRIES_MAX and the
 * caller's array, each size against the bytes left, the snapshot chunk
 * against its total, and no byte may be left over. A decoder never reads
 * outside [buf, buf + len) whatever the input. */
#ifndef SABHA_NET_CODEC_H
#define SABHA_NET_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "sabha/engine.h"

/* The format version in every frame. Bump it for any change to the layout;
 * peers with different versions refuse each other in the handshake. */
#define CODEC_VERSION 1u
/* A message of a group other than 0 (a process that hosts several, see
 * src/node/groups.c) goes in a frame of this version, whose body starts
 * with the u32 group (1..): a frame of group 0 is byte for byte what it was
 * before groups, and a receiver refuses a group it does not host. */
#define CODEC_VERSION_GROUP 2u
#define CODEC_GROUP_BYTES 4u

/* Limits. A frame that breaks one is refused by both encoder
 * (SABHA_ETOOBIG) and decoder (SABHA_ECORRUPT). They bound the memory a peer
 * can make us hold: one receive buffer per connection grows to at most
 * CODEC_LENGTH_BYTES + CODEC_PAYLOAD_BYTES_MAX. The engine's own limits
 * (sabha_config) must fit inside them: see codec_check_config(). */
#define CODEC_PAYLOAD_BYTES_MAX (16u << 20) /* after the length field */
#define CODEC_ENTRIES_MAX 4096u             /* entries in one message */
#define CODEC_ENTRY_BYTES_MAX (8u << 20)    /* data of one entry */
#define CODEC_SNAP_CHUNK_BYTES_MAX                                             \
  (8u << 20) /* snapshot data in one message                                   \
              */

#define CODEC_LENGTH_BYTES 4u        /* the u32 payload_bytes */
#define CODEC_HEADER_BYTES 6u        /* length, version, kind */
#define CODEC_MSG_FIXED_BYTES 112u   /* a message body without entries/data */
#define CODEC_ENTRY_HEADER_BYTES 24u /* index, term, type, size_bytes */
/* The smallest message frame: a message with no entries and no snapshot. */
#define CODEC_MSG_FRAME_BYTES_MIN (CODEC_HEADER_BYTES + CODEC_MSG_FIXED_BYTES)

/* The kind byte of a frame. Message kinds name the engine whose message
 * types the frame carries: type numbers are per protocol, so a Raft node
 * must never read a Paxos message as one of its own. */
enum codec_kind {
  CODEC_KIND_RAFT = 1,
  CODEC_KIND_MULTIPAXOS = 2,
  CODEC_KIND_PAXOS = 3,
  CODEC_KIND_ASYNC = 4,    /* the primary-backup baseline (src/async) */
  CODEC_KIND_BUNDLE = 5,   /* message frames under one session tag: below */
  CODEC_KIND_HELLO = 0x80, /* handshake: src/net/handshake.h */
  CODEC_KIND_AUTH = 0x81,
  CODEC_KIND_REFUSE = 0x82,
};

/* The message kind for an engine name as sabha_protocols() lists it
 * ("raft", "multipaxos", "paxos"), or SABHA_EPROTO for any other name. */
int codec_kind_of_engine(const char *engine_name);
/* True for the kinds that carry a struct sabha_msg. */
int codec_kind_is_msg(uint32_t kind);

/* A bundle is a frame of kind CODEC_KIND_BUNDLE and version CODEC_VERSION
 * whose body is one or more whole message frames back to back. A transport
 * with a session (net/session.h) tags each frame it sends, and a tag costs
 * the same whatever the frame's size; a process hosting many groups sends
 * many small messages per loop turn (an append or an acknowledgement per
 * group), so it queues those of one turn as one bundle and tags it once.
 * Bundles do not nest.
 *
 * Steps through the bundle buf[0, len) (length field included, no tag):
 * *at is 0 before the first call; each call sets *frame and *frame_bytes
 * to the next inner frame (length field included; inside buf) and returns
 * 1, or returns 0 after the last, or SABHA_ECORRUPT when the bundle is
 * malformed: not a bundle, a length that disagrees with len, no frame in
 * it, an inner frame whose header is cut, whose length is below 2 or
 * reaches past the bundle, or which is a bundle itself. What an inner
 * frame says is codec_decode()'s to check. Never reads outside buf[0, len).
 */
int codec_bundle_next(const uint8_t *buf, size_t len, size_t *at,
                      const uint8_t **frame, size_t *frame_bytes);

/* A frame header, as codec_peek() reads it. */
struct codec_header {
  uint32_t payload_bytes; /* the frame is CODEC_LENGTH_BYTES + this long */
  uint8_t version;
  uint8_t kind;
};

/* Reads the header at the start of a stream of frames; `len` may be less
 * than the whole frame (a reader uses this to learn how much more to wait
 * for). Requires len >= CODEC_HEADER_BYTES. Returns 0, or SABHA_ECORRUPT
 * when payload_bytes is below 2 or above CODEC_PAYLOAD_BYTES_MAX or the
 * version is neither CODEC_VERSION nor CODEC_VERSION_GROUP (h is filled in
 * every case, so that the caller can say what was wrong). */
int codec_peek(const uint8_t *buf, size_t len, struct codec_header *h);

/* A growable byte buffer that frames are appended to. size_bytes <=
 * cap_bytes; data is NULL while cap_bytes is 0. Owned by whoever holds the
 * struct; codec_buf_free() releases it. */
struct codec_buf {
  uint8_t *data;
  size_t size_bytes;
  size_t cap_bytes;
};

void codec_buf_init(struct codec_buf *b);
void codec_buf_free(struct codec_buf *b);
/* Makes room for `more_bytes` after size_bytes, doubling the capacity so
 * that appends cost amortized O(1). Returns 0 or SABHA_ENOMEM (the buffer is
 * unchanged). */
int codec_buf_reserve(struct codec_buf *b, size_t more_bytes);
/* The same, but grows to exactly size_bytes + more_bytes when it must grow:
 * for a receive buffer sized by one large frame, where doubling would waste
 * up to as much again. */
int codec_buf_reserve_exact(struct codec_buf *b, size_t more_bytes);

/* Sets *frame_bytes to the size of m's frame, length field included.
 * Returns 0, SABHA_ETOOBIG when m breaks a limit above (too many entries, an
 * entry or snapshot chunk too large, a frame too long), or SABHA_EINVAL when
 * m is inconsistent (snap_offset + snap_size_bytes beyond snap_total_bytes,
 * an entry type other than COMMAND or NOOP, or n_entries without entries). */
int codec_frame_size(const struct sabha_msg *m, size_t *frame_bytes);

/* The bytes m's frame would take, length field included, whether or not m
 * keeps the limits above: for saying how far a refused message is over
 * them. */
uint64_t codec_frame_bytes_wanted(const struct sabha_msg *m);

/* Writes m's frame of `kind` (a message kind) into `out`, which has exactly
 * `frame_bytes` as codec_frame_size() returned for m. Cannot fail. */
void codec_write(const struct sabha_msg *m, uint8_t kind, uint8_t *out,
                 size_t frame_bytes);

/* Appends m's frame of `kind` (a message kind) to `b`: the size is computed
 * first and the buffer grown at most once, whatever the number of entries.
 * Returns 0, the errors of codec_frame_size(), or SABHA_ENOMEM; on error b
 * is unchanged. */
int codec_encode(const struct sabha_msg *m, uint8_t kind, struct codec_buf *b);

/* Decodes the single complete frame buf[0, len) (length field included)
 * into *out. Zero-copy: out->entries points to `entries` (caller's array of
 * entries_max), and every entry's data and out->snap_data point into buf,
 * so *out is valid as long as buf and entries are. Pointers for empty data
 * are NULL. Returns 0 or SABHA_ECORRUPT: wrong version, a kind that is not
 * a message kind, a length that disagrees with len, more entries than
 * entries_max or CODEC_ENTRIES_MAX, any size beyond its limit or beyond the
 * bytes left, a snapshot chunk beyond its total, an unknown entry type, or
 * trailing bytes. On error *out and entries hold nothing useful. Never reads
 * outside buf[0, len). The kind is buf[5] (codec_peek()). */
int codec_decode(const uint8_t *buf, size_t len, struct sabha_msg *out,
                 struct sabha_entry *entries, uint32_t entries_max);

/* Checks that every message an engine with `cfg` can build fits the limits
 * above, so that a node refuses a bad configuration at start instead of
 * dropping messages forever. Returns 0 or SABHA_ETOOBIG. */
int codec_check_config(const struct sabha_config *cfg);

#endif
