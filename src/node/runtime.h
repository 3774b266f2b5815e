/* The node runtime: one member of a sabha cluster, independent of the world
 * it runs in.
 *
 * An engine (include/sabha/engine.h) decides; a write-ahead log
 * (storage/wal.h) remembers; a key-value store and the applications machine
 * (sm/kvstore.h, sm/app.h) apply. The runtime is where they meet: it drives
 * the engine's ready batches (persist, send, apply, answer), owns the
 * clients' pending work (proposals waiting for their commit, reads waiting
 * for their index, sessions and dedup, forwarding to the leader), takes
 * snapshots and installs them. It exists once, and two hosts run it:
 *
 *   sabhad (src/server)  libuv timers and sockets, the TCP peer transport,
 *                        POSIX files;
 *   sabha sim (src/sim)  virtual time, simulated links and clients, the
 *                        in-memory file system with faults.
 *
 * So every line that answers a real client also runs, under every fault and
 * seed, in the simulator, and a failing seed replays it exactly. What stays
 * outside is only the thin adapters: the host's struct rt_ports below.
 *
 * The world reaches the runtime through four small interfaces:
 *
 *   time     the host calls rt_tick() every tick_ms and answers now_ms()
 *            (monotonic) and wall_ms() (stamps on commands, TIME);
 *   peers    rt_step() hands in a peer's message; ports.send() sends one;
 *   clients  byte streams (struct rt_stream): a client connection speaking
 *            RESP2, or a forwarding link this node opened to the leader's
 *            client port. The host moves bytes; the runtime parses,
 *            executes and replies;
 *   disk     the WAL, over the struct wal_io the config names (POSIX or
 *            memfs). Batches are written at once and fsynced in the
 *            background: the host may run the fsync elsewhere and later
 *            (ports.sync_later, rt_sync_work, rt_sync_done), sabhad on a
 *            disk thread, the simulator after a virtual latency; the node
 *            goes on meanwhile, and what waits for durability (its own
 *            count towards a commit, votes, acknowledgements) waits for
 *            the fsync alone.
 *
 * After any input the host calls rt_run(), which carries out what is due:
 * the engine's ready batches in the order of engine.h, replies, deferred
 * work. The runtime asks for it with ports.kick().
 *
 * Rules for hosts. One thread. A host never calls the runtime from inside
 * one of its port callbacks (the runtime may be in the middle of a list);
 * it queues what it learns there and acts after the call returns. The one
 * exception is rt_sync_work(), which touches nothing but the fsync's job
 * and may run on another thread, or inside ports.sync_later.
 *
 * Error replies follow one rule that clients (and the simulator's clients,
 * which check it) rely on: a write whose outcome the node cannot know is
 * answered with an error that says its outcome is "unknown"; any other
 * -TRYAGAIN means the command was not carried out and may be sent again.
 * docs/operations.md lists them. */
#ifndef SABHA_NODE_RUNTIME_H
#define SABHA_NODE_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/resp.h"
#include "sabha/engine.h"
#include "storage/wal.h"

#define RT_HOST_BYTES_MAX 64u
#define RT_PATH_BYTES_MAX 1024u
#define RT_CLUSTER_ID_BYTES_MAX 64u
#define RT_PASSWORD_BYTES_MAX 256u
/* The key forwarding links prove the cluster secret with, and the key
 * that makes a node's challenges to them unpredictable (auth.c). */
#define RT_LINK_KEY_BYTES 32u
/* Preferred leaders: a member's priority is 0..RT_PRIORITY_MAX (0: never
 * handed leadership by preference), RT_PRIORITY_DEFAULT when not set. */
#define RT_PRIORITY_MAX 1000u
#define RT_PRIORITY_DEFAULT 1u
/* Consensus groups one process hosts (sabhad --groups): each its own
 * engine, log and leader (groups.c). */
#define RT_GROUPS_MAX 64u

/* A member's client (RESP) address, for -MOVED and INFO. */
struct rt_addr {
  uint32_t id;
  char host[RT_HOST_BYTES_MAX];
  uint16_t port;
};

/* A member's address as sabhad writes it into a membership change
 * (sabha_member.addr): "peer=HOST:PORT,client=HOST:PORT", the port peers
 * connect to and the port clients (and forwarding links) connect to. */
#define RT_MEMBER_ADDR_FMT "peer=%s:%u,client=%s:%u"
/* Splits one into its two addresses (ids left 0). Returns false for text
 * that is not in that form (the host is 1..RT_HOST_BYTES_MAX-1 bytes, the
 * ports 1..65535). */
