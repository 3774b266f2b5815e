/* `sabha bench`: load on a real, running cluster, with the applications'
 * workloads, and their invariants checked afterwards.
 *
 *   sabha bench --dir DIR [--workload ledger,seats] [--seconds 10] ...
 *   sabha bench --addr 127.0.0.1:17000,127.0.0.1:17001 --workload set ...
 *
 * The simulator measures the engines under faults in virtual time; this
 * measures sabhad itself — sockets, the WAL's fsync, forwarding — with
 * what the applications send, and checks on the real cluster the same
 * promises the simulator's checkers make: money conserved, no seat sold
 * twice, fencing tokens that grow, orders that only move forward. Each
 * workload runs in turn, bounded by --count requests and --seconds, over
 * --connections connections spread across the nodes, each with --pipeline
 * requests in flight. Figures go out as `key: value` lines (or one JSON
 * object with --json) with the commit, the settings and the machine; a
 * broken invariant makes the exit status 1. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "check/json.h"
#include "cli/bench.h"
#include "cli/cli.h"
#include "core/decimal.h"

#ifndef SABHA_COMMIT
#define SABHA_COMMIT "unknown"
#endif

#define CONNECTIONS_MAX 1024u
#define PIPELINE_MAX 256u
#define SECONDS_MAX 3600.0
#define KEYS_MAX 100000000u
#define OBJECTS_MAX 100000u /* accounts, seats, locks */

static const char *const faults[] = {"lost-paisa", "double-booking",
                                     "token-regress", "order-regress"};

void cli_bench_usage(FILE *f) {
  fprintf(f,
          "usage: sabha bench (--dir DIR | --addr HOST:PORT[,...])\n"
          "                   [--workload W[,W...]|all] [--seconds 10]\n"
          "                   [--count N] [--connections 16] [--pipeline 1]\n"
          "                   [--keys 100000] [--value-bytes 100]\n"
          "                   [--accounts 100] [--seats 100] [--locks 16]\n"
          "                   [--password P] [--seed N] [--json]\n"
          "                   [--inject FAULT]\n"
          "\n"
          "Loads a running sabha cluster over RESP, one workload after the\n"
          "other, and checks the applications' invariants afterwards.\n"
          "--dir: the nodes of a `sabha cluster start --dir DIR` cluster\n"
          "(and DIR/requirepass, if any); --addr: any nodes, any of which\n"
          "serves (followers forward to the leader). Connections are spread\n"
          "over the nodes. Each workload ends after --count requests or\n"
          "--seconds, whichever is first.\n"
          "\n"
          "workloads:\n");
  for (size_t i = 0; i < bench_workloads_n; i++)
    fprintf(f, "  %-7s %s\n", bench_workloads[i].name,
            bench_workloads[i].about);
  fprintf(f, "\n"
             "Output: `key: value` lines, each prefixed with the workload's\n"
             "name (set_ops_per_s, ledger_latency_ms_p99, ...), then the\n"
             "invariants (ledger_money_conserved: yes, seats_sold_twice: 0,\n"
             "...) and `invariants: ok` or `broken`; --json prints one JSON\n"
             "object instead. Exit status 1 when an invariant is broken, 3\n"
             "when the cluster cannot be reached.\n"
             "--inject FAULT corrupts what the checks read, to show that they\n"
             "catch it: lost-paisa (ledger), double-booking (seats),\n"
             "token-regress (locks), order-regress (orders).\n");
}

/* ---- Flags ----------------------------------------------------------------
 */

struct opts {
  struct bench_settings set;
  const char *dir;
  bool run[16]; /* per bench_workloads entry */
  bool json;
};

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  return dec_parse_flag(s, lo, hi, out);
}

static bool parse_u32_flag(const char *s, uint32_t lo, uint32_t hi,
                           uint32_t *out) {
  uint64_t v;
  if (!dec_parse_flag(s, lo, hi, &v))
    return false;
  *out = (uint32_t)v;
  return true;
}

