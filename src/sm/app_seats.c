/* Seat booking: trains on dates with named seats, booked one passenger per
 * seat under a PNR (IRCTC's Tatkal hour: thousands of clients racing for the
 * same seats, so the one promise that matters is that no seat is sold
 * twice, and that a client retrying a booking after a timeout does not buy
 * two).
 *
 * A seat belongs to a group, its train and date; a group lists its seats in
 * the order they were added, which is the order SEATS.ANY hands them out,
 * and keeps a count of free seats and a heap of them by that order, so
 * that Tatkal's "any seat" costs O(log n) steps, never a walk past the
 * booked ones. (It kept a hint, no free seat before it, which a
 * cancellation moved back: a client cancelling an early seat then made
 * each later ANY walk the train, on every replica.)
 *
 * PNR numbers come from a counter in the state, the number of PNRs made so
 * far, so every replica gives the same booking the same PNR. A PNR is kept
 * after it is cancelled (SEATS.PNR shows it so, and a retried cancel is
 * answered from it) and counts against objects_max.
 *
 * SEATS.BOOK and SEATS.ANY are recorded under their request id in the seats'
 * dedup table, refusals included, so a retry gets the same PNR or the same
 * refusal even if the seat changed hands since. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/decimal.h"
#include "core/endian.h"
#include "sabha/error.h"
#include "sm/app_internal.h"

#define PNR_DIGITS_MIN 10u
#define PNR_TEXT_BYTES_MAX 24u /* "PNR" + 20 digits + NUL */

/* ---- Keys and lookups ---------------------------------------------------- */

static struct app_arg group_key_of(const void *ctx, uint32_t pos) {
  const struct app_seats *s = ctx;
  struct app_arg k = {s->groups[pos].key, s->groups[pos].key_len};
  return k;
}

static struct app_arg seat_key_of(const void *ctx, uint32_t pos) {
  const struct app_seats *s = ctx;
  assert(pos < s->n);
  struct app_arg k = {s->v[pos].key, s->v[pos].key_len};
  return k;
}

/* u8 train_len | train | date */
static struct app_arg group_key(struct app_arg train, struct app_arg date,
                                uint8_t *buf) {
  buf[0] = (uint8_t)train.len;
  memcpy(buf + 1, train.ptr, train.len);
  memcpy(buf + 1 + train.len, date.ptr, date.len);
  struct app_arg k = {buf, 1 + train.len + date.len};
  return k;
}

/* u32 group | seat */
static struct app_arg seat_key(uint32_t group, struct app_arg seat,
                               uint8_t *buf) {
  le_put_u32(buf, group);
  memcpy(buf + 4, seat.ptr, seat.len);
  struct app_arg k = {buf, 4 + seat.len};
  return k;
}

static uint32_t find_group(const struct app_seats *s, struct app_arg train,
                           struct app_arg date) {
  uint8_t buf[APP_GROUP_KEY_BYTES_MAX];
  return app_map_find(&s->group_by_key, group_key(train, date, buf),
                      group_key_of, s);
}

static uint32_t find_seat(const struct app_seats *s, uint32_t group,
                          struct app_arg seat) {
  uint8_t buf[APP_SEAT_KEY_BYTES_MAX];
  return app_map_find(&s->by_key, seat_key(group, seat, buf), seat_key_of, s);
}

static struct app_arg group_train(const struct app_group *g) {
  struct app_arg a = {g->key + 1, g->key[0]};
  return a;
}

static struct app_arg group_date(const struct app_group *g) {
  struct app_arg a = {g->key + 1 + g->key[0],
                      (size_t)g->key_len - 1 - g->key[0]};
  return a;
}

static struct app_arg seat_name(const struct app_seat *seat) {
  struct app_arg a = {seat->key + 4, (size_t)seat->key_len - 4};
  return a;
}

