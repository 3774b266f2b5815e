/* `sabha bench`'s workloads and the invariants checked after each.
 *
 * Each workload is a session's state machine (bench.h): next() builds the
 * session's request, reply() learns from its answer. Every name a run uses
 * (accounts, trains, locks, orders, ids) starts with the run's own prefix,
 * so runs never meet each other's data. After the load, check() reads the
 * cluster back over RESP, linearizably, and compares it with what the
 * replies acknowledged:
 *
 *   ledger  money is conserved: the run's accounts hold together what they
 *           were opened with, and each holds what the acknowledged transfers
 *           left it;
 *   seats   no seat is sold twice: no two acknowledged bookings of a seat
 *           overlap in time (a seat is held from its booking's reply until
 *           its cancel is sent), no seat has two CONFIRMED PNRs at the end,
 *           and the free count is the seats less the ones held;
 *   locks   fencing tokens increase: a grant acknowledged before another
 *           acquire was sent has the smaller token; a holder's fenced write
 *           within its lease is never refused as stale; each fenced value
 *           is the newest acknowledged one;
 *   orders  an order's state is the last acknowledged step, never behind.
 *
 * When some request's outcome is unknown (a connection lost, retries given
 * up), the exact comparisons with acknowledgements cannot hold and are
 * reported "unknown"; the others still apply.
 *
 * --inject FAULT corrupts what a check reads (one balance a paisa off, two
 * PNRs of one seat read as confirmed, a later grant read with an earlier
 * token, an order read one step behind): the check must catch it, and a
 * test shows it does. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"

#define LEDGER_INITIAL_PAISE 1000000u
#define LEDGER_AMOUNT_MAX 1000u
#define SEATS_DATE "2026-01-26"
#define SEATS_PER_ADD 30u
#define LOCK_TTL_MS 30000u
#define ORDER_NONE 0xFFu

/* ---- Shared helpers -------------------------------------------------------
 */

uint64_t bench_rand(struct bench_run *r) {
  /* splitmix64: the bench's choices need speed, not quality. */
  uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint32_t bench_rand_below(struct bench_run *r, uint32_t n) {
  return (uint32_t)(bench_rand(r) % n);
}

void bench_check_printf(struct bench_run *r, const char *fmt, ...) {
  size_t room = sizeof r->checks - r->checks_len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->checks + r->checks_len, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    r->checks_len += (size_t)n < room ? (size_t)n : room - 1;
}

void *records_push(struct bench_records *rs) {
  if (rs->n == rs->cap) {
    size_t cap = rs->cap == 0 ? 1024 : rs->cap * 2;
    if (rs->n >= BENCH_RECORDS_MAX)
      return NULL;
    void *d = realloc(rs->data, cap * rs->size);
    if (d == NULL)
      return NULL;
    rs->data = d;
    rs->cap = cap;
  }
  void *e = (uint8_t *)rs->data + rs->n * rs->size;
  memset(e, 0, rs->size);
  rs->n++;
  return e;
}

void records_free(struct bench_records *rs) {
  free(rs->data);
  rs->data = NULL;
  rs->n = rs->cap = 0;
}

static bool injected(const struct bench_run *r, const char *fault) {
  return strcmp(r->set->inject, fault) == 0;
}

static bool str_is(struct bench_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static bool str_starts(struct bench_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len >= n && memcmp(s.ptr, lit, n) == 0;
}

/* The refusal of a retry table full of ids younger than dedup-window-ms
 * (sm/app.h): a load above dedup-max new ids per window meets it, and it
 * applied nothing, so the workload counts it as refused, not failed. */
static bool retry_table_full(const struct bench_reply *rep) {
  return rep->type == '-' && str_starts(rep->str, "ERR retry table full");
}

static const char *yes_no(bool ok) {
  return ok ? "yes" : "no";
}

/* ---- SET / GET ------------------------------------------------------------
 */

static void kv_key(struct bench_cmd *c, uint32_t key) {
  cmd_arg(c, "sabha-bench:key:%010" PRIu32, key);
}

static void set_next(struct bench_run *r, struct bench_session *s,
                     struct bench_cmd *c) {
  if (s->tries == 0)
    s->u.kv.key = bench_rand_below(r, r->set->keys);
  cmd_arg(c, "SET");
  kv_key(c, s->u.kv.key);
  c->value = r->value;
  c->value_len = r->set->value_bytes;
}

static enum bench_outcome kv_reply(struct bench_run *r, struct bench_session *s,
                                   const struct bench_reply *rep,
                                   uint64_t sent_ns, uint64_t now_ns) {
  return rep->type == '-' ? BENCH_FAILED : BENCH_OK;
}

static bool no_check(struct bench_run *r, struct bench_link *l) {
  return true;
}

static void preload_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct bench_run *r = ctx;
  cmd_arg(c, "SET");
  kv_key(c, (uint32_t)i);
  c->value = r->value;
  c->value_len = r->set->value_bytes;
}

static void count_reply(void *ctx, uint64_t i, const struct bench_reply *rep) {
  struct bench_run *r = ctx;
  if (rep->type == '-' && r->first_error[0] == '\0')
    snprintf(r->first_error, sizeof r->first_error, "setup: %.*s",
             (int)(rep->str.len < 120 ? rep->str.len : 120), rep->str.ptr);
}

/* GET reads keys SET wrote: every key of the space is written first. */
static int get_setup(struct bench_run *r, struct bench_link *l) {
  return link_batch(l, r->set->keys, preload_build, count_reply, r) ? 0 : -1;
}

static void get_next(struct bench_run *r, struct bench_session *s,
                     struct bench_cmd *c) {
  if (s->tries == 0)
    s->u.kv.key = bench_rand_below(r, r->set->keys);
  cmd_arg(c, "GET");
  kv_key(c, s->u.kv.key);
}

static int no_setup(struct bench_run *r, struct bench_link *l) {
  return 0;
}

/* ---- Ledger ---------------------------------------------------------------
 */

static void ledger_open_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct bench_run *r = ctx;
  cmd_arg(c, "LEDGER.OPEN");
  cmd_arg(c, "%s-a%" PRIu64, r->prefix, i);
  cmd_arg(c, "%u", LEDGER_INITIAL_PAISE);
}

