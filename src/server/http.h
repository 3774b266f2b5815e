/* A minimal HTTP/1.1 server side for the node's own endpoints.
 *
 * sabhad answers three read-only endpoints for operators and tools:
 * /metrics (Prometheus text exposition), /status (JSON) and /health. Pulling
 * in an HTTP library for that would add far more code than it saves, so this
 * module does the little that is needed, in the same way as resp.c: the
 * request parser, http_parse(), is a pure function over the bytes received so
 * far. It reads the request line and the header fields within fixed bounds,
 * accepts GET, HEAD, PUT and DELETE, and never allocates or recurses. The
 * operator endpoints answer one request per connection ("Connection:
 * close"); the key-value API (node_kv.c) keeps connections alive and reads
 * bodies framed by Content-Length (http_content_length()).
 *
 * What is refused, and with which status (RFC 9110 and 9112):
 *   400  a malformed request line or header field (bare LF, whitespace
 *        before a colon, obsolete line folding, control characters, a target
 *        not starting with '/', an HTTP/1.1 request without exactly one Host)
 *   405  a well-formed method other than GET, HEAD, PUT or DELETE
 *   414  a request line longer than line_bytes_max
 *   431  a head longer than head_bytes_max, or more than HTTP_HEADERS_MAX
 *        header fields
 *   505  an HTTP version other than 1.0 or 1.1
 * Each is reported as soon as the bytes show it, before the head is complete.
 *
 * The writers produce a whole response into a struct resp_buf (resp.h), and
 * format Prometheus samples and histograms and JSON strings into one. */
#ifndef SABHA_SERVER_HTTP_H
#define SABHA_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/resp.h"

/* ---- Parsing ----------------------------------------------------------- */

#define HTTP_HEADERS_MAX 32u

struct http_limits {
  size_t line_bytes_max; /* the request line, CRLF excluded */
  size_t head_bytes_max; /* request line, header fields and the blank line */
};

/* 2 KiB request lines, 8 KiB heads: ample for curl, browsers and
 * Prometheus, small enough that a connection cannot hold much memory. */
extern const struct http_limits http_limits_default;

enum http_method {
  HTTP_METHOD_GET = 1,
  HTTP_METHOD_HEAD = 2,
  HTTP_METHOD_PUT = 3,    /* /v1/kv only (node_kv.c) */
  HTTP_METHOD_DELETE = 4, /* /v1/kv only */
};

enum http_parse_status {
  HTTP_PARSE_ERROR = -1,     /* reply req->status_error, then close */
  HTTP_PARSE_INCOMPLETE = 0, /* read more and call again */
  HTTP_PARSE_COMPLETE = 1,   /* *req describes a GET or HEAD request */
};

/* Slices of the input buffer; not NUL-terminated. */
struct http_header {
  const char *name; /* as sent; compare case-insensitively */
  size_t name_len;
  const char *value; /* leading and trailing spaces and tabs removed */
  size_t value_len;
};

struct http_request {
  enum http_method method;
  const char *path; /* from the target, up to '?'; starts with '/' */
  size_t path_len;
  const char *query; /* after '?', or NULL when there is none */
  size_t query_len;
  int version_minor; /* HTTP/1.0 or HTTP/1.1 */
  uint32_t n_headers;
  struct http_header headers[HTTP_HEADERS_MAX];
  /* HTTP_PARSE_ERROR: the status to answer with (400, 405, 414, 431, 505)
   * and a short reason for logs; for the body use http_write_error(). */
  int status_error;
  const char *reason;
};

/* Parses the request head at the start of buf[0, len).
 *
 * Returns HTTP_PARSE_COMPLETE and fills *req, whose slices point into `buf`;
 * *consumed is the length of the head, blank line included. Returns
 * HTTP_PARSE_INCOMPLETE when the head has not all arrived and nothing is
 * wrong yet, or HTTP_PARSE_ERROR with req->status_error and req->reason set.
 * *consumed is 0 unless complete.
 *
 * Pure: nothing is allocated and only *req and *consumed are written. */
enum http_parse_status http_parse(const uint8_t *buf, size_t len,
                                  struct http_request *req, size_t *consumed,
                                  const struct http_limits *lim);

