/* Writes the binary seeds of the fuzz targets' corpora (codec, handshake,
 * frames, wal, snapshot, kvstore, app, commands), so that they are
 * reproducible rather than opaque files: valid inputs of every shape and
 * kind, made by the code that writes them in production, and a few near
 * misses (a cut, a wrong version, a flipped byte behind a good checksum)
 * that start a fuzzer close to the boundaries. The text targets' seeds
 * (resp, reply, http, scenario, config) are written by hand.
 *
 *   usage: fuzz_gen_corpus CORPUS_DIR     (tests/fuzz/corpus)
 *
 * Each seed goes to CORPUS_DIR/<target>/<name>; the folders must exist.
 * Not a test; rerun it when a format changes, and review the diff. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/endian.h"
#include "fuzz_sm.h"
#include "net/codec.h"
#include "net/handshake.h"
#include "paxos/mp.h"
#include "raft/raft.h"
#include "node/snapshot.h"
#include "storage/memfs.h"
#include "storage/wal.h"
#include "storage/wal_internal.h"

static int write_file(const char *dir, const char *name, const uint8_t *bytes,
                      size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(bytes, 1, n, f) != n) {
    perror(path);
    if (f != NULL)
      fclose(f);
    return -1;
  }
  return fclose(f) == 0 ? 0 : -1;
}

static int write_msg(const char *dir, const char *name,
                     const struct sabha_msg *m, uint8_t kind) {
  struct codec_buf b;
  codec_buf_init(&b);
  int rc = codec_encode(m, kind, &b);
  if (rc == 0)
    rc = write_file(dir, name, b.data, b.size_bytes);
  codec_buf_free(&b);
  return rc;
}

static int codec_corpus(const char *dir) {
  static const uint8_t text[] = "set k v; put x 1; a command of some bytes";
  struct sabha_entry e[4] = {
      {.index = 7,
       .term = 2,
       .type = SABHA_ENTRY_COMMAND,
       .size_bytes = 12,
       .data = text},
      {.index = 8, .term = 2, .type = SABHA_ENTRY_NOOP},
      {.index = 9,
       .term = 3,
       .type = SABHA_ENTRY_COMMAND,
       .size_bytes = 1,
       .data = text + 3},
      {.index = UINT64_MAX,
       .term = UINT64_MAX,
       .type = SABHA_ENTRY_COMMAND,
       .size_bytes = sizeof text - 1,
       .data = text},
  };
  struct sabha_msg heartbeat = {
      .type = 3, .from = 1, .to = 2, .term = 5, .commit = 40, .context = 17};
  struct sabha_msg append = {.type = 1,
                             .from = 1,
                             .to = 3,
                             .term = 3,
                             .index = 6,
                             .log_term = 2,
                             .commit = 5,
                             .n_entries = 3,
                             .entries = e};
  struct sabha_msg reject = {.type = 2,
                             .from = 3,
                             .to = 1,
                             .term = 3,
                             .reject = 1,
                             .hint_index = 4,
                             .hint_term = 1};
  struct sabha_msg snapshot = {.type = 9,
                               .from = 1,
                               .to = 2,
                               .term = 4,
                               .snap = {.index = 100, .term = 4},
                               .snap_offset = 64,
                               .snap_total_bytes = 128,
                               .snap_size_bytes = 32,
                               .snap_data = text};
  struct sabha_msg extremes = {.type = UINT32_MAX,
                               .from = UINT32_MAX,
                               .to = UINT32_MAX,
                               .reject = UINT32_MAX,
                               .term = UINT64_MAX,
                               .index = UINT64_MAX,
                               .log_term = UINT64_MAX,
                               .commit = UINT64_MAX,
                               .hint_index = UINT64_MAX,
                               .hint_term = UINT64_MAX,
                               .context = UINT64_MAX,
                               .n_entries = 1,
                               .entries = e + 3,
                               .snap = {UINT64_MAX, UINT64_MAX},
                               .snap_offset = UINT64_MAX - 8,
                               .snap_total_bytes = UINT64_MAX,
                               .snap_size_bytes = 8,
                               .snap_data = text};
  int rc = 0;
  rc |= write_msg(dir, "heartbeat-raft.bin", &heartbeat, CODEC_KIND_RAFT);
  rc |= write_msg(dir, "append-raft.bin", &append, CODEC_KIND_RAFT);
  rc |= write_msg(dir, "accept-multipaxos.bin", &append, CODEC_KIND_MULTIPAXOS);
  rc |= write_msg(dir, "reject-paxos.bin", &reject, CODEC_KIND_PAXOS);
  rc |= write_msg(dir, "snapshot-chunk.bin", &snapshot, CODEC_KIND_RAFT);
  rc |= write_msg(dir, "extremes.bin", &extremes, CODEC_KIND_RAFT);
  /* A removal notice: a member tells node 4 the membership of index 42
   * removed it. */
  struct sabha_msg removed = {
      .type = RAFT_MSG_REMOVED, .from = 1, .to = 4, .term = 7, .index = 42};
  rc |= write_msg(dir, "removed-raft.bin", &removed, CODEC_KIND_RAFT);
  removed.type = MP_MSG_REMOVED;
  removed.term = 7u << 8 | 1u;
  rc |= write_msg(dir, "removed-multipaxos.bin", &removed,
                  CODEC_KIND_MULTIPAXOS);
  /* Near misses. */
  struct codec_buf b;
  codec_buf_init(&b);
  if (codec_encode(&append, CODEC_KIND_RAFT, &b) != 0)
    return -1;
  rc |= write_file(dir, "miss-cut.bin", b.data, b.size_bytes - 5);
  b.data[4] = CODEC_VERSION + 1;
  rc |= write_file(dir, "miss-version.bin", b.data, b.size_bytes);
  codec_buf_free(&b);
  return rc;
}

