/* The peer handshake: the two frames that open every peer connection, and
 * the proof that both ends know the cluster secret.
 *
 * Before two nodes exchange a single consensus message they must agree that
 * they speak the same protocol version, belong to the same cluster, run the
 * same engine, and (when a secret is configured) that each knows the secret.
 * A node that joined the wrong cluster, or runs Paxos among Raft nodes, would
 * otherwise corrupt the others' state with messages that parse but mean
 * something else. This module holds the pure part of that conversation:
 * encoding and strictly decoding the HELLO, AUTH and REFUSE frames and
 * computing the MAC. The transport (transport.c) drives it over sockets.
 *
 * The conversation. The dialer (D) speaks first; the listener (L) answers
 * only once it has checked D's HELLO, so that its answer is also its
 * acceptance, a stranger learns nothing about the cluster, and a refused
 * dialer never believes itself connected:
 *
 *   D -> L  HELLO {version, flags, id_D, nonce_D, cluster, engine, settings}
 *   L -> D  HELLO {version, flags, id_L, nonce_L, cluster, engine, settings}
 *   with a secret, L at once, D once L's AUTH checks out:
 *   L -> D  AUTH  {HMAC-SHA256(secret, "sabha-auth-v2" | id_L | id_D |
 *                              nonce_L | nonce_D | cluster | engine |
 *                              settings)}
 *
 * `settings` is a digest of the settings that decide replies and so must be
 * the same on every member (today the applications' dedup bound and
 * retention window and the number of groups, sabhad's --dedup-max,
 * --dedup-window-ms and --groups): replicas that disagree would answer the
 * same retried command differently, and one with a smaller bound could not
 * even restore the leader's snapshot. Peers that differ are refused
 * (SETTINGS), both logs say why, and no message passes between them.
 *   D -> L  AUTH  {the same with L and D swapped}
 *
 * Either side that refuses the other sends REFUSE {reason} (best effort)
 * and closes, so that both logs say why. One round trip without a secret,
 * one and a half with one.
 *
 * The MAC names its sender first, so a MAC cannot be reflected back to the
 * node that made it; each side's fresh nonce makes a recorded MAC useless on a
 * later connection. With a secret, the handshake also seeds the session
 * (session.h): from the secret and both nonces each direction gets a key,
 * and every later frame carries a tag under it, so that nobody who lacks the
 * secret can inject, alter, replay or reorder a frame on the connection.
 * Nothing is encrypted: an eavesdropper reads the messages (docs/security.md).
 * Protocol version 3 introduced the session tags, version 4 made them
 * Poly1305 tags (HMAC-SHA256 before) and added the bundles (codec.h).
 * Version 5 changes no byte: it marks replicated rules version 4 nodes do
 * not share (the applications' retry window and snapshot format 2, and
 * EXPIRE's conditions, whose entries a version 4 node skips as malformed),
 * which would let members of one cluster reach different states.
 * Version 6 changes no byte either: with a secret, its nodes' forwarding
 * links prove it on the client port (src/node/auth.c), which a version 5
 * leader would not ask for and a version 5 follower could not give. Nodes
 * of other versions are refused (VERSION). docs/wire.md has the byte
 * layout. */
#ifndef SABHA_NET_HANDSHAKE_H
#define SABHA_NET_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#define HS_PROTOCOL_VERSION 7u
#define HS_MAGIC "sabhanet" /* 8 bytes, no terminator on the wire */
#define HS_MAGIC_BYTES 8u
#define HS_NONCE_BYTES 32u
#define HS_MAC_BYTES 32u
#define HS_CLUSTER_ID_BYTES_MAX 64u
#define HS_ENGINE_BYTES_MAX 16u
/* HELLO flags. */
/* The sender has a secret, will send AUTH, and tags every frame after the
 * handshake. */
#define HS_FLAG_AUTH 1u
/* The largest frame a peer may send before the handshake completes. A
 * HELLO of any version keeps under it, so an unauthenticated peer can make
 * us buffer no more than this. */
#define HS_FRAME_BYTES_MAX 256u
#define HS_HELLO_FRAME_BYTES_MAX                                               \
  (64u + HS_CLUSTER_ID_BYTES_MAX + HS_ENGINE_BYTES_MAX)
#define HS_AUTH_FRAME_BYTES (6u + HS_MAC_BYTES)
#define HS_REFUSE_FRAME_BYTES 7u

/* Why a handshake was refused: one counter per reason in the transport's
 * stats, one sentence per reason in its log. */
#define HS_REFUSAL_MAP(X)                                                      \
  X(MALFORMED, "malformed handshake frame")                                    \
  X(VERSION, "protocol or format version mismatch")                            \
  X(CLUSTER, "cluster id mismatch")                                            \
  X(ENGINE, "engine mismatch")                                                 \
  X(NODE, "unknown or unexpected node id")                                     \
  X(AUTH, "authentication failed")                                             \
  X(TIMEOUT, "handshake timed out")                                            \
  X(LIMIT, "too many connections")                                             \
  X(SETTINGS, "settings every member must share differ")                       \
  X(TLS, "TLS handshake or certificate refused")

