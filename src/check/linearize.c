/* The linearizability checker: is there one sequential order of a history's
 * operations that respects real time and the model's specification?
 *
 * The simulator's promise is that a seed whose run passes every checker had
 * a linearizable history; this file is where that promise is kept, so it
 * leans towards being obviously right over being clever, and every shortcut
 * below says why it cannot change a verdict.
 *
 * How it works (Wing & Gong 1993, with Lowe 2017's memoization):
 * - Operations are split by the model's partition (per key for the kv model);
 *   a history is linearizable iff each partition's sub-history is (Herlihy &
 *   Wing's locality, used as Horn & Kroening's P-compositionality), so each
 *   search is small.
 * - A partition becomes a doubly linked list of call and return events in
 *   time order. The search walks it from the front. At a call it tries to
 *   make that operation take effect now: if the model accepts the op's output
 *   from the current state, and the configuration (set of operations taken
 *   effect, state) has not been seen before, the op's two events are unlinked
 *   ("lifted"), pushed on a stack, and the walk restarts from the front. At a
 *   return it has reached an operation that finished without taking effect:
 *   that order is impossible, so it pops the last lifted op, relinks it and
 *   tries the event after that op's call instead.
 * - The memo is what makes this fast: two orders that linearized the same set
 *   of operations and reached the same state have the same future, so the
 *   second one is cut off at once.
 * - Operations whose outcome is unknown (status info) have no return event:
 *   they may take effect at any point after their call, or never. So the
 *   search has succeeded as soon as every ok operation has taken effect.
 *   Left alone, k pending info writes multiply the search by up to 2^k; four
 *   rules (see search_partition, memo_state, memo_covers and twin_ready)
 *   bring that down to about the number of distinct values still to be
 *   read.
 * - Reads (ops that leave the state as it is) are placed as soon as they
 *   fit, with no alternatives tried: that alone cuts the steps on a busy
 *   key fivefold.
 * - A model may be nondeterministic (an incr of unknown outcome on a value
 *   that may expire may find it there or gone): an op with two next states
 *   is tried with each.
 *
 * The search is iterative (an explicit stack as deep as the partition has
 * operations), the list is arrays of indices, and every buffer is sized once
 * for the largest partition, so the inner loop allocates nothing except when
 * the memo doubles. Each partition runs under a step budget; running out is
 * LIN_UNKNOWN, never a pass. */
#include "check/linearize.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sabha/error.h"

#define LIN_STEPS_MAX_DEFAULT 10000000u
#define OBS_NONE UINT32_MAX
/* Mixed into the hash of a junk key, so that a class and the state with
 * the same number rarely share a probe chain. */
#define JUNK_SALT 0x6a09e667f3bcc909ull

/* ---- the key-value model ------------------------------------------------- *
 *
 * A state is one word: STATE_NIL for a key that holds nothing; a value v
 * (0 <= v < 2^63) that does not expire as v itself; one that may expire as
 * v | STATE_EXPIRING. The words cannot be told apart for an expiring
 * 2^63 - 1, so lin_check refuses ttl puts of values from 2^62 up (kv_invalid):
 * incrs then keep every expiring value below 2^62 + 2^30, far from it.
 *
 * Expiry is a step no client takes, at an instant nobody records, so a
 * search that placed it explicitly would try every instant. Instead the
 * model resolves it lazily, at the next op on the key: an op on an
 * expiring value v may find it still there ("alive") or gone ("dead": it
 * vanished just before), and the op's recorded output usually says which
 * (a get of v or of nil). Where both fit, the model keeps what covers the
 * other (linearize.h): an expiring value covers the same value without
 * expiry and covers nil, since it can stay forever or vanish at the very
 * next op. So only an incr of unknown outcome keeps two next states (v + 1
 * still expiring, or 1 after it vanished), and nothing the search does
 * depends on when, between two ops, a value vanished. test_linearize checks
 * this against a brute-force search that places every expiry explicitly. */

#define STATE_NIL UINT64_MAX
#define STATE_EXPIRING (1ull << 63)
#define KV_TTL_VALUE_LIMIT (1ll << 62)

static bool kv_expiring(uint64_t state) {
  return state != STATE_NIL && (state & STATE_EXPIRING) != 0;
}

/* The value a state holds, HIST_NIL for none. */
static int64_t kv_value(uint64_t state) {
  return state == STATE_NIL ? HIST_NIL : (int64_t)(state & ~STATE_EXPIRING);
}

static uint64_t kv_init(void) {
  return STATE_NIL;
}

/* Applies `op` to a state that is what it says (an expiring value that has
 * not vanished yet). Returns whether the recorded output fits. An info op
 * has no observed output, so it is applied the way the specification would
 * apply it and never rejected: a cas of unknown outcome swaps exactly when
 * the state matches, and "it never happened" is covered by the search
 * leaving it out. */
static bool kv_apply(uint64_t state, const struct hist_op *op, uint64_t *next) {
  bool observed = op->status == HIST_OK;
  int64_t value = kv_value(state);
  switch (op->kind) {
  case HIST_PUT:
    *next = (uint64_t)op->value;
    if ((op->flags & HIST_TTL) && op->value != HIST_NIL)
      *next |= STATE_EXPIRING;
    return true;
  case HIST_GET:
    *next = state;
    return !observed || value == op->value;
  case HIST_CAS: {
    bool swaps = value == op->expected;
    *next = swaps ? (uint64_t)op->value : state; /* a swap clears expiry */
    return !observed || (op->output != 0) == swaps;
  }
  case HIST_INCR: {
    if (value == INT64_MAX) { /* overflow: an error that changes nothing */
      *next = state;
      return !observed;
    }
    int64_t result = value == HIST_NIL ? 1 : value + 1;
    /* A new key does not expire; an old one keeps its expiry. */
    *next = (uint64_t)result | (value == HIST_NIL ? 0 : state & STATE_EXPIRING);
    /* kv_invalid's bound keeps expiring values far below the one word that
     * would read as nil. */
    assert(*next != STATE_NIL);
    return !observed || op->value == result;
  }
  case HIST_APPEND: {
    /* One more byte on the value (history.h numbers values so): as an
     * incr whose result nobody saw. The largest value has no next. */
    if (value == INT64_MAX) {
      *next = state;
      return true;
    }
    int64_t result = value == HIST_NIL ? 1 : value + 1;
    *next = (uint64_t)result | (value == HIST_NIL ? 0 : state & STATE_EXPIRING);
    assert(*next != STATE_NIL);
    return true;
  }
  default:
    return false; /* not an operation of this model: nothing explains it */
  }
}

/* True when state a covers state b (see linearize.h). */
static bool kv_covers(uint64_t a, uint64_t b) {
  return a == b ||
         (kv_expiring(a) && (b == STATE_NIL || b == (a & ~STATE_EXPIRING)));
}

