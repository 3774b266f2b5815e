/* What the files of the replicated applications share (src/sm/app*.c):
 * the records of each application, the dedup table, replies, parsing, memory
 * and the snapshot writer and reader. Nothing here is public; app.h is the
 * contract.
 *
 * Every record lives in an array in the order it was made and is found
 * through an app_map index. Records are never deleted (a released lock keeps
 * its token counter, a cancelled PNR its history), so an array position is a
 * record's identity for as long as the machine lives; only the dedup tables
 * forget, first in first out.
 *
 * The rule that keeps an out-of-memory apply harmless: a handler first takes
 * every byte it may need (app_vec_reserve, app_map_reserve,
 * app_dedup_prepare), and only then changes the state; nothing after that can
 * fail. */
#ifndef SABHA_SM_APP_INTERNAL_H
#define SABHA_SM_APP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm/app.h"
#include "sm/app_map.h"

#define APP_GROUP_KEY_BYTES_MAX (1u + 2u * APP_ARG_BYTES_MAX)
#define APP_SEAT_KEY_BYTES_MAX (4u + APP_ARG_BYTES_MAX)
#define APP_TTL_MS_MAX 86400000u /* one day */

/* A name or value kept in a record. */
struct app_str {
  uint8_t len;
  uint8_t b[APP_ARG_BYTES_MAX];
};

/* ---- Dedup tables -------------------------------------------------------- */

/* A command's fingerprint: BLAKE2b of its op and arguments, 128 bits
 * (app_fingerprint). */
#define APP_FINGERPRINT_BYTES 16u
struct app_fingerprint {
  uint8_t b[APP_FINGERPRINT_BYTES];
};

/* How an entry's fingerprint was made. Entries read from a version-1
 * snapshot carry the 64-bit FNV-1a of the machines that wrote it, and are
 * compared with that function until they are forgotten. */
enum app_fingerprint_kind {
  APP_FINGERPRINT_FNV64 = 1,   /* first 8 bytes, little-endian; rest zero */
  APP_FINGERPRINT_BLAKE2B = 2, /* all 16 bytes */
};

/* One remembered id: the fingerprint of its command, when it was recorded
 * (the machine's clock) and a blob holding the extra fields a read may show
 * (LEDGER.TX's from, to, amount) and the reply, packed (app_reply_pack). */
struct app_dedup_entry {
  struct app_str id;
  uint8_t fingerprint_kind; /* enum app_fingerprint_kind */
  struct app_fingerprint fingerprint;
  uint64_t recorded_ms;
  uint8_t *blob;
  uint32_t blob_bytes;
};

/* A FIFO ring of at most dedup_max entries, oldest at head; recorded_ms
 * never decreases from head to tail (the clock never runs backwards). */
struct app_dedup {
  struct app_dedup_entry *ring;
  uint32_t head, n, cap;
  struct app_map by_id;
};

/* What app_dedup_prepare took, for app_dedup_record to use. */
struct app_dedup_prep {
  uint8_t *blob; /* room for the largest record */
};

#define APP_DEDUP_EXTRAS_MAX 3u

/* ---- Heaps (app_heap.c) -------------------------------------------------- */

/* A min-heap of record positions; each record keeps its place in it. */
struct app_heap {
  uint32_t *v;
  uint32_t n, cap;
};

/* How a heap reads its records: whether x goes before y (a total order),
 * and where record x keeps its place (index + 1; 0: not in the heap). */
struct app_heap_ops {
  bool (*before)(const void *ctx, uint32_t x, uint32_t y);
  uint32_t *(*at)(void *ctx, uint32_t x);
};

/* Puts record x in the heap, or moves it after its key changed; room was
 * reserved. Adds the steps taken to *visits. */
void app_heap_set(struct app_heap *h, const struct app_heap_ops *ops, void *ctx,
                  uint32_t x, uint64_t *visits);
/* Takes record x out of the heap, if it is there. */
void app_heap_remove(struct app_heap *h, const struct app_heap_ops *ops,
                     void *ctx, uint32_t x, uint64_t *visits);
/* Room for n_total records without growing. 0 or SABHA_ENOMEM. */
int app_heap_reserve(const struct app_config *cfg, struct app_heap *h,
                     uint64_t n_total);
void app_heap_free(const struct app_config *cfg, struct app_heap *h);

/* ---- The applications ---------------------------------------------------- */

struct app_account {
  struct app_str name;
  int64_t balance;
  int64_t opened_with;
};

