/* The storage-facing half of an engine: its log, what of it the host has made
 * durable, the snapshot it holds or is receiving, and the translation of all
 * that into the persist-and-apply part of a ready batch.
 *
 * Raft and Multi-Paxos differ in how they decide what goes into the log, not
 * in how a log reaches the disk or the state machine, so both embed one
 * `struct replog` and share this code. Writes are tracked as a range: every
 * index at or after `unstable_from` is handed to the host in the next batch
 * (a put at an index overwrites what the disk has there), and `truncate_from`
 * asks the host to drop a suffix first (Raft only: Paxos never forgets an
 * accepted value). A Paxos acceptor also puts single slots below its tail
 * (a slot accepted again, a value learned): those go to the host alone, as
 * `puts`, not with every slot after them, or an acceptor whose tail runs far
 * ahead of its commit would write the tail again for each slot it learns. */
#ifndef SABHA_CORE_REPLOG_H
#define SABHA_CORE_REPLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/log.h"
#include "core/outbox.h"
#include "sabha/engine.h"

#define REPLOG_PUTS_MAX 32u
/* Batches handed to the host and not yet durable that are told apart;
 * beyond it the newest are merged (their durability is then learnt when
 * the last of them is acknowledged, never sooner). */
#define REPLOG_WRITES_MAX 64u

/* A batch handed to the host that wrote to the log and is not yet known
 * durable: once it is, the disk holds indexes up to `last` as the batch
 * left them; indexes from `low` on (UINT64_MAX: none) were rewritten by it,
 * so the disk holds something else there until it is durable. */
struct replog_write {
  uint64_t seq;
  uint64_t last;
  uint64_t low;
};

struct replog {
  struct log log;
  uint64_t unstable_from; /* first index not yet handed to the host */
  /* Runs of slots put in place below unstable_from since the last batch,
   * sorted, apart; more than REPLOG_PUTS_MAX runs fall back to lowering
   * unstable_from. */
  struct {
    uint64_t lo, hi;
  } puts[REPLOG_PUTS_MAX];
  uint32_t n_puts;
  struct sabha_entry *batch; /* a batch's entries when puts are in it */
  size_t batch_cap;
  uint64_t truncate_from; /* pending disk truncation, 0 for none */
  /* Asynchronous storage writes (engine.h): what the host holds durably
   * lags what it was handed. persisted_last: the last index the host holds
   * durably as the log holds it now; written_last: the last index its log
   * will hold once every batch handed out is written; the batches between
   * the two, oldest first. */
  uint64_t persisted_last;
  uint64_t written_last;
  uint64_t ready_seq;     /* number of the last batch handed out */
  uint64_t persisted_seq; /* the highest the host said is durable */
  struct replog_write writes[REPLOG_WRITES_MAX];
  uint32_t n_writes;
  bool count_self_early;              /* SABHA_BUG_COUNT_SELF_EARLY */
  struct sabha_hard_state hs_written; /* the last hard state handed out */
  /* The repair guard (engine.h, sabha_hard_state.repair_until) and the term
   * or ballot the node restarted in; guard_off is the deliberate bug. */
  uint64_t repair_until;
  uint64_t repair_term;
  bool guard_off;
  uint64_t commit;
  uint64_t applied;
  /* The newest local snapshot (covers log.snap_index). */
  uint8_t *snap_data;
  size_t snap_size;
  bool snap_to_install; /* received from a peer; goes out in the next batch */
  /* A snapshot arriving in chunks. */
  struct {
    bool active;
    struct sabha_snapshot_meta meta;
    uint32_t from;        /* the sender and its term: chunks of one */
    uint64_t sender_term; /* snapshot come from one node in one term */
    uint8_t *buf;
    uint64_t cap; /* buf's bytes: grown as chunks come, at most total */
    uint64_t total;
    uint64_t received;
  } incoming;
};

