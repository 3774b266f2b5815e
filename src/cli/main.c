/* The `sabha` command's entry point: finds the subcommand and hands it the
 * arguments. Keeping dispatch here and each subcommand in its own file lets
 * later issues add `sabha lab`, `sabha bench` and so on without touching the
 * others. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sabha/engine.h"

static void usage(FILE *f) {
  fprintf(f, "usage: sabha <command> [options]\n"
             "\n"
             "sabha: Raft and Multi-Paxos consensus engines behind one\n"
             "replicated-log API, with a deterministic simulator that checks\n"
             "them.\n"
             "\n"
             "commands:\n"
             "  sim     simulate a cluster under faults and check it\n"
             "          (sabha sim --help for its options)\n"
             "  cluster run a local cluster of sabhad nodes\n"
             "          (sabha cluster --help)\n"
             "  lab     run the engines through the same scenarios and\n"
             "          report what each did (sabha lab --help)\n"
             "  check   check that a client history is linearizable\n"
             "          (sabha check --help)\n"
             "  bench   load a running cluster with the applications'\n"
             "          workloads and check their invariants\n"
             "          (sabha help bench)\n"
             "  help    this text; `sabha help sim` for a command's options\n"
             "\n"
             "protocols in this build:");
  for (const char *const *p = sabha_protocols(); *p != NULL; p++)
    fprintf(f, " %s", *p);
  fprintf(f, "\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    if (argc >= 3 && strcmp(argv[2], "sim") == 0)
      cli_sim_usage(stdout);
    else if (argc >= 3 && strcmp(argv[2], "lab") == 0)
      cli_lab_usage(stdout);
    else if (argc >= 3 && strcmp(argv[2], "check") == 0)
      cli_check_usage(stdout);
    else if (argc >= 3 && strcmp(argv[2], "bench") == 0)
      cli_bench_usage(stdout);
    else
      usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "sim") == 0)
    return cli_sim(argc - 1, argv + 1);
  if (strcmp(cmd, "cluster") == 0) /* src/cli/cluster_cmd.c */
    return cli_cluster(argc - 1, argv + 1);
  if (strcmp(cmd, "lab") == 0) /* src/cli/lab_cmd.c */
    return cli_lab(argc - 1, argv + 1);
  if (strcmp(cmd, "check") == 0) /* src/cli/check_cmd.c */
    return cli_check(argc - 1, argv + 1);
  if (strcmp(cmd, "bench") == 0) /* src/cli/bench_cmd.c */
    return cli_bench(argc - 1, argv + 1);
  fprintf(stderr, "sabha: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return CLI_EXIT_USAGE;
}
