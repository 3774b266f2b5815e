/* The nemesis: faults on a random schedule drawn from the seed, and faults
 * from a script.
 *
 * Every 100-600 ms the random schedule considers starting a fault of a kind
 * enabled by --faults and not already active, as long as fewer than three are
 * active; each heals 0.2-2.5 s later. Kinds:
 *
 *   partition  a full split into two or three groups, the leader isolated,
 *              an asymmetric cut (a node that is not heard, or cannot hear),
 *              a partial cut (two nodes that cannot reach each other while
 *              every node reaches the others, Howard & Abraham 2020), a
 *              bridge node between two halves, random directed links; or
 *              one of two episodes aimed at leaders (below);
 *   crash      1..minority nodes (often the leader) crash and restart after
 *              0.05-2 s each; or, half the time no node is down, a power
 *              loss: a majority or every node crashes at the same instant
 *              and all restart after 0.05-1 s (what makes acknowledging
 *              before the fsync visible);
 *   loss, dup, reorder   on every node link (loss also, lightly, on client
 *              links);
 *   slow       a node (often the leader) takes 0.2-5 ms per message and its
 *              fsyncs take 2-20x longer (a scripted slow may also follow
 *              leadership and make the node's timers wait behind its
 *              backlog: enum sim_slow_flag in sim.h);
 *   clock      a node's clock runs at 0.8-1.25x, sometimes after jumping
 *              forward; half the time its wall clock (the stamps on
 *              commands) is also stepped back or forward 20-800 ms;
 *   disk       a write or fsync of a running node fails (EIO or ENOSPC: the
 *              runtime gives up and the node restarts), or a bit of synced
 *              data flips on a node that is down (taken down for it if need
 *              be), which the log must refuse to start on. Crashes are then
 *              now and then clean stops, whose logs must read back whole.
 *
 * Random timing alone rarely hits the few milliseconds that matter most: a
 * leader whose term never left it, a leader cut off while it brings others
 * up to date with entries of an earlier term. So the nemesis also reacts to
 * what it sees (through the status of the engines, never their insides):
 *
 *   strikes    a tenth of the time a node wins an election (nine tenths
 *              during a leader-churn episode, which starts by striking the
 *              current leader), the nemesis strikes it, at once (before its
 *              first appends leave) or within 100 ms: it is cut from every
 *              peer for 0.05-1.5 s (partition faults) or crashes (crash
 *              faults);
 *   Figure 8   an episode that plays the history of Raft's Figure 8 with
 *              whoever holds the roles (figure8_start() tells it);
 *   comeback   a leader goes deaf while its appends still leave, falls
 *              behind, is brought back by a snapshot and wins again
 *              (comeback_start() tells it);
 *   stall      now and then (1-4 s apart at most) a leader's fsync stalls
 *              for 5-60 ms while the leader keeps only a bare quorum of
 *              followers, and the leader crashes inside the stall: every
 *              batch it wrote meanwhile is lost. Then the followers it kept
 *              are cut off and the others, with the leader back, elect one
 *              of themselves, which never had those batches. Only a leader
 *              that counted its own copy before its fsync completed can
 *              have acknowledged them (what --bug count-self-before-durable
 *              shows).
 *
 * Scripted faults (struct sim_script_event) are applied at their time on top
 * of the random ones. When the clients are done, the nemesis stops and heals
 * everything (nemesis_stop_and_heal); scripted faults due later are dropped. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "sim/sim_internal.h"

#define NEM_STEP_US_MIN 100000u
#define NEM_STEP_US_MAX 600000u
#define NEM_DURATION_US_MIN 200000u
#define NEM_DURATION_US_MAX 2500000u
#define NEM_CONCURRENT_MAX 3u
#define CRASH_DOWN_US_MIN 50000u
#define CRASH_DOWN_US_MAX 2000000u
#define POWER_DOWN_US_MAX 1000000u
#define POWER_LOSS_CHANCE 0.5
#define STRIKE_CHANCE 0.1
#define CLEAN_STOP_CHANCE 0.25
#define DISK_FAIL_CHANCE 0.6
#define WALL_STEP_MS_MIN 20u
#define WALL_STEP_MS_MAX 800u
#define STRIKE_CHANCE_CHURN 0.9
#define STRIKE_DELAY_US_MAX 100000u
#define F8_DURATION_US_MIN 1500000u
#define F8_DURATION_US_MAX 3000000u
#define ISOLATE_US_MIN 50000u
#define ISOLATE_US_MAX 1500000u
#define CB_DEAF_US_MIN 400000u
#define CB_DEAF_US_MAX 1500000u
#define CB_DURATION_US_MIN 2500000u
#define CB_DURATION_US_MAX 4000000u
#define STALL_CHANCE 0.01
#define STALL_US_MIN 5000u
#define STALL_US_MAX 60000u
#define STALL_GAP_US_MIN 1000000u
#define STALL_GAP_US_MAX 4000000u

void nemesis_init(struct sim *s) {
  memset(&s->nem, 0, sizeof s->nem);
  s->nem.concurrent_max = NEM_CONCURRENT_MAX;
  s->nem.follow_node = -1;
  if (s->o.faults != 0) {
    struct sim_event *ev = ev_new(s, EV_NEMESIS, 0);
    sim_at(s,
           s->now_us +
               prng_range(&s->prng_nemesis, NEM_STEP_US_MIN, NEM_STEP_US_MAX),
           ev);
  }
  for (size_t k = 0; k < s->o.n_script; k++) {
    struct sim_event *ev = ev_new(s, EV_SCRIPT, 0);
    ev->aux = (uint32_t)k;
    sim_at(s, s->o.script[k].at_ms * 1000u, ev);
  }
}

static uint32_t rand_node(struct sim *s) {
  return (uint32_t)prng_below(&s->prng_nemesis, s->n_nodes);
}

/* The leader if there is one, else a random node. */
static uint32_t leader_or_random(struct sim *s) {
  int l = node_leader(s);
  return l >= 0 ? (uint32_t)l : rand_node(s);
}

