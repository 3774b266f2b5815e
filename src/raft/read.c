/* Linearizable reads without writing to the log: ReadIndex (thesis §6.4).
 *
 * The leader notes its commit index when a read arrives, then proves it is
 * still the leader by hearing from a majority in a round of heartbeats sent
 * after the read arrived; the read may then be served once the state machine
 * has applied up to the noted index. A new leader does not know the commit
 * index of earlier terms until an entry of its own term commits (§8), so
 * reads that arrive before that wait: serving them early returns stale data
 * (a bug shipped by more than one production Raft). */
#include <assert.h>

#include "raft/raft.h"

static void raft_reads_push(struct raft *r, uint64_t request_id) {
  assert(r->reads_n < RAFT_READS_MAX);
  struct raft_read *rd =
      &r->reads[(r->reads_head + r->reads_n) % RAFT_READS_MAX];
  rd->request_id = request_id;
  rd->index = r->commit;
  rd->round = r->read_round;
  r->reads_n++;
}

int raft_read_index(struct raft *r, uint64_t request_id) {
  if (r->role != SABHA_ROLE_LEADER)
    return SABHA_ENOTLEADER;
  if (r->reads_n + r->deferred_n >= RAFT_READS_MAX)
    return SABHA_EBUSY;
  if (r->commit < r->term_start_index) {
    r->deferred_reads[r->deferred_n++] = request_id;
    return 0;
  }
  r->read_round++;
  raft_reads_push(r, request_id);
  raft_broadcast_heartbeat(r, r->read_round);
  raft_reads_on_ack(r); /* a group of one needs nobody else */
  return 0;
}

void raft_reads_on_ack(struct raft *r) {
  while (r->reads_n > 0) {
    struct raft_read *rd = &r->reads[r->reads_head];
    uint32_t acks = 0;
    for (uint32_t i = 0; i < r->cfg.n_voters; i++) {
      const struct raft_progress *pr = &r->peers[i];
      if (pr->id == r->cfg.id || pr->read_round_acked >= rd->round)
        acks++;
    }
    if (acks < raft_quorum(r))
      return; /* later reads have later rounds: none of them is ready */
    if (outbox_read_state(&r->out, rd->request_id, rd->index) != 0)
      return; /* out of memory: try again on the next acknowledgement */
    r->reads_head = (r->reads_head + 1) % RAFT_READS_MAX;
    r->reads_n--;
  }
}

void raft_reads_on_term_commit(struct raft *r) {
  if (r->deferred_n == 0)
    return;
  r->read_round++;
  for (uint32_t i = 0; i < r->deferred_n; i++)
    raft_reads_push(r, r->deferred_reads[i]);
  r->deferred_n = 0;
  raft_broadcast_heartbeat(r, r->read_round);
  raft_reads_on_ack(r);
}

void raft_reads_drop(struct raft *r) {
  /* Leadership is lost: the requests cannot be confirmed. Hosts time out. */
  r->reads_head = 0;
  r->reads_n = 0;
  r->deferred_n = 0;
}
