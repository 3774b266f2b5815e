/* The runtime's adaptive timing (src/node/timing.c), driven by hand: node 2
 * of {1, 2, 3} answers pings with pongs, refuses malformed runtime
 * messages without the engine seeing them, samples only pongs of pings it
 * sent (once each), sets the engine's timing from the samples (RFC 6298's
 * first sample: SRTT = R, RTTVAR = R/2), and bounds what a peer says its
 * heartbeat is by its own ceiling. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "rt_host.h"

static struct sabha_msg runtime_msg(uint32_t type, uint32_t from,
                                    uint64_t context, uint64_t hb_ms) {
  struct sabha_msg m = {
      .type = type, .from = from, .to = 2, .context = context, .index = hb_ms};
  return m;
}

/* The last message node 2 sent to `to` of `type`, or NULL. */
static const struct sabha_msg *last_sent(const struct rt_host *h, uint32_t to,
                                         uint32_t type) {
  int n = h->n_sent < RT_HOST_SENT_MAX ? h->n_sent : RT_HOST_SENT_MAX;
  for (int k = h->n_sent - 1; k >= h->n_sent - n; k--) {
    const struct sabha_msg *m = &h->sent[k % RT_HOST_SENT_MAX];
    if (m->to == to && m->type == type)
      return m;
  }
  return NULL;
}

static void ping_is_answered_and_junk_refused(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  CHECK(rt_node_start(&n, &cfg) == 0); /* fixed timing answers pings too */
  struct sabha_msg ping = runtime_msg(RT_MSG_PING, 1, 7, 50);
  rt_step(n.rt, &ping);
  const struct sabha_msg *pong = last_sent(&n.h, 1, RT_MSG_PONG);
  CHECK(pong != NULL && pong->context == 7 && pong->from == 2);
  CHECK(pong->index == 100); /* its heartbeat: rt_config_init's */
  int sent = n.h.n_sent;
  struct sabha_msg junk[7];
  for (int k = 0; k < 7; k++)
    junk[k] = runtime_msg(RT_MSG_PING, 1, 8, 50);
  junk[0].term = 1;
  junk[1].n_entries = 1;
  junk[2].from = 2; /* from itself */
  junk[3].to = 3;
  junk[4].context = 0;
  junk[5].type = RT_MSG_RUNTIME_BASE + 9;
  junk[6].snap_size_bytes = 1;
  for (int k = 0; k < 7; k++)
    rt_step(n.rt, &junk[k]);
  struct rt_timing_info ti;
  rt_timing_info(n.rt, &ti);
  CHECK(ti.msgs_refused == 7);
  CHECK(n.h.n_sent == sent); /* no pong for any */
  struct sabha_status st;
  rt_status(n.rt, &st);
  CHECK(st.term == 0); /* the engine saw none of it */
  rt_node_close(&n);
}

static void timing_follows_the_samples(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  cfg.timing = RT_TIMING_ADAPTIVE;
  cfg.election_timeout_ms_floor = 100;
  cfg.election_timeout_ms_ceiling = 4000;
  CHECK(rt_node_start(&n, &cfg) == 0);
  rt_tick(n.rt); /* pings 1 and 3 */
  const struct sabha_msg *p1 = last_sent(&n.h, 1, RT_MSG_PING);
  const struct sabha_msg *p3 = last_sent(&n.h, 3, RT_MSG_PING);
  CHECK(p1 != NULL && p3 != NULL);
  uint64_t seq1 = p1->context, seq3 = p3->context;
  n.h.now_ms += 40;
  struct sabha_msg pong = runtime_msg(RT_MSG_PONG, 1, seq1, 100);
  rt_step(n.rt, &pong);
  rt_step(n.rt, &pong); /* a duplicate: no second sample */
  struct sabha_msg stray = runtime_msg(RT_MSG_PONG, 1, seq1 + 5, 100);
  rt_step(n.rt, &stray); /* never sent: no sample */
  struct sabha_msg pong3 = runtime_msg(RT_MSG_PONG, 3, seq3, 100);
  rt_step(n.rt, &pong3);
  rt_tick(n.rt);
  struct rt_timing_info ti;
  rt_timing_info(n.rt, &ti);
  CHECK(ti.n_peers == 2);
  CHECK(ti.peers[0].id == 1 && ti.peers[0].samples == 1);
  CHECK(ti.peers[0].srtt_us == 40000 && ti.peers[0].rttvar_us == 20000);
  CHECK(ti.peers[0].rto_us == 120000 && ti.peers[0].fresh);
  /* Five RTOs: 600 ms, twice that at most, a fifth of it between
   * heartbeats. */
  CHECK(ti.rto_us == 120000);
  CHECK(ti.timing.election_timeout_ms_min == 600 &&
        ti.timing.election_timeout_ms_max == 1200 &&
        ti.timing.heartbeat_ms == 120);
  CHECK(ti.changes == 1);

  /* A peer that claims an absurd heartbeat raises this node's timeout to
   * four of the largest heartbeat it could choose itself (its ceiling's
   * fifth), no further. */
  n.h.now_ms += 100; /* the next ping is due */
  rt_tick(n.rt);
  n.h.now_ms += 40;
  p1 = last_sent(&n.h, 1, RT_MSG_PING);
  CHECK(p1 != NULL && p1->context != seq1);
  pong = runtime_msg(RT_MSG_PONG, 1, p1->context, 1000000000);
  rt_step(n.rt, &pong);
  rt_tick(n.rt);
  rt_timing_info(n.rt, &ti);
  CHECK(ti.timing.election_timeout_ms_min == 4 * (4000 / 5));
  rt_node_close(&n);
}

static void bad_bounds_are_refused(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  cfg.timing = RT_TIMING_ADAPTIVE;
  cfg.election_timeout_ms_floor = 500;
  cfg.election_timeout_ms_ceiling = 400;
  fprintf(stderr, "(a refusal expected:) ");
  CHECK(rt_node_start(&n, &cfg) != 0);
  cfg.election_timeout_ms_floor = 5; /* below RT_TIMING_FLOOR_MS_MIN */
  cfg.election_timeout_ms_ceiling = 400;
  fprintf(stderr, "(a refusal expected:) ");
  CHECK(rt_node_start(&n, &cfg) != 0);
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(ping_is_answered_and_junk_refused),
      TEST(timing_follows_the_samples),
      TEST(bad_bounds_are_refused),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
