/* The public engine API: argument checks and dispatch to a protocol.
 *
 * Hosts (the simulator, sabhad) only ever call these functions, so adding a
 * protocol means adding one `struct engine_ops` to the table below and
 * nothing else. */
#include "core/engine_impl.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "core/membership.h"

struct sabha_engine {
  const struct engine_ops *ops;
  void *state;
  /* For protocols without membership changes, the membership they keep
   * for ever. */
  struct sabha_membership fixed;
};

static const struct engine_ops *const engine_table[] = {
    &raft_engine_ops, &multipaxos_engine_ops, &paxos_engine_ops,
    &async_engine_ops, /* a baseline, not consensus: see src/async */
};

#define ENGINE_COUNT (sizeof engine_table / sizeof engine_table[0])

/* The names, in engine_table's order, fixed at compile time: a table filled
 * on first use would be shared mutable state that threads (the lab runs
 * simulations in parallel) race on. test_engine_names checks that it
 * matches each engine's own name. */
static const char *const protocol_names[] = {"raft", "multipaxos", "paxos",
                                             "async", NULL};
_Static_assert(sizeof protocol_names / sizeof protocol_names[0] ==
                   ENGINE_COUNT + 1,
               "one name per engine");

const char *const *sabha_protocols(void) {
  return protocol_names;
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
  cfg->alpha = 16;
  cfg->bugs = 0;
}

