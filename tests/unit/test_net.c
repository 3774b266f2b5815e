/* Tests of the peer transport (src/net/transport.c) over real sockets on
 * 127.0.0.1, several transports in one libuv loop.
 *
 * Three nodes connect and exchange messages of every shape (no entries,
 * many, empty and 1 MiB entries, snapshot chunks) and each arrives intact
 * and in order; peers of another cluster, engine or secret, or with an id
 * nobody configured, are refused with the reason counted on both sides; a
 * node that goes away and comes back is reconnected; a full send queue drops
 * messages instead of blocking or growing, even against a peer that stops
 * reading; a corrupt frame or a silent stranger is disconnected, and with a
 * secret so is a frame whose session MAC is wrong. With TLS, three nodes
 * exchange the same messages inside mutual TLS sessions (with and without a
 * secret as well), and a peer with a certificate of another CA, one whose
 * certificate names another node, or one that speaks no TLS is refused
 * (reason TLS). Every
 * listener binds port 0 and the test reads the port back, so runs in
 * parallel do not collide. Every wait is bounded (WAIT_MS), and every test
 * ends by closing every handle and checking that uv_loop_close() succeeds,
 * which proves nothing leaked. Set SABHA_TEST_VERBOSE=1 to see the
 * transports' logs. Run with a test name as the argument to run only that
 * test. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/endian.h"
#include "core/prng.h"
#include "net/codec.h"
#include "net/handshake.h"
#include "net/session.h"
#include "net/tls.h"
#include "net/transport.h"
#include "sabha/error.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      goto out;                                                                \
    }                                                                          \
  } while (0)

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The longest any condition is waited for. Generous for slow sanitizer
 * builds on a loaded CI machine; a passing run takes a fraction of it. */
#define WAIT_MS 10000u

/* ---- the event loop ----------------------------------------------------- */

struct env {
  uv_loop_t loop;
  uv_timer_t tick; /* keeps UV_RUN_ONCE returning while we wait */
};

static void on_tick(uv_timer_t *t) {
  (void)t;
}

static void env_init(struct env *e) {
  int rc = uv_loop_init(&e->loop);
  if (rc != 0) {
    fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(rc));
    exit(2);
  }
  uv_timer_init(&e->loop, &e->tick);
  uv_timer_start(&e->tick, on_tick, 5, 5);
}

static uint64_t env_deadline(struct env *e, uint64_t ms) {
  uv_update_time(&e->loop);
  return uv_now(&e->loop) + ms;
}

/* Runs the loop until `expr` holds or `ms` pass; the caller CHECKs expr. */
#define WAIT_UNTIL(e, ms, expr)                                                \
  do {                                                                         \
    uint64_t deadline_ = env_deadline((e), (ms));                              \
    while (!(expr) && uv_now(&(e)->loop) < deadline_)                          \
      uv_run(&(e)->loop, UV_RUN_ONCE);                                         \
  } while (0)

/* Closes the tick and runs the loop dry; false if a handle was left open. */
static bool env_free(struct env *e) {
  uv_close((uv_handle_t *)&e->tick, NULL);
  uint64_t deadline = env_deadline(e, WAIT_MS);
  while (uv_run(&e->loop, UV_RUN_NOWAIT) != 0 && uv_now(&e->loop) < deadline)
    uv_run(&e->loop, UV_RUN_ONCE);
  int rc = uv_loop_close(&e->loop);
  if (rc != 0) {
    fprintf(stderr, "uv_loop_close: %s (a handle leaked)\n", uv_strerror(rc));
    uv_print_all_handles(&e->loop, stderr);
  }
  return rc == 0;
}

/* ---- messages ----------------------------------------------------------- */

#define POOL_BYTES (2u << 20)
#define MSG_ENTRIES_MAX 300u
static uint8_t pool[POOL_BYTES];

static void pool_fill(void) {
  struct prng p;
  prng_seed(&p, 99);
  for (size_t i = 0; i < POOL_BYTES; i++)
    pool[i] = (uint8_t)prng_next(&p);
}

/* The k-th message of a link, drawn from the link's generator; the receiver
 * draws the same sequence to know what to expect. Shapes cycle so that
 * every one appears: a bare message, a few small entries, a snapshot
 * chunk, empty entries and no-ops, many entries, and now and then a
 * 1 MiB entry with a snapshot chunk (several reads to assemble). */
static void gen_msg(struct prng *p, uint32_t from, uint32_t to, uint64_t k,
                    struct sabha_msg *m, struct sabha_entry *entries) {
  memset(m, 0, sizeof *m);
  m->type = (uint32_t)prng_range(p, 1, 11);
  m->from = from;
  m->to = to;
  m->reject = (uint32_t)prng_below(p, 2);
  m->term = prng_next(p);
  m->index = prng_next(p);
  m->log_term = prng_below(p, 100);
  m->commit = prng_next(p);
  m->hint_index = prng_below(p, 1000);
  m->hint_term = UINT64_MAX - prng_below(p, 3);
  m->context = k;
  uint32_t n = 0, size_max = 0;
  switch (k % 5) {
  case 1:
    n = (uint32_t)prng_range(p, 1, 10);
    size_max = 100;
    break;
  case 3:
    n = (uint32_t)prng_range(p, 1, 10);
    size_max = 0;
    break;
  case 4:
    n = (uint32_t)prng_range(p, 11, MSG_ENTRIES_MAX);
    size_max = 2000;
    break;
  default:
    break;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct sabha_entry *e = &entries[i];
    e->index = m->index + i;
    e->term = prng_next(p);
    e->type = size_max == 0 && prng_chance(p, 0.5) ? SABHA_ENTRY_NOOP
                                                   : SABHA_ENTRY_COMMAND;
    e->size_bytes = (uint32_t)prng_below(p, size_max + 1);
    e->data = e->size_bytes > 0
                  ? pool + prng_below(p, POOL_BYTES - e->size_bytes + 1)
                  : NULL;
  }
  if (k % 50 == 49) {
    n = 1;
    entries[0].type = SABHA_ENTRY_COMMAND;
    entries[0].size_bytes = 1u << 20;
    entries[0].data = pool + prng_below(p, POOL_BYTES - (1u << 20) + 1);
  }
  m->n_entries = n;
  m->entries = n > 0 ? entries : NULL;
  if (k % 5 == 2 || k % 50 == 49) {
    m->snap.index = prng_next(p);
    m->snap.term = prng_next(p);
    m->snap_size_bytes = (uint32_t)prng_below(p, (64u << 10) + 1);
    m->snap_data =
        m->snap_size_bytes > 0
            ? pool + prng_below(p, POOL_BYTES - m->snap_size_bytes + 1)
            : NULL;
    m->snap_offset = prng_below(p, 1u << 30);
    m->snap_total_bytes =
        m->snap_offset + m->snap_size_bytes + prng_below(p, 1u << 20);
  }
}

static bool bytes_equal(const uint8_t *a, const uint8_t *b, size_t n) {
  return n == 0 || (a != NULL && b != NULL && memcmp(a, b, n) == 0);
}

static bool msg_equal(const struct sabha_msg *a, const struct sabha_msg *b) {
  if (a->type != b->type || a->from != b->from || a->to != b->to ||
      a->reject != b->reject || a->term != b->term || a->index != b->index ||
      a->log_term != b->log_term || a->commit != b->commit ||
      a->hint_index != b->hint_index || a->hint_term != b->hint_term ||
      a->context != b->context || a->n_entries != b->n_entries ||
      a->snap.index != b->snap.index || a->snap.term != b->snap.term ||
      a->snap_offset != b->snap_offset ||
      a->snap_total_bytes != b->snap_total_bytes ||
      a->snap_size_bytes != b->snap_size_bytes)
    return false;
  for (uint32_t i = 0; i < a->n_entries; i++) {
    const struct sabha_entry *x = &a->entries[i], *y = &b->entries[i];
    if (x->index != y->index || x->term != y->term || x->type != y->type ||
        x->size_bytes != y->size_bytes ||
        !bytes_equal(x->data, y->data, x->size_bytes))
      return false;
  }
  return bytes_equal(a->snap_data, b->snap_data, a->snap_size_bytes);
}

static uint64_t link_seed(uint32_t from, uint32_t to) {
  return 1000u * from + to;
}

/* ---- nodes -------------------------------------------------------------- */

#define NODES_MAX 5u

struct node {
  struct transport t;
  struct transport_config cfg;
  struct transport_peer_config peers[NODES_MAX];
  bool open;   /* transport_init() was called and close has not finished */
  bool verify; /* check each message against its link's generator */
  bool close_on_message; /* transport_close() from inside on_message */
  struct prng expect[NODES_MAX + 1];
  struct prng send[NODES_MAX + 1];
  uint64_t sent_to[NODES_MAX + 1];
  uint64_t received_from[NODES_MAX + 1];
  uint64_t last_context_from[NODES_MAX + 1];
  uint64_t mismatches;
  uint64_t warnings;
  char last_warning[400];
};

