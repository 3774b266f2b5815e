/* Unit tests for the RESP2 parser and reply writers (src/server/resp.c).
 *
 * The parser is a pure function over a buffer, so each test hands it bytes
 * and checks the verdict. The properties that matter most for a network
 * server: a command split across reads at any byte parses the same as when
 * it arrives whole; a malformed or oversized request is refused with Redis's
 * message, and as early as its bytes show the fault; and no input, however
 * mangled, makes the parser misbehave (run under ASan and UBSan). Run with a
 * test name as the argument to run only that test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/prng.h"
#include "sabha/error.h"
#include "node/resp.h"
#include "check.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal's bytes, embedded NULs included, without the final NUL. */
#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)

#define ARGV_CAP 65536u
#define SCRATCH_BYTES ((size_t)64 << 10)

static struct resp_arg argv_store[ARGV_CAP];
static uint8_t scratch_store[SCRATCH_BYTES];

static struct resp_cmd cmd_new(bool with_scratch) {
  struct resp_cmd cmd;
  memset(&cmd, 0, sizeof cmd);
  cmd.argv = argv_store;
  cmd.argv_cap = ARGV_CAP;
  if (with_scratch) {
    cmd.scratch = scratch_store;
    cmd.scratch_cap = sizeof scratch_store;
  }
  return cmd;
}

static bool arg_is(const struct resp_cmd *cmd, uint32_t i, const char *s,
                   size_t n) {
  return i < cmd->argc && cmd->argv[i].len == n &&
         (n == 0 || memcmp(cmd->argv[i].ptr, s, n) == 0);
}
#define ARG_IS(cmd, i, s) arg_is((cmd), (i), (s), sizeof(s) - 1)

static void multibulk_command_is_parsed_in_place(void) {
  static const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  CHECK(resp_parse(LIT(in), &cmd, &consumed, &resp_limits_default) ==
        RESP_COMPLETE);
  CHECK(consumed == sizeof in - 1);
  CHECK(cmd.argc == 3 && !cmd.is_inline);
  CHECK(ARG_IS(&cmd, 0, "SET") && ARG_IS(&cmd, 1, "k"));
  CHECK(ARG_IS(&cmd, 2, "hello"));
  /* No copy: the arguments point into the input. */
  CHECK(cmd.argv[2].ptr == (const uint8_t *)in + 24);
}

static void bulk_arguments_are_binary_safe(void) {
  static const char in[] = "*2\r\n$4\r\n\r\n\0*\r\n$0\r\n\r\n";
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  CHECK(resp_parse(LIT(in), &cmd, &consumed, &resp_limits_default) ==
        RESP_COMPLETE);
  CHECK(consumed == sizeof in - 1 && cmd.argc == 2);
  CHECK(arg_is(&cmd, 0, "\r\n\0*", 4));
  CHECK(cmd.argv[1].len == 0);
}

/* Parses every command in buf as a server loop would, into a flat record:
 * per command its argc, then each argument's length and bytes. Returns the
 * final status (RESP_INCOMPLETE when the buffer ran out cleanly) and sets
 * *used to the bytes consumed. */
static enum resp_status parse_all(const uint8_t *buf, size_t len,
                                  const struct resp_limits *lim,
                                  struct resp_buf *record, size_t *used,
                                  char *error) {
  struct resp_cmd cmd = cmd_new(true);
  size_t pos = 0;
  for (;;) {
    size_t consumed = 0;
    enum resp_status st =
        resp_parse(buf + pos, len - pos, &cmd, &consumed, lim);
    if (st == RESP_ERROR && error != NULL)
      strcpy(error, cmd.error);
    if (st != RESP_COMPLETE) {
      *used = pos + (st == RESP_INCOMPLETE ? consumed : 0);
      return st;
    }
    resp_buf_printf(record, "%u:", cmd.argc);
    for (uint32_t i = 0; i < cmd.argc; i++) {
      resp_buf_printf(record, "%zu=", cmd.argv[i].len);
      resp_buf_append(record, cmd.argv[i].ptr, cmd.argv[i].len);
    }
    resp_buf_append(record, ";", 1);
    pos += consumed;
  }
}

