/* sabhad: one member of a sabha cluster as a process.
 *
 * What a node decides and answers is the node runtime's (src/node/runtime.h,
 * docs/runtime.md), the same code the simulator runs under every fault.
 * sabhad adds only what a process needs around it (node.c): a libuv loop,
 * the TCP peer transport (src/net), POSIX files under the WAL, the RESP
 * client listener and the HTTP listener for /metrics, /status and /health
 * (node_http.c). docs/operations.md is the operator's guide to every
 * setting below.
 *
 * This header is what sabhad_main.c needs: the settings, their parser, and
 * srv_run(). */
#ifndef SABHA_SERVER_NODE_H
#define SABHA_SERVER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sabha/engine.h"

#define SRV_HOST_BYTES_MAX 64u
#define SRV_PATH_BYTES_MAX 1024u
#define SRV_SECRET_BYTES_MAX 256u
/* A shorter secret is refused at start: a guessable one would let a
 * stranger who can reach a peer port pass the handshake (and then send any
 * message). `sabha cluster start` makes 32 random bytes, hex. */
#define SRV_SECRET_BYTES_MIN 16u
#define SRV_CLUSTER_ID_BYTES_MAX 64u
#define SRV_PASSWORD_BYTES_MAX 256u /* RT_PASSWORD_BYTES_MAX */
/* Leader priorities (RT_PRIORITY_MAX, RT_PRIORITY_DEFAULT); UNSET marks
 * one the settings did not give. */
#define SRV_GROUPS_MAX 64u
#define SRV_PRIORITY_MAX 1000u
#define SRV_PRIORITY_DEFAULT 1u
#define SRV_PRIORITY_UNSET UINT32_MAX
/* tls-handshakes-per-second's default. A handshake costs a node about
 * half a millisecond of CPU (measured: docs/operations.md, "TLS handshakes
 * per second"), so a flood gets at most about half a core of it from each
 * budget, while a thousand clients reconnecting at once (a node restarted
 * under them) all get in at once, and clients-max of them (10000) within
 * ten seconds as they retry. */
#define SRV_TLS_HANDSHAKES_PER_SECOND 1000u
/* client-query-buffer-limit may not be set below one command at its
 * largest (resp_limits_default, 16 MiB) plus a read's worth: a client that
 * sends the largest command a node takes must never be cut for it. */
#define SRV_QUERY_BYTES_MIN ((16u << 20) + (1u << 20))

/* A client password (requirepass, admin-pass): bytes, as a file holds
 * them (its trailing newline dropped). n == 0: none. */
struct srv_password {
  uint8_t bytes[SRV_PASSWORD_BYTES_MAX];
  size_t n;
};

/* A node's address: numeric IPv4 or IPv6 and a port. */
struct srv_addr {
  uint32_t id;
  char host[SRV_HOST_BYTES_MAX];
  uint16_t port;
};

/* tls-auth-clients: what a client (RESP or HTTP) must show, as in Redis.
 * Peers always show a certificate, whatever this says. */
enum srv_tls_auth {
  SRV_TLS_AUTH_NO = 0,   /* none is asked for (default) */
  SRV_TLS_AUTH_YES,      /* a certificate of the CA, or no session */
  SRV_TLS_AUTH_OPTIONAL, /* asked for; one that is shown must check out */
};

enum srv_redirect {
  SRV_REDIRECT_FORWARD = 0, /* relay commands to the leader */
  SRV_REDIRECT_MOVED = 1,   /* answer -MOVED 0 host:port */
};