static struct sabha_entry gen_entries[MSG_ENTRIES_MAX];

static void on_closed(struct transport *t);

static void on_message(void *arg, const struct sabha_msg *m) {
  struct node *n = arg;
  if (m->from == 0 || m->from > NODES_MAX) {
    n->mismatches++;
    return;
  }
  if (n->verify) {
    struct sabha_msg want;
    gen_msg(&n->expect[m->from], m->from, m->to, n->received_from[m->from],
            &want, gen_entries);
    if (!msg_equal(&want, m)) {
      fprintf(stderr, "node %u: message %llu from %u differs\n", m->to,
              (unsigned long long)n->received_from[m->from], m->from);
      n->mismatches++;
    }
  }
  n->received_from[m->from]++;
  n->last_context_from[m->from] = m->context;
  if (n->close_on_message && !n->t.closing)
    transport_close(&n->t, on_closed);
}

static void on_log(void *arg, enum transport_log_level level,
                   const char *text) {
  struct node *n = arg;
  if (getenv("SABHA_TEST_VERBOSE") != NULL)
    fprintf(stderr, "[node %u] %s\n", n->cfg.id, text);
  if (level >= TRANSPORT_LOG_WARN) {
    n->warnings++;
    snprintf(n->last_warning, sizeof n->last_warning, "%s", text);
  }
}

static void on_closed(struct transport *t) {
  struct node *n = t->data;
  n->open = false;
}

/* Configures node `id` of the cluster `ids`; `ports[i]` is the listening
 * port of ids[i] where known (the node dials only lower ids). */
static void node_config(struct node *n, uint32_t id, const uint32_t *ids,
                        uint32_t n_ids, const uint16_t *ports) {
  memset(n, 0, sizeof *n);
  transport_config_init(&n->cfg, id, "test-cluster", "raft");
  n->cfg.on_message = on_message;
  n->cfg.on_log = on_log;
  n->cfg.arg = n;
  n->cfg.backoff_ms_min = 10;
  n->cfg.backoff_ms_max = 80;
  n->cfg.seed = id * 77;
  uint32_t k = 0;
  for (uint32_t i = 0; i < n_ids; i++) {
    if (ids[i] == id)
      continue;
    n->peers[k].id = ids[i];
    n->peers[k].host = "127.0.0.1";
    n->peers[k].port = ports != NULL ? ports[i] : 0;
    k++;
  }
  n->cfg.peers = n->peers;
  n->cfg.n_peers = k;
  for (uint32_t from = 1; from <= NODES_MAX; from++) {
    prng_seed(&n->expect[from], link_seed(from, id));
    prng_seed(&n->send[from], link_seed(id, from));
  }
}

static int node_start(struct node *n, struct env *e) {
  int rc = transport_init(&e->loop, &n->t, &n->cfg);
  n->t.data = n;
  n->open = true;
  if (rc != 0)
    fprintf(stderr, "transport_init(%u): %s: %s\n", n->cfg.id,
            sabha_strerror(rc), transport_errmsg(&n->t));
  return rc;
}

static void node_stop(struct node *n) {
  if (n->open && !n->t.closing)
    transport_close(&n->t, on_closed);
}

/* Sends the next generated message from n to `to`. */
static int node_send_next(struct node *n, uint32_t to) {
  static struct sabha_entry entries[MSG_ENTRIES_MAX];
  struct sabha_msg m;
  gen_msg(&n->send[to], n->cfg.id, to, n->sent_to[to], &m, entries);
  int rc = transport_send(&n->t, &m);
  n->sent_to[to]++;
  return rc;
}

static int send_simple(struct node *n, uint32_t to, uint64_t context,
                       uint32_t data_bytes) {
  struct sabha_entry e = {.index = context,
                          .term = 1,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = data_bytes,
                          .data = data_bytes > 0 ? pool : NULL};
  struct sabha_msg m = {.type = 1,
                        .from = n->cfg.id,
                        .to = to,
                        .context = context,
                        .n_entries = data_bytes > 0,
                        .entries = data_bytes > 0 ? &e : NULL};
  return transport_send(&n->t, &m);
}

/* Starts nodes 1..count in order (each dials the lower ones, whose ports are
 * known by then). */
static int cluster_start(struct env *e, struct node **nodes, uint32_t count,
                         uint16_t *ports) {
  uint32_t ids[NODES_MAX];
  for (uint32_t i = 0; i < count; i++)
    ids[i] = i + 1;
  for (uint32_t i = 0; i < count; i++) {
    node_config(nodes[i], i + 1, ids, count, ports);
    int rc = node_start(nodes[i], e);
    if (rc != 0)
      return rc;
    ports[i] = transport_port(&nodes[i]->t);
    if (ports[i] == 0)
      return SABHA_EIO;
  }
  return 0;
}

static bool all_connected(struct node **nodes, uint32_t count) {
  for (uint32_t i = 0; i < count; i++)
    if (!nodes[i]->open || nodes[i]->t.stats.peers_connected != count - 1)
      return false;
  return true;
}

static bool all_closed(struct node **nodes, uint32_t count) {
  for (uint32_t i = 0; i < count; i++)
    if (nodes[i]->open)
      return false;
  return true;
}

/* Starts nodes 1 and 2 and waits until they are connected; false if they
 * are not within WAIT_MS. */
static bool pair_connected(struct env *e, struct node **nodes) {
  uint16_t ports[2] = {0};
  if (cluster_start(e, nodes, 2, ports) != 0)
    return false;
  WAIT_UNTIL(e, WAIT_MS, all_connected(nodes, 2));
  return all_connected(nodes, 2);
}

static struct node *node_new(void) {
  struct node *n = calloc(1, sizeof *n);
  if (n == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return n;
}

/* Closes every node, waits for the close callbacks, frees the nodes and the
 * loop; false when something did not close. */
static bool teardown(struct env *e, struct node **nodes, uint32_t count) {
  for (uint32_t i = 0; i < count; i++)
    node_stop(nodes[i]);
  WAIT_UNTIL(e, WAIT_MS, all_closed(nodes, count));
  bool closed = all_closed(nodes, count);
  for (uint32_t i = 0; i < count; i++)
    free(nodes[i]);
  return env_free(e) && closed;
}

/* ---- a peer written by hand --------------------------------------------- */

/* A raw TCP client that says what the test wants, byte by byte, and reads
 * only when asked to (fake_read_start), so that it can also play a peer
 * that stopped reading. */
struct fake {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  bool connected;
  bool failed;
  bool open;
  uint8_t rbuf[1024]; /* what it read, from the start */
  size_t rlen;
};

struct fake_write {
  uv_write_t req;
  size_t n;
  uint8_t bytes[];
};

static void fake_on_connect(uv_connect_t *req, int status) {
  struct fake *f = req->data;
  if (status == 0)
    f->connected = true;
  else
    f->failed = true;
}

static void fake_on_closed(uv_handle_t *h) {
  struct fake *f = h->data;
  f->open = false;
}

static void fake_connect(struct fake *f, struct env *e, uint16_t port) {
  memset(f, 0, sizeof *f);
  uv_tcp_init(&e->loop, &f->tcp);
  f->tcp.data = f;
  f->connect_req.data = f;
  f->open = true;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  if (uv_tcp_connect(&f->connect_req, &f->tcp, (struct sockaddr *)&addr,
                     fake_on_connect) != 0)
    f->failed = true;
}

static void fake_on_write(uv_write_t *req, int status) {
  (void)status;
  free(req->data);
}

static void fake_write(struct fake *f, const void *bytes, size_t n) {
  struct fake_write *w = malloc(sizeof *w + n);
  if (w == NULL)
    return;
  w->req.data = w;
  w->n = n;
  memcpy(w->bytes, bytes, n);
  uv_buf_t b = uv_buf_init((char *)w->bytes, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&f->tcp, &b, 1, fake_on_write) != 0)
    free(w);
}

/* Sends a valid HELLO for node `id` of the test cluster. */
static void fake_hello(struct fake *f, uint32_t id) {
  struct hs_hello h;
  memset(&h, 0, sizeof h);
  h.protocol_version = HS_PROTOCOL_VERSION;
  h.node_id = id;
  snprintf(h.cluster_id, sizeof h.cluster_id, "test-cluster");
  snprintf(h.engine, sizeof h.engine, "raft");
  uint8_t frame[HS_HELLO_FRAME_BYTES_MAX];
  fake_write(f, frame, hs_hello_encode(&h, frame));
}

static void fake_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct fake *f = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)f->rbuf + f->rlen,
                     (unsigned)(sizeof f->rbuf - f->rlen));
}

static void fake_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct fake *f = st->data;
  (void)buf;
  if (nread > 0)
    f->rlen += (size_t)nread;
  else if (nread < 0)
    uv_read_stop(st);
}

static void fake_read_start(struct fake *f) {
  uv_read_start((uv_stream_t *)&f->tcp, fake_on_alloc, fake_on_read);
}

