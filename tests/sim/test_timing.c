/* Adaptive timing in the simulator (src/node/timing.c): a latency spike on
 * every link raises every node's election timeout well above the floor,
 * and once the links are fast again the timeouts come back down to it, for
 * both replicated-log engines, with every checker on. The same run with
 * the timing-ratchet bug (the timing never comes down) fails the "comes
 * back down" check, so the check can fail; fixed timing reports no
 * figures. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../unit/support/check.h"
#include "node/runtime.h"
#include "sim/sim.h"
#include "sim_run_checked.h"

/* Links of 0.5 ms; from 1 s to 4 s, 100 ms each way with 10 ms of jitter
 * (a round trip of about 200 ms); fast again after. The clients run for
 * 10 s, so the run goes on for seconds after the spike. */
static const struct sim_script_event spike[] = {
    {.at_ms = 1000,
     .op = SIM_SCRIPT_LINK,
     .latency_us = 100000,
     .jitter_us = 10000},
    {.at_ms = 4000, .op = SIM_SCRIPT_LINK, .latency_us = 500},
};

static bool run(const char *protocol, uint64_t seed, uint32_t host_bugs,
                uint8_t timing, struct sim_result *r) {
  struct sim_options o;
  sim_options_init(&o);
  o.protocol = protocol;
  o.n_nodes = 5;
  o.n_ops = 5000;
  o.seed = seed;
  o.faults = 0;
  o.host_bugs = host_bugs;
  o.timing = timing;
  o.script = spike;
  o.n_script = sizeof spike / sizeof spike[0];
  o.client_time_ms = 10000;
  bool ok = sim_run_checked(&o, r);
  fprintf(stderr,
          "%s seed %" PRIu64 "%s: election timeout first %u ms, peak %u ms, "
          "end %u ms; %" PRIu64 " timing changes, %" PRIu64
          " elections, %" PRIu64 " ms\n",
          protocol, seed, host_bugs ? " (timing-ratchet)" : "",
          r->timing_election_ms_first, r->timing_election_ms_peak,
          r->timing_election_ms_end, r->timing_changes, r->elections,
          r->sim_time_us / 1000);
  return ok;
}

/* The figures of an adaptive run: raised by the spike (a 200 ms round trip
 * calls for a timeout of a second or more, five RTOs) and back at the
 * floor (RT_TIMING_FLOOR_MS_DEFAULT) at the end. */
static bool raised(const struct sim_result *r) {
  return r->timing_election_ms_peak >= 1000;
}
static bool came_down(const struct sim_result *r) {
  return r->timing_election_ms_end > 0 &&
         r->timing_election_ms_end <= RT_TIMING_FLOOR_MS_DEFAULT;
}

static const char *const protocols[] = {"raft", "multipaxos"};

static void rises_and_falls(void) {
  for (size_t k = 0; k < 2; k++)
    for (uint64_t seed = 1; seed <= 2; seed++) {
      struct sim_result r;
      bool ok = run(protocols[k], seed, 0, RT_TIMING_ADAPTIVE, &r);
      CHECK(ok);
      CHECK(r.timing_election_ms_first == 150); /* sabha_config's default */
      CHECK(raised(&r));
      CHECK(came_down(&r));
      CHECK(r.timing_changes >= 2);
      sim_result_free(&r);
    }
}

/* With the ratchet bug the spike still raises the timing, but the end of
 * the run finds it at its peak: came_down() says so. */
static void ratchet_is_caught(void) {
  for (size_t k = 0; k < 2; k++) {
    struct sim_result r;
    bool ok = run(protocols[k], 1, SIM_HOST_BUG_TIMING_RATCHET,
                  RT_TIMING_ADAPTIVE, &r);
    CHECK(ok); /* a liveness bug at worst: no safety checker fires */
    CHECK(raised(&r));
    CHECK(!came_down(&r));
    sim_result_free(&r);
  }
}

/* Fixed timing: no measurements, no figures. */
static void fixed_reports_nothing(void) {
  struct sim_result r;
  bool ok = run("raft", 1, 0, RT_TIMING_FIXED, &r);
  CHECK(ok);
  CHECK(r.timing_election_ms_peak == 0 && r.timing_changes == 0);
  sim_result_free(&r);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(rises_and_falls),
      TEST(ratchet_is_caught),
      TEST(fixed_reports_nothing),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
