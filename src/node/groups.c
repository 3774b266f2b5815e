/* Groups: several consensus groups in one process, and how a command finds
 * its group.
 *
 * One leader orders every write of a group, so a group's write throughput is
 * what its leader's loop and disk can do. A process may therefore host
 * several groups (shards), each a whole runtime of its own (engine, log,
 * store, leader), all driven by the same host: the same thread and timers,
 * the same peer connections (each message names its group), the same client
 * port. Keys are spread over the groups by a fixed rule (rt_key_group), and
 * each group prefers its leader on a different node, so the leaders, and the
 * work, spread over the machines.
 *
 * Clients connect to group 0, the front. For each command the front works
 * out its group (rt_command_group: the group of its keys, which must be
 * one); a command of another group goes over an in-process link to that
 * group's runtime of this process, which serves it as it serves any client:
 * it proposes it when it leads, or forwards it to its leader (forward.c),
 * where the front of that node routes it to the group again. A link is the
 * forwarding machinery of forward.c on group 0's side (a FORWARD stream:
 * requests pipelined, replies matched in order and relayed byte for byte)
 * and an ordinary client stream on the group's side, with its own session,
 * so writes stay exactly-once; rt_groups_pump(), which the host calls after
 * running the groups, moves work between the two ends in memory. Commands
 * go over parsed: the group takes the argument vector group 0 parsed
 * (rt_pair_command), as if it had parsed it from its input, so that a
 * command is parsed once on each node it reaches, not encoded and parsed
 * again for each hop inside a process; replies come back as RESP bytes,
 * which the link relays. A
 * front keeps two links per group: one for its clients and one for other
 * nodes' forwarding links, whose far end, like any node's forwarding link,
 * never forwards again (it answers -NOTLEADER, which goes back unread to
 * the node that asked). So no command travels more than one hop between
 * nodes, whichever group it belongs to.
 *
 * A group is a whole cluster of its own, so every guarantee of one group
 * holds for each; what spans groups is refused at the front (docs/api.md,
 * "Groups"): commands whose keys are in different groups, transactions
 * and WATCHes across groups, and reads of every key (DBSIZE, and SCAN,
 * KEYS and SABHA.RANGE unless their pattern names a hash tag).
 * Application commands and leases have no key: group 0 serves them, so
 * their guarantees are those of one group. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/runtime_internal.h"
#include "storage/crc32c.h"

uint32_t rt_key_group(const uint8_t *key, size_t n, uint32_t n_groups) {
  assert(n_groups >= 1 && n_groups <= RT_GROUPS_MAX);
  if (n_groups == 1)
    return 0;
  /* A hash tag, as Redis Cluster's: keys that share one share a group. */
  const uint8_t *open = memchr(key, '{', n);
  if (open != NULL) {
    size_t from = (size_t)(open - key) + 1;
    const uint8_t *close = memchr(key + from, '}', n - from);
    if (close != NULL && close > key + from) {
      key += from;
      n = (size_t)(close - key);
    }
  }
  return wal_crc32c(0, key, n) % n_groups;
}

void rt_groups_attach(struct rt *const *rts, uint32_t n) {
  assert(n >= 1 && n <= RT_GROUPS_MAX);
  for (uint32_t g = 0; g < n; g++) {
    assert(rts[g]->cfg.group == g && rts[g]->cfg.n_groups == n);
    memcpy(rts[g]->groups, rts, n * sizeof *rts);
  }
}

bool rt_routes(const struct rt *rt) {
  return rt->cfg.n_groups > 1 && rt->cfg.group == 0;
}

struct rt *rt_group_rt(const struct rt *rt, uint32_t g) {
  assert(g < rt->cfg.n_groups && rt->groups[g] != NULL);
  return rt->groups[g];
}

/* ---- in-process links -------------------------------------------------------
 */

void rt_pair_kick(struct rt_stream *s) {
  if (!s->pair_due) {
    s->pair_due = true;
    list_push(&s->rt->pairs_due, &s->due);
  }
  rt_kick(s->rt);
}

