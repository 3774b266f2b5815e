/* A tiny synchronous cluster for engine unit tests.
 *
 * Unlike the simulator it has no latency and no randomness of its own:
 * messages queue FIFO and are delivered when the test says, persistence is
 * immediate, and every node has its own clock that only the test moves. That
 * makes it easy to script the exact interleavings the papers draw (Figure 8,
 * stale candidates, partial partitions). A filter lets a test drop chosen
 * messages; links can be cut in either direction.
 *
 * Every apply is recorded, and an apply that disagrees with another node's
 * apply at the same index is counted in `conflicts` (state machine safety).
 * Leaders are recorded per term (`two_leaders` counts election-safety
 * violations). */
#ifndef SABHA_TEST_TCLUSTER_H
#define SABHA_TEST_TCLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sabha/engine.h"

#define TC_NODES_MAX 7
#define TC_APPLIED_MAX 4096
#define TC_TERMS_MAX 4096

struct tc_entry {
  uint64_t index;
  uint64_t term;
  uint32_t type;
  uint32_t size;
  uint8_t *data;
};

struct tc_disk {
  struct sabha_hard_state hs;
  struct tc_entry *entries; /* contiguous after the snapshot */
  size_t n;
  size_t cap;
  bool has_snapshot;
  struct sabha_snapshot_meta snap;
  uint8_t *snap_data;
  size_t snap_size;
  bool has_membership; /* kept with the snapshot (engine.h) */
  struct sabha_membership membership;
  uint64_t removed_notice; /* kept as a host keeps it (engine.h) */
};

struct tc_node {
  struct sabha_engine *e;
  bool up;
  uint64_t now_ms;
  struct tc_disk disk;
  uint64_t applied;
  uint64_t applied_sum; /* the toy state machine: a running hash */
  uint64_t reads_served[64];
  uint64_t read_index_of[64];
  uint32_t n_reads;
};

struct tc_queued {
  struct sabha_msg *msg; /* one allocation with its payload */
};

/* Sees each message as it is sent; returns true to drop it, and may trim
 * it (say, drop trailing entries: a prefix of an append is an append). */
typedef bool (*tc_filter)(void *arg, struct sabha_msg *m);

struct tcluster {
  const char *protocol;
  uint32_t n;
  struct sabha_config cfg[TC_NODES_MAX + 1]; /* by node id */
  struct tc_node node[TC_NODES_MAX + 1];
  bool cut[TC_NODES_MAX + 1][TC_NODES_MAX + 1]; /* cut[from][to] */
  struct tc_queued *queue;
  size_t queue_n;
  size_t queue_cap;
  tc_filter filter; /* returns true to drop */
  void *filter_arg;
  /* Checkers. */
  bool applied_seen[TC_APPLIED_MAX];
  uint64_t applied_hash[TC_APPLIED_MAX];
  uint32_t leader_of_term[TC_TERMS_MAX];
  uint32_t conflicts;
  uint32_t two_leaders;
  uint32_t unsettled; /* settles that hit the round bound */
  uint64_t delivered;
};

/* Creates n nodes (ids 1..n). `tweak`, if not NULL, may change each
 * node's config before the engines are created. */
void tc_init(struct tcluster *tc, const char *protocol, uint32_t n,
             void (*tweak)(struct sabha_config *cfg));
void tc_free(struct tcluster *tc);

/* Runs every pending ready and delivers queued messages until quiet. */
void tc_settle(struct tcluster *tc);
/* Moves node `id`'s clock forward by ms, one millisecond at a time,
 * settling after each tick. */
void tc_tick(struct tcluster *tc, uint32_t id, uint64_t ms);
/* Moves every live node's clock forward by ms. */
void tc_tick_all(struct tcluster *tc, uint64_t ms);
/* Ticks node `id` until it is leader (bounded); returns true on success. */
bool tc_elect(struct tcluster *tc, uint32_t id);

void tc_cut(struct tcluster *tc, uint32_t a, uint32_t b); /* both ways */
void tc_cut_one(struct tcluster *tc, uint32_t from, uint32_t to);
void tc_isolate(struct tcluster *tc, uint32_t id);
void tc_heal(struct tcluster *tc);

void tc_crash(struct tcluster *tc, uint32_t id);
void tc_restart(struct tcluster *tc, uint32_t id);

int tc_propose(struct tcluster *tc, uint32_t id, const char *text);

/* Starts node `id` (above the others) as a node joining the group: no
 * membership until a leader gives it one (sabha_config.join). */
void tc_join(struct tcluster *tc, uint32_t id);
/* Gives the id of node `id`, which is down, to a new node joining the
 * group with an empty disk: an id a membership removed may be named again
 * (SABHA.MEMBER REMOVE then ADD, the simulator's membership nemesis). */
void tc_rejoin(struct tcluster *tc, uint32_t id);
/* Node `id` snapshots its toy state at its applied index, keeping the
 * membership as of there with it, as a host does. Returns the engine's
 * code. */
int tc_compact(struct tcluster *tc, uint32_t id);
/* The membership node `id` has in force. */
struct sabha_membership tc_members(struct tcluster *tc, uint32_t id);

/* A copy of `m` with its entries and snapshot bytes in one allocation (one
 * free() releases it): a message that outlives its ready batch, for tests
 * that hold messages back to deliver them late or twice. */
struct sabha_msg *tc_msg_clone(const struct sabha_msg *m);
struct sabha_status tc_status(struct tcluster *tc, uint32_t id);
/* The live node that is leader in the highest term, or 0. */
uint32_t tc_leader(struct tcluster *tc);

/* A minimal test runner: TEST(name) { ... } and CHECK(cond). */
extern int tc_failures;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      tc_failures++;                                                           \
      return;                                                                  \
    }                                                                          \
  } while (0)
#define RUN(test)                                                              \
  do {                                                                         \
    int before_ = tc_failures;                                                 \
    test();                                                                    \
    printf("%s %s\n", tc_failures == before_ ? "ok  " : "FAIL", #test);        \
  } while (0)

#endif
