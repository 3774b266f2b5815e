/* sabhad's host: the node runtime (src/node/runtime.h) on a libuv loop.
 *
 * Everything a node decides, the simulator runs too; this file is only the
 * adapter that libuv needs, and stays thin on purpose:
 *
 *   time      a timer calls rt_tick() every tick_ms; the runtime reads
 *             uv_now() (monotonic) and CLOCK_REALTIME (stamps);
 *   peers     the TCP transport (src/net) hands messages to rt_step() and
 *             sends what the runtime asks, corked: a turn's messages
 *             leave at its end, one write per peer;
 *   clients   one struct srv_conn per TCP connection carries a runtime
 *             stream's bytes: reads land in the stream's own buffer (no
 *             copy), writes go out of it (rt_stream_out_take), once per
 *             connection at the end of the turn;
 *   disk      the WAL over POSIX files, written on the loop thread and
 *             fdatasynced on a disk thread (libuv's thread pool, one job
 *             at a time for all groups, which syncs every group that
 *             asked with one syncfs where it can): the loop goes on
 *             reading, replicating and applying while the disk syncs,
 *             and what waits for the fsync (acknowledgements, this
 *             node's count towards a commit) goes on when it completes;
 *   the loop  once per iteration, after that iteration's I/O callbacks (a
 *             uv_check handle), rt_run() carries out what they caused;
 *             everything written while one fsync runs shares the next
 *             (group commit that grows with the load);
 *   TLS       with tls on, every client, HTTP and peer connection and every
 *             forwarding link carries a TLS session (src/net/tls.h)
 *             between the socket and the runtime: reads are fed to it and
 *             what it decrypts goes to the stream; a take of the stream's
 *             output is sealed and its ciphertext written, and the take
 *             counts as written when that write completes, so the
 *             runtime's bounds on unsent replies hold as without TLS.
 *
 * Nothing a client or a peer is told depends on bytes that are not yet
 * fsynced, so SIGKILL loses nothing acknowledged. Limits (file descriptors
 * among them) are checked at start-up; docs/operations.md is the operator's
 * guide to every setting. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/endian.h"
#include "net/codec.h"
#include "server/node_internal.h"

/* Descriptors kept for everything but clients: per group's log, three
 * held (the active segment, opened a second time for the disk job's fsync,
 * and a segment left while that fsync still runs); the snapshot, hard state
 * and directory files opened for a moment, the listeners, peers (two per
 * peer while one reconnects), other nodes' forwarding links (let in past
 * clients-max), HTTP connections, the loop's own, and slack. */
#define SRV_FDS_PER_LOG 3u
#define SRV_FDS_RESERVED(groups)                                               \
  (64u + SRV_FDS_PER_LOG * (groups) + 3u * SABHA_NODES_MAX + SRV_HTTP_CONNS_MAX)

/* ---- clocks and logging ------------------------------------------------- */

uint64_t srv_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void srv_log(struct srv_node *n, const char *level, const char *fmt, ...) {
  if (strcmp(level, "DEBUG") == 0 && !n->cfg.verbose)
    return;
  char when[32];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s.%03ldZ sabhad[%u] %s %s\n", when,
          (long)(ts.tv_nsec / 1000000), n->cfg.id, level, text);
}

/* ---- the runtime's ports ------------------------------------------------ */

static uint64_t port_now_ms(void *ctx) {
  struct srv_node *n = ctx;
  return uv_now(&n->loop);
}

/* The runtime reads the clocks for every request (a write's stamp, its
 * start and end for the latency figures): three clock_gettime() calls a
 * write, a few percent of a leader's CPU under pipelined load. Instead
 * each clock is read once per stretch of a loop turn and kept: the poll's
 * callbacks share one reading, taken after the poll returned (the prepare
 * handle forgets the last before it blocks); the check phase, where
 * batches commit, takes a new one, as does each fsync completion. A
 * request's times are then those of the turn it was read in and the one it
 * was answered in, and a stamp is never ahead of the wall clock, only
 * behind it by part of a turn. */
static void clocks_forget(struct srv_node *n) {
  n->mono_read = false;
  n->wall_read = false;
}

static void on_prepare(uv_prepare_t *h) {
  clocks_forget(h->data);
}

static uint64_t port_wall_ms(void *ctx) {
  struct srv_node *n = ctx;
  if (!n->wall_read) {
    n->wall_ms = srv_wall_ms();
    n->wall_read = true;
  }
  return n->wall_ms;
}

static uint64_t port_mono_us(void *ctx) {
  struct srv_node *n = ctx;
  if (!n->mono_read) {
    n->mono_us = uv_hrtime() / 1000u;
    n->mono_read = true;
  }
  return n->mono_us;
}

static void port_kick(void *ctx);

/* The transport stays corked: what the runtime sends in a loop turn is
 * queued and leaves at the end of the turn (on_check), in one write per
 * peer. The kick keeps the loop from blocking in poll first, should a
 * send ever come after this turn's check phase. */
static void port_send(void *ctx, const struct sabha_msg *m) {
  struct srv_node *n = ctx;
  int rc = transport_send(&n->transport, m);
  if (rc == SABHA_EINVAL && m->to != n->cfg.id)
    srv_log(n, "DEBUG", "cannot send to node %u: %s", m->to,
            sabha_strerror(rc));
  else if (rc == 0)
    port_kick(n);
}

/* The idle handle does nothing but keep libuv from blocking in poll while
 * the runtime has work due (rt_run runs in the check phase). */
static void on_idle(uv_idle_t *h) {
  (void)h;
}

static void port_kick(void *ctx) {
  struct srv_node *n = ctx;
  if (!n->stopping && !uv_is_active((uv_handle_t *)&n->idle))
    uv_idle_start(&n->idle, on_idle);
}

void srv_kick(struct srv_node *n) {
  port_kick(n);
}

/* ---- the disk thread -------------------------------------------------------
 */

static void stop_runtime(struct srv_node *n);

/* On a pool thread: the fsyncs alone (rt_sync_work_many touches only the
 * jobs of the groups it covers, which the loop leaves alone meanwhile). */
static void on_disk_work(uv_work_t *req) {
  struct srv_node *n = req->data;
  struct rt *rts[SRV_GROUPS_MAX];
  size_t k = 0;
  for (uint32_t g = 0; g < n->n_groups; g++)
    if (n->disk.syncing & (UINT64_C(1) << g))
      rts[k++] = n->groups[g];
  if (n->disk.each) {
    for (size_t i = 0; i < k; i++)
      rt_sync_work(rts[i]);
    return;
  }
  rt_sync_work_many(rts, k);
}

static void disk_start(struct srv_node *n);

/* A stop frees the runtimes once no job of theirs runs on the pool. */
static void stop_when_idle(struct srv_node *n) {
  if (!n->disk.busy && n->snaps_busy == 0)
    stop_runtime(n);
}

