/* Client authentication: who a connection is, and what it may run.
 *
 * A node knows two users, named as Redis's ACL would name them, so that
 * clients written for Redis log in unchanged:
 *
 *   default  every connection starts as it. With requirepass set it must
 *            first give the password (AUTH pw, AUTH default pw, or HELLO 2
 *            AUTH default pw); until then every command but AUTH, HELLO
 *            and QUIT is answered -NOAUTH. Without requirepass it needs
 *            nothing, and AUTH pw says so, as Redis does;
 *   admin    exists only with admin-pass set (AUTH admin pw), and only it
 *            may then run the commands that change the cluster rather than
 *            the data (rt_command_is_admin); others get -NOPERM. Without
 *            admin-pass those commands follow requirepass.
 *
 * Protected mode, as Redis has it: while the default user needs no
 * password, a client from another host is refused when it connects
 * (-DENIED), so that a node bound to a public address by mistake does not
 * serve the world. `protected-mode no` turns it off. The runtime sees only
 * whether the host said the client is on the loopback interface.
 *
 * Forwarding. A follower checks a client's rights before it forwards
 * anything (the check is in rt_command_check, before a request exists), so
 * it forwards only commands of a connection that may run them. Its own
 * link to the leader logs in with this node's strongest credentials (admin,
 * else default) before it says SABHA.FORWARDED, because the leader treats
 * the link as a client like any other; and SABHA.FORWARDED itself needs
 * the admin user when there is one, so that a client cannot pass for a
 * node and take the connection slots kept for forwarding links.
 *
 * Passwords are compared in constant time (rt_password_equal): src/node
 * has no libsodium, and a compare that stops at the first wrong byte tells
 * a patient attacker how much of a guess was right. */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "node/runtime_internal.h"

#define ERR_NOAUTH "NOAUTH Authentication required."
#define ERR_WRONGPASS                                                          \
  "WRONGPASS invalid username-password pair or user is disabled."
#define ERR_NO_PASSWORD                                                        \
  "ERR AUTH <password> called without any password configured for the "        \
  "default user. Are you sure your configuration is correct?"
/* Redis's own refusal names Redis and CONFIG SET; sabha's settings are
 * fixed at start-up, so this says what to set instead. */
#define ERR_DENIED_PROTECTED                                                   \
  "-DENIED sabha is running in protected mode: no password is set for the "    \
  "default user, so only clients on the loopback interface are accepted. "     \
  "To serve clients on other hosts, give every node a password "               \
  "(requirepass-file, or requirepass) and connect with AUTH; or, on a "        \
  "network you trust, set protected-mode no. Restart the node after either "   \
  "change.\r\n"

bool rt_password_equal(const uint8_t *secret, size_t secret_bytes,
                       const uint8_t *attempt, size_t attempt_bytes) {
  assert(secret != NULL && secret_bytes > 0);
  assert(attempt != NULL || attempt_bytes == 0);
  /* Every byte of the attempt meets a byte of the secret (cycled when the
   * attempt is longer) and the differences are OR-ed together: no early
   * exit, no branch on a byte of either. `volatile` keeps the compiler
   * from turning the loop back into one that stops early. The loop's
   * length is the attempt's, which its sender knows anyway. */
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < attempt_bytes; i++)
    diff |= (uint8_t)(attempt[i] ^ secret[i % secret_bytes]);
  return (diff | (uint8_t)(attempt_bytes != secret_bytes)) == 0;
}

enum rt_user rt_auth_initial_user(const struct rt *rt) {
  return rt->cfg.requirepass_bytes > 0 ? RT_USER_NONE : RT_USER_DEFAULT;
}

const char *rt_auth_accept_refusal(const struct rt *rt, bool loopback) {
  if (loopback || !rt->cfg.protected_mode || rt->cfg.requirepass_bytes > 0)
    return NULL;
  return ERR_DENIED_PROTECTED;
}

const char *rt_auth_refusal(const struct rt_stream *c,
                            const struct rt_command *cmd, char *msg,
                            size_t msg_size) {
  assert(c->kind == RT_STREAM_CLIENT);
  if (rt_command_is_no_auth(cmd))
    return NULL;
  if (c->user == RT_USER_NONE)
    return ERR_NOAUTH;
  if (c->rt->cfg.admin_pass_bytes > 0 && c->user != RT_USER_ADMIN &&
      rt_command_is_admin(cmd)) {
    char lower[32];
    rt_command_lower_name(cmd, lower, sizeof lower);
    snprintf(msg, msg_size,
             "NOPERM this user has no permissions to run the '%s' command",
             lower);
    return msg;
  }
  return NULL;
}

static bool arg_is(const struct resp_arg *a, const char *word) {
  size_t n = strlen(word);
  return a->len == n && strncasecmp((const char *)a->ptr, word, n) == 0;
}

const char *rt_auth_login(struct rt_stream *c, const struct resp_arg *user,
                          const struct resp_arg *password) {
  const struct rt_config *cfg = &c->rt->cfg;
  if (user == NULL || arg_is(user, "default")) {
    if (cfg->requirepass_bytes == 0) {
      /* The default user has no password: the one-argument form is a
       * mistake worth saying, the two-argument one is accepted (Redis's
       * `nopass` takes any password). */
      if (user == NULL)
        return ERR_NO_PASSWORD;
      c->user = RT_USER_DEFAULT;
      return NULL;
    }
    if (!rt_password_equal(cfg->requirepass, cfg->requirepass_bytes,
                           password->ptr, password->len))
      return ERR_WRONGPASS;
    c->user = RT_USER_DEFAULT;
    return NULL;
  }
  /* Without admin-pass there is no admin user: its name is as wrong as
   * any other unknown user's, and Redis does not say which part was. */
  if (arg_is(user, "admin") && cfg->admin_pass_bytes > 0 &&
      rt_password_equal(cfg->admin_pass, cfg->admin_pass_bytes, password->ptr,
                        password->len)) {
    c->user = RT_USER_ADMIN;
    return NULL;
  }
  return ERR_WRONGPASS;
}

void rt_exec_auth(struct rt_stream *c, uint32_t argc,
                  const struct resp_arg *argv, struct resp_buf *b) {
  if (argc > 3) {
    resp_write_error(b, "ERR syntax error");
    return;
  }
  const char *err =
      rt_auth_login(c, argc == 3 ? &argv[1] : NULL, &argv[argc - 1]);
  if (err != NULL)
    resp_write_error(b, err);
  else
    resp_write_simple(b, "OK");
}

uint32_t rt_auth_write_link_login(const struct rt *rt, struct resp_buf *b) {
  const struct rt_config *cfg = &rt->cfg;
  struct resp_arg argv[3] = {{(const uint8_t *)"AUTH", 4}};
  if (cfg->admin_pass_bytes > 0) {
    /* The link carries whatever this node's clients may run, admin
     * commands included (this node checked each client). */
    argv[1] = (struct resp_arg){(const uint8_t *)"admin", 5};
    argv[2] = (struct resp_arg){cfg->admin_pass, cfg->admin_pass_bytes};
  } else if (cfg->requirepass_bytes > 0) {
    argv[1] = (struct resp_arg){(const uint8_t *)"default", 7};
    argv[2] = (struct resp_arg){cfg->requirepass, cfg->requirepass_bytes};
  } else {
    return 0;
  }
  rt_write_command(b, 3, argv);
  return 1;
}
