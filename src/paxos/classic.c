/* Classic Paxos: every node a proposer, every slot a full two-phase Paxos
 * instance, no distinguished leader. The "paxos" engine, for the lab.
 *
 * Paxos Made Simple §2: to get a command chosen a node takes the first slot
 * it does not know chosen, picks a ballot above any it has seen, and runs
 * phase 1 (prepare/promise) and phase 2 (accept/accepted) for that slot. If a
 * promise reports a value already accepted there, the highest-ballot one is
 * proposed instead (P2c) and the node's own command waits for the next slot.
 * A value accepted by a majority is chosen; the proposer tells everyone.
 *
 * §2.4: with several proposers and no leader, progress is not guaranteed:
 * two proposers can pre-empt each other's phase 2 with ever higher ballots
 * forever. With `proposer_backoff` a pre-empted proposer waits a random time
 * that grows with each consecutive pre-emption, and the duel ends; without
 * it, it retries at once, which is the livelock the lab shows. The waits
 * must outgrow one whole instance (two round trips: on WAN links a few
 * hundred ms), or two proposers that both wait still collide; so they grow
 * to several election timeouts. A proposer that sees a slot chosen with
 * someone else's value also waits before its next try: the winner is
 * evidently making progress, and letting it run its next slots alone is
 * what makes a de facto leader emerge (the distinguished proposer of §2.4).
 *
 * One instance is in flight per node (as in simple Paxos libraries), so each
 * command costs two round trips: this engine is the baseline Multi-Paxos
 * improves on, not a fast path.
 *
 * Reads go through the log: a read is a no-op command carrying the request
 * id, served once it is chosen and applied. Without a leader there is no one
 * whose lease could vouch for a local read.
 *
 * Learning: chosen values travel to everyone at once; a node that missed one
 * catches up from peers that know more (each node sends its commit index
 * every heartbeat_ms; a peer ahead answers with chosen entries, which the
 * lagging node keeps pulling batch after batch while they teach it
 * something, or with its snapshot, which it pulls chunk by chunk). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_impl.h"
#include "core/outbox.h"
#include "core/prng.h"
#include "core/replog.h"

enum cp_msg_type {
  CP_MSG_PREPARE = 1, /* term: ballot; index: slot */
  CP_MSG_PROMISE,     /* entries: the value accepted at the slot, if any */
  CP_MSG_ACCEPT,      /* entries: the one value proposed */
  CP_MSG_ACCEPTED,
  CP_MSG_CHOSEN, /* entries: chosen values, contiguous */
  CP_MSG_STATUS, /* commit; snap/context: snapshot being pulled */
  CP_MSG_SNAPSHOT,
};

/* context of PROMISE and ACCEPTED: why the answer is not a plain one. */
enum { CP_CHOSEN = 1, CP_BEHIND = 2 };

#define CP_QUEUE_MAX 4096u
#define CP_READ_MARK 0x52454144u /* "READ": a no-op that carries a read */
#define BACKOFF_TIMEOUTS_MAX 8u  /* longest backoff, in election timeouts */

struct cp_item {
  bool is_read;
  uint64_t request_id;
  uint32_t size_bytes;
  uint8_t *data; /* owned command bytes, or the read marker */
  uint64_t queued_ms;
};

struct cp {
  struct sabha_config cfg;
  struct prng prng;
  uint64_t now_ms;
  bool clock_started;

  uint64_t promised; /* acceptor: durable with its owner in `vote` */
  uint32_t vote;
  uint64_t max_seen; /* highest ballot heard of: the next one goes above */
  struct replog rl;

  /* Proposer: commands waiting for a slot, oldest first. */
  struct cp_item *queue;
  uint32_t queue_head;
  uint32_t queue_n;

  /* The instance in flight, if any. */
  bool active;
  int phase; /* 1 or 2 */
  uint64_t slot;
  uint64_t ballot;
  uint32_t grants; /* bits per voter slot */
  uint64_t best_ballot;
  struct sabha_entry value; /* proposed in phase 2; data owned */
  bool value_is_own;
  bool self_accept_pending;
  uint64_t deadline_ms;
  uint64_t retry_at_ms;
  uint32_t preemptions; /* consecutive, for the backoff */

  uint64_t status_due_ms;
  uint64_t pull_seen_ms; /* when the snapshot being pulled last grew */
  struct outbox out;

  uint64_t elections_started; /* phase-1 rounds */
  uint64_t ballots_burned;
};

