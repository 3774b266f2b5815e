/* Fuzz target for the HTTP request parser (http_parse, src/server/http.c):
 * the first bytes anyone who connects to a node's HTTP port sends.
 *
 * Input layout: 2 bytes of limits, then the bytes received. Byte 0 sets
 * line_bytes_max (8 + 8b), byte 1 head_bytes_max (16 + 32b), so that the
 * 414 and 431 checks are reached with small inputs too.
 *
 * Oracles, from http.h's contract: a complete request is a GET, HEAD, PUT
 * or DELETE (the last two for /v1/kv) of HTTP/1.0 or 1.1 whose head ends
 * in a blank line within head_bytes_max,
 * whose slices (path, query, header names and values) lie inside that head,
 * with values trimmed and a Host field in HTTP/1.1; parsing the head alone
 * gives the same request, and every shorter prefix of it is incomplete.
 * An error is one of the statuses http.h lists, and an error a prefix
 * already shows is the error of the whole (refusals come as soon as the
 * bytes show them, and more bytes cannot take one back). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "server/http.h"

/* Prefixes of a complete head tried: all of them for short heads, evenly
 * spaced ones for long heads (each parse is linear). */
#define PREFIXES_MAX 256u

static bool inside(const char *p, size_t n, const uint8_t *buf, size_t len) {
  const uint8_t *u = (const uint8_t *)p;
  return u >= buf && u <= buf + len && n <= (size_t)(buf + len - u);
}

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

static void check_request(const struct http_request *req, const uint8_t *buf,
                          size_t consumed, const struct http_limits *lim) {
  REQUIRE(req->method == HTTP_METHOD_GET || req->method == HTTP_METHOD_HEAD ||
          req->method == HTTP_METHOD_PUT || req->method == HTTP_METHOD_DELETE);
  /* A body's framing is judged whole or refused, never half read. */
  uint64_t body = 0;
  int framed = http_content_length(req, &body);
  REQUIRE(framed >= -1 && framed <= 1);
  REQUIRE(framed != 0 || body == 0);
  REQUIRE(req->version_minor == 0 || req->version_minor == 1);
  REQUIRE(consumed >= 4 && consumed <= lim->head_bytes_max);
  REQUIRE(memcmp(buf + consumed - 4, "\r\n\r\n", 4) == 0);
  REQUIRE(req->path_len >= 1 &&
          inside(req->path, req->path_len, buf, consumed));
  REQUIRE(req->path[0] == '/');
  REQUIRE(memchr(req->path, '?', req->path_len) == NULL);
  if (req->query != NULL)
    REQUIRE(inside(req->query, req->query_len, buf, consumed));
  REQUIRE(req->n_headers <= HTTP_HEADERS_MAX);
  for (uint32_t i = 0; i < req->n_headers; i++) {
    const struct http_header *h = &req->headers[i];
    REQUIRE(h->name_len >= 1 && inside(h->name, h->name_len, buf, consumed));
    REQUIRE(memchr(h->name, ':', h->name_len) == NULL);
    REQUIRE(inside(h->value, h->value_len, buf, consumed));
    if (h->value_len > 0)
      REQUIRE(!is_ows(h->value[0]) && !is_ows(h->value[h->value_len - 1]));
  }
  if (req->version_minor == 1)
    REQUIRE(http_header_find(req, "host") != NULL);
}

static bool is_refusal(int status) {
  return status == 400 || status == 405 || status == 414 || status == 431 ||
         status == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  struct http_limits lim = {
      .line_bytes_max = 8 + 8 * (size_t)data[0],
      .head_bytes_max = 16 + 32 * (size_t)data[1],
  };
  const uint8_t *buf = data + 2;
  size_t len = size - 2;

  static struct http_request req, part;
  size_t consumed = 1;
  enum http_parse_status st = http_parse(buf, len, &req, &consumed, &lim);
  if (st == HTTP_PARSE_ERROR) {
    REQUIRE(consumed == 0 && is_refusal(req.status_error));
    REQUIRE(req.reason != NULL && req.reason[0] != '\0');
  } else if (st == HTTP_PARSE_INCOMPLETE) {
    REQUIRE(consumed == 0);
    /* Nothing may pile up unjudged past the bound on a head. */
    REQUIRE(len <= lim.head_bytes_max);
  } else {
    REQUIRE(st == HTTP_PARSE_COMPLETE && consumed <= len);
    check_request(&req, buf, consumed, &lim);
    size_t again = 0;
    REQUIRE(http_parse(buf, consumed, &part, &again, &lim) ==
                HTTP_PARSE_COMPLETE &&
            again == consumed);
    REQUIRE(part.n_headers == req.n_headers && part.path == req.path);
  }

  /* Prefixes: of a complete head, incomplete; of anything, an error only
   * if the whole has the same one. */
  size_t upto = st == HTTP_PARSE_COMPLETE ? consumed : len;
  size_t step = upto / PREFIXES_MAX + 1;
  for (size_t k = 0; k < upto; k += step) {
    size_t c = 1;
    enum http_parse_status sp = http_parse(buf, k, &part, &c, &lim);
    if (st == HTTP_PARSE_COMPLETE)
      REQUIRE(sp == HTTP_PARSE_INCOMPLETE);
    else if (sp == HTTP_PARSE_ERROR)
      REQUIRE(st == HTTP_PARSE_ERROR && part.status_error == req.status_error);
    else
      REQUIRE(sp == HTTP_PARSE_INCOMPLETE);
  }
  return 0;
}
