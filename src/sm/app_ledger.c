/* The payments ledger: accounts holding paise, and transfers between them
 * that are applied exactly once (UPI's promise: money is never created or
 * lost, no balance goes below zero, and a payment retried after a timeout
 * is not paid twice).
 *
 * Money is created only by LEDGER.OPEN's initial amount; a transfer moves
 * it, so the sum of balances (kept as `total`) changes only when an account
 * is opened, and refusing an open whose amount would push the sum past
 * INT64_MAX means no balance can ever overflow. Every transfer outcome,
 * committed or refused for funds or an unknown account, is recorded under its
 * txid in the ledger's dedup table: a retry gets the same answer even if the
 * balances have changed since, and LEDGER.TX can tell a client that lost its
 * reply what happened. Errors that depend on the command alone (a bad
 * amount, a transfer to itself) are not recorded: a retry gets them anyway;
 * neither is the refusal of a full retry table, which says "not now": the
 * same txid sent later is a new transfer. */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "sabha/error.h"
#include "sm/app_internal.h"

static struct app_arg account_key(const void *ctx, uint32_t pos) {
  const struct app_ledger *l = ctx;
  assert(pos < l->n);
  return app_str_arg(&l->v[pos].name);
}

static struct app_account *find_account(const struct app_ledger *l,
                                        struct app_arg name) {
  uint32_t pos = app_map_find(&l->by_name, name, account_key, l);
  return pos == APP_MAP_NONE ? NULL : &l->v[pos];
}

/* Takes the memory one more account needs. */
static int reserve_account(struct app *a) {
  struct app_ledger *l = &a->ledger;
  int rc = app_vec_reserve(&a->cfg, (void **)&l->v, &l->cap, l->n + 1ull,
                           sizeof *l->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &l->by_name, l->n + 1ull);
  return rc;
}

static int ledger_open(struct app *a, const struct app_decoded *d,
                       struct app_reply *out) {
  struct app_ledger *l = &a->ledger;
  struct app_arg name = d->argv[0];
  char text[APP_PRINTABLE_BYTES];
  int64_t initial;
  enum app_code code = app_parse_i64(d->argv[1], &initial);
  if (code != APP_DONE) {
    app_reply_bad_number(out, code, "initial_paise", d->argv[1]);
    return 0;
  }
  if (!app_need_name(out, "account name", name))
    return 0;
  const struct app_account *acc = find_account(l, name);
  if (acc != NULL) {
    if (acc->opened_with == initial)
      app_reply_ok(out, true);
    else
      app_reply_error(out, APP_E_EXISTS,
                      "ERR account %s exists, opened with %" PRId64 " paise",
                      app_printable(name, text), acc->opened_with);
    return 0;
  }
  if (initial > INT64_MAX - l->total) {
    app_reply_error(out, APP_E_OVERFLOW,
                    "ERR opening %s with %" PRId64
                    " paise would take the ledger's total beyond int64",
                    app_printable(name, text), initial);
    return 0;
  }
  if (!app_objects_room(a, 1)) {
    app_reply_error(out, APP_E_FULL, "ERR too many objects (%" PRIu64 ")",
                    a->cfg.objects_max);
    return 0;
  }
  int rc = reserve_account(a);
  if (rc != 0)
    return rc;
  struct app_account *fresh = &l->v[l->n];
  app_str_set(&fresh->name, name);
  fresh->balance = initial;
  fresh->opened_with = initial;
  app_map_insert(&l->by_name, name, l->n);
  l->n++;
  l->total += initial;
  a->objects++;
  app_reply_ok(out, false);
  return 0;
}

/* The outcome of a transfer whose arguments are valid, decided against the
 * balances: moves the money and answers +OK, or refuses. */
static void transfer_decide(struct app_ledger *l, const struct app_decoded *d,
                            int64_t amount, struct app_reply *out) {
  struct app_arg from = d->argv[1], to = d->argv[2];
  char t1[APP_PRINTABLE_BYTES];
  struct app_account *src = find_account(l, from);
  struct app_account *dst = find_account(l, to);
  if (src == NULL || dst == NULL) {
    app_reply_error(out, APP_E_NO_SUCH, "ERR no such account: %s",
                    app_printable(src == NULL ? from : to, t1));
    return;
  }
  if (src->balance < amount) {
    app_reply_error(out, APP_E_FUNDS,
                    "ERR insufficient funds: account %s has %" PRId64
                    " paise, the transfer needs %" PRId64,
                    app_printable(from, t1), src->balance, amount);
    return;
  }
  /* No overflow: both balances are parts of total, which fits int64. */
  src->balance -= amount;
  dst->balance += amount;
  app_reply_ok(out, false);
  out->integer = amount;
}

static int ledger_transfer(struct app *a, const struct app_decoded *d,
                           uint64_t now_ms, struct app_reply *out) {
  struct app_ledger *l = &a->ledger;
  struct app_arg txid = d->argv[0];
  int64_t amount;
  enum app_code code = app_parse_i64(d->argv[3], &amount);
  if (code != APP_DONE) {
    app_reply_bad_number(out, code, "amount_paise", d->argv[3]);
    return 0;
  }
  if (amount == 0) {
    app_reply_error(out, APP_E_SYNTAX, "ERR amount_paise must be above 0");
    return 0;
  }
  if (!app_need_name(out, "txid", txid) ||
      !app_need_name(out, "account name", d->argv[1]) ||
      !app_need_name(out, "account name", d->argv[2]))
    return 0;
  if (app_arg_equal(d->argv[1], d->argv[2])) {
    char t[APP_PRINTABLE_BYTES];
    app_reply_error(out, APP_E_SAME_ACCOUNT,
                    "ERR transfer from account %s to itself",
                    app_printable(d->argv[1], t));
    return 0;
  }
  struct app_fingerprint fp;
  app_fingerprint(d, &fp);
  if (app_dedup_check(a, &l->dedup, txid, d, &fp, now_ms, out))
    return 0;
  struct app_dedup_prep prep;
  int rc = app_dedup_prepare(a, &l->dedup, &prep);
  if (rc != 0)
    return rc;
  transfer_decide(l, d, amount, out);
  app_dedup_record(a, &l->dedup, &prep, txid, &fp, now_ms, &d->argv[1], 3, out);
  return 0;
}

