/* SABHA.WATCH (src/node/watch.c) through the runtime's API, as a host sees
 * it: one node that leads alone over memfs, its clients, and watchers.
 *
 * What it holds a watcher to: the revision it is told to resume from when
 * it falls behind is the one after the last it was given, or, given none
 * yet, after the one it started at: resumed there, at this node or
 * another, it gets every change once and none from before it began. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node/runtime.h"
#include "rt_host.h"

/* A watcher started without FROM that falls behind before any change it
 * watches came (here a change larger than the whole window restarts it)
 * resumes after the revision it started at: told FROM 1, it would get, at
 * a node that still holds them, every change before it began. */
static void
a_watcher_behind_before_its_first_event_resumes_where_it_began(void) {
  struct rt_node n;
  struct rt_config cfg;
  CHECK(rt_node_init(&n, &cfg) == 0);
  rt_node_config_alone(&n, &cfg);
  cfg.watch_window_bytes = 64u << 10;
  CHECK(rt_node_start(&n, &cfg) == 0);
  CHECK(rt_node_elect(&n) == 0);
  struct rt_stream *c = NULL, *w = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  CHECK(rt_stream_accept(n.rt, true, &w) == NULL);
  rt_stream_input(c, "SET x 1\r\nSET x 2\r\n", 18);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n+OK\r\n") == 0);
  uint64_t began = rt_applied_index(n.rt);
  rt_stream_input(w, "SABHA.WATCH x BATCH 0\r\n", 23);
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(w), "") == 0);
  CHECK(rt_stream_say_set(c, "y", 100u << 10));
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  char want[64];
  snprintf(want, sizeof want, "resume with FROM %" PRIu64 "\r\n", began + 1);
  const char *got = rt_stream_said(w);
  if (strstr(got, want) == NULL)
    fprintf(stderr, "the watcher got: [%s], not [%s]\n", got, want);
  CHECK(strncmp(got, "-ERR the watch fell behind", 26) == 0 &&
        strstr(got, want) != NULL);
  rt_node_close(&n);
}

/* Node 1 leading alone, with a watch window of window_bytes (0: the
 * default). */
static bool node_alone(struct rt_node *n, uint64_t window_bytes) {
  struct rt_config cfg;
  if (rt_node_init(n, &cfg) != 0)
    return false;
  rt_node_config_alone(n, &cfg);
  cfg.watch_window_bytes = window_bytes;
  return rt_node_start(n, &cfg) == 0 && rt_node_elect(n) == 0;
}

/* ---- the window against a model that copies every value whole -------------
 *
 * The window may keep an APPEND as the bytes it added; a watcher must
 * still get every value whole, byte for byte, as a window that copied
 * each one would give it. The model here is that window's meaning: every
 * change the store made, in order, with its whole value and revision. */

#define MODEL_KEYS 3
static const char *const model_keys[MODEL_KEYS] = {"a1", "a2", "b1"};
static const char *const model_prefixes[] = {"", "a", "a2", "b"};
#define MODEL_VALUE_BYTES_MAX (48u << 10)

struct model_event {
  bool del;
  int key;
  uint64_t revision;
  uint8_t *value;
  size_t value_len;
};

struct model {
  struct model_event *ev;
  size_t n, cap;
  uint8_t *value[MODEL_KEYS];
  size_t len[MODEL_KEYS];
  bool present[MODEL_KEYS];
};

static uint64_t model_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void model_note(struct model *m, bool del, int key, uint64_t rev) {
  if (m->n == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 1024;
    m->ev = realloc(m->ev, m->cap * sizeof *m->ev);
  }
  struct model_event *e = &m->ev[m->n++];
  e->del = del;
  e->key = key;
  e->revision = rev;
  e->value_len = del ? 0 : m->len[key];
  e->value = malloc(e->value_len + 1);
  if (!del && e->value_len > 0)
    memcpy(e->value, m->value[key], e->value_len);
}

static void model_free(struct model *m) {
  for (size_t i = 0; i < m->n; i++)
    free(m->ev[i].value);
  free(m->ev);
  for (int k = 0; k < MODEL_KEYS; k++)
    free(m->value[k]);
}

/* One write command, RESP-encoded into b (at most 3 arguments). */
struct model_cmd {
  const char *verb;
  int key;
  const uint8_t *arg;
  size_t arg_len;
};

