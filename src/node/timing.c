/* Adaptive timing: a node sets its election timeout and heartbeat from the
 * round trips it measures to its peers, so that one setting serves a LAN
 * (timeouts near the floor, failures noticed in a few hundred ms) and a WAN
 * whose links slow down tenfold (timeouts grow with the round trips, and a
 * leader that is merely far away is not deposed again and again).
 *
 * Measuring. Every node pings each member of its group every heartbeat
 * (within RT_TIMING_PING_MS_MIN..MAX) with a runtime message the engine
 * never sees (runtime.h, RT_MSG_PING); the peer answers at once. A pong
 * names the ping's sequence number, and only a pong for one of the last
 * RT_TIMING_PINGS pings sent to that peer, answered for the first time,
 * makes a sample: duplicated, forged or very late pongs do not. The
 * runtime does it, not the engines, so that Raft and the Paxos engines are
 * measured alike, and not the host, so that the simulator runs this very
 * code. Pings are answered in either timing mode, so a node with adaptive
 * timing can measure peers that run fixed timing.
 *
 * Estimating: RFC 6298 §2 per peer, in microseconds. The first sample R
 * sets SRTT = R and RTTVAR = R/2; each later one RTTVAR = 3/4 RTTVAR +
 * 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R; RTO = SRTT + max(G, 4
 * RTTVAR) with G = 1 ms, the granularity of the engines' clocks. RTTVAR
 * jumps at once when the round trip does, which is what lets the timing
 * rise within a few pings of a spike; it decays by a quarter a sample once
 * the spike is over, so the timing comes back down within seconds.
 *
 * Choosing. What a node's election timeout must cover:
 *   - a candidate's two rounds (PreVote, then the vote; Multi-Paxos's
 *     probe and phase 1) with a quorum, and the spread between candidates
 *     (Raft §5.2: broadcast time << election timeout);
 *   - a follower's wait between two messages of its leader, which grows
 *     with that link's variance and loss;
 *   - a leader's CheckQuorum window, a round trip with a quorum.
 * So the timeout follows R, the larger of the RTO within which the node
 * hears from a quorum (the k-th smallest RTO among voters, k the other
 * voters a quorum needs) and the RTO to its leader when it follows one;
 * the election timeout is RT_TIMING_RTOS times R (etcd's tuning guide asks
 * for about ten round trips; the RTO already adds four deviations), between
 * the floor and the ceiling of rt_config, the maximum twice that (the
 * [T, 2T] of Raft §5.2) and the heartbeat a fifth (etcd: about a round
 * trip). Each node chooses for itself, and nodes that see different round
 * trips choose differently: so that a follower never times out between
 * two heartbeats of a leader that chose a longer interval, a node's
 * election timeout is also at least RT_TIMING_HB_MARGIN times the
 * heartbeat any voter says it uses, bounded by this node's own limits so
 * that a broken or hostile peer can raise it to the ceiling at most. With
 * fewer than a quorum measured (a partition, the first moments) the timing
 * stays as it is. A change smaller than RT_TIMING_HYSTERESIS is not made.
 *
 * The engines apply new timing from their next timer on
 * (sabha_engine_set_timing); timing decides no safety property in any of
 * them, only how soon a silent leader is given up. */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "node/runtime_internal.h"

#define RT_TIMING_GRANULARITY_US 1000u /* G of RFC 6298 */
#define RT_TIMING_RTOS 5u              /* election timeout in RTOs */
#define RT_TIMING_HB_DIVISOR 5u        /* heartbeat = election timeout / 5 */
#define RT_TIMING_HB_MARGIN 4u         /* heartbeats a timeout outlasts */
#define RT_TIMING_PING_MS_MIN 50u
#define RT_TIMING_PING_MS_MAX 100u
/* A peer unheard for this long counts no more: it may be down, cut off,
 * or on the far side of a partition, and its last round trip says nothing
 * of the present. */
#define RT_TIMING_FRESH_MS 3000u
/* A round trip longer than this is no sample (a ping this old has long
 * been replaced by others). */
#define RT_TIMING_RTT_US_MAX (60ull * 1000u * 1000u)
#define RT_TIMING_HYSTERESIS 10u /* percent */

bool rt_msg_is_runtime(const struct sabha_msg *m) {
  return m->type >= RT_MSG_RUNTIME_BASE;
}

