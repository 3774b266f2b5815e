/* The application invariant checkers (app_checks.h): a model of the ledger,
 * seats, locks and orders, replayed from the committed command stream and
 * compared with what the state machine answered and holds.
 *
 * Independence is the point: the model keeps its own tables (a small
 * byte-keyed hash index and arrays of records, below), its own number
 * parser and its own rules, written from the contract in sm/app.h and not
 * from app*.c. What it shares with the machine is only the vocabulary: the
 * command format (app_decode) and the order state names. Memory is
 * bounded by the run (one record per account, txid, seat, PNR, request,
 * lock and order the stream names); running out aborts, as the simulator's
 * allocations do. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/decimal.h"
#include "sabha/engine.h"
#include "sim/app_checks.h"

#define NONE UINT32_MAX
#define KEY_BYTES_MAX (2u + 3u * APP_ARG_BYTES_MAX)

static void oom(void) {
  fprintf(stderr, "sabha sim: out of memory in the app checkers\n");
  abort();
}

static void *xrealloc(void *p, size_t size) {
  void *q = realloc(p, size == 0 ? 1 : size);
  if (q == NULL)
    oom();
  return q;
}

/* ---- a byte-keyed index: key -> dense record number -----------------------
 */

struct ntab {
  uint8_t *arena; /* keys, back to back */
  size_t arena_n, arena_cap;
  uint32_t *off; /* [n]: key k is arena[off[k], off[k] + len[k]) */
  uint16_t *len;
  uint32_t n, cap;
  uint32_t *slots; /* record + 1; 0: empty; at most half full */
  uint32_t slots_cap;
};

static uint32_t key_hash(const uint8_t *p, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return (uint32_t)(h ^ (h >> 32));
}

static bool nt_equal(const struct ntab *t, uint32_t k, const uint8_t *p,
                     size_t len) {
  return t->len[k] == len && memcmp(t->arena + t->off[k], p, len) == 0;
}

static uint32_t nt_find(const struct ntab *t, const uint8_t *p, size_t len) {
  if (t->slots_cap == 0)
    return NONE;
  uint32_t mask = t->slots_cap - 1;
  for (uint32_t i = key_hash(p, len) & mask;; i = (i + 1) & mask) {
    uint32_t k1 = t->slots[i];
    if (k1 == 0)
      return NONE;
    if (nt_equal(t, k1 - 1, p, len))
      return k1 - 1;
  }
}

static void nt_place(struct ntab *t, uint32_t k) {
  uint32_t mask = t->slots_cap - 1;
  uint32_t i = key_hash(t->arena + t->off[k], t->len[k]) & mask;
  while (t->slots[i] != 0)
    i = (i + 1) & mask;
  t->slots[i] = k + 1;
}

static void nt_grow_slots(struct ntab *t) {
  free(t->slots);
  t->slots_cap = t->slots_cap == 0 ? 64 : t->slots_cap * 2;
  t->slots = calloc(t->slots_cap, sizeof *t->slots);
  if (t->slots == NULL)
    oom();
  for (uint32_t k = 0; k < t->n; k++)
    nt_place(t, k);
}

/* Adds an absent key; returns its record number. */
static uint32_t nt_add(struct ntab *t, const uint8_t *p, size_t len) {
  assert(len <= KEY_BYTES_MAX && nt_find(t, p, len) == NONE);
  if (t->n == t->cap) {
    t->cap = t->cap == 0 ? 64 : t->cap * 2;
    t->off = xrealloc(t->off, t->cap * sizeof *t->off);
    t->len = xrealloc(t->len, t->cap * sizeof *t->len);
  }
  if (t->arena_n + len > t->arena_cap) {
    t->arena_cap = (t->arena_cap + len) * 2;
    t->arena = xrealloc(t->arena, t->arena_cap);
  }
  memcpy(t->arena + t->arena_n, p, len);
  t->off[t->n] = (uint32_t)t->arena_n;
  t->len[t->n] = (uint16_t)len;
  t->arena_n += len;
  uint32_t k = t->n++;
  if (2 * t->n > t->slots_cap)
    nt_grow_slots(t);
  else
    nt_place(t, k);
  return k;
}

static void nt_free(struct ntab *t) {
  free(t->arena);
  free(t->off);
  free(t->len);
  free(t->slots);
}

/* A table of records of one kind, found by key. */
struct dom {
  struct ntab keys;
  uint8_t *rec;
  size_t rec_bytes;
  uint32_t rec_cap;
};

static void *dom_at(const struct dom *d, uint32_t k) {
  return k == NONE ? NULL : d->rec + (size_t)k * d->rec_bytes;
}

static void *dom_find(const struct dom *d, const uint8_t *p, size_t len) {
  return dom_at(d, nt_find(&d->keys, p, len));
}

/* The record under key, created zeroed when absent. */
static void *dom_get(struct dom *d, const uint8_t *p, size_t len) {
  uint32_t k = nt_find(&d->keys, p, len);
  if (k != NONE)
    return dom_at(d, k);
  k = nt_add(&d->keys, p, len);
  if (k >= d->rec_cap) {
    d->rec_cap = d->rec_cap == 0 ? 64 : d->rec_cap * 2;
    d->rec = xrealloc(d->rec, (size_t)d->rec_cap * d->rec_bytes);
  }
  memset(dom_at(d, k), 0, d->rec_bytes);
  return dom_at(d, k);
}

/* ---- the model ------------------------------------------------------------
 */

struct ck_account {
  int64_t balance;
  int64_t opened_with;
};

struct ck_tx {
  uint32_t moved;   /* effective applies: at most 1 */
  uint32_t refused; /* refused for funds (first time) */
};

struct ck_seat {
  uint64_t pnr; /* 0: free */
  uint32_t group;
};

struct ck_group {
  uint32_t seats;
  uint32_t held;
};

struct ck_pnr {
  uint32_t seat;
  bool cancelled;
};

struct ck_request {
  uint64_t pnr;
};

struct ck_lock {
  uint8_t owner_len; /* 0: no current grant */
  uint8_t owner[APP_ARG_BYTES_MAX];
  uint64_t token;
  uint64_t token_max;
  uint64_t expires_ms;
};

struct ck_order {
  uint8_t state;          /* enum app_order_state */
  uint8_t cancelled_from; /* the state a cancel found it in */
  bool cancel_applied;
  int64_t amount;
  uint32_t customer_hash;
  uint8_t customer_len;
};

