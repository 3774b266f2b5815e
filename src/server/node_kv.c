/* The key-value API on the HTTP port: /v1/kv and /v1/watch.
 *
 *   PUT    /v1/kv/KEY          body = value    204, or an error status
 *   GET    /v1/kv/KEY                          200 with the value, or 404
 *   DELETE /v1/kv/KEY                          204, or 404 if absent
 *   GET    /v1/kv/?prefix=P[&limit=N]          200, JSON: the keys under P
 *                                              in order, with values and
 *                                              revisions
 *   GET    /v1/watch?prefix=P[&from=R]         server-sent events, one per
 *                                              change
 *
 * Each HTTP connection that asks for these gets a client stream of the
 * node runtime, exactly as a RESP connection does, and each request
 * becomes the RESP command it means (SET, GET, DEL, SABHA.RANGE,
 * SABHA.WATCH ... BATCH 0) fed into that stream; its reply becomes the
 * HTTP response. So the API is linearizable and works through any node
 * (a follower forwards to the leader) with no code of its own for any of
 * that, and a connection's requests apply in the order it sent them.
 * Pipelined requests are fed to the stream together (node_http.c says how
 * many), each remembered in order in the connection's ring (c->kv) with
 * what its reply means; the stream hands the replies back one at a time
 * (rt_stream_set_one_reply), each turned into its response as it comes.
 * Connections are kept alive (HTTP/1.1), so a load generator reuses them;
 * the command and the replies are built in buffers the connection keeps.
 *
 * Status codes: 400 a request or command the node refuses (the RESP error
 * is the body), 401 a password is needed (Authorization: Bearer
 * <requirepass>) or wrong, 403 not allowed to this user, 404 no such key,
 * 405 another method, 410 a watch FROM a revision this node no longer
 * keeps, 411 no Content-Length on PUT, 413 a body over
 * SRV_HTTP_BODY_BYTES_MAX (or a value over the store's bound), 503 no
 * leader or the outcome is not known yet (retry; the body says which), 507
 * the store is full, 500 the runtime closed the stream with the request
 * unanswered (a reply past a limit). docs/api.md has the details.
 *
 * Everything here runs outside the runtime's port callbacks: those only
 * mark the connection (kv_due) and node.c's check phase calls
 * srv_kv_service(). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/http.h"
#include "server/node_internal.h"

enum kv_route {
  ROUTE_NONE = 0,
  ROUTE_GET,
  ROUTE_PUT,
  ROUTE_DELETE,
  ROUTE_RANGE,
  ROUTE_WATCH,
};

bool srv_kv_wants(const struct http_request *req) {
  return req->path_len >= 4 && memcmp(req->path, "/v1/", 4) == 0;
}

/* ---- responses ------------------------------------------------------------
 */

/* `head`: the answer to a HEAD, which has the headers of the response it
 * names and no body (a keep-alive client reads none). */
static void respond_as(struct srv_http_conn *c, int status, const char *type,
                       const void *body, size_t n, bool head) {
  struct resp_buf *b = &c->out;
  resp_buf_printf(b,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n",
                  status, http_reason_phrase(status), type, n,
                  c->kv_close && c->kv_n <= 1 ? "Connection: close\r\n" : "");
  if (!head)
    resp_buf_append(b, body, n);
}

static void respond(struct srv_http_conn *c, int status, const char *type,
                    const void *body, size_t n) {
  respond_as(c, status, type, body, n, false);
}

static void respond_text_as(struct srv_http_conn *c, int status,
                            const char *text, bool head) {
  char body[320];
  int n = snprintf(body, sizeof body, "%s\n", text);
  if (n < 0 || (size_t)n >= sizeof body)
    n = (int)sizeof body - 1;
  respond_as(c, status, "text/plain; charset=utf-8", body, (size_t)n, head);
}

static void respond_text(struct srv_http_conn *c, int status,
                         const char *text) {
  respond_text_as(c, status, text, false);
}

/* The status a RESP error means (docs/api.md). */
static int error_status(const char *msg, size_t n) {
  struct {
    const char *prefix;
    int status;
  } map[] = {
      {"NOAUTH", 401},
      {"WRONGPASS", 401},
      {"NOPERM", 403},
      {"TRYAGAIN", 503},
      {"MOVED", 503},
      {"OOM", 507},
      {"ERR string exceeds", 413},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
    size_t k = strlen(map[i].prefix);
    if (n >= k && memcmp(msg, map[i].prefix, k) == 0)
      return map[i].status;
  }
  for (size_t i = 0; i + 9 <= n; i++)
    if (memcmp(msg + i, "compacted", 9) == 0)
      return 410;
  return 400;
}

