/* The replicated applications: a payments ledger, seat booking, locks with
 * fencing tokens and order workflows (app.h is the contract: commands,
 * replies, exactly-once, time, fencing).
 *
 * This file holds what the four share: the command table, the command codec,
 * the dispatch of applies and reads, replies and their compact form, the
 * dedup tables that make LEDGER.TRANSFER, SEATS.BOOK and SEATS.ANY exactly
 * once, memory, and snapshots. Each application lives in its own file
 * (app_ledger.c, app_seats.c, app_locks.c with the fenced keys,
 * app_orders.c); app_internal.h describes their records.
 *
 * Why one machine for four applications: they share one log, one clock and
 * one snapshot, so a host replicates a single thing, and a checker can read
 * every application's state from one place.
 *
 * Snapshot format (version 3, integers little-endian; str = u8 len | bytes,
 * len <= APP_ARG_BYTES_MAX):
 *
 *   u32 magic "SAP1" | u8 version (3) | u64 clock_ms
 *   rules   u8 recorded (0 or 1) | when 1: u32 dedup_max
 *           | u32 dedup_window_ms (within the bounds of app_config)
 *   ledger  u32 n | n x (str account | i64 balance | i64 opened_with)
 *           | dedup
 *   seats   u32 n | n x (str train | str date | str seat | u64 pnr (0 free))
 *           | u32 n_pnrs | n_pnrs x (u32 seat index | u8 cancelled
 *                                    | str passenger)       PNR 1, 2, ...
 *           | dedup
 *   locks   u32 n | n x (str name | str owner | u64 token | u64 token_max
 *                        | u64 expires_ms)
 *   fenced  u32 n | n x (str key | str value)
 *   orders  u32 n | n x (str id | str customer | i64 amount | u8 state
 *                        | u8 cancelled_from (0 unless CANCELLED))
 *   u32 CRC32C of every byte before it
 *
 *   dedup   u32 n | n x (str id | u8 fingerprint_kind | 16 x u8 fingerprint
 *                        | u64 recorded_ms | u32 blob_bytes | blob),
 *           oldest first; fingerprint_kind 2: BLAKE2b-128 of the command,
 *           1: an entry from a version-1 snapshot, the FNV-1a 64 in the
 *           first 8 bytes (little-endian) and zeros after; recorded_ms never
 *           decreases and is at most clock_ms;
 *           blob = u8 n_extras | n_extras x str | reply
 *   reply   u8 kind | u8 code | i64 integer | u16 text_len | text
 *           | u8 n_items | n_items x (u8 kind | i64 integer | u16 off
 *                                     | u16 len)
 *
 * Version 2 has no rules field: its rules count as not recorded, and the
 * restoring machine's config decides, as it did for the machines that
 * wrote it.
 *
 * Version 1 also differs in the dedup entries: str id | u64 fingerprint
 * (FNV-1a 64) | u32 blob_bytes | blob. Restore reads it so that nodes keep
 * the data they had: its entries keep their FNV fingerprints (kind 1) and
 * are taken as recorded at time 0, older than any window. The machines
 * that wrote it kept no window: the log after it is applied as they
 * applied it (first in, first out, until newer ids are the oldest), and
 * replicas restored from version-1 snapshots of different points agree.
 * Given the snapshot's clock instead, every new id within a window of it
 * was refused on a full table: a replayed log then lost transfers its
 * writers had made, each replica at its own snapshot's point.
 *
 * Records appear in the order they were made; that order is part of the
 * state (SEATS.ANY takes the first free seat in it), so restore keeps it.
 * The PNR counter is the number of PNRs; token counters are token_max.
 * Restore checks every length, count, bound and cross-reference (a booked
 * seat's PNR names that seat, balances add up without overflow, ...) and
 * builds a fresh machine, so a bad snapshot leaves the state as it was. */
#include "sm/app.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/decimal.h"
#include "core/endian.h"
#include "sabha/error.h"
#include "sm/app_internal.h"
#include "storage/crc32c.h"

const struct app_config app_config_default = {
    .dedup_max = APP_DEDUP_DEFAULT,
    .dedup_window_ms = APP_DEDUP_WINDOW_MS_DEFAULT,
    .objects_max = 4u << 20,
    .bugs = 0,
    .alloc = {NULL, NULL},
};

#define SNAPSHOT_MAGIC "SAP1"
#define SNAPSHOT_VERSION 3u
#define SNAPSHOT_VERSION_MIN 1u /* still read: nodes upgrade with data */
#define SNAPSHOT_TRAILER_BYTES 4u
#define DEDUP_MAX_LIMIT APP_DEDUP_LIMIT
#define OBJECTS_MAX_LIMIT ((1ull << 31) - 1)

/* ---- The command table -------------------------------------------------- */

static const struct app_command commands[] = {
    {"LEDGER.OPEN", APP_LEDGER_OPEN, 2, 2, true, "account initial_paise"},
    {"LEDGER.TRANSFER", APP_LEDGER_TRANSFER, 4, 4, true,
     "txid from to amount_paise"},
    {"LEDGER.BALANCE", APP_LEDGER_BALANCE, 1, 1, false, "account"},
    {"LEDGER.TX", APP_LEDGER_TX, 1, 1, false, "txid"},
    {"LEDGER.AUDIT", APP_LEDGER_AUDIT, 0, 0, false, ""},
    {"SEATS.ADD", APP_SEATS_ADD, 3, APP_ARGS_MAX, true,
     "train date seat [seat ...]"},
    {"SEATS.BOOK", APP_SEATS_BOOK, 5, 5, true,
     "request_id train date seat passenger"},
    {"SEATS.ANY", APP_SEATS_ANY, 4, 4, true, "request_id train date passenger"},
    {"SEATS.CANCEL", APP_SEATS_CANCEL, 1, 1, true, "pnr"},
    {"SEATS.FREE", APP_SEATS_FREE, 2, 2, false, "train date"},
    {"SEATS.PNR", APP_SEATS_PNR, 1, 1, false, "pnr"},
    {"LOCK.ACQUIRE", APP_LOCK_ACQUIRE, 3, 3, true, "name owner ttl_ms"},
    {"LOCK.RENEW", APP_LOCK_RENEW, 4, 4, true, "name owner token ttl_ms"},
    {"LOCK.RELEASE", APP_LOCK_RELEASE, 3, 3, true, "name owner token"},
    {"LOCK.GET", APP_LOCK_GET, 1, 1, false, "name"},
    {"FENCED.SET", APP_FENCED_SET, 4, 4, true, "key value name token"},
    {"FENCED.GET", APP_FENCED_GET, 1, 1, false, "key"},
    {"ORDER.CREATE", APP_ORDER_CREATE, 3, 3, true,
     "order_id customer amount_paise"},
    {"ORDER.ADVANCE", APP_ORDER_ADVANCE, 2, 2, true, "order_id STATE"},
    {"ORDER.CANCEL", APP_ORDER_CANCEL, 1, 1, true, "order_id"},
    {"ORDER.GET", APP_ORDER_GET, 1, 1, false, "order_id"},
};
_Static_assert(sizeof commands / sizeof commands[0] == APP_OP_COUNT - 1,
               "one row per op");