static int ledger_setup(struct bench_run *r, struct bench_link *l) {
  r->balance = calloc(r->set->accounts, sizeof *r->balance);
  if (r->balance == NULL)
    return -1;
  for (uint32_t i = 0; i < r->set->accounts; i++)
    r->balance[i] = LEDGER_INITIAL_PAISE;
  if (!link_batch(l, r->set->accounts, ledger_open_build, count_reply, r))
    return -1;
  return r->first_error[0] == '\0' ? 0 : -1;
}

static void ledger_next(struct bench_run *r, struct bench_session *s,
                        struct bench_cmd *c) {
  if (s->tries == 0) {
    uint32_t n = r->set->accounts;
    s->u.ledger.tx = ++r->next_id;
    s->u.ledger.from = bench_rand_below(r, n);
    s->u.ledger.to = (s->u.ledger.from + 1 + bench_rand_below(r, n - 1)) % n;
    s->u.ledger.amount = 1 + bench_rand_below(r, LEDGER_AMOUNT_MAX);
  }
  cmd_arg(c, "LEDGER.TRANSFER");
  cmd_arg(c, "%s-t%" PRIu64, r->prefix, s->u.ledger.tx);
  cmd_arg(c, "%s-a%" PRIu32, r->prefix, s->u.ledger.from);
  cmd_arg(c, "%s-a%" PRIu32, r->prefix, s->u.ledger.to);
  cmd_arg(c, "%" PRIu64, s->u.ledger.amount);
}

static enum bench_outcome ledger_reply(struct bench_run *r,
                                       struct bench_session *s,
                                       const struct bench_reply *rep,
                                       uint64_t sent_ns, uint64_t now_ns) {
  if (bench_reply_is(rep, '+', "OK")) {
    r->balance[s->u.ledger.from] -= (int64_t)s->u.ledger.amount;
    r->balance[s->u.ledger.to] += (int64_t)s->u.ledger.amount;
    return BENCH_OK;
  }
  if ((rep->type == '-' && str_starts(rep->str, "ERR insufficient funds")) ||
      retry_table_full(rep))
    return BENCH_REFUSED;
  return BENCH_FAILED;
}

struct ledger_read {
  struct bench_run *r;
  int64_t total;
  uint64_t mismatched, unreadable;
};

static void balance_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct ledger_read *lr = ctx;
  cmd_arg(c, "LEDGER.BALANCE");
  cmd_arg(c, "%s-a%" PRIu64, lr->r->prefix, i);
}