size_t app_pnr_format(uint64_t pnr, char *out, size_t cap) {
  int n = snprintf(out, cap, "PNR%010" PRIu64, pnr);
  assert(n > 0 && (size_t)n < cap);
  return (size_t)n;
}

/* A PNR as app_pnr_format writes it (the canonical form only), or 0. */
static uint64_t parse_pnr(struct app_arg arg) {
  if (arg.len < 3 + PNR_DIGITS_MIN || arg.len > 3 + 19 ||
      memcmp(arg.ptr, "PNR", 3) != 0)
    return 0;
  uint64_t v;
  if (dec_parse_u64(arg.ptr + 3, arg.len - 3, DEC_LEADING_ZEROS, 0, UINT64_MAX,
                    &v) != DEC_OK)
    return 0;
  char text[PNR_TEXT_BYTES_MAX];
  size_t n = app_pnr_format(v, text, sizeof text);
  return n == arg.len && memcmp(text, arg.ptr, n) == 0 ? v : 0;
}

/* ---- Each group's free seats --------------------------------------------- */

/* Seat x was added to its group before seat y. */
static bool added_first(const void *ctx, uint32_t x, uint32_t y) {
  const struct app_seats *s = ctx;
  assert(s->v[x].group == s->v[y].group);
  return s->v[x].in_group < s->v[y].in_group;
}

static uint32_t *free_at(void *ctx, uint32_t x) {
  struct app_seats *s = ctx;
  return &s->v[x].free_at;
}

static const struct app_heap_ops free_ops = {added_first, free_at};

/* Seat pos is free now (added free, or its PNR cancelled). */
static void seat_freed(struct app *a, uint32_t pos) {
  struct app_seats *s = &a->seats;
  struct app_group *grp = &s->groups[s->v[pos].group];
  app_heap_set(&grp->free, &free_ops, s, pos, &a->visits);
  grp->n_free++;
  s->n_free++;
  assert(grp->n_free == grp->free.n && s->n_free <= s->n);
}

/* ---- SEATS.ADD ----------------------------------------------------------- */

/* Takes the memory for group g (new when g == n_groups) to gain n_new
 * seats. */
static int reserve_seats(struct app *a, uint32_t g, uint32_t n_new,
                         struct app_arg key) {
  struct app_seats *s = &a->seats;
  int rc = app_vec_reserve(&a->cfg, (void **)&s->v, &s->cap,
                           (uint64_t)s->n + n_new, sizeof *s->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &s->by_key, (uint64_t)s->n + n_new);
  if (rc == 0 && g == s->n_groups) {
    rc = app_vec_reserve(&a->cfg, (void **)&s->groups, &s->cap_groups,
                         s->n_groups + 1ull, sizeof *s->groups);
    if (rc == 0)
      rc = app_map_reserve(&a->cfg, &s->group_by_key, s->n_groups + 1ull);
    if (rc == 0) { /* the slot past the end is scratch until committed */
      struct app_group *fresh = &s->groups[g];
      memset(fresh, 0, sizeof *fresh);
      memcpy(fresh->key, key.ptr, key.len);
      fresh->key_len = (uint8_t)key.len;
    }
  }
  if (rc != 0)
    return rc;
  struct app_group *grp = &s->groups[g];
  rc = app_vec_reserve(&a->cfg, (void **)&grp->seats, &grp->cap,
                       (uint64_t)grp->n + n_new, sizeof *grp->seats);
  if (rc == 0)
    rc = app_heap_reserve(&a->cfg, &grp->free, (uint64_t)grp->n + n_new);
  if (rc != 0 && g == s->n_groups) {
    /* Nothing stays allocated for the scratch group. */
    allocator_free(&a->cfg.alloc, grp->seats);
    grp->seats = NULL;
    grp->cap = 0;
  }
  return rc;
}

