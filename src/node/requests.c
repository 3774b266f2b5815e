/* Requests: what a client command becomes when it cannot be answered at
 * once, and everything that happens to it until it is (runtime_internal.h
 * draws the lists it moves through).
 *
 *   dispatch     execute here if the engine takes it, else forward it to the
 *                leader, answer -MOVED, or wait for a leader;
 *   execution    a read asks the engine for a ReadIndex; a write is encoded
 *                with its stream's kvstore session (registered through the
 *                log first) or, for an app command, a tag, and proposed;
 *   matching     an applied command answers the proposal it belongs to;
 *   settling     a proposal overtaken by a later one of this node's was cut
 *                from the log; one that arrived inside an installed snapshot
 *                is answered from the snapshot's session table;
 *   deadlines    leader_wait_ms and request_timeout_ms.
 *
 * What a reply claims is what the simulator's clients check: "-TRYAGAIN"
 * without "unknown" means the command was not carried out, so a client may
 * send it again; a write whose fate this node cannot know gets an error
 * that says its outcome is unknown. Getting that wrong once is applying a
 * retried INCR twice. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/readq.h"
#include "node/runtime_internal.h"

#define MSG_NOT_APPLIED                                                        \
  "TRYAGAIN leadership changed before the write committed; it was not "        \
  "applied"
#define MSG_OVERTAKEN_UNKNOWN                                                  \
  "TRYAGAIN leadership changed and a snapshot replaced this node's log "       \
  "before the write's reply; its outcome is unknown"
#define MSG_SNAPSHOT_NO_REPLY                                                  \
  "ERR the write was applied, but its reply is unknown: it arrived in a "      \
  "snapshot. Read back"
#define MSG_TIMEOUT_UNKNOWN                                                    \
  "TRYAGAIN the write was not committed in time; its outcome is unknown"
#define MSG_ORDER_NOT_APPLIED                                                  \
  "TRYAGAIN an earlier write of this connection was lost to a leader "         \
  "change; this one was not applied"

/* ---- requests ---------------------------------------------------------------
 */

/* Requests come and go by the hundred thousand a second under load, and
 * each was a malloc and a free, and another pair for its reply. Those that
 * fit a block of RT_REQ_BLOCK_BYTES (a SET of a few hundred bytes does)
 * go back to their runtime's pool instead, keeping a small reply buffer
 * with them, up to RT_REQ_POOL_MAX blocks; rt_close frees the pool. A
 * request stays with the runtime that made it (a group's link hands the
 * group the arguments, not the request), and is freed before it. Under
 * AddressSanitizer there is no pool, so that a request used after its
 * free is still caught. */
#define RT_REQ_BLOCK_BYTES 1024u
#define RT_REQ_REPLY_KEEP_BYTES 256u
#define RT_REQ_POOL_MAX 1024u
#if defined(__SANITIZE_ADDRESS__)
#define RT_REQ_POOLING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RT_REQ_POOLING 0
#endif
#endif
#ifndef RT_REQ_POOLING
#define RT_REQ_POOLING 1
#endif

