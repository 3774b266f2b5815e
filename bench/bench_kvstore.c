/* bench_kvstore: what the key-value store costs per SET on its own, without
 * a node, a log or a socket around it, and how much heap it holds per key.
 *
 * Timing: --sets SETs (100,000 by default) of --value-bytes bytes over
 * --keys random keys (100,000; named like redis-benchmark's
 * "key:000000012345") are encoded first, then applied to a fresh store;
 * the CPU time of the applies is measured --rounds times (5) and the median
 * reported. Memory: --fill-sets SETs (2,000,000) over the same keys go
 * through an allocator that counts the bytes the C library hands out
 * (malloc_usable_size), giving the store's heap per key and the process's
 * peak RSS. The keys come from a seeded generator, so every run applies the
 * same commands. Output is `key: value` lines; nothing is asserted.
 *
 *   bench_kvstore [--sets N] [--keys N] [--value-bytes N] [--rounds N]
 *                 [--fill-sets N] [--seed N] [--ascending 0|1]
 *                 [--prefetch 0|1] [--appends N] [--lease-keys N]
 *                 [--keepalives N]
 *
 * --prefetch 1 applies as a node applies an entry's batch, asking for the
 * slot and entry of commands a few ahead early (kvstore_prefetch_slot);
 * us_per_set_filled_median times overwrites of the filled store.
 * --ascending 1 names the keys in order (0, 1, 2, ... wrapping at --keys),
 * the worst case for the ordered index's memory.
 *
 * APPEND: for a value of 1 MiB and one of 8 MiB less --appends bytes (so
 * that the last append reaches the 8 MiB bound), --appends APPENDs of one
 * byte each (1,000) are applied after one SET, and the CPU time per
 * APPEND and the bytes the store asked the allocator for per APPEND are
 * reported (us_per_append_1mib, alloc_bytes_per_append_1mib, and _8mib).
 * A store that copied the whole value on every APPEND would show the
 * value's size there; one that grows values geometrically, a few bytes.
 *
 * KEEPALIVE: a store holding 100,000 keys that expire by themselves and a
 * lease with --lease-keys keys (10,000, the default bound) applies
 * --keepalives KEEPALIVEs (1,000) of that lease, and of a lease with one
 * key; the CPU time per KEEPALIVE is reported (us_per_keepalive and
 * us_per_keepalive_1_key). A store that moved each key's expiry would
 * show the first grow with the lease's keys; one that moves the lease
 * alone, both the same. */
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include "core/prng.h"
#include "sm/kvstore.h"

#ifndef SABHA_COMMIT
#define SABHA_COMMIT "unknown"
#endif

#define ROUNDS_MAX 64
#define CMD_BYTES_MAX 4096
#define VALUE_BYTES_MAX 1024

struct options {
  uint64_t sets, keys, fill_sets, seed, appends, lease_keys, keepalives;
  uint32_t value_bytes;
  int rounds;
  bool ascending; /* keys 0, 1, 2, ... instead of random ones */
  bool prefetch;  /* apply with kvstore_prefetch_slot/_entry */
};

/* SETs encoded back to back: each is a u32 length, then the command. */
struct batch {
  uint8_t *bytes;
  size_t len, cap;
};

/* The heap the store holds, in the C library's own chunk sizes, and the
 * bytes it asked for (allocations and resizes) since asked_bytes was 0. */
struct counting {
  int64_t live_bytes;
  uint64_t asked_bytes;
};

static void *counting_fn(void *ctx, void *p, size_t size) {
  struct counting *c = ctx;
  c->asked_bytes += size;
  if (p != NULL)
    c->live_bytes -= (int64_t)malloc_usable_size(p);
  if (size == 0) {
    free(p);
    return NULL;
  }
  void *q = realloc(p, size);
  if (q == NULL && p != NULL)
    c->live_bytes += (int64_t)malloc_usable_size(p); /* p is still live */
  if (q != NULL)
    c->live_bytes += (int64_t)malloc_usable_size(q);
  return q;
}

