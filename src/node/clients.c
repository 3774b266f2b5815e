/* Client streams: RESP bytes in, commands parsed and handed on, replies out
 * in the order the commands came, whatever order they complete in.
 *
 * The host moves bytes (rt_stream_input, rt_stream_out_take); this file
 * does everything else a connection needs:
 *
 *   parsing    resp_parse() over the stream's input buffer; a protocol error
 *              is answered and the stream closed once the answer is out
 *              (nothing sent after it, or after QUIT, is read);
 *   access     each command is checked against the connection's user
 *              (auth.c) before it goes anywhere, so a command refused here
 *              is never forwarded, proposed or read;
 *   order      a command that can be answered at once is, unless something
 *              earlier of the same stream still waits; then it queues. A
 *              read's value is taken when it reaches the head of its queue,
 *              after every earlier command of the stream was answered, so a
 *              pipelined GET sees the stream's own earlier writes; and a
 *              write waits in the input while an earlier read of the stream
 *              is unanswered, so the read cannot see it;
 *   limits     at most RT_QUEUE_MAX requests in flight per stream, and
 *              finished replies move to the output only while less than
 *              RT_OUT_SOFT_BYTES wait to be written: beyond either, the
 *              stream stops reading (ports.stream_pause). A client that
 *              pipelines reads of a large value and never reads the replies
 *              holds a few megabytes and no more, and everyone else is
 *              served. What back-pressure cannot bound (one huge reply,
 *              replies relayed from the leader, a client that never reads
 *              again) the settings of runtime.h do, as Redis's do: output
 *              and query buffer limits, an idle timeout, and a budget for
 *              all clients' buffers together (rt_clients_scan);
 *   closing    marked where decided, released from rt_reap() only
 *              (runtime_internal.h, "Freeing");
 *   MULTI      as Redis: commands after MULTI are checked and answered
 *              +QUEUED here; EXEC sends them all as one SABHA.TXN command
 *              (one log entry, applied whole by every replica), with the
 *              keys WATCHed and the lowest index a WATCH was answered at.
 *              WATCH is a linearizable read whose value is the index the
 *              serving node had applied whole (the leader's, for a
 *              follower; not the entry being applied, rt_watch_index):
 *              every change after it has a later index, so the store's
 *              check inside the entry (a watched key's revision past that
 *              index) sees every change made after WATCH, through any
 *              node. A command refused while queuing makes EXEC answer
 *              -EXECABORT, as Redis does; one whose arguments are wrong
 *              is queued as its error, which EXEC answers in its place
 *              while the others run, where Redis reports it (exec_fill). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/decimal.h"
#include "node/runtime_internal.h"

static void set_paused(struct rt_stream *c, bool paused) {
  if (c->paused == paused || c->closing)
    return;
  c->paused = paused;
  if (c->in_process) {
    if (!paused && c->pair != NULL)
      rt_pair_kick(c->pair); /* what waits for it may come now */
    return;
  }
  c->rt->ports.stream_pause(c->rt->ports.ctx, c, paused);
}

static bool out_full(const struct rt_stream *c) {
  return c->out.len + c->wbuf.len >= RT_OUT_SOFT_BYTES;
}

/* Replies of `c` not yet written: what client-output-buffer-limit judges. */
static uint64_t output_bytes(const struct rt_stream *c) {
  return (uint64_t)c->out.len + c->wbuf.len + c->held_bytes;
}

/* What `c` holds in buffers: what the clients' memory budget counts. */
static uint64_t usage_bytes(const struct rt_stream *c) {
  return c->in_len + output_bytes(c);
}

/* Reading stops while parsing more would only add to what waits: requests
 * in flight, replies unsent, or replies relayed from the leader and held
 * behind an earlier one, are at their bound, or the memory budget said
 * so. */
static bool input_blocked(const struct rt_stream *c) {
  return c->queue_n >= RT_QUEUE_MAX || out_full(c) ||
         c->held_bytes >= RT_OUT_SOFT_BYTES || c->memory_paused;
}

/* Reading may go on once nothing holds it back: parse what waits from
 * rt_run (rt_clients_resume), not here, where the caller may be in the
 * middle of something. */
static void resume_if_free(struct rt_stream *c) {
  struct rt *rt = c->rt;
  if (c->paused && !c->closing && !c->read_barrier && !c->out_backlog &&
      !c->memory_paused && c->held_bytes < RT_OUT_SOFT_BYTES &&
      c->queue_n < RT_QUEUE_MAX / 2 && !c->resume_due) {
    c->resume_due = true;
    rt->n_resume_due++;
    rt_kick(rt);
  }
}

/* client-output-buffer-limit, as Redis's `normal` class: a client whose
 * unsent replies pass the hard limit, or stay past the soft one for
 * out_soft_s seconds, is closed at once, without a word (it reads nothing
 * anyway). Back-pressure keeps a client that pipelines within
 * RT_OUT_SOFT_BYTES plus one reply, so only a huge reply or one that never
 * reads again gets here. Other nodes' forwarding links are exempt: they
 * carry many clients' replies, and their node reads them at once. Returns
 * true when `c` was closed. */
static bool output_limits(struct rt_stream *c, uint64_t now_ms) {
  struct rt *rt = c->rt;
  const struct rt_config *cfg = &rt->cfg;
  if (c->forwarded_link || c->in_process || c->closing ||
      c->kind != RT_STREAM_CLIENT)
    return false;
  uint64_t used = output_bytes(c);
  bool over_soft = cfg->out_soft_bytes > 0 && used > cfg->out_soft_bytes;
  if (!over_soft)
    c->out_soft_ms = 0;
  else if (c->out_soft_ms == 0)
    c->out_soft_ms = now_ms + 1; /* 0 means "not over"; +1 keeps it so */
  bool hard = cfg->out_hard_bytes > 0 && used > cfg->out_hard_bytes;
  bool soft = over_soft &&
              now_ms + 1 - c->out_soft_ms >= (uint64_t)cfg->out_soft_s * 1000u;
  if (!hard && !soft)
    return false;
  rt->m.out_limit_closed++;
  rt_log_client(rt,
                "client %" PRIu64 ": %" PRIu64 " bytes of replies unsent, past "
                "client-output-buffer-limit (%s %" PRIu64 " bytes%s); closing",
                c->id, used, hard ? "hard" : "soft",
                hard ? cfg->out_hard_bytes : cfg->out_soft_bytes,
                hard ? "" : " for too long");
  rt_stream_close(c, false);
  return true;
}

void rt_stream_kick_output(struct rt_stream *s) {
  if (s->out.len == 0 || s->taking || s->closing)
    return;
  if (s->in_process)
    rt_pair_kick(s); /* moved by rt_groups_pump */
  else
    s->rt->ports.stream_output(s->rt->ports.ctx, s);
}

/* ---- creating and closing ------------------------------------------------ */

static struct rt_stream *stream_new(struct rt *rt, enum rt_stream_kind kind) {
  struct rt_stream *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->rt = rt;
  s->kind = (uint8_t)kind;
  s->id = rt->next_stream_id++;
  /* A client's buffers never grow past its hard output limit: one reply
   * that would (an MGET of hundreds of large values) fails there and the
   * client is closed, instead of the node first building all of it. */
  size_t out_max = RT_OUT_BYTES_MAX;
  if (kind == RT_STREAM_CLIENT && rt->cfg.out_hard_bytes > 0 &&
      rt->cfg.out_hard_bytes < out_max)
    out_max = (size_t)rt->cfg.out_hard_bytes;
  resp_buf_init(&s->out, out_max);
  resp_buf_init(&s->wbuf, out_max);
  resp_buf_init(&s->multi, RT_MULTI_BYTES_MAX + 4u * RT_MULTI_ARGS_MAX);
  resp_buf_init(&s->watch_keys, RT_WATCH_KEYS_MAX * (4u + (64u << 10)));
  resp_buf_init(&s->held, out_max);
  list_init(&s->link);
  list_init(&s->reap);
  list_init(&s->queue);
  list_init(&s->await);
  list_init(&s->pending);
  list_init(&s->due);
  s->multi_group = RT_GROUP_NONE;
  s->watch_group = RT_GROUP_NONE;
  return s;
}

