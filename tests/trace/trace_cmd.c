/* The commands of a trace file (README.md lists them), on the in-memory
 * host of trace_host.c. Each parses its arguments strictly, so that a typo
 * stops the file instead of being written into its expected output, then
 * drives the engines through include/sabha/engine.h and prints what
 * happened. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "trace_host.h"

/* ---- commands: parsing --------------------------------------------------- */

struct args {
  uint32_t n;
  char *tok[TR_ARGS_MAX];
  bool used[TR_ARGS_MAX];
  char *err;
  size_t err_size;
};

static int fail(struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct args *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->err, a->err_size, fmt, ap);
  va_end(ap);
  return -1;
}

/* The value of key=value, or NULL. */
static const char *kv(struct args *a, const char *key) {
  size_t klen = strlen(key);
  for (uint32_t i = 1; i < a->n; i++)
    if (strncmp(a->tok[i], key, klen) == 0 && a->tok[i][klen] == '=') {
      a->used[i] = true;
      return a->tok[i] + klen + 1;
    }
  return NULL;
}

static bool flag(struct args *a, const char *word) {
  for (uint32_t i = 1; i < a->n; i++)
    if (strcmp(a->tok[i], word) == 0) {
      a->used[i] = true;
      return true;
    }
  return false;
}

/* The k-th argument that is not key=value, or NULL. */
static char *positional(struct args *a, uint32_t k) {
  for (uint32_t i = 1; i < a->n; i++)
    if (strchr(a->tok[i], '=') == NULL && k-- == 0) {
      a->used[i] = true;
      return a->tok[i];
    }
  return NULL;
}

static int unused(struct args *a) {
  for (uint32_t i = 1; i < a->n; i++)
    if (!a->used[i])
      return fail(a, "unexpected argument '%s'", a->tok[i]);
  return 0;
}

static int parse_u64(struct args *a, const char *s, uint64_t *out) {
  if (!dec_parse_flag(s, 0, UINT64_MAX, out))
    return fail(a, "expected a number, got '%s'", s ? s : "");
  return 0;
}

/* A term: a number, or round.node for a Paxos ballot. */
static int parse_term(struct args *a, const char *s, uint64_t *out) {
  const char *dot = strchr(s, '.');
  if (dot == NULL)
    return parse_u64(a, s, out);
  char round[32];
  size_t len = (size_t)(dot - s);
  if (len == 0 || len >= sizeof round)
    return fail(a, "bad ballot '%s'", s);
  memcpy(round, s, len);
  round[len] = '\0';
  uint64_t r = 0;
  uint64_t node = 0;
  if (parse_u64(a, round, &r) != 0 || parse_u64(a, dot + 1, &node) != 0)
    return -1;
  if (node > 0xff)
    return fail(a, "bad ballot '%s'", s);
  *out = r << 8 | node;
  return 0;
}

static int parse_bool(struct args *a, const char *s, bool *out) {
  if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0)
    *out = true;
  else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0)
    *out = false;
  else
    return fail(a, "expected on or off, got '%s'", s);
  return 0;
}

static int parse_node(struct trace_world *w, struct args *a, const char *s,
                      uint32_t *id) {
  uint64_t v = 0;
  if (s == NULL)
    return fail(a, "a node is missing");
  if (s[0] == 'n')
    s++;
  if (parse_u64(a, s, &v) != 0)
    return -1;
  if (v == 0 || v > w->n)
    return fail(a, "no node %s", s);
  *id = (uint32_t)v;
  return 0;
}

/* "A->B": a directed link. */
static int parse_link(struct trace_world *w, struct args *a, char *s,
                      uint32_t *from, uint32_t *to) {
  char *arrow = strstr(s, "->");
  if (arrow == NULL)
    return fail(a, "expected FROM->TO, got '%s'", s);
  *arrow = '\0';
  int rv = parse_node(w, a, s, from);
  *arrow = '-';
  if (rv != 0)
    return rv;
  return parse_node(w, a, arrow + 2, to);
}

/* The first word of a message's description: its type's name. */
static void type_name(const struct trace_world *w, const struct sabha_msg *m,
                      char *buf, size_t size) {
  host_describe(w, m, buf, size);
  buf[strcspn(buf, " ")] = '\0';
}

/* The type number the protocol names `name`, found through the describer
 * (the host knows no protocol's numbers). 0 if none. */
static uint32_t type_of(const struct trace_world *w, const char *name) {
  for (uint32_t type = 1; type < TR_TYPES_MAX; type++) {
    struct sabha_msg m = {.type = type};
    char text[64];
    type_name(w, &m, text, sizeof text);
    if (strcmp(text, name) == 0)
      return type;
  }
  return 0;
}

/* Which queued messages a deliver or drop picks: [FROM->TO] from=
 * to= type= n= */
