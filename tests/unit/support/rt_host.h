/* A host for unit tests of the node runtime (src/node/runtime.h): every
 * port answered in memory, and a record of what the runtime asked for, so a
 * test can drive one node through its API and look at what it did.
 *
 * The clock stands still until the test moves `now_ms`; messages to peers
 * go nowhere; the streams the node paused and closed are listed; a fatal
 * stop is recorded, or aborts the test with `abort_on_fatal`; warnings are
 * counted; a forwarding link is handed out only with `accept_links`. */
#ifndef SABHA_TESTS_RT_HOST_H
#define SABHA_TESTS_RT_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "node/runtime.h"
#include "storage/memfs.h"

#define RT_HOST_STREAMS_MAX 32

struct rt_host {
  uint64_t now_ms;
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
};

/* The ports, every one pointing at `h`. */
struct rt_ports rt_host_ports(struct rt_host *h);

/* Node 2 of voters {1, 2, 3}, Raft, data in "data" on `io`, fixed seeds:
 * what every runtime test starts from before changing its own settings. */
void rt_host_config(struct rt_config *cfg, const struct wal_io *io);

#endif
