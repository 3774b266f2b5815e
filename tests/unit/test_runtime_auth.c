/* Client authentication in the node runtime (src/node/auth.c), through the
 * runtime's own API: streams in, replies out, as a host sees them. The
 * node is node 2 of three over memfs, and the test is its host: it opens
 * streams (loopback or not), feeds them commands and reads the replies, and
 * plays the leader's heartbeat when a test needs a leader elsewhere.
 *
 * What each test holds the node to: requirepass gates every command but
 * AUTH, HELLO and QUIT, with Redis's replies in Redis's order; admin-pass
 * guards the commands that change the cluster; protected mode refuses
 * clients from other hosts when there is no password; a forwarding link
 * logs in before it says SABHA.FORWARDED, and carries only commands of
 * clients that logged in; a connection let in past clients-max (a slot kept
 * for nodes) may log in, but one that fails to is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "node/runtime_internal.h"
#include "raft/raft.h"
#include "rt_host.h"
#include "storage/memfs.h"

/* Opens node 2 with the given passwords (NULL: none). */
static int node_open(struct rt_node *n, const char *requirepass,
                     const char *admin_pass, bool protected_mode,
                     uint32_t clients_max) {
  struct rt_config cfg;
  if (rt_node_init(n, &cfg) != 0)
    return -1;
  n->h.accept_links = true;
  cfg.clients_max = clients_max;
  cfg.protected_mode = protected_mode;
  if (requirepass != NULL) {
    cfg.requirepass_bytes = (uint32_t)strlen(requirepass);
    memcpy(cfg.requirepass, requirepass, cfg.requirepass_bytes);
  }
  if (admin_pass != NULL) {
    cfg.admin_pass_bytes = (uint32_t)strlen(admin_pass);
    memcpy(cfg.admin_pass, admin_pass, cfg.admin_pass_bytes);
  }
  for (uint32_t i = 0; i < 3; i++) {
    cfg.peer_clients[i].id = i + 1;
    cfg.peer_clients[i].port = (uint16_t)(7000 + i);
    snprintf(cfg.peer_clients[i].host, sizeof cfg.peer_clients[i].host,
             "127.0.0.1");
  }
  cfg.n_peer_clients = 3;
  return rt_node_start(n, &cfg);
}

/* Everything the stream has to say, as one string. */
static void output(struct rt_stream *s, char *out, size_t size) {
  const uint8_t *data;
  size_t len, used = 0;
  out[0] = '\0';
  while (rt_stream_out_take(s, &data, &len)) {
    size_t k = len < size - 1 - used ? len : size - 1 - used;
    memcpy(out + used, data, k);
    used += k;
    out[used] = '\0';
    rt_stream_out_done(s);
  }
}

/* Sends one inline command and returns what came back. */
static const char *say(struct rt_node *n, struct rt_stream *s,
                       const char *line) {
  static char reply[4096];
  char buf[512];
  int len = snprintf(buf, sizeof buf, "%s\r\n", line);
  rt_stream_input(s, buf, (size_t)len);
  rt_run(n->rt);
  output(s, reply, sizeof reply);
  return reply;
}

static struct rt_stream *client(struct rt_node *n) {
  struct rt_stream *s = NULL;
  const char *refusal = rt_stream_accept(n->rt, true, &s);
  return refusal == NULL ? s : NULL;
}

#define NOAUTH "-NOAUTH Authentication required.\r\n"
#define WRONGPASS                                                              \
  "-WRONGPASS invalid username-password pair or user is disabled.\r\n"

static void password_compare_needs_every_byte_and_the_length(void) {
  const uint8_t pw[] = "s3cret";
  CHECK(rt_password_equal(pw, 6, (const uint8_t *)"s3cret", 6));
  CHECK(!rt_password_equal(pw, 6, (const uint8_t *)"s3creT", 6));
  CHECK(!rt_password_equal(pw, 6, (const uint8_t *)"x3cret", 6));
  CHECK(!rt_password_equal(pw, 6, (const uint8_t *)"s3cre", 5));
  CHECK(!rt_password_equal(pw, 6, (const uint8_t *)"s3crets3cret", 12));
  CHECK(!rt_password_equal(pw, 6, (const uint8_t *)"", 0));
}