struct rt_req *rt_req_alloc(struct rt *rt, struct rt_stream *c,
                            const struct rt_command *cmd, uint32_t argc,
                            const struct resp_arg *argv) {
  /* One allocation: the request, then its copy of the arguments (the
   * array, then their bytes). */
  size_t bytes = 0;
  for (uint32_t i = 0; i < argc; i++)
    bytes += argv[i].len;
  _Static_assert(sizeof(struct rt_req) % _Alignof(struct resp_arg) == 0,
                 "the arguments' array follows the request aligned");
  size_t need = sizeof(struct rt_req) + argc * sizeof(struct resp_arg) + bytes;
  bool block = need <= RT_REQ_BLOCK_BYTES;
  struct rt_req *r;
  struct resp_buf kept = {0};
  if (block && rt->req_pool != NULL) {
    r = rt->req_pool;
    rt->req_pool = r->pool_next;
    rt->req_pool_n--;
    kept = r->reply;
  } else {
    r = malloc(block ? RT_REQ_BLOCK_BYTES : need);
    if (r == NULL)
      return NULL;
  }
  memset(r, 0, sizeof *r);
  r->block = block;
  r->owner = rt;
  if (argc > 0) {
    r->argv = (struct resp_arg *)(r + 1);
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
  r->group = rt->cfg.group;
  list_init(&r->qlink);
  list_init(&r->glink);
  resp_buf_init(&r->reply, RT_OUT_BYTES_MAX);
  r->reply.data = kept.data; /* empty, with its room */
  r->reply.cap = kept.cap;
  r->order = ++rt->next_req_order;
  r->arrival_ms = rt_now_ms(rt);
  r->started_us = rt_mono_us(rt);
  return r;
}

void rt_req_free(struct rt_req *r) {
  assert(r->where == RT_IN_NONE);
  struct rt *rt = r->owner;
  free(r->fill);
  r->fill = NULL;
  if (RT_REQ_POOLING && r->block && rt->req_pool_n < RT_REQ_POOL_MAX) {
    if (r->reply.cap > RT_REQ_REPLY_KEEP_BYTES)
      resp_buf_free(&r->reply);
    r->pool_next = rt->req_pool;
    rt->req_pool = r;
    rt->req_pool_n++;
    return;
  }
  resp_buf_free(&r->reply);
  free(r); /* and its arguments */
}

void rt_req_pool_free(struct rt *rt) {
  while (rt->req_pool != NULL) {
    struct rt_req *r = rt->req_pool;
    rt->req_pool = r->pool_next;
    resp_buf_free(&r->reply);
    free(r);
  }
  rt->req_pool_n = 0;
}

void rt_req_unlist(struct rt_req *r) {
  if (r->where != RT_IN_NONE) {
    list_remove(&r->glink);
    r->where = RT_IN_NONE;
  }
}

void rt_req_done(struct rt *rt, struct rt_req *r) {
  (void)rt;
  rt_req_unlist(r);
  r->state = RT_REQ_DONE;
  if (r->c == NULL) {
    rt_req_free(r);
    return;
  }
  rt_client_hold(r->c, r);
  rt_client_flush(r->c);
}

void rt_req_fail(struct rt *rt, struct rt_req *r, const char *msg) {
  resp_buf_reset(&r->reply);
  resp_write_error(&r->reply, msg);
  rt->m.commands_failed++;
  rt_req_done(rt, r);
}

/* ---- waiting for a leader -------------------------------------------------
 */

void rt_wait_leader(struct rt *rt, struct rt_req *r) {
  rt_req_unlist(r);
  if (r->deadline_ms == 0)
    r->deadline_ms = rt_now_ms(rt) + rt->cfg.leader_wait_ms;
  r->where = RT_IN_WAIT_LEADER;
  /* In arrival order: a request coming back (refused by a node that was
   * not the leader after all) goes before those that arrived after it. */
  struct list_link *at = &rt->wait_leader;
  while (at->prev != &rt->wait_leader &&
         LIST_OF(at->prev, struct rt_req, glink)->order > r->order)
    at = at->prev;
  list_push(at, &r->glink);
}

/* The engine refused to take the request here: it belongs to a leader
 * elsewhere, or to none yet. */
static void route(struct rt *rt, struct rt_req *r) {
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  char msg[160];
  if (r->c->forwarded_link) {
    /* Another node thinks we lead; it retries elsewhere (forward.c). */
    snprintf(msg, sizeof msg, "NOTLEADER %u", st.leader);
    rt_req_fail(rt, r, msg);
    return;
  }
  if (st.removed && st.leader == SABHA_NODE_NONE) {
    /* It will hear of no leader again: say so rather than keep the client
     * waiting. */
    rt_req_fail(rt, r,
                "TRYAGAIN this node was removed from the group; ask another "
                "node");
    return;
  }
  if (st.leader == SABHA_NODE_NONE || st.leader == rt->cfg.engine.id) {
    rt_wait_leader(rt, r); /* none known, or a transfer away is running */
    return;
  }
  const struct rt_addr *a = rt_client_addr_of(rt, st.leader);
  if (rt->cfg.redirect == RT_REDIRECT_MOVED) {
    if (a == NULL) {
      snprintf(msg, sizeof msg,
               "TRYAGAIN the leader is node %u, whose client address this "
               "node does not know (set peer-clients)",
               st.leader);
      rt_req_fail(rt, r, msg);
      return;
    }
    snprintf(msg, sizeof msg, "MOVED 0 %s:%u", a->host, a->port);
    rt->m.redirected++;
    rt_req_fail(rt, r, msg);
    return;
  }
  rt_forward(rt, r);
}

void rt_dispatch(struct rt *rt, struct rt_req *r) {
  assert(r->where == RT_IN_NONE && r->c != NULL);
  if (r->group != rt->cfg.group) {
    rt_group_route(rt, r); /* another group's: it waits for its own leader */
    return;
  }
  if (!list_empty(&rt->wait_leader)) {
    rt_wait_leader(rt, r); /* behind earlier commands, in order */
    return;
  }
  /* Tried here first: the engine knows whether it takes proposals (a
   * leader does; so does every proposer of classic Paxos, which has no
   * leader at all). */
  rt_exec_leader(rt, r);
}

void rt_retry_waiting(struct rt *rt) {
  if (list_empty(&rt->wait_leader))
    return;
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  if (st.role != SABHA_ROLE_LEADER && st.leader == SABHA_NODE_NONE)
    return;
  /* The leader this node knows refused its commands, or could not be
   * reached, a moment ago: until RT_FWD_BACKOFF_MS has passed each would
   * only come back here (rt_forward), at the cost of a try each on every
   * turn of the loop. */
  if (st.role != SABHA_ROLE_LEADER && st.leader == rt->fwd_failed_leader &&
      rt_now_ms(rt) < rt->fwd_failed_ms + RT_FWD_BACKOFF_MS)
    return;
  struct list_link batch;
  list_init(&batch);
  /* Move the list aside, so that dispatch sees it empty and anything it
   * puts back goes behind what came before, in order. */
  batch.next = rt->wait_leader.next;
  batch.prev = rt->wait_leader.prev;
  batch.next->prev = &batch;
  batch.prev->next = &batch;
  list_init(&rt->wait_leader);
  while (!list_empty(&batch)) {
    struct rt_req *r = LIST_OF(batch.next, struct rt_req, glink);
    list_remove(&r->glink);
    r->where = RT_IN_NONE;
    rt_dispatch(rt, r);
  }
}

void rt_run_deferred(struct rt *rt) {
  while (!list_empty(&rt->deferred) && !rt->dead) {
    struct rt_req *r = LIST_OF(rt->deferred.next, struct rt_req, glink);
    list_remove(&r->glink);
    r->where = RT_IN_NONE;
    rt_exec_leader(rt, r);
  }
}

/* ---- proposals ----------------------------------------------------------- */

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

static void add_proposal(struct rt *rt, struct rt_req *r) {
  rt->m.proposals++;
  r->where = RT_IN_PROPOSALS;
  list_push(&rt->proposals, &r->glink);
}

/* While a ready batch is being carried out the engine may not be called:
 * the request waits for rt_run_deferred after advance. */
static bool defer_if_in_ready(struct rt *rt, struct rt_req *r) {
  if (!rt->in_ready)
    return false;
  r->where = RT_IN_DEFERRED;
  list_push(&rt->deferred, &r->glink);
  return true;
}

/* Proposes the command in rt->enc[0, size) for r. Returns true when it was
 * proposed; otherwise r is routed elsewhere or has failed. */
static bool propose_req(struct rt *rt, struct rt_req *r, size_t size) {
  int rc = sabha_engine_propose(rt->engine, rt->enc, size);
  if (rc == SABHA_ENOTLEADER || rc == SABHA_ETRANSFER) {
    route(rt, r);
    return false;
  }
  if (rc != 0) {
    rt->m.proposals_failed++;
    rt_req_fail(rt, r, propose_error(rc));
    return false;
  }
  rt_kick(rt);
  return true;
}

/* The next tag or nonce from `counter`: it runs below the node id's byte
 * and wraps there, so no two nodes' ever match. */
static uint64_t next_nonce(uint64_t *counter) {
  uint64_t low_mask = (UINT64_C(1) << 56) - 1;
  uint64_t nonce = *counter;
  *counter = (nonce & ~low_mask) | ((nonce + 1) & low_mask);
  return nonce;
}

static int start_register(struct rt *rt, struct rt_stream *c) {
  uint64_t stamp = rt_stamp_ms(rt);
  uint64_t nonce = rt->next_tag;
  size_t size = kvstore_encode_register(NULL, 0, stamp, nonce);
  uint8_t *buf = rt_enc_reserve(rt, size);
  if (buf == NULL)
    return SABHA_ENOMEM;
  kvstore_encode_register(buf, size, stamp, nonce);
  int rc = sabha_engine_propose(rt->engine, buf, size);
  if (rc != 0)
    return rc;
  next_nonce(&rt->next_tag);
  struct rt_req *r = rt_req_alloc(rt, c, NULL, 0, NULL);
  if (r == NULL)
    return SABHA_ENOMEM; /* proposed anyway: an unused session ages out */
  r->stamp_ms = stamp;
  r->seq = nonce; /* matched with session 0 (proposal_is) */
  add_proposal(rt, r);
  c->reg = r;
  c->session_state = RT_SESSION_REGISTERING;
  rt_kick(rt);
  return 0;
}

/* An app write: no session, a tag to find it again when applied. */
static void exec_app_write(struct rt *rt, struct rt_req *r) {
  struct app_hdr hdr = {.now_ms = rt_stamp_ms(rt), .tag = rt->next_tag};
  size_t size = rt_encode_app_write(rt, r, &hdr);
  if (size == 0) {
    rt_req_fail(rt, r, "OOM out of memory");
    return;
  }
  if (!propose_req(rt, r, size))
    return;
  next_nonce(&rt->next_tag);
  r->is_app = true;
  r->tag = hdr.tag;
  r->stamp_ms = hdr.now_ms;
  r->started_us = rt_mono_us(rt);
  add_proposal(rt, r);
}

static void exec_write(struct rt *rt, struct rt_req *r) {
  struct rt_stream *c = r->c;
  /* An app write needs no session; but behind writes of its stream that
   * wait for theirs it waits too, so that a stream's commands apply in the
   * order it sent them. */
  if (rt_command_is_app(r->cmd) && c->session_state != RT_SESSION_REGISTERING) {
    exec_app_write(rt, r);
    return;
  }
  if (c->session_state == RT_SESSION_NONE) {
    int rc = start_register(rt, c);
    if (rc == SABHA_ENOTLEADER || rc == SABHA_ETRANSFER) {
      route(rt, r);
      return;
    }
    if (rc != 0) {
      rt_req_fail(rt, r, propose_error(rc));
      return;
    }
  }
  if (c->session_state == RT_SESSION_REGISTERING) {
    r->where = RT_IN_AWAIT_SESSION;
    list_push(&c->await, &r->glink);
    return;
  }
  struct kvstore_hdr hdr = {
      .session = c->session, .seq = c->next_seq, .now_ms = rt_stamp_ms(rt)};
  size_t size = rt_encode_write(rt, r, &hdr);
  if (size == 0) {
    rt_req_fail(rt, r, "OOM out of memory");
    return;
  }
  if (!propose_req(rt, r, size))
    return;
  c->next_seq++;
  r->session = hdr.session;
  r->seq = hdr.seq;
  r->stamp_ms = hdr.now_ms;
  r->started_us = rt_mono_us(rt);
  add_proposal(rt, r);
}

_Static_assert(READQ_MAX == 4096, "exec_read's refusal says 4096");

static void exec_read(struct rt *rt, struct rt_req *r) {
  if (rt->cfg.bugs & RT_BUG_STALE_READ) {
    r->state = RT_REQ_READABLE; /* the bug: no ReadIndex, any node */
    rt->m.reads++;
    rt_client_flush(r->c);
    return;
  }
  r->read_id = rt->next_read_id++;
  int rc = sabha_engine_read_index(rt->engine, r->read_id);
  if (rc == SABHA_ENOTLEADER || rc == SABHA_ETRANSFER) {
    route(rt, r);
    return;
  }
  if (rc == SABHA_EBUSY) {
    /* The engine keeps READQ_MAX reads waiting for their quorum; more
     * would only queue behind them. */
    rt->m.reads_refused++;
    rt_req_fail(rt, r,
                "TRYAGAIN too many linearizable reads wait for a quorum "
                "here (4096); retry");
    return;
  }
  if (rc != 0) {
    rt_req_fail(rt, r, "TRYAGAIN the read could not be started");
    return;
  }
  r->started_us = rt_mono_us(rt);
  r->has_read_index = false;
  r->where = RT_IN_READS;
  list_push(&rt->reads, &r->glink);
  rt_kick(rt);
}

static void exec_leadership(struct rt *rt, struct rt_req *r) {
  uint32_t to = rt_command_leader_target(r);
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  if (st.role != SABHA_ROLE_LEADER) {
    route(rt, r);
    return;
  }
  if (to == rt->cfg.engine.id) {
    resp_write_simple(&r->reply, "OK");
    rt_req_done(rt, r);
    return;
  }
  int rc = sabha_engine_transfer_leadership(rt->engine, to);
  if (rc == SABHA_ENOTLEADER) {
    route(rt, r);
    return;
  }
  if (rc != 0) {
    rt_req_fail(rt, r,
                rc == SABHA_EINVAL ? "ERR no such node"
                                   : "ERR the transfer failed");
    return;
  }
  rt_log(rt, RT_LOG_INFO, "handing leadership to node %u", to);
  rt_kick(rt);
  resp_write_simple(&r->reply, "OK");
  rt_req_done(rt, r);
}

/* SABHA.MEMBER on the leader: the engine appends the change; the reply
 * says it was accepted, with the index of its entry (a client that must
 * know it committed watches SABHA.MEMBERS' config_index and committed). */
static void exec_member_change(struct rt *rt, struct rt_req *r,
                               enum sabha_change_type type, uint32_t id,
                               const char *addr) {
  int rc = sabha_engine_change(rt->engine, type, id, addr);
  switch (rc) {
  case 0: {
    struct sabha_status st;
    sabha_engine_status(rt->engine, &st);
    rt_log(rt, RT_LOG_INFO, "membership change at index %" PRIu64 ": %s %u",
           st.config_index,
           type == SABHA_CHANGE_ADD_LEARNER ? "add learner"
           : type == SABHA_CHANGE_PROMOTE   ? "promote"
                                            : "remove",
           id);
    rt_kick(rt);
    resp_write_int(&r->reply, (int64_t)st.config_index);
    rt_req_done(rt, r);
    return;
  }
  case SABHA_ENOTLEADER:
    route(rt, r);
    return;
  case SABHA_EBUSY:
  case SABHA_ETRANSFER:
    rt_req_fail(rt, r,
                "TRYAGAIN a membership change or a leadership transfer is "
                "under way, the leader has not committed in its term yet, or "
                "the learner is not caught up");
    return;
  case SABHA_EQUORUM:
    rt_req_fail(rt, r,
                "TRYAGAIN the change would leave fewer than a majority of "
                "the voters working (reachable, caught up, not repairing "
                "their logs); bring a node back first");
    return;
  case SABHA_ENOTSUPP:
    rt_req_fail(rt, r, "ERR this protocol's membership is fixed");
    return;
  default:
    rt_req_fail(rt, r,
                type == SABHA_CHANGE_ADD_LEARNER
                    ? "ERR the node is a member already, the address is not "
                      "printable without spaces, or the group is full"
                : type == SABHA_CHANGE_PROMOTE
                    ? "ERR no such learner"
                    : "ERR no such member, or the last voter");
    return;
  }
}

void rt_exec_leader(struct rt *rt, struct rt_req *r) {
  if (defer_if_in_ready(rt, r))
    return;
  enum sabha_change_type type;
  uint32_t id;
  char addr[SABHA_ADDR_BYTES_MAX + 1];
  if (rt_command_is_read(r->cmd))
    exec_read(rt, r);
  else if (rt_command_leader_target(r) != 0)
    exec_leadership(rt, r);
  else if (rt_command_member_change(r, &type, &id, addr, sizeof addr))
    exec_member_change(rt, r, type, id, addr);
  else
    exec_write(rt, r);
}

/* ---- sessions --------------------------------------------------------------
 */

void rt_session_registered(struct rt *rt, struct rt_stream *c,
                           uint64_t session) {
  c->session_state = RT_SESSION_READY;
  c->session = session;
  c->next_seq = 1;
  rt_log(rt, RT_LOG_DEBUG, "client %" PRIu64 ": session %" PRIu64, c->id,
         session);
  while (!list_empty(&c->await)) {
    struct rt_req *r = LIST_OF(c->await.next, struct rt_req, glink);
    list_remove(&r->glink);
    r->where = RT_IN_NONE;
    rt_exec_leader(rt, r);
    if (c->session_state != RT_SESSION_READY)
      break; /* lost it again; the rest waits for the next session */
  }
}

void rt_session_failed(struct rt *rt, struct rt_stream *c, const char *msg) {
  c->session_state = RT_SESSION_NONE;
  c->session = 0;
  while (!list_empty(&c->await)) {
    struct rt_req *r = LIST_OF(c->await.next, struct rt_req, glink);
    rt_req_fail(rt, r, msg);
  }
}

static void session_reset(struct rt_stream *c, uint64_t session) {
  if (c != NULL && c->session_state == RT_SESSION_READY &&
      c->session == session) {
    c->session_state = RT_SESSION_NONE;
    c->session = 0;
    c->next_seq = 0;
  }
}

/* ---- matching --------------------------------------------------------------
 */

/* A proposal whose outcome this node will not learn from the log: `msg`
 * says what is known of it. The writes waiting behind a lost REGISTER were
 * never proposed: they fail with `reg_msg`. */
static void proposal_lost(struct rt *rt, struct rt_req *r, const char *msg,
                          const char *reg_msg) {
  rt_req_unlist(r);
  rt->m.proposals_failed++;
  if (r->cmd == NULL) {
    struct rt_stream *c = r->c;
    c->reg = NULL;
    rt_req_free(r);
    rt_session_failed(rt, c, reg_msg);
    return;
  }
  if (!r->is_app) /* app commands use no session: ids make retries safe */
    session_reset(r->c, r->session);
  rt_req_fail(rt, r, msg);
}

/* What identifies an applied command among this node's proposals. */
struct applied_id {
  bool is_app;
  uint64_t session, seq; /* kvstore */
  uint64_t tag;          /* app */
  uint64_t stamp_ms;
};

static bool proposal_is(const struct rt_req *r, const struct applied_id *id) {
  if (r->is_app != id->is_app || r->stamp_ms != id->stamp_ms)
    return false;
  return id->is_app ? r->tag == id->tag
                    : r->session == id->session && r->seq == id->seq;
}

static void propose_again(struct rt *rt, struct rt_req *r);

/* Whether proposals `a` and `b` are kvstore writes of one session. */
static bool same_session(const struct rt_req *a, const struct rt_req *b) {
  return a->c == b->c && a->cmd != NULL && b->cmd != NULL && !a->is_app &&
         !b->is_app && a->session == b->session;
}

/* Whether a lost kvstore write `r` of a live stream is in its stream's
 * session still (none of the session's writes was answered as lost), so
 * that it and the session's later writes may go again in a new one. */
static bool may_go_again(const struct rt_req *r) {
  return r->cmd != NULL && !r->is_app && !r->before_install && !r->c->closing &&
         r->c->session_state == RT_SESSION_READY && r->c->session == r->session;
}

/* Whether a write of `r`'s session proposed after it still waits. */
static bool has_later(const struct rt *rt, const struct rt_req *r) {
  for (const struct list_link *l = r->glink.next; l != &rt->proposals;
       l = l->next)
    if (same_session(LIST_OF(l, const struct rt_req, glink), r))
      return true;
  return false;
}

/* Finds the proposal an applied command answers. Both engines keep a
 * leader's proposals in the order it made them, so when one is applied,
 * those this node proposed before it and that are still waiting, of either
 * kind, were lost (cut from the log, or dropped from an unsent batch by a
 * leader change): they will never apply. Unless a snapshot was installed
 * since they were made: then they may have applied inside it, and the
 * truthful answer is that nobody knows.
 *
 * A lost write alone is answered "not applied", and its client decides.
 * But a write of the same session proposed after it (in a later term of
 * this node, say, while the lost one still waited) is refused by the store
 * as out of order, applying nothing: answered so, a client that pipelined
 * SET k 1, INCR k would be told its SET was not applied and its INCR
 * failed with an error it cannot act on; and the INCR alone sent again
 * would apply without the SET before it. So the lost write goes again with
 * its session's later ones, in a new session, in the order they were
 * proposed (propose_again), the applied one among them when it is one of
 * them: then there is no match to answer. Returns the match or NULL. */
static struct rt_req *match_proposal(struct rt *rt,
                                     const struct applied_id *id) {
  struct rt_req *match = NULL;
  for (struct list_link *l = rt->proposals.next; l != &rt->proposals;
       l = l->next) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    if (proposal_is(r, id)) {
      match = r;
      break;
    }
  }
  if (match == NULL)
    return NULL; /* another node's command */
  /* The lost writes of the match's own session stay in the list, at its
   * head, until the others are settled: then they go again with it. */
  struct list_link *l = rt->proposals.next;
  while (l != &match->glink && !rt->dead) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    struct list_link *kept = l->prev; /* the list's head, or a kept write */
    bool again = may_go_again(r);
    if (again && same_session(r, match)) {
      l = l->next;
      continue;
    }
    if (again && has_later(rt, r))
      propose_again(rt, r); /* r and its session's later writes */
    else
      proposal_lost(rt, r,
                    r->before_install ? MSG_OVERTAKEN_UNKNOWN : MSG_NOT_APPLIED,
                    "TRYAGAIN leadership changed before the connection's "
                    "session was opened; the write was not applied");
    l = kept->next;
  }
  if (rt->dead)
    return NULL;
  if (rt->proposals.next != &match->glink) {
    struct rt_req *first = LIST_OF(rt->proposals.next, struct rt_req, glink);
    assert(same_session(first, match));
    propose_again(rt, first); /* the match goes again too */
    return NULL;
  }
  return match;
}

