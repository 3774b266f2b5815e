/* The store's ordered index (src/sm/kv_order.h) against the simplest model
 * of it, a sorted array: seeded random inserts, replaces, removes (enough
 * to empty the tree again, through every borrow and merge), first-key->=
 * searches and full walks, over keys made to be hard for an index that keeps
 * 16 bytes of each key inline: the empty key, keys with zero bytes, keys
 * that share 16 bytes or far more, keys that end inside or right after
 * the inline part, and long ones. The tree's own rules are checked
 * (kv_order_valid) as it grows and shrinks. A comparison broken on purpose
 * (it stops at the inline bytes) must make the same checks fail; and
 * memory comes only from kv_order_reserve, which fails cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/prng.h"
#include "failing_alloc.h"
#include "sabha/error.h"
#include "sm/kv_order.h"

#define KEY_BYTES_MAX 300u
#define ITEMS_MAX 40000u

struct item {
  size_t len;
  uint8_t bytes[KEY_BYTES_MAX];
  struct kv_order_node *leaf;
};

static const uint8_t *item_key(const void *item, size_t *len) {
  const struct item *it = item;
  *len = it->len;
  return it->bytes;
}

static struct kv_order_node **item_leaf(void *item) {
  return &((struct item *)item)->leaf;
}

/* The model's order, written as plainly as it can be: byte by byte. */
static int key_cmp(const uint8_t *a, size_t a_len, const uint8_t *b,
                   size_t b_len) {
  for (size_t i = 0; i < a_len && i < b_len; i++)
    if (a[i] != b[i])
      return a[i] < b[i] ? -1 : 1;
  return (a_len > b_len) - (a_len < b_len);
}

/* The model: items sorted by key. */
struct model {
  struct item **items;
  size_t n;
};

