/* Unit tests for TLS over memory BIOs (src/net/tls.c), without sockets.
 *
 * Two sessions in one process are joined by a pump that carries each one's
 * output to the other's input, as libuv would carry it over TCP. A client
 * and a server of one CA complete a handshake, each learns the other's
 * common name, and data crosses both ways intact, in pieces as large as a
 * snapshot chunk; a server or client of another CA is refused, a client
 * without a certificate is refused where one is required and let in where
 * it is optional, and plaintext sent to a server fails the session instead
 * of reaching the host. The certificates are made by tls_make_ca() and
 * tls_make_cert() in a temporary directory, which also shows that keys are
 * written mode 0600. Run with a test name as the argument to run only that
 * test. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "check.h"
#include "net/codec.h"
#include "net/tls.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
/* A handshake takes two round trips; a pump that goes this long is stuck. */
#define PUMP_ROUNDS_MAX 20

static char dir[64]; /* mkdtemp of a short template */

/* dir/name into out. */
static const char *path(char *out, const char *name) {
  snprintf(out, PATH_MAX, "%s/%s", dir, name);
  return out;
}

/* Makes two CAs ("ca" and "other") and, signed by "ca", the certificates
 * node1, node2 and client, and node9 signed by "other"; once per run. */
static bool make_pki(void) {
  if (dir[0] != '\0')
    return true;
  snprintf(dir, sizeof dir, "/tmp/sabha-test-tls-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return false;
  char err[512], a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], d[PATH_MAX];
  const struct {
    const char *ca, *name, *cn;
  } leaves[] = {{"ca", "node1", "sabha-node-1"},
                {"ca", "node2", "sabha-node-2"},
                {"ca", "client", "a client"},
                {"other", "node9", "sabha-node-9"}};
  if (tls_make_ca(path(a, "ca.crt"), path(b, "ca.key"), "sabha test CA", err,
                  sizeof err) != 0 ||
      tls_make_ca(path(a, "other.crt"), path(b, "other.key"), "another CA", err,
                  sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return false;
  }
  for (size_t i = 0; i < N(leaves); i++) {
    char ca_crt[64], ca_key[64], crt[64], key[64];
    snprintf(ca_crt, sizeof ca_crt, "%s.crt", leaves[i].ca);
    snprintf(ca_key, sizeof ca_key, "%s.key", leaves[i].ca);
    snprintf(crt, sizeof crt, "%s.crt", leaves[i].name);
    snprintf(key, sizeof key, "%s.key", leaves[i].name);
    enum tls_cert_use use =
        strcmp(leaves[i].name, "client") == 0 ? TLS_CERT_CLIENT : TLS_CERT_NODE;
    if (tls_make_cert(path(a, ca_crt), path(b, ca_key), leaves[i].cn, use,
                      path(c, crt), path(d, key), err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return false;
    }
  }
  return true;
}

static void remove_pki(void) {
  if (dir[0] == '\0')
    return;
  const char *names[] = {"ca.crt",    "ca.key",    "other.crt",  "other.key",
                         "node1.crt", "node1.key", "node2.crt",  "node2.key",
                         "node9.crt", "node9.key", "client.crt", "client.key"};
  char p[PATH_MAX];
  for (size_t i = 0; i < N(names); i++)
    unlink(path(p, names[i]));
  rmdir(dir);
}

/* A context trusting CA `ca` ("ca" or "other") and showing the certificate
 * `name` (NULL: none). */
static struct tls_ctx *ctx_of(const char *ca, const char *name) {
  char ca_file[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], n[64], err[512];
  snprintf(n, sizeof n, "%s.crt", ca);
  path(ca_file, n);
  struct tls_ctx_config cfg = {.ca_file = ca_file};
  if (name != NULL) {
    snprintf(n, sizeof n, "%s.crt", name);
    cfg.cert_file = path(crt, n);
    snprintf(n, sizeof n, "%s.key", name);
    cfg.key_file = path(key, n);
  }
  struct tls_ctx *ctx = NULL;
  if (tls_ctx_new(&ctx, &cfg, err, sizeof err) != 0)
    fprintf(stderr, "tls_ctx_new: %s\n", err);
  return ctx;
}

/* Carries what `from` wants sent into `to`. */
static bool carry(struct tls_conn *from, struct tls_conn *to) {
  struct codec_buf b;
  codec_buf_init(&b);
  bool ok = tls_conn_out_drain(from, &b) == 0 &&
            tls_conn_feed(to, b.data, b.size_bytes) == TLS_OK;
  codec_buf_free(&b);
  return ok;
}

/* Runs both handshakes to their end. Returns TLS_OK when both completed,
 * else TLS_FAILED with *failed set to the one that failed (the other may
 * see only the alert, or nothing). */
static int pump(struct tls_conn *client, struct tls_conn *server,
                struct tls_conn **failed) {
  *failed = NULL;
  for (int i = 0; i < PUMP_ROUNDS_MAX; i++) {
    int c = tls_conn_handshake(client);
    if (!carry(client, server))
      return TLS_FAILED;
    int s = tls_conn_handshake(server);
    if (!carry(server, client))
      return TLS_FAILED;
    if (c == TLS_FAILED || s == TLS_FAILED) {
      *failed = c == TLS_FAILED ? client : server;
      return TLS_FAILED;
    }
    if (c == TLS_OK && s == TLS_OK)
      return TLS_OK;
  }
  return TLS_AGAIN;
}

/* Reads everything `c` can decrypt into out (up to cap); returns the bytes. */
static size_t read_all(struct tls_conn *c, uint8_t *out, size_t cap) {
  size_t total = 0, n;
  while (total < cap &&
         tls_conn_read(c, out + total, cap - total, &n) == TLS_OK)
    total += n;
  return total;
}

static void tls_handshake_of_one_ca_completes_and_names_both_ends(void) {
  CHECK(make_pki());
  struct tls_ctx *cc = ctx_of("ca", "node2"), *sc = ctx_of("ca", "node1");
  CHECK(cc != NULL && sc != NULL);
  struct tls_conn *client = tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
  struct tls_conn *server =
      tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_REQUIRED);
  /* Sessions hold their context: freeing it first is allowed. */
  tls_ctx_free(cc);
  tls_ctx_free(sc);
  CHECK(client != NULL && server != NULL);
  CHECK(!tls_conn_ready(client) && !tls_conn_ready(server));
  struct tls_conn *failed;
  int rc = pump(client, server, &failed);
  if (rc != TLS_OK && failed != NULL)
    fprintf(stderr, "%s\n", tls_conn_errmsg(failed));
  CHECK(rc == TLS_OK);
  CHECK(tls_conn_ready(client) && tls_conn_ready(server));
  char cn[64], expect[TLS_NODE_CN_BYTES_MAX];
  CHECK(tls_conn_peer_cn(client, cn, sizeof cn));
  tls_node_cn(1, expect);
  CHECK(strcmp(cn, expect) == 0);
  CHECK(tls_conn_peer_cn(server, cn, sizeof cn));
  CHECK(strcmp(cn, "sabha-node-2") == 0);
  /* A name that does not fit is no name, not a prefix of one. */
  CHECK(!tls_conn_peer_cn(server, cn, 5));
  tls_conn_free(client);
  tls_conn_free(server);
}

static void tls_data_crosses_both_ways_intact(void) {
  CHECK(make_pki());
  struct tls_ctx *cc = ctx_of("ca", NULL), *sc = ctx_of("ca", "node1");
  CHECK(cc != NULL && sc != NULL);
  struct tls_conn *client = tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
  struct tls_conn *server = tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_NONE);
  CHECK(client != NULL && server != NULL);
  struct tls_conn *failed;
  CHECK(pump(client, server, &failed) == TLS_OK);
  /* No certificate asked, none shown. */
  char cn[64];
  CHECK(!tls_conn_peer_cn(server, cn, sizeof cn));
  /* A request one way, then 1 MiB back (many records, as a snapshot
   * chunk would be). */
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  CHECK(tls_conn_write(client, ping, sizeof ping - 1) == TLS_OK);
  CHECK(tls_conn_out_bytes(client) > sizeof ping - 1); /* sealed, not sent */
  CHECK(carry(client, server));
  uint8_t got[64];
  CHECK(read_all(server, got, sizeof got) == sizeof ping - 1);
  CHECK(memcmp(got, ping, sizeof ping - 1) == 0);
  size_t big_bytes = 1u << 20;
  uint8_t *big = malloc(big_bytes), *back = malloc(big_bytes + 1);
  CHECK(big != NULL && back != NULL);
  for (size_t i = 0; i < big_bytes; i++)
    big[i] = (uint8_t)(i * 2654435761u >> 13);
  CHECK(tls_conn_write(server, big, big_bytes) == TLS_OK);
  CHECK(carry(server, client));
  size_t n = read_all(client, back, big_bytes + 1);
  bool same = n == big_bytes && memcmp(big, back, big_bytes) == 0;
  free(big);
  free(back);
  CHECK(same);
  /* Nothing more was sent: a read now waits. */
  CHECK(tls_conn_read(client, got, sizeof got, &n) == TLS_AGAIN && n == 0);
  tls_conn_free(client);
  tls_conn_free(server);
  tls_ctx_free(cc);
  tls_ctx_free(sc);
}

