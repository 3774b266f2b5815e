/* Application workloads: closed-loop clients driving the ledger, seats,
 * locks and orders machine (sm/app.h) through the log, and the glue that
 * lets the invariant checkers (app_checks.h) watch it.
 *
 * Clients. Each client first does its share of the setup (accounts opened,
 * seats added: client c takes items c, c + C, ...), then draws operations
 * from its own workload prng, a fixed number of draws per operation, so
 * every engine sees the same sequence of kinds and targets per client
 * (arguments that depend on replies, such as which PNR to cancel, follow
 * what the client was told). Ids the machine deduplicates (txids, request
 * ids) are the client and its sequence number. A command is built once
 * (app_encode, unstamped) and sent again, the same bytes, on every retry:
 * a retry after a leader change is what the dedup tables are for.
 *
 *   ledger  12 accounts of 1000, then transfers of 1..600 between random
 *           pairs (some to the same account): money runs out, so some are
 *           refused for funds;
 *   seats   2 trains x 1 date x 8 seats and every client racing for them:
 *           BOOK a seat (45%), ANY seat (30%), CANCEL a PNR it got (25%);
 *   locks   3 locks, one owner per client: ACQUIRE with ttls of 20-300 ms
 *           (35%), RENEW (15%), RELEASE (12%), FENCED.SET with the last
 *           token (or, one time in four, the one before: refusals);
 *   orders  up to 4 open orders per client: CREATE, ADVANCE to the next
 *           state, now and then a skipping (invalid) ADVANCE, CANCEL;
 *   mixed   40% kv operations, 15% each application.
 *
 * Nodes. The clients send each command as RESP (client.c); the node's
 * runtime stamps it with the node's wall clock (which the clock fault
 * skews) and a tag, proposes it and applies it, as sabhad does; the client
 * reads the reply back into a summary (kind, code, integer). The machine's
 * dedup tables remember more ids than the run has operations (sim.c sets
 * the runtime's dedup_max so), so the end checks may rely on them.
 *
 * Checkers. The first time any node applies a log position, the command
 * and that node's reply go to the model (state machine safety makes it the
 * stream of every node); every node's ledger is audited after each ledger
 * command it applies (the runtime's observer, workload_observe); at the end
 * every node's state and every client's view are compared with the model, and
 * the nodes' whole machines (dedup tables, leases and clock too) with each
 * other. A broken invariant fails the run (FAIL_INVARIANT) with the checker's
 * sentence. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/app_checks.h"
#include "sim/workload.h"
#include "sm/app.h"

#define WL_ACCOUNTS 12u
#define WL_ACCOUNT_OPEN_PAISE 1000
#define WL_TRANSFER_PAISE_MAX 600u
#define WL_TRAINS 2u
#define WL_SEATS 8u
#define WL_PNRS_MAX 8u
#define WL_LOCKS 3u
#define WL_TTL_MS_MIN 20u
#define WL_TTL_MS_MAX 300u
#define WL_ORDERS_OPEN_MAX 4u
#define WL_SNAPSHOT_CHUNK_BYTES 8192u
#define WL_DRAWS                                                               \
  4u /* prng draws per operation, whatever it turns out to be                  \
      */

struct wl_order {
  uint32_t number;
  uint8_t state; /* what the client believes */
};

/* What a client remembers between operations. */
struct wl_client {
  uint32_t setup_done;
  uint64_t pnrs[WL_PNRS_MAX];
  uint32_t n_pnrs;
  uint64_t token[WL_LOCKS];
  uint64_t token_before[WL_LOCKS];
  struct wl_order orders[WL_ORDERS_OPEN_MAX];
  uint32_t n_orders;
  uint32_t orders_next;
  /* The op in flight: what its reply updates. */
  uint32_t slot;
  uint8_t target_state;
};

