/* The coordination API of the key-value store (src/sm/kvstore.h):
 * transactions with watched keys, the expiry commands, GETDEL, APPEND,
 * SETNX and GETSET, leases, the ordered index, revisions and events, and
 * snapshots that carry all of it; and Redis's glob matching, which the node
 * uses for SCAN and KEYS (commands.c). */
/* For fenced_alloc.h: MAP_ANONYMOUS, malloc_usable_size. */
#define _DEFAULT_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/endian.h"
#include "core/prng.h"
#include "fenced_alloc.h"
#include "node/runtime_internal.h"
#include "sabha/error.h"
#include "sm/kvstore.h"
#include "storage/crc32c.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define CMD_BYTES_MAX 4096

static struct kvstore_slice S(const char *s) {
  struct kvstore_slice x = {(const uint8_t *)s, strlen(s)};
  return x;
}

/* Every event the store reported, as text: "put k v 7" or "del k 9". */
struct events {
  char log[64][64];
  int n;
};

static void on_event(void *ctx, const struct kvstore_event *ev) {
  struct events *e = ctx;
  if (e->n >= (int)N(e->log))
    return;
  if (ev->kind == KVSTORE_EVENT_PUT)
    snprintf(e->log[e->n++], sizeof e->log[0], "put %.*s %.*s %llu",
             (int)ev->key_len, (const char *)ev->key, (int)ev->value_len,
             (const char *)ev->value, (unsigned long long)ev->revision);
  else
    snprintf(e->log[e->n++], sizeof e->log[0], "del %.*s %llu",
             (int)ev->key_len, (const char *)ev->key,
             (unsigned long long)ev->revision);
}

struct client {
  struct kvstore *kv;
  uint64_t session, seq, now_ms;
  uint8_t buf[CMD_BYTES_MAX];
};

static struct kvstore *store_new(struct events *ev) {
  struct kvstore_config cfg = kvstore_config_default;
  cfg.leases_max = 3;
  cfg.lease_keys_max = 2;
  cfg.on_event = ev != NULL ? on_event : NULL;
  cfg.event_ctx = ev;
  struct kvstore *kv = NULL;
  if (kvstore_new(&kv, &cfg) != 0)
    exit(1);
  return kv;
}

static struct client client_open(struct kvstore *kv) {
  struct client c = {.kv = kv};
  uint8_t cmd[64];
  size_t n = kvstore_encode_register(cmd, sizeof cmd, 0, 0);
  struct kvstore_result r;
  if (kvstore_apply(kv, cmd, n, &r) != 0 || r.integer < 1)
    exit(1);
  c.session = (uint64_t)r.integer;
  return c;
}

static struct kvstore_hdr hdr(struct client *c) {
  struct kvstore_hdr h = {c->session, ++c->seq, c->now_ms};
  return h;
}

static struct kvstore_result run(struct client *c, size_t n) {
  struct kvstore_result r;
  if (n == 0 || n > sizeof c->buf || kvstore_apply(c->kv, c->buf, n, &r) != 0)
    exit(1);
  return r;
}

static struct kvstore_result set(struct client *c, const char *k, const char *v,
                                 uint32_t flags, uint64_t lease) {
  struct kvstore_hdr h = hdr(c);
  return run(c, kvstore_encode_set_ex(c->buf, sizeof c->buf, &h, S(k), S(v),
                                      flags, 0, lease));
}

static struct kvstore_result expire(struct client *c, const char *k,
                                    enum kvstore_expire_mode mode, int64_t ms) {
  struct kvstore_hdr h = hdr(c);
  return run(c,
             kvstore_encode_expire(c->buf, sizeof c->buf, &h, S(k), mode, ms));
}

static struct kvstore_result lease_op(struct client *c, enum kvstore_op op,
                                      int64_t number) {
  struct kvstore_hdr h = hdr(c);
  return run(c, kvstore_encode_lease(c->buf, sizeof c->buf, &h, op, number));
}

static struct kvstore_result del1(struct client *c, const char *k) {
  struct kvstore_hdr h = hdr(c);
  struct kvstore_slice key = S(k);
  return run(c, kvstore_encode_del(c->buf, sizeof c->buf, &h, &key, 1));
}

static bool is_int(struct kvstore_result r, int64_t v) {
  return r.kind == KVSTORE_REPLY_INT && r.integer == v;
}

static bool is_ok_reply(struct kvstore_result r) {
  return r.kind == KVSTORE_REPLY_OK;
}

static bool is_bulk(struct kvstore_result r, const char *v) {
  return r.kind == KVSTORE_REPLY_BULK && r.bulk_len == strlen(v) &&
         memcmp(r.bulk, v, r.bulk_len) == 0;
}

static bool is_error(struct kvstore_result r, const char *msg) {
  return r.kind == KVSTORE_REPLY_ERROR && strcmp(r.error, msg) == 0;
}

static bool has(const struct kvstore *kv, const char *k, const char *v) {
  const uint8_t *p;
  size_t n;
  if (!kvstore_get(kv, (const uint8_t *)k, strlen(k), 0, &p, &n))
    return v == NULL;
  return v != NULL && n == strlen(v) && memcmp(p, v, n) == 0;
}

/* A TXN of the commands in subs (each built with the TXN's header). */
struct txn {
  uint8_t bytes[8][256];
  struct kvstore_slice subs[8];
  size_t n;
  struct kvstore_hdr h;
};

static void txn_begin(struct client *c, struct txn *t) {
  memset(t, 0, sizeof *t);
  t->h = hdr(c);
}

static void txn_set(struct txn *t, const char *k, const char *v) {
  t->subs[t->n].len = kvstore_encode_set(t->bytes[t->n], sizeof t->bytes[0],
                                         &t->h, S(k), S(v), 0, 0);
  t->subs[t->n].ptr = t->bytes[t->n];
  t->n++;
}

static void txn_incr(struct txn *t, const char *k) {
  t->subs[t->n].len =
      kvstore_encode_incrby(t->bytes[t->n], sizeof t->bytes[0], &t->h, S(k), 1);
  t->subs[t->n].ptr = t->bytes[t->n];
  t->n++;
}

static void txn_get(struct txn *t, const char *k) {
  t->subs[t->n].len = kvstore_encode_read(t->bytes[t->n], sizeof t->bytes[0],
                                          &t->h, KVSTORE_READ_GET, S(k));
  t->subs[t->n].ptr = t->bytes[t->n];
  t->n++;
}

static struct kvstore_result txn_run(struct client *c, struct txn *t,
                                     const char *watched, uint64_t rev) {
  struct kvstore_slice w = S(watched != NULL ? watched : "");
  return run(c,
             kvstore_encode_txn(c->buf, sizeof c->buf, &t->h, &w,
                                watched != NULL ? 1 : 0, rev, t->subs, t->n));
}

/* ---- transactions -------------------------------------------------------- */

static void txn_applies_in_order_with_errors_per_command(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  kvstore_set_revision(kv, 5);
  set(&c, "word", "hello", 0, 0);
  struct txn t;
  txn_begin(&c, &t);
  txn_set(&t, "a", "1");
  txn_incr(&t, "a");
  txn_incr(&t, "word"); /* not an integer: an error, the rest applies */
  txn_get(&t, "a");
  kvstore_set_revision(kv, 6);
  struct kvstore_result r = txn_run(&c, &t, NULL, 0);
  CHECK(r.kind == KVSTORE_REPLY_ARRAY && r.n_items == 4);
  CHECK(r.items[0].kind == KVSTORE_REPLY_OK);
  CHECK(is_int(r.items[1], 2));
  CHECK(is_error(r.items[2], KVSTORE_ERR_NOT_INTEGER));
  CHECK(is_bulk(r.items[3], "2"));
  CHECK(has(kv, "a", "2") && has(kv, "word", "hello"));
  CHECK(kvstore_key_revision(kv, (const uint8_t *)"a", 1, 0) == 6);
  /* A resend: applied once, its array not kept. */
  r = run(&c, kvstore_encode_txn(c.buf, sizeof c.buf, &t.h, NULL, 0, 0, t.subs,
                                 t.n));
  CHECK(r.outcome == KVSTORE_DUPLICATE && is_error(r, KVSTORE_ERR_STALE));
  CHECK(has(kv, "a", "2"));
  kvstore_free(kv);
}

static void txn_aborts_when_a_watched_key_changed(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  kvstore_set_revision(kv, 10);
  set(&c, "k", "1", 0, 0);
  /* Watched at 10 (the key's revision): unchanged, it applies. */
  struct txn t;
  txn_begin(&c, &t);
  txn_set(&t, "k", "2");
  kvstore_set_revision(kv, 11);
  CHECK(txn_run(&c, &t, "k", 10).kind == KVSTORE_REPLY_ARRAY);
  CHECK(has(kv, "k", "2"));
  /* Watched at 11, then changed at 12: nothing applies. */
  kvstore_set_revision(kv, 12);
  set(&c, "k", "3", 0, 0);
  txn_begin(&c, &t);
  txn_set(&t, "k", "4");
  txn_set(&t, "other", "x");
  kvstore_set_revision(kv, 13);
  CHECK(txn_run(&c, &t, "k", 11).kind == KVSTORE_REPLY_NULL_ARRAY);
  CHECK(has(kv, "k", "3") && has(kv, "other", NULL));
  /* An absent key: a delete after the watch aborts too. */
  kvstore_set_revision(kv, 14);
  del1(&c, "k");
  txn_begin(&c, &t);
  txn_set(&t, "k", "5");
  kvstore_set_revision(kv, 15);
  CHECK(txn_run(&c, &t, "k", 13).kind == KVSTORE_REPLY_NULL_ARRAY);
  txn_begin(&c, &t);
  txn_set(&t, "k", "5");
  CHECK(txn_run(&c, &t, "k", 14).kind == KVSTORE_REPLY_ARRAY);
  CHECK(has(kv, "k", "5"));
  kvstore_free(kv);
}

