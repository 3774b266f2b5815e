/* Forwarding: how a follower serves a client that needs the leader.
 *
 * A follower keeps one RESP stream of its own (kind FORWARD) to the current
 * leader's client port, announced as a forwarding link with SABHA.FORWARDED
 * as its first command (after an AUTH with this node's password when it
 * has one: auth.c). Only commands a client was allowed to run here are
 * forwarded: they are checked before they become requests. Commands from
 * all of the follower's clients are pipelined over it in arrival order; the
 * leader answers a stream's commands in order, so each reply is matched
 * with the oldest request still waiting on the link (resp_reply_scan finds
 * where one reply ends, arrays included, without recursion) and relayed
 * byte for byte. At the leader the link is an ordinary client with its own
 * kvstore session, so forwarded writes are exactly-once like any other.
 *
 * A node that receives a forwarded command but is not the leader does not
 * forward it again (no loops, no chains): it answers -NOTLEADER, and the
 * follower puts the request back to wait for a leader, within the request's
 * original leader_wait_ms; unless a later command of the same client has
 * left already (sent to that node, which, leader by the time it arrives,
 * may carry it out first; to a new leader, or waiting on the link to one,
 * where this one would go behind it; carried out here; or answered): then
 * the refused one is answered "not applied", never sent again behind it
 * (so too a command whose link failed before sending it, when a later one
 * went another way). When the leader changes, the follower opens a link
 * to the new one and lets the old one drain. A link is given up when its
 * leader answers nothing on it for request_timeout_ms + leader_wait_ms
 * while commands wait there (rt_fwd_scan), counted from its last reply or
 * from a command sent with none waiting, never from a command's arrival
 * here. Until it connects, though, its commands are still waiting for a
 * leader, within leader_wait_ms of when they first needed one: a link not
 * connected by the end of the first one's is given up, so that a leader
 * whose client port takes no connection while its heartbeats arrive holds
 * a client no longer than no leader would. When a link fails: requests
 * not yet sent (the link never connected) and reads (no side effects) are
 * tried again, within what is left of their leader_wait_ms (past it they
 * are answered -TRYAGAIN no leader, never sent again to a leader that
 * stays silent); writes that may have reached the leader are answered
 * with their outcome unknown. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/runtime_internal.h"

/* A command that was not carried out, but sent again would go after the
 * connection's later commands, which may be (overtaken). */
#define MSG_OVERTAKEN                                                          \
  "TRYAGAIN the leader changed while the command was on its way, and the "     \
  "connection's later commands may be carried out before it could go "         \
  "again; it was not applied"

/* ---- links ------------------------------------------------------------------
 */

/* A link carries commands once connected and, with a cluster secret, once
 * the leader took its proof of it (auth.c). Until then they wait unsent. */
static bool fwd_ready(const struct rt_stream *f) {
  return f->connected && f->proof_state == RT_PROOF_NONE;
}

struct resp_buf *rt_fwd_out(struct rt_stream *f) {
  return f->proof_state == RT_PROOF_NONE ? &f->out : &f->held;
}

static void fwd_close(struct rt_stream *f, const char *why) {
  if (f->closing)
    return;
  if (why != NULL)
    rt_log(f->rt, RT_LOG_INFO, "forwarding link to node %u closed: %s",
           f->leader, why);
  if (f->rt->fwd == f)
    f->rt->fwd = NULL;
  if (f->group_link && f->rt->gnodes[f->leader] == f)
    f->rt->gnodes[f->leader] = NULL;
  rt_stream_close(f, false);
}

/* True when a command of r's client after r may be carried out before r
 * could go again, or was already: it is on its way to a leader (sent, or
 * queued on another link, where r would go behind it), being carried out
 * here (this node leads now), or answered (by a leader that may have been
 * the new one, before r's refusal came back; or failed, which is not worth
 * telling apart). Only a command that waits for a leader (or is taken
 * off a lost link with r, rt_fwd_lost) is not: r takes its place before
 * it (rt_wait_leader). Answered at once, without a request of its own
 * (cmd NULL), it changed nothing. */