void replog_init(struct replog *rl);
void replog_free(struct replog *rl);
/* Loads what a restarted node found on disk. The commit index starts at what
 * the state machine holds (persisted->applied); the hard state's commit,
 * which names only entries durable before it was written (replog.c), is
 * there for an engine that wants more. Returns 0, SABHA_EINVAL for
 * inconsistent input or SABHA_ENOMEM. */
int replog_restore(struct replog *rl, const struct sabha_persisted *p);

/* The last index the host holds durably with nothing rewritten since: what a
 * leader may count as its own acknowledgement. */
static inline uint64_t replog_self_match(const struct replog *rl) {
  uint64_t stable = rl->unstable_from - 1;
  if (rl->n_puts > 0 && rl->puts[0].lo <= stable)
    stable = rl->puts[0].lo - 1;
  return rl->persisted_last < stable ? rl->persisted_last : stable;
}

/* The guard still in force, 0 for none. While it holds the node must not vote
 * or promise, nor count itself towards a quorum for votes or promises. It holds
 * until the commit index reaches the index the node may have acknowledged
 * before its log was cut: entries up to the commit index are the chosen
 * ones, learned from the cluster, so whatever it lost is back. */
static inline uint64_t replog_guard_until(const struct replog *rl) {
  return rl->repair_until != 0 && rl->commit < rl->repair_until
             ? rl->repair_until
             : 0;
}

/* The guard as the engine obeys it (the deliberate bug ignores it; its
 * record is kept all the same). */
static inline bool replog_guarded(const struct replog *rl) {
  return replog_guard_until(rl) != 0 && !rl->guard_off;
}

/* Lifts the guard before the commit index reaches it, for an engine that
 * knows its log is whole again (Raft: an entry from a leader of a later
 * term, see raft_guard_check). */
static inline void replog_guard_lift(struct replog *rl) {
  rl->repair_until = 0;
}

/* Notes that entries at index >= `index` changed in memory and must be
 * handed to the host again. */
void replog_note_rewrite(struct replog *rl, uint64_t index);
/* Notes that the entry at `index` alone was put in place (log_put) and must
 * be handed to the host again; the entries after it did not change. */
void replog_note_put(struct replog *rl, uint64_t index);
/* Notes that entries at index >= `index` were removed in memory. */
void replog_note_truncation(struct replog *rl, uint64_t index);

bool replog_has_ready(const struct replog *rl, uint64_t term, uint32_t vote);
/* Fills the persist and apply fields of `rd` (hard state, snapshot,
 * truncation, entries, committed) and the messages and reads from `out`. */
void replog_fill_ready(struct replog *rl, uint64_t term, uint32_t vote,
                       const struct outbox *out, struct sabha_ready *rd);
/* Records that the host carried out `rd` (written, not yet durable). */
void replog_advance(struct replog *rl, const struct sabha_ready *rd);
/* Records that batches up to `seq` are durable (sabha_engine_persisted).
 * Returns true when what this node holds durably changed: a leader should
 * count itself again. */
bool replog_persisted(struct replog *rl, uint64_t seq);

/* Replaces the log up to `index` (<= applied) with a snapshot. */
int replog_compact(struct replog *rl, uint64_t index, const void *data,
                   size_t size);

/* Offers a snapshot chunk. Returns 1 when the snapshot is complete (then
 * call replog_install_snapshot), 0 when more is expected; *received says how
 * many bytes are held, for the acknowledgement. */
int replog_snapshot_chunk(struct replog *rl, const struct sabha_msg *m,
                          uint64_t *received);
/* Whether replog_snapshot_chunk would take the chunk: the next bytes of the
 * transfer under way, or the first bytes of a new one. */
bool replog_chunk_fits(const struct replog *rl, const struct sabha_msg *m);
/* Installs the completed incoming snapshot. With `keep_matching` (Raft), log
 * entries after the snapshot survive only if the log holds the snapshot's
 * last entry with its term; without it (Paxos), they always survive. */
void replog_install_snapshot(struct replog *rl, bool keep_matching);

int replog_entry(const struct replog *rl, uint64_t index,
                 struct sabha_entry *out);

#endif