/* The money opened up to a log position: a node that lags is audited
 * against what was opened by the position it applied, not by the newest. */
struct ck_opened {
  uint64_t index;
  uint32_t pos;
  int64_t total; /* opened up to and including (index, pos) */
};

struct appck {
  uint64_t observed;
  uint64_t clock_ms; /* the highest stamp observed */
  uint64_t index;    /* the position being observed */
  uint32_t pos;
  int64_t opened_total;
  struct ck_opened *opened; /* one per account opened, in log order */
  uint32_t n_opened, cap_opened;
  struct dom accounts, txs, seats, groups, pnrs, requests, locks, orders;
};

int appck_new(struct appck **out) {
  struct appck *ck = calloc(1, sizeof *ck);
  if (ck == NULL)
    return SABHA_ENOMEM;
  ck->accounts.rec_bytes = sizeof(struct ck_account);
  ck->txs.rec_bytes = sizeof(struct ck_tx);
  ck->seats.rec_bytes = sizeof(struct ck_seat);
  ck->groups.rec_bytes = sizeof(struct ck_group);
  ck->pnrs.rec_bytes = sizeof(struct ck_pnr);
  ck->requests.rec_bytes = sizeof(struct ck_request);
  ck->locks.rec_bytes = sizeof(struct ck_lock);
  ck->orders.rec_bytes = sizeof(struct ck_order);
  *out = ck;
  return 0;
}

void appck_free(struct appck *ck) {
  if (ck == NULL)
    return;
  struct dom *doms[] = {&ck->accounts, &ck->txs,      &ck->seats, &ck->groups,
                        &ck->pnrs,     &ck->requests, &ck->locks, &ck->orders};
  for (size_t i = 0; i < sizeof doms / sizeof doms[0]; i++) {
    nt_free(&doms[i]->keys);
    free(doms[i]->rec);
  }
  free(ck->opened);
  free(ck);
}

uint64_t appck_observed(const struct appck *ck) {
  return ck->observed;
}

/* ---- helpers --------------------------------------------------------------
 */

static uint32_t violation(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static uint32_t violation(char *why, size_t why_size, const char *fmt, ...) {
  if (why != NULL && why_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
  }
  return 1;
}

/* Printable text of an argument, for messages. */
struct ptext {
  char s[APP_ARG_BYTES_MAX + 1];
};

static struct ptext pt(const uint8_t *p, size_t len) {
  struct ptext t;
  size_t n = len < APP_ARG_BYTES_MAX ? len : APP_ARG_BYTES_MAX;
  for (size_t i = 0; i < n; i++)
    t.s[i] = p[i] >= ' ' && p[i] <= '~' ? (char)p[i] : '?';
  t.s[n] = '\0';
  return t;
}

static struct ptext ptarg(struct app_arg a) {
  return pt(a.ptr, a.len);
}

/* A decimal in 0..INT64_MAX, digits only. */
static bool parse_i64(struct app_arg a, int64_t *out) {
  uint64_t v;
  if (dec_parse_u64(a.ptr, a.len, DEC_LEADING_ZEROS, 0, INT64_MAX, &v) !=
      DEC_OK)
    return false;
  *out = (int64_t)v;
  return true;
}

/* "PNR0000000042" -> 42. */
static bool parse_pnr(struct app_arg a, uint64_t *out) {
  int64_t v;
  if (a.len < 4 || memcmp(a.ptr, "PNR", 3) != 0)
    return false;
  struct app_arg digits = {a.ptr + 3, a.len - 3};
  if (!parse_i64(digits, &v) || v == 0)
    return false;
  *out = (uint64_t)v;
  return true;
}

static enum app_order_state parse_state(struct app_arg a) {
  for (int s = APP_ORDER_CREATED; s <= APP_ORDER_CANCELLED; s++) {
    const char *name = app_order_state_name((enum app_order_state)s);
    if (name != NULL && strlen(name) == a.len &&
        strncasecmp(name, (const char *)a.ptr, a.len) == 0)
      return (enum app_order_state)s;
  }
  return 0;
}

static const char *state_name(uint8_t s) {
  const char *name = s == 0 ? NULL : app_order_state_name(s);
  return name != NULL ? name : "none";
}

/* Keys of several parts: each part but the last is length-prefixed. */
static size_t key_of(uint8_t *buf, const struct app_arg *parts, size_t n) {
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    if (i + 1 < n)
      buf[used++] = (uint8_t)parts[i].len;
    memcpy(buf + used, parts[i].ptr, parts[i].len);
    used += parts[i].len;
  }
  return used;
}

static struct ck_seat *seat_find(struct appck *ck, struct app_arg train,
                                 struct app_arg date, struct app_arg seat) {
  uint8_t key[KEY_BYTES_MAX];
  struct app_arg parts[] = {train, date, seat};
  return dom_find(&ck->seats, key, key_of(key, parts, 3));
}

static uint32_t group_of(struct appck *ck, struct app_arg train,
                         struct app_arg date) {
  uint8_t key[KEY_BYTES_MAX];
  struct app_arg parts[] = {train, date};
  size_t len = key_of(key, parts, 2);
  dom_get(&ck->groups, key, len);
  return nt_find(&ck->groups.keys, key, len);
}

static struct ck_pnr *pnr_find(const struct dom *pnrs, uint64_t pnr) {
  uint8_t key[8];
  memcpy(key, &pnr, 8);
  return dom_find(pnrs, key, 8);
}

static bool is_ok(const struct app_reply *r) {
  return r->kind != APP_REPLY_ERROR && r->code == APP_DONE;
}

/* ---- ledger ---------------------------------------------------------------
 */

static uint32_t obs_open(struct appck *ck, const struct app_decoded *d,
                         const struct app_reply *r, uint64_t index, char *why,
                         size_t ws) {
  int64_t initial;
  if (!is_ok(r) || !parse_i64(d->argv[1], &initial))
    return 0;
  if (dom_find(&ck->accounts, d->argv[0].ptr, d->argv[0].len) != NULL)
    return 0; /* re-opening with the same amount: nothing changes */
  struct ck_account *acc =
      dom_get(&ck->accounts, d->argv[0].ptr, d->argv[0].len);
  acc->balance = acc->opened_with = initial;
  if (__builtin_add_overflow(ck->opened_total, initial, &ck->opened_total))
    return violation(why, ws,
                     "ledger.conservation: opening %s at index %llu "
                     "overflows the total",
                     ptarg(d->argv[0]).s, (unsigned long long)index);
  if (ck->n_opened == ck->cap_opened) {
    ck->cap_opened = ck->cap_opened == 0 ? 16 : ck->cap_opened * 2;
    ck->opened = xrealloc(ck->opened, ck->cap_opened * sizeof *ck->opened);
  }
  ck->opened[ck->n_opened++] =
      (struct ck_opened){ck->index, ck->pos, ck->opened_total};
  return 0;
}

