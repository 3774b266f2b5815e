/* The replicated key-value state machine: see kv.h for the model and the
 * byte formats. Everything is sized once at creation (keys, sessions, the
 * applied-op bitset), so applying a command never allocates. */
#include "sm/kv.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sabha/error.h"

struct kv_session_slot {
  uint64_t last_seq; /* 0: no command applied yet */
  uint8_t last_swapped;
};

struct kv {
  struct kv_limits limits;
  int64_t *values;                  /* [keys_max] */
  struct kv_session_slot *sessions; /* [clients_max] */
  uint8_t *applied_ops;             /* [bitset_bytes] */
  size_t bitset_bytes;
  uint64_t n_applied;
};

#define KV_SNAP_HEADER_BYTES (1u + 4u + 4u + 8u + 8u)
#define KV_SESSION_BYTES (8u + 1u)

/* Little-endian field access. */
static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static bool limits_valid(const struct kv_limits *l) {
  return l->keys_max > 0 && l->keys_max <= KV_KEYS_MAX && l->clients_max > 0 &&
         l->clients_max <= KV_CLIENTS_MAX && l->op_ids_max > 0 &&
         l->op_ids_max <= KV_OP_IDS_MAX;
}

int kv_new(struct kv **out, const struct kv_limits *limits) {
  assert(out != NULL && limits != NULL);
  if (!limits_valid(limits))
    return SABHA_EINVAL;
  struct kv *kv = calloc(1, sizeof *kv);
  if (kv == NULL)
    return SABHA_ENOMEM;
  kv->limits = *limits;
  kv->bitset_bytes = (size_t)((limits->op_ids_max + 7) / 8);
  kv->values = malloc(sizeof *kv->values * limits->keys_max);
  kv->sessions = malloc(sizeof *kv->sessions * limits->clients_max);
  kv->applied_ops = malloc(kv->bitset_bytes);
  if (kv->values == NULL || kv->sessions == NULL || kv->applied_ops == NULL) {
    kv_free(kv);
    return SABHA_ENOMEM;
  }
  kv_reset(kv);
  *out = kv;
  return 0;
}

void kv_free(struct kv *kv) {
  if (kv == NULL)
    return;
  free(kv->values);
  free(kv->sessions);
  free(kv->applied_ops);
  free(kv);
}

void kv_reset(struct kv *kv) {
  for (uint32_t i = 0; i < kv->limits.keys_max; i++)
    kv->values[i] = KV_NIL;
  memset(kv->sessions, 0, sizeof *kv->sessions * kv->limits.clients_max);
  memset(kv->applied_ops, 0, kv->bitset_bytes);
  kv->n_applied = 0;
}

void kv_cmd_encode(const struct kv_cmd *cmd, uint8_t buf[KV_CMD_SIZE_BYTES]) {
  assert(cmd->kind == KV_CMD_PUT || cmd->kind == KV_CMD_CAS);
  buf[0] = (uint8_t)KV_FORMAT_VERSION;
  buf[1] = (uint8_t)cmd->kind;
  put_u32(buf + 2, cmd->client);
  put_u64(buf + 6, cmd->seq);
  put_u64(buf + 14, cmd->op_id);
  put_u32(buf + 22, cmd->key);
  put_u64(buf + 26, (uint64_t)cmd->value);
  put_u64(buf + 34, (uint64_t)cmd->expected);
}

int kv_cmd_decode(const uint8_t *data, size_t size_bytes, struct kv_cmd *cmd) {
  if (data == NULL || size_bytes != KV_CMD_SIZE_BYTES ||
      data[0] != KV_FORMAT_VERSION ||
      (data[1] != KV_CMD_PUT && data[1] != KV_CMD_CAS))
    return SABHA_ECORRUPT;
  cmd->kind = data[1];
  cmd->client = get_u32(data + 2);
  cmd->seq = get_u64(data + 6);
  cmd->op_id = get_u64(data + 14);
  cmd->key = get_u32(data + 22);
  cmd->value = (int64_t)get_u64(data + 26);
  cmd->expected = (int64_t)get_u64(data + 34);
  return 0;
}

/* Decides whether `cmd` is new, a retry, stale or out of range, and fills
 * `res` for every case but a new command. Returns true for a new one. */
static bool kv_admit(const struct kv *kv, const struct kv_cmd *cmd,
                     struct kv_result *res) {
  res->swapped = 0;
  if (cmd->key >= kv->limits.keys_max ||
      cmd->client >= kv->limits.clients_max ||
      cmd->op_id >= kv->limits.op_ids_max || cmd->seq == 0) {
    res->outcome = KV_REJECTED;
    return false;
  }
  const struct kv_session_slot *s = &kv->sessions[cmd->client];
  if (cmd->seq == s->last_seq) {
    res->outcome = KV_DUPLICATE;
    res->swapped = s->last_swapped;
    return false;
  }
  if (cmd->seq < s->last_seq) {
    res->outcome = KV_STALE;
    return false;
  }
  return true;
}

