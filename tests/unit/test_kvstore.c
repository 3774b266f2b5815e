/* Unit tests for the replicated key-value store (src/sm/kvstore.c).
 *
 * Each command's replies are checked against what Redis documents for it
 * (SET NX/XX/PX/KEEPTTL, DEL, INCR and friends, MSET) and what kvstore.h
 * promises for CAS; then the properties replication needs: expiry decided by
 * the time carried in commands, retries answered once, sessions bounded,
 * snapshots that round-trip and refuse corruption, applies that leave the
 * store untouched when memory runs out at any allocation, and two replicas
 * with different hash keys that agree with each other and with a naive model
 * over thousands of random commands. Run with a test name as the argument to
 * run only that test. */
/* For fenced_alloc.h: MAP_ANONYMOUS, malloc_usable_size. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/endian.h"
#include "core/prng.h"
#include "failing_alloc.h"
#include "fenced_alloc.h"
#include "sabha/error.h"
#include "sm/kvstore.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct kvstore_slice S(const char *s) {
  struct kvstore_slice slice = {(const uint8_t *)s, strlen(s)};
  return slice;
}

/* ---- A client: one session, numbering its commands ---------------------- */

#define CMD_BYTES_MAX 4096

struct client {
  struct kvstore *kv;
  uint64_t session;
  uint64_t seq;    /* of the last command built */
  uint64_t now_ms; /* stamped on the next command */
  uint8_t last[CMD_BYTES_MAX];
  size_t last_len;
};

/* Registers a session through the store, as sabhad does for each client
 * connection, and returns a client using it. */
static struct client client_open(struct kvstore *kv) {
  struct client c;
  memset(&c, 0, sizeof c);
  c.kv = kv;
  uint8_t cmd[64];
  size_t n = kvstore_encode_register(cmd, sizeof cmd, 0, 0);
  struct kvstore_result r;
  if (kvstore_apply(kv, cmd, n, &r) != 0 || r.kind != KVSTORE_REPLY_INT ||
      r.integer < 1) {
    fprintf(stderr, "REGISTER failed\n");
    exit(1);
  }
  c.session = (uint64_t)r.integer;
  return c;
}

static struct kvstore_hdr next_hdr(struct client *c) {
  struct kvstore_hdr h = {c->session, ++c->seq, c->now_ms};
  return h;
}

/* Applies the command just built into c->last. */
static struct kvstore_result apply_last(struct client *c) {
  struct kvstore_result r;
  int rc = kvstore_apply(c->kv, c->last, c->last_len, &r);
  if (rc != 0) {
    fprintf(stderr, "kvstore_apply: %s\n", sabha_strerror(rc));
    exit(1);
  }
  return r;
}

static struct kvstore_result resend(struct client *c) {
  return apply_last(c);
}

static struct kvstore_result set_px(struct client *c, const char *key,
                                    const char *value, uint32_t flags,
                                    int64_t px_ms) {
  struct kvstore_hdr h = next_hdr(c);
  c->last_len = kvstore_encode_set(c->last, sizeof c->last, &h, S(key),
                                   S(value), flags, px_ms);
  return apply_last(c);
}

static struct kvstore_result set(struct client *c, const char *key,
                                 const char *value) {
  return set_px(c, key, value, 0, 0);
}

static struct kvstore_result del(struct client *c, size_t n,
                                 const char *const *keys) {
  struct kvstore_slice slices[16];
  for (size_t i = 0; i < n; i++)
    slices[i] = S(keys[i]);
  struct kvstore_hdr h = next_hdr(c);
  c->last_len = kvstore_encode_del(c->last, sizeof c->last, &h, slices, n);
  return apply_last(c);
}

static struct kvstore_result incrby(struct client *c, const char *key,
                                    int64_t delta) {
  struct kvstore_hdr h = next_hdr(c);
  c->last_len =
      kvstore_encode_incrby(c->last, sizeof c->last, &h, S(key), delta);
  return apply_last(c);
}

static struct kvstore_result decrby(struct client *c, const char *key,
                                    int64_t delta) {
  struct kvstore_hdr h = next_hdr(c);
  c->last_len =
      kvstore_encode_decrby(c->last, sizeof c->last, &h, S(key), delta);
  return apply_last(c);
}

/* kv holds 2n strings: key, value, key, value... */
static struct kvstore_result mset(struct client *c, size_t n,
                                  const char *const *kv) {
  struct kvstore_slice slices[32];
  for (size_t i = 0; i < 2 * n; i++)
    slices[i] = S(kv[i]);
  struct kvstore_hdr h = next_hdr(c);
  c->last_len = kvstore_encode_mset(c->last, sizeof c->last, &h, slices, n);
  return apply_last(c);
}

static struct kvstore_result cas(struct client *c, const char *key,
                                 const char *expected, const char *new_value) {
  struct kvstore_slice e = expected ? S(expected) : S("");
  struct kvstore_hdr h = next_hdr(c);
  c->last_len = kvstore_encode_cas(c->last, sizeof c->last, &h, S(key),
                                   expected ? &e : NULL, S(new_value));
  return apply_last(c);
}

static bool is_ok(struct kvstore_result r) {
  return r.kind == KVSTORE_REPLY_OK && r.outcome == KVSTORE_APPLIED;
}

static bool is_int(struct kvstore_result r, int64_t v) {
  return r.kind == KVSTORE_REPLY_INT && r.integer == v;
}

static bool is_null(struct kvstore_result r) {
  return r.kind == KVSTORE_REPLY_NULL;
}

static bool is_error(struct kvstore_result r, const char *msg) {
  return r.kind == KVSTORE_REPLY_ERROR && strcmp(r.error, msg) == 0;
}

/* The value of a live key at the store's own clock, as a NUL-terminated
 * string in a static buffer; NULL when missing. */
static const char *get(const struct kvstore *kv, const char *key) {
  static char text[CMD_BYTES_MAX];
  const uint8_t *value;
  size_t len;
  if (!kvstore_get(kv, (const uint8_t *)key, strlen(key), 0, &value, &len))
    return NULL;
  memcpy(text, value, len);
  text[len] = '\0';
  return text;
}

static bool get_is(const struct kvstore *kv, const char *key,
                   const char *want) {
  const char *got = get(kv, key);
  if (want == NULL || got == NULL)
    return want == got;
  return strcmp(got, want) == 0;
}

static int64_t pttl(const struct kvstore *kv, const char *key,
                    uint64_t now_ms) {
  return kvstore_pttl(kv, (const uint8_t *)key, strlen(key), now_ms);
}

static struct kvstore *store_new(void) {
  struct kvstore *kv = NULL;
  if (kvstore_new(&kv, &kvstore_config_default) != 0)
    exit(1);
  return kv;
}

/* ---- Commands ---------------------------------------------------------- */

static void set_then_get_returns_the_value(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_ok(set(&c, "greeting", "hello")));
  CHECK(get_is(kv, "greeting", "hello"));
  CHECK(is_ok(set(&c, "greeting", "world")));
  CHECK(get_is(kv, "greeting", "world"));
  CHECK(get(kv, "missing") == NULL);
  CHECK(kvstore_dbsize(kv) == 1);
  /* The empty key and the empty value are ordinary strings. */
  CHECK(is_ok(set(&c, "", "")));
  CHECK(get_is(kv, "", ""));
  CHECK(kvstore_exists(kv, (const uint8_t *)"", 0, 0));
  /* Binary-safe: NUL bytes in keys and values. */
  struct kvstore_slice key = {(const uint8_t *)"a\0b", 3};
  struct kvstore_slice value = {(const uint8_t *)"\0\r\n\xff", 4};
  struct kvstore_hdr h = next_hdr(&c);
  c.last_len = kvstore_encode_set(c.last, sizeof c.last, &h, key, value, 0, 0);
  CHECK(is_ok(apply_last(&c)));
  const uint8_t *got;
  size_t got_len;
  CHECK(kvstore_get(kv, key.ptr, key.len, 0, &got, &got_len));
  CHECK(got_len == 4 && memcmp(got, value.ptr, 4) == 0);
  CHECK(!kvstore_exists(kv, (const uint8_t *)"a", 1, 0));
  CHECK(kvstore_dbsize(kv) == 3);
  kvstore_free(kv);
}

static void set_nx_and_xx_set_only_on_their_condition(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_null(set_px(&c, "k", "x", KVSTORE_SET_XX, 0)));
  CHECK(get(kv, "k") == NULL);
  CHECK(is_ok(set_px(&c, "k", "1", KVSTORE_SET_NX, 0)));
  CHECK(is_null(set_px(&c, "k", "2", KVSTORE_SET_NX, 0)));
  CHECK(get_is(kv, "k", "1"));
  CHECK(is_ok(set_px(&c, "k", "3", KVSTORE_SET_XX, 0)));
  CHECK(get_is(kv, "k", "3"));
  kvstore_free(kv);
}

static void set_option_errors_match_redis(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  struct kvstore_result r =
      set_px(&c, "k", "v", KVSTORE_SET_NX | KVSTORE_SET_XX, 0);
  CHECK(is_error(r, "ERR syntax error") && r.outcome == KVSTORE_APPLIED);
  CHECK(is_error(set_px(&c, "k", "v", KVSTORE_SET_PX | KVSTORE_SET_KEEPTTL, 5),
                 KVSTORE_ERR_SYNTAX));
  CHECK(is_error(set_px(&c, "k", "v", KVSTORE_SET_PX, 0),
                 "ERR invalid expire time in 'set' command"));
  CHECK(is_error(set_px(&c, "k", "v", KVSTORE_SET_PX, -5), KVSTORE_ERR_EXPIRE));
  /* An expiry past INT64_MAX milliseconds is refused too. */
  c.now_ms = 1000;
  CHECK(is_error(set_px(&c, "k", "v", KVSTORE_SET_PX, INT64_MAX),
                 KVSTORE_ERR_EXPIRE));
  /* Refused before the NX condition is looked at, as Redis does. */
  CHECK(is_ok(set(&c, "k", "v")));
  CHECK(is_error(set_px(&c, "k", "v", KVSTORE_SET_PX | KVSTORE_SET_NX, -1),
                 KVSTORE_ERR_EXPIRE));
  CHECK(kvstore_dbsize(kv) == 1 && get_is(kv, "k", "v"));
  kvstore_free(kv);
}

