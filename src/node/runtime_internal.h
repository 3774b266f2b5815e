/* Private to the node runtime (src/node): the structures that the ready
 * cycle (runtime.c), the requests (requests.c), the commands (commands.c),
 * the client streams (clients.c), the forwarding links (forward.c) and the
 * applications' glue (apps.c) share.
 *
 * The life of a client command, as the structures see it. A client stream
 * (struct rt_stream, kind CLIENT) parses commands from its input buffer. A
 * command that can be answered at once (PING, INFO, a stale read) is
 * answered at once, if nothing earlier from the same stream still waits.
 * Anything else becomes a request (struct rt_req), queued in the stream's
 * `queue` in arrival order; replies leave strictly in that order
 * (rt_client_flush), so pipelined commands are answered in order.
 *
 * While it waits, a request sits in at most one of the node's lists, named
 * by req->where:
 *   WAIT_LEADER     no leader is known (or a leadership transfer runs); it
 *                   is dispatched again when one is, or fails with
 *                   -TRYAGAIN after leader_wait_ms;
 *   AWAIT_SESSION   a write of a stream whose kvstore session is being
 *                   registered through the log;
 *   PROPOSALS       proposed here: matched with the command when it is
 *                   applied, a kvstore write by the session, sequence
 *                   number and stamp in its header, an app command
 *                   (sm/app.h) by its tag and stamp;
 *   READS           a linearizable read waiting for its ReadIndex;
 *   FORWARD         sent to the leader over a forwarding link; the link's
 *                   replies come back in order;
 *   DEFERRED        to be executed once the ready batch being carried out
 *                   is acknowledged: between sabha_engine_ready and
 *                   sabha_engine_advance the host may not call the engine
 *                   (the batch points into its log), yet applying a
 *                   REGISTER releases the writes that waited for it.
 * A request no longer in any list and marked done or readable waits only
 * for the requests before it in its stream.
 *
 * Lists are intrusive and circular (struct list_link), so a request leaves
 * any of them in O(1) when its stream closes. Requests in a forwarding link
 * stay there as placeholders (req->c = NULL) because the link's replies are
 * matched by position.
 *
 * Freeing. A stream the runtime closes is not freed where the decision is
 * taken: it is marked, its requests are unlinked at once, and the stream is
 * handed to the host (ports.stream_close) only from rt_run's reaping step.
 * So no code that walks a list of requests can find the memory under its
 * feet freed by a flush it called (the node once spun forever on exactly
 * that). */
#ifndef SABHA_NODE_RUNTIME_INTERNAL_H
#define SABHA_NODE_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "core/logwin.h"
#include "core/outbox.h"
#include "node/resp.h"
#include "node/runtime.h"
#include "node/timing.h"
#include "sabha/engine.h"
#include "sm/app.h"
#include "sm/kvstore.h"
#include "storage/wal.h"

/* ---- limits ------------------------------------------------------------- */

#define RT_QUEUE_MAX 1024u /* requests in flight per stream; reading pauses */
/* A stream's replies are moved from its queue to its output only while
 * fewer than this many bytes wait to be written: beyond it the stream stops
 * reading and its finished replies stay in the queue, so a client that
 * pipelines reads of a large value and never reads the answers costs at
 * most this much plus one reply, and the node goes on serving others. */
#define RT_OUT_SOFT_BYTES (4u << 20)
#define RT_OUT_BYTES_MAX (256u << 20) /* one reply's worst case */
/* A buffer an idle stream keeps: larger ones are freed once empty, so that
 * one big command or reply does not pin its memory for the connection's
 * life (10,000 connections that each once read a megabyte would hold
 * 10 GB). */
#define RT_IDLE_BUFFER_BYTES_MAX (64u * 1024u)
/* Connections let in past clients_max, for other nodes' forwarding links
 * (clients.c). */
#define RT_FORWARD_SLOTS SABHA_NODES_MAX
#define RT_PROBATION_MS 1000u /* to say SABHA.FORWARDED, on probation */
/* With every slot kept for forwarding links taken, a new connection pushes
 * out the oldest one on probation that has had this long to say
 * SABHA.FORWARDED (a link says it in its first packet): connections opened
 * in a stream cannot hold the slots for a whole RT_PROBATION_MS each. */
#define RT_PROBATION_GRACE_MS 100u
/* client_recent_max_*: the largest buffers seen in this window and the one
 * before it, as Redis's INFO reports them. */
#define RT_RECENT_MAX_WINDOW_MS 5000u
#define RT_FWD_BACKOFF_MS 100u        /* after a failed connect to the leader */
#define RT_TIMEOUT_SCAN_MS 50u        /* how often deadlines are checked */
#define RT_PEER_REFUSED_LOG_MS 10000u /* rt_step's term refusals, logged */
/* Warnings a client's conduct causes (rt_log_client): at most
 * RT_CLIENT_LOG_LINES in each RT_CLIENT_LOG_MS, so that a client that
 * opens connection after connection to break a limit cannot fill the
 * node's log, or its disk, as fast as it connects. */