static size_t cmd_encode(uint8_t *b, const struct model_cmd *c) {
  size_t at = 0;
  int argc = c->arg != NULL ? 3 : 2;
  at += (size_t)sprintf((char *)b + at, "*%d\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
                        argc, strlen(c->verb), c->verb,
                        strlen(model_keys[c->key]), model_keys[c->key]);
  if (c->arg != NULL) {
    at += (size_t)sprintf((char *)b + at, "$%zu\r\n", c->arg_len);
    memcpy(b + at, c->arg, c->arg_len);
    at += c->arg_len;
    memcpy(b + at, "\r\n", 2);
    at += 2;
  }
  return at;
}

/* What the store does with c at revision rev, in the model. */
static void model_apply(struct model *m, const struct model_cmd *c,
                        uint64_t rev) {
  int k = c->key;
  if (strcmp(c->verb, "SET") == 0 || strcmp(c->verb, "APPEND") == 0) {
    size_t base = strcmp(c->verb, "SET") == 0 || !m->present[k] ? 0 : m->len[k];
    m->value[k] = realloc(m->value[k], base + c->arg_len + 1);
    memcpy(m->value[k] + base, c->arg, c->arg_len);
    m->len[k] = base + c->arg_len;
    m->present[k] = true;
    model_note(m, false, k, rev);
  } else if (strcmp(c->verb, "DEL") == 0 ||
             (strcmp(c->verb, "PEXPIRE") == 0 && c->arg_len == 1)) {
    if (m->present[k]) {
      m->present[k] = false;
      m->len[k] = 0;
      model_note(m, true, k, rev);
    }
  } /* a PEXPIRE in the future, or PERSIST: the revision moves, no event */
}

/* A random write: SET, APPEND (most), DEL, PEXPIRE now or much later,
 * PERSIST. */
static void model_pick(uint64_t *seed, const struct model *m,
                       struct model_cmd *c, uint8_t *bytes) {
  c->key = (int)(model_rand(seed) % MODEL_KEYS);
  c->arg = NULL;
  c->arg_len = 0;
  unsigned r = (unsigned)(model_rand(seed) % 100);
  size_t n = 0;
  if (r < 1) {
    c->verb = "SET";
    n = (size_t)(model_rand(seed) % 3000);
  } else if (r < 94) {
    c->verb = "APPEND";
    n = (size_t)(model_rand(seed) % (r < 75 ? 40 : 3000));
    if (m->len[c->key] + n > MODEL_VALUE_BYTES_MAX)
      c->verb = "SET";
  } else if (r < 95) {
    c->verb = "DEL";
  } else if (r < 96) {
    c->verb = "PEXPIRE";
    c->arg = (const uint8_t *)"0";
    c->arg_len = 1;
    return;
  } else if (r < 98) {
    c->verb = "PEXPIRE";
    c->arg = (const uint8_t *)"100000000";
    c->arg_len = 9;
    return;
  } else {
    c->verb = "PERSIST";
  }
  if (c->verb[0] == 'S' || c->verb[0] == 'A') {
    for (size_t i = 0; i < n; i++)
      bytes[i] = (uint8_t)model_rand(seed); /* \r\n included */
    c->arg = bytes;
    c->arg_len = n;
  }
}

/* A watcher as its client sees it, checked against the model as its
 * replies come. */
struct model_watcher {
  struct rt_stream *s;
  const char *prefix;
  uint64_t from;     /* the first revision it may get */
  size_t next;       /* the model's next event it may get */
  uint64_t last_rev; /* the last revision it got, or from - 1 */
  bool lazy;         /* reads rarely: its output fills, and it waits */
  bool done;         /* closed, by an error it read */
  uint8_t *in;
  size_t in_len, in_cap;
  uint64_t got, fell_behind, refused;
};

/* Reads one RESP line's integer after its type byte at *at; false when
 * the line is not all there yet. */
static bool rd_line_int(const uint8_t *b, size_t len, size_t *at, char type,
                        int64_t *v) {
  if (*at >= len)
    return false;
  if (b[*at] != (uint8_t)type) {
    fprintf(stderr, "expected '%c' at %zu, got '%c'\n", type, *at, b[*at]);
    abort();
  }
  size_t i = *at + 1;
  while (i + 1 < len && !(b[i] == '\r' && b[i + 1] == '\n'))
    i++;
  if (i + 1 >= len)
    return false;
  *v = strtoll((const char *)b + *at + 1, NULL, 10);
  *at = i + 2;
  return true;
}