bool rt_member_addr_parse(const char *addr, struct rt_addr *peer,
                          struct rt_addr *client);

enum rt_redirect {
  RT_REDIRECT_FORWARD = 0, /* relay commands to the leader */
  RT_REDIRECT_MOVED = 1,   /* answer -MOVED 0 host:port */
};

/* Deliberately broken host rules, for proving that the simulator's
 * checkers see the runtime (as enum sabha_bug does for engines). Never set
 * outside the simulator's --bug flag and tests. */
enum rt_bug {
  /* Acknowledge before the fsync: carry out steps 3-6 of a ready batch at
   * once and sync later. A crash in between loses acknowledged state. */
  RT_BUG_ACK_BEFORE_FSYNC = 1u << 0,
  /* Serve every read from the local state at once, without ReadIndex. */
  RT_BUG_STALE_READ = 1u << 1,
  /* A proposal whose entry arrives inside an installed snapshot is failed
   * as "not applied" once a later proposal applies, and its session reset:
   * a client that believes it and retries applies the command twice. */
  RT_BUG_SNAPSHOT_REPLY = 1u << 2,
  /* Reads of expiring data use this node's wall clock, not the log's. */
  RT_BUG_WALL_CLOCK_READ = 1u << 3,
  /* SABHA.WATCH ... FROM r starts after revision r instead of at it: a
   * watcher that resumes loses that revision's events. */
  RT_BUG_WATCH_RESUME_SKIP = 1u << 4,
  /* The store applies a transaction's first command only
   * (KVSTORE_BUG_TXN_PARTIAL). */
  RT_BUG_TXN_PARTIAL = 1u << 5,
  /* Adaptive timing only ever rises: after a latency spike the node keeps
   * the spike's timeouts for good (the simulator's timing test catches
   * it). */
  RT_BUG_TIMING_RATCHET = 1u << 6,
  /* The watch window rebuilds an APPEND's value with the added bytes of
   * its chain newest first after the whole value they extend: a watcher
   * gets the right length and the wrong bytes (the simulator's watch
   * checker sees them). */
  RT_BUG_WATCH_DELTA_ORDER = 1u << 7,
};

/* Timing (timing.c, docs/operations.md "Adaptive timing"). Fixed: the
 * engine keeps the timeouts of rt_config.engine. Adaptive: every node
 * measures its round trips to its peers and sets its election timeout to
 * RT_TIMING_RTOS times the round-trip timeout (RFC 6298) within which it
 * hears from a quorum (and from its leader), between the floor and the
 * ceiling below; the maximum is twice that, the heartbeat a fifth. */
enum rt_timing_mode {
  RT_TIMING_FIXED = 0,
  RT_TIMING_ADAPTIVE = 1,
};
#define RT_TIMING_FLOOR_MS_DEFAULT 150u
#define RT_TIMING_CEILING_MS_DEFAULT 5000u
#define RT_TIMING_FLOOR_MS_MIN 10u /* heartbeats every 2 ms at least */
#define RT_TIMING_CEILING_MS_MAX (SABHA_TIMING_MS_MAX / 2)

/* The runtime's own messages, which the engine never sees: message types
 * from RT_MSG_RUNTIME_BASE on are the runtime's in every protocol (engines
 * number theirs from 1), and travel in the engine's frames (docs/wire.md,
 * "Runtime messages"). A ping carries `context` (a sequence number) and
 * `index` (the sender's heartbeat in ms); a pong echoes the context and
 * carries its sender's heartbeat. Every other field is zero. */
#define RT_MSG_RUNTIME_BASE 0x7f000000u
#define RT_MSG_PING (RT_MSG_RUNTIME_BASE + 1u)
#define RT_MSG_PONG (RT_MSG_RUNTIME_BASE + 2u)

/* Where an fsync runs (runtime.c, "the disk"; docs/operations.md "Where
 * fsyncs run"), for hosts that offer ports.sync_later. Loop: on the
 * loop's thread at once, as a host without it does; the loop takes no
 * input meanwhile, and costs no hand-off. Thread: always through
 * sync_later (sabhad's disk thread); the loop goes on, and each fsync pays
 * a hand-off and a wake-up. Auto: per fsync, the thread while batches
 * arrive during fsyncs (load that the loop can serve meanwhile), else the
 * loop; RT_FSYNC_PROBE_EVERY loop fsyncs in a row are followed by one on
 * the thread, to see whether load has come. */
