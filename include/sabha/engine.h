/* sabha engine API: one replicated log, several consensus protocols.
 *
 * An engine is one node's share of a consensus group. It is a deterministic
 * state machine: it never reads a clock, never touches a file or a socket and
 * never calls rand(). Everything it knows arrives through four inputs
 *
 *   sabha_engine_tick(now_ms)      time, as the host's clock reads it;
 *   sabha_engine_step(msg)         a message from a peer;
 *   sabha_engine_propose(bytes)    a command to replicate;
 *   sabha_engine_read_index(id)    a request to serve a linearizable read;
 *
 * plus a seed given at creation. Everything it wants done leaves through a
 * "ready" batch (struct sabha_ready) that the host collects, carries out in
 * the order written beside the struct, and acknowledges with
 * sabha_engine_advance(). In sabha one host does this: the node runtime
 * (src/node/runtime.h, docs/runtime.md), which sabhad runs over libuv and
 * POSIX files and the simulator over simulated links and an in-memory file
 * system. So the code that drives an engine in production is the code the
 * simulator proves, a bug found in simulation is a bug in production code,
 * and a seed reproduces it exactly. (tests/trace drives engines directly,
 * step by step, for scenario tests.)
 *
 * Raft, Multi-Paxos and classic Paxos sit behind this one interface, and so
 * does "async", a baseline that is not consensus (primary-backup that
 * acknowledges a write once the primary alone has it; it loses acknowledged
 * writes on failover, on purpose: docs/engines.md). They use
 * one vocabulary: "term" is Raft's term or Paxos's ballot, "vote" is a vote or
 * a promise, "index" is a log index or a slot, "commit" is the highest index
 * known chosen with every lower index chosen too.
 *
 * Threading: an engine is not thread-safe; one host thread drives it. There is
 * no global state, so a process may run any number of engines (one per
 * consensus group).
 */
#ifndef SABHA_ENGINE_H
#define SABHA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sabha/error.h"

/* Node ids are small positive integers; 0 means "none". */
#define SABHA_NODE_NONE 0u
#define SABHA_NODES_MAX 16u

enum sabha_role {
  SABHA_ROLE_FOLLOWER = 0,
  SABHA_ROLE_PRECANDIDATE, /* Raft PreVote (thesis §9.6); Paxos: probing */
  SABHA_ROLE_CANDIDATE,    /* Raft candidate; Paxos: running phase 1 */
  SABHA_ROLE_LEADER,       /* Raft leader; Paxos: distinguished proposer */
};

const char *sabha_role_name(enum sabha_role role);

enum sabha_entry_type {
  SABHA_ENTRY_COMMAND = 1, /* opaque bytes for the state machine */
  SABHA_ENTRY_NOOP = 2,    /* written by a new leader; applies nothing */
  SABHA_ENTRY_BATCH = 3,   /* several commands in one slot (Multi-Paxos):
                              each as a little-endian u32 length and its
                              bytes; walk them with sabha_batch_next() */
  SABHA_ENTRY_CONFIG = 4,  /* a new membership, written by the engine
                              (sabha_engine_change); its bytes are a
                              sabha_membership_encode()d membership and it
                              applies no command */
};

/* One log entry. The index and term travel with the entry everywhere (on the
 * wire, on disk) so that a record can be checked and repaired on its own. */
struct sabha_entry {
  uint64_t index;
  uint64_t term; /* term (Raft) or ballot (Paxos) it was written under */
  uint32_t type; /* enum sabha_entry_type */
  uint32_t size_bytes;
  const uint8_t *data; /* owner and lifetime: see the struct holding it */
};

/* What must be durable before a node may vote, promise or acknowledge. Term
 * and vote live in one record so a crash can never persist one without the
 * other (a node that did so could vote twice in a term). */
