/* The scenario parser: one line at a time, one directive per line, every
 * value checked as it is read (docs/lab.md is the format's manual).
 *
 * Lines are split into whitespace-separated words; `#` starts a comment.
 * A directive's words after the first are positional names and key=value
 * pairs. Nothing is recursive and every array has a limit from scenario.h,
 * so a hostile file costs at most LAB_FILE_BYTES_MAX of reading. Errors say
 * "file:line: what is wrong (what would be right)". */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "lab/scenario.h"
#include "sim/sim.h"

#define WORDS_MAX 64

struct parser {
  const char *source;
  uint32_t line;
  char *err;
  size_t err_size;
  struct lab_scenario *sc;
  bool seen_workload;
};

__attribute__((format(printf, 2, 3))) static int perr(struct parser *p,
                                                      const char *fmt, ...) {
  int used = snprintf(p->err, p->err_size, "%s:%u: ", p->source, p->line);
  if (used >= 0 && (size_t)used < p->err_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + used, p->err_size - (size_t)used, fmt, ap);
    va_end(ap);
  }
  return SABHA_EINVAL;
}

static void copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src);
}

/* ---- values -------------------------------------------------------------- */

/* A decimal number with an optional fraction; *end points past it. */
static bool parse_decimal(const char *s, double *out, const char **end) {
  if (!isdigit((unsigned char)s[0]) && s[0] != '.')
    return false;
  errno = 0;
  char *e = NULL;
  double v = strtod(s, &e);
  if (errno != 0 || e == s || !isfinite(v) || v < 0)
    return false;
  *out = v;
  *end = e;
  return true;
}

/* "250us", "20ms", "1.5s", "2min" into microseconds. */
static bool parse_time_us(const char *s, uint64_t *us) {
  double v;
  const char *unit;
  if (!parse_decimal(s, &v, &unit))
    return false;
  double scale;
  if (strcmp(unit, "us") == 0)
    scale = 1;
  else if (strcmp(unit, "ms") == 0)
    scale = 1e3;
  else if (strcmp(unit, "s") == 0)
    scale = 1e6;
  else if (strcmp(unit, "min") == 0)
    scale = 60e6;
  else
    return false;
  double t = v * scale;
  if (t > 3600e6)
    return false;
  *us = (uint64_t)(t + 0.5);
  return true;
}

static bool parse_time_ms(const char *s, uint64_t *ms) {
  uint64_t us;
  if (!parse_time_us(s, &us) || us % 1000u != 0)
    return false;
  *ms = us / 1000u;
  return true;
}

/* "5%" or "0.05", into 0..1. */
static bool parse_fraction(const char *s, double *out) {
  double v;
  const char *end;
  if (!parse_decimal(s, &v, &end))
    return false;
  if (strcmp(end, "%") == 0)
    v /= 100.0;
  else if (*end != '\0')
    return false;
  if (v > 1.0)
    return false;
  *out = v;
  return true;
}

static bool parse_switch(const char *s, uint8_t *out) {
  if (strcmp(s, "on") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "true") == 0) {
    *out = SIM_SWITCH_ON;
    return true;
  }
  if (strcmp(s, "off") == 0 || strcmp(s, "no") == 0 ||
      strcmp(s, "false") == 0) {
    *out = SIM_SWITCH_OFF;
    return true;
  }
  return false;
}

/* "150..300ms", "150ms..300ms", or "200ms" (meaning 200..400 ms, the Raft
 * thesis's T..2T). */
static bool parse_timeout_range(const char *s, uint32_t *lo, uint32_t *hi) {
  char left[64];
  const char *dots = strstr(s, "..");
  uint64_t a, b;
  if (dots == NULL) {
    if (!parse_time_ms(s, &a) || a == 0 || a > 60000)
      return false;
    *lo = (uint32_t)a;
    *hi = (uint32_t)(2 * a);
    return true;
  }
  size_t len = (size_t)(dots - s);
  if (len == 0 || len >= sizeof left)
    return false;
  memcpy(left, s, len);
  left[len] = '\0';
  if (!parse_time_ms(dots + 2, &b))
    return false;
  if (!parse_time_ms(left, &a)) {
    /* "150..300ms": the unit is written once, after the second number. */
    size_t unit = strspn(dots + 2, "0123456789.");
    if (strlen(left) + strlen(dots + 2 + unit) >= sizeof left)
      return false;
    strcat(left, dots + 2 + unit);
    if (!parse_time_ms(left, &a))
      return false;
  }
  if (a == 0 || a > b || b > 60000)
    return false;
  *lo = (uint32_t)a;
  *hi = (uint32_t)b;
  return true;
}

/* ---- words --------------------------------------------------------------- */

struct words {
  char buf[LAB_LINE_BYTES_MAX + 1];
  char *w[WORDS_MAX];
  uint32_t n;
};

/* Splits a line (comment removed) into words. Returns false if too many. */
static bool words_split(struct words *ws, const char *line, size_t len) {
  memcpy(ws->buf, line, len);
  ws->buf[len] = '\0';
  char *hash = strchr(ws->buf, '#');
  if (hash != NULL)
    *hash = '\0';
  ws->n = 0;
  char *save = NULL;
  for (char *t = strtok_r(ws->buf, " \t\r", &save); t != NULL;
       t = strtok_r(NULL, " \t\r", &save)) {
    if (ws->n == WORDS_MAX)
      return false;
    ws->w[ws->n++] = t;
  }
  return true;
}

