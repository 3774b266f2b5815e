/* RESP2 request parsing and reply writing (see resp.h for the contract).
 *
 * The parser restarts from buf[0] on every call instead of keeping a cursor
 * between calls: that is what makes it a pure function, and it costs little
 * because re-reading a command skips over bulk data without looking at it,
 * so a call costs O(arguments + header bytes), not O(bytes). The one case that
 * would cost more, a large bulk argument trickling in over many reads, is what
 * cmd->need_bytes is for: the caller does not call again until the whole
 * argument is there.
 *
 * Errors use Redis's wording where Redis has a message for the same fault, so
 * that clients and people see what they would see from Redis. */
#include "node/resp.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sabha/error.h"

const struct resp_limits resp_limits_default = {
    .args_max = 65536,
    .arg_bytes_max = (size_t)8 << 20,
    .inline_bytes_max = (size_t)64 << 10,
    .command_bytes_max = (size_t)16 << 20,
    .unauthenticated = false,
};

const struct resp_limits resp_limits_unauth = {
    .args_max = 10,
    .arg_bytes_max = 16384,
    .inline_bytes_max = (size_t)64 << 10,
    .command_bytes_max = (size_t)64 << 10,
    .unauthenticated = true,
};

#define E_PREFIX "ERR Protocol error: "
#define E_MULTIBULK E_PREFIX "invalid multibulk length"
#define E_MULTIBULK_UNAUTH E_PREFIX "unauthenticated multibulk length"
#define E_BULK E_PREFIX "invalid bulk length"
#define E_BULK_UNAUTH E_PREFIX "unauthenticated bulk length"
#define E_BULK_CRLF E_PREFIX "expected CRLF after bulk argument"
#define E_COMMAND_BIG E_PREFIX "command exceeds the size limit"
#define E_INLINE_BIG E_PREFIX "too big inline request"
#define E_INLINE_ARGS E_PREFIX "too many arguments in inline request"
#define E_QUOTES E_PREFIX "unbalanced quotes in request"
#define E_SCRATCH E_PREFIX "quoted inline arguments are not supported here"

/* The digits of a length line, at most: 19 digits reach INT64_MAX. */
#define NUM_DIGITS_MAX 19

/* How one request (multibulk or inline) at some offset turned out. */
enum step {
  STEP_ERROR,
  STEP_INCOMPLETE,
  STEP_EMPTY, /* an empty request: skip it */
  STEP_COMPLETE,
};

static enum step fail(struct resp_cmd *cmd, const char *msg) {
  size_t n = strlen(msg);
  assert(n < sizeof cmd->error);
  memcpy(cmd->error, msg, n + 1);
  return STEP_ERROR;
}

static enum step incomplete(struct resp_cmd *cmd, size_t need_bytes) {
  cmd->need_bytes = need_bytes;
  return STEP_INCOMPLETE;
}

enum num { NUM_OK, NUM_INCOMPLETE, NUM_BAD };

/* Reads "<integer>\r\n" at buf[pos, len), as after '*' or '$'. Only the
 * canonical form passes: an optional '-', 1 to 19 digits without a leading
 * zero (so no "-0"), no '+', no spaces, and a value that fits an int64. Each
 * byte is judged as it arrives, so a bad line is refused before its CRLF.
 * On NUM_OK sets *value and *end, the offset after the LF. */
static enum num num_line(const uint8_t *buf, size_t len, size_t pos,
                         int64_t *value, size_t *end) {
  bool negative = false;
  uint64_t v = 0;
  int n_digits = 0;
  size_t i = pos;
  if (i < len && buf[i] == '-') {
    negative = true;
    i++;
  }
  for (;; i++) {
    if (i >= len)
      return NUM_INCOMPLETE;
    uint8_t c = buf[i];
    if (c >= '0' && c <= '9') {
      if (n_digits > 0 && v == 0)
        return NUM_BAD; /* a leading zero */
      if (n_digits == NUM_DIGITS_MAX ||
          v > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10)
        return NUM_BAD;
      v = v * 10 + (uint64_t)(c - '0');
      n_digits++;
      continue;
    }
    if (c != '\r' || n_digits == 0 || (negative && v == 0))
      return NUM_BAD;
    if (i + 1 >= len)
      return NUM_INCOMPLETE;
    if (buf[i + 1] != '\n')
      return NUM_BAD;
    *value = negative ? -(int64_t)v : (int64_t)v;
    *end = i + 2;
    return NUM_OK;
  }
}