static bool probation_evict(struct rt *rt);

const char *rt_stream_accept(struct rt *rt, bool loopback,
                             struct rt_stream **out) {
  *out = NULL;
  if (rt->dead)
    return "-ERR the node is stopping\r\n";
  const char *denied = rt_auth_accept_refusal(rt, loopback);
  if (denied != NULL) {
    rt->m.clients_refused++;
    return denied;
  }
  /* Past clients_max a few more are let in on probation: other nodes'
   * forwarding links, which must not be locked out by clients (every write
   * through a follower would fail). A connection on probation that does
   * not announce itself as one with its first command is refused then;
   * with every such slot taken, the oldest one past its grace makes room. */
  if (rt->n_clients >= rt->cfg.clients_max + RT_FORWARD_SLOTS &&
      !probation_evict(rt)) {
    rt->m.clients_refused++;
    return "-ERR max number of clients reached\r\n";
  }
  struct rt_stream *s = stream_new(rt, RT_STREAM_CLIENT);
  if (s == NULL) {
    rt->m.clients_refused++;
    return "-ERR out of memory\r\n";
  }
  s->probation = rt->n_clients >= rt->cfg.clients_max;
  s->user = (uint8_t)rt_auth_initial_user(rt);
  s->accepted_ms = rt_now_ms(rt);
  s->active_ms = s->accepted_ms;
  rt->m.clients_accepted++;
  list_push(&rt->clients, &s->link);
  rt->n_clients++;
  *out = s;
  return NULL;
}

struct rt_stream *rt_stream_new_forward(struct rt *rt) {
  return stream_new(rt, RT_STREAM_FORWARD);
}

struct rt_stream *rt_stream_new_pair(struct rt *rt) {
  struct rt_stream *s = stream_new(rt, RT_STREAM_CLIENT);
  if (s == NULL)
    return NULL;
  /* Group 0 checked the user before routing: the group runs what it sends. */
  s->user = RT_USER_ADMIN;
  /* It carries the replies of every client of group 0, as another node's
   * forwarding link does (SABHA.FORWARDED), each client held to its own
   * limits there: only the bound on one reply applies here. Held to one
   * client's, a reply past it would close the link, failing the others'
   * commands, and the read that made it would go again, and again. */
  s->out.len_max = s->wbuf.len_max = RT_OUT_BYTES_MAX;
  s->accepted_ms = rt_now_ms(rt);
  s->active_ms = s->accepted_ms;
  snprintf(s->name, sizeof s->name, "group-link");
  list_push(&rt->clients, &s->link);
  rt->n_clients++;
  return s;
}

/* Unlinks and frees a client stream's requests. Placeholders stay in
 * forwarding links (their replies are matched by position). */
static void release_requests(struct rt_stream *c) {
  rt_watch_stop(c);
  while (!list_empty(&c->queue)) {
    struct rt_req *r = LIST_OF(c->queue.next, struct rt_req, qlink);
    list_remove(&r->qlink);
    if (r->where == RT_IN_FORWARD) {
      r->c = NULL; /* its reply still comes: the link drops it */
      continue;
    }
    rt_req_unlist(r);
    rt_req_free(r);
  }
  c->queue_n = 0;
  c->held_bytes = 0;
  if (c->reg != NULL) {
    rt_req_unlist(c->reg);
    rt_req_free(c->reg);
    c->reg = NULL;
  }
  if (c->resume_due) {
    c->resume_due = false;
    c->rt->n_resume_due--;
  }
}

void rt_stream_close(struct rt_stream *s, bool flush) {
  if (s->closing)
    return;
  s->closing = true;
  s->close_flush = flush;
  list_push(&s->rt->reaping, &s->reap);
}

_Static_assert(RT_OUT_BYTES_MAX == 256u << 20,
              "rt_client_flush's answer for a reply not held says 256 MiB");

static void multi_reset(struct rt_stream *c);
static void unwatch(struct rt_stream *c);

void rt_reap(struct rt *rt) {
  while (!list_empty(&rt->reaping)) {
    struct rt_stream *s = LIST_OF(rt->reaping.next, struct rt_stream, reap);
    list_remove(&s->reap);
    if (s->kind == RT_STREAM_CLIENT) {
      release_requests(s);
      multi_reset(s); /* what it held counts no more */
      unwatch(s);
      list_remove(&s->link);
      rt->n_clients--;
    } else {
      rt_fwd_lost(s, NULL);
    }
    if (s->handed || s->in_process) { /* the host let go of it already
                                         (rt_close_crash), or never had it */
      if (s->in_process)
        rt_pair_unlink(s);
      s->handed = true;
      rt_stream_free(s);
      continue;
    }
    s->handed = true;
    rt->ports.stream_close(rt->ports.ctx, s, s->close_flush);
  }
}

void rt_streams_free_all(struct rt *rt) {
  /* Clients first: their forwarded requests become placeholders, which the
   * links then free with their own. */
  while (!list_empty(&rt->clients)) {
    struct rt_stream *s = LIST_OF(rt->clients.next, struct rt_stream, link);
    release_requests(s);
    list_remove(&s->link);
    list_remove(&s->reap);
    if (s->in_process)
      rt_pair_unlink(s);
    s->handed = true;
    rt_stream_free(s);
  }
  rt->n_clients = 0;
  while (!list_empty(&rt->fwds)) {
    struct rt_stream *f = LIST_OF(rt->fwds.next, struct rt_stream, link);
    while (!list_empty(&f->pending)) {
      struct rt_req *r = LIST_OF(f->pending.next, struct rt_req, glink);
      assert(r->c == NULL);
      rt_req_unlist(r);
      rt_req_free(r);
    }
    list_remove(&f->link);
    list_remove(&f->reap);
    if (f->in_process)
      rt_pair_unlink(f);
    f->handed = true;
    rt_stream_free(f);
  }
  rt->fwd = NULL;
  while (!list_empty(&rt->reaping)) {
    struct rt_stream *s = LIST_OF(rt->reaping.next, struct rt_stream, reap);
    list_remove(&s->reap);
  }
}

void rt_stream_lost(struct rt_stream *s) {
  struct rt *rt = s->rt;
  if (s->handed)
    return; /* the runtime closed it already: the host is closing it */
  s->handed = true;
  if (s->closing) {
    list_remove(&s->reap); /* marked, not yet reaped: do it here */
  }
  s->closing = true;
  s->lost = true;
  if (s->kind == RT_STREAM_CLIENT) {
    release_requests(s);
    list_remove(&s->link);
    rt->n_clients--;
  } else {
    rt_fwd_lost(s, "the connection was lost");
  }
  rt_reap(rt);
  rt_kick(rt);
}

void rt_stream_free(struct rt_stream *s) {
  if (s == NULL)
    return;
  assert(s->handed);
  free(s->in);
  resp_buf_free(&s->out);
  resp_buf_free(&s->wbuf);
  resp_buf_free(&s->multi);
  resp_buf_free(&s->watch_keys);
  resp_buf_free(&s->held);
  free(s);
}

void rt_stream_set_host(struct rt_stream *s, void *host) {
  s->host = host;
}

void rt_stream_set_host_bounded(struct rt_stream *s) {
  s->host_bounded = true;
}

void rt_stream_set_one_reply(struct rt_stream *s) {
  s->one_reply = true;
}

void *rt_stream_host(const struct rt_stream *s) {
  return s->host;
}

enum rt_stream_kind rt_stream_kind(const struct rt_stream *s) {
  return (enum rt_stream_kind)s->kind;
}

/* ---- output ----------------------------------------------------------------
 */

bool rt_stream_out_take(struct rt_stream *s, const uint8_t **data, size_t *n) {
  if (s->taking || s->out.len == 0)
    return false;
  struct resp_buf tmp = s->wbuf;
  s->wbuf = s->out;
  s->out = tmp;
  resp_buf_reset(&s->out);
  s->taking = true;
  *data = s->wbuf.data;
  *n = s->wbuf.len;
  return true;
}