struct app_ledger {
  struct app_account *v;
  uint32_t n, cap;
  struct app_map by_name;
  int64_t total; /* the sum of balances; money is never made or lost */
  struct app_dedup dedup;
};

/* The seats of one train on one date, in the order they were added, and
 * its free seats in a heap by that order, so that SEATS.ANY takes the
 * first free one in O(log n) whatever was booked and cancelled before. */
struct app_group {
  uint8_t key[APP_GROUP_KEY_BYTES_MAX]; /* u8 train_len | train | date */
  uint8_t key_len;
  uint32_t *seats; /* positions in app_seats.v */
  uint32_t n, cap;
  uint32_t n_free;
  struct app_heap free; /* positions in app_seats.v; room for n */
};

struct app_seat {
  uint8_t key[APP_SEAT_KEY_BYTES_MAX]; /* u32 group | seat name */
  uint8_t key_len;
  uint32_t group;
  uint32_t in_group; /* its index in the group's list */
  uint32_t free_at;  /* its place in the group's free heap + 1; 0: booked */
  uint64_t pnr;      /* 0: free */
};

struct app_pnr {
  uint32_t seat;
  bool cancelled;
  struct app_str passenger;
};

struct app_seats {
  struct app_group *groups;
  uint32_t n_groups, cap_groups;
  struct app_map group_by_key;
  struct app_seat *v;
  uint32_t n, cap;
  uint32_t n_free; /* of all groups: INFO counts without a walk */
  struct app_map by_key;
  struct app_pnr *pnrs; /* PNR number k is pnrs[k - 1] */
  uint32_t n_pnrs, cap_pnrs;
  struct app_dedup dedup;
};

struct app_lock {
  struct app_str name;
  struct app_str owner; /* empty: never granted or released */
  uint64_t token;       /* the current grant's; 0 when released */
  uint64_t token_max;   /* the newest ever granted */
  uint64_t expires_ms;
  uint32_t heap_at; /* its place in app_locks.heap + 1; 0: not there */
};

/* The locks, and a min-heap by expiry of those held at the machine's clock
 * (app_next_expiry_ms): a grant, renewal or release moves one entry, and a
 * clock that passes an expiry takes it out, so that a host asking every
 * tick for the next expiry does not walk every lock ever made. The heap
 * decides no reply and no order, and is built again on restore. */
struct app_locks {
  struct app_lock *v;
  uint32_t n, cap;
  struct app_map by_name;
  struct app_heap held; /* positions in v; room for every lock */
};

struct app_fenced_key {
  struct app_str key;
  struct app_str value;
};

struct app_fenced {
  struct app_fenced_key *v;
  uint32_t n, cap;
  struct app_map by_key;
};

struct app_order {
  struct app_str id;
  struct app_str customer;
  int64_t amount;
  uint8_t state;          /* enum app_order_state */
  uint8_t cancelled_from; /* the state it was cancelled in, else 0 */
};

struct app_orders {
  struct app_order *v;
  uint32_t n, cap;
  struct app_map by_id;
};

struct app {
  /* cfg.dedup_max and cfg.dedup_window_ms are the rules in force; the
   * config's own, given to app_new, stay in `settings` for a restore. */
  struct app_config cfg;
  struct app_rules settings;
  bool rules_recorded; /* set by a rules entry, not by the config */
  uint64_t clock_ms;
  uint64_t objects; /* accounts, seats, PNRs, locks, fenced keys, orders */
  struct app_ledger ledger;
  struct app_seats seats;
  struct app_locks locks;
  struct app_fenced fenced;
  struct app_orders orders;
  uint64_t visits; /* records visited beyond those named: app_visits() */
  uint64_t retry_table_full; /* app_retry_table_full() */
};

/* ---- Memory -------------------------------------------------------------- */

/* Grows *v (elements of elem_bytes, *cap of them) to hold need. */
int app_vec_reserve(const struct app_config *cfg, void **v, uint32_t *cap,
                    uint64_t need, size_t elem_bytes);
/* Room for n more objects under objects_max? */
bool app_objects_room(const struct app *a, uint64_t n);

/* ---- Bytes, names, numbers ----------------------------------------------- */

uint64_t app_hash64(uint64_t h, const void *p, size_t len);
bool app_arg_equal(struct app_arg x, struct app_arg y);
void app_str_set(struct app_str *s, struct app_arg arg);
struct app_arg app_str_arg(const struct app_str *s);
/* Copies arg into out (APP_ARG_BYTES_MAX + 1 bytes) as printable text, for
 * error messages: bytes outside ' '..'~' become '?'. Returns out. */