enum rt_fsync_mode {
  RT_FSYNC_AUTO = 0,
  RT_FSYNC_LOOP = 1,
  RT_FSYNC_THREAD = 2,
};
/* Auto: after this many fsyncs on the loop in a row, one goes to the
 * thread: a batch written while it runs shows load. The 1-connection p50
 * pays the hand-off on one fsync in this many, so not at all. */
#define RT_FSYNC_PROBE_EVERY 16u
/* Auto: a batch written during an fsync on the thread keeps the next this
 * many there; when none of them sees one, fsyncs return to the loop. */
#define RT_FSYNC_THREAD_HOLD 8u
/* "auto", "loop", "thread": true with *mode set, or false for other text. */
bool rt_fsync_mode_parse(const char *text, enum rt_fsync_mode *mode);

struct rt_config {
  /* The engine's settings, complete: id, voters, timeouts, seed, bugs. The
   * host fills them (sabha_config_init and its own choices). */
  struct sabha_config engine;
  char protocol[16];
  /* The consensus group this runtime is, of the n_groups (1..RT_GROUPS_MAX)
   * the process hosts (groups.c). Group 0 takes the clients and routes each
   * command to the group of its key; the others serve only what it routes.
   * Every member must host the same number of groups. */
  uint32_t group;
  uint32_t n_groups;

  /* Storage. */
  char data_dir[RT_PATH_BYTES_MAX];
  const struct wal_io *io; /* NULL: POSIX; copied */
  uint32_t wal_segment_bytes;
  bool discard_corrupt_log; /* see wal.h DISCARDING */
  bool refuse_corrupt_log;  /* refuse to start on damage, see REPAIRING */

  enum rt_fsync_mode fsync; /* where fsyncs run: RT_FSYNC_AUTO */

