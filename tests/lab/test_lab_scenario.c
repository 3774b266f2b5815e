/* The lab's scenario parser: good files parse into what they say, bad ones
 * fail with the file and line of the mistake, and every built-in scenario
 * parses.
 *
 * usage: test_lab_scenario SCENARIOS_DIR BAD_DIR
 * Each file in BAD_DIR starts with "# expect: LINE: TEXT": parsing must
 * fail with an error that contains "FILE:LINE: " and TEXT. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab.h"
#include "lab/scenario.h"

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

static const char good[] =
    "# a comment\n"
    "scenario demo\n"
    "title A demo: two regions\n"
    "story one line\n"
    "story and another\n"
    "node m1 region=mumbai\n"
    "node m2 region=mumbai\n"
    "node d3 region=delhi\n"
    "link mumbai delhi latency=20ms jitter=2ms loss=1%\n"
    "link m1 -> m2 latency=3ms\n"
    "workload kv clients=7 duration=4s keys=9 timeout=2s\n"
    "settings election-timeout=200..400ms heartbeat=40ms batch=32 "
    "prevote=off checkquorum=on\n"
    "variant slow election-timeout=1s heartbeat=100ms\n"
    "variant busy clients=20\n"
    "variant adapt timing=adaptive timing-bounds=100..4000ms\n"
    "at 3s heal\n"
    "at 1s partition mumbai | delhi\n"
    "at 1500ms crash leader\n"
    "at 2s restart crashed\n"
    "at 2s cut leader follower\n"
    "at 2s cut m1 -> d3\n"
    "at 2.5s link mumbai delhi latency=200ms\n"
    "at 2.5s slow leader delay=5ms fsync=3\n"
    "at 2.5s clock d3 rate=1.2 jump=50ms\n"
    "at 2.5s isolate m2\n";

/* The scenario as one Raft case, turned into simulator options; the script
 * is malloc'd and belongs to the caller. */
static struct sim_script_event *build_raft(struct lab_scenario *sc,
                                           struct sim_options *o,
                                           uint64_t *cap) {
  struct lab_case c;
  memset(&c, 0, sizeof c);
  c.sc = sc;
  c.settings = lab_settings_merged(sc, NULL);
  c.clients = sc->workload.clients;
  struct sim_script_event *script = calloc(lab_script_size(&c), sizeof *script);
  lab_build_options(&c, "raft", 1, o, script, cap);
  return script;
}

/* Runs the options and expects a run that passes every check. */
static void run_clean(const struct sim_options *o, const char *what) {
  struct sim_result r;
  char err[512] = "";
  int rv = sim_run(o, &r, err, sizeof err);
  CHECK(rv == 0, "%s: sim_run: %s", what, err);
  CHECK(rv != 0 || !r.failed, "%s failed: %s", what, r.failure);
  if (rv == 0)
    sim_result_free(&r);
}

static void test_good(void) {
  struct lab_scenario *sc = calloc(1, sizeof *sc);
  char err[512] = "";
  int rv = lab_scenario_parse(good, sizeof good - 1, "good.scn", sc, err,
                              sizeof err);
  CHECK(rv == 0, "good scenario: %s", err);
  CHECK(strcmp(sc->name, "demo") == 0, "name %s", sc->name);
  CHECK(strcmp(sc->story, "one line and another") == 0, "story '%s'",
        sc->story);
  CHECK(sc->n_nodes == 3 && sc->n_regions == 2, "nodes %u regions %u",
        sc->n_nodes, sc->n_regions);
  CHECK(sc->workload.clients == 7 && sc->workload.duration_ms == 4000 &&
            sc->workload.keys == 9 && sc->workload.op_timeout_ms == 2000,
        "workload");
  CHECK(sc->settings.election_timeout_ms_min == 200 &&
            sc->settings.election_timeout_ms_max == 400 &&
            sc->settings.heartbeat_ms == 40 && sc->settings.batch == 32,
        "settings");
  CHECK(sc->n_variants == 3 &&
            sc->variants[0].settings.election_timeout_ms_min == 1000 &&
            sc->variants[0].settings.election_timeout_ms_max == 2000 &&
            sc->variants[1].clients == 20,
        "variants");
  /* Adaptive timing: the variant's keys reach the simulator's options. */
  struct lab_settings adapt = lab_settings_merged(sc, &sc->variants[2]);
  CHECK(adapt.timing == SIM_SWITCH_ON && adapt.timing_floor_ms == 100 &&
            adapt.timing_ceiling_ms == 4000 &&
            adapt.election_timeout_ms_min == 200,
        "adaptive variant");
  CHECK(sc->n_events == 10, "events %u", sc->n_events);
  /* Sorted by time, file order kept among equal times. */
  CHECK(sc->events[0].kind == LAB_EV_PARTITION && sc->events[0].at_ms == 1000,
        "first event");
  CHECK(sc->events[sc->n_events - 1].kind == LAB_EV_HEAL, "last event");
  CHECK(strcmp(sc->events[0].label, "partition mumbai | delhi") == 0,
        "label '%s'", sc->events[0].label);
  uint32_t lat, jit;
  double loss;
  lab_topology_link(sc, 0, 2, &lat, &jit, &loss);
  CHECK(lat == 20000 && jit == 2000 && loss > 0.0099 && loss < 0.0101,
        "mumbai->delhi %u %u %f", lat, jit, loss);
  lab_topology_link(sc, 1, 0, &lat, &jit, &loss);
  CHECK(lat == 1000, "m2->m1 keeps the LAN default (one-way line), %u", lat);

  /* The builder turns it into a script the simulator accepts. */
  struct sim_options o;
  uint64_t cap;
  struct sim_script_event *script = build_raft(sc, &o, &cap);
  CHECK(o.n_script >= 6 + 10, "script events %zu", o.n_script);
  CHECK(o.client_time_ms == 4000 && cap > 0, "duration run");
  run_clean(&o, "run");
  free(script);
  free(sc);
}