const char *app_printable(struct app_arg arg, char *out);
#define APP_PRINTABLE_BYTES (APP_ARG_BYTES_MAX + 1u)
/* Parses a decimal in 0..INT64_MAX: digits only, no sign, no leading zero
 * but "0" itself. Returns APP_DONE, APP_E_SYNTAX or APP_E_OVERFLOW. */
enum app_code app_parse_i64(struct app_arg arg, int64_t *out);
/* The reply for a number that failed app_parse_i64 with code. */
void app_reply_bad_number(struct app_reply *out, enum app_code code,
                          const char *what, struct app_arg arg);
/* An error reply unless arg is a non-empty name; returns true when it is. */
bool app_need_name(struct app_reply *out, const char *what, struct app_arg arg);

/* ---- Replies ------------------------------------------------------------- */

void app_reply_ok(struct app_reply *r, bool duplicate);
void app_reply_int(struct app_reply *r, int64_t v);
void app_reply_bulk(struct app_reply *r, const void *p, size_t len);
void app_reply_null(struct app_reply *r);
void app_reply_error(struct app_reply *r, enum app_code code, const char *fmt,
                     ...) __attribute__((format(printf, 3, 4)));
void app_reply_array(struct app_reply *r);
void app_reply_push_bulk(struct app_reply *r, const void *p, size_t len);
void app_reply_push_int(struct app_reply *r, int64_t v);

#define APP_REPLY_PACKED_BYTES_MAX                                             \
  (1u + 1u + 8u + 2u + APP_REPLY_TEXT_MAX + 1u + APP_REPLY_ITEMS_MAX * 13u)
/* Writes r compactly into buf (APP_REPLY_PACKED_BYTES_MAX) and returns the
 * bytes written; app_reply_unpack reads one back, checking every field, and
 * returns the bytes read or 0 when malformed. */
size_t app_reply_pack(const struct app_reply *r, uint8_t *buf);
size_t app_reply_unpack(const uint8_t *p, size_t len, struct app_reply *r);

/* ---- Dedup --------------------------------------------------------------- */

/* The fingerprint of a command: its op and every argument. */
void app_fingerprint(const struct app_decoded *d, struct app_fingerprint *out);
/* Looks up id (unless the NO_DEDUP bug is on). Returns true when *out is the
 * answer: the saved reply with duplicate set, an id-reused error, or, for an
 * id not in the table, the refusal of a table full of ids recorded less than
 * dedup_window_ms before now_ms (APP_E_FULL; nothing recorded but the
 * count of app_retry_table_full). False: the
 * command is new and app_dedup_record will find room for it. d is the
 * command whose fingerprint fp is (entries of version-1 snapshots compare
 * it their own way). */
bool app_dedup_check(struct app *a, const struct app_dedup *t,
                     struct app_arg id, const struct app_decoded *d,
                     const struct app_fingerprint *fp, uint64_t now_ms,
                     struct app_reply *out);
/* Takes the memory app_dedup_record needs. 0 or SABHA_ENOMEM. */
int app_dedup_prepare(const struct app *a, struct app_dedup *t,
                      struct app_dedup_prep *prep);
/* Gives back what a prepare took when the command stops before recording. */
void app_dedup_unprepare(const struct app *a, struct app_dedup_prep *prep);
/* Records id's reply with extras (may be NULL when n_extras is 0), at
 * now_ms; cannot fail; evicts the oldest id when dedup_max are kept (which
 * app_dedup_check allowed). */
void app_dedup_record(const struct app *a, struct app_dedup *t,
                      struct app_dedup_prep *prep, struct app_arg id,
                      const struct app_fingerprint *fp, uint64_t now_ms,
                      const struct app_arg *extras, size_t n_extras,
                      const struct app_reply *reply);
/* The saved entry for id, or NULL; extras and reply unpacked. */
const struct app_dedup_entry *app_dedup_find(const struct app_dedup *t,
                                             struct app_arg id);
/* Unpacks an entry's blob. Returns false when it is malformed. */
bool app_dedup_unpack(const struct app_dedup_entry *e, struct app_arg *extras,
                      size_t *n_extras, struct app_reply *reply);
void app_dedup_free(const struct app_config *cfg, struct app_dedup *t);

/* ---- Snapshot writer and reader ------------------------------------------ */

