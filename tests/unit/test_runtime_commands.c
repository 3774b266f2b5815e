/* The store's commands as a client sends them (src/node/commands.c): the
 * options and argument checks a careless or hostile client reaches, held
 * to the replies Redis gives for the same input where a Redis client would
 * misread anything else.
 *
 * A single-member node (it leads itself) over memfs; the test is its host. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "rt_host.h"

/* Sends `text` and checks that the node answered `want` to it, saying
 * what it answered when not. */
static void expect(struct rt_node *n, struct rt_stream *c, const char *text,
                   const char *want) {
  rt_stream_input(c, text, strlen(text));
  rt_node_settle(n);
  const char *got = rt_stream_said(c);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "%s-> [%s]\n", text, got);
  CHECK(strcmp(got, want) == 0);
}

/* Sends `text` and checks that the node answered an integer in [lo, hi]:
 * a time left, counted from a clock the test does not set to the ms. */
static void expect_between(struct rt_node *n, struct rt_stream *c,
                           const char *text, long long lo, long long hi) {
  rt_stream_input(c, text, strlen(text));
  rt_node_settle(n);
  const char *got = rt_stream_said(c);
  long long v = 0;
  bool ok = sscanf(got, ":%lld\r\n", &v) == 1 && v >= lo && v <= hi;
  if (!ok)
    fprintf(stderr, "%s-> [%s], not in [%lld, %lld]\n", text, got, lo, hi);
  CHECK(ok);
}

/* A node that leads alone, a client (*c, NULL on failure), and two keys,
 * k1 and k2. */
static void open_with_two_keys(struct rt_node *n, struct rt_stream **c) {
  *c = NULL;
  CHECK(rt_node_start_alone(n) == 0);
  CHECK(rt_stream_accept(n->rt, true, c) == NULL && *c != NULL);
  expect(n, *c, "MSET k1 a k2 b\r\n", "+OK\r\n");
}

#define SCAN_NONE "*2\r\n$1\r\n0\r\n*0\r\n"
#define SCAN_BOTH "*2\r\n$1\r\n0\r\n*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n"

/* SCAN without MATCH lists every key, as `redis-cli --scan` asks. (The
 * walk compared each key with the pattern's literal prefix by memcmp even
 * with no pattern, a null pointer for zero bytes: undefined, and the
 * optimiser took it as proof that a pattern was there and matched every
 * key against an empty one, so SCAN 0 answered no keys.) */
static void scan_without_match_lists_every_key(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "SCAN 0\r\n", SCAN_BOTH);
  expect(&n, c, "SCAN 0 COUNT 5\r\n", SCAN_BOTH);
  expect(&n, c, "SCAN 0 TYPE string\r\n", SCAN_BOTH);
  /* One key a call: the cursor names the next ("1", then 3 digits a
   * byte). */
  expect(&n, c, "SCAN 0 COUNT 1\r\n",
         "*2\r\n$7\r\n1107050\r\n*1\r\n$2\r\nk1\r\n");
  expect(&n, c, "SCAN 1107050 COUNT 1\r\n",
         "*2\r\n$1\r\n0\r\n*1\r\n$2\r\nk2\r\n");
  rt_node_close(&n);
}

/* SCAN's TYPE filters whatever comes with it: every key is a string, so
 * TYPE of any other type finds none, before or after a MATCH. (TYPE set a
 * pattern that a later MATCH replaced, so `TYPE hash MATCH *` listed the
 * string keys as hashes.) */
static void scan_type_filters_whatever_the_order_of_options(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "SCAN 0 TYPE hash\r\n", SCAN_NONE);
  expect(&n, c, "SCAN 0 MATCH k* TYPE hash\r\n", SCAN_NONE);
  expect(&n, c, "SCAN 0 TYPE hash MATCH k*\r\n", SCAN_NONE);
  expect(&n, c, "SCAN 0 TYPE list MATCH *\r\n", SCAN_NONE);
  expect(&n, c, "SCAN 0 TYPE string MATCH k*\r\n", SCAN_BOTH);
  expect(&n, c, "SCAN 0 MATCH k* TYPE string\r\n", SCAN_BOTH);
  expect(&n, c, "SCAN 0 TYPE STRING MATCH *\r\n", SCAN_BOTH);
  rt_node_close(&n);
}

