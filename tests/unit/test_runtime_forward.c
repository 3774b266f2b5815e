/* What a follower sends its leader over the forwarding link (src/node/
 * forward.c, clients.c), through the runtime's own API, as a host sees it.
 * The node is node 2 of three over memfs; node 1 leads, as its heartbeat
 * tells; the test is the host and plays the leader's side of the link.
 *
 * What each test holds the node to: every command a follower forwards is
 * one the leader's parser takes (resp_limits_default), so that one client's
 * command can never make the leader close the link that carries every
 * other client's requests of this node. The last ones hold it to giving
 * a link up when the leader stops answering on it, never while it
 * answers. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/resp.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "raft/raft.h"
#include "rt_host.h"
#include "rt_trio.h"
#include "storage/memfs.h"

static void node_open(struct rt_node *n) {
  struct rt_config cfg;
  CHECK(rt_node_init(n, &cfg) == 0);
  n->h.accept_links = true;
  CHECK(rt_node_start(n, &cfg) == 0);
  /* Node 1 leads term 1, as its heartbeat tells node 2. */
  struct sabha_msg m = {
      .type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
  rt_step(n->rt, &m);
  rt_run(n->rt);
}

static struct rt_stream *client(struct rt_node *n) {
  struct rt_stream *s = NULL;
  return rt_stream_accept(n->rt, true, &s) == NULL ? s : NULL;
}

/* Everything the stream has to send, appended to *b. */
static void take_all(struct rt_stream *s, struct resp_buf *b) {
  const uint8_t *data;
  size_t len;
  while (rt_stream_out_take(s, &data, &len)) {
    resp_buf_append(b, data, len);
    rt_stream_out_done(s);
  }
}

/* How many whole commands `b` holds, as the leader would parse them; -1
 * when one breaks the protocol or a limit there. */
static int parse_all(const struct resp_buf *b) {
  static struct resp_arg argv[65536];
  size_t off = 0;
  int n = 0;
  while (off < b->len) {
    struct resp_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.argv = argv;
    cmd.argv_cap = 65536;
    size_t used = 0;
    enum resp_status st = resp_parse(b->data + off, b->len - off, &cmd, &used,
                                     &resp_limits_default);
    if (st != RESP_COMPLETE)
      return -1;
    off += used;
    n++;
  }
  return n;
}

/* WATCH of `n` distinct keys of `bytes` bytes each, as one command. */
static void send_watch(struct rt_node *n, struct rt_stream *c, uint32_t first,
                       uint32_t keys, size_t bytes) {
  struct resp_buf b;
  resp_buf_init(&b, 64u << 20);
  char *key = malloc(bytes);
  CHECK(key != NULL);
  resp_write_array(&b, keys + 1);
  resp_write_bulk(&b, "WATCH", 5);
  for (uint32_t i = 0; i < keys; i++) {
    memset(key, 'k', bytes);
    snprintf(key, bytes, "%u", first + i);
    key[strlen(key)] = 'k';
    resp_write_bulk(&b, key, bytes);
  }
  CHECK(b.err == 0);
  rt_stream_input(c, b.data, b.len);
  rt_run(n->rt);
  free(key);
  resp_buf_free(&b);
}

/* Connects the link node 2 opened to node 1 and takes what it sent into
 * `sent`, which it initializes: *out, or NULL when a check failed. */
static void link_connect(struct rt_node *n, struct rt_stream **out,
                         struct resp_buf *sent) {
  *out = NULL;
  resp_buf_init(sent, 256u << 20);
  struct rt_stream *link = n->h.link;
  CHECK(link != NULL && n->h.link_node == 1);
  rt_stream_connected(link);
  rt_run(n->rt);
  take_all(link, sent);
  *out = link;
}

/* Connects the link node 2 opened to node 1: the link, when what it sent
 * was SABHA.FORWARDED and `commands` more commands, else NULL. */
static struct rt_stream *link_connect_carrying(struct rt_node *n,
                                               int commands) {
  struct rt_stream *link;
  struct resp_buf sent;
  link_connect(n, &link, &sent);
  int got = parse_all(&sent);
  resp_buf_free(&sent);
  if (link != NULL && got != 1 + commands)
    fprintf(stderr, "the link carried %d commands\n", got);
  return got == 1 + commands ? link : NULL;
}

/* The leader answers the link's SABHA.FORWARDED, then `watches` WATCHes
 * with index 5; what client `c` gets is taken into `got`, which this
 * initializes. */
static void answer_watches(struct rt_node *n, struct rt_stream *link,
                           int watches, struct rt_stream *c,
                           struct resp_buf *got) {
  rt_stream_input(link, "+OK\r\n", 5);
  for (int i = 0; i < watches; i++)
    rt_stream_input(link, ":5\r\n", 4);
  rt_run(n->rt);
  resp_buf_init(got, 1u << 20);
  take_all(c, got);
}

static void an_exec_too_big_to_forward_is_refused_here(void) {
  struct rt_node n;
  node_open(&n);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  /* 600 keys of 30000 bytes: 18 MB of WATCHed keys in three commands,
   * each well within the 16 MiB one command may hold. */
  for (uint32_t w = 0; w < 3; w++)
    send_watch(&n, c, w * 200, 200, 30000);
  struct rt_stream *link;
  struct resp_buf sent, got;
  link_connect(&n, &link, &sent);
  CHECK(link != NULL);
  CHECK(parse_all(&sent) == 4); /* SABHA.FORWARDED and the WATCHes */
  resp_buf_reset(&sent);
  /* The leader: the link's own reply, then each WATCH's index. */
  answer_watches(&n, link, 3, c, &got);
  CHECK(got.len == 15 && memcmp(got.data, "+OK\r\n+OK\r\n+OK\r\n", 15) == 0);
  resp_buf_reset(&got);

  static const char txn[] = "MULTI\r\nSET x 1\r\nEXEC\r\n";
  rt_stream_input(c, txn, sizeof txn - 1);
  rt_run(n.rt);
  /* Whatever goes to the leader, the leader can parse: an EXEC whose
   * SABHA.TXN would not fit one command is refused here, with a reason,
   * and the link (every other client's requests) stays up. */
  take_all(link, &sent);
  CHECK(parse_all(&sent) >= 0);
  take_all(c, &got);
  static const char want[] = "+OK\r\n+QUEUED\r\n-EXECABORT ";
  CHECK(got.len > sizeof want - 1 &&
        memcmp(got.data, want, sizeof want - 1) == 0);
  CHECK(!rt_host_closed(&n.h, link));
  resp_buf_free(&got);
  resp_buf_free(&sent);
  rt_node_close(&n);
}