const struct app_command *app_commands(size_t *n) {
  assert(n != NULL);
  *n = sizeof commands / sizeof commands[0];
  return commands;
}

static char upper(char c) {
  return c >= 'a' && c <= 'z' ? c - 32 : c;
}

const struct app_command *app_command_find(const char *name, size_t len) {
  assert(name != NULL || len == 0);
  for (size_t i = 0; i < APP_OP_COUNT - 1; i++) {
    const char *row = commands[i].name;
    if (strlen(row) != len)
      continue;
    size_t j = 0;
    while (j < len && upper(name[j]) == row[j])
      j++;
    if (j == len)
      return &commands[i];
  }
  return NULL;
}

const struct app_command *app_command_of(enum app_op op) {
  if (op < 1 || op >= APP_OP_COUNT)
    return NULL;
  assert(commands[op - 1].op == op);
  return &commands[op - 1];
}

const char *app_order_state_name(enum app_order_state s) {
  switch (s) {
  case APP_ORDER_CREATED:
    return "CREATED";
  case APP_ORDER_PAYMENT_CONFIRMED:
    return "PAYMENT_CONFIRMED";
  case APP_ORDER_INVENTORY_RESERVED:
    return "INVENTORY_RESERVED";
  case APP_ORDER_SHIPPED:
    return "SHIPPED";
  case APP_ORDER_DELIVERED:
    return "DELIVERED";
  case APP_ORDER_CANCELLED:
    return "CANCELLED";
  }
  return "UNKNOWN";
}

/* ---- The command codec -------------------------------------------------- */

size_t app_encode(uint8_t *buf, size_t cap, const struct app_hdr *hdr,
                  enum app_op op, const struct app_arg *argv, size_t argc) {
  assert(hdr != NULL && (argv != NULL || argc == 0));
  if (op < 1 || op >= APP_OP_COUNT || argc > APP_ARGS_MAX)
    return 0;
  size_t size = APP_CMD_HEADER_BYTES;
  for (size_t i = 0; i < argc; i++) {
    if (argv[i].len > APP_ARG_BYTES_MAX || (argv[i].ptr == NULL && argv[i].len))
      return 0;
    size += 2 + argv[i].len;
  }
  if (size > cap)
    return size;
  assert(buf != NULL);
  buf[0] = APP_CMD_MAGIC;
  buf[1] = APP_FORMAT_VERSION;
  buf[2] = (uint8_t)op;
  buf[3] = (uint8_t)argc;
  le_put_u64(buf + 4, hdr->now_ms);
  le_put_u64(buf + 12, hdr->tag);
  uint8_t *p = buf + APP_CMD_HEADER_BYTES;
  for (size_t i = 0; i < argc; i++) {
    le_put_u16(p, (uint16_t)argv[i].len);
    if (argv[i].len > 0)
      memcpy(p + 2, argv[i].ptr, argv[i].len);
    p += 2 + argv[i].len;
  }
  assert((size_t)(p - buf) == size);
  return size;
}

size_t app_encode_rules(uint8_t *buf, size_t cap, const struct app_hdr *hdr,
                        const struct app_rules *rules) {
  assert(buf != NULL && hdr != NULL && rules != NULL);
  assert(cap >= APP_RULES_CMD_BYTES);
  (void)cap;
  buf[0] = APP_CMD_MAGIC;
  buf[1] = APP_FORMAT_VERSION;
  buf[2] = APP_OP_RULES;
  buf[3] = 2;
  le_put_u64(buf + 4, hdr->now_ms);
  le_put_u64(buf + 12, hdr->tag);
  uint8_t *p = buf + APP_CMD_HEADER_BYTES;
  le_put_u16(p, 4);
  le_put_u32(p + 2, rules->dedup_max);
  le_put_u16(p + 6, 4);
  le_put_u32(p + 8, rules->dedup_window_ms);
  assert(p + 12 == buf + APP_RULES_CMD_BYTES);
  return APP_RULES_CMD_BYTES;
}

bool app_is_command(const uint8_t *cmd, size_t len) {
  return len > 0 && cmd != NULL && cmd[0] == APP_CMD_MAGIC;
}

int app_decode(const uint8_t *cmd, size_t len, struct app_decoded *out) {
  assert(out != NULL);
  if (cmd == NULL || len < APP_CMD_HEADER_BYTES || cmd[0] != APP_CMD_MAGIC ||
      cmd[1] != APP_FORMAT_VERSION || cmd[2] < 1 || cmd[2] >= APP_OP_COUNT ||
      cmd[3] > APP_ARGS_MAX)
    return SABHA_ECORRUPT;
  out->op = (enum app_op)cmd[2];
  out->argc = cmd[3];
  out->hdr.now_ms = le_get_u64(cmd + 4);
  out->hdr.tag = le_get_u64(cmd + 12);
  size_t off = APP_CMD_HEADER_BYTES;
  for (size_t i = 0; i < out->argc; i++) {
    if (len - off < 2)
      return SABHA_ECORRUPT;
    size_t n = le_get_u16(cmd + off);
    off += 2;
    if (n > APP_ARG_BYTES_MAX || len - off < n)
      return SABHA_ECORRUPT;
    out->argv[i].ptr = cmd + off;
    out->argv[i].len = n;
    off += n;
  }
  return off == len ? 0 : SABHA_ECORRUPT; /* exactly one command */
}

void app_stamp(uint8_t *cmd, size_t len, const struct app_hdr *hdr) {
  assert(cmd != NULL && hdr != NULL);
  assert(len >= APP_CMD_HEADER_BYTES && cmd[0] == APP_CMD_MAGIC);
  le_put_u64(cmd + 4, hdr->now_ms);
  le_put_u64(cmd + 12, hdr->tag);
}

/* ---- Memory ------------------------------------------------------------- */

int app_vec_reserve(const struct app_config *cfg, void **v, uint32_t *cap,
                    uint64_t need, size_t elem_bytes) {
  assert(v != NULL && cap != NULL && elem_bytes > 0);
  if (need <= *cap)
    return 0;
  if (need > UINT32_MAX / 2)
    return SABHA_ENOMEM;
  uint64_t grown = *cap < 8 ? 8 : (uint64_t)*cap * 2;
  if (grown < need)
    grown = need;
  void *p = allocator_realloc(&cfg->alloc, *v, (size_t)grown * elem_bytes);
  if (p == NULL)
    return SABHA_ENOMEM;
  *v = p;
  *cap = (uint32_t)grown;
  return 0;
}