static void tls_server_of_another_ca_is_refused_by_the_client(void) {
  CHECK(make_pki());
  struct tls_ctx *cc = ctx_of("ca", "node2"), *sc = ctx_of("other", "node9");
  CHECK(cc != NULL && sc != NULL);
  struct tls_conn *client = tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
  struct tls_conn *server =
      tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_OPTIONAL);
  CHECK(client != NULL && server != NULL);
  struct tls_conn *failed;
  CHECK(pump(client, server, &failed) == TLS_FAILED);
  CHECK(failed == client);
  CHECK(strstr(tls_conn_errmsg(client), "certificate") != NULL);
  CHECK(!tls_conn_ready(client));
  tls_conn_free(client);
  tls_conn_free(server);
  tls_ctx_free(cc);
  tls_ctx_free(sc);
}

static void tls_client_of_another_ca_is_refused_by_the_server(void) {
  CHECK(make_pki());
  /* The client trusts the server's CA, but shows a certificate of
   * another: a stranger with a certificate of its own making. */
  struct tls_ctx *cc = ctx_of("ca", "node9"), *sc = ctx_of("ca", "node1");
  CHECK(cc != NULL && sc != NULL);
  struct tls_conn *client = tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
  struct tls_conn *server =
      tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_REQUIRED);
  CHECK(client != NULL && server != NULL);
  struct tls_conn *failed;
  CHECK(pump(client, server, &failed) == TLS_FAILED);
  CHECK(failed == server);
  CHECK(!tls_conn_ready(server));
  uint8_t buf[16];
  size_t n;
  CHECK(tls_conn_read(server, buf, sizeof buf, &n) == TLS_FAILED);
  tls_conn_free(client);
  tls_conn_free(server);
  tls_ctx_free(cc);
  tls_ctx_free(sc);
}