/* The size of the complete frame at f->rbuf[at], or 0 while it is not all
 * read. */
static size_t fake_frame_at(const struct fake *f, size_t at) {
  if (f->rlen < at + CODEC_LENGTH_BYTES)
    return 0;
  size_t n = CODEC_LENGTH_BYTES + le_get_u32(f->rbuf + at);
  return f->rlen >= at + n ? n : 0;
}

static void fake_close(struct fake *f) {
  if (f->open && !uv_is_closing((uv_handle_t *)&f->tcp))
    uv_close((uv_handle_t *)&f->tcp, fake_on_closed);
}

static bool fakes_closed(const struct fake *fakes, int n) {
  for (int i = 0; i < n; i++)
    if (fakes[i].open)
      return false;
  return true;
}

/* Closes the `n` fakes of a calloc'ed array, waits until they are closed
 * and frees the array (NULL: nothing to do). */
static void fakes_free(struct env *e, struct fake *fakes, int n) {
  if (fakes == NULL)
    return;
  for (int i = 0; i < n; i++)
    fake_close(&fakes[i]);
  WAIT_UNTIL(e, WAIT_MS, fakes_closed(fakes, n));
  free(fakes);
}

/* ---- certificates ------------------------------------------------------- */

/* A CA "ca" with certificates for nodes 1..3 named as tls_node_cn() names
 * them, and a CA "other" with a certificate that claims node 2, made once
 * per run in a temporary directory (removed at exit). */
static char pki_dir[64];

static void pki_remove(void) {
  static const char *const names[] = {"ca.crt",    "ca.key",    "other.crt",
                                      "other.key", "node1.crt", "node1.key",
                                      "node2.crt", "node2.key", "node3.crt",
                                      "node3.key", "fake2.crt", "fake2.key"};
  char p[PATH_MAX];
  for (size_t i = 0; i < N(names); i++) {
    snprintf(p, sizeof p, "%s/%s", pki_dir, names[i]);
    unlink(p);
  }
  rmdir(pki_dir);
}

static bool pki_make(void) {
  if (pki_dir[0] != '\0')
    return true;
  snprintf(pki_dir, sizeof pki_dir, "/tmp/sabha-test-net-XXXXXX");
  if (mkdtemp(pki_dir) == NULL)
    return false;
  atexit(pki_remove);
  char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], d[PATH_MAX], err[512];
  const char *cas[] = {"ca", "other"};
  for (size_t i = 0; i < N(cas); i++) {
    snprintf(a, sizeof a, "%s/%s.crt", pki_dir, cas[i]);
    snprintf(b, sizeof b, "%s/%s.key", pki_dir, cas[i]);
    if (tls_make_ca(a, b, cas[i], err, sizeof err) != 0)
      goto fail;
  }
  /* nodeN by "ca"; fake2 by "other", claiming node 2. */
  for (uint32_t id = 1; id <= 4; id++) {
    const char *ca = id <= 3 ? "ca" : "other";
    char cn[TLS_NODE_CN_BYTES_MAX], leaf[16];
    tls_node_cn(id <= 3 ? id : 2, cn);
    snprintf(leaf, sizeof leaf, id <= 3 ? "node%u" : "fake2", id);
    snprintf(a, sizeof a, "%s/%s.crt", pki_dir, ca);
    snprintf(b, sizeof b, "%s/%s.key", pki_dir, ca);
    snprintf(c, sizeof c, "%s/%s.crt", pki_dir, leaf);
    snprintf(d, sizeof d, "%s/%s.key", pki_dir, leaf);
    if (tls_make_cert(a, b, cn, TLS_CERT_NODE, c, d, err, sizeof err) != 0)
      goto fail;
  }
  return true;
fail:
  fprintf(stderr, "making test certificates: %s\n", err);
  return false;
}

/* A context that trusts "ca" and shows `leaf`'s certificate; NULL on
 * failure (said on stderr). */
static struct tls_ctx *pki_ctx(const char *leaf) {
  if (!pki_make())
    return NULL;
  char ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], err[512];
  snprintf(ca, sizeof ca, "%s/ca.crt", pki_dir);
  snprintf(crt, sizeof crt, "%s/%s.crt", pki_dir, leaf);
  snprintf(key, sizeof key, "%s/%s.key", pki_dir, leaf);
  struct tls_ctx_config cfg = {
      .ca_file = ca, .cert_file = crt, .key_file = key};
  struct tls_ctx *ctx = NULL;
  if (tls_ctx_new(&ctx, &cfg, err, sizeof err) != 0)
    fprintf(stderr, "tls_ctx_new: %s\n", err);
  return ctx;
}

/* ---- tests -------------------------------------------------------------- */

/* `cork`: each node's messages of a round leave corked, as a node's loop
 * sends them (with a secret: in bundles, one tag for all, codec.h). */
static void exchange_every_shape(const uint8_t *secret, size_t secret_bytes,
                                 bool tls, bool cork) {
  struct env e;
  env_init(&e);
  struct node *nodes[3] = {node_new(), node_new(), node_new()};
  struct tls_ctx *ctxs[3] = {NULL, NULL, NULL};
  uint16_t ports[3] = {0};
  uint32_t ids[3] = {1, 2, 3};
  const uint64_t per_link = 120;
  for (uint32_t i = 0; i < 3; i++) {
    node_config(nodes[i], i + 1, ids, 3, ports);
    nodes[i]->cfg.secret = secret;
    nodes[i]->cfg.secret_bytes = secret_bytes;
    nodes[i]->verify = true;
    if (tls) {
      char leaf[16];
      snprintf(leaf, sizeof leaf, "node%u", i + 1);
      ctxs[i] = pki_ctx(leaf);
      CHECK(ctxs[i] != NULL);
      nodes[i]->cfg.tls = ctxs[i];
    }
    CHECK(node_start(nodes[i], &e) == 0);
    ports[i] = transport_port(&nodes[i]->t);
    CHECK(ports[i] != 0);
  }
  WAIT_UNTIL(&e, WAIT_MS, all_connected(nodes, 3));
  CHECK(all_connected(nodes, 3));
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(nodes[i]->t.stats.handshakes_completed == 2);
    CHECK(nodes[i]->t.stats.handshakes_refused == 0);
  }
  /* A few at a time, with the loop running between, so that the queues
   * never fill: this test wants every message delivered. */
  for (uint64_t k = 0; k < per_link; k += 6) {
    for (uint32_t i = 0; i < 3; i++) {
      if (cork)
        transport_cork(&nodes[i]->t);
      for (uint32_t j = 1; j <= 3; j++) {
        for (uint64_t b = 0; b < 6 && j != i + 1; b++)
          CHECK(node_send_next(nodes[i], j) == 0);
      }
      if (cork)
        transport_uncork(&nodes[i]->t);
    }
    uv_run(&e.loop, UV_RUN_NOWAIT);
  }
  WAIT_UNTIL(&e, WAIT_MS,
             nodes[0]->t.stats.msgs_received == 2 * per_link &&
                 nodes[1]->t.stats.msgs_received == 2 * per_link &&
                 nodes[2]->t.stats.msgs_received == 2 * per_link &&
                 nodes[0]->t.stats.msgs_sent == 2 * per_link &&
                 nodes[1]->t.stats.msgs_sent == 2 * per_link &&
                 nodes[2]->t.stats.msgs_sent == 2 * per_link);
  uint64_t bytes_sent = 0, bytes_received = 0;
  for (uint32_t i = 0; i < 3; i++) {
    const struct transport_stats *s = &nodes[i]->t.stats;
    CHECK(nodes[i]->mismatches == 0);
    CHECK(s->msgs_received == 2 * per_link);
    CHECK(s->msgs_sent == 2 * per_link);
    CHECK(s->msgs_dropped == 0 && s->frames_corrupt == 0);
    /* Six messages to a peer in a corked round: bundled when sealed (and
     * uncorked ones may be, behind a write in flight); never without a
     * session. */
    CHECK(secret != NULL || s->bundles_sent == 0);
    CHECK(!cork || secret == NULL || s->bundles_sent > 0);
    for (uint32_t j = 1; j <= 3; j++)
      CHECK(j == i + 1 || nodes[i]->received_from[j] == per_link);
    bytes_sent += s->bytes_sent;
    bytes_received += s->bytes_received;
  }
  /* Every byte written was read: nothing lost, nothing invented. */
  CHECK(bytes_sent == bytes_received && bytes_sent > 2u << 20);
out:
  if (!teardown(&e, nodes, 3))
    failures++;
  for (uint32_t i = 0; i < 3; i++)
    tls_ctx_free(ctxs[i]);
}

static void net_three_nodes_exchange_messages_of_every_shape(void) {
  pool_fill();
  exchange_every_shape(NULL, 0, false, false);
  exchange_every_shape(NULL, 0, false, true);
}