static unsigned kv_step(uint64_t state, const struct hist_op *op,
                        uint64_t next[LIN_NEXT_MAX]) {
  if (!kv_expiring(state))
    return kv_apply(state, op, &next[0]) ? 1 : 0;
  uint64_t alive, dead;
  bool alive_ok = kv_apply(state, op, &alive);
  bool dead_ok = kv_apply(STATE_NIL, op, &dead);
  /* An op of unknown outcome that would lead where the state already
   * covers adds nothing to leaving it out. */
  if (op->status != HIST_OK) {
    alive_ok = alive_ok && !kv_covers(state, alive);
    dead_ok = dead_ok && !kv_covers(state, dead);
  }
  if (alive_ok && dead_ok) {
    if (kv_covers(alive, dead))
      dead_ok = false;
    else if (kv_covers(dead, alive))
      alive_ok = false;
  }
  unsigned n = 0;
  if (alive_ok)
    next[n++] = alive;
  if (dead_ok)
    next[n++] = dead;
  return n;
}

static uint64_t kv_partition(const struct hist_op *op) {
  return op->key;
}

/* Values that do not expire (and nil) are one class, expiring values the
 * other: a get of nil, say, takes every expiring value to nil and refuses
 * every other. */
static unsigned kv_merge_class(uint64_t state) {
  return kv_expiring(state) ? 1 : 0;
}

/* Writes value v, plain and expiring, into states[]; returns how many. The
 * two are the same number but for the top bit, so that a shift (an incr of
 * unknown outcome) counts up within each class. */
static unsigned kv_both(int64_t v, uint64_t *states) {
  states[0] = (uint64_t)v;
  if (v == HIST_NIL)
    return 1;
  states[1] = (uint64_t)v | STATE_EXPIRING;
  return 2;
}

/* A get tells its value apart from all others, a cas its expected value, an
 * ok incr the value one below what it returned (and nil, if it returned 1);
 * a put acts the same in every state. Each value counts twice, with and
 * without expiry. In the class of expiring values, those not listed are
 * also alike: a get or cas expecting nil finds each gone, an incr that
 * returned 1 finds each gone. An incr of unknown outcome is a shift (see
 * linearize.h): it takes v to v + 1, nil (the largest number) to 1, which
 * is nil + 2 wrapping, and 2^63 - 1 nowhere (incr fails on it); it takes an
 * expiring v to v + 1 still expiring, or, after the value vanished, to 1
 * for all of them alike. */
static unsigned kv_observes(const struct hist_op *op,
                            uint64_t states[LIN_OBS_MAX]) {
  switch (op->kind) {
  case HIST_GET:
    return op->status == HIST_OK ? kv_both(op->value, states) : 0;
  case HIST_CAS:
    return kv_both(op->expected, states);
  case HIST_APPEND:
    return LIN_OBS_SHIFT; /* as an incr of unknown outcome, whatever its own */
  case HIST_INCR:
    if (op->status != HIST_OK)
      return LIN_OBS_SHIFT;
    if (op->value < 1)
      return 0; /* fits no state at all */
    if (op->value != 1)
      return kv_both(op->value - 1, states);
    states[2] = STATE_NIL;
    return 1 + kv_both(0, states);
  default:
    return 0;
  }
}

/* Only a put with ttl leads into the class of expiring values (an incr
 * stays in its class; a cas that swaps, or a get of nil, leaves it). */
static unsigned kv_classes(const struct hist_op *op) {
  return op->kind == HIST_PUT && (op->flags & HIST_TTL) ? 1u << 1 : 0;
}

/* Incrs of unknown outcome all add one, whatever the key holds; so do
 * appends of unknown outcome. */
static unsigned kv_twin(const struct hist_op *op) {
  if (op->status == HIST_OK)
    return 0;
  return op->kind == HIST_INCR ? 1 : op->kind == HIST_APPEND ? 2 : 0;
}

/* A get, and a cas that reports no swap or swaps a value for itself: where
 * they fit, they leave the state as it was, or take an expiring value to
 * nil or to the same value without expiry, which it covers. */
static bool kv_read_only(const struct hist_op *op) {
  if (op->status != HIST_OK)
    return false;
  if (op->kind == HIST_GET)
    return true;
  return op->kind == HIST_CAS && (op->output == 0 || op->value == op->expected);
}

static const char *kv_invalid(const struct hist_op *op) {
  if ((op->flags & HIST_TTL) && op->value >= KV_TTL_VALUE_LIMIT)
    return "a put with ttl writes a value of 2^62 or more";
  return NULL;
}

const struct lin_model lin_model_kv = {
    .name = "kv",
    .init = kv_init,
    .step = kv_step,
    .partition = kv_partition,
    .observes = kv_observes,
    .merge_class = kv_merge_class,
    .classes = kv_classes,
    .twin = kv_twin,
    .read_only = kv_read_only,
    .invalid = kv_invalid,
};

/* ---- configurations -------------------------------------------------------
 *
 * Within a partition, ok ops are numbered by return time (their "rank") and
 * info ops after them by call time. Then a configuration's set of linearized
 * ops has a compact shape. With `low` the lowest ok rank not linearized,
 * every ok op below `low` is in, and the ok ops at or above `low` that are in
 * were all called before op `low` returns (an op is only lifted while its
 * call precedes every pending return), a window about as wide as the
 * concurrency. So the memo stores `low`, `high` (one past the highest ok rank
 * in) and only the bitset words between, plus the info ops' bits: a few
 * words per entry where a whole bitset would cost n/64, which at thousands of
 * ops per key was most of the checker's time, spent copying. */

/* One memo entry's worth of a configuration. */
struct config {
  uint64_t hash;  /* of the ok ops in the set and the memo's state */
  uint64_t state; /* as memo_state() gives it: a state, or a merge class */
  bool junk;      /* state is a merge class standing for its states */
  uint32_t low, high;
  const uint64_t *ok_words; /* the ok bitset from word low/64 */
  size_t n_ok_words;
  const uint64_t *info_words; /* the whole info bitset */
};

/* Entries live in parallel arrays; their words are packed in one arena. The
 * table holds entry numbers plus one, 0 meaning empty: open addressing with
 * linear probing, at most half full. */
struct memo {
  size_t n_info_words; /* for the current partition */
  uint32_t *slots;
  size_t n_slots; /* a power of two */
  uint64_t *hashes;
  uint64_t *states;
  uint8_t *junks;
  uint32_t *lows, *highs;
  size_t *word_at; /* entry -> its first word in `words` */
  size_t n_entries, n_entries_cap;
  uint64_t *words;
  size_t n_words, n_words_cap;
};

static void memo_free(struct memo *m) {
  free(m->slots);
  free(m->hashes);
  free(m->states);
  free(m->junks);
  free(m->lows);
  free(m->highs);
  free(m->word_at);
  free(m->words);
  memset(m, 0, sizeof *m);
}

/* Empties the memo, keeping its memory for the next partition. */
static void memo_reset(struct memo *m, size_t n_info_words) {
  m->n_info_words = n_info_words;
  m->n_entries = 0;
  m->n_words = 0;
  if (m->slots != NULL)
    memset(m->slots, 0, m->n_slots * sizeof *m->slots);
}

