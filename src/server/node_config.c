/* sabhad's settings: defaults, the command line and the config file.
 *
 * One table (SETTINGS below) names every setting once; the command line
 * takes it as --name VALUE (or --name=VALUE) and the config file as
 * `name = value`, so the two can never drift apart. A --config FILE is read
 * first wherever it stands, then the flags override what it says.
 * docs/operations.md lists the same settings for operators. */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/decimal.h"
#include "net/rate.h"
#include "node/runtime.h"
#include "server/node.h"
#include "sm/app.h"

#define LINE_BYTES_MAX 4096

void srv_config_init(struct srv_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->bind, sizeof cfg->bind, "127.0.0.1");
  cfg->client_port = 6379;
  cfg->http_port = 8379;
  snprintf(cfg->protocol, sizeof cfg->protocol, "raft");
  snprintf(cfg->cluster_id, sizeof cfg->cluster_id, "sabha");
  cfg->redirect = SRV_REDIRECT_FORWARD;
  cfg->compact_entries = 20000;
  cfg->compact_bytes = 32u << 20;
  cfg->compact_growth_pct = 100;
  cfg->election_timeout_ms = 500;
  cfg->heartbeat_ms = 100;
  cfg->election_timeout_floor_ms = 150;
  cfg->election_timeout_ceiling_ms = 5000;
  cfg->tick_ms = 5;
  cfg->leader_wait_ms = 2000;
  cfg->request_timeout_ms = 5000;
  cfg->clients_max = 10000;
  cfg->timeout_s = 300;
  cfg->out_hard_bytes = 64u << 20;
  cfg->out_soft_bytes = 16u << 20;
  cfg->out_soft_s = 60;
  cfg->query_bytes_max = 32u << 20;
  cfg->clients_memory_max = 256u << 20;
  cfg->wal_segment_bytes = 64u << 20;
  cfg->slot_commands_max = 64;
  cfg->dedup_max = APP_DEDUP_DEFAULT;
  cfg->dedup_window_ms = APP_DEDUP_WINDOW_MS_DEFAULT;
  cfg->protected_mode = true;
  cfg->tls_handshakes_per_second = SRV_TLS_HANDSHAKES_PER_SECOND;
  cfg->priority = SRV_PRIORITY_UNSET;
  cfg->groups = 1;
  for (uint32_t i = 0; i <= SABHA_NODES_MAX; i++)
    cfg->priorities[i] = SRV_PRIORITY_UNSET;
}