int app_ledger_apply(struct app *a, const struct app_decoded *d,
                     uint64_t now_ms, struct app_reply *out) {
  if (d->op == APP_LEDGER_OPEN)
    return ledger_open(a, d, out);
  assert(d->op == APP_LEDGER_TRANSFER);
  return ledger_transfer(a, d, now_ms, out);
}

/* LEDGER.TX: [committed|refused, from, to, amount] from the dedup table. */
static void read_tx(const struct app_ledger *l, struct app_arg txid,
                    struct app_reply *out) {
  const struct app_dedup_entry *e = app_dedup_find(&l->dedup, txid);
  struct app_arg extras[APP_DEDUP_EXTRAS_MAX];
  size_t n_extras;
  struct app_reply saved;
  if (e == NULL || !app_dedup_unpack(e, extras, &n_extras, &saved) ||
      n_extras != 3) {
    app_reply_null(out);
    return;
  }
  int64_t amount = 0;
  (void)app_parse_i64(extras[2], &amount); /* parsed once already */
  const char *status = saved.code == APP_DONE ? "committed" : "refused";
  app_reply_array(out);
  app_reply_push_bulk(out, status, strlen(status));
  app_reply_push_bulk(out, extras[0].ptr, extras[0].len);
  app_reply_push_bulk(out, extras[1].ptr, extras[1].len);
  app_reply_push_int(out, amount);
}

void app_ledger_read(const struct app *a, enum app_op op,
                     const struct app_arg *argv, size_t argc,
                     struct app_reply *out) {
  const struct app_ledger *l = &a->ledger;
  (void)argc;
  if (op == APP_LEDGER_AUDIT) {
    app_reply_array(out);
    app_reply_push_int(out, (int64_t)l->n);
    app_reply_push_int(out, l->total);
  } else if (op == APP_LEDGER_TX) {
    read_tx(l, argv[0], out);
  } else {
    assert(op == APP_LEDGER_BALANCE);
    const struct app_account *acc = find_account(l, argv[0]);
    char text[APP_PRINTABLE_BYTES];
    if (acc == NULL)
      app_reply_error(out, APP_E_NO_SUCH, "ERR no such account: %s",
                      app_printable(argv[0], text));
    else
      app_reply_int(out, acc->balance);
  }
}

void app_ledger_audit(const struct app *a, uint64_t *accounts, int64_t *total) {
  assert(a != NULL && accounts != NULL && total != NULL);
  *accounts = a->ledger.n;
  *total = a->ledger.total;
}

void app_ledger_foreach(const struct app *a,
                        void (*fn)(void *ctx, const struct app_arg *name,
                                   int64_t balance, int64_t opened_with),
                        void *ctx) {
  assert(a != NULL && fn != NULL);
  for (uint32_t i = 0; i < a->ledger.n; i++) {
    const struct app_account *acc = &a->ledger.v[i];
    struct app_arg name = app_str_arg(&acc->name);
    fn(ctx, &name, acc->balance, acc->opened_with);
  }
}

void app_ledger_write(struct app_w *w, const struct app *a) {
  const struct app_ledger *l = &a->ledger;
  app_w_u32(w, l->n);
  for (uint32_t i = 0; i < l->n; i++) {
    app_w_str(w, &l->v[i].name);
    app_w_u64(w, (uint64_t)l->v[i].balance);
    app_w_u64(w, (uint64_t)l->v[i].opened_with);
  }
  app_dedup_write(w, &l->dedup);
}

int app_ledger_restore(struct app *a, struct app_r *r) {
  struct app_ledger *l = &a->ledger;
  uint32_t n = app_r_u32(r);
  if (r->bad || !app_objects_room(a, n))
    return SABHA_ECORRUPT;
  int64_t opened_total = 0; /* money is only made by opening */
  for (uint32_t i = 0; i < n; i++) {
    struct app_account acc;
    app_r_str(r, &acc.name);
    acc.balance = (int64_t)app_r_u64(r);
    acc.opened_with = (int64_t)app_r_u64(r);
    struct app_arg name = app_str_arg(&acc.name);
    if (r->bad || acc.name.len == 0 || acc.balance < 0 || acc.opened_with < 0 ||
        acc.balance > INT64_MAX - l->total ||
        acc.opened_with > INT64_MAX - opened_total ||
        find_account(l, name) != NULL)
      return SABHA_ECORRUPT;
    int rc = reserve_account(a);
    if (rc != 0)
      return rc;
    l->v[l->n] = acc;
    app_map_insert(&l->by_name, name, l->n);
    l->n++;
    l->total += acc.balance;
    opened_total += acc.opened_with;
    a->objects++;
  }
  if (opened_total != l->total)
    return SABHA_ECORRUPT;
  return app_dedup_read(a, &l->dedup, r);
}

void app_ledger_free(const struct app_config *cfg, struct app_ledger *l) {
  allocator_free(&cfg->alloc, l->v);
  app_map_free(cfg, &l->by_name);
  app_dedup_free(cfg, &l->dedup);
  memset(l, 0, sizeof *l);
}
