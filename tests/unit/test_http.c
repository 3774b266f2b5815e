/* Unit tests for the HTTP/1.1 request parser, the response writer and the
 * Prometheus and JSON helpers (src/server/http.c).
 *
 * The parser faces whatever connects to the metrics port, so besides the
 * requests curl and Prometheus send, it is given every way a head can be
 * malformed or oversized, each split of a request across reads, and
 * thousands of mutated heads (under ASan and UBSan). The writers are compared
 * byte for byte with the formats they promise. Run with a test name as the
 * argument to run only that test. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/prng.h"
#include "sabha/error.h"
#include "server/http.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static enum http_parse_status parse(const char *s, struct http_request *req,
                                    size_t *consumed) {
  return http_parse((const uint8_t *)s, strlen(s), req, consumed,
                    &http_limits_default);
}

static bool slice_is(const char *p, size_t n, const char *s) {
  return p != NULL && strlen(s) == n && memcmp(p, s, n) == 0;
}

static void get_request_is_parsed(void) {
  static const char in[] = "GET /metrics?name[]=up&x HTTP/1.1\r\n"
                           "Host: node1:9100\r\n"
                           "User-Agent: Prometheus/2.45.0\r\n"
                           "Accept:   text/plain;q=0.9 \t \r\n"
                           "X-Empty:\r\n"
                           "\r\n"
                           "trailing bytes are not part of the head";
  struct http_request req;
  size_t consumed = 0;
  CHECK(parse(in, &req, &consumed) == HTTP_PARSE_COMPLETE);
  CHECK(consumed == (size_t)(strstr(in, "trailing") - in));
  CHECK(req.method == HTTP_METHOD_GET && req.version_minor == 1);
  CHECK(slice_is(req.path, req.path_len, "/metrics"));
  CHECK(slice_is(req.query, req.query_len, "name[]=up&x"));
  CHECK(req.n_headers == 4);
  const struct http_header *h = http_header_find(&req, "ACCEPT");
  CHECK(h != NULL && slice_is(h->value, h->value_len, "text/plain;q=0.9"));
  h = http_header_find(&req, "x-empty");
  CHECK(h != NULL && h->value_len == 0);
  h = http_header_find(&req, "host");
  CHECK(h != NULL && slice_is(h->name, h->name_len, "Host"));
  CHECK(slice_is(h->value, h->value_len, "node1:9100"));
  CHECK(http_header_find(&req, "Cookie") == NULL);
}

static void head_and_http10_are_accepted(void) {
  struct http_request req;
  size_t consumed = 0;
  CHECK(parse("HEAD /health HTTP/1.0\r\n\r\n", &req, &consumed) ==
        HTTP_PARSE_COMPLETE);
  CHECK(req.method == HTTP_METHOD_HEAD && req.version_minor == 0);
  CHECK(slice_is(req.path, req.path_len, "/health") && req.query == NULL);
  CHECK(consumed == 25 && req.n_headers == 0);
  /* An empty query is still a query. */
  CHECK(parse("GET /status? HTTP/1.0\r\n\r\n", &req, &consumed) ==
        HTTP_PARSE_COMPLETE);
  CHECK(req.query != NULL && req.query_len == 0);
  /* HTTP/1.9 is served as 1.1. */
  CHECK(parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n", &req, &consumed) ==
        HTTP_PARSE_COMPLETE);
  CHECK(req.version_minor == 1);
}

static void other_methods_get_405_as_soon_as_named(void) {
  static const char *const methods[] = {"POST",    "put",   "delete", "get",
                                        "OPTIONS", "PATCH", "GETS"};
  for (size_t i = 0; i < N(methods); i++) {
    char in[64];
    snprintf(in, sizeof in, "%s ", methods[i]);
    struct http_request req;
    size_t consumed = 0;
    CHECK(parse(in, &req, &consumed) == HTTP_PARSE_ERROR);
    CHECK(req.status_error == 405 && consumed == 0);
  }
}

