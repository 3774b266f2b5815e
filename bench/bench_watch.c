/* bench_watch: what the SABHA.WATCH window (src/node/watch.c) costs a node
 * per change, with nobody watching, and what one watcher's catch-up costs
 * a turn of the loop.
 *
 * One node leads alone over an in-memory disk (the unit tests' host,
 * tests/unit/support/rt_host.c); a client gives it commands, each settled
 * before the next, so figures include the log and the store around the
 * window: compare a row with its small-value twin to see the window.
 *
 * APPEND: a value of --value-bytes (8 MiB less --appends by default, the
 * most a value may reach) is built by APPENDs of 256 KiB, then --appends
 * APPENDs of one byte follow; reported are the CPU time per APPEND and the
 * bytes each put into the watch window (rt_metrics.
 * watch_window_bytes_copied), beside the same APPENDs to a value of 16
 * bytes. A window that copied whole values shows the value's size per
 * APPEND there.
 *
 * Catch-up: --catchup-events SETs (in MULTIs of 500) fill the window, then
 * a watcher asks FROM the oldest revision it holds, with a prefix nothing
 * matches; reported are the
 * CPU time of the turn that takes its command (the longest a loop turn
 * waits on it) and the turns until it has looked at everything.
 *
 * Watchers: 0, 100 and 1000 watchers (or --watchers N) of prefixes no
 * key has, and one of the prefix every key has, then --writes SETs of
 * small values; reported are the CPU time per SET and the window events
 * watchers looked at per SET (rt_metrics.watch_events_examined). With a
 * cost that does not grow with the watchers, the rows are alike.
 *
 * Prefix lengths: a new change is looked up once per prefix length some
 * group of watchers has, up to its key's length (at most 1025 lengths),
 * so a client that watches many lengths taxes long keys. 0 and 1024
 * watchers of prefixes of lengths 1..1024 that no key has, then --writes
 * SETs with keys of 16 and 1100 bytes; reported is the CPU time per SET.
 *
 * Output is `key: value` lines; nothing is asserted.
 *
 *   bench_watch [--appends N] [--value-bytes N] [--catchup-events N]
 *               [--watchers N] [--writes N] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "node/runtime.h"
#include "rt_host.h"

#ifndef SABHA_COMMIT
#define SABHA_COMMIT "unknown"
#endif

#define CHUNK_BYTES (256u << 10)
#define TXN_SETS 500u

static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void drain(struct rt_stream *c) {
  const uint8_t *data;
  size_t len;
  while (rt_stream_out_take(c, &data, &len))
    rt_stream_out_done(c);
}

static void say(struct rt_node *n, struct rt_stream *c, const void *cmd,
                size_t len) {
  rt_stream_input(c, cmd, len);
  rt_node_settle(n);
  drain(c);
}

static int node_open(struct rt_node *n, struct rt_stream **c) {
  struct rt_config cfg;
  if (rt_node_init(n, &cfg) != 0)
    return -1;
  rt_node_config_alone(n, &cfg);
  if (rt_node_start(n, &cfg) != 0 || rt_node_elect(n) != 0)
    return -1;
  return rt_stream_accept(n->rt, true, c) == NULL ? 0 : -1;
}

/* `appends` APPENDs of a byte to a value of `value_bytes`. */
static int bench_append(const char *name, uint64_t value_bytes,
                        uint64_t appends) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  if (node_open(&n, &c) != 0)
    return -1;
  char *cmd = malloc(CHUNK_BYTES + 64);
  if (cmd == NULL)
    return -1;
  for (uint64_t have = 0; have < value_bytes;) {
    uint64_t k =
        value_bytes - have < CHUNK_BYTES ? value_bytes - have : CHUNK_BYTES;
    int head =
        sprintf(cmd, "*3\r\n$6\r\nAPPEND\r\n$1\r\nv\r\n$%" PRIu64 "\r\n", k);
    memset(cmd + head, 'v', k);
    memcpy(cmd + head + k, "\r\n", 2);
    say(&n, c, cmd, (size_t)head + k + 2);
    have += k;
  }
  free(cmd);
  uint64_t copied = rt_metrics(n.rt)->watch_window_bytes_copied;
  double t0 = cpu_ns();
  for (uint64_t i = 0; i < appends; i++)
    say(&n, c, "APPEND v x\r\n", 12);
  double us = (cpu_ns() - t0) / 1e3 / (double)appends;
  copied = rt_metrics(n.rt)->watch_window_bytes_copied - copied;
  printf("us_per_append_%s: %.2f\nwindow_bytes_per_append_%s: %.1f\n", name, us,
         name, (double)copied / (double)appends);
  rt_node_close(&n);
  return 0;
}

