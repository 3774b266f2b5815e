/* Private to the node runtime (src/server/node*.c): the structures that the
 * engine driver (node.c), the RESP clients (node_client.c), the forwarding
 * links (node_forward.c) and the HTTP endpoints (node_http.c) share.
 *
 * The life of a client command, as the structures see it. A RESP client
 * connection (struct srv_client) parses commands from its input buffer. A
 * command that can be answered at once (PING, INFO, a stale read) is
 * answered at once, if nothing earlier from the same connection still
 * waits. Anything else becomes a request (struct srv_req), queued in the
 * connection's `queue` in arrival order; replies leave strictly in that
 * order (srv_client_flush), so pipelined commands are answered in order.
 *
 * While it waits, a request sits in at most one of the node's lists, named
 * by req->where:
 *   WAIT_LEADER     no leader is known (or a leadership transfer runs); it
 *                   is dispatched again when one is, or fails with
 *                   -TRYAGAIN after leader_wait_ms;
 *   AWAIT_SESSION   a write of a connection whose kvstore session is being
 *                   registered through the log;
 *   PROPOSALS       proposed here as leader: matched with the command
 *                   when it is applied, a kvstore write by the session,
 *                   sequence number and stamp in its header, an app
 *                   command (sm/app.h) by its tag and stamp;
 *   READS           a linearizable read waiting for its ReadIndex;
 *   FORWARD         sent to the leader over a forwarding link; the link's
 *                   replies come back in order;
 *   DEFERRED        to be executed on the leader once the ready batch being
 *                   carried out is acknowledged: between sabha_engine_ready
 *                   and sabha_engine_advance the host may not call the
 *                   engine (the batch points into its log), yet applying a
 *                   REGISTER releases the writes that waited for it.
 * A request no longer in any list and marked done or readable waits only
 * for the requests before it in its connection.
 *
 * Lists are intrusive and circular (struct srv_link), so a request leaves
 * any of them in O(1) when its connection closes. Requests in a forwarding
 * link stay there as placeholders (req->c = NULL) because the link's
 * replies are matched by position. */
#ifndef SABHA_SERVER_NODE_INTERNAL_H
#define SABHA_SERVER_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/transport.h"
#include "sabha/engine.h"
#include "server/node.h"
#include "server/resp.h"
#include "sm/app.h"
#include "sm/kvstore.h"
#include "storage/wal.h"

/* ---- intrusive lists ---------------------------------------------------- */

struct srv_link {
  struct srv_link *prev, *next;
};

static inline void srv_list_init(struct srv_link *l) {
  l->prev = l->next = l;
}
static inline bool srv_list_empty(const struct srv_link *l) {
  return l->next == l;
}
static inline void srv_list_push(struct srv_link *head, struct srv_link *x) {
  x->prev = head->prev;
  x->next = head;
  head->prev->next = x;
  head->prev = x;
}
static inline void srv_list_remove(struct srv_link *x) {
  x->prev->next = x->next;
  x->next->prev = x->prev;
  x->prev = x->next = x;
}
#define SRV_OF(ptr, type, member)                                              \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- limits ------------------------------------------------------------- */

#define SRV_QUEUE_MAX                                                          \
  1024u /* requests in flight per connection; reading                          \
           pauses beyond it */
#define SRV_OUT_BYTES_MAX (256u << 20)       /* unsent replies per connection */
#define SRV_IDLE_BUFFER_BYTES_MAX (1u << 20) /* kept by an idle connection */
#define SRV_HTTP_CONNS_MAX 64u
#define SRV_FWD_BACKOFF_MS 100u /* after a failed connect to the leader */
#define SRV_TIMEOUT_SCAN_MS 50u /* how often deadlines are checked */
#define SRV_READIES_PER_DRAIN 64u

/* ---- requests ----------------------------------------------------------- */