struct pick {
  uint32_t from; /* 0: any */
  uint32_t to;
  char type[32];
  char has[128]; /* a substring of the description */
  uint64_t n_max;
};

static int parse_pick(struct trace_world *w, struct args *a, struct pick *p) {
  memset(p, 0, sizeof *p);
  p->n_max = UINT64_MAX;
  char *link = positional(a, 0);
  if (link != NULL && parse_link(w, a, link, &p->from, &p->to) != 0)
    return -1;
  const char *s;
  if ((s = kv(a, "from")) != NULL && parse_node(w, a, s, &p->from) != 0)
    return -1;
  if ((s = kv(a, "to")) != NULL && parse_node(w, a, s, &p->to) != 0)
    return -1;
  if ((s = kv(a, "type")) != NULL) {
    if (type_of(w, s) == 0)
      return fail(a, "%s has no message type '%s'", w->protocol, s);
    snprintf(p->type, sizeof p->type, "%s", s);
  }
  if ((s = kv(a, "has")) != NULL)
    snprintf(p->has, sizeof p->has, "%s", s);
  if ((s = kv(a, "n")) != NULL && parse_u64(a, s, &p->n_max) != 0)
    return -1;
  return unused(a);
}

static bool picked(const struct trace_world *w, const struct pick *p,
                   const struct sabha_msg *m) {
  if ((p->from != 0 && m->from != p->from) || (p->to != 0 && m->to != p->to))
    return false;
  char text[TR_DESCRIBE_BYTES];
  host_describe(w, m, text, sizeof text);
  if (p->has[0] != '\0' && strstr(text, p->has) == NULL)
    return false;
  text[strcspn(text, " ")] = '\0';
  return p->type[0] == '\0' || strcmp(text, p->type) == 0;
}

/* The sequence numbers of the queued messages `p` picks, oldest first. */
static size_t pick_seqs(const struct trace_world *w, const struct pick *p,
                        uint64_t **seqs) {
  *seqs = calloc(w->queue_n + 1, sizeof **seqs);
  assert(*seqs != NULL);
  size_t n = 0;
  for (size_t i = 0; i < w->queue_n && n < p->n_max; i++)
    if (picked(w, p, w->queue[i].msg))
      (*seqs)[n++] = w->queue[i].seq;
  return n;
}

static size_t queue_find(const struct trace_world *w, uint64_t seq) {
  for (size_t i = 0; i < w->queue_n; i++)
    if (w->queue[i].seq == seq)
      return i;
  return SIZE_MAX;
}

/* ---- commands: the cluster ----------------------------------------------- */

static const struct {
  const char *name;
  uint32_t bit;
} bug_names[] = {
    {"vote-twice", SABHA_BUG_VOTE_TWICE},
    {"stale-commit", SABHA_BUG_STALE_COMMIT},
    {"skip-log-check", SABHA_BUG_SKIP_LOG_CHECK},
    {"accept-lower-ballot", SABHA_BUG_ACCEPT_LOWER_BALLOT},
    {"no-adopt", SABHA_BUG_NO_ADOPT},
};

static int parse_bugs(struct args *a, const char *s, uint32_t *bits) {
  char list[256];
  snprintf(list, sizeof list, "%s", s);
  *bits = 0;
  for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
    size_t i = 0;
    size_t n = sizeof bug_names / sizeof bug_names[0];
    while (i < n && strcmp(bug_names[i].name, name) != 0)
      i++;
    if (i == n)
      return fail(a, "no bug named '%s'", name);
    *bits |= bug_names[i].bit;
  }
  return 0;
}

