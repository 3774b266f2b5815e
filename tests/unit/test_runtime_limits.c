/* The limits on clients in the node runtime (src/node/clients.c), through
 * the runtime's own API, as a host sees them: the output buffer limits
 * (hard, and soft for so long), the query buffer limit, the idle timeout,
 * the budget for all clients' buffers, and the slots kept for forwarding
 * links. The node is node 2 of three over memfs and knows no leader; the
 * test is its host, and its clock, which it moves to cross each limit.
 *
 * A client that does not read is a stream whose output the test never
 * takes; ECHO of a large argument fills it at once, with no leader
 * needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include "check.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "rt_host.h"
#include "storage/memfs.h"
#include "storage/wal.h"

/* Opens node 2 with `cfg` changed by the caller first (see limits()). */
static void node_open(struct rt_node *n, const struct rt_config *limits) {
  struct rt_config cfg;
  CHECK(rt_node_init(n, &cfg) == 0);
  /* No elections while the clock runs for minutes. */
  cfg.engine.election_timeout_ms_min = 3600000;
  cfg.engine.election_timeout_ms_max = 7200000;
  cfg.leader_wait_ms = 3600000;
  cfg.clients_max = limits->clients_max;
  cfg.idle_timeout_s = limits->idle_timeout_s;
  cfg.out_hard_bytes = limits->out_hard_bytes;
  cfg.out_soft_bytes = limits->out_soft_bytes;
  cfg.out_soft_s = limits->out_soft_s;
  cfg.query_bytes_max = limits->query_bytes_max;
  cfg.clients_memory_max = limits->clients_memory_max;
  CHECK(rt_node_start(n, &cfg) == 0);
}

/* Every limit off, 100 clients: each test turns on what it tries. */
static struct rt_config limits(void) {
  struct rt_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.clients_max = 100;
  return cfg;
}

/* Time passes: every scan in between runs. */
static void advance(struct rt_node *n, uint64_t ms) {
  uint64_t end = n->h.now_ms + ms;
  while (n->h.now_ms < end) {
    uint64_t step = end - n->h.now_ms < 10 ? end - n->h.now_ms : 10;
    n->h.now_ms += step;
    rt_tick(n->rt);
    rt_run(n->rt);
  }
}

static struct rt_stream *client(struct rt_node *n) {
  struct rt_stream *s = NULL;
  const char *refusal = rt_stream_accept(n->rt, true, &s);
  return refusal == NULL ? s : NULL;
}

static void send_line(struct rt_node *n, struct rt_stream *s,
                      const char *line) {
  rt_stream_input(s, line, strlen(line));
  rt_run(n->rt);
}

/* Sends the command whose arguments but the last are `first` (multibulk,
 * with its array header) and whose last is `bytes` x's. */
static void send_big(struct rt_node *n, struct rt_stream *s, const char *first,
                     size_t bytes) {
  char head[128];
  int k = snprintf(head, sizeof head, "%s$%zu\r\n", first, bytes);
  uint8_t *cmd = malloc((size_t)k + bytes + 2);
  CHECK(cmd != NULL);
  memcpy(cmd, head, (size_t)k);
  memset(cmd + k, 'x', bytes);
  memcpy(cmd + k + bytes, "\r\n", 2);
  rt_stream_input(s, cmd, (size_t)k + bytes + 2);
  free(cmd);
  rt_run(n->rt);
}

/* ECHO of `bytes` bytes: a reply of that size, at once. */
static void echo(struct rt_node *n, struct rt_stream *s, size_t bytes) {
  send_big(n, s, "*2\r\n$4\r\nECHO\r\n", bytes);
}

/* The client reads everything it was sent; returns how many bytes. */
static size_t drain(struct rt_stream *s) {
  const uint8_t *data;
  size_t len, total = 0;
  while (rt_stream_out_take(s, &data, &len)) {
    total += len;
    rt_stream_out_done(s);
  }
  return total;
}

#define MIB (1u << 20)

