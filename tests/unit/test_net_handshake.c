/* Unit tests for the peer handshake frames and MAC (src/net/handshake.c),
 * without sockets.
 *
 * A HELLO and an AUTH survive a round trip; every truncation and every
 * malformed string is refused as malformed; another version is refused as a
 * version mismatch (not "malformed", so that operators see the real
 * reason); the checks name the right reason; and the MAC proves the secret
 * only in the direction and on the connection it was made for. Random
 * damage never crashes the decoders (ASan and UBSan in `make test`). Run
 * with a test name as the argument to run only that test. */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/endian.h"
#include "core/prng.h"
#include "net/codec.h"
#include "net/handshake.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct hs_hello hello(uint32_t id, const char *cluster,
                             const char *engine, bool auth, uint8_t nonce) {
  struct hs_hello h;
  memset(&h, 0, sizeof h);
  h.protocol_version = HS_PROTOCOL_VERSION;
  h.flags = auth ? HS_FLAG_AUTH : 0;
  h.node_id = id;
  memset(h.nonce, nonce, sizeof h.nonce);
  snprintf(h.cluster_id, sizeof h.cluster_id, "%s", cluster);
  snprintf(h.engine, sizeof h.engine, "%s", engine);
  h.settings = 100000u; /* a --dedup-max: round trips must keep it */
  return h;
}

static bool hello_equal(const struct hs_hello *a, const struct hs_hello *b) {
  return a->protocol_version == b->protocol_version && a->flags == b->flags &&
         a->node_id == b->node_id &&
         memcmp(a->nonce, b->nonce, HS_NONCE_BYTES) == 0 &&
         strcmp(a->cluster_id, b->cluster_id) == 0 &&
         strcmp(a->engine, b->engine) == 0 && a->settings == b->settings;
}

static void handshake_hello_round_trips(void) {
  char longest[HS_CLUSTER_ID_BYTES_MAX + 1];
  memset(longest, 'c', HS_CLUSTER_ID_BYTES_MAX);
  longest[HS_CLUSTER_ID_BYTES_MAX] = '\0';
  const char *clusters[] = {"a", "prod-eu-1", longest};
  const char *engines[] = {"raft", "multipaxos", "paxos", "x"};
  for (size_t i = 0; i < N(clusters); i++) {
    for (size_t j = 0; j < N(engines); j++) {
      struct hs_hello h =
          hello((uint32_t)(i * 7 + j + 1), clusters[i], engines[j], j % 2, 9);
      uint8_t frame[HS_HELLO_FRAME_BYTES_MAX];
      size_t n = hs_hello_encode(&h, frame);
      CHECK(n <= HS_HELLO_FRAME_BYTES_MAX);
      CHECK(le_get_u32(frame) == n - CODEC_LENGTH_BYTES);
      struct hs_hello out;
      CHECK(hs_hello_decode(frame, n, &out) == HS_ACCEPTED);
      CHECK(hello_equal(&h, &out));
    }
  }
}

static void handshake_every_truncation_of_a_hello_is_refused(void) {
  struct hs_hello h = hello(3, "cluster", "raft", true, 1);
  uint8_t frame[HS_HELLO_FRAME_BYTES_MAX];
  size_t n = hs_hello_encode(&h, frame);
  struct hs_hello out;
  for (size_t len = 0; len < n; len++) {
    uint8_t *cut = malloc(len > 0 ? len : 1);
    CHECK(cut != NULL);
    memcpy(cut, frame, len);
    int r1 = hs_hello_decode(cut, len, &out);
    if (len >= CODEC_LENGTH_BYTES)
      le_put_u32(cut, (uint32_t)(len - CODEC_LENGTH_BYTES));
    int r2 = hs_hello_decode(cut, len, &out);
    free(cut);
    CHECK(r1 == HS_REFUSED_MALFORMED);
    CHECK(r2 == HS_REFUSED_MALFORMED);
  }
  /* And one byte too many. */
  uint8_t longer[HS_HELLO_FRAME_BYTES_MAX + 1];
  memcpy(longer, frame, n);
  longer[n] = 0;
  le_put_u32(longer, (uint32_t)(n + 1 - CODEC_LENGTH_BYTES));
  CHECK(hs_hello_decode(longer, n + 1, &out) == HS_REFUSED_MALFORMED);
}

static void handshake_other_versions_are_a_version_mismatch(void) {
  struct hs_hello h = hello(3, "cluster", "raft", false, 1);
  uint8_t frame[HS_HELLO_FRAME_BYTES_MAX];
  size_t n = hs_hello_encode(&h, frame);
  struct hs_hello out;
  frame[4] = CODEC_VERSION + 1; /* the frame format */
  CHECK(hs_hello_decode(frame, n, &out) == HS_REFUSED_VERSION);
  frame[4] = CODEC_VERSION;
  le_put_u16(frame + 14, HS_PROTOCOL_VERSION + 1); /* the protocol */
  CHECK(hs_hello_decode(frame, n, &out) == HS_REFUSED_VERSION);
  CHECK(out.protocol_version == HS_PROTOCOL_VERSION + 1);
  /* A later version may have a different layout after the frozen prefix:
   * still a version mismatch, even when the rest does not parse as ours. */
  uint8_t future[24];
  memcpy(future, frame, 16);
  memset(future + 16, 0xee, sizeof future - 16);
  le_put_u32(future, sizeof future - CODEC_LENGTH_BYTES);
  CHECK(hs_hello_decode(future, sizeof future, &out) == HS_REFUSED_VERSION);
}