static uint32_t obs_transfer_done(struct appck *ck, const struct app_decoded *d,
                                  struct ck_tx *tx, int64_t amount,
                                  uint64_t index, char *why, size_t ws) {
  struct ck_account *from =
      dom_find(&ck->accounts, d->argv[1].ptr, d->argv[1].len);
  struct ck_account *to =
      dom_find(&ck->accounts, d->argv[2].ptr, d->argv[2].len);
  uint32_t moved_before = tx->moved++;
  if (from == NULL || to == NULL || from == to)
    return violation(why, ws,
                     "ledger.transfer: txid %s applied at index %llu between "
                     "accounts %s and %s, which the model does not allow",
                     ptarg(d->argv[0]).s, (unsigned long long)index,
                     ptarg(d->argv[1]).s, ptarg(d->argv[2]).s);
  bool funded = from->balance >= amount;
  from->balance -= amount;
  to->balance += amount;
  if (moved_before > 0)
    return violation(why, ws,
                     "ledger.txid_once: txid %s (%s -> %s, %lld) moved money "
                     "again at index %llu (applied %u times)",
                     ptarg(d->argv[0]).s, ptarg(d->argv[1]).s,
                     ptarg(d->argv[2]).s, (long long)amount,
                     (unsigned long long)index, tx->moved);
  if (!funded)
    return violation(why, ws,
                     "ledger.no_overdraft: txid %s applied at index %llu "
                     "moving %lld from %s, which held %lld",
                     ptarg(d->argv[0]).s, (unsigned long long)index,
                     (long long)amount, ptarg(d->argv[1]).s,
                     (long long)(from->balance + amount));
  return 0;
}

static uint32_t obs_transfer(struct appck *ck, const struct app_decoded *d,
                             const struct app_reply *r, uint64_t index,
                             char *why, size_t ws) {
  int64_t amount;
  if (!parse_i64(d->argv[3], &amount))
    return 0;
  struct ck_tx *tx = dom_get(&ck->txs, d->argv[0].ptr, d->argv[0].len);
  if (r->duplicate) {
    if (is_ok(r) && tx->moved == 0)
      return violation(why, ws,
                       "ledger.txid_once: txid %s answered as a duplicate "
                       "success at index %llu but never moved money",
                       ptarg(d->argv[0]).s, (unsigned long long)index);
    return 0;
  }
  if (is_ok(r))
    return obs_transfer_done(ck, d, tx, amount, index, why, ws);
  /* Any other refusal moved nothing: an unknown account, or APP_E_FULL, a
   * retry table full of ids in their window (not even recorded: the same
   * txid may come again and apply, and then counts as the first move). */
  if (r->code != APP_E_FUNDS)
    return 0;
  tx->refused++;
  const struct ck_account *from =
      dom_find(&ck->accounts, d->argv[1].ptr, d->argv[1].len);
  if (from != NULL && from->balance >= amount)
    return violation(why, ws,
                     "ledger.refusal: txid %s refused for funds at index "
                     "%llu but %s held %lld >= %lld",
                     ptarg(d->argv[0]).s, (unsigned long long)index,
                     ptarg(d->argv[1]).s, (long long)from->balance,
                     (long long)amount);
  return 0;
}

struct audit_walk {
  const struct appck *ck;
  int64_t sum; /* of the balances, added up here: not the machine's total */
  bool sum_overflow;
  uint32_t negative;
  int64_t first_balance;
  struct ptext first_name;
  uint32_t mismatched;
  struct ptext mismatch_name;
  int64_t mismatch_have, mismatch_want;
  uint32_t known;
};

static void audit_account(void *ctx, const struct app_arg *name,
                          int64_t balance, int64_t opened_with) {
  struct audit_walk *w = ctx;
  if (__builtin_add_overflow(w->sum, balance, &w->sum))
    w->sum_overflow = true;
  if (balance < 0 && w->negative++ == 0) {
    w->first_balance = balance;
    w->first_name = ptarg(*name);
  }
  const struct ck_account *acc =
      dom_find(&w->ck->accounts, name->ptr, name->len);
  w->known += acc != NULL;
  if ((acc == NULL || acc->balance != balance) && w->mismatched++ == 0) {
    w->mismatch_name = ptarg(*name);
    w->mismatch_have = balance;
    w->mismatch_want = acc != NULL ? acc->balance : -1;
  }
}

/* The money opened by log position (index, pos). */
static int64_t opened_by(const struct appck *ck, uint64_t index, uint32_t pos) {
  int64_t total = 0;
  for (uint32_t k = 0; k < ck->n_opened; k++) {
    const struct ck_opened *o = &ck->opened[k];
    if (o->index > index || (o->index == index && o->pos > pos))
      break;
    total = o->total;
  }
  return total;
}

uint32_t appck_ledger_audit(const struct appck *ck, const struct app *a,
                            uint32_t node, uint64_t index, uint32_t pos,
                            char *why, size_t why_size) {
  uint64_t accounts;
  int64_t total;
  app_ledger_audit(a, &accounts, &total);
  int64_t opened = opened_by(ck, index, pos);
  /* The machine's running total is its own bookkeeping: a transfer that
   * credits more than it debits leaves it unchanged. The balances are
   * summed here, and both must equal what the stream opened. */
  struct audit_walk w = {.ck = ck};
  app_ledger_foreach(a, audit_account, &w);
  if (total != opened || w.sum_overflow || w.sum != opened)
    return violation(why, why_size,
                     "ledger.conservation: node %u holds %lld in %llu "
                     "accounts (its total says %lld) after index %llu, but "
                     "%lld was opened",
                     node, w.sum_overflow ? -1ll : (long long)w.sum,
                     (unsigned long long)accounts, (long long)total,
                     (unsigned long long)index, (long long)opened);
  if (w.negative > 0)
    return violation(why, why_size,
                     "ledger.no_overdraft: node %u's account %s holds %lld "
                     "after index %llu",
                     node, w.first_name.s, (long long)w.first_balance,
                     (unsigned long long)index);
  return 0;
}

