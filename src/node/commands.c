/* The commands a node answers: the table (names, arities, kinds), checks
 * of their arguments, how each is encoded for the log, how reads and local
 * commands are answered, and INFO, COMMAND, CONFIG and CLIENT.
 *
 * Commands fall into four kinds (struct rt_command.kind):
 *   LOCAL   answered by this node at once from what it knows (PING, INFO,
 *           COMMAND, CONFIG GET, SABHA.STATUS, ...);
 *   READ    GET, MGET, EXISTS, DBSIZE, PTTL, TTL: linearizable by default
 *           (a ReadIndex on the leader), or served from this node's own
 *           store after `SABHA.STALE on` or READONLY;
 *   WRITE   SET, DEL, INCR..., MSET, CAS: encoded as a kvstore command with
 *           the stream's session and next sequence number, proposed on the
 *           leader, answered when applied;
 *   LEADER  SABHA.LEADER and SABHA.MEMBER: run on the leader.
 * The applications' commands (LEDGER.*, SEATS.*, LOCK.*, FENCED.*, ORDER.*,
 * sm/app.h) are READ or WRITE rows built at start-up from app_commands()
 * (struct rt_app_command), so the app's table stays the only list of them.
 * Arguments are checked before a command goes anywhere, so a syntax error
 * never costs a round trip through the log.
 *
 * Time in reads. Expiry (SET ... PX, PTTL, LOCK.GET) is judged by the log's
 * clock alone, the highest stamp applied, which every replica shares at the
 * same index; never by this node's wall clock, which would let a key vanish
 * on one leader and come back on the next (runtime.c proposes clock entries
 * so that the log's clock moves without writes). */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/decimal.h"
#include "node/runtime_internal.h"

#define SABHA_SERVER_VERSION "0.1.0"
#define REDIS_COMPAT_VERSION "7.0.0"

/* ---- the command table --------------------------------------------------- */

enum cmd_kind { CK_LOCAL, CK_READ, CK_WRITE, CK_LEADER };

enum cmd_id {
  C_PING,
  C_ECHO,
  C_QUIT,
  C_SELECT,
  C_CLIENT,
  C_CONFIG,
  C_INFO,
  C_COMMAND,
  C_HELLO,
  C_AUTH,
  C_TIME,
  C_READONLY,
  C_READWRITE,
  C_SABHA_STALE,
  C_SABHA_STATUS,
  C_SABHA_FORWARDED,
  C_GET,
  C_MGET,
  C_EXISTS,
  C_DBSIZE,
  C_PTTL,
  C_TTL,
  C_SET,
  C_DEL,
  C_INCR,
  C_DECR,
  C_INCRBY,
  C_DECRBY,
  C_MSET,
  C_CAS,
  C_SABHA_LEADER,
  C_STRLEN,
  C_TYPE,
  C_SCAN,
  C_KEYS,
  C_WATCH,
  C_SETNX,
  C_GETSET,
  C_GETDEL,
  C_APPEND,
  C_EXPIRE,
  C_PEXPIRE,
  C_EXPIREAT,
  C_PEXPIREAT,
  C_PERSIST,
  C_LEASE_GRANT,
  C_LEASE_KEEPALIVE,
  C_LEASE_REVOKE,
  C_TXN,
  C_MULTI,
  C_EXEC,
  C_DISCARD,
  C_UNWATCH,
  C_SABHA_WATCH,
  C_SABHA_RANGE,
  C_SABHA_MEMBERS,
  C_SABHA_MEMBER,
  C_APP_READ,  /* an app read: app_read() */
  C_APP_WRITE, /* an app write: app_encode(), proposed */
};

struct rt_command {
  const char *name;
  int arity; /* Redis style: n exactly, -n at least n (the name counts) */
  enum cmd_kind kind;
  enum cmd_id id;
  const char *flags; /* for COMMAND: space-separated */
  int first_key, last_key, step;
  const char *summary;
};

