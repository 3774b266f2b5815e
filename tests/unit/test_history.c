/* Unit tests for the history JSON-lines writer and reader
 * (src/check/history.c).
 *
 * The writer's lines are compared with the examples documented in
 * history.h, every field survives a round trip, and each way a line can be
 * wrong is rejected with the right line number and a reason a person can act
 * on. Run with a test name as the argument to run only that test. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check/histgen.h"
#include "check/history.h"
#include "check/linearize.h"
#include "core/prng.h"
#include "sabha/error.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct hist_op op_new(uint32_t client, uint32_t kind, uint32_t status,
                             uint32_t key, int64_t expected, int64_t value,
                             int32_t output, uint64_t call_us,
                             uint64_t return_us) {
  struct hist_op op;
  memset(&op, 0, sizeof op);
  op.client = client;
  op.kind = kind;
  op.status = status;
  op.key = key;
  op.expected = expected;
  op.value = value;
  op.output = output;
  op.call_us = call_us;
  op.return_us = return_us;
  return op;
}

static struct hist_op with_ttl(struct hist_op op) {
  op.flags = HIST_TTL;
  return op;
}

static bool op_equal(const struct hist_op *a, const struct hist_op *b) {
  return a->client == b->client && a->kind == b->kind &&
         a->status == b->status && a->key == b->key && a->value == b->value &&
         a->expected == b->expected && a->output == b->output &&
         a->flags == b->flags && a->call_us == b->call_us &&
         a->return_us == b->return_us;
}

/* Reads `text`; returns the number of ops read, or -1 (with the reason on
 * stderr). *ops_out is malloc'd. */
static long read_text(const char *text, struct hist_op **ops_out) {
  FILE *f = tmpfile();
  if (f == NULL)
    return -1;
  fputs(text, f);
  rewind(f);
  size_t n = 0;
  char err[160];
  int rc = hist_read_jsonl(f, ops_out, &n, err, sizeof err);
  fclose(f);
  if (rc != 0) {
    fprintf(stderr, "read: %s\n", err);
    return -1;
  }
  return (long)n;
}

/* Writes `text` to a temporary file and rewinds it. */
static FILE *file_with(const char *text) {
  FILE *f = tmpfile();
  if (f == NULL)
    return NULL;
  fputs(text, f);
  rewind(f);
  return f;
}

/* Everything a file holds, as a malloc'd string. */
static char *slurp(FILE *f) {
  rewind(f);
  size_t cap = 4096, n = 0;
  char *s = malloc(cap);
  int ch;
  while (s != NULL && (ch = getc(f)) != EOF) {
    if (n + 1 == cap) {
      char *grown = realloc(s, cap *= 2);
      if (grown == NULL) {
        free(s);
        return NULL;
      }
      s = grown;
    }
    s[n++] = (char)ch;
  }
  if (s != NULL)
    s[n] = '\0';
  return s;
}