struct sabha_hard_state {
  uint64_t term;   /* current term or highest promised ballot */
  uint32_t vote;   /* node voted for in term, or SABHA_NODE_NONE */
  uint64_t commit; /* may lag; never names an entry not yet durable
                      (written after it), so an engine may trust it
                      after a restart (Multi-Paxos does) */
  /* The repair guard (0: none). A node whose disk lost entries it may have
   * acknowledged (the WAL cut a damaged log at the damage, docs/storage.md
   * "Repairing a damaged log") is given the highest index it may have
   * acknowledged. Until its commit index reaches it (or, in Raft, it holds
   * an entry of a term above the one it restarted in) it neither votes nor
   * promises, nor counts itself towards a quorum of its own: its log may
   * lack an entry a quorum needed it to hold. The engine clears it and says
   * so in a ready batch; hosts persist it like term and vote. */
  uint64_t repair_until;
};

struct sabha_snapshot_meta {
  uint64_t index; /* last index the snapshot covers */
  uint64_t term;  /* term of that entry */
};

/* ---- membership -----------------------------------------------------------
 *
 * Who is in the group lives in the log: a SABHA_ENTRY_CONFIG entry holds the
 * whole membership (every member's id, role and address), and a snapshot
 * carries the membership as of its index (hosts keep it beside the snapshot
 * and give it back in struct sabha_persisted). Voters elect and form
 * quorums; learners receive the log but count in no quorum, so a new node
 * catches up without making the group slower or less available. How a
 * protocol makes a change safe is its own (docs/engines.md): Raft changes
 * one server at a time, each configuration in force from the moment it is
 * appended (Raft thesis §4.1); Multi-Paxos puts it in force alpha slots
 * after the slot that chose it (Lamport, "Reconfiguring a state machine").
 *
 * Addresses are the host's business: opaque text (printable ASCII, no
 * spaces) the engine copies into the entry so that every member, and every
 * node that restarts later, learns where a new member lives. */
#define SABHA_ADDR_BYTES_MAX 64u

enum sabha_member_role {
  SABHA_MEMBER_VOTER = 1,
  SABHA_MEMBER_LEARNER = 2,
};

const char *sabha_member_role_name(uint32_t role); /* "voter", "learner" */

struct sabha_member {
  uint32_t id;
  uint32_t role;                       /* enum sabha_member_role */
  char addr[SABHA_ADDR_BYTES_MAX + 1]; /* NUL-terminated; "" if not known */
  /* Filled by sabha_engine_members() only (never encoded): */
  uint64_t match; /* on a leader, the last index known replicated there
                     (its own: what it holds durably); 0 elsewhere */
  bool caught_up; /* on a leader: holds everything committed and is
                     replicating, the condition to promote a learner */
};

struct sabha_membership {
  uint64_t index; /* log index of the CONFIG entry that set it; 0 for the
                     initial membership (struct sabha_config's voters) */
  uint32_t n;
  struct sabha_member members[SABHA_NODES_MAX];
};

/* The largest snapshot an engine takes, from a peer or to compact: a bound
 * on what a confused or hostile peer can make a node allocate, and the
 * most a node's log keeps (the runtime opens its log with it, so every
 * state an engine accepts can be saved). */
#define SABHA_SNAPSHOT_BYTES_MAX (UINT64_C(1) << 32)

/* Largest encoding: a header and every member with the longest address. */
#define SABHA_MEMBERSHIP_BYTES_MAX                                             \
  (8u + SABHA_NODES_MAX * (9u + SABHA_ADDR_BYTES_MAX))

/* The bytes of a CONFIG entry (and of the membership kept with a snapshot):
 * "SCF1", u32 n, then per member u32 id, u8 role, u32 address length and the
 * address (integers little-endian). `index` and progress are not encoded.
 * Writes at most `size` bytes; returns the length, or 0 when `m` is not a
 * valid membership (see decode) or `size` is too small. */
size_t sabha_membership_encode(const struct sabha_membership *m, uint8_t *buf,
                               size_t size);