static int voter_slot(const struct cp *p, uint32_t id) {
  for (uint32_t i = 0; i < p->cfg.n_voters; i++)
    if (p->cfg.voters[i] == id)
      return (int)i;
  return -1;
}

static uint32_t quorum(const struct cp *p) {
  return p->cfg.n_voters / 2 + 1;
}

static uint32_t count_bits(uint32_t x) {
  uint32_t n = 0;
  for (; x != 0; x &= x - 1)
    n++;
  return n;
}

static void cp_send(struct cp *p, struct sabha_msg *m, bool after_persist) {
  m->from = p->cfg.id;
  (void)outbox_send(&p->out, m, after_persist);
}

static void cp_broadcast(struct cp *p, struct sabha_msg *m,
                         bool after_persist) {
  for (uint32_t i = 0; i < p->cfg.n_voters; i++) {
    if (p->cfg.voters[i] == p->cfg.id)
      continue;
    m->to = p->cfg.voters[i];
    cp_send(p, m, after_persist);
  }
}

static void value_clear(struct cp *p) {
  free((void *)p->value.data);
  memset(&p->value, 0, sizeof p->value);
}

static int value_set(struct cp *p, uint32_t type, const uint8_t *data,
                     uint32_t size) {
  uint8_t *copy = NULL;
  if (size > 0) {
    copy = malloc(size);
    if (copy == NULL)
      return SABHA_ENOMEM;
    memcpy(copy, data, size);
  }
  value_clear(p);
  p->value.type = type;
  p->value.size_bytes = size;
  p->value.data = copy;
  return 0;
}

static struct cp_item *queue_front(struct cp *p) {
  return p->queue_n > 0 ? &p->queue[p->queue_head] : NULL;
}

static void queue_pop(struct cp *p) {
  assert(p->queue_n > 0);
  free(p->queue[p->queue_head].data);
  p->queue_head = (p->queue_head + 1) % CP_QUEUE_MAX;
  p->queue_n--;
}

static int queue_push(struct cp *p, bool is_read, uint64_t request_id,
                      const void *data, size_t size) {
  if (p->queue_n >= CP_QUEUE_MAX ||
      p->queue_n >= p->cfg.uncommitted_entries_max)
    return SABHA_EBUSY;
  uint8_t *copy = NULL;
  if (size > 0) {
    copy = malloc(size);
    if (copy == NULL)
      return SABHA_ENOMEM;
    memcpy(copy, data, size);
  }
  struct cp_item *it = &p->queue[(p->queue_head + p->queue_n) % CP_QUEUE_MAX];
  *it = (struct cp_item){.is_read = is_read,
                         .request_id = request_id,
                         .size_bytes = (uint32_t)size,
                         .data = copy,
                         .queued_ms = p->now_ms};
  p->queue_n++;
  return 0;
}

/* The entry the queue's front item becomes in the log. */
static void item_entry(const struct cp_item *it, struct sabha_entry *e) {
  e->type = it->is_read ? SABHA_ENTRY_NOOP : SABHA_ENTRY_COMMAND;
  e->size_bytes = it->size_bytes;
  e->data = it->data;
}

static bool same_value(const struct sabha_entry *a,
                       const struct sabha_entry *b) {
  return a->type == b->type && a->size_bytes == b->size_bytes &&
         (a->size_bytes == 0 || memcmp(a->data, b->data, a->size_bytes) == 0);
}

/* Removes every queued item whose value `e` (just chosen) carries, wherever
 * it waits: a client that timed out resends its command to other nodes, so
 * the same command can wait in several queues, and once one proposer got it
 * chosen, proposing it again would only spend slots on duplicates the state
 * machine discards, while the queues grow faster than one instance at a
 * time can drain them. A read is answered at the chosen index. Returns true
 * when something was removed. */
static bool queue_drop_chosen(struct cp *p, const struct sabha_entry *e) {
  uint32_t kept = 0;
  uint32_t n = p->queue_n;
  for (uint32_t i = 0; i < n; i++) {
    struct cp_item *it = &p->queue[(p->queue_head + i) % CP_QUEUE_MAX];
    struct sabha_entry mine = {0};
    item_entry(it, &mine);
    if (!same_value(&mine, e)) {
      p->queue[(p->queue_head + kept) % CP_QUEUE_MAX] = *it;
      kept++;
      continue;
    }
    if (it->is_read)
      (void)outbox_read_state(&p->out, it->request_id, e->index);
    free(it->data);
  }
  p->queue_n = kept;
  return kept != n;
}

/* ---- learning ----------------------------------------------------------- */

