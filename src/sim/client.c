/* Closed-loop clients that speak RESP to the nodes, over connections
 * (conn.c), exactly as redis-cli and client libraries speak to sabhad: the
 * request path is the runtime's own (the command table, sessions and
 * dedup, forwarding from followers, pipelining, timeouts), and every
 * operation a client starts is recorded in the history the checkers read.
 *
 * The key-value workload, on n_keys registers r0.., a few counters c0.. and
 * as many expiring keys e0.. (a cache entry or a lease: set now and then
 * with a time to live, read far more often, so that reads meet values
 * about to expire and just expired):
 *   put   SET rK v<id> (half with PX 20..600 ms; one in a hundred with a
 *         48 KB tail, so large values cross the log, the WAL's segments and
 *         snapshots), or SET eK v<id> PX 20..600;
 *   append APPEND rK <a letter, a..u> (a quarter of the register puts
 *         become appends): the value grows a byte; on a 48 KB value the
 *         window of SABHA.WATCH keeps it as a delta, rebuilt for watchers;
 *   get   GET rK, GET cK or GET eK;
 *   cas   CAS rK v<expected> v<new> (SET rK v<new> NX when the client saw
 *         the key empty; a put when the value it saw had appended bytes);
 *   incr  INCR cK: not idempotent, so a retry that applied twice shows.
 * Every put and cas writes a fresh value id, so the checker can tell writes
 * apart; a value's bytes are a function of its id, then the letters
 * appended since. The history numbers a register's value as its id times
 * SIM_VALUE_STRIDE plus the count of those letters (check/history.h), so
 * that the linearizability checker models an append as a count up; the
 * watch checker compares the values' bytes.
 *
 * A client keeps one connection to a node it picked at random (followers
 * forward to the leader), and up to `pipeline` operations in flight on it.
 * Replies come back in order. What a reply says decides what the client
 * records, and so what the checkers hold the node to:
 *   a value or OK       the operation took effect (ok);
 *   an error that says "unknown"  it may have (info): never retried, as a
 *                       retried INCR could apply twice;
 *   any other -TRYAGAIN it was not carried out: sent again after a short
 *                       backoff, until op_timeout_ms (then fail, if every
 *                       attempt was refused so);
 * A -TRYAGAIN also makes the client move to another node once nothing else
 * of its waits on the connection (the node may be cut off). A timeout (no
 * reply within 5-6 s) or a lost connection: the client closes it and
 * connects elsewhere; reads are sent again, writes recorded info.
 * Application commands are safe to repeat (their ids or what they name make
 * them so): they are sent again whatever happened. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/resp.h"
#include "sim/sim_internal.h"
#include "sim/workload.h"
#include "sm/app.h"

/* As a client library's: long enough for a write through a WAN leader, and
 * longer than the node's own timeouts (leader_wait_ms, request_timeout_ms),
 * which answer -TRYAGAIN first when the cluster is cut. */
#define ATTEMPT_TIMEOUT_US_MIN 5000000u
#define ATTEMPT_TIMEOUT_US_MAX 6000000u
#define BACKOFF_US_MIN 10000u
#define BACKOFF_US_MAX 50000u
#define THINK_US_MAX 1000u
#define QUIET_EVERY_US_MIN 1500000u
#define QUIET_EVERY_US_MAX 4000000u
#define QUIET_US_MIN 300000u
#define QUIET_US_MAX 1500000u
#define TTL_MS_MIN 20u
#define TTL_MS_MAX 600u
#define LARGE_VALUE_EVERY 100u
#define LARGE_VALUE_BYTES (48u * 1024u)
#define REQUEST_BYTES_MAX (LARGE_VALUE_BYTES + 1024u)
#define BARRIER_KEY "__barrier"

/* Timer purposes (event aux). */
enum { TIMER_NEXT_OP = 0, TIMER_ATTEMPT_TIMEOUT = 1, TIMER_RETRY = 2 };

/* ---- setup
 * -------------------------------------------------------------------- */

void clients_init(struct sim *s) {
  /* One more client than asked for: the quiesce barrier's. */
  s->clients = sim_xcalloc(s->n_clients + 1, sizeof *s->clients);
  for (uint32_t i = 0; i <= s->n_clients; i++) {
    struct client *c = &s->clients[i];
    c->index = i;
    c->node = (uint32_t)prng_below(&s->prng_client, s->n_nodes);
    prng_seed(&c->workload, sim_mix(sim_mix(s->o.seed, 0x3017c), i));
    uint32_t keys = sim_keys(s);
    c->last_seen = sim_xmalloc(keys * sizeof *c->last_seen);
    for (uint32_t k = 0; k < keys; k++)
      c->last_seen[k] = HIST_NIL;
    /* Most clients wait for each answer; some pipeline a few. */
    uint64_t roll = prng_below(&c->workload, 4);
    /* (Application clients remember one reply at a time: no pipelining.) */
    c->pipeline = i == s->n_clients || roll < 3 || s->wl != NULL
                      ? 1
                      : 2 + (uint32_t)prng_below(&c->workload, 3);
  }
}

