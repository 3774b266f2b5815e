/* `sabha cluster`: a local cluster of sabhad processes in one command.
 *
 *   sabha cluster start --nodes 3 --protocol raft --dir DIR --base-port P
 *   sabha cluster status|stop --dir DIR
 *   sabha cluster kill|restart NODE --dir DIR      NODE: an id or `leader`
 *   sabha cluster add [--learner] --dir DIR        a new node joins
 *   sabha cluster remove NODE --dir DIR            a member leaves
 *
 * `start` writes DIR/cluster.conf (what the cluster is), the cluster secret
 * (DIR/secret, mode 0600: 32 random bytes as hex, or the --secret given)
 * and one sabhad config per node (DIR/nodeN.conf, which names the secret
 * file: a secret on a command line would be visible in ps); with --tls also
 * a CA and certificates for every node and for clients (below), then
 * starts one sabhad per node in the background, in a session of its own,
 * with its log in DIR/nodeN.log, its data in DIR/nodeN/ and its pid in
 * DIR/nodeN.pid. Every port is at P or above:
 *
 *     client (RESP)  P + N - 1        http  P + 100 + N - 1
 *     peer           P + 200 + N - 1
 *
 * The other commands act only on processes this tool started, found by
 * their pid files and checked against /proc (the command line must name
 * this node's config file), so a recycled pid is never signalled. `status`
 * prints one line per node that scripts can read:
 *
 *     node=1 role=leader term=3 client=127.0.0.1:17000 http=127.0.0.1:17100
 * pid=1234
 *
 * with role=down (term=0 pid=0) for a node that is not running; role and
 * term come from the node's /status.
 *
 * --tls: every port of every node speaks only TLS. `start` makes a CA
 * (DIR/ca.crt, its key DIR/ca.key), a certificate per node (DIR/nodeN.crt,
 * common name sabha-node-N, with subjectAltName IP:127.0.0.1 and
 * DNS:localhost) and one for clients (DIR/client.crt, for tls-auth-clients
 * yes; fit for a client only, so that it cannot answer for a node), keys
 * mode 0600, all with src/net/tls.c; this tool then reads the
 * nodes' /status over TLS too.
 *
 * `add` starts node N+1 (DIR/nodeN.conf as the others', with `join = yes`:
 * it knows nobody's membership until a leader's log names it; with --tls a
 * certificate from the cluster's CA) and asks the
 * leader, over RESP, to add it as a learner (SABHA.MEMBER ADD id
 * "peer=HOST:PORT,client=HOST:PORT": the entry carries its addresses, so
 * every member, and every node that restarts later, can reach it), then,
 * unless --learner, to promote it once it has caught up. `remove` asks the
 * leader to remove a member (the leader too: it hands over once the change
 * commits), waits until the membership without it is committed, lets the
 * node say it was removed, then stops it; cluster.conf remembers removed
 * ids (`removed = ...`), which status shows as role=removed and start
 * leaves down. Both authenticate with DIR/requirepass, or as the admin
 * user with DIR/adminpass, when the cluster has them. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/decimal.h"
#include "net/codec.h"
#include "net/tls.h"
#include "sabha/engine.h"

#define HOST "127.0.0.1"
#define PORT_CLIENT_OFFSET 0u
#define PORT_HTTP_OFFSET 100u
#define PORT_PEER_OFFSET 200u
#define NODES_MAX 16u
#define WAIT_START_MS 15000u
#define WAIT_STOP_MS 15000u
/* sabhad's bounds on a secret (server/node.h): checked here too, so that a
 * bad --secret is refused before anything is written or started. */
#define SECRET_BYTES_MIN 16u
#define SECRET_BYTES_MAX 256u
#define SECRET_RANDOM_BYTES 32u

struct cluster {
  char dir[PATH_MAX]; /* absolute */
  uint32_t nodes;
  char protocol[32];
  uint32_t base_port;
  char cluster_id[65];
  bool tls; /* every port speaks only TLS; the certificates are in dir */
  uint32_t removed; /* a bit per id removed from the group (cluster remove) */
};

void cli_cluster_usage(FILE *f) {
  fprintf(
      f,
      "usage: sabha cluster <start|status|stop|kill|restart> [options]\n"
      "\n"
      "Runs a cluster of sabhad nodes on this machine (127.0.0.1).\n"
      "\n"
      "  sabha cluster start --dir DIR [--nodes 3] [--protocol raft]\n"
      "                      [--base-port 17000] [--secret S]\n"
      "                      [--cluster-id ID] [--requirepass P] [--tls]\n"
      "                      [--priorities 1=10,2=5,3=1] [--groups N]\n"
      "                      [--set key=value]...\n"
      "      starts the nodes in the background: logs, pid files, data\n"
      "      and configs in DIR; client ports P.., http P+100..,\n"
      "      peers P+200..; --set adds a sabhad setting for every node;\n"
      "      --priorities: leader priorities, given to every node (a\n"
      "      caught-up node of higher priority is handed leadership);\n"
      "      --groups N: every node hosts N consensus groups (1..64),\n"
      "      keys spread over them, group g's leader preferably on node\n"
      "      (g mod nodes)+1 unless --priorities says otherwise;\n"
      "      peers authenticate with DIR/secret (mode 0600): --secret S\n"
      "      (16..256 bytes), or 32 random bytes by default;\n"
      "      --requirepass: clients must AUTH (kept in DIR/requirepass,\n"
      "      mode 0600);\n"
      "      --tls: every port speaks only TLS, with a CA and certificates\n"
      "      made in DIR (ca.crt; redis-cli --tls --cacert DIR/ca.crt);\n"
      "      on an existing DIR, starts the nodes that are down\n"
      "  sabha cluster status --dir DIR\n"
      "      one line per node: node= role= term= client= http= pid=\n"
      "  sabha cluster stop --dir DIR       SIGTERM, then SIGKILL after "
      "%u s\n"
      "  sabha cluster kill NODE --dir DIR  SIGKILL one node\n"
      "  sabha cluster restart NODE --dir DIR\n"
      "      NODE is a node id or the word `leader`\n"
      "  sabha cluster add [--learner] --dir DIR\n"
      "      starts a new node that joins the group: a learner until it\n"
      "      has caught up, then a voter (unless --learner)\n"
      "  sabha cluster remove NODE --dir DIR\n"
      "      removes a member (NODE may be `leader`: it hands over first)\n"
      "      and stops it once it has left\n"
      "\n"
      "The sabhad next to this sabha binary is used (or $SABHAD).\n",
      WAIT_STOP_MS / 1000u);
}

/* ---- small helpers ------------------------------------------------------- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
  nanosleep(&ts, NULL);
}

static bool parse_u32(const char *s, uint32_t max, uint32_t *out) {
  uint64_t v;
  if (!dec_parse_flag(s, 0, max, &v))
    return false;
  *out = (uint32_t)v;
  return true;
}

/* Copies src into dst[size] if it fits. */
static bool copy_str(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size)
    return false;
  memcpy(dst, src, n + 1);
  return true;
}

/* An absolute form of `dir` (which exists), without resolving links. */
static bool absolute_dir(const char *dir, char *out, size_t size) {
  if (dir[0] == '/')
    return copy_str(out, size, dir);
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == NULL)
    return false;
  size_t a = strlen(cwd), b = strlen(dir);
  if (a + 1 + b >= size)
    return false;
  memcpy(out, cwd, a);
  out[a] = '/';
  memcpy(out + a + 1, dir, b + 1);
  /* Drop a trailing slash, and a leading "./". */
  size_t n = strlen(out);
  while (n > 1 && out[n - 1] == '/')
    out[--n] = '\0';
  if (strncmp(out + a, "/./", 3) == 0)
    memmove(out + a, out + a + 2, strlen(out + a + 2) + 1);
  return true;
}

