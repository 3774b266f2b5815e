/* HTTP/1.1 request parsing and response writing for /metrics, /status and
 * /health (see http.h for the contract and the list of refusals).
 *
 * The parser walks the head once, byte by byte, judging each byte as it comes:
 * a request that is going wrong is refused as soon as its bytes say so, and
 * one that is merely unfinished is "incomplete". Every read goes through
 * peek(), which knows both where the received bytes end and where the head
 * may no longer go (the line and head limits), so no other code compares an
 * index with a length. Like resp_parse(), it restarts from the first byte on
 * each call; a head is at most a few KiB, so that is cheap. */
#include "server/http.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check/json.h"
#include "sabha/error.h"

const struct http_limits http_limits_default = {
    .line_bytes_max = 2048,
    .head_bytes_max = 8192,
};

/* ---- Parsing ----------------------------------------------------------- */

/* A window over the input: bytes [0, len) have arrived; bytes at or past
 * `bound` must not be needed, or the request is too big. */
struct scan {
  const uint8_t *buf;
  size_t len;
  size_t bound;
};

enum { PEEK_MORE = -1, PEEK_OVER = -2 };

/* The byte at i, or PEEK_MORE when it has not arrived, or PEEK_OVER when the
 * request would have to be longer than allowed to reach it. */
static int peek(const struct scan *s, size_t i) {
  if (i >= s->bound)
    return PEEK_OVER;
  if (i >= s->len)
    return PEEK_MORE;
  return s->buf[i];
}

static enum http_parse_status refuse(struct http_request *req, int status,
                                     const char *reason) {
  req->status_error = status;
  req->reason = reason;
  return HTTP_PARSE_ERROR;
}

/* What to answer when peek() gave no byte: wait, or refuse as too long. */
static enum http_parse_status stopped(struct http_request *req, int peeked,
                                      int status_over, const char *reason) {
  assert(peeked == PEEK_MORE || peeked == PEEK_OVER);
  if (peeked == PEEK_MORE)
    return HTTP_PARSE_INCOMPLETE;
  return refuse(req, status_over, reason);
}

