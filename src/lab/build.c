/* From a scenario case to simulator options and a script of timed faults.
 *
 * The topology becomes SIM_SCRIPT_LINK events at time 0 (one per ordered
 * pair of nodes); each timeline event becomes one or more scripted events.
 * A `heal` ends every cut, slowness and clock skew (SIM_SCRIPT_HEAL) and
 * puts every link back to the topology's latency, jitter and loss, so a
 * latency spike ends with it too. A `link` event may give only some of
 * latency, jitter and loss: the builder tracks each link's current values
 * and emits complete ones. */
#include <assert.h>
#include <string.h>

#include "lab/lab.h"
#include "node/runtime.h"

/* Current one-way link values while walking the timeline. */
struct link_state {
  uint32_t latency_us[SABHA_NODES_MAX][SABHA_NODES_MAX];
  uint32_t jitter_us[SABHA_NODES_MAX][SABHA_NODES_MAX];
  double loss[SABHA_NODES_MAX][SABHA_NODES_MAX];
};

struct script_out {
  struct sim_script_event *ev;
  size_t n, cap;
};

static struct sim_script_event *emit(struct script_out *out, uint64_t at_ms,
                                     enum sim_script_op op) {
  assert(out->n < out->cap);
  struct sim_script_event *se = &out->ev[out->n++];
  memset(se, 0, sizeof *se);
  se->at_ms = at_ms;
  se->op = op;
  se->fsync_factor = 1;
  se->rate = 1.0;
  return se;
}

static void emit_links(const struct lab_scenario *sc, struct link_state *ls,
                       struct script_out *out, uint64_t at_ms) {
  for (uint32_t a = 0; a < sc->n_nodes; a++)
    for (uint32_t b = 0; b < sc->n_nodes; b++) {
      if (a == b)
        continue;
      struct sim_script_event *se = emit(out, at_ms, SIM_SCRIPT_LINK);
      se->node = a + 1;
      se->peer = b + 1;
      se->latency_us = ls->latency_us[a][b];
      se->jitter_us = ls->jitter_us[a][b];
      se->loss = ls->loss[a][b];
    }
}

static void links_reset(const struct lab_scenario *sc, struct link_state *ls) {
  for (uint32_t a = 0; a < sc->n_nodes; a++)
    for (uint32_t b = 0; b < sc->n_nodes; b++)
      if (a != b)
        lab_topology_link(sc, a, b, &ls->latency_us[a][b], &ls->jitter_us[a][b],
                          &ls->loss[a][b]);
}

/* A `link` event: updates the links it covers and emits each. */
static void emit_link_change(const struct lab_scenario *sc,
                             const struct lab_event *ev, struct link_state *ls,
                             struct script_out *out) {
  const struct lab_link *l = &ev->link;
  for (uint32_t a = 0; a < sc->n_nodes; a++)
    for (uint32_t b = 0; b < sc->n_nodes; b++) {
      if (!lab_link_covers(sc, l, a, b))
        continue;
      if (l->has_latency)
        ls->latency_us[a][b] = l->latency_us;
      if (l->has_jitter)
        ls->jitter_us[a][b] = l->jitter_us;
      if (l->has_loss)
        ls->loss[a][b] = l->loss;
      struct sim_script_event *se = emit(out, ev->at_ms, SIM_SCRIPT_LINK);
      se->node = a + 1;
      se->peer = b + 1;
      se->latency_us = ls->latency_us[a][b];
      se->jitter_us = ls->jitter_us[a][b];
      se->loss = ls->loss[a][b];
    }
}

/* Node id for the simulator: index + 1, or 0 for the leader / all. */
static uint32_t sim_node(uint8_t node) {
  return node == LAB_NODE_LEADER || node == LAB_NODE_ALL ? 0 : node + 1u;
}

static void emit_cut(const struct lab_event *ev, struct script_out *out) {
  if (ev->node == LAB_NODE_LEADER) {
    struct sim_script_event *se = emit(out, ev->at_ms, SIM_SCRIPT_ISOLATE);
    se->node = 0;
    se->peer =
        ev->peer == LAB_NODE_FOLLOWER ? SIM_PEER_FOLLOWER : ev->peer + 1u;
    return;
  }
  struct sim_script_event *se = emit(out, ev->at_ms, SIM_SCRIPT_BLOCK);
  se->node = ev->node + 1u;
  se->peer = ev->peer + 1u;
  if (ev->one_way)
    return;
  se = emit(out, ev->at_ms, SIM_SCRIPT_BLOCK);
  se->node = ev->peer + 1u;
  se->peer = ev->node + 1u;
}