static void writer_matches_the_documented_format(void) {
  struct hist_op ops[] = {
      op_new(3, HIST_PUT, HIST_OK, 1, HIST_NIL, 7, 0, 123, 456),
      op_new(1, HIST_CAS, HIST_OK, 2, 3, 9, 1, 5, 80),
      op_new(2, HIST_GET, HIST_OK, 2, HIST_NIL, 9, 0, 5, 80),
      op_new(4, HIST_GET, HIST_OK, 0, HIST_NIL, HIST_NIL, 0, 1, 2),
      op_new(5, HIST_CAS, HIST_INFO, 2, HIST_NIL, 4, 0, 90, 0),
      op_new(6, HIST_PUT, HIST_FAIL, 8, HIST_NIL, HIST_NIL, 0, 10, 20),
      with_ttl(op_new(4, HIST_PUT, HIST_OK, 1, HIST_NIL, 8, 0, 500, 530)),
      op_new(5, HIST_INCR, HIST_OK, 2, HIST_NIL, 9, 0, 600, 650),
      op_new(7, HIST_INCR, HIST_INFO, 2, HIST_NIL, HIST_NIL, 0, 700, 0),
  };
  const char *want =
      "{\"client\":3,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v7\","
      "\"call_us\":123,\"return_us\":456,\"status\":\"ok\",\"output\":null}\n"
      "{\"client\":1,\"op\":\"cas\",\"key\":\"k2\",\"expected\":\"v3\","
      "\"value\":\"v9\",\"call_us\":5,\"return_us\":80,\"status\":\"ok\","
      "\"output\":true}\n"
      "{\"client\":2,\"op\":\"get\",\"key\":\"k2\",\"value\":null,"
      "\"call_us\":5,\"return_us\":80,\"status\":\"ok\",\"output\":\"v9\"}\n"
      "{\"client\":4,\"op\":\"get\",\"key\":\"k0\",\"value\":null,"
      "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}\n"
      "{\"client\":5,\"op\":\"cas\",\"key\":\"k2\",\"expected\":null,"
      "\"value\":\"v4\",\"call_us\":90,\"status\":\"info\",\"output\":null}\n"
      "{\"client\":6,\"op\":\"put\",\"key\":\"k8\",\"value\":null,"
      "\"call_us\":10,\"return_us\":20,\"status\":\"fail\",\"output\":null}\n"
      "{\"client\":4,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v8\","
      "\"ttl\":true,\"call_us\":500,\"return_us\":530,\"status\":\"ok\","
      "\"output\":null}\n"
      "{\"client\":5,\"op\":\"incr\",\"key\":\"k2\",\"value\":null,"
      "\"call_us\":600,\"return_us\":650,\"status\":\"ok\",\"output\":9}\n"
      "{\"client\":7,\"op\":\"incr\",\"key\":\"k2\",\"value\":null,"
      "\"call_us\":700,\"status\":\"info\",\"output\":null}\n";
  FILE *f = tmpfile();
  CHECK(f != NULL);
  CHECK(hist_write_jsonl(f, ops, N(ops)) == 0);
  char *got = slurp(f);
  fclose(f);
  CHECK(got != NULL);
  bool same = strcmp(got, want) == 0;
  if (!same)
    fprintf(stderr, "got:\n%swant:\n%s", got, want);
  free(got);
  CHECK(same);
}

static void round_trip_keeps_every_field(void) {
  /* Already in the reader's normal form: fields that a status makes
   * meaningless are zero or nil, as the reader sets them. */
  struct hist_op ops[] = {
      op_new(0, HIST_PUT, HIST_OK, 0, HIST_NIL, 0, 0, 0, 0),
      op_new(1, HIST_PUT, HIST_OK, 1, HIST_NIL, HIST_NIL, 0, 5, 6),
      op_new(2, HIST_PUT, HIST_INFO, 2, HIST_NIL, 3, 0, 7, 0),
      op_new(3, HIST_PUT, HIST_FAIL, 3, HIST_NIL, 4, 0, 8, 9),
      op_new(4, HIST_GET, HIST_OK, 4, HIST_NIL, 5, 0, 10, 11),
      op_new(5, HIST_GET, HIST_OK, 4, HIST_NIL, HIST_NIL, 0, 10, 11),
      op_new(6, HIST_GET, HIST_INFO, 4, HIST_NIL, HIST_NIL, 0, 12, 0),
      op_new(7, HIST_GET, HIST_FAIL, 4, HIST_NIL, HIST_NIL, 0, 12, 13),
      op_new(8, HIST_CAS, HIST_OK, 5, 1, 2, 1, 14, 15),
      op_new(9, HIST_CAS, HIST_OK, 5, HIST_NIL, 2, 0, 14, 15),
      op_new(10, HIST_CAS, HIST_INFO, 5, 2, HIST_NIL, 0, 16, 0),
      op_new(11, HIST_CAS, HIST_FAIL, 5, 2, 3, 0, 16, 17),
      op_new(UINT32_MAX, HIST_CAS, HIST_OK, UINT32_MAX, INT64_MAX, INT64_MAX, 1,
             UINT64_MAX - 1, UINT64_MAX),
      with_ttl(op_new(12, HIST_PUT, HIST_OK, 6, HIST_NIL, 0, 0, 18, 19)),
      with_ttl(
          op_new(13, HIST_PUT, HIST_INFO, 6, HIST_NIL, INT64_MAX, 0, 20, 0)),
      with_ttl(op_new(14, HIST_PUT, HIST_FAIL, 6, HIST_NIL, 5, 0, 21, 22)),
      op_new(15, HIST_INCR, HIST_OK, 7, HIST_NIL, 0, 0, 23, 24),
      op_new(16, HIST_INCR, HIST_OK, 7, HIST_NIL, INT64_MAX, 0, 23, 24),
      op_new(17, HIST_INCR, HIST_INFO, 7, HIST_NIL, HIST_NIL, 0, 25, 0),
      op_new(18, HIST_INCR, HIST_FAIL, 7, HIST_NIL, HIST_NIL, 0, 26, 27),
  };
  FILE *f = tmpfile();
  CHECK(f != NULL);
  CHECK(hist_write_jsonl(f, ops, N(ops)) == 0);
  rewind(f);
  struct hist_op *back = NULL;
  size_t n = 0;
  char err[128];
  int rc = hist_read_jsonl(f, &back, &n, err, sizeof err);
  fclose(f);
  if (rc != 0)
    fprintf(stderr, "read: %s\n", err);
  CHECK(rc == 0);
  CHECK(n == N(ops));
  for (size_t i = 0; i < n; i++) {
    if (!op_equal(&back[i], &ops[i])) {
      fprintf(stderr, "op %zu differs\n", i);
      free(back);
      CHECK(false);
    }
  }
  free(back);
}