static void balance_reply(void *ctx, uint64_t i,
                          const struct bench_reply *rep) {
  struct ledger_read *lr = ctx;
  if (rep->type != ':') {
    lr->unreadable++;
    return;
  }
  int64_t v = rep->integer;
  if (i == 0 && injected(lr->r, "lost-paisa"))
    v -= 1;
  lr->total += v;
  if (v != lr->r->balance[i])
    lr->mismatched++;
}

static bool ledger_check(struct bench_run *r, struct bench_link *l) {
  struct ledger_read lr = {r, 0, 0, 0};
  if (!link_batch(l, r->set->accounts, balance_build, balance_reply, &lr))
    return false;
  int64_t want = (int64_t)r->set->accounts * LEDGER_INITIAL_PAISE;
  bool conserved = lr.unreadable == 0 && lr.total == want;
  bool exact = r->unknown == 0;
  bench_check_printf(r,
                     "ledger_accounts: %" PRIu32 "\n"
                     "ledger_total_paise: %" PRId64 "\n"
                     "ledger_expected_total_paise: %" PRId64 "\n"
                     "ledger_money_conserved: %s\n"
                     "ledger_balances_match_acks: %s\n",
                     r->set->accounts, lr.total, want, yes_no(conserved),
                     exact ? yes_no(lr.mismatched == 0) : "unknown");
  return conserved && (!exact || lr.mismatched == 0);
}

/* ---- Seats ----------------------------------------------------------------
 */

static void seats_add_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct bench_run *r = ctx;
  cmd_arg(c, "SEATS.ADD");
  cmd_arg(c, "%s", r->prefix);
  cmd_arg(c, SEATS_DATE);
  /* At most 5 seats per command here (the arguments' bound of a bench
   * command), SEATS_PER_ADD being the machine's. */
  for (uint32_t k = 0; k < 5; k++) {
    uint64_t seat = i * 5 + k;
    if (seat < r->set->seats)
      cmd_arg(c, "S%" PRIu64, seat);
  }
}

static int seats_setup(struct bench_run *r, struct bench_link *l) {
  r->seat_holder = calloc(r->set->seats, sizeof *r->seat_holder);
  if (r->seat_holder == NULL)
    return -1;
  r->pnrs.size = sizeof(struct bench_pnr);
  if (!link_batch(l, (r->set->seats + 4) / 5, seats_add_build, count_reply, r))
    return -1;
  return r->first_error[0] == '\0' ? 0 : -1;
}

static void seats_next(struct bench_run *r, struct bench_session *s,
                       struct bench_cmd *c) {
  if (s->u.seats.holding) {
    if (s->tries == 0) /* from now on the seat may be someone else's */
      r->seat_holder[s->u.seats.seat] = 0;
    cmd_arg(c, "SEATS.CANCEL");
    cmd_arg(c, "%s", s->u.seats.pnr);
    return;
  }
  if (s->tries == 0) {
    s->u.seats.request = ++r->next_id;
    s->u.seats.seat = bench_rand_below(r, r->set->seats);
  }
  cmd_arg(c, "SEATS.BOOK");
  cmd_arg(c, "%s-r%" PRIu64, r->prefix, s->u.seats.request);
  cmd_arg(c, "%s", r->prefix);
  cmd_arg(c, SEATS_DATE);
  cmd_arg(c, "S%" PRIu32, s->u.seats.seat);
  cmd_arg(c, "p%" PRIu32, s->index);
}

static enum bench_outcome seats_reply(struct bench_run *r,
                                      struct bench_session *s,
                                      const struct bench_reply *rep,
                                      uint64_t sent_ns, uint64_t now_ns) {
  if (s->u.seats.holding) {
    s->u.seats.holding = false;
    return bench_reply_is(rep, '+', "OK") ? BENCH_OK : BENCH_FAILED;
  }
  if (rep->type == '$' && rep->str.len < sizeof s->u.seats.pnr) {
    uint32_t seat = s->u.seats.seat;
    /* Booked while another session still holds it: sold twice. */
    if (r->seat_holder[seat] != 0)
      r->double_booked++;
    r->seat_holder[seat] = 1 + s->index;
    memcpy(s->u.seats.pnr, rep->str.ptr, rep->str.len);
    s->u.seats.pnr[rep->str.len] = '\0';
    s->u.seats.holding = true;
    struct bench_pnr *p = records_push(&r->pnrs);
    if (p == NULL) {
      r->stopped_early = true;
      return BENCH_OK;
    }
    memcpy(p->pnr, s->u.seats.pnr, sizeof p->pnr);
    p->seat = seat;
    return BENCH_OK;
  }
  if ((rep->type == '-' && str_starts(rep->str, "ERR seat not available")) ||
      retry_table_full(rep))
    return BENCH_REFUSED;
  return BENCH_FAILED;
}