static bool add_addr(struct bench_settings *set, const char *host,
                     size_t host_len, uint32_t port) {
  if (set->n_addrs == BENCH_NODES_MAX || host_len == 0 ||
      host_len >= sizeof set->addrs[0].host || port == 0 || port > 65535)
    return false;
  struct bench_addr *a = &set->addrs[set->n_addrs++];
  memcpy(a->host, host, host_len);
  a->host[host_len] = '\0';
  a->port = (uint16_t)port;
  return true;
}

/* Calls item(ctx, word) for each word of a comma-separated list; false
 * when the list is too long or empty, or item refuses a word. */
static bool each_item(const char *list, bool (*item)(void *ctx, char *word),
                      void *ctx) {
  char buf[1024];
  if (strlen(list) >= sizeof buf)
    return false;
  strcpy(buf, list);
  bool any = false;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    if (!item(ctx, tok))
      return false;
    any = true;
  }
  return any;
}

/* host:port */
static bool addr_item(void *ctx, char *word) {
  char *colon = strrchr(word, ':');
  uint32_t port;
  return colon != NULL && parse_u32_flag(colon + 1, 1, 65535, &port) &&
         add_addr(ctx, word, (size_t)(colon - word), port);
}

/* a workload's name, or all */
static bool workload_item(void *ctx, char *word) {
  struct opts *o = ctx;
  bool found = false;
  for (size_t i = 0; i < bench_workloads_n; i++)
    if (strcmp(word, "all") == 0 || strcmp(word, bench_workloads[i].name) == 0)
      o->run[i] = found = true;
  return found;
}

/* The nodes of a `sabha cluster` directory, and its password file. */
static int from_dir(struct opts *o) {
  uint32_t ports[BENCH_NODES_MAX], n;
  bool tls;
  if (cli_cluster_clients(o->dir, ports, BENCH_NODES_MAX, &n, &tls) != 0) {
    fprintf(stderr, "sabha bench: no cluster in %s (no cluster.conf)\n",
            o->dir);
    return CLI_EXIT_USAGE;
  }
  if (tls) {
    fprintf(stderr,
            "sabha bench: the cluster in %s speaks TLS; sabha bench "
            "speaks plain RESP only\n",
            o->dir);
    return CLI_EXIT_USAGE;
  }
  for (uint32_t i = 0; i < n; i++)
    add_addr(&o->set, "127.0.0.1", 9, ports[i]);
  char path[4096];
  snprintf(path, sizeof path, "%s/requirepass", o->dir);
  FILE *f = o->set.password[0] == '\0' ? fopen(path, "r") : NULL;
  if (f != NULL) {
    if (fgets(o->set.password, sizeof o->set.password, f) == NULL)
      o->set.password[0] = '\0';
    o->set.password[strcspn(o->set.password, "\r\n")] = '\0';
    fclose(f);
  }
  return CLI_EXIT_OK;
}

