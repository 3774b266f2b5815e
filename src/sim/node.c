/* A simulated node: one engine driven exactly as the real node will drive it,
 * with a clock, an inbox, a disk and a KV state machine.
 *
 * The cycle, for every input (a tick, a peer message, a client request):
 *
 *   1. hand the input to the engine (tick / step / propose / read_index);
 *   2. if the engine has a ready batch: send `msgs`, write the rest to the
 *      disk as pending records, and block until the fsync completes (1-3 ms,
 *      longer on a slow disk); inputs that arrive meanwhile wait in the
 *      inbox, so the next batch covers all of them (group commit);
 *   3. when the fsync completes: the records are durable; send
 *      `msgs_after_persist`, install the snapshot, apply `committed` to the
 *      KV machine (answering clients that wait here), note `reads`, call
 *      advance, serve the reads whose index the machine reached, maybe
 *      compact, and go on with the next batch or input.
 *
 * A batch with nothing to persist needs no fsync and completes at once.
 * Under the ack-before-fsync bug, step 3 also happens at once and the disk
 * is flushed in the background 5-30 ms later.
 *
 * A slow node spends `slow_delay_us` on every message or request, plus
 * `slow_entry_us` per log entry it carries (overload): its inbox grows
 * while it works. Ticks wait their turn too, but jump the
 * inbox queue (a timer fires between two messages of a busy event loop) --
 * unless the node has `late_timers` (SIM_SLOW_LATE_TIMERS, a CPU-starved
 * process): then a tick that comes due waits behind every input queued
 * before it, so its heartbeats leave only after the backlog.
 * The local clock runs at the node's rate and never goes backwards. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "sim/workload.h"
#include "sm/app.h"

#define FSYNC_US_MIN 1000u
#define FSYNC_US_MAX 3000u
#define FLUSH_US_MIN 5000u /* ack-before-fsync: background flush delay */
#define FLUSH_US_MAX 30000u
#define READIES_PER_CALL_MAX 64 /* a bound on back-to-back batches */

/* ---- lifecycle ----------------------------------------------------------- */

void node_init(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  memset(n, 0, sizeof *n);
  n->id = i + 1;
  disk_init(&n->disk);
  struct kv_limits lim = {.keys_max = s->o.n_keys,
                          .clients_max = s->n_clients,
                          .op_ids_max = s->o.n_ops};
  if (kv_new(&n->kv, &lim) != 0) {
    fprintf(stderr, "sabha sim: cannot create the KV state machine\n");
    abort();
  }
  workload_node_init(s, n);
  n->inbox = sim_xmalloc(NODE_INBOX_MAX * sizeof *n->inbox);
  n->writes = sim_xcalloc(s->n_clients, sizeof *n->writes);
  n->reads = sim_xcalloc(s->n_clients, sizeof *n->reads);
  n->clock_rate_ppm = 1000000u;
  /* Clocks start at different local times and ms phases, as real ones do. */
  n->clock_base_local_us = prng_below(&s->prng_node, 1000000000ull);
  n->fsync_factor = 1;
}

static void inbox_clear(struct sim *s, struct node *n) {
  while (n->inbox_n > 0) {
    struct sim_event *ev = n->inbox[n->inbox_head];
    n->inbox_head = (n->inbox_head + 1) % NODE_INBOX_MAX;
    n->inbox_n--;
    if (ev->kind == EV_PEER_MSG)
      packet_free(ev->u.pkt);
    ev_free(s, ev);
  }
  n->inbox_head = 0;
}

/* Adds what an engine incarnation counted to the run's totals, before the
 * engine goes away with its counters. */
static void node_count_engine(struct sim *s, struct node *n) {
  if (n->e == NULL)
    return;
  struct sabha_status st;
  sabha_engine_status(n->e, &st);
  s->res->phase1_rounds += st.elections_started;
  s->res->ballots_burned += st.ballots_burned;
}

void node_free(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  node_count_engine(s, n);
  sabha_engine_free(n->e);
  inbox_clear(s, n);
  free(n->inbox);
  free(n->writes);
  free(n->reads);
  kv_free(n->kv);
  workload_node_free(n);
  disk_free(&n->disk);
  memset(n, 0, sizeof *n);
}