struct workload {
  enum sim_workload kind;
  struct sim_app_op *ops; /* [n_ops], by op id */
  uint64_t *op_seq;       /* [n_ops]: the client sequence number of the op */
  struct wl_client *clients;
  struct appck *ck;
  uint64_t seen_index; /* the next log position the checkers have not seen */
  uint32_t seen_pos;
};

static void invariant_fail(struct sim *s, const char *why) {
  sim_fail(s, FAIL_INVARIANT, "invariant %s", why);
}

/* ---- names --------------------------------------------------------------- */

static const char *const workload_names[SIM_WORKLOAD_COUNT] = {
    "kv", "ledger", "seats", "locks", "orders", "mixed"};

const char *sim_workload_name(enum sim_workload w) {
  return (uint32_t)w < SIM_WORKLOAD_COUNT ? workload_names[w] : "?";
}

int sim_workload_parse(const char *name, enum sim_workload *out, char *err,
                       size_t err_size) {
  for (uint32_t w = 0; name != NULL && w < SIM_WORKLOAD_COUNT; w++)
    if (strcmp(name, workload_names[w]) == 0) {
      *out = (enum sim_workload)w;
      return 0;
    }
  snprintf(err, err_size,
           "unknown workload '%s' (known: kv, ledger, seats, locks, orders, "
           "mixed)",
           name != NULL ? name : "");
  return SABHA_EINVAL;
}

/* ---- setup and teardown -------------------------------------------------- */

void workload_setup(struct sim *s) {
  if (s->o.workload == SIM_WORKLOAD_KV)
    return;
  struct workload *wl = sim_xcalloc(1, sizeof *wl);
  wl->kind = s->o.workload;
  wl->ops = sim_xcalloc((size_t)s->o.n_ops, sizeof *wl->ops);
  wl->op_seq = sim_xcalloc((size_t)s->o.n_ops, sizeof *wl->op_seq);
  wl->clients = sim_xcalloc(s->o.n_clients, sizeof *wl->clients);
  if (appck_new(&wl->ck) != 0) {
    fprintf(stderr, "sabha sim: out of memory\n");
    abort();
  }
  s->wl = wl;
  /* The app machine's snapshot (dedup tables included) is far larger than
   * the KV machine's that sim_setup() sizes chunks by: bigger chunks keep
   * an InstallSnapshot to a few messages. */
  if (s->o.snapshot_chunk_bytes == 0)
    s->o.snapshot_chunk_bytes = WL_SNAPSHOT_CHUNK_BYTES;
}

void workload_teardown(struct sim *s) {
  struct workload *wl = s->wl;
  if (wl == NULL)
    return;
  appck_free(wl->ck);
  free(wl->ops);
  free(wl->op_seq);
  free(wl->clients);
  free(wl);
  s->wl = NULL;
}

struct sim_app_op *workload_take_history(struct sim *s) {
  if (s->wl == NULL)
    return NULL;
  struct sim_app_op *ops = s->wl->ops;
  s->wl->ops = NULL;
  return ops;
}

uint64_t workload_state_hash(const struct sim *s, const struct node *n,
                             uint64_t h) {
  return s->wl != NULL && n->rt != NULL
             ? sim_mix(h, app_state_hash(rt_app(n->rt)))
             : h;
}

/* ---- building commands --------------------------------------------------- */

/* Encodes op with C-string arguments into the op's record. */
static void wl_encode(struct sim_app_op *op, enum app_op code,
                      const char *const *args, size_t argc) {
  struct app_arg argv[APP_ARGS_MAX];
  assert(argc <= APP_ARGS_MAX);
  for (size_t i = 0; i < argc; i++)
    argv[i] = (struct app_arg){(const uint8_t *)args[i], strlen(args[i])};
  struct app_hdr hdr = {0, 0};
  size_t len = app_encode(op->cmd, sizeof op->cmd, &hdr, code, argv, argc);
  assert(len > 0 && len <= sizeof op->cmd);
  op->cmd_len = (uint16_t)len;
}

