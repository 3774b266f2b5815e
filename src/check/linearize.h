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

/* The most next states one step may have (see lin_model.step). */
#define LIN_NEXT_MAX 2
/* The most states one op may tell apart (see lin_model.observes), and the
 * counts that stand for "any state from any other" and "a shift". */
#define LIN_OBS_MAX 3
#define LIN_OBS_ALL 255u
#define LIN_OBS_SHIFT 254u
/* Merge classes (lin_model.merge_class): how many, and "never merged". */
#define LIN_CLASSES_MAX 4
#define LIN_CLASS_NONE 255u
/* Twin ids (lin_model.twin) are below this. */
#define LIN_TWINS_MAX 16

/* A sequential specification. A state is one 64-bit word (for the key-value
 * model: one key's value and whether it may expire; see lin_model_kv).
 *
 * "Covers": state a covers state b when every sequence of ops the
 * specification accepts from b it also accepts from a (with the same
 * outputs). Every state covers itself; the contracts below lean on it. */
struct lin_model {
  const char *name;
  uint64_t (*init)(void);
  /* Applies `op` to `state`: writes into next[] the states the op can lead
   * to when its recorded output is what the specification gives from
   * `state`, and returns how many (0: the op cannot take effect here; at
   * most LIN_NEXT_MAX). A deterministic specification returns 0 or 1. A
   * nondeterministic one may leave out a next state that another one it
   * returns covers, and, for an op that is not HIST_OK (which need never
   * take effect), one that `state` itself covers. */
  unsigned (*step)(uint64_t state, const struct hist_op *op,
                   uint64_t next[LIN_NEXT_MAX]);
  /* Operations with different partition ids never affect each other. */
  uint64_t (*partition)(const struct hist_op *op);
  /* Optional (NULL: not used). Writes into states[] the states `op` can
   * tell apart from the others and returns how many (at most LIN_OBS_MAX;
   * 0 when it treats all states alike), LIN_OBS_SHIFT for a shift (below),
   * or LIN_OBS_ALL when it may tell any state from any other. Contract: on
   * the states of one merge class (see `merge_class`) that it does not
   * list, `op` is accepted by all or by none, and either gives all of them
   * the same next states or leaves each unchanged. A shift lists nothing
   * and accepts every state; it takes each state s of a class to s + 1 or
   * s + 2 (as numbers, wrapping past 2^64 - 1 to 0) of the same class, or
   * leaves it unchanged, and may besides lead states of the class to
   * further next states, the same for all of them. The checker uses this to
   * treat the states of a class that no remaining op can tell apart as one,
   * which keeps writes of unknown outcome (HIST_INFO) from multiplying the
   * search: with r shifts remaining, state s counts as told apart when a
   * remaining op lists any of s, s + 1, ..., s + 2r (wrapping). It merges
   * nothing while an op that observes all remains. */
  unsigned (*observes)(const struct hist_op *op, uint64_t states[LIN_OBS_MAX]);
  /* Optional (NULL: every state is in class 0). The merge class of a
   * state, below LIN_CLASSES_MAX, or LIN_CLASS_NONE for a state never to
   * be merged with another. Only states of one class are merged. */
  unsigned (*merge_class)(uint64_t state);
  /* Optional (NULL: any class may occur). The merge classes, as a mask of
   * 1 << class, that `op` may lead into from a state of another class.
   * Classes that neither init()'s state nor any op of a partition leads
   * into never occur there, and the checker ignores what ops observe of
   * them (for the kv model: without a ttl put, no value may expire). */
  unsigned (*classes)(const struct hist_op *op);
  /* Optional (NULL: not used). For an op that is not HIST_OK: a number
   * from 1 to LIN_TWINS_MAX - 1 that it shares with the other such ops of
   * its partition that act on every state exactly as it does (same next
   * states, same observations), or 0. Which of several twins took effect
   * cannot matter, so the checker applies them in the order of their calls
   * only, which keeps many twins (say, incrs of unknown outcome) from
   * multiplying the search by every subset of them. */
  unsigned (*twin)(const struct hist_op *op);
  /* Optional (NULL: not used). True when `op` never adds to what the state
   * can do: wherever step() accepts it, it has one next state, covered by
   * the state before (a read; for a deterministic specification, one that
   * leaves the state unchanged). Where such an op also leaves the current
   * state exactly as it is, it can take effect at once without loss:
   * moving it earlier changes no other op's state, and leaving it out of
   * its later place leaves a state that covers the one it would have left.
   * So the checker places it there and tries no other order, which cuts
   * most of the backtracking on reads. Where it would change the state,
   * the checker treats it as any other op. */
  bool (*read_only)(const struct hist_op *op);
  /* Optional (NULL: every op is). Returns NULL when the model can judge
   * `op`, else a short reason why not (lin_check then fails with
   * SABHA_EINVAL). */
  const char *(*invalid)(const struct hist_op *op);
};

/* The key-value model: put, get, cas and incr on keys, with expiry.
 *
 * A key holds nothing (HIST_NIL) or a value, an integer from 0 to 2^63 - 1;
 * value ids and counters are the same numbers. Per kind, for an op with
 * status HIST_OK (outputs as recorded in struct hist_op):
 * - put: the key holds `value` (HIST_NIL: the key is deleted). With
 *   HIST_TTL the value may expire; without, it does not.
 * - get: `value` is what the key held, or HIST_NIL.
 * - cas: swaps to `value` exactly when the key holds `expected`
 *   (HIST_NIL: when it holds nothing); `output` is 1 if it swapped. A swap
 *   clears any expiry, as a put without HIST_TTL does.
 * - incr: a missing key counts as 0; the key holds the old value plus 1,
 *   which is `value`, and keeps its expiry. An incr on 2^63 - 1 fails and
 *   changes nothing (no ok incr can return past it).
 * - append: as an incr, but nothing it returns is recorded (history.h
 *   numbers a value so that an append counts it one up).
 * Expiry: a value written with HIST_TTL may vanish, the key then holding
 * nothing, at any instant after the put takes effect, or never: the
 * checker does not know the cluster's clock, so it sets no lower or upper
 * bound. But it vanishes at most once: it comes back only through a write.
 * Ops record what they saw, and that says when it vanished: a get of
 * HIST_NIL, a cas that swaps on expected HIST_NIL, a cas that fails on
 * expected = the value, an incr that returns 1: each says it had gone.
 * Status HIST_FAIL: the op took no effect (dropped). HIST_INFO: it took
 * effect once, at some instant after its call, or not at all, never twice
 * (a get of unknown outcome is dropped; `value` of an info incr and
 * `output` of an info cas are ignored). A put with HIST_TTL must write a
 * value below 2^62 (lin_check rejects others), so that a key that may
 * expire fits the model's state word. */
extern const struct lin_model lin_model_kv;

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
 * input is not a history: an ok op that returns before its call, an
 * unknown status, kind or flag, HIST_TTL on an op that is not a put or on
 * a put of HIST_NIL, or an op the model's `invalid` rejects; SABHA_ETOOBIG
 * past 2^30 ops.
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
