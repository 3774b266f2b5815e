/* The event queue: a binary min-heap of (time, insertion seq, event) and a
 * pool of event structs.
 *
 * The seq breaks ties between events at the same microsecond in the order
 * they were scheduled, which is what makes a run reproducible: the heap never
 * sees two equal keys. Events come from a free list refilled in blocks, so
 * the millions of ticks and messages of a run cost no malloc each. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

#define EVQ_BLOCK_EVENTS 4096u

void evq_init(struct evq *q) {
  memset(q, 0, sizeof *q);
}

void evq_free(struct evq *q) {
  for (size_t i = 0; i < q->n_blocks; i++)
    free(q->blocks[i]);
  free(q->blocks);
  free(q->heap);
  memset(q, 0, sizeof *q);
}

static void evq_refill(struct evq *q) {
  struct sim_event *block = sim_xmalloc(EVQ_BLOCK_EVENTS * sizeof *block);
  if (q->n_blocks == q->cap_blocks) {
    q->cap_blocks = q->cap_blocks == 0 ? 16 : q->cap_blocks * 2;
    q->blocks = sim_xrealloc(q->blocks, q->cap_blocks * sizeof *q->blocks);
  }
  q->blocks[q->n_blocks++] = block;
  for (size_t i = 0; i < EVQ_BLOCK_EVENTS; i++) {
    block[i].u.next_free = q->free_list;
    q->free_list = &block[i];
  }
}

struct sim_event *ev_new(struct sim *s, uint32_t kind, uint32_t target) {
  struct evq *q = &s->q;
  if (q->free_list == NULL)
    evq_refill(q);
  struct sim_event *ev = q->free_list;
  q->free_list = ev->u.next_free;
  memset(ev, 0, sizeof *ev);
  ev->kind = kind;
  ev->target = target;
  return ev;
}

void ev_free(struct sim *s, struct sim_event *ev) {
  assert(ev != NULL);
  ev->kind = 0;
  ev->u.next_free = s->q.free_list;
  s->q.free_list = ev;
}

static bool item_less(const struct heap_item *a, const struct heap_item *b) {
  return a->time_us < b->time_us ||
         (a->time_us == b->time_us && a->seq < b->seq);
}

void sim_at(struct sim *s, uint64_t time_us, struct sim_event *ev) {
  struct evq *q = &s->q;
  assert(time_us >= s->now_us && "events are never scheduled in the past");
  if (q->n == q->cap) {
    q->cap = q->cap == 0 ? 1024 : q->cap * 2;
    q->heap = sim_xrealloc(q->heap, q->cap * sizeof *q->heap);
  }
  struct heap_item item = {time_us, q->seq_next++, ev};
  size_t i = q->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!item_less(&item, &q->heap[parent]))
      break;
    q->heap[i] = q->heap[parent];
    i = parent;
  }
  q->heap[i] = item;
}

struct sim_event *evq_pop(struct evq *q, uint64_t *time_us) {
  if (q->n == 0)
    return NULL;
  struct heap_item top = q->heap[0];
  struct heap_item last = q->heap[--q->n];
  size_t i = 0, n = q->n;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n)
      break;
    if (child + 1 < n && item_less(&q->heap[child + 1], &q->heap[child]))
      child++;
    if (!item_less(&q->heap[child], &last))
      break;
    q->heap[i] = q->heap[child];
    i = child;
  }
  if (n > 0)
    q->heap[i] = last;
  *time_us = top.time_us;
  return top.ev;
}