static size_t model_lower_bound(const struct model *m, const uint8_t *key,
                                size_t len) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (key_cmp(m->items[mid]->bytes, m->items[mid]->len, key, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static bool model_has(const struct model *m, size_t i, const uint8_t *key,
                      size_t len) {
  return i < m->n &&
         key_cmp(m->items[i]->bytes, m->items[i]->len, key, len) == 0;
}

/* A key from one of the families above. */
static void key_make(struct prng *p, struct item *it) {
  static const uint8_t alphabet[] = {0x00, 0x01, 'a', 'b', 0xff};
  const char *shared = "0123456789abcdef"; /* exactly the inline bytes */
  size_t n = 0;
  switch (prng_below(p, 6)) {
  case 0: /* short, over a tiny alphabet, maybe empty */
    n = (size_t)prng_below(p, 4);
    for (size_t i = 0; i < n; i++)
      it->bytes[i] = alphabet[prng_below(p, sizeof alphabet)];
    break;
  case 1: /* a prefix of the shared bytes, or those and a little more */
  case 2:
    n = 10 + (size_t)prng_below(p, 10);
    memcpy(it->bytes, shared, 16);
    for (size_t i = 16; i < n; i++)
      it->bytes[i] = alphabet[prng_below(p, sizeof alphabet)];
    break;
  case 3: /* 200 shared bytes, then a few that differ */
    n = 200 + (size_t)prng_below(p, 4);
    memset(it->bytes, 'k', 200);
    for (size_t i = 200; i < n; i++)
      it->bytes[i] = alphabet[prng_below(p, sizeof alphabet)];
    break;
  case 4: /* long and random */
    n = 17 + (size_t)prng_below(p, KEY_BYTES_MAX - 17);
    for (size_t i = 0; i < n; i++)
      it->bytes[i] = (uint8_t)prng_below(p, 4);
    break;
  default: /* like the benchmark's: key:000000012345 */
    n = (size_t)snprintf((char *)it->bytes, KEY_BYTES_MAX, "key:%012llu",
                         (unsigned long long)prng_below(p, 100000));
    break;
  }
  it->len = n;
}

/* Whether a walk of the whole index and first_ge from `probe` both agree
 * with the model. */
static bool order_matches(const struct kv_order *o, const struct model *m,
                          const struct item *probe) {
  if (kv_order_count(o) != m->n)
    return false;
  size_t i = 0;
  struct kv_order_pos pos = kv_order_first_ge(o, NULL, 0);
  for (; kv_order_at(pos) != NULL; pos = kv_order_next(pos), i++)
    if (i >= m->n || kv_order_at(pos) != m->items[i])
      return false;
  if (i != m->n)
    return false;
  size_t at = model_lower_bound(m, probe->bytes, probe->len);
  void *got = kv_order_at(kv_order_first_ge(o, probe->bytes, probe->len));
  return got == (at < m->n ? m->items[at] : NULL);
}

/* One seeded run of `ops` steps keeping up to `keys_max` keys; with
 * `drain`, it then removes every key. Returns whether everything agreed. */
static bool run_seed(uint64_t seed, size_t ops, size_t keys_max, bool drain,
                     uint32_t bugs) {
  struct prng p;
  prng_seed(&p, seed);
  struct kv_order o;
  kv_order_init(&o, (struct allocator){0}, item_key, item_leaf);
  o.bugs = bugs;
  struct model m = {calloc(ITEMS_MAX, sizeof(struct item *)), 0};
  struct item probe;
  bool ok = m.items != NULL;
  for (size_t step = 0; ok && step < ops; step++) {
    key_make(&p, &probe);
    size_t at = model_lower_bound(&m, probe.bytes, probe.len);
    bool has = model_has(&m, at, probe.bytes, probe.len);
    uint64_t dice = prng_below(&p, 100);
    /* Grow while under the bound, then as often remove as insert. */
    bool grow = m.n < keys_max && dice < (m.n < keys_max / 2 ? 80u : 50u);
    if (bugs != 0 && !(grow && !has))
      continue; /* a broken tree may not find what it holds: inserts only */
    if (grow && !has) {
      struct item *it = malloc(sizeof *it);
      *it = probe;
      ok = it != NULL && kv_order_reserve(&o, 1) == 0;
      if (!ok)
        break;
      kv_order_insert(&o, it);
      memmove(&m.items[at + 1], &m.items[at], (m.n - at) * sizeof m.items[0]);
      m.items[at] = it;
      m.n++;
    } else if (grow && has) { /* a rewrite: same key, new item */
      struct item *it = malloc(sizeof *it);
      ok = it != NULL;
      if (!ok)
        break;
      *it = probe;
      kv_order_replace(&o, m.items[at], it);
      free(m.items[at]);
      m.items[at] = it;
    } else if (m.n > 0) { /* remove the key at or after the probe */
      size_t victim = at < m.n ? at : m.n - 1;
      struct item *it = m.items[victim];
      void *got = kv_order_remove(&o, it->bytes, it->len);
      ok = got == it;
      memmove(&m.items[victim], &m.items[victim + 1],
              (m.n - victim - 1) * sizeof m.items[0]);
      m.n--;
      free(it);
    }
    if (ok && step % 97 == 0) {
      key_make(&p, &probe);
      ok = order_matches(&o, &m, &probe);
    }
    if (ok && (step % 1009 == 0 || m.n < 64))
      ok = bugs != 0 || kv_order_valid(&o);
    if (step % 4096 == 0)
      kv_order_trim(&o);
  }
  key_make(&p, &probe);
  ok = ok && order_matches(&o, &m, &probe) && (bugs || kv_order_valid(&o));
  while (ok && drain && m.n > 0) { /* from the middle out, to merge */
    size_t victim = m.n / 2;
    struct item *it = m.items[victim];
    ok = kv_order_remove(&o, it->bytes, it->len) == it;
    memmove(&m.items[victim], &m.items[victim + 1],
            (m.n - victim - 1) * sizeof m.items[0]);
    m.n--;
    free(it);
    if (ok && m.n % 257 == 0)
      ok = kv_order_valid(&o) && order_matches(&o, &m, &probe);
  }
  if (ok && drain)
    ok = kv_order_count(&o) == 0 && kv_order_valid(&o);
  for (size_t i = 0; i < m.n; i++)
    free(m.items[i]);
  free(m.items);
  kv_order_free(&o);
  return ok;
}

static void agrees_with_a_sorted_array_small(void) {
  for (uint64_t seed = 1; seed <= 12; seed++)
    CHECK(run_seed(seed, 6000, 300, true, 0));
}

/* Thousands of keys: three and four levels, splits and merges of inner
 * nodes, the root growing and shrinking. */
static void agrees_with_a_sorted_array_large(void) {
  CHECK(run_seed(101, 60000, 30000, true, 0));
  CHECK(run_seed(102, 30000, 3000, true, 0));
}

/* Keys in ascending and descending order: every insert at one end, each
 * split leaving a half-full node behind, so 20,000 keys make four levels. */
static void agrees_on_sequential_keys(void) {
  enum { N_SEQ = 20000 };
  struct item *items = calloc(N_SEQ, sizeof *items);
  CHECK(items != NULL);
  for (int dir = 0; dir < 2; dir++) {
    struct kv_order o;
    kv_order_init(&o, (struct allocator){0}, item_key, item_leaf);
    for (size_t i = 0; i < N_SEQ; i++) {
      size_t k = dir ? N_SEQ - 1 - i : i;
      items[k].len = (size_t)snprintf((char *)items[k].bytes, KEY_BYTES_MAX,
                                      "user:session:%08zu", k);
      if (kv_order_reserve(&o, 1) != 0)
        break;
      kv_order_insert(&o, &items[k]);
    }
    bool ok =
        kv_order_valid(&o) && kv_order_count(&o) == N_SEQ && o.height == 4;
    size_t i = 0;
    for (struct kv_order_pos pos = kv_order_first_ge(&o, NULL, 0);
         ok && kv_order_at(pos) != NULL; pos = kv_order_next(pos))
      ok = kv_order_at(pos) == &items[i++];
    ok = ok && i == N_SEQ;
    for (size_t j = 0; ok && j < N_SEQ; j++) {
      const struct item *it = &items[dir ? j : N_SEQ - 1 - j];
      ok = kv_order_remove(&o, it->bytes, it->len) == it;
      if (ok && j % 1000 == 0)
        ok = kv_order_valid(&o);
    }
    ok = ok && kv_order_valid(&o) && kv_order_count(&o) == 0;
    kv_order_free(&o);
    if (!ok)
      free(items);
    CHECK(ok);
  }
  free(items);
}

/* The checks above catch a compare that stops at the inline bytes: keys
 * that share them and have one length then come out in insertion order. */
static void a_compare_stopping_at_the_prefix_is_caught(void) {
  CHECK(run_seed(7, 3000, 300, false, 0));
  CHECK(!run_seed(7, 3000, 300, false, KV_ORDER_BUG_PREFIX_ONLY));
}

/* Reserving fails cleanly at any allocation; once it succeeded, inserts
 * take no memory at all. */
static void memory_comes_only_from_reserve(void) {
  static struct item items[2000];
  for (long fail_at = 1; fail_at <= 40; fail_at++) {
    struct failing_alloc f = {0, fail_at};
    struct kv_order o;
    kv_order_init(&o, failing_allocator(&f), item_key, item_leaf);
    size_t n = 0;
    while (n < 2000) {
      items[n].len = (size_t)snprintf((char *)items[n].bytes, KEY_BYTES_MAX,
                                      "%05zu", n * 7919 % 2000);
      if (kv_order_reserve(&o, 1) != 0)
        break;
      long calls = f.calls;
      kv_order_insert(&o, &items[n++]);
      CHECK(f.calls == calls);
      kv_order_trim(&o);
    }
    CHECK(n < 2000); /* the failure came, and left a whole tree behind */
    CHECK(kv_order_valid(&o) && kv_order_count(&o) == n);
    f.fail_at = 0;
    CHECK(kv_order_reserve(&o, 100) == 0);
    kv_order_free(&o);
  }
}

/* A reservation for many inserts is bounded by the half-full rule, not by
 * one leaf per key: 10,000 inserts into an empty tree reserve 625 leaves
 * and 42 inner nodes, and those suffice, with removes among the inserts
 * and keys in an order that splits everywhere. */
static void a_large_reservation_is_bounded_and_enough(void) {
  enum { N_KEYS = 10000 };
  struct item *items = calloc(N_KEYS, sizeof *items);
  CHECK(items != NULL);
  struct kv_order o;
  kv_order_init(&o, (struct allocator){0}, item_key, item_leaf);
  bool ok = kv_order_reserve(&o, N_KEYS) == 0 && o.n_spare_leaves == 625 &&
            o.n_spare_inners == 42;
  for (size_t i = 0; ok && i < N_KEYS; i++) {
    struct item *it = &items[i * 7919 % N_KEYS];
    it->len = (size_t)snprintf((char *)it->bytes, KEY_BYTES_MAX, "k%zu",
                               i * 7919 % N_KEYS);
    kv_order_insert(&o, it);
    if (i % 3 == 2) { /* and take one of the earlier ones out again */
      const struct item *gone = &items[(i / 3) * 7919 % N_KEYS];
      ok = kv_order_remove(&o, gone->bytes, gone->len) == gone;
    }
  }
  ok = ok && kv_order_valid(&o) && kv_order_count(&o) == N_KEYS - N_KEYS / 3;
  kv_order_free(&o);
  free(items);
  CHECK(ok);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(agrees_with_a_sorted_array_small),
      TEST(agrees_with_a_sorted_array_large),
      TEST(agrees_on_sequential_keys),
      TEST(a_compare_stopping_at_the_prefix_is_caught),
      TEST(memory_comes_only_from_reserve),
      TEST(a_large_reservation_is_bounded_and_enough),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
