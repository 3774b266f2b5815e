/* Fuzz target for the lab's scenario parser (lab_scenario_parse,
 * src/lab/scenario.c), which reads files a user names on the command line,
 * and for what the lab builds from a parsed scenario before a run
 * (lab_build_options, src/lab/build.c: the simulator's options and its
 * fault script, into an array sized by lab_script_size).
 *
 * The input is the file. Oracles, from scenario.h: a refusal names the
 * source; an accepted scenario stays within every bound (nodes, regions,
 * links, events, variants), its node and region references point at
 * things that exist, its events are sorted by time and fall before the
 * clients stop, every string is terminated, and the links it describes
 * have loss within 0..1 and latency within the lab's bound. Every case
 * (the scenario, then each variant) builds into at most lab_script_size()
 * script events. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lab/lab.h"
#include "lab/scenario.h"
#include "sabha/error.h"
#include "sim/sim.h"

#define SOURCE "fuzz.scn"

static int terminated(const char *s, size_t cap) {
  return memchr(s, '\0', cap) != NULL;
}

static void check_scenario(const struct lab_scenario *sc) {
  REQUIRE(terminated(sc->name, sizeof sc->name) && sc->name[0] != '\0');
  REQUIRE(terminated(sc->title, sizeof sc->title));
  REQUIRE(terminated(sc->story, sizeof sc->story));
  REQUIRE(sc->n_nodes >= 1 && sc->n_nodes <= SABHA_NODES_MAX);
  REQUIRE(sc->n_regions <= LAB_REGIONS_MAX);
  for (uint32_t i = 0; i < sc->n_nodes; i++) {
    REQUIRE(terminated(sc->node_name[i], LAB_NAME_BYTES));
    REQUIRE(sc->node_region[i] < sc->n_regions || sc->n_regions == 0);
  }
  REQUIRE(sc->n_links <= LAB_LINKS_MAX);
  REQUIRE(sc->n_events <= LAB_EVENTS_MAX);
  REQUIRE(sc->n_variants <= LAB_VARIANTS_MAX);
  for (uint32_t i = 0; i < sc->n_events; i++) {
    const struct lab_event *ev = &sc->events[i];
    REQUIRE(i == 0 || sc->events[i - 1].at_ms <= ev->at_ms);
    REQUIRE(sc->workload.duration_ms == 0 ||
            ev->at_ms < sc->workload.duration_ms);
    REQUIRE(lab_node_ref_name(sc, ev->node) != NULL);
  }
  for (uint32_t from = 0; from < sc->n_nodes; from++)
    for (uint32_t to = 0; to < sc->n_nodes; to++) {
      uint32_t latency_us, jitter_us;
      double loss;
      lab_topology_link(sc, from, to, &latency_us, &jitter_us, &loss);
      REQUIRE(loss >= 0.0 && loss <= 1.0);
      REQUIRE(latency_us <= LAB_LATENCY_US_MAX);
    }
}

/* One case, as lab.c sets it up, built for one engine. */
static void build_case(const struct lab_scenario *sc, int variant) {
  static struct lab_case c;
  memset(&c, 0, sizeof c);
  c.sc = sc;
  c.variant = variant;
  const struct lab_variant *v = variant >= 0 ? &sc->variants[variant] : NULL;
  c.settings = lab_settings_merged(sc, v);
  c.clients = v != NULL && v->clients > 0 ? v->clients : sc->workload.clients;
  size_t cap = lab_script_size(&c);
  struct sim_script_event *script = calloc(cap > 0 ? cap : 1, sizeof *script);
  REQUIRE(script != NULL);
  struct sim_options o;
  uint64_t op_cap = 0;
  lab_build_options(&c, "raft", 1, &o, script, &op_cap);
  REQUIRE(o.n_script <= cap && o.n_nodes == sc->n_nodes);
  free(script);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct lab_scenario sc;
  char err[256];
  err[0] = '\0';
  int rc = lab_scenario_parse((const char *)data, size, SOURCE, &sc, err,
                              sizeof err);
  if (rc != 0) {
    REQUIRE(rc == SABHA_EINVAL);
    REQUIRE(strncmp(err, SOURCE ":", strlen(SOURCE ":")) == 0);
    return 0;
  }
  check_scenario(&sc);
  build_case(&sc, -1);
  for (uint32_t i = 0; i < sc.n_variants; i++)
    build_case(&sc, (int)i);
  return 0;
}
