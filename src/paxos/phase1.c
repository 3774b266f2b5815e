/* Multi-Paxos phase 1: becoming the distinguished proposer.
 *
 * Paxos Made Simple §2.2 (phase 1) and §3 (run once for all slots from the
 * first unchosen one). A candidate picks a ballot above every one it has
 * seen, promises it to itself durably, and sends prepare(ballot, from). Each
 * acceptor that promises answers with every value it accepted at slot >= from
 * and the ballot it accepted it under (in chunks: below). With promises from
 * a majority the candidate knows every value that may have been chosen: for
 * each slot it adopts the value with the highest ballot (any chosen value is
 * among them, §2.2's invariant P2c), re-proposes it under its own ballot, and
 * fills slots nobody accepted with no-ops (§3) so the log has no holes.
 *
 * A promise comes in chunks. An acceptor may hold any number of accepted
 * slots past the candidate's first (a leader that ran ahead of its commits
 * left them), and one message with all of them could outgrow the wire's
 * frame, which would be refused on every try: no leader, ever. So each
 * PROMISE carries at most what an accept may (entries_per_msg_max,
 * bytes_per_msg_max), says up to which slot it covers and whether more
 * follow, and the candidate asks the same acceptor again from the next
 * slot with a follow-up PREPARE of the same ballot. An acceptor counts
 * towards the quorum only once it has covered every slot from the first
 * asked about: §2.2's rule needs the values accepted by each acceptor of a
 * majority, and a part of them is not enough.
 *
 * Why chunks taken at different times are one promise: once an acceptor
 * promised ballot b it accepts nothing below b, and nothing of b either
 * until the candidate leads; if it promises a higher ballot it refuses the
 * rest, and the candidate never counts it. So every chunk reads the same
 * accepted values. Chunks may be lost, repeated or late: the candidate
 * takes one only when it continues what it holds from that acceptor
 * (merging a value twice changes nothing, as a slot keeps its highest
 * ballot), asks again for a chunk that did not come within a heartbeat,
 * and gives its election time again whenever a chunk brings it further,
 * so a long phase 1 that progresses is not abandoned while a stalled one
 * still times out. Acceptors asked for more restart their own election
 * timers as for a first promise, so they do not start a rival phase 1
 * while they are still answering this one. The memory this takes is one
 * value per slot the candidate will re-propose (its log holds them next)
 * and two numbers per voter.
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
  p->p1_more = 0;
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
  *s = (struct mp_slot){.ballot = e->term,
                        .type = e->type,
                        .size_bytes = e->size_bytes,
                        .data = copy};
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
    struct sabha_entry e = {
        .index = s, .term = p->promised, .type = SABHA_ENTRY_NOOP};
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
  /* Everyone a slot from here on may need: the memberships in force and
   * those the re-proposed slots carry. */
  mp_conf_sync_peers(p);
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
    struct progress *pr = &p->peers[i];
    if (pr->id == SABHA_NODE_NONE)
      continue;
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
  int slot = mp_slot(p, from);
  if (slot < 0)
    return; /* not asked: no membership phase 1 needs holds it */
  if (granted)
    p->grants |= 1u << slot;
  else
    p->refusals |= 1u << slot;
}

static bool same_voters(const struct sabha_membership *a,
                        const struct sabha_membership *b) {
  if (membership_voters(a) != membership_voters(b))
    return false;
  for (uint32_t k = 0; k < a->n; k++)
    if (a->members[k].role == SABHA_MEMBER_VOTER &&
        !membership_is_voter(b, a->members[k].id))
      return false;
  return true;
}

static void ask_prepare(struct mp *p, uint32_t id, bool probe, bool forced);

/* Asks every voter of `m` not asked yet in this campaign (each gets a
 * slot). Returns false when the slots run out. */
static bool ask_voters(struct mp *p, const struct sabha_membership *m,
                       bool probe, bool forced) {
  for (uint32_t k = 0; k < m->n; k++) {
    const struct sabha_member *x = &m->members[k];
    if (x->role != SABHA_MEMBER_VOTER)
      continue;
    int slot = mp_slot_ensure(p, x->id);
    if (slot < 0)
      return false;
    if ((p->p1_asked >> slot & 1u) || x->id == p->cfg.id)
      continue;
    p->p1_asked |= 1u << slot;
    ask_prepare(p, x->id, probe, forced);
  }
  return true;
}

/* Adds `m` to the memberships phase 1 must satisfy, asking its voters.
 * Returns false when there are too many to follow (the candidate gives
 * up: liveness only). */
static bool need(struct mp *p, const struct sabha_membership *m, bool probe,
                 bool forced) {
  for (uint32_t k = 0; k < p->n_p1_need; k++)
    if (same_voters(&p->p1_need[k], m))
      return true;
  if (p->n_p1_need == MP_P1_CONFIGS_MAX)
    return false;
  p->p1_need[p->n_p1_need++] = *m;
  return ask_voters(p, m, probe, forced);
}

/* A membership that the values seen in phase 1 may have chosen governs
 * later slots: its voters must be among the grants too (membership.c). */
