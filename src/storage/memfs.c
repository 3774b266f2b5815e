/* memfs: the crash-modelling in-memory file system (see memfs.h for the
 * model). Files are inodes with two buffers, `dur` (what the disk holds) and
 * `cur` (what a reader sees), plus the list of writes and truncations that
 * turn the first into the second; a sync replays the list onto `dur`. Names
 * live in two tables, current and durable, with the pending operations
 * between them in order. A crash builds the durable state the machine
 * restarts from and then throws the page cache away.
 *
 * Everything is bounded by the constants in memfs.h, and nothing recurses. */
#include "storage/memfs.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/prng.h"
#include "sabha/error.h"

struct mem_op {
  bool is_write;   /* else a truncation to `size` */
  uint64_t offset; /* writes only */
  uint64_t size;   /* bytes written, or the new file size */
  uint8_t *bytes;  /* owned; writes only */
};

struct mem_buf {
  uint8_t *p;
  uint64_t size;
  uint64_t cap;
};

struct mem_inode {
  bool used;
  bool is_dir;
  struct mem_buf cur;
  struct mem_buf dur;
  struct mem_op *ops; /* unsynced, oldest first */
  size_t n_ops;
  size_t cap_ops;
  bool lost_writes; /* a failed sync dropped some: dur may differ from cur */
  /* Write-back errors, as Linux's errseq_t keeps them per file (see
   * memfs.h): err_seq counts the failed syncs, err_code is what a
   * descriptor behind the count reports. */
  uint32_t err_seq;
  int err_code;
};

struct mem_name {
  char path[MEMFS_PATH_MAX];
  uint32_t ino;
};

struct mem_names {
  struct mem_name v[MEMFS_FILES_MAX];
  size_t n;
};

enum { NS_CREATE = 1, NS_RENAME, NS_UNLINK };

struct mem_nsop {
  int kind;
  uint32_t ino; /* NS_CREATE */
  char a[MEMFS_PATH_MAX];
  char b[MEMFS_PATH_MAX]; /* NS_RENAME's destination */
};

struct memfs {
  struct prng rng;
  struct mem_inode ino[MEMFS_FILES_MAX]; /* 0 is the root directory */
  struct mem_names cur;
  struct mem_names dur;
  struct mem_nsop pending[MEMFS_PENDING_NAMES_MAX];
  size_t n_pending;
  int32_t fd_ino[MEMFS_FDS_MAX]; /* -1: free */
  /* The inode's err_seq this descriptor last reported (or sampled at
   * open): each open file description reports a write-back error once. */
  uint32_t fd_err_seq[MEMFS_FDS_MAX];
  struct memfs_counts counts;
  uint64_t crash_at;
  uint64_t fail_at;
  int fail_err;
  bool dead;
  uint64_t now_ns;
  uint64_t sync_latency_ns;
};

const char *memfs_crash_mode_name(enum memfs_crash_mode mode) {
  switch (mode) {
  case MEMFS_CRASH_DROP:
    return "drop";
  case MEMFS_CRASH_PREFIX:
    return "prefix";
  case MEMFS_CRASH_TEAR:
    return "tear";
  case MEMFS_CRASH_GARBLE:
    return "garble";
  case MEMFS_CRASH_REORDER:
    return "reorder";
  default:
    return "unknown";
  }
}

/* ---- buffers and inodes ---- */