/* ---- reading RESP replies -------------------------------------------------
 */

/* A cursor over one complete reply (resp_reply_scan said so). */
struct rd {
  const uint8_t *p, *end;
};

/* The next element's type byte and its line (without CRLF). */
static char rd_line(struct rd *r, const uint8_t **text, size_t *n) {
  const uint8_t *crlf = memchr(r->p, '\r', (size_t)(r->end - r->p));
  if (crlf == NULL)
    return 0;
  char type = (char)r->p[0];
  *text = r->p + 1;
  *n = (size_t)(crlf - r->p - 1);
  r->p = crlf + 2;
  return type;
}

static int64_t to_i64(const uint8_t *p, size_t n) {
  int64_t v = 0;
  bool neg = n > 0 && p[0] == '-';
  /* The node's own replies: at most 19 digits. */
  for (size_t i = neg ? 1 : 0; i < n && i < 19 && p[i] >= '0' && p[i] <= '9';
       i++)
    v = v * 10 + (p[i] - '0');
  return neg ? -v : v;
}

/* A bulk string (or nil: *ptr NULL). */
static bool rd_bulk(struct rd *r, const uint8_t **ptr, size_t *len) {
  const uint8_t *t;
  size_t n;
  if (rd_line(r, &t, &n) != '$')
    return false;
  int64_t v = to_i64(t, n);
  if (v < 0) {
    *ptr = NULL;
    *len = 0;
    return true;
  }
  *ptr = r->p;
  *len = (size_t)v;
  r->p += (size_t)v + 2;
  return true;
}

static bool rd_int(struct rd *r, int64_t *v) {
  const uint8_t *t;
  size_t n;
  if (rd_line(r, &t, &n) != ':')
    return false;
  *v = to_i64(t, n);
  return true;
}

/* ---- requests -------------------------------------------------------------
 */

static int hex(uint8_t ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes p[0, n) into out (as long: decoding only shrinks); '+'
 * is a space in a query. Returns the length, or -1 for a bad escape. */
static long pct_decode(const char *p, size_t n, uint8_t *out, bool query) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '%') {
      if (i + 2 >= n)
        return -1;
      int hi = hex((uint8_t)p[i + 1]), lo = hex((uint8_t)p[i + 2]);
      if (hi < 0 || lo < 0)
        return -1;
      out[k++] = (uint8_t)(hi * 16 + lo);
      i += 2;
    } else {
      out[k++] = query && p[i] == '+' ? ' ' : (uint8_t)p[i];
    }
  }
  return (long)k;
}

/* The value of `name` in the query, decoded into out; -1 when absent or
 * malformed. */
static long query_param(const struct http_request *req, const char *name,
                        uint8_t *out) {
  size_t nlen = strlen(name);
  const char *q = req->query, *end = req->query + req->query_len;
  while (q != NULL && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *stop = amp != NULL ? amp : end;
    if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 &&
        q[nlen] == '=')
      return pct_decode(q + nlen + 1, (size_t)(stop - q - nlen - 1), out, true);
    q = amp != NULL ? amp + 1 : end;
  }
  return -1;
}

static void put_arg(struct resp_buf *b, const void *p, size_t n) {
  resp_write_bulk(b, p, n);
}

/* NAME prefix [KEYWORD] [value of param]: the command of a range or a
 * watch, its prefix and the one number it may take from the query; a
 * watch also asks for a reply per revision (BATCH 0). */
static void prefix_command(struct resp_buf *cmd, const struct http_request *req,
                           const char *name, const char *param,
                           const char *keyword, uint8_t *prefix,
                           uint8_t *value) {
  long n = query_param(req, "prefix", prefix);
  size_t prefix_len = n < 0 ? 0 : (size_t)n;
  long v = query_param(req, param, value);
  bool watch = keyword != NULL;
  size_t argc = 2 + (v > 0 ? 1 + watch : 0) + (watch ? 2 : 0);
  resp_write_array(cmd, argc);
  put_arg(cmd, name, strlen(name));
  put_arg(cmd, prefix, prefix_len);
  if (v > 0 && watch)
    put_arg(cmd, keyword, strlen(keyword));
  if (v > 0)
    put_arg(cmd, value, (size_t)v);
  if (watch) {
    put_arg(cmd, "BATCH", 5);
    put_arg(cmd, "0", 1);
  }
}

