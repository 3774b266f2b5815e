/* Multi-Paxos phase 1 over a long run of accepted slots (Paxos Made Simple
 * §2.2 and §3): a promise must fit in a message, so an acceptor answers in
 * chunks bounded like any accept, and the candidate leads only once every
 * acceptor of its quorum has sent every value it accepted from the first
 * slot asked about. These tests hold the engine to that: the chunks keep
 * the limits, a backlog larger than a transport frame still lets a leader
 * be elected, no chunk is taken for the whole, and loss, duplication,
 * reordering and pre-emption change nothing of what gets chosen.
 *
 * Every test builds one scene with the synchronous test cluster: node 1
 * leads and streams slots to node 2, whose acknowledgements never come
 * back, while node 3 is cut off. Node 2 thus holds a run of accepted slots
 * beyond its commit index; they are chosen (nodes 1 and 2 are a majority)
 * but nobody knows it. Node 1 crashes, and node 3 must run phase 1 against
 * node 2 alone and re-propose exactly those values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/prng.h"
#include "net/codec.h"
#include "paxos/mp.h"
#include "tcluster.h"

#define STASH_MAX 4096u

/* What the network saw, and how it misbehaves. */
struct watch {
  /* The engine's limits every promise must keep (as an accept does: at
   * most entries_max entries and bytes_max bytes, except that a single
   * entry always goes). */
  uint32_t entries_max;
  uint64_t bytes_max;
  uint32_t promises;      /* PROMISE messages sent */
  uint32_t promises_over; /* ... that broke a limit */
  uint32_t too_big;       /* frames the codec refuses: dropped, as the
                             transport drops them */
  /* Continuation PREPAREs from node 3 (any slot after the first asked
   * about) are dropped, and stashed for a later delivery. */
  bool hold_continuations;
  uint64_t first_slot;
  /* Every PROMISE is stashed, for the test to deliver late. */
  bool delay_promises;
  /* Loss and duplication of phase 1 traffic, by a seeded generator. */
  bool lossy;
  struct prng prng;
  struct sabha_msg *stash[STASH_MAX];
  uint32_t stash_n;
};

static struct watch watch;

static void scripted(struct sabha_config *cfg) {
  cfg->pre_vote = false; /* a ticked node goes straight to phase 1 */
  cfg->check_quorum = false;
  /* The leader runs at most alpha slots past its chosen prefix: a window
   * as wide as the backlog these scenes build. */
  cfg->alpha = 1u << 20;
}

/* Promises must come in many pieces: the backlog is a dozen times these. */
static void tight_limits(struct sabha_config *cfg) {
  scripted(cfg);
  cfg->entries_per_msg_max = 4;
  cfg->bytes_per_msg_max = 300;
}

static bool within_limits(const struct sabha_msg *m) {
  if (m->n_entries <= 1)
    return true;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < m->n_entries; i++)
    bytes += m->entries[i].size_bytes;
  return m->n_entries <= watch.entries_max && bytes <= watch.bytes_max;
}

static void stash_put(const struct sabha_msg *m) {
  if (watch.stash_n < STASH_MAX)
    watch.stash[watch.stash_n++] = tc_msg_clone(m);
}

/* Delivers what the stash holds now, newest first (so out of order), each
 * message late and some of them a second time. What the deliveries stash
 * waits for the next call. */
static void stash_deliver(struct tcluster *tc) {
  static struct sabha_msg *late[STASH_MAX];
  uint32_t n = watch.stash_n;
  memcpy(late, watch.stash, n * sizeof *late);
  watch.stash_n = 0;
  while (n > 0) {
    struct sabha_msg *m = late[--n];
    if (tc->node[m->to].up)
      sabha_engine_step(tc->node[m->to].e, m);
    free(m);
    tc_settle(tc);
  }
}

static bool watch_filter(void *arg, struct sabha_msg *m) {
  (void)arg;
  size_t frame_bytes;
  if (codec_frame_size(m, &frame_bytes) != 0) {
    watch.too_big++;
    return true;
  }
  if (m->type == MP_MSG_PROMISE) {
    watch.promises++;
    if (!within_limits(m))
      watch.promises_over++;
  }
  if (watch.hold_continuations && m->type == MP_MSG_PREPARE && m->from == 3 &&
      m->index > watch.first_slot) {
    stash_put(m);
    return true;
  }
  if (watch.delay_promises && m->type == MP_MSG_PROMISE) {
    stash_put(m);
    return true;
  }
  bool phase1 = m->type == MP_MSG_PREPARE || m->type == MP_MSG_PROMISE;
  if (watch.lossy && phase1) {
    if (prng_below(&watch.prng, 4) == 0)
      return true;
    if (prng_below(&watch.prng, 3) == 0)
      stash_put(m); /* delivered now and again later */
  }
  return false;
}

