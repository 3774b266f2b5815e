/* Unit tests for the linearizability checker (src/check/linearize.c).
 *
 * A checker that only ever says "ok" is worse than none, so every kind of
 * anomaly the simulator could produce (stale read, lost write, a read of a
 * value nobody wrote, a lying cas, an incr counted twice, an expired value
 * that comes back) has a case that must be caught, next to a case of the
 * same shape that must pass. Random histories that are linearizable by
 * construction (check/histgen.h) must pass, and the same histories with one
 * read corrupted, or with a fault the generator places, must fail; small
 * random histories must get the verdict of a brute-force search.
 *
 * Run with a test name as the argument to run only that test. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check/histgen.h"
#include "check/history.h"
#include "check/linearize.h"
#include "core/prng.h"
#include "sabha/error.h"

/* Shorthands for one operation. Times are in microseconds. */
static struct hist_op op_new(uint32_t client, uint32_t kind, uint32_t key,
                             int64_t value, uint64_t call_us,
                             uint64_t return_us) {
  struct hist_op op;
  memset(&op, 0, sizeof op);
  op.client = client;
  op.kind = kind;
  op.status = HIST_OK;
  op.key = key;
  op.value = value;
  op.expected = HIST_NIL;
  op.call_us = call_us;
  op.return_us = return_us;
  return op;
}

static struct hist_op put(uint32_t client, uint32_t key, int64_t value,
                          uint64_t call_us, uint64_t return_us) {
  return op_new(client, HIST_PUT, key, value, call_us, return_us);
}

static struct hist_op get(uint32_t client, uint32_t key, int64_t value_read,
                          uint64_t call_us, uint64_t return_us) {
  return op_new(client, HIST_GET, key, value_read, call_us, return_us);
}

static struct hist_op cas(uint32_t client, uint32_t key, int64_t expected,
                          int64_t value, int32_t swapped, uint64_t call_us,
                          uint64_t return_us) {
  struct hist_op op = op_new(client, HIST_CAS, key, value, call_us, return_us);
  op.expected = expected;
  op.output = swapped;
  return op;
}

static struct hist_op put_ttl(uint32_t client, uint32_t key, int64_t value,
                              uint64_t call_us, uint64_t return_us) {
  struct hist_op op = op_new(client, HIST_PUT, key, value, call_us, return_us);
  op.flags = HIST_TTL;
  return op;
}

static struct hist_op incr(uint32_t client, uint32_t key, int64_t returned,
                           uint64_t call_us, uint64_t return_us) {
  return op_new(client, HIST_INCR, key, returned, call_us, return_us);
}

static struct hist_op info(struct hist_op op) {
  op.status = HIST_INFO;
  op.return_us = 0; /* meaningless for info: make sure nothing reads it */
  op.output = 0;
  if (op.kind == HIST_INCR)
    op.value = 99; /* unknown: make sure nothing reads it either */
  return op;
}

static struct hist_op fail(struct hist_op op) {
  op.status = HIST_FAIL;
  return op;
}

#define NIL HIST_NIL
#define N(a) (sizeof(a) / sizeof((a)[0]))

static enum lin_result check(const struct hist_op *ops, size_t n,
                             uint64_t steps_max, struct lin_report *r) {
  int rc = lin_check(ops, n, &lin_model_kv, steps_max, r);
  if (rc != 0) {
    fprintf(stderr, "lin_check: %s (%s)\n", sabha_strerror(rc), r->message);
    return (enum lin_result) - 1;
  }
  return r->result;
}

static void empty_history_is_ok(void) {
  struct lin_report r;
  CHECK(check(NULL, 0, 0, &r) == LIN_OK);
  CHECK(r.n_ops == 0 && r.n_partitions == 0 && r.steps == 0);
}

static void sequential_history_is_ok(void) {
  struct hist_op h[] = {
      get(1, 1, NIL, 0, 10),  put(1, 1, 1, 20, 30),
      get(2, 1, 1, 40, 50),   put(2, 1, 2, 60, 70),
      get(1, 1, 2, 80, 90),   cas(3, 1, 2, 3, 1, 100, 110),
      get(3, 1, 3, 120, 130),
  };
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_OK);
  CHECK(r.n_ops == N(h) && r.n_partitions == 1 && r.steps > 0);
}

static void concurrent_get_may_see_the_old_or_the_new_value(void) {
  struct hist_op sees_old[] = {put(1, 1, 1, 0, 10), put(1, 1, 2, 20, 60),
                               get(2, 1, 1, 30, 40)};
  struct hist_op sees_new[] = {put(1, 1, 1, 0, 10), put(1, 1, 2, 20, 60),
                               get(2, 1, 2, 30, 40)};
  struct lin_report r;
  CHECK(check(sees_old, N(sees_old), 0, &r) == LIN_OK);
  CHECK(check(sees_new, N(sees_new), 0, &r) == LIN_OK);
}

static void stale_read_after_completed_write_is_violation(void) {
  struct hist_op h[] = {put(1, 1, 1, 0, 10), put(1, 1, 2, 20, 30),
                        get(2, 1, 1, 40, 50)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
  CHECK(r.partition == 1);
  /* The message names the read that could not be placed. */
  CHECK(strstr(r.message, "c2 get k1->v1 [40,50]") != NULL);
}

static void intervals_that_touch_are_concurrent(void) {
  /* Real-time order needs one op to return strictly before the other is
   * called; at the same instant either order is allowed. */
  struct hist_op touching[] = {put(1, 1, 1, 0, 10), get(2, 1, NIL, 10, 20)};
  struct hist_op apart[] = {put(1, 1, 1, 0, 10), get(2, 1, NIL, 11, 20)};
  struct lin_report r;
  CHECK(check(touching, N(touching), 0, &r) == LIN_OK);
  CHECK(check(apart, N(apart), 0, &r) == LIN_VIOLATION);
}

static void cas_follows_its_specification(void) {
  struct hist_op h[] = {
      cas(1, 1, NIL, 1, 1, 0, 10),  /* absent -> v1: swaps */
      cas(1, 1, NIL, 2, 0, 20, 30), /* no longer absent: does not */
      cas(2, 1, 1, 3, 1, 40, 50),   /* v1 -> v3 */
      cas(2, 1, 1, 4, 0, 60, 70),   /* v1 is gone */
      get(3, 1, 3, 80, 90),
  };
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_OK);
}

