/* The peer transport (see transport.h for what it promises).
 *
 * Each TCP connection is a struct transport_conn with a small life:
 *
 *   CONNECTING  (dialers only) waiting for connect();
 *   HELLO       the peer's HELLO awaited (a dialer has sent its own; a
 *               listener sends its own only once it accepts the dialer's);
 *   AUTH        (with a secret) the peer's AUTH awaited (a listener has sent
 *               its own; a dialer sends its own once the listener's checks
 *               out);
 *   ESTABLISHED message frames both ways; the peer's `conn`; with a
 *               secret, every frame sealed and opened with the session
 *               keys the handshake seeded (session.h);
 *   CLOSING     uv_close() called; freed when its handles are closed.
 *
 * A refusal (handshake.h lists the reasons) is counted, logged, told to the
 * peer in a REFUSE frame when the socket takes it at once, and closes.
 *
 * One timer per connection bounds CONNECTING + HELLO + AUTH. Bytes read go
 * to a receive buffer that holds at most one partial frame once complete
 * frames are handled; before the handshake completes, frames may not exceed
 * HS_FRAME_BYTES_MAX, so a stranger can make us hold only a few hundred
 * bytes. Bytes to write go to `pending`; when no write is in flight, pending
 * becomes `inflight` and is written in one uv_write(), so messages sent
 * while a write is in flight leave together in the next one. The two buffers
 * together are the send queue the bounds apply to.
 *
 * With TLS, each connection also has a session (tls.h) between the socket
 * and those buffers: bytes read are fed to it and what it decrypts lands in
 * the receive buffer, sized as above; `pending` holds plaintext until the
 * session is ready, and then each flush seals it into `inflight`, which
 * holds ciphertext (with whatever else the session has to send: its
 * handshake flights and alerts). The TLS handshake runs in state HELLO,
 * under the same deadline as the rest.
 *
 * Every handle's close is counted in handles_open so that transport_close()
 * can call its callback only when nothing of the transport is in use. */
#include "net/transport.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "net/session.h"

/* Room made for each read when no large frame is being assembled. */
#define RBUF_CHUNK_BYTES (64u << 10)
/* Buffers that grew beyond this for a burst or a large frame are freed
 * when they empty, so that one large snapshot chunk does not pin memory. */
#define BUF_KEEP_BYTES_MAX (1u << 20)
#define LISTEN_BACKLOG 64
#define KEEPALIVE_DELAY_S 10
/* Backoff doubles at most this often: 2^20 times the minimum is far beyond
 * any sensible maximum, and a bounded shift cannot overflow. */
#define BACKOFF_DOUBLINGS_MAX 20u
/* A message the codec refuses is logged at most once per this long: a
 * protocol that resends it would otherwise fill the log. */
#define TRANSPORT_TOO_BIG_LOG_MS 10000u

enum conn_state {
  CONN_CONNECTING,
  CONN_HELLO,
  CONN_AUTH,
  CONN_ESTABLISHED,
  CONN_CLOSING,
};

struct transport_conn {
  struct transport *t;
  struct transport_conn *prev, *next; /* in t->conns */
  uv_tcp_t tcp;
  uv_timer_t timer; /* handshake deadline */
  uv_connect_t connect_req;
  uv_write_t write_req;
  int handles_open; /* of tcp and timer */
  enum conn_state state;
  bool outbound;
  bool writing; /* write_req in flight */
  /* Outbound: the peer dialed, from the start. Inbound: the peer its HELLO
   * named, once checked. */
  struct transport_peer *peer;
  struct hs_hello mine, theirs;
  /* With a secret, from ESTABLISHED on: every frame we queue is sealed with
   * send_key, every frame we read must open with recv_key. */
  bool sealed;
  struct session_key send_key, recv_key;
  struct tls_conn *tls;  /* with TLS, from conn_start() on */
  struct codec_buf rbuf; /* bytes read (decrypted), not yet handled */
  struct codec_buf pending, inflight;
  uint32_t pending_msgs, inflight_msgs;
  /* Sealed, and corked or writing: the messages queued go into one bundle
   * (codec.h) that starts at bundle_at in `pending` and holds bundle_msgs
   * of them (0: none open); conn_flush() seals it. */
  size_t bundle_at;
  uint32_t bundle_msgs;
  char name[96]; /* for logs */
};

static void conn_close(struct transport_conn *c, const char *why);
static void conn_queue_raw(struct transport_conn *c, const uint8_t *bytes,
                           size_t n);
