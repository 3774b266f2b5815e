/* Raft scenario tests: the cases the Raft paper and thesis draw, scripted
 * exactly with the synchronous test cluster (support/tcluster.h). Each test
 * names the behaviour it checks and the section it comes from. */
#include <string.h>

#include "tcluster.h"

static void classic(struct sabha_config *cfg) {
  /* Plain Raft of the paper: no PreVote, no CheckQuorum, so that a single
   * ticked node campaigns and wins as the figures assume. */
  cfg->pre_vote = false;
  cfg->check_quorum = false;
}

static void one_entry_per_msg(struct sabha_config *cfg) { classic(cfg); }

static void stale_commit_bug(struct sabha_config *cfg) {
  one_entry_per_msg(cfg);
  cfg->bugs = SABHA_BUG_STALE_COMMIT;
}

static void production(struct sabha_config *cfg) { (void)cfg; }

static void no_guards(struct sabha_config *cfg) {
  cfg->pre_vote = false;
  cfg->check_quorum = false;
}

/* §5.2: a single node elects itself and commits once the entry is durable. */
static void raft_single_node_commits_own_entries(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 1, NULL);
  CHECK(tc_elect(&tc, 1));
  CHECK(tc_propose(&tc, 1, "a") == 0);
  CHECK(tc_propose(&tc, 1, "b") == 0);
  struct sabha_status st = tc_status(&tc, 1);
  CHECK(st.commit == 3 && st.applied == 3); /* no-op, a, b */
  tc_free(&tc);
}

/* §5.3: entries replicate to every follower and apply everywhere. */
static void raft_leader_replicates_and_followers_apply(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, classic);
  CHECK(tc_elect(&tc, 1));
  for (int i = 0; i < 20; i++)
    CHECK(tc_propose(&tc, 1, "x") == 0);
  tc_tick_all(&tc, 60); /* a heartbeat carries the final commit index */
  for (uint32_t id = 1; id <= 3; id++)
    CHECK(tc_status(&tc, id).applied == 21);
  CHECK(tc.node[1].applied_sum == tc.node[2].applied_sum);
  CHECK(tc.conflicts == 0 && tc.two_leaders == 0);
  tc_free(&tc);
}

/* §5.4.1: a voter refuses a candidate whose log is less up to date. */
static void raft_vote_refused_when_candidate_log_is_stale(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, classic);
  CHECK(tc_elect(&tc, 1));
  tc_isolate(&tc, 3);
  CHECK(tc_propose(&tc, 1, "committed-without-3") == 0);
  CHECK(tc_status(&tc, 2).last_index == 2);
  tc_crash(&tc, 1);
  tc_heal(&tc);
  /* Node 3 lacks index 2: node 2 must refuse it, so it cannot win. */
  tc_tick(&tc, 3, 1000);
  CHECK(tc_status(&tc, 3).role != SABHA_ROLE_LEADER);
  CHECK(tc_status(&tc, 3).elections_started > 0);
  CHECK(tc_elect(&tc, 2));
  tc_free(&tc);
}

/* A vote is durable with its term: after a crash the voter still refuses a
 * second candidate in the same term (the double vote hashicorp/raft shipped). */
static void raft_vote_survives_crash(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, classic);
  tc_cut(&tc, 1, 3);
  CHECK(tc_elect(&tc, 1)); /* node 2 voted for 1 in term 1 */
  uint64_t term = tc_status(&tc, 2).term;
  CHECK(tc_status(&tc, 2).vote == 1);
  tc_crash(&tc, 2);
  tc_restart(&tc, 2);
  CHECK(tc_status(&tc, 2).term == term && tc_status(&tc, 2).vote == 1);
  tc_free(&tc);
}

static uint32_t fig8_s1_term;

/* Trims from node 1's appends every entry of node 1's newest term: older
 * entries still flow, the term's own entries reach no follower. */
static bool drop_fig8(void *arg, struct sabha_msg *m) {
  (void)arg;
  if (m->from != 1 || m->type != 1 /* RAFT_MSG_APPEND */)
    return false;
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (m->entries[i].term == fig8_s1_term) {
      m->n_entries = i;
      break;
    }
  return false;
}

static bool drop_appends_from_5(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->from == 5 && (m->type == 1 || m->type == 3);
}