static const struct rt_command COMMANDS[] = {
    {"PING", -1, CK_LOCAL, C_PING, "fast stale", 0, 0, 0,
     "Returns PONG, or the argument"},
    {"ECHO", 2, CK_LOCAL, C_ECHO, "fast stale", 0, 0, 0,
     "Returns the argument"},
    {"QUIT", -1, CK_LOCAL, C_QUIT, "fast stale", 0, 0, 0,
     "Closes the connection"},
    {"SELECT", 2, CK_LOCAL, C_SELECT, "fast stale", 0, 0, 0,
     "Selects database 0, the only one"},
    {"CLIENT", -2, CK_LOCAL, C_CLIENT, "stale", 0, 0, 0,
     "SETNAME, GETNAME, ID, INFO, LIST, SETINFO"},
    {"CONFIG", -2, CK_LOCAL, C_CONFIG, "admin stale", 0, 0, 0,
     "CONFIG GET of a few Redis parameters; CONFIG RESETSTAT"},
    {"INFO", -1, CK_LOCAL, C_INFO, "stale", 0, 0, 0,
     "Server, replication, sabha, stats and keyspace information"},
    {"COMMAND", -1, CK_LOCAL, C_COMMAND, "stale", 0, 0, 0,
     "Describes the commands (COMMAND, COUNT, INFO, DOCS, LIST)"},
    {"HELLO", -1, CK_LOCAL, C_HELLO, "fast stale no_auth", 0, 0, 0,
     "Handshake, with AUTH user password and SETNAME; only RESP2 is spoken"},
    {"AUTH", -2, CK_LOCAL, C_AUTH, "fast stale no_auth", 0, 0, 0,
     "AUTH password, or AUTH default|admin password"},
    {"TIME", 1, CK_LOCAL, C_TIME, "fast stale", 0, 0, 0,
     "This node's wall clock"},
    {"READONLY", 1, CK_LOCAL, C_READONLY, "fast stale", 0, 0, 0,
     "Serve this connection's reads from this node (may be stale)"},
    {"READWRITE", 1, CK_LOCAL, C_READWRITE, "fast stale", 0, 0, 0,
     "Linearizable reads again (the default)"},
    {"SABHA.STALE", 2, CK_LOCAL, C_SABHA_STALE, "fast stale", 0, 0, 0,
     "on: reads from this node's store; off: linearizable reads"},
    {"SABHA.STATUS", 1, CK_LOCAL, C_SABHA_STATUS, "stale", 0, 0, 0,
     "This node's role, term, leader, indexes and log"},
    {"SABHA.FORWARDED", -1, CK_LOCAL, C_SABHA_FORWARDED, "fast stale", 0, 0, 0,
     "Marks a node's forwarding link (internal)"},
    {"GET", 2, CK_READ, C_GET, "readonly fast", 1, 1, 1,
     "Returns the value of a key"},
    {"MGET", -2, CK_READ, C_MGET, "readonly fast", 1, -1, 1,
     "Returns the values of keys"},
    {"EXISTS", -2, CK_READ, C_EXISTS, "readonly fast", 1, -1, 1,
     "Counts the keys that exist"},
    {"DBSIZE", 1, CK_READ, C_DBSIZE, "readonly fast", 0, 0, 0,
     "Returns the number of keys"},
    {"PTTL", 2, CK_READ, C_PTTL, "readonly fast", 1, 1, 1,
     "Milliseconds a key has left"},
    {"TTL", 2, CK_READ, C_TTL, "readonly fast", 1, 1, 1,
     "Seconds a key has left"},
    {"SET", -3, CK_WRITE, C_SET, "write denyoom", 1, 1, 1,
     "Sets a key: [NX|XX] [PX ms|EX s] [KEEPTTL]"},
    {"DEL", -2, CK_WRITE, C_DEL, "write", 1, -1, 1, "Deletes keys"},
    {"INCR", 2, CK_WRITE, C_INCR, "write denyoom fast", 1, 1, 1,
     "Adds 1 to an integer"},
    {"DECR", 2, CK_WRITE, C_DECR, "write denyoom fast", 1, 1, 1,
     "Subtracts 1 from an integer"},
    {"INCRBY", 3, CK_WRITE, C_INCRBY, "write denyoom fast", 1, 1, 1,
     "Adds to an integer"},
    {"DECRBY", 3, CK_WRITE, C_DECRBY, "write denyoom fast", 1, 1, 1,
     "Subtracts from an integer"},
    {"MSET", -3, CK_WRITE, C_MSET, "write denyoom", 1, -1, 2,
     "Sets keys, all or none"},
    {"CAS", 4, CK_WRITE, C_CAS, "write denyoom", 1, 1, 1,
     "CAS key expected new: sets key to new if it holds expected; 1 or 0"},
    {"SABHA.LEADER", 2, CK_LEADER, C_SABHA_LEADER, "admin", 0, 0, 0,
     "Hands leadership to the node with the given id"},
    {"STRLEN", 2, CK_READ, C_STRLEN, "readonly fast", 1, 1, 1,
     "Length of a key's value"},
    {"TYPE", 2, CK_READ, C_TYPE, "readonly fast", 1, 1, 1,
     "The type of a key's value: string (the store's only type) or none"},
    {"SCAN", -2, CK_READ, C_SCAN, "readonly", 0, 0, 0,
     "SCAN cursor [MATCH pattern] [COUNT n]: keys in byte order"},
    {"KEYS", 2, CK_READ, C_KEYS, "readonly", 0, 0, 0,
     "Keys matching a pattern (bounded: use SCAN for many)"},
    {"WATCH", -2, CK_READ, C_WATCH, "fast", 1, -1, 1,
     "Watches keys: EXEC fails if any changes before it"},
    {"SETNX", 3, CK_WRITE, C_SETNX, "write denyoom fast", 1, 1, 1,
     "Sets a key if it does not exist; 1 or 0"},
    {"GETSET", 3, CK_WRITE, C_GETSET, "write denyoom fast", 1, 1, 1,
     "Sets a key and returns its old value"},
    {"GETDEL", 2, CK_WRITE, C_GETDEL, "write fast", 1, 1, 1,
     "Returns a key's value and deletes it"},
    {"APPEND", 3, CK_WRITE, C_APPEND, "write denyoom fast", 1, 1, 1,
     "Appends to a value; returns the new length"},
    {"EXPIRE", -3, CK_WRITE, C_EXPIRE, "write fast", 1, 1, 1,
     "Expires a key in seconds (by the log's clock): [NX|XX] [GT|LT]"},
    {"PEXPIRE", -3, CK_WRITE, C_PEXPIRE, "write fast", 1, 1, 1,
     "Expires a key in milliseconds: [NX|XX] [GT|LT]"},
    {"EXPIREAT", -3, CK_WRITE, C_EXPIREAT, "write fast", 1, 1, 1,
     "Expires a key at a Unix time in seconds: [NX|XX] [GT|LT]"},
    {"PEXPIREAT", -3, CK_WRITE, C_PEXPIREAT, "write fast", 1, 1, 1,
     "Expires a key at a Unix time in milliseconds: [NX|XX] [GT|LT]"},
    {"PERSIST", 2, CK_WRITE, C_PERSIST, "write fast", 1, 1, 1,
     "Removes a key's expiry"},
    {"SABHA.LEASE.GRANT", 2, CK_WRITE, C_LEASE_GRANT, "write fast", 0, 0, 0,
     "SABHA.LEASE.GRANT ttl_ms: a lease id"},
    {"SABHA.LEASE.KEEPALIVE", 2, CK_WRITE, C_LEASE_KEEPALIVE, "write fast", 0,
     0, 0, "SABHA.LEASE.KEEPALIVE id: renews a lease; its ttl_ms"},
    {"SABHA.LEASE.REVOKE", 2, CK_WRITE, C_LEASE_REVOKE, "write", 0, 0, 0,
     "SABHA.LEASE.REVOKE id: deletes its keys; how many"},
    {"SABHA.TXN", -5, CK_WRITE, C_TXN, "write denyoom", 0, 0, 0,
     "A transaction as EXEC sends it (internal)"},
    {"MULTI", 1, CK_LOCAL, C_MULTI, "fast", 0, 0, 0, "Starts a transaction"},
    {"EXEC", 1, CK_LOCAL, C_EXEC, "", 0, 0, 0,
     "Applies the queued commands as one log entry"},
    {"DISCARD", 1, CK_LOCAL, C_DISCARD, "fast", 0, 0, 0,
     "Drops the queued commands"},
    {"UNWATCH", 1, CK_LOCAL, C_UNWATCH, "fast", 0, 0, 0,
     "Forgets the watched keys"},
    {"SABHA.RANGE", -2, CK_READ, C_SABHA_RANGE, "readonly", 0, 0, 0,
     "SABHA.RANGE prefix [limit]: revision, more, then key value revision"},
    {"SABHA.WATCH", -2, CK_LOCAL, C_SABHA_WATCH, "", 0, 0, 0,
     "SABHA.WATCH prefix [FROM revision] [BATCH ms]: a stream of changes"},
    {"SABHA.MEMBERS", 1, CK_LOCAL, C_SABHA_MEMBERS, "stale", 0, 0, 0,
     "Each member: id, address, role (voter or learner) and progress"},
    {"SABHA.MEMBER", -3, CK_LEADER, C_SABHA_MEMBER, "admin", 0, 0, 0,
     "ADD id address | PROMOTE id | REMOVE id: changes the membership"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* An app command's row: r->cmd points at `row`, whose id (C_APP_READ or
 * C_APP_WRITE) says that `app` is there. */
struct rt_app_command {
  struct rt_command row;
  const struct app_command *app;
};

static const struct app_command *app_of(const struct rt_command *cmd) {
  if (cmd->id != C_APP_READ && cmd->id != C_APP_WRITE)
    return NULL;
  return LIST_OF(cmd, const struct rt_app_command, row)->app;
}

/* Builds rt->app_cmds from the app's table, and the parser's scratch, once.
 * Returns 0 or SABHA_ENOMEM. */
int rt_commands_init(struct rt *rt) {
  rt->argv = malloc(resp_limits_default.args_max * sizeof *rt->argv);
  rt->inline_scratch = malloc(resp_limits_default.inline_bytes_max);
  if (rt->argv == NULL || rt->inline_scratch == NULL)
    return SABHA_ENOMEM;
  size_t count = 0;
  const struct app_command *t = app_commands(&count);
  rt->app_cmds = calloc(count, sizeof *rt->app_cmds);
  if (rt->app_cmds == NULL)
    return SABHA_ENOMEM;
  for (size_t i = 0; i < count; i++) {
    struct rt_app_command *a = &rt->app_cmds[i];
    int args = t[i].argc_min + 1; /* the name counts, as in Redis */
    a->app = &t[i];
    a->row.name = t[i].name;
    a->row.arity = t[i].argc_min == t[i].argc_max ? args : -args;
    a->row.kind = t[i].write ? CK_WRITE : CK_READ;
    a->row.id = t[i].write ? C_APP_WRITE : C_APP_READ;
    a->row.flags = t[i].write ? "write denyoom" : "readonly fast";
    a->row.summary = t[i].usage;
  }
  rt->n_app_cmds = count;
  return 0;
}

static size_t n_commands(const struct rt *rt) {
  return N_COMMANDS + rt->n_app_cmds;
}

/* The i-th command of COMMAND's listings: the native ones, then the apps'. */
static const struct rt_command *command_at(const struct rt *rt, size_t i) {
  return i < N_COMMANDS ? &COMMANDS[i] : &rt->app_cmds[i - N_COMMANDS].row;
}

/* A command's name in lower case, as Redis quotes it in errors. */
static size_t lower_name(const char *name, char *out, size_t size) {
  size_t k = 0;
  for (; name[k] != '\0' && k + 1 < size; k++)
    out[k] = (char)tolower((unsigned char)name[k]);
  out[k] = '\0';
  return k;
}

static bool arg_is(const struct resp_arg *a, const char *word) {
  size_t n = strlen(word);
  return a->len == n && strncasecmp((const char *)a->ptr, word, n) == 0;
}

static const struct rt_command *find_command(const struct rt *rt,
                                             const struct resp_arg *a) {
  for (size_t i = 0; i < n_commands(rt); i++)
    if (arg_is(a, command_at(rt, i)->name))
      return command_at(rt, i);
  return NULL;
}

static bool arity_ok(const struct rt_command *cmd, uint32_t argc) {
  const struct app_command *app = app_of(cmd);
  if (app != NULL)
    return argc - 1 >= app->argc_min && argc - 1 <= app->argc_max;
  return cmd->arity >= 0 ? argc == (uint32_t)cmd->arity
                         : argc >= (uint32_t)-cmd->arity;
}

/* Redis's integer rule (core/decimal.h): optional '-', digits, no leading
 * zeros or spaces, within int64. */
static bool parse_i64(const struct resp_arg *a, int64_t *out) {
  return dec_parse_i64(a->ptr, a->len, out) == DEC_OK;
}

static struct kvstore_slice slice(const struct resp_arg *a) {
  return (struct kvstore_slice){a->ptr, a->len};
}

/* SET's expiry options, as flags while parsing. */
#define SET_EX 1u
#define SET_PX 2u
#define SET_EXAT 4u
#define SET_PXAT 8u

/* SET's options, in Redis 7's order: every option first (an unknown one,
 * or one that clashes with another, is a syntax error; EX after EX is
 * not: the last one counts), then the expiry's number. Returns NULL or the
 * error to answer. */
static const char *set_options(uint32_t argc, const struct resp_arg *argv,
                               uint32_t *flags, int64_t *px_ms,
                               uint64_t *lease) {
  *flags = 0;
  *px_ms = 0;
  *lease = 0;
  static const char *const expiry_words[] = {"EX", "PX", "EXAT", "PXAT"};
  uint32_t expiry = 0; /* SET_EX ... SET_PXAT */
  const struct resp_arg *when = NULL;
  for (uint32_t i = 3; i < argc; i++) {
    const struct resp_arg *a = &argv[i];
    uint32_t kind = 0;
    for (uint32_t k = 0; k < 4; k++)
      if (arg_is(a, expiry_words[k]))
        kind = 1u << k;
    if (arg_is(a, "LEASE")) {
      int64_t id;
      if (*lease != 0 || i + 1 >= argc)
        return KVSTORE_ERR_SYNTAX;
      if (!parse_i64(&argv[i + 1], &id) || id <= 0)
        return "ERR the lease id must be a positive integer";
      *lease = (uint64_t)id;
      *flags |= KVSTORE_SET_LEASE;
      i++;
    } else if (arg_is(a, "NX") && !(*flags & KVSTORE_SET_XX)) {
      *flags |= KVSTORE_SET_NX;
    } else if (arg_is(a, "XX") && !(*flags & KVSTORE_SET_NX)) {
      *flags |= KVSTORE_SET_XX;
    } else if (arg_is(a, "KEEPTTL") && expiry == 0) {
      *flags |= KVSTORE_SET_KEEPTTL;
    } else if (kind != 0 && !(*flags & KVSTORE_SET_KEEPTTL) &&
               (expiry == 0 || expiry == kind) && i + 1 < argc) {
      expiry = kind;
      when = &argv[++i];
    } else if (arg_is(a, "GET")) {
      *flags |= KVSTORE_SET_GET; /* the old value, as GETSET answers */
    } else {
      return KVSTORE_ERR_SYNTAX;
    }
  }
  if ((*flags & KVSTORE_SET_LEASE) &&
      (expiry != 0 || (*flags & KVSTORE_SET_KEEPTTL)))
    return KVSTORE_ERR_SYNTAX;
  if (expiry == 0)
    return NULL;
  int64_t v;
  if (!parse_i64(when, &v))
    return KVSTORE_ERR_NOT_INTEGER;
  bool seconds = expiry == SET_EX || expiry == SET_EXAT;
  if (v <= 0 || (seconds && v > INT64_MAX / 1000))
    return KVSTORE_ERR_EXPIRE;
  *px_ms = seconds ? v * 1000 : v;
  *flags |=
      expiry == SET_EX || expiry == SET_PX ? KVSTORE_SET_PX : KVSTORE_SET_PXAT;
  return NULL;
}

/* Redis 7's answer to an EXPIRE option it does not know, naming it as
 * given: its line breaks made spaces, as Redis makes them, so that a
 * client cannot end the reply early and forge the next, and cut at
 * RT_OPTION_ECHO_BYTES_MAX bytes (or its first NUL), so that an 8 MiB
 * argument is not echoed whole. Written into msg. */
static const char *unsupported_option(const struct resp_arg *a, char *msg,
                                      size_t msg_size) {
  static const char prefix[] = "ERR Unsupported option ";
  assert(msg_size >= sizeof prefix + RT_OPTION_ECHO_BYTES_MAX);
  size_t n = sizeof prefix - 1;
  memcpy(msg, prefix, n);
  for (size_t i = 0; i < a->len && i < RT_OPTION_ECHO_BYTES_MAX; i++) {
    char ch = (char)a->ptr[i];
    if (ch == '\0')
      break;
    msg[n++] = ch == '\r' || ch == '\n' ? ' ' : ch;
  }
  msg[n] = '\0';
  return msg;
}

/* An error reply that names an argument as given, between `before` and
 * `after`: cut at 64 bytes (or its first NUL), and written by
 * resp_write_error, which makes line breaks spaces, so that a client
 * cannot end the reply early and have the rest read as a forged one. */
static void error_naming(struct resp_buf *b, const char *before,
                         const struct resp_arg *a, const char *after) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s%.*s%s", before,
           (int)(a->len > 64 ? 64 : a->len), (const char *)a->ptr, after);
  resp_write_error(b, msg);
}

/* Redis's words for a time the EXPIRE family cannot take, naming the
 * command as given (EXPIREAT's error says 'expireat'). Written into msg. */
static const char *expire_time_error(const struct rt_command *cmd, char *msg,
                                     size_t msg_size) {
  char lower[32];
  lower_name(cmd->name, lower, sizeof lower);
  snprintf(msg, msg_size, "ERR invalid expire time in '%s' command", lower);
  return msg;
}

/* The EXPIRE family's options, after the key and the time, as
 * KVSTORE_EXPIRE_* conditions. Repeating one is harmless, as in Redis;
 * the first one it does not know is named (in msg), and the combinations
 * Redis refuses are refused here with its words, and by the store again
 * when applying (kvstore.h), so that an entry from anywhere gets the same
 * answer on every replica. Returns NULL or the error to answer. */
static const char *expire_options(uint32_t argc, const struct resp_arg *argv,
                                  uint32_t *ifs, char *msg, size_t msg_size) {
  *ifs = 0;
  for (uint32_t i = 3; i < argc; i++) {
    if (arg_is(&argv[i], "NX"))
      *ifs |= KVSTORE_EXPIRE_NX;
    else if (arg_is(&argv[i], "XX"))
      *ifs |= KVSTORE_EXPIRE_XX;
    else if (arg_is(&argv[i], "GT"))
      *ifs |= KVSTORE_EXPIRE_GT;
    else if (arg_is(&argv[i], "LT"))
      *ifs |= KVSTORE_EXPIRE_LT;
    else
      return unsupported_option(&argv[i], msg, msg_size);
  }
  if ((*ifs & KVSTORE_EXPIRE_NX) && (*ifs & ~KVSTORE_EXPIRE_NX))
    return KVSTORE_ERR_EXPIRE_NX;
  if ((*ifs & KVSTORE_EXPIRE_GT) && (*ifs & KVSTORE_EXPIRE_LT))
    return KVSTORE_ERR_EXPIRE_GT_LT;
  return NULL;
}

/* The commands a transaction may hold: the store's own, which its TXN
 * command can carry (kvstore.h). */
static bool txn_allows(const struct rt_command *cmd, uint32_t argc) {
  switch (cmd->id) {
  case C_SET:
  case C_SETNX:
  case C_GETSET:
  case C_GETDEL:
  case C_APPEND:
  case C_DEL:
  case C_INCR:
  case C_DECR:
  case C_INCRBY:
  case C_DECRBY:
  case C_MSET:
  case C_CAS:
  case C_EXPIRE:
  case C_PEXPIRE:
  case C_EXPIREAT:
  case C_PEXPIREAT:
  case C_PERSIST:
  case C_GET:
  case C_STRLEN:
  case C_TTL:
  case C_PTTL:
    return true;
  case C_EXISTS:
    return argc == 2;
  default:
    return false;
  }
}

/* The transport dials numeric addresses only, as --peers takes them: a
 * name in a member's address would be committed, and never dialled. */
