/* For the C tests of the simulator: one seeded run, with its failure, if
 * any, told on stderr (the seed and the checker's words, to replay it). */
#ifndef SABHA_TESTS_SIM_RUN_CHECKED_H
#define SABHA_TESTS_SIM_RUN_CHECKED_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sim/sim.h"

/* Runs `o` into `r` (which the caller frees with sim_result_free, also on
 * false). False if the run could not start or a check failed. */
static inline bool sim_run_checked(const struct sim_options *o,
                                   struct sim_result *r) {
  char err[256];
  memset(r, 0, sizeof *r);
  if (sim_run(o, r, err, sizeof err) != 0) {
    fprintf(stderr, "%s seed %" PRIu64 ": %s\n", o->protocol, o->seed, err);
    return false;
  }
  if (r->failed)
    fprintf(stderr, "%s seed %" PRIu64 ": %s\n", o->protocol, o->seed,
            r->failure);
  return !r->failed;
}

#endif