static void on_disk_done(uv_work_t *req, int status) {
  struct srv_node *n = req->data;
  (void)status; /* never cancelled */
  clocks_forget(n); /* what this fsync completes is answered now */
  uint64_t done = n->disk.syncing;
  n->disk.busy = false;
  n->disk.syncing = 0;
  if (n->stopping) {
    stop_when_idle(n); /* the stop waited for the fsync */
    return;
  }
  for (uint32_t g = 0; g < n->n_groups && n->rt != NULL; g++) {
    if (!(done & (UINT64_C(1) << g)))
      continue;
    n->cur_group = g;
    rt_sync_done(n->groups[g]); /* may ask for the next one */
    n->cur_group = 0;
  }
  disk_start(n);
}

/* Starts a job for every group that asked, unless one runs: what the
 * groups write meanwhile waits for the next, which grows with the load. */
static void disk_start(struct srv_node *n) {
  if (n->disk.busy || n->disk.asked == 0 || n->stopping)
    return;
  n->disk.syncing = n->disk.asked;
  n->disk.asked = 0;
  /* One syncfs() for all the logs would write back a snapshot being
   * written beside it too, and the commits would wait for the whole
   * state: while one is out, each log is fdatasynced alone. */
  n->disk.each = n->snaps_busy > 0;
  n->disk.work.data = n;
  if (uv_queue_work(&n->loop, &n->disk.work, on_disk_work, on_disk_done) != 0) {
    /* No thread pool: sync here, as a runtime without sync_later does. */
    srv_log(n, "WARN",
            "cannot queue an fsync on the disk thread; syncing "
            "on the loop");
    n->disk.busy = true;
    on_disk_work(&n->disk.work);
    on_disk_done(&n->disk.work, 0);
    return;
  }
  n->disk.busy = true;
  n->disk.jobs++;
  n->disk.logs_synced += (uint64_t)__builtin_popcountll(n->disk.syncing);
}

/* Group cur_group's fsync is due. It begins with the next job, which starts
 * at the end of this loop turn's check phase (every group that asks in the
 * turn shares it) or when the running one completes. */
static bool port_sync_later(void *ctx) {
  struct srv_node *n = ctx;
  assert(!(n->disk.asked & (UINT64_C(1) << n->cur_group)));
  n->disk.asked |= UINT64_C(1) << n->cur_group;
  if (!n->disk.busy)
    port_kick(n); /* the check phase starts it, at the latest */
  return true;
}

/* On a pool thread: one group's snapshot file, written and fsynced. */
static void on_snap_work(uv_work_t *req) {
  struct srv_snap *j = req->data;
  rt_snapshot_work(j->n->groups[j->group]);
}

static void on_snap_done(uv_work_t *req, int status) {
  struct srv_snap *j = req->data;
  struct srv_node *n = j->n;
  (void)status; /* never cancelled */
  j->busy = false;
  n->snaps_busy--;
  if (n->stopping) {
    stop_when_idle(n); /* the file is left for recovery to delete */
    return;
  }
  n->cur_group = j->group;
  rt_snapshot_done(n->groups[j->group]);
  n->cur_group = 0;
}

/* Snapshot writes at once on libuv's pool: 2 fewer than its threads (4
 * unless UV_THREADPOOL_SIZE says otherwise), at most 2, so that the fsync
 * job always finds a thread (every group's commits would wait behind the
 * snapshots) with one to spare. */
static uint32_t snap_jobs_max(void) {
  const char *env = getenv("UV_THREADPOOL_SIZE");
  long threads = env != NULL ? strtol(env, NULL, 10) : 4;
  if (threads < 1)
    threads = 4; /* what libuv does with a value it cannot use */
  return threads <= 2 ? 0u : threads - 2 >= 2 ? 2u : (uint32_t)(threads - 2);
}

/* Group cur_group's snapshot is ready to be written: on the pool, so that
 * the loop goes on committing while the whole state goes to the disk. */
static bool port_snapshot_later(void *ctx) {
  struct srv_node *n = ctx;
  struct srv_snap *j = &n->snap[n->cur_group];
  assert(!j->busy);
  j->n = n;
  j->group = n->cur_group;
  j->work.data = j;
  if (n->stopping || n->snaps_busy >= snap_jobs_max() ||
      uv_queue_work(&n->loop, &j->work, on_snap_work, on_snap_done) != 0)
    return false; /* the runtime writes it itself */
  j->busy = true;
  n->snaps_busy++;
  return true;
}

/* Before a sync on the loop: the peer messages corked so far leave now
 * (on_check would send them after the fsync). The transport alone: no
 * runtime call here. */
static void port_flush(void *ctx) {
  struct srv_node *n = ctx;
  if (n->transport_open) {
    transport_uncork(&n->transport);
    transport_cork(&n->transport);
  }
}

static void port_fatal(void *ctx, enum rt_fatal kind, const char *why) {
  struct srv_node *n = ctx;
  (void)kind;
  srv_log(n, "FATAL", "%s; stopping (nothing unsynced was acknowledged)", why);
  fflush(stderr);
  /* Everything acknowledged is on disk: leaving at once is safe, and safer
   * than running on with a log in an unknown state. */
  _exit(1);
}

static void port_log(void *ctx, enum rt_log_level level, const char *text) {
  static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  srv_log(ctx, names[level <= RT_LOG_ERROR ? level : RT_LOG_ERROR], "%s", text);
}

/* A new membership: its members' peer addresses go to the transport (a
 * member added after this node started is dialled or let in) and their
 * client addresses to the forwarding links. */
static void port_membership_changed(void *ctx,
                                    const struct sabha_membership *m) {
  struct srv_node *n = ctx;
  for (uint32_t i = 0; i < m->n; i++) {
    struct rt_addr peer, client;
    uint32_t id = m->members[i].id;
    if (id == n->cfg.id ||
        !rt_member_addr_parse(m->members[i].addr, &peer, &client))
      continue;
    struct transport_peer_config pc = {id, peer.host, peer.port};
    if (n->transport_open && transport_add_peer(&n->transport, &pc) != 0)
      srv_log(n, "WARN", "cannot reach new member %u at %s:%u", id, peer.host,
              peer.port);
    struct srv_addr *a = NULL;
    for (uint32_t k = 0; k < n->cfg.n_peer_clients; k++)
      if (n->cfg.peer_clients[k].id == id)
        a = &n->cfg.peer_clients[k];
    if (a == NULL && n->cfg.n_peer_clients < SABHA_NODES_MAX)
      a = &n->cfg.peer_clients[n->cfg.n_peer_clients++];
    if (a != NULL) {
      a->id = id;
      snprintf(a->host, sizeof a->host, "%s", client.host);
      a->port = client.port;
    }
  }
}