/* A node answers -NOTLEADER to a forwarded command when it does not lead,
 * and the follower sends the command again later. But the link may
 * already carry the same client's next commands, which that node, leader
 * by the time they arrive, carries out (it does: the first part below):
 * sent again, the refused command would apply after them, a pipelined
 * SET k 1, INCR k applied as INCR, then SET. So when a later command of
 * the same client is already on its way, the refused one is answered
 * "not applied" instead (the second part); alone, it goes again. */
static void a_refused_command_never_overtakes_its_clients_next(void) {
  struct rt_node n;
  CHECK(rt_node_open_alone(&n) == 0);
  struct rt_stream *link = client(&n);
  CHECK(link != NULL);
  static const char hello[] = "SABHA.FORWARDED\r\nSET k 1\r\n";
  rt_stream_input(link, hello, sizeof hello - 1);
  rt_node_settle(&n);
  CHECK(strncmp(rt_stream_said(link), "+OK\r\n-NOTLEADER", 15) == 0);
  CHECK(rt_node_elect(&n) == 0);
  rt_stream_input(link, "INCR k\r\n", 8);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(link), ":1\r\n") == 0);
  rt_node_close(&n);

  node_open(&n);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  rt_stream_input(c, "SET k 1\r\nINCR k\r\n", 17);
  rt_run(n.rt);
  CHECK(n.h.link != NULL);
  rt_stream_connected(n.h.link);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(n.h.link),
               "*1\r\n$15\r\nSABHA.FORWARDED\r\n"
               "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"
               "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n") == 0);
  static const char replies[] = "+OK\r\n-NOTLEADER 1\r\n:1\r\n";
  rt_stream_input(n.h.link, replies, sizeof replies - 1);
  rt_run(n.rt);
  const char *got = rt_stream_said(c);
  CHECK(strncmp(got, "-TRYAGAIN ", 10) == 0 && strstr(got, "not applied") &&
        strcmp(got + strlen(got) - 6, "\r\n:1\r\n") == 0);
  /* Nothing goes again: the SET was answered. */
  n.h.now_ms += RT_FWD_BACKOFF_MS + RT_TIMEOUT_SCAN_MS;
  rt_tick(n.rt);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(n.h.link), "") == 0);

  /* Alone on the link, a refused command waits and goes again. */
  rt_stream_input(c, "SET k 2\r\n", 9);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(n.h.link),
               "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n2\r\n") == 0);
  rt_stream_input(n.h.link, "-NOTLEADER 1\r\n", 14);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(c), "") == 0);
  n.h.now_ms += RT_FWD_BACKOFF_MS + RT_TIMEOUT_SCAN_MS;
  rt_tick(n.rt);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(n.h.link),
               "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n2\r\n") == 0);
  rt_node_close(&n);
}

/* The client got "not applied" for its first command and :1 for its
 * second. */
static bool refused_then_one(struct rt_stream *c) {
  const char *got = rt_stream_said(c);
  if (strncmp(got, "-TRYAGAIN ", 10) != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  return strncmp(got, "-TRYAGAIN ", 10) == 0 && strstr(got, "not applied") &&
         strcmp(got + strlen(got) - 6, "\r\n:1\r\n") == 0;
}

/* Node 2 of node_open, and a client (*out; NULL when a check failed)
 * whose SET k 1 goes to node 1 over a link (`first`, connected when
 * `connect` says so), then whose INCR k goes to node 3, leader of term 2
 * by then, over another (`second`, not yet connected). */
static void set_then_incr(struct rt_node *n, bool connect,
                          struct rt_stream **out, struct rt_stream **first,
                          struct rt_stream **second) {
  *out = NULL;
  node_open(n);
  struct rt_stream *c = client(n);
  CHECK(c != NULL);
  rt_stream_input(c, "SET k 1\r\n", 9);
  rt_run(n->rt);
  *first = n->h.link;
  CHECK(*first != NULL && n->h.link_node == 1);
  if (connect) {
    rt_stream_connected(*first);
    rt_run(n->rt);
    CHECK(strstr(rt_stream_said(*first), "SET") != NULL);
  }
  struct sabha_msg m = {
      .type = RAFT_MSG_HEARTBEAT, .from = 3, .to = 2, .term = 2};
  rt_step(n->rt, &m);
  rt_run(n->rt);
  rt_stream_input(c, "INCR k\r\n", 8);
  rt_run(n->rt);
  *second = n->h.link;
  CHECK(*second != *first && n->h.link_node == 3);
  *out = c;
}

/* The same when a link fails before it ever connected: its commands were
 * never sent, but the client's next one may have gone to the new leader
 * over another link meanwhile. */
static void an_unsent_command_never_goes_behind_its_clients_next(void) {
  struct rt_node n;
  struct rt_stream *c, *first, *second;
  /* Node 3 leads term 2 before the link to node 1 connects. */
  set_then_incr(&n, false, &c, &first, &second);
  CHECK(c != NULL);
  rt_stream_connected(second);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(second), "*1\r\n$15\r\nSABHA.FORWARDED\r\n"
                                       "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n") == 0);
  rt_stream_lost(first); /* it never connected */
  rt_stream_free(first);
  rt_run(n.rt);
  n.h.now_ms += RT_TIMEOUT_SCAN_MS;
  rt_tick(n.rt);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(second), "") == 0);
  rt_stream_input(second, "+OK\r\n:1\r\n", 9);
  rt_run(n.rt);
  CHECK(refused_then_one(c));
  rt_node_close(&n);
}

/* Node 2 of three hosting two groups over memfs, for the tests of group
 * 0's links to the nodes that lead other groups; the test plays those. */
struct gnode {
  struct memfs *fs;
  struct wal_io io;
  struct rt_host h;
  struct rt *rts[2];
  char key[16]; /* a key of group 1 */
};

static void gnode_open(struct gnode *n) {
  memset(n, 0, sizeof *n);
  CHECK(memfs_new(&n->fs, 1) == 0);
  memfs_io(n->fs, &n->io);
  n->h.now_ms = 1000;
  n->h.abort_on_fatal = true;
  n->h.accept_links = true;
  struct rt_ports ports = rt_host_ports(&n->h);
  for (uint32_t g = 0; g < 2; g++) {
    struct rt_config cfg;
    rt_host_config(&cfg, &n->io);
    cfg.group = g;
    cfg.n_groups = 2;
    cfg.tag_seed = 11 + g;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, g == 0 ? "data" : "data/g1");
    char err[512];
    CHECK(rt_open(&n->rts[g], &cfg, &ports, err, sizeof err) == 0);
  }
  rt_groups_attach(n->rts, 2);
  for (int i = 0; i < 100 && n->key[0] == '\0'; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    if (rt_key_group((const uint8_t *)k, strlen(k), 2) == 1)
      snprintf(n->key, sizeof n->key, "%s", k);
  }
  CHECK(n->key[0] != '\0');
}

