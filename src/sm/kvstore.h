/* The replicated key-value store of the real node (sabhad).
 *
 * sabhad serves Redis clients from this state machine. Every write a client
 * sends (SET, DEL, INCR, MSET, ...) is encoded by the leader into a compact
 * command (kvstore_encode_*), replicated through the log, and applied by
 * kvstore_apply() on every node in the same order; applying the same commands
 * in the same order gives every node the same store and the same replies.
 * Reads are not commands: a node serves GET, EXISTS, PTTL and DBSIZE from its
 * own store (kvstore_get() and friends) once its engine's ReadIndex says the
 * store is current enough. (src/sm/kv.[ch] is the simulator's far smaller
 * model with integer keys; this one is for real clients.)
 *
 * Data. Keys and values are byte strings, binary-safe, bounded by
 * key_bytes_max and value_bytes_max; the store as a whole is bounded by
 * keys_max and data_bytes_max (the sum of key and value bytes). A write that
 * would pass a bound is answered with an error and changes nothing; MSET,
 * all or nothing, is refused unless every pair would fit as a new key.
 * Every replica must use the same bounds, as they decide replies.
 *
 * APPEND costs the bytes it appends, not the value's size: a value that
 * APPEND outgrows moves to spare room that grows with it (below a quarter
 * of the value, or 16 bytes for one under 64, and below 1 MiB), and the
 * APPENDs that fit are written in place, so a loop of small APPENDs to an
 * 8 MiB value copies a few bytes per byte appended instead of 8 MiB per
 * command. That room is this replica's memory alone: it counts in
 * kvstore_memory()'s slack_bytes, never toward data_bytes_max (which
 * decides replies, so must not depend on it), never in a reply or a
 * snapshot (a restored value has none).
 *
 * Time. Replicas must agree on when a key expires, so nothing here reads a
 * clock. The leader stamps each command with its wall clock, now_ms, when it
 * proposes it, and the store keeps clock_ms, the highest stamp applied so far
 * (a new leader's clock may lag the old one's; the maximum never runs
 * backwards). SET ... PX ms makes a key expire at clock_ms + ms; a key is
 * expired once clock_ms passes that instant (Redis's rule: alive at exactly
 * its expiry time, gone one millisecond later). Expired keys are invisible to
 * every command; they are reclaimed when a command touches them and, a few per
 * command (KVSTORE_EXPIRE_PER_APPLY), in expiry order, so memory is returned
 * even for keys no one touches again, always in the same order on every
 * replica. Reads take a clock from the caller: a key counts as expired for
 * a read when max(now_ms, clock_ms) passes its expiry, and a read never
 * changes the store. A replicated service passes 0, so that every replica
 * judges expiry by the log's clock alone: a node's own wall clock, ahead of
 * the others', would make a key vanish on one leader and come back on the
 * next. Hosts propose CLOCK commands to move the log's clock when nothing
 * else does.
 *
 * Exactly once, as in the Raft thesis (§6.3). A client (for sabhad, one
 * per client connection) first registers a session through the log: the
 * REGISTER command's reply is the new session's id, which the store assigns
 * from a counter (1, 2, 3, ...), so ids are never reused and every replica
 * assigns the same one. Every later command carries that id and a sequence
 * number: 1 for the session's first command, then each the previous plus 1;
 * the client resends a command, with the same number, until it has an
 * answer. The store keeps, per session, the last number applied and its
 * reply; a resent command with that number gets the saved reply and is not
 * applied again. A lower number (its reply is gone) or a gap (an earlier
 * command is missing) is refused and not applied.
 *
 * The table keeps sessions_max sessions (10000 by default); registering one
 * more evicts the session that applied or retried least recently. The
 * consequence of the bound: a client whose session was evicted, say one idle
 * while 10000 others registered, finds every later command refused with
 * "session expired" (an id below the counter but not in the table), even a
 * resend of a command that was applied before the eviction; it must report
 * that command's outcome as unknown and register again. Nothing is ever
 * applied twice. A lost REGISTER reply costs only an unused session, which
 * ages out.
 *
 * Command format (version 1, integers little-endian, lengths u32):
 *
 *   header   u8 version (1) | u8 op | u64 session | u64 seq | u64 now_ms
 *   REGISTER (nothing more; session and seq are 0)
 *   CLOCK    (nothing more; session and seq are 0)
 *   SET      u8 flags (NX 1, XX 2, PX 4, KEEPTTL 8, PXAT 128) | i64 px_ms (0
 *            unless PX or PXAT)
 *            | u32 key_len | key | u32 value_len | value
 *   DEL      u32 n (>= 1) | n x (u32 key_len | key)
 *   INCRBY   u32 key_len | key | i64 delta
 *   DECRBY   u32 key_len | key | i64 delta
 *   MSET     u32 n (>= 1) | n x (u32 key_len | key | u32 value_len | value)
 *   CAS      u8 flags (1: expect the key absent) | u32 key_len | key
 *            | u32 expected_len | expected (empty when absent)
 *            | u32 new_len | new
 *   SET with flags REPLY_INT 16 (SETNX), GET 32 (GETSET) and LEASE 64:
 *            as SET, then u64 lease id when LEASE is set
 *   EXPIRE   u8 mode (0 in px ms, 1 at unix ms, 2 persist) | i64 ms
 *            | u32 key_len | key. The mode byte's high four bits are the
 *            conditions (KVSTORE_EXPIRE_NX 16, XX 32, GT 64, LT 128),
 *            never with persist; entries from before the conditions have
 *            them clear and mean what they always meant, so the format
 *            keeps its version (a node that predates them refuses an
 *            entry with one as malformed).
 *   GETDEL   u32 key_len | key
 *   APPEND   u32 key_len | key | u32 value_len | value
 *   READ     u8 what (enum kvstore_read) | u32 key_len | key; only inside
 *            a TXN (a read alone is served without the log)
 *   LEASE_GRANT, LEASE_KEEPALIVE, LEASE_REVOKE   i64 ttl_ms or u64 id
 *   TXN      u32 n_watch | n_watch x (u32 key_len | key) | u64 watch_rev
 *            | u32 n (>= 1) | n x (u32 len | a whole command, header
 *            included, with the TXN's session and seq; not a TXN,
 *            REGISTER or CLOCK)
 *
 * Revisions. The host tells the store the log index of the commands it
 * applies next (kvstore_set_revision); every key remembers the revision of
 * its last change, and every change is reported as an event (put or del,
 * key, value, revision) to the config's on_event, in the order the store
 * makes them, the same on every replica. A TXN applies its commands in
 * order, as one command: its watched keys are checked first, and if any
 * changed after watch_rev (a key present with a later revision; an absent
 * key when any key was deleted after watch_rev, the store keeping no
 * tombstones; a key that expired), it applies nothing and replies a null
 * array. Otherwise each command's reply is an element of the array, an
 * error included, as Redis's EXEC does.
 *
 * Leases. LEASE_GRANT ttl_ms gives a lease an id (1, 2, ...) and an expiry
 * at clock_ms + ttl_ms; SET ... LEASE id attaches a key, whose expiry is
 * then the lease's; LEASE_KEEPALIVE moves the lease's and its keys' expiry
 * to clock_ms + ttl_ms again, at a cost of O(log leases) however many keys
 * the lease holds (a key reads its expiry from its lease: nothing is
 * copied into each); LEASE_REVOKE deletes its keys (in key order)
 * and the lease. A lease past its expiry is gone: its keys expire with it
 * (the key expiry rules above), and the lease itself is reclaimed when it
 * is next named or when GRANT needs room. EXPIRE and PERSIST refuse a
 * leased key; a SET without LEASE (or KEEPTTL) detaches it.
 *
 * The bytes must be exactly one command; anything else is malformed.
 *
 * Snapshot format (version 2, little-endian; version 1, which a store
 * still restores, lacks the fields marked v2 and the leases):
 *
 *   u32 magic "SKV1" | u8 version (2) | u64 clock_ms
 *   | u64 next_session (the id the next REGISTER gets) | u64 n_keys
 *   | u32 n_sessions
 *   | v2: u64 revision | u64 delete_rev (the last revision that deleted a
 *     key) | u64 next_lease | u32 n_leases
 *     | n_leases x (u64 id | i64 ttl_ms | u64 expire_at_ms)
 *   | n_keys x (u32 key_len | u32 value_len | u64 expire_at_ms (0: none)
 *               | v2: u64 revision | u64 lease (0: none) | key | value);
 *     a leased key's expiry is its lease's
 *   | n_sessions x (u64 id | u64 last_seq | u8 reply kind | u8 error code
 *                   | i64 integer), least recently used first; the kind is
 *                   an enum kvstore_reply, the error code one of 1 not an
 *                   integer, 2 overflow, 3 decrement overflow, 4 syntax,
 *                   5 expire time, 6 too big, 7 full, 8 reply not
 *                   kept (a bulk or array), 9 no lease, 10 too many
 *                   leases, 11 lease full, 12 leased key, 13 expire
 *                   time of EXPIRE, 14 EXPIRE's NX with another
 *                   condition, 15 EXPIRE's GT with LT (0 otherwise); a
 *                   session with no command yet has last_seq 0 and kind 0
 *   | u32 CRC32C (Castagnoli) of every byte before it
 *
 * Keys appear in no particular order: two replicas in the same state may
 * write different bytes, but restore to the same state.
 *
 * Threading: one thread at a time. There is no global state. */
