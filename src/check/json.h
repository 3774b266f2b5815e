/* JSON string literals, for every file sabha writes for other programs to
 * read: the simulator's --json summary and --history lines, the lab's
 * results.json, sabhad's /status.
 *
 * One escaping rule for all of them, so that a string reads back the same
 * whichever tool wrote it: '"' and '\\' get a backslash; LF, CR and TAB their
 * short escapes; every other byte below 0x20 is written \u00XX (lowercase
 * hex). What happens to the bytes 0x7f..0xff is the caller's choice, because
 * only the caller knows what its bytes are (enum json_bytes). */
#ifndef SABHA_CHECK_JSON_H
#define SABHA_CHECK_JSON_H

#include <stddef.h>
#include <stdio.h>

enum json_bytes {
  /* Text the caller vouches is UTF-8 (names, messages, scenario prose):
   * bytes from 0x7f up pass through, so non-ASCII letters stay readable. */
  JSON_TEXT,
  /* Arbitrary bytes (a client's command arguments): every byte from 0x7f
   * up is written \u00XX too, so the literal is valid JSON whatever the
   * input, and a reader gets byte b back as code point b. */
  JSON_BINARY,
};

/* Where the literal goes: called with each piece in order (n > 0). */
typedef void json_put_fn(void *ctx, const char *p, size_t n);

/* Writes the n bytes at `p` (NULL only when n is 0) as one JSON string
 * literal, quotes included, through `put`. Never fails itself: a sink that
 * can fail keeps its own error (a FILE's error flag, a buffer's sticky
 * error). */
void json_string(json_put_fn *put, void *ctx, const void *p, size_t n,
                 enum json_bytes mode);

/* json_string of the NUL-terminated UTF-8 text `s`, to `f`. */
void json_fput_text(FILE *f, const char *s);
/* json_string of n arbitrary bytes, to `f` (JSON_BINARY). */
void json_fput_bytes(FILE *f, const void *p, size_t n);

#endif