/* "expected '$', got 'x'", Redis's words, with an unprintable byte shown as
 * \xHH so that the message stays one clean line. */
static enum step fail_expected_dollar(struct resp_cmd *cmd, uint8_t got) {
  if (got >= 0x20 && got < 0x7f)
    snprintf(cmd->error, sizeof cmd->error, E_PREFIX "expected '$', got '%c'",
             (char)got);
  else
    snprintf(cmd->error, sizeof cmd->error,
             E_PREFIX "expected '$', got '\\x%02x'", (unsigned)got);
  return STEP_ERROR;
}

/* One multibulk request starting with '*' at buf[start]. */
static enum step parse_multibulk(const uint8_t *buf, size_t len, size_t start,
                                 struct resp_cmd *cmd,
                                 const struct resp_limits *lim, size_t *end) {
  assert(start < len && buf[start] == '*');
  int64_t n_args;
  size_t pos;
  switch (num_line(buf, len, start + 1, &n_args, &pos)) {
  case NUM_INCOMPLETE:
    return incomplete(cmd, len + 1);
  case NUM_BAD:
    return fail(cmd, E_MULTIBULK);
  case NUM_OK:
    break;
  }
  /* Redis skips "*0" and "*-1" (the null array) without a reply; any other
   * negative count is nonsense. */
  if (n_args == 0 || n_args == -1) {
    *end = pos;
    return STEP_EMPTY;
  }
  if (n_args < 0)
    return fail(cmd, E_MULTIBULK);
  if ((uint64_t)n_args > lim->args_max)
    return fail(cmd, lim->unauthenticated ? E_MULTIBULK_UNAUTH : E_MULTIBULK);

  for (uint32_t i = 0; i < (uint32_t)n_args; i++) {
    if (pos >= len)
      return incomplete(cmd, pos + 1);
    if (buf[pos] != '$')
      return fail_expected_dollar(cmd, buf[pos]);
    int64_t arg_bytes;
    size_t data;
    switch (num_line(buf, len, pos + 1, &arg_bytes, &data)) {
    case NUM_INCOMPLETE:
      return incomplete(cmd, len + 1);
    case NUM_BAD:
      return fail(cmd, E_BULK);
    case NUM_OK:
      break;
    }
    if (arg_bytes < 0 || (uint64_t)arg_bytes > lim->arg_bytes_max)
      return fail(cmd, lim->unauthenticated ? E_BULK_UNAUTH : E_BULK);
    /* The whole command, this argument's data and CRLF included, must fit;
     * checked now, before the data arrives. Written so as not to overflow:
     * data - start <= len, and arg_bytes <= arg_bytes_max. */
    size_t so_far = data - start;
    if (so_far > lim->command_bytes_max ||
        (uint64_t)arg_bytes + 2 > lim->command_bytes_max - so_far)
      return fail(cmd, E_COMMAND_BIG);
    size_t data_end = data + (size_t)arg_bytes;
    if (len > data_end && buf[data_end] != '\r')
      return fail(cmd, E_BULK_CRLF);
    if (len > data_end + 1 && buf[data_end + 1] != '\n')
      return fail(cmd, E_BULK_CRLF);
    if (len < data_end + 2)
      return incomplete(cmd, data_end + 2);
    cmd->argv[i].ptr = buf + data;
    cmd->argv[i].len = (size_t)arg_bytes;
    pos = data_end + 2;
  }
  cmd->argc = (uint32_t)n_args;
  *end = pos;
  return STEP_COMPLETE;
}

static bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

static int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Where quoted inline words are decoded: cmd->scratch[used, cap). */
struct scratch {
  uint8_t *data;
  size_t used;
  size_t cap;
};

static bool scratch_put(struct scratch *s, uint8_t c) {
  if (s->used == s->cap)
    return false;
  s->data[s->used++] = c;
  return true;
}

/* Decodes the quoted run whose opening quote is at line[*i] into `s`, and
 * moves *i past the closing quote. Returns NULL or the error message. */