/* ---- seats ----------------------------------------------------------------
 */

static uint32_t obs_seats_add(struct appck *ck, const struct app_decoded *d,
                              const struct app_reply *r) {
  if (!is_ok(r))
    return 0;
  uint32_t g = group_of(ck, d->argv[0], d->argv[1]);
  struct ck_group *grp = dom_at(&ck->groups, g);
  for (size_t i = 2; i < d->argc; i++) {
    uint8_t key[KEY_BYTES_MAX];
    struct app_arg parts[] = {d->argv[0], d->argv[1], d->argv[i]};
    size_t len = key_of(key, parts, 3);
    if (dom_find(&ck->seats, key, len) != NULL)
      continue;
    struct ck_seat *seat = dom_get(&ck->seats, key, len);
    seat->group = g;
    grp = dom_at(&ck->groups, g);
    grp->seats++;
  }
  return 0;
}

/* A booking (BOOK or ANY) the machine made: seat_name is the seat it gave. */
static uint32_t obs_booking(struct appck *ck, const struct app_decoded *d,
                            struct app_arg seat_name, uint64_t pnr,
                            uint64_t index, char *why, size_t ws) {
  struct app_arg req = d->argv[0];
  struct ck_request *rq = dom_get(&ck->requests, req.ptr, req.len);
  uint64_t booked_before = rq->pnr;
  rq->pnr = pnr;
  struct ck_seat *seat = seat_find(ck, d->argv[1], d->argv[2], seat_name);
  if (seat == NULL)
    return violation(why, ws,
                     "seats.no_such: request %s booked seat %s/%s/%s at "
                     "index %llu, which was never added",
                     ptarg(req).s, ptarg(d->argv[1]).s, ptarg(d->argv[2]).s,
                     ptarg(seat_name).s, (unsigned long long)index);
  uint64_t holder = seat->pnr;
  uint8_t pkey[8];
  memcpy(pkey, &pnr, 8);
  bool pnr_reused = dom_find(&ck->pnrs, pkey, 8) != NULL;
  struct ck_pnr *p = dom_get(&ck->pnrs, pkey, 8);
  uint8_t skey[KEY_BYTES_MAX];
  struct app_arg parts[] = {d->argv[1], d->argv[2], seat_name};
  p->seat = nt_find(&ck->seats.keys, skey, key_of(skey, parts, 3));
  p->cancelled = false;
  seat->pnr = pnr;
  if (holder == 0)
    ((struct ck_group *)dom_at(&ck->groups, seat->group))->held++;
  if (holder != 0)
    return violation(why, ws,
                     "seats.no_double_booking: seat %s/%s/%s, held by PNR "
                     "%llu, booked again as PNR %llu by request %s at index "
                     "%llu",
                     ptarg(d->argv[1]).s, ptarg(d->argv[2]).s,
                     ptarg(seat_name).s, (unsigned long long)holder,
                     (unsigned long long)pnr, ptarg(req).s,
                     (unsigned long long)index);
  if (booked_before != 0)
    return violation(why, ws,
                     "seats.request_once: request %s booked again at index "
                     "%llu (PNR %llu after PNR %llu)",
                     ptarg(req).s, (unsigned long long)index,
                     (unsigned long long)pnr,
                     (unsigned long long)booked_before);
  if (pnr_reused)
    return violation(why, ws,
                     "seats.pnr_unique: PNR %llu issued twice (again at "
                     "index %llu)",
                     (unsigned long long)pnr, (unsigned long long)index);
  return 0;
}

/* A refusal for "not available": BOOK's seat must be held, ANY's group full. */
static uint32_t obs_unavailable(struct appck *ck, const struct app_decoded *d,
                                uint64_t index, char *why, size_t ws) {
  if (d->op == APP_SEATS_BOOK) {
    const struct ck_seat *seat =
        seat_find(ck, d->argv[1], d->argv[2], d->argv[3]);
    if (seat != NULL && seat->pnr == 0)
      return violation(why, ws,
                       "seats.refusal: request %s refused seat %s at index "
                       "%llu, which was free",
                       ptarg(d->argv[0]).s, ptarg(d->argv[3]).s,
                       (unsigned long long)index);
    return 0;
  }
  const struct ck_group *g =
      dom_at(&ck->groups, group_of(ck, d->argv[1], d->argv[2]));
  if (g->held < g->seats)
    return violation(why, ws,
                     "seats.refusal: SEATS.ANY request %s refused at index "
                     "%llu with %u of %u seats free",
                     ptarg(d->argv[0]).s, (unsigned long long)index,
                     g->seats - g->held, g->seats);
  return 0;
}

/* Refusals decided before a request id is looked up (the command is
 * malformed) or because it names another command: no answer to a retry. */
static bool refused_unread(uint16_t code) {
  return code == APP_E_SYNTAX || code == APP_E_ID_REUSED;
}

static uint32_t obs_book(struct appck *ck, const struct app_decoded *d,
                         const struct app_reply *r, uint64_t index, char *why,
                         size_t ws) {
  const struct ck_request *rq =
      dom_find(&ck->requests, d->argv[0].ptr, d->argv[0].len);
  /* A request that booked is answered with its PNR ever after: a refusal
   * sends its client away from a seat it holds. A malformed command, or
   * another command under the same id, is no retry of it. */
  if (!is_ok(r) && !refused_unread(r->code) && rq != NULL && rq->pnr != 0)
    return violation(why, ws,
                     "seats.request_once: request %s, which booked PNR %llu, "
                     "answered refused (code %u) at index %llu",
                     ptarg(d->argv[0]).s, (unsigned long long)rq->pnr,
                     (unsigned)r->code, (unsigned long long)index);
  if (r->duplicate) {
    if (is_ok(r) && (rq == NULL || rq->pnr != (uint64_t)r->integer))
      return violation(why, ws,
                       "seats.request_once: request %s answered as a "
                       "duplicate with PNR %lld at index %llu, which it "
                       "never booked",
                       ptarg(d->argv[0]).s, (long long)r->integer,
                       (unsigned long long)index);
    return 0;
  }
  if (r->code == APP_E_NOT_AVAILABLE)
    return obs_unavailable(ck, d, index, why, ws);
  if (!is_ok(r))
    return 0; /* took no seat: APP_E_FULL (a full retry table) included */
  struct app_arg seat =
      d->op == APP_SEATS_BOOK ? d->argv[3] : (struct app_arg){NULL, 0};
  if (d->op == APP_SEATS_ANY && r->kind == APP_REPLY_ARRAY && r->n_items >= 2 &&
      r->items[1].kind == APP_REPLY_BULK)
    seat = (struct app_arg){(const uint8_t *)r->text + r->items[1].off,
                            r->items[1].len};
  return obs_booking(ck, d, seat, (uint64_t)r->integer, index, why, ws);
}

