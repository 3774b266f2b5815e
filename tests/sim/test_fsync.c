/* Where fsyncs run (rt_config.fsync, src/node/runtime.c "the disk"), in
 * the simulator, for both replicated-log engines with every checker on.
 * In auto, one closed-loop client (nothing arrives while a node syncs)
 * keeps most fsyncs on the loop, and 64 clients (batches arrive during
 * every fsync) send most to the disk thread; a run under the standard
 * faults takes both paths. Loop and thread send every fsync one way. The
 * shares are counts of a seeded run, not timings: an auto rule that
 * always chose one path fails one of the first two checks. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../unit/support/check.h"
#include "node/runtime.h"
#include "sim/sim.h"
#include "sim_run_checked.h"

static bool run(const char *protocol, uint64_t seed, uint32_t clients,
                uint32_t faults, enum rt_fsync_mode mode,
                struct sim_result *r) {
  struct sim_options o;
  sim_options_init(&o);
  o.protocol = protocol;
  o.n_nodes = 3;
  o.n_clients = clients;
  o.n_ops = 3000;
  o.seed = seed;
  o.faults = faults;
  o.fsync = (uint8_t)mode;
  bool ok = sim_run_checked(&o, r);
  fprintf(stderr,
          "%s seed %" PRIu64 ", %u clients, fsync mode %d: %" PRIu64
          " fsyncs, %" PRIu64 " on the loop\n",
          protocol, seed, clients, (int)mode, r->fsyncs, r->fsyncs_loop);
  return ok && r->fsyncs > 0;
}

static const char *const protocols[] = {"raft", "multipaxos"};
static const uint64_t seeds[] = {1, 3};

/* One client: at least three quarters of the fsyncs on the loop. */
static void auto_low_load_syncs_on_the_loop(void) {
  for (size_t k = 0; k < 2; k++)
    for (size_t i = 0; i < 2; i++) {
      struct sim_result r;
      CHECK(run(protocols[k], seeds[i], 1, 0, RT_FSYNC_AUTO, &r));
      CHECK(4 * r.fsyncs_loop >= 3 * r.fsyncs);
      sim_result_free(&r);
    }
}

/* 64 clients: at least three quarters on the disk thread. */
static void auto_high_load_syncs_on_the_thread(void) {
  for (size_t k = 0; k < 2; k++)
    for (size_t i = 0; i < 2; i++) {
      struct sim_result r;
      CHECK(run(protocols[k], seeds[i], 64, 0, RT_FSYNC_AUTO, &r));
      CHECK(4 * (r.fsyncs - r.fsyncs_loop) >= 3 * r.fsyncs);
      sim_result_free(&r);
    }
}

/* The default clients under every fault: both paths, checkers passing. */
static void auto_under_faults_takes_both(void) {
  for (size_t k = 0; k < 2; k++) {
    struct sim_result r;
    CHECK(run(protocols[k], 1, 5, SIM_FAULT_ALL, RT_FSYNC_AUTO, &r));
    CHECK(r.fsyncs_loop > 0 && r.fsyncs_loop < r.fsyncs);
    sim_result_free(&r);
  }
}

static void fixed_modes_take_one_path(void) {
  struct sim_result r;
  CHECK(run("raft", 1, 64, 0, RT_FSYNC_LOOP, &r));
  CHECK(r.fsyncs_loop == r.fsyncs);
  sim_result_free(&r);
  CHECK(run("raft", 1, 1, 0, RT_FSYNC_THREAD, &r));
  CHECK(r.fsyncs_loop == 0);
  sim_result_free(&r);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(auto_low_load_syncs_on_the_loop),
      TEST(auto_high_load_syncs_on_the_thread),
      TEST(auto_under_faults_takes_both),
      TEST(fixed_modes_take_one_path),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
