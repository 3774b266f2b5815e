/* TLS over memory BIOs (see tls.h for what it promises).
 *
 * Each session is an SSL whose read BIO holds what the socket delivered and
 * whose write BIO collects what OpenSSL wants sent; both are BIO_s_mem, so
 * every OpenSSL call returns at once and "would block" only ever means "feed
 * me more". OpenSSL's error queue is per thread and outlives a call, so it is
 * cleared before each call and read right after a failure, into the
 * session's own message: a later session never reports an earlier one's
 * error.
 *
 * The certificate maker at the end is for local clusters and tests, not a
 * CA for production: EC P-256 keys, SHA-256 signatures, ten years. */
#include "net/tls.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sabha/error.h"

/* OpenSSL's calls take int sizes: larger buffers go in pieces. */
#define TLS_CALL_BYTES_MAX (1u << 30)
#define TLS_CERT_DAYS 3650L
#define TLS_12_SUITES "ECDHE+AESGCM:ECDHE+CHACHA20"

struct tls_ctx {
  SSL_CTX *ssl_ctx;
};

struct tls_conn {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  bool ready;       /* the handshake is complete */
  /* What the session wrote on its own (handshake flights, alerts, answers
   * to KeyUpdates) since the host last drained: bounded by
   * TLS_OWN_OUT_BYTES_MAX, for a peer that asks for answers and does not
   * read them would otherwise grow it without end, a KeyUpdate in, a
   * KeyUpdate out. What the host seals (tls_conn_write) is its own to
   * bound and does not count. */
  size_t own_out_bytes;
  char expect_cn[TLS_NODE_CN_BYTES_MAX]; /* "": any of the CA's */
  char errmsg[256];
};

/* The reason of the oldest error in OpenSSL's queue (the root cause; later
 * ones say what failed because of it), and the queue cleared. */
static void take_ssl_error(char *out, size_t size, const char *what) {
  unsigned long e = ERR_get_error();
  const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
  char code[32];
  if (reason == NULL) {
    snprintf(code, sizeof code, "error %lx", e);
    reason = e != 0 ? code : "no detail from OpenSSL";
  }
  snprintf(out, size, "%s: %s", what, reason);
  ERR_clear_error();
}

/* ---- contexts ------------------------------------------------------------ */