static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void batch_add(struct batch *b, const uint8_t *cmd, size_t n) {
  if (b->cap - b->len < n + 4) {
    size_t cap = b->cap ? b->cap * 2 : 1u << 20;
    while (cap - b->len < n + 4)
      cap *= 2;
    b->bytes = realloc(b->bytes, cap);
    if (b->bytes == NULL) {
      fprintf(stderr, "bench_kvstore: out of memory\n");
      exit(1);
    }
    b->cap = cap;
  }
  uint32_t len = (uint32_t)n;
  memcpy(b->bytes + b->len, &len, 4);
  memcpy(b->bytes + b->len + 4, cmd, n);
  b->len += n + 4;
}

/* A REGISTER, then `n` SETs from session 1 numbered from seq0 + 1, keys
 * drawn from `p`. */
static void batch_make(struct batch *b, const struct options *o, struct prng *p,
                       uint64_t n, uint64_t seq0) {
  uint8_t cmd[CMD_BYTES_MAX];
  uint8_t value[VALUE_BYTES_MAX];
  memset(value, 'x', sizeof value);
  b->len = 0;
  batch_add(b, cmd, kvstore_encode_register(cmd, sizeof cmd, 0, 0));
  for (uint64_t i = 0; i < n; i++) {
    char key[32];
    int key_len =
        snprintf(key, sizeof key, "key:%012" PRIu64, prng_below(p, o->keys));
    struct kvstore_hdr h = {1, seq0 + i + 1, 0};
    struct kvstore_slice k = {(const uint8_t *)key, (size_t)key_len};
    struct kvstore_slice v = {value, o->value_bytes};
    batch_add(b, cmd, kvstore_encode_set(cmd, sizeof cmd, &h, k, v, 0, 0));
  }
}

static struct kvstore *store_new(struct counting *c) {
  struct kvstore_config cfg = kvstore_config_default;
  if (c != NULL) {
    cfg.alloc.fn = counting_fn;
    cfg.alloc.ctx = c;
  }
  struct kvstore *kv = NULL;
  if (kvstore_new(&kv, &cfg) != 0) {
    fprintf(stderr, "bench_kvstore: kvstore_new failed\n");
    exit(1);
  }
  return kv;
}

/* skip_register: the session exists already (a batch after the first). */
/* The command at `off` of b, and the offset after it (b->len at the end). */
static const uint8_t *command_at(const struct batch *b, size_t off,
                                 uint32_t *len) {
  if (off >= b->len) {
    *len = 0;
    return NULL;
  }
  memcpy(len, b->bytes + off, 4);
  return b->bytes + off + 4;
}

/* Applies b's commands in order. With `prefetch`, as a node applies an
 * entry's batch: the slot of the command 4 ahead, the entry of the one 2
 * ahead and its leaf in the ordered index 1 ahead are asked for early
 * (kvstore_prefetch_slot, _entry, _order). */
static void apply_all(struct kvstore *kv, const struct batch *b,
                      bool skip_register, bool prefetch) {
  bool skip = skip_register;
  uint64_t ahead[4] = {0}; /* hashes of the commands 1..4 ahead */
  size_t pf_off = 0;       /* the next command to prefetch */
  uint32_t len;
  if (prefetch)
    for (int k = 0; k < 4; k++) {
      const uint8_t *c = command_at(b, pf_off, &len);
      ahead[k] = c != NULL ? kvstore_prefetch_slot(kv, c, len) : 0;
      pf_off += c != NULL ? 4 + (size_t)len : 0;
    }
  for (size_t off = 0, i = 0; off < b->len; skip = false, i++) {
    if (prefetch) {
      kvstore_prefetch_order(kv, ahead[(i + 1) % 4]);
      kvstore_prefetch_entry(kv, ahead[(i + 2) % 4]);
      const uint8_t *c = command_at(b, pf_off, &len);
      ahead[i % 4] = c != NULL ? kvstore_prefetch_slot(kv, c, len) : 0;
      pf_off += c != NULL ? 4 + (size_t)len : 0;
    }
    memcpy(&len, b->bytes + off, 4);
    struct kvstore_result r;
    if (!skip && kvstore_apply(kv, b->bytes + off + 4, len, &r) != 0) {
      fprintf(stderr, "bench_kvstore: apply failed\n");
      exit(1);
    }
    off += 4 + (size_t)len;
  }
}

