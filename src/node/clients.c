/* Client streams: RESP bytes in, commands parsed and handed on, replies out
 * in the order the commands came, whatever order they complete in.
 *
 * The host moves bytes (rt_stream_input, rt_stream_out_take); this file
 * does everything else a connection needs:
 *
 *   parsing    resp_parse() over the stream's input buffer; a protocol error
 *              is answered and the stream closed once the answer is out;
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
 *              served;
 *   closing    marked where decided, released from rt_reap() only
 *              (runtime_internal.h, "Freeing"). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/runtime_internal.h"

static void set_paused(struct rt_stream *c, bool paused) {
  if (c->paused == paused || c->closing)
    return;
  c->paused = paused;
  c->rt->ports.stream_pause(c->rt->ports.ctx, c, paused);
}

static bool out_full(const struct rt_stream *c) {
  return c->out.len + c->wbuf.len >= RT_OUT_SOFT_BYTES;
}

void rt_stream_kick_output(struct rt_stream *s) {
  if (s->out.len > 0 && !s->taking && !s->closing)
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
  resp_buf_init(&s->out, RT_OUT_BYTES_MAX);
  resp_buf_init(&s->wbuf, RT_OUT_BYTES_MAX);
  list_init(&s->link);
  list_init(&s->reap);
  list_init(&s->queue);
  list_init(&s->await);
  list_init(&s->pending);
  return s;
}

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
   * not announce itself as one with its first command is refused then. */
  if (rt->n_clients >= rt->cfg.clients_max + RT_FORWARD_SLOTS) {
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
  rt->m.clients_accepted++;
  list_push(&rt->clients, &s->link);
  rt->n_clients++;
  *out = s;
  return NULL;
}

struct rt_stream *rt_stream_new_forward(struct rt *rt) {
  return stream_new(rt, RT_STREAM_FORWARD);
}

/* Unlinks and frees a client stream's requests. Placeholders stay in
 * forwarding links (their replies are matched by position). */
static void release_requests(struct rt_stream *c) {
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

void rt_reap(struct rt *rt) {
  while (!list_empty(&rt->reaping)) {
    struct rt_stream *s = LIST_OF(rt->reaping.next, struct rt_stream, reap);
    list_remove(&s->reap);
    if (s->kind == RT_STREAM_CLIENT) {
      release_requests(s);
      list_remove(&s->link);
      rt->n_clients--;
    } else {
      rt_fwd_lost(s, NULL);
    }
    if (s->handed) { /* the host let go of it already (rt_close_crash) */
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
  free(s);
}

void rt_stream_set_host(struct rt_stream *s, void *host) {
  s->host = host;
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
  if (s->wbuf.cap > RT_IDLE_BUFFER_BYTES_MAX) {
    resp_buf_free(&s->wbuf);
    resp_buf_init(&s->wbuf, RT_OUT_BYTES_MAX);
  }
  if (s->closing)
    return;
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
 * SABHA.FORWARDED. */
static bool probation_allows(uint32_t argc, const struct resp_arg *argv) {
  return arg_is(&argv[0], "AUTH") ||
         (argc == 1 && arg_is(&argv[0], "SABHA.FORWARDED"));
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
    error_now(c, msg);
    return;
  }
  const char *bad = rt_command_check(c, cmd, argc, argv, msg, sizeof msg);
  if (bad != NULL) {
    error_now(c, bad);
    return;
  }
  if (rt_command_is_local(cmd)) {
    rt_exec_local(c, cmd, argc, argv, &rt->scratch);
    reply_now(c);
    return;
  }
  bool stale = rt_command_is_read(cmd) && c->stale_reads;
  if (stale) {
    rt->m.stale_reads++;
    if (list_empty(&c->queue)) {
      rt_exec_read(rt, cmd, argc, argv, &c->out);
      return;
    }
  }
  struct rt_req *r = rt_req_alloc(rt, c, cmd, argc, argv);
  if (r == NULL) {
    error_now(c, "OOM out of memory");
    return;
  }
  req_enqueue(c, r);
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
  if (!c->probation) {
    run_command(c, argc, argv);
    return;
  }
  if (!probation_allows(argc, argv)) {
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
static bool write_behind_read(const struct rt_stream *c,
                              const struct resp_cmd *cmd) {
  if (cmd->argc == 0)
    return false;
  const struct rt_command *k = rt_command_find(c->rt, &cmd->argv[0]);
  if (k == NULL || rt_command_is_read(k) || rt_command_is_local(k))
    return false;
  return queue_has_read(c);
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
    if (r->state == RT_REQ_READABLE)
      rt_exec_read(rt, r->cmd, r->argc, r->argv, &c->out);
    else
      resp_buf_append(&c->out, r->reply.data, r->reply.len);
    list_remove(&r->qlink);
    c->queue_n--;
    assert(r->where == RT_IN_NONE);
    rt_req_free(r);
  }
  if (c->out.err != 0) {
    rt_log(rt, RT_LOG_WARN,
           "client %" PRIu64 ": a reply passed %u bytes; closing", c->id,
           RT_OUT_BYTES_MAX);
    rt_stream_close(c, false);
    return;
  }
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
  if (c->paused && !c->read_barrier && !c->out_backlog &&
      c->queue_n < RT_QUEUE_MAX / 2 && !c->resume_due) {
    c->resume_due = true;
    rt->n_resume_due++;
    rt_kick(rt);
  }
}

/* ---- input
 * ------------------------------------------------------------------- */

static void process_input(struct rt_stream *c) {
  struct rt *rt = c->rt;
  const struct resp_limits *lim = &resp_limits_default;
  size_t off = 0;
  while (!c->closing && !c->quit_after && !rt->dead) {
    if (c->queue_n >= RT_QUEUE_MAX || out_full(c)) {
      set_paused(c, true);
      break;
    }
    set_paused(c, false);
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
    if (st == RESP_COMPLETE && write_behind_read(c, &cmd)) {
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

void rt_clients_scan(struct rt *rt, uint64_t now_ms) {
  for (struct list_link *l = rt->clients.next; l != &rt->clients; l = l->next) {
    struct rt_stream *c = LIST_OF(l, struct rt_stream, link);
    if (!c->probation || c->closing ||
        now_ms < c->accepted_ms + RT_PROBATION_MS)
      continue;
    /* A slot kept for forwarding links, held by something else. */
    c->probation = false;
    rt->m.clients_refused++;
    error_now(c, "ERR max number of clients reached");
    c->quit_after = true;
    rt_client_flush(c);
  }
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

void rt_stream_received(struct rt_stream *s, size_t n) {
  struct rt *rt = s->rt;
  assert(n <= s->in_cap - s->in_len);
  if (s->closing || rt->dead)
    return;
  s->in_len += n;
  if (s->kind == RT_STREAM_FORWARD) {
    rt_fwd_input(s);
  } else if (s->in_len > resp_limits_default.command_bytes_max + 65536u &&
             s->paused) {
    /* Bytes keep coming while reading is stopped (a host that cannot stop
     * at once, or a flood): bounded, then the stream goes. */
    rt_log(rt, RT_LOG_WARN,
           "client %" PRIu64 ": input past its bound while paused; closing",
           s->id);
    rt_stream_close(s, false);
  } else if (!s->paused) {
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