  uint64_t compact_entries; /* snapshot when the log has this many
                               applied entries past the last one; 0:
                               never */
  /* ... or when those entries hold this many bytes (0: entries alone).
   * An entry may carry one command or a batch of many (Raft and
   * Multi-Paxos both put the commands proposed together in one entry), so
   * a count alone would let the log in memory grow with the batch size. */
  uint64_t compact_bytes;
  /* ... and when the entries applied since the last snapshot add up to
   * this percentage of its size (0: entries alone). Like an append-only
   * file rewritten when it has doubled, each snapshot then costs at most
   * as many bytes as the writes since the one before, however large the
   * state: snapshotting a big store every compact_entries would spend
   * more on the snapshots than on the log. */
  uint32_t compact_growth_pct;
  /* The largest snapshot the node saves or takes from a peer, in bytes;
   * SABHA_SNAPSHOT_BYTES_MAX, its default, is the most. The store's and
   * the applications' bounds keep a full state below the default (a
   * state above it is not compacted, and the log keeps it; the node
   * says so). Tests set a small one. */
  uint64_t snapshot_bytes_max;
  /* The watch window: the recent changes kept for SABHA.WATCH ... FROM
   * (watch.c), in bytes; RT_WATCH_WINDOW_BYTES_MAX, its default, is the
   * most. The simulator draws small ones, so that the window wraps and
   * drops events all the time under its watch checker. */
  uint64_t watch_window_bytes;
  uint32_t leader_wait_ms;     /* a command waits this long for a leader */
  uint32_t request_timeout_ms; /* a write or read waits this long for its
                                  commit or ReadIndex */
  uint32_t clients_max;        /* client streams (forwarding links of other
                                  nodes included; RT_FORWARD_SLOTS more are
                                  kept for them) */
  /* Limits on one client (clients.c, docs/operations.md "Limits"). Other
   * nodes' forwarding links are exempt from all but the query buffer: they
   * carry many clients, and their node reads them at once. */
  uint32_t idle_timeout_s; /* close a client that sent and received
                              nothing this long and waits for nothing
                              (Redis's `timeout`); 0: never */
  uint64_t out_hard_bytes; /* unsent replies past this: closed at once
                              (client-output-buffer-limit); 0: none */
  uint64_t out_soft_bytes; /* ... past this for out_soft_s seconds in a
                              row: closed; 0: none */
  uint32_t out_soft_s;
  uint64_t query_bytes_max; /* input not yet parsed past this: an error,
                               then closed (client-query-buffer-limit) */
  /* All clients' buffers together (maxmemory-clients); 0: no budget. Past
   * half of it the clients holding the most stop being read; past all of
   * it the largest are closed until the rest fit. */
  uint64_t clients_memory_max;
  /* The applications' retry rules (sm/app.h): app ids remembered, and the
   * least time each is kept. Every member should agree; they take effect
   * through the log, where a leader whose settings differ from the rules
   * in force proposes them (runtime.c, maybe_propose_rules). */
  uint32_t dedup_max;
  uint32_t dedup_window_ms;
  uint32_t clock_ms;  /* the leader proposes a clock entry when
                         something stored may have expired and the
                         log's clock lags its own by this much; 0:
                         never (expiry then waits for writes) */
  enum rt_redirect redirect;
  /* Adaptive timing's bounds on the election timeout (its minimum; the
   * maximum is twice it): RT_TIMING_FLOOR_MS_MIN <= floor <= ceiling <=
   * RT_TIMING_CEILING_MS_MAX. The engine's configured timing is the first,
   * until a quorum's round trips are known. */
  enum rt_timing_mode timing;
  uint32_t election_timeout_ms_floor;
  uint32_t election_timeout_ms_ceiling;
  /* Every member's priority by id, this node's among them (rt_config_init:
   * RT_PRIORITY_DEFAULT for all). A leader hands leadership to a caught-up
   * voter of strictly higher priority (runtime.c, prefer_leader); every
   * member should hold the same map, or two could hand it back and forth. */
  uint32_t priority[SABHA_NODES_MAX + 1];
  struct rt_addr peer_clients[SABHA_NODES_MAX]; /* may be empty */
  uint32_t n_peer_clients;
  char cluster_id[RT_CLUSTER_ID_BYTES_MAX + 1];
  /* Client authentication (auth.c). requirepass: the default user's
   * password; none (0 bytes): every connection is the default user at
   * once, as in Redis. admin_pass: the admin user's, which alone may run
   * the commands that change the cluster; none: they follow requirepass.
   * protected_mode: with no requirepass, clients from other hosts are
   * refused at rt_stream_accept. Every member should agree on all three:
   * a follower's forwarding link logs in to the leader with its own. */
  uint8_t requirepass[RT_PASSWORD_BYTES_MAX];
  uint32_t requirepass_bytes;
  uint8_t admin_pass[RT_PASSWORD_BYTES_MAX];
  uint32_t admin_pass_bytes;
  bool protected_mode;     /* default true */
  /* Forwarding links and the cluster secret (auth.c). With link_key_set,
   * a connection that says SABHA.FORWARDED is taken for another node's
   * forwarding link only once it has answered this node's challenge with
   * a keyed hash under link_key (rt_link_key_derive, from the secret), and
   * this node's own links answer the same way: every member must hold the
   * same secret. link_challenge_key makes the challenges unpredictable:
   * random in sabhad. Without a secret a link is taken on its word. */
  bool link_key_set;
  uint8_t link_key[RT_LINK_KEY_BYTES];
  uint8_t link_challenge_key[RT_LINK_KEY_BYTES];
  uint64_t kv_hash_key[2];  /* kvstore_config.hash_key: random in sabhad */
  uint64_t app_hash_key[2]; /* app_config.hash_key: random in sabhad */
  uint64_t tag_seed;       /* the first app tag's low bits: random */
  uint32_t bugs;           /* enum rt_bug */
  uint32_t app_bugs;       /* app_config.bugs */
  bool verbose;            /* DEBUG log lines */
};

/* The key forwarding links prove the cluster secret with
 * (rt_config.link_key): a hash of the secret (secret_bytes >= 1) under a
 * label of its own, so that it is no key the peer transport uses. */
void rt_link_key_derive(const uint8_t *secret, size_t secret_bytes,
                        uint8_t key[RT_LINK_KEY_BYTES]);

/* Fills `cfg` with sabhad's defaults for node `id` of `voters`. */
void rt_config_init(struct rt_config *cfg, uint32_t id, const uint32_t *voters,
                    uint32_t n_voters);

enum rt_log_level { RT_LOG_DEBUG = 0, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR };

/* Why the runtime gave up (ports.fatal). */
enum rt_fatal {
  RT_FATAL_DISK = 1, /* a write or fsync failed: nothing unsynced may be
                        trusted; restart from the disk */
  RT_FATAL_MEMORY,   /* out of memory where a replica cannot skip work */
  RT_FATAL_CONTRACT, /* an engine or state-machine contract was broken: a
                        bug, never an operating condition */
};

enum rt_stream_kind {
  RT_STREAM_CLIENT = 0, /* a RESP client (or another node's forwarding link)
                           connected to this node */
  RT_STREAM_FORWARD,    /* this node's link to the leader's client port */
};

struct rt;
struct rt_stream;

