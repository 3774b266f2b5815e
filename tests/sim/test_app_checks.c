/* Every application invariant checker (src/sim/app_checks.h) can fail: each
 * is fed a deliberately wrong committed stream (a transfer applied twice,
 * money created, a refusal with funds, a double booking, a second grant
 * while held, a token that does not grow, a stale fenced write applied, an
 * order created twice, an invalid transition applied, an acknowledged
 * change missing at the end) and must name the broken invariant; the same
 * streams done right must pass. Where the checker reads a machine, a real
 * one (sm/app.h) is driven alongside. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/app_checks.h"
#include "sm/app.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* A checker, a real machine beside it, and the next log position. */
struct rig {
  struct appck *ck;
  struct app *app;
  uint64_t index;
  uint32_t violations;
  char why[400];
};

static void rig_init(struct rig *r) {
  memset(r, 0, sizeof *r);
  CHECK(appck_new(&r->ck) == 0);
  CHECK(app_new(&r->app, &app_config_default) == 0);
}

static void rig_free(struct rig *r) {
  appck_free(r->ck);
  app_free(r->app);
}

struct cmdb {
  uint8_t b[256];
  size_t len;
};

/* Encodes op with C-string arguments, stamped now_ms. */
static struct cmdb cmd(uint64_t now_ms, enum app_op op, size_t argc, ...) {
  struct cmdb c;
  struct app_arg argv[APP_ARGS_MAX];
  va_list ap;
  va_start(ap, argc);
  for (size_t i = 0; i < argc; i++) {
    const char *s = va_arg(ap, const char *);
    argv[i] = (struct app_arg){(const uint8_t *)s, strlen(s)};
  }
  va_end(ap);
  struct app_hdr hdr = {.now_ms = now_ms, .tag = 0};
  c.len = app_encode(c.b, sizeof c.b, &hdr, op, argv, argc);
  CHECK(c.len > 0 && c.len <= sizeof c.b);
  return c;
}

/* The machine applies the command and the checker sees its true reply. */
static void honest(struct rig *r, struct cmdb c) {
  struct app_reply rep;
  CHECK(app_apply(r->app, c.b, c.len, &rep) == 0);
  r->index++;
  r->violations += appck_observe(r->ck, r->index, 0, c.b, c.len, &rep, r->app,
                                 r->why, sizeof r->why);
  r->violations += appck_ledger_audit(r->ck, r->app, 1, r->index, 0, r->why,
                                      sizeof r->why);
}

/* The checker is told `rep`, whatever the machine would say (no machine). */
static void told(struct rig *r, struct cmdb c, const struct app_reply *rep) {
  r->index++;
  r->violations += appck_observe(r->ck, r->index, 0, c.b, c.len, rep, NULL,
                                 r->why, sizeof r->why);
}

static struct app_reply ok_int(int64_t v) {
  struct app_reply rep;
  memset(&rep, 0, sizeof rep);
  rep.kind = APP_REPLY_INT;
  rep.code = APP_DONE;
  rep.integer = v;
  return rep;
}

static struct app_reply error(enum app_code code) {
  struct app_reply rep;
  memset(&rep, 0, sizeof rep);
  rep.kind = APP_REPLY_ERROR;
  rep.code = (uint16_t)code;
  return rep;
}

static bool caught(const struct rig *r, const char *invariant) {
  if (r->violations == 0 || strstr(r->why, invariant) == NULL) {
    fprintf(stderr, "expected %s, got %u violations: %s\n", invariant,
            r->violations, r->why);
    return false;
  }
  return true;
}

/* appck_client_saw() of a command. */
static uint32_t saw(struct rig *r, struct cmdb c, enum appck_outcome outcome,
                    uint16_t code, int64_t integer) {
  const struct app *nodes[] = {r->app};
  return appck_client_saw(r->ck, c.b, c.len, outcome, code, integer, nodes, 1,
                          r->why, sizeof r->why);
}

/* ---- ledger --------------------------------------------------------------- */

static void ledger_open_two(struct rig *r) {
  honest(r, cmd(1, APP_LEDGER_OPEN, 2, "a", "100"));
  honest(r, cmd(1, APP_LEDGER_OPEN, 2, "b", "100"));
}

static void test_ledger_correct_stream_passes(void) {
  struct rig r;
  rig_init(&r);
  ledger_open_two(&r);
  honest(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "60"));
  honest(&r, cmd(3, APP_LEDGER_TRANSFER, 4, "t2", "a", "b", "60")); /* funds */
  honest(&r, cmd(4, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "60")); /* retry */
  CHECK(r.violations == 0);
  CHECK(appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why) == 0);
  CHECK(saw(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b",
                                   "60"), APPCK_REPLIED, APP_DONE, 60) == 0);
  CHECK(saw(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t2", "a", "b",
                                   "60"), APPCK_REPLIED, APP_E_FUNDS, 0) == 0);
  rig_free(&r);
}

