/* A simulated node: the node runtime that sabhad runs (src/node/runtime.h),
 * hosted in virtual time.
 *
 * What sabhad's host does with libuv, POSIX files and TCP, this file does
 * with events, the in-memory file system and simulated links, and nothing
 * else: every decision (ready batches, sessions, reads, forwarding,
 * snapshots, the WAL's recovery) is the runtime's own code.
 *
 *   time     two clocks per node: a monotonic one (ticks, timeouts) that runs
 *            at the node's rate from a random start, and a wall clock (the
 *            stamps on commands) that follows it from a common epoch plus a
 *            small offset, which the clock fault can step, back too;
 *   inputs   peer messages and connection events wait in an inbox and are
 *            handed to the runtime one at a time; a slow node spends time
 *            on each; after the inputs, rt_run();
 *   fsync    takes 1-3 ms (longer on a slow disk). When the runtime asks
 *            to sync later (ports.sync_later) it goes on, as sabhad's loop
 *            goes on while its disk thread syncs: inputs arrive and new
 *            batches are written behind the fsync. Its data reaches the
 *            disk at its start or at its end, as the seed says (a real
 *            fdatasync may or may not take the pages written while it
 *            runs); a crash before the end loses every batch not yet
 *            synced, several of them when the node was busy. When the
 *            runtime syncs on the loop instead (rt_config.fsync), the data
 *            is on the disk at once and the node then takes no input for
 *            the fsync's time, as sabhad's blocked loop takes none (the
 *            messages the fsync released have left already: a small
 *            head start);
 *   disk     memfs under the real WAL: a crash keeps what was synced and
 *            drops, tears, garbles or punches holes in the rest; the disk
 *            fault fails a write or an fsync (the runtime gives up and the
 *            node restarts, as sabhad exits and is restarted), or flips a
 *            bit of synced data on a node that is down, which the WAL must
 *            then refuse to start on (counted; the block is then repaired,
 *            as from a mirror) or show no trace of;
 *   crashes  the runtime is dropped without a sync (rt_close_crash); a
 *            clean stop closes it (rt_close) first.
 *
 * A node never crashes inside a runtime call: a crash asked for then (by a
 * strike at a leader seen before its first batch) waits until the call
 * returns, and the runtime stops before the batch (ports.before_ready). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "sim/sim_internal.h"
#include "sim/workload.h"
#include "sm/app.h"
#include "sm/kvstore.h"

#define FSYNC_US_MIN 1000u
#define FSYNC_US_MAX 3000u
#define FLUSH_US_MIN 5000u /* ack-before-fsync: background flush delay */
#define FLUSH_US_MAX 30000u
#define WALL_EPOCH_MS 1700000000000ull
#define WALL_OFFSET_US_MAX 1000000u /* clocks up to 2 s apart */
#define FLIPS_MAX 8u
#define DATA_DIR "data"

/* ---- the clock ------------------------------------------------------------
 */

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

void node_step_wall(struct sim *s, uint32_t i, int64_t delta_ms) {
  s->nodes[i].wall_offset_us += delta_ms * 1000;
}

/* ---- the runtime's ports --------------------------------------------------
 */

static struct node *port_node(void *ctx) {
  struct node_port *p = ctx;
  return &p->s->nodes[p->i];
}

static uint64_t port_now_ms(void *ctx) {
  struct node_port *p = ctx;
  return node_local_us(p->s, port_node(ctx)) / 1000u;
}

static uint64_t node_wall_us(const struct sim *s, const struct node *n) {
  /* The monotonic clock's progress since its random start, from a common
   * epoch, plus the node's offset. A clock behind the epoch reads the epoch
   * itself, as machines without a battery-backed clock boot at the same
   * default time until they are set: then several nodes stamp their
   * commands with the same milliseconds, which nothing may rely on them
   * not to do. */
  int64_t us = (int64_t)(node_local_us(s, n) - n->clock_start_local_us) +
               n->wall_offset_us;
  return WALL_EPOCH_MS * 1000u + (uint64_t)(us > 0 ? us : 0);
}

static uint64_t port_wall_ms(void *ctx) {
  struct node_port *p = ctx;
  return node_wall_us(p->s, port_node(ctx)) / 1000u;
}

static uint64_t port_mono_us(void *ctx) {
  struct node_port *p = ctx;
  return node_local_us(p->s, port_node(ctx));
}

static void port_send(void *ctx, const struct sabha_msg *m) {
  struct node_port *p = ctx;
  if (m->from != p->i + 1) {
    sim_fail(p->s, FAIL_SAFETY,
             "engine contract: node %u sent a message as node %u", p->i + 1,
             m->from);
    return;
  }
  net_send_peer(p->s, m);
}

static uint32_t conn_id_of(const struct rt_stream *st) {
  return (uint32_t)((uintptr_t)rt_stream_host(st) - 1);
}

static void mark_out_due(struct node *n, struct conn *cn, uint32_t id) {
  if (cn->out_due)
    return;
  cn->out_due = true;
  if (n->n_out_due == n->cap_out_due) {
    n->cap_out_due = n->cap_out_due == 0 ? 16 : n->cap_out_due * 2;
    n->out_due = sim_xrealloc(n->out_due, n->cap_out_due * sizeof *n->out_due);
  }
  n->out_due[n->n_out_due++] = id;
}

static void port_stream_output(void *ctx, struct rt_stream *st) {
  struct node_port *p = ctx;
  uint32_t id = conn_id_of(st);
  mark_out_due(port_node(ctx), &p->s->conns[id], id);
}

static void port_stream_pause(void *ctx, struct rt_stream *st, bool paused) {
  /* Not modelled: the runtime holds what arrives while it would not read,
   * and the simulated clients keep little in flight. */
  (void)ctx;
  (void)st;
  (void)paused;
}