#define GROW(ptr, cap)                                                         \
  do {                                                                         \
    void *grown_ = realloc((ptr), (cap) * sizeof *(ptr));                      \
    if (grown_ == NULL)                                                        \
      return SABHA_ENOMEM;                                                     \
    (ptr) = grown_;                                                            \
  } while (0)

static int memo_grow_entries(struct memo *m) {
  size_t cap = m->n_entries_cap ? m->n_entries_cap * 2 : 1024;
  if (cap > UINT32_MAX - 1u)
    return SABHA_ENOMEM; /* slots hold 32-bit entry numbers */
  GROW(m->hashes, cap);
  GROW(m->states, cap);
  GROW(m->junks, cap);
  GROW(m->lows, cap);
  GROW(m->highs, cap);
  GROW(m->word_at, cap);
  m->n_entries_cap = cap;
  return 0;
}

static int memo_grow_words(struct memo *m, size_t n_more) {
  size_t cap = m->n_words_cap ? m->n_words_cap : 4096;
  while (cap - m->n_words < n_more)
    cap *= 2;
  GROW(m->words, cap);
  m->n_words_cap = cap;
  return 0;
}

static int memo_grow_slots(struct memo *m) {
  size_t n_slots = m->n_slots ? m->n_slots * 2 : 2048;
  uint32_t *slots = calloc(n_slots, sizeof *slots);
  if (slots == NULL)
    return SABHA_ENOMEM;
  for (size_t i = 0; i < m->n_entries; i++) {
    size_t j = m->hashes[i] & (n_slots - 1);
    while (slots[j] != 0)
      j = (j + 1) & (n_slots - 1);
    slots[j] = (uint32_t)(i + 1);
  }
  free(m->slots);
  m->slots = slots;
  m->n_slots = n_slots;
  return 0;
}

/* True when entry e covers configuration c: same state, same ok ops, and of
 * the info ops a subset. An info op not yet applied can still be applied
 * later or never, so every way to finish from c also finishes from e, and if
 * e was explored and failed, so does c. (e may also be an ancestor of c on
 * the current path: then c's futures are among e's own, which e's search
 * covers without c.) */
static bool memo_covers(const struct memo *m, size_t e,
                        const struct config *c) {
  if (m->hashes[e] != c->hash || m->states[e] != c->state ||
      m->junks[e] != c->junk || m->lows[e] != c->low || m->highs[e] != c->high)
    return false;
  const uint64_t *w = &m->words[m->word_at[e]];
  if (memcmp(w, c->ok_words, c->n_ok_words * sizeof *w) != 0)
    return false;
  w += c->n_ok_words;
  for (size_t i = 0; i < m->n_info_words; i++) {
    if (w[i] & ~c->info_words[i])
      return false;
  }
  return true;
}

/* Records configuration c unless an entry covers it. c->hash must not
 * depend on info ops, so that configurations differing only in those meet
 * in one probe chain. Returns 1 if recorded, 0 if covered, or SABHA_ENOMEM. */
static int memo_visit(struct memo *m, const struct config *c) {
  if (m->n_slots != 0) {
    size_t j = c->hash & (m->n_slots - 1);
    while (m->slots[j] != 0) {
      if (memo_covers(m, m->slots[j] - 1, c))
        return 0;
      j = (j + 1) & (m->n_slots - 1);
    }
  }
  size_t n_words = c->n_ok_words + m->n_info_words;
  int rc = 0;
  if (m->n_entries == m->n_entries_cap)
    rc = memo_grow_entries(m);
  /* Allocated even when no words are needed yet: memcpy wants a pointer. */
  if (rc == 0 && (m->words == NULL || m->n_words_cap - m->n_words < n_words))
    rc = memo_grow_words(m, n_words);
  if (rc == 0 && (m->n_entries + 1) * 2 > m->n_slots)
    rc = memo_grow_slots(m);
  if (rc != 0)
    return rc;
  size_t e = m->n_entries++;
  m->hashes[e] = c->hash;
  m->states[e] = c->state;
  m->junks[e] = c->junk;
  m->lows[e] = c->low;
  m->highs[e] = c->high;
  m->word_at[e] = m->n_words;
  memcpy(&m->words[m->n_words], c->ok_words,
         c->n_ok_words * sizeof *c->ok_words);
  memcpy(&m->words[m->n_words + c->n_ok_words], c->info_words,
         m->n_info_words * sizeof *c->info_words);
  m->n_words += n_words;
  size_t j = c->hash & (m->n_slots - 1);
  while (m->slots[j] != 0)
    j = (j + 1) & (m->n_slots - 1);
  m->slots[j] = (uint32_t)(e + 1);
  return 1;
}

/* ---- one partition's search ---------------------------------------------- */

/* An event in the list. Index 0 is the sentinel: the list is circular through
 * it, so next[0] is the first event and reaching 0 again is the end. */
struct event {
  uint64_t time_us;
  uint32_t op;      /* rank within the partition */
  uint32_t is_call; /* 1 call, 0 return */
};

/* The three passes over a window, in the order they are tried. */
enum pass {
  PASS_READ, /* ok ops the model calls read_only, where they leave the state
                as it is: the first that fits is the only move (see
                read_only in linearize.h) */
  PASS_OK,   /* the other ok ops, and read_only ones that change the state
                here */
  PASS_INFO, /* info ops: "not yet" is tried before "now" */
};

struct frame {
  uint32_t call; /* the call event of the lifted op */
  uint32_t low_before, high_before;
  uint8_t pass;     /* enum pass: the pass it was lifted in */
  uint8_t alt;      /* which of step()'s next states it took */
  uint8_t n_next;   /* how many step() gave */
  uint8_t deferred; /* `deferred` where it was lifted (search_partition) */
  uint64_t state_before;
};

