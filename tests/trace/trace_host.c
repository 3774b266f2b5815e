/* The in-memory host of the trace driver, and the commands that drive it.
 *
 * It plays the part sabhad and the simulator play for real nodes, through
 * include/sabha/engine.h only: after every input it takes the node's ready
 * batches and carries them out in the order the contract sets (send, persist
 * to an in-memory "disk", send what waited for the persist, install, apply,
 * serve reads, advance), and it checks the contract on the way (an entry is
 * applied only once persisted, in index order; a read is served only once
 * applied). Messages go into one FIFO network queue and stay there until a
 * command delivers or drops them, so a script decides every interleaving.
 *
 * The state machine is a running hash of what was applied (its snapshot is
 * that hash, padded on request to make snapshots span several chunks), and
 * every applied value is recorded by index, so `check` can tell whether two
 * nodes ever applied different values at one index (state machine safety)
 * or saw two leaders in one term (election safety).
 *
 * What is printed: a delivered message as "n1 -> n2 <description>" (the
 * engine's own sabha_msg_describe()), a dropped one as "n1 -x n2 ...", and,
 * indented under the input that caused it, a node's new state whenever its
 * role, term, leader or commit index changed ("n2: follower term=1
 * leader=1 commit=3"). Time is virtual: each node has a clock that only the
 * script moves, 1 ms per tick. */
#include "trace_host.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sabha/engine.h"
#include "tcluster.h" /* tc_msg_clone */

/* ---- output -------------------------------------------------------------- */