/* Node `from` leads group 1 in `term`, as its heartbeat tells. */
static void gnode_leader(struct gnode *n, uint32_t from, uint64_t term) {
  struct sabha_msg m = {.type = RAFT_MSG_HEARTBEAT,
                        .from = from,
                        .to = 2,
                        .term = term,
                        .group = 1};
  rt_step(n->rts[1], &m);
}

static void gnode_run(struct gnode *n) {
  for (int round = 0; round < 4; round++)
    for (uint32_t g = 0; g < 2; g++) {
      rt_run(n->rts[g]);
      rt_groups_pump(n->rts[g]);
    }
}

/* Gives the client `format` with the group-1 key in place of each %s. */
static void gnode_say(struct gnode *n, struct rt_stream *c,
                      const char *format) {
  char in[128];
  int len = snprintf(in, sizeof in, format, n->key, n->key);
  rt_stream_input(c, in, (size_t)len);
  gnode_run(n);
}

static void gnode_close(struct gnode *n) {
  rt_close_crash(n->rts[1]);
  rt_close_crash(n->rts[0]);
  for (int i = 0; i < n->h.n_closed; i++)
    rt_stream_free(n->h.closed[i]);
  memfs_free(n->fs);
}

/* The same with groups: group 0 of node 2 sends a key's commands straight
 * to node 1, which leads the key's group, over one link per node. When
 * node 1 refuses the first (it no longer leads the group) after the
 * client's next went out behind it, the refused one must not go again by
 * another way (this node's runtime of the group, which forwards it to the
 * leader over a link of its own): node 1, leader again, may already have
 * carried out the next. */
static void a_group_command_refused_never_overtakes_its_clients_next(void) {
  struct gnode n;
  gnode_open(&n);
  gnode_leader(&n, 1, 1);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL && c != NULL);
  gnode_say(&n, c, "SET %s 1\r\nINCR %s\r\n");
  struct rt_stream *link = n.h.link;
  CHECK(link != NULL && n.h.link_node == 1);
  rt_stream_connected(link);
  rt_run(n.rts[0]);
  const char *sent = rt_stream_said(link);
  CHECK(strstr(sent, "SABHA.FORWARDED") != NULL && strstr(sent, "SET") &&
        strstr(sent, "INCR") != NULL);
  static const char replies[] = "+OK\r\n-NOTLEADER 1\r\n:1\r\n";
  rt_stream_input(link, replies, sizeof replies - 1);
  gnode_run(&n);
  CHECK(refused_then_one(c));
  gnode_close(&n);
}

/* And when group 0's link to the group's leader fails before it ever
 * connected, after the client's next command went to the group's new
 * leader over another link. */
static void a_group_command_unsent_never_goes_behind_its_clients_next(void) {
  struct gnode n;
  gnode_open(&n);
  gnode_leader(&n, 1, 1);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rts[0], true, &c) == NULL && c != NULL);
  gnode_say(&n, c, "SET %s 1\r\n");
  struct rt_stream *first = n.h.link;
  CHECK(first != NULL && n.h.link_node == 1);
  gnode_leader(&n, 3, 2); /* node 3 leads before the link connects */
  gnode_say(&n, c, "INCR %s\r\n");
  struct rt_stream *second = n.h.link;
  CHECK(second != first && n.h.link_node == 3);
  rt_stream_connected(second);
  gnode_run(&n);
  const char *sent = rt_stream_said(second);
  CHECK(strstr(sent, "INCR") != NULL && strstr(sent, "SET") == NULL);
  rt_stream_lost(first); /* it never connected */
  rt_stream_free(first);
  gnode_run(&n);
  sent = rt_stream_said(second);
  if (sent[0] != '\0')
    fprintf(stderr, "went again: [%s]\n", sent);
  CHECK(sent[0] == '\0');
  rt_stream_input(second, "+OK\r\n:1\r\n", 9);
  gnode_run(&n);
  CHECK(refused_then_one(c));
  gnode_close(&n);
}

/* The client's next command may go to the new leader over a link of its
 * own and be answered there before the old leader's refusal of the first
 * comes back (`answered`), or wait on that link, not yet connected: sent
 * again, the first would apply after the next, or go behind it on the same
 * link. Either way it is answered "not applied", and never goes again. */
static void refused_after_the_next_left(bool answered) {
  static const char incr[] = "*1\r\n$15\r\nSABHA.FORWARDED\r\n"
                             "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n";
  struct rt_node n;
  struct rt_stream *c, *first, *second;
  set_then_incr(&n, true, &c, &first, &second);
  CHECK(c != NULL);
  if (answered) {
    rt_stream_connected(second);
    rt_run(n.rt);
    CHECK(strcmp(rt_stream_said(second), incr) == 0);
    rt_stream_input(second, "+OK\r\n:1\r\n", 9);
    rt_run(n.rt);
  }
  rt_stream_input(first, "+OK\r\n-NOTLEADER 3\r\n", 19);
  rt_run(n.rt);
  n.h.now_ms += RT_FWD_BACKOFF_MS + RT_TIMEOUT_SCAN_MS;
  rt_tick(n.rt);
  rt_run(n.rt);
  if (!answered) {
    rt_stream_connected(second);
    rt_run(n.rt);
  }
  const char *sent = rt_stream_said(second);
  if (strcmp(sent, answered ? "" : incr) != 0)
    fprintf(stderr, "the new leader got: [%s]\n", sent);
  CHECK(strcmp(sent, answered ? "" : incr) == 0);
  if (!answered) {
    rt_stream_input(second, "+OK\r\n:1\r\n", 9);
    rt_run(n.rt);
  }
  CHECK(refused_then_one(c));
  rt_node_close(&n);
}

static void a_refused_command_never_goes_again_after_its_clients_next(void) {
  refused_after_the_next_left(true);
  refused_after_the_next_left(false);
}

/* And when this node leads by the time the refusal comes back, and has
 * carried out the client's next command itself. */
static void a_refused_command_never_goes_behind_its_clients_next_here(void) {
  struct rt_trio t;
  CHECK(rt_trio_open(&t, "raft") == 0);
  CHECK(rt_trio_elect(&t, 1));
  t.node[2].h.accept_links = true;
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(t.node[2].rt, true, &c) == NULL && c != NULL);
  rt_stream_input(c, "SET k 1\r\n", 9);
  rt_trio_settle(&t);
  struct rt_stream *link = t.node[2].h.link;
  CHECK(link != NULL && t.node[2].h.link_node == 1);
  rt_stream_connected(link);
  rt_trio_settle(&t);
  CHECK(strstr(rt_stream_said(link), "SET") != NULL);
  CHECK(rt_trio_elect(&t, 2));
  rt_stream_input(c, "INCR k\r\n", 8);
  rt_trio_settle(&t);
  rt_stream_input(link, "+OK\r\n-NOTLEADER 2\r\n", 19);
  rt_trio_settle(&t);
  CHECK(refused_then_one(c));
  rt_stream_input(c, "GET k\r\n", 7);
  rt_trio_settle(&t);
  CHECK(strcmp(rt_stream_said(c), "$1\r\n1\r\n") == 0);
  rt_trio_close(&t);
}

