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

#include "core/outbox.h"

enum progress_state {
  PROGRESS_PROBE = 0,
  PROGRESS_REPLICATE,
  PROGRESS_SNAPSHOT,
};

struct progress {
  uint32_t id;
  uint64_t match; /* highest index known replicated there */
  uint64_t next;  /* next index to send */
  enum progress_state state;
  bool probe_sent;    /* PROBE: an append is out, wait for its answer */
  bool recent_active; /* heard from within this CheckQuorum period */
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
/* Records an append in flight whose last index is `last`. */
void progress_sent(struct progress *pr, uint64_t last);
/* Frees every append in flight acknowledged up to `index`. */
void progress_acked(struct progress *pr, uint64_t index);
/* Frees the oldest append in flight (its answer may be lost). */
void progress_free_one(struct progress *pr);

/* The highest index that `quorum` of the n voters hold: the self entry's
 * match is `self_match` (what the leader holds durably), the others' their
 * progress. Both leaders commit from it. */
uint64_t progress_quorum_index(const struct progress *peers, uint32_t n,
                               uint32_t self_id, uint64_t self_match,
                               uint32_t quorum);

/* CheckQuorum (Raft thesis §6.2): counts the voters heard from since the
 * last call, the leader included, and starts a new period. */
uint32_t progress_take_active(struct progress *peers, uint32_t n,
                              uint32_t self_id);

/* Queues a heartbeat of `type` to every other voter: the leader's `term`,
 * the read round it confirms, and the commit index capped at what each
 * follower is known to hold (only that may be committed there). Both
 * leaders heartbeat this way; the type number is the protocol's. */
void progress_send_heartbeats(const struct progress *peers, uint32_t n,
                              uint32_t self_id, uint32_t type, uint64_t term,
                              uint64_t commit, uint64_t read_round,
                              struct outbox *out);

#endif
