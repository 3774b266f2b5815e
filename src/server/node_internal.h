/* Private to sabhad's host (src/server/node*.c): the libuv side of a node.
 *
 * Everything a node decides lives in the node runtime (src/node/runtime.h),
 * which the simulator runs too. What stays here is only what touches the
 * world: the event loop and its timers and signals, the peer transport, the
 * client and HTTP listeners, and one struct srv_conn per TCP connection
 * that carries a runtime stream's bytes (a client, or this node's
 * forwarding link to the leader). */
#ifndef SABHA_SERVER_NODE_INTERNAL_H
#define SABHA_SERVER_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/list.h"
#include "net/codec.h"
#include "net/tls.h"
#include "net/transport.h"
#include "node/resp.h"
#include "node/runtime.h"
#include "sabha/engine.h"
#include "server/node.h"

/* HTTP connections at once. With all taken, a new one pushes out the
 * oldest idle one, else the oldest whose request head is still incomplete
 * (answered 408), so that idle, slow or half-sent requests cannot keep
 * /health and /metrics from answering; a connection whose response is
 * being written or made, or whose body is coming, is never pushed out:
 * with only such, the new one is closed. */
#define SRV_HTTP_CONNS_MAX 256u
/* A request body (PUT /v1/kv/KEY) of at most this many bytes: 413 beyond.
 * The whole request is held in memory until it is answered. */
#define SRV_HTTP_BODY_BYTES_MAX (1u << 20)
/* The RESP reply of one HTTP key-value request, gathered before it is
 * turned into HTTP; past it, 500 (node_kv.c, reply_too_big). */
#define SRV_HTTP_KV_IN_BYTES_MAX (64u << 20)
/* Responses of a connection not yet taken by its client (held, being
 * written, sealed in its TLS session): at this many, its next request
 * waits, and a watch's events stay with the runtime (which bounds them),
 * until they are written. So a client that pipelines reads of a large
 * value and reads nothing holds this and one response, as a RESP client
 * does (RT_OUT_SOFT_BYTES). */
#define SRV_HTTP_OUT_PAUSE_BYTES (4u << 20)
/* Responses of a connection built and not yet handed to a write (its
 * `out`), and those being written (`wout`, without TLS): each at most this
 * many bytes. The pause above keeps both far below it, except when a large
 * range's JSON (up to 32 MiB itself) lands behind responses that wait: the
 * connection is then closed, counted (http_out_overflows) and logged at
 * most once per SRV_HTTP_LOG_MS, since the response cannot be sent whole
 * and its client would otherwise see only a reset. */
#define SRV_HTTP_OUT_BYTES_MAX (32u << 20)
/* A connection's key-value requests with the runtime at once: pipelined
 * requests are fed to its stream together, so that the node serves them
 * in one turn (reads share a ReadIndex round, writes a batch), their
 * replies coming back in order, one at a time (rt_stream_set_one_reply).
 * At most this many, whose commands hold at most
 * SRV_HTTP_PIPELINE_BYTES_MAX together (a larger one goes alone). */
#define SRV_HTTP_PIPELINE_MAX 128u
#define SRV_HTTP_PIPELINE_BYTES_MAX (2u << 20)
/* Requests one connection may start in one loop turn: the rest wait for
 * the next, so that a pipeline of thousands does not keep the node from
 * others' connections. */
#define SRV_HTTP_REQUESTS_PER_TURN 128u
/* An HTTP event that a client can cause again and again is logged at most
 * once per this long, with how many there were since. */
#define SRV_HTTP_LOG_MS 10000u
/* A key or a query parameter of the request line, percent-decoded. */
#define HTTP_LINE_DECODE_BYTES 2048u
/* A request head not complete this long after the connection was accepted
 * (or, kept alive, after its last response was written) is answered 408
 * and closed; a write of responses not done this long after it began is
 * dropped (its reader does not read). */