uint32_t nodes_down(const struct sim *s) {
  uint32_t down = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    down += !s->nodes[i].up;
  return down;
}

int node_leader(struct sim *s) {
  int best = -1;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (n->up && n->last_role == SABHA_ROLE_LEADER &&
        (best < 0 || n->last_term > s->nodes[best].last_term))
      best = (int)i;
  }
  return best;
}

/* ---- the clock ----------------------------------------------------------- */

static uint64_t node_local_us(const struct sim *s, const struct node *n) {
  return n->clock_base_local_us +
         (s->now_us - n->clock_base_sim_us) * n->clock_rate_ppm / 1000000u;
}

/* The simulated time at which the local clock reaches its next ms. */
static uint64_t node_next_tick_us(const struct sim *s, const struct node *n) {
  uint64_t to_next_us = 1000u - node_local_us(s, n) % 1000u;
  uint64_t sim_us =
      (to_next_us * 1000000u + n->clock_rate_ppm - 1) / n->clock_rate_ppm;
  return s->now_us + (sim_us == 0 ? 1 : sim_us);
}

void node_set_clock(struct sim *s, uint32_t i, uint64_t rate_ppm,
                    uint64_t jump_ms) {
  struct node *n = &s->nodes[i];
  assert(rate_ppm > 0);
  n->clock_base_local_us = node_local_us(s, n) + jump_ms * 1000u;
  n->clock_base_sim_us = s->now_us;
  n->clock_rate_ppm = rate_ppm;
}

/* ---- replies to clients -------------------------------------------------- */

static void node_reply(struct sim *s, struct node *n, uint32_t client,
                       uint64_t seq, uint32_t attempt, uint32_t status) {
  struct client_msg cm = {
      .client = client, .attempt = attempt, .seq = seq, .status = status};
  net_send_client(s, false, n->id - 1, client, &cm);
}

static void node_reply_ok(struct sim *s, struct node *n, uint32_t client,
                          uint64_t seq, uint32_t attempt, int64_t value,
                          int32_t swapped) {
  struct client_msg cm = {.client = client,
                          .attempt = attempt,
                          .seq = seq,
                          .status = CM_OK,
                          .value = value,
                          .swapped = swapped};
  net_send_client(s, false, n->id - 1, client, &cm);
}

static void node_refuse(struct sim *s, struct node *n, uint32_t client,
                        const struct client_msg *req, int err) {
  if (err == SABHA_ENOTLEADER || err == SABHA_ETRANSFER) {
    struct sabha_status st;
    sabha_engine_status(n->e, &st);
    struct client_msg cm = {.client = client,
                            .attempt = req->attempt,
                            .seq = req->seq,
                            .status = CM_NOT_LEADER,
                            .hint = err == SABHA_ENOTLEADER ? st.leader : 0};
    net_send_client(s, false, n->id - 1, client, &cm);
    return;
  }
  node_reply(s, n, client, req->seq, req->attempt, CM_BUSY);
}

/* ---- applying ------------------------------------------------------------ */

/* Applies one command of a committed entry (an entry may carry several:
 * Multi-Paxos batches commands into a slot). */
static void node_apply_command(struct sim *s, struct node *n, uint64_t index,
                               uint32_t pos, const uint8_t *data, size_t size) {
  if (s->wl != NULL && app_is_command(data, size)) {
    workload_apply(s, n, index, pos, data, size);
    return;
  }
  struct kv_cmd cmd;
  struct kv_result r;
  if (kv_apply(n->kv, data, size, &cmd, &r) != 0) {
    sim_fail(s, FAIL_SAFETY, "node %u: entry %llu is not a KV command", n->id,
             (unsigned long long)index);
    return;
  }
  if (cmd.seq == 0)
    sim_note_barrier(s, index);
  if (cmd.client >= s->n_clients ||
      (r.outcome != KV_APPLIED && r.outcome != KV_DUPLICATE))
    return;
  struct wait_write *w = &n->writes[cmd.client];
  if (w->active && w->seq == cmd.seq) {
    w->active = false;
    node_reply_ok(s, n, cmd.client, cmd.seq, w->attempt, KV_NIL, r.swapped);
  }
}