/* A link carries many clients' replies, each held to its own client's
 * limits at the other end. One reply larger than a link may hold
 * (RT_OUT_BYTES_MAX; here the link's bound is lowered, to keep the test
 * small) is answered with an error in its place, and the others go on:
 * closing the link would answer the other clients' writes "outcome
 * unknown", and the node at the other end would send the read again, over
 * a new link, to close it again. */
static void a_reply_too_large_for_a_link_is_refused_alone(void) {
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *link = client(&n);
  CHECK(link != NULL);
  rt_stream_input(link, "SABHA.FORWARDED\r\n", 17);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(link), "+OK\r\n") == 0);
  link->out.len_max = link->wbuf.len_max = 1u << 20;
  CHECK(rt_stream_say_set(link, "b0", 600u << 10));
  CHECK(rt_stream_say_set(link, "b1", 600u << 10));
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(link), "+OK\r\n+OK\r\n") == 0);
  static const char in[] = "MGET b0 b1\r\nSET k 1\r\nGET b0\r\n";
  rt_stream_input(link, in, sizeof in - 1);
  rt_node_settle(&n);
  CHECK(!rt_host_closed(&n.h, link));
  const char *got = rt_stream_said(link);
  CHECK(strncmp(got, "-ERR ", 5) == 0);
  got = strchr(got, '\n') + 1;
  static const char then[] = "+OK\r\n$614400\r\nvvv";
  CHECK(strncmp(got, then, sizeof then - 1) == 0);
  rt_node_close(&n);
}

/* A connection watches at most RT_WATCH_KEYS_MAX keys, WATCHes not yet
 * answered counted: pipelined past it, the keys ride along with EXEC's
 * transaction, whose arguments then pass what one command may have, and
 * the leader's parser would close the link that carries every other
 * client's requests of this node. */
static void watches_in_flight_count_against_the_keys_a_connection_watches(
    void) {
  struct rt_node n;
  node_open(&n);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  for (uint32_t w = 0; w < 6; w++)
    send_watch(&n, c, w * RT_WATCH_KEYS_MAX, RT_WATCH_KEYS_MAX, 8);
  struct rt_stream *link;
  struct resp_buf sent, got;
  link_connect(&n, &link, &sent);
  CHECK(link != NULL);
  int watches = parse_all(&sent) - 1; /* after SABHA.FORWARDED */
  CHECK(watches >= 1);
  resp_buf_reset(&sent);
  answer_watches(&n, link, watches, c, &got);
  /* The first WATCH is answered +OK; those past the bound are refused. */
  CHECK(got.len > 5 && memcmp(got.data, "+OK\r\n-ERR ", 10) == 0);
  resp_buf_reset(&got);

  /* MULTI, then an MSET with as many arguments as a transaction holds. */
  enum { PAIRS = (RT_MULTI_ARGS_MAX - 2) / 2 };
  resp_write_array(&got, 1);
  resp_write_bulk(&got, "MULTI", 5);
  resp_write_array(&got, 1 + 2 * PAIRS);
  resp_write_bulk(&got, "MSET", 4);
  for (int i = 0; i < PAIRS; i++) {
    char key[16];
    int len = snprintf(key, sizeof key, "m%d", i);
    resp_write_bulk(&got, key, (size_t)len);
    resp_write_bulk(&got, "1", 1);
  }
  resp_write_array(&got, 1);
  resp_write_bulk(&got, "EXEC", 4);
  CHECK(got.err == 0);
  rt_stream_input(c, got.data, got.len);
  rt_run(n.rt);
  take_all(link, &sent);
  CHECK(parse_all(&sent) >= 0);
  resp_buf_free(&got);
  resp_buf_free(&sent);
  rt_node_close(&n);
}

/* Commands that a node refused (-NOTLEADER) wait for a leader. While the
 * one this node knows refused a moment ago, the follower holds them
 * (RT_FWD_BACKOFF_MS) and tries none again: each try, on every turn of
 * the node's loop, would only come back to the queue, at a cost that
 * grows with how many wait, while the node has other clients to serve. */
static void commands_refused_wait_out_the_backoff_untried(void) {
  enum { CLIENTS = 50 };
  struct rt_node n;
  node_open(&n);
  for (int i = 0; i < CLIENTS; i++) {
    struct rt_stream *c = client(&n);
    CHECK(c != NULL);
    rt_stream_input(c, "GET k\r\n", 7);
    rt_run(n.rt);
  }
  struct rt_stream *link = n.h.link;
  CHECK(link != NULL && n.h.link_node == 1);
  rt_stream_connected(link);
  rt_run(n.rt);
  CHECK(strstr(rt_stream_said(link), "GET") != NULL);
  rt_stream_input(link, "+OK\r\n", 5);
  for (int i = 0; i < CLIENTS; i++)
    rt_stream_input(link, "-NOTLEADER 1\r\n", 14);
  rt_run(n.rt);
  uint64_t reads = n.rt->next_read_id;
  for (int k = 0; k < 10; k++)
    rt_run(n.rt);
  CHECK(n.rt->next_read_id == reads);
  /* Past the backoff, they go again, each once. */
  n.h.now_ms += RT_FWD_BACKOFF_MS;
  rt_run(n.rt);
  CHECK(n.rt->next_read_id == reads + CLIENTS);
  rt_node_close(&n);
}

/* A reply from the leader that this node cannot hold (memory ran out;
 * here the request's bound is lowered, to make it happen) still answers
 * its own command, with an error, so that each of the client's later
 * replies answers its own command too, and not the one before it. */