static bool need_seen(struct mp *p) {
  for (uint64_t i = 0; i < p->p1_n; i++) {
    const struct mp_slot *s = &p->p1[i];
    struct sabha_membership m;
    if (s->ballot == 0 || s->type != SABHA_ENTRY_CONFIG ||
        sabha_membership_decode(s->data, s->size_bytes, &m) != 0)
      continue;
    if (!need(p, &m, false, false))
      return false;
  }
  return true;
}

static void check_tally(struct mp *p) {
  if (p->role == SABHA_ROLE_CANDIDATE && !need_seen(p)) {
    mp_become_follower(p, SABHA_NODE_NONE);
    return;
  }
  bool won = p->n_p1_need > 0, lost = false;
  for (uint32_t k = 0; k < p->n_p1_need; k++) {
    uint32_t mask = mp_voter_mask(p, &p->p1_need[k]);
    uint32_t q = membership_quorum(&p->p1_need[k]);
    won &= count_bits(p->grants & mask) >= q;
    lost |= count_bits(p->refusals & mask) >= q;
  }
  if (won) {
    if (p->role == SABHA_ROLE_PRECANDIDATE)
      mp_campaign(p, false, false);
    else
      mp_become_leader(p);
  } else if (lost) {
    mp_become_follower(p, SABHA_NODE_NONE);
  }
}

static void ask_prepare(struct mp *p, uint32_t id, bool probe, bool forced) {
  struct sabha_msg m = {.type = probe ? MP_MSG_PROBE : MP_MSG_PREPARE,
                        .to = id,
                        .term = probe ? next_ballot(p) : p->promised};
  m.index = p->rl.commit + 1;
  m.context = forced ? 1 : 0;
  /* A prepare waits for the self-promise to be durable; a probe changes
   * nothing and leaves at once. */
  mp_send(p, &m, !probe);
}

void mp_campaign(struct mp *p, bool probe, bool forced) {
  assert(p->role != SABHA_ROLE_LEADER);
  uint64_t ballot = next_ballot(p);
  p->campaigns_started++;
  p->leader = SABHA_NODE_NONE;
  p->grants = 0;
  p->refusals = 0;
  p->n_p1_need = 0;
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
    for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
      p->p1_next[i] = p->p1_from;
    /* The candidate is an acceptor too: its own accepted values count. */
    for (uint64_t s = p->p1_from; s <= log_last_index(&p->rl.log); s++)
      if (p1_merge(p, log_get(&p->rl.log, s)) != 0) {
        mp_become_follower(p, SABHA_NODE_NONE);
        return;
      }
  }
  (void)ballot;
  /* The memberships of the slots it knows of (membership.c): the one in
   * force at its first unknown slot, and one chosen but pending. */
  const struct sabha_membership *now = mp_conf_at(p, p->rl.commit + 1);
  const struct sabha_membership *latest = mp_conf_latest(p);
  p->p1_need[p->n_p1_need++] = *now;
  if (!same_voters(now, latest))
    p->p1_need[p->n_p1_need++] = *latest;
  p->p1_asked = 0;
  for (uint32_t k = 0; k < p->n_p1_need; k++)
    if (!ask_voters(p, &p->p1_need[k], probe, forced)) {
      mp_become_follower(p, SABHA_NODE_NONE);
      return;
    }
  /* A guarded acceptor may have lost a value it accepted and that was
   * chosen with it: it cannot count as one promise, a majority of the
   * others can (they meet every quorum it was part of). */
  if (!replog_guarded(&p->rl))
    tally(p, p->cfg.id, true);
  check_tally(p);
}

