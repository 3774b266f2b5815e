/* Unit tests for the replicated applications (src/sm/app*.c): the ledger,
 * seat booking, locks with fencing tokens, order workflows.
 *
 * Each command's errors and arity are checked against app.h; then the
 * properties replication needs: commands that survive the codec byte for
 * byte and malformed bytes refused without a change; retries answered once
 * (and, with APP_BUG_NO_DEDUP, answered twice, so the tests are seen to
 * catch the bug); lock expiry decided by the clock carried in commands and
 * fencing that refuses a stale holder; snapshots that restore to the same
 * hash and the same later replies, and refuse every corruption with the
 * state unchanged; applies that change nothing when memory runs out at any
 * allocation. Run with a test name as the argument to run only that test. */
/* For fenced_alloc.h: MAP_ANONYMOUS, malloc_usable_size. */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/endian.h"
#include "sabha/error.h"
#include "sm/app.h"
#include "sm/app_internal.h" /* app_fingerprint */
#include "storage/crc32c.h"
#include "check.h"
#include "failing_alloc.h"
#include "fenced_alloc.h"
#include "node/runtime.h"
#include "rt_host.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define CMD_BYTES_MAX 4096

/* ---- Helpers: commands from lines of words ------------------------------ */

/* Splits line into words; "''" is an empty argument. Returns the op. */
static enum app_op words(const char *line, char store[][80],
                         struct app_arg *argv, size_t *argc) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", line);
  char *save = NULL;
  char *w = strtok_r(buf, " ", &save);
  const struct app_command *row = app_command_find(w, strlen(w));
  if (row == NULL) {
    fprintf(stderr, "no command %s\n", w);
    exit(2);
  }
  *argc = 0;
  while ((w = strtok_r(NULL, " ", &save)) != NULL) {
    if (strcmp(w, "''") == 0)
      w[0] = '\0';
    snprintf(store[*argc], 80, "%s", w);
    argv[*argc].ptr = (const uint8_t *)store[*argc];
    argv[*argc].len = strlen(store[*argc]);
    (*argc)++;
  }
  return row->op;
}

static int last_rc;
static uint8_t last_cmd[CMD_BYTES_MAX];
static size_t last_len;

/* Encodes line stamped now_ms into last_cmd. */
static void build(uint64_t now_ms, const char *line) {
  char store[APP_ARGS_MAX + 4][80];
  struct app_arg argv[APP_ARGS_MAX + 4];
  size_t argc;
  enum app_op op = words(line, store, argv, &argc);
  struct app_hdr hdr = {now_ms, 7};
  last_len = app_encode(last_cmd, sizeof last_cmd, &hdr, op, argv, argc);
  if (last_len == 0 || last_len > sizeof last_cmd) {
    fprintf(stderr, "cannot encode %s\n", line);
    exit(2);
  }
}

/* Applies a write. */
static struct app_reply W(struct app *a, uint64_t now_ms, const char *line) {
  build(now_ms, line);
  struct app_reply r;
  last_rc = app_apply(a, last_cmd, last_len, &r);
  return r;
}

/* Applies the last command again, as a client's retry. */
static struct app_reply
again(struct app *a) {
  struct app_reply r;
  last_rc = app_apply(a, last_cmd, last_len, &r);
  return r;
}

/* Serves a read. */
static struct app_reply Q(const struct app *a, uint64_t now_ms,
                          const char *line) {
  char store[APP_ARGS_MAX + 4][80];
  struct app_arg argv[APP_ARGS_MAX + 4];
  size_t argc;
  enum app_op op = words(line, store, argv, &argc);
  struct app_reply r;
  last_rc = app_read(a, op, argv, argc, now_ms, &r);
  return r;
}

static bool
is_ok(struct app_reply r, bool duplicate) {
  return last_rc == 0 && r.kind == APP_REPLY_OK && r.code == APP_DONE &&
         r.duplicate == duplicate;
}

static bool is_int(struct app_reply r, int64_t v) {
  return last_rc == 0 && r.kind == APP_REPLY_INT && r.integer == v;
}

static bool is_err(struct app_reply r, enum app_code code, const char *prefix) {
  bool ok = last_rc == 0 && r.kind == APP_REPLY_ERROR && r.code == code &&
            strncmp(r.text, prefix, strlen(prefix)) == 0 &&
            strlen(r.text) == r.text_len;
  if (!ok)
    fprintf(stderr, "  got kind %d code %d '%s'; want code %d '%s...'\n",
            r.kind, r.code, r.text, code, prefix);
  return ok;
}

static bool is_bulk(struct app_reply r, const char *text) {
  return last_rc == 0 && r.kind == APP_REPLY_BULK &&
         r.text_len == strlen(text) && memcmp(r.text, text, r.text_len) == 0;
}

/* Item i of an array reply is the bulk text (or, text NULL, integer v). */
static bool item_is(struct app_reply r, uint32_t i, const char *text,
                    int64_t v) {
  if (r.kind != APP_REPLY_ARRAY || i >= r.n_items)
    return false;
  const struct app_reply_item *it = &r.items[i];
  if (text == NULL)
    return it->kind == APP_REPLY_INT && it->integer == v;
  return it->kind == APP_REPLY_BULK && it->len == strlen(text) &&
         memcmp(r.text + it->off, text, it->len) == 0;
}

static bool same_reply(const struct app_reply *x, const struct app_reply *y) {
  if (x->kind != y->kind || x->code != y->code || x->integer != y->integer ||
      x->text_len != y->text_len || x->n_items != y->n_items ||
      memcmp(x->text, y->text, x->text_len) != 0)
    return false;
  for (uint32_t i = 0; i < x->n_items; i++)
    if (x->items[i].kind != y->items[i].kind ||
        x->items[i].integer != y->items[i].integer ||
        x->items[i].off != y->items[i].off ||
        x->items[i].len != y->items[i].len)
      return false;
  return true;
}

static struct app *new_app_window(uint32_t dedup_max, uint32_t window_ms,
                                  uint64_t objects_max, uint32_t bugs) {
  struct app_config cfg = app_config_default;
  cfg.dedup_max = dedup_max;
  cfg.dedup_window_ms = window_ms;
  cfg.objects_max = objects_max;
  cfg.bugs = bugs;
  struct app *a = NULL;
  if (app_new(&a, &cfg) != 0) {
    fprintf(stderr, "app_new failed\n");
    exit(2);
  }
  return a;
}

/* With the default retention window (5 s on the commands' clock). */
static struct app *new_app(uint32_t dedup_max, uint64_t objects_max,
                           uint32_t bugs) {
  return new_app_window(dedup_max, APP_DEDUP_WINDOW_MS_DEFAULT, objects_max,
                        bugs);
}

static int64_t balance(const struct app *a, const char *acct) {
  char line[128];
  snprintf(line, sizeof line, "LEDGER.BALANCE %s", acct);
  struct app_reply r = Q(a, 0, line);
  return r.kind == APP_REPLY_INT ? r.integer : -1;
}

/* ---- The table and the codec -------------------------------------------- */

static void command_table_follows_the_enum_and_finds_any_case(void) {
  size_t n;
  const struct app_command *t = app_commands(&n);
  CHECK(n == APP_OP_COUNT - 1);
  for (size_t i = 0; i < n; i++) {
    CHECK(t[i].op == (enum app_op)(i + 1));
    CHECK(app_command_of(t[i].op) == &t[i]);
    CHECK(app_command_find(t[i].name, strlen(t[i].name)) == &t[i]);
    CHECK(t[i].argc_min <= t[i].argc_max && t[i].argc_max <= APP_ARGS_MAX);
  }
  CHECK(app_command_find("ledger.Transfer", 15)->op == APP_LEDGER_TRANSFER);
  CHECK(app_command_find("LEDGER.TRANSFE", 14) == NULL);
  CHECK(app_command_of(0) == NULL && app_command_of(APP_OP_COUNT) == NULL);
  CHECK(!app_command_of(APP_LEDGER_BALANCE)->write);
  CHECK(app_command_of(APP_FENCED_SET)->write);
  CHECK(strcmp(app_order_state_name(APP_ORDER_SHIPPED), "SHIPPED") == 0);
}

static void codec_round_trips_and_stamps_in_place(void) {
  uint8_t big[APP_ARG_BYTES_MAX];
  memset(big, 0xff, sizeof big);
  struct app_arg argv[3] = {
      {(const uint8_t *)"t1", 2}, {big, sizeof big}, {NULL, 0}};
  struct app_hdr hdr = {123456789012345ull, 0xfeedull};
  size_t need = app_encode(NULL, 0, &hdr, APP_LEDGER_TRANSFER, argv, 3);
  CHECK(need == APP_CMD_HEADER_BYTES + 2 + 2 + 2 + 2 + APP_ARG_BYTES_MAX);
  uint8_t buf[256];
  memset(buf, 0xee, sizeof buf);
  CHECK(app_encode(buf, need - 1, &hdr, APP_LEDGER_TRANSFER, argv, 3) == need);
  CHECK(buf[0] == 0xee); /* nothing written when it does not fit */
  CHECK(app_encode(buf, sizeof buf, &hdr, APP_LEDGER_TRANSFER, argv, 3) ==
        need);
  CHECK(app_is_command(buf, need) && buf[0] == APP_CMD_MAGIC);
  struct app_decoded d;
  CHECK(app_decode(buf, need, &d) == 0);
  CHECK(d.op == APP_LEDGER_TRANSFER && d.argc == 3);
  CHECK(d.hdr.now_ms == hdr.now_ms && d.hdr.tag == hdr.tag);
  CHECK(d.argv[0].len == 2 && memcmp(d.argv[0].ptr, "t1", 2) == 0);
  CHECK(d.argv[1].len == sizeof big && memcmp(d.argv[1].ptr, big, 64) == 0);
  CHECK(d.argv[2].len == 0);
  struct app_hdr later = {5, 6};
  app_stamp(buf, need, &later);
  CHECK(app_decode(buf, need, &d) == 0 && d.hdr.now_ms == 5 && d.hdr.tag == 6 &&
        d.argc == 3);

  struct app_arg too_long = {big, APP_ARG_BYTES_MAX + 1};
  uint8_t huge[APP_ARG_BYTES_MAX + 1];
  memset(huge, 'x', sizeof huge);
  too_long.ptr = huge;
  CHECK(app_encode(buf, sizeof buf, &hdr, APP_FENCED_SET, &too_long, 1) == 0);
  struct app_arg many[APP_ARGS_MAX + 1];
  for (size_t i = 0; i < N(many); i++)
    many[i] = argv[0];
  CHECK(app_encode(NULL, 0, &hdr, APP_SEATS_ADD, many, APP_ARGS_MAX) > 0);
  CHECK(app_encode(NULL, 0, &hdr, APP_SEATS_ADD, many, APP_ARGS_MAX + 1) == 0);
  CHECK(app_encode(NULL, 0, &hdr, (enum app_op)0, argv, 1) == 0);
  CHECK(app_encode(NULL, 0, &hdr, APP_OP_COUNT, argv, 1) == 0);
}

static void malformed_commands_are_refused_and_change_nothing(void) {
  struct app *a = new_app(8, 100, 0);
  W(a, 1000, "LEDGER.OPEN a 100");
  uint64_t h = app_state_hash(a);
  build(5000, "LEDGER.TRANSFER t1 a b 5");
  uint8_t good[CMD_BYTES_MAX];
  size_t n = last_len;
  memcpy(good, last_cmd, n);
  struct app_reply r;
  for (size_t len = 0; len < n; len++) /* truncated anywhere */
    CHECK(app_apply(a, good, len, &r) == SABHA_ECORRUPT &&
          r.kind == APP_REPLY_ERROR);
  uint8_t bad[CMD_BYTES_MAX];
  memcpy(bad, good, n);
  bad[n] = 0;
  CHECK(app_apply(a, bad, n + 1, &r) == SABHA_ECORRUPT); /* trailing byte */
  const struct {
    size_t at;
    uint8_t v;
  } flips[] = {{0, 0x01},
               {1, 2},
               {2, 0},
               {2, APP_OP_COUNT},
               {3, APP_ARGS_MAX + 1},
               {3, 3},
               {3, 5},
               {20, 65},
               {21, 1}};
  for (size_t i = 0; i < N(flips); i++) {
    memcpy(bad, good, n);
    bad[flips[i].at] = flips[i].v;
    CHECK(app_apply(a, bad, n, &r) == SABHA_ECORRUPT);
    struct app_decoded d;
    CHECK(app_decode(bad, n, &d) == SABHA_ECORRUPT);
  }
  CHECK(app_state_hash(a) == h && app_clock_ms(a) == 1000);
  CHECK(!app_is_command((const uint8_t *)"\x01", 1));
  /* A read op through the log is refused too. */
  build(9000, "LEDGER.BALANCE a");
  CHECK(app_apply(a, last_cmd, last_len, &r) == SABHA_EINVAL);
  CHECK(app_state_hash(a) == h && app_clock_ms(a) == 1000);
  struct app_arg arg = {(const uint8_t *)"a", 1};
  CHECK(app_read(a, APP_LEDGER_OPEN, &arg, 1, 0, &r) == SABHA_EINVAL);
  uint8_t huge[APP_ARG_BYTES_MAX + 1];
  memset(huge, 'a', sizeof huge);
  struct app_arg long_arg = {huge, sizeof huge};
  CHECK(app_read(a, APP_LEDGER_BALANCE, &long_arg, 1, 0, &r) == 0 &&
        r.code == APP_E_SYNTAX);
  app_free(a);
}

