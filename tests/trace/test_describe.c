/* sabha_msg_describe(): every message type of every protocol as it reads,
 * the limits (a cut line is still a string, and the length is the whole
 * line's, as snprintf's), and that no field can hide: a field a type does
 * not use is shown when it is not zero. The traces show the lines in
 * context; this pins them down one by one, with the edges a trace cannot
 * reach (a hostile type, a short buffer). */
#include <string.h>

#include "async/async.h"
#include "check.h"
#include "paxos/mp.h"
#include "raft/raft.h"
#include "sabha/engine.h"

static const struct sabha_entry two[] = {
    {.index = 41,
     .term = 3,
     .type = SABHA_ENTRY_COMMAND,
     .size_bytes = 1,
     .data = (const uint8_t *)"a"},
    {.index = 42,
     .term = 3,
     .type = SABHA_ENTRY_COMMAND,
     .size_bytes = 1,
     .data = (const uint8_t *)"b"},
};

/* Entries 41..42 of term 3 after 40/3, commit 39: Raft's and async's
 * append (type APPEND in both). */
static struct sabha_msg append_40(uint32_t type) {
  return (struct sabha_msg){.type = type,
                            .term = 3,
                            .index = 40,
                            .log_term = 3,
                            .commit = 39,
                            .n_entries = 2,
                            .entries = two};
}

/* Ballot 2.1 and 1.3 as Multi-Paxos packs them (round << 8 | node). */
#define B21 ((2u << 8) | 1u)
#define B13 ((1u << 8) | 3u)

static const struct sabha_entry accepted[] = {
    {.index = 5,
     .term = B13,
     .type = SABHA_ENTRY_COMMAND,
     .size_bytes = 1,
     .data = (const uint8_t *)"v"},
    {.index = 6, .term = B13, .type = SABHA_ENTRY_NOOP},
    {.index = 7,
     .term = B21,
     .type = SABHA_ENTRY_COMMAND,
     .size_bytes = 1,
     .data = (const uint8_t *)"w"},
};

static bool reads(const char *protocol, const struct sabha_msg *m,
                  const char *want) {
  char buf[512];
  size_t len = sabha_msg_describe(protocol, m, buf, sizeof buf);
  if (len == strlen(want) && strcmp(buf, want) == 0)
    return true;
  fprintf(stderr, "  %s: got  '%s'\n  %*s  want '%s'\n", protocol, buf,
          (int)strlen(protocol), "", want);
  return false;
}

static void describe_raft_messages(void) {
  struct sabha_msg m = append_40(RAFT_MSG_APPEND);
  CHECK(
      reads("raft", &m, "append term=3 prev=40/3 entries=41..42/3 commit=39"));
  m = (struct sabha_msg){.type = RAFT_MSG_APPEND_RESP, .term = 3, .index = 42};
  CHECK(reads("raft", &m, "append-resp term=3 index=42 ok"));
  m = (struct sabha_msg){.type = RAFT_MSG_APPEND_RESP,
                         .term = 3,
                         .index = 44,
                         .reject = 1,
                         .hint_index = 30,
                         .hint_term = 2};
  CHECK(reads("raft", &m, "append-resp term=3 index=44 reject hint=30/2"));
  m = (struct sabha_msg){.type = RAFT_MSG_APPEND_RESP, .term = 5, .reject = 1};
  CHECK(reads("raft", &m, "append-resp term=5 reject"));
  m = (struct sabha_msg){
      .type = RAFT_MSG_HEARTBEAT, .term = 3, .commit = 39, .context = 7};
  CHECK(reads("raft", &m, "heartbeat term=3 commit=39 ctx=7"));
  m = (struct sabha_msg){
      .type = RAFT_MSG_HEARTBEAT_RESP, .term = 3, .context = 7};
  CHECK(reads("raft", &m, "heartbeat-resp term=3 ctx=7"));
  m = (struct sabha_msg){
      .type = RAFT_MSG_PREVOTE, .term = 5, .index = 41, .log_term = 3};
  CHECK(reads("raft", &m, "prevote term=5 last=41/3"));
  m = (struct sabha_msg){.type = RAFT_MSG_PREVOTE_RESP, .term = 5};
  CHECK(reads("raft", &m, "prevote-resp term=5 granted"));
  m = (struct sabha_msg){.type = RAFT_MSG_VOTE,
                         .term = 4,
                         .index = 41,
                         .log_term = 3,
                         .context = 1};
  CHECK(reads("raft", &m, "vote term=4 last=41/3 forced"));
  m = (struct sabha_msg){.type = RAFT_MSG_VOTE_RESP, .term = 4, .reject = 1};
  CHECK(reads("raft", &m, "vote-resp term=4 reject"));
  m = (struct sabha_msg){.type = RAFT_MSG_SNAPSHOT,
                         .term = 3,
                         .snap = {100, 2},
                         .snap_offset = 0,
                         .snap_size_bytes = 4096,
                         .snap_total_bytes = 9000};
  CHECK(reads("raft", &m, "snapshot term=3 snap=100/2 bytes=0..4096/9000"));
  m = (struct sabha_msg){.type = RAFT_MSG_SNAPSHOT_RESP,
                         .term = 3,
                         .snap = {100, 2},
                         .context = 4096};
  CHECK(reads("raft", &m, "snapshot-resp term=3 snap=100/2 received=4096"));
  m = (struct sabha_msg){.type = RAFT_MSG_TIMEOUT_NOW, .term = 3};
  CHECK(reads("raft", &m, "timeout-now term=3"));
  m = (struct sabha_msg){.type = RAFT_MSG_REMOVED, .term = 3, .index = 42};
  CHECK(reads("raft", &m, "removed term=3 config=42"));
}