/* The connection's runtime stream, made on its first request. */
static const char *bridge_open(struct srv_http_conn *c) {
  if (c->bridge != NULL)
    return NULL;
  struct rt_stream *s = NULL;
  const char *refused = rt_stream_accept(c->n->rt, c->loopback, &s);
  if (refused != NULL)
    return refused;
  struct srv_conn *b = calloc(1, sizeof *b);
  if (b == NULL) {
    rt_stream_lost(s);
    rt_stream_free(s);
    return "OOM out of memory";
  }
  b->n = c->n;
  b->s = s;
  b->http = c;
  rt_stream_set_host(s, b);
  rt_stream_set_host_bounded(s); /* by SRV_HTTP_BODY_BYTES_MAX and the head's */
  rt_stream_set_one_reply(s);    /* each its own response, in order */
  c->bridge = b;
  return NULL;
}

/* The oldest request with the runtime: the one the next reply answers. */
static struct srv_http_kv *kv_oldest(struct srv_http_conn *c) {
  return c->kv_n > 0 ? &c->kv[c->kv_first] : NULL;
}

static enum kv_route oldest_route(struct srv_http_conn *c) {
  return c->kv_n > 0 ? (enum kv_route)c->kv[c->kv_first].route : ROUTE_NONE;
}

/* Ends the oldest request: the next may start. */
static void request_done(struct srv_http_conn *c) {
  struct srv_http_kv *k = kv_oldest(c);
  assert(k != NULL && c->kv_bytes >= k->bytes);
  c->kv_bytes -= k->bytes;
  c->kv_first = (c->kv_first + 1) % SRV_HTTP_PIPELINE_MAX;
  c->kv_n--;
  srv_http_request_done(c);
}

/* The requests left with the runtime get no response of their own: the
 * connection closes after the one just made. */
static void requests_dropped(struct srv_http_conn *c) {
  c->kv_n = 0;
  c->kv_bytes = 0;
}

/* Answers a request that never reached the runtime (`close`: its
 * connection ends with it). Only with none before it there: false, and
 * nothing done, otherwise (srv_kv_request waits), so that the answer comes
 * in its place. */
static bool fail_now(struct srv_http_conn *c, const struct http_request *req,
                     bool close, int status, const char *text) {
  if (c->kv_n > 0)
    return false;
  c->kv_close = close;
  respond_text_as(c, status, text, req->method == HTTP_METHOD_HEAD);
  srv_http_request_done(c);
  return true;
}

/* The request asks that the connection end with its response. */
static bool wants_close(const struct http_request *req) {
  const struct http_header *conn = http_header_find(req, "connection");
  return (req->version_minor == 0 &&
          (conn == NULL || conn->value_len != 10 ||
           strncasecmp(conn->value, "keep-alive", 10) != 0)) ||
         (conn != NULL && conn->value_len == 5 &&
          strncasecmp(conn->value, "close", 5) == 0);
}

