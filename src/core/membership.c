/* Memberships: their encoding in CONFIG entries and the checks every engine
 * applies to a change (include/sabha/engine.h, core/membership.h).
 *
 * A CONFIG entry may come from a peer or from the disk, so decoding trusts
 * nothing: every count and length is checked against what is left before
 * it is used, and a membership no engine could act on (no voter, a
 * repeated id) is refused as corrupt. */
#include "core/membership.h"

#include <assert.h>
#include <string.h>

#include "core/endian.h"

#define MAGIC "SCF1"
#define HEADER_BYTES 8u
#define MEMBER_FIXED_BYTES 9u /* u32 id, u8 role, u32 address length */

const char *sabha_member_role_name(uint32_t role) {
  switch (role) {
  case SABHA_MEMBER_VOTER:
    return "voter";
  case SABHA_MEMBER_LEARNER:
    return "learner";
  }
  return "unknown";
}

static bool addr_ok(const char *addr, size_t len) {
  if (len > SABHA_ADDR_BYTES_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (addr[i] <= ' ' || addr[i] > '~')
      return false;
  return true;
}

static bool members_ok(const struct sabha_membership *m) {
  if (m->n == 0 || m->n > SABHA_NODES_MAX)
    return false;
  for (uint32_t i = 0; i < m->n; i++) {
    const struct sabha_member *x = &m->members[i];
    if (x->id == SABHA_NODE_NONE ||
        (x->role != SABHA_MEMBER_VOTER && x->role != SABHA_MEMBER_LEARNER) ||
        !addr_ok(x->addr, strnlen(x->addr, sizeof x->addr)) ||
        strnlen(x->addr, sizeof x->addr) == sizeof x->addr)
      return false;
    for (uint32_t j = 0; j < i; j++)
      if (m->members[j].id == x->id)
        return false;
  }
  return membership_voters(m) > 0;
}

size_t sabha_membership_encode(const struct sabha_membership *m, uint8_t *buf,
                               size_t size) {
  if (!members_ok(m))
    return 0;
  size_t need = HEADER_BYTES;
  for (uint32_t i = 0; i < m->n; i++)
    need += MEMBER_FIXED_BYTES + strlen(m->members[i].addr);
  if (need > size)
    return 0;
  memcpy(buf, MAGIC, 4);
  le_put_u32(buf + 4, m->n);
  uint8_t *p = buf + HEADER_BYTES;
  for (uint32_t i = 0; i < m->n; i++) {
    size_t len = strlen(m->members[i].addr);
    le_put_u32(p, m->members[i].id);
    p[4] = (uint8_t)m->members[i].role;
    le_put_u32(p + 5, (uint32_t)len);
    memcpy(p + MEMBER_FIXED_BYTES, m->members[i].addr, len);
    p += MEMBER_FIXED_BYTES + len;
  }
  assert((size_t)(p - buf) == need);
  return need;
}

int sabha_membership_decode(const uint8_t *buf, size_t size,
                            struct sabha_membership *out) {
  memset(out, 0, sizeof *out);
  if (size < HEADER_BYTES || memcmp(buf, MAGIC, 4) != 0)
    return SABHA_ECORRUPT;
  uint32_t n = le_get_u32(buf + 4);
  if (n == 0 || n > SABHA_NODES_MAX)
    return SABHA_ECORRUPT;
  size_t left = size - HEADER_BYTES;
  const uint8_t *p = buf + HEADER_BYTES;
  for (uint32_t i = 0; i < n; i++) {
    if (left < MEMBER_FIXED_BYTES)
      return SABHA_ECORRUPT;
    struct sabha_member *x = &out->members[i];
    x->id = le_get_u32(p);
    x->role = p[4];
    uint32_t len = le_get_u32(p + 5);
    left -= MEMBER_FIXED_BYTES;
    p += MEMBER_FIXED_BYTES;
    if (len > SABHA_ADDR_BYTES_MAX || len > left ||
        !addr_ok((const char *)p, len))
      return SABHA_ECORRUPT;
    memcpy(x->addr, p, len);
    x->addr[len] = '\0';
    left -= len;
    p += len;
  }
  out->n = n;
  if (left != 0 || !members_ok(out)) {
    memset(out, 0, sizeof *out);
    return SABHA_ECORRUPT;
  }
  return 0;
}

const struct sabha_member *
sabha_membership_find(const struct sabha_membership *m, uint32_t id) {
  for (uint32_t i = 0; i < m->n; i++)
    if (m->members[i].id == id)
      return &m->members[i];
  return NULL;
}

void membership_initial(const struct sabha_config *cfg,
                        struct sabha_membership *out) {
  memset(out, 0, sizeof *out);
  if (cfg->join)
    return;
  out->n = cfg->n_voters;
  for (uint32_t i = 0; i < cfg->n_voters; i++) {
    out->members[i].id = cfg->voters[i];
    out->members[i].role = SABHA_MEMBER_VOTER;
  }
}

uint32_t membership_voters(const struct sabha_membership *m) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < m->n; i++)
    n += m->members[i].role == SABHA_MEMBER_VOTER;
  return n;
}