/* Every setting of a node. Times in milliseconds. */
struct srv_config {
  uint32_t id;
  struct srv_addr peers[SABHA_NODES_MAX]; /* every member, this one too */
  uint32_t n_peers;
  /* Client (RESP) addresses of the members, for forwarding and -MOVED;
   * optional (a follower that does not know the leader's answers
   * -TRYAGAIN). */
  struct srv_addr peer_clients[SABHA_NODES_MAX];
  uint32_t n_peer_clients;
  char bind[SRV_HOST_BYTES_MAX]; /* default 127.0.0.1 */
  /* Each listener's own address; empty: `bind`. Peers may face a private
   * network while clients face another, and /metrics only localhost. */
  char peer_bind[SRV_HOST_BYTES_MAX];
  char client_bind[SRV_HOST_BYTES_MAX];
  char http_bind[SRV_HOST_BYTES_MAX];
  uint16_t client_port; /* default 6379 */
  uint16_t http_port;   /* default 8379 */
  char data_dir[SRV_PATH_BYTES_MAX];
  char protocol[16];                             /* default raft */
  char cluster_id[SRV_CLUSTER_ID_BYTES_MAX + 1]; /* default "sabha" */
  uint8_t secret[SRV_SECRET_BYTES_MAX];
  size_t secret_bytes; /* 0: no authentication */
  enum srv_redirect redirect;
  uint64_t compact_entries;     /* snapshot when the log has this many
                                   applied entries past the last one;
                                   default 20000; 0: never */
  uint64_t compact_bytes;       /* ... or when they hold this many bytes;
                                   default 32 MiB; 0: entries alone */
  uint32_t compact_growth_pct;  /* ... and the entries since the last one
                                   reach this % of its size; default 100 */
  uint32_t election_timeout_ms; /* minimum; the maximum is twice it;
                                   default 500 */
  uint32_t heartbeat_ms;        /* default 100 */
  /* Adaptive timing (docs/operations.md, "Adaptive timing"): the two
   * above are where the node starts; then the election timeout follows
   * the measured round trips between the floor and the ceiling. */
  bool adaptive_timing;                 /* default false: fixed */
  uint32_t election_timeout_floor_ms;   /* default 150 */
  uint32_t election_timeout_ceiling_ms; /* default 5000 */
  uint32_t tick_ms;                     /* default 5 */
  uint32_t leader_wait_ms;              /* a command waits this long for a
                                           leader, then -TRYAGAIN; default 2000 */
  uint32_t request_timeout_ms;          /* a write or read waits this long for
                                           its commit or ReadIndex; 5000 */
  uint32_t clients_max;                 /* default 10000 (lowered at start to
                                           fit the descriptor limit) */
  uint32_t wal_segment_bytes;           /* default 64 MiB */
  uint32_t slot_commands_max;           /* Multi-Paxos: commands batched into
                                           one slot; default 1 until the wire
                                           codec carries BATCH entries */
  uint32_t dedup_max;                   /* app ids (txid, request_id) remembered
                                           per application, for exactly-once
                                           retries (sm/app.h); a retry later than
                                           this many newer ids applies as new.
                                           Every node must use the same value:
                                           it decides replies. Default 100000 */
  uint32_t dedup_window_ms;             /* an app id is kept at least this long
                                           (the log's clock): a new id is
                                           refused while dedup_max younger ones
                                           are kept. 0: FIFO only. The same on
                                           every node. Default 5000 */
  /* Where fsyncs run (docs/operations.md, "Where fsyncs run"): the
   * runtime's enum rt_fsync_mode, default auto. */
  uint8_t fsync;
  /* Leader priorities: this node's (--priority; UNSET: its entry in
   * priorities, else SRV_PRIORITY_DEFAULT), and every member's by id
   * (--priorities; UNSET for one not named). */
  uint32_t priority;
  uint32_t priorities[SABHA_NODES_MAX + 1];
  bool priorities_given; /* either was set (checked: set by validation) */
  /* Consensus groups this node hosts (--groups, 1..SRV_GROUPS_MAX; every
   * member the same): group 0's log in data_dir, group g's in
   * data_dir/group-g. Default 1. */
  uint32_t groups;
  /* Limits on clients (docs/operations.md, "Limits"); rt_config in
   * src/node/runtime.h says what each does. */
  uint32_t timeout_s;          /* idle clients; 0: never; default 300 */
  uint64_t out_hard_bytes;     /* client-output-buffer-limit normal */
  uint64_t out_soft_bytes;     /*   64mb 16mb 60 by default */
  uint32_t out_soft_s;         /*   (0 bytes: that limit is off) */
  uint64_t query_bytes_max;    /* client-query-buffer-limit, 32mb */
  uint64_t clients_memory_max; /* maxmemory-clients, 256mb; 0: none */
  /* Clients (docs/operations.md, "Client authentication"). */
  struct srv_password requirepass; /* the default user's; none: no AUTH */
  struct srv_password admin_pass;  /* the admin user's, for commands that
                                      change the cluster; none: they
                                      follow requirepass */
  bool protected_mode;             /* no requirepass: loopback clients
                                      only; default on */
  /* TLS (docs/operations.md, "TLS"): when on, the client, HTTP and peer
   * ports speak only TLS, peers authenticate each other with
   * certificates of the CA, and forwarding links are TLS clients. */
  bool tls;
  char tls_cert_file[SRV_PATH_BYTES_MAX];    /* this node's, PEM */
  char tls_key_file[SRV_PATH_BYTES_MAX];     /* its key, PEM */
  char tls_ca_cert_file[SRV_PATH_BYTES_MAX]; /* the cluster's CA, PEM */
  enum srv_tls_auth tls_auth_clients;
  /* TLS handshakes served per second on each of: the client and HTTP
   * ports together, the peer port (docs/operations.md, "TLS handshakes
   * per second"); 0: no limit. Default SRV_TLS_HANDSHAKES_PER_SECOND. */
  uint32_t tls_handshakes_per_second;
  bool discard_corrupt_log; /* see wal.h DISCARDING; default off */
  bool refuse_corrupt_log;  /* see wal.h REPAIRING; default off */
  bool verbose;             /* debug logging */
  bool join; /* joining a running group (sabha cluster add): no membership
                until a leader's log or snapshot names this node; --peers
                names the members to reach (and this node) */
};

/* Fills `cfg` with the defaults (id 0 and no peers: not yet usable). */
void srv_config_init(struct srv_config *cfg);

/* Applies the command line (argv[1..argc)) to `cfg`: a --config FILE
 * anywhere on it is read first, then the flags override it. Returns 0,
 * 1 when --help was asked for (the usage is printed to `out`), or 2 with a
 * message in err for a bad flag, value or file. Also checks that the result
 * is complete (id, peers, this node among them). */
int srv_config_parse_args(struct srv_config *cfg, int argc, char **argv,
                          FILE *out, char *err, size_t err_size);

/* Reads `key = value` lines from `path` into cfg ('#' starts a comment; keys
 * are the long flags without their dashes, '-' and '_' alike). Returns 0
 * or 2 with a message in err. */
int srv_config_load_file(struct srv_config *cfg, const char *path, char *err,
                         size_t err_size);

/* True when `host` is a numeric loopback address (127.0.0.0/8, ::1, or
 * ::ffff:127.x.y.z); false for any other address and for names. A node
 * bound elsewhere must have a secret or TLS (srv_config_parse_args refuses
 * it otherwise). */
bool srv_addr_is_loopback(const char *host);

/* The digest of the settings every member must share, for the handshake
 * (net/handshake.h; its layout is in docs/wire.md, "Groups"). */
uint64_t srv_settings_digest(const struct srv_config *cfg);

/* The usage text of sabhad. */
void srv_usage(FILE *f);

/* Runs a node until SIGTERM or SIGINT (0), or a fatal error (1: cannot
 * listen, the disk failed; 2: the log cannot be recovered: the message on
 * stderr names the file and offset). */
int srv_run(const struct srv_config *cfg);

#endif
