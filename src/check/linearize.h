/* Linearizability checking of client histories.
 *
 * Wing & Gong's search (1993) with Lowe's memoization (2017): walk the
 * history in call order, try to linearize each pending operation at the
 * earliest point it can take effect, backtrack on contradiction, and never
 * revisit a (set of linearized operations, model state) pair. Histories are
 * split per partition (per key for the key-value model: Horn & Kroening's
 * P-compositionality) so each search stays small.
 *
 * Operations with status HIST_FAIL took no effect and are dropped. HIST_INFO
 * operations may have taken effect at any time after their call, or never:
 * a write is kept with an open end; a read is dropped (it returned nothing).
 *
 * The search is NP-complete in the worst case, so it runs under a budget of
 * steps. Running out yields LIN_UNKNOWN, which callers must count as a
 * failure, never as a pass. */
#ifndef SABHA_CHECK_LINEARIZE_H
#define SABHA_CHECK_LINEARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check/history.h"

/* A sequential specification. A state is one 64-bit word (for the key-value
 * model: the value id of one key, or HIST_NIL). */
struct lin_model {
  const char *name;
  uint64_t (*init)(void);
  /* Applies `op` to `state`. Returns true and sets *next when the op's
   * recorded output is what the specification gives from `state`. */
  bool (*step)(uint64_t state, const struct hist_op *op, uint64_t *next);
  /* Operations with different partition ids never affect each other. */
  uint64_t (*partition)(const struct hist_op *op);
  /* Optional (NULL: not used). Returns true and sets *state when `op` can
   * tell one state apart from the others; returns false when it treats all
   * states alike. Contract: on every state other than *state, `op` is
   * accepted by all or by none, and either moves all of them to one same
   * next state or leaves each unchanged. The checker uses it to treat states
   * that no remaining op can tell apart as one, which keeps writes of
   * unknown outcome (HIST_INFO) from multiplying the search. */
  bool (*observes)(const struct hist_op *op, uint64_t *state);
  /* Optional (NULL: not used). True when `op` leaves the state unchanged in
   * every state where step() accepts it (a read). Such an op, once it fits,
   * can take effect at once without loss: moving it earlier changes no
   * other op's state. So the checker places it there and tries no other
   * order, which cuts most of the backtracking on reads. */
  bool (*read_only)(const struct hist_op *op);
};

extern const struct lin_model lin_model_kv; /* put, get, cas on keys */

enum lin_result { LIN_OK = 0, LIN_VIOLATION = 1, LIN_UNKNOWN = 2 };

struct lin_report {
  enum lin_result result;
  uint64_t partition; /* the first partition with the verdict in `result` */
  size_t n_partitions;
  size_t n_ops;      /* operations considered (fail and info reads dropped) */
  uint64_t steps;    /* search steps taken, all partitions */
  char message[256]; /* for a violation: which operations could not fit;
                        for unknown: which partition ran out of steps */
};

/* Checks `ops` against `model` with at most `steps_max` search steps per
 * partition (0: a default of 10 million). Returns 0 and fills `report`, or
 * SABHA_ENOMEM; SABHA_EINVAL (with the reason in report->message) when the
 * input is not a history: an ok op that returns before its call, or an
 * unknown status or kind; SABHA_ETOOBIG past 2^30 ops.
 *
 * Real time: op a precedes op b only when a returns strictly before b is
 * called; intervals that touch (a.return_us == b.call_us) are concurrent.
 * The verdict is the worst over partitions (violation, then unknown, then
 * ok), and report->partition is the first partition, in increasing id order,
 * with that verdict. Checking stops at the first violation, so steps then
 * counts the partitions checked so far. Memory grows with the search: at
 * most one memo entry (a few dozen bytes) per step. No global state, so
 * checks may run in parallel. */
int lin_check(const struct hist_op *ops, size_t n_ops,
              const struct lin_model *model, uint64_t steps_max,
              struct lin_report *report);

#endif
