/* The simulator's private state, shared by the files of src/sim:
 *
 *   sim.c      options, the event loop, phases, results
 *   queue.c    events: a pool and a binary heap keyed (time, insertion seq)
 *   net.c      links (latency, jitter, loss, dup, reorder, cuts) and packets
 *   disk.c     a node's simulated disk (disk.h)
 *   node.c     a node: engine, clock, inbox, ready/fsync cycle, KV machine
 *   client.c   closed-loop clients and the history they record
 *   nemesis.c  the random fault schedule and scripted faults
 *   checks.c   the safety, liveness and linearizability checkers
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
#include "sabha/engine.h"
#include "sim/disk.h"
#include "sim/sim.h"
#include "sm/kv.h"

struct app;
struct workload;

/* ---- events -------------------------------------------------------------- */

enum ev_kind {
  EV_TICK = 1,     /* node: a local millisecond passed */
  EV_WAKE,         /* node: a slow input's processing time is over */
  EV_FSYNC_DONE,   /* node: the fsync of the held ready batch completed */
  EV_FLUSH,        /* node: background flush (ack-before-fsync bug) */
  EV_PEER_MSG,     /* node: a packet from a peer arrives */
  EV_CLIENT_REQ,   /* node: a client request arrives */
  EV_CLIENT_REPLY, /* client: a node's answer arrives */
  EV_CLIENT_TIMER, /* client: attempt timeout or retry backoff */
  EV_NEMESIS,      /* the random schedule's next step */
  EV_HEAL,         /* end of a random fault (aux: enum nem_kind) */
  EV_RESTART,      /* node: restart after a crash */
  EV_SCRIPT,       /* scripted fault number aux */
  EV_CHECK,        /* periodic log matching check */
  EV_QUIESCE,      /* after healing: has the cluster converged? */
  EV_STRIKE,       /* node: a delayed strike at a new leader */
  EV_UNISOLATE,    /* node: a strike's isolation ends (gen: token) */
  EV_CLIENTS_STOP, /* client_time_ms reached: no new operations */
};

enum cm_status { CM_OK = 0, CM_NOT_LEADER = 1, CM_BUSY = 2 };

/* A client request or reply: small, so it travels inside the event. */
struct client_msg {
  uint32_t client;
  uint32_t attempt;
  uint64_t seq;
  uint64_t op_id;
  uint32_t kind; /* enum hist_kind */
  uint32_t key;
  int64_t value;    /* put/cas: value written; get reply: value read */
  int64_t expected; /* cas */
  uint32_t status;  /* reply: enum cm_status */
  uint32_t hint;    /* reply NOT_LEADER: leader's node id or 0 */
  int32_t swapped;  /* reply to cas */
  /* Application ops (kind SIM_HIST_APP): the request names its op_id (the
   * command's bytes stand in the world's table, workload.c, as a payload
   * would); the reply summarizes the app_reply. */
  bool app_duplicate;
  uint8_t app_kind; /* enum app_reply_kind */
  uint16_t app_code; /* enum app_code */
  int64_t app_integer;
};

/* A message between engines, cloned into one allocation when sent: the
 * struct, then its entries, then the entries' bytes, then snapshot bytes. */
struct packet {
  size_t alloc_bytes;
  struct sabha_msg msg;
};

struct sim_event {
  uint32_t kind;   /* enum ev_kind */
  uint32_t target; /* node or client index */
  uint32_t gen;    /* node incarnation / client timer token it was for */
  uint32_t aux;
  union {
    struct packet *pkt;
    struct client_msg cm;
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

struct wait_write {
  bool active;
  uint64_t seq;
  uint32_t attempt;
};

struct wait_read {
  bool active;
  bool has_index; /* the engine confirmed the read; serve at `index` */
  uint64_t seq;
  uint32_t attempt;
  uint32_t key;
  uint64_t index;
};

struct node {
  uint32_t id; /* engine id, index + 1 */
  bool up;
  uint32_t gen; /* incarnation: bumped at each crash, stale events ignored */
  uint32_t restarts;
  struct sabha_engine *e;
  struct kv *kv;
  struct app *app;  /* application workloads only, else NULL */
  uint64_t applied; /* index the KV machine reflects */
  struct disk disk;

  /* Processing: one input at a time, then one ready batch. */
  bool blocked; /* holding `rd` until its fsync completes */
  struct sabha_ready rd;
  uint64_t busy_until_us;
  bool wake_scheduled;
  bool tick_pending;
  bool flush_scheduled;     /* ack-before-fsync: a background flush is due */
  struct sim_event **inbox; /* ring of NODE_INBOX_MAX */
  uint32_t inbox_head;
  uint32_t inbox_n;

  /* The local clock: local_us = base_local_us + (now - base_sim_us) *
   * rate_ppm / 1e6. Rebased whenever the rate changes, so it never goes
   * backwards. */
  uint64_t clock_base_sim_us;
  uint64_t clock_base_local_us;
  uint64_t clock_rate_ppm;
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

  /* Clients waiting on this node, one slot each (closed loop). */
  struct wait_write *writes;
  struct wait_read *reads;
  uint32_t n_reads_waiting;