static void txn_refuses_nested_and_foreign_commands(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  struct txn t;
  txn_begin(&c, &t);
  txn_set(&t, "a", "1");
  uint8_t inner[512];
  size_t n =
      kvstore_encode_txn(inner, sizeof inner, &t.h, NULL, 0, 0, t.subs, t.n);
  struct kvstore_slice nested = {inner, n};
  n = kvstore_encode_txn(c.buf, sizeof c.buf, &t.h, NULL, 0, 0, &nested, 1);
  struct kvstore_result r;
  CHECK(kvstore_apply(kv, c.buf, n, &r) == SABHA_ECORRUPT);
  /* A command of another session inside. */
  struct kvstore_hdr other = t.h;
  other.session++;
  t.subs[0].len = kvstore_encode_set(t.bytes[0], sizeof t.bytes[0], &other,
                                     S("a"), S("1"), 0, 0);
  n = kvstore_encode_txn(c.buf, sizeof c.buf, &t.h, NULL, 0, 0, t.subs, 1);
  CHECK(kvstore_apply(kv, c.buf, n, &r) == SABHA_ECORRUPT);
  CHECK(has(kv, "a", NULL));
  kvstore_free(kv);
}

/* An allocator that refuses any one block larger than `max` bytes and
 * remembers the largest it gave: how a test sees what an apply allocates. */
struct capped_alloc {
  size_t max, largest;
};

static void *capped_alloc_fn(void *ctx, void *p, size_t size) {
  struct capped_alloc *a = ctx;
  if (size == 0) {
    free(p);
    return NULL;
  }
  if (size > a->max)
    return NULL;
  if (size > a->largest)
    a->largest = size;
  return realloc(p, size);
}

/* A transaction of reads of one large value asks each replica for the sum
 * of their sizes: 12 GETs of an 8 MiB value, 96 MiB, in every replica's
 * reply buffer (a MULTI may hold 1024 of them, a SABHA.TXN sent by hand
 * tens of thousands), and a replica that cannot allocate it stops. The
 * replies of one apply are bounded by reply_bytes_max instead: reads past
 * it are errors, and a GETSET past it changes nothing. */
static void txn_replies_are_bounded_whatever_the_values_read(void) {
  struct capped_alloc cap = {.max = 80u << 20};
  struct kvstore_config cfg = kvstore_config_default;
  cfg.alloc = (struct allocator){capped_alloc_fn, &cap};
  struct kvstore *kv = NULL;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c = client_open(kv);
  size_t big_len = cfg.value_bytes_max;
  uint8_t *big = malloc(big_len), *cmd = malloc(big_len + 256);
  CHECK(big != NULL && cmd != NULL);
  memset(big, 'v', big_len);
  struct kvstore_hdr h = hdr(&c);
  struct kvstore_slice value = {big, big_len};
  size_t n = kvstore_encode_set(cmd, big_len + 256, &h, S("big"), value, 0, 0);
  struct kvstore_result r;
  CHECK(kvstore_apply(kv, cmd, n, &r) == 0 && r.kind == KVSTORE_REPLY_OK);
  enum { GETS = 12 };
  uint8_t subs_bytes[GETS + 1][64];
  struct kvstore_slice subs[GETS + 1];
  h = hdr(&c);
  for (int i = 0; i < GETS; i++) {
    subs[i].len = kvstore_encode_read(subs_bytes[i], sizeof subs_bytes[i], &h,
                                      KVSTORE_READ_GET, S("big"));
    subs[i].ptr = subs_bytes[i];
  }
  subs[GETS].len = kvstore_encode_set(subs_bytes[GETS], sizeof subs_bytes[0],
                                      &h, S("big"), S("small"),
                                      KVSTORE_SET_GET, 0);
  subs[GETS].ptr = subs_bytes[GETS];
  n = kvstore_encode_txn(c.buf, sizeof c.buf, &h, NULL, 0, 0, subs, GETS + 1);
  CHECK(kvstore_apply(kv, c.buf, n, &r) == 0);
  CHECK(r.kind == KVSTORE_REPLY_ARRAY && r.n_items == GETS + 1);
  size_t fit = cfg.reply_bytes_max / big_len, bulks = 0;
  for (size_t i = 0; i < r.n_items; i++) {
    const struct kvstore_result *it = &r.items[i];
    if (i < fit) {
      CHECK(it->kind == KVSTORE_REPLY_BULK && it->bulk_len == big_len &&
            memcmp(it->bulk, big, big_len) == 0);
      bulks++;
    } else {
      CHECK(it->kind == KVSTORE_REPLY_ERROR &&
            strcmp(it->error, KVSTORE_ERR_REPLY_TOO_BIG) == 0);
    }
  }
  CHECK(bulks == fit && fit >= 1 && fit < GETS);
  CHECK(cap.largest <= cfg.reply_bytes_max + (1u << 20));
  /* The GETSET past the bound was refused whole. */
  const uint8_t *p;
  size_t len;
  CHECK(kvstore_get(kv, (const uint8_t *)"big", 3, 0, &p, &len) &&
        len == big_len);
  /* One value alone always fits. */
  h = hdr(&c);
  n = kvstore_encode_getdel(c.buf, sizeof c.buf, &h, S("big"));
  CHECK(kvstore_apply(kv, c.buf, n, &r) == 0 &&
        r.kind == KVSTORE_REPLY_BULK && r.bulk_len == big_len);
  /* The bound must let any one value through. */
  struct kvstore *bad = NULL;
  cfg.reply_bytes_max = cfg.value_bytes_max - 1;
  CHECK(kvstore_new(&bad, &cfg) == SABHA_EINVAL);
  free(big);
  free(cmd);
  kvstore_free(kv);
}

/* TTL rounds PTTL's milliseconds to the nearest second, as Redis does,
 * without overflowing for an expiry at the very end of time. */
static void ttl_rounds_without_overflow_at_the_largest_expiry(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  set(&c, "k", "v", 0, 0);
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_AT, INT64_MAX), 1));
  struct txn t;
  txn_begin(&c, &t);
  t.subs[0].len = kvstore_encode_read(t.bytes[0], sizeof t.bytes[0], &t.h,
                                      KVSTORE_READ_TTL, S("k"));
  t.subs[0].ptr = t.bytes[0];
  t.n = 1;
  struct kvstore_result r = txn_run(&c, &t, NULL, 0);
  CHECK(r.kind == KVSTORE_REPLY_ARRAY && r.n_items == 1);
  CHECK(is_int(r.items[0], INT64_MAX / 1000 + 1)); /* ...775807 ms */
  CHECK(kvstore_ttl_seconds(INT64_MAX) == INT64_MAX / 1000 + 1);
  CHECK(kvstore_ttl_seconds(1499) == 1 && kvstore_ttl_seconds(1500) == 2);
  CHECK(kvstore_ttl_seconds(0) == 0 && kvstore_ttl_seconds(-1) == -1 &&
        kvstore_ttl_seconds(-2) == -2);
  kvstore_free(kv);
}

/* ---- strings and expiry ----------------------------------------------- */

static void string_commands_follow_redis(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  uint32_t nx = KVSTORE_SET_NX | KVSTORE_SET_REPLY_INT;
  CHECK(is_int(set(&c, "n", "a", nx, 0), 1));
  CHECK(is_int(set(&c, "n", "b", nx, 0), 0));
  CHECK(set(&c, "fresh", "v", KVSTORE_SET_GET, 0).kind == KVSTORE_REPLY_NULL);
  CHECK(is_bulk(set(&c, "n", "c", KVSTORE_SET_GET, 0), "a"));
  struct kvstore_hdr h = hdr(&c);
  CHECK(is_bulk(run(&c, kvstore_encode_getdel(c.buf, sizeof c.buf, &h, S("n"))),
                "c"));
  CHECK(has(kv, "n", NULL));
  h = hdr(&c);
  CHECK(run(&c, kvstore_encode_getdel(c.buf, sizeof c.buf, &h, S("n"))).kind ==
        KVSTORE_REPLY_NULL);
  h = hdr(&c);
  CHECK(is_int(run(&c, kvstore_encode_append(c.buf, sizeof c.buf, &h, S("ap"),
                                             S("hello"))),
               5));
  h = hdr(&c);
  CHECK(is_int(run(&c, kvstore_encode_append(c.buf, sizeof c.buf, &h, S("ap"),
                                             S(" world"))),
               11));
  CHECK(has(kv, "ap", "hello world"));
  kvstore_free(kv);
}

static void expire_persist_and_past_times_as_redis(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  set(&c, "k", "v", 0, 0);
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_IN, 500), 1));
  CHECK(kvstore_pttl(kv, (const uint8_t *)"k", 1, 0) == 500);
  CHECK(is_int(expire(&c, "nokey", KVSTORE_EXPIRE_IN, 500), 0));
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_NONE, 0), 1));
  CHECK(kvstore_pttl(kv, (const uint8_t *)"k", 1, 0) == -1);
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_NONE, 0), 0));
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_AT, 1700), 1));
  CHECK(kvstore_pttl(kv, (const uint8_t *)"k", 1, 0) == 700);
  c.now_ms = 1700; /* alive at its instant, gone after */
  set(&c, "tick", "1", 0, 0);
  CHECK(has(kv, "k", "v"));
  c.now_ms = 1701;
  set(&c, "tick", "2", 0, 0);
  CHECK(has(kv, "k", NULL));
  set(&c, "k", "v", 0, 0);
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_IN, -1), 1)); /* deletes */
  CHECK(has(kv, "k", NULL));
  CHECK(is_error(expire(&c, "tick", KVSTORE_EXPIRE_IN, INT64_MAX),
                 KVSTORE_ERR_EXPIRE_CMD));
  kvstore_free(kv);
}