static void port_stream_close(void *ctx, struct rt_stream *st, bool flush) {
  struct node_port *p = ctx;
  uint32_t id = conn_id_of(st);
  struct conn *cn = &p->s->conns[id];
  if (st == cn->server)
    cn->server_closing = true;
  else
    cn->fwd_closing = true;
  cn->close_flush = flush;
  mark_out_due(port_node(ctx), cn, id);
}

static int port_stream_connect(void *ctx, struct rt_stream *st, uint32_t node) {
  struct node_port *p = ctx;
  if (node == SABHA_NODE_NONE || node > p->s->n_nodes || node == p->i + 1)
    return -1;
  conn_open_forward(p->s, p->i, st, node - 1);
  return 0;
}

/* How long an fsync of group p->g's log takes on this node's disk now. */
static uint64_t fsync_us(struct sim *s, const struct node_port *p) {
  struct node *n = &s->nodes[p->i];
  bool bug = (s->o.host_bugs & SIM_HOST_BUG_ACK_BEFORE_FSYNC) != 0;
  uint64_t us = bug ? prng_range(&s->prng_disk, FLUSH_US_MIN, FLUSH_US_MAX)
                    : prng_range(&s->prng_disk, FSYNC_US_MIN, FSYNC_US_MAX) *
                          n->fsync_factor;
  if (p->g == 0) /* the leader-aimed faults aim at group 0 */
    us += nemesis_fsync_stall_us(s, p->i);
  return us;
}

static bool port_sync_later(void *ctx) {
  struct node_port *p = ctx;
  struct sim *s = p->s;
  struct node *n = port_node(ctx);
  struct node_group *ng = &n->grp[p->g];
  assert(!ng->fsync_scheduled); /* the runtime runs one at a time */
  uint64_t us = fsync_us(s, p);
  ng->fsync_later = true;
  struct sim_event *ev = ev_new(s, EV_FSYNC_DONE, p->i);
  ev->gen = n->gen;
  ev->aux = p->g;
  sim_at(s, s->now_us + us, ev);
  ng->fsync_scheduled = true;
  /* rt_sync_work touches only the fsync's job: it may run here. */
  ng->fsync_synced = prng_below(&s->prng_disk, 2) == 0;
  if (ng->fsync_synced)
    rt_sync_work(ng->rt);
  return true;
}

/* A snapshot's write and fsync, off the loop as in sabhad: it takes 5 to
 * 50 ms (longer than an fsync of the log, as writing a whole state does),
 * so appends, fsyncs, a leader's snapshot and crashes fall inside it. */
#define SNAP_WRITE_US_MIN 5000u
#define SNAP_WRITE_US_MAX 50000u

static bool port_snapshot_later(void *ctx) {
  struct node_port *p = ctx;
  struct sim *s = p->s;
  struct node *n = port_node(ctx);
  struct node_group *ng = &n->grp[p->g];
  assert(!ng->snap_scheduled); /* the runtime writes one at a time */
  struct sim_event *ev = ev_new(s, EV_SNAP_DONE, p->i);
  ev->gen = n->gen;
  ev->aux = p->g;
  sim_at(s,
         s->now_us +
             prng_range(&s->prng_disk, SNAP_WRITE_US_MIN, SNAP_WRITE_US_MAX),
         ev);
  ng->snap_scheduled = true;
  /* rt_snapshot_work touches only its job: the file may be on the disk
   * from the start, or only at the end. */
  ng->snap_written = prng_below(&s->prng_disk, 2) == 0;
  if (ng->snap_written)
    rt_snapshot_work(ng->rt);
  return true;
}

static void port_kick(void *ctx) {
  (void)ctx; /* the host runs rt_run after every input anyway */
}

static void port_fatal(void *ctx, enum rt_fatal kind, const char *why) {
  struct node *n = port_node(ctx);
  n->fatal = true;
  n->fatal_kind = kind;
  snprintf(n->fatal_why, sizeof n->fatal_why, "%s", why);
}

static void port_log(void *ctx, enum rt_log_level level, const char *text) {
  struct node_port *p = ctx;
  if (p->s->trace != NULL && level >= RT_LOG_INFO)
    trace_line(p->s, p->i + 1, "log %s", text);
}

static bool port_before_ready(void *ctx) {
  struct node_port *p = ctx;
  check_status_group(p->s, p->i, p->g);
  return !port_node(ctx)->crash_due && !p->s->stop;
}

static void port_synced(void *ctx) {
  struct node_port *p = ctx;
  struct node *n = port_node(ctx);
  struct node_group *ng = &n->grp[p->g];
  p->s->res->fsyncs++;
  if (ng->fsync_later) {
    ng->fsync_later = false;
  } else { /* on the loop: the node waited for it */
    p->s->res->fsyncs_loop++;
    uint64_t until = p->s->now_us + fsync_us(p->s, p);
    if (until > n->busy_until_us)
      n->busy_until_us = until;
  }
}

static void port_written(void *ctx) {
  struct node_port *p = ctx;
  check_persisted(p->s, p->i, p->g);
}

static void port_entry_applied(void *ctx, const struct sabha_entry *e) {
  struct node_port *p = ctx;
  check_apply(p->s, p->i, p->g, e);
}

static void port_command_applied(void *ctx, uint64_t index, uint32_t pos,
                                 const uint8_t *cmd, size_t len,
                                 const struct rt_applied *res) {
  struct node_port *p = ctx;
  sim_observe_command(p->s, port_node(ctx), p->g, index, pos, cmd, len, res);
}

static void port_snapshot_installed(void *ctx, uint64_t index) {
  struct node_port *p = ctx;
  p->s->res->snapshots_installed++;
  if (p->s->trace != NULL)
    trace_line(p->s, p->i + 1, "installs a snapshot at %" PRIu64, index);
  /* The nemesis's episodes follow group 0, the front. */
  if (p->g == 0)
    nemesis_on_snapshot_installed(p->s, p->i);
}