static void node_path(const struct cluster *c, uint32_t id, const char *suffix,
                      char *out, size_t size) {
  snprintf(out, size, "%s/node%u%s", c->dir, id, suffix);
}

static uint32_t port_of(const struct cluster *c, uint32_t id, uint32_t offset) {
  return c->base_port + offset + id - 1;
}

/* ---- cluster.conf ----------------------------------------------------------
 */

static int write_file(const char *path, const char *text, mode_t mode) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0)
    return -1;
  size_t len = strlen(text);
  /* An old temporary file keeps its mode through O_CREAT: set it, before a
   * byte of a secret goes in. */
  int rc = fchmod(fd, mode);
  ssize_t w = rc == 0 ? write(fd, text, len) : -1;
  rc = (w == (ssize_t)len && fsync(fd) == 0) ? 0 : -1;
  close(fd);
  if (rc == 0)
    rc = rename(tmp, path);
  return rc;
}

static int load_cluster(struct cluster *c, const char *dir) {
  memset(c, 0, sizeof *c);
  if (!absolute_dir(dir, c->dir, sizeof c->dir))
    return -1;
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/cluster.conf", c->dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[PATH_MAX + 64];
  while (fgets(line, sizeof line, f) != NULL) {
    char *eq = strchr(line, '=');
    if (line[0] == '#' || eq == NULL)
      continue;
    *eq = '\0';
    char *key = line, *value = eq + 1;
    while (*key == ' ' || *key == '\t')
      key++;
    size_t kl = strlen(key);
    while (kl > 0 && (key[kl - 1] == ' ' || key[kl - 1] == '\t'))
      key[--kl] = '\0';
    while (*value == ' ' || *value == '\t')
      value++;
    size_t vl = strlen(value);
    while (vl > 0 && (value[vl - 1] == '\n' || value[vl - 1] == '\r' ||
                      value[vl - 1] == ' '))
      value[--vl] = '\0';
    if (strcmp(key, "nodes") == 0)
      parse_u32(value, NODES_MAX, &c->nodes);
    else if (strcmp(key, "protocol") == 0)
      copy_str(c->protocol, sizeof c->protocol, value);
    else if (strcmp(key, "base_port") == 0)
      parse_u32(value, 65535, &c->base_port);
    else if (strcmp(key, "cluster_id") == 0)
      copy_str(c->cluster_id, sizeof c->cluster_id, value);
    else if (strcmp(key, "tls") == 0)
      c->tls = strcmp(value, "yes") == 0;
    else if (strcmp(key, "removed") == 0)
      for (char *tok = strtok(value, ","); tok != NULL;
           tok = strtok(NULL, ",")) {
        uint32_t id;
        if (parse_u32(tok, NODES_MAX, &id) && id > 0)
          c->removed |= 1u << id;
      }
    else if (strcmp(key, "dir") == 0 && value[0] == '/')
      copy_str(c->dir, sizeof c->dir, value); /* as the nodes know it */
  }
  fclose(f);
  if (c->nodes == 0 || c->base_port == 0 || c->protocol[0] == '\0')
    return -1;
  return 0;
}

int cli_cluster_clients(const char *dir, uint32_t *ports, uint32_t cap,
                        uint32_t *n, bool *tls) {
  struct cluster c;
  if (load_cluster(&c, dir) != 0)
    return -1;
  *n = c.nodes < cap ? c.nodes : cap;
  for (uint32_t i = 0; i < *n; i++)
    ports[i] = port_of(&c, i + 1, PORT_CLIENT_OFFSET);
  *tls = c.tls;
  return 0;
}

/* Writes DIR/secret (mode 0600): `secret`, or 32 random bytes as hex. The
 * nodes read it with secret-file, so it never appears on a command line. */
static int write_secret(const struct cluster *c, const char *secret, char *path,
                        size_t path_size) {
  char text[SECRET_BYTES_MAX + 2];
  if (secret != NULL) {
    snprintf(text, sizeof text, "%s\n", secret);
  } else {
    uint8_t bytes[SECRET_RANDOM_BYTES];
    randombytes_buf(bytes, sizeof bytes);
    sodium_bin2hex(text, sizeof text, bytes, sizeof bytes);
    sodium_memzero(bytes, sizeof bytes);
    strcat(text, "\n");
  }
  snprintf(path, path_size, "%s/secret", c->dir);
  int rc = write_file(path, text, 0600);
  sodium_memzero(text, sizeof text);
  return rc;
}

/* DIR/cluster.conf: what the cluster is (load_cluster reads it back). */
static int save_cluster(const struct cluster *c) {
  char text[16384];
  size_t len = 0;
  len += (size_t)snprintf(text + len, sizeof text - len,
                          "# A local sabha cluster, written by `sabha cluster "
                          "start`.\nnodes = %u\nprotocol = %s\nbase_port = "
                          "%u\ncluster_id = %s\ndir = %s\ntls = %s\n",
                          c->nodes, c->protocol, c->base_port, c->cluster_id,
                          c->dir, c->tls ? "yes" : "no");
  if (c->removed != 0) {
    len += (size_t)snprintf(text + len, sizeof text - len, "removed = ");
    for (uint32_t i = 1, k = 0; i <= NODES_MAX; i++)
      if (c->removed & (1u << i))
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%u",
                                k++ > 0 ? "," : "", i);
    len += (size_t)snprintf(text + len, sizeof text - len, "\n");
  }
  for (uint32_t i = 1; i <= c->nodes; i++)
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "# node %u: client %s:%u http %s:%u peer %s:%u\n",
                            i, HOST, port_of(c, i, PORT_CLIENT_OFFSET), HOST,
                            port_of(c, i, PORT_HTTP_OFFSET), HOST,
                            port_of(c, i, PORT_PEER_OFFSET));
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/cluster.conf", c->dir);
  return write_file(path, text, 0644);
}

/* The `peers` and `peer-clients` settings: every id up to `upto` that was
 * not removed, with its peer and client address. */
static void member_lists(const struct cluster *c, uint32_t upto, char *peers,
                         size_t peers_size, char *clients,
                         size_t clients_size) {
  size_t pl = 0, cl = 0;
  peers[0] = clients[0] = '\0';
  for (uint32_t i = 1; i <= upto; i++) {
    if (c->removed & (1u << i))
      continue;
    pl += (size_t)snprintf(peers + pl, peers_size - pl, "%s%u=%s:%u",
                           pl > 0 ? "," : "", i, HOST,
                           port_of(c, i, PORT_PEER_OFFSET));
    cl += (size_t)snprintf(clients + cl, clients_size - cl, "%s%u=%s:%u",
                           cl > 0 ? "," : "", i, HOST,
                           port_of(c, i, PORT_CLIENT_OFFSET));
  }
}

static int write_configs(const struct cluster *c, const char *secret,
                         char **sets, int n_sets) {
  char secret_path[PATH_MAX + 16];
  if (write_secret(c, secret, secret_path, sizeof secret_path) != 0)
    return -1;
  if (save_cluster(c) != 0)
    return -1;
  char text[16384];
  size_t len = 0;

  char peers[1024], clients[1024];
  member_lists(c, c->nodes, peers, sizeof peers, clients, sizeof clients);
  for (uint32_t i = 1; i <= c->nodes; i++) {
    char data[PATH_MAX + 16];
    node_path(c, i, "", data, sizeof data);
    len = (size_t)snprintf(
        text, sizeof text,
        "# sabhad settings of node %u (sabhad --help, docs/operations.md)\n"
        "id = %u\npeers = %s\npeer-clients = %s\nbind = %s\n"
        "client-port = %u\nhttp-port = %u\ndata = %s\nprotocol = %s\n"
        "cluster-id = %s\nsecret-file = %s\n",
        i, i, peers, clients, HOST, port_of(c, i, PORT_CLIENT_OFFSET),
        port_of(c, i, PORT_HTTP_OFFSET), data, c->protocol, c->cluster_id,
        secret_path);
    if (c->tls)
      len += (size_t)snprintf(text + len, sizeof text - len,
                              "tls = yes\ntls-cert-file = %s/node%u.crt\n"
                              "tls-key-file = %s/node%u.key\n"
                              "tls-ca-cert-file = %s/ca.crt\n",
                              c->dir, i, c->dir, i, c->dir);
    for (int k = 0; k < n_sets; k++) {
      const char *eq = strchr(sets[k], '=');
      len += (size_t)snprintf(text + len, sizeof text - len, "%.*s = %s\n",
                              (int)(eq - sets[k]), sets[k], eq + 1);
    }
    if (len >= sizeof text)
      return -1;
    char conf[PATH_MAX + 16];
    node_path(c, i, ".conf", conf, sizeof conf);
    if (write_file(conf, text, 0600) != 0)
      return -1;
  }
  return 0;
}