static void output_past_the_hard_limit_closes_the_client(void) {
  struct rt_config lim = limits();
  lim.out_hard_bytes = 1 * MIB;
  struct rt_node n;
  node_open(&n, &lim);
  struct rt_stream *reader = client(&n);
  struct rt_stream *deaf = client(&n);
  struct rt_stream *huge = client(&n);
  /* A client that reads its replies is never cut, however much it asks. */
  for (int i = 0; i < 8; i++) {
    echo(&n, reader, 600 * 1024);
    CHECK(drain(reader) > 600 * 1024);
  }
  CHECK(!rt_host_closed(&n.h, reader));
  /* One that does not read: fine below the limit, closed past it. */
  echo(&n, deaf, 600 * 1024);
  CHECK(!rt_host_closed(&n.h, deaf));
  echo(&n, deaf, 600 * 1024);
  CHECK(rt_host_closed(&n.h, deaf));
  CHECK(rt_metrics(n.rt)->out_limit_closed == 1);
  /* Counted with what is being written: a slow reader whose write has
   * not completed holds both. */
  struct rt_stream *slow = client(&n);
  const uint8_t *data;
  size_t len;
  echo(&n, slow, 600 * 1024);
  CHECK(rt_stream_out_take(slow, &data, &len));
  echo(&n, slow, 600 * 1024);
  CHECK(rt_host_closed(&n.h, slow));
  rt_stream_out_done(slow);
  CHECK(rt_metrics(n.rt)->out_limit_closed == 2);
  /* One reply larger than the limit is not built past it. */
  echo(&n, huge, 2 * MIB);
  CHECK(rt_host_closed(&n.h, huge));
  CHECK(rt_metrics(n.rt)->out_limit_closed == 3);
  CHECK(!rt_host_closed(&n.h, reader));
  rt_node_close(&n);

  /* With no hard limit the same client stays (back-pressure holds it). */
  lim.out_hard_bytes = 0;
  node_open(&n, &lim);
  deaf = client(&n);
  echo(&n, deaf, 600 * 1024);
  echo(&n, deaf, 600 * 1024);
  echo(&n, deaf, 2 * MIB);
  CHECK(!rt_host_closed(&n.h, deaf));
  CHECK(rt_metrics(n.rt)->out_limit_closed == 0);
  rt_node_close(&n);
}

static void output_past_the_soft_limit_for_its_seconds_closes_the_client(void) {
  struct rt_config lim = limits();
  lim.out_soft_bytes = 1 * MIB;
  lim.out_soft_s = 2;
  struct rt_node n;
  node_open(&n, &lim);
  struct rt_stream *slow = client(&n);
  struct rt_stream *deaf = client(&n);
  echo(&n, deaf, 600 * 1024);
  echo(&n, deaf, 600 * 1024); /* past the soft limit, from now on */
  echo(&n, slow, 1200 * 1024);
  CHECK(!rt_host_closed(&n.h, deaf) && !rt_host_closed(&n.h, slow));
  advance(&n, 1500);
  CHECK(!rt_host_closed(&n.h, deaf) && !rt_host_closed(&n.h, slow));
  /* `slow` reads in time: below the limit again, its clock starts over. */
  CHECK(drain(slow) > MIB);
  echo(&n, slow, 1200 * 1024);
  advance(&n, 600);
  CHECK(rt_host_closed(&n.h, deaf));
  CHECK(!rt_host_closed(&n.h, slow));
  CHECK(rt_metrics(n.rt)->out_limit_closed == 1);
  advance(&n, 1500);
  CHECK(rt_host_closed(&n.h, slow));
  CHECK(rt_metrics(n.rt)->out_limit_closed == 2);
  rt_node_close(&n);
}