/* Every command with one argument too few and one too many. */
static void wrong_arity_is_an_error_naming_the_command(void) {
  struct app *a = new_app(8, 100, 0);
  size_t n;
  const struct app_command *t = app_commands(&n);
  struct app_arg argv[APP_ARGS_MAX];
  for (size_t i = 0; i < APP_ARGS_MAX; i++)
    argv[i] = (struct app_arg){(const uint8_t *)"x", 1};
  for (size_t i = 0; i < n; i++) {
    char want[96];
    snprintf(want, sizeof want,
             "ERR wrong number of arguments for '%s' command", t[i].name);
    for (char *c = want; *c; c++)
      if (*c >= 'A' && *c <= 'Z')
        *c += 32;
    memcpy(want, "ERR", 3);
    size_t counts[2] = {t[i].argc_min - 1u, t[i].argc_max + 1u};
    for (size_t k = 0; k < 2; k++) {
      if (counts[k] > APP_ARGS_MAX || (k == 0 && t[i].argc_min == 0))
        continue;
      struct app_reply r;
      if (t[i].write) {
        struct app_hdr hdr = {1, 0};
        uint8_t buf[CMD_BYTES_MAX];
        size_t len =
            app_encode(buf, sizeof buf, &hdr, t[i].op, argv, counts[k]);
        last_rc = app_apply(a, buf, len, &r);
      } else {
        last_rc = app_read(a, t[i].op, argv, counts[k], 0, &r);
      }
      CHECK(is_err(r, APP_E_SYNTAX, want));
    }
  }
  app_free(a);
}

/* ---- Ledger ------------------------------------------------------------- */

static void ledger_moves_money_without_making_or_losing_any(void) {
  struct app *a = new_app(16, 100, 0);
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN a1 500"), false));
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN a2 0"), false));
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN a1 500"), true)); /* idempotent */
  CHECK(is_err(W(a, 1, "LEDGER.OPEN a1 600"), APP_E_EXISTS,
               "ERR account a1 exists, opened with 500 paise"));
  const char *bad[] = {"-5", "+5", "5x", "05", "''", "1.5", "0x10"};
  for (size_t i = 0; i < N(bad); i++) {
    char line[64];
    snprintf(line, sizeof line, "LEDGER.OPEN z %s", bad[i]);
    CHECK(is_err(W(a, 1, line), APP_E_SYNTAX, "ERR initial_paise"));
    snprintf(line, sizeof line, "LEDGER.TRANSFER tz a1 a2 %s", bad[i]);
    CHECK(is_err(W(a, 1, line), APP_E_SYNTAX, "ERR amount_paise"));
  }
  CHECK(is_err(W(a, 1, "LEDGER.OPEN z 9223372036854775808"), APP_E_OVERFLOW,
               "ERR initial_paise"));
  CHECK(is_err(W(a, 1, "LEDGER.OPEN '' 5"), APP_E_SYNTAX, "ERR empty"));
  CHECK(is_err(W(a, 1, "LEDGER.TRANSFER t0 a1 a2 0"), APP_E_SYNTAX,
               "ERR amount_paise must be above 0"));
  CHECK(is_err(W(a, 1, "LEDGER.TRANSFER t0 a1 a1 5"), APP_E_SAME_ACCOUNT,
               "ERR transfer from account a1 to itself"));
  CHECK(is_err(W(a, 1, "LEDGER.TRANSFER t1 a1 nope 5"), APP_E_NO_SUCH,
               "ERR no such account: nope"));
  CHECK(is_err(W(a, 1, "LEDGER.TRANSFER t2 a1 a2 700"), APP_E_FUNDS,
               "ERR insufficient funds: account a1 has 500 paise, the "
               "transfer needs 700"));
  struct app_reply r = W(a, 1, "LEDGER.TRANSFER t3 a1 a2 500");
  CHECK(is_ok(r, false) && r.integer == 500);
  CHECK(balance(a, "a1") == 0 && balance(a, "a2") == 500);
  CHECK(is_err(Q(a, 0, "LEDGER.BALANCE zz"), APP_E_NO_SUCH,
               "ERR no such account: zz"));
  r = Q(a, 0, "LEDGER.AUDIT");
  CHECK(item_is(r, 0, NULL, 2) && item_is(r, 1, NULL, 500));
  uint64_t accounts;
  int64_t total;
  app_ledger_audit(a, &accounts, &total);
  CHECK(accounts == 2 && total == 500);
  /* The total may not pass int64. */
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN rich 9223372036854775000"), false));
  CHECK(is_err(W(a, 1, "LEDGER.OPEN richer 9223372036854775000"),
               APP_E_OVERFLOW, "ERR opening richer"));
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN exact 307"), false));
  app_ledger_audit(a, &accounts, &total);
  CHECK(accounts == 4 && total == INT64_MAX);
  app_free(a);
}

static void a_retried_transfer_is_answered_once(void) {
  struct app *a = new_app(16, 100, 0);
  W(a, 1, "LEDGER.OPEN a 1000");
  W(a, 1, "LEDGER.OPEN b 0");
  struct app_reply first = W(a, 2, "LEDGER.TRANSFER tx1 a b 300");
  CHECK(is_ok(first, false) && first.integer == 300);
  uint64_t h = app_state_hash(a);
  struct app_reply retry = again(a);
  CHECK(last_rc == 0 && retry.duplicate && same_reply(&first, &retry));
  CHECK(balance(a, "a") == 700 && balance(a, "b") == 300);
  CHECK(app_state_hash(a) == h);
  /* A refusal is recorded too: the retry is refused even after the money
   * arrives. */
  struct app_reply refused = W(a, 3, "LEDGER.TRANSFER tx2 b a 900");
  CHECK(is_err(refused, APP_E_FUNDS, "ERR insufficient funds: account b"));
  W(a, 3, "LEDGER.TRANSFER tx3 a b 700");
  build(4, "LEDGER.TRANSFER tx2 b a 900");
  retry = again(a);
  CHECK(retry.duplicate && same_reply(&refused, &retry));
  CHECK(balance(a, "b") == 1000);
  /* The same id with another command changes nothing. */
  h = app_state_hash(a);
  CHECK(is_err(W(a, 5, "LEDGER.TRANSFER tx1 b a 1"), APP_E_ID_REUSED,
               "ERR id tx1 was used for a different command"));
  CHECK(balance(a, "a") == 0 && app_state_hash(a) != h); /* clock moved */
  /* LEDGER.TX tells what happened. */
  struct app_reply tx = Q(a, 0, "LEDGER.TX tx1");
  CHECK(tx.n_items == 4 && item_is(tx, 0, "committed", 0) &&
        item_is(tx, 1, "a", 0) && item_is(tx, 2, "b", 0) &&
        item_is(tx, 3, NULL, 300));
  tx = Q(a, 0, "LEDGER.TX tx2");
  CHECK(item_is(tx, 0, "refused", 0) && item_is(tx, 3, NULL, 900));
  CHECK(Q(a, 0, "LEDGER.TX never").kind == APP_REPLY_NULL);
  app_free(a);
}

static void without_dedup_a_retried_transfer_moves_money_twice(void) {
  struct app *a = new_app(16, 100, APP_BUG_NO_DEDUP);
  W(a, 1, "LEDGER.OPEN a 1000");
  W(a, 1, "LEDGER.OPEN b 0");
  W(a, 2, "LEDGER.TRANSFER tx1 a b 300");
  struct app_reply retry = again(a);
  CHECK(is_ok(retry, false));
  CHECK(balance(a, "a") == 400 && balance(a, "b") == 600); /* the bug */
  CHECK(Q(a, 0, "LEDGER.TX tx1").n_items == 4);            /* still recorded */
  app_free(a);
}

/* With no retention window the table keeps the newest ids, whatever their
 * age (as before windows existed). */
static void a_dedup_bound_of_two_forgets_the_oldest_id(void) {
  struct app *a = new_app_window(2, 0, 100, 0);
  W(a, 1, "LEDGER.OPEN a 1000");
  W(a, 1, "LEDGER.OPEN b 0");
  W(a, 1, "LEDGER.TRANSFER t1 a b 1");
  W(a, 1, "LEDGER.TRANSFER t2 a b 1");
  CHECK(Q(a, 0, "LEDGER.TX t1").kind == APP_REPLY_ARRAY);
  W(a, 1, "LEDGER.TRANSFER t3 a b 1");
  CHECK(Q(a, 0, "LEDGER.TX t1").kind == APP_REPLY_NULL); /* evicted */
  CHECK(Q(a, 0, "LEDGER.TX t2").kind == APP_REPLY_ARRAY);
  CHECK(Q(a, 0, "LEDGER.TX t3").kind == APP_REPLY_ARRAY);
  CHECK(is_ok(W(a, 1, "LEDGER.TRANSFER t2 a b 1"), true));
  CHECK(is_ok(W(a, 1, "LEDGER.TRANSFER t1 a b 1"), false)); /* as new */
  CHECK(balance(a, "b") == 4);
  CHECK(Q(a, 0, "LEDGER.TX t2").kind == APP_REPLY_NULL);
  /* Seats keep their own table. */
  W(a, 1, "SEATS.ADD T D s1 s2 s3");
  W(a, 1, "SEATS.BOOK r1 T D s1 p");
  CHECK(Q(a, 0, "LEDGER.TX t1").kind == APP_REPLY_ARRAY);
  CHECK(Q(a, 0, "LEDGER.TX t3").kind == APP_REPLY_ARRAY);
  app_free(a);
}

/* ---- Seats -------------------------------------------------------------- */

static void no_seat_is_sold_twice_and_pnrs_count_up(void) {
  struct app *a = new_app(16, 100, 0);
  CHECK(is_int(W(a, 1, "SEATS.ADD 12951 2025-03-01 S1 S2 S2 S3"), 3));
  CHECK(is_int(W(a, 1, "SEATS.ADD 12951 2025-03-01 S3 S4"), 1));
  struct app_reply r = W(a, 1, "SEATS.ADD 12951 2025-03-01 S1");
  CHECK(is_int(r, 0) && r.duplicate);
  CHECK(is_int(Q(a, 0, "SEATS.FREE 12951 2025-03-01"), 4));
  CHECK(is_err(Q(a, 0, "SEATS.FREE 12951 2025-03-02"), APP_E_NO_SUCH,
               "ERR no such train"));
  r = W(a, 1, "SEATS.BOOK r1 12951 2025-03-01 S2 Asha");
  CHECK(is_bulk(r, "PNR0000000001") && r.integer == 1);
  CHECK(is_err(W(a, 1, "SEATS.BOOK r2 12951 2025-03-01 S2 Ravi"),
               APP_E_NOT_AVAILABLE, "ERR seat not available"));
  CHECK(is_err(W(a, 1, "SEATS.BOOK r3 12951 2025-03-01 S9 Ravi"), APP_E_NO_SUCH,
               "ERR no such seat: S9"));
  CHECK(is_err(W(a, 1, "SEATS.BOOK r4 12951 2025-03-09 S1 Ravi"), APP_E_NO_SUCH,
               "ERR no such seat"));
  CHECK(is_err(W(a, 1, "SEATS.BOOK r5 12951 2025-03-01 S1 ''"), APP_E_SYNTAX,
               "ERR empty passenger"));
  /* ANY takes the first free seat in the order added. */
  r = W(a, 1, "SEATS.ANY r6 12951 2025-03-01 Ravi");
  CHECK(item_is(r, 0, "PNR0000000002", 0) && item_is(r, 1, "S1", 0) &&
        r.integer == 2);
  r = W(a, 1, "SEATS.ANY r7 12951 2025-03-01 Meera");
  CHECK(item_is(r, 1, "S3", 0) && r.integer == 3);
  CHECK(is_int(Q(a, 0, "SEATS.FREE 12951 2025-03-01"), 1));
  /* Cancelling frees the seat; ANY finds it again, first in order. */
  CHECK(is_ok(W(a, 1, "SEATS.CANCEL PNR0000000002"), false));
  CHECK(is_ok(W(a, 1, "SEATS.CANCEL PNR0000000002"), true));
  CHECK(is_err(W(a, 1, "SEATS.CANCEL PNR0000000099"), APP_E_NO_SUCH,
               "ERR no such PNR: PNR0000000099"));
  CHECK(is_err(W(a, 1, "SEATS.CANCEL PNR2"), APP_E_NO_SUCH, "ERR no such PNR"));
  r = Q(a, 0, "SEATS.PNR PNR0000000002");
  CHECK(item_is(r, 0, "12951", 0) && item_is(r, 1, "2025-03-01", 0) &&
        item_is(r, 2, "S1", 0) && item_is(r, 3, "Ravi", 0) &&
        item_is(r, 4, "CANCELLED", 0));
  r = W(a, 1, "SEATS.ANY r8 12951 2025-03-01 Kiran");
  CHECK(item_is(r, 0, "PNR0000000004", 0) && item_is(r, 1, "S1", 0));
  r = W(a, 1, "SEATS.ANY r9 12951 2025-03-01 Dev");
  CHECK(item_is(r, 1, "S4", 0));
  CHECK(is_err(W(a, 1, "SEATS.ANY r10 12951 2025-03-01 Late"),
               APP_E_NOT_AVAILABLE, "ERR seat not available"));
  CHECK(is_err(W(a, 1, "SEATS.ANY r11 99999 2025-03-01 Late"), APP_E_NO_SUCH,
               "ERR no such train 99999"));
  r = Q(a, 0, "SEATS.PNR PNR0000000004");
  CHECK(item_is(r, 4, "CONFIRMED", 0));
  struct app_arg train, date, seat;
  bool cancelled;
  CHECK(app_seats_pnr(a, 1, &train, &date, &seat, &cancelled) && !cancelled &&
        seat.len == 2 && memcmp(seat.ptr, "S2", 2) == 0);
  CHECK(!app_seats_pnr(a, 6, &train, &date, &seat, &cancelled));
  app_free(a);
}