/* DIR/ca.crt and DIR/ca.key, then a certificate and key per node
 * (DIR/nodeN.crt, named as sabhad's peers expect: tls_node_cn) and one for
 * clients (DIR/client.crt). Returns 0, or -1 with a message on stderr. */
/* Node i's certificate and key, signed by DIR's CA (i = 0: the clients').
 * Returns 0, or -1 with a message on stderr. */
static int write_node_certificate(const struct cluster *c, uint32_t i) {
  char ca_crt[PATH_MAX + 16], ca_key[PATH_MAX + 16], crt[PATH_MAX + 32],
      key[PATH_MAX + 32], cn[96], err[1400];
  snprintf(ca_crt, sizeof ca_crt, "%s/ca.crt", c->dir);
  snprintf(ca_key, sizeof ca_key, "%s/ca.key", c->dir);
  if (i == 0) {
    snprintf(cn, sizeof cn, "sabha-client");
    snprintf(crt, sizeof crt, "%s/client.crt", c->dir);
    snprintf(key, sizeof key, "%s/client.key", c->dir);
  } else {
    tls_node_cn(i, cn);
    node_path(c, i, ".crt", crt, sizeof crt);
    node_path(c, i, ".key", key, sizeof key);
  }
  if (tls_make_cert(ca_crt, ca_key, cn,
                    i == 0 ? TLS_CERT_CLIENT : TLS_CERT_NODE, crt, key, err,
                    sizeof err) == 0)
    return 0;
  fprintf(stderr, "sabha cluster: %s\n", err);
  return -1;
}

static int write_certificates(const struct cluster *c) {
  char ca_crt[PATH_MAX + 16], ca_key[PATH_MAX + 16], cn[96], err[1400];
  snprintf(ca_crt, sizeof ca_crt, "%s/ca.crt", c->dir);
  snprintf(ca_key, sizeof ca_key, "%s/ca.key", c->dir);
  snprintf(cn, sizeof cn, "sabha CA of %s", c->cluster_id);
  if (tls_make_ca(ca_crt, ca_key, cn, err, sizeof err) != 0) {
    fprintf(stderr, "sabha cluster: %s\n", err);
    return -1;
  }
  for (uint32_t i = 0; i <= c->nodes; i++)
    if (write_node_certificate(c, i) != 0)
      return -1;
  return 0;
}

/* DIR/requirepass: the clients' password, readable by this user only,
 * named by every node's requirepass-file. */
static int write_requirepass(const struct cluster *c, const char *password) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/requirepass", c->dir);
  char text[1024];
  if ((size_t)snprintf(text, sizeof text, "%s\n", password) >= sizeof text) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return write_file(path, text, 0600);
}

/* ---- processes -------------------------------------------------------------
 */

static pid_t read_pid(const struct cluster *c, uint32_t id) {
  char path[PATH_MAX + 16];
  node_path(c, id, ".pid", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  long pid = 0;
  if (fscanf(f, "%ld", &pid) != 1)
    pid = 0;
  fclose(f);
  return pid > 0 ? (pid_t)pid : 0;
}

/* True when `pid` is a live (not zombie) sabhad running node id's config. */
static bool node_process(const struct cluster *c, uint32_t id, pid_t pid) {
  if (pid <= 0 || kill(pid, 0) != 0)
    return false;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    if (close_paren != NULL && close_paren[1] == ' ' &&
        (close_paren[2] == 'Z' || close_paren[2] == 'X'))
      return false;
  }
  snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
  f = fopen(path, "r");
  if (f == NULL)
    return false;
  char cmd[4096];
  size_t n = fread(cmd, 1, sizeof cmd - 1, f);
  fclose(f);
  cmd[n] = '\0';
  char conf[PATH_MAX + 16];
  node_path(c, id, ".conf", conf, sizeof conf);
  /* The arguments are NUL-separated: look at each. */
  for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
    if (strcmp(cmd + i, conf) == 0)
      return true;
  return false;
}

static pid_t running_pid(const struct cluster *c, uint32_t id) {
  pid_t pid = read_pid(c, id);
  return node_process(c, id, pid) ? pid : 0;
}

static void remove_pid_file(const struct cluster *c, uint32_t id) {
  char path[PATH_MAX + 16];
  node_path(c, id, ".pid", path, sizeof path);
  unlink(path);
}

static bool find_sabhad(char *out, size_t size) {
  const char *env = getenv("SABHAD");
  if (env != NULL && env[0] != '\0') {
    snprintf(out, size, "%s", env);
    return access(out, X_OK) == 0;
  }
  char self[PATH_MAX - 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return false;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash == NULL)
    return false;
  const char *suffix = strstr(slash + 1, "-asan") != NULL ? "-asan" : "";
  *slash = '\0';
  snprintf(out, size, "%s/sabhad%s", self, suffix);
  if (access(out, X_OK) == 0)
    return true;
  snprintf(out, size, "%s/sabhad", self);
  return access(out, X_OK) == 0;
}

static bool port_free(uint32_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return true;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, HOST, &a.sin_addr);
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* Starts node `id` in the background; returns its pid or -1. */
static pid_t spawn_node(const struct cluster *c, uint32_t id,
                        const char *sabhad) {
  char conf[PATH_MAX + 16], logp[PATH_MAX + 16];
  node_path(c, id, ".conf", conf, sizeof conf);
  node_path(c, id, ".log", logp, sizeof logp);
  int log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log_fd < 0)
    return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return -1;
  }
  if (pid == 0) {
    setsid(); /* out of the caller's terminal and process group */
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
      dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    for (int fd = 3; fd < 1024; fd++)
      close(fd);
    signal(SIGPIPE, SIG_DFL);
    char *args[] = {(char *)sabhad, "--config", conf, NULL};
    execv(sabhad, args);
    fprintf(stderr, "sabha cluster: cannot run %s: %s\n", sabhad,
            strerror(errno));
    _exit(127);
  }
  close(log_fd);
  char pidp[PATH_MAX + 16], text[32];
  node_path(c, id, ".pid", pidp, sizeof pidp);
  snprintf(text, sizeof text, "%ld\n", (long)pid);
  if (write_file(pidp, text, 0644) != 0)
    fprintf(stderr, "sabha cluster: cannot write %s\n", pidp);
  return pid;
}

/* ---- asking a node ---------------------------------------------------------
 */

/* Writes all `n` bytes to the non-blocking socket `fd` by the deadline. */
static bool write_all(int fd, const uint8_t *data, size_t n,
                      uint64_t deadline) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w > 0) {
      data += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR)
      return false;
    uint64_t now = now_ms();
    if (now >= deadline)
      return false;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
      return false;
  }
  return true;
}

/* Reads what arrives on `fd` before the deadline: > 0 bytes, 0 at end of
 * stream, -1 on an error or at the deadline. */
