/* async baseline tests: what primary-backup with acknowledgement from the
 * primary alone does, scripted with the synchronous test cluster
 * (support/tcluster.h). These pin the baseline's documented weakness (an
 * acknowledged write lost on failover, the state machine rolled back) as
 * well as what it still guarantees (one primary per term). */
#include <string.h>

#include "tcluster.h"

/* No lease and no step-down without a majority: a single ticked node can
 * campaign, and an isolated primary keeps serving, as in the failover
 * scenarios the lab shows. */
static void no_guards(struct sabha_config *cfg) { cfg->check_quorum = false; }

static const char *entry_text(struct tcluster *tc, uint32_t id, uint64_t index,
                              char *buf, size_t size) {
  struct sabha_entry e;
  if (sabha_engine_entry(tc->node[id].e, index, &e) != 0 ||
      e.size_bytes >= size)
    return "";
  memcpy(buf, e.data, e.size_bytes);
  buf[e.size_bytes] = '\0';
  return buf;
}

static void compact(struct tcluster *tc, uint32_t id, int want) {
  uint8_t buf[8];
  memcpy(buf, &tc->node[id].applied_sum, sizeof buf);
  CHECK(sabha_engine_compact(tc->node[id].e, tc->node[id].applied, buf,
                             sizeof buf) == want);
}

/* The primary commits, applies (so the host acknowledges) on its own
 * fsync: with both backups down there is no quorum, and it does not wait. */
static void async_primary_acks_without_a_quorum(void) {
  struct tcluster tc;
  tc_init(&tc, "async", 3, no_guards);
  CHECK(tc_elect(&tc, 1));
  tc_crash(&tc, 2);
  tc_crash(&tc, 3);
  CHECK(tc_propose(&tc, 1, "alone") == 0);
  struct sabha_status st = tc_status(&tc, 1);
  CHECK(st.role == SABHA_ROLE_LEADER);
  CHECK(st.commit == 1 && st.applied == 1 && tc.node[1].applied == 1);
  /* Reads are answered at once at the commit index: no confirmation. */
  CHECK(sabha_engine_read_index(tc.node[1].e, 7) == 0);
  tc_settle(&tc);
  CHECK(tc.node[1].n_reads == 1 && tc.node[1].reads_served[0] == 7 &&
        tc.node[1].read_index_of[0] == 1);
  CHECK(sabha_engine_transfer_leadership(tc.node[1].e, 2) == SABHA_ENOTSUPP);
  tc_free(&tc);
}

/* Backups apply what the primary committed. */
static void async_backups_apply_what_the_primary_committed(void) {
  struct tcluster tc;
  tc_init(&tc, "async", 3, no_guards);
  CHECK(tc_elect(&tc, 1));
  for (int i = 0; i < 10; i++)
    CHECK(tc_propose(&tc, 1, "x") == 0);
  tc_tick_all(&tc, 60); /* a heartbeat carries the final commit index */
  for (uint32_t id = 1; id <= 3; id++)
    CHECK(tc_status(&tc, id).applied == 10);
  CHECK(tc.node[1].applied_sum == tc.node[3].applied_sum);
  CHECK(sabha_engine_read_index(tc.node[2].e, 1) == SABHA_ENOTLEADER);
  CHECK(tc_propose(&tc, 2, "no") == SABHA_ENOTLEADER);
  tc_free(&tc);
}

/* The baseline's weakness, exactly: node 1, cut off, acknowledges "lost";
 * node 2 is elected without it (no log comparison), takes "b" at the same
 * index, and when node 1 rejoins its applied entry is discarded and its
 * state machine reset (from its snapshot when `with_snapshot`, from the
 * empty state otherwise), then replayed from node 2's log. */
static void isolated_primary_write_is_lost(bool with_snapshot) {
  struct tcluster tc;
  tc_init(&tc, "async", 3, no_guards);
  CHECK(tc_elect(&tc, 1));
  CHECK(tc_propose(&tc, 1, "a") == 0);
  tc_tick_all(&tc, 60);
  CHECK(tc_status(&tc, 3).applied == 1);
  /* Every node holds index 1 now, so it is stable and may be compacted;
   * index 2 will not be, so compaction past it is refused. */
  if (with_snapshot)
    compact(&tc, 1, 0);
  tc_isolate(&tc, 1);
  CHECK(tc_propose(&tc, 1, "lost") == 0);
  CHECK(tc.node[1].applied == 2); /* applied: the client was told "ok" */
  compact(&tc, 1, SABHA_EBUSY);
  CHECK(tc_elect(&tc, 2));
  CHECK(tc_propose(&tc, 2, "b") == 0);
  tc_heal(&tc);
  tc_tick_all(&tc, 200);
  char buf[16];
  struct sabha_status st1 = tc_status(&tc, 1);
  CHECK(st1.role == SABHA_ROLE_FOLLOWER && st1.leader == 2);
  CHECK(strcmp(entry_text(&tc, 1, 2, buf, sizeof buf), "b") == 0);
  CHECK(st1.applied == 2 && tc.node[1].applied == 2);
  CHECK(tc.node[1].applied_sum == tc.node[2].applied_sum);
  CHECK(tc.node[1].applied_sum == tc.node[3].applied_sum);
  CHECK(tc.conflicts > 0);    /* state machine safety: broken, by design */
  CHECK(tc.two_leaders == 0); /* election safety: kept */
  tc_free(&tc);
}