static void retried_bookings_are_answered_once(void) {
  struct app *a = new_app(16, 100, 0);
  W(a, 1, "SEATS.ADD T D A B");
  struct app_reply first = W(a, 1, "SEATS.BOOK r1 T D A p1");
  uint64_t h = app_state_hash(a);
  struct app_reply retry = again(a);
  CHECK(retry.duplicate && same_reply(&first, &retry));
  first = W(a, 1, "SEATS.ANY r2 T D p2");
  CHECK(item_is(first, 1, "B", 0));
  h = app_state_hash(a);
  retry = again(a);
  CHECK(retry.duplicate && same_reply(&first, &retry) &&
        app_state_hash(a) == h);
  /* A refusal is recorded: still refused after the seat is freed. */
  struct app_reply refused = W(a, 1, "SEATS.BOOK r3 T D A p3");
  CHECK(is_err(refused, APP_E_NOT_AVAILABLE, "ERR seat not available"));
  W(a, 1, "SEATS.CANCEL PNR0000000001");
  build(1, "SEATS.BOOK r3 T D A p3");
  retry = again(a);
  CHECK(retry.duplicate && same_reply(&refused, &retry));
  CHECK(is_int(Q(a, 0, "SEATS.FREE T D"), 1));
  CHECK(is_err(W(a, 1, "SEATS.ANY r1 T D p1"), APP_E_ID_REUSED, "ERR id r1"));
  app_free(a);
}

/* ---- Locks and fencing -------------------------------------------------- */

static void locks_expire_by_the_clock_in_the_log(void) {
  struct app *a = new_app(16, 100, 0);
  CHECK(is_int(W(a, 1000, "LOCK.ACQUIRE L c1 500"), 1));
  struct app_reply r = Q(a, 0, "LOCK.GET L");
  CHECK(item_is(r, 0, "c1", 0) && item_is(r, 1, NULL, 1) &&
        item_is(r, 2, NULL, 500));
  CHECK(is_err(W(a, 1200, "LOCK.ACQUIRE L c2 500"), APP_E_HELD,
               "ERR lock L is held by c1 for another 300 ms"));
  /* The holder again: same token, expiry extended from now. */
  r = W(a, 1300, "LOCK.ACQUIRE L c1 500");
  CHECK(is_int(r, 1) && r.duplicate);
  struct app_lock_view v;
  CHECK(app_lock_view(a, (const uint8_t *)"L", 1, &v) && v.expires_ms == 1800);
  CHECK(is_err(W(a, 1799, "LOCK.ACQUIRE L c2 500"), APP_E_HELD, "ERR lock L"));
  /* Held while clock < expiry; at the expiry it is free. */
  r = W(a, 1800, "LOCK.ACQUIRE L c2 500");
  CHECK(is_int(r, 2) && !r.duplicate && r.integer == 2);
  CHECK(app_lock_view(a, (const uint8_t *)"L", 1, &v) && v.token == 2 &&
        v.token_max == 2 && v.owner.len == 2);
  /* LOCK.GET judges time left at max(host clock, machine clock). */
  CHECK(item_is(Q(a, 2000, "LOCK.GET L"), 2, NULL, 300));
  CHECK(Q(a, 2300, "LOCK.GET L").kind == APP_REPLY_NULL);
  CHECK(Q(a, 0, "LOCK.GET nope").kind == APP_REPLY_NULL);
  /* RENEW only by the holder with its token, while held. */
  CHECK(is_err(W(a, 1900, "LOCK.RENEW L c1 1 500"), APP_E_NOT_HOLDER,
               "ERR not the holder: lock L is held by c2"));
  CHECK(is_err(W(a, 1900, "LOCK.RENEW L c2 1 500"), APP_E_NOT_HOLDER,
               "ERR not the holder"));
  CHECK(is_int(W(a, 1900, "LOCK.RENEW L c2 2 1000"), 2));
  CHECK(app_lock_view(a, (const uint8_t *)"L", 1, &v) && v.expires_ms == 2900);
  CHECK(is_err(W(a, 1900, "LOCK.RENEW M c2 2 1000"), APP_E_NOT_HOLDER,
               "ERR not the holder: lock M was never granted"));
  CHECK(is_err(W(a, 1900, "LOCK.RENEW L c2 2 0"), APP_E_SYNTAX, "ERR ttl_ms"));
  CHECK(is_err(W(a, 1900, "LOCK.ACQUIRE L c2 86400001"), APP_E_SYNTAX,
               "ERR ttl_ms 86400001 is outside"));
  CHECK(is_err(W(a, 1900, "LOCK.RENEW L c2 0 10"), APP_E_SYNTAX, "ERR token"));
  /* RELEASE: a wrong owner for the current token is refused; a grant
   * already gone is answered +OK as a duplicate. */
  CHECK(is_err(W(a, 1900, "LOCK.RELEASE L c1 2"), APP_E_NOT_HOLDER,
               "ERR not the holder"));
  CHECK(is_ok(W(a, 1900, "LOCK.RELEASE L c1 1"), true)); /* superseded */
  CHECK(is_err(W(a, 1900, "LOCK.RELEASE L c1 3"), APP_E_NOT_HOLDER,
               "ERR not the holder: token 3 was never granted"));
  CHECK(is_ok(W(a, 1900, "LOCK.RELEASE L c2 2"), false));
  CHECK(is_ok(W(a, 1900, "LOCK.RELEASE L c2 2"), true));
  CHECK(app_lock_view(a, (const uint8_t *)"L", 1, &v) && v.owner.len == 0 &&
        v.token == 0 && v.token_max == 2);
  CHECK(Q(a, 0, "LOCK.GET L").kind == APP_REPLY_NULL);
  CHECK(is_err(W(a, 1900, "LOCK.RENEW L c2 2 10"), APP_E_NOT_HOLDER,
               "ERR not the holder: lock L is free"));
  /* After a release, the next grant takes the next token. */
  CHECK(is_int(W(a, 1900, "LOCK.ACQUIRE L c1 100"), 3));
  /* An expired grant released by its owner: gone already. */
  CHECK(is_ok(W(a, 2500, "LOCK.RELEASE L c1 3"), true));
  CHECK(app_lock_view(a, (const uint8_t *)"L", 1, &v) && v.token == 3);
  CHECK(!app_lock_view(a, (const uint8_t *)"Q", 1, &v));
  app_free(a);
}

static void the_clock_never_runs_backwards(void) {
  struct app *a = new_app(16, 100, 0);
  W(a, 5000, "LOCK.ACQUIRE L c1 1000");
  CHECK(app_clock_ms(a) == 5000);
  /* A lagging stamp (a new leader's slower clock) does not rewind time. */
  W(a, 100, "ORDER.CREATE o c 5");
  CHECK(app_clock_ms(a) == 5000);
  CHECK(is_err(W(a, 100, "LOCK.ACQUIRE L c2 1000"), APP_E_HELD,
               "ERR lock L is held by c1 for another 1000 ms"));
  W(a, 5999, "ORDER.CREATE o c 5");
  CHECK(is_err(W(a, 10, "LOCK.ACQUIRE L c2 1000"), APP_E_HELD,
               "ERR lock L is held by c1 for another 1 ms"));
  CHECK(is_int(W(a, 6000, "LOCK.ACQUIRE L c2 1000"), 2));
  CHECK(app_clock_ms(a) == 6000);
  /* Errors move the clock too: the command was applied. */
  W(a, 7000, "ORDER.CANCEL nope");
  CHECK(app_clock_ms(a) == 7000);
  app_free(a);
}

/* Jepsen's etcd-lock finding: a paused holder wakes after expiry and
 * writes; the new holder's grant must fence it off. */
static void fenced_writes_refuse_a_holder_whose_lease_was_regranted(void) {
  struct app *a = new_app(16, 100, 0);
  CHECK(is_err(W(a, 0, "FENCED.SET k v L 1"), APP_E_STALE_TOKEN,
               "ERR stale token 1: lock L was never granted"));
  CHECK(is_int(W(a, 1000, "LOCK.ACQUIRE L c1 100"), 1));
  CHECK(is_ok(W(a, 1050, "FENCED.SET k from-c1 L 1"), false));
  /* c1 pauses; its lease expires and c2 is granted. */
  CHECK(is_int(W(a, 1200, "LOCK.ACQUIRE L c2 100"), 2));
  CHECK(is_ok(W(a, 1210, "FENCED.SET k from-c2 L 2"), false));
  CHECK(is_err(W(a, 1220, "FENCED.SET k late-c1 L 1"), APP_E_STALE_TOKEN,
               "ERR stale token 1: lock L has granted 2"));
  CHECK(is_bulk(Q(a, 0, "FENCED.GET k"), "from-c2"));
  /* The writer's lease is not checked: c2's token is still the newest. */
  CHECK(is_ok(W(a, 5000, "FENCED.SET k again-c2 L 2"), false));
  CHECK(is_err(W(a, 5000, "FENCED.SET k forged L 9"), APP_E_STALE_TOKEN,
               "ERR unknown token 9"));
  CHECK(is_bulk(Q(a, 0, "FENCED.GET k"), "again-c2"));
  CHECK(Q(a, 0, "FENCED.GET other").kind == APP_REPLY_NULL);
  CHECK(is_ok(W(a, 5000, "FENCED.SET e '' L 2"), false));
  CHECK(is_bulk(Q(a, 0, "FENCED.GET e"), ""));
  app_free(a);
}

/* ---- Orders ------------------------------------------------------------- */

static void orders_move_one_step_at_a_time(void) {
  struct app *a = new_app(16, 100, 0);
  CHECK(is_ok(W(a, 1, "ORDER.CREATE o1 cust 4999"), false));
  CHECK(is_ok(W(a, 1, "ORDER.CREATE o1 cust 4999"), true));
  CHECK(is_err(W(a, 1, "ORDER.CREATE o1 cust 5000"), APP_E_EXISTS,
               "ERR order o1 exists"));
  CHECK(is_err(W(a, 1, "ORDER.CREATE o2 cust 0"), APP_E_SYNTAX,
               "ERR amount_paise must be above 0"));
  CHECK(is_err(W(a, 1, "ORDER.ADVANCE o1 SHIPPED"), APP_E_TRANSITION,
               "ERR invalid transition: order o1 is CREATED"));
  CHECK(is_err(W(a, 1, "ORDER.ADVANCE o1 LOST"), APP_E_SYNTAX,
               "ERR unknown order state 'LOST'"));
  CHECK(is_err(W(a, 1, "ORDER.ADVANCE o1 CANCELLED"), APP_E_SYNTAX,
               "ERR unknown order state"));
  /* Case folds letters only: DEL is not '_' in any case. */
  CHECK(is_err(W(a, 1, "ORDER.ADVANCE o1 PAYMENT\x7f" "CONFIRMED"),
               APP_E_SYNTAX, "ERR unknown order state"));
  CHECK(is_err(W(a, 1, "ORDER.ADVANCE zz SHIPPED"), APP_E_NO_SUCH,
               "ERR no such order: zz"));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o1 payment_confirmed"), false));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o1 PAYMENT_CONFIRMED"), true));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o1 INVENTORY_RESERVED"), false));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o1 SHIPPED"), false));
  CHECK(is_err(W(a, 1, "ORDER.CANCEL o1"), APP_E_TRANSITION,
               "ERR invalid transition: order o1 is SHIPPED"));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o1 CREATED"), true));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o1 DELIVERED"), false));
  struct app_reply r = Q(a, 0, "ORDER.GET o1");
  CHECK(item_is(r, 0, "DELIVERED", 0) && item_is(r, 1, "cust", 0) &&
        item_is(r, 2, NULL, 4999));
  CHECK(app_order_state(a, (const uint8_t *)"o1", 2) == APP_ORDER_DELIVERED);
  CHECK(Q(a, 0, "ORDER.GET none").kind == APP_REPLY_NULL);
  /* Cancel before shipping; retries of steps it had reached still +OK. */
  W(a, 1, "ORDER.CREATE o3 c 10");
  W(a, 1, "ORDER.ADVANCE o3 PAYMENT_CONFIRMED");
  CHECK(is_ok(W(a, 1, "ORDER.CANCEL o3"), false));
  CHECK(is_ok(W(a, 1, "ORDER.CANCEL o3"), true));
  CHECK(is_ok(W(a, 1, "ORDER.ADVANCE o3 PAYMENT_CONFIRMED"), true));
  CHECK(is_err(W(a, 1, "ORDER.ADVANCE o3 INVENTORY_RESERVED"), APP_E_TRANSITION,
               "ERR invalid transition: order o3 is "
               "CANCELLED"));
  CHECK(is_err(W(a, 1, "ORDER.CANCEL o9"), APP_E_NO_SUCH, "ERR no such order"));
  CHECK(app_order_state(a, (const uint8_t *)"o3", 2) == APP_ORDER_CANCELLED);
  CHECK(app_order_state(a, (const uint8_t *)"o9", 2) == 0);
  app_free(a);
}

static void the_objects_bound_refuses_new_objects(void) {
  struct app *a = new_app(16, 4, 0);
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN a 1"), false));
  CHECK(is_int(W(a, 1, "SEATS.ADD T D s1"), 1));
  CHECK(is_err(W(a, 1, "SEATS.ADD T D s2 s3 s4"), APP_E_FULL, "ERR too many"));
  CHECK(is_int(Q(a, 0, "SEATS.FREE T D"), 1)); /* all or nothing */
  CHECK(is_int(W(a, 1, "LOCK.ACQUIRE L o 10"), 1));
  CHECK(is_bulk(W(a, 1, "SEATS.BOOK r T D s1 p"), "PNR0000000001"));
  CHECK(is_err(W(a, 1, "ORDER.CREATE o c 1"), APP_E_FULL, "ERR too many"));
  CHECK(is_err(W(a, 1, "FENCED.SET k v L 1"), APP_E_FULL, "ERR too many"));
  CHECK(is_err(W(a, 1, "LEDGER.OPEN b 1"), APP_E_FULL, "ERR too many"));
  CHECK(is_ok(W(a, 1, "LEDGER.OPEN a 1"), true)); /* idempotent still */
  struct app_config bad = app_config_default;
  bad.dedup_max = 0;
  struct app *b = NULL;
  CHECK(app_new(&b, &bad) == SABHA_EINVAL && b == NULL);
  app_free(a);
}

