/* Tests of the replicated key-value state machine (src/sm/kv.h): the
 * command format, exactly-once sessions, the applied-operation set, and
 * snapshots, including malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/prng.h"
#include "sabha/error.h"
#include "sm/kv.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const struct kv_limits limits = {
    .keys_max = 4, .clients_max = 3, .op_ids_max = 20};

static int apply(struct kv *kv, struct kv_cmd cmd, struct kv_result *res) {
  uint8_t buf[KV_CMD_SIZE_BYTES];
  struct kv_cmd decoded;
  kv_cmd_encode(&cmd, buf);
  return kv_apply(kv, buf, sizeof buf, &decoded, res);
}

static struct kv_cmd put(uint32_t client, uint64_t seq, uint64_t op,
                         uint32_t key, int64_t value) {
  return (struct kv_cmd){.kind = KV_CMD_PUT,
                         .client = client,
                         .seq = seq,
                         .op_id = op,
                         .key = key,
                         .value = value,
                         .expected = KV_NIL};
}

static struct kv_cmd cas(uint32_t client, uint64_t seq, uint64_t op,
                         uint32_t key, int64_t expected, int64_t value) {
  return (struct kv_cmd){.kind = KV_CMD_CAS,
                         .client = client,
                         .seq = seq,
                         .op_id = op,
                         .key = key,
                         .value = value,
                         .expected = expected};
}

static void kv_command_round_trips_and_rejects_malformed_bytes(void) {
  struct kv_cmd in = cas(2, 77, 5, 3, -1, 123456789012345ll), out;
  uint8_t buf[KV_CMD_SIZE_BYTES];
  kv_cmd_encode(&in, buf);
  CHECK(buf[0] == KV_FORMAT_VERSION);
  CHECK(kv_cmd_decode(buf, sizeof buf, &out) == 0);
  CHECK(memcmp(&in, &out, sizeof in) == 0);
  CHECK(kv_cmd_decode(buf, sizeof buf - 1, &out) == SABHA_ECORRUPT);
  CHECK(kv_cmd_decode(NULL, 0, &out) == SABHA_ECORRUPT);
  buf[0] = 9;
  CHECK(kv_cmd_decode(buf, sizeof buf, &out) == SABHA_ECORRUPT);
  buf[0] = KV_FORMAT_VERSION;
  buf[1] = 7;
  CHECK(kv_cmd_decode(buf, sizeof buf, &out) == SABHA_ECORRUPT);
}

static void kv_put_and_cas_change_values(void) {
  struct kv *kv;
  struct kv_result r;
  CHECK(kv_new(&kv, &limits) == 0);
  CHECK(kv_get(kv, 1) == KV_NIL);
  CHECK(apply(kv, put(0, 1, 0, 1, 10), &r) == 0 && r.outcome == KV_APPLIED);
  CHECK(kv_get(kv, 1) == 10);
  CHECK(apply(kv, cas(0, 2, 1, 1, 11, 12), &r) == 0);
  CHECK(r.outcome == KV_APPLIED && r.swapped == 0 && kv_get(kv, 1) == 10);
  CHECK(apply(kv, cas(0, 3, 2, 1, 10, 12), &r) == 0);
  CHECK(r.outcome == KV_APPLIED && r.swapped == 1 && kv_get(kv, 1) == 12);
  CHECK(apply(kv, cas(1, 1, 3, 2, KV_NIL, 5), &r) == 0 && r.swapped == 1);
  CHECK(kv_get(kv, 2) == 5);
  CHECK(kv_get(kv, 99) == KV_NIL);
  CHECK(kv_n_applied(kv) == 4);
  kv_free(kv);
}

static void kv_retry_of_last_command_answers_saved_result_once(void) {
  struct kv *kv;
  struct kv_result r;
  CHECK(kv_new(&kv, &limits) == 0);
  CHECK(apply(kv, put(0, 1, 0, 0, 1), &r) == 0);
  CHECK(apply(kv, cas(0, 2, 1, 0, 1, 2), &r) == 0 && r.swapped == 1);
  CHECK(apply(kv, put(1, 1, 2, 0, 3), &r) == 0); /* another client */
  /* The retry of client 0's cas must not swap again (it would fail now). */
  CHECK(apply(kv, cas(0, 2, 1, 0, 1, 2), &r) == 0);
  CHECK(r.outcome == KV_DUPLICATE && r.swapped == 1 && kv_get(kv, 0) == 3);
  /* An older command is stale and ignored. */
  CHECK(apply(kv, put(0, 1, 0, 0, 1), &r) == 0 && r.outcome == KV_STALE);
  CHECK(kv_get(kv, 0) == 3);
  uint64_t seq;
  CHECK(kv_session(kv, 0, &seq, &r) && seq == 2 && r.swapped == 1);
  CHECK(!kv_session(kv, 2, &seq, &r));
  CHECK(kv_n_applied(kv) == 3);
  kv_free(kv);
}

static void kv_out_of_range_commands_are_rejected_without_effect(void) {
  struct kv *kv;
  struct kv_result r;
  CHECK(kv_new(&kv, &limits) == 0);
  CHECK(apply(kv, put(0, 1, 0, 4, 1), &r) == 0 && r.outcome == KV_REJECTED);
  CHECK(apply(kv, put(3, 1, 0, 0, 1), &r) == 0 && r.outcome == KV_REJECTED);
  CHECK(apply(kv, put(0, 1, 20, 0, 1), &r) == 0 && r.outcome == KV_REJECTED);
  CHECK(apply(kv, put(0, 0, 0, 0, 1), &r) == 0 && r.outcome == KV_REJECTED);
  CHECK(kv_get(kv, 0) == KV_NIL && kv_n_applied(kv) == 0);
  CHECK(!kv_op_applied(kv, 0));
  struct kv_cmd cmd;
  uint8_t junk[3] = {1, 2, 3};
  CHECK(kv_apply(kv, junk, sizeof junk, &cmd, &r) == SABHA_ECORRUPT);
  kv_free(kv);
}