#define RT_CLIENT_LOG_MS 10000u
#define RT_CLIENT_LOG_LINES 100u
#define RT_READIES_PER_RUN 64u
#define RT_INPUT_CHUNK_BYTES (64u * 1024u)
/* SCAN and KEYS (commands.c): a cursor names a key of at most this many
 * bytes (the store's default key bound); SCAN's COUNT, and the keys KEYS
 * may visit, are bounded; a pattern is at most this long, since matching
 * costs its length times the key's. */
#define RT_CURSOR_KEY_BYTES_MAX (64u << 10)
#define RT_SCAN_COUNT_MAX 100000u
#define RT_KEYS_VISIT_MAX 100000u
#define RT_PATTERN_BYTES_MAX 1024u
/* ... and what one SCAN or KEYS may spend matching, counted as key bytes
 * times pattern bytes (the worst case of each key): COUNT keys of 64 KiB
 * against a 1 KiB pattern would hold the loop for minutes. A SCAN that
 * reaches it answers what it matched and a cursor at the next key; KEYS
 * answers an error. */
#define RT_SCAN_MATCH_WORK_MAX (32ull << 20)
/* SABHA.RANGE (the HTTP range read): keys per reply. */
#define RT_RANGE_LIMIT_DEFAULT 1000u
#define RT_RANGE_LIMIT_MAX 10000u
/* MULTI (clients.c): queued commands per transaction and their bytes, so
 * that EXEC's one command fits what a forwarding link and a log entry
 * carry; keys one connection may WATCH. */
#define RT_MULTI_COMMANDS_MAX 1024u
#define RT_MULTI_BYTES_MAX (8u << 20)
#define RT_MULTI_ARGS_MAX 60000u
#define RT_WATCH_KEYS_MAX 1024u
/* SABHA.WATCH (watch.c): the events a node keeps to serve FROM, by bytes
 * and by count; a watcher's unsent events (beyond them it waits, and is
 * dropped if the window moves past it); a prefix's length; how long a
 * batch gathers events by default (BATCH). */
#define RT_WATCH_WINDOW_BYTES_MAX (64u << 20)
#define RT_WATCH_WINDOW_EVENTS_MAX (1u << 20)
/* While keys or leases may expire, the log's clock is kept within this
 * much of the leader's (maybe_propose_clock), so TTLs count down. */
#define RT_CLOCK_TICK_MS 1000u
#define RT_WATCHER_OUT_BYTES_MAX (8u << 20)
#define RT_WATCH_PREFIX_BYTES_MAX 1024u
#define RT_WATCH_BATCH_MS_DEFAULT 200u
#define RT_WATCH_BATCH_MS_MAX 10000u

/* ---- requests ----------------------------------------------------------- */

enum rt_where {
  RT_IN_NONE = 0,
  RT_IN_WAIT_LEADER,
  RT_IN_AWAIT_SESSION,
  RT_IN_PROPOSALS,
  RT_IN_READS,
  RT_IN_FORWARD,
  RT_IN_DEFERRED,
};

enum rt_req_state {
  RT_REQ_WAITING = 0,
  RT_REQ_DONE,     /* the reply is in req->reply */
  RT_REQ_READABLE, /* a read whose index is applied: answered from the
                      store when it reaches the head of its queue */
};

struct rt_command;
struct rt_exec_fill; /* clients.c */

struct rt_req {
  struct list_link qlink;       /* in the stream's queue (not a REGISTER) */
  struct list_link glink;       /* in the node list that `where` names */
  struct rt_stream *c;          /* NULL: the client went away (FORWARD) */
  const struct rt_command *cmd; /* NULL for a REGISTER */
  uint8_t where;                /* enum rt_where */
  uint8_t state;                /* enum rt_req_state */
  bool sent;                    /* FORWARD: written to the link */
  bool block;                   /* one of the pool's blocks (requests.c) */
  struct rt *owner;             /* whose pool it goes back to */
  struct rt_req *pool_next;     /* in the pool */
  uint32_t argc;
  struct resp_arg *argv; /* a copy: one allocation with the bytes */
  struct resp_buf reply;
  uint32_t group;      /* the group that executes it (groups.c) */
  bool via_pair;       /* ... through its in-process link, not directly to
                          its leader's node (which refused it) */
  uint64_t order;      /* arrival order in the node, from 1 */
  uint64_t arrival_ms; /* ports.now_ms */
  /* Until when it may wait here before a leader takes it: for one to be
   * known, and for the link to it to connect (leader_wait_ms from when it
   * first needed one; 0 until then). Kept when it comes back to wait. */
  uint64_t deadline_ms;
  uint64_t started_us; /* for latency */
  /* PROPOSALS */
  bool is_app; /* an app command: matched by tag, no kvstore session */
  uint64_t session;
  uint64_t seq;
  uint64_t stamp_ms;
  uint64_t tag;        /* app commands: rt->next_tag when proposed */
  bool before_install; /* made before a snapshot was installed: it may have
                          applied inside it (requests.c, settling) */
  size_t held_bytes;   /* reply bytes counted in c->held_bytes (DONE) */
  /* EXEC whose queue held commands with wrong arguments: their errors,
   * put in their places in the reply (clients.c, exec_fill); else NULL.
   * Owned; freed with the request. */
  struct rt_exec_fill *fill;
  /* READS */
  uint64_t read_id;
  uint64_t read_index;
  bool has_read_index;
};

/* ---- streams ------------------------------------------------------------- */