static void emit_event(const struct lab_scenario *sc,
                       const struct lab_event *ev, struct link_state *ls,
                       struct script_out *out) {
  struct sim_script_event *se;
  switch ((enum lab_event_kind)ev->kind) {
  case LAB_EV_PARTITION:
    se = emit(out, ev->at_ms, SIM_SCRIPT_PARTITION);
    memcpy(se->group, ev->group, sizeof se->group);
    break;
  case LAB_EV_HEAL:
    emit(out, ev->at_ms, SIM_SCRIPT_HEAL);
    links_reset(sc, ls);
    emit_links(sc, ls, out, ev->at_ms);
    break;
  case LAB_EV_CRASH:
  case LAB_EV_RESTART:
    se = emit(out, ev->at_ms,
              ev->kind == LAB_EV_CRASH ? SIM_SCRIPT_CRASH : SIM_SCRIPT_RESTART);
    se->node = sim_node(ev->node);
    break;
  case LAB_EV_ISOLATE:
    se = emit(out, ev->at_ms, SIM_SCRIPT_ISOLATE);
    se->node = sim_node(ev->node);
    break;
  case LAB_EV_CUT:
    emit_cut(ev, out);
    break;
  case LAB_EV_LINK:
    emit_link_change(sc, ev, ls, out);
    break;
  case LAB_EV_SLOW:
    se = emit(out, ev->at_ms, SIM_SCRIPT_SLOW);
    se->node = sim_node(ev->node);
    se->delay_us = ev->delay_us;
    se->fsync_factor = ev->fsync_factor;
    se->entry_us = ev->entry_us;
    se->slow_flags = (ev->follow ? SIM_SLOW_FOLLOW_LEADER : 0u) |
                     (ev->late_timers ? SIM_SLOW_LATE_TIMERS : 0u);
    break;
  case LAB_EV_CLOCK:
    se = emit(out, ev->at_ms, SIM_SCRIPT_CLOCK);
    se->node = sim_node(ev->node);
    se->rate = ev->rate;
    se->jump_ms = ev->jump_ms;
    break;
  }
}

size_t lab_script_size(const struct lab_case *c) {
  const struct lab_scenario *sc = c->sc;
  size_t pairs = (size_t)sc->n_nodes * sc->n_nodes;
  /* The topology, then at most one full set of links per event. */
  return pairs + (size_t)sc->n_events * (pairs + 2);
}

static void engine_settings(const struct lab_case *c, struct sim_options *o) {
  const struct lab_settings *st = &c->settings;
  o->election_timeout_ms_min = st->election_timeout_ms_min;
  o->election_timeout_ms_max = st->election_timeout_ms_max;
  o->heartbeat_ms = st->heartbeat_ms;
  o->entries_per_msg_max = st->batch ? st->batch : LAB_DEFAULT_BATCH;
  o->commands_per_slot_max = st->batch ? st->batch : LAB_DEFAULT_BATCH;
  o->inflight_msgs_max = st->inflight ? st->inflight : LAB_DEFAULT_INFLIGHT;
  o->pre_vote = st->pre_vote;
  o->check_quorum = st->check_quorum;
  o->proposer_backoff = st->backoff != SIM_SWITCH_OFF;
  o->timing =
      st->timing == SIM_SWITCH_ON ? RT_TIMING_ADAPTIVE : RT_TIMING_FIXED;
  o->timing_floor_ms = st->timing_floor_ms;
  o->timing_ceiling_ms = st->timing_ceiling_ms;
  o->n_groups = st->groups ? st->groups : 1;
  if (st->n_group_leaders == o->n_groups && o->n_groups > 1)
    o->group_leaders = st->group_leader;
}

/* Duration runs need an operation cap (the history is allocated up
 * front): one operation per 3 ms per client is beyond what any engine
 * here does, even on a LAN. */
static uint64_t op_cap_for(const struct lab_workload *wl, uint32_t clients) {
  uint64_t cap = (uint64_t)clients * wl->duration_ms / 3 + 1000;
  return cap > SIM_OPS_MAX ? SIM_OPS_MAX : cap;
}

void lab_build_options(const struct lab_case *c, const char *engine,
                       uint64_t seed, struct sim_options *o,
                       struct sim_script_event *script, uint64_t *op_cap) {
  const struct lab_scenario *sc = c->sc;
  const struct lab_workload *wl = &sc->workload;
  sim_options_init(o);
  o->protocol = engine;
  o->n_nodes = sc->n_nodes;
  o->n_clients = c->clients;
  o->n_keys = wl->keys;
  o->seed = seed;
  o->faults = sc->faults;
  o->op_timeout_ms = wl->op_timeout_ms;
  o->quiesce_ms_max = LAB_QUIESCE_MS;
  char why[128];
  enum sim_workload w = SIM_WORKLOAD_KV;
  if (sim_workload_parse(wl->name, &w, why, sizeof why) == 0)
    o->workload = w;
  if (wl->ops > 0) {
    o->n_ops = wl->ops;
    *op_cap = 0;
  } else {
    o->n_ops = op_cap_for(wl, c->clients);
    o->client_time_ms = wl->duration_ms;
    *op_cap = o->n_ops;
    /* Bounded even when an engine makes no progress at all (classic
     * Paxos without backoff): clients, their last timeouts, healing. */
    o->sim_time_ms_max =
        wl->duration_ms + 2ull * wl->op_timeout_ms + LAB_QUIESCE_MS + 5000;
  }
  engine_settings(c, o);

  struct script_out out = {.ev = script, .n = 0, .cap = lab_script_size(c)};
  struct link_state ls;
  links_reset(sc, &ls);
  emit_links(sc, &ls, &out, 0);
  for (uint32_t k = 0; k < sc->n_events; k++)
    emit_event(sc, &sc->events[k], &ls, &out);
  o->script = script;
  o->n_script = out.n;
}