static int buf_reserve(struct mem_buf *b, uint64_t size) {
  if (size <= b->cap)
    return 0;
  uint64_t cap = b->cap < 256 ? 256 : b->cap;
  while (cap < size)
    cap *= 2;
  uint8_t *p = realloc(b->p, (size_t)cap);
  if (p == NULL)
    return -ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

/* Writes `size` bytes at `offset`; a hole before it reads as zeros. */
static int buf_write(struct mem_buf *b, uint64_t offset, const uint8_t *src,
                     uint64_t size) {
  uint64_t end = offset + size;
  if (buf_reserve(b, end) != 0)
    return -ENOMEM;
  if (offset > b->size)
    memset(b->p + b->size, 0, (size_t)(offset - b->size));
  if (size > 0)
    memcpy(b->p + offset, src, (size_t)size);
  if (end > b->size)
    b->size = end;
  return 0;
}

static int buf_truncate(struct mem_buf *b, uint64_t size) {
  if (size > b->size) {
    if (buf_reserve(b, size) != 0)
      return -ENOMEM;
    memset(b->p + b->size, 0, (size_t)(size - b->size));
  }
  b->size = size;
  return 0;
}

static int buf_copy(struct mem_buf *dst, const struct mem_buf *src) {
  if (buf_reserve(dst, src->size) != 0)
    return -ENOMEM;
  if (src->size > 0)
    memcpy(dst->p, src->p, (size_t)src->size);
  dst->size = src->size;
  return 0;
}

static void ops_clear(struct mem_inode *in) {
  for (size_t i = 0; i < in->n_ops; i++)
    free(in->ops[i].bytes);
  in->n_ops = 0;
}

static void inode_release(struct mem_inode *in) {
  ops_clear(in);
  free(in->ops);
  free(in->cur.p);
  free(in->dur.p);
  memset(in, 0, sizeof *in);
}

static int op_push(struct mem_inode *in, struct mem_op op) {
  if (in->n_ops == in->cap_ops) {
    size_t cap = in->cap_ops == 0 ? 16 : in->cap_ops * 2;
    struct mem_op *v = realloc(in->ops, cap * sizeof *v);
    if (v == NULL)
      return -ENOMEM;
    in->ops = v;
    in->cap_ops = cap;
  }
  in->ops[in->n_ops++] = op;
  return 0;
}

static int op_apply(struct mem_buf *b, const struct mem_op *op, uint64_t size) {
  if (op->is_write)
    return buf_write(b, op->offset, op->bytes, size);
  return buf_truncate(b, op->size);
}

static int inode_alloc(struct memfs *fs, bool is_dir, uint32_t *out) {
  for (uint32_t i = 1; i < MEMFS_FILES_MAX; i++) {
    if (!fs->ino[i].used) {
      memset(&fs->ino[i], 0, sizeof fs->ino[i]);
      fs->ino[i].used = true;
      fs->ino[i].is_dir = is_dir;
      *out = i;
      return 0;
    }
  }
  return -ENOSPC;
}

/* ---- names ---- */

/* The directory part of `path` ("" for the root). */
static void parent_of(const char *path, char *out) {
  const char *slash = strrchr(path, '/');
  size_t n = slash == NULL ? 0 : (size_t)(slash - path);
  memcpy(out, path, n);
  out[n] = '\0';
}

static const char *canon_dir(const char *path) {
  if (strcmp(path, ".") == 0 || strcmp(path, "/") == 0)
    return "";
  return path;
}

static struct mem_name *names_find(struct mem_names *t, const char *path) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->v[i].path, path) == 0)
      return &t->v[i];
  return NULL;
}

static void names_remove(struct mem_names *t, const char *path) {
  struct mem_name *n = names_find(t, path);
  if (n != NULL)
    *n = t->v[--t->n];
}

static int names_set(struct mem_names *t, const char *path, uint32_t ino) {
  struct mem_name *n = names_find(t, path);
  if (n == NULL) {
    if (t->n == MEMFS_FILES_MAX)
      return -ENOSPC;
    n = &t->v[t->n++];
    strcpy(n->path, path);
  }
  n->ino = ino;
  return 0;
}

static void names_apply(struct mem_names *t, const struct mem_nsop *op) {
  switch (op->kind) {
  case NS_CREATE:
    /* Cannot overflow: the durable table never holds more names than the
     * current one did when the operation was made. */
    (void)names_set(t, op->a, op->ino);
    break;
  case NS_RENAME: {
    struct mem_name *n = names_find(t, op->a);
    if (n == NULL)
      break;
    uint32_t ino = n->ino;
    names_remove(t, op->a);
    names_remove(t, op->b);
    (void)names_set(t, op->b, ino);
    break;
  }
  case NS_UNLINK:
    names_remove(t, op->a);
    break;
  default:
    assert(0 && "unknown name operation");
  }
}

