/* The applications consensus exists for: a payments ledger, seat booking,
 * locks with fencing tokens and order workflows, as one replicated state
 * machine (`struct app`).
 *
 * Like src/sm/kvstore.h, it knows nothing of its hosts: sabhad turns RESP
 * commands into app commands, the simulator builds them from its workloads;
 * both propose the bytes through the log and feed committed commands to
 * app_apply() on every replica in the same order. Applying the same commands
 * in the same order gives the same state and the same replies everywhere.
 * Reads are not commands: a host serves them with app_read() once its
 * engine's ReadIndex says the state is current enough.
 *
 * Commands are the RESP argument vectors users type, minus the command name
 * (which becomes `op`), so one table (app_commands()) serves sabhad's parser,
 * the simulator's workloads and the docs:
 *
 *   LEDGER.OPEN account initial_paise          +OK
 *   LEDGER.TRANSFER txid from to amount_paise  +OK | -ERR insufficient funds..
 *   LEDGER.BALANCE account                     :paise              (read)
 *   LEDGER.TX txid                             outcome or nil      (read)
 *   LEDGER.AUDIT                               [accounts, total]   (read)
 *   SEATS.ADD train date seat [seat ...]       :seats added
 *   SEATS.BOOK request_id train date seat passenger    $PNR
 *   SEATS.ANY request_id train date passenger  [PNR, seat]
 *   SEATS.CANCEL pnr                           +OK
 *   SEATS.FREE train date                      :free seats         (read)
 *   SEATS.PNR pnr                    [train, date, seat, passenger, status]
 *   LOCK.ACQUIRE name owner ttl_ms             :fencing token
 *   LOCK.RENEW name owner token ttl_ms         :token
 *   LOCK.RELEASE name owner token              +OK
 *   LOCK.GET name                    [owner, token, ms left] or nil (read)
 *   FENCED.SET key value name token            +OK | -ERR stale token
 *   FENCED.GET key                             $value or nil       (read)
 *   ORDER.CREATE order_id customer amount_paise        +OK
 *   ORDER.ADVANCE order_id STATE               +OK | -ERR invalid transition
 *   ORDER.CANCEL order_id                      +OK
 *   ORDER.GET order_id               [state, customer, amount] or nil (read)
 *
 * Exactly once. Every command that changes state is safe to retry:
 *   - LEDGER.TRANSFER, SEATS.BOOK and SEATS.ANY carry an id the client
 *     chooses (txid, request_id). The machine keeps up to dedup_max ids
 *     with a fingerprint of their command (BLAKE2b, 128 bits: no one can
 *     craft another command that passes for a retry of someone else's), the
 *     clock_ms at which each was recorded, and their reply; a retry gets the
 *     saved reply (`duplicate` set) and changes nothing, even when the table
 *     is full; the same id with a different command is refused.
 *   - An id is kept at least dedup_window_ms after it was recorded. When
 *     the table is full and its oldest id is younger than that, a command
 *     with a new id is refused (APP_E_FULL, "retry table full"): neither
 *     applied nor recorded, so the client may send it again later, as new.
 *     Otherwise the oldest id is forgotten (first in, first out). A flood
 *     of new ids can therefore only make new commands wait; it cannot make
 *     a retry sent within the window apply twice. A retry later than the
 *     window may be applied as new, but only once dedup_max newer ids have
 *     come since: clients must retry within the window (sabhad: 5 s and
 *     100,000 ids per application by default) and, past it, ask what
 *     happened (LEDGER.TX) before sending again. dedup_window_ms 0 keeps
 *     the newest dedup_max ids, whatever their age. The table travels in
 *     snapshots.
 *   - The retry rules (dedup_max, dedup_window_ms) decide replies, so they
 *     are part of the replicated state: a rules entry in the log
 *     (app_encode_rules) switches them for every replica at the same point,
 *     and a snapshot carries the rules in force. Until the first rules
 *     entry applies, the machine uses the rules of its app_config (the
 *     host's settings), as machines did before rules entries existed. A
 *     host proposes a rules entry when the rules in force differ from its
 *     settings; a log replayed after a restart with other settings then
 *     still gives every entry the reply it had, and the new settings take
 *     effect at the new rules entry. A rules entry is not a client command:
 *     it has no row in app_commands(), so no client can name it, and
 *     app_decode refuses it; app_apply checks its bounds like a host's
 *     config and refuses one out of range with the state unchanged.
   - The rest are idempotent by what they name: opening an account that
 *     exists with the same initial amount, adding a seat that exists,
 *     cancelling a cancelled PNR or order, acquiring a lock the owner holds
 *     (same token, expiry extended), releasing a grant already gone,
 *     advancing an order to a state it has already passed, creating an
 *     order that exists with the same customer and amount: each answers as
 *     the first time did and changes nothing.
 *
 * Details the table leaves open. Unknown names: LEDGER.BALANCE, SEATS.FREE,
 * SEATS.PNR and the writes answer APP_E_NO_SUCH; LEDGER.TX, LOCK.GET,
 * FENCED.GET and ORDER.GET answer nil. SEATS.ADD answers the number of
 * seats it added (0, duplicate set, when all exist). A PNR is "PNR" and its
 * number zero-padded to 10 digits, and only that form is accepted.
 * ORDER.ADVANCE takes a workflow state name in any case. FENCED.SET refuses
 * a token above the newest granted (one no one was ever given). Numbers are
 * decimal digits only: no sign, no leading zero, at most INT64_MAX
 * (APP_E_OVERFLOW beyond); names and ids must not be empty.
 *
 * Time. Lock expiry must be decided the same way on every replica, so
 * nothing here reads a clock: the proposer stamps each command with its
 * wall clock (hdr.now_ms) and the machine keeps clock_ms, the highest stamp
 * applied (a new leader's clock may lag; the maximum never runs backwards).
 * A grant made at clock t with ttl expires at t + ttl; it is held while
 * clock_ms < expiry. The retention window of the dedup tables is measured
 * on the same clock.
 *
 * Fencing. Tokens come from one counter per lock that grows with every new
 * grant, so a newer holder always has a larger token; FENCED.SET names the
 * lock and the writer's token and is refused when the token is below the
 * newest granted for that lock (the fenced write of an expired holder).
 *
 * Command format (integers little-endian):
 *
 *   u8 magic (APP_CMD_MAGIC) | u8 version (1) | u8 op (enum app_op)
 *   | u8 argc | u64 now_ms | u64 tag | argc x (u16 len | bytes)
 *
 * `tag` is opaque to the machine (a host matches its proposals with it).
 * The magic byte tells app commands from kvstore and kv commands, whose
 * first byte is a version number 1.
 *
 * Threading: one thread at a time. No global state. */
