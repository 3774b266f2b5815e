/* Adaptive timing: election and heartbeat timing set from measured round
 * trips to the peers, for the node runtime (timing.c tells the story).
 *
 * This header is the runtime's own (runtime_internal.h includes it); hosts
 * see the option in struct rt_config, the figures through rt_timing_info()
 * and the two message types in runtime.h. */
#ifndef SABHA_NODE_TIMING_H
#define SABHA_NODE_TIMING_H

#include <stdbool.h>
#include <stdint.h>

#include "sabha/engine.h"

/* Pings a node keeps track of per peer: a pong for an older one no longer
 * counts (it would be a sample of a network that has since changed). */
#define RT_TIMING_PINGS 8u

/* What one node knows of its round trip to one peer (RFC 6298 §2: the
 * smoothed round-trip time and its mean deviation), in microseconds. */
struct rt_peer_rtt {
  uint64_t next_seq;                  /* of the next ping; starts at 1 */
  uint64_t sent_seq[RT_TIMING_PINGS]; /* by seq % RT_TIMING_PINGS */
  uint64_t sent_us[RT_TIMING_PINGS];  /* 0: answered (or never sent) */
  uint64_t srtt_us;                   /* valid once samples > 0 */
  uint64_t rttvar_us;
  uint64_t samples;
  uint64_t sample_ms;    /* when the last sample came (now_ms) */
  uint32_t heartbeat_ms; /* the peer's heartbeat as its last ping or pong
                            said, bounded by this node's own limits */
};

struct rt_timing {
  struct rt_peer_rtt peers[SABHA_NODES_MAX + 1]; /* by node id */
  uint64_t next_ping_ms;
  uint64_t rto_us;       /* the round-trip timeout the timing follows;
                            0 until a quorum has been measured */
  uint64_t changes;      /* timings handed to the engine */
  uint64_t msgs_refused; /* malformed pings and pongs */
};

struct rt;

/* Sets up from the configuration, before the engine starts. */
void rt_timing_init(struct rt *rt);
/* Time passes: pings peers when due and hands the engine new timing.
 * Only outside a ready batch. */
void rt_timing_tick(struct rt *rt, uint64_t now_ms);
/* A runtime message (rt_msg_is_runtime) from a peer: answers a ping,
 * learns from a pong. Malformed ones are counted and dropped. */
void rt_timing_step(struct rt *rt, const struct sabha_msg *m);

/* INFO's timing lines (in the Sabha section): timing, the election
 * timeout and heartbeat in force, the round-trip timeout followed, and
 * each measured peer's smoothed round trip and deviation in us. */
struct resp_buf;
void rt_timing_write_info(const struct rt *rt, struct resp_buf *b);

#endif
