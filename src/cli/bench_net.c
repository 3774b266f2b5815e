/* `sabha bench`'s network side: RESP connections to the nodes, the reply
 * parser, the latency histogram and the load loop (see bench.h for the
 * model: connections holding sessions, one request in flight per session).
 *
 * Any node serves: a follower forwards a command to the leader and relays
 * its reply, as sabhad does for every client, so connections are spread
 * over the nodes given, round-robin. A node configured to answer -MOVED
 * instead is followed: the connection drains what it has in flight, moves
 * to the address named, and sends the redirected requests again. -TRYAGAIN
 * (no leader yet, leadership changed) is retried with the same request,
 * ids included, after a short pause; the applications' ids make that
 * exactly once.
 *
 * One thread, one poll() loop; sockets are non-blocking once connected.
 * Each connection encodes its requests into a fixed output buffer and
 * parses replies in place from a fixed input buffer: the load allocates
 * nothing per request. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"

#define IN_CAP (128u * 1024u)
#define OUT_CAP (256u * 1024u)
#define CALL_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_S 3
#define RETRY_PAUSE_NS (50u * 1000u * 1000u)
#define RETRIES_MAX 200u                         /* 10 s of -TRYAGAIN */
#define DRAIN_NS (15ull * 1000u * 1000u * 1000u) /* after the end */
#define BATCH_WINDOW 256u

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Histogram ----------------------------------------------------------- */

static uint32_t hist_index(uint64_t v) {
  if (v < (2u << HIST_SUB_BITS))
    return (uint32_t)v;
  uint32_t msb = 63u - (uint32_t)__builtin_clzll(v);
  uint32_t shift = msb - HIST_SUB_BITS;
  uint64_t i = (uint64_t)(shift + 1u) * (1u << HIST_SUB_BITS) +
               ((v >> shift) - (1u << HIST_SUB_BITS));
  return i < HIST_BUCKETS ? (uint32_t)i : HIST_BUCKETS - 1u;
}

/* The largest value that lands in bucket i. */
static uint64_t hist_upper(uint32_t i) {
  if (i < (2u << HIST_SUB_BITS))
    return i;
  uint32_t shift = i / (1u << HIST_SUB_BITS) - 1u;
  uint64_t sub = i % (1u << HIST_SUB_BITS) + (1u << HIST_SUB_BITS);
  return ((sub + 1u) << shift) - 1u;
}

void hist_add(struct bench_hist *h, uint64_t ns) {
  h->bucket[hist_index(ns)]++;
  h->count++;
  h->sum_ns += ns;
  if (ns > h->max_ns)
    h->max_ns = ns;
}

uint64_t hist_quantile_ns(const struct bench_hist *h, double q) {
  if (h->count == 0)
    return 0;
  uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
  if (rank < 1)
    rank = 1;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
    seen += h->bucket[i];
    if (seen >= rank) {
      if (i == HIST_BUCKETS - 1u)
        return h->max_ns; /* the last bucket has no upper bound */
      uint64_t v = hist_upper(i);
      return v < h->max_ns ? v : h->max_ns;
    }
  }
  return h->max_ns;
}

/* ---- Replies ------------------------------------------------------------- */

/* The line at buf[at..]: its length before CRLF in *line_len; false when
 * the CRLF has not arrived. Lines are bounded by the caller's buffer. */
static bool find_line(const uint8_t *buf, size_t len, size_t at,
                      size_t *line_len) {
  for (size_t i = at; i + 1 < len; i++)
    if (buf[i] == '\r' && buf[i + 1] == '\n') {
      *line_len = i - at;
      return true;
    }
  return false;
}

static bool parse_i64(const uint8_t *p, size_t n, int64_t *out) {
  bool neg = n > 0 && p[0] == '-';
  size_t i = neg ? 1 : 0;
  if (i == n || n - i > 18)
    return false;
  int64_t v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (p[i] - '0');
  }
  *out = neg ? -v : v;
  return true;
}

