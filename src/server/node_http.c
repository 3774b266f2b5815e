/* The node's HTTP endpoints: /metrics (Prometheus text), /status (JSON) and
 * /health, for operators, Prometheus and `sabha cluster status`; and the
 * key-value API under /v1/ (node_kv.c), which keeps connections alive.
 *
 * One operator request per connection (http.h: Connection: close),
 * answered from the node's live state on the loop thread. Bounded so that these
 * endpoints keep answering whoever else connects: at most SRV_HTTP_CONNS_MAX
 * connections at once, the oldest idle or half-sent one making room for a
 * new one (never one being answered);
 * a request head of 8 KiB at most (http.h) that must be complete within
 * SRV_HTTP_HEAD_TIMEOUT_MS (else 408). docs/operations.md lists every
 * metric. With tls on, the port speaks only HTTPS: each connection's session
 * (src/net/tls.h) decrypts into the request buffer, and its handshake
 * flights and then the response go out one write at a time. */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sabha/error.h"
#include "server/http.h"
#include "server/node_internal.h"
#include "sm/kvstore.h"

/* SRV_HTTP_OUT_BYTES_MAX as the log line and the metric's help say it. */
#define HTTP_OUT_BYTES_TEXT "32 MiB"
_Static_assert(SRV_HTTP_OUT_BYTES_MAX == 32u << 20,
               "HTTP_OUT_BYTES_TEXT says 32 MiB");

/* ---- /status ------------------------------------------------------------- */

/* A member's client address as this node knows it, or "". */
static void member_client_addr(const struct srv_node *n, uint32_t id, char *out,
                               size_t size) {
  out[0] = '\0';
  for (uint32_t i = 0; i < n->cfg.n_peer_clients; i++)
    if (n->cfg.peer_clients[i].id == id)
      snprintf(out, size, "%s:%u", n->cfg.peer_clients[i].host,
               n->cfg.peer_clients[i].port);
}

/* ,"config_index":N,"removed":false,"members":[{"id":1,"addr":"HOST:PORT",
 * "role":"voter","match":N,"caught_up":true},...] (match and caught_up
 * as this node knows them: a leader's view, 0 and false elsewhere). */
static void write_members_json(struct srv_node *n,
                               const struct sabha_status *st,
                               struct resp_buf *b) {
  struct sabha_membership m;
  sabha_engine_members(rt_engine(n->rt), &m);
  resp_buf_printf(b,
                  ",\"config_index\":%" PRIu64 ",\"removed\":%s,"
                  "\"members\":[",
                  m.index, st->removed ? "true" : "false");
  for (uint32_t i = 0; i < m.n; i++) {
    const struct sabha_member *x = &m.members[i];
    char addr[96];
    member_client_addr(n, x->id, addr, sizeof addr);
    const char *role = sabha_member_role_name(x->role);
    resp_buf_printf(b, "%s{\"id\":%u,\"addr\":", i > 0 ? "," : "", x->id);
    http_json_string(b, addr, strlen(addr));
    resp_buf_printf(b, ",\"role\":");
    http_json_string(b, role, strlen(role));
    resp_buf_printf(b, ",\"match\":%" PRIu64 ",\"caught_up\":%s}", x->match,
                    x->caught_up ? "true" : "false");
  }
  resp_buf_printf(b, "]");
}

/* Several groups: the top-level fields above are group 0's; each group's
 * role, leader and indexes follow as an object of their own (the document
 * loses its closing brace and newline to make room). */
static void write_groups_json(struct srv_node *n, struct resp_buf *b) {
  assert(b->len >= 2 && b->data[b->len - 2] == '}');
  b->len -= 2;
  resp_buf_printf(b, ",\"groups\":[");
  for (uint32_t g = 0; g < n->n_groups; g++) {
    struct sabha_status st;
    rt_status(n->groups[g], &st);
    const char *role = sabha_role_name(st.role);
    resp_buf_printf(b, "%s{\"group\":%u,\"role\":", g > 0 ? "," : "", g);
    http_json_string(b, role, strlen(role));
    resp_buf_printf(b,
                    ",\"term\":%" PRIu64 ",\"leader\":%u,\"commit\":%" PRIu64
                    ",\"applied\":%" PRIu64 ",\"keys\":%" PRIu64 "}",
                    st.term, st.leader, st.commit,
                    rt_applied_index(n->groups[g]),
                    kvstore_dbsize(rt_kvstore(n->groups[g])));
  }
  resp_buf_printf(b, "]}\n");
}

void srv_write_status_json(struct srv_node *n, struct resp_buf *b) {
  struct sabha_status st;
  rt_status(n->rt, &st);
  struct wal_stats ws;
  rt_wal_stats(n->rt, &ws);
  char leader_client[96] = "";
  for (uint32_t i = 0; i < n->cfg.n_peer_clients; i++)
    if (n->cfg.peer_clients[i].id == st.leader)
      snprintf(leader_client, sizeof leader_client, "%s:%u",
               n->cfg.peer_clients[i].host, n->cfg.peer_clients[i].port);
  resp_buf_printf(b, "{\"id\":%u,\"protocol\":", n->cfg.id);
  http_json_string(b, n->cfg.protocol, strlen(n->cfg.protocol));
  resp_buf_printf(b, ",\"cluster_id\":");
  http_json_string(b, n->cfg.cluster_id, strlen(n->cfg.cluster_id));
  const char *role = sabha_role_name(st.role);
  resp_buf_printf(b, ",\"role\":");
  http_json_string(b, role, strlen(role));
  resp_buf_printf(b,
                  ",\"term\":%" PRIu64 ",\"vote\":%u,\"leader\":%u,"
                  "\"leader_client\":",
                  st.term, st.vote, st.leader);
  http_json_string(b, leader_client, strlen(leader_client));
  write_members_json(n, &st, b);
  resp_buf_printf(
      b,
      ",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"first_index\":%" PRIu64
      ",\"last_index\":%" PRIu64 ",\"snapshot_index\":%" PRIu64
      ",\"elections_started\":%" PRIu64 ",\"elections_won\":%" PRIu64
      ",\"nodes\":%u,\"peers_connected\":%" PRIu64
      ",\"clients\":%u,\"keys\":%" PRIu64 ",\"wal_bytes\":%" PRIu64
      ",\"wal_segments\":%" PRIu64 ",\"client_port\":%u,\"http_port\":%u"
      ",\"pid\":%ld,\"uptime_s\":%" PRIu64 "}\n",
      st.commit, rt_applied_index(n->rt), st.first_index, st.last_index,
      st.snapshot_index, st.elections_started, st.elections_won, n->cfg.n_peers,
      n->transport.stats.peers_connected, rt_n_clients(n->rt),
      kvstore_dbsize(rt_kvstore(n->rt)), ws.bytes, ws.segments,
      n->cfg.client_port, n->cfg.http_port, (long)getpid(),
      (srv_wall_ms() - n->started_ms) / 1000u);
  if (n->n_groups > 1)
    write_groups_json(n, b);
}