static bool nsop_touches(const struct mem_nsop *op, const char *dir) {
  char p[MEMFS_PATH_MAX];
  parent_of(op->a, p);
  if (strcmp(p, dir) == 0)
    return true;
  if (op->kind == NS_RENAME) {
    parent_of(op->b, p);
    return strcmp(p, dir) == 0;
  }
  return false;
}

static bool dir_exists(struct memfs *fs, const char *dir) {
  if (dir[0] == '\0')
    return true;
  struct mem_name *n = names_find(&fs->cur, dir);
  return n != NULL && fs->ino[n->ino].is_dir;
}

static bool parent_exists(struct memfs *fs, const char *path) {
  char p[MEMFS_PATH_MAX];
  parent_of(path, p);
  return dir_exists(fs, p);
}

/* Frees inode `i` once nothing can reach it any more. */
static void inode_maybe_free(struct memfs *fs, uint32_t i) {
  if (i == 0 || !fs->ino[i].used)
    return;
  for (size_t k = 0; k < fs->cur.n; k++)
    if (fs->cur.v[k].ino == i)
      return;
  for (size_t k = 0; k < fs->dur.n; k++)
    if (fs->dur.v[k].ino == i)
      return;
  for (size_t k = 0; k < fs->n_pending; k++)
    if (fs->pending[k].kind == NS_CREATE && fs->pending[k].ino == i)
      return;
  for (size_t k = 0; k < MEMFS_FDS_MAX; k++)
    if (fs->fd_ino[k] == (int32_t)i)
      return;
  inode_release(&fs->ino[i]);
}

static int nsop_push(struct memfs *fs, int kind, const char *a, const char *b,
                     uint32_t ino) {
  if (fs->n_pending == MEMFS_PENDING_NAMES_MAX)
    return -ENOSPC;
  struct mem_nsop *op = &fs->pending[fs->n_pending++];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->ino = ino;
  strcpy(op->a, a);
  if (b != NULL)
    strcpy(op->b, b);
  return 0;
}

/* ---- injection ---- */

enum gate { GATE_GO, GATE_FAIL, GATE_DIE };

/* Counts one injection point and says what happens to it. */
static enum gate gate(struct memfs *fs, bool is_write, bool is_sync) {
  assert(!fs->dead);
  fs->counts.calls++;
  if (is_write)
    fs->counts.writes++;
  if (is_sync)
    fs->counts.syncs++;
  if (fs->counts.calls == fs->fail_at)
    return GATE_FAIL;
  if (fs->counts.calls == fs->crash_at) {
    fs->dead = true;
    return GATE_DIE;
  }
  return GATE_GO;
}

static struct mem_inode *fd_inode(struct memfs *fs, int fd) {
  if (fd < 0 || fd >= MEMFS_FDS_MAX || fs->fd_ino[fd] < 0)
    return NULL;
  return &fs->ino[fs->fd_ino[fd]];
}

static bool path_ok(const char *path) {
  return path != NULL && strlen(path) < MEMFS_PATH_MAX;
}

/* ---- the wal_io calls ---- */

static int m_open(void *ctx, const char *path, unsigned flags, int *fd) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  if (!path_ok(path))
    return -ENAMETOOLONG;
  int slot = -1;
  for (int i = 0; i < MEMFS_FDS_MAX && slot < 0; i++)
    if (fs->fd_ino[i] < 0)
      slot = i;
  if (slot < 0)
    return -EMFILE;
  struct mem_name *n = names_find(&fs->cur, path);
  uint32_t ino;
  enum gate g = GATE_GO;
  if (n == NULL) {
    if (!(flags & WAL_IO_CREATE) || !parent_exists(fs, path))
      return -ENOENT;
    if (fs->n_pending == MEMFS_PENDING_NAMES_MAX)
      return -ENOSPC;
    g = gate(fs, false, false);
    if (g == GATE_FAIL)
      return -fs->fail_err;
    int rv = inode_alloc(fs, false, &ino);
    if (rv == 0)
      rv = names_set(&fs->cur, path, ino);
    if (rv == 0)
      rv = nsop_push(fs, NS_CREATE, path, NULL, ino);
    if (rv != 0)
      return rv;
  } else {
    ino = n->ino;
    if (fs->ino[ino].is_dir)
      return -EISDIR;
    if ((flags & WAL_IO_TRUNC) && fs->ino[ino].cur.size > 0) {
      g = gate(fs, false, false);
      if (g == GATE_FAIL)
        return -fs->fail_err;
      struct mem_op op = {.is_write = false, .size = 0};
      if (op_push(&fs->ino[ino], op) != 0)
        return -ENOMEM;
      buf_truncate(&fs->ino[ino].cur, 0);
    }
  }
  if (g == GATE_DIE)
    return -EIO;
  fs->fd_ino[slot] = (int32_t)ino;
  /* An error from before the open is not this descriptor's news. (Linux
   * makes an exception for one no sync has reported yet; here a failure
   * is always reported by the sync that met it.) */
  fs->fd_err_seq[slot] = fs->ino[ino].err_seq;
  *fd = slot;
  return 0;
}

