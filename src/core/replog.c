/* The storage-facing half of an engine; see replog.h. */
#include "core/replog.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>


void replog_init(struct replog *rl) {
  memset(rl, 0, sizeof *rl);
  log_init(&rl->log);
  rl->unstable_from = 1;
}

void replog_free(struct replog *rl) {
  log_free(&rl->log);
  free(rl->batch);
  free(rl->snap_data);
  free(rl->incoming.buf);
  memset(rl, 0, sizeof *rl);
}

int replog_restore(struct replog *rl, const struct sabha_persisted *p) {
  rl->hs_written = p->hard_state;
  rl->repair_until = p->hard_state.repair_until;
  rl->repair_term = p->hard_state.term;
  if (p->has_snapshot) {
    log_compact(&rl->log, p->snapshot.index, p->snapshot.term);
    if (p->snapshot_size_bytes > 0) {
      rl->snap_data = malloc(p->snapshot_size_bytes);
      if (rl->snap_data == NULL)
        return SABHA_ENOMEM;
      memcpy(rl->snap_data, p->snapshot_data, p->snapshot_size_bytes);
    }
    rl->snap_size = p->snapshot_size_bytes;
  }
  for (size_t i = 0; i < p->n_entries; i++) {
    if (p->entries[i].index != log_last_index(&rl->log) + 1)
      return SABHA_EINVAL;
    int rv = log_put(&rl->log, &p->entries[i]);
    if (rv != 0)
      return rv;
  }
  /* The durable commit is only a hint: the host may have lost the records
   * written after it, so start from what the state machine already holds
   * and let the leader tell us the rest. */
  rl->applied =
      p->applied > rl->log.snap_index ? p->applied : rl->log.snap_index;
  if (rl->applied > log_last_index(&rl->log))
    return SABHA_EINVAL;
  rl->commit = rl->applied;
  rl->unstable_from = log_last_index(&rl->log) + 1;
  rl->persisted_last = log_last_index(&rl->log);
  rl->written_last = rl->persisted_last;
  return 0;
}

void replog_note_rewrite(struct replog *rl, uint64_t index) {
  if (index < rl->unstable_from)
    rl->unstable_from = index;
}

void replog_note_put(struct replog *rl, uint64_t index) {
  if (index >= rl->unstable_from)
    return; /* the tail goes to the host whole anyway */
  uint32_t i = 0;
  while (i < rl->n_puts && rl->puts[i].hi + 1 < index)
    i++;
  if (i < rl->n_puts && rl->puts[i].lo <= index + 1) {
    /* Touches run i: widen it, and join the next run if they now meet. */
    if (index < rl->puts[i].lo)
      rl->puts[i].lo = index;
    if (index > rl->puts[i].hi)
      rl->puts[i].hi = index;
    if (i + 1 < rl->n_puts && rl->puts[i].hi + 1 >= rl->puts[i + 1].lo) {
      rl->puts[i].hi = rl->puts[i + 1].hi;
      memmove(&rl->puts[i + 1], &rl->puts[i + 2],
              (rl->n_puts - i - 2) * sizeof rl->puts[0]);
      rl->n_puts--;
    }
    return;
  }
  if (rl->n_puts == REPLOG_PUTS_MAX) {
    /* Too scattered to list: everything from the lowest goes again. */
    replog_note_rewrite(rl, index < rl->puts[0].lo ? index : rl->puts[0].lo);
    rl->n_puts = 0;
    return;
  }
  memmove(&rl->puts[i + 1], &rl->puts[i],
          (rl->n_puts - i) * sizeof rl->puts[0]);
  rl->puts[i].lo = rl->puts[i].hi = index;
  rl->n_puts++;
}

/* Copies the put runs, then the tail from unstable_from, into rl->batch.
 * Returns how many entries, or -1 without memory for them. */
static long batch_with_puts(struct replog *rl, uint64_t last) {
  size_t n = 0;
  for (uint32_t pass = 0; pass < 2; pass++) {
    n = 0;
    for (uint32_t i = 0; i < rl->n_puts; i++) {
      uint64_t lo = rl->puts[i].lo, hi = rl->puts[i].hi;
      if (lo <= rl->log.snap_index)
        lo = rl->log.snap_index + 1;
      if (hi >= rl->unstable_from)
        hi = rl->unstable_from - 1;
      if (hi > last)
        hi = last;
      for (uint64_t k = lo; k <= hi; k++, n++)
        if (pass == 1)
          rl->batch[n] = *log_get(&rl->log, k);
    }
    for (uint64_t k = rl->unstable_from; k <= last; k++, n++)
      if (pass == 1)
        rl->batch[n] = *log_get(&rl->log, k);
    if (pass == 0 && n > rl->batch_cap) {
      struct sabha_entry *b = realloc(rl->batch, n * sizeof *b);
      if (b == NULL)
        return -1;
      rl->batch = b;
      rl->batch_cap = n;
    }
  }
  return (long)n;
}

