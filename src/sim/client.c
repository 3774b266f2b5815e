/* Closed-loop clients: each has one operation in flight, and records every
 * operation it starts in the history the linearizability checker reads.
 *
 * An operation is a put (40%), get (40%) or cas (20%) on one of n_keys keys;
 * every put and cas writes a fresh value id, so the checker can tell writes
 * apart. A cas compares against the last value this client saw for the key.
 * The client sends to the node it believes leads; a node that does not lead
 * answers NOT_LEADER with a hint, which the client follows at once (or, with
 * no hint, tries another node after a short backoff). With no answer within
 * 200-500 ms it retries the same operation, same sequence number, at another
 * node: the state machine's sessions make the retry safe. After the overall
 * deadline (op_timeout_ms) it gives up: the operation is recorded "fail" if
 * every attempt was refused before reaching the log, "info" (outcome unknown)
 * otherwise. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "sim/workload.h"

#define ATTEMPT_TIMEOUT_US_MIN 200000u
#define ATTEMPT_TIMEOUT_US_MAX 500000u
#define BACKOFF_US_MIN 10000u
#define BACKOFF_US_MAX 50000u
#define THINK_US_MAX 1000u

/* Timer purposes (event aux). */
enum { TIMER_NEXT_OP = 0, TIMER_ATTEMPT_TIMEOUT = 1, TIMER_RETRY = 2 };

void clients_init(struct sim *s) {
  s->clients = sim_xcalloc(s->n_clients, sizeof *s->clients);
  for (uint32_t i = 0; i < s->n_clients; i++) {
    struct client *c = &s->clients[i];
    c->index = i;
    c->node = (uint32_t)prng_below(&s->prng_client, s->n_nodes);
    prng_seed(&c->workload, sim_mix(sim_mix(s->o.seed, 0x3017c), i));
    c->last_seen = sim_xmalloc(s->o.n_keys * sizeof *c->last_seen);
    for (uint32_t k = 0; k < s->o.n_keys; k++)
      c->last_seen[k] = KV_NIL;
  }
}

