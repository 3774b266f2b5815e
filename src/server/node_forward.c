/* Forwarding: how a follower serves a client that needs the leader.
 *
 * A follower keeps one RESP connection of its own (struct srv_fwd) to the
 * current leader's client port, announced as a forwarding link with
 * SABHA.FORWARDED as its first command. Commands from all of the follower's
 * clients are pipelined over it in arrival order; the leader answers a
 * connection's commands in order, so each reply is matched with the oldest
 * request still waiting on the link (srv_reply_scan finds where one reply
 * ends, arrays included, without recursion) and relayed byte for byte. At
 * the leader the link is an ordinary client with its own kvstore session,
 * so forwarded writes are exactly-once like any other.
 *
 * A node that receives a forwarded command but is not the leader does not
 * forward it again (no loops, no chains): it answers -NOTLEADER, and the
 * follower puts the request back to wait for a leader, within the request's
 * original leader_wait_ms. When the leader changes, the follower opens a
 * link to the new one and lets the old one drain. When a link fails:
 * requests not yet executed (the link never connected) and reads (no side
 * effects) are tried again; writes that may have reached the leader are
 * answered -TRYAGAIN with their outcome unknown. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/node_internal.h"

#define REPLY_LINE_BYTES_MAX 65536u
#define REPLY_BULK_BYTES_MAX (512u << 20)
#define REPLY_ELEMENTS_MAX (1u << 24)

int srv_reply_scan(const uint8_t *buf, size_t len, size_t *consumed) {
  size_t pos = 0;
  uint64_t pending = 1; /* values still to read */
  while (pending > 0) {
    if (pos >= len)
      return 0;
    size_t eol = pos + 1;
    while (eol + 1 < len && !(buf[eol] == '\r' && buf[eol + 1] == '\n'))
      eol++;
    if (eol + 1 >= len)
      return len - pos > REPLY_LINE_BYTES_MAX ? -1 : 0;
    uint8_t type = buf[pos];
    if (type == '+' || type == '-' || type == ':') {
      pos = eol + 2;
      pending--;
      continue;
    }
    if (type != '$' && type != '*')
      return -1;
    /* A signed decimal length. */
    size_t i = pos + 1;
    bool neg = false;
    if (i < eol && buf[i] == '-') {
      neg = true;
      i++;
    }
    if (i == eol)
      return -1;
    uint64_t v = 0;
    for (; i < eol; i++) {
      if (buf[i] < '0' || buf[i] > '9' || v > REPLY_BULK_BYTES_MAX)
        return -1;
      v = v * 10 + (uint64_t)(buf[i] - '0');
    }
    if (neg && v != 1)
      return -1;
    pos = eol + 2;
    pending--;
    if (neg)
      continue; /* a null bulk string or null array */
    if (type == '$') {
      if (v > REPLY_BULK_BYTES_MAX)
        return -1;
      if (len - pos < v + 2)
        return 0;
      if (buf[pos + v] != '\r' || buf[pos + v + 1] != '\n')
        return -1;
      pos += v + 2;
    } else {
      if (v > REPLY_ELEMENTS_MAX)
        return -1;
      pending += v;
    }
  }
  *consumed = pos;
  return 1;
}

void srv_write_command(struct resp_buf *b, uint32_t argc,
                       const struct resp_arg *argv) {
  resp_write_array(b, argc);
  for (uint32_t i = 0; i < argc; i++)
    resp_write_bulk(b, argv[i].ptr, argv[i].len);
}

/* ---- links ------------------------------------------------------------------
 */

static void on_fwd_closed(uv_handle_t *h) {
  struct srv_fwd *f = h->data;
  free(f->in);
  srv_outq_free(&f->oq);
  free(f);
}