/* Reads one, checking everything: 1..SABHA_NODES_MAX members, ids nonzero
 * and distinct, known roles, at least one voter, addresses of printable
 * ASCII within SABHA_ADDR_BYTES_MAX, nothing left over. Sets out->index to
 * 0. Returns 0 or SABHA_ECORRUPT. */
int sabha_membership_decode(const uint8_t *buf, size_t size,
                            struct sabha_membership *out);
/* The member with `id`, or NULL. */
const struct sabha_member *
sabha_membership_find(const struct sabha_membership *m, uint32_t id);

/* A change a host asks for (sabha_engine_change). */
enum sabha_change_type {
  SABHA_CHANGE_ADD_LEARNER = 1, /* a new member that votes in nothing */
  SABHA_CHANGE_PROMOTE,         /* a caught-up learner becomes a voter */
  SABHA_CHANGE_REMOVE,          /* a voter or learner leaves; the leader
                                   itself may: it steps down and hands
                                   leadership to the most caught-up voter
                                   once the change commits */
};

/* A message between two engines of one group. The hosts treat it as opaque
 * except for `from`, `to` and sabha_msg_size_bytes(); each protocol gives the
 * fields its own meaning (documented in its source). The pointers inside are
 * owned by the sender: in a ready batch, valid until sabha_engine_advance();
 * given to sabha_engine_step(), valid only during the call. */
struct sabha_msg {
  uint32_t type; /* protocol-specific message type */
  uint32_t from;
  uint32_t to;
  /* The consensus group of a process that hosts several (0 in the only
   * one). Engines ignore it; the host that sends and receives sets it. */
  uint32_t group;
  uint32_t reject; /* nonzero: the request was refused */
  uint64_t term;
  uint64_t index;
  uint64_t log_term;
  uint64_t commit;
  uint64_t hint_index; /* on a refusal: where the sender should look next */
  uint64_t hint_term;
  uint64_t context; /* request id, heartbeat round, read id */
  uint32_t n_entries;
  const struct sabha_entry *entries;
  /* A snapshot chunk: bytes [snap_offset, snap_offset + snap_size_bytes) of a
   * snapshot of snap_total_bytes that covers the log up to snap.index. */
  struct sabha_snapshot_meta snap;
  uint64_t snap_offset;
  uint64_t snap_total_bytes;
  uint32_t snap_size_bytes;
  const uint8_t *snap_data;
};

/* Walks the commands of a committed entry, for hosts applying it: a COMMAND
 * entry yields its bytes once, a BATCH entry each command in order, a NOOP
 * nothing. Start with *offset = 0. Returns 1 and sets *cmd and *size_bytes
 * (pointing into e->data) while there is a command, 0 at the end, and
 * SABHA_ECORRUPT for a malformed batch. */
int sabha_batch_next(const struct sabha_entry *e, size_t *offset,
                     const uint8_t **cmd, size_t *size_bytes);

/* Approximate bytes the message takes on the wire (header plus payload). */
size_t sabha_msg_size_bytes(const struct sabha_msg *msg);

struct sabha_read_state {
  uint64_t request_id; /* as given to sabha_engine_read_index() */
  uint64_t index;      /* serve the read once the state machine has applied
                          this index */
};