/* ---- /metrics -------------------------------------------------------------
 */

static void counter(struct resp_buf *b, const char *name, const char *help,
                    uint64_t v) {
  http_prom_counter(b, name, help, v);
}

/* One counter family labelled by reason. */
struct by_reason {
  const char *reason;
  uint64_t count;
};

static void counters_by_reason(struct resp_buf *b, const char *name,
                               const char *help, const struct by_reason *v,
                               size_t n) {
  http_prom_header(b, name, "counter", help);
  for (size_t i = 0; i < n; i++) {
    struct http_prom_label l = {"reason", v[i].reason};
    http_prom_sample_u64(b, name, &l, 1, v[i].count);
  }
}

static void gauge(struct resp_buf *b, const char *name, const char *help,
                  double v) {
  http_prom_gauge(b, name, help, v);
}

static void latency_histogram(struct resp_buf *b, const char *name,
                              const char *help, const struct rt_latency *l) {
  http_prom_header(b, name, "histogram", help);
  struct http_prom_histogram h = {.bounds_upper = rt_latency_bounds_s,
                                  .counts = l->counts,
                                  .n_bounds = RT_LAT_BUCKETS,
                                  .sum = l->sum_s};
  http_prom_histogram(b, name, NULL, 0, &h);
}

static void fsync_histogram(struct resp_buf *b, const struct wal_stats *ws) {
  double bounds[WAL_FSYNC_HIST_BUCKETS - 1];
  for (size_t i = 0; i + 1 < WAL_FSYNC_HIST_BUCKETS; i++)
    bounds[i] = (double)(2ull << i) / 1e6; /* bucket i ends at 2^(i+1) us */
  struct http_prom_histogram h = {.bounds_upper = bounds,
                                  .counts = ws->fsync_us_hist,
                                  .n_bounds = WAL_FSYNC_HIST_BUCKETS - 1,
                                  .sum = (double)ws->fsync_us_total / 1e6};
  http_prom_header(b, "sabha_wal_fsync_seconds", "histogram",
                   "Latency of the WAL's fsyncs (one per ready batch: group "
                   "commit)");
  http_prom_histogram(b, "sabha_wal_fsync_seconds", NULL, 0, &h);
}

/* Every client and HTTP limit, and what each did (docs/operations.md,
 * "Limits"). */
static void write_client_limits(struct srv_node *n, struct resp_buf *b) {
  const struct rt_metrics *m = rt_metrics(n->rt);
  const struct rt_config *cfg = rt_config(n->rt);
  struct rt_clients_memory mem;
  rt_clients_memory(n->rt, &mem);
  gauge(b, "sabha_clients_max", "clients-max: client connections allowed",
        cfg->clients_max);
  gauge(b, "sabha_forwarding_links",
        "Other nodes' forwarding links among the clients", mem.links);
  counter(b, "sabha_clients_refused_total",
          "Connections refused: clients-max reached (-ERR max number of "
          "clients reached), or protected mode",
          m->clients_refused);
  counter(b, "sabha_clients_probation_evicted_total",
          "Connections past clients-max that did not say SABHA.FORWARDED, "
          "pushed out by a newer one",
          m->probation_evicted);
  counter(b, "sabha_forwarding_link_proofs_refused_total",
          "Connections that said SABHA.FORWARDED with a wrong or missing "
          "proof of the cluster secret, not taken for forwarding links",
          m->link_proofs_refused);
  gauge(b, "sabha_client_timeout_seconds",
        "timeout: idle clients closed "
        "after this (0: never)",
        cfg->idle_timeout_s);
  counter(b, "sabha_clients_timed_out_total", "Idle clients closed",
          m->clients_timed_out);
  http_prom_header(b, "sabha_client_output_buffer_limit_bytes", "gauge",
                   "client-output-buffer-limit: hard, and soft for "
                   "sabha_client_output_buffer_soft_seconds (0: none)");
  struct http_prom_label lim = {"limit", "hard"};
  http_prom_sample_u64(b, "sabha_client_output_buffer_limit_bytes", &lim, 1,
                       cfg->out_hard_bytes);
  lim.value = "soft";
  http_prom_sample_u64(b, "sabha_client_output_buffer_limit_bytes", &lim, 1,
                       cfg->out_soft_bytes);
  gauge(b, "sabha_client_output_buffer_soft_seconds",
        "How long a client may stay past the soft output limit",
        cfg->out_soft_s);
  counter(b, "sabha_client_output_buffer_disconnects_total",
          "Clients closed by client-output-buffer-limit", m->out_limit_closed);
  gauge(b, "sabha_client_query_buffer_limit_bytes", "client-query-buffer-limit",
        (double)cfg->query_bytes_max);
  counter(b, "sabha_client_query_buffer_disconnects_total",
          "Clients closed by client-query-buffer-limit", m->query_limit_closed);
  gauge(b, "sabha_client_recent_max_input_buffer_bytes",
        "Largest unparsed input of a client in the last 5-10 s",
        (double)mem.recent_max_input_bytes);
  gauge(b, "sabha_client_recent_max_output_buffer_bytes",
        "Largest unsent replies of a client in the last 5-10 s",
        (double)mem.recent_max_output_bytes);
  gauge(b, "sabha_clients_memory_bytes",
        "Bytes all clients' buffers hold (forwarding links aside)",
        (double)mem.total_bytes);
  gauge(b, "sabha_clients_memory_max_bytes",
        "maxmemory-clients: the budget for them (0: none)",
        (double)cfg->clients_memory_max);
  gauge(b, "sabha_clients_memory_paused",
        "Clients the budget keeps from being read", mem.paused);
  counter(b, "sabha_clients_memory_pauses_total",
          "Times the budget stopped reading a client", m->memory_paused);
  counter(b, "sabha_clients_memory_disconnects_total",
          "Clients closed by the budget (maxmemory-clients)", m->memory_closed);
  gauge(b, "sabha_http_connections", "HTTP connections open", n->n_http);
  gauge(b, "sabha_http_connections_max", "HTTP connections allowed",
        SRV_HTTP_CONNS_MAX);
  counter(b, "sabha_http_head_timeouts_total",
          "HTTP requests answered 408: the head took too long",
          n->http_head_timeouts);
  counter(
      b, "sabha_http_output_overflows_total",
      "HTTP connections closed: a response would pass the " HTTP_OUT_BYTES_TEXT
      " of responses not yet written",
      n->http_out_overflows);
  counter(b, "sabha_http_kv_requests_total",
          "HTTP key-value requests handed to the runtime", n->http_kv_requests);
  counter(b, "sabha_http_kv_batches_total",
          "Groups of those one connection started in one loop turn "
          "(requests / batches: how deep clients pipeline)",
          n->http_kv_batches);
  counter(b, "sabha_http_replies_too_big_total",
          "HTTP requests answered 500: the reply was larger than the API "
          "takes in (64 MiB)",
          n->http_replies_too_big);
  const struct by_reason dropped[] = {{"evicted", n->http_evicted},
                                      {"full", n->http_refused}};
  counters_by_reason(b, "sabha_http_connections_dropped_total",
                     "HTTP connections dropped with every slot taken: evicted "
                     "(an idle one, else a half-sent head or body: 408), "
                     "full (the new one: every other was being answered)",
                     dropped, 2);
}