static bool rd_bulk(const uint8_t *b, size_t len, size_t *at, const uint8_t **p,
                    int64_t *n) {
  if (!rd_line_int(b, len, at, '$', n))
    return false;
  if (*n < 0)
    return true;
  if (len - *at < (size_t)*n + 2)
    return false;
  *p = b + *at;
  *at += (size_t)*n + 2;
  return true;
}

/* Checks what watcher x was given since it was last read. Returns false
 * (and says why) at the first event the model does not expect there. */
static bool model_watcher_read(struct model_watcher *x, const struct model *m) {
  const uint8_t *data;
  size_t len;
  while (rt_stream_out_take(x->s, &data, &len)) {
    if (x->in_len + len > x->in_cap) {
      x->in_cap = (x->in_len + len) * 2;
      x->in = realloc(x->in, x->in_cap);
    }
    memcpy(x->in + x->in_len, data, len);
    x->in_len += len;
    rt_stream_out_done(x->s);
  }
  size_t at = 0, plen = strlen(x->prefix);
  while (at < x->in_len && !x->done) {
    size_t reply = at;
    if (x->in[at] == '-') {
      const uint8_t *end = memchr(x->in + at, '\n', x->in_len - at);
      if (end == NULL)
        break;
      char msg[512];
      size_t n = (size_t)(end - (x->in + at));
      n = n < sizeof msg - 1 ? n : sizeof msg - 1;
      memcpy(msg, x->in + at, n);
      msg[n] = '\0';
      at = (size_t)(end - x->in) + 1;
      x->done = true;
      const char *resume = strstr(msg, "resume with FROM ");
      if (strncmp(msg, "-ERR the watch fell behind", 26) == 0 &&
          resume != NULL &&
          strtoull(resume + 17, NULL, 10) == x->last_rev + 1) {
        x->fell_behind++;
        break;
      }
      if (strncmp(msg, "-ERR revision ", 14) == 0 &&
          strstr(msg, "is compacted") != NULL && x->got == 0) {
        x->refused++;
        break;
      }
      fprintf(stderr, "watcher %s (last %" PRIu64 "): %s\n", x->prefix,
              x->last_rev, msg);
      return false;
    }
    int64_t n_ev;
    if (!rd_line_int(x->in, x->in_len, &at, '*', &n_ev))
      break;
    bool whole = true;
    for (int64_t i = 0; i < n_ev && whole; i++) {
      int64_t four, kind_len, key_len, value_len, rev;
      const uint8_t *kind = NULL, *key = NULL, *value = NULL;
      whole = rd_line_int(x->in, x->in_len, &at, '*', &four) &&
              rd_bulk(x->in, x->in_len, &at, &kind, &kind_len) &&
              rd_bulk(x->in, x->in_len, &at, &key, &key_len) &&
              rd_bulk(x->in, x->in_len, &at, &value, &value_len) &&
              rd_line_int(x->in, x->in_len, &at, ':', &rev);
      if (!whole)
        break;
      while (x->next < m->n &&
             (m->ev[x->next].revision < x->from ||
              strncmp(model_keys[m->ev[x->next].key], x->prefix, plen) != 0))
        x->next++;
      const struct model_event *e = x->next < m->n ? &m->ev[x->next] : NULL;
      bool same = e != NULL && (uint64_t)rev == e->revision && kind_len == 3 &&
                  memcmp(kind, e->del ? "del" : "put", 3) == 0 &&
                  (size_t)key_len == strlen(model_keys[e->key]) &&
                  memcmp(key, model_keys[e->key], (size_t)key_len) == 0 &&
                  (e->del ? value_len == -1
                          : (size_t)value_len == e->value_len &&
                                (value_len == 0 ||
                                 memcmp(value, e->value, e->value_len) == 0));
      if (!same) {
        fprintf(stderr,
                "watcher %s: got %.*s %.*s (%" PRId64 " bytes) at %" PRId64
                ", the model has %s %s (%zu bytes) at %" PRIu64 "\n",
                x->prefix, (int)kind_len, (const char *)kind, (int)key_len,
                (const char *)key, value_len, rev,
                e == NULL ? "nothing"
                : e->del  ? "del"
                          : "put",
                e == NULL ? "" : model_keys[e->key],
                e == NULL ? 0 : e->value_len, e == NULL ? 0 : e->revision);
        return false;
      }
      x->next++;
      x->got++;
      x->last_rev = (uint64_t)rev;
    }
    if (!whole) {
      at = reply; /* the rest of the reply is still to come */
      break;
    }
  }
  if (at > 0)
    memmove(x->in, x->in + at, x->in_len - at);
  x->in_len -= at;
  return true;
}

