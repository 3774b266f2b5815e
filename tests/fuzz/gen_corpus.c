/* Writes the seed corpora of the fuzz targets (corpus/codec and
 * corpus/handshake), so that they are reproducible rather than opaque
 * binary files: valid frames of every shape and kind, and a few near misses
 * (a cut, a wrong version) that start a fuzzer close to the boundaries.
 *
 *   usage: fuzz_gen_corpus CODEC_DIR HANDSHAKE_DIR
 *
 * Not a test; rerun it when the format changes, and review the diff. */
#include <stdio.h>
#include <string.h>

#include "core/endian.h"
#include "net/codec.h"
#include "net/handshake.h"

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

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s CODEC_DIR HANDSHAKE_DIR\n", argv[0]);
    return 2;
  }
  if (codec_corpus(argv[1]) != 0 || handshake_corpus(argv[2]) != 0)
    return 1;
  return 0;
}