/* Working memory for a search, sized once for the largest partition. */
struct search {
  const struct lin_model *model;
  const struct hist_op **ops; /* rank -> op */
  size_t n_ops;
  size_t n_ok;          /* ranks [0, n_ok) are ok ops, [n_ok, n_ops) info ops */
  struct event *events; /* [1..n_events], sorted; [0] is the sentinel */
  uint32_t *prev, *next;
  uint32_t *ret_of;    /* rank -> its return event; 0 for info ops */
  uint8_t *pass_of;    /* rank -> enum pass */
  uint64_t *zobrist;   /* ok rank -> random word, XORed into set_hash */
  uint64_t *ok_bits;   /* the ok ops linearized, by rank */
  uint64_t *info_bits; /* the info ops linearized, by rank - n_ok */
  uint64_t set_hash;
  uint32_t low;  /* the lowest ok rank not linearized (n_ok when none) */
  uint32_t high; /* one past the highest ok rank linearized (0 when none) */
  /* States that some op observes (model->observes), sorted and unique; how
   * many ops not yet linearized observe each; per rank, how many it
   * observes (or LIN_OBS_ALL, LIN_OBS_SHIFT) and their entries,
   * LIN_OBS_MAX per rank. obs_all_left and shift_left count the ops not
   * yet linearized that observe all and that shift. */
  uint64_t *obs_states;
  size_t n_obs_states;
  uint32_t *obs_left;
  uint8_t *obs_n;
  uint32_t *obs_of;
  uint32_t obs_all_left;
  uint32_t shift_left;
  /* When the partition has shifts: a Fenwick tree over the entries of
   * obs_states holding how many ops not yet linearized observe each, so
   * that memo_state asks about a range of states in O(log n). */
  bool use_tree;
  uint32_t *tree; /* 1-based: tree[1..n_obs_states] */
  /* Per info rank: the info op before it with the same twin id (see
   * model->twin), which must take effect first; UINT32_MAX for none. */
  uint32_t *twin_before;
  struct frame *stack;
  struct memo memo;
  /* Where the search got furthest, for the violation message. */
  size_t deepest;
  uint32_t stuck_op;    /* the op that returned without taking effect */
  uint32_t last_lifted; /* the op lifted just before, or UINT32_MAX */
  uint64_t stuck_state;
};

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Orders a partition's ops into ranks: ok ops by return, then info ops by
 * call; ties by position in the caller's array, so ranks are reproducible. */
static int rank_cmp(const void *a, const void *b) {
  const struct hist_op *x = *(const struct hist_op *const *)a;
  const struct hist_op *y = *(const struct hist_op *const *)b;
  bool x_info = x->status != HIST_OK, y_info = y->status != HIST_OK;
  if (x_info != y_info)
    return x_info ? 1 : -1;
  uint64_t tx = x_info ? x->call_us : x->return_us;
  uint64_t ty = y_info ? y->call_us : y->return_us;
  if (tx != ty)
    return tx < ty ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int event_cmp(const void *a, const void *b) {
  const struct event *x = a, *y = b;
  if (x->time_us != y->time_us)
    return x->time_us < y->time_us ? -1 : 1;
  /* At equal times calls come first: operations that touch are concurrent,
   * since real-time order needs one to return strictly before the other is
   * called. */
  if (x->is_call != y->is_call)
    return x->is_call ? -1 : 1;
  return x->op < y->op ? -1 : x->op > y->op;
}

/* Ranks the partition held in s->ops and builds its event list. */
static void build_events(struct search *s) {
  qsort(s->ops, s->n_ops, sizeof *s->ops, rank_cmp);
  s->n_ok = 0;
  while (s->n_ok < s->n_ops && s->ops[s->n_ok]->status == HIST_OK)
    s->n_ok++;
  size_t n = 0;
  for (uint32_t i = 0; i < s->n_ops; i++) {
    const struct hist_op *op = s->ops[i];
    s->events[++n] = (struct event){op->call_us, i, 1};
    if (i < s->n_ok)
      s->events[++n] = (struct event){op->return_us, i, 0};
  }
  qsort(&s->events[1], n, sizeof s->events[0], event_cmp);
  for (uint32_t i = 0; i < s->n_ops; i++)
    s->ret_of[i] = 0;
  for (size_t e = 0; e <= n; e++) {
    s->next[e] = (uint32_t)(e == n ? 0 : e + 1);
    s->prev[e] = (uint32_t)(e == 0 ? n : e - 1);
    if (e > 0 && !s->events[e].is_call)
      s->ret_of[s->events[e].op] = (uint32_t)e;
  }
  for (uint32_t i = 0; i < s->n_ok; i++)
    s->zobrist[i] = mix64(0x9e3779b97f4a7c15ull * (i + 1));
  for (uint32_t i = 0; i < s->n_ops; i++) {
    bool read = i < s->n_ok && s->model->read_only != NULL &&
                s->model->read_only(s->ops[i]);
    s->pass_of[i] = i >= s->n_ok ? PASS_INFO : read ? PASS_READ : PASS_OK;
  }
}

static void unlink_event(struct search *s, uint32_t e) {
  s->next[s->prev[e]] = s->next[e];
  s->prev[s->next[e]] = s->prev[e];
}

/* Undoes unlink_event(e); valid while relinks happen in reverse order of the
 * unlinks (Knuth's dancing links). */
static void relink_event(struct search *s, uint32_t e) {
  s->next[s->prev[e]] = e;
  s->prev[s->next[e]] = e;
}

static void lift(struct search *s, uint32_t call) {
  uint32_t ret = s->ret_of[s->events[call].op];
  unlink_event(s, call);
  if (ret != 0)
    unlink_event(s, ret);
}

static void unlift(struct search *s, uint32_t call) {
  uint32_t ret = s->ret_of[s->events[call].op];
  if (ret != 0)
    relink_event(s, ret);
  relink_event(s, call);
}

static bool bit_get(const uint64_t *bits, size_t i) {
  return (bits[i / 64] >> (i % 64)) & 1u;
}

/* Adds delta to entry e's count in the Fenwick tree. */
static void tree_add(struct search *s, size_t e, int delta) {
  for (size_t i = e + 1; i <= s->n_obs_states; i += i & (~i + 1))
    s->tree[i] += (uint32_t)delta;
}

/* The sum of the counts of entries [0, end). */
static uint64_t tree_sum(const struct search *s, size_t end) {
  uint64_t sum = 0;
  for (size_t i = end; i > 0; i -= i & (~i + 1))
    sum += s->tree[i];
  return sum;
}

/* Counts op's observations as done (-1) or pending again (+1). */
static void count_observations(struct search *s, uint32_t op, int delta) {
  uint8_t n = s->obs_n[op];
  if (n == LIN_OBS_ALL) {
    s->obs_all_left += (uint32_t)delta;
    return;
  }
  if (n == LIN_OBS_SHIFT) {
    s->shift_left += (uint32_t)delta;
    return;
  }
  const uint32_t *entries = &s->obs_of[op * LIN_OBS_MAX];
  for (uint8_t i = 0; i < n; i++)
    s->obs_left[entries[i]] += (uint32_t)delta;
  if (s->use_tree) {
    for (uint8_t i = 0; i < n; i++)
      tree_add(s, entries[i], delta);
  }
}

/* Adds op to the linearized set; low and high move as the set grows (the
 * caller keeps their old values to put back). */
static void mark(struct search *s, uint32_t op) {
  if (op < s->n_ok) {
    s->ok_bits[op / 64] |= 1ull << (op % 64);
    s->set_hash ^= s->zobrist[op];
    if (op + 1 > s->high)
      s->high = op + 1;
    while (s->low < s->n_ok && bit_get(s->ok_bits, s->low))
      s->low++;
  } else {
    uint32_t i = op - (uint32_t)s->n_ok;
    s->info_bits[i / 64] |= 1ull << (i % 64);
  }
  count_observations(s, op, -1);
}

/* Removes op from the linearized set, restoring low and high. */
static void unmark(struct search *s, uint32_t op, uint32_t low, uint32_t high) {
  if (op < s->n_ok) {
    s->ok_bits[op / 64] &= ~(1ull << (op % 64));
    s->set_hash ^= s->zobrist[op];
  } else {
    uint32_t i = op - (uint32_t)s->n_ok;
    s->info_bits[i / 64] &= ~(1ull << (i % 64));
  }
  s->low = low;
  s->high = high;
  count_observations(s, op, +1);
}

/* The entry for `state` in obs_states, or OBS_NONE. */
static uint32_t obs_find(const struct search *s, uint64_t state) {
  size_t lo = 0, hi = s->n_obs_states;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->obs_states[mid] < state)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < s->n_obs_states && s->obs_states[lo] == state)
    return (uint32_t)lo;
  return OBS_NONE;
}

