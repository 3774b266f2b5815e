/* A plain-C driver for the fuzz targets: replays a stored corpus, and
 * seeded mutations of it, through LLVMFuzzerTestOneInput().
 *
 * libFuzzer needs clang; this driver needs nothing, so that every build
 * (gcc, and the ASan/UBSan one of `make test`) runs each target on its
 * corpus as an ordinary CTest test. It is not a fuzzer: it finds no new
 * inputs, but it keeps the known ones passing, and its mutations (flips,
 * cuts, extensions, rewritten length fields, drawn from a fixed seed) reach
 * a few thousand nearby inputs every run. Each input is copied into a
 * buffer of exactly its size, so that ASan catches a read one byte past it.
 *
 *   usage: fuzz_<target>_replay [--mutations N] [--seed S] PATH...
 *
 * A PATH is a file or a directory of files (dot files skipped, names
 * sorted). Exits 0 when every input ran, 1 when no input was found (an empty
 * corpus would make a test that tests nothing), 2 on a usage or I/O error;
 * a failed oracle aborts. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/endian.h"
#include "core/prng.h"
#include "fuzz.h"

#define INPUT_BYTES_MAX (32u << 20)
#define DIR_ENTRIES_MAX 100000u

struct run {
  unsigned long mutations; /* per input */
  struct prng prng;
  unsigned long inputs;
  unsigned long executions;
};

static void execute(struct run *r, const uint8_t *bytes, size_t n) {
  uint8_t *copy = malloc(n > 0 ? n : 1);
  if (copy == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  memcpy(copy, bytes, n);
  LLVMFuzzerTestOneInput(copy, n);
  free(copy);
  r->executions++;
}

/* One seeded variation of `in` into `out` (room for n + 16 bytes); returns
 * its length. */
static size_t mutate(struct prng *p, const uint8_t *in, size_t n,
                     uint8_t *out) {
  memcpy(out, in, n);
  size_t len = n;
  switch (prng_below(p, 5)) {
  case 0: /* flip a few bytes */
    for (uint64_t i = prng_range(p, 1, 4); i > 0 && len > 0; i--)
      out[prng_below(p, len)] ^= (uint8_t)prng_range(p, 1, 255);
    break;
  case 1: /* cut */
    len = prng_below(p, len + 1);
    break;
  case 2: /* extend */
    for (uint64_t i = prng_range(p, 1, 16); i > 0; i--)
      out[len++] = (uint8_t)prng_next(p);
    break;
  case 3: /* set a byte to a boundary value */
    if (len > 0) {
      static const uint8_t edges[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
      out[prng_below(p, len)] = edges[prng_below(p, sizeof edges)];
    }
    break;
  default: /* flip, then make the length field agree with the size */
    if (len > 0)
      out[prng_below(p, len)] ^= (uint8_t)prng_range(p, 1, 255);
    if (prng_chance(p, 0.5) && len > 0)
      len = prng_below(p, len + 1);
    if (len >= 4)
      le_put_u32(out, (uint32_t)(len - 4));
    break;
  }
  return len;
}

static int run_file(struct run *r, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || st.st_size < 0 ||
      (uint64_t)st.st_size > INPUT_BYTES_MAX) {
    fprintf(stderr, "%s: missing or larger than %u bytes\n", path,
            INPUT_BYTES_MAX);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t *bytes = malloc(size > 0 ? size : 1);
  uint8_t *scratch = malloc(size + 16);
  if (bytes == NULL || scratch == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  size_t n = fread(bytes, 1, size, f);
  int bad = ferror(f) || n != size;
  fclose(f);
  if (bad) {
    fprintf(stderr, "%s: short read\n", path);
    free(bytes);
    free(scratch);
    return -1;
  }
  execute(r, bytes, n);
  for (unsigned long i = 0; i < r->mutations; i++)
    execute(r, scratch, mutate(&r->prng, bytes, n, scratch));
  r->inputs++;
  free(bytes);
  free(scratch);
  return 0;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(struct run *r, const char *path) {
  DIR *d = opendir(path);
  if (d == NULL) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL && n < DIR_ENTRIES_MAX) {
    if (de->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **grown = realloc(names, cap * sizeof *names);
      if (grown == NULL) {
        rc = -1;
        break;
      }
      names = grown;
    }
    size_t len = strlen(path) + 1 + strlen(de->d_name) + 1;
    names[n] = malloc(len);
    if (names[n] == NULL) {
      rc = -1;
      break;
    }
    snprintf(names[n], len, "%s/%s", path, de->d_name);
    n++;
  }
  closedir(d);
  if (rc == 0)
    qsort(names, n, sizeof *names, compare_names);
  for (size_t i = 0; i < n; i++) {
    if (rc == 0 && run_file(r, names[i]) != 0)
      rc = -1;
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  struct run r;
  memset(&r, 0, sizeof r);
  uint64_t seed = 1;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc) {
      fprintf(stderr, "%s needs a value\n", argv[i]);
      return 2;
    }
    if (strcmp(argv[i], "--mutations") == 0)
      r.mutations = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0)
      seed = strtoull(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "usage: %s [--mutations N] [--seed S] PATH...\n", argv[0]);
    return 2;
  }
  prng_seed(&r.prng, seed);
  for (; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
      return 2;
    }
    int rc = S_ISDIR(st.st_mode) ? run_dir(&r, argv[i]) : run_file(&r, argv[i]);
    if (rc != 0)
      return 2;
  }
  printf("%lu inputs, %lu executions\n", r.inputs, r.executions);
  return r.inputs > 0 ? 0 : 1;
}