/* One SET of `value_bytes` bytes to a key, then `appends` APPENDs of one
 * byte to it; prints the CPU time and the bytes asked of the allocator per
 * APPEND under `name`. */
static void bench_append(const char *name, size_t value_bytes,
                         uint64_t appends) {
  size_t cap = KVSTORE_CMD_HEADER_BYTES + 64 + value_bytes;
  uint8_t *cmd = malloc(cap);
  uint8_t *value = calloc(1, value_bytes > 0 ? value_bytes : 1);
  struct batch b = {0};
  if (cmd == NULL || value == NULL) {
    fprintf(stderr, "bench_kvstore: out of memory\n");
    exit(1);
  }
  struct kvstore_slice k = {(const uint8_t *)"appended", 8};
  struct kvstore_slice v = {value, value_bytes};
  struct kvstore_slice one = {(const uint8_t *)"x", 1};
  for (uint64_t i = 0; i < appends; i++) {
    struct kvstore_hdr h = {1, i + 2, 0};
    batch_add(&b, cmd, kvstore_encode_append(cmd, cap, &h, k, one));
  }
  struct counting c = {0};
  struct kvstore *kv = store_new(&c);
  struct kvstore_result r;
  struct kvstore_hdr h = {1, 1, 0};
  if (kvstore_apply(kv, cmd, kvstore_encode_register(cmd, cap, 0, 0), &r) !=
          0 ||
      kvstore_apply(kv, cmd, kvstore_encode_set(cmd, cap, &h, k, v, 0, 0),
                    &r) != 0 ||
      r.kind != KVSTORE_REPLY_OK) {
    fprintf(stderr, "bench_kvstore: the APPEND case's SET failed\n");
    exit(1);
  }
  c.asked_bytes = 0;
  double t0 = cpu_ns();
  apply_all(kv, &b, false, false);
  double us = (cpu_ns() - t0) / 1e3 / (double)appends;
  const uint8_t *got;
  size_t got_len = 0;
  if (!kvstore_get(kv, k.ptr, k.len, 0, &got, &got_len) ||
      got_len != value_bytes + appends) {
    fprintf(stderr, "bench_kvstore: the APPEND case's value is wrong\n");
    exit(1);
  }
  printf("us_per_append_%s: %.3f\nalloc_bytes_per_append_%s: %.1f\n", name, us,
         name, (double)c.asked_bytes / (double)appends);
  kvstore_free(kv);
  free(b.bytes);
  free(value);
  free(cmd);
}

/* A store with 100,000 keys expiring by themselves and a lease holding
 * `lease_keys` keys, then `keepalives` KEEPALIVEs of that lease; prints
 * the CPU time per KEEPALIVE under `name`. */
