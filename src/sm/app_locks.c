/* Locks with leases and fencing tokens, and the fenced keys they guard.
 *
 * A lock is granted to an owner for ttl_ms, measured by the clock carried
 * in the log (app.h, Time), so every replica agrees on when it expires.
 * Each new grant takes the next token from the lock's counter, so a later
 * holder always has a larger token than any before it.
 *
 * A lease alone cannot make a lock safe: a holder that pauses (a GC, a
 * swapped-out VM) past its expiry still believes it holds the lock when it
 * wakes, and writes. Jepsen found exactly this against etcd's lock (2020):
 * two clients each believed they held it. The fix is on the storage side:
 * FENCED.SET carries the writer's token and is refused when a newer grant
 * exists (Kleppmann, "How to do distributed locking", 2016). The writer's
 * lease is deliberately not checked there, because the storage cannot know
 * whether the writer's clock agrees; only "has someone newer been granted"
 * is decided, and it is decided in the log's order.
 *
 * A lock's record is kept after release (its token counter must survive,
 * or tokens would repeat), so locks count against objects_max once. */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "sabha/error.h"
#include "sm/app_internal.h"

static struct app_arg lock_key(const void *ctx, uint32_t pos) {
  const struct app_locks *l = ctx;
  assert(pos < l->n);
  return app_str_arg(&l->v[pos].name);
}

static struct app_arg fenced_key(const void *ctx, uint32_t pos) {
  const struct app_fenced *f = ctx;
  assert(pos < f->n);
  return app_str_arg(&f->v[pos].key);
}

static struct app_lock *find_lock(const struct app_locks *l,
                                  struct app_arg name) {
  uint32_t pos = app_map_find(&l->by_name, name, lock_key, l);
  return pos == APP_MAP_NONE ? NULL : &l->v[pos];
}

/* now + ttl, saturating: a stamp near UINT64_MAX must not wrap into the
 * past. */
static uint64_t expiry(uint64_t now_ms, uint64_t ttl_ms) {
  return now_ms > UINT64_MAX - ttl_ms ? UINT64_MAX : now_ms + ttl_ms;
}

static bool held_at(const struct app_lock *lk, uint64_t now_ms) {
  return lk->owner.len > 0 && now_ms < lk->expires_ms;
}

/* ttl_ms in 1..APP_TTL_MS_MAX, or an error reply. */
static bool parse_ttl(struct app_arg arg, uint64_t *ttl_ms,
                      struct app_reply *out) {
  int64_t v;
  enum app_code code = app_parse_i64(arg, &v);
  if (code == APP_DONE && (v < 1 || v > APP_TTL_MS_MAX)) {
    app_reply_error(out, APP_E_SYNTAX,
                    "ERR ttl_ms %" PRId64 " is outside 1..%u", v,
                    APP_TTL_MS_MAX);
    return false;
  }
  if (code != APP_DONE) {
    app_reply_bad_number(out, code, "ttl_ms", arg);
    return false;
  }
  *ttl_ms = (uint64_t)v;
  return true;
}

/* A token >= 1, or an error reply. */
static bool parse_token(struct app_arg arg, uint64_t *token,
                        struct app_reply *out) {
  int64_t v;
  enum app_code code = app_parse_i64(arg, &v);
  if (code != APP_DONE || v == 0) {
    app_reply_bad_number(out, code == APP_DONE ? APP_E_SYNTAX : code, "token",
                         arg);
    return false;
  }
  *token = (uint64_t)v;
  return true;
}

static void reply_full(const struct app *a, struct app_reply *out) {
  app_reply_error(out, APP_E_FULL, "ERR too many objects (%" PRIu64 ")",
                  a->cfg.objects_max);
}

/* ---- The expiry heap (app_internal.h) ------------------------------------ */

/* Lock x expires before lock y; positions break ties, so that the heap's
 * shape depends on nothing but the state. */
static bool expires_first(const void *ctx, uint32_t x, uint32_t y) {
  const struct app_locks *l = ctx;
  const struct app_lock *p = &l->v[x], *q = &l->v[y];
  return p->expires_ms < q->expires_ms ||
         (p->expires_ms == q->expires_ms && x < y);
}