static void pipelined_commands_come_out_one_by_one(void) {
  static const char in[] = "*1\r\n$4\r\nPING\r\n"
                           "ECHO hi\r\n"
                           "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                           "*1\r\n$4\r\nPI";
  struct resp_buf rec;
  resp_buf_init(&rec, 1 << 20);
  size_t used = 0;
  CHECK(parse_all(LIT(in), &resp_limits_default, &rec, &used, NULL) ==
        RESP_INCOMPLETE);
  static const char want[] = "1:4=PING;2:4=ECHO2=hi;2:3=GET1=k;";
  CHECK(rec.len == sizeof want - 1 && memcmp(rec.data, want, rec.len) == 0);
  CHECK(used == sizeof in - 1 - 10); /* the partial PING stays */
  resp_buf_free(&rec);
}

static void empty_requests_are_skipped_without_a_reply(void) {
  static const char in[] = "*0\r\n*-1\r\n\r\n \t \r\n\nPING\r\n";
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  CHECK(resp_parse(LIT(in), &cmd, &consumed, &resp_limits_default) ==
        RESP_COMPLETE);
  CHECK(consumed == sizeof in - 1 && cmd.argc == 1 && ARG_IS(&cmd, 0, "PING"));
  CHECK(cmd.is_inline);
  /* Only empty requests: incomplete, but the caller may drop them. */
  static const char empties[] = "*0\r\n\r\n*-1\r\n";
  CHECK(resp_parse(LIT(empties), &cmd, &consumed, &resp_limits_default) ==
        RESP_INCOMPLETE);
  CHECK(consumed == sizeof empties - 1);
}

/* Inputs made of valid commands, for the split tests. */
static const char *const valid_streams[] = {
    "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
    "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
    "PING\r\nSET k \"a b\\x41\"\r\nGET 'k'\n",
    "*0\r\n\r\n*1\r\n$0\r\n\r\n*-1\r\nECHO x\r\n",
    "*2\r\n$4\r\nECHO\r\n$12\r\nline\r\nbreaks\r\n\r\n",
};

/* Every split of each stream into two reads gives the commands the whole
 * stream gives, and while a command is incomplete the parser says so (never
 * a premature command or a false error), with a need_bytes hint that never
 * overshoots. */
static void every_split_point_gives_the_same_commands(void) {
  const struct resp_limits *lim = &resp_limits_default;
  for (size_t s = 0; s < N(valid_streams); s++) {
    const uint8_t *in = (const uint8_t *)valid_streams[s];
    size_t len = strlen(valid_streams[s]);
    struct resp_buf whole, split;
    resp_buf_init(&whole, 1 << 20);
    resp_buf_init(&split, 1 << 20);
    size_t used = 0;
    CHECK(parse_all(in, len, lim, &whole, &used, NULL) == RESP_INCOMPLETE);
    CHECK(used == len);

    for (size_t k = 0; k <= len; k++) {
      /* First read: k bytes. The connection keeps what was not consumed. */
      resp_buf_reset(&split);
      size_t used_first = 0;
      CHECK(parse_all(in, k, lim, &split, &used_first, NULL) ==
            RESP_INCOMPLETE);
      /* Second read: the rest arrives behind the leftover bytes. */
      size_t used_second = 0;
      CHECK(parse_all(in + used_first, len - used_first, lim, &split,
                      &used_second, NULL) == RESP_INCOMPLETE);
      CHECK(used_first + used_second == len);
      CHECK(split.len == whole.len &&
            memcmp(split.data, whole.data, whole.len) == 0);

      /* The hint: no prefix shorter than need_bytes completes. */
      struct resp_cmd cmd = cmd_new(true);
      size_t consumed = 0;
      if (resp_parse(in, k, &cmd, &consumed, lim) == RESP_INCOMPLETE) {
        CHECK(cmd.need_bytes > k);
        size_t need = cmd.need_bytes;
        for (size_t k2 = k; k2 < need && k2 <= len; k2++) {
          struct resp_cmd cmd2 = cmd_new(true);
          CHECK(resp_parse(in, k2, &cmd2, &consumed, lim) == RESP_INCOMPLETE);
        }
      }
    }
    resp_buf_free(&whole);
    resp_buf_free(&split);
  }
}