/* Figure 8 (§5.4.2): an entry from an earlier term, stored on a majority, is
 * not committed by counting replicas; a later leader may overwrite it. Run
 * with `bugs` to show the harness catches the broken rule. Returns the
 * number of conflicting applies. */
static uint32_t figure8(void (*tweak)(struct sabha_config *)) {
  struct tcluster tc;
  tc_init(&tc, "raft", 5, tweak);
  /* (a) S1 leads and gets index 2 onto S2 only. */
  if (!tc_elect(&tc, 1))
    return 1000;
  for (uint32_t id = 3; id <= 5; id++)
    tc_cut(&tc, 1, id);
  tc_propose(&tc, 1, "x");
  /* (b) S1 crashes; S5 wins with S3, S4 and writes index 2 in its term
   * without telling anyone. */
  tc_crash(&tc, 1);
  tc_heal(&tc);
  tc.filter = drop_appends_from_5;
  if (!tc_elect(&tc, 5))
    return 1000;
  tc_crash(&tc, 5);
  tc.filter = NULL;
  /* (c) S1 restarts and wins; it replicates index 2 to S3 (a majority with
   * S1 and S2), but its own term's no-op reaches nobody. */
  tc_restart(&tc, 1);
  fig8_s1_term = (uint32_t)tc_status(&tc, 2).term + 1;
  tc.filter = drop_fig8;
  if (!tc_elect(&tc, 1))
    return 1000;
  tc_tick(&tc, 1, 200); /* heartbeats let probes make progress */
  tc.filter = NULL;
  /* (d) S1 crashes; S5 restarts, wins with S2, S3, S4 and overwrites 2. */
  tc_crash(&tc, 1);
  tc_restart(&tc, 5);
  if (!tc_elect(&tc, 5))
    return 1000;
  tc_propose(&tc, 5, "y");
  tc_tick_all(&tc, 100);
  uint32_t conflicts = tc.conflicts + tc.two_leaders;
  tc_free(&tc);
  return conflicts;
}

static void raft_figure8_old_term_entry_not_committed_by_count(void) {
  CHECK(figure8(one_entry_per_msg) == 0);
}

static void raft_figure8_stale_commit_bug_is_caught(void) {
  uint32_t conflicts = figure8(stale_commit_bug);
  CHECK(conflicts > 0 && conflicts < 1000);
}

/* §5.3: an old leader cut off from the majority keeps its uncommitted
 * entries only until it rejoins; the new leader's log wins. */
static void raft_partitioned_leader_uncommitted_entries_overwritten(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 5, classic);
  CHECK(tc_elect(&tc, 1));
  tc_isolate(&tc, 1);
  CHECK(tc_propose(&tc, 1, "lost-1") == 0);
  CHECK(tc_propose(&tc, 1, "lost-2") == 0);
  CHECK(tc_status(&tc, 1).last_index == 3 && tc_status(&tc, 1).commit == 1);
  CHECK(tc_elect(&tc, 2));
  CHECK(tc_propose(&tc, 2, "kept") == 0);
  tc_heal(&tc);
  tc_tick_all(&tc, 400);
  CHECK(tc_leader(&tc) != 1);
  struct sabha_entry e;
  for (uint32_t id = 1; id <= 5; id++) {
    CHECK(sabha_engine_entry(tc.node[id].e, 3, &e) == 0);
    CHECK(e.size_bytes == 4 && memcmp(e.data, "kept", 4) == 0);
    CHECK(tc_status(&tc, id).applied == tc_status(&tc, 2).applied);
  }
  CHECK(tc.conflicts == 0 && tc.two_leaders == 0);
  tc_free(&tc);
}

/* Thesis §6.2 (CheckQuorum): a leader that cannot hear a majority steps down
 * within about an election timeout, so clients stop waiting on it. */
static void raft_leader_without_majority_steps_down(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 5, production);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  tc_isolate(&tc, leader);
  tc_tick_all(&tc, 400);
  CHECK(tc_status(&tc, leader).role != SABHA_ROLE_LEADER);
  uint32_t fresh = tc_leader(&tc);
  CHECK(fresh != 0 && fresh != leader);
  CHECK(tc.two_leaders == 0);
  tc_free(&tc);
}