bool srv_kv_request(struct srv_http_conn *c, const struct http_request *req,
                    const uint8_t *body, size_t body_len) {
  uint8_t key[HTTP_LINE_DECODE_BYTES], arg[HTTP_LINE_DECODE_BYTES];
  bool close = wants_close(req);
  if (c->kv_n == SRV_HTTP_PIPELINE_MAX)
    return false;
  enum kv_route route = ROUTE_NONE;
  long key_len = -1;
  bool is_kv = req->path_len >= 7 && memcmp(req->path, "/v1/kv/", 7) == 0;
  if (is_kv)
    key_len = pct_decode(req->path + 7, req->path_len - 7, key, false);
  if (is_kv && key_len < 0) {
    return fail_now(c, req, close, 400,
                    "malformed percent-encoding in the key");
  }
  if (is_kv && key_len == 0 && req->method == HTTP_METHOD_GET)
    route = ROUTE_RANGE;
  else if (is_kv && key_len > 0 && req->method == HTTP_METHOD_GET)
    route = ROUTE_GET;
  else if (is_kv && key_len > 0 && req->method == HTTP_METHOD_PUT)
    route = ROUTE_PUT;
  else if (is_kv && key_len > 0 && req->method == HTTP_METHOD_DELETE)
    route = ROUTE_DELETE;
  else if (req->path_len == 9 && memcmp(req->path, "/v1/watch", 9) == 0 &&
           req->method == HTTP_METHOD_GET)
    route = ROUTE_WATCH;
  if (route == ROUTE_NONE) {
    bool known =
        is_kv || (req->path_len == 9 && memcmp(req->path, "/v1/watch", 9) == 0);
    return fail_now(c, req, close, known ? 405 : 404,
                    known ? "method not allowed" : "not found");
  }
  /* Opened with the first request, so with none in flight. */
  const char *refused = bridge_open(c);
  if (refused != NULL) {
    return fail_now(c, req, close, 503, refused);
  }
  struct resp_buf *cmd = &c->kv_cmd;
  resp_buf_reset(cmd);
  uint8_t skip = 0;
  const struct http_header *auth = http_header_find(req, "authorization");
  if (auth != NULL && auth->value_len > 7 &&
      strncasecmp(auth->value, "Bearer ", 7) == 0) {
    resp_write_array(cmd, 2);
    put_arg(cmd, "AUTH", 4);
    put_arg(cmd, auth->value + 7, auth->value_len - 7);
    skip = 1; /* its reply; a refusal shows in the next one's */
  }
  switch (route) {
  case ROUTE_GET:
    resp_write_array(cmd, 2);
    put_arg(cmd, "GET", 3);
    put_arg(cmd, key, (size_t)key_len);
    break;
  case ROUTE_PUT:
    resp_write_array(cmd, 3);
    put_arg(cmd, "SET", 3);
    put_arg(cmd, key, (size_t)key_len);
    put_arg(cmd, body, body_len);
    break;
  case ROUTE_DELETE:
    resp_write_array(cmd, 2);
    put_arg(cmd, "DEL", 3);
    put_arg(cmd, key, (size_t)key_len);
    break;
  case ROUTE_RANGE:
    prefix_command(cmd, req, "SABHA.RANGE", "limit", NULL, key, arg);
    break;
  case ROUTE_WATCH:
    prefix_command(cmd, req, "SABHA.WATCH", "from", "FROM", key, arg);
    close = true; /* a stream ends with its connection */
    break;
  default:
    break;
  }
  if (cmd->err != 0) {
    return fail_now(c, req, close, 500, "OOM out of memory");
  }
  if (c->kv_n > 0 && c->kv_bytes + cmd->len > SRV_HTTP_PIPELINE_BYTES_MAX)
    return false;
  assert(cmd->len <= UINT32_MAX); /* a head and SRV_HTTP_BODY_BYTES_MAX */
  c->kv[(c->kv_first + c->kv_n) % SRV_HTTP_PIPELINE_MAX] =
      (struct srv_http_kv){.route = (uint8_t)route,
                           .skip = skip,
                           .close = close,
                           .bytes = (uint32_t)cmd->len};
  c->kv_n++;
  c->kv_bytes += cmd->len;
  c->kv_close = close;
  /* Its reply is taken from the check phase (port_stream_output), with
   * those of the requests started beside it. */
  rt_stream_input(c->bridge->s, cmd->data, cmd->len);
  /* A watch's head goes now (if nothing is before it), not with its first
   * event, which may be long in coming. */
  if (route == ROUTE_WATCH)
    srv_kv_service(c);
  return true;
}

/* ---- replies to HTTP ----------------------------------------------------- */

static void respond_range(struct srv_http_conn *c, struct rd *r, int64_t n) {
  int64_t applied = 0, more = 0;
  struct resp_buf *j = &c->kv_json;
  resp_buf_reset(j);
  if (n < 2 || !rd_int(r, &applied) || !rd_int(r, &more)) {
    respond_text(c, 500, "unexpected reply");
    return;
  }
  resp_buf_printf(j, "{\"revision\":%" PRId64 ",\"more\":%s,\"kvs\":[", applied,
                  more ? "true" : "false");
  for (int64_t i = 0; i < (n - 2) / 3; i++) {
    const uint8_t *k, *v;
    size_t kn, vn;
    int64_t rev;
    if (!rd_bulk(r, &k, &kn) || !rd_bulk(r, &v, &vn) || !rd_int(r, &rev))
      break;
    resp_buf_append(j, i > 0 ? ",{\"key\":" : "{\"key\":", i > 0 ? 8 : 7);
    http_json_bytes(j, k, kn);
    resp_buf_append(j, ",\"value\":", 9);
    http_json_bytes(j, v, vn);
    resp_buf_printf(j, ",\"revision\":%" PRId64 "}", rev);
  }
  resp_buf_append(j, "]}\n", 3);
  if (j->err != 0)
    respond_text(c, 500, "the range is too large; use a smaller limit");
  else
    respond(c, 200, "application/json", j->data, j->len);
}