static void requirepass_refuses_commands_until_auth(void) {
  struct rt_node n;
  CHECK(node_open(&n, "pw", NULL, true, 100) == 0);
  struct rt_stream *c = client(&n);
  CHECK(c != NULL);
  CHECK(strcmp(say(&n, c, "PING"), NOAUTH) == 0);
  CHECK(strcmp(say(&n, c, "SET a 1"), NOAUTH) == 0);
  CHECK(strcmp(say(&n, c, "CONFIG GET requirepass"), NOAUTH) == 0);
  /* As in Redis: the name and the arity are judged before the user. */
  CHECK(strncmp(say(&n, c, "NOSUCH x"), "-ERR unknown command 'NOSUCH'", 29) ==
        0);
  CHECK(strcmp(say(&n, c, "GET"),
               "-ERR wrong number of arguments for 'get' command\r\n") == 0);
  CHECK(strcmp(say(&n, c, "AUTH nope"), WRONGPASS) == 0);
  CHECK(strcmp(say(&n, c, "AUTH default nope"), WRONGPASS) == 0);
  CHECK(strcmp(say(&n, c, "AUTH admin pw"), WRONGPASS) == 0); /* no admin */
  CHECK(strcmp(say(&n, c, "AUTH a b c"), "-ERR syntax error\r\n") == 0);
  CHECK(strcmp(say(&n, c, "PING"), NOAUTH) == 0);
  CHECK(strcmp(say(&n, c, "AUTH pw"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "PING"), "+PONG\r\n") == 0);
  /* A failed AUTH leaves the connection as it was (Redis does the same). */
  CHECK(strcmp(say(&n, c, "AUTH wrong"), WRONGPASS) == 0);
  CHECK(strcmp(say(&n, c, "PING"), "+PONG\r\n") == 0);
  /* CONFIG GET never shows the password. */
  CHECK(strcmp(say(&n, c, "CONFIG GET requirepass"),
               "*2\r\n$11\r\nrequirepass\r\n$5\r\n(set)\r\n") == 0);
  struct rt_stream *d = client(&n);
  CHECK(strcmp(say(&n, d, "AUTH default pw"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, d, "ECHO hi"), "$2\r\nhi\r\n") == 0);
  struct rt_stream *q = client(&n);
  CHECK(strcmp(say(&n, q, "QUIT"), "+OK\r\n") == 0);
  CHECK(rt_host_closed(&n.h, q));
  rt_node_close(&n);
}

/* Sends `len` bytes as they are and returns what came back. */
static const char *send_raw(struct rt_node *n, struct rt_stream *s,
                            const char *data, size_t len) {
  static char reply[4096];
  rt_stream_input(s, data, len);
  rt_run(n->rt);
  output(s, reply, sizeof reply);
  return reply;
}