static void tls_client_without_a_certificate_is_refused_only_if_required(void) {
  CHECK(make_pki());
  struct tls_ctx *cc = ctx_of("ca", NULL), *sc = ctx_of("ca", "node1");
  CHECK(cc != NULL && sc != NULL);
  const enum tls_verify modes[] = {TLS_VERIFY_REQUIRED, TLS_VERIFY_OPTIONAL};
  for (size_t i = 0; i < N(modes); i++) {
    struct tls_conn *client =
        tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
    struct tls_conn *server = tls_conn_new(sc, TLS_ROLE_SERVER, modes[i]);
    CHECK(client != NULL && server != NULL);
    struct tls_conn *failed;
    int rc = pump(client, server, &failed);
    bool ready = tls_conn_ready(server);
    tls_conn_free(client);
    tls_conn_free(server);
    if (modes[i] == TLS_VERIFY_REQUIRED)
      CHECK(rc == TLS_FAILED && failed == server && !ready);
    else
      CHECK(rc == TLS_OK && ready);
  }
  tls_ctx_free(cc);
  tls_ctx_free(sc);
}

static void tls_plaintext_to_a_server_fails_the_session(void) {
  CHECK(make_pki());
  struct tls_ctx *sc = ctx_of("ca", "node1");
  CHECK(sc != NULL);
  static const char *const plain[] = {
      "*1\r\n$4\r\nPING\r\n", /* redis-cli without --tls */
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
      "PING\r\n",
  };
  for (size_t i = 0; i < N(plain); i++) {
    struct tls_conn *server =
        tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_NONE);
    CHECK(server != NULL);
    CHECK(tls_conn_feed(server, plain[i], strlen(plain[i])) == TLS_OK);
    uint8_t buf[64];
    size_t n = 99;
    int rc = tls_conn_read(server, buf, sizeof buf, &n);
    tls_conn_free(server);
    CHECK(rc == TLS_FAILED && n == 0);
  }
  tls_ctx_free(sc);
}

/* A client that dialed node 2 takes no other certificate of the CA: node
 * 1's fails the handshake with both names said, node 2's passes. */