int tls_ctx_new(struct tls_ctx **out, const struct tls_ctx_config *cfg,
                char *err, size_t err_size) {
  assert(out != NULL && cfg != NULL);
  *out = NULL;
  if (cfg->ca_file == NULL || cfg->ca_file[0] == '\0') {
    snprintf(err, err_size, "TLS needs a CA certificate (tls-ca-cert-file)");
    return SABHA_EINVAL;
  }
  if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
    snprintf(err, err_size,
             "TLS needs a certificate and its key together "
             "(tls-cert-file and tls-key-file)");
    return SABHA_EINVAL;
  }
  ERR_clear_error();
  struct tls_ctx *ctx = calloc(1, sizeof *ctx);
  SSL_CTX *x = ctx != NULL ? SSL_CTX_new(TLS_method()) : NULL;
  if (x == NULL) {
    free(ctx);
    take_ssl_error(err, err_size, "cannot make a TLS context");
    return SABHA_ENOMEM;
  }
  ctx->ssl_ctx = x;
  /* TLS 1.0 and 1.1 are deprecated (RFC 8996). Renegotiation only ever
   * served to cause trouble; session tickets serve resumption, which
   * sabha's long-lived peer connections and short HTTP requests do not
   * use. The session id context is what OpenSSL demands of a server that
   * asks for client certificates. */
  SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
  /* TLS 1.2 with forward secrecy and an AEAD only, as TLS 1.3 has by
   * design: OpenSSL's default list also takes CBC suites with SHA-1 (the
   * padding oracles' home) and, with an RSA key, static RSA key exchange,
   * where one stolen key decrypts every recorded session. */
  if (SSL_CTX_set_cipher_list(x, TLS_12_SUITES) != 1) {
    take_ssl_error(err, err_size, "cannot set the TLS 1.2 cipher suites");
    tls_ctx_free(ctx);
    return SABHA_EINVAL;
  }
  SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(x, 0);
  SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(x, (const unsigned char *)"sabha", 5);
  /* Idle clients keep no read and write buffers: a thousand connections
   * should not cost 70 MiB. */
  SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
  const char *failed = NULL;
  if (SSL_CTX_load_verify_locations(x, cfg->ca_file, NULL) != 1) {
    failed = cfg->ca_file;
  } else if (cfg->cert_file != NULL) {
    if (SSL_CTX_use_certificate_chain_file(x, cfg->cert_file) != 1)
      failed = cfg->cert_file;
    else if (SSL_CTX_use_PrivateKey_file(x, cfg->key_file, SSL_FILETYPE_PEM) !=
                 1 ||
             SSL_CTX_check_private_key(x) != 1)
      failed = cfg->key_file;
  }
  if (failed == NULL) {
    /* A server names the CA it accepts, so that a client with several
     * certificates shows the right one. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
    if (names != NULL)
      SSL_CTX_set_client_CA_list(x, names);
  }
  if (failed != NULL) {
    char what[1100];
    snprintf(what, sizeof what, "TLS: cannot use %s", failed);
    take_ssl_error(err, err_size, what);
    tls_ctx_free(ctx);
    return SABHA_EINVAL;
  }
  *out = ctx;
  return 0;
}

void tls_ctx_free(struct tls_ctx *ctx) {
  if (ctx == NULL)
    return;
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx);
}

/* ---- sessions ------------------------------------------------------------ */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, enum tls_role role,
                              enum tls_verify verify) {
  assert(ctx != NULL);
  struct tls_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  ERR_clear_error();
  c->ssl = SSL_new(ctx->ssl_ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return NULL;
  }
  /* An empty read BIO means "nothing yet", not end of stream: the socket's
   * EOF reaches the host, not OpenSSL. */
  BIO_set_mem_eof_return(c->rbio, -1);
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  int mode = SSL_VERIFY_PEER;
  if (role == TLS_ROLE_CLIENT) {
    SSL_set_connect_state(c->ssl);
  } else {
    SSL_set_accept_state(c->ssl);
    if (verify == TLS_VERIFY_NONE)
      mode = SSL_VERIFY_NONE;
    else if (verify == TLS_VERIFY_REQUIRED)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_set_verify(c->ssl, mode, NULL);
  return c;
}

void tls_conn_free(struct tls_conn *c) {
  if (c == NULL)
    return;
  SSL_free(c->ssl); /* and both BIOs */
  free(c);
}

void tls_conn_expect_cn(struct tls_conn *c, const char *cn) {
  assert(!c->ready && strlen(cn) > 0 && strlen(cn) < sizeof c->expect_cn);
  snprintf(c->expect_cn, sizeof c->expect_cn, "%s", cn);
}

int tls_conn_feed(struct tls_conn *c, const void *data, size_t n) {
  const uint8_t *p = data;
  while (n > 0) {
    int piece = n > TLS_CALL_BYTES_MAX ? (int)TLS_CALL_BYTES_MAX : (int)n;
    ERR_clear_error();
    if (BIO_write(c->rbio, p, piece) != piece) {
      take_ssl_error(c->errmsg, sizeof c->errmsg, "out of memory");
      return TLS_FAILED;
    }
    p += piece;
    n -= (size_t)piece;
  }
  return TLS_OK;
}

/* What the return value `rv` of an SSL call means for the session. */
static int status_of(struct tls_conn *c, int rv, const char *what) {
  int e = SSL_get_error(c->ssl, rv);
  if (e == SSL_ERROR_WANT_READ)
    return TLS_AGAIN;
  if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(c->errmsg, sizeof c->errmsg, "the peer closed the session");
    ERR_clear_error();
    return TLS_CLOSED;
  }
  /* A certificate that did not check out is said as OpenSSL's verifier
   * says it ("unable to get local issuer certificate", ...): the error
   * queue would only say "certificate verify failed". */
  long v = SSL_get_verify_result(c->ssl);
  if (v != X509_V_OK) {
    snprintf(c->errmsg, sizeof c->errmsg, "%s: certificate refused: %s", what,
             X509_verify_cert_error_string(v));
    ERR_clear_error();
  } else {
    take_ssl_error(c->errmsg, sizeof c->errmsg, what);
  }
  return TLS_FAILED;
}