/* Reads the create options into `cfg` (the node's id and voters set). */
static int parse_config(struct args *a, struct sabha_config *cfg) {
  const char *s;
  uint64_t v = 0;
  if ((s = kv(a, "prevote")) && parse_bool(a, s, &cfg->pre_vote))
    return -1;
  if ((s = kv(a, "checkquorum")) && parse_bool(a, s, &cfg->check_quorum))
    return -1;
  if ((s = kv(a, "backoff")) && parse_bool(a, s, &cfg->proposer_backoff))
    return -1;
  if ((s = kv(a, "bugs")) && parse_bugs(a, s, &cfg->bugs))
    return -1;
  if ((s = kv(a, "election")) != NULL) {
    char lo[32];
    const char *dots = strstr(s, "..");
    if (dots == NULL || (size_t)(dots - s) >= sizeof lo)
      return fail(a, "election=MIN..MAX, got '%s'", s);
    memcpy(lo, s, (size_t)(dots - s));
    lo[dots - s] = '\0';
    uint64_t hi = 0;
    if (parse_u64(a, lo, &v) || parse_u64(a, dots + 2, &hi))
      return -1;
    cfg->election_timeout_ms_min = (uint32_t)v;
    cfg->election_timeout_ms_max = (uint32_t)hi;
  }
  static const struct {
    const char *key;
    size_t offset;
  } numbers[] = {
      {"heartbeat", offsetof(struct sabha_config, heartbeat_ms)},
      {"chunk", offsetof(struct sabha_config, snapshot_chunk_bytes)},
      {"per-msg", offsetof(struct sabha_config, entries_per_msg_max)},
      {"per-slot", offsetof(struct sabha_config, commands_per_slot_max)},
      {"alpha", offsetof(struct sabha_config, alpha)},
      {"inflight", offsetof(struct sabha_config, inflight_msgs_max)},
      {"uncommitted", offsetof(struct sabha_config, uncommitted_entries_max)},
  };
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
    if ((s = kv(a, numbers[i].key)) == NULL)
      continue;
    if (parse_u64(a, s, &v) != 0)
      return -1;
    if (v > UINT32_MAX)
      return fail(a, "%s=%s is too large", numbers[i].key, s);
    uint32_t u = (uint32_t)v;
    memcpy((char *)cfg + numbers[i].offset, &u, sizeof u);
  }
  return 0;
}

static int cmd_create(struct trace_world *w, struct args *a) {
  if (w->created)
    return fail(a, "create comes once, first");
  const char *protocol = kv(a, "protocol");
  const char *nodes = kv(a, "nodes");
  const char *seed_text = kv(a, "seed");
  uint64_t n = 0;
  uint64_t seed = 1;
  if (protocol == NULL || nodes == NULL)
    return fail(a, "create protocol=P nodes=N [options]");
  if (parse_u64(a, nodes, &n) != 0 ||
      (seed_text && parse_u64(a, seed_text, &seed) != 0))
    return -1;
  if (n == 0 || n > TR_NODES_MAX)
    return fail(a, "nodes must be 1..%u", TR_NODES_MAX);
  snprintf(w->protocol, sizeof w->protocol, "%s", protocol);
  w->ballots = strcmp(protocol, "paxos") == 0 ||
               strcmp(protocol, "multipaxos") == 0; /* src/paxos */
  w->n = (uint32_t)n;
  uint32_t voters[TR_NODES_MAX];
  for (uint32_t i = 0; i < w->n; i++)
    voters[i] = i + 1;
  for (uint32_t id = 1; id <= w->n; id++) {
    sabha_config_init(&w->cfg[id], id, voters, w->n);
    w->cfg[id].seed = seed * 1000 + id;
    if (parse_config(a, &w->cfg[id]) != 0)
      return -1;
  }
  const char *lose = kv(a, "lose-writes");
  if (lose != NULL && parse_bool(a, lose, &w->lose_writes) != 0)
    return -1;
  if (unused(a) != 0)
    return -1;
  w->created = true;
  for (uint32_t id = 1; id <= w->n; id++) {
    int rv = host_start_node(w, id);
    if (rv != 0)
      return fail(a, "n%u: sabha_engine_new: %s", id, sabha_strerror(rv));
    struct node *nd = &w->node[id];
    sabha_engine_status(nd->e, &nd->last); /* a fresh node is not news */
    nd->shown = true;
    host_process_ready(w, id, 0);
  }
  return 0;
}

/* NODE or "all": a bit per node id. */
static int parse_nodes(struct trace_world *w, struct args *a, const char *s,
                       uint32_t *set) {
  *set = 0;
  if (s != NULL && strcmp(s, "all") == 0) {
    for (uint32_t id = 1; id <= w->n; id++)
      *set |= 1u << id;
    return 0;
  }
  uint32_t id = 0;
  if (parse_node(w, a, s, &id) != 0)
    return -1;
  *set = 1u << id;
  return 0;
}

static int cmd_tick(struct trace_world *w, struct args *a) {
  uint32_t set = 0;
  uint64_t ms = 0;
  if (parse_nodes(w, a, positional(a, 0), &set) != 0 ||
      parse_u64(a, positional(a, 1), &ms) != 0 || unused(a) != 0)
    return -1;
  w->timed = true;
  for (uint64_t t = 1; t <= ms; t++) {
    w->elapsed_ms = t;
    for (uint32_t id = 1; id <= w->n; id++)
      if (set & (1u << id))
        host_tick_node(w, id);
  }
  w->timed = false;
  return 0;
}

/* Ticks all nodes and delivers every message after each millisecond, as a
 * network with no latency would: for stories told by time, not by
 * message. Prints only state changes. */
