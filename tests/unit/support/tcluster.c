/* The synchronous test cluster; see tcluster.h. */
#include "tcluster.h"

#include <assert.h>
#include <string.h>

int tc_failures;

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

struct sabha_msg *tc_msg_clone(const struct sabha_msg *m) {
  size_t size = sizeof *m + m->n_entries * sizeof(struct sabha_entry) +
                m->snap_size_bytes;
  for (uint32_t i = 0; i < m->n_entries; i++)
    size += m->entries[i].size_bytes;
  uint8_t *block = malloc(size);
  assert(block != NULL);
  struct sabha_msg *c = (struct sabha_msg *)block;
  *c = *m;
  uint8_t *p = block + sizeof *m;
  struct sabha_entry *entries = (struct sabha_entry *)p;
  p += m->n_entries * sizeof(struct sabha_entry);
  for (uint32_t i = 0; i < m->n_entries; i++) {
    entries[i] = m->entries[i];
    if (m->entries[i].size_bytes > 0)
      memcpy(p, m->entries[i].data, m->entries[i].size_bytes);
    entries[i].data = p;
    p += m->entries[i].size_bytes;
  }
  c->entries = m->n_entries > 0 ? entries : NULL;
  if (m->snap_size_bytes > 0) {
    memcpy(p, m->snap_data, m->snap_size_bytes);
    c->snap_data = p;
  }
  return c;
}

static void enqueue(struct tcluster *tc, const struct sabha_msg *m) {
  if (tc->cut[m->from][m->to])
    return;
  struct sabha_msg *c = tc_msg_clone(m);
  if (tc->filter != NULL && tc->filter(tc->filter_arg, c)) {
    free(c);
    return;
  }
  if (tc->queue_n == tc->queue_cap) {
    tc->queue_cap = tc->queue_cap ? tc->queue_cap * 2 : 64;
    tc->queue = realloc(tc->queue, tc->queue_cap * sizeof *tc->queue);
    assert(tc->queue != NULL);
  }
  tc->queue[tc->queue_n++].msg = c;
}

static void disk_truncate(struct tc_disk *d, uint64_t from) {
  while (d->n > 0 && d->entries[d->n - 1].index >= from) {
    free(d->entries[d->n - 1].data);
    d->n--;
  }
}

static void disk_put(struct tc_disk *d, const struct sabha_entry *e) {
  disk_truncate(d, e->index);
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 64;
    d->entries = realloc(d->entries, d->cap * sizeof *d->entries);
    assert(d->entries != NULL);
  }
  struct tc_entry *t = &d->entries[d->n++];
  t->index = e->index;
  t->term = e->term;
  t->type = e->type;
  t->size = e->size_bytes;
  t->data = malloc(e->size_bytes + 1);
  if (e->size_bytes > 0)
    memcpy(t->data, e->data, e->size_bytes);
}

static void disk_snapshot(struct tc_disk *d,
                          const struct sabha_snapshot_meta *meta,
                          const uint8_t *data, size_t size) {
  size_t drop = 0;
  while (drop < d->n && d->entries[drop].index <= meta->index)
    free(d->entries[drop++].data);
  if (d->n > drop)
    memmove(d->entries, d->entries + drop, (d->n - drop) * sizeof *d->entries);
  d->n -= drop;
  free(d->snap_data);
  d->snap_data = malloc(size + 1);
  if (size > 0)
    memcpy(d->snap_data, data, size);
  d->snap_size = size;
  d->snap = *meta;
  d->has_snapshot = true;
}

static void record_apply(struct tcluster *tc, const struct sabha_entry *e) {
  if (e->index >= TC_APPLIED_MAX)
    return;
  /* The value decides, not the term: a Paxos leader re-proposes a chosen
   * value under its own ballot, so learners may hold it under different
   * ballots. */
  uint64_t h = fnv(e->data, e->size_bytes, 0xcbf29ce484222325ull ^ e->type);
  if (!tc->applied_seen[e->index]) {
    tc->applied_seen[e->index] = true;
    tc->applied_hash[e->index] = h;
  } else if (tc->applied_hash[e->index] != h) {
    tc->conflicts++;
  }
}