static ssize_t read_some(int fd, void *buf, size_t cap, uint64_t deadline) {
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline)
      return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)(deadline - now));
    if (r < 0 && errno == EINTR)
      continue;
    if (r != 1)
      return -1;
    ssize_t n = read(fd, buf, cap);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    return n;
  }
}

/* Sends `req` and reads the response until the node closes, into buf
 * (at most cap bytes). */
static bool exchange_plain(int fd, const char *req, char *buf, size_t cap,
                           size_t *len, uint64_t deadline) {
  if (!write_all(fd, (const uint8_t *)req, strlen(req), deadline))
    return false;
  while (*len < cap) {
    ssize_t n = read_some(fd, buf + *len, cap - *len, deadline);
    if (n < 0)
      return false;
    if (n == 0)
      break;
    *len += (size_t)n;
  }
  return true;
}

/* The same over TLS (the HTTP ports of a cluster started with --tls speak
 * only TLS): the session checks the node's certificate against DIR/ca.crt,
 * and that it names node `id` (tls_node_cn), and shows DIR/client.crt, in
 * case tls-auth-clients asks for one. The CA signs every node's
 * certificate: without the name, whoever holds any of them (another node,
 * or one that took over the port) would answer for node `id`, and be sent
 * the admin password. On a failed session, its reason goes in `why`. */
static bool exchange_tls(const struct cluster *c, uint32_t id, int fd,
                         const char *req, char *buf, size_t cap, size_t *len,
                         uint64_t deadline, char *why, size_t why_size) {
  char ca[PATH_MAX + 16], crt[PATH_MAX + 16], key[PATH_MAX + 16], err[1400];
  snprintf(ca, sizeof ca, "%s/ca.crt", c->dir);
  snprintf(crt, sizeof crt, "%s/client.crt", c->dir);
  snprintf(key, sizeof key, "%s/client.key", c->dir);
  struct tls_ctx_config cfg = {
      .ca_file = ca, .cert_file = crt, .key_file = key};
  struct tls_ctx *ctx = NULL;
  if (tls_ctx_new(&ctx, &cfg, err, sizeof err) != 0)
    return false;
  struct tls_conn *s = tls_conn_new(ctx, TLS_ROLE_CLIENT, TLS_VERIFY_NONE);
  tls_ctx_free(ctx); /* the session keeps what it needs */
  if (s != NULL) {
    char cn[TLS_NODE_CN_BYTES_MAX];
    tls_node_cn(id, cn);
    tls_conn_expect_cn(s, cn);
  }
  struct codec_buf out;
  codec_buf_init(&out);
  bool ok = s != NULL, sent = false;
  while (ok) {
    int st = tls_conn_handshake(s);
    if (st == TLS_FAILED)
      snprintf(why, why_size, "%s", tls_conn_errmsg(s));
    if (st == TLS_OK && !sent) {
      ok = tls_conn_write(s, req, strlen(req)) == TLS_OK;
      sent = true;
    }
    size_t got;
    while (st == TLS_OK && *len < cap &&
           (st = tls_conn_read(s, buf + *len, cap - *len, &got)) == TLS_OK)
      *len += got;
    if (st == TLS_CLOSED || *len == cap)
      break;
    out.size_bytes = 0;
    ok = ok && st != TLS_FAILED && tls_conn_out_drain(s, &out) == 0 &&
         write_all(fd, out.data, out.size_bytes, deadline);
    uint8_t cipher[16384];
    ssize_t n = ok ? read_some(fd, cipher, sizeof cipher, deadline) : -1;
    if (n == 0)
      break; /* the node closes after its response */
    ok = n > 0 && tls_conn_feed(s, cipher, (size_t)n) == TLS_OK;
  }
  codec_buf_free(&out);
  tls_conn_free(s);
  return ok;
}

/* Connects to node `id` at HOST:port and sends `req`, then reads until
 * the node closes (over TLS when the cluster runs it, checking that the
 * certificate is node `id`'s) into buf (NUL-terminated, at most cap - 1
 * bytes); false on any failure within timeout_ms, with `why` set ("" when
 * there is nothing more to say than that the node did not answer). */
static bool node_exchange(const struct cluster *c, uint32_t id, uint32_t port,
                          const char *req, char *buf, size_t cap,
                          unsigned timeout_ms, char *why, size_t why_size) {
  assert(why != NULL && why_size > 0);
  why[0] = '\0';
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, HOST, &a.sin_addr);
  uint64_t deadline = now_ms() + timeout_ms;
  bool ok = false;
  size_t len = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
    goto out;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, (int)timeout_ms) != 1)
    goto out;
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
    goto out;
  ok = c->tls ? exchange_tls(c, id, fd, req, buf, cap - 1, &len, deadline, why,
                             why_size)
              : exchange_plain(fd, req, buf, cap - 1, &len, deadline);
  buf[len] = '\0';
out:
  close(fd);
  return ok;
}

/* GET path from node `id`'s HTTP port into body (NUL-terminated); false on
 * any failure within timeout_ms, with `why` as node_exchange() says. */
static bool http_get_why(const struct cluster *c, uint32_t id, const char *path,
                         char *body, size_t size, unsigned timeout_ms,
                         char *why, size_t why_size) {
  char buf[16384];
  char req[256];
  snprintf(req, sizeof req,
           "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
           HOST);
  if (!node_exchange(c, id, port_of(c, id, PORT_HTTP_OFFSET), req, buf,
                     sizeof buf, timeout_ms, why, why_size))
    return false;
  char *start = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || start == NULL)
    return false;
  snprintf(body, size, "%s", start + 4);
  return true;
}

static bool http_get(const struct cluster *c, uint32_t id, const char *path,
                     char *body, size_t size, unsigned timeout_ms) {
  char why[256];
  return http_get_why(c, id, path, body, size, timeout_ms, why, sizeof why);
}

struct node_view {
  pid_t pid; /* 0: down */
  bool answered;
  char role[24];
  uint64_t term;
  char why[256]; /* role "unverified": the TLS session's reason */
};

static void json_str(const char *json, const char *key, char *out,
                     size_t size) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(json, pat);
  out[0] = '\0';
  if (p == NULL)
    return;
  p += strlen(pat);
  size_t i = 0;
  while (p[i] != '\0' && p[i] != '"' && i + 1 < size) {
    out[i] = p[i];
    i++;
  }
  out[i] = '\0';
}

static uint64_t json_u64(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(json, pat);
  return p == NULL ? 0 : strtoull(p + strlen(pat), NULL, 10);
}

static void view_node(const struct cluster *c, uint32_t id,
                      struct node_view *v) {
  memset(v, 0, sizeof *v);
  v->pid = running_pid(c, id);
  if (v->pid == 0) {
    snprintf(v->role, sizeof v->role, "%s",
             (c->removed & (1u << id)) ? "removed" : "down");
    return;
  }
  char body[4096], why[256];
  if (http_get_why(c, id, "/status", body, sizeof body, 1000, why,
                   sizeof why)) {
    v->answered = true;
    json_str(body, "role", v->role, sizeof v->role);
    v->term = json_u64(body, "term");
  } else if (why[0] != '\0') {
    /* Whoever answered is not node `id` (or no TLS session came of it):
     * nothing it says counts as the node's. */
    snprintf(v->role, sizeof v->role, "unverified");
    snprintf(v->why, sizeof v->why, "%s", why);
  }
  if (v->role[0] == '\0')
    snprintf(v->role, sizeof v->role, "starting");
}

static void print_node(const struct cluster *c, uint32_t id,
                       const struct node_view *v) {
  printf("node=%u role=%s term=%" PRIu64 " client=%s:%u http=%s:%u pid=%ld\n",
         id, v->role, v->term, HOST, port_of(c, id, PORT_CLIENT_OFFSET), HOST,
         port_of(c, id, PORT_HTTP_OFFSET), (long)v->pid);
  if (v->why[0] != '\0')
    fprintf(stderr, "sabha cluster: node %u: %s\n", id, v->why);
}

