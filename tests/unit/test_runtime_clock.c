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

static void runtime_log_clock_keeps_the_wall_clocks_pace(void) {
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL && c != NULL);

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

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(runtime_log_clock_keeps_the_wall_clocks_pace),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