static bool overtaken(const struct rt_req *r) {
  const struct rt_stream *c = r->c;
  for (const struct list_link *l = r->qlink.next; l != &c->queue; l = l->next) {
    const struct rt_req *o = LIST_OF(l, const struct rt_req, qlink);
    if (o->cmd != NULL && o->where != RT_IN_WAIT_LEADER)
      return true;
  }
  return false;
}

void rt_fwd_lost(struct rt_stream *f, const char *why) {
  struct rt *rt = f->rt;
  if (why != NULL)
    rt_log(rt, RT_LOG_INFO, "forwarding link to node %u closed: %s", f->leader,
           why);
  bool current = rt->fwd == f;
  if (rt->fwd == f)
    rt->fwd = NULL;
  if (f->group_link && rt->gnodes[f->leader] == f) {
    rt->gnodes[f->leader] = NULL;
    /* Its groups' commands go through this node's own runtimes of them
     * for a moment, rather than straight back to a node just lost. */
    rt->fwd_failed_leader = f->leader;
    rt->fwd_failed_ms = rt_now_ms(rt);
  } else if (current && !fwd_ready(f) && !list_empty(&f->pending)) {
    /* The leader's port took no connection (refused, or nothing answered
     * within the commands' wait): tried again at once, its commands
     * would only open link after link to it. */
    rt->fwd_failed_leader = f->leader;
    rt->fwd_failed_ms = rt_now_ms(rt);
  }
  list_remove(&f->link);
  f->unhanded = 0; /* those still in pending go another way below */
  f->unhanded_bytes = 0;
  f->unhanded_first = NULL;
  /* All off the link first, waiting as for a leader: none overtakes
   * another of its client's off the link with it (overtaken), which goes
   * again, or is answered, before it, in the order they were sent. */
  struct list_link lost;
  list_init(&lost);
  while (!list_empty(&f->pending)) {
    struct rt_req *r = LIST_OF(f->pending.next, struct rt_req, glink);
    list_remove(&r->glink);
    r->where = RT_IN_WAIT_LEADER;
    list_push(&lost, &r->glink);
  }
  while (!list_empty(&lost)) {
    struct rt_req *r = LIST_OF(lost.next, struct rt_req, glink);
    list_remove(&r->glink);
    r->where = RT_IN_NONE;
    if (r->c == NULL)
      rt_req_free(r);
    else if (r->c->closing)
      continue; /* still in its stream's queue, which frees it */
    else if ((!f->connected || !r->sent) && overtaken(r))
      rt_req_fail(rt, r, MSG_OVERTAKEN); /* it would go after them */
    else if (r->group != rt->cfg.group &&
             (!f->connected || !r->sent || rt_command_is_read(r->cmd)))
      rt_group_route(rt, r); /* another group's: through its own link */
    else if ((!f->connected || !r->sent || rt_command_is_read(r->cmd)) &&
             r->deadline_ms != 0 && r->deadline_ms <= rt_now_ms(rt))
      rt_req_fail_no_leader(rt, r); /* its wait is over: never again */
    else if (!f->connected || !r->sent || rt_command_is_read(r->cmd))
      rt_wait_leader(rt, r); /* never executed, or harmless to repeat */
    else
      rt_req_fail(rt, r,
                  "TRYAGAIN lost the connection to the leader; the outcome "
                  "of the write is unknown");
  }
}