/* The output of an engine, to be carried out by the host in this order:
 *
 *   1. Send `msgs` at once. They do not depend on anything in this batch
 *      being durable (a leader's appends go here, so that the leader writes
 *      its own log in parallel with its followers).
 *   2. Write, in this order, `hard_state` (if has_hard_state), the snapshot
 *      (if has_snapshot), the truncation of every entry at index >=
 *      `truncate_from` (if nonzero), then `entries`, after everything
 *      earlier batches asked to write. No fsync is needed before step 3.
 *   3. Keep `msgs_after_persist` (votes, promises, acknowledgements: each
 *      tells a peer that something is durable here) until an fsync that
 *      started after step 2 has completed; then send them.
 *   4. Install the snapshot into the state machine (if has_snapshot), then
 *      apply `committed` in index order. Entries of type NOOP change nothing.
 *      The snapshot's index may be below what the host has applied (async
 *      rollback: the state goes back to it), and a snapshot of index 0 with
 *      no bytes means the empty state machine. Committed entries are on a
 *      majority's disks already (a leader counts its own copy only once
 *      sabha_engine_persisted says so), so they may be applied before this
 *      node's own copy is durable.
 *   5. Serve `reads` once the state machine has applied each one's index.
 *   6. Call sabha_engine_advance(). The host need not wait for the disk:
 *      it may take the next batch, and the next, while an fsync runs.
 *   7. Whenever an fsync completes, call sabha_engine_persisted() with the
 *      `seq` of the newest batch whose writes it covers (one fsync of a log
 *      written in order covers every batch written before it started).
 *
 * Asynchronous storage writes. The engine never waits for the disk: it
 * learns what is durable through sabha_engine_persisted(), its own
 * acknowledgement, which a Raft leader counts like a follower's match and
 * a Multi-Paxos leader like an acceptor's accepted. A write handed out
 * after the acknowledged batch that rewrites an index (a Raft truncation,
 * a Paxos slot accepted again) keeps that index out of the count until its
 * own batch is acknowledged. Meanwhile the host goes on reading, proposing,
 * replicating and applying, and the batches written while one fsync runs
 * share the next: group commit that grows with the load. A host that syncs
 * at once simply calls sabha_engine_persisted(rd.seq) right after advance.
 *
 * Every pointer in the batch stays valid until advance(). Between
 * sabha_engine_ready() and sabha_engine_advance() the host makes no other call
 * on the engine; messages it keeps for step 3 it copies.
 *
 * must_sync says whether the batch needs an fsync before anything depends
 * on it: it is true when the batch holds entries, a truncation, a snapshot,
 * a new term or vote (promise), or messages that may only leave once the
 * batch is durable. A batch that only moves the commit index does not:
 * the commit index is a hint (a restarted node learns it again from the
 * leader), and what a reply depends on, the entry being on a majority's
 * disks, was made durable when the entry was appended. Its hard state
 * record is still written and reaches the disk with the next fsync. The
 * rule lives here, once, so that every host keeps it the same way. */
struct sabha_ready {
  uint64_t seq; /* this batch's number, from 1, one more each batch: what
                   sabha_engine_persisted() names */
  bool must_sync;

  bool has_hard_state;
  struct sabha_hard_state hard_state;

  bool has_snapshot;
  struct sabha_snapshot_meta snapshot;
  const uint8_t *snapshot_data;
  size_t snapshot_size_bytes;
  /* The membership as of the snapshot, to keep with it (given back in
   * struct sabha_persisted after a restart). */
  const struct sabha_membership *snapshot_membership;

  uint64_t truncate_from; /* 0: nothing to truncate */
  const struct sabha_entry *entries;
  size_t n_entries;

  const struct sabha_msg *msgs;
  size_t n_msgs;
  const struct sabha_msg *msgs_after_persist;
  size_t n_msgs_after_persist;

  const struct sabha_entry *committed;
  size_t n_committed;

  const struct sabha_read_state *reads;
  size_t n_reads;
};

/* Deliberately broken safety rules, for proving that the checkers can fail.
 * Never set outside tests and the simulator's --bug flag. */
enum sabha_bug {
  SABHA_BUG_VOTE_TWICE = 1u << 0,     /* grant a vote despite an earlier one */
  SABHA_BUG_STALE_COMMIT = 1u << 1,   /* commit old-term entries by count */
  SABHA_BUG_SKIP_LOG_CHECK = 1u << 2, /* vote without the up-to-date check */
  SABHA_BUG_ACCEPT_LOWER_BALLOT = 1u << 3, /* Paxos: ignore a promise */
  SABHA_BUG_NO_ADOPT = 1u << 4, /* Paxos: ignore accepted values in phase 1 */
  SABHA_BUG_NO_REPAIR_GUARD = 1u << 5,  /* vote while the repair guard holds */
  SABHA_BUG_LEARNER_QUORUM = 1u << 6,   /* count learners in commit quorums */
  SABHA_BUG_COUNT_SELF_EARLY = 1u << 7, /* count this node's own copy when a
                                           batch is handed out, before the
                                           host says it is durable */
};

