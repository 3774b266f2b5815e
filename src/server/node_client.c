/* RESP clients of a sabhad node: connections, the command table, and how
 * each command is carried out.
 *
 * Commands fall into four kinds (struct srv_command.kind):
 *   LOCAL   answered by this node at once from what it knows (PING, INFO,
 *           COMMAND, CONFIG GET, SABHA.STATUS, ...);
 *   READ    GET, MGET, EXISTS, DBSIZE, PTTL, TTL: linearizable by default
 *           (a ReadIndex on the leader), or served from this node's own
 *           store after `SABHA.STALE on` or READONLY;
 *   WRITE   SET, DEL, INCR..., MSET, CAS: encoded as a kvstore command with
 *           the connection's session and next sequence number, proposed on
 *           the leader, answered when applied;
 *   LEADER  SABHA.LEADER: runs on the leader.
 * The applications' commands (LEDGER.*, SEATS.*, LOCK.*, FENCED.*, ORDER.*,
 * sm/app.h) are READ or WRITE rows built at start-up from app_commands()
 * (struct srv_app_command), so the app's table stays the only list of them.
 * An app write carries no session: it is encoded with the node's clock and
 * a tag (node_internal.h, next_tag), and its ids (txid, request_id) are
 * what make a client's retry safe, whichever node it is sent to.
 * Anything but LOCAL goes through srv_dispatch() (node.c), which executes it
 * here on the leader (srv_exec_leader), forwards it, answers -MOVED or makes
 * it wait for a leader. Arguments are checked before that, so a syntax error
 * never costs a round trip through the log.
 *
 * Sessions (the kvstore's exactly-once table, kvstore.h): a connection's
 * first write on a leader first proposes a REGISTER; the writes behind it
 * wait (AWAIT_SESSION) until it is applied and its reply names the session.
 * A write whose outcome the node cannot learn (timed out, overtaken by a
 * snapshot) or that was refused for its session resets the connection's
 * session, so the next write registers a fresh one instead of running into
 * a sequence gap.
 *
 * Replies leave in the order the commands came (srv_client_flush), whatever
 * order they complete in; a read's value is taken when it reaches the head
 * of its connection's queue, after every earlier command of the connection
 * was answered, so a pipelined GET sees the connection's own earlier
 * writes. */
#include <assert.h>
#include <ctype.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/node_internal.h"

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
  C_APP_READ,  /* an app read: app_read() */
  C_APP_WRITE, /* an app write: app_encode(), proposed */
};

struct srv_command {
  const char *name;
  int arity; /* Redis style: n exactly, -n at least n (the name counts) */
  enum cmd_kind kind;
  enum cmd_id id;
  const char *flags; /* for COMMAND: space-separated */
  int first_key, last_key, step;
  const char *summary;
};

static const struct srv_command COMMANDS[] = {
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
    {"HELLO", -1, CK_LOCAL, C_HELLO, "fast stale", 0, 0, 0,
     "Handshake; only RESP2 is spoken"},
    {"AUTH", -2, CK_LOCAL, C_AUTH, "fast stale", 0, 0, 0,
     "No passwords are configured"},
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
    {"SABHA.FORWARDED", 1, CK_LOCAL, C_SABHA_FORWARDED, "fast stale", 0, 0, 0,
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
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* An app command's row: r->cmd points at `row`, whose id (C_APP_READ or
 * C_APP_WRITE) says that `app` is there. */
struct srv_app_command {
  struct srv_command row;
  const struct app_command *app;
};

static const struct app_command *app_of(const struct srv_command *cmd) {
  if (cmd->id != C_APP_READ && cmd->id != C_APP_WRITE)
    return NULL;
  return SRV_OF(cmd, const struct srv_app_command, row)->app;
}

/* Builds n->app_cmds from the app's table, once. Returns 0 or
 * SABHA_ENOMEM. */
static int build_app_rows(struct srv_node *n) {
  size_t count = 0;
  const struct app_command *t = app_commands(&count);
  n->app_cmds = calloc(count, sizeof *n->app_cmds);
  if (n->app_cmds == NULL)
    return SABHA_ENOMEM;
  for (size_t i = 0; i < count; i++) {
    struct srv_app_command *a = &n->app_cmds[i];
    int args = t[i].argc_min + 1; /* the name counts, as in Redis */
    a->app = &t[i];
    a->row.name = t[i].name;
    a->row.arity = t[i].argc_min == t[i].argc_max ? args : -args;
    a->row.kind = t[i].write ? CK_WRITE : CK_READ;
    a->row.id = t[i].write ? C_APP_WRITE : C_APP_READ;
    a->row.flags = t[i].write ? "write denyoom" : "readonly fast";
    a->row.summary = t[i].usage;
  }
  n->n_app_cmds = count;
  return 0;
}

static size_t n_commands(const struct srv_node *n) {
  return N_COMMANDS + n->n_app_cmds;
}

/* The i-th command of COMMAND's listings: the native ones, then the apps'. */
static const struct srv_command *command_at(const struct srv_node *n,
                                            size_t i) {
  return i < N_COMMANDS ? &COMMANDS[i] : &n->app_cmds[i - N_COMMANDS].row;
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

static const struct srv_command *find_command(const struct srv_node *n,
                                              const struct resp_arg *a) {
  for (size_t i = 0; i < n_commands(n); i++)
    if (arg_is(a, command_at(n, i)->name))
      return command_at(n, i);
  return NULL;
}

static bool arity_ok(const struct srv_command *cmd, uint32_t argc) {
  const struct app_command *app = app_of(cmd);
  if (app != NULL)
    return argc - 1 >= app->argc_min && argc - 1 <= app->argc_max;
  return cmd->arity >= 0 ? argc == (uint32_t)cmd->arity
                         : argc >= (uint32_t)-cmd->arity;
}

/* Redis's integer rule: optional '-', digits, no leading zeros or spaces,
 * within int64. */
static bool parse_i64(const struct resp_arg *a, int64_t *out) {
  const char *p = (const char *)a->ptr;
  size_t n = a->len;
  if (n == 0 || n > 20)
    return false;
  bool neg = false;
  size_t i = 0;
  if (p[0] == '-') {
    neg = true;
    i = 1;
    if (n == 1)
      return false;
  }
  if (p[i] == '0' && n - i > 1)
    return false;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1)
      return false;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX)
      return false;
    *out = (int64_t)v;
  }
  return true;
}

