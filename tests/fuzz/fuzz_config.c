/* Fuzz target for sabhad's settings parser (src/server/node_config.c): the
 * config file an operator writes, and the command line.
 *
 * Input layout: byte 0 bit 0 chooses the form. 0: the rest is a config
 * file (written to a scratch file, since srv_config_load_file reads a
 * path). 1: the rest is a command line, one argument per line or NUL.
 * Inputs that name a file of their own ("file", as in secret-file, or
 * "config") are skipped: the parser would open whatever they name, and
 * /dev/stdin would block the fuzzer.
 *
 * Oracles, from node.h: the parser answers 0, 1 (--help) or 2 with a
 * message; every string it fills is terminated; a complete configuration
 * (srv_config_parse_args returned 0) has this node among 1..SABHA_NODES_MAX
 * distinct peers, a known engine, ports and sane timing. And it round
 * trips: written back as a config file, it reads to the same settings. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "server/node.h"

#define ARGS_MAX 64

static char scratch_path[64];
static FILE *devnull;

static void remove_scratch(void) {
  unlink(scratch_path);
}

/* A file of our own, removed at exit, for the config-file form. */
static void setup(void) {
  if (scratch_path[0] != '\0')
    return;
  snprintf(scratch_path, sizeof scratch_path, "/tmp/sabha-fuzz-config-%ld",
           (long)getpid());
  atexit(remove_scratch);
  devnull = fopen("/dev/null", "w");
  REQUIRE(devnull != NULL);
}

static void write_scratch(const void *p, size_t n) {
  FILE *f = fopen(scratch_path, "wb");
  REQUIRE(f != NULL);
  REQUIRE(fwrite(p, 1, n, f) == n);
  REQUIRE(fclose(f) == 0);
}

static bool terminated(const char *s, size_t cap) {
  return memchr(s, '\0', cap) != NULL;
}

static void check_strings(const struct srv_config *c) {
  REQUIRE(c->n_peers <= SABHA_NODES_MAX &&
          c->n_peer_clients <= SABHA_NODES_MAX);
  REQUIRE(terminated(c->bind, sizeof c->bind));
  REQUIRE(terminated(c->data_dir, sizeof c->data_dir));
  REQUIRE(terminated(c->protocol, sizeof c->protocol));
  REQUIRE(terminated(c->cluster_id, sizeof c->cluster_id));
  REQUIRE(c->secret_bytes <= SRV_SECRET_BYTES_MAX);
  for (uint32_t i = 0; i < c->n_peers; i++)
    REQUIRE(terminated(c->peers[i].host, sizeof c->peers[i].host));
  for (uint32_t i = 0; i < c->n_peer_clients; i++)
    REQUIRE(
        terminated(c->peer_clients[i].host, sizeof c->peer_clients[i].host));
}

static void check_complete(const struct srv_config *c) {
  REQUIRE(c->id >= 1 && c->id <= SABHA_NODES_MAX);
  REQUIRE(c->n_peers >= 1);
  bool self = false;
  for (uint32_t i = 0; i < c->n_peers; i++) {
    REQUIRE(c->peers[i].id >= 1 && c->peers[i].port != 0);
    self = self || c->peers[i].id == c->id;
    for (uint32_t k = 0; k < i; k++)
      REQUIRE(c->peers[k].id != c->peers[i].id);
  }
  REQUIRE(self);
  REQUIRE(strcmp(c->protocol, "async") != 0);
  REQUIRE(c->client_port != 0 && c->http_port != 0);
  REQUIRE(c->tick_ms > 0 && c->heartbeat_ms > 0 &&
          c->election_timeout_ms > c->heartbeat_ms);
  REQUIRE(c->data_dir[0] != '\0');
}

/* Can the value be written as `name = value` and read back the same? A
 * file line loses what follows '#' and spaces around the value. */
