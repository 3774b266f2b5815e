/* Where a key lives when a node hosts several groups (src/node/groups.c,
 * docs/api.md "Groups"): the rule is part of the interface (clients that
 * want keys together rely on it), so its values are pinned here. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "storage/crc32c.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint32_t group_of(const char *key, uint32_t n) {
  return rt_key_group((const uint8_t *)key, strlen(key), n);
}

static uint32_t whole(const char *key, uint32_t n) {
  return wal_crc32c(0, key, strlen(key)) % n;
}

static void groups_key_group_is_crc32c_mod_n(void) {
  /* crc32c("123456789") = 0xe3069283, the published check value. */
  CHECK(group_of("123456789", 1) == 0);
  CHECK(group_of("123456789", 8) == 0xE3069283u % 8);
  CHECK(group_of("123456789", 64) == 0xE3069283u % 64);
  CHECK(group_of("123456789", 7) == 0xE3069283u % 7);
}

static void groups_hash_tag_decides_the_group(void) {
  for (uint32_t n = 2; n <= RT_GROUPS_MAX; n++) {
    CHECK(group_of("{123456789}", n) == 0xE3069283u % n);
    CHECK(group_of("x{123456789}y", n) == 0xE3069283u % n);
    CHECK(group_of("{123456789}{other}", n) == 0xE3069283u % n);
    CHECK(group_of("{user42}:cart", n) == group_of("{user42}:orders", n));
    CHECK(group_of("{user42}:cart", n) == group_of("user42", n));
    /* No tag (an empty one, an unclosed one): the whole key. */
    CHECK(group_of("{}x", n) == whole("{}x", n));
    CHECK(group_of("a{b", n) == whole("a{b", n));
    CHECK(group_of("{123456789", n) == whole("{123456789", n));
    CHECK(group_of("a}b{", n) == whole("a}b{", n));
  }
}

static void groups_keys_spread_over_the_groups(void) {
  uint32_t count[8] = {0};
  char key[32];
  for (int i = 0; i < 8000; i++) {
    snprintf(key, sizeof key, "key:%d", i);
    count[group_of(key, 8)]++;
  }
  for (int g = 0; g < 8; g++)
    CHECK(count[g] > 800 && count[g] < 1200);
}

static const struct test tests[] = {
    TEST(groups_key_group_is_crc32c_mod_n),
    TEST(groups_hash_tag_decides_the_group),
    TEST(groups_keys_spread_over_the_groups),
};

int main(int argc, char **argv) {
  return test_main(tests, N(tests), argc, argv);
}