/* Adds a seat known to be new, with room reserved. */
static void add_seat(struct app *a, uint32_t g, struct app_arg name,
                     uint64_t pnr) {
  struct app_seats *s = &a->seats;
  struct app_group *grp = &s->groups[g];
  struct app_seat *seat = &s->v[s->n];
  memset(seat, 0, sizeof *seat);
  struct app_arg key = seat_key(g, name, seat->key);
  seat->key_len = (uint8_t)key.len;
  seat->group = g;
  seat->in_group = grp->n;
  seat->pnr = pnr;
  app_map_insert(&s->by_key, key, s->n);
  grp->seats[grp->n++] = s->n;
  s->n++;
  a->objects++;
  if (pnr == 0)
    seat_freed(a, s->n - 1);
}

static bool named_earlier(const struct app_decoded *d, size_t i) {
  for (size_t j = 2; j < i; j++)
    if (app_arg_equal(d->argv[j], d->argv[i]))
      return true;
  return false;
}

static int seats_add(struct app *a, const struct app_decoded *d,
                     struct app_reply *out) {
  struct app_seats *s = &a->seats;
  if (!app_need_name(out, "train", d->argv[0]) ||
      !app_need_name(out, "date", d->argv[1]))
    return 0;
  uint8_t kbuf[APP_GROUP_KEY_BYTES_MAX];
  struct app_arg key = group_key(d->argv[0], d->argv[1], kbuf);
  uint32_t g = app_map_find(&s->group_by_key, key, group_key_of, s);
  bool group_is_new = g == APP_MAP_NONE;
  if (group_is_new)
    g = s->n_groups;
  uint32_t n_new = 0;
  for (size_t i = 2; i < d->argc; i++) {
    if (!app_need_name(out, "seat", d->argv[i]))
      return 0;
    bool exists = !group_is_new && find_seat(s, g, d->argv[i]) != APP_MAP_NONE;
    n_new += !exists && !named_earlier(d, i);
  }
  if (n_new == 0) {
    app_reply_int(out, 0);
    out->duplicate = true; /* every seat named exists: nothing to do */
    return 0;
  }
  if (!app_objects_room(a, n_new)) {
    app_reply_error(out, APP_E_FULL, "ERR too many objects (%" PRIu64 ")",
                    a->cfg.objects_max);
    return 0;
  }
  int rc = reserve_seats(a, g, n_new, key);
  if (rc != 0)
    return rc;
  if (group_is_new) {
    app_map_insert(&s->group_by_key, key, g);
    s->n_groups++;
  }
  for (size_t i = 2; i < d->argc; i++)
    if (find_seat(s, g, d->argv[i]) == APP_MAP_NONE)
      add_seat(a, g, d->argv[i], 0);
  app_reply_int(out, n_new);
  return 0;
}

/* ---- SEATS.BOOK, SEATS.ANY ----------------------------------------------- */

/* Books a free seat for passenger under the next PNR (room reserved) and
 * answers with it. */
static uint64_t book(struct app *a, uint32_t seat_pos,
                     struct app_arg passenger) {
  struct app_seats *s = &a->seats;
  struct app_seat *seat = &s->v[seat_pos];
  struct app_group *grp = &s->groups[seat->group];
  assert(seat->pnr == 0 && grp->n_free > 0);
  assert(s->n_pnrs < s->cap_pnrs);
  struct app_pnr *p = &s->pnrs[s->n_pnrs++];
  p->seat = seat_pos;
  p->cancelled = false;
  app_str_set(&p->passenger, passenger);
  seat->pnr = s->n_pnrs;
  app_heap_remove(&grp->free, &free_ops, s, seat_pos, &a->visits);
  grp->n_free--;
  s->n_free--;
  assert(grp->n_free == grp->free.n);
  a->objects++;
  return seat->pnr;
}

/* Checks the room a new PNR needs; false with *out an error when full. */
static bool pnr_room(struct app *a, struct app_reply *out) {
  if (app_objects_room(a, 1))
    return true;
  app_reply_error(out, APP_E_FULL, "ERR too many objects (%" PRIu64 ")",
                  a->cfg.objects_max);
  return false;
}