static void port_host_info(void *ctx, struct rt_host_info *hi) {
  struct srv_node *n = ctx;
  hi->pid = (long)getpid();
  hi->client_port = n->cfg.client_port;
  hi->http_port = n->cfg.http_port;
  hi->bind = n->cfg.bind;
  if (n->transport_open) {
    hi->peers_connected = n->transport.stats.peers_connected;
    hi->peer_bytes_sent = n->transport.stats.bytes_sent;
    hi->peer_bytes_received = n->transport.stats.bytes_received;
  }
  hi->disk_sync_jobs = n->disk.jobs;
  hi->disk_sync_logs = n->disk.logs_synced;
}

/* ---- connections --------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h) {
  struct srv_conn *c = h->data;
  rt_stream_free(c->s);
  tls_conn_free(c->tls);
  codec_buf_free(&c->tls_out);
  free(c);
}

static void conn_close(struct srv_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  list_remove(&c->link);
  list_remove(&c->due);
  list_remove(&c->handshaking);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* The connection is gone from under the runtime (EOF, error). */
static void conn_lost(struct srv_conn *c) {
  if (c->closing)
    return;
  rt_stream_lost(c->s);
  conn_close(c);
}

static void conn_write(struct srv_conn *c);

static void on_conn_write(uv_write_t *w, int status) {
  struct srv_conn *c = w->data;
  c->writing = false;
  /* The ciphertext of a large take is not kept once written: the runtime
   * frees the take's own buffer the same way. */
  if (c->tls_out.cap_bytes > TLS_OUT_KEEP_BYTES_MAX)
    codec_buf_free(&c->tls_out);
  /* Without TLS every write is a take; with it, only one that says so. */
  bool taken = c->tls == NULL || c->taken;
  c->taken = false;
  if (c->closing) {
    if (taken)
      rt_stream_out_done(c->s);
    return;
  }
  if (status < 0) {
    if (taken)
      rt_stream_out_done(c->s);
    conn_lost(c);
    return;
  }
  if (taken)
    rt_stream_out_done(c->s); /* may call port_stream_output again */
  if (!c->writing)
    conn_write(c);
}

/* With TLS: seals the stream's next take once the session is ready, and
 * writes it together with whatever the session has to send. */
static void conn_write_tls(struct srv_conn *c) {
  const uint8_t *data;
  size_t len;
  bool ready = tls_conn_ready(c->tls);
  if (ready && rt_stream_out_take(c->s, &data, &len)) {
    c->taken = true;
    if (tls_conn_write(c->tls, data, len) != TLS_OK) {
      c->taken = false;
      rt_stream_out_done(c->s);
      conn_lost(c);
      return;
    }
  }
  c->tls_out.size_bytes = 0;
  if (tls_conn_out_drain(c->tls, &c->tls_out) != 0 ||
      c->tls_out.size_bytes > UINT32_MAX) {
    if (c->taken)
      rt_stream_out_done(c->s);
    c->taken = false;
    conn_lost(c);
    return;
  }
  if (c->tls_out.size_bytes == 0) {
    if (c->close_after_write)
      conn_close(c);
    return;
  }
  uv_buf_t b =
      uv_buf_init((char *)c->tls_out.data, (unsigned)c->tls_out.size_bytes);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_conn_write) != 0) {
    if (c->taken)
      rt_stream_out_done(c->s);
    c->taken = false;
    conn_lost(c);
    return;
  }
  c->writing = true;
}

/* Writes the stream's output. Called only from the host's own callbacks
 * and the end of the loop turn, never from inside the runtime: a write the
 * socket takes whole is done at once (rt_stream_out_done), which runs the
 * runtime. That write is one syscall with no libuv write request, so no
 * callback a turn later and no change to the poll registration; only what
 * the socket does not take at once waits for it to drain (uv_write). */
static void conn_write(struct srv_conn *c) {
  if (c->writing || c->closing)
    return;
  if (c->tls != NULL) {
    conn_write_tls(c);
    return;
  }
  const uint8_t *data;
  size_t len;
  while (!c->writing && !c->closing) {
    if (!rt_stream_out_take(c->s, &data, &len)) {
      if (c->close_after_write)
        conn_close(c);
      return;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int sent = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (sent >= 0 && (size_t)sent == len) {
      rt_stream_out_done(c->s); /* may give it more output: the loop goes on */
      continue;
    }
    if (sent < 0 && sent != UV_EAGAIN) {
      rt_stream_out_done(c->s);
      conn_lost(c);
      return;
    }
    size_t off = sent > 0 ? (size_t)sent : 0;
    b = uv_buf_init((char *)data + off, (unsigned)(len - off));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_conn_write) != 0) {
      rt_stream_out_done(c->s);
      if (c->close_after_write)
        conn_close(c);
      else
        conn_lost(c);
      return;
    }
    c->writing = true;
  }
}

/* Replies gathered per loop turn: the runtime's output of a turn (every
 * reply an apply, a read or a parse produced) is written once per
 * connection at the end of the turn, not as each reply appears. Without
 * TLS only: a TLS session writes as before (conn_write_tls). */
static void conn_write_later(struct srv_conn *c) {
  if (c->writing || c->closing || !list_empty(&c->due))
    return;
  list_push(&c->n->writes_due, &c->due);
  port_kick(c->n);
}

static void conns_write_due(struct srv_node *n) {
  /* Bounded: a connection comes back only with new output, which only
   * its finished requests supply. */
  while (!list_empty(&n->writes_due)) {
    struct srv_conn *c = LIST_OF(n->writes_due.next, struct srv_conn, due);
    list_remove(&c->due);
    conn_write(c);
  }
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct srv_conn *c = h->data;
  (void)suggested;
  if (c->tls != NULL) {
    *buf = uv_buf_init((char *)c->n->tls_rbuf, SRV_TLS_RBUF_BYTES);
    return;
  }
  size_t cap = 0;
  uint8_t *p = rt_stream_input_space(c->s, 64 * 1024, &cap);
  *buf =
      p == NULL ? uv_buf_init(NULL, 0) : uv_buf_init((char *)p, (unsigned)cap);
}

/* With TLS: the session failed (a client without TLS, a certificate
 * refused) or ended. The alert that says why goes out if the socket takes
 * it now; nothing waits for it. */
