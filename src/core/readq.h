/* The queue of linearizable reads a leader is confirming (ReadIndex, Raft
 * thesis §6.4; the same scheme serves Multi-Paxos, where a round of
 * heartbeats proves the ballot is still the highest).
 *
 * A read notes the commit index when it arrives and the heartbeat round
 * that must be acknowledged by a majority before it is served. Rounds only
 * grow, so reads are confirmed in arrival order. A round's heartbeats wait
 * in the engine's outbox until the host takes its next batch (ready()):
 * until then they have not left, so a read that arrives meanwhile joins
 * that round instead of adding one. Pipelined reads, or many clients' in
 * one loop turn, then cost one round of messages, not one each (the
 * read-only batching of etcd's raft). Reads that arrive before the
 * leader has committed what its predecessors may have committed wait in a
 * deferred list. Both are bounded by READQ_MAX. */
#ifndef SABHA_CORE_READQ_H
#define SABHA_CORE_READQ_H

#include <stdint.h>

#include "core/outbox.h"
#include "sabha/engine.h"

#define READQ_MAX 4096u

struct readq_item {
  uint64_t request_id;
  uint64_t index;
  uint64_t round;
};

struct readq {
  struct readq_item *items; /* ring of READQ_MAX */
  uint32_t head;
  uint32_t n;
  uint64_t *deferred;
  uint32_t n_deferred;
  uint64_t round;                  /* newest round handed out */
  bool round_unsent; /* its heartbeats are still in the outbox */
  uint64_t acked[SABHA_NODES_MAX]; /* per voter slot: newest round acked */
};

int readq_init(struct readq *q);
void readq_free(struct readq *q);
/* Queues a read served at `index` once a round of heartbeats sent after now
 * is confirmed. Returns the new round to send heartbeats for; 0 when the
 * read joined a round whose heartbeats have not left yet (readq_sent), so
 * none are to be sent; or SABHA_EBUSY when full. */
int64_t readq_add(struct readq *q, uint64_t request_id, uint64_t index);
/* Parks a read until the leader may serve reads. 0 or SABHA_EBUSY. */
int readq_defer(struct readq *q, uint64_t request_id);
/* Moves every parked read into the queue at `index`. Returns the round to
 * send heartbeats for, or 0 when nothing was parked. */
uint64_t readq_undefer(struct readq *q, uint64_t index);
/* The outbox, and with it the newest round's heartbeats, went to the host:
 * a read that arrives from now on needs a new round. */
void readq_sent(struct readq *q);
/* Records that voter `slot` acknowledged heartbeat round `round`. */
void readq_ack(struct readq *q, uint32_t slot, uint64_t round);
/* Hands every read confirmed by `quorum` voters (the slots whose bits are
 * set in `voters`; the leader's own slot counts when it is one of them) to
 * the outbox as a read state. */
void readq_release(struct readq *q, uint32_t self_slot, uint32_t voters,
                   uint32_t quorum, struct outbox *out);
/* Forgets what `slot` acknowledged: a new member took it. */
void readq_forget(struct readq *q, uint32_t slot);
/* Forgets every read: leadership is lost and nothing can be confirmed. */
void readq_drop(struct readq *q);

#endif