  /* Last status seen, for the checkers. */
  enum sabha_role last_role;
  uint64_t last_term;
  uint64_t commit_seen; /* as leader: commit index already recorded */
};

/* ---- clients ------------------------------------------------------------- */

#define CLIENT_ATTEMPTS_MAX 64u

struct client {
  uint32_t index;
  bool in_flight; /* an op is outstanding */
  bool finished;  /* no more ops to take */
  uint64_t seq;
  uint64_t op_id;
  uint32_t node; /* where it sends: its guess of the leader */
  uint32_t attempt;
  uint64_t refused_mask; /* attempts definitely refused before proposal */
  uint64_t deadline_us;
  /* Two timers. The kick (next operation, retry after a backoff) is short
   * and only its newest event acts. The attempt timeout is lazy: it is
   * re-armed by moving timeout_due_us; its one event, when it fires early,
   * re-schedules itself, so an operation that completes in 10 ms does not
   * leave a 300 ms timeout event in the queue. */
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

/* ---- the nemesis --------------------------------------------------------- */

enum nem_kind {
  NEM_PARTITION = 0,
  NEM_CRASH,
  NEM_LOSS,
  NEM_DUP,
  NEM_REORDER,
  NEM_SLOW,
  NEM_CLOCK,
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

struct nemesis {
  bool stopped;
  bool active[NEM_KINDS];
  uint32_t slow_node;  /* index, while NEM_SLOW is active */
  uint32_t clock_node; /* index, while NEM_CLOCK is active */
  uint32_t concurrent_max;
  uint64_t strikes;
  bool churn; /* a leader-churn episode: strike most new leaders */
  /* A scripted SLOW with SIM_SLOW_FOLLOW_LEADER, until the next HEAL. */
  bool follow;
  int follow_node; /* index slowed now; -1: none yet */
  uint32_t follow_delay_us;
  uint32_t follow_entry_us;
  uint32_t follow_fsync_factor;
  bool follow_late_timers;
  struct nem_figure8 f8;
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

  uint32_t n_nodes;
  uint32_t n_clients;
  uint32_t quorum;
  struct node nodes[SABHA_NODES_MAX];
  struct link links[SABHA_NODES_MAX][SABHA_NODES_MAX]; /* [from][to] */
  struct link client_link; /* every client <-> node link, both ways */

  struct client *clients;
  struct hist_op *hist; /* [n_ops], indexed by op id */
  uint64_t ops_issued;
  uint64_t ops_done;
  int64_t value_next; /* unique value ids for put and cas */
  size_t cap_latencies;

  struct nemesis nem;
  struct checks ck;
  uint64_t quiesce_deadline_us;
  uint64_t barrier_index;   /* where the first barrier command applied */
  uint64_t barrier_next_us; /* when to send the barrier (again) */
  uint32_t barrier_node;    /* round robin when no leader is known */

  uint8_t *snap_buf; /* scratch for KV snapshots */
  size_t snap_buf_size;

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
void net_send_client(struct sim *s, bool to_node, uint32_t node,
                     uint32_t client, const struct client_msg *cm);
void packet_free(struct packet *p);
void net_heal(struct sim *s);
bool net_reachable(const struct sim *s, uint32_t from, uint32_t to);

/* node.c */
void node_init(struct sim *s, uint32_t i);
void node_free(struct sim *s, uint32_t i);
void node_start(struct sim *s, uint32_t i);
void node_crash(struct sim *s, uint32_t i);
void node_on_event(struct sim *s, struct sim_event *ev);
void node_set_clock(struct sim *s, uint32_t i, uint64_t rate_ppm,
                    uint64_t jump_ms);
/* The up node that is leader in the highest term, or -1. */
int node_leader(struct sim *s);
uint32_t nodes_down(const struct sim *s);

/* client.c */
void clients_init(struct sim *s);
void clients_free(struct sim *s);
void clients_start(struct sim *s);
void client_on_event(struct sim *s, struct sim_event *ev);

/* nemesis.c */
void nemesis_init(struct sim *s);
void nemesis_on_event(struct sim *s, struct sim_event *ev);
void nemesis_stop_and_heal(struct sim *s);
/* A node was just seen leading a new term (called from check_status, before
 * the node's ready batch goes out). */
void nemesis_on_new_leader(struct sim *s, uint32_t i);
/* A leader's commit index just moved (called from check_status). */
void nemesis_on_leader_commit(struct sim *s, uint32_t i);

/* checks.c */
void checks_init(struct sim *s);
void checks_free(struct sim *s);
void check_status(struct sim *s, uint32_t i);
void check_apply(struct sim *s, uint32_t i, const struct sabha_entry *e);
void check_log_matching(struct sim *s);
void check_persisted(struct sim *s, uint32_t i);
void checks_final(struct sim *s);

/* sim.c */
void sim_clients_done(struct sim *s);
/* A barrier command (client request with seq 0) applied at `index`. */
void sim_note_barrier(struct sim *s, uint64_t index);
/* Node i was just seen leading a new term: appends to the result's
 * leader_changes (for the lab's timelines). */
void sim_note_leader(struct sim *s, uint32_t i);

#endif
