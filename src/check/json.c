/* JSON string literals: see json.h for the rule and why there is one.
 *
 * Bytes that stand for themselves are handed to the sink in runs, not one
 * by one, so that a buffer sink grows once per run and a FILE sink makes
 * one call per run. */
#include "check/json.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define JSON_ESCAPE_BYTES_MAX 6u /* \u00XX */

/* The escape of byte c into `out`, and its length; 0 when c stands for
 * itself. */
static size_t escape_of(uint8_t c, enum json_bytes mode,
                        char out[JSON_ESCAPE_BYTES_MAX]) {
  static const char hex[] = "0123456789abcdef";
  char short_form = 0;
  switch (c) {
  case '"':
    short_form = '"';
    break;
  case '\\':
    short_form = '\\';
    break;
  case '\n':
    short_form = 'n';
    break;
  case '\r':
    short_form = 'r';
    break;
  case '\t':
    short_form = 't';
    break;
  default:
    if (c >= 0x20 && (c < 0x7f || mode == JSON_TEXT))
      return 0;
    memcpy(out, "\\u00", 4);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 0xf];
    return 6;
  }
  out[0] = '\\';
  out[1] = short_form;
  return 2;
}

void json_string(json_put_fn *put, void *ctx, const void *p, size_t n,
                 enum json_bytes mode) {
  assert(put != NULL && (p != NULL || n == 0));
  assert(mode == JSON_TEXT || mode == JSON_BINARY);
  const char *s = p;
  put(ctx, "\"", 1);
  size_t run = 0; /* the first byte not yet handed to the sink */
  for (size_t i = 0; i < n; i++) {
    char esc[JSON_ESCAPE_BYTES_MAX];
    size_t esc_len = escape_of((uint8_t)s[i], mode, esc);
    if (esc_len == 0)
      continue;
    if (i > run)
      put(ctx, s + run, i - run);
    put(ctx, esc, esc_len);
    run = i + 1;
  }
  if (n > run)
    put(ctx, s + run, n - run);
  put(ctx, "\"", 1);
}

static void put_file(void *ctx, const char *p, size_t n) {
  fwrite(p, 1, n, ctx);
}

void json_fput_text(FILE *f, const char *s) {
  assert(f != NULL && s != NULL);
  json_string(put_file, f, s, strlen(s), JSON_TEXT);
}

void json_fput_bytes(FILE *f, const void *p, size_t n) {
  assert(f != NULL);
  json_string(put_file, f, p, n, JSON_BINARY);
}