/* A pattern costs up to its length times each key's to match, so one
 * SCAN's matching is bounded as well as its keys (RT_SCAN_MATCH_WORK_MAX):
 * two keys of 32 KiB against a 1 KiB pattern whose one star backtracks
 * over every byte. The first call stops after the first key, with a
 * cursor at the second; KEYS refuses. (SCAN matched all COUNT keys in one
 * call: 100000 such keys would hold the node's loop for minutes.) */
static void scan_bounds_the_work_of_matching_a_pattern(void) {
  enum { KEY_BYTES = 32 << 10, PATTERN_BYTES = 1024 };
  static char key1[KEY_BYTES + 1], key2[KEY_BYTES + 1];
  static char pattern[PATTERN_BYTES + 1];
  static char in[4 * KEY_BYTES + 4096];
  static char cursor[1 + 3 * KEY_BYTES + 1];
  memset(key1, 'a', KEY_BYTES);
  memset(key2, 'a', KEY_BYTES);
  key2[KEY_BYTES - 1] = 'b';
  pattern[0] = '*';
  memset(pattern + 1, 'a', PATTERN_BYTES - 2);
  pattern[PATTERN_BYTES - 1] = 'b';
  CHECK((uint64_t)KEY_BYTES * PATTERN_BYTES >= RT_SCAN_MATCH_WORK_MAX);
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL && c != NULL);
  snprintf(in, sizeof in,
           "*5\r\n$4\r\nMSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n$%d\r\n%s\r\n"
           "$1\r\nv\r\n",
           KEY_BYTES, key1, KEY_BYTES, key2);
  expect(&n, c, in, "+OK\r\n");
  /* The first key matched no further: a cursor at the second. */
  cursor[0] = '1';
  for (int i = 0; i < KEY_BYTES; i++)
    snprintf(cursor + 1 + 3 * i, 4, "%03u", (unsigned)(uint8_t)key2[i]);
  snprintf(in, sizeof in,
           "*6\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nMATCH\r\n$%d\r\n%s\r\n"
           "$5\r\nCOUNT\r\n$3\r\n100\r\n",
           PATTERN_BYTES, pattern);
  rt_stream_input(c, in, strlen(in));
  rt_node_settle(&n);
  char head[64];
  snprintf(head, sizeof head, "*2\r\n$%d\r\n1097097", 1 + 3 * KEY_BYTES);
  CHECK(strncmp(rt_stream_said(c), head, strlen(head)) == 0);
  /* From there, the second key, which matches, and the end. */
  snprintf(in, sizeof in,
           "*6\r\n$4\r\nSCAN\r\n$%d\r\n%s\r\n$5\r\nMATCH\r\n$%d\r\n%s\r\n"
           "$5\r\nCOUNT\r\n$3\r\n100\r\n",
           1 + 3 * KEY_BYTES, cursor, PATTERN_BYTES, pattern);
  rt_stream_input(c, in, strlen(in));
  rt_node_settle(&n);
  snprintf(head, sizeof head, "*2\r\n$1\r\n0\r\n*1\r\n$%d\r\naaa", KEY_BYTES);
  CHECK(strncmp(rt_stream_said(c), head, strlen(head)) == 0);
  snprintf(in, sizeof in, "*2\r\n$4\r\nKEYS\r\n$%d\r\n%s\r\n", PATTERN_BYTES,
           pattern);
  rt_stream_input(c, in, strlen(in));
  rt_node_settle(&n);
  CHECK(strncmp(rt_stream_said(c), "-ERR KEYS would spend too long", 30) == 0);
  rt_node_close(&n);
}