static int parse_opts(int argc, char **argv, struct opts *o) {
  struct bench_settings *s = &o->set;
  s->connections = 16;
  s->pipeline = 1;
  s->seconds = 10;
  s->keys = 100000;
  s->value_bytes = 100;
  s->accounts = 100;
  s->seats = 100;
  s->locks = 16;
  s->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  s->inject = "";
  bool any_workload = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok = true;
    if (strcmp(a, "--json") == 0) {
      o->json = true;
      continue;
    }
    if (v == NULL) {
      fprintf(stderr, "sabha bench: %s needs a value (sabha help bench)\n", a);
      return CLI_EXIT_USAGE;
    }
    i++;
    if (strcmp(a, "--dir") == 0) {
      o->dir = v;
    } else if (strcmp(a, "--addr") == 0) {
      ok = each_item(v, addr_item, s);
    } else if (strcmp(a, "--workload") == 0) {
      ok = each_item(v, workload_item, o);
      any_workload = true;
    } else if (strcmp(a, "--connections") == 0) {
      ok = parse_u32_flag(v, 1, CONNECTIONS_MAX, &s->connections);
    } else if (strcmp(a, "--pipeline") == 0) {
      ok = parse_u32_flag(v, 1, PIPELINE_MAX, &s->pipeline);
    } else if (strcmp(a, "--count") == 0) {
      ok = parse_u64(v, 1, UINT64_MAX / 2, &s->count);
    } else if (strcmp(a, "--seconds") == 0) {
      char *end;
      errno = 0;
      s->seconds = strtod(v, &end);
      ok = errno == 0 && *end == '\0' && s->seconds > 0 &&
           s->seconds <= SECONDS_MAX;
    } else if (strcmp(a, "--keys") == 0) {
      ok = parse_u32_flag(v, 1, KEYS_MAX, &s->keys);
    } else if (strcmp(a, "--value-bytes") == 0) {
      ok = parse_u32_flag(v, 0, BENCH_VALUE_BYTES_MAX, &s->value_bytes);
    } else if (strcmp(a, "--accounts") == 0) {
      ok = parse_u32_flag(v, 2, OBJECTS_MAX, &s->accounts);
    } else if (strcmp(a, "--seats") == 0) {
      ok = parse_u32_flag(v, 1, OBJECTS_MAX, &s->seats);
    } else if (strcmp(a, "--locks") == 0) {
      ok = parse_u32_flag(v, 1, OBJECTS_MAX, &s->locks);
    } else if (strcmp(a, "--seed") == 0) {
      ok = parse_u64(v, 0, UINT64_MAX, &s->seed);
    } else if (strcmp(a, "--password") == 0) {
      ok = strlen(v) < sizeof s->password;
      if (ok)
        strcpy(s->password, v);
    } else if (strcmp(a, "--inject") == 0) {
      ok = false;
      for (size_t k = 0; k < sizeof faults / sizeof faults[0]; k++)
        ok = ok || strcmp(v, faults[k]) == 0;
      s->inject = v;
    } else {
      fprintf(stderr, "sabha bench: unknown flag %s (sabha help bench)\n", a);
      return CLI_EXIT_USAGE;
    }
    if (!ok) {
      fprintf(stderr, "sabha bench: bad value '%s' for %s (sabha help bench)\n",
              v, a);
      return CLI_EXIT_USAGE;
    }
  }
  if (!any_workload)
    o->run[0] = true; /* set */
  if (o->dir != NULL) {
    int rc = from_dir(o);
    if (rc != CLI_EXIT_OK)
      return rc;
  }
  if (s->n_addrs == 0) {
    fprintf(stderr, "sabha bench: name the nodes with --dir or --addr\n");
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

/* ---- A workload's run ------------------------------------------------------
 */

static void run_free(struct bench_run *r) {
  free(r->value);
  free(r->balance);
  free(r->seat_holder);
  free(r->fenced_token);
  records_free(&r->pnrs);
  records_free(&r->grants);
  records_free(&r->orders);
}

/* Sets up, loads, checks. Returns CLI_EXIT_ERROR when the cluster could not
 * be used (the figures are then meaningless). */
static int run_one(struct bench_run *r) {
  const struct bench_settings *set = r->set;
  r->value = malloc(set->value_bytes + 1u);
  if (r->value == NULL)
    return CLI_EXIT_ERROR;
  for (uint32_t i = 0; i < set->value_bytes; i++)
    r->value[i] = (uint8_t)('a' + bench_rand_below(r, 26));
  struct bench_link *l = link_open(set, &set->addrs[0]);
  if (l == NULL)
    return CLI_EXIT_ERROR;
  if (r->w->setup(r, l) != 0) {
    fprintf(stderr, "sabha bench: %s: setup failed%s%s\n", r->w->name,
            r->first_error[0] ? ": " : "", r->first_error);
    link_close(l);
    return CLI_EXIT_ERROR;
  }
  link_close(l);
  if (bench_load(r) != 0)
    return CLI_EXIT_ERROR;
  /* A fresh link for the checks: the load's may have moved or died. */
  l = link_open(set, &set->addrs[0]);
  if (l == NULL)
    return CLI_EXIT_ERROR;
  r->invariants_ok = r->w->check(r, l);
  link_close(l);
  return CLI_EXIT_OK;
}

static double ms(uint64_t ns) {
  return (double)ns / 1e6;
}

static double ops_per_s(const struct bench_run *r) {
  uint64_t done = r->ok + r->refused + r->failed;
  return r->elapsed_s > 0 ? (double)done / r->elapsed_s : 0;
}

static const double quantiles[] = {0.5, 0.9, 0.99, 0.999};
static const char *const quantile_names[] = {"p50", "p90", "p99", "p999"};

static void print_text(const struct bench_run *r) {
  const char *w = r->w->name;
  printf("# %s: %" PRIu64 " requests in %.2f s over %u connections x %u "
         "pipeline\n",
         w, r->ok + r->refused + r->failed + r->unknown, r->elapsed_s,
         r->set->connections, r->set->pipeline);
  printf("%s_requests: %" PRIu64 "\n", w,
         r->ok + r->refused + r->failed + r->unknown);
  printf("%s_seconds: %.3f\n", w, r->elapsed_s);
  printf("%s_ops_per_s: %.0f\n", w, ops_per_s(r));
  for (size_t q = 0; q < 4; q++)
    printf("%s_latency_ms_%s: %.3f\n", w, quantile_names[q],
           ms(hist_quantile_ns(&r->hist, quantiles[q])));
  printf("%s_latency_ms_max: %.3f\n", w, ms(r->hist.max_ns));
  printf("%s_ok: %" PRIu64 "\n%s_refused: %" PRIu64 "\n%s_failed: %" PRIu64
         "\n%s_retries: %" PRIu64 "\n%s_unknown: %" PRIu64 "\n",
         w, r->ok, w, r->refused, w, r->failed, w, r->retries, w, r->unknown);
  if (r->first_error[0] != '\0')
    printf("%s_first_error: %s\n", w, r->first_error);
  if (r->stopped_early)
    printf("%s_stopped_early: records bound reached\n", w);
  fwrite(r->checks, 1, r->checks_len, stdout);
  printf("%s_invariants: %s\n", w, r->invariants_ok ? "ok" : "broken");
}

static void print_json_run(const struct bench_run *r, bool first) {
  printf("%s\n    {\"workload\": \"%s\", \"requests\": %" PRIu64
         ", \"seconds\": %.3f, \"ops_per_s\": %.1f, \"latency_ms\": {",
         first ? "" : ",", r->w->name,
         r->ok + r->refused + r->failed + r->unknown, r->elapsed_s,
         ops_per_s(r));
  for (size_t q = 0; q < 4; q++)
    printf("\"%s\": %.4f, ", quantile_names[q],
           ms(hist_quantile_ns(&r->hist, quantiles[q])));
  printf("\"max\": %.4f}, \"ok\": %" PRIu64 ", \"refused\": %" PRIu64
         ", \"failed\": %" PRIu64 ", \"retries\": %" PRIu64
         ", \"unknown\": %" PRIu64 ", \"first_error\": ",
         ms(r->hist.max_ns), r->ok, r->refused, r->failed, r->retries,
         r->unknown);
  json_fput_text(stdout, r->first_error);
  printf(", \"invariants_ok\": %s, \"checks\": {",
         r->invariants_ok ? "true" : "false");
  /* The check lines, as string members. */
  const char *p = r->checks, *end = r->checks + r->checks_len;
  bool first_check = true;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *colon = memchr(p, ':', (size_t)((nl ? nl : end) - p));
    if (nl == NULL || colon == NULL)
      break;
    printf("%s", first_check ? "" : ", ");
    json_fput_bytes(stdout, p, (size_t)(colon - p));
    printf(": ");
    const char *v = colon + 1 + (colon[1] == ' ');
    json_fput_bytes(stdout, v, (size_t)(nl - v));
    first_check = false;
    p = nl + 1;
  }
  printf("}}");
}