static void model_watcher_start(struct model_watcher *x, struct rt_node *n,
                                const struct model *m, const char *prefix,
                                uint64_t from, bool lazy) {
  memset(x, 0, sizeof *x);
  if (rt_stream_accept(n->rt, true, &x->s) != NULL) {
    x->done = true;
    return;
  }
  x->prefix = prefix;
  x->lazy = lazy;
  char cmd[128];
  if (from > 0) {
    x->from = from;
    snprintf(cmd, sizeof cmd, "SABHA.WATCH \"%s\" FROM %" PRIu64 " BATCH 0\r\n",
             prefix, from);
  } else {
    x->from = rt_applied_index(n->rt) + 1;
    snprintf(cmd, sizeof cmd, "SABHA.WATCH \"%s\" BATCH 0\r\n", prefix);
  }
  x->last_rev = x->from - 1;
  (void)m;
  rt_stream_input(x->s, cmd, strlen(cmd));
}

/* Runs `ops` random writes on one node whose window holds `window_bytes`,
 * with watchers coming and going: some read at once, some rarely (their
 * output fills and they wait while the window moves on), some start FROM
 * a past revision, and one that falls behind starts again where it was
 * told to. Every event each one gets must be the model's, none missing.
 * Returns false at the first that is not. */
#define MODEL_WATCHERS 8
static bool model_run(uint64_t seed, int ops, uint64_t window_bytes,
                      uint64_t *fell_behind, uint64_t *got, uint64_t *refused) {
  struct rt_node n;
  if (!node_alone(&n, window_bytes))
    return false;
  struct rt_stream *c = NULL;
  if (rt_stream_accept(n.rt, true, &c) != NULL)
    return false;
  /* The first write brings an entry of the node's own with it. */
  rt_stream_input(c, "PERSIST nokey\r\n", 15);
  rt_node_settle(&n);
  (void)rt_stream_said(c);
  struct model m;
  memset(&m, 0, sizeof m);
  struct model_watcher ws[MODEL_WATCHERS];
  memset(ws, 0, sizeof ws);
  for (int i = 0; i < MODEL_WATCHERS; i++)
    ws[i].done = true;
  uint8_t *bytes = malloc(MODEL_VALUE_BYTES_MAX);
  uint8_t *wire = malloc(4 * MODEL_VALUE_BYTES_MAX);
  bool ok = true;
  const int n_prefixes = sizeof model_prefixes / sizeof model_prefixes[0];
  for (int op = 0; op <= ops && ok; op++) {
    /* A write: alone, or 2-3 in one MULTI/EXEC (one revision). */
    struct model_cmd cmds[3];
    int n_cmds =
        model_rand(&seed) % 8 == 0 ? 2 + (int)(model_rand(&seed) % 2) : 1;
    size_t at = 0;
    uint8_t *arg_bytes[3];
    if (n_cmds > 1)
      at += (size_t)sprintf((char *)wire, "MULTI\r\n");
    for (int i = 0; i < n_cmds; i++) {
      arg_bytes[i] = bytes + (size_t)i * (MODEL_VALUE_BYTES_MAX / 4);
      model_pick(&seed, &m, &cmds[i], arg_bytes[i]);
      if (cmds[i].arg_len > MODEL_VALUE_BYTES_MAX / 4)
        cmds[i].arg_len = MODEL_VALUE_BYTES_MAX / 4;
      /* the model's length check for this TXN's APPENDs to one key */
      if (strcmp(cmds[i].verb, "APPEND") == 0 &&
          m.len[cmds[i].key] + 3 * (MODEL_VALUE_BYTES_MAX / 4) >
              MODEL_VALUE_BYTES_MAX)
        cmds[i].verb = "SET";
      at += cmd_encode(wire + at, &cmds[i]);
    }
    if (n_cmds > 1)
      at += (size_t)sprintf((char *)wire + at, "EXEC\r\n");
    uint64_t before = rt_applied_index(n.rt);
    rt_stream_input(c, wire, at);
    rt_node_settle(&n);
    uint64_t rev = rt_applied_index(n.rt);
    if (rev != before + 1) {
      fprintf(stderr, "a write (op %d) applied %" PRIu64 " entries\n", op,
              rev - before);
      ok = false;
      break;
    }
    for (int i = 0; i < n_cmds; i++)
      model_apply(&m, &cmds[i], rev);
    const char *said = rt_stream_said(c);
    if (strchr(said, '-') == said || strstr(said, "\r\n-") != NULL) {
      fprintf(stderr, "a write failed: %s\n", said);
      ok = false;
      break;
    }
    for (int i = 0; i < MODEL_WATCHERS && ok; i++) {
      struct model_watcher *x = &ws[i];
      if (x->done) {
        if (x->s != NULL) {
          *fell_behind += x->fell_behind;
          *got += x->got;
          *refused += x->refused;
          /* Told where to resume: at once, there. */
          uint64_t resume = x->fell_behind ? x->last_rev + 1 : 0;
          const char *prefix = x->prefix;
          bool lazy = x->lazy;
          free(x->in);
          x->in = NULL;
          x->s = NULL;
          if (resume > 0) {
            model_watcher_start(x, &n, &m, prefix, resume, lazy);
            continue;
          }
        }
        if (model_rand(&seed) % 30 != 0)
          continue;
        uint64_t from = 0;
        if (model_rand(&seed) % 2 == 0) {
          uint64_t back = model_rand(&seed) % 400;
          from = rev > back ? rev - back : 1;
        }
        model_watcher_start(
            x, &n, &m, model_prefixes[model_rand(&seed) % (unsigned)n_prefixes],
            from, model_rand(&seed) % 3 == 0);
        continue;
      }
      if (!x->lazy && model_rand(&seed) % 400 == 0) { /* it hangs up */
        rt_stream_lost(x->s);
        rt_stream_free(x->s);
        x->s = NULL;
        x->done = true;
        *got += x->got;
        free(x->in);
        x->in = NULL;
        continue;
      }
      if (!x->lazy || model_rand(&seed) % 1000 == 0)
        ok = model_watcher_read(x, &m);
    }
  }
  /* The end: every watcher still there reads all, and has had every
   * event it watches. */
  for (int round = 0; round < 64 && ok; round++) {
    for (int i = 0; i < MODEL_WATCHERS && ok; i++)
      if (!ws[i].done)
        ok = model_watcher_read(&ws[i], &m);
    rt_stream_input(c, "PERSIST nokey\r\n", 15); /* an entry: a delivery */
    rt_node_settle(&n);
    (void)rt_stream_said(c);
  }
  for (int i = 0; i < MODEL_WATCHERS && ok; i++) {
    struct model_watcher *x = &ws[i];
    if (x->s == NULL)
      continue;
    *fell_behind += x->fell_behind;
    *got += x->got;
    *refused += x->refused;
    if (x->done)
      continue;
    size_t plen = strlen(x->prefix);
    while (x->next < m.n &&
           (m.ev[x->next].revision < x->from ||
            strncmp(model_keys[m.ev[x->next].key], x->prefix, plen) != 0))
      x->next++;
    if (x->next != m.n) {
      fprintf(stderr, "watcher %s never got the event at %" PRIu64 "\n",
              x->prefix, m.ev[x->next].revision);
      ok = false;
    }
  }
  for (int i = 0; i < MODEL_WATCHERS; i++)
    free(ws[i].in);
  free(bytes);
  free(wire);
  model_free(&m);
  rt_node_close(&n);
  return ok;
}