/* SET ... GET (Redis 6.2): the old value, or nil, as GETSET; with NX or
 * XX (Redis 7) the old value whether or not the SET took place. */
static void set_get_answers_the_old_value(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "SET k1 x GET\r\n", "$1\r\na\r\n");
  expect(&n, c, "GET k1\r\n", "$1\r\nx\r\n");
  expect(&n, c, "SET k3 y GET\r\n", "$-1\r\n");
  expect(&n, c, "GET k3\r\n", "$1\r\ny\r\n");
  expect(&n, c, "SET k2 z NX GET\r\n", "$1\r\nb\r\n");
  expect(&n, c, "GET k2\r\n", "$1\r\nb\r\n"); /* NX: not set */
  expect(&n, c, "SET k4 w XX GET\r\n", "$-1\r\n");
  expect(&n, c, "EXISTS k4\r\n", ":0\r\n");
  expect(&n, c, "SET k1 v PX 100000 GET\r\n", "$1\r\nx\r\n");
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "SET k1 u GET\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXEC\r\n", "*1\r\n$1\r\nv\r\n");
  rt_node_close(&n);
}

/* EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT take Redis 7's NX, XX, GT and
 * LT, judged where the entry applies (kvstore.h); the node refuses what
 * Redis refuses before it goes to the log, options before the time. The
 * node's wall clock stands at 1700000001000 ms (rt_host.h). */
static void expire_takes_the_options_of_redis_7(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "EXPIRE k1 100 NX\r\n", ":1\r\n");
  expect(&n, c, "EXPIRE k1 200 nx\r\n", ":0\r\n");
  expect(&n, c, "TTL k1\r\n", ":100\r\n");
  expect(&n, c, "EXPIRE k1 50 GT\r\n", ":0\r\n");
  expect(&n, c, "EXPIRE k1 300 GT\r\n", ":1\r\n");
  expect(&n, c, "PEXPIRE k1 1000 XX LT\r\n", ":1\r\n");
  expect(&n, c, "PTTL k1\r\n", ":1000\r\n");
  expect(&n, c, "EXPIRE k2 100 XX\r\n", ":0\r\n");
  expect(&n, c, "EXPIRE k2 100 GT\r\n", ":0\r\n");
  expect(&n, c, "TTL k2\r\n", ":-1\r\n");
  expect(&n, c, "PEXPIREAT k2 0 GT\r\n", ":0\r\n");
  expect(&n, c, "EXISTS k2\r\n", ":1\r\n");
  expect(&n, c, "EXPIREAT k2 2000000000 LT\r\n", ":1\r\n");
  expect(&n, c, "EXPIREAT k2 2000000000 NX\r\n", ":0\r\n");
  expect(&n, c, "EXPIREAT k2 2000000001 LT\r\n", ":0\r\n");
  expect(&n, c, "EXPIREAT k2 0 LT\r\n", ":1\r\n");
  expect(&n, c, "EXISTS k2\r\n", ":0\r\n");
  expect(&n, c, "EXPIRE k2 10 NX\r\n", ":0\r\n");
  expect(&n, c, "EXPIRE k1 10 NX XX\r\n", "-" KVSTORE_ERR_EXPIRE_NX "\r\n");
  expect(&n, c, "PEXPIREAT k1 x LT NX\r\n", "-" KVSTORE_ERR_EXPIRE_NX "\r\n");
  expect(&n, c, "EXPIRE k1 10 GT LT\r\n", "-" KVSTORE_ERR_EXPIRE_GT_LT "\r\n");
  /* An option Redis does not know is named, as given, before any other
   * complaint; one with a line break in it cannot break the reply, and a
   * long one is cut. (They were all "ERR syntax error".) */
  expect(&n, c, "EXPIRE k1 10 GT SOON\r\n", "-ERR Unsupported option SOON\r\n");
  expect(&n, c, "PEXPIREAT k1 x soon NX XX\r\n",
         "-ERR Unsupported option soon\r\n");
  expect(&n, c,
         "*4\r\n$6\r\nEXPIRE\r\n$2\r\nk1\r\n$2\r\n10\r\n$4\r\nA\r\nB\r\n",
         "-ERR Unsupported option A  B\r\n");
  expect(&n, c,
         "EXPIRE k1 10 "
         "0123456789012345678901234567890123456789012345678901234567890123"
         "TOO-LONG\r\n",
         "-ERR Unsupported option "
         "0123456789012345678901234567890123456789012345678901234567890123"
         "\r\n");
  expect(&n, c, "SABHA.TXN 0 0 4 EXPIRE k1 10 SOON\r\n",
         "-ERR Unsupported option SOON\r\n");
  expect(&n, c, "EXPIRE k1 x GT\r\n", "-" KVSTORE_ERR_NOT_INTEGER "\r\n");
  expect(&n, c, "PTTL k1\r\n", ":1000\r\n");
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "EXPIRE k1 5000 LT\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXPIRE k1 5000 GT\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXEC\r\n", "*2\r\n:0\r\n:1\r\n");
  expect(&n, c, "TTL k1\r\n", ":5000\r\n");
  rt_node_close(&n);
}

