/* Queued engine output; see outbox.h. */
#include "core/outbox.h"

#include <stdlib.h>
#include <string.h>

void outbox_init(struct outbox *o) {
  memset(o, 0, sizeof *o);
  arena_init(&o->arena);
}

void outbox_free(struct outbox *o) {
  free(o->now.items);
  free(o->after_persist.items);
  free(o->reads);
  arena_free(&o->arena);
  memset(o, 0, sizeof *o);
}

void outbox_reset(struct outbox *o) {
  o->now.n = 0;
  o->after_persist.n = 0;
  o->n_reads = 0;
  arena_reset(&o->arena);
}

static int grow(void **items, size_t *cap, size_t item_size) {
  size_t next = *cap == 0 ? 16 : *cap * 2;
  void *p = realloc(*items, next * item_size);
  if (p == NULL)
    return SABHA_ENOMEM;
  *items = p;
  *cap = next;
  return 0;
}

int outbox_send(struct outbox *o, const struct sabha_msg *m,
                bool after_persist) {
  struct msg_vec *v = after_persist ? &o->after_persist : &o->now;
  if (v->n == v->cap &&
      grow((void **)&v->items, &v->cap, sizeof *v->items) != 0)
    return SABHA_ENOMEM;
  struct sabha_msg copy = *m;
  if (m->n_entries > 0) {
    struct sabha_entry *entries =
        arena_alloc(&o->arena, m->n_entries * sizeof *entries);
    if (entries == NULL)
      return SABHA_ENOMEM;
    for (uint32_t i = 0; i < m->n_entries; i++) {
      entries[i] = m->entries[i];
      if (m->entries[i].size_bytes > 0) {
        uint8_t *data = arena_alloc(&o->arena, m->entries[i].size_bytes);
        if (data == NULL)
          return SABHA_ENOMEM;
        memcpy(data, m->entries[i].data, m->entries[i].size_bytes);
        entries[i].data = data;
      }
    }
    copy.entries = entries;
  }
  if (m->snap_size_bytes > 0) {
    uint8_t *data = arena_alloc(&o->arena, m->snap_size_bytes);
    if (data == NULL)
      return SABHA_ENOMEM;
    memcpy(data, m->snap_data, m->snap_size_bytes);
    copy.snap_data = data;
  }
  v->items[v->n++] = copy;
  return 0;
}

int outbox_read_state(struct outbox *o, uint64_t request_id, uint64_t index) {
  if (o->n_reads == o->cap_reads &&
      grow((void **)&o->reads, &o->cap_reads, sizeof *o->reads) != 0)
    return SABHA_ENOMEM;
  o->reads[o->n_reads].request_id = request_id;
  o->reads[o->n_reads].index = index;
  o->n_reads++;
  return 0;
}
