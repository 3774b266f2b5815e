/* The log's clock runs at the wall clock's pace, whatever the load.
 *
 * A leader stamps every write it proposes with its wall clock; the store
 * takes the highest stamp applied as its clock, and TTLs (SET PX, EXPIRE)
 * and the applications' leases run on it. Stamps used to be made strictly
 * increasing, one millisecond past the last when the wall clock had not
 * moved: under load every write pushed the clock a millisecond ahead, and a
 * key set with PX 600000 was gone after 20,000 pipelined SETs that took an
 * eighth of a second. Several writes in one millisecond now share it.
 *
 * A single-member node (it leads itself) over memfs; the test's clock
 * stands still while it writes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "rt_host.h"

/* Hands `text` to the node as one read and returns the last integer reply
 * (":N") in what comes out, or INT64_MIN if there is none. */
static int64_t ask_int(struct rt_node *n, struct rt_stream *c,
                       const char *text) {
  rt_stream_input(c, text, strlen(text));
  rt_node_settle(n);
  const uint8_t *data;
  size_t len;
  int64_t v = INT64_MIN;
  while (rt_stream_out_take(c, &data, &len)) {
    for (size_t i = 0; i + 1 < len; i++)
      if (data[i] == ':' && (i == 0 || data[i - 1] == '\n'))
        v = strtoll((const char *)data + i + 1, NULL, 10);
    rt_stream_out_done(c);
  }
  return v;
}

/* Starts the single-member node, waits until it leads and sets *out to a
 * client connection to it (left NULL when that fails). */
static void start_leader(struct rt_node *n, struct rt_stream **out) {
  *out = NULL;
  CHECK(rt_node_start_alone(n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n->rt, true, &c) == NULL && c != NULL);
  *out = c;
}

/* `count` ticks of the node's clock, 50 ms apart, with no writes. */
static void idle_ticks(struct rt_node *n, int count) {
  for (int k = 0; k < count; k++) {
    n->h.now_ms += 50;
    rt_tick(n->rt);
    rt_node_settle(n);
  }
}

static void runtime_log_clock_keeps_the_wall_clocks_pace(void) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  start_leader(&n, &c);
  CHECK(c != NULL);

  rt_stream_input(c, "SET ttl v PX 60000\r\n", 20);
  rt_node_settle(&n);
  CHECK(ask_int(&n, c, "PTTL ttl\r\n") == 60000);
  /* 2,000 writes, pipelined in batches of 50, in one millisecond. */
  static char batch[50 * 32];
  int oks = 0;
  for (int r = 0; r < 40; r++) {
    size_t len = 0;
    for (int i = 0; i < 50; i++)
      len += (size_t)snprintf(batch + len, sizeof batch - len,
                              "SET k%d.%d x\r\n", r, i);
    rt_stream_input(c, batch, len);
    rt_node_settle(&n);
    oks += rt_stream_take_oks(c);
  }
  CHECK(oks == 2000);
  CHECK(ask_int(&n, c, "PTTL ttl\r\n") == 60000);
  /* The clock moves on with the wall clock, and the TTL with it. */
  n.h.now_ms += 1500;
  rt_stream_input(c, "SET other y\r\n", 13);
  rt_node_settle(&n);
  CHECK(ask_int(&n, c, "PTTL ttl\r\n") == 58500);
  rt_node_close(&n);
}

/* Everything the node wrote back to `text`, as one string (truncated to
 * out's size). */
static void ask_text(struct rt_node *n, struct rt_stream *c, const char *text,
                     char *out, size_t cap) {
  rt_stream_input(c, text, strlen(text));
  rt_node_settle(n);
  const uint8_t *data;
  size_t len, at = 0;
  while (rt_stream_out_take(c, &data, &len)) {
    for (size_t i = 0; i < len && at + 1 < cap; i++)
      out[at++] = (char)data[i];
    rt_stream_out_done(c);
  }
  out[at] = '\0';
}

/* A lock's lease ends for reads without an application write, even when
 * key-value writes have carried the store's clock past its expiry: the
 * store and the applications keep a clock each, and a leader that judged
 * the lease's due time by the store's clock alone never proposed the clock
 * entry that ends it, so LOCK.GET answered "held" for as long as no
 * application write came. */
static void runtime_lock_lease_ends_for_reads_after_kv_writes(void) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  start_leader(&n, &c);
  CHECK(c != NULL);

  CHECK(ask_int(&n, c, "LOCK.ACQUIRE l alice 1000\r\n") == 1);
  char text[256];
  ask_text(&n, c, "LOCK.GET l\r\n", text, sizeof text);
  CHECK(strstr(text, "alice") != NULL);
  /* A key-value write stamped past the lease's end, then time passes with
   * no write of any kind: the leader's clock entries must end the lease. */
  n.h.now_ms += 1500;
  rt_stream_input(c, "SET other y\r\n", 13);
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  idle_ticks(&n, 20);
  ask_text(&n, c, "LOCK.GET l\r\n", text, sizeof text);
  if (strstr(text, "alice") != NULL)
    fprintf(stderr, "LOCK.GET after the lease: %s\n", text);
  CHECK(strstr(text, "alice") == NULL);
  rt_node_close(&n);
}