void rt_fwd_queued(struct rt_stream *f, struct rt_req *r) {
  /* On a link that is up everything pending was sent (rt_fwd_connected):
   * with nothing pending, nothing is owed, and the leader's clock starts
   * with this command. Behind others it does not: a stream of new
   * commands must not keep up a link whose leader answers none. */
  bool idle = list_empty(&f->pending);
  r->where = RT_IN_FORWARD;
  list_push(&f->pending, &r->glink);
  /* Going to a leader is the end of its wait for one only once the link
   * takes it: a port that never does must not hold it for ever. */
  if (r->deadline_ms == 0)
    r->deadline_ms = rt_now_ms(f->rt) + f->rt->cfg.leader_wait_ms;
  /* On a link that is up the command is in the output the host takes
   * next; queued before it connected, rt_fwd_connected sends it. Marking
   * only this one keeps a deep pipeline linear. */
  r->sent = fwd_ready(f) && !f->closing;
  if (!r->sent && (f->connect_by_ms == 0 || r->deadline_ms < f->connect_by_ms))
    f->connect_by_ms = r->deadline_ms;
  if (r->sent && idle)
    f->progress_ms = rt_now_ms(f->rt);
  if (r->sent)
    rt_stream_kick_output(f);
}

/* Everything pending is in the output the host takes next: sent now,
 * however long it waited for the connection (or the proof). */
static void fwd_send_pending(struct rt_stream *f) {
  f->progress_ms = rt_now_ms(f->rt);
  for (struct list_link *l = f->pending.next; l != &f->pending; l = l->next)
    LIST_OF(l, struct rt_req, glink)->sent = true;
  rt_stream_kick_output(f);
}

void rt_fwd_connected(struct rt_stream *f) {
  if (f->closing)
    return;
  f->connected = true;
  rt_log(f->rt, RT_LOG_DEBUG, "forwarding link to node %u open", f->leader);
  if (f->proof_state == RT_PROOF_NONE) {
    fwd_send_pending(f);
    return;
  }
  /* Only the login and SABHA.FORWARDED go; the leader's clock starts. */
  f->progress_ms = rt_now_ms(f->rt);
  rt_stream_kick_output(f);
}

void rt_stream_connected(struct rt_stream *s) {
  rt_fwd_connected(s);
  rt_reap(s->rt);
}

/* The leader's answer to the link's last word about itself: its challenge
 * (then the link sends its proof), or its verdict on the proof (then the
 * commands held meanwhile go). Anything else: the link cannot be used,
 * and is given up with nothing of its clients' sent. */
static void fwd_proof_step(struct rt_stream *f, const uint8_t *p, size_t len) {
  struct rt *rt = f->rt;
  bool ok;
  if (f->proof_state == RT_PROOF_CHALLENGE) {
    uint8_t challenge[RT_LINK_KEY_BYTES];
    ok = rt_auth_parse_challenge(p, len, challenge);
    if (ok) {
      rt_auth_write_link_proof(rt, f->leader, challenge, &f->out);
      f->skip_replies = 1;
      f->proof_state = RT_PROOF_VERDICT;
      rt_stream_kick_output(f);
      return;
    }
  } else {
    ok = len == 5 && memcmp(p, "+OK\r\n", 5) == 0;
    if (ok) {
      f->proof_state = RT_PROOF_NONE;
      resp_buf_append(&f->out, f->held.data, f->held.len);
      resp_buf_free(&f->held);
      if (f->out.err != 0) {
        fwd_close(f, "output buffer overflow");
        return;
      }
      fwd_send_pending(f);
      return;
    }
  }
  rt_log(rt, RT_LOG_WARN,
         "node %u did not take this node's forwarding link (do the nodes "
         "share the cluster secret?): %.*s",
         f->leader, (int)(len > 120 ? 120 : len - 2), (const char *)p);
  fwd_close(f, "it could not prove the cluster secret");
}