/* What the host knows that INFO, /status and /metrics print. */
struct rt_host_info {
  long pid;
  uint16_t client_port;
  uint16_t http_port;
  const char *bind; /* NULL: unknown */
  uint64_t peers_connected;
  uint64_t peer_bytes_sent;
  uint64_t peer_bytes_received;
  /* The host's fsync jobs, and the logs they synced summed over them: a
   * process with many groups syncs several logs per job. */
  uint64_t disk_sync_jobs;
  uint64_t disk_sync_logs;
};

/* The result of one applied command, for observers. */
struct rt_applied {
  bool is_app;
  const struct kvstore_result *kv; /* !is_app */
  const struct app_reply *app;     /* is_app */
};

struct rt_ports {
  void *ctx; /* the first argument of every call */

  uint64_t (*now_ms)(void *ctx);  /* monotonic milliseconds */
  uint64_t (*wall_ms)(void *ctx); /* wall clock, ms since the Unix epoch */
  uint64_t (*mono_us)(void *ctx); /* monotonic microseconds, for latency */

  /* Sends a message to a peer. Best effort: engines cope with loss. */
  void (*send)(void *ctx, const struct sabha_msg *m);

  /* Stream `s` has output: take it with rt_stream_out_take() when no write
   * of it is in flight. */
  void (*stream_output)(void *ctx, struct rt_stream *s);
  /* Stop (true) or resume (false) reading `s`: its queue or its unsent
   * replies are at their bound. */
  void (*stream_pause)(void *ctx, struct rt_stream *s, bool paused);
  /* The runtime is done with `s`: close the connection once what
   * rt_stream_out_take() gave is written (or at once, if `flush` is false),
   * then call rt_stream_free(s). */
  void (*stream_close)(void *ctx, struct rt_stream *s, bool flush);
  /* Opens forwarding link `s` to node `node`'s client port. Returns 0 (then
   * exactly one of rt_stream_connected(s) or rt_stream_lost(s) follows), or
   * nonzero when it cannot even start (the runtime frees `s` itself). */
  int (*stream_connect)(void *ctx, struct rt_stream *s, uint32_t node);

  /* Optional. An fsync is due that rt_config.fsync sends off the loop.
   * True: the host will call rt_sync_work() (on any thread, at any time
   * from now) and then, on the runtime's thread, rt_sync_done(); the node
   * goes on taking input meanwhile. False or NULL: the runtime syncs at
   * once. */
  bool (*sync_later)(void *ctx);
  /* Optional. A snapshot of the state is ready to be written: true, the
   * host will call rt_snapshot_work() (on any thread, beside any fsync
   * job) and then, on the runtime's thread, rt_snapshot_done(); the node
   * goes on meanwhile. False or NULL: the runtime writes it at once, on
   * its own thread (a pause as long as writing and fsyncing the whole
   * state takes). */
  bool (*snapshot_later)(void *ctx);
  /* Optional. The runtime is about to sync on its own thread: a host that
   * holds peer messages back to send a turn's together sends what it
   * holds now, so that a leader's appends reach its followers while its
   * own fsync runs rather than after it. Must not call the runtime. */
  void (*flush)(void *ctx);
  /* Work is due: call rt_run() soon (not from inside this call). */
  void (*kick)(void *ctx);
  /* The runtime cannot go on; `why` says why. It returns from the call it
   * is in without touching more state; the host then frees it
   * (rt_close_crash) and restarts or exits. */
  void (*fatal)(void *ctx, enum rt_fatal kind, const char *why);
  void (*log)(void *ctx, enum rt_log_level level, const char *text);
  /* Optional: what INFO and /status print about the host. */
  void (*host_info)(void *ctx, struct rt_host_info *out);

  /* Optional observers, for the simulator's checkers. */
  /* A ready batch is about to be taken: false stops rt_run before it (the
   * host wants to act first, say crash the node before its first appends
   * leave); the host calls rt_run again later. */
  bool (*before_ready)(void *ctx);
  void (*synced)(void *ctx);  /* an fsync of the log completed */
  void (*written)(void *ctx); /* a ready batch was written, not synced */
  void (*entry_applied)(void *ctx, const struct sabha_entry *e);
  void (*command_applied)(void *ctx, uint64_t index, uint32_t pos,
                          const uint8_t *cmd, size_t len,
                          const struct rt_applied *res);
  void (*snapshot_installed)(void *ctx, uint64_t index);
  /* Optional: the membership in force changed (a change appended, one
   * truncated away, a snapshot installed, or at start): sabhad learns new
   * members' addresses from it. */
  void (*membership_changed)(void *ctx, const struct sabha_membership *m);
};

/* ---- lifecycle ------------------------------------------------------------
 */

