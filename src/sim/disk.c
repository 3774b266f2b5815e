/* The simulated disk: pending records, the durable image, and the replay of
 * one onto the other (rules in disk.h). A simulator runs thousands of these
 * batches per second, so the log is an array with a moving head rather than
 * a list, and each entry's bytes are copied once, when written. */
#include "sim/disk.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *disk_xmalloc(size_t size) {
  void *p = malloc(size == 0 ? 1 : size);
  if (p == NULL) {
    fprintf(stderr, "sabha sim: out of memory (disk)\n");
    abort();
  }
  return p;
}

static uint8_t *copy_bytes(const uint8_t *src, size_t size) {
  if (size == 0)
    return NULL;
  uint8_t *p = disk_xmalloc(size);
  memcpy(p, src, size);
  return p;
}

void disk_init(struct disk *d) {
  memset(d, 0, sizeof *d);
}

static void log_free(struct disk_log *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[l->head + i].data);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static void rec_free(struct disk_rec *r) {
  free(r->snap_data);
  free(r->entry.data);
}

void disk_free(struct disk *d) {
  log_free(&d->durable.log);
  free(d->durable.snap_data);
  for (size_t i = 0; i < d->n_pending; i++)
    rec_free(&d->pending[i]);
  free(d->pending);
  free(d->view);
  memset(d, 0, sizeof *d);
}

static uint64_t image_first(const struct disk_image *im) {
  return (im->has_snapshot ? im->snap.index : 0) + 1;
}

static uint64_t image_last(const struct disk_image *im) {
  return image_first(im) + im->log.n - 1;
}

uint64_t disk_first_index(const struct disk *d) {
  return image_first(&d->durable);
}

uint64_t disk_last_index(const struct disk *d) {
  return image_last(&d->durable);
}

const struct disk_entry *disk_entry_at(const struct disk *d, uint64_t index) {
  const struct disk_image *im = &d->durable;
  if (index < image_first(im) || index > image_last(im))
    return NULL;
  return &im->log.v[im->log.head + (index - image_first(im))];
}

static void violation(struct disk *d, const char *what, uint64_t index) {
  if (d->violations++ == 0)
    snprintf(d->violation, sizeof d->violation,
             "%s (index %llu; the durable log holds [%llu, %llu])", what,
             (unsigned long long)index,
             (unsigned long long)image_first(&d->durable),
             (unsigned long long)image_last(&d->durable));
}

/* Drops the first `count` entries of the log. */
static void log_drop_front(struct disk_log *l, size_t count) {
  assert(count <= l->n);
  for (size_t i = 0; i < count; i++)
    free(l->v[l->head + i].data);
  l->head += count;
  l->n -= count;
  if (l->n == 0)
    l->head = 0;
}

/* Keeps only the first `count` entries of the log. */
static void log_keep_front(struct disk_log *l, size_t count) {
  assert(count <= l->n);
  for (size_t i = count; i < l->n; i++)
    free(l->v[l->head + i].data);
  l->n = count;
  if (l->n == 0)
    l->head = 0;
}

/* Appends `e`, taking its data. */
static void log_push(struct disk_log *l, struct disk_entry e) {
  if (l->head + l->n == l->cap) {
    if (l->head > l->n) {
      memmove(l->v, l->v + l->head, l->n * sizeof *l->v);
      l->head = 0;
    } else {
      size_t cap = l->cap == 0 ? 64 : l->cap * 2;
      struct disk_entry *v = realloc(l->v, cap * sizeof *v);
      if (v == NULL) {
        fprintf(stderr, "sabha sim: out of memory (disk log)\n");
        abort();
      }
      l->v = v;
      l->cap = cap;
    }
  }
  l->v[l->head + l->n++] = e;
}

/* Installs snapshot `meta` (taking `data`) on the image: the entries it
 * covers go, the ones after it stay (an engine that wants them gone says so
 * with a truncation, as Raft's does when its log disagrees with the
 * snapshot; Paxos keeps every accepted value). */
static void image_set_snapshot(struct disk_image *im,
                               struct sabha_snapshot_meta meta, uint8_t *data,
                               size_t size) {
  if (im->has_snapshot && meta.index <= im->snap.index) {
    free(data); /* older than what we have: nothing to learn */
    return;
  }
  uint64_t first = image_first(im), last = image_last(im);
  if (meta.index <= last)
    log_drop_front(&im->log, (size_t)(meta.index - first + 1));
  else
    log_keep_front(&im->log, 0);
  free(im->snap_data);
  im->has_snapshot = true;
  im->snap = meta;
  im->snap_data = data;
  im->snap_size_bytes = size;
  assert(image_first(im) == meta.index + 1);
}