static void watch_start(struct tcluster *tc, const struct sabha_config *cfg) {
  for (uint32_t i = 0; i < watch.stash_n; i++)
    free(watch.stash[i]);
  memset(&watch, 0, sizeof watch);
  watch.entries_max = cfg->entries_per_msg_max;
  watch.bytes_max = cfg->bytes_per_msg_max;
  watch.first_slot = 2; /* node 3 knows slot 1 chosen */
  prng_seed(&watch.prng, 7);
  tc->filter = watch_filter;
}

static void watch_end(struct tcluster *tc) {
  for (uint32_t i = 0; i < watch.stash_n; i++)
    free(watch.stash[i]);
  watch.stash_n = 0;
  tc->filter = NULL;
}

/* The value proposed as the k-th slot of the backlog (slot k + 2). */
static void value_fill(uint8_t *buf, uint32_t k, uint32_t size_bytes) {
  for (uint32_t i = 0; i < size_bytes; i++)
    buf[i] = (uint8_t)(k * 131u + i * 7u + 1u);
}

/* The scene (see the top of the file): node 2 holds n_slots values of
 * size_bytes, accepted beyond its commit index, at slots 2 .. n_slots + 1;
 * node 3 holds nothing after slot 1; node 1 is down. */
static bool backlog_init(struct tcluster *tc,
                         void (*tweak)(struct sabha_config *), uint32_t n_slots,
                         uint32_t size_bytes) {
  tc_init(tc, "multipaxos", 3, tweak);
  if (!tc_elect(tc, 1) || tc_propose(tc, 1, "base") != 0)
    return false;
  tc_tick_all(tc, 60); /* everyone learns that slot 1 is chosen */
  tc_cut_one(tc, 2, 1);
  tc_cut(tc, 1, 3);
  uint8_t *buf = malloc(size_bytes);
  if (buf == NULL)
    return false;
  for (uint32_t k = 0; k < n_slots; k++) {
    value_fill(buf, k, size_bytes);
    if (sabha_engine_propose(tc->node[1].e, buf, size_bytes) != 0)
      break;
    tc_settle(tc); /* one slot per command */
  }
  free(buf);
  tc_crash(tc, 1);
  tc_heal(tc);
  struct sabha_status two = tc_status(tc, 2), three = tc_status(tc, 3);
  return two.commit == 1 && two.last_index == n_slots + 1 &&
         three.commit == 1 && three.last_index == 1;
}

/* Every backlog value is chosen, in its slot, with its bytes, on `id`. */
static bool backlog_chosen_on(struct tcluster *tc, uint32_t id,
                              uint32_t n_slots, uint32_t size_bytes) {
  if (tc_status(tc, id).commit < n_slots + 1)
    return false;
  uint8_t *want = malloc(size_bytes);
  bool same = want != NULL;
  for (uint32_t k = 0; k < n_slots && same; k++) {
    struct sabha_entry e;
    value_fill(want, k, size_bytes);
    same = sabha_engine_entry(tc->node[id].e, k + 2, &e) == 0 &&
           e.type == SABHA_ENTRY_COMMAND && e.size_bytes == size_bytes &&
           memcmp(e.data, want, size_bytes) == 0;
  }
  free(want);
  return same;
}

/* The scene, with the watch on the network from there on. */
static bool scene_start(struct tcluster *tc,
                        void (*tweak)(struct sabha_config *), uint32_t n_slots,
                        uint32_t size_bytes) {
  if (!backlog_init(tc, tweak, n_slots, size_bytes))
    return false;
  watch_start(tc, &tc->cfg[3]);
  return true;
}

static void scene_end(struct tcluster *tc) {
  watch_end(tc);
  tc_free(tc);
}

/* Nodes 2 and 3 chose every backlog value unchanged, and no checker of the
 * cluster saw two leaders of a ballot or two values applied at a slot. */
static bool backlog_kept(struct tcluster *tc, uint32_t n_slots,
                         uint32_t size_bytes) {
  return backlog_chosen_on(tc, 2, n_slots, size_bytes) &&
         backlog_chosen_on(tc, 3, n_slots, size_bytes) && tc->conflicts == 0 &&
         tc->two_leaders == 0;
}