/* Opens the node: recovers the WAL in cfg->data_dir, restores the state
 * machines from the snapshot and starts the engine. Returns 0 and sets
 * *out; 1 for an operating failure (cannot create the store, the disk
 * failed); 2 when the disk holds something that must not be used (the log
 * or the snapshot is damaged, or the settings contradict it): `err` says
 * what and names the file. */
int rt_open(struct rt **out, const struct rt_config *cfg,
            const struct rt_ports *ports, char *err, size_t err_size);

/* Syncs the WAL and closes it cleanly, closes every stream (the host gets
 * stream_close for each, and may call only rt_stream_out_take and
 * rt_stream_free on them afterwards) and frees the node. Returns 0, or 1
 * when the final sync failed. */
int rt_close(struct rt *rt);
/* Frees everything without a sync or a clean close: a crash (the host must
 * forget its streams, which are freed here). */
void rt_close_crash(struct rt *rt);

/* ---- inputs ---------------------------------------------------------------
 */

/* Time passes: ticks the engine, scans deadlines, proposes a clock entry
 * when due. */
void rt_tick(struct rt *rt);
/* Terms and ballots a peer's message may carry. A term only grows, and a
 * node that adopts a term near 2^64 can never hold an election again: one
 * message from a buggy or hostile peer would stop the cluster for ever. So
 * any term-like field (term or ballot, log_term, hint_term, snap.term, an
 * entry's term) at or above RT_PEER_TERM_MAX, or more than
 * RT_PEER_TERM_JUMP_MAX above this node's own term, is refused before the
 * engine sees it. Honest peers stay far inside both: 2^32 is more elections
 * than a cluster holds in its life (2^24 rounds of Paxos ballots, which
 * are round << 8 | node), and the jump bound means even a peer that passes
 * the handshake needs 2^30 messages to climb to the ceiling. */
#define RT_PEER_TERM_MAX (1ull << 62)
#define RT_PEER_TERM_JUMP_MAX (1ull << 32)

/* A peer's message. One whose terms break the bounds above is dropped,
 * counted (rt_metrics.peer_msgs_refused_term) and logged (a warning at
 * most once per RT_PEER_REFUSED_LOG_MS, with the count since). */
void rt_step(struct rt *rt, const struct sabha_msg *m);
/* Carries out what is due. Call after inputs (and after ports.kick).
 * Returns true when more is due at once (call again soon without waiting
 * for input). */
bool rt_run(struct rt *rt);
/* The fsync that ports.sync_later asked for. Safe on any thread: it touches
 * only the job (the file stays open until rt_sync_done). */
void rt_sync_work(struct rt *rt);
/* rt_sync_work for several runtimes of one process (one per group) whose
 * fsyncs are due together, on one thread: one fsync for all of their logs
 * where the file system allows (wal_sync_jobs_run). At most 64. */
void rt_sync_work_many(struct rt *const *rts, size_t n);
/* rt_sync_work returned: the runtime takes the result (a failure is fatal),
 * sends what waited for it, tells the engine (sabha_engine_persisted) and
 * runs what follows. */
void rt_sync_done(struct rt *rt);
/* True from ports.sync_later until rt_sync_done: a host must not free the
 * runtime (rt_close, rt_close_crash) while its rt_sync_work may run on
 * another thread. */
bool rt_sync_running(const struct rt *rt);
/* The snapshot's write and fsync that ports.snapshot_later asked for. Safe
 * on any thread, beside rt_sync_work: it touches only its own job and
 * file. */
void rt_snapshot_work(struct rt *rt);
/* rt_snapshot_work returned: the snapshot replaces the old one and the log
 * it covers is dropped (at once, or when the running fsync job is done). */
void rt_snapshot_done(struct rt *rt);
/* True from ports.snapshot_later until rt_snapshot_done: a host must not
 * free the runtime meanwhile. */
bool rt_snapshot_running(const struct rt *rt);

/* ---- streams --------------------------------------------------------------
 */

/* A client connected; `loopback` says it came from this host (127.0.0.0/8,
 * ::1), which is all protected mode needs to know of its address. Returns
 * NULL and sets *out, or the error line to write before closing it (the
 * node is full, or protected mode refuses a client from elsewhere). */
const char *rt_stream_accept(struct rt *rt, bool loopback,
                             struct rt_stream **out);
/* Bytes arrived on `s` (copied). */
void rt_stream_input(struct rt_stream *s, const void *data, size_t n);
/* Where the host may read up to *cap bytes into, without a copy; then
 * rt_stream_received(). Returns NULL when memory is short. */