#ifndef SABHA_SM_APP_H
#define SABHA_SM_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/allocator.h"

#define APP_CMD_MAGIC 0xA5u
#define APP_FORMAT_VERSION 1u
#define APP_CMD_HEADER_BYTES 20u
#define APP_ARGS_MAX 32u      /* arguments per command (SEATS.ADD's seats) */
#define APP_ARG_BYTES_MAX 64u /* names, ids, numbers */
#define APP_DEDUP_DEFAULT 100000u
#define APP_DEDUP_LIMIT (1u << 24) /* the largest dedup_max accepted */
/* request_timeout_ms's default in sabhad: a client that sends again as soon
 * as a write times out is covered, and the default dedup_max then admits
 * 20000 new ids a second per application. */
#define APP_DEDUP_WINDOW_MS_DEFAULT 5000u
/* The longest window accepted: an hour. Longer would let the default
 * dedup_max admit under 30 new ids a second, and sabhad's handshake digest
 * has 26 bits for the window (docs/wire.md). */
#define APP_DEDUP_WINDOW_MS_LIMIT 3600000u

enum app_op {
  APP_LEDGER_OPEN = 1,
  APP_LEDGER_TRANSFER,
  APP_LEDGER_BALANCE, /* reads from here ... */
  APP_LEDGER_TX,
  APP_LEDGER_AUDIT,
  APP_SEATS_ADD,
  APP_SEATS_BOOK,
  APP_SEATS_ANY,
  APP_SEATS_CANCEL,
  APP_SEATS_FREE,
  APP_SEATS_PNR,
  APP_LOCK_ACQUIRE,
  APP_LOCK_RENEW,
  APP_LOCK_RELEASE,
  APP_LOCK_GET,
  APP_FENCED_SET,
  APP_FENCED_GET,
  APP_ORDER_CREATE,
  APP_ORDER_ADVANCE,
  APP_ORDER_CANCEL,
  APP_ORDER_GET,
  APP_OP_COUNT,
  /* Internal, proposed by hosts only: switches the retry rules (struct
   * app_rules). Outside the command table on purpose. */
  APP_OP_RULES = 0xF0,
};

