/* Client histories as JSON lines: the writer and a small strict reader.
 *
 * The simulator hands a run's history to the linearizability checker in
 * memory, but a history that failed a check has to outlive the run: `sabha
 * sim --history FILE` writes it so that a person can read it, diff it, or
 * feed it back to the checker after a fix. The format is the one documented
 * in history.h, one object per line.
 *
 * The reader is not a general JSON parser and does not want to be one. It
 * reads one bounded line at a time into a fixed buffer and walks it with a
 * cursor: a flat object of known keys whose values are unsigned integers,
 * short strings without escapes, true, false or null. Kinds and fields added
 * later (incr, ttl, append) are optional in the sense that old files never
 * carry them, so an old file reads exactly as before. Anything else is rejected
 * with the line number, because a history that does not parse exactly is a
 * history whose verdict we could not trust. The line parser (parse_line) is a
 * pure function over a buffer, with no I/O or state, so a fuzz target reaches
 * all of it through hist_read_jsonl on a memory stream. */
#include "check/history.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "sabha/error.h"

/* The longest line the writer can produce is well under 300 bytes; 4096
 * leaves room for hand-edited whitespace and still bounds the buffer. */
#define HIST_LINE_BYTES_MAX 4096
/* 16 Mi operations (about 900 MiB in memory) is far past any simulated run;
 * past it the input is more likely garbage than a history. */
#define HIST_OPS_MAX (1u << 24)

static const char *const kind_names[] = {"put", "get", "cas", "incr", "append"};
static const char *const status_names[] = {"ok", "fail", "info"};

/* ---- writer ------------------------------------------------------------ */

/* Writes a value id as "v<N>", or null for HIST_NIL. */
static void write_value(FILE *f, int64_t value) {
  assert(value >= HIST_NIL);
  if (value == HIST_NIL)
    fputs("null", f);
  else
    fprintf(f, "\"v%" PRId64 "\"", value);
}

int hist_write_jsonl(FILE *f, const struct hist_op *ops, size_t n_ops) {
  assert(f != NULL);
  assert(ops != NULL || n_ops == 0);
  for (size_t i = 0; i < n_ops; i++) {
    const struct hist_op *op = &ops[i];
    bool no_value = op->kind == HIST_GET || op->kind == HIST_INCR ||
                    op->kind == HIST_APPEND;
    assert(op->kind <= HIST_APPEND);
    assert(op->status <= HIST_INFO);
    assert((op->flags & ~HIST_TTL) == 0);
    assert(!(op->flags & HIST_TTL) ||
           (op->kind == HIST_PUT && op->value != HIST_NIL));
    fprintf(f, "{\"client\":%" PRIu32 ",\"op\":\"%s\",\"key\":\"k%" PRIu32 "\"",
            op->client, kind_names[op->kind], op->key);
    if (op->kind == HIST_CAS) {
      fputs(",\"expected\":", f);
      write_value(f, op->expected);
    }
    /* A get or incr carries its result in "output", an append nothing
     * the model reads; their "value" is always null so that every line
     * has the same keys. */
    fputs(",\"value\":", f);
    write_value(f, no_value ? HIST_NIL : op->value);
    if (op->flags & HIST_TTL)
      fputs(",\"ttl\":true", f);
    fprintf(f, ",\"call_us\":%" PRIu64, op->call_us);
    if (op->status != HIST_INFO)
      fprintf(f, ",\"return_us\":%" PRIu64, op->return_us);
    fprintf(f, ",\"status\":\"%s\",\"output\":", status_names[op->status]);
    /* Only an ok operation has an observed output. */
    if (op->status != HIST_OK || op->kind == HIST_PUT ||
        op->kind == HIST_APPEND) {
      fputs("null", f);
    } else if (op->kind == HIST_GET) {
      write_value(f, op->value);
    } else if (op->kind == HIST_INCR) {
      assert(op->value >= 0);
      fprintf(f, "%" PRId64, op->value);
    } else {
      fputs(op->output ? "true" : "false", f);
    }
    fputs("}\n", f);
    if (ferror(f))
      return SABHA_EIO;
  }
  /* Flush so that a full disk is reported here rather than lost in fclose. */
  if (fflush(f) != 0 || ferror(f))
    return SABHA_EIO;
  return 0;
}

