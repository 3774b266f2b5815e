/* The table through which sabha_engine_* calls reach a protocol.
 *
 * Each protocol (src/raft, src/paxos, src/async) fills one `struct engine_ops`
 * and is listed in src/core/engine.c. The public functions check their
 * arguments once here, so the protocols can assert instead of re-checking. */
#ifndef SABHA_CORE_ENGINE_IMPL_H
#define SABHA_CORE_ENGINE_IMPL_H

#include "sabha/engine.h"

struct describe;

struct engine_ops {
  const char *name;
  int (*create)(void **state, const struct sabha_config *cfg,
                const struct sabha_persisted *persisted);
  void (*destroy)(void *state);
  int (*tick)(void *state, uint64_t now_ms);
  int (*step)(void *state, const struct sabha_msg *msg);
  int (*propose)(void *state, const void *data, size_t size_bytes);
  int (*read_index)(void *state, uint64_t request_id);
  bool (*has_ready)(const void *state);
  void (*ready)(void *state, struct sabha_ready *rd);
  void (*advance)(void *state, const struct sabha_ready *rd);
  void (*persisted)(void *state, uint64_t seq);
  void (*status)(const void *state, struct sabha_status *st);
  int (*transfer_leadership)(void *state, uint32_t to);
  int (*compact)(void *state, uint64_t index, const void *data,
                 size_t size_bytes);
  int (*entry)(const void *state, uint64_t index, struct sabha_entry *out);
  /* Membership (engine.h). NULL for a protocol whose membership is fixed:
   * change answers SABHA_ENOTSUPP, the others the configuration's voters. */
  int (*change)(void *state, enum sabha_change_type type, uint32_t id,
                const char *addr);
  void (*members)(const void *state, struct sabha_membership *out);
  int (*membership_at)(const void *state, uint64_t index,
                       struct sabha_membership *out);
  /* The protocol's own copy of its configuration, whose timing fields
   * (election_timeout_ms_min/max, heartbeat_ms) every timer reads when it
   * is armed: sabha_engine_set_timing changes them there, already
   * checked. */
  struct sabha_config *(*config)(void *state);
  /* Renders `m` into `t` (see "describing messages" below). Needs no
   * engine: hosts describe messages for nodes that are down. */
  void (*describe)(struct describe *t, const struct sabha_msg *m);
};

/* ---- describing messages -------------------------------------------------
 *
 * sabha_msg_describe() gives the protocol's `describe` a `struct describe`
 * over the caller's buffer. The protocol writes the message's name and the
 * fields that type uses, each with the helpers below, which note the field
 * as shown; engine.c then appends every other field that is not zero in a
 * neutral `field=value` form. So a protocol that gains a field, or a peer
 * that sends one a type does not use, is still seen whole, and a describer
 * cannot hide anything by forgetting it.
 *
 * The helpers never write past the buffer and count the full length, as
 * snprintf does. Ballots (Paxos: round << 8 | node, src/paxos) print as
 * "round.node" when `ballots` is set. */
enum describe_field {
  DESCRIBE_REJECT = 1u << 0,
  DESCRIBE_TERM = 1u << 1,
  DESCRIBE_INDEX = 1u << 2,
  DESCRIBE_LOG_TERM = 1u << 3,
  DESCRIBE_COMMIT = 1u << 4,
  DESCRIBE_HINT = 1u << 5, /* hint_index and hint_term */
  DESCRIBE_CONTEXT = 1u << 6,
  DESCRIBE_ENTRIES = 1u << 7,
  DESCRIBE_SNAP = 1u << 8,       /* snap.index and snap.term */
  DESCRIBE_SNAP_BYTES = 1u << 9, /* offset, size and total of a chunk */
};

struct describe {
  char *buf;
  size_t size;    /* of buf, with room for the NUL */
  size_t len;     /* length of the whole text, even past `size` */
  uint32_t shown; /* enum describe_field bits */
  bool ballots;   /* terms are Paxos ballots */
};

/* Appends text, bounded by the buffer. */
void describe_text(struct describe *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* " key=" and `term` (a term, or a ballot as "round.node"). */
void describe_term(struct describe *t, const char *key, uint64_t term);
/* " key=value"; marks `field` shown. */
void describe_u64(struct describe *t, const char *key, uint64_t value,
                  uint32_t field);
/* " key=index/term"; marks `field` shown. */
void describe_at(struct describe *t, const char *key, uint64_t index,
                 uint64_t term, uint32_t field);
/* " ok_word" or " reject" (m->reject); marks the verdict shown. */
void describe_verdict(struct describe *t, const struct sabha_msg *m,
                      const char *ok_word);
/* " key=" and the entries as runs of index/term ("41..43/3,44/4"), at
 * most a few runs and then how many entries more ("+12"); nothing for
 * none. Marks the entries shown either way. */
void describe_entries(struct describe *t, const char *key,
                      const struct sabha_msg *m);
/* A value as a short quoted string, "noop" or "batch(n)". */
void describe_value(struct describe *t, const struct sabha_entry *e);
/* The name of `type` from `names` (indexed by type, NULL for none).
 * Returns false, having written "type=N", for a type without a name. */
bool describe_name(struct describe *t, const char *const *names, size_t n_names,
                   uint32_t type);
/* An acknowledgement of entries as Raft and async send it: " index=I ok",
 * " index=I reject hint=I/T", or " reject" alone for a stale term. */
void describe_append_resp(struct describe *t, const struct sabha_msg *m);
/* " snap=index/term received=bytes": a snapshot chunk acknowledged. */
void describe_snapshot_resp(struct describe *t, const struct sabha_msg *m);
/* " snap=index/term bytes=from..to/total" of a snapshot chunk. */
void describe_snapshot_chunk(struct describe *t, const struct sabha_msg *m);

extern const struct engine_ops raft_engine_ops;
extern const struct engine_ops multipaxos_engine_ops;
extern const struct engine_ops paxos_engine_ops;
extern const struct engine_ops async_engine_ops;

#endif
