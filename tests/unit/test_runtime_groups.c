/* Several groups in one process (src/node/groups.c), through the runtime's
 * API as a host drives them: a single-member cluster whose node hosts three
 * groups on memfs, each runtime on its own log directory, introduced to
 * each other with rt_groups_attach; the test is the host, running every
 * group and pumping their in-process links until nothing moves.
 *
 * What it holds them to: a client of group 0 is answered for keys of every
 * group, each key landing in its own group's store and no other; commands,
 * transactions and reads that span groups are refused with -CROSSSLOT and
 * change nothing; keys of one hash tag go together; a stale read of
 * another group's key is served from that group; the runtimes close, or
 * crash, in either order with their links open. Tags used: with three
 * groups, {a} is in group 0, {c} in group 1, {b} in group 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "rt_host.h"
#include "sm/kvstore.h"
#include "storage/memfs.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define GROUPS 3u

struct node3 {
  struct memfs *fs;
  struct wal_io io;
  struct rt_host h;
  struct rt *rts[GROUPS];
};

/* Runs every group and pumps the links until nothing is left to do. */
static void settle(struct node3 *n) {
  for (int round = 0; round < 200; round++) {
    bool more = false;
    for (uint32_t g = 0; g < GROUPS; g++)
      more |= rt_run(n->rts[g]);
    for (uint32_t g = 0; g < GROUPS; g++)
      more |= rt_groups_pump(n->rts[g]);
    if (!more)
      return;
  }
}

/* Ticks every group until each leads itself (one member: no peer). */
static bool elect(struct node3 *n) {
  for (int k = 0; k < 100; k++) {
    n->h.now_ms += 50;
    for (uint32_t g = 0; g < GROUPS; g++)
      rt_tick(n->rts[g]);
    settle(n);
    bool all = true;
    for (uint32_t g = 0; g < GROUPS; g++)
      all &= rt_has_leader(n->rts[g]);
    if (all)
      return true;
  }
  return false;
}

/* With each group's client-output-buffer-limit `out_hard_bytes` (0: the
 * default). */
static int node_open_with(struct node3 *n, uint64_t out_hard_bytes) {
  memset(n, 0, sizeof *n);
  if (memfs_new(&n->fs, 1) != 0)
    return -1;
  memfs_io(n->fs, &n->io);
  n->h.now_ms = 1000;
  n->h.abort_on_fatal = true;
  struct rt_ports ports = rt_host_ports(&n->h);
  static const uint32_t voters[] = {1};
  for (uint32_t g = 0; g < GROUPS; g++) {
    struct rt_config cfg;
    rt_host_config(&cfg, &n->io);
    rt_config_init(&cfg, 1, voters, 1);
    cfg.io = &n->io;
    cfg.engine.seed = 7 + g;
    cfg.tag_seed = 11 + g;
    cfg.group = g;
    cfg.n_groups = GROUPS;
    if (out_hard_bytes > 0)
      cfg.out_hard_bytes = out_hard_bytes;
    if (g == 0)
      snprintf(cfg.data_dir, sizeof cfg.data_dir, "data");
    else
      snprintf(cfg.data_dir, sizeof cfg.data_dir, "data/group-%u", g);
    char err[512];
    if (rt_open(&n->rts[g], &cfg, &ports, err, sizeof err) != 0) {
      fprintf(stderr, "rt_open: %s\n", err);
      return -1;
    }
  }
  rt_groups_attach(n->rts, GROUPS);
  return elect(n) ? 0 : -1;
}

static int node_open(struct node3 *n) {
  return node_open_with(n, 0);
}

static void node_close(struct node3 *n, bool crash, bool backwards) {
  for (uint32_t k = 0; k < GROUPS; k++) {
    uint32_t g = backwards ? GROUPS - 1 - k : k;
    if (crash)
      rt_close_crash(n->rts[g]);
    else
      rt_close(n->rts[g]);
  }
  for (int i = 0; i < n->h.n_closed; i++)
    rt_stream_free(n->h.closed[i]);
  memfs_free(n->fs);
}

static void output(struct rt_stream *s, char *out, size_t size) {
  const uint8_t *data;
  size_t len, used = 0;
  out[0] = '\0';
  while (rt_stream_out_take(s, &data, &len)) {
    size_t k = len < size - 1 - used ? len : size - 1 - used;
    memcpy(out + used, data, k);
    used += k;
    out[used] = '\0';
    rt_stream_out_done(s);
  }
}

static const char *say(struct node3 *n, struct rt_stream *s, const char *line) {
  static char reply[4096];
  char buf[512];
  int len = snprintf(buf, sizeof buf, "%s\r\n", line);
  rt_stream_input(s, buf, (size_t)len);
  settle(n);
  output(s, reply, sizeof reply);
  return reply;
}

static bool has_key(struct rt *rt, const char *key) {
  const uint8_t *v;
  size_t vn;
  return kvstore_get(rt_kvstore(rt), (const uint8_t *)key, strlen(key), 0, &v,
                     &vn);
}