static void net_three_nodes_with_a_secret_exchange_messages(void) {
  pool_fill();
  const uint8_t secret[] = "s3cret shared by the cluster";
  exchange_every_shape(secret, sizeof secret - 1, false, false);
}

static void net_corked_messages_with_a_secret_go_in_bundles(void) {
  pool_fill();
  const uint8_t secret[] = "s3cret shared by the cluster";
  exchange_every_shape(secret, sizeof secret - 1, false, true);
}

static void net_three_nodes_with_tls_exchange_messages(void) {
  pool_fill();
  exchange_every_shape(NULL, 0, true, false);
}

static void net_three_nodes_with_tls_and_a_secret_exchange_messages(void) {
  pool_fill();
  const uint8_t secret[] = "s3cret shared by the cluster";
  exchange_every_shape(secret, sizeof secret - 1, true, false);
  exchange_every_shape(secret, sizeof secret - 1, true, true);
}

/* Node 1 listens with TLS (its own certificate, of "ca"); node 2 dials it
 * showing certificate `leaf` ("" for no TLS at all). Node 1 refuses for
 * reason TLS, again and again, and neither ever counts a handshake
 * completed. `by_peer`: node 2 is told (a REFUSE inside the session, which
 * exists only when the TLS handshake itself succeeded). */
static void tls_refused_case(const char *leaf, bool by_peer,
                             const char *log_words) {
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  struct tls_ctx *good_ctx = pki_ctx("node1");
  struct tls_ctx *bad_ctx = leaf[0] != '\0' ? pki_ctx(leaf) : NULL;
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  CHECK(good_ctx != NULL && (leaf[0] == '\0' || bad_ctx != NULL));
  node_config(nodes[0], 1, ids, 2, ports);
  nodes[0]->cfg.tls = good_ctx;
  CHECK(node_start(nodes[0], &e) == 0);
  ports[0] = transport_port(&nodes[0]->t);
  node_config(nodes[1], 2, ids, 2, ports);
  nodes[1]->cfg.tls = bad_ctx;
  CHECK(node_start(nodes[1], &e) == 0);
  const struct transport_stats *good = &nodes[0]->t.stats;
  const struct transport_stats *bad = &nodes[1]->t.stats;
  uint64_t deadline = env_deadline(&e, WAIT_MS);
  while ((good->refused[HS_REFUSED_TLS] < 3 ||
          (by_peer && bad->refused_by_peer[HS_REFUSED_TLS] < 3)) &&
         uv_now(&e.loop) < deadline) {
    uv_run(&e.loop, UV_RUN_ONCE);
    CHECK(bad->peers_connected == 0 && bad->handshakes_completed == 0);
  }
  CHECK(good->refused[HS_REFUSED_TLS] >= 3);
  CHECK(!by_peer || bad->refused_by_peer[HS_REFUSED_TLS] >= 3);
  CHECK(good->handshakes_refused == good->refused[HS_REFUSED_TLS]);
  CHECK(good->peers_connected == 0 && good->handshakes_completed == 0);
  CHECK(strstr(nodes[0]->last_warning, log_words) != NULL);
  CHECK(send_simple(nodes[1], 1, 1, 0) == SABHA_EUNAVAILABLE);
  CHECK(nodes[0]->t.stats.msgs_received == 0);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
  tls_ctx_free(good_ctx);
  tls_ctx_free(bad_ctx);
}

static void net_tls_peer_with_a_certificate_of_another_ca_is_refused(void) {
  tls_refused_case("fake2", false, "certificate");
}

static void net_tls_peer_whose_certificate_names_another_node_is_refused(void) {
  /* A certificate of the right CA, node 3's: node 2 cannot use it. */
  tls_refused_case("node3", true, "sabha-node-3");
}

static void net_tls_peer_without_tls_is_refused(void) {
  tls_refused_case("", false, hs_refusal_text(HS_REFUSED_TLS));
}

/* Node 1 (good) listens; node `bad_id`, configured by `spoil`, dials it.
 * The listener refuses for `reason` and tells the dialer, which counts the
 * refusal as the peer's; the dialer dials again after a backoff, and never
 * believes itself connected. */
