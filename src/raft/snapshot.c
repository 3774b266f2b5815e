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
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

/* A snapshot larger than this is refused by followers: a bound on memory
 * that a confused or hostile leader could make us allocate. */
#define RAFT_SNAPSHOT_BYTES_MAX (1ull << 32)

int raft_compact(struct raft *r, uint64_t index, const void *data,
                 size_t size) {
  if (index <= r->log.snap_index)
    return SABHA_ECOMPACTED;
  if (index > r->applied)
    return SABHA_EINVAL;
  uint64_t term = 0;
  int rv = log_term(&r->log, index, &term);
  assert(rv == 0);
  (void)rv;
  uint8_t *copy = NULL;
  if (size > 0) {
    copy = malloc(size);
    if (copy == NULL)
      return SABHA_ENOMEM;
    memcpy(copy, data, size);
  }
  free(r->snap_data);
  r->snap_data = copy;
  r->snap_size = size;
  log_compact(&r->log, index, term);
  return 0;
}

void raft_send_snapshot(struct raft *r, struct raft_progress *pr) {
  if (pr->state != RAFT_SNAPSHOT || pr->snap_index != r->log.snap_index) {
    pr->state = RAFT_SNAPSHOT;
    pr->snap_index = r->log.snap_index;
    pr->snap_offset = 0;
    pr->inflight_n = 0;
    pr->inflight_head = 0;
  }
  uint64_t left = r->snap_size - pr->snap_offset;
  uint32_t chunk = left < r->cfg.snapshot_chunk_bytes
                       ? (uint32_t)left
                       : r->cfg.snapshot_chunk_bytes;
  struct sabha_msg m = {
      .type = RAFT_MSG_SNAPSHOT,
      .to = pr->id,
      .snap = {.index = r->log.snap_index, .term = r->log.snap_term},
      .snap_offset = pr->snap_offset,
      .snap_total_bytes = r->snap_size,
      .snap_size_bytes = chunk,
      .snap_data = chunk > 0 ? r->snap_data + pr->snap_offset : NULL,
  };
  raft_send(r, &m, false);
}

void raft_recv_snapshot_resp(struct raft *r, const struct sabha_msg *m) {
  int slot = raft_voter_slot(r, m->from);
  assert(slot >= 0);
  struct raft_progress *pr = &r->peers[slot];
  pr->recent_active = true;
  if (pr->state != RAFT_SNAPSHOT || m->snap.index != pr->snap_index ||
      pr->snap_index != r->log.snap_index)
    return;
  pr->snap_offset = m->context <= r->snap_size ? m->context : 0;
  if (pr->snap_offset < r->snap_size)
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

static void snapshot_install(struct raft *r) {
  struct sabha_snapshot_meta meta = r->incoming.meta;
  uint64_t term = 0;
  bool keep_suffix =
      log_term(&r->log, meta.index, &term) == 0 && term == meta.term;
  if (!keep_suffix) {
    if (log_last_index(&r->log) > r->log.snap_index)
      log_truncate_from(&r->log, r->log.snap_index + 1);
    /* Whatever the disk holds after the snapshot no longer belongs. */
    if (r->truncate_from == 0 || r->truncate_from > meta.index + 1)
      r->truncate_from = meta.index + 1;
    r->unstable_from = meta.index + 1;
  } else if (r->unstable_from < meta.index + 1) {
    r->unstable_from = meta.index + 1;
  }
  log_compact(&r->log, meta.index, meta.term);
  free(r->snap_data);
  r->snap_data = r->incoming.buf;
  r->snap_size = (size_t)r->incoming.total;
  r->incoming.buf = NULL;
  r->incoming.active = false;
  r->commit = meta.index;
  r->snap_to_install = true;
}

void raft_recv_snapshot(struct raft *r, const struct sabha_msg *m) {
  struct sabha_msg ack = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};
  if (m->snap.index <= r->commit) {
    ack.index = r->commit; /* already have everything it covers */
    raft_send(r, &ack, true);
    return;
  }
  bool same = r->incoming.active && r->incoming.meta.index == m->snap.index &&
              r->incoming.meta.term == m->snap.term &&
              r->incoming.total == m->snap_total_bytes;
  if (!same) {
    if (m->snap_offset != 0 || m->snap_total_bytes > RAFT_SNAPSHOT_BYTES_MAX) {
      snapshot_progress(r, m, 0);
      return;
    }
    free(r->incoming.buf);
    r->incoming.buf = NULL;
    r->incoming.active = false;
    if (m->snap_total_bytes > 0) {
      r->incoming.buf = malloc((size_t)m->snap_total_bytes);
      if (r->incoming.buf == NULL)
        return; /* the leader will resend */
    }
    r->incoming.active = true;
    r->incoming.meta = m->snap;
    r->incoming.total = m->snap_total_bytes;
    r->incoming.received = 0;
  }
  if (m->snap_offset != r->incoming.received ||
      m->snap_offset + m->snap_size_bytes > r->incoming.total) {
    snapshot_progress(r, m, r->incoming.received);
    return;
  }
  if (m->snap_size_bytes > 0)
    memcpy(r->incoming.buf + m->snap_offset, m->snap_data, m->snap_size_bytes);
  r->incoming.received += m->snap_size_bytes;
  if (r->incoming.received < r->incoming.total) {
    snapshot_progress(r, m, r->incoming.received);
    return;
  }
  snapshot_install(r);
  ack.index = m->snap.index;
  raft_send(r, &ack, true); /* once the snapshot is durable */
}