static void px_expiry_follows_the_time_carried_in_commands(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  c.now_ms = 1000;
  CHECK(is_ok(set_px(&c, "k", "v", KVSTORE_SET_PX, 100)));
  CHECK(kvstore_clock_ms(kv) == 1000);
  /* Reads at the store's clock, or at a later local clock. */
  CHECK(pttl(kv, "k", 0) == 100);
  CHECK(pttl(kv, "k", 1040) == 60);
  /* Alive at its expiry instant, gone one millisecond later (Redis). */
  CHECK(pttl(kv, "k", 1100) == 0);
  CHECK(kvstore_exists(kv, (const uint8_t *)"k", 1, 1100));
  CHECK(!kvstore_exists(kv, (const uint8_t *)"k", 1, 1101));
  CHECK(pttl(kv, "k", 1101) == -2);
  /* A read never changes the store; only applied time does. */
  CHECK(get_is(kv, "k", "v") && kvstore_dbsize(kv) == 1);
  /* A command stamped 1101 expires it for every replica. */
  c.now_ms = 1101;
  CHECK(is_ok(set(&c, "other", "x")));
  CHECK(get(kv, "k") == NULL);
  CHECK(kvstore_dbsize(kv) == 1); /* reclaimed, not merely hidden */
  /* An expired key counts as absent: NX succeeds, INCR starts at 0. */
  CHECK(is_ok(set_px(&c, "k2", "5", KVSTORE_SET_PX, 10)));
  c.now_ms = 1200;
  CHECK(is_ok(set_px(&c, "k2", "new", KVSTORE_SET_NX, 0)));
  CHECK(get_is(kv, "k2", "new") && pttl(kv, "k2", 0) == -1);
  kvstore_free(kv);
}

static void the_clock_never_runs_backwards(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  c.now_ms = 5000;
  CHECK(is_ok(set(&c, "a", "1")));
  /* A new leader whose clock lags: the store keeps the later time, and
   * expiry counts from it. */
  c.now_ms = 4000;
  CHECK(is_ok(set_px(&c, "k", "v", KVSTORE_SET_PX, 100)));
  CHECK(kvstore_clock_ms(kv) == 5000);
  CHECK(pttl(kv, "k", 0) == 100);
  c.now_ms = 5100;
  CHECK(is_ok(set(&c, "a", "2")));
  CHECK(get_is(kv, "k", "v"));
  c.now_ms = 5101;
  CHECK(is_ok(set(&c, "a", "3")));
  CHECK(get(kv, "k") == NULL);
  kvstore_free(kv);
}

static void set_clears_the_ttl_unless_keepttl(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  c.now_ms = 10;
  CHECK(is_ok(set_px(&c, "k", "a", KVSTORE_SET_PX, 1000)));
  CHECK(is_ok(set_px(&c, "k", "b", KVSTORE_SET_KEEPTTL, 0)));
  CHECK(pttl(kv, "k", 0) == 1000 && get_is(kv, "k", "b"));
  c.now_ms = 500;
  CHECK(is_ok(set_px(&c, "k", "c", KVSTORE_SET_PX, 2000)));
  CHECK(pttl(kv, "k", 0) == 2000);
  CHECK(is_ok(set(&c, "k", "d")));
  CHECK(pttl(kv, "k", 0) == -1);
  /* KEEPTTL on a new key: no expiry. */
  CHECK(is_ok(set_px(&c, "n", "x", KVSTORE_SET_KEEPTTL, 0)));
  CHECK(pttl(kv, "n", 0) == -1);
  kvstore_free(kv);
}

static void del_counts_the_keys_it_removed(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_ok(set(&c, "a", "1")) && is_ok(set(&c, "b", "2")));
  static const char *const abc[] = {"a", "b", "c"};
  CHECK(is_int(del(&c, 3, abc), 2));
  CHECK(get(kv, "a") == NULL && get(kv, "b") == NULL);
  CHECK(kvstore_dbsize(kv) == 0);
  /* A key named twice is removed once. */
  CHECK(is_ok(set(&c, "a", "1")));
  static const char *const aa[] = {"a", "a"};
  CHECK(is_int(del(&c, 2, aa), 1));
  /* An expired key is not counted. */
  CHECK(is_ok(set_px(&c, "e", "1", KVSTORE_SET_PX, 5)));
  c.now_ms = 6;
  static const char *const e[] = {"e"};
  CHECK(is_int(del(&c, 1, e), 0));
  kvstore_free(kv);
}

static void incr_family_follows_redis(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_int(incrby(&c, "n", 1), 1)); /* a missing key counts as 0 */
  CHECK(get_is(kv, "n", "1"));
  CHECK(is_int(incrby(&c, "n", 10), 11));
  CHECK(is_int(decrby(&c, "n", 1), 10));
  CHECK(is_int(decrby(&c, "n", 15), -5));
  CHECK(is_int(incrby(&c, "n", -5), -10));
  CHECK(get_is(kv, "n", "-10"));
  CHECK(is_int(decrby(&c, "n", -10), 0));
  CHECK(get_is(kv, "n", "0"));

  /* Only canonical integers count, as Redis's string-to-integer rule. */
  static const char *const not_integers[] = {"abc",
                                             "",
                                             " 1",
                                             "1 ",
                                             "+1",
                                             "01",
                                             "-0",
                                             "1.5",
                                             "0x10",
                                             "1e3",
                                             "--1",
                                             "-",
                                             "9223372036854775808",
                                             "-9223372036854775809",
                                             "99999999999999999999"};
  for (size_t i = 0; i < N(not_integers); i++) {
    CHECK(is_ok(set(&c, "s", not_integers[i])));
    CHECK(is_error(incrby(&c, "s", 1),
                   "ERR value is not an integer or out of range"));
    CHECK(get_is(kv, "s", not_integers[i]));
  }
  CHECK(is_ok(set(&c, "max", "9223372036854775807")));
  CHECK(is_error(incrby(&c, "max", 1),
                 "ERR increment or decrement would overflow"));
  CHECK(is_int(decrby(&c, "max", INT64_MAX), 0));
  CHECK(is_ok(set(&c, "min", "-9223372036854775808")));
  CHECK(is_error(decrby(&c, "min", 1), KVSTORE_ERR_OVERFLOW));
  CHECK(is_int(incrby(&c, "min", 0), INT64_MIN));
  CHECK(is_error(decrby(&c, "x", INT64_MIN), "ERR decrement would overflow"));
  CHECK(get(kv, "x") == NULL);
  CHECK(is_int(incrby(&c, "x", INT64_MIN), INT64_MIN));
  CHECK(get_is(kv, "x", "-9223372036854775808"));
  /* INCR keeps the key's expiry. */
  CHECK(is_ok(set_px(&c, "t", "7", KVSTORE_SET_PX, 50)));
  CHECK(is_int(incrby(&c, "t", 1), 8));
  CHECK(pttl(kv, "t", 0) == 50);
  kvstore_free(kv);
}

struct incr_call {
  struct client *c;
  int n_answered;
};

/* Three INCRs of "big", each answered that it is no integer. */
static void incr_big_three_times(void *ctx) {
  struct incr_call *call = ctx;
  for (; call->n_answered < 3; call->n_answered++)
    CHECK(is_error(incrby(call->c, "big", 1), KVSTORE_ERR_NOT_INTEGER));
}

/* INCR on a value longer than any int64's text answers that it is not an
 * integer without reading it: the value's pages past its first 8 KiB are
 * made unreadable, and three INCRs touch none of them. (Every INCR parsed
 * the whole value: 24 ms of every replica's apply for an 8 MiB one, from
 * a command of 20 bytes.) */
static void incr_does_not_read_a_long_value(void) {
  enum { VALUE_BYTES = 4 << 20, READABLE_BYTES = 8 << 10 };
  struct fenced_alloc f = {NULL, 0};
  struct kvstore_config cfg = kvstore_config_default;
  cfg.alloc = fenced_allocator(&f);
  struct kvstore *kv = NULL;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c = client_open(kv);
  char *value = malloc(VALUE_BYTES + 1);
  uint8_t *cmd = malloc(VALUE_BYTES + 256);
  CHECK(value != NULL && cmd != NULL);
  memset(value, '7', VALUE_BYTES);
  value[VALUE_BYTES] = '\0';
  struct kvstore_hdr h = next_hdr(&c);
  size_t len =
      kvstore_encode_set(cmd, VALUE_BYTES + 256, &h, S("big"), S(value), 0, 0);
  struct kvstore_result r;
  CHECK(kvstore_apply(kv, cmd, len, &r) == 0 && is_ok(r));
  CHECK(f.block != NULL && f.map_bytes > VALUE_BYTES); /* the entry */
  CHECK(fenced_alloc_fence(&f, READABLE_BYTES, true));
  struct incr_call call = {&c, 0};
  bool faulted = fenced_alloc_faults(incr_big_three_times, &call);
  CHECK(fenced_alloc_fence(&f, READABLE_BYTES, false));
  CHECK(!faulted && call.n_answered == 3); /* no INCR read past the fence */
  const uint8_t *got;
  size_t got_len;
  CHECK(kvstore_get(kv, (const uint8_t *)"big", 3, 0, &got, &got_len) &&
        got_len == VALUE_BYTES && memcmp(got, value, VALUE_BYTES) == 0);
  free(cmd);
  free(value);
  kvstore_free(kv);
  CHECK(f.block == NULL);
}