static void cas_with_a_wrong_output_is_violation(void) {
  struct hist_op claims_swap[] = {put(1, 1, 1, 0, 10),
                                  cas(2, 1, 2, 3, 1, 20, 30)};
  struct hist_op claims_no_swap[] = {put(1, 1, 1, 0, 10),
                                     cas(2, 1, 1, 3, 0, 20, 30)};
  struct hist_op failed_cas_then_new_value[] = {
      put(1, 1, 1, 0, 10), cas(2, 1, 2, 3, 0, 20, 30), get(1, 1, 3, 40, 50)};
  struct lin_report r;
  CHECK(check(claims_swap, N(claims_swap), 0, &r) == LIN_VIOLATION);
  CHECK(check(claims_no_swap, N(claims_no_swap), 0, &r) == LIN_VIOLATION);
  CHECK(check(failed_cas_then_new_value, N(failed_cas_then_new_value), 0, &r) ==
        LIN_VIOLATION);
}

static void concurrent_cas_race_has_one_winner(void) {
  struct hist_op one_wins[] = {put(1, 1, 1, 0, 10), cas(2, 1, 1, 2, 1, 20, 50),
                               cas(3, 1, 1, 3, 0, 20, 50),
                               get(1, 1, 2, 60, 70)};
  struct hist_op both_win[] = {put(1, 1, 1, 0, 10), cas(2, 1, 1, 2, 1, 20, 50),
                               cas(3, 1, 1, 3, 1, 20, 50)};
  struct lin_report r;
  CHECK(check(one_wins, N(one_wins), 0, &r) == LIN_OK);
  CHECK(check(both_win, N(both_win), 0, &r) == LIN_VIOLATION);
}

static void info_write_may_or_may_not_take_effect(void) {
  /* The put of v2 timed out: it may land at any time after its call. */
  struct hist_op seen_later[] = {put(1, 1, 1, 0, 10), info(put(2, 1, 2, 20, 0)),
                                 get(3, 1, 1, 30, 40), get(3, 1, 2, 500, 510),
                                 get(1, 1, 2, 600, 610)};
  struct hist_op never_seen[] = {put(1, 1, 1, 0, 10), info(put(2, 1, 2, 20, 0)),
                                 get(3, 1, 1, 30, 40), get(3, 1, 1, 500, 510)};
  struct lin_report r;
  CHECK(check(seen_later, N(seen_later), 0, &r) == LIN_OK);
  CHECK(r.n_ops == N(seen_later));
  CHECK(check(never_seen, N(never_seen), 0, &r) == LIN_OK);
}

static void info_write_is_not_seen_before_its_call_nor_unseen_after(void) {
  struct hist_op before_call[] = {put(1, 1, 1, 0, 10), get(3, 1, 2, 20, 30),
                                  info(put(2, 1, 2, 40, 0))};
  struct hist_op unseen[] = {put(1, 1, 1, 0, 10), info(put(2, 1, 2, 20, 0)),
                             get(3, 1, 2, 30, 40), get(3, 1, 1, 50, 60)};
  struct lin_report r;
  CHECK(check(before_call, N(before_call), 0, &r) == LIN_VIOLATION);
  CHECK(check(unseen, N(unseen), 0, &r) == LIN_VIOLATION);
}

static void info_cas_may_swap_or_not(void) {
  struct hist_op swapped[] = {put(1, 1, 1, 0, 10),
                              info(cas(2, 1, 1, 2, 0, 20, 0)),
                              get(3, 1, 2, 30, 40)};
  struct hist_op not_swapped[] = {put(1, 1, 1, 0, 10),
                                  info(cas(2, 1, 1, 2, 0, 20, 0)),
                                  get(3, 1, 1, 30, 40)};
  /* It can only swap when the value matches. */
  struct hist_op cannot_swap[] = {put(1, 1, 5, 0, 10),
                                  info(cas(2, 1, 1, 2, 0, 20, 0)),
                                  get(3, 1, 2, 30, 40)};
  struct lin_report r;
  CHECK(check(swapped, N(swapped), 0, &r) == LIN_OK);
  CHECK(check(not_swapped, N(not_swapped), 0, &r) == LIN_OK);
  CHECK(check(cannot_swap, N(cannot_swap), 0, &r) == LIN_VIOLATION);
}

static void failed_write_never_takes_effect(void) {
  struct hist_op h[] = {put(1, 1, 1, 0, 10), fail(put(2, 1, 2, 20, 30)),
                        get(3, 1, 2, 40, 50)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
  h[2].value = 1;
  CHECK(check(h, N(h), 0, &r) == LIN_OK);
  CHECK(r.n_ops == 2); /* the failed put is dropped */
}

static void info_read_is_dropped(void) {
  /* It returned nothing, so a garbage value in the record must not matter. */
  struct hist_op h[] = {put(1, 1, 1, 0, 10), info(get(2, 1, 99, 20, 0))};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_OK);
  CHECK(r.n_ops == 1);
}

