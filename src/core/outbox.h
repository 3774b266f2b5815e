/* What an engine has to say between two ready batches: messages (those that
 * may leave at once and those that must wait for the batch to be durable)
 * and read states.
 *
 * Messages are copied in, with their entries and snapshot bytes, so the
 * caller may build them on the stack from its log. Everything is released by
 * outbox_reset() when the host calls advance(). Arrays keep their capacity, so
 * a steady state allocates nothing. */
#ifndef SABHA_CORE_OUTBOX_H
#define SABHA_CORE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "sabha/engine.h"

struct msg_vec {
  struct sabha_msg *items;
  size_t n;
  size_t cap;
};

struct outbox {
  struct msg_vec now;           /* may be sent before the batch is durable */
  struct msg_vec after_persist; /* only once the batch is durable */
  struct sabha_read_state *reads;
  size_t n_reads;
  size_t cap_reads;
  struct arena arena;
};

void outbox_init(struct outbox *o);
void outbox_free(struct outbox *o);
void outbox_reset(struct outbox *o);
static inline bool outbox_empty(const struct outbox *o) {
  return o->now.n == 0 && o->after_persist.n == 0 && o->n_reads == 0;
}

/* Queues a copy of `m`. Returns 0 or SABHA_ENOMEM (nothing queued: to the
 * protocol that is the same as a message lost on the network). */
int outbox_send(struct outbox *o, const struct sabha_msg *m,
                bool after_persist);
int outbox_read_state(struct outbox *o, uint64_t request_id, uint64_t index);

#endif
