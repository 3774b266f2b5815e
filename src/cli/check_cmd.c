/* `sabha check --history FILE`: the simulator's linearizability checker on
 * a history recorded anywhere else, in the format `sabha sim --history`
 * writes (check/history.h): by the real-process chaos test, by a client
 * library's test, or by hand.
 *
 * It prints `key: value` lines like the simulator:
 *   ops, partitions, steps, linearizable: yes | no | unknown
 * and, for no or unknown, `why:` with the checker's message. Exit status:
 * 0 linearizable, 1 not (or the search ran out of steps: unknown is never
 * a pass), 2 usage, 3 the file cannot be read or is not a history. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/history.h"
#include "check/linearize.h"
#include "cli/cli.h"
#include "sabha/error.h"

void cli_check_usage(FILE *f) {
  fprintf(f,
          "usage: sabha check --history FILE [--steps N]\n"
          "\n"
          "Checks that a client history (JSON lines, the format of\n"
          "`sabha sim --history`) is linearizable for a key-value store\n"
          "with put, get, cas, incr and append, keys that may expire\n"
          "included.\n"
          "\n"
          "options:\n"
          "  --history FILE  the history; - reads standard input\n"
          "  --steps N       search steps per key before giving up\n"
          "                  (unknown counts as a failure) [10000000]\n"
          "\n"
          "output: ops, partitions, steps, linearizable (yes, no or\n"
          "unknown), why (when not yes).\n"
          "\n"
          "exit status: 0 linearizable; 1 not, or unknown; 2 usage error;\n"
          "3 the file cannot be read or is not a history.\n");
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "sabha check: %s%s\n\n", what, arg);
  cli_check_usage(stderr);
  return CLI_EXIT_USAGE;
}

int cli_check(int argc, char **argv) {
  const char *path = NULL;
  uint64_t steps = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      cli_check_usage(stdout);
      return CLI_EXIT_OK;
    }
    if (i + 1 >= argc)
      return usage_error("unknown flag or missing value: ", argv[i]);
    if (strcmp(argv[i], "--history") == 0) {
      path = argv[++i];
    } else if (strcmp(argv[i], "--steps") == 0) {
      char *end = NULL;
      errno = 0;
      unsigned long long v = strtoull(argv[++i], &end, 10);
      if (errno != 0 || end == argv[i] || *end != '\0' || v == 0 ||
          argv[i][0] == '-')
        return usage_error("--steps takes a positive number, got ", argv[i]);
      steps = v;
    } else {
      return usage_error("unknown flag: ", argv[i]);
    }
  }
  if (path == NULL)
    return usage_error("--history FILE is required", "");

  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "sabha check: cannot open %s: %s\n", path,
            strerror(errno));
    return CLI_EXIT_ERROR;
  }
  struct hist_op *ops = NULL;
  size_t n = 0;
  char err[256] = "";
  int rv = hist_read_jsonl(f, &ops, &n, err, sizeof err);
  if (f != stdin)
    fclose(f);
  if (rv != 0) {
    fprintf(stderr, "sabha check: %s: %s%s%s\n", path, sabha_strerror(rv),
            err[0] ? ": " : "", err);
    return CLI_EXIT_ERROR;
  }
  struct lin_report rep;
  rv = lin_check(ops, n, &lin_model_kv, steps, &rep);
  free(ops);
  if (rv != 0) {
    fprintf(stderr, "sabha check: %s: %s%s%s\n", path, sabha_strerror(rv),
            rep.message[0] ? ": " : "", rep.message);
    return CLI_EXIT_ERROR;
  }
  printf("ops: %zu\n", rep.n_ops);
  printf("partitions: %zu\n", rep.n_partitions);
  printf("steps: %" PRIu64 "\n", rep.steps);
  static const char *const verdict[] = {"yes", "no", "unknown"};
  printf("linearizable: %s\n", verdict[rep.result]);
  if (rep.result != LIN_OK)
    printf("why: %s\n", rep.message);
  return rep.result == LIN_OK ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