static void a_large_bulk_announces_how_many_bytes_it_needs(void) {
  uint8_t in[64];
  int n = snprintf((char *)in, sizeof in, "*1\r\n$1000\r\n0123456789");
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  CHECK(resp_parse(in, (size_t)n, &cmd, &consumed, &resp_limits_default) ==
        RESP_INCOMPLETE);
  CHECK(cmd.need_bytes == 11 + 1000 + 2);
  CHECK(consumed == 0);
}

struct bad {
  const char *in;
  size_t len; /* 0: strlen(in) */
  const char *error;
};

#define PE "ERR Protocol error: "
static const struct bad bad_inputs[] = {
    {"*abc\r\n", 0, PE "invalid multibulk length"},
    {"*-2\r\n", 0, PE "invalid multibulk length"},
    {"*01\r\n", 0, PE "invalid multibulk length"},
    {"*+1\r\n", 0, PE "invalid multibulk length"},
    {"*-0\r\n", 0, PE "invalid multibulk length"},
    {"*\r\n", 0, PE "invalid multibulk length"},
    {"*1 \r\n", 0, PE "invalid multibulk length"},
    {"*1\n", 0, PE "invalid multibulk length"},
    {"*1\rX", 0, PE "invalid multibulk length"},
    {"*99999999999999999999\r\n", 0, PE "invalid multibulk length"},
    {"*9223372036854775808\r\n", 0, PE "invalid multibulk length"},
    {"*65537\r\n", 0, PE "invalid multibulk length"},
    {"*1\r\n$-1\r\n", 0, PE "invalid bulk length"},
    {"*1\r\n$-5\r\n", 0, PE "invalid bulk length"},
    {"*1\r\n$x\r\n", 0, PE "invalid bulk length"},
    {"*1\r\n$3\n", 0, PE "invalid bulk length"},
    {"*1\r\n$8388609\r\n", 0, PE "invalid bulk length"},
    {"*1\r\nfoo\r\n", 0, PE "expected '$', got 'f'"},
    {"*2\r\n$3\r\nfoo\r\n:1\r\n", 0, PE "expected '$', got ':'"},
    {"*1\r\n\r\n", 0, PE "expected '$', got '\\x0d'"},
    {"*1\r\n$3\r\nfooX\r\n", 0, PE "expected CRLF after bulk argument"},
    {"*1\r\n$3\r\nfoo\rX", 0, PE "expected CRLF after bulk argument"},
    {"*1\r\n$3\r\nfoo\n\n", 0, PE "expected CRLF after bulk argument"},
    {"SET k \"abc\r\n", 0, PE "unbalanced quotes in request"},
    {"SET k \"a\"b\r\n", 0, PE "unbalanced quotes in request"},
    {"SET k 'abc\r\n", 0, PE "unbalanced quotes in request"},
    {"SET k 'a'b\r\n", 0, PE "unbalanced quotes in request"},
    {"SET k \"abc\\\"\r\n", 0, PE "unbalanced quotes in request"},
};

/* Each malformed input is refused with Redis's message, and each of its
 * prefixes is either incomplete or already refused the same way. */
static void malformed_requests_are_refused_with_redis_messages(void) {
  for (size_t i = 0; i < N(bad_inputs); i++) {
    const uint8_t *in = (const uint8_t *)bad_inputs[i].in;
    size_t len =
        bad_inputs[i].len ? bad_inputs[i].len : strlen(bad_inputs[i].in);
    struct resp_cmd cmd = cmd_new(true);
    size_t consumed = 99;
    enum resp_status st =
        resp_parse(in, len, &cmd, &consumed, &resp_limits_default);
    if (st != RESP_ERROR || strcmp(cmd.error, bad_inputs[i].error) != 0)
      fprintf(stderr, "input %zu: status %d, error \"%s\"\n", i, (int)st,
              cmd.error);
    CHECK(st == RESP_ERROR);
    CHECK(strcmp(cmd.error, bad_inputs[i].error) == 0);
    CHECK(consumed == 0 && cmd.argc == 0);
    for (size_t k = 0; k < len; k++) {
      struct resp_cmd part = cmd_new(true);
      st = resp_parse(in, k, &part, &consumed, &resp_limits_default);
      CHECK(st == RESP_INCOMPLETE ||
            (st == RESP_ERROR && strcmp(part.error, cmd.error) == 0));
    }
  }
}

