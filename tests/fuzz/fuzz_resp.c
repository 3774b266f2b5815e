/* Fuzz target for the RESP2 request parser (src/node/resp.c), in this
 * directory's convention (fuzz.h): it links with libFuzzer under clang, or
 * with replay.c under any compiler.
 *
 * Input layout: 6 bytes of settings, then the stream. Byte 0 sets args_max
 * (1 + b % 64), byte 1 arg_bytes_max (4b), byte 2 inline_bytes_max (2b),
 * byte 3 command_bytes_max (16b), byte 4 bit 0 "unauthenticated" and the
 * scratch size, byte 5 where the stream is split into two reads. So the
 * fuzzer explores the limit checks as well as the grammar; the rest is
 * the byte stream a client sent. The target parses it as a server would, one
 * pipelined command after another, and asserts the parser's contract (see
 * resp.h): a complete command lies inside the consumed bytes or the scratch,
 * and parsing only those bytes gives the same command; an incomplete stream
 * names a need_bytes beyond what it has; an error is one clean line; and
 * splitting the stream at a fuzzer-chosen point changes nothing. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "node/resp.h"

#define ARGS_MAX 64u
#define SCRATCH_BYTES 256u
#define COMMANDS_MAX 4096u

static struct resp_arg argv_a[ARGS_MAX], argv_b[ARGS_MAX];
static uint8_t scratch_a[SCRATCH_BYTES], scratch_b[SCRATCH_BYTES];

/* A cheap fingerprint of one command, to compare two parses. Not of the
 * bytes consumed: those include skipped empty requests, which a split can
 * move from one call to the one before. */
static uint64_t fingerprint(const struct resp_cmd *cmd, uint64_t salt) {
  uint64_t h = 1469598103934665603ull ^ salt ^ ((uint64_t)cmd->argc << 32);
  for (uint32_t i = 0; i < cmd->argc; i++) {
    h = (h ^ cmd->argv[i].len) * 1099511628211ull;
    for (size_t j = 0; j < cmd->argv[i].len; j++)
      h = (h ^ cmd->argv[i].ptr[j]) * 1099511628211ull;
  }
  return h;
}

struct outcome {
  size_t n;    /* commands, plus one entry for a final error */
  size_t used; /* bytes consumed */
  bool failed; /* ended in a protocol error */
};

/* Parses a stream as a server would, one pipelined command after another,
 * checking the contract on each; writes one fingerprint per command (and one
 * for a final error) into prints[0, prints_cap). */
static struct outcome parse_stream(const uint8_t *buf, size_t len,
                                   const struct resp_limits *lim,
                                   size_t scratch_cap, uint64_t *prints,
                                   size_t prints_cap) {
  struct resp_cmd cmd = {.argv = argv_a,
                         .argv_cap = ARGS_MAX,
                         .scratch = scratch_a,
                         .scratch_cap = scratch_cap};
  struct outcome out = {0, 0, false};
  while (out.n < prints_cap) {
    size_t rest = len - out.used;
    size_t consumed = 0;
    enum resp_status st =
        resp_parse(buf + out.used, rest, &cmd, &consumed, lim);
    if (st == RESP_ERROR) {
      size_t n = strlen(cmd.error);
      REQUIRE(consumed == 0 && n > 0);
      REQUIRE(memchr(cmd.error, '\r', n) == NULL);
      REQUIRE(memchr(cmd.error, '\n', n) == NULL);
      /* The error's fingerprint is its message's. */
      struct resp_arg msg = {(const uint8_t *)cmd.error, n};
      struct resp_cmd as_cmd = {.argv = &msg, .argc = 1};
      prints[out.n++] = fingerprint(&as_cmd, 0xE77);
      out.failed = true;
      break;
    }
    if (st == RESP_INCOMPLETE) {
      REQUIRE(consumed <= rest && cmd.need_bytes > rest);
      out.used += consumed;
      break;
    }
    REQUIRE(st == RESP_COMPLETE);
    REQUIRE(consumed > 0 && consumed <= rest);
    REQUIRE(cmd.argc >= 1 && cmd.argc <= lim->args_max);
    const uint8_t *at = buf + out.used;
    for (uint32_t i = 0; i < cmd.argc; i++) {
      const uint8_t *p = cmd.argv[i].ptr;
      size_t m = cmd.argv[i].len;
      bool in_buf = p >= at && p + m <= at + consumed;
      bool in_scratch = p >= scratch_a && p + m <= scratch_a + scratch_cap;
      REQUIRE(in_buf || in_scratch);
      REQUIRE(cmd.is_inline || m <= lim->arg_bytes_max);
    }
    /* The consumed bytes alone hold the same command. */
    struct resp_cmd again = {.argv = argv_b,
                             .argv_cap = ARGS_MAX,
                             .scratch = scratch_b,
                             .scratch_cap = scratch_cap};
    size_t consumed_again = 0;
    enum resp_status st_again =
        resp_parse(at, consumed, &again, &consumed_again, lim);
    REQUIRE(st_again == RESP_COMPLETE && consumed_again == consumed);
    REQUIRE(fingerprint(&again, 0) == fingerprint(&cmd, 0));
    prints[out.n++] = fingerprint(&cmd, 0);
    out.used += consumed;
  }
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 6)
    return 0;
  struct resp_limits lim = {
      .args_max = 1 + data[0] % ARGS_MAX,
      .arg_bytes_max = (size_t)data[1] * 4,
      .inline_bytes_max = (size_t)data[2] * 2,
      .command_bytes_max = (size_t)data[3] * 16,
      .unauthenticated = data[4] & 1,
  };
  size_t scratch_cap = (data[4] >> 1) % 2 ? SCRATCH_BYTES : data[4] % 16;
  size_t split = data[5];
  data += 6;
  size_t len = size - 6;
  if (split > len)
    split = len;

  static uint64_t whole[COMMANDS_MAX], parts[COMMANDS_MAX];
  struct outcome w =
      parse_stream(data, len, &lim, scratch_cap, whole, COMMANDS_MAX);
  if (w.n == COMMANDS_MAX)
    return 0; /* too many commands to compare; rare */

  /* Two reads: the first `split` bytes, then the rest behind what the first
   * left unconsumed. The commands must be the same; an error seen early must
   * be the error the whole stream gives. */
  struct outcome a =
      parse_stream(data, split, &lim, scratch_cap, parts, COMMANDS_MAX);
  if (a.failed) {
    REQUIRE(w.failed && a.n == w.n);
    REQUIRE(memcmp(parts, whole, w.n * sizeof whole[0]) == 0);
    return 0;
  }
  struct outcome b = parse_stream(data + a.used, len - a.used, &lim,
                                  scratch_cap, parts + a.n, COMMANDS_MAX - a.n);
  REQUIRE(a.n + b.n == w.n && b.failed == w.failed);
  REQUIRE(memcmp(parts, whole, w.n * sizeof whole[0]) == 0);
  REQUIRE(w.failed || a.used + b.used == w.used);
  return 0;
}