void replog_note_truncation(struct replog *rl, uint64_t index) {
  /* Entries the host already holds must go from the disk too. */
  if (index < rl->unstable_from) {
    rl->unstable_from = index;
    if (rl->truncate_from == 0 || index < rl->truncate_from)
      rl->truncate_from = index;
  }
}

static uint64_t commit_ready_last(const struct replog *rl) {
  uint64_t last = log_last_index(&rl->log);
  return rl->commit < last ? rl->commit : last;
}

static uint64_t apply_from(const struct replog *rl) {
  uint64_t from = rl->applied + 1;
  if (rl->snap_to_install && from <= rl->log.snap_index)
    from = rl->log.snap_index + 1;
  return from;
}

/* The commit index a hard state record carries: no further than what the
 * disk already holds with nothing rewritten since. The record goes to disk
 * before the batch's entries, so a crash may keep it and lose them; bounded
 * so, every index it names holds, durably, the entry that was committed
 * there, and an engine may trust it after a restart (Multi-Paxos does:
 * without it a restarted acceptor forgets which memberships were chosen). */
static uint64_t commit_to_persist(const struct replog *rl) {
  uint64_t durable = replog_self_match(rl);
  uint64_t c = rl->commit < durable ? rl->commit : durable;
  /* A snapshot being installed is not on disk yet either, and the log
   * below it may hold values it replaces (a crash can abandon the
   * install): the record keeps the last durable commit until it is. */
  if (rl->snap_to_install && c > rl->hs_written.commit)
    c = rl->hs_written.commit;
  return c;
}

static bool hard_state_changed(const struct replog *rl, uint64_t term,
                               uint32_t vote) {
  return term != rl->hs_written.term || vote != rl->hs_written.vote ||
         commit_to_persist(rl) != rl->hs_written.commit ||
         replog_guard_until(rl) != rl->hs_written.repair_until;
}

bool replog_has_ready(const struct replog *rl, uint64_t term, uint32_t vote) {
  return hard_state_changed(rl, term, vote) || rl->n_puts > 0 ||
         rl->unstable_from <= log_last_index(&rl->log) || rl->truncate_from ||
         rl->snap_to_install || apply_from(rl) <= commit_ready_last(rl);
}

void replog_fill_ready(struct replog *rl, uint64_t term, uint32_t vote,
                       const struct outbox *out, struct sabha_ready *rd) {
  if (hard_state_changed(rl, term, vote)) {
    rd->has_hard_state = true;
    rd->hard_state.term = term;
    rd->hard_state.vote = vote;
    rd->hard_state.commit = commit_to_persist(rl);
    /* Lifting the guard needs no fsync of its own: a guard kept too long
     * only delays a vote. The WAL writes the lift after this batch's
     * entries, so a torn batch never keeps the lift without them. */
    rl->repair_until = replog_guard_until(rl);
    rd->hard_state.repair_until = rl->repair_until;
  }
  if (rl->snap_to_install) {
    rd->has_snapshot = true;
    rd->snapshot.index = rl->log.snap_index;
    rd->snapshot.term = rl->log.snap_term;
    rd->snapshot_data = rl->snap_data;
    rd->snapshot_size_bytes = rl->snap_size;
  }
  rd->truncate_from = rl->truncate_from;
  uint64_t last = log_last_index(&rl->log);
  if (rl->n_puts > 0) {
    long n = batch_with_puts(rl, last);
    if (n >= 0) {
      rd->entries = rl->batch;
      rd->n_entries = (size_t)n;
    } else { /* no memory for the list: the whole range goes */
      replog_note_rewrite(rl, rl->puts[0].lo > rl->log.snap_index
                                  ? rl->puts[0].lo
                                  : rl->log.snap_index + 1);
      rl->n_puts = 0;
    }
  }
  if (rl->n_puts == 0 && rl->unstable_from <= last) {
    assert(rl->unstable_from > rl->log.snap_index);
    rd->entries = log_get(&rl->log, rl->unstable_from);
    rd->n_entries = (size_t)(last - rl->unstable_from + 1);
  }
  rd->msgs = out->now.items;
  rd->n_msgs = out->now.n;
  rd->msgs_after_persist = out->after_persist.items;
  rd->n_msgs_after_persist = out->after_persist.n;
  uint64_t from = apply_from(rl);
  uint64_t to = commit_ready_last(rl);
  if (from <= to) {
    rd->committed = log_get(&rl->log, from);
    rd->n_committed = (size_t)(to - from + 1);
  }
  rd->reads = out->reads;
  rd->n_reads = out->n_reads;
  /* The fsync rule (engine.h, must_sync): a batch that only moves the
   * commit index, sends what needs nothing durable or applies entries needs
   * no fsync. */
  rd->seq = rl->ready_seq + 1;
  rd->must_sync = term != rl->hs_written.term || vote != rl->hs_written.vote ||
                  rd->has_snapshot || rd->truncate_from != 0 ||
                  rd->n_entries > 0 || rd->n_msgs_after_persist > 0;
}