/* The membership in force: one sample per member of its role and (on a
 * leader) its progress. */
static void write_members_metrics(struct srv_node *n,
                                  const struct sabha_status *st,
                                  struct resp_buf *b) {
  struct sabha_membership m;
  sabha_engine_members(rt_engine(n->rt), &m);
  gauge(b, "sabha_config_index",
        "Log index of the membership in force (0: the configured one)",
        (double)m.index);
  gauge(b, "sabha_removed", "1 when this node was removed from the group",
        st->removed);
  http_prom_header(b, "sabha_member", "gauge",
                   "1 for each member of the group, by id, address and "
                   "role (voter or learner)");
  for (uint32_t i = 0; i < m.n; i++) {
    char id[16], addr[96];
    snprintf(id, sizeof id, "%u", m.members[i].id);
    member_client_addr(n, m.members[i].id, addr, sizeof addr);
    struct http_prom_label l[3] = {
        {"id", id},
        {"addr", addr},
        {"role", sabha_member_role_name(m.members[i].role)}};
    http_prom_sample_u64(b, "sabha_member", l, 3, 1);
  }
  http_prom_header(b, "sabha_member_match_index", "gauge",
                   "On the leader: the last index known replicated on each "
                   "member");
  for (uint32_t i = 0; i < m.n; i++) {
    char id[16];
    snprintf(id, sizeof id, "%u", m.members[i].id);
    struct http_prom_label l = {"id", id};
    http_prom_sample_u64(b, "sabha_member_match_index", &l, 1,
                         m.members[i].match);
  }
}

/* One gauge family of the round trips measured, by peer: each smoothed
 * round trip, or (`var`) its deviation, in seconds. */
static void peer_gauges(struct resp_buf *b, const char *name, const char *help,
                        const struct rt_timing_info *ti, bool var) {
  http_prom_header(b, name, "gauge", help);
  for (uint32_t i = 0; i < ti->n_peers; i++) {
    char id[16];
    snprintf(id, sizeof id, "%u", ti->peers[i].id);
    struct http_prom_label l = {"peer", id};
    uint64_t us = var ? ti->peers[i].rttvar_us : ti->peers[i].srtt_us;
    http_prom_sample_double(b, name, &l, 1, (double)us / 1e6);
  }
}

/* Timing in force (adaptive timing changes it) and the round trips
 * measured to each peer. */
static void write_timing_metrics(struct srv_node *n, struct resp_buf *b) {
  struct rt_timing_info ti;
  rt_timing_info(n->rt, &ti);
  gauge(b, "sabha_timing_adaptive", "1 when adaptive timing is on",
        ti.mode == RT_TIMING_ADAPTIVE);
  gauge(b, "sabha_election_timeout_seconds",
        "Election timeout in force (its minimum; the maximum is twice it "
        "with adaptive timing)",
        ti.timing.election_timeout_ms_min / 1e3);
  gauge(b, "sabha_heartbeat_seconds", "Leader heartbeat interval in force",
        ti.timing.heartbeat_ms / 1e3);
  gauge(b, "sabha_timing_rto_seconds",
        "The round-trip timeout adaptive timing follows (0: none yet)",
        (double)ti.rto_us / 1e6);
  counter(b, "sabha_timing_changes_total",
          "Timings adaptive timing handed to the engine", ti.changes);
  counter(b, "sabha_timing_msgs_refused_total",
          "Malformed pings and pongs from peers", ti.msgs_refused);
  peer_gauges(b, "sabha_peer_rtt_seconds",
              "Smoothed round trip to each peer (RFC 6298 SRTT)", &ti, false);
  peer_gauges(b, "sabha_peer_rtt_variance_seconds",
              "Mean deviation of the round trip to each peer (RTTVAR)", &ti,
              true);
}

/* Several groups: the unlabelled gauges are group 0's; these carry every
 * group's, labelled by group. */
static void write_groups_metrics(struct srv_node *n, struct resp_buf *b) {
  gauge(b, "sabha_groups", "Consensus groups this node hosts", n->n_groups);
  static const struct {
    const char *name, *help;
  } fams[] = {
      {"sabha_group_is_leader", "1 when this node leads the group"},
      {"sabha_group_leader", "The group's leader as this node knows it"},
      {"sabha_group_term", "The group's term (Raft) or ballot (Paxos)"},
      {"sabha_group_commit_index", "The group's highest committed index"},
      {"sabha_group_applied_index", "The group's highest applied index"},
  };
  for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
    http_prom_header(b, fams[f].name, "gauge", fams[f].help);
    for (uint32_t g = 0; g < n->n_groups; g++) {
      struct sabha_status st;
      rt_status(n->groups[g], &st);
      uint64_t v[] = {st.role == SABHA_ROLE_LEADER, st.leader, st.term,
                      st.commit, rt_applied_index(n->groups[g])};
      char id[16];
      snprintf(id, sizeof id, "%u", g);
      struct http_prom_label l = {"group", id};
      http_prom_sample_u64(b, fams[f].name, &l, 1, v[f]);
    }
  }
}

