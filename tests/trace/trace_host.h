/* The trace driver's in-memory host, shared by trace_host.c (the host:
 * network queue, disks, ready batches, checkers) and trace_cmd.c (the
 * commands of a trace file). Nothing here is public: see trace.h. */
#ifndef SABHA_TESTS_TRACE_HOST_H
#define SABHA_TESTS_TRACE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sabha/engine.h"
#include "trace.h"

#define TR_NODES_MAX 9u
#define TR_QUEUE_MAX 65536u       /* messages in flight */
#define TR_DELIVERIES_MAX 200000u /* per stabilize: a bound, not a goal */
#define TR_READY_LOOPS_MAX 1000u  /* ready batches after one input */
#define TR_ARGS_MAX 64u
#define TR_WAIT_MS_MAX 100000u /* campaign: ticks before giving up */
#define TR_TYPES_MAX 64u       /* message types probed by name */
#define TR_DESCRIBE_BYTES 1024u
#define TR_VALUE_BYTES 32u /* of a value, in logs and checks */
#define TR_SNAP_PAD_MAX (1u << 20)

struct disk_entry {
  uint64_t index;
  uint64_t term;
  uint32_t type;
  uint32_t size_bytes;
  uint8_t *data; /* owned */
};

/* What a node has made durable: all a restart gets back. */
struct disk {
  struct sabha_hard_state hs;
  struct disk_entry *entries; /* contiguous, after the snapshot */
  size_t n;
  size_t cap;
  bool has_snapshot;
  struct sabha_snapshot_meta snap;
  uint8_t *snap_data;
  size_t snap_size;
};

struct node {
  struct sabha_engine *e; /* NULL while down */
  uint64_t now_ms;
  struct disk disk;
  uint64_t applied;
  uint64_t sm; /* the state machine: a hash of everything applied */
  bool shown;  /* `last` holds the state last printed */
  struct sabha_status last;
};

struct queued {
  uint64_t seq;
  struct sabha_msg *msg; /* one allocation with entries and bytes */
};

/* The first value applied at an index, by any node. */
struct applied_value {
  bool seen;
  uint32_t node;
  uint64_t hash;
  char text[TR_VALUE_BYTES * 4 + 16];
};

struct term_leader {
  uint64_t term;
  uint32_t leader;
};

struct trace_world {
  bool created;
  char protocol[32];
  bool ballots;     /* Paxos terms are ballots: round << 8 | node */
  bool lose_writes; /* the self-test's lying disk: entries never land */
  uint32_t n;
  struct sabha_config cfg[TR_NODES_MAX + 1]; /* by node id */
  struct node node[TR_NODES_MAX + 1];
  bool cut[TR_NODES_MAX + 1][TR_NODES_MAX + 1]; /* [from][to] */
  struct queued *queue;
  size_t queue_n;
  size_t queue_cap;
  uint64_t seq;
  struct applied_value *values; /* by index */
  size_t values_cap;
  struct term_leader *leaders;
  size_t leaders_n;
  size_t leaders_cap;
  uint32_t conflicts;
  uint32_t two_leaders;
  char first_problem[512];
  uint32_t violations;
  /* The command being run: where its output goes and how it is framed. */
  struct trace_out *o;
  bool quiet;     /* `run`: only state changes, not every message */
  uint64_t t0_ms; /* `tick`, `run`: lines carry "+Nms" from here */
  uint64_t elapsed_ms;
  bool timed;
};

/* ---- trace_host.c ---- */

/* Appends one line of output: "+Nms " first in timed commands, then two
 * spaces per level of indent. */
void host_line(struct trace_world *w, int indent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A breach of the engine contract: printed as "!! contract: ..." and
 * counted (trace_violations). */
void host_violation(struct trace_world *w, int indent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A term as the protocol writes it ("round.node" for ballots). */
const char *host_term_text(const struct trace_world *w, uint64_t term,
                           char *buf, size_t size);
/* A value: "noop", a quoted string, or batch["a","b"]. */
void host_value_text(const struct sabha_entry *e, char *buf, size_t size);
/* sabha_msg_describe(), with "..." where the line was cut. */
void host_describe(const struct trace_world *w, const struct sabha_msg *m,
                   char *buf, size_t size);
/* "n1 ARROW n2 description [why]". */
void host_print_msg(struct trace_world *w, int indent,
                    const struct sabha_msg *m, const char *arrow,
                    const char *why);

/* Removes queued message `i` from the network; the caller frees it. */
struct sabha_msg *host_dequeue(struct trace_world *w, size_t i);
uint64_t host_disk_last(const struct disk *d);
const struct disk_entry *host_disk_get(const struct disk *d, uint64_t index);

/* Prints node `id`'s state if its role, term, leader or commit changed. */
void host_observe(struct trace_world *w, uint32_t id, int indent);
/* Carries out every ready batch node `id` has, then observes it. */
void host_process_ready(struct trace_world *w, uint32_t id, int indent);
/* Delivers queued message `i` (or drops it: receiver down, link cut). */
void host_deliver_at(struct trace_world *w, size_t i);
/* Delivers round after round until the network is empty; false when
 * TR_DELIVERIES_MAX was reached first. */
bool host_stabilize(struct trace_world *w);

/* Creates node `id`'s engine from its disk. Returns sabha_engine_new's. */
int host_start_node(struct trace_world *w, uint32_t id);
void host_crash_node(struct trace_world *w, uint32_t id);
/* One millisecond on node `id`'s clock (a down node's clock runs too). */
void host_tick_node(struct trace_world *w, uint32_t id);

#endif
