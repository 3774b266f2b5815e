/* A host for unit tests of the node runtime (src/node/runtime.h): every
 * port answered in memory, and a record of what the runtime asked for, so a
 * test can drive one node through its API and look at what it did.
 *
 * The clock stands still until the test moves `now_ms`; messages to peers
 * go nowhere but into a short record (and to `relay`, if set); the streams the
 * node paused and closed are listed; a fatal stop is recorded, or aborts the
 * test with `abort_on_fatal`; warnings are counted; a forwarding link is handed
 * out only with `accept_links`. */
#ifndef SABHA_TESTS_RT_HOST_H
#define SABHA_TESTS_RT_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "node/runtime.h"
#include "storage/memfs.h"

#define RT_HOST_STREAMS_MAX 32
#define RT_HOST_SENT_MAX 64

struct rt_host {
  uint64_t now_ms;
  int64_t wall_step_ms; /* the wall clock's offset from now_ms (a step) */
  bool abort_on_fatal;
  bool accept_links;
  int fatal_kind; /* enum rt_fatal, 0 for none */
  char fatal_why[512];
  int warnings;
  char last_warning[512];
  struct rt_stream *link; /* the last stream_connect */
  uint32_t link_node;
  struct rt_stream *closed[RT_HOST_STREAMS_MAX];
  int n_closed;
  struct rt_stream *paused[RT_HOST_STREAMS_MAX]; /* paused now */
  int n_paused;
  /* The last RT_HOST_SENT_MAX messages to peers, fixed fields only (the
   * pointers in them are not valid after the call); n_sent counts all. */
  struct sabha_msg sent[RT_HOST_SENT_MAX];
  int n_sent;
  /* ports.send also hands each message, whole, to `relay` when it is set:
   * a test that carries messages between runtimes (rt_trio.h). */
  void (*relay)(void *arg, const struct sabha_msg *m);
  void *relay_arg;
  /* ports.flush: how often, and (with `fs` set) the disk's sync count at
   * the last call. */
  int n_flushes;
  /* ports.snapshot_later: whether the host takes snapshot writes (then
   * the test calls rt_snapshot_work and rt_snapshot_done), how often. */
  bool snapshot_later;
  int n_snapshot_later;
  /* ports.sync_later: whether the host takes fsyncs (then the test calls
   * rt_sync_work and rt_sync_done, rt_node_sync), how often. */
  bool sync_later;
  int n_sync_later;
  const struct memfs *fs;
  uint64_t syncs_at_flush;
};

/* The ports, every one pointing at `h`. */
struct rt_ports rt_host_ports(struct rt_host *h);

/* Node 2 of voters {1, 2, 3}, Raft, data in "data" on `io`, fixed seeds:
 * what every runtime test starts from before changing its own settings. */
void rt_host_config(struct rt_config *cfg, const struct wal_io *io);

/* Whether the node closed, or has paused, stream `s`. */
bool rt_host_closed(const struct rt_host *h, const struct rt_stream *s);
bool rt_host_paused(const struct rt_host *h, const struct rt_stream *s);

/* One node on a file system of its own, fatal stops aborting the test:
 * rt_node_init makes the disk and the host (the clock at 1000 ms) and
 * fills *cfg with rt_host_config on that disk; the test changes cfg, then
 * rt_node_start opens the runtime and runs it once (0, or rt_open's code,
 * said on stderr). rt_node_close frees the streams the node closed, the
 * runtime and the disk. */
struct rt_node {
  struct memfs *fs;
  struct wal_io io;
  struct rt_host h;
  struct rt *rt;
};
int rt_node_init(struct rt_node *n, struct rt_config *cfg);
int rt_node_start(struct rt_node *n, const struct rt_config *cfg);
void rt_node_close(struct rt_node *n);

/* Node 1, the only member of its group, over a disk of its own (as
 * rt_node_init), started (rt_node_open_alone: it does not lead yet), then
 * run until it leads (rt_node_elect): 0, or -1 when it does not. */
int rt_node_start_alone(struct rt_node *n);
int rt_node_open_alone(struct rt_node *n);
/* Fills *cfg as rt_node_open_alone starts node `n` (after rt_node_init),
 * for a test that changes it before rt_node_start. */
void rt_node_config_alone(struct rt_node *n, struct rt_config *cfg);
int rt_node_elect(struct rt_node *n);

/* Runs the node until it has nothing left to do now. */
void rt_node_settle(struct rt_node *n);

/* Completes the fsyncs the host took (sync_later), and those that follow
 * from them, settling after each. */
void rt_node_sync(struct rt_node *n);

/* Takes everything `c` has to send and counts the +OK replies in it. */
int rt_stream_take_oks(struct rt_stream *c);

/* Takes everything `c` has to send and returns its first 4095 bytes as a
 * string (valid until the next call). */
const char *rt_stream_said(struct rt_stream *c);

/* Gives stream `c` the command SET `key` with a value of `value_bytes`
 * bytes 'v' (false when memory is short). */
bool rt_stream_say_set(struct rt_stream *c, const char *key,
                       size_t value_bytes);

#endif
