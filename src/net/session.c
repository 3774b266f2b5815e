/* Session keys and frame tags (see session.h).
 *
 * The HMAC state keyed with a direction's key is computed once at the
 * handshake and copied for each frame, so a frame costs its own bytes to
 * hash and no key schedule. */
#include "net/session.h"

#include <assert.h>
#include <string.h>

#include "core/endian.h"
#include "net/codec.h"

void session_key_init(struct session_key *k, const uint8_t *secret,
                      size_t secret_bytes, const struct hs_hello *sender,
                      const struct hs_hello *receiver) {
  assert(k != NULL && secret != NULL && secret_bytes > 0);
  assert(sender != NULL && receiver != NULL);
  crypto_auth_hmacsha256_state st;
  hs_hmac_begin(&st, secret, secret_bytes, SESSION_LABEL, sender, receiver);
  uint8_t key[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&st, key);
  crypto_auth_hmacsha256_init(&k->base, key, sizeof key);
  k->seq = 0;
  sodium_memzero(key, sizeof key);
  sodium_memzero(&st, sizeof st);
}

void session_key_wipe(struct session_key *k) {
  sodium_memzero(k, sizeof *k);
}

/* The tag of frame[0, body_bytes) as frame number `seq`. */
static void frame_tag(const struct session_key *k, uint64_t seq,
                      const uint8_t *frame, size_t body_bytes,
                      uint8_t tag[SESSION_TAG_BYTES]) {
  crypto_auth_hmacsha256_state st = k->base;
  uint8_t seq_bytes[8];
  le_put_u64(seq_bytes, seq);
  crypto_auth_hmacsha256_update(&st, seq_bytes, sizeof seq_bytes);
  crypto_auth_hmacsha256_update(&st, frame, body_bytes);
  uint8_t full[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&st, full);
  memcpy(tag, full, SESSION_TAG_BYTES);
  sodium_memzero(full, sizeof full);
  sodium_memzero(&st, sizeof st);
}

void session_seal(struct session_key *k, uint8_t *frame, size_t frame_bytes) {
  assert(k != NULL && frame != NULL);
  assert(frame_bytes >= CODEC_HEADER_BYTES + SESSION_TAG_BYTES);
  assert(le_get_u32(frame) == frame_bytes - CODEC_LENGTH_BYTES);
  size_t body_bytes = frame_bytes - SESSION_TAG_BYTES;
  frame_tag(k, k->seq, frame, body_bytes, frame + body_bytes);
  k->seq++;
}

int session_open(struct session_key *k, const uint8_t *frame,
                 size_t frame_bytes) {
  assert(k != NULL && (frame != NULL || frame_bytes == 0));
  if (frame_bytes < CODEC_HEADER_BYTES + SESSION_TAG_BYTES)
    return SABHA_ECORRUPT;
  size_t body_bytes = frame_bytes - SESSION_TAG_BYTES;
  uint8_t want[SESSION_TAG_BYTES];
  frame_tag(k, k->seq, frame, body_bytes, want);
  int same = sodium_memcmp(want, frame + body_bytes, SESSION_TAG_BYTES) == 0;
  sodium_memzero(want, sizeof want);
  if (!same)
    return SABHA_ECORRUPT;
  k->seq++;
  return 0;
}