static const struct rt_ports sim_ports = {
    .now_ms = port_now_ms,
    .wall_ms = port_wall_ms,
    .mono_us = port_mono_us,
    .send = port_send,
    .stream_output = port_stream_output,
    .stream_pause = port_stream_pause,
    .stream_close = port_stream_close,
    .stream_connect = port_stream_connect,
    .sync_later = port_sync_later,
    .snapshot_later = port_snapshot_later,
    .kick = port_kick,
    .fatal = port_fatal,
    .log = port_log,
    .before_ready = port_before_ready,
    .synced = port_synced,
    .written = port_written,
    .entry_applied = port_entry_applied,
    .command_applied = port_command_applied,
    .snapshot_installed = port_snapshot_installed,
};

/* ---- calls into the runtime ------------------------------------------------
 */

static void call_begin(struct sim *s, struct node *n) {
  assert(!n->in_call && n->up);
  n->in_call = true;
  s->active_node = (int)(n->id - 1);
}

/* Moves the output of streams the runtime wrote to, and closes those it is
 * done with. */
static void move_output(struct sim *s, struct node *n) {
  for (uint32_t k = 0; k < n->n_out_due; k++) {
    uint32_t id = n->out_due[k];
    struct conn *cn = &s->conns[id];
    cn->out_due = false;
    if (cn->gen == 0)
      continue;
    bool at_server = cn->server != NULL && cn->node == n->id - 1;
    struct rt_stream *st = at_server ? cn->server : cn->fwd;
    if (st == NULL)
      continue;
    bool closing = at_server ? cn->server_closing : cn->fwd_closing;
    const uint8_t *data;
    size_t len;
    while ((!closing || cn->close_flush) &&
           rt_stream_out_take(st, &data, &len)) {
      conn_send(s, id, !at_server, data, len);
      rt_stream_out_done(st); /* may list the stream again */
    }
    if (closing) {
      if (at_server)
        cn->server = NULL;
      else
        cn->fwd = NULL;
      rt_stream_free(st);
      conn_close_end(s, id, at_server);
    }
    conn_maybe_free(s, id);
  }
  n->n_out_due = 0;
}

static void node_crash_now(struct sim *s, struct node *n);

void node_after_runtime(struct sim *s, struct node *n) {
  for (int k = 0; k < 8 && n->n_out_due > 0 && n->rt != NULL; k++)
    move_output(s, n);
  n->in_call = false;
  s->active_node = -1;
  if (n->fatal) {
    s->res->node_fatals++;
    if (n->fatal_kind == RT_FATAL_DISK)
      s->res->disk_faults++;
    if (s->trace != NULL)
      trace_line(s, n->id, "stops: %s", n->fatal_why);
    if (n->fatal_kind == RT_FATAL_CONTRACT)
      sim_fail(s, FAIL_SAFETY, "node %u gave up: %s", n->id, n->fatal_why);
    /* The process exits; a supervisor restarts it (the nemesis's restart
     * event, or at once). */
    node_crash_now(s, n);
    struct sim_event *ev = ev_new(s, EV_RESTART, n->id - 1);
    ev->gen = n->gen;
    ev->aux = RESTART_SUPERVISOR;
    sim_at(s, s->now_us + prng_range(&s->prng_nemesis, 10000, 200000), ev);
    return;
  }
  if (n->crash_due)
    node_crash_now(s, n);
}

/* Rounds of running the groups and moving their in-process links' bytes
 * per pass, as sabhad's loop does per iteration: enough to carry a command
 * to its group and its reply back. What is left waits for the next tick. */
#define GROUP_ROUNDS 4

/* Runs every group, then moves what their in-process links wrote
 * (groups.c), a few rounds. */
static void run_groups(struct sim *s, struct node *n) {
  bool more = true;
  for (uint32_t round = 0; round < GROUP_ROUNDS && more && !n->fatal; round++) {
    more = false;
    for (uint32_t g = 0; g < s->n_groups && !n->fatal; g++)
      more |= rt_run(n->grp[g].rt);
    for (uint32_t g = 0; g < s->n_groups && !n->fatal; g++)
      more |= rt_groups_pump(n->grp[g].rt);
  }
}

/* rt_run and what follows it; returns false when the node went down. */
static bool run(struct sim *s, struct node *n) {
  if (!n->up)
    return false;
  if (s->n_groups > 1) {
    call_begin(s, n);
    run_groups(s, n);
    node_after_runtime(s, n);
    if (n->up)
      check_status(s, n->id - 1);
    return n->up;
  }
  call_begin(s, n);
  rt_run(n->rt);
  node_after_runtime(s, n);
  if (n->up)
    check_status(s, n->id - 1);
  return n->up;
}

/* ---- lifecycle --------------------------------------------------------------
 */

void node_init(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  memset(n, 0, sizeof *n);
  n->id = i + 1;
  for (uint32_t g = 0; g < RT_GROUPS_MAX; g++)
    n->grp[g].port = (struct node_port){.s = s, .i = i, .g = g};
  if (memfs_new(&n->fs, sim_mix(s->o.seed, 0xd15c0000u + i)) != 0) {
    fprintf(stderr, "sabha sim: cannot create a node's file system\n");
    abort();
  }
  memfs_io(n->fs, &n->io);
  /* Small segments, drawn per node, so that runs roll over to new segments
   * and delete old ones after snapshots. */
  static const uint32_t segment_choices[] = {256u << 10, 512u << 10, 2u << 20};
  n->wal_segment_bytes = segment_choices[prng_below(&s->prng_config, 3)];
  n->inbox_cap = NODE_INBOX_MAX;
  n->inbox = sim_xmalloc(n->inbox_cap * sizeof *n->inbox);
  n->clock_rate_ppm = 1000000u;
  /* Clocks start at different local times and ms phases, as real ones do;
   * wall clocks differ by up to two seconds, as without NTP. */
  n->clock_base_local_us = prng_below(&s->prng_node, 1000000000ull);
  n->clock_start_local_us = n->clock_base_local_us;
  n->wall_offset_us =
      (int64_t)prng_below(&s->prng_node, 2u * WALL_OFFSET_US_MAX + 1) -
      WALL_OFFSET_US_MAX;
  n->fsync_factor = 1;
}