/* ---- Snapshots ---------------------------------------------------------- */

/* A machine with something in every application and both dedup tables. */
static struct app *populated(uint32_t dedup_max) {
  struct app *a = new_app(dedup_max, 1000, 0);
  W(a, 100, "LEDGER.OPEN a 1000");
  W(a, 100, "LEDGER.OPEN b 50");
  W(a, 110, "LEDGER.TRANSFER t1 a b 300");
  W(a, 120, "LEDGER.TRANSFER t2 b a 9999");
  W(a, 130, "SEATS.ADD T D s1 s2 s3");
  W(a, 130, "SEATS.ADD U D x1");
  W(a, 140, "SEATS.BOOK r1 T D s2 p1");
  W(a, 150, "SEATS.ANY r2 T D p2");
  W(a, 160, "SEATS.CANCEL PNR0000000002");
  W(a, 170, "LOCK.ACQUIRE L c1 1000");
  W(a, 180, "LOCK.ACQUIRE M c2 10");
  W(a, 190, "LOCK.RELEASE M c2 1");
  W(a, 200, "FENCED.SET k v L 1");
  W(a, 210, "ORDER.CREATE o1 c 500");
  W(a, 220, "ORDER.ADVANCE o1 PAYMENT_CONFIRMED");
  W(a, 230, "ORDER.CREATE o2 c 700");
  W(a, 240, "ORDER.CANCEL o2");
  return a;
}

static uint8_t *snapshot_of(const struct app *a, size_t *len) {
  *len = app_snapshot_size(a);
  uint8_t *buf = malloc(*len);
  if (buf == NULL || app_snapshot(a, buf, *len) != *len) {
    fprintf(stderr, "snapshot failed\n");
    exit(2);
  }
  return buf;
}

static const char *const later[] = {
    "LEDGER.TRANSFER t1 a b 300", "LEDGER.TRANSFER t2 b a 9999",
    "LEDGER.TRANSFER t3 a b 1",   "SEATS.BOOK r1 T D s2 p1",
    "SEATS.ANY r2 T D p2",        "SEATS.ANY r3 T D p3",
    "SEATS.ANY r4 T D p4",        "LOCK.ACQUIRE L c9 10",
    "LOCK.ACQUIRE L c1 10",       "FENCED.SET k w L 1",
    "ORDER.ADVANCE o1 SHIPPED",   "ORDER.ADVANCE o1 INVENTORY_RESERVED",
    "LEDGER.OPEN a 1000",         "SEATS.CANCEL PNR0000000002",
};

static void snapshot_restores_the_same_state_and_replies(void) {
  struct app *a = populated(16);
  size_t len;
  uint8_t *snap = snapshot_of(a, &len);
  struct app *b = new_app(16, 1000, 0);
  W(b, 99999, "LEDGER.OPEN junk 5"); /* replaced by the restore */
  CHECK(app_restore(b, snap, len) == 0);
  CHECK(app_state_hash(a) == app_state_hash(b));
  CHECK(app_clock_ms(b) == 240);
  CHECK(balance(b, "junk") == -1 && balance(b, "b") == 350);
  size_t len2;
  uint8_t *snap2 = snapshot_of(b, &len2);
  CHECK(len2 == len && memcmp(snap, snap2, len) == 0);
  for (size_t i = 0; i < N(later); i++) {
    struct app_reply ra = W(a, 300 + i, later[i]);
    int rc_a = last_rc;
    struct app_reply rb = W(b, 300 + i, later[i]);
    CHECK(rc_a == last_rc && same_reply(&ra, &rb) &&
          ra.duplicate == rb.duplicate);
    if (i < 2)
      CHECK(rb.duplicate); /* the dedup table travelled */
  }
  CHECK(app_state_hash(a) == app_state_hash(b));
  free(snap);
  free(snap2);
  app_free(a);
  app_free(b);
}

static void corrupt_snapshots_are_refused_with_the_state_unchanged(void) {
  struct app *a = populated(16);
  size_t len;
  uint8_t *snap = snapshot_of(a, &len);
  struct app *b = new_app(16, 1000, 0);
  W(b, 5, "ORDER.CREATE keep me 1");
  uint64_t h = app_state_hash(b);
  uint8_t *bad = malloc(len);
  CHECK(bad != NULL);
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit += 3) {
      memcpy(bad, snap, len);
      bad[i] ^= (uint8_t)(1u << bit);
      CHECK(app_restore(b, bad, len) == SABHA_ECORRUPT);
    }
  }
  for (size_t cut = 0; cut < len; cut++)
    CHECK(app_restore(b, snap, cut) == SABHA_ECORRUPT);
  CHECK(app_state_hash(b) == h);
  /* A snapshot beyond this machine's bounds is refused too. */
  struct app *small = new_app(1, 1000, 0);
  CHECK(app_restore(small, snap, len) == SABHA_ECORRUPT);
  struct app *few = new_app(16, 5, 0);
  CHECK(app_restore(few, snap, len) == SABHA_ECORRUPT);
  CHECK(app_restore(b, snap, len) == 0);
  free(bad);
  free(snap);
  app_free(a);
  app_free(b);
  app_free(small);
  app_free(few);
}

static void put_crc(uint8_t *snap, size_t len) {
  le_put_u32(snap + len - 4, wal_crc32c(0, snap, len - 4));
}

/* Past the checksum, restore must still check every length and every
 * cross-reference: every byte of a snapshot changed with the checksum
 * recomputed is either refused with the state unchanged or yields a state
 * that snapshots and restores again to the same hash (never a crash or an
 * out-of-bounds read: the sanitizer build watches). */
static void snapshots_with_a_good_checksum_and_bad_content_are_refused(void) {
  struct app *a = populated(16);
  size_t len;
  uint8_t *snap = snapshot_of(a, &len);
  uint8_t *bad = malloc(len);
  CHECK(bad != NULL);
  struct app *b = new_app(16, 1000, 0);
  W(b, 5, "ORDER.CREATE keep me 1");
  uint64_t h = app_state_hash(b);
  size_t refused = 0;
  const uint8_t deltas[] = {1, 0x80, 0xff};
  for (size_t i = 0; i + 4 < len; i++) {
    for (size_t k = 0; k < N(deltas); k++) {
      memcpy(bad, snap, len);
      bad[i] = (uint8_t)(bad[i] + deltas[k]);
      put_crc(bad, len);
      int rc = app_restore(b, bad, len);
      CHECK(rc == 0 || rc == SABHA_ECORRUPT);
      if (rc != 0) {
        CHECK(app_state_hash(b) == h);
        refused++;
        continue;
      }
      size_t len2;
      uint8_t *again_snap = snapshot_of(b, &len2);
      struct app *c = new_app(16, 1000, 0);
      CHECK(app_restore(c, again_snap, len2) == 0);
      CHECK(app_state_hash(c) == app_state_hash(b));
      free(again_snap);
      app_free(c);
      CHECK(app_restore(b, snap, len) == 0); /* back to a known state */
      app_free(b);
      b = new_app(16, 1000, 0);
      W(b, 5, "ORDER.CREATE keep me 1");
    }
  }
  CHECK(refused > len); /* most changes are caught by content checks */
  /* Specific lies: a seat booked under a PNR of another seat, two accounts
   * with one name, a negative balance. */
  struct app *s = new_app(16, 1000, 0);
  W(s, 1, "SEATS.ADD T D s1 s2");
  W(s, 1, "SEATS.BOOK r T D s1 p");
  size_t slen;
  uint8_t *ss = snapshot_of(s, &slen);
  /* seats section: magic 4 + version 1 + clock 8 + rules 1 (none
   * recorded) + ledger n 4 + dedup n 4, then u32 n_seats; the first seat:
   * 3 strs "T","D","s1" then u64 pnr. */
  size_t pnr_at = 4 + 1 + 8 + 1 + 4 + 4 + 4 + 2 + 2 + 3;
  CHECK(ss[pnr_at] == 1);
  ss[pnr_at] = 0; /* s1 free, yet PNR 1 live and naming it */
  put_crc(ss, slen);
  CHECK(app_restore(b, ss, slen) == SABHA_ECORRUPT);
  ss[pnr_at] = 1;
  ss[pnr_at + 8 + 2 + 2 + 3] = 1; /* s2 booked under PNR 1 too */
  put_crc(ss, slen);
  CHECK(app_restore(b, ss, slen) == SABHA_ECORRUPT);
  struct app *l = new_app(16, 1000, 0);
  W(l, 1, "LEDGER.OPEN aa 5");
  W(l, 1, "LEDGER.OPEN ab 5");
  size_t llen;
  uint8_t *ls = snapshot_of(l, &llen);
  size_t second_name = 4 + 1 + 8 + 1 + 4 + 3 + 16 + 1;
  CHECK(ls[second_name + 1] == 'b');
  ls[second_name + 1] = 'a';
  put_crc(ls, llen);
  CHECK(app_restore(b, ls, llen) == SABHA_ECORRUPT);
  ls[second_name + 1] = 'b';
  ls[4 + 1 + 8 + 1 + 4 + 3 + 7] = 0x80; /* aa's balance negative */
  put_crc(ls, llen);
  CHECK(app_restore(b, ls, llen) == SABHA_ECORRUPT);
  free(ls);
  free(ss);
  free(bad);
  free(snap);
  app_free(l);
  app_free(s);
  app_free(a);
  app_free(b);
}

/* ---- Out of memory ------------------------------------------------------ */

/* Each command of the populated scenario, failed at its Nth allocation for
 * every N, changes nothing; then it succeeds as without the failure. */
static void oom_at_every_allocation_leaves_the_state_unchanged(void) {
  static const char *const script[] = {
      "LEDGER.OPEN a 1000",         "LEDGER.OPEN b 50",
      "LEDGER.TRANSFER t1 a b 300", "LEDGER.TRANSFER t2 b a 9999",
      "SEATS.ADD T D s1 s2 s3",     "SEATS.ADD U D x1",
      "SEATS.BOOK r1 T D s2 p1",    "SEATS.ANY r2 T D p2",
      "LOCK.ACQUIRE L c1 1000",     "FENCED.SET k v L 1",
      "ORDER.CREATE o1 c 500",      "LEDGER.TRANSFER t3 a b 1",
      "LEDGER.TRANSFER t4 a b 1",   "SEATS.ANY r3 T D p3",
  };
  struct failing_alloc f = {0, 0};
  struct app_config cfg = app_config_default;
  cfg.dedup_max = 2;
  cfg.dedup_window_ms = 0; /* so that ids are evicted, not refused */
  cfg.objects_max = 100;
  cfg.alloc = failing_allocator(&f);
  struct app *a = NULL;
  CHECK(app_new(&a, &cfg) == 0);
  struct app *ref = new_app_window(2, 0, 100, 0);
  for (size_t i = 0; i < N(script); i++) {
    struct app_reply want = W(ref, 10 + i, script[i]);
    bool got_through = false;
    for (long fail_at = 1; !got_through && fail_at < 64; fail_at++) {
      uint64_t h = app_state_hash(a);
      f.calls = 0;
      f.fail_at = fail_at;
      struct app_reply r = W(a, 10 + i, script[i]);
      f.fail_at = 0;
      if (last_rc == SABHA_ENOMEM) {
        CHECK(app_state_hash(a) == h);
        continue;
      }
      CHECK(last_rc == 0 && same_reply(&r, &want));
      got_through = true;
    }
    CHECK(got_through);
    CHECK(app_state_hash(a) == app_state_hash(ref));
  }
  /* Restore under failing allocations leaves the state as it was. */
  size_t len;
  uint8_t *snap = snapshot_of(ref, &len);
  struct app *b = NULL;
  CHECK(app_new(&b, &cfg) == 0);
  W(b, 1, "ORDER.CREATE other c 1");
  uint64_t h = app_state_hash(b);
  bool restored = false;
  for (long fail_at = 1; !restored && fail_at < 200; fail_at++) {
    f.calls = 0;
    f.fail_at = fail_at;
    int rc = app_restore(b, snap, len);
    f.fail_at = 0;
    CHECK(rc == 0 || rc == SABHA_ENOMEM);
    if (rc == SABHA_ENOMEM)
      CHECK(app_state_hash(b) == h);
    restored = rc == 0;
  }
  CHECK(restored && app_state_hash(b) == app_state_hash(ref));
  free(snap);
  app_free(a);
  app_free(b);
  app_free(ref);
}

/* ---- Random commands: replicas agree, money is conserved ----------------- */

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void sum_balances(void *ctx, const struct app_arg *name, int64_t bal,
                         int64_t opened) {
  (void)name;
  int64_t *sums = ctx;
  sums[0] += bal;
  sums[1] += opened;
  if (bal < 0)
    sums[2]++;
}

static bool arg_is(struct app_arg x, struct app_arg y) {
  return x.len == y.len && (x.len == 0 || memcmp(x.ptr, y.ptr, x.len) == 0);
}

struct seat_check {
  const struct app *a;
  uint64_t booked;
  bool bad;
};

/* Every booked seat's PNR is live and names that very seat. */
static void check_seat(void *ctx, const struct app_arg *train,
                       const struct app_arg *date, const struct app_arg *seat,
                       uint64_t pnr) {
  struct seat_check *c = ctx;
  if (pnr == 0)
    return;
  c->booked++;
  struct app_arg t, d, s;
  bool cancelled;
  if (!app_seats_pnr(c->a, pnr, &t, &d, &s, &cancelled) || cancelled ||
      !arg_is(t, *train) || !arg_is(d, *date) || !arg_is(s, *seat))
    c->bad = true;
}

