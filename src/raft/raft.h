/* The Raft core's private state, shared by the files of src/raft.
 *
 * Raft as in Ongaro & Ousterhout (2014) and Ongaro's thesis (2014), with the
 * extensions production systems need: PreVote (thesis §9.6), CheckQuorum
 * (§6.2), pipelined and batched replication with probe/replicate flow control
 * (§10.2.1), ReadIndex (§6.4), leadership transfer (§3.10) and snapshots sent
 * in chunks (§5). The files are named after what they handle:
 *
 *   raft.c         creation, time, role changes, the ready/advance cycle
 *   election.c     PreVote, RequestVote, TimeoutNow (§3.4, §9.6, §3.10)
 *   replication.c  AppendEntries, heartbeats, flow control, commit (§3.5, §3.6)
 *   read.c         ReadIndex (§6.4)
 *   snapshot.c     compaction and InstallSnapshot (§5)
 *   membership.c   learners and single-server membership changes (§4)
 *
 * The core is pure: no clock, no I/O, no rand(); see include/sabha/engine.h. */
#ifndef SABHA_RAFT_H
#define SABHA_RAFT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/membership.h"
#include "core/outbox.h"
#include "core/prng.h"
#include "core/progress.h"
#include "core/readq.h"
#include "core/replog.h"
#include "sabha/engine.h"

/* Message types. Field use, beyond from/to/term:
 *   APPEND        index, log_term: the entry before `entries`; commit.
 *   APPEND_RESP   index: last index known to match (success), or the index
 *                 refused; hint_index/hint_term: where to probe next;
 *                 context RAFT_LOG_LOST from a node whose log was cut by a
 *                 repair (its repair guard holds; its match may have gone
 *                 back); appends to such a node carry hint_index: the
 *                 leader's last index.
 *   HEARTBEAT     commit (capped at the follower's match); context: read
 *                 round being confirmed.
 *   HEARTBEAT_RESP context echoed.
 *   PREVOTE, VOTE index, log_term: the candidate's last entry; context 1 for
 *                 an election forced by TimeoutNow (ignores leases).
 *   *_RESP        reject.
 *   SNAPSHOT      snap, snap_offset, snap_total_bytes, snap_data; one
 *                 entry: the CONFIG entry of the membership as of the
 *                 snapshot (its index, the bytes; term 0).
 *   SNAPSHOT_RESP snap.index; context: bytes received so far.
 *   TIMEOUT_NOW   start an election now (leadership transfer).
 *   REMOVED       index: the committed membership that removed the
 *                 receiver, sent to a node that membership leaves out
 *                 when it campaigns (membership.c). */
/* An append refusal's context: the follower's repaired disk lost entries
 * it may have acknowledged (replog.h, the repair guard). */
#define RAFT_LOG_LOST 1u

enum raft_msg_type {
  RAFT_MSG_APPEND = 1,
  RAFT_MSG_APPEND_RESP,
  RAFT_MSG_HEARTBEAT,
  RAFT_MSG_HEARTBEAT_RESP,
  RAFT_MSG_PREVOTE,
  RAFT_MSG_PREVOTE_RESP,
  RAFT_MSG_VOTE,
  RAFT_MSG_VOTE_RESP,
  RAFT_MSG_SNAPSHOT,
  RAFT_MSG_SNAPSHOT_RESP,
  RAFT_MSG_TIMEOUT_NOW,
  RAFT_MSG_REMOVED,
};

struct raft {
  struct sabha_config cfg;
  struct prng prng;
  uint64_t now_ms;
  bool clock_started; /* the first tick has arrived */

  /* Persistent state (Figure 2); the log, commit and applied indices and
   * what the host has made durable live in `rl`. */
  uint64_t term;
  uint32_t vote;
  struct replog rl;

  /* Volatile state. */
  enum sabha_role role;
  uint32_t leader;

  /* Timers, in the host's milliseconds. */
  uint64_t election_deadline_ms;
  uint64_t heartbeat_due_ms;
  uint64_t check_quorum_due_ms;
  uint64_t leader_contact_ms; /* last time a current leader was heard */

  /* Membership (membership.c). `conf` is in force: the last CONFIG entry
   * in the log, whether committed or not (thesis §4.1), or else
   * `conf_snap`, the membership as of the snapshot, kept encoded too for
   * the snapshots this node sends. */
  struct sabha_membership conf;
  struct sabha_membership conf_snap;
  uint8_t conf_snap_bytes[SABHA_MEMBERSHIP_BYTES_MAX];
  size_t conf_snap_len;
  struct sabha_entry conf_snap_entry; /* what snapshot messages carry */
  /* Some membership this node has held named it. A joining node (cfg.join)
   * that no membership has named yet is behind, not removed, however many
   * committed memberships without it it holds: it gets the log from the
   * start, and the change that adds it comes after them. */
  bool conf_named_self;
  /* The commit index found on disk at start-up, within the log. Only a
   * hint for `rl.commit` (replog.c starts from what was applied), but
   * every entry up to it is the committed one: a membership there is
   * known committed, so a removed node still knows it after a restart. */
  uint64_t commit_on_disk;
  /* The removals the committed memberships show (core/membership.h):
   * `removals_conf` is the last committed membership read, at or before
   * `removals_scanned`, the last index read for them. */
  struct membership_removals removals;
  struct sabha_membership removals_conf;
  uint64_t removals_scanned;
  /* The membership index a member's REMOVED notice named (0: none); it
   * stops this node as its own removal would while it is newer than
   * `conf`. Kept by the host (sabha_status.removed_notice_index). */
  uint64_t removed_notice;

