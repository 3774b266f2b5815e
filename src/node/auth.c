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
 * With a cluster secret, a link also proves that it knows it, since a
 * link is let off every client's output limits and takes the slots kept
 * for nodes: SABHA.FORWARDED alone is answered with a challenge, fresh
 * and unpredictable (a keyed hash of a counter under a random key), and
 * only SABHA.FORWARDED <node-id> <proof> marks the link, where
 *
 *   proof = BLAKE2b-256(key = link_key, "sabha-forward-proof-v1" |
 *                       u32le node-id | u32le this node's id | challenge)
 *   link_key = BLAKE2b-256("sabha-forward-key-v1" | secret)
 *
 * in lowercase hex. Each challenge takes one answer: a wrong proof is
 * refused, counted, and closes the connection. The proof says who may
 * start a link, not who writes its later bytes: on a network where a
 * connection can be taken over, TLS protects those.
 *
 * Passwords are compared in constant time (rt_password_equal), and so are
 * proofs (sodium_memcmp): a compare that stops at the first wrong byte
 * tells a patient attacker how much of a guess was right. */
#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/endian.h"
#include "node/runtime_internal.h"

#define LINK_KEY_LABEL "sabha-forward-key-v1"
#define LINK_PROOF_LABEL "sabha-forward-proof-v1"
#define CHALLENGE_WORD "CHALLENGE "
#define LINK_HEX_BYTES (2u * RT_LINK_KEY_BYTES)
#define ERR_LINK_PROOF                                                         \
  "NOPERM wrong proof of the cluster secret: not taken for a forwarding "      \
  "link (do the nodes share the secret?)"
#define ERR_LINK_NO_CHALLENGE                                                  \
  "NOPERM no challenge to answer: say SABHA.FORWARDED first"

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

/* ---- forwarding links and the cluster secret ----------------------------- */

_Static_assert(RT_LINK_KEY_BYTES >= crypto_generichash_BYTES_MIN &&
                   RT_LINK_KEY_BYTES <= crypto_generichash_BYTES_MAX &&
                   RT_LINK_KEY_BYTES >= crypto_generichash_KEYBYTES_MIN &&
                   RT_LINK_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX,
               "the link keys and proofs are BLAKE2b keys and digests");

void rt_link_key_derive(const uint8_t *secret, size_t secret_bytes,
                        uint8_t key[RT_LINK_KEY_BYTES]) {
  assert(secret != NULL && secret_bytes > 0);
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, RT_LINK_KEY_BYTES);
  crypto_generichash_update(&st, (const uint8_t *)LINK_KEY_LABEL,
                            sizeof LINK_KEY_LABEL - 1);
  crypto_generichash_update(&st, secret, secret_bytes);
  crypto_generichash_final(&st, key, RT_LINK_KEY_BYTES);
}

/* The proof node `from` gives node `to` for `challenge`: bound to both,
 * so that it opens no link but from..to, and to the challenge, so that
 * it opens no other connection. */
static void link_proof(const uint8_t *key, uint32_t from, uint32_t to,
                       const uint8_t *challenge,
                       uint8_t proof[RT_LINK_KEY_BYTES]) {
  uint8_t ids[8];
  le_put_u32(ids, from);
  le_put_u32(ids + 4, to);
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, RT_LINK_KEY_BYTES, RT_LINK_KEY_BYTES);
  crypto_generichash_update(&st, (const uint8_t *)LINK_PROOF_LABEL,
                            sizeof LINK_PROOF_LABEL - 1);
  crypto_generichash_update(&st, ids, sizeof ids);
  crypto_generichash_update(&st, challenge, RT_LINK_KEY_BYTES);
  crypto_generichash_final(&st, proof, RT_LINK_KEY_BYTES);
}

void rt_auth_write_link_proof(const struct rt *rt, uint32_t to,
                              const uint8_t *challenge, struct resp_buf *b) {
  assert(rt->cfg.link_key_set);
  uint8_t proof[RT_LINK_KEY_BYTES];
  link_proof(rt->cfg.link_key, rt->cfg.engine.id, to, challenge, proof);
  char id[16], hex[LINK_HEX_BYTES + 1];
  int id_len = snprintf(id, sizeof id, "%u", rt->cfg.engine.id);
  sodium_bin2hex(hex, sizeof hex, proof, sizeof proof);
  const struct resp_arg argv[3] = {
      {(const uint8_t *)"SABHA.FORWARDED", 15},
      {(const uint8_t *)id, (size_t)id_len},
      {(const uint8_t *)hex, LINK_HEX_BYTES},
  };
  rt_write_command(b, 3, argv);
}