static uint64_t peer_rto_us(const struct rt_peer_rtt *p) {
  uint64_t var4 = 4u * p->rttvar_us;
  return p->srtt_us +
         (var4 > RT_TIMING_GRANULARITY_US ? var4 : RT_TIMING_GRANULARITY_US);
}

static bool peer_fresh(const struct rt_peer_rtt *p, uint64_t now_ms) {
  return p->samples > 0 && now_ms < p->sample_ms + RT_TIMING_FRESH_MS;
}

static uint32_t clamp_u32(uint64_t v, uint32_t lo, uint32_t hi) {
  return v < lo ? lo : v > hi ? hi : (uint32_t)v;
}

void rt_timing_init(struct rt *rt) {
  struct rt_timing *t = &rt->timing;
  memset(t, 0, sizeof *t);
  for (uint32_t id = 0; id <= SABHA_NODES_MAX; id++)
    t->peers[id].next_seq = 1;
}

/* One RFC 6298 sample. */
static void peer_sample(struct rt_peer_rtt *p, uint64_t rtt_us,
                        uint64_t now_ms) {
  if (p->samples == 0) {
    p->srtt_us = rtt_us;
    p->rttvar_us = rtt_us / 2;
  } else {
    uint64_t dev =
        p->srtt_us > rtt_us ? p->srtt_us - rtt_us : rtt_us - p->srtt_us;
    p->rttvar_us = (3u * p->rttvar_us + dev) / 4u;
    p->srtt_us = (7u * p->srtt_us + rtt_us) / 8u;
  }
  p->samples++;
  p->sample_ms = now_ms;
}

/* The heartbeat bounds this node accepts from a peer: those it could
 * choose itself. */
static uint32_t bounded_heartbeat(const struct rt *rt, uint64_t hb_ms) {
  return clamp_u32(hb_ms,
                   rt->cfg.election_timeout_ms_floor / RT_TIMING_HB_DIVISOR,
                   rt->cfg.election_timeout_ms_ceiling / RT_TIMING_HB_DIVISOR);
}

static void send_runtime_msg(struct rt *rt, uint32_t type, uint32_t to,
                             uint64_t seq) {
  struct sabha_timing now;
  sabha_engine_timing(rt->engine, &now);
  struct sabha_msg m = {.type = type,
                        .from = rt->cfg.engine.id,
                        .to = to,
                        .context = seq,
                        .index = now.heartbeat_ms,
                        .group = rt->cfg.group};
  rt->ports.send(rt->ports.ctx, &m);
}

void rt_timing_step(struct rt *rt, const struct sabha_msg *m) {
  struct rt_timing *t = &rt->timing;
  uint32_t self = rt->cfg.engine.id;
  /* Everything but the fields a ping or pong uses must be empty: the
   * runtime's messages are small, and a peer that fills them is broken. */
  bool shape = m->reject == 0 && m->term == 0 && m->log_term == 0 &&
               m->commit == 0 && m->hint_index == 0 && m->hint_term == 0 &&
               m->n_entries == 0 && m->snap.index == 0 && m->snap.term == 0 &&
               m->snap_offset == 0 && m->snap_total_bytes == 0 &&
               m->snap_size_bytes == 0;
  if (!shape || (m->type != RT_MSG_PING && m->type != RT_MSG_PONG) ||
      m->from == SABHA_NODE_NONE || m->from > SABHA_NODES_MAX ||
      m->from == self || m->to != self || m->context == 0) {
    t->msgs_refused++;
    return;
  }
  struct rt_peer_rtt *p = &t->peers[m->from];
  if (m->type == RT_MSG_PING) {
    send_runtime_msg(rt, RT_MSG_PONG, m->from, m->context);
    p->heartbeat_ms = bounded_heartbeat(rt, m->index);
    return;
  }
  uint32_t slot = (uint32_t)(m->context % RT_TIMING_PINGS);
  uint64_t now_us = rt_mono_us(rt);
  if (p->sent_seq[slot] != m->context || p->sent_us[slot] == 0 ||
      now_us < p->sent_us[slot] ||
      now_us - p->sent_us[slot] > RT_TIMING_RTT_US_MAX)
    return; /* a duplicate, or a pong for a ping we no longer track */
  uint64_t rtt_us = now_us - p->sent_us[slot];
  p->sent_us[slot] = 0;
  p->heartbeat_ms = bounded_heartbeat(rt, m->index);
  peer_sample(p, rtt_us, rt_now_ms(rt));
}