void rt_stream_out_done(struct rt_stream *s) {
  s->taking = false;
  resp_buf_reset(&s->wbuf);
  if (s->wbuf.cap > RT_IDLE_BUFFER_BYTES_MAX)
    resp_buf_free(&s->wbuf); /* keeps its len_max: a client's hard limit */
  if (s->closing)
    return;
  s->active_ms = rt_now_ms(s->rt);
  rt_watch_drained(s);
  if (s->kind == RT_STREAM_CLIENT)
    rt_client_flush(s); /* replies held back by the soft limit may go */
  else
    rt_stream_kick_output(s);
  rt_reap(s->rt);
}

/* ---- one command ------------------------------------------------------------
 */

static void req_enqueue(struct rt_stream *c, struct rt_req *r) {
  list_push(&c->queue, &r->qlink);
  c->queue_n++;
}

/* Answers from rt->scratch: straight to the output when nothing waits ahead
 * of it, else as a finished request behind the others. */
static void reply_now(struct rt_stream *c) {
  struct rt *rt = c->rt;
  if (list_empty(&c->queue)) {
    resp_buf_append(&c->out, rt->scratch.data, rt->scratch.len);
  } else {
    struct rt_req *r = rt_req_alloc(rt, c, NULL, 0, NULL);
    if (r == NULL) {
      rt_stream_close(c, false);
      resp_buf_reset(&rt->scratch);
      return;
    }
    resp_buf_append(&r->reply, rt->scratch.data, rt->scratch.len);
    r->state = RT_REQ_DONE;
    req_enqueue(c, r);
    rt_client_hold(c, r);
  }
  resp_buf_reset(&rt->scratch);
}

static void error_now(struct rt_stream *c, const char *msg) {
  c->rt->m.commands_failed++;
  resp_write_error(&c->rt->scratch, msg);
  reply_now(c);
}

static bool arg_is(const struct resp_arg *a, const char *word) {
  size_t n = strlen(word);
  return a->len == n && strncasecmp((const char *)a->ptr, word, n) == 0;
}

/* What a connection on probation (let in past clients_max) may send: a
 * forwarding link logs in first when the node has a password, then says
 * SABHA.FORWARDED (and with a cluster secret says it again, with its
 * proof). */
static bool probation_allows(const struct resp_arg *argv) {
  return arg_is(&argv[0], "AUTH") || arg_is(&argv[0], "SABHA.FORWARDED");
}

/* After a command of a connection on probation: it stays while it may yet
 * say SABHA.FORWARDED (a login that succeeded), leaves probation once it
 * has, and is refused otherwise (a login or a SABHA.FORWARDED that
 * failed): an outsider may not sit in a node's slot guessing passwords. */
static void probation_after(struct rt_stream *c) {
  struct rt *rt = c->rt;
  if (c->forwarded_link) {
    c->probation = false;
    return;
  }
  static const struct resp_arg fwd = {(const uint8_t *)"SABHA.FORWARDED", 15};
  const struct rt_command *cmd = rt_command_find(rt, &fwd);
  char msg[160];
  assert(cmd != NULL);
  if (rt_auth_refusal(c, cmd, msg, sizeof msg) == NULL)
    return;
  rt->m.clients_refused++;
  c->quit_after = true;
}

/* A connection on probation that is not a forwarding link: refused with
 * Redis's words, once it has been answered. */
static void probation_refuse(struct rt_stream *c) {
  c->probation = false;
  c->rt->m.clients_refused++;
  error_now(c, "ERR max number of clients reached");
  c->quit_after = true;
  rt_client_flush(c);
}

/* Makes room past clients_max by refusing the oldest connection on
 * probation that had RT_PROBATION_GRACE_MS to say SABHA.FORWARDED and did
 * not. Returns true when one went (reaped: the count is down already). */
static bool probation_evict(struct rt *rt) {
  uint64_t now = rt_now_ms(rt);
  for (struct list_link *l = rt->clients.next; l != &rt->clients; l = l->next) {
    struct rt_stream *c = LIST_OF(l, struct rt_stream, link);
    if (!c->probation || c->closing)
      continue;
    if (now < c->accepted_ms + RT_PROBATION_GRACE_MS)
      return false; /* the oldest is still in its grace: so are the rest */
    rt->m.probation_evicted++;
    probation_refuse(c);
    if (!c->closing)
      rt_stream_close(c, false); /* something of it still waits */
    rt_reap(rt);
    return true;
  }
  return false;
}

/* ---- MULTI, EXEC, WATCH ----------------------------------------------------
 */

static void put_item(struct resp_buf *b, const void *p, size_t n) {
  uint8_t len[4];
  len[0] = (uint8_t)n;
  len[1] = (uint8_t)(n >> 8);
  len[2] = (uint8_t)(n >> 16);
  len[3] = (uint8_t)(n >> 24);
  resp_buf_append(b, len, 4);
  resp_buf_append(b, p, n);
}

/* Walks the items put_item wrote: the next one from *off, or false. */
static bool next_item(const struct resp_buf *b, size_t *off,
                      struct resp_arg *out) {
  if (*off + 4 > b->len)
    return false;
  const uint8_t *p = b->data + *off;
  size_t n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
             (size_t)p[3] << 24;
  assert(*off + 4 + n <= b->len);
  out->ptr = p + 4;
  out->len = n;
  *off += 4 + n;
  return true;
}

/* A transaction's queued commands and the WATCHed keys wait for EXEC
 * whatever the memory budget does (were such a client's reading stopped,
 * its EXEC could never come), so they are held to half the budget of all
 * clients together instead: rt->txn_bytes, kept as they change. */
static size_t txn_held(const struct rt_stream *c) {
  return c->multi.len + c->watch_keys.len + c->watch_pending;
}

/* What a WATCH's keys take in watch_keys. */
static size_t watch_bytes(uint32_t argc, const struct resp_arg *argv) {
  size_t n = 0;
  for (uint32_t i = 1; i < argc; i++)
    n += 4 + argv[i].len;
  return n;
}

static void txn_account(struct rt_stream *c, size_t before) {
  struct rt *rt = c->rt;
  size_t now = txn_held(c);
  assert(now >= before || rt->txn_bytes >= before - now);
  rt->txn_bytes = rt->txn_bytes + now - before;
}

/* True when `bytes` more would pass half of maxmemory-clients. */
static bool txn_over_budget(const struct rt_stream *c, size_t bytes) {
  const struct rt *rt = c->rt;
  return rt->cfg.clients_memory_max > 0 &&
         rt->txn_bytes + bytes > rt->cfg.clients_memory_max / 2;
}

#define ERR_TXN_BUDGET                                                         \
  "OOM the clients' transactions and watched keys would pass half of "         \
  "maxmemory-clients"

static void multi_reset(struct rt_stream *c) {
  size_t before = txn_held(c);
  c->in_multi = c->multi_dirty = false;
  c->multi_n = c->multi_args = c->multi_wrong_n = 0;
  c->multi_group = RT_GROUP_NONE;
  resp_buf_reset(&c->multi);
  txn_account(c, before);
  if (c->multi.cap > RT_IDLE_BUFFER_BYTES_MAX)
    resp_buf_free(&c->multi);
}

static void unwatch(struct rt_stream *c) {
  size_t before = txn_held(c);
  c->n_watch = 0;
  c->watch_rev = 0;
  c->watch_group = RT_GROUP_NONE;
  resp_buf_reset(&c->watch_keys);
  c->watch_pending = 0; /* none in flight but at a close (UNWATCH waits) */
  txn_account(c, before);
  if (c->watch_keys.cap > RT_IDLE_BUFFER_BYTES_MAX)
    resp_buf_free(&c->watch_keys);
}

static void ok_now(struct rt_stream *c) {
  resp_write_simple(&c->rt->scratch, "OK");
  reply_now(c);
}

/* Group 0 of several: a transaction's commands and the keys it WATCHes must
 * all be in one group, which applies it as one entry. */
