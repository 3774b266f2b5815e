/* The write-ahead log of a sabha node: where a node's hard state, log
 * entries and snapshot live on disk, and how they come back after a crash.
 *
 * An engine (include/sabha/engine.h) never touches a disk; it hands the host
 * a ready batch whose "persist" part must be durable before the host sends
 * the batch's msgs_after_persist. The host carries that part out with
 *
 *     wal_append_ready(w, &rd);   records into a buffer / the segment file
 *     wal_sync(w);                one fdatasync for the whole batch
 *
 * and, after a restart, gets everything back from wal_open() as a struct
 * sabha_persisted to give to sabha_engine_new(). Snapshots taken by the host
 * (sabha_engine_compact) go to wal_save_snapshot(), which also drops the log
 * prefix they cover. docs/storage.md tells the same story for operators.
 *
 * ON DISK. A data directory holds
 *
 *     wal-<seq>.log      segments, <seq> = 16 lowercase hex digits, from 1;
 *                        one active segment is appended to, older ones are
 *                        full (or were the active one before a restart)
 *     segment.tmp        only while a segment is being created
 *     snapshot           the latest snapshot (written as snapshot.tmp, or
 *                        as snapshot.own.tmp off the caller's thread, then
 *                        renamed)
 *     hardstate          term, vote and repair guard, twice, in two 4 KiB
 *                        blocks (wal_hsf.c; HARD STATE FILE below)
 *     discard.intent     only while a damaged log is being moved aside
 *     damaged-<date>/    damaged logs moved aside (discard_corrupt)
 *
 * Every integer is little-endian. A segment starts with a 32-byte header:
 *
 *     0  magic "SABHAWAL"      16 u64 segment sequence (as in the name)
 *     8  u32 format version 3  24 u32 flags: bit 0, the log starts here
 *    12  u32 header bytes, 32          (earlier segments do not belong to
 *                                      it); bit 1, a HARD_STATE record
 *                                      follows the header; bit 2, that
 *                                      record carries a repair guard
 *                              28 u32 CRC32C of bytes 0..27
 *
 * followed by records, each a 16-byte header and a payload:
 *
 *     0  u32 CRC32C of the segment sequence (u64), then bytes 4..15 of
 *            the header and the payload (a record is valid only in its own
 *            segment: stale blocks of a deleted one never pass for records)
 *     4  u32 payload bytes
 *     8  u8  type; 9: u8 0; 10: u16 0
 *    12  u32 durable bytes: how much of this segment had been fsynced when
 *            the record was written (see RECOVERY)
 *
 * and the payloads, by type:
 *
 *     1 HARD_STATE  u64 term, u32 vote, u32 0, u64 commit         (24 bytes)
 *                   and, with a repair guard in force, u64 repair_until
 *                   (32 bytes; format version 3, see REPAIRING)
 *     2 ENTRY       u64 index, u64 term, u32 entry type, u32 size, then
 *                   `size` bytes                            (24 + size)
 *     3 TRUNCATE    u64 from: drop every entry at index >= from     (8)
 *     4 SNAPSHOT    u64 index, u64 term: the install of the snapshot at
 *                   index is done; the snapshot file covers the log up
 *                   to index                                       (16)
 *     5 INSTALL     u64 index, u64 term, u64 truncate_from (0: none): a
 *                   snapshot install begins; once done it drops every
 *                   entry at index >= truncate_from                (24)
 *     6 ABORT       u64 index, u64 term: that install never happened (a
 *                   crash came before the snapshot file was stored) (16)
 *     7 CLOSE       u64 last index of the log: a clean shutdown
 *                   (wal_close_clean); written after a sync, so its
 *                   durable bytes cover the whole segment before it  (8)
 *
 * Types 5 to 7 are new in version 2; the 32-byte HARD_STATE in version 3
 * (a version 2 reader refuses a version 3 segment as a version it does not
 * read, never misreads the guard). An INSTALL is always followed by its
 * SNAPSHOT or ABORT, with nothing between them but a restated hard state
 * (see SNAPSHOTS). A CLOSE is the last record until the log is opened and
 * written again; after that it is one record among others.
 *
 * Term and vote share one record, so a crash never keeps one without the
 * other. An ENTRY at an index the log holds replaces that entry and keeps
 * the later ones (Paxos accepts a slot again under a higher ballot; a Raft
 * engine writes a TRUNCATE first). Entries carry their index and term so
 * that a damaged entry can one day be identified and fetched from a peer.
 *
 * A segment is born whole: its header and a HARD_STATE record restating
 * the current hard state (when there is one; flag bit 1 says so) are
 * written to segment.tmp, fsynced, and only then renamed to the segment's
 * name (and the directory fsynced). So a segment under its own name holds
 * both, durably, from the first moment: these "birth bytes" are never a
 * torn tail, and a segment shorter than them is damaged, never unborn.
 * Version 1 (older builds) created segments in place and had no bit 1;
 * this build reads it, and appends only to segments of version 2 (on
 * opening a version 1 log it starts a new segment), so that an older
 * build refuses a log it cannot read instead of misreading it.
 *
 * The snapshot file is a 48-byte header and the state machine's bytes:
 *
 *     0  magic "SABHASNP"      16 u64 index     32 u64 data bytes
 *     8  u32 version 1         24 u64 term      40 u32 CRC32C of the data
 *    12  u32 header bytes, 48                   44 u32 CRC32C of bytes 0..43
 *
 * RECOVERY (wal_open). Segments are read in sequence order and replayed:
 * the last HARD_STATE wins; ENTRY and TRUNCATE rebuild the log on top of the
 * snapshot file (entries at or below its index are ignored; a SNAPSHOT
 * record must agree with the file); a SNAPSHOT that ends an INSTALL applies
 * the INSTALL's truncation, an ABORT does not. When the log ends inside an
 * install, the snapshot file says how far it got: if it is the install's
 * snapshot, the install is done (its truncation applies), else it never
 * happened; wal_open then appends the SNAPSHOT or ABORT that says so. A
 * record that is incomplete or fails its checksum is judged by where it
 * is:
 *   - in the last segment, if no later intact record says (by its "durable
 *     bytes") that the damaged bytes had been fsynced, the damage is the
 *     unsynced tail of a crash: it was never acknowledged, so the file is cut
 *     there and recovery goes on (stats.recovered_tail_bytes says how much);
 *     but a search for such a record that would checksum more than its
 *     budget (overlapping record headers, see wal_recover.c) takes the
 *     damage for corruption instead;
 *   - anywhere else, or in a segment's birth bytes, it is corruption of
 *     acknowledged data: wal_open repairs the log (REPAIRING, below) or,
 *     with options.refuse_corrupt, fails with SABHA_ECORRUPT and a message
 *     naming the file and byte offset. Nothing is dropped silently. So
 *     does a missing segment, a segment shorter than its birth bytes (its
 *     header, or the hard state it was created with, cut away), a damaged
 *     snapshot file or segment header, and a log that contradicts itself
 *     (an entry past a gap, a snapshot marker the snapshot file lacks, an
 *     INSTALL followed by anything but its end).
 *     Only in a log written by version 1, which created segments in place,
 *     is a last segment with half a header (after a version 1 segment)
 *     taken for a creation a crash interrupted and removed.
 * A clean shutdown leaves no blind spot at the tail: wal_close_clean()
 * syncs, then appends a CLOSE record and syncs again, so the CLOSE is a
 * witness for every byte before it, and damage anywhere, the last batch
 * included, is corruption (stats.closed_clean says wal_open found the log
 * so). Damage to the CLOSE record itself is cut like a torn tail: it holds
 * no data, and a crash inside wal_close_clean can leave it torn.
 * Blind spots. After a crash (no CLOSE at the tail), damage to the records
 * written after the last witness (in practice, the last batch before the
 * node stopped) cannot be told from a torn write without a second fsync
 * per batch, and is cut. And a segment cut exactly at a record boundary
 * after its birth bytes (a lost tail, CLOSE and all) looks like a crash
 * that lost its unsynced tail: what was written there after the segment's
 * creation (entries, and a term or vote that changed since) is lost
 * without a word. The hard state a segment was created with cannot be lost
 * that way.
 * What wal_open returns is durable: it fsyncs the last segment and the
 * directory before returning, so a node never acknowledges what a power cut
 * could still take away. It also deletes segments the snapshot covers that
 * a crash left behind.
 *
 * HARD STATE FILE. A node that forgets its vote can vote twice in a term,
 * and the log keeps the latest hard state in one record: one bad block
 * there, and nothing could prove which term and vote the node had reached.
 * So wal_sync() also writes term, vote and repair guard, whenever they
 * change (elections: rare), to `hardstate`: block 0, fsync, then block 1,
 * fsync; a crash tears at most one. Recovery takes the valid block with
 * the higher generation, merges it with the log's last hard state (the
 * later term with its vote; within a term the vote is set once; the larger
 * guard) and rewrites both blocks when one is bad, so one bad block is
 * mended before a second can strike. A log from an older build has no file
 * yet; wal_open creates it.
 *
 * REPAIRING A DAMAGED LOG (the default; options.refuse_corrupt turns it
 * off). Damage to acknowledged data (RECOVERY above) need not stop a node:
 * the entries it lost are on its peers, which hold every committed entry.
 * What must not happen is the node voting, or promising, as if it still
 * held them: a Raft node that lost an entry it acknowledged could vote for
 * a candidate without it, a Paxos acceptor could promise without reporting
 * a value it accepted, and a committed entry would be lost. So wal_open:
 *   1. establishes the hard state: the last intact HARD_STATE record merged
 *      with the hard state file; when the damage could hide a later record
 *      and the file has no valid block, it refuses (SABHA_ECORRUPT);
 *   2. bounds what the node may have acknowledged: the highest index any
 *      intact record or the snapshot names, plus as many entries as the
 *      damage and any lost segment could hold (one for a record whose
 *      header's length ends exactly at the next intact record: one bad
 *      payload; else one per 40 bytes, the smallest entry record). The log
 *      has no gaps, so nothing in the damage lies further out. A damaged
 *      snapshot whose own header is bad leaves no bound: refused;
 *   3. writes that bound as the repair guard (hard state repair_until) to
 *      the hard state file, durably, before anything is cut;
 *   4. cuts the log at the first damage: the damaged segment keeps its
 *      bytes before the bad record (none when its header or birth bytes are
 *      bad), every later segment moves into damaged-<date>/. A damaged
 *      snapshot file (or options.discard_corrupt) gives the whole log up as
 *      DISCARDING below says. Repeating any of it after a crash ends the
 *      same way: the damage is still where the cut starts, the guard is
 *      already in the file;
 *   5. replays what is left and returns it with the guard in the hard state
 *      (stats.repaired, stats.repair_until); the log gets a HARD_STATE
 *      record carrying it.
 * The engine then refuses votes and promises, and does not count itself in
 * a quorum of them, until its commit index reaches the guard, or it learns
 * sooner that its log holds a leader's whole log (include/sabha/engine.h,
 * repair_until). It says so with a hard state without the guard, which
 * wal_append_ready() writes after the batch's entries: a torn batch keeps
 * a prefix of its records, never the lift without what justified it.
 * A repaired log is the log as it was at the damage: an entry the node
 * rewrote later (Raft truncated it, Paxos accepted the slot again) comes
 * back in its older form, as on a node that never heard of the rewrite.
 *
 * DURABILITY. wal_append_ready() only fills a buffer (written to the file
 * when it reaches buffer_size_bytes); nothing is durable until wal_sync()
 * returns 0. Exceptions that sync on their own: moving to a new segment
 * (the full one is fsynced, then the new one is born whole, see ON DISK,
 * so that only the last segment can ever have a torn tail), and snapshots
 * (below).
 *
 * ZEROS AHEAD. An fdatasync that finds the file longer than before must
 * also commit the new size through the file system's journal; on ext4 that
 * costs about twice an fdatasync of bytes overwritten in place. So the
 * active segment is kept written with zeros some way ahead of its records
 * (zero_ahead_bytes, at most a quarter of a segment): a new segment is born
 * with them, and when fewer than half remain, the next sync first writes
 * more. Records then land on blocks the file already owns, and all but one
 * fsync in every half-zero_ahead_bytes of log are overwrites. Recovery
 * reads zeros after the last record of the last segment as room made
 * ready, not as a torn tail, and keeps them; a segment is trimmed to its
 * records (ftruncate, fsync) before the next one is created and by
 * wal_close_clean, so only the last segment ever has zeros after its
 * records.
 *
 * SNAPSHOTS (wal_save_snapshot, or a ready batch with has_snapshot): append
 * an INSTALL record, carrying the batch's truncate_from, and sync the log;
 * write snapshot.tmp, fsync it, rename it over snapshot, fsync the
 * directory; append a SNAPSHOT record, sync; then delete, oldest first and
 * one directory fsync each, the segments whose every entry the snapshot
 * covers (never the active one). The snapshot and its truncation are one
 * step: the INSTALL (with the truncation in it) is durable before the
 * snapshot file is, and the file's rename decides whether the install
 * happened, so a crash at any point leaves the old snapshot with the old
 * log or the new snapshot with the truncated log, never the new snapshot
 * over a stale suffix that contradicts it. (Raft's InstallSnapshot drops
 * the whole log after the snapshot when the entry at its index has another
 * term.) Deleting cannot lose the latest hard state, because every segment
 * is born holding the hard state current when it was created, and the
 * active segment stays; deleting oldest first keeps the remaining segments
 * contiguous whatever a crash interrupts.
 *
 * ERRORS. Functions return 0 or a SABHA_E* code; wal_errmsg() (or the `err`
 * buffer of wal_open) says what and where. Bad arguments (SABHA_EINVAL,
 * SABHA_ETOOBIG, SABHA_ECOMPACTED) are refused before anything is written
 * and leave the handle usable. Any I/O error (SABHA_EIO: EIO, ENOSPC...) or
 * SABHA_ENOMEM while writing leaves the handle failed: every later call
 * returns the same code, because after a failed write or fsync nothing is
 * known about the unsynced data (Linux may drop it and report success on the
 * next fsync). The host closes the handle and opens the directory again;
 * recovery repairs the tail.
 *
 * DISCARDING A DAMAGED LOG (options.discard_corrupt, and a damaged
 * snapshot file while REPAIRING). A node whose log is damaged can be told
 * to give it all up and rejoin from its peers. What must not
 * be lost is the hard state: a node that forgets its vote can vote twice in
 * a term. Hard states only move forward and every new segment begins by
 * restating the current one, so the last intact HARD_STATE record that lies
 * after every damaged byte is provably the latest. When there is one (or no
 * damaged byte can hold one: a damaged snapshot file), wal_open moves the
 * segments and the snapshot into damaged-<date>/, starts a new log holding
 * that hard state only, and returns it with stats.discarded set. When the
 * damage could hide a later hard state it refuses: SABHA_ECORRUPT, and
 * the message says why. The move is crash-safe: discard.intent records the
 * hard state and the folder first, and any later wal_open finishes the job.
 * The discarded log may have held entries this node acknowledged: the
 * discard sets a repair guard as REPAIRING does, so the node does not count
 * towards a quorum of votes or promises until it has caught up. The hard
 * state file stands in for a hard state the damage hides.
 *
 * LIMITS. Entries above entry_size_bytes_max and snapshots above
 * snapshot_size_bytes_max are refused with SABHA_ETOOBIG; segments are at
 * most WAL_SEGMENT_BYTES_LIMIT; recovery reads one segment at a time into
 * one buffer, uses no recursion, and checksums at most a few times the
 * bytes it searches for records past damage. Memory for the recovered
 * state is the size of the live log plus the snapshot.
 *
 * Threading: a handle is used by one thread at a time. */