#ifndef SABHA_SM_KVSTORE_H
#define SABHA_SM_KVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/allocator.h"

#define KVSTORE_FORMAT_VERSION 1u
#define KVSTORE_SNAPSHOT_VERSION 2u
#define KVSTORE_CMD_HEADER_BYTES 26u
/* Expired keys reclaimed at most per applied command, beyond those it
 * touches: bounds the work of one apply. */
#define KVSTORE_EXPIRE_PER_APPLY 32u

enum kvstore_op {
  KVSTORE_OP_SET = 1,
  KVSTORE_OP_DEL = 2,
  KVSTORE_OP_INCRBY = 3,
  KVSTORE_OP_DECRBY = 4,
  KVSTORE_OP_MSET = 5,
  KVSTORE_OP_CAS = 6,
  KVSTORE_OP_REGISTER = 7,
  KVSTORE_OP_CLOCK = 8,
  KVSTORE_OP_EXPIRE = 9,
  KVSTORE_OP_GETDEL = 10,
  KVSTORE_OP_APPEND = 11,
  KVSTORE_OP_TXN = 12,
  KVSTORE_OP_READ = 13,
  KVSTORE_OP_LEASE_GRANT = 14,
  KVSTORE_OP_LEASE_KEEPALIVE = 15,
  KVSTORE_OP_LEASE_REVOKE = 16,
};