/* Inside MULTI, a command whose arguments are wrong is queued, and its
 * error is its element of EXEC's array while the others run, which is
 * where Redis reports it; an unknown command or a wrong arity still dooms
 * EXEC. A transaction of only such commands is answered by the node, or,
 * with WATCHed keys, after an entry checks them. (They were refused at
 * once, and EXEC answered -EXECABORT.) */
static void multi_answers_argument_errors_inside_exec(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "SET k3 1\r\n", "+QUEUED\r\n");
  expect(&n, c, "INCRBY k3 x\r\n", "+QUEUED\r\n");
  expect(&n, c, "SET k4 v NX XX\r\n", "+QUEUED\r\n");
  expect(&n, c,
         "*4\r\n$6\r\nEXPIRE\r\n$2\r\nk3\r\n$2\r\n10\r\n$4\r\nA\r\nB\r\n",
         "+QUEUED\r\n");
  expect(&n, c, "MSET k4 v k5\r\n", "+QUEUED\r\n");
  expect(&n, c, "INCR k3\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXEC\r\n",
         "*6\r\n+OK\r\n-" KVSTORE_ERR_NOT_INTEGER "\r\n-" KVSTORE_ERR_SYNTAX
         "\r\n-ERR Unsupported option A  B\r\n"
         "-ERR wrong number of arguments for 'mset' command\r\n:2\r\n");
  expect(&n, c, "EXISTS k4 k5\r\n", ":0\r\n");
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "SET k3 v EX 0\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXEC\r\n", "*1\r\n-" KVSTORE_ERR_EXPIRE "\r\n");
  /* Only wrong ones, a WATCHed key changed: nil, as Redis. */
  expect(&n, c, "WATCH k3\r\n", "+OK\r\n");
  expect(&n, c, "SET k3 9\r\n", "+OK\r\n");
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "INCRBY k3 x\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXEC\r\n", "*-1\r\n");
  expect(&n, c, "WATCH k3\r\n", "+OK\r\n");
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "INCRBY k3 x\r\n", "+QUEUED\r\n");
  expect(&n, c, "EXEC\r\n", "*1\r\n-" KVSTORE_ERR_NOT_INTEGER "\r\n");
  /* A queuing error still aborts, wrong arguments or not. */
  expect(&n, c, "MULTI\r\n", "+OK\r\n");
  expect(&n, c, "INCRBY k3 x\r\n", "+QUEUED\r\n");
  expect(&n, c, "INCR k3\r\n", "+QUEUED\r\n");
  expect(&n, c, "GET\r\n",
         "-ERR wrong number of arguments for 'get' command\r\n");
  expect(&n, c, "EXEC\r\n",
         "-EXECABORT Transaction discarded because of previous errors.\r\n");
  expect(&n, c, "GET k3\r\n", "$1\r\n9\r\n");
  rt_node_close(&n);
}

