/* The node runtime's core: start-up and recovery, the engine's ready cycle,
 * applying committed entries and answering the clients that wait for them,
 * ReadIndex reads, deadlines, compaction and shutdown. node.h tells the
 * story; node_internal.h describes the structures.
 *
 * Durability rule, restated where it is kept: a client's write is answered
 * in apply_entry(), which runs only for entries the engine handed out as
 * committed, and the engine counts this node's copy only after the batch
 * that wrote it was fsynced (srv_drain: wal_sync before advance). Votes and
 * acknowledgements (msgs_after_persist) leave after that same fsync. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/codec.h"
#include "server/node_internal.h"
#include "server/snapshot.h"

/* ---- clocks and logging ------------------------------------------------- */

uint64_t srv_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t srv_mono_us(void) {
  return uv_hrtime() / 1000u;
}

void srv_log(struct srv_node *n, const char *level, const char *fmt, ...) {
  if (strcmp(level, "DEBUG") == 0 && !n->cfg.verbose)
    return;
  char when[32];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s.%03ldZ sabhad[%u] %s %s\n", when,
          (long)(ts.tv_nsec / 1000000), n->cfg.id, level, text);
}

static void srv_fatal(struct srv_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void srv_fatal(struct srv_node *n, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  srv_log(n, "FATAL", "%s; stopping (nothing unsynced was acknowledged)", text);
  fflush(stderr);
  /* Everything acknowledged is on disk: leaving at once is safe, and safer
   * than running on with a log in an unknown state. */
  _exit(1);
}

void srv_status(const struct srv_node *n, struct sabha_status *st) {
  sabha_engine_status(n->engine, st);
}

const struct srv_addr *srv_client_addr_of(const struct srv_node *n,
                                          uint32_t id) {
  for (uint32_t i = 0; i < n->cfg.n_peer_clients; i++)
    if (n->cfg.peer_clients[i].id == id)
      return &n->cfg.peer_clients[i];
  return NULL;
}

/* ---- latency histograms ---------------------------------------------------
 */

const double srv_latency_bounds_s[SRV_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

void srv_latency_observe(struct srv_latency *l, uint64_t us) {
  double s = (double)us / 1e6;
  size_t b = 0;
  while (b < SRV_LAT_BUCKETS && s > srv_latency_bounds_s[b])
    b++;
  l->counts[b]++;
  l->sum_s += s;
}

/* ---- requests -------------------------------------------------------------
 */

void srv_req_free(struct srv_req *r) {
  assert(r->where == SRV_IN_NONE);
  resp_buf_free(&r->reply);
  free(r->argv);
  free(r);
}

static void req_unlist(struct srv_req *r) {
  if (r->where != SRV_IN_NONE) {
    srv_list_remove(&r->glink);
    r->where = SRV_IN_NONE;
  }
}

void srv_req_done(struct srv_node *n, struct srv_req *r) {
  (void)n;
  req_unlist(r);
  r->state = SRV_REQ_DONE;
  if (r->c == NULL) {
    srv_req_free(r);
    return;
  }
  srv_client_flush(r->c);
}

void srv_req_fail(struct srv_node *n, struct srv_req *r, const char *msg) {
  resp_buf_reset(&r->reply);
  resp_write_error(&r->reply, msg);
  n->m.commands_failed++;
  srv_req_done(n, r);
}

void srv_wait_leader(struct srv_node *n, struct srv_req *r) {
  req_unlist(r);
  if (r->deadline_ms == 0)
    r->deadline_ms = uv_now(&n->loop) + n->cfg.leader_wait_ms;
  r->where = SRV_IN_WAIT_LEADER;
  /* In arrival order: a request coming back (refused by a node that was
   * not the leader after all) goes before those that arrived after it. */
  struct srv_link *at = &n->wait_leader;
  while (at->prev != &n->wait_leader &&
         SRV_OF(at->prev, struct srv_req, glink)->order > r->order)
    at = at->prev;
  srv_list_push(at, &r->glink);
}

void srv_dispatch(struct srv_node *n, struct srv_req *r) {
  assert(r->where == SRV_IN_NONE && r->c != NULL);
  if (!srv_list_empty(&n->wait_leader)) {
    srv_wait_leader(n, r); /* behind earlier commands, in order */
    return;
  }
  struct sabha_status st;
  srv_status(n, &st);
  if (st.role == SABHA_ROLE_LEADER) {
    srv_exec_leader(n, r);
    return;
  }
  char msg[160];
  if (r->c->forwarded_link) {
    /* Another node thinks we lead; it retries elsewhere (node_forward.c). */
    snprintf(msg, sizeof msg, "NOTLEADER %u", st.leader);
    srv_req_fail(n, r, msg);
    return;
  }
  if (st.leader == SABHA_NODE_NONE) {
    srv_wait_leader(n, r);
    return;
  }
  const struct srv_addr *a = srv_client_addr_of(n, st.leader);
  if (a == NULL) {
    snprintf(msg, sizeof msg,
             "TRYAGAIN the leader is node %u, whose client address this node "
             "does not know (set peer-clients)",
             st.leader);
    srv_req_fail(n, r, msg);
    return;
  }
  if (n->cfg.redirect == SRV_REDIRECT_MOVED) {
    snprintf(msg, sizeof msg, "MOVED 0 %s:%u", a->host, a->port);
    n->m.redirected++;
    srv_req_fail(n, r, msg);
    return;
  }
  srv_forward(n, r);
}

/* Dispatches the commands that waited for a leader, in their order. */
static void retry_waiting(struct srv_node *n) {
  if (srv_list_empty(&n->wait_leader))
    return;
  struct sabha_status st;
  srv_status(n, &st);
  if (st.role != SABHA_ROLE_LEADER && st.leader == SABHA_NODE_NONE)
    return;
  struct srv_link batch;
  srv_list_init(&batch);
  /* Move the list aside, so that srv_dispatch sees it empty and anything it
   * puts back goes behind what came before, in order. */
  batch.next = n->wait_leader.next;
  batch.prev = n->wait_leader.prev;
  batch.next->prev = &batch;
  batch.prev->next = &batch;
  srv_list_init(&n->wait_leader);
  while (!srv_list_empty(&batch)) {
    struct srv_req *r = SRV_OF(batch.next, struct srv_req, glink);
    srv_list_remove(&r->glink);
    r->where = SRV_IN_NONE;
    srv_dispatch(n, r);
  }
}

/* ---- the engine's inputs ---------------------------------------------------
 */

/* The idle handle does nothing but keep libuv from blocking in poll while
 * an input waits for srv_drain (which runs in the check phase). */
static void on_idle(uv_idle_t *h) {
  (void)h;
}

void srv_kick(struct srv_node *n) {
  n->work_due = true;
  if (!n->stopping && !uv_is_active((uv_handle_t *)&n->idle))
    uv_idle_start(&n->idle, on_idle);
}

static void on_peer_message(void *arg, const struct sabha_msg *m) {
  struct srv_node *n = arg;
  if (n->stopping)
    return;
  sabha_engine_step(n->engine, m);
  srv_kick(n);
}

static void on_transport_log(void *arg, enum transport_log_level level,
                             const char *text) {
  struct srv_node *n = arg;
  static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  srv_log(n, names[level <= TRANSPORT_LOG_ERROR ? level : 3], "peer: %s", text);
}

/* ---- applying
 * ---------------------------------------------------------------- */

static void session_reset(struct srv_client *c, uint64_t session) {
  if (c != NULL && c->session_state == SRV_SESSION_READY &&
      c->session == session) {
    c->session_state = SRV_SESSION_NONE;
    c->session = 0;
    c->next_seq = 0;
  }
}

/* A proposal whose outcome this node cannot learn any more. */
static void proposal_lost(struct srv_node *n, struct srv_req *r,
                          const char *msg) {
  req_unlist(r);
  n->m.proposals_failed++;
  if (r->cmd == NULL) { /* a REGISTER */
    struct srv_client *c = r->c;
    c->reg = NULL;
    srv_req_free(r);
    srv_session_failed(n, c, msg);
    return;
  }
  if (!r->is_app) /* app commands use no session: ids make retries safe */
    session_reset(r->c, r->session);
  srv_req_fail(n, r, msg);
}

static void proposal_applied(struct srv_node *n, struct srv_req *r,
                             const struct kvstore_result *res) {
  req_unlist(r);
  srv_latency_observe(&n->m.commit_latency, srv_mono_us() - r->started_us);
  if (r->cmd == NULL) {
    struct srv_client *c = r->c;
    c->reg = NULL;
    srv_req_free(r);
    if (res->kind == KVSTORE_REPLY_INT && res->integer > 0)
      srv_session_registered(n, c, (uint64_t)res->integer);
    else
      srv_session_failed(n, c,
                         res->kind == KVSTORE_REPLY_ERROR
                             ? res->error
                             : "ERR could not open a session");
    return;
  }
  if (res->kind == KVSTORE_REPLY_ERROR &&
      (strcmp(res->error, KVSTORE_ERR_SESSION) == 0 ||
       strcmp(res->error, KVSTORE_ERR_NO_SESSION) == 0 ||
       strcmp(res->error, KVSTORE_ERR_ORDER) == 0))
    session_reset(r->c, r->session);
  resp_buf_reset(&r->reply);
  srv_write_kv_result(&r->reply, res);
  srv_req_done(n, r);
}

static void app_proposal_applied(struct srv_node *n, struct srv_req *r,
                                 const struct app_reply *rep) {
  req_unlist(r);
  srv_latency_observe(&n->m.commit_latency, srv_mono_us() - r->started_us);
  resp_buf_reset(&r->reply);
  srv_write_app_reply(&r->reply, rep);
  srv_req_done(n, r);
}

/* What identifies an applied command among this node's proposals. */
struct applied_id {
  bool is_app;
  uint64_t session, seq; /* kvstore */
  uint64_t tag;          /* app */
  uint64_t stamp_ms;
};

static bool proposal_is(const struct srv_req *r, const struct applied_id *id) {
  if (r->is_app != id->is_app || r->stamp_ms != id->stamp_ms)
    return false;
  return id->is_app ? r->tag == id->tag
                    : r->session == id->session && r->seq == id->seq;
}

/* Finds the proposal an applied command answers. Both engines keep a
 * leader's proposals in the order it made them, so when one is applied,
 * those this node proposed before it and that are still waiting, of either
 * kind, were lost (cut from the log, or dropped from an unsent batch by a
 * leader change): they will never apply. Returns the match or NULL. */
static struct srv_req *match_proposal(struct srv_node *n,
                                      const struct applied_id *id) {
  struct srv_req *match = NULL;
  for (struct srv_link *l = n->proposals.next; l != &n->proposals;
       l = l->next) {
    struct srv_req *r = SRV_OF(l, struct srv_req, glink);
    if (proposal_is(r, id)) {
      match = r;
      break;
    }
  }
  if (match == NULL)
    return NULL; /* another leader's command */
  while (n->proposals.next != &match->glink)
    proposal_lost(n, SRV_OF(n->proposals.next, struct srv_req, glink),
                  "TRYAGAIN leadership changed before the write committed; "
                  "it was not applied");
  return match;
}

static void apply_app_command(struct srv_node *n, uint64_t index,
                              const uint8_t *cmd, size_t len) {
  struct app_reply rep;
  memset(&rep, 0, sizeof rep);
  int rc = app_apply(n->app, cmd, len, &rep);
  if (rc == SABHA_ENOMEM)
    srv_fatal(n, "out of memory applying entry %" PRIu64, index);
  struct app_decoded d;
  if (app_decode(cmd, len, &d) != 0 || srv_list_empty(&n->proposals))
    return;
  struct applied_id id = {
      .is_app = true, .tag = d.hdr.tag, .stamp_ms = d.hdr.now_ms};
  struct srv_req *r = match_proposal(n, &id);
  if (r == NULL)
    return;
  if (rc != 0) { /* never proposed so by this node: a read op or damage */
    memset(&rep, 0, sizeof rep);
    rep.kind = APP_REPLY_ERROR;
    rep.text_len = (uint16_t)snprintf(rep.text, sizeof rep.text,
                                      "ERR the command could not be applied");
  }
  app_proposal_applied(n, r, &rep);
}

/* Applies one command of a committed entry and answers the client that
 * waits for it here, if any. App commands (sm/app.h, told apart by their
 * magic byte) go to the applications machine, the rest to the store.
 * Commands are matched with this node's proposals by what identifies them,
 * not by index: Multi-Paxos packs several proposals into one slot. */
static void apply_command(struct srv_node *n, uint64_t index,
                          const uint8_t *cmd, size_t len) {
  if (app_is_command(cmd, len)) {
    apply_app_command(n, index, cmd, len);
    return;
  }
  struct kvstore_result res;
  memset(&res, 0, sizeof res);
  int rc = kvstore_apply(n->kv, cmd, len, &res);
  if (rc == SABHA_ENOMEM)
    srv_fatal(n, "out of memory applying entry %" PRIu64, index);
  struct kvstore_hdr hdr;
  if (kvstore_decode_hdr(cmd, len, &hdr) != 0 || srv_list_empty(&n->proposals))
    return;
  struct applied_id id = {.is_app = false,
                          .session = hdr.session,
                          .seq = hdr.seq,
                          .stamp_ms = hdr.now_ms};
  struct srv_req *r = match_proposal(n, &id);
  if (r != NULL)
    proposal_applied(n, r, &res);
}

static void apply_entry(struct srv_node *n, const struct sabha_entry *e) {
  if (e->index != n->applied + 1)
    srv_fatal(n,
              "engine contract: committed index %" PRIu64
              " handed out after applying %" PRIu64,
              e->index, n->applied);
  n->applied = e->index;
  n->m.commits++;
  size_t off = 0;
  const uint8_t *cmd;
  size_t len;
  int rc;
  while ((rc = sabha_batch_next(e, &off, &cmd, &len)) == 1)
    apply_command(n, e->index, cmd, len);
  if (rc < 0)
    srv_log(n, "ERROR",
            "entry %" PRIu64 " holds a malformed batch; its "
            "remaining commands are skipped on every node alike",
            e->index);
}

/* A fresh applications machine with this node's settings. */
static int new_app(const struct srv_node *n, struct app **out) {
  struct app_config ac = app_config_default;
  ac.dedup_max = n->cfg.dedup_max;
  return app_new(out, &ac);
}

/* Replaces the store and the applications machine with a snapshot's
 * (snapshot.h: "SND2", or an older node's bare "SKV1", which holds no
 * applications: they restart empty). Returns 0 or an error; on error the
 * state may be half replaced, so callers stop the node. */
static int restore_state(struct srv_node *n, const uint8_t *data, size_t len) {
  struct srv_snap_parts parts;
  int rc = srv_snap_open(data, len, &parts);
  if (rc == 0)
    rc = kvstore_restore(n->kv, parts.kv, parts.kv_len);
  if (rc != 0)
    return rc;
  if (parts.app != NULL)
    return app_restore(n->app, parts.app, parts.app_len);
  struct app *empty = NULL;
  rc = new_app(n, &empty);
  if (rc != 0)
    return rc;
  app_free(n->app);
  n->app = empty;
  return 0;
}

static void install_snapshot(struct srv_node *n, const struct sabha_ready *rd) {
  int rc = restore_state(n, rd->snapshot_data, rd->snapshot_size_bytes);
  if (rc != 0)
    srv_fatal(n, "the snapshot at index %" PRIu64 " does not restore: %s",
              rd->snapshot.index, sabha_strerror(rc));
  n->applied = rd->snapshot.index;
  n->m.snapshots_installed++;
  srv_log(n, "INFO", "installed a snapshot at index %" PRIu64,
          rd->snapshot.index);
  /* Proposals it covers are answered once a later one of this node's is
   * applied (they count as lost: their replies are not in the snapshot),
   * or when they time out. */
}

static void note_read(struct srv_node *n, const struct sabha_read_state *rs) {
  for (struct srv_link *l = n->reads.next; l != &n->reads; l = l->next) {
    struct srv_req *r = SRV_OF(l, struct srv_req, glink);
    if (r->read_id == rs->request_id) {
      r->has_read_index = true;
      r->read_index = rs->index;
      return;
    }
  }
}

static void serve_reads(struct srv_node *n) {
  struct srv_link *l = n->reads.next;
  while (l != &n->reads) {
    struct srv_req *r = SRV_OF(l, struct srv_req, glink);
    l = l->next;
    if (!r->has_read_index || r->read_index > n->applied)
      continue;
    req_unlist(r);
    srv_latency_observe(&n->m.read_latency, srv_mono_us() - r->started_us);
    n->m.reads++;
    r->state = SRV_REQ_READABLE;
    srv_client_flush(r->c);
  }
}

/* ---- compaction
 * ------------------------------------------------------------------- */

/* The state as one snapshot (snapshot.h), in a buffer the caller frees;
 * NULL when memory is short (compaction waits for the next chance). */
static uint8_t *snapshot_state(struct srv_node *n, size_t *size) {
  size_t kv_len = kvstore_snapshot_size(n->kv);
  size_t app_len = app_snapshot_size(n->app);
  size_t cap = srv_snap_size(kv_len, app_len);
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    srv_log(n, "WARN", "no memory for a snapshot of %zu bytes", cap);
    return NULL;
  }
  size_t kv_written = kvstore_snapshot(n->kv, srv_snap_kv_at(buf), kv_len);
  size_t app_written =
      app_snapshot(n->app, srv_snap_app_at(buf, kv_len), app_len);
  /* The sizes were exact: the parts must fill their places. */
  assert(kv_written == kv_len && app_written == app_len);
  (void)kv_written;
  (void)app_written;
  *size = srv_snap_seal(buf, kv_len, app_len);
  assert(*size == cap);
  return buf;
}

static void maybe_compact(struct srv_node *n) {
  if (n->cfg.compact_entries == 0)
    return;
  struct sabha_status st;
  srv_status(n, &st);
  if (n->applied < st.snapshot_index + n->cfg.compact_entries)
    return;
  struct sabha_entry ent;
  if (sabha_engine_entry(n->engine, n->applied, &ent) != 0)
    return;
  struct sabha_snapshot_meta meta = {.index = n->applied, .term = ent.term};
  size_t size = 0;
  uint8_t *buf = snapshot_state(n, &size);
  if (buf == NULL)
    return;
  uint64_t t0 = srv_mono_us();
  int rc = wal_save_snapshot(n->wal, &meta, buf, size);
  if (rc == 0) {
    rc = sabha_engine_compact(n->engine, meta.index, buf, size);
    if (rc != 0 && rc != SABHA_ECOMPACTED)
      srv_log(n, "WARN", "engine compaction at %" PRIu64 ": %s", meta.index,
              sabha_strerror(rc));
    n->m.snapshots_taken++;
    srv_log(n, "INFO",
            "snapshot at index %" PRIu64 " (%zu bytes) in %" PRIu64 " ms",
            meta.index, size, (srv_mono_us() - t0) / 1000u);
  } else if (rc != SABHA_ECOMPACTED) {
    free(buf);
    srv_fatal(n, "cannot save a snapshot: %s", wal_errmsg(n->wal));
  }
  free(buf);
}

/* ---- the ready cycle
 * ------------------------------------------------------------- */

static void send_all(struct srv_node *n, const struct sabha_msg *msgs,
                     size_t count) {
  for (size_t k = 0; k < count; k++) {
    int rc = transport_send(&n->transport, &msgs[k]);
    if (rc == SABHA_EINVAL && msgs[k].to != n->cfg.id)
      srv_log(n, "DEBUG", "cannot send to node %u: %s", msgs[k].to,
              sabha_strerror(rc));
  }
}

static void check_leader(struct srv_node *n) {
  struct sabha_status st;
  srv_status(n, &st);
  if (st.leader != n->last_leader || st.role != n->last_role) {
    bool was_leader = n->last_role == SABHA_ROLE_LEADER;
    if (st.leader != n->last_leader) {
      n->m.leader_changes++;
      if (st.leader != SABHA_NODE_NONE)
        srv_log(n, "INFO", "leader is node %u (term %" PRIu64 ")%s", st.leader,
                st.term, st.leader == n->cfg.id ? ": this node" : "");
    }
    n->last_leader = st.leader;
    n->last_role = st.role;
    srv_fwd_leader_changed(n);
    if (was_leader && st.role != SABHA_ROLE_LEADER) {
      /* Reads awaiting a ReadIndex here will not get one: ask the new
       * leader. Reads have no effect, so trying again is always safe. */
      struct srv_link *l = n->reads.next;
      while (l != &n->reads) {
        struct srv_req *r = SRV_OF(l, struct srv_req, glink);
        l = l->next;
        if (r->has_read_index && r->read_index <= n->applied)
          continue;
        r->has_read_index = false;
        srv_wait_leader(n, r);
      }
    }
  }
  retry_waiting(n);
}

/* Requests held back while a batch was carried out, in their order. */
static void run_deferred(struct srv_node *n) {
  while (!srv_list_empty(&n->deferred)) {
    struct srv_req *r = SRV_OF(n->deferred.next, struct srv_req, glink);
    srv_list_remove(&r->glink);
    r->where = SRV_IN_NONE;
    srv_exec_leader(n, r);
  }
}

/* Whether a ready batch must be fsynced before its messages leave and its
 * commands are answered. Entries, a truncation, a snapshot, a new term or
 * vote (promise), and messages the engine holds until the batch is durable
 * all need it. A batch that only moves the commit index does not: the
 * commit index is a hint (engine.h), a restarted node learns it again from
 * the leader, and what a reply depends on, the entry being on a majority's
 * disks, was made durable when the entry was appended. Its record is still
 * written, and reaches the disk with the next fsync. On a leader this halves
 * the fsyncs per write: one when an entry is appended, none when it
 * commits. */
static bool ready_needs_sync(struct srv_node *n, const struct sabha_ready *rd) {
  bool hard = rd->has_hard_state &&
              (rd->hard_state.term != n->hs_term ||
               rd->hard_state.vote != n->hs_vote);
  if (rd->has_hard_state) {
    n->hs_term = rd->hard_state.term;
    n->hs_vote = rd->hard_state.vote;
  }
  return hard || rd->n_entries > 0 || rd->truncate_from != 0 ||
         rd->has_snapshot || rd->n_msgs_after_persist > 0;
}

static void srv_drain(struct srv_node *n) {
  n->work_due = false;
  for (uint32_t k = 0; k < SRV_READIES_PER_DRAIN && !n->stopping &&
                       sabha_engine_has_ready(n->engine);
       k++) {
    struct sabha_ready rd;
    sabha_engine_ready(n->engine, &rd);
    n->in_ready = true; /* no engine calls until advance: see DEFERRED */
    /* 1. Messages that need nothing durable (the leader's appends). */
    send_all(n, rd.msgs, rd.n_msgs);
    /* 2. Persist, with one fsync for the whole batch, when the batch holds
     * something that must be durable. */
    bool sync = ready_needs_sync(n, &rd);
    int rc = wal_append_ready(n->wal, &rd);
    if (rc == 0 && sync)
      rc = wal_sync(n->wal);
    if (rc != 0)
      srv_fatal(n, "cannot write the log: %s (%s)", sabha_strerror(rc),
                wal_errmsg(n->wal));
    /* 3. Now the votes and acknowledgements may leave. */
    send_all(n, rd.msgs_after_persist, rd.n_msgs_after_persist);
    /* 4. Snapshot, then committed entries in order. */
    if (rd.has_snapshot)
      install_snapshot(n, &rd);
    for (size_t i = 0; i < rd.n_committed; i++)
      apply_entry(n, &rd.committed[i]);
    /* 5. Reads: noted here, served below once their index is applied. */
    for (size_t i = 0; i < rd.n_reads; i++)
      note_read(n, &rd.reads[i]);
    /* 6. */
    sabha_engine_advance(n->engine, &rd);
    n->in_ready = false;
    run_deferred(n);
  }
  serve_reads(n);
  maybe_compact(n);
  check_leader(n);
}

static void on_check(uv_check_t *h) {
  struct srv_node *n = h->data;
  if (n->stopping)
    return;
  if (n->work_due || sabha_engine_has_ready(n->engine))
    srv_drain(n);
  srv_clients_resume(n);
  if (!n->work_due && !sabha_engine_has_ready(n->engine))
    uv_idle_stop(&n->idle);
}

/* ---- deadlines
 * --------------------------------------------------------------------- */

static void scan_deadlines(struct srv_node *n, uint64_t now) {
  char msg[160];
  struct srv_link *l = n->wait_leader.next;
  while (l != &n->wait_leader) {
    struct srv_req *r = SRV_OF(l, struct srv_req, glink);
    l = l->next;
    if (r->deadline_ms > now)
      continue;
    n->m.no_leader++;
    snprintf(msg, sizeof msg,
             "TRYAGAIN no leader: none was elected within %u ms; retry",
             n->cfg.leader_wait_ms);
    srv_req_fail(n, r, msg);
  }
  uint64_t timeout = n->cfg.request_timeout_ms;
  l = n->proposals.next;
  while (l != &n->proposals) {
    struct srv_req *r = SRV_OF(l, struct srv_req, glink);
    l = l->next;
    if (r->arrival_ms + timeout > now)
      continue;
    n->m.timeouts++;
    proposal_lost(n, r,
                  "TRYAGAIN the write was not committed in time; its outcome "
                  "is unknown");
  }
  l = n->reads.next;
  while (l != &n->reads) {
    struct srv_req *r = SRV_OF(l, struct srv_req, glink);
    l = l->next;
    if (r->arrival_ms + timeout > now)
      continue;
    n->m.timeouts++;
    srv_req_fail(n, r, "TRYAGAIN the read could not be confirmed in time");
  }
  srv_fwd_scan(n, now);
}

static void on_tick(uv_timer_t *h) {
  struct srv_node *n = h->data;
  if (n->stopping)
    return;
  uint64_t now = uv_now(&n->loop);
  sabha_engine_tick(n->engine, now);
  srv_kick(n);
  if (now >= n->next_timeout_scan_ms) {
    n->next_timeout_scan_ms = now + SRV_TIMEOUT_SCAN_MS;
    scan_deadlines(n, now);
  }
}

/* ---- shutdown
 * ------------------------------------------------------------------------ */

static void on_closed_noop(uv_handle_t *h) {
  (void)h;
}

static void on_transport_closed(struct transport *t) {
  struct srv_node *n = t->data;
  n->transport_open = false;
}

static void srv_stop(struct srv_node *n) {
  if (n->stopping)
    return;
  n->stopping = true;
  srv_log(n, "INFO", "shutting down");
  if (wal_sync(n->wal) != 0)
    srv_log(n, "ERROR", "final sync failed: %s", wal_errmsg(n->wal));
  uv_close((uv_handle_t *)&n->tick_timer, on_closed_noop);
  uv_close((uv_handle_t *)&n->check, on_closed_noop);
  uv_close((uv_handle_t *)&n->idle, on_closed_noop);
  uv_close((uv_handle_t *)&n->sig_term, on_closed_noop);
  uv_close((uv_handle_t *)&n->sig_int, on_closed_noop);
  if (n->client_listening)
    uv_close((uv_handle_t *)&n->client_listener, on_closed_noop);
  if (n->http_listening)
    uv_close((uv_handle_t *)&n->http_listener, on_closed_noop);
  while (!srv_list_empty(&n->clients))
    srv_client_close(SRV_OF(n->clients.next, struct srv_client, link));
  while (!srv_list_empty(&n->https))
    srv_http_close(SRV_OF(n->https.next, struct srv_http_conn, link));
  srv_fwd_close_all(n);
  if (n->transport_open)
    transport_close(&n->transport, on_transport_closed);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct srv_node *n = h->data;
  srv_log(n, "INFO", "signal %d", signum);
  srv_stop(n);
}

/* ---- start-up
 * ---------------------------------------------------------------------- */

static int open_storage(struct srv_node *n, struct sabha_persisted *p) {
  struct wal_options wo;
  wal_options_init(&wo, n->cfg.data_dir);
  wo.segment_size_bytes = n->cfg.wal_segment_bytes;
  wo.discard_corrupt = n->cfg.discard_corrupt_log;
  char err[WAL_ERRMSG_MAX];
  int rc = wal_open(&n->wal, &wo, p, err, sizeof err);
  if (rc != 0) {
    srv_log(n, "FATAL", "cannot recover the log in %s: %s: %s", n->cfg.data_dir,
            sabha_strerror(rc), err);
    if (rc == SABHA_ECORRUPT)
      srv_log(n, "FATAL",
              "the log is damaged before its tail, so acknowledged data "
              "may be at stake; refusing to start. To give this node's log "
              "up and rejoin from its peers, restart it with "
              "--discard-corrupt-log (see docs/operations.md)");
    n->wal = NULL;
    return rc == SABHA_ECORRUPT ? 2 : 1;
  }
  if (err[0] != '\0')
    srv_log(n, "WARN", "log recovery: %s", err);
  return 0;
}

static int open_state(struct srv_node *n, const struct sabha_persisted *p) {
  struct kvstore_config kc = kvstore_config_default;
  randombytes_buf(kc.hash_key, sizeof kc.hash_key);
  int rc = kvstore_new(&n->kv, &kc);
  if (rc != 0) {
    srv_log(n, "FATAL", "cannot create the store: %s", sabha_strerror(rc));
    return 1;
  }
  n->applied = 0;
  rc = new_app(n, &n->app);
  if (rc != 0) {
    srv_log(n, "FATAL", "cannot create the applications machine: %s",
            sabha_strerror(rc));
    return 1;
  }
  if (p->has_snapshot) {
    rc = restore_state(n, p->snapshot_data, p->snapshot_size_bytes);
    if (rc != 0) {
      srv_log(n, "FATAL", "the snapshot in %s does not restore: %s",
              n->cfg.data_dir, sabha_strerror(rc));
      return 2;
    }
    n->applied = p->snapshot.index;
  }
  uint32_t voters[SABHA_NODES_MAX];
  for (uint32_t i = 0; i < n->cfg.n_peers; i++)
    voters[i] = n->cfg.peers[i].id;
  struct sabha_config ec;
  sabha_config_init(&ec, n->cfg.id, voters, n->cfg.n_peers);
  ec.election_timeout_ms_min = n->cfg.election_timeout_ms;
  ec.election_timeout_ms_max = 2 * n->cfg.election_timeout_ms;
  ec.heartbeat_ms = n->cfg.heartbeat_ms;
  ec.commands_per_slot_max = n->cfg.slot_commands_max;
  randombytes_buf(&ec.seed, sizeof ec.seed);
  if (codec_check_config(&ec) != 0) {
    srv_log(n, "FATAL", "engine limits do not fit the wire codec");
    return 1;
  }
  struct sabha_persisted pp = *p;
  pp.applied = n->applied;
  rc = sabha_engine_new(&n->engine, n->cfg.protocol, &ec, &pp);
  if (rc != 0) {
    srv_log(n, "FATAL", "the %s engine refused to start from %s: %s",
            n->cfg.protocol, n->cfg.data_dir, sabha_strerror(rc));
    return 2;
  }
  wal_release_recovered(n->wal);
  return 0;
}

static int open_transport(struct srv_node *n) {
  struct transport_config tc;
  transport_config_init(&tc, n->cfg.id, n->cfg.cluster_id, n->cfg.protocol);
  struct transport_peer_config peers[SABHA_NODES_MAX];
  uint32_t np = 0;
  uint16_t my_port = 0;
  for (uint32_t i = 0; i < n->cfg.n_peers; i++) {
    const struct srv_addr *a = &n->cfg.peers[i];
    if (a->id == n->cfg.id) {
      my_port = a->port;
      continue;
    }
    peers[np++] = (struct transport_peer_config){a->id, a->host, a->port};
  }
  tc.peers = peers;
  tc.n_peers = np;
  tc.listen_host = n->cfg.bind;
  tc.listen_port = my_port;
  if (n->cfg.secret_bytes > 0) {
    tc.secret = n->cfg.secret;
    tc.secret_bytes = n->cfg.secret_bytes;
  }
  tc.on_message = on_peer_message;
  tc.on_log = on_transport_log;
  tc.arg = n;
  randombytes_buf(&tc.seed, sizeof tc.seed);
  n->transport.data = n;
  int rc = transport_init(&n->loop, &n->transport, &tc);
  n->transport_open = true;
  n->transport.data = n;
  if (rc != 0) {
    srv_log(n, "FATAL", "cannot start the peer transport on %s:%u: %s",
            n->cfg.bind, my_port, transport_errmsg(&n->transport));
    return 1;
  }
  return 0;
}

static int start_loop(struct srv_node *n) {
  uv_timer_init(&n->loop, &n->tick_timer);
  n->tick_timer.data = n;
  uv_check_init(&n->loop, &n->check);
  n->check.data = n;
  uv_idle_init(&n->loop, &n->idle);
  n->idle.data = n;
  uv_signal_init(&n->loop, &n->sig_term);
  n->sig_term.data = n;
  uv_signal_init(&n->loop, &n->sig_int);
  n->sig_int.data = n;
  uv_signal_start(&n->sig_term, on_signal, SIGTERM);
  uv_signal_start(&n->sig_int, on_signal, SIGINT);
  uv_check_start(&n->check, on_check);
  uv_timer_start(&n->tick_timer, on_tick, 0, n->cfg.tick_ms);
  return 0;
}

int srv_run(const struct srv_config *cfg) {
  if (sodium_init() < 0) {
    fprintf(stderr, "sabhad: libsodium failed to initialize\n");
    return 1;
  }
  struct srv_node *n = calloc(1, sizeof *n);
  if (n == NULL)
    return 1;
  n->cfg = *cfg;
  srv_list_init(&n->clients);
  srv_list_init(&n->https);
  srv_list_init(&n->wait_leader);
  srv_list_init(&n->deferred);
  srv_list_init(&n->proposals);
  srv_list_init(&n->reads);
  srv_list_init(&n->fwds);
  resp_buf_init(&n->scratch, SRV_OUT_BYTES_MAX);
  n->started_ms = srv_wall_ms();
  n->next_client_id = 1;
  n->next_read_id = 1;
  randombytes_buf(&n->next_tag, sizeof n->next_tag);
  n->next_tag = ((uint64_t)cfg->id << 56) | (n->next_tag >> 8);
  n->last_role = SABHA_ROLE_FOLLOWER;

  struct sabha_persisted p;
  int rc = open_storage(n, &p);
  if (rc == 0) {
    n->hs_term = p.hard_state.term;
    n->hs_vote = p.hard_state.vote;
    rc = open_state(n, &p);
  }
  if (rc != 0) {
    wal_close(n->wal);
    kvstore_free(n->kv);
    if (n->app != NULL)
      app_free(n->app);
    resp_buf_free(&n->scratch);
    free(n);
    return rc;
  }
  struct wal_stats ws;
  wal_stats(n->wal, &ws);
  srv_log(n, "INFO",
          "%s node %u of %u: recovered hard state term %" PRIu64
          ", vote %u, commit %" PRIu64 "; log %" PRIu64 "..%" PRIu64
          ", snapshot at %" PRIu64 "%s",
          n->cfg.protocol, n->cfg.id, n->cfg.n_peers, p.hard_state.term,
          p.hard_state.vote, p.hard_state.commit, ws.first_index, ws.last_index,
          ws.snapshot_index,
          ws.recovered_tail_bytes > 0 ? " (a torn tail was cut)" : "");

  uv_loop_init(&n->loop);
  char err[256];
  rc = open_transport(n);
  if (rc == 0 && srv_clients_listen(n, err, sizeof err) != 0) {
    srv_log(n, "FATAL", "%s", err);
    rc = 1;
  }
  if (rc == 0 && srv_http_listen(n, err, sizeof err) != 0) {
    srv_log(n, "FATAL", "%s", err);
    rc = 1;
  }
  start_loop(n);
  if (rc == 0) {
    srv_log(n, "INFO",
            "serving: peers on %s:%u, clients on %s:%u, http on %s:%u, "
            "data in %s",
            n->cfg.bind, transport_port(&n->transport), n->cfg.bind,
            n->cfg.client_port, n->cfg.bind, n->cfg.http_port, n->cfg.data_dir);
    uv_run(&n->loop, UV_RUN_DEFAULT);
  } else {
    srv_stop(n);
    uv_run(&n->loop, UV_RUN_DEFAULT);
  }
  if (!n->stopping)
    srv_stop(n);
  uv_run(&n->loop, UV_RUN_DEFAULT);
  int close_rc = uv_loop_close(&n->loop);
  if (close_rc != 0)
    srv_log(n, "WARN", "event loop closed with handles open: %s",
            uv_strerror(close_rc));
  int sync_rc = wal_sync(n->wal);
  wal_close(n->wal);
  sabha_engine_free(n->engine);
  kvstore_free(n->kv);
  if (n->app != NULL)
    app_free(n->app);
  resp_buf_free(&n->scratch);
  free(n->enc);
  free(n->app_cmds);
  free(n->argv);
  free(n->inline_scratch);
  srv_log(n, "INFO", "stopped");
  free(n);
  if (rc == 0 && sync_rc != 0)
    rc = 1;
  return rc;
}