static void mset_sets_every_pair_and_clears_ttls(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_ok(set_px(&c, "a", "old", KVSTORE_SET_PX, 100)));
  static const char *const pairs[] = {"a", "1", "b", "2", "a", "3"};
  CHECK(is_ok(mset(&c, 3, pairs)));
  CHECK(get_is(kv, "a", "3") && get_is(kv, "b", "2")); /* the last wins */
  CHECK(pttl(kv, "a", 0) == -1);
  CHECK(kvstore_dbsize(kv) == 2);
  kvstore_free(kv);
}

static void cas_swaps_only_on_a_match(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_int(cas(&c, "k", "x", "y"), 0)); /* missing: no match */
  CHECK(get(kv, "k") == NULL);
  CHECK(is_int(cas(&c, "k", NULL, "v1"), 1)); /* expected absent */
  CHECK(is_int(cas(&c, "k", NULL, "v2"), 0));
  CHECK(get_is(kv, "k", "v1"));
  CHECK(is_int(cas(&c, "k", "v1", "v2"), 1));
  CHECK(is_int(cas(&c, "k", "v1", "v3"), 0));
  CHECK(is_int(cas(&c, "k", "v", "v3"), 0)); /* a prefix is no match */
  CHECK(get_is(kv, "k", "v2"));
  /* A swap clears the expiry; an expired key counts as absent. */
  c.now_ms = 100;
  CHECK(is_ok(set_px(&c, "t", "a", KVSTORE_SET_PX, 10)));
  CHECK(is_int(cas(&c, "t", "a", "b"), 1));
  CHECK(pttl(kv, "t", 0) == -1);
  CHECK(is_ok(set_px(&c, "u", "a", KVSTORE_SET_PX, 10)));
  c.now_ms = 111;
  CHECK(is_int(cas(&c, "u", "a", "b"), 0));
  CHECK(is_int(cas(&c, "u", NULL, "b"), 1));
  kvstore_free(kv);
}

static void bounds_are_enforced_with_error_replies(void) {
  struct kvstore_config cfg = kvstore_config_default;
  cfg.key_bytes_max = 4;
  cfg.value_bytes_max = 24;
  cfg.keys_max = 3;
  cfg.data_bytes_max = 40;
  struct kvstore *kv;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c = client_open(kv);
  CHECK(is_error(set(&c, "kkkkk", "v"), KVSTORE_ERR_TOO_BIG));
  CHECK(is_error(set(&c, "k", "0123456789012345678901234"),
                 "ERR string exceeds maximum allowed size"));
  CHECK(is_error(incrby(&c, "kkkkk", 1), KVSTORE_ERR_TOO_BIG));
  static const char *const big[] = {"a", "1", "b", "0123456789012345678901234"};
  CHECK(is_error(mset(&c, 2, big), KVSTORE_ERR_TOO_BIG));
  CHECK(get(kv, "a") == NULL); /* all or nothing */
  CHECK(is_ok(set(&c, "a", "1")) && is_ok(set(&c, "b", "2")));
  CHECK(is_ok(set(&c, "c", "3")));
  CHECK(is_error(set(&c, "d", "4"), KVSTORE_ERR_FULL));
  CHECK(is_error(incrby(&c, "d", 1), KVSTORE_ERR_FULL));
  CHECK(is_error(cas(&c, "d", NULL, "x"), KVSTORE_ERR_FULL));
  CHECK(is_ok(set(&c, "c", "33"))); /* overwriting needs no new key */
  CHECK(is_int(incrby(&c, "c", 1), 34));
  /* MSET is refused unless every pair could be a new key. */
  static const char *const over[] = {"a", "x"};
  CHECK(is_error(mset(&c, 1, over), KVSTORE_ERR_FULL));
  static const char *const ab[] = {"a", "b"};
  CHECK(is_int(del(&c, 2, ab), 2));
  CHECK(is_ok(mset(&c, 1, over)));
  /* The byte bound: a=x (2 bytes) and c with 24 (25) make 27 of 40; b
   * with 24 more would make 52. */
  CHECK(is_ok(set(&c, "c", "012345678901234567890123")));
  CHECK(is_error(set(&c, "b", "012345678901234567890123"), KVSTORE_ERR_FULL));
  CHECK(is_ok(set(&c, "b", "0123456")));
  CHECK(kvstore_dbsize(kv) == 3);
  kvstore_free(kv);
  /* Configs outside the bounds are refused. */
  cfg = kvstore_config_default;
  cfg.value_bytes_max = 19;
  CHECK(kvstore_new(&kv, &cfg) == SABHA_EINVAL);
  cfg = kvstore_config_default;
  cfg.sessions_max = 0;
  CHECK(kvstore_new(&kv, &cfg) == SABHA_EINVAL);
}

/* ---- Sessions ---------------------------------------------------------- */

static void a_retry_gets_the_saved_reply_without_reapplying(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_int(incrby(&c, "n", 1), 1));
  struct kvstore_result r = resend(&c);
  CHECK(is_int(r, 1) && r.outcome == KVSTORE_DUPLICATE);
  CHECK(get_is(kv, "n", "1"));
  CHECK(is_int(incrby(&c, "n", 1), 2));
  /* Errors and nulls are saved too. */
  CHECK(is_ok(set(&c, "s", "abc")));
  CHECK(is_error(incrby(&c, "s", 1), KVSTORE_ERR_NOT_INTEGER));
  r = resend(&c);
  CHECK(is_error(r, KVSTORE_ERR_NOT_INTEGER) && r.outcome == KVSTORE_DUPLICATE);
  CHECK(is_null(set_px(&c, "s", "x", KVSTORE_SET_NX, 0)));
  CHECK(is_null(resend(&c)));
  CHECK(is_ok(set(&c, "s", "v")));
  /* Even a retry after the state changed gets the old reply. */
  struct client other = client_open(kv);
  CHECK(is_ok(set(&other, "s", "w")));
  r = resend(&c);
  CHECK(r.kind == KVSTORE_REPLY_OK && r.outcome == KVSTORE_DUPLICATE);
  CHECK(get_is(kv, "s", "w"));
  uint64_t last_seq = 0;
  CHECK(kvstore_session(kv, c.session, &last_seq) && last_seq == c.seq);
  kvstore_free(kv);
}

static void stale_gapped_and_unknown_requests_are_refused(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_int(incrby(&c, "n", 1), 1));
  uint8_t first[CMD_BYTES_MAX];
  size_t first_len = c.last_len;
  memcpy(first, c.last, first_len);
  CHECK(is_int(incrby(&c, "n", 1), 2));
  /* Seq 1 again, after seq 2: its reply is gone; not applied. */
  struct kvstore_result r;
  CHECK(kvstore_apply(kv, first, first_len, &r) == 0);
  CHECK(is_error(r, KVSTORE_ERR_STALE) && r.outcome == KVSTORE_REFUSED);
  /* Seq 4 while 3 is missing: not applied. */
  c.seq++;
  r = incrby(&c, "n", 1);
  CHECK(is_error(r, KVSTORE_ERR_ORDER) && r.outcome == KVSTORE_REFUSED);
  CHECK(get_is(kv, "n", "2"));
  /* A new session must start at 1. */
  struct client fresh = client_open(kv);
  fresh.seq = 1;
  r = incrby(&fresh, "n", 1);
  CHECK(is_error(r, KVSTORE_ERR_ORDER) && r.outcome == KVSTORE_REFUSED);
  /* A session id the store never assigned. */
  struct client stranger = client_open(kv);
  stranger.session = 99;
  r = incrby(&stranger, "n", 1);
  CHECK(is_error(r, "ERR unknown session") && r.outcome == KVSTORE_REFUSED);
  CHECK(get_is(kv, "n", "2"));
  CHECK(!kvstore_session(kv, 99, &(uint64_t){0}));
  /* Registration hands out ids in order: 1, 2, 3 here. */
  CHECK(c.session == 1 && fresh.session == 2 && stranger.seq == 1);
  uint64_t seq = 99;
  CHECK(kvstore_session(kv, 3, &seq) && seq == 0);
  kvstore_free(kv);
}

static void sessions_beyond_the_bound_evict_the_least_recent(void) {
  struct kvstore_config cfg = kvstore_config_default;
  cfg.sessions_max = 3;
  struct kvstore *kv;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c1 = client_open(kv), c2 = client_open(kv),
                c3 = client_open(kv);
  CHECK(is_int(incrby(&c1, "n", 1), 1));
  CHECK(is_int(incrby(&c2, "n", 1), 2));
  CHECK(is_int(incrby(&c3, "n", 1), 3));
  /* c1 retries: now c2 is the least recently used, and a fourth session
   * evicts it. */
  CHECK(resend(&c1).outcome == KVSTORE_DUPLICATE);
  struct client c4 = client_open(kv);
  CHECK(is_int(incrby(&c4, "n", 1), 4));
  CHECK(kvstore_n_sessions(kv) == 3);
  uint64_t seq;
  CHECK(!kvstore_session(kv, c2.session, &seq));
  CHECK(kvstore_session(kv, c1.session, &seq));
  CHECK(kvstore_session(kv, c3.session, &seq));
  /* c2 resends its first command, whose reply it never saw: the store
   * cannot tell whether it applied, so it refuses rather than apply it
   * twice; so too every later command of c2. */
  struct kvstore_result r = resend(&c2);
  CHECK(is_error(r, KVSTORE_ERR_SESSION) && r.outcome == KVSTORE_REFUSED);
  CHECK(is_error(incrby(&c2, "n", 1), KVSTORE_ERR_SESSION));
  CHECK(get_is(kv, "n", "4"));
  /* A fresh registration works as ever. */
  struct client c5 = client_open(kv);
  CHECK(c5.session == 5 && is_int(incrby(&c5, "n", 1), 5));
  kvstore_free(kv);
}