/* A CPU-starved leader: `slow leader ... follow late-timers entry=` parses
 * into its flags, becomes one scripted SLOW with them, and runs; a run with
 * the slowness following leadership is as safe as any other. */
static void test_slow_follow(void) {
  static const char text[] =
      "scenario starved\n"
      "node a\nnode b\nnode c\n"
      "workload kv clients=20 duration=3s\n"
      "settings election-timeout=150..300ms heartbeat=50ms\n"
      "at 1s slow leader delay=5ms entry=50ms fsync=4 follow late-timers\n"
      "at 1s slow b delay=1ms late-timers\n"
      "at 2500ms heal\n";
  struct lab_scenario *sc = calloc(1, sizeof *sc);
  char err[512] = "";
  int rv = lab_scenario_parse(text, sizeof text - 1, "starved.scn", sc, err,
                              sizeof err);
  CHECK(rv == 0, "starved scenario: %s", err);
  const struct lab_event *ev = &sc->events[0];
  CHECK(sc->n_events == 3 && ev->kind == LAB_EV_SLOW &&
            ev->node == LAB_NODE_LEADER && ev->delay_us == 5000 &&
            ev->entry_us == 50000 && ev->fsync_factor == 4 && ev->follow &&
            ev->late_timers,
        "slow leader follow: kind %u node %u delay %u entry %u fsync %u "
        "follow %d late %d",
        ev->kind, ev->node, ev->delay_us, ev->entry_us, ev->fsync_factor,
        ev->follow, ev->late_timers);
  CHECK(!sc->events[1].follow && sc->events[1].late_timers &&
            sc->events[1].entry_us == 0,
        "slow b late-timers");
  CHECK(strcmp(ev->label, "slow leader delay=5ms entry=50ms fsync=4 follow "
                          "late-timers") == 0,
        "label '%s'", ev->label);

  struct sim_options o;
  uint64_t cap;
  struct sim_script_event *script = build_raft(sc, &o, &cap);
  int n_slow = 0;
  for (size_t k = 0; k < o.n_script; k++) {
    const struct sim_script_event *se = &o.script[k];
    if (se->op != SIM_SCRIPT_SLOW)
      continue;
    n_slow++;
    if (se->node == 0)
      CHECK(se->slow_flags == (SIM_SLOW_FOLLOW_LEADER | SIM_SLOW_LATE_TIMERS) &&
                se->delay_us == 5000 && se->entry_us == 50000 &&
                se->fsync_factor == 4,
            "scripted slow leader: flags %u entry %u", se->slow_flags,
            se->entry_us);
    else
      CHECK(se->node == 2 && se->slow_flags == SIM_SLOW_LATE_TIMERS,
            "scripted slow b: node %u flags %u", se->node, se->slow_flags);
  }
  CHECK(n_slow == 2, "%d scripted slow events", n_slow);
  run_clean(&o, "starved run");
  free(script);
  free(sc);
}