#define SRV_HTTP_HEAD_TIMEOUT_MS 5000u
#define SRV_HTTP_WRITE_TIMEOUT_MS 10000u
#define SRV_HTTP_SCAN_MS 250u
/* With TLS, each read of a client, forwarding or HTTP socket lands here, to
 * be fed to its session at once (srv_node.tls_rbuf). */
#define SRV_TLS_RBUF_BYTES (64u * 1024u)
/* With TLS, a client connection or a forwarding link whose handshake is
 * not complete this long after its TCP connection is closed: a client
 * anywhere completes one in a few round trips, and until it has, it holds
 * a slot of clients-max that it cannot use (not even to AUTH). The
 * deadline is absolute: a peer that trickles a ClientHello a byte at a
 * time does not extend it. */
#define SRV_TLS_HANDSHAKE_TIMEOUT_MS 10000u
/* Connections closed over tls-handshakes-per-second are logged at most
 * once per this long, with how many since. */
#define SRV_TLS_LIMITED_LOG_MS 10000u

/* The ports whose TLS handshakes share cfg.tls_handshakes_per_second
 * (the peer port has budgets of its own, in the transport). */
enum srv_tls_port {
  SRV_TLS_PORT_CLIENT,
  SRV_TLS_PORT_HTTP,
  SRV_TLS_PORTS,
};

struct srv_node;

/* A TCP connection carrying a runtime stream. */
struct srv_conn {
  uv_tcp_t tcp;
  uv_write_t wreq;
  uv_connect_t connect_req;
  struct srv_node *n;
  struct rt_stream *s;   /* NULL once the stream is freed */
  struct list_link link; /* in n->conns */
  /* In n->writes_due: the stream has output, written at the end of the
   * loop turn (node.c, "replies gathered per loop turn"). */
  struct list_link due;
  bool writing;           /* a take of the stream's output is being written */
  bool closing;           /* uv_close called or due */
  bool close_after_write; /* the runtime closed it with flush */
  bool reading;
  /* With TLS (node.c, "TLS"): the session; the ciphertext being written,
   * which may carry a take of the stream's output (`taken`) or only the
   * session's own bytes (handshake flights). */
  struct tls_conn *tls;
  struct codec_buf tls_out;
  bool taken;
  /* With TLS, until the handshake completes: in n->tls_handshaking, by
   * when the TCP connection opened (uv_now), for the deadline. */
  struct list_link handshaking;
  uint64_t opened_ms;
  /* The stream of an HTTP connection's /v1 requests (node_kv.c) has no
   * socket of its own: its output goes to `http`. */
  struct srv_http_conn *http;
  bool rt_closed; /* the runtime let go of it (stream_close) */
};

struct srv_http_conn {
  uv_tcp_t tcp;
  struct srv_node *n;
  struct list_link link; /* in n->https */
  uint8_t *buf; /* `small`, or a heap buffer for a request with a body */
  size_t cap, len;
  uint8_t small[8192];
  struct resp_buf out;  /* response bytes not yet handed to a write */
  struct resp_buf wout; /* those being written (no TLS) */
  uv_write_t wreq;
  bool responded; /* the last response: close once written */
  bool loopback;
  /* The key-value API (node_kv.c): the request being answered and its
   * bytes in buf, the stream it goes through, the replies read back. */
  bool kv_close;        /* close once the responses in flight are written;
                           start no request after them */
  bool kv_dropped;      /* a reply too big was answered 500: the rest of
                           what the stream writes is dropped */
  bool kv_due;          /* the stream has output, or a request may start */
  bool kv_streaming;    /* a watch: events go out as they come */
  bool reading_stopped; /* the buffer is full of pipelined requests */
  bool continued;       /* "100 Continue" sent for the request's body */
  bool body_coming;     /* a whole head is in buf, its body is not yet */
  /* The requests with the runtime, oldest first (a ring of kv_n from
   * kv_first): what each one's reply means, as the replies come in order;
   * and the bytes of their commands. kv_n > 0: the connection is busy. */
  struct srv_http_kv {
    uint8_t route;
    uint8_t skip;   /* replies to drop before its own (an AUTH) */
    bool close;     /* its response is the connection's last */
    uint32_t bytes; /* of its command */
  } kv[SRV_HTTP_PIPELINE_MAX];
  uint32_t kv_first, kv_n;
  size_t kv_bytes;
  /* Requests started (or answered at once) in loop turn `turn`
   * (srv_node.http_turn), and whether one went to the runtime. */
  uint64_t turn;
  uint32_t turn_started;
  bool turn_batched;
  struct srv_conn *bridge;
  struct resp_buf kv_cmd, kv_in, kv_json;
  /* uv_now when the next request's time began: the connection was
   * accepted, or the last request left buf, or the write that carried its
   * response ended. Only HTTP moves it: a TLS record that carries no
   * response (a handshake flight, the answer to a KeyUpdate) does not, or
   * a client that asks for key updates would hold its slot for ever
   * without a request (SRV_HTTP_HEAD_TIMEOUT_MS). */
  uint64_t head_start_ms;
  uint64_t write_ms; /* uv_now when the write in flight began */
  /* With TLS: the session, and the ciphertext being written (one write at
   * a time: handshake flights, then the response). */
  struct tls_conn *tls;
  struct codec_buf tls_out;
  bool writing;
  /* With TLS: response bytes went into the session since its last drain
   * (sealed), and the write in flight carries some (tls_write_response). */
  bool tls_sealed_response;
  bool tls_write_response;
};