static void watchers_get_what_a_window_of_whole_copies_would_give(void) {
  uint64_t fell_behind = 0, got = 0, refused = 0;
  for (uint64_t seed = 1; seed <= 6; seed++) {
    bool ok = model_run(seed * 0x9e3779b97f4a7c15ull, 3000,
                        seed <= 3 ? 64u << 10 : 512u << 10, &fell_behind, &got,
                        &refused);
    if (!ok)
      fprintf(stderr, "seed %" PRIu64 "\n", seed);
    CHECK(ok);
  }
  printf("events checked %" PRIu64 ", watchers behind %" PRIu64
         ", FROM refused %" PRIu64 "\n",
         got, fell_behind, refused);
  /* The runs went where the window drops what watchers still need. */
  CHECK(got > 10000 && fell_behind > 0 && refused > 0);
}

/* Sends `cmd` (a C string) and settles. */
static void say(struct rt_node *n, struct rt_stream *c, const char *cmd) {
  rt_stream_input(c, cmd, strlen(cmd));
  rt_node_settle(n);
}

/* The cost: an APPEND of a byte to a value of 512 KiB puts about its byte
 * in the window, not the value again; a watcher still gets it whole. */
#define BIG_BYTES (512u << 10)
static void an_append_puts_its_bytes_in_the_window_not_the_whole_value(void) {
  struct rt_node n;
  CHECK(node_alone(&n, 0));
  struct rt_stream *c = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  CHECK(rt_stream_say_set(c, "a1", BIG_BYTES)); /* model_keys[0] */
  rt_node_settle(&n);
  const char *said = rt_stream_said(c);
  if (strcmp(said, "+OK\r\n") != 0)
    fprintf(stderr, "SET said %s\n", said);
  CHECK(strcmp(said, "+OK\r\n") == 0);
  uint64_t set_rev = rt_applied_index(n.rt);
  uint64_t copied = rt_metrics(n.rt)->watch_window_bytes_copied;
  const int appends = 200;
  for (int i = 0; i < appends; i++)
    say(&n, c, "APPEND a1 x\r\n");
  uint64_t added = rt_metrics(n.rt)->watch_window_bytes_copied - copied;
  printf("%d APPENDs of a byte to 512 KiB put %" PRIu64
         " bytes in the window\n",
         appends, added);
  CHECK(added < (uint64_t)appends * 128u);
  /* A watcher FROM the SET gets the value whole at every revision. */
  struct model_watcher x;
  struct model m;
  memset(&m, 0, sizeof m);
  m.value[0] = malloc(BIG_BYTES + (size_t)appends);
  memset(m.value[0], 'v', BIG_BYTES);
  m.len[0] = BIG_BYTES;
  m.present[0] = true;
  model_note(&m, false, 0, set_rev);
  for (int i = 0; i < appends; i++) {
    m.value[0][m.len[0]++] = 'x';
    model_note(&m, false, 0, set_rev + 1 + (uint64_t)i);
  }
  model_watcher_start(&x, &n, &m, "", set_rev, false);
  rt_node_settle(&n);
  bool ok = true;
  /* Its output fills at RT_WATCHER_OUT_BYTES_MAX: it goes on at the next
   * delivery once read. */
  for (int round = 0; round < 100 && ok && x.got < (uint64_t)appends + 1;
       round++) {
    ok = model_watcher_read(&x, &m);
    say(&n, c, "PERSIST nokey\r\n");
  }
  uint64_t got = x.got;
  free(x.in);
  model_free(&m);
  CHECK(ok);
  CHECK(got == (uint64_t)appends + 1);
  rt_node_close(&n);
}