static void peer_schedule_dial(struct transport_peer *p);

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
tlog(struct transport *t, enum transport_log_level level, const char *fmt,
     ...) {
  /* Nothing is logged once closing: the transport promised that no
   * callback but the close callback fires after transport_close(). */
  if (t->cfg.on_log == NULL || t->closing)
    return;
  char text[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  t->cfg.on_log(t->cfg.arg, level, text);
}

void transport_config_init(struct transport_config *cfg, uint32_t id,
                           const char *cluster_id, const char *engine) {
  assert(cfg != NULL);
  memset(cfg, 0, sizeof *cfg);
  cfg->id = id;
  cfg->cluster_id = cluster_id;
  cfg->engine = engine;
  cfg->listen_host = "127.0.0.1";
  cfg->queue_bytes_max = 8u << 20;
  cfg->queue_msgs_max = 1024;
  cfg->backoff_ms_min = 50;
  cfg->backoff_ms_max = 2000;
  cfg->handshake_timeout_ms = 3000;
  cfg->seed = id;
  cfg->groups = 1;
}

const char *transport_errmsg(const struct transport *t) {
  return t->errmsg;
}

/* ---- handle bookkeeping ------------------------------------------------ */

static void transport_maybe_closed(struct transport *t) {
  if (!t->closing || t->handles_open > 0)
    return;
  free(t->scratch);
  t->scratch = NULL;
  free(t->tls_rbuf);
  t->tls_rbuf = NULL;
  sodium_memzero(t->secret, sizeof t->secret);
  /* Last: the callback may free t. */
  if (t->close_cb != NULL)
    t->close_cb(t);
}

static void on_listener_closed(uv_handle_t *h) {
  struct transport *t = h->data;
  assert(t->handles_open > 0);
  t->handles_open--;
  transport_maybe_closed(t);
}

static void on_peer_timer_closed(uv_handle_t *h) {
  struct transport_peer *p = h->data;
  struct transport *t = p->t;
  assert(t->handles_open > 0);
  t->handles_open--;
  transport_maybe_closed(t);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  struct transport_conn *c = h->data;
  struct transport *t = c->t;
  assert(c->handles_open > 0 && t->handles_open > 0);
  assert(c->state == CONN_CLOSING);
  c->handles_open--;
  t->handles_open--;
  if (c->handles_open == 0) {
    /* A write still in flight has had its callback (libuv cancels writes
     * before closing a stream), so the buffers are ours again. */
    assert(!c->writing);
    if (c->prev != NULL)
      c->prev->next = c->next;
    else
      t->conns = c->next;
    if (c->next != NULL)
      c->next->prev = c->prev;
    t->n_conns--;
    codec_buf_free(&c->rbuf);
    codec_buf_free(&c->pending);
    codec_buf_free(&c->inflight);
    session_key_wipe(&c->send_key);
    session_key_wipe(&c->recv_key);
    tls_conn_free(c->tls);
    free(c);
  }
  transport_maybe_closed(t);
}

/* ---- init and close ---------------------------------------------------- */

static int parse_addr(const char *host, uint16_t port,
                      struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (host == NULL)
    return SABHA_EINVAL;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
    return 0;
  return SABHA_EINVAL;
}

static int copy_string(char *dst, size_t dst_size, const char *src) {
  if (src == NULL)
    return SABHA_EINVAL;
  size_t n = strlen(src);
  if (n == 0 || n >= dst_size)
    return SABHA_EINVAL;
  memcpy(dst, src, n + 1);
  return 0;
}

static struct transport_peer *peer_find(struct transport *t, uint32_t id) {
  for (uint32_t i = 0; i < t->n_peers; i++)
    if (t->peers[i].id == id)
      return &t->peers[i];
  return NULL;
}

static int init_config(struct transport *t,
                       const struct transport_config *cfg) {
  t->cfg = *cfg;
  if (cfg->id == SABHA_NODE_NONE) {
    snprintf(t->errmsg, sizeof t->errmsg, "node id 0 is reserved");
    return SABHA_EINVAL;
  }
  if (copy_string(t->cluster_id, sizeof t->cluster_id, cfg->cluster_id) != 0 ||
      copy_string(t->listen_host, sizeof t->listen_host,
                  cfg->listen_host != NULL ? cfg->listen_host : "127.0.0.1") !=
          0) {
    snprintf(t->errmsg, sizeof t->errmsg,
             "cluster id must have 1..%u bytes; listen host must be set",
             HS_CLUSTER_ID_BYTES_MAX);
    return SABHA_EINVAL;
  }
  if (cfg->engine == NULL || codec_kind_of_engine(cfg->engine) < 0 ||
      copy_string(t->engine, sizeof t->engine, cfg->engine) != 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "unknown engine \"%s\"",
             cfg->engine != NULL ? cfg->engine : "(null)");
    return SABHA_EPROTO;
  }
  t->kind = (uint8_t)codec_kind_of_engine(cfg->engine);
  if (cfg->secret_bytes > TRANSPORT_SECRET_BYTES_MAX ||
      (cfg->secret_bytes > 0 && cfg->secret == NULL)) {
    snprintf(t->errmsg, sizeof t->errmsg, "a secret has 1..%u bytes",
             TRANSPORT_SECRET_BYTES_MAX);
    return SABHA_EINVAL;
  }
  if (cfg->secret_bytes > 0)
    memcpy(t->secret, cfg->secret, cfg->secret_bytes);
  if (cfg->tls_handshakes_per_second > RATE_PER_SECOND_MAX) {
    snprintf(t->errmsg, sizeof t->errmsg,
             "at most %u TLS handshakes per second", RATE_PER_SECOND_MAX);
    return SABHA_EINVAL;
  }
  t->cfg.cluster_id = t->cluster_id;
  t->cfg.engine = t->engine;
  t->cfg.listen_host = t->listen_host;
  t->cfg.secret = cfg->secret_bytes > 0 ? t->secret : NULL;
  t->cfg.peers = NULL; /* copied into t->peers */
  t->cfg.n_peers = 0;
  /* Zero means "the default", so a config that forgot a field works. */
  struct transport_config d;
  transport_config_init(&d, cfg->id, NULL, NULL);
  if (t->cfg.queue_bytes_max == 0)
    t->cfg.queue_bytes_max = d.queue_bytes_max;
  if (t->cfg.queue_msgs_max == 0)
    t->cfg.queue_msgs_max = d.queue_msgs_max;
  if (t->cfg.backoff_ms_min == 0)
    t->cfg.backoff_ms_min = d.backoff_ms_min;
  if (t->cfg.backoff_ms_max == 0)
    t->cfg.backoff_ms_max = d.backoff_ms_max;
  if (t->cfg.handshake_timeout_ms == 0)
    t->cfg.handshake_timeout_ms = d.handshake_timeout_ms;
  if (t->cfg.backoff_ms_min > t->cfg.backoff_ms_max) {
    snprintf(t->errmsg, sizeof t->errmsg, "backoff_ms_min > backoff_ms_max");
    return SABHA_EINVAL;
  }
  if (cfg->n_peers > SABHA_NODES_MAX - 1 ||
      (cfg->n_peers > 0 && cfg->peers == NULL)) {
    snprintf(t->errmsg, sizeof t->errmsg, "at most %u peers",
             SABHA_NODES_MAX - 1);
    return SABHA_EINVAL;
  }
  return 0;
}

/* A new peer in the next slot (the caller checked there is one), with its
 * dial timer. */
static struct transport_peer *peer_new(struct transport *t, uint32_t id,
                                       bool dial) {
  struct transport_peer *p = &t->peers[t->n_peers];
  memset(p, 0, sizeof *p);
  p->id = id;
  p->t = t;
  p->dial = dial;
  int rc = uv_timer_init(t->loop, &p->timer);
  assert(rc == 0); /* a timer cannot fail to initialize */
  (void)rc;
  p->timer.data = p;
  t->handles_open++;
  t->n_peers++;
  return p;
}

static int init_peers(struct transport *t, const struct transport_config *cfg) {
  for (uint32_t i = 0; i < cfg->n_peers; i++) {
    const struct transport_peer_config *pc = &cfg->peers[i];
    if (pc->id == SABHA_NODE_NONE || pc->id == cfg->id ||
        peer_find(t, pc->id) != NULL) {
      snprintf(t->errmsg, sizeof t->errmsg,
               "peer id %u is 0, this node's own, or listed twice", pc->id);
      return SABHA_EINVAL;
    }
    struct transport_peer *p = peer_new(t, pc->id, pc->id < cfg->id);
    if (p->dial && parse_addr(pc->host, pc->port, &p->addr) != 0) {
      snprintf(t->errmsg, sizeof t->errmsg,
               "peer %u: \"%s\" is not a numeric IPv4 or IPv6 address", pc->id,
               pc->host != NULL ? pc->host : "(null)");
      return SABHA_EINVAL;
    }
  }
  return 0;
}

static void on_connection(uv_stream_t *server, int status);
static void on_dial_timer(uv_timer_t *timer);

int transport_init(uv_loop_t *loop, struct transport *t,
                   const struct transport_config *cfg) {
  assert(loop != NULL && t != NULL && cfg != NULL);
  assert(cfg->on_message != NULL);
  memset(t, 0, sizeof *t);
  t->loop = loop;
  /* The listener handle exists from the first line, whatever fails later,
   * so that transport_close() always has a handle to close and its callback
   * always fires from the loop, never from inside a call. */
  int rc = uv_tcp_init(loop, &t->listener);
  assert(rc == 0); /* no socket is created yet: it cannot fail */
  t->listener.data = t;
  t->handles_open = 1;

  rc = init_config(t, cfg);
  if (rc == 0)
    rc = init_peers(t, cfg);
  if (rc != 0)
    return rc;
  prng_seed(&t->prng, t->cfg.seed);
  rate_bucket_init(&t->tls_members, cfg->tls_handshakes_per_second,
                   uv_now(loop));
  rate_bucket_init(&t->tls_strangers, cfg->tls_handshakes_per_second,
                   uv_now(loop));
  t->scratch = malloc(CODEC_ENTRIES_MAX * sizeof *t->scratch);
  if (cfg->tls != NULL)
    t->tls_rbuf = malloc(RBUF_CHUNK_BYTES);
  if (t->scratch == NULL || (cfg->tls != NULL && t->tls_rbuf == NULL)) {
    snprintf(t->errmsg, sizeof t->errmsg, "out of memory");
    return SABHA_ENOMEM;
  }
  if (sodium_init() < 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "libsodium failed to initialize");
    return SABHA_EIO;
  }
  struct sockaddr_storage addr;
  if (parse_addr(t->listen_host, t->cfg.listen_port, &addr) != 0) {
    snprintf(t->errmsg, sizeof t->errmsg,
             "listen host \"%s\" is not a numeric address", t->listen_host);
    return SABHA_EINVAL;
  }
  rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&t->listener, LISTEN_BACKLOG, on_connection);
  if (rc != 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "cannot listen on %s:%u: %s",
             t->listen_host, t->cfg.listen_port, uv_strerror(rc));
    return SABHA_EIO;
  }
  /* The first dials go out at once (from the loop, not from here). */
  for (uint32_t i = 0; i < t->n_peers; i++) {
    if (t->peers[i].dial)
      uv_timer_start(&t->peers[i].timer, on_dial_timer, 0, 0);
  }
  return 0;
}

