/* trace_run: runs golden trace files and compares what they print.
 *
 *   trace_run [--rewrite] FILE...
 *
 * A file is a list of blocks (README.md beside this file):
 *
 *   # comments and blank lines, kept as they are
 *   COMMAND ARGS...
 *   ----
 *   the output the command must print, up to the next blank line
 *
 * Each command runs against a fresh in-memory cluster created by the file's
 * first command (trace_host.c). An output that differs is reported with the
 * file, the line of the command and a line diff (" " same, "-" expected,
 * "+" actual); the file goes on, so one run shows every difference. With
 * --rewrite (or SABHA_TRACE_REWRITE=1 in the environment) the expected
 * outputs are replaced in place by what the commands printed, to be reviewed
 * as a diff in version control. Outputs never hold a blank line (a command
 * that prints nothing shows "ok"), so a block always ends at one.
 *
 * Exit status: 0 every file matched; 1 an output differed, or the host saw
 * the engine break its contract (that fails even a rewrite); 2 a file could
 * not be read or has a script error (an unknown command, a bad argument),
 * which stops that file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

#define FILE_BYTES_MAX (8u << 20)
#define DIFF_CELLS_MAX (4u << 20) /* lines x lines for the LCS table */
#define DIFF_CONTEXT 3u           /* unchanged lines shown around a change */

struct lines {
  char **at; /* pointers into one buffer, NUL-terminated */
  size_t n;
  size_t cap;
};

static void lines_push(struct lines *l, char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 256;
    l->at = realloc(l->at, l->cap * sizeof *l->at);
    if (l->at == NULL) {
      perror("trace_run");
      exit(2);
    }
  }
  l->at[l->n++] = s;
}

/* Splits `text` (modified in place) at newlines; a final newline ends the
 * last line rather than starting an empty one. */