struct seats_read {
  struct bench_run *r;
  uint8_t *confirmed; /* per PNR record */
  uint64_t unreadable;
  int64_t free;
};

static void pnr_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct seats_read *sr = ctx;
  const struct bench_pnr *p = (const struct bench_pnr *)sr->r->pnrs.data + i;
  cmd_arg(c, "SEATS.PNR");
  cmd_arg(c, "%s", p->pnr);
}

static void pnr_reply(void *ctx, uint64_t i, const struct bench_reply *rep) {
  struct seats_read *sr = ctx;
  const struct bench_pnr *p = (const struct bench_pnr *)sr->r->pnrs.data + i;
  char seat[24];
  snprintf(seat, sizeof seat, "S%" PRIu32, p->seat);
  if (rep->type != '*' || rep->n != 5 || !str_is(rep->elem[2].str, seat)) {
    sr->unreadable++;
    return;
  }
  sr->confirmed[i] = str_is(rep->elem[4].str, "CONFIRMED");
}

/* --inject double-booking: two PNRs of one seat read as confirmed. */
static void inject_double_booking(struct bench_run *r, uint8_t *confirmed) {
  const struct bench_pnr *p = r->pnrs.data;
  for (size_t i = 0; i < r->pnrs.n; i++)
    for (size_t j = i + 1; j < r->pnrs.n && j < i + 4096; j++)
      if (p[i].seat == p[j].seat) {
        confirmed[i] = confirmed[j] = 1;
        return;
      }
}

static bool seats_check(struct bench_run *r, struct bench_link *l) {
  uint32_t n_seats = r->set->seats;
  struct seats_read sr = {r, calloc(r->pnrs.n + 1, 1), 0, -1};
  uint32_t *per_seat = calloc(n_seats, sizeof *per_seat);
  bool ok = sr.confirmed != NULL && per_seat != NULL &&
            link_batch(l, r->pnrs.n, pnr_build, pnr_reply, &sr);
  struct bench_cmd c;
  struct bench_reply rep;
  cmd_init(&c);
  cmd_arg(&c, "SEATS.FREE");
  cmd_arg(&c, "%s", r->prefix);
  cmd_arg(&c, SEATS_DATE);
  if (ok && link_call(l, &c, &rep) && rep.type == ':')
    sr.free = rep.integer;
  if (!ok) {
    free(sr.confirmed);
    free(per_seat);
    return false;
  }
  if (injected(r, "double-booking"))
    inject_double_booking(r, sr.confirmed);
  uint64_t confirmed = 0, sold_twice = r->double_booked, held = 0;
  const struct bench_pnr *p = r->pnrs.data;
  for (size_t i = 0; i < r->pnrs.n; i++)
    if (sr.confirmed[i]) {
      confirmed++;
      if (++per_seat[p[i].seat] == 2)
        sold_twice++;
    }
  for (uint32_t i = 0; i < n_seats; i++)
    held += r->seat_holder[i] != 0;
  free(sr.confirmed);
  free(per_seat);
  bool exact = r->unknown == 0;
  bool free_ok = sr.free == (int64_t)(n_seats - confirmed) && confirmed == held;
  bench_check_printf(r,
                     "seats_total: %" PRIu32 "\n"
                     "seats_bookings: %zu\n"
                     "seats_confirmed: %" PRIu64 "\n"
                     "seats_free: %" PRId64 "\n"
                     "seats_sold_twice: %" PRIu64 "\n"
                     "seats_unreadable_pnrs: %" PRIu64 "\n"
                     "seats_free_matches_acks: %s\n",
                     n_seats, r->pnrs.n, confirmed, sr.free, sold_twice,
                     sr.unreadable, exact ? yes_no(free_ok) : "unknown");
  return sold_twice == 0 && sr.unreadable == 0 && sr.free >= 0 &&
         (!exact || free_ok);
}

/* ---- Locks ----------------------------------------------------------------
 */