/* On an idle node the time a key has left counts down: the log's clock
 * moves only with entries, and without writes the leader used to propose
 * a clock entry only once something had expired, so PTTL said 100000 for
 * as long as nobody wrote. Now a clock entry a second keeps the log's
 * clock within a second of the leader's while something may expire. */
static void runtime_ttl_counts_down_without_writes(void) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  start_leader(&n, &c);
  CHECK(c != NULL);
  const char *set = "SET idle v PX 100000\r\n";
  rt_stream_input(c, set, strlen(set));
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  idle_ticks(&n, 120); /* 6 s of ticks, no writes */
  int64_t left = ask_int(&n, c, "PTTL idle\r\n");
  if (left < 93000 || left > 95000)
    fprintf(stderr, "PTTL after 6 s idle: %lld\n", (long long)left);
  CHECK(left >= 93000 && left <= 95000);
  /* Without anything that may expire, the clock is left alone. */
  const char *persist = "PERSIST idle\r\n";
  rt_stream_input(c, persist, strlen(persist));
  rt_node_settle(&n);
  uint64_t entries = rt_metrics(n.rt)->clock_entries;
  idle_ticks(&n, 60);
  CHECK(rt_metrics(n.rt)->clock_entries == entries);
  rt_node_close(&n);
}

/* A wall clock stepped back (an hour, by an operator or a VM resumed with a
 * stale clock) does not stop the log's clock: stamps never go back, and
 * they used to stand at the last one until the wall clock caught up, so
 * for that hour TTLs did not count down and leases did not end. They now
 * run on at half the monotonic clock's pace across the gap, and follow the
 * wall clock again once it leads. */
static void runtime_clock_runs_on_after_the_wall_clock_steps_back(void) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  start_leader(&n, &c);
  CHECK(c != NULL);
  const char *set = "SET k v PX 10000\r\n";
  rt_stream_input(c, set, strlen(set));
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  n.h.wall_step_ms = -3600 * 1000; /* an hour back */
  for (int s = 1; s <= 4; s++) {
    n.h.now_ms += 1000;
    rt_stream_input(c, "SET other y\r\n", 13);
    rt_node_settle(&n);
    CHECK(rt_stream_take_oks(c) == 1);
    int64_t left = ask_int(&n, c, "PTTL k\r\n");
    if (left != 10000 - 500 * s)
      fprintf(stderr, "PTTL %d s after the step back: %lld\n", s,
              (long long)left);
    CHECK(left == 10000 - 500 * s);
  }
  /* Idle, the clock entries run on the same way, and the key expires:
   * 8 s of the log's clock were left, 16 s of time. */
  idle_ticks(&n, 300);
  CHECK(ask_int(&n, c, "EXISTS k\r\n") == 1);
  idle_ticks(&n, 40);
  CHECK(ask_int(&n, c, "EXISTS k\r\n") == 0);
  /* The wall clock past the log's again: stamps follow it. */
  n.h.wall_step_ms = 5000;
  set = "SET j v PX 10000\r\n";
  rt_stream_input(c, set, strlen(set));
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  n.h.now_ms += 2000;
  rt_stream_input(c, "SET other y\r\n", 13);
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  CHECK(ask_int(&n, c, "PTTL j\r\n") == 8000);
  rt_node_close(&n);
}

/* A log's clock pushed an hour ahead by a leader whose clock was fast,
 * then led by a node whose clock is right: its stamps run on from the
 * log's clock at half pace, so its wall clock catches up, in two hours,
 * rather than the log's clock staying an hour ahead for good. */
static void runtime_right_clock_catches_up_with_a_log_clock_ahead(void) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  start_leader(&n, &c);
  CHECK(c != NULL);
  n.h.wall_step_ms = 3600 * 1000; /* the fast leader's stamps */
  rt_stream_input(c, "SET other y\r\n", 13);
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  n.h.wall_step_ms = 0; /* right again */
  const char *set = "SET k v PX 100000\r\n";
  rt_stream_input(c, set, strlen(set));
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  for (int m = 0; m < 130; m++) { /* 130 minutes, a write a minute */
    n.h.now_ms += 60000;
    rt_stream_input(c, "SET other y\r\n", 13);
    rt_node_settle(&n);
    CHECK(rt_stream_take_oks(c) == 1);
  }
  /* The key went after 200 s. The wall clock leads again, so a time in
   * the wall clock's terms means what it says: 10 s from now is not past
   * (with the log's clock an hour ahead it would be, and the key gone). */
  CHECK(ask_int(&n, c, "EXISTS k\r\n") == 0);
  rt_stream_input(c, "SET j v\r\n", 9);
  rt_node_settle(&n);
  CHECK(rt_stream_take_oks(c) == 1);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "PEXPIREAT j %llu\r\n",
           (unsigned long long)(1700000000000ull + n.h.now_ms + 10000));
  CHECK(ask_int(&n, c, cmd) == 1);
  CHECK(ask_int(&n, c, "EXISTS j\r\n") == 1);
  int64_t left = ask_int(&n, c, "PTTL j\r\n");
  CHECK(left > 9000 && left <= 10000);
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(runtime_log_clock_keeps_the_wall_clocks_pace),
      TEST(runtime_lock_lease_ends_for_reads_after_kv_writes),
      TEST(runtime_ttl_counts_down_without_writes),
      TEST(runtime_clock_runs_on_after_the_wall_clock_steps_back),
      TEST(runtime_right_clock_catches_up_with_a_log_clock_ahead),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
