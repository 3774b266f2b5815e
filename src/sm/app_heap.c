/* An indexed binary min-heap of record positions, for the applications
 * (app_internal.h): the held locks by expiry, and each train's free seats
 * by the order they were added.
 *
 * Why indexed: a record leaves the heap from anywhere (a lock released,
 * a seat booked by name), so each record keeps its place in the heap
 * (its `at`, index + 1, 0 when out) and removal is O(log n) with no stale
 * entries to skip later. The heap never allocates: its owner reserves
 * room for every record that may enter before the apply changes
 * anything (app_internal.h, the rule for out-of-memory applies). */
#include <assert.h>

#include "sm/app_internal.h"

static void put(struct app_heap *h, const struct app_heap_ops *ops, void *ctx,
                uint32_t i, uint32_t x) {
  h->v[i] = x;
  *ops->at(ctx, x) = i + 1;
}

static void sift_up(struct app_heap *h, const struct app_heap_ops *ops,
                    void *ctx, uint32_t i, uint64_t *visits) {
  uint32_t x = h->v[i];
  while (i > 0 && ops->before(ctx, x, h->v[(i - 1) / 2])) {
    put(h, ops, ctx, i, h->v[(i - 1) / 2]);
    i = (i - 1) / 2;
    ++*visits;
  }
  put(h, ops, ctx, i, x);
}

static void sift_down(struct app_heap *h, const struct app_heap_ops *ops,
                      void *ctx, uint32_t i, uint64_t *visits) {
  uint32_t x = h->v[i];
  for (uint32_t child = 2 * i + 1; child < h->n; child = 2 * i + 1) {
    if (child + 1 < h->n && ops->before(ctx, h->v[child + 1], h->v[child]))
      child++;
    if (!ops->before(ctx, h->v[child], x))
      break;
    put(h, ops, ctx, i, h->v[child]);
    i = child;
    ++*visits;
  }
  put(h, ops, ctx, i, x);
}

void app_heap_set(struct app_heap *h, const struct app_heap_ops *ops, void *ctx,
                  uint32_t x, uint64_t *visits) {
  assert(h != NULL && ops != NULL && visits != NULL);
  uint32_t *at = ops->at(ctx, x);
  if (*at == 0) {
    assert(h->n < h->cap);
    put(h, ops, ctx, h->n++, x);
  }
  assert(*at >= 1 && *at <= h->n && h->v[*at - 1] == x);
  sift_up(h, ops, ctx, *at - 1, visits);
  sift_down(h, ops, ctx, *ops->at(ctx, x) - 1, visits);
}

void app_heap_remove(struct app_heap *h, const struct app_heap_ops *ops,
                     void *ctx, uint32_t x, uint64_t *visits) {
  assert(h != NULL && ops != NULL && visits != NULL);
  uint32_t *at = ops->at(ctx, x);
  if (*at == 0)
    return;
  uint32_t i = *at - 1;
  assert(i < h->n && h->v[i] == x);
  *at = 0;
  uint32_t last = h->v[--h->n];
  if (i == h->n)
    return;
  put(h, ops, ctx, i, last);
  sift_up(h, ops, ctx, i, visits);
  sift_down(h, ops, ctx, *ops->at(ctx, last) - 1, visits);
}

int app_heap_reserve(const struct app_config *cfg, struct app_heap *h,
                     uint64_t n_total) {
  assert(cfg != NULL && h != NULL);
  return app_vec_reserve(cfg, (void **)&h->v, &h->cap, n_total, sizeof *h->v);
}

void app_heap_free(const struct app_config *cfg, struct app_heap *h) {
  allocator_free(&cfg->alloc, h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}
