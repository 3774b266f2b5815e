/* The runtime refuses a peer's term or ballot that would exhaust the
 * counter (issue 11). A term only grows: a node that took a term near 2^64
 * from one forged or broken heartbeat could never hold an election again,
 * and with it the cluster. rt_step drops any term-like field at or above
 * RT_PEER_TERM_MAX or more than RT_PEER_TERM_JUMP_MAX above the node's own
 * term, counts it and logs it, and the engine never sees it; terms within
 * the bounds pass as before.
 *
 * The runtime runs here over memfs with a Raft engine as node 2; the test
 * plays node 1, the "leader" that sends heartbeats and appends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "raft/raft.h"
#include "rt_host.h"
#include "storage/memfs.h"

static int open_node(struct rt **rt, struct rt_host *h,
                     const struct wal_io *io) {
  struct rt_config cfg;
  rt_host_config(&cfg, io);
  struct rt_ports ports = rt_host_ports(h);
  char err[512];
  int rc = rt_open(rt, &cfg, &ports, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "rt_open: %s\n", err);
  return rc;
}

static uint64_t term_of(struct rt *rt) {
  struct sabha_status st;
  rt_status(rt, &st);
  return st.term;
}

static struct sabha_msg heartbeat(uint64_t term) {
  struct sabha_msg m = {
      .type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = term};
  return m;
}

static void runtime_refuses_peer_terms_beyond_the_bounds(void) {
  struct memfs *fs;
  CHECK(memfs_new(&fs, 1) == 0);
  struct wal_io io;
  memfs_io(fs, &io);
  struct rt_host h = {.now_ms = 1000};
  struct rt *rt = NULL;
  CHECK(open_node(&rt, &h, &io) == 0);
  rt_run(rt);
  CHECK(term_of(rt) == 0);

  /* What the forged heartbeats of the acceptance probe carry. */
  const uint64_t huge[] = {UINT64_MAX, 1ull << 63, RT_PEER_TERM_MAX,
                           RT_PEER_TERM_JUMP_MAX + 1};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    struct sabha_msg m = heartbeat(huge[i]);
    rt_step(rt, &m);
    rt_run(rt);
    CHECK(term_of(rt) == 0);
    CHECK(rt_metrics(rt)->peer_msgs_refused_term == i + 1);
  }
  /* One warning for the burst: the rest are counted for the next one. */
  CHECK(h.warnings == 1);
  CHECK(strstr(h.last_warning, "node 1") != NULL);
  CHECK(strstr(h.last_warning, "term 18446744073709551615") != NULL);
  CHECK(h.fatal_kind == 0);

  /* A term within the bounds is the engine's as before: the boundary of
   * the jump, then an ordinary one above it. */
  struct sabha_msg m = heartbeat(RT_PEER_TERM_JUMP_MAX);
  rt_step(rt, &m);
  rt_run(rt);
  CHECK(term_of(rt) == RT_PEER_TERM_JUMP_MAX);
  m = heartbeat(RT_PEER_TERM_JUMP_MAX + 5);
  rt_step(rt, &m);
  rt_run(rt);
  CHECK(term_of(rt) == RT_PEER_TERM_JUMP_MAX + 5);
  CHECK(rt_metrics(rt)->peer_msgs_refused_term == 4);

  /* The other term-like fields: an append at our term whose previous term,
   * or whose entry's term, is beyond the ceiling. */
  uint64_t own = term_of(rt);
  struct sabha_msg app = {.type = RAFT_MSG_APPEND,
                          .from = 1,
                          .to = 2,
                          .term = own,
                          .index = 0,
                          .log_term = RT_PEER_TERM_MAX};
  rt_step(rt, &app);
  CHECK(rt_metrics(rt)->peer_msgs_refused_term == 5);
  struct sabha_entry e = {.index = 1,
                          .term = UINT64_MAX - 1,
                          .type = SABHA_ENTRY_NOOP,
                          .size_bytes = 0,
                          .data = NULL};
  app.log_term = 0;
  app.entries = &e;
  app.n_entries = 1;
  rt_step(rt, &app);
  rt_run(rt);
  CHECK(rt_metrics(rt)->peer_msgs_refused_term == 6);
  CHECK(term_of(rt) == own);
  struct sabha_status st;
  rt_status(rt, &st);
  CHECK(st.last_index == 0); /* the forged entry never reached the log */
  rt_close_crash(rt);
  memfs_free(fs);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(runtime_refuses_peer_terms_beyond_the_bounds),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
