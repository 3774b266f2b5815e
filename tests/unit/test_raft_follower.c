/* Raft follower rules tested on one engine with hand-made messages: the
 * AppendEntries receiver of Figure 2 and §5.3, message by message. */
#include <string.h>

#include "tcluster.h"

enum { APPEND = 1, APPEND_RESP = 2 };

static struct sabha_engine *follower(void) {
  uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 2, voters, 3);
  struct sabha_engine *e = NULL;
  if (sabha_engine_new(&e, "raft", &cfg, NULL) != 0)
    return NULL;
  sabha_engine_tick(e, 1);
  return e;
}

/* Steps one append and returns the single response it produced. */
static struct sabha_msg append(struct sabha_engine *e, uint64_t term,
                               uint64_t prev, uint64_t prev_term,
                               const uint64_t *terms, uint32_t n,
                               uint64_t commit) {
  struct sabha_entry entries[16];
  for (uint32_t i = 0; i < n; i++) {
    entries[i] = (struct sabha_entry){.index = prev + 1 + i,
                                      .term = terms[i],
                                      .type = SABHA_ENTRY_COMMAND,
                                      .size_bytes = 1,
                                      .data = (const uint8_t *)"e"};
  }
  struct sabha_msg m = {.type = APPEND, .from = 1, .to = 2, .term = term,
                        .index = prev, .log_term = prev_term,
                        .commit = commit, .n_entries = n,
                        .entries = n ? entries : NULL};
  sabha_engine_step(e, &m);
  struct sabha_ready rd;
  sabha_engine_ready(e, &rd);
  struct sabha_msg resp = {0};
  if (rd.n_msgs_after_persist == 1)
    resp = rd.msgs_after_persist[0];
  sabha_engine_advance(e, &rd);
  return resp;
}

/* §5.3: a duplicated or reordered (older) append must not cut entries that
 * a newer append already added: only a conflict truncates. */
static void raft_follower_keeps_entries_on_stale_append(void) {
  struct sabha_engine *e = follower();
  CHECK(e != NULL);
  uint64_t t[] = {1, 1, 1, 1};
  struct sabha_msg r = append(e, 1, 0, 0, t, 4, 0);
  CHECK(r.type == APPEND_RESP && !r.reject && r.index == 4);
  r = append(e, 1, 0, 0, t, 2, 0); /* the older message arrives late */
  CHECK(!r.reject && r.index == 2);
  struct sabha_status st;
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 4);
  sabha_engine_free(e);
}

/* §5.3: an append whose previous entry does not match is refused, and the
 * refusal says where to look: the last index whose term is no newer than the
 * leader's entry there, skipping a whole term per round trip. */
static void raft_follower_refusal_hints_at_conflicting_term(void) {
  struct sabha_engine *e = follower();
  CHECK(e != NULL);
  uint64_t t[] = {1, 1, 2, 2, 2, 2};
  struct sabha_msg r = append(e, 2, 0, 0, t, 6, 0);
  CHECK(!r.reject && r.index == 6);
  /* A leader of term 3 whose entry at 6 has term 1 (it never saw term 2). */
  r = append(e, 3, 6, 1, NULL, 0, 0);
  CHECK(r.reject && r.index == 6);
  CHECK(r.hint_index == 2 && r.hint_term == 1);
  /* Past our end: the hint is our last index. */
  r = append(e, 3, 9, 3, NULL, 0, 0);
  CHECK(r.reject && r.hint_index == 6);
  sabha_engine_free(e);
}

/* §5.3: a conflicting suffix is replaced, and the disk is told to truncate. */
static void raft_follower_replaces_conflicting_suffix(void) {
  struct sabha_engine *e = follower();
  CHECK(e != NULL);
  uint64_t t1[] = {1, 1, 1};
  append(e, 1, 0, 0, t1, 3, 0);
  uint64_t t2[] = {2};
  struct sabha_msg m2 = {0};
  struct sabha_entry ent = {.index = 2, .term = 2, .type = SABHA_ENTRY_COMMAND,
                            .size_bytes = 1, .data = (const uint8_t *)"n"};
  m2 = (struct sabha_msg){.type = APPEND, .from = 1, .to = 2, .term = 2,
                          .index = 1, .log_term = 1, .n_entries = 1,
                          .entries = &ent};
  (void)t2;
  sabha_engine_step(e, &m2);
  struct sabha_ready rd;
  sabha_engine_ready(e, &rd);
  CHECK(rd.truncate_from == 2);
  CHECK(rd.n_entries == 1 && rd.entries[0].index == 2 && rd.entries[0].term == 2);
  sabha_engine_advance(e, &rd);
  struct sabha_status st;
  sabha_engine_status(e, &st);
  CHECK(st.last_index == 2 && st.term == 2);
  sabha_engine_free(e);
}

/* Figure 2: the follower commits no further than the leader's commit and
 * no further than the entries it knows match (the last new entry). */
static void raft_follower_commit_bounded_by_matching_entries(void) {
  struct sabha_engine *e = follower();
  CHECK(e != NULL);
  uint64_t t[] = {1, 1, 1, 1, 1};
  append(e, 1, 0, 0, t, 5, 0);
  struct sabha_msg r = append(e, 1, 0, 0, t, 2, 5); /* commit 5, entries to 2 */
  CHECK(!r.reject);
  struct sabha_status st;
  sabha_engine_status(e, &st);
  CHECK(st.commit == 2);
  sabha_engine_free(e);
}

/* etcd #14370: entries are never applied before they are handed to the host
 * to persist; in a group of one, a committed entry is in the same batch as
 * its write, never before it. */
static void raft_single_node_applies_only_persisted_entries(void) {
  uint32_t voters[1] = {1};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 1);
  struct sabha_engine *e = NULL;
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == 0);
  uint64_t persisted = 0;
  for (uint64_t now = 1; now < 1000; now++) {
    sabha_engine_tick(e, now);
    if (now % 10 == 0)
      sabha_engine_propose(e, "p", 1);
    while (sabha_engine_has_ready(e)) {
      struct sabha_ready rd;
      sabha_engine_ready(e, &rd);
      uint64_t durable = persisted;
      if (rd.n_entries > 0)
        durable = rd.entries[rd.n_entries - 1].index;
      for (size_t i = 0; i < rd.n_committed; i++)
        CHECK(rd.committed[i].index <= durable);
      persisted = durable;
      sabha_engine_advance(e, &rd);
    }
  }
  struct sabha_status st;
  sabha_engine_status(e, &st);
  CHECK(st.role == SABHA_ROLE_LEADER && st.applied > 50);
  sabha_engine_free(e);
}

int main(void) {
  RUN(raft_follower_keeps_entries_on_stale_append);
  RUN(raft_follower_refusal_hints_at_conflicting_term);
  RUN(raft_follower_replaces_conflicting_suffix);
  RUN(raft_follower_commit_bounded_by_matching_entries);
  RUN(raft_single_node_applies_only_persisted_entries);
  return tc_failures == 0 ? 0 : 1;
}