/* Ticks node 3 until it is a candidate that has asked node 2 for more
 * (a request held back); false if that does not happen within a second. */
static bool tick_until_asking_for_more(struct tcluster *tc) {
  for (int ms = 0; ms < 1000; ms++) {
    if (tc_status(tc, 3).role == SABHA_ROLE_CANDIDATE && watch.stash_n > 0)
      return true;
    tc_tick(tc, 3, 1);
  }
  return false;
}

/* Each promise keeps the limits appends keep, so it takes many of them,
 * and the candidate re-proposes every accepted value unchanged. */
static void mp_promise_chunks_keep_message_limits(void) {
  const uint32_t n = 48, size = 100; /* 12x the entries, 16x the bytes */
  struct tcluster tc;
  CHECK(scene_start(&tc, tight_limits, n, size));
  CHECK(tc_elect(&tc, 3));
  CHECK(watch.promises_over == 0);
  CHECK(watch.promises >= n / 4);
  tc_tick_all(&tc, 200);
  CHECK(backlog_kept(&tc, n, size) && tc.unsettled == 0);
  scene_end(&tc);
}

/* The defect this guards against: an acceptor whose accepted values add up
 * to more than a transport frame answered phase 1 with one frame the codec
 * refuses, the transport dropped it, and no leader could ever be elected. */
static void mp_leader_elected_when_accepted_backlog_exceeds_frame_limit(void) {
  const uint32_t size = 1u << 20;
  const uint32_t n = CODEC_PAYLOAD_BYTES_MAX / size + 1; /* 17 MiB */
  struct tcluster tc;
  CHECK(scene_start(&tc, scripted, n, size));
  CHECK(tc_elect(&tc, 3));
  CHECK(watch.too_big == 0 && watch.promises_over == 0);
  tc_tick_all(&tc, 200);
  CHECK(backlog_kept(&tc, n, size));
  scene_end(&tc);
}

/* §2.2: the candidate may propose only once it knows every value a quorum
 * accepted. With the acceptor's later chunks held back it stays a
 * candidate however long it waits; a chunk that does not continue what it
 * holds (here a "that was all" for a slot far ahead) completes nothing;
 * once the chunks flow it leads with every value. */
static void mp_candidate_leads_only_after_every_chunk(void) {
  const uint32_t n = 48, size = 100;
  struct tcluster tc;
  CHECK(scene_start(&tc, tight_limits, n, size));
  watch.hold_continuations = true;
  for (int ms = 0; ms < 1000; ms++) {
    tc_tick(&tc, 3, 1);
    CHECK(tc_status(&tc, 3).role != SABHA_ROLE_LEADER);
  }
  CHECK(tick_until_asking_for_more(&tc));
  struct sabha_msg forged = {.type = MP_MSG_PROMISE,
                             .from = 2,
                             .to = 3,
                             .term = tc_status(&tc, 3).term,
                             .index = n};
  CHECK(sabha_engine_step(tc.node[3].e, &forged) == 0);
  tc_settle(&tc);
  CHECK(tc_status(&tc, 3).role == SABHA_ROLE_CANDIDATE);
  watch.hold_continuations = false;
  CHECK(tc_elect(&tc, 3));
  tc_tick_all(&tc, 200);
  CHECK(backlog_kept(&tc, n, size));
  scene_end(&tc);
}

/* Each chunk takes 40 ms to arrive, so phase 1 lasts longer than any
 * election timeout. As long as chunks come, the candidate does not give up
 * and the acceptor it asks does not start a rival phase 1 (every node's
 * clock runs); a phase 1 that must restart whenever it outlasts a timeout
 * would never end. */
static void mp_long_phase1_that_progresses_is_not_abandoned(void) {
  const uint32_t n = 48, size = 100;
  struct tcluster tc;
  CHECK(scene_start(&tc, tight_limits, n, size));
  watch.delay_promises = true;
  while (tc_status(&tc, 3).role != SABHA_ROLE_CANDIDATE)
    tc_tick(&tc, 3, 1);
  uint64_t ballot = tc_status(&tc, 3).term;
  uint64_t started = tc_status(&tc, 2).elections_started;
  int ms = 0;
  for (; ms < 5000 && tc_status(&tc, 3).role != SABHA_ROLE_LEADER; ms++) {
    tc_tick_all(&tc, 1);
    if (ms % 40 == 39)
      stash_deliver(&tc);
  }
  CHECK(tc_status(&tc, 3).role == SABHA_ROLE_LEADER);
  CHECK(ms > (int)tc.cfg[3].election_timeout_ms_max); /* it did last */
  CHECK(tc_status(&tc, 3).term == ballot);
  CHECK(tc_status(&tc, 2).elections_started == started);
  watch.delay_promises = false;
  stash_deliver(&tc);
  tc_tick_all(&tc, 200);
  CHECK(backlog_kept(&tc, n, size));
  scene_end(&tc);
}