static bool same_group(uint32_t a, uint32_t b) {
  return a == RT_GROUP_NONE || b == RT_GROUP_NONE || a == b;
}

/* Queues a command after MULTI: +QUEUED, or an error that dooms EXEC.
 * With `wrong` (its arguments' error, rt_command_check), the error is
 * queued in its place instead, as an item "0" and the message: Redis finds
 * such errors when the command runs, so EXEC answers it in its place of
 * the array and runs the others (exec_fill). */
static void multi_queue(struct rt_stream *c, const struct rt_command *cmd,
                        uint32_t argc, const struct resp_arg *argv,
                        uint32_t group, const char *wrong) {
  char msg[160];
  size_t bytes = 16;
  bool txn_ok = rt_command_txn_ok(cmd, argc);
  if (wrong != NULL) {
    bytes += 8 + strlen(wrong);
    argc = 0; /* nothing of it goes to the log */
    group = RT_GROUP_NONE;
  }
  for (uint32_t i = 0; i < argc; i++)
    bytes += 4 + argv[i].len;
  if (!txn_ok) {
    char lower[32];
    rt_command_lower_name(cmd, lower, sizeof lower);
    snprintf(msg, sizeof msg,
             "ERR '%s' cannot be part of a transaction in sabha", lower);
  } else if (c->multi_n >= RT_MULTI_COMMANDS_MAX ||
             c->multi_args + 1 + argc > RT_MULTI_ARGS_MAX ||
             c->multi.len + bytes > RT_MULTI_BYTES_MAX) {
    snprintf(msg, sizeof msg,
             "ERR a transaction holds at most %u commands, %u arguments "
             "and %u bytes",
             RT_MULTI_COMMANDS_MAX, RT_MULTI_ARGS_MAX, RT_MULTI_BYTES_MAX);
  } else if (!same_group(c->multi_group, group) ||
             !same_group(c->watch_group, group)) {
    snprintf(msg, sizeof msg,
             "CROSSSLOT a transaction's keys must all be in one group: give "
             "them one {hash tag} (docs/api.md, \"Groups\")");
  } else if (txn_over_budget(c, bytes)) {
    snprintf(msg, sizeof msg, "%s", ERR_TXN_BUDGET);
  } else {
    char n[16];
    int len = snprintf(n, sizeof n, "%u", argc);
    size_t before = txn_held(c);
    put_item(&c->multi, n, (size_t)len);
    for (uint32_t i = 0; i < argc; i++)
      put_item(&c->multi, argv[i].ptr, argv[i].len);
    if (wrong != NULL)
      put_item(&c->multi, wrong, strlen(wrong));
    txn_account(c, before);
    if (c->multi.err == 0) {
      if (group != RT_GROUP_NONE)
        c->multi_group = group;
      c->multi_n++;
      if (wrong != NULL)
        c->multi_wrong_n++;
      else
        c->multi_args += 1 + argc;
      resp_write_simple(&c->rt->scratch, "QUEUED");
      reply_now(c);
      return;
    }
    snprintf(msg, sizeof msg, "OOM out of memory");
  }
  c->multi_dirty = true;
  error_now(c, msg);
}

/* The bytes of argv as one multibulk command on the wire. */
static uint64_t wire_bytes(uint32_t argc, const struct resp_arg *argv) {
  char head[32];
  uint64_t n = (uint64_t)snprintf(head, sizeof head, "*%u\r\n", argc);
  for (uint32_t i = 0; i < argc; i++)
    n += (uint64_t)snprintf(head, sizeof head, "$%zu\r\n", argv[i].len) +
         argv[i].len + 2;
  return n;
}

/* What EXEC's reply needs besides the store's, when commands were queued
 * with their arguments' error (multi_queue): which places those hold, and
 * the errors, as RESP, in order. The store never sees them, so the entry
 * holds only commands every replica can run; the node that has the client
 * puts the errors into the array, the same through any node. */
struct rt_exec_fill {
  uint32_t n;       /* the commands queued: EXEC's array */
  uint32_t n_wrong; /* of n, answered from errors[] */
  bool probe;       /* the store's first reply answers EXISTS of a watched
                       key, sent only so that the entry checks the WATCH
                       (every command was wrong): dropped */
  uint8_t wrong[RT_MULTI_COMMANDS_MAX]; /* 1: errors[] answers place i */
  size_t errors_len;
  uint8_t errors[]; /* "-ERR ...\r\n", one after another */
};

/* The fill of c's queue, or NULL when memory is short. */
static struct rt_exec_fill *exec_fill_new(const struct rt_stream *c,
                                          bool probe) {
  size_t bytes = 0, off = 0;
  struct resp_arg item;
  while (next_item(&c->multi, &off, &item))
    bytes += item.len + 3;
  struct rt_exec_fill *f = calloc(1, sizeof *f + bytes);
  if (f == NULL)
    return NULL;
  f->probe = probe;
  off = 0;
  while (next_item(&c->multi, &off, &item)) {
    int64_t n = 0;
    bool ok = dec_parse_i64(item.ptr, item.len, &n) == DEC_OK && n >= 0;
    assert(ok && f->n < RT_MULTI_COMMANDS_MAX);
    (void)ok;
    if (n == 0) {
      /* Its error: line breaks made spaces, so that no argument it
       * echoes can end the reply early. */
      next_item(&c->multi, &off, &item);
      f->errors[f->errors_len++] = '-';
      for (size_t i = 0; i < item.len; i++) {
        uint8_t ch = item.ptr[i];
        f->errors[f->errors_len++] = ch == '\r' || ch == '\n' ? ' ' : ch;
      }
      f->errors[f->errors_len++] = '\r';
      f->errors[f->errors_len++] = '\n';
      f->wrong[f->n] = 1;
      f->n_wrong++;
    } else {
      for (int64_t i = 0; i < n; i++)
        next_item(&c->multi, &off, &item);
    }
    f->n++;
  }
  assert(f->n == c->multi_n && f->n_wrong == c->multi_wrong_n);
  assert(f->errors_len <= bytes);
  return f;
}

/* The size of the RESP reply that is not an array at p[0, n): one line, or
 * a bulk string; 0 when there is no whole one. */
static size_t scalar_size(const uint8_t *p, size_t n) {
  const uint8_t *nl = n > 0 ? memchr(p, '\n', n) : NULL;
  if (nl == NULL || nl == p || nl[-1] != '\r')
    return 0;
  size_t line = (size_t)(nl - p) + 1;
  if (p[0] == '+' || p[0] == '-' || p[0] == ':')
    return line;
  if (p[0] != '$')
    return 0;
  int64_t len;
  if (dec_parse_i64(p + 1, line - 3, &len) != DEC_OK || len < -1)
    return 0;
  if (len == -1)
    return line;
  if ((uint64_t)len > n - line || n - line - (size_t)len < 2)
    return 0;
  return line + (size_t)len + 2;
}

/* EXEC's reply into b: the store's replies to the commands it ran, p[0,
 * n), with each wrong command's error in its place. Any other reply (nil:
 * a WATCHed key changed; an error: nothing ran) goes as it is. */
static void exec_fill_write(struct resp_buf *b, const struct rt_exec_fill *f,
                            const uint8_t *p, size_t n) {
  uint32_t want = f->n - f->n_wrong + (f->probe ? 1u : 0u);
  const uint8_t *nl = n > 0 ? memchr(p, '\n', n) : NULL;
  int64_t m = -1;
  size_t head = nl != NULL ? (size_t)(nl - p) + 1 : 0;
  if (head >= 4 && p[0] == '*' && dec_parse_i64(p + 1, head - 3, &m) != DEC_OK)
    m = -1;
  /* Every element whole, or the reply goes as it is. */
  size_t off = head;
  for (int64_t i = 0; m == (int64_t)want && i < m; i++) {
    size_t one = scalar_size(p + off, n - off);
    if (one == 0)
      m = -1;
    off += one;
  }
  if (m != (int64_t)want || off != n) {
    resp_buf_append(b, p, n);
    return;
  }
  resp_write_array(b, f->n);
  off = head;
  if (f->probe)
    off += scalar_size(p + off, n - off);
  size_t e = 0;
  for (uint32_t i = 0; i < f->n; i++) {
    const uint8_t *from = f->wrong[i] ? f->errors + e : p + off;
    size_t one = f->wrong[i] ? scalar_size(from, f->errors_len - e)
                             : scalar_size(from, n - off);
    assert(one > 0);
    resp_buf_append(b, from, one);
    if (f->wrong[i])
      e += one;
    else
      off += one;
  }
  assert(off == n && e == f->errors_len);
}