static int reserve_pnr(struct app *a) {
  struct app_seats *s = &a->seats;
  return app_vec_reserve(&a->cfg, (void **)&s->pnrs, &s->cap_pnrs,
                         s->n_pnrs + 1ull, sizeof *s->pnrs);
}

/* Decides SEATS.BOOK against the seats; may book. Returns 0 or ENOMEM. */
static int book_decide(struct app *a, const struct app_decoded *d,
                       struct app_reply *out) {
  struct app_seats *s = &a->seats;
  char t1[APP_PRINTABLE_BYTES], t2[APP_PRINTABLE_BYTES],
      t3[APP_PRINTABLE_BYTES];
  uint32_t g = find_group(s, d->argv[1], d->argv[2]);
  uint32_t pos = g == APP_MAP_NONE ? APP_MAP_NONE : find_seat(s, g, d->argv[3]);
  if (pos == APP_MAP_NONE) {
    app_reply_error(
        out, APP_E_NO_SUCH, "ERR no such seat: %s on train %s date %s",
        app_printable(d->argv[3], t1), app_printable(d->argv[1], t2),
        app_printable(d->argv[2], t3));
    return 0;
  }
  if (s->v[pos].pnr != 0) {
    app_reply_error(out, APP_E_NOT_AVAILABLE,
                    "ERR seat not available: %s on train %s date %s is booked",
                    app_printable(d->argv[3], t1),
                    app_printable(d->argv[1], t2),
                    app_printable(d->argv[2], t3));
    return 0;
  }
  if (!pnr_room(a, out))
    return 0;
  int rc = reserve_pnr(a);
  if (rc != 0)
    return rc;
  uint64_t pnr = book(a, pos, d->argv[4]);
  char text[PNR_TEXT_BYTES_MAX];
  app_reply_bulk(out, text, app_pnr_format(pnr, text, sizeof text));
  out->integer = (int64_t)pnr;
  return 0;
}

/* The first free seat of group g in the order added: its heap's top. */
static uint32_t first_free(const struct app_seats *s, uint32_t g) {
  const struct app_group *grp = &s->groups[g];
  assert(grp->n_free > 0 && grp->free.n == grp->n_free);
  uint32_t pos = grp->free.v[0];
  assert(s->v[pos].pnr == 0 && s->v[pos].free_at == 1);
  return pos;
}

static int any_decide(struct app *a, const struct app_decoded *d,
                      struct app_reply *out) {
  struct app_seats *s = &a->seats;
  char t1[APP_PRINTABLE_BYTES], t2[APP_PRINTABLE_BYTES];
  uint32_t g = find_group(s, d->argv[1], d->argv[2]);
  if (g == APP_MAP_NONE) {
    app_reply_error(out, APP_E_NO_SUCH, "ERR no such train %s on date %s",
                    app_printable(d->argv[1], t1),
                    app_printable(d->argv[2], t2));
    return 0;
  }
  if (s->groups[g].n_free == 0) {
    app_reply_error(out, APP_E_NOT_AVAILABLE,
                    "ERR seat not available: no free seat on train %s date %s",
                    app_printable(d->argv[1], t1),
                    app_printable(d->argv[2], t2));
    return 0;
  }
  if (!pnr_room(a, out))
    return 0;
  int rc = reserve_pnr(a);
  if (rc != 0)
    return rc;
  uint32_t pos = first_free(s, g);
  uint64_t pnr = book(a, pos, d->argv[3]);
  char text[PNR_TEXT_BYTES_MAX];
  size_t n = app_pnr_format(pnr, text, sizeof text);
  struct app_arg name = seat_name(&s->v[pos]);
  app_reply_array(out);
  app_reply_push_bulk(out, text, n);
  app_reply_push_bulk(out, name.ptr, name.len);
  out->integer = (int64_t)pnr;
  return 0;
}

