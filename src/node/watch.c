/* SABHA.WATCH: a connection that becomes a stream of the store's changes.
 *
 * Every change the store applies is an event (kvstore.h: put or del, key,
 * value, revision), reported while the entry applies, in the same order on
 * every replica. The node keeps the recent ones in a window, a ring that
 * holds at most RT_WATCH_WINDOW_EVENTS_MAX events and
 * RT_WATCH_WINDOW_BYTES_MAX bytes: every event of revision >= first_rev is
 * there (or is yet to come). Older ones were dropped to stay in bounds, or
 * this node never saw them one by one (it started from a snapshot, or
 * installed one): FROM an older revision is refused with the oldest it
 * can serve, and the client resumes at another node or reads the current
 * state and watches from there.
 *
 * A watcher is a client stream, a key prefix and a place in the window.
 * After each applied entry (and each tick) a watcher takes the events past
 * its place that match its prefix, in order, into a batch, and the batch
 * goes out as one reply, an array of events, each
 * [kind, key, value (nil for del), revision]:
 *   - once no new event joined it for BATCH ms (default
 *     RT_WATCH_BATCH_MS_DEFAULT), or BATCH ms x 5 after its first event,
 *     so that a burst of changes comes as one reply (and a client such as
 *     redis-cli, which prints one reply, sees the burst); BATCH 0 sends
 *     each entry's events at once;
 *   - never splitting a revision, so a watcher that reconnects FROM the
 *     revision after the last one it received gets each event once.
 * A watcher whose unsent replies pass RT_WATCHER_OUT_BYTES_MAX takes no
 * more until they drain; if the window drops events it has not taken, it
 * is told from which revision to resume and closed. So memory is the
 * window plus a bounded output per watcher, whatever the clients do.
 *
 * Every node serves watches, followers included, from what it applied:
 * a follower's events come when it learns of the commits, a little after
 * the leader's.
 *
 * The window is kept for everyone, watched or not, so what it costs per
 * change is what every write costs: a one-byte APPEND to an 8 MiB value
 * copied the 8 MiB into it on every replica. The store says when a PUT is
 * an APPEND to the value the key's last event carried (kvstore_event.
 * appended); if the window still holds that event, it keeps the APPEND as
 * the bytes it added, a delta on that event, and rebuilds the whole value
 * only when a watcher takes it, so a watcher gets the same bytes a copy
 * would have given. Deltas chain back to a whole event, their root; the
 * rules of deltas below keep chains short enough that rebuilding costs
 * about what writing the value out does. The window's bound is on what
 * it holds, deltas counted as what they are. Events leave oldest first,
 * so a root leaves before its deltas: those can no longer be rebuilt, and
 * are treated as gone, though the events around them stay. A watcher
 * that comes to one it wants is behind, told to resume at its revision,
 * and FROM is refused before the revision after the last of them (so a
 * FROM that is served never meets one). Roots are renewed often enough
 * that this takes a sliver of the window's oldest end.
 *
 * A watcher looks at a bounded number of events per delivery and goes
 * on at the next turn of the loop, so that FROM far back over a full
 * window is not one long stall.
 *
 * Watching must not tax everyone's writes: a watch is a connection, and
 * thousands of them are allowed. So watchers of one prefix form a group,
 * and the groups are indexed by their prefix: a new event is looked up
 * under each prefix of its key that some group has the length of (one
 * pass of a keyed hash over the key), and joins the list of events of the
 * groups it matches. Only those groups' watchers are visited after the
 * entry applies; an event costs the key's length plus the watchers it
 * matches, whatever the others watch. A watcher follows its group's list
 * from its place in it, and costs what it takes. One that starts FROM a
 * revision before its group's list begins looks at the window's events
 * itself up to there (its catch-up), then follows. Watchers with a batch
 * waiting for its time, or a full output, are visited at each tick too. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/decimal.h"
#include "core/siphash.h"
#include "node/runtime_internal.h"

/* An event in the window. A whole one holds its value; a delta, an
 * APPEND's event, holds the bytes it added, and its value is the value of
 * the event it extends (its base: the key's event before it) followed by
 * them. Bases chain back to a whole event, the chain's root. */
struct rt_event {
  uint64_t revision;
  /* Whole: the last delta of its chain (NO_SEQ: none yet), and
   * rt_watch.bytes_placed once it was placed. Delta: its base, and its
   * root. Both by sequence number: the arena moves when it grows. */
  uint64_t link;
  uint64_t anchor;
  uint32_t key_len;
  uint32_t value_len;  /* the whole value's */
  uint32_t stored_len; /* the value's bytes it holds */
  uint32_t depth : 24; /* bases up to the root: 0 for a whole event */
  uint32_t kind : 8;   /* enum kvstore_event_kind */
  uint8_t bytes[];     /* key, then the stored bytes */
};

#define NO_SEQ UINT64_MAX

/* The rules of deltas, which keep an APPEND's cost in the window at the
 * bytes it added, and rebuilding a value (when a watcher takes its event)
 * at about the cost of writing it out:
 *   - a chain is at most value_len / WATCH_DELTA_LINK_BYTES deep, so that
 *     walking it costs no more than copying the value; beyond, the APPEND
 *     is kept whole (for an 8 MiB value, one copy per 32768 APPENDs);
 *   - a chain stops growing once arena_max / WATCH_CHAIN_SPAN_DIV bytes
 *     were placed after its root: when the root is dropped its deltas
 *     cannot be rebuilt (orphans, in struct rt_watch), and this bounds
 *     what that takes from FROM to about that many bytes of events. */
#define WATCH_DELTA_LINK_BYTES 256u
#define WATCH_CHAIN_SPAN_DIV 8u
/* Slots of the table that finds a key's last event (a power of two). */
#define WATCH_LAST_SLOTS 4096u
/* The events one watcher looks at per delivery; it goes on at the next
 * turn of the loop (rt_watch_catch_up). Without it, FROM at the start of
 * a full window scanned 1 Mi events in one turn. */