static int bench_catchup(uint64_t events) {
  struct rt_node n;
  struct rt_stream *c = NULL, *w = NULL;
  if (node_open(&n, &c) != 0 || rt_stream_accept(n.rt, true, &w) != NULL)
    return -1;
  char *cmd = malloc(TXN_SETS * 40 + 32);
  if (cmd == NULL)
    return -1;
  for (uint64_t done = 0; done < events; done += TXN_SETS) {
    size_t at = (size_t)sprintf(cmd, "MULTI\r\n");
    for (uint32_t i = 0; i < TXN_SETS; i++)
      at += (size_t)sprintf(cmd + at, "SET key:%" PRIu64 " x\r\n", done + i);
    at += (size_t)sprintf(cmd + at, "EXEC\r\n");
    say(&n, c, cmd, at);
  }
  free(cmd);
  /* FROM the oldest revision the window serves (the refusal of FROM 1
   * names it, when events were dropped). */
  uint64_t from = 1;
  rt_stream_input(w, "SABHA.WATCH nothing: FROM 1\r\n", 29);
  const uint8_t *data;
  size_t len;
  if (rt_stream_out_take(w, &data, &len)) {
    char said[256];
    snprintf(said, sizeof said, "%.*s", (int)(len < 255 ? len : 255),
             (const char *)data);
    const char *at = strstr(said, "from revision ");
    if (at != NULL)
      from = strtoull(at + 14, NULL, 10);
    rt_stream_out_done(w);
  }
  char watch[96];
  snprintf(watch, sizeof watch, "SABHA.WATCH nothing: FROM %" PRIu64 "\r\n",
           from);
  if (rt_stream_accept(n.rt, true, &w) != NULL)
    return -1;
  double t0 = cpu_ns();
  rt_stream_input(w, watch, strlen(watch));
  double first_us = (cpu_ns() - t0) / 1e3;
  int turns = 1;
  double most_us = first_us;
  for (; turns < 100000; turns++) {
    double t1 = cpu_ns();
    bool more = rt_run(n.rt);
    double us = (cpu_ns() - t1) / 1e3;
    if (us > most_us)
      most_us = us;
    if (!more)
      break;
  }
  printf("catchup_events: %" PRIu64 "\ncatchup_first_turn_us: %.0f\n"
         "catchup_turn_us_max: %.0f\ncatchup_turns: %d\n",
         events, first_us, most_us, turns);
  rt_node_close(&n);
  return 0;
}

/* `idle` watchers of prefixes no key has and one of every key, then
 * `writes` SETs. */
static int bench_watchers(uint64_t idle, uint64_t writes) {
  struct rt_node n;
  struct rt_stream *c = NULL, *near = NULL;
  if (node_open(&n, &c) != 0 || rt_stream_accept(n.rt, true, &near) != NULL)
    return -1;
  for (uint64_t i = 0; i < idle; i++) {
    struct rt_stream *w = NULL;
    if (rt_stream_accept(n.rt, true, &w) != NULL)
      return -1;
    char cmd[64];
    int len = snprintf(cmd, sizeof cmd,
                       "SABHA.WATCH idle%" PRIu64 ": BATCH 0\r\n", i);
    rt_stream_input(w, cmd, (size_t)len);
  }
  say(&n, near, "SABHA.WATCH key: BATCH 0\r\n", 26);
  uint64_t examined = rt_metrics(n.rt)->watch_events_examined;
  double t0 = cpu_ns();
  for (uint64_t i = 0; i < writes; i++) {
    char cmd[64];
    int len = snprintf(cmd, sizeof cmd, "SET key:%" PRIu64 " x\r\n", i % 100);
    say(&n, c, cmd, (size_t)len);
    drain(near);
  }
  double us = (cpu_ns() - t0) / 1e3 / (double)writes;
  examined = rt_metrics(n.rt)->watch_events_examined - examined;
  printf("us_per_write_idle_watchers_%" PRIu64 ": %.2f\n"
         "examined_per_write_idle_watchers_%" PRIu64 ": %.2f\n",
         idle, us, idle, (double)examined / (double)writes);
  rt_node_close(&n);
  return 0;
}