static void conn_tls_failed(struct srv_conn *c) {
  /* A stranger's failure is noise; a forwarding link's is this node unable
   * to reach its leader, which the operator must hear of. */
  bool link = rt_stream_kind(c->s) == RT_STREAM_FORWARD;
  srv_log(c->n, link ? "WARN" : "DEBUG", "%s: %s",
          link ? "forwarding link" : "client", tls_conn_errmsg(c->tls));
  struct codec_buf alert;
  codec_buf_init(&alert);
  if (!c->writing && tls_conn_out_drain(c->tls, &alert) == 0 &&
      alert.size_bytes > 0 && alert.size_bytes <= UINT32_MAX) {
    uv_buf_t b = uv_buf_init((char *)alert.data, (unsigned)alert.size_bytes);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
  codec_buf_free(&alert);
  conn_lost(c);
}

/* With TLS: `n` bytes of ciphertext are in n->tls_rbuf. Everything they
 * complete is decrypted into the stream, even past a pause: the bytes were
 * read already, and a record left inside the session would wait for more
 * input that a client waiting for its replies never sends (the runtime
 * bounds input that arrives while paused). */
static void conn_read_tls(struct srv_conn *c, size_t n) {
  if (tls_conn_feed(c->tls, c->n->tls_rbuf, n) != TLS_OK) {
    conn_lost(c);
    return;
  }
  if (!tls_conn_ready(c->tls)) {
    int st = tls_conn_handshake(c->tls);
    if (st == TLS_FAILED) {
      conn_tls_failed(c);
      return;
    }
    if (st == TLS_OK)
      list_remove(&c->handshaking); /* its deadline is met */
    if (st == TLS_OK && rt_stream_kind(c->s) == RT_STREAM_FORWARD)
      rt_stream_connected(c->s); /* only now may it carry commands */
  }
  while (tls_conn_ready(c->tls) && !c->closing && !c->close_after_write) {
    size_t cap = 0, got = 0;
    uint8_t *p = rt_stream_input_space(c->s, 64 * 1024, &cap);
    if (p == NULL) {
      conn_lost(c);
      return;
    }
    int st = tls_conn_read(c->tls, p, cap, &got);
    if (st == TLS_AGAIN)
      break;
    if (st != TLS_OK) {
      conn_tls_failed(c);
      return;
    }
    rt_stream_received(c->s, got);
  }
  conn_write(c); /* handshake flights, or nothing */
}

static void on_conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct srv_conn *c = st->data;
  (void)buf;
  if (c->closing)
    return;
  if (nread < 0) {
    conn_lost(c);
    return;
  }
  if (nread > 0 && c->tls != NULL)
    conn_read_tls(c, (size_t)nread);
  else if (nread > 0)
    rt_stream_received(c->s, (size_t)nread);
}

/* With TLS: the handshake's deadline starts now (the TCP connection is
 * open). Connections join the list in the order they open, and all have
 * the same deadline, so the list is in deadline order. */
static void conn_handshake_deadline(struct srv_conn *c) {
  c->opened_ms = uv_now(&c->n->loop);
  list_push(&c->n->tls_handshaking, &c->handshaking);
}

/* Closes the connections whose handshake missed its deadline. */
static void conns_handshake_expire(struct srv_node *n) {
  uint64_t now_ms = uv_now(&n->loop);
  while (!list_empty(&n->tls_handshaking)) {
    struct srv_conn *c =
        LIST_OF(n->tls_handshaking.next, struct srv_conn, handshaking);
    if (now_ms < c->opened_ms + SRV_TLS_HANDSHAKE_TIMEOUT_MS)
      return;
    bool link = c->s != NULL && rt_stream_kind(c->s) == RT_STREAM_FORWARD;
    srv_log(n, link ? "WARN" : "DEBUG",
            "%s: TLS handshake not complete after %u ms; closing",
            link ? "forwarding link" : "client", SRV_TLS_HANDSHAKE_TIMEOUT_MS);
    conn_lost(c); /* unlinks it */
  }
}

static void conn_read(struct srv_conn *c, bool on) {
  if (c->closing || c->reading == on)
    return;
  c->reading = on;
  if (on)
    uv_read_start((uv_stream_t *)&c->tcp, on_conn_alloc, on_conn_read);
  else
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static struct srv_conn *conn_new(struct srv_node *n, struct rt_stream *s) {
  struct srv_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->n = n;
  c->s = s;
  uv_tcp_init(&n->loop, &c->tcp);
  c->tcp.data = c;
  list_init(&c->due);
  list_init(&c->handshaking);
  list_push(&n->conns, &c->link);
  rt_stream_set_host(s, c);
  return c;
}

static void port_stream_output(void *ctx, struct rt_stream *s) {
  struct srv_conn *c = rt_stream_host(s);
  if (c != NULL && c->http != NULL) {
    c->http->kv_due = true; /* served from the check phase */
    port_kick(ctx);
    return;
  }
  if (c != NULL && c->tls != NULL && !c->writing)
    conn_write(c);
  else if (c != NULL)
    conn_write_later(c);
}

static void port_stream_pause(void *ctx, struct rt_stream *s, bool paused) {
  (void)ctx;
  struct srv_conn *c = rt_stream_host(s);
  /* An HTTP connection bounds what it feeds its stream itself
   * (SRV_HTTP_PIPELINE_MAX, SRV_HTTP_PIPELINE_BYTES_MAX): nothing to pause
   * but the runtime's parsing of it, which the runtime does. */
  if (c != NULL && c->http == NULL)
    conn_read(c, !paused);
}

static void port_stream_close(void *ctx, struct rt_stream *s, bool flush) {
  struct srv_conn *c = rt_stream_host(s);
  if (c != NULL && c->http != NULL) {
    c->rt_closed = true;
    c->http->kv_due = true;
    c->http->kv_close = true;
    port_kick(ctx);
    return;
  }
  if (c == NULL || c->closing)
    return;
  conn_read(c, false);
  if (!flush) {
    conn_close(c);
    return;
  }
  c->close_after_write = true;
  if (c->tls != NULL && !c->writing)
    conn_write(c);
  else
    conn_write_later(c);
}

static void on_fwd_connect(uv_connect_t *req, int status) {
  struct srv_conn *c = req->data;
  if (c->closing)
    return;
  if (status < 0) {
    srv_log(c->n, "DEBUG", "forwarding link: %s", uv_strerror(status));
    conn_lost(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  conn_read(c, true);
  if (c->tls == NULL) {
    rt_stream_connected(c->s);
    return;
  }
  /* The ClientHello; the link counts as connected once the leader's
   * certificate checked out (conn_read_tls). */
  conn_handshake_deadline(c);
  if (tls_conn_handshake(c->tls) == TLS_FAILED) {
    conn_tls_failed(c);
    return;
  }
  conn_write(c);
}

static int port_stream_connect(void *ctx, struct rt_stream *s, uint32_t node) {
  struct srv_node *n = ctx;
  const struct srv_addr *a = NULL;
  for (uint32_t i = 0; i < n->cfg.n_peer_clients; i++)
    if (n->cfg.peer_clients[i].id == node)
      a = &n->cfg.peer_clients[i];
  struct sockaddr_storage addr;
  if (a == NULL ||
      (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)&addr) != 0 &&
       uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)&addr) != 0))
    return -1;
  struct srv_conn *c = conn_new(n, s);
  if (c == NULL)
    return -1;
  /* The leader's client port speaks TLS too: the link is a TLS client
   * that checks the leader's certificate against the CA and shows this
   * node's (which tls-auth-clients yes asks for). The certificate must
   * name the node dialed: the CA signs every member's and the clients'
   * too, and the link carries clients' commands and brings back the
   * replies they trust. */
  if (n->tls != NULL) {
    c->tls = tls_conn_new(n->tls, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
    if (c->tls != NULL) {
      char cn[TLS_NODE_CN_BYTES_MAX];
      tls_node_cn(node, cn);
      tls_conn_expect_cn(c->tls, cn);
    }
  }
  c->connect_req.data = c;
  if (n->tls != NULL && c->tls == NULL) {
    rt_stream_set_host(s, NULL);
    c->s = NULL;
    conn_close(c);
    return -1;
  }
  int rc = uv_tcp_connect(&c->connect_req, &c->tcp,
                          (const struct sockaddr *)&addr, on_fwd_connect);
  if (rc != 0) {
    /* The runtime frees the stream itself when we say no. */
    rt_stream_set_host(s, NULL);
    c->s = NULL;
    conn_close(c);
    return -1;
  }
  return 0;
}