/* The live leader with the highest term, or 0. */
static uint32_t find_leader(const struct cluster *c) {
  uint32_t best = 0;
  uint64_t best_term = 0;
  for (uint32_t i = 1; i <= c->nodes; i++) {
    struct node_view v;
    view_node(c, i, &v);
    if (strcmp(v.role, "leader") == 0 && (best == 0 || v.term > best_term)) {
      best = i;
      best_term = v.term;
    }
  }
  return best;
}

/* Waits until the node answers /status (true) or its process is gone. */
static bool wait_answering(const struct cluster *c, uint32_t id, pid_t pid,
                           uint64_t deadline) {
  while (now_ms() < deadline) {
    int status;
    /* Our own child: waitpid, not /proc, says whether it still runs
     * (until it has exec'd, its command line is still ours). */
    if (waitpid(pid, &status, WNOHANG) == pid)
      return false;
    char body[4096], why[256];
    if (http_get_why(c, id, "/status", body, sizeof body, 500, why,
                     sizeof why) &&
        node_process(c, id, pid))
      return true;
    if (why[0] != '\0') { /* it answers, but not as node `id` */
      fprintf(stderr, "sabha cluster: node %u: %s\n", id, why);
      return false;
    }
    sleep_ms(50);
  }
  return false;
}