static void wl_open(struct sim_app_op *op, uint32_t account) {
  char name[16], amount[24];
  snprintf(name, sizeof name, "a%u", account);
  snprintf(amount, sizeof amount, "%d", WL_ACCOUNT_OPEN_PAISE);
  const char *args[] = {name, amount};
  wl_encode(op, APP_LEDGER_OPEN, args, 2);
}

static void wl_add_seats(struct sim_app_op *op, uint32_t train) {
  char names[WL_SEATS][8], t[8];
  const char *args[2 + WL_SEATS];
  snprintf(t, sizeof t, "T%u", train + 1);
  args[0] = t;
  args[1] = "D1";
  for (uint32_t k = 0; k < WL_SEATS; k++) {
    snprintf(names[k], sizeof names[k], "s%u", k + 1);
    args[2 + k] = names[k];
  }
  wl_encode(op, APP_SEATS_ADD, args, 2 + WL_SEATS);
}

static bool uses(enum sim_workload w, enum sim_workload app) {
  return w == app || w == SIM_WORKLOAD_MIXED;
}

/* The client's next setup command, if it has one left. */
static bool wl_setup_op(struct sim *s, struct client *c, struct wl_client *wc,
                        struct sim_app_op *op) {
  uint32_t n_clients = s->n_clients, j = wc->setup_done;
  uint32_t n_accounts = 0, n_trains = 0;
  if (uses(s->wl->kind, SIM_WORKLOAD_LEDGER) && c->index < WL_ACCOUNTS)
    n_accounts = (WL_ACCOUNTS - c->index + n_clients - 1) / n_clients;
  if (uses(s->wl->kind, SIM_WORKLOAD_SEATS) && c->index < WL_TRAINS)
    n_trains = (WL_TRAINS - c->index + n_clients - 1) / n_clients;
  if (j >= n_accounts + n_trains)
    return false;
  wc->setup_done++;
  if (j < n_accounts)
    wl_open(op, c->index + j * n_clients);
  else
    wl_add_seats(op, c->index + (j - n_accounts) * n_clients);
  return true;
}

static void wl_ledger(struct client *c, const uint64_t *r,
                      struct sim_app_op *op) {
  char txid[32], from[16], to[16], amount[24];
  uint32_t a = (uint32_t)(r[1] % WL_ACCOUNTS);
  uint32_t b = (a + 1 + (uint32_t)(r[2] % (WL_ACCOUNTS - 1))) % WL_ACCOUNTS;
  if (r[0] % 100 >= 97)
    b = a; /* refused: a transfer to itself */
  snprintf(txid, sizeof txid, "t%u.%llu", c->index, (unsigned long long)c->seq);
  snprintf(from, sizeof from, "a%u", a);
  snprintf(to, sizeof to, "a%u", b);
  snprintf(amount, sizeof amount, "%llu",
           (unsigned long long)(1 + r[3] % WL_TRANSFER_PAISE_MAX));
  const char *args[] = {txid, from, to, amount};
  wl_encode(op, APP_LEDGER_TRANSFER, args, 4);
}

static void wl_seats(struct client *c, struct wl_client *wc, const uint64_t *r,
                     struct sim_app_op *op) {
  char req[32], train[8], seat[8], passenger[16], pnr[24];
  uint64_t roll = r[0] % 100;
  snprintf(req, sizeof req, "r%u.%llu", c->index, (unsigned long long)c->seq);
  snprintf(train, sizeof train, "T%u", (unsigned)(1 + r[1] % WL_TRAINS));
  snprintf(seat, sizeof seat, "s%u", (unsigned)(1 + r[2] % WL_SEATS));
  snprintf(passenger, sizeof passenger, "p%u", c->index);
  if (roll >= 75 && wc->n_pnrs > 0) {
    uint32_t k = (uint32_t)(r[3] % wc->n_pnrs);
    snprintf(pnr, sizeof pnr, "PNR%010llu", (unsigned long long)wc->pnrs[k]);
    wc->pnrs[k] = wc->pnrs[--wc->n_pnrs];
    const char *args[] = {pnr};
    wl_encode(op, APP_SEATS_CANCEL, args, 1);
  } else if (roll < 45) {
    const char *args[] = {req, train, "D1", seat, passenger};
    wl_encode(op, APP_SEATS_BOOK, args, 5);
  } else {
    const char *args[] = {req, train, "D1", passenger};
    wl_encode(op, APP_SEATS_ANY, args, 4);
  }
}