/* RFC 9110 §5.6.2: the characters of a token (methods, field names). */
static bool is_tchar(int c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return true;
  return c > 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool slice_is(const uint8_t *p, size_t n, const char *s) {
  return strlen(s) == n && memcmp(p, s, n) == 0;
}

#define TOO_LONG_LINE "request line too long"
#define TOO_LONG_HEAD "request head too large"

/* The request line: method SP target SP HTTP/x.y CRLF. On success sets *end
 * to the offset after its LF. */
static enum http_parse_status parse_request_line(const struct scan *s,
                                                 struct http_request *req,
                                                 size_t line_bytes_max,
                                                 size_t *end) {
  size_t i = 0;
  int c;
  while ((c = peek(s, i)) >= 0 && is_tchar(c))
    i++;
  if (c < 0)
    return stopped(req, c, 414, TOO_LONG_LINE);
  if (c != ' ' || i == 0)
    return refuse(req, 400, "malformed method");
  /* Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET. */
  if (slice_is(s->buf, i, "GET"))
    req->method = HTTP_METHOD_GET;
  else if (slice_is(s->buf, i, "HEAD"))
    req->method = HTTP_METHOD_HEAD;
  else if (slice_is(s->buf, i, "PUT"))
    req->method = HTTP_METHOD_PUT;
  else if (slice_is(s->buf, i, "DELETE"))
    req->method = HTTP_METHOD_DELETE;
  else
    return refuse(req, 405, "method not allowed");
  i++;

  /* The target, in origin form only: a path and an optional query. */
  size_t target = i;
  size_t query = 0; /* offset of '?', 0 when none */
  while ((c = peek(s, i)) >= 0 && c != ' ') {
    if (i == target && c != '/')
      return refuse(req, 400, "target must start with '/'");
    if (c < 0x21 || c > 0x7e)
      return refuse(req, 400, "invalid character in target");
    if (c == '?' && query == 0)
      query = i;
    i++;
  }
  if (c < 0)
    return stopped(req, c, 414, TOO_LONG_LINE);
  if (i == target)
    return refuse(req, 400, "empty target");
  req->path = (const char *)s->buf + target;
  req->path_len = (query ? query : i) - target;
  req->query = query ? (const char *)s->buf + query + 1 : NULL;
  req->query_len = query ? i - query - 1 : 0;
  i++;

  /* The version, checked byte by byte against "HTTP/d.d". */
  static const char pattern[] = "HTTP/d.d";
  for (size_t k = 0; k < sizeof pattern - 1; k++) {
    c = peek(s, i + k);
    if (c < 0)
      return stopped(req, c, 414, TOO_LONG_LINE);
    bool ok = pattern[k] == 'd' ? (c >= '0' && c <= '9') : c == pattern[k];
    if (!ok)
      return refuse(req, 400, "malformed HTTP version");
  }
  int major = s->buf[i + 5] - '0';
  int minor = s->buf[i + 7] - '0';
  i += sizeof pattern - 1;
  if ((c = peek(s, i)) < 0)
    return stopped(req, c, 414, TOO_LONG_LINE);
  if (c != '\r')
    return refuse(req, 400, "malformed HTTP version");
  if (i > line_bytes_max)
    return refuse(req, 414, TOO_LONG_LINE);
  if ((c = peek(s, i + 1)) < 0)
    return stopped(req, c, 414, TOO_LONG_LINE);
  if (c != '\n')
    return refuse(req, 400, "CR without LF");
  if (major != 1)
    return refuse(req, 505, "HTTP version not supported");
  /* A later 1.x speaks at least 1.1 (RFC 9110 §6.2). */
  req->version_minor = minor >= 1 ? 1 : 0;
  *end = i + 2;
  return HTTP_PARSE_COMPLETE;
}

/* One header field line at *pos: name ":" OWS value OWS CRLF. */
static enum http_parse_status
parse_field(const struct scan *s, struct http_request *req, size_t *pos) {
  size_t i = *pos;
  int c;
  while ((c = peek(s, i)) >= 0 && is_tchar(c))
    i++;
  if (c < 0)
    return stopped(req, c, 431, TOO_LONG_HEAD);
  /* No space may come before the colon (RFC 9112 §5.1). */
  if (c != ':' || i == *pos)
    return refuse(req, 400, "malformed header field name");
  size_t name = *pos, name_len = i - *pos;
  i++;
  while ((c = peek(s, i)) == ' ' || c == '\t')
    i++;
  size_t value = i, value_end = i;
  while ((c = peek(s, i)) >= 0 && c != '\r') {
    if (c == '\t' || c == ' ') {
      /* whitespace: part of the value only if more follows */
    } else if (c >= 0x21 && c != 0x7f) {
      value_end = i + 1; /* visible ASCII or obs-text */
    } else {
      return refuse(req, 400, "invalid character in header field value");
    }
    i++;
  }
  if (c < 0)
    return stopped(req, c, 431, TOO_LONG_HEAD);
  if ((c = peek(s, i + 1)) < 0)
    return stopped(req, c, 431, TOO_LONG_HEAD);
  if (c != '\n')
    return refuse(req, 400, "CR without LF");
  struct http_header *h = &req->headers[req->n_headers++];
  h->name = (const char *)s->buf + name;
  h->name_len = name_len;
  h->value = (const char *)s->buf + value;
  h->value_len = value_end - value;
  *pos = i + 2;
  return HTTP_PARSE_COMPLETE;
}

static bool name_equals(const char *a, size_t n, const char *b) {
  if (strlen(b) != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z')
      x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = (char)(y - 'A' + 'a');
    if (x != y)
      return false;
  }
  return true;
}

enum http_parse_status http_parse(const uint8_t *buf, size_t len,
                                  struct http_request *req, size_t *consumed,
                                  const struct http_limits *lim) {
  assert(req != NULL && consumed != NULL && lim != NULL);
  assert(buf != NULL || len == 0);
  assert(lim->line_bytes_max > 0 && lim->head_bytes_max > 0);
  assert(lim->line_bytes_max <= SIZE_MAX / 2);

  req->method = 0;
  req->path = req->query = NULL;
  req->path_len = req->query_len = 0;
  req->version_minor = 0;
  req->n_headers = 0;
  req->status_error = 0;
  req->reason = NULL;
  *consumed = 0;

  /* The request line may reach line_bytes_max bytes and its CRLF, within
   * the head's own bound. */
  size_t line_bound = lim->line_bytes_max + 2;
  if (line_bound > lim->head_bytes_max)
    line_bound = lim->head_bytes_max;
  struct scan line = {buf, len, line_bound};
  size_t pos = 0;
  enum http_parse_status st =
      parse_request_line(&line, req, lim->line_bytes_max, &pos);
  if (st != HTTP_PARSE_COMPLETE)
    return st;

  struct scan head = {buf, len, lim->head_bytes_max};
  for (;;) {
    int c = peek(&head, pos);
    if (c < 0)
      return stopped(req, c, 431, TOO_LONG_HEAD);
    if (c == '\r')
      break;
    if (c == ' ' || c == '\t')
      return refuse(req, 400, "obsolete line folding");
    if (req->n_headers == HTTP_HEADERS_MAX)
      return refuse(req, 431, "too many header fields");
    st = parse_field(&head, req, &pos);
    if (st != HTTP_PARSE_COMPLETE)
      return st;
  }
  int c = peek(&head, pos + 1);
  if (c < 0)
    return stopped(req, c, 431, TOO_LONG_HEAD);
  if (c != '\n')
    return refuse(req, 400, "CR without LF");

  /* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; none may have
   * two. */
  uint32_t n_host = 0;
  for (uint32_t i = 0; i < req->n_headers; i++)
    n_host +=
        name_equals(req->headers[i].name, req->headers[i].name_len, "host");
  if (n_host > 1 || (req->version_minor == 1 && n_host == 0))
    return refuse(req, 400, "missing or repeated Host");

  *consumed = pos + 2;
  assert(*consumed <= len && *consumed <= lim->head_bytes_max);
  return HTTP_PARSE_COMPLETE;
}

const struct http_header *http_header_find(const struct http_request *req,
                                           const char *name) {
  assert(req != NULL && name != NULL);
  assert(req->n_headers <= HTTP_HEADERS_MAX);
  for (uint32_t i = 0; i < req->n_headers; i++)
    if (name_equals(req->headers[i].name, req->headers[i].name_len, name))
      return &req->headers[i];
  return NULL;
}

/* ---- Responses --------------------------------------------------------- */

const char *http_reason_phrase(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 507:
    return "Insufficient Storage";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

int http_write_response(struct resp_buf *b, int status,
                        const char *content_type, const void *body,
                        size_t body_len, bool head_only) {
  assert(b != NULL && content_type != NULL);
  assert(status >= 100 && status <= 599);
  assert(body != NULL || body_len == 0);
  assert(strpbrk(content_type, "\r\n") == NULL);
  resp_buf_printf(b,
                  "HTTP/1.1 %d %s\r\n"
                  "Content-Type: %s\r\n"
                  "Content-Length: %zu\r\n"
                  "Cache-Control: no-store\r\n"
                  "Connection: close\r\n",
                  status, http_reason_phrase(status), content_type, body_len);
  if (status == 405)
    resp_buf_printf(b, "Allow: GET, HEAD, PUT, DELETE\r\n");
  resp_buf_append(b, "\r\n", 2);
  if (!head_only)
    resp_buf_append(b, body, body_len);
  return b->err;
}

int http_write_error(struct resp_buf *b, int status, bool head_only) {
  char body[64];
  int n = snprintf(body, sizeof body, "%s\n", http_reason_phrase(status));
  assert(n > 0 && (size_t)n < sizeof body);
  return http_write_response(b, status, "text/plain; charset=utf-8", body,
                             (size_t)n, head_only);
}

/* ---- Prometheus -------------------------------------------------------- */

static bool is_name_char(char c, bool first, bool colon_ok) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
    return true;
  if (c == ':')
    return colon_ok;
  return !first && c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics, without ':' for labels. */
static bool valid_name(const char *name, bool colon_ok) {
  if (name == NULL || name[0] == '\0')
    return false;
  for (size_t i = 0; name[i] != '\0'; i++)
    if (!is_name_char(name[i], i == 0, colon_ok))
      return false;
  return true;
}

/* Appends s with backslash and newline escaped, and also the double quote
 * when in a label value. */
static void append_escaped(struct resp_buf *b, const char *s, bool quote) {
  size_t run = 0; /* bytes of s[...] not yet appended */
  for (size_t i = 0;; i++) {
    char c = s[i];
    const char *esc = NULL;
    if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '"' && quote)
      esc = "\\\"";
    if (esc == NULL && c != '\0')
      continue;
    resp_buf_append(b, s + run, i - run);
    if (c == '\0')
      return;
    resp_buf_append(b, esc, 2);
    run = i + 1;
  }
}

/* The shortest decimal form of v that reads back as v, or Prometheus's
 * spelling of NaN and the infinities. Assumes the "C" locale's '.'. */
static void format_double(char out[40], double v) {
  if (isnan(v)) {
    strcpy(out, "NaN");
  } else if (isinf(v)) {
    strcpy(out, v > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(out, 40, "%.15g", v);
    if (strtod(out, NULL) != v)
      snprintf(out, 40, "%.17g", v);
  }
}

int http_prom_header(struct resp_buf *b, const char *name, const char *type,
                     const char *help) {
  assert(b != NULL && valid_name(name, true));
  assert(type != NULL &&
         (strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
          strcmp(type, "histogram") == 0));
  assert(help != NULL);
  resp_buf_printf(b, "# HELP %s ", name);
  append_escaped(b, help, false);
  resp_buf_printf(b, "\n# TYPE %s %s\n", name, type);
  return b->err;
}

/* name{labels[,extra_name="extra_value"]} : the part of a sample line before
 * the value. `extra` adds the histogram's le label (already safe text). */
static void write_series(struct resp_buf *b, const char *name,
                         const char *suffix,
                         const struct http_prom_label *labels, size_t n_labels,
                         const char *extra_name, const char *extra_value) {
  assert(valid_name(name, true));
  assert(labels != NULL || n_labels == 0);
  resp_buf_printf(b, "%s%s", name, suffix);
  if (n_labels == 0 && extra_name == NULL)
    return;
  resp_buf_append(b, "{", 1);
  for (size_t i = 0; i < n_labels; i++) {
    assert(valid_name(labels[i].name, false));
    assert(labels[i].value != NULL);
    resp_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i].name);
    append_escaped(b, labels[i].value, true);
    resp_buf_append(b, "\"", 1);
  }
  if (extra_name != NULL)
    resp_buf_printf(b, "%s%s=\"%s\"", n_labels ? "," : "", extra_name,
                    extra_value);
  resp_buf_append(b, "}", 1);
}

