/* The deterministic simulator: a cluster (one consensus group, or several
 * per node as sabhad --groups hosts them), its clients, its network and its
 * disks, in virtual time.
 *
 * sim_run() builds a cluster of `n_nodes` engines of one protocol, drives
 * them only through include/sabha/engine.h (exactly as the real node will),
 * feeds them closed-loop clients doing put/get/cas on a small key space, and
 * breaks things on a schedule: partitions (full, asymmetric, partial), loss,
 * duplication, reordering, crashes with the unsynced tail of the disk lost,
 * power loss of a majority, slow nodes and disks, clock drift. Checkers watch
 * every step (election safety, state machine safety, log matching, leader
 * completeness) and judge the end (no acknowledged write lost, liveness once
 * healed, linearizability of the client history).
 *
 * Everything is single-threaded and drawn from the seed: the same options
 * give the same run, event for event, and the same trace_hash. A run always
 * ends: simulated time and events are capped.
 *
 * The lab and the tests also script faults (struct sim_script_event): a list
 * of timed actions applied on top of, or instead of, the random schedule. */
#ifndef SABHA_SIM_H
#define SABHA_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "check/history.h"
#include "sabha/engine.h"

/* Fault kinds the random schedule (the nemesis) may draw from. */
enum sim_fault {
  SIM_FAULT_PARTITION = 1u << 0, /* full, asymmetric and partial partitions */
  SIM_FAULT_CRASH = 1u << 1,     /* crash + restart; power loss of many */
  SIM_FAULT_LOSS = 1u << 2,      /* messages dropped */
  SIM_FAULT_DUP = 1u << 3,       /* messages delivered twice */
  SIM_FAULT_REORDER = 1u << 4,   /* some messages delayed past later ones */
  SIM_FAULT_SLOW = 1u << 5,      /* per-message processing delay, slow fsync */
  SIM_FAULT_CLOCK = 1u << 6,     /* a node's clock runs fast/slow or jumps,
                                    its wall clock steps (back too) */
  SIM_FAULT_DISK = 1u << 7,      /* a write or fsync fails (EIO, ENOSPC);
                                    a bit flips in synced data */
  SIM_FAULT_ALL = (1u << 8) - 1,
  /* Not in "all" (runs of "all" stay as they were): membership changes.
   * Nodes are added (fresh nodes that join as learners, promoted once
   * caught up) and removed (the leader too), one change at a time, through
   * the operator's SABHA.MEMBER command; ids above --nodes are used for the
   * new nodes, up to SABHA_NODES_MAX. */
  SIM_FAULT_MEMBERSHIP = 1u << 8,
};

/* Parses "none", "all" or a comma list of partition,crash,loss,dup,reorder,
 * slow,clock,disk,membership (and "all,membership") into *mask. Returns 0, or
 * SABHA_EINVAL with a sentence in err. */
int sim_faults_parse(const char *list, uint32_t *mask, char *err,
                     size_t err_size);
/* Writes the canonical name list of `mask` ("none", "all" or a comma list). */
void sim_faults_format(uint32_t mask, char *buf, size_t size);

/* Bugs the host (the simulator) can commit, as opposed to engine bugs
 * (enum sabha_bug in engine.h). */
enum sim_host_bug {
  /* Acknowledge before the fsync: send msgs_after_persist, apply, answer
   * clients and advance at once, and flush the disk in the background some
   * milliseconds later. A crash before the flush loses acknowledged state. */
  SIM_HOST_BUG_ACK_BEFORE_FSYNC = 1u << 0,
  /* Serve a read from the local state machine at once, on any node,
   * without ReadIndex: a follower or a deposed leader answers stale. */
  SIM_HOST_BUG_STALE_READ = 1u << 1,
  /* Configure the application machine without its dedup tables
   * (APP_BUG_NO_DEDUP): a retried transfer or booking applies again. Only
   * the application workloads notice. */
  SIM_HOST_BUG_NO_DEDUP = 1u << 2,
  /* A write whose entry arrives inside an installed snapshot is answered
   * "not applied" (RT_BUG_SNAPSHOT_REPLY): the client retries it and it
   * applies twice. */
  SIM_HOST_BUG_SNAPSHOT_REPLY = 1u << 3,
  /* Reads of expiring keys use the serving node's wall clock
   * (RT_BUG_WALL_CLOCK_READ): a key vanishes on one leader and comes back
   * on the next. */
  SIM_HOST_BUG_WALL_CLOCK_READ = 1u << 4,
  /* SABHA.WATCH FROM r starts after r (RT_BUG_WATCH_RESUME_SKIP): the
   * simulator's watcher, resuming after a lost connection, misses events,
   * which the watch checker sees. */
  SIM_HOST_BUG_WATCH_RESUME_SKIP = 1u << 5,
  /* Transactions apply in part (RT_BUG_TXN_PARTIAL): the coordination
   * client's invariants see it. */
  SIM_HOST_BUG_TXN_PARTIAL = 1u << 6,
  /* Adaptive timing never comes back down (RT_BUG_TIMING_RATCHET): the
   * timing test (tests/sim/test_timing.c) sees the end of a run still at
   * its peak. */
  SIM_HOST_BUG_TIMING_RATCHET = 1u << 7,
  /* APPENDs' values rebuilt out of order in the watch window
   * (RT_BUG_WATCH_DELTA_ORDER): the watch checker compares the bytes. */
  SIM_HOST_BUG_WATCH_DELTA_ORDER = 1u << 8,
};

