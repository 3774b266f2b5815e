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
#include "storage/memfs.h"

/* The host: a clock that stands still, and a record of a fatal stop. */
struct host {
  uint64_t now_ms;
  int fatal_kind;
  char fatal_why[512];
};

static uint64_t h_now_ms(void *ctx) {
  return ((struct host *)ctx)->now_ms;
}
static uint64_t h_wall_ms(void *ctx) {
  return 1700000000000ull + ((struct host *)ctx)->now_ms;
}
static uint64_t h_mono_us(void *ctx) {
  return ((struct host *)ctx)->now_ms * 1000u;
}
static void h_send(void *ctx, const struct sabha_msg *m) {
  (void)ctx;
  (void)m;
}
static void h_stream(void *ctx, struct rt_stream *s) {
  (void)ctx;
  (void)s;
}
static void h_pause(void *ctx, struct rt_stream *s, bool paused) {
  (void)ctx;
  (void)s;
  (void)paused;
}
static void h_close(void *ctx, struct rt_stream *s, bool flush) {
  (void)ctx;
  (void)s;
  (void)flush;
}
static int h_connect(void *ctx, struct rt_stream *s, uint32_t node) {
  (void)ctx;
  (void)s;
  (void)node;
  return -1;
}
static void h_kick(void *ctx) {
  (void)ctx;
}
static void h_fatal(void *ctx, enum rt_fatal kind, const char *why) {
  struct host *h = ctx;
  h->fatal_kind = (int)kind;
  snprintf(h->fatal_why, sizeof h->fatal_why, "%s", why);
}
static void h_log(void *ctx, enum rt_log_level level, const char *text) {
  (void)ctx;
  (void)level;
  (void)text;
}

static int open_node(struct rt **rt, struct host *h, const struct wal_io *io) {
  static const uint32_t voters[] = {1, 2, 3};
  struct rt_config cfg;
  rt_config_init(&cfg, 2, voters, 3);
  snprintf(cfg.protocol, sizeof cfg.protocol, "raft");
  snprintf(cfg.data_dir, sizeof cfg.data_dir, "data");
  cfg.io = io;
  cfg.engine.seed = 7;
  cfg.tag_seed = 11;
  struct rt_ports ports = {.ctx = h,
                           .now_ms = h_now_ms,
                           .wall_ms = h_wall_ms,
                           .mono_us = h_mono_us,
                           .send = h_send,
                           .stream_output = h_stream,
                           .stream_pause = h_pause,
                           .stream_close = h_close,
                           .stream_connect = h_connect,
                           .kick = h_kick,
                           .fatal = h_fatal,
                           .log = h_log};
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
  struct host h = {.now_ms = 1000};
  struct rt *rt = NULL;
  CHECK(open_node(&rt, &h, &io) == 0);
  rt_run(rt);

  static const uint8_t junk[] = "not a snapshot of any store at all";
  struct sabha_msg m = {.type = RAFT_MSG_SNAPSHOT,
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
  struct host h2 = {.now_ms = 2000};
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
