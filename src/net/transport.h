/* The peer transport: how one sabhad node exchanges engine messages with the
 * other members of its cluster over TCP, on a libuv loop.
 *
 * Engines are pure and hand their host messages to send; this module is the
 * host's wire. It keeps exactly one TCP connection to every peer, opens each
 * one with a handshake (handshake.h) that refuses peers of another cluster,
 * engine, version or secret, carries messages as codec frames (codec.h) in
 * both directions (with a secret, each sealed with a session tag that the
 * receiver checks before reading it: session.h), and reconnects lost
 * connections with capped, jittered exponential backoff. It never blocks and
 * never grows without bound: consensus tolerates lost messages, so when a
 * peer's send queue is full, or the peer is not connected, a message is dropped
 * and counted, never held.
 *
 * With a TLS context (tls.h), every connection is a TLS session from its
 * first byte, mutual: the dialer is the TLS client, the listener the server,
 * each must show a certificate of the context's CA, and once a HELLO names
 * the peer, its certificate must name the same node (tls_node_cn): a
 * certificate of the CA that names another node or none (a client's) is
 * refused (reason TLS). Everything above then travels inside the session.
 *
 * Connections. For each pair of nodes the one with the higher id dials the
 * one with the lower id, which only listens; so each pair has exactly one
 * connection, used in both directions, and only dialers need their peers'
 * addresses (a node needs the addresses of the peers below it). A dialer
 * dials at once when it starts; when it loses or cannot make its connection
 * it retries after a delay that starts at backoff_ms_min and doubles up to
 * backoff_ms_max until a handshake succeeds, each delay drawn uniformly from
 * its upper half with a PRNG seeded from the config (so that nodes restarted
 * together do not retry in lockstep). A listener that accepts a second
 * connection from the same peer keeps the new one: the old one is usually
 * half-dead (the peer restarted). docs/wire.md has the bytes.
 *
 * Threading and lifetime, in the libuv style: the caller allocates struct
 * transport, and every function is called from the loop's thread. The
 * message and close callbacks fire only from inside uv_run(), never from
 * within a transport_* call (the log callback may also fire from
 * transport_send(), when a write fails at once). A process may run any
 * number of transports on one or more loops: there is no global state. */
#ifndef SABHA_NET_TRANSPORT_H
#define SABHA_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/logwin.h"
#include "core/prng.h"
#include "net/codec.h"
#include "net/handshake.h"
#include "net/rate.h"
#include "net/tls.h"
#include "sabha/engine.h"

#define TRANSPORT_SECRET_BYTES_MAX 256u
/* Connections held at once, handshaking ones included, so that strangers
 * cannot exhaust memory or descriptors. One more pushes out the oldest
 * that a peer opened and is still in its handshake (refused LIMIT), so
 * that strangers cannot keep members out either; with none such, the new
 * one is accepted and closed at once (refused LIMIT). */
#define TRANSPORT_CONNS_MAX (4u * SABHA_NODES_MAX)
/* Connections closed over tls_handshakes_per_second are logged at most
 * once per this long, with how many since: a flood must not fill the log. */
#define TRANSPORT_TLS_LIMITED_LOG_MS 10000u
/* Refusals of connections from addresses that are not members' are
 * logged at most TRANSPORT_REFUSED_LOG_LINES in each
 * TRANSPORT_REFUSED_LOG_MS, and the rest counted: anyone who reaches the
 * peer port can be refused as fast as it connects. */
#define TRANSPORT_REFUSED_LOG_MS 10000u
#define TRANSPORT_REFUSED_LOG_LINES 100u

struct transport;

enum transport_log_level {
  TRANSPORT_LOG_DEBUG,
  TRANSPORT_LOG_INFO, /* a peer connected or went away */
  TRANSPORT_LOG_WARN, /* a refused handshake, a corrupt frame */
  TRANSPORT_LOG_ERROR,
};

