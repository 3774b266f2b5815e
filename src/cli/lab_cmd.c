/* `sabha lab`: run engines through the same scenarios in the simulator and
 * report what each did (src/lab; docs/lab.md).
 *
 *   sabha lab SCENARIO... [--engines LIST] [--seeds N] [--out DIR]
 *   sabha lab --all [...]
 *   sabha lab --list
 *
 * A SCENARIO is a built-in name (a file NAME.scn in the scenarios folder)
 * or the path of a scenario file. The built-in folder is looked for, in
 * order: --scenarios DIR, $SABHA_SCENARIOS, ./scenarios, next to the
 * executable and one level up, and the source tree this binary was built
 * from (so `build/sabha lab monsoon` works from anywhere in a checkout). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/decimal.h"
#include "lab/lab.h"

#define LAB_SCENARIOS_MAX 64
#define DIR_BYTES (PATH_MAX + 32)

void cli_lab_usage(FILE *f) {
  fprintf(f,
          "usage: sabha lab SCENARIO... [options]\n"
          "       sabha lab --all [options]\n"
          "       sabha lab --list\n"
          "\n"
          "Runs every engine through the same scenario (topology, workload,\n"
          "fault timeline, seeds) in the simulator, with every safety check\n"
          "on, and reports what each did: a table here, and report.html\n"
          "(charts), results.json and CSV files in the output folder.\n"
          "SCENARIO is a built-in name (sabha lab --list) or a .scn file;\n"
          "the format is in docs/lab.md.\n"
          "\n"
          "options (defaults in brackets):\n"
          "  --engines LIST    comma list of engines [every one this build\n"
          "                    knows:");
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    fprintf(f, " %s", *p);
  fprintf(f,
          "]\n"
          "  --seeds N         seeds per engine, 1..%u [3]; tables show\n"
          "                    medians, the report min-max too\n"
          "  --seed-first S    first seed [1]\n"
          "  --out DIR         output folder [lab-out]\n"
          "  --jobs N          simulator runs at once [one per CPU]\n"
          "  --scenarios DIR   where the built-in scenarios are\n"
          "  --quiet           no tables on stdout\n"
          "  --help            this text\n"
          "\n"
          "exit status: 0 every consensus engine kept every safety promise;\n"
          "1 one broke one (the report says where); 2 usage error or a bad\n"
          "scenario file; 3 the output could not be written.\n",
          LAB_SEEDS_MAX);
}

struct lab_args {
  struct lab_options opt;
  const char *names[LAB_SCENARIOS_MAX];
  uint32_t n_names;
  bool all, list, quiet;
  const char *out_dir;
  const char *scenarios_dir;
  char engines_buf[256];
};

static int lab_usage_error(const char *what, const char *value) {
  fprintf(stderr, "sabha lab: %s%s%s\n(sabha lab --help lists the options)\n",
          what, value ? ": " : "", value ? value : "");
  return CLI_EXIT_USAGE;
}

/* ---- arguments ----------------------------------------------------------- */

static const char *take_value(int argc, char **argv, int *i, const char *flag) {
  const char *arg = argv[*i];
  size_t len = strlen(flag);
  if (strncmp(arg, flag, len) != 0)
    return NULL;
  if (arg[len] == '=')
    return arg + len + 1;
  if (arg[len] != '\0')
    return NULL;
  return *i + 1 < argc ? argv[++*i] : "";
}

static bool protocol_known(const char *name) {
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    if (strcmp(*p, name) == 0)
      return true;
  return false;
}

static int parse_engines(struct lab_args *a, const char *list) {
  if (list == NULL || list[0] == '\0' || strlen(list) >= sizeof a->engines_buf)
    return lab_usage_error("--engines needs a comma list", list);
  snprintf(a->engines_buf, sizeof a->engines_buf, "%s", list);
  a->opt.n_engines = 0;
  char *save = NULL;
  for (char *e = strtok_r(a->engines_buf, ",", &save); e != NULL;
       e = strtok_r(NULL, ",", &save)) {
    if (!protocol_known(e))
      return lab_usage_error("unknown engine", e);
    if (a->opt.n_engines == LAB_ENGINES_MAX)
      return lab_usage_error("too many engines", list);
    a->opt.engines[a->opt.n_engines++] = e;
  }
  return a->opt.n_engines ? 0 : lab_usage_error("--engines is empty", list);
}