/* The first entry of obs_states above `state` (above: true) or at or
 * above it (false). */
static size_t obs_bound(const struct search *s, uint64_t state, bool above) {
  size_t lo = 0, hi = s->n_obs_states;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->obs_states[mid] < state || (above && s->obs_states[mid] == state))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* True when an op not yet linearized observes a state in [lo, hi]; only
 * with shifts, which keep the Fenwick tree. */
static bool observed_between(const struct search *s, uint64_t lo, uint64_t hi) {
  assert(s->use_tree);
  size_t first = obs_bound(s, lo, false);
  size_t end = obs_bound(s, hi, true);
  return first < end && tree_sum(s, end) > tree_sum(s, first);
}

/* The state as the memo records it: itself if an op still to be linearized
 * can observe it, else its merge class, marked as junk. By the model's
 * observes() contract, the states of a class that no remaining op observes
 * have the same futures, so they may share memo entries. This is what keeps
 * info writes affordable: each can be applied at any time after its call,
 * and its value would otherwise be one more state at every later point of
 * the search. The junk mark keeps a class apart from a state that happens
 * to have the same number.
 *
 * With r shifts remaining, the 2r states after `state` count too: the
 * shifts, each moving a state up by one or two, could carry it to any of
 * them (see linearize.h). Two states of a class judged alike so stay alike
 * after a shift, with one shift fewer: their next ranges lie within their
 * old ones. */
static void memo_state(const struct search *s, uint64_t state,
                       struct config *key) {
  const struct lin_model *model = s->model;
  key->state = state;
  key->junk = false;
  if (model->observes == NULL || s->obs_all_left > 0)
    return;
  unsigned cls = model->merge_class ? model->merge_class(state) : 0;
  if (cls == LIN_CLASS_NONE)
    return;
  assert(cls < LIN_CLASSES_MAX);
  if (s->shift_left == 0) { /* the common case: just this state */
    uint32_t i = obs_find(s, state);
    if (i == OBS_NONE || s->obs_left[i] == 0) {
      key->state = cls;
      key->junk = true;
    }
    return;
  }
  uint64_t span = 2 * (uint64_t)s->shift_left;
  uint64_t last = state + span; /* may wrap */
  bool observed = last >= state ? observed_between(s, state, last)
                                : observed_between(s, state, UINT64_MAX) ||
                                      observed_between(s, 0, last);
  if (observed)
    return;
  key->state = cls;
  key->junk = true;
}

/* When op observes no state and `key`, the memo's view of the state it
 * leads to, is junk: the bit of its class, else 0. Such an op erases the
 * state and does nothing else, so all such ops leading to one class are
 * interchangeable. */
static unsigned blind_bit(const struct search *s, uint32_t op,
                          const struct config *key) {
  return s->obs_n[op] == 0 && key->junk ? 1u << key->state : 0;
}

/* True unless op has a twin called before it that has not taken effect
 * yet: twins take effect in the order of their calls (see model->twin). */
static bool twin_ready(const struct search *s, uint32_t op) {
  if (op < s->n_ok)
    return true;
  uint32_t before = s->twin_before[op - s->n_ok];
  return before == UINT32_MAX ||
         bit_get(s->info_bits, before - (uint32_t)s->n_ok);
}

/* Fills twin_before for the ranked partition: info ranks are in call
 * order, so each twin waits for the one ranked just before it. */
static void build_twins(struct search *s) {
  uint32_t last[LIN_TWINS_MAX];
  for (unsigned t = 0; t < LIN_TWINS_MAX; t++)
    last[t] = UINT32_MAX;
  for (uint32_t i = (uint32_t)s->n_ok; i < s->n_ops; i++) {
    unsigned t = s->model->twin ? s->model->twin(s->ops[i]) : 0;
    assert(t < LIN_TWINS_MAX);
    s->twin_before[i - s->n_ok] = t == 0 ? UINT32_MAX : last[t];
    if (t != 0)
      last[t] = i;
  }
}

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The merge classes that can occur in the partition: init()'s, and those
 * its ops lead into (model->classes); all when the model does not say. */
static unsigned classes_possible(const struct search *s) {
  const struct lin_model *model = s->model;
  if (model->merge_class == NULL)
    return 1u;
  if (model->classes == NULL)
    return (1u << LIN_CLASSES_MAX) - 1;
  unsigned cls = model->merge_class(model->init());
  unsigned mask = cls < LIN_CLASSES_MAX ? 1u << cls : 0;
  for (uint32_t i = 0; i < s->n_ops; i++)
    mask |= model->classes(s->ops[i]);
  return mask;
}

/* What op observes (model->observes), without states of classes that
 * cannot occur in the partition (`classes`, a mask): they are never the
 * state, so tracking them would only make every lookup slower. */
static unsigned observed_states(const struct search *s, uint32_t op,
                                unsigned classes, uint64_t *states) {
  const struct lin_model *model = s->model;
  unsigned n = model->observes(s->ops[op], states);
  assert(n <= LIN_OBS_MAX || n == LIN_OBS_ALL || n == LIN_OBS_SHIFT);
  if (n > LIN_OBS_MAX || model->merge_class == NULL)
    return n;
  unsigned kept = 0;
  for (unsigned j = 0; j < n; j++) {
    unsigned cls = model->merge_class(states[j]);
    if (cls >= LIN_CLASSES_MAX || (classes >> cls) & 1u)
      states[kept++] = states[j];
  }
  return kept;
}