/* Stores `e` at its slot; false when out of memory. The slot alone goes to
 * the disk again (replog_note_put), and not even that when this node holds
 * the value already (one ballot proposes one value per slot): as when it
 * learns the value it accepted, or a duplicated accept arrives. */
static bool put_entry(struct cp *p, const struct sabha_entry *e) {
  const struct sabha_entry *held = log_get(&p->rl.log, e->index);
  if (held != NULL && held->term == e->term && same_value(held, e))
    return true;
  if (log_put(&p->rl.log, e) != 0)
    return false;
  replog_note_put(&p->rl, e->index);
  return true;
}

static void defer(struct cp *p);

/* Records that `e` is chosen at e->index, which must be commit + 1. If it is
 * what the queue's front asked for, that item is done. */
static void learn(struct cp *p, const struct sabha_entry *e) {
  assert(e->index == p->rl.commit + 1);
  if (!put_entry(p, e))
    return; /* out of memory: a peer will tell us again */
  p->rl.commit = e->index;
  if (queue_drop_chosen(p, e) && p->active && p->slot == e->index)
    p->preemptions = 0; /* our own instance chose our own value */
  if (p->active && p->slot <= p->rl.commit) {
    p->active = false; /* the slot is decided: move on */
    value_clear(p);
  }
}

/* Values chosen by other proposers. If one of them decided the slot this
 * node was proposing in, another proposer is winning: let it run for a
 * while before competing for the next slot (see the top of the file). */
/* Whether the command at the queue's front has waited so long that this node
 * stops giving way to the proposers that keep winning: with every node
 * busy, politeness alone can starve one node's clients for good. */
static bool starving(const struct cp *p) {
  return p->queue_n > 0 && p->now_ms >= p->queue[p->queue_head].queued_ms +
                                            2u * p->cfg.election_timeout_ms_max;
}

static bool pulling(const struct cp *p);

static void learn_batch(struct cp *p, const struct sabha_msg *m) {
  bool was_active = p->active;
  uint32_t queued = p->queue_n;
  uint64_t before = p->rl.commit;
  for (uint32_t i = 0; i < m->n_entries; i++)
    if (m->entries[i].index == p->rl.commit + 1)
      learn(p, &m->entries[i]);
  /* Still behind a peer that just taught us something: ask it for the next
   * batch at once, not at the next heartbeat, or a node that missed many
   * slots catches up a batch per heartbeat (with small batches, slower
   * than the others choose new ones). Each ask follows progress, so this
   * stops when the peer has nothing more to give. */
  if (p->rl.commit > before && m->commit > p->rl.commit && !pulling(p)) {
    struct sabha_msg st = {
        .type = CP_MSG_STATUS, .to = m->from, .commit = p->rl.commit};
    cp_send(p, &st, false);
  }
  if (was_active && !p->active && p->queue_n == queued && queued > 0 &&
      p->cfg.proposer_backoff && !starving(p))
    defer(p);
}

/* ---- the proposer -------------------------------------------------------- */

/* Waits a random time that doubles with each consecutive pre-emption, up
 * to BACKOFF_TIMEOUTS_MAX election timeouts. */
static void defer(struct cp *p) {
  uint32_t shift = p->preemptions < 7 ? p->preemptions : 7;
  uint64_t cap = (uint64_t)p->cfg.heartbeat_ms << shift;
  /* A starving node waits at most one election timeout: it comes back
   * sooner than the nodes that keep winning, once they lose a round. */
  uint64_t cap_max = (uint64_t)p->cfg.election_timeout_ms_max *
                     (starving(p) ? 1u : BACKOFF_TIMEOUTS_MAX);
  if (cap > cap_max)
    cap = cap_max;
  p->retry_at_ms = p->now_ms + prng_range(&p->prng, 1, cap);
}

static void start_instance(struct cp *p);

static void backoff(struct cp *p) {
  p->active = false;
  value_clear(p);
  p->preemptions++;
  if (!p->cfg.proposer_backoff) {
    /* Retry at once, not at the next tick (whose phase differs per node and
     * would itself be a backoff): the dueling proposers of §2.4. */
    p->retry_at_ms = p->now_ms;
    if (p->queue_n > 0)
      start_instance(p);
    return;
  }
  defer(p);
}