static void read_of_a_value_never_written_is_violation(void) {
  struct hist_op h[] = {put(1, 1, 1, 0, 10), put(2, 1, 2, 5, 20),
                        get(3, 1, 7, 0, 30)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
}

static void lost_acknowledged_write_is_violation(void) {
  /* v2 was acknowledged, then reads went back to v1 for good. */
  struct hist_op h[] = {put(1, 1, 1, 0, 10), put(2, 1, 2, 20, 30),
                        get(3, 1, 2, 40, 50), get(1, 1, 1, 60, 70),
                        get(2, 1, 1, 80, 90)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
}

static void read_of_absent_key_after_write_is_violation(void) {
  struct hist_op h[] = {put(1, 1, 1, 0, 10), get(2, 1, NIL, 20, 30)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
  CHECK(strstr(r.message, "->nil") != NULL);
}

static void keys_are_checked_independently(void) {
  /* Writes to k2 do not show on k1, and k1's violation is reported as k1's
   * even though k2 is fine. */
  struct hist_op h[] = {put(1, 2, 1, 0, 10), get(2, 1, NIL, 20, 30),
                        put(1, 1, 2, 40, 50), get(2, 2, 1, 60, 70),
                        get(3, 1, NIL, 80, 90)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
  CHECK(r.partition == 1 && r.n_partitions == 2);
  h[4].value = 2;
  CHECK(check(h, N(h), 0, &r) == LIN_OK);
  CHECK(r.n_partitions == 2 && r.n_ops == 5);
}

/* Eight concurrent puts then reads: the checker must find which put went
 * last, which takes backtracking. */
static size_t concurrent_puts(struct hist_op *h, uint32_t key) {
  size_t n = 0;
  for (uint32_t c = 0; c < 8; c++)
    h[n++] = put(c, key, (int64_t)c, 0, 100);
  return n;
}

static void many_concurrent_writes_resolve_to_one_order(void) {
  struct hist_op h[16];
  size_t n = concurrent_puts(h, 1);
  h[n++] = get(9, 1, 3, 200, 210);
  h[n++] = get(9, 1, 3, 220, 230);
  struct lin_report r;
  CHECK(check(h, n, 0, &r) == LIN_OK);
  h[n - 1].value = 5; /* a value that was overwritten before the first read */
  CHECK(check(h, n, 0, &r) == LIN_VIOLATION);
}

static void small_budget_on_a_hard_history_is_unknown(void) {
  struct hist_op h[16];
  size_t n = concurrent_puts(h, 4);
  h[n++] = get(9, 4, 3, 200, 210);
  struct lin_report r;
  CHECK(check(h, n, 5, &r) == LIN_UNKNOWN);
  CHECK(r.partition == 4 && r.steps == 5);
  CHECK(strstr(r.message, "budget") != NULL);
  CHECK(check(h, n, 0, &r) == LIN_OK); /* given room, it passes */
}

static void violation_outranks_unknown(void) {
  /* Partition 0 runs out of budget first; partition 1 is a short, clear
   * violation. The report must say violation, and name partition 1. */
  struct hist_op h[16];
  size_t n = concurrent_puts(h, 0);
  h[n++] = get(9, 0, 3, 200, 210);
  size_t n_hard = n;
  h[n++] = put(1, 1, 1, 300, 310);
  h[n++] = get(2, 1, NIL, 320, 330);
  /* A budget that proves partition 1 wrong but cannot settle partition 0. */
  struct lin_report r;
  CHECK(check(&h[n_hard], n - n_hard, 0, &r) == LIN_VIOLATION);
  uint64_t steps_max = r.steps;
  CHECK(check(h, n_hard, steps_max, &r) == LIN_UNKNOWN);
  CHECK(check(h, n, steps_max, &r) == LIN_VIOLATION);
  CHECK(r.partition == 1);
}

static void history_that_is_not_a_history_is_rejected(void) {
  struct hist_op h[] = {put(1, 1, 1, 50, 10)};
  struct lin_report r;
  CHECK(lin_check(h, N(h), &lin_model_kv, 0, &r) == SABHA_EINVAL);
  CHECK(strstr(r.message, "before its call") != NULL);
}

/* ---- incr ----------------------------------------------------------------
 *
 * An incr's `value` is the count it returned; a missing key counts as 0. */

static void incr_counts_on_from_a_missing_key_and_from_a_put(void) {
  struct hist_op h[] = {
      incr(1, 1, 1, 0, 10), incr(2, 1, 2, 20, 30), get(1, 1, 2, 40, 50),
      put(3, 1, 7, 60, 70), incr(1, 1, 8, 80, 90), get(2, 1, 8, 100, 110),
  };
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_OK);
  h[4].value = 3; /* counting on from the old count, as if the put were lost */
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
  CHECK(strstr(r.message, "c1 incr k1->3 [80,90]") != NULL);
}

static void concurrent_incrs_return_distinct_counts_in_any_order(void) {
  struct hist_op any_order[] = {incr(1, 1, 2, 0, 50), incr(2, 1, 1, 0, 50),
                                incr(3, 1, 3, 10, 40), get(4, 1, 3, 60, 70)};
  struct hist_op same_count[] = {incr(1, 1, 1, 0, 50), incr(2, 1, 1, 0, 50)};
  struct lin_report r;
  CHECK(check(any_order, N(any_order), 0, &r) == LIN_OK);
  CHECK(check(same_count, N(same_count), 0, &r) == LIN_VIOLATION);
}

static void incr_applied_twice_is_violation(void) {
  /* A retried incr counted twice: its answer says 1, later results show
   * that two counts took place. */
  struct hist_op read_shows[] = {incr(1, 1, 1, 0, 10), get(2, 1, 2, 20, 30)};
  struct hist_op incr_shows[] = {incr(1, 1, 1, 0, 10), incr(2, 1, 3, 20, 30)};
  struct lin_report r;
  CHECK(check(read_shows, N(read_shows), 0, &r) == LIN_VIOLATION);
  CHECK(check(incr_shows, N(incr_shows), 0, &r) == LIN_VIOLATION);
  /* The same shapes counted once pass. */
  read_shows[1].value = 1;
  incr_shows[1].value = 2;
  CHECK(check(read_shows, N(read_shows), 0, &r) == LIN_OK);
  CHECK(check(incr_shows, N(incr_shows), 0, &r) == LIN_OK);
}

static void info_incr_may_count_once_or_not_at_all(void) {
  struct hist_op counted[] = {incr(1, 1, 1, 0, 10), info(incr(2, 1, 0, 20, 0)),
                              incr(3, 1, 3, 30, 40)};
  struct hist_op not_counted[] = {incr(1, 1, 1, 0, 10),
                                  info(incr(2, 1, 0, 20, 0)),
                                  incr(3, 1, 2, 30, 40), get(1, 1, 2, 50, 60)};
  struct hist_op counted_late[] = {incr(1, 1, 1, 0, 10),
                                   info(incr(2, 1, 0, 20, 0)),
                                   get(3, 1, 1, 30, 40), get(3, 1, 2, 50, 60)};
  struct lin_report r;
  CHECK(check(counted, N(counted), 0, &r) == LIN_OK);
  CHECK(check(not_counted, N(not_counted), 0, &r) == LIN_OK);
  CHECK(check(counted_late, N(counted_late), 0, &r) == LIN_OK);
  CHECK(r.n_ops == N(counted_late)); /* the info incr is kept */
}

static void info_incr_never_counts_twice_nor_before_its_call(void) {
  struct hist_op twice[] = {incr(1, 1, 1, 0, 10), info(incr(2, 1, 0, 20, 0)),
                            get(3, 1, 3, 30, 40)};
  struct hist_op two_infos[] = {
      incr(1, 1, 1, 0, 10), info(incr(2, 1, 0, 20, 0)),
      info(incr(4, 1, 0, 20, 0)), get(3, 1, 3, 30, 40)};
  struct hist_op early[] = {incr(1, 1, 1, 0, 10), get(3, 1, 2, 20, 30),
                            info(incr(2, 1, 0, 40, 0))};
  struct lin_report r;
  CHECK(check(twice, N(twice), 0, &r) == LIN_VIOLATION);
  CHECK(check(two_infos, N(two_infos), 0, &r) == LIN_OK);
  CHECK(check(early, N(early), 0, &r) == LIN_VIOLATION);
}

/* An append counts the value one up (history.h numbers values so): from a
 * put's value, from nothing, on an expiring value; lost, applied twice or
 * seen before its call, it shows. */
static struct hist_op append(uint32_t client, uint32_t key, uint64_t call_us,
                             uint64_t return_us) {
  return op_new(client, HIST_APPEND, key, NIL, call_us, return_us);
}

static void append_counts_the_value_up_once(void) {
  struct hist_op ok[] = {put(1, 1, 7000000, 0, 10), append(2, 1, 20, 30),
                         append(3, 1, 25, 35),      get(1, 1, 7000002, 40, 50),
                         append(2, 2, 60, 70),      get(3, 2, 1, 80, 90)};
  struct lin_report r;
  CHECK(check(ok, N(ok), 0, &r) == LIN_OK);
  ok[3].value = 7000001; /* one append lost */
  CHECK(check(ok, N(ok), 0, &r) == LIN_VIOLATION);
  ok[3].value = 7000003; /* one applied twice */
  CHECK(check(ok, N(ok), 0, &r) == LIN_VIOLATION);
  struct hist_op maybe[] = {
      put(1, 1, 7000000, 0, 10), info(append(2, 1, 20, 0)),
      get(3, 1, 7000000, 30, 40), get(3, 1, 7000001, 50, 60)};
  CHECK(check(maybe, N(maybe), 0, &r) == LIN_OK);
  maybe[2].value = 7000001;
  maybe[3].value = 7000000; /* seen, then unseen */
  CHECK(check(maybe, N(maybe), 0, &r) == LIN_VIOLATION);
  struct hist_op early[] = {put(1, 1, 7000000, 0, 10),
                            get(3, 1, 7000001, 20, 30), append(2, 1, 40, 50)};
  CHECK(check(early, N(early), 0, &r) == LIN_VIOLATION);
  /* On a value that may expire: still there (one up, still expiring), or
   * gone first (a fresh value of one byte). */
  struct hist_op ttl[] = {put_ttl(1, 1, 7000000, 0, 10), append(2, 1, 20, 30),
                          get(3, 1, 7000001, 40, 50)};
  CHECK(check(ttl, N(ttl), 0, &r) == LIN_OK);
  ttl[2].value = 1;
  CHECK(check(ttl, N(ttl), 0, &r) == LIN_OK);
  ttl[2].value = 7000000;
  CHECK(check(ttl, N(ttl), 0, &r) == LIN_VIOLATION);
}

/* ---- expiry --------------------------------------------------------------
 *
 * A value put with ttl may vanish at any instant after the put, or never,
 * but once gone it comes back only through a write. */

static void expiring_value_may_vanish_at_any_moment_or_never(void) {
  struct hist_op at_once[] = {put_ttl(1, 1, 1, 0, 10), get(2, 1, NIL, 20, 30)};
  struct hist_op later[] = {put_ttl(1, 1, 1, 0, 10), get(2, 1, 1, 20, 30),
                            get(2, 1, 1, 40, 50), get(3, 1, NIL, 60, 70),
                            get(3, 1, NIL, 80, 90)};
  struct hist_op never[] = {put_ttl(1, 1, 1, 0, 10), get(2, 1, 1, 20, 30),
                            get(2, 1, 1, 1000000, 1000010)};
  struct lin_report r;
  CHECK(check(at_once, N(at_once), 0, &r) == LIN_OK);
  CHECK(check(later, N(later), 0, &r) == LIN_OK);
  CHECK(check(never, N(never), 0, &r) == LIN_OK);
}

static void expired_value_that_comes_back_without_a_write_is_violation(void) {
  /* One node's clock saw v1 expire; another's, behind, served it again. */
  struct hist_op h[] = {put_ttl(1, 1, 1, 0, 10), get(2, 1, 1, 20, 30),
                        get(3, 1, NIL, 40, 50), get(2, 1, 1, 60, 70)};
  struct hist_op overlapping[] = {put_ttl(1, 1, 1, 0, 10),
                                  get(3, 1, NIL, 40, 70), get(2, 1, 1, 50, 60)};
  struct lin_report r;
  CHECK(check(h, N(h), 0, &r) == LIN_VIOLATION);
  CHECK(strstr(r.message, "c2 get k1->v1 [60,70]") != NULL);
  /* Reads that overlap may have seen it before it vanished. */
  CHECK(check(overlapping, N(overlapping), 0, &r) == LIN_OK);
}

static void expired_key_written_again_reads_the_new_value(void) {
  struct hist_op rewritten[] = {put_ttl(1, 1, 1, 0, 10), get(2, 1, NIL, 20, 30),
                                put(1, 1, 2, 40, 50), get(2, 1, 2, 60, 70)};
  struct hist_op same_value[] = {
      put_ttl(1, 1, 1, 0, 10), get(2, 1, NIL, 20, 30), put_ttl(1, 1, 1, 40, 50),
      get(2, 1, 1, 60, 70), get(3, 1, NIL, 80, 90)};
  /* A write of unknown outcome may be what brought it back. */
  struct hist_op by_info_write[] = {
      put_ttl(1, 1, 1, 0, 10), get(2, 1, NIL, 20, 30),
      info(put_ttl(3, 1, 1, 25, 0)), get(2, 1, 1, 60, 70)};
  struct lin_report r;
  CHECK(check(rewritten, N(rewritten), 0, &r) == LIN_OK);
  CHECK(check(same_value, N(same_value), 0, &r) == LIN_OK);
  CHECK(check(by_info_write, N(by_info_write), 0, &r) == LIN_OK);
  /* But not one called after the read that saw it back. */
  by_info_write[2].call_us = 75;
  CHECK(check(by_info_write, N(by_info_write), 0, &r) == LIN_VIOLATION);
}

static void get_nil_after_a_put_without_ttl_is_still_violation(void) {
  struct hist_op no_ttl[] = {put(1, 1, 1, 0, 10), get(2, 1, NIL, 20, 30)};
  /* A put without ttl ends the expiry of the one before. */
  struct hist_op ttl_overwritten[] = {
      put_ttl(1, 1, 1, 0, 10), put(1, 1, 2, 20, 30), get(2, 1, NIL, 40, 50)};
  struct hist_op ttl_last[] = {put(1, 1, 1, 0, 10), put_ttl(1, 1, 2, 20, 30),
                               get(2, 1, NIL, 40, 50)};
  struct lin_report r;
  CHECK(check(no_ttl, N(no_ttl), 0, &r) == LIN_VIOLATION);
  CHECK(check(ttl_overwritten, N(ttl_overwritten), 0, &r) == LIN_VIOLATION);
  CHECK(check(ttl_last, N(ttl_last), 0, &r) == LIN_OK);
}

static void cas_that_swaps_an_expiring_value_clears_its_expiry(void) {
  struct hist_op then_nil[] = {put_ttl(1, 1, 1, 0, 10),
                               cas(2, 1, 1, 2, 1, 20, 30),
                               get(3, 1, NIL, 40, 50)};
  /* A swap proves the value was still there. */
  struct hist_op after_gone[] = {put_ttl(1, 1, 1, 0, 10),
                                 get(3, 1, NIL, 20, 30),
                                 cas(2, 1, 1, 2, 1, 40, 50)};
  struct lin_report r;
  CHECK(check(then_nil, N(then_nil), 0, &r) == LIN_VIOLATION);
  CHECK(check(after_gone, N(after_gone), 0, &r) == LIN_VIOLATION);
  then_nil[2].value = 2;
  CHECK(check(then_nil, N(then_nil), 0, &r) == LIN_OK);
}

static void cas_refused_on_its_expected_expiring_value_says_it_vanished(void) {
  struct hist_op then_nil[] = {put_ttl(1, 1, 1, 0, 10),
                               cas(2, 1, 1, 2, 0, 20, 30),
                               get(3, 1, NIL, 40, 50)};
  struct hist_op then_back[] = {put_ttl(1, 1, 1, 0, 10),
                                cas(2, 1, 1, 2, 0, 20, 30),
                                get(3, 1, 1, 40, 50)};
  /* A cas that expected another value says nothing about expiry. */
  struct hist_op other[] = {put_ttl(1, 1, 1, 0, 10), cas(2, 1, 5, 2, 0, 20, 30),
                            get(3, 1, 1, 40, 50), get(3, 1, NIL, 60, 70)};
  struct lin_report r;
  CHECK(check(then_nil, N(then_nil), 0, &r) == LIN_OK);
  CHECK(check(then_back, N(then_back), 0, &r) == LIN_VIOLATION);
  CHECK(check(other, N(other), 0, &r) == LIN_OK);
  /* Without ttl the refusal is simply wrong. */
  then_nil[0].flags = 0;
  CHECK(check(then_nil, N(then_nil), 0, &r) == LIN_VIOLATION);
}

static void cas_on_absent_swaps_only_once_the_value_vanished(void) {
  /* As SET NX: it swaps only if v1 had gone, and v2 does not expire. */
  struct hist_op swaps[] = {put_ttl(1, 1, 1, 0, 10),
                            cas(2, 1, NIL, 2, 1, 20, 30), get(3, 1, 2, 40, 50),
                            get(3, 1, 2, 60, 70)};
  struct hist_op swaps_then_back[] = {put_ttl(1, 1, 1, 0, 10),
                                      cas(2, 1, NIL, 2, 1, 20, 30),
                                      get(3, 1, 1, 40, 50)};
  struct hist_op refused[] = {put_ttl(1, 1, 1, 0, 10),
                              cas(2, 1, NIL, 2, 0, 20, 30),
                              get(3, 1, 1, 40, 50)};
  struct hist_op refused_after_gone[] = {put_ttl(1, 1, 1, 0, 10),
                                         get(3, 1, NIL, 20, 30),
                                         cas(2, 1, NIL, 2, 0, 40, 50)};
  struct lin_report r;
  CHECK(check(swaps, N(swaps), 0, &r) == LIN_OK);
  CHECK(check(swaps_then_back, N(swaps_then_back), 0, &r) == LIN_VIOLATION);
  CHECK(check(refused, N(refused), 0, &r) == LIN_OK);
  CHECK(check(refused_after_gone, N(refused_after_gone), 0, &r) ==
        LIN_VIOLATION);
  swaps[3].value = NIL; /* the swapped-in value does not expire */
  CHECK(check(swaps, N(swaps), 0, &r) == LIN_VIOLATION);
}

static void info_cas_on_an_expiring_value_may_swap_or_not(void) {
  struct hist_op swapped[] = {put_ttl(1, 1, 1, 0, 10),
                              info(cas(2, 1, 1, 2, 0, 20, 0)),
                              get(3, 1, 2, 30, 40), get(3, 1, 2, 50, 60)};
  struct hist_op vanished[] = {put_ttl(1, 1, 1, 0, 10),
                               info(cas(2, 1, 1, 2, 0, 20, 0)),
                               get(3, 1, NIL, 30, 40)};
  struct hist_op nx_swapped[] = {
      put_ttl(1, 1, 1, 0, 10), get(3, 1, NIL, 20, 30),
      info(cas(2, 1, NIL, 2, 0, 40, 0)), get(3, 1, 2, 50, 60)};
  struct lin_report r;
  CHECK(check(swapped, N(swapped), 0, &r) == LIN_OK);
  CHECK(check(vanished, N(vanished), 0, &r) == LIN_OK);
  CHECK(check(nx_swapped, N(nx_swapped), 0, &r) == LIN_OK);
  swapped[3].value = NIL; /* a swap clears the expiry */
  CHECK(check(swapped, N(swapped), 0, &r) == LIN_VIOLATION);
}

static void incr_keeps_expiry_and_a_fresh_count_has_none(void) {
  struct hist_op keeps[] = {put_ttl(1, 1, 5, 0, 10), incr(2, 1, 6, 20, 30),
                            get(3, 1, NIL, 40, 50)};
  struct hist_op plain[] = {put(1, 1, 5, 0, 10), incr(2, 1, 6, 20, 30),
                            get(3, 1, NIL, 40, 50)};
  /* 1 from an expiring v5: v5 had vanished; the new count does not expire. */
  struct hist_op restarted[] = {put_ttl(1, 1, 5, 0, 10), incr(2, 1, 1, 20, 30),
                                get(3, 1, 1, 40, 50)};
  struct hist_op restarted_then_nil[] = {
      put_ttl(1, 1, 5, 0, 10), incr(2, 1, 1, 20, 30), get(3, 1, NIL, 40, 50)};
  /* From an expiring v0 a 1 is either: still expiring, or a new count. */
  struct hist_op from_zero[] = {put_ttl(1, 1, 0, 0, 10), incr(2, 1, 1, 20, 30),
                                get(3, 1, NIL, 40, 50)};
  struct lin_report r;
  CHECK(check(keeps, N(keeps), 0, &r) == LIN_OK);
  CHECK(check(plain, N(plain), 0, &r) == LIN_VIOLATION);
  CHECK(check(restarted, N(restarted), 0, &r) == LIN_OK);
  CHECK(check(restarted_then_nil, N(restarted_then_nil), 0, &r) ==
        LIN_VIOLATION);
  CHECK(check(from_zero, N(from_zero), 0, &r) == LIN_OK);
}

static void info_incr_on_an_expiring_value_may_find_it_there_or_gone(void) {
  struct hist_op there[] = {put_ttl(1, 1, 5, 0, 10), info(incr(2, 1, 0, 20, 0)),
                            get(3, 1, 6, 30, 40), get(3, 1, NIL, 50, 60)};
  struct hist_op gone[] = {put_ttl(1, 1, 5, 0, 10), info(incr(2, 1, 0, 20, 0)),
                           get(3, 1, 1, 30, 40), get(3, 1, 1, 50, 60)};
  struct hist_op gone_then_nil[] = {
      put_ttl(1, 1, 5, 0, 10), info(incr(2, 1, 0, 20, 0)), get(3, 1, 1, 30, 40),
      get(3, 1, NIL, 50, 60)};
  struct hist_op twice[] = {put_ttl(1, 1, 5, 0, 10), info(incr(2, 1, 0, 20, 0)),
                            get(3, 1, 7, 30, 40)};
  struct lin_report r;
  CHECK(check(there, N(there), 0, &r) == LIN_OK);
  CHECK(check(gone, N(gone), 0, &r) == LIN_OK);
  CHECK(check(gone_then_nil, N(gone_then_nil), 0, &r) == LIN_VIOLATION);
  CHECK(check(twice, N(twice), 0, &r) == LIN_VIOLATION);
}

static void ttl_where_the_model_cannot_judge_it_is_rejected(void) {
  struct hist_op on_get[] = {get(1, 1, NIL, 0, 10)};
  struct hist_op of_nil[] = {put_ttl(1, 1, NIL, 0, 10)};
  struct hist_op too_big[] = {put_ttl(1, 1, INT64_C(1) << 62, 0, 10)};
  struct hist_op unknown_flag[] = {put(1, 1, 1, 0, 10)};
  on_get[0].flags = HIST_TTL;
  unknown_flag[0].flags = 2;
  struct lin_report r;
  CHECK(lin_check(on_get, 1, &lin_model_kv, 0, &r) == SABHA_EINVAL);
  CHECK(strstr(r.message, "not a put") != NULL);
  CHECK(lin_check(of_nil, 1, &lin_model_kv, 0, &r) == SABHA_EINVAL);
  CHECK(lin_check(too_big, 1, &lin_model_kv, 0, &r) == SABHA_EINVAL);
  CHECK(strstr(r.message, "2^62") != NULL);
  CHECK(lin_check(unknown_flag, 1, &lin_model_kv, 0, &r) == SABHA_EINVAL);
  too_big[0].value--;
  CHECK(check(too_big, 1, 0, &r) == LIN_OK);
}

static struct hist_gen_config random_config(uint64_t seed) {
  struct hist_gen_config config = {
      .n_clients = 2 + (uint32_t)(seed % 9),
      .n_keys = 1 + (uint32_t)(seed % 7),
      .latency_us_max = 100,
      .think_us_max = 20,
      .chance_info = seed % 3 == 0 ? 0.05 : 0.0,
      .chance_fail = seed % 2 == 0 ? 0.05 : 0.0,
  };
  return config;
}

static void random_linearizable_histories_are_ok(void) {
  enum { N_OPS = 1000 };
  static struct hist_op h[N_OPS];
  for (uint64_t seed = 1; seed <= 60; seed++) {
    struct prng prng;
    prng_seed(&prng, seed);
    struct hist_gen_config config = random_config(seed);
    hist_gen_linearizable(&prng, &config, h, N_OPS);
    struct lin_report r;
    enum lin_result result = check(h, N_OPS, 0, &r);
    if (result != LIN_OK)
      fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, r.message);
    CHECK(result == LIN_OK);
    CHECK(r.n_partitions <= config.n_keys);
  }
}

static void random_history_with_a_foreign_read_is_violation(void) {
  enum { N_OPS = 1000 };
  static struct hist_op h[N_OPS];
  for (uint64_t seed = 1; seed <= 60; seed++) {
    struct prng prng;
    prng_seed(&prng, seed);
    struct hist_gen_config config = random_config(seed);
    hist_gen_linearizable(&prng, &config, h, N_OPS);
    /* Value ids at or above N_OPS were never written. */
    size_t i = (size_t)prng_below(&prng, N_OPS);
    while (h[i].kind != HIST_GET || h[i].status != HIST_OK)
      i = (i + 1) % N_OPS;
    h[i].value = N_OPS + 7;
    struct lin_report r;
    CHECK(check(h, N_OPS, 0, &r) == LIN_VIOLATION);
    CHECK(r.partition == h[i].key);
  }
}

/* ---- random histories with incr and expiry ------------------------------ */

static struct hist_gen_config random_config_incr_ttl(uint64_t seed) {
  struct hist_gen_config config = random_config(seed);
  config.weight_put = 3;
  config.weight_get = 4;
  config.weight_cas = 1 + (uint32_t)(seed % 2);
  config.weight_incr = 2 + (uint32_t)(seed % 3);
  config.chance_ttl = seed % 4 == 0 ? 0.0 : 0.6;
  config.ttl_us_max = (seed % 3) * 150; /* 0: gone right after the put */
  return config;
}

static void random_histories_with_incr_and_expiry_are_ok(void) {
  enum { N_OPS = 1000 };
  static struct hist_op h[N_OPS];
  size_t n_incr = 0, n_ttl = 0, n_nil_after_ttl = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    struct prng prng;
    prng_seed(&prng, seed);
    struct hist_gen_config config = random_config_incr_ttl(seed);
    hist_gen_linearizable(&prng, &config, h, N_OPS);
    struct lin_report r;
    enum lin_result result = check(h, N_OPS, 0, &r);
    if (result != LIN_OK)
      fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, r.message);
    CHECK(result == LIN_OK);
    for (size_t i = 0; i < N_OPS; i++) {
      n_incr += h[i].kind == HIST_INCR && h[i].status == HIST_OK;
      n_ttl += (h[i].flags & HIST_TTL) != 0;
      n_nil_after_ttl += h[i].kind == HIST_GET && h[i].status == HIST_OK &&
                         h[i].value == NIL && config.chance_ttl > 0;
    }
  }
  /* The mix must really have had incrs, expiring puts and empty reads. */
  CHECK(n_incr > 5000 && n_ttl > 5000 && n_nil_after_ttl > 1000);
}