enum rt_session_state {
  RT_SESSION_NONE = 0,
  RT_SESSION_REGISTERING,
  RT_SESSION_READY,
};

/* Who a client stream is (auth.c). Ordered: each may run what the ones
 * before it may. */
enum rt_user {
  RT_USER_NONE = 0, /* requirepass is set and not yet given */
  RT_USER_DEFAULT,  /* the default user: every command but the admin ones
                       when admin-pass is set */
  RT_USER_ADMIN,    /* AUTH admin <admin-pass>: every command */
};

struct rt_stream {
  struct rt *rt;
  void *host;
  uint8_t kind;          /* enum rt_stream_kind */
  struct list_link link; /* in rt->clients or rt->fwds */
  struct list_link reap; /* in rt->reaping once marked for closing */
  uint64_t id;
  bool closing;      /* the runtime is done with it */
  bool lost;         /* the host said it is gone */
  bool close_flush;  /* close after writing what is taken */
  bool handed;       /* given to the host to close (or lost) */
  bool paused;       /* reading stopped (ports.stream_pause) */
  bool host_bounded; /* rt_stream_set_host_bounded */
  bool one_reply;    /* rt_stream_set_one_reply */
  bool taking;       /* an rt_stream_out_take is outstanding */
  uint8_t *in;
  size_t in_len, in_cap;
  struct resp_buf out;  /* collects replies */
  struct resp_buf wbuf; /* what the host is writing (taken) */

  /* CLIENT */
  struct list_link queue; /* struct rt_req.qlink, arrival order */
  uint32_t queue_n;
  uint8_t session_state; /* enum rt_session_state */
  uint64_t session;
  uint64_t next_seq;
  struct rt_req *reg;     /* the REGISTER in flight */
  struct list_link await; /* writes waiting for the session */
  bool stale_reads;       /* SABHA.STALE on / READONLY */
  bool forwarded_link;    /* another node's forwarding link: never forward */
  bool read_barrier;      /* a write waits in the input for the stream's
                             earlier reads to be answered */
  bool out_backlog;       /* unsent replies are at RT_OUT_SOFT_BYTES */
  bool resume_due;        /* parse the buffered input from rt_run */
  bool quit_after;        /* QUIT or a protocol error: close once answered */
  bool probation;         /* let in past clients_max: must be a forwarding
                            link (clients.c) */
  bool link_challenged;   /* it said SABHA.FORWARDED and owes the proof of
                             link_challenge (auth.c) */
  uint8_t link_challenge[RT_LINK_KEY_BYTES];
  bool memory_paused; /* the clients' memory budget stopped reading */
  uint8_t user;       /* enum rt_user */
  uint64_t accepted_ms;
  uint64_t active_ms;   /* last bytes read or written (idle timeout) */
  uint64_t out_soft_ms; /* since when output passed the soft limit; 0:
                           it does not */
  size_t held_bytes;    /* finished replies in the queue, not yet moved
                           to the output */
  char name[64];

  /* MULTI/EXEC and WATCH (clients.c). Queued commands are kept as the
   * arguments of the SABHA.TXN that EXEC sends: for each, its argc then
   * its arguments, each a u32 length and the bytes; or, for a command
   * whose arguments are wrong, "0" then its error (EXEC answers it). */
  bool in_multi;
  bool multi_dirty; /* a command failed to queue: EXEC aborts */
  uint32_t multi_n, multi_args;
  uint32_t multi_wrong_n; /* of multi_n: queued as their arguments' error */
  struct resp_buf multi;
  struct resp_buf watch_keys; /* u32 length and bytes, each */
  size_t watch_pending;       /* ... those of WATCHes not yet answered */
  uint32_t n_watch;
  uint64_t watch_rev;         /* the lowest index a WATCH was answered at */
  struct rt_watcher *watcher; /* SABHA.WATCH: the stream is one */

  /* Groups (groups.c): the group a MULTI's queued commands and the WATCHed
   * keys belong to, RT_GROUP_NONE before the first. */
  uint32_t multi_group;
  uint32_t watch_group;
  /* An in-process link between two groups of this process: a FORWARD
   * stream of group 0 and a CLIENT stream of the group it routes to, each
   * the other's `pair`, whose bytes rt_groups_pump() moves. The host never
   * sees them. */
  bool in_process;
  bool group_link;        /* group 0's link to a node that leads other
                             groups (groups.c) */
  bool pair_due;          /* output or a loss waits for the pump */
  bool pair_lost;         /* the other end went away */
  struct rt_stream *pair; /* NULL once either end is gone */
  struct list_link due;   /* in rt->pairs_due */
  /* Group 0's end: the last `unhanded` requests of `pending` wait for the
   * pump to hand them over parsed (groups.c, hand_over), holding about
   * `unhanded_bytes`; `unhanded_first` is the oldest of them (NULL when
   * none), so that a pump starts there instead of walking back through a
   * queue that may be millions long. */
  uint32_t unhanded;
  size_t unhanded_bytes;
  struct list_link *unhanded_first;