int kv_apply(struct kv *kv, const uint8_t *data, size_t size_bytes,
             struct kv_cmd *cmd, struct kv_result *res) {
  assert(kv != NULL && cmd != NULL && res != NULL);
  int rv = kv_cmd_decode(data, size_bytes, cmd);
  if (rv != 0)
    return rv;
  if (!kv_admit(kv, cmd, res))
    return 0;
  int64_t *slot = &kv->values[cmd->key];
  bool swapped = false;
  if (cmd->kind == KV_CMD_PUT) {
    *slot = cmd->value;
  } else if (*slot == cmd->expected) {
    *slot = cmd->value;
    swapped = true;
  }
  struct kv_session_slot *s = &kv->sessions[cmd->client];
  s->last_seq = cmd->seq;
  s->last_swapped = swapped;
  kv->applied_ops[cmd->op_id / 8] |= (uint8_t)(1u << (cmd->op_id % 8));
  kv->n_applied++;
  res->outcome = KV_APPLIED;
  res->swapped = swapped;
  assert(kv_op_applied(kv, cmd->op_id));
  return 0;
}

int64_t kv_get(const struct kv *kv, uint32_t key) {
  if (key >= kv->limits.keys_max)
    return KV_NIL;
  return kv->values[key];
}

bool kv_session(const struct kv *kv, uint32_t client, uint64_t *seq,
                struct kv_result *res) {
  if (client >= kv->limits.clients_max || kv->sessions[client].last_seq == 0)
    return false;
  *seq = kv->sessions[client].last_seq;
  res->outcome = KV_DUPLICATE;
  res->swapped = kv->sessions[client].last_swapped;
  return true;
}

bool kv_op_applied(const struct kv *kv, uint64_t op_id) {
  if (op_id >= kv->limits.op_ids_max)
    return false;
  return (kv->applied_ops[op_id / 8] >> (op_id % 8)) & 1u;
}

uint64_t kv_n_applied(const struct kv *kv) {
  return kv->n_applied;
}

size_t kv_snapshot_size(const struct kv *kv) {
  return KV_SNAP_HEADER_BYTES + (size_t)kv->limits.keys_max * 8u +
         (size_t)kv->limits.clients_max * KV_SESSION_BYTES + kv->bitset_bytes;
}

size_t kv_snapshot(const struct kv *kv, uint8_t *buf, size_t size_bytes) {
  size_t need = kv_snapshot_size(kv);
  assert(size_bytes >= need);
  (void)size_bytes;
  uint8_t *p = buf;
  *p++ = (uint8_t)KV_FORMAT_VERSION;
  put_u32(p, kv->limits.keys_max);
  put_u32(p + 4, kv->limits.clients_max);
  put_u64(p + 8, kv->limits.op_ids_max);
  put_u64(p + 16, kv->n_applied);
  p += 24;
  for (uint32_t i = 0; i < kv->limits.keys_max; i++, p += 8)
    put_u64(p, (uint64_t)kv->values[i]);
  for (uint32_t i = 0; i < kv->limits.clients_max; i++, p += KV_SESSION_BYTES) {
    put_u64(p, kv->sessions[i].last_seq);
    p[8] = kv->sessions[i].last_swapped;
  }
  memcpy(p, kv->applied_ops, kv->bitset_bytes);
  p += kv->bitset_bytes;
  assert((size_t)(p - buf) == need);
  return need;
}

int kv_restore(struct kv *kv, const uint8_t *data, size_t size_bytes) {
  assert(kv != NULL);
  if (data == NULL || size_bytes != kv_snapshot_size(kv) ||
      data[0] != KV_FORMAT_VERSION ||
      get_u32(data + 1) != kv->limits.keys_max ||
      get_u32(data + 5) != kv->limits.clients_max ||
      get_u64(data + 9) != kv->limits.op_ids_max)
    return SABHA_ECORRUPT;
  const uint8_t *p = data + KV_SNAP_HEADER_BYTES;
  /* Validate before changing anything: a session's swapped flag is 0 or 1. */
  const uint8_t *sessions = p + (size_t)kv->limits.keys_max * 8u;
  for (uint32_t i = 0; i < kv->limits.clients_max; i++)
    if (sessions[(size_t)i * KV_SESSION_BYTES + 8] > 1)
      return SABHA_ECORRUPT;
  kv->n_applied = get_u64(data + 17);
  for (uint32_t i = 0; i < kv->limits.keys_max; i++, p += 8)
    kv->values[i] = (int64_t)get_u64(p);
  for (uint32_t i = 0; i < kv->limits.clients_max; i++, p += KV_SESSION_BYTES) {
    kv->sessions[i].last_seq = get_u64(p);
    kv->sessions[i].last_swapped = p[8];
  }
  memcpy(kv->applied_ops, p, kv->bitset_bytes);
  assert((size_t)(p + kv->bitset_bytes - data) == size_bytes);
  return 0;
}