static void send_pings(struct rt *rt, uint64_t now_ms) {
  struct rt_timing *t = &rt->timing;
  struct sabha_membership mem;
  sabha_engine_members(rt->engine, &mem);
  uint64_t now_us = rt_mono_us(rt);
  for (uint32_t i = 0; i < mem.n; i++) {
    uint32_t id = mem.members[i].id;
    if (id == rt->cfg.engine.id || id > SABHA_NODES_MAX)
      continue;
    struct rt_peer_rtt *p = &t->peers[id];
    uint64_t seq = p->next_seq++;
    uint32_t slot = (uint32_t)(seq % RT_TIMING_PINGS);
    p->sent_seq[slot] = seq;
    /* 0 means "answered": a clock at 0 sends as 1 us. */
    p->sent_us[slot] = now_us > 0 ? now_us : 1;
    send_runtime_msg(rt, RT_MSG_PING, id, seq);
  }
  struct sabha_timing now;
  sabha_engine_timing(rt->engine, &now);
  t->next_ping_ms = now_ms + clamp_u32(now.heartbeat_ms, RT_TIMING_PING_MS_MIN,
                                       RT_TIMING_PING_MS_MAX);
}

/* R (see the top): the RTO within which a quorum answers, or the leader's
 * if longer; 0 when fewer than a quorum's peers are fresh. Also the
 * largest heartbeat a fresh voter says it uses. */
static uint64_t choose_rto_us(const struct rt *rt, uint64_t now_ms,
                              uint32_t *peer_hb_ms) {
  const struct rt_timing *t = &rt->timing;
  uint32_t self = rt->cfg.engine.id;
  struct sabha_membership mem;
  sabha_engine_members(rt->engine, &mem);
  uint64_t rtos[SABHA_NODES_MAX];
  uint32_t n_rtos = 0, n_voters = 0;
  bool self_voter = false;
  *peer_hb_ms = 0;
  for (uint32_t i = 0; i < mem.n; i++) {
    const struct sabha_member *x = &mem.members[i];
    if (x->role != SABHA_MEMBER_VOTER)
      continue;
    n_voters++;
    if (x->id == self) {
      self_voter = true;
      continue;
    }
    if (x->id > SABHA_NODES_MAX || !peer_fresh(&t->peers[x->id], now_ms))
      continue;
    /* Insertion sort: at most SABHA_NODES_MAX. */
    uint64_t rto = peer_rto_us(&t->peers[x->id]);
    uint32_t k = n_rtos++;
    while (k > 0 && rtos[k - 1] > rto) {
      rtos[k] = rtos[k - 1];
      k--;
    }
    rtos[k] = rto;
    if (t->peers[x->id].heartbeat_ms > *peer_hb_ms)
      *peer_hb_ms = t->peers[x->id].heartbeat_ms;
  }
  uint32_t quorum = n_voters / 2u + 1u;
  uint32_t need = self_voter ? quorum - 1u : quorum;
  if (need == 0 || n_rtos < need)
    return 0;
  uint64_t r = rtos[need - 1];
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  if (st.leader != SABHA_NODE_NONE && st.leader != self &&
      st.leader <= SABHA_NODES_MAX &&
      peer_fresh(&t->peers[st.leader], now_ms)) {
    uint64_t leader_rto = peer_rto_us(&t->peers[st.leader]);
    if (leader_rto > r)
      r = leader_rto;
  }
  return r;
}

/* The timing R calls for, within the configured bounds. */
static struct sabha_timing timing_for(const struct rt *rt, uint64_t rto_us,
                                      uint32_t peer_hb_ms) {
  uint32_t floor = rt->cfg.election_timeout_ms_floor;
  uint32_t ceiling = rt->cfg.election_timeout_ms_ceiling;
  uint64_t want_ms = (RT_TIMING_RTOS * rto_us + 999u) / 1000u;
  uint64_t hb_guard_ms = (uint64_t)RT_TIMING_HB_MARGIN * peer_hb_ms;
  if (hb_guard_ms > want_ms)
    want_ms = hb_guard_ms;
  uint32_t e = clamp_u32(want_ms, floor, ceiling);
  struct sabha_timing out = {.election_timeout_ms_min = e,
                             .election_timeout_ms_max = 2u * e,
                             .heartbeat_ms = e / RT_TIMING_HB_DIVISOR};
  if (out.heartbeat_ms == 0)
    out.heartbeat_ms = 1;
  return out;
}

