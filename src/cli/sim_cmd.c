/* `sabha sim`: run the deterministic simulator on one seed or a range of
 * seeds and print a summary, one `key: value` per line.
 *
 * Seeds run one after another in this process: simple, and the output for a
 * given command line is the same every time (but for sim_events_per_s, a
 * wall-clock figure). Every failed run is reported on stderr with its seed,
 * its first failed check and the command that replays it alone. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/history.h"
#include "check/json.h"
#include "cli/cli.h"
#include "core/decimal.h"
#include "core/stats.h"
#include "node/runtime.h"
#include "sim/sim.h"

#define SEEDS_MAX 10000000ull

void cli_sim_usage(FILE *f) {
  fprintf(
      f,
      "usage: sabha sim [options]\n"
      "\n"
      "Simulates a cluster of one protocol in virtual time: closed-loop\n"
      "clients do put/append/get/cas (or drive the ledger, seats, locks\n"
      "and orders applications) while faults are injected; checkers\n"
      "verify election safety, log matching, leader completeness,\n"
      "state machine safety, that no acknowledged write is lost,\n"
      "linearizability of the kv ops, the watch stream, and the\n"
      "invariants of each application.\n"
      "The same options give the same run (see trace_hash).\n"
      "\n"
      "options (defaults in brackets):\n"
      "  --protocol NAME   consensus protocol [raft], or all (each consensus\n"
      "                    protocol on the same seeds, side by side; not\n"
      "                    async); async is the primary-backup baseline\n"
      "                    that acknowledges before replicating: its lost\n"
      "                    writes and broken checks are counted, not\n"
      "                    failed; this build knows:");
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    fprintf(f, " %s", *p);
  fprintf(
      f,
      "\n"
      "  --nodes N         cluster size, 1..16 [5]\n"
      "  --groups N        consensus groups each node hosts, 1..64 [1], as\n"
      "                    sabhad --groups: keys spread over them, each\n"
      "                    checker runs per group; above 1 the kv workload\n"
      "                    only, without membership faults, the watcher or\n"
      "                    transactions (they span groups)\n"
      "  --seed S          run one seed [1]\n"
      "  --seeds A..B      run seeds A to B inclusive\n"
      "  --ops N           client operations per run [1000]\n"
      "  --clients C       closed-loop clients, 1..256 [5]\n"
      "  --keys K          keys the clients use, 1..1024 [5]\n"
      "  --per-slot N      Multi-Paxos: commands per slot, 1..4096 [64]; "
      "small\n"
      "                    slots fill the leader's window with few clients\n"
      "  --workload W      what the clients do [kv]: kv (put/append/get/cas,\n"
      "                    judged by linearizability); ledger, seats, locks,\n"
      "                    orders (the applications, judged by their\n"
      "                    invariants:\n"
      "                    money conserved, no seat sold twice, one lock\n"
      "                    holder and fenced writes, valid order workflows);\n"
      "                    mixed (kv and all four)\n"
      "  --faults LIST     none, all, or a comma list of partition, crash,\n"
      "                    loss, dup, reorder, slow, clock, disk [all]\n"
      "                    (disk: EIO and ENOSPC on write and fsync, bit\n"
      "                    flips in synced data, torn writes at crashes)\n"
      "                    membership (not in all; all,membership adds it):\n"
      "                    nodes added as learners, promoted, removed (the\n"
      "                    leader too), one change at a time, through\n"
      "                    SABHA.MEMBER; new nodes take ids above --nodes\n"
      "  --bug NAME        break one safety rule on purpose, to show the\n"
      "                    checkers catch it: vote-twice, stale-commit,\n"
      "                    skip-log-check (Raft engine); accept-lower-ballot,\n"
      "                    no-adopt (Paxos engines); learner-quorum\n"
      "                    (learners counted in commit quorums: with\n"
      "                    --faults all,membership); count-self-before-\n"
      "                    durable (a leader counts its own copy when it\n"
      "                    hands a batch to the disk, before the fsync: Raft\n"
      "                    and Paxos engines); ack-before-fsync,\n"
      "                    stale-read, snapshot-reply, wall-clock-read (the\n"
      "                    node runtime); no-dedup (the application\n"
      "                    machine forgets retried ids: application "
      "workloads); timing-ratchet (adaptive timing never comes back\n"
      "                    down: with --timing adaptive)\n"
      "  --timing MODE     fixed (the engine's timeouts) or adaptive (each\n"
      "                    node sets its election timeout and heartbeat from\n"
      "                    the round trips it measures) [fixed]\n"
      "  --timing-bounds A..B  adaptive timing's floor and ceiling of the\n"
      "                    election timeout, in ms [150..5000]\n"
      "  --fsync MODE      where fsyncs run: auto (the loop at low load,\n"
      "                    the disk thread while batches arrive during\n"
      "                    fsyncs), loop (the node takes no input for the\n"
      "                    fsync's time) or thread [auto]\n"
      "  --backoff on|off  classic Paxos: back off after a pre-emption [on];\n"
      "                    off shows the dueling-proposers livelock\n"
      "  --expiry on|off   kv workload: keys with a time to live (SET PX,\n"
      "                    the expiring keys e0.., quiet spells of reads)\n"
      "                    [on]; off, the operations depend on the seed and\n"
      "                    the replies only, so every engine runs the same\n"
      "                    sequence\n"
      "  --history FILE    write the client history as JSON lines: the first\n"
      "                    failing run's, else the last run's; application\n"
      "                    ops get lines of their own (op, args, reply)\n"
      "  --json FILE       write the summary as one JSON object\n"
      "  --verbose         one line per run on stderr\n"
      "  --trace           print the run as one readable line per event\n"
      "                    (time in ms, node, message or step), e.g.\n"
      "                    12.345 n2 -> n1 append term=3 prev=40/3 ...\n"
      "  --help            this text\n"
      "\n"
      "output: protocol, runs, runs_failed, ops_ok, ops_failed,\n"
      "ops_indeterminate, safety_violations, linearizability_failures,\n"
      "acked_writes_lost, elections, latency_ms_p50, latency_ms_p99,\n"
      "throughput_ops_per_s (simulated time), sim_events_per_s (wall clock),\n"
      "liveness_failures (runs that did not converge once healed, or hit\n"
      "their time or event cap), workload, invariant_violations\n"
      "(application invariants broken), trace_hash (one seed only),\n"
      "phase1_rounds (elections started, or Paxos phase-1 rounds),\n"
      "ballots_burned (terms or ballots moved past),\n"
      "state_hash (one seed: the final key-value and application state),\n"
      "crashes, snapshots_taken, snapshots_installed, disk_faults (writes or\n"
      "fsyncs failed, bits flipped), disk_corruptions_detected (bit\n"
      "flips a node found on start, refused or repaired), disk_repairs\n"
      "(damaged logs cut at the damage and rejoined under a repair guard),\n"
      "node_fatals, removed_told (nodes removed while away that a member's\n"
      "notice stopped), connections (client\n"
      "connections opened), clock_entries (log clock entries proposed),\n"
      "watch_events (changes the watcher received and the watch checker\n"
      "compared with the log's), txns_checked (transactions whose EXEC\n"
      "reply was checked whole),\n"
      "membership_changes (membership entries committed),\n"
      "fsyncs (of the logs) and fsyncs_loop (those run on the loop),\n"
      "with --timing adaptive: timing_changes (timings the nodes chose),\n"
      "timing_election_ms_peak (the highest election timeout in force),\n"
      "first_failing_seed (if a run failed).\n"
      "\n"
      "exit status: 0 every run passed; 1 a run failed; 2 usage error;\n"
      "3 an output file could not be written.\n");
}

/* ---- argument parsing ---------------------------------------------------- */