static void random_history_with_an_incr_applied_twice_is_violation(void) {
  enum { N_OPS = 1000 };
  static struct hist_op h[N_OPS];
  size_t n_shown = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    struct prng prng;
    prng_seed(&prng, seed);
    /* Only incr and get, so nothing else could explain an extra count. */
    struct hist_gen_config config = random_config(seed);
    config.weight_get = 1 + (uint32_t)(seed % 3);
    config.weight_incr = 2;
    config.chance_info = 0.0;
    bool shown = hist_gen_with_fault(&prng, &config, HIST_GEN_FAULT_INCR_TWICE,
                                     h, N_OPS);
    if (!shown)
      continue;
    n_shown++;
    struct lin_report r;
    CHECK(check(h, N_OPS, 0, &r) == LIN_VIOLATION);
  }
  CHECK(n_shown >= 55);
}

static void random_history_with_a_resurrected_value_is_violation(void) {
  enum { N_OPS = 1000 };
  static struct hist_op h[N_OPS];
  size_t n_shown = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    struct prng prng;
    prng_seed(&prng, seed);
    struct hist_gen_config config = random_config(seed);
    config.weight_put = 2;
    config.weight_get = 6;
    config.weight_cas = (uint32_t)(seed % 2);
    config.chance_ttl = 0.8;
    config.ttl_us_max = 100 + (seed % 4) * 100;
    bool shown =
        hist_gen_with_fault(&prng, &config, HIST_GEN_FAULT_RESURRECT, h, N_OPS);
    if (!shown)
      continue;
    n_shown++;
    struct lin_report r;
    CHECK(check(h, N_OPS, 0, &r) == LIN_VIOLATION);
  }
  CHECK(n_shown >= 50);
}