#define WATCH_SCAN_EVENTS_PER_TURN 8192u

/* The events themselves live in one circular arena, oldest first, so that
 * keeping the window costs a copy per change and no allocation: every
 * write the store applies is an event, watched or not (a watcher may come
 * later and ask FROM a past revision). An event goes where the last one
 * ended, or back at the start when the end has no room; the oldest go
 * first when neither has. The arena doubles, moving what it holds, until
 * it reaches the window's bound (rt_config.watch_window_bytes, at most
 * RT_WATCH_WINDOW_BYTES_MAX). */
struct rt_watch {
  struct rt_event **ring; /* cap entries, a power of two; into the arena */
  size_t cap;
  uint64_t first_seq; /* sequence number of the oldest event held */
  uint64_t next_seq;  /* of the next event to come */
  uint8_t *arena;
  size_t arena_cap;
  size_t arena_max; /* the window's bound */
  size_t head;      /* where the oldest event begins (the empty arena: 0) */
  size_t tail;      /* where the next one goes */
  uint64_t first_rev;
  uint64_t bytes_placed; /* ever, in the arena: the chains' span rule */
  /* A key's last event, by a hash of the key: seq + 1, or 0. A slot that
   * another key took, or whose event is gone, only costs a whole copy: an
   * event of the key found there is its last, as each of its events
   * writes the slot. */
  uint64_t last[WATCH_LAST_SLOTS];
  uint64_t hash_key[2];
  /* Deltas whose root was dropped cannot be rebuilt: a watcher that comes
   * to one it wants is behind, and FROM is served from the revision after
   * the last of them on. */
  uint64_t orphan_rev_next;
  struct list_link watchers; /* every one */
  /* Watchers stopped at WATCH_SCAN_EVENTS_PER_TURN (catch_up), and those
   * with a batch to send or a full output (each tick). */
  struct list_link more, pending;
  /* The groups, by a hash of their prefix (n_slots a power of two, or 0),
   * how many there are of each prefix length, and the longest. */
  struct rt_watch_group **slots;
  size_t n_slots, n_groups;
  uint32_t len_groups[RT_WATCH_PREFIX_BYTES_MAX + 1];
  size_t len_top;
  uint64_t group_key[2];
  struct list_link dirty; /* groups whose lists grew since the delivery */
  /* Times the window started again without a change it could not hold:
   * watchers from before are behind (rt_watch_event). */
  uint64_t epoch;
  bool bug_delta_order; /* RT_BUG_WATCH_DELTA_ORDER */
};

/* The watchers of one prefix, and the events they may want, found once
 * for all of them as each event comes: match holds, in order, the
 * sequence numbers of every event of seq >= covered_seq that matches the
 * prefix (some perhaps dropped from the window since: a watcher that comes
 * to one is behind). Its entries are numbered on from the group's start,
 * entry i at match[i & (match_cap - 1)]; [match_first, match_next) are
 * held. Entries no watcher needs any more are let go after each delivery
 * (group_trim), so it holds what its slowest watcher has still to take, at
 * most RT_WATCH_WINDOW_EVENTS_MAX. */
struct rt_watch_group {
  struct rt_watch_group *next; /* in its slot */
  struct list_link watchers;
  struct list_link dirty_link;
  uint32_t n_watchers;
  uint32_t n_scanning; /* watchers on their own catch-up */
  bool pinned;         /* being delivered: freed after, if emptied */
  uint64_t hash;
  uint64_t *match;
  size_t match_cap;
  uint64_t match_first, match_next;
  uint64_t covered_seq;
  size_t prefix_len;
  uint8_t prefix[];
};

struct rt_watcher {
  struct list_link link;
  struct list_link group_link, more_link, pending_link;
  struct rt_stream *c;
  struct rt_watch_group *g; /* its prefix's */
  /* Following its group (the next entry of the group's list to look at,
   * mpos), or on its own catch-up (next_seq: the next event of the window
   * to look at, before the group's covered_seq). */
  bool following;
  uint64_t mpos;
  uint64_t next_seq;
  uint64_t epoch; /* the window's when it began */
  bool paused;    /* stopped at a full output: goes on once it drains */
  /* FROM: events before it are skipped, even those still to come (a node
   * that restarted applies its log again, from its snapshot on). */
  uint64_t from_rev;
  uint64_t batch_ms;
  struct resp_buf batch; /* the events of the reply being gathered */
  uint32_t batch_n;
  uint64_t batch_first_ms, batch_last_ms;
  uint64_t last_rev; /* of the last event gathered */
  /* Where the revision being gathered began in the batch, and the last
   * revision gathered before it: a delta that cannot be rebuilt takes the
   * revision's part back out, so that the watcher resumes at its start. */
  size_t rev_batch_len;
  uint32_t rev_batch_n;
  uint64_t done_rev;
};

#define WATCH_ARENA_BYTES_MIN (256u << 10)

/* An event's place in the arena: its header and bytes, aligned for the
 * next header. */
static size_t event_bytes(size_t key_len, size_t stored_len) {
  size_t n = sizeof(struct rt_event) + key_len + stored_len;
  return (n + _Alignof(struct rt_event) - 1) &
         ~(size_t)(_Alignof(struct rt_event) - 1);
}

static struct rt_event *event_at(const struct rt_watch *w, uint64_t seq) {
  assert(seq >= w->first_seq && seq < w->next_seq);
  return w->ring[seq & (w->cap - 1)];
}