/* "*2 ECHO <len x's>" as multibulk, in `buf` (room for len + 64). */
static size_t echo_of(char *buf, size_t len) {
  int head = sprintf(buf, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", len);
  memset(buf + head, 'x', len);
  memcpy(buf + head + len, "\r\n", 2);
  return (size_t)head + len + 2;
}

/* Before AUTH a client may send only small commands (resp_limits_unauth),
 * so that nobody without the password can make the node buffer megabytes;
 * once it has logged in, the same bytes in the same input are taken. */
static void unauthenticated_clients_get_tighter_limits(void) {
  struct rt_node n;
  CHECK(node_open(&n, "pw", NULL, true, 100) == 0);
  static char big[20000 + 64];
  size_t big_len = echo_of(big, 20000);
  struct rt_stream *c = client(&n);
  CHECK(strcmp(send_raw(&n, c, big, big_len),
               "-ERR Protocol error: unauthenticated bulk length\r\n") == 0);
  CHECK(rt_host_closed(&n.h, c));
  struct rt_stream *d = client(&n);
  CHECK(strcmp(send_raw(&n, d, "*11\r\n", 5),
               "-ERR Protocol error: unauthenticated multibulk length\r\n") ==
        0);
  CHECK(rt_host_closed(&n.h, d));
  struct rt_stream *e = client(&n);
  static char login[sizeof big + 16];
  memcpy(login, "AUTH pw\r\n", 9);
  memcpy(login + 9, big, big_len);
  const char *r = send_raw(&n, e, login, 9 + big_len);
  CHECK(strncmp(r, "+OK\r\n$20000\r\nxxx", 16) == 0);
  CHECK(!rt_host_closed(&n.h, e));
  /* A host that bounds its requests itself (the HTTP API) gets NOAUTH. */
  struct rt_stream *h = client(&n);
  rt_stream_set_host_bounded(h);
  CHECK(strcmp(send_raw(&n, h, big, big_len), NOAUTH) == 0);
  CHECK(!rt_host_closed(&n.h, h));
  rt_node_close(&n);
  /* Without requirepass every client is logged in from the start. */
  CHECK(node_open(&n, NULL, NULL, true, 100) == 0);
  struct rt_stream *f = client(&n);
  CHECK(strncmp(send_raw(&n, f, big, big_len), "$20000\r\nxxx", 11) == 0);
  rt_node_close(&n);
}

/* A name is kept whole or refused, never cut: a client that reads back
 * its name, or finds it in CLIENT LIST, gets what it set. Spaces and
 * control bytes are refused as Redis refuses them (they would split a
 * CLIENT LIST line). */
static void client_names_are_checked_not_cut(void) {
  struct rt_node n;
  CHECK(node_open(&n, NULL, NULL, true, 100) == 0);
  struct rt_stream *c = client(&n);
  char line[160], name[80];
  memset(name, 'n', 63);
  name[63] = '\0';
  snprintf(line, sizeof line, "CLIENT SETNAME %s", name);
  CHECK(strcmp(say(&n, c, line), "+OK\r\n") == 0);
  snprintf(line, sizeof line, "$63\r\n%s\r\n", name);
  CHECK(strcmp(say(&n, c, "CLIENT GETNAME"), line) == 0);
  snprintf(line, sizeof line, "CLIENT SETNAME %sx", name);
  CHECK(strcmp(say(&n, c, line),
               "-ERR Client names are limited to 63 bytes\r\n") == 0);
  snprintf(line, sizeof line, "HELLO 2 SETNAME %sx", name);
  CHECK(strcmp(say(&n, c, line),
               "-ERR Client names are limited to 63 bytes\r\n") == 0);
  CHECK(strcmp(say(&n, c, "CLIENT SETNAME \"a b\""),
               "-ERR Client names cannot contain spaces, newlines or "
               "special characters.\r\n") == 0);
  snprintf(line, sizeof line, "$63\r\n%s\r\n", name);
  CHECK(strcmp(say(&n, c, "CLIENT GETNAME"), line) == 0); /* unchanged */
  rt_node_close(&n);
}

static void auth_without_requirepass_answers_as_redis(void) {
  struct rt_node n;
  CHECK(node_open(&n, NULL, NULL, true, 100) == 0);
  struct rt_stream *c = client(&n);
  CHECK(strcmp(say(&n, c, "PING"), "+PONG\r\n") == 0);
  CHECK(strcmp(say(&n, c, "AUTH x"),
               "-ERR AUTH <password> called without any password configured "
               "for the default user. Are you sure your configuration is "
               "correct?\r\n") == 0);
  CHECK(strcmp(say(&n, c, "AUTH default anything"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "AUTH admin x"), WRONGPASS) == 0);
  CHECK(strcmp(say(&n, c, "CONFIG GET requirepass"),
               "*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n") == 0);
  rt_node_close(&n);
}

static void hello_authenticates_with_its_auth_option(void) {
  struct rt_node n;
  CHECK(node_open(&n, "pw", NULL, true, 100) == 0);
  struct rt_stream *c = client(&n);
  CHECK(strncmp(say(&n, c, "HELLO 2"),
                "-NOAUTH HELLO must be called with the client already "
                "authenticated",
                66) == 0);
  CHECK(strcmp(say(&n, c, "HELLO 2 AUTH default wrong"), WRONGPASS) == 0);
  CHECK(strcmp(say(&n, c, "HELLO 2 AUTH default"),
               "-ERR Syntax error in HELLO option 'AUTH'\r\n") == 0);
  CHECK(strcmp(say(&n, c, "HELLO 3 AUTH default pw"),
               "-NOPROTO sorry, this protocol version is not supported\r\n") ==
        0);
  CHECK(strcmp(say(&n, c, "PING"), NOAUTH) == 0);
  CHECK(strncmp(say(&n, c, "HELLO 2 AUTH default pw SETNAME me"), "*14\r\n",
                5) == 0);
  CHECK(strcmp(say(&n, c, "CLIENT GETNAME"), "$2\r\nme\r\n") == 0);
  CHECK(strcmp(say(&n, c, "PING"), "+PONG\r\n") == 0);
  rt_node_close(&n);
}

static void admin_pass_guards_the_commands_that_change_the_cluster(void) {
  struct rt_node n;
  CHECK(node_open(&n, "pw", "ad", true, 100) == 0);
  struct rt_stream *c = client(&n);
  CHECK(strcmp(say(&n, c, "SABHA.LEADER 1"), NOAUTH) == 0);
  CHECK(strcmp(say(&n, c, "AUTH pw"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SABHA.LEADER 1"),
               "-NOPERM this user has no permissions to run the "
               "'sabha.leader' command\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SABHA.FORWARDED"),
               "-NOPERM this user has no permissions to run the "
               "'sabha.forwarded' command\r\n") == 0);
  CHECK(strcmp(say(&n, c, "AUTH admin wrong"), WRONGPASS) == 0);
  CHECK(strcmp(say(&n, c, "AUTH admin ad"), "+OK\r\n") == 0);
  /* Accepted: it waits for a leader now, no refusal comes. */
  CHECK(strcmp(say(&n, c, "SABHA.LEADER 1"), "") == 0);
  struct rt_stream *d = client(&n);
  CHECK(strcmp(say(&n, d, "AUTH admin ad"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, d, "SABHA.FORWARDED"), "+OK\r\n") == 0);
  rt_node_close(&n);

  /* Without admin-pass they follow requirepass. */
  CHECK(node_open(&n, "pw", NULL, true, 100) == 0);
  c = client(&n);
  CHECK(strcmp(say(&n, c, "SABHA.FORWARDED"), NOAUTH) == 0);
  CHECK(strcmp(say(&n, c, "AUTH pw"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SABHA.FORWARDED"), "+OK\r\n") == 0);
  rt_node_close(&n);

  /* admin-pass alone: the default user needs nothing, admin commands do. */
  CHECK(node_open(&n, NULL, "ad", true, 100) == 0);
  c = client(&n);
  CHECK(strcmp(say(&n, c, "PING"), "+PONG\r\n") == 0);
  CHECK(strncmp(say(&n, c, "SABHA.LEADER 1"), "-NOPERM", 7) == 0);
  CHECK(strcmp(say(&n, c, "AUTH admin ad"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SABHA.FORWARDED"), "+OK\r\n") == 0);
  rt_node_close(&n);
}

static void protected_mode_refuses_other_hosts_without_a_password(void) {
  struct rt_node n;
  CHECK(node_open(&n, NULL, NULL, true, 100) == 0);
  struct rt_stream *s = NULL;
  const char *refusal = rt_stream_accept(n.rt, false, &s);
  CHECK(refusal != NULL && s == NULL);
  CHECK(strncmp(refusal, "-DENIED sabha is running in protected mode", 42) ==
        0);
  CHECK(strcmp(refusal + strlen(refusal) - 2, "\r\n") == 0);
  CHECK(rt_metrics(n.rt)->clients_refused == 1);
  CHECK(rt_stream_accept(n.rt, true, &s) == NULL && s != NULL);
  rt_node_close(&n);

  /* protected-mode no: anyone may connect. */
  CHECK(node_open(&n, NULL, NULL, false, 100) == 0);
  s = NULL;
  CHECK(rt_stream_accept(n.rt, false, &s) == NULL && s != NULL);
  CHECK(strcmp(say(&n, s, "PING"), "+PONG\r\n") == 0);
  rt_node_close(&n);

  /* With a password, a client from anywhere connects and must log in. */
  CHECK(node_open(&n, "pw", NULL, true, 100) == 0);
  s = NULL;
  CHECK(rt_stream_accept(n.rt, false, &s) == NULL && s != NULL);
  CHECK(strcmp(say(&n, s, "PING"), NOAUTH) == 0);
  rt_node_close(&n);
}

/* Node 1 leads term 1, as its heartbeat tells node 2. */
static void leader_is_node_1(struct rt_node *n) {
  struct sabha_msg m = {
      .type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
  rt_step(n->rt, &m);
  rt_run(n->rt);
}

static void forwarding_link_logs_in_and_carries_only_logged_in_clients(void) {
  struct rt_node n;
  CHECK(node_open(&n, "pw", NULL, true, 100) == 0);
  leader_is_node_1(&n);
  struct rt_stream *c = client(&n);
  CHECK(strcmp(say(&n, c, "SET a 1"), NOAUTH) == 0);
  CHECK(strcmp(say(&n, c, "GET a"), NOAUTH) == 0);
  CHECK(n.h.link == NULL); /* nothing was forwarded, no link opened */
  CHECK(rt_metrics(n.rt)->forwarded == 0);
  CHECK(strcmp(say(&n, c, "AUTH pw"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SET a 1"), "") == 0); /* waits for the leader */
  CHECK(n.h.link != NULL && n.h.link_node == 1);
  rt_stream_connected(n.h.link);
  rt_run(n.rt);
  char out[1024];
  output(n.h.link, out, sizeof out);
  static const char expected[] =
      "*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n"
      "*1\r\n$15\r\nSABHA.FORWARDED\r\n"
      "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
  CHECK(strcmp(out, expected) == 0);
  /* The leader's replies: the login's and SABHA.FORWARDED's are the
   * link's own; the third is the client's. */
  rt_stream_input(n.h.link, "+OK\r\n+OK\r\n+OK\r\n", 15);
  rt_run(n.rt);
  output(c, out, sizeof out);
  CHECK(strcmp(out, "+OK\r\n") == 0);
  rt_node_close(&n);

  /* With admin-pass the link logs in as admin: it carries admin commands
   * this node let through. */
  CHECK(node_open(&n, "pw", "ad", true, 100) == 0);
  leader_is_node_1(&n);
  c = client(&n);
  CHECK(strcmp(say(&n, c, "AUTH admin ad"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, c, "SABHA.LEADER 3"), "") == 0);
  CHECK(n.h.link != NULL);
  rt_stream_connected(n.h.link);
  rt_run(n.rt);
  output(n.h.link, out, sizeof out);
  CHECK(strncmp(out, "*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$2\r\nad\r\n", 33) ==
        0);
  rt_node_close(&n);
}

static void a_slot_kept_for_nodes_needs_a_login_that_works(void) {
  struct rt_node n;
  CHECK(node_open(&n, "pw", NULL, true, 1) == 0);
  struct rt_stream *first = client(&n);
  CHECK(first != NULL);
  /* Past clients-max: on probation, for a node's forwarding link. */
  struct rt_stream *link = client(&n);
  CHECK(link != NULL);
  CHECK(strcmp(say(&n, link, "AUTH default pw"), "+OK\r\n") == 0);
  CHECK(!rt_host_closed(&n.h, link));
  CHECK(strcmp(say(&n, link, "SABHA.FORWARDED"), "+OK\r\n") == 0);
  CHECK(strcmp(say(&n, link, "PING"), "+PONG\r\n") == 0);
  CHECK(!rt_host_closed(&n.h, link));

  struct rt_stream *guess = client(&n);
  CHECK(strcmp(say(&n, guess, "AUTH default guess"), WRONGPASS) == 0);
  CHECK(rt_host_closed(&n.h, guess));
  struct rt_stream *pretend = client(&n);
  CHECK(strcmp(say(&n, pretend, "SABHA.FORWARDED"), NOAUTH) == 0);
  CHECK(rt_host_closed(&n.h, pretend));
  struct rt_stream *other = client(&n);
  CHECK(strcmp(say(&n, other, "PING"),
               "-ERR max number of clients reached\r\n") == 0);
  CHECK(rt_host_closed(&n.h, other));
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(password_compare_needs_every_byte_and_the_length),
      TEST(requirepass_refuses_commands_until_auth),
      TEST(unauthenticated_clients_get_tighter_limits),
      TEST(client_names_are_checked_not_cut),
      TEST(auth_without_requirepass_answers_as_redis),
      TEST(hello_authenticates_with_its_auth_option),
      TEST(admin_pass_guards_the_commands_that_change_the_cluster),
      TEST(protected_mode_refuses_other_hosts_without_a_password),
      TEST(forwarding_link_logs_in_and_carries_only_logged_in_clients),
      TEST(a_slot_kept_for_nodes_needs_a_login_that_works),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