void rt_pair_unlink(struct rt_stream *s) {
  assert(s->in_process);
  struct rt *rt = s->rt;
  if (s->pair_due) {
    list_remove(&s->due);
    s->pair_due = false;
  }
  for (uint32_t g = 0; g < RT_GROUPS_MAX; g++)
    for (uint32_t k = 0; k < 2; k++)
      if (rt->glinks[g][k] == s)
        rt->glinks[g][k] = NULL;
  struct rt_stream *p = s->pair;
  if (p == NULL)
    return;
  s->pair = NULL;
  p->pair = NULL;
  p->pair_lost = true; /* its runtime closes it at its next pump */
  rt_pair_kick(p);
}

/* Group 0's link to group g: `fwd` for other nodes' forwarding links. */
static struct rt_stream *link_open(struct rt *rt, uint32_t g, bool fwd) {
  struct rt *to = rt_group_rt(rt, g);
  if (to->dead)
    return NULL;
  struct rt_stream *l = rt_stream_new_forward(rt);
  if (l == NULL)
    return NULL;
  struct rt_stream *p = rt_stream_new_pair(to);
  if (p == NULL) {
    l->handed = true;
    rt_stream_free(l);
    return NULL;
  }
  l->in_process = p->in_process = true;
  l->pair = p;
  p->pair = l;
  l->leader = rt->cfg.engine.id;
  l->connected = true;
  p->forwarded_link = fwd;
  list_push(&rt->fwds, &l->link);
  rt->glinks[g][fwd] = l;
  return l;
}

/* Group 0's link to node `id`, which leads the request's group: it carries
 * the commands of every group that node leads, which its group 0 routes
 * on. NULL when there is none and none can be opened now. */
static struct rt_stream *node_link(struct rt *rt, uint32_t id) {
  struct rt_stream *l = rt->gnodes[id];
  if (l != NULL && !l->closing)
    return l;
  if (rt->fwd_failed_leader == id &&
      rt_now_ms(rt) < rt->fwd_failed_ms + RT_FWD_BACKOFF_MS)
    return NULL;
  l = rt_fwd_open(rt, id);
  if (l != NULL)
    l->group_link = true;
  rt->gnodes[id] = l;
  return l;
}

/* The link a request of another group goes over: straight to the node that
 * leads its group, when this node's runtime of the group knows one
 * elsewhere (one hop, and one connection per node for all the groups it
 * leads); else, or when that node refused it, the in-process link to the
 * group here, which waits for a leader or forwards by its own rules.
 * Commands of other nodes' forwarding links always take the latter: they
 * travel no further. */
static struct rt_stream *route_link(struct rt *rt, struct rt_req *r) {
  bool fwd = r->c->forwarded_link;
  if (!fwd && !r->via_pair && rt->cfg.redirect == RT_REDIRECT_FORWARD) {
    struct sabha_status st;
    rt_status(rt_group_rt(rt, r->group), &st);
    if (st.leader != SABHA_NODE_NONE && st.leader != rt->cfg.engine.id &&
        st.leader <= SABHA_NODES_MAX && !st.removed) {
      struct rt_stream *l = node_link(rt, st.leader);
      if (l != NULL)
        return l;
    }
  }
  struct rt_stream *l = rt->glinks[r->group][fwd];
  if (l == NULL || l->closing)
    l = link_open(rt, r->group, fwd);
  return l;
}

/* What a request not yet handed over holds on its link: its arguments, as
 * many bytes as the link would have held of its RESP encoding, near
 * enough. */
static size_t req_bytes(const struct rt_req *r) {
  size_t n = 16;
  for (uint32_t i = 0; i < r->argc; i++)
    n += r->argv[i].len + 16;
  return n;
}

/* Request `r` waits on in-process link `l` to be handed to its group
 * parsed, at the next pump: its argument vector is the group's command
 * as it is (rt_pair_command), never encoded into RESP again and parsed
 * twice. What waits is bounded as the bytes of a link to another node
 * are. */
static void hand_queued(struct rt_stream *l, struct rt_req *r) {
  size_t n = req_bytes(r);
  if (l->unhanded_bytes + n > RT_OUT_BYTES_MAX) {
    rt_req_fail(l->rt, r, "TRYAGAIN the link to the key's group is overloaded");
    return;
  }
  r->where = RT_IN_FORWARD;
  r->sent = false; /* a link that fails before the hand-over routes it
                      again: the group never saw it */
  list_push(&l->pending, &r->glink);
  if (l->unhanded == 0)
    l->unhanded_first = &r->glink;
  l->unhanded++;
  l->unhanded_bytes += n;
  rt_pair_kick(l);
}

