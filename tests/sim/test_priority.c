/* Preferred leaders in the simulator (the node runtime's prefer_leader):
 * with node 3 preferred, leadership ends on node 3 under both replicated
 * log engines, and stays there; with equal priorities (none given, or all
 * the same) no leader ever starts a transfer for preference; and with
 * priorities under every fault, every checker still passes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../unit/support/check.h"
#include "node/runtime.h"
#include "sim/sim.h"
#include "sim_run_checked.h"

/* Runs one simulation of `protocol`; false (and a line on stderr) if it
 * could not run or a check failed. */
static bool run(const char *protocol, uint32_t n_nodes, uint64_t seed,
                uint32_t faults, const uint32_t *priorities,
                struct sim_result *r) {
  struct sim_options o;
  sim_options_init(&o);
  o.protocol = protocol;
  o.n_nodes = n_nodes;
  o.n_ops = 300;
  o.seed = seed;
  o.faults = faults;
  o.priorities = priorities;
  return sim_run_checked(&o, r);
}

static void fill(uint32_t *prio, uint32_t value) {
  for (uint32_t i = 0; i <= SABHA_NODES_MAX; i++)
    prio[i] = value;
}

/* Node 3 preferred on a quiet network: the last leader of the run is 3, and
 * leadership moved for preference at most once per leader that was not 3
 * (no back and forth). */
static void moves_to_preferred(const char *protocol) {
  uint32_t prio[SABHA_NODES_MAX + 1];
  fill(prio, RT_PRIORITY_DEFAULT);
  prio[3] = 10;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    struct sim_result r;
    bool ok = run(protocol, 3, seed, 0, prio, &r);
    uint32_t last = r.n_leader_changes > 0
                        ? r.leader_changes[r.n_leader_changes - 1].node
                        : 0;
    uint64_t others = 0;
    for (size_t k = 0; k < r.n_leader_changes; k++)
      others += r.leader_changes[k].node != 3;
    uint64_t transfers = r.priority_transfers;
    sim_result_free(&r);
    CHECK(ok);
    CHECK(last == 3);
    CHECK(transfers <= others);
  }
}

/* Equal priorities, none given or all 7, under every fault: leadership
 * changes (crashes, partitions) but never for preference. */
static void equal_never_transfers(const char *protocol) {
  uint32_t prio[SABHA_NODES_MAX + 1];
  fill(prio, 7);
  for (uint64_t seed = 1; seed <= 4; seed++) {
    struct sim_result r;
    bool ok =
        run(protocol, 5, seed, SIM_FAULT_ALL, seed % 2 == 0 ? prio : NULL, &r);
    uint64_t transfers = r.priority_transfers;
    sim_result_free(&r);
    CHECK(ok);
    CHECK(transfers == 0);
  }
}

/* Distinct priorities (one 0, two sharing the top) under every fault, every
 * checker on: transfers happen and nothing breaks. */
static void faults_with_priorities(const char *protocol) {
  uint32_t prio[SABHA_NODES_MAX + 1];
  fill(prio, RT_PRIORITY_DEFAULT);
  prio[1] = 0;
  prio[2] = 3;
  prio[4] = 9;
  prio[5] = 9;
  uint64_t transfers = 0;
  for (uint64_t seed = 1; seed <= 4; seed++) {
    struct sim_result r;
    bool ok = run(protocol, 5, seed, SIM_FAULT_ALL, prio, &r);
    transfers += r.priority_transfers;
    sim_result_free(&r);
    CHECK(ok);
  }
  CHECK(transfers > 0);
}

static void raft_moves_to_preferred(void) {
  moves_to_preferred("raft");
}
static void multipaxos_moves_to_preferred(void) {
  moves_to_preferred("multipaxos");
}
static void raft_equal_never_transfers(void) {
  equal_never_transfers("raft");
}
static void multipaxos_equal_never_transfers(void) {
  equal_never_transfers("multipaxos");
}
static void raft_faults_with_priorities(void) {
  faults_with_priorities("raft");
}
static void multipaxos_faults_with_priorities(void) {
  faults_with_priorities("multipaxos");
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(raft_moves_to_preferred),
      TEST(multipaxos_moves_to_preferred),
      TEST(raft_equal_never_transfers),
      TEST(multipaxos_equal_never_transfers),
      TEST(raft_faults_with_priorities),
      TEST(multipaxos_faults_with_priorities),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