static struct hs_hello hello(uint32_t id, const char *cluster,
                             const char *engine, uint16_t flags) {
  struct hs_hello h;
  memset(&h, 0, sizeof h);
  h.protocol_version = HS_PROTOCOL_VERSION;
  h.flags = flags;
  h.node_id = id;
  for (size_t i = 0; i < HS_NONCE_BYTES; i++)
    h.nonce[i] = (uint8_t)(i * 37 + id);
  snprintf(h.cluster_id, sizeof h.cluster_id, "%s", cluster);
  snprintf(h.engine, sizeof h.engine, "%s", engine);
  return h;
}

static int handshake_corpus(const char *dir) {
  uint8_t f[HS_HELLO_FRAME_BYTES_MAX];
  char longest[HS_CLUSTER_ID_BYTES_MAX + 1];
  memset(longest, 'z', HS_CLUSTER_ID_BYTES_MAX);
  longest[HS_CLUSTER_ID_BYTES_MAX] = '\0';
  int rc = 0;
  struct hs_hello h = hello(1, "prod", "raft", 0);
  rc |= write_file(dir, "hello.bin", f, hs_hello_encode(&h, f));
  h = hello(16, longest, "multipaxos", HS_FLAG_AUTH);
  size_t n = hs_hello_encode(&h, f);
  rc |= write_file(dir, "hello-auth-long.bin", f, n);
  le_put_u16(f + 14, HS_PROTOCOL_VERSION + 1);
  rc |= write_file(dir, "hello-future-version.bin", f, n);
  uint8_t mac[HS_MAC_BYTES];
  for (size_t i = 0; i < sizeof mac; i++)
    mac[i] = (uint8_t)(255 - i);
  uint8_t auth[HS_AUTH_FRAME_BYTES];
  hs_auth_encode(mac, auth);
  rc |= write_file(dir, "auth.bin", auth, sizeof auth);
  uint8_t refuse[HS_REFUSE_FRAME_BYTES];
  hs_refuse_encode(HS_REFUSED_CLUSTER, refuse);
  rc |= write_file(dir, "refuse-cluster.bin", refuse, sizeof refuse);
  return rc;
}

/* ---- frames: a settings prefix (secret flag, read size), then a stream */

/* Appends bytes to a seed being built. */
struct seed {
  uint8_t bytes[4096];
  size_t n;
};

static void seed_add(struct seed *s, const void *p, size_t n) {
  if (n > sizeof s->bytes - s->n) {
    fprintf(stderr, "a seed passes 4 KiB\n");
    exit(1);
  }
  memcpy(s->bytes + s->n, p, n);
  s->n += n;
}

static void seed_add_u8(struct seed *s, uint8_t v) {
  seed_add(s, &v, 1);
}

static void seed_add_u16(struct seed *s, uint16_t v) {
  uint8_t b[2];
  le_put_u16(b, v);
  seed_add(s, b, 2);
}

static void seed_add_msg(struct seed *s, const struct sabha_msg *m,
                         uint8_t kind) {
  struct codec_buf b;
  codec_buf_init(&b);
  if (codec_encode(m, kind, &b) != 0) {
    fprintf(stderr, "cannot encode a seed message\n");
    exit(1);
  }
  seed_add(s, b.data, b.size_bytes);
  codec_buf_free(&b);
}