#ifndef SABHA_STORAGE_WAL_H
#define SABHA_STORAGE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sabha/engine.h"
#include "storage/wal_io.h"

#define WAL_FORMAT_VERSION 3u /* of the segments this build writes */
#define WAL_SEGMENT_BYTES_DEFAULT (64u << 20)
#define WAL_SEGMENT_BYTES_LIMIT (1u << 30)
#define WAL_ENTRY_BYTES_DEFAULT (1u << 20)
#define WAL_SNAPSHOT_BYTES_DEFAULT (1ull << 30)
#define WAL_BUFFER_BYTES_DEFAULT (1u << 20)
#define WAL_ZERO_AHEAD_BYTES_DEFAULT (1u << 20)
#define WAL_FSYNC_HIST_BUCKETS 32
#define WAL_ERRMSG_MAX 768

struct wal_options {
  const char *dir;                  /* data directory; created if missing (its
                                       parent must exist); copied */
  const struct wal_io *io;          /* NULL: the POSIX calls; copied */
  uint32_t segment_size_bytes;      /* a new segment when the next record
                                       would pass it; default 64 MiB */
  uint32_t entry_size_bytes_max;    /* default 1 MiB */
  uint64_t snapshot_size_bytes_max; /* default 1 GiB */
  uint32_t buffer_size_bytes;       /* written to the file past this; 1 MiB */
  uint32_t zero_ahead_bytes;        /* zeros kept written ahead of the active
                                       segment's records (at most a quarter
                                       of a segment); default 1 MiB, 0 = none */
  bool discard_corrupt;             /* see DISCARDING above; default false */
  bool refuse_corrupt; /* fail on damage instead of REPAIRING; default false */
};