static int parse_flag(struct lab_args *a, int argc, char **argv, int *i) {
  const char *v;
  uint64_t n;
  if ((v = take_value(argc, argv, i, "--engines")) != NULL)
    return parse_engines(a, v);
  if ((v = take_value(argc, argv, i, "--seeds")) != NULL) {
    if (!dec_parse_flag(v, 1, LAB_SEEDS_MAX, &n))
      return lab_usage_error("--seeds needs a number in 1..100", v);
    a->opt.n_seeds = (uint32_t)n;
  } else if ((v = take_value(argc, argv, i, "--seed-first")) != NULL) {
    if (!dec_parse_flag(v, 0, UINT64_MAX - LAB_SEEDS_MAX, &n))
      return lab_usage_error("--seed-first needs a number", v);
    a->opt.seed_first = n;
  } else if ((v = take_value(argc, argv, i, "--jobs")) != NULL) {
    if (!dec_parse_flag(v, 1, LAB_JOBS_MAX, &n))
      return lab_usage_error("--jobs needs a number in 1..64", v);
    a->opt.jobs = (uint32_t)n;
  } else if ((v = take_value(argc, argv, i, "--out")) != NULL) {
    if (v[0] == '\0')
      return lab_usage_error("--out needs a folder", NULL);
    a->out_dir = v;
  } else if ((v = take_value(argc, argv, i, "--scenarios")) != NULL) {
    if (v[0] == '\0')
      return lab_usage_error("--scenarios needs a folder", NULL);
    a->scenarios_dir = v;
  } else {
    return lab_usage_error("unknown option", argv[*i]);
  }
  return 0;
}

static int parse_args(struct lab_args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->opt.n_seeds = 3;
  a->opt.seed_first = 1;
  a->out_dir = "lab-out";
  for (const char *const *p = sabha_protocols();
       *p != NULL && a->opt.n_engines < LAB_ENGINES_MAX; p++)
    a->opt.engines[a->opt.n_engines++] = *p;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int rv = 0;
    if (strcmp(arg, "--all") == 0)
      a->all = true;
    else if (strcmp(arg, "--list") == 0)
      a->list = true;
    else if (strcmp(arg, "--quiet") == 0)
      a->quiet = true;
    else if (strncmp(arg, "--", 2) == 0)
      rv = parse_flag(a, argc, argv, &i);
    else if (a->n_names == LAB_SCENARIOS_MAX)
      rv = lab_usage_error("too many scenarios", arg);
    else
      a->names[a->n_names++] = arg;
    if (rv != 0)
      return rv;
  }
  if (!a->all && !a->list && a->n_names == 0)
    return lab_usage_error("name a scenario, or use --all or --list", NULL);
  return 0;
}