/* EXEC: the queued commands become one SABHA.TXN request, sent like any
 * write (forwarded by a follower, applied as one entry). Those queued with
 * their arguments' error stay here (exec_fill_write). */
static void multi_exec(struct rt_stream *c) {
  struct rt *rt = c->rt;
  if (c->multi_dirty) {
    multi_reset(c);
    unwatch(c);
    error_now(c, "EXECABORT Transaction discarded because of previous "
                 "errors.");
    return;
  }
  if (c->multi_n == 0) {
    multi_reset(c);
    unwatch(c);
    resp_write_array(&rt->scratch, 0);
    reply_now(c);
    return;
  }
  /* Only wrong ones: nothing to run, but a WATCH to check, which only the
   * log can do at its place; with none, the errors are the reply. */
  bool probe = c->multi_wrong_n == c->multi_n && c->n_watch > 0;
  struct rt_exec_fill *fill = NULL;
  if (c->multi_wrong_n > 0) {
    fill = exec_fill_new(c, probe);
    if (fill == NULL) {
      multi_reset(c);
      unwatch(c);
      error_now(c, "OOM out of memory");
      return;
    }
    if (c->multi_wrong_n == c->multi_n && !probe) {
      exec_fill_write(&rt->scratch, fill, (const uint8_t *)"*0\r\n", 4);
      free(fill);
      multi_reset(c);
      unwatch(c);
      reply_now(c);
      return;
    }
  }
  uint32_t group = c->multi_group != RT_GROUP_NONE   ? c->multi_group
                   : c->watch_group != RT_GROUP_NONE ? c->watch_group
                                                     : rt->cfg.group;
  uint32_t argc = 3 + c->n_watch + c->multi_args + (probe ? 3u : 0u);
  struct resp_arg *argv = malloc(argc * sizeof *argv);
  char rev[24], nw[16];
  struct rt_req *r = NULL;
  bool too_big = false;
  if (argv != NULL) {
    argv[0].ptr = (const uint8_t *)"SABHA.TXN";
    argv[0].len = 9;
    argv[1].ptr = (const uint8_t *)rev;
    argv[1].len = (size_t)snprintf(rev, sizeof rev, "%" PRIu64, c->watch_rev);
    argv[2].ptr = (const uint8_t *)nw;
    argv[2].len = (size_t)snprintf(nw, sizeof nw, "%u", c->n_watch);
    uint32_t i = 3;
    size_t off = 0;
    while (next_item(&c->watch_keys, &off, &argv[i]))
      i++;
    if (probe) {
      argv[i++] = (struct resp_arg){(const uint8_t *)"2", 1};
      argv[i++] = (struct resp_arg){(const uint8_t *)"EXISTS", 6};
      argv[i] = argv[3];
      i++;
    }
    off = 0;
    struct resp_arg count;
    while (next_item(&c->multi, &off, &count)) {
      int64_t n = 0;
      dec_parse_i64(count.ptr, count.len, &n);
      if (n == 0) {
        next_item(&c->multi, &off, &count); /* its error, in fill */
        continue;
      }
      argv[i++] = count;
      for (int64_t k = 0; k < n; k++)
        next_item(&c->multi, &off, &argv[i++]);
    }
    assert(i == argc);
    /* The WATCHed keys ride along: together with the queued commands they
     * may outgrow what one command may hold, and a follower would forward
     * a command the leader's parser refuses, closing the link of every
     * other client of this node. Refused here, the same through any node. */
    too_big = argc > resp_limits_default.args_max ||
              wire_bytes(argc, argv) > resp_limits_default.command_bytes_max;
    if (!too_big)
      r = rt_req_alloc(rt, c, rt_command_txn(rt), argc, argv);
    free(argv);
  }
  multi_reset(c);
  unwatch(c);
  if (too_big) {
    free(fill);
    char msg[160];
    snprintf(msg, sizeof msg,
             "EXECABORT the transaction with its WATCHed keys is larger "
             "than one command may be (%zu bytes)",
             resp_limits_default.command_bytes_max);
    error_now(c, msg);
    return;
  }
  if (r == NULL) {
    free(fill);
    error_now(c, "OOM out of memory");
    return;
  }
  r->group = group;
  r->fill = fill;
  req_enqueue(c, r);
  rt_dispatch(rt, r);
}

/* The reply of a WATCH, at the head of its stream's queue: the index it
 * was answered at is kept with its keys, and the client gets +OK. */
static void watch_settle(struct rt_stream *c, struct rt_req *r) {
  struct rt *rt = c->rt;
  int64_t index = -1;
  if (r->state == RT_REQ_READABLE) {
    index = (int64_t)rt_watch_index(rt);
  } else if (r->reply.len > 3 && r->reply.data[0] == ':') {
    const uint8_t *p = r->reply.data + 1;
    size_t n = r->reply.len - 3; /* without ':' and CRLF */
    int64_t v;
    if (dec_parse_i64(p, n, &v) == DEC_OK && v >= 0)
      index = v;
  }
  r->state = RT_REQ_DONE;
  size_t before = txn_held(c);
  size_t pending = watch_bytes(r->argc, r->argv);
  c->watch_pending -= pending < c->watch_pending ? pending : c->watch_pending;
  if (index >= 0)
    for (uint32_t i = 1; i < r->argc; i++)
      put_item(&c->watch_keys, r->argv[i].ptr, r->argv[i].len);
  txn_account(c, before);
  if (index < 0)
    return; /* an error: it goes to the client as it is */
  if (c->n_watch == 0 || (uint64_t)index < c->watch_rev)
    c->watch_rev = (uint64_t)index;
  c->n_watch += r->argc - 1;
  resp_buf_reset(&r->reply);
  if (c->watch_keys.err != 0) {
    unwatch(c);
    resp_write_error(&r->reply, "OOM out of memory");
    return;
  }
  resp_write_simple(&r->reply, "OK");
}

/* The keys the connection watches, with those of its WATCHes not yet
 * answered (watch_settle keeps them as each reaches the head of the
 * queue): pipelined WATCHes are held to RT_WATCH_KEYS_MAX together. */
static uint32_t watched_n(const struct rt_stream *c) {
  uint32_t n = c->n_watch;
  for (const struct list_link *l = c->queue.next; l != &c->queue; l = l->next) {
    const struct rt_req *r = LIST_OF(l, const struct rt_req, qlink);
    if (r->cmd != NULL && rt_command_multi(r->cmd) == RT_MC_WATCH)
      n += r->argc - 1;
  }
  return n;
}

/* MULTI, EXEC, DISCARD, UNWATCH, SABHA.WATCH, and any command while a
 * MULTI is open. Returns true when the command was dealt with here. */