static int m_close(void *ctx, int fd) {
  struct memfs *fs = ctx;
  if (fd_inode(fs, fd) == NULL)
    return -EBADF;
  uint32_t ino = (uint32_t)fs->fd_ino[fd];
  fs->fd_ino[fd] = -1;
  inode_maybe_free(fs, ino);
  return 0;
}

static int m_read(void *ctx, int fd, uint64_t offset, void *buf, size_t size,
                  size_t *n_read) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  struct mem_inode *in = fd_inode(fs, fd);
  if (in == NULL)
    return -EBADF;
  size_t n = 0;
  if (offset < in->cur.size) {
    uint64_t left = in->cur.size - offset;
    n = left < size ? (size_t)left : size;
    memcpy(buf, in->cur.p + offset, n);
  }
  *n_read = n;
  return 0;
}

static int m_write(void *ctx, int fd, uint64_t offset, const void *buf,
                   size_t size) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  struct mem_inode *in = fd_inode(fs, fd);
  if (in == NULL)
    return -EBADF;
  enum gate g = gate(fs, true, false);
  if (g == GATE_FAIL)
    return -fs->fail_err;
  struct mem_op op = {.is_write = true, .offset = offset, .size = size};
  op.bytes = malloc(size > 0 ? size : 1);
  if (op.bytes == NULL)
    return -ENOMEM;
  if (size > 0)
    memcpy(op.bytes, buf, size);
  if (op_push(in, op) != 0) {
    free(op.bytes);
    return -ENOMEM;
  }
  if (buf_write(&in->cur, offset, buf, size) != 0)
    return -ENOMEM;
  return g == GATE_DIE ? -EIO : 0;
}

static int m_sync(void *ctx, int fd, bool data_only) {
  struct memfs *fs = ctx;
  (void)data_only; /* the model keeps no metadata apart from the size */
  if (fs->dead)
    return -EIO;
  struct mem_inode *in = fd_inode(fs, fd);
  if (in == NULL)
    return -EBADF;
  enum gate g = gate(fs, false, true);
  if (g == GATE_DIE)
    return -EIO;
  if (g == GATE_FAIL) {
    /* fsyncgate: the kernel forgets the dirty pages; they are never
     * written, whatever later syncs say. The error is recorded on the
     * file, and this descriptor has now reported it. */
    ops_clear(in);
    in->lost_writes = true;
    in->err_seq++;
    in->err_code = fs->fail_err;
    fs->fd_err_seq[fd] = in->err_seq;
    return -fs->fail_err;
  }
  for (size_t i = 0; i < in->n_ops; i++)
    if (op_apply(&in->dur, &in->ops[i], in->ops[i].size) != 0)
      return -ENOMEM;
  ops_clear(in);
  assert(in->lost_writes || in->dur.size == in->cur.size);
  fs->now_ns += fs->sync_latency_ns;
  /* What is in the cache now is written; an error recorded since this
   * descriptor last looked is still reported, once, as fsync does. */
  if (fs->fd_err_seq[fd] != in->err_seq) {
    fs->fd_err_seq[fd] = in->err_seq;
    return -in->err_code;
  }
  return 0;
}