/* Howard & Abraham (2020), the flaky link: the leader and one follower cannot
 * talk, everything else can. With PreVote and CheckQuorum the cut follower
 * cannot depose the leader the others still hear, so terms stay put and
 * writes keep committing. Without them the terms churn. Returns the number
 * of terms that passed. */
static uint64_t flaky_link_terms(void (*tweak)(struct sabha_config *),
                                 uint64_t *commits) {
  struct tcluster tc;
  tc_init(&tc, "raft", 5, tweak);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  if (leader == 0)
    return 1000;
  uint32_t other = leader == 1 ? 2 : 1;
  uint64_t term0 = tc_status(&tc, leader).term;
  tc_cut(&tc, leader, other);
  *commits = 0;
  for (int round = 0; round < 50; round++) {
    tc_tick_all(&tc, 100);
    uint32_t now = tc_leader(&tc);
    if (now != 0 && tc_propose(&tc, now, "w") == 0)
      (*commits)++;
  }
  uint64_t terms = 0;
  for (uint32_t id = 1; id <= 5; id++)
    if (tc_status(&tc, id).term - term0 > terms)
      terms = tc_status(&tc, id).term - term0;
  tc_free(&tc);
  return terms;
}

static void raft_flaky_link_prevote_and_check_quorum_keep_leader(void) {
  uint64_t commits = 0;
  CHECK(flaky_link_terms(production, &commits) == 0);
  CHECK(commits == 50);
}

/* Without the guards the cut follower's elections depose the leader. */
static void raft_flaky_link_without_guards_disrupts_leader(void) {
  uint64_t commits = 0;
  uint64_t terms = flaky_link_terms(no_guards, &commits);
  CHECK(terms >= 1 && terms < 1000);
}

/* Howard & Abraham (2020), quorum loss: the leader keeps one peer but loses
 * the majority. CheckQuorum makes it step down and the majority moves on. */
static void raft_leader_losing_majority_is_replaced(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 5, production);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  uint32_t friend_id = leader == 1 ? 2 : 1;
  for (uint32_t id = 1; id <= 5; id++)
    if (id != leader && id != friend_id)
      tc_cut(&tc, leader, id);
  tc_tick_all(&tc, 1500);
  uint32_t fresh = tc_leader(&tc);
  CHECK(fresh != 0 && fresh != leader);
  CHECK(tc_propose(&tc, fresh, "after") == 0);
  tc_tick_all(&tc, 100);
  CHECK(tc_status(&tc, fresh).commit == tc_status(&tc, fresh).last_index);
  tc_free(&tc);
}

static bool drop_appends(void *arg, struct sabha_msg *m) {
  (void)arg;
  return m->type == 1; /* RAFT_MSG_APPEND */
}

/* Thesis §6.4: a new leader serves no ReadIndex before an entry of its own
 * term commits (etcd and TiKV shipped stale reads from this). */
static void raft_read_index_waits_for_leader_term_commit(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, classic);
  tc.filter = drop_appends;
  CHECK(tc_elect(&tc, 1));
  CHECK(sabha_engine_read_index(tc.node[1].e, 42) == 0);
  tc_tick(&tc, 1, 200);
  CHECK(tc.node[1].n_reads == 0);
  tc.filter = NULL;
  tc_tick(&tc, 1, 100);
  CHECK(tc.node[1].n_reads == 1 && tc.node[1].reads_served[0] == 42);
  CHECK(tc.node[1].read_index_of[0] >= tc_status(&tc, 1).commit - 0);
  CHECK(sabha_engine_read_index(tc.node[2].e, 7) == SABHA_ENOTLEADER);
  tc_free(&tc);
}

/* Thesis §6.4: a leader cut off from the majority cannot confirm a read. */
static void raft_read_index_needs_a_majority(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, classic);
  CHECK(tc_elect(&tc, 1));
  tc_isolate(&tc, 1);
  CHECK(sabha_engine_read_index(tc.node[1].e, 9) == 0);
  tc_tick(&tc, 1, 500);
  CHECK(tc.node[1].n_reads == 0);
  tc_free(&tc);
}

static void compact(struct tcluster *tc, uint32_t id, size_t pad) {
  uint8_t buf[256] = {0};
  memcpy(buf, &tc->node[id].applied_sum, sizeof(uint64_t));
  CHECK(sabha_engine_compact(tc->node[id].e, tc->node[id].applied, buf,
                             sizeof(uint64_t) + pad) == 0);
}