static void test_ledger_transfer_applied_twice_is_caught(void) {
  struct rig r;
  rig_init(&r);
  ledger_open_two(&r);
  struct app_reply done = ok_int(10);
  told(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "10"), &done);
  CHECK(r.violations == 0);
  told(&r, cmd(3, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "10"), &done);
  CHECK(caught(&r, "ledger.txid_once"));
  rig_free(&r);
}

static void test_ledger_money_created_is_caught(void) {
  struct rig r;
  rig_init(&r);
  /* The machine opens with 1000; the stream (and so the model) says 500. */
  struct app_reply rep;
  struct cmdb open1000 = cmd(1, APP_LEDGER_OPEN, 2, "a", "1000");
  CHECK(app_apply(r.app, open1000.b, open1000.len, &rep) == 0);
  told(&r, cmd(1, APP_LEDGER_OPEN, 2, "a", "500"), &rep);
  r.violations += appck_ledger_audit(r.ck, r.app, 1, r.index, 0, r.why,
                                     sizeof r.why);
  CHECK(caught(&r, "ledger.conservation"));
  rig_free(&r);
}

static void test_ledger_overdraft_and_false_refusal_are_caught(void) {
  struct rig r;
  rig_init(&r);
  ledger_open_two(&r);
  struct app_reply done = ok_int(150);
  told(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "150"), &done);
  CHECK(caught(&r, "ledger.no_overdraft"));
  rig_free(&r);

  rig_init(&r);
  ledger_open_two(&r);
  struct app_reply funds = error(APP_E_FUNDS);
  told(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "50"), &funds);
  CHECK(caught(&r, "ledger.refusal"));
  rig_free(&r);
}

static void test_ledger_refused_transfer_applied_later_is_caught(void) {
  struct rig r;
  rig_init(&r);
  ledger_open_two(&r);
  struct app_reply done = ok_int(50);
  told(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "50"), &done);
  CHECK(r.violations == 0);
  r.violations += saw(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "50"), APPCK_NOT_APPLIED, 0, 0);
  CHECK(caught(&r, "ledger.acknowledged"));
  rig_free(&r);
}

/* A retry table full of ids in their window refuses a new id: the command
 * is not applied, and the checkers must take it so, in the stream and as
 * the client's answer. */
static void test_retry_table_full_is_not_applied(void) {
  struct rig r;
  rig_init(&r);
  app_free(r.app);
  struct app_config cfg = app_config_default;
  cfg.dedup_max = 2;
  cfg.dedup_window_ms = 1000;
  CHECK(app_new(&r.app, &cfg) == 0);
  ledger_open_two(&r);
  honest(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t1", "a", "b", "10"));
  honest(&r, cmd(2, APP_LEDGER_TRANSFER, 4, "t2", "a", "b", "10"));
  struct cmdb t3 = cmd(3, APP_LEDGER_TRANSFER, 4, "t3", "a", "b", "10");
  struct app_reply rep;
  CHECK(app_apply(r.app, t3.b, t3.len, &rep) == 0 && rep.code == APP_E_FULL);
  honest(&r, t3);
  honest(&r, cmd(3, APP_SEATS_ADD, 3, "T", "D", "s1"));
  honest(&r, cmd(3, APP_SEATS_BOOK, 5, "r1", "T", "D", "s1", "p"));
  honest(&r, cmd(3, APP_SEATS_BOOK, 5, "r2", "T", "D", "s1", "q"));
  struct cmdb r3 = cmd(4, APP_SEATS_ANY, 4, "r3", "T", "D", "x");
  honest(&r, r3);
  CHECK(r.violations == 0);
  CHECK(appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why) == 0);
  CHECK(saw(&r, t3, APPCK_REPLIED, APP_E_FULL, 0) == 0);
  CHECK(saw(&r, r3, APPCK_REPLIED, APP_E_FULL, 0) == 0);
  /* Had the refused transfer moved money after all, the client, told
   * "refused", would be misled. */
  struct app_reply done = ok_int(10);
  told(&r, cmd(5, APP_LEDGER_TRANSFER, 4, "t3", "a", "b", "10"), &done);
  r.violations += saw(&r, t3, APPCK_REPLIED, APP_E_FULL, 0);
  CHECK(caught(&r, "ledger.acknowledged"));
  rig_free(&r);
}