static void start_instance(struct cp *p) {
  assert(!p->active && p->queue_n > 0);
  uint64_t above = p->promised > p->max_seen ? p->promised : p->max_seen;
  p->ballot = ((above >> 8) + 1) << 8 | p->cfg.id;
  p->max_seen = p->ballot;
  p->promised = p->ballot; /* the proposer's own acceptor promises it */
  p->vote = p->cfg.id;
  p->ballots_burned++;
  p->elections_started++;
  p->active = true;
  p->phase = 1;
  p->slot = p->rl.commit + 1;
  /* A guarded acceptor (replog.h) may have lost a value chosen with it:
   * its own promise does not count; a majority of the others does. */
  p->grants = replog_guarded(&p->rl) ? 0 : 1u << voter_slot(p, p->cfg.id);
  p->best_ballot = 0;
  p->self_accept_pending = false;
  value_clear(p);
  /* Our own accepted value at the slot counts like any promise's. */
  const struct sabha_entry *mine = log_get(&p->rl.log, p->slot);
  if (mine != NULL &&
      value_set(p, mine->type, mine->data, mine->size_bytes) == 0)
    p->best_ballot = mine->term;
  p->deadline_ms = p->now_ms + p->cfg.election_timeout_ms_min;
  struct sabha_msg m = {
      .type = CP_MSG_PREPARE, .term = p->ballot, .index = p->slot};
  cp_broadcast(p, &m, true); /* once our own promise is durable */
}

static void self_accept(struct cp *p) {
  struct sabha_entry e = p->value;
  e.index = p->slot;
  e.term = p->ballot;
  if (p->promised > p->ballot || log_put(&p->rl.log, &e) != 0)
    return; /* we promised a higher ballot: our acceptor refuses */
  replog_note_put(&p->rl, p->slot);
  p->self_accept_pending = true; /* counted once durable (persisted) */
}

static void start_phase2(struct cp *p) {
  p->phase = 2;
  p->grants = 0;
  /* Each phase gets its own deadline: on WAN links two round trips can
   * outlast one election timeout, and giving up in phase 2 throws away a
   * promise a majority just made. */
  p->deadline_ms = p->now_ms + p->cfg.election_timeout_ms_min;
  bool adopt = !(p->cfg.bugs & SABHA_BUG_NO_ADOPT);
  if (!adopt || p->best_ballot == 0) {
    struct sabha_entry mine = {0};
    item_entry(queue_front(p), &mine);
    if (value_set(p, mine.type, mine.data, mine.size_bytes) != 0) {
      backoff(p);
      return;
    }
  }
  p->value.index = p->slot;
  p->value.term = p->ballot;
  self_accept(p);
  struct sabha_msg m = {.type = CP_MSG_ACCEPT,
                        .term = p->ballot,
                        .index = p->slot,
                        .n_entries = 1,
                        .entries = &p->value};
  cp_broadcast(p, &m, false);
}

static void chosen(struct cp *p) {
  struct sabha_entry e = p->value;
  e.index = p->slot;
  e.term = p->ballot;
  struct sabha_msg m = {.type = CP_MSG_CHOSEN,
                        .term = p->ballot,
                        .commit = p->slot,
                        .n_entries = 1,
                        .entries = &e};
  cp_broadcast(p, &m, false);
  learn(p, &e);
}

static void count_accept(struct cp *p, uint32_t from) {
  p->grants |= 1u << voter_slot(p, from);
  if (count_bits(p->grants) >= quorum(p))
    chosen(p);
}

/* Sends `to` the chosen values from slot `from` on, bounded in entries and
 * bytes like any append (the codec refuses oversized frames). */
static void send_chosen(struct cp *p, uint32_t to, uint64_t from) {
  uint32_t n =
      log_batch_count(&p->rl.log, from, p->rl.commit + 1,
                      p->cfg.entries_per_msg_max, p->cfg.bytes_per_msg_max);
  struct sabha_msg c = {.type = CP_MSG_CHOSEN,
                        .to = to,
                        .commit = p->rl.commit, /* how far it may pull */
                        .entries = log_get(&p->rl.log, from),
                        .n_entries = n};
  cp_send(p, &c, false);
}

/* ---- acceptor ------------------------------------------------------------ */

static bool answer_decided(struct cp *p, const struct sabha_msg *m,
                           struct sabha_msg *resp) {
  if (m->index <= p->rl.log.snap_index && m->index <= p->rl.commit) {
    resp->context = CP_BEHIND; /* compacted: it must catch up first */
    resp->commit = p->rl.commit;
    cp_send(p, resp, false);
    return true;
  }
  if (m->index <= p->rl.commit) {
    resp->context = CP_CHOSEN;
    resp->n_entries = 1;
    resp->entries = log_get(&p->rl.log, m->index);
    cp_send(p, resp, false);
    return true;
  }
  if (m->index > log_last_index(&p->rl.log) + 1) {
    resp->context = CP_BEHIND; /* we lack earlier slots: the proposer will
                                  tell us, and then we can answer */
    resp->commit = p->rl.commit;
    cp_send(p, resp, false);
    return true;
  }
  return false;
}