/* Redis takes any negative time for EXPIRE and PEXPIRE (the key goes):
 * only a sum past INT64_MAX is an error. A time far below zero was refused
 * as if clock + time could overflow downwards, which it cannot (the clock
 * is at most INT64_MAX, the time at least INT64_MIN). */
static void expire_takes_any_negative_time_as_redis(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  set(&c, "k", "v", 0, 0);
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_IN, INT64_MIN), 1));
  CHECK(has(kv, "k", NULL));
  set(&c, "k", "v", 0, 0);
  /* EXPIRE k -9223372036854775, in ms */
  CHECK(is_int(expire(&c, "k", KVSTORE_EXPIRE_IN, -9223372036854775000), 1));
  CHECK(has(kv, "k", NULL));
  kvstore_free(kv);
}

/* ---- EXPIRE's conditions (Redis 7's NX, XX, GT, LT) -------------------- */

static struct kvstore_result expire_if(struct client *c, const char *k,
                                       enum kvstore_expire_mode mode,
                                       int64_t ms, uint32_t ifs) {
  struct kvstore_hdr h = hdr(c);
  return run(c, kvstore_encode_expire_ex(c->buf, sizeof c->buf, &h, S(k), mode,
                                         ms, ifs));
}

static int64_t pttl(const struct kvstore *kv, const char *k) {
  return kvstore_pttl(kv, (const uint8_t *)k, strlen(k), 0);
}

#define E_NX KVSTORE_EXPIRE_NX
#define E_XX KVSTORE_EXPIRE_XX
#define E_GT KVSTORE_EXPIRE_GT
#define E_LT KVSTORE_EXPIRE_LT

/* NX and XX ask whether the key has an expiry; a key that does not
 * exist is :0 whatever the condition. */
static void expire_nx_and_xx_look_at_whether_the_key_expires(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  set(&c, "k", "v", 0, 0);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 500, E_XX), 0));
  CHECK(pttl(kv, "k") == -1);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 500, E_NX), 1));
  CHECK(pttl(kv, "k") == 500);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 900, E_NX), 0));
  CHECK(pttl(kv, "k") == 500);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_AT, 1900, E_XX), 1));
  CHECK(pttl(kv, "k") == 900);
  for (uint32_t ifs = E_NX; ifs <= E_LT; ifs <<= 1)
    CHECK(is_int(expire_if(&c, "none", KVSTORE_EXPIRE_IN, 500, ifs), 0));
  CHECK(has(kv, "none", NULL));
  kvstore_free(kv);
}

/* GT and LT compare instants, with no expiry as the latest of all: GT
 * never gives a key its first expiry, LT always may; an equal instant
 * satisfies neither. XX with either also needs an expiry there. */
static void expire_gt_and_lt_compare_with_no_expiry_as_infinite(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  set(&c, "k", "v", 0, 0);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 500, E_GT), 0));
  CHECK(pttl(kv, "k") == -1);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 500, E_XX | E_LT), 0));
  CHECK(pttl(kv, "k") == -1);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 500, E_LT), 1));
  CHECK(pttl(kv, "k") == 500);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_AT, 1500, E_GT), 0));
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_AT, 1500, E_LT), 0));
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_AT, 1499, E_GT), 0));
  CHECK(pttl(kv, "k") == 500);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_AT, 1501, E_GT), 1));
  CHECK(pttl(kv, "k") == 501);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_AT, 1600, E_LT), 0));
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 400, E_XX | E_LT), 1));
  CHECK(pttl(kv, "k") == 400);
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 800, E_XX | E_GT), 1));
  CHECK(pttl(kv, "k") == 800);
  /* A repeated option is the option once, as in Redis. */
  CHECK(is_int(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 900, E_GT | E_GT), 1));
  CHECK(pttl(kv, "k") == 900);
  kvstore_free(kv);
}

/* A time already past deletes the key only when the conditions let it
 * be set: LT with a past time takes a key (it is sooner than any
 * expiry), GT with one never does. */
static void expire_with_a_past_time_deletes_only_when_allowed(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  set(&c, "plain", "v", 0, 0);
  set(&c, "timed", "v", 0, 0);
  CHECK(is_int(expire_if(&c, "timed", KVSTORE_EXPIRE_IN, 500, 0), 1));
  CHECK(is_int(expire_if(&c, "timed", KVSTORE_EXPIRE_IN, -1, E_GT), 0));
  CHECK(is_int(expire_if(&c, "timed", KVSTORE_EXPIRE_AT, 0, E_NX), 0));
  CHECK(is_int(expire_if(&c, "plain", KVSTORE_EXPIRE_AT, 900, E_GT), 0));
  CHECK(is_int(expire_if(&c, "plain", KVSTORE_EXPIRE_IN, -5, E_XX), 0));
  CHECK(has(kv, "timed", "v") && pttl(kv, "timed") == 500);
  CHECK(has(kv, "plain", "v") && pttl(kv, "plain") == -1);
  CHECK(is_int(expire_if(&c, "timed", KVSTORE_EXPIRE_IN, INT64_MIN, E_LT), 1));
  CHECK(has(kv, "timed", NULL));
  CHECK(is_int(expire_if(&c, "plain", KVSTORE_EXPIRE_AT, 1000, E_NX), 1));
  CHECK(has(kv, "plain", NULL));
  set(&c, "plain", "v", 0, 0);
  CHECK(is_int(expire_if(&c, "plain", KVSTORE_EXPIRE_AT, -7, E_LT), 1));
  CHECK(has(kv, "plain", NULL));
  /* The sum past INT64_MAX is refused before any condition is judged. */
  set(&c, "timed", "v", 0, 0);
  CHECK(is_int(expire_if(&c, "timed", KVSTORE_EXPIRE_IN, 500, 0), 1));
  CHECK(is_error(expire_if(&c, "timed", KVSTORE_EXPIRE_IN, INT64_MAX, E_GT),
                 KVSTORE_ERR_EXPIRE_CMD));
  CHECK(pttl(kv, "timed") == 500);
  kvstore_free(kv);
}

/* NX with any other condition, and GT with LT, are refused with Redis's
 * words, whether or not the key is there, and change nothing; a resend
 * of the same entry is answered the same from the session. */
static void expire_refuses_conditions_that_cannot_go_together(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  set(&c, "k", "v", 0, 0);
  const uint32_t nx_with[] = {E_XX, E_GT, E_LT, E_XX | E_GT, E_XX | E_LT};
  for (size_t i = 0; i < N(nx_with); i++) {
    CHECK(is_error(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 5, E_NX | nx_with[i]),
                   KVSTORE_ERR_EXPIRE_NX));
    CHECK(
        is_error(expire_if(&c, "none", KVSTORE_EXPIRE_AT, 5, E_NX | nx_with[i]),
                 KVSTORE_ERR_EXPIRE_NX));
  }
  CHECK(is_error(expire_if(&c, "k", KVSTORE_EXPIRE_IN, 5, E_GT | E_LT),
                 KVSTORE_ERR_EXPIRE_GT_LT));
  CHECK(is_error(expire_if(&c, "k", KVSTORE_EXPIRE_IN, -5, E_XX | E_GT | E_LT),
                 KVSTORE_ERR_EXPIRE_GT_LT));
  CHECK(has(kv, "k", "v") && pttl(kv, "k") == -1);
  c.seq--; /* the same entry again */
  CHECK(is_error(expire_if(&c, "k", KVSTORE_EXPIRE_IN, -5, E_XX | E_GT | E_LT),
                 KVSTORE_ERR_EXPIRE_GT_LT));
  kvstore_free(kv);
}

/* The conditions ride in the mode's byte above its values, so an entry
 * written before them means what it meant; persist with a condition, or
 * a mode past persist, is malformed. */
static void expire_conditions_keep_old_entries_and_refuse_nonsense(void) {
  struct kvstore_hdr h = {1, 1, 1000};
  uint8_t old[64], buf[64];
  size_t n = kvstore_encode_expire(old, sizeof old, &h, S("k"),
                                   KVSTORE_EXPIRE_AT, 2000);
  CHECK(n > KVSTORE_CMD_HEADER_BYTES &&
        old[KVSTORE_CMD_HEADER_BYTES] == KVSTORE_EXPIRE_AT);
  CHECK(kvstore_encode_expire_ex(buf, sizeof buf, &h, S("k"), KVSTORE_EXPIRE_AT,
                                 2000, 0) == n);
  CHECK(memcmp(old, buf, n) == 0);
  CHECK(kvstore_encode_expire_ex(buf, sizeof buf, &h, S("k"), KVSTORE_EXPIRE_AT,
                                 2000, E_XX | E_LT) == n);
  CHECK(buf[KVSTORE_CMD_HEADER_BYTES] == (KVSTORE_EXPIRE_AT | E_XX | E_LT));
  struct kvstore_cmd_view v;
  CHECK(kvstore_decode(buf, n, &v) == 0 && v.op == KVSTORE_OP_EXPIRE);
  n = kvstore_encode_expire(buf, sizeof buf, &h, S("k"), KVSTORE_EXPIRE_NONE,
                            0);
  CHECK(kvstore_decode(buf, n, &v) == 0);
  buf[KVSTORE_CMD_HEADER_BYTES] = KVSTORE_EXPIRE_NONE | E_NX;
  CHECK(kvstore_decode(buf, n, &v) == SABHA_ECORRUPT);
  buf[KVSTORE_CMD_HEADER_BYTES] = (KVSTORE_EXPIRE_NONE + 1) | E_NX;
  CHECK(kvstore_decode(buf, n, &v) == SABHA_ECORRUPT);
}