int rt_watch_init(struct rt *rt, uint64_t first_rev) {
  struct rt_watch *w = calloc(1, sizeof *w);
  if (w == NULL)
    return SABHA_ENOMEM;
  w->first_rev = first_rev > 0 ? first_rev : 1;
  uint64_t max = rt->cfg.watch_window_bytes;
  w->arena_max = max == 0 || max > RT_WATCH_WINDOW_BYTES_MAX
                     ? RT_WATCH_WINDOW_BYTES_MAX
                     : (size_t)max;
  /* Placing events is all the hash decides: the store's key serves. */
  w->hash_key[0] = rt->cfg.kv_hash_key[0] ^ 0x7761746368ull;
  w->hash_key[1] = rt->cfg.kv_hash_key[1];
  /* Clients choose the prefixes, and keys: a secret key keeps them from
   * piling groups into one slot. */
  w->group_key[0] = rt->cfg.kv_hash_key[0] ^ 0x67726f7570ull;
  w->group_key[1] = rt->cfg.kv_hash_key[1] ^ 0x7072656669ull;
  list_init(&w->watchers);
  list_init(&w->more);
  list_init(&w->pending);
  list_init(&w->dirty);
  w->bug_delta_order = (rt->cfg.bugs & RT_BUG_WATCH_DELTA_ORDER) != 0;
  rt->watch = w;
  return 0;
}

static void window_clear(struct rt_watch *w) {
  w->first_seq = w->next_seq;
  w->head = 0;
  w->tail = 0;
}

/* ---- groups ---------------------------------------------------------------
 */

#define GROUP_SLOTS_MIN 64u
#define GROUP_MATCH_MIN 16u

static bool group_has(const struct rt_watch_group *g, const uint8_t *key,
                      size_t key_len) {
  return key_len >= g->prefix_len &&
         (g->prefix_len == 0 || memcmp(key, g->prefix, g->prefix_len) == 0);
}

/* The group of the prefix key[0, len) whose hash is h, or NULL. */
static struct rt_watch_group *group_find(const struct rt_watch *w, uint64_t h,
                                         const uint8_t *key, size_t len) {
  if (w->n_slots == 0)
    return NULL;
  for (struct rt_watch_group *g = w->slots[h & (w->n_slots - 1)]; g != NULL;
       g = g->next)
    if (g->hash == h && g->prefix_len == len && group_has(g, key, len))
      return g;
  return NULL;
}

/* Twice the slots, or the first ones. False without memory (the table
 * then stays as it is, fuller). */
static bool group_slots_grow(struct rt_watch *w) {
  size_t n = w->n_slots == 0 ? GROUP_SLOTS_MIN : 2 * w->n_slots;
  struct rt_watch_group **slots = calloc(n, sizeof *slots);
  if (slots == NULL)
    return false;
  for (size_t i = 0; i < w->n_slots; i++)
    for (struct rt_watch_group *g = w->slots[i], *next; g != NULL; g = next) {
      next = g->next;
      g->next = slots[g->hash & (n - 1)];
      slots[g->hash & (n - 1)] = g;
    }
  free(w->slots);
  w->slots = slots;
  w->n_slots = n;
  return true;
}

/* The group of `prefix`, made (covering the events from the next on) if
 * there is none. NULL without memory. */
static struct rt_watch_group *group_get(struct rt_watch *w,
                                        const uint8_t *prefix, size_t len) {
  assert(len <= RT_WATCH_PREFIX_BYTES_MAX);
  uint64_t h = siphash24(prefix, len, w->group_key);
  struct rt_watch_group *g = group_find(w, h, prefix, len);
  if (g != NULL)
    return g;
  if ((w->n_groups >= w->n_slots && !group_slots_grow(w)) && w->n_slots == 0)
    return NULL;
  g = calloc(1, sizeof *g + len);
  if (g == NULL)
    return NULL;
  if (len > 0)
    memcpy(g->prefix, prefix, len);
  g->prefix_len = len;
  g->hash = h;
  g->covered_seq = w->next_seq;
  list_init(&g->watchers);
  list_init(&g->dirty_link);
  g->next = w->slots[h & (w->n_slots - 1)];
  w->slots[h & (w->n_slots - 1)] = g;
  w->n_groups++;
  w->len_groups[len]++;
  if (len > w->len_top)
    w->len_top = len;
  return g;
}

static void group_free(struct rt_watch *w, struct rt_watch_group *g) {
  assert(g->n_watchers == 0 && !g->pinned);
  struct rt_watch_group **at = &w->slots[g->hash & (w->n_slots - 1)];
  while (*at != g)
    at = &(*at)->next;
  *at = g->next;
  list_remove(&g->dirty_link);
  w->n_groups--;
  w->len_groups[g->prefix_len]--;
  while (w->len_top > 0 && w->len_groups[w->len_top] == 0)
    w->len_top--;
  free(g->match);
  free(g);
}

/* Moves the held entries into a list of `cap` entries. */
static bool group_match_resize(struct rt_watch_group *g, size_t cap) {
  assert(cap >= g->match_next - g->match_first);
  uint64_t *m = malloc(cap * sizeof *m);
  if (m == NULL)
    return false;
  for (uint64_t i = g->match_first; i < g->match_next; i++)
    m[i & (cap - 1)] = g->match[i & (g->match_cap - 1)];
  free(g->match);
  g->match = m;
  g->match_cap = cap;
  return true;
}

/* The list could not take an event: its watchers go on each on its own,
 * from where they were, and the list starts again after it. Slower, and
 * only without memory. */
static void group_unfollow(struct rt_watch *w, struct rt_watch_group *g,
                           uint64_t seq) {
  for (struct list_link *l = g->watchers.next; l != &g->watchers; l = l->next) {
    struct rt_watcher *x = LIST_OF(l, struct rt_watcher, group_link);
    if (!x->following)
      continue;
    x->following = false;
    g->n_scanning++;
    /* Past the list's held entries, it had looked at every event up to
     * this one; before them, its entry was dropped: behind, as it finds. */
    x->next_seq = x->mpos >= g->match_next ? seq
                  : x->mpos >= g->match_first
                      ? g->match[x->mpos & (g->match_cap - 1)]
                      : 0;
    if (list_empty(&x->more_link))
      list_push(&w->more, &x->more_link);
  }
  g->match_first = g->match_next;
  g->covered_seq = seq + 1;
}