uint32_t membership_quorum(const struct sabha_membership *m) {
  return membership_voters(m) / 2 + 1;
}

bool membership_is_voter(const struct sabha_membership *m, uint32_t id) {
  const struct sabha_member *x = sabha_membership_find(m, id);
  return x != NULL && x->role == SABHA_MEMBER_VOTER;
}

int membership_apply_change(const struct sabha_membership *cur,
                            enum sabha_change_type type, uint32_t id,
                            const char *addr, struct sabha_membership *out) {
  *out = *cur;
  out->index = 0;
  for (uint32_t i = 0; i < out->n; i++) {
    out->members[i].match = 0;
    out->members[i].caught_up = false;
  }
  if (id == SABHA_NODE_NONE)
    return SABHA_EINVAL;
  const struct sabha_member *x = sabha_membership_find(cur, id);
  uint32_t slot = x != NULL ? (uint32_t)(x - cur->members) : 0;
  switch (type) {
  case SABHA_CHANGE_ADD_LEARNER: {
    size_t len = addr != NULL ? strlen(addr) : 0;
    if (x != NULL || out->n == SABHA_NODES_MAX || !addr_ok(addr, len))
      return SABHA_EINVAL;
    struct sabha_member *nm = &out->members[out->n++];
    memset(nm, 0, sizeof *nm);
    nm->id = id;
    nm->role = SABHA_MEMBER_LEARNER;
    if (len > 0)
      memcpy(nm->addr, addr, len);
    return 0;
  }
  case SABHA_CHANGE_PROMOTE:
    if (x == NULL || x->role != SABHA_MEMBER_LEARNER)
      return SABHA_EINVAL;
    out->members[slot].role = SABHA_MEMBER_VOTER;
    return 0;
  case SABHA_CHANGE_REMOVE:
    if (x == NULL ||
        (x->role == SABHA_MEMBER_VOTER && membership_voters(cur) == 1))
      return SABHA_EINVAL;
    memmove(&out->members[slot], &out->members[slot + 1],
            (out->n - slot - 1) * sizeof out->members[0]);
    out->n--;
    return 0;
  }
  return SABHA_EINVAL;
}

int membership_of_entry(const struct sabha_entry *e,
                        struct sabha_membership *out) {
  assert(e->type == SABHA_ENTRY_CONFIG);
  int rv = sabha_membership_decode(e->data, e->size_bytes, out);
  out->index = e->index;
  return rv;
}

bool membership_entries_valid(const struct sabha_entry *entries, uint32_t n) {
  struct sabha_membership m;
  for (uint32_t i = 0; i < n; i++)
    if (entries[i].type == SABHA_ENTRY_CONFIG &&
        membership_of_entry(&entries[i], &m) != 0)
      return false;
  return true;
}

int membership_of_snapshot_msg(const struct sabha_msg *m,
                               struct sabha_membership *out) {
  if (m->n_entries != 1 || m->entries[0].type != SABHA_ENTRY_CONFIG ||
      m->entries[0].index > m->snap.index)
    return SABHA_ECORRUPT;
  return membership_of_entry(&m->entries[0], out);
}