static void oversized_lengths_are_refused_before_the_data_arrives(void) {
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  /* Only the header of an 8 MiB + 1 argument: refused at once. */
  CHECK(resp_parse(LIT("*1\r\n$8388609\r\n"), &cmd, &consumed,
                   &resp_limits_default) == RESP_ERROR);
  /* Exactly at the limit: waits for the data. */
  CHECK(resp_parse(LIT("*1\r\n$8388608\r\n"), &cmd, &consumed,
                   &resp_limits_default) == RESP_INCOMPLETE);
  /* Several arguments each within the limit but too big together. */
  struct resp_limits lim = resp_limits_default;
  lim.command_bytes_max = 64;
  CHECK(resp_parse(LIT("*3\r\n$20\r\n"), &cmd, &consumed, &lim) ==
        RESP_INCOMPLETE);
  CHECK(resp_parse(LIT("*3\r\n$20\r\naaaaaaaaaaaaaaaaaaaa\r\n$20\r\n"
                       "aaaaaaaaaaaaaaaaaaaa\r\n$20\r\n"),
                   &cmd, &consumed, &lim) == RESP_ERROR);
  CHECK(strcmp(cmd.error, PE "command exceeds the size limit") == 0);
  /* A command of exactly command_bytes_max bytes passes. */
  static const char exact[] = "*1\r\n$4\r\nPING\r\n";
  lim.command_bytes_max = sizeof exact - 1;
  CHECK(resp_parse(LIT(exact), &cmd, &consumed, &lim) == RESP_COMPLETE);
  lim.command_bytes_max = sizeof exact - 2;
  CHECK(resp_parse(LIT(exact), &cmd, &consumed, &lim) == RESP_ERROR);
}

static void unauthenticated_clients_get_tighter_limits(void) {
  const struct resp_limits *lim = &resp_limits_unauth;
  struct resp_cmd cmd = cmd_new(true);
  size_t consumed = 0;
  CHECK(resp_parse(LIT("*11\r\n"), &cmd, &consumed, lim) == RESP_ERROR);
  CHECK(strcmp(cmd.error, PE "unauthenticated multibulk length") == 0);
  CHECK(resp_parse(LIT("*10\r\n"), &cmd, &consumed, lim) == RESP_INCOMPLETE);
  CHECK(resp_parse(LIT("*2\r\n$4\r\nAUTH\r\n$16385\r\n"), &cmd, &consumed,
                   lim) == RESP_ERROR);
  CHECK(strcmp(cmd.error, PE "unauthenticated bulk length") == 0);
  CHECK(resp_parse(LIT("*2\r\n$4\r\nAUTH\r\n$16384\r\n"), &cmd, &consumed,
                   lim) == RESP_INCOMPLETE);
  CHECK(resp_parse(LIT("a b c d e f g h i j k\r\n"), &cmd, &consumed, lim) ==
        RESP_ERROR);
  CHECK(strcmp(cmd.error, PE "too many arguments in inline request") == 0);
  CHECK(resp_parse(LIT("a b c d e f g h i j\r\n"), &cmd, &consumed, lim) ==
        RESP_COMPLETE);
  CHECK(cmd.argc == 10);
}