/* SET's expiry options as Redis 7 takes them: EXAT and PXAT (absolute; a
 * past one sets and deletes the key), the same option twice (the last
 * counts), options checked before the number; and Redis's words where
 * they were sabha's: TYPE, SELECT, HELLO, SCAN's COUNT, the EXPIRE family's
 * names, CONFIG's subcommands. The node's wall clock starts at 1700000001000 ms
 * (rt_host.h). */
static void set_and_others_answer_as_redis_7(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "SET k1 v EX 10 EX 20\r\n", "+OK\r\n");
  expect(&n, c, "TTL k1\r\n", ":20\r\n");
  expect(&n, c, "SET k1 v PX 10 EX 20\r\n", "-" KVSTORE_ERR_SYNTAX "\r\n");
  expect(&n, c, "SET k1 v EX x BAD\r\n", "-" KVSTORE_ERR_SYNTAX "\r\n");
  expect(&n, c, "SET k1 v PXAT 1700000101000\r\n", "+OK\r\n");
  expect_between(&n, c, "PTTL k1\r\n", 90000, 100000);
  expect(&n, c, "SET k1 v EXAT 1700000201\r\n", "+OK\r\n");
  expect_between(&n, c, "TTL k1\r\n", 190, 200);
  expect(&n, c, "SET k1 w PXAT 1 GET\r\n", "$1\r\nv\r\n");
  expect(&n, c, "EXISTS k1\r\n", ":0\r\n");
  expect(&n, c, "SET k5 w EXAT 1700000001\r\n", "+OK\r\n");
  expect(&n, c, "EXISTS k5\r\n", ":0\r\n");
  expect(&n, c, "SET k1 v EXAT 0\r\n", "-" KVSTORE_ERR_EXPIRE "\r\n");
  expect(&n, c, "SET k1 v EXAT 9223372036854776\r\n",
         "-" KVSTORE_ERR_EXPIRE "\r\n");
  expect(&n, c, "SET k1 v PXAT 5 KEEPTTL\r\n", "-" KVSTORE_ERR_SYNTAX "\r\n");
  expect(&n, c, "SET k1 v PXAT 5 LEASE 1\r\n", "-" KVSTORE_ERR_SYNTAX "\r\n");
  expect(&n, c, "EXISTS k1\r\n", ":0\r\n");
  expect(&n, c, "TYPE k2\r\n", "+string\r\n");
  expect(&n, c, "TYPE k1\r\n", "+none\r\n");
  expect(&n, c, "SELECT x\r\n", "-" KVSTORE_ERR_NOT_INTEGER "\r\n");
  expect(&n, c, "SELECT 1\r\n", "-ERR DB index is out of range\r\n");
  expect(&n, c, "HELLO x\r\n",
         "-ERR Protocol version is not an integer or out of range\r\n");
  expect(&n, c, "HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n");
  expect(&n, c, "SCAN 0 COUNT 0\r\n", "-" KVSTORE_ERR_SYNTAX "\r\n");
  expect(&n, c, "EXPIREAT k2 9223372036854775807\r\n",
         "-ERR invalid expire time in 'expireat' command\r\n");
  expect(&n, c, "PEXPIRE k2 9223372036854775807\r\n",
         "-ERR invalid expire time in 'pexpire' command\r\n");
  expect(&n, c, "TTL k2\r\n", ":-1\r\n");
  expect(&n, c, "CONFIG GET\r\n",
         "-ERR wrong number of arguments for 'config|get' command\r\n");
  expect(&n, c, "CONFIG RESETSTAT x\r\n",
         "-ERR wrong number of arguments for 'config|resetstat' command\r\n");
  rt_node_close(&n);
}