static void refused_case(enum hs_refusal reason, uint32_t bad_id,
                         void (*spoil)(struct transport_config *),
                         const char *log_words) {
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  uint32_t ids[2] = {1, bad_id};
  uint16_t ports[2] = {0};
  node_config(nodes[0], 1, ids, 2, ports);
  if (bad_id != 2)
    nodes[0]->peers[0].id = 2; /* node 1 knows 2, not bad_id */
  CHECK(node_start(nodes[0], &e) == 0);
  ports[0] = transport_port(&nodes[0]->t);
  node_config(nodes[1], bad_id, ids, 2, ports);
  spoil(&nodes[1]->cfg);
  CHECK(node_start(nodes[1], &e) == 0);
  const struct transport_stats *good = &nodes[0]->t.stats;
  const struct transport_stats *bad = &nodes[1]->t.stats;
  uint64_t deadline = env_deadline(&e, WAIT_MS);
  while ((good->refused[reason] < 3 || bad->refused_by_peer[reason] < 3) &&
         uv_now(&e.loop) < deadline) {
    uv_run(&e.loop, UV_RUN_ONCE);
    /* The listener spoke only to accept, so the dialer never got as far
     * as "connected", not even for a moment. */
    CHECK(bad->peers_connected == 0 && bad->handshakes_completed == 0);
  }
  CHECK(good->refused[reason] >= 3);
  CHECK(bad->refused_by_peer[reason] >= 3);
  CHECK(good->handshakes_refused == good->refused[reason]);
  CHECK(bad->handshakes_refused == 0);
  CHECK(bad->dials >= 3); /* it kept trying, with backoff */
  CHECK(good->peers_connected == 0 && good->handshakes_completed == 0);
  CHECK(nodes[0]->warnings > 0 && nodes[1]->warnings > 0);
  CHECK(strstr(nodes[0]->last_warning, hs_refusal_text(reason)) != NULL);
  CHECK(strstr(nodes[0]->last_warning, log_words) != NULL);
  CHECK(strstr(nodes[1]->last_warning, hs_refusal_text(reason)) != NULL);
  /* Nothing gets through a refused connection. */
  CHECK(send_simple(nodes[1], 1, 1, 0) == SABHA_EUNAVAILABLE);
  CHECK(nodes[0]->t.stats.msgs_received == 0);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void spoil_cluster(struct transport_config *c) {
  c->cluster_id = "another-cluster";
}
static void spoil_engine(struct transport_config *c) {
  c->engine = "multipaxos";
}
static void spoil_secret(struct transport_config *c) {
  static const uint8_t wrong[] = "not the secret";
  c->secret = wrong;
  c->secret_bytes = sizeof wrong - 1;
}
static void spoil_nothing(struct transport_config *c) {
  (void)c;
}

static void net_peer_with_wrong_cluster_id_is_refused(void) {
  refused_case(HS_REFUSED_CLUSTER, 2, spoil_cluster, "another-cluster");
}

static void net_peer_with_wrong_engine_is_refused(void) {
  refused_case(HS_REFUSED_ENGINE, 2, spoil_engine, "multipaxos");
}

static void net_peer_with_a_secret_where_none_is_set_is_refused(void) {
  refused_case(HS_REFUSED_AUTH, 2, spoil_secret, "secret");
}

static void net_peer_with_unknown_node_id_is_refused(void) {
  refused_case(HS_REFUSED_NODE, 4, spoil_nothing, "node 4");
}

static void net_peer_with_wrong_secret_is_refused(void) {
  /* Both have a secret, different ones: the MAC fails on both sides. */
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  static const uint8_t right[] = "the secret";
  static const uint8_t wrong[] = "the secreT";
  node_config(nodes[0], 1, ids, 2, ports);
  nodes[0]->cfg.secret = right;
  nodes[0]->cfg.secret_bytes = sizeof right - 1;
  CHECK(node_start(nodes[0], &e) == 0);
  ports[0] = transport_port(&nodes[0]->t);
  node_config(nodes[1], 2, ids, 2, ports);
  nodes[1]->cfg.secret = wrong;
  nodes[1]->cfg.secret_bytes = sizeof wrong - 1;
  CHECK(node_start(nodes[1], &e) == 0);
  /* The listener proves itself first; the dialer finds the MAC wrong,
   * refuses, and tells the listener. */
  const struct transport_stats *a = &nodes[0]->t.stats, *b = &nodes[1]->t.stats;
  WAIT_UNTIL(&e, WAIT_MS,
             b->refused[HS_REFUSED_AUTH] >= 2 &&
                 a->refused_by_peer[HS_REFUSED_AUTH] >= 2);
  CHECK(b->refused[HS_REFUSED_AUTH] >= 2);
  CHECK(a->refused_by_peer[HS_REFUSED_AUTH] >= 2);
  CHECK(a->handshakes_completed == 0 && b->handshakes_completed == 0);
  CHECK(strstr(nodes[1]->last_warning, "MAC") != NULL);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void net_node_at_a_peers_address_with_another_id_is_refused(void) {
  /* Node 3 believes node 1 listens at a port where node 2 listens. */
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  uint32_t ids[3] = {1, 2, 3};
  uint16_t ports[3] = {0};
  node_config(nodes[0], 2, ids, 3, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  ports[0] = transport_port(&nodes[0]->t); /* "node 1's" port */
  ports[1] = 1;                            /* node 2: nothing listens */
  node_config(nodes[1], 3, ids, 3, ports);
  CHECK(node_start(nodes[1], &e) == 0);
  const struct transport_stats *s = &nodes[1]->t.stats;
  WAIT_UNTIL(&e, WAIT_MS,
             s->refused[HS_REFUSED_NODE] >= 1 &&
                 nodes[0]->t.stats.refused_by_peer[HS_REFUSED_NODE] >= 1);
  CHECK(s->refused[HS_REFUSED_NODE] >= 1);
  CHECK(nodes[0]->t.stats.refused_by_peer[HS_REFUSED_NODE] >= 1);
  CHECK(s->handshakes_completed == 0);
  CHECK(strstr(nodes[1]->last_warning, "dialed node 1, node 2 answered") !=
        NULL);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void net_peer_that_goes_away_and_comes_back_is_reconnected(void) {
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[3] = {node_new(), node_new(), node_new()};
  uint16_t ports[3] = {0};
  CHECK(cluster_start(&e, nodes, 3, ports) == 0);
  WAIT_UNTIL(&e, WAIT_MS, all_connected(nodes, 3));
  CHECK(all_connected(nodes, 3));

  /* Node 1, which the others dial, goes away. */
  node_stop(nodes[0]);
  WAIT_UNTIL(&e, WAIT_MS,
             !nodes[0]->open && nodes[1]->t.stats.peers_connected == 1 &&
                 nodes[2]->t.stats.peers_connected == 1);
  CHECK(!nodes[0]->open);
  CHECK(nodes[1]->t.stats.peers_connected == 1);
  CHECK(nodes[2]->t.stats.peers_connected == 1);
  CHECK(send_simple(nodes[1], 1, 7, 0) == SABHA_EUNAVAILABLE);
  CHECK(nodes[1]->t.stats.msgs_dropped_unconnected == 1);
  uint64_t dials_before = nodes[1]->t.stats.dials;
  /* Let them fail to reach it for a while: they keep dialing, backing
   * off. */
  WAIT_UNTIL(&e, WAIT_MS, nodes[1]->t.stats.dials >= dials_before + 3);
  CHECK(nodes[1]->t.stats.dials >= dials_before + 3);

  /* It comes back on the same port. */
  uint32_t ids[3] = {1, 2, 3};
  node_config(nodes[0], 1, ids, 3, ports);
  nodes[0]->cfg.listen_port = ports[0];
  CHECK(node_start(nodes[0], &e) == 0);
  CHECK(transport_port(&nodes[0]->t) == ports[0]);
  WAIT_UNTIL(&e, WAIT_MS, all_connected(nodes, 3));
  CHECK(all_connected(nodes, 3));
  struct transport_peer_info info;
  CHECK(transport_peer_info(&nodes[1]->t, 1, &info) == 0);
  CHECK(info.connected && info.attempts == 0);

  /* And node 3, which dials the others, goes away and comes back. */
  node_stop(nodes[2]);
  WAIT_UNTIL(&e, WAIT_MS,
             !nodes[2]->open && nodes[0]->t.stats.peers_connected == 1 &&
                 nodes[1]->t.stats.peers_connected == 1);
  CHECK(!nodes[2]->open);
  node_config(nodes[2], 3, ids, 3, ports);
  CHECK(node_start(nodes[2], &e) == 0);
  WAIT_UNTIL(&e, WAIT_MS, all_connected(nodes, 3));
  CHECK(all_connected(nodes, 3));

  /* Messages flow again, every way. */
  for (uint32_t i = 0; i < 3; i++)
    for (uint32_t j = 1; j <= 3; j++)
      if (j != i + 1)
        CHECK(send_simple(nodes[i], j, 100 + i, 10) == 0);
  WAIT_UNTIL(&e, WAIT_MS,
             nodes[0]->t.stats.msgs_received == 2 &&
                 nodes[1]->t.stats.msgs_received == 2 &&
                 nodes[2]->t.stats.msgs_received == 2);
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(nodes[i]->t.stats.msgs_received == 2);
    for (uint32_t j = 1; j <= 3; j++)
      CHECK(j == i + 1 || nodes[i]->last_context_from[j] == 100 + j - 1);
  }
out:
  if (!teardown(&e, nodes, 3))
    failures++;
}

static void net_full_queue_drops_instead_of_blocking(void) {
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  uint16_t ports[2] = {0};
  uint32_t ids[2] = {1, 2};
  node_config(nodes[0], 1, ids, 2, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  ports[0] = transport_port(&nodes[0]->t);
  node_config(nodes[1], 2, ids, 2, ports);
  nodes[1]->cfg.queue_msgs_max = 8;
  CHECK(node_start(nodes[1], &e) == 0);
  WAIT_UNTIL(&e, WAIT_MS, all_connected(nodes, 2));
  CHECK(all_connected(nodes, 2));
  /* 1000 sends without the loop running: the first 8 are queued, the rest
   * dropped at once, and the call never waits. */
  int queued = 0, busy = 0;
  for (int i = 0; i < 1000; i++) {
    int rc = send_simple(nodes[1], 1, (uint64_t)i, 100);
    queued += rc == 0;
    busy += rc == SABHA_EBUSY;
  }
  CHECK(queued == 8 && busy == 992);
  const struct transport_stats *s = &nodes[1]->t.stats;
  CHECK(s->msgs_dropped == 992 && s->msgs_dropped_queue_full == 992);
  struct transport_peer_info info;
  CHECK(transport_peer_info(&nodes[1]->t, 1, &info) == 0);
  CHECK(info.queued_msgs == 8);
  WAIT_UNTIL(&e, WAIT_MS, nodes[0]->t.stats.msgs_received == 8);
  CHECK(nodes[0]->t.stats.msgs_received == 8 && s->msgs_sent == 8);
  CHECK(nodes[0]->last_context_from[2] == 7); /* the first 8, in order */
  /* Once drained, the queue takes messages again. */
  CHECK(send_simple(nodes[1], 1, 2000, 100) == 0);
  WAIT_UNTIL(&e, WAIT_MS, nodes[0]->t.stats.msgs_received == 9);
  CHECK(nodes[0]->last_context_from[2] == 2000);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void net_peer_that_stops_reading_makes_us_drop_not_grow(void) {
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  struct fake f;
  memset(&f, 0, sizeof f);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  const uint32_t queue_bytes_max = 1u << 20;
  node_config(nodes[0], 1, ids, 2, ports);
  nodes[0]->cfg.queue_bytes_max = queue_bytes_max;
  CHECK(node_start(nodes[0], &e) == 0);
  /* The fake node 2 completes its half of the handshake, then never reads
   * a byte. */
  fake_connect(&f, &e, transport_port(&nodes[0]->t));
  WAIT_UNTIL(&e, WAIT_MS, f.connected || f.failed);
  CHECK(f.connected);
  fake_hello(&f, 2);
  WAIT_UNTIL(&e, WAIT_MS, nodes[0]->t.stats.peers_connected == 1);
  CHECK(nodes[0]->t.stats.peers_connected == 1);
  /* 64 KiB messages until well past what the kernel's socket buffers hold;
   * the queue must stay within its bound and the excess be dropped. */
  const struct transport_stats *s = &nodes[0]->t.stats;
  uint64_t queued_max = 0;
  int rounds = 0;
  uint64_t deadline = env_deadline(&e, WAIT_MS);
  while (s->msgs_dropped_queue_full < 2000 && uv_now(&e.loop) < deadline) {
    for (int i = 0; i < 50; i++)
      send_simple(nodes[0], 2, (uint64_t)i, 64u << 10);
    struct transport_peer_info info;
    CHECK(transport_peer_info(&nodes[0]->t, 2, &info) == 0);
    if (info.queued_bytes > queued_max)
      queued_max = info.queued_bytes;
    uv_run(&e.loop, UV_RUN_NOWAIT);
    rounds++;
  }
  CHECK(s->msgs_dropped_queue_full >= 2000);
  CHECK(queued_max <= queue_bytes_max);
  CHECK(s->peers_connected == 1); /* slow is not dead */
  /* Nothing that was sent can be more than the peer's buffers hold. */
  CHECK(s->bytes_sent < 64u << 20);
out:
  fake_close(&f);
  if (!teardown(&e, nodes, 1))
    failures++;
}

static void net_corrupt_frame_closes_the_connection(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  struct fake f;
  memset(&f, 0, sizeof f);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  node_config(nodes[0], 1, ids, 2, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  /* Four ways to be wrong after a good handshake: bytes that are not a
   * message, a message that claims another sender, a message of another
   * engine, a message of a group this node does not host (docs/wire.md,
   * "Groups"). Each closes the connection. */
  for (int variant = 0; variant < 4; variant++) {
    fake_connect(&f, &e, transport_port(&nodes[0]->t));
    WAIT_UNTIL(&e, WAIT_MS, f.connected || f.failed);
    CHECK(f.connected);
    fake_hello(&f, 2);
    WAIT_UNTIL(&e, WAIT_MS, s->peers_connected == 1);
    CHECK(s->peers_connected == 1);
    struct sabha_msg m = {.type = 1,
                          .from = variant == 1 ? 3 : 2,
                          .to = 1,
                          .group = variant == 3 ? 5 : 0};
    struct codec_buf b;
    codec_buf_init(&b);
    CHECK(codec_encode(&m, variant == 2 ? CODEC_KIND_PAXOS : CODEC_KIND_RAFT,
                       &b) == 0);
    if (variant == 0)
      b.data[CODEC_HEADER_BYTES + 104] = 0xff; /* n_entries */
    fake_write(&f, b.data, b.size_bytes);
    codec_buf_free(&b);
    WAIT_UNTIL(&e, WAIT_MS,
               s->frames_corrupt == (uint64_t)variant + 1 &&
                   s->peers_connected == 0);
    CHECK(s->frames_corrupt == (uint64_t)variant + 1);
    CHECK(s->peers_connected == 0);
    CHECK(s->msgs_received == 0);
    fake_close(&f);
    WAIT_UNTIL(&e, WAIT_MS, !f.open);
  }
out:
  fake_close(&f);
  WAIT_UNTIL(&e, WAIT_MS, !f.open);
  if (!teardown(&e, nodes, 1))
    failures++;
}

/* A peer that knows the secret, written by hand from docs/wire.md: it
 * completes the handshake, then sends one frame sealed right, which is
 * delivered, and then frames that are wrong in one way each. */
static void net_frame_with_a_wrong_mac_closes_the_connection(void) {
  static const uint8_t secret[] = "a secret of the test cluster";
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  struct fake f;
  memset(&f, 0, sizeof f);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  node_config(nodes[0], 1, ids, 2, ports);
  nodes[0]->cfg.secret = secret;
  nodes[0]->cfg.secret_bytes = sizeof secret - 1;
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  /* 0: a flipped bit; 1: the good frame replayed; 2: a frame without a
   * tag (as a node without the secret would send it). */
  for (int variant = 0; variant < 3; variant++) {
    fake_connect(&f, &e, transport_port(&nodes[0]->t));
    WAIT_UNTIL(&e, WAIT_MS, f.connected || f.failed);
    CHECK(f.connected);
    fake_read_start(&f);
    struct hs_hello mine, theirs;
    memset(&mine, 0, sizeof mine);
    mine.protocol_version = HS_PROTOCOL_VERSION;
    mine.flags = HS_FLAG_AUTH;
    mine.node_id = 2;
    memset(mine.nonce, 0x40 + variant, sizeof mine.nonce);
    snprintf(mine.cluster_id, sizeof mine.cluster_id, "test-cluster");
    snprintf(mine.engine, sizeof mine.engine, "raft");
    uint8_t hello[HS_HELLO_FRAME_BYTES_MAX];
    fake_write(&f, hello, hs_hello_encode(&mine, hello));
    /* The listener's HELLO, then its AUTH. */
    WAIT_UNTIL(&e, WAIT_MS,
               fake_frame_at(&f, 0) > 0 &&
                   fake_frame_at(&f, fake_frame_at(&f, 0)) > 0);
    size_t hello_bytes = fake_frame_at(&f, 0);
    CHECK(hello_bytes > 0);
    CHECK(hs_hello_decode(f.rbuf, hello_bytes, &theirs) == HS_ACCEPTED);
    uint8_t mac[HS_MAC_BYTES];
    CHECK(hs_auth_decode(f.rbuf + hello_bytes, fake_frame_at(&f, hello_bytes),
                         mac) == HS_ACCEPTED);
    CHECK(hs_mac_verify(secret, sizeof secret - 1, &theirs, &mine, mac) ==
          HS_ACCEPTED);
    uint8_t auth[HS_AUTH_FRAME_BYTES];
    hs_mac(secret, sizeof secret - 1, &mine, &theirs, mac);
    hs_auth_encode(mac, auth);
    fake_write(&f, auth, sizeof auth);
    WAIT_UNTIL(&e, WAIT_MS, s->peers_connected == 1);
    CHECK(s->peers_connected == 1);

    struct session_key key;
    session_key_init(&key, secret, sizeof secret - 1, &mine, &theirs);
    uint8_t good[CODEC_MSG_FRAME_BYTES_MIN + SESSION_TAG_BYTES];
    struct sabha_msg m = {.type = 3,
                          .from = 2,
                          .to = 1,
                          .term = 7,
                          .context = 100 + (uint64_t)variant};
    codec_write(&m, CODEC_KIND_RAFT, good, CODEC_MSG_FRAME_BYTES_MIN);
    le_put_u32(good, (uint32_t)(sizeof good - CODEC_LENGTH_BYTES));
    session_seal(&key, good, sizeof good);
    fake_write(&f, good, sizeof good);
    WAIT_UNTIL(&e, WAIT_MS, s->msgs_received == (uint64_t)variant + 1);
    CHECK(s->msgs_received == (uint64_t)variant + 1);
    CHECK(nodes[0]->last_context_from[2] == 100 + (uint64_t)variant);

    uint8_t bad[sizeof good];
    size_t bad_bytes = sizeof bad;
    m.term = UINT64_MAX;
    codec_write(&m, CODEC_KIND_RAFT, bad, CODEC_MSG_FRAME_BYTES_MIN);
    if (variant == 0) {
      le_put_u32(bad, (uint32_t)(sizeof bad - CODEC_LENGTH_BYTES));
      session_seal(&key, bad, sizeof bad);
      bad[CODEC_HEADER_BYTES + 16] ^= 0x01; /* the term */
    } else if (variant == 1) {
      memcpy(bad, good, sizeof good);
    } else {
      bad_bytes = CODEC_MSG_FRAME_BYTES_MIN;
    }
    fake_write(&f, bad, bad_bytes);
    session_key_wipe(&key);
    WAIT_UNTIL(&e, WAIT_MS,
               s->frames_refused_mac == (uint64_t)variant + 1 &&
                   s->peers_connected == 0);
    CHECK(s->frames_refused_mac == (uint64_t)variant + 1);
    CHECK(s->peers_connected == 0);
    CHECK(s->msgs_received == (uint64_t)variant + 1);
    CHECK(s->frames_corrupt == 0);
    CHECK(strstr(nodes[0]->last_warning, "MAC is wrong") != NULL);
    fake_close(&f);
    WAIT_UNTIL(&e, WAIT_MS, !f.open);
  }
out:
  fake_close(&f);
  WAIT_UNTIL(&e, WAIT_MS, !f.open);
  if (!teardown(&e, nodes, 1))
    failures++;
}

static void net_stranger_is_refused_before_we_buffer_its_bytes(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  struct fake f;
  memset(&f, 0, sizeof f);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  node_config(nodes[0], 1, ids, 2, ports);
  nodes[0]->cfg.handshake_timeout_ms = 200;
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  /* An HTTP client: "GET " reads as a length of about 540 MB. */
  fake_connect(&f, &e, transport_port(&nodes[0]->t));
  WAIT_UNTIL(&e, WAIT_MS, f.connected || f.failed);
  CHECK(f.connected);
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  fake_write(&f, http, strlen(http));
  WAIT_UNTIL(&e, WAIT_MS, s->refused[HS_REFUSED_MALFORMED] == 1);
  CHECK(s->refused[HS_REFUSED_MALFORMED] == 1);
  fake_close(&f);
  WAIT_UNTIL(&e, WAIT_MS, !f.open);
  /* A client that connects and says nothing is cut off by the deadline. */
  fake_connect(&f, &e, transport_port(&nodes[0]->t));
  WAIT_UNTIL(&e, WAIT_MS, s->refused[HS_REFUSED_TIMEOUT] == 1);
  CHECK(s->refused[HS_REFUSED_TIMEOUT] == 1);
  CHECK(s->handshakes_refused == 2 && s->peers_connected == 0);
out:
  fake_close(&f);
  WAIT_UNTIL(&e, WAIT_MS, !f.open);
  if (!teardown(&e, nodes, 1))
    failures++;
}

/* A stranger refused at the handshake again and again (here one that
 * speaks HTTP to the peer port) once cost a WARN line per connection: as
 * many lines as it could open connections, a thousand a second under the
 * default TLS budget and with no bound without TLS. Refusals of
 * connections from addresses that are not members' are logged within
 * TRANSPORT_REFUSED_LOG_LINES per TRANSPORT_REFUSED_LOG_MS; loopback is
 * nobody's address, so the fakes here count as strangers. */
static void net_strangers_refused_again_and_again_do_not_fill_the_log(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  struct fake f;
  memset(&f, 0, sizeof f);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  node_config(nodes[0], 1, ids, 2, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  enum { TRIES = TRANSPORT_REFUSED_LOG_LINES + 20 };
  for (uint64_t i = 1; i <= TRIES; i++) {
    fake_connect(&f, &e, transport_port(&nodes[0]->t));
    WAIT_UNTIL(&e, WAIT_MS, f.connected || f.failed);
    CHECK(f.connected);
    fake_write(&f, http, strlen(http));
    WAIT_UNTIL(&e, WAIT_MS, s->refused[HS_REFUSED_MALFORMED] == i);
    CHECK(s->refused[HS_REFUSED_MALFORMED] == i);
    fake_close(&f);
    WAIT_UNTIL(&e, WAIT_MS, !f.open);
  }
  CHECK(nodes[0]->warnings == TRANSPORT_REFUSED_LOG_LINES);
  CHECK(strstr(nodes[0]->last_warning,
               hs_refusal_text(HS_REFUSED_MALFORMED)) != NULL);
out:
  fake_close(&f);
  WAIT_UNTIL(&e, WAIT_MS, !f.open);
  if (!teardown(&e, nodes, 1))
    failures++;
}

/* A listener bound to "::" sees an IPv4 caller as ::ffff:a.b.c.d, while a
 * link this node dialed to a.b.c.d saw AF_INET: the same member. Compared
 * by family, its connections fell in the strangers' TLS budget (its
 * forwarding link on a dual-stack client port, its peer link on a
 * dual-stack peer port), where a flood could keep it out. */
static void net_member_address_matches_in_either_ip_family(void) {
  static struct transport t; /* only peers and n_peers are read */
  memset(&t, 0, sizeof t);
  struct sockaddr_in v4;
  uv_ip4_addr("10.1.2.3", 7000, &v4);
  struct sockaddr_in6 mapped, other;
  uv_ip6_addr("::ffff:10.1.2.3", 9000, &mapped);
  uv_ip6_addr("::ffff:10.1.2.4", 9000, &other);
  t.n_peers = 1;
  memcpy(&t.peers[0].seen, &v4, sizeof v4);
  t.peers[0].seen_valid = true;
  CHECK(transport_addr_is_member(&t, (const struct sockaddr *)&mapped));
  CHECK(!transport_addr_is_member(&t, (const struct sockaddr *)&other));
  memset(&t.peers[0].seen, 0, sizeof t.peers[0].seen);
  memcpy(&t.peers[0].seen, &mapped, sizeof mapped);
  CHECK(transport_addr_is_member(&t, (const struct sockaddr *)&v4));
  struct sockaddr_in v4b;
  uv_ip4_addr("10.1.2.4", 7000, &v4b);
  CHECK(!transport_addr_is_member(&t, (const struct sockaddr *)&v4b));
out:;
}

static void net_send_to_unknown_or_unconnected_peer_is_refused(void) {
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  uint32_t ids[3] = {1, 2, 3};
  uint16_t ports[3] = {0};
  node_config(nodes[0], 1, ids, 3, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  CHECK(send_simple(nodes[0], 9, 1, 0) == SABHA_EINVAL);
  CHECK(s->msgs_dropped == 0); /* a configuration error, not a drop */
  CHECK(send_simple(nodes[0], 2, 1, 0) == SABHA_EUNAVAILABLE);
  CHECK(s->msgs_dropped == 1 && s->msgs_dropped_unconnected == 1);
  struct transport_peer_info info;
  CHECK(transport_peer_info(&nodes[0]->t, 9, &info) == SABHA_EINVAL);
  CHECK(transport_peer_info(&nodes[0]->t, 3, &info) == 0 && !info.connected);
out:
  if (!teardown(&e, nodes, 1))
    failures++;
}

/* A message the codec refuses is dropped and counted, never queued, and
 * said in an error line that names its type, its size and the wire's
 * limits (an engine resending it would otherwise wait forever in silence);
 * a burst of them gives one line, not one per message, and the connection
 * carries on. */
static void net_message_too_big_is_dropped_counted_and_logged(void) {
  static struct sabha_entry many[CODEC_ENTRIES_MAX + 1];
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  CHECK(pair_connected(&e, nodes));
  for (uint32_t i = 0; i < N(many); i++)
    many[i] = (struct sabha_entry){
        .index = i + 1, .term = 1, .type = SABHA_ENTRY_NOOP};
  struct sabha_msg m = {
      .type = 4, .from = 2, .to = 1, .n_entries = N(many), .entries = many};
  const struct transport_stats *s = &nodes[1]->t.stats;
  uint64_t warnings = nodes[1]->warnings;
  CHECK(transport_send(&nodes[1]->t, &m) == SABHA_ETOOBIG);
  CHECK(s->msgs_dropped == 1 && s->msgs_dropped_too_big == 1);
  CHECK(nodes[1]->warnings == warnings + 1);
  const char *line = nodes[1]->last_warning;
  char want[160];
  snprintf(want, sizeof want, "frame of %llu bytes with %u entries",
           (unsigned long long)(CODEC_MSG_FRAME_BYTES_MIN +
                                N(many) * CODEC_ENTRY_HEADER_BYTES),
           (unsigned)N(many));
  CHECK(strstr(line, "raft message of type 4 to node 1") != NULL);
  CHECK(strstr(line, want) != NULL);
  snprintf(want, sizeof want, "allows %u bytes, %u entries",
           CODEC_LENGTH_BYTES + CODEC_PAYLOAD_BYTES_MAX, CODEC_ENTRIES_MAX);
  CHECK(strstr(line, want) != NULL);
  for (int i = 0; i < 100; i++)
    CHECK(transport_send(&nodes[1]->t, &m) == SABHA_ETOOBIG);
  CHECK(s->msgs_dropped_too_big == 101 && s->msgs_dropped == 101);
  CHECK(nodes[1]->warnings == warnings + 1);
  struct transport_peer_info info;
  CHECK(transport_peer_info(&nodes[1]->t, 1, &info) == 0);
  CHECK(info.connected && info.queued_msgs == 0);
  CHECK(send_simple(nodes[1], 1, 7, 10) == 0);
  WAIT_UNTIL(&e, WAIT_MS, nodes[0]->t.stats.msgs_received == 1);
  CHECK(nodes[0]->last_context_from[2] == 7);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void net_bad_configs_are_refused_and_still_close(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  struct {
    const char *what;
    int want;
  } cases[] = {{"engine", SABHA_EPROTO},      {"cluster", SABHA_EINVAL},
               {"peer host", SABHA_EINVAL},   {"self peer", SABHA_EINVAL},
               {"listen host", SABHA_EINVAL}, {"port in use", SABHA_EIO}};
  struct node *holder = node_new();
  node_config(holder, 1, ids, 2, ports);
  CHECK(node_start(holder, &e) == 0);
  for (size_t i = 0; i < N(cases); i++) {
    node_config(nodes[0], 2, ids, 2, ports);
    nodes[0]->peers[0].port = 1;
    switch (i) {
    case 0:
      nodes[0]->cfg.engine = "zab";
      break;
    case 1:
      nodes[0]->cfg.cluster_id = "";
      break;
    case 2:
      nodes[0]->peers[0].host = "localhost"; /* not numeric */
      break;
    case 3:
      nodes[0]->peers[0].id = 2;
      break;
    case 4:
      nodes[0]->cfg.listen_host = "::zz";
      break;
    case 5:
      nodes[0]->cfg.listen_port = transport_port(&holder->t);
      break;
    }
    int rc = transport_init(&e.loop, &nodes[0]->t, &nodes[0]->cfg);
    nodes[0]->t.data = nodes[0];
    nodes[0]->open = true;
    if (rc != cases[i].want)
      fprintf(stderr, "%s: got %s\n", cases[i].what, sabha_strerror(rc));
    CHECK(rc == cases[i].want);
    CHECK(strlen(transport_errmsg(&nodes[0]->t)) > 0);
    /* Whatever init returned, close works and calls back. */
    node_stop(nodes[0]);
    WAIT_UNTIL(&e, WAIT_MS, !nodes[0]->open);
    CHECK(!nodes[0]->open);
  }
out:
  node_stop(holder);
  WAIT_UNTIL(&e, WAIT_MS, !holder->open);
  free(holder);
  if (!teardown(&e, nodes, 1))
    failures++;
}

static void net_close_drops_queued_messages_and_counts_them(void) {
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  CHECK(pair_connected(&e, nodes));
  int queued = 0;
  for (int i = 0; i < 100; i++)
    queued += send_simple(nodes[1], 1, (uint64_t)i, 1000) == 0;
  CHECK(queued == 100);
  node_stop(nodes[1]);
  WAIT_UNTIL(&e, WAIT_MS, !nodes[1]->open);
  const struct transport_stats *s = &nodes[1]->t.stats;
  /* Every queued message was either written or counted as dropped. */
  CHECK(s->msgs_sent + s->msgs_dropped_conn_lost == 100);
  CHECK(s->peers_connected == 0);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void net_connections_beyond_the_limit_are_refused(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  enum { FAKES = TRANSPORT_CONNS_MAX + 6 };
  struct fake *fakes = calloc(FAKES, sizeof *fakes);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  CHECK(fakes != NULL);
  node_config(nodes[0], 1, ids, 2, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  /* Strangers that connect and say nothing hold a connection each until
   * the handshake deadline; beyond the limit the oldest are turned away. */
  for (int i = 0; i < FAKES; i++)
    fake_connect(&fakes[i], &e, transport_port(&nodes[0]->t));
  WAIT_UNTIL(&e, WAIT_MS, s->refused[HS_REFUSED_LIMIT] == 6);
  CHECK(s->refused[HS_REFUSED_LIMIT] == 6);
  CHECK(nodes[0]->t.n_conns <= TRANSPORT_CONNS_MAX);
out:
  fakes_free(&e, fakes, FAKES);
  if (!teardown(&e, nodes, 1))
    failures++;
}

/* Strangers that connect and say nothing, as many as the limit allows and
 * each reopened as soon as the deadline closes it, once kept every peer
 * out: the dialer's connection was the one past the limit. A handshaking
 * stranger now makes room for it. */
static void net_strangers_holding_every_slot_do_not_keep_a_peer_out(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  enum { FAKES = TRANSPORT_CONNS_MAX };
  struct fake *fakes = calloc(FAKES, sizeof *fakes);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  CHECK(fakes != NULL);
  node_config(nodes[0], 1, ids, 2, ports);
  nodes[0]->cfg.handshake_timeout_ms = 3 * WAIT_MS; /* outlasts the test */
  CHECK(node_start(nodes[0], &e) == 0);
  ports[0] = transport_port(&nodes[0]->t);
  const struct transport_stats *s = &nodes[0]->t.stats;
  for (int i = 0; i < FAKES; i++)
    fake_connect(&fakes[i], &e, ports[0]);
  WAIT_UNTIL(&e, WAIT_MS, nodes[0]->t.n_conns == TRANSPORT_CONNS_MAX);
  CHECK(nodes[0]->t.n_conns == TRANSPORT_CONNS_MAX);
  node_config(nodes[1], 2, ids, 2, ports);
  CHECK(node_start(nodes[1], &e) == 0);
  WAIT_UNTIL(&e, WAIT_MS, all_connected(nodes, 2));
  CHECK(all_connected(nodes, 2));
  CHECK(s->refused[HS_REFUSED_LIMIT] >= 1 && s->refused[HS_REFUSED_LIMIT] <= 2);
  CHECK(nodes[0]->t.n_conns <= TRANSPORT_CONNS_MAX);
out:
  fakes_free(&e, fakes, FAKES);
  if (!teardown(&e, nodes, 2))
    failures++;
}

static void net_second_connection_from_a_peer_replaces_the_first(void) {
  struct env e;
  env_init(&e);
  struct node *nodes[1] = {node_new()};
  struct fake f1, f2;
  memset(&f1, 0, sizeof f1);
  memset(&f2, 0, sizeof f2);
  uint32_t ids[2] = {1, 2};
  uint16_t ports[2] = {0};
  node_config(nodes[0], 1, ids, 2, ports);
  CHECK(node_start(nodes[0], &e) == 0);
  const struct transport_stats *s = &nodes[0]->t.stats;
  fake_connect(&f1, &e, transport_port(&nodes[0]->t));
  WAIT_UNTIL(&e, WAIT_MS, f1.connected || f1.failed);
  CHECK(f1.connected);
  fake_hello(&f1, 2);
  WAIT_UNTIL(&e, WAIT_MS, s->handshakes_completed == 1);
  CHECK(s->handshakes_completed == 1 && s->peers_connected == 1);
  /* Node 2 "restarted" without us noticing: it dials again. */
  fake_connect(&f2, &e, transport_port(&nodes[0]->t));
  WAIT_UNTIL(&e, WAIT_MS, f2.connected || f2.failed);
  CHECK(f2.connected);
  fake_hello(&f2, 2);
  WAIT_UNTIL(&e, WAIT_MS, s->handshakes_completed == 2);
  CHECK(s->handshakes_completed == 2);
  CHECK(s->peers_connected == 1);
  /* The new connection is the one in use: a message from it arrives. */
  struct sabha_msg m = {.type = 1, .from = 2, .to = 1, .context = 77};
  struct codec_buf b;
  codec_buf_init(&b);
  CHECK(codec_encode(&m, CODEC_KIND_RAFT, &b) == 0);
  fake_write(&f2, b.data, b.size_bytes);
  codec_buf_free(&b);
  WAIT_UNTIL(&e, WAIT_MS, s->msgs_received == 1);
  CHECK(s->msgs_received == 1 && nodes[0]->last_context_from[2] == 77);
  CHECK(s->peers_connected == 1 && s->frames_corrupt == 0);
out:
  fake_close(&f1);
  fake_close(&f2);
  WAIT_UNTIL(&e, WAIT_MS, !f1.open && !f2.open);
  if (!teardown(&e, nodes, 1))
    failures++;
}

static void net_close_from_inside_the_message_callback_is_safe(void) {
  pool_fill();
  struct env e;
  env_init(&e);
  struct node *nodes[2] = {node_new(), node_new()};
  CHECK(pair_connected(&e, nodes));
  nodes[0]->close_on_message = true;
  /* A burst, so that several frames arrive in one read: none after the
   * first may reach the callback once the transport is closing. */
  for (int i = 0; i < 20; i++)
    CHECK(send_simple(nodes[1], 1, (uint64_t)i, 10) == 0);
  WAIT_UNTIL(&e, WAIT_MS, !nodes[0]->open);
  CHECK(!nodes[0]->open);
  CHECK(nodes[0]->received_from[2] == 1);
  CHECK(nodes[0]->t.stats.msgs_received == 1);
out:
  if (!teardown(&e, nodes, 2))
    failures++;
}

struct test {
  const char *name;
  void (*fn)(void);
};

#define TEST(fn)                                                               \
  { #fn, fn }
static const struct test tests[] = {
    TEST(net_three_nodes_exchange_messages_of_every_shape),
    TEST(net_three_nodes_with_a_secret_exchange_messages),
    TEST(net_corked_messages_with_a_secret_go_in_bundles),
    TEST(net_three_nodes_with_tls_exchange_messages),
    TEST(net_three_nodes_with_tls_and_a_secret_exchange_messages),
    TEST(net_tls_peer_with_a_certificate_of_another_ca_is_refused),
    TEST(net_tls_peer_whose_certificate_names_another_node_is_refused),
    TEST(net_tls_peer_without_tls_is_refused),
    TEST(net_peer_with_wrong_cluster_id_is_refused),
    TEST(net_peer_with_wrong_engine_is_refused),
    TEST(net_peer_with_a_secret_where_none_is_set_is_refused),
    TEST(net_peer_with_wrong_secret_is_refused),
    TEST(net_peer_with_unknown_node_id_is_refused),
    TEST(net_node_at_a_peers_address_with_another_id_is_refused),
    TEST(net_peer_that_goes_away_and_comes_back_is_reconnected),
    TEST(net_full_queue_drops_instead_of_blocking),
    TEST(net_peer_that_stops_reading_makes_us_drop_not_grow),
    TEST(net_corrupt_frame_closes_the_connection),
    TEST(net_frame_with_a_wrong_mac_closes_the_connection),
    TEST(net_stranger_is_refused_before_we_buffer_its_bytes),
    TEST(net_strangers_refused_again_and_again_do_not_fill_the_log),
    TEST(net_member_address_matches_in_either_ip_family),
    TEST(net_send_to_unknown_or_unconnected_peer_is_refused),
    TEST(net_message_too_big_is_dropped_counted_and_logged),
    TEST(net_bad_configs_are_refused_and_still_close),
    TEST(net_close_drops_queued_messages_and_counts_them),
    TEST(net_connections_beyond_the_limit_are_refused),
    TEST(net_strangers_holding_every_slot_do_not_keep_a_peer_out),
    TEST(net_second_connection_from_a_peer_replaces_the_first),
    TEST(net_close_from_inside_the_message_callback_is_safe),
};

int main(int argc, char **argv) {
  size_t n_run = 0;
  for (size_t i = 0; i < N(tests); i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
      continue;
    int failures_before = failures;
    tests[i].fn();
    n_run++;
    printf("%s %s\n", failures == failures_before ? "ok  " : "FAIL",
           tests[i].name);
    fflush(stdout);
  }
  if (n_run == 0) {
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  printf("%zu tests, %d failed\n", n_run, failures);
  return failures ? 1 : 0;
}