static bool multi_command(struct rt_stream *c, const struct rt_command *cmd,
                          uint32_t argc, const struct resp_arg *argv,
                          uint32_t group) {
  struct rt *rt = c->rt;
  switch (rt_command_multi(cmd)) {
  case RT_MC_MULTI:
    if (c->in_multi) {
      error_now(c, "ERR MULTI calls can not be nested");
      return true;
    }
    c->in_multi = true;
    ok_now(c);
    return true;
  case RT_MC_DISCARD:
  case RT_MC_EXEC:
    if (!c->in_multi) {
      error_now(c, rt_command_multi(cmd) == RT_MC_EXEC
                       ? "ERR EXEC without MULTI"
                       : "ERR DISCARD without MULTI");
      return true;
    }
    if (rt_command_multi(cmd) == RT_MC_EXEC) {
      multi_exec(c);
      return true;
    }
    multi_reset(c);
    unwatch(c);
    ok_now(c);
    return true;
  case RT_MC_UNWATCH:
    if (c->in_multi) {
      error_now(c, "ERR UNWATCH inside MULTI is not allowed in sabha");
      return true;
    }
    unwatch(c);
    ok_now(c);
    return true;
  case RT_MC_WATCH:
    if (c->in_multi) {
      error_now(c, "ERR WATCH inside MULTI is not allowed");
      return true;
    }
    if (watched_n(c) + argc - 1 > RT_WATCH_KEYS_MAX) {
      char msg[96];
      snprintf(msg, sizeof msg, "ERR a connection may watch at most %u keys",
               RT_WATCH_KEYS_MAX);
      error_now(c, msg);
      return true;
    }
    if (!same_group(c->watch_group, group)) {
      error_now(c, "CROSSSLOT a connection's WATCHed keys must all be in one "
                   "group: give them one {hash tag} (docs/api.md, "
                   "\"Groups\")");
      return true;
    }
    if (txn_over_budget(c, watch_bytes(argc, argv))) {
      error_now(c, ERR_TXN_BUDGET);
      return true;
    }
    if (group != RT_GROUP_NONE)
      c->watch_group = group;
    return false; /* a read, settled by watch_settle */
  case RT_MC_SABHA_WATCH:
    if (c->in_multi) {
      c->multi_dirty = true;
      error_now(c, "ERR SABHA.WATCH inside MULTI is not allowed");
      return true;
    }
    if (!list_empty(&c->queue) || c->forwarded_link) {
      error_now(c, "ERR SABHA.WATCH must come after the connection's other "
                   "commands are answered");
      return true;
    }
    rt_watch_start(c, argc, argv, &rt->scratch);
    if (rt->scratch.len > 0)
      reply_now(c);
    return true;
  case RT_MC_NONE:
    break;
  }
  if (!c->in_multi || arg_is(&argv[0], "QUIT"))
    return false;
  multi_queue(c, cmd, argc, argv, group, NULL);
  return true;
}

static void run_command(struct rt_stream *c, uint32_t argc,
                        const struct resp_arg *argv) {
  struct rt *rt = c->rt;
  const struct rt_command *cmd = rt_command_find(rt, &argv[0]);
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
    c->multi_dirty = c->in_multi;
    error_now(c, msg);
    return;
  }
  if (c->watcher != NULL && !arg_is(&argv[0], "QUIT")) {
    error_now(c, "ERR the connection is a SABHA.WATCH stream; only QUIT is "
                 "allowed");
    return;
  }
  bool in_args;
  const char *bad =
      rt_command_check(c, cmd, argc, argv, msg, sizeof msg, &in_args);
  if (bad != NULL && in_args && c->in_multi &&
      rt_command_multi(cmd) == RT_MC_NONE) {
    multi_queue(c, cmd, argc, argv, RT_GROUP_NONE, bad);
    return;
  }
  if (bad != NULL) {
    enum rt_multi_cmd m = rt_command_multi(cmd);
    if (c->in_multi && m != RT_MC_EXEC && m != RT_MC_DISCARD)
      c->multi_dirty = true;
    error_now(c, bad);
    return;
  }
  /* Group 0 of several: the group that serves it (groups.c). */
  uint32_t group = RT_GROUP_NONE;
  if (rt_routes(rt) && (!rt_command_is_local(cmd) ||
                        rt_command_multi(cmd) == RT_MC_SABHA_WATCH)) {
    group = rt_command_group(rt, cmd, argc, argv, msg, sizeof msg);
    if (group == RT_GROUP_CROSS) {
      c->multi_dirty = c->in_multi;
      error_now(c, msg);
      return;
    }
    if (group == RT_GROUP_ANY)
      group = RT_GROUP_NONE;
  }
  if (multi_command(c, cmd, argc, argv, group))
    return;
  if (rt_command_is_local(cmd)) {
    rt_exec_local(c, cmd, argc, argv, &rt->scratch);
    reply_now(c);
    return;
  }
  /* WATCH always asks the leader: its index must be linearizable. */
  bool stale = rt_command_is_read(cmd) && c->stale_reads &&
               rt_command_multi(cmd) != RT_MC_WATCH;
  if (stale) {
    rt->m.stale_reads++;
    if (list_empty(&c->queue)) {
      rt_exec_read(group == RT_GROUP_NONE ? rt : rt_group_rt(rt, group), cmd,
                   argc, argv, &c->out);
      return;
    }
  }
  struct rt_req *r = rt_req_alloc(rt, c, cmd, argc, argv);
  if (r == NULL) {
    error_now(c, "OOM out of memory");
    return;
  }
  if (group != RT_GROUP_NONE)
    r->group = group;
  req_enqueue(c, r);
  if (rt_command_multi(cmd) == RT_MC_WATCH && !c->forwarded_link &&
      !c->in_process) {
    /* Held from now; the keys join watch_keys when it is answered
     * (watch_settle, which a link's stream does not run). */
    size_t before = txn_held(c);
    c->watch_pending += watch_bytes(argc, argv);
    txn_account(c, before);
  }
  if (stale) {
    r->state = RT_REQ_READABLE;
    return;
  }
  rt_dispatch(rt, r);
}

static void handle_command(struct rt_stream *c, uint32_t argc,
                           const struct resp_arg *argv) {
  struct rt *rt = c->rt;
  rt->m.commands++;
  if (c->link_challenged && !arg_is(&argv[0], "SABHA.FORWARDED"))
    rt_auth_link_unproved(c);
  if (!c->probation) {
    run_command(c, argc, argv);
    return;
  }
  if (!probation_allows(argv)) {
    rt->m.clients_refused++;
    error_now(c, "ERR max number of clients reached");
    c->quit_after = true;
    return;
  }
  run_command(c, argc, argv);
  probation_after(c);
}

/* ---- the queue --------------------------------------------------------------
 */

/* True while a read of this stream waits to be answered. */
static bool queue_has_read(const struct rt_stream *c) {
  for (const struct list_link *l = c->queue.next; l != &c->queue; l = l->next) {
    const struct rt_req *r = LIST_OF(l, const struct rt_req, qlink);
    if (rt_command_is_read(r->cmd))
      return true;
  }
  return false;
}

/* A parsed command that changes state while an earlier read of the same
 * stream is still unanswered. */
static bool write_behind_read(const struct rt_stream *c, uint32_t argc,
                              const struct resp_arg *argv) {
  if (argc == 0)
    return false;
  const struct rt_command *k = rt_command_find(c->rt, &argv[0]);
  /* EXEC waits too: the index of an unanswered WATCH is not known yet; and
   * so do UNWATCH and DISCARD, which forget the keys of every WATCH before
   * them, kept only when its reply reaches the head of the queue. */
  enum rt_multi_cmd m = k != NULL ? rt_command_multi(k) : RT_MC_NONE;
  if (m == RT_MC_EXEC || m == RT_MC_UNWATCH || m == RT_MC_DISCARD)
    return queue_has_read(c);
  if (k == NULL || rt_command_is_read(k) || rt_command_is_local(k))
    return false;
  return queue_has_read(c);
}

/* Another node's forwarding link, or a group's end of an in-process link:
 * a stream that carries the replies of many clients. */
static bool is_link(const struct rt_stream *c) {
  return c->forwarded_link || c->in_process;
}

/* A link's reply, appended to its output from `mark` on, passed what the
 * output may hold (RT_OUT_BYTES_MAX, one reply's worst case): it is
 * answered with an error in its place. Each client at the other end is
 * held to its own limits there; closing the link instead would answer the
 * others' writes "outcome unknown", and the read would be sent again over
 * a new link, to close it again. */
static void link_reply_too_big(struct rt_stream *c, size_t mark) {
  char msg[160];
  snprintf(msg, sizeof msg,
           "ERR the reply is larger than %zu bytes, the most a forwarding "
           "link carries",
           c->out.len_max);
  resp_buf_truncate(&c->out, mark);
  resp_write_error(&c->out, msg);
}