struct srv_node {
  struct srv_config cfg;
  uv_loop_t loop;
  uv_timer_t tick_timer;
  uv_check_t check;     /* runs the runtime after each iteration's I/O */
  uv_idle_t idle;       /* keeps the loop from blocking while work is due */
  uv_prepare_t prepare; /* before each poll: the clocks read afresh after */
  /* The runtime's clocks, read once per stretch of a loop turn (node.c,
   * port_mono_us): valid while the flags say so. */
  uint64_t mono_us, wall_ms;
  bool mono_read, wall_read;
  uv_signal_t sig_term, sig_int;
  uv_tcp_t client_listener, http_listener;
  bool client_listening, http_listening;
  struct transport transport;
  bool transport_open;
  /* cfg.tls: this node's certificate, key and CA, for every port and the
   * forwarding links; and where TLS connections' reads land (libuv hands
   * each read back at once, so one buffer serves them all). */
  struct tls_ctx *tls;
  uint8_t *tls_rbuf;
  /* cfg.tls_handshakes_per_second on the client and HTTP ports: one
   * budget for connections from where a member's peer link comes from
   * (its forwarding link), one for everyone else (srv_tls_admit); what
   * went over them, by port, and its log. */
  struct rate_bucket tls_members, tls_others;
  uint64_t tls_limited[SRV_TLS_PORTS];
  uint64_t tls_limited_unlogged;
  uint64_t tls_limited_log_due_ms; /* uv_now */
  struct rt *rt; /* group 0's runtime: clients, HTTP and INFO start there */
  struct rt *groups[SRV_GROUPS_MAX]; /* every group's, groups[0] == rt */
  uint32_t n_groups;
  /* The group whose runtime the loop is in (port_sync_later's). */
  uint32_t cur_group;
  /* The disk thread, shared by the groups: one job at a time on libuv's
   * thread pool syncs every group that asked since the last one began, with
   * one fsync for all where the file system allows (rt_sync_work_many), so
   * N groups cost about what one does. A stop waits for the job. */
  struct srv_disk {
    uv_work_t work;
    uint64_t asked;   /* groups whose fsync is due and not yet begun */
    uint64_t syncing; /* groups the running job covers */
    bool busy;
    bool each; /* ... with one fdatasync per log (a snapshot is out) */
    uint64_t jobs, logs_synced; /* for INFO: logs per job */
  } disk;
  /* Snapshot writes (ports.snapshot_later), one per group at most, on the
   * same pool beside the fsync jobs. A stop waits for them too. */
  struct srv_snap {
    uv_work_t work;
    struct srv_node *n;
    uint32_t group;
    bool busy;
  } snap[SRV_GROUPS_MAX];
  uint32_t snaps_busy;
  bool stopping;
  int stop_rc;         /* 1 when the final sync failed */
  uint64_t started_ms; /* wall clock */