/* The store refused write `r` because its stream's session is gone from
 * the table (evicted by newer ones), or `r` was lost and its session's
 * later writes are bound for the store's "out of order" (match_proposal):
 * nothing was applied, and since this node never sends a command twice,
 * nothing of that session will be. The stream opens a new session and `r`
 * is proposed again in it, followed by the stream's other writes of the
 * old session, still in the log and bound for the same refusal: in the
 * order they were proposed, ahead of anything the stream sends after. (A
 * session evicted while the state came in a snapshot is another matter:
 * the write may have applied before the eviction,
 * rt_proposals_after_snapshot.) */
static void propose_again(struct rt *rt, struct rt_req *r) {
  struct rt_stream *c = r->c;
  uint64_t session = r->session;
  session_reset(c, session);
  rt_req_unlist(r);
  struct list_link again;
  list_init(&again);
  list_push(&again, &r->glink);
  struct list_link *l = rt->proposals.next;
  while (l != &rt->proposals) {
    struct rt_req *o = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (o->c == c && o->cmd != NULL && !o->is_app && o->session == session) {
      list_remove(&o->glink);
      list_push(&again, &o->glink);
    }
  }
  rt_log(rt, RT_LOG_DEBUG,
         "client %" PRIu64 ": the writes of session %" PRIu64 " go again "
         "in a new one",
         c->id, session);
  while (!list_empty(&again)) {
    struct rt_req *o = LIST_OF(again.next, struct rt_req, glink);
    list_remove(&o->glink);
    o->where = RT_IN_NONE;
    o->session = o->seq = o->stamp_ms = 0;
    o->before_install = false;
    rt_exec_leader(rt, o); /* deferred: this runs inside a ready batch */
  }
}

