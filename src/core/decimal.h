/* Strict decimal integers: the one parser behind every number sabha reads
 * as text, from a command-line flag, a config or scenario file, a RESP
 * argument, an application command or a history line.
 *
 * Strict so that a number has no surprises: ASCII digits only, no space, no
 * '+', no hex or octal, nothing after the digits, and a value that does not
 * fit is refused rather than clamped or wrapped. Where a text must have one
 * spelling per number (RESP integers, as Redis reads them; application
 * amounts; history files) leading zeros are refused too.
 *
 * The parsers take a pointer and a length, so they read RESP arguments and
 * slices of a line in place; dec_parse_flag is the form for a C string.
 * They read exactly n bytes, never past them, and write *out only on
 * success. */
#ifndef SABHA_CORE_DECIMAL_H
#define SABHA_CORE_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dec_result {
  DEC_OK = 0,
  DEC_SYNTAX, /* not a number of the accepted spelling (empty included) */
  DEC_RANGE,  /* well spelled, but outside the bounds or beyond 64 bits */
};

enum dec_spelling {
  DEC_LEADING_ZEROS, /* "007" is 7: as people write in flags and files */
  DEC_CANONICAL,     /* no leading zero ("0" itself is fine) */
};

/* An unsigned number in lo..hi (lo <= hi): one or more digits, nothing
 * else. A syntax error anywhere wins over a range error, so "99999999999999
 * 999999x" is DEC_SYNTAX. */
enum dec_result dec_parse_u64(const void *p, size_t n,
                              enum dec_spelling spelling, uint64_t lo,
                              uint64_t hi, uint64_t *out);

/* A signed 64-bit number by Redis's rule: an optional '-', then digits,
 * canonical ("-0" is refused as well as "007"), within INT64_MIN..INT64_MAX.
 * A syntax error wins over a range error, as above. */
enum dec_result dec_parse_i64(const void *p, size_t n, int64_t *out);

/* The value of a command-line flag or a configuration word: the NUL-
 * terminated `s` (NULL is refused) as dec_parse_u64 with leading zeros
 * allowed. True when it is a number in lo..hi. */
bool dec_parse_flag(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

#endif