/* True when the connection comes from this host's loopback interface
 * (127.0.0.0/8, ::1, or 127.x mapped into IPv6): what protected mode asks. */
bool srv_peer_is_loopback(const uv_tcp_t *tcp) {
  struct sockaddr_storage sa;
  int len = (int)sizeof sa;
  return uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &len) == 0 &&
         transport_addr_is_loopback((const struct sockaddr *)&sa);
}

static void on_refused_closed(uv_handle_t *h) {
  struct srv_conn *c = h->data;
  tls_conn_free(c->tls);
  free(c);
}

struct tls_conn *srv_tls_accept(struct srv_node *n) {
  static const enum tls_verify verify[] = {
      [SRV_TLS_AUTH_NO] = TLS_VERIFY_NONE,
      [SRV_TLS_AUTH_YES] = TLS_VERIFY_REQUIRED,
      [SRV_TLS_AUTH_OPTIONAL] = TLS_VERIFY_OPTIONAL,
  };
  assert(n->tls != NULL && n->cfg.tls_auth_clients <= SRV_TLS_AUTH_OPTIONAL);
  return tls_conn_new(n->tls, TLS_ROLE_SERVER, verify[n->cfg.tls_auth_clients]);
}

bool srv_tls_admit(struct srv_node *n, const uv_tcp_t *tcp,
                   enum srv_tls_port port) {
  static const char *const names[SRV_TLS_PORTS] = {
      [SRV_TLS_PORT_CLIENT] = "client",
      [SRV_TLS_PORT_HTTP] = "HTTP",
  };
  assert(n->tls != NULL && port < SRV_TLS_PORTS);
  struct sockaddr_storage sa;
  int len = (int)sizeof sa;
  bool member =
      n->transport_open &&
      uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &len) == 0 &&
      transport_addr_is_member(&n->transport, (const struct sockaddr *)&sa);
  uint64_t now_ms = uv_now(&n->loop);
  if (rate_bucket_take(member ? &n->tls_members : &n->tls_others, now_ms))
    return true;
  n->tls_limited[port]++;
  n->tls_limited_unlogged++;
  if (now_ms >= n->tls_limited_log_due_ms) {
    srv_log(n, "WARN",
            "%" PRIu64 " connection(s) to the client and HTTP ports closed "
            "unread since the last such line, over tls-handshakes-per-second "
            "(%u%s); the last on the %s port",
            n->tls_limited_unlogged, n->cfg.tls_handshakes_per_second,
            member ? ", from a member's address" : "", names[port]);
    n->tls_limited_unlogged = 0;
    n->tls_limited_log_due_ms = now_ms + SRV_TLS_LIMITED_LOG_MS;
  }
  return false;
}

static void on_client_connection(uv_stream_t *server, int status) {
  struct srv_node *n = server->data;
  if (status < 0 || n->stopping || n->rt == NULL)
    return;
  struct srv_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->n = n;
  uv_tcp_init(&n->loop, &c->tcp);
  c->tcp.data = c;
  list_init(&c->link);
  list_init(&c->due);
  list_init(&c->handshaking);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_refused_closed);
    return;
  }
  /* Over the budget, closed before the handshake and before it takes a
   * slot of clients-max. */
  if (n->tls != NULL && (!srv_tls_admit(n, &c->tcp, SRV_TLS_PORT_CLIENT) ||
                         (c->tls = srv_tls_accept(n)) == NULL)) {
    uv_close((uv_handle_t *)&c->tcp, on_refused_closed);
    return;
  }
  const char *refusal =
      rt_stream_accept(n->rt, srv_peer_is_loopback(&c->tcp), &c->s);
  if (refusal != NULL) {
    /* In plain text a refusal would be garbage to a TLS client, which
     * sees only the connection close. */
    if (c->tls == NULL) {
      uv_buf_t b = uv_buf_init((char *)refusal, (unsigned)strlen(refusal));
      uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    uv_close((uv_handle_t *)&c->tcp, on_refused_closed);
    return;
  }
  rt_stream_set_host(c->s, c);
  list_push(&n->conns, &c->link);
  if (c->tls != NULL)
    conn_handshake_deadline(c);
  uv_tcp_nodelay(&c->tcp, 1);
  conn_read(c, true);
}

static int clients_listen(struct srv_node *n, char *err, size_t err_size);

/* ---- the engine's inputs and the loop ---------------------------------------
 */

/* ---- groups ---------------------------------------------------------------
 */

static bool group_run(struct srv_node *n, uint32_t g) {
  n->cur_group = g;
  bool more = rt_run(n->groups[g]);
  n->cur_group = 0;
  return more;
}

static void on_peer_message(void *arg, const struct sabha_msg *m) {
  struct srv_node *n = arg;
  if (n->stopping || n->rt == NULL)
    return;
  /* The transport refused a group this node does not host. */
  assert(m->group < n->n_groups);
  rt_step(n->groups[m->group], m);
}

static void on_transport_log(void *arg, enum transport_log_level level,
                             const char *text) {
  struct srv_node *n = arg;
  static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  srv_log(n, names[level <= TRANSPORT_LOG_ERROR ? level : 3], "peer: %s", text);
}

static void on_check(uv_check_t *h) {
  struct srv_node *n = h->data;
  if (n->stopping || n->rt == NULL)
    return;
  clocks_forget(n);
  n->http_turn++;
  srv_http_service(n);
  bool more = true;
  if (n->n_groups == 1) {
    more = rt_run(n->rt);
  } else {
    /* Groups hand each other commands and replies through in-process
     * links: a few rounds carry a command to its group and its reply back
     * within one iteration; what is left keeps the idle handle on. */
    for (uint32_t round = 0; round < 4 && more; round++) {
      more = false;
      for (uint32_t g = 0; g < n->n_groups; g++)
        more |= group_run(n, g);
      for (uint32_t g = 0; g < n->n_groups; g++)
        more |= rt_groups_pump(n->groups[g]);
    }
  }
  if (!more)
    uv_idle_stop(&n->idle);
  /* Replies the runtime wrote for HTTP requests in this turn: their kick
   * was undone just above, so served now, or they would wait for the next
   * wake-up of the loop (a timer, up to tick-ms: a GET took 2 ms on an
   * idle node against 0.1 over RESP). A request this starts kicks again. */
  srv_http_service(n);
  disk_start(n); /* every group that asked this turn shares the job */
  /* The turn's output leaves now, gathered: every peer's messages (every
   * group's) in one write each, every client's replies in one write each.
   * A write finished here may kick the runtime again (a paused client
   * resumes), which restarts the idle handle stopped above. */
  if (n->transport_open) {
    transport_uncork(&n->transport);
    transport_cork(&n->transport);
  }
  conns_write_due(n);
}