static void print_json_head(const struct opts *o) {
  const struct bench_settings *s = &o->set;
  struct utsname u;
  if (uname(&u) != 0)
    strcpy(u.release, "unknown");
  printf("{\n  \"commit\": ");
  json_fput_text(stdout, SABHA_COMMIT);
  printf(",\n  \"machine\": {\"cores\": %ld, \"kernel\": ",
         sysconf(_SC_NPROCESSORS_ONLN));
  json_fput_text(stdout, u.release);
  printf(", \"arch\": ");
  json_fput_text(stdout, u.machine);
  printf("},\n  \"settings\": {\"nodes\": [");
  for (uint32_t i = 0; i < s->n_addrs; i++) {
    char a[96];
    snprintf(a, sizeof a, "%s:%u", s->addrs[i].host, s->addrs[i].port);
    printf("%s", i > 0 ? ", " : "");
    json_fput_text(stdout, a);
  }
  printf("], \"connections\": %u, \"pipeline\": %u, \"count\": %" PRIu64
         ", \"seconds\": %.3f, \"keys\": %u, \"value_bytes\": %u, "
         "\"accounts\": %u, \"seats\": %u, \"locks\": %u, \"seed\": %" PRIu64
         ", \"inject\": ",
         s->connections, s->pipeline, s->count, s->seconds, s->keys,
         s->value_bytes, s->accounts, s->seats, s->locks, s->seed);
  json_fput_text(stdout, s->inject);
  printf("},\n  \"runs\": [");
}