static bool file_safe(const char *s, size_t n) {
  if (n == 0)
    return true;
  if (memchr(s, '#', n) != NULL || memchr(s, '\n', n) != NULL ||
      memchr(s, '\r', n) != NULL || memchr(s, '\0', n) != NULL)
    return false;
  const char *ws = " \t\v\f";
  return strchr(ws, s[0]) == NULL && strchr(ws, s[n - 1]) == NULL;
}

static void print_addrs(FILE *f, const char *name, const struct srv_addr *a,
                        uint32_t n) {
  if (n == 0)
    return;
  fprintf(f, "%s = ", name);
  for (uint32_t i = 0; i < n; i++)
    fprintf(f,
            strchr(a[i].host, ':') != NULL || a[i].host[0] == '['
                ? "%s%u=[%s]:%u"
                : "%s%u=%s:%u",
            i ? "," : "", a[i].id, a[i].host, a[i].port);
  fprintf(f, "\n");
}

static bool same_addrs(const struct srv_addr *a, const struct srv_addr *b,
                       uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (a[i].id != b[i].id || a[i].port != b[i].port ||
        strcmp(a[i].host, b[i].host) != 0)
      return false;
  return true;
}

/* Writes every setting as a config file, reads it as sabhad would, and
 * compares. */
static void check_round_trip(const struct srv_config *c) {
  const char *strs[] = {c->bind, c->data_dir, c->protocol, c->cluster_id};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (!file_safe(strs[i], strlen(strs[i])))
      return;
  if (!file_safe((const char *)c->secret, c->secret_bytes))
    return;
  for (uint32_t i = 0; i < c->n_peers; i++)
    if (!file_safe(c->peers[i].host, strlen(c->peers[i].host)))
      return;
  for (uint32_t i = 0; i < c->n_peer_clients; i++)
    if (!file_safe(c->peer_clients[i].host, strlen(c->peer_clients[i].host)))
      return;
  FILE *f = fopen(scratch_path, "w");
  REQUIRE(f != NULL);
  fprintf(f, "id = %u\n", c->id);
  print_addrs(f, "peers", c->peers, c->n_peers);
  print_addrs(f, "peer_clients", c->peer_clients, c->n_peer_clients);
  fprintf(f, "bind = %s\nclient-port = %u\nhttp-port = %u\n", c->bind,
          c->client_port, c->http_port);
  fprintf(f, "data = %s\nprotocol = %s\ncluster-id = %s\n", c->data_dir,
          c->protocol, c->cluster_id);
  if (c->secret_bytes > 0)
    fprintf(f, "secret = %.*s\n", (int)c->secret_bytes,
            (const char *)c->secret);
  fprintf(f, "redirect = %s\n",
          c->redirect == SRV_REDIRECT_MOVED ? "moved" : "forward");
  fprintf(f, "compact-entries = %llu\n",
          (unsigned long long)c->compact_entries);
  fprintf(f,
          "election-timeout-ms = %u\nheartbeat-ms = %u\ntick-ms = %u\n"
          "leader-wait-ms = %u\nrequest-timeout-ms = %u\nclients-max = %u\n"
          "wal-segment-bytes = %u\nslot-commands-max = %u\ndedup-max = %u\n",
          c->election_timeout_ms, c->heartbeat_ms, c->tick_ms,
          c->leader_wait_ms, c->request_timeout_ms, c->clients_max,
          c->wal_segment_bytes, c->slot_commands_max, c->dedup_max);
  fprintf(f, "dedup-window-ms = %u\n", c->dedup_window_ms);
  fprintf(f, "discard-corrupt-log = %s\nverbose = %s\n",
          c->discard_corrupt_log ? "on" : "off", c->verbose ? "yes" : "no");
  REQUIRE(fclose(f) == 0);

  static struct srv_config r;
  srv_config_init(&r);
  char arg[96];
  snprintf(arg, sizeof arg, "--config=%s", scratch_path);
  char *argv[] = {"sabhad", arg, NULL};
  char err[512];
  REQUIRE(srv_config_parse_args(&r, 2, argv, devnull, err, sizeof err) == 0);
  REQUIRE(r.id == c->id && r.n_peers == c->n_peers &&
          r.n_peer_clients == c->n_peer_clients);
  REQUIRE(same_addrs(r.peers, c->peers, c->n_peers));
  REQUIRE(same_addrs(r.peer_clients, c->peer_clients, c->n_peer_clients));
  REQUIRE(strcmp(r.bind, c->bind) == 0 && strcmp(r.data_dir, c->data_dir) == 0);
  REQUIRE(strcmp(r.protocol, c->protocol) == 0 &&
          strcmp(r.cluster_id, c->cluster_id) == 0);
  REQUIRE(r.secret_bytes == c->secret_bytes &&
          memcmp(r.secret, c->secret, c->secret_bytes) == 0);
  REQUIRE(r.client_port == c->client_port && r.http_port == c->http_port);
  REQUIRE(r.redirect == c->redirect && r.compact_entries == c->compact_entries);
  REQUIRE(r.election_timeout_ms == c->election_timeout_ms &&
          r.heartbeat_ms == c->heartbeat_ms && r.tick_ms == c->tick_ms);
  REQUIRE(r.leader_wait_ms == c->leader_wait_ms &&
          r.request_timeout_ms == c->request_timeout_ms &&
          r.clients_max == c->clients_max);
  REQUIRE(r.wal_segment_bytes == c->wal_segment_bytes &&
          r.slot_commands_max == c->slot_commands_max &&
          r.dedup_max == c->dedup_max &&
          r.dedup_window_ms == c->dedup_window_ms);
  REQUIRE(r.discard_corrupt_log == c->discard_corrupt_log &&
          r.verbose == c->verbose);
}

