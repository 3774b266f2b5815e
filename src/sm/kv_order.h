/* The key-value store's ordered index: every key in byte order, for SCAN,
 * KEYS and ranges (src/sm/kvstore.c).
 *
 * Why a B+ tree: a search in the skip list it replaces loaded one node per
 * key compared, each a cache miss, and that search was the largest cost of
 * applying a write. Here a node holds up to KV_ORDER_FANOUT keys, and next
 * to each key its length and first KV_ORDER_PREFIX_BYTES bytes, as two
 * big-endian integers: a search reads a few nodes and decides almost every
 * comparison on integers inside them; only keys that agree on their first
 * 16 bytes make it read the key itself (through the caller's key_of).
 *
 * The index holds items (the store's entries), never copies of keys. A leaf
 * keeps items in order and links to the next leaf; each item keeps a
 * pointer to its leaf (kv_order_leaf_fn), so that a rewrite of a key, the
 * commonest write, swaps one pointer without searching. An inner node
 * keeps its children and, for every child but the first, that child's
 * smallest key, as the prefix and the leftmost leaf under the child (whose
 * first item has the whole key). Every node but the root is at least half
 * full, which bounds the height (KV_ORDER_HEIGHT_MAX covers more keys than
 * memory can hold).
 *
 * Nothing here depends on addresses or chance: the same inserts and removes
 * build the same tree on every replica (the order it yields is byte order
 * whatever the tree, so replicas could differ in shape without harm; they
 * do not).
 *
 * Memory is taken only by kv_order_reserve: an insert may split a node at
 * every level, and must not fail once the store has started to change, so
 * the store reserves the worst case for the keys a command may add before
 * it applies. The spare nodes left over are kept up to what one insert
 * needs and the rest freed by kv_order_trim. */
#ifndef SABHA_SM_KV_ORDER_H
#define SABHA_SM_KV_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/allocator.h"

#define KV_ORDER_FANOUT 32u       /* keys per leaf, children per inner node */
#define KV_ORDER_PREFIX_BYTES 16u /* of each key, kept in its node */
#define KV_ORDER_HEIGHT_MAX 16u   /* levels; 2 * 16^15 keys need no more */

/* An item's key. Must stay the same while the item is in the index. */
typedef const uint8_t *(*kv_order_key_fn)(const void *item, size_t *len);
/* Where an item keeps the leaf that holds it: the index writes it whenever
 * the item lands in a leaf, and reads it to replace the item without a
 * search. */
typedef struct kv_order_node **(*kv_order_leaf_fn)(void *item);

/* A deliberately broken comparison, for showing the tests catch it: keys
 * equal in their first 16 bytes are told apart by length alone. */
#define KV_ORDER_BUG_PREFIX_ONLY 1u

struct kv_order_node;

/* Private: read only through the functions below. */
struct kv_order {
  struct kv_order_node *root; /* NULL when empty */
  uint32_t height;            /* levels, leaves included; 0 when empty */
  uint32_t bugs;              /* KV_ORDER_BUG_*; 0 but in tests */
  size_t n;                   /* items */
  size_t n_leaves, n_inners;  /* in the tree, not counting spares */
  struct kv_order_node *spare_leaves, *spare_inners; /* linked by next */
  size_t n_spare_leaves, n_spare_inners;
  struct allocator alloc;
  kv_order_key_fn key_of;
  kv_order_leaf_fn leaf_of;
};

/* A place in the order: an item, or the end. */
struct kv_order_pos {
  const struct kv_order_node *leaf; /* NULL: the end */
  uint32_t i;
};

void kv_order_init(struct kv_order *o, struct allocator alloc,
                   kv_order_key_fn key_of, kv_order_leaf_fn leaf_of);
/* Frees every node; the items are the caller's. */
void kv_order_free(struct kv_order *o);

/* Makes sure the next n inserts (with any removes between them) cannot
 * fail. Returns 0 or SABHA_ENOMEM; the index is unchanged either way. */
int kv_order_reserve(struct kv_order *o, size_t n);
/* Frees the spare nodes beyond what one insert needs. */
void kv_order_trim(struct kv_order *o);

/* Adds an item whose key is not in the index (reserved first). */
void kv_order_insert(struct kv_order *o, void *item);
/* Removes the item with this key, which must be there, and returns it. */
void *kv_order_remove(struct kv_order *o, const uint8_t *key, size_t len);
/* Puts `new_item` where `old_item` is; both have the same key. No search:
 * the old item says which leaf holds it, and separators name leaves. */
void kv_order_replace(struct kv_order *o, const void *old_item, void *new_item);
/* A hint: the leaf that holds `item` will be read soon (a replace). */
void kv_order_prefetch(const struct kv_order *o, const void *item);

size_t kv_order_count(const struct kv_order *o);
/* Bytes of the nodes, in the tree and spare (as asked of the allocator). */
size_t kv_order_bytes(const struct kv_order *o);

/* The first item whose key is >= key in byte order (memcmp, then the shorter
 * first), and the steps from there. */
struct kv_order_pos kv_order_first_ge(const struct kv_order *o,
                                      const uint8_t *key, size_t len);
void *kv_order_at(struct kv_order_pos pos); /* NULL at the end */
struct kv_order_pos kv_order_next(struct kv_order_pos pos);

/* Whether the tree keeps its rules: keys in order, every separator its
 * child's smallest item, fill, height, the leaf links and the counts. For
 * tests; linear in the size. */
bool kv_order_valid(const struct kv_order *o);

#endif