static uint32_t *heap_at(void *ctx, uint32_t x) {
  struct app_locks *l = ctx;
  return &l->v[x].heap_at;
}

static const struct app_heap_ops held_ops = {expires_first, heap_at};

/* Puts lock lk, just granted or renewed, in the heap or moves it there. */
static void held_set(struct app *a, const struct app_lock *lk) {
  struct app_locks *l = &a->locks;
  assert(lk->owner.len > 0);
  app_heap_set(&l->held, &held_ops, l, (uint32_t)(lk - l->v), &a->visits);
}

void app_locks_clock_moved(struct app *a) {
  struct app_locks *l = &a->locks;
  while (l->held.n > 0 && l->v[l->held.v[0]].expires_ms <= a->clock_ms)
    app_heap_remove(&l->held, &held_ops, l, l->held.v[0], &a->visits);
}

/* ---- LOCK.ACQUIRE -------------------------------------------------------- */

static void grant(struct app *a, struct app_lock *lk, struct app_arg owner,
                  uint64_t now_ms, uint64_t ttl_ms, struct app_reply *out) {
  assert(lk->token_max < (uint64_t)INT64_MAX);
  app_str_set(&lk->owner, owner);
  lk->token = ++lk->token_max;
  lk->expires_ms = expiry(now_ms, ttl_ms);
  held_set(a, lk);
  app_reply_int(out, (int64_t)lk->token);
}

static int lock_acquire(struct app *a, const struct app_decoded *d,
                        uint64_t now_ms, struct app_reply *out) {
  struct app_locks *l = &a->locks;
  struct app_arg name = d->argv[0], owner = d->argv[1];
  uint64_t ttl_ms;
  if (!app_need_name(out, "lock name", name) ||
      !app_need_name(out, "owner", owner) ||
      !parse_ttl(d->argv[2], &ttl_ms, out))
    return 0;
  char t1[APP_PRINTABLE_BYTES], t2[APP_PRINTABLE_BYTES];
  struct app_lock *lk = find_lock(l, name);
  if (lk != NULL && held_at(lk, now_ms)) {
    if (app_arg_equal(app_str_arg(&lk->owner), owner)) {
      lk->expires_ms = expiry(now_ms, ttl_ms); /* same grant, lease extended */
      held_set(a, lk);
      app_reply_int(out, (int64_t)lk->token);
      out->duplicate = true;
    } else {
      app_reply_error(out, APP_E_HELD,
                      "ERR lock %s is held by %s for another %" PRIu64 " ms",
                      app_printable(name, t1),
                      app_printable(app_str_arg(&lk->owner), t2),
                      lk->expires_ms - now_ms);
    }
    return 0;
  }
  if (lk != NULL) {
    if (lk->token_max >= (uint64_t)INT64_MAX) {
      app_reply_error(out, APP_E_OVERFLOW, "ERR lock %s has no tokens left",
                      app_printable(name, t1));
      return 0;
    }
    grant(a, lk, owner, now_ms, ttl_ms, out);
    out->integer = (int64_t)lk->token;
    return 0;
  }
  if (!app_objects_room(a, 1)) {
    reply_full(a, out);
    return 0;
  }
  int rc = app_vec_reserve(&a->cfg, (void **)&l->v, &l->cap, l->n + 1ull,
                           sizeof *l->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &l->by_name, l->n + 1ull);
  if (rc == 0)
    rc = app_heap_reserve(&a->cfg, &l->held, l->n + 1ull);
  if (rc != 0)
    return rc;
  lk = &l->v[l->n];
  memset(lk, 0, sizeof *lk);
  app_str_set(&lk->name, name);
  app_map_insert(&l->by_name, name, l->n);
  l->n++;
  a->objects++;
  grant(a, lk, owner, now_ms, ttl_ms, out);
  out->integer = (int64_t)lk->token;
  return 0;
}

/* ---- LOCK.RENEW, LOCK.RELEASE -------------------------------------------- */

