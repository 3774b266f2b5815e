/* Order workflows: an order moves CREATED -> PAYMENT_CONFIRMED ->
 * INVENTORY_RESERVED -> SHIPPED -> DELIVERED, one step at a time, and may be
 * CANCELLED from any state before SHIPPED (once the parcel has left, a
 * cancellation is a return, another workflow).
 *
 * The services that drive an order (payments, the warehouse, the courier)
 * retry their calls, so every step is idempotent by what it names:
 * advancing to a state the order has already reached answers +OK again and
 * changes nothing, even after a cancellation if the order had reached that
 * state before it (the order remembers the state it was cancelled in).
 * Anything else is refused with the order's current state in the error, so
 * the caller learns where the order is. */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "sabha/error.h"
#include "sm/app_internal.h"

static struct app_arg order_key(const void *ctx, uint32_t pos) {
  const struct app_orders *o = ctx;
  assert(pos < o->n);
  return app_str_arg(&o->v[pos].id);
}

static struct app_order *find_order(const struct app_orders *o,
                                    struct app_arg id) {
  uint32_t pos = app_map_find(&o->by_id, id, order_key, o);
  return pos == APP_MAP_NONE ? NULL : &o->v[pos];
}

static void reply_no_order(struct app_arg id, struct app_reply *out) {
  char t[APP_PRINTABLE_BYTES];
  app_reply_error(out, APP_E_NO_SUCH, "ERR no such order: %s",
                  app_printable(id, t));
}

/* A workflow state named (any case) as a target of ORDER.ADVANCE, or 0.
 * Only letters fold: clearing bit 5 of any byte would also read DEL (0x7f)
 * as '_'. */
static enum app_order_state parse_state(struct app_arg arg) {
  for (int s = APP_ORDER_CREATED; s <= APP_ORDER_DELIVERED; s++) {
    const char *name = app_order_state_name((enum app_order_state)s);
    size_t n = strlen(name), i = 0;
    if (n != arg.len)
      continue;
    while (i < n) {
      uint8_t c = arg.ptr[i];
      if (c >= 'a' && c <= 'z')
        c = (uint8_t)(c - 'a' + 'A');
      if (c != (uint8_t)name[i])
        break;
      i++;
    }
    if (i == n)
      return (enum app_order_state)s;
  }
  return 0;
}

static int order_create(struct app *a, const struct app_decoded *d,
                        struct app_reply *out) {
  struct app_orders *o = &a->orders;
  struct app_arg id = d->argv[0], customer = d->argv[1];
  int64_t amount;
  enum app_code code = app_parse_i64(d->argv[2], &amount);
  if (code != APP_DONE) {
    app_reply_bad_number(out, code, "amount_paise", d->argv[2]);
    return 0;
  }
  if (amount == 0) {
    app_reply_error(out, APP_E_SYNTAX, "ERR amount_paise must be above 0");
    return 0;
  }
  if (!app_need_name(out, "order_id", id) ||
      !app_need_name(out, "customer", customer))
    return 0;
  const struct app_order *old = find_order(o, id);
  if (old != NULL) {
    char t1[APP_PRINTABLE_BYTES], t2[APP_PRINTABLE_BYTES];
    if (old->amount == amount &&
        app_arg_equal(app_str_arg(&old->customer), customer))
      app_reply_ok(out, true);
    else
      app_reply_error(out, APP_E_EXISTS,
                      "ERR order %s exists for customer %s, %" PRId64 " paise",
                      app_printable(id, t1),
                      app_printable(app_str_arg(&old->customer), t2),
                      old->amount);
    return 0;
  }
  if (!app_objects_room(a, 1)) {
    app_reply_error(out, APP_E_FULL, "ERR too many objects (%" PRIu64 ")",
                    a->cfg.objects_max);
    return 0;
  }
  int rc = app_vec_reserve(&a->cfg, (void **)&o->v, &o->cap, o->n + 1ull,
                           sizeof *o->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &o->by_id, o->n + 1ull);
  if (rc != 0)
    return rc;
  struct app_order *fresh = &o->v[o->n];
  memset(fresh, 0, sizeof *fresh);
  app_str_set(&fresh->id, id);
  app_str_set(&fresh->customer, customer);
  fresh->amount = amount;
  fresh->state = APP_ORDER_CREATED;
  app_map_insert(&o->by_id, id, o->n);
  o->n++;
  a->objects++;
  app_reply_ok(out, false);
  return 0;
}

static void reply_transition(const struct app_order *ord, const char *why,
                             struct app_reply *out) {
  char t[APP_PRINTABLE_BYTES];
  app_reply_error(out, APP_E_TRANSITION,
                  "ERR invalid transition: order %s "
                  "is %s, %s",
                  app_printable(app_str_arg(&ord->id), t),
                  app_order_state_name((enum app_order_state)ord->state), why);
}

