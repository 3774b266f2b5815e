/* The simulator's private state, shared by the files of src/sim:
 *
 *   sim.c      options, the event loop, phases, results
 *   queue.c    events: a pool and a binary heap keyed (time, insertion seq)
 *   net.c      links (latency, jitter, loss, dup, reorder, cuts) and packets
 *   conn.c     connections: reliable, ordered byte streams between clients
 *              and nodes, and between nodes (forwarding links)
 *   host.c     a node: the node runtime (src/node) with a clock, an inbox,
 *              fsync latency and the in-memory file system (memfs) as disk
 *   client.c   closed-loop clients speaking RESP, and the history they record
 *   nemesis.c  the random fault schedule and scripted faults
 *   checks.c   the safety, liveness and linearizability checkers
 *   trace.c    the readable trace (--trace)
 *
 * Indices: nodes are 0..n_nodes-1 here and 1..n_nodes for engines (node id =
 * index + 1); clients are 0..n_clients-1. Times are simulated microseconds
 * (`_us`) unless a name says otherwise. */
#ifndef SABHA_SIM_INTERNAL_H
#define SABHA_SIM_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/prng.h"
#include "node/resp.h"
#include "node/runtime.h"
#include "sabha/engine.h"
#include "sim/sim.h"
#include "storage/memfs.h"

struct app;
struct workload;
struct chunk;

/* ---- events -------------------------------------------------------------- */

enum ev_kind {
  EV_TICK = 1,     /* node: a local millisecond passed */
  EV_WAKE,         /* node: a slow input's processing time is over */
  EV_FSYNC_DONE,   /* node: the runtime's background fsync completed */
  EV_SNAP_DONE,    /* node: the runtime's background snapshot write ended */
  EV_FLUSH,        /* node: background flush (ack-before-fsync bug) */
  EV_PEER_MSG,     /* node: a packet from a peer arrives */
  EV_CONN_OPEN,    /* node: a connection arrives at its client port */
  EV_CONN_DATA,    /* node or client: bytes on a connection arrive */
  EV_CONN_UP,      /* node or client: the connection it opened is accepted */
  EV_CONN_DOWN,    /* node or client: the other end closed or reset it */
  EV_CLIENT_TIMER, /* client: attempt timeout or retry backoff */
  EV_NEMESIS,      /* the random schedule's next step */
  EV_HEAL,         /* end of a random fault (aux: enum nem_kind) */
  EV_RESTART,      /* node: restart after a crash (aux: RESTART_SUPERVISOR
                      for a node whose runtime gave up) */
  EV_SCRIPT,       /* scripted fault number aux */
  EV_CHECK,        /* periodic log matching check */
  EV_QUIESCE,      /* after healing: has the cluster converged? */
  EV_STRIKE,       /* node: a delayed strike at a new leader */
  EV_UNISOLATE,    /* node: a strike's isolation ends (gen: token) */
  EV_HEAR,         /* node: a comeback episode's deaf leader hears again */
  EV_CLIENTS_STOP, /* client_time_ms reached: no new operations */
  EV_MEMBERSHIP,   /* the membership nemesis's next step */
  EV_STALL_CRASH,  /* node: crashes inside its stalled fsync (gen) */
};

#define RESTART_SUPERVISOR 1u

/* A message between engines, cloned into one allocation when sent: the
 * struct, then its entries, then the entries' bytes, then snapshot bytes. */
struct packet {
  size_t alloc_bytes;
  struct sabha_msg msg;
};

/* Bytes on a connection, in one allocation. */
struct chunk {
  size_t len;
  uint8_t data[];
};

/* What a connection event carries: which connection (id and the slot's
 * incarnation, so that an event for a closed one is ignored) and which end
 * it goes to. */
struct conn_ev {
  uint32_t conn;
  uint32_t conn_gen;
  bool to_server;      /* to the accepting node's end, else to the opener */
  struct chunk *chunk; /* EV_CONN_DATA */
};

struct sim_event {
  uint32_t kind;   /* enum ev_kind */
  uint32_t target; /* node or client index */
  uint32_t gen;    /* node incarnation / client timer token it was for */
  uint32_t aux;
  union {
    struct packet *pkt;
    struct conn_ev c;
    struct sim_event *next_free;
  } u;
};