/* The first header field called `name` (ASCII case-insensitive), or NULL. */
const struct http_header *http_header_find(const struct http_request *req,
                                           const char *name);

/* ---- Responses --------------------------------------------------------- */

/* The reason phrase of a status this module uses ("OK", "Not Found", ...),
 * or "Unknown". */
const char *http_reason_phrase(int status);

/* Appends a whole response: status line, Content-Type, Content-Length,
 * Cache-Control: no-store (these pages are live state), Connection: close,
 * then the body unless `head_only` (the answer to HEAD, whose
 * Content-Length is still the body's). A 405 also carries
 * "Allow: GET, HEAD". content_type and body are copied. Returns 0 or the
 * buffer's sticky error. */
int http_write_response(struct resp_buf *b, int status,
                        const char *content_type, const void *body,
                        size_t body_len, bool head_only);

/* A text/plain response whose body is the reason phrase and a newline. */
int http_write_error(struct resp_buf *b, int status, bool head_only);

/* ---- Prometheus text exposition (version 0.0.4) ------------------------ */

#define HTTP_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A label pair. Names match [a-zA-Z_][a-zA-Z0-9_]* (a programmer error
 * otherwise); values are any UTF-8 and are escaped here. */
struct http_prom_label {
  const char *name;
  const char *value;
};

/* "# HELP name help" and "# TYPE name type", once per metric before its
 * samples. `type` is "counter", "gauge" or "histogram"; metric names match
 * [a-zA-Z_:][a-zA-Z0-9_:]* (a programmer error otherwise); `help` is
 * escaped. */
int http_prom_header(struct resp_buf *b, const char *name, const char *type,
                     const char *help);

/* One sample line, "name{l1="v1",...} value". An unsigned integer sample is
 * written exactly; a double in the shortest form that reads back the same,
 * with NaN and infinities as Prometheus spells them. n_labels may be 0
 * (labels NULL). */
int http_prom_sample_u64(struct resp_buf *b, const char *name,
                         const struct http_prom_label *labels, size_t n_labels,
                         uint64_t value);
int http_prom_sample_double(struct resp_buf *b, const char *name,
                            const struct http_prom_label *labels,
                            size_t n_labels, double value);

/* A counter or gauge without labels: its header and its one sample. */
int http_prom_counter(struct resp_buf *b, const char *name, const char *help,
                      uint64_t value);
int http_prom_gauge(struct resp_buf *b, const char *name, const char *help,
                    double value);

/* A histogram's state. counts[i] is the number of observations in bucket i
 * only (not cumulative): bucket i holds values <= bounds_upper[i] and above
 * bounds_upper[i - 1]; counts[n_bounds] holds those above every bound. The
 * bounds ascend strictly. */
struct http_prom_histogram {
  const double *bounds_upper;
  const uint64_t *counts; /* n_bounds + 1 entries */
  size_t n_bounds;
  double sum; /* of every observation */
};

/* The samples of one histogram series: name_bucket{...,le="..."} lines with
 * cumulative counts (the last le="+Inf"), name_sum and name_count. Write the
 * header once before the series of one metric. */
int http_prom_histogram(struct resp_buf *b, const char *name,
                        const struct http_prom_label *labels, size_t n_labels,
                        const struct http_prom_histogram *h);

/* ---- JSON -------------------------------------------------------------- */

/* Appends `s` (n bytes) as a JSON string literal with its quotes, escaped
 * as check/json.h says for UTF-8 text (JSON_TEXT). For /status. Returns 0
 * or the buffer's sticky error. */
int http_json_string(struct resp_buf *b, const char *s, size_t n);
/* The same for arbitrary bytes: every byte from 0x7f up is \u00XX, so the
 * literal is valid JSON whatever they are (keys and values). */
int http_json_bytes(struct resp_buf *b, const void *p, size_t n);

/* The body's length from Content-Length: 1 with *out set, 0 when there is
 * none, -1 when it cannot frame a body (not a number, repeated, or a
 * Transfer-Encoding, which is not supported). */
int http_content_length(const struct http_request *req, uint64_t *out);

#endif