int http_prom_sample_u64(struct resp_buf *b, const char *name,
                         const struct http_prom_label *labels, size_t n_labels,
                         uint64_t value) {
  assert(b != NULL);
  write_series(b, name, "", labels, n_labels, NULL, NULL);
  resp_buf_printf(b, " %llu\n", (unsigned long long)value);
  return b->err;
}

int http_prom_sample_double(struct resp_buf *b, const char *name,
                            const struct http_prom_label *labels,
                            size_t n_labels, double value) {
  assert(b != NULL);
  char text[40];
  format_double(text, value);
  write_series(b, name, "", labels, n_labels, NULL, NULL);
  resp_buf_printf(b, " %s\n", text);
  return b->err;
}

int http_prom_counter(struct resp_buf *b, const char *name, const char *help,
                      uint64_t value) {
  http_prom_header(b, name, "counter", help);
  return http_prom_sample_u64(b, name, NULL, 0, value);
}

int http_prom_gauge(struct resp_buf *b, const char *name, const char *help,
                    double value) {
  http_prom_header(b, name, "gauge", help);
  return http_prom_sample_double(b, name, NULL, 0, value);
}

int http_prom_histogram(struct resp_buf *b, const char *name,
                        const struct http_prom_label *labels, size_t n_labels,
                        const struct http_prom_histogram *h) {
  assert(b != NULL && h != NULL && h->counts != NULL);
  assert(h->bounds_upper != NULL || h->n_bounds == 0);
  uint64_t cumulative = 0;
  char le[40];
  for (size_t i = 0; i <= h->n_bounds; i++) {
    if (i < h->n_bounds) {
      assert(!isnan(h->bounds_upper[i]));
      assert(i == 0 || h->bounds_upper[i - 1] < h->bounds_upper[i]);
      format_double(le, h->bounds_upper[i]);
    } else {
      strcpy(le, "+Inf");
    }
    assert(h->counts[i] <= UINT64_MAX - cumulative);
    cumulative += h->counts[i];
    write_series(b, name, "_bucket", labels, n_labels, "le", le);
    resp_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
  }
  char sum[40];
  format_double(sum, h->sum);
  write_series(b, name, "_sum", labels, n_labels, NULL, NULL);
  resp_buf_printf(b, " %s\n", sum);
  write_series(b, name, "_count", labels, n_labels, NULL, NULL);
  resp_buf_printf(b, " %llu\n", (unsigned long long)cumulative);
  return b->err;
}