/* EXPIRE's modes. */
enum kvstore_expire_mode {
  KVSTORE_EXPIRE_IN = 0,  /* ms after the command's clock (EXPIRE, PEXPIRE) */
  KVSTORE_EXPIRE_AT = 1,  /* at a Unix time in ms (EXPIREAT, PEXPIREAT) */
  KVSTORE_EXPIRE_NONE = 2 /* PERSIST */
};

/* EXPIRE's conditions, as Redis 7's options: judged against the key's
 * expiry when the entry is applied, since only then is it known the same
 * on every replica. A key without an expiry counts as expiring never, so
 * GT never sets one on it and LT always does. NX with any other, or GT
 * with LT, is an error reply (not a malformed command), as SET's NX with
 * XX is. In the command they share the mode's byte, above its values. */
#define KVSTORE_EXPIRE_NX 16u  /* only if the key has no expiry */
#define KVSTORE_EXPIRE_XX 32u  /* only if it has one */
#define KVSTORE_EXPIRE_GT 64u  /* only if the new instant is later */
#define KVSTORE_EXPIRE_LT 128u /* only if it is sooner */
#define KVSTORE_EXPIRE_IFS 240u

/* What a READ inside a TXN answers, as the Redis command of that name. */
enum kvstore_read {
  KVSTORE_READ_GET = 1,
  KVSTORE_READ_STRLEN = 2,
  KVSTORE_READ_EXISTS = 3,
  KVSTORE_READ_PTTL = 4,
  KVSTORE_READ_TTL = 5,
};

/* SET flags, as Redis's SET options. NX with XX, and PX with KEEPTTL, are
 * syntax errors (replies, not malformed commands). */
#define KVSTORE_SET_NX 1u         /* only if the key is absent */
#define KVSTORE_SET_XX 2u         /* only if the key is present */
#define KVSTORE_SET_PX 4u         /* expire px_ms after the command's clock */
#define KVSTORE_SET_KEEPTTL 8u    /* keep the key's expiry (and lease) */
#define KVSTORE_SET_REPLY_INT 16u /* SETNX: :1 when set, :0 when not */
#define KVSTORE_SET_GET 32u       /* GETSET: the old value, or nil */
#define KVSTORE_SET_LEASE 64u     /* attach the key to a lease */
/* EXAT, PXAT: expire at px_ms, a Unix time in ms; at or before the log's
 * clock the key is set and gone at once, as Redis has it. */