static void node_apply(struct sim *s, struct node *n,
                       const struct sabha_entry *e) {
  if (e->index != n->applied + 1) {
    sim_fail(s, FAIL_SAFETY,
             "engine contract: node %u was handed committed index %llu "
             "after applying %llu",
             n->id, (unsigned long long)e->index,
             (unsigned long long)n->applied);
    return;
  }
  check_apply(s, n->id - 1, e);
  n->applied = e->index;
  size_t offset = 0;
  const uint8_t *data;
  size_t size;
  int more;
  for (uint32_t pos = 0;
       (more = sabha_batch_next(e, &offset, &data, &size)) == 1; pos++)
    node_apply_command(s, n, e->index, pos, data, size);
  if (more < 0)
    sim_fail(s, FAIL_SAFETY, "node %u: entry %llu is a malformed batch", n->id,
             (unsigned long long)e->index);
}

/* After a snapshot replaced the machine: answer writes it already covers. */
static void node_answer_covered_writes(struct sim *s, struct node *n) {
  for (uint32_t c = 0; c < s->n_clients; c++) {
    struct wait_write *w = &n->writes[c];
    uint64_t seq;
    struct kv_result r;
    if (w->active && kv_session(n->kv, c, &seq, &r) && seq == w->seq) {
      w->active = false;
      node_reply_ok(s, n, c, seq, w->attempt, KV_NIL, r.swapped);
    }
  }
}

static void node_note_read(struct sim *s, struct node *n,
                           const struct sabha_read_state *rs) {
  uint64_t client = rs->request_id >> 32;
  uint64_t seq_low = rs->request_id & 0xffffffffu;
  if (client >= s->n_clients)
    return;
  struct wait_read *w = &n->reads[client];
  if (!w->active || (w->seq & 0xffffffffu) != seq_low)
    return;
  w->has_index = true;
  w->index = rs->index;
}

static void node_serve_reads(struct sim *s, struct node *n) {
  if (n->n_reads_waiting == 0)
    return;
  for (uint32_t c = 0; c < s->n_clients; c++) {
    struct wait_read *w = &n->reads[c];
    if (!w->active || !w->has_index || w->index > n->applied)
      continue;
    w->active = false;
    n->n_reads_waiting--;
    node_reply_ok(s, n, c, w->seq, w->attempt, kv_get(n->kv, w->key), 0);
  }
}

/* Snapshots the KV machine when the log grew compact_entries past the last
 * snapshot, so that followers that fall behind catch up by InstallSnapshot
 * (sim_setup() sizes compact_entries and the chunk size). */
static void node_maybe_compact(struct sim *s, struct node *n) {
  struct sabha_status st;
  sabha_engine_status(n->e, &st);
  if (n->applied <= st.snapshot_index + s->o.compact_entries)
    return;
  struct sabha_entry ent;
  if (sabha_engine_entry(n->e, n->applied, &ent) != 0)
    return;
  uint64_t term = ent.term;
  size_t size = s->wl != NULL
                    ? workload_snapshot(s, n)
                    : kv_snapshot(n->kv, s->snap_buf, s->snap_buf_size);
  if (sabha_engine_compact(n->e, n->applied, s->snap_buf, size) != 0)
    return;
  struct sabha_snapshot_meta meta = {.index = n->applied, .term = term};
  disk_store_snapshot(&n->disk, meta, s->snap_buf, size);
  s->res->snapshots_taken++;
}

/* ---- the ready cycle ----------------------------------------------------- */

/* Replaces the KV machine with a snapshot's state. Index 0 with no bytes is
 * the empty machine: the async baseline rolls back to it when it must undo
 * applied entries before it has a snapshot of its own. */
static int node_restore(struct sim *s, struct node *n,
                        struct sabha_snapshot_meta meta, const uint8_t *data,
                        size_t size) {
  if (meta.index == 0 && size == 0) {
    kv_reset(n->kv);
    workload_node_reset(s, n);
    return 0;
  }
  if (s->wl != NULL)
    return workload_restore(s, n, data, size);
  return kv_restore(n->kv, data, size);
}