static void hand_over(struct rt_stream *l, struct rt_stream *p);

void rt_group_route(struct rt *rt, struct rt_req *r) {
  assert(rt_routes(rt) && r->group != 0 && r->group < rt->cfg.n_groups);
  struct rt_stream *l = route_link(rt, r);
  if (l == NULL) {
    rt_req_fail(rt, r, "TRYAGAIN this node cannot reach the key's group now");
    return;
  }
  if (l->in_process) {
    hand_queued(l, r);
    return;
  }
  struct resp_buf *out = rt_fwd_out(l);
  rt_write_command(out, r->argc, r->argv);
  if (out->err != 0) {
    rt_stream_close(l, false);
    rt_req_fail(rt, r, "TRYAGAIN the link to the key's group is overloaded");
    return;
  }
  rt->m.forwarded++;
  rt_fwd_queued(l, r);
}

/* Hands link `l`'s requests not yet handed over, oldest first, to its
 * other end `p`, parsed, until `p` takes no more (it stopped reading: it
 * asks for the rest when it resumes). */
static void hand_over(struct rt_stream *l, struct rt_stream *p) {
  struct list_link *k = l->unhanded_first;
  while (l->unhanded > 0 && !l->closing && !p->closing && !p->rt->dead) {
    struct rt_req *r = LIST_OF(k, struct rt_req, glink);
    assert(!r->sent);
    if (!rt_pair_command(p, r->argc, r->argv))
      break;
    r->sent = true;
    l->unhanded--;
    assert(l->unhanded_bytes >= req_bytes(r));
    l->unhanded_bytes -= req_bytes(r);
    k = k->next;
  }
  l->unhanded_first = l->unhanded > 0 ? k : NULL;
  rt_pair_commands_done(p);
}

bool rt_groups_pump(struct rt *rt) {
  bool moved = false;
  struct list_link held;
  list_init(&held);
  while (!list_empty(&rt->pairs_due) && !rt->dead) {
    struct rt_stream *s = LIST_OF(rt->pairs_due.next, struct rt_stream, due);
    list_remove(&s->due);
    s->pair_due = false;
    if (s->closing)
      continue;
    struct rt_stream *p = s->pair;
    if (s->pair_lost || p == NULL) {
      rt_stream_close(s, false);
      moved = true;
      continue;
    }
    /* The other end takes nothing while it stops reading (it asks again
     * when it resumes). */
    if (p->rt->dead || p->paused || p->closing) {
      s->pair_due = true;
      list_push(&held, &s->due);
      continue;
    }
    if (s->kind == RT_STREAM_FORWARD) {
      /* Group 0's end: commands go over parsed (hand_over). */
      uint32_t before = s->unhanded;
      hand_over(s, p);
      moved |= s->unhanded != before;
      continue;
    }
    const uint8_t *data;
    size_t n;
    if (!rt_stream_out_take(s, &data, &n))
      continue;
    rt_stream_input(p, data, n);
    rt_stream_out_done(s);
    moved = true;
  }
  while (!list_empty(&held)) {
    struct list_link *l = held.next;
    list_remove(l);
    list_push(&rt->pairs_due, l);
  }
  rt_reap(rt);
  return moved;
}

/* ---- INFO -------------------------------------------------------------------
 */

void rt_groups_info(struct rt *rt, struct resp_buf *b) {
  resp_buf_printf(b, "# Groups\r\ngroups:%u\r\n", rt->cfg.n_groups);
  for (uint32_t g = 0; g < rt->cfg.n_groups; g++) {
    const struct rt *x = rt->cfg.n_groups == 1 ? rt : rt_group_rt(rt, g);
    struct sabha_status st;
    rt_status(x, &st);
    resp_buf_printf(b,
                    "group%u:role=%s,leader=%u,term=%" PRIu64 ",commit=%" PRIu64
                    ",applied=%" PRIu64 ",priority=%u\r\n",
                    g, sabha_role_name(st.role), st.leader, st.term, st.commit,
                    x->applied, x->cfg.priority[x->cfg.engine.id]);
  }
  resp_buf_printf(b, "\r\n");
}