/* What the clients do (src/sim/workload.c). kv: put/get/cas on n_keys keys,
 * judged by linearizability; the others drive the application machine of
 * sm/app.h and are judged by invariant checkers (app_checks.h): */
enum sim_workload {
  SIM_WORKLOAD_KV = 0,
  SIM_WORKLOAD_LEDGER, /* accounts opened, then racing transfers */
  SIM_WORKLOAD_SEATS,  /* few seats, many clients booking and cancelling */
  SIM_WORKLOAD_LOCKS,  /* short leases, renewals, fenced writes */
  SIM_WORKLOAD_ORDERS, /* orders walked along their workflow */
  SIM_WORKLOAD_MIXED,  /* kv and all four applications */
  SIM_WORKLOAD_COUNT,
};

/* Parses a workload name. Returns 0, or SABHA_EINVAL with a sentence in err
 * listing the names. */
int sim_workload_parse(const char *name, enum sim_workload *out, char *err,
                       size_t err_size);
const char *sim_workload_name(enum sim_workload w);

/* Parses a --bug name into engine bits (sabha_config.bugs) and host bits.
 * Returns 0, or SABHA_EINVAL with a sentence in err listing the names. */
int sim_bug_parse(const char *name, uint32_t *engine_bugs, uint32_t *host_bugs,
                  char *err, size_t err_size);
/* The names sim_bug_parse() accepts, NULL-terminated. */
const char *const *sim_bug_names(void);

/* A scripted fault. `node` and `peer` are node ids (1..n); node 0 in CRASH
 * and SLOW means "the current leader" (none: nothing happens). */
enum sim_script_op {
  SIM_SCRIPT_PARTITION = 1, /* group[i] is node i+1's group; links between
                               different groups are cut both ways */
  SIM_SCRIPT_HEAL,          /* every scripted and random cut, loss, dup,
                               reorder, slowness and drift ends */
  SIM_SCRIPT_BLOCK,         /* node -> peer cut (one direction) */
  SIM_SCRIPT_UNBLOCK,       /* node -> peer restored */
  SIM_SCRIPT_CRASH,         /* node crashes (0: the leader) */
  SIM_SCRIPT_RESTART,       /* node restarts from its disk (0: every
                               node that is down) */
  SIM_SCRIPT_POWER_LOSS,    /* every node in node_mask (bit i: node i+1; 0:
                               all) crashes at this instant */
  SIM_SCRIPT_LINK,          /* node -> peer (0 and 0: every node link) gets
                               latency_us + jitter_us and loss */
  SIM_SCRIPT_SLOW,          /* node (0: leader) takes delay_us per message
                               (plus entry_us per entry it carries) and
                               fsync_factor x longer fsyncs, until a HEAL;
                               slow_flags below */
  SIM_SCRIPT_CLOCK,         /* node's clock runs at `rate` after jumping
                               forward jump_ms */
  SIM_SCRIPT_ISOLATE,       /* (for the lab) node (0: the leader) is cut
                               both ways from peer (0: every other node;
                               SIM_PEER_FOLLOWER: the lowest-numbered up
                               node that is not `node`) until a HEAL */
};

/* SIM_SCRIPT_ISOLATE's peer: "a follower of the node", chosen at run time,
 * so a script can cut the leader from one follower (Howard & Abraham's
 * partial partition) without knowing who will lead. RESTART's node 0 means
 * every node that is down. */
#define SIM_PEER_FOLLOWER UINT32_MAX

/* SIM_SCRIPT_SLOW's slow_flags: a CPU-starved leader, modelled faithfully.
 * Both are off unless a script asks, so other runs are unchanged. */