/* ---- seats ---------------------------------------------------------------- */

static void test_seats_double_booking_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1, APP_SEATS_ADD, 4, "T1", "D1", "s1", "s2"));
  honest(&r, cmd(1, APP_SEATS_BOOK, 5, "r1", "T1", "D1", "s1", "p1"));
  honest(&r, cmd(1, APP_SEATS_BOOK, 5, "r2", "T1", "D1", "s1", "p2"));
  honest(&r, cmd(1, APP_SEATS_ANY, 4, "r3", "T1", "D1", "p3"));
  honest(&r, cmd(1, APP_SEATS_ANY, 4, "r4", "T1", "D1", "p4")); /* full */
  honest(&r, cmd(1, APP_SEATS_CANCEL, 1, "PNR0000000001"));
  CHECK(r.violations == 0);
  CHECK(appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why) == 0);
  CHECK(saw(&r, cmd(1, APP_SEATS_ANY, 4, "r3", "T1", "D1", "p3"), APPCK_REPLIED, APP_DONE, 2) == 0);
  struct app_reply pnr9 = ok_int(9);
  pnr9.kind = APP_REPLY_BULK;
  told(&r, cmd(1, APP_SEATS_BOOK, 5, "r5", "T1", "D1", "s2", "p5"), &pnr9);
  CHECK(caught(&r, "seats.no_double_booking"));
  rig_free(&r);
}

static void test_seats_lost_pnr_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1, APP_SEATS_ADD, 3, "T1", "D1", "s1"));
  struct app_reply pnr1 = ok_int(1);
  pnr1.kind = APP_REPLY_BULK;
  told(&r, cmd(1, APP_SEATS_BOOK, 5, "r1", "T1", "D1", "s1", "p1"), &pnr1);
  CHECK(r.violations == 0);
  /* The machine never booked it. */
  r.violations += appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why);
  CHECK(caught(&r, "seats."));
  rig_free(&r);
}

/* A retry answered as refused while its request holds a seat: the client
 * gives up on a seat it was sold, which no one else can book. */
static void test_seats_booked_request_told_refused_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1, APP_SEATS_ADD, 3, "T1", "D1", "s1"));
  struct cmdb book = cmd(1, APP_SEATS_BOOK, 5, "r1", "T1", "D1", "s1", "p1");
  honest(&r, book);
  honest(&r, book); /* the true retry: PNR 1 again */
  /* Not retries: the id with a malformed command or another seat. */
  honest(&r, cmd(1, APP_SEATS_BOOK, 5, "r1", "T1", "D1", "s1", ""));
  honest(&r, cmd(1, APP_SEATS_BOOK, 4, "r1", "T1", "D1", "s1"));
  honest(&r, cmd(1, APP_SEATS_ANY, 4, "r1", "T1", "D1", "p1"));
  CHECK(r.violations == 0);
  CHECK(saw(&r, cmd(1, APP_SEATS_BOOK, 5, "r1", "T1", "D1", "s1", ""),
            APPCK_REPLIED, APP_E_SYNTAX, 0) == 0);
  CHECK(saw(&r, book, APPCK_REPLIED, APP_DONE, 1) == 0);
  struct app_reply taken = error(APP_E_NOT_AVAILABLE);
  taken.duplicate = true;
  told(&r, book, &taken);
  CHECK(caught(&r, "seats.request_once"));
  rig_free(&r);

  rig_init(&r);
  honest(&r, cmd(1, APP_SEATS_ADD, 3, "T1", "D1", "s1"));
  honest(&r, book);
  CHECK(r.violations == 0);
  r.violations += saw(&r, book, APPCK_REPLIED, APP_E_NOT_AVAILABLE, 0);
  CHECK(caught(&r, "seats.acknowledged"));
  rig_free(&r);
}

/* ---- locks ---------------------------------------------------------------- */

static void test_locks_second_grant_while_held_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"));
  honest(&r, cmd(1050, APP_LOCK_ACQUIRE, 3, "L", "o2", "100")); /* held */
  honest(&r, cmd(1200, APP_LOCK_ACQUIRE, 3, "L", "o2", "100")); /* expired */
  honest(&r, cmd(1210, APP_FENCED_SET, 4, "k", "v", "L", "2"));
  honest(&r, cmd(1220, APP_FENCED_SET, 4, "k", "v", "L", "1")); /* refused */
  honest(&r, cmd(1230, APP_LOCK_RELEASE, 3, "L", "o2", "2"));
  CHECK(r.violations == 0);
  CHECK(appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why) == 0);
  rig_free(&r);

  rig_init(&r);
  struct app_reply t1 = ok_int(1), t2 = ok_int(2);
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(1050, APP_LOCK_ACQUIRE, 3, "L", "o2", "100"), &t2);
  CHECK(caught(&r, "locks.one_holder"));
  rig_free(&r);
}