static void write_metrics(struct srv_node *n, struct resp_buf *b) {
  struct sabha_status st;
  rt_status(n->rt, &st);
  struct wal_stats ws;
  rt_wal_stats(n->rt, &ws);
  const struct rt_metrics *m = rt_metrics(n->rt);
  const struct transport_stats *ts = &n->transport.stats;
  const struct kvstore *kv = rt_kvstore(n->rt);

  http_prom_header(b, "sabha_role", "gauge",
                   "1 for this node's current role, 0 for the others");
  static const enum sabha_role roles[] = {
      SABHA_ROLE_FOLLOWER, SABHA_ROLE_PRECANDIDATE, SABHA_ROLE_CANDIDATE,
      SABHA_ROLE_LEADER};
  for (size_t i = 0; i < 4; i++) {
    struct http_prom_label l = {"role", sabha_role_name(roles[i])};
    http_prom_sample_u64(b, "sabha_role", &l, 1, st.role == roles[i]);
  }
  gauge(b, "sabha_is_leader", "1 when this node is the leader",
        st.role == SABHA_ROLE_LEADER);
  gauge(b, "sabha_node_id", "This node's id", n->cfg.id);
  gauge(b, "sabha_term", "Current term (Raft) or ballot (Paxos)",
        (double)st.term);
  gauge(b, "sabha_leader", "The leader as this node knows it (0: none)",
        st.leader);
  gauge(b, "sabha_commit_index", "Highest index known committed",
        (double)st.commit);
  gauge(b, "sabha_applied_index", "Highest index applied to the store",
        (double)rt_applied_index(n->rt));
  gauge(b, "sabha_log_first_index", "First index in the log",
        (double)st.first_index);
  gauge(b, "sabha_log_last_index", "Last index in the log",
        (double)st.last_index);
  gauge(b, "sabha_snapshot_index", "Index of the latest snapshot",
        (double)st.snapshot_index);
  counter(b, "sabha_proposals_total", "Entries proposed by this node",
          m->proposals);
  counter(b, "sabha_proposals_failed_total",
          "Proposals refused, lost to a leader change or timed out",
          m->proposals_failed);
  counter(b, "sabha_commits_total", "Entries applied to the store", m->commits);
  counter(b, "sabha_elections_total",
          "Elections (Raft) or phase-1 rounds (Paxos) this node started",
          st.elections_started);
  counter(b, "sabha_campaigns_total",
          "Elections and the PreVote or probe rounds before them that this "
          "node started",
          st.campaigns_started);
  counter(b, "sabha_elections_won_total", "Elections this node won",
          st.elections_won);
  counter(b, "sabha_leader_changes_total",
          "Times this node saw the leader change", m->leader_changes);
  gauge(b, "sabha_priority",
        "This node's leader priority (a leader hands leadership to a "
        "caught-up voter of higher priority)",
        (double)rt_config(n->rt)->priority[rt_config(n->rt)->engine.id]);
  counter(b, "sabha_priority_transfers_total",
          "Leadership transfers this node started for a higher priority",
          m->priority_transfers);
  counter(b, "sabha_wal_fsyncs_loop_total",
          "Log fsyncs run on the loop's thread (fsync = auto or loop)",
          m->fsyncs_loop);
  counter(b, "sabha_wal_fsyncs_thread_total",
          "Log fsyncs run on the disk thread (fsync = auto or thread)",
          m->fsyncs_thread);
  write_members_metrics(n, &st, b);
  write_timing_metrics(n, b);
  if (n->n_groups > 1)
    write_groups_metrics(n, b);
  fsync_histogram(b, &ws);
  latency_histogram(b, "sabha_commit_latency_seconds",
                    "From proposing a client's write to applying it, on the "
                    "leader",
                    &m->commit_latency);
  latency_histogram(b, "sabha_read_latency_seconds",
                    "From a linearizable read's ReadIndex to serving it",
                    &m->read_latency);
  counter(b, "sabha_wal_fsyncs_total", "fsyncs of WAL files since start",
          ws.fsyncs);
  counter(b, "sabha_wal_bytes_written_total", "Bytes written to the WAL",
          ws.bytes_written);
  gauge(b, "sabha_wal_bytes", "Bytes in the WAL's segments", (double)ws.bytes);
  gauge(b, "sabha_wal_segments", "WAL segment files", (double)ws.segments);
  gauge(b, "sabha_repair_guard_index",
        "The repair guard: the node neither votes nor promises until its "
        "commit index reaches it (0: none)",
        (double)st.repair_until);
  gauge(b, "sabha_wal_repaired",
        "1 when this start repaired a damaged log (cut at the damage)",
        ws.repaired ? 1.0 : 0.0);
  counter(b, "sabha_snapshots_taken_total", "Snapshots this node took",
          m->snapshots_taken);
  counter(b, "sabha_snapshots_installed_total",
          "Snapshots received from the leader and installed",
          m->snapshots_installed);
  counter(b, "sabha_snapshots_refused_total",
          "Snapshots from a peer that did not restore (nothing persisted)",
          m->snapshots_refused);
  counter(b, "sabha_reads_refused_total",
          "Linearizable reads refused: 4096 already waited for a quorum",
          m->reads_refused);
  counter(b, "sabha_snapshots_too_big_total",
          "States above the snapshot limit, not compacted (the log keeps "
          "them)",
          m->snapshots_too_big);
  /* Each group's applications refuse on their own: the sum of them. */
  uint64_t retry_table_full = 0;
  for (uint32_t g = 0; g < n->n_groups; g++)
    retry_table_full += rt_metrics(n->groups[g])->apps_retry_table_full;
  counter(b, "sabha_apps_retry_table_full_total",
          "Application commands applied here refused for a retry table full "
          "of ids younger than dedup-window-ms (every group)",
          retry_table_full);
  counter(b, "sabha_watch_window_bytes_copied_total",
          "Bytes written into the watch window: events' headers, keys, and "
          "values or the bytes APPENDs added",
          m->watch_window_bytes_copied);
  counter(b, "sabha_watch_events_examined_total",
          "Watch window events that watchers looked at, one per watcher and "
          "event",
          m->watch_events_examined);
  counter(b, "sabha_clock_entries_total",
          "Log clock entries this node proposed", m->clock_entries);
  counter(b, "sabha_client_output_paused_total",
          "Times a connection's unsent replies stopped its reading",
          m->output_paused);
  counter(b, "sabha_peer_bytes_sent_total", "Bytes sent to peers",
          ts->bytes_sent);
  counter(b, "sabha_peer_bytes_received_total", "Bytes received from peers",
          ts->bytes_received);
  counter(b, "sabha_peer_msgs_sent_total", "Messages sent to peers",
          ts->msgs_sent);
  counter(b, "sabha_peer_msgs_received_total", "Messages received",
          ts->msgs_received);
  counter(b, "sabha_peer_bundles_sent_total",
          "Frames that carried several messages to a peer under one tag",
          ts->bundles_sent);
  const struct by_reason drops[] = {
      {"unconnected", ts->msgs_dropped_unconnected},
      {"queue_full", ts->msgs_dropped_queue_full},
      {"too_big", ts->msgs_dropped_too_big},
      {"conn_lost", ts->msgs_dropped_conn_lost}};
  counters_by_reason(b, "sabha_peer_msgs_dropped_total",
                     "Messages to peers dropped, by why: normal while a peer "
                     "is down (the engines resend); too_big means a message "
                     "the wire codec refuses",
                     drops, sizeof drops / sizeof drops[0]);
  gauge(b, "sabha_peers_connected", "Peers connected past the handshake",
        (double)ts->peers_connected);
  gauge(b, "sabha_peers", "Other members of the cluster", n->cfg.n_peers - 1.0);
  http_prom_header(b, "sabha_handshakes_refused_total", "counter",
                   "Peer handshakes this node refused, by reason");
  static const char *const reasons[HS_REFUSAL_COUNT] = {
      "",     "malformed", "version", "cluster",  "engine", "node",
      "auth", "timeout",   "limit",   "settings", "tls"};
  for (size_t i = 1; i < HS_REFUSAL_COUNT; i++) {
    struct http_prom_label l = {"reason", reasons[i]};
    http_prom_sample_u64(b, "sabha_handshakes_refused_total", &l, 1,
                         ts->refused[i]);
  }
  http_prom_header(b, "sabha_handshakes_refused_by_peer_total", "counter",
                   "Handshakes peers refused (their REFUSE frame), by reason");
  for (size_t i = 1; i < HS_REFUSAL_COUNT; i++) {
    struct http_prom_label l = {"reason", reasons[i]};
    http_prom_sample_u64(b, "sabha_handshakes_refused_by_peer_total", &l, 1,
                         ts->refused_by_peer[i]);
  }
  http_prom_header(b, "sabha_tls_handshakes_limited_total", "counter",
                   "TLS connections closed unread, over "
                   "tls-handshakes-per-second, by port");
  const struct {
    const char *port;
    uint64_t count;
  } limited[] = {{"client", n->tls_limited[SRV_TLS_PORT_CLIENT]},
                 {"http", n->tls_limited[SRV_TLS_PORT_HTTP]},
                 {"peer", ts->tls_handshakes_limited}};
  for (size_t i = 0; i < sizeof limited / sizeof limited[0]; i++) {
    struct http_prom_label l = {"port", limited[i].port};
    http_prom_sample_u64(b, "sabha_tls_handshakes_limited_total", &l, 1,
                         limited[i].count);
  }
  const struct by_reason refused[] = {{"mac", ts->frames_refused_mac},
                                      {"corrupt", ts->frames_corrupt},
                                      {"term", m->peer_msgs_refused_term}};
  counters_by_reason(b, "sabha_peer_frames_refused_total",
                     "Frames from connected peers refused, by reason: mac (a "
                     "wrong session MAC: forged, altered, replayed or "
                     "reordered), corrupt (does not decode), term (a term or "
                     "ballot beyond the bounds: a broken or hostile peer)",
                     refused, sizeof refused / sizeof refused[0]);
  gauge(b, "sabha_clients", "Client connections", rt_n_clients(n->rt));
  write_client_limits(n, b);
  counter(b, "sabha_client_commands_total", "Client commands received",
          m->commands);
  counter(b, "sabha_client_errors_total",
          "Commands answered with an error by this node", m->commands_failed);
  counter(b, "sabha_reads_total", "Linearizable reads served", m->reads);
  counter(b, "sabha_stale_reads_total", "Stale (local) reads served",
          m->stale_reads);
  counter(b, "sabha_forwarded_total", "Commands relayed to the leader",
          m->forwarded);
  counter(b, "sabha_redirected_total", "Commands answered -MOVED",
          m->redirected);
  counter(b, "sabha_no_leader_total",
          "Commands answered -TRYAGAIN for want of a leader", m->no_leader);
  counter(b, "sabha_timeouts_total", "Writes and reads that timed out",
          m->timeouts);
  gauge(b, "sabha_keys", "Keys in the store", (double)kvstore_dbsize(kv));
  struct kvstore_memory km;
  kvstore_memory(kv, &km);
  gauge(b, "sabha_kv_data_bytes",
        "Key and value bytes in the store (what its data bound counts)",
        (double)km.data_bytes);
  gauge(b, "sabha_kv_append_slack_bytes",
        "Spare room of values grown by APPEND, on this node alone",
        (double)km.slack_bytes);
  gauge(b, "sabha_sessions", "Client sessions in the store",
        (double)kvstore_n_sessions(kv));
}