static void show_log_tail(const struct cluster *c, uint32_t id) {
  char path[PATH_MAX + 16];
  node_path(c, id, ".log", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  char lines[5][512];
  int n = 0;
  char line[512];
  while (fgets(line, sizeof line, f) != NULL) {
    snprintf(lines[n % 5], sizeof lines[0], "%s", line);
    n++;
  }
  fclose(f);
  for (int k = n > 5 ? n - 5 : 0; k < n; k++)
    fprintf(stderr, "  %s", lines[k % 5]);
}

/* SIGTERM (or SIGKILL) a node, unless `signalled` says it had its SIGTERM
 * already, and wait for it to go. */
static bool stop_node_signalled(const struct cluster *c, uint32_t id, bool hard,
                                bool signalled) {
  pid_t pid = running_pid(c, id);
  if (pid == 0) {
    remove_pid_file(c, id);
    return true;
  }
  if (hard || !signalled)
    kill(pid, hard ? SIGKILL : SIGTERM);
  uint64_t deadline = now_ms() + (hard ? 5000u : WAIT_STOP_MS);
  while (node_process(c, id, pid) && now_ms() < deadline) {
    waitpid(pid, NULL, WNOHANG);
    sleep_ms(20);
  }
  if (node_process(c, id, pid) && !hard) {
    fprintf(stderr,
            "sabha cluster: node %u (pid %ld) ignored SIGTERM; "
            "sending SIGKILL\n",
            id, (long)pid);
    kill(pid, SIGKILL);
    deadline = now_ms() + 5000u;
    while (node_process(c, id, pid) && now_ms() < deadline)
      sleep_ms(20);
  }
  bool gone = !node_process(c, id, pid);
  if (gone)
    remove_pid_file(c, id);
  return gone;
}

static bool stop_node(const struct cluster *c, uint32_t id, bool hard) {
  return stop_node_signalled(c, id, hard, false);
}

/* ---- subcommands ------------------------------------------------------------
 */

struct opts {
  const char *dir;
  uint32_t nodes;
  const char *protocol;
  uint32_t base_port;
  const char *secret;
  const char *requirepass;
  const char *cluster_id;
  const char *priorities; /* start: every node's `priorities` setting */
  uint32_t groups;        /* start: every node's `groups`; 0: not set */
  const char *node;       /* kill/restart */
  char *sets[32];
  int n_sets;
  bool tls;
  bool learner; /* add: stay a learner */
  bool nodes_set, protocol_set, base_port_set;
};

static int parse_opts(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  o->nodes = 3;
  o->protocol = "raft";
  o->base_port = 17000;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = true;
    if (strcmp(a, "--dir") == 0 && v != NULL) {
      o->dir = v;
    } else if (strcmp(a, "--nodes") == 0 && v != NULL) {
      if (!parse_u32(v, NODES_MAX, &o->nodes) || o->nodes == 0) {
        fprintf(stderr, "sabha cluster: --nodes takes 1..%u\n", NODES_MAX);
        return CLI_EXIT_USAGE;
      }
      o->nodes_set = true;
    } else if (strcmp(a, "--protocol") == 0 && v != NULL) {
      o->protocol = v;
      o->protocol_set = true;
    } else if (strcmp(a, "--base-port") == 0 && v != NULL) {
      if (!parse_u32(v, 65535 - 300, &o->base_port) || o->base_port < 1024) {
        fprintf(stderr, "sabha cluster: --base-port takes 1024..%u\n",
                65535 - 300);
        return CLI_EXIT_USAGE;
      }
      o->base_port_set = true;
    } else if (strcmp(a, "--secret") == 0 && v != NULL) {
      o->secret = v;
    } else if (strcmp(a, "--requirepass") == 0 && v != NULL) {
      if (v[0] == '\0') {
        fprintf(stderr, "sabha cluster: --requirepass takes a password\n");
        return CLI_EXIT_USAGE;
      }
      o->requirepass = v;
    } else if (strcmp(a, "--tls") == 0) {
      o->tls = true;
      takes = false;
    } else if (strcmp(a, "--learner") == 0) {
      o->learner = true;
      takes = false;
    } else if (strcmp(a, "--cluster-id") == 0 && v != NULL) {
      o->cluster_id = v;
    } else if (strcmp(a, "--priorities") == 0 && v != NULL) {
      if (v[0] == '\0' || strspn(v, "0123456789=,") != strlen(v)) {
        fprintf(stderr, "sabha cluster: --priorities takes ID=N,... (for "
                        "example 1=10,2=5,3=1)\n");
        return CLI_EXIT_USAGE;
      }
      o->priorities = v;
    } else if (strcmp(a, "--groups") == 0 && v != NULL) {
      if (!parse_u32(v, 64, &o->groups) || o->groups == 0) {
        fprintf(stderr, "sabha cluster: --groups takes 1..64\n");
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(a, "--set") == 0 && v != NULL) {
      if (strchr(v, '=') == NULL || o->n_sets == 32) {
        fprintf(stderr, "sabha cluster: --set takes key=value\n");
        return CLI_EXIT_USAGE;
      }
      o->sets[o->n_sets++] = (char *)v;
    } else if (a[0] != '-' && o->node == NULL) {
      o->node = a;
      takes = false;
    } else {
      fprintf(stderr, "sabha cluster: unknown or incomplete option '%s'\n\n",
              a);
      cli_cluster_usage(stderr);
      return CLI_EXIT_USAGE;
    }
    if (takes)
      i++;
  }
  if (o->dir == NULL) {
    fprintf(stderr, "sabha cluster: --dir DIR is required\n");
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

static int open_cluster(struct cluster *c, const struct opts *o) {
  if (load_cluster(c, o->dir) != 0) {
    fprintf(stderr,
            "sabha cluster: %s holds no cluster (no readable cluster.conf); "
            "start one with `sabha cluster start --dir %s`\n",
            o->dir, o->dir);
    return CLI_EXIT_ERROR;
  }
  return CLI_EXIT_OK;
}

#define STATUS_PASSES 3
#define STATUS_PASS_GAP_MS 50u

/* Asks the nodes one after the other, so a leadership change in the middle
 * of a pass can show a cluster with no leader (the old one asked after it
 * stepped down, the new one before it won) or with two. A script that
 * looks for the leader's port would then find none. When a pass names no
 * leader, or more than one, it is made again, up to STATUS_PASSES times;
 * the last is printed, whatever it shows. */
static int cmd_status(const struct cluster *c) {
  struct node_view views[NODES_MAX + 1];
  for (int pass = 0; pass < STATUS_PASSES; pass++) {
    if (pass > 0)
      sleep_ms(STATUS_PASS_GAP_MS);
    uint32_t leaders = 0;
    for (uint32_t i = 1; i <= c->nodes; i++) {
      view_node(c, i, &views[i]);
      leaders += strcmp(views[i].role, "leader") == 0;
    }
    if (leaders == 1)
      break;
  }
  for (uint32_t i = 1; i <= c->nodes; i++)
    print_node(c, i, &views[i]);
  return CLI_EXIT_OK;
}

/* Starts every node in `which` (a bit per id) that is down. */
static int start_nodes(const struct cluster *c, uint32_t which) {
  char sabhad[PATH_MAX];
  if (!find_sabhad(sabhad, sizeof sabhad)) {
    fprintf(stderr, "sabha cluster: cannot find the sabhad binary next to "
                    "sabha (build it, or set $SABHAD)\n");
    return CLI_EXIT_ERROR;
  }
  pid_t pids[NODES_MAX + 1] = {0};
  which &= ~c->removed; /* a removed node stays down */
  for (uint32_t i = 1; i <= c->nodes; i++) {
    if (!(which & (1u << i)) || running_pid(c, i) != 0)
      continue;
    const uint32_t offsets[] = {PORT_CLIENT_OFFSET, PORT_HTTP_OFFSET,
                                PORT_PEER_OFFSET};
    for (size_t k = 0; k < 3; k++) {
      uint32_t port = port_of(c, i, offsets[k]);
      if (!port_free(port)) {
        fprintf(stderr,
                "sabha cluster: port %u (node %u) is in use; pick another "
                "--base-port\n",
                port, i);
        return CLI_EXIT_ERROR;
      }
    }
  }
  for (uint32_t i = 1; i <= c->nodes; i++) {
    if (!(which & (1u << i)))
      continue;
    if (running_pid(c, i) != 0) {
      fprintf(stderr, "sabha cluster: node %u is already running\n", i);
      continue;
    }
    pids[i] = spawn_node(c, i, sabhad);
    if (pids[i] < 0) {
      fprintf(stderr, "sabha cluster: cannot start node %u: %s\n", i,
              strerror(errno));
      return CLI_EXIT_ERROR;
    }
  }
  uint64_t deadline = now_ms() + WAIT_START_MS;
  int rc = CLI_EXIT_OK;
  for (uint32_t i = 1; i <= c->nodes; i++) {
    if (pids[i] <= 0)
      continue;
    if (!wait_answering(c, i, pids[i], deadline)) {
      fprintf(stderr, "sabha cluster: node %u did not come up; its log ends:\n",
              i);
      show_log_tail(c, i);
      rc = CLI_EXIT_ERROR;
    }
  }
  return rc;
}

static int wait_leader(const struct cluster *c, unsigned timeout_ms) {
  uint64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    if (find_leader(c) != 0)
      return 0;
    sleep_ms(100);
  }
  return -1;
}

static int cmd_start(const struct opts *o) {
  struct cluster c;
  bool existing = load_cluster(&c, o->dir) == 0;
  if (existing) {
    if ((o->nodes_set && o->nodes != c.nodes) ||
        (o->protocol_set && strcmp(o->protocol, c.protocol) != 0) ||
        (o->base_port_set && o->base_port != c.base_port)) {
      fprintf(stderr,
              "sabha cluster: %s already holds a cluster of %u %s nodes at "
              "base port %u; use another --dir, or leave the options out to "
              "start its stopped nodes\n",
              o->dir, c.nodes, c.protocol, c.base_port);
      return CLI_EXIT_USAGE;
    }
  } else {
    bool known = false;
    for (const char *const *p = sabha_protocols(); *p != NULL; p++)
      known = known || strcmp(*p, o->protocol) == 0;
    if (!known) {
      fprintf(stderr, "sabha cluster: unknown protocol '%s'\n", o->protocol);
      return CLI_EXIT_USAGE;
    }
    size_t secret_bytes = o->secret != NULL ? strlen(o->secret) : 0;
    if (o->secret != NULL &&
        (secret_bytes < SECRET_BYTES_MIN || secret_bytes > SECRET_BYTES_MAX ||
         strpbrk(o->secret, "\r\n") != NULL)) {
      fprintf(stderr,
              "sabha cluster: --secret takes %u..%u bytes on one line (leave "
              "it out for 32 random bytes)\n",
              SECRET_BYTES_MIN, SECRET_BYTES_MAX);
      return CLI_EXIT_USAGE;
    }
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "sabha cluster: cannot create %s: %s\n", o->dir,
              strerror(errno));
      return CLI_EXIT_ERROR;
    }
    memset(&c, 0, sizeof c);
    if (!absolute_dir(o->dir, c.dir, sizeof c.dir)) {
      fprintf(stderr, "sabha cluster: %s: %s\n", o->dir, strerror(errno));
      return CLI_EXIT_ERROR;
    }
    c.nodes = o->nodes;
    snprintf(c.protocol, sizeof c.protocol, "%s", o->protocol);
    c.base_port = o->base_port;
    c.tls = o->tls;
    if (o->cluster_id != NULL)
      snprintf(c.cluster_id, sizeof c.cluster_id, "%s", o->cluster_id);
    else
      snprintf(c.cluster_id, sizeof c.cluster_id, "local-%u", c.base_port);
    if (sodium_init() < 0) {
      fprintf(stderr, "sabha cluster: libsodium failed to initialize\n");
      return CLI_EXIT_ERROR;
    }
    /* The client password goes to the nodes in a file of its own, never
     * on a command line (which ps shows to every user). */
    char *sets[36]; /* the user's, and the four below */
    int n_sets = o->n_sets;
    memcpy(sets, o->sets, sizeof o->sets);
    char pass_set[PATH_MAX + 32];
    if (o->requirepass != NULL) {
      snprintf(pass_set, sizeof pass_set, "requirepass-file=%s/requirepass",
               c.dir);
      if (write_requirepass(&c, o->requirepass) != 0) {
        fprintf(stderr, "sabha cluster: cannot write %s/requirepass: %s\n",
                c.dir, strerror(errno));
        return CLI_EXIT_ERROR;
      }
      sets[n_sets++] = pass_set;
    }
    /* Every node gets the whole map (sabhad takes its own priority from
     * it): a leader judges the others by it, so they must all agree. */
    char prio_set[PATH_MAX];
    if (o->priorities != NULL) {
      snprintf(prio_set, sizeof prio_set, "priorities=%s", o->priorities);
      sets[n_sets++] = prio_set;
    }
    /* Every member hosts the same groups (their handshake checks it). */
    char groups_set[32];
    if (o->groups > 0) {
      snprintf(groups_set, sizeof groups_set, "groups=%u", o->groups);
      sets[n_sets++] = groups_set;
    }
    if (c.tls && write_certificates(&c) != 0)
      return CLI_EXIT_ERROR;
    if (write_configs(&c, o->secret, sets, n_sets) != 0) {
      fprintf(stderr, "sabha cluster: cannot write the configs in %s: %s\n",
              c.dir, strerror(errno));
      return CLI_EXIT_ERROR;
    }
  }
  uint32_t all = 0;
  for (uint32_t i = 1; i <= c.nodes; i++)
    all |= 1u << i;
  int rc = start_nodes(&c, all);
  if (rc != CLI_EXIT_OK)
    return rc;
  bool leader = wait_leader(&c, 10000) == 0;
  printf("sabha cluster: %u %s nodes in %s%s\n", c.nodes, c.protocol, c.dir,
         leader ? "" : " (no leader elected yet)");
  cmd_status(&c);
  char tls_args[PATH_MAX + 32] = "";
  if (c.tls)
    snprintf(tls_args, sizeof tls_args, " --tls --cacert %s/ca.crt", c.dir);
  printf("\nconnect:  redis-cli%s -p %u%s   (any node's client port)\n"
         "status:   sabha cluster status --dir %s\n"
         "stop:     sabha cluster stop --dir %s\n"
         "logs:     %s/node<N>.log\n",
         tls_args, port_of(&c, 1, PORT_CLIENT_OFFSET),
         o->requirepass != NULL ? " -a <password>" : "", o->dir, o->dir, c.dir);
  return CLI_EXIT_OK;
}

