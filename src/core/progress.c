/* Per-follower flow control; see progress.h. */
#include "core/progress.h"

#include <assert.h>
#include <stdlib.h>

#include "sabha/error.h"

int progress_init(struct progress *pr, uint32_t id, uint32_t inflight_max) {
  pr->id = id;
  pr->learner = false;
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

void progress_sent(struct progress *pr, uint64_t last, uint32_t n_entries) {
  if (pr->state == PROGRESS_PROBE) {
    pr->probe_sent = true;
    return;
  }
  if (n_entries == 0)
    return;
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

int progress_fill_append(const struct progress *pr, const struct log *log,
                         uint32_t n_max, uint64_t bytes_max,
                         struct sabha_msg *m) {
  uint64_t prev = pr->next - 1;
  uint64_t prev_term = 0;
  int rv = log_term(log, prev, &prev_term);
  if (rv != 0)
    return rv;
  uint32_t n =
      log_batch_count(log, pr->next, log_last_index(log) + 1, n_max, bytes_max);
  m->index = prev;
  m->log_term = prev_term;
  m->n_entries = n;
  m->entries = n > 0 ? log_get(log, pr->next) : NULL;
  return 0;
}

bool progress_on_append_ok(struct progress *pr, uint64_t index) {
  bool updated = index > pr->match;
  if (updated)
    pr->match = index;
  if (pr->next < index + 1)
    pr->next = index + 1;
  switch (pr->state) {
  case PROGRESS_PROBE:
    progress_become_replicate(pr);
    break;
  case PROGRESS_REPLICATE:
    progress_acked(pr, index);
    break;
  case PROGRESS_SNAPSHOT:
    if (pr->match >= pr->snap_index) {
      progress_become_probe(pr);
      pr->next = pr->match + 1;
    }
    break;
  }
  return updated;
}

bool progress_on_append_refused(struct progress *pr, const struct log *log,
                                uint64_t rejected, uint64_t hint_index,
                                uint64_t hint_term) {
  if (pr->state == PROGRESS_SNAPSHOT)
    return false;
  if (pr->state == PROGRESS_REPLICATE && rejected <= pr->match)
    return false; /* stale: refers to a point already known to match */
  if (pr->state == PROGRESS_PROBE && rejected != pr->next - 1)
    return false; /* stale: not the probe we are waiting for */
  uint64_t probe = hint_index;
  if (hint_term > 0) {
    uint64_t ignored;
    probe = log_find_conflict_by_term(log, hint_index, hint_term, &ignored);
  }
  uint64_t next = rejected < probe + 1 ? rejected : probe + 1;
  if (next < pr->match + 1)
    next = pr->match + 1;
  if (next < 1)
    next = 1;
  progress_become_probe(pr);
  pr->next = next;
  return true;
}

bool progress_on_log_lost(struct progress *pr, uint64_t last) {
  if (pr->match <= last)
    return false;
  pr->match = last;
  progress_become_probe(pr);
  pr->next = last + 1;
  return true;
}

void progress_unpause(struct progress *pr) {
  if (pr->state == PROGRESS_PROBE)
    pr->probe_sent = false;
  else if (pr->inflight_n >= pr->inflight_max)
    progress_free_one(pr);
}

uint64_t progress_quorum_index(const struct progress *peers, uint32_t n,
                               uint32_t self_id, uint64_t self_match,
                               uint32_t quorum) {
  assert(n >= 1 && quorum >= 1 && n <= 64);
  uint64_t matches[64];
  uint32_t voters = 0;
  for (uint32_t i = 0; i < n; i++)
    if (peers[i].id != SABHA_NODE_NONE && !peers[i].learner)
      matches[voters++] = peers[i].id == self_id ? self_match : peers[i].match;
  if (quorum > voters)
    return 0;
  /* Insertion sort, descending: n is a cluster size. */
  for (uint32_t i = 1; i < voters; i++) {
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
    if (peers[i].id == SABHA_NODE_NONE)
      continue;
    if (!peers[i].learner && (peers[i].id == self_id || peers[i].recent_active))
      active++;
    if (peers[i].id != self_id) {
      peers[i].active_before = peers[i].recent_active;
      peers[i].recent_active = false;
    }
  }
  return active;
}

void progress_send_heartbeats(const struct progress *peers, uint32_t n,
                              uint32_t self_id, uint32_t type, uint64_t term,
                              uint64_t commit, uint64_t read_round,
                              struct outbox *out) {
  for (uint32_t i = 0; i < n; i++) {
    if (peers[i].id == self_id || peers[i].id == SABHA_NODE_NONE)
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