/* One value at buf[*at]: fills e (when not NULL), moves *at past it.
 * For an array header, *elems is its element count (0 for scalars).
 * Returns 1, 0 (incomplete) or -1. */
static int parse_value(const uint8_t *buf, size_t len, size_t *at,
                       struct bench_elem *e, int64_t *elems) {
  size_t n;
  *elems = 0;
  if (*at >= len || !find_line(buf, len, *at + 1, &n))
    return 0;
  const uint8_t *line = buf + *at + 1;
  char type = (char)buf[*at];
  struct bench_elem tmp;
  if (e == NULL)
    e = &tmp;
  memset(e, 0, sizeof *e);
  e->type = type;
  size_t next = *at + 1 + n + 2;
  switch (type) {
  case '+':
  case '-':
    e->str.ptr = (const char *)line;
    e->str.len = n;
    break;
  case ':':
    if (!parse_i64(line, n, &e->integer))
      return -1;
    break;
  case '$': {
    int64_t blen;
    if (!parse_i64(line, n, &blen) || blen < -1)
      return -1;
    if (blen == -1) {
      e->type = '_';
      break;
    }
    if ((uint64_t)blen > IN_CAP)
      return -1;
    if (next + (size_t)blen + 2 > len)
      return 0;
    if (buf[next + (size_t)blen] != '\r' ||
        buf[next + (size_t)blen + 1] != '\n')
      return -1;
    e->str.ptr = (const char *)buf + next;
    e->str.len = (size_t)blen;
    next += (size_t)blen + 2;
    break;
  }
  case '*':
    if (!parse_i64(line, n, elems) || *elems < -1 || *elems > (1 << 24))
      return -1;
    if (*elems == -1) {
      e->type = '_';
      *elems = 0;
    }
    break;
  default:
    return -1;
  }
  *at = next;
  return 1;
}

int bench_reply_parse(const uint8_t *buf, size_t len, struct bench_reply *r,
                      size_t *used) {
  size_t at = 0;
  struct bench_elem top;
  int64_t elems;
  int rc = parse_value(buf, len, &at, &top, &elems);
  if (rc != 1)
    return rc;
  memset(r, 0, sizeof *r);
  r->type = top.type;
  r->integer = top.integer;
  r->str = top.str;
  r->n = (uint32_t)elems;
  /* The top array's elements; a nested array's values are skipped, their
   * count carried in `skip`, without recursion. */
  for (uint32_t i = 0; i < r->n; i++) {
    struct bench_elem *e = i < BENCH_ELEMS_MAX ? &r->elem[i] : NULL;
    rc = parse_value(buf, len, &at, e, &elems);
    if (rc != 1)
      return rc;
    for (uint64_t skip = (uint64_t)elems; skip > 0;) {
      rc = parse_value(buf, len, &at, NULL, &elems);
      if (rc != 1)
        return rc;
      skip = skip - 1 + (uint64_t)elems;
    }
  }
  *used = at;
  return 1;
}

bool bench_reply_is(const struct bench_reply *r, char type, const char *s) {
  size_t n = strlen(s);
  return r->type == type && r->str.len == n && memcmp(r->str.ptr, s, n) == 0;
}

bool bench_reply_error_is(const struct bench_reply *r, const char *word) {
  size_t n = strlen(word);
  return r->type == '-' && r->str.len >= n &&
         memcmp(r->str.ptr, word, n) == 0 &&
         (r->str.len == n || r->str.ptr[n] == ' ');
}

/* ---- Commands ------------------------------------------------------------ */

void cmd_init(struct bench_cmd *c) {
  c->argc = 0;
  c->used = 0;
  c->value = NULL;
  c->value_len = 0;
}

void cmd_arg(struct bench_cmd *c, const char *fmt, ...) {
  char *at = c->text + c->used;
  size_t room = sizeof c->text - c->used;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(at, room, fmt, ap);
  va_end(ap);
  if (c->argc >= BENCH_ARGS_MAX || n < 0 || (size_t)n > BENCH_ARG_BYTES_MAX ||
      (size_t)n >= room) {
    /* A programmer error: the workloads' arguments are ours and short. */
    fprintf(stderr, "sabha bench: argument too long: %s\n", at);
    abort();
  }
  c->off[c->argc] = (uint16_t)c->used;
  c->len[c->argc] = (uint16_t)n;
  c->argc++;
  c->used += (size_t)n + 1;
}