static uint32_t obs_cancel_pnr(struct appck *ck, const struct app_decoded *d,
                               const struct app_reply *r, uint64_t index,
                               char *why, size_t ws) {
  uint64_t pnr;
  if (!is_ok(r) || !parse_pnr(d->argv[0], &pnr))
    return 0;
  struct ck_pnr *p = pnr_find(&ck->pnrs, pnr);
  if (p == NULL)
    return violation(why, ws,
                     "seats.cancel: PNR %llu cancelled at index %llu but "
                     "never issued",
                     (unsigned long long)pnr, (unsigned long long)index);
  if (p->cancelled)
    return 0;
  p->cancelled = true;
  struct ck_seat *seat = dom_at(&ck->seats, p->seat);
  if (seat != NULL && seat->pnr == pnr) {
    seat->pnr = 0;
    ((struct ck_group *)dom_at(&ck->groups, seat->group))->held--;
  }
  return 0;
}

struct seat_walk {
  const struct appck *ck;
  uint32_t seats, held, unknown, mismatched;
  struct ptext name;
  uint64_t have, want;
};

static void seat_visit(void *ctx, const struct app_arg *train,
                       const struct app_arg *date, const struct app_arg *seat,
                       uint64_t pnr) {
  struct seat_walk *w = ctx;
  w->seats++;
  w->held += pnr != 0;
  uint8_t key[KEY_BYTES_MAX];
  struct app_arg parts[] = {*train, *date, *seat};
  const struct ck_seat *s = dom_find(&w->ck->seats, key, key_of(key, parts, 3));
  if (s == NULL) {
    w->unknown++;
    return;
  }
  if (s->pnr != pnr && w->mismatched++ == 0) {
    w->name = ptarg(*seat);
    w->have = pnr;
    w->want = s->pnr;
  }
}

static uint32_t final_seats(const struct appck *ck, const struct app *a,
                            uint32_t node, char *why, size_t ws) {
  struct seat_walk w = {.ck = ck};
  app_seats_foreach(a, seat_visit, &w);
  uint32_t held = 0;
  for (uint32_t k = 0; k < ck->seats.keys.n; k++)
    held += ((const struct ck_seat *)dom_at(&ck->seats, k))->pnr != 0;
  if (w.unknown > 0 || w.seats != ck->seats.keys.n || w.held != held)
    return violation(why, ws,
                     "seats.count: node %u ends with %u seats, %u booked "
                     "and %u free; the model has %u seats, %u booked",
                     node, w.seats, w.held, w.seats - w.held, ck->seats.keys.n,
                     held);
  if (w.mismatched > 0)
    return violation(why, ws,
                     "seats.final: node %u's seat %s ends held by PNR %llu; "
                     "the model has PNR %llu",
                     node, w.name.s, (unsigned long long)w.have,
                     (unsigned long long)w.want);
  return 0;
}

/* ---- locks ----------------------------------------------------------------
 */

/* now + ttl, held at the end of the clock rather than wrapped into the
 * past, as sm/app.h's expiry is. */
static uint64_t lease_end(uint64_t now_ms, uint64_t ttl_ms) {
  return now_ms > UINT64_MAX - ttl_ms ? UINT64_MAX : now_ms + ttl_ms;
}

static bool owner_is(const struct ck_lock *l, struct app_arg owner) {
  return l->owner_len == owner.len &&
         memcmp(l->owner, owner.ptr, owner.len) == 0;
}

static void grant(struct ck_lock *l, struct app_arg owner, uint64_t token,
                  uint64_t expires_ms) {
  l->owner_len = (uint8_t)owner.len;
  memcpy(l->owner, owner.ptr, owner.len);
  l->token = token;
  if (token > l->token_max)
    l->token_max = token;
  l->expires_ms = expires_ms;
}

static uint32_t obs_acquire(struct appck *ck, const struct app_decoded *d,
                            const struct app_reply *r, uint64_t index,
                            char *why, size_t ws) {
  int64_t ttl;
  if (!is_ok(r) || !parse_i64(d->argv[2], &ttl))
    return 0;
  struct app_arg owner = d->argv[1];
  struct ck_lock *l = dom_get(&ck->locks, d->argv[0].ptr, d->argv[0].len);
  uint64_t token = (uint64_t)r->integer;
  uint64_t expires_ms = lease_end(ck->clock_ms, (uint64_t)ttl);
  bool held = l->owner_len > 0 && ck->clock_ms < l->expires_ms;
  /* Only a grant still held is extended under its token; once it has
   * expired, even its owner gets a new one (else tokens_increase below). */
  if (held && owner_is(l, owner) && token == l->token) {
    grant(l, owner, token, expires_ms); /* re-acquired: extended */
    return 0;
  }
  struct ptext prev = pt(l->owner, l->owner_len);
  uint64_t prev_token = l->token, prev_max = l->token_max;
  uint64_t prev_expires = l->expires_ms;
  grant(l, owner, token, expires_ms);
  if (held)
    return violation(
        why, ws,
        "locks.one_holder: lock %s granted to %s (token %llu) "
        "at index %llu, clock %llu ms, while %s holds token "
        "%llu until %llu ms",
        ptarg(d->argv[0]).s, ptarg(owner).s, (unsigned long long)token,
        (unsigned long long)index, (unsigned long long)ck->clock_ms, prev.s,
        (unsigned long long)prev_token, (unsigned long long)prev_expires);
  if (token <= prev_max)
    return violation(why, ws,
                     "locks.tokens_increase: lock %s granted to %s with "
                     "token %llu at index %llu; %llu was already granted",
                     ptarg(d->argv[0]).s, ptarg(owner).s,
                     (unsigned long long)token, (unsigned long long)index,
                     (unsigned long long)prev_max);
  return 0;
}