static void
tls_client_that_expects_a_node_refuses_another_nodes_certificate(void) {
  CHECK(make_pki());
  struct tls_ctx *cc = ctx_of("ca", NULL);
  CHECK(cc != NULL);
  const char *servers[] = {"node1", "node2"};
  for (size_t i = 0; i < N(servers); i++) {
    struct tls_ctx *sc = ctx_of("ca", servers[i]);
    CHECK(sc != NULL);
    struct tls_conn *client =
        tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
    struct tls_conn *server =
        tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_NONE);
    tls_ctx_free(sc);
    CHECK(client != NULL && server != NULL);
    char want[TLS_NODE_CN_BYTES_MAX];
    tls_node_cn(2, want);
    tls_conn_expect_cn(client, want);
    struct tls_conn *failed;
    int rc = pump(client, server, &failed);
    bool ready = tls_conn_ready(client);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", tls_conn_errmsg(client));
    /* Nothing can be read or written through a refused session. */
    uint8_t buf[16];
    size_t n = 99;
    int again = tls_conn_read(client, buf, sizeof buf, &n);
    tls_conn_free(client);
    tls_conn_free(server);
    if (i + 1 < N(servers)) {
      CHECK(rc == TLS_FAILED && failed == client && !ready);
      CHECK(strstr(msg, "sabha-node-2") != NULL);
      CHECK(again == TLS_FAILED && n == 0);
    } else {
      CHECK(rc == TLS_OK && ready);
    }
  }
  tls_ctx_free(cc);
}

/* A handshake between a client showing certificate `client_name` and a
 * server showing `server_name` (both of CA "ca"; NULL: none) that asks as
 * `verify` says. Returns what pump() returns, sets *client_failed, and
 * copies the client's message and the common name the server saw. */
static int handshake_of(const char *client_name, const char *server_name,
                        enum tls_verify verify, bool *client_failed,
                        char *client_msg, char *server_saw, size_t size) {
  struct tls_ctx *cc = ctx_of("ca", client_name);
  struct tls_ctx *sc = ctx_of("ca", server_name);
  struct tls_conn *client =
      cc != NULL ? tls_conn_new(cc, TLS_ROLE_CLIENT, TLS_VERIFY_NONE) : NULL;
  struct tls_conn *server =
      sc != NULL ? tls_conn_new(sc, TLS_ROLE_SERVER, verify) : NULL;
  tls_ctx_free(cc);
  tls_ctx_free(sc);
  int rc = TLS_FAILED;
  struct tls_conn *failed = NULL;
  if (client != NULL && server != NULL)
    rc = pump(client, server, &failed);
  *client_failed = client != NULL && failed == client;
  snprintf(client_msg, size, "%s",
           client != NULL ? tls_conn_errmsg(client) : "");
  if (server == NULL || !tls_conn_peer_cn(server, server_saw, size))
    server_saw[0] = '\0';
  tls_conn_free(client);
  tls_conn_free(server);
  return rc;
}

/* The clients' certificate is of the CA too, but for clients only: shown
 * by a server, a client refuses it, so that whoever holds it cannot answer
 * for a node to redis-cli, curl or a forwarding link; shown by a client,
 * a server that asks for one takes it. */
static void tls_client_certificate_cannot_serve(void) {
  CHECK(make_pki());
  bool client_failed;
  char msg[64], saw[64];
  int rc = handshake_of(NULL, "client", TLS_VERIFY_NONE, &client_failed, msg,
                        saw, sizeof saw);
  CHECK(rc == TLS_FAILED && client_failed);
  CHECK(strstr(msg, "certificate") != NULL);
  rc = handshake_of("client", "node1", TLS_VERIFY_REQUIRED, &client_failed, msg,
                    saw, sizeof saw);
  CHECK(rc == TLS_OK && strcmp(saw, "a client") == 0);
}

/* A raw OpenSSL client of CA "ca" on memory BIOs, for what sabha's own
 * client never does (sending KeyUpdates). */
static SSL *raw_client_new(SSL_CTX **ctx_out) {
  char ca[PATH_MAX];
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL ||
      SSL_CTX_load_verify_locations(ctx, path(ca, "ca.crt"), NULL) != 1) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(rbio, -1);
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  *ctx_out = ctx;
  return ssl;
}

/* Carries what the raw client wants sent into `to`. */
static bool raw_carry(SSL *from, struct tls_conn *to) {
  char buf[16384];
  int n;
  while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0)
    if (tls_conn_feed(to, buf, (size_t)n) != TLS_OK)
      return false;
  return true;
}