  /* FORWARD */
  uint32_t leader;
  bool connected;
  uint32_t skip_replies;    /* replies to our own SABHA.FORWARDED */
  struct list_link pending; /* struct rt_req.glink, in send order */
  /* The leader's clock (rt_fwd_scan): when the link last showed that the
   * other end works for it. The last reply; or, when nothing sent waited
   * for one, when a command next went; or when the link connected, or
   * opened. Never a command's arrival: how long it waited here says
   * nothing of the leader. */
  uint64_t progress_ms;
  /* Not yet connected: the earliest deadline_ms of the commands written
   * to it meanwhile (0: none). Past it the link is given up (rt_fwd_scan):
   * a leader whose port takes no connection holds nobody longer than no
   * leader would. */
  uint64_t connect_by_ms;
  /* With a cluster secret the link proves it (auth.c) before it carries
   * anything: meanwhile commands wait in `held`, unsent, as on a link not
   * yet connected. */
  uint8_t proof_state; /* enum rt_link_proof */
  struct resp_buf held;
};

/* ---- the node ------------------------------------------------------------ */

struct rt {
  struct rt_config cfg;
  struct rt_ports ports;
  struct sabha_engine *engine;
  struct wal *wal;
  struct kvstore *kv;
  struct app *app; /* the applications machine, beside the store */
  uint64_t applied;
  bool applying; /* entry `applied` is being applied, its commands some
                    applied and some not (apply_entry) */
  /* For compact_growth_pct: the size of the last snapshot taken, restored
   * or installed, and the bytes of the entries applied since it. */
  uint64_t snapshot_bytes;
  uint64_t applied_bytes;
  uint32_t last_leader;
  enum sabha_role last_role;
  bool conf_seen;           /* the membership was reported once */
  uint64_t last_conf_index; /* ... and last had this index */
  bool said_removed;        /* this node said it was removed */
  uint64_t removed_notice_saved; /* the removal notice kept on disk */
  uint64_t next_timeout_scan_ms;
  uint64_t started_wall_ms;
  /* Preferred leaders (runtime.c, prefer_leader): when each peer was last
   * heard from (by id), when this leader may next try a transfer, and how
   * many tries in a row left it leader (each doubles the wait). */
  uint64_t heard_ms[SABHA_NODES_MAX + 1];
  uint64_t prefer_next_ms;
  uint32_t prefer_failures;
  struct rt_timing timing; /* adaptive timing (timing.c) */
  bool dead;               /* ports.fatal was called: unwind, touch nothing */

  /* The ready batch being carried out. */
  bool in_ready; /* between engine ready and advance */
  struct sabha_ready rd;
  uint64_t hs_term; /* term and vote last written to the WAL */
  uint32_t hs_vote;
  /* A compaction the engine refused for now (SABHA_EBUSY) is not tried
   * again before this: each try snapshots the whole state. */
  uint64_t compact_retry_ms;

  /* Asynchronous storage writes (runtime.c, "the disk"). Batches are
   * written at once and fsynced in the background, one fsync at a time,
   * each covering every batch written before it began. The messages that
   * promise durability wait in held[]: held[hold] gathers those of batches
   * written since the running fsync began, held[hold ^ 1] those it
   * covers. */
  struct outbox held[2];
  uint32_t hold;
  uint64_t seq_last;    /* the newest batch written */
  uint64_t seq_syncing; /* the newest batch the running fsync covers */
  bool sync_wanted;     /* a batch written since then needs an fsync */
  bool sync_running;    /* a job is out: rt_sync_work, rt_sync_done */
  bool sync_thread;     /* ... and went to ports.sync_later */
  bool sync_overlap;    /* ... and entries were written since it began */
  struct wal_sync_job job;
  /* A snapshot written off the loop (maybe_compact, ports.snapshot_later):
   * its job, the bytes it writes (freed when it is done), whether it is
   * out, and whether it is back and waits for the fsync job to finish
   * before it is installed. */
  struct wal_snap_job snap_job;
  uint8_t *snap_buf;
  bool snap_running;
  bool snap_due;
  uint64_t snap_t0_us;   /* when compaction began */
  uint64_t snap_loop_us; /* ... and how long its part on the loop took */
  /* Where the next fsync runs (RT_FSYNC_AUTO): fsyncs on the loop in a row
   * (to RT_FSYNC_PROBE_EVERY), and how many more go to the thread since
   * one there last saw a batch written while it ran. */
  uint32_t fsync_loop_run;
  uint32_t fsync_thread_hold;

  struct list_link clients;
  uint32_t n_clients;
  /* The clients' buffers as the last scan found them (rt_clients_memory),
   * and the largest of the current and previous RT_RECENT_MAX_WINDOW_MS. */
  struct rt_clients_memory mem;
  /* What every client's queued transaction and WATCHed keys hold, kept as
   * they change: held to half of clients_memory_max (clients.c). */
  uint64_t txn_bytes;
  uint64_t mem_window_ms;
  uint64_t mem_in_max[2], mem_out_max[2]; /* [0] this window, [1] last */
  uint64_t next_stream_id;
  uint64_t link_challenges; /* challenges issued to forwarding links */
  struct list_link reaping; /* streams marked for closing */

