/* A client history: what each client asked, when, and what it was told.
 *
 * The simulator records one `struct hist_op` per client operation; the
 * linearizability checker (check/linearize.h) reads them; `--history FILE`
 * writes them as JSON lines, one object per operation:
 *
 *   {"client":3,"op":"put","key":"k1","value":"v7","call_us":123,
 *    "return_us":456,"status":"ok","output":null}
 *   {"client":4,"op":"put","key":"k1","value":"v8","ttl":true,"call_us":500,
 *    "return_us":530,"status":"ok","output":null}
 *   {"client":5,"op":"incr","key":"k2","value":null,"call_us":600,
 *    "return_us":650,"status":"ok","output":9}
 *
 * Fields, in the order the writer puts them:
 * - client: the client's number.
 * - op: put, get, cas, incr or append.
 * - key: "k<N>". Keys and values are small integers inside sabha ("k1" is
 *   key 1, "v7" is value 7) so the checker compares numbers, not strings.
 * - expected: cas only: the value it compares against, or null for "only if
 *   the key is absent" (as SET NX).
 * - value: what a put or cas writes ("v<N>", or null: a put of null deletes
 *   the key); always null for get and incr, whose results are "output".
 * - ttl: put only, and only as true: the value may expire (SET key value PX
 *   ms). It may vanish at any moment after the put takes effect, and once
 *   gone stays gone until the key is written again. Without "ttl", or after
 *   a cas that swaps, the key does not expire. An incr keeps the key's expiry.
 * - call_us, return_us: when the client called and was answered, in
 *   microseconds; return_us is left out when status is info.
 * - status: ok (answered), fail (definitely not applied) or info (outcome
 *   unknown: it may have taken effect once, or not at all).
 * - output: null unless status is ok; then get: the value read or null; cas:
 *   true (swapped) or false; incr: the number it returned, the key's new
 *   value (a missing key counts as 0), which a later get shows as "v<N>"
 *   (value ids and counters are the same numbers); put: null.
 * - append: adds bytes to the key's value (a missing key counts as
 *   empty) and keeps its expiry; "value" and "output" are null. The model
 *   counts a value one up per append: a history with appends numbers a
 *   value as its write's id times a stride plus the bytes appended since
 *   (the simulator's stride is 10^6: "v7000002" is v7 and two appended
 *   bytes), so an append leads from v<N> to v<N+1>, and from null to
 *   v1. */
#ifndef SABHA_CHECK_HISTORY_H
#define SABHA_CHECK_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_NIL (-1) /* no value: a missing key */

enum hist_kind {
  HIST_PUT = 0,
  HIST_GET = 1,
  HIST_CAS = 2,
  HIST_INCR = 3,
  HIST_APPEND = 4
};
enum hist_status { HIST_OK = 0, HIST_FAIL = 1, HIST_INFO = 2 };

/* hist_op.flags. */
#define HIST_TTL 1u /* put only: the value written may expire ("ttl") */

struct hist_op {
  uint32_t client;
  uint32_t kind;   /* enum hist_kind */
  uint32_t status; /* enum hist_status */
  uint32_t key;
  int64_t value;    /* put: written (HIST_NIL deletes); cas: new value;
                       get (ok): value read or HIST_NIL; incr (ok): the
                       number returned; HIST_NIL for a get or incr not ok */
  int64_t expected; /* cas only: the value it compared against, or HIST_NIL */
  int32_t output;   /* cas (ok): 1 swapped, 0 did not */
  uint32_t flags;   /* HIST_TTL or 0 */
  uint64_t call_us;
  uint64_t return_us; /* meaningless when status is HIST_INFO */
};

/* Writes `ops` as JSON lines and flushes `f`. Returns 0 or SABHA_EIO. Fields
 * a status makes meaningless are not written: return_us for info, outputs
 * of ops that are not ok (null), the "value" of a get or incr (null: their
 * result is "output"); "ttl" only for a put that has HIST_TTL. Programmer
 * errors (asserted): an unknown kind, status or flag, HIST_TTL on an op
 * that is not a put or on a put of HIST_NIL, an ok incr's value below 0. */
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
 * status (e.g. "expected" on a put, an output on a failed op, "ttl" on
 * anything but a put, "ttl":false, "ttl" on a put of null, an incr's output
 * that is not an integer up to 2^63 - 1) are rejected. Files written before
 * incr and ttl existed read as they always did. Blank lines are skipped but
 * counted. Fields the line does not carry read as 0 (return_us of info,
 * output of put, incr and of ops not ok, flags of a line without "ttl") or
 * HIST_NIL (expected of all but cas, value of a get or incr that is not
 * ok), so writing what was read gives the same text back. */
int hist_read_jsonl(FILE *f, struct hist_op **ops_out, size_t *n_out, char *err,
                    size_t err_size);

#endif