/* ---- connections ------------------------------------------------------------
 */

static void on_http_closed(uv_handle_t *h) {
  struct srv_http_conn *c = h->data;
  srv_kv_free(c);
  if (c->buf != c->small)
    free(c->buf);
  resp_buf_free(&c->out);
  resp_buf_free(&c->wout);
  tls_conn_free(c->tls);
  codec_buf_free(&c->tls_out);
  free(c);
}

void srv_http_close(struct srv_http_conn *c) {
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  list_remove(&c->link);
  c->n->n_http--;
  uv_close((uv_handle_t *)&c->tcp, on_http_closed);
}

static void http_tls_flush(struct srv_http_conn *c);

static void on_http_tls_written(uv_write_t *w, int status) {
  struct srv_http_conn *c = w->data;
  c->writing = false;
  /* A kept-alive connection does not keep a large response's ciphertext. */
  if (c->tls_out.cap_bytes > TLS_OUT_KEEP_BYTES_MAX)
    codec_buf_free(&c->tls_out);
  if (status < 0) {
    srv_http_close(c);
    return;
  }
  /* Idle from the last byte of a response out; a write of the session's
   * own records (a handshake flight, a KeyUpdate's answer) is no
   * progress of HTTP's. */
  if (c->tls_write_response)
    c->head_start_ms = uv_now(&c->n->loop);
  c->tls_write_response = false;
  http_tls_flush(c);
  c->kv_due = true; /* what waited for the backlog to go (check phase) */
}

/* With TLS: writes what the session has to send, when no write is in
 * flight; once the response is sealed and all of it written, closes. */
static void http_tls_flush(struct srv_http_conn *c) {
  if (c->writing || uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  c->tls_out.size_bytes = 0;
  if (tls_conn_out_drain(c->tls, &c->tls_out) != 0 ||
      c->tls_out.size_bytes > UINT32_MAX) {
    srv_http_close(c);
    return;
  }
  /* The drain took every byte the session had, so the response sealed
   * before it is in this write. */
  c->tls_write_response = c->tls_sealed_response;
  c->tls_sealed_response = false;
  if (c->tls_out.size_bytes == 0) {
    if (c->responded)
      srv_http_close(c);
    return;
  }
  uv_buf_t b =
      uv_buf_init((char *)c->tls_out.data, (unsigned)c->tls_out.size_bytes);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_http_tls_written) !=
      0) {
    srv_http_close(c);
    return;
  }
  c->writing = true;
  c->write_ms = uv_now(&c->n->loop);
}