static void cut(struct sim *s, uint32_t from, uint32_t to) {
  if (from != to)
    s->links[from][to].fault_blocked = true;
}

static void cut_groups(struct sim *s, const uint8_t *group) {
  for (uint32_t a = 0; a < s->n_nodes; a++)
    for (uint32_t b = 0; b < s->n_nodes; b++)
      if (group[a] != group[b])
        cut(s, a, b);
}

/* Random groups 0..n_groups-1 with at least two groups non-empty. */
static void random_groups(struct sim *s, uint8_t *group, uint32_t n_groups) {
  for (uint32_t i = 0; i < s->n_nodes; i++)
    group[i] = (uint8_t)prng_below(&s->prng_nemesis, n_groups);
  bool split = false;
  for (uint32_t i = 1; i < s->n_nodes; i++)
    split |= group[i] != group[0];
  if (!split)
    group[rand_node(s)] ^= 1;
}

static void strike(struct sim *s, uint32_t i);

/* Cuts node i from every peer, or restores it; a newer call makes any
 * pending end of an earlier isolation stale. */
static void isolate(struct sim *s, uint32_t i, bool on) {
  s->nodes[i].isolated = on;
  s->nodes[i].isolate_token++;
}

/* The Figure 8 episode (Raft paper §5.4.2), played with whoever holds the
 * roles: leader L1 is cut off with one follower F1 and keeps appending the
 * clients' writes; the majority elects L2, which is cut off the instant it
 * wins (its term's entries never leave it); the cut heals; the next leader
 * L3 (L1 or F1: their logs are the longest) starts bringing the others up
 * to date, and the instant its commit index first moves, L3 and its partner
 * from the minority are cut off while L2 comes back. A correct engine moves
 * its commit index only to an entry of its own term, which is then on a
 * majority that L2 cannot win over; an engine that counted replicas of L1's
 * entries committed them where L2 can win and overwrite them: caught. */
static bool figure8_start(struct sim *s) {
  struct nem_figure8 *f8 = &s->nem.f8;
  int l1 = node_leader(s);
  if (l1 < 0 || s->n_nodes < 3)
    return false;
  uint32_t f1 = (uint32_t)prng_below(&s->prng_nemesis, s->n_nodes - 1);
  if (f1 >= (uint32_t)l1)
    f1++;
  uint8_t group[SABHA_NODES_MAX] = {0};
  group[l1] = group[f1] = 1;
  cut_groups(s, group);
  *f8 = (struct nem_figure8){.stage = F8_WAIT_L2, .l1 = (uint32_t)l1, .f1 = f1};
  return true;
}

/* A node just won an election during the episode. */
static void figure8_on_leader(struct sim *s, uint32_t i) {
  struct nem_figure8 *f8 = &s->nem.f8;
  if (f8->stage == F8_WAIT_L2 && i != f8->l1 && i != f8->f1) {
    f8->l2 = i;
    isolate(s, i, true); /* before its first appends leave */
    for (uint32_t a = 0; a < s->n_nodes; a++)
      for (uint32_t b = 0; b < s->n_nodes; b++)
        s->links[a][b].fault_blocked = false;
    f8->stage = F8_WAIT_L3;
  } else if (f8->stage == F8_WAIT_L3 && i != f8->l2) {
    f8->l3 = i;
    f8->stage = F8_WAIT_COMMIT;
  }
}

void nemesis_on_leader_commit(struct sim *s, uint32_t i) {
  struct nem_figure8 *f8 = &s->nem.f8;
  if (f8->stage != F8_WAIT_COMMIT || i != f8->l3 || s->nem.stopped)
    return;
  /* Before the messages of this very step leave. */
  f8->partner = i == f8->l1 ? f8->f1 : i == f8->f1 ? f8->l1 : i;
  isolate(s, f8->l3, true);
  isolate(s, f8->partner, true);
  isolate(s, f8->l2, false);
  f8->stage = F8_STRUCK;
}