void clients_free(struct sim *s) {
  if (s->clients == NULL)
    return;
  for (uint32_t i = 0; i <= s->n_clients; i++) {
    free(s->clients[i].last_seen);
    free(s->clients[i].in.data);
  }
  free(s->clients);
  s->clients = NULL;
}

/* Schedules the next operation or a retry; an earlier kick becomes stale. */
static void client_kick(struct sim *s, struct client *c, uint64_t at_us,
                        uint32_t purpose) {
  struct sim_event *ev = ev_new(s, EV_CLIENT_TIMER, c->index);
  ev->gen = ++c->kick_token;
  ev->aux = purpose;
  sim_at(s, at_us, ev);
}

/* Arms (due_us > 0) or disarms (0) the attempt timeout. */
static void client_set_timeout(struct sim *s, struct client *c,
                               uint64_t due_us) {
  c->timeout_due_us = due_us;
  if (due_us == 0 ||
      (c->timeout_event_us != 0 && c->timeout_event_us <= due_us))
    return; /* the pending event fires first and re-arms itself */
  struct sim_event *ev = ev_new(s, EV_CLIENT_TIMER, c->index);
  ev->gen = ++c->timeout_token;
  ev->aux = TIMER_ATTEMPT_TIMEOUT;
  c->timeout_event_us = due_us;
  sim_at(s, due_us, ev);
}

void clients_start(struct sim *s) {
  for (uint32_t i = 0; i < s->n_clients; i++)
    client_kick(s, &s->clients[i],
                s->now_us + prng_below(&s->prng_client, 10000), TIMER_NEXT_OP);
}

static uint32_t client_other_node(struct sim *s, uint32_t node) {
  if (s->n_nodes == 1)
    return 0;
  uint32_t other = (uint32_t)prng_below(&s->prng_client, s->n_nodes - 1);
  return other >= node ? other + 1 : other;
}

/* ---- values and requests
 * ------------------------------------------------------- */

static size_t value_pad_bytes(int64_t id) {
  return id % LARGE_VALUE_EVERY == LARGE_VALUE_EVERY - 1 ? LARGE_VALUE_BYTES
                                                         : 0;
}

/* The bytes a SET of history value `value` writes (no appended bytes):
 * "v<id>", then its tail of dots. Returns the length. */
static size_t value_bytes(int64_t value, uint8_t *buf, size_t cap) {
  assert(value > 0 && value % SIM_VALUE_STRIDE == 0);
  int64_t id = value / SIM_VALUE_STRIDE;
  int n = snprintf((char *)buf, cap, "v%lld", (long long)id);
  size_t pad = value_pad_bytes(id);
  assert(n > 0 && (size_t)n + pad <= cap);
  memset(buf + n, '.', pad);
  return (size_t)n + pad;
}

/* The history value of a register's bytes: "v<id>" and its dots (absent
 * when the first APPEND made the key), then appended letters; HIST_NIL
 * for garbage. */
static int64_t value_id(const uint8_t *p, size_t len) {
  if (len == 0)
    return HIST_NIL;
  int64_t id = 0;
  size_t i = 0;
  if (p[0] == 'v') {
    for (i = 1; i < len && p[i] >= '0' && p[i] <= '9' &&
                id < INT64_MAX / SIM_VALUE_STRIDE / 10;
         i++)
      id = id * 10 + (p[i] - '0');
    if (i == 1)
      return HIST_NIL;
    while (i < len && p[i] == '.')
      i++;
  }
  for (size_t k = i; k < len; k++)
    if (p[k] < 'a' || p[k] > 'u')
      return HIST_NIL;
  if (len - i >= SIM_VALUE_STRIDE)
    return HIST_NIL;
  return id * SIM_VALUE_STRIDE + (int64_t)(len - i);
}

static int64_t decimal(const uint8_t *p, size_t len, bool *ok) {
  int64_t v = 0;
  bool neg = len > 0 && p[0] == '-';
  size_t i = neg ? 1 : 0;
  *ok = len > i;
  for (; i < len; i++) {
    if (p[i] < '0' || p[i] > '9' || v > INT64_MAX / 10) {
      *ok = false;
      return 0;
    }
    v = v * 10 + (p[i] - '0');
  }
  return neg ? -v : v;
}

static bool is_counter(const struct sim *s, uint32_t key) {
  return key >= s->n_registers && key < s->n_registers + s->n_counters;
}