int transport_add_peer(struct transport *t,
                       const struct transport_peer_config *pc) {
  if (t->closing || pc->id == SABHA_NODE_NONE || pc->id == t->cfg.id)
    return SABHA_EINVAL;
  bool dial = pc->id < t->cfg.id;
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  if (dial && parse_addr(pc->host, pc->port, &addr) != 0)
    return SABHA_EINVAL;
  struct transport_peer *p = peer_find(t, pc->id);
  if (p != NULL) {
    if (dial)
      p->addr = addr; /* the next dial goes there */
    return 0;
  }
  if (t->n_peers == SABHA_NODES_MAX - 1)
    return SABHA_EINVAL;
  p = peer_new(t, pc->id, dial);
  p->addr = addr;
  if (dial)
    uv_timer_start(&p->timer, on_dial_timer, 0, 0);
  return 0;
}

void transport_close(struct transport *t, transport_close_cb cb) {
  assert(t != NULL);
  assert(!t->closing); /* closing twice is a programmer error */
  t->closing = true;
  t->close_cb = cb;
  /* conn_close() unlinks nothing (the close callback does), so walking the
   * list while closing its members is safe. */
  for (struct transport_conn *c = t->conns; c != NULL; c = c->next)
    conn_close(c, "transport closing");
  uv_close((uv_handle_t *)&t->listener, on_listener_closed);
  for (uint32_t i = 0; i < t->n_peers; i++)
    uv_close((uv_handle_t *)&t->peers[i].timer, on_peer_timer_closed);
}

