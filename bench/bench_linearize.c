/* bench_linearize: how long the linearizability checker takes on a history
 * the size the simulator produces.
 *
 * A seeded run of closed-loop clients (check/histgen.h) gives a history
 * that is linearizable by construction; the checker must say so, and the
 * time it takes is the figure. The history is checked several times and the
 * median and minimum wall times reported, so that one noisy run does not set
 * the number. Output is `key: value` lines for scripts to collect; a wrong
 * verdict exits nonzero. No timing is asserted here: benchmarks measure,
 * tests decide.
 *
 *   bench_linearize [--seed N] [--ops N] [--clients N] [--keys N]
 *                   [--info P] [--fail P] [--reps N]
 *                   [--incr W] [--ttl P] [--ttl-us N]
 *
 * --incr W draws incr W times as often as a tenth of the ops (put 4, get 4,
 * cas 2, incr W); --ttl P gives each put a TTL with chance P, its value
 * vanishing within --ttl-us microseconds (default 2000). Without them the
 * history is the one the same seed always gave. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "check/histgen.h"
#include "check/history.h"
#include "check/linearize.h"
#include "core/prng.h"
#include "core/stats.h"
#include "sabha/error.h"

#ifndef SABHA_COMMIT
#define SABHA_COMMIT "unknown"
#endif

#define REPS_MAX 101

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int double_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int usage(void) {
  fprintf(stderr, "usage: bench_linearize [--seed N] [--ops N] [--clients N] "
                  "[--keys N] [--info P] [--fail P] [--reps N] [--incr W] "
                  "[--ttl P] [--ttl-us N]\n");
  return 2;
}

int main(int argc, char **argv) {
  uint64_t seed = 1;
  size_t n_ops = 3000;
  size_t reps = 5;
  struct hist_gen_config config = {
      .n_clients = 10,
      .n_keys = 8,
      .latency_us_max = 1000,
      .think_us_max = 200,
      .chance_info = 0.0,
      .chance_fail = 0.0,
      .ttl_us_max = 2000,
  };
  for (int i = 1; i < argc; i++) {
    if (i + 1 == argc)
      return usage();
    const char *flag = argv[i], *arg = argv[++i];
    if (strcmp(flag, "--seed") == 0)
      seed = strtoull(arg, NULL, 10);
    else if (strcmp(flag, "--ops") == 0)
      n_ops = (size_t)strtoull(arg, NULL, 10);
    else if (strcmp(flag, "--clients") == 0)
      config.n_clients = (uint32_t)strtoul(arg, NULL, 10);
    else if (strcmp(flag, "--keys") == 0)
      config.n_keys = (uint32_t)strtoul(arg, NULL, 10);
    else if (strcmp(flag, "--info") == 0)
      config.chance_info = strtod(arg, NULL);
    else if (strcmp(flag, "--fail") == 0)
      config.chance_fail = strtod(arg, NULL);
    else if (strcmp(flag, "--reps") == 0)
      reps = (size_t)strtoull(arg, NULL, 10);
    else if (strcmp(flag, "--incr") == 0)
      config.weight_incr = (uint32_t)strtoul(arg, NULL, 10);
    else if (strcmp(flag, "--ttl") == 0)
      config.chance_ttl = strtod(arg, NULL);
    else if (strcmp(flag, "--ttl-us") == 0)
      config.ttl_us_max = strtoull(arg, NULL, 10);
    else
      return usage();
  }
  if (n_ops == 0 || reps == 0 || reps > REPS_MAX || config.n_clients == 0 ||
      config.n_clients > HIST_GEN_CLIENTS_MAX || config.n_keys == 0 ||
      config.n_keys > HIST_GEN_KEYS_MAX)
    return usage();

  if (config.weight_incr > 0) {
    config.weight_put = 4;
    config.weight_get = 4;
    config.weight_cas = 2;
  }
  struct hist_op *ops = malloc(n_ops * sizeof *ops);
  if (ops == NULL) {
    fprintf(stderr, "bench_linearize: out of memory\n");
    return 1;
  }
  struct prng prng;
  prng_seed(&prng, seed);
  hist_gen_linearizable(&prng, &config, ops, n_ops);

  double wall_ms[REPS_MAX];
  struct lin_report report;
  for (size_t r = 0; r < reps; r++) {
    double start_ms = now_ms();
    int rc = lin_check(ops, n_ops, &lin_model_kv, 0, &report);
    wall_ms[r] = now_ms() - start_ms;
    if (rc != 0) {
      fprintf(stderr, "bench_linearize: %s\n", sabha_strerror(rc));
      free(ops);
      return 1;
    }
  }
  qsort(wall_ms, reps, sizeof wall_ms[0], double_cmp);

  struct utsname machine;
  if (uname(&machine) != 0)
    strcpy(machine.machine, "unknown");
  static const char *const results[] = {"ok", "violation", "unknown"};
  printf("bench: linearize\n");
  printf("commit: %s\n", SABHA_COMMIT);
  printf("machine: %s %s\n", machine.sysname, machine.machine);
  printf("seed: %" PRIu64 "\n", seed);
  printf("ops: %zu\n", n_ops);
  printf("clients: %" PRIu32 "\n", config.n_clients);
  printf("keys: %" PRIu32 "\n", config.n_keys);
  printf("chance_info: %g\n", config.chance_info);
  printf("chance_fail: %g\n", config.chance_fail);
  printf("weight_incr: %" PRIu32 "\n", config.weight_incr);
  printf("chance_ttl: %g\n", config.chance_ttl);
  printf("ttl_us_max: %" PRIu64 "\n", config.ttl_us_max);
  printf("result: %s\n", results[report.result]);
  printf("ops_checked: %zu\n", report.n_ops);
  printf("partitions: %zu\n", report.n_partitions);
  printf("steps: %" PRIu64 "\n", report.steps);
  printf("reps: %zu\n", reps);
  printf("wall_ms: %.3f\n", stats_median(wall_ms, reps));
  printf("wall_ms_min: %.3f\n", wall_ms[0]);
  free(ops);
  return report.result == LIN_OK ? 0 : 1;
}