static void inline_commands_split_on_spaces(void) {
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  CHECK(resp_parse(LIT("PING\r\n"), &cmd, &consumed, &resp_limits_default) ==
        RESP_COMPLETE);
  CHECK(cmd.is_inline && cmd.argc == 1 && ARG_IS(&cmd, 0, "PING"));
  CHECK(consumed == 6);
  CHECK(resp_parse(LIT("PING\n"), &cmd, &consumed, &resp_limits_default) ==
        RESP_COMPLETE);
  CHECK(consumed == 5 && ARG_IS(&cmd, 0, "PING"));
  static const char in[] = "  SET\tkey   value \r\n";
  CHECK(resp_parse(LIT(in), &cmd, &consumed, &resp_limits_default) ==
        RESP_COMPLETE);
  CHECK(cmd.argc == 3 && ARG_IS(&cmd, 0, "SET") && ARG_IS(&cmd, 1, "key"));
  CHECK(ARG_IS(&cmd, 2, "value"));
  CHECK(cmd.argv[1].ptr == (const uint8_t *)in + 6); /* a slice, no copy */
  /* No LF yet: incomplete, even with a CR at the end. */
  CHECK(resp_parse(LIT("PING\r"), &cmd, &consumed, &resp_limits_default) ==
        RESP_INCOMPLETE);
}

static void inline_quotes_and_escapes_decode_like_redis_cli(void) {
  struct resp_cmd cmd = cmd_new(true);
  size_t consumed = 0;
  CHECK(resp_parse(LIT("SET k \"hello world\"\r\n"), &cmd, &consumed,
                   &resp_limits_default) == RESP_COMPLETE);
  CHECK(cmd.argc == 3 && ARG_IS(&cmd, 2, "hello world"));
  CHECK(resp_parse(LIT("SET \"\\x41\\x7a\\n\\r\\t\\b\\a\\\\\\\"\\q\" ''\r\n"),
                   &cmd, &consumed, &resp_limits_default) == RESP_COMPLETE);
  CHECK(cmd.argc == 3 && ARG_IS(&cmd, 1, "Az\n\r\t\b\a\\\"q"));
  CHECK(cmd.argv[2].len == 0);
  CHECK(resp_parse(LIT("SET 'it\\'s' '\\n'\r\n"), &cmd, &consumed,
                   &resp_limits_default) == RESP_COMPLETE);
  CHECK(ARG_IS(&cmd, 1, "it's") && ARG_IS(&cmd, 2, "\\n"));
  /* A quote may open mid-word; the closing one must end it. */
  CHECK(resp_parse(LIT("ab\"c d\" e\r\n"), &cmd, &consumed,
                   &resp_limits_default) == RESP_COMPLETE);
  CHECK(cmd.argc == 2 && ARG_IS(&cmd, 0, "abc d") && ARG_IS(&cmd, 1, "e"));
  /* \x with bad hex digits is an escaped 'x' followed by the digits. */
  CHECK(resp_parse(LIT("\"\\xZZ\"\r\n"), &cmd, &consumed,
                   &resp_limits_default) == RESP_COMPLETE);
  CHECK(ARG_IS(&cmd, 0, "xZZ"));

  /* Without a scratch buffer quoted words cannot be decoded. */
  struct resp_cmd bare = cmd_new(false);
  CHECK(resp_parse(LIT("SET k \"v\"\r\n"), &bare, &consumed,
                   &resp_limits_default) == RESP_ERROR);
  CHECK(strcmp(bare.error,
               PE "quoted inline arguments are not supported here") == 0);
  /* Nor with one too small for the words. */
  uint8_t small[3];
  bare.scratch = small;
  bare.scratch_cap = sizeof small;
  CHECK(resp_parse(LIT("\"abc\" \"d\"\r\n"), &bare, &consumed,
                   &resp_limits_default) == RESP_ERROR);
  CHECK(resp_parse(LIT("\"abc\"\r\n"), &bare, &consumed,
                   &resp_limits_default) == RESP_COMPLETE);
}

