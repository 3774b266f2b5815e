/* See rt_trio.h. */
#include "rt_trio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcluster.h" /* tc_msg_clone */

static void relay(void *arg, const struct sabha_msg *m) {
  struct rt_trio *t = arg;
  if (m->to < 1 || m->to > 3 || (t->drop != NULL && t->drop(t->drop_arg, m))) {
    t->dropped++;
    return;
  }
  if (t->queue_n == RT_TRIO_QUEUE_MAX) {
    t->dropped++; /* a full network loses messages, as any does */
    return;
  }
  t->queue[t->queue_n++] = tc_msg_clone(m);
}

int rt_trio_open(struct rt_trio *t, const char *protocol) {
  memset(t, 0, sizeof *t);
  for (uint32_t id = 1; id <= 3; id++) {
    struct rt_node *n = &t->node[id];
    struct rt_config cfg;
    if (rt_node_init(n, &cfg) != 0)
      return -1;
    cfg.engine.id = id;
    snprintf(cfg.protocol, sizeof cfg.protocol, "%s", protocol);
    cfg.engine.seed = 7 + id;
    cfg.tag_seed = 11 + id;
    /* Elections only where the test moves a clock: no lease that would
     * keep a follower whose clock stands still from voting. */
    cfg.engine.check_quorum = false;
    cfg.engine.pre_vote = false;
    cfg.leader_wait_ms = 3600000;
    cfg.request_timeout_ms = 3600000;
    n->h.relay = relay;
    n->h.relay_arg = t;
    if (rt_node_start(n, &cfg) != 0)
      return -1;
  }
  rt_trio_settle(t);
  return 0;
}

void rt_trio_settle(struct rt_trio *t) {
  for (int round = 0; round < 10000; round++) {
    bool busy = false;
    for (uint32_t id = 1; id <= 3; id++)
      for (int k = 0; k < 1000 && rt_run(t->node[id].rt); k++)
        busy = true;
    if (t->queue_n == 0 && !busy)
      return;
    /* Delivered in the order sent; what they cause queues behind. */
    size_t n = t->queue_n;
    struct sabha_msg *batch[RT_TRIO_QUEUE_MAX];
    memcpy(batch, t->queue, n * sizeof batch[0]);
    t->queue_n = 0;
    for (size_t i = 0; i < n; i++) {
      rt_step(t->node[batch[i]->to].rt, batch[i]);
      free(batch[i]);
    }
  }
  fprintf(stderr, "rt_trio_settle: still busy after every round\n");
}

bool rt_trio_elect(struct rt_trio *t, uint32_t id) {
  struct rt_node *n = &t->node[id];
  for (int k = 0; k < 1000; k++) {
    struct sabha_status st;
    rt_status(n->rt, &st);
    if (st.role == SABHA_ROLE_LEADER && st.leader == id)
      return true;
    n->h.now_ms += 10;
    rt_tick(n->rt);
    rt_trio_settle(t);
  }
  return false;
}

void rt_trio_close(struct rt_trio *t) {
  for (size_t i = 0; i < t->queue_n; i++)
    free(t->queue[i]);
  t->queue_n = 0;
  for (uint32_t id = 1; id <= 3; id++) {
    struct rt_node *n = &t->node[id];
    if (n->rt != NULL)
      rt_node_close(n);
    else if (n->fs != NULL)
      memfs_free(n->fs);
  }
}