void rt_proposal_applied_kv(struct rt *rt, const struct kvstore_hdr *hdr,
                            const struct kvstore_result *res) {
  if (list_empty(&rt->proposals))
    return;
  struct applied_id id = {.is_app = false,
                          .session = hdr->session,
                          .seq = hdr->seq,
                          .stamp_ms = hdr->now_ms};
  struct rt_req *r = match_proposal(rt, &id);
  if (r == NULL || rt->dead)
    return;
  rt_req_unlist(r);
  rt_latency_observe(&rt->m.commit_latency, rt_mono_us(rt) - r->started_us);
  if (r->cmd == NULL) { /* a REGISTER */
    struct rt_stream *c = r->c;
    c->reg = NULL;
    rt_req_free(r);
    if (res->kind == KVSTORE_REPLY_INT && res->integer > 0)
      rt_session_registered(rt, c, (uint64_t)res->integer);
    else
      rt_session_failed(rt, c,
                        res->kind == KVSTORE_REPLY_ERROR
                            ? res->error
                            : "ERR could not open a session");
    return;
  }
  bool error = res->kind == KVSTORE_REPLY_ERROR;
  bool evicted = error && (strcmp(res->error, KVSTORE_ERR_SESSION) == 0 ||
                           strcmp(res->error, KVSTORE_ERR_NO_SESSION) == 0);
  bool out_of_order = error && strcmp(res->error, KVSTORE_ERR_ORDER) == 0;
  if (evicted && res->outcome == KVSTORE_REFUSED && !r->c->closing &&
      r->c->session_state == RT_SESSION_READY && r->c->session == r->session) {
    propose_again(rt, r);
    return;
  }
  if (evicted || out_of_order)
    session_reset(r->c, r->session);
  resp_buf_reset(&r->reply);
  /* Out of order: an earlier write of the session was lost after its
   * client had been told its outcome was unknown (match_proposal sends the
   * others again with their session's next). This one applied nothing,
   * which the client is told in words it can act on. */
  if (out_of_order)
    resp_write_error(&r->reply, MSG_ORDER_NOT_APPLIED);
  else
    rt_write_kv_result(&r->reply, res);
  rt_req_done(rt, r);
}