/* Counters for metrics. Sizes are as written (buffered bytes included);
 * "since open" counters start at 0 in wal_open. */
struct wal_stats {
  uint64_t first_index;    /* first entry of the log (snapshot index + 1) */
  uint64_t last_index;     /* last entry, or the snapshot index if none */
  uint64_t snapshot_index; /* 0: no snapshot */
  uint64_t entries;        /* last_index - snapshot_index */
  uint64_t segments;       /* segment files in use */
  uint64_t bytes;          /* bytes in them */
  uint64_t bytes_written;  /* since open, segments only */
  uint64_t records_written;
  uint64_t entries_written;
  uint64_t fsyncs; /* fdatasync/fsync of files, since open */
  uint64_t dir_fsyncs;
  uint64_t fsync_us_last;
  uint64_t fsync_us_max;
  uint64_t fsync_us_total;
  /* fsync_us_hist[b] counts fsyncs that took [2^b, 2^(b+1)) microseconds
   * (b = 0 also counts 0); the last bucket has no upper bound. */
  uint64_t fsync_us_hist[WAL_FSYNC_HIST_BUCKETS];
  uint64_t snapshots_saved;
  uint64_t segments_deleted;
  uint64_t recovered_tail_bytes; /* cut from a torn tail by wal_open */
  uint64_t zero_bytes_written;   /* since open: zeros written ahead */
  bool discarded;                /* wal_open moved a damaged log aside */
  bool repaired;         /* wal_open repaired a damaged log (REPAIRING) */
  uint64_t repair_until; /* the guard it set, when repaired */
  bool hsf_repaired;     /* wal_open rewrote a bad block of `hardstate` */
  bool closed_clean;     /* wal_open found the log as wal_close_clean left it */
};