/* Doubles the inbox ring, keeping its order. */
static void inbox_grow(struct node *n) {
  uint32_t cap = n->inbox_cap * 2;
  struct sim_event **v = sim_xmalloc(cap * sizeof *v);
  for (uint32_t k = 0; k < n->inbox_n; k++)
    v[k] = n->inbox[(n->inbox_head + k) % n->inbox_cap];
  free(n->inbox);
  n->inbox = v;
  n->inbox_cap = cap;
  n->inbox_head = 0;
}

static void inbox_clear(struct sim *s, struct node *n) {
  while (n->inbox_n > 0) {
    struct sim_event *ev = n->inbox[n->inbox_head];
    n->inbox_head = (n->inbox_head + 1) % n->inbox_cap;
    n->inbox_n--;
    if (ev->kind == EV_PEER_MSG)
      packet_free(ev->u.pkt);
    else if (ev->kind == EV_CONN_DATA)
      chunk_free(ev->u.c.chunk);
    ev_free(s, ev);
  }
  n->inbox_head = 0;
}

/* Adds what an engine incarnation counted to the run's totals, before the
 * engine goes away with its counters. */
static void node_count_engine(struct sim *s, struct node *n) {
  for (uint32_t g = 0; g < s->n_groups; g++) {
    struct rt *rt = n->grp[g].rt;
    if (rt == NULL)
      continue;
    struct sabha_status st;
    rt_status(rt, &st);
    s->res->phase1_rounds += st.elections_started;
    s->res->ballots_burned += st.ballots_burned;
    s->res->snapshots_taken += rt_metrics(rt)->snapshots_taken;
    s->res->clock_entries += rt_metrics(rt)->clock_entries;
    s->res->priority_transfers += rt_metrics(rt)->priority_transfers;
    struct rt_timing_info ti;
    rt_timing_info(rt, &ti);
    s->res->timing_changes += ti.changes;
  }
}

/* Drops every group's runtime without a sync (a crash), the front last:
 * the other groups' links to it go first. */
static void close_crash_all(struct sim *s, struct node *n) {
  for (uint32_t g = s->n_groups; g-- > 0;) {
    if (n->grp[g].rt != NULL)
      rt_close_crash(n->grp[g].rt);
    n->grp[g].rt = NULL;
  }
  n->rt = NULL;
}

/* Adaptive timing's figures (sim_result.timing_*): the election timeout
 * in force, after each tick. */
static void note_timing(struct sim *s, struct node *n) {
  if (s->o.timing != RT_TIMING_ADAPTIVE || n->rt == NULL)
    return;
  struct sabha_timing t;
  sabha_engine_timing(rt_engine(n->rt), &t);
  if (s->res->timing_election_ms_first == 0)
    s->res->timing_election_ms_first = t.election_timeout_ms_min;
  if (t.election_timeout_ms_min > s->res->timing_election_ms_peak)
    s->res->timing_election_ms_peak = t.election_timeout_ms_min;
}

void node_free(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  if (s->o.timing == RT_TIMING_ADAPTIVE && n->rt != NULL && n->up) {
    struct sabha_timing t;
    sabha_engine_timing(rt_engine(n->rt), &t);
    if (t.election_timeout_ms_min > s->res->timing_election_ms_end)
      s->res->timing_election_ms_end = t.election_timeout_ms_min;
  }
  node_count_engine(s, n);
  close_crash_all(s, n);
  inbox_clear(s, n);
  free(n->inbox);
  free(n->out_due);
  memfs_free(n->fs);
  memset(n, 0, sizeof *n);
}

uint32_t nodes_down(const struct sim *s) {
  uint32_t down = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    down += !s->nodes[i].up;
  return down;
}

/* The voters of the newest membership an up node knows (every node when
 * none is up): the nodes whose votes the cluster needs. */
static uint32_t current_voters(const struct sim *s, bool *voter) {
  struct sabha_membership best = {0};
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct node *n = &s->nodes[i];
    if (!n->up || n->rt == NULL)
      continue;
    struct sabha_membership m;
    sabha_engine_members(rt_engine(n->rt), &m);
    if (m.n > 0 && (best.n == 0 || m.index > best.index))
      best = m;
  }
  uint32_t k = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct sabha_member *x = sabha_membership_find(&best, i + 1);
    voter[i] = best.n == 0 ? true : x != NULL && x->role == SABHA_MEMBER_VOTER;
    k += voter[i];
  }
  return k;
}

uint32_t nodes_out(struct sim *s, bool damage, uint32_t *budget) {
  bool voter[SABHA_NODES_MAX];
  uint32_t n_voters = current_voters(s, voter);
  uint32_t out = 0;
  for (uint32_t k = 0; k < s->n_nodes; k++) {
    const struct node *n = &s->nodes[k];
    if (!voter[k])
      continue;
    if (damage) {
      /* A guard counts until the node starts again without one: the
       * engine lifts it in memory as soon as its commit index reaches
       * it, but the lift reaches the disk later (the hard state file
       * keeps the guard until it is written again), so a crash can bring
       * it back. Counting only guards in force in memory let a second node
       * of three be damaged while the first one's guard was still on its
       * disk: both restarted guarded, neither could promise, no quorum was
       * left (classic Paxos seed 249 of --nodes 3 --faults
       * partition,crash,disk). */
      out += n->n_flips > 0 || n->guarded;
    } else {
      struct sabha_status st = {.repair_until = 0};
      if (n->up && n->rt != NULL)
        rt_status(n->rt, &st);
      out += !n->up || st.repair_until != 0;
    }
  }
  *budget = n_voters > 0 ? (n_voters - 1) / 2 : 0;
  return out;
}