void mp_recv_probe(struct mp *p, const struct sabha_msg *m) {
  bool grant = m->term > p->promised && p->role != SABHA_ROLE_LEADER &&
               !replog_guarded(&p->rl);
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

uint32_t mp_promise_entries_max(const struct mp *p) {
  /* An accept's count may be tiny (one entry, to test single-entry
   * appends); a promise that small would make phase 1 over a backlog take
   * a round trip per slot, long enough for rivals to pre-empt it again and
   * again. Bytes bound it still. */
  return p->cfg.entries_per_msg_max > SABHA_PROMISE_ENTRIES_MIN
             ? p->cfg.entries_per_msg_max
             : SABHA_PROMISE_ENTRIES_MIN;
}

/* Fills `resp` with the chunk of this acceptor's promise that starts at
 * slot `from` (> the snapshot): the accepted slots from there, bounded in
 * bytes as an accept is, and in entries by mp_promise_entries_max() (the
 * first always goes, however large, which the wire's limits allow for:
 * codec_check_config()). */
static void promise_chunk(const struct mp *p, uint64_t from,
                          struct sabha_msg *resp) {
  assert(from > p->rl.log.snap_index);
  uint64_t last = log_last_index(&p->rl.log);
  resp->hint_index = from - 1;
  if (from > last)
    return; /* nothing accepted from there on: that is all */
  uint32_t n =
      log_batch_count(&p->rl.log, from, last + 1, mp_promise_entries_max(p),
                      p->cfg.bytes_per_msg_max);
  assert(n >= 1);
  resp->entries = log_get(&p->rl.log, from);
  resp->n_entries = n;
  resp->hint_index = from + n - 1;
  if (resp->hint_index < last)
    resp->context = MP_MORE;
}

void mp_recv_prepare(struct mp *p, const struct sabha_msg *m) {
  if (m->term > p->promised)
    mp_adopt_ballot(p, m->term, SABHA_NODE_NONE);
  if (m->term != p->promised)
    return;
  if (p->role == SABHA_ROLE_LEADER || p->role == SABHA_ROLE_CANDIDATE)
    return; /* ballots are disjoint: only a broken peer sends our own */
  /* A guarded acceptor's promise would omit values it lost (the ballot is
   * adopted all the same: refusing lower ones is always safe). */
  if (replog_guarded(&p->rl))
    return;
  if (m->context == MP_MORE) {
    /* The candidate we promised is still collecting: start no rival
     * phase 1 meanwhile (as a Raft follower restarts its timer when it
     * grants a vote, Raft §5.2). */
    if (p->role == SABHA_ROLE_PRECANDIDATE)
      mp_become_follower(p, SABHA_NODE_NONE);
    else
      mp_reset_election_timer(p);
  }
  struct sabha_msg resp = {.type = MP_MSG_PROMISE, .to = m->from};
  resp.index = m->index;
  resp.commit = p->rl.commit;
  if (m->index <= p->rl.log.snap_index) {
    /* Slots it asks about are compacted here: they are chosen, and the
     * candidate lacks them. It must catch up before it can lead. */
    resp.context = MP_BEHIND;
    /* A removed node will not lead, so its "catch up first" would stop
     * every campaign for good: it refuses instead (the candidate may win
     * without it), and hands its snapshot over, for it may be the only
     * node that knows those slots are chosen (a leader that committed its
     * own removal, its last heartbeats lost) and the candidate may need
     * them to win. The snapshot holds chosen slots only, so any node may
     * give it. */
    int slot = mp_slot(p, m->from);
    if (mp_removed(p) && slot >= 0) {
      resp.context = 0;
      resp.reject = 1;
      mp_send_snapshot(p, &p->peers[slot]);
    }
  } else {
    promise_chunk(p, m->index, &resp);
  }
  mp_send(p, &resp, true); /* the promise is durable first */
}

/* Asks voter `slot` for the rest of its promise. The first PREPARE left
 * only once our own promise was durable, and an answer to it came back,
 * so this one need not wait. */
static void ask_more(struct mp *p, uint32_t slot) {
  struct sabha_msg m = {.type = MP_MSG_PREPARE,
                        .to = p->peers[slot].id,
                        .index = p->p1_next[slot],
                        .context = MP_MORE};
  p->p1_asked_ms[slot] = p->now_ms;
  mp_send(p, &m, false);
}

void mp_p1_resend(struct mp *p) {
  assert(p->role == SABHA_ROLE_CANDIDATE);
  for (uint32_t i = 0; i < SABHA_NODES_MAX; i++)
    if ((p->p1_more & 1u << i) && p->peers[i].id != SABHA_NODE_NONE &&
        p->now_ms >= p->p1_asked_ms[i] + p->cfg.heartbeat_ms)
      ask_more(p, i); /* the request or its answer was lost */
}

/* True when `m` is a well-formed chunk that continues what voter `slot`
 * has covered: it starts no later than p1_next[slot] (so no slot is
 * skipped), not before p1_from, and its entries are the slots from
 * m->index on, in order; a chunk with more to follow covers exactly its
 * entries (so that each one moves the candidate on). */
static bool chunk_continues(const struct mp *p, uint32_t slot,
                            const struct sabha_msg *m) {
  if (m->index < p->p1_from || m->index > p->p1_next[slot])
    return false;
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (m->entries[i].index != m->index + i)
      return false;
  if (m->context == MP_MORE)
    return m->n_entries > 0 && m->hint_index == m->index + m->n_entries - 1;
  return m->context == 0;
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
  int voter = mp_slot(p, m->from);
  if (voter < 0 || !membership_entries_valid(m->entries, m->n_entries))
    return; /* not asked, or a membership no one could act on */
  uint32_t slot = (uint32_t)voter;
  if ((p->grants & 1u << slot) || !chunk_continues(p, slot, m))
    return; /* a repeat of a chunk, or one that leaves a gap: wait */
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (p1_merge(p, &m->entries[i]) != 0)
      return; /* out of memory: do not count a promise we could not read */
  if (m->context == MP_MORE) {
    if (m->hint_index < p->p1_next[slot])
      return; /* nothing new */
    p->p1_next[slot] = m->hint_index + 1;
    p->p1_more |= 1u << slot;
    mp_reset_election_timer(p); /* phase 1 is getting somewhere */
    ask_more(p, slot);
    return;
  }
  /* This acceptor has sent every value it accepted from p1_from on. */
  p->p1_more &= ~(1u << slot);
  tally(p, m->from, true);
  check_tally(p);
}
