/* Fuzz target for applying committed log entries (src/sm/kvstore.c and
 * src/sm/app.c behind sabha_batch_next): bytes a node takes from its log,
 * that is from its disk or from the leader, and hands to its state
 * machines, the way the runtime's apply_entry() does (an app command by
 * its magic byte to the applications machine, anything else to the
 * key-value store, a CLOCK to both clocks).
 *
 * Input layout: a sequence of entries, each u8 type (enum
 * sabha_entry_type, taken modulo 4 so that unknown types occur too), u16
 * length (little-endian, cut to what is left) and the entry's bytes.
 *
 * Oracles: the batch walker stays inside the entry; applying is
 * deterministic (two replicas given the same entries give the same replies,
 * the same state hash and the same snapshots); and a snapshot keeps all
 * that decides a reply: a replica restored from snapshots of the first,
 * given the last few commands again, answers exactly as the first does. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_sm.h"
#include "sabha/engine.h"
#include "sabha/error.h"

#define COMMANDS_REPLAYED 4u

struct replica {
  struct kvstore *kv;
  struct app *app;
  bool hinted; /* applies with the prefetch's hash, as a node does */
};

/* What a reply says, reduced to comparable bytes. */
struct outcome {
  int rc;
  int kind;
  int detail; /* kvstore outcome, or app code and duplicate */
  int64_t integer;
  char text[APP_REPLY_TEXT_MAX];
};

static void replica_new(struct replica *r) {
  r->hinted = false;
  struct kvstore_config kc = sm_kv_config();
  struct app_config ac = sm_app_config();
  REQUIRE(kvstore_new(&r->kv, &kc) == 0 && app_new(&r->app, &ac) == 0);
}

static void replica_free(struct replica *r) {
  kvstore_free(r->kv);
  app_free(r->app);
}

static struct outcome apply(struct replica *r, const uint8_t *cmd, size_t len) {
  struct outcome o;
  memset(&o, 0, sizeof o);
  if (app_is_command(cmd, len)) {
    static struct app_reply rep;
    memset(&rep, 0, sizeof rep);
    o.rc = app_apply(r->app, cmd, len, &rep);
    REQUIRE(o.rc == 0 || o.rc == SABHA_ECORRUPT || o.rc == SABHA_EINVAL);
    REQUIRE(rep.text_len < sizeof rep.text);
    o.kind = rep.kind;
    o.detail = rep.code * 2 + rep.duplicate;
    o.integer = rep.integer;
    memcpy(o.text, rep.text, rep.text_len);
    return o;
  }
  struct kvstore_result res;
  memset(&res, 0, sizeof res);
  /* The prefetch hints read the same bytes first, as a node applying a
   * batch does, and the hinted replica applies with the hash they gave:
   * none may fault or change what follows (the other replica, which
   * applies without, must answer and end the same). */
  uint64_t hint = kvstore_prefetch_slot(r->kv, cmd, len);
  kvstore_prefetch_entry(r->kv, hint);
  kvstore_prefetch_order(r->kv, hint);
  o.rc = r->hinted ? kvstore_apply_hinted(r->kv, cmd, len, hint, &res)
                   : kvstore_apply(r->kv, cmd, len, &res);
  REQUIRE(o.rc == 0 || o.rc == SABHA_ECORRUPT);
  struct kvstore_hdr hdr;
  if (o.rc == 0 && len > 1 && cmd[1] == KVSTORE_OP_CLOCK &&
      kvstore_decode_hdr(cmd, len, &hdr) == 0)
    app_clock_advance(r->app, hdr.now_ms);
  o.kind = res.kind;
  o.detail = res.outcome;
  o.integer = res.integer;
  if (res.kind == KVSTORE_REPLY_ERROR) {
    REQUIRE(res.error != NULL && strlen(res.error) < sizeof o.text);
    strcpy(o.text, res.error);
  }
  return o;
}

static bool same(const struct outcome *a, const struct outcome *b) {
  return a->rc == b->rc && a->kind == b->kind && a->detail == b->detail &&
         a->integer == b->integer && strcmp(a->text, b->text) == 0;
}

