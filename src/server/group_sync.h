/* Background fsyncs for the groups of one node.
 *
 * Every group has a log of its own, so a node that hosts several groups
 * has several fsyncs to make whenever they all have a batch, and made one
 * after the other on the loop they cost their sum: with eight groups the
 * loop waited for up to eight fsyncs per iteration, and each write took
 * longer the more groups there were. So the batches of groups 1.. wait for
 * their fsync (ports.sync_later) while the loop goes on with everything
 * else: a few threads make those fsyncs (rt_sync_prepare, which touches
 * only that group's log, nothing else the loop uses while the group waits)
 * and tell the loop, which then finishes the batch (rt_sync_done). A group
 * that waits takes no input, as the runtime's contract asks: its peer
 * messages are held by the host (node.c) and its in-process links wait
 * (rt_groups_pump). Group 0, which the clients' connections feed directly,
 * syncs on the loop as a single group always has. */
#ifndef SABHA_SERVER_GROUP_SYNC_H
#define SABHA_SERVER_GROUP_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "node/runtime.h"

#define SRV_SYNC_THREADS_MAX 8u

struct srv_group_sync {
  pthread_t threads[SRV_SYNC_THREADS_MAX];
  uint32_t n_threads;
  pthread_mutex_t mu;
  pthread_cond_t work; /* a job was posted, or stop */
  /* Jobs by group: posted and not yet taken, taken, finished and not yet
   * collected by the loop. */
  struct rt *rts[RT_GROUPS_MAX];
  bool queued[RT_GROUPS_MAX];
  bool running[RT_GROUPS_MAX];
  bool finished[RT_GROUPS_MAX];
  uint32_t n_queued;
  bool stop;
  void (*notify)(void *arg); /* from a thread: jobs finished */
  void *arg;
};

/* Starts `n_threads` (1..SRV_SYNC_THREADS_MAX) threads; notify(arg) is
 * called from one of them after each job (uv_async_send is the one thing
 * it may do). Returns 0, or an errno value (nothing left running). */
int srv_group_sync_start(struct srv_group_sync *gs, uint32_t n_threads,
                         void (*notify)(void *arg), void *arg);
/* Posts group g's fsync (rt_blocked(rt) is true, and no job of g is
 * posted or unfinished). */
void srv_group_sync_post(struct srv_group_sync *gs, uint32_t g, struct rt *rt);
/* True while a job of g is posted and not yet collected. */
bool srv_group_sync_busy(struct srv_group_sync *gs, uint32_t g);
/* Takes the finished jobs: sets done[g] for each, returns how many. */
uint32_t srv_group_sync_collect(struct srv_group_sync *gs, bool *done);
/* Waits for the jobs being run, drops those not started, joins. */
void srv_group_sync_stop(struct srv_group_sync *gs);

#endif
