/* The write-ahead log's insides, shared by wal.c (writing), wal_snapshot.c
 * (the snapshot file) and wal_recover.c (reading back). The format itself is
 * specified in wal.h; this header holds its constants and the checks one
 * record must pass, so that the writer and the reader cannot disagree. Its
 * integers are little-endian through core/endian.h, as on the wire. Not for
 * use outside src/storage. */
#ifndef SABHA_STORAGE_WAL_INTERNAL_H
#define SABHA_STORAGE_WAL_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/endian.h"
#include "storage/wal.h"

#define WAL_SEG_MAGIC "SABHAWAL"
#define WAL_SEG_HEADER_BYTES 32u
#define WAL_SEG_FLAG_LOG_START 1u
#define WAL_SEG_FLAG_HARD_STATE                                                \
  2u                          /* a HARD_STATE record follows the header        \
                               */
#define WAL_SEG_FLAG_GUARD 4u /* ... and carries a repair guard (version 3) */
/* A segment is created under this name and renamed once whole. */
#define WAL_SEG_TMP_NAME "segment.tmp"
/* Segment format versions this build reads: 1 (written by older builds)
 * and WAL_FORMAT_VERSION (wal.h), the one it writes. */
#define WAL_SEG_VERSION_OLDEST 1u

#define WAL_REC_HEADER_BYTES 16u
enum wal_rec_type {
  WAL_REC_HARD_STATE = 1,
  WAL_REC_ENTRY = 2,
  WAL_REC_TRUNCATE = 3,
  WAL_REC_SNAPSHOT = 4, /* a snapshot install is done */
  /* From format version 2 on: */
  WAL_REC_INSTALL = 5, /* a snapshot install begins */
  WAL_REC_ABORT = 6,   /* ... was abandoned by a crash */
  WAL_REC_CLOSE = 7,   /* a clean shutdown: everything before is synced */
  WAL_REC_TYPE_MAX = WAL_REC_CLOSE
};
#define WAL_HARD_STATE_BYTES 24u
/* From format version 3 on, a hard state with a repair guard in force
 * carries it: u64 repair_until after the 24 bytes. */
#define WAL_HARD_STATE_GUARD_BYTES 32u
#define WAL_ENTRY_HEADER_BYTES 24u
#define WAL_TRUNCATE_BYTES 8u
#define WAL_SNAPSHOT_REC_BYTES 16u
#define WAL_INSTALL_BYTES 24u
#define WAL_ABORT_BYTES 16u
#define WAL_CLOSE_BYTES 8u

#define WAL_SNAP_MAGIC "SABHASNP"
#define WAL_SNAP_VERSION 1u
#define WAL_SNAP_HEADER_BYTES 48u
#define WAL_SNAP_NAME "snapshot"
#define WAL_SNAP_TMP_NAME "snapshot.tmp"
#define WAL_SNAP_OWN_TMP_NAME "snapshot.own.tmp" /* wal_snapshot_begin's */

#define WAL_HSF_NAME "hardstate"
#define WAL_HSF_TMP_NAME "hardstate.tmp"
#define WAL_HSF_BLOCK_BYTES 4096u

#define WAL_INTENT_MAGIC "SABHADSC"
#define WAL_INTENT_VERSION 1u
#define WAL_INTENT_BYTES 96u
#define WAL_INTENT_NAME "discard.intent"
#define WAL_INTENT_TMP_NAME "discard.intent.tmp"
#define WAL_INTENT_FOLDER_MAX 44u /* with its NUL */

/* Segment file names: "wal-" + 16 hex digits + ".log". */
#define WAL_SEG_NAME_BYTES 24u

/* ---- one record ---- */

struct wal_rec {
  uint32_t payload_bytes;
  uint8_t type;
  uint32_t durable_bytes;
  const uint8_t *payload;
};

/* The CRC of a record of segment `seq` whose header is at `h`: over the
 * segment's sequence number (u64), header bytes 4..15 and the payload. The
 * sequence number makes a record valid only in its own segment, so blocks
 * of a deleted segment that a file system exposes in a new file after a
 * crash (ext4 data=writeback does) cannot pass for records. */
uint32_t wal_rec_crc(uint64_t seq, const uint8_t *h, uint32_t payload_bytes);

/* Checks the record at `offset` of the image `seg` (`size` bytes) of
 * segment `seq`: complete, well-formed (known type, zero padding, payload
 * length right for its type, durable bytes not past its own offset) and
 * matching its CRC. Returns true and fills *rec; false and sets *why to a
 * static reason. */
bool wal_rec_check(const uint8_t *seg, uint64_t size, uint64_t offset,
                   uint64_t seq, struct wal_rec *rec, const char **why);