/* Splits "key=value"; returns false when there is no '='. */
static bool key_value(char *word, char **key, char **value) {
  char *eq = strchr(word, '=');
  if (eq == NULL || eq == word)
    return false;
  *eq = '\0';
  *key = word;
  *value = eq + 1;
  return true;
}

static bool name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= LAB_NAME_BYTES || !isalnum((unsigned char)s[0]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' &&
        s[i] != '.')
      return false;
  return true;
}

static int find_node(const struct lab_scenario *sc, const char *name) {
  for (uint32_t i = 0; i < sc->n_nodes; i++)
    if (strcmp(sc->node_name[i], name) == 0)
      return (int)i;
  return -1;
}

static int find_region(const struct lab_scenario *sc, const char *name) {
  for (uint32_t i = 0; i < sc->n_regions; i++)
    if (strcmp(sc->region_name[i], name) == 0)
      return (int)i;
  return -1;
}

/* The rest of the line from word k, words joined by one space. */
static void join_words(const struct words *ws, uint32_t k, char *out,
                       size_t size) {
  out[0] = '\0';
  size_t used = 0;
  for (uint32_t i = k; i < ws->n && used + 1 < size; i++) {
    int w =
        snprintf(out + used, size - used, "%s%s", i > k ? " " : "", ws->w[i]);
    if (w < 0)
      return;
    used += (size_t)w;
  }
}

/* ---- settings ------------------------------------------------------------ */

/* Applies one settings key; returns 1 if the key is not a setting. */
static int setting_apply(struct parser *p, struct lab_settings *st,
                         const char *key, const char *value) {
  uint64_t v;
  if (strcmp(key, "election-timeout") == 0) {
    if (!parse_timeout_range(value, &st->election_timeout_ms_min,
                             &st->election_timeout_ms_max))
      return perr(p,
                  "election-timeout needs a range like 150..300ms (or one "
                  "time T, meaning T..2T; at most 60s), got '%s'",
                  value);
  } else if (strcmp(key, "heartbeat") == 0) {
    if (!parse_time_ms(value, &v) || v == 0 || v > 60000)
      return perr(p, "heartbeat needs a time like 50ms, got '%s'", value);
    st->heartbeat_ms = (uint32_t)v;
  } else if (strcmp(key, "batch") == 0 || strcmp(key, "inflight") == 0) {
    if (!dec_parse_flag(value, 1, 4096, &v))
      return perr(p, "%s needs a number in 1..4096, got '%s'", key, value);
    *(key[0] == 'b' ? &st->batch : &st->inflight) = (uint32_t)v;
  } else if (strcmp(key, "prevote") == 0 || strcmp(key, "pre-vote") == 0 ||
             strcmp(key, "checkquorum") == 0 ||
             strcmp(key, "check-quorum") == 0 || strcmp(key, "backoff") == 0) {
    uint8_t *dst = key[0] == 'p'   ? &st->pre_vote
                   : key[0] == 'c' ? &st->check_quorum
                                   : &st->backoff;
    if (!parse_switch(value, dst))
      return perr(p, "%s takes on or off, got '%s'", key, value);
  } else if (strcmp(key, "timing") == 0) {
    if (strcmp(value, "adaptive") != 0 && strcmp(value, "fixed") != 0)
      return perr(p, "timing takes adaptive or fixed, got '%s'", value);
    st->timing = value[0] == 'a' ? SIM_SWITCH_ON : SIM_SWITCH_OFF;
  } else if (strcmp(key, "groups") == 0) {
    if (!dec_parse_flag(value, 1, LAB_GROUPS_MAX, &v))
      return perr(p, "groups needs a number in 1..%u, got '%s'", LAB_GROUPS_MAX,
                  value);
    st->groups = (uint32_t)v;
  } else if (strcmp(key, "group-leaders") == 0) {
    /* node,node,...: group g prefers the g-th (its leader "in its city"). */
    st->n_group_leaders = 0;
    char names[LAB_LINE_BYTES_MAX];
    copy_str(names, sizeof names, value);
    for (char *save = NULL, *n = strtok_r(names, ",", &save); n != NULL;
         n = strtok_r(NULL, ",", &save)) {
      int i = find_node(p->sc, n);
      if (i < 0)
        return perr(p, "group-leaders: no node '%s' (nodes come first)", n);
      if (st->n_group_leaders == LAB_GROUPS_MAX)
        return perr(p, "group-leaders: more than %u groups", LAB_GROUPS_MAX);
      st->group_leader[st->n_group_leaders++] = (uint8_t)(i + 1);
    }
    if (st->n_group_leaders == 0)
      return perr(p, "group-leaders needs node names, got '%s'", value);
  } else if (strcmp(key, "timing-bounds") == 0) {
    if (!parse_timeout_range(value, &st->timing_floor_ms,
                             &st->timing_ceiling_ms) ||
        st->timing_floor_ms < 10)
      return perr(p,
                  "timing-bounds needs a floor and a ceiling like "
                  "100..5000ms (10ms to 60s), got '%s'",
                  value);
  } else {
    return 1;
  }
  return 0;
}