/* BOOK and ANY: names checked, then exactly once through the dedup table. */
static int seats_book(struct app *a, const struct app_decoded *d,
                      uint64_t now_ms, struct app_reply *out) {
  static const char *const names[] = {"request_id", "train", "date"};
  for (size_t i = 0; i < 3; i++)
    if (!app_need_name(out, names[i], d->argv[i]))
      return 0;
  for (size_t i = 3; i < d->argc; i++)
    if (!app_need_name(out, i + 1 == d->argc ? "passenger" : "seat",
                       d->argv[i]))
      return 0;
  struct app_seats *s = &a->seats;
  struct app_fingerprint fp;
  app_fingerprint(d, &fp);
  if (app_dedup_check(a, &s->dedup, d->argv[0], d, &fp, now_ms, out))
    return 0;
  struct app_dedup_prep prep;
  int rc = app_dedup_prepare(a, &s->dedup, &prep);
  if (rc != 0)
    return rc;
  rc = d->op == APP_SEATS_BOOK ? book_decide(a, d, out) : any_decide(a, d, out);
  if (rc != 0) {
    app_dedup_unprepare(a, &prep);
    return rc;
  }
  app_dedup_record(a, &s->dedup, &prep, d->argv[0], &fp, now_ms, NULL, 0, out);
  return 0;
}

/* ---- SEATS.CANCEL -------------------------------------------------------- */

static void reply_no_pnr(struct app_reply *out, struct app_arg arg) {
  char text[APP_PRINTABLE_BYTES];
  app_reply_error(out, APP_E_NO_SUCH, "ERR no such PNR: %s",
                  app_printable(arg, text));
}

static int seats_cancel(struct app *a, const struct app_decoded *d,
                        struct app_reply *out) {
  struct app_seats *s = &a->seats;
  uint64_t pnr = parse_pnr(d->argv[0]);
  if (pnr == 0 || pnr > s->n_pnrs) {
    reply_no_pnr(out, d->argv[0]);
    return 0;
  }
  struct app_pnr *p = &s->pnrs[pnr - 1];
  if (p->cancelled) {
    app_reply_ok(out, true);
    return 0;
  }
  struct app_seat *seat = &s->v[p->seat];
  assert(seat->pnr == pnr && seat->free_at == 0);
  p->cancelled = true;
  seat->pnr = 0;
  seat_freed(a, p->seat);
  app_reply_ok(out, false);
  return 0;
}

int app_seats_apply(struct app *a, const struct app_decoded *d, uint64_t now_ms,
                    struct app_reply *out) {
  switch (d->op) {
  case APP_SEATS_ADD:
    return seats_add(a, d, out);
  case APP_SEATS_BOOK:
  case APP_SEATS_ANY:
    return seats_book(a, d, now_ms, out);
  case APP_SEATS_CANCEL:
    return seats_cancel(a, d, out);
  default:
    assert(false);
    return SABHA_EINVAL;
  }
}

/* ---- Reads and inspection ------------------------------------------------ */

static void read_pnr(const struct app_seats *s, struct app_arg arg,
                     struct app_reply *out) {
  uint64_t pnr = parse_pnr(arg);
  if (pnr == 0 || pnr > s->n_pnrs) {
    reply_no_pnr(out, arg);
    return;
  }
  const struct app_pnr *p = &s->pnrs[pnr - 1];
  const struct app_seat *seat = &s->v[p->seat];
  const struct app_group *grp = &s->groups[seat->group];
  struct app_arg train = group_train(grp), date = group_date(grp),
                 name = seat_name(seat);
  const char *status = p->cancelled ? "CANCELLED" : "CONFIRMED";
  app_reply_array(out);
  app_reply_push_bulk(out, train.ptr, train.len);
  app_reply_push_bulk(out, date.ptr, date.len);
  app_reply_push_bulk(out, name.ptr, name.len);
  app_reply_push_bulk(out, p->passenger.b, p->passenger.len);
  app_reply_push_bulk(out, status, strlen(status));
}

