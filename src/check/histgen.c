/* Random linearizable histories: see histgen.h for why.
 *
 * Each client has one operation in flight. The generator repeatedly takes
 * the in-flight operation whose effect instant is earliest, applies it to a
 * sequential store, records what the store answered, and gives that client
 * its next operation, called after this one returns. Because a new
 * operation's effect lies after its call, which lies after the effect just
 * applied, effects are applied in time order: the store's sequence is a
 * linearization that respects every interval. */
#include "check/histgen.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

struct pending {
  struct hist_op op; /* call_us and kind chosen; output not yet */
  uint64_t effect_us;
};

static void start_op(struct prng *prng, const struct hist_gen_config *config,
                     uint32_t client, uint64_t call_us, struct pending *p) {
  memset(p, 0, sizeof *p);
  p->op.client = client;
  p->op.key = (uint32_t)prng_below(prng, config->n_keys);
  uint64_t roll = prng_below(prng, 10);
  /* 40% put, 40% get, 20% cas: enough writes to make reads informative. */
  p->op.kind = roll < 4 ? HIST_PUT : roll < 8 ? HIST_GET : HIST_CAS;
  p->op.call_us = call_us;
  p->op.value = HIST_NIL;
  p->op.expected = HIST_NIL;
  p->effect_us = call_us + prng_range(prng, 0, config->latency_us_max);
}

void hist_gen_linearizable(struct prng *prng,
                           const struct hist_gen_config *config,
                           struct hist_op *ops, size_t n_ops) {
  assert(prng != NULL && config != NULL);
  assert(ops != NULL || n_ops == 0);
  assert(config->n_clients >= 1 && config->n_clients <= HIST_GEN_CLIENTS_MAX);
  assert(config->n_keys >= 1 && config->n_keys <= HIST_GEN_KEYS_MAX);
  struct pending pending[HIST_GEN_CLIENTS_MAX];
  int64_t store[HIST_GEN_KEYS_MAX];
  memset(pending, 0, sizeof pending);
  for (uint32_t k = 0; k < config->n_keys; k++)
    store[k] = HIST_NIL;
  for (uint32_t c = 0; c < config->n_clients; c++)
    start_op(prng, config, c, prng_range(prng, 0, config->think_us_max),
             &pending[c]);

  int64_t value_next = 0;
  for (size_t i = 0; i < n_ops; i++) {
    uint32_t c_next = 0;
    for (uint32_t c = 1; c < config->n_clients; c++) {
      if (pending[c].effect_us < pending[c_next].effect_us)
        c_next = c;
    }
    struct pending *p = &pending[c_next];
    struct hist_op *op = &ops[i];
    *op = p->op;
    int64_t *cell = &store[op->key];
    double roll = prng_unit(prng);
    op->status = roll < config->chance_fail                         ? HIST_FAIL
                 : roll < config->chance_fail + config->chance_info ? HIST_INFO
                                                                    : HIST_OK;
    /* An info op took effect or not, by a coin; a failed one did not. */
    bool applies = op->status == HIST_OK ||
                   (op->status == HIST_INFO && prng_chance(prng, 0.5));
    switch (op->kind) {
    case HIST_PUT:
      op->value = value_next++;
      if (applies)
        *cell = op->value;
      break;
    case HIST_GET:
      op->value = op->status == HIST_OK ? *cell : HIST_NIL;
      break;
    default:
      op->value = value_next++;
      /* Half the time compare against the current value, so cas swaps. */
      if (prng_chance(prng, 0.5) || value_next == 1)
        op->expected = *cell;
      else
        op->expected = (int64_t)prng_below(prng, (uint64_t)value_next - 1);
      op->output = op->status == HIST_OK && *cell == op->expected;
      if (applies && *cell == op->expected)
        *cell = op->value;
      break;
    }
    op->return_us = p->effect_us + prng_range(prng, 0, config->latency_us_max);
    assert(op->call_us <= p->effect_us && p->effect_us <= op->return_us);
    start_op(prng, config, c_next,
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
}