static bool path_is(const struct http_request *req, const char *p) {
  return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static void respond(struct srv_http_conn *c, const struct http_request *req) {
  struct srv_node *n = c->n;
  if (n->rt == NULL) { /* stopping */
    http_write_error(&c->out, 503, req->method == HTTP_METHOD_HEAD);
    return;
  }
  bool head = req->method == HTTP_METHOD_HEAD;
  if (req->method != HTTP_METHOD_GET && !head) {
    http_write_error(&c->out, 405, false);
    return;
  }
  struct resp_buf body;
  resp_buf_init(&body, 16u << 20);
  if (path_is(req, "/metrics")) {
    write_metrics(n, &body);
    http_write_response(&c->out, 200, HTTP_PROM_CONTENT_TYPE, body.data,
                        body.len, head);
  } else if (path_is(req, "/status")) {
    srv_write_status_json(n, &body);
    http_write_response(&c->out, 200, "application/json", body.data, body.len,
                        head);
  } else if (path_is(req, "/health")) {
    bool ok = rt_has_leader(n->rt);
    resp_buf_printf(&body, "%s\n", ok ? "ok" : "no leader");
    http_write_response(&c->out, ok ? 200 : 503, "text/plain", body.data,
                        body.len, head);
  } else {
    http_write_error(&c->out, 404, head);
  }
  resp_buf_free(&body);
}

static void http_process(struct srv_http_conn *c);

static void on_kv_written(uv_write_t *w, int status) {
  struct srv_http_conn *c = w->data;
  c->writing = false;
  resp_buf_reset(&c->wout);
  if (status < 0) {
    srv_http_close(c);
    return;
  }
  c->head_start_ms = uv_now(&c->n->loop); /* idle from the last byte out */
  srv_http_pump(c);
  c->kv_due = true; /* what waited for the backlog to go (check phase) */
  if (!c->writing && !uv_is_closing((uv_handle_t *)&c->tcp))
    http_process(c); /* a request that waited for the responses before */
}

bool srv_http_backlogged(const struct srv_http_conn *c) {
  size_t n = c->out.len + c->wout.len;
  if (c->tls != NULL)
    n += c->tls_out.size_bytes + tls_conn_out_bytes(c->tls);
  return n >= SRV_HTTP_OUT_PAUSE_BYTES;
}

/* c->out refused a response (SRV_HTTP_OUT_BYTES_MAX, or no memory): what
 * it holds is no longer a sequence of whole responses, so the connection
 * closes. A client can do this on purpose as often as it likes, so it is
 * logged at most once per SRV_HTTP_LOG_MS, with the count since. */
static void http_out_overflowed(struct srv_http_conn *c) {
  struct srv_node *n = c->n;
  assert(c->out.err != 0);
  n->http_out_overflows++;
  n->http_out_overflows_unlogged++;
  uint64_t now_ms = uv_now(&n->loop);
  if (now_ms >= n->http_out_log_due_ms) {
    srv_log(n, "WARN",
            "http: %s; the connection is closed (%" PRIu64
            " such since the last report)",
            c->out.err == SABHA_ENOMEM
                ? "out of memory for a response"
                : "a response would pass the " HTTP_OUT_BYTES_TEXT
                  " a connection holds of responses not yet written "
                  "(a large range behind others its client has not read)",
            n->http_out_overflows_unlogged);
    n->http_out_overflows_unlogged = 0;
    n->http_out_log_due_ms = now_ms + SRV_HTTP_LOG_MS;
  }
  srv_http_close(c);
}

/* Writes what c->out holds, one write at a time; closes once the last
 * response is out (responded, or the key-value API said close). */
void srv_http_pump(struct srv_http_conn *c) {
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  bool last = c->responded || (c->kv_close && c->kv_n == 0);
  if (c->out.err != 0) {
    http_out_overflowed(c);
    return;
  }
  if (c->tls != NULL) {
    if (c->out.len > 0 &&
        tls_conn_write(c->tls, c->out.data, c->out.len) != TLS_OK) {
      srv_http_close(c);
      return;
    }
    c->tls_sealed_response |= c->out.len > 0;
    resp_buf_reset(&c->out);
    if (last)
      c->responded = true; /* http_tls_flush closes once drained */
    http_tls_flush(c);
    return;
  }
  if (c->writing)
    return;
  if (c->out.len == 0) {
    if (last)
      srv_http_close(c);
    return;
  }
  /* The pending bytes become the ones being written. */
  struct resp_buf t = c->wout;
  c->wout = c->out;
  c->out = t;
  uv_buf_t b = uv_buf_init((char *)c->wout.data, (unsigned)c->wout.len);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_kv_written) != 0) {
    srv_http_close(c);
    return;
  }
  c->writing = true;
  c->write_ms = uv_now(&c->n->loop);
}

static void http_send(struct srv_http_conn *c) {
  c->responded = true;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (c->out.err != 0) {
    http_out_overflowed(c);
    return;
  }
  if (c->out.len == 0 && !c->writing) {
    srv_http_close(c);
    return;
  }
  srv_http_pump(c);
}

static void on_http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct srv_http_conn *c = h->data;
  (void)suggested;
  if (c->tls != NULL) {
    *buf = uv_buf_init((char *)c->n->tls_rbuf, SRV_TLS_RBUF_BYTES);
    return;
  }
  *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* Answers 408 to a connection whose request head is not complete, as far
 * as the socket takes it at once, and closes it now: its slot is free at
 * once, whatever its reader does. */