#define KVSTORE_SET_PXAT 128u
#define KVSTORE_SET_FLAGS 255u

/* One change the store made, reported to kvstore_config.on_event while a
 * command applies. The slices point into the store or the command: valid
 * only during the call. */
enum kvstore_event_kind { KVSTORE_EVENT_PUT = 1, KVSTORE_EVENT_DEL = 2 };
struct kvstore_event {
  enum kvstore_event_kind kind;
  uint64_t revision;
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value; /* PUT */
  size_t value_len;
  /* A PUT made by APPEND to a present key: the value is the key's value
   * before it (its last event's) followed by the last appended_len bytes,
   * so a listener may keep just those. */
  bool appended;
  size_t appended_len;
};
typedef void (*kvstore_event_fn)(void *ctx, const struct kvstore_event *ev);

struct kvstore_config {
  uint32_t key_bytes_max;   /* >= 1, < 2^31 */
  uint32_t value_bytes_max; /* >= 20, so that any INCR result fits */
  uint64_t keys_max;        /* >= 1 */
  uint64_t data_bytes_max;  /* key and value bytes of all keys */
  uint32_t sessions_max;    /* >= 1 */
  uint32_t leases_max;      /* >= 1 */
  uint32_t lease_keys_max;  /* keys attached to one lease, >= 1 */
  /* Bulk reply bytes one apply may produce, >= value_bytes_max so that
   * one value always fits: a TXN's reads (GET, GETSET, GETDEL) past it
   * are answered KVSTORE_ERR_REPLY_TOO_BIG and change nothing. Every
   * replica builds the replies of every entry, so without a bound a TXN
   * reading one large value many times would make each of them allocate
   * the sum, and a replica that could not would stop. */
  uint64_t reply_bytes_max;
  /* The key of the SipHash that places keys in the hash table. It decides
   * only where keys sit in memory, never a reply, so replicas may differ;
   * a secret random one keeps clients from forcing collisions. */
  uint64_t hash_key[2];
  /* Where the store gets memory (core/allocator.h; zero: the C library).
   * Tests use it to fail the Nth allocation. */
  struct allocator alloc;
  /* Told of every change an apply makes (NULL: nobody listens). Never
   * called by restore. */
  kvstore_event_fn on_event;
  void *event_ctx;
  /* Deliberately broken rules, for proving the simulator's checkers see
   * them (KVSTORE_BUG_*); 0 everywhere else. */
  uint32_t bugs;
};

/* A TXN applies its first command only, and answers 0 for the rest. */
#define KVSTORE_BUG_TXN_PARTIAL 1u

/* 64 KiB keys, 8 MiB values (resp_limits_default's argument bound), 16 Mi
 * keys, 1 GiB of data, 10000 sessions, 64 MiB of replies per apply, and a
 * fixed hash key (replace it with random bytes in a server). */
extern const struct kvstore_config kvstore_config_default;

/* ---- Commands ---------------------------------------------------------- */

/* What every command carries besides its operation. */
struct kvstore_hdr {
  uint64_t session; /* the id REGISTER gave the client's session */
  uint64_t seq;     /* 1, 2, 3, ... within the session (REGISTER: its
                       nonce; CLOCK: 0) */
  uint64_t now_ms;  /* the leader's wall clock when it proposed */
};

struct kvstore_slice {
  const uint8_t *ptr; /* may be NULL when len is 0 */
  size_t len;
};

/* The encoders build one command into buf[0, cap) and return its size in
 * bytes. Like snprintf, they write only when it fits (buf may be NULL when
 * cap is 0), so a caller can ask the size first. Every length must fit a u32
 * and n must be >= 1 (programmer errors otherwise); the store's own bounds
 * are checked when the command is applied. INCR is INCRBY 1 and DECR is
 * DECRBY 1. */
size_t kvstore_encode_set(uint8_t *buf, size_t cap,
                          const struct kvstore_hdr *hdr,
                          struct kvstore_slice key, struct kvstore_slice value,
                          uint32_t flags, int64_t px_ms);
size_t kvstore_encode_del(uint8_t *buf, size_t cap,
                          const struct kvstore_hdr *hdr,
                          const struct kvstore_slice *keys, size_t n);
