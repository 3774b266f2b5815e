/* The public engine API: argument checks and dispatch to a protocol.
 *
 * Hosts (the simulator, sabhad) only ever call these functions, so adding a
 * protocol means adding one `struct engine_ops` to the table below and
 * nothing else. */
#include "core/engine_impl.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct sabha_engine {
  const struct engine_ops *ops;
  void *state;
};

static const struct engine_ops *const engine_table[] = {
    &raft_engine_ops,
    &multipaxos_engine_ops,
    &paxos_engine_ops,
    &async_engine_ops, /* a baseline, not consensus: see src/async */
};

#define ENGINE_COUNT (sizeof engine_table / sizeof engine_table[0])

const char *const *sabha_protocols(void) {
  static const char *names[ENGINE_COUNT + 1];
  for (size_t i = 0; i < ENGINE_COUNT; i++)
    names[i] = engine_table[i]->name;
  names[ENGINE_COUNT] = NULL;
  return names;
}

const char *sabha_role_name(enum sabha_role role) {
  switch (role) {
  case SABHA_ROLE_FOLLOWER:
    return "follower";
  case SABHA_ROLE_PRECANDIDATE:
    return "precandidate";
  case SABHA_ROLE_CANDIDATE:
    return "candidate";
  case SABHA_ROLE_LEADER:
    return "leader";
  }
  return "unknown";
}

void sabha_config_init(struct sabha_config *cfg, uint32_t id,
                       const uint32_t *voters, uint32_t n_voters) {
  memset(cfg, 0, sizeof *cfg);
  cfg->id = id;
  cfg->n_voters = n_voters > SABHA_NODES_MAX ? SABHA_NODES_MAX : n_voters;
  for (uint32_t i = 0; i < cfg->n_voters; i++)
    cfg->voters[i] = voters[i];
  cfg->election_timeout_ms_min = 150;
  cfg->election_timeout_ms_max = 300;
  cfg->heartbeat_ms = 50;
  cfg->pre_vote = true;
  cfg->check_quorum = true;
  cfg->inflight_msgs_max = 64;
  cfg->entries_per_msg_max = 256;
  cfg->bytes_per_msg_max = 1u << 20;
  cfg->uncommitted_entries_max = 4096;
  cfg->snapshot_chunk_bytes = 64u << 10;
  cfg->entry_size_bytes_max = 1u << 20;
  cfg->commands_per_slot_max = 64;
  cfg->bytes_per_slot_max = 64u << 10;
  cfg->seed = id;
  cfg->proposer_backoff = true;
  cfg->bugs = 0;
}

static int config_check(const struct sabha_config *cfg) {
  if (cfg->id == SABHA_NODE_NONE || cfg->n_voters == 0 ||
      cfg->n_voters > SABHA_NODES_MAX)
    return SABHA_EINVAL;
  bool self = false;
  for (uint32_t i = 0; i < cfg->n_voters; i++) {
    if (cfg->voters[i] == SABHA_NODE_NONE)
      return SABHA_EINVAL;
    for (uint32_t j = 0; j < i; j++)
      if (cfg->voters[j] == cfg->voters[i])
        return SABHA_EINVAL;
    self |= cfg->voters[i] == cfg->id;
  }
  if (!self || cfg->heartbeat_ms == 0 ||
      cfg->election_timeout_ms_min <= cfg->heartbeat_ms ||
      cfg->election_timeout_ms_max < cfg->election_timeout_ms_min ||
      cfg->inflight_msgs_max == 0 || cfg->entries_per_msg_max == 0 ||
      cfg->bytes_per_msg_max == 0 || cfg->uncommitted_entries_max == 0 ||
      cfg->snapshot_chunk_bytes == 0 || cfg->commands_per_slot_max == 0)
    return SABHA_EINVAL;
  return 0;
}