/* `hex`, exactly LINK_HEX_BYTES hex digits, into `bin`. */
static bool link_hex(const uint8_t *hex, size_t len,
                     uint8_t bin[RT_LINK_KEY_BYTES]) {
  size_t n = 0;
  return len == LINK_HEX_BYTES &&
         sodium_hex2bin(bin, RT_LINK_KEY_BYTES, (const char *)hex, len, NULL,
                        &n, NULL) == 0 &&
         n == RT_LINK_KEY_BYTES;
}

bool rt_auth_parse_challenge(const uint8_t *reply, size_t len,
                             uint8_t challenge[RT_LINK_KEY_BYTES]) {
  size_t word = sizeof CHALLENGE_WORD - 1;
  return len == 1 + word + LINK_HEX_BYTES + 2 && reply[0] == '+' &&
         memcmp(reply + 1, CHALLENGE_WORD, word) == 0 &&
         link_hex(reply + 1 + word, LINK_HEX_BYTES, challenge);
}

/* A node id as SABHA.FORWARDED names it: 1..SABHA_NODES_MAX, in decimal. */
static bool link_node_id(const struct resp_arg *a, uint32_t *id) {
  if (a->len == 0 || a->len > 2)
    return false;
  uint32_t v = 0;
  for (size_t i = 0; i < a->len; i++) {
    if (a->ptr[i] < '0' || a->ptr[i] > '9')
      return false;
    v = v * 10 + (uint32_t)(a->ptr[i] - '0');
  }
  *id = v;
  return v >= 1 && v <= SABHA_NODES_MAX;
}

static void link_refused(struct rt_stream *c, const char *why) {
  c->rt->m.link_proofs_refused++;
  rt_log_client(c->rt,
                "client %" PRIu64
                " (%s) said SABHA.FORWARDED but was not taken for "
                "a forwarding link: %s",
                c->id, c->name, why);
}

void rt_auth_link_unproved(struct rt_stream *c) {
  assert(c->link_challenged);
  c->link_challenged = false;
  link_refused(c, "it sent another command instead of its proof");
}

static void mark_link(struct rt_stream *c, struct resp_buf *b) {
  c->forwarded_link = true;
  /* A link relays replies to many clients, each within its own limits
   * on the follower: only the bound on one reply applies here. */
  c->out.len_max = c->wbuf.len_max = RT_OUT_BYTES_MAX;
  resp_write_simple(b, "OK");
}

void rt_exec_forwarded(struct rt_stream *c, uint32_t argc,
                       const struct resp_arg *argv, struct resp_buf *b) {
  struct rt *rt = c->rt;
  if (argc != 1 && argc != 3) {
    resp_write_error(b, "ERR wrong number of arguments for "
                        "'sabha.forwarded' command");
    return;
  }
  if (!rt->cfg.link_key_set) {
    if (argc == 3)
      resp_write_error(b, "ERR this node has no cluster secret: "
                          "SABHA.FORWARDED takes no proof");
    else
      mark_link(c, b);
    return;
  }
  if (argc == 1) {
    /* A counter under a random key: fresh for every connection and
     * every try, and nothing an outsider can compute in advance. */
    uint8_t count[12];
    le_put_u64(count, ++rt->link_challenges);
    le_put_u32(count + 8, rt->cfg.group);
    crypto_generichash(c->link_challenge, RT_LINK_KEY_BYTES, count,
                       sizeof count, rt->cfg.link_challenge_key,
                       RT_LINK_KEY_BYTES);
    c->link_challenged = true;
    char line[sizeof CHALLENGE_WORD + LINK_HEX_BYTES];
    memcpy(line, CHALLENGE_WORD, sizeof CHALLENGE_WORD - 1);
    sodium_bin2hex(line + sizeof CHALLENGE_WORD - 1, LINK_HEX_BYTES + 1,
                   c->link_challenge, RT_LINK_KEY_BYTES);
    resp_write_simple(b, line);
    return;
  }
  /* One answer per challenge, right or wrong: a connection gets no
   * second guess, and leaves (a link that cannot prove itself is
   * misconfigured; anything else has no business here). */
  bool challenged = c->link_challenged;
  c->link_challenged = false;
  c->quit_after = true;
  if (!challenged) {
    link_refused(c, "a proof with no challenge to answer");
    resp_write_error(b, ERR_LINK_NO_CHALLENGE);
    return;
  }
  uint32_t from = 0;
  bool id_ok = link_node_id(&argv[1], &from);
  uint8_t proof[RT_LINK_KEY_BYTES], want[RT_LINK_KEY_BYTES];
  link_proof(rt->cfg.link_key, id_ok ? from : 0, rt->cfg.engine.id,
             c->link_challenge, want);
  if (!id_ok || !link_hex(argv[2].ptr, argv[2].len, proof) ||
      sodium_memcmp(proof, want, RT_LINK_KEY_BYTES) != 0) {
    link_refused(c, "a wrong proof of the cluster secret");
    resp_write_error(b, ERR_LINK_PROOF);
    return;
  }
  c->quit_after = false;
  mark_link(c, b);
}