void rt_proposal_applied_app(struct rt *rt, const struct app_hdr *hdr, int rc,
                             const struct app_reply *rep) {
  if (list_empty(&rt->proposals))
    return;
  struct applied_id id = {
      .is_app = true, .tag = hdr->tag, .stamp_ms = hdr->now_ms};
  struct rt_req *r = match_proposal(rt, &id);
  if (r == NULL || rt->dead)
    return;
  rt_req_unlist(r);
  rt_latency_observe(&rt->m.commit_latency, rt_mono_us(rt) - r->started_us);
  resp_buf_reset(&r->reply);
  if (rc != 0) /* never proposed so by this node: a read op or damage */
    resp_write_error(&r->reply, "ERR the command could not be applied");
  else
    rt_write_app_reply(&r->reply, rep);
  rt_req_done(rt, r);
}

/* A snapshot replaced the state machines: the proposals it settles are
 * answered now, from what the snapshot says. A kvstore write is settled by
 * its session: the table keeps each session's last sequence number and that
 * command's reply; a lower number applied too but its reply is gone. A
 * write the snapshot does not show applied may still come in the log after
 * it, and waits. App commands and session registrations cannot be looked up
 * (a tag is not kept): they wait too, but if a later proposal overtakes
 * them, their outcome is unknown rather than "not applied". */