/* Counts the events in what watcher stream w was given (BATCH 0 replies
 * of events whose values hold no '*' byte); -1 at an error reply. */
static long count_events(struct rt_stream *w, bool *error) {
  const uint8_t *data;
  size_t len;
  long n = 0;
  while (rt_stream_out_take(w, &data, &len)) {
    for (size_t i = 0; i + 4 < len; i++)
      if (memcmp(data + i, "*4\r\n", 4) == 0)
        n++;
    if (len > 0 && data[0] == '-')
      *error = true;
    rt_stream_out_done(w);
  }
  return n;
}

/* A root dropped while a delta on it stays: a watcher that comes to the
 * delta is behind from the revision it is in, told so, and FROM that
 * revision is refused here (its events are not all kept). Laid out in a
 * window of 256 KiB so that one SET in the same MULTI as the APPEND drops
 * exactly the root: b1 | a1 (the root) | b2 | the delta fill the arena,
 * then b3 fits at its start once b1 and the root go, not before. The
 * watcher gets nothing of that revision, not even a2's change before the
 * APPEND. (A window of whole copies keeps the APPEND: the watcher gets
 * both.) */
static void a_watcher_at_a_delta_whose_root_went_resumes_at_its_revision(void) {
  struct rt_node n;
  CHECK(node_alone(&n, 256u << 10));
  struct rt_stream *c = NULL, *w = NULL, *again = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  CHECK(rt_stream_accept(n.rt, true, &w) == NULL);
  CHECK(rt_stream_accept(n.rt, true, &again) == NULL);
  CHECK(rt_stream_say_set(c, "b1", 236800));
  CHECK(rt_stream_say_set(c, "a1", 4096));
  CHECK(rt_stream_say_set(c, "b2", 20480));
  rt_node_settle(&n);
  CHECK(strcmp(rt_stream_said(c), "+OK\r\n+OK\r\n+OK\r\n") == 0);
  say(&n, w, "SABHA.WATCH a BATCH 0\r\n");
  uint64_t began = rt_applied_index(n.rt);
  /* a2's event comes first in the revision, and goes back out with it. */
  say(&n, c, "MULTI\r\nSET a2 z\r\nAPPEND a1 x\r\n");
  CHECK(rt_stream_say_set(c, "b3", 238000));
  say(&n, c, "EXEC\r\n");
  CHECK(rt_applied_index(n.rt) == began + 1);
  char want[64];
  snprintf(want, sizeof want, "resume with FROM %" PRIu64 "\r\n", began + 1);
  const char *got = rt_stream_said(w);
  if (strstr(got, want) == NULL)
    fprintf(stderr, "the watcher got: %.80s\n", got);
  CHECK(strncmp(got, "-ERR the watch fell behind", 26) == 0 &&
        strstr(got, want) != NULL);
  {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SABHA.WATCH a FROM %" PRIu64 "\r\n", began + 1);
    say(&n, again, cmd);
    got = rt_stream_said(again);
    CHECK(strncmp(got, "-ERR revision ", 14) == 0 &&
          strstr(got, "is compacted") != NULL);
  }
  rt_node_close(&n);
}

