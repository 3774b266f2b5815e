/* Session keys and frame tags (see session.h).
 *
 * A tag is ChaCha20-Poly1305's over the frame as associated data, with no
 * plaintext: one ChaCha20 block makes the frame's Poly1305 key, and
 * Poly1305 costs about a cycle per byte, several times less than the
 * HMAC-SHA256 that tags cost before (with two SHA-256 finalizations per
 * frame besides). Every replicated entry crosses this code once per
 * follower on the leader and once on each follower. */
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
  _Static_assert(crypto_auth_hmacsha256_BYTES == sizeof k->key,
                 "the derived key is the AEAD's key");
  crypto_auth_hmacsha256_final(&st, k->key);
  k->seq = 0;
  sodium_memzero(&st, sizeof st);
}

void session_key_wipe(struct session_key *k) {
  sodium_memzero(k, sizeof *k);
}

/* The tag of frame[0, body_bytes) as frame number `seq`. */
static void frame_tag(const struct session_key *k, uint64_t seq,
                      const uint8_t *frame, size_t body_bytes,
                      uint8_t tag[SESSION_TAG_BYTES]) {
  _Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == SESSION_TAG_BYTES,
                 "the tag is the AEAD's");
  uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {0};
  le_put_u64(nonce, seq); /* never reused: seq counts up, keys are fresh */
  uint8_t none[1] = {0};  /* the empty plaintext and ciphertext */
  unsigned long long tag_bytes = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      none, tag, &tag_bytes, none, 0, frame, body_bytes, NULL, nonce, k->key);
  assert(tag_bytes == SESSION_TAG_BYTES);
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