/* Why owner with token does not hold lk (NULL: never granted) at now_ms. */
static void reply_not_holder(const struct app_lock *lk, struct app_arg name,
                             struct app_arg owner, uint64_t token,
                             uint64_t now_ms, struct app_reply *out) {
  char t1[APP_PRINTABLE_BYTES], t2[APP_PRINTABLE_BYTES],
      t3[APP_PRINTABLE_BYTES];
  app_printable(name, t1);
  app_printable(owner, t2);
  if (lk == NULL)
    app_reply_error(out, APP_E_NOT_HOLDER,
                    "ERR not the holder: lock %s was never granted", t1);
  else if (!held_at(lk, now_ms))
    app_reply_error(out, APP_E_NOT_HOLDER,
                    "ERR not the holder: lock %s is free (newest token %" PRIu64
                    ")",
                    t1, lk->token_max);
  else
    app_reply_error(out, APP_E_NOT_HOLDER,
                    "ERR not the holder: lock %s is held by %s with token "
                    "%" PRIu64 ", not by %s with token %" PRIu64,
                    t1, app_printable(app_str_arg(&lk->owner), t3), lk->token,
                    t2, token);
}

static int lock_renew(struct app *a, const struct app_decoded *d,
                      uint64_t now_ms, struct app_reply *out) {
  struct app_arg name = d->argv[0], owner = d->argv[1];
  uint64_t token, ttl_ms;
  if (!parse_token(d->argv[2], &token, out) ||
      !parse_ttl(d->argv[3], &ttl_ms, out))
    return 0;
  struct app_lock *lk = find_lock(&a->locks, name);
  if (lk == NULL || !held_at(lk, now_ms) || lk->token != token ||
      !app_arg_equal(app_str_arg(&lk->owner), owner)) {
    reply_not_holder(lk, name, owner, token, now_ms, out);
    return 0;
  }
  lk->expires_ms = expiry(now_ms, ttl_ms);
  held_set(a, lk);
  app_reply_int(out, (int64_t)token);
  return 0;
}

static int lock_release(struct app *a, const struct app_decoded *d,
                        uint64_t now_ms, struct app_reply *out) {
  struct app_arg name = d->argv[0], owner = d->argv[1];
  uint64_t token;
  if (!parse_token(d->argv[2], &token, out))
    return 0;
  struct app_lock *lk = find_lock(&a->locks, name);
  if (lk == NULL || token > lk->token_max) {
    char t1[APP_PRINTABLE_BYTES];
    app_reply_error(out, APP_E_NOT_HOLDER,
                    "ERR not the holder: token %" PRIu64
                    " was never granted for lock %s",
                    token, app_printable(name, t1));
    return 0;
  }
  bool current = lk->owner.len > 0 && lk->token == token;
  if (current && !app_arg_equal(app_str_arg(&lk->owner), owner)) {
    reply_not_holder(lk, name, owner, token, now_ms, out);
    return 0;
  }
  if (!current || !held_at(lk, now_ms)) {
    app_reply_ok(out, true); /* released, expired or superseded already */
    return 0;
  }
  app_heap_remove(&a->locks.held, &held_ops, &a->locks,
                  (uint32_t)(lk - a->locks.v), &a->visits);
  lk->owner.len = 0;
  lk->token = 0;
  lk->expires_ms = 0;
  app_reply_ok(out, false);
  return 0;
}

/* ---- FENCED.SET ---------------------------------------------------------- */

static bool token_fresh(const struct app_lock *lk, struct app_arg name,
                        uint64_t token, struct app_reply *out) {
  char t1[APP_PRINTABLE_BYTES];
  if (lk == NULL) {
    app_reply_error(out, APP_E_STALE_TOKEN,
                    "ERR stale token %" PRIu64 ": lock %s was never granted",
                    token, app_printable(name, t1));
    return false;
  }
  if (token < lk->token_max) {
    app_reply_error(out, APP_E_STALE_TOKEN,
                    "ERR stale token %" PRIu64 ": lock %s has granted %" PRIu64,
                    token, app_printable(name, t1), lk->token_max);
    return false;
  }
  if (token > lk->token_max) { /* forged: no one was ever granted it */
    app_reply_error(out, APP_E_STALE_TOKEN,
                    "ERR unknown token %" PRIu64 ": lock %s has granted "
                    "%" PRIu64,
                    token, app_printable(name, t1), lk->token_max);
    return false;
  }
  return true;
}

