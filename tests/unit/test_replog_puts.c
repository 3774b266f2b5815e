/* A Paxos acceptor puts single slots below its log's tail (a slot accepted
 * again, a value learned). Only those slots may go to the host again, not
 * the whole tail after them; and until the host has them durably, the node
 * may not count itself as holding them (replog_self_match). With
 * asynchronous storage writes (engine.h) "durably" comes later than the
 * hand-out: replog_persisted() says up to which batch, and a batch still in
 * flight that rewrites an index keeps it out of the count. */
#include <stdlib.h>

#include "check.h"
#include "core/outbox.h"
#include "core/replog.h"

static void put_slot(struct replog *rl, uint64_t index, uint64_t term) {
  static const uint8_t v[] = "v";
  struct sabha_entry e = {.index = index,
                          .term = term,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = 1,
                          .data = v};
  if (log_put(&rl->log, &e) != 0)
    abort();
}

/* Appends 1..n and hands them all to the host. */
static void durable_log(struct replog *rl, struct outbox *out, uint64_t n) {
  for (uint64_t i = 1; i <= n; i++)
    put_slot(rl, i, 1);
  struct sabha_ready rd = {0};
  replog_fill_ready(rl, 0, 0, out, &rd);
  replog_advance(rl, &rd);
  CHECK(replog_persisted(rl, rd.seq));
}

static void replog_puts_below_the_tail_go_alone(void) {
  struct replog rl;
  struct outbox out;
  replog_init(&rl);
  outbox_init(&out);
  durable_log(&rl, &out, 100);
  CHECK(replog_self_match(&rl) == 100);

  put_slot(&rl, 10, 2);
  replog_note_put(&rl, 10);
  put_slot(&rl, 11, 2);
  replog_note_put(&rl, 11);
  put_slot(&rl, 50, 2);
  replog_note_put(&rl, 50);
  put_slot(&rl, 101, 2); /* and one appended */
  replog_note_put(&rl, 101);
  CHECK(rl.n_puts == 2);
  CHECK(replog_self_match(&rl) == 9); /* slot 10 is not durable yet */
  CHECK(replog_has_ready(&rl, 0, 0));

  struct sabha_ready rd = {0};
  replog_fill_ready(&rl, 0, 0, &out, &rd);
  CHECK(rd.n_entries == 4);
  CHECK(rd.entries[0].index == 10 && rd.entries[1].index == 11);
  CHECK(rd.entries[2].index == 50 && rd.entries[3].index == 101);
  CHECK(rd.entries[0].term == 2 && rd.must_sync);
  replog_advance(&rl, &rd);
  /* Written, not yet durable: the disk still holds the old slot 10. */
  CHECK(rl.n_puts == 0 && replog_self_match(&rl) == 9);
  CHECK(replog_persisted(&rl, rd.seq));
  CHECK(replog_self_match(&rl) == 101);
  CHECK(!replog_has_ready(&rl, 0, 0));
  replog_free(&rl);
  outbox_free(&out);
}

static void replog_too_many_scattered_puts_send_the_range(void) {
  struct replog rl;
  struct outbox out;
  replog_init(&rl);
  outbox_init(&out);
  durable_log(&rl, &out, 200);
  for (uint64_t i = 0; i <= REPLOG_PUTS_MAX; i++) {
    put_slot(&rl, 5 + 3 * i, 2);
    replog_note_put(&rl, 5 + 3 * i);
  }
  CHECK(rl.n_puts == 0 && rl.unstable_from == 5);
  CHECK(replog_self_match(&rl) == 4);
  struct sabha_ready rd = {0};
  replog_fill_ready(&rl, 0, 0, &out, &rd);
  CHECK(rd.n_entries == 196 && rd.entries[0].index == 5);
  replog_advance(&rl, &rd);
  CHECK(replog_self_match(&rl) == 4);
  CHECK(replog_persisted(&rl, rd.seq));
  CHECK(replog_self_match(&rl) == 200);
  replog_free(&rl);
  outbox_free(&out);
}