struct sim_args {
  struct sim_options o;
  uint64_t seed_first;
  uint64_t seed_last;
  bool seed_given;
  bool seeds_given;
  const char *bug;
  const char *faults;
  const char *workload;
  const char *history_path;
  const char *json_path;
  bool verbose;
  bool all_protocols;
};

static int usage_error(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "sabha sim: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n(sabha sim --help lists the options)\n");
  return CLI_EXIT_USAGE;
}

static bool parse_seed_range(const char *text, uint64_t *first,
                             uint64_t *last) {
  const char *dots = text != NULL ? strstr(text, "..") : NULL;
  if (dots == NULL || dots == text)
    return false;
  char left[32];
  size_t len = (size_t)(dots - text);
  if (len >= sizeof left)
    return false;
  memcpy(left, text, len);
  left[len] = '\0';
  return dec_parse_flag(left, 0, UINT64_MAX, first) &&
         dec_parse_flag(dots + 2, 0, UINT64_MAX, last) && *first <= *last &&
         *last - *first < SEEDS_MAX;
}

/* Splits "--flag=value" or "--flag value"; returns the value or NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag) {
  const char *arg = argv[*i];
  size_t len = strlen(flag);
  if (strncmp(arg, flag, len) != 0)
    return NULL;
  if (arg[len] == '=')
    return arg + len + 1;
  if (arg[len] != '\0')
    return NULL;
  if (*i + 1 >= argc)
    return "";
  return argv[++*i];
}

static bool flag_is(const char *arg, const char *flag) {
  size_t len = strlen(flag);
  return strncmp(arg, flag, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

static int parse_number_flag(const char *flag, const char *value, uint64_t lo,
                             uint64_t hi, uint64_t *out) {
  if (dec_parse_flag(value, lo, hi, out))
    return 0;
  char range[64];
  snprintf(range, sizeof range, "%" PRIu64 "..%" PRIu64, lo, hi);
  fprintf(stderr, "sabha sim: %s needs a number in %s, got '%s'\n", flag, range,
          value);
  fprintf(stderr, "(sabha sim --help lists the options)\n");
  return CLI_EXIT_USAGE;
}

static int parse_one(struct sim_args *a, int argc, char **argv, int *i) {
  const char *arg = argv[*i];
  uint64_t v;
  int rv;
  if (flag_is(arg, "--protocol")) {
    a->o.protocol = flag_value(argc, argv, i, "--protocol");
    return 0;
  }
  static const struct {
    const char *flag;
    uint64_t lo, hi;
  } numbers[] = {{"--nodes", 1, SABHA_NODES_MAX},
                 {"--ops", 1, SIM_OPS_MAX},
                 {"--clients", 1, SIM_CLIENTS_MAX},
                 {"--keys", 1, SIM_KEYS_MAX},
                 {"--seed", 0, UINT64_MAX},
                 {"--groups", 1, SIM_GROUPS_MAX},
                 {"--per-slot", 1, 4096}};
  for (size_t k = 0; k < sizeof numbers / sizeof numbers[0]; k++) {
    if (!flag_is(arg, numbers[k].flag))
      continue;
    const char *value = flag_value(argc, argv, i, numbers[k].flag);
    rv = parse_number_flag(numbers[k].flag, value, numbers[k].lo, numbers[k].hi,
                           &v);
    if (rv != 0)
      return rv;
    if (k == 0)
      a->o.n_nodes = (uint32_t)v;
    else if (k == 1)
      a->o.n_ops = v;
    else if (k == 2)
      a->o.n_clients = (uint32_t)v;
    else if (k == 3)
      a->o.n_keys = (uint32_t)v;
    else if (k == 5)
      a->o.n_groups = (uint32_t)v;
    else if (k == 6)
      a->o.commands_per_slot_max = (uint32_t)v;
    else {
      a->seed_first = a->seed_last = v;
      a->seed_given = true;
    }
    return 0;
  }
  if (flag_is(arg, "--seeds")) {
    const char *value = flag_value(argc, argv, i, "--seeds");
    if (!parse_seed_range(value, &a->seed_first, &a->seed_last))
      return usage_error("--seeds needs A..B with A <= B (at most 10000000 "
                         "seeds), got '%s'%s",
                         value, "");
    a->seeds_given = true;
    return 0;
  }
  if (flag_is(arg, "--faults")) {
    a->faults = flag_value(argc, argv, i, "--faults");
    return 0;
  }
  if (flag_is(arg, "--workload")) {
    a->workload = flag_value(argc, argv, i, "--workload");
    return 0;
  }
  if (flag_is(arg, "--bug")) {
    a->bug = flag_value(argc, argv, i, "--bug");
    return 0;
  }
  if (flag_is(arg, "--history")) {
    a->history_path = flag_value(argc, argv, i, "--history");
    return a->history_path[0]
               ? 0
               : usage_error("%s needs a file%s", "--history", "");
  }
  if (flag_is(arg, "--json")) {
    a->json_path = flag_value(argc, argv, i, "--json");
    return a->json_path[0] ? 0 : usage_error("%s needs a file%s", "--json", "");
  }
  if (flag_is(arg, "--timing")) {
    const char *value = flag_value(argc, argv, i, "--timing");
    if (strcmp(value, "fixed") != 0 && strcmp(value, "adaptive") != 0)
      return usage_error("--timing takes fixed or adaptive, got '%s'%s", value,
                         "");
    a->o.timing =
        strcmp(value, "adaptive") == 0 ? RT_TIMING_ADAPTIVE : RT_TIMING_FIXED;
    return 0;
  }
  if (flag_is(arg, "--fsync")) {
    const char *value = flag_value(argc, argv, i, "--fsync");
    enum rt_fsync_mode mode;
    if (!rt_fsync_mode_parse(value, &mode))
      return usage_error("--fsync takes auto, loop or thread, got '%s'%s",
                         value, "");
    a->o.fsync = (uint8_t)mode;
    return 0;
  }
  if (flag_is(arg, "--timing-bounds")) {
    const char *value = flag_value(argc, argv, i, "--timing-bounds");
    uint64_t lo, hi;
    if (!parse_seed_range(value, &lo, &hi) || lo < RT_TIMING_FLOOR_MS_MIN ||
        hi > RT_TIMING_CEILING_MS_MAX)
      return usage_error("--timing-bounds needs A..B in ms with 10 <= A <= B "
                         "<= 300000, got '%s'%s",
                         value, "");
    a->o.timing_floor_ms = (uint32_t)lo;
    a->o.timing_ceiling_ms = (uint32_t)hi;
    return 0;
  }
  if (flag_is(arg, "--backoff")) {
    const char *value = flag_value(argc, argv, i, "--backoff");
    if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
      return usage_error("--backoff takes on or off, got '%s'%s", value, "");
    a->o.proposer_backoff = strcmp(value, "on") == 0;
    return 0;
  }
  if (flag_is(arg, "--expiry")) {
    const char *value = flag_value(argc, argv, i, "--expiry");
    if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
      return usage_error("--expiry takes on or off, got '%s'%s", value, "");
    a->o.expiry = strcmp(value, "on") == 0;
    return 0;
  }
  if (strcmp(arg, "--verbose") == 0) {
    a->verbose = true;
    return 0;
  }
  if (strcmp(arg, "--trace") == 0) {
    a->o.trace = stdout;
    return 0;
  }
  return usage_error("unknown option '%s'%s", arg, "");
}

static int parse_args(struct sim_args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  sim_options_init(&a->o);
  a->seed_first = a->seed_last = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      cli_sim_usage(stdout);
      return -1;
    }
    int rv = parse_one(a, argc, argv, &i);
    if (rv != 0)
      return rv;
  }
  if (a->seed_given && a->seeds_given)
    return usage_error("give --seed or --seeds, not both%s%s", "", "");
  if (a->o.protocol == NULL || a->o.protocol[0] == '\0')
    return usage_error("--protocol needs a name%s%s", "", "");
  char err[256];
  if (a->faults != NULL &&
      sim_faults_parse(a->faults, &a->o.faults, err, sizeof err) != 0)
    return usage_error("%s%s", err, "");
  if (a->workload != NULL &&
      sim_workload_parse(a->workload, &a->o.workload, err, sizeof err) != 0)
    return usage_error("%s%s", err, "");
  if (a->bug != NULL && sim_bug_parse(a->bug, &a->o.engine_bugs,
                                      &a->o.host_bugs, err, sizeof err) != 0)
    return usage_error("%s%s", err, "");
  if (strcmp(a->o.protocol, "all") == 0) {
    a->all_protocols = true;
    return 0;
  }
  bool known = false;
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    known |= strcmp(*p, a->o.protocol) == 0;
  if (!known) {
    fprintf(stderr, "sabha sim: unknown protocol '%s' (this build knows:",
            a->o.protocol);
    for (const char *const *p = sabha_protocols(); *p != NULL; p++)
      fprintf(stderr, " %s", *p);
    fprintf(stderr, ")\n");
    return CLI_EXIT_USAGE;
  }
  return 0;
}

/* ---- the summary --------------------------------------------------------- */

