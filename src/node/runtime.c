/* The node runtime's core: start-up and recovery, the engine's ready cycle,
 * applying committed entries, snapshots (installed from a peer, taken for
 * compaction), time (ticks, deadlines, clock entries) and shutdown.
 * runtime.h tells the story; runtime_internal.h describes the structures.
 *
 * Durability rule, restated where it is kept: a client's write is answered
 * when its entry is applied, which happens only for entries the engine
 * handed out as committed, and the engine counts this node's copy only
 * once the fsync covering the batch that wrote it has completed
 * (sabha_engine_persisted, from sync_finish). Votes and acknowledgements
 * (msgs_after_persist) leave after that same fsync. Whether a batch needs
 * one is the engine's to say (sabha_ready.must_sync). */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/membership.h"
#include "node/runtime_internal.h"
#include "node/snapshot.h"

/* ---- settings ------------------------------------------------------------ */

bool rt_fsync_mode_parse(const char *text, enum rt_fsync_mode *mode) {
  static const char *const names[] = {"auto", "loop", "thread"};
  for (uint32_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (strcmp(text, names[k]) == 0) {
      *mode = (enum rt_fsync_mode)k; /* the enum's order */
      return true;
    }
  return false;
}

void rt_config_init(struct rt_config *cfg, uint32_t id, const uint32_t *voters,
                    uint32_t n_voters) {
  memset(cfg, 0, sizeof *cfg);
  sabha_config_init(&cfg->engine, id, voters, n_voters);
  cfg->engine.election_timeout_ms_min = 500;
  cfg->engine.election_timeout_ms_max = 1000;
  cfg->engine.heartbeat_ms = 100;
  snprintf(cfg->protocol, sizeof cfg->protocol, "raft");
  cfg->n_groups = 1;
  cfg->wal_segment_bytes = WAL_SEGMENT_BYTES_DEFAULT;
  cfg->compact_entries = 20000;
  cfg->compact_bytes = 32u << 20;
  cfg->snapshot_bytes_max = SABHA_SNAPSHOT_BYTES_MAX;
  cfg->watch_window_bytes = RT_WATCH_WINDOW_BYTES_MAX;
  cfg->leader_wait_ms = 2000;
  cfg->request_timeout_ms = 5000;
  cfg->clients_max = 10000;
  cfg->idle_timeout_s = 300;
  cfg->out_hard_bytes = 64u << 20;
  cfg->out_soft_bytes = 16u << 20;
  cfg->out_soft_s = 60;
  cfg->query_bytes_max = 32u << 20;
  cfg->clients_memory_max = 256u << 20;
  cfg->dedup_max = APP_DEDUP_DEFAULT;
  cfg->dedup_window_ms = APP_DEDUP_WINDOW_MS_DEFAULT;
  cfg->clock_ms = 10;
  cfg->redirect = RT_REDIRECT_FORWARD;
  cfg->timing = RT_TIMING_FIXED;
  cfg->fsync = RT_FSYNC_AUTO;
  cfg->election_timeout_ms_floor = RT_TIMING_FLOOR_MS_DEFAULT;
  cfg->election_timeout_ms_ceiling = RT_TIMING_CEILING_MS_DEFAULT;
  for (uint32_t i = 0; i <= SABHA_NODES_MAX; i++)
    cfg->priority[i] = RT_PRIORITY_DEFAULT;
  cfg->protected_mode = true;
  snprintf(cfg->cluster_id, sizeof cfg->cluster_id, "sabha");
}

/* ---- clocks, logging, giving up -------------------------------------------
 */

uint64_t rt_now_ms(const struct rt *rt) {
  return rt->ports.now_ms(rt->ports.ctx);
}

uint64_t rt_wall_ms(const struct rt *rt) {
  return rt->ports.wall_ms(rt->ports.ctx);
}

uint64_t rt_mono_us(const struct rt *rt) {
  return rt->ports.mono_us(rt->ports.ctx);
}

/* The stamps' clock: the wall clock while it is at or past every stamp
 * this node has seen (its own, and the log's clock, which other leaders
 * moved), and otherwise that point run on at half the monotonic clock's
 * pace.
 *
 * Never back, but never ahead either: the highest stamp applied is the
 * log's clock, which TTLs and leases run on, so commands stamped in one
 * millisecond share it (one past the last for each would run the clock a
 * millisecond ahead per write under load, and expire keys early). And it
 * never stands still: a wall clock stepped back an hour (or a new leader's
 * clock behind its predecessor's) used to hold every stamp at the last
 * one until it caught up, so for that hour no TTL counted down and no
 * lock's lease ended. The monotonic clock only carries the stamps across
 * such a gap; while the wall clock leads it is the stamp, so the two
 * clocks' slightly different rates never add up. A proposal is told apart
 * by its session and sequence number, or its tag, which are unique on
 * their own. */
static uint64_t stamp_floor(const struct rt *rt) {
  uint64_t floor = rt->last_stamp_ms;
  uint64_t kv = kvstore_clock_ms(rt->kv), app = app_clock_ms(rt->app);
  if (kv > floor)
    floor = kv;
  return app > floor ? app : floor;
}

/* The anchor run on to now at half the monotonic clock's pace, or 0 when
 * that is behind floor. Half: never faster than time passes (a lease that
 * ran out early could have two holders), never standing still, and slow
 * enough that a wall clock which is right catches up, in twice the time it
 * was behind, when the log's clock is the one ahead (a leader whose clock
 * was an hour fast). Meanwhile TTLs and leases last up to twice as long. */
static uint64_t stamp_run_on(const struct rt *rt, uint64_t floor,
                             uint64_t mono_us) {
  if (rt->stamp_anchor_ms == 0 || mono_us < rt->stamp_anchor_us)
    return 0;
  uint64_t ran = rt->stamp_anchor_ms + (mono_us - rt->stamp_anchor_us) / 2000u;
  return ran >= floor ? ran : 0;
}

uint64_t rt_stamp_clock_ms(const struct rt *rt) {
  uint64_t wall = rt_wall_ms(rt), floor = stamp_floor(rt);
  if (wall >= floor)
    return wall;
  uint64_t ran = stamp_run_on(rt, floor, rt_mono_us(rt));
  return ran != 0 ? ran : floor;
}

uint64_t rt_stamp_ms(struct rt *rt) {
  uint64_t wall = rt_wall_ms(rt), floor = stamp_floor(rt);
  uint64_t mono = rt_mono_us(rt);
  uint64_t stamp = wall < floor ? stamp_run_on(rt, floor, mono) : 0;
  if (stamp == 0) {
    /* The wall clock leads, or there is nothing to run on from (no anchor
     * yet, or one the log's clock has passed): the stamps start here. */
    stamp = wall >= floor ? wall : floor;
    rt->stamp_anchor_ms = stamp;
    rt->stamp_anchor_us = mono;
  }
  rt->last_stamp_ms = stamp;
  return stamp;
}

uint64_t rt_watch_index(const struct rt *rt) {
  /* A command answered while an entry is applied releases the reads that
   * waited behind it in its stream (a WATCH among them) before the rest of
   * the entry applies; those later commands change keys after the WATCH,
   * with the entry's index as their revision, so the WATCH names the entry
   * before. (A change earlier in the entry then aborts the transaction
   * too: a needless abort, which WATCH's clients retry, never a lost
   * update.) */
  return rt->applying ? rt->applied - 1 : rt->applied;
}

uint64_t rt_read_clock_ms(const struct rt *rt) {
  /* 0: the store and the machine judge by their own clock, the log's. */
  return (rt->cfg.bugs & RT_BUG_WALL_CLOCK_READ) ? rt_wall_ms(rt) : 0;
}

static void rt_vlog(struct rt *rt, enum rt_log_level level, const char *fmt,
                    va_list ap) {
  if (rt->ports.log == NULL || (level == RT_LOG_DEBUG && !rt->cfg.verbose))
    return;
  char text[1024];
  /* Several groups speak through one log: each says which it is. */
  int at = rt->cfg.n_groups > 1
               ? snprintf(text, sizeof text, "group %u: ", rt->cfg.group)
               : 0;
  vsnprintf(text + at, sizeof text - (size_t)at, fmt, ap);
  rt->ports.log(rt->ports.ctx, level, text);
}

void rt_log(struct rt *rt, enum rt_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rt_vlog(rt, level, fmt, ap);
  va_end(ap);
}

void rt_log_client(struct rt *rt, const char *fmt, ...) {
  uint64_t skipped;
  bool take = log_window_take(&rt->client_log, rt_now_ms(rt), RT_CLIENT_LOG_MS,
                              RT_CLIENT_LOG_LINES, &skipped);
  if (skipped > 0)
    rt_log(rt, RT_LOG_WARN,
           "%" PRIu64 " more warnings about clients were not logged (at "
           "most %u every %u s)",
           skipped, RT_CLIENT_LOG_LINES, RT_CLIENT_LOG_MS / 1000u);
  if (!take)
    return;
  va_list ap;
  va_start(ap, fmt);
  rt_vlog(rt, RT_LOG_WARN, fmt, ap);
  va_end(ap);
}

void rt_fatal(struct rt *rt, enum rt_fatal kind, const char *fmt, ...) {
  if (rt->dead)
    return;
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  rt->dead = true;
  rt->ports.fatal(rt->ports.ctx, kind, text);
}

void rt_kick(struct rt *rt) {
  if (rt->ports.kick != NULL)
    rt->ports.kick(rt->ports.ctx);
}

const struct rt_addr *rt_client_addr_of(const struct rt *rt, uint32_t id) {
  for (uint32_t i = 0; i < rt->cfg.n_peer_clients; i++)
    if (rt->cfg.peer_clients[i].id == id)
      return &rt->cfg.peer_clients[i];
  return NULL;
}

/* "HOST:PORT" up to `end`, into *a. */
static bool parse_host_port(const char *p, const char *end, struct rt_addr *a) {
  const char *colon = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == ':')
      colon = q;
  if (colon == NULL || colon == p || colon + 1 >= end ||
      (size_t)(colon - p) >= sizeof a->host || end - colon - 1 > 5)
    return false;
  unsigned long port = 0;
  for (const char *q = colon + 1; q < end; q++) {
    if (*q < '0' || *q > '9')
      return false;
    port = port * 10 + (unsigned long)(*q - '0');
  }
  if (port == 0 || port > 65535)
    return false;
  memcpy(a->host, p, (size_t)(colon - p));
  a->host[colon - p] = '\0';
  a->port = (uint16_t)port;
  return true;
}

