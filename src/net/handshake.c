/* HELLO and AUTH frames and the handshake MAC (see handshake.h).
 *
 * The first 16 bytes of a HELLO (frame length, format version, kind, magic,
 * protocol version) are frozen for every future version, so that two nodes
 * of different versions can always tell each other "version mismatch"
 * instead of "malformed". Everything after them is parsed only when both
 * versions are ours. */
#include "net/handshake.h"

#include <assert.h>
#include <sodium.h>
#include <string.h>

#include "core/endian.h"
#include "net/codec.h"

/* Offsets inside a HELLO frame, length field included. */
enum {
  HELLO_OFF_MAGIC = 6,
  HELLO_OFF_PROTOCOL = 14,
  HELLO_OFF_FLAGS = 16,
  HELLO_OFF_NODE = 18,
  HELLO_OFF_NONCE = 22,
  HELLO_OFF_STRINGS = 54, /* u8 cluster length, cluster, u8 engine length,
                             engine, then u64 settings */
};

_Static_assert(HELLO_OFF_NONCE + HS_NONCE_BYTES == HELLO_OFF_STRINGS,
               "HELLO layout");
_Static_assert(HELLO_OFF_STRINGS + 2 + 8 == 64, "HS_HELLO_FRAME_BYTES_MAX");
_Static_assert(HS_HELLO_FRAME_BYTES_MAX <= HS_FRAME_BYTES_MAX,
               "a HELLO fits the pre-handshake frame limit");

#define MAC_LABEL "sabha-auth-v2"

const char *hs_refusal_text(enum hs_refusal reason) {
  switch (reason) {
  case HS_ACCEPTED:
    return "accepted";
#define HS_REFUSAL_CASE(name, text)                                            \
  case HS_REFUSED_##name:                                                      \
    return text;
    HS_REFUSAL_MAP(HS_REFUSAL_CASE)
#undef HS_REFUSAL_CASE
  case HS_REFUSAL_COUNT:
    break;
  }
  return "unknown reason";
}

/* Writes a string as u8 length + bytes; returns the bytes written. */
static size_t put_string(uint8_t *out, const char *s, size_t max) {
  size_t n = strlen(s);
  assert(n >= 1 && n <= max && n <= UINT8_MAX);
  out[0] = (uint8_t)n;
  memcpy(out + 1, s, n);
  return 1 + n;
}

size_t hs_hello_encode(const struct hs_hello *h, uint8_t *out) {
  assert(h != NULL && out != NULL);
  out[4] = CODEC_VERSION;
  out[5] = CODEC_KIND_HELLO;
  memcpy(out + HELLO_OFF_MAGIC, HS_MAGIC, HS_MAGIC_BYTES);
  le_put_u16(out + HELLO_OFF_PROTOCOL, h->protocol_version);
  le_put_u16(out + HELLO_OFF_FLAGS, h->flags);
  le_put_u32(out + HELLO_OFF_NODE, h->node_id);
  memcpy(out + HELLO_OFF_NONCE, h->nonce, HS_NONCE_BYTES);
  size_t n = HELLO_OFF_STRINGS;
  n += put_string(out + n, h->cluster_id, HS_CLUSTER_ID_BYTES_MAX);
  n += put_string(out + n, h->engine, HS_ENGINE_BYTES_MAX);
  le_put_u64(out + n, h->settings);
  n += 8;
  assert(n <= HS_HELLO_FRAME_BYTES_MAX);
  le_put_u32(out, (uint32_t)(n - CODEC_LENGTH_BYTES));
  return n;
}

/* Reads a u8-length string of 1..max bytes without NULs at *at, advancing
 * *at. Returns 0 or -1 when it does not fit buf[0, len) or is invalid. */