uint16_t transport_port(const struct transport *t) {
  struct sockaddr_storage addr;
  int len = (int)sizeof addr;
  if (t->closing ||
      uv_tcp_getsockname(&t->listener, (struct sockaddr *)&addr, &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
  return 0;
}

int transport_peer_info(const struct transport *t, uint32_t id,
                        struct transport_peer_info *out) {
  const struct transport_peer *p = peer_find((struct transport *)t, id);
  if (p == NULL)
    return SABHA_EINVAL;
  memset(out, 0, sizeof *out);
  out->connected = p->conn != NULL;
  out->attempts = p->attempts;
  if (p->conn != NULL) {
    out->queued_bytes =
        p->conn->pending.size_bytes + p->conn->inflight.size_bytes;
    out->queued_msgs = p->conn->pending_msgs + p->conn->inflight_msgs;
  }
  return 0;
}

/* ---- connections ------------------------------------------------------- */

static void on_handshake_timeout(uv_timer_t *timer);

static struct transport_conn *conn_new(struct transport *t) {
  struct transport_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->t = t;
  int rc = uv_tcp_init(t->loop, &c->tcp);
  assert(rc == 0);
  rc = uv_timer_init(t->loop, &c->timer);
  assert(rc == 0);
  (void)rc;
  c->tcp.data = c;
  c->timer.data = c;
  c->connect_req.data = c;
  c->write_req.data = c;
  c->handles_open = 2;
  t->handles_open += 2;
  c->next = t->conns;
  if (t->conns != NULL)
    t->conns->prev = c;
  t->conns = c;
  t->n_conns++;
  codec_buf_init(&c->rbuf);
  codec_buf_init(&c->pending);
  codec_buf_init(&c->inflight);
  uv_timer_start(&c->timer, on_handshake_timeout, t->cfg.handshake_timeout_ms,
                 0);
  return c;
}

static void count_dropped_conn_lost(struct transport *t, uint32_t n) {
  t->stats.msgs_dropped += n;
  t->stats.msgs_dropped_conn_lost += n;
}

/* Closes `c` for `why` (for the log). Idempotent. A dialer's peer gets its
 * next dial scheduled. */
static void conn_close(struct transport_conn *c, const char *why) {
  struct transport *t = c->t;
  if (c->state == CONN_CLOSING)
    return;
  c->state = CONN_CLOSING;
  struct transport_peer *p = c->peer;
  if (p != NULL && p->conn == c) {
    p->conn = NULL;
    assert(t->stats.peers_connected > 0);
    t->stats.peers_connected--;
    tlog(t, TRANSPORT_LOG_INFO, "lost connection to node %u: %s", p->id, why);
  } else {
    tlog(t, TRANSPORT_LOG_DEBUG, "closed connection %s: %s", c->name, why);
  }
  if (p != NULL && p->dialing == c)
    p->dialing = NULL;
  /* Queued messages die with the connection: resending them on the next
   * one would deliver stale votes and appends the engine has moved past. A
   * write in flight is counted by its callback, which libuv runs with
   * UV_ECANCELED before the handle closes. */
  count_dropped_conn_lost(t, c->pending_msgs);
  c->pending_msgs = 0;
  c->pending.size_bytes = 0;
  c->bundle_msgs = 0;
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  if (c->outbound && p != NULL && !t->closing && p->conn == NULL &&
      p->dialing == NULL)
    peer_schedule_dial(p);
}

/* Writes what the socket takes of `n` bytes now, without queueing. */
static void conn_try_write(struct transport_conn *c, const uint8_t *bytes,
                           size_t n) {
  if (n == 0 || n > UINT32_MAX)
    return;
  uv_buf_t b = uv_buf_init((char *)bytes, (unsigned int)n);
  int sent = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (sent > 0)
    c->t->stats.bytes_sent += (uint64_t)sent;
}

/* With TLS: seals `frame` when the session is ready (NULL: nothing to
 * seal), then tries to write whatever the session has to send, an alert
 * that says why its handshake failed included. Only when nothing else is
 * being written: libuv refuses a try-write behind a queued write, and
 * bytes of a session out of order would be garbage anyway. */
static void conn_try_write_tls(struct transport_conn *c, const uint8_t *frame,
                               size_t n) {
  if (c->writing)
    return;
  if (frame != NULL && tls_conn_ready(c->tls) &&
      tls_conn_write(c->tls, frame, n) != TLS_OK)
    return;
  struct codec_buf out;
  codec_buf_init(&out);
  if (tls_conn_out_drain(c->tls, &out) == 0)
    conn_try_write(c, out.data, out.size_bytes);
  codec_buf_free(&out);
}

static bool conn_from_member(struct transport_conn *c);

/* The WARN line of a refusal. A connection this node dialed, or one from
 * a member's address, is logged each time: backoff bounds how often they
 * come, and the operator must hear of a member that cannot join. Anyone
 * else may connect to be refused as fast as it can: within
 * TRANSPORT_REFUSED_LOG_LINES per TRANSPORT_REFUSED_LOG_MS, and the first
 * line of a later window says how many were left out. */
static void conn_refusal_log(struct transport_conn *c, enum hs_refusal reason,
                             const char *detail) {
  struct transport *t = c->t;
  if (!c->outbound && !conn_from_member(c)) {
    uint64_t skipped;
    bool take = log_window_take(&t->refused_log, uv_now(t->loop),
                                TRANSPORT_REFUSED_LOG_MS,
                                TRANSPORT_REFUSED_LOG_LINES, &skipped);
    if (skipped > 0)
      tlog(t, TRANSPORT_LOG_WARN,
           "%llu more refusals of connections from non-member addresses "
           "were not logged (at most %u every %u s)",
           (unsigned long long)skipped, TRANSPORT_REFUSED_LOG_LINES,
           TRANSPORT_REFUSED_LOG_MS / 1000u);
    if (!take)
      return;
  }
  tlog(t, TRANSPORT_LOG_WARN, "refused %s: %s (%s)", c->name,
       hs_refusal_text(reason), detail);
}

static void conn_refuse(struct transport_conn *c, enum hs_refusal reason,
                        const char *detail) {
  struct transport *t = c->t;
  assert(reason > HS_ACCEPTED && reason < HS_REFUSAL_COUNT);
  t->stats.handshakes_refused++;
  t->stats.refused[reason]++;
  conn_refusal_log(c, reason, detail);
  /* Tell the peer why, so that its log names the reason too. Best effort
   * and without waiting: uv_try_write() writes now or not at all, and a
   * refused peer gets no more of our time or memory. The close right after
   * still delivers the bytes written. */
  if (c->state != CONN_CONNECTING) {
    uint8_t frame[HS_REFUSE_FRAME_BYTES];
    hs_refuse_encode(reason, frame);
    /* With TLS configured, a connection refused before its session
     * started (LIMIT) gets nothing: plaintext would be garbage to it. */
    if (c->tls != NULL)
      conn_try_write_tls(c, frame, sizeof frame);
    else if (t->cfg.tls == NULL)
      conn_try_write(c, frame, sizeof frame);
  }
  conn_close(c, hs_refusal_text(reason));
}

static void conn_corrupt(struct transport_conn *c, const char *detail) {
  struct transport *t = c->t;
  t->stats.frames_corrupt++;
  tlog(t, TRANSPORT_LOG_WARN, "corrupt frame from node %u: %s",
       c->peer != NULL ? c->peer->id : 0, detail);
  conn_close(c, "corrupt frame");
}

static void on_write(uv_write_t *req, int status);
static void inflight_done(struct transport_conn *c, int status);

/* With TLS: seals `pending` into the session once it is ready, and moves
 * everything the session has to send to `inflight`. Returns false when
 * the connection closed. */
static bool conn_seal_pending(struct transport_conn *c) {
  if (tls_conn_ready(c->tls) && c->pending.size_bytes > 0) {
    if (tls_conn_write(c->tls, c->pending.data, c->pending.size_bytes) !=
        TLS_OK) {
      conn_close(c, tls_conn_errmsg(c->tls)); /* counts pending as lost */
      return false;
    }
    c->inflight_msgs = c->pending_msgs;
    c->pending_msgs = 0;
    c->pending.size_bytes = 0;
  }
  if (tls_conn_out_drain(c->tls, &c->inflight) != 0) {
    count_dropped_conn_lost(c->t, c->inflight_msgs);
    c->inflight_msgs = 0;
    conn_close(c, "out of memory");
    return false;
  }
  return true;
}

/* Seals the open bundle. One message alone goes as its own frame, exactly
 * as without a cork. Its room, tag included, was reserved as it grew. */
static void bundle_close(struct transport_conn *c) {
  if (c->bundle_msgs == 0)
    return;
  assert(c->sealed && c->bundle_at < c->pending.size_bytes);
  uint8_t *b = c->pending.data + c->bundle_at;
  size_t bytes = c->pending.size_bytes - c->bundle_at;
  if (c->bundle_msgs == 1) {
    memmove(b, b + CODEC_HEADER_BYTES, bytes - CODEC_HEADER_BYTES);
    bytes -= CODEC_HEADER_BYTES;
  } else {
    b[4] = CODEC_VERSION;
    b[5] = CODEC_KIND_BUNDLE;
    c->t->stats.bundles_sent++;
  }
  bytes += SESSION_TAG_BYTES;
  assert(c->bundle_at + bytes <= c->pending.cap_bytes);
  assert(bytes - CODEC_LENGTH_BYTES <=
         CODEC_PAYLOAD_BYTES_MAX + SESSION_TAG_BYTES);
  le_put_u32(b, (uint32_t)(bytes - CODEC_LENGTH_BYTES));
  session_seal(&c->send_key, b, bytes);
  c->pending.size_bytes = c->bundle_at + bytes;
  c->bundle_msgs = 0;
}

/* Starts writing `pending` (with TLS: sealed, and the session's own bytes)
 * if nothing is in flight. With try_first (the flush of a corked turn)
 * the bytes go straight to the socket when it takes them all: one syscall
 * and done, where a libuv write request would cost a callback a turn later
 * and a change to the poll registration when it drains. Without it, the
 * request stays in flight until that callback, and messages sent meanwhile
 * queue behind it (bounded by queue_msgs_max) and leave together. */
static void conn_flush_try(struct transport_conn *c, bool try_first) {
  bundle_close(c);
  if (c->writing || c->state == CONN_CLOSING || c->state == CONN_CONNECTING)
    return;
  assert(c->inflight.size_bytes == 0 && c->inflight_msgs == 0);
  if (c->tls != NULL) {
    if (!conn_seal_pending(c) || c->inflight.size_bytes == 0)
      return;
  } else {
    if (c->pending.size_bytes == 0)
      return;
    struct codec_buf swap = c->inflight;
    c->inflight = c->pending;
    c->pending = swap;
    c->inflight_msgs = c->pending_msgs;
    c->pending_msgs = 0;
  }
  assert(c->inflight.size_bytes <= UINT32_MAX);
  uv_buf_t b = uv_buf_init((char *)c->inflight.data,
                           (unsigned int)c->inflight.size_bytes);
  int sent = try_first ? uv_try_write((uv_stream_t *)&c->tcp, &b, 1) : 0;
  if (try_first && sent >= 0 && (size_t)sent == c->inflight.size_bytes) {
    inflight_done(c, 0);
    return;
  }
  size_t off = sent > 0 ? (size_t)sent : 0;
  b = uv_buf_init((char *)c->inflight.data + off,
                  (unsigned int)(c->inflight.size_bytes - off));
  int rc =
      sent < 0 && sent != UV_EAGAIN
          ? sent
          : uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc != 0) {
    inflight_done(c, rc);
    conn_close(c, uv_strerror(rc));
    return;
  }
  c->writing = true;
}

static void conn_flush(struct transport_conn *c) {
  conn_flush_try(c, false);
}

/* `inflight` is written (status 0) or lost with the connection. */
static void inflight_done(struct transport_conn *c, int status) {
  struct transport *t = c->t;
  if (status < 0) {
    count_dropped_conn_lost(t, c->inflight_msgs);
  } else {
    t->stats.bytes_sent += c->inflight.size_bytes;
    t->stats.msgs_sent += c->inflight_msgs;
  }
  c->inflight_msgs = 0;
  c->inflight.size_bytes = 0;
  if (c->inflight.cap_bytes > BUF_KEEP_BYTES_MAX)
    codec_buf_free(&c->inflight);
}

static void on_write(uv_write_t *req, int status) {
  struct transport_conn *c = req->data;
  assert(c->writing);
  c->writing = false;
  inflight_done(c, status);
  if (status < 0) {
    conn_close(c, uv_strerror(status));
    return;
  }
  conn_flush(c);
}

/* Queues handshake bytes. */
static void conn_queue_raw(struct transport_conn *c, const uint8_t *bytes,
                           size_t n) {
  if (codec_buf_reserve(&c->pending, n) != 0) {
    conn_close(c, "out of memory");
    return;
  }
  memcpy(c->pending.data + c->pending.size_bytes, bytes, n);
  c->pending.size_bytes += n;
  conn_flush(c);
}

/* ---- the handshake ----------------------------------------------------- */

static void conn_send_hello(struct transport_conn *c) {
  uint8_t frame[HS_HELLO_FRAME_BYTES_MAX];
  size_t n = hs_hello_encode(&c->mine, frame);
  conn_queue_raw(c, frame, n);
}

static void conn_send_auth(struct transport_conn *c) {
  struct transport *t = c->t;
  uint8_t mac[HS_MAC_BYTES];
  uint8_t frame[HS_AUTH_FRAME_BYTES];
  hs_mac(t->secret, t->cfg.secret_bytes, &c->mine, &c->theirs, mac);
  hs_auth_encode(mac, frame);
  conn_queue_raw(c, frame, sizeof frame);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* The connection is open: start reading, and say HELLO when we dialed (a
 * listener answers only a HELLO it accepts). */
static void conn_start(struct transport_conn *c) {
  struct transport *t = c->t;
  c->state = CONN_HELLO;
  /* Latency matters more than packet count for votes and heartbeats. And
   * keepalive lets the kernel notice, eventually (it probes after
   * KEEPALIVE_DELAY_S idle, then at the system's interval), a peer whose
   * host vanished while we had nothing to say to it: two followers may
   * exchange nothing for a long time. */
  uv_tcp_nodelay(&c->tcp, 1);
  uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_DELAY_S);
  struct hs_hello *h = &c->mine;
  memset(h, 0, sizeof *h);
  h->protocol_version = HS_PROTOCOL_VERSION;
  h->flags = t->cfg.secret_bytes > 0 ? HS_FLAG_AUTH : 0;
  h->node_id = t->cfg.id;
  randombytes_buf(h->nonce, sizeof h->nonce);
  memcpy(h->cluster_id, t->cluster_id, sizeof h->cluster_id);
  memcpy(h->engine, t->engine, sizeof h->engine);
  h->settings = t->cfg.settings;
  if (t->cfg.tls != NULL) {
    /* Peers always show each other a certificate: a stranger gets no
     * session, so not one byte of the handshake. */
    c->tls = tls_conn_new(t->cfg.tls,
                          c->outbound ? TLS_ROLE_CLIENT : TLS_ROLE_SERVER,
                          TLS_VERIFY_REQUIRED);
    if (c->tls == NULL) {
      conn_close(c, "out of memory");
      return;
    }
  }
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc != 0) {
    conn_close(c, uv_strerror(rc));
    return;
  }
  if (!c->outbound)
    return;
  /* The dialer speaks first: with TLS its ClientHello, while its HELLO
   * waits in `pending` for the session. */
  if (c->tls != NULL && tls_conn_handshake(c->tls) == TLS_FAILED) {
    conn_refuse(c, HS_REFUSED_TLS, tls_conn_errmsg(c->tls));
    return;
  }
  conn_send_hello(c);
}