/* The RESP command of a kv operation, into b. */
static void kv_request(struct sim *s, uint64_t op_id, struct resp_buf *b) {
  const struct hist_op *h = &s->hist[op_id];
  const struct op_state *os = &s->ops[op_id];
  char key[16];
  int klen = sim_key_name(s, h->key, key, sizeof key);
  uint8_t *val = s->scratch, *exp = s->scratch + REQUEST_BYTES_MAX;
  switch (h->kind) {
  case HIST_GET:
    resp_write_array(b, 2);
    resp_write_bulk(b, "GET", 3);
    resp_write_bulk(b, key, (size_t)klen);
    return;
  case HIST_INCR:
    resp_write_array(b, 2);
    resp_write_bulk(b, "INCR", 4);
    resp_write_bulk(b, key, (size_t)klen);
    return;
  case HIST_APPEND:
    resp_write_array(b, 3);
    resp_write_bulk(b, "APPEND", 6);
    resp_write_bulk(b, key, (size_t)klen);
    resp_write_bulk(b, &os->append_byte, 1);
    return;
  case HIST_PUT: {
    size_t vlen = value_bytes(h->value, val, REQUEST_BYTES_MAX);
    char ttl[24];
    int tlen = snprintf(ttl, sizeof ttl, "%u", os->ttl_ms);
    resp_write_array(b, os->ttl_ms > 0 ? 5 : 3);
    resp_write_bulk(b, "SET", 3);
    resp_write_bulk(b, key, (size_t)klen);
    resp_write_bulk(b, val, vlen);
    if (os->ttl_ms > 0) {
      resp_write_bulk(b, "PX", 2);
      resp_write_bulk(b, ttl, (size_t)tlen);
    }
    return;
  }
  case HIST_CAS: {
    size_t vlen = value_bytes(h->value, val, REQUEST_BYTES_MAX);
    if (h->expected == HIST_NIL) { /* only if absent: SET NX */
      resp_write_array(b, 4);
      resp_write_bulk(b, "SET", 3);
      resp_write_bulk(b, key, (size_t)klen);
      resp_write_bulk(b, val, vlen);
      resp_write_bulk(b, "NX", 2);
      return;
    }
    size_t elen = value_bytes(h->expected, exp, REQUEST_BYTES_MAX);
    resp_write_array(b, 4);
    resp_write_bulk(b, "CAS", 3);
    resp_write_bulk(b, key, (size_t)klen);
    resp_write_bulk(b, exp, elen);
    resp_write_bulk(b, val, vlen);
    return;
  }
  default:
    assert(0 && "not a kv operation");
  }
}

/* An application command as its RESP argv (its name, then its arguments),
 * from the bytes the workload encoded. */
static void app_request(const struct sim_app_op *op, struct resp_buf *b) {
  struct app_decoded d;
  if (app_decode(op->cmd, op->cmd_len, &d) != 0) {
    resp_write_array(b, 1);
    resp_write_bulk(b, "PING", 4);
    return;
  }
  const struct app_command *row = app_command_of(d.op);
  resp_write_array(b, 1 + d.argc);
  resp_write_bulk(b, row->name, strlen(row->name));
  for (uint32_t i = 0; i < d.argc; i++)
    resp_write_bulk(b, d.argv[i].ptr, d.argv[i].len);
}

/* ---- operations
 * ------------------------------------------------------------------- */

static void client_pump(struct sim *s, struct client *c);

static void client_finish_op(struct sim *s, struct client *c) {
  assert(c->n_open > 0);
  c->n_open--;
  s->ops_done++;
  if (s->ops_done == s->o.n_ops) {
    sim_clients_done(s);
    return;
  }
  client_kick(s, c, s->now_us + prng_below(&s->prng_client, THINK_US_MAX + 1),
              TIMER_NEXT_OP);
}

static void client_record_latency(struct sim *s, uint64_t latency_us,
                                  uint32_t group) {
  struct sim_result *r = s->res;
  if (r->n_latencies == s->cap_latencies) {
    s->cap_latencies = s->cap_latencies == 0 ? 1024 : s->cap_latencies * 2;
    r->latencies_us =
        sim_xrealloc(r->latencies_us, s->cap_latencies * sizeof(uint32_t));
    r->latency_groups = sim_xrealloc(r->latency_groups, s->cap_latencies);
  }
  r->latency_groups[r->n_latencies] = (uint8_t)group;
  r->latencies_us[r->n_latencies++] =
      latency_us > UINT32_MAX ? UINT32_MAX : (uint32_t)latency_us;
}

/* The operation ended without an answer: fail when every attempt was
 * refused as not carried out, info (outcome unknown) otherwise. */
static void client_give_up(struct sim *s, struct client *c, uint64_t op_id) {
  struct hist_op *h = &s->hist[op_id];
  const struct op_state *os = &s->ops[op_id];
  if (os->attempts > 0 && os->refused == os->attempts && !os->maybe) {
    h->status = HIST_FAIL;
    h->return_us = s->now_us;
    s->res->ops_failed++;
  } else {
    h->status = HIST_INFO;
    h->return_us = 0;
    s->res->ops_indeterminate++;
    if (h->kind == HIST_INCR)
      s->incr_maybe[h->key - s->n_registers]++;
  }
  client_finish_op(s, c);
}