static void overlong_inline_lines_are_refused(void) {
  struct resp_limits lim = resp_limits_default;
  lim.inline_bytes_max = 16;
  struct resp_cmd cmd = cmd_new(false);
  size_t consumed = 0;
  /* 16 bytes of line and CRLF: fine. */
  CHECK(resp_parse(LIT("0123456789abcdef\r\n"), &cmd, &consumed, &lim) ==
        RESP_COMPLETE);
  CHECK(resp_parse(LIT("0123456789abcdef\n"), &cmd, &consumed, &lim) ==
        RESP_COMPLETE);
  /* 16 bytes and a CR: still possibly fine. */
  CHECK(resp_parse(LIT("0123456789abcdef\r"), &cmd, &consumed, &lim) ==
        RESP_INCOMPLETE);
  /* 17 bytes: refused, with or without the LF. */
  CHECK(resp_parse(LIT("0123456789abcdefg\n"), &cmd, &consumed, &lim) ==
        RESP_ERROR);
  CHECK(strcmp(cmd.error, PE "too big inline request") == 0);
  CHECK(resp_parse(LIT("0123456789abcdefgh"), &cmd, &consumed, &lim) ==
        RESP_ERROR);
  CHECK(resp_parse(LIT("0123456789abcdef\rX"), &cmd, &consumed, &lim) ==
        RESP_ERROR);
  /* The default limit, 64 KiB, with a buffer of 64 KiB + 2 bytes. */
  static uint8_t big[(64 << 10) + 2];
  memset(big, 'a', sizeof big);
  CHECK(resp_parse(big, sizeof big, &cmd, &consumed, &resp_limits_default) ==
        RESP_ERROR);
  CHECK(resp_parse(big, sizeof big - 1, &cmd, &consumed,
                   &resp_limits_default) == RESP_INCOMPLETE);
}

static void written_requests_parse_back(void) {
  /* A client's request is an array of bulk strings: the writers make one,
   * the parser must read back the same arguments. */
  struct prng rng;
  prng_seed(&rng, 7);
  struct resp_buf b;
  resp_buf_init(&b, 1 << 20);
  uint8_t args[8][64];
  size_t lens[8];
  for (int round = 0; round < 200; round++) {
    resp_buf_reset(&b);
    size_t argc = 1 + prng_below(&rng, 8);
    CHECK(resp_write_array(&b, argc) == 0);
    for (size_t i = 0; i < argc; i++) {
      lens[i] = prng_below(&rng, sizeof args[i] + 1);
      for (size_t j = 0; j < lens[i]; j++)
        args[i][j] = (uint8_t)prng_next(&rng);
      CHECK(resp_write_bulk(&b, args[i], lens[i]) == 0);
    }
    struct resp_cmd cmd = cmd_new(false);
    size_t consumed = 0;
    CHECK(resp_parse(b.data, b.len, &cmd, &consumed, &resp_limits_default) ==
          RESP_COMPLETE);
    CHECK(consumed == b.len && cmd.argc == argc);
    for (size_t i = 0; i < argc; i++)
      CHECK(arg_is(&cmd, (uint32_t)i, (const char *)args[i], lens[i]));
  }
  resp_buf_free(&b);
}

/* Seeds for the mutation test: valid requests and near misses. */
static const char *const seeds[] = {
    "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
    "*1\r\n$4\r\nPING\r\n",
    "*2\r\n$3\r\nDEL\r\n$0\r\n\r\n",
    "PING\r\n",
    "SET k \"a\\x41 b\" 'c\\'d'\r\n",
    "*0\r\n*-1\r\n\r\n",
    "*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n",
};

/* Thousands of mutated requests through random limits: the parser must never
 * crash, read outside the buffer (ASan), or break its own contract. */