static void reader_reads_incr_and_ttl_in_any_key_order(void) {
  struct hist_op *ops = NULL;
  long n = read_text(
      "{\"ttl\": true, \"output\":null,\"status\":\"ok\",\"return_us\":9,"
      "\"call_us\":1,\"value\":\"v2\",\"key\":\"k3\",\"op\":\"put\","
      "\"client\":12}\n"
      "{\"output\" : 41 ,\"op\":\"incr\",\"client\":1,\"key\":\"k3\","
      "\"status\":\"ok\",\"value\":null,\"return_us\":20,\"call_us\":10}\n",
      &ops);
  CHECK(n == 2);
  struct hist_op want0 =
      with_ttl(op_new(12, HIST_PUT, HIST_OK, 3, HIST_NIL, 2, 0, 1, 9));
  struct hist_op want1 =
      op_new(1, HIST_INCR, HIST_OK, 3, HIST_NIL, 41, 0, 10, 20);
  bool same = op_equal(&ops[0], &want0) && op_equal(&ops[1], &want1);
  free(ops);
  CHECK(same);
}

static void reader_accepts_any_key_order_and_whitespace(void) {
  FILE *f = file_with(
      "\n"
      "  { \"output\" : false ,\"status\":\"ok\", \"return_us\":9,"
      "\"call_us\" :\t1, \"value\":\"v2\", \"expected\":null, \"key\":\"k3\","
      " \"op\":\"cas\", \"client\": 12 }  \r\n"
      "\r\n"
      "{\"op\":\"get\",\"client\":1,\"key\":\"k3\",\"status\":\"ok\","
      "\"output\":\"v10\",\"value\":null,\"return_us\":20,\"call_us\":10}");
  CHECK(f != NULL);
  struct hist_op *ops = NULL;
  size_t n = 0;
  char err[128];
  int rc = hist_read_jsonl(f, &ops, &n, err, sizeof err);
  fclose(f);
  if (rc != 0)
    fprintf(stderr, "read: %s\n", err);
  CHECK(rc == 0 && n == 2);
  struct hist_op want0 = op_new(12, HIST_CAS, HIST_OK, 3, HIST_NIL, 2, 0, 1, 9);
  struct hist_op want1 =
      op_new(1, HIST_GET, HIST_OK, 3, HIST_NIL, 10, 0, 10, 20);
  bool same = op_equal(&ops[0], &want0) && op_equal(&ops[1], &want1);
  free(ops);
  CHECK(same);
}

static void empty_file_is_an_empty_history(void) {
  FILE *f = file_with("");
  CHECK(f != NULL);
  static struct hist_op stale;
  struct hist_op *ops = &stale; /* must be overwritten */
  size_t n = 99;
  CHECK(hist_read_jsonl(f, &ops, &n, NULL, 0) == 0);
  fclose(f);
  CHECK(ops == NULL && n == 0);
}