static void draw_ttl(struct hist_op *h, struct op_state *os, uint64_t r) {
  os->ttl_ms = TTL_MS_MIN + (uint32_t)(r % (TTL_MS_MAX - TTL_MS_MIN));
  h->flags |= HIST_TTL;
}

/* True while the kv workload is in a quiet spell: every 1.5-4 s the
 * clients only read, for 0.3-1.5 s, as a cache's traffic does at night.
 * Without writes the log's clock stands still while keys expire by the
 * leader's; reads must still see them go, and never come back. The spells
 * are a function of the seed and the time alone. */
static bool quiet_spell(struct sim *s) {
  if (!s->o.expiry)
    return false;
  while (s->now_us >= s->quiet_end_us) {
    uint64_t start =
        s->quiet_end_us +
        prng_range(&s->prng_quiet, QUIET_EVERY_US_MIN, QUIET_EVERY_US_MAX);
    s->quiet_start_us = start;
    s->quiet_end_us =
        start + prng_range(&s->prng_quiet, QUIET_US_MIN, QUIET_US_MAX);
  }
  return s->now_us >= s->quiet_start_us;
}

/* A put, get, cas or incr on a random key: of a hundred operations, 50 on
 * registers (20 puts, 17 gets, 13 cas), 25 on counters (18 incrs, 7 gets)
 * and 25 on expiring keys (6 puts, 5 cas, 14 gets: a cas meets values
 * about to expire, and tells what the log's clock says of them). */
static void client_draw_kv(struct sim *s, struct client *c, struct hist_op *h,
                           struct op_state *os) {
  uint64_t r[3];
  for (int k = 0; k < 3; k++)
    r[k] = prng_next(&c->workload);
  uint64_t roll = r[0] % 100;
  if (quiet_spell(s)) { /* a get, of any key */
    h->kind = HIST_GET;
    h->key = (uint32_t)(r[1] % sim_keys(s));
    return;
  }
  if (s->n_counters > 0 && roll >= 50 && roll < 75) {
    h->kind = roll < 68 ? HIST_INCR : HIST_GET;
    h->key = s->n_registers + (uint32_t)(r[1] % s->n_counters);
    return;
  }
  if (s->n_expiring > 0 && roll >= 75) {
    h->kind = roll < 81 ? HIST_PUT : roll < 86 ? HIST_CAS : HIST_GET;
    h->key = s->n_registers + s->n_counters + (uint32_t)(r[1] % s->n_expiring);
    if (h->kind == HIST_GET)
      return;
    h->value = s->value_next++ * SIM_VALUE_STRIDE;
    if (h->kind == HIST_CAS)
      h->expected = c->last_seen[h->key];
    else
      draw_ttl(h, os, r[2]);
    return;
  }
  roll %= 50;
  h->kind = roll < 20 ? HIST_PUT : roll < 37 ? HIST_GET : HIST_CAS;
  h->key = (uint32_t)(r[1] % s->n_registers);
  if (h->kind == HIST_GET)
    return;
  if (h->kind == HIST_PUT && r[2] % 4 == 1) {
    h->kind = HIST_APPEND;
    /* a..u: never 'v', which begins a SET's value */
    os->append_byte = (uint8_t)('a' + r[2] / 4 % 21);
    return;
  }
  h->value = s->value_next++ * SIM_VALUE_STRIDE;
  /* A cas names the whole value it expects, which the client can write
   * only without appended letters (it does not keep them): else a put. */
  int64_t seen = c->last_seen[h->key];
  if (h->kind == HIST_CAS && seen != HIST_NIL && seen % SIM_VALUE_STRIDE != 0)
    h->kind = HIST_PUT;
  if (h->kind == HIST_CAS) {
    h->expected = seen;
    return;
  }
  if (s->o.expiry && r[2] % 2 == 0) /* half the puts expire */
    draw_ttl(h, os, r[2] / 2);
}

static void client_begin(struct sim *s, struct client *c) {
  if (s->phase != PHASE_CLIENTS || s->ops_issued >= s->o.n_ops) {
    c->finished = true;
    return;
  }
  uint64_t op_id = s->ops_issued++;
  struct hist_op *h = &s->hist[op_id];
  struct op_state *os = &s->ops[op_id];
  memset(h, 0, sizeof *h);
  memset(os, 0, sizeof *os);
  h->client = c->index;
  h->status = HIST_INFO;
  h->value = HIST_NIL;
  h->expected = HIST_NIL;
  h->call_us = s->now_us;
  c->seq++;
  if (s->wl == NULL || !workload_begin(s, c, op_id, h))
    client_draw_kv(s, c, h, os);
  os->deadline_us = s->now_us + (uint64_t)s->o.op_timeout_ms * 1000u;
  c->n_open++;
  assert(c->n_queued < CLIENT_PIPELINE_MAX);
  c->queued[c->n_queued++] = op_id;
  client_pump(s, c);
  if (c->n_open < c->pipeline)
    client_kick(s, c, s->now_us + prng_below(&s->prng_client, THINK_US_MAX + 1),
                TIMER_NEXT_OP);
}