/* Carries what `from` wants sent into the raw client. */
static bool raw_carry_back(struct tls_conn *from, SSL *to) {
  struct codec_buf b;
  codec_buf_init(&b);
  bool ok =
      tls_conn_out_drain(from, &b) == 0 &&
      (b.size_bytes == 0 || BIO_write(SSL_get_rbio(to), b.data,
                                      (int)b.size_bytes) == (int)b.size_bytes);
  codec_buf_free(&b);
  return ok;
}

/* TLS 1.2 is let in for older clients, with forward secrecy and an AEAD
 * only: a client that offers nothing but a CBC suite with SHA-1 (or a
 * static RSA key exchange, or no encryption at all) gets no session;
 * one that offers ECDHE with AES-GCM gets one. */
static void tls_server_refuses_tls12_suites_without_aead(void) {
  CHECK(make_pki());
  static const struct {
    const char *suites;
    bool taken;
  } offers[] = {{"ECDHE-ECDSA-AES128-SHA", false},
                {"ECDHE-ECDSA-AES256-SHA384", false},
                {"ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0", false},
                {"ECDHE-ECDSA-AES128-GCM-SHA256", true}};
  struct tls_ctx *sc = ctx_of("ca", "node1");
  CHECK(sc != NULL);
  for (size_t i = 0; i < N(offers); i++) {
    SSL_CTX *rctx = NULL;
    SSL *client = raw_client_new(&rctx);
    CHECK(client != NULL);
    bool set = SSL_set_max_proto_version(client, TLS1_2_VERSION) == 1 &&
               SSL_set_cipher_list(client, offers[i].suites) == 1;
    struct tls_conn *server =
        tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_NONE);
    int hs = 0, st = TLS_AGAIN;
    for (int r = 0; set && server != NULL && r < PUMP_ROUNDS_MAX && hs != 1 &&
                    st != TLS_FAILED;
         r++) {
      hs = SSL_do_handshake(client);
      if (!raw_carry(client, server))
        break;
      st = tls_conn_handshake(server);
      if (!raw_carry_back(server, client))
        break;
    }
    bool done = hs == 1 && server != NULL && tls_conn_ready(server);
    tls_conn_free(server);
    SSL_free(client);
    SSL_CTX_free(rctx);
    if (done != offers[i].taken)
      fprintf(stderr, "offered %s: %s\n", offers[i].suites,
              done ? "taken" : "refused");
    CHECK(set && done == offers[i].taken);
  }
  tls_ctx_free(sc);
}

/* A client that asks for KeyUpdates and never reads makes the server
 * answer each with one of its own. Those answers wait for the host to
 * drain them; a host that does not (its write to the socket is stuck
 * behind a reader who reads nothing) must not hold them without end:
 * the session fails before its own unsent bytes pass the bound. */
static void
tls_session_fails_a_peer_that_makes_it_answer_without_reading(void) {
  CHECK(make_pki());
  struct tls_ctx *sc = ctx_of("ca", "node1");
  SSL_CTX *rctx = NULL;
  SSL *client = raw_client_new(&rctx);
  CHECK(sc != NULL && client != NULL);
  struct tls_conn *server = tls_conn_new(sc, TLS_ROLE_SERVER, TLS_VERIFY_NONE);
  CHECK(server != NULL);
  int hs = 0;
  for (int i = 0; i < PUMP_ROUNDS_MAX && hs != 1; i++) {
    hs = SSL_do_handshake(client);
    CHECK(raw_carry(client, server));
    CHECK(tls_conn_handshake(server) != TLS_FAILED);
    CHECK(raw_carry_back(server, client));
  }
  CHECK(hs == 1 && tls_conn_ready(server));
  size_t out_max = 0;
  int st = TLS_OK;
  /* 4 MiB of answers is far past any bound worth having. */
  for (int i = 0; i < 400000 && st != TLS_FAILED; i++) {
    CHECK(SSL_key_update(client, SSL_KEY_UPDATE_REQUESTED) == 1);
    /* A byte of data after each: a run of KeyUpdates alone might be cut
     * short by OpenSSL itself. */
    CHECK(SSL_write(client, "\n", 1) == 1);
    CHECK(raw_carry(client, server));
    uint8_t buf[64];
    size_t n;
    while ((st = tls_conn_read(server, buf, sizeof buf, &n)) == TLS_OK)
      ;
    size_t out = tls_conn_out_bytes(server);
    out_max = out > out_max ? out : out_max;
    if (out > (4u << 20))
      break;
  }
  fprintf(stderr, "the server held at most %zu bytes unsent\n", out_max);
  CHECK(st == TLS_FAILED);
  CHECK(out_max <= TLS_OWN_OUT_BYTES_MAX + (16u << 10));
  CHECK(strstr(tls_conn_errmsg(server), "does not read") != NULL);
  tls_conn_free(server);
  tls_ctx_free(sc);
  SSL_free(client);
  SSL_CTX_free(rctx);
}

