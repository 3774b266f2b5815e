/* Multi-Paxos: private state shared by the files of src/paxos that make up
 * the "multipaxos" engine.
 *
 * Lamport, "Paxos Made Simple" (2001) §3, in the formulation of Howard &
 * Mortier, "Paxos vs Raft: Have we reached consensus on distributed
 * consensus?" (PaPoC 2020), which restates Multi-Paxos in Raft's vocabulary so
 * that the two differ only where they truly differ:
 *
 *   - ballots are round << 8 | node id: totally ordered, disjoint per node,
 *     never reused (the promise is durable before phase 1 goes out);
 *   - any node may become leader: an acceptor promises any higher ballot
 *     without looking at the candidate's log (Raft's vote checks the log);
 *   - phase 1 runs once for every slot from the candidate's first unchosen
 *     one; promises carry each accepted (slot, ballot, value), in chunks no
 *     larger than an accept, the candidate asking for the next chunk until
 *     the acceptor has sent them all; the candidate adopts, per slot, the
 *     value of the highest ballot, re-proposes it under its own ballot and
 *     fills gaps with no-ops (Raft keeps the leader's log as it is);
 *   - then phase 2 only: one round trip per slot, pipelined and batched with
 *     the same flow control as Raft (core/progress.h);
 *   - an acceptor never forgets an accepted value: slots are overwritten in
 *     place, never truncated.
 *
 * Files: multipaxos.c (creation, time, dispatch, ready/advance), phase1.c
 * (probe, prepare, promise, adoption), phase2.c (accept, accepted, commit,
 * heartbeats, reads, snapshots), membership.c (configurations in the log,
 * in force alpha slots after the slot that chose them). */
#ifndef SABHA_PAXOS_MP_H
#define SABHA_PAXOS_MP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/membership.h"
#include "core/outbox.h"
#include "core/prng.h"
#include "core/progress.h"
#include "core/readq.h"
#include "core/replog.h"
#include "sabha/engine.h"

/* Message types. Beyond from/to, `term` is always a ballot.
 *   PROBE          "could you promise this ballot?" (the PreVote of Paxos:
 *                  nothing is promised, nothing durable changes); from a
 *                  non-voter, at the ballot it has: "I hear no leader"
 *                  (multipaxos.c, nudge_members).
 *   PREPARE        phase 1a; index: first slot asked about; context 1 for a
 *                  leadership transfer (ignores leases), MP_MORE for a
 *                  follow-up asking the rest of a promise already made.
 *   PROMISE        phase 1b, one chunk of it; index: the first slot asked
 *                  about (the PREPARE's); entries: the accepted slots from
 *                  index on, contiguous, as many as an accept may carry;
 *                  hint_index: the last slot the chunk covers; context
 *                  MP_MORE: slots after hint_index were accepted too (ask
 *                  again from hint_index + 1), 0: that was every one,
 *                  MP_BEHIND: the acceptor compacted past index (the
 *                  candidate lacks chosen slots); commit: the acceptor's.
 *   ACCEPT         phase 2a; index: first slot of entries; commit;
 *                  hint_index: the leader's last slot, to an acceptor that
 *                  said MP_LOG_LOST.
 *   ACCEPTED       phase 2b; index: highest slot accepted under this ballot
 *                  with every slot before it; on a refusal hint_index is that
 *                  slot (there is a gap) or term the higher ballot promised.
 *   HEARTBEAT      commit (capped at what the acceptor holds); context: read
 *                  round.
 *   SNAPSHOT       as in Raft, with one entry: the CONFIG entry of the
 *                  membership that governs the slot after the snapshot.
 *   SNAPSHOT_RESP, TIMEOUT_NOW as in Raft.
 *   REMOVED        index: the chosen membership that removed the receiver,
 *                  in force already; sent to such a node when it
 *                  probes or prepares (membership.c). */
enum mp_msg_type {
  MP_MSG_PROBE = 1,
  MP_MSG_PROBE_RESP,
  MP_MSG_PREPARE,
  MP_MSG_PROMISE,
  MP_MSG_ACCEPT,
  MP_MSG_ACCEPTED,
  MP_MSG_HEARTBEAT,
  MP_MSG_HEARTBEAT_RESP,
  MP_MSG_SNAPSHOT,
  MP_MSG_SNAPSHOT_RESP,
  MP_MSG_TIMEOUT_NOW,
  MP_MSG_REMOVED,
};

#define MP_BEHIND 2u
#define MP_MORE 3u
/* An ACCEPTED's context: the acceptor's repaired disk lost values it may
 * have accepted (its repair guard holds); accepts to it then carry the
 * leader's last slot in hint_index. */
#define MP_LOG_LOST 4u

