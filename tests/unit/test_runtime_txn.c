/* WATCH and EXEC (src/node/clients.c, commands.c) against the writes of
 * other clients that share one log entry.
 *
 * WATCH answers the index the serving node has applied; EXEC's transaction
 * aborts when a watched key's revision (the index of the entry that last
 * changed it) is past that index. A leader packs the commands proposed
 * between two ready batches into one entry, so a WATCH answered while that
 * entry is being applied (it waited behind a write of its own stream that
 * the entry answers, or behind another client's on a follower's forwarding
 * link) must not name the entry itself: a command later in the same entry
 * changes a key after the WATCH with a revision that is not past it.
 *
 * A single-member node (it leads itself) over memfs; the test is its host
 * and its disk thread, so it decides when an entry commits. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "rt_host.h"

static void say(struct rt_node *n, struct rt_stream *c, const char *text) {
  rt_stream_input(c, text, strlen(text));
  rt_node_settle(n);
}

static void a_write_in_the_watch_entry_after_it_aborts_exec(void) {
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  /* Every fsync on the test's "thread": entries commit when it says. */
  n.rt->cfg.fsync = RT_FSYNC_THREAD;
  n.h.sync_later = true;
  struct rt_stream *a = NULL, *b = NULL;
  CHECK(rt_stream_accept(n.rt, true, &a) == NULL && a != NULL);
  CHECK(rt_stream_accept(n.rt, true, &b) == NULL && b != NULL);
  say(&n, a, "SET k 0\r\n");
  say(&n, b, "SET other 0\r\n"); /* b's session, so its SET is one command */
  rt_node_sync(&n);
  CHECK(strcmp(rt_stream_said(a), "+OK\r\n") == 0);
  CHECK(strcmp(rt_stream_said(b), "+OK\r\n") == 0);

  /* a: a write, then WATCH k and GET k behind it; b: SET k. Both writes
   * go in one entry, a's first; the reads are confirmed before it commits
   * and wait in a's queue behind its write. */
  rt_stream_input(a, "SET x 1\r\nWATCH k\r\nGET k\r\n", 25);
  rt_stream_input(b, "SET k b\r\n", 9);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(a), "") == 0);
  rt_node_sync(&n);
  /* a's WATCH and GET came after its SET x and before b's SET k: GET saw
   * k unchanged. */
  CHECK(strcmp(rt_stream_said(a), "+OK\r\n+OK\r\n$1\r\n0\r\n") == 0);
  CHECK(strcmp(rt_stream_said(b), "+OK\r\n") == 0);

  /* k changed after the WATCH: the transaction must not apply. */
  say(&n, a, "MULTI\r\nSET k a\r\nEXEC\r\n");
  rt_node_sync(&n);
  CHECK(strcmp(rt_stream_said(a), "+OK\r\n+QUEUED\r\n*-1\r\n") == 0);
  say(&n, a, "GET k\r\n");
  rt_node_sync(&n);
  CHECK(strcmp(rt_stream_said(a), "$1\r\nb\r\n") == 0);
  rt_node_close(&n);
}

/* UNWATCH, or DISCARD after MULTI, pipelined behind a WATCH not yet
 * answered, forgets the keys of that WATCH too, as Redis does: the
 * transaction after it applies, though the key changed. (The WATCH's keys
 * are kept when its reply reaches the head of the queue.) */
static void unwatch_behind_a_watch_in_flight_forgets_its_keys(void) {
  static const char *const forget[] = {"UNWATCH\r\n",
                                       "MULTI\r\nDISCARD\r\n"};
  static const char *const said[] = {"+OK\r\n+OK\r\n",
                                     "+OK\r\n+OK\r\n+OK\r\n"};
  for (int i = 0; i < 2; i++) {
    struct rt_node n;
    CHECK(rt_node_start_alone(&n) == 0);
    struct rt_stream *a = NULL, *b = NULL;
    CHECK(rt_stream_accept(n.rt, true, &a) == NULL && a != NULL);
    CHECK(rt_stream_accept(n.rt, true, &b) == NULL && b != NULL);
    say(&n, a, "SET k 0\r\n");
    CHECK(strcmp(rt_stream_said(a), "+OK\r\n") == 0);
    char in[64];
    snprintf(in, sizeof in, "WATCH k\r\n%s", forget[i]);
    say(&n, a, in);
    CHECK(strcmp(rt_stream_said(a), said[i]) == 0);
    say(&n, b, "SET k 1\r\n");
    CHECK(strcmp(rt_stream_said(b), "+OK\r\n") == 0);
    say(&n, a, "MULTI\r\nSET j 1\r\nEXEC\r\n");
    const char *got = rt_stream_said(a);
    if (strcmp(got, "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n") != 0)
      fprintf(stderr, "after %s: [%s]\n", forget[i], got);
    CHECK(strcmp(got, "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n") == 0);
    rt_node_close(&n);
  }
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(a_write_in_the_watch_entry_after_it_aborts_exec),
      TEST(unwatch_behind_a_watch_in_flight_forgets_its_keys),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