/* FROM 1 over many events: the watcher looks at a bounded number of them
 * per turn of the loop, and gets the rest in the turns that follow, the
 * same events in the same order. */
static void a_watcher_from_far_back_catches_up_over_several_turns(void) {
  struct rt_node n;
  CHECK(node_alone(&n, 0));
  struct rt_stream *c = NULL, *w = NULL;
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  CHECK(rt_stream_accept(n.rt, true, &w) == NULL);
  const int txns = 40, sets = 500;
  char *cmd = malloc((size_t)sets * 32 + 32);
  CHECK(cmd != NULL);
  for (int t = 0; t < txns; t++) {
    size_t at = (size_t)sprintf(cmd, "MULTI\r\n");
    for (int i = 0; i < sets; i++)
      at += (size_t)sprintf(cmd + at, "SET k%d %d\r\n", i, t);
    at += (size_t)sprintf(cmd + at, "EXEC\r\n");
    rt_stream_input(c, cmd, at);
    rt_node_settle(&n);
    (void)rt_stream_said(c);
  }
  free(cmd);
  bool error = false;
  rt_stream_input(w, "SABHA.WATCH k FROM 1 BATCH 0\r\n", 30);
  long first = count_events(w, &error);
  long total = first;
  int turns = 1;
  for (; turns < 100 && total < (long)txns * sets; turns++) {
    rt_run(n.rt);
    total += count_events(w, &error);
  }
  printf("%ld events: %ld in the first turn, all in %d turns\n", total, first,
         turns);
  CHECK(!error);
  CHECK(first > 0 && first <= 8192 + sets);
  CHECK(total == (long)txns * sets);
  rt_node_close(&n);
}

/* What watching costs everyone's writes: a change is looked at by the
 * watchers whose prefix it matches, not by every watcher there is. 1000
 * watchers of prefixes no key has, and 3 of one that every key has (two
 * of them sharing it, one with BATCH 100): 1000 writes are looked at 3
 * times each (rt_metrics.watch_events_examined), not 1003; the 3 get
 * every change, the batched one once its time comes. */
#define IDLE_WATCHERS 1000
#define COST_WRITES 1000
static void a_write_is_looked_at_only_by_the_watchers_it_matches(void) {
  struct rt_node n;
  CHECK(node_alone(&n, 0));
  struct rt_stream *c = NULL, *near[3] = {NULL, NULL, NULL};
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  for (int i = 0; i < IDLE_WATCHERS; i++) {
    struct rt_stream *w = NULL;
    CHECK(rt_stream_accept(n.rt, true, &w) == NULL);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SABHA.WATCH idle%d: BATCH 0\r\n", i);
    rt_stream_input(w, cmd, strlen(cmd));
  }
  for (int i = 0; i < 3; i++) {
    CHECK(rt_stream_accept(n.rt, true, &near[i]) == NULL);
    const char *cmd =
        i < 2 ? "SABHA.WATCH k BATCH 0\r\n" : "SABHA.WATCH k BATCH 100\r\n";
    rt_stream_input(near[i], cmd, strlen(cmd));
  }
  rt_node_settle(&n);
  uint64_t examined = rt_metrics(n.rt)->watch_events_examined;
  long got[3] = {0, 0, 0};
  bool error = false;
  for (int i = 0; i < COST_WRITES; i++) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SET k%d %d\r\n", i % 50, i);
    say(&n, c, cmd);
    (void)rt_stream_said(c);
    for (int k = 0; k < 3; k++)
      got[k] += count_events(near[k], &error);
  }
  examined = rt_metrics(n.rt)->watch_events_examined - examined;
  printf("%d writes, %d watchers: %.2f events examined per write\n",
         COST_WRITES, IDLE_WATCHERS + 3, (double)examined / COST_WRITES);
  CHECK(examined == 3u * COST_WRITES);
  CHECK(got[0] == COST_WRITES && got[1] == COST_WRITES);
  /* The batched one: its batch goes out when BATCH ms x 5 have passed. */
  n.h.now_ms += 1000;
  rt_tick(n.rt);
  rt_node_settle(&n);
  got[2] += count_events(near[2], &error);
  CHECK(got[2] == COST_WRITES);
  CHECK(!error);
  rt_node_close(&n);
}