uint8_t *rt_stream_input_space(struct rt_stream *s, size_t want, size_t *cap);
void rt_stream_received(struct rt_stream *s, size_t n);
/* Takes the pending output: *data and *n stay valid and unchanged until
 * rt_stream_out_done(). Returns false when there is none or a take is
 * already outstanding. Unlike the other calls it changes nothing but the
 * stream's buffers, so a host may call it from inside stream_output and
 * stream_close. */
bool rt_stream_out_take(struct rt_stream *s, const uint8_t **data, size_t *n);
/* The bytes of the last take are written. */
void rt_stream_out_done(struct rt_stream *s);
/* A forwarding link connected. */
void rt_stream_connected(struct rt_stream *s);
/* The connection is gone (EOF, error, refused). The runtime stops using
 * `s`; the host closes it and then calls rt_stream_free(). */
void rt_stream_lost(struct rt_stream *s);
/* Frees `s` once the host is done with it (after stream_close or
 * rt_stream_lost). */
void rt_stream_free(struct rt_stream *s);
/* The host's pointer for the stream. */
void rt_stream_set_host(struct rt_stream *s, void *host);
void *rt_stream_host(const struct rt_stream *s);
enum rt_stream_kind rt_stream_kind(const struct rt_stream *s);
/* The host bounds every request it feeds to `s` itself (the HTTP API reads
 * a whole head and a bounded body first): the tighter limits of a client
 * that has not logged in (resp_limits_unauth) do not apply, so that such a
 * request is answered NOAUTH rather than refused by the parser. */
void rt_stream_set_host_bounded(struct rt_stream *s);
/* The host takes `s`'s replies one at a time (the HTTP API, which makes
 * each a response of its own, and may have many requests in flight): the
 * next finished reply joins the output only once the host has taken what
 * was there (rt_stream_out_done), and stays queued until then. So
 * client-output-buffer-limit judges each reply, as it did when such a
 * host sent one request at a time, not the sum of a pipeline's, and the
 * host bounds what it takes itself. */
void rt_stream_set_one_reply(struct rt_stream *s);

/* ---- inspection -----------------------------------------------------------
 */

/* Counters the node keeps (INFO, /metrics). */
#define RT_LAT_BUCKETS 16u
extern const double rt_latency_bounds_s[RT_LAT_BUCKETS];

struct rt_latency {
  uint64_t counts[RT_LAT_BUCKETS + 1];
  double sum_s;
};

struct rt_metrics {
  uint64_t proposals;        /* entries proposed here */
  uint64_t proposals_failed; /* refused or timed out */
  uint64_t commits;          /* entries applied */
  uint64_t commands;         /* client commands parsed */
  uint64_t commands_failed;  /* answered with an error by the node */
  uint64_t reads;            /* linearizable reads served */
  uint64_t reads_refused;    /* refused: too many waiting (READQ_MAX) */
  uint64_t stale_reads;
  uint64_t forwarded;  /* commands relayed to the leader */
  uint64_t handed;     /* commands another group of this process handed
                          over parsed (groups.c) */
  uint64_t redirected; /* answered -MOVED */
  uint64_t no_leader;  /* answered -TRYAGAIN for want of a leader */
  uint64_t timeouts;   /* writes and reads that timed out */
  uint64_t snapshots_taken;
  uint64_t snapshots_installed;
  uint64_t snapshots_refused; /* from a peer, not restorable: not persisted */
  uint64_t snapshots_too_big; /* states above snapshot_bytes_max, kept */
  uint64_t clock_entries;     /* clock entries this node proposed */
  uint64_t clients_accepted;
  uint64_t clients_refused;
  uint64_t output_paused;      /* times a client's unsent replies stopped its
                                  reading */
  uint64_t clients_timed_out;  /* closed by idle_timeout_s */
  uint64_t out_limit_closed;   /* closed by client-output-buffer-limit */
  uint64_t query_limit_closed; /* closed by client-query-buffer-limit */
  uint64_t memory_closed;      /* closed by the clients' memory budget */
  uint64_t memory_paused;      /* times the budget stopped reading one */
  uint64_t probation_evicted;  /* connections on probation pushed out by a
                                  newer one (clients.c) */
  uint64_t link_proofs_refused; /* SABHA.FORWARDED with a wrong or missing
                                   proof of the cluster secret (auth.c) */
  uint64_t leader_changes;
  uint64_t priority_transfers;      /* handed to a member of higher priority */
  uint64_t peer_msgs_refused_term;  /* a term beyond the bounds of rt_step */
  uint64_t fsyncs_loop;             /* fsyncs run on the loop's thread */
  uint64_t fsyncs_thread;           /* fsyncs handed to ports.sync_later */
  uint64_t apps_retry_table_full;   /* app commands applied here that were
                                       refused for a full retry table */
  uint64_t watch_window_bytes_copied; /* written into the watch window:
                                         events' headers, keys, values or
                                         APPENDs' added bytes (watch.c) */
  uint64_t watch_events_examined; /* window events watchers looked at, one
                                     count per watcher and event (watch.c):
                                     what watching costs the node's writes */
  struct rt_latency commit_latency; /* propose to apply, at the leader */
  struct rt_latency read_latency;   /* read_index to served */
};