static void fwd_on_reply(struct rt_stream *f, const uint8_t *p, size_t len) {
  struct rt *rt = f->rt;
  /* Any reply shows the leader at work for the link: a refusal, one to
   * the link's own commands, one whose client went away. */
  f->progress_ms = rt_now_ms(rt);
  if (f->skip_replies > 0) {
    f->skip_replies--;
    if (f->skip_replies == 0 && f->proof_state != RT_PROOF_NONE) {
      fwd_proof_step(f, p, len);
      return;
    }
    if (p[0] == '-')
      rt_log(rt, RT_LOG_WARN,
             "node %u refused this node's forwarding link (do the nodes "
             "share requirepass and admin-pass?): %.*s",
             f->leader, (int)(len > 120 ? 120 : len - 2), (const char *)p + 1);
    return;
  }
  if (list_empty(&f->pending)) {
    fwd_close(f, "a reply nobody asked for");
    return;
  }
  struct rt_req *r = LIST_OF(f->pending.next, struct rt_req, glink);
  list_remove(&r->glink);
  r->where = RT_IN_NONE;
  if (r->c == NULL) {
    rt_req_free(r);
    return;
  }
  bool refused = len >= 10 && memcmp(p, "-NOTLEADER", 10) == 0;
  /* An in-process link relays a refusal to the node that asked
   * (groups.c). */
  if (refused && (f->group_link || !f->in_process)) {
    /* Not executed there. A group's link leaves it to the group's own
     * link to find the leader (groups.c); otherwise it waits for this node
     * to learn the real leader, and that node is not asked again for a
     * while. Unless the client's next commands are on their way already:
     * that node, leader by the time they arrive, carries them out, and
     * sent again this one would apply after them (SET k 1; INCR k as
     * INCR, then SET). It was not carried out: the client is told so. */
    if (!f->group_link) {
      rt->fwd_failed_leader = f->leader;
      rt->fwd_failed_ms = rt_now_ms(rt);
    }
    if (overtaken(r)) {
      rt_req_fail(rt, r, MSG_OVERTAKEN);
    } else if (f->group_link) {
      r->via_pair = true;
      rt_group_route(rt, r);
    } else {
      rt_wait_leader(rt, r);
    }
    return;
  }
  resp_buf_reset(&r->reply);
  /* A copy that fails leaves the reply's error set: rt_client_flush then
   * answers the command with an error, so that each of the client's later
   * replies still answers its own. */
  resp_buf_append(&r->reply, p, len);
  rt_req_done(rt, r);
}

void rt_fwd_input(struct rt_stream *f) {
  size_t off = 0;
  while (!f->closing) {
    size_t used = 0;
    int rc = resp_reply_scan(f->in + off, f->in_len - off, &used);
    if (rc < 0) {
      fwd_close(f, "malformed reply");
      return;
    }
    if (rc == 0)
      break;
    fwd_on_reply(f, f->in + off, used);
    off += used;
  }
  if (f->closing)
    return;
  memmove(f->in, f->in + off, f->in_len - off);
  f->in_len -= off;
  /* A link to a former leader closes once it has nothing more to bring. */
  if (f != f->rt->fwd && list_empty(&f->pending) && !f->in_process &&
      !f->group_link)
    fwd_close(f, NULL);
}

static struct rt_stream *fwd_open(struct rt *rt, uint32_t leader) {
  struct rt_stream *f = rt_stream_new_forward(rt);
  if (f == NULL)
    return NULL;
  f->leader = leader;
  /* A link that never connects is given up as one whose leader never
   * answers (rt_fwd_scan): the host may wait far longer on a connection
   * that nothing answers. */
  f->progress_ms = rt_now_ms(rt);
  /* The leader holds the link to the same rules as any client: it logs in
   * first when this node has a password (auth.c), then says what it is. */
  uint32_t login = rt_auth_write_link_login(rt, &f->out);
  static const struct resp_arg hello = {(const uint8_t *)"SABHA.FORWARDED", 15};
  rt_write_command(&f->out, 1, &hello);
  f->skip_replies = login + 1;
  /* With a cluster secret it is answered with a challenge, and the link
   * proves the secret before any client's command goes (auth.c). */
  if (f->rt->cfg.link_key_set)
    f->proof_state = RT_PROOF_CHALLENGE;
  list_push(&rt->fwds, &f->link);
  if (rt->ports.stream_connect(rt->ports.ctx, f, leader) != 0) {
    rt->fwd_failed_leader = leader;
    rt->fwd_failed_ms = rt_now_ms(rt);
    list_remove(&f->link);
    f->handed = true; /* the host never had it */
    rt_stream_free(f);
    return NULL;
  }
  return f;
}