static uint32_t obs_renew(struct appck *ck, const struct app_decoded *d,
                          const struct app_reply *r, uint64_t index, char *why,
                          size_t ws) {
  int64_t token, ttl;
  if (!is_ok(r) || !parse_i64(d->argv[2], &token) ||
      !parse_i64(d->argv[3], &ttl))
    return 0;
  struct ck_lock *l = dom_get(&ck->locks, d->argv[0].ptr, d->argv[0].len);
  if (l->owner_len == 0 || !owner_is(l, d->argv[1]) ||
      l->token != (uint64_t)token)
    return violation(why, ws,
                     "locks.one_holder: lock %s renewed for %s with token "
                     "%lld at index %llu, but the grant is %s's token %llu",
                     ptarg(d->argv[0]).s, ptarg(d->argv[1]).s, (long long)token,
                     (unsigned long long)index,
                     l->owner_len ? pt(l->owner, l->owner_len).s : "nobody",
                     (unsigned long long)l->token);
  if (ck->clock_ms >= l->expires_ms)
    return violation(why, ws,
                     "locks.one_holder: lock %s renewed for %s with token "
                     "%lld at index %llu, clock %llu ms, but the grant "
                     "expired at %llu ms",
                     ptarg(d->argv[0]).s, ptarg(d->argv[1]).s, (long long)token,
                     (unsigned long long)index,
                     (unsigned long long)ck->clock_ms,
                     (unsigned long long)l->expires_ms);
  l->expires_ms = lease_end(ck->clock_ms, (uint64_t)ttl);
  return 0;
}

/* A release the machine says it did (not a retry answered as done) is the
 * holder's, of its current grant, before it expired. */
static uint32_t obs_release(struct appck *ck, const struct app_decoded *d,
                            const struct app_reply *r, uint64_t index,
                            char *why, size_t ws) {
  int64_t token;
  if (!is_ok(r) || !parse_i64(d->argv[2], &token))
    return 0;
  struct ck_lock *l = dom_get(&ck->locks, d->argv[0].ptr, d->argv[0].len);
  bool holder = l->owner_len > 0 && owner_is(l, d->argv[1]) &&
                l->token == (uint64_t)token;
  bool held = holder && ck->clock_ms < l->expires_ms;
  struct ptext prev = pt(l->owner, l->owner_len);
  uint64_t prev_token = l->token;
  if (holder)
    l->owner_len = 0; /* else the grant was already gone: nothing changes */
  if (r->duplicate || held)
    return 0;
  return violation(why, ws,
                   "locks.release: lock %s released by %s with token %lld "
                   "at index %llu, clock %llu ms, but the grant is %s's "
                   "token %llu%s",
                   ptarg(d->argv[0]).s, ptarg(d->argv[1]).s, (long long)token,
                   (unsigned long long)index, (unsigned long long)ck->clock_ms,
                   prev.s[0] != '\0' ? prev.s : "nobody",
                   (unsigned long long)prev_token,
                   holder ? ", expired" : "");
}

static uint32_t obs_fenced(struct appck *ck, const struct app_decoded *d,
                           const struct app_reply *r, uint64_t index, char *why,
                           size_t ws) {
  int64_t token;
  if (!is_ok(r) || !parse_i64(d->argv[3], &token))
    return 0;
  const struct ck_lock *l =
      dom_find(&ck->locks, d->argv[2].ptr, d->argv[2].len);
  uint64_t newest = l != NULL ? l->token_max : 0;
  if ((uint64_t)token < newest)
    return violation(why, ws,
                     "locks.fencing: FENCED.SET %s with lock %s token %lld "
                     "applied at index %llu; token %llu was granted before",
                     ptarg(d->argv[0]).s, ptarg(d->argv[2]).s, (long long)token,
                     (unsigned long long)index, (unsigned long long)newest);
  if ((uint64_t)token > newest) /* no holder was ever given it */
    return violation(why, ws,
                     "locks.fencing: FENCED.SET %s with lock %s token %lld "
                     "applied at index %llu; the newest token granted is "
                     "%llu",
                     ptarg(d->argv[0]).s, ptarg(d->argv[2]).s, (long long)token,
                     (unsigned long long)index, (unsigned long long)newest);
  return 0;
}

static uint32_t final_locks(const struct appck *ck, const struct app *a,
                            uint32_t node, char *why, size_t ws) {
  for (uint32_t k = 0; k < ck->locks.keys.n; k++) {
    const struct ck_lock *l = dom_at(&ck->locks, k);
    const uint8_t *name = ck->locks.keys.arena + ck->locks.keys.off[k];
    size_t len = ck->locks.keys.len[k];
    struct app_lock_view v;
    if (l->token_max == 0)
      continue;
    if (!app_lock_view(a, name, len, &v) || v.token_max != l->token_max)
      return violation(why, ws,
                       "locks.final: node %u's lock %s ends with newest "
                       "token %llu; the model has %llu",
                       node, pt(name, len).s, (unsigned long long)(v.token_max),
                       (unsigned long long)l->token_max);
  }
  return 0;
}

/* ---- orders ---------------------------------------------------------------
 */

/* The workflow: each state leads to the next; an order may be cancelled
 * until it ships. */
static bool order_can_cancel(uint8_t state) {
  return state >= APP_ORDER_CREATED && state < APP_ORDER_SHIPPED;
}

static uint32_t obs_create(struct appck *ck, const struct app_decoded *d,
                           const struct app_reply *r, uint64_t index, char *why,
                           size_t ws) {
  int64_t amount;
  if (!is_ok(r) || !parse_i64(d->argv[2], &amount))
    return 0;
  struct app_arg id = d->argv[0], customer = d->argv[1];
  uint32_t chash = key_hash(customer.ptr, customer.len);
  struct ck_order *o = dom_find(&ck->orders, id.ptr, id.len);
  if (o == NULL) {
    o = dom_get(&ck->orders, id.ptr, id.len);
    *o = (struct ck_order){.state = APP_ORDER_CREATED,
                           .amount = amount,
                           .customer_hash = chash,
                           .customer_len = (uint8_t)customer.len};
    return 0;
  }
  if (o->amount != amount || o->customer_hash != chash ||
      o->customer_len != customer.len)
    return violation(why, ws,
                     "orders.created_once: order %s created again at index "
                     "%llu with other values (customer %s, amount %lld)",
                     ptarg(id).s, (unsigned long long)index, ptarg(customer).s,
                     (long long)amount);
  return 0; /* the same values: answered as the first time */
}