bool app_objects_room(const struct app *a, uint64_t n) {
  assert(a->objects <= a->cfg.objects_max);
  return n <= a->cfg.objects_max - a->objects;
}

/* ---- Bytes, names, numbers ---------------------------------------------- */

/* FNV-1a, 64 bits: for the state hash, which compares replicas, and for the
 * fingerprints of version-1 snapshots. Never for a new fingerprint: anyone
 * can find two commands with the same FNV hash. */
uint64_t app_hash64(uint64_t h, const void *p, size_t len) {
  const uint8_t *b = p;
  for (size_t i = 0; i < len; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool app_arg_equal(struct app_arg x, struct app_arg y) {
  return x.len == y.len && (x.len == 0 || memcmp(x.ptr, y.ptr, x.len) == 0);
}

void app_str_set(struct app_str *s, struct app_arg arg) {
  assert(arg.len <= APP_ARG_BYTES_MAX);
  s->len = (uint8_t)arg.len;
  if (arg.len > 0)
    memcpy(s->b, arg.ptr, arg.len);
}

struct app_arg app_str_arg(const struct app_str *s) {
  struct app_arg arg = {s->b, s->len};
  return arg;
}

const char *app_printable(struct app_arg arg, char *out) {
  assert(arg.len <= APP_ARG_BYTES_MAX);
  for (size_t i = 0; i < arg.len; i++) {
    uint8_t c = arg.ptr[i];
    out[i] = c >= ' ' && c <= '~' ? (char)c : '?';
  }
  out[arg.len] = '\0';
  return out;
}

enum app_code app_parse_i64(struct app_arg arg, int64_t *out) {
  uint64_t v;
  switch (dec_parse_u64(arg.ptr, arg.len, DEC_CANONICAL, 0, INT64_MAX, &v)) {
  case DEC_OK:
    *out = (int64_t)v;
    return APP_DONE;
  case DEC_RANGE:
    return APP_E_OVERFLOW;
  default:
    return APP_E_SYNTAX;
  }
}

void app_reply_bad_number(struct app_reply *out, enum app_code code,
                          const char *what, struct app_arg arg) {
  char text[APP_PRINTABLE_BYTES];
  if (code == APP_E_OVERFLOW)
    app_reply_error(out, APP_E_OVERFLOW, "ERR %s '%s' is beyond int64", what,
                    app_printable(arg, text));
  else
    app_reply_error(out, APP_E_SYNTAX,
                    "ERR %s '%s' is not a decimal number (digits only, no "
                    "sign, no leading zero)",
                    what, app_printable(arg, text));
}

bool app_need_name(struct app_reply *out, const char *what,
                   struct app_arg arg) {
  if (arg.len > 0)
    return true;
  app_reply_error(out, APP_E_SYNTAX, "ERR empty %s", what);
  return false;
}

/* ---- Replies ------------------------------------------------------------ */

static void reply_reset(struct app_reply *r, enum app_reply_kind kind) {
  assert(r != NULL);
  r->kind = (uint8_t)kind;
  r->duplicate = false;
  r->code = APP_DONE;
  r->integer = 0;
  r->text_len = 0;
  r->n_items = 0;
  r->text[0] = '\0';
}

void app_reply_ok(struct app_reply *r, bool duplicate) {
  reply_reset(r, APP_REPLY_OK);
  r->duplicate = duplicate;
  memcpy(r->text, "OK", 3);
  r->text_len = 2;
}

void app_reply_int(struct app_reply *r, int64_t v) {
  reply_reset(r, APP_REPLY_INT);
  r->integer = v;
}

/* Appends to the text, truncating what does not fit; returns the offset. */
static uint16_t text_append(struct app_reply *r, const void *p, size_t len) {
  size_t room = APP_REPLY_TEXT_MAX - 1 - r->text_len;
  if (len > room)
    len = room;
  uint16_t off = r->text_len;
  if (len > 0)
    memcpy(r->text + off, p, len);
  r->text_len = (uint16_t)(off + len);
  r->text[r->text_len] = '\0';
  return off;
}

void app_reply_bulk(struct app_reply *r, const void *p, size_t len) {
  reply_reset(r, APP_REPLY_BULK);
  (void)text_append(r, p, len);
}

void app_reply_null(struct app_reply *r) {
  reply_reset(r, APP_REPLY_NULL);
}

void app_reply_error(struct app_reply *r, enum app_code code, const char *fmt,
                     ...) {
  assert(code != APP_DONE && fmt != NULL);
  reply_reset(r, APP_REPLY_ERROR);
  r->code = (uint16_t)code;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->text, APP_REPLY_TEXT_MAX, fmt, ap);
  va_end(ap);
  assert(n > 0);
  size_t len =
      (size_t)n < APP_REPLY_TEXT_MAX ? (size_t)n : APP_REPLY_TEXT_MAX - 1;
  r->text_len = (uint16_t)len;
}

void app_reply_array(struct app_reply *r) {
  reply_reset(r, APP_REPLY_ARRAY);
}

void app_reply_push_bulk(struct app_reply *r, const void *p, size_t len) {
  assert(r->kind == APP_REPLY_ARRAY && r->n_items < APP_REPLY_ITEMS_MAX);
  struct app_reply_item *it = &r->items[r->n_items++];
  it->kind = APP_REPLY_BULK;
  it->integer = 0;
  it->off = text_append(r, p, len);
  it->len = (uint16_t)(r->text_len - it->off);
}

void app_reply_push_int(struct app_reply *r, int64_t v) {
  assert(r->kind == APP_REPLY_ARRAY && r->n_items < APP_REPLY_ITEMS_MAX);
  struct app_reply_item *it = &r->items[r->n_items++];
  it->kind = APP_REPLY_INT;
  it->integer = v;
  it->off = r->text_len;
  it->len = 0;
}

size_t app_reply_pack(const struct app_reply *r, uint8_t *buf) {
  assert(r->text_len < APP_REPLY_TEXT_MAX && r->n_items <= APP_REPLY_ITEMS_MAX);
  uint8_t *p = buf;
  *p++ = r->kind;
  *p++ = (uint8_t)r->code;
  le_put_u64(p, (uint64_t)r->integer);
  p += 8;
  le_put_u16(p, r->text_len);
  p += 2;
  memcpy(p, r->text, r->text_len);
  p += r->text_len;
  *p++ = (uint8_t)r->n_items;
  for (uint32_t i = 0; i < r->n_items; i++) {
    *p++ = r->items[i].kind;
    le_put_u64(p, (uint64_t)r->items[i].integer);
    le_put_u16(p + 8, r->items[i].off);
    le_put_u16(p + 10, r->items[i].len);
    p += 12;
  }
  assert((size_t)(p - buf) <= APP_REPLY_PACKED_BYTES_MAX);
  return (size_t)(p - buf);
}

static bool item_kind_valid(uint8_t k) {
  return k >= APP_REPLY_OK && k <= APP_REPLY_ERROR;
}

size_t app_reply_unpack(const uint8_t *p, size_t len, struct app_reply *r) {
  if (len < 12)
    return 0;
  reply_reset(r, APP_REPLY_NULL);
  r->kind = p[0];
  r->code = p[1];
  r->integer = (int64_t)le_get_u64(p + 2);
  r->text_len = le_get_u16(p + 10);
  if (r->kind < APP_REPLY_OK || r->kind > APP_REPLY_ARRAY ||
      r->code > APP_E_OVERFLOW || r->text_len >= APP_REPLY_TEXT_MAX ||
      len - 12 < (size_t)r->text_len + 1)
    return 0;
  memcpy(r->text, p + 12, r->text_len);
  r->text[r->text_len] = '\0';
  size_t off = 12u + r->text_len;
  r->n_items = p[off++];
  if (r->n_items > APP_REPLY_ITEMS_MAX ||
      (r->n_items > 0 && r->kind != APP_REPLY_ARRAY) ||
      len - off < (size_t)r->n_items * 13)
    return 0;
  for (uint32_t i = 0; i < r->n_items; i++, off += 13) {
    struct app_reply_item *it = &r->items[i];
    it->kind = p[off];
    it->integer = (int64_t)le_get_u64(p + off + 1);
    it->off = le_get_u16(p + off + 9);
    it->len = le_get_u16(p + off + 11);
    if (!item_kind_valid(it->kind) || (uint32_t)it->off + it->len > r->text_len)
      return 0;
  }
  return off;
}

/* ---- Dedup tables ------------------------------------------------------- */

#define DEDUP_BLOB_BYTES_MAX                                                   \
  (1u + APP_DEDUP_EXTRAS_MAX * (1u + APP_ARG_BYTES_MAX) +                      \
   APP_REPLY_PACKED_BYTES_MAX)

static struct app_arg dedup_key(const void *ctx, uint32_t pos) {
  const struct app_dedup *t = ctx;
  assert(pos < t->cap);
  return app_str_arg(&t->ring[pos].id);
}

/* The arguments length-prefixed, so that no two commands give the same
 * bytes to the hash. BLAKE2b needs no sodium_init(): without it libsodium
 * runs its portable code, which gives the same digest (sabhad calls it and
 * gets the fastest code for its CPU). */
void app_fingerprint(const struct app_decoded *d, struct app_fingerprint *out) {
  crypto_generichash_state st;
  int rc = crypto_generichash_init(&st, NULL, 0, APP_FINGERPRINT_BYTES);
  uint8_t op = (uint8_t)d->op;
  rc |= crypto_generichash_update(&st, &op, 1);
  for (size_t i = 0; i < d->argc; i++) {
    uint8_t len[2];
    le_put_u16(len, (uint16_t)d->argv[i].len);
    rc |= crypto_generichash_update(&st, len, 2);
    rc |= crypto_generichash_update(&st, d->argv[i].ptr, d->argv[i].len);
  }
  rc |= crypto_generichash_final(&st, out->b, APP_FINGERPRINT_BYTES);
  assert(rc == 0); /* fails only for lengths out of BLAKE2b's range */
  (void)rc;
}

/* The fingerprint machines wrote into version-1 snapshots; kept only to
 * recognise the retries of the ids those snapshots hold. */
static uint64_t fingerprint_fnv64(const struct app_decoded *d) {
  uint8_t op = (uint8_t)d->op;
  uint64_t h = app_hash64(0xcbf29ce484222325ull, &op, 1);
  for (size_t i = 0; i < d->argc; i++) {
    uint8_t len[2];
    le_put_u16(len, (uint16_t)d->argv[i].len);
    h = app_hash64(h, len, 2);
    h = app_hash64(h, d->argv[i].ptr, d->argv[i].len);
  }
  return mix64(h);
}

static bool fingerprint_matches(const struct app_dedup_entry *e,
                                const struct app_decoded *d,
                                const struct app_fingerprint *fp) {
  if (e->fingerprint_kind == APP_FINGERPRINT_BLAKE2B)
    return memcmp(e->fingerprint.b, fp->b, APP_FINGERPRINT_BYTES) == 0;
  assert(e->fingerprint_kind == APP_FINGERPRINT_FNV64);
  return le_get_u64(e->fingerprint.b) == fingerprint_fnv64(d);
}

const struct app_dedup_entry *app_dedup_find(const struct app_dedup *t,
                                             struct app_arg id) {
  uint32_t pos = app_map_find(&t->by_id, id, dedup_key, t);
  return pos == APP_MAP_NONE ? NULL : &t->ring[pos];
}

bool app_dedup_unpack(const struct app_dedup_entry *e, struct app_arg *extras,
                      size_t *n_extras, struct app_reply *reply) {
  const uint8_t *p = e->blob;
  size_t len = e->blob_bytes;
  if (len < 1 || p[0] > APP_DEDUP_EXTRAS_MAX)
    return false;
  *n_extras = p[0];
  size_t off = 1;
  for (size_t i = 0; i < *n_extras; i++) {
    if (off >= len || p[off] > APP_ARG_BYTES_MAX || len - off - 1 < p[off])
      return false;
    extras[i].len = p[off];
    extras[i].ptr = p + off + 1;
    off += 1u + p[off];
  }
  size_t used = app_reply_unpack(p + off, len - off, reply);
  return used != 0 && off + used == len;
}

/* Would recording one more id break the window's promise? Only when the
 * table is full and even its oldest id is younger than the window. */
static bool dedup_full(const struct app *a, const struct app_dedup *t,
                       uint64_t now_ms) {
  assert(t->n <= a->cfg.dedup_max);
  if (t->n < a->cfg.dedup_max || a->cfg.dedup_window_ms == 0)
    return false;
  uint64_t oldest_ms = t->ring[t->head].recorded_ms;
  assert(oldest_ms <= now_ms); /* recorded on this clock, which only grows */
  return now_ms - oldest_ms < a->cfg.dedup_window_ms;
}

bool app_dedup_check(struct app *a, const struct app_dedup *t,
                     struct app_arg id, const struct app_decoded *d,
                     const struct app_fingerprint *fp, uint64_t now_ms,
                     struct app_reply *out) {
  assert(d != NULL && fp != NULL && now_ms >= a->clock_ms);
  if (a->cfg.bugs & APP_BUG_NO_DEDUP)
    return false; /* the bug: every retry applies again */
  const struct app_dedup_entry *e = app_dedup_find(t, id);
  if (e == NULL) {
    if (!dedup_full(a, t, now_ms))
      return false;
    /* Refused, not recorded: the same command sent later is new. */
    a->retry_table_full++;
    app_reply_error(out, APP_E_FULL,
                    "ERR retry table full: %u ids recorded in the last %u ms "
                    "(dedup-max, dedup-window-ms); try again later",
                    a->cfg.dedup_max, a->cfg.dedup_window_ms);
    return true;
  }
  if (!fingerprint_matches(e, d, fp)) {
    char text[APP_PRINTABLE_BYTES];
    app_reply_error(out, APP_E_ID_REUSED,
                    "ERR id %s was used for a different command",
                    app_printable(id, text));
    return true;
  }
  struct app_arg extras[APP_DEDUP_EXTRAS_MAX];
  size_t n_extras;
  bool ok = app_dedup_unpack(e, extras, &n_extras, out);
  assert(ok); /* written by app_dedup_record or checked by restore */
  (void)ok;
  out->duplicate = true;
  return true;
}

/* Makes the ring hold one more entry without moving afterwards: grows it
 * (linearised, oldest first) and rebuilds the index when it is full below
 * dedup_max. */
static int dedup_grow(const struct app *a, struct app_dedup *t) {
  if (t->n < t->cap || t->cap >= a->cfg.dedup_max)
    return 0;
  uint64_t cap = t->cap < 16 ? 16 : (uint64_t)t->cap * 2;
  if (cap > a->cfg.dedup_max)
    cap = a->cfg.dedup_max;
  int rc = app_map_reserve(&a->cfg, &t->by_id, cap);
  if (rc != 0)
    return rc;
  struct app_dedup_entry *ring =
      allocator_malloc(&a->cfg.alloc, (size_t)cap * sizeof *ring);
  if (ring == NULL)
    return SABHA_ENOMEM;
  for (uint32_t i = 0; i < t->n; i++)
    ring[i] = t->ring[(t->head + i) % t->cap];
  allocator_free(&a->cfg.alloc, t->ring);
  t->ring = ring;
  t->cap = (uint32_t)cap;
  t->head = 0;
  app_map_clear(&t->by_id);
  for (uint32_t i = 0; i < t->n; i++)
    app_map_insert(&t->by_id, app_str_arg(&ring[i].id), i);
  return 0;
}

int app_dedup_prepare(const struct app *a, struct app_dedup *t,
                      struct app_dedup_prep *prep) {
  prep->blob = NULL;
  int rc = dedup_grow(a, t);
  if (rc != 0)
    return rc;
  prep->blob = allocator_malloc(&a->cfg.alloc, DEDUP_BLOB_BYTES_MAX);
  return prep->blob == NULL ? SABHA_ENOMEM : 0;
}

void app_dedup_unprepare(const struct app *a, struct app_dedup_prep *prep) {
  allocator_free(&a->cfg.alloc, prep->blob);
  prep->blob = NULL;
}

static void dedup_evict_oldest(const struct app *a, struct app_dedup *t) {
  assert(t->n > 0);
  struct app_dedup_entry *e = &t->ring[t->head];
  app_map_remove(&t->by_id, app_str_arg(&e->id), dedup_key, t);
  allocator_free(&a->cfg.alloc, e->blob);
  e->blob = NULL;
  t->head = (t->head + 1) % t->cap;
  t->n--;
}

void app_dedup_record(const struct app *a, struct app_dedup *t,
                      struct app_dedup_prep *prep, struct app_arg id,
                      const struct app_fingerprint *fp, uint64_t now_ms,
                      const struct app_arg *extras, size_t n_extras,
                      const struct app_reply *reply) {
  assert(prep->blob != NULL && n_extras <= APP_DEDUP_EXTRAS_MAX);
  assert(t->n == 0 || now_ms >= t->ring[(t->head + t->n - 1) % t->cap]
                                    .recorded_ms); /* the ring stays sorted */
  assert(id.len > 0 && id.len <= APP_ARG_BYTES_MAX);
  uint8_t *p = prep->blob;
  size_t off = 0;
  p[off++] = (uint8_t)n_extras;
  for (size_t i = 0; i < n_extras; i++) {
    p[off++] = (uint8_t)extras[i].len;
    memcpy(p + off, extras[i].ptr, extras[i].len);
    off += extras[i].len;
  }
  off += app_reply_pack(reply, p + off);
  /* Give back the room not used; a failed shrink keeps the larger block. */
  uint8_t *shrunk = allocator_realloc(&a->cfg.alloc, p, off);
  if (shrunk != NULL)
    p = shrunk;
  prep->blob = NULL;

  uint32_t pos = app_map_find(&t->by_id, id, dedup_key, t);
  if (pos != APP_MAP_NONE) {
    /* Only with APP_BUG_NO_DEDUP: overwrite, keeping the entry's place and
     * time so that the ring stays in order. */
    allocator_free(&a->cfg.alloc, t->ring[pos].blob);
  } else {
    /* app_dedup_check refused the command if the oldest is in its window
     * (but for the NO_DEDUP bug, which never looks). */
    assert(!dedup_full(a, t, now_ms) || (a->cfg.bugs & APP_BUG_NO_DEDUP));
    if (t->n == a->cfg.dedup_max)
      dedup_evict_oldest(a, t);
    assert(t->n < t->cap);
    pos = (t->head + t->n) % t->cap;
    t->n++;
    app_str_set(&t->ring[pos].id, id);
    app_map_insert(&t->by_id, id, pos);
    t->ring[pos].recorded_ms = now_ms;
  }
  t->ring[pos].fingerprint_kind = APP_FINGERPRINT_BLAKE2B;
  t->ring[pos].fingerprint = *fp;
  t->ring[pos].blob = p;
  t->ring[pos].blob_bytes = (uint32_t)off;
}

void app_dedup_free(const struct app_config *cfg, struct app_dedup *t) {
  for (uint32_t i = 0; i < t->n; i++)
    allocator_free(&cfg->alloc, t->ring[(t->head + i) % t->cap].blob);
  allocator_free(&cfg->alloc, t->ring);
  app_map_free(cfg, &t->by_id);
  memset(t, 0, sizeof *t);
}

void app_dedup_write(struct app_w *w, const struct app_dedup *t) {
  app_w_u32(w, t->n);
  for (uint32_t i = 0; i < t->n; i++) {
    const struct app_dedup_entry *e = &t->ring[(t->head + i) % t->cap];
    assert(e->fingerprint_kind == APP_FINGERPRINT_FNV64 ||
           e->fingerprint_kind == APP_FINGERPRINT_BLAKE2B);
    app_w_str(w, &e->id);
    app_w_u8(w, e->fingerprint_kind);
    app_w_bytes(w, e->fingerprint.b, APP_FINGERPRINT_BYTES);
    app_w_u64(w, e->recorded_ms);
    app_w_u32(w, e->blob_bytes);
    app_w_bytes(w, e->blob, e->blob_bytes);
  }
}

/* An entry's fingerprint and time, as version 2 writes them or as version
 * 1 did (its FNV fingerprint, no time: 0, see the format). Checks that
 * the kind is known, that an FNV fingerprint is zero-padded (one encoding
 * per state) and that times never decrease and never pass the clock. */
static bool dedup_read_print(const struct app *a, struct app_r *r,
                             uint64_t prev_ms, struct app_dedup_entry *e) {
  memset(&e->fingerprint, 0, sizeof e->fingerprint);
  if (r->version == 1) {
    e->fingerprint_kind = APP_FINGERPRINT_FNV64;
    le_put_u64(e->fingerprint.b, app_r_u64(r));
    e->recorded_ms = 0;
    return !r->bad;
  }
  assert(r->version >= 2 && r->version <= SNAPSHOT_VERSION);
  e->fingerprint_kind = app_r_u8(r);
  const uint8_t *b = app_r_bytes(r, APP_FINGERPRINT_BYTES);
  e->recorded_ms = app_r_u64(r);
  if (r->bad)
    return false;
  memcpy(e->fingerprint.b, b, APP_FINGERPRINT_BYTES);
  if (e->recorded_ms < prev_ms || e->recorded_ms > a->clock_ms)
    return false;
  if (e->fingerprint_kind == APP_FINGERPRINT_BLAKE2B)
    return true;
  static const uint8_t zeros[APP_FINGERPRINT_BYTES - 8];
  return e->fingerprint_kind == APP_FINGERPRINT_FNV64 &&
         memcmp(b + 8, zeros, sizeof zeros) == 0;
}

int app_dedup_read(struct app *a, struct app_dedup *t, struct app_r *r) {
  assert(t->n == 0);
  assert(r->version >= SNAPSHOT_VERSION_MIN && r->version <= SNAPSHOT_VERSION);
  uint32_t n = app_r_u32(r);
  if (r->bad || n > a->cfg.dedup_max)
    return SABHA_ECORRUPT;
  uint64_t prev_ms = 0;
  for (uint32_t i = 0; i < n; i++) {
    struct app_dedup_entry e;
    app_r_str(r, &e.id);
    if (!dedup_read_print(a, r, prev_ms, &e))
      return SABHA_ECORRUPT;
    prev_ms = e.recorded_ms;
    e.blob_bytes = app_r_u32(r);
    if (r->bad || e.blob_bytes > DEDUP_BLOB_BYTES_MAX || e.id.len == 0)
      return SABHA_ECORRUPT;
    e.blob = (uint8_t *)app_r_bytes(r, e.blob_bytes);
    struct app_arg extras[APP_DEDUP_EXTRAS_MAX];
    size_t n_extras;
    struct app_reply reply;
    if (r->bad || !app_dedup_unpack(&e, extras, &n_extras, &reply) ||
        app_dedup_find(t, app_str_arg(&e.id)) != NULL)
      return SABHA_ECORRUPT;
    int rc = dedup_grow(a, t);
    if (rc != 0)
      return rc;
    uint8_t *blob = allocator_malloc(&a->cfg.alloc, e.blob_bytes);
    if (blob == NULL)
      return SABHA_ENOMEM;
    memcpy(blob, e.blob, e.blob_bytes);
    e.blob = blob;
    t->ring[t->n] = e; /* head is 0 while restoring */
    app_map_insert(&t->by_id, app_str_arg(&e.id), t->n);
    t->n++;
  }
  return 0;
}

/* ---- Snapshot writer and reader ----------------------------------------- */

void app_w_bytes(struct app_w *w, const void *p, size_t len) {
  if (len == 0)
    return;
  if (w->buf != NULL && w->n <= w->cap && len <= w->cap - w->n)
    memcpy(w->buf + w->n, p, len);
  if (w->hashing)
    w->hash = app_hash64(w->hash, p, len);
  w->n += len;
}

void app_w_u8(struct app_w *w, uint8_t v) {
  app_w_bytes(w, &v, 1);
}

void app_w_u32(struct app_w *w, uint32_t v) {
  uint8_t b[4];
  le_put_u32(b, v);
  app_w_bytes(w, b, 4);
}

void app_w_u64(struct app_w *w, uint64_t v) {
  uint8_t b[8];
  le_put_u64(b, v);
  app_w_bytes(w, b, 8);
}

void app_w_str(struct app_w *w, const struct app_str *s) {
  assert(s->len <= APP_ARG_BYTES_MAX);
  app_w_u8(w, s->len);
  app_w_bytes(w, s->b, s->len);
}

const uint8_t *app_r_bytes(struct app_r *r, size_t len) {
  if (r->bad || len > r->len - r->off) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p + r->off;
  r->off += len;
  return p;
}

uint8_t app_r_u8(struct app_r *r) {
  const uint8_t *p = app_r_bytes(r, 1);
  return p ? p[0] : 0;
}

uint32_t app_r_u32(struct app_r *r) {
  const uint8_t *p = app_r_bytes(r, 4);
  return p ? le_get_u32(p) : 0;
}

uint64_t app_r_u64(struct app_r *r) {
  const uint8_t *p = app_r_bytes(r, 8);
  return p ? le_get_u64(p) : 0;
}

void app_r_str(struct app_r *r, struct app_str *s) {
  s->len = app_r_u8(r);
  if (s->len > APP_ARG_BYTES_MAX) {
    r->bad = true;
    s->len = 0;
    return;
  }
  const uint8_t *p = app_r_bytes(r, s->len);
  if (p == NULL)
    s->len = 0;
  else if (s->len > 0)
    memcpy(s->b, p, s->len);
}

bool app_r_count_fits(const struct app_r *r, uint64_t n, size_t min_bytes) {
  assert(min_bytes > 0 && r->off <= r->len);
  return n <= (r->len - r->off) / min_bytes;
}

/* ---- The machine -------------------------------------------------------- */

static bool rules_valid(const struct app_rules *r) {
  return r->dedup_max >= 1 && r->dedup_max <= DEDUP_MAX_LIMIT &&
         r->dedup_window_ms <= APP_DEDUP_WINDOW_MS_LIMIT;
}

static bool config_valid(const struct app_config *c) {
  struct app_rules r = {c->dedup_max, c->dedup_window_ms};
  return rules_valid(&r) && c->objects_max >= 1 &&
         c->objects_max <= OBJECTS_MAX_LIMIT;
}

int app_new(struct app **out, const struct app_config *config) {
  assert(out != NULL);
  if (config == NULL)
    config = &app_config_default;
  if (!config_valid(config))
    return SABHA_EINVAL;
  struct app *a = allocator_zalloc(&config->alloc, sizeof *a);
  if (a == NULL)
    return SABHA_ENOMEM;
  a->cfg = *config;
  a->settings.dedup_max = config->dedup_max;
  a->settings.dedup_window_ms = config->dedup_window_ms;
  *out = a;
  return 0;
}

void app_free(struct app *a) {
  if (a == NULL)
    return;
  struct app_config cfg = a->cfg;
  app_ledger_free(&cfg, &a->ledger);
  app_seats_free(&cfg, &a->seats);
  app_locks_free(&cfg, &a->locks, &a->fenced);
  app_orders_free(&cfg, &a->orders);
  allocator_free(&cfg.alloc, a);
}

void app_clock_advance(struct app *a, uint64_t now_ms) {
  assert(a != NULL);
  if (now_ms > a->clock_ms)
    a->clock_ms = now_ms;
  app_locks_clock_moved(a);
}

uint64_t app_visits(const struct app *a) {
  assert(a != NULL);
  return a->visits;
}

bool app_rules_in_force(const struct app *a, struct app_rules *out) {
  assert(a != NULL && out != NULL);
  out->dedup_max = a->cfg.dedup_max;
  out->dedup_window_ms = a->cfg.dedup_window_ms;
  return a->rules_recorded;
}

uint64_t app_retry_table_full(const struct app *a) {
  assert(a != NULL);
  return a->retry_table_full;
}

uint64_t app_clock_ms(const struct app *a) {
  assert(a != NULL);
  return a->clock_ms;
}

static void reply_wrong_arity(struct app_reply *out,
                              const struct app_command *row) {
  char lower[32];
  size_t i = 0;
  for (; row->name[i] != '\0' && i + 1 < sizeof lower; i++) {
    char c = row->name[i];
    lower[i] = c >= 'A' && c <= 'Z' ? c + 32 : c;
  }
  lower[i] = '\0';
  app_reply_error(out, APP_E_SYNTAX,
                  "ERR wrong number of arguments for '%s' command", lower);
}

static int dispatch_write(struct app *a, const struct app_decoded *d,
                          uint64_t now_ms, struct app_reply *out) {
  switch (d->op) {
  case APP_LEDGER_OPEN:
  case APP_LEDGER_TRANSFER:
    return app_ledger_apply(a, d, now_ms, out);
  case APP_SEATS_ADD:
  case APP_SEATS_BOOK:
  case APP_SEATS_ANY:
  case APP_SEATS_CANCEL:
    return app_seats_apply(a, d, now_ms, out);
  case APP_LOCK_ACQUIRE:
  case APP_LOCK_RENEW:
  case APP_LOCK_RELEASE:
  case APP_FENCED_SET:
    return app_locks_apply(a, d, now_ms, out);
  case APP_ORDER_CREATE:
  case APP_ORDER_ADVANCE:
  case APP_ORDER_CANCEL:
    return app_orders_apply(a, d, now_ms, out);
  default:
    assert(false && "not a write op");
    return SABHA_EINVAL;
  }
}

/* Reads a rules entry of exactly the form app_encode_rules writes: one
 * encoding per entry, so that no two byte strings mean the same rules. */
static bool rules_decode(const uint8_t *cmd, size_t len, uint64_t *now_ms,
                         struct app_rules *out) {
  if (len != APP_RULES_CMD_BYTES || cmd[1] != APP_FORMAT_VERSION || cmd[3] != 2)
    return false;
  const uint8_t *p = cmd + APP_CMD_HEADER_BYTES;
  if (le_get_u16(p) != 4 || le_get_u16(p + 6) != 4)
    return false;
  *now_ms = le_get_u64(cmd + 4);
  out->dedup_max = le_get_u32(p + 2);
  out->dedup_window_ms = le_get_u32(p + 8);
  return true;
}

/* A smaller dedup_max: the oldest ids go first, as they would have gone one
 * at a time had the table been full under it. The same on every replica,
 * since the ring's order is part of the state. */
static void dedup_fit(const struct app *a, struct app_dedup *t) {
  while (t->n > a->cfg.dedup_max)
    dedup_evict_oldest(a, t);
}

static int apply_rules(struct app *a, const uint8_t *cmd, size_t len,
                       struct app_reply *out) {
  assert(cmd[2] == APP_OP_RULES);
  uint64_t stamp_ms = 0;
  struct app_rules r;
  if (!rules_decode(cmd, len, &stamp_ms, &r)) {
    app_reply_error(out, APP_E_SYNTAX, "ERR malformed retry rules entry");
    return SABHA_ECORRUPT;
  }
  if (!rules_valid(&r)) {
    app_reply_error(out, APP_E_SYNTAX,
                    "ERR retry rules out of bounds: dedup-max %u (1 to %u), "
                    "dedup-window-ms %u (at most %u); not applied",
                    r.dedup_max, DEDUP_MAX_LIMIT, r.dedup_window_ms,
                    APP_DEDUP_WINDOW_MS_LIMIT);
    return SABHA_ECORRUPT;
  }
  a->cfg.dedup_max = r.dedup_max;
  a->cfg.dedup_window_ms = r.dedup_window_ms;
  a->rules_recorded = true;
  dedup_fit(a, &a->ledger.dedup);
  dedup_fit(a, &a->seats.dedup);
  if (stamp_ms > a->clock_ms)
    a->clock_ms = stamp_ms;
  app_locks_clock_moved(a);
  app_reply_ok(out, false);
  return 0;
}

int app_apply(struct app *a, const uint8_t *cmd, size_t len,
              struct app_reply *out) {
  assert(a != NULL && out != NULL);
  if (len > 2 && cmd != NULL && cmd[0] == APP_CMD_MAGIC &&
      cmd[2] == APP_OP_RULES)
    return apply_rules(a, cmd, len, out);
  struct app_decoded d;
  if (app_decode(cmd, len, &d) != 0) {
    app_reply_error(out, APP_E_SYNTAX, "ERR malformed app command");
    return SABHA_ECORRUPT;
  }
  const struct app_command *row = app_command_of(d.op);
  assert(row != NULL);
  if (!row->write) {
    app_reply_error(out, APP_E_SYNTAX, "ERR %s is a read, not a command",
                    row->name);
    return SABHA_EINVAL;
  }
  uint64_t now_ms = d.hdr.now_ms > a->clock_ms ? d.hdr.now_ms : a->clock_ms;
  int rc = 0;
  if (d.argc < row->argc_min || d.argc > row->argc_max)
    reply_wrong_arity(out, row);
  else
    rc = dispatch_write(a, &d, now_ms, out);
  if (rc != 0) {
    assert(rc == SABHA_ENOMEM);
    app_reply_error(out, APP_E_FULL, "ERR out of memory");
    return rc;
  }
  a->clock_ms = now_ms; /* the maximum stamp: never runs backwards */
  app_locks_clock_moved(a);
  return 0;
}

int app_read(const struct app *a, enum app_op op, const struct app_arg *argv,
             size_t argc, uint64_t now_ms, struct app_reply *out) {
  assert(a != NULL && out != NULL && (argv != NULL || argc == 0));
  const struct app_command *row = app_command_of(op);
  if (row == NULL || row->write) {
    app_reply_error(out, APP_E_SYNTAX, "ERR not a read");
    return SABHA_EINVAL;
  }
  if (argc < row->argc_min || argc > row->argc_max) {
    reply_wrong_arity(out, row);
    return 0;
  }
  for (size_t i = 0; i < argc; i++)
    if (argv[i].len > APP_ARG_BYTES_MAX ||
        (argv[i].ptr == NULL && argv[i].len)) {
      app_reply_error(out, APP_E_SYNTAX,
                      "ERR argument %zu is longer than %u bytes", i + 1,
                      APP_ARG_BYTES_MAX);
      return 0;
    }
  uint64_t at_ms = now_ms > a->clock_ms ? now_ms : a->clock_ms;
  switch (op) {
  case APP_LEDGER_BALANCE:
  case APP_LEDGER_TX:
  case APP_LEDGER_AUDIT:
    app_ledger_read(a, op, argv, argc, out);
    break;
  case APP_SEATS_FREE:
  case APP_SEATS_PNR:
    app_seats_read(a, op, argv, argc, out);
    break;
  case APP_LOCK_GET:
  case APP_FENCED_GET:
    app_locks_read(a, op, argv, argc, at_ms, out);
    break;
  case APP_ORDER_GET:
    app_orders_read(a, op, argv, argc, out);
    break;
  default:
    assert(false && "not a read op");
  }
  return 0;
}

/* ---- Snapshots and the state hash --------------------------------------- */

static void write_state(struct app_w *w, const struct app *a) {
  app_w_bytes(w, SNAPSHOT_MAGIC, 4);
  app_w_u8(w, SNAPSHOT_VERSION);
  app_w_u64(w, a->clock_ms);
  app_w_u8(w, a->rules_recorded ? 1 : 0);
  if (a->rules_recorded) {
    app_w_u32(w, a->cfg.dedup_max);
    app_w_u32(w, a->cfg.dedup_window_ms);
  }
  app_ledger_write(w, a);
  app_seats_write(w, a);
  app_locks_write(w, a);
  app_orders_write(w, a);
}

size_t app_snapshot_size(const struct app *a) {
  struct app_w w = {NULL, 0, 0, 0, false};
  write_state(&w, a);
  return w.n + SNAPSHOT_TRAILER_BYTES;
}

size_t app_snapshot(const struct app *a, uint8_t *buf, size_t cap) {
  assert(a != NULL && buf != NULL);
  struct app_w w = {buf, cap, 0, 0, false};
  write_state(&w, a);
  assert(w.n + SNAPSHOT_TRAILER_BYTES <= cap);
  uint32_t crc = wal_crc32c(0, buf, w.n);
  app_w_u32(&w, crc);
  /* Read back what matters most: the trailer covers what was written. */
  assert(wal_crc32c(0, buf, w.n - SNAPSHOT_TRAILER_BYTES) == crc);
  return w.n;
}

uint64_t app_state_hash(const struct app *a) {
  assert(a != NULL);
  struct app_w w = {NULL, 0, 0, 0xcbf29ce484222325ull, true};
  write_state(&w, a);
  return mix64(w.hash ^ w.n);
}

/* The rules a snapshot recorded, before the tables whose bound they are. */
static bool restore_rules(struct app *fresh, struct app_r *r) {
  uint8_t recorded = app_r_u8(r);
  if (r->bad || recorded > 1)
    return false;
  if (recorded == 0)
    return true;
  struct app_rules rules;
  rules.dedup_max = app_r_u32(r);
  rules.dedup_window_ms = app_r_u32(r);
  if (r->bad || !rules_valid(&rules))
    return false;
  fresh->cfg.dedup_max = rules.dedup_max;
  fresh->cfg.dedup_window_ms = rules.dedup_window_ms;
  fresh->rules_recorded = true;
  return true;
}

static int restore_into(struct app *fresh, const uint8_t *data, size_t len) {
  struct app_r r = {data, len - SNAPSHOT_TRAILER_BYTES, 0, false, 0};
  const uint8_t *magic = app_r_bytes(&r, 4);
  r.version = app_r_u8(&r);
  fresh->clock_ms = app_r_u64(&r);
  if (r.bad || memcmp(magic, SNAPSHOT_MAGIC, 4) != 0 ||
      r.version < SNAPSHOT_VERSION_MIN || r.version > SNAPSHOT_VERSION)
    return SABHA_ECORRUPT;
  if (r.version >= 3 && !restore_rules(fresh, &r))
    return SABHA_ECORRUPT;
  int rc = app_ledger_restore(fresh, &r);
  if (rc == 0)
    rc = app_seats_restore(fresh, &r);
  if (rc == 0)
    rc = app_locks_restore(fresh, &r);
  if (rc == 0)
    rc = app_orders_restore(fresh, &r);
  if (rc == 0 && (r.bad || r.off != r.len))
    rc = SABHA_ECORRUPT; /* exactly one snapshot, nothing after it */
  return rc;
}

int app_restore(struct app *a, const uint8_t *data, size_t len) {
  assert(a != NULL);
  if (data == NULL || len < 4 + 1 + 8 + SNAPSHOT_TRAILER_BYTES)
    return SABHA_ECORRUPT;
  uint32_t crc = le_get_u32(data + len - SNAPSHOT_TRAILER_BYTES);
  if (wal_crc32c(0, data, len - SNAPSHOT_TRAILER_BYTES) != crc)
    return SABHA_ECORRUPT;
  /* From the config's rules: a snapshot that recorded none leaves them in
   * force, whatever rules entries this machine had applied. */
  struct app_config cfg = a->cfg;
  cfg.dedup_max = a->settings.dedup_max;
  cfg.dedup_window_ms = a->settings.dedup_window_ms;
  struct app *fresh;
  int rc = app_new(&fresh, &cfg);
  if (rc != 0)
    return rc;
  rc = restore_into(fresh, data, len);
  if (rc != 0) {
    app_free(fresh);
    return rc;
  }
  fresh->retry_table_full = a->retry_table_full; /* history, not state */
  struct app old = *a;
  *a = *fresh;
  *fresh = old;
  app_free(fresh);
  return 0;
}