/* One row of the command table. */
struct app_command {
  const char *name; /* upper case, e.g. "LEDGER.TRANSFER" */
  enum app_op op;
  uint8_t argc_min; /* arguments after the name */
  uint8_t argc_max;
  bool write;        /* goes through the log; false: app_read() */
  const char *usage; /* "txid from to amount_paise" */
};

/* The table, APP_OP_COUNT - 1 rows, in enum order. */
const struct app_command *app_commands(size_t *n);
/* The row for a command name (any case), or NULL. */
const struct app_command *app_command_find(const char *name, size_t len);
/* The row for an op, or NULL. */
const struct app_command *app_command_of(enum app_op op);

/* Order states, in workflow order. */
enum app_order_state {
  APP_ORDER_CREATED = 1,
  APP_ORDER_PAYMENT_CONFIRMED,
  APP_ORDER_INVENTORY_RESERVED,
  APP_ORDER_SHIPPED,
  APP_ORDER_DELIVERED,
  APP_ORDER_CANCELLED,
};
const char *app_order_state_name(enum app_order_state s);

/* ---- Commands ---------------------------------------------------------- */

struct app_arg {
  const uint8_t *ptr;
  size_t len; /* <= APP_ARG_BYTES_MAX */
};

struct app_hdr {
  uint64_t now_ms; /* the proposer's wall clock */
  uint64_t tag;    /* opaque to the machine */
};

/* Builds one command into buf[0, cap) and returns its size; writes only when
 * it fits (buf may be NULL when cap is 0), like snprintf. Returns 0 when the
 * command cannot be encoded (argc beyond APP_ARGS_MAX or an argument longer
 * than APP_ARG_BYTES_MAX); arity and content are checked at apply time. */
size_t app_encode(uint8_t *buf, size_t cap, const struct app_hdr *hdr,
                  enum app_op op, const struct app_arg *argv, size_t argc);

/* The retry rules: the fields of struct app_config that decide replies. */
struct app_rules {
  uint32_t dedup_max;       /* 1 .. APP_DEDUP_LIMIT */
  uint32_t dedup_window_ms; /* 0 .. APP_DEDUP_WINDOW_MS_LIMIT */
};

/* A rules entry: the command header with op APP_OP_RULES, argc 2, and two
 * arguments of 4 bytes each, dedup_max and dedup_window_ms (u32
 * little-endian). */
#define APP_RULES_CMD_BYTES (APP_CMD_HEADER_BYTES + 2u * (2u + 4u))

/* Builds a rules entry into buf[0, cap), cap >= APP_RULES_CMD_BYTES, and
 * returns APP_RULES_CMD_BYTES. The rules are not checked here (app_apply
 * does, on every replica alike). */
size_t app_encode_rules(uint8_t *buf, size_t cap, const struct app_hdr *hdr,
                        const struct app_rules *rules);

/* True when the bytes start like an app command (magic byte). */
bool app_is_command(const uint8_t *cmd, size_t len);

struct app_decoded {
  struct app_hdr hdr;
  enum app_op op;
  size_t argc;
  struct app_arg argv[APP_ARGS_MAX]; /* point into the command bytes */
};
/* Decodes a client command (an op of the command table). Returns 0, or
 * SABHA_ECORRUPT for anything malformed, and for a rules entry. */
int app_decode(const uint8_t *cmd, size_t len, struct app_decoded *out);

/* Rewrites the now_ms and tag of an encoded command in place, so a host can
 * stamp a command built earlier (the simulator's clients build, the node
 * stamps). */
void app_stamp(uint8_t *cmd, size_t len, const struct app_hdr *hdr);

/* ---- Replies ----------------------------------------------------------- */

enum app_reply_kind {
  APP_REPLY_OK = 1, /* +OK */
  APP_REPLY_INT,    /* :integer */
  APP_REPLY_BULK,   /* $text */
  APP_REPLY_NULL,   /* $-1 */
  APP_REPLY_ERROR,  /* -text */
  APP_REPLY_ARRAY,  /* *items */
};

/* Why a command did what it did, for programs (the simulator's checkers)
 * that must not parse error text. */