/* ---- leases ---------------------------------------------------------------
 */

static void a_lease_takes_its_keys_when_it_expires(void) {
  struct events ev = {0};
  struct kvstore *kv = store_new(&ev);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  struct kvstore_result r = lease_op(&c, KVSTORE_OP_LEASE_GRANT, 300);
  CHECK(is_int(r, 1));
  CHECK(set(&c, "svc/a", "1", KVSTORE_SET_LEASE, 1).kind == KVSTORE_REPLY_OK);
  CHECK(set(&c, "svc/b", "2", KVSTORE_SET_LEASE, 1).kind == KVSTORE_REPLY_OK);
  CHECK(is_error(set(&c, "svc/c", "3", KVSTORE_SET_LEASE, 1),
                 KVSTORE_ERR_LEASE_FULL));
  CHECK(
      is_error(set(&c, "x", "3", KVSTORE_SET_LEASE, 9), KVSTORE_ERR_NO_LEASE));
  CHECK(is_error(expire(&c, "svc/a", KVSTORE_EXPIRE_NONE, 0),
                 KVSTORE_ERR_LEASED));
  c.now_ms = 1200; /* a keepalive moves the lease and its keys */
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_KEEPALIVE, 1), 300));
  CHECK(kvstore_pttl(kv, (const uint8_t *)"svc/a", 5, 0) == 300);
  c.now_ms = 1500; /* alive at its instant */
  set(&c, "tick", "1", 0, 0);
  CHECK(has(kv, "svc/a", "1"));
  c.now_ms = 1501;
  set(&c, "tick", "2", 0, 0); /* the purge deletes them, in key order */
  CHECK(has(kv, "svc/a", NULL) && has(kv, "svc/b", NULL));
  CHECK(strncmp(ev.log[ev.n - 2], "del svc/a", 9) == 0);
  CHECK(strncmp(ev.log[ev.n - 1], "del svc/b", 9) == 0);
  CHECK(is_error(lease_op(&c, KVSTORE_OP_LEASE_KEEPALIVE, 1),
                 KVSTORE_ERR_NO_LEASE));
  CHECK(kvstore_n_leases(kv) == 0);
  kvstore_free(kv);
}

static void revoke_deletes_the_keys_and_a_plain_set_detaches(void) {
  struct events ev = {0};
  struct kvstore *kv = store_new(&ev);
  struct client c = client_open(kv);
  c.now_ms = 50;
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10000), 1));
  set(&c, "z", "1", KVSTORE_SET_LEASE, 1);
  set(&c, "y", "1", KVSTORE_SET_LEASE, 1);
  set(&c, "y", "2", 0, 0); /* detached, no expiry */
  CHECK(kvstore_pttl(kv, (const uint8_t *)"y", 1, 0) == -1);
  set(&c, "w", "1", KVSTORE_SET_LEASE, 1);
  kvstore_set_revision(kv, 40);
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_REVOKE, 1), 2));
  CHECK(has(kv, "z", NULL) && has(kv, "w", NULL) && has(kv, "y", "2"));
  CHECK(strcmp(ev.log[ev.n - 2], "del w 40") == 0);
  CHECK(strcmp(ev.log[ev.n - 1], "del z 40") == 0);
  CHECK(
      is_error(lease_op(&c, KVSTORE_OP_LEASE_REVOKE, 1), KVSTORE_ERR_NO_LEASE));
  /* The table is bounded: room comes from expired leases only. */
  for (int i = 0; i < 3; i++)
    CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10), 2 + i));
  CHECK(is_error(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10),
                 KVSTORE_ERR_LEASES_FULL));
  c.now_ms = 100;
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10), 5));
  kvstore_free(kv);
}

/* The keys expiring in a_keepalive_moves_the_lease_not_each_key, in the
 * order they must go: the DEL events of every store it runs are checked
 * against it as they come. */
enum { KA_KEYS = 3000, KA_NAMES = KA_KEYS + 4 };
struct expiry_order {
  char names[KA_NAMES][8];
  int next[3]; /* per store: the index of the DEL it expects next */
  int store;   /* the store applying now */
  bool wrong;
};

static void on_expiry_event(void *ctx, const struct kvstore_event *ev) {
  struct expiry_order *o = ctx;
  if (ev->kind != KVSTORE_EVENT_DEL)
    return;
  int *i = &o->next[o->store];
  if (*i >= KA_NAMES || ev->key_len != strlen(o->names[*i]) ||
      memcmp(ev->key, o->names[*i], ev->key_len) != 0)
    o->wrong = true;
  (*i)++;
}

/* CLOCK commands at now_ms, until the store holds `keys_left` keys or
 * fewer. */
static void tick_until(struct kvstore *kv, uint64_t now_ms,
                       uint64_t keys_left) {
  uint8_t cmd[64];
  for (int i = 0; i < 1000 && kvstore_dbsize(kv) > keys_left; i++) {
    struct kvstore_result r;
    size_t n = kvstore_encode_clock(cmd, sizeof cmd, now_ms);
    CHECK(kvstore_apply(kv, cmd, n, &r) == 0);
  }
  CHECK(kvstore_dbsize(kv) <= keys_left);
}

/* A KEEPALIVE moves its lease, not each of its keys: its work is a few
 * steps in a heap of leases whatever the number of keys the lease holds
 * (each key's expiry was a copy of the lease's, re-placed in the expiry
 * heap: a KEEPALIVE of a lease of 10000 keys cost every replica 10000 heap
 * moves). What clients see is the same: the keys' TTLs follow the lease,
 * and expired keys go in the order of (expiry, key bytes) across leased
 * and other keys alike, whether the store applied the commands, restored a
 * snapshot, or dropped the lease when it was named after its time. */
static void a_keepalive_moves_the_lease_not_each_key(void) {
  static struct expiry_order o;
  memset(&o, 0, sizeof o);
  struct kvstore_config cfg = kvstore_config_default;
  cfg.lease_keys_max = KA_KEYS;
  cfg.on_event = on_expiry_event;
  cfg.event_ctx = &o;
  struct kvstore *kv = NULL;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 1000), 1));
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 1000), 2));
  /* The order they will go in: z first (sooner), then by key at 2200. */
  snprintf(o.names[0], sizeof o.names[0], "z");
  snprintf(o.names[1], sizeof o.names[1], "a");
  for (int i = 0; i < KA_KEYS; i++) {
    snprintf(o.names[2 + i], sizeof o.names[0], "k%05d", i);
    CHECK(set(&c, o.names[2 + i], "v", KVSTORE_SET_LEASE, 1).kind ==
          KVSTORE_REPLY_OK);
  }
  snprintf(o.names[KA_KEYS + 2], sizeof o.names[0], "m");
  snprintf(o.names[KA_KEYS + 3], sizeof o.names[0], "p");
  CHECK(set(&c, "m", "v", KVSTORE_SET_LEASE, 2).kind == KVSTORE_REPLY_OK);
  c.now_ms = 1200;
  static const struct {
    const char *key;
    int64_t px_ms;
  } own[] = {{"a", 1000}, {"p", 1000}, {"z", 999}};
  for (size_t i = 0; i < N(own); i++) {
    struct kvstore_hdr h = hdr(&c);
    CHECK(is_ok_reply(
        run(&c, kvstore_encode_set(c.buf, sizeof c.buf, &h, S(own[i].key),
                                   S("v"), KVSTORE_SET_PX, own[i].px_ms))));
  }
  uint64_t before = kvstore_visits(kv);
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_KEEPALIVE, 2), 1000));
  uint64_t one_key = kvstore_visits(kv) - before;
  before = kvstore_visits(kv);
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_KEEPALIVE, 1), 1000));
  uint64_t many_keys = kvstore_visits(kv) - before;
  CHECK(one_key <= 8 && many_keys <= 8);
  CHECK(kvstore_pttl(kv, (const uint8_t *)"k02999", 6, 0) == 1000);
  CHECK(kvstore_pttl(kv, (const uint8_t *)"m", 1, 0) == 1000);
  CHECK(kvstore_next_expiry_ms(kv) == 2199);

  /* A second store restored from a snapshot of the first. */
  size_t size = kvstore_snapshot_size(kv);
  uint8_t *snap = malloc(size);
  CHECK(snap != NULL && kvstore_snapshot(kv, snap, size) == size);
  struct kvstore *copy = NULL;
  CHECK(kvstore_new(&copy, &cfg) == 0);
  CHECK(kvstore_restore(copy, snap, size) == 0);
  CHECK(kvstore_pttl(copy, (const uint8_t *)"k00000", 6, 0) == 1000);
  uint64_t keys = kvstore_dbsize(kv);
  CHECK(keys == KA_NAMES);

  /* Past 2200, each store purges some; then the first drops lease 1
   * (named after its time) with most of its keys still held, and a third
   * store restores from that state. */
  o.store = 0;
  tick_until(kv, 2201, keys - 100);
  o.store = 1;
  tick_until(copy, 2201, keys - 100);
  o.store = 0;
  CHECK(is_error(lease_op(&c, KVSTORE_OP_LEASE_KEEPALIVE, 1),
                 KVSTORE_ERR_NO_LEASE));
  CHECK(kvstore_n_leases(kv) == 1);
  free(snap);
  size = kvstore_snapshot_size(kv);
  snap = malloc(size);
  CHECK(snap != NULL && kvstore_snapshot(kv, snap, size) == size);
  struct kvstore *third = NULL;
  CHECK(kvstore_new(&third, &cfg) == 0);
  CHECK(kvstore_restore(third, snap, size) == 0);
  o.next[2] = o.next[0];
  uint64_t left = kvstore_dbsize(kv);
  for (int s = 0; s < 3; s++) {
    o.store = s;
    tick_until(s == 0 ? kv : s == 1 ? copy : third, 2201, 0);
    CHECK(o.next[s] == KA_NAMES);
  }
  CHECK(left > 0 && !o.wrong);
  free(snap);
  kvstore_free(third);
  kvstore_free(copy);
  kvstore_free(kv);
}