/* The encoded size of c, an upper bound. */
static size_t cmd_size_max(const struct bench_cmd *c) {
  return 16 + (size_t)(c->argc + 1) * 24 + c->used + c->value_len;
}

static size_t put_len(uint8_t *p, char type, size_t n) {
  char tmp[24];
  int k = snprintf(tmp, sizeof tmp, "%c%zu\r\n", type, n);
  memcpy(p, tmp, (size_t)k);
  return (size_t)k;
}

/* Encodes c as a multibulk command at p; returns the bytes written. */
static size_t cmd_encode(const struct bench_cmd *c, uint8_t *p) {
  size_t at = put_len(p, '*', c->argc + (c->value != NULL ? 1u : 0u));
  for (uint32_t i = 0; i < c->argc; i++) {
    at += put_len(p + at, '$', c->len[i]);
    memcpy(p + at, c->text + c->off[i], c->len[i]);
    at += c->len[i];
    p[at++] = '\r';
    p[at++] = '\n';
  }
  if (c->value != NULL) {
    at += put_len(p + at, '$', c->value_len);
    memcpy(p + at, c->value, c->value_len);
    at += c->value_len;
    p[at++] = '\r';
    p[at++] = '\n';
  }
  return at;
}

/* ---- Connections ----------------------------------------------------------
 */

struct bench_link {
  const struct bench_settings *set;
  int fd;
  struct bench_addr addr;
  bool moved; /* a -MOVED named `moved_to`: go there once drained */
  struct bench_addr moved_to;
  uint8_t in[IN_CAP];
  size_t in_len;
  size_t in_used; /* parsed replies, dropped before the next read: the
                     last replies' strings point into them until then */
  uint8_t out[OUT_CAP];
  size_t out_len, out_sent;
  /* In flight: session numbers and send times, a ring of `pipeline`. */
  uint32_t *ring;
  uint64_t *sent_ns;
  uint32_t head, inflight, ring_cap;
  /* Sessions with nothing in flight. */
  uint32_t *ready;
  uint32_t n_ready;
  bool dead;
};