/* Adds event `seq` (which matches g) to g's list. */
static void group_add(struct rt_watch *w, struct rt_watch_group *g,
                      uint64_t seq) {
  if (g->match_next - g->match_first == g->match_cap) {
    if (g->match_cap >= RT_WATCH_WINDOW_EVENTS_MAX) {
      /* The window holds fewer events than that: the oldest entry's event
       * was dropped, and any watcher at it is behind. */
      uint64_t old = g->match[g->match_first & (g->match_cap - 1)];
      assert(old < w->first_seq);
      g->match_first++;
      g->covered_seq = old + 1;
    } else if (!group_match_resize(g, g->match_cap == 0 ? GROUP_MATCH_MIN
                                                        : 2 * g->match_cap)) {
      group_unfollow(w, g, seq);
      return;
    }
  }
  g->match[g->match_next++ & (g->match_cap - 1)] = seq;
  if (list_empty(&g->dirty_link))
    list_push(&w->dirty, &g->dirty_link);
}

/* Adds event `seq` to the list of every group whose prefix its key has: a
 * lookup per prefix length some group has, the key hashed once. */
static void groups_index(struct rt_watch *w, uint64_t seq, const uint8_t *key,
                         size_t key_len) {
  if (w->n_groups == 0)
    return;
  struct siphash24_walk hw;
  siphash24_walk_init(&hw, key, w->group_key);
  size_t top = key_len < w->len_top ? key_len : w->len_top;
  for (size_t len = 0; len <= top; len++) {
    if (w->len_groups[len] == 0)
      continue;
    struct rt_watch_group *g =
        group_find(w, siphash24_walk_at(&hw, len), key, len);
    if (g != NULL)
      group_add(w, g, seq);
  }
}

/* Lets go of the entries every watcher of g is past (none while one is on
 * its own catch-up: it may come to any of them), and of room the list no
 * longer needs. Costs the group's watchers, as delivering to them did. */
static void group_trim(struct rt_watch_group *g) {
  if (g->n_scanning > 0)
    return;
  uint64_t keep = g->match_next;
  for (struct list_link *l = g->watchers.next; l != &g->watchers; l = l->next) {
    const struct rt_watcher *x = LIST_OF(l, struct rt_watcher, group_link);
    if (x->mpos < keep)
      keep = x->mpos;
  }
  if (keep > g->match_first) {
    g->covered_seq = g->match[(keep - 1) & (g->match_cap - 1)] + 1;
    g->match_first = keep;
  }
  size_t n = (size_t)(g->match_next - g->match_first);
  if (g->match_cap > GROUP_MATCH_MIN && n <= g->match_cap / 8) {
    size_t cap = GROUP_MATCH_MIN;
    while (cap < 2 * n)
      cap *= 2;
    (void)group_match_resize(g, cap); /* without memory: it stays large */
  }
}