/* Inline bad inputs: the line number is the one the mistake is on. */
static void test_bad_inline(void) {
  static const struct {
    const char *text;
    const char *want;
  } cases[] = {
      {"scenario x\nnode a\nat 1s crash b\n", "x.scn:3: 'b' is not a node"},
      {"scenario x\nnode a\nworkload kv clients=0\n", "x.scn:3: clients"},
      {"scenario x\nnode a\nnode b\nat 1s cut leader -> b\n",
       "x.scn:4: a one-way cut"},
      {"scenario x\nnode a\nsettings prevote=maybe\n",
       "x.scn:3: prevote takes on or off"},
      {"scenario x\nnode a\nvariant v speed=9\n",
       "x.scn:3: unknown variant key"},
      {"scenario x\nnode a\nat 1s slow a\n", "x.scn:3: slow needs"},
      {"scenario x\nnode a\nat 1s slow a delay=1ms follow\n",
       "x.scn:3: follow moves the slowness to each new leader"},
      {"scenario x\nnode a\nat 1s slow leader follow late-timers\n",
       "x.scn:3: slow needs at least one setting"},
      {"scenario x\nnode a\nat 1s slow leader entry=2s\n",
       "x.scn:3: slow takes delay=TIME"},
      {"scenario x\nnode a\nat 1s clock a rate=2 follow\n",
       "x.scn:3: expected key=value, got 'follow'"},
      {"node a\n", "x.scn:0: no 'scenario NAME' line"},
      {"scenario x\nnode a\nat 250us heal\n", "x.scn:3: '250us' is not a time"},
      {"scenario x\nnode a\nsettings timing=sometimes\n",
       "x.scn:3: timing takes adaptive or fixed"},
      {"scenario x\nnode a\nvariant v timing-bounds=5..100ms\n",
       "x.scn:3: timing-bounds needs a floor and a ceiling"},
  };
  struct lab_scenario *sc = calloc(1, sizeof *sc);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[512] = "";
    int rv = lab_scenario_parse(cases[i].text, strlen(cases[i].text), "x.scn",
                                sc, err, sizeof err);
    CHECK(rv != 0, "case %zu parsed", i);
    CHECK(strstr(err, cases[i].want) != NULL, "case %zu: want '%s', got '%s'",
          i, cases[i].want, err);
  }
  free(sc);
}

static void test_bad_files(const char *dir) {
  DIR *d = opendir(dir);
  CHECK(d != NULL, "cannot open %s", dir);
  if (d == NULL)
    return;
  struct lab_scenario *sc = calloc(1, sizeof *sc);
  int n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (strstr(de->d_name, ".scn") == NULL)
      continue;
    char path[1024], line[256], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    FILE *f = fopen(path, "r");
    unsigned want_line = 0;
    char want[200] = "";
    if (f == NULL || fgets(line, sizeof line, f) == NULL ||
        sscanf(line, "# expect: %u: %199[^\n]", &want_line, want) != 2) {
      CHECK(0, "%s: no '# expect: LINE: TEXT' first line", path);
      if (f)
        fclose(f);
      continue;
    }
    fclose(f);
    n++;
    int rv = lab_scenario_load(path, sc, err, sizeof err);
    char where[1100];
    snprintf(where, sizeof where, "%s:%u: ", path, want_line);
    CHECK(rv != 0, "%s parsed", path);
    CHECK(strstr(err, where) == err && strstr(err, want) != NULL,
          "%s: want '%s%s', got '%s'", path, where, want, err);
  }
  closedir(d);
  CHECK(n >= 5, "only %d bad files", n);
  free(sc);
}

static void test_builtins(const char *dir) {
  DIR *d = opendir(dir);
  CHECK(d != NULL, "cannot open %s", dir);
  if (d == NULL)
    return;
  struct lab_scenario *sc = calloc(1, sizeof *sc);
  int n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    size_t len = strlen(de->d_name);
    if (len < 5 || strcmp(de->d_name + len - 4, ".scn") != 0)
      continue;
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    int rv = lab_scenario_load(path, sc, err, sizeof err);
    CHECK(rv == 0, "built-in %s: %s", path, err);
    CHECK(rv != 0 || strncmp(sc->name, de->d_name, len - 4) == 0,
          "%s declares scenario %s", path, sc->name);
    CHECK(rv != 0 || sc->story[0] != '\0', "%s has no story", path);
    n++;
  }
  closedir(d);
  CHECK(n >= 12, "only %d built-in scenarios", n);
  free(sc);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SCENARIOS_DIR BAD_DIR\n", argv[0]);
    return 2;
  }
  test_good();
  test_slow_follow();
  test_bad_inline();
  test_bad_files(argv[2]);
  test_builtins(argv[1]);
  if (failures == 0)
    printf("lab scenario tests passed\n");
  return failures == 0 ? 0 : 1;
}