/* Fills the observation tables for the ranked partition. */
static void build_observations(struct search *s) {
  const struct lin_model *model = s->model;
  s->n_obs_states = 0;
  s->obs_all_left = 0;
  s->shift_left = 0;
  s->use_tree = false;
  for (uint32_t i = 0; i < s->n_ops; i++)
    s->obs_n[i] = 0;
  if (model->observes == NULL)
    return;
  unsigned classes = classes_possible(s);
  size_t n = 0;
  for (uint32_t i = 0; i < s->n_ops; i++) {
    uint64_t *states = &s->obs_states[n];
    unsigned n_seen = observed_states(s, i, classes, states);
    s->obs_n[i] = (uint8_t)n_seen;
    if (n_seen == LIN_OBS_ALL)
      s->obs_all_left++;
    else if (n_seen == LIN_OBS_SHIFT)
      s->shift_left++;
    else
      n += n_seen;
  }
  qsort(s->obs_states, n, sizeof *s->obs_states, u64_cmp);
  size_t n_unique = 0;
  for (size_t i = 0; i < n; i++) {
    if (n_unique == 0 || s->obs_states[n_unique - 1] != s->obs_states[i])
      s->obs_states[n_unique++] = s->obs_states[i];
  }
  s->n_obs_states = n_unique;
  for (size_t i = 0; i < n_unique; i++)
    s->obs_left[i] = 0;
  for (uint32_t i = 0; i < s->n_ops; i++) {
    uint64_t states[LIN_OBS_MAX];
    if (s->obs_n[i] > LIN_OBS_MAX || s->obs_n[i] == 0)
      continue;
    unsigned n_seen = observed_states(s, i, classes, states);
    assert(n_seen == s->obs_n[i]);
    for (unsigned j = 0; j < n_seen; j++) {
      uint32_t e = obs_find(s, states[j]);
      assert(e != OBS_NONE);
      s->obs_of[i * LIN_OBS_MAX + j] = e;
      s->obs_left[e]++;
    }
  }
  s->use_tree = s->shift_left > 0;
  if (s->use_tree) {
    for (size_t i = 0; i <= n_unique; i++)
      s->tree[i] = 0;
    for (size_t e = 0; e < n_unique; e++)
      tree_add(s, e, (int)s->obs_left[e]);
  }
}

/* Fills *c with the current configuration, for the memo, with `state` as
 * the state. */
static void current(const struct search *s, uint64_t state, struct config *c) {
  memo_state(s, state, c);
  c->hash = mix64(s->set_hash ^ mix64(c->state ^ (c->junk ? JUNK_SALT : 0)));
  c->low = s->low;
  c->high = s->high;
  c->ok_words = &s->ok_bits[s->low / 64];
  c->n_ok_words = s->high > s->low ? (s->high - 1) / 64 - s->low / 64 + 1 : 0;
  c->info_words = s->info_bits;
}

struct outcome {
  enum lin_result result;
  uint64_t steps;
};

/* Searches one partition (s->ops, s->n_ops) for a linearization. Returns 0
 * and fills *out, or SABHA_ENOMEM.
 *
 * The ops that may take effect next are those whose call comes before the
 * first remaining return: the window. The walk goes over it in up to three
 * passes (enum pass), each ending at that return:
 * - reads: the first read that fits and leaves the state as it is, is
 *   lifted and nothing else is tried from here, since any order that works
 *   can be rearranged to start with it;
 * - the other ok ops, each in turn;
 * - info ops, each in turn, except that of the blind ones (is_blind) only the
 *   first is tried. Trying "the info op has not happened yet" before "it
 *   has" means a configuration is usually met first with the fewest info ops
 *   applied, so that memo_covers then cuts off its variants with more.
 * An op whose step() gives two next states is tried with each: undoing the
 * first comes back to the same op with the second (frame.alt).
 * Why none of these can turn a linearizable history into a violation: a
 * configuration is given up only when each of its moves was tried, or is
 * covered by a configuration that was tried, or (reads, blind writes) can
 * be swapped for a move that was tried; by induction on the length of the
 * shortest way to finish, a configuration that can finish is never given
 * up. test_linearize checks this against a brute-force search. */
static int search_partition(struct search *s, uint64_t steps_max,
                            struct outcome *out) {
  const struct lin_model *model = s->model;
  build_events(s);
  build_observations(s);
  build_twins(s);
  size_t n_ok_words = (s->n_ok + 63) / 64;
  size_t n_info_words = (s->n_ops - s->n_ok + 63) / 64;
  memset(s->ok_bits, 0, n_ok_words * sizeof *s->ok_bits);
  memset(s->info_bits, 0, n_info_words * sizeof *s->info_bits);
  memo_reset(&s->memo, n_info_words);
  s->set_hash = 0;
  s->low = 0;
  s->high = 0;
  s->deepest = 0;
  s->stuck_op = UINT32_MAX;
  s->last_lifted = UINT32_MAX;
  s->stuck_state = 0;

  size_t n_ok_left = s->n_ok;
  size_t n_info_left = s->n_ops - s->n_ok;
  uint64_t state = model->init();
  struct config c;
  current(s, state, &c);
  int rc = memo_visit(&s->memo, &c);
  if (rc < 0)
    return rc;
  size_t depth = 0;
  uint64_t steps = 0;
  enum pass pass = PASS_READ;
  unsigned blind_tried = 0; /* per class: a blind op leading there was tried */
  /* The read pass met a read that fits but changes the state here, so the
   * ok pass must try the reads too; without expiry this never happens,
   * and the ok pass skips them as it always did. */
  bool deferred = false;
  unsigned alt_from = 0; /* the first of step()'s next states to try */
  uint32_t cur = s->next[0];
  out->result = LIN_OK;
  while (n_ok_left > 0) {
    if (steps == steps_max) {
      out->result = LIN_UNKNOWN;
      break;
    }
    steps++;
    /* While an ok op is pending its return event is in the list, and the
     * walk stops there at the latest: it never runs off the end. */
    assert(cur != 0);
    const struct event *ev = &s->events[cur];
    uint32_t op = ev->op;
    bool dead = false;
    if (ev->is_call) {
      /* Most steps pass over ops of another pass: keep that path short. */
      enum pass op_pass = (enum pass)s->pass_of[op];
      if (op_pass != pass &&
          !(pass == PASS_OK && op_pass == PASS_READ && deferred)) {
        assert(alt_from == 0);
        cur = s->next[cur];
        continue;
      }
      uint64_t nexts[LIN_NEXT_MAX];
      unsigned n_next = 0;
      if (twin_ready(s, op))
        n_next = model->step(state, s->ops[op], nexts);
      assert(n_next <= LIN_NEXT_MAX);
      /* A read counts as one only where it leaves the state as it is. */
      bool read = pass == PASS_READ && n_next == 1 && nexts[0] == state;
      if (pass == PASS_READ && !read) {
        deferred |= n_next > 0;
        n_next = 0;
      }
      unsigned alt = alt_from;
      alt_from = 0;
      bool lifted = false;
      for (; alt < n_next && !lifted && !dead; alt++) {
        uint32_t low = s->low, high = s->high;
        mark(s, op);
        current(s, nexts[alt], &c);
        unsigned blind = pass == PASS_INFO ? blind_bit(s, op, &c) : 0;
        if (blind & blind_tried) {
          unmark(s, op, low, high);
          continue;
        }
        blind_tried |= blind;
        rc = memo_visit(&s->memo, &c);
        if (rc < 0)
          return rc;
        if (rc == 1) {
          s->stack[depth++] = (struct frame){.call = cur,
                                             .low_before = low,
                                             .high_before = high,
                                             .pass = (uint8_t)pass,
                                             .alt = (uint8_t)alt,
                                             .n_next = (uint8_t)n_next,
                                             .deferred = deferred,
                                             .state_before = state};
          state = nexts[alt];
          lift(s, cur);
          if (pass == PASS_INFO)
            n_info_left--;
          else
            n_ok_left--;
          lifted = true;
          break;
        }
        unmark(s, op, low, high);
        /* A read that fits now but leads somewhere already explored: this
         * configuration has no future either (see read_only in
         * linearize.h). */
        dead = read;
      }
      if (lifted) {
        pass = PASS_READ;
        blind_tried = 0;
        deferred = false;
        cur = s->next[0];
        continue;
      }
      if (!dead) {
        cur = s->next[cur];
        continue;
      }
    }
    /* A return: the window has been tried for this pass; on to the next. */
    if (!dead && pass == PASS_READ) {
      pass = PASS_OK;
      cur = s->next[0];
      continue;
    }
    if (!dead && pass == PASS_OK && n_info_left > 0) {
      pass = PASS_INFO;
      blind_tried = 0;
      cur = s->next[0];
      continue;
    }
    /* A dead end: `op` returned without taking effect in this order.
     * Remember the first dead end of the longest order, for the report. */
    if (!dead && (depth > s->deepest || s->stuck_op == UINT32_MAX)) {
      s->deepest = depth;
      s->stuck_op = op;
      s->stuck_state = state;
      s->last_lifted =
          depth ? s->events[s->stack[depth - 1].call].op : UINT32_MAX;
    }
    /* Undo the last lift and go on, in the pass it was made in, with the
     * op's next alternative or else after it. A read was the only move
     * worth trying from where it was lifted, so undoing one means undoing
     * the move before it too. */
    bool exhausted = false;
    for (;;) {
      if (depth == 0) {
        exhausted = true;
        break;
      }
      struct frame f = s->stack[--depth];
      uint32_t undone = s->events[f.call].op;
      unlift(s, f.call);
      unmark(s, undone, f.low_before, f.high_before);
      pass = (enum pass)f.pass;
      deferred = f.deferred;
      if (pass == PASS_INFO)
        n_info_left++;
      else
        n_ok_left++;
      /* Whether it was blind is judged in the configuration it was lifted
       * from, where unmark() took the observation counts back to; `state`
       * is still the state it led to. */
      struct config lifted_to;
      memo_state(s, state, &lifted_to);
      blind_tried = pass == PASS_INFO ? blind_bit(s, undone, &lifted_to) : 0;
      state = f.state_before;
      if (f.alt + 1u < f.n_next) {
        cur = f.call;
        alt_from = f.alt + 1u;
      } else {
        cur = s->next[f.call];
      }
      if (pass != PASS_READ)
        break;
    }
    if (exhausted) {
      out->result = LIN_VIOLATION;
      break;
    }
  }
  out->steps = steps;
  return 0;
}