struct grant_call {
  struct client *c;
  int n_refused;
};

/* Three GRANTs, each refused: the table of leases is full. */
static void grant_refused_three_times(void *ctx) {
  struct grant_call *call = ctx;
  for (; call->n_refused < 3; call->n_refused++)
    CHECK(is_error(lease_op(call->c, KVSTORE_OP_LEASE_GRANT, 10),
                   KVSTORE_ERR_LEASES_FULL));
}

/* A GRANT refused at the bound of leases looks for expired ones only once
 * one may have expired: after one walk finds none, the table's slots are
 * fenced off and three more refusals read none of them; once the earliest
 * lease's time is up, a GRANT takes its place. (Every refused GRANT walked
 * the whole table: 87 us of every replica's apply at 10000 leases.) */
static void a_full_lease_table_is_walked_only_when_a_lease_may_expire(void) {
  enum { LEASES = 30000, TTL_MS = 100000 };
  struct fenced_alloc f = {NULL, 0};
  struct kvstore_config cfg = kvstore_config_default;
  cfg.leases_max = LEASES;
  cfg.alloc = fenced_allocator(&f);
  struct kvstore *kv = NULL;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  for (int i = 0; i < LEASES; i++)
    CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, TTL_MS + i), 1 + i));
  c.now_ms = 2000;
  CHECK(is_error(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10),
                 KVSTORE_ERR_LEASES_FULL));
  CHECK(f.block != NULL); /* the slots of the table of leases */
  CHECK(fenced_alloc_fence(&f, 0, true));
  struct grant_call call = {&c, 0};
  bool faulted = fenced_alloc_faults(grant_refused_three_times, &call);
  CHECK(fenced_alloc_fence(&f, 0, false));
  CHECK(!faulted && call.n_refused == 3);
  c.now_ms = 1000 + TTL_MS; /* lease 1 is held up to and at its expiry */
  CHECK(is_error(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10),
                 KVSTORE_ERR_LEASES_FULL));
  c.now_ms = 1000 + TTL_MS + 1;
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10), LEASES + 1));
  CHECK(kvstore_n_leases(kv) == LEASES);
  CHECK(is_error(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 10),
                 KVSTORE_ERR_LEASES_FULL));
  kvstore_free(kv);
  CHECK(f.block == NULL);
}

/* ---- order, revisions, events -------------------------------------------- */

struct collect {
  char keys[512];
};

static bool collect_key(void *ctx, const struct kvstore_item *it) {
  struct collect *col = ctx;
  size_t n = strlen(col->keys);
  snprintf(col->keys + n, sizeof col->keys - n, "%.*s,", (int)it->key.len,
           (const char *)it->key.ptr);
  return true;
}

static void range_walks_keys_in_byte_order_in_bounded_steps(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  const char *keys[] = {"b", "a", "ab", "c", "b\x01", "", "aa"};
  for (size_t i = 0; i < N(keys); i++)
    set(&c, keys[i], "v", 0, 0);
  struct collect col = {{0}};
  struct kvstore_slice next;
  CHECK(!kvstore_range(kv, S(""), 0, 100, collect_key, &col, &next));
  CHECK(strcmp(col.keys, ",a,aa,ab,b,b\x01,c,") == 0);
  /* Three at a time, resuming where the last call stopped. */
  char all[512] = "";
  struct kvstore_slice from = S("");
  uint8_t held[64];
  for (int calls = 0; calls < 10; calls++) {
    memset(&col, 0, sizeof col);
    bool more = kvstore_range(kv, from, 0, 3, collect_key, &col, &next);
    strcat(all, col.keys);
    if (!more)
      break;
    memcpy(held, next.ptr, next.len);
    from.ptr = held;
    from.len = next.len;
    del1(&c, "ab"); /* changes between calls do not lose other keys */
  }
  CHECK(strcmp(all, ",a,aa,b,b\x01,c,") == 0 ||
        strcmp(all, ",a,aa,ab,b,b\x01,c,") == 0);
  kvstore_free(kv);
}

/* The order's nodes keep a key's first 16 bytes: keys that share them, end
 * inside them or right after them still come out in byte order, and a
 * range starts at the right one of them. */
static void range_orders_keys_that_share_a_long_prefix(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  const char *keys[] = {
      "0123456789abcdef1",    "0123456789abcdeg",   "0123456789abcdef",
      "0123456789abcdef0z",   "0123456789abcde",    "0123456789abcdef\x01",
      "0123456789abcdef0",    "0123456789abcdef0a", "0123456789abcdefff",
      "0123456789abcdee~~~~",
  };
  for (size_t i = 0; i < N(keys); i++)
    set(&c, keys[i], "v", 0, 0);
  struct collect col = {{0}};
  struct kvstore_slice next;
  CHECK(!kvstore_range(kv, S(""), 0, 100, collect_key, &col, &next));
  CHECK(strcmp(col.keys, "0123456789abcde,0123456789abcdee~~~~,"
                         "0123456789abcdef,0123456789abcdef\x01,"
                         "0123456789abcdef0,0123456789abcdef0a,"
                         "0123456789abcdef0z,0123456789abcdef1,"
                         "0123456789abcdefff,0123456789abcdeg,") == 0);
  memset(&col, 0, sizeof col);
  CHECK(!kvstore_range(kv, S("0123456789abcdef0b"), 0, 100, collect_key, &col,
                       &next));
  CHECK(strcmp(col.keys, "0123456789abcdef0z,0123456789abcdef1,"
                         "0123456789abcdefff,0123456789abcdeg,") == 0);
  kvstore_free(kv);
}

static void every_change_is_an_event_with_its_revision(void) {
  struct events ev = {0};
  struct kvstore *kv = store_new(&ev);
  struct client c = client_open(kv);
  kvstore_set_revision(kv, 3);
  set(&c, "a", "1", 0, 0);
  kvstore_set_revision(kv, 4);
  struct kvstore_hdr h = hdr(&c);
  struct kvstore_slice pairs[] = {S("b"), S("2"), S("c"), S("3")};
  run(&c, kvstore_encode_mset(c.buf, sizeof c.buf, &h, pairs, 2));
  kvstore_set_revision(kv, 5);
  del1(&c, "b");
  del1(&c, "nothing"); /* no change, no event */
  CHECK(ev.n == 4);
  CHECK(strcmp(ev.log[0], "put a 1 3") == 0);
  CHECK(strcmp(ev.log[1], "put b 2 4") == 0);
  CHECK(strcmp(ev.log[2], "put c 3 4") == 0);
  CHECK(strcmp(ev.log[3], "del b 5") == 0);
  CHECK(kvstore_revision(kv) == 5);
  kvstore_free(kv);
}

static void snapshots_carry_revisions_leases_and_restore_checks_them(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 10;
  kvstore_set_revision(kv, 7);
  lease_op(&c, KVSTORE_OP_LEASE_GRANT, 5000);
  set(&c, "leased", "1", KVSTORE_SET_LEASE, 1);
  set(&c, "leased2", "1", KVSTORE_SET_LEASE, 1);
  set(&c, "plain", "2", 0, 0);
  size_t len = kvstore_snapshot_size(kv);
  uint8_t *snap = malloc(len);
  CHECK(snap != NULL && kvstore_snapshot(kv, snap, len) == len);
  struct events ev = {0};
  struct kvstore *copy = store_new(&ev);
  CHECK(kvstore_restore(copy, snap, len) == 0);
  CHECK(ev.n == 0); /* a restore reports nothing */
  CHECK(kvstore_revision(copy) == 7 && kvstore_n_leases(copy) == 1);
  CHECK(kvstore_key_revision(copy, (const uint8_t *)"plain", 5, 0) == 7);
  CHECK(kvstore_lease_pttl(copy, 1, 0) == 5000);
  CHECK(kvstore_pttl(copy, (const uint8_t *)"leased", 6, 0) == 5000);
  /* The lease works on after the restore: a revoke takes the key. */
  struct client c2 = {.kv = copy, .session = c.session, .seq = c.seq};
  CHECK(is_int(lease_op(&c2, KVSTORE_OP_LEASE_REVOKE, 1), 2));
  CHECK(has(copy, "leased", NULL) && has(copy, "plain", "2"));
  /* More keys on a lease than this store allows: refused, unchanged. */
  struct kvstore *small = NULL;
  struct kvstore_config cfg = kvstore_config_default;
  cfg.lease_keys_max = 1;
  CHECK(kvstore_new(&small, &cfg) == 0);
  CHECK(kvstore_restore(small, snap, len) == SABHA_ECORRUPT);
  CHECK(kvstore_dbsize(small) == 0);
  kvstore_free(small);
  free(snap);
  kvstore_free(kv);
  kvstore_free(copy);
}