/* ---- Malformed commands ------------------------------------------------ */

/* A byte-exact copy of the store's state as seen from outside: the snapshot
 * of a restored copy would do, but snapshot bytes depend on table layout;
 * this compares what clients can observe. */
static bool same_state(const struct kvstore *a, const struct kvstore *b,
                       const char *const *keys, size_t n_keys) {
  if (kvstore_dbsize(a) != kvstore_dbsize(b) ||
      kvstore_clock_ms(a) != kvstore_clock_ms(b) ||
      kvstore_n_sessions(a) != kvstore_n_sessions(b) ||
      kvstore_snapshot_size(a) != kvstore_snapshot_size(b))
    return false;
  for (size_t i = 0; i < n_keys; i++) {
    const uint8_t *va, *vb;
    size_t la, lb;
    const uint8_t *k = (const uint8_t *)keys[i];
    size_t kl = strlen(keys[i]);
    bool fa = kvstore_get(a, k, kl, 0, &va, &la);
    bool fb = kvstore_get(b, k, kl, 0, &vb, &lb);
    if (fa != fb || (fa && (la != lb || memcmp(va, vb, la) != 0)))
      return false;
    if (kvstore_pttl(a, k, kl, 0) != kvstore_pttl(b, k, kl, 0))
      return false;
  }
  return true;
}

static void malformed_commands_are_refused_and_change_nothing(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  CHECK(is_ok(set(&c, "k", "v")));
  size_t snap_size = kvstore_snapshot_size(kv);
  uint64_t seq_before;
  CHECK(kvstore_session(kv, c.session, &seq_before));

  uint8_t cmd[CMD_BYTES_MAX];
  struct kvstore_hdr h = {1, 2, 50};
  static const struct kvstore_slice pair[] = {{(const uint8_t *)"a", 1},
                                              {(const uint8_t *)"b", 1}};
  size_t lens[7];
  uint8_t cmds[7][128];
  lens[0] = kvstore_encode_set(cmds[0], 128, &h, S("key"), S("value"),
                               KVSTORE_SET_PX, 10);
  lens[1] = kvstore_encode_del(cmds[1], 128, &h, pair, 2);
  lens[2] = kvstore_encode_incrby(cmds[2], 128, &h, S("key"), 3);
  lens[3] = kvstore_encode_mset(cmds[3], 128, &h, pair, 1);
  struct kvstore_slice e = S("x");
  lens[4] = kvstore_encode_cas(cmds[4], 128, &h, S("key"), &e, S("y"));
  lens[5] = kvstore_encode_decrby(cmds[5], 128, &h, S("key"), 3);
  lens[6] =
      kvstore_encode_register(cmds[6], 128, 50, UINT64_C(0x0300000000000007));
  for (size_t i = 0; i < N(lens); i++) {
    /* Every truncation, and one extra byte, is malformed. */
    for (size_t len = 0; len <= lens[i]; len++) {
      size_t n = len < lens[i] ? len : lens[i] + 1;
      memcpy(cmd, cmds[i], lens[i]);
      cmd[lens[i]] = 0;
      struct kvstore_result r;
      CHECK(kvstore_apply(kv, cmd, n, &r) == SABHA_ECORRUPT);
      CHECK(is_error(r, KVSTORE_ERR_MALFORMED) && r.outcome == KVSTORE_REFUSED);
    }
  }
  /* Wrong version, unknown op, seq 0, DEL of no keys, a CAS expecting
   * absence with an expected value, PX bits without PX. */
  uint8_t bad[128];
  struct kvstore_result r;
  memcpy(bad, cmds[0], lens[0]);
  bad[0] = 2;
  CHECK(kvstore_apply(kv, bad, lens[0], &r) == SABHA_ECORRUPT);
  memcpy(bad, cmds[0], lens[0]);
  bad[1] = 7;
  CHECK(kvstore_apply(kv, bad, lens[0], &r) == SABHA_ECORRUPT);
  size_t n = kvstore_encode_set(NULL, 0, &h, S("k"), S("v"), 0, 0);
  CHECK(n == KVSTORE_CMD_HEADER_BYTES + 1 + 8 + 4 + 1 + 4 + 1);
  n = kvstore_encode_set(bad, sizeof bad, &h, S("k"), S("v"), 0, 0);
  memset(bad + 10, 0, 8); /* seq 0 */
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  n = kvstore_encode_set(bad, sizeof bad, &h, S("k"), S("v"), 0, 0);
  /* (Every bit of SET's flag byte has a meaning since PXAT took 128: an
   * unknown flag cannot be written in it.) */
  CHECK(KVSTORE_SET_FLAGS == 255u);
  bad[KVSTORE_CMD_HEADER_BYTES + 1] = 1; /* px_ms without PX or PXAT */
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  n = kvstore_encode_del(bad, sizeof bad, &h, pair, 1);
  memset(bad + KVSTORE_CMD_HEADER_BYTES, 0, 4); /* n = 0 */
  CHECK(kvstore_apply(kv, bad, KVSTORE_CMD_HEADER_BYTES + 4, &r) ==
        SABHA_ECORRUPT);
  n = kvstore_encode_set(bad, sizeof bad, &h, S("k"), S("v"), 0, 0);
  memset(bad + 2, 0, 8); /* session 0 */
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  n = kvstore_encode_clock(bad, sizeof bad, 50);
  bad[10] = 1; /* a CLOCK with a seq */
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  n = kvstore_encode_register(bad, sizeof bad, 50, 0);
  bad[2] = 1; /* a REGISTER with a session */
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  n = kvstore_encode_cas(bad, sizeof bad, &h, S("k"), &e, S("y"));
  bad[KVSTORE_CMD_HEADER_BYTES] = 1; /* absent, yet an expected value */
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  /* A DEL claiming 2^32 - 1 keys in a few bytes. */
  n = kvstore_encode_del(bad, sizeof bad, &h, pair, 1);
  memset(bad + KVSTORE_CMD_HEADER_BYTES, 0xff, 4);
  CHECK(kvstore_apply(kv, bad, n, &r) == SABHA_ECORRUPT);
  CHECK(kvstore_apply(kv, NULL, 0, &r) == SABHA_ECORRUPT);

  /* Nothing changed: same key, same session, same clock. */
  uint64_t seq_after;
  CHECK(kvstore_session(kv, c.session, &seq_after) && seq_after == seq_before);
  CHECK(kvstore_clock_ms(kv) == 0 && kvstore_dbsize(kv) == 1);
  CHECK(kvstore_n_sessions(kv) == 1);
  CHECK(kvstore_snapshot_size(kv) == snap_size && get_is(kv, "k", "v"));
  kvstore_free(kv);
}

static void encoders_write_only_when_the_command_fits(void) {
  struct kvstore_hdr h = {3, 4, 5};
  uint8_t buf[64];
  memset(buf, 0xAA, sizeof buf);
  size_t n = kvstore_encode_set(buf, 10, &h, S("key"), S("value"), 0, 0);
  CHECK(n > 10 && buf[0] == 0xAA); /* nothing written */
  CHECK(kvstore_encode_set(buf, n, &h, S("key"), S("value"), 0, 0) == n);
  CHECK(buf[0] == KVSTORE_FORMAT_VERSION && buf[1] == KVSTORE_OP_SET);
  CHECK(buf[n] == 0xAA);
  struct kvstore_hdr got;
  CHECK(kvstore_decode_hdr(buf, n, &got) == 0);
  CHECK(got.session == 3 && got.seq == 4 && got.now_ms == 5);
  CHECK(kvstore_decode_hdr(buf, KVSTORE_CMD_HEADER_BYTES - 1, &got) ==
        SABHA_ECORRUPT);
  buf[0] = 9;
  CHECK(kvstore_decode_hdr(buf, n, &got) == SABHA_ECORRUPT);
}

/* ---- Snapshots --------------------------------------------------------- */