static uint32_t obs_advance(struct appck *ck, const struct app_decoded *d,
                            const struct app_reply *r, uint64_t index,
                            char *why, size_t ws) {
  if (!is_ok(r))
    return 0;
  struct app_arg id = d->argv[0];
  uint8_t to = (uint8_t)parse_state(d->argv[1]);
  struct ck_order *o = dom_find(&ck->orders, id.ptr, id.len);
  uint8_t from = o != NULL ? o->state : 0;
  bool next =
      from >= APP_ORDER_CREATED && from < APP_ORDER_DELIVERED && to == from + 1;
  /* A state already passed answers as the first time: a cancelled order
   * passed the states before the one it was cancelled in. */
  uint8_t reached =
      from == APP_ORDER_CANCELLED && o != NULL ? o->cancelled_from : from;
  bool passed = reached != 0 && to != 0 && to <= reached;
  if (next)
    o->state = to;
  if (next || passed)
    return 0;
  return violation(why, ws,
                   "orders.transition: order %s advanced from %s to %s at "
                   "index %llu, not a step of the workflow",
                   ptarg(id).s, state_name(from), ptarg(d->argv[1]).s,
                   (unsigned long long)index);
}

static uint32_t obs_cancel_order(struct appck *ck, const struct app_decoded *d,
                                 const struct app_reply *r, uint64_t index,
                                 char *why, size_t ws) {
  if (!is_ok(r))
    return 0;
  struct app_arg id = d->argv[0];
  struct ck_order *o = dom_find(&ck->orders, id.ptr, id.len);
  if (o != NULL && o->state == APP_ORDER_CANCELLED)
    return 0;
  if (o == NULL || !order_can_cancel(o->state))
    return violation(why, ws,
                     "orders.transition: order %s cancelled from %s at "
                     "index %llu",
                     ptarg(id).s, state_name(o != NULL ? o->state : 0),
                     (unsigned long long)index);
  o->cancelled_from = o->state;
  o->state = APP_ORDER_CANCELLED;
  o->cancel_applied = true;
  return 0;
}

/* After any order command: the machine's state of that order is the
 * model's (a refused or idempotent command changed nothing). */
static uint32_t order_matches(const struct appck *ck,
                              const struct app_decoded *d,
                              const struct app *after, uint64_t index,
                              char *why, size_t ws) {
  struct app_arg id = d->argv[0];
  const struct ck_order *o = dom_find(&ck->orders, id.ptr, id.len);
  uint8_t want = o != NULL ? o->state : 0;
  uint8_t have = (uint8_t)app_order_state(after, id.ptr, id.len);
  if (have == want)
    return 0;
  return violation(why, ws,
                   "orders.%s: order %s is %s after index %llu; the model "
                   "has %s",
                   d->op == APP_ORDER_CREATE ? "created_once" : "transition",
                   ptarg(id).s, state_name(have), (unsigned long long)index,
                   state_name(want));
}

static uint32_t final_orders(const struct appck *ck, const struct app *a,
                             uint32_t node, char *why, size_t ws) {
  for (uint32_t k = 0; k < ck->orders.keys.n; k++) {
    const struct ck_order *o = dom_at(&ck->orders, k);
    const uint8_t *id = ck->orders.keys.arena + ck->orders.keys.off[k];
    size_t len = ck->orders.keys.len[k];
    uint8_t have = (uint8_t)app_order_state(a, id, len);
    if (have != o->state)
      return violation(why, ws,
                       "orders.final: node %u's order %s ends %s; the model "
                       "has %s",
                       node, pt(id, len).s, state_name(have),
                       state_name(o->state));
  }
  return 0;
}

/* ---- the stream -----------------------------------------------------------
 */

static uint32_t observe_op(struct appck *ck, const struct app_decoded *d,
                           const struct app_reply *r, uint64_t index, char *why,
                           size_t ws) {
  switch (d->op) {
  case APP_LEDGER_OPEN:
    return obs_open(ck, d, r, index, why, ws);
  case APP_LEDGER_TRANSFER:
    return obs_transfer(ck, d, r, index, why, ws);
  case APP_SEATS_ADD:
    return obs_seats_add(ck, d, r);
  case APP_SEATS_BOOK:
  case APP_SEATS_ANY:
    return obs_book(ck, d, r, index, why, ws);
  case APP_SEATS_CANCEL:
    return obs_cancel_pnr(ck, d, r, index, why, ws);
  case APP_LOCK_ACQUIRE:
    return obs_acquire(ck, d, r, index, why, ws);
  case APP_LOCK_RENEW:
    return obs_renew(ck, d, r, index, why, ws);
  case APP_LOCK_RELEASE:
    return obs_release(ck, d, r, index, why, ws);
  case APP_FENCED_SET:
    return obs_fenced(ck, d, r, index, why, ws);
  case APP_ORDER_CREATE:
    return obs_create(ck, d, r, index, why, ws);
  case APP_ORDER_ADVANCE:
    return obs_advance(ck, d, r, index, why, ws);
  case APP_ORDER_CANCEL:
    return obs_cancel_order(ck, d, r, index, why, ws);
  default:
    return 0;
  }
}

/* The arity each op's handler above reads; a command with fewer arguments
 * is a syntax error the machine refuses, and the model ignores it. */
static size_t argc_read(enum app_op op) {
  switch (op) {
  case APP_LEDGER_TRANSFER:
  case APP_SEATS_BOOK:
  case APP_FENCED_SET:
  case APP_LOCK_RENEW:
    return 4;
  case APP_SEATS_ANY:
  case APP_LOCK_ACQUIRE:
  case APP_LOCK_RELEASE:
  case APP_ORDER_CREATE:
    return 3;
  case APP_LEDGER_OPEN:
  case APP_SEATS_ADD:
  case APP_ORDER_ADVANCE:
    return 2;
  default:
    return 1;
  }
}

void appck_observe_clock(struct appck *ck, uint64_t now_ms) {
  if (now_ms > ck->clock_ms)
    ck->clock_ms = now_ms;
}

uint32_t appck_observe(struct appck *ck, uint64_t index, uint32_t pos,
                       const uint8_t *cmd, size_t len,
                       const struct app_reply *reply, const struct app *after,
                       char *why, size_t why_size) {
  struct app_decoded d;
  if (app_decode(cmd, len, &d) != 0)
    return 0; /* malformed: refused alike everywhere, changes nothing */
  ck->observed++;
  ck->index = index;
  ck->pos = pos;
  if (d.hdr.now_ms > ck->clock_ms)
    ck->clock_ms = d.hdr.now_ms;
  if (d.argc < argc_read(d.op))
    return 0;
  uint32_t v = observe_op(ck, &d, reply, index, why, why_size);
  bool order = d.op == APP_ORDER_CREATE || d.op == APP_ORDER_ADVANCE ||
               d.op == APP_ORDER_CANCEL;
  if (v == 0 && order && after != NULL)
    v = order_matches(ck, &d, after, index, why, why_size);
  return v;
}