enum hs_refusal {
  HS_ACCEPTED = 0, /* not a refusal: functions below return it for "ok" */
#define HS_REFUSAL_ENUM(name, text) HS_REFUSED_##name,
  HS_REFUSAL_MAP(HS_REFUSAL_ENUM)
#undef HS_REFUSAL_ENUM
      HS_REFUSAL_COUNT
};

/* A static sentence for a reason (HS_ACCEPTED included). */
const char *hs_refusal_text(enum hs_refusal reason);

struct hs_hello {
  uint16_t protocol_version;
  uint16_t flags; /* HS_FLAG_* */
  uint32_t node_id;
  uint8_t nonce[HS_NONCE_BYTES];
  char cluster_id[HS_CLUSTER_ID_BYTES_MAX + 1]; /* NUL-terminated */
  char engine[HS_ENGINE_BYTES_MAX + 1];         /* NUL-terminated */
  uint64_t settings; /* see above; compared for equality only */
};

/* Writes h's HELLO frame to `out` (room for HS_HELLO_FRAME_BYTES_MAX) and
 * returns its size. h's strings must be 1..their max bytes long. */
size_t hs_hello_encode(const struct hs_hello *h, uint8_t *out);

/* Decodes the complete frame buf[0, len) as a HELLO. Returns HS_ACCEPTED (0);
 * HS_REFUSED_VERSION when the frame
 * or protocol version differs from ours, with out->protocol_version set
 * when it could be read; or HS_REFUSED_MALFORMED for anything else wrong:
 * length, kind, magic, string lengths, NUL bytes in strings, trailing
 * bytes. Never reads outside buf[0, len). */
int hs_hello_decode(const uint8_t *buf, size_t len, struct hs_hello *out);

/* Compares a decoded peer HELLO with ours. Returns HS_ACCEPTED or the reason
 * to refuse: VERSION, CLUSTER, ENGINE, SETTINGS, NODE (the peer claims our
 * own id) or AUTH (a secret configured on one side only). */
int hs_hello_check(const struct hs_hello *mine, const struct hs_hello *theirs);

/* Writes an AUTH frame carrying `mac` to `out` (HS_AUTH_FRAME_BYTES). */
void hs_auth_encode(const uint8_t mac[HS_MAC_BYTES], uint8_t *out);
/* Decodes the complete frame buf[0, len) as an AUTH. Returns HS_ACCEPTED
 * or HS_REFUSED_MALFORMED. */
int hs_auth_decode(const uint8_t *buf, size_t len, uint8_t mac[HS_MAC_BYTES]);

/* Writes a REFUSE frame carrying `reason` to `out` (HS_REFUSE_FRAME_BYTES).
 * Its layout is frozen for every version (like a HELLO's first 16 bytes),
 * so that a node can always tell a peer of another version why it closed. */
void hs_refuse_encode(enum hs_refusal reason, uint8_t *out);
/* Decodes the complete frame buf[0, len) as a REFUSE, whatever its version
 * byte. Returns HS_ACCEPTED with *reason set (HS_REFUSED_MALFORMED when the
 * peer named a reason this version does not know), or HS_REFUSED_MALFORMED
 * when it is no REFUSE. */
int hs_refuse_decode(const uint8_t *buf, size_t len, enum hs_refusal *reason);

/* The MAC that `sender` sends to `receiver`: HMAC-SHA256 keyed with the
 * secret over the transcript above. Both HELLOs carry the same cluster and
 * engine by the time a MAC is made (hs_hello_check passed), so the sender's
 * are used. */
/* An HMAC-SHA256 under the secret started over `label`, both node ids and
 * both nonces (sender's first): what the handshake's MAC and the session
 * keys (net/session.h) both begin with. `state` is a
 * crypto_auth_hmacsha256_state (libsodium), passed as void * so that this
 * header needs no libsodium. */
void hs_hmac_begin(void *state, const uint8_t *secret, size_t secret_bytes,
                   const char *label, const struct hs_hello *sender,
                   const struct hs_hello *receiver);
void hs_mac(const uint8_t *secret, size_t secret_bytes,
            const struct hs_hello *sender, const struct hs_hello *receiver,
            uint8_t mac[HS_MAC_BYTES]);

/* Checks `mac` as the one `sender` should have sent `receiver`, in constant
 * time. Returns HS_ACCEPTED or HS_REFUSED_AUTH. */
int hs_mac_verify(const uint8_t *secret, size_t secret_bytes,
                  const struct hs_hello *sender,
                  const struct hs_hello *receiver,
                  const uint8_t mac[HS_MAC_BYTES]);

#endif