int sabha_engine_new(struct sabha_engine **out, const char *protocol,
                     const struct sabha_config *cfg,
                     const struct sabha_persisted *persisted) {
  if (out == NULL || protocol == NULL || cfg == NULL)
    return SABHA_EINVAL;
  const struct engine_ops *ops = NULL;
  for (size_t i = 0; i < ENGINE_COUNT; i++)
    if (strcmp(engine_table[i]->name, protocol) == 0)
      ops = engine_table[i];
  if (ops == NULL)
    return SABHA_EPROTO;
  int rv = config_check(cfg);
  if (rv != 0)
    return rv;
  struct sabha_engine *e = calloc(1, sizeof *e);
  if (e == NULL)
    return SABHA_ENOMEM;
  e->ops = ops;
  rv = ops->create(&e->state, cfg, persisted);
  if (rv != 0) {
    free(e);
    return rv;
  }
  *out = e;
  return 0;
}

void sabha_engine_free(struct sabha_engine *e) {
  if (e == NULL)
    return;
  e->ops->destroy(e->state);
  free(e);
}

const char *sabha_engine_protocol(const struct sabha_engine *e) {
  return e->ops->name;
}

int sabha_engine_tick(struct sabha_engine *e, uint64_t now_ms) {
  return e->ops->tick(e->state, now_ms);
}

int sabha_engine_step(struct sabha_engine *e, const struct sabha_msg *msg) {
  if (msg == NULL)
    return SABHA_EINVAL;
  return e->ops->step(e->state, msg);
}

int sabha_engine_propose(struct sabha_engine *e, const void *data,
                         size_t size_bytes) {
  if (data == NULL && size_bytes > 0)
    return SABHA_EINVAL;
  return e->ops->propose(e->state, data, size_bytes);
}

int sabha_engine_read_index(struct sabha_engine *e, uint64_t request_id) {
  return e->ops->read_index(e->state, request_id);
}

bool sabha_engine_has_ready(const struct sabha_engine *e) {
  return e->ops->has_ready(e->state);
}

void sabha_engine_ready(struct sabha_engine *e, struct sabha_ready *rd) {
  memset(rd, 0, sizeof *rd);
  e->ops->ready(e->state, rd);
}

void sabha_engine_advance(struct sabha_engine *e,
                          const struct sabha_ready *rd) {
  e->ops->advance(e->state, rd);
}

void sabha_engine_status(const struct sabha_engine *e,
                         struct sabha_status *st) {
  memset(st, 0, sizeof *st);
  e->ops->status(e->state, st);
}

int sabha_engine_transfer_leadership(struct sabha_engine *e, uint32_t to) {
  return e->ops->transfer_leadership(e->state, to);
}

int sabha_engine_compact(struct sabha_engine *e, uint64_t index,
                         const void *data, size_t size_bytes) {
  if (data == NULL && size_bytes > 0)
    return SABHA_EINVAL;
  return e->ops->compact(e->state, index, data, size_bytes);
}

int sabha_engine_entry(const struct sabha_engine *e, uint64_t index,
                       struct sabha_entry *out) {
  return e->ops->entry(e->state, index, out);
}

size_t sabha_msg_size_bytes(const struct sabha_msg *msg) {
  /* The wire codec's fixed header (src/net/codec.h, 118 bytes with the
   * frame length) plus per-entry headers and payload. */
  size_t size = 118 + msg->snap_size_bytes;
  for (uint32_t i = 0; i < msg->n_entries; i++)
    size += 24 + msg->entries[i].size_bytes;
  return size;
}

int sabha_batch_next(const struct sabha_entry *e, size_t *offset,
                     const uint8_t **cmd, size_t *size_bytes) {
  if (e->type == SABHA_ENTRY_COMMAND) {
    if (*offset != 0)
      return 0;
    *offset = e->size_bytes == 0 ? 1 : e->size_bytes;
    *cmd = e->data;
    *size_bytes = e->size_bytes;
    return 1;
  }
  if (e->type != SABHA_ENTRY_BATCH || *offset >= e->size_bytes)
    return 0;
  if (e->size_bytes - *offset < 4)
    return SABHA_ECORRUPT;
  const uint8_t *p = e->data + *offset;
  size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
               (size_t)p[3] << 24;
  if (len > e->size_bytes - *offset - 4)
    return SABHA_ECORRUPT;
  *cmd = p + 4;
  *size_bytes = len;
  *offset += 4 + len;
  return 1;
}
