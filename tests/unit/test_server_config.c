/* sabhad's client limits as settings (src/server/node_config.c): sizes as
 * Redis writes them, client-output-buffer-limit's three values with or
 * without its class, and the floor under client-query-buffer-limit; and
 * the leader priorities: this node's from --priority or the map, bounds,
 * and the two agreeing; where fsyncs run; the applications' retry table
 * (dedup-max, dedup-window-ms) and the settings digest members compare;
 * tls-handshakes-per-second's range. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "server/node.h"

/* Parses `--id 1 --peers 1=127.0.0.1:7000` and then `flag value`. */
static int parse(struct srv_config *cfg, const char *flag, const char *value) {
  char *argv[] = {"sabhad",           "--id",       "1",          "--peers",
                  "1=127.0.0.1:7000", (char *)flag, (char *)value};
  char err[512];
  srv_config_init(cfg);
  int argc = flag == NULL ? 5 : 7;
  return srv_config_parse_args(cfg, argc, argv, stdout, err, sizeof err);
}

static void client_limits_have_their_defaults(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, NULL, NULL) == 0);
  CHECK(cfg.clients_max == 10000);
  CHECK(cfg.timeout_s == 300);
  CHECK(cfg.out_hard_bytes == 64u << 20 && cfg.out_soft_bytes == 16u << 20);
  CHECK(cfg.out_soft_s == 60);
  CHECK(cfg.query_bytes_max == 32u << 20);
  CHECK(cfg.clients_memory_max == 256u << 20);
}

static void sizes_take_redis_units(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, "--maxmemory-clients", "1gb") == 0);
  CHECK(cfg.clients_memory_max == 1ull << 30);
  CHECK(parse(&cfg, "--maxmemory-clients", "3K") == 0);
  CHECK(cfg.clients_memory_max == 3000);
  CHECK(parse(&cfg, "--maxmemory-clients", "0") == 0);
  CHECK(cfg.clients_memory_max == 0);
  CHECK(parse(&cfg, "--client-query-buffer-limit", "20mb") == 0);
  CHECK(cfg.query_bytes_max == 20u << 20);
  CHECK(parse(&cfg, "--maxmemory-clients", "12xb") == 2);
  CHECK(parse(&cfg, "--maxmemory-clients", "mb") == 2);
  CHECK(parse(&cfg, "--maxmemory-clients", "99999999999gb") == 2);
}

static void the_query_buffer_limit_fits_the_largest_command(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, "--client-query-buffer-limit", "16mb") == 2);
  CHECK(parse(&cfg, "--client-query-buffer-limit", "17mb") == 0);
}

static void output_limit_takes_three_values_and_an_optional_class(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, "--client-output-buffer-limit", "normal 1mb 512kb 5") == 0);
  CHECK(cfg.out_hard_bytes == 1u << 20 && cfg.out_soft_bytes == 512u << 10);
  CHECK(cfg.out_soft_s == 5);
  CHECK(parse(&cfg, "--client-output-buffer-limit", "0 0 0") == 0);
  CHECK(cfg.out_hard_bytes == 0 && cfg.out_soft_bytes == 0);
  CHECK(parse(&cfg, "--client-output-buffer-limit", "replica 1mb 1mb 1") == 2);
  CHECK(parse(&cfg, "--client-output-buffer-limit", "1mb 1mb") == 2);
  CHECK(parse(&cfg, "--client-output-buffer-limit", "1mb 1mb 1 1") == 2);
  CHECK(parse(&cfg, "--timeout", "0") == 0);
  CHECK(cfg.timeout_s == 0);
}

static void priorities_default_bound_and_agree(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, NULL, NULL) == 0);
  CHECK(cfg.priority == 1 && cfg.priorities[1] == 1);
  CHECK(cfg.priorities[2] == SRV_PRIORITY_UNSET);
  CHECK(parse(&cfg, "--priority", "0") == 0);
  CHECK(cfg.priority == 0 && cfg.priorities[1] == 0);
  CHECK(parse(&cfg, "--priority", "1000") == 0);
  CHECK(parse(&cfg, "--priority", "1001") == 2);
  /* The map alone gives this node its entry, and the others theirs. */
  CHECK(parse(&cfg, "--priorities", "1=10,2=5,3=0") == 0);
  CHECK(cfg.priority == 10 && cfg.priorities[2] == 5);
  CHECK(cfg.priorities[3] == 0 && cfg.priorities[4] == SRV_PRIORITY_UNSET);
  CHECK(parse(&cfg, "--priorities", "2=5") == 0);
  CHECK(cfg.priority == 1 && cfg.priorities[1] == 1);
  CHECK(parse(&cfg, "--priorities", "1=1,1=2") == 2);
  CHECK(parse(&cfg, "--priorities", "17=1") == 2);
  CHECK(parse(&cfg, "--priorities", "0=1") == 2);
  CHECK(parse(&cfg, "--priorities", "1=1001") == 2);
  CHECK(parse(&cfg, "--priorities", "1") == 2);
  CHECK(parse(&cfg, "--priorities", "") == 2);
  char *agree[] = {"sabhad",           "--id",       "1", "--peers",
                   "1=127.0.0.1:7000", "--priority", "7", "--priorities",
                   "1=7,2=3"};
  char err[512];
  srv_config_init(&cfg);
  CHECK(srv_config_parse_args(&cfg, 9, agree, stdout, err, sizeof err) == 0);
  CHECK(cfg.priority == 7 && cfg.priorities[2] == 3);
  agree[6] = "8";
  srv_config_init(&cfg);
  CHECK(srv_config_parse_args(&cfg, 9, agree, stdout, err, sizeof err) == 2);
  CHECK(strstr(err, "disagrees") != NULL);
}