static void lines_split(struct lines *l, char *text) {
  char *p = text;
  while (*p != '\0') {
    char *nl = strchr(p, '\n');
    lines_push(l, p);
    if (nl == NULL)
      break;
    *nl = '\0';
    p = nl + 1;
  }
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = malloc(FILE_BYTES_MAX + 1);
  size_t n = buf ? fread(buf, 1, FILE_BYTES_MAX + 1, f) : 0;
  bool bad = buf == NULL || ferror(f) || n > FILE_BYTES_MAX;
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* ---- the diff ------------------------------------------------------------ */

/* Prints a line diff of `want` and `got` by longest common subsequence,
 * showing only changes and a little context around them. */
static void print_diff(char **want, size_t nw, char **got, size_t ng) {
  if ((nw + 1) * (ng + 1) > DIFF_CELLS_MAX) {
    fprintf(stderr, "  (too long to diff: expected %zu lines, got %zu)\n", nw,
            ng);
    return;
  }
  /* lcs[i][j]: common lines of want[i..] and got[j..]. */
  size_t cols = ng + 1;
  unsigned *lcs = calloc((nw + 1) * cols, sizeof *lcs);
  if (lcs == NULL)
    return;
  for (size_t i = nw; i-- > 0;)
    for (size_t j = ng; j-- > 0;)
      lcs[i * cols + j] = strcmp(want[i], got[j]) == 0
                              ? lcs[(i + 1) * cols + j + 1] + 1
                              : (lcs[(i + 1) * cols + j] > lcs[i * cols + j + 1]
                                     ? lcs[(i + 1) * cols + j]
                                     : lcs[i * cols + j + 1]);
  /* Walk once to mark, then print with context. */
  size_t total = nw + ng;
  char *op = malloc(total + 1);
  const char **text = malloc((total + 1) * sizeof *text);
  size_t k = 0;
  size_t i = 0;
  size_t j = 0;
  while (op != NULL && text != NULL && (i < nw || j < ng)) {
    if (i < nw && j < ng && strcmp(want[i], got[j]) == 0) {
      op[k] = ' ';
      text[k++] = want[i++];
      j++;
    } else if (i < nw &&
               (j == ng || lcs[(i + 1) * cols + j] >= lcs[i * cols + j + 1])) {
      op[k] = '-';
      text[k++] = want[i++];
    } else {
      op[k] = '+';
      text[k++] = got[j++];
    }
  }
  bool skipping = false;
  for (size_t m = 0; op != NULL && text != NULL && m < k; m++) {
    bool near = false;
    for (size_t d = m >= DIFF_CONTEXT ? m - DIFF_CONTEXT : 0;
         d < k && d <= m + DIFF_CONTEXT && !near; d++)
      near = op[d] != ' ';
    if (near) {
      fprintf(stderr, "  %c %s\n", op[m], text[m]);
    } else if (!skipping) {
      fprintf(stderr, "    ...\n");
    }
    skipping = !near;
  }
  free(op);
  free(text);
  free(lcs);
}

/* ---- one file -------------------------------------------------------------
 */

struct result {
  unsigned blocks;
  unsigned mismatches;
  unsigned violations;
  bool script_error;
};

static bool is_prose(const char *s) {
  return s[0] == '\0' || s[0] == '#';
}

/* Runs the blocks of `path`; writes the rewritten file to `rewritten` when
 * it is not NULL. */
static void run_lines(const char *path, struct lines *l,
                      struct trace_out *rewritten, struct result *r) {
  struct trace_world *w = trace_world_new();
  size_t i = 0;
  while (i < l->n) {
    if (is_prose(l->at[i])) {
      if (rewritten)
        trace_out_add(rewritten, "%s\n", l->at[i]);
      i++;
      continue;
    }
    size_t cmd = i++;
    if (i >= l->n || strcmp(l->at[i], "----") != 0) {
      fprintf(stderr, "%s:%zu: '%s' is not followed by ----\n", path, cmd + 1,
              l->at[cmd]);
      r->script_error = true;
      break;
    }
    size_t want = ++i;
    while (i < l->n && l->at[i][0] != '\0')
      i++;
    struct trace_out got = {0};
    char err[512] = "";
    r->blocks++;
    if (trace_command(w, l->at[cmd], &got, err, sizeof err) != 0) {
      fprintf(stderr, "%s:%zu: %s: %s\n", path, cmd + 1, l->at[cmd], err);
      r->script_error = true;
      trace_out_free(&got);
      break;
    }
    if (got.len == 0)
      trace_out_add(&got, "ok\n");
    struct lines actual = {0};
    lines_split(&actual, got.text);
    bool same = actual.n == i - want;
    for (size_t k = 0; same && k < actual.n; k++)
      same = strcmp(actual.at[k], l->at[want + k]) == 0;
    if (!same) {
      r->mismatches++;
      fprintf(stderr, "%s:%zu: output of '%s' differs (-expected +actual):\n",
              path, cmd + 1, l->at[cmd]);
      print_diff(&l->at[want], i - want, actual.at, actual.n);
    }
    if (rewritten) {
      trace_out_add(rewritten, "%s\n----\n", l->at[cmd]);
      for (size_t k = 0; k < actual.n; k++)
        trace_out_add(rewritten, "%s\n", actual.at[k]);
    }
    free(actual.at);
    trace_out_free(&got);
  }
  r->violations = trace_violations(w);
  trace_world_free(w);
}

static int write_file(const char *path, const struct trace_out *text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (f == NULL)
    return -1;
  size_t n = text->len ? fwrite(text->text, 1, text->len, f) : 0;
  if (fclose(f) != 0 || n != text->len || rename(tmp, path) != 0) {
    remove(tmp);
    return -1;
  }
  return 0;
}

/* Returns the file's exit status (see the top of the file). */
static int run_file(const char *path, bool rewrite) {
  char *text = read_file(path);
  if (text == NULL) {
    fprintf(stderr, "%s: cannot read (or larger than %u bytes)\n", path,
            FILE_BYTES_MAX);
    return 2;
  }
  struct lines l = {0};
  lines_split(&l, text);
  struct trace_out out = {0};
  struct result r = {0};
  run_lines(path, &l, rewrite ? &out : NULL, &r);
  int status = r.script_error ? 2 : 0;
  if (rewrite && !r.script_error && r.mismatches > 0) {
    if (write_file(path, &out) != 0) {
      fprintf(stderr, "%s: cannot rewrite\n", path);
      status = 2;
    } else {
      fprintf(stderr, "%s: rewrote %u outputs\n", path, r.mismatches);
    }
  } else if (r.mismatches > 0) {
    status = 1;
  }
  if (r.violations > 0) {
    fprintf(stderr, "%s: the engine broke its contract %u times (!! lines)\n",
            path, r.violations);
    if (status == 0)
      status = 1;
  }
  printf("%s %s (%u commands)\n", status == 0 ? "ok  " : "FAIL", path,
         r.blocks);
  trace_out_free(&out);
  free(l.at);
  free(text);
  return status;
}

int main(int argc, char **argv) {
  const char *env = getenv("SABHA_TRACE_REWRITE");
  bool rewrite = env != NULL && strcmp(env, "1") == 0;
  int first = 1;
  if (argc > 1 && strcmp(argv[1], "--rewrite") == 0) {
    rewrite = true;
    first = 2;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: trace_run [--rewrite] FILE...\n");
    return 2;
  }
  int status = 0;
  for (int i = first; i < argc; i++) {
    int s = run_file(argv[i], rewrite);
    if (s > status)
      status = s;
  }
  return status;
}