/* The first entry of g's list whose event is seq or later. */
static uint64_t group_pos_of(const struct rt_watch_group *g, uint64_t seq) {
  uint64_t lo = g->match_first, hi = g->match_next;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (g->match[mid & (g->match_cap - 1)] < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* x, at next_seq in the window, follows its group's list from there: the
 * list holds every event of its prefix from covered_seq on. */
static void watcher_follow(struct rt_watcher *x) {
  struct rt_watch_group *g = x->g;
  assert(!x->following && x->next_seq >= g->covered_seq);
  assert(g->n_scanning > 0);
  g->n_scanning--;
  x->following = true;
  x->mpos = group_pos_of(g, x->next_seq);
}

static void watcher_free(struct rt_watcher *x, struct rt_watch *w) {
  struct rt_watch_group *g = x->g;
  list_remove(&x->link);
  list_remove(&x->group_link);
  list_remove(&x->more_link);
  list_remove(&x->pending_link);
  if (!x->following)
    g->n_scanning--;
  g->n_watchers--;
  if (g->n_watchers == 0 && !g->pinned)
    group_free(w, g);
  if (x->c != NULL)
    x->c->watcher = NULL;
  resp_buf_free(&x->batch);
  free(x);
}

void rt_watch_free(struct rt *rt) {
  struct rt_watch *w = rt->watch;
  if (w == NULL)
    return;
  while (!list_empty(&w->watchers))
    watcher_free(LIST_OF(w->watchers.next, struct rt_watcher, link), w);
  assert(w->n_groups == 0);
  free(w->slots);
  free(w->arena);
  free(w->ring);
  free(w);
  rt->watch = NULL;
}

/* The oldest revision FROM is served at. */
uint64_t rt_watch_first_rev(const struct rt *rt) {
  const struct rt_watch *w = rt->watch;
  return w->first_rev > w->orphan_rev_next ? w->first_rev : w->orphan_rev_next;
}

static void drop_oldest(struct rt_watch *w) {
  assert(w->first_seq < w->next_seq);
  const struct rt_event *e = event_at(w, w->first_seq);
  /* The rest of its revision may still be held, but no longer all of it. */
  if (e->revision + 1 > w->first_rev)
    w->first_rev = e->revision + 1;
  if (e->depth == 0 && e->link != NO_SEQ) {
    /* A root whose deltas stay: they cannot be rebuilt. */
    assert(e->link > w->first_seq && e->link < w->next_seq);
    uint64_t rev = event_at(w, e->link)->revision + 1;
    if (rev > w->orphan_rev_next)
      w->orphan_rev_next = rev;
  }
  w->first_seq++;
  if (w->first_seq == w->next_seq)
    window_clear(w);
  else
    w->head = (size_t)((const uint8_t *)event_at(w, w->first_seq) - w->arena);
}

/* Moves the events into an arena of `cap` bytes, one after the other from
 * its start. */
static bool arena_grow(struct rt_watch *w, size_t cap) {
  uint8_t *arena = malloc(cap);
  if (arena == NULL)
    return false;
  size_t at = 0;
  for (uint64_t s = w->first_seq; s < w->next_seq; s++) {
    struct rt_event **slot = &w->ring[s & (w->cap - 1)];
    size_t n = event_bytes((*slot)->key_len, (*slot)->stored_len);
    memcpy(arena + at, *slot, n);
    *slot = (struct rt_event *)(void *)(arena + at);
    at += n;
  }
  free(w->arena);
  w->arena = arena;
  w->arena_cap = cap;
  w->head = 0;
  w->tail = at;
  return true;
}

/* Where `n` bytes fit in the arena now: after the newest event, or at the
 * start when the arena's end has no room and the oldest begins far enough
 * in (the gap left at the end goes with the wrap). NULL if nowhere. */
static uint8_t *arena_fit(struct rt_watch *w, size_t n) {
  if (w->first_seq == w->next_seq)
    return n <= w->arena_cap ? w->arena : NULL; /* empty: head = tail = 0 */
  if (w->tail > w->head) {                      /* one run, head..tail */
    if (w->arena_cap - w->tail >= n)
      return w->arena + w->tail;
    return w->head > n ? w->arena : NULL; /* never tail == head when held */
  }
  return w->head - w->tail > n ? w->arena + w->tail : NULL; /* wrapped */
}

/* Room for an event of `n` bytes: a larger arena while it may grow, else
 * the oldest events dropped. NULL only without memory. */
static uint8_t *arena_room(struct rt_watch *w, size_t n) {
  for (;;) {
    uint8_t *at = arena_fit(w, n);
    if (at != NULL)
      return at;
    if (w->arena_cap < w->arena_max) {
      size_t cap = w->arena_cap == 0 ? WATCH_ARENA_BYTES_MIN : w->arena_cap;
      while (cap < w->arena_max && cap < 2 * (w->tail + n))
        cap *= 2;
      if (cap > w->arena_max)
        cap = w->arena_max;
      if (!arena_grow(w, cap))
        return NULL;
      continue;
    }
    assert(w->first_seq < w->next_seq); /* an empty window fits n */
    drop_oldest(w);
  }
}

/* Room for one more event in the ring. */
static bool ring_room(struct rt_watch *w) {
  size_t n = (size_t)(w->next_seq - w->first_seq);
  if (n < w->cap)
    return true;
  if (w->cap >= RT_WATCH_WINDOW_EVENTS_MAX) {
    drop_oldest(w);
    return true;
  }
  size_t cap = w->cap == 0 ? 1024 : w->cap * 2;
  struct rt_event **ring = calloc(cap, sizeof *ring);
  if (ring == NULL)
    return false;
  for (uint64_t s = w->first_seq; s < w->next_seq; s++)
    ring[s & (cap - 1)] = w->ring[s & (w->cap - 1)];
  free(w->ring);
  w->ring = ring;
  w->cap = cap;
  return true;
}

static uint64_t *last_slot(struct rt_watch *w, const uint8_t *key,
                           size_t key_len) {
  uint64_t h = siphash24(key, key_len, w->hash_key);
  return &w->last[h & (WATCH_LAST_SLOTS - 1)];
}

/* The event an APPEND's may extend, by the rules of deltas: the key's last
 * event, held with its root, the chain short enough. NO_SEQ: the event is
 * kept whole. */
static uint64_t delta_base(struct rt_watch *w, const struct kvstore_event *ev) {
  if (ev->kind != KVSTORE_EVENT_PUT || !ev->appended)
    return NO_SEQ;
  uint64_t got = *last_slot(w, ev->key, ev->key_len);
  if (got == 0 || got - 1 < w->first_seq || got - 1 >= w->next_seq)
    return NO_SEQ;
  const struct rt_event *b = event_at(w, got - 1);
  if (b->key_len != ev->key_len || memcmp(b->bytes, ev->key, ev->key_len) != 0)
    return NO_SEQ;
  /* The store's word: the key was there, with the value its last event
   * carried. */
  assert(b->kind == KVSTORE_EVENT_PUT);
  assert((uint64_t)b->value_len + ev->appended_len == ev->value_len);
  uint64_t root_seq = b->depth == 0 ? got - 1 : b->anchor;
  if (root_seq < w->first_seq)
    return NO_SEQ; /* dropped: the chain cannot be rebuilt */
  const struct rt_event *root = event_at(w, root_seq);
  if ((uint64_t)b->depth + 1 > ev->value_len / WATCH_DELTA_LINK_BYTES ||
      w->bytes_placed - root->anchor > w->arena_max / WATCH_CHAIN_SPAN_DIV)
    return NO_SEQ;
  return got - 1;
}

/* Places ev's event: as a delta on `base_seq` when delta_base allowed one
 * and its chain is still held once room is made (making room may drop
 * it), else whole; *n its bytes, *delta which. NULL without memory or
 * room. */
static struct rt_event *event_place(struct rt_watch *w,
                                    const struct kvstore_event *ev,
                                    uint64_t base_seq, size_t *n, bool *delta) {
  *delta = false;
  if (!ring_room(w))
    return NULL;
  uint8_t *at = NULL;
  if (base_seq != NO_SEQ) {
    *n = event_bytes(ev->key_len, ev->appended_len);
    at = arena_room(w, *n);
    if (at == NULL)
      return NULL;
    const struct rt_event *b =
        base_seq >= w->first_seq ? event_at(w, base_seq) : NULL;
    uint64_t root_seq = b == NULL ? 0 : b->depth == 0 ? base_seq : b->anchor;
    *delta = b != NULL && root_seq >= w->first_seq;
    if (*delta)
      return (struct rt_event *)(void *)at;
  }
  *n = event_bytes(ev->key_len, ev->value_len);
  if (*n > w->arena_max)
    return NULL;
  return (struct rt_event *)(void *)arena_room(w, *n);
}

void rt_watch_event(void *ctx, const struct kvstore_event *ev) {
  struct rt *rt = ctx;
  struct rt_watch *w = rt->watch;
  uint64_t base_seq = delta_base(w, ev);
  size_t n = 0;
  bool delta = false;
  struct rt_event *e = event_place(w, ev, base_seq, &n, &delta);
  if (e == NULL) {
    /* Without memory, or room for this event in the whole window, the
     * window cannot stay whole: it starts again after this revision, and
     * watchers that needed it are told (deliver). */
    rt_log(rt, RT_LOG_WARN,
           "%s: the watch window restarts after revision %" PRIu64,
           event_bytes(ev->key_len, ev->value_len) > w->arena_max
               ? "a change larger than the watch window"
               : "no memory for watch events",
           ev->revision);
    window_clear(w);
    /* The change lost takes a place of its own, so that every watcher,
     * even one that had taken all the rest, is behind the window now and
     * is told where to resume, instead of missing it without a word. */
    w->next_seq++;
    w->first_seq = w->next_seq;
    w->first_rev = ev->revision + 1;
    /* The lost change is in no group's list: every watcher is visited and
     * finds it began in an earlier epoch. */
    w->epoch++;
    for (size_t i = 0; i < w->n_slots; i++)
      for (struct rt_watch_group *g = w->slots[i]; g != NULL; g = g->next)
        if (list_empty(&g->dirty_link))
          list_push(&w->dirty, &g->dirty_link);
    return;
  }
  uint64_t seq = w->next_seq;
  e->revision = ev->revision;
  e->kind = (uint8_t)ev->kind;
  e->key_len = (uint32_t)ev->key_len;
  e->value_len = (uint32_t)ev->value_len;
  if (ev->key_len > 0)
    memcpy(e->bytes, ev->key, ev->key_len);
  if (delta) {
    struct rt_event *b = event_at(w, base_seq);
    uint64_t root_seq = b->depth == 0 ? base_seq : b->anchor;
    e->depth = b->depth + 1u;
    e->link = base_seq;
    e->anchor = root_seq;
    e->stored_len = (uint32_t)ev->appended_len;
    event_at(w, root_seq)->link = seq;
  } else {
    e->depth = 0;
    e->link = NO_SEQ;
    e->anchor = w->bytes_placed + n; /* the span counts what follows */
    e->stored_len = (uint32_t)ev->value_len;
  }
  if (e->stored_len > 0)
    memcpy(e->bytes + ev->key_len, ev->value + (ev->value_len - e->stored_len),
           e->stored_len);
  w->bytes_placed += n;
  rt->m.watch_window_bytes_copied += n;
  w->ring[seq & (w->cap - 1)] = e;
  w->next_seq++;
  w->tail = (size_t)((uint8_t *)e - w->arena) + n;
  *last_slot(w, ev->key, ev->key_len) = seq + 1;
  groups_index(w, seq, ev->key, ev->key_len);
}

/* Ends a watcher with an error its client reads last. */
static void watcher_flush(struct rt_watcher *x);

static void watcher_fail(struct rt_watcher *x, const char *msg) {
  struct rt_stream *c = x->c;
  if (x->batch_n > 0 && x->batch.err == 0)
    watcher_flush(x); /* whole revisions: the resume point stays right */
  resp_write_error(&c->out, msg);
  c->quit_after = true;
  watcher_free(x, c->rt->watch);
  rt_stream_close(c, true);
  rt_stream_kick_output(c);
}

static void watcher_behind(struct rt_watcher *x) {
  char msg[200];
  snprintf(msg, sizeof msg,
           "ERR the watch fell behind: events after revision %" PRIu64
           " are no longer kept here; resume with FROM %" PRIu64,
           x->last_rev, x->last_rev + 1);
  watcher_fail(x, msg);
}

static void watcher_flush(struct rt_watcher *x) {
  struct rt_stream *c = x->c;
  resp_write_array(&c->out, x->batch_n);
  resp_buf_append(&c->out, x->batch.data, x->batch.len);
  resp_buf_reset(&x->batch);
  x->batch_n = 0;
  rt_stream_kick_output(c);
}

/* Writes e's whole value as a bulk string: a delta's bytes go at the end,
 * its base's before them, and so on back to the root's, which begin it.
 * The chain is held (its root is). */
static void write_value(struct resp_buf *b, const struct rt_watch *w,
                        const struct rt_event *e) {
  if (e->depth == 0) {
    resp_write_bulk(b, e->bytes + e->key_len, e->value_len);
    return;
  }
  uint8_t *value = resp_write_bulk_space(b, e->value_len);
  if (value == NULL)
    return; /* the sticky error says it */
  if (w->bug_delta_order) {
    /* The bug: the root's bytes, then the deltas' newest first. */
    const struct rt_event *root = event_at(w, e->anchor);
    size_t at = root->stored_len;
    memcpy(value, root->bytes + root->key_len, root->stored_len);
    for (const struct rt_event *p = e; p->depth > 0; p = event_at(w, p->link)) {
      memcpy(value + at, p->bytes + p->key_len, p->stored_len);
      at += p->stored_len;
    }
    return;
  }
  size_t end = e->value_len;
  for (const struct rt_event *p = e;; p = event_at(w, p->link)) {
    assert(p->stored_len <= end);
    end -= p->stored_len;
    memcpy(value + end, p->bytes + p->key_len, p->stored_len);
    if (p->depth == 0)
      break;
  }
  assert(end == 0);
}

static void write_event(struct resp_buf *b, const struct rt_watch *w,
                        const struct rt_event *e) {
  resp_write_array(b, 4);
  if (e->kind == KVSTORE_EVENT_PUT)
    resp_write_bulk(b, "put", 3);
  else
    resp_write_bulk(b, "del", 3);
  resp_write_bulk(b, e->bytes, e->key_len);
  if (e->kind == KVSTORE_EVENT_PUT)
    write_value(b, w, e);
  else
    resp_write_null(b);
  resp_write_int(b, (int64_t)e->revision);
}

/* Sets whether x is on list `head` (by its link `l`). */
static void watcher_on(struct list_link *head, struct list_link *l, bool on) {
  if (on && list_empty(l))
    list_push(head, l);
  else if (!on)
    list_remove(l);
}

/* x has come to event e: takes it into its batch if it wants it
 * (`check_prefix`: on its own catch-up, it asks whether e matches; its
 * group's list holds only those that do). False when x is gone. */
static bool watcher_look(struct rt *rt, struct rt_watcher *x,
                         const struct rt_event *e, bool check_prefix,
                         uint64_t now) {
  struct rt_watch *w = rt->watch;
  rt->m.watch_events_examined++;
  if (e->revision < x->from_rev ||
      (check_prefix && !group_has(x->g, e->bytes, e->key_len)))
    return true;
  if (e->revision != x->last_rev) {
    if (x->batch_n > 0 && x->batch_ms == 0)
      watcher_flush(x); /* BATCH 0: a reply per revision */
    x->rev_batch_len = x->batch.len;
    x->rev_batch_n = x->batch_n;
    x->done_rev = x->last_rev;
  }
  if (e->depth > 0 && e->anchor < w->first_seq) {
    /* Its root was dropped: this revision is not all here any more. */
    resp_buf_truncate(&x->batch, x->rev_batch_len);
    x->batch_n = x->rev_batch_n;
    x->last_rev = x->done_rev;
    watcher_behind(x);
    return false;
  }
  write_event(&x->batch, w, e);
  if (x->batch_n == 0)
    x->batch_first_ms = now;
  x->batch_n++;
  x->batch_last_ms = now;
  x->last_rev = e->revision;
  return true;
}

/* The next event x is to look at (its sequence number in *seq): on its
 * own catch-up, the window's next (or, once at its group's covered_seq,
 * it follows the group); following, its group list's next. false at the
 * end; *behind when the event it needs was dropped. */
static bool watcher_next(struct rt_watch *w, struct rt_watcher *x,
                         uint64_t *seq, bool *behind) {
  struct rt_watch_group *g = x->g;
  *behind = false;
  if (!x->following) {
    if (x->next_seq < g->covered_seq) {
      *seq = x->next_seq;
      return true;
    }
    watcher_follow(x);
  }
  if (x->mpos == g->match_next)
    return false;
  *behind = x->mpos < g->match_first ||
            g->match[x->mpos & (g->match_cap - 1)] < w->first_seq;
  if (!*behind)
    *seq = g->match[x->mpos & (g->match_cap - 1)];
  return !*behind;
}

static void watcher_take(struct rt *rt, struct rt_watcher *x, uint64_t now) {
  struct rt_watch *w = rt->watch;
  struct rt_stream *c = x->c;
  if (x->epoch != w->epoch || (!x->following && x->next_seq < w->first_seq)) {
    watcher_behind(x);
    return;
  }
  uint32_t scanned = 0;
  bool more = false, full = false, behind = false;
  uint64_t seq;
  while (watcher_next(w, x, &seq, &behind)) {
    const struct rt_event *e = event_at(w, seq);
    full = c->out.len + c->wbuf.len + x->batch.len >= RT_WATCHER_OUT_BYTES_MAX;
    /* Stop only between revisions, so that no batch splits one. */
    if ((full || scanned >= WATCH_SCAN_EVENTS_PER_TURN) &&
        e->revision != x->last_rev) {
      more = !full;
      break;
    }
    full = false;
    scanned++;
    if (!watcher_look(rt, x, e, !x->following, now))
      return;
    if (x->following)
      x->mpos++;
    else
      x->next_seq++;
  }
  if (behind) {
    watcher_behind(x);
    return;
  }
  x->paused = full;
  /* On its own catch-up, it has something to look at still: soon. */
  watcher_on(&w->more, &x->more_link, more || (!x->following && !full));
  if (x->batch.err != 0) {
    watcher_fail(x, "OOM out of memory");
    return;
  }
  if (x->batch_n > 0 && (now >= x->batch_last_ms + x->batch_ms ||
                         now >= x->batch_first_ms + 5 * x->batch_ms))
    watcher_flush(x);
  /* A batch waits for its time, a full output for room: ticks. */
  watcher_on(&w->pending, &x->pending_link, x->batch_n > 0 || full);
}

/* Visits the watchers of every group whose list grew. */
void rt_watch_deliver(struct rt *rt) {
  struct rt_watch *w = rt->watch;
  if (w == NULL)
    return;
  uint64_t now = rt_now_ms(rt);
  while (!list_empty(&w->dirty)) {
    struct rt_watch_group *g =
        LIST_OF(w->dirty.next, struct rt_watch_group, dirty_link);
    list_remove(&g->dirty_link);
    g->pinned = true; /* its watchers may all go */
    struct list_link *l = g->watchers.next;
    while (l != &g->watchers) {
      struct rt_watcher *x = LIST_OF(l, struct rt_watcher, group_link);
      l = l->next; /* x may go */
      watcher_take(rt, x, now);
    }
    g->pinned = false;
    if (g->n_watchers == 0)
      group_free(w, g);
    else
      group_trim(g);
  }
}

void rt_watch_tick(struct rt *rt) {
  struct rt_watch *w = rt->watch;
  if (w == NULL)
    return;
  rt_watch_deliver(rt);
  uint64_t now = rt_now_ms(rt);
  struct list_link *l = w->pending.next;
  while (l != &w->pending) {
    struct rt_watcher *x = LIST_OF(l, struct rt_watcher, pending_link);
    l = l->next; /* x may go */
    watcher_take(rt, x, now);
  }
}

bool rt_watch_catch_up(struct rt *rt) {
  struct rt_watch *w = rt->watch;
  if (w == NULL || list_empty(&w->more))
    return false;
  uint64_t now = rt_now_ms(rt);
  struct list_link *l = w->more.next;
  while (l != &w->more) {
    struct rt_watcher *x = LIST_OF(l, struct rt_watcher, more_link);
    l = l->next; /* x may go */
    watcher_take(rt, x, now);
  }
  return !list_empty(&w->more);
}

void rt_watch_reset(struct rt *rt, uint64_t index) {
  struct rt_watch *w = rt->watch;
  window_clear(w);
  w->first_rev = index + 1;
  while (!list_empty(&w->watchers)) {
    struct rt_watcher *x = LIST_OF(w->watchers.next, struct rt_watcher, link);
    char msg[200];
    snprintf(msg, sizeof msg,
             "ERR this node installed a snapshot at revision %" PRIu64
             " and missed events; resume with FROM %" PRIu64
             " at another node, or read and watch again",
             index, x->last_rev + 1);
    watcher_fail(x, msg);
  }
}

void rt_watch_drained(struct rt_stream *c) {
  struct rt_watcher *x = c->watcher;
  if (x != NULL && x->paused)
    watcher_on(&c->rt->watch->more, &x->more_link, true);
}

void rt_watch_stop(struct rt_stream *c) {
  if (c->watcher != NULL)
    watcher_free(c->watcher, c->rt->watch);
}

/* The first event of revision >= rev (the ring's revisions never go
 * down): a binary search. */
static uint64_t seq_of_rev(const struct rt_watch *w, uint64_t rev) {
  uint64_t lo = w->first_seq, hi = w->next_seq;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (event_at(w, mid)->revision < rev)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void rt_watch_start(struct rt_stream *c, uint32_t argc,
                    const struct resp_arg *argv, struct resp_buf *b) {
  struct rt *rt = c->rt;
  struct rt_watch *w = rt->watch;
  int64_t from = -1, batch_ms = RT_WATCH_BATCH_MS_DEFAULT;
  for (uint32_t i = 2; i < argc; i += 2) {
    int64_t v;
    bool is_from = argv[i].len == 4 &&
                   strncasecmp((const char *)argv[i].ptr, "FROM", 4) == 0;
    bool is_batch = argv[i].len == 5 &&
                    strncasecmp((const char *)argv[i].ptr, "BATCH", 5) == 0;
    if ((!is_from && !is_batch) || i + 1 >= argc) {
      resp_write_error(b, "ERR syntax error: SABHA.WATCH prefix [FROM "
                          "revision] [BATCH ms]");
      return;
    }
    if (dec_parse_i64(argv[i + 1].ptr, argv[i + 1].len, &v) != DEC_OK ||
        v < 0 || (is_batch && v > RT_WATCH_BATCH_MS_MAX)) {
      resp_write_error(b, "ERR FROM takes a revision >= 0, BATCH 0 to "
                          "10000 ms");
      return;
    }
    if (is_from)
      from = v;
    else
      batch_ms = v;
  }
  if (argv[1].len > RT_WATCH_PREFIX_BYTES_MAX) {
    resp_write_error(b, "ERR the prefix is longer than 1024 bytes");
    return;
  }
  uint64_t start = w->next_seq;
  uint64_t rev = 0;
  if (from >= 0) {
    rev = from > 0 ? (uint64_t)from : 1;
    if ((rt->cfg.bugs & RT_BUG_WATCH_RESUME_SKIP) && rev > 1)
      rev++; /* the bug: an off-by-one in the resume point */
    if (rev < rt_watch_first_rev(rt)) {
      resp_buf_printf(b,
                      "-ERR revision %" PRIu64 " is compacted: this node "
                      "streams from revision %" PRIu64 " on\r\n",
                      rev, rt_watch_first_rev(rt));
      return;
    }
    start = seq_of_rev(w, rev);
  }
  struct rt_watcher *x = calloc(1, sizeof *x);
  struct rt_watch_group *g =
      x == NULL ? NULL : group_get(w, argv[1].ptr, argv[1].len);
  if (g == NULL) {
    free(x);
    resp_write_error(b, "OOM out of memory");
    return;
  }
  x->c = c;
  x->g = g;
  list_push(&g->watchers, &x->group_link);
  g->n_watchers++;
  list_init(&x->more_link);
  list_init(&x->pending_link);
  x->epoch = w->epoch;
  x->next_seq = start;
  g->n_scanning++;
  if (start >= g->covered_seq)
    watcher_follow(x);
  x->from_rev = from >= 0 ? rev : rt->applied + 1;
  x->batch_ms = (uint64_t)batch_ms;
  /* Where it resumes if it falls behind before its first event: after the
   * revision before FROM, or, without FROM, the one it begins after (not
   * 1, which would bring, wherever still kept, every change before it). */
  x->last_rev = from > 0 ? (uint64_t)from - 1 : from == 0 ? 0 : rt->applied;
  resp_buf_init(&x->batch, RT_WATCHER_OUT_BYTES_MAX * 2);
  list_push(&w->watchers, &x->link);
  c->watcher = x;
  watcher_take(rt, x, rt_now_ms(rt));
}
