/* The session MAC: how every frame after the handshake proves that it comes
 * from the peer that proved the secret, in the order it was sent.
 *
 * The handshake (handshake.h) proves once that the node at the other end
 * knows the cluster secret. Without more, whoever can write to the TCP
 * stream afterwards (an attacker on the path, or one who relays a real
 * handshake and then speaks alone) could inject any message, and one Raft
 * heartbeat with a huge term is enough to wedge a cluster for ever. So when
 * a secret is configured, each direction of a connection gets a key of its
 * own, derived from the secret and both handshake nonces, and every frame
 * carries a tag over its bytes and its position in the stream:
 *
 *   key(S -> R) = HMAC-SHA256(secret, "sabha-session-v2" | id_S | id_R |
 *                             nonce_S | nonce_R)
 *   tag         = the tag of ChaCha20-Poly1305 (RFC 8439) under
 *                 key(S -> R), nonce = u64 seq | 4 zero bytes, the frame
 *                 without its tag as associated data, no plaintext
 *
 * where seq (u64) counts the frames S sent on this connection after the
 * handshake, from 0, and is not sent: the receiver counts too. Each
 * (key, nonce) pair tags one frame only, as Poly1305 requires. A flipped
 * bit fails the tag; a frame replayed, dropped or moved fails it at the
 * receiver's next count; a frame from another connection or the other
 * direction fails it because the key differs (fresh nonces, sender named
 * first). The tag is the last SESSION_TAG_BYTES bytes of the frame and the
 * frame's length field counts it, so the stream stays a sequence of
 * length-prefixed frames. Nothing is encrypted. docs/wire.md has the bytes.
 *
 * Pure: no sockets, no clock, no allocation; the transport (transport.c)
 * seals what it queues and opens what it reads. */
#ifndef SABHA_NET_SESSION_H
#define SABHA_NET_SESSION_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "net/handshake.h"

#define SESSION_TAG_BYTES 16u /* 128 bits: forging one takes 2^128 tries */
#define SESSION_LABEL "sabha-session-v2"

/* One direction of one connection: its key, ready to use, and the number
 * of the next frame. Holds key material: session_key_wipe() it. */
struct session_key {
  uint8_t key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
  uint64_t seq; /* of the next frame sealed / opened */
};

/* Derives the key of frames from `sender` to `receiver`, whose HELLOs the
 * handshake exchanged and checked (the nonces and ids are what matter),
 * and sets its count to 0. `secret` has secret_bytes >= 1. */
void session_key_init(struct session_key *k, const uint8_t *secret,
                      size_t secret_bytes, const struct hs_hello *sender,
                      const struct hs_hello *receiver);

/* Erases the key. */
void session_key_wipe(struct session_key *k);

/* Seals the frame frame[0, frame_bytes), whose last SESSION_TAG_BYTES
 * bytes are room for the tag and whose length field already counts them:
 * writes the tag for the next number and advances the count. */
void session_seal(struct session_key *k, uint8_t *frame, size_t frame_bytes);

/* Checks the tag of the complete frame frame[0, frame_bytes) (length field
 * and tag included) against the next number, in constant time. Returns 0
 * and advances the count, or SABHA_ECORRUPT (the frame is shorter than a
 * header and a tag, or its tag is wrong) and leaves the count as it was:
 * the caller must then close the connection, as the stream can no longer
 * be trusted. */
int session_open(struct session_key *k, const uint8_t *frame,
                 size_t frame_bytes);

#endif
