/* A client history: what each client asked, when, and what it was told.
 *
 * The simulator records one `struct hist_op` per client operation; the
 * linearizability checker (check/linearize.h) reads them; `--history FILE`
 * writes them as JSON lines:
 *
 *   {"client":3,"op":"put","key":"k1","value":"v7","call_us":123,
 *    "return_us":456,"status":"ok","output":null}
 *
 * op is put, get or cas (cas also carries "expected"); get's output is the
 * value read or null; cas's output is true or false; status is ok, fail
 * (definitely not applied) or info (outcome unknown; return_us omitted).
 * Keys and values are small integers inside sabha ("k1" is key 1, "v7" is
 * value 7) so the checker compares numbers, not strings. */
#ifndef SABHA_CHECK_HISTORY_H
#define SABHA_CHECK_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_NIL (-1) /* no value: a missing key */

enum hist_kind { HIST_PUT = 0, HIST_GET = 1, HIST_CAS = 2 };
enum hist_status { HIST_OK = 0, HIST_FAIL = 1, HIST_INFO = 2 };

struct hist_op {
  uint32_t client;
  uint32_t kind;   /* enum hist_kind */
  uint32_t status; /* enum hist_status */
  uint32_t key;
  int64_t value;    /* put: written; cas: new value; get (ok): value read or
                       HIST_NIL */
  int64_t expected; /* cas only: the value it compared against, or HIST_NIL */
  int32_t output;   /* cas (ok): 1 swapped, 0 did not */
  uint64_t call_us;
  uint64_t return_us; /* meaningless when status is HIST_INFO */
};

/* Writes `ops` as JSON lines and flushes `f`. Returns 0 or SABHA_EIO. Fields
 * a status makes meaningless are not written: return_us for info, outputs
 * of ops that are not ok (null), a get's "value" (null: the read is
 * "output"). */
int hist_write_jsonl(FILE *f, const struct hist_op *ops, size_t n_ops);

/* Reads JSON lines written by hist_write_jsonl(). On success returns 0 and
 * sets *ops_out (malloc'd, caller frees; NULL for no ops) and *n_out. On a
 * malformed line returns SABHA_ECORRUPT and, if err is not NULL, writes
 * "line N: why" into err (err_size bytes); likewise SABHA_ETOOBIG past 16 Mi
 * operations, SABHA_ENOMEM, and SABHA_EIO on a read error. On failure
 * *ops_out is NULL and *n_out 0.
 *
 * Strict on purpose: keys in any order and whitespace are fine, but unknown
 * or repeated keys, lines over 4096 bytes, string escapes, signed or
 * fractional numbers, leading zeros, and fields that do not fit the op and
 * status (e.g. "expected" on a put, an output on a failed op) are rejected.
 * Blank lines are skipped but counted. Fields the line does not carry read
 * as 0 (return_us of info, output of put and of ops not ok) or HIST_NIL
 * (expected of put and get, value of a get that is not ok), so writing what
 * was read gives the same text back. */
int hist_read_jsonl(FILE *f, struct hist_op **ops_out, size_t *n_out, char *err,
                    size_t err_size);

#endif