uint32_t nodes_out_room(struct sim *s, bool damage) {
  uint32_t budget;
  uint32_t out = nodes_out(s, damage, &budget);
  return out < budget ? budget - out : 0;
}

int node_group_leader(struct sim *s, uint32_t g) {
  int best = -1;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    const struct node_group *ng = &s->nodes[i].grp[g];
    if (s->nodes[i].up && ng->last_role == SABHA_ROLE_LEADER &&
        (best < 0 || ng->last_term > s->nodes[best].grp[g].last_term))
      best = (int)i;
  }
  return best;
}

int node_leader(struct sim *s) {
  return node_group_leader(s, 0);
}

void node_status(const struct node *n, struct sabha_status *st) {
  if (n->rt != NULL) {
    rt_status(n->rt, st);
    return;
  }
  memset(st, 0, sizeof *st);
  st->id = n->id;
}

/* Everything a crash takes: the runtime without a sync, the node's end of
 * every connection, the inbox, the unsynced part of the disk. A clean stop
 * (`clean`) closed the runtime first: nothing is unsynced then. */
static void node_down(struct sim *s, struct node *n, bool clean) {
  uint32_t i = n->id - 1;
  n->up = false;
  n->crash_due = false;
  n->fatal = false;
  n->crashed_by_nemesis = false; /* crash_one() sets it for its crashes */
  n->gen++; /* every tick, wake, fsync and flush in flight is now stale */
  if (n->restart_in_us != 0) { /* the nemesis asked for this crash */
    nemesis_arm_restart(s, i, n->restart_in_us);
    n->restart_in_us = 0;
  }
  inbox_clear(s, n);
  n->n_out_due = 0;
  n->tick_pending = n->wake_scheduled = false;
  n->flush_scheduled = false;
  n->tick_behind = 0;
  n->busy_until_us = 0;
  /* The unsynced tail: dropped, torn, garbled or holed, as the seed says. */
  memfs_crash(n->fs, (enum memfs_crash_mode)prng_below(&s->prng_disk,
                                                       MEMFS_CRASH_MODES));
  n->clean_stop = clean;
  for (uint32_t g = 0; g < s->n_groups; g++) {
    struct node_group *ng = &n->grp[g];
    ng->fsync_scheduled = false;
    ng->fsync_later = false;
    ng->snap_scheduled = false;
    ng->last_role = SABHA_ROLE_FOLLOWER;
    ng->last_term = 0;
    ng->commit_seen = 0;
  }
  s->res->crashes++;
  if (s->trace != NULL)
    trace_line(s, n->id, clean ? "stops cleanly" : "crashes");
  (void)i;
}

static void node_crash_now(struct sim *s, struct node *n) {
  if (!n->up)
    return;
  node_count_engine(s, n);
  conns_node_down(s, n->id - 1, false); /* rt_close_crash frees the streams */
  close_crash_all(s, n);
  node_down(s, n, false);
}

void node_crash(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  if (!n->up)
    return;
  if (n->in_call) {
    n->crash_due = true; /* after the runtime call returns */
    return;
  }
  node_crash_now(s, n);
}

void node_stop_clean(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  if (!n->up)
    return;
  if (n->in_call) {
    node_crash(s, i);
    return;
  }
  node_count_engine(s, n);
  n->in_call = true;
  int rc = 0;
  for (uint32_t g = s->n_groups; g-- > 0;) {
    rc |= rt_close(n->grp[g].rt); /* syncs; hands its streams over */
    n->grp[g].rt = NULL;
  }
  n->in_call = false;
  n->rt = NULL;
  conns_node_down(s, i, true); /* frees the streams it handed over */
  node_down(s, n, rc == 0);
}

/* ---- starting -------------------------------------------------------------
 */

/* Reads one byte of a file through the node's io (for the flip check). */
static bool read_byte(struct node *n, const char *path, uint64_t offset,
                      uint8_t *out) {
  int fd;
  if (n->io.open(n->io.ctx, path, 0, &fd) != 0)
    return false;
  size_t got = 0;
  int rc = n->io.read(n->io.ctx, fd, offset, out, 1, &got);
  n->io.close(n->io.ctx, fd);
  return rc == 0 && got == 1;
}

/* The flips the WAL started despite. A repair (the log cut at the first
 * damage, or given up) leaves none of them in the live log: each was at or
 * after the cut, or in the snapshot given up, or in the hard state file,
 * which a repair writes again. Without one, each flipped byte must be gone
 * (a cut torn tail) or its block of the hard state file rewritten; else it
 * was read as good data. */
static void check_flips(struct sim *s, struct node *n) {
  struct wal_stats ws;
  rt_wal_stats(n->rt, &ws);
  bool cut = ws.repaired || ws.discarded;
  if (cut || ws.hsf_repaired)
    s->res->disk_corruptions_detected++;
  if (cut) {
    s->res->disk_repairs++;
    if (s->trace != NULL)
      trace_line(s, n->id, "repairs its damaged log: guard at %llu",
                 (unsigned long long)ws.repair_until);
    return;
  }
  for (uint32_t k = 0; k < n->n_flips; k++) {
    const struct flip *f = &n->flips[k];
    if (strcmp(f->path, DATA_DIR "/hardstate") == 0) {
      if (ws.hsf_repaired)
        continue;
    } else {
      uint8_t b;
      if (!read_byte(n, f->path, f->offset, &b))
        continue; /* the file or the byte is gone */
    }
    sim_fail(s, FAIL_SAFETY,
             "storage: node %u started from a disk with a flipped bit in "
             "synced data (%s, byte %llu, mask 0x%02x) and did not notice",
             n->id, f->path, (unsigned long long)f->offset, f->mask);
    return;
  }
}