/* ---- the connection
 * ------------------------------------------------------------- */

static void client_drop_conn(struct sim *s, struct client *c) {
  if (c->conn != 0) {
    struct conn *cn = conn_get(s, c->conn - 1, c->conn_gen);
    if (cn != NULL)
      conn_close_end(s, c->conn - 1, false);
  }
  c->conn = 0;
  c->conn_up = false;
  c->in.len = 0;
}

/* The ops sent on a connection that is gone: reads and application
 * commands go again; a kv write may have been carried out: info. */
static void client_conn_lost(struct sim *s, struct client *c) {
  client_drop_conn(s, c);
  client_set_timeout(s, c, 0);
  c->node = client_other_node(s, c->node);
  uint32_t n = c->n_sent;
  c->n_sent = 0;
  for (uint32_t k = 0; k < n; k++) {
    uint64_t op_id = c->sent[k].op_id;
    const struct hist_op *h = &s->hist[op_id];
    if (c->index == s->n_clients) { /* the barrier is sent again */
      continue;
    }
    if (h->kind == HIST_GET || h->kind == SIM_HIST_APP) {
      s->ops[op_id].maybe |= h->kind == SIM_HIST_APP;
      c->queued[c->n_queued++] = op_id;
      continue;
    }
    s->ops[op_id].maybe = true;
    client_give_up(s, c, op_id);
  }
  if (c->n_queued > 0)
    client_kick(s, c,
                s->now_us +
                    prng_range(&s->prng_client, BACKOFF_US_MIN, BACKOFF_US_MAX),
                TIMER_RETRY);
}

static void client_send(struct sim *s, struct client *c, uint64_t op_id) {
  struct resp_buf *b = &s->request;
  resp_buf_reset(b);
  if (s->hist[op_id].kind == SIM_HIST_APP)
    app_request(workload_op(s, op_id), b);
  else
    kv_request(s, op_id, b);
  s->ops[op_id].attempts++;
  c->sent[c->n_sent++] = (struct client_op){.op_id = op_id};
  conn_send(s, c->conn - 1, true, b->data, b->len);
}

/* Sends what is queued, connecting first if need be. */
static void client_pump(struct sim *s, struct client *c) {
  while (c->n_queued > 0) {
    uint64_t op_id = c->queued[0];
    if (s->now_us < s->ops[op_id].deadline_us &&
        s->ops[op_id].attempts < CLIENT_ATTEMPTS_MAX)
      break;
    memmove(c->queued, c->queued + 1, --c->n_queued * sizeof *c->queued);
    client_give_up(s, c, op_id);
  }
  if (c->n_queued == 0)
    return;
  if (c->conn == 0) {
    uint32_t id = conn_open_client(s, c->index, c->node);
    if (id == UINT32_MAX) { /* refused at once: the node is down */
      c->node = client_other_node(s, c->node);
      client_kick(s, c,
                  s->now_us + prng_range(&s->prng_client, BACKOFF_US_MIN,
                                         BACKOFF_US_MAX),
                  TIMER_RETRY);
      return;
    }
    c->conn = id + 1;
    c->conn_gen = s->conns[id].gen;
    c->conn_up = false;
    client_set_timeout(s, c,
                       s->now_us + prng_range(&s->prng_client,
                                              ATTEMPT_TIMEOUT_US_MIN,
                                              ATTEMPT_TIMEOUT_US_MAX));
    return;
  }
  if (!c->conn_up)
    return;
  bool was_idle = c->n_sent == 0;
  while (c->n_queued > 0 && c->n_sent < c->pipeline) {
    uint64_t op_id = c->queued[0];
    memmove(c->queued, c->queued + 1, --c->n_queued * sizeof *c->queued);
    client_send(s, c, op_id);
  }
  if (was_idle && c->n_sent > 0)
    client_set_timeout(s, c,
                       s->now_us + prng_range(&s->prng_client,
                                              ATTEMPT_TIMEOUT_US_MIN,
                                              ATTEMPT_TIMEOUT_US_MAX));
}

/* ---- replies
 * ----------------------------------------------------------------------- */

/* What a reply is, as the client reads it. */
struct reply {
  char type;           /* '+', '-', ':', '$', '*' */
  bool null;           /* $-1 or *-1 */
  int64_t integer;     /* ':' */
  const uint8_t *data; /* '+', '-', '$': the text or the bulk */
  size_t len;
  const uint8_t *first; /* '*': the first element's bulk, if any */
  size_t first_len;
};