size_t kvstore_encode_incrby(uint8_t *buf, size_t cap,
                             const struct kvstore_hdr *hdr,
                             struct kvstore_slice key, int64_t delta);
size_t kvstore_encode_decrby(uint8_t *buf, size_t cap,
                             const struct kvstore_hdr *hdr,
                             struct kvstore_slice key, int64_t delta);
/* pairs[2i] is a key and pairs[2i + 1] its value, for i < n. */
size_t kvstore_encode_mset(uint8_t *buf, size_t cap,
                           const struct kvstore_hdr *hdr,
                           const struct kvstore_slice *pairs, size_t n);
/* expected NULL: swap only if the key is absent. */
size_t kvstore_encode_cas(uint8_t *buf, size_t cap,
                          const struct kvstore_hdr *hdr,
                          struct kvstore_slice key,
                          const struct kvstore_slice *expected,
                          struct kvstore_slice new_value);

/* SET with every option: flags as above, px_ms with KVSTORE_SET_PX (ms
 * from the log's clock) or KVSTORE_SET_PXAT (a Unix time in ms), lease
 * with KVSTORE_SET_LEASE (else 0). */
size_t kvstore_encode_set_ex(uint8_t *buf, size_t cap,
                             const struct kvstore_hdr *hdr,
                             struct kvstore_slice key,
                             struct kvstore_slice value, uint32_t flags,
                             int64_t px_ms, uint64_t lease);
/* EXPIRE in a mode (ms is ignored, and must be 0, for KVSTORE_EXPIRE_NONE).
 * Replies :1 when the key exists (and a time already past deletes it), :0
 * when it does not (PERSIST: or has no expiry). */
size_t kvstore_encode_expire(uint8_t *buf, size_t cap,
                             const struct kvstore_hdr *hdr,
                             struct kvstore_slice key,
                             enum kvstore_expire_mode mode, int64_t ms);
/* The same with conditions (KVSTORE_EXPIRE_NX...LT, any combination; 0:
 * none, and always 0 with KVSTORE_EXPIRE_NONE). Replies :0 also when the
 * key exists but a condition does not hold; nothing changes then. */
size_t kvstore_encode_expire_ex(uint8_t *buf, size_t cap,
                                const struct kvstore_hdr *hdr,
                                struct kvstore_slice key,
                                enum kvstore_expire_mode mode, int64_t ms,
                                uint32_t ifs);
size_t kvstore_encode_getdel(uint8_t *buf, size_t cap,
                             const struct kvstore_hdr *hdr,
                             struct kvstore_slice key);
size_t kvstore_encode_append(uint8_t *buf, size_t cap,
                             const struct kvstore_hdr *hdr,
                             struct kvstore_slice key,
                             struct kvstore_slice value);
/* A read, to be carried inside a TXN. */
size_t kvstore_encode_read(uint8_t *buf, size_t cap,
                           const struct kvstore_hdr *hdr,
                           enum kvstore_read what, struct kvstore_slice key);
/* LEASE_GRANT (number: ttl_ms), LEASE_KEEPALIVE and LEASE_REVOKE (number:
 * the id). */
size_t kvstore_encode_lease(uint8_t *buf, size_t cap,
                            const struct kvstore_hdr *hdr, enum kvstore_op op,
                            int64_t number);
/* TXN: cmds[i] are whole commands (from the encoders above, with the same
 * header), applied in order; watched keys as the header comment says. */
size_t kvstore_encode_txn(uint8_t *buf, size_t cap,
                          const struct kvstore_hdr *hdr,
                          const struct kvstore_slice *watch, size_t n_watch,
                          uint64_t watch_rev, const struct kvstore_slice *cmds,
                          size_t n_cmds);

/* REGISTER: opens a session; the reply is its id. now_ms as in a header.
 * The store ignores the nonce: it is how the node that proposed the
 * REGISTER knows its own when it applies, since two nodes' wall clocks can
 * stamp two REGISTERs with the same millisecond (the runtime puts its node
 * id in the nonce's top byte). */
size_t kvstore_encode_register(uint8_t *buf, size_t cap, uint64_t now_ms,
                               uint64_t nonce);
/* CLOCK: moves the store's clock to now_ms (never back) and nothing else;
 * +OK. A leader proposes one when stored keys may have expired and no write
 * has moved the log's clock, so that reads, which judge expiry by the log's
 * clock alone, see them go. Like REGISTER it belongs to no session. */
