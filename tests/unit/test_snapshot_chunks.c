/* Tests of how an engine assembles a snapshot sent in chunks (src/core
 * replog.c): chunks are spliced only when one sender, in one term, sent
 * them all. Two nodes can hold snapshots of the same index, term and size
 * whose bytes differ (a store lays its keys out in its own table's order),
 * and a follower that took the first half from one leader and the second
 * from the next installed bytes that restore to nothing: the simulator
 * found it as "the snapshot from a peer does not restore". */
#include <stdint.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "check.h"
#include "raft/raft.h"
#include "sabha/engine.h"

/* The membership a snapshot message carries: nodes 1, 2 and 3 voting. */
static struct sabha_entry conf_entry(void) {
  static uint8_t buf[SABHA_MEMBERSHIP_BYTES_MAX];
  struct sabha_membership m = {.n = 3};
  for (uint32_t i = 0; i < 3; i++)
    m.members[i] =
        (struct sabha_member){.id = i + 1, .role = SABHA_MEMBER_VOTER};
  size_t len = sabha_membership_encode(&m, buf, sizeof buf);
  return (struct sabha_entry){
      .type = SABHA_ENTRY_CONFIG, .size_bytes = (uint32_t)len, .data = buf};
}

/* A chunk of a snapshot at (index 20, term 1) of 8 bytes, from `from` as
 * leader of `term`. */
static struct sabha_msg chunk(uint32_t from, uint64_t term, uint64_t offset,
                              const char *bytes) {
  static struct sabha_entry conf;
  conf = conf_entry();
  return (struct sabha_msg){.type = RAFT_MSG_SNAPSHOT,
                            .n_entries = 1,
                            .entries = &conf,
                            .from = from,
                            .to = 1,
                            .term = term,
                            .snap = {.index = 20, .term = 1},
                            .snap_offset = offset,
                            .snap_total_bytes = 8,
                            .snap_size_bytes = 4,
                            .snap_data = (const uint8_t *)bytes};
}

/* Drains the follower's ready batches; true when one installs a snapshot,
 * whose bytes go to *data. */
static bool installs(struct sabha_engine *e, char *data) {
  bool any = false;
  for (int k = 0; k < 8 && sabha_engine_has_ready(e); k++) {
    struct sabha_ready rd;
    sabha_engine_ready(e, &rd);
    if (rd.has_snapshot) {
      any = true;
      memcpy(data, rd.snapshot_data, rd.snapshot_size_bytes);
    }
    sabha_engine_advance(e, &rd);
    sabha_engine_persisted(e, rd.seq); /* a host that syncs at once */
  }
  return any;
}

static void snapshot_chunks_of_two_leaders_are_never_spliced(void) {
  static const uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  struct sabha_engine *e = NULL;
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == 0);
  char data[9] = {0};
  struct sabha_msg m = chunk(2, 2, 0, "AAAA"); /* node 2, leader of term 2 */
  CHECK(sabha_engine_step(e, &m) == 0);
  installs(e, data);
  m = chunk(3, 3, 4, "bbbb"); /* node 3, leader of term 3, goes on */
  CHECK(sabha_engine_step(e, &m) == 0);
  CHECK(!installs(e, data)); /* not "AAAAbbbb" */
  /* Node 3 starts over: its own bytes, whole. */
  m = chunk(3, 3, 0, "BBBB");
  CHECK(sabha_engine_step(e, &m) == 0);
  installs(e, data);
  m = chunk(3, 3, 4, "bbbb");
  CHECK(sabha_engine_step(e, &m) == 0);
  CHECK(installs(e, data));
  CHECK(memcmp(data, "BBBBbbbb", 8) == 0);
  sabha_engine_free(e);
}

/* Memory the C library holds in large blocks (mmap), or 0 where it does
 * not say (another C library, or a sanitizer's allocator). */
static uint64_t large_blocks_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  return (uint64_t)mallinfo2().hblkhd;
#else
  return 0;
#endif
}

/* The first chunk of a transfer claims the whole snapshot's size: one
 * message claiming 4 GiB made the follower allocate 4 GiB before any of it
 * came. The buffer now grows with the bytes that came. */
static void a_chunk_claiming_a_huge_snapshot_takes_only_what_came(void) {
  static const uint32_t voters[3] = {1, 2, 3};
  struct sabha_config cfg;
  sabha_config_init(&cfg, 1, voters, 3);
  struct sabha_engine *e = NULL;
  CHECK(sabha_engine_new(&e, "raft", &cfg, NULL) == 0);
  uint64_t before = large_blocks_bytes();
  struct sabha_msg m = chunk(2, 2, 0, "AAAA");
  m.snap_total_bytes = SABHA_SNAPSHOT_BYTES_MAX;
  CHECK(sabha_engine_step(e, &m) == 0);
  char data[9] = {0};
  CHECK(!installs(e, data));
  uint64_t after = large_blocks_bytes();
  CHECK(after < before + (1u << 20));
  /* A snapshot sent whole in chunks still installs. */
  m = chunk(2, 2, 0, "CCCC");
  m.snap.index = 21; /* a new transfer */
  CHECK(sabha_engine_step(e, &m) == 0);
  installs(e, data);
  m = chunk(2, 2, 4, "cccc");
  m.snap.index = 21;
  CHECK(sabha_engine_step(e, &m) == 0);
  CHECK(installs(e, data));
  CHECK(memcmp(data, "CCCCcccc", 8) == 0);
  sabha_engine_free(e);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(snapshot_chunks_of_two_leaders_are_never_spliced),
      TEST(a_chunk_claiming_a_huge_snapshot_takes_only_what_came),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