struct wal;

/* Fills `opt` with the defaults above for directory `dir`. */
void wal_options_init(struct wal_options *opt, const char *dir);

/* The least segment_size_bytes that holds an entry of entry_size_bytes_max
 * with its headers in a fresh segment; wal_open refuses less. */
uint64_t wal_segment_bytes_min(uint64_t entry_size_bytes_max);

/* Opens (creating if needed) the log in opt->dir and recovers it (see
 * RECOVERY). On success returns 0, sets *out and fills `recovered`: the hard
 * state (commit clamped to the last recovered index), the snapshot if any
 * (its bytes loaded from the snapshot file), the entries after it, contiguous
 * from snapshot index + 1, and applied = snapshot index. Its pointers are
 * owned by the handle and stay valid until wal_release_recovered() or
 * wal_close(). `err` (may be NULL) receives a message on failure and, on
 * success, a note of any repair (empty when there was none).
 * Errors: SABHA_EINVAL (bad options, or a format version this build does not
 * read), SABHA_ECORRUPT (see RECOVERY; *out is not set), SABHA_EIO,
 * SABHA_ENOMEM. */
int wal_open(struct wal **out, const struct wal_options *opt,
             struct sabha_persisted *recovered, char *err, size_t err_size);

/* Appends the persist part of `rd` in the ready contract's order: hard state
 * (if has_hard_state), snapshot and truncation (if has_snapshot, installed
 * together as one step that syncs, see SNAPSHOTS), truncation (if
 * truncate_from without a snapshot), entries. Entries at or below
 * the snapshot index are skipped (the snapshot holds them). Nothing else is
 * durable until wal_sync(). The ready is checked first and refused whole,
 * with nothing written: SABHA_ETOOBIG (an entry or the snapshot above its
 * limit), SABHA_EINVAL (an entry that would leave a gap in the log),
 * SABHA_ECOMPACTED (a snapshot no newer than the current one). Otherwise 0,
 * or SABHA_EIO / SABHA_ENOMEM with the handle failed. Copies what it needs
 * of `rd`; no allocation per entry. */