static void conn_established(struct transport_conn *c) {
  struct transport *t = c->t;
  struct transport_peer *p = c->peer;
  assert(p != NULL);
  uv_timer_stop(&c->timer);
  if (p->conn != NULL) {
    /* Only a listener can see this: the peer dialed again, so it no
     * longer uses the old connection (it restarted, or lost it without our
     * noticing). The new one wins. */
    assert(!c->outbound);
    conn_close(p->conn, "replaced by a new connection");
  }
  if (p->dialing == c)
    p->dialing = NULL;
  if (t->cfg.secret_bytes > 0) {
    /* Both HELLOs are checked and both AUTHs proved the secret: from here
     * on a frame counts only if it carries the tag of this connection,
     * this direction and its place in the stream. */
    session_key_init(&c->send_key, t->secret, t->cfg.secret_bytes, &c->mine,
                     &c->theirs);
    session_key_init(&c->recv_key, t->secret, t->cfg.secret_bytes, &c->theirs,
                     &c->mine);
    c->sealed = true;
  }
  c->state = CONN_ESTABLISHED;
  int len = (int)sizeof p->seen;
  p->seen_valid =
      uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&p->seen, &len) == 0;
  p->conn = c;
  p->attempts = 0;
  t->stats.peers_connected++;
  t->stats.handshakes_completed++;
  tlog(t, TRANSPORT_LOG_INFO, "connected to node %u (%s)", p->id,
       c->outbound ? "dialed" : "accepted");
}

/* With TLS: the session proved that the peer holds a certificate of the
 * CA; a member's place takes the one that names the node the HELLO claims.
 * Refuses and returns false otherwise. */
static bool conn_certificate_names(struct transport_conn *c, uint32_t id) {
  char want[TLS_NODE_CN_BYTES_MAX], got[64], detail[160];
  tls_node_cn(id, want);
  if (tls_conn_peer_cn(c->tls, got, sizeof got) && strcmp(got, want) == 0)
    return true;
  snprintf(detail, sizeof detail,
           "node %u showed a certificate of the CA for \"%s\", not \"%s\"", id,
           got, want);
  conn_refuse(c, HS_REFUSED_TLS, detail);
  return false;
}

static void on_hello(struct transport_conn *c, const uint8_t *frame, size_t n) {
  struct transport *t = c->t;
  char detail[192];
  int r = hs_hello_decode(frame, n, &c->theirs);
  if (r == HS_REFUSED_VERSION) {
    snprintf(detail, sizeof detail,
             "peer speaks format %u protocol %u; we speak %u and %u", frame[4],
             c->theirs.protocol_version, CODEC_VERSION, HS_PROTOCOL_VERSION);
    conn_refuse(c, HS_REFUSED_VERSION, detail);
    return;
  }
  if (r != HS_ACCEPTED) {
    conn_refuse(c, (enum hs_refusal)r, "not a sabha HELLO");
    return;
  }
  const struct hs_hello *th = &c->theirs;
  r = hs_hello_check(&c->mine, th);
  switch (r) {
  case HS_ACCEPTED:
    break;
  case HS_REFUSED_CLUSTER:
    snprintf(detail, sizeof detail,
             "node %u is in cluster \"%s\", we in \"%s\"", th->node_id,
             th->cluster_id, c->mine.cluster_id);
    conn_refuse(c, HS_REFUSED_CLUSTER, detail);
    return;
  case HS_REFUSED_ENGINE:
    snprintf(detail, sizeof detail, "node %u runs \"%s\", we run \"%s\"",
             th->node_id, th->engine, c->mine.engine);
    conn_refuse(c, HS_REFUSED_ENGINE, detail);
    return;
  case HS_REFUSED_SETTINGS:
    snprintf(detail, sizeof detail,
             "node %u runs with settings %llu, we with %llu: every member "
             "must run with the same --dedup-max, --dedup-window-ms and "
             "--groups",
             th->node_id, (unsigned long long)th->settings,
             (unsigned long long)c->mine.settings);
    conn_refuse(c, HS_REFUSED_SETTINGS, detail);
    return;
  case HS_REFUSED_AUTH:
    snprintf(detail, sizeof detail, "a cluster secret is configured on %s",
             t->cfg.secret_bytes > 0 ? "this node but not on the peer"
                                     : "the peer but not on this node");
    conn_refuse(c, HS_REFUSED_AUTH, detail);
    return;
  default:
    snprintf(detail, sizeof detail, "peer claims id %u", th->node_id);
    conn_refuse(c, (enum hs_refusal)r, detail);
    return;
  }
  if (c->outbound) {
    if (th->node_id != c->peer->id) {
      snprintf(detail, sizeof detail, "dialed node %u, node %u answered",
               c->peer->id, th->node_id);
      conn_refuse(c, HS_REFUSED_NODE, detail);
      return;
    }
  } else {
    struct transport_peer *p = peer_find(t, th->node_id);
    if (p == NULL || p->dial) {
      snprintf(detail, sizeof detail,
               p == NULL ? "node %u is not a configured peer"
                         : "node %u has a lower id: we dial it, not it us",
               th->node_id);
      conn_refuse(c, HS_REFUSED_NODE, detail);
      return;
    }
    c->peer = p;
    snprintf(c->name, sizeof c->name, "node %u", p->id);
  }
  if (c->tls != NULL && !conn_certificate_names(c, th->node_id))
    return;
  /* Accepted. A listener answers now; with a secret, the listener also
   * proves it at once, the dialer only after checking the listener's
   * proof (so that it never hands a MAC to a node that has not shown it
   * knows the secret). */
  if (!c->outbound)
    conn_send_hello(c);
  if (c->state == CONN_CLOSING)
    return;
  if (t->cfg.secret_bytes == 0) {
    conn_established(c);
    return;
  }
  c->state = CONN_AUTH;
  if (!c->outbound)
    conn_send_auth(c);
}

static void on_auth(struct transport_conn *c, const uint8_t *frame, size_t n) {
  struct transport *t = c->t;
  uint8_t mac[HS_MAC_BYTES];
  if (hs_auth_decode(frame, n, mac) != HS_ACCEPTED) {
    conn_refuse(c, HS_REFUSED_MALFORMED, "expected AUTH");
    return;
  }
  if (hs_mac_verify(t->secret, t->cfg.secret_bytes, &c->theirs, &c->mine,
                    mac) != HS_ACCEPTED) {
    conn_refuse(c, HS_REFUSED_AUTH, "wrong MAC: the peer has another secret");
    return;
  }
  if (c->outbound)
    conn_send_auth(c);
  if (c->state == CONN_CLOSING)
    return;
  conn_established(c);
}

/* The peer sent REFUSE: it will close; say why in our log and stats. */
static void on_refuse(struct transport_conn *c, const uint8_t *frame,
                      size_t n) {
  struct transport *t = c->t;
  enum hs_refusal reason;
  if (hs_refuse_decode(frame, n, &reason) != HS_ACCEPTED) {
    conn_close(c, "malformed REFUSE");
    return;
  }
  t->stats.handshakes_refused_by_peer++;
  t->stats.refused_by_peer[reason]++;
  tlog(t, TRANSPORT_LOG_WARN, "%s refused us: %s (its log says more)", c->name,
       hs_refusal_text(reason));
  conn_close(c, "refused by the peer");
}