static void http_timed_out(struct srv_http_conn *c) {
  c->responded = true;
  http_write_error(&c->out, 408, false);
  /* Over TLS the answer would need the session's write path; the client
   * learns as much from the close. */
  if (c->out.err == 0 && c->tls == NULL) {
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
  srv_http_close(c);
}

/* Every SRV_HTTP_SCAN_MS: heads that are too slow get 408, responses that
 * nobody reads are dropped. A kept-alive connection is idle only once its
 * responses are out: a slow reader of a large one is not cut off in its
 * middle by the head's timeout, but has SRV_HTTP_WRITE_TIMEOUT_MS for
 * each write. */
static void on_http_timer(uv_timer_t *t) {
  struct srv_node *n = t->data;
  uint64_t now = uv_now(&n->loop);
  struct list_link *l = n->https.next;
  while (l != &n->https) {
    struct srv_http_conn *c = LIST_OF(l, struct srv_http_conn, link);
    l = l->next; /* closing unlinks c */
    if (c->writing) {
      if (now >= c->write_ms + SRV_HTTP_WRITE_TIMEOUT_MS)
        srv_http_close(c);
    } else if (!c->responded && c->kv_n == 0 &&
               now >= c->head_start_ms + SRV_HTTP_HEAD_TIMEOUT_MS) {
      n->http_head_timeouts++;
      http_timed_out(c);
    } else if (c->responded &&
               now >= c->head_start_ms + SRV_HTTP_WRITE_TIMEOUT_MS) {
      srv_http_close(c);
    }
    /* A request with the runtime waits for it (request_timeout_ms bounds
     * it there); a watch streams for as long as its client reads. */
  }
}

/* What a connection would lose if it were pushed out to make room. */
enum http_holds {
  HTTP_HOLDS_NOTHING, /* idle: no byte of a request, nothing to write */
  HTTP_HOLDS_HEAD,    /* part of a request head, nothing to write */
  HTTP_HOLDS_BODY,    /* a whole head, its body still coming */
  HTTP_HOLDS_WORK,    /* a response being written or made */
};

static enum http_holds http_holds(const struct srv_http_conn *c) {
  if (c->responded || c->kv_n > 0 || c->kv_close || c->writing ||
      c->out.len > 0)
    return HTTP_HOLDS_WORK;
  if (c->tls != NULL &&
      (c->tls_out.size_bytes > 0 || tls_conn_out_bytes(c->tls) > 0))
    return HTTP_HOLDS_WORK;
  if (c->body_coming)
    return HTTP_HOLDS_BODY;
  return c->len == 0 ? HTTP_HOLDS_NOTHING : HTTP_HOLDS_HEAD;
}

/* Every slot is taken: the oldest idle connection makes room, else the
 * oldest still sending its head, else the oldest whose body is still
 * coming (408 each), so that connections that hold a slot and ask for
 * nothing, or trickle a head or a body, cannot keep /health and /metrics
 * from answering. (A body has the head's deadline anyway: one that takes
 * longer is answered 408 in any case.) A connection whose response is
 * being written or made is never cut: false when every one is such. */
static bool http_make_room(struct srv_node *n) {
  struct srv_http_conn *victim = NULL;
  enum http_holds least = HTTP_HOLDS_WORK;
  for (struct list_link *l = n->https.next; l != &n->https; l = l->next) {
    struct srv_http_conn *c = LIST_OF(l, struct srv_http_conn, link);
    enum http_holds h = http_holds(c);
    if (h < least) { /* oldest first: the first of each kind stays */
      victim = c;
      least = h;
      if (h == HTTP_HOLDS_NOTHING)
        break;
    }
  }
  if (victim == NULL)
    return false;
  n->http_evicted++;
  http_timed_out(victim);
  return true;
}

/* With TLS: decrypts what the session holds into the request buffer, as
 * far as it has room (a head that fills it is refused anyway; pipelined
 * requests past it stay in the session until a request leaves the buffer:
 * srv_http_request_done()). Returns false when the session failed (a
 * client without TLS, or a refused certificate) and the connection is
 * closing. */
static bool http_tls_drain(struct srv_http_conn *c, int st) {
  while (st == TLS_OK) {
    size_t got = 0;
    st = tls_conn_read(c->tls, c->buf + c->len, c->cap - c->len, &got);
    c->len += got;
  }
  if (st == TLS_AGAIN)
    return true;
  srv_log(c->n, "DEBUG", "https: %s", tls_conn_errmsg(c->tls));
  srv_http_close(c);
  return false;
}

/* With TLS: feeds `n` bytes of ciphertext to the session and decrypts what
 * they complete, as http_tls_drain() says. */
static bool http_tls_decrypt(struct srv_http_conn *c, size_t n) {
  return http_tls_drain(c, tls_conn_feed(c->tls, c->n->tls_rbuf, n));
}

static void on_http_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Room for a whole request of `need` bytes (head and body). */
static bool http_room(struct srv_http_conn *c, size_t need) {
  if (need <= c->cap)
    return true;
  uint8_t *p = malloc(need);
  if (p == NULL)
    return false;
  memcpy(p, c->buf, c->len);
  if (c->buf != c->small)
    free(c->buf);
  c->buf = p;
  c->cap = need;
  return true;
}

void srv_http_request_done(struct srv_http_conn *c) {
  c->kv_due = true; /* the next request, if any */
}

/* A request of `bytes` left the buffer (started, or answered at once):
 * the next head's time starts, and what waited behind it may come in. */
static void http_consume(struct srv_http_conn *c, size_t bytes) {
  assert(bytes <= c->len);
  memmove(c->buf, c->buf + bytes, c->len - bytes);
  c->len -= bytes;
  /* A large body's buffer goes once the requests it held are done. */
  if (c->buf != c->small && c->len <= sizeof c->small) {
    memcpy(c->small, c->buf, c->len);
    free(c->buf);
    c->buf = c->small;
    c->cap = sizeof c->small;
  }
  c->head_start_ms = uv_now(&c->n->loop);
  c->continued = false;
  /* With TLS, requests that did not fit the buffer wait in the session:
   * the client sent them already, so no read of the socket brings them. */
  if (c->tls != NULL && !http_tls_drain(c, TLS_OK))
    return;
  if (c->reading_stopped && c->len < c->cap) {
    c->reading_stopped = false;
    uv_read_start((uv_stream_t *)&c->tcp, on_http_alloc, on_http_read);
  }
}

/* Answers the requests in the buffer: operator endpoints with their one
 * response and a close; /v1/ through the runtime, every complete one
 * started at once (pipelined: SRV_HTTP_PIPELINE_MAX of them with the
 * runtime, SRV_HTTP_REQUESTS_PER_TURN started per loop turn), their
 * responses in the order they came. A request answered without the
 * runtime (an error, an endpoint, "100 Continue" for a body) waits for
 * those before it, so that its response comes in its place. */
static void http_process(struct srv_http_conn *c) {
  struct srv_node *n = c->n;
  if (c->turn != n->http_turn) {
    c->turn = n->http_turn;
    c->turn_started = 0;
    c->turn_batched = false;
  }
  while (!c->responded && !c->kv_close &&
         !uv_is_closing((uv_handle_t *)&c->tcp)) {
    /* Responses the client does not read: the next request waits for
     * them to go (the write callbacks set kv_due), and once the buffer is
     * full, so does the socket. */
    if (srv_http_backlogged(c))
      return;
    if (c->turn_started == SRV_HTTP_REQUESTS_PER_TURN) {
      c->kv_due = true; /* the next turn goes on, without waiting */
      srv_kick(n);
      return;
    }
    bool busy = c->kv_n > 0; /* answers to come before any made now */
    struct http_request req;
    size_t consumed = 0;
    enum http_parse_status st =
        http_parse(c->buf, c->len, &req, &consumed, &http_limits_default);
    if (st == HTTP_PARSE_INCOMPLETE) {
      if (c->len >= http_limits_default.head_bytes_max) {
        if (busy)
          return; /* answered once those before it are */
        http_write_error(&c->out, 431, false);
        http_send(c);
      } else if (c->tls != NULL) {
        http_tls_flush(c); /* the handshake's next flight, if any */
      }
      return;
    }
    if (st == HTTP_PARSE_ERROR || !srv_kv_wants(&req) || n->rt == NULL) {
      if (busy || c->writing || c->out.len > 0) {
        c->kv_due = true; /* after the responses before it */
        return;
      }
      if (st == HTTP_PARSE_ERROR)
        http_write_error(&c->out, req.status_error, false);
      else
        respond(c, &req);
      http_send(c);
      return;
    }
    uint64_t body = 0;
    int framed = http_content_length(&req, &body);
    int refuse = framed < 0 || (req.method == HTTP_METHOD_PUT && framed == 0)
                     ? 411
                 : body > SRV_HTTP_BODY_BYTES_MAX ? 413
                                                  : 0;
    if (refuse == 0 && !http_room(c, consumed + (size_t)body))
      refuse = 503;
    if (refuse != 0) {
      if (busy)
        return;
      http_write_error(&c->out, refuse, false);
      http_send(c);
      return;
    }
    if (c->len < consumed + body) {
      c->body_coming = true; /* pushed out only after idle and heads */
      if (busy)
        return; /* a "100 Continue" must not come before their answers */
      /* The body is still coming. A client that asked (Expect:
       * 100-continue, as `curl -T` does) waits for this before it sends
       * it, a second by default (RFC 9110 §10.1.1). */
      const struct http_header *x = http_header_find(&req, "expect");
      if (!c->continued && req.version_minor == 1 && x != NULL &&
          x->value_len == 12 &&
          strncasecmp(x->value, "100-continue", 12) == 0) {
        c->continued = true;
        resp_buf_printf(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        srv_http_pump(c);
      }
      return;
    }
    c->body_coming = false;
    size_t with_runtime = c->kv_n;
    if (!srv_kv_request(c, &req, c->buf + consumed, (size_t)body))
      return; /* the answers before it bring it back (kv_due) */
    if (c->kv_n > with_runtime) {
      n->http_kv_requests++;
      n->http_kv_batches += !c->turn_batched;
      c->turn_batched = true;
    }
    c->turn_started++;
    if (uv_is_closing((uv_handle_t *)&c->tcp))
      return;
    http_consume(c, consumed + (size_t)body);
  }
}

void srv_http_service(struct srv_node *n) {
  for (struct list_link *l = n->https.next; l != &n->https;) {
    struct srv_http_conn *c = LIST_OF(l, struct srv_http_conn, link);
    l = l->next; /* c may close */
    if (!c->kv_due)
      continue;
    if (c->bridge != NULL && c->bridge->rt_closed)
      srv_kv_stream_closed(c);
    else
      srv_kv_service(c);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
      http_process(c);
  }
}

static void on_http_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct srv_http_conn *c = s->data;
  (void)buf;
  if (c->responded)
    return;
  if (nread < 0) {
    srv_http_close(c);
    return;
  }
  if (c->tls == NULL)
    c->len += (size_t)nread;
  else if (!http_tls_decrypt(c, (size_t)nread))
    return;
  http_process(c);
  /* A pipeline filled the buffer: the rest waits in the socket until a
   * request leaves it (srv_http_request_done). Reading on would offer
   * libuv no room, which it reports as UV_ENOBUFS, and the connection
   * would close with its requests unanswered. */
  if (c->len == c->cap && !c->responded &&
      !uv_is_closing((uv_handle_t *)&c->tcp)) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading_stopped = true;
  }
}