static void recv_prepare(struct cp *p, const struct sabha_msg *m) {
  struct sabha_msg resp = {.type = CP_MSG_PROMISE,
                           .to = m->from,
                           .term = m->term,
                           .index = m->index};
  if (answer_decided(p, m, &resp))
    return;
  if (replog_guarded(&p->rl))
    return; /* its promise would omit what it lost; see start_instance */
  bool again = m->term == p->promised && p->vote == m->from; /* duplicate */
  if (m->term < p->promised || (m->term == p->promised && !again)) {
    resp.reject = 1;
    resp.term = p->promised;
    cp_send(p, &resp, false);
    return;
  }
  p->promised = m->term;
  p->vote = m->from;
  const struct sabha_entry *e = log_get(&p->rl.log, m->index);
  if (e != NULL) {
    resp.n_entries = 1;
    resp.entries = e;
  }
  cp_send(p, &resp, true); /* the promise is durable first */
}

static void recv_accept(struct cp *p, const struct sabha_msg *m) {
  struct sabha_msg resp = {.type = CP_MSG_ACCEPTED,
                           .to = m->from,
                           .term = m->term,
                           .index = m->index};
  if (answer_decided(p, m, &resp))
    return;
  if (m->term < p->promised || m->n_entries != 1) {
    resp.reject = 1;
    resp.term = p->promised;
    cp_send(p, &resp, false);
    return;
  }
  if (m->term > p->promised) {
    p->promised = m->term;
    p->vote = m->from;
  }
  if (!put_entry(p, &m->entries[0]))
    return;
  cp_send(p, &resp, true); /* accepted only once durable */
}

static void recv_answer(struct cp *p, const struct sabha_msg *m) {
  if (m->context == CP_CHOSEN) {
    learn_batch(p, m);
    return;
  }
  if (m->context == CP_BEHIND) {
    /* Tell it what we know, so it can answer next time. */
    uint64_t from = m->commit + 1;
    if (from <= p->rl.log.snap_index || from > p->rl.commit)
      return;
    send_chosen(p, m->from, from);
    return;
  }
  if (m->term > p->max_seen)
    p->max_seen = m->term;
  if (!p->active || m->index != p->slot)
    return;
  if (m->reject) {
    if (m->term > p->ballot)
      backoff(p); /* pre-empted by a higher ballot */
    return;
  }
  if (m->term != p->ballot)
    return;
  if (m->type == CP_MSG_PROMISE && p->phase == 1) {
    if (m->n_entries == 1 && m->entries[0].term > p->best_ballot) {
      if (value_set(p, m->entries[0].type, m->entries[0].data,
                    m->entries[0].size_bytes) != 0)
        return;
      p->best_ballot = m->entries[0].term;
    }
    p->grants |= 1u << voter_slot(p, m->from);
    if (count_bits(p->grants) >= quorum(p))
      start_phase2(p);
  } else if (m->type == CP_MSG_ACCEPTED && p->phase == 2) {
    count_accept(p, m->from);
  }
}

/* ---- catch-up ------------------------------------------------------------ */

/* A snapshot is pulled from one peer at a time: chunks of two peers'
 * snapshots cannot be spliced, and every peer answers a broadcast status.
 * The source keeps the transfer while it makes progress; once it has been
 * silent for an election timeout, any peer may start a new one. */
static bool pulling(const struct cp *p) {
  return p->rl.incoming.active &&
         p->now_ms < p->pull_seen_ms + p->cfg.election_timeout_ms_max;
}

static void send_status(struct cp *p) {
  struct sabha_msg m = {.type = CP_MSG_STATUS, .commit = p->rl.commit};
  if (pulling(p)) {
    m.to = p->rl.incoming.from;
    m.snap = p->rl.incoming.meta;
    m.context = p->rl.incoming.received;
    cp_send(p, &m, false);
    return;
  }
  cp_broadcast(p, &m, false); /* no snapshot named: chunks from offset 0 */
}