/* ---- finding scenarios --------------------------------------------------- */

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder holding the built-in scenarios (see the file comment). */
static bool scenarios_dir(const struct lab_args *a, char *out, size_t size) {
  const char *env = getenv("SABHA_SCENARIOS");
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash != NULL)
    *slash = '\0';
  char src[PATH_MAX];
  snprintf(src, sizeof src, "%s", __FILE__);
  char *cli = strstr(src, "/src/cli/lab_cmd.c");
  if (cli != NULL)
    *cli = '\0';
  char cands[6][PATH_MAX + 32];
  int k = 0;
  if (a->scenarios_dir)
    snprintf(cands[k++], sizeof cands[0], "%s", a->scenarios_dir);
  if (env && env[0])
    snprintf(cands[k++], sizeof cands[0], "%s", env);
  snprintf(cands[k++], sizeof cands[0], "scenarios");
  snprintf(cands[k++], sizeof cands[0], "%s/scenarios", exe);
  snprintf(cands[k++], sizeof cands[0], "%s/../scenarios", exe);
  if (cli != NULL && src[0] == '/')
    snprintf(cands[k++], sizeof cands[0], "%s/scenarios", src);
  for (int i = 0; i < k; i++)
    if (is_dir(cands[i]) && strlen(cands[i]) < size) {
      memcpy(out, cands[i], strlen(cands[i]) + 1);
      return true;
    }
  /* An explicit folder that does not exist is an error, not a fallback. */
  return false;
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Names of the *.scn files in dir, sorted; *n set. */
static int list_builtin(const char *dir, char names[][LAB_NAME_BYTES],
                        uint32_t *n) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return SABHA_EIO;
  *n = 0;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    size_t len = strlen(de->d_name);
    if (len < 5 || len - 4 >= LAB_NAME_BYTES ||
        strcmp(de->d_name + len - 4, ".scn") != 0 || *n == LAB_SCENARIOS_MAX)
      continue;
    snprintf(names[*n], LAB_NAME_BYTES, "%.*s", (int)(len - 4), de->d_name);
    (*n)++;
  }
  closedir(d);
  char *ptrs[LAB_SCENARIOS_MAX];
  for (uint32_t i = 0; i < *n; i++)
    ptrs[i] = names[i];
  qsort(ptrs, *n, sizeof ptrs[0], cmp_str);
  char tmp[LAB_SCENARIOS_MAX][LAB_NAME_BYTES];
  for (uint32_t i = 0; i < *n; i++)
    snprintf(tmp[i], LAB_NAME_BYTES, "%s", ptrs[i]);
  memcpy(names, tmp, sizeof tmp[0] * *n);
  return 0;
}

/* A path (has a '/' or ends in .scn) or a built-in name. */
static void scenario_path(const char *dir, const char *name, char *out,
                          size_t size) {
  size_t len = strlen(name);
  if (strchr(name, '/') != NULL || (len > 4 && !strcmp(name + len - 4, ".scn")))
    snprintf(out, size, "%s", name);
  else
    snprintf(out, size, "%s/%s.scn", dir, name);
}

/* Every built-in scenario's order: the seed's story first, then the classic
 * cases, as SEED_DIGEST tells them. Others follow alphabetically. */
static const char *const story_order[] = {
    "benchmark",
    "monsoon",
    "three-way-split",
    "ipo-latency-spike",
    "expiry-election-storm",
    "tatkal-rush",
    "upi-failover",
    "figure-8",
    "dueling-proposers",
    "partial-partition",
    "stale-log-candidate",
    "leader-isolated",
};

static uint32_t story_rank(const char *name) {
  uint32_t n = sizeof story_order / sizeof story_order[0];
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(story_order[i], name) == 0)
      return i;
  return n;
}

static void order_builtin(char names[][LAB_NAME_BYTES], uint32_t n) {
  for (uint32_t i = 1; i < n; i++) /* stable by story rank */
    for (uint32_t j = i;
         j > 0 && story_rank(names[j]) < story_rank(names[j - 1]); j--) {
      char tmp[LAB_NAME_BYTES];
      memcpy(tmp, names[j], LAB_NAME_BYTES);
      memcpy(names[j], names[j - 1], LAB_NAME_BYTES);
      memcpy(names[j - 1], tmp, LAB_NAME_BYTES);
    }
}

static int load_all(const struct lab_args *a, const char *dir,
                    struct lab_scenario *scs, uint32_t *n_out) {
  char names[LAB_SCENARIOS_MAX][LAB_NAME_BYTES];
  uint32_t n = 0;
  if (a->all || a->list) {
    if (dir[0] == '\0' || list_builtin(dir, names, &n) != 0 || n == 0) {
      fprintf(stderr, "sabha lab: no built-in scenarios found (looked in "
                      "--scenarios, $SABHA_SCENARIOS, ./scenarios and next "
                      "to the executable)\n");
      return CLI_EXIT_USAGE;
    }
    order_builtin(names, n);
  }
  uint32_t k = 0;
  for (uint32_t i = 0; i < n + a->n_names; i++) {
    char path[PATH_MAX + 64], err[512];
    if (i < n)
      scenario_path(dir, names[i], path, sizeof path);
    else
      scenario_path(dir[0] ? dir : "scenarios", a->names[i - n], path,
                    sizeof path);
    if (lab_scenario_load(path, &scs[k], err, sizeof err) != 0) {
      fprintf(stderr, "sabha lab: %s\n", err);
      if (i >= n && strchr(a->names[i - n], '/') == NULL)
        fprintf(stderr, "(sabha lab --list shows the built-in scenarios)\n");
      return CLI_EXIT_USAGE;
    }
    k++;
  }
  *n_out = k;
  return 0;
}