/* fsync: auto by default, the runtime's three names, nothing else. */
static void fsync_takes_auto_loop_or_thread(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, NULL, NULL) == 0);
  CHECK(cfg.fsync == RT_FSYNC_AUTO);
  CHECK(parse(&cfg, "--fsync", "loop") == 0 && cfg.fsync == RT_FSYNC_LOOP);
  CHECK(parse(&cfg, "--fsync", "thread") == 0 && cfg.fsync == RT_FSYNC_THREAD);
  CHECK(parse(&cfg, "--fsync", "auto") == 0 && cfg.fsync == RT_FSYNC_AUTO);
  CHECK(parse(&cfg, "--fsync", "always") != 0);
  CHECK(parse(&cfg, "--fsync", "") != 0);
}

/* Each node picks its election timeouts in [N, 2N]: 2N must be one the
 * engines take (SABHA_TIMING_MS_MAX), or the engine would run with timing
 * that adaptive timing could never set again. */
static void election_timeout_fits_the_engines(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, "--election-timeout-ms", "300000") == 0);
  CHECK(2 * cfg.election_timeout_ms <= SABHA_TIMING_MS_MAX);
  CHECK(parse(&cfg, "--election-timeout-ms", "300001") != 0);
  CHECK(parse(&cfg, "--election-timeout-ms", "600000") != 0);
}

/* tls-handshakes-per-second: a default, 0 for no limit, a range. */
static void tls_handshakes_per_second_has_a_default_and_a_range(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, NULL, NULL) == 0);
  CHECK(cfg.tls_handshakes_per_second == SRV_TLS_HANDSHAKES_PER_SECOND);
  CHECK(parse(&cfg, "--tls-handshakes-per-second", "0") == 0 &&
        cfg.tls_handshakes_per_second == 0);
  CHECK(parse(&cfg, "--tls-handshakes-per-second", "1000000") == 0 &&
        cfg.tls_handshakes_per_second == 1000000);
  CHECK(parse(&cfg, "--tls-handshakes-per-second", "1000001") == 2);
  CHECK(parse(&cfg, "--tls-handshakes-per-second", "-5") == 2);
}

/* dedup-window-ms: a default, a range, and an error that names both. */
static void the_dedup_window_has_a_default_and_a_range(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, NULL, NULL) == 0);
  CHECK(cfg.dedup_window_ms == 5000 && cfg.dedup_max == 100000);
  CHECK(parse(&cfg, "--dedup-window-ms", "0") == 0 && cfg.dedup_window_ms == 0);
  CHECK(parse(&cfg, "--dedup-window-ms", "3600000") == 0 &&
        cfg.dedup_window_ms == 3600000);
  char *argv[] = {
      "sabhad", "--id", "1", "--peers", "1=127.0.0.1:7000", "--dedup-window-ms",
      "3600001"};
  char err[512] = "";
  srv_config_init(&cfg);
  CHECK(srv_config_parse_args(&cfg, 7, argv, stdout, err, sizeof err) == 2);
  CHECK(strstr(err, "dedup-window-ms") != NULL &&
        strstr(err, "0..3600000") != NULL);
  CHECK(parse(&cfg, "--dedup-window-ms", "-1") == 2);
  CHECK(parse(&cfg, "--dedup-window-ms", "1m") == 2);
  CHECK(parse(&cfg, "--dedup-window-ms", "") == 2);
  CHECK(parse(&cfg, "--dedup-max", "0") == 2);
}

/* The handshake's settings digest: unchanged for the defaults (older nodes
 * send 100000), and changed by each of the three settings. */
static void the_settings_digest_tells_every_shared_setting(void) {
  struct srv_config cfg;
  CHECK(parse(&cfg, NULL, NULL) == 0);
  uint64_t d = srv_settings_digest(&cfg);
  CHECK(d == 100000);
  CHECK(parse(&cfg, "--groups", "4") == 0);
  CHECK(srv_settings_digest(&cfg) == (100000 | 3ull << 32));
  uint64_t seen[8];
  size_t n = 0;
  static const char *const windows[] = {"0", "1", "59999", "60001", "3600000"};
  for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
    CHECK(parse(&cfg, "--dedup-window-ms", windows[i]) == 0);
    seen[n++] = srv_settings_digest(&cfg);
  }
  CHECK(parse(&cfg, "--dedup-max", "100001") == 0);
  seen[n++] = srv_settings_digest(&cfg);
  seen[n++] = d;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      CHECK(seen[i] != seen[j]);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(tls_handshakes_per_second_has_a_default_and_a_range),
      TEST(client_limits_have_their_defaults),
      TEST(sizes_take_redis_units),
      TEST(the_query_buffer_limit_fits_the_largest_command),
      TEST(output_limit_takes_three_values_and_an_optional_class),
      TEST(priorities_default_bound_and_agree),
      TEST(fsync_takes_auto_loop_or_thread),
      TEST(election_timeout_fits_the_engines),
      TEST(the_dedup_window_has_a_default_and_a_range),
      TEST(the_settings_digest_tells_every_shared_setting),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