int wal_append_ready(struct wal *w, const struct sabha_ready *rd);

/* Makes everything appended so far durable with one fdatasync (group
 * commit); returns at once when there is nothing new. 0, or SABHA_EIO with
 * the handle failed (nothing appended since the last successful sync may be
 * assumed durable). Its latency goes into the stats. */
int wal_sync(struct wal *w);

/* An fsync run off the caller's thread (asynchronous storage writes).
 *
 * wal_sync_begin() writes what the buffer holds and fills a job naming the
 * file and how much of it the fsync covers; wal_sync_job_run() does the
 * fsync and touches nothing but the job, so a host may run it on a disk
 * thread while the loop goes on appending (an fsync covers every byte
 * written before it starts; later writes wait for the next); wal_sync_end()
 * takes the result back on the WAL's thread, as wal_sync() would (latency
 * in the stats, a failure leaves the handle failed, a new term or vote
 * written to the hard state file, synchronously: elections are rare).
 * One job at a time. While one runs the WAL keeps the file it names open
 * (a move to a new segment closes it only in wal_sync_end), other calls
 * work as usual (a sync of their own may run beside the job's), and the
 * host must not close the handle.
 *
 * The job syncs through a descriptor of its own: the WAL opens the active
 * segment twice, once for its writes and syncs on the caller's thread and
 * once for the job. Linux (4.13 on) reports a write-back error once per
 * open file description and then forgets it, while the pages it could not
 * write are dropped. Were the job's fsync and the WAL's own on one
 * description, a failed job would leave the next sync on the caller's
 * thread (a move to a new segment, a snapshot install, a clean close)
 * free to succeed over the lost bytes, and what it then wrote (records
 * whose durable mark covers them, a segment left as whole) would vouch for
 * bytes that are not on the disk: a restart would find damage where there
 * was a failed fsync. With two descriptions that sync fails too, and the
 * handle fails before it vouches for anything. */