/* The retention window is 50 ms here, a few commands' worth of the clock
 * below: new ids are now refused, now admitted by evicting the oldest. */
static void replicas_agree_and_money_is_conserved(void) {
  struct app *a = new_app_window(8, 50, 500, 0);
  struct app *b = new_app_window(8, 50, 500, 0);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  W(a, 0, "SEATS.ADD T D s0 s1 s2 s3 s4 s5");
  W(b, 0, "SEATS.ADD T D s0 s1 s2 s3 s4 s5");
  int64_t opened = 0;
  uint32_t table_full = 0;
  for (int i = 0; i < 4000; i++) {
    char line[128];
    unsigned x = (unsigned)(rng(&seed) % 1000);
    unsigned k = (unsigned)(rng(&seed) % 8), m = (unsigned)(rng(&seed) % 8);
    switch (rng(&seed) % 8) {
    case 0:
      snprintf(line, sizeof line, "LEDGER.OPEN a%u %u", k, x);
      break;
    case 1:
    case 2:
      snprintf(line, sizeof line, "LEDGER.TRANSFER t%u a%u a%u %u",
               (unsigned)(rng(&seed) % 40), k, m, x + 1);
      break;
    case 3:
      snprintf(line, sizeof line, "SEATS.BOOK r%u T D s%u p", x % 40, k % 6);
      break;
    case 4:
      snprintf(line, sizeof line, "SEATS.ANY r%u T D p", x % 40);
      break;
    case 5:
      snprintf(line, sizeof line, "SEATS.CANCEL PNR%010u", x % 30 + 1);
      break;
    case 6:
      snprintf(line, sizeof line, "LOCK.ACQUIRE L%u c%u %u", k % 2, m, x + 1);
      break;
    default:
      snprintf(line, sizeof line, "FENCED.SET k%u v L%u %u", k, m % 2,
               x % 8 + 1);
      break;
    }
    uint64_t now = (uint64_t)i * 7 - (rng(&seed) % 50);
    struct app_reply ra = W(a, now, line);
    if (strncmp(line, "LEDGER.OPEN", 11) == 0 && is_ok(ra, false))
      opened += x;
    if (ra.code == APP_E_FULL)
      table_full++;
    int rc_a = last_rc;
    struct app_reply rb = W(b, now, line);
    CHECK(rc_a == last_rc && same_reply(&ra, &rb));
    if (i % 500 == 0) { /* b restarts from a snapshot of itself */
      size_t len;
      uint8_t *snap = snapshot_of(b, &len);
      app_free(b);
      b = new_app_window(8, 50, 500, 0);
      CHECK(app_restore(b, snap, len) == 0);
      free(snap);
    }
  }
  CHECK(app_state_hash(a) == app_state_hash(b));
  CHECK(table_full > 0); /* the window was reached, and replicas agreed */
  int64_t sums[3] = {0, 0, 0};
  app_ledger_foreach(a, sum_balances, sums);
  CHECK(sums[0] == opened && sums[1] == opened && sums[2] == 0);
  struct seat_check c = {a, 0, false};
  app_seats_foreach(a, check_seat, &c);
  CHECK(!c.bad);
  struct app_reply fr = Q(a, 0, "SEATS.FREE T D");
  CHECK(fr.kind == APP_REPLY_INT && (uint64_t)fr.integer + c.booked == 6);
  app_free(a);
  app_free(b);
}

/* ---- The retry table: its window and its fingerprints -------------------- */

/* One client's transfer, then a flood of new ids from another filling the
 * table: the flood cannot push the transfer out within the window, so its
 * retry is still answered, not applied again. */
static void a_flood_of_new_ids_cannot_evict_a_retry_within_the_window(void) {
  enum { N = 64, WINDOW_MS = 1000 };
  struct app *a = new_app_window(N, WINDOW_MS, 100, 0);
  W(a, 100, "LEDGER.OPEN a 1000");
  W(a, 100, "LEDGER.OPEN b 0");
  struct app_reply first = W(a, 100, "LEDGER.TRANSFER good a b 100");
  CHECK(is_ok(first, false));
  /* N - 1 junk ids, refused for an unknown account and recorded: full. */
  char line[96];
  for (int i = 0; i < N - 1; i++) {
    snprintf(line, sizeof line, "LEDGER.TRANSFER junk%d nobody b 1", i);
    CHECK(is_err(W(a, 200, line), APP_E_NO_SUCH, "ERR no such account"));
  }
  /* The next new id is refused; not recorded, it changes nothing. */
  uint64_t h = app_state_hash(a);
  CHECK(is_err(W(a, 200, "LEDGER.TRANSFER junk-more nobody b 1"), APP_E_FULL,
               "ERR retry table full: 64 ids recorded in the last 1000 ms "
               "(dedup-max, dedup-window-ms); try again later"));
  CHECK(app_state_hash(a) == h);
  CHECK(Q(a, 0, "LEDGER.TX junk-more").kind == APP_REPLY_NULL);
  /* A new legitimate transfer waits too: refused, nothing moved. */
  CHECK(is_err(W(a, 300, "LEDGER.TRANSFER next a b 1"), APP_E_FULL,
               "ERR retry table full"));
  CHECK(balance(a, "a") == 900 && balance(a, "b") == 100);
  /* Retries of ids in the table are answered from it, full or not. */
  build(400, "LEDGER.TRANSFER good a b 100");
  struct app_reply retry = again(a);
  CHECK(retry.duplicate && same_reply(&first, &retry));
  CHECK(balance(a, "a") == 900 && balance(a, "b") == 100);
  CHECK(W(a, 400, "LEDGER.TRANSFER junk7 nobody b 1").duplicate);
  /* The window over for the oldest id (recorded at 100): one new id may
   * take its place, and the next waits for the junk's window (from 200). */
  CHECK(is_ok(W(a, 100 + WINDOW_MS, "LEDGER.TRANSFER next a b 1"), false));
  CHECK(Q(a, 0, "LEDGER.TX good").kind == APP_REPLY_NULL); /* forgotten */
  CHECK(is_err(W(a, 199 + WINDOW_MS, "LEDGER.TRANSFER later a b 1"), APP_E_FULL,
               "ERR retry table full"));
  CHECK(is_ok(W(a, 200 + WINDOW_MS, "LEDGER.TRANSFER later a b 1"), false));
  CHECK(balance(a, "a") == 898 && balance(a, "b") == 102);
  /* Three refusals, counted for the host's operators (INFO, /metrics);
   * retries answered from the table are not refusals. */
  CHECK(app_retry_table_full(a) == 3);
  app_free(a);

  /* Seats keep their own table, under the same rule. */
  struct app *s = new_app_window(4, WINDOW_MS, 100, 0);
  W(s, 10, "SEATS.ADD T D s1 s2 s3 s4 s5 s6");
  struct app_reply pnr = W(s, 10, "SEATS.BOOK mine T D s1 p");
  CHECK(is_bulk(pnr, "PNR0000000001"));
  W(s, 10, "SEATS.ANY f1 T D x");
  W(s, 10, "SEATS.BOOK f2 T D s1 x"); /* refused: taken; recorded */
  W(s, 10, "SEATS.ANY f3 T D x");
  CHECK(is_err(W(s, 20, "SEATS.ANY f4 T D x"), APP_E_FULL,
               "ERR retry table full: 4 ids recorded in the last 1000 ms"));
  CHECK(is_int(Q(s, 0, "SEATS.FREE T D"), 3));
  struct app_reply again_pnr = W(s, 30, "SEATS.BOOK mine T D s1 p");
  CHECK(again_pnr.duplicate && same_reply(&pnr, &again_pnr));
  CHECK(is_int(Q(s, 0, "SEATS.FREE T D"), 3));
  CHECK(app_retry_table_full(s) == 1);
  /* A restore keeps the count: it is this machine's history, not state. */
  size_t n = app_snapshot_size(s);
  uint8_t *snap = malloc(n);
  CHECK(snap != NULL && app_snapshot(s, snap, n) == n);
  CHECK(app_restore(s, snap, n) == 0 && app_retry_table_full(s) == 1);
  free(snap);
  app_free(s);
}

/* The same flood with no window (dedup_window_ms 0): the oldest id is
 * evicted, and its retry applies a second time. That is the hole the window
 * closes; with 0 it stays open on purpose. */
static void with_no_window_a_flood_evicts_the_oldest_id(void) {
  enum { N = 64 };
  struct app *a = new_app_window(N, 0, 100, 0);
  W(a, 100, "LEDGER.OPEN a 1000");
  W(a, 100, "LEDGER.OPEN b 0");
  CHECK(is_ok(W(a, 100, "LEDGER.TRANSFER good a b 100"), false));
  char line[96];
  for (int i = 0; i < N; i++) {
    snprintf(line, sizeof line, "LEDGER.TRANSFER junk%d nobody b 1", i);
    CHECK(is_err(W(a, 200, line), APP_E_NO_SUCH, "ERR no such account"));
  }
  CHECK(is_ok(W(a, 300, "LEDGER.TRANSFER good a b 100"), false));
  CHECK(balance(a, "a") == 800);
  app_free(a);
}

/* A fingerprint is BLAKE2b-128 of the op and the length-prefixed arguments:
 * commands that differ anywhere, argument boundaries included, differ. */
static void the_fingerprint_is_blake2b_of_the_whole_command(void) {
  build(1, "LEDGER.TRANSFER tx ab c 5");
  struct app_decoded d;
  CHECK(app_decode(last_cmd, last_len, &d) == 0);
  struct app_fingerprint fp;
  app_fingerprint(&d, &fp);
  /* The op, then each argument as u16 length (little-endian) and bytes. */
  const uint8_t bytes[] = "\x02"
                          "\x02\x00"
                          "tx"
                          "\x02\x00"
                          "ab"
                          "\x01\x00"
                          "c"
                          "\x01\x00"
                          "5";
  CHECK(bytes[0] == APP_LEDGER_TRANSFER);
  uint8_t want[APP_FINGERPRINT_BYTES];
  CHECK(crypto_generichash(want, sizeof want, bytes, sizeof bytes - 1, NULL,
                           0) == 0);
  CHECK(memcmp(fp.b, want, sizeof want) == 0);

  struct app *a = new_app(16, 100, 0);
  W(a, 1, "LEDGER.OPEN ab 100");
  W(a, 1, "LEDGER.OPEN c 0");
  W(a, 1, "LEDGER.OPEN a 100");
  W(a, 1, "LEDGER.OPEN bc 0");
  CHECK(is_ok(W(a, 2, "LEDGER.TRANSFER tx ab c 5"), false));
  static const char *const others[] = {
      "LEDGER.TRANSFER tx a bc 5",  "LEDGER.TRANSFER tx ab c 50",
      "LEDGER.TRANSFER tx c ab 5",  "LEDGER.TRANSFER tx abc '' 5",
      "LEDGER.TRANSFER tx ab c 05",
  };
  for (size_t i = 0; i < N(others); i++) {
    struct app_reply r = W(a, 3, others[i]);
    CHECK(r.code == APP_E_ID_REUSED || r.code == APP_E_SYNTAX);
    CHECK(!r.duplicate);
  }
  CHECK(balance(a, "ab") == 95 && balance(a, "c") == 5 &&
        balance(a, "a") == 100 && balance(a, "bc") == 0);
  CHECK(W(a, 4, "LEDGER.TRANSFER tx ab c 5").duplicate);
  /* Seats: the same request id for another seat or passenger. */
  W(a, 5, "SEATS.ADD T D s1 s2");
  CHECK(is_bulk(W(a, 5, "SEATS.BOOK r T D s1 p"), "PNR0000000001"));
  CHECK(is_err(W(a, 5, "SEATS.BOOK r T D s2 p"), APP_E_ID_REUSED, "ERR id r"));
  CHECK(is_err(W(a, 5, "SEATS.BOOK r T D s1 q"), APP_E_ID_REUSED, "ERR id r"));
  CHECK(is_err(W(a, 5, "SEATS.ANY r T D p"), APP_E_ID_REUSED, "ERR id r"));
  CHECK(is_int(Q(a, 0, "SEATS.FREE T D"), 1));
  app_free(a);
}

/* ---- Snapshots of the retry table --------------------------------------- */

/* Hand-built snapshots are written with the machine's own little-endian
 * writer (app_internal.h); the layout is spelled out here. */
static void put_str(struct app_w *w, const char *text) {
  struct app_str str;
  app_str_set(&str, (struct app_arg){(const uint8_t *)text, strlen(text)});
  app_w_str(w, &str);
}
static void put_u16(struct app_w *w, uint16_t v) {
  uint8_t b[2];
  le_put_u16(b, v);
  app_w_bytes(w, b, 2);
}

/* The fingerprint machines wrote before version 2: FNV-1a 64 of the op and
 * length-prefixed arguments, then a 64-bit finalizer. Written out here from
 * that format, to check that restored entries are still recognised. */