struct heap_item {
  uint64_t time_us;
  uint64_t seq;
  struct sim_event *ev;
};

struct evq {
  struct heap_item *heap;
  size_t n;
  size_t cap;
  uint64_t seq_next;
  struct sim_event *free_list;
  void **blocks; /* event pool blocks, freed at the end */
  size_t n_blocks;
  size_t cap_blocks;
};

/* ---- network ------------------------------------------------------------- */

struct link {
  uint32_t latency_us; /* base one-way latency */
  uint32_t jitter_us;  /* plus uniform [0, jitter_us] */
  double loss;         /* scripted loss */
  double fault_loss;   /* random-fault loss, added to `loss` */
  double fault_dup;
  double fault_reorder;      /* chance of an extra delay */
  uint32_t fault_reorder_us; /* up to this much extra */
  bool script_blocked;
  bool fault_blocked;
  uint64_t fifo_us;   /* last in-order delivery time: links are FIFO (as TCP
                         is) unless the reorder fault picks a message */
  uint32_t in_flight; /* messages sent and not yet arrived */
};

/* Messages in flight per link, like a socket's buffers: beyond it, a send
 * is dropped. Bounds memory when engines flood each other. */
#define LINK_IN_FLIGHT_MAX 1024u

/* ---- nodes --------------------------------------------------------------- */

#define NODE_INBOX_MAX 4096u /* a full socket buffer: later arrivals drop */

struct sim;

/* What the runtime's ports get as their context. */
struct node_port {
  struct sim *s;
  uint32_t i;
  uint32_t g; /* the group whose runtime it is */
};

/* One consensus group a node hosts (sim_options.n_groups): its runtime, as
 * sabhad opens one per group, and what the checkers last saw of it. */
struct node_group {
  struct rt *rt; /* NULL while the node is down */
  struct node_port port;
  bool fsync_scheduled; /* its fsync completes (EV_FSYNC_DONE, aux g) */
  bool fsync_synced;    /* ... and its data reached the disk at its start */
  bool fsync_later;     /* the runtime's fsync went to sync_later: when
                           port_synced finds it unset, the fsync ran on the
                           loop */
  bool snap_scheduled;   /* its snapshot write ends (EV_SNAP_DONE, aux g) */
  bool snap_written;     /* ... and the file was written at its start */
  enum sabha_role last_role;
  uint64_t last_term;
  uint64_t commit_seen; /* as leader: commit index already recorded */
};

struct node {
  uint32_t id; /* engine id, index + 1 */
  bool up;
  uint32_t gen; /* incarnation: bumped at each crash, stale events ignored */
  uint32_t restarts;
  struct rt *rt; /* group 0's runtime (the front, which takes the client
                    connections), as grp[0].rt; NULL while down */
  struct node_group grp[RT_GROUPS_MAX]; /* [n_groups] */
  /* The disk: an in-memory file system that outlives the node's crashes,
   * under the real WAL (storage/wal.h). */
  struct memfs *fs;
  struct wal_io io;
  uint32_t wal_segment_bytes; /* drawn per node from the seed */

  /* Processing: one input at a time, then the runtime's work. */
  uint64_t busy_until_us;
  bool wake_scheduled;
  bool tick_pending;
  bool flush_scheduled; /* ack-before-fsync: a background flush is due */
  bool in_call;         /* inside a runtime call: no crash now */
  bool crash_due;       /* a crash asked for during a runtime call */
  bool fatal;           /* the runtime gave up (ports.fatal) */
  enum rt_fatal fatal_kind;
  char fatal_why[256];
  struct sim_event **inbox; /* ring of inbox_cap, >= NODE_INBOX_MAX */
  uint32_t inbox_cap;
  uint32_t inbox_head;
  uint32_t inbox_n;
  uint32_t *out_due; /* connections with output to move (ids) */
  uint32_t n_out_due, cap_out_due;