static int frames_corpus(const char *dir) {
  static const uint8_t text[] = "set k v";
  struct sabha_entry e = {.index = 7,
                          .term = 2,
                          .type = SABHA_ENTRY_COMMAND,
                          .size_bytes = sizeof text - 1,
                          .data = text};
  struct sabha_msg heartbeat = {
      .type = 3, .from = 1, .to = 2, .term = 5, .commit = 40};
  struct sabha_msg append = {.type = 1,
                             .from = 1,
                             .to = 2,
                             .term = 3,
                             .index = 6,
                             .log_term = 2,
                             .n_entries = 1,
                             .entries = &e};
  uint8_t f[HS_HELLO_FRAME_BYTES_MAX];
  int rc = 0;
  struct seed s = {.n = 0};

  /* No secret, reads of 7 bytes: HELLO, then two messages. */
  seed_add_u8(&s, 0);
  seed_add_u8(&s, 6);
  struct hs_hello h = hello(1, "prod", "raft", 0);
  seed_add(&s, f, hs_hello_encode(&h, f));
  seed_add_msg(&s, &heartbeat, CODEC_KIND_RAFT);
  seed_add_msg(&s, &append, CODEC_KIND_RAFT);
  rc |= write_file(dir, "hello-msgs.bin", s.bytes, s.n);

  /* No secret, reads of 5 bytes: HELLO, then a bundle of two messages. */
  s.n = 0;
  seed_add_u8(&s, 0);
  seed_add_u8(&s, 4);
  seed_add(&s, f, hs_hello_encode(&h, f));
  size_t bundle_at = s.n;
  uint8_t head[CODEC_HEADER_BYTES] = {
      0, 0, 0, 0, CODEC_VERSION, CODEC_KIND_BUNDLE};
  seed_add(&s, head, sizeof head);
  seed_add_msg(&s, &heartbeat, CODEC_KIND_RAFT);
  seed_add_msg(&s, &append, CODEC_KIND_RAFT);
  le_put_u32(s.bytes + bundle_at,
             (uint32_t)(s.n - bundle_at - CODEC_LENGTH_BYTES));
  rc |= write_file(dir, "hello-bundle.bin", s.bytes, s.n);

  /* A secret: HELLO, AUTH, a message; reads of one byte. */
  s.n = 0;
  seed_add_u8(&s, 1);
  seed_add_u8(&s, 0);
  h = hello(2, "prod", "multipaxos", HS_FLAG_AUTH);
  seed_add(&s, f, hs_hello_encode(&h, f));
  uint8_t mac[HS_MAC_BYTES];
  memset(mac, 0xa5, sizeof mac);
  uint8_t auth[HS_AUTH_FRAME_BYTES];
  hs_auth_encode(mac, auth);
  seed_add(&s, auth, sizeof auth);
  seed_add_msg(&s, &append, CODEC_KIND_MULTIPAXOS);
  rc |= write_file(dir, "hello-auth-msg.bin", s.bytes, s.n);

  /* A REFUSE at once. */
  s.n = 0;
  seed_add_u8(&s, 0);
  seed_add_u8(&s, 255);
  uint8_t refuse[HS_REFUSE_FRAME_BYTES];
  hs_refuse_encode(HS_REFUSED_CLUSTER, refuse);
  seed_add(&s, refuse, sizeof refuse);
  rc |= write_file(dir, "refuse.bin", s.bytes, s.n);

  /* A stranger announcing a frame longer than a handshake may be. */
  s.n = 0;
  seed_add_u8(&s, 0);
  seed_add_u8(&s, 3);
  uint8_t big[CODEC_HEADER_BYTES] = {
      0, 0, 1, 0, CODEC_VERSION, CODEC_KIND_HELLO};
  seed_add(&s, big, sizeof big);
  rc |= write_file(dir, "miss-oversized-hello.bin", s.bytes, s.n);

  /* A message of another engine's kind after the HELLO. */
  s.n = 0;
  seed_add_u8(&s, 0);
  seed_add_u8(&s, 31);
  h = hello(3, "prod", "raft", 0);
  seed_add(&s, f, hs_hello_encode(&h, f));
  seed_add_msg(&s, &heartbeat, CODEC_KIND_PAXOS);
  rc |= write_file(dir, "miss-kind.bin", s.bytes, s.n);
  return rc;
}

/* ---- state machines: snapshots and committed commands --------------- */

static int write_flagged(const char *dir, const char *name, uint8_t flags,
                         const uint8_t *p, size_t n) {
  struct seed s = {.n = 0};
  seed_add_u8(&s, flags);
  seed_add(&s, p, n);
  return write_file(dir, name, s.bytes, s.n);
}

static uint8_t *kv_snapshot(const struct kvstore *kv, size_t *n) {
  *n = kvstore_snapshot_size(kv);
  uint8_t *p = malloc(*n);
  if (p == NULL || kvstore_snapshot(kv, p, *n) != *n)
    exit(1);
  return p;
}

static uint8_t *app_snapshot_of(const struct app *a, size_t *n) {
  *n = app_snapshot_size(a);
  uint8_t *p = malloc(*n);
  if (p == NULL || app_snapshot(a, p, *n) != *n)
    exit(1);
  return p;
}