void srv_usage(FILE *f) {
  fprintf(
      f,
      "usage: sabhad --id N --peers 1=HOST:PORT,2=HOST:PORT,... [options]\n"
      "\n"
      "sabhad is one node of a sabha cluster: it replicates a key-value\n"
      "store and the applications of docs/apps.md (LEDGER.*, SEATS.*,\n"
      "LOCK.*, FENCED.*, ORDER.*) with Raft or Multi-Paxos, keeps them on\n"
      "disk, and serves them to any Redis client (RESP2).\n"
      "docs/operations.md has the whole story.\n"
      "\n"
      "  --id N                 this node's id (1..16), one of --peers\n"
      "  --peers LIST           every member: id=host:port of its peer port\n"
      "  --peer-clients LIST    every member's client (RESP) address, for\n"
      "                         forwarding to the leader and -MOVED\n"
      "  --client-port P        RESP port (default 6379)\n"
      "  --http-port P          /metrics, /status, /health (default 8379)\n"
      "  --bind HOST            address of all listeners (127.0.0.1)\n"
      "  --peer-bind HOST, --client-bind HOST, --http-bind HOST\n"
      "                         one listener's own address (default:\n"
      "                         --bind)\n"
      "  --data DIR             data directory (default sabha-data-<id>)\n"
      "  --protocol NAME        raft or multipaxos (default raft)\n"
      "  --cluster-id NAME      peers of another cluster are refused\n"
      "                         (default sabha)\n"
      "  --secret-file FILE     the cluster secret (16..256 bytes; the file\n"
      "                         must not be readable by group or others):\n"
      "                         peers prove they know it and tag every\n"
      "                         frame with it. Required unless --bind is a\n"
      "                         loopback address or --tls is on.\n"
      "                         (`secret = S` in a --config file works\n"
      "                         too; never on the command line, where ps\n"
      "                         shows it)\n"
      "  --requirepass-file FILE  clients must AUTH with the password in\n"
      "                         FILE (--requirepass P: the same, but P shows\n"
      "                         in ps)\n"
      "  --admin-pass-file FILE   SABHA.LEADER and SABHA.FORWARDED need\n"
      "                         AUTH admin <password in FILE> (or\n"
      "                         --admin-pass P)\n"
      "  --protected-mode yes|no  without requirepass, accept clients only\n"
      "                         from loopback (yes, default)\n"
      "  --tls                  every port speaks only TLS (tls = yes in a\n"
      "                         --config file); peers authenticate each\n"
      "                         other with certificates of the CA\n"
      "  --tls-cert-file FILE   this node's certificate (PEM; its common\n"
      "                         name sabha-node-<id>)\n"
      "  --tls-key-file FILE    its private key (PEM)\n"
      "  --tls-ca-cert-file FILE  the CA that signs every member's\n"
      "                         certificate (and clients', if they show one)\n"
      "  --tls-auth-clients no|yes|optional  must clients (RESP and HTTP)\n"
      "                         show a certificate of the CA? (no)\n"
      "  --tls-handshakes-per-second N  TLS handshakes served per second\n"
      "                         on the client and HTTP ports, and on the\n"
      "                         peer port; more are closed at once (1000;\n"
      "                         0: no limit)\n"
      "  --redirect forward|moved  a follower relays commands to the leader\n"
      "                         (forward, default) or answers -MOVED\n"
      "  --compact-entries N    snapshot every N applied entries (20000;\n"
      "                         0 never)\n"
      "  --compact-bytes N      ... or once they hold N bytes (33554432;\n"
      "                         0: entries alone)\n"
      "  --compact-growth PCT   ... once the entries since the last snapshot\n"
      "                         reach PCT%% of its size (100; 0: entries\n"
      "                         alone)\n"
      "  --election-timeout-ms N  minimum election timeout (500; max 2N)\n"
      "  --heartbeat-ms N       leader heartbeat (100)\n"
      "  --adaptive-timing      set the election timeout (and heartbeat, a\n"
      "                         fifth of it) from the round trips measured\n"
      "                         to the peers (timing = adaptive|fixed in a\n"
      "                         --config file; fixed by default)\n"
      "  --election-timeout-floor-ms N, --election-timeout-ceiling-ms N\n"
      "                         adaptive timing's bounds on the election\n"
      "                         timeout (150, 5000; 10 <= N <= 300000)\n"
      "  --fsync auto|loop|thread  where fsyncs run: on the loop at low\n"
      "                         load, on a disk thread while writes arrive\n"
      "                         during fsyncs (auto, default), or always\n"
      "                         one or the other\n"
      "  --tick-ms N            engine clock resolution (5)\n"
      "  --leader-wait-ms N     how long a command waits for a leader\n"
      "                         before -TRYAGAIN (2000)\n"
      "  --request-timeout-ms N how long a write waits for its commit (5000)\n"
      "  --clients-max N        client connections (10000; lowered to fit\n"
      "                         the descriptor limit, with a warning)\n"
      "  --timeout S            close a client idle for S seconds (300;\n"
      "                         0 never)\n"
      "  --client-output-buffer-limit 'HARD SOFT SECONDS'\n"
      "                         close a client whose unsent replies pass\n"
      "                         HARD, or SOFT for SECONDS (64mb 16mb 60;\n"
      "                         0 turns one off; `normal` may lead)\n"
      "  --client-query-buffer-limit BYTES  close a client that sent more\n"
      "                         than this unparsed (32mb; at least 17mb)\n"
      "  --maxmemory-clients BYTES  budget for all clients' buffers: past\n"
      "                         half the largest stop being read, past it\n"
      "                         they are closed (256mb; 0 none)\n"
      "  --wal-segment-bytes N  WAL segment size (64 MiB)\n"
      "  --slot-commands-max N  Multi-Paxos: commands batched per slot (64)\n"
      "  --priority N           this node's leader priority, 0..1000 (1):\n"
      "                         a leader hands leadership to a caught-up\n"
      "                         voter of higher priority; 0 never by\n"
      "                         preference\n"
      "  --priorities ID=N,...  every member's priority (the same on every\n"
      "                         node; members not named have 1)\n"
      "  --groups N             consensus groups (shards) this node hosts,\n"
      "                         1..64, the same on every node (1): keys\n"
      "                         spread over them, each with its own log\n"
      "                         and leader\n"
      "  --dedup-max N          ids (txid, request_id) each application\n"
      "                         remembers for exactly-once retries\n"
      "                         (100000); the same on every node\n"
      "  --dedup-window-ms MS   an id is remembered at least this long\n"
      "                         (5000; 0..3600000, 0: no such promise):\n"
      "                         when N ids younger than that are kept, a\n"
      "                         command with a new id is refused (retry\n"
      "                         table full) until the oldest is old enough.\n"
      "                         Clients retry within the window; later, a\n"
      "                         retry after N newer ids applies as new. The\n"
      "                         same on every node\n"
      "  --discard-corrupt-log  give a damaged log up whole (not only from\n"
      "                         the damage on) and rejoin from the peers\n"
      "  --refuse-corrupt-log   refuse to start on a damaged log instead of\n"
      "                         repairing it from the peers\n"
      "  --verbose              log debug messages\n"
      "  --join                 join a running group: start with no\n"
      "                         membership and wait until a member adds\n"
      "                         this node (SABHA.MEMBER ADD; sabha cluster\n"
      "                         add does both)\n"
      "  --config FILE          the same settings as `name = value` lines\n"
      "  --help                 this text\n");
}

/* ---- value parsers ------------------------------------------------------ */

static int errf(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t err_size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err != NULL && err_size > 0)
    vsnprintf(err, err_size, fmt, ap);
  va_end(ap);
  return 2;
}

