/* Per-follower flow control; see progress.h. */
#include "core/progress.h"

#include <assert.h>
#include <stdlib.h>

#include "sabha/error.h"

int progress_init(struct progress *pr, uint32_t id, uint32_t inflight_max) {
  pr->id = id;
  pr->inflight_max = inflight_max;
  pr->inflight = calloc(inflight_max, sizeof *pr->inflight);
  return pr->inflight == NULL ? SABHA_ENOMEM : 0;
}

void progress_free(struct progress *pr) {
  free(pr->inflight);
  pr->inflight = NULL;
}

void progress_reset(struct progress *pr, uint64_t next) {
  pr->match = 0;
  pr->next = next;
  pr->recent_active = true; /* every peer gets one period to answer */
  pr->snap_index = 0;
  pr->snap_offset = 0;
  progress_become_probe(pr);
}

void progress_become_probe(struct progress *pr) {
  pr->state = PROGRESS_PROBE;
  pr->probe_sent = false;
  pr->inflight_head = 0;
  pr->inflight_n = 0;
}

void progress_become_replicate(struct progress *pr) {
  pr->state = PROGRESS_REPLICATE;
  pr->next = pr->match + 1;
  pr->inflight_head = 0;
  pr->inflight_n = 0;
}

void progress_become_snapshot(struct progress *pr, uint64_t snap_index) {
  pr->state = PROGRESS_SNAPSHOT;
  pr->snap_index = snap_index;
  pr->snap_offset = 0;
  pr->inflight_head = 0;
  pr->inflight_n = 0;
}

bool progress_paused(const struct progress *pr) {
  switch (pr->state) {
  case PROGRESS_PROBE:
    return pr->probe_sent;
  case PROGRESS_REPLICATE:
    return pr->inflight_n >= pr->inflight_max;
  case PROGRESS_SNAPSHOT:
    return true;
  }
  return true;
}

void progress_sent(struct progress *pr, uint64_t last) {
  if (pr->state == PROGRESS_PROBE) {
    pr->probe_sent = true;
    return;
  }
  assert(pr->state == PROGRESS_REPLICATE && pr->inflight_n < pr->inflight_max);
  pr->inflight[(pr->inflight_head + pr->inflight_n) % pr->inflight_max] = last;
  pr->inflight_n++;
  pr->next = last + 1; /* optimistic: pipelining */
}

void progress_acked(struct progress *pr, uint64_t index) {
  while (pr->inflight_n > 0 && pr->inflight[pr->inflight_head] <= index) {
    pr->inflight_head = (pr->inflight_head + 1) % pr->inflight_max;
    pr->inflight_n--;
  }
}

void progress_free_one(struct progress *pr) {
  if (pr->inflight_n > 0)
    progress_acked(pr, pr->inflight[pr->inflight_head]);
}

uint64_t progress_quorum_index(const struct progress *peers, uint32_t n,
                               uint32_t self_id, uint64_t self_match,
                               uint32_t quorum) {
  assert(n >= 1 && quorum >= 1 && quorum <= n && n <= 64);
  uint64_t matches[64];
  for (uint32_t i = 0; i < n; i++)
    matches[i] = peers[i].id == self_id ? self_match : peers[i].match;
  /* Insertion sort, descending: n is a cluster size. */
  for (uint32_t i = 1; i < n; i++) {
    uint64_t v = matches[i];
    uint32_t j = i;
    for (; j > 0 && matches[j - 1] < v; j--)
      matches[j] = matches[j - 1];
    matches[j] = v;
  }
  return matches[quorum - 1];
}

uint32_t progress_take_active(struct progress *peers, uint32_t n,
                              uint32_t self_id) {
  uint32_t active = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (peers[i].id == self_id || peers[i].recent_active)
      active++;
    if (peers[i].id != self_id)
      peers[i].recent_active = false;
  }
  return active;
}

void progress_send_heartbeats(const struct progress *peers, uint32_t n,
                              uint32_t self_id, uint32_t type, uint64_t term,
                              uint64_t commit, uint64_t read_round,
                              struct outbox *out) {
  for (uint32_t i = 0; i < n; i++) {
    if (peers[i].id == self_id)
      continue;
    struct sabha_msg m = {
        .type = type,
        .from = self_id,
        .to = peers[i].id,
        .term = term,
        .commit = peers[i].match < commit ? peers[i].match : commit,
        .context = read_round,
    };
    /* A heartbeat the outbox cannot hold is a heartbeat lost. */
    (void)outbox_send(out, &m, false);
  }
}