/* The applications' refusals for a retry table full of ids in their
 * window are counted, on INFO apps and in the node's metrics
 * (sabha_apps_retry_table_full_total): an operator sees the flood or the
 * too small dedup-max without reading every client's errors. */
static void retry_table_full_refusals_are_counted(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  rt_node_config_alone(&n, &cfg);
  cfg.dedup_max = 2;
  cfg.dedup_window_ms = 600000;
  CHECK(rt_node_start(&n, &cfg) == 0);
  CHECK(rt_node_elect(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL && c != NULL);
  expect(&n, c, "LEDGER.OPEN a 100\r\n", "+OK\r\n");
  expect(&n, c, "LEDGER.OPEN b 0\r\n", "+OK\r\n");
  expect(&n, c, "LEDGER.TRANSFER t1 a b 1\r\n", "+OK\r\n");
  expect(&n, c, "LEDGER.TRANSFER t2 a b 1\r\n", "+OK\r\n");
  expect(&n, c, "LEDGER.TRANSFER t1 a b 1\r\n", "+OK\r\n"); /* a retry */
  CHECK(rt_metrics(n.rt)->apps_retry_table_full == 0);
  for (int i = 0; i < 2; i++) {
    rt_stream_input(c, "LEDGER.TRANSFER t3 a b 1\r\n", 26);
    rt_node_settle(&n);
    CHECK(strncmp(rt_stream_said(c), "-ERR retry table full", 21) == 0);
  }
  CHECK(rt_metrics(n.rt)->apps_retry_table_full == 2);
  rt_stream_input(c, "INFO apps\r\n", 11);
  rt_node_settle(&n);
  CHECK(strstr(rt_stream_said(c), "\r\napp_retry_table_full:2\r\n") != NULL);
  rt_node_close(&n);
}

/* CONFIG GET <pattern> as a RESP command, into in[0, cap). */
static void config_get(char *in, size_t cap, const char *pattern) {
  snprintf(in, cap, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n",
           strlen(pattern), pattern);
}

/* CONFIG GET matches each pattern whole, ignoring case, as Redis does;
 * one past the pattern bound is refused. (Patterns were cut to 127 bytes,
 * so 127 stars and "port" answered every parameter.) */
static void config_get_matches_a_long_pattern_whole(void) {
  static char pattern[RT_PATTERN_BYTES_MAX + 2];
  static char in[RT_PATTERN_BYTES_MAX + 64];
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL && c != NULL);
  memset(pattern, '*', 127);
  strcpy(pattern + 127, "port");
  config_get(in, sizeof in, pattern);
  rt_stream_input(c, in, strlen(in));
  rt_node_settle(&n);
  CHECK(strncmp(rt_stream_said(c), "*2\r\n$4\r\nport\r\n", 14) == 0);
  strcpy(pattern + 127, "nothing");
  config_get(in, sizeof in, pattern);
  expect(&n, c, in, "*0\r\n");
  /* At the bound, still whole. */
  memset(pattern, '*', RT_PATTERN_BYTES_MAX - 4);
  strcpy(pattern + RT_PATTERN_BYTES_MAX - 4, "PORT");
  config_get(in, sizeof in, pattern);
  rt_stream_input(c, in, strlen(in));
  rt_node_settle(&n);
  CHECK(strncmp(rt_stream_said(c), "*2\r\n$4\r\nport\r\n", 14) == 0);
  memset(pattern, '*', RT_PATTERN_BYTES_MAX + 1);
  pattern[RT_PATTERN_BYTES_MAX + 1] = '\0';
  config_get(in, sizeof in, pattern);
  expect(&n, c, in, "-ERR the pattern is longer than 1024 bytes\r\n");
  expect(&n, c, "CONFIG GET MAX[A-C]LIENTS\r\n",
         "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
  expect(&n, c, "CONFIG GET appendfsync DATABASES\r\n",
         "*4\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n"
         "$9\r\ndatabases\r\n$1\r\n1\r\n");
  rt_node_close(&n);
}

/* CONFIG GET's patterns together are held to the matching work of one
 * SCAN (RT_SCAN_MATCH_WORK_MAX), judged from their bytes before any is
 * matched: 100 patterns of 1 KiB that backtrack over every name are
 * answered, 200 are refused. (Every pattern was matched against every
 * name: one command of 16 Ki such patterns held the node for seconds.) */
static void config_get_bounds_the_work_of_its_patterns(void) {
  enum { PATTERN_BYTES = RT_PATTERN_BYTES_MAX, ANSWERED = 100, REFUSED = 200 };
  static char pattern[PATTERN_BYTES + 1];
  static char in[REFUSED * (PATTERN_BYTES + 16) + 64];
  pattern[0] = '*';
  pattern[1] = '[';
  memset(pattern + 2, 'z', PATTERN_BYTES - 4);
  pattern[PATTERN_BYTES - 2] = ']';
  pattern[PATTERN_BYTES - 1] = 'x';
  struct rt_node n;
  CHECK(rt_node_start_alone(&n) == 0);
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL && c != NULL);
  const int counts[] = {ANSWERED, REFUSED};
  for (int k = 0; k < 2; k++) {
    size_t len = (size_t)snprintf(
        in, sizeof in, "*%d\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n", counts[k] + 2);
    for (int i = 0; i < counts[k]; i++)
      len += (size_t)snprintf(in + len, sizeof in - len, "$%d\r\n%s\r\n",
                              PATTERN_BYTES, pattern);
    CHECK(len < sizeof in);
    rt_stream_input(c, in, len);
    rt_node_settle(&n);
    if (counts[k] == ANSWERED)
      CHECK(strcmp(rt_stream_said(c), "*0\r\n") == 0);
    else
      CHECK(strncmp(rt_stream_said(c), "-ERR CONFIG GET patterns of more",
                    32) == 0);
  }
  expect(&n, c, "CONFIG GET databases\r\n",
         "*2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n");
  rt_node_close(&n);
}