/* Steps 3-6 of the ready contract, once the batch is durable (or, under the
 * ack-before-fsync bug, at once). */
static void node_finish_ready(struct sim *s, struct node *n) {
  struct sabha_ready *rd = &n->rd;
  for (size_t k = 0; k < rd->n_msgs_after_persist; k++)
    net_send_peer(s, &rd->msgs_after_persist[k]);
  if (rd->has_snapshot) {
    if (node_restore(s, n, rd->snapshot, rd->snapshot_data,
                     rd->snapshot_size_bytes) != 0)
      sim_fail(s, FAIL_SAFETY, "node %u: snapshot at %llu does not restore",
               n->id, (unsigned long long)rd->snapshot.index);
    n->applied = rd->snapshot.index;
    s->res->snapshots_installed++;
    node_answer_covered_writes(s, n);
  }
  for (size_t k = 0; k < rd->n_committed && !s->stop; k++)
    node_apply(s, n, &rd->committed[k]);
  for (size_t k = 0; k < rd->n_reads; k++)
    node_note_read(s, n, &rd->reads[k]);
  sabha_engine_advance(n->e, rd);
  n->blocked = false;
  node_serve_reads(s, n);
  node_maybe_compact(s, n);
}

static void node_ready(struct sim *s, struct node *n) {
  struct sabha_ready *rd = &n->rd;
  sabha_engine_ready(n->e, rd);
  for (size_t k = 0; k < rd->n_msgs; k++)
    net_send_peer(s, &rd->msgs[k]);
  size_t records = disk_write_ready(&n->disk, rd);
  if (n->disk.violations > 0) {
    sim_fail(s, FAIL_SAFETY, "engine contract: node %u persisted %s", n->id,
             n->disk.violation);
    return;
  }
  if (records == 0) {
    node_finish_ready(s, n);
    return;
  }
  if (s->o.host_bugs & SIM_HOST_BUG_ACK_BEFORE_FSYNC) {
    if (!n->flush_scheduled) {
      struct sim_event *ev = ev_new(s, EV_FLUSH, n->id - 1);
      ev->gen = n->gen;
      sim_at(s,
             s->now_us + prng_range(&s->prng_disk, FLUSH_US_MIN, FLUSH_US_MAX),
             ev);
      n->flush_scheduled = true;
    }
    node_finish_ready(s, n);
    return;
  }
  n->blocked = true;
  struct sim_event *ev = ev_new(s, EV_FSYNC_DONE, n->id - 1);
  ev->gen = n->gen;
  uint64_t fsync_us = prng_range(&s->prng_disk, FSYNC_US_MIN, FSYNC_US_MAX);
  sim_at(s, s->now_us + fsync_us * n->fsync_factor, ev);
}

/* After every engine call: check, then carry out the batches it produced. */
static void node_after_call(struct sim *s, struct node *n) {
  for (int k = 0; k < READIES_PER_CALL_MAX; k++) {
    check_status(s, n->id - 1);
    if (!n->up || n->blocked || s->stop || !sabha_engine_has_ready(n->e))
      return;
    node_ready(s, n);
  }
}

/* ---- inputs -------------------------------------------------------------- */

static bool node_can_run(const struct sim *s, const struct node *n) {
  return n->up && !n->blocked && s->now_us >= n->busy_until_us;
}

static void node_ensure_wake(struct sim *s, struct node *n) {
  if (!n->up || n->blocked || n->wake_scheduled ||
      n->busy_until_us <= s->now_us || (n->inbox_n == 0 && !n->tick_pending))
    return;
  struct sim_event *ev = ev_new(s, EV_WAKE, n->id - 1);
  ev->gen = n->gen;
  sim_at(s, n->busy_until_us, ev);
  n->wake_scheduled = true;
}

static void node_tick(struct sim *s, struct node *n) {
  uint64_t now_ms = node_local_us(s, n) / 1000u;
  if (now_ms < n->last_tick_ms)
    now_ms = n->last_tick_ms;
  n->last_tick_ms = now_ms;
  sabha_engine_tick(n->e, now_ms);
  node_after_call(s, n);
}