/* The key-value API's methods, and the body framing it reads. */
static void put_and_delete_parse_with_their_length(void) {
  struct http_request req;
  size_t consumed = 0;
  uint64_t n = 0;
  CHECK(parse("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
              &req, &consumed) == HTTP_PARSE_COMPLETE);
  CHECK(req.method == HTTP_METHOD_PUT);
  CHECK(http_content_length(&req, &n) == 1 && n == 5);
  CHECK(parse("DELETE /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n", &req, &consumed) ==
        HTTP_PARSE_COMPLETE);
  CHECK(req.method == HTTP_METHOD_DELETE);
  CHECK(http_content_length(&req, &n) == 0 && n == 0);
  CHECK(parse("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n", &req,
              &consumed) == HTTP_PARSE_COMPLETE);
  CHECK(http_content_length(&req, &n) == -1);
  CHECK(parse("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              "Content-Length: 6\r\n\r\n",
              &req, &consumed) == HTTP_PARSE_COMPLETE);
  CHECK(http_content_length(&req, &n) == -1);
  CHECK(parse("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              "\r\n",
              &req, &consumed) == HTTP_PARSE_COMPLETE);
  CHECK(http_content_length(&req, &n) == -1);
}

struct bad {
  const char *in;
  int status;
};

static const struct bad bad_requests[] = {
    {"GET /x HTTP/1.1\r\n\r\n", 400}, /* no Host */
    {"GET /x HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
    {"GET /x HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n", 400},
    {" GET /x HTTP/1.1\r\n", 400},
    {"GET  /x HTTP/1.1\r\n", 400},
    {"GET x HTTP/1.1\r\n", 400},
    {"GET * HTTP/1.1\r\n", 400},
    {"GET http://a/x HTTP/1.1\r\n", 400},
    {"GET /a\x01 HTTP/1.1\r\n", 400},
    {"GET /a\xff HTTP/1.1\r\n", 400},
    {"GET /x\r\n", 400},
    {"GET /x HTTX/1.1\r\n", 400},
    {"GET /x HTTP/1.1 \r\n", 400},
    {"GET /x HTTP/1.1\n", 400},
    {"GET /x HTTP/1.1\rX", 400},
    {"GET /x HTTP/11\r\n", 400},
    {"GET\t/x HTTP/1.1\r\n", 400},
    {"GET /x HTTP/2.0\r\n", 505},
    {"GET /x HTTP/0.9\r\n", 505},
    {"GET /x HTTP/1.1\r\nHost : a\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\n: a\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHo(st: a\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\n\tHost: a\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400},
    {"GET /x HTTP/1.1\r\nHost: a\r\n\rX", 400},
    {"GET /x HTTP/1.1\r\nHost: a\r\n\n", 400},
};

/* Each malformed request gets its status, and each prefix of it is either
 * incomplete or already refused with the same status. */
static void malformed_requests_are_refused(void) {
  for (size_t i = 0; i < N(bad_requests); i++) {
    const char *in = bad_requests[i].in;
    struct http_request req;
    size_t consumed = 99;
    enum http_parse_status st = parse(in, &req, &consumed);
    if (st != HTTP_PARSE_ERROR || req.status_error != bad_requests[i].status)
      fprintf(stderr, "request %zu: status %d, http %d\n", i, (int)st,
              req.status_error);
    CHECK(st == HTTP_PARSE_ERROR);
    CHECK(req.status_error == bad_requests[i].status && req.reason != NULL);
    CHECK(consumed == 0);
    for (size_t k = 0; k < strlen(in); k++) {
      struct http_request part;
      st = http_parse((const uint8_t *)in, k, &part, &consumed,
                      &http_limits_default);
      CHECK(st == HTTP_PARSE_INCOMPLETE ||
            (st == HTTP_PARSE_ERROR && part.status_error == req.status_error));
    }
  }
}

static void every_split_point_is_incomplete_until_the_end(void) {
  static const char in[] = "GET /status HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n";
  size_t len = sizeof in - 1;
  for (size_t k = 0; k < len; k++) {
    struct http_request req;
    size_t consumed = 99;
    CHECK(http_parse((const uint8_t *)in, k, &req, &consumed,
                     &http_limits_default) == HTTP_PARSE_INCOMPLETE);
    CHECK(consumed == 0);
  }
  struct http_request req;
  size_t consumed = 0;
  CHECK(http_parse((const uint8_t *)in, len, &req, &consumed,
                   &http_limits_default) == HTTP_PARSE_COMPLETE);
  CHECK(consumed == len && req.n_headers == 2);
}

static void long_lines_get_414_and_big_heads_431(void) {
  struct http_limits lim = {.line_bytes_max = 32, .head_bytes_max = 64};
  struct http_request req;
  size_t consumed = 0;
  /* A request line of exactly 32 bytes passes. */
  static const char ok32[] = "GET /0123456789abcdefgh HTTP/1.0\r\n\r\n";
  CHECK(http_parse((const uint8_t *)ok32, sizeof ok32 - 1, &req, &consumed,
                   &lim) == HTTP_PARSE_COMPLETE);
  /* 33 bytes: 414. */
  static const char long33[] = "GET /0123456789abcdefghi HTTP/1.0\r\n\r\n";
  CHECK(http_parse((const uint8_t *)long33, sizeof long33 - 1, &req, &consumed,
                   &lim) == HTTP_PARSE_ERROR);
  CHECK(req.status_error == 414);
  /* Too long already before its end has arrived: 414 at once. */
  static const char endless[] = "GET /0123456789abcdefghijklmnopqrstuvwxyz";
  CHECK(http_parse((const uint8_t *)endless, sizeof endless - 1, &req,
                   &consumed, &lim) == HTTP_PARSE_ERROR);
  CHECK(req.status_error == 414);
  /* A head of exactly 64 bytes passes; one more byte of header gives 431. */
  static const char head64[] = "GET / HTTP/1.1\r\nHost: h\r\n"
                               "X-Pad: 0123456789012345678901234567\r\n\r\n";
  CHECK(sizeof head64 - 1 == 64);
  CHECK(http_parse((const uint8_t *)head64, 64, &req, &consumed, &lim) ==
        HTTP_PARSE_COMPLETE);
  CHECK(consumed == 64);
  static const char head65[] = "GET / HTTP/1.1\r\nHost: h\r\n"
                               "X-Pad: 01234567890123456789012345678\r\n\r\n";
  CHECK(http_parse((const uint8_t *)head65, sizeof head65 - 1, &req, &consumed,
                   &lim) == HTTP_PARSE_ERROR);
  CHECK(req.status_error == 431);
  /* Without its end in sight, a head at the bound is refused at once. */
  CHECK(http_parse((const uint8_t *)head65, 64, &req, &consumed, &lim) ==
        HTTP_PARSE_ERROR);
  CHECK(req.status_error == 431);
  CHECK(http_parse((const uint8_t *)head65, 63, &req, &consumed, &lim) ==
        HTTP_PARSE_INCOMPLETE);
}

static void too_many_headers_get_431(void) {
  char in[2048];
  size_t n = (size_t)snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: h\r\n");
  for (unsigned i = 1; i < HTTP_HEADERS_MAX; i++)
    n += (size_t)snprintf(in + n, sizeof in - n, "X-%u: v\r\n", i);
  snprintf(in + n, sizeof in - n, "\r\n");
  struct http_request req;
  size_t consumed = 0;
  CHECK(parse(in, &req, &consumed) == HTTP_PARSE_COMPLETE);
  CHECK(req.n_headers == HTTP_HEADERS_MAX);
  snprintf(in + n, sizeof in - n, "X-Last: v\r\n\r\n");
  CHECK(parse(in, &req, &consumed) == HTTP_PARSE_ERROR);
  CHECK(req.status_error == 431);
}

static const char *const seeds[] = {
    "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
    "HEAD /health HTTP/1.0\r\n\r\n",
    "GET /status?x=1 HTTP/1.1\r\nHost: a\r\nX: y z\r\n\r\n",
};

static void mutated_requests_never_break_the_contract(void) {
  struct prng rng;
  prng_seed(&rng, 99);
  static const uint8_t alphabet[] = "\r\n :/?\tGETHOST1.\x01\x7f\x80";
  uint8_t input[256];
  for (int round = 0; round < 100000; round++) {
    const char *seed = seeds[prng_below(&rng, N(seeds))];
    size_t len = strlen(seed);
    memcpy(input, seed, len);
    int n_mutations = 1 + (int)prng_below(&rng, 3);
    for (int m = 0; m < n_mutations; m++) {
      size_t at = len ? prng_below(&rng, len) : 0;
      switch (prng_below(&rng, 4)) {
      case 0:
        if (len)
          input[at] = alphabet[prng_below(&rng, sizeof alphabet - 1)];
        break;
      case 1:
        if (len)
          input[at] = (uint8_t)prng_next(&rng);
        break;
      case 2:
        if (len < sizeof input) {
          memmove(input + at + 1, input + at, len - at);
          input[at] = alphabet[prng_below(&rng, sizeof alphabet - 1)];
          len++;
        }
        break;
      default:
        len = at;
        break;
      }
    }
    /* Half the time tiny limits, to reach the 414 and 431 paths. */
    struct http_limits lim = http_limits_default;
    if (prng_below(&rng, 2)) {
      lim.line_bytes_max = 1 + prng_below(&rng, 48);
      lim.head_bytes_max = 1 + prng_below(&rng, 96);
    }
    uint8_t *exact = malloc(len ? len : 1);
    CHECK(exact != NULL);
    memcpy(exact, input, len);
    struct http_request req;
    size_t consumed = 99;
    enum http_parse_status st = http_parse(exact, len, &req, &consumed, &lim);
    if (st == HTTP_PARSE_COMPLETE) {
      CHECK(consumed >= 18 && consumed <= len &&
            consumed <= lim.head_bytes_max);
      CHECK(req.path_len >= 1 && req.path[0] == '/');
      CHECK(req.n_headers <= HTTP_HEADERS_MAX);
      CHECK((const uint8_t *)req.path + req.path_len <= exact + consumed);
      for (uint32_t i = 0; i < req.n_headers; i++) {
        const struct http_header *h = &req.headers[i];
        CHECK(h->name_len > 0);
        CHECK((const uint8_t *)h->value + h->value_len <= exact + consumed);
      }
    } else if (st == HTTP_PARSE_ERROR) {
      int s = req.status_error;
      CHECK(s == 400 || s == 405 || s == 414 || s == 431 || s == 505);
      CHECK(consumed == 0 && req.reason != NULL);
    } else {
      CHECK(consumed == 0);
    }
    free(exact);
  }
}

static bool buf_is(const struct resp_buf *b, const char *s) {
  size_t n = strlen(s);
  if (b->len != n || memcmp(b->data, s, n) != 0) {
    fprintf(stderr, "got:\n%.*s\nwant:\n%s\n", (int)b->len,
            (const char *)b->data, s);
    return false;
  }
  return true;
}

static void responses_close_and_state_their_length(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 16);
  CHECK(http_write_response(&b, 200, "application/json", "{}", 2, false) == 0);
  CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: 2\r\n"
                   "Cache-Control: no-store\r\n"
                   "Connection: close\r\n"
                   "\r\n"
                   "{}"));
  resp_buf_reset(&b);
  /* HEAD: the same head, no body. */
  CHECK(http_write_response(&b, 200, "application/json", "{}", 2, true) == 0);
  CHECK(buf_is(&b, "HTTP/1.1 200 OK\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: 2\r\n"
                   "Cache-Control: no-store\r\n"
                   "Connection: close\r\n"
                   "\r\n"));
  resp_buf_reset(&b);
  CHECK(http_write_error(&b, 405, false) == 0);
  CHECK(buf_is(&b, "HTTP/1.1 405 Method Not Allowed\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: 19\r\n"
                   "Cache-Control: no-store\r\n"
                   "Connection: close\r\n"
                   "Allow: GET, HEAD, PUT, DELETE\r\n"
                   "\r\n"
                   "Method Not Allowed\n"));
  resp_buf_reset(&b);
  CHECK(http_write_error(&b, 404, false) == 0);
  CHECK(strstr((const char *)b.data, "404 Not Found\r\n") != NULL);
  resp_buf_free(&b);
  /* A buffer too small reports it. */
  resp_buf_init(&b, 32);
  CHECK(http_write_response(&b, 200, "text/plain", "x", 1, false) ==
        SABHA_ETOOBIG);
  resp_buf_free(&b);
}

