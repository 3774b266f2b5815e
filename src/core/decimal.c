/* Strict decimal integers: see decimal.h for the rules and why.
 *
 * One loop reads the digits of both the signed and the unsigned forms; it
 * keeps going after the value overflows, so that a later non-digit is still
 * reported as what it is. */
#include "core/decimal.h"

#include <assert.h>
#include <string.h>

/* The digits s[0, n) as a number no greater than max. */
static enum dec_result digits(const char *s, size_t n,
                              enum dec_spelling spelling, uint64_t max,
                              uint64_t *out) {
  if (n == 0 || (spelling == DEC_CANONICAL && n > 1 && s[0] == '0'))
    return DEC_SYNTAX;
  uint64_t v = 0;
  bool over = false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return DEC_SYNTAX;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (over || v > (max - d) / 10)
      over = true;
    else
      v = v * 10 + d;
  }
  if (over)
    return DEC_RANGE;
  *out = v;
  return DEC_OK;
}

enum dec_result dec_parse_u64(const void *p, size_t n,
                              enum dec_spelling spelling, uint64_t lo,
                              uint64_t hi, uint64_t *out) {
  assert((p != NULL || n == 0) && out != NULL && lo <= hi);
  uint64_t v = 0;
  enum dec_result rc = digits(p, n, spelling, hi, &v);
  if (rc != DEC_OK)
    return rc;
  if (v < lo)
    return DEC_RANGE;
  *out = v;
  return DEC_OK;
}

enum dec_result dec_parse_i64(const void *p, size_t n, int64_t *out) {
  assert((p != NULL || n == 0) && out != NULL);
  const char *s = p;
  bool negative = n > 0 && s[0] == '-';
  size_t i = negative ? 1 : 0;
  if (negative && n > 1 && s[1] == '0')
    return DEC_SYNTAX; /* "-0", "-01" */
  uint64_t max = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  uint64_t v = 0;
  enum dec_result rc = digits(s + i, n - i, DEC_CANONICAL, max, &v);
  if (rc != DEC_OK)
    return rc;
  /* -(v - 1) - 1 reaches INT64_MIN without overflowing. */
  *out = !negative ? (int64_t)v : -(int64_t)(v - 1) - 1;
  return DEC_OK;
}

bool dec_parse_flag(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  return s != NULL &&
         dec_parse_u64(s, strlen(s), DEC_LEADING_ZEROS, lo, hi, out) == DEC_OK;
}