/* ---- reporting ----------------------------------------------------------- */

static int format_value(char *buf, size_t size, int64_t value) {
  if (value == HIST_NIL)
    return snprintf(buf, size, "nil");
  return snprintf(buf, size, "v%" PRId64, value);
}

/* A kv model state: "nil", "v7", or "v7 ttl" for a value that may expire. */
static void format_state(char *buf, size_t size, uint64_t state) {
  format_value(buf, size, kv_value(state));
  if (kv_expiring(state)) {
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, " ttl");
  }
}

/* "c3 get k1->v7 [120,180]": who did what, and when. */
static void format_op(char *buf, size_t size, const struct hist_op *op) {
  char v[24], x[24], end[24];
  format_value(v, sizeof v, op->value);
  format_value(x, sizeof x, op->expected);
  if (op->status == HIST_INFO)
    snprintf(end, sizeof end, "inf)");
  else
    snprintf(end, sizeof end, "%" PRIu64 "]", op->return_us);
  switch (op->kind) {
  case HIST_PUT:
    snprintf(buf, size, "c%" PRIu32 " put k%" PRIu32 "=%s%s [%" PRIu64 ",%s",
             op->client, op->key, v, (op->flags & HIST_TTL) ? " ttl" : "",
             op->call_us, end);
    break;
  case HIST_INCR:
    if (op->status == HIST_OK)
      snprintf(buf, size,
               "c%" PRIu32 " incr k%" PRIu32 "->%" PRId64 " [%" PRIu64 ",%s",
               op->client, op->key, op->value, op->call_us, end);
    else
      snprintf(buf, size, "c%" PRIu32 " incr k%" PRIu32 "->? [%" PRIu64 ",%s",
               op->client, op->key, op->call_us, end);
    break;
  case HIST_APPEND:
    snprintf(buf, size, "c%" PRIu32 " append k%" PRIu32 " [%" PRIu64 ",%s",
             op->client, op->key, op->call_us, end);
    break;
  case HIST_GET:
    snprintf(buf, size, "c%" PRIu32 " get k%" PRIu32 "->%s [%" PRIu64 ",%s",
             op->client, op->key, v, op->call_us, end);
    break;
  case HIST_CAS:
    snprintf(buf, size,
             "c%" PRIu32 " cas k%" PRIu32 " %s->%s %s [%" PRIu64 ",%s",
             op->client, op->key, x, v,
             op->status != HIST_OK ? "?"
             : op->output          ? "true"
                                   : "false",
             op->call_us, end);
    break;
  default:
    snprintf(buf, size, "c%" PRIu32 " op%" PRIu32 " k%" PRIu32, op->client,
             op->kind, op->key);
    break;
  }
}

static void report_violation(struct lin_report *r, const struct search *s,
                             uint64_t partition) {
  char stuck[96], last[96], state[32];
  /* The first dead end is always at a return, which records these; a report
   * without them would still be a violation, so say that much. */
  if (s->stuck_op >= s->n_ops) {
    snprintf(r->message, sizeof r->message,
             "partition %" PRIu64 ": no order of its %zu ops fits", partition,
             s->n_ops);
    return;
  }
  format_op(stuck, sizeof stuck, s->ops[s->stuck_op]);
  format_state(state, sizeof state, s->stuck_state);
  if (s->last_lifted == UINT32_MAX)
    snprintf(last, sizeof last, "none");
  else
    format_op(last, sizeof last, s->ops[s->last_lifted]);
  /* The op that could not be placed comes first: if extreme numbers make
   * the message too long, the tail is what gets cut, marked with "...". */
  int len = snprintf(r->message, sizeof r->message,
                     "partition %" PRIu64 ": %s cannot take effect in any "
                     "order; the furthest order placed %zu of %zu ops, "
                     "ending with %s in state %s",
                     partition, stuck, s->deepest, s->n_ops, last, state);
  if (len >= (int)sizeof r->message)
    memcpy(&r->message[sizeof r->message - 4], "...", 4);
}

/* ---- lin_check ------------------------------------------------------------
 */

struct keyed {
  uint64_t partition;
  size_t index; /* into the caller's ops */
};