static void describe_multipaxos_messages(void) {
  struct sabha_msg m = {.type = MP_MSG_PROBE, .term = B21, .index = 5};
  CHECK(reads("multipaxos", &m, "probe ballot=2.1 from=5"));
  m = (struct sabha_msg){.type = MP_MSG_PROBE_RESP, .term = B21};
  CHECK(reads("multipaxos", &m, "probe-resp ballot=2.1 granted"));
  m = (struct sabha_msg){
      .type = MP_MSG_PREPARE, .term = B21, .index = 5, .context = 1};
  CHECK(reads("multipaxos", &m, "prepare ballot=2.1 from=5 forced"));
  m = (struct sabha_msg){.type = MP_MSG_PROMISE,
                         .term = B21,
                         .index = 5,
                         .hint_index = 7,
                         .commit = 4,
                         .context = MP_MORE,
                         .n_entries = 3,
                         .entries = accepted};
  CHECK(reads("multipaxos", &m,
              "promise ballot=2.1 from=5 to=7 accepted=5..6/1.3,7/2.1 "
              "commit=4 more"));
  m = (struct sabha_msg){.type = MP_MSG_PROMISE,
                         .term = B21,
                         .commit = 9,
                         .index = 12,
                         .context = MP_BEHIND};
  CHECK(reads("multipaxos", &m, "promise ballot=2.1 from=12 commit=9 behind"));
  m = (struct sabha_msg){.type = MP_MSG_PROMISE, .term = B21, .reject = 1};
  CHECK(reads("multipaxos", &m, "promise ballot=2.1 reject"));
  m = (struct sabha_msg){.type = MP_MSG_ACCEPT,
                         .term = B21,
                         .index = 5,
                         .commit = 4,
                         .n_entries = 3,
                         .entries = accepted};
  CHECK(reads("multipaxos", &m,
              "accept ballot=2.1 slot=5 entries=5..6/1.3,7/2.1 commit=4"));
  m = (struct sabha_msg){.type = MP_MSG_ACCEPTED, .term = B21, .index = 6};
  CHECK(reads("multipaxos", &m, "accepted ballot=2.1 index=6 ok"));
  m = (struct sabha_msg){.type = MP_MSG_ACCEPTED,
                         .term = B21,
                         .index = 9,
                         .reject = 1,
                         .hint_index = 6};
  CHECK(reads("multipaxos", &m, "accepted ballot=2.1 index=9 reject hint=6"));
  m = (struct sabha_msg){.type = MP_MSG_HEARTBEAT, .term = B21, .commit = 4};
  CHECK(reads("multipaxos", &m, "heartbeat ballot=2.1 commit=4"));
  m = (struct sabha_msg){
      .type = MP_MSG_HEARTBEAT_RESP, .term = B21, .context = 2};
  CHECK(reads("multipaxos", &m, "heartbeat-resp ballot=2.1 ctx=2"));
  m = (struct sabha_msg){.type = MP_MSG_SNAPSHOT,
                         .term = B21,
                         .snap = {30, B13},
                         .snap_offset = 16,
                         .snap_size_bytes = 16,
                         .snap_total_bytes = 128};
  CHECK(reads("multipaxos", &m,
              "snapshot ballot=2.1 snap=30/1.3 bytes=16..32/128"));
  m = (struct sabha_msg){.type = MP_MSG_SNAPSHOT_RESP,
                         .term = B21,
                         .snap = {30, B13},
                         .context = 32};
  CHECK(reads("multipaxos", &m,
              "snapshot-resp ballot=2.1 snap=30/1.3 received=32"));
  m = (struct sabha_msg){.type = MP_MSG_TIMEOUT_NOW, .term = B21};
  CHECK(reads("multipaxos", &m, "timeout-now ballot=2.1"));
  m = (struct sabha_msg){.type = MP_MSG_REMOVED, .term = B21, .index = 42};
  CHECK(reads("multipaxos", &m, "removed ballot=2.1 config=42"));
}

