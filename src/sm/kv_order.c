/* The key-value store's ordered index, a B+ tree (see kv_order.h for why,
 * and for its rules).
 *
 * Searches descend from the root, binary-searching each node's keys. The
 * paths are kept in fixed arrays (the height is bounded), so nothing here
 * recurses. An insert into a full leaf first passes keys to a sibling with
 * room (leaf_spill); failing that it splits the leaf into halves of 16 and
 * 17 and pushes a separator up, splitting inner nodes the same way. A
 * remove that leaves a node under half full borrows one key from a sibling
 * that can spare it, or merges with one. A separator is the smallest key
 * under its child and names the leftmost leaf there, so the only separator
 * a change of a leaf's first key can touch is the one where the path from
 * the root last went right of a first child (fix_min). */
#include "sm/kv_order.h"

#include <assert.h>
#include <string.h>

#include "sabha/error.h"

#define FANOUT KV_ORDER_FANOUT
#define FILL_MIN (KV_ORDER_FANOUT / 2)
#define PREFIX KV_ORDER_PREFIX_BYTES
#define HEIGHT_MAX KV_ORDER_HEIGHT_MAX

struct kv_order_node {
  uint32_t n;                 /* items (leaf) or children (inner) */
  uint32_t level;             /* 0: a leaf */
  struct kv_order_node *next; /* leaf: the next one in order; spare: too */
  /* Slot i's key: its first 16 bytes as two big-endian integers, zero
   * padded, and its length. The arrays are apart so that a search's
   * compares read a few cache lines of hi[] only. Inner: slot 0 unused. */
  uint64_t hi[FANOUT];
  uint64_t lo[FANOUT];
  uint32_t len[FANOUT];
  /* Leaf: the items. Inner: for slot i >= 1, the leftmost leaf under
   * child i, whose first item is the separator; a leaf, not the item, so
   * that rewriting a key never has to find its separators. */
  void *item[FANOUT];
  struct kv_order_node *child[]; /* inner only: FANOUT of them */
};

#define LEAF_BYTES (sizeof(struct kv_order_node))
#define INNER_BYTES                                                            \
  (sizeof(struct kv_order_node) + FANOUT * sizeof(struct kv_order_node *))

/* A key being looked for, in the form of a slot's key. */
struct probe {
  uint64_t hi, lo;
  size_t len;
  const uint8_t *bytes;
};

/* Bytes [0, n) of p (n <= 8 taken), as a big-endian integer padded with
 * zeros: integer order is then memcmp order. */
static uint64_t prefix_word(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; i++)
    v = v << 8 | (i < n ? p[i] : 0u);
  return v;
}

static struct probe probe_of(const uint8_t *key, size_t len) {
  assert(len <= UINT32_MAX && (key != NULL || len == 0));
  struct probe k = {0, 0, len, key};
  if (len > 0)
    k.hi = prefix_word(key, len);
  if (len > 8)
    k.lo = prefix_word(key + 8, len - 8);
  return k;
}

static struct probe probe_of_item(const struct kv_order *o, const void *item) {
  size_t len = 0;
  const uint8_t *key = o->key_of(item, &len);
  return probe_of(key, len);
}

/* Slot i of x against k, in byte order. Equal prefixes leave the order to
 * the lengths unless both keys go on past them: a key that ends inside the
 * prefix is padded with zeros, so it equals the other's prefix only when it
 * is a prefix of the other (or the other has zeros there too, and is then
 * longer). Only then are the keys' own bytes read. */