/* Counts what the call that began with `before` bytes waiting added to
 * them; false (the session failed) once the bound is passed. */
static bool own_out_within_bound(struct tls_conn *c, size_t before) {
  size_t after = BIO_ctrl_pending(c->wbio);
  assert(after >= before); /* only tls_conn_out_drain() takes bytes */
  c->own_out_bytes += after - before;
  if (c->own_out_bytes <= TLS_OWN_OUT_BYTES_MAX)
    return true;
  snprintf(c->errmsg, sizeof c->errmsg,
           "the peer does not read what the session must send (%zu bytes "
           "waiting, at most %u)",
           c->own_out_bytes, TLS_OWN_OUT_BYTES_MAX);
  ERR_clear_error();
  return false;
}

int tls_conn_handshake(struct tls_conn *c) {
  if (c->ready)
    return TLS_OK;
  ERR_clear_error();
  size_t before = BIO_ctrl_pending(c->wbio);
  int rv = SSL_do_handshake(c->ssl);
  if (!own_out_within_bound(c, before))
    return TLS_FAILED;
  if (rv == 1) {
    /* The chain checked out; whose certificate it is, is checked here
     * and not in a verify callback, so that the message can name it. The
     * session stays not ready, and every later call fails the same way. */
    char got[64];
    if (c->expect_cn[0] != '\0' && (!tls_conn_peer_cn(c, got, sizeof got) ||
                                    strcmp(got, c->expect_cn) != 0)) {
      snprintf(c->errmsg, sizeof c->errmsg,
               "TLS handshake: certificate refused: it names \"%s\", not "
               "\"%s\"",
               got, c->expect_cn);
      return TLS_FAILED;
    }
    c->ready = true;
    return TLS_OK;
  }
  int st = status_of(c, rv, "TLS handshake");
  /* A close_notify in the middle of a handshake is a refusal too. */
  return st == TLS_CLOSED ? TLS_FAILED : st;
}

bool tls_conn_ready(const struct tls_conn *c) {
  return c->ready;
}

int tls_conn_read(struct tls_conn *c, void *buf, size_t cap, size_t *n) {
  *n = 0;
  int st = tls_conn_handshake(c);
  if (st != TLS_OK)
    return st;
  if (cap == 0)
    return TLS_AGAIN;
  int want = cap > TLS_CALL_BYTES_MAX ? (int)TLS_CALL_BYTES_MAX : (int)cap;
  ERR_clear_error();
  size_t before = BIO_ctrl_pending(c->wbio);
  int rv = SSL_read(c->ssl, buf, want);
  if (!own_out_within_bound(c, before))
    return TLS_FAILED;
  if (rv > 0) {
    *n = (size_t)rv;
    return TLS_OK;
  }
  return status_of(c, rv, "TLS read");
}

int tls_conn_write(struct tls_conn *c, const void *data, size_t n) {
  assert(c->ready);
  const uint8_t *p = data;
  while (n > 0) {
    int piece = n > TLS_CALL_BYTES_MAX ? (int)TLS_CALL_BYTES_MAX : (int)n;
    ERR_clear_error();
    /* The write BIO grows as needed, so without partial writes enabled a
     * write takes all of `piece` or fails. */
    int rv = SSL_write(c->ssl, p, piece);
    if (rv != piece) {
      status_of(c, rv, "TLS write");
      return TLS_FAILED;
    }
    p += piece;
    n -= (size_t)piece;
  }
  return TLS_OK;
}