/* The fewest entries a Multi-Paxos promise chunk may carry, whatever
 * entries_per_msg_max says (see struct sabha_config). */
#define SABHA_PROMISE_ENTRIES_MIN 64u

struct sabha_config {
  uint32_t id;                      /* this node; must be in voters */
  uint32_t n_voters;                /* 1..SABHA_NODES_MAX */
  uint32_t voters[SABHA_NODES_MAX]; /* every member, this node included */
  uint32_t election_timeout_ms_min; /* default 150 */
  uint32_t election_timeout_ms_max; /* default 300 */
  uint32_t heartbeat_ms;            /* default 50 */
  bool pre_vote;                    /* default true (thesis §9.6) */
  bool check_quorum;                /* default true (thesis §6.2) */
  uint32_t inflight_msgs_max;       /* appends in flight per peer; 64 */
  uint32_t entries_per_msg_max;     /* default 256; a Multi-Paxos
                                       promise chunk may carry up to
                                       SABHA_PROMISE_ENTRIES_MIN when
                                       this is lower (bytes still bound
                                       it), so that phase 1 over a long
                                       backlog takes few round trips */
  uint32_t bytes_per_msg_max;       /* default 1 MiB */
  uint32_t uncommitted_entries_max; /* propose refuses beyond it; 4096 */
  uint32_t snapshot_chunk_bytes;    /* default 64 KiB */
  uint32_t entry_size_bytes_max;    /* default 1 MiB */
  uint32_t commands_per_slot_max;   /* batching: commands proposed
                                       together (before the next ready)
                                       share one Raft entry or Multi-Paxos
                                       slot, up to this many (default
                                       64) ... */
  uint32_t bytes_per_slot_max;      /* ... and this many bytes (64 KiB) */
  uint64_t seed;                    /* for randomized timeouts */
  bool proposer_backoff;            /* classic Paxos: wait a random,
                                       growing time after being pre-empted
                                       (default true; false shows the
                                       dueling-proposers livelock) */
  uint32_t bugs;                    /* enum sabha_bug bits; 0 */
  uint32_t alpha; /* Multi-Paxos: a membership chosen at slot i governs
                     slots from i + alpha on, and the leader runs at most
                     alpha slots ahead of the chosen prefix (default 16) */
  bool join;      /* a node joining a running group: it starts with no
                     membership (voters are ignored, may be empty) and takes no
                     part until a leader's log or snapshot includes it */
};

/* Fills `cfg` with the defaults above for node `id` of `voters`. */
void sabha_config_init(struct sabha_config *cfg, uint32_t id,
                       const uint32_t *voters, uint32_t n_voters);

/* What a restarted node found on its disk. Entries must be contiguous and
 * start right after the snapshot (or at index 1 without one). */
struct sabha_persisted {
  struct sabha_hard_state hard_state;
  bool has_snapshot;
  struct sabha_snapshot_meta snapshot;
  const uint8_t *snapshot_data;
  size_t snapshot_size_bytes;
  const struct sabha_entry *entries;
  size_t n_entries;
  uint64_t applied; /* index the host's state machine already reflects (the
                       snapshot's, normally); committed entries after it are
                       handed out again */
  /* The membership as of the snapshot (the host keeps it with the snapshot:
   * sabha_engine_membership_at). NULL: the configuration's voters, or
   * no membership at all for a joining node (sabha_config.join). */
  const struct sabha_membership *membership;
  /* The index of the membership that removed this node, as a member's
   * notice said (struct sabha_status.removed_notice_index), which the host
   * kept; 0 for none. */
  uint64_t removed_notice_index;
};