static int dir_settings(struct parser *p, struct words *ws) {
  if (ws->n < 2)
    return perr(p, "settings needs key=value pairs (election-timeout, "
                   "heartbeat, batch, inflight, prevote, checkquorum, "
                   "backoff, timing, timing-bounds, groups, "
                   "group-leaders)");
  for (uint32_t i = 1; i < ws->n; i++) {
    char *key, *value;
    if (!key_value(ws->w[i], &key, &value))
      return perr(p, "expected key=value, got '%s'", ws->w[i]);
    p->sc->settings_line = p->line;
    int rv = setting_apply(p, &p->sc->settings, key, value);
    if (rv == 1)
      return perr(p,
                  "unknown setting '%s' (known: election-timeout, heartbeat, "
                  "batch, inflight, prevote, checkquorum, backoff, timing, "
                  "timing-bounds, groups, group-leaders)",
                  key);
    if (rv != 0)
      return rv;
  }
  return 0;
}

/* ---- header, nodes, workload --------------------------------------------- */

static int dir_scenario(struct parser *p, struct words *ws) {
  if (ws->n != 2 || !name_ok(ws->w[1]))
    return perr(p, "scenario needs one name of letters, digits, '-', '_' "
                   "(at most 47)");
  copy_str(p->sc->name, sizeof p->sc->name, ws->w[1]);
  return 0;
}

static int dir_text(struct parser *p, struct words *ws, bool story) {
  if (ws->n < 2)
    return perr(p, "%s needs text", story ? "story" : "title");
  char text[LAB_LINE_BYTES_MAX];
  join_words(ws, 1, text, sizeof text);
  if (!story) {
    copy_str(p->sc->title, sizeof p->sc->title, text);
    return 0;
  }
  size_t used = strlen(p->sc->story);
  if (used + strlen(text) + 2 >= sizeof p->sc->story)
    return perr(p, "the story is longer than %u bytes", LAB_STORY_BYTES - 1);
  snprintf(p->sc->story + used, sizeof p->sc->story - used, "%s%s",
           used > 0 ? " " : "", text);
  return 0;
}

static int dir_node(struct parser *p, struct words *ws) {
  struct lab_scenario *sc = p->sc;
  if (ws->n < 2 || ws->n > 3 || !name_ok(ws->w[1]))
    return perr(p, "node needs a name and optionally region=NAME");
  if (sc->n_nodes == SABHA_NODES_MAX)
    return perr(p, "at most %u nodes", SABHA_NODES_MAX);
  if (find_node(sc, ws->w[1]) >= 0 || find_region(sc, ws->w[1]) >= 0)
    return perr(p, "the name '%s' is already taken", ws->w[1]);
  const char *region = ws->w[1];
  char *key, *value;
  if (ws->n == 3) {
    if (!key_value(ws->w[2], &key, &value) || strcmp(key, "region") != 0 ||
        !name_ok(value))
      return perr(p, "expected region=NAME, got '%s'", ws->w[2]);
    region = value;
  }
  if (find_node(sc, region) >= 0 && strcmp(region, ws->w[1]) != 0)
    return perr(p, "region '%s' has the name of a node", region);
  int r = find_region(sc, region);
  if (r < 0) {
    r = (int)sc->n_regions++;
    copy_str(sc->region_name[r], LAB_NAME_BYTES, region);
  }
  copy_str(sc->node_name[sc->n_nodes], LAB_NAME_BYTES, ws->w[1]);
  sc->node_region[sc->n_nodes++] = (uint8_t)r;
  return 0;
}

static int workload_key(struct parser *p, struct lab_workload *wl,
                        const char *key, const char *value) {
  uint64_t v;
  if (strcmp(key, "clients") == 0) {
    if (!dec_parse_flag(value, 1, SIM_CLIENTS_MAX, &v))
      return perr(p, "clients needs 1..%u, got '%s'", SIM_CLIENTS_MAX, value);
    wl->clients = (uint32_t)v;
  } else if (strcmp(key, "ops") == 0) {
    if (!dec_parse_flag(value, 1, 200000, &v))
      return perr(p, "ops needs 1..200000, got '%s'", value);
    wl->ops = v;
    wl->duration_ms = 0;
  } else if (strcmp(key, "duration") == 0) {
    if (!parse_time_ms(value, &v) || v < 100 || v > LAB_DURATION_MS_MAX)
      return perr(p, "duration needs a time from 100ms to 600s, got '%s'",
                  value);
    wl->duration_ms = v;
    wl->ops = 0;
  } else if (strcmp(key, "keys") == 0) {
    if (!dec_parse_flag(value, 1, SIM_KEYS_MAX, &v))
      return perr(p, "keys needs 1..%u, got '%s'", SIM_KEYS_MAX, value);
    wl->keys = (uint32_t)v;
  } else if (strcmp(key, "timeout") == 0) {
    if (!parse_time_ms(value, &v) || v < 10 || v > 600000)
      return perr(p, "timeout needs a time from 10ms to 600s, got '%s'", value);
    wl->op_timeout_ms = (uint32_t)v;
  } else {
    return perr(p,
                "unknown workload key '%s' (known: clients, ops, duration, "
                "keys, timeout)",
                key);
  }
  return 0;
}

