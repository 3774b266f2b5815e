/* `sabha bench` internals, shared by its three files:
 *
 *   bench_cmd.c   the flags, the run of each workload, the report;
 *   bench_net.c   connections to the nodes over RESP (non-blocking, one
 *                 poll loop, pipelining), the reply parser, the latency
 *                 histogram;
 *   bench_apps.c  the workloads (SET/GET, ledger, seats, locks, orders) and
 *                 the invariants checked after each run.
 *
 * The load generator is one thread and one poll loop. Each connection holds
 * `pipeline` sessions; a session is one client of the workload with its own
 * state (the order it is moving along, the lock it holds), and has at most
 * one request in flight, so a connection has at most `pipeline`. Replies
 * come back in order, so a ring of in-flight session numbers per connection
 * says whose reply each one is. Nothing is allocated per request: commands
 * are encoded into each connection's fixed output buffer, latencies land in
 * a fixed-size histogram, and what the invariant checks need (the PNRs, the
 * lock grants, the orders) goes into arrays that grow by doubling up to a
 * bound, which ends the run early when reached. */
#ifndef SABHA_CLI_BENCH_H
#define SABHA_CLI_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_ARGS_MAX 8u
#define BENCH_ARG_BYTES_MAX 64u /* an app argument's bound (docs/apps.md) */
#define BENCH_ELEMS_MAX 8u      /* array elements a reply keeps */
#define BENCH_NODES_MAX 16u
/* An encoded command's bytes, its value aside: BENCH_ARGS_MAX arguments of
 * at most BENCH_ARG_BYTES_MAX bytes and their headers. */
#define BENCH_CMD_BYTES_MAX 1024u
#define BENCH_VALUE_BYTES_MAX (32u * 1024u)
#define BENCH_RECORDS_MAX (4u << 20) /* per record kind: ends the run early */

/* ---- Latency histogram ---------------------------------------------------
 *
 * HDR-style log-linear buckets over nanoseconds: values below 128 have a
 * bucket each; above, every power of two is cut into 64 equal buckets, so a
 * bucket is at most 1/64 (1.6 %) wider than its lower bound. 2048 buckets
 * reach 2^37 ns (137 s); larger values land in the last. */
#define HIST_SUB_BITS 6u
#define HIST_BUCKETS 2048u

struct bench_hist {
  uint64_t count;
  uint64_t max_ns;
  uint64_t sum_ns;
  uint64_t bucket[HIST_BUCKETS];
};

void hist_add(struct bench_hist *h, uint64_t ns);
/* The upper bound of the bucket holding the q-quantile (0 < q <= 1), never
 * above the largest value recorded; 0 when empty. */
uint64_t hist_quantile_ns(const struct bench_hist *h, double q);

/* ---- Replies -------------------------------------------------------------
 */

struct bench_str {
  const char *ptr; /* into the connection's input buffer: valid until the
                      next read */
  size_t len;
};

struct bench_elem {
  char type; /* '+' '-' ':' '$' '_' (nil) '*' (a nested array) */
  int64_t integer;
  struct bench_str str;
};

struct bench_reply {
  char type;            /* as bench_elem's, for the reply itself */
  int64_t integer;      /* ':' */
  struct bench_str str; /* '+', '-', '$' */
  uint32_t n;           /* '*': elements; the first BENCH_ELEMS_MAX are kept */
  struct bench_elem elem[BENCH_ELEMS_MAX];
};

/* Parses the first reply in buf[0, len): 1 (complete, *used bytes), 0 (need
 * more), -1 (not RESP2). Nested arrays are skipped, not kept. */
int bench_reply_parse(const uint8_t *buf, size_t len, struct bench_reply *r,
                      size_t *used);
bool bench_reply_is(const struct bench_reply *r, char type, const char *s);
/* An error reply whose first word is `word` ("TRYAGAIN", "MOVED"). */
bool bench_reply_error_is(const struct bench_reply *r, const char *word);

/* ---- Commands ------------------------------------------------------------
 */

struct bench_cmd {
  uint32_t argc;
  uint16_t off[BENCH_ARGS_MAX];
  uint16_t len[BENCH_ARGS_MAX];
  char text[BENCH_ARGS_MAX * (BENCH_ARG_BYTES_MAX + 1)];
  size_t used;
  const uint8_t *value; /* an optional last argument outside `text` */
  size_t value_len;
};