static void bench_keepalive(const char *name, uint64_t lease_keys,
                            uint64_t keepalives) {
  enum { OWN_KEYS = 100000, TTL_MS = 1000000000 };
  uint8_t cmd[256];
  struct batch setup = {0}, b = {0};
  uint64_t seq = 0;
  struct kvstore_hdr h = {1, ++seq, 1};
  batch_add(&setup, cmd, kvstore_encode_register(cmd, sizeof cmd, 1, 0));
  batch_add(&setup, cmd,
            kvstore_encode_lease(cmd, sizeof cmd, &h, KVSTORE_OP_LEASE_GRANT,
                                 TTL_MS));
  char key[32];
  struct kvstore_slice v = {(const uint8_t *)"v", 1};
  for (uint64_t i = 0; i < OWN_KEYS + lease_keys; i++) {
    bool leased = i >= OWN_KEYS;
    struct kvstore_slice k = {(const uint8_t *)key,
                              (size_t)snprintf(key, sizeof key,
                                               "%s:%012" PRIu64,
                                               leased ? "leased" : "own", i)};
    h.seq = ++seq;
    batch_add(&setup, cmd,
              kvstore_encode_set_ex(cmd, sizeof cmd, &h, k, v,
                                    leased ? KVSTORE_SET_LEASE : KVSTORE_SET_PX,
                                    leased ? 0 : (int64_t)(TTL_MS / 2 + i),
                                    leased ? 1 : 0));
  }
  for (uint64_t i = 0; i < keepalives; i++) {
    h.seq = ++seq;
    h.now_ms = 2 + i;
    batch_add(&b, cmd,
              kvstore_encode_lease(cmd, sizeof cmd, &h,
                                   KVSTORE_OP_LEASE_KEEPALIVE, 1));
  }
  struct kvstore *kv = store_new(NULL);
  apply_all(kv, &setup, false, false);
  if (kvstore_dbsize(kv) != OWN_KEYS + lease_keys) {
    fprintf(stderr, "bench_kvstore: the KEEPALIVE case's SETs failed\n");
    exit(1);
  }
  double t0 = cpu_ns();
  apply_all(kv, &b, false, false);
  double us = (cpu_ns() - t0) / 1e3 / (double)keepalives;
  if (kvstore_lease_pttl(kv, 1, 0) != TTL_MS) {
    fprintf(stderr, "bench_kvstore: the KEEPALIVE case's lease is wrong\n");
    exit(1);
  }
  printf("us_per_keepalive%s: %.3f\n", name, us);
  kvstore_free(kv);
  free(setup.bytes);
  free(b.bytes);
}