int membership_snapshot_entry(const struct sabha_membership *m, uint8_t *buf,
                              size_t *len, struct sabha_entry *entry) {
  *len = 0;
  memset(entry, 0, sizeof *entry);
  if (m->n == 0)
    return 0; /* a joining node that has none yet */
  *len = sabha_membership_encode(m, buf, SABHA_MEMBERSHIP_BYTES_MAX);
  if (*len == 0)
    return SABHA_EINVAL;
  *entry = (struct sabha_entry){
      .index = m->index,
      .type = SABHA_ENTRY_CONFIG,
      .size_bytes = (uint32_t)*len,
      .data = buf,
  };
  return 0;
}

bool membership_caught_up(const struct progress *pr, uint32_t self_id,
                          uint64_t commit) {
  return pr->id == self_id ||
         (pr->state == PROGRESS_REPLICATE && pr->match >= commit);
}

bool membership_working_majority(const struct sabha_membership *next,
                                 const struct progress *peers,
                                 uint32_t self_id, uint64_t term_start_index) {
  uint32_t working = 0;
  for (uint32_t k = 0; k < next->n; k++) {
    const struct sabha_member *x = &next->members[k];
    if (x->role != SABHA_MEMBER_VOTER)
      continue;
    if (x->id == self_id) {
      working++;
      continue;
    }
    for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
      const struct progress *pr = &peers[i];
      if (pr->id == x->id && (pr->recent_active || pr->active_before) &&
          pr->match >= term_start_index && !pr->log_lost)
        working++;
    }
  }
  return working >= membership_quorum(next);
}

void membership_fill_progress(struct sabha_membership *m,
                              const struct progress *peers, uint32_t self_id,
                              uint64_t self_match, uint64_t commit) {
  for (uint32_t k = 0; k < m->n; k++) {
    struct sabha_member *x = &m->members[k];
    for (uint32_t i = 0; i < SABHA_NODES_MAX; i++) {
      if (peers[i].id != x->id)
        continue;
      x->match = x->id == self_id ? self_match : peers[i].match;
      x->caught_up = membership_caught_up(&peers[i], self_id, commit);
    }
  }
}

static void removals_drop(struct membership_removals *t, uint32_t k) {
  assert(k < t->n);
  memmove(&t->id[k], &t->id[k + 1], (t->n - k - 1) * sizeof t->id[0]);
  memmove(&t->index[k], &t->index[k + 1], (t->n - k - 1) * sizeof t->index[0]);
  t->n--;
}

void membership_removals_note(struct membership_removals *t,
                              const struct sabha_membership *before,
                              const struct sabha_membership *after) {
  assert(t->n <= MEMBERSHIP_REMOVALS_MAX);
  /* Named again: a member, whatever an older change did. */
  for (uint32_t k = t->n; k-- > 0;)
    if (sabha_membership_find(after, t->id[k]) != NULL)
      removals_drop(t, k);
  for (uint32_t i = 0; i < before->n; i++) {
    uint32_t id = before->members[i].id;
    if (sabha_membership_find(after, id) != NULL)
      continue;
    for (uint32_t k = t->n; k-- > 0;)
      if (t->id[k] == id)
        removals_drop(t, k); /* a history seen across a snapshot's jump */
    if (t->n == MEMBERSHIP_REMOVALS_MAX)
      removals_drop(t, 0); /* the oldest goes */
    t->id[t->n] = id;
    t->index[t->n] = after->index;
    t->n++;
  }
  assert(t->n <= MEMBERSHIP_REMOVALS_MAX);
}

bool membership_notice_believed(const struct sabha_membership *own,
                                uint32_t self_id, uint64_t believed,
                                const struct sabha_msg *m) {
  return sabha_membership_find(own, m->from) != NULL && m->index > believed &&
         membership_notice_holds(own, self_id, m->index);
}

bool membership_notice_holds(const struct sabha_membership *own,
                             uint32_t self_id, uint64_t index) {
  if (index == 0 || index < own->index)
    return false;
  return index > own->index ||
         (own->n > 0 && sabha_membership_find(own, self_id) == NULL);
}

uint64_t membership_removed_at(const struct membership_removals *t,
                               uint32_t id) {
  for (uint32_t k = 0; k < t->n; k++)
    if (t->id[k] == id)
      return t->index[k];
  return 0;
}