static void fwd_close(struct srv_fwd *f, const char *why) {
  if (f->closing)
    return;
  struct srv_node *n = f->n;
  f->closing = true;
  srv_list_remove(&f->link);
  if (n->fwd == f)
    n->fwd = NULL;
  if (why != NULL)
    srv_log(n, "INFO", "forwarding link to node %u closed: %s", f->leader, why);
  while (!srv_list_empty(&f->pending)) {
    struct srv_req *r = SRV_OF(f->pending.next, struct srv_req, glink);
    srv_list_remove(&r->glink);
    r->where = SRV_IN_NONE;
    if (r->c == NULL) {
      srv_req_free(r);
    } else if (n->stopping) {
      /* still in its client's queue, which frees it */
    } else if (!f->connected || !r->sent || srv_req_is_read(r)) {
      srv_wait_leader(n, r); /* never executed, or harmless to repeat */
    } else {
      srv_req_fail(n, r,
                   "TRYAGAIN lost the connection to the leader; the outcome "
                   "of the write is unknown");
    }
  }
  uv_close((uv_handle_t *)&f->tcp, on_fwd_closed);
}

static void on_fwd_write(uv_write_t *w, int status) {
  struct srv_fwd *f = w->handle->data;
  f->oq.writing = false;
  resp_buf_reset(&f->oq.wbuf);
  if (f->closing)
    return;
  if (status < 0) {
    fwd_close(f, uv_strerror(status));
    return;
  }
  if (srv_outq_kick(&f->oq, (uv_stream_t *)&f->tcp, on_fwd_write) != 0)
    fwd_close(f, "write failed");
}

static void fwd_kick(struct srv_fwd *f) {
  if (!f->connected || f->closing)
    return;
  /* Everything pending is in the buffer being handed to the socket. */
  for (struct srv_link *l = f->pending.next; l != &f->pending; l = l->next)
    SRV_OF(l, struct srv_req, glink)->sent = true;
  if (srv_outq_kick(&f->oq, (uv_stream_t *)&f->tcp, on_fwd_write) != 0)
    fwd_close(f, "write failed");
}

static void fwd_on_reply(struct srv_fwd *f, const uint8_t *p, size_t len) {
  struct srv_node *n = f->n;
  if (f->skip_replies > 0) {
    f->skip_replies--;
    if (p[0] == '-')
      srv_log(n, "WARN", "node %u refused SABHA.FORWARDED: %.*s", f->leader,
              (int)(len > 120 ? 120 : len - 2), (const char *)p + 1);
    return;
  }
  if (srv_list_empty(&f->pending)) {
    fwd_close(f, "a reply nobody asked for");
    return;
  }
  struct srv_req *r = SRV_OF(f->pending.next, struct srv_req, glink);
  srv_list_remove(&r->glink);
  r->where = SRV_IN_NONE;
  if (r->c == NULL) {
    srv_req_free(r);
    return;
  }
  if (len >= 10 && memcmp(p, "-NOTLEADER", 10) == 0) {
    /* Not executed there: wait for this node to learn the real leader,
     * and do not ask that node again for a while. */
    n->fwd_failed_leader = f->leader;
    n->fwd_failed_ms = uv_now(&n->loop);
    srv_wait_leader(n, r);
    return;
  }
  resp_buf_reset(&r->reply);
  resp_buf_append(&r->reply, p, len);
  srv_req_done(n, r);
}

static void on_fwd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct srv_fwd *f = h->data;
  (void)suggested;
  size_t want = 64 * 1024;
  if (f->in_cap - f->in_len < want) {
    size_t cap = f->in_cap == 0 ? want : f->in_cap;
    while (cap - f->in_len < want)
      cap *= 2;
    uint8_t *p = realloc(f->in, cap);
    if (p == NULL) {
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    f->in = p;
    f->in_cap = cap;
  }
  *buf =
      uv_buf_init((char *)f->in + f->in_len, (unsigned)(f->in_cap - f->in_len));
}

static void on_fwd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct srv_fwd *f = s->data;
  (void)buf;
  if (nread < 0) {
    fwd_close(f, nread == UV_EOF ? "the leader closed it"
                                 : uv_strerror((int)nread));
    return;
  }
  f->in_len += (size_t)nread;
  size_t off = 0;
  while (!f->closing) {
    size_t used = 0;
    int rc = srv_reply_scan(f->in + off, f->in_len - off, &used);
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
  if (f != f->n->fwd && srv_list_empty(&f->pending))
    fwd_close(f, NULL);
}