static void prometheus_counters_and_gauges(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 16);
  CHECK(http_prom_counter(&b, "sabha_commits_total",
                          "Entries committed.\nBy this node, C:\\",
                          12345) == 0);
  CHECK(http_prom_gauge(&b, "sabha_term", "The current term.", 7) == 0);
  CHECK(buf_is(&b, "# HELP sabha_commits_total Entries committed.\\nBy this "
                   "node, C:\\\\\n"
                   "# TYPE sabha_commits_total counter\n"
                   "sabha_commits_total 12345\n"
                   "# HELP sabha_term The current term.\n"
                   "# TYPE sabha_term gauge\n"
                   "sabha_term 7\n"));
  resp_buf_reset(&b);
  struct http_prom_label labels[] = {{"peer", "2"}, {"addr", "a\"b\\c\nd"}};
  CHECK(http_prom_sample_u64(&b, "sabha_sent_bytes_total", labels, 2,
                             UINT64_MAX) == 0);
  CHECK(http_prom_sample_double(&b, "x", NULL, 0, 0.1) == 0);
  CHECK(http_prom_sample_double(&b, "x", NULL, 0, 1e-9) == 0);
  CHECK(http_prom_sample_double(&b, "x", NULL, 0, 1.0 / 3) == 0);
  CHECK(http_prom_sample_double(&b, "x", NULL, 0, NAN) == 0);
  CHECK(http_prom_sample_double(&b, "x", NULL, 0, INFINITY) == 0);
  CHECK(http_prom_sample_double(&b, "x", NULL, 0, -INFINITY) == 0);
  CHECK(http_prom_sample_double(&b, "x", labels, 1, -2.5) == 0);
  CHECK(buf_is(&b, "sabha_sent_bytes_total{peer=\"2\",addr=\"a\\\"b\\\\c\\nd\"}"
                   " 18446744073709551615\n"
                   "x 0.1\n"
                   "x 1e-09\n"
                   "x 0.33333333333333331\n"
                   "x NaN\n"
                   "x +Inf\n"
                   "x -Inf\n"
                   "x{peer=\"2\"} -2.5\n"));
  resp_buf_free(&b);
}