static void figure8_end(struct sim *s) {
  struct nem_figure8 *f8 = &s->nem.f8;
  if (f8->stage == F8_IDLE)
    return;
  if (f8->stage >= F8_WAIT_L3)
    isolate(s, f8->l2, false);
  if (f8->stage == F8_STRUCK) {
    isolate(s, f8->l3, false);
    isolate(s, f8->partner, false);
  }
  f8->stage = F8_IDLE;
}

/* The comeback episode: leader L goes deaf (it hears no peer, but what it
 * sends still arrives), so its last appends reach the followers while their
 * acknowledgements never come back. It steps down for want of a quorum, the
 * others elect a leader that commits L's entries and moves on. L hears
 * again; once it is brought up to date by a snapshot, every other node that
 * wins an election is struck until L wins again. L's clients are still
 * waiting for the writes it proposed before it went deaf, which applied
 * inside that snapshot: what L tells them when its new term's first
 * proposal applies is the test (a write reported "not applied" that did
 * apply is retried, and an INCR counts twice). Real clusters play this out
 * with a flapping network card. */
static bool comeback_start(struct sim *s) {
  int l = node_leader(s);
  if (l < 0 || s->n_nodes < 3)
    return false;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    cut(s, i, (uint32_t)l);
  struct nem_comeback *cb = &s->nem.cb;
  cb->stage = CB_DEAF;
  cb->node = (uint32_t)l;
  cb->token++;
  struct sim_event *ev = ev_new(s, EV_HEAR, (uint32_t)l);
  ev->gen = cb->token;
  sim_at(s,
         s->now_us +
             prng_range(&s->prng_nemesis, CB_DEAF_US_MIN, CB_DEAF_US_MAX),
         ev);
  return true;
}

static void comeback_hear(struct sim *s, uint32_t token) {
  struct nem_comeback *cb = &s->nem.cb;
  if (cb->stage != CB_DEAF || cb->token != token)
    return;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    s->links[i][cb->node].fault_blocked = false;
  cb->stage = CB_CATCHUP;
}

static uint32_t nodes_isolated(const struct sim *s) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    k += s->nodes[i].isolated;
  return k;
}

/* Strikes leader i of the comeback stage, if a majority stays together. */
static void comeback_strike(struct sim *s, uint32_t i) {
  if (nodes_isolated(s) < nodes_out_room(s, false))
    strike(s, i);
}

void nemesis_on_snapshot_installed(struct sim *s, uint32_t i) {
  struct nem_comeback *cb = &s->nem.cb;
  if (cb->stage != CB_CATCHUP || i != cb->node || s->nem.stopped)
    return;
  cb->stage = CB_COMEBACK;
  /* Half the time an operator moves leadership back to it (SABHA.LEADER,
   * as after maintenance); otherwise the leader is struck. */
  int l = node_leader(s);
  if (l < 0 || (uint32_t)l == i)
    return;
  if (prng_chance(&s->prng_nemesis, 0.5))
    client_send_leader(s, (uint32_t)l, i);
  else
    comeback_strike(s, (uint32_t)l);
}

/* A node just won an election during the episode. */
static void comeback_on_leader(struct sim *s, uint32_t i) {
  struct nem_comeback *cb = &s->nem.cb;
  if (cb->stage != CB_COMEBACK)
    return;
  if (i == cb->node)
    cb->stage = CB_IDLE; /* it won: the rest plays out by itself */
  else
    comeback_strike(s, i);
}

/* Starts a random partition; returns its duration. */
static uint64_t partition_start(struct sim *s) {
  uint8_t group[SABHA_NODES_MAX] = {0};
  uint32_t x = rand_node(s);
  uint64_t duration_us =
      prng_range(&s->prng_nemesis, NEM_DURATION_US_MIN, NEM_DURATION_US_MAX);
  switch (prng_below(&s->prng_nemesis, 12)) {
  case 0: /* two random groups */
    random_groups(s, group, 2);
    cut_groups(s, group);
    break;
  case 1: /* the leader alone */
    group[leader_or_random(s)] = 1;
    cut_groups(s, group);
    break;
  case 2: /* three ways: maybe no side has a majority */
    random_groups(s, group, 3);
    cut_groups(s, group);
    break;
  case 3: /* asymmetric: x is not heard, or x cannot hear */
    for (uint32_t i = 0; i < s->n_nodes; i++) {
      if (prng_chance(&s->prng_nemesis, 0.5))
        cut(s, x, i);
      else
        cut(s, i, x);
    }
    break;
  case 4: { /* partial: x and y cannot talk, both reach everyone else */
    uint32_t y = rand_node(s);
    if (prng_chance(&s->prng_nemesis, 0.5))
      x = leader_or_random(s);
    cut(s, x, y);
    cut(s, y, x);
    break;
  }
  case 5: /* two halves joined only through bridge node x */
    random_groups(s, group, 2);
    for (uint32_t a = 0; a < s->n_nodes; a++)
      for (uint32_t b = 0; b < s->n_nodes; b++)
        if (group[a] != group[b] && a != x && b != x)
          cut(s, a, b);
    break;
  case 6: /* random directed links */
    for (uint32_t a = 0; a < s->n_nodes; a++)
      for (uint32_t b = 0; b < s->n_nodes; b++)
        if (prng_chance(&s->prng_nemesis, 0.3))
          cut(s, a, b);
    break;
  case 7: { /* leader churn: strike the leader, and most new ones */
    s->nem.churn = true;
    int l = node_leader(s);
    if (l >= 0)
      strike(s, (uint32_t)l);
    break;
  }
  case 8:
  case 9: /* the comeback episode; without a leader, a node cut off */
    if (comeback_start(s))
      return prng_range(&s->prng_nemesis, CB_DURATION_US_MIN,
                        CB_DURATION_US_MAX);
    group[x] = 1;
    cut_groups(s, group);
    break;
  default: /* the Figure 8 episode; without a leader, two random groups */
    if (figure8_start(s))
      return prng_range(&s->prng_nemesis, F8_DURATION_US_MIN,
                        F8_DURATION_US_MAX);
    random_groups(s, group, 2);
    cut_groups(s, group);
    break;
  }
  return duration_us;
}

