/* Multi-Paxos scenario tests (Paxos Made Simple §2-3; Howard & Mortier 2020)
 * with the synchronous test cluster. */
#include <string.h>

#include "tcluster.h"

static void scripted(struct sabha_config *cfg) {
  cfg->pre_vote = false; /* a ticked node goes straight to phase 1 */
  cfg->check_quorum = false;
}

static void no_adopt(struct sabha_config *cfg) {
  scripted(cfg);
  cfg->bugs = SABHA_BUG_NO_ADOPT;
}

static void production(struct sabha_config *cfg) { (void)cfg; }

static bool entry_is(struct tcluster *tc, uint32_t id, uint64_t index,
                     const char *text) {
  struct sabha_entry e;
  if (sabha_engine_entry(tc->node[id].e, index, &e) != 0)
    return false;
  return e.size_bytes == strlen(text) && memcmp(e.data, text, e.size_bytes) == 0;
}

/* §3: a single acceptor is a majority of one. */
static void mp_single_node_commits(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 1, NULL);
  CHECK(tc_elect(&tc, 1));
  CHECK(tc_propose(&tc, 1, "a") == 0);
  CHECK(tc_propose(&tc, 1, "b") == 0);
  CHECK(tc_status(&tc, 1).commit == 2 && tc_status(&tc, 1).applied == 2);
  tc_free(&tc);
}

/* §3: in steady state the leader runs phase 2 only; every node learns. */
static void mp_leader_replicates_and_all_learn(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 3, scripted);
  CHECK(tc_elect(&tc, 1));
  for (int i = 0; i < 20; i++)
    CHECK(tc_propose(&tc, 1, "x") == 0);
  tc_tick_all(&tc, 60);
  for (uint32_t id = 1; id <= 3; id++)
    CHECK(tc_status(&tc, id).applied == 20);
  CHECK(tc.node[1].applied_sum == tc.node[3].applied_sum);
  CHECK(tc.conflicts == 0 && tc.two_leaders == 0);
  tc_free(&tc);
}

/* §2.2 (P2c) and Howard & Mortier §3: a new leader adopts, per slot, the
 * value with the highest ballot among the promises, so a chosen value
 * survives the leader that chose it. Returns the number of conflicts. */
static uint32_t adopt_case(void (*tweak)(struct sabha_config *),
                           bool *adopted) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 3, tweak);
  if (!tc_elect(&tc, 1))
    return 1000;
  tc_cut(&tc, 1, 3);
  tc_propose(&tc, 1, "chosen"); /* accepted by 1 and 2: a majority */
  tc_tick(&tc, 1, 1);
  tc_crash(&tc, 1);
  tc_heal(&tc);
  if (!tc_elect(&tc, 3))
    return 1000;
  tc_tick_all(&tc, 100);
  *adopted = entry_is(&tc, 3, 1, "chosen");
  uint32_t conflicts = tc.conflicts + tc.two_leaders;
  tc_free(&tc);
  return conflicts;
}

static void mp_new_leader_adopts_chosen_value(void) {
  bool adopted = false;
  CHECK(adopt_case(scripted, &adopted) == 0);
  CHECK(adopted);
}

static void mp_no_adopt_bug_loses_chosen_value(void) {
  bool adopted = true;
  uint32_t conflicts = adopt_case(no_adopt, &adopted);
  CHECK(!adopted);
  CHECK(conflicts > 0 && conflicts < 1000);
}

/* §3: slots nobody accepted are filled with no-ops, so the log has no holes;
 * values accepted by a minority may be adopted or replaced, never split. */
static void mp_partitioned_leader_minority_values_resolved(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 5, scripted);
  CHECK(tc_elect(&tc, 1));
  tc_isolate(&tc, 1);
  CHECK(tc_propose(&tc, 1, "minority") == 0);
  CHECK(tc_elect(&tc, 2));
  CHECK(tc_propose(&tc, 2, "majority") == 0);
  tc_heal(&tc);
  tc_tick_all(&tc, 500);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  for (uint32_t id = 1; id <= 5; id++) {
    CHECK(tc_status(&tc, id).applied == tc_status(&tc, leader).applied);
    CHECK(tc.node[id].applied_sum == tc.node[leader].applied_sum);
  }
  CHECK(tc.conflicts == 0 && tc.two_leaders == 0);
  tc_free(&tc);
}