struct summary {
  uint64_t runs;
  uint64_t runs_failed;
  uint64_t ops_ok, ops_failed, ops_indeterminate;
  uint64_t safety_violations, linearizability_failures, acked_writes_lost;
  uint64_t liveness_failures;
  uint64_t invariant_violations;
  uint64_t elections;
  uint64_t phase1_rounds;
  uint64_t ballots_burned;
  uint64_t events;
  uint64_t snapshots_taken, snapshots_installed;
  uint64_t disk_faults, disk_corruptions_detected, disk_repairs;
  uint64_t crashes, node_fatals, removed_told, conns_opened, clock_entries,
      watch_events;
  uint64_t txns_checked;
  uint64_t membership_changes;
  uint64_t timing_changes;
  uint32_t timing_election_ms_peak;
  uint64_t fsyncs, fsyncs_loop;
  double wall_seconds;
  uint64_t client_time_us;
  uint32_t *latencies_us;
  size_t n_latencies, cap_latencies;
  uint64_t trace_hash;
  uint64_t state_hash;
  bool has_failing_seed;
  uint64_t first_failing_seed;
  char first_failure[512];
  double latency_ms_p50, latency_ms_p99;
  /* Per group, with several: sums, and each ok op's latency packed as
   * (group << 32 | latency_us), so that one sort orders them by group. */
  uint64_t group_ops_ok[SIM_GROUPS_MAX];
  uint64_t group_elections[SIM_GROUPS_MAX];
  uint32_t group_keys[SIM_GROUPS_MAX];
  uint32_t group_leader[SIM_GROUPS_MAX]; /* the last run's, at its end */
  uint64_t *glat;
  size_t n_glat, cap_glat;
};