static void a_reply_not_held_still_answers_its_own_command(void) {
  struct rt_node n;
  node_open(&n);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  rt_stream_input(c, "GET a\r\nGET b\r\n", 14);
  rt_run(n.rt);
  struct rt_stream *link = link_connect_carrying(&n, 2);
  CHECK(link != NULL);
  struct rt_req *first = LIST_OF(link->pending.next, struct rt_req, glink);
  first->reply.len_max = 200;
  char replies[512];
  int len = snprintf(replies, sizeof replies, "+OK\r\n$300\r\n%0300d\r\n"
                                              "$1\r\nb\r\n", 0);
  rt_stream_input(link, replies, (size_t)len);
  rt_run(n.rt);
  const char *got = rt_stream_said(c);
  if (strncmp(got, "-ERR ", 5) != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  CHECK(strncmp(got, "-ERR ", 5) == 0);
  CHECK(strcmp(strchr(got, '\n') + 1, "$1\r\nb\r\n") == 0);
  rt_node_close(&n);
}

/* ---- when a link is given up ----------------------------------------------
 *
 * A follower gives up its link when the leader answers nothing on it for
 * request-timeout-ms + leader-wait-ms while commands wait there. The clock
 * is the leader's: it runs from the link's last reply, or from when a
 * command went over a link that had none waiting. How long a command
 * waited at the follower before it went (for a leader, for the link to
 * connect) says nothing of the leader, and a leader that is only busy must
 * keep its link: closing it answers every write on it "outcome unknown",
 * just when the system is loaded. */

/* How long the leader may answer nothing before the follower gives up. */
static uint64_t link_limit_ms(const struct rt_node *n) {
  return (uint64_t)n->rt->cfg.request_timeout_ms + n->rt->cfg.leader_wait_ms;
}

/* The clock moves on by `ms`, one deadline scan at a time; node 1, leader
 * of `term`, is heard at each (0: nobody is), so that the node neither
 * calls an election nor forgets its leader meanwhile. */
static void pass_ms(struct rt_node *n, uint64_t ms, uint64_t term) {
  for (uint64_t t = 0; t < ms; t += RT_TIMEOUT_SCAN_MS) {
    n->h.now_ms += RT_TIMEOUT_SCAN_MS;
    if (term > 0) {
      struct sabha_msg m = {
          .type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = term};
      rt_step(n->rt, &m);
    }
    rt_tick(n->rt);
    rt_run(n->rt);
  }
}

/* Node 2 of node_open and a client (*c), whose SET went to node 1 over
 * the link (*link), connected and answered SABHA.FORWARDED; both NULL
 * when a check failed. */
static void one_write_forwarded(struct rt_node *n, struct rt_stream **c,
                                struct rt_stream **link) {
  *c = *link = NULL;
  node_open(n);
  struct rt_stream *client_ = client(n);
  CHECK(client_ != NULL);
  rt_stream_input(client_, "SET k 0\r\n", 9);
  rt_run(n->rt);
  struct resp_buf sent;
  link_connect(n, link, &sent);
  resp_buf_free(&sent);
  CHECK(*link != NULL);
  rt_stream_input(*link, "+OK\r\n", 5);
  rt_run(n->rt);
  *c = client_;
}

/* Client `c` says SET k `value`: whether it went over `link` at once. */
static bool write_goes(struct rt_node *n, struct rt_stream *c,
                       struct rt_stream *link, int value) {
  char set[32];
  int len = snprintf(set, sizeof set, "SET k %d\r\n", value);
  rt_stream_input(c, set, (size_t)len);
  rt_run(n->rt);
  return strstr(rt_stream_said(link), "SET") != NULL;
}

/* Whether `link` holds out `ms` more, its write of client `c` still
 * unanswered, then is given up at the next deadline scans, the write
 * answered as a lost link's: "outcome unknown". */
static bool given_up_after(struct rt_node *n, struct rt_stream *link,
                           struct rt_stream *c, uint64_t ms) {
  pass_ms(n, ms, 1);
  if (rt_host_closed(&n->h, link) || strcmp(rt_stream_said(c), "") != 0) {
    fprintf(stderr, "given up before %" PRIu64 " ms\n", ms);
    return false;
  }
  pass_ms(n, 2 * RT_TIMEOUT_SCAN_MS, 1);
  const char *got = rt_stream_said(c);
  static const char want[] = "-TRYAGAIN lost the connection to the leader";
  if (strncmp(got, want, sizeof want - 1) != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  return rt_host_closed(&n->h, link) &&
         strncmp(got, want, sizeof want - 1) == 0;
}

/* A leader that answers a long pipeline slowly but steadily, one reply
 * every quarter of the limit, keeps its link however long the last
 * command waits in all: each reply shows it alive. */
static void a_leader_that_answers_slowly_keeps_its_link(void) {
  enum { WRITES = 16 };
  struct rt_node n;
  node_open(&n);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  for (int i = 0; i < WRITES; i++) {
    char set[64];
    int len = snprintf(set, sizeof set, "SET k%d %d\r\n", i, i);
    rt_stream_input(c, set, (size_t)len);
  }
  rt_run(n.rt);
  struct rt_stream *link = link_connect_carrying(&n, WRITES);
  CHECK(link != NULL);
  rt_stream_input(link, "+OK\r\n", 5); /* SABHA.FORWARDED */
  int oks = 0;
  for (int i = 0; i < WRITES; i++) {
    pass_ms(&n, link_limit_ms(&n) / 4, 1);
    rt_stream_input(link, "+OK\r\n", 5);
    rt_run(n.rt);
    oks += rt_stream_take_oks(c);
  }
  if (oks != WRITES)
    fprintf(stderr, "%d of %d writes answered +OK\n", oks, WRITES);
  CHECK(oks == WRITES);
  CHECK(!rt_host_closed(&n.h, link));
  rt_node_close(&n);
}

/* A write that waited nearly all its leader-wait-ms before it went to the
 * leader (for a leader to be elected, then for the link to connect) is
 * waited for as long as any other once it has gone: in all, longer than
 * the limit. */
static void a_command_that_waited_here_is_timed_from_when_it_went(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  n.h.accept_links = true;
  CHECK(rt_node_start(&n, &cfg) == 0);
  uint64_t limit = link_limit_ms(&n);
  uint64_t wait_ms = n.rt->cfg.leader_wait_ms;
  CHECK(wait_ms > 4 * RT_TIMEOUT_SCAN_MS && limit > wait_ms);
  uint64_t arrival_ms = n.h.now_ms;
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  rt_stream_input(c, "SET k 1\r\n", 9);
  rt_run(n.rt);
  /* No leader yet: it waits, until node 1 is heard, leader of a term
   * higher than any the node may have reached as a candidate. */
  pass_ms(&n, wait_ms - 4 * RT_TIMEOUT_SCAN_MS, 0);
  CHECK(n.h.link == NULL);
  pass_ms(&n, RT_TIMEOUT_SCAN_MS, 50);
  struct rt_stream *link = n.h.link;
  CHECK(link != NULL && n.h.link_node == 1);
  /* The link connects just before the write's wait is over. */
  pass_ms(&n, arrival_ms + wait_ms - RT_TIMEOUT_SCAN_MS - n.h.now_ms, 50);
  CHECK(!rt_host_closed(&n.h, link));
  rt_stream_connected(link);
  rt_run(n.rt);
  CHECK(strstr(rt_stream_said(link), "SET") != NULL);
  /* The leader takes nearly the limit to answer. */
  pass_ms(&n, limit - 500, 50);
  CHECK(!rt_host_closed(&n.h, link));
  rt_stream_input(link, "+OK\r\n+OK\r\n", 10);
  rt_run(n.rt);
  const char *got = rt_stream_said(c);
  if (strcmp(got, "+OK\r\n") != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  CHECK(strcmp(got, "+OK\r\n") == 0);
  rt_node_close(&n);
}

/* A reply is the leader's sign of life even when the client that asked
 * went away; and after its last reply, a leader that answers nothing more
 * loses the link within the limit, its writes answered "outcome unknown". */
static void a_link_is_judged_by_the_leaders_last_reply(void) {
  struct rt_node n;
  node_open(&n);
  uint64_t limit = link_limit_ms(&n);
  struct rt_stream *a = client(&n), *b = client(&n);
  CHECK(a != NULL && b != NULL);
  rt_stream_input(a, "SET a 1\r\n", 9);
  rt_stream_input(b, "SET b 1\r\n", 9);
  rt_run(n.rt);
  struct rt_stream *link = link_connect_carrying(&n, 2);
  CHECK(link != NULL);
  rt_stream_input(link, "+OK\r\n", 5); /* SABHA.FORWARDED */
  rt_stream_lost(a);
  rt_stream_free(a);
  pass_ms(&n, limit - 1000, 1);
  rt_stream_input(link, "+OK\r\n", 5); /* a's, which nobody waits for */
  rt_run(n.rt);
  CHECK(given_up_after(&n, link, b, limit));
  rt_node_close(&n);
}

/* A link that carried nothing for a while starts the leader's clock anew
 * with the next command it carries; a leader that then answers nothing
 * loses the link within the limit of that command going. */
static void an_idle_link_is_timed_from_its_next_command(void) {
  struct rt_node n;
  struct rt_stream *c, *link;
  one_write_forwarded(&n, &c, &link);
  CHECK(c != NULL);
  uint64_t limit = link_limit_ms(&n);
  rt_stream_input(link, "+OK\r\n", 5);
  rt_run(n.rt);
  CHECK(rt_stream_take_oks(c) == 1);
  pass_ms(&n, 3 * limit, 1);
  CHECK(!rt_host_closed(&n.h, link));
  CHECK(write_goes(&n, c, link, 1));
  CHECK(given_up_after(&n, link, c, limit));
  rt_node_close(&n);
}

/* Commands that keep going over a link do not keep it up when the leader
 * answers none of them: its clock runs from the first. */
static void new_commands_do_not_keep_up_a_link_that_answers_none(void) {
  struct rt_node n;
  struct rt_stream *c, *link;
  one_write_forwarded(&n, &c, &link);
  CHECK(c != NULL);
  uint64_t limit = link_limit_ms(&n);
  for (int i = 1; i <= 3; i++) {
    pass_ms(&n, limit / 4, 1);
    CHECK(!rt_host_closed(&n.h, link));
    CHECK(write_goes(&n, c, link, i));
  }
  CHECK(given_up_after(&n, link, c, limit - 3 * (limit / 4)));
  rt_node_close(&n);
}

/* ---- when the leader cannot be reached ------------------------------------
 *
 * leader-wait-ms bounds how long a command waits on this node before it
 * goes to a leader: for one to be elected, and for the link to it to
 * connect. A leader whose heartbeats arrive but whose client port takes
 * no connection (blackholed) must not hold a client longer than no
 * leader at all would, however many links this node opens to it. */

/* Whether client `c` got `n` errors saying no leader could be reached,
 * and nothing else. */
static bool told_unreachable(struct rt_stream *c, int n) {
  const char *got = rt_stream_said(c);
  static const char want[] = "-TRYAGAIN no leader: node 1 leads, but ";
  const char *p = got;
  for (int i = 0; i < n; i++) {
    if (strncmp(p, want, sizeof want - 1) != 0 || strchr(p, '\n') == NULL) {
      fprintf(stderr, "the client got: [%s]\n", got);
      return false;
    }
    p = strchr(p, '\n') + 1;
  }
  return *p == '\0';
}

/* Each of a client's commands, over each new link to a leader whose port
 * never takes the connection, is answered -TRYAGAIN (not carried out)
 * within leader-wait-ms of its arrival, and the link is given up then. */
static void a_leader_that_cannot_be_reached_is_waited_for_leader_wait_ms(void) {
  struct rt_node n;
  node_open(&n);
  uint64_t wait_ms = n.rt->cfg.leader_wait_ms;
  CHECK(wait_ms > 4 * RT_TIMEOUT_SCAN_MS);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  struct rt_stream *before = NULL;
  for (int round = 0; round < 3; round++) {
    rt_stream_input(c, "SET k 1\r\nGET k\r\n", 16);
    rt_run(n.rt);
    pass_ms(&n, wait_ms - RT_TIMEOUT_SCAN_MS, 1);
    struct rt_stream *link = n.h.link;
    CHECK(link != NULL && link != before && n.h.link_node == 1);
    CHECK(!rt_host_closed(&n.h, link));
    CHECK(strcmp(rt_stream_said(c), "") == 0);
    pass_ms(&n, 2 * RT_TIMEOUT_SCAN_MS, 1);
    CHECK(told_unreachable(c, 2));
    CHECK(rt_host_closed(&n.h, link));
    before = link;
    pass_ms(&n, RT_FWD_BACKOFF_MS, 1);
  }
  rt_node_close(&n);
}

/* A read that went to a leader that never answers (its port takes the
 * link, then nothing) is answered when the link is given up, not sent
 * again over a new link to the same silent leader, and again, for ever. */
static void a_read_the_leader_never_answers_is_answered_in_time(void) {
  struct rt_node n;
  node_open(&n);
  uint64_t limit = link_limit_ms(&n);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  rt_stream_input(c, "GET k\r\n", 7);
  rt_run(n.rt);
  struct rt_stream *link = link_connect_carrying(&n, 1);
  CHECK(link != NULL);
  pass_ms(&n, limit, 1);
  CHECK(strcmp(rt_stream_said(c), "") == 0);
  pass_ms(&n, 2 * RT_TIMEOUT_SCAN_MS, 1);
  CHECK(rt_host_closed(&n.h, link));
  CHECK(told_unreachable(c, 1));
  rt_node_close(&n);
}

/* A link that connects within the commands' leader-wait-ms carries them,
 * however late in it: the leader answers them as any other. */
static void a_link_that_connects_late_in_the_wait_carries_its_commands(void) {
  struct rt_node n;
  node_open(&n);
  uint64_t wait_ms = n.rt->cfg.leader_wait_ms;
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  rt_stream_input(c, "SET k 1\r\nGET k\r\n", 16);
  rt_run(n.rt);
  pass_ms(&n, wait_ms - 2 * RT_TIMEOUT_SCAN_MS, 1);
  struct rt_stream *link = link_connect_carrying(&n, 2);
  CHECK(link != NULL);
  pass_ms(&n, 4 * RT_TIMEOUT_SCAN_MS, 1);
  CHECK(!rt_host_closed(&n.h, link));
  static const char replies[] = "+OK\r\n+OK\r\n$1\r\n1\r\n";
  rt_stream_input(link, replies, sizeof replies - 1);
  rt_run(n.rt);
  const char *got = rt_stream_said(c);
  if (strcmp(got, "+OK\r\n$1\r\n1\r\n") != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  CHECK(strcmp(got, "+OK\r\n$1\r\n1\r\n") == 0);
  rt_node_close(&n);
}

/* ---- proving the cluster secret -------------------------------------------
 *
 * With a cluster secret, a connection is taken for another node's
 * forwarding link (let off every client's output limits, never forwarding
 * again) only once it has answered the node's challenge with the keyed
 * hash of src/node/auth.c. The proof is computed here from that comment
 * alone, so that the test holds the code to the documented formula. */

#define SECRET "a cluster secret of thirty-two b"

/* `hex` (64 digits and a NUL) proves SECRET from node `from` to node `to`
 * for `challenge`. */
static void proof_hex(uint32_t from, uint32_t to, const uint8_t *challenge,
                      char *hex) {
  static const char key_label[] = "sabha-forward-key-v1";
  static const char proof_label[] = "sabha-forward-proof-v1";
  uint8_t key[32], proof[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof key);
  crypto_generichash_update(&st, (const uint8_t *)key_label,
                            sizeof key_label - 1);
  crypto_generichash_update(&st, (const uint8_t *)SECRET, strlen(SECRET));
  crypto_generichash_final(&st, key, sizeof key);
  uint8_t ids[8] = {(uint8_t)from, (uint8_t)(from >> 8), 0, 0,
                    (uint8_t)to,   (uint8_t)(to >> 8),   0, 0};
  crypto_generichash_init(&st, key, sizeof key, sizeof proof);
  crypto_generichash_update(&st, (const uint8_t *)proof_label,
                            sizeof proof_label - 1);
  crypto_generichash_update(&st, ids, sizeof ids);
  crypto_generichash_update(&st, challenge, 32);
  crypto_generichash_final(&st, proof, sizeof proof);
  sodium_bin2hex(hex, 65, proof, sizeof proof);
}

/* Node 2 of node_open with SECRET (or, `secret` false, none), a hard
 * output limit of 1 MiB, and no leader needed: ECHO answers at once. */
static void secret_node_open_max(struct rt_node *n, bool secret,
                                 uint32_t clients_max) {
  struct rt_config cfg;
  CHECK(rt_node_init(n, &cfg) == 0);
  n->h.accept_links = true;
  cfg.clients_max = clients_max;
  cfg.out_hard_bytes = 1u << 20;
  cfg.link_key_set = secret;
  if (secret)
    rt_link_key_derive((const uint8_t *)SECRET, strlen(SECRET), cfg.link_key);
  memset(cfg.link_challenge_key, 7, sizeof cfg.link_challenge_key);
  CHECK(rt_node_start(n, &cfg) == 0);
}

static void secret_node_open(struct rt_node *n, bool secret) {
  secret_node_open_max(n, secret, 100);
}

/* Stream `c` says `text`; what it is answered. */
static const char *say(struct rt_node *n, struct rt_stream *c,
                       const char *text) {
  rt_stream_input(c, text, strlen(text));
  rt_run(n->rt);
  return rt_stream_said(c);
}

/* The challenge `c` is answered with when it says SABHA.FORWARDED, into
 * `challenge`: false when the answer is none. */
static bool challenged(struct rt_node *n, struct rt_stream *c,
                       uint8_t *challenge) {
  const char *got = say(n, c, "SABHA.FORWARDED\r\n");
  size_t bin_len = 0;
  bool ok = strncmp(got, "+CHALLENGE ", 11) == 0 && strlen(got) == 11 + 66 &&
            sodium_hex2bin(challenge, 32, got + 11, 64, NULL, &bin_len,
                           NULL) == 0 &&
            bin_len == 32;
  if (!ok)
    fprintf(stderr, "SABHA.FORWARDED was answered [%s]\n", got);
  return ok;
}

/* Whether client `c`, reading nothing, is closed when it is sent two
 * replies of 600 KiB: past the hard output limit of secret_node_open. */
static bool output_limit_applies(struct rt_node *n, struct rt_stream *c) {
  size_t bytes = 600u * 1024u;
  char *cmd = malloc(bytes + 64);
  if (cmd == NULL)
    return false;
  int k = snprintf(cmd, 64, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", bytes);
  memset(cmd + k, 'x', bytes);
  memcpy(cmd + k + bytes, "\r\n", 2);
  for (int i = 0; i < 2; i++) {
    rt_stream_input(c, cmd, (size_t)k + bytes + 2);
    rt_run(n->rt);
  }
  free(cmd);
  return rt_host_closed(&n->h, c);
}

/* A client that says SABHA.FORWARDED is only challenged: without the
 * proof it stays a client, held to a client's output limit, and is
 * counted; with a wrong proof it is refused and closed. Only the right
 * proof, for this node and this challenge, makes a link. */
static void a_client_without_the_proof_is_no_forwarding_link(void) {
  struct rt_node n;
  secret_node_open(&n, true);
  uint8_t challenge[32];
  struct rt_stream *plain = client(&n);
  CHECK(plain != NULL && challenged(&n, plain, challenge));
  CHECK(output_limit_applies(&n, plain));
  CHECK(rt_metrics(n.rt)->link_proofs_refused == 1);

  char hex[65], line[128];
  struct rt_stream *wrong = client(&n);
  CHECK(wrong != NULL && challenged(&n, wrong, challenge));
  proof_hex(3, 1, challenge, hex); /* for node 1, not this node 2 */
  snprintf(line, sizeof line, "SABHA.FORWARDED 3 %s\r\n", hex);
  CHECK(strncmp(say(&n, wrong, line), "-NOPERM wrong proof", 19) == 0);
  CHECK(rt_host_closed(&n.h, wrong));
  CHECK(rt_metrics(n.rt)->link_proofs_refused == 2);

  struct rt_stream *stale = client(&n);
  CHECK(stale != NULL && challenged(&n, stale, challenge));
  uint8_t old[32];
  memcpy(old, challenge, sizeof old);
  CHECK(challenged(&n, stale, challenge)); /* a new one replaces it */
  CHECK(memcmp(old, challenge, sizeof old) != 0);
  proof_hex(3, 2, old, hex);
  snprintf(line, sizeof line, "SABHA.FORWARDED 3 %s\r\n", hex);
  CHECK(strncmp(say(&n, stale, line), "-NOPERM wrong proof", 19) == 0);
  CHECK(rt_metrics(n.rt)->link_proofs_refused == 3);

  struct rt_stream *link = client(&n);
  CHECK(link != NULL && challenged(&n, link, challenge));
  proof_hex(3, 2, challenge, hex);
  snprintf(line, sizeof line, "SABHA.FORWARDED 3 %s\r\n", hex);
  CHECK(strcmp(say(&n, link, line), "+OK\r\n") == 0);
  CHECK(!output_limit_applies(&n, link));
  CHECK(rt_metrics(n.rt)->link_proofs_refused == 3);
  rt_node_close(&n);

  /* Without a secret a link is taken on its word, as before. */
  secret_node_open(&n, false);
  link = client(&n);
  CHECK(link != NULL);
  CHECK(strcmp(say(&n, link, "SABHA.FORWARDED\r\n"), "+OK\r\n") == 0);
  CHECK(!output_limit_applies(&n, link));
  rt_node_close(&n);
}

/* A follower's own link proves the secret before any client's command
 * goes: the commands wait until the leader has taken the proof. */
static void a_link_proves_the_secret_before_it_carries_commands(void) {
  struct rt_node n;
  secret_node_open(&n, true);
  struct sabha_msg m = {
      .type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
  rt_step(n.rt, &m);
  rt_run(n.rt);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  CHECK(strcmp(say(&n, c, "SET k 1\r\n"), "") == 0);
  struct rt_stream *link = n.h.link;
  CHECK(link != NULL && n.h.link_node == 1);
  rt_stream_connected(link);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(link), "*1\r\n$15\r\nSABHA.FORWARDED\r\n") == 0);
  uint8_t challenge[32];
  memset(challenge, 0x5a, sizeof challenge);
  char hex[65], line[256];
  sodium_bin2hex(hex, sizeof hex, challenge, sizeof challenge);
  snprintf(line, sizeof line, "+CHALLENGE %s\r\n", hex);
  rt_stream_input(link, line, strlen(line));
  rt_run(n.rt);
  proof_hex(2, 1, challenge, hex);
  snprintf(line, sizeof line, "*3\r\n$15\r\nSABHA.FORWARDED\r\n$1\r\n2\r\n"
                              "$64\r\n%s\r\n", hex);
  CHECK(strcmp(rt_stream_said(link), line) == 0);
  rt_stream_input(link, "+OK\r\n", 5);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(link),
               "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n") == 0);
  rt_stream_input(link, "+OK\r\n", 5);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  rt_node_close(&n);

  /* A leader that takes the link without a challenge (it has no secret)
   * is not sent the commands: the link is given up, and they wait. */
  secret_node_open(&n, true);
  rt_step(n.rt, &m);
  rt_run(n.rt);
  c = client(&n);
  CHECK(c != NULL);
  CHECK(strcmp(say(&n, c, "SET k 1\r\n"), "") == 0);
  link = n.h.link;
  CHECK(link != NULL);
  rt_stream_connected(link);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(link), "*1\r\n$15\r\nSABHA.FORWARDED\r\n") == 0);
  rt_stream_input(link, "+OK\r\n", 5);
  rt_run(n.rt);
  CHECK(rt_host_closed(&n.h, link));
  CHECK(strcmp(rt_stream_said(link), "") == 0);
  CHECK(strcmp(rt_stream_said(c), "") == 0);
  rt_node_close(&n);
}