static int m_truncate(void *ctx, int fd, uint64_t size) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  struct mem_inode *in = fd_inode(fs, fd);
  if (in == NULL)
    return -EBADF;
  enum gate g = gate(fs, false, false);
  if (g == GATE_FAIL)
    return -fs->fail_err;
  struct mem_op op = {.is_write = false, .size = size};
  if (op_push(in, op) != 0 || buf_truncate(&in->cur, size) != 0)
    return -ENOMEM;
  return g == GATE_DIE ? -EIO : 0;
}

static int m_size(void *ctx, int fd, uint64_t *size) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  struct mem_inode *in = fd_inode(fs, fd);
  if (in == NULL)
    return -EBADF;
  *size = in->cur.size;
  return 0;
}

static int m_rename(void *ctx, const char *from, const char *to) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  if (!path_ok(from) || !path_ok(to))
    return -ENAMETOOLONG;
  struct mem_name *n = names_find(&fs->cur, from);
  if (n == NULL || !parent_exists(fs, to))
    return -ENOENT;
  if (fs->ino[n->ino].is_dir)
    return -EINVAL; /* not modelled: the WAL never renames directories */
  struct mem_name *old = names_find(&fs->cur, to);
  if (old != NULL && fs->ino[old->ino].is_dir)
    return -EISDIR;
  if (fs->n_pending == MEMFS_PENDING_NAMES_MAX)
    return -ENOSPC;
  enum gate g = gate(fs, false, false);
  if (g == GATE_FAIL)
    return -fs->fail_err;
  uint32_t ino = n->ino;
  uint32_t replaced = old != NULL ? old->ino : 0;
  names_remove(&fs->cur, from);
  names_remove(&fs->cur, to);
  (void)names_set(&fs->cur, to, ino); /* a name was just freed */
  (void)nsop_push(fs, NS_RENAME, from, to, 0);
  inode_maybe_free(fs, replaced);
  return g == GATE_DIE ? -EIO : 0;
}

static int m_unlink(void *ctx, const char *path) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  if (!path_ok(path))
    return -ENAMETOOLONG;
  struct mem_name *n = names_find(&fs->cur, path);
  if (n == NULL)
    return -ENOENT;
  if (fs->ino[n->ino].is_dir)
    return -EISDIR;
  if (fs->n_pending == MEMFS_PENDING_NAMES_MAX)
    return -ENOSPC;
  enum gate g = gate(fs, false, false);
  if (g == GATE_FAIL)
    return -fs->fail_err;
  uint32_t ino = n->ino;
  names_remove(&fs->cur, path);
  (void)nsop_push(fs, NS_UNLINK, path, NULL, 0);
  inode_maybe_free(fs, ino);
  return g == GATE_DIE ? -EIO : 0;
}

static int m_mkdir(void *ctx, const char *path) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  if (!path_ok(path))
    return -ENAMETOOLONG;
  path = canon_dir(path);
  if (path[0] == '\0' || names_find(&fs->cur, path) != NULL)
    return -EEXIST;
  if (!parent_exists(fs, path))
    return -ENOENT;
  if (fs->n_pending == MEMFS_PENDING_NAMES_MAX)
    return -ENOSPC;
  enum gate g = gate(fs, false, false);
  if (g == GATE_FAIL)
    return -fs->fail_err;
  uint32_t ino;
  int rv = inode_alloc(fs, true, &ino);
  if (rv == 0)
    rv = names_set(&fs->cur, path, ino);
  if (rv == 0)
    rv = nsop_push(fs, NS_CREATE, path, NULL, ino);
  if (rv != 0)
    return rv;
  return g == GATE_DIE ? -EIO : 0;
}

