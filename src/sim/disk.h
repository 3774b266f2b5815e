/* A simulated disk for one node: what an engine's ready batches wrote, split
 * into what is durable and what is still waiting for an fsync.
 *
 * The real storage (a write-ahead log of records, DESIGN.md "Storage") loses
 * its unsynced tail on a crash, possibly in the middle of a batch. This model
 * keeps the same shape: disk_write_ready() appends records (hard state,
 * snapshot, truncation, entries, in the order the ready contract gives) to a
 * pending list; disk_sync() makes every pending record durable; disk_crash()
 * keeps a prefix of them (any length, chosen by the caller) and drops the
 * rest. Snapshots taken by the host (compaction) go straight to the durable
 * image, as the real node writes them to a temporary file, fsyncs it and
 * renames it: all or nothing.
 *
 * Replaying records onto the durable image follows Raft's rules:
 *   - hard state replaces hard state;
 *   - a snapshot at index S replaces an older snapshot and drops the
 *     entries up to S; the entries after S stay (an engine that wants them
 *     gone, as Raft's does when its log disagrees with the snapshot, thesis
 *     §5.1, asks for it with a truncation in the same batch);
 *   - a truncation drops every entry at index >= from;
 *   - an entry at index i overwrites the entry at i (keeping later ones: a
 *     Raft engine truncates first; a Paxos slot may be accepted again), or
 *     extends the log when i is just past its end. An entry that would leave
 *     a gap, or that the snapshot already covers, is a contract violation:
 *     it is dropped and counted, and the host fails the run. */
#ifndef SABHA_SIM_DISK_H
#define SABHA_SIM_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sabha/engine.h"

struct disk_entry {
  uint64_t index;
  uint64_t term;
  uint32_t type;
  uint32_t size_bytes;
  uint8_t *data; /* owned; NULL when size_bytes is 0 */
};

/* Entries with contiguous indices, in a growable ring-free array: v[head..
 * head+n) holds indices first_index() .. first_index()+n-1. */
struct disk_log {
  struct disk_entry *v;
  size_t head;
  size_t n;
  size_t cap;
};

struct disk_image {
  struct sabha_hard_state hs;
  bool has_snapshot;
  struct sabha_snapshot_meta snap;
  uint8_t *snap_data; /* owned */
  size_t snap_size_bytes;
  struct disk_log log;
};

enum disk_rec_kind {
  DISK_REC_HARD_STATE = 1,
  DISK_REC_SNAPSHOT,
  DISK_REC_TRUNCATE,
  DISK_REC_ENTRY,
};

struct disk_rec {
  uint32_t kind; /* enum disk_rec_kind */
  struct sabha_hard_state hs;
  struct sabha_snapshot_meta snap;
  uint8_t *snap_data; /* owned */
  size_t snap_size_bytes;
  uint64_t truncate_from;
  struct disk_entry entry; /* data owned */
};

struct disk {
  struct disk_image durable;
  struct disk_rec *pending; /* unsynced records, oldest first */
  size_t n_pending;
  size_t cap_pending;
  uint64_t violations;      /* records that broke the rules above */
  char violation[160];      /* the first one */
  struct sabha_entry *view; /* scratch for disk_persisted() */
  size_t cap_view;
};

void disk_init(struct disk *d);
void disk_free(struct disk *d);

/* Appends the persistence part of `rd` (hard state, snapshot, truncation,
 * entries) as pending records, copying every byte. Returns the number of
 * records appended (0: nothing to persist). Aborts on out of memory. */
size_t disk_write_ready(struct disk *d, const struct sabha_ready *rd);

/* fsync: every pending record becomes durable. */
void disk_sync(struct disk *d);

/* A crash: the first `n_survive` pending records (at most n_pending) become
 * durable, the rest are lost. */
void disk_crash(struct disk *d, size_t n_survive);

/* Stores a snapshot taken by the host (compaction) atomically and durably,
 * dropping the durable log prefix it covers. Older pending records are kept
 * and still apply on sync (those the snapshot covers are then ignored). */
void disk_store_snapshot(struct disk *d, struct sabha_snapshot_meta meta,
                         const uint8_t *data, size_t size_bytes);

/* Fills `p` with a view of the durable image, as a restarting node reads it.
 * The view stays valid until the next call on the disk. The commit hint is
 * clamped to the last durable index (a torn batch can keep a hard state whose
 * commit names entries that did not survive). p->applied is the snapshot's
 * index (the host restores its state machine from the snapshot). Returns
 * false when the disk is empty (a node that never persisted anything). */
bool disk_persisted(struct disk *d, struct sabha_persisted *p);

/* The first and last durable log index (first = last + 1 when empty). */
uint64_t disk_first_index(const struct disk *d);
uint64_t disk_last_index(const struct disk *d);
/* The durable entry at `index`, or NULL. */
const struct disk_entry *disk_entry_at(const struct disk *d, uint64_t index);

#endif