static int locks_setup(struct bench_run *r, struct bench_link *l) {
  r->fenced_token = calloc(r->set->locks, sizeof *r->fenced_token);
  r->grants.size = sizeof(struct bench_grant);
  return r->fenced_token != NULL ? 0 : -1;
}

static void locks_next(struct bench_run *r, struct bench_session *s,
                       struct bench_cmd *c) {
  uint32_t lock = s->u.locks.lock;
  switch (s->u.locks.phase) {
  case 0:
    if (s->tries == 0) {
      s->u.locks.lock = lock = bench_rand_below(r, r->set->locks);
      s->u.locks.owner = ++r->next_id;
      s->u.locks.acquire_sent_ns = bench_now_ns();
    }
    cmd_arg(c, "LOCK.ACQUIRE");
    cmd_arg(c, "%s-l%" PRIu32, r->prefix, lock);
    cmd_arg(c, "%s-o%" PRIu64, r->prefix, s->u.locks.owner);
    cmd_arg(c, "%u", LOCK_TTL_MS);
    break;
  case 1:
    cmd_arg(c, "FENCED.SET");
    cmd_arg(c, "%s-k%" PRIu32, r->prefix, lock);
    cmd_arg(c, "t%" PRIu64, s->u.locks.token);
    cmd_arg(c, "%s-l%" PRIu32, r->prefix, lock);
    cmd_arg(c, "%" PRIu64, s->u.locks.token);
    break;
  default:
    cmd_arg(c, "LOCK.RELEASE");
    cmd_arg(c, "%s-l%" PRIu32, r->prefix, lock);
    cmd_arg(c, "%s-o%" PRIu64, r->prefix, s->u.locks.owner);
    cmd_arg(c, "%" PRIu64, s->u.locks.token);
    break;
  }
}

static enum bench_outcome locks_reply(struct bench_run *r,
                                      struct bench_session *s,
                                      const struct bench_reply *rep,
                                      uint64_t sent_ns, uint64_t now_ns) {
  bool lease_live =
      now_ns - s->u.locks.acquire_sent_ns < (uint64_t)LOCK_TTL_MS * 1000000u;
  uint32_t lock = s->u.locks.lock;
  switch (s->u.locks.phase) {
  case 0: {
    if (rep->type != ':' || rep->integer <= 0)
      return rep->type == '-' && str_starts(rep->str, "ERR lock ")
                 ? BENCH_REFUSED
                 : BENCH_FAILED;
    s->u.locks.token = (uint64_t)rep->integer;
    s->u.locks.phase = 1;
    struct bench_grant *g = records_push(&r->grants);
    if (g == NULL) {
      r->stopped_early = true;
      return BENCH_OK;
    }
    g->lock = lock;
    g->token = s->u.locks.token;
    g->sent_ns = s->u.locks.acquire_sent_ns;
    g->acked_ns = now_ns;
    return BENCH_OK;
  }
  case 1:
    s->u.locks.phase = 2;
    if (bench_reply_is(rep, '+', "OK")) {
      if (s->u.locks.token > r->fenced_token[lock])
        r->fenced_token[lock] = s->u.locks.token;
      return BENCH_OK;
    }
    if (rep->type == '-' && str_starts(rep->str, "ERR stale token")) {
      if (!lease_live)
        return BENCH_REFUSED;
      r->stale_refused++; /* a newer grant while this lease was live */
    }
    return BENCH_FAILED;
  default:
    s->u.locks.phase = 0;
    if (bench_reply_is(rep, '+', "OK"))
      return BENCH_OK;
    return lease_live ? BENCH_FAILED : BENCH_REFUSED;
  }
}

static int grant_by_sent(const void *a, const void *b) {
  const struct bench_grant *x = a, *y = b;
  if (x->lock != y->lock)
    return x->lock < y->lock ? -1 : 1;
  return x->sent_ns < y->sent_ns ? -1 : x->sent_ns > y->sent_ns;
}

static int grant_by_acked(const void *a, const void *b) {
  const struct bench_grant *x = a, *y = b;
  if (x->lock != y->lock)
    return x->lock < y->lock ? -1 : 1;
  return x->acked_ns < y->acked_ns ? -1 : x->acked_ns > y->acked_ns;
}

/* Grants acknowledged before an acquire was sent must have smaller tokens:
 * one sweep per lock over the grants by send time, with the largest token
 * of those acknowledged earlier. Returns the violations. */