/* A HARD_STATE record's payload, 24 bytes or, with a repair guard, 32
 * (returned by the encoder; `p` holds WAL_HARD_STATE_GUARD_BYTES). */
void wal_hard_state_decode(const struct wal_rec *rec,
                           struct sabha_hard_state *hs);
uint32_t wal_hard_state_encode(uint8_t *p, const struct sabha_hard_state *hs);

struct wal_seg_header {
  uint64_t seq;
  uint32_t version;
  uint32_t flags;
};

/* Writes a 32-byte segment header (format WAL_FORMAT_VERSION) for `seq`
 * into `p`. */
void wal_seg_header_encode(uint8_t *p, uint64_t seq, uint32_t flags);
/* Checks a segment header and fills *h: 0, or SABHA_ECORRUPT (incomplete,
 * bad magic or CRC) or SABHA_EINVAL (a version this build does not read)
 * with *why set. */
int wal_seg_header_check(const uint8_t *p, uint64_t size,
                         struct wal_seg_header *h, const char **why);
/* How many bytes at the start of a segment with header `h` were durable
 * before the segment had its name: the header, and the hard state it
 * restates. Damage there is never a torn tail. 0 for version 1, whose
 * segments were created in place. */
uint64_t wal_seg_born_bytes(const struct wal_seg_header *h);

/* "wal-%016llx.log" for `seq` into `name` (WAL_SEG_NAME_BYTES + 1). */
void wal_seg_name(char *name, uint64_t seq);
/* Parses a segment file name; false for any other name. */
bool wal_seg_name_parse(const char *name, uint64_t *seq);

/* ---- the handle ---- */

struct wal_seg {
  uint64_t seq;
  uint64_t size_bytes; /* in the file (the active one: without the buffer) */
  uint64_t index_max;  /* highest entry index written into it; 0: none */
  uint32_t version;    /* its format version */
};

/* The hard state file (wal_hsf.c) as read or last written. */
struct wal_hsf {
  bool present;  /* the file exists */
  uint32_t good; /* valid blocks, 0 to 2 */
  bool whole;    /* both valid and alike: nothing to repair */
  uint64_t gen;
  bool has_hs;
  struct sabha_hard_state hs;
};

struct wal {
  struct wal_io io;
  struct wal_options opt; /* opt.dir points at dir below */
  char dir[WAL_IO_PATH_MAX];
  char path[WAL_IO_PATH_MAX]; /* scratch for wal_path() */
  char path2[WAL_IO_PATH_MAX];

  /* The active segment is segs[n_segs - 1]; fd is -1 before it exists. */
  int fd;
  /* A second open() of the active segment, for the disk job's fsync alone
   * (-1 with fd). Its own open file description, not a dup: Linux reports
   * a write-back error once per description, so if the job's fsync fails,
   * the next fsync through fd fails too, instead of succeeding over the
   * bytes the kernel dropped (see wal_sync_begin in wal.h). */
  int sync_fd;
  uint64_t durable_bytes; /* of the active segment, as last fsynced */
  /* The active segment's file is written up to here: its records, then
   * zeros written ahead of them (ZEROS AHEAD in wal.h). */
  uint64_t file_bytes;
  /* wal_sync_begin's job is under way (the host runs its fsync), on
   * job_fd (a sync_fd); the sync_fd of a segment left meanwhile is closed
   * only when the job ends (fd_to_close). */
  bool job_running;
  int job_fd;
  int fd_to_close;
  struct wal_seg *segs;
  size_t n_segs;
  size_t cap_segs;

  /* Records not yet written to the file (they start at the active
   * segment's size_bytes). */
  uint8_t *buf;
  size_t buf_len;
  size_t buf_cap;

  /* The log as written (durable or not). */
  bool has_hs;
  struct sabha_hard_state hs;
  bool has_snapshot;
  struct sabha_snapshot_meta snap;
  uint64_t last_index; /* >= snap.index */

  struct wal_hsf hsf;

  int failed; /* 0, or the code every call now returns */
  char errmsg[WAL_ERRMSG_MAX];
  struct wal_stats stats;

  /* What wal_open recovered, owned here. */
  uint8_t *rec_bytes;
  struct sabha_entry *rec_entries;
  uint8_t *rec_snap;
};

/* "dir/name" into w->path (or w->path2 for the second of two), returned. */
const char *wal_path(struct wal *w, const char *name);
const char *wal_path2(struct wal *w, const char *name);