static uint32_t crc32c_bitwise(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

/* Fixes the trailing checksum after a deliberate edit. */
static void reseal(uint8_t *snap, size_t len) {
  le_put_u32(snap + len - 4, crc32c_bitwise(snap, len - 4));
}

static uint8_t *snapshot_of(const struct kvstore *kv, size_t *len) {
  *len = kvstore_snapshot_size(kv);
  uint8_t *buf = malloc(*len);
  if (buf == NULL)
    exit(1);
  if (kvstore_snapshot(kv, buf, *len) != *len)
    exit(1);
  return buf;
}

static const char *const state_keys[] = {"a", "b", "n", "t", "gone", "s"};

/* A store with plain keys, an expiring key, an expired one not yet
 * reclaimed, and sessions with saved replies. */
static struct kvstore *sample_store(struct client *c1, struct client *c2) {
  struct kvstore *kv = store_new();
  *c1 = client_open(kv);
  *c2 = client_open(kv);
  c1->now_ms = 1000;
  c2->now_ms = 1000;
  set(c1, "a", "alpha");
  set(c2, "b", "");
  incrby(c1, "n", 41);
  set_px(c2, "t", "temp", KVSTORE_SET_PX, 5000);
  set_px(c1, "gone", "x", KVSTORE_SET_PX, 1);
  set(c2, "s", "abc");
  incrby(c2, "s", 1); /* an error reply, saved */
  return kv;
}

static void snapshot_round_trip_keeps_keys_expiry_and_sessions(void) {
  struct client c1, c2;
  struct kvstore *kv = sample_store(&c1, &c2);
  size_t len;
  uint8_t *snap = snapshot_of(kv, &len);

  /* Another replica, with another hash key, restores it. */
  struct kvstore_config cfg = kvstore_config_default;
  cfg.hash_key[0] = 12345;
  struct kvstore *copy;
  CHECK(kvstore_new(&copy, &cfg) == 0);
  struct client junk = client_open(copy);
  set(&junk, "junk", "to be replaced");
  CHECK(kvstore_restore(copy, snap, len) == 0);
  CHECK(same_state(kv, copy, state_keys, N(state_keys)));
  CHECK(get(copy, "junk") == NULL);
  CHECK(get_is(copy, "n", "41") && pttl(copy, "t", 0) == 5000);
  CHECK(kvstore_clock_ms(copy) == 1000);

  /* The dedup table came along: retries on the copy get saved replies. */
  c1.kv = copy;
  c2.kv = copy;
  struct kvstore_result r = resend(&c2);
  CHECK(r.outcome == KVSTORE_DUPLICATE && is_error(r, KVSTORE_ERR_NOT_INTEGER));
  CHECK(is_int(incrby(&c1, "n", 1), 42));
  CHECK(resend(&c1).outcome == KVSTORE_DUPLICATE);
  CHECK(get_is(copy, "n", "42"));
  /* And time: the key expiring at 1001 goes at 1002. */
  c1.now_ms = 1002;
  CHECK(is_ok(set(&c1, "a", "again")));
  CHECK(get(copy, "gone") == NULL && kvstore_dbsize(copy) == 5);

  /* A snapshot of the copy restores to the same state again. */
  size_t len2;
  uint8_t *snap2 = snapshot_of(copy, &len2);
  struct kvstore *third = store_new();
  CHECK(kvstore_restore(third, snap2, len2) == 0);
  CHECK(same_state(copy, third, state_keys, N(state_keys)));
  free(snap);
  free(snap2);
  kvstore_free(kv);
  kvstore_free(copy);
  kvstore_free(third);
}

static void snapshot_keeps_the_session_eviction_order(void) {
  struct kvstore_config cfg = kvstore_config_default;
  cfg.sessions_max = 2;
  struct kvstore *kv;
  CHECK(kvstore_new(&kv, &cfg) == 0);
  struct client c1 = client_open(kv), c2 = client_open(kv);
  incrby(&c1, "n", 1);
  incrby(&c2, "n", 1);
  resend(&c1); /* c2 is now the least recently used */
  size_t len;
  uint8_t *snap = snapshot_of(kv, &len);
  struct kvstore *copy;
  CHECK(kvstore_new(&copy, &cfg) == 0);
  CHECK(kvstore_restore(copy, snap, len) == 0);
  struct client c3 = client_open(copy);
  incrby(&c3, "n", 1);
  uint64_t seq;
  CHECK(kvstore_session(copy, 1, &seq) && !kvstore_session(copy, 2, &seq));
  free(snap);
  kvstore_free(kv);
  kvstore_free(copy);
}

/* Restores that must fail, and leave the store as it was. */
static void expect_corrupt(struct kvstore *kv, const uint8_t *snap, size_t len,
                           const struct kvstore *reference) {
  CHECK(kvstore_restore(kv, snap, len) == SABHA_ECORRUPT);
  CHECK(same_state(kv, reference, state_keys, N(state_keys)));
}

static void corrupt_snapshots_are_refused_and_change_nothing(void) {
  struct client c1, c2;
  struct kvstore *kv = sample_store(&c1, &c2);
  size_t len;
  uint8_t *snap = snapshot_of(kv, &len);
  uint8_t *bad = malloc(len + 16);
  CHECK(bad != NULL);

  /* The victim holds other data, which must survive every refusal. */
  struct kvstore *victim = store_new();
  struct kvstore *reference = store_new();
  struct client v = client_open(victim), r = client_open(reference);
  set(&v, "a", "mine");
  set(&r, "a", "mine");

  /* Every single-byte change, and every truncation. */
  for (size_t i = 0; i < len; i++) {
    memcpy(bad, snap, len);
    bad[i] ^= 0x01;
    expect_corrupt(victim, bad, len, reference);
    bad[i] ^= 0x81;
    expect_corrupt(victim, bad, len, reference);
    expect_corrupt(victim, snap, i, reference);
  }
  expect_corrupt(victim, NULL, 0, reference);

  /* Well-sealed but wrong inside: the checks behind the checksum. */
  memcpy(bad, snap, len);
  bad[4] = 3; /* version */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  memcpy(bad, snap, len);
  bad[0] = 'X'; /* magic */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  memcpy(bad, snap, len);
  memset(bad + 21, 0xff, 8); /* n_keys: 2^64 - 1 */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  memcpy(bad, snap, len);
  bad[21] = (uint8_t)(bad[21] + 1); /* one key more than present */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  memcpy(bad, snap, len);
  le_put_u32(bad + 29, 0xffffffffu); /* n_sessions */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  memcpy(bad, snap, len);
  memset(bad + 13, 0, 8); /* next_session 0 */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  memcpy(bad, snap, len);
  bad[13] = 2; /* next_session 2, yet session 2 exists */
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  /* Trailing bytes before the checksum. */
  memcpy(bad, snap, len - 4);
  memset(bad + len - 4, 0, 4);
  reseal(bad, len + 4);
  expect_corrupt(victim, bad, len + 4, reference);
  /* A saved reply of an unknown kind: the last session's kind byte. */
  memcpy(bad, snap, len);
  bad[len - 4 - 10] = 9;
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);
  /* A session whose last seq is 0. */
  memcpy(bad, snap, len);
  memset(bad + len - 4 - 18, 0, 8);
  reseal(bad, len);
  expect_corrupt(victim, bad, len, reference);

  /* Valid, but more than this store's config allows. */
  struct kvstore_config small = kvstore_config_default;
  small.value_bytes_max = 20;
  small.key_bytes_max = 1;
  struct kvstore *tight;
  CHECK(kvstore_new(&tight, &small) == 0);
  CHECK(kvstore_restore(tight, snap, len) == SABHA_ECORRUPT);
  CHECK(kvstore_dbsize(tight) == 0);
  small = kvstore_config_default;
  small.sessions_max = 1;
  kvstore_free(tight);
  CHECK(kvstore_new(&tight, &small) == 0);
  CHECK(kvstore_restore(tight, snap, len) == SABHA_ECORRUPT);
  kvstore_free(tight);

  /* After all that, the untouched snapshot still restores. */
  CHECK(kvstore_restore(victim, snap, len) == 0);
  CHECK(same_state(victim, kv, state_keys, N(state_keys)));
  free(bad);
  free(snap);
  kvstore_free(kv);
  kvstore_free(victim);
  kvstore_free(reference);
}

static void duplicate_keys_in_a_snapshot_are_refused(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  set(&c, "k", "1");
  size_t len;
  uint8_t *snap = snapshot_of(kv, &len);
  /* Header 33 + 28 bytes, no leases, one key record of 32 + 1 + 1 bytes,
   * one session of 26, the checksum: insert a second copy of the key
   * record. */
  enum { H = 33 + 28, K = 34 };
  CHECK(len == H + K + 26 + 4);
  uint8_t *twice = malloc(len + K);
  CHECK(twice != NULL);
  memcpy(twice, snap, H + K);
  memcpy(twice + H + K, snap + H, K);
  memcpy(twice + H + 2 * K, snap + H + K, 26 + 4);
  twice[21] = 2;
  reseal(twice, len + K);
  struct kvstore *other = store_new();
  CHECK(kvstore_restore(other, twice, len + K) == SABHA_ECORRUPT);
  /* The same bytes with the second key renamed restore fine. */
  twice[H + K + 32] = 'j';
  reseal(twice, len + K);
  CHECK(kvstore_restore(other, twice, len + K) == 0);
  CHECK(get_is(other, "k", "1") && get_is(other, "j", "1"));
  free(snap);
  free(twice);
  kvstore_free(kv);
  kvstore_free(other);
}

/* ---- Out of memory ----------------------------------------------------- */

/* Applies `cmd` to copies of one state, failing the 1st, 2nd, ...
 * allocation until an apply gets through: each failed apply must leave the
 * state as it was and the store usable, and the one that succeeds must give
 * the reply a store without failures gives. */