/* A history the size of a simulator run, with every status, goes out and
 * comes back equal, and still passes the checker. */
static void round_trip_generated(const struct hist_gen_config *config) {
  enum { N_OPS = 2000 };
  static struct hist_op ops[N_OPS];
  struct prng prng;
  prng_seed(&prng, 42);
  hist_gen_linearizable(&prng, config, ops, N_OPS);
  for (size_t i = 0; i < N_OPS; i++) {
    if (ops[i].status == HIST_INFO)
      ops[i].return_us = 0; /* not written, so read back as 0 */
  }
  FILE *f = tmpfile();
  CHECK(f != NULL);
  CHECK(hist_write_jsonl(f, ops, N_OPS) == 0);
  rewind(f);
  struct hist_op *back = NULL;
  size_t n = 0;
  char err[128];
  int rc = hist_read_jsonl(f, &back, &n, err, sizeof err);
  fclose(f);
  CHECK(rc == 0 && n == N_OPS);
  size_t n_same = 0;
  for (size_t i = 0; i < n; i++)
    n_same += op_equal(&back[i], &ops[i]);
  struct lin_report report;
  rc = lin_check(back, n, &lin_model_kv, 0, &report);
  free(back);
  CHECK(n_same == N_OPS);
  CHECK(rc == 0 && report.result == LIN_OK);
}

/* Six clients on four keys, with ops of every status. */
static const struct hist_gen_config round_trip_config = {.n_clients = 6,
                                                         .n_keys = 4,
                                                         .latency_us_max = 500,
                                                         .think_us_max = 100,
                                                         .chance_info = 0.05,
                                                         .chance_fail = 0.05};

static void generated_history_survives_a_round_trip(void) {
  round_trip_generated(&round_trip_config);
}

static void generated_history_with_incr_and_ttl_survives_a_round_trip(void) {
  struct hist_gen_config config = round_trip_config;
  config.weight_put = 3;
  config.weight_get = 4;
  config.weight_cas = 1;
  config.weight_incr = 3;
  config.chance_ttl = 0.5;
  config.ttl_us_max = 1000;
  round_trip_generated(&config);
}

static void file_from_before_incr_and_ttl_reads_as_before(void) {
  /* Lines as the writer wrote them before incr and ttl existed: no line
   * gets a flag, and writing them back gives the same text. */
  const char *text =
      "{\"client\":3,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v7\","
      "\"call_us\":123,\"return_us\":456,\"status\":\"ok\",\"output\":null}\n"
      "{\"client\":1,\"op\":\"cas\",\"key\":\"k1\",\"expected\":\"v7\","
      "\"value\":\"v9\",\"call_us\":5,\"return_us\":80,\"status\":\"ok\","
      "\"output\":true}\n"
      "{\"client\":2,\"op\":\"get\",\"key\":\"k1\",\"value\":null,"
      "\"call_us\":90,\"status\":\"info\",\"output\":null}\n";
  struct hist_op *ops = NULL;
  long n = read_text(text, &ops);
  CHECK(n == 3);
  bool no_flags = ops[0].flags == 0 && ops[1].flags == 0 && ops[2].flags == 0;
  FILE *f = tmpfile();
  bool written = f != NULL && hist_write_jsonl(f, ops, (size_t)n) == 0;
  free(ops);
  char *back = written ? slurp(f) : NULL;
  if (f != NULL)
    fclose(f);
  bool same = back != NULL && strcmp(back, text) == 0;
  free(back);
  CHECK(no_flags);
  CHECK(same);
}

#define GOOD_OBJECT                                                            \
  "{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","              \
  "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}"
#define GOOD GOOD_OBJECT "\n"

/* Each bad line goes third, after a good line and a blank one, so that the
 * test also sees that blank lines count. */
struct bad_line {
  const char *line;
  const char *why; /* a substring of the message */
};