/* `lengths` watchers of prefixes of lengths 1..lengths that no key has,
 * then `writes` SETs with keys of `key_bytes`. */
#define LENGTHS_KEY_BYTES_MAX 1100u
static int bench_lengths(uint64_t lengths, size_t key_bytes, uint64_t writes) {
  struct rt_node n;
  struct rt_stream *c = NULL;
  if (node_open(&n, &c) != 0)
    return -1;
  static char cmd[LENGTHS_KEY_BYTES_MAX + 64];
  for (uint64_t i = 1; i <= lengths; i++) {
    struct rt_stream *w = NULL;
    if (rt_stream_accept(n.rt, true, &w) != NULL)
      return -1;
    int head = snprintf(cmd, sizeof cmd,
                        "*2\r\n$11\r\nSABHA.WATCH\r\n$%" PRIu64 "\r\n", i);
    memset(cmd + head, 'z', (size_t)i);
    memcpy(cmd + head + i, "\r\n", 2);
    rt_stream_input(w, cmd, (size_t)head + (size_t)i + 2);
  }
  rt_node_settle(&n);
  double t0 = cpu_ns();
  for (uint64_t i = 0; i < writes; i++) {
    int head =
        snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$%zu\r\n", key_bytes);
    memset(cmd + head, 'k', key_bytes);
    cmd[head] = (char)('a' + i % 20);
    int tail = snprintf(cmd + head + key_bytes, 16, "\r\n$1\r\nx\r\n");
    say(&n, c, cmd, (size_t)head + key_bytes + (size_t)tail);
  }
  double us = (cpu_ns() - t0) / 1e3 / (double)writes;
  printf("us_per_write_key_%zu_prefix_lengths_%" PRIu64 ": %.2f\n", key_bytes,
         lengths, us);
  rt_node_close(&n);
  return 0;
}

int main(int argc, char **argv) {
  uint64_t appends = 1000, value_bytes = 0, catchup = 1u << 20;
  uint64_t watchers = 0, writes = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    uint64_t v = strtoull(argv[i + 1], NULL, 10);
    if (strcmp(argv[i], "--appends") == 0 && v >= 1 && v <= 100000)
      appends = v;
    else if (strcmp(argv[i], "--value-bytes") == 0 && v <= (8u << 20))
      value_bytes = v;
    else if (strcmp(argv[i], "--catchup-events") == 0 && v <= (4u << 20))
      catchup = v;
    else if (strcmp(argv[i], "--watchers") == 0 && v >= 1 && v <= 5000)
      watchers = v;
    else if (strcmp(argv[i], "--writes") == 0 && v >= 1 && v <= 1000000)
      writes = v;
    else {
      fprintf(stderr, "usage: bench_watch [--appends N] [--value-bytes N] "
                      "[--catchup-events N] [--watchers N] [--writes N]\n");
      return 2;
    }
  }
  if (value_bytes == 0)
    value_bytes = (8u << 20) - appends;
  struct utsname u;
  uname(&u);
  printf("commit: %s\nmachine: %s %s\nappends: %" PRIu64
         "\nvalue_bytes: %" PRIu64 "\n",
         SABHA_COMMIT, u.nodename, u.machine, appends, value_bytes);
  if (bench_append("small", 16, appends) != 0 ||
      bench_append("large", value_bytes, appends) != 0 ||
      (catchup > 0 && bench_catchup(catchup) != 0) ||
      (watchers == 0 ? bench_watchers(0, writes) != 0 ||
                           bench_watchers(100, writes) != 0 ||
                           bench_watchers(1000, writes) != 0
                     : bench_watchers(watchers, writes) != 0) ||
      bench_lengths(0, 16, writes) != 0 ||
      bench_lengths(1024, 16, writes) != 0 ||
      bench_lengths(0, LENGTHS_KEY_BYTES_MAX, writes) != 0 ||
      bench_lengths(1024, LENGTHS_KEY_BYTES_MAX, writes) != 0) {
    fprintf(stderr, "bench_watch: the node did not start\n");
    return 1;
  }
  return 0;
}