/* Adds a multi-group run's per-group figures. */
static bool summary_add_groups(struct summary *sum,
                               const struct sim_result *r) {
  if (r->n_groups <= 1)
    return true;
  for (uint32_t g = 0; g < r->n_groups; g++) {
    sum->group_ops_ok[g] += r->groups[g].ops_ok;
    sum->group_elections[g] += r->groups[g].elections;
    sum->group_keys[g] = r->groups[g].keys;
    sum->group_leader[g] = r->groups[g].leader;
  }
  if (sum->n_glat + r->n_latencies > sum->cap_glat) {
    size_t cap = sum->cap_glat ? sum->cap_glat : 4096;
    while (cap < sum->n_glat + r->n_latencies)
      cap *= 2;
    uint64_t *v = realloc(sum->glat, cap * sizeof *v);
    if (v == NULL)
      return false;
    sum->glat = v;
    sum->cap_glat = cap;
  }
  for (size_t k = 0; k < r->n_latencies; k++)
    sum->glat[sum->n_glat++] =
        (uint64_t)r->latency_groups[k] << 32 | r->latencies_us[k];
  return true;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Group g's median latency in ms, from the sorted glat. */
static double group_p50_ms(const struct summary *sum, uint32_t g) {
  size_t lo = 0;
  while (lo < sum->n_glat && sum->glat[lo] >> 32 < g)
    lo++;
  size_t hi = lo;
  while (hi < sum->n_glat && sum->glat[hi] >> 32 == g)
    hi++;
  if (hi == lo)
    return 0;
  return (double)(uint32_t)sum->glat[lo + (hi - lo - 1) / 2] / 1000.0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static bool summary_add(struct summary *sum, const struct sim_result *r,
                        uint64_t seed) {
  sum->runs++;
  sum->ops_ok += r->ops_ok;
  sum->ops_failed += r->ops_failed;
  sum->ops_indeterminate += r->ops_indeterminate;
  sum->safety_violations += r->safety_violations;
  sum->linearizability_failures += r->linearizability_failures;
  sum->acked_writes_lost += r->acked_writes_lost;
  sum->liveness_failures += r->liveness_failures;
  sum->invariant_violations += r->invariant_violations;
  sum->elections += r->elections;
  sum->phase1_rounds += r->phase1_rounds;
  sum->ballots_burned += r->ballots_burned;
  sum->events += r->events;
  sum->snapshots_taken += r->snapshots_taken;
  sum->snapshots_installed += r->snapshots_installed;
  sum->disk_faults += r->disk_faults;
  sum->disk_corruptions_detected += r->disk_corruptions_detected;
  sum->disk_repairs += r->disk_repairs;
  sum->crashes += r->crashes;
  sum->node_fatals += r->node_fatals;
  sum->removed_told += r->removed_told;
  sum->conns_opened += r->conns_opened;
  sum->clock_entries += r->clock_entries;
  sum->watch_events += r->watch_events;
  sum->txns_checked += r->txns_checked;
  sum->membership_changes += r->membership_changes;
  sum->fsyncs += r->fsyncs;
  sum->fsyncs_loop += r->fsyncs_loop;
  sum->timing_changes += r->timing_changes;
  if (r->timing_election_ms_peak > sum->timing_election_ms_peak)
    sum->timing_election_ms_peak = r->timing_election_ms_peak;
  sum->wall_seconds += r->wall_seconds;
  sum->client_time_us += r->client_time_us;
  sum->trace_hash = r->trace_hash;
  sum->state_hash = r->state_hash;
  if (sum->n_latencies + r->n_latencies > sum->cap_latencies) {
    size_t cap = sum->cap_latencies ? sum->cap_latencies : 4096;
    while (cap < sum->n_latencies + r->n_latencies)
      cap *= 2;
    uint32_t *v = realloc(sum->latencies_us, cap * sizeof *v);
    if (v == NULL)
      return false;
    sum->latencies_us = v;
    sum->cap_latencies = cap;
  }
  if (r->n_latencies > 0)
    memcpy(sum->latencies_us + sum->n_latencies, r->latencies_us,
           r->n_latencies * sizeof *r->latencies_us);
  sum->n_latencies += r->n_latencies;
  if (!summary_add_groups(sum, r))
    return false;
  if (r->failed) {
    sum->runs_failed++;
    if (!sum->has_failing_seed) {
      sum->has_failing_seed = true;
      sum->first_failing_seed = seed;
      snprintf(sum->first_failure, sizeof sum->first_failure, "%s", r->failure);
    }
  }
  return true;
}

static void summary_finish(struct summary *sum) {
  if (sum->n_latencies > 0) /* none when no operation succeeded */
    qsort(sum->latencies_us, sum->n_latencies, sizeof *sum->latencies_us,
          cmp_u32);
  if (sum->n_glat > 0)
    qsort(sum->glat, sum->n_glat, sizeof *sum->glat, cmp_u64);
  sum->latency_ms_p50 =
      stats_quantile_u32(sum->latencies_us, sum->n_latencies, 0.5) / 1000.0;
  sum->latency_ms_p99 =
      stats_quantile_u32(sum->latencies_us, sum->n_latencies, 0.99) / 1000.0;
}

static double throughput(const struct summary *sum) {
  return sum->client_time_us == 0
             ? 0
             : (double)sum->ops_ok * 1e6 / (double)sum->client_time_us;
}

static double events_per_s(const struct summary *sum) {
  return sum->wall_seconds <= 0 ? 0 : (double)sum->events / sum->wall_seconds;
}

static void summary_print(const struct sim_args *a, const struct summary *sum) {
  printf("protocol: %s\n", a->o.protocol);
  printf("groups: %u\n", a->o.n_groups);
  if (a->o.n_groups > 1)
    printf("groups_left_out: watcher, transactions (they span groups)\n");
  printf("runs: %" PRIu64 "\n", sum->runs);
  printf("runs_failed: %" PRIu64 "\n", sum->runs_failed);
  printf("ops_ok: %" PRIu64 "\n", sum->ops_ok);
  printf("ops_failed: %" PRIu64 "\n", sum->ops_failed);
  printf("ops_indeterminate: %" PRIu64 "\n", sum->ops_indeterminate);
  printf("safety_violations: %" PRIu64 "\n", sum->safety_violations);
  printf("linearizability_failures: %" PRIu64 "\n",
         sum->linearizability_failures);
  printf("acked_writes_lost: %" PRIu64 "\n", sum->acked_writes_lost);
  printf("elections: %" PRIu64 "\n", sum->elections);
  printf("latency_ms_p50: %.3f\n", sum->latency_ms_p50);
  printf("latency_ms_p99: %.3f\n", sum->latency_ms_p99);
  printf("throughput_ops_per_s: %.1f\n", throughput(sum));
  printf("sim_events_per_s: %.0f\n", events_per_s(sum));
  printf("liveness_failures: %" PRIu64 "\n", sum->liveness_failures);
  printf("workload: %s\n", sim_workload_name(a->o.workload));
  printf("invariant_violations: %" PRIu64 "\n", sum->invariant_violations);
  printf("phase1_rounds: %" PRIu64 "\n", sum->phase1_rounds);
  printf("ballots_burned: %" PRIu64 "\n", sum->ballots_burned);
  printf("crashes: %" PRIu64 "\n", sum->crashes);
  printf("snapshots_taken: %" PRIu64 "\n", sum->snapshots_taken);
  printf("snapshots_installed: %" PRIu64 "\n", sum->snapshots_installed);
  printf("disk_faults: %" PRIu64 "\n", sum->disk_faults);
  printf("disk_corruptions_detected: %" PRIu64 "\n",
         sum->disk_corruptions_detected);
  printf("disk_repairs: %" PRIu64 "\n", sum->disk_repairs);
  printf("node_fatals: %" PRIu64 "\n", sum->node_fatals);
  printf("removed_told: %" PRIu64 "\n", sum->removed_told);
  printf("connections: %" PRIu64 "\n", sum->conns_opened);
  printf("clock_entries: %" PRIu64 "\n", sum->clock_entries);
  printf("watch_events: %" PRIu64 "\n", sum->watch_events);
  printf("txns_checked: %" PRIu64 "\n", sum->txns_checked);
  printf("membership_changes: %" PRIu64 "\n", sum->membership_changes);
  printf("fsyncs: %" PRIu64 "\n", sum->fsyncs);
  printf("fsyncs_loop: %" PRIu64 "\n", sum->fsyncs_loop);
  if (a->o.timing == RT_TIMING_ADAPTIVE) {
    printf("timing: adaptive\n");
    printf("timing_changes: %" PRIu64 "\n", sum->timing_changes);
    printf("timing_election_ms_peak: %u\n", sum->timing_election_ms_peak);
  }
  /* One line per group: its keys, what succeeded on them, its elections,
   * its median latency and, for one run, its leader at the end. */
  for (uint32_t g = 0; a->o.n_groups > 1 && g < a->o.n_groups; g++) {
    printf("group%u: keys=%u ops_ok=%" PRIu64 " elections=%" PRIu64
           " latency_ms_p50=%.3f",
           g, sum->group_keys[g], sum->group_ops_ok[g], sum->group_elections[g],
           group_p50_ms(sum, g));
    if (sum->runs == 1)
      printf(" leader=%u", sum->group_leader[g]);
    printf("\n");
  }
  if (sum->runs == 1) {
    printf("trace_hash: 0x%016" PRIx64 "\n", sum->trace_hash);
    printf("state_hash: 0x%016" PRIx64 "\n", sum->state_hash);
  }
  if (sum->has_failing_seed)
    printf("first_failing_seed: %" PRIu64 "\n", sum->first_failing_seed);
  fflush(stdout);
}

static int summary_json(const struct sim_args *a, const struct summary *sum) {
  FILE *f = fopen(a->json_path, "w");
  if (f == NULL) {
    fprintf(stderr, "sabha sim: cannot write %s: %s\n", a->json_path,
            strerror(errno));
    return CLI_EXIT_ERROR;
  }
  char faults[128];
  sim_faults_format(a->o.faults, faults, sizeof faults);
  fprintf(f, "{\"protocol\":");
  json_fput_text(f, a->o.protocol);
  fprintf(f,
          ",\"nodes\":%u,\"groups\":%u,\"clients\":%u,\"ops_per_run\":%" PRIu64
          ",\"seed_first\":%" PRIu64 ",\"seed_last\":%" PRIu64 ",\"faults\":",
          a->o.n_nodes, a->o.n_groups, a->o.n_clients, a->o.n_ops,
          a->seed_first, a->seed_last);
  json_fput_text(f, faults);
  fprintf(f, ",\"workload\":");
  json_fput_text(f, sim_workload_name(a->o.workload));
  fprintf(f, ",\"bug\":");
  json_fput_text(f, a->bug != NULL ? a->bug : "none");
  fprintf(f,
          ",\"runs\":%" PRIu64 ",\"runs_failed\":%" PRIu64
          ",\"ops_ok\":%" PRIu64 ",\"ops_failed\":%" PRIu64
          ",\"ops_indeterminate\":%" PRIu64 ",\"safety_violations\":%" PRIu64
          ",\"linearizability_failures\":%" PRIu64
          ",\"acked_writes_lost\":%" PRIu64 ",\"liveness_failures\":%" PRIu64
          ",\"elections\":%" PRIu64 ",\"phase1_rounds\":%" PRIu64
          ",\"ballots_burned\":%" PRIu64
          ",\"latency_ms_p50\":%.3f,\"latency_ms_p99\":%.3f"
          ",\"throughput_ops_per_s\":%.1f,\"sim_events_per_s\":%.0f"
          ",\"events\":%" PRIu64 ",\"invariant_violations\":%" PRIu64
          ",\"snapshots_taken\":%" PRIu64 ",\"snapshots_installed\":%" PRIu64
          ",\"disk_faults\":%" PRIu64 ",\"disk_corruptions_detected\":%" PRIu64
          ",\"disk_repairs\":%" PRIu64 ",\"crashes\":%" PRIu64,
          sum->runs, sum->runs_failed, sum->ops_ok, sum->ops_failed,
          sum->ops_indeterminate, sum->safety_violations,
          sum->linearizability_failures, sum->acked_writes_lost,
          sum->liveness_failures, sum->elections, sum->phase1_rounds,
          sum->ballots_burned, sum->latency_ms_p50, sum->latency_ms_p99,
          throughput(sum), events_per_s(sum), sum->events,
          sum->invariant_violations, sum->snapshots_taken,
          sum->snapshots_installed, sum->disk_faults,
          sum->disk_corruptions_detected, sum->disk_repairs, sum->crashes);
  for (uint32_t g = 0; a->o.n_groups > 1 && g < a->o.n_groups; g++) {
    fprintf(f,
            "%s{\"group\":%u,\"keys\":%u,\"ops_ok\":%" PRIu64
            ",\"elections\":%" PRIu64 ",\"latency_ms_p50\":%.3f",
            g == 0 ? ",\"per_group\":[" : ",", g, sum->group_keys[g],
            sum->group_ops_ok[g], sum->group_elections[g],
            group_p50_ms(sum, g));
    if (sum->runs == 1)
      fprintf(f, ",\"leader\":%u", sum->group_leader[g]);
    fprintf(f, "}%s", g + 1 == a->o.n_groups ? "]" : "");
  }
  if (sum->runs == 1)
    fprintf(f, ",\"trace_hash\":\"0x%016" PRIx64 "\"", sum->trace_hash);
  if (sum->has_failing_seed) {
    fprintf(f, ",\"first_failing_seed\":%" PRIu64 ",\"first_failure\":",
            sum->first_failing_seed);
    json_fput_text(f, sum->first_failure);
  }
  fprintf(f, "}\n");
  if (fclose(f) != 0) {
    fprintf(stderr, "sabha sim: cannot write %s\n", a->json_path);
    return CLI_EXIT_ERROR;
  }
  return 0;
}

static int history_write(const char *path, const struct hist_op *ops,
                         const struct sim_app_op *app_ops, size_t n) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "sabha sim: cannot write %s: %s\n", path, strerror(errno));
    return CLI_EXIT_ERROR;
  }
  int rv = sim_history_write_jsonl(f, ops, app_ops, n);
  if (fclose(f) != 0 || rv != 0) {
    fprintf(stderr, "sabha sim: cannot write %s\n", path);
    return CLI_EXIT_ERROR;
  }
  return 0;
}