static void prometheus_histogram_is_cumulative(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 16);
  static const double bounds[] = {0.001, 0.01, 0.1};
  static const uint64_t counts[] = {5, 0, 3, 2};
  struct http_prom_histogram h = {bounds, counts, 3, 0.75};
  struct http_prom_label labels[] = {{"op", "set"}};
  CHECK(http_prom_header(&b, "sabha_apply_seconds", "histogram",
                         "Time to apply.") == 0);
  CHECK(http_prom_histogram(&b, "sabha_apply_seconds", labels, 1, &h) == 0);
  CHECK(http_prom_histogram(&b, "sabha_apply_seconds", NULL, 0, &h) == 0);
  CHECK(buf_is(&b, "# HELP sabha_apply_seconds Time to apply.\n"
                   "# TYPE sabha_apply_seconds histogram\n"
                   "sabha_apply_seconds_bucket{op=\"set\",le=\"0.001\"} 5\n"
                   "sabha_apply_seconds_bucket{op=\"set\",le=\"0.01\"} 5\n"
                   "sabha_apply_seconds_bucket{op=\"set\",le=\"0.1\"} 8\n"
                   "sabha_apply_seconds_bucket{op=\"set\",le=\"+Inf\"} 10\n"
                   "sabha_apply_seconds_sum{op=\"set\"} 0.75\n"
                   "sabha_apply_seconds_count{op=\"set\"} 10\n"
                   "sabha_apply_seconds_bucket{le=\"0.001\"} 5\n"
                   "sabha_apply_seconds_bucket{le=\"0.01\"} 5\n"
                   "sabha_apply_seconds_bucket{le=\"0.1\"} 8\n"
                   "sabha_apply_seconds_bucket{le=\"+Inf\"} 10\n"
                   "sabha_apply_seconds_sum 0.75\n"
                   "sabha_apply_seconds_count 10\n"));
  resp_buf_free(&b);
}

static void json_strings_are_escaped(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 10);
  static const char s[] = "a\"b\\c\n\r\t\x01\x1f\x7f\xc3\xa9";
  CHECK(http_json_string(&b, s, sizeof s - 1) == 0);
  CHECK(http_json_string(&b, NULL, 0) == 0);
  CHECK(buf_is(&b, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\"\"\""));
  resp_buf_free(&b);
}

static const struct test tests[] = {
    TEST(get_request_is_parsed),
    TEST(head_and_http10_are_accepted),
    TEST(other_methods_get_405_as_soon_as_named),
    TEST(put_and_delete_parse_with_their_length),
    TEST(malformed_requests_are_refused),
    TEST(every_split_point_is_incomplete_until_the_end),
    TEST(long_lines_get_414_and_big_heads_431),
    TEST(too_many_headers_get_431),
    TEST(mutated_requests_never_break_the_contract),
    TEST(responses_close_and_state_their_length),
    TEST(prometheus_counters_and_gauges),
    TEST(prometheus_histogram_is_cumulative),
    TEST(json_strings_are_escaped),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