static int resolve_node(const struct cluster *c, const char *node,
                        uint32_t *id) {
  if (node == NULL) {
    fprintf(stderr, "sabha cluster: which node? (an id or `leader`)\n");
    return CLI_EXIT_USAGE;
  }
  if (strcmp(node, "leader") == 0) {
    *id = find_leader(c);
    if (*id == 0) {
      fprintf(stderr, "sabha cluster: no node is leader right now\n");
      return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
  }
  if (!parse_u32(node, c->nodes, id) || *id == 0) {
    fprintf(stderr, "sabha cluster: no node '%s' (1..%u or leader)\n", node,
            c->nodes);
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

/* ---- membership: add and remove ------------------------------------------
 */

#define MEMBER_WAIT_MS 60000u
#define MEMBER_RETRY_MS 200u
#define REMOVED_SAY_MS 3000u

/* A password file of the cluster's (requirepass, adminpass), or false. */
static bool read_secret_file(const struct cluster *c, const char *name,
                             char *out, size_t size) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return false;
  bool ok = fgets(out, (int)size, f) != NULL;
  fclose(f);
  out[strcspn(out, "\r\n")] = '\0';
  return ok && out[0] != '\0';
}

static size_t resp_append(char *buf, size_t size, size_t len, int argc,
                          const char *const *argv) {
  len +=
      (size_t)snprintf(buf + len, len < size ? size - len : 0, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++)
    len += (size_t)snprintf(buf + len, len < size ? size - len : 0,
                            "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
  return len;
}

/* Runs one command on node `id`'s client port (after AUTH when the cluster
 * has a password; as the admin user with DIR/adminpass) and puts the first
 * line of its reply in `reply` ("" when the node did not answer). */
static void node_call(const struct cluster *c, uint32_t id, int argc,
                      const char *const *argv, char *reply, size_t size) {
  char req[2048], pass[512];
  size_t len = 0;
  bool auth = false;
  if (read_secret_file(c, "adminpass", pass, sizeof pass)) {
    const char *a[3] = {"AUTH", "admin", pass};
    len = resp_append(req, sizeof req, len, 3, a);
    auth = true;
  } else if (read_secret_file(c, "requirepass", pass, sizeof pass)) {
    const char *a[2] = {"AUTH", pass};
    len = resp_append(req, sizeof req, len, 2, a);
    auth = true;
  }
  sodium_memzero(pass, sizeof pass);
  len = resp_append(req, sizeof req, len, argc, argv);
  const char *quit[1] = {"QUIT"}; /* the node closes after it */
  len = resp_append(req, sizeof req, len, 1, quit);
  reply[0] = '\0';
  char buf[8192], why[256];
  bool ok = len < sizeof req &&
            node_exchange(c, id, port_of(c, id, PORT_CLIENT_OFFSET), req, buf,
                          sizeof buf, 5000, why, sizeof why);
  sodium_memzero(req, sizeof req);
  if (!ok) {
    if (why[0] != '\0')
      fprintf(stderr, "sabha cluster: node %u: %s\n", id, why);
    return;
  }
  const char *line = buf;
  if (auth) {
    if (buf[0] != '+') { /* the AUTH failed: that is the answer */
      snprintf(reply, size, "%.*s", (int)strcspn(buf, "\r\n"), buf);
      return;
    }
    line = strstr(buf, "\r\n");
    line = line != NULL ? line + 2 : "";
  }
  snprintf(reply, size, "%.*s", (int)strcspn(line, "\r\n"), line);
}

/* Sends SABHA.MEMBER verb id [addr] to the leader until it takes it (a
 * ":index" reply) or refuses it for good (-ERR); -TRYAGAIN, no leader or
 * no answer are retried until MEMBER_WAIT_MS. Returns true when taken. */
static bool member_change(const struct cluster *c, const char *verb,
                          uint32_t id, const char *addr) {
  char idtext[16], reply[512] = "";
  snprintf(idtext, sizeof idtext, "%u", id);
  const char *argv[4] = {"SABHA.MEMBER", verb, idtext, addr};
  uint64_t deadline = now_ms() + MEMBER_WAIT_MS;
  while (now_ms() < deadline) {
    uint32_t leader = find_leader(c);
    if (leader != 0) {
      node_call(c, leader, addr != NULL ? 4 : 3, argv, reply, sizeof reply);
      if (reply[0] == ':')
        return true;
      if (strncmp(reply, "-ERR", 4) == 0 || strncmp(reply, "-NOAUTH", 7) == 0 ||
          strncmp(reply, "-WRONGPASS", 10) == 0 ||
          strncmp(reply, "-NOPERM", 7) == 0)
        break;
    }
    sleep_ms(MEMBER_RETRY_MS);
  }
  fprintf(stderr, "sabha cluster: SABHA.MEMBER %s %u: %s\n", verb, id,
          reply[0] != '\0' ? reply : "no leader answered");
  return false;
}

/* Node `id`'s role in the membership the leader has committed: 0 not a
 * member, SABHA_MEMBER_VOTER or SABHA_MEMBER_LEARNER; -1 when no leader
 * answers or its newest membership is not committed yet. The leader must
 * not be `not_leader` (a leader removing itself hands over). */
static int committed_role(const struct cluster *c, uint32_t id,
                          uint32_t not_leader) {
  uint32_t leader = find_leader(c);
  char body[16384];
  if (leader == 0 || leader == not_leader ||
      !http_get(c, leader, "/status", body, sizeof body, 1000))
    return -1;
  if (json_u64(body, "config_index") > json_u64(body, "commit"))
    return -1;
  const char *members = strstr(body, "\"members\":[");
  if (members == NULL)
    return -1;
  const char *end = strchr(members, ']');
  char pat[32];
  snprintf(pat, sizeof pat, "{\"id\":%u,", id);
  const char *m = strstr(members, pat);
  if (m == NULL || (end != NULL && m > end))
    return 0;
  const char *close = strchr(m, '}');
  const char *voter = strstr(m, "\"role\":\"voter\"");
  return voter != NULL && (close == NULL || voter < close)
             ? SABHA_MEMBER_VOTER
             : SABHA_MEMBER_LEARNER;
}

static bool wait_role(const struct cluster *c, uint32_t id, int role,
                      uint32_t not_leader) {
  uint64_t deadline = now_ms() + MEMBER_WAIT_MS;
  while (now_ms() < deadline) {
    if (committed_role(c, id, not_leader) == role)
      return true;
    sleep_ms(MEMBER_RETRY_MS);
  }
  return false;
}

/* DIR/nodeN.conf for a new node: the settings of `tmpl`'s config with this
 * node's id, ports, data and peers (every member), and join = yes. */
static int write_join_config(const struct cluster *c, uint32_t tmpl,
                             uint32_t id) {
  char path[PATH_MAX + 16];
  node_path(c, tmpl, ".conf", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  static const char *const own[] = {
      "id",   "peers", "peer-clients", "client-port",   "http-port",
      "data", "join",  "priority",     "tls-cert-file", "tls-key-file"};
  char text[16384], line[PATH_MAX + 64];
  size_t len = (size_t)snprintf(
      text, sizeof text,
      "# sabhad settings of node %u, added by `sabha cluster add`\n", id);
  while (fgets(line, sizeof line, f) != NULL && len < sizeof text) {
    size_t key = strcspn(line, " =");
    bool skip = line[0] == '#';
    for (size_t k = 0; k < sizeof own / sizeof own[0] && !skip; k++)
      skip = strlen(own[k]) == key && strncmp(line, own[k], key) == 0;
    if (!skip)
      len += (size_t)snprintf(text + len, sizeof text - len, "%s", line);
  }
  fclose(f);
  char peers[1024], clients[1024];
  member_lists(c, id, peers, sizeof peers, clients, sizeof clients);
  char data[PATH_MAX + 16];
  node_path(c, id, "", data, sizeof data);
  len +=
      (size_t)snprintf(text + len, sizeof text - len,
                       "id = %u\npeers = %s\npeer-clients = %s\n"
                       "client-port = %u\nhttp-port = %u\ndata = %s\n"
                       "join = yes\n",
                       id, peers, clients, port_of(c, id, PORT_CLIENT_OFFSET),
                       port_of(c, id, PORT_HTTP_OFFSET), data);
  if (c->tls) /* its own certificate; the CA line came with the template */
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "tls-cert-file = %s/node%u.crt\n"
                            "tls-key-file = %s/node%u.key\n",
                            c->dir, id, c->dir, id);
  if (len >= sizeof text)
    return -1;
  node_path(c, id, ".conf", path, sizeof path);
  return write_file(path, text, 0600);
}

static int cmd_add(struct cluster *c, bool learner) {
  uint32_t id = c->nodes + 1, tmpl = 0;
  for (uint32_t i = 1; i <= c->nodes && tmpl == 0; i++)
    if (!(c->removed & (1u << i)))
      tmpl = i;
  if (id > NODES_MAX || tmpl == 0) {
    fprintf(stderr, "sabha cluster: %s\n",
            tmpl == 0 ? "no member left to copy settings from"
                      : "16 node ids are used up");
    return CLI_EXIT_ERROR;
  }
  /* Signed by the cluster's CA, with the name peers expect of node id. */
  if (c->tls && write_node_certificate(c, id) != 0)
    return CLI_EXIT_ERROR;
  if (write_join_config(c, tmpl, id) != 0) {
    fprintf(stderr, "sabha cluster: cannot write node %u's config: %s\n", id,
            strerror(errno));
    return CLI_EXIT_ERROR;
  }
  c->nodes = id; /* status and stop see it from now on */
  if (save_cluster(c) != 0) {
    fprintf(stderr, "sabha cluster: cannot update %s/cluster.conf\n", c->dir);
    return CLI_EXIT_ERROR;
  }
  int rc = start_nodes(c, 1u << id);
  if (rc != CLI_EXIT_OK)
    return rc;
  char addr[128];
  snprintf(addr, sizeof addr, "peer=%s:%u,client=%s:%u", HOST,
           port_of(c, id, PORT_PEER_OFFSET), HOST,
           port_of(c, id, PORT_CLIENT_OFFSET));
  if (!member_change(c, "ADD", id, addr) ||
      !wait_role(c, id, SABHA_MEMBER_LEARNER, 0)) {
    fprintf(stderr, "sabha cluster: node %u runs but did not join\n", id);
    return CLI_EXIT_FAILED;
  }
  /* The leader promotes only a learner that holds everything committed:
   * until then it answers -TRYAGAIN, and this asks again. */
  if (!learner && (!member_change(c, "PROMOTE", id, NULL) ||
                   !wait_role(c, id, SABHA_MEMBER_VOTER, 0))) {
    fprintf(stderr,
            "sabha cluster: node %u joined as a learner but was not "
            "promoted\n",
            id);
    return CLI_EXIT_FAILED;
  }
  printf("sabha cluster: node %u joined as a %s (client %s:%u)\n", id,
         learner ? "learner" : "voter", HOST,
         port_of(c, id, PORT_CLIENT_OFFSET));
  return CLI_EXIT_OK;
}

static int cmd_remove(struct cluster *c, uint32_t id) {
  if (c->removed & (1u << id)) {
    fprintf(stderr, "sabha cluster: node %u was removed already\n", id);
    return CLI_EXIT_FAILED;
  }
  bool was_leader = find_leader(c) == id;
  if (!member_change(c, "REMOVE", id, NULL))
    return CLI_EXIT_FAILED;
  /* Committed without it, by a leader that is not it: a removed leader
   * leads until then and hands over. */
  if (!wait_role(c, id, 0, id)) {
    fprintf(stderr,
            "sabha cluster: the membership without node %u did not "
            "commit\n",
            id);
    return CLI_EXIT_FAILED;
  }
  /* Let it hear of it and say so in its log before it stops. */
  uint64_t deadline = now_ms() + REMOVED_SAY_MS;
  char body[16384];
  while (now_ms() < deadline &&
         !(http_get(c, id, "/status", body, sizeof body, 500) &&
           strstr(body, "\"removed\":true") != NULL))
    sleep_ms(MEMBER_RETRY_MS);
  c->removed |= 1u << id;
  if (save_cluster(c) != 0 || !stop_node(c, id, false))
    return CLI_EXIT_FAILED;
  printf("sabha cluster: node %u%s left the group and stopped\n", id,
         was_leader ? " (the leader: it handed over)" : "");
  return CLI_EXIT_OK;
}

int cli_cluster(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0) {
    cli_cluster_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  const char *sub = argv[1];
  struct opts o;
  int rc = parse_opts(argc, argv, &o);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (strcmp(sub, "start") == 0)
    return cmd_start(&o);
  struct cluster c;
  rc = open_cluster(&c, &o);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (strcmp(sub, "status") == 0)
    return cmd_status(&c);
  if (strcmp(sub, "stop") == 0) {
    uint32_t stopped = 0, failed = 0;
    bool was[NODES_MAX + 1] = {false};
    for (uint32_t i = 1; i <= c.nodes; i++) {
      pid_t pid = running_pid(&c, i);
      was[i] = pid != 0;
      if (was[i])
        kill(pid, SIGTERM); /* all at once; then wait for each */
    }
    /* Each had its SIGTERM: a second one would find a node that is
     * closing its log, and an older sabhad that no longer handles it. */
    for (uint32_t i = 1; i <= c.nodes; i++) {
      if (stop_node_signalled(&c, i, false, was[i]))
        stopped += was[i];
      else
        failed++;
    }
    printf("sabha cluster: stopped %u node(s) in %s\n", stopped, c.dir);
    return failed == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
  }
  if (strcmp(sub, "add") == 0)
    return cmd_add(&c, o.learner);
  if (strcmp(sub, "remove") == 0) {
    uint32_t id;
    rc = resolve_node(&c, o.node, &id);
    return rc != CLI_EXIT_OK ? rc : cmd_remove(&c, id);
  }
  if (strcmp(sub, "kill") == 0 || strcmp(sub, "restart") == 0) {
    uint32_t id;
    rc = resolve_node(&c, o.node, &id);
    if (rc != CLI_EXIT_OK)
      return rc;
    pid_t pid = running_pid(&c, id);
    if (strcmp(sub, "kill") == 0) {
      if (pid == 0) {
        fprintf(stderr, "sabha cluster: node %u is not running\n", id);
        return CLI_EXIT_FAILED;
      }
      if (!stop_node(&c, id, true))
        return CLI_EXIT_FAILED;
      printf("sabha cluster: killed node %u (pid %ld)\n", id, (long)pid);
      return CLI_EXIT_OK;
    }
    if (!stop_node(&c, id, false))
      return CLI_EXIT_FAILED;
    rc = start_nodes(&c, 1u << id);
    if (rc != CLI_EXIT_OK)
      return rc;
    struct node_view v;
    view_node(&c, id, &v);
    print_node(&c, id, &v);
    return CLI_EXIT_OK;
  }
  fprintf(stderr, "sabha cluster: unknown subcommand '%s'\n\n", sub);
  cli_cluster_usage(stderr);
  return CLI_EXIT_USAGE;
}