bool rt_member_addr_parse(const char *addr, struct rt_addr *peer,
                          struct rt_addr *client) {
  memset(peer, 0, sizeof *peer);
  memset(client, 0, sizeof *client);
  const char *comma = strchr(addr, ',');
  if (strncmp(addr, "peer=", 5) != 0 || comma == NULL ||
      strncmp(comma + 1, "client=", 7) != 0)
    return false;
  return parse_host_port(addr + 5, comma, peer) &&
         parse_host_port(comma + 8, comma + 1 + strlen(comma + 1), client);
}

/* Learns the client address of every member that carries one, so that
 * forwarding and -MOVED reach members added after this node started. */
static void learn_member_addrs(struct rt *rt,
                               const struct sabha_membership *m) {
  for (uint32_t i = 0; i < m->n; i++) {
    struct rt_addr peer, client;
    if (!rt_member_addr_parse(m->members[i].addr, &peer, &client))
      continue;
    client.id = m->members[i].id;
    struct rt_addr *known = (struct rt_addr *)rt_client_addr_of(rt, client.id);
    if (known != NULL)
      *known = client;
    else if (rt->cfg.n_peer_clients < SABHA_NODES_MAX)
      rt->cfg.peer_clients[rt->cfg.n_peer_clients++] = client;
  }
}

const double rt_latency_bounds_s[RT_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

void rt_latency_observe(struct rt_latency *l, uint64_t us) {
  double s = (double)us / 1e6;
  size_t b = 0;
  while (b < RT_LAT_BUCKETS && s > rt_latency_bounds_s[b])
    b++;
  l->counts[b]++;
  l->sum_s += s;
}

/* ---- the state machines ---------------------------------------------------
 */

/* A fresh applications machine with this node's settings. */
static int new_app(const struct rt *rt, uint32_t dedup_max, struct app **out) {
  struct app_config ac = app_config_default;
  ac.dedup_max = dedup_max;
  ac.dedup_window_ms = rt->cfg.dedup_window_ms;
  ac.bugs = rt->cfg.app_bugs;
  ac.hash_key[0] = rt->cfg.app_hash_key[0];
  ac.hash_key[1] = rt->cfg.app_hash_key[1];
  return app_new(out, &ac);
}

static int new_kv(const struct rt *rt, struct kvstore **out) {
  struct kvstore_config kc = kvstore_config_default;
  kc.hash_key[0] = rt->cfg.kv_hash_key[0];
  kc.hash_key[1] = rt->cfg.kv_hash_key[1];
  /* Changes go to the watch window (watch.c); a store built from a
   * snapshot reports nothing until it applies. */
  kc.bugs = (rt->cfg.bugs & RT_BUG_TXN_PARTIAL) ? KVSTORE_BUG_TXN_PARTIAL : 0;
  kc.on_event = rt_watch_event;
  kc.event_ctx = (void *)rt;
  return kvstore_new(out, &kc);
}

/* Builds the store and the applications machine of a snapshot (snapshot.h:
 * "SND2", or an older node's bare "SKV1", which holds no applications:
 * they start empty). A snapshot of index 0 with no bytes is the empty state
 * (async's rollback). Returns 0 with *kv and *app set, or an error with
 * nothing allocated and `why` filled. */
static int build_state(const struct rt *rt, const uint8_t *data, size_t len,
                       struct kvstore **kv_out, struct app **app_out,
                       struct sabha_membership *conf_out, char *why,
                       size_t why_size) {
  memset(conf_out, 0, sizeof *conf_out);
  struct kvstore *kv = NULL;
  struct app *app = NULL;
  int rc = new_kv(rt, &kv);
  if (rc == 0)
    rc = new_app(rt, rt->cfg.dedup_max, &app);
  if (rc != 0) {
    snprintf(why, why_size, "no memory for the state machines");
    goto fail;
  }
  if (len == 0) {
    *kv_out = kv;
    *app_out = app;
    return 0;
  }
  struct rt_snap_parts parts;
  rc = rt_snap_open(data, len, &parts);
  if (rc != 0) {
    snprintf(why, why_size, "its container is damaged");
    goto fail;
  }
  if (parts.conf != NULL &&
      sabha_membership_decode(parts.conf, parts.conf_len, conf_out) != 0) {
    rc = SABHA_ECORRUPT;
    snprintf(why, why_size, "its membership part is damaged");
    goto fail;
  }
  rc = kvstore_restore(kv, parts.kv, parts.kv_len);
  if (rc != 0) {
    snprintf(why, why_size, "its key-value part does not restore (%s)",
             sabha_strerror(rc));
    goto fail;
  }
  if (parts.app != NULL) {
    rc = app_restore(app, parts.app, parts.app_len);
    if (rc == SABHA_ECORRUPT) {
      /* Tell a settings mismatch from damage: would it restore under the
       * largest bound? Only a snapshot that recorded no retry rules (from
       * before they were kept in the log) is bound by this node's. */
      struct app *big = NULL;
      if (new_app(rt, APP_DEDUP_LIMIT, &big) == 0 &&
          app_restore(big, parts.app, parts.app_len) == 0)
        snprintf(why, why_size,
                 "it holds more application ids than --dedup-max %u allows, "
                 "and records no retry rules of its own; start with the "
                 "--dedup-max it was written with",
                 rt->cfg.dedup_max);
      else
        snprintf(why, why_size, "its applications part is damaged");
      app_free(big);
      goto fail;
    }
    if (rc != 0) {
      snprintf(why, why_size, "its applications part does not restore (%s)",
               sabha_strerror(rc));
      goto fail;
    }
  }
  *kv_out = kv;
  *app_out = app;
  return 0;
fail:
  kvstore_free(kv);
  app_free(app);
  return rc != 0 ? rc : SABHA_ECORRUPT;
}

/* The state as one snapshot (snapshot.h), with the membership as of the
 * applied index, in a buffer the caller frees; NULL when memory is short
 * (compaction waits for the next chance). */
static uint8_t *snapshot_state(struct rt *rt, size_t *size) {
  size_t kv_len = kvstore_snapshot_size(rt->kv);
  size_t app_len = app_snapshot_size(rt->app);
  uint8_t conf[SABHA_MEMBERSHIP_BYTES_MAX];
  struct sabha_membership m;
  size_t conf_len = 0;
  if (sabha_engine_membership_at(rt->engine, rt->applied, &m) == 0)
    conf_len = sabha_membership_encode(&m, conf, sizeof conf);
  size_t cap = rt_snap_size(kv_len, app_len, conf_len);
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    rt_log(rt, RT_LOG_WARN, "no memory for a snapshot of %zu bytes", cap);
    return NULL;
  }
  size_t kv_written = kvstore_snapshot(rt->kv, rt_snap_kv_at(buf), kv_len);
  size_t app_written =
      app_snapshot(rt->app, rt_snap_app_at(buf, kv_len), app_len);
  /* The sizes were exact: the parts must fill their places. */
  assert(kv_written == kv_len && app_written == app_len);
  (void)kv_written;
  (void)app_written;
  if (conf_len > 0)
    memcpy(rt_snap_conf_at(buf, kv_len, app_len), conf, conf_len);
  *size = rt_snap_seal(buf, kv_len, app_len, conf_len);
  assert(*size == cap);
  return buf;
}

/* ---- applying --------------------------------------------------------------
 */