static void partition_heal(struct sim *s) {
  s->nem.churn = false;
  s->nem.cb.stage = CB_IDLE;
  figure8_end(s);
  for (uint32_t a = 0; a < s->n_nodes; a++)
    for (uint32_t b = 0; b < s->n_nodes; b++)
      s->links[a][b].fault_blocked = false;
}

/* Node i goes down for down_us: a crash, or now and then a clean stop (a
 * restart by an operator), whose log must read back whole. */
static void crash_node(struct sim *s, uint32_t i, uint64_t down_us,
                       bool clean_ok) {
  if (clean_ok && (s->o.faults & SIM_FAULT_DISK) && !s->nodes[i].in_call &&
      prng_chance(&s->prng_nemesis, CLEAN_STOP_CHANCE))
    node_stop_clean(s, i);
  else
    node_crash(s, i);
  struct node *n = &s->nodes[i];
  if (!n->up) {
    nemesis_arm_restart(s, i, down_us);
    return;
  }
  /* Inside a runtime call the crash waits for the call to return (and a new
   * incarnation): the restart is armed then, for that incarnation. */
  n->restart_in_us = down_us;
}

void nemesis_arm_restart(struct sim *s, uint32_t i, uint64_t down_us) {
  s->nodes[i].crashed_by_nemesis = true;
  struct sim_event *ev = ev_new(s, EV_RESTART, i);
  ev->gen = s->nodes[i].gen;
  sim_at(s, s->now_us + down_us, ev);
}

static void crash_one(struct sim *s, uint32_t i, uint64_t down_us) {
  crash_node(s, i, down_us, false);
}

static bool crash_active(const struct sim *s) {
  for (uint32_t i = 0; i < s->n_nodes; i++)
    if (!s->nodes[i].up && s->nodes[i].crashed_by_nemesis)
      return true;
  return false;
}