/* "host:port", "[v6]:port". */
static bool parse_hostport(const char *s, char *host, size_t host_size,
                           uint16_t *port) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s)
    return false;
  const char *h = s;
  size_t hlen = (size_t)(colon - s);
  if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= host_size)
    return false;
  uint64_t p;
  if (!dec_parse_flag(colon + 1, 0, 65535, &p) || p == 0)
    return false;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (uint16_t)p;
  return true;
}

/* "1=host:port,2=host:port". */
static bool parse_addr_list(const char *s, struct srv_addr *out, uint32_t *n) {
  char buf[LINE_BYTES_MAX];
  if (strlen(s) >= sizeof buf)
    return false;
  snprintf(buf, sizeof buf, "%s", s);
  uint32_t count = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", ", &save); tok != NULL;
       tok = strtok_r(NULL, ", ", &save)) {
    char *eq = strchr(tok, '=');
    if (eq == NULL || count == SABHA_NODES_MAX)
      return false;
    *eq = '\0';
    uint64_t id;
    if (!dec_parse_flag(tok, 0, SABHA_NODES_MAX, &id) || id == 0)
      return false;
    for (uint32_t k = 0; k < count; k++)
      if (out[k].id == id)
        return false;
    struct srv_addr *a = &out[count];
    a->id = (uint32_t)id;
    if (!parse_hostport(eq + 1, a->host, sizeof a->host, &a->port))
      return false;
    count++;
  }
  if (count == 0)
    return false;
  *n = count;
  return true;
}

/* "1=10,2=5,3=1": ids 1..SABHA_NODES_MAX, each once, priorities
 * 0..SRV_PRIORITY_MAX. Ids not named keep what they had. */
static bool parse_priorities(const char *s, uint32_t *out) {
  char buf[LINE_BYTES_MAX];
  if (strlen(s) >= sizeof buf)
    return false;
  snprintf(buf, sizeof buf, "%s", s);
  uint32_t got[SABHA_NODES_MAX + 1];
  memcpy(got, out, sizeof got);
  bool named[SABHA_NODES_MAX + 1] = {false};
  uint32_t count = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", ", &save); tok != NULL;
       tok = strtok_r(NULL, ", ", &save)) {
    char *eq = strchr(tok, '=');
    if (eq == NULL)
      return false;
    *eq = '\0';
    uint64_t id, priority;
    if (!dec_parse_flag(tok, 0, SABHA_NODES_MAX, &id) || id == 0 || named[id] ||
        !dec_parse_flag(eq + 1, 0, SRV_PRIORITY_MAX, &priority))
      return false;
    named[id] = true;
    got[id] = (uint32_t)priority;
    count++;
  }
  if (count == 0)
    return false;
  memcpy(out, got, sizeof got);
  return true;
}

static bool parse_bool(const char *s, bool *out) {
  if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 ||
      strcmp(s, "on") == 0) {
    *out = true;
    return true;
  }
  if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || strcmp(s, "no") == 0 ||
      strcmp(s, "off") == 0) {
    *out = false;
    return true;
  }
  return false;
}

/* A size as Redis writes one: digits and an optional unit, k (1000), kb
 * (1024), m, mb, g, gb, any case. */
static bool parse_bytes(const char *s, uint64_t *out) {
  static const struct {
    const char *unit;
    uint64_t scale;
  } units[] = {{"", 1},           {"b", 1},
               {"k", 1000},       {"kb", 1024},
               {"m", 1000000},    {"mb", 1024 * 1024},
               {"g", 1000000000}, {"gb", 1024ull * 1024 * 1024}};
  size_t digits = 0;
  while (isdigit((unsigned char)s[digits]))
    digits++;
  uint64_t v;
  if (dec_parse_u64(s, digits, DEC_LEADING_ZEROS, 0, UINT64_MAX, &v) != DEC_OK)
    return false;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(s + digits, units[i].unit) != 0)
      continue;
    if (v > UINT64_MAX / units[i].scale)
      return false;
    *out = v * units[i].scale;
    return true;
  }
  return false;
}

/* client-output-buffer-limit: [normal] HARD SOFT SECONDS, as in Redis's
 * config (only the normal class exists here: no replicas, no pub/sub). */
static bool parse_output_limit(struct srv_config *cfg, const char *value) {
  char buf[128];
  if (strlen(value) >= sizeof buf)
    return false;
  snprintf(buf, sizeof buf, "%s", value);
  char *words[4];
  size_t n = 0;
  char *save = NULL;
  for (char *w = strtok_r(buf, " \t", &save); w != NULL;
       w = strtok_r(NULL, " \t", &save)) {
    if (n == 4)
      return false;
    words[n++] = w;
  }
  size_t at = n == 4 ? 1 : 0;
  if (n - at != 3 || (at == 1 && strcasecmp(words[0], "normal") != 0))
    return false;
  uint64_t hard, soft, secs;
  if (!parse_bytes(words[at], &hard) || !parse_bytes(words[at + 1], &soft) ||
      !dec_parse_flag(words[at + 2], 0, 86400u * 365u, &secs))
    return false;
  cfg->out_hard_bytes = hard;
  cfg->out_soft_bytes = soft;
  cfg->out_soft_s = (uint32_t)secs;
  return true;
}

