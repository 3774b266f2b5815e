/* Simulated connections: the TCP connections of the simulated world, as
 * byte streams between a client (or a node's forwarding link) and a node's
 * client port.
 *
 * A connection has two ends: the opener (a client, or a node that forwards
 * to its leader) and the server (the node that accepts it, where the runtime
 * holds a client stream). Its life:
 *
 *   open      EV_CONN_OPEN reaches the server node after one link latency;
 *             the node's runtime accepts it (rt_stream_accept) or refuses
 *             it (the refusal line, then the close), and EV_CONN_UP goes
 *             back to the opener;
 *   bytes     each end sends chunks that arrive in order (FIFO per
 *             direction) after the link's latency, never lost nor
 *             duplicated: TCP's promise;
 *   close     an end that closes sends EV_CONN_DOWN after its last bytes;
 *             the other end learns it then. A crash closes every end at the
 *             node at once (the other ends learn it after one latency), and
 *             a partition between two nodes breaks a forwarding link the
 *             moment it carries something across the cut.
 *
 * Events name the connection by id and the slot's incarnation (gen), so
 * that one arriving after the slot was reused is ignored. A slot is free
 * once both ends are closed. Client links model no partitions: clients
 * reach every node (the faults under study are between nodes). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

#define CONN_REFUSED_US 100000u /* a connect to an unreachable node fails */

void chunk_free(struct chunk *c) {
  free(c);
}

void conns_init(struct sim *s) {
  s->conns = NULL;
  s->n_conns = s->cap_conns = 0;
  s->free_conns = NULL;
  s->n_free_conns = 0;
  s->next_conn_gen = 1;
}

void conns_free(struct sim *s) {
  free(s->conns);
  free(s->free_conns);
  s->conns = NULL;
  s->free_conns = NULL;
}

struct conn *conn_get(struct sim *s, uint32_t id, uint32_t gen) {
  if (id >= s->n_conns || s->conns[id].gen != gen || gen == 0)
    return NULL;
  return &s->conns[id];
}

static uint32_t conn_alloc(struct sim *s) {
  uint32_t id;
  if (s->n_free_conns > 0) {
    id = s->free_conns[--s->n_free_conns];
    assert(s->conns[id].gen == 0 && "a slot listed free twice");
  } else {
    if (s->n_conns == s->cap_conns) {
      s->cap_conns = s->cap_conns == 0 ? 64 : s->cap_conns * 2;
      s->conns = sim_xrealloc(s->conns, s->cap_conns * sizeof *s->conns);
      s->free_conns =
          sim_xrealloc(s->free_conns, s->cap_conns * sizeof *s->free_conns);
    }
    id = s->n_conns++;
  }
  struct conn *cn = &s->conns[id];
  memset(cn, 0, sizeof *cn);
  cn->gen = s->next_conn_gen++;
  if (s->next_conn_gen == 0)
    s->next_conn_gen = 1;
  cn->opener_open = true;
  s->res->conns_opened++;
  return id;
}

void conn_maybe_free(struct sim *s, uint32_t id) {
  struct conn *cn = &s->conns[id];
  /* Callers may ask again after a close already freed the slot (a node's
   * output pass closes an end, then tries to free): listing it twice would
   * hand one slot to two connections, and bytes to the wrong client. */
  if (cn->gen == 0)
    return;
  if (cn->opener_open || cn->server_open || cn->server != NULL ||
      cn->fwd != NULL || cn->out_due)
    return;
  cn->gen = 0;
  s->free_conns[s->n_free_conns++] = id;
}

/* The link bytes cross, each way: nodes' links for forwarding, the shared
 * client link otherwise. */
static struct link *conn_link(struct sim *s, const struct conn *cn,
                              bool to_server) {
  if (cn->kind == CONN_CLIENT)
    return &s->client_link;
  return to_server ? &s->links[cn->from][cn->node]
                   : &s->links[cn->node][cn->from];
}

static bool conn_cut(const struct sim *s, const struct conn *cn) {
  return cn->kind == CONN_FORWARD && (!net_reachable(s, cn->from, cn->node) ||
                                      !net_reachable(s, cn->node, cn->from));
}

