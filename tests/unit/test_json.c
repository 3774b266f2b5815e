/* check/json.h is the one escaping rule of every JSON string sabha writes
 * (summaries, histories, lab results, /status): these tests pin the exact
 * bytes of each kind of escape, both treatments of the high bytes, and that
 * a sink sees the same literal however the input is split into runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check/json.h"

struct sink {
  char buf[256];
  size_t len;
  size_t calls;
};

static void put_sink(void *ctx, const char *p, size_t n) {
  struct sink *s = ctx;
  if (n == 0 || s->len + n > sizeof s->buf - 1)
    abort(); /* json_string never hands an empty piece */
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  s->buf[s->len] = '\0';
  s->calls++;
}

static const char *literal(const void *p, size_t n, enum json_bytes mode,
                           struct sink *s) {
  memset(s, 0, sizeof *s);
  json_string(put_sink, s, p, n, mode);
  return s->buf;
}

static void json_escapes_quotes_backslashes_and_controls(void) {
  struct sink s;
  static const char in[] = "a\"b\\c\n\r\t\x01\x1f\x08\x0c";
  CHECK(strcmp(literal(in, sizeof in - 1, JSON_TEXT, &s),
               "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\\u0008\\u000c\"") == 0);
  /* A NUL inside the bytes is a control character like the others. */
  CHECK(strcmp(literal("x\0y", 3, JSON_TEXT, &s), "\"x\\u0000y\"") == 0);
}

static void json_text_passes_high_bytes_and_binary_escapes_them(void) {
  struct sink s;
  static const char in[] = "\x7f\xc3\xa9~";
  CHECK(strcmp(literal(in, sizeof in - 1, JSON_TEXT, &s),
               "\"\x7f\xc3\xa9~\"") == 0);
  CHECK(strcmp(literal(in, sizeof in - 1, JSON_BINARY, &s),
               "\"\\u007f\\u00c3\\u00a9~\"") == 0);
  /* Below 0x7f both modes write the same. */
  CHECK(strcmp(literal("a\"\n", 3, JSON_BINARY, &s), "\"a\\\"\\n\"") == 0);
}

static void json_empty_string_is_two_quotes(void) {
  struct sink s;
  CHECK(strcmp(literal(NULL, 0, JSON_TEXT, &s), "\"\"") == 0);
  CHECK(strcmp(literal("", 0, JSON_BINARY, &s), "\"\"") == 0);
}

static void json_plain_bytes_go_to_the_sink_in_runs(void) {
  struct sink s;
  literal("plain text", 10, JSON_TEXT, &s);
  CHECK(s.calls == 3); /* quote, the run, quote */
  literal("ab\"cd", 5, JSON_TEXT, &s);
  CHECK(s.calls == 5); /* quote, ab, \", cd, quote */
  CHECK(strcmp(s.buf, "\"ab\\\"cd\"") == 0);
}

static void json_every_byte_round_trips_through_a_file(void) {
  /* All 256 bytes, binary: the file holds exactly what the sink got. */
  unsigned char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (unsigned char)i;
  char *mem = NULL;
  size_t mem_len = 0;
  FILE *f = open_memstream(&mem, &mem_len);
  CHECK(f != NULL);
  json_fput_bytes(f, all, sizeof all);
  json_fput_text(f, "t\xc3\xa9");
  CHECK(fclose(f) == 0);
  struct sink s;
  memset(&s, 0, sizeof s);
  char *want = malloc(2048);
  CHECK(want != NULL);
  size_t want_len = 0;
  for (int i = 0; i < 256; i++) {
    literal(&all[i], 1, JSON_BINARY, &s);
    memcpy(want + want_len, s.buf + 1, s.len - 2); /* without its quotes */
    want_len += s.len - 2;
  }
  int ok = mem_len == want_len + 2 + 5 && mem[0] == '"' &&
           memcmp(mem + 1, want, want_len) == 0 &&
           memcmp(mem + 1 + want_len, "\"\"t\xc3\xa9\"", 6) == 0;
  /* 32 controls (3 short, 29 \u00XX), '"' and '\\', 93 plain, 129 high. */
  int sized = want_len == 3 * 2 + 29 * 6 + 2 * 2 + 93 + 129 * 6;
  free(want);
  free(mem);
  CHECK(ok);
  CHECK(sized);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(json_escapes_quotes_backslashes_and_controls),
      TEST(json_text_passes_high_bytes_and_binary_escapes_them),
      TEST(json_empty_string_is_two_quotes),
      TEST(json_plain_bytes_go_to_the_sink_in_runs),
      TEST(json_every_byte_round_trips_through_a_file),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