static int order_advance(struct app *a, const struct app_decoded *d,
                         struct app_reply *out) {
  enum app_order_state to = parse_state(d->argv[1]);
  if (to == 0) {
    char t[APP_PRINTABLE_BYTES];
    app_reply_error(out, APP_E_SYNTAX,
                    "ERR unknown order state '%s' (PAYMENT_CONFIRMED, "
                    "INVENTORY_RESERVED, SHIPPED or DELIVERED)",
                    app_printable(d->argv[1], t));
    return 0;
  }
  struct app_order *ord = find_order(&a->orders, d->argv[0]);
  if (ord == NULL) {
    reply_no_order(d->argv[0], out);
    return 0;
  }
  /* How far the workflow got: for a cancelled order, where it stopped. */
  unsigned reached =
      ord->state == APP_ORDER_CANCELLED ? ord->cancelled_from : ord->state;
  if ((unsigned)to <= reached) {
    app_reply_ok(out, true); /* already there: a retried step */
  } else if (ord->state == APP_ORDER_CANCELLED) {
    reply_transition(ord, "it cannot move on", out);
  } else if ((unsigned)to != reached + 1) {
    char why[64];
    strcpy(why, "it cannot skip to ");
    strcat(why, app_order_state_name(to));
    reply_transition(ord, why, out);
  } else {
    ord->state = (uint8_t)to;
    app_reply_ok(out, false);
  }
  return 0;
}

static int order_cancel(struct app *a, const struct app_decoded *d,
                        struct app_reply *out) {
  struct app_order *ord = find_order(&a->orders, d->argv[0]);
  if (ord == NULL) {
    reply_no_order(d->argv[0], out);
    return 0;
  }
  if (ord->state == APP_ORDER_CANCELLED) {
    app_reply_ok(out, true);
  } else if (ord->state >= APP_ORDER_SHIPPED) {
    reply_transition(ord, "too late to cancel", out);
  } else {
    ord->cancelled_from = ord->state;
    ord->state = APP_ORDER_CANCELLED;
    app_reply_ok(out, false);
  }
  return 0;
}

int app_orders_apply(struct app *a, const struct app_decoded *d,
                     uint64_t now_ms, struct app_reply *out) {
  (void)now_ms;
  switch (d->op) {
  case APP_ORDER_CREATE:
    return order_create(a, d, out);
  case APP_ORDER_ADVANCE:
    return order_advance(a, d, out);
  case APP_ORDER_CANCEL:
    return order_cancel(a, d, out);
  default:
    assert(false);
    return SABHA_EINVAL;
  }
}

void app_orders_read(const struct app *a, enum app_op op,
                     const struct app_arg *argv, size_t argc,
                     struct app_reply *out) {
  assert(op == APP_ORDER_GET);
  (void)argc;
  const struct app_order *ord = find_order(&a->orders, argv[0]);
  if (ord == NULL) {
    app_reply_null(out);
    return;
  }
  const char *state = app_order_state_name((enum app_order_state)ord->state);
  app_reply_array(out);
  app_reply_push_bulk(out, state, strlen(state));
  app_reply_push_bulk(out, ord->customer.b, ord->customer.len);
  app_reply_push_int(out, ord->amount);
}

enum app_order_state app_order_state(const struct app *a, const uint8_t *id,
                                     size_t len) {
  assert(a != NULL && (id != NULL || len == 0));
  struct app_arg key = {id, len};
  const struct app_order *ord =
      len <= APP_ARG_BYTES_MAX ? find_order(&a->orders, key) : NULL;
  return ord == NULL ? 0 : (enum app_order_state)ord->state;
}

void app_orders_write(struct app_w *w, const struct app *a) {
  const struct app_orders *o = &a->orders;
  app_w_u32(w, o->n);
  for (uint32_t i = 0; i < o->n; i++) {
    app_w_str(w, &o->v[i].id);
    app_w_str(w, &o->v[i].customer);
    app_w_u64(w, (uint64_t)o->v[i].amount);
    app_w_u8(w, o->v[i].state);
    app_w_u8(w, o->v[i].cancelled_from);
  }
}

static bool order_valid(const struct app_order *ord) {
  bool cancelled = ord->state == APP_ORDER_CANCELLED;
  return ord->id.len > 0 && ord->customer.len > 0 && ord->amount > 0 &&
         ord->state >= APP_ORDER_CREATED && ord->state <= APP_ORDER_CANCELLED &&
         (cancelled ? ord->cancelled_from >= APP_ORDER_CREATED &&
                          ord->cancelled_from < APP_ORDER_SHIPPED
                    : ord->cancelled_from == 0);
}

int app_orders_restore(struct app *a, struct app_r *r) {
  struct app_orders *o = &a->orders;
  uint32_t n = app_r_u32(r);
  if (r->bad || !app_objects_room(a, n) || !app_r_count_fits(r, n, 12))
    return SABHA_ECORRUPT;
  int rc = app_vec_reserve(&a->cfg, (void **)&o->v, &o->cap, n, sizeof *o->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &o->by_id, n);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    struct app_order *ord = &o->v[o->n];
    app_r_str(r, &ord->id);
    app_r_str(r, &ord->customer);
    ord->amount = (int64_t)app_r_u64(r);
    ord->state = app_r_u8(r);
    ord->cancelled_from = app_r_u8(r);
    struct app_arg id = app_str_arg(&ord->id);
    if (r->bad || !order_valid(ord) || find_order(o, id) != NULL)
      return SABHA_ECORRUPT;
    app_map_insert(&o->by_id, id, o->n);
    o->n++;
    a->objects++;
  }
  return 0;
}

void app_orders_free(const struct app_config *cfg, struct app_orders *o) {
  allocator_free(&cfg->alloc, o->v);
  app_map_free(cfg, &o->by_id);
  memset(o, 0, sizeof *o);
}