/* Crashes up to `k` up nodes; with `leader_first`, the leader goes first. */
static void crash_some(struct sim *s, uint32_t k, bool leader_first,
                       uint64_t down_us_max) {
  uint32_t order[SABHA_NODES_MAX];
  for (uint32_t i = 0; i < s->n_nodes; i++)
    order[i] = i;
  for (uint32_t i = s->n_nodes - 1; i > 0; i--) { /* Fisher-Yates */
    uint32_t j = (uint32_t)prng_below(&s->prng_nemesis, i + 1);
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  int l = node_leader(s);
  if (leader_first && l >= 0)
    for (uint32_t i = 0; i < s->n_nodes; i++)
      if (order[i] == (uint32_t)l) {
        order[i] = order[0];
        order[0] = (uint32_t)l;
      }
  for (uint32_t i = 0; i < s->n_nodes && k > 0; i++) {
    if (!s->nodes[order[i]].up)
      continue;
    crash_node(s, order[i],
               prng_range(&s->prng_nemesis, CRASH_DOWN_US_MIN, down_us_max),
               down_us_max != POWER_DOWN_US_MAX);
    k--;
  }
}

static void crash_start(struct sim *s) {
  uint32_t budget;
  uint32_t out = nodes_out(s, false, &budget);
  uint32_t room = out < budget ? budget - out : 0;
  if (out == 0 && s->n_nodes > 1 &&
      prng_chance(&s->prng_nemesis, POWER_LOSS_CHANCE)) {
    /* Power loss: a majority, or everyone, at the same instant. */
    uint32_t k = prng_chance(&s->prng_nemesis, 0.5) ? s->n_nodes : s->quorum;
    crash_some(s, k, false, POWER_DOWN_US_MAX);
    return;
  }
  if (room == 0)
    return;
  uint32_t k = 1 + (uint32_t)prng_below(&s->prng_nemesis, room);
  crash_some(s, k, prng_chance(&s->prng_nemesis, 0.5), CRASH_DOWN_US_MAX);
}

static void slow_set(struct sim *s, uint32_t i, uint32_t delay_us,
                     uint32_t fsync_factor) {
  s->nodes[i].slow_delay_us = delay_us;
  s->nodes[i].fsync_factor = fsync_factor < 1 ? 1 : fsync_factor;
}

/* Node i recovers from every kind of slowness. */
static void slow_end(struct sim *s, uint32_t i) {
  slow_set(s, i, 0, 1);
  s->nodes[i].slow_entry_us = 0;
  s->nodes[i].late_timers = false;
}

/* Slowness that follows leadership (SIM_SLOW_FOLLOW_LEADER): node i now
 * carries the load; the node that carried it before recovers. Draws
 * nothing from the seed. */
static void slow_follow_to(struct sim *s, uint32_t i) {
  struct nemesis *nem = &s->nem;
  assert(nem->follow && i < s->n_nodes);
  if (nem->follow_node >= 0 && (uint32_t)nem->follow_node != i) {
    slow_end(s, (uint32_t)nem->follow_node);
  }
  nem->follow_node = (int)i;
  slow_set(s, i, nem->follow_delay_us, nem->follow_fsync_factor);
  s->nodes[i].slow_entry_us = nem->follow_entry_us;
  s->nodes[i].late_timers = nem->follow_late_timers;
}

static void links_set_fault(struct sim *s, enum nem_kind kind, double p,
                            uint32_t extra_us) {
  for (uint32_t a = 0; a < s->n_nodes; a++)
    for (uint32_t b = 0; b < s->n_nodes; b++) {
      struct link *l = &s->links[a][b];
      if (kind == NEM_LOSS)
        l->fault_loss = p;
      else if (kind == NEM_DUP)
        l->fault_dup = p;
      else {
        l->fault_reorder = p;
        l->fault_reorder_us = extra_us;
      }
    }
  if (kind == NEM_LOSS)
    s->client_link.fault_loss = p / 5;
}

/* A disk fault on a random node: a write or fsync of a running node fails
 * (EIO, or ENOSPC), or, on a node that is down or taken down for it, a bit
 * of synced data flips. */
static void disk_fault(struct sim *s) {
  uint32_t i = rand_node(s);
  struct node *n = &s->nodes[i];
  if (n->up && prng_chance(&s->prng_nemesis, DISK_FAIL_CHANCE)) {
    node_disk_fail(s, i, prng_chance(&s->prng_nemesis, 0.3) ? ENOSPC : EIO);
    return;
  }
  if (n->up) {
    bool crash_ok = (s->o.faults & SIM_FAULT_CRASH) &&
                    nodes_out_room(s, false) > 0 && !n->in_call;
    if (!crash_ok)
      return;
    crash_node(
        s, i,
        prng_range(&s->prng_nemesis, CRASH_DOWN_US_MIN, CRASH_DOWN_US_MAX),
        true);
  }
  node_disk_flip(s, i);
}

static double rand_between(struct sim *s, double lo, double hi) {
  return lo + (hi - lo) * prng_unit(&s->prng_nemesis);
}

static void fault_start(struct sim *s, enum nem_kind kind) {
  struct nemesis *nem = &s->nem;
  uint64_t duration_us =
      prng_range(&s->prng_nemesis, NEM_DURATION_US_MIN, NEM_DURATION_US_MAX);
  switch (kind) {
  case NEM_PARTITION:
    duration_us = partition_start(s);
    break;
  case NEM_CRASH:
    crash_start(s);
    return; /* heals node by node (EV_RESTART) */
  case NEM_LOSS:
    links_set_fault(s, kind, rand_between(s, 0.05, 0.3), 0);
    break;
  case NEM_DUP:
    links_set_fault(s, kind, rand_between(s, 0.05, 0.25), 0);
    break;
  case NEM_REORDER:
    links_set_fault(s, kind, rand_between(s, 0.1, 0.4),
                    (uint32_t)prng_range(&s->prng_nemesis, 5000, 50000));
    break;
  case NEM_SLOW:
    nem->slow_node =
        prng_chance(&s->prng_nemesis, 0.5) ? leader_or_random(s) : rand_node(s);
    slow_set(s, nem->slow_node,
             (uint32_t)prng_range(&s->prng_nemesis, 200, 5000),
             (uint32_t)prng_range(&s->prng_nemesis, 2, 20));
    break;
  case NEM_CLOCK: {
    nem->clock_node =
        prng_chance(&s->prng_nemesis, 0.5) ? leader_or_random(s) : rand_node(s);
    uint64_t jump_ms = prng_chance(&s->prng_nemesis, 0.3)
                           ? prng_range(&s->prng_nemesis, 10, 1000)
                           : 0;
    node_set_clock(s, nem->clock_node,
                   prng_range(&s->prng_nemesis, 800000, 1250000), jump_ms);
    /* Half the time the wall clock is stepped too, back or forward, as an
     * operator or a bad NTP server does; the heal steps it back. */
    nem->clock_step_ms = 0;
    if (prng_chance(&s->prng_nemesis, 0.5)) {
      int64_t step = (int64_t)prng_range(&s->prng_nemesis, WALL_STEP_MS_MIN,
                                         WALL_STEP_MS_MAX);
      nem->clock_step_ms = prng_chance(&s->prng_nemesis, 0.5) ? -step : step;
      node_step_wall(s, nem->clock_node, nem->clock_step_ms);
    }
    break;
  }
  case NEM_DISK:
    disk_fault(s);
    duration_us = prng_range(&s->prng_nemesis, 50000, 500000);
    break;
  default:
    assert(0 && "unknown fault kind");
  }
  nem->active[kind] = true;
  struct sim_event *ev = ev_new(s, EV_HEAL, 0);
  ev->aux = kind;
  sim_at(s, s->now_us + duration_us, ev);
}

static void fault_heal(struct sim *s, enum nem_kind kind) {
  struct nemesis *nem = &s->nem;
  switch (kind) {
  case NEM_PARTITION:
    partition_heal(s);
    break;
  case NEM_LOSS:
  case NEM_DUP:
  case NEM_REORDER:
    links_set_fault(s, kind, 0, 0);
    break;
  case NEM_SLOW:
    slow_set(s, nem->slow_node, 0, 1);
    break;
  case NEM_CLOCK:
    node_set_clock(s, nem->clock_node, 1000000u, 0);
    node_step_wall(s, nem->clock_node, -nem->clock_step_ms);
    nem->clock_step_ms = 0;
    break;
  default:
    break;
  }
  nem->active[kind] = false;
}

static void nemesis_step(struct sim *s) {
  struct nemesis *nem = &s->nem;
  nem->active[NEM_CRASH] = crash_active(s);
  uint32_t n_active = 0;
  enum nem_kind candidates[NEM_KINDS];
  uint32_t n_candidates = 0;
  for (uint32_t k = 0; k < NEM_KINDS; k++) {
    n_active += nem->active[k];
    if ((s->o.faults & (1u << k)) && !nem->active[k])
      candidates[n_candidates++] = (enum nem_kind)k;
  }
  if (n_active >= nem->concurrent_max || n_candidates == 0)
    return;
  fault_start(s, candidates[prng_below(&s->prng_nemesis, n_candidates)]);
}

/* ---- strikes at new leaders ---------------------------------------------- */

static void strike(struct sim *s, uint32_t i) {
  struct node *n = &s->nodes[i];
  bool crash_ok =
      (s->o.faults & SIM_FAULT_CRASH) && nodes_out_room(s, false) > 0;
  bool isolate_ok = (s->o.faults & SIM_FAULT_PARTITION) && !n->isolated;
  if (!n->up || (!crash_ok && !isolate_ok))
    return;
  s->nem.strikes++;
  if (crash_ok && (!isolate_ok || prng_chance(&s->prng_nemesis, 0.5))) {
    crash_one(
        s, i,
        prng_range(&s->prng_nemesis, CRASH_DOWN_US_MIN, CRASH_DOWN_US_MAX));
    return;
  }
  isolate(s, i, true);
  struct sim_event *ev = ev_new(s, EV_UNISOLATE, i);
  ev->gen = n->isolate_token;
  sim_at(s,
         s->now_us +
             prng_range(&s->prng_nemesis, ISOLATE_US_MIN, ISOLATE_US_MAX),
         ev);
}

void nemesis_on_new_leader(struct sim *s, uint32_t i) {
  /* A record for the lab, whatever the nemesis does. */
  sim_note_leader(s, i, 0);
  if (s->nem.follow && !s->nem.stopped)
    slow_follow_to(s, i); /* the clients' load moves to the new leader */
  if (s->nem.stopped || s->phase != PHASE_CLIENTS)
    return;
  if (s->nem.f8.stage != F8_IDLE) {
    figure8_on_leader(s, i);
    return;
  }
  if (s->nem.cb.stage != CB_IDLE) {
    comeback_on_leader(s, i);
    return;
  }
  if (!(s->o.faults & (SIM_FAULT_PARTITION | SIM_FAULT_CRASH)) ||
      !prng_chance(&s->prng_nemesis,
                   s->nem.churn ? STRIKE_CHANCE_CHURN : STRIKE_CHANCE))
    return;
  if (prng_chance(&s->prng_nemesis, 0.5)) {
    strike(s, i);
    return;
  }
  struct sim_event *ev = ev_new(s, EV_STRIKE, i);
  ev->gen = s->nodes[i].gen;
  sim_at(s, s->now_us + prng_range(&s->prng_nemesis, 1, STRIKE_DELAY_US_MAX),
         ev);
}

/* ---- fsync stalls -------------------------------------------------------- */

uint64_t nemesis_fsync_stall_us(struct sim *s, uint32_t i) {
  struct nemesis *nem = &s->nem;
  struct node *n = &s->nodes[i];
  uint32_t need = SIM_FAULT_CRASH | SIM_FAULT_PARTITION;
  if ((s->o.faults & need) != need || nem->stopped ||
      s->phase != PHASE_CLIENTS || n->grp[0].last_role != SABHA_ROLE_LEADER ||
      nem->active[NEM_PARTITION] || s->now_us < nem->stall_after_us ||
      crash_active(s) || nodes_out_room(s, false) == 0 ||
      !prng_chance(&s->prng_nemesis, STALL_CHANCE))
    return 0;
  nem->stalls++;
  nem->stall_after_us =
      s->now_us +
      prng_range(&s->prng_nemesis, STALL_GAP_US_MIN, STALL_GAP_US_MAX);
  nem->stall_kept = 0;
  uint64_t stall_us = prng_range(&s->prng_nemesis, STALL_US_MIN, STALL_US_MAX);
  /* The leader keeps a bare quorum: itself and quorum - 1 others. */
  uint32_t kept = 1;
  for (uint32_t k = 0; k < s->n_nodes; k++) {
    uint32_t j = (i + 1 + k) % s->n_nodes;
    if (j == i)
      continue;
    if (kept < s->quorum && prng_chance(&s->prng_nemesis, 0.5)) {
      kept++;
      nem->stall_kept |= 1u << j;
      continue;
    }
    cut(s, i, j);
    cut(s, j, i);
  }
  nem->active[NEM_PARTITION] = true;
  struct sim_event *heal = ev_new(s, EV_HEAL, 0);
  heal->aux = NEM_PARTITION;
  sim_at(s,
         s->now_us + stall_us +
             prng_range(&s->prng_nemesis, NEM_DURATION_US_MIN,
                        NEM_DURATION_US_MAX),
         heal);
  struct sim_event *ev = ev_new(s, EV_STALL_CRASH, i);
  ev->gen = n->gen;
  sim_at(s, s->now_us + prng_range(&s->prng_nemesis, stall_us / 2, stall_us),
         ev);
  if (s->trace != NULL)
    trace_line(s, n->id, "disk: an fsync stalls for %llu us",
               (unsigned long long)stall_us);
  return stall_us;
}

/* ---- scripted faults ----------------------------------------------------- */

/* Node index for a scripted node id; 0 means the leader (-1: none). */
static int script_node(struct sim *s, uint32_t id) {
  if (id == 0)
    return node_leader(s);
  return (int)id - 1;
}

static void script_heal(struct sim *s) {
  net_heal(s);
  s->nem.follow = false;
  s->nem.follow_node = -1;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    s->nodes[i].isolated = false;
    slow_end(s, i);
    if (s->nodes[i].clock_rate_ppm != 1000000u)
      node_set_clock(s, i, 1000000u, 0);
  }
  for (uint32_t k = 0; k < NEM_KINDS; k++)
    if (k != NEM_CRASH)
      s->nem.active[k] = false;
}