/* kvstore, app and snapshot (the container of both). */
static int snapshot_corpora(const char *kv_dir, const char *app_dir,
                            const char *snap_dir) {
  struct kvstore_config kc = sm_kv_config();
  struct app_config ac = sm_app_config();
  struct kvstore *kv = NULL, *kv_empty = NULL;
  struct app *app = NULL, *app_empty = NULL;
  if (kvstore_new(&kv, &kc) != 0 || kvstore_new(&kv_empty, &kc) != 0 ||
      app_new(&app, &ac) != 0 || app_new(&app_empty, &ac) != 0)
    return -1;
  sm_kv_populate(kv);
  sm_app_populate(app);
  int rc = 0;
  size_t kv_n, kv0_n, app_n, app0_n;
  uint8_t *kvs = kv_snapshot(kv, &kv_n), *kv0 = kv_snapshot(kv_empty, &kv0_n);
  uint8_t *apps = app_snapshot_of(app, &app_n);
  uint8_t *app0 = app_snapshot_of(app_empty, &app0_n);

  rc |= write_flagged(kv_dir, "populated.bin", 0, kvs, kv_n);
  /* The lease's record and a leased key's lease id, each made wrong
   * behind a matching checksum. */
  kvs[33 + 28] ^= 0x02;
  rc |= write_flagged(kv_dir, "miss-lease-id.bin", 1, kvs, kv_n);
  kvs[33 + 28] ^= 0x02;
  kvs[33 + 28 + 24 + 24] ^= 0x01;
  rc |= write_flagged(kv_dir, "miss-key-lease.bin", 1, kvs, kv_n);
  kvs[33 + 28 + 24 + 24] ^= 0x01;
  rc |= write_flagged(kv_dir, "empty.bin", 0, kv0, kv0_n);
  /* A key length past the end, behind a checksum made to match. */
  kvs[kv_n - 30] ^= 0x40;
  rc |= write_flagged(kv_dir, "miss-flipped.bin", 1, kvs, kv_n);
  kvs[kv_n - 30] ^= 0x40;
  rc |= write_flagged(kv_dir, "miss-cut.bin", 0, kvs, kv_n / 2);

  rc |= write_flagged(app_dir, "populated.bin", 0, apps, app_n);
  {
    /* The same state under rules a rules entry recorded. */
    struct app *ruled = NULL;
    uint8_t rules_cmd[APP_RULES_CMD_BYTES];
    struct app_hdr rh = {.now_ms = 200, .tag = 0};
    struct app_rules rules = {.dedup_max = 4, .dedup_window_ms = 1000};
    struct app_reply rr;
    size_t ruled_n = 0;
    uint8_t *ruled_snap = NULL;
    if (app_new(&ruled, &ac) == 0) {
      sm_app_populate(ruled);
      app_encode_rules(rules_cmd, sizeof rules_cmd, &rh, &rules);
      if (app_apply(ruled, rules_cmd, sizeof rules_cmd, &rr) == 0)
        ruled_snap = app_snapshot_of(ruled, &ruled_n);
    }
    rc |= ruled_snap == NULL
              ? 1
              : write_flagged(app_dir, "rules.bin", 0, ruled_snap, ruled_n);
    free(ruled_snap);
    app_free(ruled);
  }
  rc |= write_flagged(app_dir, "empty.bin", 0, app0, app0_n);
  apps[app_n / 2] ^= 0x01;
  rc |= write_flagged(app_dir, "miss-flipped.bin", 1, apps, app_n);
  apps[app_n / 2] ^= 0x01;
  rc |= write_flagged(app_dir, "miss-cut.bin", 0, apps, app_n - 9);

  size_t n = rt_snap_size(kv_n, app_n, 0);
  uint8_t *c = malloc(n);
  if (c == NULL)
    return -1;
  memcpy(rt_snap_kv_at(c), kvs, kv_n);
  memcpy(rt_snap_app_at(c, kv_n), apps, app_n);
  rt_snap_seal(c, kv_n, app_n, 0);
  rc |= write_flagged(snap_dir, "container.bin", 0, c, n);
  rc |= write_flagged(snap_dir, "bare-kv.bin", 0, kvs, kv_n);
  c[20] ^= 0x10; /* inside the key-value part; all three sums rewritten */
  rc |= write_flagged(snap_dir, "miss-kv-part.bin", 7, c, n);
  free(c);
  n = rt_snap_size(kv0_n, app0_n, 0);
  c = malloc(n);
  if (c == NULL)
    return -1;
  memcpy(rt_snap_kv_at(c), kv0, kv0_n);
  memcpy(rt_snap_app_at(c, kv0_n), app0, app0_n);
  rt_snap_seal(c, kv0_n, app0_n, 0);
  rc |= write_flagged(snap_dir, "container-empty.bin", 0, c, n);
  free(c);

  free(kvs);
  free(kv0);
  free(apps);
  free(app0);
  kvstore_free(kv);
  kvstore_free(kv_empty);
  app_free(app);
  app_free(app_empty);
  return rc;
}

/* commands: entries of u8 type | u16 length | bytes. */
static void seed_add_entry(struct seed *s, uint8_t type, const uint8_t *p,
                           size_t n) {
  seed_add_u8(s, type);
  seed_add_u16(s, (uint16_t)n);
  seed_add(s, p, n);
}

