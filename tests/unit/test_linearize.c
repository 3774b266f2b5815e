/* Unit tests for the linearizability checker (src/check/linearize.c).
 *
 * A checker that only ever says "ok" is worse than none, so every kind of
 * anomaly the simulator could produce (stale read, lost write, a read of a
 * value nobody wrote, a lying cas) has a case that must be caught, next to a
 * case of the same shape that must pass. Random histories that are
 * linearizable by construction (check/histgen.h) must pass, and the same
 * histories with one read corrupted must fail.
 *
 * Run with a test name as the argument to run only that test. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/histgen.h"
#include "check/history.h"
#include "check/linearize.h"
#include "core/prng.h"
#include "sabha/error.h"
#include "check.h"

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

static struct hist_op info(struct hist_op op) {
  op.status = HIST_INFO;
  op.return_us = 0; /* meaningless for info: make sure nothing reads it */
  op.output = 0;
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

/* ---- a brute-force oracle for small histories ----------------------------
 *
 * The checker prunes its search in ways that need an argument (the memo,
 * states nobody observes, interchangeable info writes). This oracle needs
 * none: it tries every order of every subset, straight from the definition.
 * A sequence is legal when each ok op is in it, no op comes after one that
 * was called after it returned, and the sequential store gives every ok op
 * its recorded output. Exponential, so only for a handful of ops; recursive,
 * with the depth bounded by ORACLE_OPS_MAX. */

#define ORACLE_OPS_MAX 8

static bool oracle_step(int64_t *state, const struct hist_op *op) {
  bool observed = op->status == HIST_OK;
  switch (op->kind) {
  case HIST_PUT:
    *state = op->value;
    return true;
  case HIST_GET:
    return !observed || *state == op->value;
  default:
    if (*state == op->expected) {
      *state = op->value;
      return !observed || op->output == 1;
    }
    return !observed || op->output == 0;
  }
}

static bool oracle_search(const struct hist_op *h, size_t n, unsigned placed,
                          int64_t state) {
  bool all_ok_placed = true;
  for (size_t i = 0; i < n; i++) {
    if (h[i].status == HIST_OK && !(placed & (1u << i)))
      all_ok_placed = false;
  }
  if (all_ok_placed)
    return true;
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
    int64_t next = state;
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
    if (!oracle_search(part, n_part, 0, HIST_NIL))
      return false;
  }
  return true;
}

static int64_t random_value(struct prng *prng) {
  return (int64_t)prng_below(prng, 4) - 1; /* nil, v0, v1, v2 */
}

static void random_small_histories_agree_with_brute_force(void) {
  struct prng prng;
  prng_seed(&prng, 7);
  size_t n_violations = 0, n_with_info = 0;
  for (int round = 0; round < 100000; round++) {
    struct hist_op h[ORACLE_OPS_MAX];
    size_t n = 1 + (size_t)prng_below(&prng, ORACLE_OPS_MAX);
    bool two_keys = prng_chance(&prng, 0.2);
    bool any_info = false;
    for (size_t i = 0; i < n; i++) {
      /* Few distinct times, so that ties between calls and returns are
       * common; few values, so that writes repeat values. */
      uint64_t call_us = prng_below(&prng, 12);
      uint64_t return_us = call_us + prng_below(&prng, 8);
      uint32_t key = two_keys ? (uint32_t)prng_below(&prng, 2) : 0;
      uint64_t roll = prng_below(&prng, 3);
      if (roll == 0)
        h[i] = put((uint32_t)i, key, random_value(&prng), call_us, return_us);
      else if (roll == 1)
        h[i] = get((uint32_t)i, key, random_value(&prng), call_us, return_us);
      else
        h[i] = cas((uint32_t)i, key, random_value(&prng), random_value(&prng),
                   (int32_t)prng_below(&prng, 2), call_us, return_us);
      double status = prng_unit(&prng);
      if (status < 0.2) {
        h[i] = info(h[i]);
        any_info = true;
      } else if (status < 0.27) {
        h[i] = fail(h[i]);
      }
    }
    bool want = oracle_linearizable(h, n);
    /* The kv model as shipped, and without the hints that enable the
     * checker's shortcuts: observes() (state merging, blind writes) and
     * read_only() (reads placed at once). */
    struct lin_model no_observes = lin_model_kv, no_reads = lin_model_kv;
    struct lin_model plain = lin_model_kv;
    no_observes.observes = NULL;
    no_reads.read_only = NULL;
    plain.observes = NULL;
    plain.read_only = NULL;
    const struct lin_model *models[] = {&lin_model_kv, &no_observes, &no_reads,
                                        &plain};
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
    n_violations += !want;
    n_with_info += any_info;
  }
  /* Both verdicts, and info ops, must have been exercised. */
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
    TEST(random_linearizable_histories_are_ok),
    TEST(random_history_with_a_foreign_read_is_violation),
    TEST(random_small_histories_agree_with_brute_force),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