/* The lease (the PreVote/CheckQuorum of Paxos): a node cut off from the
 * leader alone cannot depose it; a leader that loses the majority steps
 * down and the majority elects another. */
static void mp_flaky_link_keeps_leader(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 5, production);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  uint64_t ballot = tc_status(&tc, leader).term;
  uint32_t other = leader == 1 ? 2 : 1;
  tc_cut(&tc, leader, other);
  int commits = 0;
  for (int round = 0; round < 30; round++) {
    tc_tick_all(&tc, 100);
    if (tc_propose(&tc, tc_leader(&tc), "w") == 0)
      commits++;
  }
  CHECK(tc_leader(&tc) == leader && tc_status(&tc, leader).term == ballot);
  CHECK(commits == 30);
  tc_free(&tc);
}

static void mp_leader_without_majority_steps_down(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 5, production);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  tc_isolate(&tc, leader);
  tc_tick_all(&tc, 600);
  CHECK(tc_status(&tc, leader).role != SABHA_ROLE_LEADER);
  uint32_t fresh = tc_leader(&tc);
  CHECK(fresh != 0 && fresh != leader);
  CHECK(tc_propose(&tc, fresh, "after") == 0);
  tc_heal(&tc);
  tc_tick_all(&tc, 300);
  CHECK(tc_leader(&tc) == fresh);
  CHECK(tc.two_leaders == 0 && tc.conflicts == 0);
  tc_free(&tc);
}

static bool drop_accepts(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->type == 5; /* MP_MSG_ACCEPT */
}

/* Node 1's word that slot 1 is chosen never reaches anyone. */
static bool drop_commit_news(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->from == 1 && (m->type == 7 /* HEARTBEAT */ ||
                          (m->type == 5 && m->n_entries == 0));
}

/* A new leader serves no read before the slots phase 1 re-proposed are
 * chosen: until then it does not know the chosen prefix. */
static void mp_read_index_waits_for_phase1_slots(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 3, scripted);
  CHECK(tc_elect(&tc, 1));
  tc.filter = drop_commit_news;
  CHECK(tc_propose(&tc, 1, "v") == 0);
  CHECK(tc_status(&tc, 1).commit == 1 && tc_status(&tc, 2).commit == 0);
  tc_crash(&tc, 1);
  tc.filter = drop_accepts;
  CHECK(tc_elect(&tc, 2));
  CHECK(sabha_engine_read_index(tc.node[2].e, 5) == 0);
  tc_tick(&tc, 2, 200);
  CHECK(tc.node[2].n_reads == 0);
  tc.filter = NULL;
  tc_tick(&tc, 2, 100);
  CHECK(tc.node[2].n_reads == 1 && tc.node[2].read_index_of[0] >= 1);
  tc_free(&tc);
}

static void small_chunks(struct sabha_config *cfg) {
  scripted(cfg);
  cfg->snapshot_chunk_bytes = 16;
}

/* A lagging acceptor catches up from a snapshot and keeps learning. */
static void mp_acceptor_catches_up_from_snapshot(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 3, small_chunks);
  CHECK(tc_elect(&tc, 1));
  tc_crash(&tc, 3);
  for (int i = 0; i < 30; i++)
    CHECK(tc_propose(&tc, 1, "s") == 0);
  uint8_t buf[128] = {0};
  memcpy(buf, &tc.node[1].applied_sum, sizeof(uint64_t));
  CHECK(sabha_engine_compact(tc.node[1].e, tc.node[1].applied, buf,
                             sizeof buf) == 0);
  CHECK(tc_propose(&tc, 1, "after") == 0);
  tc_restart(&tc, 3);
  tc_tick_all(&tc, 300);
  CHECK(tc_status(&tc, 3).snapshot_index == 30);
  CHECK(tc_status(&tc, 3).applied == 31);
  CHECK(tc.node[3].applied_sum == tc.node[1].applied_sum);
  tc_free(&tc);
}