/* ---- a brute-force oracle for small histories ----------------------------
 *
 * The checker prunes its search in ways that need an argument (the memo,
 * states nobody observes, interchangeable info writes, expiry resolved at
 * the next op). This oracle needs none: it tries every order of every
 * subset, straight from the definition, with expiry as a step of its own
 * that may come between any two ops while a value may expire. A sequence is
 * legal when each ok op is in it, no op comes after one that was called
 * after it returned, and the sequential store gives every ok op its
 * recorded output. Exponential, so only for a handful of ops; recursive,
 * with the depth bounded by twice ORACLE_OPS_MAX (an expiry is never
 * followed by another). */

#define ORACLE_OPS_MAX 8

struct oracle_state {
  int64_t value; /* NIL: absent */
  bool expiring;
};

static bool oracle_step(struct oracle_state *st, const struct hist_op *op) {
  bool observed = op->status == HIST_OK;
  switch (op->kind) {
  case HIST_PUT:
    st->value = op->value;
    st->expiring = (op->flags & HIST_TTL) != 0;
    return true;
  case HIST_GET:
    return !observed || st->value == op->value;
  case HIST_CAS:
    if (st->value == op->expected) {
      st->value = op->value;
      st->expiring = false;
      return !observed || op->output == 1;
    }
    return !observed || op->output == 0;
  case HIST_APPEND: /* a byte more, as history.h numbers values; no output */
    if (st->value == NIL) {
      st->value = 1;
      st->expiring = false;
    } else {
      st->value++;
    }
    return true;
  default: /* incr */
    if (st->value == NIL) {
      st->value = 1;
      st->expiring = false;
    } else {
      st->value++;
    }
    return !observed || op->value == st->value;
  }
}

