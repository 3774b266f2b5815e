/* Classic Paxos (Paxos Made Simple §2): every node proposes, every slot is a
 * full two-phase instance. Scenario tests with the synchronous cluster. */
#include <string.h>

#include "tcluster.h"

static bool entry_is(struct tcluster *tc, uint32_t id, uint64_t index,
                     const char *text) {
  struct sabha_entry e;
  if (sabha_engine_entry(tc->node[id].e, index, &e) != 0)
    return false;
  return e.size_bytes == strlen(text) && memcmp(e.data, text, e.size_bytes) == 0;
}

/* Any node can get a command chosen; everyone learns it. */
static void paxos_any_node_proposes_and_all_learn(void) {
  struct tcluster tc;
  tc_init(&tc, "paxos", 3, NULL);
  tc_tick_all(&tc, 1);
  CHECK(tc_propose(&tc, 2, "from-2") == 0);
  CHECK(tc_propose(&tc, 3, "from-3") == 0);
  tc_tick_all(&tc, 200);
  for (uint32_t id = 1; id <= 3; id++)
    CHECK(tc_status(&tc, id).applied == 2);
  CHECK(entry_is(&tc, 1, 1, "from-2") || entry_is(&tc, 1, 1, "from-3"));
  CHECK(tc.conflicts == 0);
  tc_free(&tc);
}

/* §2.2 (P2c): a value accepted by a majority is re-proposed by the next
 * proposer of that slot instead of its own, which moves to the next slot. */
static bool drop_chosen(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->type == 5; /* CP_MSG_CHOSEN */
}

static void paxos_later_proposer_adopts_accepted_value(void) {
  struct tcluster tc;
  tc_init(&tc, "paxos", 3, NULL);
  tc_tick_all(&tc, 1);
  tc.filter = drop_chosen;
  tc_cut(&tc, 1, 3);
  CHECK(tc_propose(&tc, 1, "first") == 0); /* chosen by 1 and 2 */
  CHECK(tc_status(&tc, 1).commit == 1 && tc_status(&tc, 3).commit == 0);
  tc_crash(&tc, 1);
  tc_heal(&tc);
  CHECK(tc_propose(&tc, 3, "second") == 0);
  tc.filter = NULL;
  tc_tick_all(&tc, 300);
  CHECK(entry_is(&tc, 3, 1, "first"));
  CHECK(entry_is(&tc, 3, 2, "second"));
  CHECK(tc_status(&tc, 2).applied == 2 && tc.conflicts == 0);
  tc_free(&tc);
}

/* Reads go through the log: served once their slot is chosen. */
static void paxos_read_takes_a_slot(void) {
  struct tcluster tc;
  tc_init(&tc, "paxos", 3, NULL);
  tc_tick_all(&tc, 1);
  CHECK(tc_propose(&tc, 1, "w") == 0);
  CHECK(sabha_engine_read_index(tc.node[2].e, 77) == 0);
  tc_tick_all(&tc, 200);
  CHECK(tc.node[2].n_reads == 1 && tc.node[2].reads_served[0] == 77);
  CHECK(tc.node[2].read_index_of[0] == 2);
  tc_free(&tc);
}

/* A node that was down catches up from its peers' chosen values. */
static void paxos_restarted_node_catches_up(void) {
  struct tcluster tc;
  tc_init(&tc, "paxos", 3, NULL);
  tc_tick_all(&tc, 1);
  tc_crash(&tc, 3);
  for (int i = 0; i < 10; i++)
    CHECK(tc_propose(&tc, 1, "c") == 0);
  tc_tick_all(&tc, 100);
  CHECK(tc_status(&tc, 1).commit == 10);
  tc_restart(&tc, 3);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 3).applied == 10);
  CHECK(tc.node[3].applied_sum == tc.node[1].applied_sum);
  tc_free(&tc);
}

int main(void) {
  RUN(paxos_any_node_proposes_and_all_learn);
  RUN(paxos_later_proposer_adopts_accepted_value);
  RUN(paxos_read_takes_a_slot);
  RUN(paxos_restarted_node_catches_up);
  return tc_failures == 0 ? 0 : 1;
}