/* One run of the test below, with the network's generator seeded. */
static void lossy_run(uint64_t seed) {
  const uint32_t n = 48, size = 100;
  struct tcluster tc;
  CHECK(scene_start(&tc, tight_limits, n, size));
  prng_seed(&watch.prng, seed);
  watch.lossy = true;
  for (int ms = 0; ms < 20000; ms++) {
    if (tc_status(&tc, 3).role == SABHA_ROLE_LEADER)
      break;
    tc_tick(&tc, 3, 1);
    if (ms % 5 == 4)
      stash_deliver(&tc);
  }
  CHECK(tc_status(&tc, 3).role == SABHA_ROLE_LEADER);
  CHECK(watch.promises_over == 0);
  stash_deliver(&tc); /* the last stale ones, after the election */
  watch.lossy = false;
  tc_tick_all(&tc, 300);
  CHECK(tc_status(&tc, 3).role == SABHA_ROLE_LEADER);
  CHECK(backlog_kept(&tc, n, size));
  scene_end(&tc);
}

/* Prepares and promises are lost, delivered twice and late, and out of
 * order; stale chunks of earlier ballots arrive mid-way. Phase 1 still
 * completes, within the limits, with every value: on each of 32 seeds. */
static void mp_chunked_promises_survive_loss_duplication_and_reordering(void) {
  int failures_before = tc_failures;
  for (uint64_t seed = 1; seed <= 32; seed++) {
    lossy_run(seed);
    if (tc_failures != failures_before) {
      fprintf(stderr, "(network seed %llu)\n", (unsigned long long)seed);
      return;
    }
  }
}

/* A candidate pre-empted half-way through the chunks: node 1 comes back,
 * out of node 3's reach, and wins node 2 with a higher ballot. Node 3's
 * held-back requests then reach node 2 late, under the old ballot, and are
 * refused; node 3 never leads, and node 1 chooses the same values. */
static void mp_candidate_preempted_mid_phase1_never_leads(void) {
  const uint32_t n = 48, size = 100;
  struct tcluster tc;
  CHECK(scene_start(&tc, tight_limits, n, size));
  watch.hold_continuations = true;
  CHECK(tick_until_asking_for_more(&tc));
  uint64_t ballot3 = tc_status(&tc, 3).term;
  CHECK(ballot3 < TC_TERMS_MAX);
  tc_cut(&tc, 1, 3);
  tc_restart(&tc, 1);
  CHECK(tc_elect(&tc, 1));
  CHECK(tc_status(&tc, 1).term > ballot3);
  CHECK(tc_status(&tc, 3).role == SABHA_ROLE_CANDIDATE &&
        tc_status(&tc, 3).term == ballot3);
  watch.hold_continuations = false;
  stash_deliver(&tc);
  CHECK(tc_status(&tc, 3).role != SABHA_ROLE_LEADER);
  CHECK(tc_status(&tc, 3).term > ballot3); /* it learnt of the higher one */
  tc_heal(&tc);
  tc_tick_all(&tc, 300);
  CHECK(tc_leader(&tc) == 1);
  CHECK(backlog_kept(&tc, n, size) && backlog_chosen_on(&tc, 1, n, size));
  CHECK(tc.leader_of_term[ballot3] == 0);
  scene_end(&tc);
}

int main(void) {
  RUN(mp_promise_chunks_keep_message_limits);
  RUN(mp_leader_elected_when_accepted_backlog_exceeds_frame_limit);
  RUN(mp_candidate_leads_only_after_every_chunk);
  RUN(mp_long_phase1_that_progresses_is_not_abandoned);
  RUN(mp_chunked_promises_survive_loss_duplication_and_reordering);
  RUN(mp_candidate_preempted_mid_phase1_never_leads);
  return tc_failures == 0 ? 0 : 1;
}