static int cmd_run(struct trace_world *w, struct args *a) {
  uint64_t ms = 0;
  if (parse_u64(a, positional(a, 0), &ms) != 0 || unused(a) != 0)
    return -1;
  w->timed = true;
  w->quiet = true;
  for (uint64_t t = 1; t <= ms; t++) {
    w->elapsed_ms = t;
    for (uint32_t id = 1; id <= w->n; id++)
      host_tick_node(w, id);
    if (!host_stabilize(w))
      host_line(w, 0, "messages still flowing after %u deliveries",
                TR_DELIVERIES_MAX);
  }
  w->quiet = false;
  w->timed = false;
  return 0;
}

static bool is_up(struct trace_world *w, uint32_t id) {
  return w->node[id].e != NULL;
}

static int up_node(struct trace_world *w, struct args *a, const char *s,
                   uint32_t *id) {
  if (parse_node(w, a, s, id) != 0)
    return -1;
  if (!is_up(w, *id))
    return fail(a, "n%u is down", *id);
  return 0;
}

/* Ticks a node until its election timer fires (the engine API has no
 * "campaign now": time is the only way to an election), which shows as a
 * change of role or term, or as messages sent (a pre-candidate trying
 * again). */
static int cmd_campaign(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  if (up_node(w, a, positional(a, 0), &id) != 0 || unused(a) != 0)
    return -1;
  struct sabha_status before;
  sabha_engine_status(w->node[id].e, &before);
  if (before.role == SABHA_ROLE_LEADER)
    return fail(a, "n%u is the leader", id);
  size_t queued = w->queue_n;
  size_t printed = w->o->len;
  w->timed = true;
  for (uint64_t t = 1; t <= TR_WAIT_MS_MAX; t++) {
    w->elapsed_ms = t;
    host_tick_node(w, id);
    struct sabha_status st;
    sabha_engine_status(w->node[id].e, &st);
    if (st.role != before.role || st.term != before.term ||
        w->queue_n > queued) {
      if (w->o->len == printed)
        host_line(w, 0, "n%u: %s again", id, sabha_role_name(st.role));
      w->timed = false;
      return 0;
    }
  }
  w->timed = false;
  host_line(w, 0, "n%u did not campaign within %u ms", id, TR_WAIT_MS_MAX);
  return 0;
}

static int cmd_propose(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  if (up_node(w, a, positional(a, 0), &id) != 0)
    return -1;
  char *value = positional(a, 1);
  if (value == NULL)
    return fail(a, "propose NODE VALUE...");
  for (uint32_t k = 1; value != NULL; value = positional(a, ++k)) {
    int rv = sabha_engine_propose(w->node[id].e, value, strlen(value));
    if (rv != 0)
      host_line(w, 0, "n%u refused %s: %s", id, value, sabha_strerror(rv));
  }
  if (unused(a) != 0)
    return -1;
  host_process_ready(w, id, 0);
  return 0;
}

static int cmd_read(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  uint64_t request = 0;
  if (up_node(w, a, positional(a, 0), &id) != 0 ||
      parse_u64(a, positional(a, 1), &request) != 0 || unused(a) != 0)
    return -1;
  int rv = sabha_engine_read_index(w->node[id].e, request);
  if (rv != 0)
    host_line(w, 0, "n%u refused read %llu: %s", id,
              (unsigned long long)request, sabha_strerror(rv));
  host_process_ready(w, id, 0);
  return 0;
}

static int cmd_transfer(struct trace_world *w, struct args *a) {
  uint32_t from = 0;
  uint32_t to = 0;
  if (up_node(w, a, positional(a, 0), &from) != 0 ||
      parse_node(w, a, positional(a, 1), &to) != 0 || unused(a) != 0)
    return -1;
  int rv = sabha_engine_transfer_leadership(w->node[from].e, to);
  if (rv != 0)
    host_line(w, 0, "n%u refused the transfer: %s", from, sabha_strerror(rv));
  host_process_ready(w, from, 0);
  return 0;
}

/* Snapshots the state machine at its applied index: its hash, and `pad`
 * zero bytes more so that a snapshot can span several chunks. */
static int cmd_compact(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  uint64_t pad = 0;
  const char *s = NULL;
  if (up_node(w, a, positional(a, 0), &id) != 0)
    return -1;
  if ((s = kv(a, "pad")) != NULL && parse_u64(a, s, &pad) != 0)
    return -1;
  if (unused(a) != 0)
    return -1;
  if (pad > TR_SNAP_PAD_MAX)
    return fail(a, "pad is at most %u", TR_SNAP_PAD_MAX);
  struct node *nd = &w->node[id];
  size_t size = sizeof nd->sm + (size_t)pad;
  uint8_t *data = calloc(1, size);
  assert(data != NULL);
  memcpy(data, &nd->sm, sizeof nd->sm);
  int rv = sabha_engine_compact(nd->e, nd->applied, data, size);
  free(data);
  if (rv != 0)
    host_line(w, 0, "n%u refused to compact at %llu: %s", id,
              (unsigned long long)nd->applied, sabha_strerror(rv));
  else
    host_line(w, 0, "n%u compacted up to %llu (%zu bytes)", id,
              (unsigned long long)nd->applied, size);
  host_process_ready(w, id, 0);
  return 0;
}

