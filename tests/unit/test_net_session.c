/* Unit tests for the session MAC (src/net/session.c), without sockets.
 *
 * Frames sealed in order open in order; a flipped bit anywhere, a replayed
 * frame, a reordered one, and a frame of the other direction, another
 * connection or another secret are each refused, and a refusal does not
 * move the count (so the genuine frame still opens after a forged one was
 * thrown away). The key and tag are pinned against libsodium's one-shot
 * HMAC and its ChaCha20-Poly1305 over the bytes docs/wire.md specifies. Run
 * with a test name as the argument to run only that test. */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/endian.h"
#include "net/codec.h"
#include "net/handshake.h"
#include "net/session.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define FRAMES 4
#define FRAME_BYTES_MAX (CODEC_MSG_FRAME_BYTES_MIN + 64 + SESSION_TAG_BYTES)

static const uint8_t SECRET[] = "0123456789abcdef-a cluster secret";

static struct hs_hello hello(uint32_t id, uint8_t nonce) {
  struct hs_hello h;
  memset(&h, 0, sizeof h);
  h.protocol_version = HS_PROTOCOL_VERSION;
  h.flags = HS_FLAG_AUTH;
  h.node_id = id;
  memset(h.nonce, nonce, sizeof h.nonce);
  snprintf(h.cluster_id, sizeof h.cluster_id, "c");
  snprintf(h.engine, sizeof h.engine, "raft");
  return h;
}

/* Frame i of a stream: a Raft heartbeat of term i + 1 with i bytes of
 * snapshot data, room left for the tag; returns its size. */
static size_t frame(uint32_t i, uint8_t out[FRAME_BYTES_MAX]) {
  uint8_t data[64];
  memset(data, (int)i, sizeof data);
  struct sabha_msg m = {.type = 3,
                        .from = 2,
                        .to = 1,
                        .term = i + 1,
                        .snap_total_bytes = i,
                        .snap_size_bytes = i,
                        .snap_data = i > 0 ? data : NULL};
  size_t n;
  if (codec_frame_size(&m, &n) != 0 || n + SESSION_TAG_BYTES > FRAME_BYTES_MAX)
    abort(); /* the test's own frames: a bug here, not a failed check */
  codec_write(&m, CODEC_KIND_RAFT, out, n);
  n += SESSION_TAG_BYTES;
  le_put_u32(out, (uint32_t)(n - CODEC_LENGTH_BYTES));
  return n;
}

/* A sender's and a receiver's key of the direction 2 -> 1. */
static void keys(struct session_key *send, struct session_key *recv) {
  struct hs_hello one = hello(1, 0x11), two = hello(2, 0x22);
  session_key_init(send, SECRET, sizeof SECRET - 1, &two, &one);
  session_key_init(recv, SECRET, sizeof SECRET - 1, &two, &one);
}

static void session_frames_sealed_in_order_open_in_order(void) {
  CHECK(sodium_init() >= 0);
  struct session_key send, recv;
  keys(&send, &recv);
  for (uint32_t i = 0; i < FRAMES; i++) {
    uint8_t f[FRAME_BYTES_MAX];
    size_t n = frame(i, f);
    session_seal(&send, f, n);
    CHECK(session_open(&recv, f, n) == 0);
    CHECK(recv.seq == i + 1 && send.seq == i + 1);
  }
}

static void session_flipped_bit_anywhere_is_refused(void) {
  CHECK(sodium_init() >= 0);
  struct session_key send, recv;
  keys(&send, &recv);
  uint8_t f[FRAME_BYTES_MAX];
  size_t n = frame(3, f);
  session_seal(&send, f, n);
  /* Every bit of the frame: length, version, kind, body and tag. */
  for (size_t byte = 0; byte < n; byte++) {
    for (int bit = 0; bit < 8; bit++) {
      f[byte] ^= (uint8_t)(1u << bit);
      CHECK(session_open(&recv, f, n) == SABHA_ECORRUPT);
      f[byte] ^= (uint8_t)(1u << bit);
    }
  }
  /* Refusals did not move the count: the genuine frame still opens. */
  CHECK(recv.seq == 0);
  CHECK(session_open(&recv, f, n) == 0);
  /* Cut short, or too short to hold a tag at all. */
  CHECK(session_open(&recv, f, n - 1) == SABHA_ECORRUPT);
  CHECK(session_open(&recv, f, CODEC_HEADER_BYTES + SESSION_TAG_BYTES - 1) ==
        SABHA_ECORRUPT);
  CHECK(session_open(&recv, NULL, 0) == SABHA_ECORRUPT);
}

static void session_replayed_frame_is_refused(void) {
  CHECK(sodium_init() >= 0);
  struct session_key send, recv;
  keys(&send, &recv);
  uint8_t f0[FRAME_BYTES_MAX], f1[FRAME_BYTES_MAX];
  size_t n0 = frame(0, f0), n1 = frame(0, f1);
  session_seal(&send, f0, n0);
  session_seal(&send, f1, n1);
  CHECK(session_open(&recv, f0, n0) == 0);
  /* The very same bytes again: a recorded heartbeat replayed. */
  CHECK(session_open(&recv, f0, n0) == SABHA_ECORRUPT);
  /* The same message sealed as the next frame is another frame. */
  CHECK(memcmp(f0, f1, n0 - SESSION_TAG_BYTES) == 0);
  CHECK(session_open(&recv, f1, n1) == 0);
  CHECK(session_open(&recv, f1, n1) == SABHA_ECORRUPT);
}