/* Replies that name what the client sent (an unknown subcommand, a HELLO
 * option) cannot be broken by a line break in it: the client would read
 * the rest as the next reply, a forged one. Redis makes them spaces. */
static void echoed_arguments_cannot_forge_a_reply(void) {
  struct rt_node n;
  struct rt_stream *c;
  open_with_two_keys(&n, &c);
  CHECK(c != NULL);
  expect(&n, c, "*2\r\n$7\r\nCOMMAND\r\n$7\r\nX\r\n+OK\r\r\n",
         "-ERR unknown subcommand 'X  +OK '. Try COMMAND HELP.\r\n");
  expect(&n, c, "*2\r\n$6\r\nCLIENT\r\n$5\r\nX\n:1\n\r\n",
         "-ERR unknown subcommand 'X :1 '. Try CLIENT HELP.\r\n");
  expect(&n, c, "*2\r\n$6\r\nCONFIG\r\n$5\r\nX\r\n:1\r\n",
         "-ERR unknown subcommand 'X  :1'. Try CONFIG HELP.\r\n");
  expect(&n, c, "*3\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$5\r\nA\r\nB!\r\n",
         "-ERR Syntax error in HELLO option 'A  B!'\r\n");
  expect(&n, c, "PING\r\n", "+PONG\r\n");
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(scan_without_match_lists_every_key),
      TEST(scan_type_filters_whatever_the_order_of_options),
      TEST(scan_bounds_the_work_of_matching_a_pattern),
      TEST(set_get_answers_the_old_value),
      TEST(expire_takes_the_options_of_redis_7),
      TEST(multi_answers_argument_errors_inside_exec),
      TEST(set_and_others_answer_as_redis_7),
      TEST(echoed_arguments_cannot_forge_a_reply),
      TEST(retry_table_full_refusals_are_counted),
      TEST(config_get_matches_a_long_pattern_whole),
      TEST(config_get_bounds_the_work_of_its_patterns),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