static void handshake_malformed_hellos_are_refused(void) {
  struct hs_hello h = hello(3, "cluster", "raft", false, 1);
  uint8_t good[HS_HELLO_FRAME_BYTES_MAX];
  size_t n = hs_hello_encode(&h, good);
  uint8_t f[HS_HELLO_FRAME_BYTES_MAX];
  struct hs_hello out;
  size_t at_cluster = 54; /* u8 length, then the bytes */

  memcpy(f, good, n);
  f[6] ^= 1; /* magic */
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  f[5] = CODEC_KIND_AUTH;
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  le_put_u16(f + 16, 0x8000); /* an unknown flag */
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  f[at_cluster + 3] = '\0'; /* a NUL inside the cluster id */
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  f[at_cluster] = 0; /* an empty cluster id */
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  f[at_cluster] = 200; /* longer than the frame */
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  f[at_cluster] = (uint8_t)(HS_CLUSTER_ID_BYTES_MAX + 1);
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  f[n - 13] = 0; /* the engine's length byte ("raft", then 8 of settings) */
  CHECK(hs_hello_decode(f, n, &out) == HS_REFUSED_MALFORMED);
  memcpy(f, good, n);
  CHECK(hs_hello_decode(f, n, &out) == HS_ACCEPTED); /* the copy is good */
}

static void handshake_checks_name_the_reason(void) {
  struct hs_hello me = hello(1, "c", "raft", false, 1);
  struct hs_hello ok = hello(2, "c", "raft", false, 2);
  CHECK(hs_hello_check(&me, &ok) == HS_ACCEPTED);
  struct hs_hello x = ok;
  snprintf(x.cluster_id, sizeof x.cluster_id, "d");
  CHECK(hs_hello_check(&me, &x) == HS_REFUSED_CLUSTER);
  x = ok;
  snprintf(x.engine, sizeof x.engine, "multipaxos");
  CHECK(hs_hello_check(&me, &x) == HS_REFUSED_ENGINE);
  x = ok;
  x.settings = me.settings + 1; /* another --dedup-max: replies would differ */
  CHECK(hs_hello_check(&me, &x) == HS_REFUSED_SETTINGS);
  x = ok;
  x.node_id = 1;
  CHECK(hs_hello_check(&me, &x) == HS_REFUSED_NODE);
  x = ok;
  x.flags = HS_FLAG_AUTH;
  CHECK(hs_hello_check(&me, &x) == HS_REFUSED_AUTH);
  CHECK(hs_hello_check(&x, &me) == HS_REFUSED_AUTH);
  for (int r = 0; r < HS_REFUSAL_COUNT; r++)
    CHECK(strlen(hs_refusal_text((enum hs_refusal)r)) > 0);
}

static void handshake_mac_proves_the_secret_one_way_only(void) {
  CHECK(sodium_init() >= 0);
  const uint8_t secret[] = "correct horse battery staple";
  const uint8_t wrong[] = "correct horse battery stapler";
  struct hs_hello a = hello(1, "c", "raft", true, 0xaa);
  struct hs_hello b = hello(2, "c", "raft", true, 0xbb);
  uint8_t mac[HS_MAC_BYTES];
  hs_mac(secret, sizeof secret - 1, &a, &b, mac);
  CHECK(hs_mac_verify(secret, sizeof secret - 1, &a, &b, mac) == HS_ACCEPTED);
  /* Another secret, a reflected MAC, another nonce, another claimed id. */
  CHECK(hs_mac_verify(wrong, sizeof wrong - 1, &a, &b, mac) == HS_REFUSED_AUTH);
  CHECK(hs_mac_verify(secret, sizeof secret - 1, &b, &a, mac) ==
        HS_REFUSED_AUTH);
  struct hs_hello b2 = b;
  b2.nonce[31] ^= 1;
  CHECK(hs_mac_verify(secret, sizeof secret - 1, &a, &b2, mac) ==
        HS_REFUSED_AUTH);
  struct hs_hello a2 = a;
  a2.node_id = 3;
  CHECK(hs_mac_verify(secret, sizeof secret - 1, &a2, &b, mac) ==
        HS_REFUSED_AUTH);
  /* A secret longer than SHA-256's block is a valid HMAC key too. */
  uint8_t long_secret[200];
  memset(long_secret, 7, sizeof long_secret);
  hs_mac(long_secret, sizeof long_secret, &a, &b, mac);
  CHECK(hs_mac_verify(long_secret, sizeof long_secret, &a, &b, mac) ==
        HS_ACCEPTED);
  CHECK(hs_mac_verify(long_secret, sizeof long_secret - 1, &a, &b, mac) ==
        HS_REFUSED_AUTH);
}

