/* A connection's exactly-once session, as the store's table bounds it.
 *
 * Every connection that writes registers a session through the log; the
 * store keeps the 10000 used most recently and refuses the commands of an
 * evicted one, applying nothing. The node never sends a command twice, so
 * such a refusal means the write was not applied: the node opens a new
 * session and proposes the write again, in the connection's order, rather
 * than answer that its outcome is unknown (which an INCR's client cannot
 * settle by reading back).
 *
 * A leader change may lose a write of a connection while the connection's
 * later ones go on: the store refuses those as out of order, applying
 * nothing. Neither was applied, so both go again, in order, in a new
 * session, rather than the later one failing with a refusal that tells the
 * client nothing it can act on.
 *
 * A single-member node (it leads itself) over memfs, or three (rt_trio.h)
 * for a leader change. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "rt_host.h"
#include "rt_trio.h"

static void say(struct rt_node *n, struct rt_stream *c, const char *text) {
  rt_stream_input(c, text, strlen(text));
  rt_node_settle(n);
}

static void an_evicted_session_is_replaced_and_the_write_applied(void) {
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *a = NULL;
  CHECK(rt_stream_accept(n.rt, true, &a) == NULL && a != NULL);
  say(&n, a, "SET k 0\r\n");
  CHECK(strcmp(rt_stream_said(a), "+OK\r\n") == 0);

  /* 10000 connections that write once each, a hundred at a time: each
   * registers a session, and the first connection's is evicted. */
  for (int round = 0; round < 100; round++) {
    struct rt_stream *s[100];
    for (int i = 0; i < 100; i++) {
      CHECK(rt_stream_accept(n.rt, true, &s[i]) == NULL && s[i] != NULL);
      rt_stream_input(s[i], "SET other x\r\n", 13);
    }
    rt_node_settle(&n);
    for (int i = 0; i < 100; i++) {
      CHECK(strcmp(rt_stream_said(s[i]), "+OK\r\n") == 0);
      rt_stream_lost(s[i]);
      rt_stream_free(s[i]);
    }
  }

  /* Three pipelined writes, proposed in the evicted session and refused
   * by the store: applied once each, in order. */
  say(&n, a, "INCR k\r\nINCR k\r\nSET k 7\r\n");
  CHECK(strcmp(rt_stream_said(a), ":1\r\n:2\r\n+OK\r\n") == 0);
  say(&n, a, "GET k\r\n");
  CHECK(strcmp(rt_stream_said(a), "$1\r\n7\r\n") == 0);
  rt_node_close(&n);
}

/* What the trio's network loses: every message to or from `isolated`, and
 * node `from`'s messages carrying the entry at `index`. */
struct loss {
  uint32_t isolated;
  uint32_t from;
  uint64_t index;
};

static bool lose(void *arg, const struct sabha_msg *m) {
  const struct loss *l = arg;
  if (l->isolated != 0 && (m->from == l->isolated || m->to == l->isolated))
    return true;
  return l->index != 0 && m->from == l->from && m->n_entries > 0 &&
         m->entries[0].index <= l->index &&
         l->index <= m->entries[m->n_entries - 1].index;
}

/* Moves node `id`'s clock on by `ms`, settling after each step. */
static void trio_tick(struct rt_trio *t, uint32_t id, uint64_t ms) {
  for (uint64_t k = 0; k < ms; k += 10) {
    t->node[id].h.now_ms += 10;
    rt_tick(t->node[id].rt);
    rt_trio_settle(t);
  }
}

static uint64_t last_index(struct rt_trio *t, uint32_t id) {
  struct sabha_status st;
  rt_status(t->node[id].rt, &st);
  return st.last_index;
}

/* A client of node `id`, or NULL. */
static struct rt_stream *trio_client(struct rt_trio *t, uint32_t id) {
  struct rt_stream *s = NULL;
  return rt_stream_accept(t->node[id].rt, true, &s) == NULL ? s : NULL;
}

static void trio_say(struct rt_trio *t, struct rt_stream *c, const char *text) {
  rt_stream_input(c, text, strlen(text));
  rt_trio_settle(t);
}

/* The start both cases share. Node 1 leads (writes wait up to 60 s), and
 * a client's SET k 1, after SET k 0, is proposed there, its entry lost on
 * the way to the others; node 2 leads without node 1 and commits another
 * client's write at the SET's index (or after a no-op there); node 1 leads
 * again. *out: the client (NULL when a check failed); *set_at: node 1's
 * clock when the SET was sent. */
static void set_lost_then_node_1_again(struct rt_trio *t, struct loss *loss,
                                       const char *protocol,
                                       struct rt_stream **out,
                                       uint64_t *set_at) {
  *out = NULL;
  CHECK(rt_trio_open(t, protocol) == 0);
  t->drop = lose;
  t->drop_arg = loss;
  CHECK(rt_trio_elect(t, 1));
  t->node[1].rt->cfg.request_timeout_ms = 60000;
  struct rt_stream *c = trio_client(t, 1);
  CHECK(c != NULL);
  trio_say(t, c, "SET k 0\r\n");
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);

  loss->from = 1;
  loss->index = last_index(t, 1) + 1;
  trio_say(t, c, "SET k 1\r\n");
  *set_at = t->node[1].h.now_ms;
  CHECK(last_index(t, 1) == loss->index && last_index(t, 2) < loss->index);

  loss->isolated = 1;
  CHECK(rt_trio_elect(t, 2));
  struct rt_stream *d = trio_client(t, 2);
  CHECK(d != NULL);
  trio_say(t, d, "SET other 1\r\n");
  CHECK(strcmp(rt_stream_said(d), "+OK\r\n") == 0);
  CHECK(rt_applied_index(t->node[3].rt) >= loss->index);
  loss->isolated = 0;
  trio_tick(t, 2, 100); /* node 1 hears of node 2's term */
  CHECK(rt_trio_elect(t, 1));
  *out = c;
}