static void wl_locks(struct client *c, struct wl_client *wc, const uint64_t *r,
                     struct sim_app_op *op) {
  char name[8], owner[16], ttl[16], token[24], key[8], value[32];
  uint64_t roll = r[0] % 100;
  uint32_t l = (uint32_t)(r[1] % WL_LOCKS);
  wc->slot = l;
  snprintf(name, sizeof name, "L%u", l);
  snprintf(owner, sizeof owner, "o%u", c->index);
  snprintf(ttl, sizeof ttl, "%llu",
           (unsigned long long)(WL_TTL_MS_MIN +
                                r[2] % (WL_TTL_MS_MAX - WL_TTL_MS_MIN + 1)));
  bool stale = r[3] % 4 == 0;
  uint64_t t = stale && roll >= 62 ? wc->token_before[l] : wc->token[l];
  /* Tokens start at 1: a client that has none guesses the first. */
  snprintf(token, sizeof token, "%llu", (unsigned long long)(t > 0 ? t : 1));
  if (roll < 35) {
    const char *args[] = {name, owner, ttl};
    wl_encode(op, APP_LOCK_ACQUIRE, args, 3);
  } else if (roll < 50) {
    const char *args[] = {name, owner, token, ttl};
    wl_encode(op, APP_LOCK_RENEW, args, 4);
  } else if (roll < 62) {
    const char *args[] = {name, owner, token};
    wl_encode(op, APP_LOCK_RELEASE, args, 3);
  } else {
    snprintf(key, sizeof key, "k%u", l);
    snprintf(value, sizeof value, "v%u.%llu", c->index,
             (unsigned long long)c->seq);
    const char *args[] = {key, value, name, token};
    wl_encode(op, APP_FENCED_SET, args, 4);
  }
}

static void wl_order_create(struct client *c, struct wl_client *wc,
                            const uint64_t *r, struct sim_app_op *op) {
  char id[32], customer[16], amount[24];
  snprintf(id, sizeof id, "o%u.%u", c->index, wc->orders_next++);
  snprintf(customer, sizeof customer, "cu%u", c->index);
  snprintf(amount, sizeof amount, "%llu",
           (unsigned long long)(100 + r[2] % 900));
  wc->slot = UINT32_MAX;
  const char *args[] = {id, customer, amount};
  wl_encode(op, APP_ORDER_CREATE, args, 3);
}

static void wl_orders(struct client *c, struct wl_client *wc, const uint64_t *r,
                      struct sim_app_op *op) {
  uint64_t roll = r[0] % 100;
  if (wc->n_orders == 0 || (roll < 20 && wc->n_orders < WL_ORDERS_OPEN_MAX)) {
    wl_order_create(c, wc, r, op);
    return;
  }
  uint32_t k = (uint32_t)(r[1] % wc->n_orders);
  const struct wl_order *o = &wc->orders[k];
  char id[32];
  snprintf(id, sizeof id, "o%u.%u", c->index, o->number);
  wc->slot = k;
  if (roll >= 90) {
    const char *args[] = {id};
    wl_encode(op, APP_ORDER_CANCEL, args, 1);
    return;
  }
  /* The next state, or (one time in eight) one further: invalid. */
  uint32_t step = roll >= 80 ? 2 : 1;
  uint32_t to = o->state + step;
  if (to > APP_ORDER_DELIVERED)
    to = APP_ORDER_DELIVERED;
  wc->target_state = (uint8_t)to;
  const char *args[] = {id, app_order_state_name((enum app_order_state)to)};
  wl_encode(op, APP_ORDER_ADVANCE, args, 2);
}