/* Schedules an event for one end, in order behind what was sent before. */
static void conn_post(struct sim *s, uint32_t id, uint32_t kind, bool to_server,
                      struct chunk *chunk) {
  struct conn *cn = &s->conns[id];
  struct link *l = conn_link(s, cn, to_server);
  uint64_t *fifo = to_server ? &cn->fifo_to_server_us : &cn->fifo_to_opener_us;
  uint64_t at = net_arrival_us(s, l, fifo, true);
  uint32_t target;
  if (to_server)
    target = cn->node;
  else
    target = cn->kind == CONN_CLIENT ? cn->client : cn->from;
  struct sim_event *ev = ev_new(s, kind, target);
  ev->u.c = (struct conn_ev){
      .conn = id, .conn_gen = cn->gen, .to_server = to_server, .chunk = chunk};
  /* A node's event carries its incarnation: a restarted node ignores what
   * was meant for the one before. */
  ev->gen =
      to_server ? cn->node_gen : (cn->kind == CONN_FORWARD ? cn->from_gen : 0);
  ev->aux = cn->kind == CONN_CLIENT && !to_server ? 1u : 0u; /* to a client */
  sim_at(s, at, ev);
}

uint32_t conn_open_client(struct sim *s, uint32_t client, uint32_t node) {
  if (!s->nodes[node].up)
    return UINT32_MAX;
  uint32_t id = conn_alloc(s);
  struct conn *cn = &s->conns[id];
  cn->kind = CONN_CLIENT;
  cn->client = client;
  cn->node = node;
  cn->node_gen = s->nodes[node].gen;
  cn->server_open = true;
  conn_post(s, id, EV_CONN_OPEN, true, NULL);
  return id;
}

void conn_open_forward(struct sim *s, uint32_t from, struct rt_stream *st,
                       uint32_t node) {
  uint32_t id = conn_alloc(s);
  struct conn *cn = &s->conns[id];
  cn->kind = CONN_FORWARD;
  cn->from = from;
  cn->from_gen = s->nodes[from].gen;
  cn->node = node;
  cn->node_gen = s->nodes[node].gen;
  cn->fwd = st;
  cn->server_open = s->nodes[node].up && !conn_cut(s, cn);
  rt_stream_set_host(st, (void *)(uintptr_t)(id + 1));
  if (!cn->server_open) {
    /* Nobody answers: the connect times out. */
    struct sim_event *ev = ev_new(s, EV_CONN_DOWN, from);
    ev->u.c = (struct conn_ev){.conn = id, .conn_gen = cn->gen};
    ev->gen = cn->from_gen;
    sim_at(s, s->now_us + CONN_REFUSED_US, ev);
    return;
  }
  conn_post(s, id, EV_CONN_OPEN, true, NULL);
}

void conn_send(struct sim *s, uint32_t id, bool to_server, const void *data,
               size_t len) {
  struct conn *cn = &s->conns[id];
  if (len == 0 || cn->broken ||
      !(to_server ? cn->server_open : cn->opener_open))
    return;
  struct chunk *c = sim_xmalloc(sizeof *c + len);
  c->len = len;
  memcpy(c->data, data, len);
  conn_post(s, id, EV_CONN_DATA, to_server, c);
}

void conn_close_end(struct sim *s, uint32_t id, bool server_end) {
  struct conn *cn = &s->conns[id];
  bool *mine = server_end ? &cn->server_open : &cn->opener_open;
  bool other = server_end ? cn->opener_open : cn->server_open;
  if (*mine && other)
    conn_post(s, id, EV_CONN_DOWN, !server_end, NULL);
  *mine = false;
  conn_maybe_free(s, id);
}

void conns_node_down(struct sim *s, uint32_t node, bool free_streams) {
  for (uint32_t id = 0; id < s->n_conns; id++) {
    struct conn *cn = &s->conns[id];
    if (cn->gen == 0)
      continue;
    if (cn->node == node && (cn->server_open || cn->server != NULL)) {
      if (cn->server != NULL && free_streams)
        rt_stream_free(cn->server);
      cn->server = NULL;
      cn->server_closing = false;
      cn->out_due = false;
      /* The opener learns it after one latency; a node's end at once goes
       * with it. */
      if (cn->opener_open)
        conn_post(s, id, EV_CONN_DOWN, false, NULL);
      cn->server_open = false;
    }
    if (cn->kind == CONN_FORWARD && cn->from == node &&
        (cn->opener_open || cn->fwd != NULL)) {
      if (cn->fwd != NULL && free_streams)
        rt_stream_free(cn->fwd);
      cn->fwd = NULL;
      cn->fwd_closing = false;
      cn->out_due = false;
      if (cn->server_open)
        conn_post(s, id, EV_CONN_DOWN, true, NULL);
      cn->opener_open = false;
    }
    conn_maybe_free(s, id);
  }
}