static struct kvstore_slice slice(const struct resp_arg *a) {
  return (struct kvstore_slice){a->ptr, a->len};
}

/* SET's options. Returns NULL or the error to answer. */
static const char *set_options(uint32_t argc, const struct resp_arg *argv,
                               uint32_t *flags, int64_t *px_ms) {
  *flags = 0;
  *px_ms = 0;
  bool have_expire = false;
  for (uint32_t i = 3; i < argc; i++) {
    const struct resp_arg *a = &argv[i];
    if (arg_is(a, "NX")) {
      *flags |= KVSTORE_SET_NX;
    } else if (arg_is(a, "XX")) {
      *flags |= KVSTORE_SET_XX;
    } else if (arg_is(a, "KEEPTTL")) {
      *flags |= KVSTORE_SET_KEEPTTL;
    } else if (arg_is(a, "PX") || arg_is(a, "EX")) {
      if (have_expire || i + 1 >= argc)
        return KVSTORE_ERR_SYNTAX;
      int64_t v;
      if (!parse_i64(&argv[i + 1], &v))
        return KVSTORE_ERR_NOT_INTEGER;
      if (v <= 0 || (arg_is(a, "EX") && v > INT64_MAX / 1000))
        return KVSTORE_ERR_EXPIRE;
      *px_ms = arg_is(a, "EX") ? v * 1000 : v;
      *flags |= KVSTORE_SET_PX;
      have_expire = true;
      i++;
    } else if (arg_is(a, "GET")) {
      return "ERR SET ... GET is not supported by sabha";
    } else {
      return KVSTORE_ERR_SYNTAX;
    }
  }
  if ((*flags & KVSTORE_SET_NX) && (*flags & KVSTORE_SET_XX))
    return KVSTORE_ERR_SYNTAX;
  if ((*flags & KVSTORE_SET_PX) && (*flags & KVSTORE_SET_KEEPTTL))
    return KVSTORE_ERR_SYNTAX;
  return NULL;
}

/* Checks a command's arguments before it goes anywhere. NULL: fine. */
static const char *validate(const struct srv_command *cmd, uint32_t argc,
                            const struct resp_arg *argv) {
  int64_t v;
  switch (cmd->id) {
  case C_SET: {
    uint32_t flags;
    int64_t px;
    return set_options(argc, argv, &flags, &px);
  }
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
  default:
    return NULL;
  }
}

/* An app command's arguments must fit its encoding (APP_ARG_BYTES_MAX
 * each); their content is the machine's to judge when it applies them.
 * Returns false with the error in msg. */
static bool app_args_fit(const struct srv_command *cmd, uint32_t argc,
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

/* ---- output
 * ------------------------------------------------------------------ */

void srv_outq_init(struct srv_outq *q) {
  resp_buf_init(&q->out, SRV_OUT_BYTES_MAX);
  resp_buf_init(&q->wbuf, SRV_OUT_BYTES_MAX);
  q->writing = false;
}

void srv_outq_free(struct srv_outq *q) {
  resp_buf_free(&q->out);
  resp_buf_free(&q->wbuf);
}

int srv_outq_kick(struct srv_outq *q, uv_stream_t *stream, uv_write_cb cb) {
  if (q->writing || q->out.len == 0)
    return 0;
  struct resp_buf tmp = q->wbuf;
  q->wbuf = q->out;
  q->out = tmp;
  resp_buf_reset(&q->out);
  uv_buf_t b = uv_buf_init((char *)q->wbuf.data, (unsigned)q->wbuf.len);
  int rc = uv_write(&q->wreq, stream, &b, 1, cb);
  if (rc == 0)
    q->writing = true;
  return rc;
}

void srv_write_kv_result(struct resp_buf *b, const struct kvstore_result *res) {
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
  }
  resp_write_error(b, "ERR unknown reply");
}

/* ---- requests
 * ------------------------------------------------------------------- */

static struct srv_req *req_alloc(struct srv_node *n, struct srv_client *c,
                                 const struct srv_command *cmd, uint32_t argc,
                                 const struct resp_arg *argv) {
  struct srv_req *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  size_t bytes = 0;
  for (uint32_t i = 0; i < argc; i++)
    bytes += argv[i].len;
  if (argc > 0) {
    r->argv = malloc(argc * sizeof *r->argv + bytes);
    if (r->argv == NULL) {
      free(r);
      return NULL;
    }
    uint8_t *p = (uint8_t *)(r->argv + argc);
    for (uint32_t i = 0; i < argc; i++) {
      if (argv[i].len > 0)
        memcpy(p, argv[i].ptr, argv[i].len);
      r->argv[i].ptr = p;
      r->argv[i].len = argv[i].len;
      p += argv[i].len;
    }
  }
  r->argc = argc;
  r->c = c;
  r->cmd = cmd;
  srv_list_init(&r->qlink);
  srv_list_init(&r->glink);
  resp_buf_init(&r->reply, SRV_OUT_BYTES_MAX);
  r->order = ++n->next_req_order;
  r->arrival_ms = uv_now(&n->loop);
  r->started_us = srv_mono_us();
  return r;
}

static void req_enqueue(struct srv_client *c, struct srv_req *r) {
  srv_list_push(&c->queue, &r->qlink);
  c->queue_n++;
}

bool srv_req_is_read(const struct srv_req *r) {
  return r->cmd != NULL && r->cmd->kind == CK_READ;
}