enum srv_where {
  SRV_IN_NONE = 0,
  SRV_IN_WAIT_LEADER,
  SRV_IN_AWAIT_SESSION,
  SRV_IN_PROPOSALS,
  SRV_IN_READS,
  SRV_IN_FORWARD,
  SRV_IN_DEFERRED,
};

enum srv_req_state {
  SRV_REQ_WAITING = 0,
  SRV_REQ_DONE,     /* the reply is in req->reply */
  SRV_REQ_READABLE, /* a read whose index is applied: answered from the
                       store when it reaches the head of its queue */
};

struct srv_command;
struct srv_app_command;
struct srv_client;

struct srv_req {
  struct srv_link qlink;         /* in the client's queue (not a REGISTER) */
  struct srv_link glink;         /* in the node list that `where` names */
  struct srv_client *c;          /* NULL: the client went away (FORWARD only) */
  const struct srv_command *cmd; /* NULL for a REGISTER */
  uint8_t where;                 /* enum srv_where */
  uint8_t state;                 /* enum srv_req_state */
  bool sent;                     /* FORWARD: written to the link */
  uint32_t argc;
  struct resp_arg *argv; /* a copy: one allocation with the bytes */
  struct resp_buf reply;
  uint64_t order;      /* arrival order in the node, from 1 */
  uint64_t arrival_ms; /* uv_now */
  uint64_t deadline_ms;
  uint64_t started_us; /* for latency */
  /* PROPOSALS */
  bool is_app; /* an app command: matched by tag, no kvstore session */
  uint64_t session;
  uint64_t seq;
  uint64_t stamp_ms;
  uint64_t tag; /* app commands: n->next_tag when proposed */
  /* READS */
  uint64_t read_id;
  uint64_t read_index;
  bool has_read_index;
};

/* ---- client connections ------------------------------------------------- */

enum srv_session_state {
  SRV_SESSION_NONE = 0,
  SRV_SESSION_REGISTERING,
  SRV_SESSION_READY,
};

struct srv_node;

/* Output double buffer: `out` collects replies while `wbuf` is being
 * written by libuv (whose buffer must not move). */
struct srv_outq {
  struct resp_buf out;
  struct resp_buf wbuf;
  bool writing;
  uv_write_t wreq;
};

struct srv_client {
  uv_tcp_t tcp;
  struct srv_node *n;
  struct srv_link link; /* in n->clients */
  uint64_t id;
  uint8_t *in;
  size_t in_len, in_cap;
  struct srv_outq oq;
  struct srv_link queue; /* struct srv_req.qlink, arrival order */
  uint32_t queue_n;
  uint8_t session_state; /* enum srv_session_state */
  uint64_t session;
  uint64_t next_seq;
  struct srv_req *reg;   /* the REGISTER in flight */
  struct srv_link await; /* writes waiting for the session */
  bool stale_reads;      /* SABHA.STALE on / READONLY */
  bool forwarded_link;   /* another node's forwarding link: never forward */
  bool closing;
  bool paused;
  bool read_barrier; /* a write waits in the input for the connection's
                        earlier reads to be answered */     /* reading stopped: too many requests in flight */
  bool resume_due; /* unpaused: parse the buffered input from the loop */
  bool quit_after; /* QUIT: close once the replies are out */
  char name[64];
};

/* ---- forwarding links ---------------------------------------------------- */

struct srv_fwd {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  struct srv_node *n;
  struct srv_link link; /* in n->fwds */
  uint32_t leader;
  bool connected;
  bool closing;
  uint32_t skip_replies; /* replies to our own SABHA.FORWARDED */
  uint8_t *in;
  size_t in_len, in_cap;
  struct srv_outq oq;
  struct srv_link pending; /* struct srv_req.glink, in send order */
};

/* ---- HTTP ---------------------------------------------------------------- */

struct srv_http_conn {
  uv_tcp_t tcp;
  struct srv_node *n;
  struct srv_link link; /* in n->https */
  uint8_t buf[8192];
  size_t len;
  struct resp_buf out;
  uv_write_t wreq;
  bool responded;
};