/* Hands out what is pending as one batch; returns its number. */
static uint64_t hand_out(struct replog *rl, struct outbox *out) {
  struct sabha_ready rd = {0};
  replog_fill_ready(rl, 0, 0, out, &rd);
  replog_advance(rl, &rd);
  return rd.seq;
}

static void replog_self_counts_only_what_the_host_made_durable(void) {
  struct replog rl;
  struct outbox out;
  replog_init(&rl);
  outbox_init(&out);
  for (uint64_t i = 1; i <= 10; i++)
    put_slot(&rl, i, 1);
  uint64_t a = hand_out(&rl, &out);
  CHECK(replog_self_match(&rl) == 0); /* handed out is not durable */
  /* A second batch rewrites 6..10 while the first is still in flight. */
  for (uint64_t i = 6; i <= 10; i++)
    put_slot(&rl, i, 2);
  replog_note_rewrite(&rl, 6);
  uint64_t b = hand_out(&rl, &out);
  CHECK(b == a + 1);
  CHECK(replog_persisted(&rl, a));
  CHECK(replog_self_match(&rl) == 5); /* the disk holds term 1 at 6..10 */
  CHECK(!replog_persisted(&rl, a));   /* a late report changes nothing */
  CHECK(replog_persisted(&rl, b));
  CHECK(replog_self_match(&rl) == 10);
  CHECK(!replog_persisted(&rl, a));
  /* Many batches in flight: beyond REPLOG_WRITES_MAX the newest merge, and
   * a report of one of them waits for the last merged. */
  uint64_t seqs[REPLOG_WRITES_MAX + 8];
  for (uint32_t k = 0; k < REPLOG_WRITES_MAX + 8; k++) {
    put_slot(&rl, 11 + k, 3);
    seqs[k] = hand_out(&rl, &out);
  }
  CHECK(replog_self_match(&rl) == 10);
  CHECK(replog_persisted(&rl, seqs[REPLOG_WRITES_MAX - 2]));
  CHECK(replog_self_match(&rl) == 10 + REPLOG_WRITES_MAX - 1);
  CHECK(!replog_persisted(&rl, seqs[REPLOG_WRITES_MAX]));
  CHECK(replog_self_match(&rl) == 10 + REPLOG_WRITES_MAX - 1);
  CHECK(replog_persisted(&rl, seqs[REPLOG_WRITES_MAX + 7]));
  CHECK(replog_self_match(&rl) == 10 + REPLOG_WRITES_MAX + 8);
  replog_free(&rl);
  outbox_free(&out);
}

static void replog_runs_of_puts_merge(void) {
  struct replog rl;
  struct outbox out;
  replog_init(&rl);
  outbox_init(&out);
  durable_log(&rl, &out, 50);
  static const uint64_t order[] = {20, 22, 24, 21, 23, 19, 30};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    put_slot(&rl, order[i], 3);
    replog_note_put(&rl, order[i]);
  }
  CHECK(rl.n_puts == 2);
  CHECK(rl.puts[0].lo == 19 && rl.puts[0].hi == 24);
  CHECK(rl.puts[1].lo == 30 && rl.puts[1].hi == 30);
  /* A rewrite of the suffix from 22 covers what the runs held past it. */
  replog_note_rewrite(&rl, 22);
  struct sabha_ready rd = {0};
  replog_fill_ready(&rl, 0, 0, &out, &rd);
  CHECK(rd.n_entries == 32); /* 19..21, then 22..50 */
  for (size_t i = 0; i < rd.n_entries; i++)
    CHECK(rd.entries[i].index == 19 + i);
  replog_advance(&rl, &rd);
  replog_free(&rl);
  outbox_free(&out);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(replog_puts_below_the_tail_go_alone),
      TEST(replog_too_many_scattered_puts_send_the_range),
      TEST(replog_runs_of_puts_merge),
      TEST(replog_self_counts_only_what_the_host_made_durable),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