static void on_fwd_connect(uv_connect_t *req, int status) {
  struct srv_fwd *f = req->data;
  struct srv_node *n = f->n;
  if (f->closing)
    return;
  if (status < 0) {
    n->fwd_failed_leader = f->leader;
    n->fwd_failed_ms = uv_now(&n->loop);
    fwd_close(f, uv_strerror(status));
    return;
  }
  f->connected = true;
  uv_tcp_nodelay(&f->tcp, 1);
  uv_read_start((uv_stream_t *)&f->tcp, on_fwd_alloc, on_fwd_read);
  srv_log(n, "DEBUG", "forwarding link to node %u open", f->leader);
  fwd_kick(f);
}

static struct srv_fwd *fwd_open(struct srv_node *n, uint32_t leader,
                                const struct srv_addr *a) {
  struct sockaddr_storage addr;
  if (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)&addr) != 0)
    return NULL;
  struct srv_fwd *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->n = n;
  f->leader = leader;
  srv_outq_init(&f->oq);
  srv_list_init(&f->pending);
  uv_tcp_init(&n->loop, &f->tcp);
  f->tcp.data = f;
  f->connect_req.data = f;
  srv_list_push(&n->fwds, &f->link);
  int rc = uv_tcp_connect(&f->connect_req, &f->tcp,
                          (const struct sockaddr *)&addr, on_fwd_connect);
  if (rc != 0) {
    n->fwd_failed_leader = leader;
    n->fwd_failed_ms = uv_now(&n->loop);
    fwd_close(f, uv_strerror(rc));
    return NULL;
  }
  static const struct resp_arg hello = {(const uint8_t *)"SABHA.FORWARDED", 15};
  srv_write_command(&f->oq.out, 1, &hello);
  f->skip_replies = 1;
  return f;
}

/* The current link stops taking requests: it drains, then closes. */
static void fwd_detach(struct srv_node *n) {
  struct srv_fwd *f = n->fwd;
  n->fwd = NULL;
  if (f != NULL && srv_list_empty(&f->pending))
    fwd_close(f, NULL);
}

void srv_forward(struct srv_node *n, struct srv_req *r) {
  struct sabha_status st;
  srv_status(n, &st);
  uint32_t leader = st.leader;
  assert(leader != SABHA_NODE_NONE && leader != n->cfg.id);
  if (n->fwd != NULL && n->fwd->leader != leader)
    fwd_detach(n);
  if (n->fwd_failed_leader == leader &&
      uv_now(&n->loop) < n->fwd_failed_ms + SRV_FWD_BACKOFF_MS) {
    srv_wait_leader(n, r); /* it refused or could not be reached just now */
    return;
  }
  if (n->fwd == NULL) {
    n->fwd = fwd_open(n, leader, srv_client_addr_of(n, leader));
    if (n->fwd == NULL) {
      srv_wait_leader(n, r);
      return;
    }
  }
  struct srv_fwd *f = n->fwd;
  srv_write_command(&f->oq.out, r->argc, r->argv);
  if (f->oq.out.err != 0) {
    fwd_close(f, "output buffer overflow");
    srv_req_fail(n, r, "TRYAGAIN the forwarding link is overloaded");
    return;
  }
  r->where = SRV_IN_FORWARD;
  r->sent = false;
  srv_list_push(&f->pending, &r->glink);
  n->m.forwarded++;
  fwd_kick(f);
}

void srv_fwd_leader_changed(struct srv_node *n) {
  if (n->fwd != NULL && n->fwd->leader != n->last_leader)
    fwd_detach(n);
}

void srv_fwd_close_all(struct srv_node *n) {
  while (!srv_list_empty(&n->fwds))
    fwd_close(SRV_OF(n->fwds.next, struct srv_fwd, link), NULL);
}

void srv_fwd_scan(struct srv_node *n, uint64_t now_ms) {
  uint64_t limit = (uint64_t)n->cfg.request_timeout_ms + n->cfg.leader_wait_ms;
  struct srv_link *l = n->fwds.next;
  while (l != &n->fwds) {
    struct srv_fwd *f = SRV_OF(l, struct srv_fwd, link);
    l = l->next;
    if (srv_list_empty(&f->pending))
      continue;
    struct srv_req *r = SRV_OF(f->pending.next, struct srv_req, glink);
    if (r->arrival_ms + limit < now_ms)
      fwd_close(f, "the leader stopped answering");
  }
}