static void reply_parse(const uint8_t *p, size_t len, struct reply *r) {
  memset(r, 0, sizeof *r);
  r->type = (char)p[0];
  const uint8_t *eol = memchr(p, '\r', len);
  size_t line = eol != NULL ? (size_t)(eol - p) : len;
  bool ok;
  switch (r->type) {
  case '+':
  case '-':
    r->data = p + 1;
    r->len = line - 1;
    return;
  case ':':
    r->integer = decimal(p + 1, line - 1, &ok);
    return;
  case '$': {
    int64_t n = decimal(p + 1, line - 1, &ok);
    r->null = n < 0;
    if (!r->null) {
      r->data = p + line + 2;
      r->len = (size_t)n;
    }
    return;
  }
  case '*': {
    int64_t n = decimal(p + 1, line - 1, &ok);
    r->null = n < 0;
    if (n > 0 && p[line + 2] == '$') {
      struct reply first;
      reply_parse(p + line + 2, len - line - 2, &first);
      r->first = first.data;
      r->first_len = first.len;
    }
    return;
  }
  default:
    return;
  }
}

static bool text_has(const uint8_t *p, size_t len, const char *word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= len; i++)
    if (memcmp(p + i, word, w) == 0)
      return true;
  return false;
}

/* The application's code for an error reply, by the words the machine uses
 * (sm/app*.c); what the checkers need is DONE or not. */
static uint16_t app_code_of(const struct reply *r) {
  static const struct {
    const char *words;
    uint16_t code;
  } table[] = {
      {"insufficient funds", APP_E_FUNDS},
      {"to itself", APP_E_SAME_ACCOUNT},
      {"not available", APP_E_NOT_AVAILABLE},
      {"is held by", APP_E_HELD},
      {"not the holder", APP_E_NOT_HOLDER},
      {"stale token", APP_E_STALE_TOKEN},
      {"invalid transition", APP_E_TRANSITION},
      {"different command", APP_E_ID_REUSED},
      {"no such", APP_E_NO_SUCH},
      {"exists", APP_E_EXISTS},
      {"beyond int64", APP_E_OVERFLOW},
      {"too many", APP_E_FULL},
  };
  for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
    if (text_has(r->data, r->len, table[k].words))
      return table[k].code;
  return APP_E_SYNTAX;
}

/* A PNR ("PNR0000000042") or a token as a number. */
static int64_t app_integer_of(const struct reply *r) {
  const uint8_t *p = r->type == '*' ? r->first : r->data;
  size_t len = r->type == '*' ? r->first_len : r->len;
  if (r->type == ':')
    return r->integer;
  if (p == NULL || len < 4 || memcmp(p, "PNR", 3) != 0)
    return 0;
  bool ok;
  int64_t v = decimal(p + 3, len - 3, &ok);
  return ok ? v : 0;
}

static void client_succeed(struct sim *s, struct client *c, uint64_t op_id,
                           const struct reply *r) {
  struct hist_op *h = &s->hist[op_id];
  h->status = HIST_OK;
  h->return_us = s->now_us;
  switch (h->kind) {
  case SIM_HIST_APP: {
    uint8_t kind = r->type == '+'   ? APP_REPLY_OK
                   : r->type == ':' ? APP_REPLY_INT
                   : r->type == '*' ? APP_REPLY_ARRAY
                   : r->null        ? APP_REPLY_NULL
                   : r->type == '-' ? APP_REPLY_ERROR
                                    : APP_REPLY_BULK;
    uint16_t code = r->type == '-' ? app_code_of(r) : APP_DONE;
    workload_on_reply(s, c, op_id, kind, code, app_integer_of(r));
    break;
  }
  case HIST_GET:
    if (is_counter(s, h->key)) {
      bool ok = true;
      h->value = r->null ? HIST_NIL : decimal(r->data, r->len, &ok);
    } else {
      h->value = r->null ? HIST_NIL : value_id(r->data, r->len);
    }
    c->last_seen[h->key] = h->value;
    break;
  case HIST_PUT:
    c->last_seen[h->key] = h->value;
    break;
  case HIST_INCR:
    h->value = r->integer;
    s->incr_acked[h->key - s->n_registers]++;
    break;
  case HIST_CAS:
    h->output = h->expected == HIST_NIL ? (r->type == '+') : r->integer == 1;
    if (h->output)
      c->last_seen[h->key] = h->value;
    break;
  default:
    break;
  }
  s->res->ops_ok++;
  uint32_t g = h->kind == SIM_HIST_APP ? 0 : s->key_group[h->key];
  s->res->groups[g].ops_ok++;
  client_record_latency(s, h->return_us - h->call_us, g);
  client_finish_op(s, c);
}