enum app_code {
  APP_DONE = 0,        /* did what it asked (or already had: duplicate) */
  APP_E_SYNTAX,        /* wrong arity, a number that is not one, bad state */
  APP_E_EXISTS,        /* account or order exists with other values */
  APP_E_NO_SUCH,       /* unknown account, train/date, seat, PNR, order */
  APP_E_FUNDS,         /* insufficient funds */
  APP_E_SAME_ACCOUNT,  /* transfer to itself */
  APP_E_NOT_AVAILABLE, /* seat taken, or no seat free */
  APP_E_HELD,          /* lock held by another owner */
  APP_E_NOT_HOLDER,    /* renew/release by someone not holding it */
  APP_E_STALE_TOKEN,   /* fenced write with a token below the newest */
  APP_E_TRANSITION,    /* order state change not allowed */
  APP_E_ID_REUSED,     /* dedup id seen with a different command */
  APP_E_FULL,          /* a bound in struct app_config reached (objects,
                          or a retry table full of ids in their window) */
  APP_E_OVERFLOW,      /* an amount or total beyond int64 */
};

#define APP_REPLY_ITEMS_MAX 8u
#define APP_REPLY_TEXT_MAX 512u

struct app_reply_item {
  uint8_t kind; /* enum app_reply_kind, never ARRAY */
  int64_t integer;
  uint16_t off; /* BULK/ERROR: text[off, off + len) */
  uint16_t len;
};

struct app_reply {
  uint8_t kind;      /* enum app_reply_kind */
  bool duplicate;    /* a retry answered as the first time; nothing changed */
  uint16_t code;     /* enum app_code */
  int64_t integer;   /* INT; and BOOK/ANY: the PNR's number; ACQUIRE/RENEW:
                        the token; TRANSFER: the amount moved */
  uint16_t text_len; /* BULK and ERROR: text[0, text_len) */
  uint32_t n_items;  /* ARRAY */
  struct app_reply_item items[APP_REPLY_ITEMS_MAX];
  char text[APP_REPLY_TEXT_MAX]; /* NUL-terminated too */
};

/* ---- The machine ------------------------------------------------------- */

/* Bugs a test can ask for, to show the checkers catch them. */
enum app_bug {
  APP_BUG_NO_DEDUP = 1u << 0, /* ids are not looked up: retries apply again */
};

struct app_config {
  uint32_t dedup_max; /* ids remembered per application; >= 1, <= 2^24 */
  /* The least time, on the machine's clock, an id is remembered after it
   * was recorded; <= APP_DEDUP_WINDOW_MS_LIMIT; 0: no such guarantee (the
   * newest dedup_max are kept). Like dedup_max it decides replies, so
   * every replica must use the same value. */
  uint32_t dedup_window_ms;
  uint64_t objects_max; /* accounts + seats + PNRs + locks + orders + fenced
                           keys; >= 1, < 2^31 (a PNR is kept after its
                           cancellation, so it counts as one) */
  uint32_t bugs;        /* enum app_bug */
  /* The key of the SipHash that places names (accounts, locks, ids) in
   * the indexes (app_map.h). It decides only where they sit in memory,
   * never an order or a reply, so replicas may differ; a secret random
   * one keeps clients from choosing names that all collide. */
  uint64_t hash_key[2];
  /* Where the machine gets memory (core/allocator.h; zero: the C
   * library). Lets a test fail any one allocation. */
  struct allocator alloc;
};
/* dedup_max APP_DEDUP_DEFAULT, dedup_window_ms APP_DEDUP_WINDOW_MS_DEFAULT,
 * 4 Mi objects, no bugs. */
extern const struct app_config app_config_default;

struct app;

/* Returns 0 and sets *out, SABHA_EINVAL for a config out of bounds, or
 * SABHA_ENOMEM. */
int app_new(struct app **out, const struct app_config *config);
void app_free(struct app *a);

/* Applies one committed command or rules entry. Returns 0 with *out the
 * reply (which may be an error reply, such as insufficient funds; +OK for
 * a rules entry); SABHA_ECORRUPT when the bytes are not a well-formed app
 * command, or are a rules entry malformed or out of bounds (*out says so,
 * state unchanged, the same on every replica); SABHA_EINVAL for a read op
 * (state unchanged);
 * SABHA_ENOMEM with the state unchanged (the host must not move past the
 * command, or this replica would diverge). Deterministic. */
int app_apply(struct app *a, const uint8_t *cmd, size_t len,
              struct app_reply *out);

/* Serves a read op (LEDGER.BALANCE, ...) from the current state; now_ms is
 * the host's clock (a lock's time left is judged at max(now_ms, clock_ms)):
 * a replicated service passes 0, so that the log's clock alone decides.
 * Returns 0 with *out, or SABHA_EINVAL for a write op. Arity and syntax
 * errors are error replies. Never changes the state. */
