/* See rt_host.h. */
#include "rt_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t h_now_ms(void *ctx) {
  return ((struct rt_host *)ctx)->now_ms;
}

static uint64_t h_wall_ms(void *ctx) {
  const struct rt_host *h = ctx;
  return (uint64_t)((int64_t)(1700000000000ull + h->now_ms) + h->wall_step_ms);
}

static uint64_t h_mono_us(void *ctx) {
  return ((struct rt_host *)ctx)->now_ms * 1000u;
}

static void h_send(void *ctx, const struct sabha_msg *m) {
  struct rt_host *h = ctx;
  struct sabha_msg *copy = &h->sent[h->n_sent++ % RT_HOST_SENT_MAX];
  *copy = *m;
  copy->entries = NULL;
  copy->snap_data = NULL;
  if (h->relay != NULL)
    h->relay(h->relay_arg, m);
}

static void h_stream(void *ctx, struct rt_stream *s) {
  (void)ctx;
  (void)s;
}

static void h_pause(void *ctx, struct rt_stream *s, bool paused) {
  struct rt_host *h = ctx;
  for (int i = 0; i < h->n_paused; i++)
    if (h->paused[i] == s) {
      if (!paused)
        h->paused[i] = h->paused[--h->n_paused];
      return;
    }
  if (paused && h->n_paused < RT_HOST_STREAMS_MAX)
    h->paused[h->n_paused++] = s;
}

static void h_close(void *ctx, struct rt_stream *s, bool flush) {
  struct rt_host *h = ctx;
  (void)flush;
  if (h->n_closed < RT_HOST_STREAMS_MAX)
    h->closed[h->n_closed++] = s;
}

static int h_connect(void *ctx, struct rt_stream *s, uint32_t node) {
  struct rt_host *h = ctx;
  if (!h->accept_links)
    return -1;
  h->link = s;
  h->link_node = node;
  return 0;
}

static void h_kick(void *ctx) {
  (void)ctx;
}

static void h_flush(void *ctx) {
  struct rt_host *h = ctx;
  h->n_flushes++;
  if (h->fs != NULL)
    h->syncs_at_flush = memfs_counts(h->fs).syncs;
}

static bool h_snapshot_later(void *ctx) {
  struct rt_host *h = ctx;
  if (h->snapshot_later)
    h->n_snapshot_later++;
  return h->snapshot_later;
}

static bool h_sync_later(void *ctx) {
  struct rt_host *h = ctx;
  if (h->sync_later)
    h->n_sync_later++;
  return h->sync_later;
}

static void h_fatal(void *ctx, enum rt_fatal kind, const char *why) {
  struct rt_host *h = ctx;
  if (h->abort_on_fatal) {
    fprintf(stderr, "fatal %d: %s\n", (int)kind, why);
    abort();
  }
  h->fatal_kind = (int)kind;
  snprintf(h->fatal_why, sizeof h->fatal_why, "%s", why);
}

static void h_log(void *ctx, enum rt_log_level level, const char *text) {
  struct rt_host *h = ctx;
  if (level == RT_LOG_WARN) {
    h->warnings++;
    snprintf(h->last_warning, sizeof h->last_warning, "%s", text);
  }
}

struct rt_ports rt_host_ports(struct rt_host *h) {
  return (struct rt_ports){.ctx = h,
                           .now_ms = h_now_ms,
                           .wall_ms = h_wall_ms,
                           .mono_us = h_mono_us,
                           .send = h_send,
                           .stream_output = h_stream,
                           .stream_pause = h_pause,
                           .stream_close = h_close,
                           .stream_connect = h_connect,
                           .kick = h_kick,
                           .flush = h_flush,
                           .snapshot_later = h_snapshot_later,
                           .sync_later = h_sync_later,
                           .fatal = h_fatal,
                           .log = h_log};
}

void rt_host_config(struct rt_config *cfg, const struct wal_io *io) {
  static const uint32_t voters[] = {1, 2, 3};
  rt_config_init(cfg, 2, voters, 3);
  snprintf(cfg->protocol, sizeof cfg->protocol, "raft");
  snprintf(cfg->data_dir, sizeof cfg->data_dir, "data");
  cfg->io = io;
  cfg->engine.seed = 7;
  cfg->tag_seed = 11;
}

bool rt_host_closed(const struct rt_host *h, const struct rt_stream *s) {
  for (int i = 0; i < h->n_closed; i++)
    if (h->closed[i] == s)
      return true;
  return false;
}