struct wal_sync_job {
  struct wal_io io;
  int fd;              /* -1: nothing to sync in the log file */
  uint64_t seg_seq;    /* the segment fd belongs to */
  uint64_t size_bytes; /* of it, written before the fsync */
  int rv;              /* of the fsync: 0 or -errno (wal_sync_job_run) */
  uint64_t ns;         /* how long it took */
};

/* 0 with `job` filled, or the error of the write (the handle failed). */
int wal_sync_begin(struct wal *w, struct wal_sync_job *job);
/* The fsync; safe on any thread. */
void wal_sync_job_run(struct wal_sync_job *job);
/* The fsyncs of several jobs (several WALs of one process, one per group),
 * on one thread: with the io's sync_many one call makes them all durable,
 * at the cost of one fsync rather than one each; otherwise, or when it
 * cannot, each in turn. Touches only the jobs; each takes the result of the
 * call that covered it. At most WAL_SYNC_JOBS_MAX jobs. */
#define WAL_SYNC_JOBS_MAX 64u
void wal_sync_jobs_run(struct wal_sync_job *const *jobs, size_t n);
/* 0 when everything the job covered is durable, or SABHA_EIO with the
 * handle failed. */
int wal_sync_end(struct wal *w, const struct wal_sync_job *job);

/* Stores a snapshot of the state machine covering the log up to
 * meta->index, durably, and drops the log prefix it covers (see SNAPSHOTS).
 * Entries after meta->index stay (a Raft engine that wants them gone also
 * truncates). `data` is copied to the file; the caller keeps it. Returns 0
 * when all of it is durable, SABHA_ECOMPACTED when meta->index is not above
 * the current snapshot's, SABHA_EINVAL for index 0, SABHA_ETOOBIG, or
 * SABHA_EIO / SABHA_ENOMEM with the handle failed. */
int wal_save_snapshot(struct wal *w, const struct sabha_snapshot_meta *meta,
                      const void *data, size_t size_bytes);

