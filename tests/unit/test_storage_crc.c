/* CRC32C tests: the published check values (the "123456789" check of the
 * Castagnoli CRC and the iSCSI vectors of RFC 3720, B.4), the lookup table
 * recomputed bit by bit from the polynomial, and that checksums can be
 * computed in pieces. */
#include <stdio.h>
#include <string.h>

#include "storage/crc32c.h"

static int failures;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)
#define RUN(test)                                                              \
  do {                                                                         \
    int before_ = failures;                                                    \
    test();                                                                    \
    printf("%s %s\n", failures == before_ ? "ok  " : "FAIL", #test);           \
  } while (0)

static void crc32c_matches_published_check_values(void) {
  CHECK(wal_crc32c(0, "123456789", 9) == 0xE3069283u);
  CHECK(wal_crc32c(0, NULL, 0) == 0);
  uint8_t b[32];
  memset(b, 0, sizeof b);
  CHECK(wal_crc32c(0, b, sizeof b) == 0x8A9136AAu);
  memset(b, 0xff, sizeof b);
  CHECK(wal_crc32c(0, b, sizeof b) == 0x62A8AB43u);
  for (int i = 0; i < 32; i++)
    b[i] = (uint8_t)i;
  CHECK(wal_crc32c(0, b, sizeof b) == 0x46DD794Eu);
  for (int i = 0; i < 32; i++)
    b[i] = (uint8_t)(31 - i);
  CHECK(wal_crc32c(0, b, sizeof b) == 0x113FDB5Cu);
}

static void crc32c_table_follows_the_castagnoli_polynomial(void) {
  for (unsigned i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    CHECK(wal_crc32c_table_entry(i) == c);
  }
}

static void crc32c_can_be_computed_in_pieces(void) {
  const char *text = "sabha: an assembly that decides together";
  size_t n = strlen(text);
  uint32_t whole = wal_crc32c(0, text, n);
  for (size_t cut = 0; cut <= n; cut++)
    CHECK(wal_crc32c(wal_crc32c(0, text, cut), text + cut, n - cut) == whole);
}

/* The fast path (the CPU's instruction, where there is one) and the table
 * agree on every length and alignment, so a log written on one machine
 * reads on another. */
static void crc32c_fast_path_matches_the_table(void) {
  uint8_t buf[300];
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < sizeof buf; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  for (size_t off = 0; off < 9; off++)
    for (size_t len = 0; off + len <= sizeof buf; len += 7)
      CHECK(wal_crc32c(0x1234u, buf + off, len) ==
            wal_crc32c_table(0x1234u, buf + off, len));
}

int main(void) {
  RUN(crc32c_matches_published_check_values);
  RUN(crc32c_fast_path_matches_the_table);
  RUN(crc32c_table_follows_the_castagnoli_polynomial);
  RUN(crc32c_can_be_computed_in_pieces);
  return failures == 0 ? 0 : 1;
}
