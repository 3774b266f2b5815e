/* The one function every fuzz target in this directory defines, in
 * libFuzzer's convention: it gets one input, must not crash, leak or read out
 * of bounds on any of them, and aborts when an invariant oracle fails. The
 * same target links either with libFuzzer (clang -fsanitize=fuzzer) or with
 * replay.c, which feeds it a stored corpus as a plain CTest test. */
#ifndef SABHA_FUZZ_H
#define SABHA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An oracle. A failed one aborts, which both libFuzzer and replay.c report
 * with the input that did it; unlike assert() it stays on in every build. */
#define REQUIRE(cond)                                                          \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

#endif
