/* The simulator's coordination client: transactions and leases under
 * faults, judged by invariants.
 *
 * One more client (index n_clients + 2) that, through random nodes, in
 * turn:
 *   - moves an amount between two counters in one transaction
 *     (MULTI, INCRBY t:a -k, INCRBY t:b +k, EXEC): EXEC's array holds both
 *     new values, and since the transaction applies whole and alone, they
 *     always sum to 0, whatever node answered and whatever failed before;
 *   - grants a short lease (SABHA.LEASE.GRANT 150..400 ms), attaches a key
 *     to it (SET t:lN v LEASE id) and sometimes keeps it alive once.
 * A reply that breaks the invariant fails the run at once. At the end,
 * every node that caught up must hold the same coordination keys as the
 * reference store watcher.c builds from the log (so the transactions
 * applied whole on every replica), t:a + t:b must be 0 there, and no key
 * may be visible while its lease is past its expiry.
 *
 * A lost connection or an unanswered request (2 s) moves the client to
 * another node; what it had sent may or may not have applied, which the
 * invariants do not mind. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/resp.h"
#include "sim/sim_internal.h"
#include "sm/kvstore.h"

#define COORD_THINK_US_MIN 20000u
#define COORD_THINK_US_MAX 120000u
#define COORD_REPLY_TIMEOUT_US 2000000u

enum coord_step { STEP_TXN = 0, STEP_GRANT, STEP_ATTACH, STEP_KEEPALIVE };

struct sim_coord {
  struct prng prng;
  uint32_t node;
  uint32_t conn, conn_gen; /* id + 1; 0: none */
  bool up;
  uint32_t token;
  enum coord_step step;
  uint32_t replies_due; /* for the request in flight; 0: none */
  int64_t lease;
  uint32_t n_lease_keys;
  struct sim_inbuf in;
  uint64_t txns_checked;
};

static uint32_t coord_index(const struct sim *s) {
  return s->n_clients + 2;
}

void coord_init(struct sim *s) {
  struct sim_coord *c = sim_xcalloc(1, sizeof *c);
  prng_seed(&c->prng, sim_mix(s->o.seed, 0x636f6f7264ull));
  c->node = (uint32_t)prng_below(&c->prng, s->n_nodes);
  s->coord = c;
}

void coord_free(struct sim *s) {
  if (s->coord == NULL)
    return;
  free(s->coord->in.data);
  free(s->coord);
  s->coord = NULL;
}

/* The next action after `delay_us`: a step, or giving up on a reply. */
static void coord_kick(struct sim *s, uint64_t delay_us) {
  struct sim_coord *c = s->coord;
  struct sim_event *ev = ev_new(s, EV_CLIENT_TIMER, coord_index(s));
  ev->gen = ++c->token;
  sim_at(s, s->now_us + delay_us, ev);
}

void coord_start(struct sim *s) {
  coord_kick(s, 5000);
}

static void coord_drop(struct sim *s) {
  struct sim_coord *c = s->coord;
  if (c->conn != 0 && conn_get(s, c->conn - 1, c->conn_gen) != NULL)
    conn_close_end(s, c->conn - 1, false);
  c->conn = 0;
  c->up = false;
  c->in.len = 0;
  c->replies_due = 0;
  if (s->n_nodes > 1)
    c->node = (c->node + 1 + (uint32_t)prng_below(&c->prng, s->n_nodes - 1)) %
              s->n_nodes;
}

static void cmd(struct resp_buf *b, int argc, const char *const *argv) {
  resp_write_array(b, (size_t)argc);
  for (int i = 0; i < argc; i++)
    resp_write_bulk(b, argv[i], strlen(argv[i]));
}