static void small_chunks(struct sabha_config *cfg) {
  classic(cfg);
  cfg->snapshot_chunk_bytes = 16;
}

/* Thesis §5: a follower behind the compacted log catches up from a snapshot
 * sent in chunks, then from the log; restarts keep the boundary right (the
 * off-by-one RedisRaft shipped). */
static void raft_follower_catches_up_from_chunked_snapshot(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, small_chunks);
  CHECK(tc_elect(&tc, 1));
  tc_crash(&tc, 3);
  for (int i = 0; i < 30; i++)
    CHECK(tc_propose(&tc, 1, "s") == 0);
  compact(&tc, 1, 200);
  CHECK(tc_status(&tc, 1).snapshot_index == 31);
  CHECK(tc_propose(&tc, 1, "after-snapshot") == 0);
  tc_restart(&tc, 3);
  tc_tick_all(&tc, 300);
  CHECK(tc_status(&tc, 3).snapshot_index == 31);
  CHECK(tc_status(&tc, 3).applied == 32);
  CHECK(tc.node[3].applied_sum == tc.node[1].applied_sum);
  /* Restart the follower: it comes back from its snapshot and log. */
  tc_crash(&tc, 3);
  tc_restart(&tc, 3);
  CHECK(tc_status(&tc, 3).first_index == 32 &&
        tc_status(&tc, 3).last_index == 32);
  tc_tick_all(&tc, 200);
  CHECK(tc_status(&tc, 3).applied == tc_status(&tc, 1).applied);
  CHECK(tc.node[3].applied_sum == tc.node[1].applied_sum);
  CHECK(tc.conflicts == 0);
  tc_free(&tc);
}

/* Thesis §3.10: leadership moves to a caught-up target via TimeoutNow. */
static void raft_leadership_transfer_moves_leader(void) {
  struct tcluster tc;
  tc_init(&tc, "raft", 3, production);
  tc_tick_all(&tc, 600);
  uint32_t leader = tc_leader(&tc);
  CHECK(leader != 0);
  uint32_t target = leader == 3 ? 1 : leader + 1;
  CHECK(sabha_engine_transfer_leadership(tc.node[leader].e, target) == 0);
  CHECK(sabha_engine_propose(tc.node[leader].e, "z", 1) != 0 ||
        tc_leader(&tc) == target);
  tc_tick_all(&tc, 50);
  CHECK(tc_leader(&tc) == target);
  CHECK(tc.two_leaders == 0);
  tc_free(&tc);
}

/* Bad input: unknown protocol and bad configs are refused with a code. */
static void engine_new_rejects_bad_config(void) {
  struct sabha_config cfg;
  uint32_t voters[3] = {1, 2, 3};
  struct sabha_engine *e = NULL;
  sabha_config_init(&cfg, 1, voters, 3);
  CHECK(sabha_engine_new(&e, "zab", &cfg, NULL) == SABHA_EPROTO);
  cfg.id = 9;
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == SABHA_EINVAL);
  cfg.id = 1;
  cfg.election_timeout_ms_min = 10; /* not above the heartbeat */
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == SABHA_EINVAL);
  CHECK(strcmp(sabha_strerror(SABHA_ENOTLEADER), "this node is not the leader") == 0);
}

int main(void) {
  RUN(raft_single_node_commits_own_entries);
  RUN(raft_leader_replicates_and_followers_apply);
  RUN(raft_vote_refused_when_candidate_log_is_stale);
  RUN(raft_vote_survives_crash);
  RUN(raft_figure8_old_term_entry_not_committed_by_count);
  RUN(raft_figure8_stale_commit_bug_is_caught);
  RUN(raft_partitioned_leader_uncommitted_entries_overwritten);
  RUN(raft_leader_without_majority_steps_down);
  RUN(raft_flaky_link_prevote_and_check_quorum_keep_leader);
  RUN(raft_flaky_link_without_guards_disrupts_leader);
  RUN(raft_leader_losing_majority_is_replaced);
  RUN(raft_read_index_waits_for_leader_term_commit);
  RUN(raft_read_index_needs_a_majority);
  RUN(raft_follower_catches_up_from_chunked_snapshot);
  RUN(raft_leadership_transfer_moves_leader);
  RUN(engine_new_rejects_bad_config);
  return tc_failures == 0 ? 0 : 1;
}