/* An empty secret used to mean "none" without a word; a short one is
 * guessable. Both are refused, so that a cluster is either openly without
 * a secret (loopback only, check_complete) or has a real one. */
static int check_secret_length(const char *what, size_t n, char *err,
                               size_t err_size) {
  if (n < SRV_SECRET_BYTES_MIN)
    return errf(err, err_size,
                "%s: %zu bytes; a secret needs at least %u (sabha cluster "
                "start writes 32 random bytes, hex: e.g. `openssl rand -hex "
                "32`)",
                what, n, SRV_SECRET_BYTES_MIN);
  return 0;
}

static int read_secret_file(struct srv_config *cfg, const char *path, char *err,
                            size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return errf(err, err_size, "cannot read secret file %s: %s", path,
                strerror(errno));
  /* As ssh does with a private key: a secret others can read is no longer
   * a secret, and it is better to stop now than to run on it. fstat of the
   * open file, so the mode checked is that of the bytes read. */
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
      (st.st_mode & 077) != 0) {
    fclose(f);
    return errf(err, err_size,
                "secret file %s: must be a regular file that only its "
                "owner can access (mode %04o; chmod 600 it)",
                path, (unsigned)(st.st_mode & 07777));
  }
  size_t n = fread(cfg->secret, 1, sizeof cfg->secret, f);
  int extra = fgetc(f);
  fclose(f);
  if (extra != EOF)
    return errf(err, err_size, "secret file %s: longer than %u bytes", path,
                SRV_SECRET_BYTES_MAX);
  while (n > 0 && (cfg->secret[n - 1] == '\n' || cfg->secret[n - 1] == '\r'))
    n--;
  char what[SRV_PATH_BYTES_MAX + 16];
  snprintf(what, sizeof what, "secret file %s", path);
  int rc = check_secret_length(what, n, err, err_size);
  if (rc != 0)
    return rc;
  cfg->secret_bytes = n;
  return 0;
}

/* A password from a file: its bytes, the trailing newline dropped. An
 * empty file is refused: it is far likelier a mistake than a wish for no
 * password, which is what leaving the setting out says. */
static int read_password_file(struct srv_password *pw, const char *name,
                              const char *path, char *err, size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return errf(err, err_size, "%s: cannot read %s: %s", name, path,
                strerror(errno));
  size_t n = fread(pw->bytes, 1, sizeof pw->bytes, f);
  int extra = fgetc(f);
  fclose(f);
  if (extra != EOF)
    return errf(err, err_size, "%s: %s is longer than %u bytes", name, path,
                SRV_PASSWORD_BYTES_MAX);
  while (n > 0 && (pw->bytes[n - 1] == '\n' || pw->bytes[n - 1] == '\r'))
    n--;
  if (n == 0)
    return errf(err, err_size, "%s: %s is empty", name, path);
  pw->n = n;
  return 0;
}

/* ---- the settings table ------------------------------------------------- */

enum kind {
  K_U32,
  K_U16,
  K_U64,
  K_STR,
  K_BOOL,
  K_PEERS,
  K_PEER_CLIENTS,
  K_PRIORITIES,
  K_SECRET,
  K_SECRET_FILE,
  K_REDIRECT,
  K_PASSWORD,      /* struct srv_password at offset; "" is none */
  K_PASSWORD_FILE, /* the same, read from a file */
  K_BYTES,         /* uint64_t: a size, 64mb and the like */
  K_OUTPUT_LIMIT,  /* client-output-buffer-limit's three values */
  K_TLS_AUTH,      /* tls-auth-clients: no, yes or optional */
  K_TIMING,        /* timing: fixed or adaptive */
  K_FSYNC,         /* fsync: auto, loop or thread */
};

struct setting {
  const char *name; /* with '-' */
  enum kind kind;
  size_t offset;
  size_t size; /* of a string field */
  uint64_t max;
  bool is_flag; /* a bool that takes no value on the command line */
};

#define OFF(f) offsetof(struct srv_config, f)
#define SZ(f) sizeof(((struct srv_config *)0)->f)