/* The value of a read, from this node's store, now. */
static void exec_read(struct srv_node *n, const struct srv_req *r,
                      struct resp_buf *b) {
  uint64_t now = srv_wall_ms();
  const uint8_t *v;
  size_t vlen;
  switch (r->cmd->id) {
  case C_GET:
    if (kvstore_get(n->kv, r->argv[1].ptr, r->argv[1].len, now, &v, &vlen))
      resp_write_bulk(b, v, vlen);
    else
      resp_write_null(b);
    return;
  case C_MGET:
    resp_write_array(b, r->argc - 1);
    for (uint32_t i = 1; i < r->argc; i++) {
      if (kvstore_get(n->kv, r->argv[i].ptr, r->argv[i].len, now, &v, &vlen))
        resp_write_bulk(b, v, vlen);
      else
        resp_write_null(b);
    }
    return;
  case C_EXISTS: {
    int64_t count = 0;
    for (uint32_t i = 1; i < r->argc; i++)
      count += kvstore_exists(n->kv, r->argv[i].ptr, r->argv[i].len, now);
    resp_write_int(b, count);
    return;
  }
  case C_DBSIZE:
    resp_write_int(b, (int64_t)kvstore_dbsize(n->kv));
    return;
  case C_PTTL:
  case C_TTL: {
    int64_t ms = kvstore_pttl(n->kv, r->argv[1].ptr, r->argv[1].len, now);
    if (r->cmd->id == C_TTL && ms > 0)
      ms = (ms + 500) / 1000;
    resp_write_int(b, ms);
    return;
  }
  case C_APP_READ:
    srv_app_read(n, app_of(r->cmd)->op, r->argc - 1, r->argv + 1, now, b);
    return;
  default:
    assert(false);
    resp_write_error(b, "ERR not a read");
  }
}

/* ---- writes on the leader
 * --------------------------------------------------------- */

uint8_t *srv_enc_reserve(struct srv_node *n, size_t size) {
  if (size > n->enc_cap) {
    size_t cap = n->enc_cap == 0 ? 4096 : n->enc_cap;
    while (cap < size)
      cap *= 2;
    uint8_t *p = realloc(n->enc, cap);
    if (p == NULL)
      return NULL;
    n->enc = p;
    n->enc_cap = cap;
  }
  return n->enc;
}

/* Encodes r's write with `hdr` into n->enc; returns its size (0: no memory).
 * Two passes: the size, then the bytes. */
static size_t encode_write(struct srv_node *n, const struct srv_req *r,
                           const struct kvstore_hdr *hdr) {
  const struct resp_arg *a = r->argv;
  size_t size = 0;
  for (int pass = 0; pass < 2; pass++) {
    uint8_t *buf = pass == 0 ? NULL : srv_enc_reserve(n, size);
    size_t cap = pass == 0 ? 0 : size;
    if (pass == 1 && buf == NULL)
      return 0;
    switch (r->cmd->id) {
    case C_SET: {
      uint32_t flags;
      int64_t px;
      set_options(r->argc, a, &flags, &px);
      size = kvstore_encode_set(buf, cap, hdr, slice(&a[1]), slice(&a[2]),
                                flags, px);
      break;
    }
    case C_DEL:
    case C_MSET: {
      size_t nk = r->argc - 1;
      struct kvstore_slice *sl = malloc(nk * sizeof *sl);
      if (sl == NULL)
        return 0;
      for (size_t i = 0; i < nk; i++)
        sl[i] = slice(&a[i + 1]);
      size = r->cmd->id == C_DEL
                 ? kvstore_encode_del(buf, cap, hdr, sl, nk)
                 : kvstore_encode_mset(buf, cap, hdr, sl, nk / 2);
      free(sl);
      break;
    }
    case C_INCR:
      size = kvstore_encode_incrby(buf, cap, hdr, slice(&a[1]), 1);
      break;
    case C_DECR:
      size = kvstore_encode_decrby(buf, cap, hdr, slice(&a[1]), 1);
      break;
    case C_INCRBY:
    case C_DECRBY: {
      int64_t d = 0;
      parse_i64(&a[2], &d);
      size = r->cmd->id == C_INCRBY
                 ? kvstore_encode_incrby(buf, cap, hdr, slice(&a[1]), d)
                 : kvstore_encode_decrby(buf, cap, hdr, slice(&a[1]), d);
      break;
    }
    case C_CAS: {
      struct kvstore_slice expected = slice(&a[2]);
      size = kvstore_encode_cas(buf, cap, hdr, slice(&a[1]), &expected,
                                slice(&a[3]));
      break;
    }
    default:
      assert(false);
      return 0;
    }
  }
  return size;
}

/* Lists a proposal just made, in proposal order (node.c apply_command). */
static void add_proposal(struct srv_node *n, struct srv_req *r);

static const char *propose_error(int rc) {
  switch (rc) {
  case SABHA_EBUSY:
    return "TRYAGAIN too many writes in flight; retry";
  case SABHA_ETOOBIG:
    return "ERR the command is larger than a log entry may be";
  case SABHA_ENOMEM:
    return "OOM out of memory";
  default:
    return "ERR the write could not be proposed";
  }
}

static int start_register(struct srv_node *n, struct srv_client *c) {
  uint64_t now = srv_wall_ms();
  if (now <= n->last_stamp_ms)
    now = n->last_stamp_ms + 1;
  size_t size = kvstore_encode_register(NULL, 0, now);
  uint8_t *buf = srv_enc_reserve(n, size);
  if (buf == NULL)
    return SABHA_ENOMEM;
  kvstore_encode_register(buf, size, now);
  int rc = sabha_engine_propose(n->engine, buf, size);
  if (rc != 0)
    return rc;
  n->last_stamp_ms = now;
  struct srv_req *r = req_alloc(n, c, NULL, 0, NULL);
  if (r == NULL)
    return SABHA_ENOMEM; /* proposed anyway: an unused session ages out */
  r->session = 0;
  r->seq = 0;
  r->stamp_ms = now;
  add_proposal(n, r);
  c->reg = r;
  c->session_state = SRV_SESSION_REGISTERING;
  srv_kick(n);
  return 0;
}

/* While a ready batch is being carried out the engine may not be called:
 * the request waits for srv_drain to run it after advance. */
static bool defer_if_in_ready(struct srv_node *n, struct srv_req *r) {
  if (!n->in_ready)
    return false;
  r->where = SRV_IN_DEFERRED;
  srv_list_push(&n->deferred, &r->glink);
  return true;
}

/* Proposes the command in n->enc[0, size) for r. Returns true when it was
 * proposed; otherwise r waits for a leader or has failed. */
