/* Linearizable reads without writing to the log: ReadIndex (thesis §6.4).
 *
 * The leader notes its commit index when a read arrives, then proves it is
 * still the leader by hearing from a majority in a round of heartbeats sent
 * after the read arrived; the read may then be served once the state machine
 * has applied up to the noted index (core/readq.h keeps the queue). A new
 * leader does not know the commit index of earlier terms until an entry of
 * its own term commits (§8), so reads that arrive before that wait: serving
 * them early returns stale data (a bug shipped by more than one production
 * Raft). */
#include "raft/raft.h"

int raft_read_index(struct raft *r, uint64_t request_id) {
  if (r->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (r->rl.commit < r->term_start_index)
    return readq_defer(&r->reads, request_id);
  int64_t round = readq_add(&r->reads, request_id, r->rl.commit);
  if (round < 0)
    return (int)round;
  if (round > 0) /* else it joined a round whose heartbeats wait to leave */
    raft_broadcast_heartbeat(r, (uint64_t)round);
  raft_reads_on_ack(r); /* a group of one needs nobody else */
  return 0;
}

void raft_reads_on_ack(struct raft *r) {
  int self = raft_slot(r, r->cfg.id);
  readq_release(&r->reads, self < 0 ? SABHA_NODES_MAX : (uint32_t)self,
                raft_voter_mask(r), raft_quorum(r), &r->out);
}

void raft_reads_on_term_commit(struct raft *r) {
  uint64_t round = readq_undefer(&r->reads, r->rl.commit);
  if (round == 0)
    return;
  raft_broadcast_heartbeat(r, round);
  raft_reads_on_ack(r);
}

void raft_reads_drop(struct raft *r) {
  readq_drop(&r->reads);
}