/* A connection let in past clients-max (a slot kept for nodes) stays
 * while it proves the secret, and stays for good once it has; one that
 * only says SABHA.FORWARDED, then anything else, is refused. */
static void a_slot_kept_for_nodes_takes_a_link_that_proves_the_secret(void) {
  struct rt_node n;
  secret_node_open_max(&n, true, 1);
  struct rt_stream *first = client(&n);
  CHECK(first != NULL);
  uint8_t challenge[32];
  char hex[65], line[128];
  struct rt_stream *link = client(&n);
  CHECK(link != NULL && challenged(&n, link, challenge));
  CHECK(!rt_host_closed(&n.h, link));
  proof_hex(1, 2, challenge, hex);
  snprintf(line, sizeof line, "SABHA.FORWARDED 1 %s\r\n", hex);
  CHECK(strcmp(say(&n, link, line), "+OK\r\n") == 0);
  pass_ms(&n, 2 * RT_PROBATION_MS, 0);
  CHECK(strcmp(say(&n, link, "PING\r\n"), "+PONG\r\n") == 0);
  CHECK(!rt_host_closed(&n.h, link));

  struct rt_stream *pretend = client(&n);
  CHECK(pretend != NULL && challenged(&n, pretend, challenge));
  CHECK(strcmp(say(&n, pretend, "PING\r\n"),
               "-ERR max number of clients reached\r\n") == 0);
  CHECK(rt_host_closed(&n.h, pretend));
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(an_exec_too_big_to_forward_is_refused_here),
      TEST(a_refused_command_never_overtakes_its_clients_next),
      TEST(an_unsent_command_never_goes_behind_its_clients_next),
      TEST(a_group_command_refused_never_overtakes_its_clients_next),
      TEST(a_group_command_unsent_never_goes_behind_its_clients_next),
      TEST(a_refused_command_never_goes_again_after_its_clients_next),
      TEST(a_refused_command_never_goes_behind_its_clients_next_here),
      TEST(a_reply_too_large_for_a_link_is_refused_alone),
      TEST(watches_in_flight_count_against_the_keys_a_connection_watches),
      TEST(commands_refused_wait_out_the_backoff_untried),
      TEST(a_reply_not_held_still_answers_its_own_command),
      TEST(a_leader_that_answers_slowly_keeps_its_link),
      TEST(a_command_that_waited_here_is_timed_from_when_it_went),
      TEST(a_link_is_judged_by_the_leaders_last_reply),
      TEST(an_idle_link_is_timed_from_its_next_command),
      TEST(new_commands_do_not_keep_up_a_link_that_answers_none),
      TEST(a_leader_that_cannot_be_reached_is_waited_for_leader_wait_ms),
      TEST(a_read_the_leader_never_answers_is_answered_in_time),
      TEST(a_link_that_connects_late_in_the_wait_carries_its_commands),
      TEST(a_client_without_the_proof_is_no_forwarding_link),
      TEST(a_link_proves_the_secret_before_it_carries_commands),
      TEST(a_slot_kept_for_nodes_takes_a_link_that_proves_the_secret),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