  struct list_link conns;      /* struct srv_conn */
  struct list_link writes_due; /* struct srv_conn, by `due` */
  /* struct srv_conn, by `handshaking`, oldest first: TLS handshakes not
   * yet complete (SRV_TLS_HANDSHAKE_TIMEOUT_MS) */
  struct list_link tls_handshaking;
  struct list_link https; /* oldest first */
  uint32_t n_http;
  uv_timer_t http_timer;         /* SRV_HTTP_HEAD_TIMEOUT_MS and the like */
  uint64_t http_head_timeouts;   /* answered 408: the head came too slowly */
  uint64_t http_evicted;         /* answered 408 to make room for a new one */
  uint64_t http_refused;         /* closed at once: every slot was busy */
  uint64_t http_replies_too_big; /* answered 500: over kv_in's bound */
  uint64_t http_replies_too_big_unlogged;
  uint64_t http_too_big_log_due_ms; /* uv_now */
  /* Closed: a response would not fit SRV_HTTP_OUT_BYTES_MAX behind those
   * not yet written; and those not yet logged, and when the next may be. */
  uint64_t http_out_overflows;
  uint64_t http_out_overflows_unlogged;
  uint64_t http_out_log_due_ms; /* uv_now */
  /* Loop turns, for SRV_HTTP_REQUESTS_PER_TURN. */
  uint64_t http_turn;
  /* Key-value requests handed to the runtime, and the groups of them one
   * connection started in one turn. */
  uint64_t http_kv_requests, http_kv_batches;
};

/* node.c */
uint64_t srv_wall_ms(void);
void srv_log(struct srv_node *n, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* node.c: no blocking in the next poll (there is work due at once). */
void srv_kick(struct srv_node *n);

/* node.c: the session a connection accepted on a client or HTTP port gets
 * (tls-auth-clients says what it asks of the client), or NULL when memory is
 * short. */
struct tls_conn *srv_tls_accept(struct srv_node *n);
/* With TLS: whether a connection just accepted on `port` may have its
 * handshake (tls-handshakes-per-second). If not, it is counted and logged
 * (at most once per SRV_TLS_LIMITED_LOG_MS), and the caller closes it
 * before reading a byte. */
bool srv_tls_admit(struct srv_node *n, const uv_tcp_t *tcp,
                   enum srv_tls_port port);

/* node_http.c */
int srv_http_listen(struct srv_node *n, char *err, size_t err_size);
/* Writes what c->out holds (and closes when the response said so). */
void srv_http_pump(struct srv_http_conn *c);
/* At SRV_HTTP_OUT_PAUSE_BYTES of responses not yet taken by the client. */
bool srv_http_backlogged(const struct srv_http_conn *c);
/* A request with the runtime is answered: the next may start. */
void srv_http_request_done(struct srv_http_conn *c);
/* Called from the check phase: connections whose streams have output or
 * whose next request may start. */
void srv_http_service(struct srv_node *n);
bool srv_peer_is_loopback(const uv_tcp_t *tcp);

/* node_kv.c */
struct http_request;
bool srv_kv_wants(const struct http_request *req);
/* Starts a key-value request (its bytes may leave c->buf once this
 * returns true), or answers it at once (an error). Returns false, having
 * done nothing, when it must wait for the requests before it: it would be
 * answered at once while they are not yet, or the pipeline is full. */
bool srv_kv_request(struct srv_http_conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len);
void srv_kv_service(struct srv_http_conn *c);
void srv_kv_stream_closed(struct srv_http_conn *c);
void srv_kv_free(struct srv_http_conn *c);
void srv_write_status_json(struct srv_node *n, struct resp_buf *b);
void srv_http_close(struct srv_http_conn *h);

#endif