size_t tls_conn_out_bytes(const struct tls_conn *c) {
  return BIO_ctrl_pending(c->wbio);
}

int tls_conn_out_drain(struct tls_conn *c, struct codec_buf *b) {
  size_t n = BIO_ctrl_pending(c->wbio);
  if (n == 0)
    return 0;
  if (codec_buf_reserve(b, n) != 0)
    return SABHA_ENOMEM;
  c->own_out_bytes = 0;
  size_t drained = n;
  while (n > 0) {
    int piece = n > TLS_CALL_BYTES_MAX ? (int)TLS_CALL_BYTES_MAX : (int)n;
    int got = BIO_read(c->wbio, b->data + b->size_bytes, piece);
    assert(got == piece); /* a memory BIO gives what it said it has */
    b->size_bytes += (size_t)got;
    n -= (size_t)got;
  }
  /* A memory BIO keeps the room its largest burst took, read or not:
   * past the bound, an empty one takes its place (the SSL frees the
   * old). Without memory for it, the old one serves on. */
  if (drained > TLS_OUT_KEEP_BYTES_MAX) {
    BIO *fresh = BIO_new(BIO_s_mem());
    if (fresh != NULL) {
      SSL_set0_wbio(c->ssl, fresh);
      c->wbio = fresh;
    }
  }
  return 0;
}

bool tls_conn_peer_cn(const struct tls_conn *c, char *out, size_t size) {
  assert(size > 0);
  out[0] = '\0';
  X509 *cert = SSL_get0_peer_certificate(c->ssl);
  if (cert == NULL)
    return false;
  X509_NAME *name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0)
    return false;
  const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  int len = ASN1_STRING_length(s);
  const unsigned char *bytes = ASN1_STRING_get0_data(s);
  /* A name with a NUL inside would compare equal to its prefix. */
  if (len < 0 || (size_t)len >= size || memchr(bytes, '\0', (size_t)len))
    return false;
  memcpy(out, bytes, (size_t)len);
  out[len] = '\0';
  return true;
}

const char *tls_conn_errmsg(const struct tls_conn *c) {
  return c->errmsg;
}

void tls_node_cn(uint32_t id, char out[TLS_NODE_CN_BYTES_MAX]) {
  snprintf(out, TLS_NODE_CN_BYTES_MAX, "sabha-node-%u", id);
}

/* ---- making certificates ------------------------------------------------- */

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value);
  if (ext == NULL)
    return -1;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? 0 : -1;
}

