/* The hard state file: term, vote and repair guard kept where one bad
 * block cannot take them away.
 *
 * The log restates the hard state at the start of every segment and after
 * every change, but the latest copy is one record in one block: if that
 * block goes bad, the log alone cannot prove which term the node reached or
 * whom it voted for, and a node that forgets a vote can vote twice in a
 * term. So wal_sync() also keeps the hard state in `hardstate`, twice, in
 * two 4 KiB blocks that share no disk sector (docs/storage.md):
 *
 *     block 0 at offset 0, block 1 at offset 4096, each 4096 bytes:
 *      0  magic "SABHAHSF"      32  u32 vote
 *      8  u32 version 1         36  u32 flags: bit 0, a hard state is set
 *     12  u32 record bytes, 64  40  u64 commit (a hint)
 *     16  u64 generation        48  u64 repair_until (0: no guard)
 *     24  u64 term              56  u32 0
 *                               60  u32 CRC32C of bytes 0..59
 *     then zeros to the end of the block (checked: any other byte there
 *     is damage too).
 *
 * An update writes block 0 and fsyncs it, then block 1 and fsyncs it, so a
 * crash tears at most one block, and the other holds the previous or the
 * new state. The file is rewritten only when term, vote or guard change
 * (elections: rare), never for the commit hint alone. It is created under
 * a temporary name, fsynced and renamed, so under its own name it is whole.
 *
 * Reading takes the valid block with the higher generation. wal_open
 * merges it with the log's last hard state (terms and guards only grow
 * while the guard holds; within a term the vote is set once) and rewrites
 * both blocks whenever they are not both valid and equal, so that one bad
 * block is repaired before a second can strike. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "sabha/error.h"
#include "storage/crc32c.h"
#include "storage/wal_internal.h"

#define HSF_MAGIC "SABHAHSF"
#define HSF_VERSION 1u
#define HSF_RECORD_BYTES 64u
#define HSF_CRC_AT 60u

static void hsf_encode(uint8_t *block, uint64_t gen, bool has_hs,
                       const struct sabha_hard_state *hs) {
  memset(block, 0, WAL_HSF_BLOCK_BYTES);
  memcpy(block, HSF_MAGIC, 8);
  le_put_u32(block + 8, HSF_VERSION);
  le_put_u32(block + 12, HSF_RECORD_BYTES);
  le_put_u64(block + 16, gen);
  le_put_u64(block + 24, hs->term);
  le_put_u32(block + 32, hs->vote);
  le_put_u32(block + 36, has_hs ? 1u : 0u);
  le_put_u64(block + 40, hs->commit);
  le_put_u64(block + 48, hs->repair_until);
  le_put_u32(block + HSF_CRC_AT, wal_crc32c(0, block, HSF_CRC_AT));
}

static bool hsf_decode(const uint8_t *block, size_t len, struct wal_hsf *out) {
  if (len < WAL_HSF_BLOCK_BYTES || memcmp(block, HSF_MAGIC, 8) != 0 ||
      le_get_u32(block + 8) != HSF_VERSION ||
      le_get_u32(block + 12) != HSF_RECORD_BYTES ||
      le_get_u32(block + 56) != 0 ||
      wal_crc32c(0, block, HSF_CRC_AT) != le_get_u32(block + HSF_CRC_AT) ||
      (le_get_u32(block + 36) & ~1u) != 0)
    return false;
  for (size_t i = HSF_RECORD_BYTES; i < WAL_HSF_BLOCK_BYTES; i++)
    if (block[i] != 0)
      return false;
  out->gen = le_get_u64(block + 16);
  out->has_hs = (le_get_u32(block + 36) & 1u) != 0;
  out->hs.term = le_get_u64(block + 24);
  out->hs.vote = le_get_u32(block + 32);
  out->hs.commit = le_get_u64(block + 40);
  out->hs.repair_until = le_get_u64(block + 48);
  return true;
}

int wal_hsf_read(struct wal *w, struct wal_hsf *out) {
  memset(out, 0, sizeof *out);
  const char *path = wal_path(w, WAL_HSF_NAME);
  int fd;
  int rv = w->io.open(w->io.ctx, path, 0, &fd);
  if (rv == -ENOENT)
    return 0; /* a log from an older build, or a new one */
  if (rv != 0)
    return wal_io_error(w, rv, "open", path);
  out->present = true;
  uint8_t img[2 * WAL_HSF_BLOCK_BYTES + 1];
  size_t n = 0;
  rv = w->io.read(w->io.ctx, fd, 0, img, sizeof img, &n);
  w->io.close(w->io.ctx, fd);
  if (rv != 0)
    return wal_io_error(w, rv, "read", path);
  struct wal_hsf b[2] = {{0}, {0}};
  bool ok[2];
  for (int k = 0; k < 2; k++) {
    size_t at = (size_t)k * WAL_HSF_BLOCK_BYTES;
    ok[k] = n >= at && hsf_decode(img + at, n - at, &b[k]);
  }
  out->good = (uint32_t)ok[0] + (uint32_t)ok[1];
  if (out->good == 0)
    return 0;
  int best = !ok[0] || (ok[1] && b[1].gen > b[0].gen) ? 1 : 0;
  out->gen = b[best].gen;
  out->has_hs = b[best].has_hs;
  out->hs = b[best].hs;
  /* Whole means both blocks valid and alike, and nothing after them. */
  out->whole = out->good == 2 && n == 2 * WAL_HSF_BLOCK_BYTES &&
               b[0].gen == b[1].gen &&
               memcmp(img, img + WAL_HSF_BLOCK_BYTES, HSF_RECORD_BYTES) == 0;
  return 0;
}

