/* core/allocator.h is how the key-value store and the applications get
 * memory, and how the anomaly tests fail it: these tests pin that every
 * helper reaches the hook with the Lua-style arguments its contract names,
 * that a failure leaves the old block alone, and that without a hook the C
 * library serves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/allocator.h"
#include "failing_alloc.h"

struct recording {
  int allocs, resizes, frees;
  size_t last_size;
};

static void *recording_fn(void *ctx, void *p, size_t size) {
  struct recording *r = ctx;
  r->last_size = size;
  if (size == 0) {
    r->frees++;
    free(p);
    return NULL;
  }
  if (p == NULL)
    r->allocs++;
  else
    r->resizes++;
  return realloc(p, size);
}

static void allocator_helpers_reach_the_hook_as_its_contract_says(void) {
  struct recording r = {0};
  struct allocator a = {recording_fn, &r};
  uint8_t *p = allocator_malloc(&a, 16);
  CHECK(p != NULL && r.allocs == 1 && r.last_size == 16);
  p = allocator_realloc(&a, p, 64);
  CHECK(p != NULL && r.resizes == 1 && r.last_size == 64);
  allocator_free(&a, p);
  CHECK(r.frees == 1 && r.last_size == 0);
  allocator_free(&a, NULL); /* nothing to free: the hook is not called */
  CHECK(r.frees == 1);
  uint8_t *z = allocator_zalloc(&a, 100);
  CHECK(z != NULL && r.allocs == 2);
  for (size_t i = 0; i < 100; i++)
    CHECK(z[i] == 0);
  allocator_free(&a, z);
}

static void allocator_without_a_hook_uses_the_c_library(void) {
  struct allocator a = {NULL, NULL};
  char *p = allocator_zalloc(&a, 8);
  CHECK(p != NULL && p[7] == 0);
  memcpy(p, "sabha", 6);
  p = allocator_realloc(&a, p, 4096);
  CHECK(p != NULL && strcmp(p, "sabha") == 0);
  allocator_free(&a, p);
  allocator_free(&a, NULL);
}

static void allocator_failure_keeps_the_old_block(void) {
  struct failing_alloc f = {0, 2};
  struct allocator a = failing_allocator(&f);
  char *p = allocator_malloc(&a, 8);
  CHECK(p != NULL);
  memcpy(p, "kept", 5);
  CHECK(allocator_realloc(&a, p, 1 << 20) == NULL); /* the 2nd call fails */
  CHECK(f.calls == 2 && strcmp(p, "kept") == 0);
  char *q = allocator_zalloc(&a, 8); /* the 3rd succeeds again */
  CHECK(q != NULL && f.calls == 3);
  allocator_free(&a, q);
  allocator_free(&a, p);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(allocator_helpers_reach_the_hook_as_its_contract_says),
      TEST(allocator_without_a_hook_uses_the_c_library),
      TEST(allocator_failure_keeps_the_old_block),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
