/* Multi-Paxos phase 1: becoming the distinguished proposer.
 *
 * Paxos Made Simple §2.2 (phase 1) and §3 (run once for all slots from the
 * first unchosen one). A candidate picks a ballot above every one it has
 * seen, promises it to itself durably, and sends prepare(ballot, from). Each
 * acceptor that promises answers with every value it accepted at slot >= from
 * and the ballot it accepted it under. With promises from a majority the
 * candidate knows every value that may have been chosen: for each slot it
 * adopts the value with the highest ballot (any chosen value is among them,
 * §2.2's invariant P2c), re-proposes it under its own ballot, and fills slots
 * nobody accepted with no-ops (§3) so the log has no holes.
 *
 * Before phase 1 a candidate probes, the way Raft's PreVote does (Raft thesis
 * §9.6): acceptors that still hear a live leader say no, and the candidate
 * raises no ballot. Without this a node that was cut off would come back with
 * a high ballot and depose a healthy leader. A candidate pre-empted by a
 * higher ballot backs off for a randomized election timeout, so dueling
 * candidates converge instead of pre-empting each other forever. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "paxos/mp.h"

static uint32_t count_bits(uint32_t x) {
  uint32_t n = 0;
  for (; x != 0; x &= x - 1)
    n++;
  return n;
}

static uint64_t next_ballot(const struct mp *p) {
  return mp_ballot(mp_ballot_round(p->promised) + 1, p->cfg.id);
}

void mp_p1_clear(struct mp *p) {
  for (uint64_t i = 0; i < p->p1_n; i++)
    free(p->p1[i].data);
  p->p1_n = 0;
}

/* Keeps `e` for its slot if its ballot beats what was seen there. */
static int p1_merge(struct mp *p, const struct sabha_entry *e) {
  if (e->index < p->p1_from)
    return 0;
  uint64_t off = e->index - p->p1_from;
  if (off >= p->p1_cap) {
    uint64_t cap = p->p1_cap ? p->p1_cap * 2 : 64;
    while (cap <= off)
      cap *= 2;
    struct mp_slot *grown = realloc(p->p1, cap * sizeof *grown);
    if (grown == NULL)
      return SABHA_ENOMEM;
    p->p1 = grown;
    p->p1_cap = cap;
  }
  while (p->p1_n <= off)
    p->p1[p->p1_n++] = (struct mp_slot){0};
  struct mp_slot *s = &p->p1[off];
  if (s->ballot != 0 && s->ballot >= e->term)
    return 0;
  uint8_t *copy = NULL;
  if (e->size_bytes > 0) {
    copy = malloc(e->size_bytes);
    if (copy == NULL)
      return SABHA_ENOMEM;
    memcpy(copy, e->data, e->size_bytes);
  }
  free(s->data);
  *s = (struct mp_slot){.ballot = e->term, .type = e->type,
                        .size_bytes = e->size_bytes, .data = copy};
  return 0;
}

static void mp_become_leader(struct mp *p) {
  assert(p->role == SABHA_ROLE_CANDIDATE);
  p->role = SABHA_ROLE_LEADER;
  p->leader = p->cfg.id;
  p->elections_won++;
  p->transferee = SABHA_NODE_NONE;
  uint64_t from = p->p1_from;
  uint64_t last = log_last_index(&p->rl.log);
  if (p->p1_n > 0 && from + p->p1_n - 1 > last)
    last = from + p->p1_n - 1;
  bool adopt = !(p->cfg.bugs & SABHA_BUG_NO_ADOPT);
  for (uint64_t s = from; s <= last; s++) {
    const struct mp_slot *best = s - from < p->p1_n ? &p->p1[s - from] : NULL;
    struct sabha_entry e = {.index = s, .term = p->promised,
                            .type = SABHA_ENTRY_NOOP};
    if (adopt && best != NULL && best->ballot != 0) {
      e.type = best->type;
      e.size_bytes = best->size_bytes;
      e.data = best->data;
    }
    if (log_put(&p->rl.log, &e) != 0) {
      /* Out of memory: the slots from here on are not ours to lead. */
      mp_p1_clear(p);
      mp_become_follower(p, SABHA_NODE_NONE);
      return;
    }
  }
  if (from <= last)
    replog_note_rewrite(&p->rl, from);
  mp_p1_clear(p);
  p->term_start_index = last >= from ? last : p->rl.commit;
  p->accepted_upto = last;
  for (uint32_t i = 0; i < p->cfg.n_voters; i++) {
    struct progress *pr = &p->peers[i];
    progress_reset(pr, last + 1);
    if (pr->id == p->cfg.id) {
      pr->match = replog_self_match(&p->rl);
      pr->state = PROGRESS_REPLICATE;
    }
  }
  p->heartbeat_due_ms = p->now_ms + p->cfg.heartbeat_ms;
  p->check_quorum_due_ms = p->now_ms + p->cfg.election_timeout_ms_min;
  mp_broadcast_accept(p);
  mp_maybe_commit(p); /* a group of one */
}