void rt_client_flush(struct rt_stream *c) {
  if (c->closing)
    return;
  struct rt *rt = c->rt;
  bool backlog = false;
  while (!list_empty(&c->queue)) {
    struct rt_req *r = LIST_OF(c->queue.next, struct rt_req, qlink);
    if (r->state == RT_REQ_WAITING)
      break;
    if (out_full(c)) {
      backlog = true;
      break;
    }
    /* Not a backlog: the host takes what is there within its turn, and
     * its rt_stream_out_done() brings the next. */
    if (c->one_reply && (c->out.len > 0 || c->taking))
      break;
    if (r->cmd != NULL && !c->forwarded_link && !c->in_process &&
        rt_command_multi(r->cmd) == RT_MC_WATCH)
      watch_settle(c, r);
    size_t mark = c->out.len;
    bool fits = c->out.err == 0;
    if (r->state == RT_REQ_READABLE)
      rt_exec_read(r->group == rt->cfg.group ? rt : rt_group_rt(rt, r->group),
                   r->cmd, r->argc, r->argv, &c->out);
    else if (r->reply.err != 0)
      /* Its reply could not be built whole: the command is still answered,
       * so that each later reply answers its own. */
      resp_write_error(&c->out,
                       r->reply.err == SABHA_ENOMEM
                           ? "ERR the node could not hold this command's "
                             "reply (out of memory); it may have been "
                             "carried out"
                           : "ERR this command's reply is larger than one "
                             "reply may be (256 MiB); it may have been "
                             "carried out");
    else if (r->fill != NULL)
      exec_fill_write(&c->out, r->fill, r->reply.data, r->reply.len);
    else
      resp_buf_append(&c->out, r->reply.data, r->reply.len);
    if (fits && c->out.err == SABHA_ETOOBIG && is_link(c))
      link_reply_too_big(c, mark);
    list_remove(&r->qlink);
    c->queue_n--;
    assert(c->held_bytes >= r->held_bytes);
    c->held_bytes -= r->held_bytes;
    assert(r->where == RT_IN_NONE);
    rt_req_free(r);
  }
  if (c->out.err != 0) {
    if (c->out.err == SABHA_ETOOBIG && !c->forwarded_link)
      rt->m.out_limit_closed++;
    rt_log_client(rt,
                  "client %" PRIu64 ": a reply passed %zu bytes, the most its "
                  "output may hold (client-output-buffer-limit); closing",
                  c->id, c->out.len_max);
    rt_stream_close(c, false);
    return;
  }
  if (output_limits(c, rt_now_ms(rt)))
    return;
  if (backlog && !c->out_backlog) {
    rt->m.output_paused++;
    set_paused(c, true);
  }
  c->out_backlog = backlog;
  if (c->quit_after && list_empty(&c->queue)) {
    rt_stream_close(c, true);
    return;
  }
  rt_stream_kick_output(c);
  /* Parse what waits in the input buffer later, from rt_run: parsing here
   * could run a new command before the caller (say, one proposing a
   * stream's queued writes in order) is done. */
  if (c->read_barrier && !queue_has_read(c))
    c->read_barrier = false;
  resume_if_free(c);
}

/* ---- input
 * ------------------------------------------------------------------- */