static void on_tick(uv_timer_t *h) {
  struct srv_node *n = h->data;
  if (n->stopping || n->rt == NULL)
    return;
  for (uint32_t g = 0; g < n->n_groups; g++)
    rt_tick(n->groups[g]);
  conns_handshake_expire(n);
}

/* ---- shutdown -------------------------------------------------------------
 */

static void on_closed_noop(uv_handle_t *h) {
  (void)h;
}

static void on_transport_closed(struct transport *t) {
  struct srv_node *n = t->data;
  n->transport_open = false;
}

static void srv_stop(struct srv_node *n) {
  if (n->stopping)
    return;
  n->stopping = true;
  srv_log(n, "INFO", "shutting down");
  uv_close((uv_handle_t *)&n->tick_timer, on_closed_noop);
  uv_close((uv_handle_t *)&n->check, on_closed_noop);
  uv_close((uv_handle_t *)&n->idle, on_closed_noop);
  uv_close((uv_handle_t *)&n->prepare, on_closed_noop);
  uv_close((uv_handle_t *)&n->sig_term, on_closed_noop);
  uv_close((uv_handle_t *)&n->sig_int, on_closed_noop);
  /* Closing the handles gives the signals back their default action: a
   * second SIGTERM (a supervisor that sends one per node, an impatient
   * operator) would then kill the node while it closes its log, and the
   * next start would find no clean close. The stop is under way; SIGKILL
   * still ends it at once. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  if (n->client_listening)
    uv_close((uv_handle_t *)&n->client_listener, on_closed_noop);
  if (n->http_listening) {
    uv_close((uv_handle_t *)&n->http_listener, on_closed_noop);
    uv_close((uv_handle_t *)&n->http_timer, on_closed_noop);
  }
  /* The runtimes go once no job of theirs runs on the disk thread. */
  stop_when_idle(n);
}

static void stop_runtime(struct srv_node *n) {
  int rc = 0;
  if (n->rt != NULL) {
    /* Closes every stream (port_stream_close) and syncs the logs. */
    for (uint32_t g = 0; g < n->n_groups; g++)
      rc |= rt_close(n->groups[g]);
    n->rt = NULL;
  }
  n->stop_rc = rc;
  /* What the last turn and the close queued leaves as it would have
   * without gathering: whatever the sockets take now. */
  conns_write_due(n);
  if (n->transport_open)
    transport_uncork(&n->transport);
  while (!list_empty(&n->conns))
    conn_close(LIST_OF(n->conns.next, struct srv_conn, link));
  while (!list_empty(&n->https))
    srv_http_close(LIST_OF(n->https.next, struct srv_http_conn, link));
  if (n->transport_open)
    transport_close(&n->transport, on_transport_closed);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct srv_node *n = h->data;
  srv_log(n, "INFO", "signal %d", signum);
  srv_stop(n);
}

/* ---- start-up -------------------------------------------------------------
 */

/* Descriptors: the soft limit is raised as far as the hard one allows, and
 * clients_max lowered to fit what is left after SRV_FDS_RESERVED, with a
 * warning: running out of descriptors would otherwise surface as a failed
 * snapshot or segment, which stops the node. */
static void fit_descriptors(struct srv_node *n) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  uint32_t reserved = SRV_FDS_RESERVED(n->cfg.groups);
  rlim_t want = (rlim_t)n->cfg.clients_max + reserved;
  if (rl.rlim_cur < want) {
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                      ? want
                      : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      getrlimit(RLIMIT_NOFILE, &rl);
    srv_log(n, "INFO", "file descriptors: soft limit raised from %llu to %llu",
            (unsigned long long)before, (unsigned long long)rl.rlim_cur);
  }
  if (rl.rlim_cur >= want)
    return;
  uint32_t fit =
      rl.rlim_cur > reserved + 1 ? (uint32_t)(rl.rlim_cur - reserved) : 1;
  srv_log(n, "WARN",
          "file descriptors: the limit is %llu, so clients-max is lowered "
          "from %u to %u (%u are kept for the log, peers and HTTP); raise "
          "the hard limit (ulimit -Hn) to serve more",
          (unsigned long long)rl.rlim_cur, n->cfg.clients_max, fit, reserved);
  n->cfg.clients_max = fit;
}

/* Memory a client's large buffers took goes back to the system when they
 * are freed. glibc serves an allocation from its heap unless it is larger
 * than the mmap threshold, and raises that threshold (up to 32 MiB) each
 * time such a block is freed: after one client's 20 MiB of replies, the
 * next ones lived in the heap, and a leader stayed at hundreds of MB long
 * after its clients had gone. A fixed threshold stops the raising: a
 * buffer of 256 KiB or more is its own mapping, unmapped by free(). */
