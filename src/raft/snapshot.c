/* Log compaction and InstallSnapshot (§7, thesis §5).
 *
 * The host takes a snapshot of its state machine at an applied index and
 * hands it to sabha_engine_compact(); the engine drops the log up to there and
 * keeps the bytes to send to followers that fall behind the log. Snapshots
 * travel in chunks of snapshot_chunk_bytes, one in flight at a time; each
 * chunk is acknowledged with the byte count received, so a lost or duplicated
 * chunk is resent from the right offset. A follower installs the snapshot
 * once it has every byte; if its log holds the snapshot's last entry it
 * keeps the entries after it (thesis §5.1), otherwise it discards its log. */
#include <assert.h>

#include "raft/raft.h"

void raft_send_snapshot(struct raft *r, struct progress *pr) {
  if (pr->state != PROGRESS_SNAPSHOT || pr->snap_index != r->rl.log.snap_index)
    progress_become_snapshot(pr, r->rl.log.snap_index);
  uint64_t left = r->rl.snap_size - pr->snap_offset;
  uint32_t chunk = left < r->cfg.snapshot_chunk_bytes
                       ? (uint32_t)left
                       : r->cfg.snapshot_chunk_bytes;
  struct sabha_msg m = {
      .type = RAFT_MSG_SNAPSHOT,
      .to = pr->id,
      .snap = {.index = r->rl.log.snap_index, .term = r->rl.log.snap_term},
      .snap_offset = pr->snap_offset,
      .snap_total_bytes = r->rl.snap_size,
      .snap_size_bytes = chunk,
      .snap_data = chunk > 0 ? r->rl.snap_data + pr->snap_offset : NULL,
  };
  /* The membership as of the snapshot travels with every chunk. */
  if (r->conf_snap_len > 0) {
    m.entries = &r->conf_snap_entry;
    m.n_entries = 1;
  }
  raft_send(r, &m, false);
}

void raft_recv_snapshot_resp(struct raft *r, const struct sabha_msg *m) {
  int slot = raft_slot(r, m->from);
  if (slot < 0)
    return;
  struct progress *pr = &r->peers[slot];
  pr->recent_active = true;
  if (pr->state != PROGRESS_SNAPSHOT || m->snap.index != pr->snap_index ||
      pr->snap_index != r->rl.log.snap_index)
    return;
  pr->snap_offset = m->context <= r->rl.snap_size ? m->context : 0;
  if (pr->snap_offset < r->rl.snap_size)
    raft_send_snapshot(r, pr);
  /* When every byte is there the follower answers with an append
   * acknowledgement of the snapshot's index, which ends the SNAPSHOT state. */
}

static void snapshot_progress(struct raft *r, const struct sabha_msg *m,
                              uint64_t received) {
  struct sabha_msg resp = {.type = RAFT_MSG_SNAPSHOT_RESP, .to = m->from};
  resp.snap = m->snap;
  resp.context = received;
  raft_send(r, &resp, false);
}

void raft_recv_snapshot(struct raft *r, const struct sabha_msg *m) {
  struct sabha_membership conf;
  if (membership_of_snapshot_msg(m, &conf) != 0)
    return; /* without it this node could not know who votes */
  if (m->snap.index <= r->rl.commit) {
    /* Already have everything it covers. */
    struct sabha_msg ack = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
    ack.index = r->rl.commit;
    raft_send(r, &ack, true);
    return;
  }
  uint64_t received = 0;
  if (replog_snapshot_chunk(&r->rl, m, &received) == 0) {
    snapshot_progress(r, m, received);
    return;
  }
  replog_install_snapshot(&r->rl, true);
  int rv = raft_conf_set_snap(r, &conf);
  if (rv == 0)
    rv = raft_conf_reload(r);
  assert(rv == 0); /* decoded above; the log after it was checked */
  (void)rv;
  struct sabha_msg ack = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
  ack.index = m->snap.index;
  raft_send(r, &ack, true); /* once the snapshot is durable */
}