/* True when `next` differs enough from `cur` to be worth a change: by
 * RT_TIMING_HYSTERESIS, or at all when it reaches a bound (so that the
 * timing settles on the floor, not a few percent above it). */
static bool worth_changing(const struct rt *rt, const struct sabha_timing *cur,
                           const struct sabha_timing *next) {
  uint64_t a = cur->election_timeout_ms_min;
  uint64_t b = next->election_timeout_ms_min;
  uint64_t diff = a > b ? a - b : b - a;
  bool bound = b == rt->cfg.election_timeout_ms_floor ||
               b == rt->cfg.election_timeout_ms_ceiling;
  return diff * 100u >= a * RT_TIMING_HYSTERESIS || (diff > 0 && bound);
}

void rt_timing_tick(struct rt *rt, uint64_t now_ms) {
  struct rt_timing *t = &rt->timing;
  if (rt->cfg.timing != RT_TIMING_ADAPTIVE || rt->in_ready)
    return;
  if (now_ms >= t->next_ping_ms)
    send_pings(rt, now_ms);
  uint32_t peer_hb_ms = 0;
  uint64_t rto_us = choose_rto_us(rt, now_ms, &peer_hb_ms);
  if (rto_us == 0)
    return; /* fewer than a quorum measured: keep what we have */
  t->rto_us = rto_us;
  struct sabha_timing cur, next = timing_for(rt, rto_us, peer_hb_ms);
  sabha_engine_timing(rt->engine, &cur);
  if ((rt->cfg.bugs & RT_BUG_TIMING_RATCHET) &&
      next.election_timeout_ms_min < cur.election_timeout_ms_min)
    return;
  if (!worth_changing(rt, &cur, &next))
    return;
  int rc = sabha_engine_set_timing(rt->engine, &next);
  assert(rc == 0); /* timing_for keeps the rules set_timing checks */
  (void)rc;
  t->changes++;
  rt_log(rt, RT_LOG_DEBUG,
         "timing: election timeout %u..%u ms, heartbeat %u ms (round-trip "
         "timeout %" PRIu64 " us)",
         next.election_timeout_ms_min, next.election_timeout_ms_max,
         next.heartbeat_ms, rto_us);
}

void rt_timing_info(const struct rt *rt, struct rt_timing_info *out) {
  memset(out, 0, sizeof *out);
  const struct rt_timing *t = &rt->timing;
  out->mode = rt->cfg.timing;
  sabha_engine_timing(rt->engine, &out->timing);
  out->rto_us = t->rto_us;
  out->changes = t->changes;
  out->msgs_refused = t->msgs_refused;
  uint64_t now_ms = rt_now_ms(rt);
  for (uint32_t id = 1; id <= SABHA_NODES_MAX; id++) {
    const struct rt_peer_rtt *p = &t->peers[id];
    if (p->samples == 0)
      continue;
    struct rt_timing_peer *o = &out->peers[out->n_peers++];
    o->id = id;
    o->srtt_us = p->srtt_us;
    o->rttvar_us = p->rttvar_us;
    o->rto_us = peer_rto_us(p);
    o->samples = p->samples;
    o->fresh = peer_fresh(p, now_ms);
  }
}

void rt_timing_write_info(const struct rt *rt, struct resp_buf *b) {
  struct rt_timing_info ti;
  rt_timing_info(rt, &ti);
  resp_buf_printf(
      b,
      "timing:%s\r\nelection_timeout_ms_min:%u\r\n"
      "election_timeout_ms_max:%u\r\nheartbeat_ms:%u\r\n"
      "timing_rto_us:%" PRIu64 "\r\ntiming_changes:%" PRIu64 "\r\npeer_rtt_us:",
      ti.mode == RT_TIMING_ADAPTIVE ? "adaptive" : "fixed",
      ti.timing.election_timeout_ms_min, ti.timing.election_timeout_ms_max,
      ti.timing.heartbeat_ms, ti.rto_us, ti.changes);
  /* "2=1500/300,3=...": each peer's SRTT/RTTVAR. */
  for (uint32_t i = 0; i < ti.n_peers; i++)
    resp_buf_printf(b, "%s%u=%" PRIu64 "/%" PRIu64, i > 0 ? "," : "",
                    ti.peers[i].id, ti.peers[i].srtt_us, ti.peers[i].rttvar_us);
  resp_buf_printf(b, "\r\n");
}