static int dir_workload(struct parser *p, struct words *ws) {
  struct lab_workload *wl = &p->sc->workload;
  char why[200];
  enum sim_workload w;
  if (ws->n < 2)
    return perr(p, "workload needs a name (kv, ledger, seats, locks, orders, "
                   "mixed)");
  if (sim_workload_parse(ws->w[1], &w, why, sizeof why) != 0)
    return perr(p, "%s", why);
  copy_str(wl->name, sizeof wl->name, ws->w[1]);
  for (uint32_t i = 2; i < ws->n; i++) {
    char *key, *value;
    if (!key_value(ws->w[i], &key, &value))
      return perr(p, "expected key=value, got '%s'", ws->w[i]);
    int rv = workload_key(p, wl, key, value);
    if (rv != 0)
      return rv;
  }
  p->seen_workload = true;
  return 0;
}

static int dir_faults(struct parser *p, struct words *ws) {
  char why[200];
  if (ws->n != 2)
    return perr(p, "faults needs one value: none, all, or a comma list");
  if (sim_faults_parse(ws->w[1], &p->sc->faults, why, sizeof why) != 0)
    return perr(p, "%s", why);
  return 0;
}

/* ---- links --------------------------------------------------------------- */

static int parse_end(struct parser *p, const char *name, struct lab_end *e) {
  int k;
  if (strcmp(name, "*") == 0) {
    *e = (struct lab_end){.kind = LAB_END_ANY};
  } else if ((k = find_node(p->sc, name)) >= 0) {
    *e = (struct lab_end){.kind = LAB_END_NODE, .index = (uint8_t)k};
  } else if ((k = find_region(p->sc, name)) >= 0) {
    *e = (struct lab_end){.kind = LAB_END_REGION, .index = (uint8_t)k};
  } else {
    return perr(p, "'%s' is neither a node nor a region declared above (nor *)",
                name);
  }
  return 0;
}

static int link_key(struct parser *p, struct lab_link *l, const char *key,
                    const char *value) {
  uint64_t us;
  if (strcmp(key, "latency") == 0 || strcmp(key, "jitter") == 0) {
    if (!parse_time_us(value, &us) || us > LAB_LATENCY_US_MAX)
      return perr(p, "%s needs a time like 20ms (at most 10s), got '%s'", key,
                  value);
    if (key[0] == 'l') {
      l->latency_us = (uint32_t)us;
      l->has_latency = true;
    } else {
      l->jitter_us = (uint32_t)us;
      l->has_jitter = true;
    }
  } else if (strcmp(key, "loss") == 0) {
    if (!parse_fraction(value, &l->loss))
      return perr(p, "loss needs a share like 5%% or 0.05, got '%s'", value);
    l->has_loss = true;
  } else {
    return perr(p, "unknown link key '%s' (known: latency, jitter, loss)", key);
  }
  return 0;
}

/* "A B key=value..." or "A -> B key=value..." from word k on. */
static int parse_link(struct parser *p, struct words *ws, uint32_t k,
                      struct lab_link *l) {
  memset(l, 0, sizeof *l);
  l->line = p->line;
  if (ws->n < k + 3)
    return perr(p, "link needs two ends (node, region or *) and at least one "
                   "of latency=, jitter=, loss=");
  int rv = parse_end(p, ws->w[k], &l->a);
  if (rv != 0)
    return rv;
  uint32_t i = k + 1;
  if (strcmp(ws->w[i], "->") == 0) {
    l->one_way = true;
    i++;
  }
  if (i >= ws->n || (rv = parse_end(p, ws->w[i], &l->b)) != 0)
    return i >= ws->n ? perr(p, "link needs a second end") : rv;
  if (++i >= ws->n)
    return perr(p, "link needs latency=, jitter= or loss=");
  for (; i < ws->n; i++) {
    char *key, *value;
    if (!key_value(ws->w[i], &key, &value))
      return perr(p, "expected key=value, got '%s'", ws->w[i]);
    if ((rv = link_key(p, l, key, value)) != 0)
      return rv;
  }
  return 0;
}

static int dir_link(struct parser *p, struct words *ws) {
  if (p->sc->n_links == LAB_LINKS_MAX)
    return perr(p, "at most %u link lines", LAB_LINKS_MAX);
  struct lab_link l;
  int rv = parse_link(p, ws, 1, &l);
  if (rv == 0)
    p->sc->links[p->sc->n_links++] = l;
  return rv;
}

static bool end_has(const struct lab_scenario *sc, struct lab_end e,
                    uint32_t node) {
  if (e.kind == LAB_END_ANY)
    return true;
  if (e.kind == LAB_END_NODE)
    return e.index == node;
  return sc->node_region[node] == e.index;
}

bool lab_link_covers(const struct lab_scenario *sc, const struct lab_link *l,
                     uint32_t from, uint32_t to) {
  if (from == to)
    return false;
  if (end_has(sc, l->a, from) && end_has(sc, l->b, to))
    return true;
  return !l->one_way && end_has(sc, l->b, from) && end_has(sc, l->a, to);
}

/* Defaults before any line: 1 ms +- 0.5 ms, no loss (a LAN). */
void lab_topology_link(const struct lab_scenario *sc, uint32_t from,
                       uint32_t to, uint32_t *latency_us, uint32_t *jitter_us,
                       double *loss) {
  *latency_us = 1000;
  *jitter_us = 500;
  *loss = 0;
  for (uint32_t k = 0; k < sc->n_links; k++) {
    const struct lab_link *l = &sc->links[k];
    if (!lab_link_covers(sc, l, from, to))
      continue;
    if (l->has_latency)
      *latency_us = l->latency_us;
    if (l->has_jitter)
      *jitter_us = l->jitter_us;
    if (l->has_loss)
      *loss = l->loss;
  }
}