/* A certificate for `key` named `cn`, signed by issuer_key: a CA when
 * `issuer` is NULL (self-signed), else a leaf fit for `use`. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer,
                      EVP_PKEY *issuer_key, enum tls_cert_use use) {
  X509 *x = X509_new();
  BIGNUM *serial = BN_new();
  bool ok = x != NULL && serial != NULL;
  /* A random positive 63-bit serial: two certificates of one CA must not
   * share one, and no registry of them is kept. */
  ok = ok && BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
       BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL;
  ok = ok && X509_set_version(x, X509_VERSION_3) == 1;
  /* An hour's grace for clocks a little behind. */
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
       X509_gmtime_adj(X509_getm_notAfter(x), TLS_CERT_DAYS * 86400L) != NULL;
  X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
  ok = ok &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                  (const unsigned char *)cn, -1, -1, 0) == 1;
  ok = ok && X509_set_issuer_name(
                 x, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1;
  ok = ok && X509_set_pubkey(x, key) == 1;
  if (ok) {
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    if (issuer == NULL) {
      ok =
          add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
          add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
          add_ext(x, &v3, NID_subject_key_identifier, "hash") == 0;
    } else {
      bool node = use == TLS_CERT_NODE;
      ok = add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
           add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") == 0 &&
           add_ext(x, &v3, NID_ext_key_usage,
                   node ? "serverAuth,clientAuth" : "clientAuth") == 0 &&
           (!node || add_ext(x, &v3, NID_subject_alt_name,
                             "IP:127.0.0.1,DNS:localhost") == 0) &&
           add_ext(x, &v3, NID_subject_key_identifier, "hash") == 0 &&
           add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") == 0;
    }
  }
  ok = ok && X509_sign(x, issuer_key, EVP_sha256()) > 0;
  BN_free(serial);
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

/* Writes a PEM file through a temporary one with `mode` set before the
 * first byte (a key must never be readable by others, even briefly), then
 * renames it into place. `key` or `cert`, not both. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert) {
  char tmp[PATH_MAX + 8];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return -1;
  /* A file of our own making: one placed there first (a symlink to a file
   * of someone else's, or a file they hold open) would get the key. A
   * leftover of ours goes first; one placed again meanwhile fails O_EXCL. */
  if (unlink(tmp) != 0 && errno != ENOENT)
    return -1;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                mode);
  if (fd < 0)
    return -1;
  if (fchmod(fd, mode) != 0) {
    close(fd);
    return -1;
  }
  FILE *f = fdopen(fd, "w");
  if (f == NULL) {
    close(fd);
    return -1;
  }
  int ok = key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                       : PEM_write_X509(f, cert);
  ok = ok == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (fclose(f) != 0)
    ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int write_pair(const char *cert_path, const char *key_path,
                      EVP_PKEY *key, X509 *cert, char *err, size_t err_size) {
  if (write_pem(key_path, 0600, key, NULL) != 0) {
    snprintf(err, err_size, "cannot write %s: %s", key_path, strerror(errno));
    return SABHA_EIO;
  }
  if (write_pem(cert_path, 0644, NULL, cert) != 0) {
    snprintf(err, err_size, "cannot write %s: %s", cert_path, strerror(errno));
    return SABHA_EIO;
  }
  return 0;
}

int tls_make_ca(const char *cert_path, const char *key_path, const char *cn,
                char *err, size_t err_size) {
  ERR_clear_error();
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *cert = key != NULL ? cert_new(key, cn, NULL, key, TLS_CERT_NODE) : NULL;
  int rc = SABHA_EIO;
  if (cert == NULL)
    take_ssl_error(err, err_size, "cannot make a CA certificate");
  else
    rc = write_pair(cert_path, key_path, key, cert, err, err_size);
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

static void *read_pem(const char *path, bool is_key, char *err,
                      size_t err_size) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  void *p = is_key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
                   : (void *)PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (p == NULL) {
    char what[PATH_MAX + 32];
    snprintf(what, sizeof what, "%s is no PEM %s", path,
             is_key ? "key" : "certificate");
    take_ssl_error(err, err_size, what);
  }
  return p;
}

int tls_make_cert(const char *ca_cert_path, const char *ca_key_path,
                  const char *cn, enum tls_cert_use use, const char *cert_path,
                  const char *key_path, char *err, size_t err_size) {
  ERR_clear_error();
  X509 *ca = read_pem(ca_cert_path, false, err, err_size);
  EVP_PKEY *ca_key =
      ca != NULL ? read_pem(ca_key_path, true, err, err_size) : NULL;
  int rc = SABHA_EIO;
  if (ca_key != NULL) {
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = key != NULL ? cert_new(key, cn, ca, ca_key, use) : NULL;
    if (cert == NULL)
      take_ssl_error(err, err_size, "cannot make a certificate");
    else
      rc = write_pair(cert_path, key_path, key, cert, err, err_size);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  EVP_PKEY_free(ca_key);
  X509_free(ca);
  return rc;
}