/* Applies one record to the durable image, taking its owned bytes. */
static void replay(struct disk *d, struct disk_rec *r) {
  struct disk_image *im = &d->durable;
  uint64_t first = image_first(im), last = image_last(im);
  switch (r->kind) {
  case DISK_REC_HARD_STATE:
    im->hs = r->hs;
    break;
  case DISK_REC_SNAPSHOT:
    image_set_snapshot(im, r->snap, r->snap_data, r->snap_size_bytes);
    r->snap_data = NULL;
    break;
  case DISK_REC_TRUNCATE:
    if (r->truncate_from < first)
      log_keep_front(&im->log, 0);
    else if (r->truncate_from <= last)
      log_keep_front(&im->log, (size_t)(r->truncate_from - first));
    break;
  case DISK_REC_ENTRY: {
    uint64_t i = r->entry.index;
    if (i < first) {
      /* Covered by a snapshot stored after the entry was written (host
       * compaction while the write was pending) is fine; otherwise the
       * engine persisted an entry inside its own snapshot. */
      if (!im->has_snapshot)
        violation(d, "an entry below its log start", i);
      free(r->entry.data);
    } else if (i <= last) {
      struct disk_entry *old = &im->log.v[im->log.head + (i - first)];
      free(old->data);
      *old = r->entry;
    } else if (i == last + 1) {
      log_push(&im->log, r->entry);
    } else {
      violation(d, "an entry past a gap in its log", i);
      free(r->entry.data);
    }
    r->entry.data = NULL;
    break;
  }
  default:
    assert(0 && "unknown disk record");
  }
}

static struct disk_rec *pending_push(struct disk *d, uint32_t kind) {
  if (d->n_pending == d->cap_pending) {
    size_t cap = d->cap_pending == 0 ? 64 : d->cap_pending * 2;
    struct disk_rec *p = realloc(d->pending, cap * sizeof *p);
    if (p == NULL) {
      fprintf(stderr, "sabha sim: out of memory (disk records)\n");
      abort();
    }
    d->pending = p;
    d->cap_pending = cap;
  }
  struct disk_rec *r = &d->pending[d->n_pending++];
  memset(r, 0, sizeof *r);
  r->kind = kind;
  return r;
}

size_t disk_write_ready(struct disk *d, const struct sabha_ready *rd) {
  size_t before = d->n_pending;
  if (rd->has_hard_state)
    pending_push(d, DISK_REC_HARD_STATE)->hs = rd->hard_state;
  if (rd->has_snapshot) {
    struct disk_rec *r = pending_push(d, DISK_REC_SNAPSHOT);
    r->snap = rd->snapshot;
    r->snap_data = copy_bytes(rd->snapshot_data, rd->snapshot_size_bytes);
    r->snap_size_bytes = rd->snapshot_size_bytes;
  }
  if (rd->truncate_from != 0)
    pending_push(d, DISK_REC_TRUNCATE)->truncate_from = rd->truncate_from;
  for (size_t i = 0; i < rd->n_entries; i++) {
    const struct sabha_entry *e = &rd->entries[i];
    struct disk_rec *r = pending_push(d, DISK_REC_ENTRY);
    r->entry.index = e->index;
    r->entry.term = e->term;
    r->entry.type = e->type;
    r->entry.size_bytes = e->size_bytes;
    r->entry.data = copy_bytes(e->data, e->size_bytes);
  }
  return d->n_pending - before;
}

void disk_crash(struct disk *d, size_t n_survive) {
  if (n_survive > d->n_pending)
    n_survive = d->n_pending;
  for (size_t i = 0; i < n_survive; i++)
    replay(d, &d->pending[i]);
  for (size_t i = 0; i < d->n_pending; i++)
    rec_free(&d->pending[i]);
  d->n_pending = 0;
}

void disk_sync(struct disk *d) {
  disk_crash(d, d->n_pending);
}

void disk_store_snapshot(struct disk *d, struct sabha_snapshot_meta meta,
                         const uint8_t *data, size_t size_bytes) {
  /* The host compacts what it applied, which is in its durable log unless
   * the host acknowledged before syncing (a bug under test): then the log
   * simply ends before the snapshot and restarts from it. */
  image_set_snapshot(&d->durable, meta, copy_bytes(data, size_bytes),
                     size_bytes);
}

bool disk_persisted(struct disk *d, struct sabha_persisted *p) {
  const struct disk_image *im = &d->durable;
  memset(p, 0, sizeof *p);
  if (!im->has_snapshot && im->log.n == 0 && im->hs.term == 0 &&
      im->hs.vote == SABHA_NODE_NONE && im->hs.commit == 0)
    return false;
  if (d->cap_view < im->log.n) {
    free(d->view);
    d->cap_view = im->log.n;
    d->view = disk_xmalloc(d->cap_view * sizeof *d->view);
  }
  for (size_t i = 0; i < im->log.n; i++) {
    const struct disk_entry *e = &im->log.v[im->log.head + i];
    d->view[i] = (struct sabha_entry){.index = e->index,
                                      .term = e->term,
                                      .type = e->type,
                                      .size_bytes = e->size_bytes,
                                      .data = e->data};
  }
  p->hard_state = im->hs;
  if (p->hard_state.commit > image_last(im))
    p->hard_state.commit = image_last(im);
  p->has_snapshot = im->has_snapshot;
  p->snapshot = im->snap;
  p->snapshot_data = im->snap_data;
  p->snapshot_size_bytes = im->snap_size_bytes;
  p->entries = d->view;
  p->n_entries = im->log.n;
  p->applied = im->has_snapshot ? im->snap.index : 0;
  return true;
}
