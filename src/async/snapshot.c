/* async compaction and snapshots.
 *
 * The host snapshots its state machine at an applied index and hands it to
 * sabha_engine_compact(). Raft may compact anything committed, because a
 * committed entry is never undone. Here an applied entry can be undone by a
 * rollback (replication.c), and a snapshot that held one could not be
 * rolled back to. So compaction is refused (SABHA_EBUSY: try again later)
 * past the stable point, the highest index every voter holds: no primary
 * can lack those entries, so they are never rolled back, and every node's
 * own snapshot is always a safe place to restart applying from.
 *
 * A backup that needs entries the primary compacted away gets the
 * primary's snapshot in chunks of snapshot_chunk_bytes, one in flight, each
 * acknowledged with the bytes received so far (as Raft's, thesis §5). */
#include <assert.h>

#include "async/async.h"

int async_compact(struct async_node *a, uint64_t index, const void *data,
                  size_t size_bytes) {
  if (index > a->rl.log.snap_index && index > a->stable)
    return SABHA_EBUSY;
  return replog_compact(&a->rl, index, data, size_bytes);
}

void async_send_snapshot(struct async_node *a, struct progress *pr) {
  if (pr->state != PROGRESS_SNAPSHOT || pr->snap_index != a->rl.log.snap_index)
    progress_become_snapshot(pr, a->rl.log.snap_index);
  uint64_t left = a->rl.snap_size - pr->snap_offset;
  uint32_t chunk = left < a->cfg.snapshot_chunk_bytes
                       ? (uint32_t)left
                       : a->cfg.snapshot_chunk_bytes;
  struct sabha_msg m = {
      .type = ASYNC_MSG_SNAPSHOT,
      .to = pr->id,
      .snap = {.index = a->rl.log.snap_index, .term = a->rl.log.snap_term},
      .snap_offset = pr->snap_offset,
      .snap_total_bytes = a->rl.snap_size,
      .snap_size_bytes = chunk,
      .snap_data = chunk > 0 ? a->rl.snap_data + pr->snap_offset : NULL,
  };
  async_send(a, &m, false);
}

void async_recv_snapshot_resp(struct async_node *a, const struct sabha_msg *m) {
  int slot = async_voter_slot(a, m->from);
  assert(slot >= 0);
  struct progress *pr = &a->peers[slot];
  pr->recent_active = true;
  if (pr->state != PROGRESS_SNAPSHOT || m->snap.index != pr->snap_index ||
      pr->snap_index != a->rl.log.snap_index)
    return;
  pr->snap_offset = m->context <= a->rl.snap_size ? m->context : 0;
  if (pr->snap_offset < a->rl.snap_size)
    async_send_snapshot(a, pr);
  /* With every byte there, the backup answers with an append
   * acknowledgement of the snapshot's index, which ends SNAPSHOT. */
}

static void ack_index(struct async_node *a, uint32_t to, uint64_t index) {
  struct sabha_msg ack = {.type = ASYNC_MSG_APPEND_RESP, .to = to};
  ack.index = index;
  async_send(a, &ack, true);
}

void async_recv_snapshot(struct async_node *a, const struct sabha_msg *m) {
  if (m->snap.index <= a->rl.applied) {
    /* The snapshot is stable, so this node's log agrees with it; the state
     * machine is already past it. */
    ack_index(a, m->from, m->snap.index);
    return;
  }
  uint64_t received = 0;
  if (replog_snapshot_chunk(&a->rl, m, &received) == 0) {
    struct sabha_msg resp = {.type = ASYNC_MSG_SNAPSHOT_RESP, .to = m->from};
    resp.snap = m->snap;
    resp.context = received;
    async_send(a, &resp, false);
    return;
  }
  replog_install_snapshot(&a->rl, true);
  if (a->stable < m->snap.index)
    a->stable = m->snap.index;
  ack_index(a, m->from, m->snap.index); /* once the snapshot is durable */
}