void clients_free(struct sim *s) {
  if (s->clients == NULL)
    return;
  for (uint32_t i = 0; i < s->n_clients; i++)
    free(s->clients[i].last_seen);
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

static void client_finish_op(struct sim *s, struct client *c) {
  c->in_flight = false;
  client_set_timeout(s, c, 0);
  s->ops_done++;
  if (s->ops_done == s->o.n_ops) {
    sim_clients_done(s);
    return;
  }
  client_kick(s, c, s->now_us + prng_below(&s->prng_client, THINK_US_MAX + 1),
              TIMER_NEXT_OP);
}

static void client_give_up(struct sim *s, struct client *c) {
  struct hist_op *h = &s->hist[c->op_id];
  uint32_t refused = (uint32_t)__builtin_popcountll(c->refused_mask);
  if (c->attempt > 0 && refused == c->attempt) {
    h->status = HIST_FAIL;
    h->return_us = s->now_us;
    s->res->ops_failed++;
  } else {
    h->status = HIST_INFO;
    h->return_us = 0;
    s->res->ops_indeterminate++;
  }
  client_finish_op(s, c);
}

static void client_attempt(struct sim *s, struct client *c) {
  if (c->attempt >= CLIENT_ATTEMPTS_MAX || s->now_us >= c->deadline_us) {
    client_give_up(s, c);
    return;
  }
  c->attempt++;
  const struct hist_op *h = &s->hist[c->op_id];
  struct client_msg cm = {.client = c->index,
                          .attempt = c->attempt,
                          .seq = c->seq,
                          .op_id = c->op_id,
                          .kind = h->kind,
                          .key = h->key,
                          .value = h->value,
                          .expected = h->expected};
  net_send_client(s, true, c->node, c->index, &cm);
  uint64_t at_us =
      s->now_us + prng_range(&s->prng_client, ATTEMPT_TIMEOUT_US_MIN,
                             ATTEMPT_TIMEOUT_US_MAX);
  if (at_us > c->deadline_us)
    at_us = c->deadline_us;
  client_set_timeout(s, c, at_us);
}

/* A put, get or cas on a random key. */
static void client_draw_kv(struct sim *s, struct client *c,
                           struct hist_op *h) {
  uint64_t roll = prng_below(&c->workload, 100);
  h->kind = roll < 40 ? HIST_PUT : roll < 80 ? HIST_GET : HIST_CAS;
  h->key = (uint32_t)prng_below(&c->workload, s->o.n_keys);
  if (h->kind != HIST_GET)
    h->value = s->value_next++;
  if (h->kind == HIST_CAS)
    h->expected = c->last_seen[h->key];
}

static void client_begin(struct sim *s, struct client *c) {
  if (s->phase != PHASE_CLIENTS || s->ops_issued >= s->o.n_ops) {
    c->finished = true;
    return;
  }
  uint64_t op_id = s->ops_issued++;
  struct hist_op *h = &s->hist[op_id];
  memset(h, 0, sizeof *h);
  h->client = c->index;
  h->status = HIST_INFO;
  h->value = HIST_NIL;
  h->expected = HIST_NIL;
  h->call_us = s->now_us;
  c->seq++;
  if (s->wl == NULL || !workload_begin(s, c, op_id, h))
    client_draw_kv(s, c, h);
  c->op_id = op_id;
  c->in_flight = true;
  c->attempt = 0;
  c->refused_mask = 0;
  c->deadline_us = s->now_us + (uint64_t)s->o.op_timeout_ms * 1000u;
  client_attempt(s, c);
}

static void client_record_latency(struct sim *s, uint64_t latency_us) {
  struct sim_result *r = s->res;
  if (r->n_latencies == s->cap_latencies) {
    s->cap_latencies = s->cap_latencies == 0 ? 1024 : s->cap_latencies * 2;
    r->latencies_us =
        sim_xrealloc(r->latencies_us, s->cap_latencies * sizeof(uint32_t));
  }
  r->latencies_us[r->n_latencies++] =
      latency_us > UINT32_MAX ? UINT32_MAX : (uint32_t)latency_us;
}

static void client_succeed(struct sim *s, struct client *c,
                           const struct client_msg *cm) {
  struct hist_op *h = &s->hist[c->op_id];
  h->status = HIST_OK;
  h->return_us = s->now_us;
  if (h->kind == SIM_HIST_APP) {
    workload_on_reply(s, c, cm);
  } else if (h->kind == HIST_GET) {
    h->value = cm->value;
    c->last_seen[h->key] = cm->value;
  } else if (h->kind == HIST_PUT) {
    c->last_seen[h->key] = h->value;
  } else {
    h->output = cm->swapped ? 1 : 0;
    if (cm->swapped)
      c->last_seen[h->key] = h->value;
  }
  s->res->ops_ok++;
  client_record_latency(s, h->return_us - h->call_us);
  client_finish_op(s, c);
}

static void client_on_reply(struct sim *s, struct client *c, uint32_t node,
                            const struct client_msg *cm) {
  if (!c->in_flight || cm->seq != c->seq)
    return; /* a late answer to an operation already finished */
  if (cm->status == CM_OK) {
    client_succeed(s, c, cm);
    return;
  }
  if (cm->attempt >= 1 && cm->attempt <= CLIENT_ATTEMPTS_MAX)
    c->refused_mask |= 1ull << (cm->attempt - 1);
  if (cm->attempt != c->attempt)
    return; /* the current attempt is still out */
  if (cm->status == CM_NOT_LEADER && cm->hint != SABHA_NODE_NONE &&
      cm->hint <= s->n_nodes && cm->hint - 1 != node) {
    c->node = cm->hint - 1;
    client_attempt(s, c);
    return;
  }
  if (cm->status == CM_NOT_LEADER)
    c->node = client_other_node(s, node);
  client_set_timeout(s, c, 0);
  client_kick(s, c,
              s->now_us +
                  prng_range(&s->prng_client, BACKOFF_US_MIN, BACKOFF_US_MAX),
              TIMER_RETRY);
}

static void client_on_kick(struct sim *s, struct client *c, uint32_t purpose) {
  if (purpose == TIMER_NEXT_OP && !c->in_flight)
    client_begin(s, c);
  else if (purpose == TIMER_RETRY && c->in_flight)
    client_attempt(s, c);
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
  if (c->timeout_due_us == 0 || !c->in_flight)
    return;
  c->timeout_due_us = 0;
  c->node = client_other_node(s, c->node);
  client_attempt(s, c);
}

void client_on_event(struct sim *s, struct sim_event *ev) {
  assert(ev->target < s->n_clients);
  struct client *c = &s->clients[ev->target];
  if (ev->kind == EV_CLIENT_TIMER && ev->aux == TIMER_ATTEMPT_TIMEOUT) {
    client_on_timeout(s, c, ev);
    return;
  }
  if (ev->kind == EV_CLIENT_REPLY)
    client_on_reply(s, c, ev->aux, &ev->u.cm);
  else if (ev->gen == c->kick_token)
    client_on_kick(s, c, ev->aux);
  ev_free(s, ev);
}