/* One reply, for the oldest operation sent on the connection. */
static void client_on_reply(struct sim *s, struct client *c, const uint8_t *p,
                            size_t len) {
  if (c->n_sent == 0)
    return;
  uint64_t op_id = c->sent[0].op_id;
  memmove(c->sent, c->sent + 1, --c->n_sent * sizeof *c->sent);
  if (c->index == s->n_clients)
    return; /* the barrier: the run watches the log for it */
  struct reply r;
  reply_parse(p, len, &r);
  const struct hist_op *h = &s->hist[op_id];
  struct op_state *os = &s->ops[op_id];
  bool error = r.type == '-';
  bool app = h->kind == SIM_HIST_APP;
  if (!error || (app && !text_has(r.data, r.len, "TRYAGAIN") &&
                 !text_has(r.data, r.len, "unknown"))) {
    client_succeed(s, c, op_id, &r);
    return;
  }
  if (text_has(r.data, r.len, "unknown")) {
    os->maybe = true;
    if (app || h->kind == HIST_GET) { /* safe to send again */
      c->queued[c->n_queued++] = op_id;
    } else {
      client_give_up(s, c, op_id);
      return;
    }
  } else if (r.len >= 8 && memcmp(r.data, "TRYAGAIN", 8) == 0) {
    os->refused++; /* not carried out: may go again, elsewhere */
    c->queued[c->n_queued++] = op_id;
    c->move = true;
  } else {
    /* An error the workload never causes (not an integer, a full store):
     * the command was carried out with an error reply; for the history,
     * its effect is unknown. */
    os->maybe = true;
    client_give_up(s, c, op_id);
    return;
  }
  client_kick(s, c,
              s->now_us +
                  prng_range(&s->prng_client, BACKOFF_US_MIN, BACKOFF_US_MAX),
              TIMER_RETRY);
}

bool sim_feed_replies(struct sim_inbuf *b, const struct chunk *ch,
                      sim_reply_fn fn, struct sim *s, void *ctx) {
  if (b->cap - b->len < ch->len) {
    b->cap = (b->len + ch->len) * 2;
    b->data = sim_xrealloc(b->data, b->cap);
  }
  memcpy(b->data + b->len, ch->data, ch->len);
  b->len += ch->len;
  size_t off = 0;
  for (;;) {
    size_t used = 0;
    int rc = resp_reply_scan(b->data + off, b->len - off, &used);
    if (rc < 0)
      return false;
    if (rc == 0)
      break;
    bool more = fn(s, ctx, b->data + off, used);
    off += used;
    if (!more) {
      b->len = 0; /* the connection went with the rest */
      return true;
    }
  }
  memmove(b->data, b->data + off, b->len - off);
  b->len -= off;
  return true;
}

static bool client_reply_fn(struct sim *s, void *ctx, const uint8_t *p,
                            size_t n) {
  client_on_reply(s, ctx, p, n);
  return true;
}

static void client_on_data(struct sim *s, struct client *c,
                           const struct chunk *ch) {
  if (!sim_feed_replies(&c->in, ch, client_reply_fn, s, c)) {
    sim_fail(s, FAIL_SAFETY, "client %u: a node sent bytes that are not RESP",
             c->index);
    return;
  }
  if (c->move && c->n_sent == 0) { /* to another node, for what failed */
    c->move = false;
    client_drop_conn(s, c);
    c->node = client_other_node(s, c->node);
  }
  if (c->n_sent == 0)
    client_set_timeout(s, c, 0);
  else
    client_set_timeout(s, c,
                       s->now_us + prng_range(&s->prng_client,
                                              ATTEMPT_TIMEOUT_US_MIN,
                                              ATTEMPT_TIMEOUT_US_MAX));
  client_pump(s, c);
}

/* ---- events
 * -------------------------------------------------------------------------- */

/* Kicks are all alike: send what waits, then start an operation if the
 * pipeline has room. Only the newest kick acts, so a later one (a retry's
 * backoff) may delay an earlier one's work, never lose it. */
static void client_on_kick(struct sim *s, struct client *c, uint32_t purpose) {
  (void)purpose;
  if (c->index == s->n_clients)
    return;
  client_pump(s, c);
  if (c->n_open < c->pipeline && !c->finished)
    client_begin(s, c);
}

/* The timeout's event: stale, early (re-armed later), or due. */
static void client_on_timeout(struct sim *s, struct client *c,
                              struct sim_event *ev) {
  if (ev->gen != c->timeout_token) {
    ev_free(s, ev);
    return;
  }
  c->timeout_event_us = 0;
  if (c->timeout_due_us > s->now_us) {
    ev->gen = ++c->timeout_token;
    c->timeout_event_us = c->timeout_due_us;
    sim_at(s, c->timeout_due_us, ev);
    return;
  }
  ev_free(s, ev);
  if (c->timeout_due_us == 0)
    return;
  c->timeout_due_us = 0;
  client_conn_lost(s, c);
}

static void client_on_conn(struct sim *s, struct client *c,
                           struct sim_event *ev) {
  const struct conn_ev *ce = &ev->u.c;
  bool current = c->conn == ce->conn + 1 && c->conn_gen == ce->conn_gen;
  if (!current)
    return;
  switch (ev->kind) {
  case EV_CONN_UP:
    c->conn_up = true;
    client_pump(s, c);
    return;
  case EV_CONN_DATA:
    client_on_data(s, c, ce->chunk);
    return;
  case EV_CONN_DOWN: {
    struct conn *cn = conn_get(s, ce->conn, ce->conn_gen);
    if (cn != NULL) {
      cn->opener_open = false;
      conn_maybe_free(s, ce->conn);
    }
    c->conn = 0;
    client_conn_lost(s, c);
    return;
  }
  default:
    return;
  }
}