static void script_link(struct sim *s, const struct sim_script_event *se) {
  for (uint32_t a = 0; a < s->n_nodes; a++)
    for (uint32_t b = 0; b < s->n_nodes; b++) {
      bool all = se->node == 0 && se->peer == 0;
      if (!all && (a != se->node - 1 || b != se->peer - 1))
        continue;
      s->links[a][b].latency_us = se->latency_us;
      s->links[a][b].jitter_us = se->jitter_us;
      s->links[a][b].loss = se->loss;
    }
}

/* SIM_SCRIPT_ISOLATE: cuts node i from `peer` (sim.h) both ways. */
static void script_isolate(struct sim *s, uint32_t i, uint32_t peer) {
  if (peer == SIM_PEER_FOLLOWER) {
    peer = 0;
    for (uint32_t k = 0; k < s->n_nodes && peer == 0; k++)
      if (k != i && s->nodes[k].up)
        peer = k + 1;
    if (peer == 0)
      return;
  }
  for (uint32_t k = 0; k < s->n_nodes; k++)
    if (k != i && (peer == 0 || k == peer - 1))
      s->links[i][k].script_blocked = s->links[k][i].script_blocked = true;
}

/* SIM_SCRIPT_SLOW on node i (-1: no leader now). With FOLLOW_LEADER the
 * slowness is armed even without a leader: the next one gets it. */