/* Sends the current step's commands. */
static void coord_send(struct sim *s) {
  struct sim_coord *c = s->coord;
  struct resp_buf *b = &s->request;
  resp_buf_reset(b);
  char num[32], key[32];
  switch (c->step) {
  case STEP_TXN: {
    snprintf(num, sizeof num, "%" PRIu64, 1 + prng_below(&c->prng, 9));
    char neg[34];
    snprintf(neg, sizeof neg, "-%s", num);
    cmd(b, 1, (const char *const[]){"MULTI"});
    cmd(b, 3, (const char *const[]){"INCRBY", "t:a", neg});
    cmd(b, 3, (const char *const[]){"INCRBY", "t:b", num});
    cmd(b, 1, (const char *const[]){"EXEC"});
    c->replies_due = 4;
    break;
  }
  case STEP_GRANT:
    snprintf(num, sizeof num, "%" PRIu64, prng_range(&c->prng, 150, 400));
    cmd(b, 2, (const char *const[]){"SABHA.LEASE.GRANT", num});
    c->replies_due = 1;
    break;
  case STEP_ATTACH:
    snprintf(num, sizeof num, "%" PRId64, c->lease);
    snprintf(key, sizeof key, "t:l%u", c->n_lease_keys++ % 8);
    cmd(b, 5, (const char *const[]){"SET", key, "held", "LEASE", num});
    c->replies_due = 1;
    break;
  case STEP_KEEPALIVE:
    snprintf(num, sizeof num, "%" PRId64, c->lease);
    cmd(b, 2, (const char *const[]){"SABHA.LEASE.KEEPALIVE", num});
    c->replies_due = 1;
    break;
  }
  conn_send(s, c->conn - 1, true, b->data, b->len);
  coord_kick(s, COORD_REPLY_TIMEOUT_US);
}

static void coord_act(struct sim *s) {
  struct sim_coord *c = s->coord;
  if (s->phase != PHASE_CLIENTS)
    return;
  if (c->replies_due > 0) { /* no answer in time: elsewhere */
    coord_drop(s);
    coord_kick(s, COORD_THINK_US_MIN);
    return;
  }
  if (c->conn == 0) {
    uint32_t id = conn_open_client(s, coord_index(s), c->node);
    if (id == UINT32_MAX) {
      coord_drop(s);
      coord_kick(s, COORD_THINK_US_MAX);
      return;
    }
    c->conn = id + 1;
    c->conn_gen = s->conns[id].gen;
  }
  coord_send(s);
}

static int64_t parse_int(const uint8_t *p, size_t n, bool *ok) {
  int64_t v = 0;
  bool neg = n > 0 && p[0] == '-';
  *ok = n > (neg ? 1u : 0u) && n <= 19;
  for (size_t i = neg ? 1 : 0; i < n && i < 19; i++) {
    if (p[i] < '0' || p[i] > '9')
      *ok = false;
    else
      v = v * 10 + (p[i] - '0');
  }
  return neg ? -v : v;
}

/* EXEC's reply: *2 :a :b, whose sum must be 0. */
static void check_exec(struct sim *s, const uint8_t *p, size_t len) {
  if (p[0] != '*')
    return; /* an error: not carried out, or its outcome unknown */
  const uint8_t *end = p + len, *q = p;
  int64_t vals[3];
  for (int i = 0; i < 3; i++) {
    const uint8_t *cr = memchr(q, '\r', (size_t)(end - q));
    bool ok = false;
    if (cr != NULL)
      vals[i] = parse_int(q + 1, (size_t)(cr - q - 1), &ok);
    if (!ok || (i > 0 && q[0] != ':')) {
      sim_fail(s, FAIL_INVARIANT,
               "transaction: EXEC's reply is not two integers: %.*s",
               (int)(len > 60 ? 60 : len), (const char *)p);
      return;
    }
    q = cr + 2;
    if (i == 0 && vals[0] != 2) {
      sim_fail(s, FAIL_INVARIANT,
               "transaction: EXEC answered %" PRId64 " replies for 2 commands",
               vals[0]);
      return;
    }
  }
  s->coord->txns_checked++;
  if (vals[1] + vals[2] != 0)
    sim_fail(s, FAIL_INVARIANT,
             "transaction: t:a %" PRId64 " and t:b %" PRId64
             " after a transfer do not sum to 0: it applied in part",
             vals[1], vals[2]);
}