static bool oracle_search(const struct hist_op *h, size_t n, unsigned placed,
                          struct oracle_state state) {
  bool all_ok_placed = true;
  for (size_t i = 0; i < n; i++) {
    if (h[i].status == HIST_OK && !(placed & (1u << i)))
      all_ok_placed = false;
  }
  if (all_ok_placed)
    return true;
  if (state.expiring) {
    struct oracle_state gone = {NIL, false};
    if (oracle_search(h, n, placed, gone))
      return true;
  }
  for (size_t i = 0; i < n; i++) {
    if ((placed & (1u << i)) || h[i].status == HIST_FAIL ||
        (h[i].status == HIST_INFO && h[i].kind == HIST_GET))
      continue;
    /* Every ok op that returned before i was called goes first. */
    bool free_to_go = true;
    for (size_t j = 0; j < n; j++) {
      if (!(placed & (1u << j)) && h[j].status == HIST_OK &&
          h[j].return_us < h[i].call_us)
        free_to_go = false;
    }
    struct oracle_state next = state;
    if (free_to_go && oracle_step(&next, &h[i]) &&
        oracle_search(h, n, placed | (1u << i), next))
      return true;
  }
  return false;
}

/* Per key, as the checker does; keys are 0 and 1 here. */
static bool oracle_linearizable(const struct hist_op *h, size_t n) {
  for (uint32_t key = 0; key < 2; key++) {
    struct hist_op part[ORACLE_OPS_MAX];
    size_t n_part = 0;
    for (size_t i = 0; i < n; i++) {
      if (h[i].key == key)
        part[n_part++] = h[i];
    }
    struct oracle_state empty = {NIL, false};
    if (!oracle_search(part, n_part, 0, empty))
      return false;
  }
  return true;
}