static void test_locks_token_not_increasing_is_caught(void) {
  struct rig r;
  rig_init(&r);
  struct app_reply t1 = ok_int(1);
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(2000, APP_LOCK_ACQUIRE, 3, "L", "o2", "100"), &t1);
  CHECK(caught(&r, "locks.tokens_increase"));
  rig_free(&r);
}

/* A lease that expired is not the owner's any more: re-acquiring it must
 * take a new token, and renewing it must be refused. */
static void test_locks_expired_grant_reused_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"));
  honest(&r, cmd(1050, APP_LOCK_ACQUIRE, 3, "L", "o1", "100")); /* held */
  honest(&r, cmd(1200, APP_LOCK_ACQUIRE, 3, "L", "o1", "100")); /* expired */
  honest(&r, cmd(1250, APP_LOCK_RENEW, 4, "L", "o1", "2", "100"));
  honest(&r, cmd(1400, APP_LOCK_RENEW, 4, "L", "o1", "2", "100")); /* late */
  CHECK(r.violations == 0);
  rig_free(&r);

  rig_init(&r);
  struct app_reply t1 = ok_int(1);
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(1200, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  CHECK(caught(&r, "locks.tokens_increase"));
  rig_free(&r);

  rig_init(&r);
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(1200, APP_LOCK_RENEW, 4, "L", "o1", "1", "100"), &t1);
  CHECK(caught(&r, "locks.one_holder"));
  rig_free(&r);
}

static void test_locks_stale_fenced_write_is_caught(void) {
  struct rig r;
  rig_init(&r);
  struct app_reply t1 = ok_int(1), t2 = ok_int(2), done = ok_int(0);
  done.kind = APP_REPLY_OK;
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(2000, APP_LOCK_ACQUIRE, 3, "L", "o2", "100"), &t2);
  CHECK(r.violations == 0);
  told(&r, cmd(2001, APP_FENCED_SET, 4, "k", "v", "L", "1"), &done);
  CHECK(caught(&r, "locks.fencing"));
  rig_free(&r);
}

/* A token no grant gave (above the newest, or of a lock never granted)
 * must not pass the fence either. */
static void test_locks_fenced_write_with_an_unknown_token_is_caught(void) {
  struct rig r;
  rig_init(&r);
  struct app_reply t1 = ok_int(1), done = ok_int(0);
  done.kind = APP_REPLY_OK;
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(1001, APP_FENCED_SET, 4, "k", "v", "L", "1"), &done);
  CHECK(r.violations == 0);
  told(&r, cmd(1002, APP_FENCED_SET, 4, "k", "v", "L", "2"), &done);
  CHECK(caught(&r, "locks.fencing"));
  rig_free(&r);

  rig_init(&r);
  told(&r, cmd(1000, APP_FENCED_SET, 4, "k", "v", "M", "1"), &done);
  CHECK(caught(&r, "locks.fencing"));
  rig_free(&r);
}

/* Only the holder of the current, unexpired grant releases it: a release
 * by anyone else that the machine says it did frees the lock for a second
 * holder while the first still works under it. */