void client_on_event(struct sim *s, struct sim_event *ev) {
  if (ev->target > s->n_clients) { /* the watcher, the coordinator */
    if (ev->target == s->n_clients + 1)
      watcher_on_event(s, ev);
    else
      coord_on_event(s, ev);
    if (ev->kind == EV_CONN_DATA)
      chunk_free(ev->u.c.chunk);
    ev_free(s, ev);
    return;
  }
  assert(ev->target <= s->n_clients);
  struct client *c = &s->clients[ev->target];
  if (ev->kind == EV_CLIENT_TIMER && ev->aux == TIMER_ATTEMPT_TIMEOUT) {
    client_on_timeout(s, c, ev);
    return;
  }
  if (ev->kind == EV_CLIENT_TIMER) {
    if (ev->gen == c->kick_token)
      client_on_kick(s, c, ev->aux);
  } else {
    client_on_conn(s, c, ev);
    if (ev->kind == EV_CONN_DATA)
      chunk_free(ev->u.c.chunk);
  }
  ev_free(s, ev);
}

/* ---- the operator's client
 * --------------------------------------------------------- */

/* One more client than the workload's: an operator's, which sends the
 * quiesce barrier and the nemesis's admin commands. Its replies are not
 * read: the run watches the log and the engines' status instead. */
static void client_send_operator(struct sim *s, uint32_t node, uint32_t argc,
                                 const struct resp_arg *argv) {
  struct client *c = &s->clients[s->n_clients];
  if (c->conn != 0 && c->node != node)
    client_drop_conn(s, c);
  c->node = node;
  c->n_sent = 0;
  if (c->conn == 0) {
    uint32_t id = conn_open_client(s, c->index, node);
    if (id == UINT32_MAX)
      return;
    c->conn = id + 1;
    c->conn_gen = s->conns[id].gen;
    c->conn_up = false;
  }
  resp_buf_reset(&s->request);
  resp_write_array(&s->request, argc);
  for (uint32_t k = 0; k < argc; k++)
    resp_write_bulk(&s->request, argv[k].ptr, argv[k].len);
  /* Held until the connection is up: the bytes wait in the queue of the
   * connection as a real client's would in its socket. */
  conn_send(s, c->conn - 1, true, s->request.data, s->request.len);
}

void sim_barrier_keys(struct sim *s) {
  /* Group g's barrier key carries a hash tag whose group is g (found by
   * trying tags in turn): one key of the same name for one group. */
  snprintf(s->barrier_key[0], sizeof s->barrier_key[0], "%s", BARRIER_KEY);
  if (s->n_groups == 1)
    return;
  bool found[SIM_GROUPS_MAX] = {false};
  uint32_t left = s->n_groups;
  for (uint32_t tag = 0; left > 0; tag++) {
    char t[16];
    int len = snprintf(t, sizeof t, "%u", tag);
    uint32_t g = rt_key_group((const uint8_t *)t, (size_t)len, s->n_groups);
    if (found[g])
      continue;
    found[g] = true;
    left--;
    snprintf(s->barrier_key[g], sizeof s->barrier_key[g], "%s{%s}", BARRIER_KEY,
             t);
  }
}

void client_send_barrier(struct sim *s, uint32_t node, uint32_t g) {
  char value[32];
  int vlen = snprintf(value, sizeof value, "%u", ++s->barrier_sent);
  struct resp_arg argv[3] = {
      {(const uint8_t *)"SET", 3},
      {(const uint8_t *)s->barrier_key[g], strlen(s->barrier_key[g])},
      {(const uint8_t *)value, (size_t)vlen}};
  client_send_operator(s, node, 3, argv);
}

void client_send_member(struct sim *s, uint32_t node, const char *verb,
                        uint32_t id) {
  char idtext[16];
  int len = snprintf(idtext, sizeof idtext, "%u", id);
  /* Simulated nodes are reached by id: the address is only carried, but
   * it must be one sabhad could use, as SABHA.MEMBER checks. */
  static const char addr[] = "peer=127.0.0.1:1,client=127.0.0.1:1";
  struct resp_arg argv[4] = {{(const uint8_t *)"SABHA.MEMBER", 12},
                             {(const uint8_t *)verb, strlen(verb)},
                             {(const uint8_t *)idtext, (size_t)len},
                             {(const uint8_t *)addr, sizeof addr - 1}};
  client_send_operator(s, node, strcmp(verb, "ADD") == 0 ? 4 : 3, argv);
}

void client_send_leader(struct sim *s, uint32_t node, uint32_t to) {
  char id[16];
  int len = snprintf(id, sizeof id, "%u", to + 1);
  struct resp_arg argv[2] = {{(const uint8_t *)"SABHA.LEADER", 12},
                             {(const uint8_t *)id, (size_t)len}};
  client_send_operator(s, node, 2, argv);
}