/* A message arrived from a peer (m->from) for this node. `m` and everything
 * it points to (entries, their data, the snapshot chunk) are valid only
 * during the call: copy what must outlive it. The callback may call
 * transport_send() and transport_close(). */
typedef void (*transport_message_cb)(void *arg, const struct sabha_msg *m);
/* One line of text about what the transport did, without a newline. */
typedef void (*transport_log_cb)(void *arg, enum transport_log_level level,
                                 const char *text);
/* The transport is closed; its memory may be reused. */
typedef void (*transport_close_cb)(struct transport *t);

struct transport_peer_config {
  uint32_t id;
  /* Numeric IPv4 or IPv6 address (no name lookup) and port. Needed only for
   * peers with a lower id than this node's, which it dials; may be NULL
   * otherwise. */
  const char *host;
  uint16_t port;
};

/* The numeric fields below take their default when zero. */
struct transport_config {
  uint32_t id;            /* this node; not SABHA_NODE_NONE */
  const char *cluster_id; /* 1..HS_CLUSTER_ID_BYTES_MAX bytes */
  const char *engine;     /* "raft", "multipaxos" or "paxos" */
  /* The digest of settings every member must share (handshake.h): peers
   * whose digest differs are refused. sabhad gives its --dedup-max,
   * --dedup-window-ms and --groups (docs/wire.md). */
  uint64_t settings;
  /* Consensus groups this node hosts (1..): a message of any other group is
   * a corrupt frame (docs/wire.md). Default 1. */
  uint32_t groups;
  /* The cluster secret, or NULL (secret_bytes 0) for no authentication.
   * Copied. Every node of a cluster must have the same one, or none. */
  const uint8_t *secret;
  size_t secret_bytes; /* 0..TRANSPORT_SECRET_BYTES_MAX */
  /* TLS for every connection (see above), or NULL for plain TCP. Not
   * copied: it must outlive the transport. Every node of a cluster must
   * use TLS, or none. */
  struct tls_ctx *tls;
  const char *listen_host; /* numeric; default "127.0.0.1" */
  uint16_t listen_port;    /* 0: any free port (see transport_port()) */
  /* Every other member; copied. At most SABHA_NODES_MAX - 1. */
  const struct transport_peer_config *peers;
  uint32_t n_peers;
  /* A peer's send queue: frames waiting for or being written to the socket.
   * A message that would take it past either bound is dropped, except that
   * an empty queue always takes one message (up to the codec's limits) so
   * that a large message is never refused forever. */
  uint32_t queue_bytes_max; /* default 8 MiB */
  uint32_t queue_msgs_max;  /* default 1024 */
  uint32_t backoff_ms_min;  /* default 50 */
  uint32_t backoff_ms_max;  /* default 2000 */
  /* A connection that has not finished connect and handshake by then is
   * closed (refused TIMEOUT). */
  uint32_t handshake_timeout_ms; /* default 3000 */
  /* With TLS: the TLS handshakes per second this node serves as a
   * listener (rate.h); default 0, no limit. Each costs it asymmetric
   * crypto before it knows who is there, so a connection over the budget
   * is closed before a byte of it is read, counted
   * (tls_handshakes_limited) and logged at most once per
   * TRANSPORT_TLS_LIMITED_LOG_MS. There are two budgets of this size: one
   * for connections from an address a member completed a handshake from
   * (transport_addr_is_member), one for every other, so that strangers
   * who reach the peer port cannot keep out members that reconnect from
   * where they came before. */
  uint32_t tls_handshakes_per_second;
  uint64_t seed;                   /* for backoff jitter; default the id */
  transport_message_cb on_message; /* required */
  transport_log_cb on_log;         /* may be NULL: nothing is logged */
  void *arg;                       /* given to on_message and on_log */
};

/* Fills `cfg` with the defaults above for node `id`; the caller sets the
 * peers and callbacks. The strings are not copied until transport_init(). */
void transport_config_init(struct transport_config *cfg, uint32_t id,
                           const char *cluster_id, const char *engine);