/* Node 1 leads, and a connection's SET is proposed there, its entry lost
 * on the way to the others. Node 2 leads without node 1 and commits
 * another client's write at the SET's index, or after a no-op there (Raft
 * cuts the SET from node 1's log when node 1 hears of it; Multi-Paxos
 * chooses the other write for the slot). Node 1
 * leads again, and the connection's INCR, proposed in the same session
 * behind the SET that still waits, commits: the store refuses it, out of
 * order, applying nothing. (Neither engine lets a leader's later entry in
 * without its earlier one: the write behind a lost one is proposed in a
 * later term of the same node, or of a link's session on it.) The SET was
 * never applied and the INCR was refused: both go again, in order, and
 * the client is answered as if the leader had never changed. With
 * `another_first`, another client's write is proposed on node 1 just
 * before the INCR: it commits first, and the SET, found lost then, goes
 * again with the INCR still on its way to the same refusal. */
static void lost_write_then_next(const char *protocol, bool another_first) {
  struct rt_trio t;
  struct loss loss = {0};
  struct rt_stream *c;
  uint64_t set_at;
  set_lost_then_node_1_again(&t, &loss, protocol, &c, &set_at);
  CHECK(c != NULL);
  struct rt_stream *e = trio_client(&t, 1);
  CHECK(e != NULL);
  if (another_first)
    rt_stream_input(e, "SET e 1\r\n", 9);
  trio_say(&t, c, "INCR k\r\n");
  trio_tick(&t, 1, 100);
  CHECK(strcmp(rt_stream_said(e), another_first ? "+OK\r\n" : "") == 0);
  const char *got = rt_stream_said(c);
  if (strcmp(got, "+OK\r\n:2\r\n") != 0)
    fprintf(stderr, "%s: the client got [%s]\n", protocol, got);
  CHECK(strcmp(got, "+OK\r\n:2\r\n") == 0);
  trio_say(&t, c, "GET k\r\n");
  CHECK(strcmp(rt_stream_said(c), "$1\r\n2\r\n") == 0);
  rt_trio_close(&t);
}

static void
raft_a_write_lost_to_a_leader_change_goes_again_with_the_next(void) {
  lost_write_then_next("raft", false);
  lost_write_then_next("raft", true);
}

static void
multipaxos_a_write_lost_to_a_leader_change_goes_again_with_the_next(void) {
  lost_write_then_next("multipaxos", false);
  lost_write_then_next("multipaxos", true);
}

/* As lost_write_then_next, but the SET's wait runs out while the INCR
 * behind it, in the same session, is on its way: the SET is answered
 * "outcome unknown" and is no longer this node's to send again, and the
 * store refuses the INCR, out of order, applying nothing. Its client is
 * told so in words it can act on (TRYAGAIN, not applied), not with the
 * store's "an earlier one is missing". */
static void timed_out_write_then_next(const char *protocol) {
  struct rt_trio t;
  struct loss loss = {0};
  struct rt_stream *c;
  uint64_t set_at;
  set_lost_then_node_1_again(&t, &loss, protocol, &c, &set_at);
  CHECK(c != NULL);
  CHECK(t.node[1].h.now_ms < set_at + 60000);
  /* The INCR is held on its way while the SET's wait runs out. */
  loss.index = last_index(&t, 1) + 1;
  trio_say(&t, c, "INCR k\r\n");
  CHECK(strcmp(rt_stream_said(c), "") == 0);
  trio_tick(&t, 1, set_at + 60000 + 100 - t.node[1].h.now_ms);
  const char *got = rt_stream_said(c);
  CHECK(strncmp(got, "-TRYAGAIN", 9) == 0 && strstr(got, "unknown") != NULL);
  loss.index = 0;
  trio_tick(&t, 1, 200);
  got = rt_stream_said(c);
  if (strncmp(got, "-TRYAGAIN", 9) != 0 || strstr(got, "not applied") == NULL)
    fprintf(stderr, "%s: the client got [%s]\n", protocol, got);
  CHECK(strncmp(got, "-TRYAGAIN", 9) == 0 && strstr(got, "not applied") != NULL);
  trio_say(&t, c, "GET k\r\n");
  CHECK(strcmp(rt_stream_said(c), "$1\r\n0\r\n") == 0);
  rt_trio_close(&t);
}

static void a_write_behind_one_that_timed_out_is_told_it_was_not_applied(void) {
  timed_out_write_then_next("raft");
  timed_out_write_then_next("multipaxos");
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(an_evicted_session_is_replaced_and_the_write_applied),
      TEST(raft_a_write_lost_to_a_leader_change_goes_again_with_the_next),
      TEST(multipaxos_a_write_lost_to_a_leader_change_goes_again_with_the_next),
      TEST(a_write_behind_one_that_timed_out_is_told_it_was_not_applied),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