static inline uint64_t mp_ballot(uint64_t round, uint32_t id) {
  return round << 8 | id;
}
static inline uint32_t mp_ballot_node(uint64_t ballot) {
  return (uint32_t)(ballot & 0xff);
}
static inline uint64_t mp_ballot_round(uint64_t ballot) {
  return ballot >> 8;
}

/* Memberships a phase 1 may have to satisfy at once (membership.c). */
#define MP_P1_CONFIGS_MAX 4u
/* Full slots the leader holds beyond the window (struct mp, sealed): the
 * smaller of this and alpha. */
#define MP_SEALED_MAX 16u

/* The best value seen for one slot during phase 1. */
struct mp_slot {
  uint64_t ballot; /* 0: nothing accepted seen yet */
  uint32_t type;
  uint32_t size_bytes;
  uint8_t *data; /* owned */
};

struct mp {
  struct sabha_config cfg;
  struct prng prng;
  uint64_t now_ms;
  bool clock_started;

  /* Acceptor state: the promise (durable, one record with its owner) and
   * the accepted slots (rl.log; each entry's term is its ballot). */
  uint64_t promised;
  uint32_t vote; /* node whose ballot is promised */
  struct replog rl;
  /* Highest slot such that every slot after the commit index up to it was
   * accepted under `promised`: only those may be learnt as chosen from the
   * leader's commit index. */
  uint64_t accepted_upto;

  enum sabha_role role;
  uint32_t leader;

  uint64_t election_deadline_ms;
  uint64_t heartbeat_due_ms;
  uint64_t check_quorum_due_ms;
  uint64_t leader_contact_ms;

  /* Membership (membership.c). The chosen CONFIG entries of the log, as a
   * history: `conf_base` governs every slot until hist[0] takes over at
   * hist[0].index + alpha, and so on; only the newest two are kept (a
   * change is proposed only once the one before is in force). conf_snap
   * governs the slot after the snapshot (compaction waits while a change
   * is pending, so no older one is needed), kept encoded for snapshots. */
  struct sabha_membership conf_base;
  struct sabha_membership hist[2];
  uint32_t n_hist;
  uint64_t conf_scanned; /* chosen slots looked at for CONFIG entries */
  /* The newest slot known to hold a CONFIG entry naming this node, chosen
   * or not: a restarted node whose commit index lags is not "removed"
   * while its log says otherwise. */
  uint64_t conf_self_seen;
  /* The removals the chosen memberships show (core/membership.h), noted
   * as each is read into the history. */
  struct membership_removals removals;
  /* The membership index a member's REMOVED notice named (0: none); it
   * stops this node as its own removal would while it is newer than the
   * newest membership this node knows chosen. Kept by the host. */
  uint64_t removed_notice;
  /* Some membership this node has held or seen named it. A joining node
   * (cfg.join) that none has named yet is behind, not removed: it learns
   * the chosen slots from the start, and the change that adds it comes
   * after every membership that was chosen without it. */
  bool conf_named_self;
  struct sabha_membership conf_snap;
  uint8_t conf_snap_bytes[SABHA_MEMBERSHIP_BYTES_MAX];
  size_t conf_snap_len;
  struct sabha_entry conf_snap_entry;

  uint32_t grants; /* one bit per peer slot */
  uint32_t refusals;
  /* The memberships whose voters must each give a majority of the grants:
   * those that govern the slots a candidate knows of, and any a promise
   * shows may have been chosen after them. */
  struct sabha_membership p1_need[MP_P1_CONFIGS_MAX];
  uint32_t n_p1_need;
  uint32_t p1_asked; /* peer slots asked in this campaign */

  /* Phase 1 in progress: the best value seen for each of the slots
   * [p1_from, p1_from + p1_n). */
  uint64_t p1_from;
  struct mp_slot *p1;
  uint64_t p1_n;
  uint64_t p1_cap;
  /* Per peer slot: its promise has covered [p1_from, p1_next) so far; a
   * bit in p1_more while it has more to send (then p1_asked_ms is when the
   * rest was last asked for); a bit in `grants` once it sent everything. */
  uint64_t p1_next[SABHA_NODES_MAX];
  uint64_t p1_asked_ms[SABHA_NODES_MAX];
  uint32_t p1_more;