/* The prefix index looks a change up under each prefix length some group
 * has, hashing the key once across its 8-byte blocks: every length must
 * find its group, whatever the key's length next to it. Two watchers of
 * each of prefixes of lengths 0 (every key), 1, 7 to 9 and 15 to 17 (about
 * a block's end), 1023 and 1024 (the longest) of one long string, and keys
 * of that string of lengths 0 to 1100: each watcher gets exactly the
 * changes whose key is at least as long as its prefix. */
#define EDGE_BYTES 1100u
static void every_prefix_length_finds_its_watchers(void) {
  static const size_t prefix_lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 1023, 1024};
  static const size_t key_lens[] = {0,  1,    7,    8,    9,         16,
                                    17, 1023, 1024, 1025, EDGE_BYTES};
  enum { N_PREFIXES = sizeof prefix_lens / sizeof prefix_lens[0] };
  struct rt_node n;
  CHECK(node_alone(&n, 0));
  static char text[EDGE_BYTES], cmd[EDGE_BYTES + 128];
  for (size_t i = 0; i < EDGE_BYTES; i++)
    text[i] = (char)('a' + i % 26);
  struct rt_stream *c = NULL, *w[N_PREFIXES][2];
  CHECK(rt_stream_accept(n.rt, true, &c) == NULL);
  for (int p = 0; p < N_PREFIXES; p++)
    for (int j = 0; j < 2; j++) {
      CHECK(rt_stream_accept(n.rt, true, &w[p][j]) == NULL);
      int head =
          sprintf(cmd, "*4\r\n$11\r\nSABHA.WATCH\r\n$%zu\r\n", prefix_lens[p]);
      memcpy(cmd + head, text, prefix_lens[p]);
      size_t at = (size_t)head + prefix_lens[p];
      at += (size_t)sprintf(cmd + at, "\r\n$5\r\nBATCH\r\n$1\r\n0\r\n");
      rt_stream_input(w[p][j], cmd, at);
    }
  rt_node_settle(&n);
  for (size_t k = 0; k < sizeof key_lens / sizeof key_lens[0]; k++) {
    int head = sprintf(cmd, "*3\r\n$3\r\nSET\r\n$%zu\r\n", key_lens[k]);
    memcpy(cmd + head, text, key_lens[k]);
    size_t at = (size_t)head + key_lens[k];
    at += (size_t)sprintf(cmd + at, "\r\n$1\r\nx\r\n");
    rt_stream_input(c, cmd, at);
    rt_node_settle(&n);
    CHECK(strcmp(rt_stream_said(c), "+OK\r\n") == 0);
  }
  for (int p = 0; p < N_PREFIXES; p++) {
    long want = 0;
    for (size_t k = 0; k < sizeof key_lens / sizeof key_lens[0]; k++)
      want += key_lens[k] >= prefix_lens[p];
    for (int j = 0; j < 2; j++) {
      bool error = false;
      long got = count_events(w[p][j], &error);
      if (got != want)
        fprintf(stderr, "prefix of %zu bytes: %ld events, not %ld\n",
                prefix_lens[p], got, want);
      CHECK(got == want && !error);
    }
  }
  rt_node_close(&n);
}

int main(int argc, char **argv) {
  static const struct test tests[] = {
      TEST(a_watcher_behind_before_its_first_event_resumes_where_it_began),
      TEST(watchers_get_what_a_window_of_whole_copies_would_give),
      TEST(an_append_puts_its_bytes_in_the_window_not_the_whole_value),
      TEST(a_watcher_at_a_delta_whose_root_went_resumes_at_its_revision),
      TEST(a_watcher_from_far_back_catches_up_over_several_turns),
      TEST(a_write_is_looked_at_only_by_the_watchers_it_matches),
      TEST(every_prefix_length_finds_its_watchers),
  };
  return test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
