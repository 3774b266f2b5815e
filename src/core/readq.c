/* The ReadIndex queue; see readq.h. */
#include "core/readq.h"

#include <stdlib.h>
#include <string.h>

int readq_init(struct readq *q) {
  memset(q, 0, sizeof *q);
  q->items = calloc(READQ_MAX, sizeof *q->items);
  q->deferred = calloc(READQ_MAX, sizeof *q->deferred);
  if (q->items == NULL || q->deferred == NULL) {
    readq_free(q);
    return SABHA_ENOMEM;
  }
  return 0;
}

void readq_free(struct readq *q) {
  free(q->items);
  free(q->deferred);
  q->items = NULL;
  q->deferred = NULL;
}

static void push(struct readq *q, uint64_t request_id, uint64_t index) {
  struct readq_item *it = &q->items[(q->head + q->n) % READQ_MAX];
  it->request_id = request_id;
  it->index = index;
  it->round = q->round;
  q->n++;
}

int64_t readq_add(struct readq *q, uint64_t request_id, uint64_t index) {
  if (q->n + q->n_deferred >= READQ_MAX)
    return SABHA_EBUSY;
  if (q->round_unsent) {
    push(q, request_id, index);
    return 0;
  }
  q->round++;
  q->round_unsent = true;
  push(q, request_id, index);
  return (int64_t)q->round;
}

int readq_defer(struct readq *q, uint64_t request_id) {
  if (q->n + q->n_deferred >= READQ_MAX)
    return SABHA_EBUSY;
  q->deferred[q->n_deferred++] = request_id;
  return 0;
}

uint64_t readq_undefer(struct readq *q, uint64_t index) {
  if (q->n_deferred == 0)
    return 0;
  q->round++;
  q->round_unsent = true;
  for (uint32_t i = 0; i < q->n_deferred; i++)
    push(q, q->deferred[i], index);
  q->n_deferred = 0;
  return q->round;
}

void readq_sent(struct readq *q) {
  q->round_unsent = false;
}

void readq_ack(struct readq *q, uint32_t slot, uint64_t round) {
  if (slot < SABHA_NODES_MAX && round > q->acked[slot])
    q->acked[slot] = round;
}

void readq_release(struct readq *q, uint32_t self_slot, uint32_t voters,
                   uint32_t quorum, struct outbox *out) {
  while (q->n > 0) {
    struct readq_item *it = &q->items[q->head];
    uint32_t acks = 0;
    for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
      if ((voters >> i & 1u) && (i == self_slot || q->acked[i] >= it->round))
        acks++;
    if (acks < quorum)
      return; /* later reads have later rounds: none of them is ready */
    if (outbox_read_state(out, it->request_id, it->index) != 0)
      return; /* out of memory: try again on the next acknowledgement */
    q->head = (q->head + 1) % READQ_MAX;
    q->n--;
  }
}

void readq_forget(struct readq *q, uint32_t slot) {
  if (slot < SABHA_NODES_MAX)
    q->acked[slot] = 0;
}

void readq_drop(struct readq *q) {
  q->head = 0;
  q->n = 0;
  q->n_deferred = 0;
  q->round_unsent = false;
}