/* Notes batch `seq`, handed out, as not yet durable. */
static void writes_push(struct replog *rl, uint64_t seq, uint64_t low) {
  if (rl->n_writes == REPLOG_WRITES_MAX) {
    /* Merged into the newest: acknowledged only with it. */
    struct replog_write *w = &rl->writes[rl->n_writes - 1];
    w->seq = seq;
    w->last = rl->written_last;
    if (low < w->low)
      w->low = low;
    return;
  }
  rl->writes[rl->n_writes++] =
      (struct replog_write){.seq = seq, .last = rl->written_last, .low = low};
}

void replog_advance(struct replog *rl, const struct sabha_ready *rd) {
  assert(rd->seq == rl->ready_seq + 1);
  rl->ready_seq = rd->seq;
  /* A batch that changes the log must be synced (must_sync), so a later
   * fsync is sure to cover it; a hard state alone (a commit index) needs
   * no record: the log's durability does not hang on it. */
  bool wrote = rd->has_snapshot || rd->truncate_from != 0 || rd->n_entries > 0;
  uint64_t low = UINT64_MAX; /* the lowest index this batch rewrites */
  if (rd->has_hard_state)
    rl->hs_written = rd->hard_state;
  if (rd->has_snapshot) {
    rl->snap_to_install = false;
    if (rl->written_last < rd->snapshot.index)
      rl->written_last = rd->snapshot.index;
    if (rl->applied < rd->snapshot.index)
      rl->applied = rd->snapshot.index;
  }
  if (rd->truncate_from != 0) {
    low = rd->truncate_from;
    if (rl->written_last >= rd->truncate_from)
      rl->written_last = rd->truncate_from - 1;
    rl->truncate_from = 0;
  }
  if (rd->n_entries > 0) {
    /* Entries come sorted: put runs, then the tail. */
    if (rd->entries[0].index < low)
      low = rd->entries[0].index;
    uint64_t last = rd->entries[rd->n_entries - 1].index;
    if (last > rl->written_last)
      rl->written_last = last;
    if (last + 1 > rl->unstable_from)
      rl->unstable_from = last + 1;
  }
  rl->n_puts = 0; /* every put went in this batch */
  if (rd->n_committed > 0)
    rl->applied = rd->committed[rd->n_committed - 1].index;
  /* What the disk holds from `low` on is the old log until this batch is
   * durable: it no longer counts as this node's copy. */
  if (low != UINT64_MAX && rl->persisted_last >= low)
    rl->persisted_last = low - 1;
  if (wrote)
    writes_push(rl, rd->seq, low);
  if (rl->count_self_early) /* the bug: durable as soon as handed out */
    (void)replog_persisted(rl, rd->seq);
}

bool replog_persisted(struct replog *rl, uint64_t seq) {
  if (seq <= rl->persisted_seq)
    return false; /* overtaken by a later report */
  assert(seq <= rl->ready_seq);
  rl->persisted_seq = seq;
  uint32_t k = 0;
  while (k < rl->n_writes && rl->writes[k].seq <= seq)
    k++;
  if (k == 0)
    return false;
  uint64_t durable = rl->writes[k - 1].last;
  rl->n_writes -= k;
  memmove(rl->writes, rl->writes + k, rl->n_writes * sizeof rl->writes[0]);
  /* Batches still in flight rewrite what the disk holds from their low. */
  for (uint32_t i = 0; i < rl->n_writes; i++)
    if (rl->writes[i].low <= durable)
      durable = rl->writes[i].low - 1;
  rl->persisted_last = durable;
  return true;
}

int replog_compact(struct replog *rl, uint64_t index, const void *data,
                   size_t size) {
  if (index <= rl->log.snap_index)
    return SABHA_ECOMPACTED;
  if (index > rl->applied)
    return SABHA_EINVAL;
  if ((uint64_t)size > SABHA_SNAPSHOT_BYTES_MAX)
    return SABHA_ETOOBIG; /* no peer would take it */
  uint64_t term = 0;
  int rv = log_term(&rl->log, index, &term);
  assert(rv == 0);
  (void)rv;
  uint8_t *copy = NULL;
  if (size > 0) {
    copy = malloc(size);
    if (copy == NULL)
      return SABHA_ENOMEM;
    memcpy(copy, data, size);
  }
  free(rl->snap_data);
  rl->snap_data = copy;
  rl->snap_size = size;
  log_compact(&rl->log, index, term);
  return 0;
}