static void recv_status(struct cp *p, const struct sabha_msg *m) {
  if (m->commit >= p->rl.commit)
    return;
  uint64_t from = m->commit + 1;
  if (from > p->rl.log.snap_index) {
    send_chosen(p, m->from, from);
    return;
  }
  /* It needs what we compacted: hand out the next chunk it asks for. */
  uint64_t offset = m->snap.index == p->rl.log.snap_index &&
                            m->snap.term == p->rl.log.snap_term &&
                            m->context <= p->rl.snap_size
                        ? m->context
                        : 0;
  uint64_t left = p->rl.snap_size - offset;
  uint32_t chunk = left < p->cfg.snapshot_chunk_bytes
                       ? (uint32_t)left
                       : p->cfg.snapshot_chunk_bytes;
  struct sabha_msg s = {
      .type = CP_MSG_SNAPSHOT,
      .to = m->from,
      .snap = {.index = p->rl.log.snap_index, .term = p->rl.log.snap_term},
      .snap_offset = offset,
      .snap_total_bytes = p->rl.snap_size,
      .snap_size_bytes = chunk,
      .snap_data = chunk > 0 ? p->rl.snap_data + offset : NULL};
  cp_send(p, &s, false);
}

static void recv_snapshot(struct cp *p, const struct sabha_msg *m) {
  if (m->snap.index <= p->rl.commit)
    return;
  if (pulling(p) && m->from != p->rl.incoming.from)
    return;
  /* A duplicate, or an answer to an older status: dropping it (rather than
   * asking again) keeps one request in flight per transfer; the next
   * heartbeat's status asks again if the real one was lost. */
  if (!replog_chunk_fits(&p->rl, m))
    return;
  uint64_t received = 0;
  int done = replog_snapshot_chunk(&p->rl, m, &received);
  if (!p->rl.incoming.active)
    return; /* no memory for it: a later status starts over */
  p->pull_seen_ms = p->now_ms;
  if (done == 1) {
    replog_install_snapshot(&p->rl, false);
    if (p->active && p->slot <= p->rl.commit) {
      p->active = false;
      value_clear(p);
    }
    return;
  }
  /* Ask the sender for the next chunk at once. */
  struct sabha_msg st = {.type = CP_MSG_STATUS,
                         .to = m->from,
                         .commit = p->rl.commit,
                         .snap = m->snap,
                         .context = received};
  cp_send(p, &st, false);
}

/* ---- the engine ---------------------------------------------------------- */

static void cp_destroy(void *state) {
  struct cp *p = state;
  if (p == NULL)
    return;
  while (p->queue_n > 0)
    queue_pop(p);
  free(p->queue);
  value_clear(p);
  replog_free(&p->rl);
  outbox_free(&p->out);
  free(p);
}

static int cp_create(void **state, const struct sabha_config *cfg,
                     const struct sabha_persisted *persisted) {
  for (uint32_t i = 0; i < cfg->n_voters; i++)
    if (cfg->voters[i] > 255)
      return SABHA_EINVAL; /* node ids live in the ballot's low byte */
  struct cp *p = calloc(1, sizeof *p);
  if (p == NULL)
    return SABHA_ENOMEM;
  p->cfg = *cfg;
  prng_seed(&p->prng, cfg->seed ^ ((uint64_t)cfg->id << 32) ^ 0xc1a5);
  replog_init(&p->rl);
  outbox_init(&p->out);
  p->queue = calloc(CP_QUEUE_MAX, sizeof *p->queue);
  int rv = p->queue == NULL ? SABHA_ENOMEM : 0;
  if (rv == 0 && persisted != NULL) {
    p->promised = persisted->hard_state.term;
    p->vote = persisted->hard_state.vote;
    p->rl.guard_off = (cfg->bugs & SABHA_BUG_NO_REPAIR_GUARD) != 0;
    p->rl.count_self_early = (cfg->bugs & SABHA_BUG_COUNT_SELF_EARLY) != 0;
    rv = replog_restore(&p->rl, persisted);
  }
  if (rv != 0) {
    cp_destroy(p);
    return rv;
  }
  p->max_seen = p->promised;
  *state = p;
  return 0;
}

static int cp_tick(void *state, uint64_t now_ms) {
  struct cp *p = state;
  if (!p->clock_started) {
    p->clock_started = true;
    p->now_ms = now_ms;
    p->status_due_ms = now_ms;
  }
  if (now_ms > p->now_ms)
    p->now_ms = now_ms;
  if (p->now_ms >= p->status_due_ms) {
    p->status_due_ms = p->now_ms + p->cfg.heartbeat_ms;
    send_status(p);
  }
  if (p->active && p->now_ms >= p->deadline_ms)
    backoff(p); /* messages lost, or a silent pre-emption */
  if (!p->active && p->queue_n > 0 && p->now_ms >= p->retry_at_ms)
    start_instance(p);
  return 0;
}

