/* TLS over bytes: OpenSSL's record layer for connections that libuv owns.
 *
 * libuv reads and writes the sockets; OpenSSL must never see one. So each
 * connection's SSL object sits between two memory BIOs: the host feeds the
 * bytes it read from the socket in (tls_conn_feed), asks for the handshake
 * to advance (tls_conn_handshake) or for plaintext (tls_conn_read), hands
 * plaintext to encrypt (tls_conn_write), and after every one of those calls
 * drains whatever OpenSSL wants sent (tls_conn_out_drain) to its own write
 * queue. Nothing here blocks, touches a file descriptor or keeps global
 * state of its own, and the same code serves every TLS connection sabhad
 * has: peers (transport.c, always mutual), clients and HTTP (server side,
 * client certificates as tls-auth-clients says) and forwarding links to
 * the leader (client side). Because it never does I/O, the unit tests run
 * two endpoints against each other in one process (tests/unit/test_tls.c).
 *
 * Policy, set once per context: TLS 1.2 or later, TLS 1.2 only with
 * ECDHE and an AEAD (AES-GCM or ChaCha20-Poly1305), no renegotiation, no
 * session tickets (sabha never resumes a session, so they would only cost
 * bytes), and every certificate the other side shows must chain to the
 * context's CA. A client always checks the
 * server's certificate; a server asks for the client's as `verify` says.
 * Which certificate is whose is the host's business: it reads the common
 * name (tls_conn_peer_cn) and decides. sabha's node certificates name their
 * node, "sabha-node-<id>" (tls_node_cn), which is what the transport checks.
 *
 * Certificates for a local cluster: tls_make_ca() and tls_make_cert() write
 * an EC P-256 CA and certificates it signs (the keys mode 0600), which is
 * how `sabha cluster start --tls` makes its own. */
#ifndef SABHA_NET_TLS_H
#define SABHA_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/codec.h"

/* "sabha-node-" and a u32, and the NUL. */
#define TLS_NODE_CN_BYTES_MAX 24u

/* What a session may hold of bytes it wants sent on its own (answers to
 * the peer's KeyUpdates, alerts, handshake flights) until the host drains
 * them: more than the largest handshake flight, far less than a peer that
 * asks for answers and never reads would make it hold. */
#define TLS_OWN_OUT_BYTES_MAX (64u << 10)

/* A session's buffer of bytes to send that grew past this for a large
 * write is freed once drained, and so is a host's buffer of ciphertext
 * once written: an idle connection that once carried a large reply must
 * not keep two copies of it for the rest of its life. */
#define TLS_OUT_KEEP_BYTES_MAX (64u << 10)

/* What a server asks of the other side's certificate. */
enum tls_verify {
  TLS_VERIFY_NONE,     /* asks for none (tls-auth-clients no) */
  TLS_VERIFY_OPTIONAL, /* asks; one that is shown must check out */
  TLS_VERIFY_REQUIRED, /* no certificate signed by the CA, no session */
};

enum tls_role {
  TLS_ROLE_SERVER, /* accepted the TCP connection */
  TLS_ROLE_CLIENT, /* dialed it; checks the server's certificate */
};

/* What a call made of the session. */
enum tls_status {
  TLS_OK = 0,
  TLS_AGAIN,  /* nothing more until more bytes arrive from the peer */
  TLS_CLOSED, /* the peer ended the session cleanly (close_notify) */
  TLS_FAILED, /* a failed handshake, a bad record or no memory: close the
                 connection; tls_conn_errmsg() says why */
};

struct tls_ctx_config {
  /* PEM files. The certificate (chain) and its key are optional together,
   * for a client that shows none; the CA is required. */
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
};

struct tls_ctx;  /* an SSL_CTX with sabha's policy */
struct tls_conn; /* one session */

/* Loads the files and checks that key and certificate match. Returns 0 and
 * sets *out, or SABHA_EINVAL (a file missing or unreadable, a key that is
 * not the certificate's) or SABHA_ENOMEM, with a message in err. */
int tls_ctx_new(struct tls_ctx **out, const struct tls_ctx_config *cfg,
                char *err, size_t err_size);
/* Frees a context. Sessions made from it hold their own reference, so this
 * may come before the last tls_conn_free(). NULL is ignored. */
void tls_ctx_free(struct tls_ctx *ctx);