int wal_hsf_write(struct wal *w, bool has_hs,
                  const struct sabha_hard_state *hs) {
  uint8_t img[2 * WAL_HSF_BLOCK_BYTES];
  uint64_t gen = w->hsf.gen + 1;
  hsf_encode(img, gen, has_hs, hs);
  memcpy(img + WAL_HSF_BLOCK_BYTES, img, WAL_HSF_BLOCK_BYTES);
  int rv = 0;
  if (!w->hsf.present) {
    rv = wal_write_whole(w, WAL_HSF_TMP_NAME, WAL_HSF_NAME, img, sizeof img);
  } else {
    const char *path = wal_path(w, WAL_HSF_NAME);
    int fd;
    rv = w->io.open(w->io.ctx, path, 0, &fd);
    if (rv != 0)
      return wal_io_error(w, rv, "open", path);
    /* One block durable before the other is touched: a crash in between
     * leaves one of them whole, old or new. A file longer than two blocks
     * (damage) is cut back first. */
    uint64_t size = 0;
    rv = w->io.size(w->io.ctx, fd, &size);
    if (rv == 0 && size > 2 * WAL_HSF_BLOCK_BYTES)
      rv = w->io.truncate(w->io.ctx, fd, 2 * WAL_HSF_BLOCK_BYTES);
    for (int k = 0; rv == 0 && k < 2; k++) {
      rv = w->io.write(w->io.ctx, fd, (uint64_t)k * WAL_HSF_BLOCK_BYTES,
                       img + (size_t)k * WAL_HSF_BLOCK_BYTES,
                       WAL_HSF_BLOCK_BYTES);
      if (rv == 0)
        rv = w->io.sync(w->io.ctx, fd, true);
    }
    w->io.close(w->io.ctx, fd);
    if (rv != 0)
      return wal_io_error(w, rv, "write", path);
  }
  if (rv != 0)
    return rv;
  w->hsf = (struct wal_hsf){.present = true,
                            .good = 2,
                            .whole = true,
                            .gen = gen,
                            .has_hs = has_hs,
                            .hs = *hs};
  return 0;
}

bool wal_hsf_stale(const struct wal *w) {
  const struct wal_hsf *f = &w->hsf;
  if (!w->has_hs)
    return false;
  return !f->whole || !f->has_hs || f->hs.term != w->hs.term ||
         f->hs.vote != w->hs.vote || f->hs.repair_until != w->hs.repair_until;
}

int wal_hs_merge(struct wal *w, bool *has_hs, struct sabha_hard_state *hs,
                 const struct wal_hsf *f) {
  if (!f->has_hs)
    return 0;
  if (!*has_hs) {
    *has_hs = true;
    *hs = f->hs;
    return 0;
  }
  struct sabha_hard_state m = *hs;
  if (f->hs.term > m.term) {
    m.term = f->hs.term;
    m.vote = f->hs.vote;
  } else if (f->hs.term == m.term && f->hs.vote != m.vote) {
    if (m.vote != SABHA_NODE_NONE && f->hs.vote != SABHA_NODE_NONE)
      return wal_error(w, SABHA_ECORRUPT,
                       "%s: the log and the hard state file name different "
                       "votes (%u, %u) in term %llu",
                       wal_path(w, WAL_HSF_NAME), m.vote, f->hs.vote,
                       (unsigned long long)m.term);
    if (m.vote == SABHA_NODE_NONE)
      m.vote = f->hs.vote;
  }
  /* The commit hint stays the log's: the file's is only as new as the
   * last term, vote or guard change. */
  /* A guard in either place holds: keeping one too long only delays a
   * vote, dropping one could lose a committed entry. */
  if (f->hs.repair_until > m.repair_until)
    m.repair_until = f->hs.repair_until;
  *hs = m;
  return 0;
}