void app_seats_read(const struct app *a, enum app_op op,
                    const struct app_arg *argv, size_t argc,
                    struct app_reply *out) {
  const struct app_seats *s = &a->seats;
  (void)argc;
  if (op == APP_SEATS_PNR) {
    read_pnr(s, argv[0], out);
    return;
  }
  assert(op == APP_SEATS_FREE);
  uint32_t g = find_group(s, argv[0], argv[1]);
  char t1[APP_PRINTABLE_BYTES], t2[APP_PRINTABLE_BYTES];
  if (g == APP_MAP_NONE)
    app_reply_error(out, APP_E_NO_SUCH, "ERR no such train %s on date %s",
                    app_printable(argv[0], t1), app_printable(argv[1], t2));
  else
    app_reply_int(out, s->groups[g].n_free);
}

void app_seats_foreach(const struct app *a,
                       void (*fn)(void *ctx, const struct app_arg *train,
                                  const struct app_arg *date,
                                  const struct app_arg *seat, uint64_t pnr),
                       void *ctx) {
  assert(a != NULL && fn != NULL);
  const struct app_seats *s = &a->seats;
  for (uint32_t i = 0; i < s->n; i++) {
    const struct app_group *grp = &s->groups[s->v[i].group];
    struct app_arg train = group_train(grp), date = group_date(grp),
                   name = seat_name(&s->v[i]);
    fn(ctx, &train, &date, &name, s->v[i].pnr);
  }
}

void app_seats_count(const struct app *a, uint64_t *seats, uint64_t *booked) {
  assert(a != NULL && seats != NULL && booked != NULL);
  const struct app_seats *s = &a->seats;
  assert(s->n_free <= s->n);
  *seats = s->n;
  *booked = s->n - s->n_free;
}

bool app_seats_pnr(const struct app *a, uint64_t pnr, struct app_arg *train,
                   struct app_arg *date, struct app_arg *seat,
                   bool *cancelled) {
  assert(a != NULL && train != NULL && date != NULL && seat != NULL &&
         cancelled != NULL);
  const struct app_seats *s = &a->seats;
  if (pnr == 0 || pnr > s->n_pnrs)
    return false;
  const struct app_pnr *p = &s->pnrs[pnr - 1];
  const struct app_seat *st = &s->v[p->seat];
  *train = group_train(&s->groups[st->group]);
  *date = group_date(&s->groups[st->group]);
  *seat = seat_name(st);
  *cancelled = p->cancelled;
  return true;
}

/* ---- Snapshot section ---------------------------------------------------- */

static void write_arg(struct app_w *w, struct app_arg arg) {
  app_w_u8(w, (uint8_t)arg.len);
  app_w_bytes(w, arg.ptr, arg.len);
}

void app_seats_write(struct app_w *w, const struct app *a) {
  const struct app_seats *s = &a->seats;
  app_w_u32(w, s->n);
  for (uint32_t i = 0; i < s->n; i++) {
    const struct app_group *grp = &s->groups[s->v[i].group];
    write_arg(w, group_train(grp));
    write_arg(w, group_date(grp));
    write_arg(w, seat_name(&s->v[i]));
    app_w_u64(w, s->v[i].pnr);
  }
  app_w_u32(w, s->n_pnrs);
  for (uint32_t i = 0; i < s->n_pnrs; i++) {
    app_w_u32(w, s->pnrs[i].seat);
    app_w_u8(w, s->pnrs[i].cancelled);
    app_w_str(w, &s->pnrs[i].passenger);
  }
  app_dedup_write(w, &s->dedup);
}