static int64_t random_value(struct prng *prng) {
  return (int64_t)prng_below(prng, 4) - 1; /* nil, v0, v1, v2 */
}

/* One random op: put, get or cas; with `kinds` ORACLE_KINDS_ALL also incr
 * and puts with ttl, and with ORACLE_KINDS_APPEND appends too. */
enum { ORACLE_KINDS_BASIC, ORACLE_KINDS_ALL, ORACLE_KINDS_APPEND };
static struct hist_op random_op(struct prng *prng, uint32_t client,
                                uint32_t key, uint64_t call_us,
                                uint64_t return_us, int kinds) {
  uint64_t roll = prng_below(prng, kinds == ORACLE_KINDS_APPEND ? 7
                                   : kinds == ORACLE_KINDS_ALL  ? 5
                                                                : 3);
  if (roll >= 5)
    return op_new(client, HIST_APPEND, key, NIL, call_us, return_us);
  if (roll == 0)
    return put(client, key, random_value(prng), call_us, return_us);
  if (roll == 1)
    return get(client, key, random_value(prng), call_us, return_us);
  if (roll == 2)
    return cas(client, key, random_value(prng), random_value(prng),
               (int32_t)prng_below(prng, 2), call_us, return_us);
  if (roll == 3) /* counts 1 to 3, enough to meet v0..v2 plus one */
    return incr(client, key, 1 + (int64_t)prng_below(prng, 3), call_us,
                return_us);
  return put_ttl(client, key, (int64_t)prng_below(prng, 3), call_us, return_us);
}

/* Checks `rounds` random histories of up to n_ops_max ops against the
 * oracle, with the kv model as shipped and without the hints that enable
 * the checker's shortcuts: observes() (state merging, blind writes) and
 * read_only() (reads placed at once). Counts the verdicts. */