static const struct setting SETTINGS[] = {
    {"id", K_U32, OFF(id), 0, SABHA_NODES_MAX, false},
    {"peers", K_PEERS, 0, 0, 0, false},
    {"peer-clients", K_PEER_CLIENTS, 0, 0, 0, false},
    {"bind", K_STR, OFF(bind), SZ(bind), 0, false},
    {"peer-bind", K_STR, OFF(peer_bind), SZ(peer_bind), 0, false},
    {"client-bind", K_STR, OFF(client_bind), SZ(client_bind), 0, false},
    {"http-bind", K_STR, OFF(http_bind), SZ(http_bind), 0, false},
    {"client-port", K_U16, OFF(client_port), 0, 65535, false},
    {"http-port", K_U16, OFF(http_port), 0, 65535, false},
    {"data", K_STR, OFF(data_dir), SZ(data_dir), 0, false},
    {"protocol", K_STR, OFF(protocol), SZ(protocol), 0, false},
    {"cluster-id", K_STR, OFF(cluster_id), SZ(cluster_id), 0, false},
    {"secret", K_SECRET, 0, 0, 0, false},
    {"secret-file", K_SECRET_FILE, 0, 0, 0, false},
    {"redirect", K_REDIRECT, 0, 0, 0, false},
    {"requirepass", K_PASSWORD, OFF(requirepass), 0, 0, false},
    {"requirepass-file", K_PASSWORD_FILE, OFF(requirepass), 0, 0, false},
    {"admin-pass", K_PASSWORD, OFF(admin_pass), 0, 0, false},
    {"admin-pass-file", K_PASSWORD_FILE, OFF(admin_pass), 0, 0, false},
    {"protected-mode", K_BOOL, OFF(protected_mode), 0, 0, false},
    {"tls", K_BOOL, OFF(tls), 0, 0, true},
    {"tls-cert-file", K_STR, OFF(tls_cert_file), SZ(tls_cert_file), 0, false},
    {"tls-key-file", K_STR, OFF(tls_key_file), SZ(tls_key_file), 0, false},
    {"tls-ca-cert-file", K_STR, OFF(tls_ca_cert_file), SZ(tls_ca_cert_file), 0,
     false},
    {"tls-auth-clients", K_TLS_AUTH, 0, 0, 0, false},
    {"tls-handshakes-per-second", K_U32, OFF(tls_handshakes_per_second), 0,
     RATE_PER_SECOND_MAX, false},
    {"compact-entries", K_U64, OFF(compact_entries), 0, UINT64_MAX / 2, false},
    {"compact-bytes", K_U64, OFF(compact_bytes), 0, UINT64_MAX / 2, false},
    {"compact-growth", K_U32, OFF(compact_growth_pct), 0, 10000, false},
    /* A node's timeouts are in [N, 2N], and 2N must be one the engines
     * take (SABHA_TIMING_MS_MAX). */
    {"election-timeout-ms", K_U32, OFF(election_timeout_ms), 0,
     SABHA_TIMING_MS_MAX / 2, false},
    {"heartbeat-ms", K_U32, OFF(heartbeat_ms), 0, 60000, false},
    {"timing", K_TIMING, 0, 0, 0, false},
    {"adaptive-timing", K_BOOL, OFF(adaptive_timing), 0, 0, true},
    {"fsync", K_FSYNC, 0, 0, 0, false},
    {"election-timeout-floor-ms", K_U32, OFF(election_timeout_floor_ms), 0,
     600000, false},
    {"election-timeout-ceiling-ms", K_U32, OFF(election_timeout_ceiling_ms), 0,
     600000, false},
    {"tick-ms", K_U32, OFF(tick_ms), 0, 1000, false},
    {"leader-wait-ms", K_U32, OFF(leader_wait_ms), 0, 3600000, false},
    {"request-timeout-ms", K_U32, OFF(request_timeout_ms), 0, 3600000, false},
    {"clients-max", K_U32, OFF(clients_max), 0, 100000, false},
    {"timeout", K_U32, OFF(timeout_s), 0, 86400u * 365u, false},
    {"client-output-buffer-limit", K_OUTPUT_LIMIT, 0, 0, 0, false},
    {"client-query-buffer-limit", K_BYTES, OFF(query_bytes_max), 0, 1ull << 40,
     false},
    {"maxmemory-clients", K_BYTES, OFF(clients_memory_max), 0, 1ull << 50,
     false},
    {"wal-segment-bytes", K_U32, OFF(wal_segment_bytes), 0, 1u << 30, false},
    {"slot-commands-max", K_U32, OFF(slot_commands_max), 0, 4096, false},
    {"priority", K_U32, OFF(priority), 0, SRV_PRIORITY_MAX, false},
    {"priorities", K_PRIORITIES, 0, 0, 0, false},
    {"groups", K_U32, OFF(groups), 0, SRV_GROUPS_MAX, false},
    {"dedup-max", K_U32, OFF(dedup_max), 0, APP_DEDUP_LIMIT, false},
    {"dedup-window-ms", K_U32, OFF(dedup_window_ms), 0,
     APP_DEDUP_WINDOW_MS_LIMIT, false},
    {"discard-corrupt-log", K_BOOL, OFF(discard_corrupt_log), 0, 0, true},
    {"refuse-corrupt-log", K_BOOL, OFF(refuse_corrupt_log), 0, 0, true},
    {"verbose", K_BOOL, OFF(verbose), 0, 0, true},
    {"join", K_BOOL, OFF(join), 0, 0, true},
};
#define N_SETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

/* dedup-max and dedup-window-ms decide replies, and the groups where keys
 * live: members must agree on all three. Each has bits of its own, and the
 * defaults of the two added later (one group, the default window) put
 * zeros in theirs, so older nodes' digests equal those of newer ones with
 * the same settings. */