static void apply_app_command(struct rt *rt, uint64_t index, uint32_t pos,
                              const uint8_t *cmd, size_t len) {
  struct app_reply rep;
  memset(&rep, 0, sizeof rep);
  uint64_t full_before = app_retry_table_full(rt->app);
  int rc = app_apply(rt->app, cmd, len, &rep);
  rt->m.apps_retry_table_full += app_retry_table_full(rt->app) - full_before;
  if (rc == SABHA_ENOMEM) {
    rt_fatal(rt, RT_FATAL_MEMORY, "out of memory applying entry %" PRIu64,
             index);
    return;
  }
  if (rt->ports.command_applied != NULL) {
    struct rt_applied res = {.is_app = true, .app = &rep};
    rt->ports.command_applied(rt->ports.ctx, index, pos, cmd, len, &res);
  }
  struct app_decoded d;
  if (app_decode(cmd, len, &d) == 0)
    rt_proposal_applied_app(rt, &d.hdr, rc, &rep);
}

/* Applies one command of a committed entry and answers the client that
 * waits for it here, if any. App commands (sm/app.h, told apart by their
 * magic byte) go to the applications machine, the rest to the store; a
 * clock entry moves both clocks. Commands are matched with this node's
 * proposals by what identifies them, not by index: Multi-Paxos packs
 * several proposals into one slot. */
static void apply_command(struct rt *rt, uint64_t index, uint32_t pos,
                          const uint8_t *cmd, size_t len, uint64_t hash) {
  if (app_is_command(cmd, len)) {
    apply_app_command(rt, index, pos, cmd, len);
    return;
  }
  struct kvstore_result res;
  memset(&res, 0, sizeof res);
  int rc = kvstore_apply_hinted(rt->kv, cmd, len, hash, &res);
  if (rc == SABHA_ENOMEM) {
    rt_fatal(rt, RT_FATAL_MEMORY, "out of memory applying entry %" PRIu64,
             index);
    return;
  }
  struct kvstore_hdr hdr;
  bool decoded = kvstore_decode_hdr(cmd, len, &hdr) == 0;
  if (decoded && rc == 0 && len > 1 && cmd[1] == KVSTORE_OP_CLOCK)
    app_clock_advance(rt->app, hdr.now_ms);
  if (rt->ports.command_applied != NULL) {
    struct rt_applied res_view = {.is_app = false, .kv = &res};
    rt->ports.command_applied(rt->ports.ctx, index, pos, cmd, len, &res_view);
  }
  if (decoded)
    rt_proposal_applied_kv(rt, &hdr, &res);
}

/* How far ahead of the command applied a batch's keys are fetched: the
 * slot 4 commands ahead, the entry it holds 2 ahead, the ordered index's
 * leaf that holds the entry 1 ahead (kvstore_prefetch_slot).
 * Applying a SET to a large store is mostly two cache misses; asked for
 * early they overlap with the commands before (bench_kvstore --prefetch:
 * overwrites of a 100k-key store went from 0.46-0.52 to 0.37 us each). */
#define RT_PREFETCH_AHEAD 4u

/* The store's prefetch for the next command of `e` from *off; 0 at the
 * end. */
static uint64_t prefetch_next(struct rt *rt, const struct sabha_entry *e,
                              size_t *off) {
  const uint8_t *cmd;
  size_t len;
  if (sabha_batch_next(e, off, &cmd, &len) != 1)
    return 0;
  return kvstore_prefetch_slot(rt->kv, cmd, len);
}

static void apply_entry(struct rt *rt, const struct sabha_entry *e) {
  if (e->index != rt->applied + 1) {
    rt_fatal(rt, RT_FATAL_CONTRACT,
             "engine contract: committed index %" PRIu64
             " handed out after applying %" PRIu64,
             e->index, rt->applied);
    return;
  }
  if (rt->ports.entry_applied != NULL)
    rt->ports.entry_applied(rt->ports.ctx, e);
  rt->applied = e->index;
  rt->applied_bytes += e->size_bytes;
  rt->m.commits++;
  /* Every change this entry makes has its index as its revision. */
  kvstore_set_revision(rt->kv, e->index);
  size_t off = 0;
  const uint8_t *cmd;
  size_t len;
  int rc;
  uint32_t pos = 0;
  uint64_t ahead[RT_PREFETCH_AHEAD] = {0}; /* hashes of commands ahead */
  size_t pf_off = 0;
  bool batch = e->type == SABHA_ENTRY_BATCH;
  for (uint32_t k = 0; batch && k < RT_PREFETCH_AHEAD; k++)
    ahead[k] = prefetch_next(rt, e, &pf_off);
  rt->applying = true;
  while (!rt->dead && (rc = sabha_batch_next(e, &off, &cmd, &len)) == 1) {
    /* This command's hash, read RT_PREFETCH_AHEAD commands ago from these
     * bytes: the store need not hash its key again. */
    uint64_t hash = 0;
    if (batch) {
      hash = ahead[pos % RT_PREFETCH_AHEAD];
      kvstore_prefetch_order(rt->kv, ahead[(pos + 1) % RT_PREFETCH_AHEAD]);
      kvstore_prefetch_entry(rt->kv, ahead[(pos + 2) % RT_PREFETCH_AHEAD]);
      ahead[pos % RT_PREFETCH_AHEAD] = prefetch_next(rt, e, &pf_off);
    }
    apply_command(rt, e->index, pos++, cmd, len, hash);
  }
  rt->applying = false;
  if (!rt->dead && rc < 0)
    rt_log(rt, RT_LOG_ERROR,
           "entry %" PRIu64 " holds a malformed batch; its remaining "
           "commands are skipped on every node alike",
           e->index);
}

/* ---- snapshots -------------------------------------------------------------
 */

static void install_snapshot(struct rt *rt, const struct sabha_ready *rd,
                             struct kvstore *kv, struct app *app) {
  kvstore_free(rt->kv);
  app_free(rt->app);
  rt->kv = kv;
  rt->app = app;
  rt->applied = rd->snapshot.index;
  rt->snapshot_bytes = rd->snapshot_size_bytes;
  rt->applied_bytes = 0;
  rt->m.snapshots_installed++;
  rt_log(rt, RT_LOG_INFO, "installed a snapshot at index %" PRIu64,
         rd->snapshot.index);
  rt_watch_reset(rt, rd->snapshot.index);
  if (rt->ports.snapshot_installed != NULL)
    rt->ports.snapshot_installed(rt->ports.ctx, rd->snapshot.index);
  rt_proposals_after_snapshot(rt);
}

/* How long a compaction the engine refused for now waits (a Multi-Paxos
 * membership change not yet in force, the async baseline's stable point). */
#define RT_COMPACT_RETRY_MS 100u
/* ... and after a state above the snapshot limit: a minute, so that the
 * warning does not flood the log. */
#define RT_COMPACT_TOO_BIG_RETRY_MS 60000u

/* The snapshot's file is written (snap_job): it replaces the old one, the
 * log it covers goes. Not beside an fsync job: this syncs the log. */
static void snapshot_finish(struct rt *rt) {
  assert(!rt->sync_running && !rt->snap_running);
  rt->snap_due = false;
  int rc = wal_snapshot_end(rt->wal, &rt->snap_job);
  free(rt->snap_buf);
  rt->snap_buf = NULL;
  if (rc == 0) {
    rt->m.snapshots_taken++;
    /* The loop's part (state serialized, engine compacted), and the whole
     * (the write and the wait for the disk thread included). */
    rt_log(rt, RT_LOG_INFO,
           "snapshot at index %" PRIu64 " (%zu bytes): %" PRIu64
           " ms on the loop, %" PRIu64 " ms in all",
           rt->snap_job.meta.index, rt->snap_job.size_bytes,
           rt->snap_loop_us / 1000u, (rt_mono_us(rt) - rt->snap_t0_us) / 1000u);
  } else if (rc != SABHA_ECOMPACTED) {
    rt_fatal(rt, RT_FATAL_DISK, "cannot save a snapshot: %s",
             wal_errmsg(rt->wal));
  }
}