/* Which application the client's next op is for (mixed: or kv). */
static enum sim_workload wl_pick(struct sim *s, struct client *c) {
  if (s->wl->kind != SIM_WORKLOAD_MIXED)
    return s->wl->kind;
  uint64_t roll = prng_below(&c->workload, 100);
  if (roll < 40)
    return SIM_WORKLOAD_KV;
  return (enum sim_workload)(SIM_WORKLOAD_LEDGER + (roll - 40) / 15);
}

bool workload_begin(struct sim *s, struct client *c, uint64_t op_id,
                    struct hist_op *h) {
  struct workload *wl = s->wl;
  struct wl_client *wc = &wl->clients[c->index];
  struct sim_app_op *op = &wl->ops[op_id];
  memset(op, 0, sizeof *op);
  wl->op_seq[op_id] = c->seq;
  wc->slot = UINT32_MAX;
  if (!wl_setup_op(s, c, wc, op)) {
    enum sim_workload app = wl_pick(s, c);
    if (app == SIM_WORKLOAD_KV)
      return false;
    uint64_t r[WL_DRAWS];
    for (uint32_t k = 0; k < WL_DRAWS; k++)
      r[k] = prng_next(&c->workload);
    if (app == SIM_WORKLOAD_LEDGER)
      wl_ledger(c, r, op);
    else if (app == SIM_WORKLOAD_SEATS)
      wl_seats(c, wc, r, op);
    else if (app == SIM_WORKLOAD_LOCKS)
      wl_locks(c, wc, r, op);
    else
      wl_orders(c, wc, r, op);
  }
  h->kind = SIM_HIST_APP;
  h->key = 0;
  return true;
}

/* ---- replies on the client ----------------------------------------------- */

static void wl_order_reply(struct wl_client *wc, enum app_op code,
                           uint32_t number, bool ok) {
  if (code == APP_ORDER_CREATE) {
    if (ok && wc->n_orders < WL_ORDERS_OPEN_MAX)
      wc->orders[wc->n_orders++] =
          (struct wl_order){.number = number, .state = APP_ORDER_CREATED};
    return;
  }
  if (wc->slot >= wc->n_orders)
    return;
  struct wl_order *o = &wc->orders[wc->slot];
  if (ok && code == APP_ORDER_ADVANCE && wc->target_state > o->state)
    o->state = wc->target_state;
  bool done =
      ok && (code == APP_ORDER_CANCEL || o->state == APP_ORDER_DELIVERED);
  if (done)
    *o = wc->orders[--wc->n_orders];
}

void workload_on_reply(struct sim *s, struct client *c, uint64_t op_id,
                       uint8_t kind, uint16_t code, int64_t integer) {
  struct workload *wl = s->wl;
  struct wl_client *wc = &wl->clients[c->index];
  struct sim_app_op *op = &wl->ops[op_id];
  op->replied = true;
  op->reply_kind = kind;
  op->code = code;
  op->integer = integer;
  bool ok = code == APP_DONE && kind != APP_REPLY_ERROR;
  enum app_op cmd = op->cmd[2];
  if (ok && (cmd == APP_SEATS_BOOK || cmd == APP_SEATS_ANY)) {
    if (wc->n_pnrs == WL_PNRS_MAX)
      wc->pnrs[0] = wc->pnrs[--wc->n_pnrs]; /* forget one */
    wc->pnrs[wc->n_pnrs++] = (uint64_t)integer;
  } else if (ok && cmd == APP_LOCK_ACQUIRE && wc->slot < WL_LOCKS &&
             (uint64_t)integer != wc->token[wc->slot]) {
    wc->token_before[wc->slot] = wc->token[wc->slot];
    wc->token[wc->slot] = (uint64_t)integer;
  } else if (cmd == APP_ORDER_CREATE || cmd == APP_ORDER_ADVANCE ||
             cmd == APP_ORDER_CANCEL) {
    wl_order_reply(wc, cmd, wc->orders_next - 1, ok);
  }
}