/* Reads one seat and adds it, making its group when first seen. */
static int restore_seat(struct app *a, struct app_r *r) {
  struct app_seats *s = &a->seats;
  struct app_str train, date, name;
  app_r_str(r, &train);
  app_r_str(r, &date);
  app_r_str(r, &name);
  uint64_t pnr = app_r_u64(r);
  if (r->bad || train.len == 0 || date.len == 0 || name.len == 0)
    return SABHA_ECORRUPT;
  uint8_t kbuf[APP_GROUP_KEY_BYTES_MAX];
  struct app_arg key = group_key(app_str_arg(&train), app_str_arg(&date), kbuf);
  uint32_t g = app_map_find(&s->group_by_key, key, group_key_of, s);
  bool group_is_new = g == APP_MAP_NONE;
  if (group_is_new)
    g = s->n_groups;
  else if (find_seat(s, g, app_str_arg(&name)) != APP_MAP_NONE)
    return SABHA_ECORRUPT; /* the same seat twice */
  int rc = reserve_seats(a, g, 1, key);
  if (rc != 0)
    return rc;
  if (group_is_new) {
    app_map_insert(&s->group_by_key, key, g);
    s->n_groups++;
  }
  add_seat(a, g, app_str_arg(&name), pnr);
  return 0;
}

/* Every booked seat's PNR names it and is live, and every live PNR's seat
 * holds it. */
static bool pnrs_consistent(const struct app_seats *s) {
  for (uint32_t i = 0; i < s->n; i++) {
    uint64_t pnr = s->v[i].pnr;
    if (pnr != 0 && (pnr > s->n_pnrs || s->pnrs[pnr - 1].seat != i ||
                     s->pnrs[pnr - 1].cancelled))
      return false;
  }
  for (uint32_t k = 0; k < s->n_pnrs; k++) {
    const struct app_pnr *p = &s->pnrs[k];
    if (p->seat >= s->n || p->passenger.len == 0 ||
        (!p->cancelled && s->v[p->seat].pnr != k + 1ull))
      return false;
  }
  return true;
}

int app_seats_restore(struct app *a, struct app_r *r) {
  struct app_seats *s = &a->seats;
  uint32_t n = app_r_u32(r);
  if (r->bad || !app_objects_room(a, n))
    return SABHA_ECORRUPT;
  for (uint32_t i = 0; i < n; i++) {
    int rc = restore_seat(a, r);
    if (rc != 0)
      return rc;
  }
  uint32_t n_pnrs = app_r_u32(r);
  if (r->bad || !app_objects_room(a, n_pnrs) || !app_r_count_fits(r, n_pnrs, 6))
    return SABHA_ECORRUPT;
  int rc = app_vec_reserve(&a->cfg, (void **)&s->pnrs, &s->cap_pnrs, n_pnrs,
                           sizeof *s->pnrs);
  if (rc != 0)
    return rc;
  for (uint32_t k = 0; k < n_pnrs; k++) {
    struct app_pnr *p = &s->pnrs[k];
    p->seat = app_r_u32(r);
    uint8_t cancelled = app_r_u8(r);
    app_r_str(r, &p->passenger);
    if (r->bad || cancelled > 1)
      return SABHA_ECORRUPT;
    p->cancelled = cancelled == 1;
  }
  s->n_pnrs = n_pnrs;
  a->objects += n_pnrs;
  if (!pnrs_consistent(s))
    return SABHA_ECORRUPT;
  return app_dedup_read(a, &s->dedup, r);
}

void app_seats_free(const struct app_config *cfg, struct app_seats *s) {
  for (uint32_t g = 0; g < s->n_groups; g++) {
    allocator_free(&cfg->alloc, s->groups[g].seats);
    app_heap_free(cfg, &s->groups[g].free);
  }
  allocator_free(&cfg->alloc, s->groups);
  app_map_free(cfg, &s->group_by_key);
  allocator_free(&cfg->alloc, s->v);
  app_map_free(cfg, &s->by_key);
  allocator_free(&cfg->alloc, s->pnrs);
  app_dedup_free(cfg, &s->dedup);
  memset(s, 0, sizeof *s);
}