static void maybe_compact(struct rt *rt) {
  /* Not beside an fsync on the disk thread: saving a snapshot syncs the
   * log too, and if the job's fsync failed (the kernel then drops the
   * dirty pages), that later sync would succeed over the lost bytes and
   * records written after it would vouch for them; a restart then finds
   * damage where there was only a failed fsync. rt_sync_done compacts
   * between jobs, so a steady load does not starve it. */
  if (rt->cfg.compact_entries == 0 || rt->dead || rt->sync_running ||
      rt->snap_running || rt->snap_due || rt_now_ms(rt) < rt->compact_retry_ms)
    return;
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  bool enough =
      rt->applied >= st.snapshot_index + rt->cfg.compact_entries ||
      (rt->cfg.compact_bytes != 0 && rt->applied > st.snapshot_index &&
       rt->applied_bytes >= rt->cfg.compact_bytes);
  if (!enough || rt->applied_bytes * 100u <
                     rt->snapshot_bytes * rt->cfg.compact_growth_pct)
    return;
  struct sabha_entry ent;
  if (sabha_engine_entry(rt->engine, rt->applied, &ent) != 0)
    return;
  struct sabha_snapshot_meta meta = {.index = rt->applied, .term = ent.term};
  size_t size = 0;
  uint64_t t0 = rt_mono_us(rt);
  uint8_t *buf = snapshot_state(rt, &size);
  if (buf == NULL)
    return;
  if (size > rt->cfg.snapshot_bytes_max) {
    /* Not saved (the log would refuse it) and not compacted: the log keeps
     * the state, and the node goes on. Stopping would stop every replica,
     * which reach the same state, at every restart. */
    rt->m.snapshots_too_big++;
    rt_log(rt, RT_LOG_WARN,
           "the state at index %" PRIu64 " is %zu bytes, above the "
           "snapshot limit (%" PRIu64 "): not compacted; the log keeps "
           "growing until keys are deleted",
           meta.index, size, rt->cfg.snapshot_bytes_max);
    rt->compact_retry_ms = rt_now_ms(rt) + RT_COMPACT_TOO_BIG_RETRY_MS;
    free(buf);
    return;
  }
  /* The engine first: it may refuse (the async baseline keeps what a
   * rollback could still undo), and a snapshot it refused must not reach
   * the disk, or a restart would come back with undone state. Compacted in
   * memory only, the engine loses nothing if the save then fails: the node
   * stops, and restarts from the whole log still on disk. */
  int rc = sabha_engine_compact(rt->engine, meta.index, buf, size);
  if (rc == SABHA_EBUSY)
    rt->compact_retry_ms = rt_now_ms(rt) + RT_COMPACT_RETRY_MS;
  if (rc != 0) {
    if (rc != SABHA_ECOMPACTED && rc != SABHA_EBUSY)
      rt_log(rt, RT_LOG_WARN, "engine compaction at %" PRIu64 ": %s",
             meta.index, sabha_strerror(rc));
    free(buf);
    return;
  }
  rt->snapshot_bytes = size;
  rt->applied_bytes = 0; /* what comes next counts toward the next one */
  rc = wal_snapshot_begin(rt->wal, &rt->snap_job, &meta, buf, size);
  if (rc != 0) {
    if (rc != SABHA_ECOMPACTED)
      rt_fatal(rt, RT_FATAL_DISK, "cannot save a snapshot: %s",
               wal_errmsg(rt->wal));
    free(buf);
    return;
  }
  rt->snap_buf = buf;
  rt->snap_t0_us = t0;
  rt->snap_loop_us = rt_mono_us(rt) - t0;
  /* Writing and fsyncing the whole state is the longest part: off the
   * loop when the host can, so that commits go on meanwhile. */
  if (rt->ports.snapshot_later != NULL &&
      rt->ports.snapshot_later(rt->ports.ctx)) {
    rt->snap_running = true;
    return;
  }
  wal_snapshot_job_run(&rt->snap_job);
  snapshot_finish(rt);
}

void rt_snapshot_work(struct rt *rt) {
  wal_snapshot_job_run(&rt->snap_job);
}

void rt_snapshot_done(struct rt *rt) {
  if (!rt->snap_running)
    return;
  rt->snap_running = false;
  if (rt->dead)
    return; /* the file is left for recovery to delete */
  rt->snap_due = true;
  /* Its install syncs the log: after the running fsync job, if one runs
   * (rt_sync_done). */
  if (!rt->sync_running)
    snapshot_finish(rt);
}

bool rt_snapshot_running(const struct rt *rt) {
  return rt->snap_running;
}

/* ---- the ready cycle -------------------------------------------------------
 */

static void send_all(struct rt *rt, const struct sabha_msg *msgs,
                     size_t count) {
  for (size_t k = 0; k < count; k++) {
    /* Engines know nothing of groups: the message says its own here. */
    struct sabha_msg m = msgs[k];
    m.group = rt->cfg.group;
    rt->ports.send(rt->ports.ctx, &m);
  }
}

/* The engine's election timeout in force (adaptive timing changes it). */
static uint64_t election_timeout_ms(const struct rt *rt) {
  struct sabha_timing t;
  sabha_engine_timing(rt->engine, &t);
  return t.election_timeout_ms_min;
}

static void check_leader(struct rt *rt) {
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  if (st.leader != rt->last_leader || st.role != rt->last_role) {
    /* Leadership as the engine names it: classic Paxos's proposers are
     * "leaders" of their ballots for a moment, and their reads take a slot
     * of their own, which no change of role disturbs. */
    bool was_leader = rt->last_role == SABHA_ROLE_LEADER &&
                      rt->last_leader == rt->cfg.engine.id;
    if (st.leader != rt->last_leader) {
      rt->m.leader_changes++;
      if (st.leader != SABHA_NODE_NONE)
        rt_log(rt, RT_LOG_INFO, "leader is node %u (term %" PRIu64 ")%s",
               st.leader, st.term,
               st.leader == rt->cfg.engine.id ? ": this node" : "");
    }
    if (st.role == SABHA_ROLE_LEADER && st.leader == rt->cfg.engine.id &&
        !was_leader) {
      /* A new leader lets its followers settle (and be heard from) for an
       * election timeout before it judges whom to prefer. */
      rt->prefer_next_ms = rt_now_ms(rt) + election_timeout_ms(rt);
      rt->prefer_failures = 0;
      /* Its log's end now holds an entry of its own term (Raft's no-op,
       * Multi-Paxos's slots taken over): applied, the rules in force are
       * every earlier leader's last word. */
      rt->rules_ready_index = st.last_index;
      rt->rules_proposed = false;
    }
    rt->last_leader = st.leader;
    rt->last_role = st.role;
    rt_fwd_leader_changed(rt);
    if (was_leader && st.role != SABHA_ROLE_LEADER)
      rt_reads_lost_leadership(rt);
  }
  rt_retry_waiting(rt);
}

/* Reports a new membership (the log, INFO, the host's peer addresses) and
 * says so once when this node has been removed from the group. */
static void check_membership(struct rt *rt) {
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  if (!rt->conf_seen || st.config_index != rt->last_conf_index) {
    rt->conf_seen = true;
    rt->last_conf_index = st.config_index;
    struct sabha_membership m;
    sabha_engine_members(rt->engine, &m);
    char text[512];
    size_t len = 0;
    for (uint32_t i = 0; i < m.n && len < sizeof text; i++)
      len += (size_t)snprintf(text + len, sizeof text - len, "%s%u %s",
                              i > 0 ? ", " : "", m.members[i].id,
                              sabha_member_role_name(m.members[i].role));
    if (m.n == 0)
      snprintf(text, sizeof text, "none yet (joining)");
    rt_log(rt, RT_LOG_INFO, "membership as of index %" PRIu64 ": %s",
           st.config_index, text);
    learn_member_addrs(rt, &m);
    if (rt->ports.membership_changed != NULL)
      rt->ports.membership_changed(rt->ports.ctx, &m);
  }
  if (st.removed_notice_index > rt->removed_notice_saved) {
    /* Told by a member, not read in its own log: only this file keeps a
     * restart from campaigning again. A failed write costs one more round
     * of asking after a restart, nothing else (wal_removed.c). */
    rt->removed_notice_saved = st.removed_notice_index;
    if (wal_removed_save(rt->wal, st.removed_notice_index) != 0)
      rt_log(rt, RT_LOG_WARN, "cannot keep the removal notice: %s",
             wal_errmsg(rt->wal));
  }
  if (st.removed != rt->said_removed) {
    rt->said_removed = st.removed;
    if (st.removed && st.removed_notice_index != 0)
      rt_log(rt, RT_LOG_WARN,
             "this node was removed from the group (membership of index "
             "%" PRIu64 ", as a member told it: it was away when the change "
             "committed): it takes no part any more",
             st.removed_notice_index);
    else if (st.removed)
      rt_log(rt, RT_LOG_WARN,
             "this node was removed from the group (membership of index "
             "%" PRIu64 "): it takes no part any more",
             st.config_index);
  }
}

/* ---- the disk ---------------------------------------------------------------
 *
 * Asynchronous storage writes (engine.h, struct sabha_ready). A ready batch
 * is written at once (write(), no fsync), its messages that promise
 * durability are copied into held[hold], its committed entries applied and
 * the engine advanced, all without waiting for the disk. After the batches
 * of a turn, one fsync starts (sync_start) unless one is running; it covers
 * every batch written before it began, and the batches written while it
 * runs wait for the next: the group grows with the load. When it completes
 * (sync_finish) the messages it covers leave and the engine hears, through
 * sabha_engine_persisted, up to which batch its log is durable: a leader
 * counts its own copy towards a commit only then, so every entry applied
 * on any node is on a majority's disks, fsync included.
 *
 * Where the fsync runs is decided per fsync (rt_config.fsync). Off the
 * loop it costs a hand-off to the host's disk thread and a wake-up back,
 * on the leader and on every follower, on a commit's critical path; it
 * pays only when something arrives while the disk syncs. So, in auto, an
 * fsync runs on the loop unless one on the thread recently saw a batch
 * that needs an fsync written while it ran: the next batches were already
 * waiting, and the loop served them meanwhile. On the loop that cannot be
 * seen (the loop takes no input while it syncs), so after a run of fsyncs
 * there, one goes to the thread to look. Either way the ordering is the
 * same: acknowledgements and the engine's persisted wait for sync_finish.
 */