static void kv_records_applied_operation_ids(void) {
  struct kv *kv;
  struct kv_result r;
  CHECK(kv_new(&kv, &limits) == 0);
  CHECK(apply(kv, put(0, 1, 19, 0, 1), &r) == 0);
  CHECK(apply(kv, cas(1, 1, 7, 0, 5, 6), &r) == 0 && r.swapped == 0);
  CHECK(kv_op_applied(kv, 19) && kv_op_applied(kv, 7));
  CHECK(!kv_op_applied(kv, 0) && !kv_op_applied(kv, 8));
  CHECK(!kv_op_applied(kv, 1000));
  kv_free(kv);
}

static void kv_snapshot_restores_everything_and_refuses_malformed(void) {
  struct kv *a, *b;
  struct kv_result r;
  CHECK(kv_new(&a, &limits) == 0 && kv_new(&b, &limits) == 0);
  CHECK(apply(a, put(0, 1, 3, 2, 42), &r) == 0);
  CHECK(apply(a, cas(1, 4, 9, 2, 42, 43), &r) == 0 && r.swapped == 1);
  size_t size = kv_snapshot_size(a);
  uint8_t *snap = malloc(size), *again = malloc(size);
  CHECK(kv_snapshot(a, snap, size) == size);
  CHECK(kv_restore(b, snap, size) == 0);
  CHECK(kv_get(b, 2) == 43 && kv_op_applied(b, 3) && kv_op_applied(b, 9));
  CHECK(kv_n_applied(b) == 2);
  CHECK(apply(b, cas(1, 4, 9, 2, 42, 43), &r) == 0);
  CHECK(r.outcome == KV_DUPLICATE && r.swapped == 1);
  CHECK(kv_snapshot(b, again, size) == size && memcmp(snap, again, size) == 0);
  /* Malformed: short, other limits, a bad flag. State stays as it was. */
  CHECK(kv_restore(b, snap, size - 1) == SABHA_ECORRUPT);
  struct kv *c;
  struct kv_limits other = limits;
  other.keys_max = 5;
  CHECK(kv_new(&c, &other) == 0);
  CHECK(kv_restore(c, snap, size) == SABHA_ECORRUPT);
  /* Client 0's swapped flag: after the 25-byte header, 4 values, a seq. */
  snap[25 + 4 * 8 + 8] = 2;
  CHECK(kv_restore(b, snap, size) == SABHA_ECORRUPT);
  CHECK(kv_get(b, 2) == 43);
  kv_free(a);
  kv_free(b);
  kv_free(c);
  free(snap);
  free(again);
}

static void kv_same_commands_give_same_state(void) {
  struct kv *a, *b;
  struct kv_limits big = {.keys_max = 5, .clients_max = 5, .op_ids_max = 500};
  CHECK(kv_new(&a, &big) == 0 && kv_new(&b, &big) == 0);
  struct prng p;
  prng_seed(&p, 42);
  uint64_t seqs[5] = {0};
  for (uint64_t op = 0; op < 500; op++) {
    uint32_t client = (uint32_t)prng_below(&p, 5);
    uint64_t seq = prng_chance(&p, 0.2) && seqs[client] > 0 ? seqs[client]
                                                            : ++seqs[client];
    struct kv_cmd cmd =
        prng_chance(&p, 0.5)
            ? put(client, seq, op, (uint32_t)prng_below(&p, 5), (int64_t)op)
            : cas(client, seq, op, (uint32_t)prng_below(&p, 5),
                  (int64_t)prng_below(&p, 10) - 1, (int64_t)op);
    struct kv_result ra, rb;
    CHECK(apply(a, cmd, &ra) == 0 && apply(b, cmd, &rb) == 0);
    CHECK(ra.outcome == rb.outcome && ra.swapped == rb.swapped);
  }
  size_t size = kv_snapshot_size(a);
  uint8_t *sa = malloc(size), *sb = malloc(size);
  kv_snapshot(a, sa, size);
  kv_snapshot(b, sb, size);
  CHECK(memcmp(sa, sb, size) == 0);
  free(sa);
  free(sb);
  kv_free(a);
  kv_free(b);
}

static void kv_limits_are_checked(void) {
  struct kv *kv = NULL;
  struct kv_limits bad = limits;
  bad.keys_max = 0;
  CHECK(kv_new(&kv, &bad) == SABHA_EINVAL && kv == NULL);
  bad = limits;
  bad.op_ids_max = KV_OP_IDS_MAX + 1;
  CHECK(kv_new(&kv, &bad) == SABHA_EINVAL);
}

int main(void) {
  kv_command_round_trips_and_rejects_malformed_bytes();
  kv_put_and_cas_change_values();
  kv_retry_of_last_command_answers_saved_result_once();
  kv_out_of_range_commands_are_rejected_without_effect();
  kv_records_applied_operation_ids();
  kv_snapshot_restores_everything_and_refuses_malformed();
  kv_same_commands_give_same_state();
  kv_limits_are_checked();
  if (failures > 0) {
    fprintf(stderr, "test_kv: %d checks failed\n", failures);
    return 1;
  }
  printf("test_kv: ok\n");
  return 0;
}