static const char *decode_quoted(const uint8_t *line, size_t line_end,
                                 size_t *i, struct scratch *s) {
  uint8_t quote = line[*i];
  size_t j = *i + 1;
  for (;;) {
    if (j >= line_end)
      return E_QUOTES;
    uint8_t c = line[j];
    if (c == quote) {
      j++;
      /* A closing quote ends the word, as in redis-cli. */
      if (j < line_end && !is_space(line[j]))
        return E_QUOTES;
      *i = j;
      return NULL;
    }
    if (c == '\\' && j + 1 < line_end) {
      uint8_t e = line[j + 1];
      if (quote == '\'') {
        if (e == '\'') {
          c = '\'';
          j++;
        }
      } else if (e == 'x' && j + 3 < line_end && hex_value(line[j + 2]) >= 0 &&
                 hex_value(line[j + 3]) >= 0) {
        c = (uint8_t)(hex_value(line[j + 2]) * 16 + hex_value(line[j + 3]));
        j += 3;
      } else {
        /* clang-format off */
        switch (e) {
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'b': c = '\b'; break;
        case 'a': c = '\a'; break;
        default: c = e; break;
        }
        /* clang-format on */
        j++;
      }
    }
    if (!scratch_put(s, c))
      return E_SCRATCH;
    j++;
  }
}

/* Splits the inline line buf[start, line_end) into cmd->argv. Returns
 * STEP_COMPLETE, STEP_EMPTY for a blank line, or STEP_ERROR. */
static enum step split_inline(const uint8_t *buf, size_t start, size_t line_end,
                              struct resp_cmd *cmd,
                              const struct resp_limits *lim) {
  struct scratch s = {cmd->scratch, 0, cmd->scratch ? cmd->scratch_cap : 0};
  uint32_t argc = 0;
  size_t i = start;
  for (;;) {
    while (i < line_end && is_space(buf[i]))
      i++;
    if (i == line_end)
      break;
    if (argc == lim->args_max)
      return fail(cmd, E_INLINE_ARGS);
    size_t word = i;
    while (i < line_end && !is_space(buf[i]) && buf[i] != '"' && buf[i] != '\'')
      i++;
    if (i == line_end || is_space(buf[i])) {
      /* Unquoted: a slice of the input, no copy. */
      cmd->argv[argc].ptr = buf + word;
      cmd->argv[argc].len = i - word;
      argc++;
      continue;
    }
    /* A quote: the word is its unquoted head plus the decoded quoted run,
     * built in the scratch. */
    if (s.data == NULL)
      return fail(cmd, E_SCRATCH);
    size_t word_scratch = s.used;
    for (size_t k = word; k < i; k++)
      if (!scratch_put(&s, buf[k]))
        return fail(cmd, E_SCRATCH);
    const char *err = decode_quoted(buf, line_end, &i, &s);
    if (err != NULL)
      return fail(cmd, err);
    cmd->argv[argc].ptr = s.data + word_scratch;
    cmd->argv[argc].len = s.used - word_scratch;
    argc++;
  }
  if (argc == 0)
    return STEP_EMPTY;
  cmd->argc = argc;
  cmd->is_inline = true;
  return STEP_COMPLETE;
}

/* One inline request at buf[start]: a line ending in LF, an optional CR
 * before it. */
static enum step parse_inline(const uint8_t *buf, size_t len, size_t start,
                              struct resp_cmd *cmd,
                              const struct resp_limits *lim, size_t *end) {
  assert(start < len);
  size_t line_max = lim->inline_bytes_max < lim->command_bytes_max
                        ? lim->inline_bytes_max
                        : lim->command_bytes_max;
  /* Look no further than a longest line and its CRLF could reach. */
  size_t avail = len - start;
  size_t window = avail < line_max + 2 ? avail : line_max + 2;
  const uint8_t *lf = memchr(buf + start, '\n', window);
  if (lf == NULL) {
    /* line_max + 2 bytes without an LF hold more than line_max bytes of
     * line, even if the last one is a CR. */
    if (avail >= line_max + 2)
      return fail(cmd, E_INLINE_BIG);
    return incomplete(cmd, len + 1);
  }
  size_t lf_at = (size_t)(lf - buf);
  size_t line_end = lf_at;
  if (line_end > start && buf[line_end - 1] == '\r')
    line_end--;
  if (line_end - start > line_max)
    return fail(cmd, E_INLINE_BIG);
  *end = lf_at + 1;
  return split_inline(buf, start, line_end, cmd, lim);
}