struct sabha_status {
  uint32_t id;
  enum sabha_role role;
  uint64_t term;
  uint32_t vote;
  uint32_t leader; /* as far as this node knows; SABHA_NODE_NONE if unknown */
  uint64_t commit;
  uint64_t applied;
  uint64_t first_index; /* first entry in the log (snapshot.index + 1) */
  uint64_t last_index;
  uint64_t snapshot_index;
  uint64_t elections_started; /* phase-1 rounds for Paxos */
  uint64_t campaigns_started; /* elections_started and the PreVote (Raft)
                                 or probe (Multi-Paxos) rounds before
                                 them: how often this node asked the others
                                 to follow it */
  uint64_t elections_won;
  uint64_t ballots_burned; /* terms/ballots this node moved past */
  bool voter;              /* a voter in the membership in force here */
  bool removed; /* a committed membership leaves this node out: it takes
                   no part any more (sabha_engine_members says since when);
                   never for a joining node (sabha_config.join) that no
                   membership has named yet: that one is only behind */
  uint64_t config_index; /* index of the membership in force (0: initial) */
  uint64_t repair_until; /* the repair guard in force, 0 for none */
  /* A node that was away when its removal committed never reads that
   * change in its own log: a member it asks for votes (or any member that
   * hears from it) answers with a notice naming the committed membership
   * that removed it. The engine believes one only from a member of its own
   * membership, naming a membership newer than the one it has (or that
   * one, when it leaves this node out already); from then
   * on `removed` holds and this is that membership's index (0: no notice
   * believed). The host keeps it durably and gives it back in struct
   * sabha_persisted, so that a restart does not campaign again. Raft and
   * Multi-Paxos. */
  uint64_t removed_notice_index;
};

struct sabha_engine;

/* Names of the protocols this build knows, NULL-terminated. */
const char *const *sabha_protocols(void);

/* Creates an engine for `protocol` ("raft", ...). `persisted` may be NULL for
 * a node with an empty disk; its contents are copied. Returns 0 and sets *out,
 * SABHA_EPROTO for an unknown name, SABHA_EINVAL for a bad config,
 * SABHA_ENOMEM. */
int sabha_engine_new(struct sabha_engine **out, const char *protocol,
                     const struct sabha_config *cfg,
                     const struct sabha_persisted *persisted);
void sabha_engine_free(struct sabha_engine *e);
const char *sabha_engine_protocol(const struct sabha_engine *e);

/* Advances the engine's notion of time. `now_ms` never goes backwards. */
int sabha_engine_tick(struct sabha_engine *e, uint64_t now_ms);

/* Hands the engine a message addressed to it. Messages may arrive late,
 * twice, out of order or not at all; the engine copes with all of these. */
int sabha_engine_step(struct sabha_engine *e, const struct sabha_msg *msg);

/* Appends a command to the replicated log. The bytes are copied. Returns 0
 * (the command will be applied if it commits; the host learns so when it
 * appears among committed entries), SABHA_ENOTLEADER, SABHA_EBUSY when
 * uncommitted_entries_max are outstanding, SABHA_ETOOBIG, SABHA_ETRANSFER. */
int sabha_engine_propose(struct sabha_engine *e, const void *data,
                         size_t size_bytes);

/* Asks for a linearizable read (thesis §6.4, ReadIndex). When the engine has
 * confirmed it is still leader, a sabha_read_state with this id appears in a
 * ready batch. Returns 0 or SABHA_ENOTLEADER. A request may never complete
 * (leadership lost): hosts time out. */
int sabha_engine_read_index(struct sabha_engine *e, uint64_t request_id);

/* True when sabha_engine_ready() would return a non-empty batch. */
bool sabha_engine_has_ready(const struct sabha_engine *e);
/* Fills `rd` (see struct sabha_ready); an empty batch when nothing is due. */
void sabha_engine_ready(struct sabha_engine *e, struct sabha_ready *rd);
/* Acknowledges that the host carried out steps 1-5 of `rd` (see struct
 * sabha_ready): written, not necessarily durable. */