static bool contains(const uint8_t *p, size_t n, const char *word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= n; i++)
    if (memcmp(p + i, word, w) == 0)
      return true;
  return false;
}

static bool names_a_file(const uint8_t *p, size_t n) {
  return contains(p, n, "file") || contains(p, n, "config");
}

static void run_args(const uint8_t *p, size_t n) {
  /* One argument per line (or NUL), copied to terminated strings. */
  char *text = malloc(n + 1);
  REQUIRE(text != NULL);
  memcpy(text, p, n);
  text[n] = '\0';
  char *argv[ARGS_MAX + 2];
  int argc = 0;
  argv[argc++] = "sabhad";
  char *start = text;
  for (size_t i = 0; i <= n && argc <= ARGS_MAX; i++)
    if (text[i] == '\n' || text[i] == '\0') {
      text[i] = '\0';
      argv[argc++] = start;
      start = text + i + 1;
    }
  argv[argc] = NULL;

  static struct srv_config c;
  srv_config_init(&c);
  char err[512];
  err[0] = '\0';
  int rc = srv_config_parse_args(&c, argc, argv, devnull, err, sizeof err);
  REQUIRE(rc >= 0 && rc <= 2);
  REQUIRE(terminated(err, sizeof err));
  check_strings(&c);
  if (rc == 2)
    REQUIRE(err[0] != '\0');
  if (rc == 0) {
    check_complete(&c);
    check_round_trip(&c);
  }
  free(text);
}

static void run_file(const uint8_t *p, size_t n) {
  write_scratch(p, n);
  static struct srv_config c;
  srv_config_init(&c);
  char err[512];
  err[0] = '\0';
  int rc = srv_config_load_file(&c, scratch_path, err, sizeof err);
  REQUIRE(rc == 0 || (rc == 2 && err[0] != '\0'));
  REQUIRE(terminated(err, sizeof err));
  check_strings(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || names_a_file(data + 1, size - 1))
    return 0;
  setup();
  if (data[0] & 1)
    run_args(data + 1, size - 1);
  else
    run_file(data + 1, size - 1);
  return 0;
}