  /* One slot per node this one deals with (any membership that governs a
   * slot from the commit index on, or is pending in the log); free slots
   * have id NONE. */
  struct progress peers[SABHA_NODES_MAX];
  uint64_t term_start_index; /* last slot phase 1 re-proposed */
  uint32_t transferee;
  uint64_t transfer_deadline_ms;
  struct readq reads;
  /* Commands proposed since the last ready, to share one slot (each framed
   * as in SABHA_ENTRY_BATCH). Paxos decides slots, so batching commands
   * into a slot spreads one consensus instance over several commands. */
  uint8_t *batch;
  size_t batch_bytes;
  size_t batch_cap;
  uint32_t batch_n;
  /* Full slots sealed while the window was shut, oldest first: they take
   * the next slots, before the batch, as the window opens. At most alpha
   * of them, so a pipelining client waits instead of being refused while
   * that many more slots' worth of commands is in flight. */
  struct mp_sealed {
    uint8_t *data;
    size_t bytes;
    size_t cap;
    uint32_t n;
  } sealed[MP_SEALED_MAX];
  uint32_t sealed_head;
  uint32_t sealed_n;

  struct outbox out;

  uint64_t elections_started;
  uint64_t campaigns_started; /* probes too */
  uint64_t elections_won;
  uint64_t ballots_burned;
};

/* multipaxos.c */
void mp_reset_election_timer(struct mp *p);
bool mp_in_lease(const struct mp *p);
void mp_send(struct mp *p, struct sabha_msg *m, bool after_persist);
void mp_adopt_ballot(struct mp *p, uint64_t ballot, uint32_t leader);
void mp_become_follower(struct mp *p, uint32_t leader);
int mp_flush_batch(struct mp *p);
uint64_t mp_scan_accepted(const struct mp *p, uint64_t from);

/* membership.c */
int mp_slot(const struct mp *p, uint32_t id);
int mp_slot_ensure(struct mp *p, uint32_t id);
const struct sabha_membership *mp_conf_at(const struct mp *p, uint64_t slot);
const struct sabha_membership *mp_conf_latest(const struct mp *p);
bool mp_is_voter(const struct mp *p);
uint32_t mp_voter_mask(const struct mp *p, const struct sabha_membership *m);
void mp_conf_scan(struct mp *p);
void mp_conf_sync_peers(struct mp *p);
int mp_conf_init(struct mp *p, const struct sabha_membership *snap);
int mp_conf_set_snap(struct mp *p, const struct sabha_membership *m);
bool mp_entries_valid(const struct sabha_entry *entries, uint32_t n);
int mp_snapshot_membership(const struct sabha_msg *m,
                           struct sabha_membership *out);
bool mp_removed(const struct mp *p);
bool mp_notice_holds(const struct mp *p);
uint64_t mp_removed_at(const struct mp *p, uint32_t id);
void mp_recv_removed(struct mp *p, const struct sabha_msg *m);
/* Sends the next chunk of the local snapshot to pr's node (phase2.c). */
void mp_send_snapshot(struct mp *p, struct progress *pr);
void mp_conf_note(struct mp *p, const struct sabha_entry *entries, uint32_t n);
void mp_conf_after_commit(struct mp *p);
int mp_change(void *state, enum sabha_change_type type, uint32_t id,
              const char *addr);
void mp_members(const void *state, struct sabha_membership *out);
int mp_membership_at(const void *state, uint64_t index,
                     struct sabha_membership *out);
int mp_compact_check(const struct mp *p, uint64_t index,
                     struct sabha_membership *out);

/* phase1.c */
void mp_campaign(struct mp *p, bool probe, bool forced);
void mp_recv_probe(struct mp *p, const struct sabha_msg *m);
void mp_recv_probe_resp(struct mp *p, const struct sabha_msg *m);
/* The most entries one promise chunk carries (phase1.c). */
uint32_t mp_promise_entries_max(const struct mp *p);
void mp_recv_prepare(struct mp *p, const struct sabha_msg *m);
void mp_recv_promise(struct mp *p, const struct sabha_msg *m);
void mp_p1_resend(struct mp *p);
void mp_p1_clear(struct mp *p);

/* phase2.c */
bool mp_send_accept(struct mp *p, struct progress *pr, bool empty_ok);
void mp_broadcast_accept(struct mp *p);
void mp_broadcast_heartbeat(struct mp *p, uint64_t read_round);
bool mp_maybe_commit(struct mp *p);
void mp_recv_accept(struct mp *p, const struct sabha_msg *m);
void mp_recv_accepted(struct mp *p, const struct sabha_msg *m);
void mp_recv_heartbeat(struct mp *p, const struct sabha_msg *m);
void mp_recv_heartbeat_resp(struct mp *p, const struct sabha_msg *m);
void mp_recv_snapshot(struct mp *p, const struct sabha_msg *m);
void mp_recv_snapshot_resp(struct mp *p, const struct sabha_msg *m);
void mp_transfer_check(struct mp *p, struct progress *pr);
int mp_read_index(struct mp *p, uint64_t request_id);
void mp_reads_on_ack(struct mp *p);
void mp_reads_on_start_commit(struct mp *p);

#endif