static uint64_t token_order_violations(struct bench_grant *by_sent,
                                       struct bench_grant *by_acked, size_t n) {
  qsort(by_sent, n, sizeof *by_sent, grant_by_sent);
  qsort(by_acked, n, sizeof *by_acked, grant_by_acked);
  uint64_t bad = 0;
  size_t a = 0;
  uint64_t max_token = 0;
  uint32_t lock = UINT32_MAX;
  for (size_t i = 0; i < n; i++) {
    const struct bench_grant *g = &by_sent[i];
    if (g->lock != lock) {
      lock = g->lock;
      max_token = 0;
      while (a < n && by_acked[a].lock < lock)
        a++;
    }
    while (a < n && by_acked[a].lock == lock &&
           by_acked[a].acked_ns < g->sent_ns) {
      if (by_acked[a].token > max_token)
        max_token = by_acked[a].token;
      a++;
    }
    if (g->token <= max_token)
      bad++;
  }
  return bad;
}

/* --inject token-regress: a grant read with the token of one acknowledged
 * before it was asked for. */
static void inject_token_regress(struct bench_grant *g, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n && j < 4096; j++)
      if (g[i].lock == g[j].lock && g[i].acked_ns < g[j].sent_ns) {
        g[j].token = g[i].token;
        return;
      }
}

struct fenced_read {
  struct bench_run *r;
  uint64_t mismatched;
};

static void fenced_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct fenced_read *fr = ctx;
  cmd_arg(c, "FENCED.GET");
  cmd_arg(c, "%s-k%" PRIu64, fr->r->prefix, i);
}

static void fenced_reply(void *ctx, uint64_t i, const struct bench_reply *rep) {
  struct fenced_read *fr = ctx;
  uint64_t want = fr->r->fenced_token[i];
  char text[32];
  snprintf(text, sizeof text, "t%" PRIu64, want);
  bool ok =
      want == 0 ? rep->type == '_' : rep->type == '$' && str_is(rep->str, text);
  fr->mismatched += !ok;
}

static bool locks_check(struct bench_run *r, struct bench_link *l) {
  size_t n = r->grants.n;
  struct bench_grant *by_acked = malloc((n + 1) * sizeof *by_acked);
  if (by_acked == NULL)
    return false;
  if (injected(r, "token-regress"))
    inject_token_regress(r->grants.data, n);
  if (n > 0)
    memcpy(by_acked, r->grants.data, n * sizeof *by_acked);
  uint64_t bad = token_order_violations(r->grants.data, by_acked, n);
  free(by_acked);
  struct fenced_read fr = {r, 0};
  if (!link_batch(l, r->set->locks, fenced_build, fenced_reply, &fr))
    return false;
  bool exact = r->unknown == 0;
  bench_check_printf(r,
                     "locks_grants: %zu\n"
                     "locks_token_order_violations: %" PRIu64 "\n"
                     "locks_live_holder_refused: %" PRIu64 "\n"
                     "locks_fenced_values_match_acks: %s\n",
                     n, bad, r->stale_refused,
                     exact ? yes_no(fr.mismatched == 0) : "unknown");
  return bad == 0 && r->stale_refused == 0 && (!exact || fr.mismatched == 0);
}

/* ---- Orders ---------------------------------------------------------------
 */

static const char *const order_states[] = {
    "CREATED", "PAYMENT_CONFIRMED", "INVENTORY_RESERVED",
    "SHIPPED", "DELIVERED",         "CANCELLED"};
#define ORDER_DELIVERED 4u
#define ORDER_CANCELLED 5u

static int orders_setup(struct bench_run *r, struct bench_link *l) {
  r->orders.size = 1;
  return 0;
}