static void agree_with_brute_force(uint64_t seed, int rounds, size_t n_ops_max,
                                   int kinds, size_t *n_violations,
                                   size_t *n_with_info) {
  struct prng prng;
  prng_seed(&prng, seed);
  *n_violations = 0;
  *n_with_info = 0;
  struct lin_model no_observes = lin_model_kv, no_reads = lin_model_kv;
  struct lin_model plain = lin_model_kv;
  no_observes.observes = NULL;
  no_reads.read_only = NULL;
  plain.observes = NULL;
  plain.read_only = NULL;
  const struct lin_model *models[] = {&lin_model_kv, &no_observes, &no_reads,
                                      &plain};
  for (int round = 0; round < rounds; round++) {
    struct hist_op h[ORACLE_OPS_MAX];
    size_t n = 1 + (size_t)prng_below(&prng, n_ops_max);
    bool two_keys = prng_chance(&prng, 0.2);
    bool any_info = false;
    for (size_t i = 0; i < n; i++) {
      /* Few distinct times, so that ties between calls and returns are
       * common; few values, so that writes repeat values. */
      uint64_t call_us = prng_below(&prng, 12);
      uint64_t return_us = call_us + prng_below(&prng, 8);
      uint32_t key = two_keys ? (uint32_t)prng_below(&prng, 2) : 0;
      h[i] = random_op(&prng, (uint32_t)i, key, call_us, return_us, kinds);
      double status = prng_unit(&prng);
      if (status < 0.2) {
        h[i] = info(h[i]);
        any_info = true;
      } else if (status < 0.27) {
        h[i] = fail(h[i]);
      }
    }
    bool want = oracle_linearizable(h, n);
    for (size_t m = 0; m < N(models); m++) {
      struct lin_report r;
      int rc = lin_check(h, n, models[m], 0, &r);
      CHECK(rc == 0);
      if (r.result != (want ? LIN_OK : LIN_VIOLATION)) {
        fprintf(stderr, "round %d, model %zu: checker says %d, oracle %s\n",
                round, m, (int)r.result, want ? "linearizable" : "not");
        hist_write_jsonl(stderr, h, n);
      }
      CHECK(r.result == (want ? LIN_OK : LIN_VIOLATION));
    }
    *n_violations += !want;
    *n_with_info += any_info;
  }
}

static void random_small_histories_agree_with_brute_force(void) {
  size_t n_violations, n_with_info;
  agree_with_brute_force(7, 100000, ORACLE_OPS_MAX, ORACLE_KINDS_BASIC,
                         &n_violations, &n_with_info);
  /* Both verdicts, and info ops, must have been exercised. */
  CHECK(n_violations > 10000 && n_violations < 90000);
  CHECK(n_with_info > 10000);
}

static void
random_small_histories_with_incr_and_expiry_agree_with_brute_force(void) {
  size_t n_violations, n_with_info;
  agree_with_brute_force(11, 100000, ORACLE_OPS_MAX, ORACLE_KINDS_ALL,
                         &n_violations, &n_with_info);
  CHECK(n_violations > 10000 && n_violations < 90000);
  CHECK(n_with_info > 10000);
}

/* Appends (values counted up, no output: history.h) among all the rest,
 * incrs and expiring values included: the checker's shortcuts (appends of
 * unknown outcome taken as interchangeable, an append as a shift of the
 * values) must give the verdict of trying every order. */
static void random_small_histories_with_appends_agree_with_brute_force(void) {
  size_t n_violations, n_with_info;
  agree_with_brute_force(13, 100000, ORACLE_OPS_MAX, ORACLE_KINDS_APPEND,
                         &n_violations, &n_with_info);
  CHECK(n_violations > 10000 && n_violations < 90000);
  CHECK(n_with_info > 10000);
}

static const struct test tests[] = {
    TEST(empty_history_is_ok),
    TEST(sequential_history_is_ok),
    TEST(concurrent_get_may_see_the_old_or_the_new_value),
    TEST(stale_read_after_completed_write_is_violation),
    TEST(intervals_that_touch_are_concurrent),
    TEST(cas_follows_its_specification),
    TEST(cas_with_a_wrong_output_is_violation),
    TEST(concurrent_cas_race_has_one_winner),
    TEST(info_write_may_or_may_not_take_effect),
    TEST(info_write_is_not_seen_before_its_call_nor_unseen_after),
    TEST(info_cas_may_swap_or_not),
    TEST(failed_write_never_takes_effect),
    TEST(info_read_is_dropped),
    TEST(read_of_a_value_never_written_is_violation),
    TEST(lost_acknowledged_write_is_violation),
    TEST(read_of_absent_key_after_write_is_violation),
    TEST(keys_are_checked_independently),
    TEST(many_concurrent_writes_resolve_to_one_order),
    TEST(small_budget_on_a_hard_history_is_unknown),
    TEST(violation_outranks_unknown),
    TEST(history_that_is_not_a_history_is_rejected),
    TEST(incr_counts_on_from_a_missing_key_and_from_a_put),
    TEST(concurrent_incrs_return_distinct_counts_in_any_order),
    TEST(incr_applied_twice_is_violation),
    TEST(info_incr_may_count_once_or_not_at_all),
    TEST(info_incr_never_counts_twice_nor_before_its_call),
    TEST(append_counts_the_value_up_once),
    TEST(expiring_value_may_vanish_at_any_moment_or_never),
    TEST(expired_value_that_comes_back_without_a_write_is_violation),
    TEST(expired_key_written_again_reads_the_new_value),
    TEST(get_nil_after_a_put_without_ttl_is_still_violation),
    TEST(cas_that_swaps_an_expiring_value_clears_its_expiry),
    TEST(cas_refused_on_its_expected_expiring_value_says_it_vanished),
    TEST(cas_on_absent_swaps_only_once_the_value_vanished),
    TEST(info_cas_on_an_expiring_value_may_swap_or_not),
    TEST(incr_keeps_expiry_and_a_fresh_count_has_none),
    TEST(info_incr_on_an_expiring_value_may_find_it_there_or_gone),
    TEST(ttl_where_the_model_cannot_judge_it_is_rejected),
    TEST(random_linearizable_histories_are_ok),
    TEST(random_history_with_a_foreign_read_is_violation),
    TEST(random_histories_with_incr_and_expiry_are_ok),
    TEST(random_history_with_an_incr_applied_twice_is_violation),
    TEST(random_history_with_a_resurrected_value_is_violation),
    TEST(random_small_histories_agree_with_brute_force),
    TEST(random_small_histories_with_incr_and_expiry_agree_with_brute_force),
    TEST(random_small_histories_with_appends_agree_with_brute_force),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
