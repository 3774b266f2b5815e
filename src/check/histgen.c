/* Random histories: see histgen.h for why.
 *
 * Each client has one operation in flight. The generator repeatedly takes
 * the in-flight operation whose effect instant is earliest, applies it to a
 * sequential store, records what the store answered, and gives that client
 * its next operation, called after this one returns. Because a new
 * operation's effect lies after its call, which lies after the effect just
 * applied, effects are applied in time order: the store's sequence is a
 * linearization that respects every interval. A value put with a TTL gets
 * its vanishing instant when the put takes effect; the store lets it vanish
 * when the next operation on the key takes effect after that instant, which
 * is the same as vanishing at the instant itself, since nothing touched the
 * key in between.
 *
 * Faults are injected in the same pass, where the generator still knows
 * which instant each operation took effect at; the bookkeeping for them
 * draws nothing from the generator, so a seed gives the same operations
 * with or without a fault, up to the faulty one. */
#include "check/histgen.h"

#include <assert.h>
#include <string.h>

struct pending {
  struct hist_op op; /* call_us and kind chosen; output not yet */
  uint64_t effect_us;
};

/* One key of the sequential store, and what the faults need to know of it. */
struct cell {
  int64_t value; /* HIST_NIL: absent */
  bool expiring;
  uint64_t expire_at_us; /* when expiring: gone for effects after this */
  /* Drawn on this key so far: an incr (its counts could land on any
   * number), a put or cas (another writer of numbers). */
  bool incr_drawn, put_or_cas_drawn;
  bool info_incr; /* an incr of unknown outcome on this key */
  /* Resurrect: the last write was an ok put with TTL, returning at
   * write_return_us; `gone` is its value once it has vanished (else
   * HIST_NIL); nil_read_return_us is the earliest return of an ok get that
   * read nil since, called after the put returned (UINT64_MAX: none). */
  bool last_write_ok_ttl;
  uint64_t write_return_us;
  int64_t gone;
  uint64_t nil_read_return_us;
  bool doubled; /* incr twice: the extra count is in the value, unseen */
};

struct gen {
  struct prng *prng;
  const struct hist_gen_config *config;
  struct cell cells[HIST_GEN_KEYS_MAX];
  int64_t value_next;
  enum hist_gen_fault fault;
  bool injected;
  bool shown;
  uint32_t fault_key;
};

static uint32_t draw_kind(struct gen *g) {
  const struct hist_gen_config *config = g->config;
  uint64_t w_put = config->weight_put, w_get = config->weight_get;
  uint64_t w_cas = config->weight_cas, w_incr = config->weight_incr;
  if (w_put + w_get + w_cas + w_incr == 0) {
    /* 40% put, 40% get, 20% cas: enough writes to make reads informative. */
    uint64_t roll = prng_below(g->prng, 10);
    return roll < 4 ? HIST_PUT : roll < 8 ? HIST_GET : HIST_CAS;
  }
  uint64_t roll = prng_below(g->prng, w_put + w_get + w_cas + w_incr);
  if (roll < w_put)
    return HIST_PUT;
  if (roll < w_put + w_get)
    return HIST_GET;
  return roll < w_put + w_get + w_cas ? HIST_CAS : HIST_INCR;
}

static void start_op(struct gen *g, uint32_t client, uint64_t call_us,
                     struct pending *p) {
  memset(p, 0, sizeof *p);
  p->op.client = client;
  p->op.key = (uint32_t)prng_below(g->prng, g->config->n_keys);
  p->op.kind = draw_kind(g);
  p->op.call_us = call_us;
  p->op.value = HIST_NIL;
  p->op.expected = HIST_NIL;
  p->effect_us = call_us + prng_range(g->prng, 0, g->config->latency_us_max);
  struct cell *cell = &g->cells[p->op.key];
  cell->incr_drawn |= p->op.kind == HIST_INCR;
  cell->put_or_cas_drawn |= p->op.kind == HIST_PUT || p->op.kind == HIST_CAS;
}

