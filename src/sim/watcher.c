/* The simulator's watcher and the watch checker.
 *
 * One more client beside the workload's and the operator's: it asks a
 * node for SABHA.WATCH "" FROM 1 BATCH 0 (every change, a reply per
 * revision) and records every event it gets. When its connection goes (a
 * crash, a partition, a node that installed a snapshot and says so) it
 * connects to another node and resumes FROM the revision after the last it
 * received, as a real client resumes after a reconnect or a leader change.
 * A node that no longer keeps that revision says so ("compacted"); the
 * watcher tries the others, and only when every node refused does it
 * accept the gap the nodes declared and start a new segment where they
 * stream from.
 *
 * The reference: every committed store command, taken once at its log
 * position (sim_observe_command's `first`), is applied to a shadow store
 * here with its index as the revision; the shadow's events are exactly the
 * events every node's store reports, in commit order. The check, at the
 * end: each segment the watcher received is exactly the reference's events
 * from the segment's first revision on, contiguous: every event once, in
 * order, none missing, none invented, each value byte for byte (by
 * hash). A broken resume point (--bug watch-resume-skip) fails it, and so
 * does a value the window rebuilt wrong from the workload's APPENDs
 * (--bug watch-delta-order). */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/resp.h"
#include "sim/sim_internal.h"
#include "sm/kvstore.h"

#define WATCH_BACKOFF_US_MIN 50000u
#define WATCH_BACKOFF_US_MAX 300000u

struct wevent {
  uint64_t revision;
  uint64_t key_hash, value_hash;
  uint8_t kind;
};

struct wlist {
  struct wevent *v;
  size_t n, cap;
};

struct segment {
  uint64_t from_rev;
  size_t start; /* in got */
};

struct sim_watch {
  struct kvstore *shadow;
  struct wlist ref, got;
  struct segment *segs;
  size_t n_segs, cap_segs;
  uint64_t next_rev;     /* FROM for the next connection */
  uint32_t refused;      /* nodes in a row that said "compacted" */
  uint64_t declared_rev; /* where the last refusal said it streams from */
  struct prng prng;
  uint32_t node;
  uint32_t conn; /* id + 1; 0: none */
  uint32_t conn_gen;
  uint32_t kick_token;
  struct sim_inbuf in;
  uint64_t reconnects;
};

static uint32_t watcher_index(const struct sim *s) {
  return s->n_clients + 1;
}