/* Classic Paxos keeps its types private (src/paxos/classic.c): 1 prepare,
 * 2 promise, 3 accept, 4 accepted, 5 chosen, 6 status, 7 snapshot. */
static void describe_paxos_messages(void) {
  const struct sabha_entry *v = &accepted[0]; /* "v" at 5 under 1.3 */
  struct sabha_msg m = {.type = 1, .term = B21, .index = 5};
  CHECK(reads("paxos", &m, "prepare ballot=2.1 slot=5"));
  m = (struct sabha_msg){
      .type = 2, .term = B21, .index = 5, .n_entries = 1, .entries = v};
  CHECK(reads("paxos", &m,
              "promise ballot=2.1 slot=5 ok accepted=1.3 value=\"v\""));
  m = (struct sabha_msg){.type = 2, .term = B13 + 256, .index = 5, .reject = 1};
  CHECK(reads("paxos", &m, "promise ballot=2.3 slot=5 reject"));
  m = (struct sabha_msg){.type = 2,
                         .term = B21,
                         .index = 5,
                         .context = 1,
                         .n_entries = 1,
                         .entries = v};
  CHECK(reads("paxos", &m, "promise ballot=2.1 slot=5 chosen value=\"v\""));
  m = (struct sabha_msg){
      .type = 4, .term = B21, .index = 9, .context = 2, .commit = 6};
  CHECK(reads("paxos", &m, "accepted ballot=2.1 slot=9 behind commit=6"));
  m = (struct sabha_msg){
      .type = 3, .term = B21, .index = 5, .n_entries = 1, .entries = v};
  CHECK(reads("paxos", &m, "accept ballot=2.1 slot=5 value=\"v\""));
  m = (struct sabha_msg){.type = 4, .term = B21, .index = 5};
  CHECK(reads("paxos", &m, "accepted ballot=2.1 slot=5 ok"));
  m = (struct sabha_msg){
      .type = 5, .term = B21, .commit = 5, .n_entries = 1, .entries = v};
  CHECK(reads("paxos", &m,
              "chosen ballot=2.1 commit=5 entries=5/1.3 value=\"v\""));
  m = (struct sabha_msg){.type = 5, .n_entries = 3, .entries = accepted};
  CHECK(reads("paxos", &m, "chosen entries=5..6/1.3,7/2.1"));
  m = (struct sabha_msg){.type = 6, .commit = 4};
  CHECK(reads("paxos", &m, "status commit=4"));
  m = (struct sabha_msg){
      .type = 6, .commit = 4, .snap = {30, B13}, .context = 16};
  CHECK(reads("paxos", &m, "status commit=4 snap=30/1.3 received=16"));
  m = (struct sabha_msg){.type = 7,
                         .snap = {30, B13},
                         .snap_size_bytes = 16,
                         .snap_total_bytes = 128};
  CHECK(reads("paxos", &m, "snapshot snap=30/1.3 bytes=0..16/128"));
}

static void describe_async_messages(void) {
  struct sabha_msg m = append_40(ASYNC_MSG_APPEND);
  m.hint_index = 38; /* stable */
  m.context = 42;    /* the primary's last index */
  CHECK(reads("async", &m,
              "append term=3 prev=40/3 entries=41..42/3 commit=39 stable=38 "
              "last=42"));
  m = (struct sabha_msg){.type = ASYNC_MSG_APPEND_RESP, .term = 3, .index = 42};
  CHECK(reads("async", &m, "append-resp term=3 index=42 ok"));
  m = (struct sabha_msg){.type = ASYNC_MSG_HEARTBEAT,
                         .term = 3,
                         .commit = 39,
                         .hint_index = 38,
                         .context = 42};
  CHECK(reads("async", &m, "heartbeat term=3 commit=39 stable=38 last=42"));
  m = (struct sabha_msg){.type = ASYNC_MSG_HEARTBEAT_RESP, .term = 3};
  CHECK(reads("async", &m, "heartbeat-resp term=3"));
  m = (struct sabha_msg){.type = ASYNC_MSG_VOTE, .term = 4};
  CHECK(reads("async", &m, "vote term=4"));
  m = (struct sabha_msg){.type = ASYNC_MSG_VOTE_RESP, .term = 4};
  CHECK(reads("async", &m, "vote-resp term=4 granted"));
  m = (struct sabha_msg){.type = ASYNC_MSG_SNAPSHOT,
                         .term = 3,
                         .snap = {100, 2},
                         .snap_size_bytes = 10,
                         .snap_total_bytes = 10};
  CHECK(reads("async", &m, "snapshot term=3 snap=100/2 bytes=0..10/10"));
  m = (struct sabha_msg){.type = ASYNC_MSG_SNAPSHOT_RESP,
                         .term = 3,
                         .snap = {100, 2},
                         .context = 10};
  CHECK(reads("async", &m, "snapshot-resp term=3 snap=100/2 received=10"));
}