static void orders_next(struct bench_run *r, struct bench_session *s,
                        struct bench_cmd *c) {
  uint8_t next = s->u.orders.next;
  if (next == 0) {
    if (s->tries == 0) {
      uint8_t *o = records_push(&r->orders);
      if (o == NULL) {
        r->stopped_early = true;
        o = (uint8_t *)r->orders.data; /* reuse: the run stops */
      }
      *o = ORDER_NONE;
      s->u.orders.order = (uint64_t)(o - (uint8_t *)r->orders.data);
    }
    cmd_arg(c, "ORDER.CREATE");
    cmd_arg(c, "%s-o%" PRIu64, r->prefix, s->u.orders.order);
    cmd_arg(c, "c%" PRIu32, s->index);
    cmd_arg(c, "%" PRIu64, 100 + s->u.orders.order % 10000);
    return;
  }
  /* One order in eight is cancelled, at a step where that is allowed
   * (before it ships). */
  if (s->tries == 0 && next <= 3 && bench_rand_below(r, 8) == 0)
    s->u.orders.next = next = ORDER_CANCELLED;
  if (next == ORDER_CANCELLED) {
    cmd_arg(c, "ORDER.CANCEL");
    cmd_arg(c, "%s-o%" PRIu64, r->prefix, s->u.orders.order);
    return;
  }
  cmd_arg(c, "ORDER.ADVANCE");
  cmd_arg(c, "%s-o%" PRIu64, r->prefix, s->u.orders.order);
  cmd_arg(c, "%s", order_states[next]);
}

static enum bench_outcome orders_reply(struct bench_run *r,
                                       struct bench_session *s,
                                       const struct bench_reply *rep,
                                       uint64_t sent_ns, uint64_t now_ns) {
  uint8_t next = s->u.orders.next;
  if (!bench_reply_is(rep, '+', "OK")) {
    s->u.orders.next = 0; /* on to a new order */
    return BENCH_FAILED;
  }
  ((uint8_t *)r->orders.data)[s->u.orders.order] = next;
  s->u.orders.next =
      next == ORDER_DELIVERED || next == ORDER_CANCELLED ? 0 : next + 1;
  return BENCH_OK;
}

struct orders_read {
  struct bench_run *r;
  uint64_t behind, mismatched;
};

static void order_build(void *ctx, uint64_t i, struct bench_cmd *c) {
  struct orders_read * or = ctx;
  cmd_arg(c, "ORDER.GET");
  cmd_arg(c, "%s-o%" PRIu64, or->r->prefix, i);
}

static void order_reply(void *ctx, uint64_t i, const struct bench_reply *rep) {
  struct orders_read * or = ctx;
  uint8_t acked = ((const uint8_t *) or->r->orders.data)[i];
  int got = -1; /* nil: no such order */
  if (rep->type == '*' && rep->n >= 1)
    for (int k = 0; k <= (int)ORDER_CANCELLED; k++)
      if (str_is(rep->elem[0].str, order_states[k]))
        got = k;
  if (i == 0 && got > 0 && injected(or->r, "order-regress"))
    got--;
  if (got != (acked == ORDER_NONE ? -1 : acked))
    or->mismatched++;
  /* Behind what was acknowledged, whatever else is unknown: a cancelled
   * order never leaves CANCELLED, and a live one only moves forward. */
  if (acked != ORDER_NONE &&
      (got < 0 ||
       (acked == ORDER_CANCELLED ? got != (int)ORDER_CANCELLED
                                 : got != (int)ORDER_CANCELLED && got < acked)))
    or->behind++;
}

static bool orders_check(struct bench_run *r, struct bench_link *l) {
  struct orders_read or = {r, 0, 0};
  if (!link_batch(l, r->orders.n, order_build, order_reply, & or))
    return false;
  bool exact = r->unknown == 0;
  bench_check_printf(r,
                     "orders_total: %zu\n"
                     "orders_behind_acks: %" PRIu64 "\n"
                     "orders_states_match_acks: %s\n",
                     r->orders.n, or.behind,
                     exact ? yes_no(or.mismatched == 0) : "unknown");
  return or.behind == 0 && (!exact || or.mismatched == 0);
}

/* ---- The table ------------------------------------------------------------
 */

const struct bench_workload bench_workloads[] = {
    {"set", "SET of random keys out of --keys, --value-bytes each", no_setup,
     set_next, kv_reply, no_check},
    {"get", "GET of random keys out of --keys (all written first)", get_setup,
     get_next, kv_reply, no_check},
    {"ledger", "transfers among --accounts accounts; money conserved",
     ledger_setup, ledger_next, ledger_reply, ledger_check},
    {"seats", "a Tatkal rush: book and cancel --seats seats; none sold twice",
     seats_setup, seats_next, seats_reply, seats_check},
    {"locks", "acquire, fenced write, release of --locks locks; tokens grow",
     locks_setup, locks_next, locks_reply, locks_check},
    {"orders", "order workflows, created to delivered or cancelled",
     orders_setup, orders_next, orders_reply, orders_check},
};
const size_t bench_workloads_n =
    sizeof bench_workloads / sizeof bench_workloads[0];