/* ---- reader: one line ---------------------------------------------------- */

enum jtype { J_NULL, J_TRUE, J_FALSE, J_NUM, J_STR };

struct jvalue {
  enum jtype type;
  uint64_t num;    /* J_NUM */
  const char *str; /* J_STR: not terminated, points into the line */
  size_t str_len;
};

/* The keys an object may carry, as bits of a "seen" mask. */
enum field {
  F_CLIENT,
  F_OP,
  F_KEY,
  F_VALUE,
  F_EXPECTED,
  F_CALL_US,
  F_RETURN_US,
  F_STATUS,
  F_OUTPUT,
  F_TTL,
  F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "client",  "op",        "key",    "value",  "expected",
    "call_us", "return_us", "status", "output", "ttl"};

struct cursor {
  const char *p;
  const char *end;
  char *why; /* the reason for a rejection, without the line number */
  size_t why_size;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
reject(struct cursor *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, c->why_size, fmt, ap);
  va_end(ap);
  return SABHA_ECORRUPT;
}

static void skip_ws(struct cursor *c) {
  while (c->p < c->end &&
         (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
    c->p++;
}

static bool at_end(const struct cursor *c) {
  return c->p >= c->end;
}

/* A string without escapes: sabha never writes one, and accepting them would
 * let two spellings name the same key. */
static int parse_string(struct cursor *c, const char **s, size_t *len) {
  assert(!at_end(c) && *c->p == '"');
  const char *start = ++c->p;
  while (c->p < c->end && *c->p != '"') {
    if (*c->p == '\\')
      return reject(c, "escapes in strings are not supported");
    if ((unsigned char)*c->p < 0x20)
      return reject(c, "control character in a string");
    c->p++;
  }
  if (at_end(c))
    return reject(c, "unterminated string");
  *s = start;
  *len = (size_t)(c->p - start);
  c->p++;
  return 0;
}

/* Decimal digits without sign, fraction, exponent or a leading zero, so
 * that every number has exactly one spelling. */
static int parse_digits(const char *s, size_t len, uint64_t max,
                        uint64_t *out) {
  return dec_parse_u64(s, len, DEC_CANONICAL, 0, max, out) == DEC_OK ? 0 : -1;
}

static bool match_word(struct cursor *c, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
    return false;
  c->p += n;
  return true;
}

static int parse_value(struct cursor *c, struct jvalue *v) {
  memset(v, 0, sizeof *v);
  if (at_end(c))
    return reject(c, "missing value");
  char ch = *c->p;
  if (ch == '"') {
    v->type = J_STR;
    return parse_string(c, &v->str, &v->str_len);
  }
  if (ch >= '0' && ch <= '9') {
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
      c->p++;
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
      return reject(c, "numbers must be unsigned integers");
    v->type = J_NUM;
    if (parse_digits(start, (size_t)(c->p - start), UINT64_MAX, &v->num) != 0)
      return reject(c, "bad number '%.*s'", (int)(c->p - start), start);
    return 0;
  }
  if (match_word(c, "null")) {
    v->type = J_NULL;
    return 0;
  }
  if (match_word(c, "true")) {
    v->type = J_TRUE;
    return 0;
  }
  if (match_word(c, "false")) {
    v->type = J_FALSE;
    return 0;
  }
  if (ch == '-')
    return reject(c, "numbers must be unsigned integers");
  if (ch == '{' || ch == '[')
    return reject(c, "nested objects and arrays are not allowed");
  return reject(c, "unexpected character '%c'", ch);
}

static bool str_is(const struct jvalue *v, const char *s) {
  return v->type == J_STR && v->str_len == strlen(s) &&
         memcmp(v->str, s, v->str_len) == 0;
}

/* "k<N>" or "v<N>": the prefix letter, then digits. */
static int parse_id(struct cursor *c, const struct jvalue *v, char prefix,
                    uint64_t max, uint64_t *out, const char *field) {
  if (v->type != J_STR || v->str_len < 2 || v->str[0] != prefix ||
      parse_digits(v->str + 1, v->str_len - 1, max, out) != 0)
    return reject(c, "\"%s\" must be a string \"%c<N>\"", field, prefix);
  return 0;
}

/* A value id "v<N>" or null (HIST_NIL). */
static int parse_value_id(struct cursor *c, const struct jvalue *v,
                          int64_t *out, const char *field) {
  if (v->type == J_NULL) {
    *out = HIST_NIL;
    return 0;
  }
  if (v->type != J_STR)
    return reject(c, "\"%s\" must be \"v<N>\" or null", field);
  uint64_t n;
  int rc = parse_id(c, v, 'v', (uint64_t)INT64_MAX, &n, field);
  if (rc != 0)
    return rc;
  *out = (int64_t)n;
  return 0;
}

static int parse_name(struct cursor *c, const struct jvalue *v,
                      const char *const *names, uint32_t n_names, uint32_t *out,
                      const char *field) {
  for (uint32_t i = 0; i < n_names; i++) {
    if (str_is(v, names[i])) {
      *out = i;
      return 0;
    }
  }
  if (v->type == J_STR)
    return reject(c, "unknown %s \"%.*s\"", field, (int)v->str_len, v->str);
  return reject(c, "\"%s\" must be a string", field);
}

static int parse_uint(struct cursor *c, const struct jvalue *v, uint64_t max,
                      uint64_t *out, const char *field) {
  if (v->type != J_NUM || v->num > max)
    return reject(c, "\"%s\" must be an unsigned integer up to %" PRIu64, field,
                  max);
  *out = v->num;
  return 0;
}

/* Reads the (key, value) pairs of one object into `vals`, remembering which
 * keys were seen. Iterative: the object is flat by definition. */
static int parse_object(struct cursor *c, struct jvalue vals[F_COUNT],
                        unsigned *seen) {
  *seen = 0;
  skip_ws(c);
  if (at_end(c) || *c->p != '{')
    return reject(c, "expected '{'");
  c->p++;
  skip_ws(c);
  if (!at_end(c) && *c->p == '}')
    return reject(c, "empty object");
  for (;;) {
    skip_ws(c);
    if (at_end(c) || *c->p != '"')
      return reject(c, "expected a key in double quotes");
    const char *name;
    size_t name_len;
    int rc = parse_string(c, &name, &name_len);
    if (rc != 0)
      return rc;
    int field = -1;
    for (int i = 0; i < F_COUNT; i++) {
      if (strlen(field_names[i]) == name_len &&
          memcmp(field_names[i], name, name_len) == 0)
        field = i;
    }
    if (field < 0)
      return reject(c, "unknown key \"%.*s\"", (int)name_len, name);
    if (*seen & (1u << field))
      return reject(c, "duplicate key \"%s\"", field_names[field]);
    *seen |= 1u << field;
    skip_ws(c);
    if (at_end(c) || *c->p != ':')
      return reject(c, "expected ':' after \"%s\"", field_names[field]);
    c->p++;
    skip_ws(c);
    rc = parse_value(c, &vals[field]);
    if (rc != 0)
      return rc;
    skip_ws(c);
    if (at_end(c))
      return reject(c, "unterminated object");
    if (*c->p == '}')
      break;
    if (*c->p != ',')
      return reject(c, "expected ',' or '}'");
    c->p++;
  }
  c->p++;
  skip_ws(c);
  if (!at_end(c))
    return reject(c, "text after the closing '}'");
  return 0;
}

/* Turns the parsed fields into an operation, checking that they fit
 * together as hist_write_jsonl() would have written them. */
static int build_op(struct cursor *c, const struct jvalue vals[F_COUNT],
                    unsigned seen, struct hist_op *op) {
  static const int required[] = {F_CLIENT,  F_OP,     F_KEY,   F_VALUE,
                                 F_CALL_US, F_STATUS, F_OUTPUT};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
    if (!(seen & (1u << required[i])))
      return reject(c, "missing key \"%s\"", field_names[required[i]]);
  }
  memset(op, 0, sizeof *op);
  op->expected = HIST_NIL;
  uint64_t n = 0;
  int rc = parse_uint(c, &vals[F_CLIENT], UINT32_MAX, &n, "client");
  if (rc != 0)
    return rc;
  op->client = (uint32_t)n;
  rc = parse_name(c, &vals[F_OP], kind_names, 5, &op->kind, "op");
  if (rc != 0)
    return rc;
  rc = parse_name(c, &vals[F_STATUS], status_names, 3, &op->status, "status");
  if (rc != 0)
    return rc;
  rc = parse_id(c, &vals[F_KEY], 'k', UINT32_MAX, &n, "key");
  if (rc != 0)
    return rc;
  op->key = (uint32_t)n;
  rc = parse_uint(c, &vals[F_CALL_US], UINT64_MAX, &op->call_us, "call_us");
  if (rc != 0)
    return rc;

  /* return_us: required unless the outcome is unknown. An info line that
   * carries one anyway is accepted; the time means nothing there. */
  if (seen & (1u << F_RETURN_US)) {
    rc = parse_uint(c, &vals[F_RETURN_US], UINT64_MAX, &op->return_us,
                    "return_us");
    if (rc != 0)
      return rc;
    if (op->status != HIST_INFO && op->return_us < op->call_us)
      return reject(c, "return_us %" PRIu64 " is before call_us %" PRIu64,
                    op->return_us, op->call_us);
  } else if (op->status != HIST_INFO) {
    return reject(c, "missing key \"return_us\" (only info may omit it)");
  }

  bool is_cas = op->kind == HIST_CAS;
  if (is_cas != ((seen & (1u << F_EXPECTED)) != 0))
    return reject(c, is_cas ? "missing key \"expected\" for cas"
                            : "\"expected\" is only allowed for cas");
  if (is_cas) {
    rc = parse_value_id(c, &vals[F_EXPECTED], &op->expected, "expected");
    if (rc != 0)
      return rc;
  }

  /* "ttl" has one spelling, true, and only a put that writes a value has
   * anything that could expire. */
  if (seen & (1u << F_TTL)) {
    if (op->kind != HIST_PUT)
      return reject(c, "\"ttl\" is only allowed for put");
    if (vals[F_TTL].type != J_TRUE)
      return reject(c, "\"ttl\" must be true (leave it out for no expiry)");
    op->flags = HIST_TTL;
  }

  const struct jvalue *out = &vals[F_OUTPUT];
  bool observed = op->status == HIST_OK;
  switch (op->kind) {
  case HIST_PUT:
    if (out->type != J_NULL)
      return reject(c, "put's \"output\" must be null");
    rc = parse_value_id(c, &vals[F_VALUE], &op->value, "value");
    if (rc == 0 && (op->flags & HIST_TTL) && op->value == HIST_NIL)
      return reject(c, "a put with \"ttl\" must write a value, not null");
    return rc;
  case HIST_INCR: {
    if (vals[F_VALUE].type != J_NULL)
      return reject(c,
                    "incr's \"value\" must be null (its result is \"output\")");
    op->value = HIST_NIL;
    if (!observed) {
      if (out->type != J_NULL)
        return reject(c, "\"output\" must be null when status is not ok");
      return 0;
    }
    uint64_t n_out = 0;
    rc = parse_uint(c, out, (uint64_t)INT64_MAX, &n_out, "output");
    if (rc == 0)
      op->value = (int64_t)n_out;
    return rc;
  }
  case HIST_APPEND:
    if (vals[F_VALUE].type != J_NULL || out->type != J_NULL)
      return reject(c, "append's \"value\" and \"output\" must be null");
    op->value = HIST_NIL;
    return 0;
  case HIST_GET:
    if (vals[F_VALUE].type != J_NULL)
      return reject(c, "get's \"value\" must be null (the read is \"output\")");
    if (!observed && out->type != J_NULL)
      return reject(c, "\"output\" must be null when status is not ok");
    return parse_value_id(c, out, &op->value, "output");
  default:
    assert(op->kind == HIST_CAS);
    if (!observed) {
      if (out->type != J_NULL)
        return reject(c, "\"output\" must be null when status is not ok");
    } else if (out->type == J_TRUE || out->type == J_FALSE) {
      op->output = out->type == J_TRUE;
    } else {
      return reject(c, "cas's \"output\" must be true or false");
    }
    return parse_value_id(c, &vals[F_VALUE], &op->value, "value");
  }
}

/* Parses one line (without its newline). Returns 0 and fills *op, or
 * SABHA_ECORRUPT with the reason in `why`. */
static int parse_line(const char *line, size_t len, struct hist_op *op,
                      char *why, size_t why_size) {
  struct cursor c = {line, line + len, why, why_size};
  struct jvalue vals[F_COUNT];
  unsigned seen;
  int rc = parse_object(&c, vals, &seen);
  if (rc != 0)
    return rc;
  return build_op(&c, vals, seen, op);
}

/* ---- reader: the file ---------------------------------------------------- */

enum line_result { LINE_OK, LINE_EOF, LINE_TOO_LONG, LINE_NUL };

/* Reads up to and not including the next '\n' into buf (buf_size bytes).
 * A last line without '\n' counts as a line. */
static enum line_result read_line(FILE *f, char *buf, size_t buf_size,
                                  size_t *len) {
  size_t n = 0;
  int ch = EOF;
  bool nul = false;
  while ((ch = getc(f)) != EOF && ch != '\n') {
    if (n == buf_size)
      return LINE_TOO_LONG;
    if (ch == '\0')
      nul = true;
    buf[n++] = (char)ch;
  }
  *len = n;
  if (ch == EOF && n == 0)
    return LINE_EOF;
  return nul ? LINE_NUL : LINE_OK;
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
      return false;
  }
  return true;
}