/* The head of a watch's response, before its first event. */
static void sse_head(struct srv_http_conn *c) {
  if (c->kv_streaming)
    return;
  c->kv_streaming = true;
  resp_buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: "
                           "text/event-stream\r\nCache-Control: no-store\r\n"
                           "Connection: close\r\n\r\n");
}

/* A batch of SABHA.WATCH events as server-sent events. */
static void stream_events(struct srv_http_conn *c, struct rd *r, int64_t n) {
  struct resp_buf *b = &c->out;
  sse_head(c);
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *t, *kind, *k, *v;
    size_t tn, kindn, kn, vn;
    int64_t rev;
    if (rd_line(r, &t, &tn) != '*' || !rd_bulk(r, &kind, &kindn) ||
        !rd_bulk(r, &k, &kn) || !rd_bulk(r, &v, &vn) || !rd_int(r, &rev))
      return;
    resp_buf_printf(b,
                    "event: %.*s\nid: %" PRId64 "\ndata: {\"type\":\"%.*s\""
                    ",\"key\":",
                    (int)kindn, (const char *)kind, rev, (int)kindn,
                    (const char *)kind);
    http_json_bytes(b, k, kn);
    if (v != NULL) {
      resp_buf_append(b, ",\"value\":", 9);
      http_json_bytes(b, v, vn);
    }
    resp_buf_printf(b, ",\"revision\":%" PRId64 "}\n\n", rev);
  }
}

/* One whole reply of the stream, as the route says. */
static void on_reply(struct srv_http_conn *c, const uint8_t *p, size_t len) {
  struct srv_http_kv *k = kv_oldest(c);
  if (k == NULL)
    return; /* nothing asked for it: the connection is closing */
  if (k->skip > 0) {
    k->skip--;
    return;
  }
  enum kv_route route = (enum kv_route)k->route;
  struct rd r = {p, p + len};
  const uint8_t *t;
  size_t n;
  char type = rd_line(&r, &t, &n);
  if (type == '-') {
    if (route == ROUTE_WATCH && c->kv_streaming) {
      resp_buf_printf(&c->out, "event: error\ndata: %.*s\n\n", (int)n,
                      (const char *)t);
      c->kv_close = true;
      return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "%.*s", (int)(n < 290 ? n : 290),
             (const char *)t);
    respond_text(c, error_status(msg, strlen(msg)), msg);
    request_done(c);
    return;
  }
  switch (route) {
  case ROUTE_GET:
    if (type == '$' && to_i64(t, n) >= 0)
      respond(c, 200, "application/octet-stream", r.p, (size_t)to_i64(t, n));
    else
      respond_text(c, 404, "no such key");
    break;
  case ROUTE_PUT:
    respond(c, 204, "text/plain", NULL, 0);
    break;
  case ROUTE_DELETE:
    if (type == ':' && to_i64(t, n) > 0)
      respond(c, 204, "text/plain", NULL, 0);
    else
      respond_text(c, 404, "no such key");
    break;
  case ROUTE_RANGE:
    respond_range(c, &r, type == '*' ? to_i64(t, n) : 0);
    break;
  case ROUTE_WATCH:
    if (type == '*')
      stream_events(c, &r, to_i64(t, n));
    return; /* the stream goes on */
  default:
    break;
  }
  request_done(c);
}

/* The request's reply passed what kv_in holds: answered 500, and the
 * connection closes once that is out (kv_close keeps any further request
 * from starting; closing it lets the runtime's stream go). */
_Static_assert(SRV_HTTP_KV_IN_BYTES_MAX == 64u << 20,
              "reply_too_big's answer and the metric's help say 64 MiB");