static void oom_at_every_allocation_leaves_the_store_unchanged(void) {
  struct failing_alloc f = {0, 0};
  struct kvstore_config plain_cfg = kvstore_config_default;
  plain_cfg.sessions_max = 2;
  struct kvstore_config cfg = plain_cfg;
  cfg.alloc = failing_allocator(&f);

  /* The commands, built once against a plain store. */
  struct kvstore *plain = store_new();
  struct client p1 = client_open(plain);
  set(&p1, "a", "1");
  set_px(&p1, "t", "v", KVSTORE_SET_PX, 100);
  struct client p2 = client_open(plain);
  incrby(&p2, "n", 5);
  /* Fill the key table and the expiry heap to the brim, so that one more
   * key must grow both: 24 keys fill a table of 32 slots, 16 expiring ones
   * a heap of 16. */
  for (int i = 0; i < 21; i++) {
    char key[16];
    snprintf(key, sizeof key, "f%d", i);
    set_px(&p2, key, "filler", i < 15 ? KVSTORE_SET_PX : 0,
           i < 15 ? 100000 : 0);
  }
  CHECK(kvstore_dbsize(plain) == 24);
  size_t base_len;
  uint8_t *base = snapshot_of(plain, &base_len);

  uint8_t cmds[10][256];
  size_t lens[10];
  struct kvstore_hdr h1 = {p1.session, p1.seq + 1, 50},
                     h2 = {p2.session, p2.seq + 1, 60};
  static const struct kvstore_slice pairs[] = {
      {(const uint8_t *)"a", 1}, {(const uint8_t *)"2", 1},
      {(const uint8_t *)"x", 1}, {(const uint8_t *)"y", 1},
      {(const uint8_t *)"z", 1}, {(const uint8_t *)"w", 1}};
  struct kvstore_slice e = S("1");
  lens[0] = kvstore_encode_set(cmds[0], 256, &h1, S("new"), S("v"),
                               KVSTORE_SET_PX, 10);
  lens[1] = kvstore_encode_set(cmds[1], 256, &h1, S("a"), S("over"), 0, 0);
  lens[2] = kvstore_encode_incrby(cmds[2], 256, &h1, S("n"), 1);
  lens[3] = kvstore_encode_mset(cmds[3], 256, &h1, pairs, 3);
  lens[4] = kvstore_encode_cas(cmds[4], 256, &h1, S("a"), &e, S("3"));
  lens[5] = kvstore_encode_del(cmds[5], 256, &h1, pairs, 1);
  /* A new session, evicting one; and an INCR refused by the value. */
  lens[6] = kvstore_encode_register(cmds[6], 256, 60, 0);
  lens[7] = kvstore_encode_incrby(cmds[7], 256, &h2, S("t"), 1);
  /* APPEND to a value it outgrows (moved to room), and to a new key. */
  lens[8] = kvstore_encode_append(cmds[8], 256, &h1, S("a"), S("xyz"));
  lens[9] = kvstore_encode_append(cmds[9], 256, &h1, S("k"), S("v"));

  for (size_t i = 0; i < N(lens); i++) {
    struct kvstore *want_kv;
    struct kvstore_result want;
    CHECK(kvstore_new(&want_kv, &plain_cfg) == 0);
    CHECK(kvstore_restore(want_kv, base, base_len) == 0);
    CHECK(kvstore_apply(want_kv, cmds[i], lens[i], &want) == 0);
    bool got_through = false;
    for (long fail_at = 1; !got_through && fail_at < 64; fail_at++) {
      struct kvstore *kv;
      f.fail_at = 0;
      CHECK(kvstore_new(&kv, &cfg) == 0);
      CHECK(kvstore_restore(kv, base, base_len) == 0);
      struct kvstore *before;
      CHECK(kvstore_new(&before, &plain_cfg) == 0);
      CHECK(kvstore_restore(before, base, base_len) == 0);
      f.calls = 0;
      f.fail_at = fail_at;
      struct kvstore_result r;
      int rc = kvstore_apply(kv, cmds[i], lens[i], &r);
      f.fail_at = 0;
      static const char *const keys[] = {"a", "t", "n", "new", "x", "z", "k"};
      if (rc == SABHA_ENOMEM) {
        CHECK(same_state(kv, before, keys, N(keys)));
        uint64_t seq;
        CHECK(kvstore_session(kv, 1, &seq) == kvstore_session(before, 1, &seq));
        CHECK(kvstore_session(kv, 3, &seq) == false);
        /* The retry the host makes goes through. */
        rc = kvstore_apply(kv, cmds[i], lens[i], &r);
      } else {
        got_through = true;
      }
      CHECK(rc == 0);
      CHECK(r.kind == want.kind && r.integer == want.integer &&
            r.outcome == want.outcome);
      CHECK(same_state(kv, want_kv, keys, N(keys)));
      kvstore_free(kv);
      kvstore_free(before);
    }
    CHECK(got_through);
    kvstore_free(want_kv);
  }
  free(base);
  kvstore_free(plain);
}

/* Applies cmd to a store restored from base, failing its 1st, 2nd, ...
 * allocation until one goes through: each failure must leave the store as
 * it was, and the retry, like the run let through, must end in the state
 * and reply of a store that never failed. States are compared by their
 * snapshots' bytes. */
static void oom_anywhere_changes_nothing(const uint8_t *base, size_t base_len,
                                         const uint8_t *cmd, size_t len) {
  struct failing_alloc f = {0, 0};
  struct kvstore_config cfg = kvstore_config_default;
  cfg.alloc = failing_allocator(&f);
  struct kvstore *want_kv = store_new();
  CHECK(kvstore_restore(want_kv, base, base_len) == 0);
  struct kvstore_result want;
  CHECK(kvstore_apply(want_kv, cmd, len, &want) == 0);
  size_t want_len;
  uint8_t *want_snap = snapshot_of(want_kv, &want_len);
  bool got_through = false;
  for (long fail_at = 1; !got_through && fail_at < 64; fail_at++) {
    struct kvstore *kv;
    CHECK(kvstore_new(&kv, &cfg) == 0);
    CHECK(kvstore_restore(kv, base, base_len) == 0);
    f.calls = 0;
    f.fail_at = fail_at;
    struct kvstore_result r;
    int rc = kvstore_apply(kv, cmd, len, &r);
    f.fail_at = 0;
    size_t n;
    uint8_t *snap;
    if (rc == SABHA_ENOMEM) {
      snap = snapshot_of(kv, &n);
      CHECK(n == base_len && memcmp(snap, base, n) == 0);
      free(snap);
      rc = kvstore_apply(kv, cmd, len, &r);
    } else {
      got_through = true;
    }
    CHECK(rc == 0 && r.kind == want.kind && r.integer == want.integer);
    snap = snapshot_of(kv, &n);
    CHECK(n == want_len && memcmp(snap, want_snap, n) == 0);
    CHECK(kvstore_next_expiry_ms(kv) == kvstore_next_expiry_ms(want_kv));
    free(snap);
    kvstore_free(kv);
  }
  CHECK(got_through);
  free(want_snap);
  kvstore_free(want_kv);
}

/* The lease commands under the same rule, from a store where lease 1's
 * keys fill their heap (16), so that one more must grow it, and lease 2
 * holds none yet. */
static void oom_in_lease_commands_leaves_the_store_unchanged(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  c.now_ms = 100;
  uint8_t *buf = c.last;
  struct kvstore_hdr h = next_hdr(&c);
  c.last_len = kvstore_encode_lease(buf, CMD_BYTES_MAX, &h,
                                    KVSTORE_OP_LEASE_GRANT, 1000);
  CHECK(apply_last(&c).integer == 1);
  h = next_hdr(&c);
  c.last_len = kvstore_encode_lease(buf, CMD_BYTES_MAX, &h,
                                    KVSTORE_OP_LEASE_GRANT, 5000);
  CHECK(apply_last(&c).integer == 2);
  for (int i = 0; i < 16; i++) {
    char key[16];
    snprintf(key, sizeof key, "l%02d", i);
    h = next_hdr(&c);
    c.last_len = kvstore_encode_set_ex(buf, CMD_BYTES_MAX, &h, S(key), S("v"),
                                       KVSTORE_SET_LEASE, 0, 1);
    CHECK(is_ok(apply_last(&c)));
  }
  CHECK(is_ok(set_px(&c, "p", "v", KVSTORE_SET_PX, 700)));
  size_t base_len;
  uint8_t *base = snapshot_of(kv, &base_len);

  uint8_t cmd[256];
  struct kvstore_hdr next = {c.session, c.seq + 1, 200};
  struct {
    uint32_t flags;
    const char *key;
    uint64_t lease;
  } sets[] = {
      {KVSTORE_SET_LEASE, "l99", 1}, /* grows lease 1's keys */
      {KVSTORE_SET_LEASE, "l03", 2}, /* moves a key to lease 2 */
      {KVSTORE_SET_LEASE, "p", 2},   /* a key with its own expiry */
      {KVSTORE_SET_PX, "l05", 0},    /* leaves its lease */
      {KVSTORE_SET_KEEPTTL, "l07", 0},
  };
  for (size_t i = 0; i < N(sets); i++) {
    size_t n = kvstore_encode_set_ex(
        cmd, sizeof cmd, &next, S(sets[i].key), S("w"), sets[i].flags,
        sets[i].flags & KVSTORE_SET_PX ? 50 : 0, sets[i].lease);
    oom_anywhere_changes_nothing(base, base_len, cmd, n);
  }
  static const enum kvstore_op ops[] = {KVSTORE_OP_LEASE_GRANT,
                                        KVSTORE_OP_LEASE_KEEPALIVE,
                                        KVSTORE_OP_LEASE_REVOKE};
  for (size_t i = 0; i < N(ops); i++) {
    size_t n = kvstore_encode_lease(cmd, sizeof cmd, &next, ops[i],
                                    ops[i] == KVSTORE_OP_LEASE_GRANT ? 10 : 1);
    oom_anywhere_changes_nothing(base, base_len, cmd, n);
  }
  /* Lease 1's time is up: naming it drops it with its keys still held. */
  next.now_ms = 1200;
  size_t n = kvstore_encode_set_ex(cmd, sizeof cmd, &next, S("q"), S("v"),
                                   KVSTORE_SET_LEASE, 0, 1);
  oom_anywhere_changes_nothing(base, base_len, cmd, n);
  free(base);
  kvstore_free(kv);
}

/* ---- Scale and the model ----------------------------------------------- */