struct transport_stats {
  uint64_t bytes_sent;     /* every byte written, handshakes included */
  uint64_t bytes_received; /* every byte read */
  uint64_t msgs_sent;      /* messages fully written to a socket */
  uint64_t msgs_received;  /* messages handed to on_message */
  uint64_t msgs_dropped;   /* the sum of the four below */
  uint64_t msgs_dropped_unconnected; /* no connection to the peer */
  uint64_t msgs_dropped_queue_full;  /* or no memory to queue it */
  uint64_t msgs_dropped_too_big;     /* beyond the codec's limits or invalid */
  uint64_t msgs_dropped_conn_lost;   /* queued, then the connection closed */
  uint64_t frames_corrupt; /* after a handshake; each closes the connection */
  /* With a secret: frames whose session MAC was wrong (session.h); each
   * closes the connection. */
  uint64_t frames_refused_mac;
  /* With a secret: frames that carried several messages (codec.h). */
  uint64_t bundles_sent;
  uint64_t peers_connected; /* now: connections past the handshake */
  uint64_t handshakes_completed;
  uint64_t handshakes_refused;        /* by this node, all reasons */
  uint64_t refused[HS_REFUSAL_COUNT]; /* by reason; [0] stays 0 */
  /* Refusals a peer told us of (its REFUSE frame), by its reason. */
  uint64_t handshakes_refused_by_peer;
  uint64_t refused_by_peer[HS_REFUSAL_COUNT];
  uint64_t dials; /* outgoing connection attempts */
  /* With TLS: connections closed unread, over tls_handshakes_per_second. */
  uint64_t tls_handshakes_limited;
};

/* A peer as the transport sees it, for status pages and tests. */
struct transport_peer_info {
  bool connected;
  uint64_t queued_bytes; /* waiting for or being written to the socket */
  uint32_t queued_msgs;
  uint32_t attempts; /* retries since the last handshake (each waits
                        longer) */
};

struct transport_conn; /* private: one TCP connection */

/* Private: what the transport knows about one peer. */
struct transport_peer {
  uint32_t id;
  bool dial;                      /* lower id: we dial it */
  struct sockaddr_storage addr;   /* valid when dial */
  struct transport_conn *conn;    /* past the handshake, or NULL */
  struct transport_conn *dialing; /* our attempt in progress, or NULL */
  uv_timer_t timer;               /* the next dial */
  uint32_t attempts;
  struct transport *t;
  /* The other end's address (its port aside) on the last connection that
   * completed a handshake, if any: where the member's connections come
   * from (transport_addr_is_member). */
  struct sockaddr_storage seen;
  bool seen_valid;
};

struct transport {
  /* Public: free for the user. */
  void *data;
  /* Read-only. */
  struct transport_stats stats;
  /* Private. */
  uv_loop_t *loop;
  struct transport_config cfg; /* strings and arrays point into the below */
  char cluster_id[HS_CLUSTER_ID_BYTES_MAX + 1];
  char engine[HS_ENGINE_BYTES_MAX + 1];
  char listen_host[64];
  uint8_t secret[TRANSPORT_SECRET_BYTES_MAX];
  uint8_t kind; /* enum codec_kind of the engine */
  uv_tcp_t listener;
  struct transport_peer peers[SABHA_NODES_MAX];
  uint32_t n_peers;
  struct transport_conn *conns; /* every open connection, a list */
  bool corked;                  /* transport_cork() */
  uint32_t n_conns;
  struct sabha_entry *scratch; /* CODEC_ENTRIES_MAX, for decoding */
  /* With TLS: where every connection's ciphertext is read to, to be fed to
   * its session at once (libuv reads into it and hands it back within one
   * callback, so one buffer serves them all). */
  uint8_t *tls_rbuf;
  struct prng prng;
  /* Messages the codec refused are logged at most once per
   * TRANSPORT_TOO_BIG_LOG_MS (transport.c), with how many since. */
  uint64_t too_big_log_due_ms;
  uint64_t too_big_unlogged;
  /* cfg.tls_handshakes_per_second's budgets, and the log of what went
   * over them (like the one above). */
  struct rate_bucket tls_members, tls_strangers;
  uint64_t tls_limited_log_due_ms;
  uint64_t tls_limited_unlogged;
  /* The refusals of strangers' connections logged (conn_refuse). */
  struct log_window refused_log;
  uint32_t handles_open; /* uv handles not yet closed */
  bool closing;
  transport_close_cb close_cb;
  char errmsg[160];
};