static void record_leader(struct tcluster *tc, uint32_t id) {
  struct sabha_status st;
  sabha_engine_status(tc->node[id].e, &st);
  if (st.role != SABHA_ROLE_LEADER || st.term >= TC_TERMS_MAX)
    return;
  uint32_t *slot = &tc->leader_of_term[st.term];
  if (*slot == 0)
    *slot = id;
  else if (*slot != id)
    tc->two_leaders++;
}

/* A removal notice believed is kept, as the node runtime keeps it. */
static void keep_notice(struct tc_node *nd) {
  struct sabha_status st;
  sabha_engine_status(nd->e, &st);
  if (st.removed_notice_index > nd->disk.removed_notice)
    nd->disk.removed_notice = st.removed_notice_index;
}

static bool process_ready(struct tcluster *tc, uint32_t id) {
  struct tc_node *nd = &tc->node[id];
  if (!nd->up || !sabha_engine_has_ready(nd->e))
    return false;
  struct sabha_ready rd;
  sabha_engine_ready(nd->e, &rd);
  for (size_t i = 0; i < rd.n_msgs; i++)
    enqueue(tc, &rd.msgs[i]);
  if (rd.has_hard_state)
    nd->disk.hs = rd.hard_state;
  if (rd.has_snapshot) {
    disk_snapshot(&nd->disk, &rd.snapshot, rd.snapshot_data,
                  rd.snapshot_size_bytes);
    nd->disk.has_membership = rd.snapshot_membership != NULL;
    if (rd.snapshot_membership != NULL)
      nd->disk.membership = *rd.snapshot_membership;
  }
  if (rd.truncate_from != 0)
    disk_truncate(&nd->disk, rd.truncate_from);
  for (size_t i = 0; i < rd.n_entries; i++)
    disk_put(&nd->disk, &rd.entries[i]);
  for (size_t i = 0; i < rd.n_msgs_after_persist; i++)
    enqueue(tc, &rd.msgs_after_persist[i]);
  if (rd.has_snapshot) {
    /* The toy state machine's snapshot is its running hash; no bytes is
     * the empty machine (an async rollback before any snapshot). */
    nd->applied_sum = 0;
    if (rd.snapshot_size_bytes >= sizeof nd->applied_sum)
      memcpy(&nd->applied_sum, rd.snapshot_data, sizeof nd->applied_sum);
    nd->applied = rd.snapshot.index;
  }
  for (size_t i = 0; i < rd.n_committed; i++) {
    const struct sabha_entry *e = &rd.committed[i];
    assert(e->index == nd->applied + 1);
    record_apply(tc, e);
    nd->applied = e->index;
    nd->applied_sum = fnv(e->data, e->size_bytes, nd->applied_sum ^ e->index);
  }
  for (size_t i = 0; i < rd.n_reads && nd->n_reads < 64; i++) {
    nd->reads_served[nd->n_reads] = rd.reads[i].request_id;
    nd->read_index_of[nd->n_reads] = rd.reads[i].index;
    nd->n_reads++;
  }
  sabha_engine_advance(nd->e, &rd);
  sabha_engine_persisted(nd->e, rd.seq); /* a host that syncs at once */
  keep_notice(nd);
  record_leader(tc, id);
  return true;
}

void tc_settle(struct tcluster *tc) {
  for (int round = 0; round < 10000; round++) {
    bool busy = false;
    for (uint32_t id = 1; id <= tc->n; id++)
      busy |= process_ready(tc, id);
    if (tc->queue_n > 0) {
      busy = true;
      /* Deliver what is queued now; replies queue behind it. */
      size_t n = tc->queue_n;
      struct tc_queued *batch = malloc(n * sizeof *batch);
      memcpy(batch, tc->queue, n * sizeof *batch);
      tc->queue_n = 0;
      for (size_t i = 0; i < n; i++) {
        struct sabha_msg *m = batch[i].msg;
        if (tc->node[m->to].up && !tc->cut[m->from][m->to]) {
          sabha_engine_step(tc->node[m->to].e, m);
          keep_notice(&tc->node[m->to]);
          tc->delivered++;
          record_leader(tc, m->to);
          process_ready(tc, m->to);
        }
        free(m);
      }
      free(batch);
    }
    if (!busy)
      return;
  }
  /* Messages still bounce: only a broken engine does that. Record it and
   * let the test go on (time still moves, checkers still run). */
  tc->unsettled++;
}

