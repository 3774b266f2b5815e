/* The runtime checks a snapshot from a peer before anything of it reaches
 * the disk (issue 10, finding 8). A peer that sends bytes which do not
 * restore (a bug, or a hostile peer) must stop this node at most: nothing
 * of the snapshot may be persisted, so the node starts again from what it
 * had. Persisting first made such a node unable to ever start again.
 *
 * The runtime runs here over memfs with a Raft engine; the "leader" is this
 * test, which hands the node one InstallSnapshot whose data is junk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "raft/raft.h"
#include "rt_host.h"
#include "storage/memfs.h"

static int open_node(struct rt **rt, struct rt_host *h,
                     const struct wal_io *io) {
  struct rt_config cfg;
  rt_host_config(&cfg, io);
  struct rt_ports ports = rt_host_ports(h);
  char err[512];
  int rc = rt_open(rt, &cfg, &ports, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "rt_open: %s\n", err);
  return rc;
}

static void runtime_refuses_a_junk_snapshot_before_persisting_it(void) {
  struct memfs *fs;
  CHECK(memfs_new(&fs, 1) == 0);
  struct wal_io io;
  memfs_io(fs, &io);
  struct rt_host h = {.now_ms = 1000};
  struct rt *rt = NULL;
  CHECK(open_node(&rt, &h, &io) == 0);
  rt_run(rt);

  static const uint8_t junk[] = "not a snapshot of any store at all";
  /* The membership is sound (nodes 1..3 voting): only the bytes are junk. */
  uint8_t conf_bytes[SABHA_MEMBERSHIP_BYTES_MAX];
  struct sabha_membership conf = {.n = 3};
  for (uint32_t i = 0; i < 3; i++)
    conf.members[i] =
        (struct sabha_member){.id = i + 1, .role = SABHA_MEMBER_VOTER};
  size_t conf_len =
      sabha_membership_encode(&conf, conf_bytes, sizeof conf_bytes);
  CHECK(conf_len > 0);
  struct sabha_entry conf_entry = {.type = SABHA_ENTRY_CONFIG,
                                   .size_bytes = (uint32_t)conf_len,
                                   .data = conf_bytes};
  struct sabha_msg m = {.type = RAFT_MSG_SNAPSHOT,
                        .n_entries = 1,
                        .entries = &conf_entry,
                        .from = 1,
                        .to = 2,
                        .term = 5,
                        .snap = {.index = 40, .term = 5},
                        .snap_offset = 0,
                        .snap_total_bytes = sizeof junk,
                        .snap_size_bytes = sizeof junk,
                        .snap_data = junk};
  rt_step(rt, &m);
  rt_run(rt);
  CHECK(h.fatal_kind != 0);
  CHECK(strstr(h.fatal_why, "does not restore") != NULL);
  CHECK(strstr(h.fatal_why, "nothing of it was persisted") != NULL);
  rt_close_crash(rt);
  memfs_crash(fs, MEMFS_CRASH_DROP); /* whatever was not synced is gone */

  /* It starts again, from what it had: no snapshot, the term it held. */
  struct rt_host h2 = {.now_ms = 2000};
  rt = NULL;
  CHECK(open_node(&rt, &h2, &io) == 0);
  struct sabha_status st;
  rt_status(rt, &st);
  CHECK(st.snapshot_index == 0);
  CHECK(st.commit == 0);
  CHECK(h2.fatal_kind == 0);
  rt_close_crash(rt);
  memfs_free(fs);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(runtime_refuses_a_junk_snapshot_before_persisting_it),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
