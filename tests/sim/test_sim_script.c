/* Tests of the simulator through its C API (src/sim/sim.h): scripted fault
 * schedules, determinism, option checking, and the ack-before-fsync host
 * bug being caught by a scripted power loss. */
#include <stdio.h>
#include <string.h>

#include "sabha/error.h"
#include "sim/sim.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static void options(struct sim_options *o, uint64_t seed) {
  sim_options_init(o);
  o->protocol = "raft";
  o->n_nodes = 5;
  o->n_ops = 400;
  o->seed = seed;
  o->faults = 0; /* only the script breaks things */
}

/* Runs and reports a failure on stderr; returns whether the run failed. */
static bool run(const struct sim_options *o, struct sim_result *r) {
  char err[256];
  int rv = sim_run(o, r, err, sizeof err);
  CHECK(rv == 0);
  if (rv != 0)
    fprintf(stderr, "sim_run: %s\n", err);
  else if (r->failed)
    fprintf(stderr, "seed %llu: %s\n", (unsigned long long)o->seed, r->failure);
  return rv == 0 && r->failed;
}

static void sim_scripted_leader_crash_and_power_loss_lose_nothing(void) {
  struct sim_script_event script[8];
  memset(script, 0, sizeof script);
  script[0] = (struct sim_script_event){
      .at_ms = 400, .op = SIM_SCRIPT_CRASH, .node = 0 /* the leader */};
  script[1] =
      (struct sim_script_event){.at_ms = 1000, .op = SIM_SCRIPT_POWER_LOSS};
  for (uint32_t i = 0; i < 5; i++)
    script[2 + i] = (struct sim_script_event){
        .at_ms = 1100 + 30 * i, .op = SIM_SCRIPT_RESTART, .node = i + 1};
  struct sim_options o;
  options(&o, 1);
  /* Enough operations that the workload still runs when the script's
   * power loss and restarts come (past 1.2 s of simulated time). */
  o.n_ops = 1000;
  o.script = script;
  o.n_script = 7;
  struct sim_result r;
  CHECK(!run(&o, &r));
  CHECK(r.crashes >= 5 && r.elections >= 2);
  CHECK(r.ops_ok + r.ops_failed + r.ops_indeterminate == 1000);
  CHECK(r.ops_ok > 750);
  sim_result_free(&r);
}

static void sim_scripted_partition_slowness_and_drift_stay_safe(void) {
  struct sim_script_event script[6];
  memset(script, 0, sizeof script);
  script[0].at_ms = 300;
  script[0].op = SIM_SCRIPT_PARTITION;
  script[0].group[0] = script[0].group[1] = 1; /* {1,2} | {3,4,5} */
  script[1] = (struct sim_script_event){.at_ms = 500,
                                        .op = SIM_SCRIPT_SLOW,
                                        .node = 0,
                                        .delay_us = 3000,
                                        .fsync_factor = 10};
  script[2] = (struct sim_script_event){.at_ms = 700,
                                        .op = SIM_SCRIPT_CLOCK,
                                        .node = 3,
                                        .rate = 1.2,
                                        .jump_ms = 500};
  script[3] = (struct sim_script_event){.at_ms = 900,
                                        .op = SIM_SCRIPT_LINK,
                                        .latency_us = 5000,
                                        .jitter_us = 2000,
                                        .loss = 0.05};
  script[4] = (struct sim_script_event){
      .at_ms = 1200, .op = SIM_SCRIPT_BLOCK, .node = 4, .peer = 5};
  script[5] = (struct sim_script_event){.at_ms = 3000, .op = SIM_SCRIPT_HEAL};
  for (uint64_t seed = 1; seed <= 3; seed++) {
    struct sim_options o;
    options(&o, seed);
    o.script = script;
    o.n_script = 6;
    struct sim_result r;
    CHECK(!run(&o, &r));
    CHECK(r.ops_ok > 0);
    sim_result_free(&r);
  }
}