/* The block is repaired (as from a mirror): the flips are undone. */
static void undo_flips(struct node *n) {
  for (uint32_t k = n->n_flips; k-- > 0;)
    memfs_corrupt(n->fs, n->flips[k].path, n->flips[k].offset,
                  n->flips[k].mask);
}

/* Group g's settings from group 0's, as sabhad's: its own log directory
 * and seed, and, unless priorities were given, a preferred leader of its
 * own (group g prefers node g mod n + 1), so that the leaders spread. */
static void group_config(const struct sim *s, struct rt_config *cfg,
                         uint32_t g) {
  cfg->group = g;
  cfg->n_groups = s->n_groups;
  if (g > 0) {
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s/group-%u", DATA_DIR, g);
    cfg->engine.seed += g;
    cfg->tag_seed += g;
  }
  if (s->n_groups == 1 || cfg->engine.n_voters == 0)
    return;
  uint32_t preferred = s->o.group_leaders != NULL && s->o.group_leaders[g] != 0
                           ? s->o.group_leaders[g]
                           : cfg->engine.voters[g % cfg->engine.n_voters];
  if (s->o.priorities != NULL && s->o.group_leaders == NULL)
    return;
  for (uint32_t k = 1; k <= SABHA_NODES_MAX; k++)
    cfg->priority[k] =
        k == preferred ? RT_PRIORITY_DEFAULT + 1 : RT_PRIORITY_DEFAULT;
}

/* A restarted node may come back with other retry settings, as when an
 * operator changes them: the rules in force change only through the log
 * (the rules entry of a leader whose settings differ from them), so every
 * replica still applies one log alike, and the checkers compare their
 * machines, rules included. Members disagree for a while, which sabhad's
 * handshake would refuse; here it makes leaders change the rules back and
 * forth under every fault. dedup_max only grows: the end checks rely on
 * every id of the run staying known. */
static void restart_settings(const struct sim *s, const struct node *n,
                             struct rt_config *cfg) {
  static const uint32_t windows_ms[] = {APP_DEDUP_WINDOW_MS_DEFAULT, 0, 60000};
  if (n->restarts == 0)
    return;
  uint64_t pick = sim_mix(sim_mix(s->o.seed, n->id), 0x72000 + n->restarts);
  cfg->dedup_max += (uint32_t)(pick % 3) * 32u;
  cfg->dedup_window_ms = windows_ms[(pick / 3) % 3];
}

static int open_group(struct sim *s, struct node *n, uint32_t g, char *err,
                      size_t err_size) {
  struct rt_config cfg = s->rt_cfg;
  cfg.engine.id = n->id;
  if (n->joined) {
    /* A node added to a running group knows nobody until a leader's log
     * or snapshot tells it (sabhad: sabha cluster add). */
    cfg.engine.join = true;
    cfg.engine.n_voters = 0;
  }
  cfg.engine.seed = sim_mix(sim_mix(s->o.seed, n->id), n->restarts);
  cfg.io = &n->io;
  snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", DATA_DIR);
  cfg.wal_segment_bytes = n->wal_segment_bytes;
  cfg.tag_seed = sim_mix(cfg.engine.seed, 0x7a6);
  cfg.kv_hash_key[0] = sim_mix(s->o.seed, 0x6b76);
  cfg.kv_hash_key[1] = sim_mix(s->o.seed, 0x6b77);
  cfg.app_hash_key[0] = sim_mix(s->o.seed, 0x6170);
  cfg.app_hash_key[1] = sim_mix(s->o.seed, 0x6171);
  restart_settings(s, n, &cfg);
  /* The nodes share a secret, as sabha cluster start's always do: their
   * forwarding links prove it to the leader (auth.c) in every run. */
  uint8_t secret[16];
  le_put_u64(secret, sim_mix(s->o.seed, 0x736563));
  le_put_u64(secret + 8, sim_mix(s->o.seed, 0x736564));
  cfg.link_key_set = true;
  rt_link_key_derive(secret, sizeof secret, cfg.link_key);
  for (uint32_t i = 0; i < RT_LINK_KEY_BYTES / 8; i++)
    le_put_u64(cfg.link_challenge_key + 8 * i,
               sim_mix(cfg.engine.seed, 0x636800 + i));
  group_config(s, &cfg, g);
  struct rt_ports ports = sim_ports;
  ports.ctx = &n->grp[g].port;
  n->in_call = true;
  int rc = rt_open(&n->grp[g].rt, &cfg, &ports, err, err_size);
  n->in_call = false;
  if (rc != 0)
    n->grp[g].rt = NULL;
  return rc;
}

/* Opens every group's runtime, group 0 first, and introduces them to each
 * other (rt_groups_attach), as sabhad does. */
static int open_runtime(struct sim *s, struct node *n, char *err,
                        size_t err_size) {
  for (uint32_t g = 0; g < s->n_groups; g++) {
    int rc = open_group(s, n, g, err, err_size);
    if (rc != 0) {
      close_crash_all(s, n);
      return rc;
    }
  }
  n->rt = n->grp[0].rt;
  if (s->n_groups > 1) {
    struct rt *rts[RT_GROUPS_MAX];
    for (uint32_t g = 0; g < s->n_groups; g++)
      rts[g] = n->grp[g].rt;
    rt_groups_attach(rts, s->n_groups);
  }
  return 0;
}

