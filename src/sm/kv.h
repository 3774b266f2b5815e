/* The replicated key-value state machine.
 *
 * Every node of a group feeds the committed log into one `struct kv`; because
 * applying the same commands in the same order gives the same state, every
 * node ends up with the same map. The simulator uses it today, the real node
 * (sabhad) tomorrow, so it knows nothing about either: it turns command bytes
 * into a result, and serializes itself into snapshot bytes and back.
 *
 * The data: keys are small integers [0, keys_max), values are int64 value
 * ids (KV_NIL for a missing key). Writes are commands that go through the log:
 * put(key, value) and cas(key, expected, new). Reads are not commands: a host
 * serves them with kv_get() once its engine's ReadIndex says the state is
 * current enough.
 *
 * Exactly-once: every command carries the client id and a per-client sequence
 * number. The machine keeps, per client, the last sequence number it applied
 * and that command's result. A command with that same number is a retry: it
 * is answered with the saved result and not applied again. A command with a
 * lower number is stale (its client already moved on, which a closed-loop
 * client does only after giving up on it) and is ignored. The table is
 * bounded by clients_max and travels in snapshots.
 *
 * For the checkers the machine also records which operation ids (a global id
 * per client operation, carried in the command) it applied, as a bitset of
 * op_ids_max bits that also travels in snapshots.
 *
 * Command format (version 1, little-endian, KV_CMD_SIZE_BYTES bytes):
 *
 *   u8 version (1) | u8 kind (1 put, 2 cas) | u32 client | u64 seq |
 *   u64 op_id | u32 key | i64 value | i64 expected (cas; KV_NIL for put)
 *
 * Snapshot format (version 1, little-endian):
 *
 *   u8 version (1) | u32 keys_max | u32 clients_max | u64 op_ids_max |
 *   u64 n_applied | keys_max x i64 value |
 *   clients_max x (u64 last_seq, u8 last_swapped) |
 *   ceil(op_ids_max / 8) bytes of applied-op bitset (bit i of byte i/8)
 */
#ifndef SABHA_SM_KV_H
#define SABHA_SM_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_NIL (-1) /* the value of a missing key; equals HIST_NIL */
#define KV_FORMAT_VERSION 1u
#define KV_CMD_SIZE_BYTES 42u

enum kv_cmd_kind { KV_CMD_PUT = 1, KV_CMD_CAS = 2 };

struct kv_cmd {
  uint32_t kind; /* enum kv_cmd_kind */
  uint32_t client;
  uint64_t seq;   /* per client, from 1; one command in flight per client */
  uint64_t op_id; /* the checkers' global operation id */
  uint32_t key;
  int64_t value;    /* put: the value; cas: the new value */
  int64_t expected; /* cas: swap only if the key holds this (or KV_NIL) */
};

enum kv_outcome {
  KV_APPLIED = 0,   /* applied now */
  KV_DUPLICATE = 1, /* a retry of the client's last command: saved result */
  KV_STALE = 2,     /* older than the client's last command: ignored */
  KV_REJECTED = 3,  /* outside the limits (key, client or op id): ignored */
};

struct kv_result {
  uint32_t outcome; /* enum kv_outcome */
  int32_t swapped;  /* cas, when applied or duplicate: 1 if it swapped */
};

struct kv_limits {
  uint32_t keys_max;    /* keys are [0, keys_max) */
  uint32_t clients_max; /* client ids are [0, clients_max) */
  uint64_t op_ids_max;  /* op ids are [0, op_ids_max) */
};

/* Upper bounds on the limits, so that a snapshot header cannot ask for an
 * absurd allocation. */
#define KV_KEYS_MAX (1u << 20)
#define KV_CLIENTS_MAX (1u << 20)
#define KV_OP_IDS_MAX (1ull << 32)

struct kv;

/* Creates an empty machine. Returns 0 and sets *out, SABHA_EINVAL for limits
 * of 0 or beyond the maxima above, or SABHA_ENOMEM. */
int kv_new(struct kv **out, const struct kv_limits *limits);
void kv_free(struct kv *kv);
/* Empties the machine (every key missing, no sessions, no op applied). */
void kv_reset(struct kv *kv);

/* Encodes `cmd` into exactly KV_CMD_SIZE_BYTES bytes at `buf`. */
void kv_cmd_encode(const struct kv_cmd *cmd, uint8_t buf[KV_CMD_SIZE_BYTES]);
/* Decodes a command. Returns 0, or SABHA_ECORRUPT for a wrong size, version
 * or kind. */
int kv_cmd_decode(const uint8_t *data, size_t size_bytes, struct kv_cmd *cmd);

/* Applies one committed command. Returns 0 and fills `cmd` (decoded) and
 * `res`, or SABHA_ECORRUPT when the bytes are not a command (the state is
 * then unchanged). Deterministic: equal states and bytes give equal results
 * and equal states. */
int kv_apply(struct kv *kv, const uint8_t *data, size_t size_bytes,
             struct kv_cmd *cmd, struct kv_result *res);

/* The value of `key`, or KV_NIL when missing or out of range. */
int64_t kv_get(const struct kv *kv, uint32_t key);

/* The client's session: returns true and sets *seq and *res when the client
 * has applied a command (its last one), false otherwise. */
bool kv_session(const struct kv *kv, uint32_t client, uint64_t *seq,
                struct kv_result *res);

/* True when the command carrying `op_id` has been applied. */
bool kv_op_applied(const struct kv *kv, uint64_t op_id);

/* Commands applied since the machine was created or last reset, snapshots
 * included. */
uint64_t kv_n_applied(const struct kv *kv);

/* Bytes kv_snapshot() writes. */
size_t kv_snapshot_size(const struct kv *kv);
/* Serializes the whole state into `buf` of `size_bytes` (at least
 * kv_snapshot_size()). Returns the bytes written. */
size_t kv_snapshot(const struct kv *kv, uint8_t *buf, size_t size_bytes);
/* Replaces the state with a snapshot's. Returns 0, or SABHA_ECORRUPT when the
 * bytes are malformed or were taken with other limits (the state is then
 * unchanged). */
int kv_restore(struct kv *kv, const uint8_t *data, size_t size_bytes);

#endif
