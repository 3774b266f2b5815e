/* RESP2: the Redis serialization protocol, as sabhad speaks it to clients.
 *
 * sabhad talks to clients in RESP2 so that redis-cli, redis-benchmark and any
 * Redis client library work unchanged. This module has two halves.
 *
 * The request parser, resp_parse(), is a pure function over a byte buffer: it
 * reads the bytes a connection has buffered so far and answers "here is one
 * complete command", "not yet, need more bytes" or "protocol error". It keeps
 * no state between calls, allocates nothing, never recurses, and points the
 * arguments into the caller's buffer instead of copying them. Redis's own
 * parser is incremental too but lives inside its client struct, so it cannot
 * be fuzzed alone; keeping ours pure lets tests/fuzz/fuzz_resp.c throw any
 * bytes at it, and lets a test feed every split of a command across two reads
 * and demand the same answer.
 *
 * Two request forms are accepted, as Redis accepts them:
 *
 *   multibulk   *<n>\r\n then n times $<len>\r\n<len bytes>\r\n
 *               (what client libraries, redis-cli and redis-benchmark send);
 *   inline      one line of space-separated words ending in \n or \r\n, e.g.
 *               "PING\r\n" typed into telnet. Words may be quoted as redis-cli
 *               quotes them: "..." with the escapes \n \r \t \b \a \xHH and
 *               \<any> for that character, or '...' with \' for a quote. A
 *               closing quote must end the word.
 *
 * A request starting with '*' is multibulk; anything else is inline. Empty
 * requests ("*0\r\n", "*-1\r\n", a blank inline line) are skipped the way
 * Redis skips them: consumed, never answered.
 *
 * Every length is checked as soon as its bytes arrive, against the limits the
 * caller passes (struct resp_limits): the argument count, one argument's
 * bytes, the inline line's bytes and the command's total bytes. A client that
 * has not authenticated gets tighter limits (resp_limits_unauth), as Redis
 * gives such clients, so that an anonymous peer cannot make the server buffer
 * megabytes. Because a bulk header announces its length before the data, a
 * command that would be too big is rejected at its header, not after the
 * server has buffered it.
 *
 * The second half writes replies (simple strings, errors, integers, bulk
 * strings, nulls, array headers) into a growable output buffer, struct
 * resp_buf, which http.c also uses for its responses.
 */
#ifndef SABHA_NODE_RESP_H
#define SABHA_NODE_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Limits ------------------------------------------------------------ */

struct resp_limits {
  uint32_t args_max;        /* arguments in one command; >= 1 */
  size_t arg_bytes_max;     /* bytes of one bulk argument */
  size_t inline_bytes_max;  /* bytes of one inline line, CRLF excluded */
  size_t command_bytes_max; /* bytes of one whole command on the wire */
  bool unauthenticated;     /* word errors as Redis does for such clients */
};

/* For authenticated clients: 64 Ki arguments (MSET of 32 Ki pairs), 8 MiB per
 * argument, 64 KiB inline lines, 16 MiB per command. The log carries every
 * write, so a command stays far below Redis's 512 MiB bulk limit. */
extern const struct resp_limits resp_limits_default;
/* Before AUTH: 10 arguments of 16 KiB, as Redis allows such clients, and
 * 64 KiB per command (inline lines included). */
extern const struct resp_limits resp_limits_unauth;

/* ---- Parsing ----------------------------------------------------------- */

enum resp_status {
  RESP_ERROR = -1,     /* protocol error: reply cmd->error, close the link */
  RESP_INCOMPLETE = 0, /* no complete command yet: read more, call again */
  RESP_COMPLETE = 1,   /* one command in cmd->argv */
};

/* One argument: `len` bytes at `ptr`. Not NUL-terminated. */
struct resp_arg {
  const uint8_t *ptr;
  size_t len;
};

/* The longest message resp_parse() writes into cmd->error, NUL included. */
#define RESP_ERROR_BYTES_MAX 96u

struct resp_cmd {
  /* Set by the caller before resp_parse(); never changed by it. */
  struct resp_arg *argv; /* argv_cap entries, argv_cap >= lim->args_max */
  uint32_t argv_cap;
  /* Optional (may be NULL/0): where quoted inline words are decoded, since a
   * word with escapes is not a slice of the input. inline_bytes_max bytes
   * always suffice. Without enough scratch a quoted inline word is refused
   * with a protocol error; multibulk commands never use it. */
  uint8_t *scratch;
  size_t scratch_cap;

  /* Set by resp_parse(). */
  uint32_t argc;     /* RESP_COMPLETE: >= 1 */
  bool is_inline;    /* RESP_COMPLETE: the command was an inline line */
  size_t need_bytes; /* RESP_INCOMPLETE: a hint, the buffer length (from
                        buf[0]) below which another call cannot complete;
                        calling earlier is harmless, only wasted work */
  char error[RESP_ERROR_BYTES_MAX]; /* RESP_ERROR: e.g. "ERR Protocol error:
                                       invalid bulk length"; no CRLF */
};