void node_start(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  assert(!n->up);
  char err[1024];
  int rc = open_runtime(s, n, err, sizeof err);
  if (rc == 2 && n->n_flips > 0) {
    /* A flip the log cannot repair (a snapshot header: nothing says how
     * far the log reached) must cause a refusal naming the damage. */
    s->res->disk_corruptions_detected++;
    if (s->trace != NULL)
      trace_line(s, n->id, "refuses its damaged disk: %s", err);
    undo_flips(n);
    n->n_flips = 0;
    rc = open_runtime(s, n, err, sizeof err);
  }
  if (rc != 0) {
    sim_fail(s, FAIL_SAFETY, "node %u cannot start from its disk: %s", n->id,
             err);
    return;
  }
  if (n->n_flips > 0)
    check_flips(s, n);
  n->n_flips = 0;
  struct sabha_status st;
  rt_status(n->rt, &st);
  n->guarded = st.repair_until != 0;
  n->restarts++;
  n->up = true;
  n->clean_stop = false;
  n->busy_until_us = s->now_us;
  if (s->trace != NULL && n->restarts > 1)
    trace_line(s, n->id, "restarts");
  struct sim_event *ev = ev_new(s, EV_TICK, i);
  ev->gen = n->gen;
  sim_at(s, node_next_tick_us(s, n), ev);
  check_status(s, i);
}

/* ---- disk faults ------------------------------------------------------------
 */

bool node_disk_fail(struct sim *s, uint32_t i, int err) {
  struct node *n = &s->nodes[i];
  if (!n->up)
    return false;
  /* One of the next few writes, syncs or name changes fails. */
  struct memfs_counts c = memfs_counts(n->fs);
  memfs_fail_at(n->fs, c.calls + 1 + prng_below(&s->prng_disk, 8), err);
  if (s->trace != NULL)
    trace_line(s, n->id, "disk: a write or sync will fail with %s",
               err == ENOSPC ? "ENOSPC" : "EIO");
  return true;
}

struct file_list {
  char names[64][48];
  uint32_t n;
};

static int list_one(void *arg, const char *name) {
  struct file_list *fl = arg;
  if (fl->n < 64 && strlen(name) < sizeof fl->names[0])
    snprintf(fl->names[fl->n++], sizeof fl->names[0], "%s", name);
  return 0;
}

bool node_disk_flip(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  if (n->up || n->n_flips >= FLIPS_MAX)
    return false;
  /* Data lost on a majority can be data lost for good: no protocol
   * tolerates it (as none tolerates a majority down for ever). Damage is
   * kept to a minority of the nodes at a time, as crashes are. */
  if (n->n_flips == 0 && nodes_out_room(s, true) == 0)
    return false;
  struct file_list fl = {.n = 0};
  if (n->io.list(n->io.ctx, DATA_DIR, list_one, &fl) != 0)
    return false;
  /* Synced data only: older segments and the snapshot always; the last
   * segment only after a clean stop (after a crash, damage to its last
   * batch cannot be told from a torn write: wal.h's blind spot), and only
   * once: there the CLOSE record is the one witness of the batches written
   * since the last completed fsync, and a second flip may strike it (its
   * damage is cut like a torn tail, wal.h), which takes the witness of the
   * first away. */
  const char *last = NULL;
  for (uint32_t k = 0; k < fl.n; k++)
    if (strncmp(fl.names[k], "wal-", 4) == 0 &&
        (last == NULL || strcmp(fl.names[k], last) > 0))
      last = fl.names[k];
  bool last_ok = n->clean_stop;
  for (uint32_t k = 0; k < n->n_flips && last != NULL; k++)
    if (strcmp(n->flips[k].path + sizeof DATA_DIR, last) == 0)
      last_ok = false;
  const char *pick[64];
  uint32_t n_pick = 0;
  for (uint32_t k = 0; k < fl.n; k++) {
    bool segment = strncmp(fl.names[k], "wal-", 4) == 0 &&
                   strstr(fl.names[k], ".log") != NULL;
    bool snapshot = strcmp(fl.names[k], "snapshot") == 0 ||
                    strcmp(fl.names[k], "hardstate") == 0;
    if ((segment && (fl.names[k] != last || last_ok)) || snapshot)
      pick[n_pick++] = fl.names[k];
  }
  if (n_pick == 0)
    return false;
  struct flip *f = &n->flips[n->n_flips];
  snprintf(f->path, sizeof f->path, "%s/%s", DATA_DIR,
           pick[prng_below(&s->prng_disk, n_pick)]);
  uint64_t size = 0;
  if (memfs_size(n->fs, f->path, &size) != 0 || size == 0)
    return false;
  f->offset = prng_below(&s->prng_disk, size);
  f->mask = (uint8_t)(1u << prng_below(&s->prng_disk, 8));
  if (memfs_corrupt(n->fs, f->path, f->offset, f->mask) != 0)
    return false;
  n->n_flips++;
  s->res->disk_faults++;
  if (s->trace != NULL)
    trace_line(s, n->id, "disk: bit flip in %s at byte %llu", f->path,
               (unsigned long long)f->offset);
  return true;
}

/* ---- inputs
 * ------------------------------------------------------------------ */

static bool node_can_run(const struct sim *s, const struct node *n) {
  return n->up && s->now_us >= n->busy_until_us;
}

static void node_ensure_wake(struct sim *s, struct node *n) {
  if (!n->up || n->wake_scheduled || n->busy_until_us <= s->now_us ||
      (n->inbox_n == 0 && !n->tick_pending))
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
  call_begin(s, n);
  for (uint32_t g = 0; g < s->n_groups && !n->fatal; g++)
    rt_tick(n->grp[g].rt);
  note_timing(s, n);
  node_after_runtime(s, n);
}

/* Processes one message or connection event; the node must be able to
 * run. */