static void script_slow(struct sim *s, const struct sim_script_event *se,
                        int i) {
  struct nemesis *nem = &s->nem;
  if (se->slow_flags & SIM_SLOW_FOLLOW_LEADER) {
    assert(se->node == 0);
    if (nem->follow && nem->follow_node >= 0) /* a new level replaces it */
      slow_end(s, (uint32_t)nem->follow_node);
    nem->follow = true;
    nem->follow_node = -1;
    nem->follow_delay_us = se->delay_us;
    nem->follow_entry_us = se->entry_us;
    nem->follow_fsync_factor = se->fsync_factor;
    nem->follow_late_timers = (se->slow_flags & SIM_SLOW_LATE_TIMERS) != 0;
    if (i >= 0)
      slow_follow_to(s, (uint32_t)i);
    return;
  }
  if (i < 0)
    return;
  slow_set(s, (uint32_t)i, se->delay_us, se->fsync_factor);
  s->nodes[i].slow_entry_us = se->entry_us;
  s->nodes[i].late_timers = (se->slow_flags & SIM_SLOW_LATE_TIMERS) != 0;
}

static void script_apply(struct sim *s, const struct sim_script_event *se) {
  int i = script_node(s, se->node);
  switch (se->op) {
  case SIM_SCRIPT_PARTITION:
    for (uint32_t a = 0; a < s->n_nodes; a++)
      for (uint32_t b = 0; b < s->n_nodes; b++)
        if (se->group[a] != se->group[b])
          s->links[a][b].script_blocked = true;
    break;
  case SIM_SCRIPT_HEAL:
    script_heal(s);
    break;
  case SIM_SCRIPT_BLOCK:
  case SIM_SCRIPT_UNBLOCK:
    if (i >= 0 && se->peer >= 1 && (uint32_t)i != se->peer - 1)
      s->links[i][se->peer - 1].script_blocked = se->op == SIM_SCRIPT_BLOCK;
    break;
  case SIM_SCRIPT_CRASH:
    if (i >= 0)
      node_crash(s, (uint32_t)i);
    break;
  case SIM_SCRIPT_RESTART:
    if (se->node == 0) /* every node that is down */
      for (uint32_t k = 0; k < s->n_nodes && !s->stop; k++)
        if (!s->nodes[k].up)
          node_start(s, k);
    if (se->node != 0 && !s->nodes[i].up)
      node_start(s, (uint32_t)i);
    break;
  case SIM_SCRIPT_POWER_LOSS:
    for (uint32_t k = 0; k < s->n_nodes; k++)
      if (se->node_mask == 0 || (se->node_mask >> k) & 1u)
        node_crash(s, k);
    break;
  case SIM_SCRIPT_LINK:
    script_link(s, se);
    break;
  case SIM_SCRIPT_SLOW:
    script_slow(s, se, i);
    break;
  case SIM_SCRIPT_CLOCK:
    if (i >= 0)
      node_set_clock(s, (uint32_t)i, (uint64_t)(se->rate * 1e6 + 0.5),
                     se->jump_ms);
    break;
  case SIM_SCRIPT_ISOLATE:
    if (i >= 0)
      script_isolate(s, (uint32_t)i, se->peer);
    break;
  }
}