/* What adaptive timing measured and chose (INFO, /metrics, the
 * simulator). */
struct rt_timing_peer {
  uint32_t id;
  uint64_t srtt_us;   /* smoothed round trip */
  uint64_t rttvar_us; /* its mean deviation */
  uint64_t rto_us;    /* srtt + 4 rttvar (at least 1 ms more) */
  uint64_t samples;
  bool fresh; /* a sample within RT_TIMING_FRESH_MS: it counts */
};

struct rt_timing_info {
  enum rt_timing_mode mode;
  struct sabha_timing timing; /* in force in the engine */
  uint64_t rto_us;            /* what the timing follows; 0: not yet */
  uint64_t changes;           /* timings handed to the engine */
  uint64_t msgs_refused;      /* malformed pings and pongs */
  uint32_t n_peers;
  struct rt_timing_peer peers[SABHA_NODES_MAX];
};
void rt_timing_info(const struct rt *rt, struct rt_timing_info *out);
/* True for the runtime's own message types (RT_MSG_PING, ...). */
bool rt_msg_is_runtime(const struct sabha_msg *m);

void rt_status(const struct rt *rt, struct sabha_status *st);
uint64_t rt_applied_index(const struct rt *rt);
const struct rt_metrics *rt_metrics(const struct rt *rt);
uint32_t rt_n_clients(const struct rt *rt);
/* What the clients' buffers hold now (input not yet parsed, replies not yet
 * written), as of the last scan (every RT_TIMEOUT_SCAN_MS): the sum, the
 * largest of the last few seconds, and how many clients the budget keeps
 * from reading. */
struct rt_clients_memory {
  uint64_t total_bytes;
  uint64_t recent_max_input_bytes;
  uint64_t recent_max_output_bytes;
  uint32_t paused; /* by the budget */
  uint32_t links;  /* other nodes' forwarding links among the clients */
};
void rt_clients_memory(const struct rt *rt, struct rt_clients_memory *out);
const struct rt_config *rt_config(const struct rt *rt);
/* For checkers and tools: the engine, the store, the applications machine
 * and the log (read only). */
const struct sabha_engine *rt_engine(const struct rt *rt);
const struct kvstore *rt_kvstore(const struct rt *rt);
const struct app *rt_app(const struct rt *rt);
void rt_wal_stats(const struct rt *rt, struct wal_stats *st);

/* ---- groups (groups.c) -----------------------------------------------------
 *
 * A process that hosts several consensus groups opens one runtime per group
 * (rt_config.group, n_groups; group g > 0 keeps its log in
 * data_dir/group-g), all on the same host ports and the same thread, and
 * then introduces them to each other with rt_groups_attach(). Peer messages
 * carry their group (sabha_msg.group, stamped by the runtime that sends
 * them); the host hands each to rt_step() of that group, after refusing a
 * group the process does not host. Clients connect to group 0, which sends
 * every command to the group of its key over an in-process link; after
 * rt_run() of every group the host calls rt_groups_pump() of every group,
 * which moves the bytes of those links, and runs them again while it
 * returns true. Close or crash them all together. */

/* The group of a key: the CRC-32C of the key, or of its hash tag (the bytes
 * between the first '{' and the first '}' after it, when there is at least
 * one), modulo n_groups. docs/api.md states the rule. */
uint32_t rt_key_group(const uint8_t *key, size_t n, uint32_t n_groups);
/* rts[g] is group g's runtime, each opened with n_groups == n. */
void rt_groups_attach(struct rt *const *rts, uint32_t n);
/* Moves what this group's in-process links have written to their other
 * ends. Returns true when it moved something (run the groups again). */
bool rt_groups_pump(struct rt *rt);

/* INFO's text (section NULL: the default sections). */
void rt_write_info(struct rt *rt, struct resp_buf *b, const char *section);
/* True when a leader is known (for /health). */
bool rt_has_leader(const struct rt *rt);

#endif