/* An application command: stamped with this node's clock (skewed by the
 * clock fault: lock expiry runs on the proposers' clocks) and proposed
 * again on every retry; the machine's dedup makes that safe. */
static void node_app_request(struct sim *s, struct node *n, uint32_t client,
                             const struct client_msg *req) {
  uint8_t buf[SIM_APP_CMD_BYTES_MAX];
  size_t size = workload_command(s, req->op_id, node_local_us(s, n) / 1000u,
                                 buf, sizeof buf);
  if (size == 0)
    return;
  int rv = sabha_engine_propose(n->e, buf, size);
  if (rv != 0) {
    node_refuse(s, n, client, req, rv);
    return;
  }
  n->writes[client] = (struct wait_write){
      .active = true, .seq = req->seq, .attempt = req->attempt};
}

static void node_client_request(struct sim *s, struct node *n, uint32_t client,
                                const struct client_msg *req) {
  if (client >= s->n_clients)
    return;
  if (req->kind == SIM_HIST_APP) {
    node_app_request(s, n, client, req);
    return;
  }
  if (req->kind == HIST_GET && (s->o.host_bugs & SIM_HOST_BUG_STALE_READ)) {
    node_reply_ok(s, n, client, req->seq, req->attempt, kv_get(n->kv, req->key),
                  0);
    return;
  }
  if (req->kind == HIST_GET) {
    uint64_t id = ((uint64_t)client << 32) | (req->seq & 0xffffffffu);
    int rv = sabha_engine_read_index(n->e, id);
    if (rv != 0) {
      node_refuse(s, n, client, req, rv);
      return;
    }
    struct wait_read *w = &n->reads[client];
    if (!w->active)
      n->n_reads_waiting++;
    *w = (struct wait_read){.active = true,
                            .seq = req->seq,
                            .attempt = req->attempt,
                            .key = req->key};
    return;
  }
  /* A retry of a write this node already applied: the saved answer. (The
   * quiesce barrier, seq 0, is never answered: the run watches for it.) */
  uint64_t seq;
  struct kv_result r;
  if (req->seq != 0 && kv_session(n->kv, client, &seq, &r) && seq >= req->seq) {
    if (seq == req->seq)
      node_reply_ok(s, n, client, seq, req->attempt, KV_NIL, r.swapped);
    return;
  }
  struct kv_cmd cmd = {.kind = req->kind == HIST_CAS ? KV_CMD_CAS : KV_CMD_PUT,
                       .client = client,
                       .seq = req->seq,
                       .op_id = req->op_id,
                       .key = req->key,
                       .value = req->value,
                       .expected =
                           req->kind == HIST_CAS ? req->expected : KV_NIL};
  uint8_t buf[KV_CMD_SIZE_BYTES];
  kv_cmd_encode(&cmd, buf);
  int rv = sabha_engine_propose(n->e, buf, sizeof buf);
  if (rv != 0) {
    node_refuse(s, n, client, req, rv);
    return;
  }
  if (req->seq != 0)
    n->writes[client] = (struct wait_write){
        .active = true, .seq = req->seq, .attempt = req->attempt};
}

/* Processes one message or request; the node must be able to run. */
static void node_input(struct sim *s, struct node *n, struct sim_event *ev) {
  assert(node_can_run(s, n));
  uint64_t entries = 1; /* a client request carries one command */
  if (ev->kind == EV_PEER_MSG) {
    entries = ev->u.pkt->msg.n_entries;
    sabha_engine_step(n->e, &ev->u.pkt->msg);
    packet_free(ev->u.pkt);
  } else {
    assert(ev->kind == EV_CLIENT_REQ);
    node_client_request(s, n, ev->aux, &ev->u.cm);
  }
  ev_free(s, ev);
  if (n->slow_delay_us > 0 || n->slow_entry_us > 0)
    n->busy_until_us =
        s->now_us + n->slow_delay_us + entries * n->slow_entry_us;
  node_after_call(s, n);
}

/* A tick came due while the node could not run (or had a backlog). It
 * jumps the queue unless the node has late timers: then it takes its place
 * behind the inputs already queued (a later tick merges into it). */