/* Writes into buf while it fits, counts every byte and hashes them, so one
 * walk of the state serves app_snapshot_size, app_snapshot and
 * app_state_hash. */
struct app_w {
  uint8_t *buf;
  size_t cap;
  size_t n;
  uint64_t hash;
  bool hashing; /* fold what is written into `hash` (app_state_hash) */
};
void app_w_bytes(struct app_w *w, const void *p, size_t len);
void app_w_u8(struct app_w *w, uint8_t v);
void app_w_u32(struct app_w *w, uint32_t v);
void app_w_u64(struct app_w *w, uint64_t v);
void app_w_str(struct app_w *w, const struct app_str *s);

/* Reads with every length checked; once anything is out of bounds or
 * invalid, bad is set and every later read returns zeros. */
struct app_r {
  const uint8_t *p;
  size_t len;
  size_t off;
  bool bad;
  uint8_t version; /* the snapshot's format version */
};
const uint8_t *app_r_bytes(struct app_r *r, size_t len);
uint8_t app_r_u8(struct app_r *r);
uint32_t app_r_u32(struct app_r *r);
uint64_t app_r_u64(struct app_r *r);
void app_r_str(struct app_r *r, struct app_str *s);
/* Could n records of at least min_bytes each still follow? (So that a count
 * is checked before memory is taken for it.) */
bool app_r_count_fits(const struct app_r *r, uint64_t n, size_t min_bytes);

void app_dedup_write(struct app_w *w, const struct app_dedup *t);
/* Reads a table in the format of r->version (1 to 3); a->clock_ms is the
 * snapshot's clock, read already. Version-1 entries are given 0 as the
 * time they were recorded (app.c, the format). */
int app_dedup_read(struct app *a, struct app_dedup *t, struct app_r *r);

/* ---- The applications' entry points ---------------------------------------
 *
 * Write handlers get a decoded command whose arity was checked against the
 * table and now_ms, the clock this command runs at (max of the machine's and
 * its stamp). They return 0 with *out set, or SABHA_ENOMEM with the state
 * unchanged. Read handlers never change anything. Each application writes
 * and reads its snapshot section; a read returns 0, SABHA_ECORRUPT or
 * SABHA_ENOMEM and works on a fresh machine only. */

int app_ledger_apply(struct app *a, const struct app_decoded *d,
                     uint64_t now_ms, struct app_reply *out);
void app_ledger_read(const struct app *a, enum app_op op,
                     const struct app_arg *argv, size_t argc,
                     struct app_reply *out);
void app_ledger_write(struct app_w *w, const struct app *a);
int app_ledger_restore(struct app *a, struct app_r *r);
void app_ledger_free(const struct app_config *cfg, struct app_ledger *l);

int app_seats_apply(struct app *a, const struct app_decoded *d, uint64_t now_ms,
                    struct app_reply *out);
void app_seats_read(const struct app *a, enum app_op op,
                    const struct app_arg *argv, size_t argc,
                    struct app_reply *out);
void app_seats_write(struct app_w *w, const struct app *a);
int app_seats_restore(struct app *a, struct app_r *r);
void app_seats_free(const struct app_config *cfg, struct app_seats *s);
/* "PNR" and the number, zero-padded to 10 digits; returns the length. */
size_t app_pnr_format(uint64_t pnr, char *out, size_t cap);

int app_locks_apply(struct app *a, const struct app_decoded *d, uint64_t now_ms,
                    struct app_reply *out);
/* Takes out of the expiry heap the locks the machine's clock has passed;
 * after every change of clock_ms. */
void app_locks_clock_moved(struct app *a);
void app_locks_read(const struct app *a, enum app_op op,
                    const struct app_arg *argv, size_t argc, uint64_t now_ms,
                    struct app_reply *out);
void app_locks_write(struct app_w *w, const struct app *a);
int app_locks_restore(struct app *a, struct app_r *r);
void app_locks_free(const struct app_config *cfg, struct app_locks *l,
                    struct app_fenced *f);

int app_orders_apply(struct app *a, const struct app_decoded *d,
                     uint64_t now_ms, struct app_reply *out);
void app_orders_read(const struct app *a, enum app_op op,
                     const struct app_arg *argv, size_t argc,
                     struct app_reply *out);
void app_orders_write(struct app_w *w, const struct app *a);
int app_orders_restore(struct app *a, struct app_r *r);
void app_orders_free(const struct app_config *cfg, struct app_orders *o);

#endif
