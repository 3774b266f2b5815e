/* The readable trace (sabha sim --trace): one line per event worth reading,
 *
 *   12.345 n2 -> n1 append term=3 prev=40/3 entries=41..42/3 commit=39
 *   12.351 c4 -> n1 SET r3 v17
 *   12.902 n1 -> c4 +OK
 *   13.000 n3 crashes
 *
 * in simulated milliseconds. Peer messages are described by their engine
 * (sabha_msg_describe), client traffic by its RESP command or the first
 * line of the reply, and the nodes and the nemesis add what they do
 * (crashes, restarts, snapshots, faults, leaders). Ticks and fsyncs are
 * left out: they are most of the events and say little. A trace is for a
 * short run (`--ops 50`) that a person reads; the trace hash, not this,
 * is what proves two runs equal. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "node/resp.h"
#include "sim/sim_internal.h"

#define ARGS_SHOWN 4u
#define ARG_BYTES_SHOWN 24u

static void trace_prefix(struct sim *s) {
  fprintf(s->trace, "%10.3f ", (double)s->now_us / 1000.0);
}

void trace_line(struct sim *s, uint32_t node, const char *fmt, ...) {
  if (s->trace == NULL)
    return;
  trace_prefix(s);
  if (node > 0)
    fprintf(s->trace, "n%u ", node);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(s->trace, fmt, ap);
  va_end(ap);
  fputc('\n', s->trace);
}

/* Up to ARGS_SHOWN arguments of the first command in the bytes, each cut
 * to ARG_BYTES_SHOWN and with unprintable bytes as '.'. */
static void show_command(FILE *f, const uint8_t *p, size_t len) {
  struct resp_arg argv[64];
  struct resp_limits lim = resp_limits_default;
  lim.args_max = 64;
  struct resp_cmd cmd = {.argv = argv, .argv_cap = 64};
  size_t used = 0;
  if (resp_parse(p, len, &cmd, &used, &lim) != RESP_COMPLETE) {
    fprintf(f, "(%zu bytes)", len);
    return;
  }
  for (uint32_t i = 0; i < cmd.argc && i < ARGS_SHOWN; i++) {
    if (i > 0)
      fputc(' ', f);
    size_t n = argv[i].len < ARG_BYTES_SHOWN ? argv[i].len : ARG_BYTES_SHOWN;
    for (size_t k = 0; k < n; k++) {
      uint8_t b = argv[i].ptr[k];
      fputc(b >= 0x20 && b < 0x7f ? b : '.', f);
    }
    if (argv[i].len > n)
      fprintf(f, "..(%zu bytes)", argv[i].len);
  }
  if (cmd.argc > ARGS_SHOWN)
    fprintf(f, " ..");
  if (used < len)
    fprintf(f, " (+%zu bytes pipelined)", len - used);
}

/* The first line of a reply, cut. */
static void show_reply(FILE *f, const uint8_t *p, size_t len) {
  size_t n = 0;
  while (n < len && n < 72 && p[n] != '\r')
    n++;
  for (size_t k = 0; k < n; k++)
    fputc(p[k] >= 0x20 && p[k] < 0x7f ? p[k] : '.', f);
  if (n < len && p[n] == '\r' && p[0] == '$' && n + 2 < len) {
    fputc(' ', f);
    size_t m = 0;
    while (n + 2 + m < len && m < 24 && p[n + 2 + m] != '\r')
      m++;
    fwrite(p + n + 2, 1, m, f);
  }
  size_t used = 0;
  if (resp_reply_scan(p, len, &used) == 1 && used < len)
    fprintf(f, " (+%zu bytes more)", len - used);
}

/* Who is at each end of a connection event. */
static void conn_ends(struct sim *s, const struct sim_event *ev, char *from,
                      char *to, size_t size) {
  const struct conn *cn = conn_get(s, ev->u.c.conn, ev->u.c.conn_gen);
  char opener[16], server[16];
  if (cn == NULL) {
    snprintf(from, size, "?");
    snprintf(to, size, "?");
    return;
  }
  if (cn->kind == CONN_CLIENT)
    snprintf(opener, sizeof opener, "c%u", cn->client);
  else
    snprintf(opener, sizeof opener, "n%u", cn->from + 1);
  snprintf(server, sizeof server, "n%u", cn->node + 1);
  bool to_server = ev->u.c.to_server;
  snprintf(from, size, "%s", to_server ? opener : server);
  snprintf(to, size, "%s", to_server ? server : opener);
}

void trace_event(struct sim *s, const struct sim_event *ev) {
  if (s->trace == NULL)
    return;
  FILE *f = s->trace;
  char from[16], to[16];
  switch (ev->kind) {
  case EV_PEER_MSG: {
    char text[256];
    const struct sabha_msg *m = &ev->u.pkt->msg;
    if (rt_msg_is_runtime(m) &&
        (m->type == RT_MSG_PING || m->type == RT_MSG_PONG))
      /* The runtime's own (adaptive timing), not the engine's. */
      snprintf(text, sizeof text, "%s seq=%llu hb=%llu",
               m->type == RT_MSG_PING ? "ping" : "pong",
               (unsigned long long)m->context, (unsigned long long)m->index);
    else
      sabha_msg_describe(s->o.protocol, m, text, sizeof text);
    trace_prefix(s);
    if (s->n_groups > 1)
      fprintf(f, "n%u -> n%u g%u %s\n", m->from, m->to, m->group, text);
    else
      fprintf(f, "n%u -> n%u %s\n", m->from, m->to, text);
    return;
  }
  case EV_CONN_OPEN:
    conn_ends(s, ev, from, to, sizeof from);
    trace_prefix(s);
    fprintf(f, "%s connects to %s\n", from, to);
    return;
  case EV_CONN_DOWN:
    conn_ends(s, ev, from, to, sizeof from);
    trace_prefix(s);
    fprintf(f, "%s closed its connection to %s\n", from, to);
    return;
  case EV_CONN_DATA: {
    conn_ends(s, ev, from, to, sizeof from);
    const struct chunk *c = ev->u.c.chunk;
    trace_prefix(s);
    fprintf(f, "%s -> %s ", from, to);
    if (ev->u.c.to_server)
      show_command(f, c->data, c->len);
    else
      show_reply(f, c->data, c->len);
    fputc('\n', f);
    return;
  }
  default:
    return;
  }
}