static void node_tick_defer(struct sim *s, struct node *n) {
  if (!n->tick_pending)
    n->tick_behind = n->late_timers ? n->inbox_n : 0;
  n->tick_pending = true;
  assert(n->tick_behind <= n->inbox_n);
  node_ensure_wake(s, n);
}

/* Works through pending ticks and the inbox while the node can run. */
static void node_pump(struct sim *s, struct node *n) {
  for (uint32_t k = 0; k < NODE_INBOX_MAX + 2 && node_can_run(s, n); k++) {
    if (n->tick_pending &&
        (!n->late_timers || n->tick_behind == 0 || n->inbox_n == 0)) {
      n->tick_pending = false;
      n->tick_behind = 0;
      node_tick(s, n);
      continue;
    }
    if (n->inbox_n == 0)
      break;
    struct sim_event *ev = n->inbox[n->inbox_head];
    n->inbox_head = (n->inbox_head + 1) % NODE_INBOX_MAX;
    n->inbox_n--;
    if (n->tick_pending && n->tick_behind > 0)
      n->tick_behind--;
    node_input(s, n, ev);
  }
  node_ensure_wake(s, n);
}

static void node_arrive(struct sim *s, struct node *n, struct sim_event *ev) {
  if (ev->kind == EV_PEER_MSG) {
    struct link *l = &s->links[ev->u.pkt->msg.from - 1][n->id - 1];
    assert(l->in_flight > 0);
    l->in_flight--;
  }
  bool dropped = !n->up || n->inbox_n == NODE_INBOX_MAX ||
                 (ev->kind == EV_PEER_MSG &&
                  !net_reachable(s, ev->u.pkt->msg.from - 1, n->id - 1));
  if (dropped) {
    if (ev->kind == EV_PEER_MSG) {
      packet_free(ev->u.pkt);
      s->res->msgs_dropped++;
    }
    ev_free(s, ev);
    return;
  }
  if (node_can_run(s, n) && n->inbox_n == 0 && !n->tick_pending) {
    node_input(s, n, ev);
    node_pump(s, n);
    return;
  }
  n->inbox[(n->inbox_head + n->inbox_n) % NODE_INBOX_MAX] = ev;
  n->inbox_n++;
  node_ensure_wake(s, n);
}

/* ---- crash and restart --------------------------------------------------- */

void node_crash(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  if (!n->up)
    return;
  n->up = false;
  n->crashed_by_nemesis = false; /* crash_one() sets it for its crashes */
  n->gen++; /* every tick, wake, fsync and flush in flight is now stale */
  node_count_engine(s, n);
  sabha_engine_free(n->e);
  n->e = NULL;
  inbox_clear(s, n);
  n->blocked = n->tick_pending = n->wake_scheduled = false;
  n->tick_behind = 0;
  n->flush_scheduled = false;
  n->busy_until_us = 0;
  memset(n->writes, 0, s->n_clients * sizeof *n->writes);
  memset(n->reads, 0, s->n_clients * sizeof *n->reads);
  n->n_reads_waiting = 0;
  /* The unsynced tail: any prefix of it may have reached the platter. */
  size_t survive = (size_t)prng_range(&s->prng_disk, 0, n->disk.n_pending);
  disk_crash(&n->disk, survive);
  n->last_role = SABHA_ROLE_FOLLOWER;
  n->last_term = 0;
  n->commit_seen = 0;
  s->res->crashes++;
}

/* The lab's engine settings (sim.h): only those it set replace the
 * engine's defaults. */
static void node_config_overrides(const struct sim_options *o,
                                  struct sabha_config *cfg) {
  if (o->election_timeout_ms_min > 0)
    cfg->election_timeout_ms_min = o->election_timeout_ms_min;
  if (o->election_timeout_ms_max > 0)
    cfg->election_timeout_ms_max = o->election_timeout_ms_max;
  if (cfg->election_timeout_ms_max < cfg->election_timeout_ms_min)
    cfg->election_timeout_ms_max = cfg->election_timeout_ms_min;
  if (o->heartbeat_ms > 0)
    cfg->heartbeat_ms = o->heartbeat_ms;
  if (o->commands_per_slot_max > 0)
    cfg->commands_per_slot_max = o->commands_per_slot_max;
  if (o->pre_vote != SIM_SWITCH_DEFAULT)
    cfg->pre_vote = o->pre_vote == SIM_SWITCH_ON;
  if (o->check_quorum != SIM_SWITCH_DEFAULT)
    cfg->check_quorum = o->check_quorum == SIM_SWITCH_ON;
}