static int m_sync_dir(void *ctx, const char *path) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  if (!path_ok(path))
    return -ENAMETOOLONG;
  path = canon_dir(path);
  if (!dir_exists(fs, path))
    return -ENOENT;
  enum gate g = gate(fs, false, true);
  if (g == GATE_DIE)
    return -EIO;
  if (g == GATE_FAIL)
    return -fs->fail_err;
  size_t last = 0; /* operations [0, last) become durable */
  for (size_t i = 0; i < fs->n_pending; i++)
    if (nsop_touches(&fs->pending[i], path))
      last = i + 1;
  /* An unlink or a rename over a file can drop an inode's last durable
   * name: once the names are applied, such an inode may be free. */
  uint32_t dropped[MEMFS_PENDING_NAMES_MAX];
  size_t n_dropped = 0;
  for (size_t i = 0; i < last; i++) {
    const struct mem_nsop *op = &fs->pending[i];
    const char *gone = op->kind == NS_UNLINK   ? op->a
                       : op->kind == NS_RENAME ? op->b
                                               : NULL;
    const struct mem_name *n = gone == NULL ? NULL : names_find(&fs->dur, gone);
    if (n != NULL)
      dropped[n_dropped++] = n->ino;
    names_apply(&fs->dur, op);
  }
  memmove(fs->pending, fs->pending + last,
          (fs->n_pending - last) * sizeof fs->pending[0]);
  fs->n_pending -= last;
  for (size_t i = 0; i < n_dropped; i++)
    inode_maybe_free(fs, dropped[i]);
  fs->now_ns += fs->sync_latency_ns;
  return 0;
}

static int m_list(void *ctx, const char *path,
                  int (*each)(void *arg, const char *name), void *arg) {
  struct memfs *fs = ctx;
  if (fs->dead)
    return -EIO;
  if (!path_ok(path))
    return -ENAMETOOLONG;
  path = canon_dir(path);
  if (!dir_exists(fs, path))
    return -ENOENT;
  /* Copy the matching names first so that `each` sees a stable listing. */
  size_t n = 0;
  char(*names)[MEMFS_PATH_MAX] = malloc(MEMFS_FILES_MAX * sizeof *names);
  if (names == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < fs->cur.n; i++) {
    char p[MEMFS_PATH_MAX];
    parent_of(fs->cur.v[i].path, p);
    if (strcmp(p, path) != 0)
      continue;
    const char *base = fs->cur.v[i].path + strlen(p);
    if (*base == '/')
      base++;
    strcpy(names[n++], base);
  }
  int rv = 0;
  for (size_t i = 0; i < n && rv == 0; i++)
    rv = each(arg, names[i]);
  free(names);
  return rv;
}

static uint64_t m_clock_ns(void *ctx) {
  struct memfs *fs = ctx;
  return fs->now_ns;
}

static int64_t m_time_s(void *ctx) {
  struct memfs *fs = ctx;
  /* 2023-11-14 22:13:20 UTC plus virtual time: fixed, so names repeat. */
  return 1700000000 + (int64_t)(fs->now_ns / 1000000000u);
}

/* ---- the crash ---- */

/* Bytes of `op` that survive a tear: a strict prefix (possibly empty). */
static uint64_t torn_size(struct memfs *fs, const struct mem_op *op) {
  return op->size == 0 ? 0 : prng_below(&fs->rng, op->size);
}

static void garble(struct memfs *fs, struct mem_inode *in, size_t n_applied) {
  size_t n_writes = 0;
  for (size_t i = 0; i < n_applied; i++)
    if (in->ops[i].is_write && in->ops[i].size > 0)
      n_writes++;
  if (n_writes == 0)
    return;
  uint64_t rounds = prng_range(&fs->rng, 1, 3);
  for (uint64_t r = 0; r < rounds; r++) {
    uint64_t pick = prng_below(&fs->rng, n_writes);
    const struct mem_op *op = NULL;
    for (size_t i = 0; i < n_applied && op == NULL; i++)
      if (in->ops[i].is_write && in->ops[i].size > 0 && pick-- == 0)
        op = &in->ops[i];
    assert(op != NULL);
    uint64_t at = op->offset + prng_below(&fs->rng, op->size);
    if (at >= in->dur.size)
      continue; /* cut off by a later truncation */
    if (prng_chance(&fs->rng, 0.5)) {
      in->dur.p[at] ^= (uint8_t)prng_range(&fs->rng, 1, 255);
    } else {
      /* A run of garbage, as a half-written sector leaves. */
      uint64_t end = at + prng_range(&fs->rng, 1, 64);
      if (end > in->dur.size)
        end = in->dur.size;
      for (uint64_t k = at; k < end; k++)
        in->dur.p[k] = (uint8_t)prng_next(&fs->rng);
    }
  }
}