static void return_freed_memory(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

_Static_assert(SRV_PRIORITY_MAX == RT_PRIORITY_MAX &&
                   SRV_PRIORITY_DEFAULT == RT_PRIORITY_DEFAULT,
               "sabhad's priorities are the runtime's");
_Static_assert(RT_TIMING_FLOOR_MS_MIN == 10 &&
                   RT_TIMING_CEILING_MS_MAX == 300000,
               "sabhad's bounds on adaptive timing are the runtime's");
_Static_assert(SRV_PASSWORD_BYTES_MAX <= RT_PASSWORD_BYTES_MAX,
               "a password sabhad accepts must fit the runtime's");

/* Group g's settings from group 0's: its own log directory, seed and
 * preferred leader. Without priorities set by the operator, group g
 * prefers the (g mod members)-th member, so that the groups' leaders, and
 * their work, spread over the nodes. */
static bool group_config(const struct srv_node *n, struct rt_config *rc,
                         uint32_t g) {
  rc->group = g;
  rc->n_groups = n->cfg.groups;
  if (g > 0) {
    int len = snprintf(rc->data_dir, sizeof rc->data_dir, "%s/group-%u",
                       n->cfg.data_dir, g);
    if (len < 0 || (size_t)len >= sizeof rc->data_dir)
      return false;
    rc->engine.seed += g;
    rc->tag_seed += g;
  }
  if (n->cfg.groups == 1 || n->cfg.priorities_given || rc->engine.n_voters == 0)
    return true;
  uint32_t preferred = rc->engine.voters[g % rc->engine.n_voters];
  for (uint32_t i = 1; i <= SABHA_NODES_MAX; i++)
    rc->priority[i] =
        i == preferred ? RT_PRIORITY_DEFAULT + 1 : RT_PRIORITY_DEFAULT;
  return true;
}

static int open_groups(struct srv_node *n, const struct rt_config *rc0,
                       const struct rt_ports *ports) {
  n->n_groups = n->cfg.groups;
  for (uint32_t g = 0; g < n->n_groups; g++) {
    struct rt_config rc = *rc0;
    char err[1024];
    int rv = 1;
    if (group_config(n, &rc, g))
      rv = rt_open(&n->groups[g], &rc, ports, err, sizeof err);
    else
      snprintf(err, sizeof err, "the data directory's path is too long");
    if (rv != 0) {
      srv_log(n, "FATAL", "group %u: %s", g, err);
      while (g-- > 0)
        rt_close(n->groups[g]);
      n->rt = NULL;
      return rv;
    }
  }
  rt_groups_attach(n->groups, n->n_groups);
  n->rt = n->groups[0];
  return 0;
}

static int open_runtime(struct srv_node *n) {
  uint32_t voters[SABHA_NODES_MAX];
  for (uint32_t i = 0; i < n->cfg.n_peers; i++)
    voters[i] = n->cfg.peers[i].id;
  struct rt_config rc;
  rt_config_init(&rc, n->cfg.id, voters, n->cfg.n_peers);
  rc.engine.join = n->cfg.join;
  rc.engine.election_timeout_ms_min = n->cfg.election_timeout_ms;
  rc.engine.election_timeout_ms_max = 2 * n->cfg.election_timeout_ms;
  rc.engine.heartbeat_ms = n->cfg.heartbeat_ms;
  rc.timing = n->cfg.adaptive_timing ? RT_TIMING_ADAPTIVE : RT_TIMING_FIXED;
  rc.fsync = (enum rt_fsync_mode)n->cfg.fsync;
  rc.election_timeout_ms_floor = n->cfg.election_timeout_floor_ms;
  rc.election_timeout_ms_ceiling = n->cfg.election_timeout_ceiling_ms;
  rc.engine.commands_per_slot_max = n->cfg.slot_commands_max;
  randombytes_buf(&rc.engine.seed, sizeof rc.engine.seed);
  if (codec_check_config(&rc.engine) != 0) {
    srv_log(n, "FATAL", "engine limits do not fit the wire codec");
    return 1;
  }
  snprintf(rc.protocol, sizeof rc.protocol, "%s", n->cfg.protocol);
  snprintf(rc.data_dir, sizeof rc.data_dir, "%s", n->cfg.data_dir);
  rc.wal_segment_bytes = n->cfg.wal_segment_bytes;
  rc.discard_corrupt_log = n->cfg.discard_corrupt_log;
  rc.refuse_corrupt_log = n->cfg.refuse_corrupt_log;
  rc.compact_entries = n->cfg.compact_entries;
  rc.compact_bytes = n->cfg.compact_bytes;
  rc.compact_growth_pct = n->cfg.compact_growth_pct;
  rc.leader_wait_ms = n->cfg.leader_wait_ms;
  rc.request_timeout_ms = n->cfg.request_timeout_ms;
  rc.clients_max = n->cfg.clients_max;
  rc.idle_timeout_s = n->cfg.timeout_s;
  rc.out_hard_bytes = n->cfg.out_hard_bytes;
  rc.out_soft_bytes = n->cfg.out_soft_bytes;
  rc.out_soft_s = n->cfg.out_soft_s;
  rc.query_bytes_max = n->cfg.query_bytes_max;
  rc.clients_memory_max = n->cfg.clients_memory_max;
  rc.dedup_max = n->cfg.dedup_max;
  rc.dedup_window_ms = n->cfg.dedup_window_ms;
  for (uint32_t i = 1; i <= SABHA_NODES_MAX; i++)
    rc.priority[i] = n->cfg.priorities[i] != SRV_PRIORITY_UNSET
                         ? n->cfg.priorities[i]
                         : RT_PRIORITY_DEFAULT;
  rc.redirect = n->cfg.redirect == SRV_REDIRECT_MOVED ? RT_REDIRECT_MOVED
                                                      : RT_REDIRECT_FORWARD;
  for (uint32_t i = 0; i < n->cfg.n_peer_clients; i++) {
    struct rt_addr *a = &rc.peer_clients[i];
    a->id = n->cfg.peer_clients[i].id;
    a->port = n->cfg.peer_clients[i].port;
    snprintf(a->host, sizeof a->host, "%s", n->cfg.peer_clients[i].host);
  }
  rc.n_peer_clients = n->cfg.n_peer_clients;
  snprintf(rc.cluster_id, sizeof rc.cluster_id, "%s", n->cfg.cluster_id);
  randombytes_buf(rc.kv_hash_key, sizeof rc.kv_hash_key);
  randombytes_buf(rc.app_hash_key, sizeof rc.app_hash_key);
  randombytes_buf(&rc.tag_seed, sizeof rc.tag_seed);
  rc.verbose = n->cfg.verbose;
  memcpy(rc.requirepass, n->cfg.requirepass.bytes, n->cfg.requirepass.n);
  rc.requirepass_bytes = (uint32_t)n->cfg.requirepass.n;
  memcpy(rc.admin_pass, n->cfg.admin_pass.bytes, n->cfg.admin_pass.n);
  rc.admin_pass_bytes = (uint32_t)n->cfg.admin_pass.n;
  rc.protected_mode = n->cfg.protected_mode;
  /* Forwarding links prove the same secret the peers do (auth.c). */
  if (n->cfg.secret_bytes > 0) {
    rc.link_key_set = true;
    rt_link_key_derive(n->cfg.secret, n->cfg.secret_bytes, rc.link_key);
  }
  randombytes_buf(rc.link_challenge_key, sizeof rc.link_challenge_key);
  struct rt_ports ports = {
      .ctx = n,
      .now_ms = port_now_ms,
      .wall_ms = port_wall_ms,
      .mono_us = port_mono_us,
      .send = port_send,
      .stream_output = port_stream_output,
      .stream_pause = port_stream_pause,
      .stream_close = port_stream_close,
      .stream_connect = port_stream_connect,
      .sync_later = port_sync_later,
      .snapshot_later = port_snapshot_later,
      .flush = port_flush,
      .kick = port_kick,
      .fatal = port_fatal,
      .log = port_log,
      .host_info = port_host_info,
      .membership_changed = port_membership_changed,
  };
  return open_groups(n, &rc, &ports);
}

static int open_transport(struct srv_node *n) {
  struct transport_config tc;
  transport_config_init(&tc, n->cfg.id, n->cfg.cluster_id, n->cfg.protocol);
  struct transport_peer_config peers[SABHA_NODES_MAX];
  uint32_t np = 0;
  uint16_t my_port = 0;
  for (uint32_t i = 0; i < n->cfg.n_peers; i++) {
    const struct srv_addr *a = &n->cfg.peers[i];
    if (a->id == n->cfg.id) {
      my_port = a->port;
      continue;
    }
    peers[np++] = (struct transport_peer_config){a->id, a->host, a->port};
  }
  tc.peers = peers;
  tc.n_peers = np;
  tc.listen_host = n->cfg.peer_bind;
  tc.listen_port = my_port;
  if (n->cfg.secret_bytes > 0) {
    tc.secret = n->cfg.secret;
    tc.secret_bytes = n->cfg.secret_bytes;
  }
  tc.settings = srv_settings_digest(&n->cfg);
  tc.groups = n->cfg.groups;
  tc.tls = n->tls;
  tc.tls_handshakes_per_second = n->cfg.tls_handshakes_per_second;
  tc.on_message = on_peer_message;
  tc.on_log = on_transport_log;
  tc.arg = n;
  randombytes_buf(&tc.seed, sizeof tc.seed);
  n->transport.data = n;
  int rc = transport_init(&n->loop, &n->transport, &tc);
  n->transport_open = true;
  n->transport.data = n;
  transport_cork(&n->transport); /* until the end of each turn (on_check) */
  if (rc != 0) {
    srv_log(n, "FATAL", "cannot start the peer transport on %s:%u: %s",
            n->cfg.peer_bind, my_port, transport_errmsg(&n->transport));
    return 1;
  }
  return 0;
}

/* With tls on: the context every port and link uses. Files that cannot be
 * used stop the node before it listens, saying which and why. */
static int open_tls(struct srv_node *n) {
  if (!n->cfg.tls)
    return 0;
  struct tls_ctx_config tc = {.cert_file = n->cfg.tls_cert_file,
                              .key_file = n->cfg.tls_key_file,
                              .ca_file = n->cfg.tls_ca_cert_file};
  char err[1400];
  if (tls_ctx_new(&n->tls, &tc, err, sizeof err) != 0) {
    srv_log(n, "FATAL", "%s", err);
    return 1;
  }
  n->tls_rbuf = malloc(SRV_TLS_RBUF_BYTES);
  if (n->tls_rbuf == NULL) {
    srv_log(n, "FATAL", "out of memory");
    tls_ctx_free(n->tls);
    n->tls = NULL;
    return 1;
  }
  return 0;
}

static void srv_tls_free(struct srv_node *n) {
  tls_ctx_free(n->tls);
  n->tls = NULL;
  free(n->tls_rbuf);
  n->tls_rbuf = NULL;
}

static int listen_tcp(struct srv_node *n, uv_tcp_t *h, const char *host,
                      uint16_t port, uv_connection_cb cb, const char *what,
                      char *err, size_t err_size) {
  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (rc != 0)
    rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  if (rc != 0) {
    snprintf(err, err_size, "bind address %s is not numeric", host);
    return 1;
  }
  uv_tcp_init(&n->loop, h);
  h->data = n;
  rc = uv_tcp_bind(h, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)h, 511, cb);
  if (rc != 0) {
    snprintf(err, err_size, "cannot listen for %s on %s:%u: %s", what, host,
             port, uv_strerror(rc));
    return 1;
  }
  return 0;
}