static void print_text_head(const struct opts *o) {
  struct utsname u;
  if (uname(&u) != 0)
    strcpy(u.release, "unknown");
  printf("commit: %s\nmachine: %ld cores, %s %s\nnodes: %u\n", SABHA_COMMIT,
         sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, o->set.n_addrs);
  printf("connections: %u\npipeline: %u\nseed: %" PRIu64 "\n",
         o->set.connections, o->set.pipeline, o->set.seed);
}

int cli_bench(int argc, char **argv) {
  static struct opts o; /* large (settings, a password): not on the stack */
  memset(&o, 0, sizeof o);
  int rc = parse_opts(argc, argv, &o);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (o.json)
    print_json_head(&o);
  else
    print_text_head(&o);
  bool all_ok = true, first = true;
  for (size_t i = 0; i < bench_workloads_n; i++) {
    if (!o.run[i])
      continue;
    struct bench_run *r = calloc(1, sizeof *r);
    if (r == NULL)
      return CLI_EXIT_ERROR;
    r->set = &o.set;
    r->w = &bench_workloads[i];
    r->rng = o.set.seed + i;
    /* Names no earlier run used: a new prefix per run and workload. */
    snprintf(r->prefix, sizeof r->prefix, "b%" PRIx64 "%zu",
             (uint64_t)((bench_now_ns() / 1000u) & 0xffffffffffu), i);
    rc = run_one(r);
    if (rc != CLI_EXIT_OK) {
      fflush(stdout);
      fprintf(stderr, "sabha bench: %s: the cluster could not be used%s%s\n",
              r->w->name, r->first_error[0] ? ": " : "", r->first_error);
      run_free(r);
      free(r);
      return rc;
    }
    if (o.json)
      print_json_run(r, first);
    else
      print_text(r);
    fflush(stdout);
    first = false;
    all_ok = all_ok && r->invariants_ok;
    run_free(r);
    free(r);
  }
  if (o.json)
    printf("\n  ],\n  \"invariants_ok\": %s\n}\n", all_ok ? "true" : "false");
  else
    printf("invariants: %s\n", all_ok ? "ok" : "broken");
  return all_ok ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