size_t kvstore_encode_clock(uint8_t *buf, size_t cap, uint64_t now_ms);

/* Reads the header of a command, e.g. for the leader to match a committed
 * entry with the client waiting for it. Returns 0, or SABHA_ECORRUPT when the
 * bytes are too short or of another version. */
int kvstore_decode_hdr(const uint8_t *cmd, size_t len, struct kvstore_hdr *hdr);

/* A command's parts, for observers (the simulator's checkers): the op, its
 * SET or CAS flags, and for SET, INCRBY, DECRBY and CAS the key and (SET,
 * CAS) the new value, pointing into the bytes. */
struct kvstore_cmd_view {
  struct kvstore_hdr hdr;
  enum kvstore_op op;
  uint32_t flags;
  struct kvstore_slice key;
  struct kvstore_slice value;
};
/* Returns 0, or SABHA_ECORRUPT when the bytes are not one well-formed
 * command. */
int kvstore_decode(const uint8_t *cmd, size_t len,
                   struct kvstore_cmd_view *out);

/* ---- Applying ---------------------------------------------------------- */

enum kvstore_reply {
  KVSTORE_REPLY_OK = 1,         /* +OK */
  KVSTORE_REPLY_INT = 2,        /* :integer */
  KVSTORE_REPLY_BULK = 3,       /* $bulk (no command replies so yet) */
  KVSTORE_REPLY_NULL = 4,       /* $-1: SET NX/XX whose condition failed */
  KVSTORE_REPLY_ERROR = 5,      /* -error */
  KVSTORE_REPLY_ARRAY = 6,      /* *n: a TXN's replies, in items */
  KVSTORE_REPLY_NULL_ARRAY = 7, /* *-1: a TXN whose watched key changed */
};

enum kvstore_outcome {
  KVSTORE_APPLIED = 0,   /* applied now (an error reply counts: the
                            sequence number is used up) */
  KVSTORE_DUPLICATE = 1, /* a resend of the session's last command: the
                            saved reply, nothing applied */
  KVSTORE_REFUSED = 2,   /* not applied: malformed, stale, out of order,
                            unknown or expired session; the reply says
                            which */
};

struct kvstore_result {
  enum kvstore_reply kind;
  enum kvstore_outcome outcome;
  int64_t integer;     /* KVSTORE_REPLY_INT */
  const uint8_t *bulk; /* KVSTORE_REPLY_BULK: valid until the next apply */
  size_t bulk_len;
  const char *error; /* KVSTORE_REPLY_ERROR: static, Redis-style, e.g.
                        "ERR value is not an integer or out of range" */
  const struct kvstore_result *items; /* KVSTORE_REPLY_ARRAY: valid until
                                         the next apply; none is an array */
  size_t n_items;
};

/* Replies that name what went wrong, as Redis words them where it has the
 * same error. */
#define KVSTORE_ERR_NOT_INTEGER "ERR value is not an integer or out of range"
#define KVSTORE_ERR_OVERFLOW "ERR increment or decrement would overflow"
#define KVSTORE_ERR_DECR_OVERFLOW "ERR decrement would overflow"
#define KVSTORE_ERR_SYNTAX "ERR syntax error"
#define KVSTORE_ERR_EXPIRE "ERR invalid expire time in 'set' command"
#define KVSTORE_ERR_TOO_BIG "ERR string exceeds maximum allowed size"
#define KVSTORE_ERR_FULL "OOM command not allowed: the key-value store is full"
#define KVSTORE_ERR_MALFORMED "ERR malformed command"
#define KVSTORE_ERR_SESSION                                                    \
  "ERR session expired; the outcome of this request is unknown"
#define KVSTORE_ERR_NO_SESSION "ERR unknown session"
#define KVSTORE_ERR_IDS "ERR no session ids left"
#define KVSTORE_ERR_STALE                                                      \
  "ERR request already applied; its reply is no longer kept"
#define KVSTORE_ERR_ORDER "ERR request out of order; an earlier one is missing"
#define KVSTORE_ERR_NO_LEASE "ERR no such lease (it expired or was revoked)"
#define KVSTORE_ERR_LEASES_FULL "ERR too many leases"
#define KVSTORE_ERR_LEASE_FULL "ERR too many keys attached to the lease"
#define KVSTORE_ERR_LEASED                                                     \
  "ERR the key is attached to a lease; SET it without LEASE first"
