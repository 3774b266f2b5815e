/* SABHA.WATCH (src/node/watch.c) through the runtime's API, as a host sees
 * it: one node that leads alone over memfs, its clients, and watchers.
 *
 * What it holds a watcher to: the revision it is told to resume from when
 * it falls behind is the one after the last it was given, or, given none
 * yet, after the one it started at: resumed there, at this node or
 * another, it gets every change once and none from before it began. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "rt_host.h"

/* A watcher started without FROM that falls behind before any change it
 * watches came (here a change larger than the whole window restarts it)
 * resumes after the revision it started at: told FROM 1, it would get, at
 * a node that still holds them, every change before it began. */
static void a_watcher_behind_before_its_first_event_resumes_where_it_began(
    void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  rt_node_config_alone(&n, &cfg);
  cfg.watch_window_bytes = 64u << 10;
  CHECK(rt_node_start(&n, &cfg) == 0);
  CHECK(rt_node_elect(&n) == 0);
  struct rt_stream *c = NULL, *w = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  CHECK(rt_stream_accept(n.rt, true, &w) == NULL);
  rt_stream_input(c, "SET x 1\r\nSET x 2\r\n", 18);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n+OK\r\n") == 0);
  uint64_t began = rt_applied_index(n.rt);
  rt_stream_input(w, "SABHA.WATCH x BATCH 0\r\n", 23);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(w), "") == 0);
  CHECK(rt_stream_say_set(c, "y", 100u << 10));
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  char want[64];
  snprintf(want, sizeof want, "resume with FROM %" PRIu64 "\r\n", began + 1);
  const char *got = rt_stream_said(w);
  if (strstr(got, want) == NULL)
    fprintf(stderr, "the watcher got: [%s], not [%s]\n", got, want);
  CHECK(strncmp(got, "-ERR the watch fell behind", 26) == 0 &&
        strstr(got, want) != NULL);
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(a_watcher_behind_before_its_first_event_resumes_where_it_began),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