/* Turns the inode's unsynced operations into what a restart finds. */
static int crash_inode(struct memfs *fs, struct mem_inode *in,
                       enum memfs_crash_mode mode) {
  size_t n = in->n_ops;
  size_t keep = 0;
  int rv = 0;
  switch (mode) {
  case MEMFS_CRASH_DROP:
    break;
  case MEMFS_CRASH_PREFIX:
  case MEMFS_CRASH_GARBLE:
    keep = (size_t)prng_below(&fs->rng, n + 1);
    if (mode == MEMFS_CRASH_GARBLE && prng_chance(&fs->rng, 0.5))
      keep = n;
    for (size_t i = 0; i < keep && rv == 0; i++)
      rv = op_apply(&in->dur, &in->ops[i], in->ops[i].size);
    if (mode == MEMFS_CRASH_GARBLE && rv == 0)
      garble(fs, in, keep);
    break;
  case MEMFS_CRASH_TEAR:
    if (n == 0)
      break;
    keep = (size_t)prng_below(&fs->rng, n);
    for (size_t i = 0; i < keep && rv == 0; i++)
      rv = op_apply(&in->dur, &in->ops[i], in->ops[i].size);
    if (rv == 0 && in->ops[keep].is_write)
      rv = op_apply(&in->dur, &in->ops[keep], torn_size(fs, &in->ops[keep]));
    break;
  case MEMFS_CRASH_REORDER:
    for (size_t i = 0; i < n && rv == 0; i++)
      if (prng_chance(&fs->rng, 0.5))
        rv = op_apply(&in->dur, &in->ops[i], in->ops[i].size);
    break;
  default:
    assert(0 && "unknown crash mode");
  }
  ops_clear(in);
  in->lost_writes = false;
  in->err_seq = 0; /* a new boot: the error died with the page cache */
  in->err_code = 0;
  if (rv == 0)
    rv = buf_copy(&in->cur, &in->dur);
  return rv;
}

void memfs_crash(struct memfs *fs, enum memfs_crash_mode mode) {
  assert(fs != NULL && mode < MEMFS_CRASH_MODES);
  size_t keep = 0;
  if (mode != MEMFS_CRASH_DROP)
    keep = (size_t)prng_below(&fs->rng, fs->n_pending + 1);
  for (size_t i = 0; i < keep; i++)
    names_apply(&fs->dur, &fs->pending[i]);
  fs->n_pending = 0;
  fs->cur = fs->dur;
  for (int i = 0; i < MEMFS_FDS_MAX; i++)
    fs->fd_ino[i] = -1;
  for (uint32_t i = 1; i < MEMFS_FILES_MAX; i++) {
    struct mem_inode *in = &fs->ino[i];
    if (!in->used)
      continue;
    bool named = false;
    for (size_t k = 0; k < fs->dur.n && !named; k++)
      named = fs->dur.v[k].ino == i;
    if (!named) {
      inode_release(in);
      continue;
    }
    if (crash_inode(fs, in, mode) != 0)
      abort(); /* a test tool out of memory has nothing sensible to do */
  }
  fs->dead = false;
  fs->crash_at = 0;
  fs->fail_at = 0;
}

/* ---- construction and test helpers ---- */

int memfs_new(struct memfs **out, uint64_t seed) {
  assert(out != NULL);
  struct memfs *fs = calloc(1, sizeof *fs);
  if (fs == NULL)
    return SABHA_ENOMEM;
  prng_seed(&fs->rng, seed);
  fs->ino[0].used = true;
  fs->ino[0].is_dir = true;
  for (int i = 0; i < MEMFS_FDS_MAX; i++)
    fs->fd_ino[i] = -1;
  fs->sync_latency_ns = 1000000;
  *out = fs;
  return 0;
}