static int dial(const struct bench_addr *a) {
  char port[8];
  snprintf(port, sizeof port, "%u", a->port);
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(a->host, port, &hints, &res) != 0 || res == NULL)
    return -1;
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (fd >= 0) {
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

static bool flush_some(struct bench_link *l) {
  while (l->out_sent < l->out_len) {
    ssize_t w = write(l->fd, l->out + l->out_sent, l->out_len - l->out_sent);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return true;
    if (w <= 0)
      return false;
    l->out_sent += (size_t)w;
  }
  l->out_len = l->out_sent = 0;
  return true;
}

static void drop_used(struct bench_link *l) {
  memmove(l->in, l->in + l->in_used, l->in_len - l->in_used);
  l->in_len -= l->in_used;
  l->in_used = 0;
}

/* Reads what the socket has. false on EOF or an error. */
static bool read_some(struct bench_link *l) {
  drop_used(l);
  while (l->in_len < IN_CAP) {
    ssize_t n = read(l->fd, l->in + l->in_len, IN_CAP - l->in_len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return true;
    if (n <= 0)
      return false;
    l->in_len += (size_t)n;
    if ((size_t)n < IN_CAP)
      return true;
  }
  return true;
}

/* Blocks until fd is readable or writable (`events`), up to timeout_ms. */
static bool wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd p = {fd, events, 0};
  int rc;
  do
    rc = poll(&p, 1, timeout_ms);
  while (rc < 0 && errno == EINTR);
  return rc > 0;
}

static void set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static bool call_parse(struct bench_link *l, struct bench_reply *rep,
                       uint64_t deadline) {
  for (;;) {
    if (!flush_some(l))
      return false;
    size_t used;
    int rc = bench_reply_parse(l->in + l->in_used, l->in_len - l->in_used, rep,
                               &used);
    if (rc < 0)
      return false;
    if (rc == 1) {
      l->in_used += used;
      return true;
    }
    uint64_t now = bench_now_ns();
    if (now >= deadline ||
        !wait_fd(l->fd, l->out_len > 0 ? POLLIN | POLLOUT : POLLIN,
                 (int)((deadline - now) / 1000000u) + 1) ||
        !read_some(l))
      return false;
  }
}

static bool link_send(struct bench_link *l, const struct bench_cmd *c) {
  if (cmd_size_max(c) > OUT_CAP - l->out_len)
    return false;
  l->out_len += cmd_encode(c, l->out + l->out_len);
  return true;
}

/* Parses a -MOVED reply's address ("MOVED 0 host:port"). */
static bool moved_addr(const struct bench_reply *rep, struct bench_addr *a) {
  char text[128];
  snprintf(text, sizeof text, "%.*s",
           (int)(rep->str.len < 127 ? rep->str.len : 127), rep->str.ptr);
  char *sp = strrchr(text, ' ');
  char *colon = sp != NULL ? strrchr(sp, ':') : NULL;
  if (colon == NULL || colon - sp - 1 <= 0 ||
      (size_t)(colon - sp - 1) >= sizeof a->host)
    return false;
  memcpy(a->host, sp + 1, (size_t)(colon - sp - 1));
  a->host[colon - sp - 1] = '\0';
  long port = strtol(colon + 1, NULL, 10);
  if (port <= 0 || port > 65535)
    return false;
  a->port = (uint16_t)port;
  return true;
}

/* One request, one reply, as they come. */
static bool call_once(struct bench_link *l, const struct bench_cmd *c,
                      struct bench_reply *rep) {
  if (l->dead || !link_send(l, c))
    return false;
  if (!call_parse(l, rep, bench_now_ns() + CALL_TIMEOUT_MS * 1000000ull)) {
    l->dead = true;
    return false;
  }
  return true;
}

/* Connects and authenticates; the socket is non-blocking after. */
static bool link_connect(struct bench_link *l, const struct bench_settings *set,
                         const struct bench_addr *a) {
  l->fd = dial(a);
  l->addr = *a;
  l->set = set;
  l->in_len = l->in_used = l->out_len = l->out_sent = 0;
  l->dead = false;
  l->moved = false;
  if (l->fd < 0) {
    fprintf(stderr, "sabha bench: cannot connect to %s:%u: %s\n", a->host,
            a->port, strerror(errno));
    return false;
  }
  set_nonblocking(l->fd);
  if (set->password[0] != '\0') {
    struct bench_cmd c;
    struct bench_reply rep;
    cmd_init(&c);
    cmd_arg(&c, "AUTH");
    c.value = (const uint8_t *)set->password;
    c.value_len = strlen(set->password);
    if (!call_once(l, &c, &rep) || !bench_reply_is(&rep, '+', "OK")) {
      fprintf(stderr, "sabha bench: AUTH refused by %s:%u\n", a->host, a->port);
      close(l->fd);
      l->fd = -1;
      return false;
    }
  }
  return true;
}

struct bench_link *link_open(const struct bench_settings *set,
                             const struct bench_addr *a) {
  struct bench_link *l = calloc(1, sizeof *l);
  if (l == NULL)
    return NULL;
  if (!link_connect(l, set, a)) {
    free(l);
    return NULL;
  }
  return l;
}

void link_close(struct bench_link *l) {
  if (l == NULL)
    return;
  if (l->fd >= 0)
    close(l->fd);
  free(l->ring);
  free(l->sent_ns);
  free(l->ready);
  free(l);
}

static void pause_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* Goes where a -MOVED reply says. */
static bool follow(struct bench_link *l, const struct bench_reply *rep) {
  struct bench_addr to;
  if (!moved_addr(rep, &to))
    return false;
  close(l->fd);
  return link_connect(l, l->set, &to);
}

bool link_call(struct bench_link *l, const struct bench_cmd *c,
               struct bench_reply *rep) {
  for (uint32_t t = 0;; t++) {
    if (!call_once(l, c, rep))
      return false;
    if (t == RETRIES_MAX)
      return true;
    if (bench_reply_error_is(rep, "MOVED")) {
      if (!follow(l, rep))
        return false;
    } else if (bench_reply_error_is(rep, "TRYAGAIN")) {
      pause_ns(RETRY_PAUSE_NS);
    } else {
      return true;
    }
  }
}

bool link_batch(struct bench_link *l, uint64_t n,
                void (*build)(void *ctx, uint64_t i, struct bench_cmd *c),
                void (*on_reply)(void *ctx, uint64_t i,
                                 const struct bench_reply *rep),
                void *ctx) {
  struct bench_cmd c;
  struct bench_reply rep;
  uint64_t retry[BATCH_WINDOW];
  struct bench_addr to;
  bool moved = false;
  for (uint64_t base = 0; base < n; base += BATCH_WINDOW) {
    uint64_t end = base + BATCH_WINDOW < n ? base + BATCH_WINDOW : n;
    uint32_t n_retry = 0;
    for (uint64_t i = base; i < end; i++) {
      cmd_init(&c);
      build(ctx, i, &c);
      if (!link_send(l, &c))
        return false;
    }
    uint64_t deadline = bench_now_ns() + CALL_TIMEOUT_MS * 1000000ull;
    for (uint64_t i = base; i < end; i++) {
      if (!call_parse(l, &rep, deadline))
        return false;
      if (bench_reply_error_is(&rep, "TRYAGAIN") ||
          bench_reply_error_is(&rep, "MOVED")) {
        if (bench_reply_error_is(&rep, "MOVED") && !moved)
          moved = moved_addr(&rep, &to);
        retry[n_retry++] = i;
      } else {
        on_reply(ctx, i, &rep);
      }
    }
    if (moved) {
      close(l->fd);
      if (!link_connect(l, l->set, &to))
        return false;
      moved = false;
    }
    /* A leader change in the middle, or a follower that redirects: the
     * commands refused, one by one, as link_call retries them. */
    for (uint32_t k = 0; k < n_retry; k++) {
      cmd_init(&c);
      build(ctx, retry[k], &c);
      if (!link_call(l, &c, &rep))
        return false;
      on_reply(ctx, retry[k], &rep);
    }
  }
  return true;
}

/* ---- The load loop --------------------------------------------------------
 */

struct load {
  struct bench_run *r;
  const struct bench_settings *set;
  struct bench_link **links;
  struct pollfd *pfd;
  struct bench_session *sessions;
  uint64_t *not_before_ns; /* per session: a retry waits until then */
  uint64_t issued;         /* new requests (retries not counted) */
  uint64_t inflight;
  uint64_t retrying; /* sessions waiting to send a request again */
};

static void session_ready(struct bench_link *l, uint32_t s) {
  l->ready[l->n_ready++] = s;
}

/* Encodes the requests of l's ready sessions while there is room. */
static void fill(struct load *ld, struct bench_link *l, uint64_t now,
                 bool stopping) {
  struct bench_run *r = ld->r;
  struct bench_cmd c;
  stopping = stopping || r->stopped_early ||
             (ld->set->count > 0 && ld->issued >= ld->set->count);
  for (uint32_t k = 0; k < l->n_ready;) {
    uint32_t si = l->ready[k];
    struct bench_session *s = &ld->sessions[si];
    /* After the end, only requests already begun are sent (again): their
     * outcome must be known for the checks. */
    if (ld->not_before_ns[si] > now || (stopping && s->tries == 0)) {
      k++;
      continue;
    }
    /* Room first: next() may act as if its request were sent. */
    if (OUT_CAP - l->out_len < BENCH_CMD_BYTES_MAX + r->set->value_bytes)
      break; /* full: the rest go once the socket takes some */
    cmd_init(&c);
    r->w->next(r, s, &c);
    l->out_len += cmd_encode(&c, l->out + l->out_len);
    uint32_t slot = (l->head + l->inflight) % l->ring_cap;
    l->ring[slot] = si;
    l->sent_ns[slot] = now;
    l->inflight++;
    ld->inflight++;
    l->ready[k] = l->ready[--l->n_ready];
    if (s->tries == 0)
      ld->issued++;
    else
      ld->retrying--;
    stopping = (ld->set->count > 0 && ld->issued >= ld->set->count) ||
               r->stopped_early;
  }
}

static void note_error(struct bench_run *r, const struct bench_reply *rep) {
  if (r->first_error[0] == '\0')
    snprintf(r->first_error, sizeof r->first_error, "%.*s",
             (int)(rep->str.len < 150 ? rep->str.len : 150), rep->str.ptr);
}

/* One reply for the oldest request in flight on l. */
static void on_reply(struct load *ld, struct bench_link *l,
                     const struct bench_reply *rep, uint64_t now) {
  struct bench_run *r = ld->r;
  uint32_t si = l->ring[l->head];
  uint64_t sent = l->sent_ns[l->head];
  l->head = (l->head + 1) % l->ring_cap;
  l->inflight--;
  ld->inflight--;
  struct bench_session *s = &ld->sessions[si];
  hist_add(&r->hist, now - sent);
  enum bench_outcome o;
  if (bench_reply_error_is(rep, "TRYAGAIN")) {
    o = BENCH_RETRY;
  } else if (bench_reply_error_is(rep, "MOVED") &&
             moved_addr(rep, &l->moved_to)) {
    l->moved = true;
    o = BENCH_RETRY;
  } else {
    o = r->w->reply(r, s, rep, sent, now);
  }
  if (o == BENCH_RETRY && s->tries < RETRIES_MAX) {
    s->tries++;
    r->retries++;
    ld->retrying++;
    ld->not_before_ns[si] = now + (l->moved ? 0 : RETRY_PAUSE_NS);
  } else {
    if (o == BENCH_RETRY) {
      /* Given up: what became of the request is unknown. */
      r->unknown++;
      note_error(r, rep);
    } else if (o == BENCH_OK) {
      r->ok++;
    } else if (o == BENCH_REFUSED) {
      r->refused++;
    } else {
      r->failed++;
      note_error(r, rep);
    }
    s->tries = 0;
  }
  session_ready(l, si);
}

/* Everything l had in flight is lost: outcomes unknown. */
static void link_lost(struct load *ld, struct bench_link *l) {
  ld->r->unknown += l->inflight;
  ld->inflight -= l->inflight;
  l->inflight = 0;
  for (uint32_t k = 0; k < l->n_ready; k++) {
    struct bench_session *s = &ld->sessions[l->ready[k]];
    if (s->tries > 0) {
      ld->retrying--;
      ld->r->unknown++;
      s->tries = 0;
    }
  }
  l->dead = true;
  if (ld->r->first_error[0] == '\0')
    snprintf(ld->r->first_error, sizeof ld->r->first_error,
             "lost the connection to %s:%u", l->addr.host, l->addr.port);
  if (l->fd >= 0)
    close(l->fd);
  l->fd = -1;
}

static void on_readable(struct load *ld, struct bench_link *l, uint64_t now) {
  if (!read_some(l)) {
    link_lost(ld, l);
    return;
  }
  struct bench_reply rep;
  size_t used;
  for (;;) {
    int rc = bench_reply_parse(l->in + l->in_used, l->in_len - l->in_used, &rep,
                               &used);
    if (rc == 0)
      break;
    if (rc < 0 || l->inflight == 0) {
      link_lost(ld, l); /* not RESP, or a reply to nothing */
      return;
    }
    l->in_used += used;
    on_reply(ld, l, &rep, now);
  }
  if (l->in_used == l->in_len || l->in_len == IN_CAP)
    drop_used(l);
  if (l->in_len == IN_CAP) /* one reply larger than the buffer */
    link_lost(ld, l);
}

static void follow_moved(struct load *ld, struct bench_link *l) {
  struct bench_addr to = l->moved_to;
  close(l->fd);
  if (!link_connect(l, ld->set, &to))
    link_lost(ld, l);
}

static bool load_init(struct load *ld, struct bench_run *r) {
  const struct bench_settings *set = r->set;
  uint32_t nc = set->connections, np = set->pipeline;
  ld->r = r;
  ld->set = set;
  ld->links = calloc(nc, sizeof *ld->links);
  ld->pfd = calloc(nc, sizeof *ld->pfd);
  ld->sessions = calloc((size_t)nc * np, sizeof *ld->sessions);
  ld->not_before_ns = calloc((size_t)nc * np, sizeof *ld->not_before_ns);
  if (ld->links == NULL || ld->pfd == NULL || ld->sessions == NULL ||
      ld->not_before_ns == NULL)
    return false;
  for (uint32_t i = 0; i < nc; i++) {
    struct bench_link *l = link_open(set, &set->addrs[i % set->n_addrs]);
    if (l == NULL)
      return false;
    ld->links[i] = l;
    l->ring_cap = np;
    l->ring = calloc(np, sizeof *l->ring);
    l->sent_ns = calloc(np, sizeof *l->sent_ns);
    l->ready = calloc(np, sizeof *l->ready);
    if (l->ring == NULL || l->sent_ns == NULL || l->ready == NULL)
      return false;
    for (uint32_t k = 0; k < np; k++) {
      uint32_t si = i * np + k;
      ld->sessions[si].index = si;
      session_ready(l, si);
    }
  }
  return true;
}

static void load_free(struct load *ld) {
  for (uint32_t i = 0; ld->links != NULL && i < ld->set->connections; i++)
    link_close(ld->links[i]);
  free(ld->links);
  free(ld->pfd);
  free(ld->sessions);
  free(ld->not_before_ns);
}

int bench_load(struct bench_run *r) {
  struct load ld = {0};
  if (!load_init(&ld, r)) {
    load_free(&ld);
    return -1;
  }
  const struct bench_settings *set = r->set;
  uint32_t nc = set->connections;
  uint64_t t0 = bench_now_ns();
  uint64_t end = t0 + (uint64_t)(set->seconds * 1e9);
  uint64_t now = t0;
  for (;;) {
    bool stopping = now >= end || r->stopped_early ||
                    (set->count > 0 && ld.issued >= set->count);
    if (stopping &&
        ((ld.inflight == 0 && ld.retrying == 0) || now >= end + DRAIN_NS))
      break;
    for (uint32_t i = 0; i < nc; i++) {
      struct bench_link *l = ld.links[i];
      ld.pfd[i].fd = -1;
      ld.pfd[i].events = 0;
      if (l->dead)
        continue;
      if (l->moved && l->inflight == 0)
        follow_moved(&ld, l);
      if (!l->moved)
        fill(&ld, l, now, stopping);
      if (l->dead || !flush_some(l)) {
        if (!l->dead)
          link_lost(&ld, l);
        continue;
      }
      ld.pfd[i].fd = l->fd;
      ld.pfd[i].events = (short)(POLLIN | (l->out_len > 0 ? POLLOUT : 0));
    }
    /* Short timeouts: the end of the run and retries' pauses are timed
     * here, not by the sockets. */
    int rc = poll(ld.pfd, nc, 5);
    now = bench_now_ns();
    if (rc < 0 && errno != EINTR)
      break;
    for (uint32_t i = 0; rc > 0 && i < nc; i++) {
      struct bench_link *l = ld.links[i];
      if (ld.pfd[i].fd < 0 || l->dead)
        continue;
      if (ld.pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
        on_readable(&ld, l, now);
    }
  }
  /* Replies that never came, retries never sent (the drain timed out):
   * outcomes unknown. */
  r->unknown += ld.inflight + ld.retrying;
  r->elapsed_s = (double)(now - t0) / 1e9;
  load_free(&ld);
  return 0;
}