static void tls_keys_are_written_for_their_owner_only(void) {
  CHECK(make_pki());
  char p[PATH_MAX];
  struct stat st;
  CHECK(stat(path(p, "ca.key"), &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(stat(path(p, "node1.key"), &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(stat(path(p, "node1.crt"), &st) == 0 && (st.st_mode & 0777) == 0644);
}

/* A key is written through a file of its own making: a "<key>.tmp" that
 * someone else placed first (a symlink to a file of theirs, or a file
 * they hold open) must not receive the key. */
static void tls_key_is_not_written_through_a_planted_file(void) {
  CHECK(make_pki());
  char crt[PATH_MAX], key[PATH_MAX], tmp[PATH_MAX], bait[PATH_MAX];
  char ca_crt[PATH_MAX], ca_key[PATH_MAX], err[512];
  path(bait, "bait");
  FILE *f = fopen(bait, "w");
  CHECK(f != NULL);
  fputs("theirs\n", f);
  fclose(f);
  CHECK(symlink(bait, path(tmp, "planted.key.tmp")) == 0);
  int rc = tls_make_cert(path(ca_crt, "ca.crt"), path(ca_key, "ca.key"),
                         "sabha-node-7", TLS_CERT_NODE,
                         path(crt, "planted.crt"), path(key, "planted.key"),
                         err, sizeof err);
  char got[64] = {0};
  f = fopen(bait, "r");
  CHECK(f != NULL && fgets(got, sizeof got, f) != NULL);
  fclose(f);
  CHECK(strcmp(got, "theirs\n") == 0); /* the key went elsewhere, or nowhere */
  struct stat st;
  if (rc == 0)
    CHECK(lstat(key, &st) == 0 && S_ISREG(st.st_mode) &&
          (st.st_mode & 0777) == 0600);
  unlink(tmp);
  unlink(key);
  unlink(crt);
  unlink(bait);
}

static void tls_context_refuses_missing_or_mismatched_files(void) {
  CHECK(make_pki());
  char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], err[512];
  struct tls_ctx *ctx = NULL;
  struct tls_ctx_config cfg = {.ca_file = path(ca, "nope.crt")};
  CHECK(tls_ctx_new(&ctx, &cfg, err, sizeof err) == SABHA_EINVAL);
  CHECK(ctx == NULL && strstr(err, "nope.crt") != NULL);
  /* node1's certificate with node2's key. */
  cfg = (struct tls_ctx_config){.ca_file = path(ca, "ca.crt"),
                                .cert_file = path(crt, "node1.crt"),
                                .key_file = path(key, "node2.key")};
  CHECK(tls_ctx_new(&ctx, &cfg, err, sizeof err) == SABHA_EINVAL);
  CHECK(ctx == NULL && strstr(err, "node2.key") != NULL);
  cfg.key_file = NULL;
  CHECK(tls_ctx_new(&ctx, &cfg, err, sizeof err) == SABHA_EINVAL);
  cfg = (struct tls_ctx_config){.cert_file = crt, .key_file = key};
  CHECK(tls_ctx_new(&ctx, &cfg, err, sizeof err) == SABHA_EINVAL);
}

static const struct test tests[] = {
    TEST(tls_handshake_of_one_ca_completes_and_names_both_ends),
    TEST(tls_data_crosses_both_ways_intact),
    TEST(tls_server_of_another_ca_is_refused_by_the_client),
    TEST(tls_client_of_another_ca_is_refused_by_the_server),
    TEST(tls_client_without_a_certificate_is_refused_only_if_required),
    TEST(tls_plaintext_to_a_server_fails_the_session),
    TEST(tls_client_that_expects_a_node_refuses_another_nodes_certificate),
    TEST(tls_client_certificate_cannot_serve),
    TEST(tls_server_refuses_tls12_suites_without_aead),
    TEST(tls_session_fails_a_peer_that_makes_it_answer_without_reading),
    TEST(tls_keys_are_written_for_their_owner_only),
    TEST(tls_key_is_not_written_through_a_planted_file),
    TEST(tls_context_refuses_missing_or_mismatched_files),
};

int main(int argc, char **argv) {
  int rc = test_main(tests, N(tests), argc, argv);
  remove_pki();
  return rc;
}