struct rt_stream *rt_fwd_open(struct rt *rt, uint32_t node) {
  return fwd_open(rt, node);
}

/* The current link stops taking requests: it drains, then closes. */
static void fwd_detach(struct rt *rt) {
  struct rt_stream *f = rt->fwd;
  rt->fwd = NULL;
  if (f != NULL && list_empty(&f->pending))
    fwd_close(f, NULL);
}

void rt_forward(struct rt *rt, struct rt_req *r) {
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  uint32_t leader = st.leader;
  assert(leader != SABHA_NODE_NONE && leader != rt->cfg.engine.id);
  if (rt->fwd != NULL && rt->fwd->leader != leader)
    fwd_detach(rt);
  if (rt->fwd_failed_leader == leader &&
      rt_now_ms(rt) < rt->fwd_failed_ms + RT_FWD_BACKOFF_MS) {
    rt_wait_leader(rt, r); /* it refused or could not be reached just now */
    return;
  }
  if (rt->fwd == NULL) {
    rt->fwd = fwd_open(rt, leader);
    if (rt->fwd == NULL) {
      rt_wait_leader(rt, r);
      return;
    }
  }
  struct rt_stream *f = rt->fwd;
  struct resp_buf *out = rt_fwd_out(f);
  rt_write_command(out, r->argc, r->argv);
  if (out->err != 0) {
    fwd_close(f, "output buffer overflow");
    rt_req_fail(rt, r, "TRYAGAIN the forwarding link is overloaded");
    return;
  }
  rt->m.forwarded++;
  rt_fwd_queued(f, r);
}

void rt_fwd_leader_changed(struct rt *rt) {
  if (rt->fwd != NULL && rt->fwd->leader != rt->last_leader)
    fwd_detach(rt);
}

void rt_fwd_close_all(struct rt *rt) {
  for (struct list_link *l = rt->fwds.next; l != &rt->fwds; l = l->next)
    fwd_close(LIST_OF(l, struct rt_stream, link), NULL);
}

void rt_fwd_scan(struct rt *rt, uint64_t now_ms) {
  /* A leader answers a command within request_timeout_ms of taking it,
   * after waiting up to leader_wait_ms for a leader itself: one that
   * answers nothing for longer, with commands owed, is gone or cut off. */
  uint64_t limit =
      (uint64_t)rt->cfg.request_timeout_ms + rt->cfg.leader_wait_ms;
  for (struct list_link *l = rt->fwds.next; l != &rt->fwds; l = l->next) {
    struct rt_stream *f = LIST_OF(l, struct rt_stream, link);
    /* A group's link: the group answers every request in its own time. */
    if (f->closing || list_empty(&f->pending) || f->in_process)
      continue;
    /* Its commands' wait for a leader runs on while it connects: the
     * oldest's end gives it up, unsent, and those whose wait is over are
     * answered (rt_fwd_lost). Nothing was written to the leader, so
     * nothing may be carried out there. */
    if (!fwd_ready(f) && f->connect_by_ms != 0 && f->connect_by_ms <= now_ms) {
      fwd_close(f, f->connected ? "it did not prove the cluster secret within "
                                  "leader-wait-ms"
                                : "it did not connect within leader-wait-ms");
      continue;
    }
    /* Judged by the leader's progress (progress_ms), not by the age of
     * the oldest command: one that waited here first (for a leader, for
     * the link to connect) would close the link to a leader that is
     * busy but answering, and answer every write on it "outcome unknown"
     * just when the system is loaded. A reply taken since `now_ms` was
     * read leaves progress_ms past it: up to date, not closed. */
    if (f->progress_ms + limit < now_ms)
      fwd_close(f, "the leader stopped answering");
  }
}

/* ---- replies
 * ----------------------------------------------------------------- */

void rt_write_command(struct resp_buf *b, uint32_t argc,
                      const struct resp_arg *argv) {
  resp_write_array(b, argc);
  for (uint32_t i = 0; i < argc; i++)
    resp_write_bulk(b, argv[i].ptr, argv[i].len);
}