static void session_reordered_frames_are_refused(void) {
  CHECK(sodium_init() >= 0);
  struct session_key send, recv;
  keys(&send, &recv);
  uint8_t f[3][FRAME_BYTES_MAX];
  size_t n[3];
  for (uint32_t i = 0; i < 3; i++) {
    n[i] = frame(i, f[i]);
    session_seal(&send, f[i], n[i]);
  }
  /* 1 before 0, and 2 after a dropped 1: both out of place. */
  CHECK(session_open(&recv, f[1], n[1]) == SABHA_ECORRUPT);
  CHECK(session_open(&recv, f[0], n[0]) == 0);
  CHECK(session_open(&recv, f[2], n[2]) == SABHA_ECORRUPT);
  CHECK(session_open(&recv, f[1], n[1]) == 0);
  CHECK(session_open(&recv, f[2], n[2]) == 0);
}

static void session_keys_belong_to_one_direction_connection_and_secret(void) {
  CHECK(sodium_init() >= 0);
  struct hs_hello one = hello(1, 0x11), two = hello(2, 0x22);
  struct session_key send;
  session_key_init(&send, SECRET, sizeof SECRET - 1, &two, &one);
  uint8_t f[FRAME_BYTES_MAX];
  size_t n = frame(1, f);
  session_seal(&send, f, n);
  struct session_key wrong[4];
  /* The other direction: a frame reflected back to its sender. */
  session_key_init(&wrong[0], SECRET, sizeof SECRET - 1, &one, &two);
  /* Another connection: either nonce differs. */
  struct hs_hello one_later = one, two_later = two;
  one_later.nonce[0] ^= 1;
  two_later.nonce[31] ^= 1;
  session_key_init(&wrong[1], SECRET, sizeof SECRET - 1, &two, &one_later);
  session_key_init(&wrong[2], SECRET, sizeof SECRET - 1, &two_later, &one);
  /* Another secret. */
  session_key_init(&wrong[3], SECRET, sizeof SECRET - 2, &two, &one);
  for (size_t i = 0; i < N(wrong); i++)
    CHECK(session_open(&wrong[i], f, n) == SABHA_ECORRUPT);
  struct session_key right;
  session_key_init(&right, SECRET, sizeof SECRET - 1, &two, &one);
  CHECK(session_open(&right, f, n) == 0);
  session_key_wipe(&right);
  CHECK(right.seq == 0);
}

static void session_tag_matches_chacha20_poly1305_of_the_spec(void) {
  /* docs/wire.md, byte by byte: the key through libsodium's one-shot HMAC
   * (a 32-byte secret, which the one-shot interface takes as its key),
   * the tag through its ChaCha20-Poly1305 with the frame as associated
   * data. */
  CHECK(sodium_init() >= 0);
  uint8_t secret[crypto_auth_hmacsha256_KEYBYTES];
  for (size_t i = 0; i < sizeof secret; i++)
    secret[i] = (uint8_t)(0xa0 + i);
  struct hs_hello d = hello(0x01020304, 0x33), l = hello(5, 0x44);
  uint8_t t[16 + 8 + 64];
  memcpy(t, "sabha-session-v2", 16);
  le_put_u32(t + 16, d.node_id);
  le_put_u32(t + 20, l.node_id);
  memcpy(t + 24, d.nonce, 32);
  memcpy(t + 56, l.nonce, 32);
  uint8_t key[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(key, t, sizeof t, secret);

  struct session_key k;
  session_key_init(&k, secret, sizeof secret, &d, &l);
  for (uint32_t i = 0; i < FRAMES; i++) {
    uint8_t f[FRAME_BYTES_MAX];
    size_t n = frame(i, f);
    session_seal(&k, f, n);
    uint8_t nonce[12] = {0};
    le_put_u64(nonce, i);
    uint8_t want[16], none[1] = {0};
    unsigned long long want_bytes = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        none, want, &want_bytes, none, 0, f, n - SESSION_TAG_BYTES, NULL, nonce,
        key);
    CHECK(want_bytes == SESSION_TAG_BYTES);
    CHECK(memcmp(want, f + n - SESSION_TAG_BYTES, SESSION_TAG_BYTES) == 0);
  }
}

static const struct test tests[] = {
    TEST(session_frames_sealed_in_order_open_in_order),
    TEST(session_flipped_bit_anywhere_is_refused),
    TEST(session_replayed_frame_is_refused),
    TEST(session_reordered_frames_are_refused),
    TEST(session_keys_belong_to_one_direction_connection_and_secret),
    TEST(session_tag_matches_chacha20_poly1305_of_the_spec),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