/* Starts a transport for cfg->id on `loop`: binds and listens on
 * listen_host:listen_port and schedules a dial of every peer with a lower
 * id (at once, from the loop). Returns 0, SABHA_EINVAL for a bad config (an id
 * of 0 or twice, too many peers, an address that does not parse, a string too
 * long), SABHA_EPROTO for an unknown engine, SABHA_EIO when the address
 * cannot be bound (transport_errmsg() says why), or SABHA_ENOMEM. Whatever
 * it returns, the caller must call transport_close() and wait for its
 * callback before reusing or freeing `t`. */
int transport_init(uv_loop_t *loop, struct transport *t,
                   const struct transport_config *cfg);

/* Closes every connection and the listener; messages still queued are
 * dropped (and counted). `cb` (may be NULL) fires from the loop once every
 * handle is closed; after it, nothing of `t` is in use. No callback of `t`
 * other than `cb` fires after this call. Calling it twice is a programmer
 * error. */
void transport_close(struct transport *t, transport_close_cb cb);

/* Corked, transport_send() only queues; uncorking writes everything
 * queued, straight to each socket when it takes it all (one syscall, no
 * write request), else through a write request as uncorked sends go. A
 * host that sends many messages at once corks around them, so that each
 * peer gets them in one write, not one per message: sabhad keeps its
 * transport corked and uncorks at the end of each loop turn. */
void transport_cork(struct transport *t);
void transport_uncork(struct transport *t);

/* Queues `m` for peer m->to (m->from must be this node). The message is
 * encoded at once, so `m` and what it points to may change as soon as this
 * returns. Returns 0 (queued: it will be written unless the connection
 * closes first); SABHA_EUNAVAILABLE (no connection to the peer),
 * SABHA_EBUSY (the peer's queue is full), SABHA_ETOOBIG or SABHA_EINVAL (the
 * codec refuses m: also logged as an error, at most once every ten seconds,
 * as no engine should build such a message), SABHA_ENOMEM: in all of these
 * the message is dropped and counted; or SABHA_EINVAL when m->to is not a
 * configured peer (not counted: a configuration error the caller should
 * report). Drops are normal operation: the engines resend. */
int transport_send(struct transport *t, const struct sabha_msg *m);

/* Adds a peer to a running transport (a member that joined the group), or
 * gives a known one a new address; a peer with a lower id is dialled at
 * once. Returns 0, or SABHA_EINVAL (id 0 or this node's, an address that
 * does not parse, SABHA_NODES_MAX - 1 peers already, or closing). */
int transport_add_peer(struct transport *t,
                       const struct transport_peer_config *pc);

/* The port the listener is bound to (useful with listen_port 0), or 0 when
 * it is not bound. */
uint16_t transport_port(const struct transport *t);

/* Fills *out for peer `id`. Returns 0 or SABHA_EINVAL (not a peer). */
int transport_peer_info(const struct transport *t, uint32_t id,
                        struct transport_peer_info *out);

/* True when `addr` is the address (its port aside) a peer's last
 * handshake with this node came from or went to, and not loopback: on
 * loopback every process of the host shares the address, so it says
 * nothing of who is calling. */
bool transport_addr_is_member(const struct transport *t,
                              const struct sockaddr *addr);
/* True for 127.0.0.0/8, ::1 and 127.x mapped into IPv6. */
bool transport_addr_is_loopback(const struct sockaddr *addr);

/* What went wrong in the last failed transport_init(), for a person. */
const char *transport_errmsg(const struct transport *t);

#endif