/* ---- the timeline -------------------------------------------------------- */

/* A node name, or one of the words allowed in its place. */
static int event_node(struct parser *p, const char *name, bool leader_ok,
                      bool all_ok, bool follower_ok, uint8_t *out) {
  int k = find_node(p->sc, name);
  if (k >= 0) {
    *out = (uint8_t)k;
    return 0;
  }
  if (leader_ok && strcmp(name, "leader") == 0) {
    *out = LAB_NODE_LEADER;
    return 0;
  }
  if (all_ok && strcmp(name, "crashed") == 0) {
    *out = LAB_NODE_ALL;
    return 0;
  }
  if (follower_ok && strcmp(name, "follower") == 0) {
    *out = LAB_NODE_FOLLOWER;
    return 0;
  }
  return perr(
      p, "'%s' is not a node%s%s%s", name, leader_ok ? " (nor 'leader')" : "",
      all_ok ? " (nor 'crashed')" : "", follower_ok ? " (nor 'follower')" : "");
}

/* Puts a node, or every node of a region, in `group`. */
static int ev_partition_name(struct parser *p, const char *name, uint8_t group,
                             struct lab_event *ev) {
  const struct lab_scenario *sc = p->sc;
  int node = find_node(sc, name), region = find_region(sc, name);
  if (node < 0 && region < 0)
    return perr(p, "'%s' in the partition is neither a node nor a region",
                name);
  for (uint32_t i = 0; i < sc->n_nodes; i++) {
    if ((int)i != node && (node >= 0 || sc->node_region[i] != region))
      continue;
    if (ev->group[i] != 0 && ev->group[i] != group)
      return perr(p, "node %s is in two groups of the partition",
                  sc->node_name[i]);
    ev->group[i] = group;
  }
  return 0;
}

/* "a,b | c,d | e": each name a node or a region; every node in one group. */
static int ev_partition(struct parser *p, struct words *ws, uint32_t k,
                        struct lab_event *ev) {
  char text[LAB_LINE_BYTES_MAX];
  join_words(ws, k, text, sizeof text);
  uint8_t group = 1;
  char *save = NULL;
  for (char *t = strtok_r(text, " ,", &save); t != NULL;
       t = strtok_r(NULL, " ,", &save)) {
    for (char *bar; (bar = strchr(t, '|')) != NULL;) {
      *bar = '\0';
      if (t[0] != '\0' && ev_partition_name(p, t, group, ev) != 0)
        return SABHA_EINVAL;
      if (++group > SABHA_NODES_MAX)
        return perr(p, "too many groups");
      t = bar + 1;
    }
    if (t[0] != '\0' && ev_partition_name(p, t, group, ev) != 0)
      return SABHA_EINVAL;
  }
  ev->n_groups = group;
  if (group < 2)
    return perr(p, "partition needs two or more groups separated by '|', "
                   "like: partition a,b | c,d,e");
  for (uint32_t i = 0; i < p->sc->n_nodes; i++)
    if (ev->group[i] == 0)
      return perr(p, "node %s is in no group of the partition",
                  p->sc->node_name[i]);
  return 0;
}

static int ev_cut(struct parser *p, struct words *ws, uint32_t k,
                  struct lab_event *ev) {
  uint32_t n = ws->n - k;
  bool arrow = n == 3 && strcmp(ws->w[k + 1], "->") == 0;
  if (n != 2 && !arrow)
    return perr(p, "cut needs two nodes: cut A B (both ways) or cut A -> B; "
                   "A may be 'leader' and B 'follower'");
  int rv = event_node(p, ws->w[k], true, false, false, &ev->node);
  if (rv == 0)
    rv = event_node(p, ws->w[k + (arrow ? 2 : 1)], false, false, true,
                    &ev->peer);
  if (rv != 0)
    return rv;
  ev->one_way = arrow;
  if (arrow && (ev->node == LAB_NODE_LEADER || ev->peer == LAB_NODE_FOLLOWER))
    return perr(p, "a one-way cut needs two named nodes (the leader and "
                   "'follower' are only cut both ways)");
  if (ev->node == LAB_NODE_LEADER && ev->peer != LAB_NODE_FOLLOWER)
    return 0;
  if (ev->node != LAB_NODE_LEADER && ev->peer == LAB_NODE_FOLLOWER)
    return perr(p, "'follower' is only meaningful as in: cut leader follower");
  if (ev->node == ev->peer)
    return perr(p, "a node cannot be cut from itself");
  return 0;
}