uint64_t srv_settings_digest(const struct srv_config *cfg) {
  _Static_assert(APP_DEDUP_LIMIT < 1ull << 32 && SRV_GROUPS_MAX <= 64 &&
                     APP_DEDUP_WINDOW_MS_LIMIT < 1ull << 26,
                 "the settings digest's fields overlap");
  assert(cfg->groups >= 1 && cfg->groups <= SRV_GROUPS_MAX);
  assert(cfg->dedup_window_ms <= APP_DEDUP_WINDOW_MS_LIMIT);
  uint64_t window = cfg->dedup_window_ms ^ APP_DEDUP_WINDOW_MS_DEFAULT;
  return cfg->dedup_max | (uint64_t)(cfg->groups - 1) << 32 | window << 38;
}

/* Names compare with '-' and '_' alike. */
static bool name_equal(const char *a, const char *b, size_t b_len) {
  size_t i = 0;
  for (; a[i] != '\0' && i < b_len; i++) {
    char x = a[i] == '_' ? '-' : a[i];
    char y = b[i] == '_' ? '-' : b[i];
    if (x != y)
      return false;
  }
  return a[i] == '\0' && i == b_len;
}

static const struct setting *find_setting(const char *name, size_t len) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (name_equal(SETTINGS[i].name, name, len))
      return &SETTINGS[i];
  return NULL;
}

static int apply_setting(struct srv_config *cfg, const struct setting *s,
                         const char *value, char *err, size_t err_size) {
  char *base = (char *)cfg;
  uint64_t v;
  switch (s->kind) {
  case K_U32:
  case K_U16:
  case K_U64:
    if (!dec_parse_flag(value, 0, s->max, &v))
      return errf(err, err_size, "%s: '%s' is not a number in 0..%" PRIu64,
                  s->name, value, s->max);
    if (s->kind == K_U32)
      *(uint32_t *)(base + s->offset) = (uint32_t)v;
    else if (s->kind == K_U16)
      *(uint16_t *)(base + s->offset) = (uint16_t)v;
    else
      *(uint64_t *)(base + s->offset) = v;
    return 0;
  case K_STR:
    if (strlen(value) >= s->size || value[0] == '\0')
      return errf(err, err_size, "%s: empty or longer than %zu bytes", s->name,
                  s->size - 1);
    snprintf(base + s->offset, s->size, "%s", value);
    return 0;
  case K_BOOL:
    if (!parse_bool(value, (bool *)(base + s->offset)))
      return errf(err, err_size, "%s: '%s' is not a boolean", s->name, value);
    return 0;
  case K_PEERS:
    if (!parse_addr_list(value, cfg->peers, &cfg->n_peers))
      return errf(err, err_size,
                  "peers: '%s' is not a list of id=host:port (ids 1..%u, "
                  "each once)",
                  value, SABHA_NODES_MAX);
    return 0;
  case K_PEER_CLIENTS:
    if (!parse_addr_list(value, cfg->peer_clients, &cfg->n_peer_clients))
      return errf(err, err_size,
                  "peer-clients: '%s' is not a list of id=host:port", value);
    return 0;
  case K_PRIORITIES:
    if (!parse_priorities(value, cfg->priorities))
      return errf(err, err_size,
                  "priorities: '%s' is not a list of id=priority (ids "
                  "1..%u, each once; priorities 0..%u)",
                  value, SABHA_NODES_MAX, SRV_PRIORITY_MAX);
    return 0;
  case K_SECRET: {
    size_t n = strlen(value);
    if (n > SRV_SECRET_BYTES_MAX)
      return errf(err, err_size, "secret: longer than %u bytes",
                  SRV_SECRET_BYTES_MAX);
    int rc = check_secret_length("secret", n, err, err_size);
    if (rc != 0)
      return rc;
    memcpy(cfg->secret, value, n);
    cfg->secret_bytes = n;
    return 0;
  }
  case K_SECRET_FILE:
    return read_secret_file(cfg, value, err, err_size);
  case K_PASSWORD: {
    struct srv_password *pw = (struct srv_password *)(base + s->offset);
    size_t n = strlen(value);
    if (n > SRV_PASSWORD_BYTES_MAX)
      return errf(err, err_size, "%s: longer than %u bytes", s->name,
                  SRV_PASSWORD_BYTES_MAX);
    memcpy(pw->bytes, value, n);
    pw->n = n;
    return 0;
  }
  case K_PASSWORD_FILE:
    return read_password_file((struct srv_password *)(base + s->offset),
                              s->name, value, err, err_size);
  case K_BYTES:
    if (!parse_bytes(value, &v) || v > s->max)
      return errf(err, err_size,
                  "%s: '%s' is not a size up to %" PRIu64
                  " bytes (digits, then b, k, kb, m, mb, g or gb)",
                  s->name, value, s->max);
    *(uint64_t *)(base + s->offset) = v;
    return 0;
  case K_OUTPUT_LIMIT:
    if (!parse_output_limit(cfg, value))
      return errf(err, err_size,
                  "client-output-buffer-limit: '%s' is not [normal] HARD "
                  "SOFT SECONDS (sizes like 64mb; 0 turns one off)",
                  value);
    return 0;
  case K_TLS_AUTH:
    if (strcmp(value, "no") == 0)
      cfg->tls_auth_clients = SRV_TLS_AUTH_NO;
    else if (strcmp(value, "yes") == 0)
      cfg->tls_auth_clients = SRV_TLS_AUTH_YES;
    else if (strcmp(value, "optional") == 0)
      cfg->tls_auth_clients = SRV_TLS_AUTH_OPTIONAL;
    else
      return errf(err, err_size,
                  "tls-auth-clients: '%s' is not no, yes or optional", value);
    return 0;
  case K_TIMING:
    if (strcmp(value, "fixed") != 0 && strcmp(value, "adaptive") != 0)
      return errf(err, err_size, "timing: '%s' is not fixed or adaptive",
                  value);
    cfg->adaptive_timing = strcmp(value, "adaptive") == 0;
    return 0;
  case K_FSYNC: {
    enum rt_fsync_mode mode;
    if (!rt_fsync_mode_parse(value, &mode))
      return errf(err, err_size, "fsync: '%s' is not auto, loop or thread",
                  value);
    cfg->fsync = (uint8_t)mode;
    return 0;
  }
  case K_REDIRECT:
    if (strcmp(value, "forward") == 0)
      cfg->redirect = SRV_REDIRECT_FORWARD;
    else if (strcmp(value, "moved") == 0)
      cfg->redirect = SRV_REDIRECT_MOVED;
    else
      return errf(err, err_size, "redirect: '%s' is not forward or moved",
                  value);
    return 0;
  }
  return errf(err, err_size, "%s: unhandled setting", s->name);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

int srv_config_load_file(struct srv_config *cfg, const char *path, char *err,
                         size_t err_size) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return errf(err, err_size, "cannot read config file %s: %s", path,
                strerror(errno));
  char line[LINE_BYTES_MAX];
  unsigned lineno = 0;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
    lineno++;
    if (strchr(line, '\n') == NULL && !feof(f)) {
      rc = errf(err, err_size, "%s:%u: line too long", path, lineno);
      break;
    }
    char *hash = strchr(line, '#');
    if (hash != NULL)
      *hash = '\0';
    char *s = trim(line);
    if (*s == '\0')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      rc = errf(err, err_size, "%s:%u: expected `name = value`", path, lineno);
      break;
    }
    *eq = '\0';
    char *name = trim(s);
    char *value = trim(eq + 1);
    const struct setting *st = find_setting(name, strlen(name));
    if (st == NULL || strcmp(name, "config") == 0) {
      rc = errf(err, err_size, "%s:%u: unknown setting '%s'", path, lineno,
                name);
      break;
    }
    char sub[256];
    rc = apply_setting(cfg, st, value, sub, sizeof sub);
    if (rc != 0)
      errf(err, err_size, "%s:%u: %s", path, lineno, sub);
  }
  fclose(f);
  return rc;
}