static int parse(int argc, char **argv, struct options *o) {
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc)
      return -1;
    char *end = NULL;
    unsigned long long v = strtoull(argv[i + 1], &end, 10);
    if (end == argv[i + 1] || *end != '\0')
      return -1;
    if (strcmp(argv[i], "--sets") == 0 && v >= 1 && v <= 100000000)
      o->sets = v;
    else if (strcmp(argv[i], "--keys") == 0 && v >= 1 && v <= 100000000)
      o->keys = v;
    else if (strcmp(argv[i], "--fill-sets") == 0 && v <= 100000000)
      o->fill_sets = v;
    else if (strcmp(argv[i], "--value-bytes") == 0 && v <= VALUE_BYTES_MAX)
      o->value_bytes = (uint32_t)v;
    else if (strcmp(argv[i], "--rounds") == 0 && v >= 1 && v <= ROUNDS_MAX)
      o->rounds = (int)v;
    else if (strcmp(argv[i], "--ascending") == 0 && v <= 1)
      o->ascending = v == 1;
    else if (strcmp(argv[i], "--prefetch") == 0 && v <= 1)
      o->prefetch = v == 1;
    else if (strcmp(argv[i], "--appends") == 0 && v >= 1 && v <= 1000000)
      o->appends = v;
    else if (strcmp(argv[i], "--lease-keys") == 0 && v >= 1 &&
             v <= kvstore_config_default.lease_keys_max)
      o->lease_keys = v;
    else if (strcmp(argv[i], "--keepalives") == 0 && v >= 1 && v <= 1000000)
      o->keepalives = v;
    else if (strcmp(argv[i], "--seed") == 0)
      o->seed = v;
    else
      return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct options o = {.sets = 100000,
                      .keys = 100000,
                      .fill_sets = 2000000,
                      .seed = 1,
                      .value_bytes = 100,
                      .rounds = 5,
                      .appends = 1000,
                      .lease_keys = 10000,
                      .keepalives = 1000};
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: bench_kvstore [--sets N] [--keys N] "
                    "[--value-bytes N] [--rounds N] [--fill-sets N] "
                    "[--seed N] [--ascending 0|1] [--prefetch 0|1] "
                    "[--appends N] [--lease-keys N] [--keepalives N]\n");
    return 2;
  }
  struct utsname u;
  uname(&u);
  printf("bench: kvstore\ncommit: %s\nmachine: %s %s\nseed: %" PRIu64 "\n",
         SABHA_COMMIT, u.nodename, u.machine, o.seed);
  printf("sets: %" PRIu64 "\nkeys: %" PRIu64 "\nvalue_bytes: %" PRIu32
         "\nrounds: %d\nascending: %d\nprefetch: %d\n",
         o.sets, o.keys, o.value_bytes, o.rounds, (int)o.ascending,
         (int)o.prefetch);
  struct prng p;
  prng_seed(&p, o.seed);
  struct batch b = {0};
  batch_make(&b, &o, &p, o.sets, 0);
  double us[ROUNDS_MAX];
  for (int r = 0; r < o.rounds; r++) {
    struct kvstore *kv = store_new(NULL);
    double t0 = cpu_ns();
    apply_all(kv, &b, false, o.prefetch);
    us[r] = (cpu_ns() - t0) / 1e3 / (double)o.sets;
    kvstore_free(kv);
  }
  qsort(us, (size_t)o.rounds, sizeof us[0], cmp_double);
  printf("us_per_set_median: %.3f\nus_per_set_min: %.3f\n", us[o.rounds / 2],
         us[0]);
  if (o.fill_sets > 0) {
    /* Applied in batches of `o.sets`, so that the encoded commands stay a
     * small part of the peak RSS. */
    struct counting c = {0};
    struct kvstore *kv = store_new(&c);
    for (uint64_t done = 0; done < o.fill_sets; done += o.sets) {
      uint64_t n = o.fill_sets - done < o.sets ? o.fill_sets - done : o.sets;
      batch_make(&b, &o, &p, n, done);
      apply_all(kv, &b, done > 0, o.prefetch);
    }
    /* Overwrites of a full store, as a node under a steady load applies
     * them: the keys exist, and their entries are anywhere in memory. */
    double fus[ROUNDS_MAX];
    for (int r = 0; r < o.rounds; r++) {
      batch_make(&b, &o, &p, o.sets, o.fill_sets + (uint64_t)r * o.sets);
      double t0 = cpu_ns();
      apply_all(kv, &b, true, o.prefetch);
      fus[r] = (cpu_ns() - t0) / 1e3 / (double)o.sets;
    }
    qsort(fus, (size_t)o.rounds, sizeof fus[0], cmp_double);
    printf("us_per_set_filled_median: %.3f\n", fus[o.rounds / 2]);
    uint64_t n_keys = kvstore_dbsize(kv);
    printf("fill_sets: %" PRIu64 "\nfill_keys: %" PRIu64 "\n", o.fill_sets,
           n_keys);
    printf("heap_bytes_per_key: %.1f\n", (double)c.live_bytes / n_keys);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("rss_peak_mb: %.1f\n", (double)ru.ru_maxrss / 1024.0);
    /* A snapshot of the filled store, as a node takes one on its loop:
     * the buffer's allocation and first touch included. */
    double ms[ROUNDS_MAX];
    size_t snap_bytes = 0;
    for (int r = 0; r < o.rounds; r++) {
      double t0 = cpu_ns();
      snap_bytes = kvstore_snapshot_size(kv);
      uint8_t *buf = malloc(snap_bytes);
      if (buf == NULL)
        return 1;
      kvstore_snapshot(kv, buf, snap_bytes);
      ms[r] = (cpu_ns() - t0) / 1e6;
      free(buf);
    }
    qsort(ms, (size_t)o.rounds, sizeof ms[0], cmp_double);
    printf("snapshot_bytes: %zu\nsnapshot_ms_median: %.2f\n"
           "snapshot_ms_per_mb: %.2f\n",
           snap_bytes, ms[o.rounds / 2],
           ms[o.rounds / 2] / ((double)snap_bytes / 1e6));
    kvstore_free(kv);
  }
  printf("appends: %" PRIu64 "\n", o.appends);
  bench_append("1mib", 1u << 20, o.appends);
  bench_append("8mib", (8u << 20) - (size_t)o.appends, o.appends);
  printf("lease_keys: %" PRIu64 "\nkeepalives: %" PRIu64 "\n", o.lease_keys,
         o.keepalives);
  bench_keepalive("", o.lease_keys, o.keepalives);
  bench_keepalive("_1_key", 1, o.keepalives);
  free(b.bytes);
  return 0;
}