enum sim_slow_flag {
  /* The slowness follows leadership (node must be 0): whenever a new
   * leader is seen, it becomes the slowed node and the one slowed before
   * recovers, until the next HEAL. The overload comes from the clients,
   * and the clients follow the leader: deposing a starved leader moves the
   * load, it does not remove it. */
  SIM_SLOW_FOLLOW_LEADER = 1u << 0,
  /* The slowed node's timers fire late: a tick that comes due while it
   * works waits behind the inputs already queued (FIFO), instead of
   * jumping the queue between two messages. A starved event loop sends
   * its heartbeats only after the backlog before them. */
  SIM_SLOW_LATE_TIMERS = 1u << 1,
};

struct sim_script_event {
  uint64_t at_ms; /* simulated time */
  enum sim_script_op op;
  uint32_t node;
  uint32_t peer;
  uint32_t node_mask;
  uint8_t group[SABHA_NODES_MAX];
  uint32_t latency_us;
  uint32_t jitter_us;
  double loss; /* 0..1 */
  uint32_t delay_us;
  uint32_t fsync_factor;
  uint32_t slow_flags; /* enum sim_slow_flag bits (SLOW only) */
  uint32_t entry_us;   /* SLOW: added per log entry an input carries (a
                          client request: one; an append: its entries), so
                          the cost of work grows with the load, not with
                          the number of messages; 0: a flat delay_us */
  double rate;         /* clock rate, > 0 */
  uint32_t jump_ms;
};

#define SIM_CLIENTS_MAX 256u
#define SIM_OPS_MAX 1000000ull
#define SIM_KEYS_MAX 1024u
#define SIM_GROUPS_MAX 64u /* RT_GROUPS_MAX */

struct sim_options {
  const char *protocol; /* a name from sabha_protocols() */
  uint32_t n_nodes;     /* 1..SABHA_NODES_MAX; default 5 */
  uint32_t n_groups;    /* consensus groups each node hosts, as sabhad
                           --groups: 1..SIM_GROUPS_MAX; default 1. Above 1
                           the kv workload only, without membership
                           changes, transactions or the watcher (what
                           spans groups, sabhad refuses) */
  uint32_t n_clients;   /* 1..SIM_CLIENTS_MAX; default 5 */
  uint64_t n_ops;       /* client operations in the run; default 1000 */
  uint32_t n_keys;      /* key space; default 5 */
  uint64_t seed;        /* default 1 */
  uint32_t faults;      /* enum sim_fault bits for the nemesis; default all */
  uint32_t engine_bugs; /* enum sabha_bug bits; default 0 */
  uint32_t host_bugs;   /* enum sim_host_bug bits; default 0 */
  uint32_t compact_entries;      /* snapshot when applied is this far past the
                                    last snapshot; 0 (default): drawn from
                                    the seed among 16, 32, 64 and 256, so
                                    that snapshots are taken, sent and
                                    installed in most runs */
  uint32_t snapshot_chunk_bytes; /* engine config; 0 (default): drawn from
                                    the seed among 512, 4096 and 65536 */
  uint32_t entries_per_msg_max;  /* engine config; 0 (default): drawn from
                                    the seed among 1, 4, 64 and 256, so that
                                    runs cover one-entry appends (where an
                                    old-term entry can be acknowledged on its
                                    own, Figure 8) and batches */
  uint32_t inflight_msgs_max;    /* engine config; 0 (default): drawn from
                                    the seed among 1, 4 and 64 */
  uint32_t op_timeout_ms;        /* a client's overall deadline per op; 5000 */
  uint64_t sim_time_ms_max;      /* hard cap on simulated time; 0 (default):
                                    600 s plus a tenth of every op timing out
                                    (n_ops * op_timeout_ms / n_clients / 10) */
  uint64_t events_max;           /* hard cap on events; 0 (default): 10 million
                                    plus 50,000 per op (about 500x a normal run) */
  uint32_t quiesce_ms_max;       /* time allowed to converge after healing;
                                    20000 */
  bool check_linearizability;    /* default true */
  bool judge_safety;             /* default true: a breach of state machine
                                    safety or log matching fails and stops
                                    the run, an acknowledged write lost or a
                                    non-linearizable history fails it. False:
                                    each is only counted in the result (and
                                    acked_writes_lost is still the real
                                    number). sim_run() sets it false for the
                                    async baseline, whose losses are its
                                    result, not a bug. Election safety and
                                    the engine contract are always judged. */
  bool proposer_backoff;         /* engine config (classic Paxos): back off
                                    after a pre-emption; default true */
  bool expiry;                   /* kv workload: keys with a time to live
                                    (PX, the expiring keys, quiet spells);
                                    default true. Off, the operations
                                    depend on the seed and the replies
                                    alone, not on time, so every engine
                                    runs the same sequence */
  enum sim_workload workload;    /* default SIM_WORKLOAD_KV */
  FILE *trace;                   /* one readable line per event (time,
                                    node, message or step), or NULL */
  const uint32_t *priorities;    /* leader priority of each node by id
                                    (SABHA_NODES_MAX + 1 of them, rt_config.
                                    priority); NULL (default): all equal, so
                                    leadership never moves for preference */
  const uint8_t *group_leaders;  /* [n_groups]: the node id each group
                                     prefers as leader (0: sabhad's rule,
                                     group g prefers node g mod n + 1);
                                     NULL: that rule for every group, unless
                                     priorities are given */
  const struct sim_script_event *script; /* sorted by at_ms; may be NULL */
  size_t n_script;