static void input_past_the_query_buffer_limit_is_refused_and_closed(void) {
  struct rt_config lim = limits();
  lim.query_bytes_max = 64 * 1024;
  struct rt_node n;
  node_open(&n, &lim);
  struct rt_stream *c = client(&n);
  /* A read waits for a leader, so the write behind it waits unparsed in
   * the input, and reading stops; a client that sends on regardless
   * fills the input. */
  send_line(&n, c, "GET a\r\nSET a 1\r\n");
  CHECK(rt_host_paused(&n.h, c));
  static char junk[48 * 1024];
  memset(junk, 'x', sizeof junk);
  rt_stream_input(c, junk, sizeof junk);
  CHECK(!rt_host_closed(&n.h, c));
  rt_stream_input(c, junk, sizeof junk);
  CHECK(rt_host_closed(&n.h, c));
  /* Without a word while the GET waits: the client would take the error
   * for the GET's reply. */
  CHECK(strcmp(rt_stream_said(c), "") == 0);
  CHECK(rt_metrics(n.rt)->query_limit_closed == 1);

  /* With nothing waiting, told why: a command whose argument keeps
   * coming past the limit. */
  struct rt_stream *b = client(&n);
  send_line(&n, b, "*2\r\n$4\r\nECHO\r\n$100000\r\n");
  rt_stream_input(b, junk, sizeof junk);
  CHECK(!rt_host_closed(&n.h, b));
  rt_stream_input(b, junk, sizeof junk);
  CHECK(rt_host_closed(&n.h, b));
  CHECK(strcmp(rt_stream_said(b), "-ERR client-query-buffer-limit reached: the "
                                  "connection sent more than the node holds "
                                  "unparsed; closing it\r\n") == 0);
  CHECK(rt_metrics(n.rt)->query_limit_closed == 2);

  /* More than the limit in all is no flood: commands are parsed as they
   * come, and the limit is on what waits unparsed. */
  struct rt_stream *d = client(&n);
  for (int i = 0; i < 4; i++)
    echo(&n, d, 40 * 1024);
  CHECK(!rt_host_closed(&n.h, d));
  CHECK(drain(d) > 160 * 1024);
  rt_node_close(&n);
}

/* A one-node leader with a 64 KiB query limit whose commits wait for the
 * test (rt_node_sync), and in *out a client of it that wrote k = 0 and has
 * SET k 1 proposed, its fsync held (NULL when a check failed). */
static void client_with_a_write_held(struct rt_node *n,
                                     struct rt_stream **out) {
  *out = NULL;
  CHECK(rt_node_start_alone(n) == 0);
  n->rt->cfg.query_bytes_max = 64 * 1024;
  n->rt->cfg.fsync = RT_FSYNC_THREAD; /* entries commit when the test says */
  n->h.sync_later = true;
  struct rt_stream *c = client(n);
  send_line(n, c, "SET k 0\r\n");
  rt_node_sync(n);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  send_line(n, c, "SET k 1\r\n");
  CHECK(rt_sync_running(n->rt));
  *out = c;
}

/* A pipelining client reads each reply as the answer to its oldest
 * command still unanswered. One whose write waits for its commit (the
 * fsync that holds it is the test's to finish), then floods the input past
 * the limit, must not find the refusal where the write's reply belongs:
 * it would count as failed a write that then applies. */
static void the_query_limit_refusal_never_answers_an_earlier_command(void) {
  struct rt_node n;
  struct rt_stream *c;
  client_with_a_write_held(&n, &c);
  CHECK(c != NULL);
  CHECK(strcmp(rt_stream_said(c), "") == 0);
  /* A command whose argument keeps coming, past the limit. */
  static const char head[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n";
  rt_stream_input(c, head, sizeof head - 1);
  static char value[70 * 1024];
  memset(value, 'x', sizeof value);
  rt_stream_input(c, value, sizeof value);
  rt_node_settle(&n);
  CHECK(rt_metrics(n.rt)->query_limit_closed == 1);
  CHECK(rt_host_closed(&n.h, c));
  const char *got = rt_stream_said(c);
  if (got[0] != '\0')
    fprintf(stderr, "the client got: [%s]\n", got);
  CHECK(strcmp(got, "") == 0);

  /* The write it would have counted as failed applies. */
  rt_node_sync(&n);
  struct rt_stream *d = client(&n);
  send_line(&n, d, "GET k\r\n");
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(d), "$1\r\n1\r\n") == 0);
  rt_node_close(&n);
}

