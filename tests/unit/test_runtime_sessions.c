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
 * A single-member node (it leads itself) over memfs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "rt_host.h"

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

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(an_evicted_session_is_replaced_and_the_write_applied),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