static int cmd_crash(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  if (up_node(w, a, positional(a, 0), &id) != 0 || unused(a) != 0)
    return -1;
  host_crash_node(w, id);
  return 0;
}

static int start(struct trace_world *w, struct args *a, uint32_t id) {
  int rv = host_start_node(w, id);
  if (rv != 0) {
    host_line(w, 0, "n%u cannot start from its disk: %s", id,
              sabha_strerror(rv));
    return 0;
  }
  host_process_ready(w, id, 0); /* prints its state: not shown yet */
  (void)a;
  return 0;
}

static int cmd_start(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  if (parse_node(w, a, positional(a, 0), &id) != 0 || unused(a) != 0)
    return -1;
  if (is_up(w, id))
    return fail(a, "n%u is up", id);
  return start(w, a, id);
}

static int cmd_restart(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  if (up_node(w, a, positional(a, 0), &id) != 0 || unused(a) != 0)
    return -1;
  host_crash_node(w, id);
  return start(w, a, id);
}

/* ---- commands: the network ----------------------------------------------- */

/* Runs `fn` on each queued message the arguments pick, oldest first and
 * only among those queued before the command (replies wait), or prints
 * "nothing to VERB". */
static int each_picked(struct trace_world *w, struct args *a, const char *verb,
                       void (*fn)(struct trace_world *w, size_t i,
                                  uint64_t arg),
                       uint64_t arg) {
  struct pick p;
  if (parse_pick(w, a, &p) != 0)
    return -1;
  uint64_t *seqs = NULL;
  size_t n = pick_seqs(w, &p, &seqs);
  for (size_t k = 0; k < n; k++) {
    size_t i = queue_find(w, seqs[k]);
    if (i != SIZE_MAX)
      fn(w, i, arg);
  }
  free(seqs);
  if (n == 0)
    host_line(w, 0, "nothing to %s", verb);
  return 0;
}

static void deliver_one(struct trace_world *w, size_t i, uint64_t arg) {
  (void)arg;
  host_deliver_at(w, i);
}

static int cmd_deliver(struct trace_world *w, struct args *a) {
  return each_picked(w, a, "deliver", deliver_one, 0);
}

static void drop_one(struct trace_world *w, size_t i, uint64_t arg) {
  (void)arg;
  struct sabha_msg *m = host_dequeue(w, i);
  host_print_msg(w, 0, m, "-x", "(dropped)");
  free(m);
}

static int cmd_drop(struct trace_world *w, struct args *a) {
  return each_picked(w, a, "drop", drop_one, 0);
}

static void trim_one(struct trace_world *w, size_t i, uint64_t keep) {
  struct sabha_msg *m = w->queue[i].msg;
  if (m->n_entries > keep)
    m->n_entries = (uint32_t)keep;
  if (m->n_entries == 0)
    m->entries = NULL;
  host_print_msg(w, 0, m, "~>", "(trimmed)");
}

/* trim [pick] keep=K: queued messages lose every entry after the first K
 * (a prefix of an append is an append: the story where a leader's newest
 * entries are lost on the way while older ones arrive). */
static int cmd_trim(struct trace_world *w, struct args *a) {
  const char *s = kv(a, "keep");
  uint64_t keep = 0;
  if (s == NULL || parse_u64(a, s, &keep) != 0)
    return s ? -1 : fail(a, "trim [FROM->TO] [type=] [has=] keep=K");
  return each_picked(w, a, "trim", trim_one, keep);
}

static int cmd_pending(struct trace_world *w, struct args *a) {
  if (unused(a) != 0)
    return -1;
  for (size_t i = 0; i < w->queue_n; i++)
    host_print_msg(w, 0, w->queue[i].msg, "->", NULL);
  if (w->queue_n == 0)
    host_line(w, 0, "no messages");
  return 0;
}

static int cmd_stabilize(struct trace_world *w, struct args *a) {
  if (unused(a) != 0)
    return -1;
  if (!host_stabilize(w))
    host_line(w, 0, "messages still flowing after %u deliveries",
              TR_DELIVERIES_MAX);
  else if (w->o->len == 0)
    host_line(w, 0, "no messages");
  return 0;
}

