/* The applications' name index (src/sm/app_map.h) under names a client
 * chose to collide.
 *
 * The index is open addressing with linear probing, so names that share a
 * home slot make one run that every lookup of any of them walks. It used an
 * unkeyed hash (FNV-1a), which anyone can compute: a client could open
 * thousands of accounts or locks whose names share a slot, and every
 * command on them then cost a walk of the whole run, on every replica. The
 * hash is now keyed by a secret (app_config.hash_key, random in sabhad). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "sm/app_internal.h"
#include "sm/app_map.h"

#define NAMES 512
#define NAME_BYTES 16

static char names[NAMES][NAME_BYTES];

/* What an attacker computes: the index's old placement, FNV-1a folded. */
static uint32_t fnv_home(const char *name) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (const char *p = name; *p != '\0'; p++) {
    h ^= (uint8_t)*p;
    h *= 0x100000001b3ull;
  }
  return (uint32_t)(h ^ (h >> 32));
}

/* NAMES names whose old placement shares its low 12 bits: one home slot in
 * any index of up to 4096 slots. */
static void choose_colliding_names(void) {
  int found = 0;
  for (uint32_t i = 0; found < NAMES; i++) {
    char name[NAME_BYTES];
    snprintf(name, sizeof name, "acct-%08x", i);
    if ((fnv_home(name) & 0xfffu) == 0)
      memcpy(names[found++], name, sizeof name);
  }
}

static struct app_arg name_at(const void *ctx, uint32_t pos) {
  (void)ctx;
  struct app_arg a = {(const uint8_t *)names[pos], strlen(names[pos])};
  return a;
}

/* The longest walk from a name's home slot to where it sits. */
static uint32_t longest_probe(const struct app_map *m) {
  uint32_t mask = m->cap - 1, longest = 0;
  for (uint32_t i = 0; i < m->cap; i++) {
    if (m->slots[i].pos1 == 0)
      continue;
    uint32_t d = (i - (m->slots[i].hash & mask)) & mask;
    if (d > longest)
      longest = d;
  }
  return longest;
}

static void chosen_collisions_do_not_make_one_long_run(void) {
  choose_colliding_names();
  struct app_config cfg = app_config_default;
  cfg.hash_key[0] = 0x243f6a8885a308d3ull; /* any key the client cannot see */
  cfg.hash_key[1] = 0x13198a2e03707344ull;
  struct app_map m = {0};
  CHECK(app_map_reserve(&cfg, &m, NAMES) == 0);
  for (uint32_t i = 0; i < NAMES; i++) {
    struct app_arg a = name_at(NULL, i);
    CHECK(app_map_find(&m, a, name_at, NULL) == APP_MAP_NONE);
    app_map_insert(&m, a, i);
  }
  for (uint32_t i = 0; i < NAMES; i++)
    CHECK(app_map_find(&m, name_at(NULL, i), name_at, NULL) == i);
  /* Keyed, 512 names in 1024 slots probe a few slots at most; the FNV
   * placement put all of them in one run of 512. */
  uint32_t longest = longest_probe(&m);
  if (longest >= 64)
    fprintf(stderr, "longest probe: %u slots\n", longest);
  CHECK(longest < 64);
  /* Removing every other name keeps the rest found (backward shift). */
  for (uint32_t i = 0; i < NAMES; i += 2)
    app_map_remove(&m, name_at(NULL, i), name_at, NULL);
  for (uint32_t i = 0; i < NAMES; i++)
    CHECK(app_map_find(&m, name_at(NULL, i), name_at, NULL) ==
          (i % 2 ? i : APP_MAP_NONE));
  app_map_free(&cfg, &m);
}

/* Two keys place the same names differently: the placement is the key's. */
static void the_key_decides_the_placement(void) {
  choose_colliding_names();
  struct app_map a = {.key = {1, 2}}, b = {.key = {3, 4}};
  int same = 0;
  for (uint32_t i = 0; i < NAMES; i++) {
    const uint8_t *p = (const uint8_t *)names[i];
    size_t n = strlen(names[i]);
    same += app_map_hash(&a, p, n) == app_map_hash(&b, p, n);
  }
  CHECK(same < 4);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(chosen_collisions_do_not_make_one_long_run),
      TEST(the_key_decides_the_placement),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