/* A snapshot of `kv` into a new buffer of *len bytes. */
static uint8_t *snapshot_of(const struct kvstore *kv, size_t *len) {
  *len = kvstore_snapshot_size(kv);
  uint8_t *snap = malloc(*len);
  if (snap == NULL || kvstore_snapshot(kv, snap, *len) != *len)
    exit(1);
  return snap;
}

/* A lease never expires later than the clock plus its ttl_ms (GRANT and
 * KEEPALIVE set exactly that, and the clock never runs back), and the
 * bound that lets a GRANT at the table's bound skip its walk relies on
 * it: a KEEPALIVE only moves an expiry later. So a snapshot whose lease
 * breaks it is refused. Accepted, it made replicas disagree: one restored
 * from it walked once, took that lease's far expiry as the bound, then a
 * KEEPALIVE brought the expiry back to clock + ttl, and once that passed
 * it refused a GRANT that a replica restored after the KEEPALIVE (bound
 * unknown) made room for. */
static void a_snapshot_with_a_lease_past_its_ttl_is_refused(void) {
  enum { LEASE_EXPIRY_AT = 33 + 28 + 16 }; /* headers, id, ttl_ms */
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 10;
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_GRANT, 100), 1));
  c.now_ms = 50; /* a KEEPALIVE's expiry is the clock plus the ttl too */
  CHECK(is_int(lease_op(&c, KVSTORE_OP_LEASE_KEEPALIVE, 1), 100));
  size_t len;
  uint8_t *snap = snapshot_of(kv, &len);
  CHECK(kvstore_n_leases(kv) == 1 && len > LEASE_EXPIRY_AT + 8 + 4);
  CHECK(le_get_u64(snap + LEASE_EXPIRY_AT) == 150);
  struct kvstore *copy = store_new(NULL);
  CHECK(kvstore_restore(copy, snap, len) == 0); /* at the bound: fine */
  CHECK(kvstore_lease_pttl(copy, 1, 50) == 100);
  kvstore_free(copy);
  /* One millisecond past the clock plus ttl_ms: no replica wrote that. */
  le_put_u64(snap + LEASE_EXPIRY_AT, 151);
  le_put_u32(snap + len - 4, wal_crc32c(0, snap, len - 4));
  copy = store_new(NULL);
  CHECK(kvstore_restore(copy, snap, len) == SABHA_ECORRUPT);
  CHECK(kvstore_n_leases(copy) == 0);
  kvstore_free(copy);
  free(snap);
  kvstore_free(kv);
}

/* A CRC of every key and value a walk in steps of 7 visits, and of each
 * step's resume key: what SCAN, KEYS and ranges see. */
static bool crc_item(void *ctx, const struct kvstore_item *it) {
  uint32_t *crc = ctx;
  *crc = wal_crc32c(*crc, it->key.ptr, it->key.len);
  *crc = wal_crc32c(*crc, it->value.ptr, it->value.len);
  return true;
}

/* A seeded history of writes (SET, SET PX with a clock that moves past some
 * expiries, MSET, DEL) over keys with zero bytes, long shared prefixes and
 * lengths around 16, for a store's snapshot and its walk in order. The
 * figures are what the store gave when its order was a skip list: changing
 * the index must change neither what a replica writes in a snapshot nor
 * what a SCAN cursor sees. */
static void snapshot_and_order_bytes_do_not_change(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  struct prng p;
  prng_seed(&p, 42);
  for (int i = 0; i < 20000; i++) {
    uint8_t key[40];
    size_t len = (size_t)prng_below(&p, 24);
    memcpy(key, "0123456789abcdef0123456789abcdef", 32);
    for (size_t j = len > 5 ? len - 5 : 0; j < len; j++)
      key[j] = (uint8_t) "\0az"[prng_below(&p, 4)];
    struct kvstore_slice k = {key, len}, v = {key, len / 2};
    struct kvstore_hdr h = hdr(&c);
    uint64_t op = prng_below(&p, 10);
    c.now_ms += prng_below(&p, 3);
    if (op < 5) {
      run(&c, kvstore_encode_set_ex(c.buf, sizeof c.buf, &h, k, v, 0, 0, 0));
    } else if (op < 6) {
      run(&c,
          kvstore_encode_set_ex(c.buf, sizeof c.buf, &h, k, v, KVSTORE_SET_PX,
                                1 + (int64_t)prng_below(&p, 50), 0));
    } else if (op < 7) {
      struct kvstore_slice pairs[4] = {k, v, {key, len / 3}, v};
      run(&c, kvstore_encode_mset(c.buf, sizeof c.buf, &h, pairs, 2));
    } else {
      run(&c, kvstore_encode_del(c.buf, sizeof c.buf, &h, &k, 1));
    }
  }
  size_t len = kvstore_snapshot_size(kv);
  uint8_t *snap = malloc(len);
  CHECK(snap != NULL && kvstore_snapshot(kv, snap, len) == len);
  /* Not over its trailer, the CRC of the rest: that would give a constant. */
  uint32_t snap_crc = wal_crc32c(0, snap, len - 4);
  free(snap);
  uint32_t walk_crc = 0;
  uint8_t from[64];
  struct kvstore_slice start = {from, 0}, next;
  while (kvstore_range(kv, start, c.now_ms, 7, crc_item, &walk_crc, &next)) {
    CHECK(next.len <= sizeof from);
    memcpy(from, next.ptr, next.len);
    start.len = next.len;
    walk_crc = wal_crc32c(walk_crc, from, next.len);
  }
  if (snap_crc != 0x5e80baacu || walk_crc != 0x2d988908u)
    fprintf(stderr, "keys %llu snapshot_crc 0x%08x walk_crc 0x%08x\n",
            (unsigned long long)kvstore_dbsize(kv), (unsigned)snap_crc,
            (unsigned)walk_crc);
  CHECK(snap_crc == 0x5e80baacu);
  CHECK(walk_crc == 0x2d988908u);
  kvstore_free(kv);
}

/* ---- APPEND -------------------------------------------------------------- */

/* An allocator that counts what the store asks of it: the work APPEND does
 * shows in the bytes it allocates (every byte allocated for a value is a
 * byte copied into it). */
struct counted {
  uint64_t calls; /* allocations and resizes; frees are not counted */
  uint64_t bytes; /* asked for by them */
};

static void *counted_fn(void *ctx, void *p, size_t size) {
  struct counted *c = ctx;
  if (size == 0) {
    free(p);
    return NULL;
  }
  c->calls++;
  c->bytes += size;
  return realloc(p, size);
}

static struct kvstore *counted_store(struct counted *c,
                                     const struct kvstore_config *base) {
  struct kvstore_config cfg = *base;
  cfg.alloc.fn = counted_fn;
  cfg.alloc.ctx = c;
  struct kvstore *kv = NULL;
  if (kvstore_new(&kv, &cfg) != 0)
    exit(1);
  return kv;
}

static struct kvstore_result append(struct client *c, const char *k,
                                    struct kvstore_slice v) {
  struct kvstore_hdr h = hdr(c);
  return run(c, kvstore_encode_append(c->buf, sizeof c->buf, &h, S(k), v));
}

/* A SET of n bytes (any n: the command goes through the heap). */
static struct kvstore_result set_bytes(struct client *c, const char *k,
                                       const uint8_t *v, size_t n) {
  struct kvstore_hdr h = hdr(c);
  struct kvstore_slice value = {v, n};
  size_t cap = kvstore_encode_set(NULL, 0, &h, S(k), value, 0, 0);
  uint8_t *cmd = malloc(cap);
  struct kvstore_result r;
  if (cmd == NULL ||
      kvstore_encode_set(cmd, cap, &h, S(k), value, 0, 0) != cap ||
      kvstore_apply(c->kv, cmd, cap, &r) != 0)
    exit(1);
  free(cmd);
  return r;
}

static bool has_bytes(const struct kvstore *kv, const char *k, const uint8_t *v,
                      size_t n) {
  const uint8_t *p;
  size_t len;
  return kvstore_get(kv, (const uint8_t *)k, strlen(k), 0, &p, &len) &&
         len == n && (n == 0 || memcmp(p, v, n) == 0);
}

static uint64_t slack_of(const struct kvstore *kv) {
  struct kvstore_memory m;
  kvstore_memory(kv, &m);
  return m.slack_bytes;
}

static uint64_t data_of(const struct kvstore *kv) {
  struct kvstore_memory m;
  kvstore_memory(kv, &m);
  return m.data_bytes;
}

/* n one-byte APPENDs to a value of `size` bytes: the store may move the
 * value a few times, never once per APPEND. Copying it every time, as the
 * store once did, allocated n x size bytes: 1 GiB for 1 MiB, 8 GiB for
 * 8 MiB. */