/* A forwarding link across a cut breaks: both ends learn it, and nothing
 * sent on it before arrives after (TCP never delivers bytes past a gap). */
static void conn_break(struct sim *s, uint32_t id) {
  struct conn *cn = &s->conns[id];
  if (cn->broken)
    return;
  cn->broken = true;
  if (cn->server_open)
    conn_post(s, id, EV_CONN_DOWN, true, NULL);
  if (cn->opener_open)
    conn_post(s, id, EV_CONN_DOWN, false, NULL);
}

/* ---- at a node --------------------------------------------------------------
 */

static void node_accept(struct sim *s, struct node *n, uint32_t id) {
  struct conn *cn = &s->conns[id];
  struct rt_stream *st = NULL;
  /* Simulated clients and links stand for processes on the nodes' own
   * hosts: loopback, so protected mode lets them in. */
  const char *refusal = rt_stream_accept(n->rt, true, &st);
  if (refusal != NULL) {
    conn_post(s, id, EV_CONN_UP, false, NULL);
    conn_send(s, id, false, refusal, strlen(refusal));
    conn_close_end(s, id, true);
    return;
  }
  cn->server = st;
  rt_stream_set_host(st, (void *)(uintptr_t)(id + 1));
  conn_post(s, id, EV_CONN_UP, false, NULL);
}

/* The stream at this node for the connection, if any. */
static struct rt_stream *stream_at(struct conn *cn, bool to_server) {
  return to_server ? cn->server : cn->fwd;
}

void conn_node_event(struct sim *s, struct node *n, struct sim_event *ev) {
  struct conn_ev *ce = &ev->u.c;
  struct conn *cn = conn_get(s, ce->conn, ce->conn_gen);
  struct chunk *chunk = ce->chunk;
  if (cn == NULL || ev->gen != n->gen) {
    chunk_free(chunk);
    return;
  }
  uint32_t id = ce->conn;
  if (ev->kind != EV_CONN_DOWN && cn->broken) {
    chunk_free(chunk); /* the DOWN this break sent is on its way */
    return;
  }
  if (cn->kind == CONN_FORWARD && conn_cut(s, cn) &&
      (ev->kind == EV_CONN_DATA || ev->kind == EV_CONN_OPEN ||
       ev->kind == EV_CONN_UP)) {
    chunk_free(chunk);
    conn_break(s, id);
    return;
  }
  switch (ev->kind) {
  case EV_CONN_OPEN:
    if (cn->server_open && cn->server == NULL)
      node_accept(s, n, id);
    break;
  case EV_CONN_UP:
    if (cn->fwd != NULL && !cn->fwd_closing)
      rt_stream_connected(cn->fwd);
    break;
  case EV_CONN_DATA: {
    struct rt_stream *st = stream_at(cn, ce->to_server);
    bool closing = ce->to_server ? cn->server_closing : cn->fwd_closing;
    if (st != NULL && !closing)
      rt_stream_input(st, chunk->data, chunk->len);
    break;
  }
  case EV_CONN_DOWN: {
    struct rt_stream *st = stream_at(cn, ce->to_server);
    bool closing = ce->to_server ? cn->server_closing : cn->fwd_closing;
    if (ce->to_server)
      cn->server_open = false;
    else
      cn->opener_open = false;
    if (st != NULL && !closing) {
      rt_stream_lost(st);
      if (ce->to_server)
        cn->server = NULL;
      else
        cn->fwd = NULL;
      rt_stream_free(st);
    }
    conn_maybe_free(s, id);
    break;
  }
  default:
    assert(0 && "not a connection event");
  }
  chunk_free(chunk);
}