static int config_check(const struct sabha_config *cfg) {
  if (cfg->id == SABHA_NODE_NONE || cfg->n_voters > SABHA_NODES_MAX ||
      (cfg->n_voters == 0 && !cfg->join))
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
  if ((!self && !cfg->join) || cfg->heartbeat_ms == 0 ||
      cfg->election_timeout_ms_min <= cfg->heartbeat_ms ||
      cfg->election_timeout_ms_max < cfg->election_timeout_ms_min ||
      cfg->inflight_msgs_max == 0 || cfg->entries_per_msg_max == 0 ||
      cfg->bytes_per_msg_max == 0 || cfg->uncommitted_entries_max == 0 ||
      cfg->snapshot_chunk_bytes == 0 || cfg->commands_per_slot_max == 0 ||
      cfg->alpha == 0)
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
  if (cfg->join && ops->change == NULL)
    return SABHA_ENOTSUPP; /* it could never be given a membership */
  struct sabha_engine *e = calloc(1, sizeof *e);
  if (e == NULL)
    return SABHA_ENOMEM;
  e->ops = ops;
  membership_initial(cfg, &e->fixed);
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

void sabha_engine_persisted(struct sabha_engine *e, uint64_t seq) {
  e->ops->persisted(e->state, seq);
}

void sabha_engine_status(const struct sabha_engine *e,
                         struct sabha_status *st) {
  memset(st, 0, sizeof *st);
  e->ops->status(e->state, st);
}

int sabha_engine_transfer_leadership(struct sabha_engine *e, uint32_t to) {
  return e->ops->transfer_leadership(e->state, to);
}

int sabha_engine_set_timing(struct sabha_engine *e,
                            const struct sabha_timing *t) {
  if (t == NULL || t->heartbeat_ms == 0 ||
      t->election_timeout_ms_min <= t->heartbeat_ms ||
      t->election_timeout_ms_max < t->election_timeout_ms_min ||
      t->election_timeout_ms_max > SABHA_TIMING_MS_MAX)
    return SABHA_EINVAL;
  struct sabha_config *cfg = e->ops->config(e->state);
  cfg->election_timeout_ms_min = t->election_timeout_ms_min;
  cfg->election_timeout_ms_max = t->election_timeout_ms_max;
  cfg->heartbeat_ms = t->heartbeat_ms;
  return 0;
}

void sabha_engine_timing(const struct sabha_engine *e, struct sabha_timing *t) {
  /* config() hands out the protocol's copy for writing; reading it here
   * changes nothing. */
  const struct sabha_config *cfg = e->ops->config(e->state);
  t->election_timeout_ms_min = cfg->election_timeout_ms_min;
  t->election_timeout_ms_max = cfg->election_timeout_ms_max;
  t->heartbeat_ms = cfg->heartbeat_ms;
}

int sabha_engine_change(struct sabha_engine *e, enum sabha_change_type type,
                        uint32_t id, const char *addr) {
  if (e->ops->change == NULL)
    return SABHA_ENOTSUPP;
  if (type != SABHA_CHANGE_ADD_LEARNER && type != SABHA_CHANGE_PROMOTE &&
      type != SABHA_CHANGE_REMOVE)
    return SABHA_EINVAL;
  return e->ops->change(e->state, type, id, addr != NULL ? addr : "");
}

void sabha_engine_members(const struct sabha_engine *e,
                          struct sabha_membership *out) {
  if (e->ops->members == NULL)
    *out = e->fixed;
  else
    e->ops->members(e->state, out);
}

int sabha_engine_membership_at(const struct sabha_engine *e, uint64_t index,
                               struct sabha_membership *out) {
  if (e->ops->membership_at == NULL) {
    *out = e->fixed;
    return 0;
  }
  return e->ops->membership_at(e->state, index, out);
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
  size_t len = le_get_u32(p);
  if (len > e->size_bytes - *offset - 4)
    return SABHA_ECORRUPT;
  *cmd = p + 4;
  *size_bytes = len;
  *offset += 4 + len;
  return 1;
}

/* ---- describing messages (engine_impl.h) -------------------------------- */

#define DESCRIBE_RUNS_MAX 4u     /* entry runs shown before "+n" */
#define DESCRIBE_VALUE_BYTES 24u /* bytes of a value shown before "+n" */

void describe_text(struct describe *t, const char *fmt, ...) {
  size_t room = t->len < t->size ? t->size - t->len : 0;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(room > 0 ? t->buf + t->len : NULL, room, fmt, ap);
  va_end(ap);
  assert(n >= 0); /* only a bad format fails, and formats are literals */
  if (n > 0)
    t->len += (size_t)n;
}

static void describe_number(struct describe *t, uint64_t term) {
  if (t->ballots && term != 0)
    describe_text(t, "%llu.%llu", (unsigned long long)(term >> 8),
                  (unsigned long long)(term & 0xff));
  else
    describe_text(t, "%llu", (unsigned long long)term);
}

void describe_term(struct describe *t, const char *key, uint64_t term) {
  describe_text(t, " %s=", key);
  describe_number(t, term);
  t->shown |= DESCRIBE_TERM;
}

void describe_u64(struct describe *t, const char *key, uint64_t value,
                  uint32_t field) {
  describe_text(t, " %s=%llu", key, (unsigned long long)value);
  t->shown |= field;
}

void describe_at(struct describe *t, const char *key, uint64_t index,
                 uint64_t term, uint32_t field) {
  describe_text(t, " %s=%llu/", key, (unsigned long long)index);
  describe_number(t, term);
  t->shown |= field;
}

void describe_verdict(struct describe *t, const struct sabha_msg *m,
                      const char *ok_word) {
  describe_text(t, " %s", m->reject ? "reject" : ok_word);
  t->shown |= DESCRIBE_REJECT;
}

void describe_entries(struct describe *t, const char *key,
                      const struct sabha_msg *m) {
  t->shown |= DESCRIBE_ENTRIES;
  if (m->n_entries == 0 || m->entries == NULL)
    return;
  describe_text(t, " %s=", key);
  uint32_t runs = 0;
  for (uint32_t i = 0; i < m->n_entries;) {
    /* A run: consecutive indices under one term. */
    uint32_t j = i + 1;
    while (j < m->n_entries && m->entries[j].term == m->entries[i].term &&
           m->entries[j].index == m->entries[j - 1].index + 1)
      j++;
    if (runs == DESCRIBE_RUNS_MAX) {
      describe_text(t, ",+%u", m->n_entries - i);
      return;
    }
    describe_text(t, "%s%llu", runs > 0 ? "," : "",
                  (unsigned long long)m->entries[i].index);
    if (j - i > 1)
      describe_text(t, "..%llu", (unsigned long long)m->entries[j - 1].index);
    describe_text(t, "/");
    describe_number(t, m->entries[i].term);
    runs++;
    i = j;
  }
}

void describe_value(struct describe *t, const struct sabha_entry *e) {
  if (e->type == SABHA_ENTRY_NOOP) {
    describe_text(t, "noop");
    return;
  }
  if (e->type == SABHA_ENTRY_BATCH) {
    size_t offset = 0;
    const uint8_t *cmd;
    size_t size;
    uint32_t n = 0;
    int rv;
    while ((rv = sabha_batch_next(e, &offset, &cmd, &size)) == 1)
      n++;
    describe_text(t, rv == 0 ? "batch(%u)" : "batch(%u,corrupt)", n);
    return;
  }
  if (e->type != SABHA_ENTRY_COMMAND) {
    describe_text(t, "type%u(%u bytes)", e->type, e->size_bytes);
    return;
  }
  uint32_t shown = e->size_bytes < DESCRIBE_VALUE_BYTES ? e->size_bytes
                                                        : DESCRIBE_VALUE_BYTES;
  describe_text(t, "\"");
  for (uint32_t i = 0; i < shown; i++) {
    uint8_t c = e->data[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      describe_text(t, "%c", c);
    else
      describe_text(t, "\\x%02x", c);
  }
  describe_text(t, "\"");
  if (shown < e->size_bytes)
    describe_text(t, "+%u", e->size_bytes - shown);
}

void describe_snapshot_chunk(struct describe *t, const struct sabha_msg *m) {
  describe_at(t, "snap", m->snap.index, m->snap.term, DESCRIBE_SNAP);
  describe_text(t, " bytes=%llu..%llu/%llu", (unsigned long long)m->snap_offset,
                (unsigned long long)(m->snap_offset + m->snap_size_bytes),
                (unsigned long long)m->snap_total_bytes);
  t->shown |= DESCRIBE_SNAP_BYTES;
}

bool describe_name(struct describe *t, const char *const *names, size_t n_names,
                   uint32_t type) {
  if (type >= n_names || names[type] == NULL) {
    describe_text(t, "type=%u", type);
    return false;
  }
  describe_text(t, "%s", names[type]);
  return true;
}

void describe_append_resp(struct describe *t, const struct sabha_msg *m) {
  /* A refusal of a stale term carries nothing but the term. */
  bool stale = m->reject && m->index == 0;
  if (!stale)
    describe_u64(t, "index", m->index, DESCRIBE_INDEX);
  describe_verdict(t, m, "ok");
  if (m->reject && !stale)
    describe_at(t, "hint", m->hint_index, m->hint_term, DESCRIBE_HINT);
}

void describe_snapshot_resp(struct describe *t, const struct sabha_msg *m) {
  describe_at(t, "snap", m->snap.index, m->snap.term, DESCRIBE_SNAP);
  describe_u64(t, "received", m->context, DESCRIBE_CONTEXT);
}

/* Every field the protocol did not show and that is not zero. */
static void describe_rest(struct describe *t, const struct sabha_msg *m) {
  uint32_t shown = t->shown;
  if (!(shown & DESCRIBE_TERM) && m->term != 0)
    describe_term(t, "term", m->term);
  if (!(shown & DESCRIBE_INDEX) && m->index != 0)
    describe_u64(t, "index", m->index, DESCRIBE_INDEX);
  if (!(shown & DESCRIBE_LOG_TERM) && m->log_term != 0)
    describe_term(t, "log_term", m->log_term);
  if (!(shown & DESCRIBE_COMMIT) && m->commit != 0)
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
  if (!(shown & DESCRIBE_HINT) && (m->hint_index != 0 || m->hint_term != 0))
    describe_at(t, "hint", m->hint_index, m->hint_term, DESCRIBE_HINT);
  if (!(shown & DESCRIBE_CONTEXT) && m->context != 0)
    describe_u64(t, "ctx", m->context, DESCRIBE_CONTEXT);
  if (!(shown & DESCRIBE_ENTRIES) && m->n_entries != 0)
    describe_entries(t, "entries", m);
  if (!(shown & DESCRIBE_SNAP) && (m->snap.index != 0 || m->snap.term != 0))
    describe_at(t, "snap", m->snap.index, m->snap.term, DESCRIBE_SNAP);
  if (!(shown & DESCRIBE_SNAP_BYTES) &&
      (m->snap_offset != 0 || m->snap_size_bytes != 0 ||
       m->snap_total_bytes != 0))
    describe_text(t, " bytes=%llu..%llu/%llu",
                  (unsigned long long)m->snap_offset,
                  (unsigned long long)(m->snap_offset + m->snap_size_bytes),
                  (unsigned long long)m->snap_total_bytes);
  if (!(shown & DESCRIBE_REJECT) && m->reject != 0)
    describe_text(t, " reject");
}

size_t sabha_msg_describe(const char *protocol, const struct sabha_msg *msg,
                          char *buf, size_t size) {
  assert(msg != NULL && (buf != NULL || size == 0));
  struct describe t = {.buf = buf, .size = size};
  if (size > 0)
    buf[0] = '\0';
  const struct engine_ops *ops = NULL;
  for (size_t i = 0; protocol != NULL && i < ENGINE_COUNT; i++)
    if (strcmp(engine_table[i]->name, protocol) == 0)
      ops = engine_table[i];
  if (ops != NULL)
    ops->describe(&t, msg);
  else
    describe_text(&t, "type=%u", msg->type);
  describe_rest(&t, msg);
  return t.len;
}

size_t sabha_engine_describe_msg(const struct sabha_engine *e,
                                 const struct sabha_msg *msg, char *buf,
                                 size_t size) {
  return sabha_msg_describe(e->ops->name, msg, buf, size);
}