static void mutated_inputs_never_break_the_contract(void) {
  struct prng rng;
  prng_seed(&rng, 20240601);
  static const uint8_t alphabet[] = "*$\r\n-0123456789 \"'\\xa";
  uint8_t input[512];
  for (int round = 0; round < 200000; round++) {
    const char *seed = seeds[prng_below(&rng, N(seeds))];
    size_t len = strlen(seed);
    memcpy(input, seed, len);
    int n_mutations = 1 + (int)prng_below(&rng, 4);
    for (int m = 0; m < n_mutations; m++) {
      size_t at = len ? prng_below(&rng, len) : 0;
      switch (prng_below(&rng, 5)) {
      case 0: /* overwrite a byte with a protocol character */
        if (len)
          input[at] = alphabet[prng_below(&rng, sizeof alphabet - 1)];
        break;
      case 1: /* overwrite with any byte */
        if (len)
          input[at] = (uint8_t)prng_next(&rng);
        break;
      case 2: /* insert a protocol character */
        if (len < sizeof input) {
          memmove(input + at + 1, input + at, len - at);
          input[at] = alphabet[prng_below(&rng, sizeof alphabet - 1)];
          len++;
        }
        break;
      case 3: /* truncate */
        len = at;
        break;
      default: /* append a copy of a prefix: pipelining */
        if (len > 0 && 2 * len <= sizeof input) {
          size_t n = 1 + prng_below(&rng, len);
          memcpy(input + len, input, n);
          len += n;
        }
        break;
      }
    }
    struct resp_limits lim = resp_limits_default;
    lim.args_max = 1 + (uint32_t)prng_below(&rng, 6);
    lim.arg_bytes_max = prng_below(&rng, 20);
    lim.inline_bytes_max = prng_below(&rng, 40);
    lim.command_bytes_max = prng_below(&rng, 80);
    lim.unauthenticated = prng_below(&rng, 2);

    /* Exactly sized copies, so that ASan sees any read past the end. */
    uint8_t *exact = malloc(len ? len : 1);
    CHECK(exact != NULL);
    memcpy(exact, input, len);
    uint8_t scratch[24];
    struct resp_cmd cmd = cmd_new(false);
    cmd.scratch = scratch;
    cmd.scratch_cap = prng_below(&rng, sizeof scratch + 1);
    size_t consumed = 0;
    enum resp_status st = resp_parse(exact, len, &cmd, &consumed, &lim);
    if (st == RESP_COMPLETE) {
      CHECK(consumed > 0 && consumed <= len);
      CHECK(cmd.argc >= 1 && cmd.argc <= lim.args_max);
      for (uint32_t i = 0; i < cmd.argc; i++) {
        const uint8_t *p = cmd.argv[i].ptr;
        size_t n = cmd.argv[i].len;
        bool in_input = p >= exact && p + n <= exact + consumed;
        bool in_scratch = p >= scratch && p + n <= scratch + cmd.scratch_cap;
        CHECK(in_input || in_scratch);
        CHECK(cmd.is_inline || n <= lim.arg_bytes_max);
      }
      /* The consumed prefix alone is the same complete command. */
      struct resp_cmd again = cmd_new(false);
      again.scratch = scratch;
      again.scratch_cap = cmd.scratch_cap;
      size_t consumed_again = 0;
      CHECK(resp_parse(exact, consumed, &again, &consumed_again, &lim) ==
            RESP_COMPLETE);
      CHECK(consumed_again == consumed && again.argc == cmd.argc);
    } else if (st == RESP_INCOMPLETE) {
      CHECK(consumed <= len && cmd.need_bytes > len && cmd.argc == 0);
    } else {
      CHECK(st == RESP_ERROR && consumed == 0);
      CHECK(strncmp(cmd.error, PE, strlen(PE)) == 0);
      CHECK(strpbrk(cmd.error, "\r\n") == NULL);
    }
    free(exact);
  }
}

static bool buf_is(const struct resp_buf *b, const char *s, size_t n) {
  return b->len == n && memcmp(b->data, s, n) == 0;
}
#define BUF_IS(b, s) buf_is((b), (s), sizeof(s) - 1)

static void writers_produce_resp2(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 20);
  CHECK(resp_write_simple(&b, "OK") == 0);
  CHECK(resp_write_error(&b, "MOVED 3999 127.0.0.1:6381") == 0);
  CHECK(resp_write_int(&b, -42) == 0);
  CHECK(resp_write_int(&b, INT64_MIN) == 0);
  CHECK(resp_write_bulk(&b, "a\r\n\0", 4) == 0);
  CHECK(resp_write_bulk(&b, NULL, 0) == 0);
  CHECK(resp_write_null(&b) == 0);
  CHECK(resp_write_array(&b, 2) == 0);
  CHECK(resp_write_array(&b, 0) == 0);
  CHECK(resp_write_null_array(&b) == 0);
  CHECK(BUF_IS(&b, "+OK\r\n-MOVED 3999 127.0.0.1:6381\r\n:-42\r\n"
                   ":-9223372036854775808\r\n$4\r\na\r\n\0\r\n$0\r\n\r\n"
                   "$-1\r\n*2\r\n*0\r\n*-1\r\n"));
  resp_buf_free(&b);
}