static void sim_ack_before_fsync_is_caught_by_power_loss(void) {
  /* Power loss of every node every 300 ms: a host that acknowledged what
   * it had not synced loses acknowledged writes. */
  struct sim_script_event script[40];
  memset(script, 0, sizeof script);
  size_t n = 0;
  for (uint64_t t = 300; n + 2 <= 40; t += 300) {
    script[n++] =
        (struct sim_script_event){.at_ms = t, .op = SIM_SCRIPT_POWER_LOSS};
    for (uint32_t i = 0; i < 5 && n < 40; i++)
      script[n++] = (struct sim_script_event){
          .at_ms = t + 20, .op = SIM_SCRIPT_RESTART, .node = i + 1};
  }
  int caught = 0, correct_failed = 0;
  for (uint64_t seed = 1; seed <= 10; seed++) {
    struct sim_options o;
    options(&o, seed);
    o.script = script;
    o.n_script = n;
    struct sim_result r;
    correct_failed += run(&o, &r);
    sim_result_free(&r);
    o.host_bugs = SIM_HOST_BUG_ACK_BEFORE_FSYNC;
    char err[256];
    CHECK(sim_run(&o, &r, err, sizeof err) == 0);
    caught += r.failed;
    sim_result_free(&r);
  }
  CHECK(correct_failed == 0);
  CHECK(caught > 0);
  printf("ack-before-fsync caught in %d of 10 seeds\n", caught);
}

static void sim_same_options_give_same_run(void) {
  struct sim_options o;
  options(&o, 11);
  o.faults = SIM_FAULT_ALL;
  struct sim_result a, b, c;
  CHECK(!run(&o, &a));
  CHECK(!run(&o, &b));
  o.seed = 12;
  CHECK(!run(&o, &c));
  CHECK(a.trace_hash == b.trace_hash && a.events == b.events);
  CHECK(a.sim_time_us == b.sim_time_us && a.n_history == b.n_history);
  CHECK(memcmp(a.history, b.history, a.n_history * sizeof *a.history) == 0);
  CHECK(a.trace_hash != c.trace_hash);
  sim_result_free(&a);
  sim_result_free(&b);
  sim_result_free(&c);
}

static void sim_options_are_checked(void) {
  struct sim_options o;
  struct sim_result r;
  char err[256];
  options(&o, 1);
  o.n_nodes = 0;
  CHECK(sim_run(&o, &r, err, sizeof err) == SABHA_EINVAL);
  options(&o, 1);
  o.protocol = "nope";
  CHECK(sim_run(&o, &r, err, sizeof err) == SABHA_EPROTO);
  struct sim_script_event bad = {.at_ms = 1, .op = SIM_SCRIPT_CRASH, .node = 9};
  options(&o, 1);
  o.script = &bad;
  o.n_script = 1;
  CHECK(sim_run(&o, &r, err, sizeof err) == SABHA_EINVAL);
  uint32_t mask;
  CHECK(sim_faults_parse("crash,loss", &mask, err, sizeof err) == 0);
  CHECK(mask == (SIM_FAULT_CRASH | SIM_FAULT_LOSS));
  char names[128];
  sim_faults_format(mask, names, sizeof names);
  CHECK(strcmp(names, "crash,loss") == 0);
  CHECK(sim_faults_parse("crash,lost", &mask, err, sizeof err) == SABHA_EINVAL);
  /* Membership changes are not in "all"; "all,membership" adds them. */
  CHECK(sim_faults_parse("all,membership", &mask, err, sizeof err) == 0);
  CHECK(mask == (SIM_FAULT_ALL | SIM_FAULT_MEMBERSHIP));
  sim_faults_format(mask, names, sizeof names);
  CHECK(strcmp(names, "all,membership") == 0);
  CHECK(sim_faults_parse("all", &mask, err, sizeof err) == 0);
  CHECK(!(mask & SIM_FAULT_MEMBERSHIP));
  CHECK(sim_faults_parse("membership", &mask, err, sizeof err) == 0);
  CHECK(mask == SIM_FAULT_MEMBERSHIP);
  uint32_t engine_bugs, host_bugs;
  CHECK(sim_bug_parse("stale-commit", &engine_bugs, &host_bugs, err,
                      sizeof err) == 0);
  CHECK(engine_bugs == SABHA_BUG_STALE_COMMIT && host_bugs == 0);
  CHECK(sim_bug_parse("nope", &engine_bugs, &host_bugs, err, sizeof err) ==
        SABHA_EINVAL);
}

int main(void) {
  sim_scripted_leader_crash_and_power_loss_lose_nothing();
  sim_scripted_partition_slowness_and_drift_stay_safe();
  sim_ack_before_fsync_is_caught_by_power_loss();
  sim_same_options_give_same_run();
  sim_options_are_checked();
  if (failures > 0) {
    fprintf(stderr, "test_sim_script: %d checks failed\n", failures);
    return 1;
  }
  printf("test_sim_script: ok\n");
  return 0;
}