static void tally(struct mp *p, uint32_t from, bool granted) {
  int slot = mp_voter_slot(p, from);
  assert(slot >= 0);
  if (granted)
    p->grants |= 1u << slot;
  else
    p->refusals |= 1u << slot;
}

static void check_tally(struct mp *p) {
  if (count_bits(p->grants) >= mp_quorum(p)) {
    if (p->role == SABHA_ROLE_PRECANDIDATE)
      mp_campaign(p, false, false);
    else
      mp_become_leader(p);
  } else if (count_bits(p->refusals) >= mp_quorum(p)) {
    mp_become_follower(p, SABHA_NODE_NONE);
  }
}

void mp_campaign(struct mp *p, bool probe, bool forced) {
  assert(p->role != SABHA_ROLE_LEADER);
  uint64_t ballot = next_ballot(p);
  p->leader = SABHA_NODE_NONE;
  p->grants = 0;
  p->refusals = 0;
  mp_reset_election_timer(p);
  if (probe) {
    p->role = SABHA_ROLE_PRECANDIDATE;
  } else {
    mp_p1_clear(p);
    p->role = SABHA_ROLE_CANDIDATE;
    p->promised = ballot;
    p->vote = p->cfg.id;
    p->ballots_burned++;
    p->elections_started++;
    p->accepted_upto = p->rl.commit;
    p->p1_from = p->rl.commit + 1;
    /* The candidate is an acceptor too: its own accepted values count. */
    for (uint64_t s = p->p1_from; s <= log_last_index(&p->rl.log); s++)
      if (p1_merge(p, log_get(&p->rl.log, s)) != 0) {
        mp_become_follower(p, SABHA_NODE_NONE);
        return;
      }
  }
  tally(p, p->cfg.id, true);
  for (uint32_t i = 0; i < p->cfg.n_voters; i++) {
    uint32_t id = p->cfg.voters[i];
    if (id == p->cfg.id)
      continue;
    struct sabha_msg m = {.type = probe ? MP_MSG_PROBE : MP_MSG_PREPARE,
                          .to = id, .term = ballot};
    m.index = p->rl.commit + 1;
    m.context = forced ? 1 : 0;
    /* A prepare waits for the self-promise to be durable; a probe changes
     * nothing and leaves at once. */
    mp_send(p, &m, !probe);
  }
  check_tally(p);
}

void mp_recv_probe(struct mp *p, const struct sabha_msg *m) {
  bool grant = m->term > p->promised && p->role != SABHA_ROLE_LEADER;
  struct sabha_msg resp = {.type = MP_MSG_PROBE_RESP, .to = m->from};
  if (grant)
    resp.term = m->term;
  else
    resp.reject = 1;
  mp_send(p, &resp, false);
}

void mp_recv_probe_resp(struct mp *p, const struct sabha_msg *m) {
  if (p->role != SABHA_ROLE_PRECANDIDATE)
    return;
  if (!m->reject && m->term != next_ballot(p))
    return; /* an answer to an older probe */
  tally(p, m->from, !m->reject);
  check_tally(p);
}

void mp_recv_prepare(struct mp *p, const struct sabha_msg *m) {
  if (m->term > p->promised)
    mp_adopt_ballot(p, m->term, SABHA_NODE_NONE);
  if (m->term != p->promised)
    return;
  struct sabha_msg resp = {.type = MP_MSG_PROMISE, .to = m->from};
  resp.commit = p->rl.commit;
  if (m->index <= p->rl.log.snap_index) {
    /* Slots it asks about are compacted here: they are chosen, and the
     * candidate lacks them. It must catch up before it can lead. */
    resp.context = MP_BEHIND;
  } else if (m->index <= log_last_index(&p->rl.log)) {
    resp.entries = log_get(&p->rl.log, m->index);
    resp.n_entries = (uint32_t)(log_last_index(&p->rl.log) - m->index + 1);
  }
  resp.index = log_last_index(&p->rl.log);
  mp_send(p, &resp, true); /* the promise is durable first */
}

void mp_recv_promise(struct mp *p, const struct sabha_msg *m) {
  if (p->role != SABHA_ROLE_CANDIDATE || m->term != p->promised)
    return;
  if (m->reject)
    return;
  if (m->context == MP_BEHIND) {
    mp_become_follower(p, SABHA_NODE_NONE);
    return;
  }
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (p1_merge(p, &m->entries[i]) != 0)
      return; /* out of memory: do not count a promise we could not read */
  tally(p, m->from, true);
  check_tally(p);
}