static bool propose_req(struct srv_node *n, struct srv_req *r, size_t size) {
  int rc = sabha_engine_propose(n->engine, n->enc, size);
  if (rc == SABHA_ENOTLEADER || rc == SABHA_ETRANSFER) {
    srv_wait_leader(n, r);
    return false;
  }
  if (rc != 0) {
    n->m.proposals_failed++;
    srv_req_fail(n, r, propose_error(rc));
    return false;
  }
  return true;
}

/* An app write: no session, a tag to find it again when applied. */
static void exec_app_write(struct srv_node *n, struct srv_req *r) {
  struct app_hdr hdr = {.now_ms = srv_wall_ms(), .tag = n->next_tag};
  size_t size =
      srv_app_encode(n, app_of(r->cmd)->op, r->argc - 1, r->argv + 1, &hdr);
  if (size == 0) {
    srv_req_fail(n, r, "OOM out of memory");
    return;
  }
  if (!propose_req(n, r, size))
    return;
  /* The counter runs below the node id's byte and wraps there. */
  uint64_t low_mask = (UINT64_C(1) << 56) - 1;
  n->next_tag = (n->next_tag & ~low_mask) | ((n->next_tag + 1) & low_mask);
  r->is_app = true;
  r->tag = hdr.tag;
  r->stamp_ms = hdr.now_ms;
  r->started_us = srv_mono_us();
  add_proposal(n, r);
  srv_kick(n);
}

static void exec_write(struct srv_node *n, struct srv_req *r) {
  struct srv_client *c = r->c;
  if (defer_if_in_ready(n, r))
    return;
  /* An app write needs no session; but behind writes of its connection
   * that wait for theirs it waits too, so that a connection's commands
   * apply in the order it sent them. */
  if (r->cmd->id == C_APP_WRITE &&
      c->session_state != SRV_SESSION_REGISTERING) {
    exec_app_write(n, r);
    return;
  }
  if (c->session_state == SRV_SESSION_NONE) {
    int rc = start_register(n, c);
    if (rc == SABHA_ENOTLEADER || rc == SABHA_ETRANSFER) {
      srv_wait_leader(n, r);
      return;
    }
    if (rc != 0) {
      srv_req_fail(n, r, propose_error(rc));
      return;
    }
  }
  if (c->session_state == SRV_SESSION_REGISTERING) {
    r->where = SRV_IN_AWAIT_SESSION;
    srv_list_push(&c->await, &r->glink);
    return;
  }
  struct kvstore_hdr hdr = {
      .session = c->session, .seq = c->next_seq, .now_ms = srv_wall_ms()};
  size_t size = encode_write(n, r, &hdr);
  if (size == 0) {
    srv_req_fail(n, r, "OOM out of memory");
    return;
  }
  if (!propose_req(n, r, size))
    return;
  c->next_seq++;
  r->session = hdr.session;
  r->seq = hdr.seq;
  r->stamp_ms = hdr.now_ms;
  r->started_us = srv_mono_us();
  add_proposal(n, r);
  srv_kick(n);
}

static void add_proposal(struct srv_node *n, struct srv_req *r) {
  n->m.proposals++;
  r->where = SRV_IN_PROPOSALS;
  srv_list_push(&n->proposals, &r->glink);
}

void srv_session_registered(struct srv_node *n, struct srv_client *c,
                            uint64_t session) {
  c->session_state = SRV_SESSION_READY;
  c->session = session;
  c->next_seq = 1;
  srv_log(n, "DEBUG", "client %" PRIu64 ": session %" PRIu64, c->id, session);
  while (!srv_list_empty(&c->await)) {
    struct srv_req *r = SRV_OF(c->await.next, struct srv_req, glink);
    srv_list_remove(&r->glink);
    r->where = SRV_IN_NONE;
    exec_write(n, r);
    if (c->session_state != SRV_SESSION_READY)
      break; /* lost it again; the rest waits for the next session */
  }
}

void srv_session_failed(struct srv_node *n, struct srv_client *c,
                        const char *msg) {
  c->session_state = SRV_SESSION_NONE;
  c->session = 0;
  while (!srv_list_empty(&c->await)) {
    struct srv_req *r = SRV_OF(c->await.next, struct srv_req, glink);
    srv_req_fail(n, r, msg);
  }
}

void srv_exec_leader(struct srv_node *n, struct srv_req *r) {
  if (defer_if_in_ready(n, r))
    return;
  switch (r->cmd->kind) {
  case CK_READ: {
    r->read_id = n->next_read_id++;
    int rc = sabha_engine_read_index(n->engine, r->read_id);
    if (rc == SABHA_ENOTLEADER) {
      srv_wait_leader(n, r);
      return;
    }
    if (rc != 0) {
      srv_req_fail(n, r, "ERR the read could not be started");
      return;
    }
    r->started_us = srv_mono_us();
    r->has_read_index = false;
    r->where = SRV_IN_READS;
    srv_list_push(&n->reads, &r->glink);
    srv_kick(n);
    return;
  }
  case CK_WRITE:
    exec_write(n, r);
    return;
  case CK_LEADER: {
    int64_t to = 0;
    parse_i64(&r->argv[1], &to);
    if ((uint32_t)to == n->cfg.id) {
      resp_write_simple(&r->reply, "OK");
      srv_req_done(n, r);
      return;
    }
    int rc = sabha_engine_transfer_leadership(n->engine, (uint32_t)to);
    if (rc == SABHA_ENOTLEADER) {
      srv_wait_leader(n, r);
      return;
    }
    if (rc != 0) {
      srv_req_fail(n, r,
                   rc == SABHA_EINVAL ? "ERR no such node"
                                      : "ERR the transfer failed");
      return;
    }
    srv_log(n, "INFO", "handing leadership to node %u", (uint32_t)to);
    srv_kick(n);
    resp_write_simple(&r->reply, "OK");
    srv_req_done(n, r);
    return;
  }
  case CK_LOCAL:
    break;
  }
  assert(false);
}

/* ---- INFO
 * -------------------------------------------------------------------------- */