/* cut A B (both ways), cut A->B (one way). */
static int cmd_cut(struct trace_world *w, struct args *a) {
  uint32_t x = 0;
  uint32_t y = 0;
  char *first = positional(a, 0);
  if (first != NULL && strstr(first, "->") != NULL) {
    if (parse_link(w, a, first, &x, &y) != 0 || unused(a) != 0)
      return -1;
    w->cut[x][y] = true;
    return 0;
  }
  if (parse_node(w, a, first, &x) != 0 ||
      parse_node(w, a, positional(a, 1), &y) != 0 || unused(a) != 0)
    return -1;
  w->cut[x][y] = w->cut[y][x] = true;
  return 0;
}

static int cmd_isolate(struct trace_world *w, struct args *a) {
  uint32_t x = 0;
  if (parse_node(w, a, positional(a, 0), &x) != 0 || unused(a) != 0)
    return -1;
  for (uint32_t y = 1; y <= w->n; y++)
    if (y != x)
      w->cut[x][y] = w->cut[y][x] = true;
  return 0;
}

/* partition 1,2 3,4,5: links between groups are cut both ways. */
static int cmd_partition(struct trace_world *w, struct args *a) {
  uint32_t group[TR_NODES_MAX + 1] = {0};
  char *s;
  uint32_t g = 0;
  for (; (s = positional(a, g)) != NULL; g++) {
    char list[128];
    snprintf(list, sizeof list, "%s", s);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
      uint32_t id = 0;
      if (parse_node(w, a, tok, &id) != 0)
        return -1;
      if (group[id] != 0)
        return fail(a, "n%u is in two groups", id);
      group[id] = g + 1;
    }
  }
  if (g < 2 || unused(a) != 0)
    return fail(a, "partition GROUP GROUP..., e.g. partition 1,2 3,4,5");
  for (uint32_t x = 1; x <= w->n; x++)
    for (uint32_t y = 1; y <= w->n; y++)
      if (group[x] != 0 && group[y] != 0 && group[x] != group[y])
        w->cut[x][y] = true;
  return 0;
}

static int cmd_heal(struct trace_world *w, struct args *a) {
  if (unused(a) != 0)
    return -1;
  memset(w->cut, 0, sizeof w->cut);
  return 0;
}

/* Parses "1..4/1,5/2" into entries whose value is "e" each. */
static int parse_runs(struct args *a, const char *s, struct sabha_entry *out,
                      uint32_t cap, uint32_t *n) {
  char list[512];
  snprintf(list, sizeof list, "%s", s);
  *n = 0;
  for (char *run = strtok(list, ","); run; run = strtok(NULL, ",")) {
    char *slash = strchr(run, '/');
    if (slash == NULL)
      return fail(a, "entries are runs of FIRST[..LAST]/TERM, got '%s'", run);
    *slash = '\0';
    char *dots = strstr(run, "..");
    uint64_t first = 0;
    uint64_t last = 0;
    uint64_t term = 0;
    if (dots != NULL)
      *dots = '\0';
    if (parse_u64(a, run, &first) != 0 ||
        parse_u64(a, dots ? dots + 2 : run, &last) != 0 ||
        parse_term(a, slash + 1, &term) != 0)
      return -1;
    for (uint64_t i = first; i <= last; i++) {
      if (*n == cap)
        return fail(a, "at most %u entries", cap);
      out[(*n)++] = (struct sabha_entry){.index = i,
                                         .term = term,
                                         .type = SABHA_ENTRY_COMMAND,
                                         .size_bytes = 1,
                                         .data = (const uint8_t *)"e"};
    }
  }
  return 0;
}

/* An index/term pair "I/T" into two fields. */
static int parse_pair(struct args *a, const char *s, uint64_t *index,
                      uint64_t *term) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s);
  char *slash = strchr(buf, '/');
  if (slash == NULL)
    return fail(a, "expected INDEX/TERM, got '%s'", s);
  *slash = '\0';
  if (parse_u64(a, buf, index) != 0 || parse_term(a, slash + 1, term) != 0)
    return -1;
  return 0;
}

/* inject FROM->TO type=NAME [field=value...]: a hand-made message, with the
 * fields of struct sabha_msg by name, stepped into TO at once. */