static void on_free_handle(uv_handle_t *h) {
  free(h);
}

static void on_http_connection(uv_stream_t *server, int status) {
  struct srv_node *n = server->data;
  if (status < 0 || n->stopping || n->rt == NULL)
    return;
  struct srv_http_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  uv_tcp_init(&n->loop, &c->tcp);
  c->tcp.data = c;
  c->n = n;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_free_handle);
    return;
  }
  /* Over the budget, closed before the handshake, and before it may push
   * out an idle connection to make room. */
  if (n->tls != NULL && !srv_tls_admit(n, &c->tcp, SRV_TLS_PORT_HTTP)) {
    uv_close((uv_handle_t *)&c->tcp, on_free_handle);
    return;
  }
  if (n->n_http >= SRV_HTTP_CONNS_MAX && !http_make_room(n)) {
    n->http_refused++;
    uv_close((uv_handle_t *)&c->tcp, on_free_handle);
    return;
  }
  c->head_start_ms = uv_now(&n->loop);
  if (n->tls != NULL && (c->tls = srv_tls_accept(n)) == NULL) {
    uv_close((uv_handle_t *)&c->tcp, on_free_handle);
    return;
  }
  resp_buf_init(&c->out, SRV_HTTP_OUT_BYTES_MAX);
  resp_buf_init(&c->wout, SRV_HTTP_OUT_BYTES_MAX);
  resp_buf_init(&c->kv_cmd, 2 * SRV_HTTP_BODY_BYTES_MAX);
  resp_buf_init(&c->kv_in, SRV_HTTP_KV_IN_BYTES_MAX);
  resp_buf_init(&c->kv_json, 32u << 20);
  c->buf = c->small;
  c->cap = sizeof c->small;
  c->loopback = srv_peer_is_loopback(&c->tcp);
  uv_tcp_nodelay(&c->tcp, 1);
  list_push(&n->https, &c->link);
  n->n_http++;
  uv_read_start((uv_stream_t *)&c->tcp, on_http_alloc, on_http_read);
}

int srv_http_listen(struct srv_node *n, char *err, size_t err_size) {
  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(n->cfg.http_bind, n->cfg.http_port,
                       (struct sockaddr_in *)&addr);
  if (rc != 0)
    rc = uv_ip6_addr(n->cfg.http_bind, n->cfg.http_port,
                     (struct sockaddr_in6 *)&addr);
  if (rc != 0) {
    snprintf(err, err_size, "bind address %s is not numeric", n->cfg.http_bind);
    return 1;
  }
  uv_tcp_init(&n->loop, &n->http_listener);
  n->http_listener.data = n;
  uv_timer_init(&n->loop, &n->http_timer);
  n->http_timer.data = n;
  uv_timer_start(&n->http_timer, on_http_timer, SRV_HTTP_SCAN_MS,
                 SRV_HTTP_SCAN_MS);
  n->http_listening = true;
  rc = uv_tcp_bind(&n->http_listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&n->http_listener, 128, on_http_connection);
  if (rc != 0) {
    snprintf(err, err_size, "cannot listen for HTTP on %s:%u: %s",
             n->cfg.http_bind, n->cfg.http_port, uv_strerror(rc));
    return 1;
  }
  return 0;
}