static bool want_section(const char *section, const char *name) {
  return section == NULL || strcasecmp(section, "all") == 0 ||
         strcasecmp(section, "default") == 0 ||
         strcasecmp(section, "everything") == 0 ||
         strcasecmp(section, name) == 0;
}

void srv_write_info(struct srv_node *n, struct resp_buf *b,
                    const char *section) {
  struct sabha_status st;
  srv_status(n, &st);
  struct wal_stats ws;
  wal_stats(n->wal, &ws);
  uint64_t now = srv_wall_ms();
  if (want_section(section, "server")) {
    resp_buf_printf(b,
                    "# Server\r\nredis_version:%s\r\nsabha_version:%s\r\n"
                    "redis_mode:standalone\r\nos:Linux\r\n"
                    "process_id:%ld\r\ntcp_port:%u\r\n"
                    "uptime_in_seconds:%" PRIu64 "\r\n\r\n",
                    REDIS_COMPAT_VERSION, SABHA_SERVER_VERSION, (long)getpid(),
                    n->cfg.client_port, (now - n->started_ms) / 1000u);
  }
  if (want_section(section, "clients"))
    resp_buf_printf(
        b, "# Clients\r\nconnected_clients:%u\r\nmaxclients:%u\r\n\r\n",
        n->n_clients, n->cfg.clients_max);
  if (want_section(section, "replication"))
    resp_buf_printf(b, "# Replication\r\nrole:%s\r\n\r\n",
                    st.role == SABHA_ROLE_LEADER ? "master" : "slave");
  if (want_section(section, "sabha")) {
    const struct srv_addr *la = srv_client_addr_of(n, st.leader);
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
        "elections_won:%" PRIu64 "\r\nballots_burned:%" PRIu64 "\r\n"
        "nodes:%u\r\npeers_connected:%" PRIu64 "\r\n"
        "wal_segments:%" PRIu64 "\r\nwal_bytes:%" PRIu64 "\r\n"
        "wal_fsyncs:%" PRIu64 "\r\nwal_fsync_us_p50:%" PRIu64 "\r\n"
        "wal_fsync_us_p99:%" PRIu64 "\r\nproposals:%" PRIu64 "\r\n"
        "commits:%" PRIu64 "\r\nsessions:%" PRIu64 "\r\n\r\n",
        n->cfg.id, n->cfg.protocol, n->cfg.cluster_id, sabha_role_name(st.role),
        st.term, st.vote, st.leader, leader_client, st.commit, n->applied,
        st.first_index, st.last_index,
        st.last_index >= st.first_index ? st.last_index - st.first_index + 1
                                        : 0,
        st.snapshot_index, st.elections_started, st.elections_won,
        st.ballots_burned, n->cfg.n_peers, n->transport.stats.peers_connected,
        ws.segments, ws.bytes, ws.fsyncs, wal_fsync_us_quantile(&ws, 0.5),
        wal_fsync_us_quantile(&ws, 0.99), n->m.proposals, n->m.commits,
        kvstore_n_sessions(n->kv));
  }
  if (want_section(section, "stats"))
    resp_buf_printf(
        b,
        "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\n"
        "rejected_connections:%" PRIu64 "\r\n"
        "total_commands_processed:%" PRIu64 "\r\n"
        "forwarded_commands:%" PRIu64 "\r\nredirected_commands:%" PRIu64
        "\r\nno_leader_errors:%" PRIu64 "\r\ntimeouts:%" PRIu64 "\r\n"
        "linearizable_reads:%" PRIu64 "\r\nstale_reads:%" PRIu64 "\r\n"
        "snapshots_taken:%" PRIu64 "\r\nsnapshots_installed:%" PRIu64
        "\r\nleader_changes:%" PRIu64 "\r\n"
        "peer_bytes_received:%" PRIu64 "\r\n"
        "peer_bytes_sent:%" PRIu64 "\r\n\r\n",
        n->m.clients_accepted, n->m.clients_refused, n->m.commands,
        n->m.forwarded, n->m.redirected, n->m.no_leader, n->m.timeouts,
        n->m.reads, n->m.stale_reads, n->m.snapshots_taken,
        n->m.snapshots_installed, n->m.leader_changes,
        n->transport.stats.bytes_received, n->transport.stats.bytes_sent);
  if (want_section(section, "apps"))
    srv_app_info(n, b);
  if (want_section(section, "keyspace"))
    resp_buf_printf(
        b, "# Keyspace\r\ndb0:keys=%" PRIu64 ",expires=0,avg_ttl=0\r\n\r\n",
        kvstore_dbsize(n->kv));
}

/* ---- local commands
 * ------------------------------------------------------------------ */