static void node_input(struct sim *s, struct node *n, struct sim_event *ev) {
  assert(node_can_run(s, n));
  uint64_t entries = 1; /* a client's bytes carry about one command */
  call_begin(s, n);
  if (ev->kind == EV_PEER_MSG) {
    const struct sabha_msg *m = &ev->u.pkt->msg;
    entries = m->n_entries;
    struct node_group *ng = m->group < s->n_groups ? &n->grp[m->group] : NULL;
    /* Every node hosts the same groups: a message of another is a bug. */
    if (ng != NULL)
      rt_step(ng->rt, m);
    else
      sim_fail(s, FAIL_SAFETY,
               "engine contract: node %u sent a message of group %u, of %u",
               m->from, m->group, s->n_groups);
    packet_free(ev->u.pkt);
  } else {
    conn_node_event(s, n, ev); /* frees the chunk */
  }
  ev_free(s, ev);
  node_after_runtime(s, n);
  uint64_t busy_us = n->slow_delay_us + entries * n->slow_entry_us;
  if (n->up && busy_us > 0 && s->now_us + busy_us > n->busy_until_us)
    n->busy_until_us = s->now_us + busy_us; /* an fsync may hold it longer */
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

/* Works through pending ticks and the inbox while the node can run, then
 * lets the runtime carry out what they caused (one rt_run for all of
 * them: group commit, as sabhad's loop does per iteration). */
static void node_pump(struct sim *s, struct node *n) {
  bool ran = false;
  for (uint32_t k = 0; k < NODE_INBOX_MAX + 2 && node_can_run(s, n); k++) {
    if (n->tick_pending &&
        (!n->late_timers || n->tick_behind == 0 || n->inbox_n == 0)) {
      n->tick_pending = false;
      n->tick_behind = 0;
      node_tick(s, n);
      ran = true;
      continue;
    }
    if (n->inbox_n == 0)
      break;
    struct sim_event *ev = n->inbox[n->inbox_head];
    n->inbox_head = (n->inbox_head + 1) % n->inbox_cap;
    n->inbox_n--;
    if (n->tick_pending && n->tick_behind > 0)
      n->tick_behind--;
    node_input(s, n, ev);
    ran = true;
  }
  if (ran && n->up && !s->stop)
    run(s, n);
  if (n->up)
    node_ensure_wake(s, n);
}

/* The link an event arrives over, for peer messages. */
static void node_arrive(struct sim *s, struct node *n, struct sim_event *ev) {
  if (ev->kind == EV_PEER_MSG) {
    struct link *l = &s->links[ev->u.pkt->msg.from - 1][n->id - 1];
    assert(l->in_flight > 0);
    l->in_flight--;
  }
  /* A peer message finds a full socket buffer and is lost; a connection's
   * bytes never are (TCP retransmits): the inbox grows for them. */
  bool conn_ev = ev->kind != EV_PEER_MSG;
  bool dropped =
      !n->up || (!conn_ev && n->inbox_n >= NODE_INBOX_MAX) ||
      (!conn_ev && !net_reachable(s, ev->u.pkt->msg.from - 1, n->id - 1));
  if (dropped) {
    if (ev->kind == EV_PEER_MSG) {
      packet_free(ev->u.pkt);
      s->res->msgs_dropped++;
    } else if (ev->kind == EV_CONN_DATA) {
      chunk_free(ev->u.c.chunk);
    }
    ev_free(s, ev);
    return;
  }
  if (n->inbox_n == n->inbox_cap)
    inbox_grow(n);
  n->inbox[(n->inbox_head + n->inbox_n) % n->inbox_cap] = ev;
  n->inbox_n++;
  if (node_can_run(s, n) && n->inbox_n == 1 && !n->tick_pending) {
    node_pump(s, n);
    return;
  }
  node_ensure_wake(s, n);
}

/* ---- events
 * ------------------------------------------------------------------- */

static void node_on_tick(struct sim *s, struct node *n, struct sim_event *ev) {
  if (!n->up || ev->gen != n->gen) {
    ev_free(s, ev);
    return;
  }
  sim_at(s, node_next_tick_us(s, n), ev); /* the same event, reused */
  node_tick_defer(s, n);
  if (node_can_run(s, n))
    node_pump(s, n);
}

static void node_on_fsync_done(struct sim *s, struct node *n, uint32_t g) {
  n->grp[g].fsync_scheduled = false;
  call_begin(s, n);
  struct node_group *ng = &n->grp[g];
  if (!ng->fsync_synced)
    rt_sync_work(ng->rt); /* the data reaches the disk now */
  rt_sync_done(ng->rt);   /* sends what waited for it, runs what follows */
  /* What the fsync let go may be for another group's link. */
  if (s->n_groups > 1 && !n->fatal)
    run_groups(s, n);
  node_after_runtime(s, n);
  if (n->up) {
    check_status(s, n->id - 1);
    node_pump(s, n);
  }
}

static void node_on_snap_done(struct sim *s, struct node *n, uint32_t g) {
  struct node_group *ng = &n->grp[g];
  ng->snap_scheduled = false;
  call_begin(s, n);
  if (!ng->snap_written)
    rt_snapshot_work(ng->rt);
  rt_snapshot_done(ng->rt); /* installs it, or after the running fsync */
  node_after_runtime(s, n);
  if (n->up) {
    check_status(s, n->id - 1);
    node_pump(s, n);
  }
}

void node_on_event(struct sim *s, struct sim_event *ev) {
  struct node *n = &s->nodes[ev->target];
  switch (ev->kind) {
  case EV_TICK:
    node_on_tick(s, n, ev);
    return;
  case EV_PEER_MSG:
  case EV_CONN_OPEN:
  case EV_CONN_DATA:
  case EV_CONN_UP:
  case EV_CONN_DOWN:
    node_arrive(s, n, ev);
    return;
  default:
    break;
  }
  bool current = n->up && ev->gen == n->gen;
  uint32_t kind = ev->kind, aux = ev->aux;
  ev_free(s, ev);
  if (!current)
    return;
  switch (kind) {
  case EV_WAKE:
    n->wake_scheduled = false;
    node_pump(s, n);
    break;
  case EV_FSYNC_DONE:
    node_on_fsync_done(s, n, aux);
    break;
  case EV_SNAP_DONE:
    node_on_snap_done(s, n, aux);
    break;
  default:
    assert(0 && "not a node event");
  }
}
