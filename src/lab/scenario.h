/* Lab scenarios: what one experiment is, as a person writes it.
 *
 * A scenario file (docs/lab.md has the whole format, with examples) names
 * the nodes and their regions, the latency, jitter and loss between them,
 * the workload and its clients, the engine settings, and a timeline of
 * faults. Every engine runs the same scenario on the same seeds; only the
 * protocol differs. A scenario may also list variants (settings or client
 * counts to compare, side by side), each run in full for every engine.
 *
 *   scenario monsoon
 *   title    Monsoon partition
 *   node mumbai-1 region=mumbai
 *   link mumbai delhi latency=20ms jitter=2ms
 *   workload kv clients=10 duration=10s
 *   settings election-timeout=150..300ms heartbeat=50ms prevote=on
 *   at 3s partition mumbai,pune | delhi,bangalore,chennai
 *   at 7s heal
 *
 * The parser is a pure function over a buffer (no I/O, no global state), so
 * the tests and a fuzzer can feed it anything; every limit is checked and an
 * error names the file and line. */
#ifndef SABHA_LAB_SCENARIO_H
#define SABHA_LAB_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sabha/engine.h"

#define LAB_NAME_BYTES 48 /* names of scenarios, nodes, regions */
#define LAB_TITLE_BYTES 160
#define LAB_STORY_BYTES 2048
#define LAB_REGIONS_MAX SABHA_NODES_MAX
#define LAB_LINKS_MAX 128 /* `link` lines in the topology */
#define LAB_EVENTS_MAX 48 /* `at` lines */
#define LAB_VARIANTS_MAX 6
#define LAB_LINE_BYTES_MAX 1024
#define LAB_FILE_BYTES_MAX (256u * 1024u)
#define LAB_DURATION_MS_MAX 600000u
#define LAB_LATENCY_US_MAX 10000000u /* 10 s one way */
#define LAB_GROUPS_MAX 64u           /* SIM_GROUPS_MAX */

/* One end of a link: a node, every node of a region, or every node. */
enum lab_end_kind { LAB_END_ANY = 0, LAB_END_NODE, LAB_END_REGION };

struct lab_end {
  uint8_t kind;  /* enum lab_end_kind */
  uint8_t index; /* node index (0-based) or region index */
};

/* Latency, jitter and loss between two ends (both ways unless one_way). */
struct lab_link {
  struct lab_end a, b;
  bool one_way;
  uint32_t latency_us;
  uint32_t jitter_us;
  double loss;                            /* 0..1 */
  bool has_latency, has_jitter, has_loss; /* unset fields keep what was */
  uint32_t line;
};

/* Engine settings; 0 (and SIM_SWITCH_DEFAULT) keep the lab's defaults. */
struct lab_settings {
  uint32_t election_timeout_ms_min;
  uint32_t election_timeout_ms_max;
  uint32_t heartbeat_ms;
  uint32_t batch;       /* entries per append and commands per Paxos slot */
  uint32_t inflight;    /* appends in flight per follower */
  uint8_t pre_vote;     /* enum sim_switch */
  uint8_t check_quorum; /* enum sim_switch */
  uint8_t backoff;      /* classic Paxos proposer backoff; enum sim_switch */
  /* Adaptive timing (node/runtime.h): SIM_SWITCH_ON adaptive, OFF or
   * DEFAULT fixed; the timeouts above are then where the nodes start, and
   * the bounds (0: the runtime's) the floor and ceiling of the election
   * timeout. */
  uint8_t timing;
  uint32_t timing_floor_ms;
  uint32_t timing_ceiling_ms;
  /* Consensus groups each node hosts (sabhad --groups; 0: one), and the
   * node (index + 1; 0: sabhad's rule) each group prefers as leader. */
  uint32_t groups;
  uint8_t group_leader[LAB_GROUPS_MAX];
  uint32_t n_group_leaders;
};

enum lab_event_kind {
  LAB_EV_PARTITION = 1, /* groups[] */
  LAB_EV_HEAL,          /* every cut, link change, slowness, skew ends */
  LAB_EV_CRASH,         /* node, or the leader */
  LAB_EV_RESTART,       /* node, or every crashed node */
  LAB_EV_ISOLATE,       /* node or leader cut from every peer */
  LAB_EV_CUT,           /* a <-> b, or a -> b; a may be the leader, b "a
                           follower" */
  LAB_EV_LINK,          /* a lab_link, until heal */
  LAB_EV_SLOW,          /* node or leader: delay per message, fsync factor;
                           optionally following leadership, late timers */
  LAB_EV_CLOCK,         /* node's clock rate and jump */
};