static void write_command_info(struct resp_buf *b,
                               const struct srv_command *cmd) {
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
                              const struct srv_command *cmd) {
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

static void cmd_command(const struct srv_node *n, uint32_t argc,
                        const struct resp_arg *argv, struct resp_buf *b) {
  size_t count = n_commands(n);
  if (argc == 1) {
    resp_write_array(b, count);
    for (size_t i = 0; i < count; i++)
      write_command_info(b, command_at(n, i));
    return;
  }
  const struct resp_arg *sub = &argv[1];
  if (arg_is(sub, "COUNT")) {
    resp_write_int(b, (int64_t)count);
  } else if (arg_is(sub, "LIST")) {
    resp_write_array(b, count);
    for (size_t i = 0; i < count; i++) {
      char lower[32];
      size_t k = lower_name(command_at(n, i)->name, lower, sizeof lower);
      resp_write_bulk(b, lower, k);
    }
  } else if (arg_is(sub, "INFO")) {
    if (argc == 2) {
      resp_write_array(b, count);
      for (size_t i = 0; i < count; i++)
        write_command_info(b, command_at(n, i));
      return;
    }
    resp_write_array(b, argc - 2);
    for (uint32_t i = 2; i < argc; i++) {
      const struct srv_command *cmd = find_command(n, &argv[i]);
      if (cmd == NULL)
        resp_write_null_array(b);
      else
        write_command_info(b, cmd);
    }
  } else if (arg_is(sub, "DOCS")) {
    if (argc == 2) {
      resp_write_array(b, 2 * count);
      for (size_t i = 0; i < count; i++)
        write_command_doc(b, command_at(n, i));
      return;
    }
    size_t found = 0;
    for (uint32_t i = 2; i < argc; i++)
      found += find_command(n, &argv[i]) != NULL;
    resp_write_array(b, 2 * found);
    for (uint32_t i = 2; i < argc; i++) {
      const struct srv_command *cmd = find_command(n, &argv[i]);
      if (cmd != NULL)
        write_command_doc(b, cmd);
    }
  } else {
    resp_buf_printf(b, "-ERR unknown subcommand '%.*s'. Try COMMAND HELP.\r\n",
                    (int)(sub->len > 64 ? 64 : sub->len),
                    (const char *)sub->ptr);
  }
}

static void cmd_config(struct srv_node *n, uint32_t argc,
                       const struct resp_arg *argv, struct resp_buf *b) {
  if (arg_is(&argv[1], "RESETSTAT") && argc == 2) {
    resp_write_simple(b, "OK");
    return;
  }
  if (arg_is(&argv[1], "SET")) {
    resp_write_error(b, "ERR CONFIG SET is not supported by sabha; restart "
                        "the node with new settings");
    return;
  }
  if (!arg_is(&argv[1], "GET") || argc < 3) {
    resp_write_error(b, "ERR unknown CONFIG subcommand or wrong number of "
                        "arguments");
    return;
  }
  char port[16], maxclients[16];
  snprintf(port, sizeof port, "%u", n->cfg.client_port);
  snprintf(maxclients, sizeof maxclients, "%u", n->cfg.clients_max);
  /* What Redis tools ask about, answered truthfully: every write is
   * fsynced before it is acknowledged. */
  const char *params[][2] = {
      {"save", ""},
      {"appendonly", "yes"},
      {"appendfsync", "always"},
      {"databases", "1"},
      {"maxmemory", "0"},
      {"maxmemory-policy", "noeviction"},
      {"timeout", "0"},
      {"port", port},
      {"bind", n->cfg.bind},
      {"maxclients", maxclients},
      {"cluster-enabled", "no"},
  };
  size_t np = sizeof params / sizeof params[0];
  bool match[sizeof params / sizeof params[0]] = {false};
  size_t count = 0;
  for (uint32_t i = 2; i < argc; i++) {
    char pat[128];
    size_t len = argv[i].len < sizeof pat - 1 ? argv[i].len : sizeof pat - 1;
    for (size_t k = 0; k < len; k++)
      pat[k] = (char)tolower(argv[i].ptr[k]);
    pat[len] = '\0';
    for (size_t k = 0; k < np; k++)
      if (!match[k] && fnmatch(pat, params[k][0], 0) == 0) {
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

static void cmd_client(struct srv_client *c, uint32_t argc,
                       const struct resp_arg *argv, struct resp_buf *b) {
  const struct resp_arg *sub = &argv[1];
  if (arg_is(sub, "SETNAME") && argc == 3) {
    size_t len =
        argv[2].len < sizeof c->name - 1 ? argv[2].len : sizeof c->name - 1;
    memcpy(c->name, argv[2].ptr, len);
    c->name[len] = '\0';
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
    resp_buf_printf(b, "-ERR unknown subcommand '%.*s'. Try CLIENT HELP.\r\n",
                    (int)(sub->len > 64 ? 64 : sub->len),
                    (const char *)sub->ptr);
  }
}

static void exec_local(struct srv_client *c, const struct srv_command *cmd,
                       uint32_t argc, const struct resp_arg *argv,
                       struct resp_buf *b) {
  struct srv_node *n = c->n;
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
  case C_SELECT:
    if (argv[1].len == 1 && argv[1].ptr[0] == '0')
      resp_write_simple(b, "OK");
    else
      resp_write_error(b, "ERR DB index is out of range");
    return;
  case C_CLIENT:
    cmd_client(c, argc, argv, b);
    return;
  case C_CONFIG:
    cmd_config(n, argc, argv, b);
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
    srv_write_info(n, &text, section[0] != '\0' ? section : NULL);
    resp_write_bulk(b, text.data, text.len);
    resp_buf_free(&text);
    return;
  }
  case C_COMMAND:
    cmd_command(n, argc, argv, b);
    return;
  case C_HELLO: {
    int64_t proto = 2;
    if (argc >= 2 && (!parse_i64(&argv[1], &proto) || proto != 2)) {
      resp_write_error(b, "NOPROTO sorry, this protocol version is not "
                          "supported");
      return;
    }
    struct sabha_status st;
    srv_status(n, &st);
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
    return;
  }
  case C_AUTH:
    resp_write_error(b, "ERR AUTH <password> called without any password "
                        "configured for the default user. Are you sure "
                        "your configuration is correct?");
    return;
  case C_TIME: {
    uint64_t us = srv_wall_ms() * 1000u;
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
  case C_SABHA_FORWARDED:
    c->forwarded_link = true;
    resp_write_simple(b, "OK");
    return;
  default:
    assert(false);
    resp_write_error(b, "ERR not a local command");
  }
}

/* ---- one command
 * ------------------------------------------------------------------------ */

/* Answers from n->scratch: straight to the output when nothing waits ahead
 * of it, else as a finished request behind the others. */
static void reply_now(struct srv_client *c) {
  struct srv_node *n = c->n;
  if (srv_list_empty(&c->queue)) {
    resp_buf_append(&c->oq.out, n->scratch.data, n->scratch.len);
  } else {
    struct srv_req *r = req_alloc(n, c, NULL, 0, NULL);
    if (r == NULL) {
      srv_client_close(c);
      return;
    }
    resp_buf_append(&r->reply, n->scratch.data, n->scratch.len);
    r->state = SRV_REQ_DONE;
    req_enqueue(c, r);
  }
  resp_buf_reset(&n->scratch);
}

static void error_now(struct srv_client *c, const char *msg) {
  c->n->m.commands_failed++;
  resp_write_error(&c->n->scratch, msg);
  reply_now(c);
}

static void handle_command(struct srv_client *c, uint32_t argc,
                           const struct resp_arg *argv) {
  struct srv_node *n = c->n;
  n->m.commands++;
  const struct srv_command *cmd = find_command(n, &argv[0]);
  char msg[400];
  if (cmd == NULL) {
    int len = snprintf(msg, sizeof msg,
                       "ERR unknown command '%.*s', with args beginning "
                       "with: ",
                       (int)(argv[0].len > 64 ? 64 : argv[0].len),
                       (const char *)argv[0].ptr);
    for (uint32_t i = 1; i < argc && len < 300; i++)
      len += snprintf(msg + len, sizeof msg - (size_t)len, "'%.*s' ",
                      (int)(argv[i].len > 32 ? 32 : argv[i].len),
                      (const char *)argv[i].ptr);
    error_now(c, msg);
    return;
  }
  if (!arity_ok(cmd, argc)) {
    char lower[32];
    lower_name(cmd->name, lower, sizeof lower);
    snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command",
             lower);
    error_now(c, msg);
    return;
  }
  if (cmd->kind == CK_LOCAL) {
    exec_local(c, cmd, argc, argv, &n->scratch);
    reply_now(c);
    return;
  }
  const char *bad = validate(cmd, argc, argv);
  if (bad != NULL) {
    error_now(c, bad);
    return;
  }
  if (app_of(cmd) != NULL && !app_args_fit(cmd, argc, argv, msg, sizeof msg)) {
    error_now(c, msg);
    return;
  }
  if (cmd->kind == CK_READ && c->stale_reads) {
    n->m.stale_reads++;
    if (srv_list_empty(&c->queue)) {
      struct srv_req tmp = {
          .cmd = cmd, .argc = argc, .argv = (struct resp_arg *)argv};
      exec_read(n, &tmp, &c->oq.out);
      return;
    }
  }
  struct srv_req *r = req_alloc(n, c, cmd, argc, argv);
  if (r == NULL) {
    error_now(c, "OOM out of memory");
    return;
  }
  req_enqueue(c, r);
  if (cmd->kind == CK_READ && c->stale_reads) {
    r->state = SRV_REQ_READABLE;
    return;
  }
  srv_dispatch(n, r);
}

/* ---- connections
 * ---------------------------------------------------------------------------
 */

static void on_client_closed(uv_handle_t *h) {
  struct srv_client *c = h->data;
  free(c->in);
  srv_outq_free(&c->oq);
  free(c);
}

void srv_client_close(struct srv_client *c) {
  if (c->closing)
    return;
  struct srv_node *n = c->n;
  c->closing = true;
  srv_list_remove(&c->link);
  n->n_clients--;
  if (c->resume_due) {
    c->resume_due = false;
    n->n_resume_due--;
  }
  while (!srv_list_empty(&c->queue)) {
    struct srv_req *r = SRV_OF(c->queue.next, struct srv_req, qlink);
    srv_list_remove(&r->qlink);
    if (r->where == SRV_IN_FORWARD) {
      r->c = NULL; /* its reply still comes: the link drops it */
      continue;
    }
    if (r->where != SRV_IN_NONE) {
      srv_list_remove(&r->glink);
      r->where = SRV_IN_NONE;
    }
    srv_req_free(r);
  }
  c->queue_n = 0;
  if (c->reg != NULL) {
    struct srv_req *r = c->reg;
    if (r->where != SRV_IN_NONE) {
      srv_list_remove(&r->glink);
      r->where = SRV_IN_NONE;
    }
    srv_req_free(r);
    c->reg = NULL;
  }
  uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void process_input(struct srv_client *c);

static void on_client_write(uv_write_t *w, int status) {
  struct srv_client *c = w->handle->data;
  c->oq.writing = false;
  resp_buf_reset(&c->oq.wbuf);
  if (c->oq.wbuf.cap > SRV_IDLE_BUFFER_BYTES_MAX) {
    resp_buf_free(&c->oq.wbuf);
    resp_buf_init(&c->oq.wbuf, SRV_OUT_BYTES_MAX);
  }
  if (c->closing)
    return;
  if (status < 0) {
    srv_client_close(c);
    return;
  }
  if (c->quit_after && srv_list_empty(&c->queue) && c->oq.out.len == 0) {
    srv_client_close(c);
    return;
  }
  if (srv_outq_kick(&c->oq, (uv_stream_t *)&c->tcp, on_client_write) != 0)
    srv_client_close(c);
}

/* True while a read of this connection waits to be answered. */
static bool queue_has_read(const struct srv_client *c) {
  for (const struct srv_link *l = c->queue.next; l != &c->queue; l = l->next) {
    const struct srv_req *r = SRV_OF(l, const struct srv_req, qlink);
    if (r->cmd != NULL && r->cmd->kind == CK_READ)
      return true;
  }
  return false;
}

/* A parsed command that changes state while an earlier read of the same
 * connection is still unanswered. */
static bool write_behind_read(const struct srv_client *c,
                              const struct resp_cmd *cmd) {
  if (cmd->argc == 0)
    return false;
  const struct srv_command *k = find_command(c->n, &cmd->argv[0]);
  if (k == NULL || k->kind == CK_READ || k->kind == CK_LOCAL)
    return false;
  return queue_has_read(c);
}

void srv_client_flush(struct srv_client *c) {
  if (c->closing)
    return;
  struct srv_node *n = c->n;
  while (!srv_list_empty(&c->queue)) {
    struct srv_req *r = SRV_OF(c->queue.next, struct srv_req, qlink);
    if (r->state == SRV_REQ_WAITING)
      break;
    if (r->state == SRV_REQ_READABLE)
      exec_read(n, r, &c->oq.out);
    else
      resp_buf_append(&c->oq.out, r->reply.data, r->reply.len);
    srv_list_remove(&r->qlink);
    c->queue_n--;
    assert(r->where == SRV_IN_NONE);
    srv_req_free(r);
  }
  if (c->oq.out.err != 0) {
    srv_log(n, "WARN", "client %" PRIu64 ": output buffer overflow; closing",
            c->id);
    srv_client_close(c);
    return;
  }
  if (c->quit_after && srv_list_empty(&c->queue) && c->oq.out.len == 0 &&
      !c->oq.writing) {
    srv_client_close(c);
    return;
  }
  if (srv_outq_kick(&c->oq, (uv_stream_t *)&c->tcp, on_client_write) != 0) {
    srv_client_close(c);
    return;
  }
  /* Parse what waits in the input buffer later, from the loop (srv_clients
   * resume): parsing here could run a new command before the caller (say,
   * one proposing a connection's queued writes in order) is done. */
  if (c->read_barrier && !queue_has_read(c))
    c->read_barrier = false;
  if (c->paused && !c->read_barrier && c->queue_n < SRV_QUEUE_MAX / 2 &&
      !c->resume_due) {
    c->resume_due = true;
    n->n_resume_due++;
    srv_kick(n);
  }
}

void srv_clients_resume(struct srv_node *n) {
  if (n->n_resume_due == 0)
    return;
  struct srv_link *l = n->clients.next;
  while (l != &n->clients && n->n_resume_due > 0) {
    struct srv_client *c = SRV_OF(l, struct srv_client, link);
    l = l->next;
    if (!c->resume_due)
      continue;
    c->resume_due = false;
    n->n_resume_due--;
    process_input(c);
  }
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void process_input(struct srv_client *c) {
  struct srv_node *n = c->n;
  const struct resp_limits *lim = &resp_limits_default;
  size_t off = 0;
  while (!c->closing && !c->quit_after) {
    if (c->queue_n >= SRV_QUEUE_MAX) {
      if (!c->paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->paused = true;
      }
      break;
    }
    if (c->paused) {
      c->paused = false;
      uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
    }
    struct resp_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.argv = n->argv;
    cmd.argv_cap = lim->args_max;
    cmd.scratch = n->inline_scratch;
    cmd.scratch_cap = lim->inline_bytes_max;
    size_t consumed = 0;
    enum resp_status st =
        resp_parse(c->in + off, c->in_len - off, &cmd, &consumed, lim);
    if (st == RESP_ERROR) {
      error_now(c, cmd.error);
      c->quit_after = true;
      off = c->in_len;
      break;
    }
    if (st == RESP_COMPLETE && write_behind_read(c, &cmd)) {
      /* Leave the write in the input until the reads ahead of it are
       * answered: proposed now, it could apply before a read's value is
       * taken, and the read would see a write its client sent after it. */
      c->read_barrier = true;
      if (!c->paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->paused = true;
      }
      break;
    }
    off += consumed;
    if (st == RESP_INCOMPLETE)
      break;
    handle_command(c, cmd.argc, cmd.argv);
  }
  if (off > 0) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
  }
  if (c->in_len == 0 && c->in_cap > SRV_IDLE_BUFFER_BYTES_MAX) {
    free(c->in); /* one large command need not pin its memory */
    c->in = NULL;
    c->in_cap = 0;
  }
  srv_client_flush(c);
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct srv_client *c = h->data;
  (void)suggested;
  size_t want = 64 * 1024;
  if (c->in_cap - c->in_len < want) {
    size_t cap = c->in_cap == 0 ? want : c->in_cap;
    while (cap - c->in_len < want)
      cap *= 2;
    uint8_t *p = realloc(c->in, cap);
    if (p == NULL) {
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    c->in = p;
    c->in_cap = cap;
  }
  *buf =
      uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct srv_client *c = s->data;
  (void)buf;
  if (nread < 0) {
    srv_client_close(c);
    return;
  }
  if (nread == 0)
    return;
  c->in_len += (size_t)nread;
  if (c->in_len > resp_limits_default.command_bytes_max + 65536u &&
      c->queue_n >= SRV_QUEUE_MAX) {
    srv_client_close(c); /* a flood while paused */
    return;
  }
  process_input(c);
}

static void on_free_handle(uv_handle_t *h) {
  free(h);
}

static void on_client_connection(uv_stream_t *server, int status) {
  struct srv_node *n = server->data;
  if (status < 0 || n->stopping)
    return;
  struct srv_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  uv_tcp_init(&n->loop, &c->tcp);
  c->tcp.data = c;
  c->n = n;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_free_handle);
    return;
  }
  if (n->n_clients >= n->cfg.clients_max) {
    n->m.clients_refused++;
    static const char full[] = "-ERR max number of clients reached\r\n";
    uv_buf_t b = uv_buf_init((char *)full, sizeof full - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    uv_close((uv_handle_t *)&c->tcp, on_free_handle);
    return;
  }
  n->m.clients_accepted++;
  c->id = n->next_client_id++;
  srv_outq_init(&c->oq);
  srv_list_init(&c->queue);
  srv_list_init(&c->await);
  srv_list_push(&n->clients, &c->link);
  n->n_clients++;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

int srv_clients_listen(struct srv_node *n, char *err, size_t err_size) {
  if (n->app_cmds == NULL && build_app_rows(n) != 0) {
    snprintf(err, err_size, "out of memory");
    return 1;
  }
  if (n->argv == NULL) {
    n->argv = malloc(resp_limits_default.args_max * sizeof *n->argv);
    n->inline_scratch = malloc(resp_limits_default.inline_bytes_max);
    if (n->argv == NULL || n->inline_scratch == NULL) {
      snprintf(err, err_size, "out of memory");
      return 1;
    }
  }
  struct sockaddr_storage addr;
  int rc =
      uv_ip4_addr(n->cfg.bind, n->cfg.client_port, (struct sockaddr_in *)&addr);
  if (rc != 0)
    rc = uv_ip6_addr(n->cfg.bind, n->cfg.client_port,
                     (struct sockaddr_in6 *)&addr);
  if (rc != 0) {
    snprintf(err, err_size, "bind address %s is not numeric", n->cfg.bind);
    return 1;
  }
  uv_tcp_init(&n->loop, &n->client_listener);
  n->client_listener.data = n;
  n->client_listening = true;
  rc = uv_tcp_bind(&n->client_listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&n->client_listener, 511,
                   on_client_connection);
  if (rc != 0) {
    snprintf(err, err_size, "cannot listen for clients on %s:%u: %s",
             n->cfg.bind, n->cfg.client_port, uv_strerror(rc));
    return 1;
  }
  return 0;
}