static void on_handshake_timeout(uv_timer_t *timer) {
  struct transport_conn *c = timer->data;
  if (c->state == CONN_ESTABLISHED || c->state == CONN_CLOSING)
    return;
  conn_refuse(c, HS_REFUSED_TIMEOUT,
              c->state == CONN_CONNECTING ? "connect did not complete"
                                          : "handshake did not complete");
}

/* ---- reading ----------------------------------------------------------- */

/* A frame whose session tag is wrong: forged, altered, replayed or out of
 * order. Nothing of it is used, and the stream after it cannot be trusted
 * to be in step: the connection closes (the dialer dials again, and a new
 * handshake starts a new session). */
static void conn_refuse_frame(struct transport_conn *c, size_t n) {
  struct transport *t = c->t;
  t->stats.frames_refused_mac++;
  tlog(t, TRANSPORT_LOG_WARN,
       "refused a frame of %zu bytes from node %u: its MAC is wrong (forged, "
       "altered, replayed or reordered on the way; frame %llu of the "
       "connection)",
       n, c->peer->id, (unsigned long long)c->recv_key.seq);
  conn_close(c, "a frame failed its MAC");
}

static void on_msg(struct transport_conn *c, const uint8_t *frame, size_t n);

static void on_msg_frame(struct transport_conn *c, uint8_t *frame, size_t n) {
  if (c->sealed) {
    if (session_open(&c->recv_key, frame, n) != 0) {
      conn_refuse_frame(c, n);
      return;
    }
    /* What is left without the tag is a codec frame once its length stops
     * counting the tag. The bytes are ours (the receive buffer) and are
     * not read again. */
    n -= SESSION_TAG_BYTES;
    le_put_u32(frame, (uint32_t)(n - CODEC_LENGTH_BYTES));
  }
  if (frame[5] != CODEC_KIND_BUNDLE) {
    on_msg(c, frame, n);
    return;
  }
  /* Each message of a bundle is held to the rules of a frame of its own;
   * the first one that breaks them closes the connection. */
  size_t at = 0;
  const uint8_t *inner = NULL;
  size_t inner_bytes = 0;
  int rc;
  while ((rc = codec_bundle_next(frame, n, &at, &inner, &inner_bytes)) == 1) {
    on_msg(c, inner, inner_bytes);
    if (c->state == CONN_CLOSING)
      return;
  }
  if (rc != 0)
    conn_corrupt(c, "a malformed bundle");
}

/* One message frame, frame[0, n), without a tag. */
static void on_msg(struct transport_conn *c, const uint8_t *frame, size_t n) {
  struct transport *t = c->t;
  char detail[128];
  if (frame[5] != t->kind) {
    snprintf(detail, sizeof detail, "kind %u where %u was expected", frame[5],
             t->kind);
    conn_corrupt(c, detail);
    return;
  }
  struct sabha_msg m;
  if (codec_decode(frame, n, &m, t->scratch, CODEC_ENTRIES_MAX) != 0) {
    conn_corrupt(c, "does not decode");
    return;
  }
  /* The handshake proved who is at the other end; a message that claims
   * another sender, or another addressee, is a bug or a forgery. */
  if (m.from != c->peer->id || m.to != t->cfg.id) {
    snprintf(detail, sizeof detail, "message from %u to %u", m.from, m.to);
    conn_corrupt(c, detail);
    return;
  }
  if (m.group >= t->cfg.groups) {
    snprintf(detail, sizeof detail, "group %u, of %u hosted here", m.group,
             t->cfg.groups);
    conn_corrupt(c, detail);
    return;
  }
  t->stats.msgs_received++;
  t->cfg.on_message(t->cfg.arg, &m);
}

/* Handles every complete frame in the receive buffer. */
static void conn_process(struct transport_conn *c) {
  struct codec_buf *rb = &c->rbuf;
  size_t off = 0;
  while (c->state != CONN_CLOSING) {
    assert(c->state != CONN_CONNECTING);
    size_t avail = rb->size_bytes - off;
    if (avail < CODEC_HEADER_BYTES)
      break;
    uint8_t *frame = rb->data + off;
    uint32_t payload_bytes = le_get_u32(frame);
    /* A stranger gets a few hundred bytes, a peer the codec's maximum (and
     * the tag). */
    uint32_t limit =
        c->state == CONN_ESTABLISHED
            ? CODEC_PAYLOAD_BYTES_MAX + (c->sealed ? SESSION_TAG_BYTES : 0)
            : HS_FRAME_BYTES_MAX - CODEC_LENGTH_BYTES;
    if (payload_bytes < 2 || payload_bytes > limit) {
      char detail[64];
      snprintf(detail, sizeof detail, "frame length %u", payload_bytes);
      if (c->state == CONN_ESTABLISHED)
        conn_corrupt(c, detail);
      else
        conn_refuse(c, HS_REFUSED_MALFORMED, detail);
      break;
    }
    size_t frame_bytes = CODEC_LENGTH_BYTES + (size_t)payload_bytes;
    if (avail < frame_bytes)
      break;
    off += frame_bytes;
    /* A REFUSE ends a handshake. Without a secret a listener counts as
     * established before the dialer has checked its HELLO, so it may still
     * hear one; with a secret nobody is established before both sides
     * accepted, and a frame without its tag is no word of the peer's. */
    if (frame[5] == CODEC_KIND_REFUSE && !c->sealed) {
      on_refuse(c, frame, frame_bytes);
      continue;
    }
    switch (c->state) {
    case CONN_HELLO:
      on_hello(c, frame, frame_bytes);
      break;
    case CONN_AUTH:
      on_auth(c, frame, frame_bytes);
      break;
    case CONN_ESTABLISHED:
      on_msg_frame(c, frame, frame_bytes);
      break;
    default:
      assert(0 && "no frames are read in this state");
    }
  }
  /* A closing connection keeps its buffer until freed: a callback up the
   * stack may still be reading from it. */
  if (c->state == CONN_CLOSING)
    return;
  assert(off <= rb->size_bytes);
  memmove(rb->data, rb->data + off, rb->size_bytes - off);
  rb->size_bytes -= off;
  if (rb->size_bytes == 0 && rb->cap_bytes > BUF_KEEP_BYTES_MAX)
    codec_buf_free(rb);
}

/* Makes room in the receive buffer for the next read (of the socket, or of
 * the TLS session) and sets *buf to it; a zero-length buffer when memory is
 * short. */