void trace_out_add(struct trace_out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  assert(n >= 0);
  if (o->len + (size_t)n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + (size_t)n + 1)
      cap *= 2;
    o->text = realloc(o->text, cap);
    assert(o->text != NULL);
    o->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(o->text + o->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  o->len += (size_t)n;
}

void trace_out_free(struct trace_out *o) {
  free(o->text);
  memset(o, 0, sizeof *o);
}

/* ---- the world ----------------------------------------------------------- */

struct trace_world *trace_world_new(void) {
  struct trace_world *w = calloc(1, sizeof *w);
  assert(w != NULL);
  return w;
}

static void disk_truncate(struct disk *d, uint64_t from) {
  while (d->n > 0 && d->entries[d->n - 1].index >= from)
    free(d->entries[--d->n].data);
}

void trace_world_free(struct trace_world *w) {
  if (w == NULL)
    return;
  for (uint32_t id = 1; id <= w->n; id++) {
    struct node *nd = &w->node[id];
    sabha_engine_free(nd->e);
    disk_truncate(&nd->disk, 0);
    free(nd->disk.entries);
    free(nd->disk.snap_data);
  }
  for (size_t i = 0; i < w->queue_n; i++)
    free(w->queue[i].msg);
  free(w->queue);
  free(w->values);
  free(w->leaders);
  free(w);
}

uint32_t trace_violations(const struct trace_world *w) {
  return w->violations;
}

/* ---- printing ------------------------------------------------------------ */

void host_line(struct trace_world *w, int indent, const char *fmt, ...) {
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (w->timed)
    trace_out_add(w->o, "+%llums ", (unsigned long long)w->elapsed_ms);
  trace_out_add(w->o, "%*s%s\n", indent * 2, "", text);
}

void host_violation(struct trace_world *w, int indent, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  w->violations++;
  host_line(w, indent, "!! contract: %s", text);
}

/* A term, or a ballot as round.node. */
const char *host_term_text(const struct trace_world *w, uint64_t term,
                           char *buf, size_t size) {
  if (w->ballots && term != 0)
    snprintf(buf, size, "%llu.%llu", (unsigned long long)(term >> 8),
             (unsigned long long)(term & 0xff));
  else
    snprintf(buf, size, "%llu", (unsigned long long)term);
  return buf;
}

void host_value_text(const struct sabha_entry *e, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  if (e->type == SABHA_ENTRY_NOOP) {
    snprintf(buf, size, "noop");
    return;
  }
  if (e->type == SABHA_ENTRY_BATCH) {
    len += (size_t)snprintf(buf, size, "batch[");
    size_t offset = 0;
    const uint8_t *cmd;
    size_t cmd_size;
    int rv;
    for (int i = 0; (rv = sabha_batch_next(e, &offset, &cmd, &cmd_size)) == 1;
         i++) {
      struct sabha_entry one = {.type = SABHA_ENTRY_COMMAND,
                                .size_bytes = (uint32_t)cmd_size,
                                .data = cmd};
      char part[TR_VALUE_BYTES * 4 + 16];
      host_value_text(&one, part, sizeof part);
      if (len < size)
        len +=
            (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : "", part);
    }
    if (len < size)
      snprintf(buf + len, size - len, rv == 0 ? "]" : ",corrupt]");
    return;
  }
  uint32_t shown =
      e->size_bytes < TR_VALUE_BYTES ? e->size_bytes : TR_VALUE_BYTES;
  len += (size_t)snprintf(buf, size, "\"");
  for (uint32_t i = 0; i < shown && len < size; i++) {
    uint8_t c = e->data[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      len += (size_t)snprintf(buf + len, size - len, "%c", c);
    else
      len += (size_t)snprintf(buf + len, size - len, "\\x%02x", c);
  }
  if (len < size)
    len += (size_t)snprintf(buf + len, size - len, "\"");
  if (shown < e->size_bytes && len < size)
    snprintf(buf + len, size - len, "+%u", e->size_bytes - shown);
}

void host_describe(const struct trace_world *w, const struct sabha_msg *m,
                   char *buf, size_t size) {
  size_t len = sabha_msg_describe(w->protocol, m, buf, size);
  if (len >= size && size > 4)
    memcpy(buf + size - 4, "...", 4);
}

void host_print_msg(struct trace_world *w, int indent,
                    const struct sabha_msg *m, const char *arrow,
                    const char *why) {
  char text[TR_DESCRIBE_BYTES];
  host_describe(w, m, text, sizeof text);
  host_line(w, indent, "n%u %s n%u %s%s%s", m->from, arrow, m->to, text,
            why ? " " : "", why ? why : "");
}

/* ---- the network --------------------------------------------------------- */

static void enqueue(struct trace_world *w, int indent,
                    const struct sabha_msg *m) {
  if (m->to == 0 || m->to > w->n || m->from == 0 || m->from > w->n) {
    host_violation(w, indent, "n%u sent a message to n%u, not a member",
                   m->from, m->to);
    return;
  }
  if (w->queue_n == TR_QUEUE_MAX) {
    host_print_msg(w, indent, m, "-x", "(network full)");
    return;
  }
  if (w->queue_n == w->queue_cap) {
    w->queue_cap = w->queue_cap ? w->queue_cap * 2 : 64;
    w->queue = realloc(w->queue, w->queue_cap * sizeof *w->queue);
    assert(w->queue != NULL);
  }
  w->queue[w->queue_n++] =
      (struct queued){.seq = ++w->seq, .msg = tc_msg_clone(m)};
}

struct sabha_msg *host_dequeue(struct trace_world *w, size_t i) {
  assert(i < w->queue_n);
  struct sabha_msg *m = w->queue[i].msg;
  memmove(&w->queue[i], &w->queue[i + 1],
          (w->queue_n - i - 1) * sizeof *w->queue);
  w->queue_n--;
  return m;
}

/* ---- the disk ------------------------------------------------------------ */

uint64_t host_disk_last(const struct disk *d) {
  if (d->n > 0)
    return d->entries[d->n - 1].index;
  return d->has_snapshot ? d->snap.index : 0;
}

const struct disk_entry *host_disk_get(const struct disk *d, uint64_t index) {
  if (d->n == 0 || index < d->entries[0].index || index > host_disk_last(d))
    return NULL;
  return &d->entries[index - d->entries[0].index];
}

/* A put at an index overwrites it (Paxos accepts a slot again); a put one
 * past the end appends; anything else would leave a hole. */
static bool disk_put(struct disk *d, const struct sabha_entry *e) {
  struct disk_entry *slot = (struct disk_entry *)host_disk_get(d, e->index);
  if (slot == NULL) {
    if (e->index != host_disk_last(d) + 1)
      return false;
    if (d->n == d->cap) {
      d->cap = d->cap ? d->cap * 2 : 64;
      d->entries = realloc(d->entries, d->cap * sizeof *d->entries);
      assert(d->entries != NULL);
    }
    slot = &d->entries[d->n++];
  } else {
    free(slot->data);
  }
  *slot = (struct disk_entry){.index = e->index,
                              .term = e->term,
                              .type = e->type,
                              .size_bytes = e->size_bytes,
                              .data = malloc(e->size_bytes + 1u)};
  assert(slot->data != NULL);
  if (e->size_bytes > 0)
    memcpy(slot->data, e->data, e->size_bytes);
  return true;
}

static void disk_snapshot(struct disk *d, const struct sabha_snapshot_meta *s,
                          const uint8_t *data, size_t size) {
  size_t drop = 0;
  while (drop < d->n && d->entries[drop].index <= s->index)
    free(d->entries[drop++].data);
  if (d->n > drop)
    memmove(d->entries, d->entries + drop, (d->n - drop) * sizeof *d->entries);
  d->n -= drop;
  if (d->n > 0 && d->entries[0].index != s->index + 1) {
    /* The log no longer follows the snapshot: it cannot be kept. */
    disk_truncate(d, 0);
  }
  free(d->snap_data);
  d->snap_data = malloc(size + 1);
  assert(d->snap_data != NULL);
  if (size > 0)
    memcpy(d->snap_data, data, size);
  d->snap_size = size;
  d->snap = *s;
  d->has_snapshot = true;
}

/* ---- the state machine and the checkers ---------------------------------- */

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static void record_value(struct trace_world *w, uint32_t id,
                         const struct sabha_entry *e) {
  if (e->index >= w->values_cap) {
    size_t cap = w->values_cap ? w->values_cap : 256;
    while (cap <= e->index)
      cap *= 2;
    w->values = realloc(w->values, cap * sizeof *w->values);
    assert(w->values != NULL);
    memset(w->values + w->values_cap, 0,
           (cap - w->values_cap) * sizeof *w->values);
    w->values_cap = cap;
  }
  /* The value decides, not the term: a Paxos leader re-proposes a chosen
   * value under its own ballot. */
  uint64_t h = fnv(e->data, e->size_bytes, 0xcbf29ce484222325ull ^ e->type);
  struct applied_value *v = &w->values[e->index];
  if (!v->seen) {
    *v = (struct applied_value){.seen = true, .node = id, .hash = h};
    host_value_text(e, v->text, sizeof v->text);
    return;
  }
  if (v->hash == h)
    return;
  if (w->conflicts++ == 0) {
    char mine[sizeof v->text];
    host_value_text(e, mine, sizeof mine);
    snprintf(w->first_problem, sizeof w->first_problem,
             "index %llu: n%u applied %s, n%u applied %s",
             (unsigned long long)e->index, v->node, v->text, id, mine);
  }
}

static void record_leader(struct trace_world *w, uint32_t id,
                          const struct sabha_status *st) {
  if (st->role != SABHA_ROLE_LEADER)
    return;
  for (size_t i = 0; i < w->leaders_n; i++) {
    if (w->leaders[i].term != st->term)
      continue;
    if (w->leaders[i].leader != id && w->two_leaders++ == 0 &&
        w->conflicts == 0) {
      char t[32];
      snprintf(w->first_problem, sizeof w->first_problem,
               "n%u and n%u both led term %s", w->leaders[i].leader, id,
               host_term_text(w, st->term, t, sizeof t));
    }
    return;
  }
  if (w->leaders_n == w->leaders_cap) {
    w->leaders_cap = w->leaders_cap ? w->leaders_cap * 2 : 32;
    w->leaders = realloc(w->leaders, w->leaders_cap * sizeof *w->leaders);
    assert(w->leaders != NULL);
  }
  w->leaders[w->leaders_n++] = (struct term_leader){st->term, id};
}

void host_observe(struct trace_world *w, uint32_t id, int indent) {
  struct node *nd = &w->node[id];
  if (nd->e == NULL)
    return;
  struct sabha_status st;
  sabha_engine_status(nd->e, &st);
  record_leader(w, id, &st);
  if (nd->shown && st.role == nd->last.role && st.term == nd->last.term &&
      st.leader == nd->last.leader && st.commit == nd->last.commit)
    return;
  nd->shown = true;
  nd->last = st;
  char t[32];
  char leader[16] = "-";
  if (st.leader != SABHA_NODE_NONE)
    snprintf(leader, sizeof leader, "%u", st.leader);
  host_line(w, indent, "n%u: %s %s=%s leader=%s commit=%llu", id,
            sabha_role_name(st.role), w->ballots ? "ballot" : "term",
            host_term_text(w, st.term, t, sizeof t), leader,
            (unsigned long long)st.commit);
}

/* ---- the host: carrying out ready batches -------------------------------- */

static void persist(struct trace_world *w, uint32_t id, int indent,
                    const struct sabha_ready *rd) {
  struct disk *d = &w->node[id].disk;
  if (rd->has_hard_state)
    d->hs = rd->hard_state;
  if (rd->has_snapshot)
    disk_snapshot(d, &rd->snapshot, rd->snapshot_data, rd->snapshot_size_bytes);
  if (rd->truncate_from != 0)
    disk_truncate(d, rd->truncate_from);
  for (size_t i = 0; i < rd->n_entries && !w->lose_writes; i++)
    if (!disk_put(d, &rd->entries[i]))
      host_violation(w, indent,
                     "n%u: entry %llu persisted after a hole (last %llu)", id,
                     (unsigned long long)rd->entries[i].index,
                     (unsigned long long)host_disk_last(d));
}

static void apply(struct trace_world *w, uint32_t id, int indent,
                  const struct sabha_ready *rd) {
  struct node *nd = &w->node[id];
  if (rd->has_snapshot) {
    nd->sm = 0; /* no bytes: the empty state machine */
    if (rd->snapshot_size_bytes >= sizeof nd->sm)
      memcpy(&nd->sm, rd->snapshot_data, sizeof nd->sm);
    nd->applied = rd->snapshot.index;
  }
  for (size_t i = 0; i < rd->n_committed; i++) {
    const struct sabha_entry *e = &rd->committed[i];
    const struct disk_entry *on_disk = host_disk_get(&nd->disk, e->index);
    if (e->index != nd->applied + 1)
      host_violation(w, indent, "n%u: applied %llu after %llu", id,
                     (unsigned long long)e->index,
                     (unsigned long long)nd->applied);
    else if (on_disk == NULL || on_disk->term != e->term)
      host_violation(w, indent, "n%u: applied %llu before persisting it", id,
                     (unsigned long long)e->index);
    record_value(w, id, e);
    nd->applied = e->index;
    nd->sm = fnv(e->data, e->size_bytes, nd->sm ^ e->index);
  }
  for (size_t i = 0; i < rd->n_reads; i++) {
    if (rd->reads[i].index > nd->applied)
      host_violation(w, indent, "n%u: read %llu at %llu, beyond applied %llu",
                     id, (unsigned long long)rd->reads[i].request_id,
                     (unsigned long long)rd->reads[i].index,
                     (unsigned long long)nd->applied);
    host_line(w, indent, "n%u read %llu served at index %llu", id,
              (unsigned long long)rd->reads[i].request_id,
              (unsigned long long)rd->reads[i].index);
  }
}

void host_process_ready(struct trace_world *w, uint32_t id, int indent) {
  struct node *nd = &w->node[id];
  for (uint32_t loop = 0; nd->e != NULL && sabha_engine_has_ready(nd->e);
       loop++) {
    if (loop == TR_READY_LOOPS_MAX) {
      host_violation(w, indent, "n%u: has_ready stays true", id);
      break;
    }
    struct sabha_ready rd;
    sabha_engine_ready(nd->e, &rd);
    for (size_t i = 0; i < rd.n_msgs; i++)
      enqueue(w, indent, &rd.msgs[i]);
    persist(w, id, indent, &rd);
    for (size_t i = 0; i < rd.n_msgs_after_persist; i++)
      enqueue(w, indent, &rd.msgs_after_persist[i]);
    apply(w, id, indent, &rd);
    sabha_engine_advance(nd->e, &rd);
    sabha_engine_persisted(nd->e, rd.seq); /* a host that syncs at once */
  }
  host_observe(w, id, indent);
}

void host_deliver_at(struct trace_world *w, size_t i) {
  struct sabha_msg *m = host_dequeue(w, i);
  struct node *to = &w->node[m->to];
  const char *why = to->e == NULL            ? "(down)"
                    : w->cut[m->from][m->to] ? "(cut)"
                                             : NULL;
  if (why != NULL) {
    if (!w->quiet)
      host_print_msg(w, 0, m, "-x", why);
    free(m);
    return;
  }
  if (!w->quiet)
    host_print_msg(w, 0, m, "->", NULL);
  int rv = sabha_engine_step(to->e, m);
  if (rv != 0)
    host_line(w, 1, "n%u refused it: %s", m->to, sabha_strerror(rv));
  free(m);
  host_process_ready(w, to - w->node, w->quiet ? 0 : 1);
}

bool host_stabilize(struct trace_world *w) {
  uint32_t delivered = 0;
  while (w->queue_n > 0) {
    size_t round = w->queue_n; /* replies wait for the next round */
    for (size_t k = 0; k < round; k++) {
      if (delivered++ == TR_DELIVERIES_MAX)
        return false;
      host_deliver_at(w, 0);
    }
  }
  return true;
}

/* ---- nodes --------------------------------------------------------------- */

int host_start_node(struct trace_world *w, uint32_t id) {
  struct node *nd = &w->node[id];
  struct disk *d = &nd->disk;
  struct sabha_entry *es = calloc(d->n + 1, sizeof *es);
  assert(es != NULL);
  for (size_t i = 0; i < d->n; i++)
    es[i] = (struct sabha_entry){.index = d->entries[i].index,
                                 .term = d->entries[i].term,
                                 .type = d->entries[i].type,
                                 .size_bytes = d->entries[i].size_bytes,
                                 .data = d->entries[i].data};
  struct sabha_persisted p = {
      .hard_state = d->hs, .entries = es, .n_entries = d->n};
  nd->applied = 0;
  nd->sm = 0;
  if (d->has_snapshot) {
    p.has_snapshot = true;
    p.snapshot = d->snap;
    p.snapshot_data = d->snap_data;
    p.snapshot_size_bytes = d->snap_size;
    p.applied = d->snap.index;
    nd->applied = d->snap.index;
    if (d->snap_size >= sizeof nd->sm)
      memcpy(&nd->sm, d->snap_data, sizeof nd->sm);
  }
  int rv = sabha_engine_new(&nd->e, w->protocol, &w->cfg[id], &p);
  free(es);
  if (rv != 0) {
    nd->e = NULL;
    return rv;
  }
  sabha_engine_tick(nd->e, nd->now_ms); /* the engine learns the clock */
  return 0;
}

void host_crash_node(struct trace_world *w, uint32_t id) {
  sabha_engine_free(w->node[id].e);
  w->node[id].e = NULL;
  w->node[id].shown = false;
}

void host_tick_node(struct trace_world *w, uint32_t id) {
  struct node *nd = &w->node[id];
  nd->now_ms++;
  if (nd->e == NULL)
    return;
  sabha_engine_tick(nd->e, nd->now_ms);
  host_process_ready(w, id, 0);
}