/* Lets an expiring value vanish if its instant has passed by `at_us`. */
static void expire(struct cell *cell, uint64_t at_us) {
  if (!cell->expiring || cell->expire_at_us >= at_us)
    return;
  cell->gone = cell->value;
  cell->value = HIST_NIL;
  cell->expiring = false;
  cell->doubled = false; /* the extra count vanished with the value */
}

/* A write took effect on `cell`. */
static void written(struct cell *cell, const struct hist_op *op) {
  cell->last_write_ok_ttl = op->kind == HIST_PUT && op->status == HIST_OK &&
                            (op->flags & HIST_TTL) != 0;
  cell->write_return_us = op->return_us;
  cell->gone = HIST_NIL;
  cell->nil_read_return_us = UINT64_MAX;
}

/* Applies op (kind, key, call chosen; status drawn) to the store at
 * effect_us and fills in what it wrote and what it was told. Returns
 * whether it wrote. */
static bool apply(struct gen *g, struct hist_op *op, bool applies,
                  uint64_t effect_us, bool late) {
  struct cell *cell = &g->cells[op->key];
  bool ok = op->status == HIST_OK;
  switch (op->kind) {
  case HIST_PUT: {
    op->value = g->value_next++;
    uint64_t expire_at_us = 0;
    if (g->config->chance_ttl > 0 &&
        prng_chance(g->prng, g->config->chance_ttl)) {
      op->flags = HIST_TTL;
      expire_at_us =
          effect_us + 1 + prng_range(g->prng, 0, g->config->ttl_us_max);
    }
    if (applies) {
      cell->value = op->value;
      cell->expiring = (op->flags & HIST_TTL) != 0;
      cell->expire_at_us = expire_at_us;
    }
    return applies;
  }
  case HIST_GET:
    op->value = ok ? cell->value : HIST_NIL;
    return false;
  case HIST_CAS: {
    op->value = g->value_next++;
    /* Half the time compare against the current value, so cas swaps. */
    if (prng_chance(g->prng, 0.5) || g->value_next == 1)
      op->expected = cell->value;
    else
      op->expected = (int64_t)prng_below(g->prng, (uint64_t)g->value_next - 1);
    bool swaps = cell->value == op->expected;
    op->output = ok && swaps;
    if (applies && swaps) {
      cell->value = op->value;
      cell->expiring = false; /* a swap clears expiry */
    }
    return applies && swaps;
  }
  default: {
    assert(op->kind == HIST_INCR);
    assert(cell->value != INT64_MAX);
    int64_t result = cell->value == HIST_NIL ? 1 : cell->value + 1;
    op->value = ok ? result : HIST_NIL;
    cell->info_incr |= op->status == HIST_INFO;
    if (!applies)
      return false;
    cell->value = result; /* a new key does not expire; an old one keeps */
    if (ok && late && g->fault == HIST_GEN_FAULT_INCR_TWICE && !g->injected) {
      cell->value = result + 1;
      cell->doubled = true;
      g->injected = true;
      g->fault_key = op->key;
    }
    return true;
  }
  }
}

/* Fault bookkeeping for op, which has taken effect; draws nothing. */
static void observe(struct gen *g, struct hist_op *op, bool wrote,
                    bool doubled_before, bool late) {
  struct cell *cell = &g->cells[op->key];
  bool ok = op->status == HIST_OK;
  if (doubled_before && ok && (op->kind == HIST_GET || op->kind == HIST_INCR))
    g->shown = true; /* checked against the whole run at the end */
  if (op->kind == HIST_GET && ok && op->value == HIST_NIL &&
      cell->gone != HIST_NIL && cell->last_write_ok_ttl) {
    if (late && g->fault == HIST_GEN_FAULT_RESURRECT && !g->injected &&
        cell->nil_read_return_us < op->call_us) {
      op->value = cell->gone;
      g->injected = true;
      g->shown = true;
      g->fault_key = op->key;
    } else if (op->call_us > cell->write_return_us &&
               op->return_us < cell->nil_read_return_us) {
      cell->nil_read_return_us = op->return_us;
    }
  }
  if (wrote) {
    written(cell, op);
    if (op->kind != HIST_INCR)
      cell->doubled = false;
  }
}