static size_t app_cmd(uint8_t *buf, size_t cap, uint64_t now_ms, enum app_op op,
                      const char *const *words, size_t argc) {
  struct app_arg argv[APP_ARGS_MAX];
  for (size_t i = 0; i < argc; i++) {
    argv[i].ptr = (const uint8_t *)words[i];
    argv[i].len = strlen(words[i]);
  }
  struct app_hdr h = {.now_ms = now_ms, .tag = 1};
  return app_encode(buf, cap, &h, op, argv, argc);
}

/* The entries of kv-expire-conditions.bin into s; returns their bytes. */
static size_t expire_conditions_seed(struct seed *s, uint8_t *cmd, size_t cap) {
  enum { NX = KVSTORE_EXPIRE_NX, XX = KVSTORE_EXPIRE_XX };
  enum { GT = KVSTORE_EXPIRE_GT, LT = KVSTORE_EXPIRE_LT };
  static const struct {
    const char *key;
    enum kvstore_expire_mode mode;
    int64_t ms;
    uint32_t ifs;
  } expires[] = {
      {"k", KVSTORE_EXPIRE_IN, 5000, NX},      /* :1, no expiry yet */
      {"k", KVSTORE_EXPIRE_IN, 9000, NX},      /* :0 */
      {"k", KVSTORE_EXPIRE_IN, 1000, GT},      /* :0, sooner */
      {"k", KVSTORE_EXPIRE_IN, 8000, XX | GT}, /* :1 */
      {"k", KVSTORE_EXPIRE_AT, 3000, LT},      /* :1, at 3000 */
      {"p", KVSTORE_EXPIRE_IN, 100, XX},       /* :0, no expiry */
      {"p", KVSTORE_EXPIRE_IN, 100, GT},       /* :0, never is later */
      {"p", KVSTORE_EXPIRE_AT, 1, GT},         /* :0, kept */
      {"p", KVSTORE_EXPIRE_AT, 1, LT},         /* :1, past: deleted */
      {"k", KVSTORE_EXPIRE_IN, 10, NX | XX},   /* error: NX and XX */
      {"k", KVSTORE_EXPIRE_IN, 10, GT | LT},   /* error: GT and LT */
      {"l", KVSTORE_EXPIRE_IN, 10, LT},        /* error: leased */
      {"k", KVSTORE_EXPIRE_NONE, 0, 0},        /* PERSIST, :1 */
  };
  s->n = 0;
  size_t n = kvstore_encode_register(cmd, cap, 1000, 1);
  seed_add_entry(s, SABHA_ENTRY_COMMAND, cmd, n);
  struct kvstore_hdr h = {.session = 1, .seq = 1, .now_ms = 1001};
  n = kvstore_encode_set(cmd, cap, &h, sm_str("k"), sm_str("v"), 0, 0);
  seed_add_entry(s, SABHA_ENTRY_COMMAND, cmd, n);
  h.seq++;
  n = kvstore_encode_set(cmd, cap, &h, sm_str("p"), sm_str("v"), 0, 0);
  seed_add_entry(s, SABHA_ENTRY_COMMAND, cmd, n);
  h.seq++;
  n = kvstore_encode_lease(cmd, cap, &h, KVSTORE_OP_LEASE_GRANT, 4000);
  seed_add_entry(s, SABHA_ENTRY_COMMAND, cmd, n);
  h.seq++;
  n = kvstore_encode_set_ex(cmd, cap, &h, sm_str("l"), sm_str("v"),
                            KVSTORE_SET_LEASE, 0, 1);
  seed_add_entry(s, SABHA_ENTRY_COMMAND, cmd, n);
  for (size_t i = 0; i < sizeof expires / sizeof expires[0]; i++) {
    h.seq++;
    h.now_ms++;
    n = kvstore_encode_expire_ex(cmd, cap, &h, sm_str(expires[i].key),
                                 expires[i].mode, expires[i].ms,
                                 expires[i].ifs);
    seed_add_entry(s, SABHA_ENTRY_COMMAND, cmd, n);
  }
  return s->n;
}