static int keyed_cmp(const void *a, const void *b) {
  const struct keyed *x = a, *y = b;
  if (x->partition != y->partition)
    return x->partition < y->partition ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static void search_free(struct search *s) {
  free((void *)s->ops);
  free(s->events);
  free(s->prev);
  free(s->next);
  free(s->ret_of);
  free(s->pass_of);
  free(s->zobrist);
  free(s->ok_bits);
  free(s->info_bits);
  free(s->obs_states);
  free(s->obs_left);
  free(s->tree);
  free(s->obs_n);
  free(s->obs_of);
  free(s->twin_before);
  free(s->stack);
  memo_free(&s->memo);
}

static int search_alloc(struct search *s, const struct lin_model *model,
                        size_t n_ops_max) {
  memset(s, 0, sizeof *s);
  s->model = model;
  size_t n_events = 2 * n_ops_max + 1;
  size_t n_words = (n_ops_max + 63) / 64;
  s->ops = malloc(n_ops_max * sizeof *s->ops);
  s->events = malloc(n_events * sizeof *s->events);
  s->prev = malloc(n_events * sizeof *s->prev);
  s->next = malloc(n_events * sizeof *s->next);
  s->ret_of = malloc(n_ops_max * sizeof *s->ret_of);
  s->pass_of = malloc(n_ops_max * sizeof *s->pass_of);
  s->zobrist = malloc(n_ops_max * sizeof *s->zobrist);
  s->ok_bits = malloc(n_words * sizeof *s->ok_bits);
  s->info_bits = malloc(n_words * sizeof *s->info_bits);
  s->obs_states = malloc(n_ops_max * LIN_OBS_MAX * sizeof *s->obs_states);
  s->obs_left = malloc(n_ops_max * LIN_OBS_MAX * sizeof *s->obs_left);
  s->tree = malloc((n_ops_max * LIN_OBS_MAX + 1) * sizeof *s->tree);
  s->obs_n = malloc(n_ops_max * sizeof *s->obs_n);
  s->obs_of = malloc(n_ops_max * LIN_OBS_MAX * sizeof *s->obs_of);
  s->twin_before = malloc(n_ops_max * sizeof *s->twin_before);
  s->stack = malloc(n_ops_max * sizeof *s->stack);
  if (!s->ops || !s->tree || !s->events || !s->prev || !s->next || !s->ret_of ||
      !s->pass_of || !s->zobrist || !s->ok_bits || !s->info_bits ||
      !s->obs_states || !s->obs_left || !s->obs_n || !s->obs_of ||
      !s->twin_before || !s->stack)
    return SABHA_ENOMEM;
  return 0;
}

int lin_check(const struct hist_op *ops, size_t n_ops,
              const struct lin_model *model, uint64_t steps_max,
              struct lin_report *report) {
  assert(ops != NULL || n_ops == 0);
  assert(model != NULL && model->init && model->step && model->partition);
  assert(report != NULL);
  memset(report, 0, sizeof *report);
  report->result = LIN_OK;
  if (steps_max == 0)
    steps_max = LIN_STEPS_MAX_DEFAULT;
  /* Ranks and event numbers are 32-bit. */
  if (n_ops > UINT32_MAX / 4) {
    snprintf(report->message, sizeof report->message, "history too large");
    return SABHA_ETOOBIG;
  }

  /* Reject what cannot be a history, before any verdict. */
  for (size_t i = 0; i < n_ops; i++) {
    const struct hist_op *op = &ops[i];
    if (op->status > HIST_INFO || op->kind > HIST_APPEND ||
        (op->flags & ~HIST_TTL) != 0) {
      snprintf(report->message, sizeof report->message,
               "op %zu: unknown status %" PRIu32 ", kind %" PRIu32
               " or flags %" PRIu32,
               i, op->status, op->kind, op->flags);
      return SABHA_EINVAL;
    }
    if ((op->flags & HIST_TTL) &&
        (op->kind != HIST_PUT || op->value == HIST_NIL)) {
      snprintf(report->message, sizeof report->message,
               "op %zu: ttl on an op that is not a put of a value", i);
      return SABHA_EINVAL;
    }
    const char *why = model->invalid ? model->invalid(op) : NULL;
    if (why != NULL) {
      snprintf(report->message, sizeof report->message, "op %zu: %s", i, why);
      return SABHA_EINVAL;
    }
    if (op->status == HIST_OK && op->return_us < op->call_us) {
      snprintf(report->message, sizeof report->message,
               "op %zu: returns at %" PRIu64 " before its call at %" PRIu64, i,
               op->return_us, op->call_us);
      return SABHA_EINVAL;
    }
  }
  struct keyed *keyed = malloc((n_ops ? n_ops : 1) * sizeof *keyed);
  if (keyed == NULL) {
    snprintf(report->message, sizeof report->message, "out of memory");
    return SABHA_ENOMEM;
  }
  size_t n_kept = 0;
  for (size_t i = 0; i < n_ops; i++) {
    const struct hist_op *op = &ops[i];
    if (op->status == HIST_FAIL) /* definitely took no effect */
      continue;
    if (op->status == HIST_INFO && op->kind == HIST_GET) /* observed nothing */
      continue;
    keyed[n_kept++] = (struct keyed){model->partition(op), i};
  }
  qsort(keyed, n_kept, sizeof *keyed, keyed_cmp);
  report->n_ops = n_kept;
  size_t n_ops_max = 0;
  for (size_t i = 0, run = 0; i < n_kept; i++) {
    run = (i > 0 && keyed[i].partition == keyed[i - 1].partition) ? run + 1 : 1;
    report->n_partitions += run == 1;
    if (run > n_ops_max)
      n_ops_max = run;
  }

  struct search s;
  int rc = search_alloc(&s, model, n_ops_max ? n_ops_max : 1);
  for (size_t start = 0; rc == 0 && start < n_kept;) {
    size_t end = start;
    while (end < n_kept && keyed[end].partition == keyed[start].partition)
      end++;
    uint64_t partition = keyed[start].partition;
    s.n_ops = end - start;
    for (size_t i = start; i < end; i++)
      s.ops[i - start] = &ops[keyed[i].index];
    struct outcome out;
    rc = search_partition(&s, steps_max, &out);
    if (rc != 0)
      break;
    report->steps += out.steps;
    if (out.result == LIN_VIOLATION) {
      /* The worst verdict there is: no later partition can change it. */
      report->result = LIN_VIOLATION;
      report->partition = partition;
      report_violation(report, &s, partition);
      break;
    }
    if (out.result == LIN_UNKNOWN && report->result == LIN_OK) {
      report->result = LIN_UNKNOWN;
      report->partition = partition;
      snprintf(report->message, sizeof report->message,
               "partition %" PRIu64 ": budget of %" PRIu64
               " steps ran out with %zu ops; verdict unknown",
               partition, steps_max, s.n_ops);
    }
    start = end;
  }
  search_free(&s);
  free(keyed);
  if (rc != 0) {
    snprintf(report->message, sizeof report->message, "out of memory");
    return rc;
  }
  return 0;
}