static void wlist_push(struct wlist *l, const struct wevent *e) {
  if (l->n == l->cap) {
    l->cap = l->cap == 0 ? 1024 : l->cap * 2;
    l->v = sim_xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = *e;
}

static void on_shadow_event(void *ctx, const struct kvstore_event *ev) {
  struct sim_watch *w = ctx;
  struct wevent e = {.revision = ev->revision,
                     .key_hash = sim_hash_bytes(ev->key, ev->key_len),
                     .value_hash =
                         ev->kind == KVSTORE_EVENT_PUT
                             ? sim_hash_bytes(ev->value, ev->value_len)
                             : 0,
                     .kind = (uint8_t)ev->kind};
  wlist_push(&w->ref, &e);
}

static void segment_begin(struct sim_watch *w, uint64_t from_rev) {
  if (w->n_segs == w->cap_segs) {
    w->cap_segs = w->cap_segs == 0 ? 8 : w->cap_segs * 2;
    w->segs = sim_xrealloc(w->segs, w->cap_segs * sizeof *w->segs);
  }
  w->segs[w->n_segs].from_rev = from_rev;
  w->segs[w->n_segs].start = w->got.n;
  w->n_segs++;
  w->next_rev = from_rev;
}

void watcher_init(struct sim *s) {
  struct sim_watch *w = sim_xcalloc(1, sizeof *w);
  struct kvstore_config kc = kvstore_config_default;
  kc.on_event = on_shadow_event;
  kc.event_ctx = w;
  if (kvstore_new(&w->shadow, &kc) != 0)
    abort();
  prng_seed(&w->prng, sim_mix(s->o.seed, 0x77617463ull));
  w->node = (uint32_t)prng_below(&w->prng, s->n_nodes);
  segment_begin(w, 1);
  s->watch = w;
}

void watcher_free(struct sim *s) {
  struct sim_watch *w = s->watch;
  if (w == NULL)
    return;
  kvstore_free(w->shadow);
  free(w->ref.v);
  free(w->got.v);
  free(w->segs);
  free(w->in.data);
  free(w);
  s->watch = NULL;
}

void watcher_observe(struct sim *s, uint64_t index, const uint8_t *cmd,
                     size_t len) {
  struct sim_watch *w = s->watch;
  if (w == NULL)
    return;
  kvstore_set_revision(w->shadow, index);
  struct kvstore_result r;
  (void)kvstore_apply(w->shadow, cmd, len, &r);
}

static void kick(struct sim *s, uint64_t at_us) {
  struct sim_watch *w = s->watch;
  struct sim_event *ev = ev_new(s, EV_CLIENT_TIMER, watcher_index(s));
  ev->gen = ++w->kick_token;
  sim_at(s, at_us, ev);
}

static void kick_later(struct sim *s) {
  struct sim_watch *w = s->watch;
  kick(s, s->now_us +
              prng_range(&w->prng, WATCH_BACKOFF_US_MIN, WATCH_BACKOFF_US_MAX));
}

void watcher_start(struct sim *s) {
  kick(s, s->now_us + 1000);
}

static void drop_conn(struct sim *s) {
  struct sim_watch *w = s->watch;
  if (w->conn != 0 && conn_get(s, w->conn - 1, w->conn_gen) != NULL)
    conn_close_end(s, w->conn - 1, false);
  w->conn = 0;
  w->in.len = 0;
}

static void next_node(struct sim *s) {
  struct sim_watch *w = s->watch;
  if (s->n_nodes > 1)
    w->node = (w->node + 1 + (uint32_t)prng_below(&w->prng, s->n_nodes - 1)) %
              s->n_nodes;
}

static void connect_now(struct sim *s) {
  struct sim_watch *w = s->watch;
  if (s->phase == PHASE_DONE || w->conn != 0)
    return;
  uint32_t id = conn_open_client(s, watcher_index(s), w->node);
  if (id == UINT32_MAX) {
    next_node(s);
    kick_later(s);
    return;
  }
  w->conn = id + 1;
  w->conn_gen = s->conns[id].gen;
  w->reconnects++;
  char from[24];
  int n = snprintf(from, sizeof from, "%" PRIu64, w->next_rev);
  resp_buf_reset(&s->request);
  resp_write_array(&s->request, 6);
  resp_write_bulk(&s->request, "SABHA.WATCH", 11);
  resp_write_bulk(&s->request, "", 0);
  resp_write_bulk(&s->request, "FROM", 4);
  resp_write_bulk(&s->request, from, (size_t)n);
  resp_write_bulk(&s->request, "BATCH", 5);
  resp_write_bulk(&s->request, "0", 1);
  conn_send(s, id, true, s->request.data, s->request.len);
}

/* ---- replies ------------------------------------------------------------- */

struct rcur {
  const uint8_t *p, *end;
};

static char line(struct rcur *c, int64_t *num, const uint8_t **text,
                 size_t *n) {
  const uint8_t *cr = memchr(c->p, '\r', (size_t)(c->end - c->p));
  assert(cr != NULL); /* resp_reply_scan found the whole reply */
  char type = (char)c->p[0];
  *text = c->p + 1;
  *n = (size_t)(cr - c->p - 1);
  /* A number only on the lines that carry one: an error's text is not. */
  int64_t v = 0;
  bool neg = *n > 0 && (*text)[0] == '-';
  for (size_t i = neg ? 1 : 0;
       i < *n && i < 19 && (*text)[i] >= '0' && (*text)[i] <= '9'; i++)
    v = v * 10 + ((*text)[i] - '0');
  *num = type == '-' || type == '+' ? 0 : neg ? -v : v;
  c->p = cr + 2;
  return type;
}

/* A bulk's hash, or 0 for nil. */
static bool bulk(struct rcur *c, uint64_t *hash, bool *nil) {
  int64_t len;
  const uint8_t *t;
  size_t n;
  if (line(c, &len, &t, &n) != '$')
    return false;
  *nil = len < 0;
  *hash = 0;
  if (len >= 0) {
    *hash = sim_hash_bytes(c->p, (size_t)len);
    c->p += len + 2;
  }
  return true;
}

static bool text_has(const uint8_t *p, size_t n, const char *word) {
  size_t k = strlen(word);
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(p + i, word, k) == 0)
      return true;
  return false;
}

/* An error: the node ends the watch. "compacted" names where it streams
 * from; the others (fell behind, a snapshot installed) mean: resume
 * elsewhere. */
static void on_error(struct sim *s, const uint8_t *t, size_t n) {
  struct sim_watch *w = s->watch;
  drop_conn(s);
  if (text_has(t, n, "compacted")) {
    const char *key = "streams from revision ";
    uint64_t from = 0;
    for (size_t i = 0; i + strlen(key) <= n; i++)
      if (memcmp(t + i, key, strlen(key)) == 0) {
        for (size_t k = i + strlen(key); k < n && t[k] >= '0' && t[k] <= '9';
             k++)
          from = from * 10 + (uint64_t)(t[k] - '0');
        break;
      }
    if (from > w->declared_rev)
      w->declared_rev = from;
    if (++w->refused >= s->n_nodes && w->declared_rev > w->next_rev) {
      /* Every node said it: the gap is theirs, declared, not silent. */
      segment_begin(w, w->declared_rev);
      w->refused = 0;
    }
  }
  next_node(s);
  kick_later(s);
}