/* ---- running ------------------------------------------------------------- */

/* The replay line's timing options ("" for fixed timing). */
static const char *timing_flags(const struct sim_args *a) {
  static _Thread_local char buf[96];
  if (a->o.timing != RT_TIMING_ADAPTIVE)
    return "";
  if (a->o.timing_floor_ms == 0 && a->o.timing_ceiling_ms == 0)
    return "--timing adaptive ";
  snprintf(buf, sizeof buf, "--timing adaptive --timing-bounds %u..%u ",
           a->o.timing_floor_ms, a->o.timing_ceiling_ms);
  return buf;
}

/* The replay line's fsync option ("" for auto). */
static const char *fsync_flag(const struct sim_args *a) {
  static const char *const flags[] = {"", "--fsync loop ", "--fsync thread "};
  return a->o.fsync < 3 ? flags[a->o.fsync] : "";
}

static void report_failure(const struct sim_args *a, uint64_t seed,
                           const struct sim_result *r) {
  char faults[128];
  sim_faults_format(a->o.faults, faults, sizeof faults);
  fprintf(stderr, "sabha sim: seed %" PRIu64 " FAILED %s\n", seed, r->failure);
  fprintf(stderr,
          "  replay: sabha sim --protocol %s --nodes %u --groups %u "
          "--clients %u --keys %u --ops %" PRIu64
          " --workload %s --faults %s%s%s%s %s%s%s--seed %" PRIu64 "\n",
          a->o.protocol, a->o.n_nodes, a->o.n_groups, a->o.n_clients,
          a->o.n_keys, a->o.n_ops, sim_workload_name(a->o.workload), faults,
          a->bug != NULL ? " --bug " : "", a->bug != NULL ? a->bug : "",
          a->o.proposer_backoff ? "" : " --backoff off",
          a->o.expiry ? "" : "--expiry off ", timing_flags(a), fsync_flag(a),
          seed);
}