  /* The local clocks. Monotonic: local_us = base_local_us + (now -
   * base_sim_us) * rate_ppm / 1e6, rebased whenever the rate changes, so it
   * never goes backwards; it drives ticks and timeouts. Wall: the
   * monotonic clock's progress plus an offset (NTP keeps clocks within tens
   * of milliseconds of each other); the clock fault can step it, back too.
   * Commands are stamped with the wall clock. */
  uint64_t clock_base_sim_us;
  uint64_t clock_base_local_us;
  uint64_t clock_rate_ppm;
  uint64_t clock_start_local_us; /* where the monotonic clock began */
  int64_t wall_offset_us;
  uint64_t last_tick_ms;

  /* Faults. */
  bool isolated;          /* a strike cut it from every peer */
  uint32_t isolate_token; /* only the newest isolation's end acts */
  uint32_t slow_delay_us; /* processing time per input */
  uint32_t slow_entry_us; /* ... plus this per entry the input carries */
  uint32_t fsync_factor;  /* fsync latency multiplier, >= 1 */
  bool late_timers;       /* SIM_SLOW_LATE_TIMERS: ticks queue behind inputs */
  uint32_t tick_behind;   /* with late_timers: inbox inputs queued before the
                             pending tick, processed first */
  bool crashed_by_nemesis;
  bool joined;            /* added by the membership nemesis: it started with no
                             membership (sabha_config.join) and an empty disk */
  bool was_member;        /* joined: the nemesis saw it in a membership */
  uint64_t restart_in_us; /* the nemesis's restart, for a crash not yet
                             done (crash_due): armed when it happens */
  bool clean_stop;        /* down after a clean shutdown */
  /* Bits flipped in synced data while down (node_disk_flip), to check at
   * the next start: refused, or gone from the files. */
  struct flip {
    char path[64];
    uint64_t offset;
    uint8_t mask;
  } flips[8];
  bool guarded; /* started under a repair guard (see nodes_damaged) */
  uint32_t n_flips;
};

/* ---- connections ----------------------------------------------------------
 */

enum conn_kind {
  CONN_CLIENT = 0, /* a client -> a node's client port */
  CONN_FORWARD,    /* a node's forwarding link -> the leader's client port */
};

/* A TCP connection, reduced to what the runtime sees: reliable, ordered
 * bytes both ways, opened by one end and accepted by a node, closed by
 * either; it breaks when a node at either end crashes and, for links
 * between nodes, when a partition cuts them (TCP would time out later; a
 * break at once is the same story told faster). Flow control is not
 * modelled: the simulated clients always read. */
struct conn {
  uint32_t gen;             /* the slot's incarnation; 0: free */
  uint8_t kind;             /* enum conn_kind */
  uint32_t client;          /* CLIENT: the client index */
  uint32_t from;            /* FORWARD: the opening node's index */
  uint32_t from_gen;        /* ... and its incarnation */
  uint32_t node;            /* the accepting node's index */
  uint32_t node_gen;        /* its incarnation when the connection was opened */
  struct rt_stream *server; /* the accepting node's stream, once accepted */
  struct rt_stream *fwd;    /* FORWARD: the opening node's stream */
  bool opener_open;         /* the opening end has not closed it */
  bool server_open;         /* the accepting end has not closed it */
  bool server_closing;      /* the runtime closed its end (stream_close) */
  bool fwd_closing;         /* FORWARD: the opener's runtime closed it */
  bool close_flush;
  bool out_due;               /* listed in its node's out_due */
  bool broken;                /* cut by a partition: carries nothing more */
  uint64_t fifo_to_server_us; /* in-order delivery, each way */
  uint64_t fifo_to_opener_us;
};

/* ---- clients ---------------------------------------------------------------
 */

#define CLIENT_ATTEMPTS_MAX 64u
#define SIM_SCRATCH_BYTES (2u * (48u * 1024u + 1024u))
#define CLIENT_PIPELINE_MAX 4u

/* An operation a client has sent and waits for. */
struct client_op {
  uint64_t op_id;
  uint32_t attempt;
};

/* Bytes a client read and has not parsed yet. */
struct sim_inbuf {
  uint8_t *data;
  size_t len, cap;
};