/* Keeps copies of `msgs` in `held` until its fsync completes. Out of
 * memory a message is dropped, as the network may drop it: the protocols
 * resend. */
static void hold_msgs(struct outbox *held, const struct sabha_msg *msgs,
                      size_t count) {
  for (size_t k = 0; k < count; k++)
    (void)outbox_send(held, &msgs[k], false);
}

/* Whether batch `rd` itself holds something that must be durable before
 * its messages leave: entries, a truncation, a snapshot, a new term or
 * vote. A follower's answer to a bare commit update holds none: it needs
 * an fsync (must_sync) only for what earlier batches wrote. Call before
 * the batch's hard state is noted as written. */
static bool adds_durable(const struct rt *rt, const struct sabha_ready *rd) {
  return rd->has_snapshot || rd->truncate_from != 0 || rd->n_entries > 0 ||
         (rd->has_hard_state && (rd->hard_state.term != rt->hs_term ||
                                 rd->hard_state.vote != rt->hs_vote));
}

/* Auto: whether the fsync about to start goes to the thread. */
static bool sync_on_thread(const struct rt *rt) {
  switch (rt->cfg.fsync) {
  case RT_FSYNC_LOOP:
    return false;
  case RT_FSYNC_THREAD:
    return true;
  case RT_FSYNC_AUTO:
    break;
  }
  /* With several groups in the process, an fsync on the loop would stop
   * every group for one group's disk, and the load that decides is the
   * process's, not the group's: the groups share the disk thread's job. */
  if (rt->cfg.n_groups > 1)
    return true;
  return rt->fsync_thread_hold > 0 ||
         rt->fsync_loop_run >= RT_FSYNC_PROBE_EVERY;
}

/* Auto: an fsync on the thread completed; sync_overlap says whether
 * entries were written while it ran. */
static void sync_note_thread(struct rt *rt) {
  assert(rt->sync_thread);
  if (rt->sync_overlap)
    rt->fsync_thread_hold = RT_FSYNC_THREAD_HOLD;
  else if (rt->fsync_thread_hold > 0)
    rt->fsync_thread_hold--;
}

static void sync_finish(struct rt *rt) {
  assert(rt->sync_running);
  rt->sync_running = false;
  if (rt->sync_thread)
    sync_note_thread(rt);
  int rc = wal_sync_end(rt->wal, &rt->job);
  if (rc != 0) {
    rt_fatal(rt, RT_FATAL_DISK, "cannot sync the log: %s (%s)",
             sabha_strerror(rc), wal_errmsg(rt->wal));
    return;
  }
  if (rt->ports.synced != NULL)
    rt->ports.synced(rt->ports.ctx);
  struct outbox *done = &rt->held[rt->hold ^ 1u];
  send_all(rt, done->now.items, done->now.n);
  outbox_reset(done);
  sabha_engine_persisted(rt->engine, rt->seq_syncing);
  rt_kick(rt);
}

/* Starts an fsync of everything written, unless one runs or none is due. */
static void sync_start(struct rt *rt) {
  if (rt->dead || rt->sync_running || !rt->sync_wanted)
    return;
  int rc = wal_sync_begin(rt->wal, &rt->job);
  if (rc != 0) {
    rt_fatal(rt, RT_FATAL_DISK, "cannot write the log: %s (%s)",
             sabha_strerror(rc), wal_errmsg(rt->wal));
    return;
  }
  rt->sync_running = true;
  rt->sync_wanted = false;
  rt->seq_syncing = rt->seq_last;
  rt->hold ^= 1u; /* what was gathered is what this fsync covers */
  rt->sync_thread = sync_on_thread(rt) && rt->ports.sync_later != NULL &&
                    rt->ports.sync_later(rt->ports.ctx);
  if (rt->sync_thread) {
    rt->m.fsyncs_thread++;
    rt->fsync_loop_run = 0;
    rt->sync_overlap = false;
    return;
  }
  rt->m.fsyncs_loop++;
  rt->sync_overlap = false;
  if (rt->fsync_loop_run < RT_FSYNC_PROBE_EVERY)
    rt->fsync_loop_run++;
  /* The appends go out first: the followers' write and fsync run beside
   * ours, as the commit's cost model has it (docs/performance.md). */
  if (rt->ports.flush != NULL)
    rt->ports.flush(rt->ports.ctx);
  wal_sync_job_run(&rt->job);
  sync_finish(rt);
}

void rt_sync_work(struct rt *rt) {
  wal_sync_job_run(&rt->job);
}

void rt_sync_work_many(struct rt *const *rts, size_t n) {
  struct wal_sync_job *jobs[WAL_SYNC_JOBS_MAX];
  assert(n <= WAL_SYNC_JOBS_MAX);
  for (size_t i = 0; i < n; i++)
    jobs[i] = &rts[i]->job;
  wal_sync_jobs_run(jobs, n);
}

void rt_sync_done(struct rt *rt) {
  if (rt->dead || !rt->sync_running)
    return;
  sync_finish(rt);
  if (!rt->dead && rt->snap_due)
    snapshot_finish(rt);
  if (!rt->dead)
    maybe_compact(rt);
  if (!rt->dead)
    rt_run(rt);
}

bool rt_sync_running(const struct rt *rt) {
  return rt->sync_running;
}

/* Does the membership a peer's snapshot keeps in its container agree with
 * the one the engine took from the snapshot's message? The engine goes by
 * the message now, a restart by the container (open_state): a snapshot
 * where they differ would hand this node another group after a restart.
 * A container without one (an older node's "SND2") stands for the
 * configured voters, as a restart takes it. An engine without memberships
 * gives none and has nothing to compare. */