  /* For the lab (src/lab): engine settings and a run length in time. Zero
   * (and SIM_SWITCH_DEFAULT) keeps what sabha_config_init() gives, so runs
   * that leave them alone are unchanged. */
  uint32_t election_timeout_ms_min; /* 0: engine default */
  uint32_t election_timeout_ms_max; /* 0: engine default */
  uint32_t heartbeat_ms;            /* 0: engine default */
  uint32_t commands_per_slot_max;   /* Multi-Paxos batching; 0: default */
  /* Adaptive timing (node/runtime.h, enum rt_timing_mode): 0 fixed (the
   * default), 1 adaptive, between the floor and the ceiling given (0:
   * the runtime's defaults, 150 and 5000 ms). */
  uint8_t timing;
  uint32_t timing_floor_ms;
  uint32_t timing_ceiling_ms;
  /* Where fsyncs run (node/runtime.h, enum rt_fsync_mode): 0 auto (the
   * default), 1 on the loop (the node takes no input for the fsync's
   * time), 2 on the disk thread. */
  uint8_t fsync;
  uint8_t pre_vote;        /* enum sim_switch */
  uint8_t check_quorum;    /* enum sim_switch */
  uint64_t client_time_ms; /* 0: the clients stop after n_ops operations.
                              Else they start operations only before this
                              simulated time (n_ops is then a cap): the
                              client phase ends once the last one started
                              has finished. A fault timeline needs clients
                              running through it, whatever the speed. */
};

enum sim_switch { SIM_SWITCH_DEFAULT = 0, SIM_SWITCH_OFF, SIM_SWITCH_ON };

/* A node seen leading a new term (or ballot) for the first time. */
struct sim_leader_change {
  uint64_t time_us;
  uint64_t term;
  uint32_t node;
  uint32_t group; /* 0 unless the run has several groups */
};

/* What one group of a multi-group run did. */
struct sim_group_result {
  uint64_t ops_ok;    /* kv operations on its keys that succeeded */
  uint64_t elections; /* distinct (term, leader) pairs seen */
  uint64_t commit;    /* highest index applied anywhere */
  uint32_t leader;    /* the node leading it at the end; 0: none */
  uint32_t keys;      /* the workload's keys that map to it */
};

/* hist_op.kind of an application operation: not a kv op, so the
 * linearizability checker never sees it; its command and reply are in
 * sim_result.app_history at the same position. */
#define SIM_HIST_APP 16u
#define SIM_APP_CMD_BYTES_MAX 112u

struct sim_app_op {
  uint16_t cmd_len;
  uint8_t cmd[SIM_APP_CMD_BYTES_MAX]; /* app_encode()d, as the client sent
                                         it (unstamped) */
  bool replied;                       /* the client got an answer (status ok) */
  bool duplicate;                     /* ... answered from the dedup table */
  uint8_t reply_kind;                 /* enum app_reply_kind */
  uint16_t code;                      /* enum app_code */
  int64_t integer;                    /* app_reply.integer */
};

/* Writes a history as JSON lines: kv ops exactly as hist_write_jsonl()
 * does, application ops (app_history may be NULL for none) as
 *   {"client":2,"op":"ledger.transfer","args":["c2.5","a3","a7","120"],
 *    "call_us":1,"return_us":2,"status":"ok",
 *    "reply":{"kind":"ok","code":"done","integer":120,"duplicate":false}}
 * (return_us and reply only for ok). hist_read_jsonl() rejects these lines:
 * an application history is judged by the invariant checkers, not read
 * back. Returns 0 or SABHA_EIO. */
