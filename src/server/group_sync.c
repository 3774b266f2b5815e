/* Background fsyncs for the groups of one node (group_sync.h). */
#include "server/group_sync.h"

#include <assert.h>
#include <string.h>

static void *worker(void *arg) {
  struct srv_group_sync *gs = arg;
  pthread_mutex_lock(&gs->mu);
  for (;;) {
    while (!gs->stop && gs->n_queued == 0)
      pthread_cond_wait(&gs->work, &gs->mu);
    if (gs->stop)
      break;
    uint32_t g = 0;
    while (!gs->queued[g])
      g++;
    gs->queued[g] = false;
    gs->n_queued--;
    gs->running[g] = true;
    struct rt *rt = gs->rts[g];
    pthread_mutex_unlock(&gs->mu);
    /* An error stays in the log, and rt_sync_done() reports it. */
    (void)rt_sync_prepare(rt);
    pthread_mutex_lock(&gs->mu);
    gs->running[g] = false;
    gs->finished[g] = true;
    gs->notify(gs->arg);
  }
  pthread_mutex_unlock(&gs->mu);
  return NULL;
}

int srv_group_sync_start(struct srv_group_sync *gs, uint32_t n_threads,
                         void (*notify)(void *arg), void *arg) {
  assert(n_threads >= 1 && n_threads <= SRV_SYNC_THREADS_MAX);
  memset(gs, 0, sizeof *gs);
  gs->notify = notify;
  gs->arg = arg;
  int rc = pthread_mutex_init(&gs->mu, NULL);
  if (rc != 0)
    return rc;
  pthread_cond_init(&gs->work, NULL);
  for (uint32_t i = 0; i < n_threads; i++) {
    rc = pthread_create(&gs->threads[i], NULL, worker, gs);
    if (rc != 0) {
      srv_group_sync_stop(gs);
      return rc;
    }
    gs->n_threads++;
  }
  return 0;
}

void srv_group_sync_post(struct srv_group_sync *gs, uint32_t g, struct rt *rt) {
  assert(g < RT_GROUPS_MAX && rt_blocked(rt));
  pthread_mutex_lock(&gs->mu);
  assert(!gs->queued[g] && !gs->running[g] && !gs->finished[g]);
  gs->rts[g] = rt;
  gs->queued[g] = true;
  gs->n_queued++;
  pthread_cond_signal(&gs->work);
  pthread_mutex_unlock(&gs->mu);
}

bool srv_group_sync_busy(struct srv_group_sync *gs, uint32_t g) {
  pthread_mutex_lock(&gs->mu);
  bool busy = gs->queued[g] || gs->running[g] || gs->finished[g];
  pthread_mutex_unlock(&gs->mu);
  return busy;
}

uint32_t srv_group_sync_collect(struct srv_group_sync *gs, bool *done) {
  uint32_t n = 0;
  pthread_mutex_lock(&gs->mu);
  for (uint32_t g = 0; g < RT_GROUPS_MAX; g++) {
    done[g] = gs->finished[g];
    if (done[g]) {
      gs->finished[g] = false;
      n++;
    }
  }
  pthread_mutex_unlock(&gs->mu);
  return n;
}

void srv_group_sync_stop(struct srv_group_sync *gs) {
  pthread_mutex_lock(&gs->mu);
  gs->stop = true;
  pthread_cond_broadcast(&gs->work);
  pthread_mutex_unlock(&gs->mu);
  for (uint32_t i = 0; i < gs->n_threads; i++)
    pthread_join(gs->threads[i], NULL);
  gs->n_threads = 0;
  pthread_cond_destroy(&gs->work);
  pthread_mutex_destroy(&gs->mu);
}