/* Nothing a client sends after a protocol error (or QUIT) is read: the
 * stream is answered and closed once its replies are out. Those bytes used
 * to pile up while a write of it waited for its commit, and past the query
 * buffer limit they closed the stream silently, dropping the write's reply
 * and the protocol error's with it. */
static void input_after_a_protocol_error_is_dropped(void) {
  struct rt_node n;
  struct rt_stream *c;
  client_with_a_write_held(&n, &c);
  CHECK(c != NULL);
  send_line(&n, c, "*1\r\n$x\r\n"); /* a protocol error */
  static char more[70 * 1024];
  memset(more, 'x', sizeof more);
  rt_stream_input(c, more, sizeof more);
  rt_node_settle(&n);
  CHECK(rt_metrics(n.rt)->query_limit_closed == 0);
  rt_node_sync(&n);
  const char *got = rt_stream_said(c);
  if (strncmp(got, "+OK\r\n-ERR Protocol error", 22) != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  CHECK(strncmp(got, "+OK\r\n-ERR Protocol error", 22) == 0);
  CHECK(rt_host_closed(&n.h, c));
  rt_node_close(&n);
}

static void idle_clients_are_closed_after_the_timeout(void) {
  struct rt_config lim = limits();
  lim.idle_timeout_s = 10;
  struct rt_node n;
  node_open(&n, &lim);
  struct rt_stream *idle = client(&n);
  struct rt_stream *busy = client(&n);
  struct rt_stream *link = client(&n);
  struct rt_stream *chatty = client(&n);
  send_line(&n, idle, "PING\r\n");
  CHECK(strcmp(rt_stream_said(idle), "+PONG\r\n") == 0);
  /* Waits for a leader for as long as it takes: blocked, not idle. */
  send_line(&n, busy, "GET a\r\n");
  send_line(&n, link, "SABHA.FORWARDED\r\n");
  CHECK(strcmp(rt_stream_said(link), "+OK\r\n") == 0);
  for (int i = 0; i < 4; i++) {
    advance(&n, 3000);
    send_line(&n, chatty, "PING\r\n");
    CHECK(strcmp(rt_stream_said(chatty), "+PONG\r\n") == 0);
  }
  /* 12 s on: the idle one went at 10 s; the others stay. */
  CHECK(rt_host_closed(&n.h, idle));
  CHECK(rt_metrics(n.rt)->clients_timed_out == 1);
  CHECK(!rt_host_closed(&n.h, busy) && !rt_host_closed(&n.h, link) &&
        !rt_host_closed(&n.h, chatty));
  advance(&n, 20000);
  CHECK(rt_host_closed(&n.h, chatty));
  CHECK(!rt_host_closed(&n.h, busy) && !rt_host_closed(&n.h, link));
  CHECK(rt_metrics(n.rt)->clients_timed_out == 2);
  rt_node_close(&n);

  /* Timeout 0: never. */
  lim.idle_timeout_s = 0;
  node_open(&n, &lim);
  idle = client(&n);
  advance(&n, 600000);
  CHECK(!rt_host_closed(&n.h, idle));
  rt_node_close(&n);
}

static void the_memory_budget_stops_reading_then_closes_the_largest(void) {
  struct rt_config lim = limits();
  lim.clients_memory_max = 4 * MIB; /* reading stops past 2 MiB */
  struct rt_node n;
  node_open(&n, &lim);
  struct rt_stream *a = client(&n);
  struct rt_stream *b = client(&n);
  struct rt_stream *small = client(&n);
  echo(&n, a, 1 * MIB);
  echo(&n, b, 1 * MIB + MIB / 2);
  send_line(&n, small, "PING\r\n");
  advance(&n, 100);
  CHECK(rt_host_paused(&n.h, a) && rt_host_paused(&n.h, b));
  CHECK(!rt_host_paused(&n.h, small));
  CHECK(rt_metrics(n.rt)->memory_paused == 2);
  struct rt_clients_memory mem;
  rt_clients_memory(n.rt, &mem);
  CHECK(mem.paused == 2);
  CHECK(mem.total_bytes > 2 * MIB + MIB / 2);
  /* `a` reads: the rest fit below half, and everyone is read again. */
  CHECK(drain(a) > MIB);
  advance(&n, 100);
  CHECK(!rt_host_paused(&n.h, a) && !rt_host_paused(&n.h, b));
  CHECK(rt_metrics(n.rt)->memory_closed == 0);
  /* Past the whole budget the largest goes, and only it. */
  echo(&n, a, 3 * MIB);
  advance(&n, 100);
  CHECK(rt_host_closed(&n.h, a));
  CHECK(!rt_host_closed(&n.h, b) && !rt_host_closed(&n.h, small));
  CHECK(rt_metrics(n.rt)->memory_closed == 1);
  rt_node_close(&n);

  /* Without a budget nothing of it happens. */
  lim.clients_memory_max = 0;
  node_open(&n, &lim);
  a = client(&n);
  echo(&n, a, 5 * MIB);
  advance(&n, 100);
  CHECK(!rt_host_closed(&n.h, a) && rt_metrics(n.rt)->memory_paused == 0);
  rt_node_close(&n);
}

static void a_new_connection_pushes_out_the_oldest_on_probation(void) {
  struct rt_config lim = limits();
  lim.clients_max = 1;
  struct rt_node n;
  node_open(&n, &lim);
  CHECK(client(&n) != NULL);
  struct rt_stream *first = client(&n); /* on probation */
  CHECK(first != NULL);
  for (uint32_t i = 1; i < RT_FORWARD_SLOTS; i++)
    CHECK(client(&n) != NULL);
  /* Every kept slot is taken, each still in its grace: refused. */
  struct rt_stream *s = NULL;
  CHECK(rt_stream_accept(n.rt, true, &s) != NULL && s == NULL);
  n.h.now_ms += RT_PROBATION_GRACE_MS;
  /* Past it, the oldest that did not say SABHA.FORWARDED makes room. */
  struct rt_stream *link = client(&n);
  CHECK(link != NULL);
  CHECK(rt_host_closed(&n.h, first));
  CHECK(strcmp(rt_stream_said(first),
               "-ERR max number of clients reached\r\n") == 0);
  CHECK(rt_metrics(n.rt)->probation_evicted == 1);
  send_line(&n, link, "SABHA.FORWARDED\r\n");
  CHECK(strcmp(rt_stream_said(link), "+OK\r\n") == 0);
  advance(&n, RT_PROBATION_MS + 100);
  CHECK(!rt_host_closed(&n.h, link));
  rt_node_close(&n);
}

/* A reply its request could not hold (past its bound, here lowered, or
 * memory ran out building it) still answers its own command, with an error that
 * says the command may have been carried out; were it answered with
 * nothing, each later reply of the client would answer the command before
 * its own. */
static void a_reply_not_held_still_answers_its_own_command(void) {
  struct rt_node n;
  struct rt_stream *c;
  client_with_a_write_held(&n, &c);
  CHECK(c != NULL);
  struct rt_req *r = LIST_OF(c->queue.next, struct rt_req, qlink);
  r->reply.len_max = 2; /* "+OK\r\n" does not fit */
  send_line(&n, c, "GET k\r\n");
  rt_node_sync(&n);
  rt_node_settle(&n);
  const char *got = rt_stream_said(c);
  if (strncmp(got, "-ERR ", 5) != 0)
    fprintf(stderr, "the client got: [%s]\n", got);
  CHECK(strcmp(got,
               "-ERR this command's reply is larger than one reply may be "
               "(256 MiB); it may have been carried out\r\n$1\r\n1\r\n") == 0);
  rt_node_close(&n);
}

/* A transaction's queued commands and a connection's WATCHed keys wait
 * for EXEC, however the budget judges: stopping such a client's reading
 * (past half of maxmemory-clients) would keep its EXEC out for good. So
 * they are held to half the budget together, across clients: past it a
 * command is refused with -OOM (its transaction fails at EXEC) and so is a
 * WATCH, and what an EXEC, DISCARD or UNWATCH lets go is free again. */
static void transactions_are_held_to_half_the_budget(void) {
  struct rt_config lim = limits();
  lim.clients_memory_max = 2 * MIB;
  struct rt_node n;
  node_open(&n, &lim);
  struct rt_stream *a = client(&n);
  send_line(&n, a, "MULTI\r\n");
  for (int i = 0; i < 3; i++)
    send_big(&n, a, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n", 400 * 1024);
  send_line(&n, a, "EXEC\r\n");
  CHECK(strcmp(rt_stream_said(a),
               "+OK\r\n+QUEUED\r\n+QUEUED\r\n"
               "-OOM the clients' transactions and watched keys would pass "
               "half of maxmemory-clients\r\n"
               "-EXECABORT Transaction discarded because of previous "
               "errors.\r\n") == 0);
  send_line(&n, a, "MULTI\r\n");
  send_big(&n, a, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n", 400 * 1024);
  send_line(&n, a, "DISCARD\r\n");
  CHECK(strcmp(rt_stream_said(a), "+OK\r\n+QUEUED\r\n+OK\r\n") == 0);
  /* WATCHed keys count too (60 KiB keys: 20 pass 1 MiB). */
  struct rt_stream *b = client(&n);
  static char watch[64 + 20 * (60 * 1024 + 16)];
  size_t len = (size_t)sprintf(watch, "*21\r\n$5\r\nWATCH\r\n");
  for (int i = 0; i < 20; i++) {
    len += (size_t)sprintf(watch + len, "$%u\r\n", 60 * 1024);
    memset(watch + len, 'a' + i, 60 * 1024);
    len += 60 * 1024;
    memcpy(watch + len, "\r\n", 2);
    len += 2;
  }
  rt_stream_input(b, watch, len);
  rt_run(n.rt);
  CHECK(strcmp(rt_stream_said(b),
               "-OOM the clients' transactions and watched keys would pass "
               "half of maxmemory-clients\r\n") == 0);
  CHECK(n.rt->txn_bytes == 0); /* all let go */
  rt_node_close(&n);
  /* Without a budget the same transaction is queued whole. */
  lim.clients_memory_max = 0;
  node_open(&n, &lim);
  a = client(&n);
  send_line(&n, a, "MULTI\r\n");
  for (int i = 0; i < 3; i++)
    send_big(&n, a, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n", 400 * 1024);
  send_line(&n, a, "DISCARD\r\n");
  CHECK(strcmp(rt_stream_said(a),
               "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+OK\r\n") == 0);
  rt_node_close(&n);
}

/* A WAL segment too small for the largest entry is refused at start-up,
 * naming the setting and the least it may be, not as a log that cannot be
 * recovered (which reads like damage). */
static void a_segment_too_small_for_an_entry_is_named_as_such(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  uint64_t least = wal_segment_bytes_min(cfg.engine.entry_size_bytes_max);
  cfg.wal_segment_bytes = (uint32_t)least - 1;
  struct rt_ports ports = rt_host_ports(&n.h);
  char err[512];
  CHECK(rt_open(&n.rt, &cfg, &ports, err, sizeof err) == 1);
  char want[160];
  snprintf(want, sizeof want,
           "wal-segment-bytes %" PRIu64 " is too small: a segment must hold "
           "the largest entry (%u bytes) with its headers, %" PRIu64
           " bytes at least",
           least - 1, cfg.engine.entry_size_bytes_max, least);
  CHECK(strcmp(err, want) == 0);
  cfg.wal_segment_bytes = (uint32_t)least;
  CHECK(rt_node_start(&n, &cfg) == 0);
  rt_node_close(&n);
}

/* A host that takes a stream's replies one at a time (the HTTP API, with
 * its requests pipelined) has each judged by the hard output limit on its
 * own: four pipelined GETs of a 600 KiB value with the limit at 1 MiB come
 * one per take, and the stream stays; a client that takes them together
 * is closed, as Redis's would be. */
static void one_reply_streams_are_judged_reply_by_reply(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  rt_node_config_alone(&n, &cfg);
  cfg.out_hard_bytes = 1 * MIB;
  CHECK(rt_node_start(&n, &cfg) == 0);
  CHECK(rt_node_elect(&n) == 0);
  struct rt_stream *w = client(&n);
  CHECK(w != NULL && rt_stream_say_set(w, "big", 600u << 10));
  rt_node_settle(&n);
  rt_node_sync(&n);
  CHECK(rt_stream_take_oks(w) == 1);
  static const char gets[] = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
                             "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
                             "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
                             "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
  struct rt_stream *one = client(&n);
  struct rt_stream *all = client(&n);
  CHECK(one != NULL && all != NULL);
  rt_stream_set_one_reply(one);
  rt_stream_input(one, gets, sizeof gets - 1);
  rt_stream_input(all, gets, sizeof gets - 1);
  rt_node_settle(&n);
  rt_node_sync(&n);
  int replies = 0;
  const uint8_t *data;
  size_t len;
  while (rt_stream_out_take(one, &data, &len)) {
    CHECK(len > 600u << 10 && len < (600u << 10) + 64);
    replies++;
    rt_stream_out_done(one);
    rt_node_settle(&n);
  }
  CHECK(replies == 4);
  CHECK(!rt_host_closed(&n.h, one));
  CHECK(rt_host_closed(&n.h, all));
  CHECK(rt_metrics(n.rt)->out_limit_closed == 1);
  rt_node_close(&n);
}

/* Each client closed for a limit is a warning in the log, and a client can
 * open connection after connection to be closed: within a window the node
 * logs RT_CLIENT_LOG_LINES of them, then counts the rest, and says how
 * many it left out with the first of a later window. */
static void warnings_about_clients_are_bounded(void) {
  struct rt_config lim = limits();
  lim.query_bytes_max = 64 * 1024;
  struct rt_node n;
  node_open(&n, &lim);
  static char junk[48 * 1024];
  memset(junk, 'x', sizeof junk);
  int before = n.h.warnings;
  enum { FLOOD = 3 * RT_CLIENT_LOG_LINES };
  for (int i = 0; i < FLOOD; i++) {
    struct rt_stream *c = client(&n);
    send_line(&n, c, "*2\r\n$4\r\nECHO\r\n$100000\r\n");
    rt_stream_input(c, junk, sizeof junk);
    rt_stream_input(c, junk, sizeof junk);
    CHECK(rt_host_closed(&n.h, c));
    /* The host lists RT_HOST_STREAMS_MAX closed streams: free this one. */
    CHECK(n.h.closed[n.h.n_closed - 1] == c);
    n.h.n_closed--;
    rt_stream_free(c);
  }
  CHECK(rt_metrics(n.rt)->query_limit_closed == FLOOD);
  CHECK(n.h.warnings - before == (int)RT_CLIENT_LOG_LINES);
  advance(&n, RT_CLIENT_LOG_MS);
  struct rt_stream *c = client(&n);
  send_line(&n, c, "*2\r\n$4\r\nECHO\r\n$100000\r\n");
  rt_stream_input(c, junk, sizeof junk);
  rt_stream_input(c, junk, sizeof junk);
  CHECK(rt_host_closed(&n.h, c));
  /* The count of those left out, then the new one. */
  CHECK(n.h.warnings - before == (int)RT_CLIENT_LOG_LINES + 2);
  CHECK(strstr(n.h.last_warning, "past client-query-buffer-limit") != NULL);
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(warnings_about_clients_are_bounded),
      TEST(output_past_the_hard_limit_closes_the_client),
      TEST(output_past_the_soft_limit_for_its_seconds_closes_the_client),
      TEST(input_past_the_query_buffer_limit_is_refused_and_closed),
      TEST(the_query_limit_refusal_never_answers_an_earlier_command),
      TEST(input_after_a_protocol_error_is_dropped),
      TEST(idle_clients_are_closed_after_the_timeout),
      TEST(the_memory_budget_stops_reading_then_closes_the_largest),
      TEST(a_new_connection_pushes_out_the_oldest_on_probation),
      TEST(a_segment_too_small_for_an_entry_is_named_as_such),
      TEST(transactions_are_held_to_half_the_budget),
      TEST(a_reply_not_held_still_answers_its_own_command),
      TEST(one_reply_streams_are_judged_reply_by_reply),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
