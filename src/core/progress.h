/* What a leader knows about one follower's copy of the log, and how it sends
 * to it (etcd's flow control; Raft thesis §10.2.1). Raft and Multi-Paxos
 * leaders replicate the same way once elected, so both use this.
 *
 *   PROBE      one append at a time until the follower's log matches;
 *   REPLICATE  appends streamed up to `inflight_max` ahead of the
 *              acknowledgements (pipelining);
 *   SNAPSHOT   the follower needs entries that were compacted: the snapshot
 *              goes chunk by chunk. */
#ifndef SABHA_CORE_PROGRESS_H
#define SABHA_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/log.h"
#include "core/outbox.h"

enum progress_state {
  PROGRESS_PROBE = 0,
  PROGRESS_REPLICATE,
  PROGRESS_SNAPSHOT,
};

struct progress {
  uint32_t id;    /* SABHA_NODE_NONE: a free slot, skipped by everything */
  bool learner;   /* receives the log but counts in no quorum */
  uint64_t match; /* highest index known replicated there */
  uint64_t next;  /* next index to send */
  enum progress_state state;
  bool probe_sent;    /* PROBE: an append is out, wait for its answer */
  bool recent_active; /* heard from within this CheckQuorum period */
  bool active_before; /* ... or within the one before (progress_take_active) */
  /* The follower says its repaired disk lost entries (its repair guard
   * holds): appends to it also carry the leader's last index, so that it
   * can tell when its log is the leader's whole log again. */
  bool log_lost;
  /* REPLICATE: the last index of each append in flight, oldest first. */
  uint64_t *inflight;
  uint32_t inflight_max;
  uint32_t inflight_head;
  uint32_t inflight_n;
  /* SNAPSHOT: which snapshot is being sent and how far it got. */
  uint64_t snap_index;
  uint64_t snap_offset;
};

/* Allocates the in-flight ring. Returns 0 or SABHA_ENOMEM. */
int progress_init(struct progress *pr, uint32_t id, uint32_t inflight_max);
void progress_free(struct progress *pr);
/* A new leader's view: nothing known, probe from `next`. */
void progress_reset(struct progress *pr, uint64_t next);
void progress_become_probe(struct progress *pr);
void progress_become_replicate(struct progress *pr);
void progress_become_snapshot(struct progress *pr, uint64_t snap_index);
/* True when no further append may be sent now. */
bool progress_paused(const struct progress *pr);
/* Records an append that went out with `n_entries` entries ending at
 * `last`: in PROBE it is the one probe, in REPLICATE it goes in flight; an
 * empty append in REPLICATE (a commit notice) is not tracked, as it
 * carries nothing to acknowledge. */
void progress_sent(struct progress *pr, uint64_t last, uint32_t n_entries);
/* Frees every append in flight acknowledged up to `index`. */
void progress_acked(struct progress *pr, uint64_t index);
/* Frees the oldest append in flight (its answer may be lost). */
void progress_free_one(struct progress *pr);

/* Fills the log part of the next append to `pr` from the leader's `log`
 * (Raft §5.3): index and log_term name the entry before pr->next; entries
 * and n_entries are what log_batch_count lets follow it. The caller sets
 * the rest (type, to, commit, its protocol's fields). Returns 0, or
 * log_term's error when the entry before is not in the log: the follower
 * needs the snapshot instead. Raft and async append this way. */
int progress_fill_append(const struct progress *pr, const struct log *log,
                         uint32_t n_max, uint64_t bytes_max,
                         struct sabha_msg *m);

/* The follower's log matches the leader's up to `index`: raises match and
 * next, leaves PROBE for REPLICATE, frees what is acknowledged in flight,
 * and ends SNAPSHOT once the snapshot is covered. Returns true when match
 * moved (the caller may commit). All three leaders use it. */
bool progress_on_append_ok(struct progress *pr, uint64_t index);

/* The follower refused the append whose entry before was `rejected`,
 * hinting that its log can match no later than hint_index, whose term is
 * hint_term (0: not known). Returns false when the refusal is stale (it
 * answers an append already superseded) and leaves `pr` alone; otherwise
 * moves `pr` back to PROBE at the next index worth trying, found in the
 * leader's `log` (log_find_conflict_by_term), never at or below match, and
 * returns true: the caller sends an append there. Raft §5.3. */
bool progress_on_append_refused(struct progress *pr, const struct log *log,
                                uint64_t rejected, uint64_t hint_index,
                                uint64_t hint_term);

/* The follower's disk was repaired and its log now ends at `last`, maybe
 * below what it acknowledged: match goes back to it, PROBE from there.
 * True when that moved anything (the caller sends an append). */
bool progress_on_log_lost(struct progress *pr, uint64_t last);

/* The follower answered a heartbeat but is behind, so what was sent to it
 * may be lost: lets one more append go (another probe in PROBE, one slot
 * freed when the REPLICATE window is full). Without this a follower that
 * lost the tail of a pipeline would wait forever. */
void progress_unpause(struct progress *pr);

/* The highest index that `quorum` of the voters among the n slots hold
 * (learners and free slots do not count): the self entry's match is
 * `self_match` (what the leader holds durably), the others' their
 * progress; 0 when fewer than `quorum` voters exist. Both leaders commit
 * from it. */
uint64_t progress_quorum_index(const struct progress *peers, uint32_t n,
                               uint32_t self_id, uint64_t self_match,
                               uint32_t quorum);

/* CheckQuorum (Raft thesis §6.2): counts the voters heard from since the
 * last call, the leader included when it has a voter's slot, and starts a
 * new period. */
uint32_t progress_take_active(struct progress *peers, uint32_t n,
                              uint32_t self_id);

/* Queues a heartbeat of `type` to every other member, learners included: the
 * leader's `term`, the read round it confirms, and the commit index capped at
 * what each follower is known to hold (only that may be committed there). Both
 * leaders heartbeat this way; the type number is the protocol's. */
void progress_send_heartbeats(const struct progress *peers, uint32_t n,
                              uint32_t self_id, uint32_t type, uint64_t term,
                              uint64_t commit, uint64_t read_round,
                              struct outbox *out);

#endif