void rt_proposals_after_snapshot(struct rt *rt) {
  if (rt->cfg.bugs & RT_BUG_SNAPSHOT_REPLY)
    return; /* the bug: they stay as they were, and count as not applied */
  struct list_link *l = rt->proposals.next;
  while (l != &rt->proposals && !rt->dead) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (r->cmd == NULL || r->is_app) {
      r->before_install = true;
      continue;
    }
    uint64_t last_seq = 0;
    struct kvstore_result res;
    if (!kvstore_session_reply(rt->kv, r->session, &last_seq, &res)) {
      /* The session is gone from the table (evicted by newer ones): the
       * store itself would refuse the write now. */
      rt_req_unlist(r);
      session_reset(r->c, r->session);
      rt_req_fail(rt, r, KVSTORE_ERR_SESSION);
      continue;
    }
    if (last_seq < r->seq)
      continue;
    rt_req_unlist(r);
    if (last_seq == r->seq && res.kind != 0) {
      resp_buf_reset(&r->reply);
      rt_write_kv_result(&r->reply, &res);
      rt_req_done(rt, r);
    } else {
      rt_req_fail(rt, r, MSG_SNAPSHOT_NO_REPLY);
    }
  }
}

/* ---- reads ------------------------------------------------------------------
 */

void rt_note_read(struct rt *rt, const struct sabha_read_state *rs) {
  for (struct list_link *l = rt->reads.next; l != &rt->reads; l = l->next) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    if (r->read_id == rs->request_id) {
      r->has_read_index = true;
      r->read_index = rs->index;
      return;
    }
  }
}