static int ev_slow_or_clock(struct parser *p, struct words *ws, uint32_t k,
                            struct lab_event *ev) {
  bool slow = ev->kind == LAB_EV_SLOW;
  if (ws->n < k + 2)
    return perr(p, slow ? "slow needs a node (or leader) and delay=TIME, "
                          "optionally entry=TIME, fsync=FACTOR, follow and "
                          "late-timers"
                        : "clock needs a node (or leader) and rate=R, "
                          "optionally jump=TIME");
  int rv = event_node(p, ws->w[k], true, false, false, &ev->node);
  if (rv != 0)
    return rv;
  ev->fsync_factor = 1;
  ev->rate = 1.0;
  bool have = false;
  for (uint32_t i = k + 1; i < ws->n; i++) {
    char *key, *value;
    uint64_t v;
    double r;
    const char *end;
    if (slow && strcmp(ws->w[i], "follow") == 0) {
      ev->follow = true;
      continue;
    }
    if (slow && strcmp(ws->w[i], "late-timers") == 0) {
      ev->late_timers = true;
      continue;
    }
    if (!key_value(ws->w[i], &key, &value))
      return perr(p, "expected key=value, got '%s'", ws->w[i]);
    if (slow && strcmp(key, "delay") == 0 && parse_time_us(value, &v) &&
        v <= 1000000) {
      ev->delay_us = (uint32_t)v;
      have = true;
    } else if (slow && strcmp(key, "entry") == 0 && parse_time_us(value, &v) &&
               v <= 1000000) {
      ev->entry_us = (uint32_t)v;
      have = true;
    } else if (slow && strcmp(key, "fsync") == 0 &&
               dec_parse_flag(value, 1, 1000, &v)) {
      ev->fsync_factor = (uint32_t)v;
      have = true;
    } else if (!slow && strcmp(key, "rate") == 0 &&
               parse_decimal(value, &r, &end) && *end == '\0' && r >= 0.1 &&
               r <= 10) {
      ev->rate = r;
      have = true;
    } else if (!slow && strcmp(key, "jump") == 0 && parse_time_ms(value, &v) &&
               v <= 3600000) {
      ev->jump_ms = (uint32_t)v;
      have = true;
    } else {
      return perr(p,
                  slow ? "slow takes delay=TIME (up to 1s per message), "
                         "entry=TIME (up to 1s per entry), fsync=FACTOR "
                         "(1..1000), follow and late-timers; got '%s=%s'"
                       : "clock takes rate=R (0.1..10) and jump=TIME (whole "
                         "ms); got '%s=%s'",
                  key, value);
    }
  }
  if (!have)
    return perr(p, "%s needs at least one setting", slow ? "slow" : "clock");
  if (ev->follow && ev->node != LAB_NODE_LEADER)
    return perr(p, "follow moves the slowness to each new leader: only "
                   "'slow leader ... follow' takes it");
  return 0;
}

static int ev_node_only(struct parser *p, struct words *ws, uint32_t k,
                        struct lab_event *ev) {
  bool restart = ev->kind == LAB_EV_RESTART;
  const char *what = ev->kind == LAB_EV_CRASH     ? "crash"
                     : ev->kind == LAB_EV_ISOLATE ? "isolate"
                                                  : "restart";
  if (ws->n != k + 1)
    return perr(p, "%s needs one node (or %s)", what,
                restart ? "crashed" : "leader");
  return event_node(p, ws->w[k], !restart, restart, false, &ev->node);
}

static const struct {
  const char *word;
  enum lab_event_kind kind;
} event_words[] = {
    {"partition", LAB_EV_PARTITION}, {"heal", LAB_EV_HEAL},
    {"crash", LAB_EV_CRASH},         {"restart", LAB_EV_RESTART},
    {"isolate", LAB_EV_ISOLATE},     {"cut", LAB_EV_CUT},
    {"link", LAB_EV_LINK},           {"slow", LAB_EV_SLOW},
    {"clock", LAB_EV_CLOCK},
};

static int ev_body(struct parser *p, struct words *ws, struct lab_event *ev) {
  switch (ev->kind) {
  case LAB_EV_PARTITION:
    return ev_partition(p, ws, 3, ev);
  case LAB_EV_HEAL:
    return ws->n == 3 ? 0 : perr(p, "heal takes nothing after it");
  case LAB_EV_CRASH:
  case LAB_EV_RESTART:
  case LAB_EV_ISOLATE:
    return ev_node_only(p, ws, 3, ev);
  case LAB_EV_CUT:
    return ev_cut(p, ws, 3, ev);
  case LAB_EV_LINK:
    return parse_link(p, ws, 3, &ev->link);
  case LAB_EV_SLOW:
  case LAB_EV_CLOCK:
    return ev_slow_or_clock(p, ws, 3, ev);
  }
  return perr(p, "unknown event");
}

static int dir_at(struct parser *p, struct words *ws) {
  struct lab_scenario *sc = p->sc;
  uint64_t at_ms;
  if (ws->n < 3)
    return perr(p, "expected: at TIME EVENT ... (events: partition, heal, "
                   "crash, restart, isolate, cut, link, slow, clock)");
  if (!parse_time_ms(ws->w[1], &at_ms) || at_ms > LAB_DURATION_MS_MAX)
    return perr(p,
                "'%s' is not a time in whole milliseconds like 2s or "
                "1500ms (at most 600s)",
                ws->w[1]);
  if (sc->n_nodes == 0)
    return perr(p, "declare the nodes before the timeline");
  if (sc->n_events == LAB_EVENTS_MAX)
    return perr(p, "at most %u events", LAB_EVENTS_MAX);
  struct lab_event *ev = &sc->events[sc->n_events];
  memset(ev, 0, sizeof *ev);
  ev->at_ms = at_ms;
  ev->line = p->line;
  for (size_t k = 0; k < sizeof event_words / sizeof event_words[0]; k++)
    if (strcmp(ws->w[2], event_words[k].word) == 0)
      ev->kind = (uint8_t)event_words[k].kind;
  if (ev->kind == 0)
    return perr(p,
                "unknown event '%s' (known: partition, heal, crash, "
                "restart, isolate, cut, link, slow, clock)",
                ws->w[2]);
  /* The label first: parsing key=value pairs splits the words. */
  join_words(ws, 2, ev->label, sizeof ev->label);
  int rv = ev_body(p, ws, ev);
  if (rv != 0)
    return rv;
  sc->n_events++;
  return 0;
}