static int fenced_set(struct app *a, const struct app_decoded *d,
                      struct app_reply *out) {
  struct app_fenced *f = &a->fenced;
  struct app_arg key = d->argv[0], value = d->argv[1], name = d->argv[2];
  uint64_t token;
  if (!app_need_name(out, "key", key) ||
      !app_need_name(out, "lock name", name) ||
      !parse_token(d->argv[3], &token, out))
    return 0;
  if (!token_fresh(find_lock(&a->locks, name), name, token, out))
    return 0;
  uint32_t pos = app_map_find(&f->by_key, key, fenced_key, f);
  if (pos == APP_MAP_NONE) {
    if (!app_objects_room(a, 1)) {
      reply_full(a, out);
      return 0;
    }
    int rc = app_vec_reserve(&a->cfg, (void **)&f->v, &f->cap, f->n + 1ull,
                             sizeof *f->v);
    if (rc == 0)
      rc = app_map_reserve(&a->cfg, &f->by_key, f->n + 1ull);
    if (rc != 0)
      return rc;
    pos = f->n++;
    app_str_set(&f->v[pos].key, key);
    app_map_insert(&f->by_key, key, pos);
    a->objects++;
  }
  app_str_set(&f->v[pos].value, value);
  app_reply_ok(out, false);
  return 0;
}

int app_locks_apply(struct app *a, const struct app_decoded *d, uint64_t now_ms,
                    struct app_reply *out) {
  switch (d->op) {
  case APP_LOCK_ACQUIRE:
    return lock_acquire(a, d, now_ms, out);
  case APP_LOCK_RENEW:
    return lock_renew(a, d, now_ms, out);
  case APP_LOCK_RELEASE:
    return lock_release(a, d, now_ms, out);
  case APP_FENCED_SET:
    return fenced_set(a, d, out);
  default:
    assert(false);
    return SABHA_EINVAL;
  }
}

/* ---- Reads, inspection, snapshots ---------------------------------------- */

void app_locks_read(const struct app *a, enum app_op op,
                    const struct app_arg *argv, size_t argc, uint64_t now_ms,
                    struct app_reply *out) {
  (void)argc;
  if (op == APP_FENCED_GET) {
    const struct app_fenced *f = &a->fenced;
    uint32_t pos = app_map_find(&f->by_key, argv[0], fenced_key, f);
    if (pos == APP_MAP_NONE)
      app_reply_null(out);
    else
      app_reply_bulk(out, f->v[pos].value.b, f->v[pos].value.len);
    return;
  }
  assert(op == APP_LOCK_GET);
  const struct app_lock *lk = find_lock(&a->locks, argv[0]);
  if (lk == NULL || !held_at(lk, now_ms)) {
    app_reply_null(out);
    return;
  }
  app_reply_array(out);
  app_reply_push_bulk(out, lk->owner.b, lk->owner.len);
  app_reply_push_int(out, (int64_t)lk->token);
  app_reply_push_int(out, (int64_t)(lk->expires_ms - now_ms));
}

bool app_lock_view(const struct app *a, const uint8_t *name, size_t len,
                   struct app_lock_view *out) {
  assert(a != NULL && out != NULL && (name != NULL || len == 0));
  struct app_arg key = {name, len};
  const struct app_lock *lk =
      len <= APP_ARG_BYTES_MAX ? find_lock(&a->locks, key) : NULL;
  if (lk == NULL)
    return false;
  out->owner = app_str_arg(&lk->owner);
  out->token = lk->token;
  out->token_max = lk->token_max;
  out->expires_ms = lk->expires_ms;
  return true;
}

uint64_t app_next_expiry_ms(const struct app *a) {
  assert(a != NULL);
  const struct app_locks *l = &a->locks;
  if (l->held.n == 0)
    return 0;
  const struct app_lock *first = &l->v[l->held.v[0]];
  assert(held_at(first, a->clock_ms) && first->heap_at == 1);
  return first->expires_ms;
}