/* ---- metrics ------------------------------------------------------------- */

#define SRV_LAT_BUCKETS 16u
extern const double srv_latency_bounds_s[SRV_LAT_BUCKETS];

struct srv_latency {
  uint64_t counts[SRV_LAT_BUCKETS + 1];
  double sum_s;
};

void srv_latency_observe(struct srv_latency *l, uint64_t us);

struct srv_metrics {
  uint64_t proposals;        /* entries proposed here */
  uint64_t proposals_failed; /* refused or timed out */
  uint64_t commits;          /* entries applied */
  uint64_t commands;         /* client commands parsed */
  uint64_t commands_failed;  /* answered with an error by the node */
  uint64_t reads;            /* linearizable reads served */
  uint64_t stale_reads;
  uint64_t forwarded;  /* commands relayed to the leader */
  uint64_t redirected; /* answered -MOVED */
  uint64_t no_leader;  /* answered -TRYAGAIN for want of a leader */
  uint64_t timeouts;   /* writes and reads that timed out */
  uint64_t snapshots_taken;
  uint64_t snapshots_installed;
  uint64_t clients_accepted;
  uint64_t clients_refused;
  uint64_t leader_changes;
  struct srv_latency commit_latency; /* propose to apply, at the leader */
  struct srv_latency read_latency;   /* read_index to served */
};

/* ---- the node ------------------------------------------------------------ */

struct srv_node {
  struct srv_config cfg;
  uv_loop_t loop;
  uv_timer_t tick_timer;
  uv_check_t check; /* drains ready batches after each iteration's I/O */
  uv_idle_t idle;   /* keeps the loop from blocking while work is due */
  uv_signal_t sig_term, sig_int;
  uv_tcp_t client_listener, http_listener;
  bool client_listening, http_listening;
  struct transport transport;
  bool transport_open;
  struct sabha_engine *engine;
  struct wal *wal;
  struct kvstore *kv;
  struct app *app; /* the applications machine, beside the store */
  uint64_t applied;
  uint32_t last_leader;
  enum sabha_role last_role;
  uint64_t next_timeout_scan_ms;
  bool work_due; /* an input since the last drain */
  bool stopping;
  int exit_code;
  uint64_t started_ms; /* wall clock */

  struct srv_link clients;
  uint32_t n_clients;
  uint64_t next_client_id;
  struct srv_link https;
  uint32_t n_http;

  bool in_ready;            /* between engine ready and advance */
  uint64_t hs_term;         /* term and vote last written to the WAL: a */
  uint32_t hs_vote;         /* batch that changes them must be fsynced */
  struct srv_link deferred; /* requests held while in_ready */
  struct srv_link wait_leader;
  struct srv_link proposals; /* in proposal order */
  struct srv_link reads;
  uint64_t next_read_id;
  uint64_t next_req_order;
  uint64_t last_stamp_ms; /* strictly increasing REGISTER stamps */
  /* The tag of the next app command proposed here: the node id in the top
   * byte, a counter from a random start below it, so that no other node,
   * nor this one before a restart, proposes the same tag (apply_command
   * would otherwise answer a client with another command's reply). */
  uint64_t next_tag;
  struct srv_app_command *app_cmds; /* a row per app command (node_client.c) */
  size_t n_app_cmds;

  struct srv_link fwds;
  struct srv_fwd *fwd; /* the link to the current leader, or NULL */
  uint32_t fwd_failed_leader;
  uint64_t fwd_failed_ms;

  struct resp_arg *argv;   /* resp_limits_default.args_max, for parsing */
  uint8_t *inline_scratch; /* resp_limits_default.inline_bytes_max */
  uint32_t n_resume_due;   /* clients with resume_due set */
  struct resp_buf scratch; /* an immediate reply being built */
  uint8_t *enc;            /* a command being encoded */
  size_t enc_cap;

  struct srv_metrics m;
};