/* A bulk string written in place, back to front, is what resp_write_bulk
 * writes; past the bound it fails and sticks like any write. */
static void a_bulk_written_in_place_is_the_same_bulk(void) {
  struct resp_buf b;
  resp_buf_init(&b, 18);
  uint8_t *at = resp_write_bulk_space(&b, 10);
  CHECK(at != NULL);
  for (int i = 9; i >= 0; i--)
    at[i] = (uint8_t)('0' + i);
  CHECK(BUF_IS(&b, "$10\r\n0123456789\r\n"));
  CHECK(resp_write_bulk_space(&b, 0) == NULL && b.err == SABHA_ETOOBIG);
  resp_buf_free(&b);
}

static void error_replies_cannot_break_the_stream(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 10);
  CHECK(resp_write_error(&b, "ERR unknown command 'x\r\n+OK'") == 0);
  CHECK(BUF_IS(&b, "-ERR unknown command 'x  +OK'\r\n"));
  resp_buf_free(&b);
}

static void output_buffer_is_bounded_and_errors_stick(void) {
  struct resp_buf b;
  resp_buf_init(&b, 17);
  CHECK(resp_write_bulk(&b, "0123456789", 10) == 0); /* 17 bytes exactly */
  CHECK(b.len == 17);
  CHECK(resp_write_simple(&b, "") == SABHA_ETOOBIG);
  CHECK(b.len == 17);
  /* Sticky: even a write that would fit fails now. */
  resp_buf_consume(&b, 17);
  CHECK(b.len == 0);
  CHECK(resp_write_int(&b, 1) == SABHA_ETOOBIG);
  resp_buf_reset(&b);
  CHECK(resp_write_int(&b, 1) == 0 && BUF_IS(&b, ":1\r\n"));
  resp_buf_free(&b);
}

static void consume_keeps_the_unsent_tail(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 10);
  CHECK(resp_write_simple(&b, "OK") == 0);
  CHECK(resp_write_simple(&b, "PONG") == 0);
  resp_buf_consume(&b, 3);
  CHECK(BUF_IS(&b, "\r\n+PONG\r\n"));
  resp_buf_consume(&b, 0);
  CHECK(b.len == 9);
  resp_buf_free(&b);
}

static void printf_handles_long_output(void) {
  struct resp_buf b;
  resp_buf_init(&b, 1 << 20);
  char word[1001];
  memset(word, 'w', 1000);
  word[1000] = '\0';
  CHECK(resp_buf_printf(&b, "<%s>%d", word, 7) == 0);
  CHECK(b.len == 1003 && b.data[0] == '<' && b.data[1001] == '>' &&
        b.data[1002] == '7');
  resp_buf_free(&b);
}

static const struct test tests[] = {
    TEST(multibulk_command_is_parsed_in_place),
    TEST(bulk_arguments_are_binary_safe),
    TEST(pipelined_commands_come_out_one_by_one),
    TEST(empty_requests_are_skipped_without_a_reply),
    TEST(every_split_point_gives_the_same_commands),
    TEST(a_large_bulk_announces_how_many_bytes_it_needs),
    TEST(malformed_requests_are_refused_with_redis_messages),
    TEST(oversized_lengths_are_refused_before_the_data_arrives),
    TEST(unauthenticated_clients_get_tighter_limits),
    TEST(inline_commands_split_on_spaces),
    TEST(inline_quotes_and_escapes_decode_like_redis_cli),
    TEST(overlong_inline_lines_are_refused),
    TEST(written_requests_parse_back),
    TEST(mutated_inputs_never_break_the_contract),
    TEST(writers_produce_resp2),
    TEST(a_bulk_written_in_place_is_the_same_bulk),
    TEST(error_replies_cannot_break_the_stream),
    TEST(output_buffer_is_bounded_and_errors_stick),
    TEST(consume_keeps_the_unsent_tail),
    TEST(printf_handles_long_output),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