static const struct bad_line bad_lines[] = {
    {"[1,2]", "expected '{'"},
    {"{}", "empty object"},
    {"{\"client\":1", "unterminated object"},
    {"{\"client\":1,}", "expected a key"},
    {"{client:1}", "expected a key"},
    {"{\"client\" 1}", "expected ':'"},
    {"{\"client\":1 \"op\":\"put\"}", "expected ',' or '}'"},
    {"{\"client\":1,\"colour\":\"red\"}", "unknown key \"colour\""},
    {"{\"client\":1,\"client\":2}", "duplicate key \"client\""},
    {"{\"client\":-1}", "unsigned"},
    {"{\"client\":1.5}", "unsigned"},
    {"{\"client\":01}", "bad number"},
    {"{\"client\":99999999999999999999}", "bad number"},
    {"{\"client\":{\"a\":1}}", "nested"},
    {"{\"client\":nul}", "unexpected character"},
    {"{\"op\":\"p\\u0075t\"}", "escapes"},
    {"{\"op\":\"put}", "unterminated string"},
    {GOOD_OBJECT "x", "text after"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\"}",
     "missing key \"output\""},
    {"{\"client\":4294967296,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"client\" must be an unsigned integer up to 4294967295"},
    {"{\"client\":\"1\",\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"client\" must be"},
    {"{\"client\":1,\"op\":\"del\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "unknown op \"del\""},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"maybe\",\"output\":null}",
     "unknown status \"maybe\""},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"x1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"key\" must be a string \"k<N>\""},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k01\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"key\" must be"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"value\" must be"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":7,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"value\" must be \"v<N>\" or null"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":3,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "before call_us"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":3,\"status\":\"ok\",\"output\":null}",
     "missing key \"return_us\""},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"expected\":null,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":null}",
     "only allowed for cas"},
    {"{\"client\":1,\"op\":\"cas\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":true}",
     "missing key \"expected\""},
    {"{\"client\":1,\"op\":\"cas\",\"key\":\"k1\",\"expected\":\"v0\","
     "\"value\":\"v1\",\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":null}",
     "true or false"},
    {"{\"client\":1,\"op\":\"cas\",\"key\":\"k1\",\"expected\":\"v0\","
     "\"value\":\"v1\",\"call_us\":1,\"status\":\"info\",\"output\":true}",
     "must be null when status is not ok"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":true}",
     "put's \"output\" must be null"},
    {"{\"client\":1,\"op\":\"get\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "get's \"value\" must be null"},
    {"{\"client\":1,\"op\":\"get\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":true}",
     "\"output\" must be \"v<N>\" or null"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"ttl\":false,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":null}",
     "\"ttl\" must be true"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"ttl\":1,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":null}",
     "\"ttl\" must be true"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":null,"
     "\"ttl\":true,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":null}",
     "must write a value"},
    {"{\"client\":1,\"op\":\"get\",\"key\":\"k1\",\"value\":null,"
     "\"ttl\":true,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":null}",
     "\"ttl\" is only allowed for put"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":null,"
     "\"ttl\":true,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":1}",
     "\"ttl\" is only allowed for put"},
    {"{\"client\":1,\"op\":\"put\",\"key\":\"k1\",\"value\":\"v1\","
     "\"ttl\":true,\"ttl\":true,\"call_us\":1,\"return_us\":2,"
     "\"status\":\"ok\",\"output\":null}",
     "duplicate key \"ttl\""},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":\"v1\","
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":2}",
     "incr's \"value\" must be null"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":\"v2\"}",
     "\"output\" must be an unsigned integer up to 9223372036854775807"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":9223372036854775808}",
     "\"output\" must be an unsigned integer"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":-1}",
     "unsigned"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":null}",
     "\"output\" must be an unsigned integer"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"status\":\"info\",\"output\":3}",
     "must be null when status is not ok"},
    {"{\"client\":1,\"op\":\"incr\",\"key\":\"k1\",\"expected\":null,"
     "\"value\":null,\"call_us\":1,\"return_us\":2,\"status\":\"ok\","
     "\"output\":1}",
     "only allowed for cas"},
    {"{\"client\":1,\"op\":\"decr\",\"key\":\"k1\",\"value\":null,"
     "\"call_us\":1,\"return_us\":2,\"status\":\"ok\",\"output\":1}",
     "unknown op \"decr\""},
};