static int cp_step(void *state, const struct sabha_msg *m) {
  struct cp *p = state;
  if (m->to != p->cfg.id || voter_slot(p, m->from) < 0 || m->from == p->cfg.id)
    return SABHA_EINVAL;
  switch (m->type) {
  case CP_MSG_PREPARE:
    recv_prepare(p, m);
    return 0;
  case CP_MSG_ACCEPT:
    recv_accept(p, m);
    return 0;
  case CP_MSG_PROMISE:
  case CP_MSG_ACCEPTED:
    recv_answer(p, m);
    return 0;
  case CP_MSG_CHOSEN:
    learn_batch(p, m);
    return 0;
  case CP_MSG_STATUS:
    recv_status(p, m);
    return 0;
  case CP_MSG_SNAPSHOT:
    recv_snapshot(p, m);
    return 0;
  default:
    return SABHA_EINVAL;
  }
}

static int cp_propose(void *state, const void *data, size_t size_bytes) {
  struct cp *p = state;
  if (size_bytes > p->cfg.entry_size_bytes_max)
    return SABHA_ETOOBIG;
  int rv = queue_push(p, false, 0, data, size_bytes);
  if (rv == 0 && !p->active && p->now_ms >= p->retry_at_ms)
    start_instance(p);
  return rv;
}

static int cp_read_index(void *state, uint64_t request_id) {
  struct cp *p = state;
  uint8_t mark[16];
  uint32_t tag = CP_READ_MARK;
  /* The marker is unique per node and request, so that learning it chosen
   * is learning that this read has its slot. */
  memcpy(mark, &tag, 4);
  memcpy(mark + 4, &p->cfg.id, 4);
  memcpy(mark + 8, &request_id, 8);
  int rv = queue_push(p, true, request_id, mark, sizeof mark);
  if (rv == 0 && !p->active && p->now_ms >= p->retry_at_ms)
    start_instance(p);
  return rv;
}

static bool cp_has_ready(const void *state) {
  const struct cp *p = state;
  return !outbox_empty(&p->out) ||
         replog_has_ready(&p->rl, p->promised, p->vote);
}

static void cp_ready(void *state, struct sabha_ready *rd) {
  struct cp *p = state;
  replog_fill_ready(&p->rl, p->promised, p->vote, &p->out, rd);
}

/* The proposer's own acceptance counts once it is durable. */
static void cp_count_self(struct cp *p) {
  if (p->active && p->phase == 2 && p->self_accept_pending &&
      replog_self_match(&p->rl) >= p->slot) {
    p->self_accept_pending = false;
    count_accept(p, p->cfg.id);
  }
}

static void cp_advance(void *state, const struct sabha_ready *rd) {
  struct cp *p = state;
  replog_advance(&p->rl, rd);
  outbox_reset(&p->out);
  /* Its own copy may count already (nothing needed writing), or at once
   * under the deliberate bug (replog_advance). */
  cp_count_self(p);
}

static void cp_persisted(void *state, uint64_t seq) {
  struct cp *p = state;
  (void)replog_persisted(&p->rl, seq);
  cp_count_self(p);
}

static void cp_status(const void *state, struct sabha_status *st) {
  const struct cp *p = state;
  st->id = p->cfg.id;
  /* No leader: a node is a "candidate" in phase 1 and a "leader" of its
   * ballot in phase 2 (ballots are disjoint, so never two per ballot). */
  st->role = !p->active      ? SABHA_ROLE_FOLLOWER
             : p->phase == 1 ? SABHA_ROLE_CANDIDATE
                             : SABHA_ROLE_LEADER;
  /* A proposer in phase 2 leads its own ballot; otherwise the ballot it
   * promised is the one it knows of. */
  st->term = p->active && p->phase == 2 ? p->ballot : p->promised;
  st->vote = p->vote;
  st->leader = SABHA_NODE_NONE;
  st->commit = p->rl.commit;
  st->applied = p->rl.applied;
  st->first_index = log_first_index(&p->rl.log);
  st->last_index = log_last_index(&p->rl.log);
  st->snapshot_index = p->rl.log.snap_index;
  st->elections_started = p->elections_started;
  st->elections_won = 0;
  st->ballots_burned = p->ballots_burned;
  st->repair_until = replog_guard_until(&p->rl);
}

static int cp_transfer_leadership(void *state, uint32_t to) {
  (void)state;
  (void)to;
  return SABHA_ENOTLEADER; /* there is no leader to move */
}