static void rbuf_room(struct transport_conn *c, uv_buf_t *buf) {
  struct codec_buf *rb = &c->rbuf;
  size_t room = RBUF_CHUNK_BYTES;
  /* conn_process() leaves at most one partial frame, whose length it has
   * checked once CODEC_HEADER_BYTES of it arrived: make room for exactly
   * the rest of it when it is large, so that the buffer never holds more
   * than the largest frame allowed. */
  if (rb->size_bytes >= CODEC_HEADER_BYTES) {
    size_t frame_bytes = CODEC_LENGTH_BYTES + (size_t)le_get_u32(rb->data);
    assert(frame_bytes <=
           CODEC_LENGTH_BYTES + CODEC_PAYLOAD_BYTES_MAX + SESSION_TAG_BYTES);
    if (frame_bytes > rb->size_bytes && frame_bytes - rb->size_bytes > room)
      room = frame_bytes - rb->size_bytes;
  }
  if (codec_buf_reserve_exact(rb, room) != 0) {
    /* libuv reports UV_ENOBUFS to on_read, which closes. */
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  size_t free_bytes = rb->cap_bytes - rb->size_bytes;
  if (free_bytes > UINT32_MAX)
    free_bytes = UINT32_MAX;
  *buf =
      uv_buf_init((char *)rb->data + rb->size_bytes, (unsigned int)free_bytes);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct transport_conn *c = h->data;
  if (c->tls != NULL)
    *buf = uv_buf_init((char *)c->t->tls_rbuf, RBUF_CHUNK_BYTES);
  else
    rbuf_room(c, buf);
}

/* With TLS: the session failed or ended. Before the handshake completes
 * that is a refusal (a stranger, a certificate of another CA, a peer
 * without TLS); the alert that says why goes out if the socket takes it. */
static void conn_tls_failed(struct transport_conn *c, int st) {
  const char *why = tls_conn_errmsg(c->tls);
  if (!tls_conn_ready(c->tls)) {
    conn_refuse(c, HS_REFUSED_TLS, why);
    return;
  }
  if (st == TLS_CLOSED) {
    conn_close(c, "closed by the peer (TLS close_notify)");
    return;
  }
  c->t->stats.frames_corrupt++;
  tlog(c->t, TRANSPORT_LOG_WARN, "%s: %s", c->name, why);
  conn_close(c, why);
}

/* With TLS: `n` bytes of ciphertext arrived in t->tls_rbuf. Decrypts all
 * the records they complete, handling frames as each read lands in the
 * receive buffer, then sends what the session has to say. */
static void conn_read_tls(struct transport_conn *c, size_t n) {
  if (tls_conn_feed(c->tls, c->t->tls_rbuf, n) != TLS_OK) {
    conn_close(c, "out of memory");
    return;
  }
  bool was_ready = tls_conn_ready(c->tls);
  while (c->state != CONN_CLOSING) {
    uv_buf_t room;
    rbuf_room(c, &room);
    if (room.len == 0) {
      conn_close(c, "out of memory");
      return;
    }
    size_t got;
    int st = tls_conn_read(c->tls, room.base, room.len, &got);
    if (!was_ready && tls_conn_ready(c->tls)) {
      /* The session is up: the HELLO waiting in `pending` can go. */
      was_ready = true;
      conn_flush(c);
    }
    if (st == TLS_AGAIN)
      break;
    if (st != TLS_OK) {
      conn_tls_failed(c, st);
      return;
    }
    c->rbuf.size_bytes += got;
    conn_process(c);
  }
  conn_flush(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct transport_conn *c = stream->data;
  struct transport *t = c->t;
  if (c->state == CONN_CLOSING)
    return;
  if (nread < 0) {
    if (nread == UV_EOF && c->state != CONN_ESTABLISHED)
      conn_close(c, "closed by the peer during the handshake (it may have "
                    "refused us: see its log)");
    else
      conn_close(c, nread == UV_EOF ? "closed by the peer"
                                    : uv_strerror((int)nread));
    return;
  }
  if (nread == 0)
    return;
  if (c->tls != NULL) {
    assert(buf->base == (char *)t->tls_rbuf);
    t->stats.bytes_received += (uint64_t)nread;
    conn_read_tls(c, (size_t)nread);
    return;
  }
  assert(buf->base == (char *)c->rbuf.data + c->rbuf.size_bytes);
  assert((size_t)nread <= c->rbuf.cap_bytes - c->rbuf.size_bytes);
  t->stats.bytes_received += (uint64_t)nread;
  c->rbuf.size_bytes += (size_t)nread;
  conn_process(c);
}

/* ---- accepting and dialing ---------------------------------------------- */

static void conn_name_from_peer(struct transport_conn *c) {
  struct sockaddr_storage addr;
  int len = (int)sizeof addr;
  char host[48] = "?"; /* INET6_ADDRSTRLEN is 46 */
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&addr, &len) == 0) {
    if (addr.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&addr, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&addr, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    }
  }
  snprintf(c->name, sizeof c->name, "connection from %s:%d", host, port);
}

/* Every slot is taken: the oldest connection still in its handshake that a
 * peer opened makes room for a new one (refused LIMIT), so that strangers
 * who connect and say nothing, however many and however often, cannot
 * keep a member out; a member's handshake takes a round trip, theirs the
 * whole deadline. False when none is handshaking. */
static bool conn_make_room(struct transport *t) {
  struct transport_conn *oldest = NULL;
  for (struct transport_conn *c = t->conns; c != NULL; c = c->next)
    if (!c->outbound && (c->state == CONN_HELLO || c->state == CONN_AUTH))
      oldest = c; /* the list is newest first */
  if (oldest == NULL)
    return false;
  conn_refuse(oldest, HS_REFUSED_LIMIT,
              "pushed out by a newer connection: every slot is taken");
  return true;
}

bool transport_addr_is_loopback(const struct sockaddr *addr) {
  if (addr->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127u;
  }
  if (addr->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
      return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127u;
  }
  return false;
}

/* The host part of an address as IPv6 (an IPv4 one mapped, ::ffff:a.b.c.d),
 * so that a dual-stack listener's view of an IPv4 caller and a dial to it
 * compare equal. False for any other family. */
static bool addr_host_v6(const struct sockaddr *a, struct in6_addr *out) {
  if (a->sa_family == AF_INET6) {
    *out = ((const struct sockaddr_in6 *)a)->sin6_addr;
    return true;
  }
  if (a->sa_family != AF_INET)
    return false;
  memset(out, 0, sizeof *out);
  out->s6_addr[10] = 0xff;
  out->s6_addr[11] = 0xff;
  memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)a)->sin_addr, 4);
  return true;
}

static bool addr_same_host(const struct sockaddr *a, const struct sockaddr *b) {
  struct in6_addr x, y;
  return addr_host_v6(a, &x) && addr_host_v6(b, &y) &&
         memcmp(&x, &y, sizeof x) == 0;
}

bool transport_addr_is_member(const struct transport *t,
                              const struct sockaddr *addr) {
  if (transport_addr_is_loopback(addr))
    return false;
  for (uint32_t i = 0; i < t->n_peers; i++)
    if (t->peers[i].seen_valid &&
        addr_same_host((const struct sockaddr *)&t->peers[i].seen, addr))
      return true;
  return false;
}

/* Whether an accepted connection comes from a member's address. */
static bool conn_from_member(struct transport_conn *c) {
  struct sockaddr_storage addr;
  int len = (int)sizeof addr;
  return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&addr, &len) == 0 &&
         transport_addr_is_member(c->t, (struct sockaddr *)&addr);
}

/* With TLS: whether the budget of cfg.tls_handshakes_per_second that the
 * new connection's address falls in has a handshake left. If not, it is
 * counted and logged (at most once per TRANSPORT_TLS_LIMITED_LOG_MS). */
static bool conn_tls_admit(struct transport_conn *c) {
  struct transport *t = c->t;
  bool member = conn_from_member(c);
  uint64_t now_ms = uv_now(t->loop);
  if (rate_bucket_take(member ? &t->tls_members : &t->tls_strangers, now_ms))
    return true;
  t->stats.tls_handshakes_limited++;
  t->tls_limited_unlogged++;
  if (now_ms >= t->tls_limited_log_due_ms) {
    tlog(t, TRANSPORT_LOG_WARN,
         "peer port: %" PRIu64 " connection(s) closed unread since the "
         "last such line, over tls-handshakes-per-second (%u%s); the last "
         "from %s",
         t->tls_limited_unlogged, t->cfg.tls_handshakes_per_second,
         member ? ", from a member's address" : "", c->name);
    t->tls_limited_unlogged = 0;
    t->tls_limited_log_due_ms = now_ms + TRANSPORT_TLS_LIMITED_LOG_MS;
  }
  return false;
}

static void on_connection(uv_stream_t *server, int status) {
  struct transport *t = server->data;
  if (t->closing)
    return;
  if (status < 0) {
    tlog(t, TRANSPORT_LOG_WARN, "accept failed: %s", uv_strerror(status));
    return;
  }
  struct transport_conn *c = conn_new(t);
  if (c == NULL) {
    tlog(t, TRANSPORT_LOG_ERROR, "out of memory accepting a connection");
    return;
  }
  snprintf(c->name, sizeof c->name, "inbound connection");
  int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (rc != 0) {
    conn_close(c, uv_strerror(rc));
    return;
  }
  conn_name_from_peer(c);
  /* Before the connection may push out another (below): one over the
   * budget must not cost a member its slot either. */
  if (t->cfg.tls != NULL && !conn_tls_admit(c)) {
    conn_close(c, "over tls-handshakes-per-second");
    return;
  }
  if (t->n_conns > TRANSPORT_CONNS_MAX && !conn_make_room(t)) {
    c->state = CONN_HELLO; /* connected: a REFUSE can be written */
    conn_refuse(c, HS_REFUSED_LIMIT, "too many connections open");
    return;
  }
  conn_start(c);
}