void app_locks_write(struct app_w *w, const struct app *a) {
  const struct app_locks *l = &a->locks;
  app_w_u32(w, l->n);
  for (uint32_t i = 0; i < l->n; i++) {
    app_w_str(w, &l->v[i].name);
    app_w_str(w, &l->v[i].owner);
    app_w_u64(w, l->v[i].token);
    app_w_u64(w, l->v[i].token_max);
    app_w_u64(w, l->v[i].expires_ms);
  }
  const struct app_fenced *f = &a->fenced;
  app_w_u32(w, f->n);
  for (uint32_t i = 0; i < f->n; i++) {
    app_w_str(w, &f->v[i].key);
    app_w_str(w, &f->v[i].value);
  }
}

static bool lock_valid(const struct app_lock *lk) {
  bool granted = lk->owner.len > 0;
  return lk->name.len > 0 && lk->token_max >= 1 &&
         lk->token_max <= (uint64_t)INT64_MAX && lk->token <= lk->token_max &&
         granted == (lk->token != 0) && (granted || lk->expires_ms == 0);
}

static int restore_locks(struct app *a, struct app_r *r) {
  struct app_locks *l = &a->locks;
  uint32_t n = app_r_u32(r);
  if (r->bad || !app_objects_room(a, n) || !app_r_count_fits(r, n, 27))
    return SABHA_ECORRUPT;
  int rc = app_vec_reserve(&a->cfg, (void **)&l->v, &l->cap, n, sizeof *l->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &l->by_name, n);
  if (rc == 0)
    rc = app_heap_reserve(&a->cfg, &l->held, n);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    struct app_lock *lk = &l->v[l->n];
    lk->heap_at = 0;
    app_r_str(r, &lk->name);
    app_r_str(r, &lk->owner);
    lk->token = app_r_u64(r);
    lk->token_max = app_r_u64(r);
    lk->expires_ms = app_r_u64(r);
    struct app_arg name = app_str_arg(&lk->name);
    if (r->bad || !lock_valid(lk) || find_lock(l, name) != NULL)
      return SABHA_ECORRUPT;
    app_map_insert(&l->by_name, name, l->n);
    l->n++;
    a->objects++;
    if (held_at(lk, a->clock_ms))
      held_set(a, lk);
  }
  return 0;
}

static int restore_fenced(struct app *a, struct app_r *r) {
  struct app_fenced *f = &a->fenced;
  uint32_t n = app_r_u32(r);
  if (r->bad || !app_objects_room(a, n) || !app_r_count_fits(r, n, 3))
    return SABHA_ECORRUPT;
  int rc = app_vec_reserve(&a->cfg, (void **)&f->v, &f->cap, n, sizeof *f->v);
  if (rc == 0)
    rc = app_map_reserve(&a->cfg, &f->by_key, n);
  if (rc != 0)
    return rc;
  for (uint32_t i = 0; i < n; i++) {
    struct app_fenced_key *k = &f->v[f->n];
    app_r_str(r, &k->key);
    app_r_str(r, &k->value);
    struct app_arg key = app_str_arg(&k->key);
    if (r->bad || k->key.len == 0 ||
        app_map_find(&f->by_key, key, fenced_key, f) != APP_MAP_NONE)
      return SABHA_ECORRUPT;
    app_map_insert(&f->by_key, key, f->n);
    f->n++;
    a->objects++;
  }
  return 0;
}

int app_locks_restore(struct app *a, struct app_r *r) {
  int rc = restore_locks(a, r);
  return rc != 0 ? rc : restore_fenced(a, r);
}

void app_locks_free(const struct app_config *cfg, struct app_locks *l,
                    struct app_fenced *f) {
  allocator_free(&cfg->alloc, l->v);
  app_heap_free(cfg, &l->held);
  app_map_free(cfg, &l->by_name);
  memset(l, 0, sizeof *l);
  allocator_free(&cfg->alloc, f->v);
  app_map_free(cfg, &f->by_key);
  memset(f, 0, sizeof *f);
}