/* Called with each whole reply; false when the connection was dropped
 * (the rest of the bytes go with it). */
typedef bool (*sim_reply_fn)(struct sim *s, void *ctx, const uint8_t *p,
                             size_t n);
/* client.c: appends a chunk to b and hands each whole reply to fn.
 * Returns false when the bytes are not RESP. */
bool sim_feed_replies(struct sim_inbuf *b, const struct chunk *ch,
                      sim_reply_fn fn, struct sim *s, void *ctx);

struct client {
  uint32_t index;
  bool finished;     /* no more ops to take */
  uint64_t seq;      /* operations started, for the ids workloads choose */
  uint32_t pipeline; /* ops it keeps in flight at once, 1..PIPELINE_MAX */
  /* The connection it uses, if any; ops on it, in the order sent. */
  uint32_t conn; /* conn id + 1; 0: none */
  uint32_t conn_gen;
  bool conn_up;  /* accepted by the node */
  bool move;     /* connect to another node once nothing waits here */
  uint32_t node; /* the node it is connected (or connecting) to */
  struct client_op sent[CLIENT_PIPELINE_MAX];
  uint32_t n_sent;
  /* Ops started and not yet sent (a retry waits for its backoff). */
  uint64_t queued[CLIENT_PIPELINE_MAX];
  uint32_t n_queued;
  uint32_t n_open;     /* ops started and not finished */
  struct sim_inbuf in; /* reply bytes not yet parsed */
  /* Two timers. The kick (next operation, retry after a backoff) is short
   * and only its newest event acts. The attempt timeout is lazy: it is
   * re-armed by moving timeout_due_us; its one event, when it fires early,
   * re-schedules itself. */
  uint32_t kick_token;
  uint32_t timeout_token;
  uint64_t timeout_due_us;   /* 0: disarmed */
  uint64_t timeout_event_us; /* when its pending event fires; 0: none */
  int64_t *last_seen;        /* [n_keys]: last value this client saw per key */
  /* Draws what the client does (kind, key) and nothing else, so the
   * workload does not depend on timing: the same seed gives every engine
   * the same sequence of operations per client. */
  struct prng workload;
};

/* What the simulator remembers of each operation besides its history
 * entry: when it must give up, its attempts, how each ended. */
struct op_state {
  uint64_t deadline_us;
  uint32_t attempts;
  uint32_t refused;    /* attempts answered "not carried out" */
  bool maybe;          /* an attempt whose outcome is unknown */
  uint32_t ttl_ms;     /* put: PX; 0 none */
  uint32_t pad_bytes;  /* put: bytes of padding after the value id */
  uint8_t append_byte; /* append: the byte it adds */
};

/* A register's value in the history (check/history.h): the id its SET or
 * CAS wrote times SIM_VALUE_STRIDE, plus the bytes APPENDed to it since,
 * which are fewer than the run's operations, so the two never mix. */
#define SIM_VALUE_STRIDE 1000000
_Static_assert(SIM_OPS_MAX <= SIM_VALUE_STRIDE,
               "a register's appends fit below the stride");

/* ---- the nemesis --------------------------------------------------------- */

enum nem_kind {
  NEM_PARTITION = 0,
  NEM_CRASH,
  NEM_LOSS,
  NEM_DUP,
  NEM_REORDER,
  NEM_SLOW,
  NEM_CLOCK,
  NEM_DISK,
  NEM_KINDS,
};

enum nem_figure8_stage {
  F8_IDLE = 0,
  F8_WAIT_L2,     /* L1 and F1 are cut off; waiting for the majority's leader */
  F8_WAIT_L3,     /* L2 is isolated, the cut healed; waiting for a leader */
  F8_WAIT_COMMIT, /* L3 leads; at its first commit it is isolated, L2 freed */
  F8_STRUCK,
};

struct nem_figure8 {
  uint32_t stage; /* enum nem_figure8_stage */
  uint32_t l1, f1, l2, l3;
  uint32_t partner; /* isolated with L3: the other of L1 and F1 */
};