static int commands_corpus(const char *dir) {
  uint8_t cmd[512];
  struct seed s = {.n = 0};
  int rc = 0;

  /* A session (REGISTER gives 1 in an empty store), writes, a CLOCK. */
  size_t n = kvstore_encode_register(cmd, sizeof cmd, 1000, 1);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  struct kvstore_hdr h = {.session = 1, .seq = 1, .now_ms = 1001};
  n = kvstore_encode_set(cmd, sizeof cmd, &h, sm_str("k"), sm_str("v"),
                         KVSTORE_SET_PX, 100);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  h.seq++;
  n = kvstore_encode_incrby(cmd, sizeof cmd, &h, sm_str("n"), -5);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  h.seq++;
  struct kvstore_slice keys[2] = {sm_str("k"), sm_str("n")};
  n = kvstore_encode_del(cmd, sizeof cmd, &h, keys, 2);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  seed_add_entry(&s, SABHA_ENTRY_NOOP, NULL, 0);
  n = kvstore_encode_clock(cmd, sizeof cmd, 5000);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  /* The DEL again, same sequence number: a resend, answered as before. */
  n = kvstore_encode_del(cmd, sizeof cmd, &h, keys, 2);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  rc |= write_file(dir, "kv-session.bin", s.bytes, s.n);

  /* EXPIRE with Redis 7's conditions, whose bits share the mode's byte:
   * each condition allowed and refused, a past instant that deletes, the
   * two refused combinations (error replies the store gives, not
   * malformed entries), a leased key EXPIRE refuses, then a PERSIST. */
  rc |= write_file(dir, "kv-expire-conditions.bin", s.bytes,
                   expire_conditions_seed(&s, cmd, sizeof cmd));
  /* Near misses: a condition on PERSIST, and one above the four. */
  h = (struct kvstore_hdr){.session = 1, .seq = 1, .now_ms = 1001};
  s.n = 0;
  n = kvstore_encode_register(cmd, sizeof cmd, 1000, 1);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  n = kvstore_encode_expire(cmd, sizeof cmd, &h, sm_str("k"),
                            KVSTORE_EXPIRE_NONE, 0);
  cmd[KVSTORE_CMD_HEADER_BYTES] |= KVSTORE_EXPIRE_NX;
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  n = kvstore_encode_expire(cmd, sizeof cmd, &h, sm_str("k"), KVSTORE_EXPIRE_IN,
                            10);
  cmd[KVSTORE_CMD_HEADER_BYTES] |= 8u; /* a mode past PERSIST */
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  rc |= write_file(dir, "miss-expire-conditions.bin", s.bytes, s.n);

  /* Every application, one command each, and a retried transfer. */
  s.n = 0;
  const char *open_a[] = {"asha", "1000"}, *open_r[] = {"ravi", "0"};
  const char *tx[] = {"tx1", "asha", "ravi", "300"};
  const char *seats[] = {"12951", "2024-03-01", "A1", "A2"};
  const char *any[] = {"r1", "12951", "2024-03-01", "meera"};
  const char *lock[] = {"leader", "n1", "3000"};
  const char *fenced[] = {"cfg", "v1", "leader", "1"};
  const char *order[] = {"o1", "asha", "999"};
  const char *advance[] = {"o1", "PAYMENT_CONFIRMED"};
  struct {
    enum app_op op;
    const char *const *w;
    size_t n;
  } script[] = {
      {APP_LEDGER_OPEN, open_a, 2}, {APP_LEDGER_OPEN, open_r, 2},
      {APP_LEDGER_TRANSFER, tx, 4}, {APP_LEDGER_TRANSFER, tx, 4},
      {APP_SEATS_ADD, seats, 4},    {APP_SEATS_ANY, any, 4},
      {APP_LOCK_ACQUIRE, lock, 3},  {APP_FENCED_SET, fenced, 4},
      {APP_ORDER_CREATE, order, 3}, {APP_ORDER_ADVANCE, advance, 2},
  };
  for (size_t i = 0; i < sizeof script / sizeof script[0]; i++) {
    n = app_cmd(cmd, sizeof cmd, 100 + i, script[i].op, script[i].w,
                script[i].n);
    seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  }
  rc |= write_file(dir, "apps.bin", s.bytes, s.n);

  /* Retry rules entries: one that shrinks the tables, one out of bounds,
   * between transfers. */
  s.n = 0;
  const char *tx2[] = {"tx2", "asha", "ravi", "1"};
  for (size_t i = 0; i < 3; i++) {
    n = app_cmd(cmd, sizeof cmd, 100 + i, script[i].op, script[i].w,
                script[i].n);
    seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  }
  struct app_hdr rh = {.now_ms = 110, .tag = 0};
  struct app_rules shrink = {.dedup_max = 1, .dedup_window_ms = 50};
  struct app_rules out_of_bounds = {.dedup_max = 0, .dedup_window_ms = 50};
  n = app_encode_rules(cmd, sizeof cmd, &rh, &shrink);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  n = app_cmd(cmd, sizeof cmd, 120, APP_LEDGER_TRANSFER, tx2, 4);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  n = app_encode_rules(cmd, sizeof cmd, &rh, &out_of_bounds);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  n = app_cmd(cmd, sizeof cmd, 200, APP_LEDGER_TRANSFER, tx, 4);
  seed_add_entry(&s, SABHA_ENTRY_COMMAND, cmd, n);
  rc |= write_file(dir, "app-rules.bin", s.bytes, s.n);

  /* One BATCH entry (Multi-Paxos packs commands into a slot): a
   * REGISTER, a SET and an app command, each behind its u32 length. */
  struct seed batch = {.n = 0};
  uint8_t len[4];
  n = kvstore_encode_register(cmd, sizeof cmd, 10, 2);
  le_put_u32(len, (uint32_t)n);
  seed_add(&batch, len, 4);
  seed_add(&batch, cmd, n);
  h = (struct kvstore_hdr){.session = 1, .seq = 1, .now_ms = 11};
  n = kvstore_encode_set(cmd, sizeof cmd, &h, sm_str("x"), sm_str("1"), 0, 0);
  le_put_u32(len, (uint32_t)n);
  seed_add(&batch, len, 4);
  seed_add(&batch, cmd, n);
  n = app_cmd(cmd, sizeof cmd, 12, APP_LEDGER_OPEN, open_a, 2);
  le_put_u32(len, (uint32_t)n);
  seed_add(&batch, len, 4);
  seed_add(&batch, cmd, n);
  s.n = 0;
  seed_add_entry(&s, SABHA_ENTRY_BATCH, batch.bytes, batch.n);
  rc |= write_file(dir, "batch.bin", s.bytes, s.n);
  /* The same batch with its last length one too long. */
  s.n = 0;
  seed_add_entry(&s, SABHA_ENTRY_BATCH, batch.bytes, batch.n - 1);
  rc |= write_file(dir, "miss-batch-cut.bin", s.bytes, s.n);
  return rc;
}