/* Runs every seed for a.o.protocol into `sum` (zeroed by the caller).
 * Returns 0 or an exit status for an error that stopped the runs. */
static int run_seeds(struct sim_args *ap, struct summary *sump) {
  struct sim_args a = *ap;
  struct summary sum = *sump;
  int rv;
  struct hist_op *keep = NULL; /* history for --history */
  struct sim_app_op *keep_app = NULL;
  size_t n_keep = 0;
  bool keep_is_failure = false;
  for (uint64_t seed = a.seed_first;; seed++) {
    struct sim_result r;
    char err[256];
    a.o.seed = seed;
    rv = sim_run(&a.o, &r, err, sizeof err);
    if (rv != 0) {
      fprintf(stderr, "sabha sim: %s\n", err);
      free(keep);
      free(keep_app);
      free(sum.latencies_us);
      free(sum.glat);
      return rv == SABHA_ENOMEM ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
    }
    if (r.failed)
      report_failure(&a, seed, &r);
    if (a.verbose)
      fprintf(stderr,
              "seed %" PRIu64 ": %s ok=%" PRIu64 " fail=%" PRIu64
              " info=%" PRIu64 " lost=%" PRIu64 " elections=%" PRIu64
              " crashes=%" PRIu64 " snapshots=%" PRIu64 "/%" PRIu64
              " events=%" PRIu64 " sim=%.1fs\n",
              seed, r.failed ? "FAILED" : "passed", r.ops_ok, r.ops_failed,
              r.ops_indeterminate, r.acked_writes_lost, r.elections, r.crashes,
              r.snapshots_taken, r.snapshots_installed, r.events,
              (double)r.sim_time_us / 1e6);
    if (!summary_add(&sum, &r, seed)) {
      fprintf(stderr, "sabha sim: out of memory\n");
      sim_result_free(&r);
      free(keep);
      free(keep_app);
      return CLI_EXIT_ERROR;
    }
    if (a.history_path != NULL && !keep_is_failure) {
      free(keep);
      free(keep_app);
      keep = r.history;
      keep_app = r.app_history;
      n_keep = r.n_history;
      r.history = NULL;
      r.app_history = NULL;
      keep_is_failure = r.failed;
    }
    sim_result_free(&r);
    if (seed == a.seed_last)
      break;
  }
  summary_finish(&sum);
  *sump = sum;
  if (a.all_protocols) {
    free(keep);
    free(keep_app);
    return 0;
  }
  summary_print(&a, &sum);
  int out_rv = 0;
  if (a.json_path != NULL)
    out_rv = summary_json(&a, &sum);
  if (a.history_path != NULL && out_rv == 0)
    out_rv = history_write(a.history_path, keep, keep_app, n_keep);
  free(keep);
  free(keep_app);
  if (out_rv != 0)
    return out_rv;
  return 0;
}