void sabha_engine_advance(struct sabha_engine *e, const struct sabha_ready *rd);
/* Tells the engine that every batch up to and including number `seq`
 * (sabha_ready.seq, of a batch already advanced) is durable: this node's
 * own acknowledgement. A leader may commit because of it, so
 * sabha_engine_has_ready() may turn true. A `seq` at or below one already
 * given changes nothing (a late report of an fsync overtaken by a later
 * one). Not between ready() and advance(). */
void sabha_engine_persisted(struct sabha_engine *e, uint64_t seq);

void sabha_engine_status(const struct sabha_engine *e, struct sabha_status *st);

/* Hands leadership to `to` (thesis §3.10). The leader stops taking proposals
 * until the transfer completes or an election timeout passes. Returns 0,
 * SABHA_ENOTLEADER, SABHA_EINVAL or SABHA_ENOTSUPP (async has no transfer). */
int sabha_engine_transfer_leadership(struct sabha_engine *e, uint32_t to);

/* Timing: how soon an engine suspects a silent leader and how often a
 * leader speaks. sabha_config sets it at creation; a host that measures its
 * network (the node runtime's adaptive timing, docs/operations.md) changes
 * it while the engine runs. Timing never decides safety in any engine, only
 * how soon a failure is noticed and how much quiet traffic flows. */
#define SABHA_TIMING_MS_MAX 600000u /* the longest timeout an engine takes */

struct sabha_timing {
  uint32_t election_timeout_ms_min; /* a follower's timeout is drawn from */
  uint32_t election_timeout_ms_max; /* [min, max]; CheckQuorum, leases and
                                       transfers wait min */
  uint32_t heartbeat_ms;            /* a leader's idle interval */
};

/* Makes `t` the timing of every timer the engine arms from now on; a timer
 * already armed runs out as it was (a follower's next election deadline,
 * the next heartbeat). Valid timing follows sabha_config's rules:
 * 0 < heartbeat_ms < election_timeout_ms_min <= election_timeout_ms_max <=
 * SABHA_TIMING_MS_MAX. Returns 0 or SABHA_EINVAL (nothing changed). Raft,
 * Multi-Paxos, classic Paxos (its status interval and back-off bounds) and
 * async all honour it. */
int sabha_engine_set_timing(struct sabha_engine *e,
                            const struct sabha_timing *t);
/* The timing in force. */
void sabha_engine_timing(const struct sabha_engine *e, struct sabha_timing *t);

/* Asks for a membership change: appends a CONFIG entry (the leader only).
 * `addr` names a new member's address (ADD_LEARNER; NULL or "" otherwise).
 * One change at a time, and only once this leader has committed an entry
 * of its own term (the fix to single-server changes, Ongaro 2015). Returns
 * 0 (the entry will commit like any other: watch sabha_engine_members),
 * SABHA_ENOTLEADER, SABHA_EBUSY (a change is still uncommitted, the leader
 * has not committed in its term yet, or a learner to promote is not caught
 * up: try again later), SABHA_EINVAL (no such member, already a member, a
 * voter to promote, the last voter to remove, a bad address, a full group),
 * SABHA_EQUORUM (a removal or promotion that would leave fewer than a
 * majority of the voters reachable, caught up with this leader's term and
 * free of a repair guard: bring a node back first), SABHA_ETRANSFER or
 * SABHA_ENOTSUPP (a protocol without membership changes: classic Paxos,
 * async). */
int sabha_engine_change(struct sabha_engine *e, enum sabha_change_type type,
                        uint32_t id, const char *addr);

/* The membership in force at this node, with each member's progress when
 * this node leads (struct sabha_member). */
void sabha_engine_members(const struct sabha_engine *e,
                          struct sabha_membership *out);