static void process_input(struct rt_stream *c) {
  struct rt *rt = c->rt;
  size_t off = 0;
  while (!c->closing && !c->quit_after && !rt->dead) {
    if (input_blocked(c)) {
      set_paused(c, true);
      break;
    }
    set_paused(c, false);
    /* Until it has logged in, a client may send only small commands, so
     * that nobody without the password makes the node buffer megabytes.
     * Judged per command: an AUTH earlier in the same input counts. */
    const struct resp_limits *lim = c->user == RT_USER_NONE && !c->host_bounded
                                        ? &resp_limits_unauth
                                        : &resp_limits_default;
    struct resp_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.argv = rt->argv;
    cmd.argv_cap = lim->args_max;
    cmd.scratch = rt->inline_scratch;
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
    if (st == RESP_COMPLETE && write_behind_read(c, cmd.argc, cmd.argv)) {
      /* Leave the write in the input until the reads ahead of it are
       * answered: proposed now, it could apply before a read's value is
       * taken, and the read would see a write its client sent after it. */
      c->read_barrier = true;
      set_paused(c, true);
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
  if (c->in_len == 0 && c->in_cap > RT_IDLE_BUFFER_BYTES_MAX) {
    free(c->in); /* one large command need not pin its memory */
    c->in = NULL;
    c->in_cap = 0;
  }
  rt_client_flush(c);
}

bool rt_pair_command(struct rt_stream *p, uint32_t argc,
                     const struct resp_arg *argv) {
  struct rt *rt = p->rt;
  assert(p->in_process && p->kind == RT_STREAM_CLIENT && argc > 0);
  if (p->closing || p->quit_after || rt->dead || p->paused)
    return false;
  if (input_blocked(p)) {
    set_paused(p, true);
    return false;
  }
  /* As process_input: a write waits while an earlier read of the stream is
   * unanswered. */
  if (write_behind_read(p, argc, argv)) {
    p->read_barrier = true;
    set_paused(p, true);
    return false;
  }
  rt->m.handed++;
  handle_command(p, argc, argv);
  return true;
}

void rt_pair_commands_done(struct rt_stream *p) {
  p->active_ms = rt_now_ms(p->rt);
  rt_client_flush(p);
  rt_reap(p->rt);
}

void rt_client_hold(struct rt_stream *c, struct rt_req *r) {
  assert(c->held_bytes >= r->held_bytes);
  c->held_bytes -= r->held_bytes;
  r->held_bytes = r->reply.len;
  c->held_bytes += r->held_bytes;
}

/* The idle timeout (Redis's `timeout`): a client that sent nothing and was
 * sent nothing for idle_timeout_s, and waits for nothing the node is
 * doing, is closed without a word, as Redis does. Forwarding links stay
 * (they idle whenever the follower's clients do), and so does a client
 * whose command is still being carried out, however long that takes. */
static bool idle_expired(const struct rt_stream *c, uint64_t now_ms) {
  const struct rt *rt = c->rt;
  /* A watcher waits for the store's changes, however long they take. */
  if (rt->cfg.idle_timeout_s == 0 || c->forwarded_link || c->in_process ||
      c->watcher != NULL)
    return false;
  if (now_ms < c->active_ms + (uint64_t)rt->cfg.idle_timeout_s * 1000u)
    return false;
  if (list_empty(&c->queue))
    return true;
  const struct rt_req *head = LIST_OF(c->queue.next, struct rt_req, qlink);
  return head->state != RT_REQ_WAITING; /* only unread replies wait */
}

/* Budget buckets: a client's usage by its power of two (0 for none). */
#define BUDGET_BUCKETS 65u

static uint32_t budget_bucket(uint64_t bytes) {
  return bytes == 0 ? 0u : 64u - (uint32_t)__builtin_clzll(bytes);
}

/* The clients' memory budget (maxmemory-clients, M). Past M/2, the
 * clients that hold the most stop being read, until those still read hold
 * M/2 at most: they add no commands, and so no input and no replies, while
 * the others are served. Past M, the largest are closed until the rest fit
 * (with a WARN line each). "The most" is judged by powers of two, so that
 * one pass over the clients decides. Forwarding links are neither counted
 * nor touched: a node's link carries its clients, whom the budget of that
 * node judges. */
static void clients_budget(struct rt *rt, const uint64_t *sums,
                           uint64_t total) {
  uint64_t max = rt->cfg.clients_memory_max;
  uint32_t pause_from = BUDGET_BUCKETS; /* buckets at or above: not read */
  uint64_t below = 0;
  for (uint32_t b = 0; b < BUDGET_BUCKETS; b++) {
    if (below + sums[b] > max / 2) {
      pause_from = b;
      break;
    }
    below += sums[b];
  }
  uint32_t close_from = BUDGET_BUCKETS; /* above: closed; at: some */
  uint64_t excess = total > max ? total - max : 0, above = 0;
  for (uint32_t b = BUDGET_BUCKETS; excess > 0 && b-- > 0;) {
    if (above + sums[b] >= excess) {
      close_from = b;
      break;
    }
    above += sums[b];
  }
  uint64_t closed = 0;
  for (struct list_link *l = rt->clients.next; l != &rt->clients; l = l->next) {
    struct rt_stream *c = LIST_OF(l, struct rt_stream, link);
    if (c->closing || c->forwarded_link || c->in_process || c->probation)
      continue;
    uint64_t used = usage_bytes(c);
    uint32_t b = budget_bucket(used);
    if (b > close_from || (b == close_from && closed < excess)) {
      closed += used;
      rt->m.memory_closed++;
      rt_log_client(
          rt,
          "client %" PRIu64 ": closed, holding %" PRIu64 " bytes while "
          "all clients hold %" PRIu64 ", past maxmemory-clients (%" PRIu64 ")",
          c->id, used, total, max);
      rt_stream_close(c, false);
      continue;
    }
    bool pause = b >= pause_from && used > 0;
    if (pause == c->memory_paused)
      continue;
    c->memory_paused = pause;
    if (pause) {
      rt->m.memory_paused++;
      set_paused(c, true);
    } else {
      resume_if_free(c);
    }
  }
}

void rt_clients_scan(struct rt *rt, uint64_t now_ms) {
  uint64_t sums[BUDGET_BUCKETS] = {0};
  uint64_t total = 0, in_max = 0, out_max = 0;
  uint32_t paused = 0, links = 0;
  for (struct list_link *l = rt->clients.next; l != &rt->clients; l = l->next) {
    struct rt_stream *c = LIST_OF(l, struct rt_stream, link);
    if (c->closing)
      continue;
    if (c->probation) {
      /* A slot kept for forwarding links, held by something else. */
      if (now_ms >= c->accepted_ms + RT_PROBATION_MS)
        probation_refuse(c);
      continue;
    }
    if (idle_expired(c, now_ms)) {
      rt->m.clients_timed_out++;
      rt_log(rt, RT_LOG_DEBUG, "client %" PRIu64 ": idle for %us; closing",
             c->id, rt->cfg.idle_timeout_s);
      rt_stream_close(c, false);
      continue;
    }
    if (output_limits(c, now_ms))
      continue;
    uint64_t out = output_bytes(c);
    in_max = c->in_len > in_max ? c->in_len : in_max;
    out_max = out > out_max ? out : out_max;
    if (c->forwarded_link) {
      links++;
      continue;
    }
    uint64_t used = c->in_len + out;
    sums[budget_bucket(used)] += used;
    total += used;
    paused += c->memory_paused;
  }
  if (now_ms >= rt->mem_window_ms + RT_RECENT_MAX_WINDOW_MS) {
    rt->mem_window_ms = now_ms;
    rt->mem_in_max[1] = rt->mem_in_max[0];
    rt->mem_out_max[1] = rt->mem_out_max[0];
    rt->mem_in_max[0] = rt->mem_out_max[0] = 0;
  }
  if (in_max > rt->mem_in_max[0])
    rt->mem_in_max[0] = in_max;
  if (out_max > rt->mem_out_max[0])
    rt->mem_out_max[0] = out_max;
  rt->mem.total_bytes = total;
  rt->mem.paused = paused;
  rt->mem.links = links;
  rt->mem.recent_max_input_bytes = rt->mem_in_max[0] > rt->mem_in_max[1]
                                       ? rt->mem_in_max[0]
                                       : rt->mem_in_max[1];
  rt->mem.recent_max_output_bytes = rt->mem_out_max[0] > rt->mem_out_max[1]
                                        ? rt->mem_out_max[0]
                                        : rt->mem_out_max[1];
  if (rt->cfg.clients_memory_max > 0 &&
      (total > rt->cfg.clients_memory_max / 2 || paused > 0))
    clients_budget(rt, sums, total);
}

void rt_clients_memory(const struct rt *rt, struct rt_clients_memory *out) {
  *out = rt->mem;
}

void rt_clients_resume(struct rt *rt) {
  if (rt->n_resume_due == 0)
    return;
  struct list_link *l = rt->clients.next;
  while (l != &rt->clients && rt->n_resume_due > 0 && !rt->dead) {
    struct rt_stream *c = LIST_OF(l, struct rt_stream, link);
    l = l->next; /* a closed stream stays listed until rt_reap */
    if (!c->resume_due)
      continue;
    c->resume_due = false;
    rt->n_resume_due--;
    process_input(c);
  }
}

uint8_t *rt_stream_input_space(struct rt_stream *s, size_t want, size_t *cap) {
  if (want == 0)
    want = RT_INPUT_CHUNK_BYTES;
  if (s->in_cap - s->in_len < want) {
    size_t n = s->in_cap == 0 ? want : s->in_cap;
    while (n - s->in_len < want)
      n *= 2;
    uint8_t *p = realloc(s->in, n);
    if (p == NULL)
      return NULL;
    s->in = p;
    s->in_cap = n;
  }
  *cap = s->in_cap - s->in_len;
  return s->in + s->in_len;
}

/* client-query-buffer-limit: more input waits unparsed than any client
 * that reads its replies ever has (one command is at most
 * resp_limits_default.command_bytes_max): bytes that keep coming while
 * reading is stopped (a host that cannot stop at once, or a flood). The
 * client is closed, behind the replies already on their way; what else it
 * waits for is dropped.
 *
 * It is told why only when none of its commands waits for a reply: a
 * pipelining client takes each reply for the answer to its oldest command
 * still unanswered, so with a write in flight it would read the error as
 * that write's failure, and the write may yet commit. Then it is closed
 * without a word, as Redis closes it: a lost connection leaves those
 * commands' outcome unknown, which is the truth. (Holding the connection
 * open until they are answered would keep a client that floods, and most
 * often reads nothing, for as long as a commit may take.) With nothing
 * waiting, the error can only be taken for the answer to the first
 * command of the input, which was never run. */
static void query_limit_close(struct rt_stream *c) {
  struct rt *rt = c->rt;
  rt->m.query_limit_closed++;
  rt_log_client(rt,
                "client %" PRIu64 ": %zu bytes of input not yet parsed, past "
                "client-query-buffer-limit (%" PRIu64 "); closing",
                c->id, c->in_len, rt->cfg.query_bytes_max);
  if (list_empty(&c->queue))
    resp_write_error(&c->out, "ERR client-query-buffer-limit reached: the "
                              "connection sent more than the node holds "
                              "unparsed; closing it");
  /* A client with a write outstanding may not be reading at all: then it
   * is not kept waiting for one that never completes. */
  rt_stream_close(c, !c->taking && c->out.err == 0);
}

void rt_stream_received(struct rt_stream *s, size_t n) {
  struct rt *rt = s->rt;
  assert(n <= s->in_cap - s->in_len);
  if (s->closing || rt->dead)
    return;
  /* After QUIT or a protocol error nothing more is read: what comes is
   * dropped, rather than left to pile up to the query buffer limit while
   * the stream's last replies wait, and close it before they go out. */
  if (s->quit_after && s->kind != RT_STREAM_FORWARD)
    return;
  s->in_len += n;
  if (s->kind == RT_STREAM_FORWARD) {
    rt_fwd_input(s);
  } else if (rt->cfg.query_bytes_max > 0 &&
             s->in_len > rt->cfg.query_bytes_max) {
    query_limit_close(s);
  } else {
    s->active_ms = rt_now_ms(rt);
    if (!s->paused)
      process_input(s);
  }
  rt_reap(rt);
}

void rt_stream_input(struct rt_stream *s, const void *data, size_t n) {
  size_t cap = 0;
  uint8_t *p = rt_stream_input_space(s, n, &cap);
  if (p == NULL) {
    rt_stream_close(s, false);
    rt_reap(s->rt);
    return;
  }
  memcpy(p, data, n);
  rt_stream_received(s, n);
}