static void reply_too_big(struct srv_http_conn *c) {
  struct srv_node *n = c->n;
  n->http_replies_too_big++;
  n->http_replies_too_big_unlogged++;
  /* A client may ask for it again and again (with the output limit off):
   * the counter takes each, the log one line per SRV_HTTP_LOG_MS. */
  uint64_t now_ms = uv_now(&n->loop);
  if (now_ms >= n->http_too_big_log_due_ms) {
    if (c->kv_in.err == SABHA_ENOMEM)
      srv_log(n, "WARN",
              "http: out of memory for a reply; the request is answered 500 "
              "and its connection closed (%" PRIu64
              " such since the last report)",
              n->http_replies_too_big_unlogged);
    else
      srv_log(n, "WARN",
              "http: a reply over %zu bytes, more than the HTTP API takes; "
              "the request is answered 500 and its connection closed (%" PRIu64
              " such since the last report)",
              c->kv_in.len_max, n->http_replies_too_big_unlogged);
    n->http_replies_too_big_unlogged = 0;
    n->http_too_big_log_due_ms = now_ms + SRV_HTTP_LOG_MS;
  }
  c->kv_dropped = true;
  c->kv_close = true;
  requests_dropped(c);
  respond_text(c, 500,
               c->kv_in.err == SABHA_ENOMEM
                   ? "OOM out of memory"
                   : "the reply is larger than the HTTP API takes (64 MiB); "
                     "use a smaller limit, or RESP");
  resp_buf_reset(&c->kv_in);
  srv_http_pump(c);
}

/* Turns the whole replies in kv_in into responses, in order. */
static void kv_replies(struct srv_http_conn *c) {
  size_t off = 0;
  while (off < c->kv_in.len) {
    size_t used = 0;
    int rc = resp_reply_scan(c->kv_in.data + off, c->kv_in.len - off, &used);
    if (rc <= 0)
      break;
    on_reply(c, c->kv_in.data + off, used);
    off += used;
  }
  resp_buf_consume(&c->kv_in, off);
}

/* Takes what the runtime wrote to the stream, turns whole replies into
 * HTTP, and starts the next request when this one is answered. */
void srv_kv_service(struct srv_http_conn *c) {
  c->kv_due = false;
  struct srv_conn *b = c->bridge;
  if (b == NULL || b->s == NULL)
    return;
  const uint8_t *data;
  size_t len;
  if (c->kv_dropped) {
    /* The rest of a reply that was answered 500 (reply_too_big). */
    while (rt_stream_out_take(b->s, &data, &len))
      rt_stream_out_done(b->s);
    srv_http_pump(c);
    return;
  }
  /* A client that does not read leaves its replies with the runtime
   * (for a watch, its events, whose bound ends the watch: "fell behind"),
   * which builds the next only once this one is taken
   * (rt_stream_set_one_reply); what a closed stream wrote last is taken
   * whatever the backlog. Each take is turned into responses at once, so
   * kv_in holds at most one reply's worth beyond them. */
  bool hold = !b->rt_closed;
  while (!(hold && srv_http_backlogged(c)) && c->kv_in.err == 0 &&
         rt_stream_out_take(b->s, &data, &len)) {
    resp_buf_append(&c->kv_in, data, len);
    rt_stream_out_done(b->s);
    if (c->kv_in.err == 0)
      kv_replies(c);
  }
  if (c->kv_in.err != 0) {
    /* A reply larger than the API takes in (the runtime's bound on it,
     * client-output-buffer-limit, can be set higher or off): its client
     * is told and the connection closes, rather than wait on a reply
     * that can never be whole. */
    reply_too_big(c);
    return;
  }
  /* A watch that took: the events follow its head, as they come. */
  if (oldest_route(c) == ROUTE_WATCH)
    sse_head(c);
  srv_http_pump(c);
}

void srv_kv_stream_closed(struct srv_http_conn *c) {
  /* The runtime let go (a watch that failed, QUIT, a limit): what it
   * wrote last goes out, then the connection closes; kv_close keeps any
   * further request from starting. */
  srv_kv_service(c);
  c->kv_close = true;
  bool unanswered = c->kv_n > 0 && !c->kv_streaming;
  /* The oldest is answered below; the rest never will be: the pump
   * closes once all of it is out. */
  requests_dropped(c);
  if (unanswered)
    /* A request it let go of unanswered (its reply passed
     * client-output-buffer-limit, or the clients' memory budget closed
     * it): its client is told, rather than left waiting on a connection
     * that no timeout ends while a request is with the node. */
    respond_text(c, 500,
                 "the node closed the request's stream before it "
                 "was answered (a limit: see the node's log)");
  srv_http_pump(c);
}

void srv_kv_free(struct srv_http_conn *c) {
  if (c->bridge != NULL) {
    struct rt_stream *s = c->bridge->s;
    /* Let go of by the runtime (port_stream_close), or gone now. */
    if (s != NULL && !c->bridge->rt_closed)
      rt_stream_lost(s);
    rt_stream_free(s);
    free(c->bridge);
    c->bridge = NULL;
  }
  resp_buf_free(&c->kv_cmd);
  resp_buf_free(&c->kv_in);
  resp_buf_free(&c->kv_json);
}