/* The membership as of log index `index` (at or after the snapshot and at
 * most the last index), for a host that is about to compact there and keeps
 * it with the snapshot. Returns 0 or SABHA_EINVAL. */
int sabha_engine_membership_at(const struct sabha_engine *e, uint64_t index,
                               struct sabha_membership *out);

/* Replaces the log up to `index` (<= applied) with a snapshot of the state
 * machine taken at that index. The bytes are copied: the engine sends them to
 * followers that fall behind the log. Returns 0, SABHA_EINVAL (index beyond
 * applied), SABHA_ECOMPACTED (already covered), SABHA_ETOOBIG (above
 * SABHA_SNAPSHOT_BYTES_MAX), SABHA_ENOMEM, or (async) SABHA_EBUSY: not
 * every node holds the log up to `index` yet, retry later. */
int sabha_engine_compact(struct sabha_engine *e, uint64_t index,
                         const void *data, size_t size_bytes);

/* Inspection, for checkers and tools: the entry at `index` in this node's
 * log (persisted or not). The data pointer is valid until the next call on the
 * engine. Returns 0, SABHA_ECOMPACTED or SABHA_EUNAVAILABLE. */
int sabha_engine_entry(const struct sabha_engine *e, uint64_t index,
                       struct sabha_entry *out);

/* ---- describing messages --------------------------------------------------
 *
 * One line of text for a message, in the protocol's own words, for traces,
 * logs and tools: the message type as the protocol's source names it, then
 * the fields that type uses as key=value. `from` and `to` are left to the
 * caller (a trace prints "n1 -> n2 " before the line). Index/term pairs read
 * "index/term"; Paxos ballots, which pack a round and a node id, read
 * "round.node" (3.2 is node 2's ballot of round 3); a refusal ends in
 * "reject". Fields a type does not normally use are still shown when not
 * zero, as field=value, so that nothing in a message is hidden. Examples:
 *
 *   raft        append term=3 prev=40/3 entries=41..42/3 commit=39
 *               append-resp term=3 index=42 ok
 *               append-resp term=3 index=44 reject hint=30/2
 *               prevote term=5 last=41/3
 *               vote term=4 last=41/3          (" forced": TimeoutNow's)
 *               vote-resp term=4 granted
 *               heartbeat term=3 commit=39 ctx=7
 *               snapshot term=3 snap=100/2 bytes=0..4096/9000
 *               snapshot-resp term=3 snap=100/2 received=4096
 *               timeout-now term=3
 *               removed term=3 config=42       (to a node removed at 42)
 *   multipaxos  prepare ballot=2.1 from=5      (probe: the same, before it)
 *               promise ballot=2.1 last=7 accepted=5..7/1.3 commit=4
 *               accept ballot=2.1 slot=5 entries=5..6/2.1 commit=4
 *               accepted ballot=2.1 index=6 ok
 *   paxos       prepare ballot=1.2 slot=3
 *               promise ballot=1.2 slot=3 ok accepted=1.1 value="x"
 *               accept ballot=1.2 slot=3 value="x"
 *               chosen ballot=1.2 commit=3 entries=3/1.2 value="x"
 *   async       append term=2 prev=9/2 entries=10/2 commit=9 stable=8 last=10
 *
 * tests/trace/test_describe.c pins the line of every type of every protocol.
 *
 * Writes at most `size` bytes, NUL included, never allocates, and returns
 * the length the whole line has (as snprintf: a result >= size means the
 * line was cut). `buf` may be NULL when `size` is 0. An unknown protocol,
 * or a type the protocol does not know, gives "type=N" and every field
 * that is not zero. */
size_t sabha_msg_describe(const char *protocol, const struct sabha_msg *msg,
                          char *buf, size_t size);
/* The same, for a message of `e`'s protocol. */
size_t sabha_engine_describe_msg(const struct sabha_engine *e,
                                 const struct sabha_msg *msg, char *buf,
                                 size_t size);

#endif
