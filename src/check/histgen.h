/* Random linearizable histories, for testing and benchmarking the checker.
 *
 * A checker is only trusted once it has been seen both to pass what must
 * pass and to fail what must fail (STYLE.md). This generator supplies the
 * first kind in bulk: closed-loop clients run put, get and cas against one
 * sequential key-value store, each operation taking effect at one instant
 * inside its [call, return] interval, so every history it writes is
 * linearizable by construction. Tests then mutate one operation to get the
 * second kind. Everything is drawn from the caller's seeded generator, so a
 * seed names a history. */
#ifndef SABHA_CHECK_HISTGEN_H
#define SABHA_CHECK_HISTGEN_H

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
};

/* Fills ops[0..n_ops) with a linearizable history drawn from `prng`. Put and
 * cas write fresh value ids (v0, v1, ...), so a read names the write it saw
 * and value ids at or above n_ops were never written. Ops are stored in a
 * shuffled order: the checker must not depend on it. */
void hist_gen_linearizable(struct prng *prng,
                           const struct hist_gen_config *config,
                           struct hist_op *ops, size_t n_ops);

#endif