void node_start(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  assert(!n->up);
  kv_reset(n->kv);
  workload_node_reset(s, n);
  n->applied = 0;
  struct sabha_persisted p;
  bool has_disk = disk_persisted(&n->disk, &p);
  if (has_disk && p.has_snapshot) {
    if (node_restore(s, n, p.snapshot, p.snapshot_data,
                     p.snapshot_size_bytes) != 0) {
      sim_fail(s, FAIL_SAFETY, "node %u: its snapshot does not restore", n->id);
      return;
    }
    n->applied = p.snapshot.index;
  }
  uint32_t voters[SABHA_NODES_MAX];
  for (uint32_t k = 0; k < s->n_nodes; k++)
    voters[k] = k + 1;
  struct sabha_config cfg;
  sabha_config_init(&cfg, n->id, voters, s->n_nodes);
  cfg.seed = sim_mix(sim_mix(s->o.seed, n->id), n->restarts);
  cfg.bugs = s->o.engine_bugs;
  cfg.snapshot_chunk_bytes = s->o.snapshot_chunk_bytes;
  cfg.entries_per_msg_max = s->o.entries_per_msg_max;
  cfg.inflight_msgs_max = s->o.inflight_msgs_max;
  cfg.proposer_backoff = s->o.proposer_backoff;
  node_config_overrides(&s->o, &cfg);
  int rv = sabha_engine_new(&n->e, s->o.protocol, &cfg, has_disk ? &p : NULL);
  if (rv != 0) {
    n->e = NULL;
    sim_fail(s, FAIL_SAFETY,
             "node %u: the engine refused to start from its "
             "disk: %s",
             n->id, sabha_strerror(rv));
    return;
  }
  n->restarts++;
  n->up = true;
  n->busy_until_us = s->now_us;
  struct sim_event *ev = ev_new(s, EV_TICK, i);
  ev->gen = n->gen;
  sim_at(s, node_next_tick_us(s, n), ev);
  check_status(s, i);
}

/* ---- events -------------------------------------------------------------- */

static void node_on_tick(struct sim *s, struct node *n, struct sim_event *ev) {
  if (!n->up || ev->gen != n->gen) {
    ev_free(s, ev);
    return;
  }
  sim_at(s, node_next_tick_us(s, n), ev); /* the same event, reused */
  if (node_can_run(s, n) && (!n->late_timers || n->inbox_n == 0)) {
    node_tick(s, n);
    node_pump(s, n);
  } else if (node_can_run(s, n)) { /* late timers: the backlog goes first */
    node_tick_defer(s, n);
    node_pump(s, n);
  } else {
    node_tick_defer(s, n);
  }
}

static void node_on_fsync_done(struct sim *s, struct node *n) {
  assert(n->blocked);
  disk_sync(&n->disk);
  s->res->fsyncs++;
  node_finish_ready(s, n);
  check_persisted(s, n->id - 1);
  node_after_call(s, n);
  node_pump(s, n);
}

void node_on_event(struct sim *s, struct sim_event *ev) {
  struct node *n = &s->nodes[ev->target];
  switch (ev->kind) {
  case EV_TICK:
    node_on_tick(s, n, ev);
    return;
  case EV_PEER_MSG:
  case EV_CLIENT_REQ:
    node_arrive(s, n, ev);
    return;
  default:
    break;
  }
  bool current = n->up && ev->gen == n->gen;
  uint32_t kind = ev->kind;
  ev_free(s, ev);
  if (!current)
    return;
  switch (kind) {
  case EV_WAKE:
    n->wake_scheduled = false;
    node_pump(s, n);
    break;
  case EV_FSYNC_DONE:
    node_on_fsync_done(s, n);
    break;
  case EV_FLUSH:
    n->flush_scheduled = false;
    disk_sync(&n->disk);
    s->res->fsyncs++;
    break;
  default:
    assert(0 && "not a node event");
  }
}