static int get_string(const uint8_t *buf, size_t len, size_t *at, char *out,
                      size_t max) {
  if (*at >= len)
    return -1;
  size_t n = buf[*at];
  if (n < 1 || n > max || n > len - *at - 1)
    return -1;
  const uint8_t *s = buf + *at + 1;
  if (memchr(s, 0, n) != NULL)
    return -1;
  memcpy(out, s, n);
  out[n] = '\0';
  *at += 1 + n;
  return 0;
}

int hs_hello_decode(const uint8_t *buf, size_t len, struct hs_hello *out) {
  assert(buf != NULL || len == 0);
  assert(out != NULL);
  memset(out, 0, sizeof *out);
  if (len < HELLO_OFF_FLAGS)
    return HS_REFUSED_MALFORMED;
  if (le_get_u32(buf) != len - CODEC_LENGTH_BYTES ||
      buf[5] != CODEC_KIND_HELLO ||
      memcmp(buf + HELLO_OFF_MAGIC, HS_MAGIC, HS_MAGIC_BYTES) != 0)
    return HS_REFUSED_MALFORMED;
  out->protocol_version = le_get_u16(buf + HELLO_OFF_PROTOCOL);
  if (buf[4] != CODEC_VERSION || out->protocol_version != HS_PROTOCOL_VERSION)
    return HS_REFUSED_VERSION;
  if (len < HELLO_OFF_STRINGS || len > HS_HELLO_FRAME_BYTES_MAX)
    return HS_REFUSED_MALFORMED;
  out->flags = le_get_u16(buf + HELLO_OFF_FLAGS);
  out->node_id = le_get_u32(buf + HELLO_OFF_NODE);
  memcpy(out->nonce, buf + HELLO_OFF_NONCE, HS_NONCE_BYTES);
  size_t at = HELLO_OFF_STRINGS;
  if (get_string(buf, len, &at, out->cluster_id, HS_CLUSTER_ID_BYTES_MAX) !=
          0 ||
      get_string(buf, len, &at, out->engine, HS_ENGINE_BYTES_MAX) != 0 ||
      len - at < 8)
    return HS_REFUSED_MALFORMED;
  out->settings = le_get_u64(buf + at);
  at += 8;
  /* Unknown flags are a malformed frame in this version, not something to
   * ignore: a later version that needs one must bump the protocol. */
  if ((out->flags & ~HS_FLAG_AUTH) != 0 || at != len)
    return HS_REFUSED_MALFORMED;
  return HS_ACCEPTED;
}

int hs_hello_check(const struct hs_hello *mine, const struct hs_hello *theirs) {
  assert(mine != NULL && theirs != NULL);
  if (mine->protocol_version != theirs->protocol_version)
    return HS_REFUSED_VERSION;
  if (strcmp(mine->cluster_id, theirs->cluster_id) != 0)
    return HS_REFUSED_CLUSTER;
  if (strcmp(mine->engine, theirs->engine) != 0)
    return HS_REFUSED_ENGINE;
  if (mine->settings != theirs->settings)
    return HS_REFUSED_SETTINGS;
  if (theirs->node_id == mine->node_id)
    return HS_REFUSED_NODE;
  if ((mine->flags & HS_FLAG_AUTH) != (theirs->flags & HS_FLAG_AUTH))
    return HS_REFUSED_AUTH;
  return HS_ACCEPTED;
}

void hs_auth_encode(const uint8_t mac[HS_MAC_BYTES], uint8_t *out) {
  le_put_u32(out, HS_AUTH_FRAME_BYTES - CODEC_LENGTH_BYTES);
  out[4] = CODEC_VERSION;
  out[5] = CODEC_KIND_AUTH;
  memcpy(out + 6, mac, HS_MAC_BYTES);
}

int hs_auth_decode(const uint8_t *buf, size_t len, uint8_t mac[HS_MAC_BYTES]) {
  assert(buf != NULL || len == 0);
  if (len != HS_AUTH_FRAME_BYTES ||
      le_get_u32(buf) != HS_AUTH_FRAME_BYTES - CODEC_LENGTH_BYTES ||
      buf[4] != CODEC_VERSION || buf[5] != CODEC_KIND_AUTH)
    return HS_REFUSED_MALFORMED;
  memcpy(mac, buf + 6, HS_MAC_BYTES);
  return HS_ACCEPTED;
}