static bool small_appends_to_a_large_value_move_it_rarely(size_t size,
                                                          size_t n) {
  struct counted count = {0, 0};
  struct kvstore *kv = counted_store(&count, &kvstore_config_default);
  struct client c = client_open(kv);
  uint8_t *want = malloc(size + n);
  if (want == NULL)
    exit(1);
  for (size_t i = 0; i < size + n; i++)
    want[i] = (uint8_t)(i * 131 + 7);
  bool ok = set_bytes(&c, "big", want, size).kind == KVSTORE_REPLY_OK;
  count.calls = count.bytes = 0;
  for (size_t i = 0; ok && i < n; i++) {
    struct kvstore_slice one = {&want[size + i], 1};
    ok = is_int(append(&c, "big", one), (int64_t)(size + i + 1));
  }
  /* One move to room a quarter larger (or to the 8 MiB bound) pays for
   * every APPEND here. */
  ok = ok && count.calls <= 4 && count.bytes <= size + size / 4 + 4096;
  if (!ok)
    fprintf(stderr, "size %zu: %llu calls, %llu bytes\n", size,
            (unsigned long long)count.calls, (unsigned long long)count.bytes);
  ok = ok && has_bytes(kv, "big", want, size + n) &&
       data_of(kv) == 3 + size + n && slack_of(kv) <= size / 4;
  free(want);
  kvstore_free(kv);
  return ok;
}

static void append_to_a_large_value_copies_what_it_appends(void) {
  CHECK(small_appends_to_a_large_value_move_it_rarely(1u << 20, 1024));
  CHECK(small_appends_to_a_large_value_move_it_rarely((8u << 20) - 1024,
                                                      1024));
}

/* From nothing, one byte at a time: the value moves each time it passes a
 * step (a quarter of its highest power of two), so the bytes allocated are
 * a small multiple of the value's, not the square's half (here 2^27). */
static void append_from_empty_grows_geometrically(void) {
  enum { N_BYTES = 16384 };
  struct counted count = {0, 0};
  struct kvstore *kv = counted_store(&count, &kvstore_config_default);
  struct client c = client_open(kv);
  count.calls = count.bytes = 0;
  for (size_t i = 0; i < N_BYTES; i++)
    CHECK(is_int(append(&c, "k", S("z")), (int64_t)i + 1));
  CHECK(count.calls <= 64);
  CHECK(count.bytes <= 8u * N_BYTES + 256u * count.calls);
  CHECK(slack_of(kv) < N_BYTES / 4 && data_of(kv) == 1 + N_BYTES);
  kvstore_free(kv);
}

/* A value with spare room answers every command as one without: SET over
 * it, GETSET, GETDEL, DEL, INCR, STRLEN, expiry, a TXN, and the store's
 * bounds, which count lengths and never the room. */
static void appended_values_answer_as_plain_ones(void) {
  struct events ev = {0};
  struct kvstore_config cfg = kvstore_config_default;
  cfg.value_bytes_max = 100;
  cfg.reply_bytes_max = 100;
  cfg.data_bytes_max = 300;
  cfg.on_event = on_event;
  cfg.event_ctx = &ev;
  struct kvstore *kv;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c = client_open(kv);
  kvstore_set_revision(kv, 2);
  CHECK(is_int(append(&c, "a", S("1")), 1));
  CHECK(slack_of(kv) == 0); /* a new key is as long as its value */
  kvstore_set_revision(kv, 3);
  CHECK(is_int(append(&c, "a", S("2")), 2));
  CHECK(slack_of(kv) == 14 && data_of(kv) == 3);
  kvstore_set_revision(kv, 4);
  CHECK(is_int(append(&c, "a", S("")), 2)); /* a change all the same */
  CHECK(kvstore_key_revision(kv, (const uint8_t *)"a", 1, 0) == 4);
  CHECK(ev.n == 3 && strcmp(ev.log[2], "put a 12 4") == 0);
  struct kvstore_hdr h = hdr(&c);
  CHECK(is_int(run(&c, kvstore_encode_incrby(c.buf, sizeof c.buf, &h, S("a"),
                                             1)),
               13));
  CHECK(has(kv, "a", "13") && slack_of(kv) == 0);
  CHECK(is_int(append(&c, "a", S("45")), 4));
  CHECK(set(&c, "a", "new", KVSTORE_SET_GET, 0).kind == KVSTORE_REPLY_BULK);
  CHECK(has(kv, "a", "new") && slack_of(kv) == 0 && data_of(kv) == 4);
  CHECK(is_int(append(&c, "a", S("er")), 5));
  CHECK(is_int(append(&c, "a", S("!")), 6));
  h = hdr(&c);
  CHECK(is_bulk(run(&c, kvstore_encode_getdel(c.buf, sizeof c.buf, &h,
                                              S("a"))),
                "newer!"));
  CHECK(has(kv, "a", NULL) && slack_of(kv) == 0 && data_of(kv) == 0);
  CHECK(is_int(append(&c, "b", S("x")), 1));
  CHECK(is_int(append(&c, "b", S("y")), 2));
  CHECK(is_int(del1(&c, "b"), 1));
  CHECK(slack_of(kv) == 0 && data_of(kv) == 0);

  /* The value bound counts the length: the room stops at it. */
  char fill[101];
  memset(fill, 'f', 100);
  fill[99] = '\0';
  CHECK(is_int(append(&c, "v", S("f")), 1));
  CHECK(is_int(append(&c, "v", S(fill + 1)), 99));
  CHECK(slack_of(kv) == 1);
  CHECK(is_error(append(&c, "v", S("gg")), KVSTORE_ERR_TOO_BIG));
  CHECK(is_int(append(&c, "v", S("g")), 100));
  CHECK(slack_of(kv) == 0);
  CHECK(is_error(append(&c, "v", S("h")), KVSTORE_ERR_TOO_BIG));
  /* The store's bound counts lengths too: room to spare is no leave to
   * pass it. 101 bytes of "v" and 1 + 80 of "w" leave 118. */
  CHECK(is_int(append(&c, "w", S("w")), 1));
  memset(fill, 'w', 100);
  fill[80] = '\0';
  CHECK(is_int(append(&c, "w", S(fill)), 81));
  CHECK(slack_of(kv) == 15); /* room 96 */
  fill[14] = '\0';
  CHECK(is_int(append(&c, "u", S(fill)), 14));
  CHECK(data_of(kv) == 101 + 82 + 15);
  memset(fill, 't', 100);
  fill[100] = '\0';
  CHECK(is_int(append(&c, "t", S(fill)), 100)); /* data 299 */
  CHECK(is_error(append(&c, "w", S("ww")), KVSTORE_ERR_FULL));
  CHECK(is_int(append(&c, "w", S("w")), 82));
  CHECK(data_of(kv) == cfg.data_bytes_max);
  CHECK(is_error(append(&c, "w", S("w")), KVSTORE_ERR_FULL));

  /* A TXN: the APPENDs in order, each seeing the one before. */
  CHECK(is_int(del1(&c, "t"), 1));
  struct txn t;
  txn_begin(&c, &t);
  txn_set(&t, "x", "ab");
  for (int i = 0; i < 2; i++) {
    t.subs[t.n].len = kvstore_encode_append(t.bytes[t.n], sizeof t.bytes[0],
                                            &t.h, S("u"), S(i ? "" : "z"));
    t.subs[t.n].ptr = t.bytes[t.n];
    t.n++;
  }
  t.subs[t.n].len = kvstore_encode_read(t.bytes[t.n], sizeof t.bytes[0], &t.h,
                                        KVSTORE_READ_STRLEN, S("u"));
  t.subs[t.n].ptr = t.bytes[t.n];
  t.n++;
  struct kvstore_result r = txn_run(&c, &t, NULL, 0);
  CHECK(r.kind == KVSTORE_REPLY_ARRAY && r.n_items == 4);
  CHECK(is_int(r.items[1], 15) && is_int(r.items[2], 15) &&
        is_int(r.items[3], 15));
  kvstore_free(kv);
}

/* APPEND judges a key's expiry at the clock its own command brings: a key
 * with room that expires by that clock is gone, and APPEND starts a new
 * value, as it would without the room; a key still live keeps its expiry
 * through APPEND. */
static void append_to_a_key_expiring_with_the_command_starts_afresh(void) {
  struct kvstore *kv = store_new(NULL);
  struct client c = client_open(kv);
  c.now_ms = 1000;
  struct kvstore_hdr h = hdr(&c);
  CHECK(run(&c, kvstore_encode_set(c.buf, sizeof c.buf, &h, S("k"), S("abc"),
                                   KVSTORE_SET_PX, 100))
            .kind == KVSTORE_REPLY_OK);
  CHECK(is_int(append(&c, "k", S("d")), 4));
  CHECK(slack_of(kv) == 12 && kvstore_pttl(kv, (const uint8_t *)"k", 1, 0) ==
                                  100);
  c.now_ms = 1100; /* alive at exactly its expiry */
  CHECK(is_int(append(&c, "k", S("e")), 5));
  CHECK(kvstore_pttl(kv, (const uint8_t *)"k", 1, 0) == 0);
  c.now_ms = 1101;
  CHECK(is_int(append(&c, "k", S("f")), 1));
  CHECK(has(kv, "k", "f") && slack_of(kv) == 0 && data_of(kv) == 2);
  CHECK(kvstore_pttl(kv, (const uint8_t *)"k", 1, 0) == -1);
  kvstore_free(kv);
}

/* The room is this replica's alone: a snapshot holds the values' bytes
 * only, and a replica restored from it (whose values have no room) agrees
 * with the one that applied every APPEND, reply for reply and byte for
 * byte, as random APPENDs, SETs and DELs go on on both. */