static void malformed_lines_are_rejected_with_their_number(void) {
  for (size_t i = 0; i < N(bad_lines); i++) {
    char text[1024];
    snprintf(text, sizeof text, "%s\n%s\n%s", GOOD, bad_lines[i].line, GOOD);
    FILE *f = file_with(text);
    CHECK(f != NULL);
    struct hist_op *ops = NULL;
    size_t n = 0;
    char err[160];
    int rc = hist_read_jsonl(f, &ops, &n, err, sizeof err);
    fclose(f);
    bool right = rc == SABHA_ECORRUPT && ops == NULL && n == 0 &&
                 strncmp(err, "line 3: ", 8) == 0 &&
                 strstr(err, bad_lines[i].why) != NULL;
    if (!right)
      fprintf(stderr, "case %zu: %s\n  rc %d, message \"%s\", wanted \"%s\"\n",
              i, bad_lines[i].line, rc, err, bad_lines[i].why);
    free(ops);
    CHECK(right);
  }
}

static void overlong_line_is_rejected(void) {
  /* Line 2 is a good object after 5000 spaces: valid JSON, but too long. */
  enum { N_SPACES = 5000 };
  char *text = malloc(2 * sizeof GOOD + N_SPACES);
  CHECK(text != NULL);
  strcpy(text, GOOD);
  size_t at = strlen(text);
  memset(text + at, ' ', N_SPACES);
  strcpy(text + at + N_SPACES, GOOD);
  FILE *f = file_with(text);
  free(text);
  CHECK(f != NULL);
  struct hist_op *ops = NULL;
  size_t n = 0;
  char err[128];
  int rc = hist_read_jsonl(f, &ops, &n, err, sizeof err);
  fclose(f);
  CHECK(rc == SABHA_ECORRUPT);
  CHECK(strstr(err, "line 2: longer than 4096 bytes") != NULL);
}

static void nul_byte_is_rejected(void) {
  FILE *f = tmpfile();
  CHECK(f != NULL);
  fputs(GOOD, f);
  fputc('{', f);
  fputc('\0', f);
  fputs("}\n", f);
  rewind(f);
  struct hist_op *ops = NULL;
  size_t n = 0;
  char err[128];
  int rc = hist_read_jsonl(f, &ops, &n, err, sizeof err);
  fclose(f);
  CHECK(rc == SABHA_ECORRUPT);
  CHECK(strcmp(err, "line 2: NUL byte in line") == 0);
}

static void short_error_buffer_is_not_overrun(void) {
  FILE *f = file_with("nonsense\n");
  CHECK(f != NULL);
  struct hist_op *ops = NULL;
  size_t n = 0;
  char err[16];
  memset(err, 'X', sizeof err);
  int rc = hist_read_jsonl(f, &ops, &n, err, 6);
  fclose(f);
  CHECK(rc == SABHA_ECORRUPT);
  CHECK(strcmp(err, "line ") == 0 && err[6] == 'X');
}

static void write_error_is_reported(void) {
  /* A stream open for reading only refuses writes. */
  FILE *f = fopen("/dev/null", "r");
  CHECK(f != NULL);
  struct hist_op op = op_new(1, HIST_PUT, HIST_OK, 1, HIST_NIL, 1, 0, 1, 2);
  int rc = hist_write_jsonl(f, &op, 1);
  fclose(f);
  CHECK(rc == SABHA_EIO);
}

static const struct test tests[] = {
    TEST(writer_matches_the_documented_format),
    TEST(round_trip_keeps_every_field),
    TEST(reader_accepts_any_key_order_and_whitespace),
    TEST(generated_history_survives_a_round_trip),
    TEST(generated_history_with_incr_and_ttl_survives_a_round_trip),
    TEST(file_from_before_incr_and_ttl_reads_as_before),
    TEST(reader_reads_incr_and_ttl_in_any_key_order),
    TEST(empty_file_is_an_empty_history),
    TEST(malformed_lines_are_rejected_with_their_number),
    TEST(overlong_line_is_rejected),
    TEST(nul_byte_is_rejected),
    TEST(short_error_buffer_is_not_overrun),
    TEST(write_error_is_reported),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