static bool snapshot_conf_agrees(const struct rt *rt,
                                 const struct sabha_membership *kept,
                                 const struct sabha_membership *taken) {
  if (taken == NULL)
    return true;
  struct sabha_membership configured;
  if (kept->n == 0) {
    membership_initial(&rt->cfg.engine, &configured);
    kept = &configured;
  }
  uint8_t a[SABHA_MEMBERSHIP_BYTES_MAX], b[SABHA_MEMBERSHIP_BYTES_MAX];
  size_t a_len = sabha_membership_encode(kept, a, sizeof a);
  size_t b_len = sabha_membership_encode(taken, b, sizeof b);
  return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* Takes one ready batch and carries it out in the order of engine.h,
 * without waiting for the disk. */
static void ready_once(struct rt *rt) {
  struct sabha_ready *rd = &rt->rd;
  sabha_engine_ready(rt->engine, rd);
  rt->in_ready = true; /* no engine calls until advance: see DEFERRED */
  if (rd->has_snapshot) {
    char why[256];
    struct sabha_membership conf;
    int rc =
        build_state(rt, rd->snapshot_data, rd->snapshot_size_bytes,
                    &rt->pending_kv, &rt->pending_app, &conf, why, sizeof why);
    if (rc == 0 && !snapshot_conf_agrees(rt, &conf, rd->snapshot_membership)) {
      kvstore_free(rt->pending_kv);
      app_free(rt->pending_app);
      rt->pending_kv = NULL;
      rt->pending_app = NULL;
      rc = SABHA_ECORRUPT;
      snprintf(why, sizeof why,
               "its membership part%s disagrees with the membership its "
               "message carries",
               conf.n == 0 ? " (none: the configured voters)" : "");
    }
    if (rc != 0) {
      rt->m.snapshots_refused++;
      rt_fatal(rt, rc == SABHA_ENOMEM ? RT_FATAL_MEMORY : RT_FATAL_CONTRACT,
               "the snapshot at index %" PRIu64 " from a peer does not "
               "restore: %s; nothing of it was persisted",
               rd->snapshot.index, why);
      return;
    }
  }
  /* 1. Messages that need nothing durable (the leader's appends). */
  send_all(rt, rd->msgs, rd->n_msgs);
  /* A batch that needs an fsync only for what earlier ones wrote rides on
   * theirs: on the running fsync when it covers all of them, or on none
   * when all are durable. Either way no fsync of its own. */
  bool rides = rd->must_sync && !adds_durable(rt, rd) && !rt->sync_wanted &&
               !(rt->cfg.bugs & RT_BUG_ACK_BEFORE_FSYNC);
  bool durable_now = rides && !rt->sync_running;
  /* 2. Write; the fsync comes after the turn's batches (sync_start). */
  if (rd->has_hard_state) {
    rt->hs_term = rd->hard_state.term;
    rt->hs_vote = rd->hard_state.vote;
  }
  int rc = wal_append_ready(rt->wal, rd);
  if (rc != 0) {
    bool io = rc == SABHA_EIO || rc == SABHA_ENOMEM;
    rt_fatal(rt, io ? RT_FATAL_DISK : RT_FATAL_CONTRACT,
             "cannot write the log: %s (%s)", sabha_strerror(rc),
             wal_errmsg(rt->wal));
    return;
  }
  if (rt->ports.written != NULL)
    rt->ports.written(rt->ports.ctx);
  rt->seq_last = rd->seq;
  /* The bug: acknowledge now, sync whenever the host gets to it. */
  bool early = rd->must_sync && (rt->cfg.bugs & RT_BUG_ACK_BEFORE_FSYNC);
  /* 3. Acknowledgements wait for the fsync that covers this batch. */
  if (durable_now) {
    send_all(rt, rd->msgs_after_persist, rd->n_msgs_after_persist);
  } else if (rides) {
    hold_msgs(&rt->held[rt->hold ^ 1u], rd->msgs_after_persist,
              rd->n_msgs_after_persist);
    rt->seq_syncing = rd->seq;
  } else if (rd->must_sync) {
    rt->sync_wanted = true;
    /* Load, for the choice of where fsyncs run: new entries while one
     * runs (a follower's answer to a bare commit update is none). */
    if (rt->sync_running && rd->n_entries > 0)
      rt->sync_overlap = true;
    if (early)
      send_all(rt, rd->msgs_after_persist, rd->n_msgs_after_persist);
    else
      hold_msgs(&rt->held[rt->hold], rd->msgs_after_persist,
                rd->n_msgs_after_persist);
  }
  /* 4-5. */
  if (rd->has_snapshot) {
    install_snapshot(rt, rd, rt->pending_kv, rt->pending_app);
    rt->pending_kv = NULL;
    rt->pending_app = NULL;
  }
  for (size_t i = 0; i < rd->n_committed && !rt->dead; i++)
    apply_entry(rt, &rd->committed[i]);
  if (rt->dead)
    return;
  if (rd->n_committed > 0)
    rt_watch_deliver(rt);
  for (size_t i = 0; i < rd->n_reads; i++)
    rt_note_read(rt, &rd->reads[i]);
  /* 6. */
  sabha_engine_advance(rt->engine, rd);
  rt->in_ready = false;
  if (early || durable_now)
    sabha_engine_persisted(rt->engine, rd->seq);
  rt_run_deferred(rt);
}

static void maybe_propose_rules(struct rt *rt);

bool rt_run(struct rt *rt) {
  if (rt->dead)
    return false;
  for (uint32_t k = 0; k < RT_READIES_PER_RUN && !rt->dead; k++) {
    if (!sabha_engine_has_ready(rt->engine)) {
      /* Every batch of this turn is written: one fsync for all of them.
       * A host that syncs at once may find more due after it. */
      if (rt->sync_running || !rt->sync_wanted)
        break;
      sync_start(rt);
      continue;
    }
    if (rt->ports.before_ready != NULL &&
        !rt->ports.before_ready(rt->ports.ctx))
      return true;
    ready_once(rt);
  }
  sync_start(rt); /* batches left for the next turn are written already */
  if (rt->dead)
    return false;
  rt_serve_reads(rt);
  maybe_compact(rt);
  if (!rt->dead) {
    check_leader(rt);
    check_membership(rt);
    maybe_propose_rules(rt);
  }
  if (!rt->dead)
    rt_clients_resume(rt);
  bool watch_more = !rt->dead && rt_watch_catch_up(rt);
  rt_reap(rt);
  return !rt->dead && (sabha_engine_has_ready(rt->engine) ||
                       rt->n_resume_due > 0 || watch_more);
}

/* ---- time ------------------------------------------------------------------
 */

/* The leader proposes a clock entry when something stored expired by its
 * own clock but not yet by the log's: reads judge by the log's clock alone
 * (so every replica agrees), and without writes it would stand still. */
static void maybe_propose_clock(struct rt *rt, uint64_t now_ms) {
  /* Only a leader the engine names (classic Paxos, which has none, would
   * have every proposer race for the same instant's entry). */
  /* (The wall-clock-read bug brings back the old node whole: it judged
   * expiry by its own clock and had no clock entries.) */
  if (rt->cfg.clock_ms == 0 || (rt->cfg.bugs & RT_BUG_WALL_CLOCK_READ) ||
      rt->last_role != SABHA_ROLE_LEADER ||
      rt->last_leader != rt->cfg.engine.id || rt->in_ready)
    return;
  uint64_t wall = rt_stamp_clock_ms(rt);
  if (wall < rt->clock_proposed_ms + rt->cfg.clock_ms)
    return;
  /* The store and the applications keep a clock each (key-value commands
   * move the one, application commands the other, clock entries both), so
   * each due time is judged by its own machine's clock: judged by the
   * store's, a lease that ended while key-value writes carried that clock
   * past it never got its clock entry, and reads saw it held until the
   * next application write. */
  uint64_t kv_clock = kvstore_clock_ms(rt->kv);
  uint64_t app_clock = app_clock_ms(rt->app);
  if (wall <= kv_clock && wall <= app_clock)
    return; /* both clocks are current: nothing can be due */
  uint64_t due = kvstore_next_expiry_ms(rt->kv);
  bool kv_due = due != 0 && due >= kv_clock && due < wall;
  /* Held at the machine's clock, so past it: only the wall clock counts. */
  uint64_t lease = app_next_expiry_ms(rt->app);
  bool app_due = lease != 0 && lease < wall;
  /* The time something still has left (TTL, PTTL, a lock's ms left) is
   * read on the log's clock too, which stands still without writes: on an
   * idle group a TTL would say 100 for as long as nobody wrote. A clock
   * entry a second while something may still expire keeps it counting
   * down, as a client of Redis sees it. */
  bool ticking = (due > kv_clock && wall >= kv_clock + RT_CLOCK_TICK_MS) ||
                 (lease > app_clock && wall >= app_clock + RT_CLOCK_TICK_MS);
  if (!kv_due && !app_due && !ticking)
    return;
  uint64_t stamp = rt_stamp_ms(rt);
  uint8_t buf[KVSTORE_CMD_HEADER_BYTES];
  size_t size = kvstore_encode_clock(buf, sizeof buf, stamp);
  assert(size == sizeof buf);
  if (sabha_engine_propose(rt->engine, buf, size) == 0) {
    rt->clock_proposed_ms = stamp;
    rt->m.clock_entries++;
    rt_kick(rt);
  }
  (void)now_ms;
}

/* The applications' retry rules decide replies, so they change at one point
 * of the log for every replica: the leader proposes its settings as a rules
 * entry (sm/app.h) when the rules in force differ from them, or were never
 * recorded. Not before it has applied its own term's first entry, so that
 * it judges by the rules its predecessors left; at most one in flight, sent
 * again after a request timeout if it has not taken effect by then (lost
 * with a leader's change of mind, or dropped by a busy engine). Members
 * with other settings would undo each other's entries, which the peer
 * handshake's settings digest prevents. */
static void maybe_propose_rules(struct rt *rt) {
  if (rt->last_role != SABHA_ROLE_LEADER ||
      rt->last_leader != rt->cfg.engine.id || rt->in_ready || rt->dead ||
      rt->applied < rt->rules_ready_index)
    return;
  struct app_rules want = {rt->cfg.dedup_max, rt->cfg.dedup_window_ms};
  struct app_rules now_in_force;
  if (app_rules_in_force(rt->app, &now_in_force) &&
      now_in_force.dedup_max == want.dedup_max &&
      now_in_force.dedup_window_ms == want.dedup_window_ms)
    return;
  uint64_t now = rt_now_ms(rt);
  if (rt->rules_proposed &&
      now - rt->rules_proposed_ms < (uint64_t)rt->cfg.request_timeout_ms)
    return;
  uint8_t buf[APP_RULES_CMD_BYTES];
  struct app_hdr hdr = {.now_ms = rt_stamp_ms(rt), .tag = 0};
  size_t size = app_encode_rules(buf, sizeof buf, &hdr, &want);
  if (sabha_engine_propose(rt->engine, buf, size) != 0)
    return; /* the next run tries again */
  rt->rules_proposed = true;
  rt->rules_proposed_ms = now;
  rt_log(rt, RT_LOG_INFO,
         "proposed the applications' retry rules dedup-max %u, "
         "dedup-window-ms %u (in force: %u, %u%s)",
         want.dedup_max, want.dedup_window_ms, now_in_force.dedup_max,
         now_in_force.dedup_window_ms,
         app_rules_in_force(rt->app, &now_in_force) ? "" : ", from settings");
  rt_kick(rt);
}

/* Preferred leaders: a leader that knows a voter of strictly higher
 * priority (rt_config.priority) which is caught up (known to hold every
 * committed entry: an idle Multi-Paxos group never leaves probing, so the
 * engine's caught_up, which wants replication flowing, would never hold
 * there) and was heard from within an election timeout hands leadership to it
 * by the engine's transfer (Raft's TimeoutNow, its Multi-Paxos analogue): the
 * target is brought level first and campaigns at once, so the cluster is never
 * left without a leader, and a target that cannot win leaves this node leader
 * when the transfer times out. Tries are at least an election timeout apart,
 * the wait doubling (up to 32 times) after each that left this node leader.
 * Equal priorities never move leadership, so a cluster without settings never
 * churns. */
static void prefer_leader(struct rt *rt, uint64_t now) {
  uint32_t self = rt->cfg.engine.id;
  if (rt->last_role != SABHA_ROLE_LEADER || rt->last_leader != self ||
      rt->in_ready || now < rt->prefer_next_ms || self > SABHA_NODES_MAX)
    return;
  uint64_t window = election_timeout_ms(rt);
  uint32_t best = SABHA_NODE_NONE;
  uint32_t best_priority = rt->cfg.priority[self];
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  struct sabha_membership m;
  sabha_engine_members(rt->engine, &m);
  for (uint32_t i = 0; i < m.n; i++) {
    const struct sabha_member *x = &m.members[i];
    if (x->id == self || x->id > SABHA_NODES_MAX ||
        x->role != SABHA_MEMBER_VOTER || x->match < st.commit ||
        rt->heard_ms[x->id] == 0 || now - rt->heard_ms[x->id] > window)
      continue;
    if (rt->cfg.priority[x->id] > best_priority) {
      best = x->id;
      best_priority = rt->cfg.priority[x->id];
    }
  }
  if (best == SABHA_NODE_NONE) {
    rt->prefer_failures = 0;
    return;
  }
  uint32_t shift = rt->prefer_failures < 5 ? rt->prefer_failures : 5;
  rt->prefer_next_ms = now + ((uint64_t)window << shift);
  rt->prefer_failures++;
  if (sabha_engine_transfer_leadership(rt->engine, best) != 0)
    return;
  rt->m.priority_transfers++;
  rt_log(rt, RT_LOG_INFO,
         "handing leadership to node %u: its priority %u is above this "
         "node's %u",
         best, best_priority, rt->cfg.priority[self]);
  rt_kick(rt);
}

void rt_tick(struct rt *rt) {
  if (rt->dead)
    return;
  uint64_t now = rt_now_ms(rt);
  sabha_engine_tick(rt->engine, now);
  rt_timing_tick(rt, now);
  rt_kick(rt);
  if (now >= rt->next_timeout_scan_ms) {
    rt->next_timeout_scan_ms = now + RT_TIMEOUT_SCAN_MS;
    rt_scan_deadlines(rt, now);
    maybe_propose_clock(rt, now);
    prefer_leader(rt, now);
    rt_watch_tick(rt); /* batches whose time has come */
  }
}

/* A term-like field of a message from a peer is within the bounds of
 * runtime.h when it is below the ceiling and not too far above `own`. */
static bool peer_term_ok(uint64_t term, uint64_t own) {
  if (term >= RT_PEER_TERM_MAX)
    return false;
  return term <= own || term - own <= RT_PEER_TERM_JUMP_MAX;
}

/* The first term-like field of m that breaks the bounds, by name, or NULL.
 * Entry terms are checked too: an honest sender never holds an entry of a
 * term above its own, and a forged one would end up in our log and in our
 * hard state's comparisons. */
static const char *peer_term_refused(const struct sabha_msg *m, uint64_t own,
                                     uint64_t *bad) {
  const struct {
    const char *name;
    uint64_t term;
  } fields[] = {{"term", m->term},
                {"log_term", m->log_term},
                {"hint_term", m->hint_term},
                {"snap.term", m->snap.term}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (!peer_term_ok(fields[i].term, own)) {
      *bad = fields[i].term;
      return fields[i].name;
    }
  }
  for (uint32_t i = 0; i < m->n_entries && m->entries != NULL; i++) {
    if (!peer_term_ok(m->entries[i].term, own)) {
      *bad = m->entries[i].term;
      return "an entry's term";
    }
  }
  return NULL;
}

static void refuse_peer_term(struct rt *rt, const struct sabha_msg *m,
                             const char *field, uint64_t bad, uint64_t own) {
  rt->m.peer_msgs_refused_term++;
  rt->term_refused_unlogged++;
  uint64_t now = rt_now_ms(rt);
  if (now < rt->term_refused_log_due_ms)
    return;
  rt_log(rt, RT_LOG_WARN,
         "refused a message (type %u) from node %u: its %s %" PRIu64
         " is beyond the bound (below %" PRIu64 " and at most %" PRIu64
         " above our term %" PRIu64
         "): a peer that sends it is broken or hostile (%" PRIu64
         " such messages since the last report)",
         m->type, m->from, field, bad, (uint64_t)RT_PEER_TERM_MAX,
         (uint64_t)RT_PEER_TERM_JUMP_MAX, own, rt->term_refused_unlogged);
  rt->term_refused_unlogged = 0;
  rt->term_refused_log_due_ms = now + RT_PEER_REFUSED_LOG_MS;
}

void rt_step(struct rt *rt, const struct sabha_msg *m) {
  if (rt->dead)
    return;
  assert(m->group == rt->cfg.group); /* the host hands each to its group */
  if (rt_msg_is_runtime(m)) {
    rt_timing_step(rt, m); /* the engine never sees these */
    return;
  }
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  uint64_t bad = 0;
  const char *field = peer_term_refused(m, st.term, &bad);
  if (field != NULL) {
    refuse_peer_term(rt, m, field, bad, st.term);
    return;
  }
  if (m->from >= 1 && m->from <= SABHA_NODES_MAX)
    rt->heard_ms[m->from] = rt_now_ms(rt);
  sabha_engine_step(rt->engine, m);
  rt_kick(rt);
}

/* ---- start-up --------------------------------------------------------------
 */

static int open_storage(struct rt *rt, struct sabha_persisted *p, char *err,
                        size_t err_size) {
  struct wal_options wo;
  wal_options_init(&wo, rt->cfg.data_dir);
  wo.io = rt->cfg.io;
  wo.segment_size_bytes = rt->cfg.wal_segment_bytes;
  /* The log takes what the engine may propose, no more. */
  wo.entry_size_bytes_max = rt->cfg.engine.entry_size_bytes_max;
  /* Whatever the engine takes (SABHA_SNAPSHOT_BYTES_MAX) the log keeps:
   * with the log's own default, 1 GiB, a full store's snapshot was refused
   * at its save, which stopped the node, and every replica, which reach
   * the same state, at every restart. */
  wo.snapshot_size_bytes_max = rt->cfg.snapshot_bytes_max;
  wo.discard_corrupt = rt->cfg.discard_corrupt_log;
  wo.refuse_corrupt = rt->cfg.refuse_corrupt_log;
  char werr[WAL_ERRMSG_MAX];
  int rc = wal_open(&rt->wal, &wo, p, werr, sizeof werr);
  if (rc != 0) {
    rt->wal = NULL;
    if (rc == SABHA_ECORRUPT) {
      snprintf(err, err_size,
               "cannot recover the log in %s: %s. The log is damaged before "
               "its tail, so acknowledged data may be at stake; refusing to "
               "start. %s (see docs/operations.md, \"Damaged logs\")",
               rt->cfg.data_dir, werr,
               rt->cfg.refuse_corrupt_log
                   ? "To repair it from the peers, restart it without "
                     "refuse-corrupt-log"
                   : "It cannot be repaired safely: bring the other nodes "
                     "up, then give this node's log up with "
                     "--discard-corrupt-log only if the rest of the cluster "
                     "holds every acknowledged write");
      return 2;
    }
    snprintf(err, err_size, "cannot recover the log in %s: %s: %s",
             rt->cfg.data_dir, sabha_strerror(rc), werr);
    return 1;
  }
  if (werr[0] != '\0')
    rt_log(rt, RT_LOG_WARN, "log recovery: %s", werr);
  return 0;
}

static int open_state(struct rt *rt, const struct sabha_persisted *p, char *err,
                      size_t err_size) {
  char why[256];
  const uint8_t *data = p->has_snapshot ? p->snapshot_data : NULL;
  size_t len = p->has_snapshot ? p->snapshot_size_bytes : 0;
  struct sabha_membership conf;
  int rc =
      build_state(rt, data, len, &rt->kv, &rt->app, &conf, why, sizeof why);
  if (rc != 0) {
    snprintf(err, err_size, "the snapshot in %s does not restore: %s",
             rt->cfg.data_dir, why);
    return rc == SABHA_ENOMEM ? 1 : 2;
  }
  rt->applied = p->has_snapshot ? p->snapshot.index : 0;
  rt->snapshot_bytes = len;
  if (rt_watch_init(rt, rt->applied + 1) != 0) {
    snprintf(err, err_size, "no memory for the watch window");
    return 1;
  }
  struct sabha_persisted pp = *p;
  pp.applied = rt->applied;
  rc = wal_removed_load(rt->wal, &pp.removed_notice_index);
  if (rc == SABHA_ECORRUPT) {
    rt_log(rt, RT_LOG_WARN, "%s; ignored: a member will say so again",
           wal_errmsg(rt->wal));
  } else if (rc != 0) {
    snprintf(err, err_size, "%s", wal_errmsg(rt->wal));
    return 1;
  }
  rt->removed_notice_saved = pp.removed_notice_index;
  /* The membership kept with the snapshot, as of its index. */
  if (conf.n > 0) {
    /* The encoding leaves out where the membership was set; it was at or
     * before the snapshot, which is all an engine needs to know. */
    conf.index = p->snapshot.index;
    pp.membership = &conf;
  }
  rc = sabha_engine_new(&rt->engine, rt->cfg.protocol, &rt->cfg.engine, &pp);
  if (rc != 0) {
    snprintf(err, err_size, "the %s engine refused to start from %s: %s",
             rt->cfg.protocol, rt->cfg.data_dir, sabha_strerror(rc));
    return rc == SABHA_ENOMEM ? 1 : 2;
  }
  wal_release_recovered(rt->wal);
  return 0;
}

static void free_all(struct rt *rt) {
  rt_watch_free(rt);
  rt_req_pool_free(rt);
  sabha_engine_free(rt->engine);
  kvstore_free(rt->kv);
  app_free(rt->app);
  kvstore_free(rt->pending_kv);
  app_free(rt->pending_app);
  resp_buf_free(&rt->scratch);
  outbox_free(&rt->held[0]);
  outbox_free(&rt->held[1]);
  free(rt->enc);
  free(rt->app_cmds);
  free(rt->argv);
  free(rt->inline_scratch);
  free(rt->snap_buf);
  free(rt);
}

int rt_open(struct rt **out, const struct rt_config *cfg,
            const struct rt_ports *ports, char *err, size_t err_size) {
  assert(ports->now_ms && ports->wall_ms && ports->mono_us && ports->send &&
         ports->stream_output && ports->stream_pause && ports->stream_close &&
         ports->stream_connect && ports->fatal);
  err[0] = '\0';
  if (cfg->n_groups < 1 || cfg->n_groups > RT_GROUPS_MAX ||
      cfg->group >= cfg->n_groups) {
    snprintf(err, err_size, "group %u of %u: groups must be 1..%u", cfg->group,
             cfg->n_groups, RT_GROUPS_MAX);
    return 1;
  }
  for (uint32_t i = 0; i <= SABHA_NODES_MAX; i++)
    if (cfg->priority[i] > RT_PRIORITY_MAX) {
      snprintf(err, err_size, "node %u's priority %u is above %u", i,
               cfg->priority[i], RT_PRIORITY_MAX);
      return 1;
    }
  if (cfg->fsync != RT_FSYNC_AUTO && cfg->fsync != RT_FSYNC_LOOP &&
      cfg->fsync != RT_FSYNC_THREAD) {
    snprintf(err, err_size, "unknown fsync mode %d", (int)cfg->fsync);
    return 1;
  }
  if (cfg->timing != RT_TIMING_FIXED && cfg->timing != RT_TIMING_ADAPTIVE) {
    snprintf(err, err_size, "unknown timing mode %d", (int)cfg->timing);
    return 1;
  }
  if (cfg->election_timeout_ms_floor < RT_TIMING_FLOOR_MS_MIN ||
      cfg->election_timeout_ms_ceiling < cfg->election_timeout_ms_floor ||
      cfg->election_timeout_ms_ceiling > RT_TIMING_CEILING_MS_MAX) {
    snprintf(err, err_size,
             "adaptive timing's election timeout floor %u ms and ceiling %u "
             "ms must satisfy %u <= floor <= ceiling <= %u",
             cfg->election_timeout_ms_floor, cfg->election_timeout_ms_ceiling,
             RT_TIMING_FLOOR_MS_MIN, RT_TIMING_CEILING_MS_MAX);
    return 1;
  }
  uint64_t segment_min =
      wal_segment_bytes_min(cfg->engine.entry_size_bytes_max);
  if (cfg->wal_segment_bytes < segment_min) {
    snprintf(err, err_size,
             "wal-segment-bytes %u is too small: a segment must hold the "
             "largest entry (%u bytes) with its headers, %" PRIu64
             " bytes at least",
             cfg->wal_segment_bytes, cfg->engine.entry_size_bytes_max,
             segment_min);
    return 1;
  }
  struct rt *rt = calloc(1, sizeof *rt);
  if (rt == NULL) {
    snprintf(err, err_size, "out of memory");
    return 1;
  }
  rt->cfg = *cfg;
  rt->ports = *ports;
  list_init(&rt->clients);
  list_init(&rt->reaping);
  list_init(&rt->wait_leader);
  list_init(&rt->deferred);
  list_init(&rt->proposals);
  list_init(&rt->reads);
  list_init(&rt->fwds);
  list_init(&rt->pairs_due);
  rt->groups[cfg->group] = rt;
  resp_buf_init(&rt->scratch, RT_OUT_BYTES_MAX);
  outbox_init(&rt->held[0]);
  outbox_init(&rt->held[1]);
  rt->started_wall_ms = rt_wall_ms(rt);
  rt->next_stream_id = 1;
  /* Read ids start at random, like tags: an engine may still carry a read
   * of this node's previous run (classic Paxos's read markers sit in the
   * log), which must not answer a new read of the same number. */
  rt->next_read_id = (cfg->tag_seed >> 8) | 1;
  rt->next_tag =
      ((uint64_t)cfg->engine.id << 56) | (cfg->tag_seed & ((1ull << 56) - 1));
  rt->last_role = SABHA_ROLE_FOLLOWER;
  rt_timing_init(rt);
  if (rt_commands_init(rt) != 0) {
    snprintf(err, err_size, "out of memory");
    free_all(rt);
    return 1;
  }
  struct sabha_persisted p;
  int rc = open_storage(rt, &p, err, err_size);
  if (rc == 0) {
    rt->hs_term = p.hard_state.term;
    rt->hs_vote = p.hard_state.vote;
    rc = open_state(rt, &p, err, err_size);
  }
  if (rc != 0) {
    wal_close(rt->wal);
    rt->wal = NULL;
    free_all(rt);
    return rc;
  }
  struct wal_stats ws;
  wal_stats(rt->wal, &ws);
  rt_log(rt, RT_LOG_INFO,
         "%s node %u of %u: recovered hard state term %" PRIu64
         ", vote %u, commit %" PRIu64 "; log %" PRIu64 "..%" PRIu64
         ", snapshot at %" PRIu64 "%s",
         rt->cfg.protocol, cfg->engine.id, cfg->engine.n_voters,
         p.hard_state.term, p.hard_state.vote, p.hard_state.commit,
         ws.first_index, ws.last_index, ws.snapshot_index,
         ws.recovered_tail_bytes > 0 ? " (a torn tail was cut)" : "");
  *out = rt;
  return 0;
}

/* Closes every stream: the host gets stream_close for each. */
static void close_streams(struct rt *rt) {
  for (struct list_link *l = rt->clients.next; l != &rt->clients; l = l->next)
    rt_stream_close(LIST_OF(l, struct rt_stream, link), false);
  rt_fwd_close_all(rt);
  rt_reap(rt);
}

int rt_close(struct rt *rt) {
  if (rt == NULL)
    return 0;
  int rc = 0;
  if (!rt->dead) {
    close_streams(rt);
    /* A clean close: synced, then marked, so that the next start tells any
     * damage, the last batch's included, from a torn write (wal.h). */
    rc = wal_close_clean(rt->wal) == 0 ? 0 : 1;
    if (rc != 0)
      rt_log(rt, RT_LOG_ERROR, "the final sync or clean close failed");
  } else {
    wal_close(rt->wal);
  }
  rt->wal = NULL;
  rt_log(rt, RT_LOG_INFO, "stopped");
  free_all(rt);
  return rc;
}

void rt_close_crash(struct rt *rt) {
  if (rt == NULL)
    return;
  /* The host forgets its side of every stream; ours go here. */
  rt_streams_free_all(rt);
  wal_close(rt->wal);
  free_all(rt);
}

/* ---- inspection ------------------------------------------------------------
 */

void rt_status(const struct rt *rt, struct sabha_status *st) {
  sabha_engine_status(rt->engine, st);
}

uint64_t rt_applied_index(const struct rt *rt) {
  return rt->applied;
}

const struct rt_metrics *rt_metrics(const struct rt *rt) {
  return &rt->m;
}

uint32_t rt_n_clients(const struct rt *rt) {
  return rt->n_clients;
}

const struct rt_config *rt_config(const struct rt *rt) {
  return &rt->cfg;
}

const struct sabha_engine *rt_engine(const struct rt *rt) {
  return rt->engine;
}

const struct kvstore *rt_kvstore(const struct rt *rt) {
  return rt->kv;
}

const struct app *rt_app(const struct rt *rt) {
  return rt->app;
}

void rt_wal_stats(const struct rt *rt, struct wal_stats *st) {
  wal_stats(rt->wal, st);
}

bool rt_has_leader(const struct rt *rt) {
  struct sabha_status st;
  sabha_engine_status(rt->engine, &st);
  return st.leader != SABHA_NODE_NONE;
}
