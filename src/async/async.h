/* The async baseline's private state, shared by the files of src/async.
 *
 * `async` is not consensus. It is the primary-backup replication a database
 * gives with acknowledgement from the primary alone (MongoDB's writeConcern
 * {w: 1}): the primary appends a write to its log, and the write is
 * committed, applied and acknowledged as soon as the primary's own fsync
 * completes; backups receive it afterwards. It sits behind the engine API
 * so that the simulator and the lab can run it against the same clients and
 * faults as the consensus engines and count what it loses (docs/engines.md,
 * "async").
 *
 *   async.c        creation, time, the message dispatcher, ready/advance
 *   election.c     elections by priority (lower node id = higher priority)
 *   replication.c  appends, heartbeats, flow control, rollback
 *   snapshot.c     compaction rule and snapshots sent in chunks
 *
 * Where it differs from Raft, on purpose:
 *   - commit: the primary's commit index is its last durable index. No
 *     quorum is counted. Backups apply what the primary committed, capped at
 *     what they hold matching the primary's log.
 *   - election: a majority of votes makes a primary (so there is at most one
 *     per term: that still holds and the simulator still checks it), but a
 *     voter does not compare logs. It grants its one vote of the term to a
 *     candidate whose priority is at least that of every candidate it has
 *     heard in the term. A node with a short log can win, and its log wins.
 *   - rollback: entries a new primary does not have are cut from every other
 *     node when it replicates, even entries already applied and acknowledged
 *     (MongoDB's rollback). When the cut reaches entries the host has
 *     applied, the node reinstalls its own newest snapshot through
 *     ready.snapshot and the host re-applies from there (see
 *     async_rollback()).
 *   - compaction: a snapshot may only cover the "stable" prefix, the entries
 *     the primary knows every voter holds. No later primary can lack them,
 *     so a snapshot never holds an entry a rollback would have to undo, and
 *     every node can always roll back to its own snapshot.
 *
 * The core is pure: no clock, no I/O, no rand(); see include/sabha/engine.h. */
#ifndef SABHA_ASYNC_H
#define SABHA_ASYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/outbox.h"
#include "core/prng.h"
#include "core/progress.h"
#include "core/replog.h"
#include "sabha/engine.h"

/* Message types. Field use, beyond from/to/term:
 *   APPEND         index, log_term: the entry before `entries`; commit;
 *                  hint_index: the stable index; context: the primary's last
 *                  log index when it sent this.
 *   APPEND_RESP    index: last index known to match (success), or the index
 *                  refused; hint_index/hint_term: where to probe next.
 *   HEARTBEAT      commit and hint_index (stable), both capped at what the
 *                  backup is known to hold; context: the primary's last index.
 *   HEARTBEAT_RESP nothing more.
 *   VOTE           nothing more: the log is not compared.
 *   VOTE_RESP      reject.
 *   SNAPSHOT       snap, snap_offset, snap_total_bytes, snap_data.
 *   SNAPSHOT_RESP  snap.index; context: bytes received so far. */
enum async_msg_type {
  ASYNC_MSG_APPEND = 1,
  ASYNC_MSG_APPEND_RESP,
  ASYNC_MSG_HEARTBEAT,
  ASYNC_MSG_HEARTBEAT_RESP,
  ASYNC_MSG_VOTE,
  ASYNC_MSG_VOTE_RESP,
  ASYNC_MSG_SNAPSHOT,
  ASYNC_MSG_SNAPSHOT_RESP,
};

struct async_node {
  struct sabha_config cfg;
  struct prng prng;
  uint64_t now_ms;
  bool clock_started;

  /* Persistent: term and vote; the log, commit and applied live in `rl`. */
  uint64_t term;
  uint32_t vote;
  struct replog rl;

  /* Volatile. */
  enum sabha_role role;
  uint32_t leader;
  uint32_t rank; /* voters with a higher priority (a lower id) than this one */
  /* Every voter holds this node's log up to here (told by the primary, or
   * computed as primary); compaction may not go past it. */
  uint64_t stable;

  /* Timers, in the host's milliseconds. */
  uint64_t election_deadline_ms;
  uint64_t heartbeat_due_ms;
  uint64_t check_quorum_due_ms;
  uint64_t leader_contact_ms;

  /* Elections: one bit per voter slot (cfg.voters order). */
  uint32_t votes_granted;
  uint32_t votes_refused;
  uint32_t best_candidate; /* highest-priority candidate heard this term */

  /* Primary state. */
  struct progress peers[SABHA_NODES_MAX]; /* indexed like cfg.voters */

  struct outbox out;

  /* Counters. */
  uint64_t elections_started;
  uint64_t elections_won;
  uint64_t terms_burned;
  uint64_t rollbacks; /* times applied entries were undone here */
};

/* async.c */
int async_voter_slot(const struct async_node *a, uint32_t id);
void async_reset_election_timer(struct async_node *a);
void async_become_follower(struct async_node *a, uint64_t term,
                           uint32_t leader);
void async_become_primary(struct async_node *a);
void async_send(struct async_node *a, struct sabha_msg *m, bool after_persist);

/* election.c */
void async_campaign(struct async_node *a);
void async_recv_vote(struct async_node *a, const struct sabha_msg *m);
void async_recv_vote_resp(struct async_node *a, const struct sabha_msg *m);

/* replication.c */
bool async_send_append(struct async_node *a, struct progress *pr,
                       bool empty_ok);
void async_broadcast_append(struct async_node *a);
void async_broadcast_heartbeat(struct async_node *a);
void async_recv_append(struct async_node *a, const struct sabha_msg *m);
void async_recv_append_resp(struct async_node *a, const struct sabha_msg *m);
void async_recv_heartbeat(struct async_node *a, const struct sabha_msg *m);
void async_recv_heartbeat_resp(struct async_node *a,
                               const struct sabha_msg *m);
bool async_commit_own(struct async_node *a);
void async_update_stable(struct async_node *a);
void async_rollback(struct async_node *a, uint64_t from);

/* snapshot.c */
void async_send_snapshot(struct async_node *a, struct progress *pr);
void async_recv_snapshot(struct async_node *a, const struct sabha_msg *m);
void async_recv_snapshot_resp(struct async_node *a, const struct sabha_msg *m);
int async_compact(struct async_node *a, uint64_t index, const void *data,
                  size_t size_bytes);

#endif