int hist_read_jsonl(FILE *f, struct hist_op **ops_out, size_t *n_out, char *err,
                    size_t err_size) {
  assert(f != NULL && ops_out != NULL && n_out != NULL);
  assert(err != NULL || err_size == 0);
  *ops_out = NULL;
  *n_out = 0;
  if (err_size > 0)
    err[0] = '\0';

  static const size_t cap_first = 256;
  struct hist_op *ops = NULL;
  size_t n = 0, cap = 0;
  char line[HIST_LINE_BYTES_MAX];
  char why[160];
  size_t line_no = 0;
  int rc = 0;
  for (;;) {
    size_t len;
    enum line_result lr = read_line(f, line, sizeof line, &len);
    if (lr == LINE_EOF)
      break;
    line_no++;
    if (lr == LINE_TOO_LONG) {
      snprintf(why, sizeof why, "longer than %d bytes", HIST_LINE_BYTES_MAX);
      rc = SABHA_ECORRUPT;
      break;
    }
    if (lr == LINE_NUL) {
      snprintf(why, sizeof why, "NUL byte in line");
      rc = SABHA_ECORRUPT;
      break;
    }
    if (is_blank(line, len))
      continue;
    if (n == HIST_OPS_MAX) {
      snprintf(why, sizeof why, "more than %u operations", HIST_OPS_MAX);
      rc = SABHA_ETOOBIG;
      break;
    }
    if (n == cap) {
      size_t cap_next = cap ? cap * 2 : cap_first;
      struct hist_op *grown = realloc(ops, cap_next * sizeof *ops);
      if (grown == NULL) {
        snprintf(why, sizeof why, "out of memory");
        rc = SABHA_ENOMEM;
        break;
      }
      ops = grown;
      cap = cap_next;
    }
    rc = parse_line(line, len, &ops[n], why, sizeof why);
    if (rc != 0)
      break;
    n++;
  }
  if (rc == 0 && ferror(f)) {
    snprintf(why, sizeof why, "read error");
    rc = SABHA_EIO;
  }
  if (rc != 0) {
    if (err_size > 0)
      snprintf(err, err_size, "line %zu: %s", line_no, why);
    free(ops);
    return rc;
  }
  *ops_out = ops;
  *n_out = n;
  return 0;
}