static int check_complete(struct srv_config *cfg, char *err, size_t err_size) {
  if (cfg->id == 0)
    return errf(err, err_size, "--id is required (1..%u)", SABHA_NODES_MAX);
  if (cfg->n_peers == 0)
    return errf(err, err_size, "--peers is required");
  bool found = false;
  for (uint32_t i = 0; i < cfg->n_peers; i++)
    found = found || cfg->peers[i].id == cfg->id;
  if (!found)
    return errf(err, err_size, "--id %u is not among --peers", cfg->id);
  bool known = false;
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    known = known || strcmp(*p, cfg->protocol) == 0;
  if (!known)
    return errf(err, err_size, "--protocol %s: unknown (raft, multipaxos)",
                cfg->protocol);
  /* The async baseline loses acknowledged writes by design and rolls a
   * node's applied state back, which the node runtime does not do: it is
   * the lab's foil, not a service. */
  if (strcmp(cfg->protocol, "async") == 0)
    return errf(err, err_size,
                "--protocol async is the lab's baseline (it loses "
                "acknowledged writes on failover); sabhad runs raft or "
                "multipaxos");
  if (cfg->client_port == 0 || cfg->http_port == 0)
    return errf(err, err_size, "--client-port and --http-port must be set");
  if (cfg->tick_ms == 0 || cfg->heartbeat_ms == 0 ||
      cfg->election_timeout_ms <= cfg->heartbeat_ms)
    return errf(err, err_size,
                "timing: need tick-ms > 0 and election-timeout-ms > "
                "heartbeat-ms > 0");
  if (cfg->election_timeout_floor_ms < 10 ||
      cfg->election_timeout_ceiling_ms < cfg->election_timeout_floor_ms ||
      cfg->election_timeout_ceiling_ms > 300000)
    return errf(err, err_size,
                "adaptive timing: need 10 <= election-timeout-floor-ms <= "
                "election-timeout-ceiling-ms <= 300000");
  if (cfg->slot_commands_max == 0)
    return errf(err, err_size, "--slot-commands-max must be at least 1");
  if (cfg->clients_max == 0)
    return errf(err, err_size, "--clients-max must be at least 1");
  if (cfg->query_bytes_max < SRV_QUERY_BYTES_MIN)
    return errf(err, err_size,
                "--client-query-buffer-limit must be at least %u bytes "
                "(17mb): one command may be 16 MiB",
                SRV_QUERY_BYTES_MIN);
  if (cfg->dedup_max == 0)
    return errf(err, err_size, "--dedup-max must be at least 1");
  /* This node's priority is --priority, or its entry in --priorities; both
   * given must agree, or the others would judge it by another value. */
  cfg->priorities_given = cfg->priority != SRV_PRIORITY_UNSET;
  for (uint32_t i = 1; i <= SABHA_NODES_MAX; i++)
    cfg->priorities_given |= cfg->priorities[i] != SRV_PRIORITY_UNSET;
  if (cfg->groups < 1 || cfg->groups > SRV_GROUPS_MAX)
    return errf(err, err_size, "--groups must be 1..%u", SRV_GROUPS_MAX);
  if (cfg->priority == SRV_PRIORITY_UNSET)
    cfg->priority = cfg->priorities[cfg->id] != SRV_PRIORITY_UNSET
                        ? cfg->priorities[cfg->id]
                        : SRV_PRIORITY_DEFAULT;
  else if (cfg->priorities[cfg->id] != SRV_PRIORITY_UNSET &&
           cfg->priorities[cfg->id] != cfg->priority)
    return errf(err, err_size,
                "--priority %u disagrees with --priorities, which gives node "
                "%u priority %u",
                cfg->priority, cfg->id, cfg->priorities[cfg->id]);
  cfg->priorities[cfg->id] = cfg->priority;
  if (cfg->tls &&
      (cfg->tls_cert_file[0] == '\0' || cfg->tls_key_file[0] == '\0' ||
       cfg->tls_ca_cert_file[0] == '\0'))
    return errf(err, err_size,
                "--tls needs tls-cert-file, tls-key-file and "
                "tls-ca-cert-file");
  char *const binds[] = {cfg->peer_bind, cfg->client_bind, cfg->http_bind};
  for (size_t i = 0; i < sizeof binds / sizeof binds[0]; i++)
    if (binds[i][0] == '\0')
      snprintf(binds[i], SRV_HOST_BYTES_MAX, "%s", cfg->bind);
  /* Without a secret or mutual TLS, anyone who reaches the peer port is a
   * member: one forged HELLO and heartbeat can take the cluster's term for
   * ever. That is tolerable only where nobody else can reach it. */
  if (cfg->secret_bytes == 0 && !cfg->tls &&
      !srv_addr_is_loopback(cfg->peer_bind))
    return errf(err, err_size,
                "the peer address %s is not loopback, and neither a cluster "
                "secret nor TLS is set: peers off this machine must "
                "authenticate. Set secret-file (16 bytes or more, mode 0600; "
                "the same on every member), or tls = yes with certificates "
                "of one CA (mutual TLS), or both",
                cfg->peer_bind);
  if (cfg->data_dir[0] == '\0')
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "sabha-data-%u", cfg->id);
  return 0;
}