static void appended_values_snapshot_and_restore_as_written(void) {
  enum { KEYS = 4, VALUE_MAX = 3000, STEPS = 4000 };
  struct kvstore_config cfg = kvstore_config_default;
  cfg.value_bytes_max = VALUE_MAX;
  cfg.reply_bytes_max = VALUE_MAX;
  struct kvstore *a, *b;
  CHECK(kvstore_new(&a, &cfg) == 0 && kvstore_new(&b, &cfg) == 0);
  struct client ca = client_open(a), cb = client_open(b);
  static uint8_t model[KEYS][VALUE_MAX];
  size_t len[KEYS] = {0};
  bool present[KEYS] = {false};
  static const char *const names[KEYS] = {"k0", "k1", "k2", "k3"};
  uint8_t bytes[VALUE_MAX];
  struct prng rng;
  prng_seed(&rng, 77);
  for (int step = 0; step < STEPS; step++) {
    int k = (int)prng_below(&rng, KEYS);
    uint32_t op = (uint32_t)prng_below(&rng, 10);
    size_t n = prng_below(&rng, 4) == 0 ? prng_below(&rng, 400)
                                        : prng_below(&rng, 3);
    for (size_t i = 0; i < n; i++)
      bytes[i] = (uint8_t)prng_below(&rng, 256);
    struct kvstore_slice v = {bytes, n};
    struct kvstore_result ra, rb;
    if (op < 7) {
      ra = append(&ca, names[k], v);
      rb = append(&cb, names[k], v);
      size_t old = present[k] ? len[k] : 0;
      if (old + n > VALUE_MAX) {
        CHECK(is_error(ra, KVSTORE_ERR_TOO_BIG));
      } else {
        CHECK(is_int(ra, (int64_t)(old + n)));
        memcpy(model[k] + old, bytes, n);
        len[k] = old + n;
        present[k] = true;
      }
    } else if (op < 9) {
      ra = set_bytes(&ca, names[k], bytes, n);
      rb = set_bytes(&cb, names[k], bytes, n);
      CHECK(ra.kind == KVSTORE_REPLY_OK);
      memcpy(model[k], bytes, n);
      len[k] = n;
      present[k] = true;
    } else {
      ra = del1(&ca, names[k]);
      rb = del1(&cb, names[k]);
      CHECK(is_int(ra, present[k]));
      present[k] = false;
    }
    CHECK(ra.kind == rb.kind && ra.integer == rb.integer);
    for (int i = 0; i < KEYS; i++) {
      CHECK(present[i] ? has_bytes(a, names[i], model[i], len[i])
                       : has(a, names[i], NULL));
      CHECK(present[i] ? has_bytes(b, names[i], model[i], len[i])
                       : has(b, names[i], NULL));
    }
    CHECK(data_of(a) == data_of(b));
    CHECK(kvstore_snapshot_size(a) == kvstore_snapshot_size(b));
    if (step % 97 == 96) {
      /* b becomes a fresh replica restored from a's snapshot: no room. */
      size_t snap_len = kvstore_snapshot_size(a);
      uint8_t *snap = malloc(snap_len);
      CHECK(snap != NULL && kvstore_snapshot(a, snap, snap_len) == snap_len);
      kvstore_free(b);
      CHECK(kvstore_new(&b, &cfg) == 0);
      CHECK(kvstore_restore(b, snap, snap_len) == 0);
      CHECK(slack_of(b) == 0 && data_of(b) == data_of(a));
      free(snap);
      cb.kv = b;
    }
  }
  CHECK(slack_of(a) > 0); /* the test did exercise the room */
  kvstore_free(a);
  kvstore_free(b);
}

/* A value grown by a hundred APPENDs, and the same bytes APPENDed at once
 * to a new key (as long as its value, as a SET makes it): with the same
 * session history, their snapshots are the same bytes, and so is the
 * snapshot of a store restored from either. */
static void an_appended_value_snapshots_as_a_fresh_one(void) {
  enum { SIZE = 100000, PIECE = 1000 };
  uint8_t *want = malloc(SIZE);
  CHECK(want != NULL);
  for (size_t i = 0; i < SIZE; i++)
    want[i] = (uint8_t)(i % 251);
  struct kvstore *grown = store_new(NULL), *fresh = store_new(NULL);
  struct client cg = client_open(grown), cf = client_open(fresh);
  for (size_t off = 0; off < SIZE; off += PIECE) {
    struct kvstore_slice piece = {want + off, PIECE};
    CHECK(is_int(append(&cg, "v", piece), (int64_t)(off + PIECE)));
  }
  CHECK(slack_of(grown) > 0);
  /* The fresh store's client sends as many commands, the last an APPEND
   * with the same reply; the others change nothing. */
  for (size_t off = PIECE; off < SIZE; off += PIECE)
    CHECK(is_int(del1(&cf, "nothing"), 0));
  struct kvstore_hdr h = hdr(&cf);
  struct kvstore_slice all = {want, SIZE};
  size_t cmd_len = kvstore_encode_append(NULL, 0, &h, S("v"), all);
  uint8_t *cmd = malloc(cmd_len);
  struct kvstore_result r;
  CHECK(cmd != NULL &&
        kvstore_encode_append(cmd, cmd_len, &h, S("v"), all) == cmd_len);
  CHECK(kvstore_apply(fresh, cmd, cmd_len, &r) == 0 && is_int(r, SIZE));
  CHECK(slack_of(fresh) == 0);
  size_t n = kvstore_snapshot_size(grown);
  CHECK(n == kvstore_snapshot_size(fresh));
  uint8_t *snap_g = malloc(n), *snap_f = malloc(n), *snap_r = malloc(n);
  CHECK(snap_g != NULL && snap_f != NULL && snap_r != NULL);
  CHECK(kvstore_snapshot(grown, snap_g, n) == n);
  CHECK(kvstore_snapshot(fresh, snap_f, n) == n);
  CHECK(memcmp(snap_g, snap_f, n) == 0);
  struct kvstore *restored = store_new(NULL);
  CHECK(kvstore_restore(restored, snap_g, n) == 0);
  CHECK(has_bytes(restored, "v", want, SIZE) && slack_of(restored) == 0);
  CHECK(kvstore_snapshot_size(restored) == n &&
        kvstore_snapshot(restored, snap_r, n) == n);
  CHECK(memcmp(snap_r, snap_g, n) == 0);
  free(snap_g);
  free(snap_f);
  free(snap_r);
  free(cmd);
  free(want);
  kvstore_free(restored);
  kvstore_free(grown);
  kvstore_free(fresh);
}

/* ---- glob ---------------------------------------------------------------- */

static bool glob(const char *p, const char *s) {
  return rt_glob_match((const uint8_t *)p, strlen(p), (const uint8_t *)s,
                       strlen(s));
}

static void glob_matches_as_redis(void) {
  CHECK(glob("*", "") && glob("*", "anything"));
  CHECK(glob("s:*", "s:1") && !glob("s:*", "other") && !glob("s:*", "s"));
  CHECK(glob("h?llo", "hello") && glob("h?llo", "hallo") &&
        !glob("h?llo", "hllo"));
  CHECK(glob("h[ae]llo", "hello") && !glob("h[ae]llo", "hillo"));
  CHECK(glob("h[^e]llo", "hallo") && !glob("h[^e]llo", "hello"));
  CHECK(glob("h[a-b]llo", "hbllo") && glob("h[b-a]llo", "hallo") &&
        !glob("h[a-b]llo", "hcllo"));
  CHECK(glob("a\\*b", "a*b") && !glob("a\\*b", "axb"));
  CHECK(glob("*a*b*c*", "xxaxxbxxcxx") && !glob("*a*b*c*", "xxcxxbxxa"));
  CHECK(glob("a*", "a") && !glob("a*b", "a"));
  CHECK(rt_glob_prefix((const uint8_t *)"s:*x", 4) == 2);
  CHECK(rt_glob_prefix((const uint8_t *)"abc", 3) == 3);
}

static const struct test tests[] = {
    TEST(txn_applies_in_order_with_errors_per_command),
    TEST(txn_aborts_when_a_watched_key_changed),
    TEST(txn_refuses_nested_and_foreign_commands),
    TEST(txn_replies_are_bounded_whatever_the_values_read),
    TEST(ttl_rounds_without_overflow_at_the_largest_expiry),
    TEST(string_commands_follow_redis),
    TEST(expire_persist_and_past_times_as_redis),
    TEST(expire_takes_any_negative_time_as_redis),
    TEST(expire_nx_and_xx_look_at_whether_the_key_expires),
    TEST(expire_gt_and_lt_compare_with_no_expiry_as_infinite),
    TEST(expire_with_a_past_time_deletes_only_when_allowed),
    TEST(expire_refuses_conditions_that_cannot_go_together),
    TEST(expire_conditions_keep_old_entries_and_refuse_nonsense),
    TEST(a_lease_takes_its_keys_when_it_expires),
    TEST(revoke_deletes_the_keys_and_a_plain_set_detaches),
    TEST(a_full_lease_table_is_walked_only_when_a_lease_may_expire),
    TEST(a_keepalive_moves_the_lease_not_each_key),
    TEST(range_walks_keys_in_byte_order_in_bounded_steps),
    TEST(range_orders_keys_that_share_a_long_prefix),
    TEST(snapshot_and_order_bytes_do_not_change),
    TEST(every_change_is_an_event_with_its_revision),
    TEST(snapshots_carry_revisions_leases_and_restore_checks_them),
    TEST(a_snapshot_with_a_lease_past_its_ttl_is_refused),
    TEST(append_to_a_large_value_copies_what_it_appends),
    TEST(append_from_empty_grows_geometrically),
    TEST(appended_values_answer_as_plain_ones),
    TEST(append_to_a_key_expiring_with_the_command_starts_afresh),
    TEST(appended_values_snapshot_and_restore_as_written),
    TEST(an_appended_value_snapshots_as_a_fresh_one),
    TEST(glob_matches_as_redis),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