/* Parses the first command in buf[0, len).
 *
 * Returns RESP_COMPLETE with cmd->argc arguments in cmd->argv, which point
 * into `buf` (or into cmd->scratch for quoted inline words) and stay valid as
 * long as those bytes do; *consumed is the number of bytes the command took,
 * including any empty requests skipped before it. The caller drops those
 * bytes and calls again for the next pipelined command.
 *
 * Returns RESP_INCOMPLETE when more bytes are needed; *consumed is the number
 * of leading bytes that were empty requests (usually 0), which the caller may
 * drop. cmd->need_bytes says how long the buffer must grow.
 *
 * Returns RESP_ERROR when the bytes break the protocol or a limit; cmd->error
 * holds the Redis-style message to send back (resp_write_error) before
 * closing the connection, as Redis does. *consumed is 0.
 *
 * Pure: the result depends only on the arguments; nothing is allocated and
 * nothing outside *cmd and *consumed is written. `buf` may be NULL when len
 * is 0. */
enum resp_status resp_parse(const uint8_t *buf, size_t len,
                            struct resp_cmd *cmd, size_t *consumed,
                            const struct resp_limits *lim);

/* ---- Replies ----------------------------------------------------------- */

/* A growable byte buffer for outgoing data. Bytes [0, len) are pending.
 *
 * Errors are sticky: once an append fails (out of memory, or the buffer would
 * pass len_max), every later append does nothing and returns the same code,
 * so a caller may write a whole reply and check once. A connection whose
 * buffer failed cannot tell where its last reply was cut and must be closed. */
struct resp_buf {
  uint8_t *data;  /* owned; NULL until the first append */
  size_t len;     /* pending bytes */
  size_t cap;     /* allocated bytes */
  size_t len_max; /* never grow past this; the bound on one client's output */
  int err;        /* 0, SABHA_ENOMEM or SABHA_ETOOBIG; sticky */
};

/* An empty buffer that may hold up to len_max bytes (> 0). Allocates
 * nothing. */
void resp_buf_init(struct resp_buf *b, size_t len_max);
/* Frees the memory; the buffer may be initialized again. */
void resp_buf_free(struct resp_buf *b);
/* Drops the first n (<= len) pending bytes, those already sent. Moves the
 * rest to the front: O(len - n). */
void resp_buf_consume(struct resp_buf *b, size_t n);
/* Forgets every pending byte and the sticky error; keeps the memory. */
void resp_buf_reset(struct resp_buf *b);
/* Forgets the pending bytes from `len` (<= b->len) on and the sticky
 * error: undoes what was appended since b->len was `len`. */
void resp_buf_truncate(struct resp_buf *b, size_t len);
/* Appends n raw bytes. Returns 0 or the sticky error. */
int resp_buf_append(struct resp_buf *b, const void *p, size_t n);
/* Appends printf-formatted text. Returns 0 or the sticky error. */
int resp_buf_printf(struct resp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Each writer appends one RESP2 value and returns 0 or the sticky error. */

/* +s\r\n. `s` is ours, never a client's bytes: CR or LF in it is a
 * programmer error. */
int resp_write_simple(struct resp_buf *b, const char *s);
/* -msg\r\n. `msg` starts with the error code word: "ERR ...", "MOVED 3999
 * 10.0.0.2:6379", "TRYAGAIN ...", "WRONGPASS ...". It may quote a client's
 * bytes, so CR and LF in it become spaces, as Redis does. */
int resp_write_error(struct resp_buf *b, const char *msg);
/* :v\r\n */
int resp_write_int(struct resp_buf *b, int64_t v);
/* $n\r\n<n bytes>\r\n; binary-safe. p may be NULL when n is 0. */
int resp_write_bulk(struct resp_buf *b, const void *p, size_t n);
/* A bulk string of n bytes that the caller writes next, in any order, at
 * the place returned (valid until b changes). NULL on the sticky error. */
uint8_t *resp_write_bulk_space(struct resp_buf *b, size_t n);
/* $-1\r\n: the null bulk string (GET of a missing key). */
int resp_write_null(struct resp_buf *b);
/* *n\r\n: an array header; the caller writes the n elements after it. */
int resp_write_array(struct resp_buf *b, size_t n);
/* *-1\r\n: the null array. */
int resp_write_null_array(struct resp_buf *b);

/* ---- Scanning replies -----------------------------------------------------
 */

/* Finds where one RESP2 reply (arrays included, nested or not) ends at the
 * start of buf[0, len), without recursion and without copying: for a
 * forwarding link relaying replies byte for byte, and for clients. Returns
 * 1 and sets *consumed, 0 when the reply is not complete yet, -1 when the
 * bytes are not RESP2 or pass its bounds (a line of 64 KiB, a bulk of
 * 512 MiB, 2^24 elements). Pure. */
int resp_reply_scan(const uint8_t *buf, size_t len, size_t *consumed);

#endif