static void async_acked_write_lost_on_failover_reset_from_empty(void) {
  isolated_primary_write_is_lost(false);
}

static void async_acked_write_lost_on_failover_reset_from_snapshot(void) {
  isolated_primary_write_is_lost(true);
}

/* A backup that applied the old primary's tail, then sees a new primary
 * whose log is shorter and which writes nothing, still rolls back: the
 * heartbeat's last index shows the tail can never come from it. */
static void async_backup_drops_tail_the_primary_lacks(void) {
  struct tcluster tc;
  tc_init(&tc, "async", 3, no_guards);
  CHECK(tc_elect(&tc, 1));
  CHECK(tc_propose(&tc, 1, "a") == 0);
  tc_tick_all(&tc, 60);
  tc_cut(&tc, 1, 2);
  CHECK(tc_propose(&tc, 1, "tail") == 0);
  tc_tick_all(&tc, 60);
  CHECK(tc_status(&tc, 3).applied == 2); /* node 3 applied "tail" */
  tc_crash(&tc, 1);
  tc_heal(&tc);
  CHECK(tc_elect(&tc, 2));
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 3).last_index == 1);
  CHECK(tc_status(&tc, 3).applied == 1 && tc.node[3].applied == 1);
  CHECK(tc.node[3].applied_sum == tc.node[2].applied_sum);
  tc_free(&tc);
}

/* Priority: lower id, higher priority. From a cold start the ranks' election
 * windows do not overlap, so node 1 stands first and wins; without it,
 * node 2. */
static void async_election_prefers_priority(void) {
  struct tcluster tc;
  tc_init(&tc, "async", 3, NULL);
  for (int i = 0; i < 2000 && tc_leader(&tc) == 0; i++)
    tc_tick_all(&tc, 1);
  CHECK(tc_leader(&tc) == 1);
  tc_crash(&tc, 1);
  for (int i = 0; i < 3000 && tc_leader(&tc) != 2 && tc_leader(&tc) != 3; i++)
    tc_tick_all(&tc, 1);
  CHECK(tc_leader(&tc) == 2);
  CHECK(tc.two_leaders == 0);
  tc_free(&tc);
}

/* One primary per term, through a storm of isolations, crashes and
 * restarts: the property the baseline keeps. */
static void async_one_primary_per_term(void) {
  struct tcluster tc;
  tc_init(&tc, "async", 5, NULL);
  for (int round = 0; round < 12; round++) {
    tc_tick_all(&tc, 700);
    uint32_t l = tc_leader(&tc);
    if (l != 0)
      (void)tc_propose(&tc, l, "w");
    if (round % 3 == 0 && l != 0) {
      tc_isolate(&tc, l);
      (void)tc_propose(&tc, l, "isolated");
    } else if (round % 3 == 1 && l != 0) {
      tc_crash(&tc, l);
    } else {
      tc_heal(&tc);
      for (uint32_t id = 1; id <= 5; id++)
        if (!tc.node[id].up)
          tc_restart(&tc, id);
    }
  }
  tc_heal(&tc);
  tc_tick_all(&tc, 2000);
  CHECK(tc_leader(&tc) != 0);
  CHECK(tc.two_leaders == 0 && tc.unsettled == 0);
  uint32_t l = tc_leader(&tc);
  for (uint32_t id = 1; id <= 5; id++)
    CHECK(tc.node[id].applied_sum == tc.node[l].applied_sum);
  tc_free(&tc);
}

int main(void) {
  RUN(async_primary_acks_without_a_quorum);
  RUN(async_backups_apply_what_the_primary_committed);
  RUN(async_acked_write_lost_on_failover_reset_from_empty);
  RUN(async_acked_write_lost_on_failover_reset_from_snapshot);
  RUN(async_backup_drops_tail_the_primary_lacks);
  RUN(async_election_prefers_priority);
  RUN(async_one_primary_per_term);
  return tc_failures == 0 ? 0 : 1;
}