static void create_engine(struct tcluster *tc, uint32_t id) {
  struct tc_node *nd = &tc->node[id];
  struct sabha_persisted p = {0};
  p.hard_state = nd->disk.hs;
  p.removed_notice_index = nd->disk.removed_notice;
  struct sabha_entry *es = calloc(nd->disk.n + 1, sizeof *es);
  for (size_t i = 0; i < nd->disk.n; i++) {
    es[i].index = nd->disk.entries[i].index;
    es[i].term = nd->disk.entries[i].term;
    es[i].type = nd->disk.entries[i].type;
    es[i].size_bytes = nd->disk.entries[i].size;
    es[i].data = nd->disk.entries[i].data;
  }
  p.entries = es;
  p.n_entries = nd->disk.n;
  nd->applied = 0;
  nd->applied_sum = 0;
  if (nd->disk.has_snapshot) {
    p.has_snapshot = true;
    p.snapshot = nd->disk.snap;
    p.snapshot_data = nd->disk.snap_data;
    p.snapshot_size_bytes = nd->disk.snap_size;
    p.applied = nd->disk.snap.index;
    if (nd->disk.snap_size >= sizeof nd->applied_sum)
      memcpy(&nd->applied_sum, nd->disk.snap_data, sizeof nd->applied_sum);
    nd->applied = nd->disk.snap.index;
    if (nd->disk.has_membership)
      p.membership = &nd->disk.membership;
  }
  int rv = sabha_engine_new(&nd->e, tc->protocol, &tc->cfg[id], &p);
  free(es);
  assert(rv == 0);
  (void)rv;
  sabha_engine_tick(nd->e, nd->now_ms);
  nd->up = true;
}

void tc_init(struct tcluster *tc, const char *protocol, uint32_t n,
             void (*tweak)(struct sabha_config *cfg)) {
  assert(n >= 1 && n <= TC_NODES_MAX);
  memset(tc, 0, sizeof *tc);
  tc->protocol = protocol;
  tc->n = n;
  uint32_t voters[TC_NODES_MAX];
  for (uint32_t i = 0; i < n; i++)
    voters[i] = i + 1;
  for (uint32_t id = 1; id <= n; id++) {
    sabha_config_init(&tc->cfg[id], id, voters, n);
    tc->cfg[id].seed = 1000 + id;
    if (tweak != NULL)
      tweak(&tc->cfg[id]);
    create_engine(tc, id);
  }
}

void tc_free(struct tcluster *tc) {
  for (uint32_t id = 1; id <= tc->n; id++) {
    struct tc_node *nd = &tc->node[id];
    if (nd->up)
      sabha_engine_free(nd->e);
    disk_truncate(&nd->disk, 0);
    free(nd->disk.entries);
    free(nd->disk.snap_data);
  }
  for (size_t i = 0; i < tc->queue_n; i++)
    free(tc->queue[i].msg);
  free(tc->queue);
}

void tc_tick(struct tcluster *tc, uint32_t id, uint64_t ms) {
  for (uint64_t i = 0; i < ms; i++) {
    struct tc_node *nd = &tc->node[id];
    if (!nd->up)
      return;
    nd->now_ms++;
    sabha_engine_tick(nd->e, nd->now_ms);
    record_leader(tc, id);
    tc_settle(tc);
  }
}

void tc_tick_all(struct tcluster *tc, uint64_t ms) {
  for (uint64_t i = 0; i < ms; i++) {
    for (uint32_t id = 1; id <= tc->n; id++) {
      struct tc_node *nd = &tc->node[id];
      nd->now_ms++;
      if (nd->up) {
        sabha_engine_tick(nd->e, nd->now_ms);
        record_leader(tc, id);
      }
    }
    tc_settle(tc);
  }
}

struct sabha_status tc_status(struct tcluster *tc, uint32_t id) {
  struct sabha_status st = {0};
  if (tc->node[id].up)
    sabha_engine_status(tc->node[id].e, &st);
  else
    st.role = SABHA_ROLE_FOLLOWER;
  return st;
}