static uint64_t fnv_fingerprint(const char *line) {
  build(0, line);
  struct app_decoded d;
  if (app_decode(last_cmd, last_len, &d) != 0)
    exit(2);
  uint64_t h = 0xcbf29ce484222325ull;
  uint8_t bytes[2 + APP_ARG_BYTES_MAX];
  for (size_t i = 0; i <= d.argc; i++) {
    size_t n = 0;
    if (i == 0) {
      bytes[n++] = (uint8_t)d.op;
    } else {
      le_put_u16(bytes, (uint16_t)d.argv[i - 1].len);
      memcpy(bytes + 2, d.argv[i - 1].ptr, d.argv[i - 1].len);
      n = 2 + d.argv[i - 1].len;
    }
    for (size_t k = 0; k < n; k++)
      h = (h ^ bytes[k]) * 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

/* A version-1 snapshot at clock 5000: accounts a (900) and b (100), the
 * ledger's table holding `old` (a -> b, 100, +OK) and, when `with_junk`,
 * junk0..junk(k-1) refused for an unknown account. */
static size_t v1_snapshot(uint8_t *out, size_t cap, int junk) {
  struct app_w w = {out, cap, 0, 0, false};
  app_w_bytes(&w, "SAP1", 4);
  app_w_u8(&w, 1);
  app_w_u64(&w, 5000);
  app_w_u32(&w, 2); /* accounts */
  put_str(&w, "a");
  app_w_u64(&w, 900);
  app_w_u64(&w, 1000);
  put_str(&w, "b");
  app_w_u64(&w, 100);
  app_w_u64(&w, 0);
  app_w_u32(&w, 1u + (uint32_t)junk); /* the ledger's dedup table */
  for (int i = -1; i < junk; i++) {
    char id[16], line[96];
    if (i < 0)
      snprintf(id, sizeof id, "old");
    else
      snprintf(id, sizeof id, "junk%d", i);
    snprintf(line, sizeof line, "LEDGER.TRANSFER %s %s b %s", id,
             i < 0 ? "a" : "nobody", i < 0 ? "100" : "1");
    put_str(&w, id);
    app_w_u64(&w, fnv_fingerprint(line));
    /* blob: 3 extras (from, to, amount) and the packed reply */
    const char *reply = i < 0 ? "OK" : "ERR no such account: nobody";
    uint32_t blob = (uint32_t)(1 + (i < 0 ? 2 + 2 + 4 : 7 + 2 + 2) + 12 +
                               strlen(reply) + 1);
    app_w_u32(&w, blob);
    app_w_u8(&w, 3);
    put_str(&w, i < 0 ? "a" : "nobody");
    put_str(&w, "b");
    put_str(&w, i < 0 ? "100" : "1");
    app_w_u8(&w, i < 0 ? APP_REPLY_OK : APP_REPLY_ERROR);
    app_w_u8(&w, i < 0 ? APP_DONE : APP_E_NO_SUCH);
    app_w_u64(&w, i < 0 ? 100 : 0);
    put_u16(&w, (uint16_t)strlen(reply));
    app_w_bytes(&w, reply, strlen(reply));
    app_w_u8(&w, 0); /* items */
  }
  app_w_u32(&w, 0); /* seats */
  app_w_u32(&w, 0); /* PNRs */
  app_w_u32(&w, 0); /* the seats' dedup table */
  app_w_u32(&w, 0); /* locks */
  app_w_u32(&w, 0); /* fenced keys */
  app_w_u32(&w, 0); /* orders */
  if (w.n > cap - 4)
    exit(2);
  app_w_u32(&w, wal_crc32c(0, out, w.n));
  return w.n;
}

/* Nodes upgrade with version-1 snapshots on disk: those restore, and their
 * ids still recognise their retries (by the old fingerprint) and refuse
 * other commands. They count as recorded at time 0, before any window: the
 * machines that wrote them kept none, so the ids go first in, first out,
 * as they went there, and the window holds from the ids recorded after. */
static void a_version_1_snapshot_restores_and_its_ids_still_answer(void) {
  uint8_t v1[1024];
  size_t len = v1_snapshot(v1, sizeof v1, 2);
  struct app *a = new_app_window(4, 1000, 100, 0);
  CHECK(app_restore(a, v1, len) == 0);
  CHECK(app_clock_ms(a) == 5000 && balance(a, "a") == 900);
  struct app_reply r = W(a, 5000, "LEDGER.TRANSFER old a b 100");
  CHECK(is_ok(r, true) && r.integer == 100);
  r = W(a, 5000, "LEDGER.TRANSFER junk1 nobody b 1");
  CHECK(r.duplicate && is_err(r, APP_E_NO_SUCH, "ERR no such account"));
  CHECK(is_err(W(a, 5000, "LEDGER.TRANSFER old a b 101"), APP_E_ID_REUSED,
               "ERR id old was used for a different command"));
  CHECK(balance(a, "a") == 900 && balance(a, "b") == 100);
  CHECK(is_ok(W(a, 5001, "LEDGER.TRANSFER new1 a b 1"), false)); /* full */
  /* Written back as version 3, the old entries keep their old fingerprints
   * (marked so) and their time. */
  size_t len2;
  uint8_t *v2 = snapshot_of(a, &len2);
  CHECK(v2[4] == 3);
  struct app *b = new_app_window(4, 1000, 100, 0);
  CHECK(app_restore(b, v2, len2) == 0);
  CHECK(app_state_hash(a) == app_state_hash(b));
  CHECK(W(b, 5001, "LEDGER.TRANSFER junk1 nobody b 1").duplicate);
  CHECK(is_err(W(b, 5001, "LEDGER.TRANSFER junk1 nobody b 2"), APP_E_ID_REUSED,
               "ERR id junk1"));
  /* The old ids make room first in, first out; then the new ones are
   * kept for the window. */
  CHECK(is_ok(W(a, 5001, "LEDGER.TRANSFER new2 a b 1"), false)); /* old */
  CHECK(is_ok(W(a, 5002, "LEDGER.TRANSFER new3 a b 1"), false)); /* junk0 */
  CHECK(W(a, 5002, "LEDGER.TRANSFER junk1 nobody b 1").duplicate);
  CHECK(is_ok(W(a, 5002, "LEDGER.TRANSFER new4 a b 1"), false)); /* junk1 */
  CHECK(is_err(W(a, 5999, "LEDGER.TRANSFER new5 a b 1"), APP_E_FULL,
               "ERR retry table full"));
  CHECK(W(a, 5999, "LEDGER.TRANSFER new1 a b 1").duplicate);
  CHECK(is_ok(W(a, 6001, "LEDGER.TRANSFER new5 a b 1"), false)); /* new1 */
  CHECK(balance(a, "a") == 895 && balance(a, "b") == 105);
  free(v2);
  app_free(a);
  app_free(b);
}

/* The log after a version-1 snapshot was applied by machines that kept no
 * window: a full table let each new id in, pushing out the oldest. A
 * replica that restores such a snapshot and applies that log (a node
 * upgraded with the snapshot on its disk replays the entries after it)
 * must apply it as they did, since a replica restored from their later
 * snapshot holds the outcome. (The snapshot's ids were taken as recorded
 * at its clock: each new id within a window of it was refused on a full
 * table, and replicas restored at different points parted ways.) */
static void a_log_after_a_version_1_snapshot_applies_as_its_writers_did(void) {
  uint8_t v1[1024];
  size_t len = v1_snapshot(v1, sizeof v1, 2); /* 3 ids: a full table */
  struct app *a = new_app_window(3, 1000, 100, 0);
  CHECK(app_restore(a, v1, len) == 0);
  CHECK(is_ok(W(a, 5500, "LEDGER.TRANSFER t1 a b 1"), false));
  CHECK(is_ok(W(a, 5600, "LEDGER.TRANSFER t2 a b 1"), false));
  CHECK(balance(a, "a") == 898 && balance(a, "b") == 102);
  /* As the writers' machines: "old" and "junk0" went, first in. */
  struct app_reply r = W(a, 5600, "LEDGER.TRANSFER junk1 nobody b 1");
  CHECK(r.duplicate);
  app_free(a);
}

/* A field of a snapshot rewritten: `bytes` (1, 4 or 8) at `at` set to v. */
struct lie {
  size_t at;
  uint64_t v;
  int bytes;
};

/* Whether b refuses each lie told in a copy of snap (checksum fixed), its
 * state unchanged. */
static bool lies_refused(struct app *b, const uint8_t *snap, size_t len,
                         const struct lie *lies, size_t n_lies) {
  uint64_t h = app_state_hash(b);
  uint8_t *bad = malloc(len);
  bool ok = bad != NULL;
  for (size_t i = 0; ok && i < n_lies; i++) {
    memcpy(bad, snap, len);
    if (lies[i].bytes == 1)
      bad[lies[i].at] = (uint8_t)lies[i].v;
    else if (lies[i].bytes == 4)
      le_put_u32(bad + lies[i].at, (uint32_t)lies[i].v);
    else
      le_put_u64(bad + lies[i].at, lies[i].v);
    put_crc(bad, len);
    ok = app_restore(b, bad, len) == SABHA_ECORRUPT && app_state_hash(b) == h;
    if (!ok)
      fprintf(stderr, "  lie %zu was not refused\n", i);
  }
  free(bad);
  return ok;
}

/* Finds the ledger's first dedup entry of a snapshot whose ledger holds
 * `accounts` accounts of one-byte names: the offset of its fingerprint
 * kind. */
static size_t first_entry_kind_at(const uint8_t *snap, uint32_t accounts) {
  size_t at = 4 + 1 + 8 + 1 + 4 + accounts * (2 + 8 + 8) + 4;
  return at + 1 + snap[at]; /* past the id */
}

static void corrupt_retry_table_fields_are_refused(void) {
  struct app *a = new_app(16, 100, 0);
  W(a, 10, "LEDGER.OPEN a 1000");
  W(a, 10, "LEDGER.OPEN b 0");
  W(a, 20, "LEDGER.TRANSFER t1 a b 1");
  W(a, 30, "LEDGER.TRANSFER t2 a b 1");
  W(a, 40, "LEDGER.OPEN c 0"); /* the clock at 40 */
  size_t len;
  uint8_t *snap = snapshot_of(a, &len);
  CHECK(snap[4] == 3);
  size_t kind_at = first_entry_kind_at(snap, 3);
  size_t at_ms = kind_at + 1 + APP_FINGERPRINT_BYTES;
  CHECK(snap[kind_at] == 2 && le_get_u64(snap + at_ms) == 20);
  size_t blob_bytes = le_get_u32(snap + at_ms + 8);
  size_t second_at_ms =
      at_ms + 8 + 4 + blob_bytes + 3 + 1 + APP_FINGERPRINT_BYTES;
  CHECK(le_get_u64(snap + second_at_ms) == 30);
  struct app *b = new_app(16, 100, 0);
  W(b, 5, "ORDER.CREATE keep me 1");
  const struct lie lies[] = {
      {kind_at, 0, 1},       /* no such kind */
      {kind_at, 3, 1},       /* nor this */
      {at_ms, 41, 8},        /* recorded after the snapshot's clock */
      {at_ms, 31, 8},        /* after the entry that follows it */
      {second_at_ms, 19, 8}, /* before the entry it follows */
      {4, 4, 1},             /* a version from the future */
      {4, 0, 1},             /* and one from before there were versions */
  };
  CHECK(lies_refused(b, snap, len, lies, N(lies)));
  uint8_t *bad = malloc(len);
  CHECK(bad != NULL);
  /* An FNV fingerprint (kind 1) is zero past its 8 bytes. */
  memcpy(bad, snap, len);
  bad[kind_at] = 1;
  put_crc(bad, len);
  CHECK(app_restore(b, bad, len) == SABHA_ECORRUPT);
  memset(bad + kind_at + 1 + 8, 0, APP_FINGERPRINT_BYTES - 8);
  put_crc(bad, len);
  CHECK(app_restore(b, bad, len) == 0); /* well formed: it restores */
  /* Equal times are fine: two ids recorded in one millisecond. */
  memcpy(bad, snap, len);
  le_put_u64(bad + at_ms, 30);
  put_crc(bad, len);
  CHECK(app_restore(b, bad, len) == 0);
  free(bad);
  free(snap);
  app_free(a);
  app_free(b);
}

/* The earliest expiry among held locks, found the slow way through
 * app_lock_view: what app_next_expiry_ms must answer. */
static uint64_t next_expiry_walked(const struct app *a, int n_locks) {
  uint64_t next = 0;
  for (int i = 0; i < n_locks; i++) {
    char name[16];
    int len = snprintf(name, sizeof name, "L%d", i);
    struct app_lock_view v;
    if (!app_lock_view(a, (const uint8_t *)name, (size_t)len, &v))
      return UINT64_MAX; /* every lock was made */
    if (v.owner.len > 0 && app_clock_ms(a) < v.expires_ms &&
        (next == 0 || v.expires_ms < next))
      next = v.expires_ms;
  }
  return next;
}

/* A host asks for the next lock expiry at every tick (sabhad: every 50 ms
 * on the leader), so the answer must not cost a walk of every lock ever
 * made: asking visits nothing, and grants, renewals, releases and a
 * passing clock visit a few heap entries each (log2 of the locks). It
 * stays the earliest expiry among held locks, and a restored machine
 * answers the same. (The machine walked all its locks for each question:
 * 1 Mi locks held a node's loop for a third of every second.) */
static void the_next_lock_expiry_is_found_without_walking_every_lock(void) {
  enum { LOCKS = 4096, ROUNDS = 64, ASKS = 1000, LOG2_LOCKS = 12 };
  struct app *a = new_app(16, 1u << 20, 0);
  char line[96];
  for (int i = 0; i < LOCKS; i++) {
    snprintf(line, sizeof line, "LOCK.ACQUIRE L%d o %d", i,
             1000 + (i * 7919) % 100000);
    CHECK(is_int(W(a, 1000, line), 1));
  }
  uint64_t writes = LOCKS, now = 1000;
  for (int round = 0; round < ROUNDS; round++) {
    now += 1500;
    for (int i = round; i < LOCKS; i += 97, writes++) {
      struct app_lock_view v;
      snprintf(line, sizeof line, "L%d", i);
      CHECK(app_lock_view(a, (const uint8_t *)line, strlen(line), &v));
      bool held = v.owner.len > 0 && now < v.expires_ms;
      if (i % 3 == 0 && held)
        snprintf(line, sizeof line, "LOCK.RELEASE L%d o %" PRIu64, i, v.token);
      else if (i % 3 == 1 && held)
        snprintf(line, sizeof line, "LOCK.RENEW L%d o %" PRIu64 " %d", i,
                 v.token, 10 + (i * 31 + round) % 5000);
      else
        snprintf(line, sizeof line, "LOCK.ACQUIRE L%d o %d", i,
                 10 + (i * 17 + round) % 90000);
      struct app_reply r = W(a, now, line);
      CHECK(last_rc == 0 && r.kind != APP_REPLY_ERROR);
    }
    app_clock_advance(a, now + 700);
    writes++;
    CHECK(app_next_expiry_ms(a) == next_expiry_walked(a, LOCKS));
    uint64_t before = app_visits(a), next = app_next_expiry_ms(a);
    for (int k = 0; k < ASKS; k++)
      CHECK(app_next_expiry_ms(a) == next);
    CHECK(app_visits(a) == before);
  }
  CHECK(app_next_expiry_ms(a) != 0);
  /* Each change moves one entry up or down: at most 2 log2(n) steps. */
  CHECK(app_visits(a) <= writes * 2 * (LOG2_LOCKS + 1));
  size_t size = app_snapshot_size(a);
  uint8_t *snap = malloc(size);
  CHECK(snap != NULL && app_snapshot(a, snap, size) == size);
  struct app *b = new_app(16, 1u << 20, 0);
  CHECK(app_restore(b, snap, size) == 0);
  CHECK(app_next_expiry_ms(b) == app_next_expiry_ms(a));
  app_clock_advance(a, now + 200000);
  app_clock_advance(b, now + 200000);
  CHECK(app_next_expiry_ms(a) == 0 && app_next_expiry_ms(b) == 0);
  free(snap);
  app_free(b);
  app_free(a);
}

/* SEATS.ANY takes a train's first free seat in the order added, and the
 * machine finds it without passing over the booked ones: a client that
 * cancels an early seat and books again with ANY twice (the early seat,
 * then the next free one, at the far end) makes each ANY visit a few heap
 * entries, not the train. Random bookings by name, cancellations and ANYs
 * are checked against a model of the seats. (The machine kept a hint, no
 * free seat before it, that a cancellation moved back: then each such ANY
 * walked every seat of the train, on every replica.) */
static void any_seat_is_found_without_walking_the_train(void) {
  enum { ADDS = 100, PER_ADD = 30, SEATS = ADDS * PER_ADD, ROUNDS = 200 };
  enum { LOG2_SEATS = 12, OPS = 4000 };
  struct app *a = new_app(1u << 16, 1u << 20, 0);
  static char line[1024];
  static uint64_t pnr_of[SEATS]; /* 0: free */
  for (int k = 0; k < ADDS; k++) {
    int len = snprintf(line, sizeof line, "SEATS.ADD T D");
    for (int i = 0; i < PER_ADD; i++)
      len += snprintf(line + len, sizeof line - (size_t)len, " S%d",
                      k * PER_ADD + i);
    CHECK(is_int(W(a, 1, line), PER_ADD));
  }
  uint64_t id = 0;
  char want[16];
  for (int i = 0; i < SEATS; i++) {
    snprintf(line, sizeof line, "SEATS.ANY r%" PRIu64 " T D p", ++id);
    struct app_reply r = W(a, 1, line);
    snprintf(want, sizeof want, "S%d", i);
    CHECK(item_is(r, 1, want, 0));
    pnr_of[i] = (uint64_t)r.integer;
  }
  /* Free the last seat; then again and again: cancel the first, ANY
   * takes it back, ANY takes the last, cancel the last. */
  snprintf(line, sizeof line, "SEATS.CANCEL PNR%010" PRIu64, pnr_of[SEATS - 1]);
  CHECK(is_ok(W(a, 1, line), false));
  pnr_of[SEATS - 1] = 0;
  uint64_t before = app_visits(a);
  for (int round = 0; round < ROUNDS; round++) {
    snprintf(line, sizeof line, "SEATS.CANCEL PNR%010" PRIu64, pnr_of[0]);
    CHECK(is_ok(W(a, 1, line), false));
    const int order[2] = {0, SEATS - 1};
    for (int k = 0; k < 2; k++) {
      snprintf(line, sizeof line, "SEATS.ANY r%" PRIu64 " T D p", ++id);
      struct app_reply r = W(a, 1, line);
      snprintf(want, sizeof want, "S%d", order[k]);
      CHECK(item_is(r, 1, want, 0));
      pnr_of[order[k]] = (uint64_t)r.integer;
    }
    snprintf(line, sizeof line, "SEATS.CANCEL PNR%010" PRIu64,
             pnr_of[SEATS - 1]);
    CHECK(is_ok(W(a, 1, line), false));
    pnr_of[SEATS - 1] = 0;
  }
  CHECK(app_visits(a) - before <= (uint64_t)ROUNDS * 4 * 2 * LOG2_SEATS);
  /* Any mix, against the model: ANY is the first free seat. */
  uint32_t x = 12345;
  for (int op = 0; op < OPS; op++) {
    x = x * 1103515245u + 12345u;
    int seat = (int)((x >> 8) % SEATS);
    int first = 0;
    while (first < SEATS && pnr_of[first] != 0)
      first++;
    if (op % 3 == 0 && pnr_of[seat] != 0) {
      snprintf(line, sizeof line, "SEATS.CANCEL PNR%010" PRIu64, pnr_of[seat]);
      CHECK(is_ok(W(a, 1, line), false));
      pnr_of[seat] = 0;
    } else if (op % 3 == 1 && pnr_of[seat] == 0) {
      snprintf(line, sizeof line, "SEATS.BOOK r%" PRIu64 " T D S%d p", ++id,
               seat);
      struct app_reply r = W(a, 1, line);
      CHECK(last_rc == 0 && r.kind == APP_REPLY_BULK);
      pnr_of[seat] = (uint64_t)r.integer;
    } else if (first < SEATS) {
      snprintf(line, sizeof line, "SEATS.ANY r%" PRIu64 " T D p", ++id);
      struct app_reply r = W(a, 1, line);
      snprintf(want, sizeof want, "S%d", first);
      CHECK(item_is(r, 1, want, 0));
      pnr_of[first] = (uint64_t)r.integer;
    }
  }
  app_free(a);
}

struct seat_tally {
  uint64_t seats, booked;
};

static void tally_seat(void *ctx, const struct app_arg *train,
                       const struct app_arg *date, const struct app_arg *seat,
                       uint64_t pnr) {
  struct seat_tally *t = ctx;
  (void)train, (void)date, (void)seat;
  t->seats++;
  t->booked += pnr != 0;
}

static void walk_seats(void *ctx) {
  struct seat_tally t = {0, 0};
  app_seats_foreach(ctx, tally_seat, &t);
}

struct seat_count_call {
  const struct app *a;
  uint64_t seats, booked;
};

static void count_seats(void *ctx) {
  struct seat_count_call *c = ctx;
  app_seats_count(c->a, &c->seats, &c->booked);
}

/* INFO's seat counts (app_seats_count) are kept as seats are added,
 * booked and cancelled, not counted by a walk: with every seat record
 * fenced off they are read all the same, and right, while a walk of the
 * seats faults (the fence is seen to catch one). (INFO walked every seat:
 * 46 ms of the node's loop per INFO with 2 Mi seats.) */
static void seat_counts_are_kept_not_walked(void) {
  enum { TRAINS = 12, ADDS = 100, PER_ADD = 30 };
  struct fenced_alloc f = {NULL, 0};
  struct app_config cfg = app_config_default;
  cfg.dedup_max = 1u << 12;
  cfg.alloc = fenced_allocator(&f);
  struct app *a = NULL;
  CHECK(app_new(&a, &cfg) == 0);
  static char line[1024];
  uint64_t id = 0, pnrs[TRAINS] = {0};
  for (int t = 0; t < TRAINS; t++) {
    for (int k = 0; k < ADDS; k++) {
      int len = snprintf(line, sizeof line, "SEATS.ADD T%d D", t);
      for (int i = 0; i < PER_ADD; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, " S%d",
                        k * PER_ADD + i);
      CHECK(is_int(W(a, 1, line), PER_ADD));
    }
    for (int b = 0; b <= t; b++) {
      snprintf(line, sizeof line, "SEATS.ANY r%" PRIu64 " T%d D p", ++id, t);
      struct app_reply r = W(a, 1, line);
      CHECK(last_rc == 0 && r.kind == APP_REPLY_ARRAY);
      pnrs[t] = (uint64_t)r.integer;
    }
    snprintf(line, sizeof line, "SEATS.CANCEL PNR%010" PRIu64, pnrs[t]);
    CHECK(is_ok(W(a, 1, line), false));
  }
  struct seat_tally want = {0, 0};
  app_seats_foreach(a, tally_seat, &want);
  CHECK(want.seats == TRAINS * ADDS * PER_ADD &&
        want.booked == TRAINS * (TRAINS + 1) / 2 - TRAINS);
  CHECK(fenced_alloc_fence(&f, 0, true)); /* the seat records */
  struct seat_count_call count = {a, 0, 0};
  CHECK(!fenced_alloc_faults(count_seats, &count));
  CHECK(fenced_alloc_faults(walk_seats, a));
  CHECK(fenced_alloc_fence(&f, 0, false));
  CHECK(count.seats == want.seats && count.booked == want.booked);
  app_free(a);
  CHECK(f.block == NULL);
}

/* ---- The retry rules in the log ---------------------------------------- */

/* What a node's machine answers about the ledger: balances and each txid's
 * saved outcome, as text. */
static void ledger_said(const struct app *a, int n_tx, char *out, size_t cap) {
  size_t used = (size_t)snprintf(out, cap, "a=%" PRId64 " b=%" PRId64,
                                 balance(a, "a"), balance(a, "b"));
  for (int i = 0; i < n_tx && used < cap; i++) {
    char line[64];
    snprintf(line, sizeof line, "LEDGER.TX t%d", i);
    struct app_reply r = Q(a, 0, line);
    used += (size_t)snprintf(out + used, cap - used, " t%d:%d/%u", i, r.kind,
                             r.n_items);
  }
}

/* The node of `n` restarted on its disk with `cfg` and elected, so that it
 * replays what it had applied (`applied`): a node learns how far its log
 * is committed from its term's first entry. */
static int restart_node(struct rt_node *n, const struct rt_config *cfg,
                        uint64_t applied) {
  if (rt_close(n->rt) != 0)
    return -1;
  for (int i = 0; i < n->h.n_closed; i++)
    rt_stream_free(n->h.closed[i]);
  n->h.n_closed = 0;
  n->rt = NULL;
  if (rt_node_start(n, cfg) != 0 || rt_node_elect(n) != 0) {
    fprintf(stderr, "  %s did not start and lead\n", cfg->protocol);
    return -1;
  }
  rt_node_settle(n);
  if (rt_applied_index(n->rt) < applied)
    fprintf(stderr, "  %s replayed to %" PRIu64 " of %" PRIu64 "\n",
            cfg->protocol, rt_applied_index(n->rt), applied);
  return rt_applied_index(n->rt) >= applied ? 0 : -1;
}

/* Applies a rules entry stamped now_ms. */
static struct app_reply rules(struct app *a, uint64_t now_ms,
                              uint32_t dedup_max, uint32_t window_ms) {
  struct app_hdr hdr = {now_ms, 9};
  struct app_rules r = {dedup_max, window_ms};
  last_len = app_encode_rules(last_cmd, sizeof last_cmd, &hdr, &r);
  struct app_reply out;
  last_rc = app_apply(a, last_cmd, last_len, &out);
  return out;
}

/* A rules entry switches the rules at its place in the log: a smaller
 * dedup_max forgets the oldest ids first, a window counts from then on;
 * the ids kept still answer their retries. */
static void a_rules_entry_switches_the_rules_at_its_place_in_the_log(void) {
  struct app *a = new_app_window(8, 1000, 100, 0);
  struct app_rules r;
  CHECK(!app_rules_in_force(a, &r)); /* the config's until an entry */
  CHECK(r.dedup_max == 8 && r.dedup_window_ms == 1000);
  W(a, 10, "LEDGER.OPEN a 1000");
  W(a, 10, "LEDGER.OPEN b 0");
  char line[96];
  for (int i = 0; i < 6; i++) {
    snprintf(line, sizeof line, "LEDGER.TRANSFER t%d a b 1", i);
    CHECK(is_ok(W(a, 20 + (uint64_t)i, line), false));
  }
  CHECK(is_ok(rules(a, 30, 3, 50), false));
  CHECK(app_rules_in_force(a, &r));
  CHECK(r.dedup_max == 3 && r.dedup_window_ms == 50);
  CHECK(app_clock_ms(a) == 30); /* its stamp moves the clock */
  /* t0..t2 went, first in; t3..t5 stay and answer as before. */
  CHECK(Q(a, 0, "LEDGER.TX t2").kind == APP_REPLY_NULL);
  CHECK(W(a, 31, "LEDGER.TRANSFER t3 a b 1").duplicate);
  /* Full of ids younger than the new window (recorded 23..25, window 50). */
  CHECK(is_err(W(a, 72, "LEDGER.TRANSFER n1 a b 1"), APP_E_FULL,
               "ERR retry table full: 3 ids recorded in the last 50 ms"));
  CHECK(is_ok(W(a, 73, "LEDGER.TRANSFER n1 a b 1"), false));
  CHECK(balance(a, "a") == 993);
  /* A larger bound lets more in at once; seats follow the same rules. */
  CHECK(is_ok(rules(a, 80, 5, 1000), false));
  CHECK(is_ok(W(a, 80, "LEDGER.TRANSFER n2 a b 1"), false));
  CHECK(is_ok(W(a, 80, "LEDGER.TRANSFER n3 a b 1"), false));
  CHECK(is_err(W(a, 80, "LEDGER.TRANSFER n4 a b 1"), APP_E_FULL,
               "ERR retry table full: 5 ids"));
  /* The same entries in the same order: the same state anywhere. */
  struct app *b = new_app_window(100, 0, 100, 0);
  W(b, 10, "LEDGER.OPEN a 1000");
  W(b, 10, "LEDGER.OPEN b 0");
  for (int i = 0; i < 6; i++) {
    snprintf(line, sizeof line, "LEDGER.TRANSFER t%d a b 1", i);
    W(b, 20 + (uint64_t)i, line);
  }
  rules(b, 30, 3, 50);
  W(b, 31, "LEDGER.TRANSFER t3 a b 1");
  W(b, 72, "LEDGER.TRANSFER n1 a b 1");
  W(b, 73, "LEDGER.TRANSFER n1 a b 1");
  rules(b, 80, 5, 1000);
  W(b, 80, "LEDGER.TRANSFER n2 a b 1");
  W(b, 80, "LEDGER.TRANSFER n3 a b 1");
  W(b, 80, "LEDGER.TRANSFER n4 a b 1");
  CHECK(app_state_hash(a) == app_state_hash(b));
  app_free(a);
  app_free(b);
}

/* No client can send a rules entry: it has no row in the command table, so
 * no RESP name (sabhad's own or a forwarded one) builds it, and app_decode
 * refuses it, so nothing that reads client commands takes it for one. */
static void a_rules_entry_is_no_client_command(void) {
  CHECK(app_command_of(APP_OP_RULES) == NULL);
  size_t n;
  const struct app_command *t = app_commands(&n);
  for (size_t i = 0; i < n; i++)
    CHECK(t[i].op != APP_OP_RULES);
  struct app_hdr hdr = {1, 2};
  struct app_rules r = {10, 10};
  uint8_t cmd[APP_RULES_CMD_BYTES];
  CHECK(app_encode_rules(cmd, sizeof cmd, &hdr, &r) == sizeof cmd);
  CHECK(app_is_command(cmd, sizeof cmd));
  struct app_decoded d;
  CHECK(app_decode(cmd, sizeof cmd, &d) == SABHA_ECORRUPT);
  struct app_arg none[1];
  CHECK(app_encode(cmd, sizeof cmd, &hdr, APP_OP_RULES, none, 0) == 0);
}

/* Rules out of bounds, and rules entries in any other shape, are refused
 * by every replica alike: the same reply, nothing changed, clock included. */
static void a_rules_entry_out_of_bounds_is_refused_alike(void) {
  struct app *a = new_app_window(8, 1000, 100, 0);
  struct app *b = new_app_window(64, 0, 100, 0); /* other settings */
  W(a, 10, "LEDGER.OPEN a 1000");
  W(b, 10, "LEDGER.OPEN a 1000");
  uint64_t ha = app_state_hash(a), hb = app_state_hash(b);
  const struct app_rules bad[] = {
      {0, 0},                             /* no id kept */
      {APP_DEDUP_LIMIT + 1, 0},           /* too many */
      {8, APP_DEDUP_WINDOW_MS_LIMIT + 1}, /* too long */
      {UINT32_MAX, UINT32_MAX},
  };
  for (size_t i = 0; i < N(bad); i++) {
    struct app_reply ra =
        rules(a, 50, bad[i].dedup_max, bad[i].dedup_window_ms);
    CHECK(last_rc == SABHA_ECORRUPT);
    struct app_reply rb =
        rules(b, 50, bad[i].dedup_max, bad[i].dedup_window_ms);
    CHECK(last_rc == SABHA_ECORRUPT);
    CHECK(ra.kind == APP_REPLY_ERROR && ra.code == APP_E_SYNTAX);
    CHECK(same_reply(&ra, &rb));
    CHECK(strncmp(ra.text, "ERR retry rules out of bounds", 29) == 0);
    CHECK(app_state_hash(a) == ha && app_state_hash(b) == hb);
  }
  /* The bounds themselves are rules. */
  CHECK(is_ok(rules(a, 50, APP_DEDUP_LIMIT, APP_DEDUP_WINDOW_MS_LIMIT), false));
  CHECK(is_ok(rules(a, 50, 1, 0), false));
  ha = app_state_hash(a);
  /* Malformed: every length, argument count and argument size but the
   * one the encoder writes. */
  uint8_t cmd[APP_RULES_CMD_BYTES + 1];
  struct app_hdr hdr = {60, 1};
  struct app_rules good = {5, 5};
  app_encode_rules(cmd, sizeof cmd, &hdr, &good);
  for (size_t len = 0; len <= sizeof cmd; len++) {
    if (len == APP_RULES_CMD_BYTES)
      continue;
    struct app_reply r;
    CHECK(app_apply(a, cmd, len, &r) == SABHA_ECORRUPT);
    CHECK(r.kind == APP_REPLY_ERROR);
  }
  const size_t pokes[] = {1, 3, APP_CMD_HEADER_BYTES, APP_CMD_HEADER_BYTES + 6};
  for (size_t i = 0; i < N(pokes); i++) {
    uint8_t copy[APP_RULES_CMD_BYTES];
    memcpy(copy, cmd, sizeof copy);
    copy[pokes[i]]++;
    struct app_reply r;
    CHECK(app_apply(a, copy, sizeof copy, &r) == SABHA_ECORRUPT);
  }
  CHECK(app_state_hash(a) == ha);
  app_free(a);
  app_free(b);
}

/* The rules travel in the snapshot: restored under any settings, the
 * machine keeps the recorded rules, ids and all, even more ids than its own
 * dedup_max. A snapshot that recorded none (version 2, or none applied
 * yet) takes the restoring machine's settings, and a table larger than
 * they allow is refused as before. */
static void snapshots_keep_the_rules_in_force(void) {
  struct app *a = new_app_window(4, 1000, 100, 0);
  CHECK(is_ok(rules(a, 5, 16, 0), false));
  W(a, 10, "LEDGER.OPEN a 1000");
  W(a, 10, "LEDGER.OPEN b 0");
  char line[96];
  for (int i = 0; i < 10; i++) {
    snprintf(line, sizeof line, "LEDGER.TRANSFER t%d a b 1", i);
    W(a, 20, line);
  }
  size_t len;
  uint8_t *snap = snapshot_of(a, &len);
  CHECK(snap[4] == 3);
  struct app *b = new_app_window(2, 60000, 100, 0);
  CHECK(app_restore(b, snap, len) == 0);
  struct app_rules r;
  CHECK(app_rules_in_force(b, &r) && r.dedup_max == 16 &&
        r.dedup_window_ms == 0);
  CHECK(app_state_hash(a) == app_state_hash(b));
  CHECK(W(b, 30, "LEDGER.TRANSFER t0 a b 1").duplicate);
  /* Out-of-bounds rules in a snapshot are damage. */
  size_t rules_at = 4 + 1 + 8;
  CHECK(snap[rules_at] == 1 && le_get_u32(snap + rules_at + 1) == 16);
  const struct lie lies[] = {
      {rules_at, 2, 1},     /* no such flag */
      {rules_at + 1, 0, 4}, /* dedup_max 0 */
      {rules_at + 1, 9, 4}, /* below its ids */
      {rules_at + 5, APP_DEDUP_WINDOW_MS_LIMIT + 1, 4},
  };
  CHECK(lies_refused(b, snap, len, lies, N(lies)));
  free(snap);
  /* No rules recorded: the restoring machine's settings, whatever rules
   * it had in force, and today's bound on the table. */
  struct app *c = new_app_window(16, 0, 100, 0);
  W(c, 10, "LEDGER.OPEN a 1000");
  W(c, 10, "LEDGER.OPEN b 0");
  for (int i = 0; i < 10; i++) {
    snprintf(line, sizeof line, "LEDGER.TRANSFER t%d a b 1", i);
    W(c, 20, line);
  }
  snap = snapshot_of(c, &len);
  CHECK(snap[4 + 1 + 8] == 0);
  struct app *d = new_app_window(12, 500, 100, 0);
  CHECK(is_ok(rules(d, 1, 100, 100), false));
  CHECK(app_restore(d, snap, len) == 0);
  CHECK(!app_rules_in_force(d, &r) && r.dedup_max == 12 &&
        r.dedup_window_ms == 500);
  struct app *e = new_app_window(9, 0, 100, 0);
  CHECK(app_restore(e, snap, len) == SABHA_ECORRUPT);
  free(snap);
  app_free(a);
  app_free(b);
  app_free(c);
  app_free(d);
  app_free(e);
}

/* A whole cluster restarted with other retry settings replays its log tail
 * (the entries after its snapshot) under the rules that were in force when
 * they first applied: a transfer refused "retry table full" stays refused,
 * and nothing acknowledged changes. The new settings take effect after,
 * through the rules entry their leader proposes. */
static void replay_under_other_settings(const char *protocol) {
  enum { N_TX = 8 };
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  rt_node_config_alone(&n, &cfg);
  snprintf(cfg.protocol, sizeof cfg.protocol, "%s", protocol);
  cfg.dedup_max = 4;
  cfg.dedup_window_ms = 60000;
  CHECK(rt_node_start(&n, &cfg) == 0);
  CHECK(rt_node_elect(&n) == 0);
  rt_node_settle(&n);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  char in[2048];
  size_t used = (size_t)snprintf(in, sizeof in,
                                 "LEDGER.OPEN a 1000\r\nLEDGER.OPEN b 0\r\n");
  for (int i = 0; i < N_TX; i++)
    used += (size_t)snprintf(in + used, sizeof in - used,
                             "LEDGER.TRANSFER t%d a b 10\r\n", i);
  rt_stream_input(c, in, used);
  rt_node_settle(&n);
  char said[4096];
  snprintf(said, sizeof said, "%s", rt_stream_said(c));
  /* Four ids fill the table for a minute: the rest were refused. */
  CHECK(strstr(said, "retry table full") != NULL);
  char first[1024];
  ledger_said(rt_app(n.rt), N_TX, first, sizeof first);
  CHECK(balance(rt_app(n.rt), "a") == 960);
  uint64_t applied = rt_applied_index(n.rt);

  /* Every id kept, none for long: under these, all eight would apply. */
  cfg.dedup_max = 64;
  cfg.dedup_window_ms = 0;
  CHECK(restart_node(&n, &cfg, applied) == 0);
  char replayed[1024];
  ledger_said(rt_app(n.rt), N_TX, replayed, sizeof replayed);
  if (strcmp(first, replayed) != 0)
    fprintf(stderr, "  first:    %s\n  replayed: %s\n", first, replayed);
  CHECK(strcmp(first, replayed) == 0);
  /* Leading again, the node put its settings in the log after it. */
  struct app_rules rules;
  CHECK(app_rules_in_force(rt_app(n.rt), &rules));
  CHECK(rules.dedup_max == 64 && rules.dedup_window_ms == 0);
  /* Restarted with the same settings, it has nothing to propose. */
  applied = rt_applied_index(n.rt);
  uint64_t hash = app_state_hash(rt_app(n.rt));
  CHECK(restart_node(&n, &cfg, applied) == 0);
  CHECK(app_state_hash(rt_app(n.rt)) == hash);
  rt_node_close(&n);
}

/* Both engines go through the same runtime code. */
static void a_log_replayed_under_other_settings_gives_the_same_replies(void) {
  replay_under_other_settings("raft");
  replay_under_other_settings("multipaxos");
}

static const struct test tests[] = {
    TEST(command_table_follows_the_enum_and_finds_any_case),
    TEST(codec_round_trips_and_stamps_in_place),
    TEST(malformed_commands_are_refused_and_change_nothing),
    TEST(wrong_arity_is_an_error_naming_the_command),
    TEST(ledger_moves_money_without_making_or_losing_any),
    TEST(a_retried_transfer_is_answered_once),
    TEST(without_dedup_a_retried_transfer_moves_money_twice),
    TEST(a_dedup_bound_of_two_forgets_the_oldest_id),
    TEST(no_seat_is_sold_twice_and_pnrs_count_up),
    TEST(retried_bookings_are_answered_once),
    TEST(any_seat_is_found_without_walking_the_train),
    TEST(seat_counts_are_kept_not_walked),
    TEST(locks_expire_by_the_clock_in_the_log),
    TEST(the_next_lock_expiry_is_found_without_walking_every_lock),
    TEST(the_clock_never_runs_backwards),
    TEST(fenced_writes_refuse_a_holder_whose_lease_was_regranted),
    TEST(orders_move_one_step_at_a_time),
    TEST(the_objects_bound_refuses_new_objects),
    TEST(snapshot_restores_the_same_state_and_replies),
    TEST(corrupt_snapshots_are_refused_with_the_state_unchanged),
    TEST(snapshots_with_a_good_checksum_and_bad_content_are_refused),
    TEST(oom_at_every_allocation_leaves_the_state_unchanged),
    TEST(replicas_agree_and_money_is_conserved),
    TEST(a_flood_of_new_ids_cannot_evict_a_retry_within_the_window),
    TEST(with_no_window_a_flood_evicts_the_oldest_id),
    TEST(the_fingerprint_is_blake2b_of_the_whole_command),
    TEST(a_version_1_snapshot_restores_and_its_ids_still_answer),
    TEST(a_log_after_a_version_1_snapshot_applies_as_its_writers_did),
    TEST(corrupt_retry_table_fields_are_refused),
    TEST(a_rules_entry_switches_the_rules_at_its_place_in_the_log),
    TEST(a_rules_entry_is_no_client_command),
    TEST(a_rules_entry_out_of_bounds_is_refused_alike),
    TEST(snapshots_keep_the_rules_in_force),
    TEST(a_log_replayed_under_other_settings_gives_the_same_replies),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