/* --protocol all: every consensus engine on the same seeds, one column
 * each, so the numbers can be compared line by line. The async baseline is
 * left out: "all" asks whether the consensus engines hold up, and async is
 * known not to (run it by name to see what it loses). */
static int run_all(struct sim_args *a) {
  enum { PROTOCOLS_MAX = 8 };
  const char *names[PROTOCOLS_MAX];
  struct summary sums[PROTOCOLS_MAX];
  size_t n = 0;
  int rv = 0;
  for (const char *const *p = sabha_protocols();
       *p != NULL && n < PROTOCOLS_MAX; p++) {
    if (strcmp(*p, "async") == 0)
      continue;
    names[n] = *p;
    memset(&sums[n], 0, sizeof sums[n]);
    a->o.protocol = *p;
    rv = run_seeds(a, &sums[n]);
    n++;
    if (rv != 0)
      break;
  }
  printf("%-26s", "protocol:");
  for (size_t k = 0; k < n; k++)
    printf(" %12s", names[k]);
  printf("\n");
#define ALL_ROW(key, fmt, expr)                                                \
  do {                                                                         \
    printf("%-26s", key ":");                                                  \
    for (size_t k = 0; k < n; k++)                                             \
      printf(" %12" fmt, expr);                                                \
    printf("\n");                                                              \
  } while (0)
  ALL_ROW("runs", PRIu64, sums[k].runs);
  ALL_ROW("runs_failed", PRIu64, sums[k].runs_failed);
  ALL_ROW("ops_ok", PRIu64, sums[k].ops_ok);
  ALL_ROW("ops_failed", PRIu64, sums[k].ops_failed);
  ALL_ROW("ops_indeterminate", PRIu64, sums[k].ops_indeterminate);
  ALL_ROW("safety_violations", PRIu64, sums[k].safety_violations);
  ALL_ROW("linearizability_failures", PRIu64, sums[k].linearizability_failures);
  ALL_ROW("acked_writes_lost", PRIu64, sums[k].acked_writes_lost);
  ALL_ROW("elections", PRIu64, sums[k].elections);
  ALL_ROW("phase1_rounds", PRIu64, sums[k].phase1_rounds);
  ALL_ROW("ballots_burned", PRIu64, sums[k].ballots_burned);
  ALL_ROW("latency_ms_p50", ".3f", sums[k].latency_ms_p50);
  ALL_ROW("latency_ms_p99", ".3f", sums[k].latency_ms_p99);
  ALL_ROW("throughput_ops_per_s", ".1f", throughput(&sums[k]));
  ALL_ROW("sim_events_per_s", ".0f", events_per_s(&sums[k]));
  ALL_ROW("liveness_failures", PRIu64, sums[k].liveness_failures);
  ALL_ROW("invariant_violations", PRIu64, sums[k].invariant_violations);
  if (a->seed_first == a->seed_last)
    ALL_ROW("state_hash", PRIx64, sums[k].state_hash);
#undef ALL_ROW
  uint64_t failed = 0;
  for (size_t k = 0; k < n; k++) {
    failed += sums[k].runs_failed;
    free(sums[k].latencies_us);
    free(sums[k].glat);
  }
  if (rv != 0)
    return rv;
  return failed > 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

int cli_sim(int argc, char **argv) {
  struct sim_args a;
  int rv = parse_args(&a, argc, argv);
  if (rv != 0)
    return rv < 0 ? CLI_EXIT_OK : rv;
  if (a.all_protocols) {
    if (a.history_path != NULL || a.json_path != NULL)
      return usage_error("--history and --json take one protocol%s%s", "", "");
    return run_all(&a);
  }
  struct summary sum;
  memset(&sum, 0, sizeof sum);
  rv = run_seeds(&a, &sum);
  free(sum.latencies_us);
  free(sum.glat);
  if (rv != 0)
    return rv;
  return sum.runs_failed > 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}