enum resp_status resp_parse(const uint8_t *buf, size_t len,
                            struct resp_cmd *cmd, size_t *consumed,
                            const struct resp_limits *lim) {
  assert(cmd != NULL && consumed != NULL && lim != NULL);
  assert(buf != NULL || len == 0);
  assert(cmd->argv != NULL && lim->args_max >= 1);
  assert(cmd->argv_cap >= lim->args_max);
  /* Keeps offset arithmetic (start + a whole command) far from overflow. */
  assert(lim->command_bytes_max <= SIZE_MAX / 4);
  assert(lim->inline_bytes_max <= SIZE_MAX / 4);

  cmd->argc = 0;
  cmd->is_inline = false;
  cmd->need_bytes = 0;
  cmd->error[0] = '\0';
  *consumed = 0;

  /* Each turn either returns or skips one empty request of at least one
   * byte, so the loop ends within len turns. */
  size_t pos = 0;
  for (;;) {
    if (pos == len) {
      *consumed = pos;
      cmd->need_bytes = pos + 1;
      return RESP_INCOMPLETE;
    }
    size_t end = pos;
    enum step step = buf[pos] == '*'
                         ? parse_multibulk(buf, len, pos, cmd, lim, &end)
                         : parse_inline(buf, len, pos, cmd, lim, &end);
    switch (step) {
    case STEP_EMPTY:
      assert(end > pos && end <= len);
      pos = end;
      continue;
    case STEP_COMPLETE:
      assert(end > pos && end <= len && cmd->argc >= 1);
      *consumed = end;
      return RESP_COMPLETE;
    case STEP_INCOMPLETE:
      assert(cmd->need_bytes > len);
      cmd->argc = 0;
      cmd->is_inline = false;
      *consumed = pos;
      return RESP_INCOMPLETE;
    case STEP_ERROR:
      assert(cmd->error[0] != '\0');
      cmd->argc = 0;
      cmd->is_inline = false;
      return RESP_ERROR;
    }
  }
}

/* ---- Output buffer ----------------------------------------------------- */

#define BUF_CAP_MIN 256u

void resp_buf_init(struct resp_buf *b, size_t len_max) {
  assert(b != NULL && len_max > 0);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->len_max = len_max;
  b->err = 0;
}