static int slot_cmp(const struct kv_order *o, uint32_t bugs,
                    const struct kv_order_node *x, uint32_t i,
                    const struct probe *k) {
  if (x->hi[i] != k->hi)
    return x->hi[i] < k->hi ? -1 : 1;
  if (x->lo[i] != k->lo)
    return x->lo[i] < k->lo ? -1 : 1;
  size_t a = x->len[i], b = k->len;
  if (a > PREFIX && b > PREFIX && !(bugs & KV_ORDER_BUG_PREFIX_ONLY)) {
    const void *item = x->item[i];
    if (x->level > 0)
      item = ((const struct kv_order_node *)item)->item[0];
    size_t a_len = 0;
    const uint8_t *bytes = o->key_of(item, &a_len);
    assert(a_len == a);
    int c = memcmp(bytes + PREFIX, k->bytes + PREFIX, (a < b ? a : b) - PREFIX);
    if (c != 0)
      return c < 0 ? -1 : 1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/* A leaf's first slot whose key is >= k (x->n when none is). */
static uint32_t leaf_lower_bound(const struct kv_order *o,
                                 const struct kv_order_node *x,
                                 const struct probe *k) {
  uint32_t lo = 0, hi = x->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (slot_cmp(o, o->bugs, x, mid, k) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The child of an inner node whose range holds k: the last i >= 1 whose
 * separator is <= k, or 0. *equal: that separator is k. */
static uint32_t inner_child(const struct kv_order *o,
                            const struct kv_order_node *x,
                            const struct probe *k, bool *equal) {
  uint32_t lo = 1, hi = x->n;
  *equal = false;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = slot_cmp(o, o->bugs, x, mid, k);
    if (c <= 0) {
      lo = mid + 1;
      *equal = c == 0;
    } else {
      hi = mid;
    }
  }
  return lo - 1; /* after an equal separator every later one was above k */
}

/* ---- Slots and nodes --------------------------------------------------- */

/* Moves n slots (keys and items) from src[si] to dst[di]; the ranges may
 * overlap within one node. */
static void slots_move(struct kv_order_node *dst, uint32_t di,
                       const struct kv_order_node *src, uint32_t si,
                       uint32_t n) {
  if (n == 0)
    return;
  assert(di + n <= FANOUT && si + n <= FANOUT);
  memmove(&dst->hi[di], &src->hi[si], n * sizeof dst->hi[0]);
  memmove(&dst->lo[di], &src->lo[si], n * sizeof dst->lo[0]);
  memmove(&dst->len[di], &src->len[si], n * sizeof dst->len[0]);
  memmove(&dst->item[di], &src->item[si], n * sizeof dst->item[0]);
}

static void children_move(struct kv_order_node *dst, uint32_t di,
                          const struct kv_order_node *src, uint32_t si,
                          uint32_t n) {
  if (n == 0)
    return;
  assert(dst->level > 0 && di + n <= FANOUT && si + n <= FANOUT);
  memmove(&dst->child[di], &src->child[si], n * sizeof dst->child[0]);
}

static void slot_copy(struct kv_order_node *dst, uint32_t di,
                      const struct kv_order_node *src, uint32_t si) {
  dst->hi[di] = src->hi[si];
  dst->lo[di] = src->lo[si];
  dst->len[di] = src->len[si];
  dst->item[di] = src->item[si];
}

static void slot_set(struct kv_order_node *x, uint32_t i, const struct probe *k,
                     void *item) {
  x->hi[i] = k->hi;
  x->lo[i] = k->lo;
  x->len[i] = (uint32_t)k->len;
  x->item[i] = item;
}

/* Makes inner slot i the separator naming `leaf` (a leftmost leaf). */
static void sep_set_leaf(struct kv_order_node *x, uint32_t i,
                         struct kv_order_node *leaf) {
  assert(x->level > 0 && leaf->level == 0 && leaf->n > 0);
  x->hi[i] = leaf->hi[0];
  x->lo[i] = leaf->lo[0];
  x->len[i] = leaf->len[0];
  x->item[i] = leaf;
}

/* Tells items [from, to) of a leaf that they live there. */
static void leaf_claim(const struct kv_order *o, struct kv_order_node *leaf,
                       uint32_t from, uint32_t to) {
  assert(leaf->level == 0 && to <= leaf->n);
  for (uint32_t i = from; i < to; i++)
    *o->leaf_of(leaf->item[i]) = leaf;
}

/* A reserved node for `level`. */
static struct kv_order_node *node_take(struct kv_order *o, uint32_t level) {
  struct kv_order_node **spares =
      level == 0 ? &o->spare_leaves : &o->spare_inners;
  size_t *n_spares = level == 0 ? &o->n_spare_leaves : &o->n_spare_inners;
  struct kv_order_node *x = *spares;
  assert(x != NULL && *n_spares > 0); /* kv_order_reserve first */
  *spares = x->next;
  (*n_spares)--;
  x->n = 0;
  x->level = level;
  x->next = NULL;
  if (level == 0)
    o->n_leaves++;
  else
    o->n_inners++;
  return x;
}

/* Back to the spares (kv_order_trim frees what is too many). */
static void node_give(struct kv_order *o, struct kv_order_node *x) {
  if (x->level == 0) {
    o->n_leaves--;
    x->next = o->spare_leaves;
    o->spare_leaves = x;
    o->n_spare_leaves++;
  } else {
    o->n_inners--;
    x->next = o->spare_inners;
    o->spare_inners = x;
    o->n_spare_inners++;
  }
}

/* ---- Set-up ------------------------------------------------------------ */

void kv_order_init(struct kv_order *o, struct allocator alloc,
                   kv_order_key_fn key_of, kv_order_leaf_fn leaf_of) {
  assert(o != NULL && key_of != NULL && leaf_of != NULL);
  memset(o, 0, sizeof *o);
  o->alloc = alloc;
  o->key_of = key_of;
  o->leaf_of = leaf_of;
}

static void spares_free(struct kv_order *o, size_t keep_leaves,
                        size_t keep_inners) {
  while (o->n_spare_leaves > keep_leaves) {
    struct kv_order_node *x = o->spare_leaves;
    o->spare_leaves = x->next;
    o->n_spare_leaves--;
    allocator_free(&o->alloc, x);
  }
  while (o->n_spare_inners > keep_inners) {
    struct kv_order_node *x = o->spare_inners;
    o->spare_inners = x->next;
    o->n_spare_inners--;
    allocator_free(&o->alloc, x);
  }
}

void kv_order_free(struct kv_order *o) {
  if (o == NULL)
    return;
  /* Depth first with an explicit stack: at most FANOUT - 1 siblings wait
   * per level. */
  struct kv_order_node *stack[HEIGHT_MAX * FANOUT];
  size_t n = 0;
  if (o->root != NULL)
    stack[n++] = o->root;
  while (n > 0) {
    struct kv_order_node *x = stack[--n];
    if (x->level > 0)
      for (uint32_t i = 0; i < x->n; i++) {
        assert(n < HEIGHT_MAX * FANOUT);
        stack[n++] = x->child[i];
      }
    allocator_free(&o->alloc, x);
  }
  o->root = NULL;
  o->height = 0;
  o->n = o->n_leaves = o->n_inners = 0;
  spares_free(o, 0, 0);
}

/* The tallest tree n items can make: every node but the root half full,
 * an inner root with two children. */
static uint32_t height_max_for(size_t n) {
  uint32_t h = 1;
  size_t items_min = 2 * (size_t)FILL_MIN; /* for height h + 1 */
  while (items_min <= n && h < HEIGHT_MAX) {
    h++;
    if (items_min > SIZE_MAX / FILL_MIN)
      break;
    items_min *= FILL_MIN;
  }
  return h;
}

/* Allocates spare nodes for `level` (leaves, or any inner level) until
 * there are `want`. */
static int spares_grow(struct kv_order *o, uint32_t level, size_t want) {
  struct kv_order_node **spares =
      level == 0 ? &o->spare_leaves : &o->spare_inners;
  size_t *n_spares = level == 0 ? &o->n_spare_leaves : &o->n_spare_inners;
  while (*n_spares < want) {
    struct kv_order_node *x =
        allocator_malloc(&o->alloc, level == 0 ? LEAF_BYTES : INNER_BYTES);
    if (x == NULL)
      return SABHA_ENOMEM;
    x->level = level;
    x->next = *spares;
    *spares = x;
    (*n_spares)++;
  }
  return 0;
}

/* How many more nodes the next n inserts may need, by two bounds, each
 * holding whatever removes come between (they only give nodes back to the
 * spares, which later splits take again):
 * - per insert: at most one leaf (the first, or a split's) and, for each
 *   inner level, a split, or a new root: height - 1 inner nodes, with the
 *   height that of the tree after it;
 * - per level: a node is only made by a split or a new root, and right
 *   after that every node of its level but the root is at least half full,
 *   so a level of c children never has more than max(1, c / 16) nodes:
 *   with at most o->n + n items, the tree never holds more nodes than
 *   that, level by level, whatever the order of the changes. A large MSET
 *   into a small store needs far fewer than one leaf per key. */
static void nodes_needed(const struct kv_order *o, size_t n, size_t *leaves,
                         size_t *inners) {
  uint32_t h = height_max_for(o->n + n);
  assert(h <= HEIGHT_MAX);
  size_t below = (o->n + n) / FILL_MIN; /* nodes of the level below, max */
  size_t leaves_max = below > 1 ? below : 1, inners_max = 0;
  for (uint32_t level = 1; level < h; level++) {
    below = below / FILL_MIN;
    inners_max += below > 1 ? below : 1;
  }
  size_t per_insert_leaves = n, per_insert_inners = n * (h - 1);
  size_t level_leaves = leaves_max > o->n_leaves ? leaves_max - o->n_leaves : 0;
  size_t level_inners = inners_max > o->n_inners ? inners_max - o->n_inners : 0;
  *leaves = per_insert_leaves < level_leaves ? per_insert_leaves : level_leaves;
  *inners = per_insert_inners < level_inners ? per_insert_inners : level_inners;
}

int kv_order_reserve(struct kv_order *o, size_t n) {
  assert(o != NULL);
  if (n == 0)
    return 0;
  size_t leaves, inners;
  nodes_needed(o, n, &leaves, &inners);
  if (spares_grow(o, 0, leaves) != 0 || spares_grow(o, 1, inners) != 0)
    return SABHA_ENOMEM;
  return 0;
}

void kv_order_trim(struct kv_order *o) {
  assert(o != NULL);
  spares_free(o, 1, o->height);
}

size_t kv_order_count(const struct kv_order *o) {
  assert(o != NULL);
  return o->n;
}

size_t kv_order_bytes(const struct kv_order *o) {
  assert(o != NULL);
  return (o->n_leaves + o->n_spare_leaves) * LEAF_BYTES +
         (o->n_inners + o->n_spare_inners) * INNER_BYTES;
}

/* ---- Changes ----------------------------------------------------------- */

/* The way from the root to a leaf: path[d] and the child taken there. */
struct path {
  struct kv_order_node *node[HEIGHT_MAX];
  uint32_t child[HEIGHT_MAX];
  uint32_t depth; /* inner nodes on it */
};

static struct kv_order_node *descend(const struct kv_order *o,
                                     const struct probe *k, struct path *p) {
  struct kv_order_node *x = o->root;
  p->depth = 0;
  while (x->level > 0) {
    bool equal;
    uint32_t c = inner_child(o, x, k, &equal);
    assert(p->depth < HEIGHT_MAX);
    p->node[p->depth] = x;
    p->child[p->depth] = c;
    p->depth++;
    x = x->child[c];
  }
  return x;
}

/* The leaf at the end of p has a new first key: the one separator equal to
 * the old one, if any, is where the path last went right of a first child. */
static void fix_min(struct path *p, struct kv_order_node *leaf) {
  assert(leaf->level == 0 && leaf->n > 0);
  for (uint32_t d = p->depth; d-- > 0;)
    if (p->child[d] > 0) {
      assert(p->node[d]->item[p->child[d]] == leaf);
      sep_set_leaf(p->node[d], p->child[d], leaf);
      return;
    }
}

/* A separator on its way up from a split (item: the leaf it names). */
struct sep {
  uint64_t hi, lo;
  uint32_t len;
  void *item;
};

static struct sep sep_of(const struct kv_order_node *x, uint32_t i) {
  struct sep s = {x->hi[i], x->lo[i], x->len[i], x->item[i]};
  return s;
}

static void sep_put(struct kv_order_node *x, uint32_t i, const struct sep *s) {
  x->hi[i] = s->hi;
  x->lo[i] = s->lo;
  x->len[i] = s->len;
  x->item[i] = s->item;
}

/* Puts separator s and its child right of child pos - 1 in inner node x,
 * which has room. */
static void inner_put(struct kv_order_node *x, uint32_t pos,
                      const struct sep *s, struct kv_order_node *child) {
  assert(x->n < FANOUT && pos >= 1 && pos <= x->n);
  slots_move(x, pos + 1, x, pos, x->n - pos);
  children_move(x, pos + 1, x, pos, x->n - pos);
  sep_put(x, pos, s);
  x->child[pos] = child;
  x->n++;
}

/* Before splitting the full leaf x (at p's end) to insert k at slot s,
 * tries to pass keys to a sibling with room: the left one takes all it can
 * hold, or the right one does. Keys that arrive in order then fill leaves
 * whole instead of leaving each half empty, and random ones fill them
 * further too. Returns whether k went in. */
static bool leaf_spill(struct kv_order *o, struct path *p,
                       struct kv_order_node *x, uint32_t s,
                       const struct probe *k, void *item) {
  if (p->depth == 0)
    return false;
  struct kv_order_node *parent = p->node[p->depth - 1];
  uint32_t c = p->child[p->depth - 1];
  struct kv_order_node *l = c > 0 ? parent->child[c - 1] : NULL;
  struct kv_order_node *r = c + 1 < parent->n ? parent->child[c + 1] : NULL;
  if (l != NULL && l->n < FANOUT) {
    /* l's keys, x's with k at s, then as many of x's as fit move to l. */
    uint32_t m = FANOUT - l->n; /* to move, counting k */
    if (s < m) {
      slots_move(l, l->n, x, 0, s);
      slot_set(l, l->n + s, k, item);
      slots_move(l, l->n + s + 1, x, s, m - s - 1);
      slots_move(x, 0, x, m - 1, FANOUT - (m - 1));
      x->n = FANOUT - (m - 1);
    } else {
      slots_move(l, l->n, x, 0, m);
      slots_move(x, 0, x, m, s - m);
      slot_set(x, s - m, k, item);
      slots_move(x, s - m + 1, x, s, FANOUT - s);
      x->n = FANOUT - m + 1;
    }
    uint32_t l_n = l->n;
    l->n = FANOUT;
    leaf_claim(o, l, l_n, FANOUT);
    leaf_claim(o, x, s < m ? 0 : s - m, s < m ? 0 : s - m + 1);
    sep_set_leaf(parent, c, x);
    return true;
  }
  if (r != NULL && r->n < FANOUT) {
    /* x's last keys (k among them if it falls there) fill r's front. */
    uint32_t m = FANOUT - r->n;
    slots_move(r, m, r, 0, r->n);
    if (s > FANOUT - m) {
      uint32_t before = s - (FANOUT - m + 1); /* x's keys in r ahead of k */
      slots_move(r, 0, x, FANOUT - m + 1, before);
      slot_set(r, before, k, item);
      slots_move(r, before + 1, x, s, FANOUT - s);
      x->n = FANOUT - m + 1;
    } else {
      slots_move(r, 0, x, FANOUT - m, m);
      x->n = FANOUT - m;
      slots_move(x, s + 1, x, s, x->n - s);
      slot_set(x, s, k, item);
      x->n++;
      if (s == 0)
        fix_min(p, x);
    }
    r->n = FANOUT;
    leaf_claim(o, r, 0, m);
    if (s <= FANOUT - m)
      leaf_claim(o, x, s, s + 1);
    sep_set_leaf(parent, c + 1, r);
    return true;
  }
  return false;
}

/* Splits the full leaf x to insert k at slot s; returns the new right half
 * (its first key is the separator to push up). */
static struct kv_order_node *leaf_split(struct kv_order *o,
                                        struct kv_order_node *x, uint32_t s,
                                        const struct probe *k, void *item) {
  const uint32_t left = (FANOUT + 1) / 2;
  struct kv_order_node *r = node_take(o, 0);
  struct kv_order_node *into = x;
  if (s < left) {
    slots_move(r, 0, x, left - 1, FANOUT - (left - 1));
    r->n = FANOUT - (left - 1);
    x->n = left - 1;
  } else {
    slots_move(r, 0, x, left, FANOUT - left);
    r->n = FANOUT - left;
    x->n = left;
    into = r;
    s -= left;
  }
  slots_move(into, s + 1, into, s, into->n - s);
  slot_set(into, s, k, item);
  into->n++;
  r->next = x->next;
  x->next = r;
  leaf_claim(o, r, 0, r->n);
  if (into == x)
    leaf_claim(o, x, s, s + 1);
  return r;
}

/* Splits the full inner node x to put (*up, up_child) right of child
 * pos - 1; leaves in *up the separator to push further and returns the new
 * right half. */
static struct kv_order_node *inner_split(struct kv_order *o,
                                         struct kv_order_node *x, uint32_t pos,
                                         struct sep *up,
                                         struct kv_order_node *up_child) {
  /* All F + 1 children in order, with their separators; rare enough (one
   * insert in hundreds) that a copy costs nothing. */
  struct sep seps[FANOUT + 1];
  struct kv_order_node *children[FANOUT + 1];
  for (uint32_t i = 0, j = 0; i <= FANOUT; i++) {
    if (i == pos) {
      seps[i] = *up;
      children[i] = up_child;
    } else {
      seps[i] = sep_of(x, j);
      children[i] = x->child[j++];
    }
  }
  const uint32_t left = (FANOUT + 1) / 2;
  struct kv_order_node *r = node_take(o, x->level);
  x->n = left;
  r->n = FANOUT + 1 - left;
  for (uint32_t i = 0; i <= FANOUT; i++) {
    struct kv_order_node *dst = i < left ? x : r;
    uint32_t di = i < left ? i : i - left;
    sep_put(dst, di, &seps[i]);
    dst->child[di] = children[i];
  }
  *up = seps[left]; /* r's first child's smallest: r's */
  return r;
}

void kv_order_insert(struct kv_order *o, void *item) {
  assert(o != NULL && item != NULL);
  struct probe k = probe_of_item(o, item);
  if (o->root == NULL) {
    struct kv_order_node *leaf = node_take(o, 0);
    slot_set(leaf, 0, &k, item);
    leaf->n = 1;
    leaf_claim(o, leaf, 0, 1);
    o->root = leaf;
    o->height = 1;
    o->n = 1;
    return;
  }
  struct path p;
  struct kv_order_node *x = descend(o, &k, &p);
  uint32_t s = leaf_lower_bound(o, x, &k);
  o->n++;
  if (x->n < FANOUT) {
    slots_move(x, s + 1, x, s, x->n - s);
    slot_set(x, s, &k, item);
    x->n++;
    leaf_claim(o, x, s, s + 1);
    if (s == 0)
      fix_min(&p, x); /* only under a broken compare: s == 0 is leftmost */
    return;
  }
  if (leaf_spill(o, &p, x, s, &k, item))
    return;
  struct kv_order_node *right = leaf_split(o, x, s, &k, item);
  if (s == 0)
    fix_min(&p, x);
  struct sep up = {right->hi[0], right->lo[0], right->len[0], right};
  for (uint32_t d = p.depth; d-- > 0;) {
    struct kv_order_node *parent = p.node[d];
    uint32_t pos = p.child[d] + 1;
    if (parent->n < FANOUT) {
      inner_put(parent, pos, &up, right);
      return;
    }
    right = inner_split(o, parent, pos, &up, right);
  }
  struct kv_order_node *root = node_take(o, o->root->level + 1);
  root->child[0] = o->root;
  root->child[1] = right;
  sep_put(root, 1, &up);
  root->n = 2;
  o->root = root;
  o->height++;
  assert(o->height <= HEIGHT_MAX);
}

/* Moves the last key (or child) of l, left of x under parent slot c, to x's
 * front. */
static void borrow_left(const struct kv_order *o, struct kv_order_node *parent,
                        uint32_t c, struct kv_order_node *l,
                        struct kv_order_node *x) {
  if (x->level == 0) {
    slots_move(x, 1, x, 0, x->n);
    slot_copy(x, 0, l, l->n - 1);
    *o->leaf_of(x->item[0]) = x;
    sep_set_leaf(parent, c, x);
  } else {
    slots_move(x, 1, x, 0, x->n);
    children_move(x, 1, x, 0, x->n);
    slot_copy(x, 1, parent, c); /* the old first child's smallest */
    x->child[0] = l->child[l->n - 1];
    slot_copy(parent, c, l, l->n - 1);
  }
  l->n--;
  x->n++;
}

/* Moves the first key (or child) of r, right of x (parent slot c + 1), to
 * x's end. */
static void borrow_right(const struct kv_order *o, struct kv_order_node *parent,
                         uint32_t c, struct kv_order_node *x,
                         struct kv_order_node *r) {
  if (x->level == 0) {
    slot_copy(x, x->n, r, 0);
    *o->leaf_of(x->item[x->n]) = x;
    slots_move(r, 0, r, 1, r->n - 1);
    sep_set_leaf(parent, c + 1, r);
  } else {
    slot_copy(x, x->n, parent, c + 1);
    x->child[x->n] = r->child[0];
    slot_copy(parent, c + 1, r, 1);
    slots_move(r, 0, r, 1, r->n - 1);
    children_move(r, 0, r, 1, r->n - 1);
  }
  x->n++;
  r->n--;
}

/* Moves everything of r (parent's child li + 1) into l (child li) and
 * drops r. */
static void merge(struct kv_order *o, struct kv_order_node *parent, uint32_t li,
                  struct kv_order_node *l, struct kv_order_node *r) {
  assert(l->n + r->n <= FANOUT && parent->child[li + 1] == r);
  if (l->level == 0) {
    slots_move(l, l->n, r, 0, r->n);
    l->next = r->next;
    for (uint32_t i = 0; i < r->n; i++)
      *o->leaf_of(r->item[i]) = l;
  } else {
    slot_copy(l, l->n, parent, li + 1);
    l->child[l->n] = r->child[0];
    slots_move(l, l->n + 1, r, 1, r->n - 1);
    children_move(l, l->n + 1, r, 1, r->n - 1);
  }
  l->n += r->n;
  slots_move(parent, li + 1, parent, li + 2, parent->n - li - 2);
  children_move(parent, li + 1, parent, li + 2, parent->n - li - 2);
  parent->n--;
  node_give(o, r);
}

/* Refills nodes on p that fell under half full, from the leaf x up. */
static void rebalance(struct kv_order *o, struct path *p,
                      struct kv_order_node *x) {
  for (uint32_t d = p->depth; d-- > 0 && x->n < FILL_MIN;) {
    struct kv_order_node *parent = p->node[d];
    uint32_t c = p->child[d];
    assert(parent->child[c] == x && parent->n >= 2);
    struct kv_order_node *l = c > 0 ? parent->child[c - 1] : NULL;
    struct kv_order_node *r = c + 1 < parent->n ? parent->child[c + 1] : NULL;
    if (l != NULL && l->n > FILL_MIN) {
      borrow_left(o, parent, c, l, x);
      return;
    }
    if (r != NULL && r->n > FILL_MIN) {
      borrow_right(o, parent, c, x, r);
      return;
    }
    if (l != NULL)
      merge(o, parent, c - 1, l, x);
    else
      merge(o, parent, c, x, r);
    x = parent;
  }
  struct kv_order_node *root = o->root;
  if (root->level > 0 && root->n == 1) {
    o->root = root->child[0];
    o->height--;
    node_give(o, root);
  }
}

void *kv_order_remove(struct kv_order *o, const uint8_t *key, size_t len) {
  assert(o != NULL && o->root != NULL);
  struct probe k = probe_of(key, len);
  struct path p;
  struct kv_order_node *x = descend(o, &k, &p);
  uint32_t s = leaf_lower_bound(o, x, &k);
  assert(s < x->n && slot_cmp(o, o->bugs, x, s, &k) == 0);
  void *item = x->item[s];
  slots_move(x, s, x, s + 1, x->n - s - 1);
  x->n--;
  o->n--;
  if (x->n == 0) { /* only the root can empty */
    assert(x == o->root && o->n == 0);
    node_give(o, x);
    o->root = NULL;
    o->height = 0;
    return item;
  }
  if (s == 0)
    fix_min(&p, x);
  rebalance(o, &p, x);
  return item;
}

void kv_order_replace(struct kv_order *o, const void *old_item,
                      void *new_item) {
  assert(o != NULL && o->root != NULL && new_item != NULL);
  struct kv_order_node *leaf = *o->leaf_of((void *)old_item);
  assert(leaf != NULL && leaf->level == 0);
  uint32_t i = 0;
  while (i < leaf->n && leaf->item[i] != old_item)
    i++;
  assert(i < leaf->n);
  leaf->item[i] = new_item;
  *o->leaf_of(new_item) = leaf;
}

void kv_order_prefetch(const struct kv_order *o, const void *item) {
  assert(o != NULL && item != NULL);
  const struct kv_order_node *leaf = *o->leaf_of((void *)item);
  if (leaf == NULL)
    return;
  /* What a replace reads: the count, and the items it scans, 8 to a cache
   * line. */
  __builtin_prefetch(leaf);
  for (uint32_t i = 0; i < FANOUT; i += 8)
    __builtin_prefetch(&leaf->item[i], 1);
}

/* ---- Reading ----------------------------------------------------------- */

struct kv_order_pos kv_order_first_ge(const struct kv_order *o,
                                      const uint8_t *key, size_t len) {
  assert(o != NULL);
  struct kv_order_pos pos = {NULL, 0};
  if (o->root == NULL)
    return pos;
  struct probe k = probe_of(key, len);
  const struct kv_order_node *x = o->root;
  while (x->level > 0) {
    bool equal;
    x = x->child[inner_child(o, x, &k, &equal)];
  }
  pos.leaf = x;
  pos.i = leaf_lower_bound(o, x, &k);
  if (pos.i == x->n) {
    pos.leaf = x->next;
    pos.i = 0;
  }
  return pos;
}

void *kv_order_at(struct kv_order_pos pos) {
  if (pos.leaf == NULL)
    return NULL;
  assert(pos.i < pos.leaf->n);
  return pos.leaf->item[pos.i];
}

struct kv_order_pos kv_order_next(struct kv_order_pos pos) {
  assert(pos.leaf != NULL && pos.i < pos.leaf->n);
  if (++pos.i == pos.leaf->n) {
    pos.leaf = pos.leaf->next;
    pos.i = 0;
  }
  return pos;
}

/* ---- Checking ---------------------------------------------------------- */

static bool slot_matches_item(const struct kv_order *o,
                              const struct kv_order_node *x, uint32_t i) {
  struct probe k = probe_of_item(o, x->item[i]);
  return x->hi[i] == k.hi && x->lo[i] == k.lo && x->len[i] == k.len;
}

/* Whether inner slot i names the smallest item under child i. */
static bool separator_valid(const struct kv_order *o,
                            const struct kv_order_node *x, uint32_t i) {
  const struct kv_order_node *m = x->child[i];
  while (m->level > 0)
    m = m->child[0];
  return m->n > 0 && x->item[i] == m && m->hi[0] == x->hi[i] &&
         m->lo[0] == x->lo[i] && m->len[0] == x->len[i];
}

static bool node_valid(const struct kv_order *o, const struct kv_order_node *x,
                       uint32_t depth) {
  if (x->level != o->height - 1 - depth || x->n > FANOUT)
    return false;
  if (x == o->root ? x->n < (x->level > 0 ? 2u : 1u) : x->n < FILL_MIN)
    return false;
  for (uint32_t i = 0; i < x->n; i++) {
    if (x->level == 0 &&
        (!slot_matches_item(o, x, i) || *o->leaf_of(x->item[i]) != x))
      return false;
    if (x->level > 0 && i > 0 && !separator_valid(o, x, i))
      return false;
  }
  return true;
}

bool kv_order_valid(const struct kv_order *o) {
  assert(o != NULL);
  if (o->root == NULL)
    return o->n == 0 && o->height == 0 && o->n_leaves == 0 && o->n_inners == 0;
  if (o->height < 1 || o->height > HEIGHT_MAX)
    return false;
  struct {
    const struct kv_order_node *x;
    uint32_t depth;
  } stack[HEIGHT_MAX * FANOUT];
  size_t n_stack = 0, n_items = 0, n_leaves = 0, n_inners = 0;
  const struct kv_order_node *prev_leaf = NULL;
  stack[n_stack].x = o->root;
  stack[n_stack++].depth = 0;
  while (n_stack > 0) {
    const struct kv_order_node *x = stack[n_stack - 1].x;
    uint32_t depth = stack[--n_stack].depth;
    if (depth >= o->height || !node_valid(o, x, depth))
      return false;
    if (x->level > 0) {
      n_inners++;
      for (uint32_t i = x->n; i-- > 0;) { /* leftmost on top */
        stack[n_stack].x = x->child[i];
        stack[n_stack++].depth = depth + 1;
      }
      continue;
    }
    /* Leaves come left to right: each the one its predecessor links to,
     * each key above the one before (with the true compare). */
    if (prev_leaf != NULL && prev_leaf->next != x)
      return false;
    for (uint32_t i = 0; i < x->n; i++) {
      const struct kv_order_node *before = i > 0 ? x : prev_leaf;
      uint32_t bi = i > 0 ? i - 1 : (prev_leaf ? prev_leaf->n - 1 : 0);
      if (before != NULL) {
        struct probe k = probe_of_item(o, x->item[i]);
        if (slot_cmp(o, 0, before, bi, &k) >= 0)
          return false;
      }
    }
    n_items += x->n;
    n_leaves++;
    prev_leaf = x;
  }
  return prev_leaf->next == NULL && n_items == o->n &&
         n_leaves == o->n_leaves && n_inners == o->n_inners;
}