/* ---- variants ------------------------------------------------------------ */

static int dir_variant(struct parser *p, struct words *ws) {
  struct lab_scenario *sc = p->sc;
  if (ws->n < 2 || !name_ok(ws->w[1]))
    return perr(p, "variant needs a name, then settings (key=value) and/or "
                   "clients=N");
  if (sc->n_variants == LAB_VARIANTS_MAX)
    return perr(p, "at most %u variants", LAB_VARIANTS_MAX);
  for (uint32_t i = 0; i < sc->n_variants; i++)
    if (strcmp(sc->variants[i].name, ws->w[1]) == 0)
      return perr(p, "variant '%s' is declared twice", ws->w[1]);
  struct lab_variant *v = &sc->variants[sc->n_variants];
  memset(v, 0, sizeof *v);
  copy_str(v->name, sizeof v->name, ws->w[1]);
  v->line = p->line;
  join_words(ws, 2, v->text, sizeof v->text);
  for (uint32_t i = 2; i < ws->n; i++) {
    char *key, *value;
    uint64_t n;
    if (!key_value(ws->w[i], &key, &value))
      return perr(p, "expected key=value, got '%s'", ws->w[i]);
    if (strcmp(key, "clients") == 0) {
      if (!dec_parse_flag(value, 1, SIM_CLIENTS_MAX, &n))
        return perr(p, "clients needs 1..%u, got '%s'", SIM_CLIENTS_MAX, value);
      v->clients = (uint32_t)n;
      continue;
    }
    int rv = setting_apply(p, &v->settings, key, value);
    if (rv == 1)
      return perr(p,
                  "unknown variant key '%s' (known: clients and the "
                  "settings: election-timeout, heartbeat, batch, inflight, "
                  "timing, timing-bounds, groups, group-leaders, "
                  "prevote, checkquorum, backoff)",
                  key);
    if (rv != 0)
      return rv;
  }
  sc->n_variants++;
  return 0;
}

/* ---- the file ------------------------------------------------------------ */

static int parse_line(struct parser *p, const char *line, size_t len) {
  struct words ws;
  if (len > LAB_LINE_BYTES_MAX)
    return perr(p, "line longer than %u bytes", LAB_LINE_BYTES_MAX);
  if (!words_split(&ws, line, len))
    return perr(p, "more than %u words on one line", WORDS_MAX);
  if (ws.n == 0)
    return 0;
  const char *d = ws.w[0];
  if (strcmp(d, "scenario") == 0)
    return dir_scenario(p, &ws);
  if (strcmp(d, "title") == 0 || strcmp(d, "story") == 0)
    return dir_text(p, &ws, d[0] == 's');
  if (strcmp(d, "node") == 0)
    return dir_node(p, &ws);
  if (strcmp(d, "link") == 0)
    return dir_link(p, &ws);
  if (strcmp(d, "workload") == 0)
    return dir_workload(p, &ws);
  if (strcmp(d, "settings") == 0)
    return dir_settings(p, &ws);
  if (strcmp(d, "faults") == 0)
    return dir_faults(p, &ws);
  if (strcmp(d, "at") == 0)
    return dir_at(p, &ws);
  if (strcmp(d, "variant") == 0)
    return dir_variant(p, &ws);
  return perr(p,
              "unknown directive '%s' (known: scenario, title, story, "
              "node, link, workload, settings, faults, at, variant)",
              d);
}

/* Sorts the timeline by time, keeping file order among equal times
 * (insertion sort: at most LAB_EVENTS_MAX events). */
static void events_sort(struct lab_scenario *sc) {
  for (uint32_t i = 1; i < sc->n_events; i++) {
    struct lab_event ev = sc->events[i];
    uint32_t j = i;
    for (; j > 0 && sc->events[j - 1].at_ms > ev.at_ms; j--)
      sc->events[j] = sc->events[j - 1];
    sc->events[j] = ev;
  }
}

/* Several groups: the kv workload only (the applications' commands have
 * no key), and one preferred leader per group when they are named. */
static int groups_ok(struct parser *p, const struct lab_settings *st,
                     uint32_t line) {
  const struct lab_scenario *sc = p->sc;
  uint32_t groups = st->groups ? st->groups : 1;
  p->line = line;
  if (groups > 1 && strcmp(sc->workload.name, "kv") != 0)
    return perr(p,
                "groups=%u needs the kv workload (the applications' "
                "commands have no key: one group serves them all)",
                groups);
  if (groups > 1 && (sc->faults & SIM_FAULT_MEMBERSHIP))
    return perr(p, "groups=%u: membership faults need one group", groups);
  if (st->n_group_leaders > 0 && st->n_group_leaders != groups)
    return perr(p, "group-leaders names %u nodes for %u groups",
                st->n_group_leaders, groups);
  return 0;
}

static int groups_check(struct parser *p) {
  const struct lab_scenario *sc = p->sc;
  int rv = groups_ok(p, &sc->settings, sc->settings_line);
  for (uint32_t k = 0; k < sc->n_variants && rv == 0; k++) {
    struct lab_settings st = lab_settings_merged(sc, &sc->variants[k]);
    rv = groups_ok(p, &st, sc->variants[k].line);
  }
  return rv;
}