/* ---- wal: flags | u16 segment 1 | u16 segment 2 | u16 snapshot | bytes */

struct disk {
  struct memfs *fs;
  struct wal_io io;
  struct wal_options opt;
  char names[4][64];
  size_t n_names;
};

static int note_name(void *arg, const char *name) {
  struct disk *d = arg;
  if (d->n_names < 4)
    snprintf(d->names[d->n_names++], sizeof d->names[0], "%s", name);
  return 0;
}

static size_t read_whole(struct disk *d, const char *name, uint8_t *buf,
                         size_t cap) {
  char path[128];
  snprintf(path, sizeof path, "wal/%s", name);
  int fd;
  uint64_t size = 0;
  size_t got = 0;
  if (d->io.open(d->io.ctx, path, 0, &fd) != 0)
    return 0;
  if (d->io.size(d->io.ctx, fd, &size) != 0 || size > cap ||
      d->io.read(d->io.ctx, fd, 0, buf, (size_t)size, &got) != 0)
    got = 0;
  d->io.close(d->io.ctx, fd);
  return got;
}

/* Packs the log's files (segments in sequence order, then the snapshot,
 * or with `hsf` the hard state file) into one wal seed. `flip` > 0 flips
 * that byte of the first segment and asks the target to rewrite the
 * checksums; `cut` > 0 cuts that many bytes off the last segment. */
static int write_wal_seed(struct disk *d, const char *dir, const char *name,
                          size_t flip, size_t cut, bool hsf) {
  d->n_names = 0;
  if (d->io.list(d->io.ctx, "wal", note_name, d) != 0)
    return -1;
  static uint8_t seg[2][4096], snap[2 * WAL_HSF_BLOCK_BYTES];
  size_t seg_n[2] = {0, 0}, snap_n = 0, n_segs = 0;
  /* The two lowest segments; names sort by sequence number (fixed-width
   * hex). */
  const char *first = NULL, *second = NULL;
  for (size_t i = 0; i < d->n_names; i++) {
    uint64_t seq;
    if (!wal_seg_name_parse(d->names[i], &seq))
      continue;
    if (first == NULL || strcmp(d->names[i], first) < 0) {
      second = first;
      first = d->names[i];
    } else if (second == NULL || strcmp(d->names[i], second) < 0) {
      second = d->names[i];
    }
  }
  if (first != NULL)
    seg_n[n_segs++] = read_whole(d, first, seg[0], sizeof seg[0]);
  if (second != NULL)
    seg_n[n_segs++] = read_whole(d, second, seg[1], sizeof seg[1]);
  snap_n = read_whole(d, hsf ? WAL_HSF_NAME : WAL_SNAP_NAME, snap, sizeof snap);
  if (hsf && snap_n == sizeof snap) {
    /* The target rebuilds the file from the two 64-byte records. */
    memmove(snap + 64, snap + WAL_HSF_BLOCK_BYTES, 64);
    snap_n = 128;
  }
  if (flip > 0 && flip < seg_n[0])
    seg[0][flip] ^= 0x20;
  if (cut > 0 && n_segs > 0 && cut < seg_n[n_segs - 1])
    seg_n[n_segs - 1] -= cut;

  struct seed s = {.n = 0};
  seed_add_u8(&s, (uint8_t)((flip > 0 ? 2 : 0) | (hsf ? 8 : 0)));
  seed_add_u16(&s, (uint16_t)seg_n[0]);
  seed_add_u16(&s, (uint16_t)seg_n[1]);
  seed_add_u16(&s, (uint16_t)snap_n);
  seed_add(&s, seg[0], seg_n[0]);
  seed_add(&s, seg[1], seg_n[1]);
  seed_add(&s, snap, snap_n);
  return write_file(dir, name, s.bytes, s.n);
}

static int disk_open(struct disk *d, uint32_t segment_size_bytes,
                     struct wal **w) {
  memset(d, 0, sizeof *d);
  if (memfs_new(&d->fs, 3) != 0)
    return -1;
  memfs_io(d->fs, &d->io);
  wal_options_init(&d->opt, "wal");
  d->opt.io = &d->io;
  d->opt.segment_size_bytes = segment_size_bytes;
  d->opt.entry_size_bytes_max = 128;
  d->io.mkdir(d->io.ctx, "wal");
  struct sabha_persisted p;
  char err[WAL_ERRMSG_MAX];
  int rc = wal_open(w, &d->opt, &p, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "wal seed: %s\n", err);
  return rc;
}