  struct list_link deferred; /* requests held while in_ready */
  struct list_link wait_leader;
  struct list_link proposals; /* in proposal order */
  struct list_link reads;
  uint64_t next_read_id;
  uint64_t next_req_order;
  uint64_t last_stamp_ms; /* stamps on commands never go back */
  /* Where the stamps' clock was last known right (rt_stamp_ms): a stamp
   * and the monotonic clock when it was taken. */
  uint64_t stamp_anchor_ms, stamp_anchor_us;
  struct rt_req *req_pool; /* requests freed for reuse (requests.c) */
  uint32_t req_pool_n;
  uint64_t clock_proposed_ms; /* the last clock entry's stamp */
  /* The retry rules entry (maybe_propose_rules): proposed once this
   * leader has applied up to rules_ready_index (its log's end when it took
   * office), and again when rules_proposed_ms is a request timeout old
   * with the rules still not in force. */
  uint64_t rules_ready_index;
  bool rules_proposed;
  uint64_t rules_proposed_ms;
  /* The tag of the next app command proposed here: the node id in the top
   * byte, a counter from a random start below it, so that no other node,
   * nor this one before a restart, proposes the same tag (apply would
   * otherwise answer a client with another command's reply). */
  uint64_t next_tag;
  struct rt_app_command *app_cmds; /* a row per app command (commands.c) */
  size_t n_app_cmds;

  struct list_link fwds;
  struct rt_stream *fwd; /* the link to the current leader, or NULL */
  uint32_t fwd_failed_leader;
  uint64_t fwd_failed_ms;

  struct resp_arg *argv;   /* resp_limits_default.args_max, for parsing */
  uint8_t *inline_scratch; /* resp_limits_default.inline_bytes_max */
  uint32_t n_resume_due;   /* streams with resume_due set */
  struct resp_buf scratch; /* an immediate reply being built */
  uint8_t *enc;            /* a command being encoded */
  size_t enc_cap;
  /* A snapshot the engine adopted from a peer, built into fresh machines
   * before anything of its batch is persisted, so that bytes that do not
   * restore never reach the disk (a node that saved them could never start
   * again). They replace the live machines at step 4 of the batch. */
  struct kvstore *pending_kv;
  struct app *pending_app;

  struct rt_watch *watch; /* the event window and the watchers (watch.c) */

  /* Groups (groups.c): every group's runtime of this process (groups[g],
   * this one among them; n_groups 1: none but this), group 0's links to the
   * others, one for its clients and one for other nodes' forwarding links
   * (whose other end never forwards again), and the in-process streams
   * with work for the pump. */
  struct rt *groups[RT_GROUPS_MAX];
  struct rt_stream *glinks[RT_GROUPS_MAX][2];
  struct rt_stream *gnodes[SABHA_NODES_MAX + 1]; /* links to nodes, by id */
  struct list_link pairs_due;

  struct rt_metrics m;
  /* Messages refused by rt_step's term bounds are logged at most once per
   * RT_PEER_REFUSED_LOG_MS, with how many since. */
  uint64_t term_refused_log_due_ms;
  uint64_t term_refused_unlogged;
  /* rt_log_client's window: its start, the lines logged in it and those
   * left out. */
  struct log_window client_log;
};

/* ---- runtime.c ------------------------------------------------------------
 */
uint64_t rt_now_ms(const struct rt *rt);
uint64_t rt_wall_ms(const struct rt *rt);
uint64_t rt_mono_us(const struct rt *rt);
/* A command stamp: the wall clock, never going back, and running on at
 * half the monotonic clock's pace while the wall clock is behind. */
uint64_t rt_stamp_ms(struct rt *rt);
/* What a stamp taken now would be, without taking one. */
uint64_t rt_stamp_clock_ms(const struct rt *rt);
void rt_log(struct rt *rt, enum rt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning about one client's conduct (closed for a limit, a refused
 * link proof): as rt_log, within RT_CLIENT_LOG_LINES per
 * RT_CLIENT_LOG_MS; the first line of a later window says how many were
 * left out. */