static bool generate(struct prng *prng, const struct hist_gen_config *config,
                     enum hist_gen_fault fault, struct hist_op *ops,
                     size_t n_ops) {
  assert(prng != NULL && config != NULL);
  assert(ops != NULL || n_ops == 0);
  assert(config->n_clients >= 1 && config->n_clients <= HIST_GEN_CLIENTS_MAX);
  assert(config->n_keys >= 1 && config->n_keys <= HIST_GEN_KEYS_MAX);
  static const struct gen gen_zero;
  struct gen g = gen_zero;
  g.prng = prng;
  g.config = config;
  g.fault = fault;
  struct pending pending[HIST_GEN_CLIENTS_MAX];
  memset(pending, 0, sizeof pending);
  for (uint32_t k = 0; k < config->n_keys; k++) {
    g.cells[k].value = HIST_NIL;
    g.cells[k].gone = HIST_NIL;
    g.cells[k].nil_read_return_us = UINT64_MAX;
  }
  for (uint32_t c = 0; c < config->n_clients; c++)
    start_op(&g, c, prng_range(prng, 0, config->think_us_max), &pending[c]);

  for (size_t i = 0; i < n_ops; i++) {
    uint32_t c_next = 0;
    for (uint32_t c = 1; c < config->n_clients; c++) {
      if (pending[c].effect_us < pending[c_next].effect_us)
        c_next = c;
    }
    struct pending *p = &pending[c_next];
    struct hist_op *op = &ops[i];
    *op = p->op;
    double roll = prng_unit(prng);
    op->status = roll < config->chance_fail                         ? HIST_FAIL
                 : roll < config->chance_fail + config->chance_info ? HIST_INFO
                                                                    : HIST_OK;
    /* An info op took effect or not, by a coin; a failed one did not. */
    bool applies = op->status == HIST_OK ||
                   (op->status == HIST_INFO && prng_chance(prng, 0.5));
    struct cell *cell = &g.cells[op->key];
    expire(cell, p->effect_us);
    bool doubled_before = cell->doubled;
    bool late = i >= n_ops / 2;
    bool wrote = apply(&g, op, applies, p->effect_us, late);
    op->return_us = p->effect_us + prng_range(prng, 0, config->latency_us_max);
    assert(op->call_us <= p->effect_us && p->effect_us <= op->return_us);
    observe(&g, op, wrote, doubled_before, late);
    start_op(&g, c_next,
             op->return_us + 1 + prng_range(prng, 0, config->think_us_max), p);
  }
  if (n_ops > 0) {
    for (size_t i = n_ops - 1; i > 0; i--) {
      size_t j = (size_t)prng_below(prng, i + 1);
      struct hist_op t = ops[i];
      ops[i] = ops[j];
      ops[j] = t;
    }
  }
  if (!g.injected)
    return false;
  const struct cell *cell = &g.cells[g.fault_key];
  if (fault == HIST_GEN_FAULT_INCR_TWICE)
    return g.shown && !cell->put_or_cas_drawn && !cell->info_incr;
  return g.shown && !cell->incr_drawn;
}

void hist_gen_linearizable(struct prng *prng,
                           const struct hist_gen_config *config,
                           struct hist_op *ops, size_t n_ops) {
  generate(prng, config, HIST_GEN_FAULT_NONE, ops, n_ops);
}

bool hist_gen_with_fault(struct prng *prng,
                         const struct hist_gen_config *config,
                         enum hist_gen_fault fault, struct hist_op *ops,
                         size_t n_ops) {
  return generate(prng, config, fault, ops, n_ops);
}
