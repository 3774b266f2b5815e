/* The simulated network: one link per ordered pair of nodes, and one shared
 * model for every client <-> node link.
 *
 * A link has a base latency plus uniform jitter, scripted loss, and the
 * random faults' loss, duplication and reordering. Delivery is FIFO per link
 * (as over a TCP connection) except for a message the reorder fault picks,
 * which takes an extra delay and may overtake or be overtaken. A cut link
 * drops what is sent over it and what was in flight on it when it arrives
 * (the packets on a failed link are lost with it).
 *
 * The client link only adds latency: clients reach every node (the faults
 * under study are between nodes), over connections (conn.c) that, like
 * TCP, neither lose nor duplicate nor reorder bytes.
 *
 * At most LINK_IN_FLIGHT_MAX messages are in flight per link; more are
 * dropped, as a full socket buffer would.
 *
 * A message from an engine is cloned into one allocation (struct packet,
 * entries, bytes, snapshot chunk): the ready batch's pointers die at
 * advance(), the packet lives until delivered. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

#define LINK_LATENCY_US 1000u
#define LINK_JITTER_US 1000u

void net_init(struct sim *s) {
  memset(s->links, 0, sizeof s->links);
  /* Every slot: nodes added later find their links ready. */
  for (uint32_t a = 0; a < SABHA_NODES_MAX; a++)
    for (uint32_t b = 0; b < SABHA_NODES_MAX; b++) {
      s->links[a][b].latency_us = LINK_LATENCY_US;
      s->links[a][b].jitter_us = LINK_JITTER_US;
    }
  memset(&s->client_link, 0, sizeof s->client_link);
  s->client_link.latency_us = LINK_LATENCY_US;
  s->client_link.jitter_us = LINK_JITTER_US;
}

void net_heal(struct sim *s) {
  for (uint32_t a = 0; a < s->n_nodes; a++)
    for (uint32_t b = 0; b < s->n_nodes; b++) {
      struct link *l = &s->links[a][b];
      l->script_blocked = l->fault_blocked = false;
      l->loss = l->fault_loss = l->fault_dup = l->fault_reorder = 0;
      l->fault_reorder_us = 0;
    }
  s->client_link.loss = s->client_link.fault_loss = 0;
}

bool net_reachable(const struct sim *s, uint32_t from, uint32_t to) {
  const struct link *l = &s->links[from][to];
  return !l->script_blocked && !l->fault_blocked && !s->nodes[from].isolated &&
         !s->nodes[to].isolated;
}

static struct packet *packet_clone(const struct sabha_msg *m) {
  size_t size = sizeof(struct packet) +
                (size_t)m->n_entries * sizeof(struct sabha_entry) +
                m->snap_size_bytes;
  for (uint32_t i = 0; i < m->n_entries; i++)
    size += m->entries[i].size_bytes;
  struct packet *p = sim_xmalloc(size);
  p->alloc_bytes = size;
  p->msg = *m;
  struct sabha_entry *entries = (struct sabha_entry *)(p + 1);
  uint8_t *bytes = (uint8_t *)(entries + m->n_entries);
  for (uint32_t i = 0; i < m->n_entries; i++) {
    entries[i] = m->entries[i];
    if (entries[i].size_bytes > 0) {
      memcpy(bytes, m->entries[i].data, entries[i].size_bytes);
      entries[i].data = bytes;
      bytes += entries[i].size_bytes;
    } else {
      entries[i].data = NULL;
    }
  }
  p->msg.entries = m->n_entries > 0 ? entries : NULL;
  if (m->snap_size_bytes > 0) {
    memcpy(bytes, m->snap_data, m->snap_size_bytes);
    p->msg.snap_data = bytes;
    bytes += m->snap_size_bytes;
  } else {
    p->msg.snap_data = NULL;
  }
  assert((size_t)(bytes - (uint8_t *)p) == size);
  return p;
}

void packet_free(struct packet *p) {
  free(p);
}

uint64_t net_arrival_us(struct sim *s, struct link *l, uint64_t *fifo_us,
                        bool stream) {
  uint64_t delay_us = l->latency_us;
  if (l->jitter_us > 0)
    delay_us += prng_below(&s->prng_net, (uint64_t)l->jitter_us + 1);
  uint64_t at_us = s->now_us + delay_us;
  if (l->fault_reorder > 0 && prng_chance(&s->prng_net, l->fault_reorder)) {
    at_us += prng_range(&s->prng_net, 1, l->fault_reorder_us + 1);
    if (!stream)
      return at_us; /* a message the fault picks may overtake, or be */
  }
  /* In order behind what was sent before (a connection's bytes always). */
  if (at_us < *fifo_us)
    at_us = *fifo_us;
  *fifo_us = at_us;
  return at_us;
}

void net_send_peer(struct sim *s, const struct sabha_msg *m) {
  s->res->msgs_sent++;
  s->res->msg_bytes_sent += sabha_msg_size_bytes(m);
  if (m->from == SABHA_NODE_NONE || m->from > s->n_nodes ||
      m->to == SABHA_NODE_NONE || m->to > s->n_nodes || m->to == m->from) {
    sim_fail(s, FAIL_SAFETY,
             "engine contract: message type %u from node %u to node %u",
             m->type, m->from, m->to);
    return;
  }
  struct link *l = &s->links[m->from - 1][m->to - 1];
  double loss = l->loss + l->fault_loss;
  if (!net_reachable(s, m->from - 1, m->to - 1) ||
      l->in_flight >= LINK_IN_FLIGHT_MAX ||
      (loss > 0 && prng_chance(&s->prng_net, loss))) {
    s->res->msgs_dropped++;
    return;
  }
  int copies =
      1 + (l->fault_dup > 0 && prng_chance(&s->prng_net, l->fault_dup));
  for (int c = 0; c < copies && l->in_flight < LINK_IN_FLIGHT_MAX; c++) {
    l->in_flight++;
    struct sim_event *ev = ev_new(s, EV_PEER_MSG, m->to - 1);
    ev->u.pkt = packet_clone(m);
    sim_at(s, net_arrival_us(s, l, &l->fifo_us, false), ev);
  }
}