static void many_keys_survive_growth_and_shrinking(void) {
  struct kvstore *kv = store_new();
  struct client c = client_open(kv);
  enum { KEYS = 20000 };
  char key[32], value[32];
  for (int i = 0; i < KEYS; i++) {
    snprintf(key, sizeof key, "key:%d", i);
    snprintf(value, sizeof value, "value:%d", i * 7);
    c.now_ms = (uint64_t)i;
    if (i % 3 == 0)
      CHECK(is_ok(set_px(&c, key, value, KVSTORE_SET_PX, 1000000)));
    else
      CHECK(is_ok(set(&c, key, value)));
  }
  CHECK(kvstore_dbsize(kv) == KEYS);
  /* Delete all but every tenth, in an order unlike insertion. */
  for (int i = KEYS - 1; i >= 0; i--) {
    if (i % 10 == 0)
      continue;
    snprintf(key, sizeof key, "key:%d", i);
    const char *k = key;
    CHECK(is_int(del(&c, 1, &k), 1));
  }
  CHECK(kvstore_dbsize(kv) == KEYS / 10);
  for (int i = 0; i < KEYS; i++) {
    snprintf(key, sizeof key, "key:%d", i);
    snprintf(value, sizeof value, "value:%d", i * 7);
    CHECK(get_is(kv, key, i % 10 == 0 ? value : NULL));
    if (i % 10 == 0)
      CHECK(pttl(kv, key, 0) == (i % 3 == 0 ? 1000000 + i - (KEYS - 1) : -1));
  }
  /* Time passes: the expiring ones go, a bounded number per command. */
  c.now_ms = 2000000;
  CHECK(is_ok(set(&c, "tick", "1")));
  uint64_t expiring = 0;
  for (int i = 0; i < KEYS; i += 30)
    expiring++;
  CHECK(kvstore_dbsize(kv) == KEYS / 10 + 1 - KVSTORE_EXPIRE_PER_APPLY);
  for (int i = 0; i < 40; i++)
    CHECK(is_ok(set(&c, "tick", "1")));
  CHECK(kvstore_dbsize(kv) == KEYS / 10 + 1 - expiring);
  kvstore_free(kv);
}

/* A naive model of the store over a small key space, for the random test. */
#define MODEL_KEYS 10
#define MODEL_VALUE_MAX 31

struct model_key {
  bool present;
  char value[MODEL_VALUE_MAX + 1];
  uint64_t expire_at_ms;
};

struct model {
  struct model_key keys[MODEL_KEYS];
  uint64_t clock_ms;
};

static const char *model_key_name(int i) {
  static const char *const names[MODEL_KEYS] = {"k0", "k1", "k2", "k3", "k4",
                                                "k5", "k6", "k7", "k8", "k9"};
  return names[i];
}

static bool model_live(const struct model *m, int i) {
  const struct model_key *k = &m->keys[i];
  return k->present && !(k->expire_at_ms != 0 && m->clock_ms > k->expire_at_ms);
}

/* An integer is canonical when strtoll reads all of it without overflow
 * and prints it back the same: no '+', spaces or leading zeros. */
static bool model_integer(const char *s, int64_t *out) {
  if (*s == '\0' || strlen(s) > 20)
    return false;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  char back[32];
  snprintf(back, sizeof back, "%lld", v);
  if (strcmp(back, s) != 0)
    return false;
  *out = v;
  return true;
}

static void model_put(struct model *m, int i, const char *value,
                      uint64_t expire_at_ms) {
  m->keys[i].present = true;
  snprintf(m->keys[i].value, sizeof m->keys[i].value, "%s", value);
  m->keys[i].expire_at_ms = expire_at_ms;
}

/* The values the random test writes: integers near the edges, and text. */
static const char *random_value(struct prng *rng) {
  static const char *const values[] = {"0",
                                       "1",
                                       "-1",
                                       "41",
                                       "abc",
                                       "",
                                       "01",
                                       "9223372036854775807",
                                       "-9223372036854775808",
                                       "9223372036854775806",
                                       " 7",
                                       "x y z"};
  return values[prng_below(rng, N(values))];
}

static int64_t random_delta(struct prng *rng) {
  static const int64_t deltas[] = {1, -1, 5, 0, INT64_MAX, INT64_MIN, -7};
  return deltas[prng_below(rng, N(deltas))];
}

/* Builds one random command for client `c` into c->last and predicts its
 * reply with the model (updating the model). */
static struct kvstore_result model_step(struct model *m, struct client *c,
                                        struct prng *rng) {
  struct kvstore_result want;
  memset(&want, 0, sizeof want);
  struct kvstore_hdr h = next_hdr(c);
  if (h.now_ms > m->clock_ms)
    m->clock_ms = h.now_ms;
  int k = (int)prng_below(rng, MODEL_KEYS);
  const char *key = model_key_name(k);
  switch (prng_below(rng, 6)) {
  case 0: { /* SET */
    static const uint32_t flag_sets[] = {0,
                                         KVSTORE_SET_NX,
                                         KVSTORE_SET_XX,
                                         KVSTORE_SET_PX,
                                         KVSTORE_SET_PX | KVSTORE_SET_NX,
                                         KVSTORE_SET_KEEPTTL,
                                         KVSTORE_SET_NX | KVSTORE_SET_XX,
                                         KVSTORE_SET_PX | KVSTORE_SET_KEEPTTL};
    uint32_t flags = flag_sets[prng_below(rng, N(flag_sets))];
    int64_t px =
        (flags & KVSTORE_SET_PX) ? (int64_t)prng_below(rng, 40) - 5 : 0;
    const char *value = random_value(rng);
    c->last_len = kvstore_encode_set(c->last, sizeof c->last, &h, S(key),
                                     S(value), flags, px);
    bool live = model_live(m, k);
    if ((flags & KVSTORE_SET_NX) && (flags & KVSTORE_SET_XX)) {
      want.kind = KVSTORE_REPLY_ERROR, want.error = KVSTORE_ERR_SYNTAX;
    } else if ((flags & KVSTORE_SET_PX) && (flags & KVSTORE_SET_KEEPTTL)) {
      want.kind = KVSTORE_REPLY_ERROR, want.error = KVSTORE_ERR_SYNTAX;
    } else if ((flags & KVSTORE_SET_PX) && px <= 0) {
      want.kind = KVSTORE_REPLY_ERROR, want.error = KVSTORE_ERR_EXPIRE;
    } else if (((flags & KVSTORE_SET_NX) && live) ||
               ((flags & KVSTORE_SET_XX) && !live)) {
      want.kind = KVSTORE_REPLY_NULL;
    } else {
      uint64_t expire = (flags & KVSTORE_SET_PX) ? m->clock_ms + (uint64_t)px
                        : (flags & KVSTORE_SET_KEEPTTL) && live
                            ? m->keys[k].expire_at_ms
                            : 0;
      model_put(m, k, value, expire);
      want.kind = KVSTORE_REPLY_OK;
    }
    break;
  }
  case 1: { /* DEL of one to three keys, repeats allowed */
    struct kvstore_slice keys[3];
    size_t n = 1 + prng_below(rng, 3);
    int64_t removed = 0;
    for (size_t i = 0; i < n; i++) {
      int ki = (int)prng_below(rng, MODEL_KEYS);
      keys[i] = S(model_key_name(ki));
      if (model_live(m, ki))
        removed++;
      m->keys[ki].present = false;
    }
    c->last_len = kvstore_encode_del(c->last, sizeof c->last, &h, keys, n);
    want.kind = KVSTORE_REPLY_INT, want.integer = removed;
    break;
  }
  case 2:
  case 3: { /* INCRBY, DECRBY */
    bool decr = prng_below(rng, 2);
    int64_t delta = random_delta(rng);
    c->last_len =
        decr
            ? kvstore_encode_decrby(c->last, sizeof c->last, &h, S(key), delta)
            : kvstore_encode_incrby(c->last, sizeof c->last, &h, S(key), delta);
    int64_t current = 0;
    bool live = model_live(m, k);
    if (decr && delta == INT64_MIN) {
      want.kind = KVSTORE_REPLY_ERROR, want.error = KVSTORE_ERR_DECR_OVERFLOW;
      break;
    }
    if (decr)
      delta = -delta;
    if (live && !model_integer(m->keys[k].value, &current)) {
      want.kind = KVSTORE_REPLY_ERROR, want.error = KVSTORE_ERR_NOT_INTEGER;
    } else if ((delta > 0 && current > INT64_MAX - delta) ||
               (delta < 0 && current < INT64_MIN - delta)) {
      want.kind = KVSTORE_REPLY_ERROR, want.error = KVSTORE_ERR_OVERFLOW;
    } else {
      char text[32];
      snprintf(text, sizeof text, "%" PRId64, current + delta);
      model_put(m, k, text, live ? m->keys[k].expire_at_ms : 0);
      want.kind = KVSTORE_REPLY_INT, want.integer = current + delta;
    }
    break;
  }
  case 4: { /* MSET of one to three pairs */
    struct kvstore_slice pairs[6];
    size_t n = 1 + prng_below(rng, 3);
    for (size_t i = 0; i < n; i++) {
      int ki = (int)prng_below(rng, MODEL_KEYS);
      const char *value = random_value(rng);
      pairs[2 * i] = S(model_key_name(ki));
      pairs[2 * i + 1] = S(value);
      model_put(m, ki, value, 0);
    }
    c->last_len = kvstore_encode_mset(c->last, sizeof c->last, &h, pairs, n);
    want.kind = KVSTORE_REPLY_OK;
    break;
  }
  default: { /* CAS against the current value, another, or absence */
    bool live = model_live(m, k);
    int how = (int)prng_below(rng, 3);
    const char *expected = how == 0 && live ? m->keys[k].value
                           : how == 1       ? random_value(rng)
                                            : NULL;
    struct kvstore_slice e = expected ? S(expected) : S("");
    const char *value = random_value(rng);
    char expected_copy[MODEL_VALUE_MAX + 1] = "";
    if (expected)
      snprintf(expected_copy, sizeof expected_copy, "%s", expected);
    c->last_len = kvstore_encode_cas(c->last, sizeof c->last, &h, S(key),
                                     expected ? &e : NULL, S(value));
    bool match =
        expected ? live && strcmp(m->keys[k].value, expected_copy) == 0 : !live;
    if (match)
      model_put(m, k, value, 0);
    want.kind = KVSTORE_REPLY_INT, want.integer = match;
    break;
  }
  }
  return want;
}