static int cp_compact(void *state, uint64_t index, const void *data,
                      size_t size_bytes) {
  struct cp *p = state;
  return replog_compact(&p->rl, index, data, size_bytes);
}

static int cp_entry(const void *state, uint64_t index,
                    struct sabha_entry *out) {
  const struct cp *p = state;
  return replog_entry(&p->rl, index, out);
}

/* ---- how messages read (sabha_msg_describe) ----------------------------- */

/* " chosen" or " behind" for an answer that is not a plain one. */
static void describe_answer(struct describe *t, const struct sabha_msg *m) {
  if (m->context == CP_CHOSEN)
    describe_text(t, " chosen");
  else if (m->context == CP_BEHIND)
    describe_text(t, " behind");
  else if (m->context != 0)
    return; /* unknown: shown as ctx= */
  t->shown |= DESCRIBE_CONTEXT;
  if (m->context == CP_BEHIND)
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
}

/* A single value, as phase 1 and 2 carry it. */
static void describe_one_value(struct describe *t, const struct sabha_msg *m,
                               const char *ballot_key) {
  if (m->n_entries != 1 || m->entries == NULL)
    return;
  const struct sabha_entry *e = &m->entries[0];
  if (e->index != m->index) {
    describe_entries(t, "entries", m); /* not this slot's: show where */
  } else if (ballot_key != NULL) {
    describe_term(t, ballot_key, e->term);
  }
  describe_text(t, " value=");
  describe_value(t, e);
  t->shown |= DESCRIBE_ENTRIES;
}

static void cp_describe(struct describe *t, const struct sabha_msg *m) {
  static const char *const names[] = {
      [CP_MSG_PREPARE] = "prepare",   [CP_MSG_PROMISE] = "promise",
      [CP_MSG_ACCEPT] = "accept",     [CP_MSG_ACCEPTED] = "accepted",
      [CP_MSG_CHOSEN] = "chosen",     [CP_MSG_STATUS] = "status",
      [CP_MSG_SNAPSHOT] = "snapshot",
  };
  t->ballots = true;
  if (!describe_name(t, names, sizeof names / sizeof names[0], m->type))
    return;
  /* Learning and catch-up carry no ballot of their own (term 0). */
  if (m->term != 0 || m->type <= CP_MSG_ACCEPTED)
    describe_term(t, "ballot", m->term);
  switch (m->type) {
  case CP_MSG_PREPARE:
    describe_u64(t, "slot", m->index, DESCRIBE_INDEX);
    break;
  case CP_MSG_PROMISE:
  case CP_MSG_ACCEPTED:
    describe_u64(t, "slot", m->index, DESCRIBE_INDEX);
    if (m->context == 0 || m->reject)
      describe_verdict(t, m, "ok");
    describe_answer(t, m);
    describe_one_value(t, m, m->context == 0 ? "accepted" : NULL);
    break;
  case CP_MSG_ACCEPT:
    describe_u64(t, "slot", m->index, DESCRIBE_INDEX);
    describe_one_value(t, m, NULL);
    break;
  case CP_MSG_CHOSEN:
    if (m->commit != 0)
      describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    describe_entries(t, "entries", m);
    if (m->n_entries == 1) {
      describe_text(t, " value=");
      describe_value(t, &m->entries[0]);
    }
    break;
  case CP_MSG_STATUS:
    describe_u64(t, "commit", m->commit, DESCRIBE_COMMIT);
    if (m->snap.index != 0) { /* a snapshot being pulled */
      describe_at(t, "snap", m->snap.index, m->snap.term, DESCRIBE_SNAP);
      describe_u64(t, "received", m->context, DESCRIBE_CONTEXT);
    }
    break;
  default: /* SNAPSHOT */
    describe_snapshot_chunk(t, m);
    break;
  }
}

/* sabha_engine_set_timing: the timers read cfg when they are armed. */
static struct sabha_config *cp_config(void *state) {
  struct cp *x = state;
  return &x->cfg;
}

const struct engine_ops paxos_engine_ops = {
    .name = "paxos",
    .create = cp_create,
    .destroy = cp_destroy,
    .tick = cp_tick,
    .step = cp_step,
    .propose = cp_propose,
    .read_index = cp_read_index,
    .has_ready = cp_has_ready,
    .ready = cp_ready,
    .advance = cp_advance,
    .persisted = cp_persisted,
    .status = cp_status,
    .transfer_leadership = cp_transfer_leadership,
    .compact = cp_compact,
    .entry = cp_entry,
    .config = cp_config,
    .describe = cp_describe,
};