/* Node references in events: an index, or one of these. */
#define LAB_NODE_LEADER 0xffu   /* the leader when the event fires */
#define LAB_NODE_ALL 0xfeu      /* restart: every crashed node */
#define LAB_NODE_FOLLOWER 0xfdu /* cut: a follower of the leader */

struct lab_event {
  uint64_t at_ms;
  uint8_t kind; /* enum lab_event_kind */
  uint8_t node; /* index or LAB_NODE_* */
  uint8_t peer; /* cut: the other end */
  bool one_way; /* cut */
  uint8_t n_groups;
  uint8_t group[SABHA_NODES_MAX]; /* partition: group of each node, 1.. */
  struct lab_link link;           /* link */
  uint32_t delay_us;              /* slow */
  uint32_t fsync_factor;          /* slow */
  uint32_t entry_us;              /* slow: added per entry an input carries */
  bool follow;                    /* slow: SIM_SLOW_FOLLOW_LEADER */
  bool late_timers;               /* slow: SIM_SLOW_LATE_TIMERS */
  double rate;                    /* clock */
  uint32_t jump_ms;               /* clock */
  uint32_t line;
  char label[96]; /* short text for charts and tables: "partition 2|3" */
};

struct lab_workload {
  char name[LAB_NAME_BYTES]; /* kv, ledger, seats, locks, orders, mixed */
  uint32_t clients;
  uint64_t ops;         /* run until this many ops (0: use duration) */
  uint64_t duration_ms; /* clients start operations until then */
  uint32_t keys;
  uint32_t op_timeout_ms;
};

struct lab_variant {
  char name[LAB_NAME_BYTES];
  struct lab_settings settings; /* over the scenario's */
  uint32_t clients;             /* 0: the workload's */
  char text[LAB_TITLE_BYTES];   /* what it changes, for the report */
  uint32_t line;
};

struct lab_scenario {
  char name[LAB_NAME_BYTES];
  char title[LAB_TITLE_BYTES];
  char story[LAB_STORY_BYTES];
  char source[256]; /* the file it came from */

  uint32_t n_nodes;
  char node_name[SABHA_NODES_MAX][LAB_NAME_BYTES];
  uint8_t node_region[SABHA_NODES_MAX];
  uint32_t n_regions;
  char region_name[LAB_REGIONS_MAX][LAB_NAME_BYTES];

  struct lab_link links[LAB_LINKS_MAX];
  uint32_t n_links;

  struct lab_workload workload;
  struct lab_settings settings;
  uint32_t settings_line; /* the last `settings` line (for errors) */
  uint32_t faults;        /* random faults (enum sim_fault), 0 unless asked */

  struct lab_event events[LAB_EVENTS_MAX]; /* sorted by time, stable */
  uint32_t n_events;

  struct lab_variant variants[LAB_VARIANTS_MAX];
  uint32_t n_variants;
};

/* Parses a scenario from `text` (`size` bytes, need not end in NUL).
 * `source` names it in errors ("scenarios/monsoon.scn"). Returns 0, or
 * SABHA_EINVAL with "source:line: what is wrong" in err. */
int lab_scenario_parse(const char *text, size_t size, const char *source,
                       struct lab_scenario *sc, char *err, size_t err_size);

/* Reads and parses a file. Returns 0, SABHA_EIO (cannot read; err says
 * why) or SABHA_EINVAL. */
int lab_scenario_load(const char *path, struct lab_scenario *sc, char *err,
                      size_t err_size);

/* Settings with the variant's (may be NULL) laid over the scenario's. */
struct lab_settings lab_settings_merged(const struct lab_scenario *sc,
                                        const struct lab_variant *v);

/* One node's one-way link to another, after every topology line: the
 * latency, jitter and loss the run starts with and returns to at a heal. */
void lab_topology_link(const struct lab_scenario *sc, uint32_t from,
                       uint32_t to, uint32_t *latency_us, uint32_t *jitter_us,
                       double *loss);

/* True when link line `l` applies to the one-way link from -> to. */
bool lab_link_covers(const struct lab_scenario *sc, const struct lab_link *l,
                     uint32_t from, uint32_t to);

/* Writes a short description of an event's node ("mumbai-1", "the
 * leader"). */
const char *lab_node_ref_name(const struct lab_scenario *sc, uint8_t node);

#endif