bool tc_elect(struct tcluster *tc, uint32_t id) {
  for (int i = 0; i < 2000; i++) {
    if (tc_status(tc, id).role == SABHA_ROLE_LEADER)
      return true;
    tc_tick(tc, id, 1);
  }
  return tc_status(tc, id).role == SABHA_ROLE_LEADER;
}

uint32_t tc_leader(struct tcluster *tc) {
  uint32_t best = 0;
  uint64_t best_term = 0;
  for (uint32_t id = 1; id <= tc->n; id++) {
    struct sabha_status st = tc_status(tc, id);
    if (tc->node[id].up && st.role == SABHA_ROLE_LEADER &&
        st.term >= best_term) {
      best = id;
      best_term = st.term;
    }
  }
  return best;
}

void tc_cut_one(struct tcluster *tc, uint32_t from, uint32_t to) {
  tc->cut[from][to] = true;
}

void tc_cut(struct tcluster *tc, uint32_t a, uint32_t b) {
  tc->cut[a][b] = tc->cut[b][a] = true;
}

void tc_isolate(struct tcluster *tc, uint32_t id) {
  for (uint32_t j = 1; j <= tc->n; j++)
    if (j != id)
      tc_cut(tc, id, j);
}

void tc_heal(struct tcluster *tc) {
  memset(tc->cut, 0, sizeof tc->cut);
}

void tc_crash(struct tcluster *tc, uint32_t id) {
  struct tc_node *nd = &tc->node[id];
  assert(nd->up);
  sabha_engine_free(nd->e);
  nd->e = NULL;
  nd->up = false;
}

void tc_restart(struct tcluster *tc, uint32_t id) {
  assert(!tc->node[id].up);
  create_engine(tc, id);
}

void tc_join(struct tcluster *tc, uint32_t id) {
  assert(id > tc->n && id <= TC_NODES_MAX);
  sabha_config_init(&tc->cfg[id], id, NULL, 0);
  tc->cfg[id].seed = 1000 + id;
  tc->cfg[id].join = true;
  for (uint32_t k = tc->n + 1; k < id; k++)
    tc->node[k].up = false; /* ids skipped stay down */
  tc->n = id;
  tc->node[id].now_ms = tc->node[1].now_ms;
  create_engine(tc, id);
}

void tc_rejoin(struct tcluster *tc, uint32_t id) {
  assert(id >= 1 && id <= tc->n && !tc->node[id].up);
  struct tc_disk *d = &tc->node[id].disk;
  disk_truncate(d, 0);
  free(d->entries);
  free(d->snap_data);
  memset(d, 0, sizeof *d);
  sabha_config_init(&tc->cfg[id], id, NULL, 0);
  tc->cfg[id].seed = 2000 + id; /* not the seed the old node had */
  tc->cfg[id].join = true;
  tc->node[id].now_ms = tc->node[1].now_ms;
  create_engine(tc, id);
}

int tc_compact(struct tcluster *tc, uint32_t id) {
  struct tc_node *nd = &tc->node[id];
  struct sabha_membership m;
  int rv = sabha_engine_membership_at(nd->e, nd->applied, &m);
  if (rv != 0)
    return rv;
  rv = sabha_engine_compact(nd->e, nd->applied, &nd->applied_sum,
                            sizeof nd->applied_sum);
  if (rv != 0)
    return rv;
  struct sabha_snapshot_meta meta = {.index = nd->applied};
  for (size_t i = 0; i < nd->disk.n; i++)
    if (nd->disk.entries[i].index == nd->applied)
      meta.term = nd->disk.entries[i].term;
  disk_snapshot(&nd->disk, &meta, (const uint8_t *)&nd->applied_sum,
                sizeof nd->applied_sum);
  nd->disk.has_membership = true;
  nd->disk.membership = m;
  return 0;
}

struct sabha_membership tc_members(struct tcluster *tc, uint32_t id) {
  struct sabha_membership m;
  memset(&m, 0, sizeof m);
  if (tc->node[id].up)
    sabha_engine_members(tc->node[id].e, &m);
  return m;
}

int tc_propose(struct tcluster *tc, uint32_t id, const char *text) {
  int rv = sabha_engine_propose(tc->node[id].e, text, strlen(text));
  tc_settle(tc);
  return rv;
}