static void groups_each_key_lands_in_its_own_group(void) {
  struct node3 n;
  CHECK(node_open(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL);
  static const char *const keys[GROUPS] = {"{a}x", "{c}x", "{b}x"};
  for (uint32_t g = 0; g < GROUPS; g++) {
    CHECK(rt_key_group((const uint8_t *)keys[g], strlen(keys[g]), GROUPS) == g);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SET %s v%u", keys[g], g);
    CHECK(strcmp(say(&n, c, cmd), "+OK\r\n") == 0);
  }
  for (uint32_t g = 0; g < GROUPS; g++)
    for (uint32_t h = 0; h < GROUPS; h++)
      CHECK(has_key(n.rts[h], keys[g]) == (g == h));
  CHECK(strcmp(say(&n, c, "GET {c}x"), "$2\r\nv1\r\n") == 0);
  CHECK(strcmp(say(&n, c, "INCR {b}n"), ":1\r\n") == 0);
  CHECK(strcmp(say(&n, c, "INCR {b}n"), ":2\r\n") == 0);
  /* Pipelined over three groups: the replies come back in order. */
  CHECK(strcmp(say(&n, c, "GET {b}x\r\nGET {a}x\r\nGET {c}x"),
               "$2\r\nv2\r\n$2\r\nv0\r\n$2\r\nv1\r\n") == 0);
  /* A stale read of another group's key is that group's. */
  CHECK(strcmp(say(&n, c, "READONLY"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "GET {b}x"), "$2\r\nv2\r\n") == 0);
  node_close(&n, false, false);
}

static void groups_what_spans_groups_is_refused(void) {
  struct node3 n;
  CHECK(node_open(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL);
  CHECK(strncmp(say(&n, c, "MSET {a}x 1 {c}x 2"), "-CROSSSLOT", 10) == 0);
  CHECK(!has_key(n.rts[0], "{a}x") && !has_key(n.rts[1], "{c}x"));
  CHECK(strcmp(say(&n, c, "MSET {c}x 1 {c}y 2"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "MGET {c}x {c}y"), "*2\r\n$1\r\n1\r\n$1\r\n2\r\n") ==
        0);
  CHECK(strncmp(say(&n, c, "MGET {c}x {b}x"), "-CROSSSLOT", 10) == 0);
  CHECK(strncmp(say(&n, c, "DBSIZE"), "-CROSSSLOT", 10) == 0);
  CHECK(strncmp(say(&n, c, "KEYS *"), "-CROSSSLOT", 10) == 0);
  CHECK(strncmp(say(&n, c, "SCAN 0"), "-CROSSSLOT", 10) == 0);
  CHECK(strncmp(say(&n, c, "SABHA.WATCH x"), "-CROSSSLOT", 10) == 0);
  CHECK(strcmp(say(&n, c, "KEYS {c}*"), "*2\r\n$4\r\n{c}x\r\n$4\r\n{c}y\r\n") ==
        0);
  /* A transaction across groups is refused at the command that would mix
   * them, and EXEC then aborts: nothing of it applies. */
  CHECK(strcmp(say(&n, c, "MULTI"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SET {a}t 1"), "+QUEUED\r\n") == 0);
  CHECK(strncmp(say(&n, c, "SET {b}t 1"), "-CROSSSLOT", 10) == 0);
  CHECK(strncmp(say(&n, c, "EXEC"), "-EXECABORT", 10) == 0);
  CHECK(!has_key(n.rts[0], "{a}t") && !has_key(n.rts[2], "{b}t"));
  /* One group's transaction applies whole, in that group. */
  CHECK(strcmp(say(&n, c, "WATCH {b}w"), "+OK\r\n") == 0);
  CHECK(strncmp(say(&n, c, "WATCH {a}w"), "-CROSSSLOT", 10) == 0);
  CHECK(strcmp(say(&n, c, "MULTI"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SET {b}t 1"), "+QUEUED\r\n") == 0);
  CHECK(strcmp(say(&n, c, "INCR {b}u"), "+QUEUED\r\n") == 0);
  CHECK(strcmp(say(&n, c, "EXEC"), "*2\r\n+OK\r\n:1\r\n") == 0);
  CHECK(has_key(n.rts[2], "{b}t") && has_key(n.rts[2], "{b}u"));
  CHECK(!has_key(n.rts[0], "{b}t") && !has_key(n.rts[1], "{b}t"));
  node_close(&n, false, true);
}

static void groups_close_or_crash_in_any_order_with_links_open(void) {
  for (int k = 0; k < 4; k++) {
    struct node3 n;
    CHECK(node_open(&n) == 0);
    struct rt_stream *c = NULL;
    CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL);
    CHECK(strcmp(say(&n, c, "SET {c}x 1"), "+OK\r\n") == 0);
    CHECK(strcmp(say(&n, c, "SET {b}x 1"), "+OK\r\n") == 0);
    /* One more in flight over a link when the node goes. */
    rt_stream_input(c, "SET {b}y 2\r\n", 12);
    node_close(&n, k & 1, k & 2);
  }
}

/* Commands of another group go over the in-process link already parsed:
 * the group takes group 0's argument vectors (rt_metrics.handed counts
 * them) and never parses them again. Three clients pipeline more than a
 * stream may hold in flight (RT_QUEUE_MAX): writes, reads of them, and a
 * write behind the reads, so that the group's end stops taking commands
 * both for its bound and for a read that must be answered before a later
 * write, and asks for the rest when it resumes; every reply comes back,
 * in each client's order, each read seeing its client's write. */
static void groups_commands_cross_in_process_links_parsed_once(void) {
  enum { CLIENTS = 3, PAIRS = 700 };
  struct node3 n;
  CHECK(node_open(&n) == 0);
  struct rt_stream *c[CLIENTS];
  static char want[CLIENTS][PAIRS * 32], got[CLIENTS][PAIRS * 32];
  size_t got_len[CLIENTS] = {0};
  uint64_t handed = rt_metrics(n.rts[1])->handed;
  for (int k = 0; k < CLIENTS; k++) {
    CHECK(rt_stream_accept(n.rts[0], true, &c[k]) == NULL);
    static char in[PAIRS * 64];
    size_t in_len = 0, want_len = 0;
    for (int i = 0; i < 2 * PAIRS + 1; i++) {
      char v[16];
      int j = i % PAIRS, vn = snprintf(v, sizeof v, "%d", k * PAIRS + j);
      bool set = i < PAIRS || i == 2 * PAIRS;
      in_len += (size_t)snprintf(
          in + in_len, sizeof in - in_len,
          set ? "SET {c}%d.%d %s\r\n" : "GET {c}%d.%d\r\n", k, j, v);
      want_len +=
          (size_t)snprintf(want[k] + want_len, sizeof want[k] - want_len,
                           set ? "+OK\r\n" : "$%d\r\n%s\r\n", vn, v);
    }
    rt_stream_input(c[k], in, in_len);
  }
  for (int round = 0; round < 100; round++) {
    settle(&n);
    for (int k = 0; k < CLIENTS; k++) {
      const uint8_t *data;
      size_t len;
      while (rt_stream_out_take(c[k], &data, &len)) {
        CHECK(got_len[k] + len < sizeof got[k]);
        memcpy(got[k] + got_len[k], data, len);
        got_len[k] += len;
        rt_stream_out_done(c[k]);
      }
    }
  }
  for (int k = 0; k < CLIENTS; k++) {
    got[k][got_len[k]] = '\0';
    CHECK(strcmp(got[k], want[k]) == 0);
  }
  CHECK(rt_metrics(n.rts[1])->handed - handed == CLIENTS * (2u * PAIRS + 1));
  CHECK(rt_metrics(n.rts[0])->handed == 0);
  node_close(&n, false, false);
}

/* An fsync on the loop (here every one: this host has no disk thread)
 * first lets the host send the peer messages it holds, so that a leader's
 * appends travel while its own fsync runs: the flush comes before the sync
 * that makes a write durable. */
static void runtime_lets_held_messages_go_before_a_sync_on_the_loop(void) {
  struct node3 n;
  CHECK(node_open(&n) == 0);
  n.h.fs = n.fs;
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL);
  int flushes = n.h.n_flushes;
  CHECK(strcmp(say(&n, c, "SET {a}x 1"), "+OK\r\n") == 0);
  CHECK(n.h.n_flushes > flushes);
  CHECK(memfs_counts(n.fs).syncs > n.h.syncs_at_flush);
  node_close(&n, false, false);
}

/* A reply larger than its client may be sent (client-output-buffer-limit)
 * closes that client, and no other: the in-process link that brings it
 * from the key's group carries the replies of every client of that group,
 * as another node's forwarding link does, and holds what one reply may be.
 * Another client's write, over the link at the same time, is answered. */
static void groups_a_reply_past_a_clients_limit_closes_that_client_only(void) {
  struct node3 n;
  CHECK(node_open_with(&n, 1u << 20) == 0);
  struct rt_stream *c = NULL, *d = NULL;
  CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL);
  CHECK(rt_stream_accept(n.rts[0], true, &d) == NULL);
  for (int i = 0; i < 2; i++) {
    CHECK(rt_stream_say_set(c, i == 0 ? "{c}b0" : "{c}b1", 600u << 10));
    settle(&n);
    CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  }
  rt_stream_input(c, "MGET {c}b0 {c}b1\r\n", 18);
  rt_stream_input(d, "SET {c}d 1\r\n", 12);
  settle(&n);
  const char *got = rt_stream_said(d);
  if (strcmp(got, "+OK\r\n") != 0)
    fprintf(stderr, "the other client got: [%s]\n", got);
  CHECK(strcmp(got, "+OK\r\n") == 0);
  CHECK(rt_host_closed(&n.h, c));
  node_close(&n, false, false);
}

static const struct test tests[] = {
    TEST(groups_each_key_lands_in_its_own_group),
    TEST(groups_what_spans_groups_is_refused),
    TEST(groups_close_or_crash_in_any_order_with_links_open),
    TEST(groups_commands_cross_in_process_links_parsed_once),
    TEST(runtime_lets_held_messages_go_before_a_sync_on_the_loop),
    TEST(groups_a_reply_past_a_clients_limit_closes_that_client_only),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
