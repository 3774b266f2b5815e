/* What one lab run measured, computed from the simulator's result.
 *
 * Everything here is derived from three records the simulator keeps: the
 * client history (when each operation was called and answered, and how),
 * the leadership changes with their times, and the counters (messages,
 * bytes, checks). docs/lab.md defines every figure; the short version:
 *
 *   throughput     acknowledged operations per simulated second of the
 *                  client phase;
 *   latency        call to acknowledgement of each acknowledged operation,
 *                  retries included (p50, p99, p99.9, max, mean);
 *   availability   share of the 100 ms buckets of the load phase (the
 *                  client phase, cut at the workload's duration: after it
 *                  the clients only finish what they started) in which at
 *                  least one write was acknowledged;
 *   recovery       after each timeline event: if throughput dipped (two
 *                  buckets in a row under half the pre-fault rate) before
 *                  the next event, from the event to the start of the first
 *                  bucket after the dip from which two buckets in a row
 *                  reach half that rate again; 0 with no dip;
 *   first commit   after each event: to the first write both issued and
 *                  acknowledged after it;
 *   leader changes new leaderships after the first, in the client phase;
 *   per operation  messages and bytes between nodes per acknowledged
 *                  operation. */
#ifndef SABHA_LAB_METRICS_H
#define SABHA_LAB_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lab/scenario.h"
#include "sim/sim.h"

#define LAB_BUCKET_US 100000u  /* 100 ms: the charts' and availability's */
#define LAB_BUCKETS_MAX 12000u /* 20 minutes of client phase */
#define LAB_MARKS_MAX LAB_EVENTS_MAX
/* Fewer acknowledged operations than this and the p99 (p99.9) is not
 * reported: by nearest rank it would be the maximum, or next to it. */
#define LAB_P99_SAMPLES_MIN 100u
#define LAB_P999_SAMPLES_MIN 1000u
#define LAB_WINDOW_GRACE_US                                                    \
  50000u /* answers already on the wire when a                                 \
            window opens are not counted in it */

/* The timeline's distinct instants (events at one time share a mark). */
struct lab_marks {
  uint64_t load_end_us; /* when the clients stop starting operations (the
                           workload's duration); 0: the run is bounded by
                           an operation count instead */
  uint32_t n;
  uint64_t at_us[LAB_MARKS_MAX];
  char label[LAB_MARKS_MAX][200];
};

/* Per 100 ms bucket of the client phase. */
struct lab_series {
  uint32_t n;
  uint32_t *ops;    /* acknowledged operations answered in the bucket */
  uint32_t *writes; /* ... of which writes */
  float *p50_ms;    /* latency of those operations; < 0: none */
  float *p99_ms;
};

/* One stretch of the timeline between two marks. */
struct lab_window {
  uint64_t from_us, to_us;
  uint64_t ops;    /* acknowledged after from + grace, before to */
  uint64_t writes; /* ditto, writes */
  uint32_t leader_changes;
};

/* One group of a run with several (sim_options.n_groups). */
struct lab_group_figures {
  uint32_t leader; /* node id leading it at the end; 0: none */
  uint32_t keys;   /* the workload's keys that map to it */
  uint64_t ops_ok;
  double latency_ms_p50; /* < 0: no acknowledged operation */
  uint32_t leader_changes;
};

struct lab_metrics {
  /* Operations. */
  uint64_t ops_total, ops_ok, ops_failed, ops_info, writes_ok;
  double client_s;     /* length of the client phase */
  double throughput;   /* ops_ok / client_s */
  double success_rate; /* ops_ok / ops_total */
  double latency_ms_mean, latency_ms_p50, latency_ms_p99, latency_ms_p999,
      latency_ms_max;  /* p99 (p99.9) < 0: fewer than LAB_P99_SAMPLES_MIN
                          (LAB_P999_SAMPLES_MIN) acknowledged operations */
  double availability; /* 0..1 */

  /* After each mark; < 0: not within the window that follows it. */
  double recovery_s[LAB_MARKS_MAX];
  double first_commit_s[LAB_MARKS_MAX];
  struct lab_window windows[LAB_MARKS_MAX + 1]; /* n_marks + 1 */
  uint32_t n_windows;
  double baseline_ops_per_s; /* before the first mark */

  uint64_t leader_changes;
  uint64_t elections_started; /* Raft elections, Paxos phase-1 rounds,
                                 every node (won or not) */
  uint64_t msgs_sent, msg_bytes_sent;
  double msgs_per_op, bytes_per_op;

  /* Checks. */
  uint64_t acked_writes_lost, safety_violations, linearizability_failures,
      liveness_failures, invariant_violations;
  bool failed;
  bool fatal; /* a consensus engine broke safety: the lab fails */
  char failure[512];

  /* For the charts. */
  struct lab_series series;
  uint32_t *latencies_us; /* acknowledged ops, sorted (malloc'd) */
  size_t n_latencies;
  struct sim_leader_change *leaders; /* in the client phase (malloc'd) */
  size_t n_leaders;

  /* Per group, with several groups (else n_groups is 1 and groups[] is
   * not filled). */
  uint32_t n_groups;
  struct lab_group_figures groups[LAB_GROUPS_MAX];

  double wall_s;
  uint64_t events;
  uint64_t trace_hash;
  bool op_cap_hit; /* the run's operation cap ended the client phase early */
};

/* True for the engines that promise consensus (not the async baseline). */
bool lab_engine_is_consensus(const char *engine);

/* Computes `m` from a finished run. Returns 0 or SABHA_ENOMEM; on success
 * `m` owns arrays to release with lab_metrics_free(). */
int lab_metrics_compute(const char *engine, const struct sim_result *r,
                        const struct lab_marks *marks, uint64_t op_cap,
                        struct lab_metrics *m);
void lab_metrics_free(struct lab_metrics *m);

/* A figure over seeds: median (core/stats.h), least and greatest. Values
 * < 0 (not measured) are left out; n says how many counted. */
struct lab_stat {
  double median, min, max;
  uint32_t n;
};

struct lab_stat lab_stat_of(const double *values, size_t n);

#endif