/* wal_save_snapshot in two halves, so that the bulk of it (writing a
 * snapshot of the whole state and fsyncing it) runs off the caller's
 * thread while the WAL goes on taking appends and syncs.
 *
 * wal_snapshot_begin() checks the snapshot as wal_save_snapshot would and
 * fills `job`; wal_snapshot_job_run() writes `data` to a file of its own
 * (snapshot.own.tmp) and fsyncs it, touching nothing but the job, so a
 * host may run it on any thread; `data` must stay until then.
 * wal_snapshot_end(), back on the WAL's thread and with no wal_sync_job
 * running (it syncs the log: see wal_sync_begin), does the rest as
 * wal_save_snapshot does: INSTALL record, sync, the file renamed over the
 * snapshot, SNAPSHOT record, sync, the covered segments dropped. It
 * returns what wal_save_snapshot would, SABHA_ECOMPACTED (the file
 * deleted, the handle fine) if a snapshot at or past the job's index was
 * installed meanwhile, and fails the handle if the job's write or fsync
 * failed. A crash at any point leaves the old snapshot and the whole log,
 * or the new snapshot and its log; recovery deletes a leftover file.
 * wal_snapshot_abandon() deletes the job's file instead (a host that
 * stops before wal_snapshot_end). */
struct wal_snap_job {
  struct wal_io io;
  char tmp[WAL_IO_PATH_MAX];
  struct sabha_snapshot_meta meta;
  const void *data;
  size_t size_bytes;
  int rv;           /* 0 or -errno (wal_snapshot_job_run) */
  const char *what; /* ... of the step that failed */
  uint64_t ns;      /* how long its fsync took */
};
int wal_snapshot_begin(struct wal *w, struct wal_snap_job *job,
                       const struct sabha_snapshot_meta *meta,
                       const void *data, size_t size_bytes);
void wal_snapshot_job_run(struct wal_snap_job *job);
int wal_snapshot_end(struct wal *w, const struct wal_snap_job *job);
void wal_snapshot_abandon(const struct wal_snap_job *job);

/* Frees the memory behind wal_open's `recovered` (optional: wal_close does
 * it). Call once the engine has copied it. */
void wal_release_recovered(struct wal *w);

/* The removal notice a node believed (engine.h,
 * sabha_status.removed_notice_index), kept beside the log in `removed`
 * (32 bytes: "SABHARMV", u32 version 1, u32 0, u64 the membership index,
 * u32 0, u32 CRC32C of bytes 0..27), written under a temporary name,
 * fsynced and renamed, so that it is whole or absent. A node that has it
 * does not campaign after a restart. wal_removed_save returns 0 or an I/O
 * error (the message says which call failed). wal_removed_load sets *index
 * (0 when there is no such file) and returns 0, SABHA_ECORRUPT for a file
 * that is not whole (left in place; the node then acts as if it had none),
 * or an I/O error. */
int wal_removed_save(struct wal *w, uint64_t index);
int wal_removed_load(struct wal *w, uint64_t *index);

void wal_stats(const struct wal *w, struct wal_stats *st);

/* The upper bound in microseconds of the histogram bucket holding the q-th
 * quantile (0 < q <= 1, nearest rank as core/stats.h defines it) of fsync
 * latency, or 0 when there were none. */
uint64_t wal_fsync_us_quantile(const struct wal_stats *st, double q);

/* The message of the last error on this handle ("" if none). */
const char *wal_errmsg(const struct wal *w);

/* Closes the files and frees the handle (NULL is fine). Does not sync:
 * call wal_sync() first to keep what was appended. As far as the next
 * wal_open can tell, the log was left by a crash (the torn-tail rule
 * applies to its last batch); a host that stops on purpose calls
 * wal_close_clean() instead. */
void wal_close(struct wal *w);

/* Closes the log after a clean shutdown: syncs what was appended, appends
 * a clean-shutdown record and syncs it, then closes the files and frees
 * the handle (always; NULL is fine). Returns 0 when the record is durable:
 * the next wal_open then reports damage anywhere in the log as corruption
 * (see RECOVERY). Otherwise the error of the sync or write (or the code of
 * a failed handle) and the log is left as a crash would leave it. */
int wal_close_clean(struct wal *w);

#endif
