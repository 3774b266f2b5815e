/* Linearizable reads in the node runtime, at their bound.
 *
 * A read waits at the leader for a round of heartbeats that a majority
 * acknowledges (ReadIndex); the engine keeps at most READQ_MAX of them
 * waiting. Past that a read is refused at once with an error that says
 * why and what to do, and counted, rather than left to look like a fault:
 * here the leader's peers never answer, so every read waits.
 *
 * Three node runtimes (rt_trio.h); node 1 leads, then loses its peers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/readq.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "paxos/mp.h"
#include "raft/raft.h"
#include "rt_host.h"
#include "rt_trio.h"

static bool lose_all(void *arg, const struct sabha_msg *m) {
  (void)arg;
  (void)m;
  return true;
}

static void reads_past_the_queue_bound_are_refused_and_counted(void) {
  struct rt_trio t;
  CHECK(rt_trio_open(&t, "raft") == 0);
  CHECK(rt_trio_elect(&t, 1));
  struct rt *rt = t.node[1].rt;
  rt->cfg.request_timeout_ms = 3600000; /* the reads wait, not time out */
  t.drop = lose_all;
  /* Clients of up to 1000 reads each: a connection's queue is bounded
   * too, and this is about the node's. */
  enum { PER_CLIENT = 1000, CLIENTS = READQ_MAX / PER_CLIENT + 1 };
  static char gets[PER_CLIENT * 7];
  for (size_t i = 0; i < PER_CLIENT; i++)
    memcpy(gets + i * 7, "GET k\r\n", 7);
  struct rt_stream *c[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    CHECK(rt_stream_accept(rt, true, &c[i]) == NULL);
    rt_stream_input(c[i], gets, sizeof gets);
    rt_trio_settle(&t);
  }
  /* READQ_MAX wait; the rest were refused (their errors go out behind
   * the replies to the reads before them). A new client's read is told
   * at once. */
  CHECK(rt->m.reads_refused == (uint64_t)CLIENTS * PER_CLIENT - READQ_MAX);
  struct rt_stream *d;
  CHECK(rt_stream_accept(rt, true, &d) == NULL);
  rt_stream_input(d, "GET k\r\n", 7);
  rt_trio_settle(&t);
  CHECK(strcmp(rt_stream_said(d), "-TRYAGAIN too many linearizable reads "
                                  "wait for a quorum here (4096); "
                                  "retry\r\n") == 0);
  CHECK(rt->m.reads_refused ==
        (uint64_t)CLIENTS * PER_CLIENT - READQ_MAX + 1);
  rt_trio_close(&t);
}

/* Counts the heartbeats node 1 sends for read rounds (context > 0), losing
 * none. */
struct read_rounds {
  uint32_t type;
  uint64_t sent;
};

static bool count_read_heartbeats(void *arg, const struct sabha_msg *m) {
  struct read_rounds *rr = arg;
  if (m->from == 1 && m->type == rr->type && m->context > 0)
    rr->sent++;
  return false;
}

/* Reads that reach the leader before its heartbeats leave share their
 * round: 10 pipelined GETs cost one heartbeat per follower, not ten (each
 * read still noted the commit index when it came, and is served once a
 * majority acknowledged a round sent after it). */
static void pipelined_reads_share_one_round(const char *protocol,
                                            uint32_t heartbeat_type) {
  struct rt_trio t;
  CHECK(rt_trio_open(&t, protocol) == 0);
  CHECK(rt_trio_elect(&t, 1));
  struct rt *rt = t.node[1].rt;
  struct rt_stream *c;
  CHECK(rt_stream_accept(rt, true, &c) == NULL);
  rt_stream_input(c, "SET k v\r\n", 9);
  rt_trio_settle(&t);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  struct read_rounds rr = {heartbeat_type, 0};
  t.drop = count_read_heartbeats;
  t.drop_arg = &rr;
  static char gets[10 * 7];
  for (size_t i = 0; i < 10; i++)
    memcpy(gets + i * 7, "GET k\r\n", 7);
  uint64_t reads = rt->m.reads;
  rt_stream_input(c, gets, sizeof gets);
  rt_trio_settle(&t);
  CHECK(rt->m.reads - reads == 10);
  char want[10 * 7 + 1] = "";
  for (size_t i = 0; i < 10; i++)
    strcat(want, "$1\r\nv\r\n");
  CHECK(strcmp(rt_stream_said(c), want) == 0);
  CHECK(rr.sent == 2);
  rt_trio_close(&t);
}

static void pipelined_reads_share_one_round_raft(void) {
  pipelined_reads_share_one_round("raft", RAFT_MSG_HEARTBEAT);
}

static void pipelined_reads_share_one_round_multipaxos(void) {
  pipelined_reads_share_one_round("multipaxos", MP_MSG_HEARTBEAT);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(reads_past_the_queue_bound_are_refused_and_counted),
      TEST(pipelined_reads_share_one_round_raft),
      TEST(pipelined_reads_share_one_round_multipaxos),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
