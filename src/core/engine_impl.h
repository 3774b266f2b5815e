/* The table through which sabha_engine_* calls reach a protocol.
 *
 * Each protocol (src/raft, src/paxos, src/async) fills one `struct engine_ops` and is
 * listed in src/core/engine.c. The public functions check their arguments
 * once here, so the protocols can assert instead of re-checking. */
#ifndef SABHA_CORE_ENGINE_IMPL_H
#define SABHA_CORE_ENGINE_IMPL_H

#include "sabha/engine.h"

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
  void (*status)(const void *state, struct sabha_status *st);
  int (*transfer_leadership)(void *state, uint32_t to);
  int (*compact)(void *state, uint64_t index, const void *data,
                 size_t size_bytes);
  int (*entry)(const void *state, uint64_t index, struct sabha_entry *out);
};

extern const struct engine_ops raft_engine_ops;
extern const struct engine_ops multipaxos_engine_ops;
extern const struct engine_ops paxos_engine_ops;
extern const struct engine_ops async_engine_ops;

#endif
