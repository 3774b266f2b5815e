/* Three node runtimes in one test, each on a disk and a host of its own
 * (rt_host.h), whose messages to each other the test carries: what the
 * runtimes send is queued in order and delivered by rt_trio_settle, unless
 * `drop` says to lose it. Nothing moves a clock but the test, each node's
 * its own, so an election happens where and when the test says
 * (rt_trio_elect). For the runtime's behaviour across a leader change,
 * which one runtime alone cannot show: the engines' own tests use
 * tcluster.h. */
#ifndef SABHA_TESTS_RT_TRIO_H
#define SABHA_TESTS_RT_TRIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_host.h"

#define RT_TRIO_QUEUE_MAX 4096

struct rt_trio {
  struct rt_node node[4];                     /* by id, 1..3 */
  struct sabha_msg *queue[RT_TRIO_QUEUE_MAX]; /* copies, oldest first */
  size_t queue_n;
  /* Sees each message as it is sent; true drops it. */
  bool (*drop)(void *arg, const struct sabha_msg *m);
  void *drop_arg;
  uint64_t dropped;
};

/* Starts nodes 1, 2 and 3 of `protocol` ("raft" or "multipaxos") with
 * fixed timing and seeds. Returns 0, or -1 said on stderr. */
int rt_trio_open(struct rt_trio *t, const char *protocol);
/* Runs every node and delivers what they send until nothing is left. */
void rt_trio_settle(struct rt_trio *t);
/* Moves node `id`'s clock on and settles until it leads (bounded): true
 * when it does. */
bool rt_trio_elect(struct rt_trio *t, uint32_t id);
/* Frees the streams the nodes closed, the nodes and their disks. */
void rt_trio_close(struct rt_trio *t);

#endif