static bool same_reply(struct kvstore_result a, struct kvstore_result b) {
  if (a.kind != b.kind)
    return false;
  if (a.kind == KVSTORE_REPLY_INT)
    return a.integer == b.integer;
  if (a.kind == KVSTORE_REPLY_ERROR)
    return strcmp(a.error, b.error) == 0;
  return true;
}

/* Two replicas with different hash keys and a model take the same random
 * commands from several clients, with retries, clock jumps (forward and
 * back) and a snapshot handed from one replica to a fresh one now and then;
 * replies and every key must agree throughout. */
static void replicas_agree_with_each_other_and_the_model(void) {
  struct prng rng;
  prng_seed(&rng, 2024);
  struct kvstore_config cfg_b = kvstore_config_default;
  cfg_b.hash_key[0] = 0xdeadbeef;
  cfg_b.hash_key[1] = 42;
  struct kvstore *a = store_new(), *b;
  CHECK(kvstore_new(&b, &cfg_b) == 0);
  struct model m;
  memset(&m, 0, sizeof m);
  enum { CLIENTS = 4 };
  struct client clients[CLIENTS];
  struct kvstore_result last_reply[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    /* Both replicas apply the same REGISTER and assign the same id. */
    clients[i] = client_open(a);
    uint8_t reg[64];
    size_t n = kvstore_encode_register(reg, sizeof reg, 0, 0);
    struct kvstore_result r;
    CHECK(kvstore_apply(b, reg, n, &r) == 0);
    CHECK(is_int(r, (int64_t)clients[i].session));
    memset(&last_reply[i], 0, sizeof last_reply[i]);
  }
  uint64_t now_ms = 1000;
  for (int step = 0; step < 20000; step++) {
    int ci = (int)prng_below(&rng, CLIENTS);
    struct client *c = &clients[ci];
    now_ms = prng_chance(&rng, 0.05) ? now_ms - prng_below(&rng, 20)
                                     : now_ms + prng_below(&rng, 8);
    c->now_ms = now_ms;
    struct kvstore_result want;
    bool retry = c->seq > 0 && prng_chance(&rng, 0.1);
    if (retry) {
      /* The same bytes again, original time stamp included; that stamp
       * was applied already, so the clock stays. */
      want = last_reply[ci];
    } else {
      want = model_step(&m, c, &rng);
    }
    struct kvstore_result ra, rb;
    CHECK(kvstore_apply(a, c->last, c->last_len, &ra) == 0);
    CHECK(kvstore_apply(b, c->last, c->last_len, &rb) == 0);
    if (!same_reply(ra, want))
      fprintf(stderr, "step %d: reply kind %d int %" PRId64 " err %s\n", step,
              (int)ra.kind, ra.integer, ra.error ? ra.error : "-");
    CHECK(same_reply(ra, want) && same_reply(rb, want));
    CHECK(ra.outcome == (retry ? KVSTORE_DUPLICATE : KVSTORE_APPLIED));
    CHECK(rb.outcome == ra.outcome);
    last_reply[ci] = want;
    CHECK(kvstore_clock_ms(a) == m.clock_ms &&
          kvstore_clock_ms(b) == m.clock_ms);
    for (int k = 0; k < MODEL_KEYS; k++) {
      const char *name = model_key_name(k);
      const char *want_value = model_live(&m, k) ? m.keys[k].value : NULL;
      CHECK(get_is(a, name, want_value));
      CHECK(get_is(b, name, want_value));
      int64_t want_ttl = !model_live(&m, k) ? -2
                         : m.keys[k].expire_at_ms == 0
                             ? -1
                             : (int64_t)(m.keys[k].expire_at_ms - m.clock_ms);
      CHECK(pttl(a, name, 0) == want_ttl && pttl(b, name, 0) == want_ttl);
    }
    CHECK(kvstore_dbsize(a) == kvstore_dbsize(b));
    CHECK(kvstore_snapshot_size(a) == kvstore_snapshot_size(b));
    /* Now and then replica b is replaced by a fresh one from a's snapshot,
     * as a lagging follower is. */
    if (step % 2500 == 2499) {
      size_t len;
      uint8_t *snap = snapshot_of(a, &len);
      kvstore_free(b);
      CHECK(kvstore_new(&b, &cfg_b) == 0);
      CHECK(kvstore_restore(b, snap, len) == 0);
      free(snap);
    }
  }
  kvstore_free(a);
  kvstore_free(b);
}

/* A node applying a batch hands the store the hash kvstore_prefetch_slot
 * gave for each command (kvstore_apply_hinted), so that keys are hashed
 * once. Two stores given the same commands, one with the hints and one
 * without, answer alike and end alike: the same keys and values, the same
 * snapshot bytes. Keys repeat (overwrites, CAS on existing keys, INCR),
 * so a wrong hash would put a key in twice and show. */
static void hinted_apply_matches_plain_apply(void) {
  struct kvstore *a = store_new(), *b = store_new();
  struct client ca = client_open(a), cb = client_open(b);
  char key[16], value[16];
  uint8_t cmd[CMD_BYTES_MAX];
  for (int i = 0; i < 3000; i++) {
    snprintf(key, sizeof key, "k%d", (i * 7) % 97);
    snprintf(value, sizeof value, "v%d", i);
    struct kvstore_hdr h = next_hdr(&ca);
    (void)next_hdr(&cb);
    size_t n;
    if (i % 5 == 3) {
      struct kvstore_slice old = S(value); /* rarely a match */
      n = kvstore_encode_cas(cmd, sizeof cmd, &h, S(key), i % 2 ? NULL : &old,
                             S(value));
    } else if (i % 7 == 4) {
      n = kvstore_encode_incrby(cmd, sizeof cmd, &h, S("counter"), 1);
    } else {
      n = kvstore_encode_set(cmd, sizeof cmd, &h, S(key), S(value), 0, 0);
    }
    struct kvstore_result ra, rb;
    uint64_t hint = kvstore_prefetch_slot(a, cmd, n);
    CHECK(kvstore_apply_hinted(a, cmd, n, hint, &ra) == 0);
    CHECK(kvstore_apply(b, cmd, n, &rb) == 0);
    CHECK(ra.kind == rb.kind && ra.integer == rb.integer);
  }
  CHECK(kvstore_dbsize(a) == kvstore_dbsize(b));
  for (int k = 0; k < 97; k++) {
    snprintf(key, sizeof key, "k%d", k);
    char va[32] = "";
    const char *got = get(a, key); /* get's buffer is reused: copy */
    if (got != NULL)
      snprintf(va, sizeof va, "%s", got);
    const char *vb = get(b, key);
    CHECK((got == NULL) == (vb == NULL));
    CHECK(vb == NULL || strcmp(va, vb) == 0);
  }
  size_t na = kvstore_snapshot_size(a), nb = kvstore_snapshot_size(b);
  CHECK(na == nb);
  uint8_t *sa = malloc(na), *sb = malloc(nb);
  CHECK(sa != NULL && sb != NULL);
  CHECK(kvstore_snapshot(a, sa, na) == na && kvstore_snapshot(b, sb, nb) == nb);
  CHECK(memcmp(sa, sb, na) == 0);
  free(sa);
  free(sb);
  kvstore_free(a);
  kvstore_free(b);
}

static const struct test tests[] = {
    TEST(hinted_apply_matches_plain_apply),
    TEST(set_then_get_returns_the_value),
    TEST(set_nx_and_xx_set_only_on_their_condition),
    TEST(set_option_errors_match_redis),
    TEST(px_expiry_follows_the_time_carried_in_commands),
    TEST(the_clock_never_runs_backwards),
    TEST(set_clears_the_ttl_unless_keepttl),
    TEST(del_counts_the_keys_it_removed),
    TEST(incr_family_follows_redis),
    TEST(incr_does_not_read_a_long_value),
    TEST(mset_sets_every_pair_and_clears_ttls),
    TEST(cas_swaps_only_on_a_match),
    TEST(bounds_are_enforced_with_error_replies),
    TEST(a_retry_gets_the_saved_reply_without_reapplying),
    TEST(stale_gapped_and_unknown_requests_are_refused),
    TEST(sessions_beyond_the_bound_evict_the_least_recent),
    TEST(malformed_commands_are_refused_and_change_nothing),
    TEST(encoders_write_only_when_the_command_fits),
    TEST(snapshot_round_trip_keeps_keys_expiry_and_sessions),
    TEST(snapshot_keeps_the_session_eviction_order),
    TEST(corrupt_snapshots_are_refused_and_change_nothing),
    TEST(duplicate_keys_in_a_snapshot_are_refused),
    TEST(oom_at_every_allocation_leaves_the_store_unchanged),
    TEST(oom_in_lease_commands_leaves_the_store_unchanged),
    TEST(many_keys_survive_growth_and_shrinking),
    TEST(replicas_agree_with_each_other_and_the_model),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