/* Two nodes can hold snapshots of the same index, term and size that are
 * not the same bytes (a store may lay its keys out differently on each
 * replica): chunks are spliced only when one sender, in one term, sent them
 * all. */
static bool same_transfer(const struct replog *rl, const struct sabha_msg *m) {
  return rl->incoming.active && rl->incoming.meta.index == m->snap.index &&
         rl->incoming.meta.term == m->snap.term &&
         rl->incoming.total == m->snap_total_bytes &&
         rl->incoming.from == m->from && rl->incoming.sender_term == m->term;
}

bool replog_chunk_fits(const struct replog *rl, const struct sabha_msg *m) {
  return same_transfer(rl, m) ? m->snap_offset == rl->incoming.received
                              : m->snap_offset == 0;
}

/* Room for `need` bytes of the incoming snapshot. The buffer grows with the
 * bytes that came, doubling, never past the total: taken whole at the
 * first chunk, as it was, one message claiming 4 GiB made a node allocate
 * 4 GiB before any of it arrived. */
static bool chunk_room(struct replog *rl, uint64_t need) {
  if (need <= rl->incoming.cap)
    return true;
  uint64_t cap = rl->incoming.cap * 2;
  if (cap < (64u << 10))
    cap = 64u << 10;
  if (cap < need)
    cap = need;
  if (cap > rl->incoming.total)
    cap = rl->incoming.total;
  uint8_t *buf = realloc(rl->incoming.buf, (size_t)cap);
  if (buf == NULL)
    return false;
  rl->incoming.buf = buf;
  rl->incoming.cap = cap;
  return true;
}

int replog_snapshot_chunk(struct replog *rl, const struct sabha_msg *m,
                          uint64_t *received) {
  bool same = same_transfer(rl, m);
  if (!same) {
    *received = 0;
    if (m->snap_offset != 0 || m->snap_total_bytes > SABHA_SNAPSHOT_BYTES_MAX)
      return 0;
    free(rl->incoming.buf);
    rl->incoming.buf = NULL;
    rl->incoming.cap = 0;
    rl->incoming.active = true;
    rl->incoming.meta = m->snap;
    rl->incoming.from = m->from;
    rl->incoming.sender_term = m->term;
    rl->incoming.total = m->snap_total_bytes;
    rl->incoming.received = 0;
  }
  *received = rl->incoming.received;
  if (m->snap_offset != rl->incoming.received ||
      m->snap_offset + m->snap_size_bytes > rl->incoming.total)
    return 0;
  if (!chunk_room(rl, m->snap_offset + m->snap_size_bytes))
    return 0; /* the sender will try again */
  if (m->snap_size_bytes > 0)
    memcpy(rl->incoming.buf + m->snap_offset, m->snap_data, m->snap_size_bytes);
  rl->incoming.received += m->snap_size_bytes;
  *received = rl->incoming.received;
  return rl->incoming.received == rl->incoming.total;
}

void replog_install_snapshot(struct replog *rl, bool keep_matching) {
  assert(rl->incoming.active && rl->incoming.received == rl->incoming.total);
  struct sabha_snapshot_meta meta = rl->incoming.meta;
  uint64_t term = 0;
  bool keep = !keep_matching ||
              (log_term(&rl->log, meta.index, &term) == 0 && term == meta.term);
  if (!keep) {
    if (log_last_index(&rl->log) > rl->log.snap_index)
      log_truncate_from(&rl->log, rl->log.snap_index + 1);
    /* Whatever the disk holds after the snapshot no longer belongs. */
    if (rl->truncate_from == 0 || rl->truncate_from > meta.index + 1)
      rl->truncate_from = meta.index + 1;
    rl->unstable_from = meta.index + 1;
  } else if (rl->unstable_from < meta.index + 1) {
    rl->unstable_from = meta.index + 1;
  }
  log_compact(&rl->log, meta.index, meta.term);
  free(rl->snap_data);
  rl->snap_data = rl->incoming.buf;
  rl->snap_size = (size_t)rl->incoming.total;
  rl->incoming.buf = NULL;
  rl->incoming.cap = 0;
  rl->incoming.active = false;
  if (rl->commit < meta.index)
    rl->commit = meta.index;
  rl->snap_to_install = true;
}

int replog_entry(const struct replog *rl, uint64_t index,
                 struct sabha_entry *out) {
  if (index <= rl->log.snap_index)
    return SABHA_ECOMPACTED;
  const struct sabha_entry *e = log_get(&rl->log, index);
  if (e == NULL)
    return SABHA_EUNAVAILABLE;
  *out = *e;
  return 0;
}