/* ---- the end --------------------------------------------------------------
 */

uint32_t appck_final_node(const struct appck *ck, const struct app *a,
                          uint32_t node, char *why, size_t why_size) {
  struct audit_walk w = {.ck = ck};
  app_ledger_foreach(a, audit_account, &w);
  if (w.mismatched > 0 || w.known != ck->accounts.keys.n)
    return violation(why, why_size,
                     "ledger.final: node %u's account %s ends with %lld; the "
                     "model has %lld (%u of %u accounts known)",
                     node, w.mismatched ? w.mismatch_name.s : "?",
                     (long long)w.mismatch_have, (long long)w.mismatch_want,
                     w.known, ck->accounts.keys.n);
  uint32_t v =
      appck_ledger_audit(ck, a, node, UINT64_MAX, UINT32_MAX, why, why_size);
  if (v == 0)
    v = final_seats(ck, a, node, why, why_size);
  if (v == 0)
    v = final_locks(ck, a, node, why, why_size);
  if (v == 0)
    v = final_orders(ck, a, node, why, why_size);
  return v;
}

static uint32_t saw_transfer(const struct appck *ck,
                             const struct app_decoded *d,
                             enum appck_outcome outcome, uint16_t code,
                             char *why, size_t ws) {
  const struct ck_tx *tx = dom_find(&ck->txs, d->argv[0].ptr, d->argv[0].len);
  uint32_t moved = tx != NULL ? tx->moved : 0;
  bool saw_ok = outcome == APPCK_REPLIED && code == APP_DONE;
  if (saw_ok && moved != 1)
    return violation(why, ws,
                     "ledger.acknowledged: the client saw txid %s succeed; "
                     "it moved money %u times",
                     ptarg(d->argv[0]).s, moved);
  if (!saw_ok && moved != 0)
    return violation(why, ws,
                     "ledger.acknowledged: the client saw txid %s %s; it "
                     "moved money %u times",
                     ptarg(d->argv[0]).s,
                     outcome == APPCK_REPLIED ? "refused" : "fail", moved);
  return 0;
}

/* A booking the client saw refused or fail took no seat. */
static uint32_t saw_booking_refused(const struct appck *ck,
                                    const struct app_decoded *d,
                                    enum appck_outcome outcome, uint16_t code,
                                    char *why, size_t ws) {
  if (outcome == APPCK_REPLIED && refused_unread(code))
    return 0; /* malformed, or the id answered for another command */
  const struct ck_request *rq =
      dom_find(&ck->requests, d->argv[0].ptr, d->argv[0].len);
  if (rq == NULL || rq->pnr == 0)
    return 0;
  return violation(why, ws,
                   "seats.acknowledged: the client saw request %s %s; it "
                   "booked PNR %llu",
                   ptarg(d->argv[0]).s,
                   outcome == APPCK_REPLIED ? "refused" : "fail",
                   (unsigned long long)rq->pnr);
}

static uint32_t saw_pnr(const struct appck *ck, uint64_t pnr,
                        const struct app *const *nodes, uint32_t n_nodes,
                        char *why, size_t ws) {
  const struct ck_pnr *p = pnr_find(&ck->pnrs, pnr);
  if (p == NULL)
    return violation(why, ws,
                     "seats.acknowledged: a client received PNR %llu, which "
                     "no applied booking issued",
                     (unsigned long long)pnr);
  for (uint32_t i = 0; i < n_nodes; i++) {
    struct app_arg train, date, seat;
    bool cancelled = false;
    bool known = app_seats_pnr(nodes[i], pnr, &train, &date, &seat, &cancelled);
    if (known && cancelled == p->cancelled)
      continue;
    return violation(why, ws,
                     "seats.acknowledged: node %u %s PNR %llu a client "
                     "received%s",
                     i + 1, known ? "ends with" : "does not know",
                     (unsigned long long)pnr,
                     !known         ? ""
                     : p->cancelled ? " as held, but a cancel was applied"
                                    : " as cancelled, but no cancel was "
                                      "applied");
  }
  return 0;
}

static uint32_t saw_order(const struct appck *ck, const struct app_decoded *d,
                          char *why, size_t ws) {
  struct app_arg id = d->argv[0];
  const struct ck_order *o = dom_find(&ck->orders, id.ptr, id.len);
  uint8_t want = d->op == APP_ORDER_ADVANCE  ? (uint8_t)parse_state(d->argv[1])
                 : d->op == APP_ORDER_CANCEL ? APP_ORDER_CANCELLED
                                             : APP_ORDER_CREATED;
  uint8_t have = o != NULL ? o->state : 0;
  bool reflected =
      have != 0 && (have == APP_ORDER_CANCELLED
                        ? o->cancel_applied
                        : want != APP_ORDER_CANCELLED && have >= want);
  if (reflected)
    return 0;
  return violation(why, ws,
                   "orders.acknowledged: the client saw order %s reach %s; "
                   "it ends %s",
                   ptarg(id).s, state_name(want), state_name(have));
}

uint32_t appck_client_saw(const struct appck *ck, const uint8_t *cmd,
                          size_t len, enum appck_outcome outcome, uint16_t code,
                          int64_t integer, const struct app *const *nodes,
                          uint32_t n_nodes, char *why, size_t why_size) {
  struct app_decoded d;
  if (outcome == APPCK_UNKNOWN || app_decode(cmd, len, &d) != 0 ||
      d.argc < argc_read(d.op))
    return 0;
  bool ok = outcome == APPCK_REPLIED && code == APP_DONE;
  switch (d.op) {
  case APP_LEDGER_TRANSFER:
    return saw_transfer(ck, &d, outcome, code, why, why_size);
  case APP_SEATS_BOOK:
  case APP_SEATS_ANY:
    return ok ? saw_pnr(ck, (uint64_t)integer, nodes, n_nodes, why, why_size)
              : saw_booking_refused(ck, &d, outcome, code, why, why_size);
  case APP_ORDER_CREATE:
  case APP_ORDER_ADVANCE:
  case APP_ORDER_CANCEL:
    return ok ? saw_order(ck, &d, why, why_size) : 0;
  default:
    return 0;
  }
}
