/* The unit tests' runner: CHECK, a table of named tests, and main's body.
 *
 * A test is a void function; CHECK counts a failure, says where, and
 * returns from it (a test stops at its first broken expectation, so later
 * checks never read state an earlier one found wrong). `test_main` runs the
 * table, or only the test named by argv[1], prints one line per test and
 * returns the process's exit status: 0 all passed, 1 a test failed, 2 no
 * test has that name.
 *
 * Everything is static: each test program includes this once and gets its
 * own failure count. */
#ifndef SABHA_TESTS_CHECK_H
#define SABHA_TESTS_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

struct test {
  const char *name;
  void (*fn)(void);
};

#define TEST(fn)                                                               \
  { #fn, fn }

static inline int test_main(const struct test *tests, size_t n_tests,
                            int argc, char **argv) {
  size_t n_run = 0;
  for (size_t i = 0; i < n_tests; i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
      continue;
    int failures_before = failures;
    tests[i].fn();
    n_run++;
    printf("%s %s\n", failures == failures_before ? "ok  " : "FAIL",
           tests[i].name);
  }
  if (n_run == 0) {
    fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "");
    return 2;
  }
  printf("%zu tests, %d failed\n", n_run, failures);
  return failures ? 1 : 0;
}

#endif
