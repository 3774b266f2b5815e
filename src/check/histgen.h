/* Random histories for testing and benchmarking the checker: linearizable
 * ones, and ones with one known fault.
 *
 * A checker is only trusted once it has been seen both to pass what must
 * pass and to fail what must fail (STYLE.md). This generator supplies the
 * first kind in bulk: closed-loop clients run put, get, cas and incr
 * against one sequential key-value store, each operation taking effect at
 * one instant inside its [call, return] interval, and a value put with a
 * TTL vanishing at a random instant after its put, so every history it
 * writes is linearizable by construction (for lin_model_kv). Tests mutate
 * one operation to get the second kind, or ask the generator for a fault
 * that needs the run's inner timeline to place (hist_gen_with_fault).
 * Everything is drawn from the caller's seeded generator, so a seed names a
 * history. */
#ifndef SABHA_CHECK_HISTGEN_H
#define SABHA_CHECK_HISTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check/history.h"
#include "core/prng.h"

#define HIST_GEN_CLIENTS_MAX 64u
#define HIST_GEN_KEYS_MAX 256u

struct hist_gen_config {
  uint32_t n_clients;      /* 1..HIST_GEN_CLIENTS_MAX, all busy at once */
  uint32_t n_keys;         /* 1..HIST_GEN_KEYS_MAX: keys k0..k(n-1) */
  uint64_t latency_us_max; /* call to effect, and effect to return, each
                              uniform in [0, latency_us_max] */
  uint64_t think_us_max;   /* a client's pause between return and call */
  double chance_info;      /* an op's outcome is unknown (it may or may not
                              take effect) */
  double chance_fail;      /* an op definitely takes no effect */
  /* How often each kind is drawn, relative to the others. All zero means
   * put 4, get 4, cas 2, incr 0, drawn as before incr existed, so that a
   * seed names the same history it always did. */
  uint32_t weight_put, weight_get, weight_cas, weight_incr;
  double chance_ttl;   /* a put carries a TTL (0: none, and no draws) */
  uint64_t ttl_us_max; /* a TTL'd value vanishes at an instant uniform in
                          (effect, effect + 1 + ttl_us_max] of its put */
};

/* Fills ops[0..n_ops) with a linearizable history drawn from `prng`. Put and
 * cas write fresh value ids (v0, v1, ...), so without incr a read names the
 * write it saw and value ids at or above n_ops were never written; an incr
 * counts on from whatever number the key holds, so with incr numbers
 * repeat. Ops are stored in a shuffled order: the checker must not depend
 * on it. */
void hist_gen_linearizable(struct prng *prng,
                           const struct hist_gen_config *config,
                           struct hist_op *ops, size_t n_ops);

enum hist_gen_fault {
  HIST_GEN_FAULT_NONE = 0,
  /* The first ok incr past the middle of the run takes effect twice (the
   * key counts 2 on) but reports one count, as a retried write applied
   * again would. */
  HIST_GEN_FAULT_INCR_TWICE = 1,
  /* The first ok get past the middle of the run that can, reads back a
   * value that has expired: the key's last write was an ok put with TTL,
   * and an ok get called after that put returned read nil and returned
   * before this get was called. */
  HIST_GEN_FAULT_RESURRECT = 2,
};

/* As hist_gen_linearizable(), with `fault` injected once if the run gives
 * it a chance. Returns true when the history it wrote is certainly not
 * linearizable because of the fault:
 * - incr twice: a later ok get or incr of the key saw the extra count
 *   before any other write, and the key saw no put or cas and no incr of
 *   unknown outcome in the whole run (either could explain the count);
 * - resurrect: the key saw no incr in the whole run (counting from nil, one
 *   could reach the same number).
 * Returns false (the history may or may not be linearizable) otherwise, and
 * always for HIST_GEN_FAULT_NONE. */
bool hist_gen_with_fault(struct prng *prng,
                         const struct hist_gen_config *config,
                         enum hist_gen_fault fault, struct hist_op *ops,
                         size_t n_ops);

#endif