static int cmd_inject(struct trace_world *w, struct args *a) {
  struct sabha_msg m = {0};
  struct sabha_entry entries[64];
  uint8_t zeros[256] = {0};
  char *link = positional(a, 0);
  const char *s;
  if (link == NULL || parse_link(w, a, link, &m.from, &m.to) != 0)
    return link ? -1 : fail(a, "inject FROM->TO type=NAME [field=value...]");
  if ((s = kv(a, "type")) == NULL || (m.type = type_of(w, s)) == 0)
    return fail(a, "%s has no message type '%s'", w->protocol, s ? s : "");
  static const char *const plain[] = {
      "term",      "index",   "log_term",    "commit",          "hint_index",
      "hint_term", "context", "snap_offset", "snap_total_bytes"};
  uint64_t *fields[] = {&m.term,    &m.index,       &m.log_term,
                        &m.commit,  &m.hint_index,  &m.hint_term,
                        &m.context, &m.snap_offset, &m.snap_total_bytes};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if ((s = kv(a, plain[i])) != NULL && parse_term(a, s, fields[i]) != 0)
      return -1;
  m.reject = flag(a, "reject");
  if ((s = kv(a, "entries")) != NULL &&
      parse_runs(a, s, entries, 64, &m.n_entries) != 0)
    return -1;
  m.entries = m.n_entries > 0 ? entries : NULL;
  if ((s = kv(a, "snap")) != NULL &&
      parse_pair(a, s, &m.snap.index, &m.snap.term) != 0)
    return -1;
  uint64_t size = 0;
  if ((s = kv(a, "snap_size_bytes")) != NULL && parse_u64(a, s, &size) != 0)
    return -1;
  if (size > sizeof zeros)
    return fail(a, "snap_size_bytes is at most %zu here", sizeof zeros);
  m.snap_size_bytes = (uint32_t)size;
  m.snap_data = size > 0 ? zeros : NULL;
  if (unused(a) != 0)
    return -1;
  if (!is_up(w, m.to))
    return fail(a, "n%u is down", m.to);
  host_print_msg(w, 0, &m, "->", NULL);
  int rv = sabha_engine_step(w->node[m.to].e, &m);
  if (rv != 0)
    host_line(w, 1, "n%u refused it: %s", m.to, sabha_strerror(rv));
  host_process_ready(w, m.to, 1);
  return 0;
}

/* ---- commands: looking ----------------------------------------------------
 */

/* Prints entries as runs "first..last/term value" of one term and value. */
struct run_printer {
  struct trace_world *w;
  char text[4096];
  size_t len;
  bool open;
  uint64_t first;
  uint64_t last;
  uint64_t term;
  uint64_t hash;
  char value[TR_VALUE_BYTES * 4 + 16];
};

static void run_flush(struct run_printer *r) {
  if (!r->open || r->len >= sizeof r->text)
    return;
  char t[32];
  host_term_text(r->w, r->term, t, sizeof t);
  if (r->first == r->last)
    r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len,
                               "%s%llu/%s %s", r->len ? ", " : "",
                               (unsigned long long)r->first, t, r->value);
  else
    r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len,
                               "%s%llu..%llu/%s %s", r->len ? ", " : "",
                               (unsigned long long)r->first,
                               (unsigned long long)r->last, t, r->value);
  r->open = false;
}

static void run_add(struct run_printer *r, const struct sabha_entry *e) {
  uint64_t h = 0xcbf29ce484222325ull ^ e->type;
  for (uint32_t i = 0; i < e->size_bytes; i++)
    h = (h ^ e->data[i]) * 0x100000001b3ull;
  if (r->open && e->index == r->last + 1 && e->term == r->term &&
      h == r->hash) {
    r->last = e->index;
    return;
  }
  run_flush(r);
  r->open = true;
  r->first = r->last = e->index;
  r->term = e->term;
  r->hash = h;
  host_value_text(e, r->value, sizeof r->value);
}

/* Runs `show` for the nodes named by the optional first argument (all by
 * default) that are up, and prints "nN: down" for the others. */
static int each_node(struct trace_world *w, struct args *a,
                     void (*show)(struct trace_world *w, uint32_t id,
                                  const struct sabha_status *st)) {
  uint32_t set = 0;
  char *s = positional(a, 0);
  if (parse_nodes(w, a, s ? s : "all", &set) != 0 || unused(a) != 0)
    return -1;
  for (uint32_t id = 1; id <= w->n; id++) {
    if (!(set & (1u << id)))
      continue;
    if (!is_up(w, id)) {
      host_line(w, 0, "n%u: down", id);
      continue;
    }
    struct sabha_status st;
    sabha_engine_status(w->node[id].e, &st);
    show(w, id, &st);
  }
  return 0;
}

static void show_log(struct trace_world *w, uint32_t id,
                     const struct sabha_status *st) {
  struct run_printer r = {.w = w};
  if (st->snapshot_index > 0)
    r.len = (size_t)snprintf(r.text, sizeof r.text, "snapshot up to %llu",
                             (unsigned long long)st->snapshot_index);
  for (uint64_t i = st->first_index; i <= st->last_index && i > 0; i++) {
    struct sabha_entry e;
    if (sabha_engine_entry(w->node[id].e, i, &e) == 0)
      run_add(&r, &e);
  }
  run_flush(&r);
  host_line(w, 0, "n%u: %s", id, r.len ? r.text : "empty");
}

static int cmd_log(struct trace_world *w, struct args *a) {
  return each_node(w, a, show_log);
}