void workload_observe_clock(struct sim *s, uint64_t now_ms) {
  appck_observe_clock(s->wl->ck, now_ms);
}

const struct sim_app_op *workload_op(const struct sim *s, uint64_t op_id) {
  return &s->wl->ops[op_id];
}

/* ---- the committed stream ------------------------------------------------ */

void workload_observe(struct sim *s, struct node *n, uint64_t index,
                      uint32_t pos, const uint8_t *data, size_t size,
                      const struct app_reply *r, bool first) {
  struct workload *wl = s->wl;
  char why[400];
  const struct app *app = rt_app(n->rt);
  if (first &&
      appck_observe(wl->ck, index, pos, data, size, r, app, why, sizeof why)) {
    invariant_fail(s, why);
    return;
  }
  struct app_decoded d;
  if (app_decode(data, size, &d) != 0)
    return;
  bool ledger = d.op == APP_LEDGER_OPEN || d.op == APP_LEDGER_TRANSFER;
  if (!s->stop && ledger &&
      appck_ledger_audit(wl->ck, app, n->id, index, pos, why, sizeof why))
    invariant_fail(s, why);
}

/* ---- the end ------------------------------------------------------------- */

static enum appck_outcome wl_outcome(const struct hist_op *h) {
  return h->status == HIST_OK     ? APPCK_REPLIED
         : h->status == HIST_FAIL ? APPCK_NOT_APPLIED
                                  : APPCK_UNKNOWN;
}

/* Nodes that applied the same log hold the same machine, dedup tables, lock
 * leases and clock included: what the model does not track (and what a
 * snapshot restored differently from a replay would break) shows here. */
static void wl_same_state(struct sim *s) {
  const struct node *first = &s->nodes[s->final_ref];
  uint64_t h = app_state_hash(rt_app(first->rt));
  for (uint32_t i = s->final_ref + 1; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (!s->final_member[i])
      continue; /* removed: it stopped hearing the log */
    if (rt_applied_index(n->rt) != rt_applied_index(first->rt))
      return; /* not comparable (the convergence wait makes this rare) */
    if (app_state_hash(rt_app(n->rt)) == h)
      continue;
    char why[200];
    snprintf(why, sizeof why,
             "replicas.same_state: nodes %u and %u applied up to index %llu "
             "but hold different application states",
             first->id, i + 1, (unsigned long long)rt_applied_index(n->rt));
    invariant_fail(s, why);
    return;
  }
}

void workload_final(struct sim *s) {
  struct workload *wl = s->wl;
  const struct app *nodes[SABHA_NODES_MAX];
  uint32_t n_nodes = 0;
  char why[400];
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    if (!s->final_member[i])
      continue; /* removed: it holds a prefix of the log */
    nodes[n_nodes] = rt_app(s->nodes[i].rt);
    if (appck_final_node(wl->ck, nodes[n_nodes], i + 1, why, sizeof why))
      invariant_fail(s, why);
    n_nodes++;
  }
  if (s->o.judge_safety)
    wl_same_state(s);
  for (uint64_t id = 0; id < s->ops_issued; id++) {
    const struct hist_op *h = &s->hist[id];
    const struct sim_app_op *op = &wl->ops[id];
    if (h->kind != SIM_HIST_APP)
      continue;
    if (appck_client_saw(wl->ck, op->cmd, op->cmd_len, wl_outcome(h), op->code,
                         op->integer, nodes, n_nodes, why, sizeof why))
      invariant_fail(s, why);
  }
}
