/* The `sabha` command: one executable, one subcommand per job (`sim` today;
 * the lab, the benchmarks and the server's tools later). Each subcommand
 * parses its own flags and returns the process exit status:
 *
 *   0  success;
 *   1  the job ran and found a failure (for `sim`: a run failed a check);
 *   2  usage error (unknown flag, bad value): nothing ran;
 *   3  the job could not do its work (an output file cannot be written). */
#ifndef SABHA_CLI_H
#define SABHA_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_ERROR 3

/* `sabha sim ...`: argv[0] is "sim". */
int cli_sim(int argc, char **argv);
void cli_sim_usage(FILE *f);

/* `sabha cluster ...`: argv[0] is "cluster". */
int cli_cluster(int argc, char **argv);
void cli_cluster_usage(FILE *f);

/* The client (RESP) ports of the `sabha cluster` cluster in dir, on
 * 127.0.0.1: up to cap of them into ports, their number in *n, and whether
 * they speak TLS. -1 when dir holds no cluster.conf. */
int cli_cluster_clients(const char *dir, uint32_t *ports, uint32_t cap,
                        uint32_t *n, bool *tls);

/* `sabha bench ...`: argv[0] is "bench". */
int cli_bench(int argc, char **argv);
void cli_bench_usage(FILE *f);

/* `sabha check ...`: argv[0] is "check". */
int cli_check(int argc, char **argv);
void cli_check_usage(FILE *f);

/* `sabha lab ...`: argv[0] is "lab". */
int cli_lab(int argc, char **argv);
void cli_lab_usage(FILE *f);

#endif