static bool numeric_host(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

static const char *validate(const struct rt_command *cmd, uint32_t argc,
                            const struct resp_arg *argv, char *msg,
                            size_t msg_size);

/* A TXN's arguments: revision, n_watch, the keys, then each command as
 * its argc and its arguments. Calls `each` (when not NULL) on every
 * command. Returns NULL or the error (static, or written into msg). */
typedef void (*txn_each_fn)(void *ctx, const struct rt_command *cmd,
                            uint32_t argc, const struct resp_arg *argv);
static const struct rt_command *find_command(const struct rt *rt,
                                             const struct resp_arg *a);

static const char *txn_walk(const struct rt *rt, uint32_t argc,
                            const struct resp_arg *argv, uint64_t *watch_rev,
                            uint32_t *n_watch, uint32_t *n_cmds,
                            txn_each_fn each, void *ctx, char *msg,
                            size_t msg_size) {
  int64_t rev, nw;
  if (!parse_i64(&argv[1], &rev) || rev < 0 || !parse_i64(&argv[2], &nw) ||
      nw < 0 || (uint64_t)nw > argc - 3)
    return "ERR SABHA.TXN: malformed";
  *watch_rev = (uint64_t)rev;
  *n_watch = (uint32_t)nw;
  *n_cmds = 0;
  uint32_t i = 3 + (uint32_t)nw;
  while (i < argc) {
    int64_t n;
    if (!parse_i64(&argv[i], &n) || n < 1 || (uint64_t)n > argc - i - 1)
      return "ERR SABHA.TXN: malformed";
    const struct resp_arg *sub = &argv[i + 1];
    const struct rt_command *cmd = find_command(rt, sub);
    if (cmd == NULL || !txn_allows(cmd, (uint32_t)n))
      return "ERR SABHA.TXN: a command a transaction cannot hold";
    bool arity = cmd->arity >= 0 ? n == cmd->arity : n >= -cmd->arity;
    if (!arity)
      return "ERR SABHA.TXN: wrong number of arguments";
    const char *bad = validate(cmd, (uint32_t)n, sub, msg, msg_size);
    if (bad != NULL)
      return bad;
    if (each != NULL)
      each(ctx, cmd, (uint32_t)n, sub);
    (*n_cmds)++;
    i += 1 + (uint32_t)n;
  }
  if (*n_cmds == 0)
    return "ERR SABHA.TXN: no commands";
  return NULL;
}

/* Checks a command's arguments before it goes anywhere. NULL: fine; else
 * the error, static or written into msg. */
static const char *validate(const struct rt_command *cmd, uint32_t argc,
                            const struct resp_arg *argv, char *msg,
                            size_t msg_size) {
  int64_t v;
  switch (cmd->id) {
  case C_SET: {
    uint32_t flags;
    int64_t px;
    uint64_t lease;
    return set_options(argc, argv, &flags, &px, &lease);
  }
  case C_EXPIRE:
  case C_EXPIREAT:
  case C_PEXPIRE:
  case C_PEXPIREAT: {
    /* Options first, then the time, in Redis's order of complaints. */
    uint32_t ifs;
    const char *bad = expire_options(argc, argv, &ifs, msg, msg_size);
    if (bad != NULL)
      return bad;
    if (!parse_i64(&argv[2], &v))
      return KVSTORE_ERR_NOT_INTEGER;
    bool seconds = cmd->id == C_EXPIRE || cmd->id == C_EXPIREAT;
    if (seconds && (v > INT64_MAX / 1000 || v < INT64_MIN / 1000))
      return expire_time_error(cmd, msg, msg_size);
    return NULL;
  }
  case C_LEASE_GRANT:
    if (!parse_i64(&argv[1], &v) || v <= 0)
      return "ERR the ttl must be a positive number of milliseconds";
    return NULL;
  case C_LEASE_KEEPALIVE:
  case C_LEASE_REVOKE:
    if (!parse_i64(&argv[1], &v) || v <= 0)
      return "ERR the lease id must be a positive integer";
    return NULL;
  case C_SCAN:
  case C_KEYS:
  case C_SABHA_WATCH:
    return NULL; /* their readers check the options */
  case C_INCRBY:
  case C_DECRBY:
    if (!parse_i64(&argv[2], &v))
      return KVSTORE_ERR_NOT_INTEGER;
    if (cmd->id == C_DECRBY && v == INT64_MIN)
      return KVSTORE_ERR_DECR_OVERFLOW;
    return NULL;
  case C_MSET:
    if ((argc - 1) % 2 != 0)
      return "ERR wrong number of arguments for 'mset' command";
    return NULL;
  case C_SABHA_LEADER:
    if (!parse_i64(&argv[1], &v) || v <= 0 || v > SABHA_NODES_MAX)
      return "ERR SABHA.LEADER needs a node id";
    return NULL;
  case C_SABHA_MEMBER: {
    bool add = arg_is(&argv[1], "add");
    if (!add && !arg_is(&argv[1], "promote") && !arg_is(&argv[1], "remove"))
      return "ERR SABHA.MEMBER takes ADD, PROMOTE or REMOVE";
    if (argc != (add ? 4u : 3u))
      return "ERR wrong number of arguments for 'sabha.member' command";
    if (!parse_i64(&argv[2], &v) || v <= 0 || v > SABHA_NODES_MAX)
      return "ERR SABHA.MEMBER needs a node id (1..16)";
    if (!add)
      return NULL;
    /* An address no member can parse would be committed for good, and
     * the new node never dialled nor let in (port_membership_changed). */
    char addr[SABHA_ADDR_BYTES_MAX + 1];
    struct rt_addr peer, client;
    bool fits = argv[3].len <= SABHA_ADDR_BYTES_MAX &&
                memchr(argv[3].ptr, '\0', argv[3].len) == NULL;
    if (fits) {
      memcpy(addr, argv[3].ptr, argv[3].len);
      addr[argv[3].len] = '\0';
    }
    if (!fits || !rt_member_addr_parse(addr, &peer, &client) ||
        !numeric_host(peer.host) || !numeric_host(client.host))
      return "ERR the address must be peer=HOST:PORT,client=HOST:PORT, at "
             "most 64 bytes, with numeric IPv4 or IPv6 hosts";
    return NULL;
  }
  default:
    return NULL;
  }
}

/* An app command's arguments must fit its encoding (APP_ARG_BYTES_MAX
 * each); their content is the machine's to judge when it applies them.
 * Returns false with the error in msg. */
static bool app_args_fit(const struct rt_command *cmd, uint32_t argc,
                         const struct resp_arg *argv, char *msg, size_t size) {
  for (uint32_t i = 1; i < argc; i++) {
    if (argv[i].len <= APP_ARG_BYTES_MAX)
      continue;
    char lower[32];
    lower_name(cmd->name, lower, sizeof lower);
    snprintf(msg, size,
             "ERR argument %u of '%s' is %zu bytes long; at most %u are "
             "allowed",
             i, lower, argv[i].len, APP_ARG_BYTES_MAX);
    return false;
  }
  return true;
}

/* One reply that is not an array. */
static void write_kv_scalar(struct resp_buf *b,
                            const struct kvstore_result *res) {
  switch (res->kind) {
  case KVSTORE_REPLY_OK:
    resp_write_simple(b, "OK");
    return;
  case KVSTORE_REPLY_INT:
    resp_write_int(b, res->integer);
    return;
  case KVSTORE_REPLY_BULK:
    resp_write_bulk(b, res->bulk, res->bulk_len);
    return;
  case KVSTORE_REPLY_NULL:
    resp_write_null(b);
    return;
  case KVSTORE_REPLY_ERROR:
    resp_write_error(b, res->error != NULL ? res->error : "ERR failed");
    return;
  case KVSTORE_REPLY_NULL_ARRAY:
    resp_write_null_array(b);
    return;
  case KVSTORE_REPLY_ARRAY:
    break;
  }
  resp_write_error(b, "ERR unknown reply");
}

void rt_write_kv_result(struct resp_buf *b, const struct kvstore_result *res) {
  if (res->kind != KVSTORE_REPLY_ARRAY) {
    write_kv_scalar(b, res);
    return;
  }
  /* A TXN's replies: one level deep, never an array inside. */
  resp_write_array(b, res->n_items);
  for (size_t i = 0; i < res->n_items; i++)
    write_kv_scalar(b, &res->items[i]);
}

/* ---- reads -----------------------------------------------------------------
 */

/* b, lowercased when the match ignores case (only ASCII letters move). */
static uint8_t glob_fold(uint8_t b, bool nocase) {
  return nocase && b >= 'A' && b <= 'Z' ? (uint8_t)(b - 'A' + 'a') : b;
}

/* One element of a glob pattern at p[*i] (not '*') against byte c, as
 * Redis matches: '?', '[...]' with '^', ranges and '\\' escapes, '\\x',
 * or a byte itself; with nocase, letters of either case are one. Moves *i
 * past the element. */
static bool glob_one(const uint8_t *p, size_t n, size_t *i, uint8_t c,
                     bool nocase) {
  size_t k = *i;
  c = glob_fold(c, nocase);
  if (p[k] == '?') {
    *i = k + 1;
    return true;
  }
  if (p[k] == '\\' && k + 1 < n) {
    *i = k + 2;
    return glob_fold(p[k + 1], nocase) == c;
  }
  if (p[k] != '[') {
    *i = k + 1;
    return glob_fold(p[k], nocase) == c;
  }
  k++;
  bool negate = k < n && p[k] == '^', hit = false;
  if (negate)
    k++;
  while (k < n && p[k] != ']') {
    if (p[k] == '\\' && k + 1 < n) {
      hit |= glob_fold(p[k + 1], nocase) == c;
      k += 2;
    } else if (k + 2 < n && p[k + 1] == '-') {
      uint8_t lo = glob_fold(p[k], nocase), hi = glob_fold(p[k + 2], nocase);
      if (lo > hi) {
        uint8_t t = lo;
        lo = hi;
        hi = t;
      }
      hit |= c >= lo && c <= hi;
      k += 3;
    } else {
      hit |= glob_fold(p[k], nocase) == c;
      k++;
    }
  }
  *i = k < n ? k + 1 : k;
  return negate ? !hit : hit;
}

/* Redis's glob matching, without recursion: on a mismatch, go back to the
 * last '*' and let it take one byte more. O(len(s) * len(p)) at worst,
 * which RT_PATTERN_BYTES_MAX bounds. */
static bool glob_match(const uint8_t *p, size_t pn, const uint8_t *s,
                       size_t sn, bool nocase) {
  size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
  while (si < sn) {
    if (pi < pn && p[pi] == '*') {
      while (pi < pn && p[pi] == '*')
        pi++;
      if (pi == pn)
        return true;
      star_p = pi;
      star_s = si;
      continue;
    }
    size_t next = pi;
    if (pi < pn && glob_one(p, pn, &next, s[si], nocase)) {
      pi = next;
      si++;
      continue;
    }
    if (star_p == SIZE_MAX)
      return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < pn && p[pi] == '*')
    pi++;
  return pi == pn;
}

bool rt_glob_match(const uint8_t *p, size_t pn, const uint8_t *s, size_t sn) {
  return glob_match(p, pn, s, sn, false);
}

/* The bytes every key a pattern matches starts with. */
size_t rt_glob_prefix(const uint8_t *p, size_t n) {
  size_t k = 0;
  while (k < n && p[k] != '*' && p[k] != '?' && p[k] != '[' && p[k] != '\\')
    k++;
  return k;
}

/* SCAN's cursor: "0" at the start and the end; else "1" and the key where
 * the next call starts, three decimal digits a byte, so that the cursor
 * is a number (clients parse it as one) and names a place in the keys'
 * order, not in memory: it stays valid whatever changes, on any node. */
static bool cursor_decode(const struct resp_arg *a, uint8_t *key,
                          size_t *key_len) {
  if (a->len == 1 && a->ptr[0] == '0') {
    *key_len = 0;
    return true;
  }
  if (a->len < 1 || a->ptr[0] != '1' || (a->len - 1) % 3 != 0 ||
      (a->len - 1) / 3 > RT_CURSOR_KEY_BYTES_MAX)
    return false;
  size_t n = (a->len - 1) / 3;
  for (size_t i = 0; i < n; i++) {
    unsigned v = 0;
    for (size_t d = 0; d < 3; d++) {
      uint8_t ch = a->ptr[1 + 3 * i + d];
      if (ch < '0' || ch > '9')
        return false;
      v = v * 10 + (unsigned)(ch - '0');
    }
    if (v > 255)
      return false;
    key[i] = (uint8_t)v;
  }
  *key_len = n;
  return true;
}

static void cursor_write(struct resp_buf *b, struct kvstore_slice key) {
  resp_buf_printf(b, "$%zu\r\n1", 1 + 3 * key.len);
  for (size_t i = 0; i < key.len; i++)
    resp_buf_printf(b, "%03u", (unsigned)key.ptr[i]);
  resp_buf_append(b, "\r\n", 2);
}

struct scan_ctx {
  const uint8_t *pattern;
  size_t pattern_len;
  size_t prefix_len;
  struct resp_buf keys; /* the matches, as bulk strings */
  uint64_t n;
  uint64_t match_work; /* key bytes times pattern bytes, so far */
  bool past_prefix;    /* the walk left the keys the prefix covers */
  bool worn_out;       /* stopped at RT_SCAN_MATCH_WORK_MAX */
};

static bool scan_visit(void *ctx, const struct kvstore_item *it) {
  struct scan_ctx *s = ctx;
  /* Without MATCH the pattern is NULL: memcmp must not see it, even for
   * no bytes, or the compiler may drop the test for NULL below. */
  if (s->prefix_len > 0 &&
      (it->key.len < s->prefix_len ||
       memcmp(it->key.ptr, s->pattern, s->prefix_len) != 0)) {
    s->past_prefix = true;
    return false;
  }
  bool hit = true;
  if (s->pattern != NULL) {
    hit = rt_glob_match(s->pattern, s->pattern_len, it->key.ptr, it->key.len);
    s->match_work += (uint64_t)it->key.len * s->pattern_len;
  }
  if (hit) {
    resp_write_bulk(&s->keys, it->key.ptr, it->key.len);
    s->n++;
  }
  /* Stop after this key: the walk's next key is then the cursor's. */
  s->worn_out = s->match_work >= RT_SCAN_MATCH_WORK_MAX;
  return !s->worn_out;
}

static void exec_scan_from(struct rt *rt, const struct rt_command *cmd,
                           uint32_t argc, const struct resp_arg *argv,
                           uint64_t now, struct resp_buf *b, uint8_t *start,
                           size_t *start_len_out);
static void exec_range(struct rt *rt, uint32_t argc,
                       const struct resp_arg *argv, uint64_t now,
                       struct resp_buf *b);

/* SCAN cursor [MATCH pattern] [COUNT n] [TYPE string] and KEYS pattern:
 * a walk of the ordered keys from the cursor (or the pattern's literal
 * prefix, if later), visiting at most COUNT keys (KEYS: at most
 * RT_KEYS_VISIT_MAX, else an error), stopping once past the prefix, and
 * once matching has cost RT_SCAN_MATCH_WORK_MAX (KEYS: an error). */
static void exec_scan(struct rt *rt, const struct rt_command *cmd,
                      uint32_t argc, const struct resp_arg *argv, uint64_t now,
                      struct resp_buf *b) {
  uint8_t *start = malloc(RT_CURSOR_KEY_BYTES_MAX);
  size_t start_len = 0;
  if (start == NULL) {
    resp_write_error(b, "OOM out of memory");
    return;
  }
  exec_scan_from(rt, cmd, argc, argv, now, b, start, &start_len);
  free(start);
}

static int slice_cmp(struct kvstore_slice a, struct kvstore_slice b) {
  size_t n = a.len < b.len ? a.len : b.len;
  int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
  return c != 0 ? c : a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static void exec_scan_from(struct rt *rt, const struct rt_command *cmd,
                           uint32_t argc, const struct resp_arg *argv,
                           uint64_t now, struct resp_buf *b, uint8_t *start,
                           size_t *start_len_out) {
  size_t start_len = 0;
  int64_t count = 10;
  struct scan_ctx s = {0};
  bool keys_cmd = cmd->id == C_KEYS;
  bool other_type = false; /* TYPE of a type no key has */
  if (keys_cmd) {
    s.pattern = argv[1].ptr;
    s.pattern_len = argv[1].len;
    count = RT_KEYS_VISIT_MAX;
  } else {
    if (!cursor_decode(&argv[1], start, start_len_out)) {
      resp_write_error(b, "ERR invalid cursor");
      return;
    }
    /* Options come in pairs: a name, then its value. */
    for (uint32_t i = 2; i < argc; i += 2) {
      if (i + 1 >= argc) {
        resp_write_error(b, KVSTORE_ERR_SYNTAX);
        return;
      }
      if (arg_is(&argv[i], "MATCH")) {
        s.pattern = argv[i + 1].ptr;
        s.pattern_len = argv[i + 1].len;
      } else if (arg_is(&argv[i], "COUNT")) {
        if (!parse_i64(&argv[i + 1], &count)) {
          resp_write_error(b, KVSTORE_ERR_NOT_INTEGER);
          return;
        }
        if (count < 1) { /* Redis's answer */
          resp_write_error(b, KVSTORE_ERR_SYNTAX);
          return;
        }
        if (count > RT_SCAN_COUNT_MAX) {
          resp_write_error(b, "ERR COUNT must be between 1 and 100000");
          return;
        }
      } else if (arg_is(&argv[i], "TYPE")) {
        other_type = !arg_is(&argv[i + 1], "string");
      } else {
        resp_write_error(b, KVSTORE_ERR_SYNTAX);
        return;
      }
    }
  }
  if (s.pattern_len > RT_PATTERN_BYTES_MAX) {
    resp_write_error(b, "ERR the pattern is longer than 1024 bytes");
    return;
  }
  /* No key is of another type: a pattern that matches none, whatever
   * MATCH said (in either order), and the walk still moves the cursor. */
  if (other_type) {
    s.pattern = (const uint8_t *)"[]";
    s.pattern_len = 2;
  }
  if (s.pattern != NULL)
    s.prefix_len = rt_glob_prefix(s.pattern, s.pattern_len);
  start_len = *start_len_out;
  struct kvstore_slice from = {start, start_len};
  struct kvstore_slice prefix = {s.pattern, s.prefix_len};
  if (slice_cmp(from, prefix) < 0)
    from = prefix; /* the cursor is before every key the prefix covers */
  resp_buf_init(&s.keys, RT_OUT_BYTES_MAX);
  struct kvstore_slice next = {NULL, 0};
  bool more =
      kvstore_range(rt->kv, from, now, (size_t)count, scan_visit, &s, &next) &&
      !s.past_prefix;
  if (s.keys.err != 0) {
    resp_write_error(b, "ERR the reply is too large; use a smaller COUNT");
  } else if (keys_cmd && more && s.worn_out) {
    resp_write_error(b, "ERR KEYS would spend too long matching this pattern "
                        "against these keys; use SCAN");
  } else if (keys_cmd && more) {
    resp_buf_printf(b, "-ERR KEYS would visit more than %u keys; use SCAN\r\n",
                    RT_KEYS_VISIT_MAX);
  } else if (keys_cmd) {
    resp_write_array(b, s.n);
    resp_buf_append(b, s.keys.data, s.keys.len);
  } else {
    resp_write_array(b, 2);
    if (more)
      cursor_write(b, next);
    else
      resp_write_bulk(b, "0", 1);
    resp_write_array(b, s.n);
    resp_buf_append(b, s.keys.data, s.keys.len);
  }
  resp_buf_free(&s.keys);
}

void rt_exec_read(struct rt *rt, const struct rt_command *cmd, uint32_t argc,
                  const struct resp_arg *argv, struct resp_buf *b) {
  uint64_t now = rt_read_clock_ms(rt);
  const uint8_t *v;
  size_t vlen;
  switch (cmd->id) {
  case C_GET:
    if (kvstore_get(rt->kv, argv[1].ptr, argv[1].len, now, &v, &vlen))
      resp_write_bulk(b, v, vlen);
    else
      resp_write_null(b);
    return;
  case C_MGET:
    resp_write_array(b, argc - 1);
    for (uint32_t i = 1; i < argc; i++) {
      if (kvstore_get(rt->kv, argv[i].ptr, argv[i].len, now, &v, &vlen))
        resp_write_bulk(b, v, vlen);
      else
        resp_write_null(b);
    }
    return;
  case C_EXISTS: {
    int64_t count = 0;
    for (uint32_t i = 1; i < argc; i++)
      count += kvstore_exists(rt->kv, argv[i].ptr, argv[i].len, now);
    resp_write_int(b, count);
    return;
  }
  case C_DBSIZE:
    resp_write_int(b, (int64_t)kvstore_dbsize(rt->kv));
    return;
  case C_PTTL:
  case C_TTL: {
    int64_t ms = kvstore_pttl(rt->kv, argv[1].ptr, argv[1].len, now);
    resp_write_int(b, cmd->id == C_TTL ? kvstore_ttl_seconds(ms) : ms);
    return;
  }
  case C_STRLEN:
    resp_write_int(b,
                   kvstore_get(rt->kv, argv[1].ptr, argv[1].len, now, &v, &vlen)
                       ? (int64_t)vlen
                       : 0);
    return;
  case C_TYPE:
    resp_write_simple(b, kvstore_exists(rt->kv, argv[1].ptr, argv[1].len, now)
                             ? "string"
                             : "none");
    return;
  case C_SCAN:
  case C_KEYS:
    exec_scan(rt, cmd, argc, argv, now, b);
    return;
  case C_SABHA_RANGE:
    exec_range(rt, argc, argv, now, b);
    return;
  case C_WATCH:
    /* The index this node has applied whole (rt_watch_index): no change
     * after it is yet seen, so a watched key whose revision is later
     * changed after the WATCH (clients.c turns this into +OK and keeps
     * the number). */
    resp_write_int(b, (int64_t)rt_watch_index(rt));
    return;
  case C_APP_READ:
    rt_app_read(rt, app_of(cmd)->op, argc - 1, argv + 1, now, b);
    return;
  default:
    assert(false);
    resp_write_error(b, "ERR not a read");
  }
}

/* ---- SABHA.RANGE ------------------------------------------------------------
 */

struct range_ctx {
  struct kvstore_slice prefix;
  struct resp_buf items;
  uint64_t n, limit;
  bool more;
};

static bool range_visit(void *ctx, const struct kvstore_item *it) {
  struct range_ctx *r = ctx;
  if (it->key.len < r->prefix.len ||
      (r->prefix.len > 0 &&
       memcmp(it->key.ptr, r->prefix.ptr, r->prefix.len) != 0))
    return false; /* past the prefix: keys are in order */
  if (r->n == r->limit) {
    r->more = true;
    return false;
  }
  resp_write_bulk(&r->items, it->key.ptr, it->key.len);
  resp_write_bulk(&r->items, it->value.ptr, it->value.len);
  resp_write_int(&r->items, (int64_t)it->revision);
  r->n++;
  return true;
}

/* SABHA.RANGE prefix [limit]: the live keys under a prefix, in order, with
 * their values and revisions (the HTTP range read); at most `limit`
 * (RT_RANGE_LIMIT_DEFAULT, at most RT_RANGE_LIMIT_MAX), and whether more
 * remain. The walk visits at most limit + 1 keys besides expired ones it
 * passes, bounded too. Reply: *(2 + 3n) applied-index, more, then triples. */
static void exec_range(struct rt *rt, uint32_t argc,
                       const struct resp_arg *argv, uint64_t now,
                       struct resp_buf *b) {
  int64_t limit = RT_RANGE_LIMIT_DEFAULT;
  if (argc > 3 || (argc == 3 && (!parse_i64(&argv[2], &limit) || limit < 1 ||
                                 limit > RT_RANGE_LIMIT_MAX))) {
    resp_write_error(b, "ERR the limit must be between 1 and 10000");
    return;
  }
  struct range_ctx r = {.prefix = slice(&argv[1]), .limit = (uint64_t)limit};
  resp_buf_init(&r.items, RT_OUT_BYTES_MAX);
  struct kvstore_slice next;
  bool unfinished = kvstore_range(
      rt->kv, r.prefix, now, (size_t)(4 * limit + 1), range_visit, &r, &next);
  /* Visits ran out among expired keys: say there may be more. */
  if (unfinished && r.n < r.limit && !r.more && next.len >= r.prefix.len &&
      (r.prefix.len == 0 || memcmp(next.ptr, r.prefix.ptr, r.prefix.len) == 0))
    r.more = true;
  if (r.items.err != 0) {
    resp_write_error(b, "ERR the range is too large; use a smaller limit");
  } else {
    resp_write_array(b, 2 + 3 * r.n);
    resp_write_int(b, (int64_t)rt->applied);
    resp_write_int(b, r.more ? 1 : 0);
    resp_buf_append(b, r.items.data, r.items.len);
  }
  resp_buf_free(&r.items);
}

/* ---- encoding writes ---------------------------------------------------- */

uint8_t *rt_enc_reserve(struct rt *rt, size_t size) {
  if (size > rt->enc_cap) {
    size_t cap = rt->enc_cap == 0 ? 4096 : rt->enc_cap;
    while (cap < size)
      cap *= 2;
    uint8_t *p = realloc(rt->enc, cap);
    if (p == NULL)
      return NULL;
    rt->enc = p;
    rt->enc_cap = cap;
  }
  return rt->enc;
}

/* Encodes one store command into buf[0, cap) (NULL, 0: only its size);
 * returns its size, 0 when memory is short. */
static size_t encode_one(const struct rt_command *cmd, uint32_t argc,
                         const struct resp_arg *a,
                         const struct kvstore_hdr *hdr, uint8_t *buf,
                         size_t cap) {
  int64_t n = 0;
  switch (cmd->id) {
  case C_SET: {
    uint32_t flags;
    int64_t px;
    uint64_t lease;
    set_options(argc, a, &flags, &px, &lease);
    return kvstore_encode_set_ex(buf, cap, hdr, slice(&a[1]), slice(&a[2]),
                                 flags, px, lease);
  }
  case C_SETNX:
    return kvstore_encode_set(buf, cap, hdr, slice(&a[1]), slice(&a[2]),
                              KVSTORE_SET_NX | KVSTORE_SET_REPLY_INT, 0);
  case C_GETSET:
    return kvstore_encode_set(buf, cap, hdr, slice(&a[1]), slice(&a[2]),
                              KVSTORE_SET_GET, 0);
  case C_GETDEL:
    return kvstore_encode_getdel(buf, cap, hdr, slice(&a[1]));
  case C_APPEND:
    return kvstore_encode_append(buf, cap, hdr, slice(&a[1]), slice(&a[2]));
  case C_EXPIRE:
  case C_PEXPIRE:
  case C_EXPIREAT:
  case C_PEXPIREAT: {
    uint32_t ifs;
    char unused[RT_CHECK_MSG_BYTES_MIN]; /* checked when it arrived */
    parse_i64(&a[2], &n);
    expire_options(argc, a, &ifs, unused, sizeof unused);
    bool seconds = cmd->id == C_EXPIRE || cmd->id == C_EXPIREAT;
    bool at = cmd->id == C_EXPIREAT || cmd->id == C_PEXPIREAT;
    return kvstore_encode_expire_ex(buf, cap, hdr, slice(&a[1]),
                                    at ? KVSTORE_EXPIRE_AT : KVSTORE_EXPIRE_IN,
                                    seconds ? n * 1000 : n, ifs);
  }
  case C_PERSIST:
    return kvstore_encode_expire(buf, cap, hdr, slice(&a[1]),
                                 KVSTORE_EXPIRE_NONE, 0);
  case C_LEASE_GRANT:
  case C_LEASE_KEEPALIVE:
  case C_LEASE_REVOKE:
    parse_i64(&a[1], &n);
    return kvstore_encode_lease(
        buf, cap, hdr,
        cmd->id == C_LEASE_GRANT       ? KVSTORE_OP_LEASE_GRANT
        : cmd->id == C_LEASE_KEEPALIVE ? KVSTORE_OP_LEASE_KEEPALIVE
                                       : KVSTORE_OP_LEASE_REVOKE,
        n);
  case C_GET:
  case C_STRLEN:
  case C_EXISTS:
  case C_TTL:
  case C_PTTL: {
    enum kvstore_read what = cmd->id == C_GET      ? KVSTORE_READ_GET
                             : cmd->id == C_STRLEN ? KVSTORE_READ_STRLEN
                             : cmd->id == C_EXISTS ? KVSTORE_READ_EXISTS
                             : cmd->id == C_TTL    ? KVSTORE_READ_TTL
                                                   : KVSTORE_READ_PTTL;
    return kvstore_encode_read(buf, cap, hdr, what, slice(&a[1]));
  }
  case C_DEL:
  case C_MSET: {
    size_t nk = argc - 1;
    struct kvstore_slice *sl = malloc(nk * sizeof *sl);
    if (sl == NULL)
      return 0;
    for (size_t i = 0; i < nk; i++)
      sl[i] = slice(&a[i + 1]);
    size_t size = cmd->id == C_DEL
                      ? kvstore_encode_del(buf, cap, hdr, sl, nk)
                      : kvstore_encode_mset(buf, cap, hdr, sl, nk / 2);
    free(sl);
    return size;
  }
  case C_INCR:
    return kvstore_encode_incrby(buf, cap, hdr, slice(&a[1]), 1);
  case C_DECR:
    return kvstore_encode_decrby(buf, cap, hdr, slice(&a[1]), 1);
  case C_INCRBY:
  case C_DECRBY:
    parse_i64(&a[2], &n);
    return cmd->id == C_INCRBY
               ? kvstore_encode_incrby(buf, cap, hdr, slice(&a[1]), n)
               : kvstore_encode_decrby(buf, cap, hdr, slice(&a[1]), n);
  case C_CAS: {
    struct kvstore_slice expected = slice(&a[2]);
    return kvstore_encode_cas(buf, cap, hdr, slice(&a[1]), &expected,
                              slice(&a[3]));
  }
  default:
    assert(false);
    return 0;
  }
}

/* A TXN's commands, encoded one after another into `bytes`. */
struct txn_build {
  const struct kvstore_hdr *hdr;
  uint8_t *bytes; /* NULL: sizing */
  size_t used;
  struct kvstore_slice *cmds;
  uint32_t n;
  bool oom;
};

static void txn_encode_each(void *ctx, const struct rt_command *cmd,
                            uint32_t argc, const struct resp_arg *argv) {
  struct txn_build *t = ctx;
  size_t size = encode_one(cmd, argc, argv, t->hdr, NULL, 0);
  if (size == 0)
    t->oom = true;
  if (t->bytes != NULL && !t->oom) {
    encode_one(cmd, argc, argv, t->hdr, t->bytes + t->used, size);
    t->cmds[t->n].ptr = t->bytes + t->used;
    t->cmds[t->n].len = size;
  }
  t->used += size;
  t->n++;
}

/* SABHA.TXN: each command encoded with the TXN's header, then the TXN
 * around them. */
static size_t encode_txn(struct rt *rt, const struct rt_req *r,
                         const struct kvstore_hdr *hdr) {
  uint64_t rev;
  uint32_t n_watch, n_cmds;
  struct txn_build t = {.hdr = hdr};
  char msg[RT_CHECK_MSG_BYTES_MIN];
  if (txn_walk(rt, r->argc, r->argv, &rev, &n_watch, &n_cmds, txn_encode_each,
               &t, msg, sizeof msg) != NULL ||
      t.oom)
    return 0; /* checked when it arrived: only memory fails here */
  size_t total = t.used;
  t = (struct txn_build){.hdr = hdr};
  t.bytes = malloc(total > 0 ? total : 1);
  t.cmds = malloc(n_cmds * sizeof *t.cmds);
  struct kvstore_slice *keys = malloc((n_watch + 1) * sizeof *keys);
  size_t size = 0;
  if (t.bytes != NULL && t.cmds != NULL && keys != NULL) {
    txn_walk(rt, r->argc, r->argv, &rev, &n_watch, &n_cmds, txn_encode_each, &t,
             msg, sizeof msg);
    for (uint32_t i = 0; i < n_watch; i++)
      keys[i] = slice(&r->argv[3 + i]);
    size = t.oom ? 0
                 : kvstore_encode_txn(NULL, 0, hdr, keys, n_watch, rev, t.cmds,
                                      n_cmds);
    uint8_t *buf = size > 0 ? rt_enc_reserve(rt, size) : NULL;
    if (buf == NULL)
      size = 0;
    else
      kvstore_encode_txn(buf, size, hdr, keys, n_watch, rev, t.cmds, n_cmds);
  }
  free(t.bytes);
  free(t.cmds);
  free(keys);
  return size;
}

size_t rt_encode_write(struct rt *rt, const struct rt_req *r,
                       const struct kvstore_hdr *hdr) {
  if (r->cmd->id == C_TXN)
    return encode_txn(rt, r, hdr);
  size_t size = encode_one(r->cmd, r->argc, r->argv, hdr, NULL, 0);
  uint8_t *buf = size > 0 ? rt_enc_reserve(rt, size) : NULL;
  if (buf == NULL)
    return 0;
  return encode_one(r->cmd, r->argc, r->argv, hdr, buf, size);
}

size_t rt_encode_app_write(struct rt *rt, const struct rt_req *r,
                           const struct app_hdr *ahdr) {
  return rt_app_encode(rt, app_of(r->cmd)->op, r->argc - 1, r->argv + 1, ahdr);
}

uint32_t rt_command_leader_target(const struct rt_req *r) {
  int64_t to = 0;
  if (r->cmd == NULL || r->cmd->id != C_SABHA_LEADER ||
      !parse_i64(&r->argv[1], &to))
    return 0;
  return (uint32_t)to; /* validate() bounded it to a node id */
}

bool rt_command_member_change(const struct rt_req *r,
                              enum sabha_change_type *type, uint32_t *id,
                              char *addr, size_t addr_size) {
  int64_t v = 0;
  if (r->cmd == NULL || r->cmd->id != C_SABHA_MEMBER ||
      !parse_i64(&r->argv[2], &v))
    return false;
  *id = (uint32_t)v; /* validate() bounded it to a node id */
  addr[0] = '\0';
  if (arg_is(&r->argv[1], "add")) {
    *type = SABHA_CHANGE_ADD_LEARNER;
    size_t len =
        r->argv[3].len < addr_size - 1 ? r->argv[3].len : addr_size - 1;
    memcpy(addr, r->argv[3].ptr, len);
    addr[len] = '\0';
  } else {
    *type = arg_is(&r->argv[1], "promote") ? SABHA_CHANGE_PROMOTE
                                           : SABHA_CHANGE_REMOVE;
  }
  return true;
}

/* SABHA.MEMBERS: one line per member, "id=2 addr=HOST:PORT role=voter
 * match=120 caught_up=yes priority=1" (priority from this node's settings;
 * match and caught_up as this node knows them: only a leader tracks others'
 * progress), then "config_index=N committed=yes|no". */
static void cmd_members(struct rt *rt, struct resp_buf *b) {
  struct sabha_membership m;
  sabha_engine_members(rt->engine, &m);
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  resp_write_array(b, (int64_t)m.n + 1);
  for (uint32_t i = 0; i < m.n; i++) {
    const struct sabha_member *x = &m.members[i];
    char addr[RT_HOST_BYTES_MAX + 8] = "";
    const struct rt_addr *a = rt_client_addr_of(rt, x->id);
    if (a != NULL)
      snprintf(addr, sizeof addr, "%s:%u", a->host, a->port);
    char line[256];
    int len = snprintf(line, sizeof line,
                       "id=%u addr=%s role=%s match=%" PRIu64
                       " caught_up=%s priority=%u",
                       x->id, addr[0] != '\0' ? addr : "-",
                       sabha_member_role_name(x->role), x->match,
                       st.role != SABHA_ROLE_LEADER ? "unknown"
                       : x->caught_up               ? "yes"
                                                    : "no",
                       x->id <= SABHA_NODES_MAX ? rt->cfg.priority[x->id]
                                                : RT_PRIORITY_DEFAULT);
    resp_write_bulk(b, line, (size_t)len);
  }
  char line[96];
  int len = snprintf(line, sizeof line, "config_index=%" PRIu64 " committed=%s",
                     m.index, m.index <= st.commit ? "yes" : "no");
  resp_write_bulk(b, line, (size_t)len);
}

/* ---- what other files ask of the table ------------------------------------
 */

const struct rt_command *rt_command_find(const struct rt *rt,
                                         const struct resp_arg *name) {
  return find_command(rt, name);
}

enum rt_multi_cmd rt_command_multi(const struct rt_command *cmd) {
  switch (cmd->id) {
  case C_MULTI:
    return RT_MC_MULTI;
  case C_EXEC:
    return RT_MC_EXEC;
  case C_DISCARD:
    return RT_MC_DISCARD;
  case C_UNWATCH:
    return RT_MC_UNWATCH;
  case C_WATCH:
    return RT_MC_WATCH;
  case C_SABHA_WATCH:
    return RT_MC_SABHA_WATCH;
  default:
    return RT_MC_NONE;
  }
}

bool rt_command_txn_ok(const struct rt_command *cmd, uint32_t argc) {
  return txn_allows(cmd, argc);
}

const struct rt_command *rt_command_txn(const struct rt *rt) {
  static const struct resp_arg name = {(const uint8_t *)"SABHA.TXN", 9};
  return find_command(rt, &name);
}

bool rt_command_is_read(const struct rt_command *cmd) {
  return cmd != NULL && cmd->kind == CK_READ;
}

bool rt_command_is_local(const struct rt_command *cmd) {
  return cmd->kind == CK_LOCAL;
}

bool rt_command_is_app(const struct rt_command *cmd) {
  return cmd != NULL && app_of(cmd) != NULL;
}

bool rt_command_is_admin(const struct rt_command *cmd) {
  /* What moves the cluster, not the data: a leadership transfer, and the
   * claim to be another node's forwarding link (which takes a connection
   * slot kept for nodes, and carries their clients' admin commands). */
  return cmd->id == C_SABHA_LEADER || cmd->id == C_SABHA_MEMBER ||
         cmd->id == C_SABHA_FORWARDED;
}

bool rt_command_is_no_auth(const struct rt_command *cmd) {
  return cmd->id == C_AUTH || cmd->id == C_HELLO || cmd->id == C_QUIT;
}

size_t rt_command_lower_name(const struct rt_command *cmd, char *out,
                             size_t size) {
  return lower_name(cmd->name, out, size);
}

const char *rt_command_check(const struct rt_stream *c,
                             const struct rt_command *cmd, uint32_t argc,
                             const struct resp_arg *argv, char *msg,
                             size_t msg_size, bool *in_args) {
  assert(msg_size >= RT_CHECK_MSG_BYTES_MIN);
  *in_args = false;
  if (!arity_ok(cmd, argc)) {
    char lower[32];
    lower_name(cmd->name, lower, sizeof lower);
    snprintf(msg, msg_size, "ERR wrong number of arguments for '%s' command",
             lower);
    return msg;
  }
  /* Redis checks the name and the arity first, then the user, and the
   * arguments only inside the command: so does this. */
  const char *refused = rt_auth_refusal(c, cmd, msg, msg_size);
  if (refused != NULL)
    return refused;
  if (cmd->kind == CK_LOCAL)
    return NULL;
  const char *bad = validate(cmd, argc, argv, msg, msg_size);
  int64_t ms;
  /* A time that would pass INT64_MAX from the log's clock: the store says
   * so when it applies the entry, but cannot tell PEXPIRE from EXPIRE (both
   * carry ms) and names EXPIRE, so the command is named here, where it is
   * known, by this node's view of the clock (a behind one leaves the few
   * ms it is behind to the store's words). */
  uint64_t clock_ms = kvstore_clock_ms(c->rt->kv);
  if (bad == NULL && cmd->id == C_PEXPIRE && parse_i64(&argv[2], &ms) &&
      ms > 0 && clock_ms <= (uint64_t)INT64_MAX &&
      (uint64_t)ms > (uint64_t)INT64_MAX - clock_ms)
    bad = expire_time_error(cmd, msg, msg_size);
  if (bad != NULL) {
    *in_args = true;
    return bad;
  }
  if (cmd->id == C_TXN) {
    uint64_t rev;
    uint32_t n_watch, n_cmds;
    return txn_walk(c->rt, argc, argv, &rev, &n_watch, &n_cmds, NULL, NULL, msg,
                    msg_size);
  }
  if (app_of(cmd) != NULL && !app_args_fit(cmd, argc, argv, msg, msg_size))
    return msg;
  return NULL;
}

/* ---- INFO
 * -------------------------------------------------------------------------- */

static bool want_section(const char *section, const char *name) {
  return section == NULL || strcasecmp(section, "all") == 0 ||
         strcasecmp(section, "default") == 0 ||
         strcasecmp(section, "everything") == 0 ||
         strcasecmp(section, name) == 0;
}

/* What the host says of itself; zeros when it says nothing. */
static void host_info(const struct rt *rt, struct rt_host_info *hi) {
  memset(hi, 0, sizeof *hi);
  if (rt->ports.host_info != NULL)
    rt->ports.host_info(rt->ports.ctx, hi);
}

/* Every client limit, with what it did (docs/operations.md, "Limits"). */
static void write_info_clients(const struct rt *rt, struct resp_buf *b) {
  const struct rt_config *cfg = &rt->cfg;
  const struct rt_metrics *m = &rt->m;
  struct rt_clients_memory mem;
  rt_clients_memory(rt, &mem);
  resp_buf_printf(b,
                  "# Clients\r\nconnected_clients:%u\r\n"
                  "forwarding_links:%u\r\nmaxclients:%u\r\n"
                  "client_recent_max_input_buffer:%" PRIu64 "\r\n"
                  "client_recent_max_output_buffer:%" PRIu64 "\r\n"
                  "clients_memory:%" PRIu64 "\r\n"
                  "maxmemory_clients:%" PRIu64 "\r\n"
                  "clients_paused_for_memory:%u\r\n"
                  "client_output_paused:%" PRIu64 "\r\n",
                  rt->n_clients, mem.links, cfg->clients_max,
                  mem.recent_max_input_bytes, mem.recent_max_output_bytes,
                  mem.total_bytes, cfg->clients_memory_max, mem.paused,
                  m->output_paused);
  resp_buf_printf(b,
                  "clients_refused:%" PRIu64 "\r\n"
                  "clients_evicted_from_probation:%" PRIu64 "\r\n"
                  "forwarding_link_proofs_refused:%" PRIu64 "\r\n"
                  "timeout:%u\r\nclients_timed_out:%" PRIu64 "\r\n"
                  "client_output_buffer_limit:normal %" PRIu64 " %" PRIu64
                  " %u\r\noutput_buffer_disconnects:%" PRIu64 "\r\n"
                  "client_query_buffer_limit:%" PRIu64 "\r\n"
                  "query_buffer_disconnects:%" PRIu64 "\r\n"
                  "memory_disconnects:%" PRIu64 "\r\n"
                  "memory_pauses:%" PRIu64 "\r\n\r\n",
                  m->clients_refused, m->probation_evicted,
                  m->link_proofs_refused, cfg->idle_timeout_s,
                  m->clients_timed_out, cfg->out_hard_bytes,
                  cfg->out_soft_bytes, cfg->out_soft_s, m->out_limit_closed,
                  cfg->query_bytes_max, m->query_limit_closed, m->memory_closed,
                  m->memory_paused);
}

void rt_write_info(struct rt *rt, struct resp_buf *b, const char *section) {
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  struct wal_stats ws;
  wal_stats(rt->wal, &ws);
  struct rt_host_info hi;
  host_info(rt, &hi);
  uint64_t now = rt_wall_ms(rt);
  uint64_t up_s =
      now > rt->started_wall_ms ? (now - rt->started_wall_ms) / 1000u : 0;
  if (want_section(section, "server")) {
    resp_buf_printf(b,
                    "# Server\r\nredis_version:%s\r\nsabha_version:%s\r\n"
                    "redis_mode:standalone\r\nos:Linux\r\n"
                    "process_id:%ld\r\ntcp_port:%u\r\n"
                    "uptime_in_seconds:%" PRIu64 "\r\n\r\n",
                    REDIS_COMPAT_VERSION, SABHA_SERVER_VERSION, hi.pid,
                    hi.client_port, up_s);
  }
  if (want_section(section, "clients"))
    write_info_clients(rt, b);
  if (want_section(section, "replication"))
    resp_buf_printf(b, "# Replication\r\nrole:%s\r\n\r\n",
                    st.role == SABHA_ROLE_LEADER ? "master" : "slave");
  if (want_section(section, "sabha")) {
    struct sabha_membership members;
    sabha_engine_members(rt->engine, &members);
    const struct rt_addr *la = rt_client_addr_of(rt, st.leader);
    char leader_client[96] = "";
    if (la != NULL)
      snprintf(leader_client, sizeof leader_client, "%s:%u", la->host,
               la->port);
    resp_buf_printf(
        b,
        "# Sabha\r\nnode_id:%u\r\nprotocol:%s\r\ncluster_id:%s\r\n"
        "role:%s\r\nterm:%" PRIu64 "\r\nvote:%u\r\nleader:%u\r\n"
        "leader_client:%s\r\ncommit_index:%" PRIu64 "\r\n"
        "applied_index:%" PRIu64 "\r\nlog_first_index:%" PRIu64 "\r\n"
        "log_last_index:%" PRIu64 "\r\nlog_entries:%" PRIu64 "\r\n"
        "snapshot_index:%" PRIu64 "\r\nelections_started:%" PRIu64 "\r\n"
        "campaigns_started:%" PRIu64 "\r\n"
        "elections_won:%" PRIu64 "\r\nballots_burned:%" PRIu64 "\r\n"
        "nodes:%u\r\npeers_connected:%" PRIu64 "\r\n"
        "wal_segments:%" PRIu64 "\r\nwal_bytes:%" PRIu64 "\r\n"
        "wal_fsyncs:%" PRIu64 "\r\nwal_fsync_us_p50:%" PRIu64 "\r\n"
        "wal_fsync_us_p99:%" PRIu64 "\r\nproposals:%" PRIu64 "\r\n"
        "commits:%" PRIu64 "\r\nsessions:%" PRIu64 "\r\n"
        "log_clock_ms:%" PRIu64 "\r\nclock_entries:%" PRIu64 "\r\n"
        "repair_guard_index:%" PRIu64 "\r\nlog_repaired:%d\r\n",
        rt->cfg.engine.id, rt->cfg.protocol, rt->cfg.cluster_id,
        sabha_role_name(st.role), st.term, st.vote, st.leader, leader_client,
        st.commit, rt->applied, st.first_index, st.last_index,
        st.last_index >= st.first_index ? st.last_index - st.first_index + 1
                                        : 0,
        st.snapshot_index, st.elections_started, st.campaigns_started,
        st.elections_won,
        st.ballots_burned, members.n, hi.peers_connected, ws.segments, ws.bytes,
        ws.fsyncs, wal_fsync_us_quantile(&ws, 0.5),
        wal_fsync_us_quantile(&ws, 0.99), rt->m.proposals, rt->m.commits,
        kvstore_n_sessions(rt->kv), kvstore_clock_ms(rt->kv),
        rt->m.clock_entries, st.repair_until, ws.repaired ? 1 : 0);
    resp_buf_printf(b, "priority:%u\r\npriority_transfers:%" PRIu64 "\r\n",
                    rt->cfg.priority[rt->cfg.engine.id],
                    rt->m.priority_transfers);
    /* The store's bytes: what its data bound counts, and the spare room
     * APPEND keeps on this node alone (kvstore_memory). */
    struct kvstore_memory km;
    kvstore_memory(rt->kv, &km);
    resp_buf_printf(b,
                    "kv_data_bytes:%" PRIu64 "\r\n"
                    "kv_append_slack_bytes:%" PRIu64 "\r\n",
                    km.data_bytes, km.slack_bytes);
    resp_buf_printf(
        b,
        "disk_sync_jobs:%" PRIu64 "\r\ndisk_sync_logs:%" PRIu64 "\r\n"
        "wal_fsyncs_loop:%" PRIu64 "\r\nwal_fsyncs_thread:%" PRIu64 "\r\n",
        hi.disk_sync_jobs, hi.disk_sync_logs, rt->m.fsyncs_loop,
        rt->m.fsyncs_thread);
    /* The membership in force: "members:1=voter,2=voter,4=learner". */
    resp_buf_printf(b,
                    "config_index:%" PRIu64 "\r\nvoter:%d\r\nremoved:%d\r\n"
                    "members:",
                    members.index, st.voter ? 1 : 0, st.removed ? 1 : 0);
    for (uint32_t i = 0; i < members.n; i++)
      resp_buf_printf(b, "%s%u=%s", i > 0 ? "," : "", members.members[i].id,
                      sabha_member_role_name(members.members[i].role));
    resp_buf_printf(b, "\r\n");
    rt_timing_write_info(rt, b);
    resp_buf_printf(b, "\r\n");
  }
  if (rt->cfg.n_groups > 1
          ? want_section(section, "groups")
          : section != NULL && strcasecmp(section, "groups") == 0)
    rt_groups_info(rt, b);
  if (want_section(section, "stats"))
    resp_buf_printf(
        b,
        "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\n"
        "rejected_connections:%" PRIu64 "\r\n"
        "total_commands_processed:%" PRIu64 "\r\n"
        "forwarded_commands:%" PRIu64 "\r\nredirected_commands:%" PRIu64
        "\r\nno_leader_errors:%" PRIu64 "\r\ntimeouts:%" PRIu64 "\r\n"
        "linearizable_reads:%" PRIu64 "\r\nstale_reads:%" PRIu64 "\r\n"
        "reads_refused:%" PRIu64 "\r\n"
        "snapshots_taken:%" PRIu64 "\r\nsnapshots_installed:%" PRIu64
        "\r\nsnapshots_refused:%" PRIu64 "\r\nsnapshots_too_big:%" PRIu64
        "\r\nwatch_window_bytes_copied:%" PRIu64
        "\r\nwatch_events_examined:%" PRIu64
        "\r\nleader_changes:%" PRIu64 "\r\npeer_bytes_received:%" PRIu64 "\r\n"
        "peer_bytes_sent:%" PRIu64 "\r\n\r\n",
        rt->m.clients_accepted, rt->m.clients_refused, rt->m.commands,
        rt->m.forwarded, rt->m.redirected, rt->m.no_leader, rt->m.timeouts,
        rt->m.reads, rt->m.stale_reads, rt->m.reads_refused,
        rt->m.snapshots_taken, rt->m.snapshots_installed,
        rt->m.snapshots_refused, rt->m.snapshots_too_big,
        rt->m.watch_window_bytes_copied, rt->m.watch_events_examined,
        rt->m.leader_changes,
        hi.peer_bytes_received, hi.peer_bytes_sent);
  if (want_section(section, "apps"))
    rt_app_info(rt, b);
  if (want_section(section, "keyspace"))
    resp_buf_printf(
        b, "# Keyspace\r\ndb0:keys=%" PRIu64 ",expires=0,avg_ttl=0\r\n\r\n",
        kvstore_dbsize(rt->kv));
}

/* ---- local commands
 * ------------------------------------------------------------------ */

static void write_command_info(struct resp_buf *b,
                               const struct rt_command *cmd) {
  char lower[32];
  size_t k = lower_name(cmd->name, lower, sizeof lower);
  resp_write_array(b, 10);
  resp_write_bulk(b, lower, k);
  resp_write_int(b, cmd->arity);
  size_t nflags = 0;
  for (const char *p = cmd->flags; *p != '\0'; p++)
    nflags += (p == cmd->flags || p[-1] == ' ') && *p != ' ';
  resp_write_array(b, nflags);
  const char *p = cmd->flags;
  while (*p != '\0') {
    const char *end = strchr(p, ' ');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    resp_buf_printf(b, "+%.*s\r\n", (int)len, p);
    p += len;
    while (*p == ' ')
      p++;
  }
  resp_write_int(b, cmd->first_key);
  resp_write_int(b, cmd->last_key);
  resp_write_int(b, cmd->step);
  resp_write_array(b, 0); /* ACL categories */
  resp_write_array(b, 0); /* tips */
  resp_write_array(b, 0); /* key specs */
  resp_write_array(b, 0); /* subcommands */
}

static void write_command_doc(struct resp_buf *b,
                              const struct rt_command *cmd) {
  char lower[32];
  size_t k = lower_name(cmd->name, lower, sizeof lower);
  resp_write_bulk(b, lower, k);
  resp_write_array(b, 6);
  resp_write_bulk(b, "summary", 7);
  resp_write_bulk(b, cmd->summary, strlen(cmd->summary));
  resp_write_bulk(b, "since", 5);
  resp_write_bulk(b, "1.0.0", 5);
  resp_write_bulk(b, "group", 5);
  const char *group = app_of(cmd) != NULL     ? "apps"
                      : cmd->kind == CK_LOCAL ? "server"
                                              : "string";
  resp_write_bulk(b, group, strlen(group));
}

static void cmd_command(const struct rt *rt, uint32_t argc,
                        const struct resp_arg *argv, struct resp_buf *b) {
  size_t count = n_commands(rt);
  if (argc == 1) {
    resp_write_array(b, count);
    for (size_t i = 0; i < count; i++)
      write_command_info(b, command_at(rt, i));
    return;
  }
  const struct resp_arg *sub = &argv[1];
  if (arg_is(sub, "COUNT")) {
    resp_write_int(b, (int64_t)count);
  } else if (arg_is(sub, "LIST")) {
    resp_write_array(b, count);
    for (size_t i = 0; i < count; i++) {
      char lower[32];
      size_t k = lower_name(command_at(rt, i)->name, lower, sizeof lower);
      resp_write_bulk(b, lower, k);
    }
  } else if (arg_is(sub, "INFO")) {
    if (argc == 2) {
      resp_write_array(b, count);
      for (size_t i = 0; i < count; i++)
        write_command_info(b, command_at(rt, i));
      return;
    }
    resp_write_array(b, argc - 2);
    for (uint32_t i = 2; i < argc; i++) {
      const struct rt_command *cmd = find_command(rt, &argv[i]);
      if (cmd == NULL)
        resp_write_null_array(b);
      else
        write_command_info(b, cmd);
    }
  } else if (arg_is(sub, "DOCS")) {
    if (argc == 2) {
      resp_write_array(b, 2 * count);
      for (size_t i = 0; i < count; i++)
        write_command_doc(b, command_at(rt, i));
      return;
    }
    size_t found = 0;
    for (uint32_t i = 2; i < argc; i++)
      found += find_command(rt, &argv[i]) != NULL;
    resp_write_array(b, 2 * found);
    for (uint32_t i = 2; i < argc; i++) {
      const struct rt_command *cmd = find_command(rt, &argv[i]);
      if (cmd != NULL)
        write_command_doc(b, cmd);
    }
  } else {
    error_naming(b, "ERR unknown subcommand '", sub, "'. Try COMMAND HELP.");
  }
}

static void cmd_config(struct rt *rt, uint32_t argc,
                       const struct resp_arg *argv, struct resp_buf *b) {
  /* Redis's words for a subcommand it does not know and for a wrong
   * count (its subcommands' arities: RESETSTAT 2, SET -4, GET -3). */
  bool resetstat = arg_is(&argv[1], "RESETSTAT");
  bool set = arg_is(&argv[1], "SET"), get = arg_is(&argv[1], "GET");
  if (!resetstat && !set && !get) {
    error_naming(b, "ERR unknown subcommand '", &argv[1],
                 "'. Try CONFIG HELP.");
    return;
  }
  if ((resetstat && argc != 2) || (set && argc < 4) || (get && argc < 3)) {
    resp_write_error(b, resetstat ? "ERR wrong number of arguments for "
                                    "'config|resetstat' command"
                        : set     ? "ERR wrong number of arguments for "
                                    "'config|set' command"
                                  : "ERR wrong number of arguments for "
                                    "'config|get' command");
    return;
  }
  if (resetstat) {
    resp_write_simple(b, "OK");
    return;
  }
  if (set) {
    resp_write_error(b, "ERR CONFIG SET is not supported by sabha; restart "
                        "the node with new settings");
    return;
  }
  struct rt_host_info hi;
  host_info(rt, &hi);
  char port[16], maxclients[16], timeout[16], obl[80], qbl[24], mmc[24];
  snprintf(port, sizeof port, "%u", hi.client_port);
  snprintf(maxclients, sizeof maxclients, "%u", rt->cfg.clients_max);
  snprintf(timeout, sizeof timeout, "%u", rt->cfg.idle_timeout_s);
  /* As Redis spells it: the class, hard, soft, soft seconds. */
  snprintf(obl, sizeof obl, "normal %" PRIu64 " %" PRIu64 " %u",
           rt->cfg.out_hard_bytes, rt->cfg.out_soft_bytes, rt->cfg.out_soft_s);
  snprintf(qbl, sizeof qbl, "%" PRIu64, rt->cfg.query_bytes_max);
  snprintf(mmc, sizeof mmc, "%" PRIu64, rt->cfg.clients_memory_max);
  /* What Redis tools ask about, answered truthfully: every write is
   * fsynced before it is acknowledged. */
  const char *params[][2] = {
      {"save", ""},
      {"appendonly", "yes"},
      {"appendfsync", "always"},
      {"databases", "1"},
      {"maxmemory", "0"},
      {"maxmemory-policy", "noeviction"},
      {"timeout", timeout},
      {"client-output-buffer-limit", obl},
      {"client-query-buffer-limit", qbl},
      {"maxmemory-clients", mmc},
      {"port", port},
      {"bind", hi.bind != NULL ? hi.bind : ""},
      {"maxclients", maxclients},
      {"cluster-enabled", "no"},
      /* Redis answers with the password itself; a node never shows it,
       * only whether there is one (docs/operations.md). */
      {"requirepass", rt->cfg.requirepass_bytes > 0 ? "(set)" : ""},
      {"protected-mode", rt->cfg.protected_mode ? "yes" : "no"},
  };
  size_t np = sizeof params / sizeof params[0];
  bool match[sizeof params / sizeof params[0]] = {false};
  size_t count = 0;
  /* Each pattern is matched whole, ignoring case, as Redis matches it,
   * within the bound SCAN and KEYS keep (matching costs the pattern's
   * length times the name's); a longer one is refused, never cut, since
   * a cut pattern answers for another. The command's patterns together
   * are held to the work one SCAN may spend, counted before any is
   * matched: one command of 16 Ki patterns of 1 KiB held the loop for
   * seconds. */
  uint64_t name_bytes = 0, pattern_bytes = 0;
  for (size_t k = 0; k < np; k++)
    name_bytes += strlen(params[k][0]);
  for (uint32_t i = 2; i < argc; i++) {
    if (argv[i].len > RT_PATTERN_BYTES_MAX) {
      resp_buf_printf(b, "-ERR the pattern is longer than %u bytes\r\n",
                      RT_PATTERN_BYTES_MAX);
      return;
    }
    pattern_bytes += argv[i].len;
  }
  if (pattern_bytes * name_bytes > RT_SCAN_MATCH_WORK_MAX) {
    resp_buf_printf(b,
                    "-ERR CONFIG GET patterns of more than %" PRIu64
                    " bytes together would take too long to match; ask "
                    "with fewer\r\n",
                    (uint64_t)(RT_SCAN_MATCH_WORK_MAX / name_bytes));
    return;
  }
  for (uint32_t i = 2; i < argc; i++) {
    for (size_t k = 0; k < np; k++)
      if (!match[k] && glob_match(argv[i].ptr, argv[i].len,
                                  (const uint8_t *)params[k][0],
                                  strlen(params[k][0]), true)) {
        match[k] = true;
        count++;
      }
  }
  resp_write_array(b, 2 * count);
  for (size_t k = 0; k < np; k++)
    if (match[k]) {
      resp_write_bulk(b, params[k][0], strlen(params[k][0]));
      resp_write_bulk(b, params[k][1], strlen(params[k][1]));
    }
}

/* Gives the connection `name` (CLIENT SETNAME, HELLO ... SETNAME), whole,
 * or writes why not and keeps the old one. As Redis: printable ASCII
 * without spaces, so that a CLIENT LIST line splits where it should; and
 * at most the 63 bytes kept, rather than a name cut short. */
static bool set_client_name(struct rt_stream *c, const struct resp_arg *name,
                            struct resp_buf *b) {
  if (name->len > sizeof c->name - 1) {
    resp_buf_printf(b, "-ERR Client names are limited to %zu bytes\r\n",
                    sizeof c->name - 1);
    return false;
  }
  for (size_t i = 0; i < name->len; i++)
    if (name->ptr[i] < '!' || name->ptr[i] > '~') {
      resp_write_error(b, "ERR Client names cannot contain spaces, newlines "
                          "or special characters.");
      return false;
    }
  memcpy(c->name, name->ptr, name->len);
  c->name[name->len] = '\0';
  return true;
}

static void cmd_client(struct rt_stream *c, uint32_t argc,
                       const struct resp_arg *argv, struct resp_buf *b) {
  const struct resp_arg *sub = &argv[1];
  if (arg_is(sub, "SETNAME") && argc == 3) {
    if (set_client_name(c, &argv[2], b))
      resp_write_simple(b, "OK");
  } else if (arg_is(sub, "GETNAME")) {
    if (c->name[0] == '\0')
      resp_write_null(b);
    else
      resp_write_bulk(b, c->name, strlen(c->name));
  } else if (arg_is(sub, "ID")) {
    resp_write_int(b, (int64_t)c->id);
  } else if (arg_is(sub, "INFO") || arg_is(sub, "LIST")) {
    char line[160];
    int len = snprintf(line, sizeof line, "id=%" PRIu64 " name=%s db=0%s\n",
                       c->id, c->name, arg_is(sub, "INFO") ? "" : "");
    resp_write_bulk(b, line, (size_t)len);
  } else if (arg_is(sub, "SETINFO") || arg_is(sub, "NO-EVICT") ||
             arg_is(sub, "NO-TOUCH") || arg_is(sub, "REPLY")) {
    resp_write_simple(b, "OK");
  } else {
    error_naming(b, "ERR unknown subcommand '", sub, "'. Try CLIENT HELP.");
  }
}

/* HELLO [protover [AUTH user password] [SETNAME name]], as Redis 7
 * answers it: the version first, then the options, then the login, and
 * only an authenticated connection gets the handshake (or a new name). */
static void cmd_hello(struct rt_stream *c, uint32_t argc,
                      const struct resp_arg *argv, struct resp_buf *b) {
  struct rt *rt = c->rt;
  int64_t proto = 2;
  if (argc >= 2 && !parse_i64(&argv[1], &proto)) {
    resp_write_error(b, "ERR Protocol version is not an integer or out of "
                        "range");
    return;
  }
  if (proto != 2) {
    /* Redis's words for a version it has not; 3 it has, and sabha has not
     * (docs/api.md): clients then stay on RESP2. */
    resp_write_error(b, proto == 3 ? "NOPROTO sorry, this protocol version "
                                     "is not supported"
                                   : "NOPROTO unsupported protocol version");
    return;
  }
  const struct resp_arg *user = NULL, *password = NULL, *name = NULL;
  for (uint32_t i = 2; i < argc; i++) {
    uint32_t more = argc - 1 - i;
    if (arg_is(&argv[i], "AUTH") && more >= 2) {
      user = &argv[i + 1];
      password = &argv[i + 2];
      i += 2;
    } else if (arg_is(&argv[i], "SETNAME") && more >= 1) {
      name = &argv[i + 1];
      i++;
    } else {
      error_naming(b, "ERR Syntax error in HELLO option '", &argv[i], "'");
      return;
    }
  }
  if (user != NULL) {
    const char *err = rt_auth_login(c, user, password);
    if (err != NULL) {
      resp_write_error(b, err);
      return;
    }
  }
  if (c->user == RT_USER_NONE) {
    resp_write_error(b, "NOAUTH HELLO must be called with the client already "
                        "authenticated, otherwise the HELLO <proto> AUTH "
                        "<user> <pass> option can be used to authenticate "
                        "the client and select the RESP protocol version at "
                        "the same time");
    return;
  }
  if (name != NULL && !set_client_name(c, name, b))
    return;
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  const char *role = st.role == SABHA_ROLE_LEADER ? "master" : "replica";
  resp_write_array(b, 14);
  resp_write_bulk(b, "server", 6);
  resp_write_bulk(b, "redis", 5);
  resp_write_bulk(b, "version", 7);
  resp_write_bulk(b, REDIS_COMPAT_VERSION, strlen(REDIS_COMPAT_VERSION));
  resp_write_bulk(b, "proto", 5);
  resp_write_int(b, 2);
  resp_write_bulk(b, "id", 2);
  resp_write_int(b, (int64_t)c->id);
  resp_write_bulk(b, "mode", 4);
  resp_write_bulk(b, "standalone", 10);
  resp_write_bulk(b, "role", 4);
  resp_write_bulk(b, role, strlen(role));
  resp_write_bulk(b, "modules", 7);
  resp_write_array(b, 0);
}

void rt_exec_local(struct rt_stream *c, const struct rt_command *cmd,
                   uint32_t argc, const struct resp_arg *argv,
                   struct resp_buf *b) {
  struct rt *rt = c->rt;
  switch (cmd->id) {
  case C_PING:
    if (argc == 1)
      resp_write_simple(b, "PONG");
    else if (argc == 2)
      resp_write_bulk(b, argv[1].ptr, argv[1].len);
    else
      resp_write_error(b, "ERR wrong number of arguments for 'ping' command");
    return;
  case C_ECHO:
    resp_write_bulk(b, argv[1].ptr, argv[1].len);
    return;
  case C_QUIT:
    resp_write_simple(b, "OK");
    c->quit_after = true;
    return;
  case C_SELECT: {
    /* One database: 0. Redis's complaint about a number that is none
     * comes first. */
    int64_t db;
    if (!parse_i64(&argv[1], &db))
      resp_write_error(b, KVSTORE_ERR_NOT_INTEGER);
    else if (db != 0)
      resp_write_error(b, "ERR DB index is out of range");
    else
      resp_write_simple(b, "OK");
    return;
  }
  case C_CLIENT:
    cmd_client(c, argc, argv, b);
    return;
  case C_CONFIG:
    cmd_config(rt, argc, argv, b);
    return;
  case C_INFO:
  case C_SABHA_STATUS: {
    char section[32] = "";
    if (cmd->id == C_SABHA_STATUS) {
      snprintf(section, sizeof section, "sabha");
    } else if (argc >= 2) {
      size_t len =
          argv[1].len < sizeof section - 1 ? argv[1].len : sizeof section - 1;
      memcpy(section, argv[1].ptr, len);
      section[len] = '\0';
    }
    struct resp_buf text;
    resp_buf_init(&text, 1u << 20);
    rt_write_info(rt, &text, section[0] != '\0' ? section : NULL);
    resp_write_bulk(b, text.data, text.len);
    resp_buf_free(&text);
    return;
  }
  case C_COMMAND:
    cmd_command(rt, argc, argv, b);
    return;
  case C_HELLO:
    cmd_hello(c, argc, argv, b);
    return;
  case C_AUTH:
    rt_exec_auth(c, argc, argv, b);
    return;
  case C_TIME: {
    uint64_t us = rt_wall_ms(rt) * 1000u;
    char s[24], u[24];
    int sl = snprintf(s, sizeof s, "%" PRIu64, us / 1000000u);
    int ul = snprintf(u, sizeof u, "%" PRIu64, us % 1000000u);
    resp_write_array(b, 2);
    resp_write_bulk(b, s, (size_t)sl);
    resp_write_bulk(b, u, (size_t)ul);
    return;
  }
  case C_READONLY:
  case C_READWRITE:
    c->stale_reads = cmd->id == C_READONLY;
    resp_write_simple(b, "OK");
    return;
  case C_SABHA_STALE:
    if (arg_is(&argv[1], "on") || arg_is(&argv[1], "off")) {
      c->stale_reads = arg_is(&argv[1], "on");
      resp_write_simple(b, "OK");
    } else {
      resp_write_error(b, "ERR SABHA.STALE takes on or off");
    }
    return;
  case C_SABHA_MEMBERS:
    cmd_members(rt, b);
    return;
  case C_SABHA_FORWARDED:
    rt_exec_forwarded(c, argc, argv, b);
    return;
  default:
    assert(false);
    resp_write_error(b, "ERR not a local command");
  }
}

/* ---- groups -----------------------------------------------------------------
 *
 * Which group a command belongs to, for group 0's routing (groups.c): the
 * group of its keys, which must all be one; a pattern or prefix names a
 * group only when it starts with a whole hash tag ("{user42}*"). */

struct group_acc {
  const struct rt *rt;
  uint32_t group; /* RT_GROUP_NONE before the first key */
  bool cross;
};

static void group_add(struct group_acc *a, const struct resp_arg *key) {
  uint32_t g = rt_key_group(key->ptr, key->len, a->rt->cfg.n_groups);
  if (a->group == RT_GROUP_NONE)
    a->group = g;
  else if (a->group != g)
    a->cross = true;
}

static void group_add_keys(struct group_acc *a, const struct rt_command *cmd,
                           uint32_t argc, const struct resp_arg *argv) {
  if (cmd->first_key <= 0)
    return;
  uint32_t last = cmd->last_key < 0 ? argc - 1 : (uint32_t)cmd->last_key;
  uint32_t step = cmd->step > 0 ? (uint32_t)cmd->step : 1u;
  for (uint32_t i = (uint32_t)cmd->first_key; i <= last && i < argc; i += step)
    group_add(a, &argv[i]);
}

static void group_each(void *ctx, const struct rt_command *cmd, uint32_t argc,
                       const struct resp_arg *argv) {
  group_add_keys(ctx, cmd, argc, argv);
}

/* The group of a pattern's or prefix's leading hash tag, or
 * RT_GROUP_NONE when it does not start with one free of glob characters. */
static uint32_t pattern_group(const struct rt *rt, const struct resp_arg *p,
                              bool glob) {
  if (p->len < 3 || p->ptr[0] != '{')
    return RT_GROUP_NONE;
  for (size_t i = 1; i < p->len; i++) {
    uint8_t ch = p->ptr[i];
    if (glob && (ch == '*' || ch == '?' || ch == '[' || ch == '\\'))
      return RT_GROUP_NONE;
    if (ch == '}')
      return i == 1 ? RT_GROUP_NONE
                    : rt_key_group(p->ptr, i + 1, rt->cfg.n_groups);
  }
  return RT_GROUP_NONE;
}

static uint32_t group_refuse(const struct rt_command *cmd, const char *why,
                             char *msg, size_t msg_size) {
  char lower[32];
  lower_name(cmd->name, lower, sizeof lower);
  snprintf(msg, msg_size, "CROSSSLOT '%s' %s (docs/api.md, \"Groups\")", lower,
           why);
  return RT_GROUP_CROSS;
}

uint32_t rt_command_group(const struct rt *rt, const struct rt_command *cmd,
                          uint32_t argc, const struct resp_arg *argv, char *msg,
                          size_t msg_size) {
  struct group_acc a = {rt, RT_GROUP_NONE, false};
  uint32_t g = RT_GROUP_NONE;
  switch (cmd->id) {
  case C_TXN: {
    uint64_t rev;
    uint32_t nw, n_cmds;
    char bad[RT_CHECK_MSG_BYTES_MIN];
    if (txn_walk(rt, argc, argv, &rev, &nw, &n_cmds, group_each, &a, bad,
                 sizeof bad) != NULL)
      return RT_GROUP_ANY; /* refused by group 0 as malformed */
    for (uint32_t i = 0; i < nw; i++)
      group_add(&a, &argv[3 + i]);
    break;
  }
  case C_SCAN:
    for (uint32_t i = 2; i + 1 < argc; i += 2)
      if (arg_is(&argv[i], "MATCH"))
        g = pattern_group(rt, &argv[i + 1], true);
    if (g == RT_GROUP_NONE)
      return group_refuse(cmd,
                          "reads every group: give MATCH a pattern that "
                          "starts with a {hash tag}",
                          msg, msg_size);
    return g;
  case C_KEYS:
  case C_SABHA_RANGE:
    g = pattern_group(rt, &argv[1], cmd->id == C_KEYS);
    if (g == RT_GROUP_NONE)
      return group_refuse(cmd,
                          "reads every group: give it a pattern or prefix "
                          "that starts with a {hash tag}",
                          msg, msg_size);
    return g;
  case C_DBSIZE:
    return group_refuse(cmd, "counts every group's keys", msg, msg_size);
  case C_SABHA_WATCH:
    return group_refuse(cmd, "needs a node of one group (--groups 1)", msg,
                        msg_size);
  case C_SABHA_MEMBER:
    return group_refuse(cmd,
                        "changes one group's membership: membership changes "
                        "need --groups 1",
                        msg, msg_size);
  default:
    group_add_keys(&a, cmd, argc, argv);
    break;
  }
  if (a.cross)
    return group_refuse(cmd,
                        "names keys of different groups: give them one "
                        "{hash tag}",
                        msg, msg_size);
  return a.group == RT_GROUP_NONE ? RT_GROUP_ANY : a.group;
}