static int scenario_finish(struct parser *p) {
  struct lab_scenario *sc = p->sc;
  p->line = 0;
  if (sc->name[0] == '\0')
    return perr(p, "no 'scenario NAME' line");
  if (sc->n_nodes == 0)
    return perr(p, "no nodes: add 'node NAME region=REGION' lines");
  events_sort(sc);
  const struct lab_workload *wl = &sc->workload;
  for (uint32_t i = 0; i < sc->n_events; i++) {
    p->line = sc->events[i].line;
    if (wl->duration_ms > 0 && sc->events[i].at_ms >= wl->duration_ms)
      return perr(p,
                  "this event at %llu ms comes after the clients stop "
                  "(duration=%llu ms)",
                  (unsigned long long)sc->events[i].at_ms,
                  (unsigned long long)wl->duration_ms);
  }
  if (sc->title[0] == '\0')
    copy_str(sc->title, sizeof sc->title, sc->name);
  return groups_check(p);
}

static void scenario_defaults(struct lab_scenario *sc, const char *source) {
  memset(sc, 0, sizeof *sc);
  copy_str(sc->source, sizeof sc->source, source);
  copy_str(sc->workload.name, sizeof sc->workload.name, "kv");
  sc->workload.clients = 10;
  sc->workload.duration_ms = 10000;
  sc->workload.keys = 5;
  sc->workload.op_timeout_ms = 5000;
}

int lab_scenario_parse(const char *text, size_t size, const char *source,
                       struct lab_scenario *sc, char *err, size_t err_size) {
  struct parser p = {.source = source != NULL ? source : "(scenario)",
                     .err = err,
                     .err_size = err_size,
                     .sc = sc};
  scenario_defaults(sc, p.source);
  if (size > LAB_FILE_BYTES_MAX) {
    snprintf(err, err_size, "%s: larger than %u bytes", p.source,
             LAB_FILE_BYTES_MAX);
    return SABHA_EINVAL;
  }
  size_t at = 0;
  while (at < size) {
    p.line++;
    const char *nl = memchr(text + at, '\n', size - at);
    size_t len = nl != NULL ? (size_t)(nl - (text + at)) : size - at;
    if (memchr(text + at, '\0', len) != NULL)
      return perr(&p, "a NUL byte: this is not a text file");
    int rv = parse_line(&p, text + at, len);
    if (rv != 0)
      return rv;
    at += len + 1;
  }
  return scenario_finish(&p);
}

int lab_scenario_load(const char *path, struct lab_scenario *sc, char *err,
                      size_t err_size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, err_size, "%s: %s", path, strerror(errno));
    return SABHA_EIO;
  }
  char *buf = malloc(LAB_FILE_BYTES_MAX + 1);
  if (buf == NULL) {
    fclose(f);
    snprintf(err, err_size, "%s: out of memory", path);
    return SABHA_ENOMEM;
  }
  size_t n = fread(buf, 1, LAB_FILE_BYTES_MAX + 1, f);
  bool bad = ferror(f) != 0;
  fclose(f);
  int rv;
  if (bad) {
    snprintf(err, err_size, "%s: read error", path);
    rv = SABHA_EIO;
  } else {
    rv = lab_scenario_parse(buf, n, path, sc, err, err_size);
  }
  free(buf);
  return rv;
}

struct lab_settings lab_settings_merged(const struct lab_scenario *sc,
                                        const struct lab_variant *v) {
  struct lab_settings st = sc->settings;
  if (v == NULL)
    return st;
  const struct lab_settings *o = &v->settings;
  if (o->election_timeout_ms_min > 0) {
    st.election_timeout_ms_min = o->election_timeout_ms_min;
    st.election_timeout_ms_max = o->election_timeout_ms_max;
  }
  if (o->heartbeat_ms > 0)
    st.heartbeat_ms = o->heartbeat_ms;
  if (o->batch > 0)
    st.batch = o->batch;
  if (o->inflight > 0)
    st.inflight = o->inflight;
  if (o->pre_vote != SIM_SWITCH_DEFAULT)
    st.pre_vote = o->pre_vote;
  if (o->check_quorum != SIM_SWITCH_DEFAULT)
    st.check_quorum = o->check_quorum;
  if (o->backoff != SIM_SWITCH_DEFAULT)
    st.backoff = o->backoff;
  if (o->timing != SIM_SWITCH_DEFAULT)
    st.timing = o->timing;
  if (o->timing_floor_ms > 0) {
    st.timing_floor_ms = o->timing_floor_ms;
    st.timing_ceiling_ms = o->timing_ceiling_ms;
  }
  if (o->groups > 0) {
    st.groups = o->groups;
    st.n_group_leaders = 0; /* the scenario's named another count */
  }
  if (o->n_group_leaders > 0) {
    memcpy(st.group_leader, o->group_leader, sizeof st.group_leader);
    st.n_group_leaders = o->n_group_leaders;
  }
  return st;
}

const char *lab_node_ref_name(const struct lab_scenario *sc, uint8_t node) {
  if (node == LAB_NODE_LEADER)
    return "the leader";
  if (node == LAB_NODE_ALL)
    return "every crashed node";
  if (node == LAB_NODE_FOLLOWER)
    return "a follower";
  return node < sc->n_nodes ? sc->node_name[node] : "?";
}