void cmd_init(struct bench_cmd *c);
/* Appends one printf-formatted argument (at most 64 bytes). */
void cmd_arg(struct bench_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- A run ---------------------------------------------------------------
 */

struct bench_addr {
  char host[64];
  uint16_t port;
};

/* One simulated client of a workload; the union is the workload's. */
struct bench_session {
  uint32_t index; /* 0 .. sessions - 1 */
  uint32_t tries; /* of the request in flight; 0 for a new one */
  union {
    struct {
      uint32_t key;
      bool get;
    } kv;
    struct {
      uint64_t tx;
      uint32_t from, to;
      uint64_t amount;
    } ledger;
    struct {
      uint64_t request;
      uint32_t seat;
      bool holding; /* the next request cancels pnr */
      char pnr[24];
    } seats;
    struct {
      uint8_t phase; /* 0 acquire, 1 fenced write, 2 release */
      uint32_t lock;
      uint64_t owner;
      uint64_t token;
      uint64_t acquire_sent_ns;
    } locks;
    struct {
      uint64_t order; /* index into run->orders */
      uint8_t next;   /* the state the next request moves it to */
    } orders;
  } u;
};

struct bench_run;
struct bench_link;

/* A workload: setup and check run on one blocking link before and after the
 * load; next/reply drive one session. reply() returns one of the outcomes
 * below; BENCH_RETRY sends the same request again (the session's state is
 * unchanged, so next() rebuilds it, ids included: exactly once). */
enum bench_outcome {
  BENCH_OK = 0,
  BENCH_REFUSED = 1, /* an error reply the workload expects (seat taken) */
  BENCH_FAILED = 2,  /* an error reply it does not */
  BENCH_RETRY = 3,
};

struct bench_workload {
  const char *name;
  const char *about;
  int (*setup)(struct bench_run *r, struct bench_link *l);
  void (*next)(struct bench_run *r, struct bench_session *s,
               struct bench_cmd *c);
  enum bench_outcome (*reply)(struct bench_run *r, struct bench_session *s,
                              const struct bench_reply *rep, uint64_t sent_ns,
                              uint64_t now_ns);
  /* Reads the cluster back and prints `key: value` lines into r->checks;
   * returns false when an invariant is broken. */
  bool (*check)(struct bench_run *r, struct bench_link *l);
};

extern const struct bench_workload bench_workloads[];
extern const size_t bench_workloads_n;

/* What the invariant checks remember. */
struct bench_pnr {
  char pnr[24];
  uint32_t seat;
};
struct bench_grant {
  uint32_t lock;
  uint64_t token;
  uint64_t sent_ns, acked_ns;
};

struct bench_records {
  void *data;
  size_t n, cap, size; /* elements, allocated, bytes each */
};
/* A new element, zeroed; NULL at BENCH_RECORDS_MAX or out of memory. */
void *records_push(struct bench_records *rs);
void records_free(struct bench_records *rs);

struct bench_settings {
  struct bench_addr addrs[BENCH_NODES_MAX];
  uint32_t n_addrs;
  char password[256]; /* "" for none */
  uint32_t connections;
  uint32_t pipeline;
  uint64_t count; /* requests per workload; 0: no bound */
  double seconds; /* per workload */
  uint32_t keys;  /* kv key space */
  uint32_t value_bytes;
  uint32_t accounts;
  uint32_t seats;
  uint32_t locks;
  uint64_t seed;
  const char *inject; /* "" or a fault the checks must catch */
};

struct bench_run {
  const struct bench_settings *set;
  const struct bench_workload *w;
  char prefix[32]; /* names this run's accounts, trains, locks, orders */
  uint64_t rng;
  uint8_t *value; /* value_bytes of filler */
  /* Results. */
  struct bench_hist hist;
  uint64_t ok, refused, failed, retries, unknown;
  double elapsed_s;
  bool stopped_early; /* a record array reached its bound */
  char first_error[160];
  char checks[4096]; /* `key: value` lines from check() */
  size_t checks_len;
  bool invariants_ok;
  /* Workload state, for the checks. */
  int64_t *balance;            /* ledger: expected per account, from acks */
  uint32_t *seat_holder;       /* seats: 1 + session holding it, or 0 */
  uint64_t double_booked;      /* seats: seen while the run went */
  struct bench_records pnrs;   /* struct bench_pnr */
  struct bench_records grants; /* struct bench_grant */
  uint64_t *fenced_token;      /* locks: newest token written per lock */
  uint64_t stale_refused;      /* locks: a live holder's write refused */
  struct bench_records orders; /* uint8_t: last acknowledged state */
  uint64_t next_id;            /* ids: transfers, requests, owners */
};

uint64_t bench_rand(struct bench_run *r);
uint32_t bench_rand_below(struct bench_run *r, uint32_t n);
void bench_check_printf(struct bench_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- Links: blocking use, for setup and checks ---------------------------
 */

/* Connects to one node (AUTH when a password is set). NULL on failure, with
 * a message on stderr. */
struct bench_link *link_open(const struct bench_settings *set,
                             const struct bench_addr *a);
void link_close(struct bench_link *l);
/* Sends c and waits (up to 30 s) for its reply. false on a broken link. */
bool link_call(struct bench_link *l, const struct bench_cmd *c,
               struct bench_reply *rep);
/* Sends n commands, `window` at a time, calling build(i) then on_reply(i).
 * A -TRYAGAIN reply is retried (a few times, with a pause). */
bool link_batch(struct bench_link *l, uint64_t n,
                void (*build)(void *ctx, uint64_t i, struct bench_cmd *c),
                void (*on_reply)(void *ctx, uint64_t i,
                                 const struct bench_reply *rep),
                void *ctx);

/* ---- The load ------------------------------------------------------------
 */

/* Runs r->w's sessions over the settings' connections until count or
 * seconds; fills the results. Returns 0, or -1 when no connection could be
 * made. */
int bench_load(struct bench_run *r);

uint64_t bench_now_ns(void);

#endif