int sim_history_write_jsonl(FILE *f, const struct hist_op *ops,
                            const struct sim_app_op *app_history, size_t n);

/* Fills `o` with the defaults written above. */
void sim_options_init(struct sim_options *o);

struct sim_result {
  bool failed;
  char failure[512]; /* the first check that failed, with the time */

  uint64_t ops_ok;
  uint64_t ops_failed;
  uint64_t ops_indeterminate;
  uint64_t safety_violations;        /* 0 or 1: a run stops at the first
                                        (unless !judge_safety: then every
                                        breach, without stopping) */
  uint64_t linearizability_failures; /* 0 or 1 */
  uint64_t acked_writes_lost;        /* acknowledged writes missing somewhere */
  uint64_t liveness_failures;        /* 0 or 1: no convergence after healing */
  uint64_t invariant_violations;     /* application invariants broken (a run
                                        stops at the first found while it
                                        runs; the end checks count each) */
  uint64_t elections;                /* distinct (term, leader) pairs seen */
  uint64_t phase1_rounds;  /* elections started (Raft) or phase-1 rounds
                              (Paxos), every node, every incarnation */
  uint64_t ballots_burned; /* terms or ballots the nodes moved past */

  uint32_t *latencies_us; /* ok ops, in completion order (malloc'd) */
  size_t n_latencies;
  uint64_t client_time_us; /* simulated time the clients ran */
  uint64_t sim_time_us;    /* simulated time of the whole run */
  uint64_t events;         /* events processed */
  uint64_t watch_events;   /* changes the watcher received (watcher.c) */
  uint64_t txns_checked;   /* EXEC replies whose sum was checked (coord.c) */
  double wall_seconds;     /* wall time of sim_run(), checks included */
  uint64_t trace_hash;
  uint64_t state_hash; /* the key-value state every node converged to: the
                          same workload on any engine, without faults,
                          must end in the same state */

  struct hist_op *history;        /* n_history ops, malloc'd; an application
                                     operation has kind SIM_HIST_APP */
  struct sim_app_op *app_history; /* [n_history] (malloc'd) for application
                                     workloads, else NULL */
  size_t n_history;

  /* Counters, for the curious and the tests. */
  uint64_t msgs_sent;
  uint64_t msgs_dropped;
  uint64_t fsyncs;
  uint64_t fsyncs_loop; /* ... of them run on the loop (the rest: later) */
  uint64_t crashes;
  uint64_t snapshots_taken;
  uint64_t snapshots_installed;
  uint64_t msg_bytes_sent; /* sabha_msg_size_bytes() of every msgs_sent */
  uint64_t disk_faults;    /* writes or fsyncs failed, bits flipped */
  uint64_t disk_corruptions_detected; /* flips the log refused or repaired */
  uint64_t disk_repairs;  /* logs cut at the damage, rejoined under a guard */
  uint64_t node_fatals;   /* runtimes that gave up (a disk fault, ...) */
  uint64_t removed_told;  /* nodes stopped by a member's removal notice:
                             removed while away (engine.h) */
  uint64_t conns_opened;  /* client connections and forwarding links */
  uint64_t clock_entries; /* clock entries leaders proposed */
  uint64_t membership_changes; /* membership entries committed */

  /* Transfers leaders started for a node of higher priority. */
  uint64_t priority_transfers;

  /* Adaptive timing: the highest election timeout (its minimum) any node
   * had in force, in ms, at the first tick (the configured timing) and
   * at any time; the highest among the nodes up at the end; how many
   * timings the runtimes chose. All 0 with fixed timing. */
  uint32_t timing_election_ms_first;
  uint32_t timing_election_ms_peak;
  uint32_t timing_election_ms_end;
  uint64_t timing_changes;

  /* Every new leadership, in time order (malloc'd; for the lab's charts). */
  struct sim_leader_change *leader_changes;
  size_t n_leader_changes;

  /* Per group (n_groups of them; one for a run of one group). */
  uint32_t n_groups;
  struct sim_group_result groups[SIM_GROUPS_MAX];
  uint8_t *latency_groups; /* [n_latencies]: the group of each latency */
};

/* Runs one simulation. Returns 0 when the run happened (whether or not a
 * check failed: see result->failed), SABHA_EINVAL for bad options (with a
 * sentence in err), SABHA_EPROTO for an unknown protocol, SABHA_ENOMEM.
 * result must be released with sim_result_free(). */
int sim_run(const struct sim_options *o, struct sim_result *result, char *err,
            size_t err_size);
void sim_result_free(struct sim_result *result);

#endif