/* Records an error message (printf style) and returns `code`. */
int wal_error(struct wal *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an I/O failure (negative errno `rv`) of `what` on `path`, marks
 * the handle failed and returns SABHA_EIO (SABHA_ENOMEM for -ENOMEM). */
int wal_io_error(struct wal *w, int rv, const char *what, const char *path);

/* Write path, wal.c. */
int wal_flush(struct wal *w);
int wal_sync_active(struct wal *w);
int wal_sync_dir(struct wal *w);
/* Creates segment `seq` with `flags`, restating the hard state in it,
 * durably and atomically (see wal.c), and makes it active (the previous
 * active one must be closed). */
int wal_segment_create(struct wal *w, uint64_t seq, uint32_t flags);
/* Writes a small file whole: `data` to `tmp_name`, fsync, rename to
 * `name`, fsync of the directory. Under its own name it is never torn. */
int wal_write_whole(struct wal *w, const char *tmp_name, const char *name,
                    const void *data, size_t size);
/* Reads up to `size` bytes of the file `name` in the log's folder into
 * `buf` (*n: how many; a file that is longer fills `buf`). A missing file
 * is not an error: 0 with *absent set. Returns 0 or an I/O error. */
int wal_read_whole(struct wal *w, const char *name, void *buf, size_t size,
                   size_t *n, bool *absent);
/* Opens sync_fd on the active segment (fd open, sync_fd not). */
int wal_open_sync_fd(struct wal *w);
/* Closes fd and sync_fd (the latter at the job's end if a job running
 * uses it). */
void wal_close_active(struct wal *w);
/* Closes the active segment, durably, and starts the next one. */
int wal_rollover(struct wal *w);
int wal_append_record(struct wal *w, uint8_t type, const uint8_t *head,
                      uint32_t head_bytes, const uint8_t *body,
                      uint32_t body_bytes);
int wal_append_hard_state(struct wal *w, const struct sabha_hard_state *hs);
int wal_segs_push(struct wal *w, struct wal_seg seg);
/* Deletes, oldest first, the segments (never the active one) whose every
 * entry the snapshot covers. One directory fsync per deletion keeps the
 * survivors contiguous whatever a crash leaves. */
int wal_delete_covered(struct wal *w);
void wal_fsync_latency(struct wal *w, uint64_t ns);

/* Hard state file, wal_hsf.c. */
/* Reads `hardstate` into *out (all zero when absent; good == 0 when no
 * block is valid). 0, or SABHA_EIO. */
int wal_hsf_read(struct wal *w, struct wal_hsf *out);
/* Writes both blocks, one after the other, each fsynced; sets w->hsf. */
int wal_hsf_write(struct wal *w, bool has_hs,
                  const struct sabha_hard_state *hs);
/* True when the file does not hold w->hs (term, vote, guard), whole. */
bool wal_hsf_stale(const struct wal *w);
/* Merges the file's hard state into *hs (the log's): the later term with
 * its vote, the vote of a shared term, the larger guard. SABHA_ECORRUPT
 * when the two name different votes in one term. */
int wal_hs_merge(struct wal *w, bool *has_hs, struct sabha_hard_state *hs,
                 const struct wal_hsf *f);

/* Snapshot file, wal_snapshot.c. */
/* Writes, fsyncs and renames the snapshot file into place, and fsyncs the
 * directory. */
int wal_snapshot_write(struct wal *w, const struct sabha_snapshot_meta *meta,
                       const void *data, size_t size_bytes);
/* The snapshot file written to `tmp` and fsynced: 0, or -errno with *what
 * naming the step. Touches only its arguments (any thread). */
int wal_snapshot_file_write(const struct wal_io *io, const char *tmp,
                            const struct sabha_snapshot_meta *meta,
                            const void *data, size_t size_bytes,
                            const char **what, uint64_t *fsync_ns);
/* A written snapshot file renamed over the snapshot, the folder synced. */
int wal_snapshot_rename(struct wal *w, const char *tmp);
/* Reads and checks the snapshot file. 0 with *data (malloc'd, owned by the
 * caller; NULL when size is 0) and *meta, SABHA_ECORRUPT, SABHA_ETOOBIG
 * (above snapshot_size_bytes_max), SABHA_EIO, SABHA_ENOMEM. */
int wal_snapshot_read(struct wal *w, struct sabha_snapshot_meta *meta,
                      uint8_t **data, size_t *size_bytes);
/* Reads and checks the snapshot file's header alone (its own CRC), for the
 * index a damaged snapshot covered. 0, SABHA_ECORRUPT or SABHA_EIO. */
int wal_snapshot_peek(struct wal *w, struct sabha_snapshot_meta *meta);

/* Recovery, wal_recover.c. Fills `recovered`; on error the message is in
 * w->errmsg. */
int wal_recover(struct wal *w, struct sabha_persisted *recovered, char *note,
                size_t note_size);

#endif