static int clients_listen(struct srv_node *n, char *err, size_t err_size) {
  n->client_listening = true;
  return listen_tcp(n, &n->client_listener, n->cfg.client_bind,
                    n->cfg.client_port, on_client_connection, "clients", err,
                    err_size);
}

static void start_loop(struct srv_node *n) {
  uv_timer_init(&n->loop, &n->tick_timer);
  n->tick_timer.data = n;
  uv_check_init(&n->loop, &n->check);
  n->check.data = n;
  uv_idle_init(&n->loop, &n->idle);
  n->idle.data = n;
  uv_prepare_init(&n->loop, &n->prepare);
  n->prepare.data = n;
  uv_prepare_start(&n->prepare, on_prepare);
  uv_signal_init(&n->loop, &n->sig_term);
  n->sig_term.data = n;
  uv_signal_init(&n->loop, &n->sig_int);
  n->sig_int.data = n;
  uv_signal_start(&n->sig_term, on_signal, SIGTERM);
  uv_signal_start(&n->sig_int, on_signal, SIGINT);
  uv_check_start(&n->check, on_check);
  uv_timer_start(&n->tick_timer, on_tick, 0, n->cfg.tick_ms);
}

int srv_run(const struct srv_config *cfg) {
  if (sodium_init() < 0) {
    fprintf(stderr, "sabhad: libsodium failed to initialize\n");
    return 1;
  }
  struct srv_node *n = calloc(1, sizeof *n);
  if (n == NULL)
    return 1;
  n->cfg = *cfg;
  list_init(&n->conns);
  list_init(&n->writes_due);
  list_init(&n->tls_handshaking);
  list_init(&n->https);
  n->started_ms = srv_wall_ms();
  return_freed_memory();
  fit_descriptors(n);

  int rc = open_tls(n);
  if (rc != 0) {
    free(n);
    return rc;
  }
  uv_loop_init(&n->loop);
  rate_bucket_init(&n->tls_members, n->cfg.tls_handshakes_per_second,
                   uv_now(&n->loop));
  rate_bucket_init(&n->tls_others, n->cfg.tls_handshakes_per_second,
                   uv_now(&n->loop));
  rc = open_runtime(n);
  if (rc != 0) {
    uv_loop_close(&n->loop);
    srv_tls_free(n);
    free(n);
    return rc;
  }
  char err[256];
  rc = open_transport(n);
  if (rc == 0 && clients_listen(n, err, sizeof err) != 0) {
    srv_log(n, "FATAL", "%s", err);
    rc = 1;
  }
  if (rc == 0 && srv_http_listen(n, err, sizeof err) != 0) {
    srv_log(n, "FATAL", "%s", err);
    rc = 1;
  }
  start_loop(n);
  if (rc == 0) {
    srv_log(n, "INFO",
            "serving: peers on %s:%u, clients on %s:%u, http on %s:%u%s, "
            "data in %s",
            n->cfg.peer_bind, transport_port(&n->transport), n->cfg.client_bind,
            n->cfg.client_port, n->cfg.http_bind, n->cfg.http_port,
            n->tls != NULL ? " (TLS only)" : "", n->cfg.data_dir);
    uv_run(&n->loop, UV_RUN_DEFAULT);
  }
  srv_stop(n);
  uv_run(&n->loop, UV_RUN_DEFAULT); /* and the stop a running fsync held */
  int stop_rc = n->stop_rc;
  int close_rc = uv_loop_close(&n->loop);
  if (close_rc != 0)
    srv_log(n, "WARN", "event loop closed with handles open: %s",
            uv_strerror(close_rc));
  srv_log(n, "INFO", "stopped");
  srv_tls_free(n);
  free(n);
  if (rc == 0 && stop_rc != 0)
    rc = 1;
  return rc;
}