static void test_locks_release_by_a_non_holder_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"));
  honest(&r, cmd(1010, APP_LOCK_RELEASE, 3, "L", "o2", "1")); /* refused */
  honest(&r, cmd(1020, APP_LOCK_RELEASE, 3, "L", "o1", "1"));
  honest(&r, cmd(1030, APP_LOCK_RELEASE, 3, "L", "o1", "1")); /* again */
  honest(&r, cmd(1040, APP_LOCK_ACQUIRE, 3, "L", "o2", "100"));
  honest(&r, cmd(1200, APP_LOCK_RELEASE, 3, "L", "o2", "2")); /* expired */
  CHECK(r.violations == 0);
  rig_free(&r);

  struct app_reply t1 = ok_int(1), done = ok_int(0);
  done.kind = APP_REPLY_OK;
  rig_init(&r);
  told(&r, cmd(1000, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"), &t1);
  told(&r, cmd(1010, APP_LOCK_RELEASE, 3, "L", "o2", "1"), &done);
  CHECK(caught(&r, "locks.release"));
  rig_free(&r);
}

/* The machine's expiry saturates (a stamp near the end of the clock must
 * not wrap into the past); so must the model's, or a lease still held
 * there looks expired and its owner's extension a repeated token. */
static void test_locks_leases_at_the_end_of_the_clock_pass(void) {
  struct rig r;
  rig_init(&r);
  uint64_t end = UINT64_MAX - 50;
  honest(&r, cmd(end, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"));
  honest(&r, cmd(end + 10, APP_LOCK_ACQUIRE, 3, "L", "o1", "100"));
  honest(&r, cmd(end + 20, APP_LOCK_RENEW, 4, "L", "o1", "1", "100"));
  honest(&r, cmd(end + 30, APP_LOCK_ACQUIRE, 3, "L", "o2", "100")); /* held */
  honest(&r, cmd(end + 40, APP_LOCK_RELEASE, 3, "L", "o1", "1"));
  CHECK(r.violations == 0);
  CHECK(appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why) == 0);
  rig_free(&r);
}

/* ---- orders --------------------------------------------------------------- */

static void test_orders_correct_stream_passes(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c1", "100"));
  honest(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "PAYMENT_CONFIRMED"));
  honest(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "SHIPPED")); /* skips */
  honest(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c1", "100")); /* again */
  honest(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c2", "100")); /* exists */
  honest(&r, cmd(1, APP_ORDER_CANCEL, 1, "o1"));
  honest(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "CREATED")); /* passed */
  CHECK(r.violations == 0);
  CHECK(appck_final_node(r.ck, r.app, 1, r.why, sizeof r.why) == 0);
  CHECK(saw(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1",
                                   "PAYMENT_CONFIRMED"), APPCK_REPLIED, APP_DONE, 0) == 0);
  rig_free(&r);
}

static void test_orders_created_twice_is_caught(void) {
  struct rig r;
  rig_init(&r);
  struct app_reply done = ok_int(0);
  done.kind = APP_REPLY_OK;
  told(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c1", "100"), &done);
  told(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c2", "300"), &done);
  CHECK(caught(&r, "orders.created_once"));
  rig_free(&r);
}

static void test_orders_invalid_transition_is_caught(void) {
  struct rig r;
  rig_init(&r);
  struct app_reply done = ok_int(0);
  done.kind = APP_REPLY_OK;
  told(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c1", "100"), &done);
  told(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "SHIPPED"), &done);
  CHECK(caught(&r, "orders.transition"));
  rig_free(&r);

  rig_init(&r);
  told(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c1", "100"), &done);
  told(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "PAYMENT_CONFIRMED"), &done);
  told(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "INVENTORY_RESERVED"), &done);
  told(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "SHIPPED"), &done);
  CHECK(r.violations == 0);
  told(&r, cmd(1, APP_ORDER_CANCEL, 1, "o1"), &done); /* too late */
  CHECK(caught(&r, "orders.transition"));
  rig_free(&r);
}

static void test_orders_lost_acknowledged_change_is_caught(void) {
  struct rig r;
  rig_init(&r);
  honest(&r, cmd(1, APP_ORDER_CREATE, 3, "o1", "c1", "100"));
  CHECK(r.violations == 0);
  r.violations += saw(&r, cmd(1, APP_ORDER_ADVANCE, 2, "o1", "SHIPPED"), APPCK_REPLIED, APP_DONE, 0);
  CHECK(caught(&r, "orders.acknowledged"));
  rig_free(&r);
}

int main(void) {
  test_ledger_correct_stream_passes();
  test_ledger_transfer_applied_twice_is_caught();
  test_ledger_money_created_is_caught();
  test_ledger_overdraft_and_false_refusal_are_caught();
  test_ledger_refused_transfer_applied_later_is_caught();
  test_retry_table_full_is_not_applied();
  test_seats_double_booking_is_caught();
  test_seats_lost_pnr_is_caught();
  test_seats_booked_request_told_refused_is_caught();
  test_locks_second_grant_while_held_is_caught();
  test_locks_token_not_increasing_is_caught();
  test_locks_expired_grant_reused_is_caught();
  test_locks_stale_fenced_write_is_caught();
  test_locks_fenced_write_with_an_unknown_token_is_caught();
  test_locks_release_by_a_non_holder_is_caught();
  test_locks_leases_at_the_end_of_the_clock_pass();
  test_orders_correct_stream_passes();
  test_orders_created_twice_is_caught();
  test_orders_invalid_transition_is_caught();
  test_orders_lost_acknowledged_change_is_caught();
  if (failures > 0) {
    fprintf(stderr, "test_app_checks: %d failures\n", failures);
    return 1;
  }
  printf("test_app_checks: all passed\n");
  return 0;
}