void rt_serve_reads(struct rt *rt) {
  struct list_link *l = rt->reads.next;
  while (l != &rt->reads) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (!r->has_read_index || r->read_index > rt->applied)
      continue;
    rt_req_unlist(r);
    rt_latency_observe(&rt->m.read_latency, rt_mono_us(rt) - r->started_us);
    rt->m.reads++;
    r->state = RT_REQ_READABLE;
    /* The flush moves replies and may mark the stream for closing, but
     * frees nothing that is in a list: `l` stays valid. */
    rt_client_flush(r->c);
  }
}

void rt_reads_lost_leadership(struct rt *rt) {
  /* Reads awaiting a ReadIndex here will not get one: ask the new leader.
   * Reads have no effect, so trying again is always safe. */
  struct list_link *l = rt->reads.next;
  while (l != &rt->reads) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (r->has_read_index && r->read_index <= rt->applied)
      continue;
    r->has_read_index = false;
    rt_wait_leader(rt, r);
  }
}

/* ---- deadlines
 * ----------------------------------------------------------------
 */

void rt_req_fail_no_leader(struct rt *rt, struct rt_req *r) {
  assert(r->deadline_ms != 0);
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  char msg[192];
  /* Both begin "no leader": to a client they are the same, nothing was
   * carried out and no leader was there to take it; the rest tells an
   * operator whether to look at elections or at the leader's client
   * port. */
  if (st.leader != SABHA_NODE_NONE && st.leader != rt->cfg.engine.id)
    snprintf(msg, sizeof msg,
             "TRYAGAIN no leader: node %u leads, but this node could not "
             "reach it within %u ms; retry",
             st.leader, rt->cfg.leader_wait_ms);
  else
    snprintf(msg, sizeof msg,
             "TRYAGAIN no leader: none was elected within %u ms; retry",
             rt->cfg.leader_wait_ms);
  rt->m.no_leader++;
  rt_req_fail(rt, r, msg);
}

void rt_scan_deadlines(struct rt *rt, uint64_t now) {
  struct list_link *l = rt->wait_leader.next;
  while (l != &rt->wait_leader) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (r->deadline_ms > now)
      continue;
    rt_req_fail_no_leader(rt, r);
  }
  uint64_t timeout = rt->cfg.request_timeout_ms;
  l = rt->proposals.next;
  while (l != &rt->proposals) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (r->arrival_ms + timeout > now)
      continue;
    rt->m.timeouts++;
    /* Failing a REGISTER fails the writes behind it, which are in no node
     * list; the next proposal, if any, is still valid. */
    proposal_lost(rt, r, MSG_TIMEOUT_UNKNOWN,
                  "TRYAGAIN the connection's session could not be opened in "
                  "time; the write was not applied");
  }
  l = rt->reads.next;
  while (l != &rt->reads) {
    struct rt_req *r = LIST_OF(l, struct rt_req, glink);
    l = l->next;
    if (r->arrival_ms + timeout > now)
      continue;
    rt->m.timeouts++;
    rt_req_fail(rt, r, "TRYAGAIN the read could not be confirmed in time");
  }
  rt_fwd_scan(rt, now);
  rt_clients_scan(rt, now);
}