/* Whether two replicas' stores snapshot to the same bytes. */
static bool same_store(const struct replica *x, const struct replica *y) {
  size_t n = kvstore_snapshot_size(x->kv);
  if (n != kvstore_snapshot_size(y->kv))
    return false;
  uint8_t *bx = malloc(n), *by = malloc(n);
  REQUIRE(bx != NULL && by != NULL);
  REQUIRE(kvstore_snapshot(x->kv, bx, n) == n);
  REQUIRE(kvstore_snapshot(y->kv, by, n) == n);
  bool eq = memcmp(bx, by, n) == 0;
  free(bx);
  free(by);
  return eq;
}

/* A copy of `from` made through its snapshots. */
static void restore_copy(const struct replica *from, struct replica *to) {
  size_t kv_n = kvstore_snapshot_size(from->kv);
  size_t app_n = app_snapshot_size(from->app);
  uint8_t *kv = malloc(kv_n), *app = malloc(app_n);
  REQUIRE(kv != NULL && app != NULL);
  REQUIRE(kvstore_snapshot(from->kv, kv, kv_n) == kv_n);
  REQUIRE(app_snapshot(from->app, app, app_n) == app_n);
  REQUIRE(kvstore_restore(to->kv, kv, kv_n) == 0);
  REQUIRE(app_restore(to->app, app, app_n) == 0);
  REQUIRE(app_state_hash(to->app) == app_state_hash(from->app));
  free(kv);
  free(app);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct replica a, b;
  replica_new(&a);
  replica_new(&b);
  a.hinted = true;
  /* The last few commands applied, to replay on a restored copy. */
  const uint8_t *recent[COMMANDS_REPLAYED];
  size_t recent_len[COMMANDS_REPLAYED];
  unsigned n_recent = 0;

  size_t at = 0;
  while (size - at >= 3) {
    struct sabha_entry e = {.index = 1, .term = 1, .type = data[at] % 4};
    size_t n = (size_t)(data[at + 1] | data[at + 2] << 8);
    at += 3;
    if (n > size - at)
      n = size - at;
    e.size_bytes = (uint32_t)n;
    e.data = data + at;
    at += n;
    size_t off = 0, len = 0;
    const uint8_t *cmd = NULL;
    int rc;
    while ((rc = sabha_batch_next(&e, &off, &cmd, &len)) == 1) {
      REQUIRE(cmd >= e.data && len <= n && (size_t)(cmd - e.data) <= n - len);
      /* An empty COMMAND moves the offset to 1, past its end, so that
       * the next call knows it was walked. */
      REQUIRE(off <= n || (n == 0 && off == 1));
      struct outcome oa = apply(&a, cmd, len), ob = apply(&b, cmd, len);
      REQUIRE(same(&oa, &ob));
      recent[n_recent % COMMANDS_REPLAYED] = cmd;
      recent_len[n_recent % COMMANDS_REPLAYED] = len;
      n_recent++;
    }
    REQUIRE(rc == 0 || rc == SABHA_ECORRUPT);
  }
  REQUIRE(app_state_hash(a.app) == app_state_hash(b.app));
  REQUIRE(kvstore_dbsize(a.kv) == kvstore_dbsize(b.kv));
  REQUIRE(same_store(&a, &b));

  struct replica c;
  replica_new(&c);
  restore_copy(&a, &c);
  unsigned first =
      n_recent > COMMANDS_REPLAYED ? n_recent - COMMANDS_REPLAYED : 0;
  for (unsigned i = first; i < n_recent; i++) {
    const uint8_t *cmd = recent[i % COMMANDS_REPLAYED];
    size_t len = recent_len[i % COMMANDS_REPLAYED];
    struct outcome oa = apply(&a, cmd, len), oc = apply(&c, cmd, len);
    REQUIRE(same(&oa, &oc));
  }
  replica_free(&a);
  replica_free(&b);
  replica_free(&c);
  return 0;
}