/* Leadership transfer: the target runs phase 1 at once and wins. */
static void mp_leadership_transfer(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 3, production);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  uint32_t target = leader == 3 ? 1 : leader + 1;
  CHECK(sabha_engine_transfer_leadership(tc.node[leader].e, target) == 0);
  tc_tick_all(&tc, 50);
  CHECK(tc_leader(&tc) == target);
  tc_free(&tc);
}

/* Commands proposed together share one slot (a BATCH entry), bounded by
 * commands_per_slot_max; hosts walk them with sabha_batch_next(). */
static void few_per_slot(struct sabha_config *cfg) {
  scripted(cfg);
  cfg->commands_per_slot_max = 2;
}

static void mp_commands_proposed_together_share_a_slot(void) {
  struct tcluster tc;
  tc_init(&tc, "multipaxos", 3, few_per_slot);
  CHECK(tc_elect(&tc, 1));
  CHECK(sabha_engine_propose(tc.node[1].e, "a", 1) == 0);
  CHECK(sabha_engine_propose(tc.node[1].e, "bb", 2) == 0);
  CHECK(sabha_engine_propose(tc.node[1].e, "ccc", 3) == 0);
  tc_settle(&tc);
  tc_tick_all(&tc, 60);
  /* Two slots: {a, bb} and {ccc}. */
  CHECK(tc_status(&tc, 3).applied == 2);
  struct sabha_entry e;
  CHECK(sabha_engine_entry(tc.node[3].e, 1, &e) == 0);
  CHECK(e.type == SABHA_ENTRY_BATCH);
  size_t offset = 0;
  const uint8_t *cmd;
  size_t size;
  CHECK(sabha_batch_next(&e, &offset, &cmd, &size) == 1);
  CHECK(size == 1 && cmd[0] == 'a');
  CHECK(sabha_batch_next(&e, &offset, &cmd, &size) == 1);
  CHECK(size == 2 && memcmp(cmd, "bb", 2) == 0);
  CHECK(sabha_batch_next(&e, &offset, &cmd, &size) == 0);
  CHECK(sabha_engine_entry(tc.node[3].e, 2, &e) == 0);
  CHECK(e.type == SABHA_ENTRY_COMMAND && e.size_bytes == 3);
  offset = 0;
  CHECK(sabha_batch_next(&e, &offset, &cmd, &size) == 1 && size == 3);
  CHECK(sabha_batch_next(&e, &offset, &cmd, &size) == 0);
  /* A malformed batch is reported, not read past its end. */
  uint8_t bad[6] = {9, 0, 0, 0, 'x', 'y'};
  struct sabha_entry broken = {.type = SABHA_ENTRY_BATCH, .size_bytes = 6,
                               .data = bad};
  offset = 0;
  CHECK(sabha_batch_next(&broken, &offset, &cmd, &size) == SABHA_ECORRUPT);
  tc_free(&tc);
}

int main(void) {
  RUN(mp_single_node_commits);
  RUN(mp_leader_replicates_and_all_learn);
  RUN(mp_new_leader_adopts_chosen_value);
  RUN(mp_no_adopt_bug_loses_chosen_value);
  RUN(mp_partitioned_leader_minority_values_resolved);
  RUN(mp_flaky_link_keeps_leader);
  RUN(mp_leader_without_majority_steps_down);
  RUN(mp_read_index_waits_for_phase1_slots);
  RUN(mp_acceptor_catches_up_from_snapshot);
  RUN(mp_leadership_transfer);
  RUN(mp_commands_proposed_together_share_a_slot);
  return tc_failures == 0 ? 0 : 1;
}