static void on_connect(uv_connect_t *req, int status) {
  struct transport_conn *c = req->data;
  if (c->state == CONN_CLOSING)
    return; /* closed while connecting: UV_ECANCELED */
  if (status < 0) {
    conn_close(c, uv_strerror(status));
    return;
  }
  conn_start(c);
}

static void peer_dial(struct transport_peer *p) {
  struct transport *t = p->t;
  assert(p->dial && p->conn == NULL && p->dialing == NULL && !t->closing);
  struct transport_conn *c = conn_new(t);
  if (c == NULL) {
    tlog(t, TRANSPORT_LOG_ERROR, "out of memory dialing node %u", p->id);
    peer_schedule_dial(p);
    return;
  }
  c->outbound = true;
  c->peer = p;
  c->state = CONN_CONNECTING;
  snprintf(c->name, sizeof c->name, "node %u", p->id);
  p->dialing = c;
  t->stats.dials++;
  int rc = uv_tcp_connect(&c->connect_req, &c->tcp,
                          (const struct sockaddr *)&p->addr, on_connect);
  if (rc != 0)
    conn_close(c, uv_strerror(rc));
}

static void on_dial_timer(uv_timer_t *timer) {
  struct transport_peer *p = timer->data;
  if (p->t->closing || p->conn != NULL || p->dialing != NULL)
    return;
  peer_dial(p);
}

/* The delay before retry number `retry` (1 for the first) since the last
 * handshake: backoff_ms_min doubling up to backoff_ms_max, drawn from the
 * upper half of that. */
static uint64_t backoff_ms(struct transport *t, uint32_t retry) {
  assert(retry >= 1);
  uint32_t doublings = retry - 1;
  if (doublings > BACKOFF_DOUBLINGS_MAX)
    doublings = BACKOFF_DOUBLINGS_MAX;
  uint64_t ceiling = (uint64_t)t->cfg.backoff_ms_min << doublings;
  if (ceiling > t->cfg.backoff_ms_max)
    ceiling = t->cfg.backoff_ms_max;
  uint64_t floor = ceiling / 2;
  return floor + prng_below(&t->prng, ceiling - floor + 1);
}

/* Schedules the next dial after a failed one or a lost connection. Even the
 * first retry after a lost connection waits a little: a peer that accepts
 * and then drops us at once must not get a tight reconnect loop. */
static void peer_schedule_dial(struct transport_peer *p) {
  struct transport *t = p->t;
  assert(p->dial && !t->closing);
  if (p->attempts < UINT32_MAX)
    p->attempts++;
  uv_timer_start(&p->timer, on_dial_timer, backoff_ms(t, p->attempts), 0);
}

/* ---- sending ----------------------------------------------------------- */

static int count_drop(struct transport *t, uint64_t *reason, int rc) {
  t->stats.msgs_dropped++;
  (*reason)++;
  return rc;
}

/* A message the codec refuses (too big for the wire, or malformed) is an
 * engine's bug or a configuration codec_check_config() should have
 * refused: the engine would build the same message on every retry, and
 * whatever waits for it would wait forever without a word. So besides the
 * counter it gets an error line, rate-limited. */
static int drop_refused(struct transport *t, const struct sabha_msg *m,
                        int rc) {
  t->too_big_unlogged++;
  uint64_t now_ms = uv_now(t->loop);
  if (now_ms >= t->too_big_log_due_ms) {
    tlog(t, TRANSPORT_LOG_ERROR,
         "dropped a %s message of type %u to node %u, refused by the codec "
         "(%s): a frame of %llu bytes with %u entries, where the wire "
         "allows %u bytes, %u entries, %u bytes per entry and %u per "
         "snapshot chunk (%llu such drops since the last report)",
         t->engine, m->type, m->to, sabha_strerror(rc),
         (unsigned long long)codec_frame_bytes_wanted(m), m->n_entries,
         CODEC_LENGTH_BYTES + CODEC_PAYLOAD_BYTES_MAX, CODEC_ENTRIES_MAX,
         CODEC_ENTRY_BYTES_MAX, CODEC_SNAP_CHUNK_BYTES_MAX,
         (unsigned long long)t->too_big_unlogged);
    t->too_big_unlogged = 0;
    t->too_big_log_due_ms = now_ms + TRANSPORT_TOO_BIG_LOG_MS;
  }
  return count_drop(t, &t->stats.msgs_dropped_too_big, rc);
}

int transport_send(struct transport *t, const struct sabha_msg *m) {
  assert(t != NULL && m != NULL);
  assert(!t->closing);
  assert(m->from == t->cfg.id);
  struct transport_peer *p = peer_find(t, m->to);
  if (p == NULL)
    return SABHA_EINVAL;
  struct transport_conn *c = p->conn;
  if (c == NULL)
    return count_drop(t, &t->stats.msgs_dropped_unconnected,
                      SABHA_EUNAVAILABLE);
  assert(c->state == CONN_ESTABLISHED);
  size_t frame_bytes;
  int rc = codec_frame_size(m, &frame_bytes);
  if (rc != 0)
    return drop_refused(t, m, rc);
  size_t msg_bytes = frame_bytes;
  /* Corked, or behind a write in flight, the messages to a peer wait for
   * one write: with a session they go in one bundle with one tag
   * (codec.h), up to the largest frame. */
  bool bundled = c->sealed && (t->corked || c->writing);
  if (!bundled)
    bundle_close(c); /* never left open: conn_flush() closes it */
  if (bundled && c->bundle_msgs > 0 &&
      c->pending.size_bytes - c->bundle_at + msg_bytes >
          CODEC_LENGTH_BYTES + CODEC_PAYLOAD_BYTES_MAX)
    bundle_close(c);
  size_t opening = bundled && c->bundle_msgs == 0 ? CODEC_HEADER_BYTES : 0;
  if (c->sealed)
    frame_bytes += SESSION_TAG_BYTES + opening;
  uint64_t queued_bytes = c->pending.size_bytes + c->inflight.size_bytes;
  uint32_t queued_msgs = c->pending_msgs + c->inflight_msgs;
  if (queued_msgs >= t->cfg.queue_msgs_max ||
      (queued_bytes > 0 && queued_bytes + frame_bytes > t->cfg.queue_bytes_max))
    return count_drop(t, &t->stats.msgs_dropped_queue_full, SABHA_EBUSY);
  if (codec_buf_reserve(&c->pending, frame_bytes) != 0)
    return count_drop(t, &t->stats.msgs_dropped_queue_full, SABHA_ENOMEM);
  if (bundled) {
    /* The bundle's tag has room after this message (reserved above), so
     * sealing it never allocates. */
    if (opening > 0)
      c->bundle_at = c->pending.size_bytes;
    codec_write(m, t->kind, c->pending.data + c->pending.size_bytes + opening,
                msg_bytes);
    c->pending.size_bytes += opening + msg_bytes;
    c->bundle_msgs++;
    c->pending_msgs++;
    return 0;
  }
  uint8_t *frame = c->pending.data + c->pending.size_bytes;
  codec_write(m, t->kind, frame, msg_bytes);
  if (c->sealed) {
    /* Sealed in queue order, which is the order on the wire: the peer
     * counts frames as it reads them. */
    le_put_u32(frame, (uint32_t)(frame_bytes - CODEC_LENGTH_BYTES));
    session_seal(&c->send_key, frame, frame_bytes);
  }
  c->pending.size_bytes += frame_bytes;
  c->pending_msgs++;
  if (!t->corked)
    conn_flush(c);
  return 0;
}

void transport_cork(struct transport *t) {
  t->corked = true;
}

void transport_uncork(struct transport *t) {
  t->corked = false;
  for (uint32_t i = 0; i < t->n_peers; i++)
    if (t->peers[i].conn != NULL)
      conn_flush_try(t->peers[i].conn, true);
}
