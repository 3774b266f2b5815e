/* The membership nemesis (--faults membership): the group changes while
 * everything else breaks.
 *
 * Every 0.3-1.2 s, when a leader is known and its last change is committed
 * (one change at a time, as the engines require), the nemesis asks for the
 * next change the way an operator does, with SABHA.MEMBER sent to the
 * leader's client port through the real command path:
 *
 *   - a learner that is caught up is promoted (one that is not is now and
 *     then removed instead);
 *   - otherwise a voter is removed (the leader a third of the time) when
 *     the group has more than its minimum of voters, or a new node is
 *     added: a fresh node with an empty disk is started as a joining node
 *     (sabha_config.join), and the leader is asked to add it as a learner.
 *
 * Voters stay between three (or --nodes, if fewer) and --nodes + 2, and
 * node ids are never reused: a removed node keeps running with what it had,
 * as a machine an operator has not yet turned off, so that a removed node's
 * attempts to take part (elections included) are exercised too. What it
 * watches of the engines is their status and membership, never their
 * insides. The end checks judge the members of the last membership
 * (membership_final). */
#include <assert.h>
#include <string.h>

#include "sim/sim_internal.h"

#define MEM_STEP_US_MIN 300000u
#define MEM_STEP_US_MAX 1200000u
#define MEM_DROP_LAGGING_LEARNER_CHANCE 0.15
#define MEM_REMOVE_LEADER_CHANCE 0.33

static void schedule(struct sim *s, struct sim_event *ev) {
  sim_at(s,
         s->now_us +
             prng_range(&s->nem.prng_member, MEM_STEP_US_MIN, MEM_STEP_US_MAX),
         ev);
}

void membership_nemesis_init(struct sim *s) {
  prng_seed(&s->nem.prng_member, sim_mix(s->o.seed, 0x6d656d));
  if (s->o.faults & SIM_FAULT_MEMBERSHIP)
    schedule(s, ev_new(s, EV_MEMBERSHIP, 0));
}

static uint32_t voters_min(const struct sim *s) {
  return s->o.n_nodes < 3 ? s->o.n_nodes : 3;
}

/* A voter to remove: the leader now and then, else any other. */
static uint32_t pick_voter(struct sim *s, const struct sabha_membership *m,
                           uint32_t leader_id) {
  if (prng_chance(&s->nem.prng_member, MEM_REMOVE_LEADER_CHANCE))
    return leader_id;
  uint32_t ids[SABHA_NODES_MAX], n = 0;
  for (uint32_t k = 0; k < m->n; k++)
    if (m->members[k].role == SABHA_MEMBER_VOTER &&
        m->members[k].id != leader_id)
      ids[n++] = m->members[k].id;
  return n == 0 ? leader_id : ids[prng_below(&s->nem.prng_member, n)];
}

/* Starts a fresh node in the next free slot; returns its id, or 0. */
static uint32_t start_new_node(struct sim *s) {
  if (s->n_nodes >= SABHA_NODES_MAX)
    return 0;
  uint32_t i = s->n_nodes++;
  node_init(s, i);
  s->nodes[i].joined = true;
  node_start(s, i);
  if (s->trace != NULL)
    trace_line(s, i + 1, "a new node starts, to join the group");
  return i + 1;
}

void membership_nemesis_step(struct sim *s, struct sim_event *ev) {
  if (s->nem.stopped || s->phase != PHASE_CLIENTS) {
    ev_free(s, ev);
    return;
  }
  schedule(s, ev);
  int l = node_leader(s);
  if (l < 0 || s->nodes[l].rt == NULL)
    return;
  const struct sabha_engine *e = rt_engine(s->nodes[l].rt);
  struct sabha_membership m;
  sabha_engine_members(e, &m);
  struct sabha_status st;
  sabha_engine_status(e, &st);
  if (m.n == 0 || m.index > st.commit)
    return; /* a change is under way */
  uint32_t leader_id = (uint32_t)l + 1;
  uint32_t voters = 0;
  for (uint32_t k = 0; k < m.n; k++) {
    const struct sabha_member *x = &m.members[k];
    if (x->role == SABHA_MEMBER_VOTER) {
      voters++;
      continue;
    }
    if (x->caught_up)
      client_send_member(s, (uint32_t)l, "PROMOTE", x->id);
    else if (prng_chance(&s->nem.prng_member, MEM_DROP_LAGGING_LEARNER_CHANCE))
      client_send_member(s, (uint32_t)l, "REMOVE", x->id);
    return; /* the learner first */
  }
  /* A node started to join that the group has not taken yet (the leader
   * that was asked lost its leadership first): ask again. */
  for (uint32_t i = s->o.n_nodes; i < s->n_nodes; i++) {
    struct node *n = &s->nodes[i];
    n->was_member |= sabha_membership_find(&m, n->id) != NULL;
    if (n->joined && !n->was_member) {
      client_send_member(s, (uint32_t)l, "ADD", n->id);
      return;
    }
  }
  bool can_add = s->n_nodes < SABHA_NODES_MAX && m.n < SABHA_NODES_MAX;
  bool remove =
      voters > voters_min(s) && (voters >= s->o.n_nodes + 2 || !can_add ||
                                 prng_chance(&s->nem.prng_member, 0.5));
  if (remove) {
    client_send_member(s, (uint32_t)l, "REMOVE", pick_voter(s, &m, leader_id));
    return;
  }
  uint32_t id = can_add ? start_new_node(s) : 0;
  if (id != 0)
    client_send_member(s, (uint32_t)l, "ADD", id);
}

void membership_final(struct sim *s) {
  memset(s->final_member, 0, sizeof s->final_member);
  struct sabha_membership m = {0};
  bool found = false;
  int l = node_leader(s);
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (n->rt == NULL || (l >= 0 && (uint32_t)l != i))
      continue;
    struct sabha_membership x;
    sabha_engine_members(rt_engine(n->rt), &x);
    if (x.n > 0 && (!found || x.index > m.index)) {
      m = x;
      found = true;
    }
  }
  s->final_ref = UINT32_MAX;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    s->final_member[i] =
        !found || sabha_membership_find(&m, s->nodes[i].id) != NULL;
    if (s->final_member[i] && s->final_ref == UINT32_MAX)
      s->final_ref = i;
  }
  assert(s->final_ref != UINT32_MAX); /* a membership has a voter */
}