/* A field the type does not use, an unknown type, an unknown protocol: all
 * shown whole rather than hidden. */
static void describe_shows_every_field(void) {
  struct sabha_msg m = {.type = RAFT_MSG_TIMEOUT_NOW,
                        .term = 3,
                        .index = 9,
                        .hint_term = 2,
                        .reject = 1};
  CHECK(reads("raft", &m, "timeout-now term=3 index=9 hint=0/2 reject"));
  m = (struct sabha_msg){
      .type = 99, .term = 3, .commit = 4, .n_entries = 2, .entries = two};
  CHECK(reads("raft", &m, "type=99 term=3 commit=4 entries=41..42/3"));
  CHECK(
      reads("multipaxos", &m, "type=99 term=0.3 commit=4 entries=41..42/0.3"));
  CHECK(reads("zab", &m, "type=99 term=3 commit=4 entries=41..42/3"));
  m = (struct sabha_msg){.type = 0};
  CHECK(reads("raft", &m, "type=0"));
}

/* Many runs are cut after a few, with how many entries more. */
static void describe_bounds_entry_runs(void) {
  struct sabha_entry es[10];
  for (uint32_t i = 0; i < 10; i++)
    es[i] = (struct sabha_entry){.index = i + 1, .term = i + 1};
  struct sabha_msg m = {
      .type = RAFT_MSG_APPEND, .term = 10, .n_entries = 10, .entries = es};
  CHECK(reads("raft", &m,
              "append term=10 prev=0/0 entries=1/1,2/2,3/3,4/4,+6 commit=0"));
}

/* snprintf's contract: never past `size`, always a string, the whole
 * length returned; size 0 writes nothing. */
static void describe_truncates_like_snprintf(void) {
  struct sabha_msg m = append_40(RAFT_MSG_APPEND);
  char full[256];
  size_t len = sabha_msg_describe("raft", &m, full, sizeof full);
  CHECK(len == strlen(full) && len > 20);
  CHECK(sabha_msg_describe("raft", &m, NULL, 0) == len);
  char small[16];
  memset(small, 'z', sizeof small);
  CHECK(sabha_msg_describe("raft", &m, small, 10) == len);
  CHECK(small[9] == '\0' && strncmp(small, full, 9) == 0);
  CHECK(small[10] == 'z'); /* nothing written past the size given */
  char one[1] = {'z'};
  CHECK(sabha_msg_describe("raft", &m, one, 1) == len && one[0] == '\0');
  /* A value longer than a short buffer: still cut cleanly. */
  uint8_t big[300];
  memset(big, 'q', sizeof big);
  struct sabha_entry e = {.index = 5,
                          .term = B21,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = sizeof big,
                          .data = big};
  m = (struct sabha_msg){
      .type = 3, .term = B21, .index = 5, .n_entries = 1, .entries = &e};
  CHECK(
      reads("paxos", &m,
            "accept ballot=2.1 slot=5 value=\"qqqqqqqqqqqqqqqqqqqqqqqq\"+276"));
}

/* The engine-bound variant names the engine's protocol. */
static void describe_through_an_engine(void) {
  uint32_t voters[1] = {1};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 1);
  struct sabha_engine *e = NULL;
  CHECK(sabha_engine_new(&e, "multipaxos", &cfg, NULL) == 0);
  struct sabha_msg m = {.type = MP_MSG_PREPARE, .term = B21, .index = 1};
  char buf[64];
  size_t len = sabha_engine_describe_msg(e, &m, buf, sizeof buf);
  sabha_engine_free(e);
  CHECK(len == strlen(buf) && strcmp(buf, "prepare ballot=2.1 from=1") == 0);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(describe_raft_messages),
      TEST(describe_multipaxos_messages),
      TEST(describe_paxos_messages),
      TEST(describe_async_messages),
      TEST(describe_shows_every_field),
      TEST(describe_bounds_entry_runs),
      TEST(describe_truncates_like_snprintf),
      TEST(describe_through_an_engine),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