static bool on_reply(struct sim *s, void *ctx, const uint8_t *p, size_t len) {
  struct sim_coord *c = ctx;
  if (c->replies_due == 0)
    return true;
  c->replies_due--;
  if (c->replies_due > 0)
    return true; /* MULTI's +OK and the +QUEUED */
  bool ok;
  switch (c->step) {
  case STEP_TXN:
    check_exec(s, p, len);
    c->step = STEP_GRANT;
    break;
  case STEP_GRANT:
    c->lease = p[0] == ':' ? parse_int(p + 1, len - 3, &ok) : 0;
    c->step = c->lease > 0 ? STEP_ATTACH : STEP_TXN;
    break;
  case STEP_ATTACH:
    c->step = prng_below(&c->prng, 2) == 0 ? STEP_KEEPALIVE : STEP_TXN;
    break;
  case STEP_KEEPALIVE:
    c->step = STEP_TXN;
    break;
  }
  coord_kick(s, prng_range(&c->prng, COORD_THINK_US_MIN, COORD_THINK_US_MAX));
  return true;
}

void coord_on_event(struct sim *s, struct sim_event *ev) {
  struct sim_coord *c = s->coord;
  if (ev->kind == EV_CLIENT_TIMER) {
    if (ev->gen == c->token)
      coord_act(s);
    return;
  }
  const struct conn_ev *ce = &ev->u.c;
  if (c->conn != ce->conn + 1 || c->conn_gen != ce->conn_gen)
    return;
  if (ev->kind == EV_CONN_DOWN) {
    struct conn *cn = conn_get(s, ce->conn, ce->conn_gen);
    if (cn != NULL) {
      cn->opener_open = false;
      conn_maybe_free(s, ce->conn);
    }
    c->conn = 0;
    coord_drop(s);
    coord_kick(s, COORD_THINK_US_MAX);
    return;
  }
  if (ev->kind != EV_CONN_DATA)
    return;
  if (!sim_feed_replies(&c->in, ce->chunk, on_reply, s, c))
    sim_fail(s, FAIL_SAFETY,
             "coordinator: a node sent bytes that are not "
             "RESP");
}

/* ---- the end checks ------------------------------------------------------ */

static int64_t int_of(const struct kvstore *kv, const char *key) {
  const uint8_t *v;
  size_t n;
  bool ok;
  if (!kvstore_get(kv, (const uint8_t *)key, strlen(key), 0, &v, &n))
    return 0;
  return parse_int(v, n, &ok);
}

struct lease_check {
  struct sim *s;
  const struct kvstore *kv;
  uint32_t node;
};

static bool no_key_outlives_its_lease(void *ctx,
                                      const struct kvstore_item *it) {
  struct lease_check *lc = ctx;
  if (it->lease != 0 && kvstore_lease_pttl(lc->kv, it->lease, 0) < 0) {
    sim_fail(
        lc->s, FAIL_INVARIANT,
        "lease: node %u holds key %.*s of lease %" PRIu64 ", which has expired",
        lc->node + 1, (int)it->key.len, (const char *)it->key.ptr, it->lease);
    return false;
  }
  return true;
}

void coord_final(struct sim *s, const struct kvstore *reference) {
  if (s->coord == NULL)
    return;
  s->res->txns_checked += s->coord->txns_checked;
  if (int_of(reference, "t:a") + int_of(reference, "t:b") != 0)
    sim_fail(s, FAIL_INVARIANT, "transaction: the log's t:a + t:b is not 0");
  for (uint32_t i = 0; i < s->n_nodes && !s->stop; i++) {
    const struct node *n = &s->nodes[i];
    if (n->rt == NULL || rt_applied_index(n->rt) < s->ck[0].applied_max)
      continue;
    const struct kvstore *kv = rt_kvstore(n->rt);
    const char *keys[] = {"t:a",  "t:b",  "t:l0", "t:l1", "t:l2",
                          "t:l3", "t:l4", "t:l5", "t:l6", "t:l7"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      const uint8_t *a, *b;
      size_t an, bn;
      const uint8_t *key = (const uint8_t *)keys[k];
      bool ha = kvstore_get(kv, key, strlen(keys[k]), 0, &a, &an);
      bool hb = kvstore_get(reference, key, strlen(keys[k]), 0, &b, &bn);
      if (ha != hb || (ha && (an != bn || memcmp(a, b, an) != 0))) {
        sim_fail(s, FAIL_INVARIANT,
                 "coordination keys: node %u's %s differs from the log's",
                 i + 1, keys[k]);
        return;
      }
    }
    struct lease_check lc = {s, kv, i};
    struct kvstore_slice from = {NULL, 0}, next;
    kvstore_range(kv, from, 0, SIZE_MAX, no_key_outlives_its_lease, &lc, &next);
  }
}