void rt_log_client(struct rt *rt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Gives up: ports.fatal, then rt->dead. */
void rt_fatal(struct rt *rt, enum rt_fatal kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rt_kick(struct rt *rt);
const struct rt_addr *rt_client_addr_of(const struct rt *rt, uint32_t id);
void rt_latency_observe(struct rt_latency *l, uint64_t us);
/* The index a WATCH answered now names: every change with a later
 * revision came after it (runtime.c). */
uint64_t rt_watch_index(const struct rt *rt);
/* The clock reads of expiring data use: the log's (kvstore_clock_ms), or
 * with RT_BUG_WALL_CLOCK_READ this node's wall clock. */
uint64_t rt_read_clock_ms(const struct rt *rt);

/* ---- requests.c -----------------------------------------------------------
 */
struct rt_req *rt_req_alloc(struct rt *rt, struct rt_stream *c,
                            const struct rt_command *cmd, uint32_t argc,
                            const struct resp_arg *argv);
void rt_req_free(struct rt_req *r);
/* Frees the requests kept for reuse (rt_close). */
void rt_req_pool_free(struct rt *rt);
void rt_req_unlist(struct rt_req *r);
/* The reply is in r->reply: r leaves its list and waits for its turn. */
void rt_req_done(struct rt *rt, struct rt_req *r);
void rt_req_fail(struct rt *rt, struct rt_req *r, const char *msg);
/* Answers r, whose deadline_ms passed before a leader took it, -TRYAGAIN
 * no leader: none known, or the one known could not be reached. */
void rt_req_fail_no_leader(struct rt *rt, struct rt_req *r);
/* A request that needs the leader: execute here, forward, redirect or
 * wait. */
void rt_dispatch(struct rt *rt, struct rt_req *r);
void rt_wait_leader(struct rt *rt, struct rt_req *r);
/* Dispatches the requests that waited for a leader, in their order. */
void rt_retry_waiting(struct rt *rt);
/* Requests held back while a batch was carried out, in their order. */
void rt_run_deferred(struct rt *rt);
/* Executes a request on this node as if it led (the engine refuses when it
 * does not). */
void rt_exec_leader(struct rt *rt, struct rt_req *r);
/* Matching applied commands with the proposals that wait for them. */
void rt_proposal_applied_kv(struct rt *rt, const struct kvstore_hdr *hdr,
                            const struct kvstore_result *res);
void rt_proposal_applied_app(struct rt *rt, const struct app_hdr *hdr, int rc,
                             const struct app_reply *rep);
/* A snapshot replaced the state: answer the proposals it settles. */
void rt_proposals_after_snapshot(struct rt *rt);
/* Deadlines: requests that waited too long. */
void rt_scan_deadlines(struct rt *rt, uint64_t now_ms);
/* Leadership moved away: reads awaiting a ReadIndex here ask again. */
void rt_reads_lost_leadership(struct rt *rt);
void rt_note_read(struct rt *rt, const struct sabha_read_state *rs);
void rt_serve_reads(struct rt *rt);
/* The session machinery (a stream's kvstore session). */
void rt_session_registered(struct rt *rt, struct rt_stream *c,
                           uint64_t session);
void rt_session_failed(struct rt *rt, struct rt_stream *c, const char *msg);

/* ---- commands.c -----------------------------------------------------------
 */
/* The command table: name, arity and kind (LOCAL, READ, WRITE, LEADER). */
int rt_commands_init(struct rt *rt);
const struct rt_command *rt_command_find(const struct rt *rt,
                                         const struct resp_arg *name);
bool rt_command_is_read(const struct rt_command *cmd);
bool rt_command_is_local(const struct rt_command *cmd);
bool rt_command_is_app(const struct rt_command *cmd);
/* Checks, in Redis's order, the arity, that stream `c` may run the
 * command (auth.c), and the arguments; NULL when fine, else the error
 * (possibly written into msg, which holds RT_CHECK_MSG_BYTES_MIN bytes
 * or more), with *in_args true when only the arguments are wrong (Redis
 * finds those when the command runs: inside MULTI, EXEC reports them). */
#define RT_CHECK_MSG_BYTES_MIN 160u
/* The bytes of a client's argument an error reply echoes, at most (EXPIRE's
 * "ERR Unsupported option X"). */
#define RT_OPTION_ECHO_BYTES_MAX 64u
const char *rt_command_check(const struct rt_stream *c,
                             const struct rt_command *cmd, uint32_t argc,
                             const struct resp_arg *argv, char *msg,
                             size_t msg_size, bool *in_args);
/* True for the commands that change the cluster rather than the data
 * (SABHA.LEADER, SABHA.FORWARDED): with admin-pass set, only the admin
 * user runs them. */
bool rt_command_is_admin(const struct rt_command *cmd);
/* True for the commands a connection may send before it authenticates:
 * AUTH, HELLO (which may carry AUTH) and QUIT. */
bool rt_command_is_no_auth(const struct rt_command *cmd);
/* Writes a command's name in lower case, as Redis quotes it in errors. */
size_t rt_command_lower_name(const struct rt_command *cmd, char *out,
                             size_t size);
/* Answers a LOCAL command into b. */
void rt_exec_local(struct rt_stream *c, const struct rt_command *cmd,
                   uint32_t argc, const struct resp_arg *argv,
                   struct resp_buf *b);
/* The value of a read, from this node's state, now. */
void rt_exec_read(struct rt *rt, const struct rt_command *cmd, uint32_t argc,
                  const struct resp_arg *argv, struct resp_buf *b);
/* Encodes a write into rt->enc with `hdr` (kvstore) or `ahdr` (app);
 * returns its size, 0 when memory is short. */
size_t rt_encode_write(struct rt *rt, const struct rt_req *r,
                       const struct kvstore_hdr *hdr);
size_t rt_encode_app_write(struct rt *rt, const struct rt_req *r,
                           const struct app_hdr *ahdr);
/* SABHA.LEADER's target. */
uint32_t rt_command_leader_target(const struct rt_req *r);
/* SABHA.MEMBER's change, or false for another command. */
bool rt_command_member_change(const struct rt_req *r,
                              enum sabha_change_type *type, uint32_t *id,
                              char *addr, size_t addr_size);
uint8_t *rt_enc_reserve(struct rt *rt, size_t size);
void rt_write_kv_result(struct resp_buf *b, const struct kvstore_result *res);
/* Redis's glob matching (KEYS, SCAN MATCH), and the literal prefix every
 * match starts with. */
bool rt_glob_match(const uint8_t *p, size_t pn, const uint8_t *s, size_t sn);
size_t rt_glob_prefix(const uint8_t *p, size_t n);
/* What clients.c does itself with a command: MULTI, EXEC, DISCARD,
 * UNWATCH, WATCH (whose reply it turns into +OK), SABHA.WATCH; or
 * RT_MC_NONE. */
enum rt_multi_cmd {
  RT_MC_NONE = 0,
  RT_MC_MULTI,
  RT_MC_EXEC,
  RT_MC_DISCARD,
  RT_MC_UNWATCH,
  RT_MC_WATCH,
  RT_MC_SABHA_WATCH,
};
enum rt_multi_cmd rt_command_multi(const struct rt_command *cmd);
/* Whether a transaction may hold the command (with argc arguments). */
bool rt_command_txn_ok(const struct rt_command *cmd, uint32_t argc);
const struct rt_command *rt_command_txn(const struct rt *rt);

/* ---- watch.c --------------------------------------------------------------
 */
struct rt_watch;
struct rt_watcher;
/* The window of recent events (from `first_rev` on, every one) and the
 * watchers. Returns 0 or SABHA_ENOMEM. */
int rt_watch_init(struct rt *rt, uint64_t first_rev);
void rt_watch_free(struct rt *rt);
/* The store's on_event: keeps the event in the window. */
void rt_watch_event(void *ctx, const struct kvstore_event *ev);
/* After each applied entry: hands the new events to the watchers whose
 * prefix they match (only those are visited), sends the batches that are
 * due. */
void rt_watch_deliver(struct rt *rt);
/* On ticks: rt_watch_deliver, and the watchers whose batch waits for its
 * time or whose output was full. */
void rt_watch_tick(struct rt *rt);
/* In each turn of the loop (rt_run): watchers that stopped at the bound of
 * events one looks at per delivery go on. Returns whether some still
 * have events left to look at (run again soon). */
bool rt_watch_catch_up(struct rt *rt);
/* A snapshot replaced the state at `index`: the window starts again after
 * it, and watchers that had not reached it are told and closed. */
void rt_watch_reset(struct rt *rt, uint64_t index);
/* SABHA.WATCH prefix [FROM rev] [BATCH ms]: makes c a watcher, or writes
 * the error into b. */
void rt_watch_start(struct rt_stream *c, uint32_t argc,
                    const struct resp_arg *argv, struct resp_buf *b);
/* The stream's output was written: a watcher it paused goes on at the
 * loop's next turn (rt_watch_catch_up). */
void rt_watch_drained(struct rt_stream *c);
/* The stream goes away: forget its watcher. */
void rt_watch_stop(struct rt_stream *c);
/* The oldest revision FROM may name here, and the newest event's. */
uint64_t rt_watch_first_rev(const struct rt *rt);

/* ---- clients.c ------------------------------------------------------------
 */
/* Moves finished replies from the queue to the output. */
void rt_client_flush(struct rt_stream *c);
/* Every RT_TIMEOUT_SCAN_MS: closes connections on probation that did not
 * say they are forwarding links in time, idle clients, clients over the
 * soft output limit for too long; sums the clients' buffers and applies
 * the memory budget. */
void rt_clients_scan(struct rt *rt, uint64_t now_ms);
/* A request's reply is final: counts it against its stream's output. */
void rt_client_hold(struct rt_stream *c, struct rt_req *r);
/* Parses the input of streams that were paused and may go on. */
void rt_clients_resume(struct rt *rt);
/* The group's end `p` of an in-process link takes one command, already
 * parsed by group 0, as if it had parsed it from its input (argv is
 * copied); false when `p` takes nothing now (it stopped reading, and asks
 * for more when it resumes: rt_pair_kick of its other end). Call
 * rt_pair_commands_done after a run of them. */
bool rt_pair_command(struct rt_stream *p, uint32_t argc,
                     const struct resp_arg *argv);
void rt_pair_commands_done(struct rt_stream *p);
/* The runtime is done with a stream: requests unlinked now, handed to the
 * host from rt_reap(). */
void rt_stream_close(struct rt_stream *s, bool flush);
/* Hands streams marked for closing to the host. */
void rt_reap(struct rt *rt);
/* A forwarding link's stream, not yet connected. */
struct rt_stream *rt_stream_new_forward(struct rt *rt);
/* The group's end of an in-process link from group 0 (groups.c): a client
 * stream the host never sees. */
struct rt_stream *rt_stream_new_pair(struct rt *rt);
/* Frees every stream and request at once: a crash (rt_close_crash). */
void rt_streams_free_all(struct rt *rt);
/* The output grew: tell the host. */
void rt_stream_kick_output(struct rt_stream *s);

/* ---- forward.c ------------------------------------------------------------
 */
void rt_forward(struct rt *rt, struct rt_req *r);
void rt_fwd_leader_changed(struct rt *rt);
void rt_fwd_close_all(struct rt *rt);
void rt_fwd_scan(struct rt *rt, uint64_t now_ms);
/* Request `r`, just written to link `f`'s output, waits in its pending
 * list for its reply (RT_IN_FORWARD); sent once the link is connected, and
 * the host told. Its leader wait starts now if it had not. */
void rt_fwd_queued(struct rt_stream *f, struct rt_req *r);
/* Where a command for link `f` is written: its output, or while it proves
 * the cluster secret, the buffer that holds commands until it has. */
struct resp_buf *rt_fwd_out(struct rt_stream *f);
/* Opens a forwarding link to node `node`, or returns NULL. */
struct rt_stream *rt_fwd_open(struct rt *rt, uint32_t node);
void rt_fwd_input(struct rt_stream *f);
void rt_fwd_connected(struct rt_stream *f);
/* The link is gone: its requests wait again or fail. */
void rt_fwd_lost(struct rt_stream *f, const char *why);
/* Appends argv as a multibulk command. */
void rt_write_command(struct resp_buf *b, uint32_t argc,
                      const struct resp_arg *argv);

/* ---- groups.c -------------------------------------------------------------
 */
#define RT_GROUP_NONE UINT32_MAX
/* What a command's keys say of its group: RT_GROUP_ANY (no key: group 0
 * serves it, or the node itself for a local command), RT_GROUP_CROSS (its
 * keys are in different groups, or it reads every group: refused, with
 * the reason in msg), or the group. */
#define RT_GROUP_ANY (UINT32_MAX - 1)
#define RT_GROUP_CROSS (UINT32_MAX - 2)
uint32_t rt_command_group(const struct rt *rt, const struct rt_command *cmd,
                          uint32_t argc, const struct resp_arg *argv, char *msg,
                          size_t msg_size);
/* True when this runtime routes its clients' commands to other groups. */
bool rt_routes(const struct rt *rt);
/* The runtime of group g of this process. */
struct rt *rt_group_rt(const struct rt *rt, uint32_t g);
/* Sends request r (r->group another group) over the in-process link. */
void rt_group_route(struct rt *rt, struct rt_req *r);
/* An in-process stream's output or loss: queued for the pump. */
void rt_pair_kick(struct rt_stream *s);
/* An in-process stream leaves: its other end hears of it at the pump. */
void rt_pair_unlink(struct rt_stream *s);
/* INFO's # Groups section, and the fields of one group. */
void rt_groups_info(struct rt *rt, struct resp_buf *b);

/* ---- auth.c ---------------------------------------------------------------
 */
/* True when `attempt` equals `secret`, in a time that depends on the
 * attempt's length only, never on where the two first differ. */
bool rt_password_equal(const uint8_t *secret, size_t secret_bytes,
                       const uint8_t *attempt, size_t attempt_bytes);
/* The user a new client stream is before any AUTH. */
enum rt_user rt_auth_initial_user(const struct rt *rt);
/* The refusal a client from another host gets in protected mode, or NULL
 * when this one may connect. */
const char *rt_auth_accept_refusal(const struct rt *rt, bool loopback);
/* NULL when stream `c` may run `cmd`, else the error (-NOAUTH, or -NOPERM
 * written into msg). */
const char *rt_auth_refusal(const struct rt_stream *c,
                            const struct rt_command *cmd, char *msg,
                            size_t msg_size);
/* Logs stream `c` in as `user` (NULL: AUTH's one-argument form) with
 * `password`; on success c->user is set. Returns NULL or the error to
 * answer (c->user is then unchanged, as in Redis). */
const char *rt_auth_login(struct rt_stream *c, const struct resp_arg *user,
                          const struct resp_arg *password);
/* AUTH [user] password. */
void rt_exec_auth(struct rt_stream *c, uint32_t argc,
                  const struct resp_arg *argv, struct resp_buf *b);
/* SABHA.FORWARDED [node-id proof]: marks another node's forwarding link,
 * at once without a cluster secret; with one, its first form answers a
 * challenge and only the second, with the proof, marks the link. */
void rt_exec_forwarded(struct rt_stream *c, uint32_t argc,
                       const struct resp_arg *argv, struct resp_buf *b);
/* A stream that was challenged sent something other than its proof: it
 * is no link (counted, logged), and its command runs as a client's. */
void rt_auth_link_unproved(struct rt_stream *c);
/* Where a forwarding link stands with its proof of the cluster secret. */
enum rt_link_proof {
  RT_PROOF_NONE = 0,  /* proved, or none needed: it carries commands */
  RT_PROOF_CHALLENGE, /* waits for the leader's challenge */
  RT_PROOF_VERDICT,   /* sent its proof, waits for the leader's +OK */
};
/* Appends the SABHA.FORWARDED with the proof this node's link to node
 * `to` answers `challenge` with. */
void rt_auth_write_link_proof(const struct rt *rt, uint32_t to,
                              const uint8_t *challenge, struct resp_buf *b);
/* The challenge in `reply` (one whole RESP reply, "+CHALLENGE <hex>"):
 * true with it in `challenge`, else false. */
bool rt_auth_parse_challenge(const uint8_t *reply, size_t len,
                             uint8_t challenge[RT_LINK_KEY_BYTES]);
/* Appends the AUTH a forwarding link sends first, with this node's
 * strongest credentials; returns the number of commands written (0 when
 * no password is configured). */
uint32_t rt_auth_write_link_login(const struct rt *rt, struct resp_buf *b);

/* ---- apps.c ---------------------------------------------------------------
 */
size_t rt_app_encode(struct rt *rt, enum app_op op, uint32_t argc,
                     const struct resp_arg *argv, const struct app_hdr *hdr);
void rt_app_read(struct rt *rt, enum app_op op, uint32_t argc,
                 const struct resp_arg *argv, uint64_t now_ms,
                 struct resp_buf *b);
void rt_write_app_reply(struct resp_buf *b, const struct app_reply *rep);
void rt_app_info(struct rt *rt, struct resp_buf *b);

#endif