/* What a restart would find. */
static int cmd_disk(struct trace_world *w, struct args *a) {
  uint32_t id = 0;
  if (parse_node(w, a, positional(a, 0), &id) != 0 || unused(a) != 0)
    return -1;
  const struct disk *d = &w->node[id].disk;
  struct run_printer r = {.w = w};
  for (size_t i = 0; i < d->n; i++) {
    struct sabha_entry e = {.index = d->entries[i].index,
                            .term = d->entries[i].term,
                            .type = d->entries[i].type,
                            .size_bytes = d->entries[i].size_bytes,
                            .data = d->entries[i].data};
    run_add(&r, &e);
  }
  run_flush(&r);
  char t[32];
  char snap[96] = "";
  if (d->has_snapshot) {
    char st[32];
    snprintf(snap, sizeof snap, " snapshot=%llu/%s (%zu bytes)",
             (unsigned long long)d->snap.index,
             host_term_text(w, d->snap.term, st, sizeof st), d->snap_size);
  }
  host_line(w, 0, "n%u disk: %s=%s vote=%u commit=%llu%s entries: %s", id,
            w->ballots ? "ballot" : "term",
            host_term_text(w, d->hs.term, t, sizeof t), d->hs.vote,
            (unsigned long long)d->hs.commit, snap, r.len ? r.text : "none");
  return 0;
}

static void show_status(struct trace_world *w, uint32_t id,
                        const struct sabha_status *st) {
  char t[32];
  char leader[16] = "-";
  if (st->leader != SABHA_NODE_NONE)
    snprintf(leader, sizeof leader, "%u", st->leader);
  char log[64] = "empty";
  if (st->last_index >= st->first_index)
    snprintf(log, sizeof log, "%llu..%llu", (unsigned long long)st->first_index,
             (unsigned long long)st->last_index);
  host_line(w, 0,
            "n%u: %s %s=%s vote=%u leader=%s commit=%llu applied=%llu "
            "log=%s",
            id, sabha_role_name(st->role), w->ballots ? "ballot" : "term",
            host_term_text(w, st->term, t, sizeof t), st->vote, leader,
            (unsigned long long)st->commit, (unsigned long long)st->applied,
            log);
}

static int cmd_status(struct trace_world *w, struct args *a) {
  return each_node(w, a, show_status);
}

/* State machine safety and election safety over the whole run so far. */
static int cmd_check(struct trace_world *w, struct args *a) {
  if (unused(a) != 0)
    return -1;
  if (w->conflicts == 0 && w->two_leaders == 0) {
    host_line(w, 0, "safe: no index applied two ways, one leader per %s",
              w->ballots ? "ballot" : "term");
    return 0;
  }
  host_line(w, 0, "UNSAFE: %u conflicting applies, %u second leaders; %s",
            w->conflicts, w->two_leaders, w->first_problem);
  return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct {
  const char *name;
  int (*fn)(struct trace_world *w, struct args *a);
} commands[] = {
    {"create", cmd_create},
    {"tick", cmd_tick},
    {"run", cmd_run},
    {"campaign", cmd_campaign},
    {"propose", cmd_propose},
    {"read", cmd_read},
    {"transfer", cmd_transfer},
    {"compact", cmd_compact},
    {"crash", cmd_crash},
    {"start", cmd_start},
    {"restart", cmd_restart},
    {"deliver", cmd_deliver},
    {"drop", cmd_drop},
    {"trim", cmd_trim},
    {"pending", cmd_pending},
    {"stabilize", cmd_stabilize},
    {"cut", cmd_cut},
    {"isolate", cmd_isolate},
    {"partition", cmd_partition},
    {"heal", cmd_heal},
    {"inject", cmd_inject},
    {"log", cmd_log},
    {"disk", cmd_disk},
    {"status", cmd_status},
    {"check", cmd_check},
};

int trace_command(struct trace_world *w, const char *text, struct trace_out *o,
                  char *err, size_t err_size) {
  char buf[1024];
  struct args a = {.err = err, .err_size = err_size};
  if (strlen(text) >= sizeof buf)
    return fail(&a, "command longer than %zu bytes", sizeof buf - 1);
  snprintf(buf, sizeof buf, "%s", text);
  for (char *tok = strtok(buf, " \t"); tok; tok = strtok(NULL, " \t")) {
    if (a.n == TR_ARGS_MAX)
      return fail(&a, "more than %u words", TR_ARGS_MAX);
    a.tok[a.n++] = tok;
  }
  if (a.n == 0)
    return fail(&a, "empty command");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(commands[i].name, a.tok[0]) != 0)
      continue;
    if (!w->created && commands[i].fn != cmd_create)
      return fail(&a, "create must come first");
    w->o = o;
    int rv = commands[i].fn(w, &a);
    w->o = NULL;
    return rv;
  }
  return fail(&a, "unknown command '%s'", a.tok[0]);
}