enum nem_comeback_stage {
  CB_IDLE = 0,
  CB_DEAF,     /* the leader hears nobody; its appends still leave */
  CB_CATCHUP,  /* it hears again; waiting for it to install a snapshot */
  CB_COMEBACK, /* every other new leader is struck until it wins again */
};

struct nem_comeback {
  uint32_t stage; /* enum nem_comeback_stage */
  uint32_t node;
  uint32_t token; /* which episode a pending EV_HEAR belongs to */
};

struct nemesis {
  bool stopped;
  bool active[NEM_KINDS];
  uint32_t slow_node;    /* index, while NEM_SLOW is active */
  uint32_t clock_node;   /* index, while NEM_CLOCK is active */
  int64_t clock_step_ms; /* its wall clock's step, undone at the heal */
  uint32_t concurrent_max;
  uint64_t strikes;
  uint64_t stalls;         /* fsync stall episodes (nemesis_fsync_stall_us) */
  uint64_t stall_after_us; /* no new one before */
  uint32_t stall_kept;     /* the stalled leader's followers (bit per index) */
  bool churn;              /* a leader-churn episode: strike most new leaders */
  /* A scripted SLOW with SIM_SLOW_FOLLOW_LEADER, until the next HEAL. */
  bool follow;
  int follow_node; /* index slowed now; -1: none yet */
  uint32_t follow_delay_us;
  uint32_t follow_entry_us;
  uint32_t follow_fsync_factor;
  bool follow_late_timers;
  struct nem_figure8 f8;
  struct nem_comeback cb;
  struct prng prng_member; /* the membership changes' own draws */
};

/* ---- checkers ------------------------------------------------------------ */

struct term_slot {
  uint64_t term; /* 0: empty */
  uint32_t leader;
};

/* What is known committed at one index: first applied by a node, or first
 * covered by a leader's commit index. */
struct applied_slot {
  uint64_t term;
  uint64_t hash;
  /* A term at or before which it was committed: the lowest term of a node
   * seen applying it or, as leader, committing it (a node learns of a
   * commit from a leader of its term or an earlier one). */
  uint64_t commit_term;
  uint32_t node; /* who recorded it first; 0: nothing known yet */
  bool applied;  /* applied (true) or committed as leader (false) */
};

struct log_view {
  uint64_t first;
  uint64_t last;
  uint64_t *term; /* [last - first + 1] */
  uint64_t *hash;
  size_t cap;
};

struct checks {
  struct term_slot *terms; /* open addressing, power-of-two size */
  size_t terms_cap;
  size_t terms_n;
  struct applied_slot *applied; /* by index */
  size_t applied_cap;
  uint64_t applied_max;     /* highest index applied anywhere */
  bool log_matching;        /* the protocol promises Raft's Log Matching */
  bool leader_completeness; /* its leaders hold every committed entry */
  struct log_view views[SABHA_NODES_MAX];
  /* The committed stream of the group, seen once per position. */
  uint64_t seen_index;
  uint32_t seen_pos;
  uint64_t barrier_index; /* where the group's first barrier applied */
};

/* ---- the world ----------------------------------------------------------- */

enum sim_phase { PHASE_CLIENTS = 0, PHASE_QUIESCE, PHASE_DONE };

enum fail_kind {
  FAIL_SAFETY = 0,
  FAIL_LINEARIZABILITY,
  FAIL_ACKED_LOST,
  FAIL_LIVENESS,
  FAIL_LIMIT,
  FAIL_INVARIANT, /* an application invariant (workload.c); stops the run */
};

struct sim {
  struct sim_options o;
  struct sim_result *res;
  uint64_t now_us;
  enum sim_phase phase;
  bool stop; /* a safety violation ends the run */
  uint64_t trace_hash;
  struct evq q;

  /* One stream per concern, so that a change in one (say, a new fault
   * kind) does not reshuffle every other draw of the run. */
  struct prng prng_net;
  struct prng prng_nemesis;
  struct prng prng_client;
  struct prng prng_disk;
  struct prng prng_node;
  struct prng prng_config;
  struct prng prng_quiet; /* the kv workload's quiet spells (client.c) */
  uint64_t quiet_start_us, quiet_end_us;