static int append(struct wal *w, uint64_t term, uint64_t from, size_t n,
                  uint64_t commit) {
  static const uint8_t text[] = "set key value";
  struct sabha_entry e[8];
  for (size_t i = 0; i < n && i < 8; i++)
    e[i] = (struct sabha_entry){.index = from + i,
                                .term = term,
                                .type = i % 3 == 2 ? SABHA_ENTRY_NOOP
                                                   : SABHA_ENTRY_COMMAND,
                                .size_bytes = i % 3 == 2 ? 0 : 5 + (uint32_t)i,
                                .data = i % 3 == 2 ? NULL : text};
  struct sabha_ready rd;
  memset(&rd, 0, sizeof rd);
  rd.has_hard_state = true;
  rd.hard_state =
      (struct sabha_hard_state){.term = term, .vote = 2, .commit = commit};
  rd.entries = e;
  rd.n_entries = n;
  int rc = wal_append_ready(w, &rd);
  if (rc == 0)
    rc = wal_sync(w);
  if (rc != 0)
    fprintf(stderr, "wal seed: %s\n", wal_errmsg(w));
  return rc;
}

static int wal_corpus(const char *dir) {
  struct disk d;
  struct wal *w = NULL;
  int rc = 0;

  /* One segment, closed cleanly; the same cut (a torn tail) and with a
   * flipped byte in a record. */
  if (disk_open(&d, 1 << 20, &w) != 0 || append(w, 1, 1, 4, 2) != 0 ||
      append(w, 2, 5, 3, 6) != 0 || wal_close_clean(w) != 0)
    return -1;
  rc |= write_wal_seed(&d, dir, "clean.bin", 0, 0, false);
  rc |= write_wal_seed(&d, dir, "miss-torn.bin", 0, 11, false);
  rc |= write_wal_seed(&d, dir, "miss-flipped.bin", 90, 0, false);
  /* Damage repaired with the hard state file beside the log. */
  rc |= write_wal_seed(&d, dir, "repair-hardstate.bin", 90, 0, true);
  memfs_free(d.fs);

  /* A Raft-style truncation, then a crash (no CLOSE). */
  if (disk_open(&d, 1 << 20, &w) != 0 || append(w, 1, 1, 5, 3) != 0)
    return -1;
  struct sabha_ready rd;
  memset(&rd, 0, sizeof rd);
  rd.truncate_from = 4;
  if (wal_append_ready(w, &rd) != 0 || append(w, 3, 4, 2, 3) != 0)
    return -1;
  wal_close(w);
  rc |= write_wal_seed(&d, dir, "truncated-crash.bin", 0, 0, false);
  memfs_free(d.fs);

  /* Small segments and a snapshot: two segments and the snapshot file. */
  if (disk_open(&d, 512, &w) != 0)
    return -1;
  for (uint64_t i = 0; i < 6; i++)
    if (append(w, 1 + i / 3, 1 + 4 * i, 4, 4 * i) != 0)
      return -1;
  struct sabha_snapshot_meta meta = {.index = 10, .term = 1};
  static const uint8_t state[] = "SKV1 pretend state machine bytes";
  if (wal_save_snapshot(w, &meta, state, sizeof state) != 0 ||
      append(w, 3, 25, 2, 24) != 0 || wal_close_clean(w) != 0)
    return -1;
  rc |= write_wal_seed(&d, dir, "segments-snapshot.bin", 0, 0, false);
  memfs_free(d.fs);
  return rc;
}

static int gen(const char *root, const char *target,
               int (*fn)(const char *dir)) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", root, target);
  if (fn(dir) != 0) {
    fprintf(stderr, "fuzz_gen_corpus: %s failed\n", target);
    return -1;
  }
  return 0;
}

static const char *corpus_root;

static int snapshot_three(const char *unused) {
  (void)unused;
  char kv[4096], app[4096], snap[4096];
  snprintf(kv, sizeof kv, "%s/kvstore", corpus_root);
  snprintf(app, sizeof app, "%s/app", corpus_root);
  snprintf(snap, sizeof snap, "%s/snapshot", corpus_root);
  return snapshot_corpora(kv, app, snap);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  corpus_root = argv[1];
  int rc = 0;
  rc |= gen(argv[1], "codec", codec_corpus);
  rc |= gen(argv[1], "handshake", handshake_corpus);
  rc |= gen(argv[1], "frames", frames_corpus);
  rc |= gen(argv[1], "kvstore", snapshot_three);
  rc |= gen(argv[1], "commands", commands_corpus);
  rc |= gen(argv[1], "wal", wal_corpus);
  return rc != 0 ? 1 : 0;
}