/* ---- events -------------------------------------------------------------- */

void nemesis_on_event(struct sim *s, struct sim_event *ev) {
  uint32_t kind = ev->kind, target = ev->target, gen = ev->gen, aux = ev->aux;
  if (kind == EV_NEMESIS && !s->nem.stopped) {
    nemesis_step(s);
    sim_at(s,
           s->now_us +
               prng_range(&s->prng_nemesis, NEM_STEP_US_MIN, NEM_STEP_US_MAX),
           ev);
    return;
  }
  ev_free(s, ev);
  if (kind == EV_RESTART && aux == RESTART_SUPERVISOR) {
    /* A process that gave up is restarted by its supervisor, healing or
     * not. */
    struct node *n = &s->nodes[target];
    if (!n->up && n->gen == gen)
      node_start(s, target);
    return;
  }
  if (s->nem.stopped)
    return; /* the run is healing: scripted and random faults are over */
  if (kind == EV_SCRIPT) {
    assert(aux < s->o.n_script);
    script_apply(s, &s->o.script[aux]);
    return;
  }
  if (kind == EV_HEAL) {
    fault_heal(s, (enum nem_kind)aux);
  } else if (kind == EV_STRIKE) {
    const struct node *n = &s->nodes[target];
    if (n->up && n->gen == gen && n->grp[0].last_role == SABHA_ROLE_LEADER)
      strike(s, target);
  } else if (kind == EV_STALL_CRASH) {
    const struct node *n = &s->nodes[target];
    if (!n->up || n->gen != gen || !n->grp[0].fsync_scheduled ||
        nodes_out_room(s, false) == 0)
      return;
    crash_one(
        s, target,
        prng_range(&s->prng_nemesis, CRASH_DOWN_US_MIN, CRASH_DOWN_US_MAX / 4));
    /* The kept followers hold the stalled batches: they go quiet, the
     * rest (the crashed leader among them, once back) choose a leader. */
    partition_heal(s);
    for (uint32_t a = 0; a < s->n_nodes; a++)
      for (uint32_t b = 0; b < s->n_nodes; b++)
        if (((s->nem.stall_kept >> a) & 1u) != ((s->nem.stall_kept >> b) & 1u))
          cut(s, a, b);
  } else if (kind == EV_HEAR) {
    comeback_hear(s, gen);
  } else if (kind == EV_UNISOLATE) {
    if (s->nodes[target].isolate_token == gen)
      s->nodes[target].isolated = false;
  } else if (kind == EV_RESTART) {
    struct node *n = &s->nodes[target];
    if (!n->up && n->gen == gen && n->crashed_by_nemesis)
      node_start(s, target);
  }
}

void nemesis_stop_and_heal(struct sim *s) {
  s->nem.stopped = true;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    memfs_fail_at(s->nodes[i].fs, 0, 0); /* no disk fault fires from now */
  s->nem.churn = false;
  s->nem.f8.stage = F8_IDLE;
  s->nem.cb.stage = CB_IDLE;
  script_heal(s);
  memset(s->nem.active, 0, sizeof s->nem.active);
  for (uint32_t i = 0; i < s->n_nodes && !s->stop; i++)
    if (!s->nodes[i].up)
      node_start(s, i);
}