/* ---- JSON -------------------------------------------------------------- */

static void put_resp_buf(void *ctx, const char *p, size_t n) {
  resp_buf_append(ctx, p, n);
}

int http_json_string(struct resp_buf *b, const char *s, size_t n) {
  assert(b != NULL && (s != NULL || n == 0));
  json_string(put_resp_buf, b, s, n, JSON_TEXT);
  return b->err;
}

int http_json_bytes(struct resp_buf *b, const void *p, size_t n) {
  assert(b != NULL && (p != NULL || n == 0));
  json_string(put_resp_buf, b, p, n, JSON_BINARY);
  return b->err;
}

int http_content_length(const struct http_request *req, uint64_t *out) {
  *out = 0;
  if (http_header_find(req, "transfer-encoding") != NULL)
    return -1;
  const struct http_header *h = http_header_find(req, "content-length");
  if (h == NULL)
    return 0;
  if (h->value_len == 0 || h->value_len > 15)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < h->value_len; i++) {
    if (h->value[i] < '0' || h->value[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(h->value[i] - '0');
  }
  /* Two Content-Length fields could frame the body two ways. */
  for (uint32_t i = 0; i < req->n_headers; i++)
    if (&req->headers[i] != h && req->headers[i].name_len == 14 &&
        strncasecmp(req->headers[i].name, "content-length", 14) == 0)
      return -1;
  *out = v;
  return 1;
}