void hs_refuse_encode(enum hs_refusal reason, uint8_t *out) {
  assert(reason > HS_ACCEPTED && reason < HS_REFUSAL_COUNT);
  le_put_u32(out, HS_REFUSE_FRAME_BYTES - CODEC_LENGTH_BYTES);
  out[4] = CODEC_VERSION;
  out[5] = CODEC_KIND_REFUSE;
  out[6] = (uint8_t)reason;
}

int hs_refuse_decode(const uint8_t *buf, size_t len, enum hs_refusal *reason) {
  assert(buf != NULL || len == 0);
  if (len != HS_REFUSE_FRAME_BYTES ||
      le_get_u32(buf) != HS_REFUSE_FRAME_BYTES - CODEC_LENGTH_BYTES ||
      buf[5] != CODEC_KIND_REFUSE)
    return HS_REFUSED_MALFORMED;
  *reason = buf[6] > HS_ACCEPTED && buf[6] < HS_REFUSAL_COUNT
                ? (enum hs_refusal)buf[6]
                : HS_REFUSED_MALFORMED;
  return HS_ACCEPTED;
}

static void mac_string(crypto_auth_hmacsha256_state *st, const char *s) {
  size_t n = strlen(s);
  assert(n <= UINT8_MAX);
  uint8_t len = (uint8_t)n;
  crypto_auth_hmacsha256_update(st, &len, 1);
  crypto_auth_hmacsha256_update(st, (const uint8_t *)s, n);
}

void hs_hmac_begin(void *state, const uint8_t *secret, size_t secret_bytes,
                   const char *label, const struct hs_hello *sender,
                   const struct hs_hello *receiver) {
  crypto_auth_hmacsha256_state *st = state;
  crypto_auth_hmacsha256_init(st, secret, secret_bytes);
  crypto_auth_hmacsha256_update(st, (const uint8_t *)label, strlen(label));
  uint8_t ids[8];
  le_put_u32(ids, sender->node_id);
  le_put_u32(ids + 4, receiver->node_id);
  crypto_auth_hmacsha256_update(st, ids, sizeof ids);
  crypto_auth_hmacsha256_update(st, sender->nonce, HS_NONCE_BYTES);
  crypto_auth_hmacsha256_update(st, receiver->nonce, HS_NONCE_BYTES);
}

void hs_mac(const uint8_t *secret, size_t secret_bytes,
            const struct hs_hello *sender, const struct hs_hello *receiver,
            uint8_t mac[HS_MAC_BYTES]) {
  assert(secret != NULL && secret_bytes > 0);
  _Static_assert(HS_MAC_BYTES == crypto_auth_hmacsha256_BYTES, "MAC size");
  /* The streaming interface takes a key of any length (HMAC hashes a long
   * one down itself), so the configured secret is the key as it stands. */
  crypto_auth_hmacsha256_state st;
  hs_hmac_begin(&st, secret, secret_bytes, MAC_LABEL, sender, receiver);
  mac_string(&st, sender->cluster_id);
  mac_string(&st, sender->engine);
  uint8_t settings[8];
  le_put_u64(settings, sender->settings);
  crypto_auth_hmacsha256_update(&st, settings, sizeof settings);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);
}

int hs_mac_verify(const uint8_t *secret, size_t secret_bytes,
                  const struct hs_hello *sender,
                  const struct hs_hello *receiver,
                  const uint8_t mac[HS_MAC_BYTES]) {
  uint8_t want[HS_MAC_BYTES];
  hs_mac(secret, secret_bytes, sender, receiver, want);
  int same = sodium_memcmp(want, mac, HS_MAC_BYTES) == 0;
  sodium_memzero(want, sizeof want);
  return same ? HS_ACCEPTED : HS_REFUSED_AUTH;
}