/* A new session in `role`; `verify` matters only to a server. Returns NULL
 * when memory is short. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, enum tls_role role,
                              enum tls_verify verify);
/* NULL is ignored. */
void tls_conn_free(struct tls_conn *c);
/* A client that dialed one node in particular: its handshake completes
 * only if the server's certificate, besides chaining to the CA, has the
 * common name `cn` (at most TLS_NODE_CN_BYTES_MAX - 1 bytes); else it fails
 * (TLS_FAILED, the message names both). The CA signs every member's
 * certificate and the clients' too: without this, whoever holds any of
 * them answers for the node the client meant to reach. Call it before the
 * first tls_conn_handshake(). */
void tls_conn_expect_cn(struct tls_conn *c, const char *cn);

/* Bytes read from the socket (copied). Returns TLS_OK, or TLS_FAILED when
 * memory is short. */
int tls_conn_feed(struct tls_conn *c, const void *data, size_t n);
/* Advances the handshake with what was fed: TLS_OK once it is complete
 * (and on every later call), TLS_AGAIN, or TLS_FAILED (a peer that speaks
 * no TLS, a certificate that does not chain to the CA, more than
 * TLS_OWN_OUT_BYTES_MAX of the session's own bytes left undrained, ...). A
 * client's first call produces its ClientHello. */
int tls_conn_handshake(struct tls_conn *c);
bool tls_conn_ready(const struct tls_conn *c);
/* Decrypts up to `cap` bytes of plaintext into buf: TLS_OK with *n > 0,
 * TLS_AGAIN (*n = 0: no complete record yet), TLS_CLOSED or TLS_FAILED
 * (a bad record, or what the records asked the session to answer, with
 * what it wrote before, passed TLS_OWN_OUT_BYTES_MAX since the last
 * tls_conn_out_drain(): a peer that asks and does not read).
 * Finishes the handshake first if it is not yet complete. Call it until it
 * says TLS_AGAIN after each feed: a record left inside unread is not seen
 * again until more bytes arrive. */
int tls_conn_read(struct tls_conn *c, void *buf, size_t cap, size_t *n);
/* Encrypts all `n` bytes (the handshake must be complete). Returns TLS_OK
 * or TLS_FAILED. */
int tls_conn_write(struct tls_conn *c, const void *data, size_t n);
/* Appends every byte waiting to be sent to the peer (handshake flights,
 * records, alerts) to `b`. Returns 0 or SABHA_ENOMEM (nothing taken). The
 * session's own buffer, if it grew past TLS_OUT_KEEP_BYTES_MAX, is freed;
 * `b` is the host's to shrink (codec_buf_free) once written. */
int tls_conn_out_drain(struct tls_conn *c, struct codec_buf *b);
/* Bytes waiting to be sent. */
size_t tls_conn_out_bytes(const struct tls_conn *c);
/* Writes the common name of the peer's certificate into out (NUL-
 * terminated) and returns true; false when the peer showed none, or its
 * name does not fit. Meaningful once the handshake is complete. */
bool tls_conn_peer_cn(const struct tls_conn *c, char *out, size_t size);
/* Why the last call failed, for a log. */
const char *tls_conn_errmsg(const struct tls_conn *c);

/* The common name of node `id`'s certificate: "sabha-node-<id>". */
void tls_node_cn(uint32_t id, char out[TLS_NODE_CN_BYTES_MAX]);

/* Writes a new self-signed CA named `cn`: its certificate (PEM, mode 0644)
 * and its EC P-256 key (PEM, mode 0600), valid for ten years. Returns 0 or
 * SABHA_EIO with a message in err. */
int tls_make_ca(const char *cert_path, const char *key_path, const char *cn,
                char *err, size_t err_size);
/* What a certificate made by tls_make_cert() may be used for. */
enum tls_cert_use {
  /* A node's: shown as a server (every port) and as a client (its own
   * dials), with subjectAltName IP:127.0.0.1 and DNS:localhost. */
  TLS_CERT_NODE,
  /* A client's: shown as a client only, and naming no host. Signed by the
   * same CA as the nodes', so it must not be fit to serve: whoever holds
   * it could otherwise answer for a node to anyone who checks only the
   * CA (redis-cli, curl). */
  TLS_CERT_CLIENT,
};

/* Writes a certificate for `cn`, fit for `use`, signed by the CA in
 * ca_cert_path and ca_key_path, valid for ten years, and its new key (mode
 * 0600). Returns 0 or SABHA_EIO with a message in err. */
int tls_make_cert(const char *ca_cert_path, const char *ca_key_path,
                  const char *cn, enum tls_cert_use use, const char *cert_path,
                  const char *key_path, char *err, size_t err_size);

#endif