  /* Elections: one bit per peer slot. */
  uint32_t votes_granted;
  uint32_t votes_refused;

  /* Leader state. One slot per member, and per member the last change
   * removed (`leaving`: still sent the log, so that it learns it was
   * removed, until the next change). A free slot has id NONE. */
  struct progress peers[SABHA_NODES_MAX];
  bool leaving[SABHA_NODES_MAX];
  uint64_t term_start_index; /* index of this term's no-op */
  uint32_t transferee;
  uint64_t transfer_deadline_ms;
  struct readq reads;
  /* Commands proposed since the last ready, to go into one entry (each
   * framed as in SABHA_ENTRY_BATCH; a lone one goes in plain), up to
   * commands_per_slot_max and bytes_per_slot_max: one log entry, one WAL
   * record and one apply step for all the commands a turn brings. */
  uint8_t *batch;
  size_t batch_bytes;
  size_t batch_cap;
  uint32_t batch_n;

  struct outbox out;

  /* Counters. */
  uint64_t elections_started;
  uint64_t campaigns_started; /* pre-votes too */
  uint64_t elections_won;
  uint64_t terms_burned;
};

/* raft.c */
uint32_t raft_quorum(const struct raft *r);
void raft_reset_election_timer(struct raft *r);
void raft_become_follower(struct raft *r, uint64_t term, uint32_t leader);
void raft_become_leader(struct raft *r);
void raft_send(struct raft *r, struct sabha_msg *m, bool after_persist);
bool raft_in_lease(const struct raft *r);

/* election.c */
void raft_campaign(struct raft *r, bool pre_vote, bool forced);
void raft_recv_vote(struct raft *r, const struct sabha_msg *m);
void raft_recv_vote_resp(struct raft *r, const struct sabha_msg *m);
void raft_recv_timeout_now(struct raft *r, const struct sabha_msg *m);
bool raft_log_up_to_date(const struct raft *r, uint64_t last_index,
                         uint64_t last_term);

/* replication.c */
int raft_flush_batch(struct raft *r);
bool raft_send_append(struct raft *r, struct progress *pr, bool empty_ok);
void raft_broadcast_append(struct raft *r);
void raft_broadcast_heartbeat(struct raft *r, uint64_t read_round);
void raft_recv_append(struct raft *r, const struct sabha_msg *m);
void raft_recv_append_resp(struct raft *r, const struct sabha_msg *m);
void raft_recv_heartbeat(struct raft *r, const struct sabha_msg *m);
void raft_recv_heartbeat_resp(struct raft *r, const struct sabha_msg *m);
bool raft_maybe_commit(struct raft *r);
int raft_append_local(struct raft *r, uint32_t type, const void *data,
                      size_t size);
void raft_transfer_check(struct raft *r, struct progress *pr);

/* read.c */
int raft_read_index(struct raft *r, uint64_t request_id);
void raft_reads_on_ack(struct raft *r);
void raft_reads_on_term_commit(struct raft *r);
void raft_reads_drop(struct raft *r);

/* membership.c */
int raft_slot(const struct raft *r, uint32_t id);
bool raft_is_voter(const struct raft *r, uint32_t id);
uint32_t raft_voter_mask(const struct raft *r);
void raft_conf_sync_peers(struct raft *r);
int raft_conf_reload(struct raft *r);
/* Notes whether any membership in the log or the snapshot names this node
 * (conf_named_self): once, at start-up. */
void raft_conf_scan_self(struct raft *r);
int raft_conf_set_snap(struct raft *r, const struct sabha_membership *m);
int raft_membership_at(const struct raft *r, uint64_t index,
                       struct sabha_membership *out);
void raft_conf_after_commit(struct raft *r);
bool raft_removed(const struct raft *r);
bool raft_notice_holds(const struct raft *r);
uint64_t raft_removed_at(struct raft *r, uint32_t id);
void raft_recv_removed(struct raft *r, const struct sabha_msg *m);
bool raft_may_campaign(const struct raft *r);
int raft_change(void *state, enum sabha_change_type type, uint32_t id,
                const char *addr);
void raft_members(const void *state, struct sabha_membership *out);
int raft_membership_at_op(const void *state, uint64_t index,
                          struct sabha_membership *out);

/* snapshot.c */
void raft_send_snapshot(struct raft *r, struct progress *pr);
void raft_recv_snapshot(struct raft *r, const struct sabha_msg *m);
void raft_recv_snapshot_resp(struct raft *r, const struct sabha_msg *m);

/* Lifts the repair guard once the log shows it is whole again. */
void raft_guard_check(struct raft *r);

#endif