static void handshake_mac_matches_hmac_sha256_of_the_transcript(void) {
  /* The transcript is specified byte by byte in docs/wire.md; rebuild it
   * here and MAC it with libsodium's one-shot HMAC (32-byte key) to pin the
   * layout, so that another implementation can interoperate. */
  CHECK(sodium_init() >= 0);
  uint8_t key[crypto_auth_hmacsha256_KEYBYTES];
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t)i;
  struct hs_hello a = hello(0x01020304, "c1", "raft", true, 0x11);
  struct hs_hello b = hello(7, "c1", "raft", true, 0x22);
  uint8_t t[128];
  size_t n = 0;
  memcpy(t + n, "sabha-auth-v2", 13);
  n += 13;
  le_put_u32(t + n, a.node_id);
  le_put_u32(t + n + 4, b.node_id);
  n += 8;
  memcpy(t + n, a.nonce, 32);
  memcpy(t + n + 32, b.nonce, 32);
  n += 64;
  t[n++] = 2;
  memcpy(t + n, "c1", 2);
  n += 2;
  t[n++] = 4;
  memcpy(t + n, "raft", 4);
  n += 4;
  le_put_u64(t + n, a.settings);
  n += 8;
  uint8_t want[HS_MAC_BYTES], got[HS_MAC_BYTES];
  crypto_auth_hmacsha256(want, t, n, key);
  hs_mac(key, sizeof key, &a, &b, got);
  CHECK(memcmp(want, got, HS_MAC_BYTES) == 0);
}

static void handshake_auth_frames_round_trip_and_truncations_fail(void) {
  uint8_t mac[HS_MAC_BYTES], out[HS_MAC_BYTES];
  for (size_t i = 0; i < sizeof mac; i++)
    mac[i] = (uint8_t)(i * 3);
  uint8_t frame[HS_AUTH_FRAME_BYTES];
  hs_auth_encode(mac, frame);
  CHECK(hs_auth_decode(frame, sizeof frame, out) == HS_ACCEPTED);
  CHECK(memcmp(mac, out, sizeof mac) == 0);
  for (size_t len = 0; len < sizeof frame; len++)
    CHECK(hs_auth_decode(frame, len, out) == HS_REFUSED_MALFORMED);
  frame[5] = CODEC_KIND_HELLO;
  CHECK(hs_auth_decode(frame, sizeof frame, out) == HS_REFUSED_MALFORMED);
}

static void handshake_random_damage_never_crashes(void) {
  struct prng p;
  prng_seed(&p, 11);
  struct hs_hello h = hello(5, "some-cluster", "multipaxos", true, 3);
  uint8_t good[HS_HELLO_FRAME_BYTES_MAX];
  size_t n = hs_hello_encode(&h, good);
  int accepted = 0;
  for (int iter = 0; iter < 50000; iter++) {
    uint8_t f[HS_HELLO_FRAME_BYTES_MAX];
    memcpy(f, good, n);
    size_t len = n;
    int flips = (int)prng_range(&p, 1, 4);
    for (int i = 0; i < flips; i++)
      f[prng_below(&p, len)] ^= (uint8_t)prng_range(&p, 1, 255);
    if (prng_chance(&p, 0.3)) {
      len = prng_below(&p, len + 1);
      if (len >= CODEC_LENGTH_BYTES)
        le_put_u32(f, (uint32_t)(len - CODEC_LENGTH_BYTES));
    }
    uint8_t *copy = malloc(len > 0 ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, f, len);
    struct hs_hello out;
    int r = hs_hello_decode(copy, len, &out);
    uint8_t mac[HS_MAC_BYTES];
    int a = hs_auth_decode(copy, len, mac);
    free(copy);
    CHECK(r == HS_ACCEPTED || r == HS_REFUSED_MALFORMED ||
          r == HS_REFUSED_VERSION);
    CHECK(a == HS_ACCEPTED || a == HS_REFUSED_MALFORMED);
    if (r == HS_ACCEPTED) {
      accepted++;
      /* What is accepted re-encodes to the same bytes. */
      uint8_t again[HS_HELLO_FRAME_BYTES_MAX];
      CHECK(hs_hello_encode(&out, again) == len);
      CHECK(memcmp(again, f, len) == 0);
    }
  }
  CHECK(accepted > 0);
}

static const struct test tests[] = {
    TEST(handshake_hello_round_trips),
    TEST(handshake_every_truncation_of_a_hello_is_refused),
    TEST(handshake_other_versions_are_a_version_mismatch),
    TEST(handshake_malformed_hellos_are_refused),
    TEST(handshake_checks_name_the_reason),
    TEST(handshake_mac_proves_the_secret_one_way_only),
    TEST(handshake_mac_matches_hmac_sha256_of_the_transcript),
    TEST(handshake_auth_frames_round_trip_and_truncations_fail),
    TEST(handshake_random_damage_never_crashes),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