bool srv_addr_is_loopback(const char *host) {
  struct in_addr v4;
  struct in6_addr v6;
  if (inet_pton(AF_INET, host, &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127; /* 127.0.0.0/8 */
  if (inet_pton(AF_INET6, host, &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6) ||
           (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  return false; /* a name, or not an address: not known to be loopback */
}

int srv_config_parse_args(struct srv_config *cfg, int argc, char **argv,
                          FILE *out, char *err, size_t err_size) {
  /* --help and --config first. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      srv_usage(out);
      return 1;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *path = NULL;
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc)
        return errf(err, err_size, "--config needs a file");
      path = argv[i + 1];
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      path = argv[i] + 9;
    }
    if (path != NULL) {
      int rc = srv_config_load_file(cfg, path, err, err_size);
      if (rc != 0)
        return rc;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0)
      return errf(err, err_size, "unexpected argument '%s'", arg);
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (name_equal("config", name, name_len)) {
      if (eq == NULL)
        i++;
      continue;
    }
    const struct setting *s = find_setting(name, name_len);
    if (s == NULL)
      return errf(err, err_size, "unknown option '%s' (sabhad --help)", arg);
    /* Every user of the machine can read a command line (ps, /proc). */
    if (s->kind == K_SECRET)
      return errf(err, err_size,
                  "--secret on the command line is visible to every user "
                  "of this machine (ps); put the secret in a file only you "
                  "can read (chmod 600) and pass --secret-file FILE");
    const char *value;
    if (eq != NULL) {
      value = eq + 1;
    } else if (s->is_flag) {
      value = "true";
    } else {
      if (i + 1 >= argc)
        return errf(err, err_size, "%s needs a value", arg);
      value = argv[++i];
    }
    int rc = apply_setting(cfg, s, value, err, err_size);
    if (rc != 0)
      return rc;
  }
  return check_complete(cfg, err, err_size);
}