void memfs_free(struct memfs *fs) {
  if (fs == NULL)
    return;
  for (uint32_t i = 0; i < MEMFS_FILES_MAX; i++)
    if (fs->ino[i].used)
      inode_release(&fs->ino[i]);
  free(fs);
}

void memfs_io(struct memfs *fs, struct wal_io *io) {
  assert(fs != NULL && io != NULL);
  memset(io, 0, sizeof *io);
  io->ctx = fs;
  io->open = m_open;
  io->close = m_close;
  io->read = m_read;
  io->write = m_write;
  io->sync = m_sync;
  io->truncate = m_truncate;
  io->size = m_size;
  io->rename = m_rename;
  io->unlink = m_unlink;
  io->mkdir = m_mkdir;
  io->sync_dir = m_sync_dir;
  io->list = m_list;
  io->clock_ns = m_clock_ns;
  io->time_s = m_time_s;
}

void memfs_set_sync_latency(struct memfs *fs, uint64_t sync_latency_ns) {
  fs->sync_latency_ns = sync_latency_ns;
}

struct memfs_counts memfs_counts(const struct memfs *fs) {
  return fs->counts;
}

void memfs_crash_at(struct memfs *fs, uint64_t call_n) {
  fs->crash_at = call_n;
}

void memfs_fail_at(struct memfs *fs, uint64_t call_n, int err) {
  assert(call_n == 0 || err > 0);
  fs->fail_at = call_n;
  fs->fail_err = err;
}

bool memfs_dead(const struct memfs *fs) {
  return fs->dead;
}

static struct mem_inode *file_at(struct memfs *fs, const char *path) {
  if (!path_ok(path))
    return NULL;
  struct mem_name *n = names_find(&fs->cur, path);
  if (n == NULL || fs->ino[n->ino].is_dir)
    return NULL;
  return &fs->ino[n->ino];
}

int memfs_corrupt(struct memfs *fs, const char *path, uint64_t offset,
                  uint8_t mask) {
  struct mem_inode *in = file_at(fs, path);
  if (in == NULL)
    return -ENOENT;
  if (offset >= in->cur.size)
    return -EINVAL;
  in->cur.p[offset] ^= mask;
  if (offset < in->dur.size)
    in->dur.p[offset] ^= mask;
  return 0;
}

int memfs_cut(struct memfs *fs, const char *path, uint64_t size) {
  struct mem_inode *in = file_at(fs, path);
  if (in == NULL)
    return -ENOENT;
  if (size > in->cur.size)
    return -EINVAL;
  in->cur.size = size;
  if (in->dur.size > size)
    in->dur.size = size;
  return 0;
}

int memfs_put(struct memfs *fs, const char *path, const void *data,
              size_t size) {
  if (!path_ok(path))
    return -ENAMETOOLONG;
  if (!parent_exists(fs, path))
    return -ENOENT;
  struct mem_name *n = names_find(&fs->cur, path);
  uint32_t ino;
  if (n == NULL) {
    int rv = inode_alloc(fs, false, &ino);
    if (rv == 0)
      rv = names_set(&fs->cur, path, ino);
    if (rv == 0)
      rv = names_set(&fs->dur, path, ino);
    if (rv != 0)
      return rv;
  } else {
    ino = n->ino;
    if (fs->ino[ino].is_dir)
      return -EISDIR;
    if (names_set(&fs->dur, path, ino) != 0)
      return -ENOSPC;
  }
  struct mem_inode *in = &fs->ino[ino];
  ops_clear(in);
  in->cur.size = 0;
  in->dur.size = 0;
  if (buf_write(&in->cur, 0, data, size) != 0 ||
      buf_write(&in->dur, 0, data, size) != 0)
    return -ENOMEM;
  return 0;
}

int memfs_size(const struct memfs *fs, const char *path, uint64_t *size) {
  struct mem_inode *in = file_at((struct memfs *)fs, path);
  if (in == NULL)
    return -ENOENT;
  *size = in->cur.size;
  return 0;
}

bool memfs_exists(const struct memfs *fs, const char *path) {
  return path_ok(path) &&
         names_find((struct mem_names *)&fs->cur, path) != NULL;
}