bool rt_host_paused(const struct rt_host *h, const struct rt_stream *s) {
  for (int i = 0; i < h->n_paused; i++)
    if (h->paused[i] == s)
      return true;
  return false;
}

int rt_node_init(struct rt_node *n, struct rt_config *cfg) {
  memset(n, 0, sizeof *n);
  if (memfs_new(&n->fs, 1) != 0)
    return -1;
  memfs_io(n->fs, &n->io);
  n->h.now_ms = 1000;
  n->h.abort_on_fatal = true;
  rt_host_config(cfg, &n->io);
  return 0;
}

int rt_node_start(struct rt_node *n, const struct rt_config *cfg) {
  struct rt_ports ports = rt_host_ports(&n->h);
  char err[512];
  int rc = rt_open(&n->rt, cfg, &ports, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "rt_open: %s\n", err);
    return rc;
  }
  rt_run(n->rt);
  return 0;
}

void rt_node_settle(struct rt_node *n) {
  for (int round = 0; round < 1000 && rt_run(n->rt); round++)
    ;
}

void rt_node_sync(struct rt_node *n) {
  for (int k = 0; k < 100 && rt_sync_running(n->rt); k++) {
    rt_sync_work(n->rt);
    rt_sync_done(n->rt);
    rt_node_settle(n);
  }
}

void rt_node_config_alone(struct rt_node *n, struct rt_config *cfg) {
  static const uint32_t voters[] = {1};
  rt_config_init(cfg, 1, voters, 1);
  snprintf(cfg->protocol, sizeof cfg->protocol, "raft");
  snprintf(cfg->data_dir, sizeof cfg->data_dir, "data");
  cfg->io = &n->io;
  cfg->engine.seed = 7;
}

int rt_node_open_alone(struct rt_node *n) {
  struct rt_config cfg;
  if (rt_node_init(n, &cfg) != 0)
    return -1;
  rt_node_config_alone(n, &cfg);
  return rt_node_start(n, &cfg) == 0 ? 0 : -1;
}

int rt_node_elect(struct rt_node *n) {
  for (int k = 0; k < 100 && !rt_has_leader(n->rt); k++) {
    n->h.now_ms += 50;
    rt_tick(n->rt);
    rt_node_settle(n);
  }
  return rt_has_leader(n->rt) ? 0 : -1;
}

int rt_node_start_alone(struct rt_node *n) {
  return rt_node_open_alone(n) == 0 ? rt_node_elect(n) : -1;
}

void rt_node_close(struct rt_node *n) {
  for (int i = 0; i < n->h.n_closed; i++)
    rt_stream_free(n->h.closed[i]);
  rt_close_crash(n->rt);
  memfs_free(n->fs);
}

int rt_stream_take_oks(struct rt_stream *c) {
  int oks = 0;
  const uint8_t *data;
  size_t n;
  while (rt_stream_out_take(c, &data, &n)) {
    for (size_t i = 0; i + 5 <= n; i++)
      oks += memcmp(data + i, "+OK\r\n", 5) == 0;
    rt_stream_out_done(c);
  }
  return oks;
}

const char *rt_stream_said(struct rt_stream *c) {
  static char out[4096];
  const uint8_t *data;
  size_t len, used = 0;
  out[0] = '\0';
  while (rt_stream_out_take(c, &data, &len)) {
    size_t k = len < sizeof out - 1 - used ? len : sizeof out - 1 - used;
    memcpy(out + used, data, k);
    used += k;
    out[used] = '\0';
    rt_stream_out_done(c);
  }
  return out;
}

bool rt_stream_say_set(struct rt_stream *c, const char *key,
                       size_t value_bytes) {
  size_t key_bytes = strlen(key);
  char *in = malloc(key_bytes + value_bytes + 64);
  if (in == NULL)
    return false;
  int head = snprintf(in, 64, "*3\r\n$3\r\nSET\r\n$%zu\r\n", key_bytes);
  size_t at = (size_t)head;
  memcpy(in + at, key, key_bytes);
  at += key_bytes;
  at += (size_t)snprintf(in + at, 32, "\r\n$%zu\r\n", value_bytes);
  memset(in + at, 'v', value_bytes);
  at += value_bytes;
  memcpy(in + at, "\r\n", 2);
  rt_stream_input(c, in, at + 2);
  free(in);
  return true;
}