static void print_list(const struct lab_scenario *scs, uint32_t n,
                       const char *dir) {
  printf("built-in scenarios (%s):\n", dir);
  for (uint32_t i = 0; i < n; i++) {
    printf("  %-22s %s\n", scs[i].name, scs[i].title);
    for (uint32_t v = 0; v < scs[i].n_variants; v++)
      printf("  %-22s   variant %s: %s\n", "", scs[i].variants[v].name,
             scs[i].variants[v].text);
  }
}

/* ---- output -------------------------------------------------------------- */

static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_outputs(const struct lab *lab, const char *dir) {
  char path[PATH_MAX + 32], err[512];
  if (make_dirs(dir) != 0) {
    fprintf(stderr, "sabha lab: cannot create %s: %s\n", dir, strerror(errno));
    return CLI_EXIT_ERROR;
  }
  snprintf(path, sizeof path, "%s/results.json", dir);
  int rv = lab_write_json(lab, path, err, sizeof err);
  if (rv == 0)
    rv = lab_write_csv(lab, dir, err, sizeof err);
  snprintf(path, sizeof path, "%s/report.html", dir);
  if (rv == 0)
    rv = lab_write_html(lab, path, err, sizeof err);
  if (rv != 0) {
    fprintf(stderr, "sabha lab: %s\n", err);
    return CLI_EXIT_ERROR;
  }
  return 0;
}

static int run_lab(const struct lab_args *a, const struct lab_scenario *scs,
                   uint32_t n) {
  struct lab lab;
  char err[256];
  struct lab_options opt = a->opt;
  opt.progress = stderr;
  opt.progress_tty = isatty(fileno(stderr));
  if (lab_init(&lab, &opt, scs, n, err, sizeof err) != 0) {
    fprintf(stderr, "sabha lab: %s\n", err);
    lab_free(&lab);
    return CLI_EXIT_USAGE;
  }
  lab_run_all(&lab);
  lab_summarize(&lab);
  if (!a->quiet)
    lab_print_tables(&lab, stdout);
  int rv = write_outputs(&lab, a->out_dir);
  printf("\nlab: %u runs (%zu cases x %u engines x %u seeds) in %.1f s; "
         "report: %s/report.html (also results.json, runs.csv, "
         "summary.csv, recovery.csv, timeseries.csv, leaders.csv)\n",
         lab.runs_total, lab.n_cases, opt.n_engines, opt.n_seeds, lab.wall_s,
         a->out_dir);
  if (lab.runs_fatal > 0) {
    fprintf(stderr,
            "sabha lab: FAILED: %u run(s) of a consensus engine broke a "
            "safety check (see the report and results.json)\n",
            lab.runs_fatal);
    if (rv == 0)
      rv = CLI_EXIT_FAILED;
  }
  lab_free(&lab);
  return rv;
}

int cli_lab(int argc, char **argv) {
  if (argc >= 2 &&
      (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    cli_lab_usage(stdout);
    return CLI_EXIT_OK;
  }
  struct lab_args a;
  int rv = parse_args(&a, argc, argv);
  if (rv != 0)
    return rv;
  char dir[DIR_BYTES] = "";
  if (!scenarios_dir(&a, dir, sizeof dir) && a.scenarios_dir != NULL) {
    fprintf(stderr, "sabha lab: --scenarios %s is not a folder\n",
            a.scenarios_dir);
    return CLI_EXIT_USAGE;
  }
  struct lab_scenario *scs = calloc(LAB_SCENARIOS_MAX * 2, sizeof *scs);
  if (scs == NULL)
    return CLI_EXIT_ERROR;
  uint32_t n = 0;
  rv = load_all(&a, dir, scs, &n);
  if (rv == 0 && a.list)
    print_list(scs, n, dir);
  else if (rv == 0)
    rv = run_lab(&a, scs, n);
  free(scs);
  return rv;
}
