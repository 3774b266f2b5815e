/* Where a peer's entries sit, through the engine API: a Raft append's
 * entries follow its previous index, a Multi-Paxos accept's start at its
 * slot, one after the other. The codec checks lengths and counts, not
 * places; a message whose entries are elsewhere (only a broken or hostile
 * peer sends one) once tripped an assertion in the follower or acceptor
 * and stopped the node, and without assertions would have put entries
 * where its log holds others. Each is dropped whole now. */
#include <stdint.h>

#include "check.h"
#include "paxos/mp.h"
#include "raft/raft.h"
#include "sabha/engine.h"

/* One message from node 1 to a new node 2 of {1, 2, 3}: its index (Raft:
 * the previous entry; Multi-Paxos: the first slot), the indexes of its two
 * entries, and the last index node 2's log has after it. */
struct placed {
  const char *protocol;
  uint32_t type;
  uint64_t term; /* 1.1 is ballot 0x101 */
  uint64_t index;
  uint64_t entry_index[2];
  uint64_t last_index_want;
};

static const struct placed placed_cases[] = {
    /* A gap after the first entry. */
    {"raft", RAFT_MSG_APPEND, 1, 0, {1, 3}, 0},
    {"multipaxos", MP_MSG_ACCEPT, 0x101, 1, {1, 3}, 0},
    /* Not where the message says they start. */
    {"raft", RAFT_MSG_APPEND, 1, 0, {5, 6}, 0},
    {"multipaxos", MP_MSG_ACCEPT, 0x101, 1, {5, 6}, 0},
    /* Past the last index there can be, or at slot 0, which is none. */
    {"raft", RAFT_MSG_APPEND, 1, UINT64_MAX, {0, 1}, 0},
    {"multipaxos", MP_MSG_ACCEPT, 0x101, 0, {0, 1}, 0},
    /* In place: taken. */
    {"raft", RAFT_MSG_APPEND, 1, 0, {1, 2}, 2},
    {"multipaxos", MP_MSG_ACCEPT, 0x101, 1, {1, 2}, 2},
};

static void entries_out_of_place_are_dropped(void) {
  for (size_t i = 0; i < sizeof placed_cases / sizeof placed_cases[0]; i++) {
    const struct placed *c = &placed_cases[i];
    struct sabha_config cfg;
    uint32_t voters[3] = {1, 2, 3};
    sabha_config_init(&cfg, 2, voters, 3);
    struct sabha_engine *e = NULL;
    CHECK(sabha_engine_new(&e, c->protocol, &cfg, NULL) == 0);
    struct sabha_entry entries[2];
    for (int k = 0; k < 2; k++)
      entries[k] = (struct sabha_entry){.index = c->entry_index[k],
                                        .term = c->term,
                                        .type = SABHA_ENTRY_COMMAND,
                                        .size_bytes = 1,
                                        .data = (const uint8_t *)"v"};
    struct sabha_msg m = {.type = c->type,
                          .from = 1,
                          .to = 2,
                          .term = c->term,
                          .index = c->index,
                          .n_entries = 2,
                          .entries = entries};
    int rc = sabha_engine_step(e, &m);
    struct sabha_status st;
    sabha_engine_status(e, &st);
    sabha_engine_free(e);
    if (st.last_index != c->last_index_want)
      fprintf(stderr, "case %zu: %s, last index %llu\n", i, c->protocol,
              (unsigned long long)st.last_index);
    CHECK(rc == 0);
    CHECK(st.last_index == c->last_index_want);
    CHECK(st.commit <= st.last_index);
  }
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(entries_out_of_place_are_dropped),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