int app_read(const struct app *a, enum app_op op, const struct app_arg *argv,
             size_t argc, uint64_t now_ms, struct app_reply *out);

/* The retry rules in force into *out. Returns true when a rules entry (or
 * a snapshot that holds one's rules) set them, false when they are the
 * app_config's. A rules entry that lowers dedup_max forgets each table's
 * oldest ids down to it, first in, first out, as a full table does. */
bool app_rules_in_force(const struct app *a, struct app_rules *out);

/* The highest now_ms applied. */
uint64_t app_clock_ms(const struct app *a);
/* Moves the clock to now_ms (never back), as every applied command does:
 * for a host applying a clock entry of its log (kvstore's CLOCK), so that
 * leases expire for reads without waiting for a write. Deterministic. */
void app_clock_advance(struct app *a, uint64_t now_ms);
/* The earliest expiry among leases still held at the machine's clock, or 0
 * when none is: when a host should move the clock for reads to see a lease
 * end. O(1): the machine keeps the held locks in a heap by expiry, so a
 * host may ask at every tick. */
uint64_t app_next_expiry_ms(const struct app *a);

/* ---- Inspection, for checkers and tests --------------------------------- */

/* Records the machine has visited, since app_new, beyond those a command
 * names: steps of the lock expiry heap, seats passed over looking for a
 * free one. Tests bound a command's work with it. */
uint64_t app_visits(const struct app *a);
/* Commands refused, since app_new, for a retry table full of ids younger
 * than dedup_window_ms ("ERR retry table full"; APP_E_FULL): what a host
 * shows its operators (INFO apps, /metrics). This machine's history, not
 * its state: no snapshot holds it, and a restore keeps it. */
uint64_t app_retry_table_full(const struct app *a);

/* Number of accounts and the sum of their balances. */
void app_ledger_audit(const struct app *a, uint64_t *accounts, int64_t *total);
/* Calls fn for every account, in the order they were opened. */
void app_ledger_foreach(const struct app *a,
                        void (*fn)(void *ctx, const struct app_arg *name,
                                   int64_t balance, int64_t opened_with),
                        void *ctx);

/* Calls fn for every seat, in the order added; pnr 0 when free. */
void app_seats_foreach(const struct app *a,
                       void (*fn)(void *ctx, const struct app_arg *train,
                                  const struct app_arg *date,
                                  const struct app_arg *seat, uint64_t pnr),
                       void *ctx);
/* The number of seats, and of those booked, kept as they change: O(1),
 * for INFO. */
void app_seats_count(const struct app *a, uint64_t *seats, uint64_t *booked);
/* A PNR's seat and whether it is cancelled: returns false when unknown. */
bool app_seats_pnr(const struct app *a, uint64_t pnr, struct app_arg *train,
                   struct app_arg *date, struct app_arg *seat, bool *cancelled);

struct app_lock_view {
  struct app_arg owner; /* empty when never granted or released */
  uint64_t token;       /* the current grant's token (0: none) */
  uint64_t token_max;   /* the newest token ever granted */
  uint64_t expires_ms;  /* the current grant's expiry */
};
bool app_lock_view(const struct app *a, const uint8_t *name, size_t len,
                   struct app_lock_view *out);

/* An order's state, or 0 when unknown. */
enum app_order_state app_order_state(const struct app *a, const uint8_t *id,
                                     size_t len);

/* A digest of the whole state (the snapshot's content: clock, records in
 * the order they were made, dedup tables in FIFO order), equal on replicas
 * in the same state. */
uint64_t app_state_hash(const struct app *a);

/* ---- Snapshots --------------------------------------------------------- */

/* Bytes app_snapshot() writes. */
size_t app_snapshot_size(const struct app *a);
/* Writes the whole state (dedup table, clock and recorded rules included)
 * into buf[0, cap), cap >= app_snapshot_size(). Returns the bytes written.
 * The format (magic "SAP1", version 3, sections per application, CRC32C
 * trailer) is written out in app.c; app_restore reads versions 1 to 3. */
size_t app_snapshot(const struct app *a, uint8_t *buf, size_t cap);
/* Replaces the state with a snapshot's, rules included: the snapshot's
 * recorded rules, or, when it has none (versions 1 and 2, or none recorded
 * yet), the app_config's, whatever rules were in force before. Returns 0,
 * SABHA_ECORRUPT (bad checksum, malformed, beyond those rules' or this
 * config's bounds) or SABHA_ENOMEM; on error the state is unchanged. */
int app_restore(struct app *a, const uint8_t *data, size_t len);

#endif