#define KVSTORE_ERR_EXPIRE_CMD "ERR invalid expire time in 'expire' command"
#define KVSTORE_ERR_EXPIRE_NX                                                  \
  "ERR NX and XX, GT or LT options at the same time are not compatible"
#define KVSTORE_ERR_EXPIRE_GT_LT                                               \
  "ERR GT and LT options at the same time are not compatible"
#define KVSTORE_ERR_REPLY_TOO_BIG                                              \
  "ERR the transaction's replies would pass the store's reply bound; read "   \
  "fewer or smaller values in one transaction"

struct kvstore;

/* Creates an empty store. Returns 0 and sets *out, SABHA_EINVAL for a config
 * outside the bounds noted in struct kvstore_config, or SABHA_ENOMEM. */
int kvstore_new(struct kvstore **out, const struct kvstore_config *config);
void kvstore_free(struct kvstore *kv);

/* Applies one committed command and fills *out with the reply to send.
 *
 * Returns 0 (the reply may still be an error, such as "not an integer"), or
 *   SABHA_ECORRUPT  the bytes are not a well-formed command: *out is the
 *                   KVSTORE_ERR_MALFORMED error, the store is unchanged
 *                   (every replica sees the same bytes, so all agree);
 *   SABHA_ENOMEM    memory ran out: the store is unchanged, and the host must
 *                   not move on to the next command (retry it, or stop the
 *                   node) or this replica would diverge from the others.
 * Deterministic: equal stores and equal bytes give equal replies and equal
 * stores. */
/* Memory hints for a run of commands applied one after another (an entry
 * that carries a batch): a key's place in the table is a cache miss, and
 * the entry it leads to another, so a host that knows the commands ahead
 * asks for them early. kvstore_prefetch_slot() reads a command ahead by
 * two or more and prefetches its key's slot, returning the key's hash (0
 * for a command of no single key, or one it cannot read);
 * kvstore_prefetch_entry() is given that hash a command or so later and
 * prefetches the entry the slot holds, and kvstore_prefetch_order() a
 * command later still the leaf of the ordered index that holds the entry
 * (an overwrite puts the new entry there). None changes the store or
 * fails: a wrong guess costs a wasted fetch. */
uint64_t kvstore_prefetch_slot(const struct kvstore *kv, const uint8_t *cmd,
                               size_t len);
void kvstore_prefetch_entry(const struct kvstore *kv, uint64_t hash);
void kvstore_prefetch_order(const struct kvstore *kv, uint64_t hash);

int kvstore_apply(struct kvstore *kv, const uint8_t *cmd, size_t len,
                  struct kvstore_result *out);
/* kvstore_apply with the key's hash that kvstore_prefetch_slot returned
 * for these very bytes on this store (0: none), so that a batch's keys are
 * hashed once, not twice. The same replies and the same store; a hash of
 * other bytes, or of another store, breaks the store. */
int kvstore_apply_hinted(struct kvstore *kv, const uint8_t *cmd, size_t len,
                         uint64_t hash, struct kvstore_result *out);

/* The revision (log index) of the commands applied next; it never goes
 * down (a smaller one is ignored). */
void kvstore_set_revision(struct kvstore *kv, uint64_t revision);
/* The highest revision set so far (restored from a snapshot). */
uint64_t kvstore_revision(const struct kvstore *kv);

/* ---- Reading ----------------------------------------------------------- */

/* The value of a live key: returns true and points *value and *value_len into
 * the store (valid until the next apply or restore), or false when the key is
 * missing or expired at max(now_ms, clock). */
bool kvstore_get(const struct kvstore *kv, const uint8_t *key, size_t key_len,
                 uint64_t now_ms, const uint8_t **value, size_t *value_len);
/* True when the key is live at max(now_ms, clock). */
bool kvstore_exists(const struct kvstore *kv, const uint8_t *key,
                    size_t key_len, uint64_t now_ms);
/* As Redis's PTTL: -2 when missing or expired, -1 without an expiry, else
 * the milliseconds left at max(now_ms, clock). */
int64_t kvstore_pttl(const struct kvstore *kv, const uint8_t *key,
                     size_t key_len, uint64_t now_ms);
/* Redis's TTL from a PTTL: the milliseconds rounded to the nearest second
 * (-1 and -2 as they are). Exact up to INT64_MAX, where adding half a
 * second first would overflow. */