void resp_buf_free(struct resp_buf *b) {
  assert(b != NULL);
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void resp_buf_consume(struct resp_buf *b, size_t n) {
  assert(b != NULL && n <= b->len);
  if (n == 0)
    return;
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void resp_buf_reset(struct resp_buf *b) {
  resp_buf_truncate(b, 0);
}

void resp_buf_truncate(struct resp_buf *b, size_t len) {
  assert(b != NULL && len <= b->len);
  b->len = len;
  b->err = 0;
}

/* Makes room for n more bytes. Returns 0 or the (now sticky) error. */
static int buf_reserve(struct resp_buf *b, size_t n) {
  if (b->err != 0)
    return b->err;
  if (n > b->len_max - b->len) {
    b->err = SABHA_ETOOBIG;
    return b->err;
  }
  size_t need = b->len + n;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap < BUF_CAP_MIN ? BUF_CAP_MIN : b->cap;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->len_max)
    cap = b->len_max;
  uint8_t *grown = realloc(b->data, cap);
  if (grown == NULL) {
    b->err = SABHA_ENOMEM;
    return b->err;
  }
  b->data = grown;
  b->cap = cap;
  return 0;
}

int resp_buf_append(struct resp_buf *b, const void *p, size_t n) {
  assert(b != NULL && (p != NULL || n == 0));
  int rc = buf_reserve(b, n);
  if (rc != 0)
    return rc;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int resp_buf_printf(struct resp_buf *b, const char *fmt, ...) {
  assert(b != NULL && fmt != NULL);
  if (b->err != 0)
    return b->err;
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  assert(n >= 0); /* only an invalid format fails */
  if ((size_t)n < sizeof small)
    return resp_buf_append(b, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    b->err = SABHA_ENOMEM;
    return b->err;
  }
  va_start(ap, fmt);
  int n_again = vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  assert(n_again == n);
  int rc = resp_buf_append(b, big, (size_t)n);
  free(big);
  return rc;
}

/* ---- RESP2 writers ----------------------------------------------------- */

/* Appends <type><decimal>\r\n, the header shared by integers, bulk lengths
 * and array counts. */
static int write_header(struct resp_buf *b, char type, int64_t v) {
  /* Digits by hand, from the end: every bulk string and array has one of
   * these, and snprintf cost more than the rest of a short command. */
  char line[32];
  size_t at = sizeof line;
  line[--at] = '\n';
  line[--at] = '\r';
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    line[--at] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0)
    line[--at] = '-';
  line[--at] = type;
  assert(at > 0);
  return resp_buf_append(b, line + at, sizeof line - at);
}

int resp_write_simple(struct resp_buf *b, const char *s) {
  assert(b != NULL && s != NULL);
  assert(strpbrk(s, "\r\n") == NULL);
  size_t n = strlen(s);
  int rc = buf_reserve(b, n + 3);
  if (rc != 0)
    return rc;
  b->data[b->len] = '+';
  memcpy(b->data + b->len + 1, s, n);
  memcpy(b->data + b->len + 1 + n, "\r\n", 2);
  b->len += n + 3;
  return 0;
}

int resp_write_error(struct resp_buf *b, const char *msg) {
  assert(b != NULL && msg != NULL && msg[0] != '\0');
  size_t n = strlen(msg);
  int rc = buf_reserve(b, n + 3);
  if (rc != 0)
    return rc;
  uint8_t *out = b->data + b->len;
  out[0] = '-';
  for (size_t i = 0; i < n; i++)
    out[1 + i] = (msg[i] == '\r' || msg[i] == '\n') ? ' ' : (uint8_t)msg[i];
  memcpy(out + 1 + n, "\r\n", 2);
  b->len += n + 3;
  return 0;
}

int resp_write_int(struct resp_buf *b, int64_t v) {
  assert(b != NULL);
  return write_header(b, ':', v);
}

int resp_write_bulk(struct resp_buf *b, const void *p, size_t n) {
  assert(b != NULL && (p != NULL || n == 0));
  assert(n <= (uint64_t)INT64_MAX);
  int rc = write_header(b, '$', (int64_t)n);
  if (rc == 0)
    rc = resp_buf_append(b, p, n);
  if (rc == 0)
    rc = resp_buf_append(b, "\r\n", 2);
  return rc;
}

uint8_t *resp_write_bulk_space(struct resp_buf *b, size_t n) {
  assert(b != NULL && n <= (uint64_t)INT64_MAX);
  if (write_header(b, '$', (int64_t)n) != 0 || buf_reserve(b, n + 2) != 0)
    return NULL;
  uint8_t *at = b->data + b->len;
  memcpy(at + n, "\r\n", 2);
  b->len += n + 2;
  return at;
}

int resp_write_null(struct resp_buf *b) {
  assert(b != NULL);
  return resp_buf_append(b, "$-1\r\n", 5);
}

int resp_write_array(struct resp_buf *b, size_t n) {
  assert(b != NULL && n <= (uint64_t)INT64_MAX);
  return write_header(b, '*', (int64_t)n);
}

int resp_write_null_array(struct resp_buf *b) {
  assert(b != NULL);
  return resp_buf_append(b, "*-1\r\n", 5);
}

/* ---- Scanning replies ------------------------------------------------- */

#define REPLY_LINE_BYTES_MAX 65536u
#define REPLY_BULK_BYTES_MAX (512u << 20)
#define REPLY_ELEMENTS_MAX (1u << 24)

int resp_reply_scan(const uint8_t *buf, size_t len, size_t *consumed) {
  size_t pos = 0;
  uint64_t pending = 1; /* values still to read */
  while (pending > 0) {
    if (pos >= len)
      return 0;
    size_t eol = pos + 1;
    while (eol + 1 < len && !(buf[eol] == '\r' && buf[eol + 1] == '\n'))
      eol++;
    if (eol + 1 >= len)
      return len - pos > REPLY_LINE_BYTES_MAX ? -1 : 0;
    uint8_t type = buf[pos];
    if (type == '+' || type == '-' || type == ':') {
      pos = eol + 2;
      pending--;
      continue;
    }
    if (type != '$' && type != '*')
      return -1;
    /* A signed decimal length. */
    size_t i = pos + 1;
    bool neg = false;
    if (i < eol && buf[i] == '-') {
      neg = true;
      i++;
    }
    if (i == eol)
      return -1;
    uint64_t v = 0;
    for (; i < eol; i++) {
      if (buf[i] < '0' || buf[i] > '9' || v > REPLY_BULK_BYTES_MAX)
        return -1;
      v = v * 10 + (uint64_t)(buf[i] - '0');
    }
    if (neg && v != 1)
      return -1;
    pos = eol + 2;
    pending--;
    if (neg)
      continue; /* a null bulk string or null array */
    if (type == '$') {
      if (v > REPLY_BULK_BYTES_MAX)
        return -1;
      if (len - pos < v + 2)
        return 0;
      if (buf[pos + v] != '\r' || buf[pos + v + 1] != '\n')
        return -1;
      pos += v + 2;
    } else {
      if (v > REPLY_ELEMENTS_MAX)
        return -1;
      pending += v;
    }
  }
  *consumed = pos;
  return 1;
}