  uint32_t n_nodes; /* grows when the membership nemesis adds a node */
  uint32_t n_clients;
  uint32_t quorum;
  /* Who the end checks judge: the members of the group's last membership
   * (every node, without membership changes), and the first of them. */
  bool final_member[SABHA_NODES_MAX];
  uint32_t final_ref;
  uint64_t config_seen; /* highest membership entry counted */
  struct node nodes[SABHA_NODES_MAX];
  struct link links[SABHA_NODES_MAX][SABHA_NODES_MAX]; /* [from][to] */
  struct link client_link; /* every client <-> node link, both ways */
  struct rt_config rt_cfg; /* what every node's runtime starts with */
  int active_node;         /* index of the node inside a runtime call, -1 */

  struct conn *conns; /* by id; gen 0: a free slot */
  uint32_t n_conns, cap_conns;
  uint32_t *free_conns;
  uint32_t n_free_conns;
  uint32_t next_conn_gen;

  struct client *clients;  /* n_clients, then the barrier's client */
  struct sim_watch *watch; /* the watcher, client n_clients + 1 */
  struct sim_coord *coord; /* transactions and leases, n_clients + 2 */
  struct hist_op *hist;    /* [n_ops], indexed by op id */
  struct op_state *ops;    /* [n_ops] */
  uint64_t ops_issued;
  uint64_t ops_done;
  int64_t value_next; /* unique value ids for put and cas */
  size_t cap_latencies;
  /* The key-value workload's keys: registers (put, get, cas) and counters
   * (incr, get); the history names both by one number, registers first. */
  uint32_t n_registers;
  uint32_t n_counters;
  uint32_t n_expiring;
  uint64_t *incr_acked;  /* [n_counters]: incrs a client saw succeed */
  uint64_t *incr_maybe;  /* [n_counters]: incrs of unknown outcome */
  uint8_t *op_committed; /* [n_ops]: a put or cas of it is in the log */
  uint32_t *key_group;   /* [sim_keys()]: the group of each workload key */

  struct nemesis nem;
  uint32_t n_groups;                   /* consensus groups each node hosts */
  struct checks ck[RT_GROUPS_MAX];     /* the checkers' state, per group */
  char barrier_key[RT_GROUPS_MAX][32]; /* a key of each group (client.c) */
  uint64_t quiesce_deadline_us;
  uint64_t barrier_next_us; /* when to send the barrier (again) */
  uint32_t barrier_sent;    /* barrier writes sent, for their values */

  FILE *trace;             /* --trace: one line per event, or NULL */
  uint8_t *scratch;        /* SIM_SCRATCH_BYTES, for building requests */
  struct resp_buf request; /* a request being built */

  struct workload *wl; /* application workloads (workload.h), else NULL */
};

/* ---- helpers ------------------------------------------------------------- */

void *sim_xmalloc(size_t size);
void *sim_xcalloc(size_t n, size_t size);
void *sim_xrealloc(void *p, size_t size);

/* Folds a value into a 64-bit trace hash. */
static inline uint64_t sim_mix(uint64_t h, uint64_t x) {
  h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 31);
}

uint64_t sim_hash_bytes(const uint8_t *data, size_t size);

/* Records a failed check (the first message is kept). Safety failures stop
 * the run. */