/* node.c */
uint64_t srv_wall_ms(void);
uint64_t srv_mono_us(void);
void srv_log(struct srv_node *n, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void srv_kick(struct srv_node *n); /* an engine input happened */
const struct srv_addr *srv_client_addr_of(const struct srv_node *n,
                                          uint32_t id);
/* A request that needs the leader: execute here, forward, redirect or
 * wait. */
void srv_dispatch(struct srv_node *n, struct srv_req *r);
void srv_req_fail(struct srv_node *n, struct srv_req *r, const char *msg);
void srv_req_done(struct srv_node *n, struct srv_req *r);
void srv_req_free(struct srv_req *r);
void srv_wait_leader(struct srv_node *n, struct srv_req *r);
void srv_status(const struct srv_node *n, struct sabha_status *st);

/* node_client.c */
int srv_clients_listen(struct srv_node *n, char *err, size_t err_size);
void srv_client_flush(struct srv_client *c);
void srv_client_close(struct srv_client *c);
/* Parses the input of clients that were paused and may go on. */
void srv_clients_resume(struct srv_node *n);
/* Executes a command that needs the leader, on the leader. */
void srv_exec_leader(struct srv_node *n, struct srv_req *r);
bool srv_req_is_read(const struct srv_req *r);
void srv_session_registered(struct srv_node *n, struct srv_client *c,
                            uint64_t session);
void srv_session_failed(struct srv_node *n, struct srv_client *c,
                        const char *msg);
void srv_outq_init(struct srv_outq *q);
void srv_outq_free(struct srv_outq *q);
/* Starts writing q->out on `stream` if no write is in flight. Returns 0 or
 * a libuv error. */
int srv_outq_kick(struct srv_outq *q, uv_stream_t *stream, uv_write_cb cb);
void srv_write_kv_result(struct resp_buf *b, const struct kvstore_result *res);
/* An app machine's reply as RESP: OK +OK, INT :n, BULK $, NULL $-1, ERROR
 * -text, ARRAY * of its items. */
void srv_write_app_reply(struct resp_buf *b, const struct app_reply *rep);
/* INFO text, also used by SABHA.STATUS. */
void srv_write_info(struct srv_node *n, struct resp_buf *b,
                    const char *section);

/* Grows n->enc to hold size bytes; returns it, or NULL (no memory). */
uint8_t *srv_enc_reserve(struct srv_node *n, size_t size);

/* node_apps.c: the applications machine's side of the node */
/* Encodes an app write (argv: the arguments after the name, already
 * checked to fit) into n->enc; returns its size, or 0 (no memory). */
size_t srv_app_encode(struct srv_node *n, enum app_op op, uint32_t argc,
                      const struct resp_arg *argv, const struct app_hdr *hdr);
/* Serves an app read from this node's machine into b. */
void srv_app_read(struct srv_node *n, enum app_op op, uint32_t argc,
                  const struct resp_arg *argv, uint64_t now_ms,
                  struct resp_buf *b);
/* INFO's "# Apps" section. */
void srv_app_info(struct srv_node *n, struct resp_buf *b);

/* node_forward.c */
void srv_forward(struct srv_node *n, struct srv_req *r);
void srv_fwd_leader_changed(struct srv_node *n);
void srv_fwd_close_all(struct srv_node *n);
/* Closes a link whose leader has not answered for too long. */
void srv_fwd_scan(struct srv_node *n, uint64_t now_ms);
/* Finds the end of one RESP2 reply at the start of buf[0, len): returns 1
 * and *consumed, 0 when incomplete, -1 when malformed. Iterative. */
int srv_reply_scan(const uint8_t *buf, size_t len, size_t *consumed);
/* Appends argv as a multibulk command. */
void srv_write_command(struct resp_buf *b, uint32_t argc,
                       const struct resp_arg *argv);

/* node_http.c */
int srv_http_listen(struct srv_node *n, char *err, size_t err_size);
void srv_write_status_json(struct srv_node *n, struct resp_buf *b);
void srv_http_close(struct srv_http_conn *h);

#endif