static bool on_reply(struct sim *s, void *ctx, const uint8_t *p, size_t len) {
  struct sim_watch *w = ctx;
  struct rcur c = {p, p + len};
  int64_t n;
  const uint8_t *t;
  size_t tn;
  char type = line(&c, &n, &t, &tn);
  if (type == '-') {
    on_error(s, t, tn);
    return false;
  }
  if (type != '*') {
    sim_fail(s, FAIL_SAFETY, "watch: a reply that is not a batch: %c", type);
    return false;
  }
  w->refused = 0;
  w->declared_rev = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t four, rev;
    uint64_t kind_hash;
    bool nil;
    struct wevent e;
    memset(&e, 0, sizeof e);
    if (line(&c, &four, &t, &tn) != '*' || four != 4 ||
        !bulk(&c, &kind_hash, &nil) || !bulk(&c, &e.key_hash, &nil) ||
        !bulk(&c, &e.value_hash, &nil) || line(&c, &rev, &t, &tn) != ':') {
      sim_fail(s, FAIL_SAFETY, "watch: a malformed event");
      return false;
    }
    e.kind = nil ? KVSTORE_EVENT_DEL : KVSTORE_EVENT_PUT;
    e.revision = (uint64_t)rev;
    wlist_push(&w->got, &e);
    w->next_rev = e.revision + 1;
  }
  return true;
}

static void on_data(struct sim *s, const struct chunk *ch) {
  if (!sim_feed_replies(&s->watch->in, ch, on_reply, s, s->watch))
    sim_fail(s, FAIL_SAFETY, "watch: a node sent bytes that are not RESP");
}

void watcher_on_event(struct sim *s, struct sim_event *ev) {
  struct sim_watch *w = s->watch;
  if (ev->kind == EV_CLIENT_TIMER) {
    if (ev->gen == w->kick_token)
      connect_now(s);
    return;
  }
  const struct conn_ev *ce = &ev->u.c;
  if (w->conn != ce->conn + 1 || w->conn_gen != ce->conn_gen)
    return;
  if (ev->kind == EV_CONN_DATA) {
    on_data(s, ce->chunk);
  } else if (ev->kind == EV_CONN_DOWN) {
    struct conn *cn = conn_get(s, ce->conn, ce->conn_gen);
    if (cn != NULL) {
      cn->opener_open = false;
      conn_maybe_free(s, ce->conn);
    }
    w->conn = 0;
    w->in.len = 0;
    next_node(s);
    kick_later(s);
  }
}

/* ---- the check ------------------------------------------------------------
 */

static bool same_event(const struct wevent *a, const struct wevent *b) {
  return a->revision == b->revision && a->kind == b->kind &&
         a->key_hash == b->key_hash && a->value_hash == b->value_hash;
}

void watcher_final(struct sim *s) {
  struct sim_watch *w = s->watch;
  if (w == NULL)
    return;
  s->res->watch_events += w->got.n;
  if (s->res->liveness_failures == 0)
    coord_final(s, w->shadow);
  for (size_t k = 0; k < w->n_segs && !s->stop; k++) {
    size_t start = w->segs[k].start;
    size_t end = k + 1 < w->n_segs ? w->segs[k + 1].start : w->got.n;
    /* The reference's first event at or after the segment's revision. */
    size_t lo = 0, hi = w->ref.n;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (w->ref.v[mid].revision < w->segs[k].from_rev)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (size_t i = start; i < end; i++) {
      size_t r = lo + (i - start);
      const struct wevent *g = &w->got.v[i];
      if (r >= w->ref.n) {
        sim_fail(s, FAIL_SAFETY,
                 "watch: event %zu of the stream from revision %" PRIu64
                 " (revision %" PRIu64 ") was never committed",
                 i - start, w->segs[k].from_rev, g->revision);
        return;
      }
      if (!same_event(g, &w->ref.v[r]) && getenv("WATCH_DEBUG") != NULL) {
        for (size_t q = (r > 8 ? r - 8 : 0); q < r + 4 && q < w->ref.n; q++)
          fprintf(stderr, "ref[%zu] rev %llu kind %d key %llx\n", q,
                  (unsigned long long)w->ref.v[q].revision, w->ref.v[q].kind,
                  (unsigned long long)w->ref.v[q].key_hash);
        for (size_t q = (i > 8 ? i - 8 : start); q < i + 4 && q < end; q++)
          fprintf(stderr, "got[%zu] rev %llu kind %d key %llx\n", q,
                  (unsigned long long)w->got.v[q].revision, w->got.v[q].kind,
                  (unsigned long long)w->got.v[q].key_hash);
      }
      if (!same_event(g, &w->ref.v[r])) {
        const struct wevent *f = &w->ref.v[r];
        bool same_place = g->revision == f->revision && g->kind == f->kind &&
                          g->key_hash == f->key_hash;
        sim_fail(s, FAIL_SAFETY,
                 "watch: event %zu of the stream from revision %" PRIu64
                 " is %s at revision %" PRIu64 ", but the log's is %s at "
                 "revision %" PRIu64 " (%s)",
                 i - start, w->segs[k].from_rev,
                 g->kind == KVSTORE_EVENT_PUT ? "a put" : "a del", g->revision,
                 f->kind == KVSTORE_EVENT_PUT ? "a put" : "a del", f->revision,
                 same_place ? "of the same key with other bytes"
                            : "a gap, a duplicate or a change out of order");
        return;
      }
    }
  }
}