int64_t kvstore_ttl_seconds(int64_t pttl_ms);
/* One live key, for kvstore_range(); slices valid until the next apply. */
struct kvstore_item {
  struct kvstore_slice key;
  struct kvstore_slice value;
  uint64_t revision; /* of its last change */
  uint64_t lease;    /* 0: none */
};
typedef bool (*kvstore_item_fn)(void *ctx, const struct kvstore_item *it);
/* Visits keys >= start in byte order (memcmp, then length), at most
 * visit_max of them (live or expired at max(now_ms, clock): both count, so
 * the work is bounded), calling fn for each live one until it returns
 * false. Returns true when keys remain, with *next the first key not
 * visited (valid until the next apply); false at the end of the keys. */
bool kvstore_range(const struct kvstore *kv, struct kvstore_slice start,
                   uint64_t now_ms, size_t visit_max, kvstore_item_fn fn,
                   void *ctx, struct kvstore_slice *next);
/* The revision of a live key's last change, or 0 when it is missing. */
uint64_t kvstore_key_revision(const struct kvstore *kv, const uint8_t *key,
                              size_t key_len, uint64_t now_ms);
/* Live leases, and the ttl a lease has left (-2: none such). */
uint64_t kvstore_n_leases(const struct kvstore *kv);
int64_t kvstore_lease_pttl(const struct kvstore *kv, uint64_t id,
                           uint64_t now_ms);
/* Places the store has visited since it was made or restored, beyond the
 * keys and leases a command names: steps in its expiry heaps, and keys of
 * a lease walked. Tests bound a command's work with it. */
uint64_t kvstore_visits(const struct kvstore *kv);
/* Keys held, as Redis's DBSIZE: this may count keys already expired but not
 * yet reclaimed. */
uint64_t kvstore_dbsize(const struct kvstore *kv);
/* The memory the keys' bytes take, in two parts. Both count keys expired
 * but not yet reclaimed. O(1). */
struct kvstore_memory {
  /* Key and value bytes: what data_bytes_max bounds, and what a snapshot
   * holds. The same on every replica in the same state. */
  uint64_t data_bytes;
  /* Spare room of values grown by APPEND, allocated beyond their length
   * (below a quarter of each, or 16 bytes for one under 64, and below
   * 1 MiB). This replica's own: it depends on the APPENDs it applied
   * itself, not on the state (a replica that restored a snapshot has
   * none). data_bytes plus this is the heap that keys and values take,
   * the allocator's and the store's own overheads aside. */
  uint64_t slack_bytes;
};
void kvstore_memory(const struct kvstore *kv, struct kvstore_memory *out);
/* The highest now_ms applied so far. */
uint64_t kvstore_clock_ms(const struct kvstore *kv);
/* The earliest expiry instant among keys that have one (expired keys not
 * yet reclaimed included), or 0 when none has. O(1). */
uint64_t kvstore_next_expiry_ms(const struct kvstore *kv);
/* Sessions in the table. */
uint64_t kvstore_n_sessions(const struct kvstore *kv);
/* True, with *last_seq, when the session is in the table. */
bool kvstore_session(const struct kvstore *kv, uint64_t session,
                     uint64_t *last_seq);
/* As kvstore_session(), and the saved reply of the session's last command
 * (outcome KVSTORE_DUPLICATE; kind 0 when the session applied none yet):
 * how a host answers a command that reached it inside a snapshot. */
bool kvstore_session_reply(const struct kvstore *kv, uint64_t session,
                           uint64_t *last_seq, struct kvstore_result *reply);

/* ---- Snapshots --------------------------------------------------------- */

/* Bytes kvstore_snapshot() writes; O(1). */
size_t kvstore_snapshot_size(const struct kvstore *kv);
/* Writes the whole state (keys, expiry times, clock, session table) into
 * buf[0, cap), cap >= kvstore_snapshot_size(). Returns the bytes written. */
size_t kvstore_snapshot(const struct kvstore *kv, uint8_t *buf, size_t cap);
/* Replaces the state with a snapshot's. Returns 0; SABHA_ECORRUPT when the
 * bytes fail their checksum, are malformed, or hold more than this store's
 * config allows; or SABHA_ENOMEM. On error the store is unchanged. */
int kvstore_restore(struct kvstore *kv, const uint8_t *data, size_t len);

#endif