void sim_fail(struct sim *s, enum fail_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* queue.c */
void evq_init(struct evq *q);
void evq_free(struct evq *q);
struct sim_event *ev_new(struct sim *s, uint32_t kind, uint32_t target);
void ev_free(struct sim *s, struct sim_event *ev);
void sim_at(struct sim *s, uint64_t time_us, struct sim_event *ev);
struct sim_event *evq_pop(struct evq *q, uint64_t *time_us);

/* net.c */
void net_init(struct sim *s);
void net_send_peer(struct sim *s, const struct sabha_msg *m);
void packet_free(struct packet *p);
void net_heal(struct sim *s);
bool net_reachable(const struct sim *s, uint32_t from, uint32_t to);
/* When something sent now over `l` arrives: never before what was sent
 * earlier through *fifo_us (updated), except a message the reorder fault
 * picks when it is not a connection's bytes (`stream`). */
uint64_t net_arrival_us(struct sim *s, struct link *l, uint64_t *fifo_us,
                        bool stream);

/* conn.c */
void conns_init(struct sim *s);
void conns_free(struct sim *s);
struct conn *conn_get(struct sim *s, uint32_t id, uint32_t gen);
/* A client opens a connection to node `node`: the id, or UINT32_MAX when
 * the node is down (connection refused at once). */
uint32_t conn_open_client(struct sim *s, uint32_t client, uint32_t node);
/* A node opens its forwarding link to `node`. */
void conn_open_forward(struct sim *s, uint32_t from, struct rt_stream *st,
                       uint32_t node);
/* Sends bytes from one end: to the server end (to_server) or back. */
void conn_send(struct sim *s, uint32_t id, bool to_server, const void *data,
               size_t len);
/* One end closes: the other learns it after the bytes already sent. */
void conn_close_end(struct sim *s, uint32_t id, bool server_end);
/* A node went down: every connection with an end there breaks. Its
 * streams are forgotten (a crash: rt_close_crash frees them) or freed
 * (free_streams: a clean stop handed them over). */
void conns_node_down(struct sim *s, uint32_t node, bool free_streams);
/* Delivers a connection event at a node (from its inbox). */
void conn_node_event(struct sim *s, struct node *n, struct sim_event *ev);
/* Frees the slot once both ends are closed and nothing is left to move. */
void conn_maybe_free(struct sim *s, uint32_t id);
void chunk_free(struct chunk *c);

/* host.c */
void node_init(struct sim *s, uint32_t i);
void node_free(struct sim *s, uint32_t i);
void node_start(struct sim *s, uint32_t i);
void node_crash(struct sim *s, uint32_t i);
/* A crash after a clean shutdown (the WAL closed cleanly). */
void node_stop_clean(struct sim *s, uint32_t i);
void node_on_event(struct sim *s, struct sim_event *ev);
void node_set_clock(struct sim *s, uint32_t i, uint64_t rate_ppm,
                    uint64_t jump_ms);
/* Steps node i's wall clock by delta_ms (back when negative). */
void node_step_wall(struct sim *s, uint32_t i, int64_t delta_ms);
/* The up node that is leader in the highest term, or -1. */
int node_leader(struct sim *s);
/* The same for group g's runtimes (node_leader() is group 0's). */
int node_group_leader(struct sim *s, uint32_t g);
uint32_t nodes_down(const struct sim *s);
/* How many more of the current voters may be out with a majority of them
 * still able to elect: the nemesis keeps faults within it. Out means down,
 * or up under a repair guard (crashes: `damage` false), or with a damaged
 * disk, flipped or not yet restarted without its guard (disk damage:
 * `damage` true). */
uint32_t nodes_out_room(struct sim *s, bool damage);
/* How many are out, and in *budget how many may be. */
uint32_t nodes_out(struct sim *s, bool damage, uint32_t *budget);
/* Runs what a runtime call left to do: output to move, streams to close,
 * a crash asked for meanwhile. Hosts call it after every runtime call. */
void node_after_runtime(struct sim *s, struct node *n);
/* The node's status, or a follower's with term 0 when it is down. */
void node_status(const struct node *n, struct sabha_status *st);
/* Disk faults (nemesis.c): the next write or sync of node i fails with
 * err; a bit of synced data is flipped on a node that is down. Return
 * false when the fault cannot be applied now. */
bool node_disk_fail(struct sim *s, uint32_t i, int err);
bool node_disk_flip(struct sim *s, uint32_t i);

/* The kv workload's keys, registers first, then counters, then expiring
 * keys, and a key's name in the store ("r0", "c0", "e0"). */
uint32_t sim_keys(const struct sim *s);
int sim_key_name(const struct sim *s, uint32_t key, char *buf, size_t size);

/* client.c */
void clients_init(struct sim *s);
void clients_free(struct sim *s);
void clients_start(struct sim *s);

/* watcher.c: a SABHA.WATCH client and the watch checker. */
void watcher_init(struct sim *s);
void watcher_start(struct sim *s);
void watcher_free(struct sim *s);
/* A committed store command, at its first apply anywhere. */
void watcher_observe(struct sim *s, uint64_t index, const uint8_t *cmd,
                     size_t len);
void watcher_on_event(struct sim *s, struct sim_event *ev);
/* The check, at the end of a run. */
void watcher_final(struct sim *s);

/* coord.c: transactions and leases, judged by invariants. */
void coord_init(struct sim *s);
void coord_start(struct sim *s);
void coord_free(struct sim *s);
void coord_on_event(struct sim *s, struct sim_event *ev);
/* The end checks against the reference store (the log's state). */
void coord_final(struct sim *s, const struct kvstore *reference);
void client_on_event(struct sim *s, struct sim_event *ev);
/* Sends the quiesce barrier (a write) through client `n_clients`. */
/* Sends group g's quiesce barrier (a write of s->barrier_key[g]). */
void client_send_barrier(struct sim *s, uint32_t node, uint32_t g);
/* Fills s->barrier_key: "__barrier", or one key per group. */
void sim_barrier_keys(struct sim *s);
/* The operator asks node `node` to hand leadership to node index `to`
 * (SABHA.LEADER). */
void client_send_leader(struct sim *s, uint32_t node, uint32_t to);
/* The operator asks node `node` for a membership change (SABHA.MEMBER
 * verb id [address]). */
void client_send_member(struct sim *s, uint32_t node, const char *verb,
                        uint32_t id);

/* nemesis.c */
void nemesis_init(struct sim *s);
void nemesis_on_event(struct sim *s, struct sim_event *ev);
void nemesis_stop_and_heal(struct sim *s);
/* A node was just seen leading a new term (called from check_status, before
 * the node's ready batch goes out). */
void nemesis_on_new_leader(struct sim *s, uint32_t i);
/* A leader's commit index just moved (called from check_status). */
void nemesis_on_leader_commit(struct sim *s, uint32_t i);
/* Node i just installed a snapshot a peer sent. */
void nemesis_on_snapshot_installed(struct sim *s, uint32_t i);
/* Node i starts an fsync: extra latency for it (0, or a stall episode's;
 * nemesis.c). */
uint64_t nemesis_fsync_stall_us(struct sim *s, uint32_t i);
/* Restarts node i, now down, after down_us (if the nemesis still runs). */
void nemesis_arm_restart(struct sim *s, uint32_t i, uint64_t down_us);
/* membership.c */
void membership_nemesis_init(struct sim *s);
void membership_nemesis_step(struct sim *s, struct sim_event *ev);
/* Fills s->final_member from the group's newest membership. */
void membership_final(struct sim *s);

/* checks.c */
void checks_init(struct sim *s);
void checks_free(struct sim *s);
/* Reads every group's status of node i (check_status_group: group g's). */
void check_status(struct sim *s, uint32_t i);
void check_status_group(struct sim *s, uint32_t i, uint32_t g);
void check_apply(struct sim *s, uint32_t i, uint32_t g,
                 const struct sabha_entry *e);
void check_log_matching(struct sim *s);
void check_persisted(struct sim *s, uint32_t i, uint32_t g);
void checks_final(struct sim *s);

/* sim.c */
void sim_clients_done(struct sim *s);
/* A barrier command applied at `index`. */
void sim_note_barrier(struct sim *s, uint32_t g, uint64_t index);
/* Node i was just seen leading a new term: appends to the result's
 * leader_changes (for the lab's timelines). */
void sim_note_leader(struct sim *s, uint32_t i, uint32_t g);
/* The committed stream, once per log position (the first node to apply
 * it): the workloads' checkers and the acknowledged-write records. */
void sim_observe_command(struct sim *s, struct node *n, uint32_t g,
                         uint64_t index, uint32_t pos, const uint8_t *cmd,
                         size_t len, const struct rt_applied *res);

/* The hash of a node's keys and applications' state (sim.c). */
uint64_t sim_node_state_hash(const struct sim *s, const struct node *n);

/* trace.c */
void trace_event(struct sim *s, const struct sim_event *ev);
void trace_line(struct sim *s, uint32_t node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
