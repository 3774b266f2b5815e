/* sabhad: one node of a sabha cluster (see src/server/node.h and
 * docs/operations.md). This file only reads the settings and hands them to
 * the node runtime. */
#include <signal.h>
#include <stdio.h>

#include "server/node.h"

int main(int argc, char **argv) {
  struct srv_config cfg;
  srv_config_init(&cfg);
  char err[512];
  int rc = srv_config_parse_args(&cfg, argc, argv, stdout, err, sizeof err);
  if (rc == 1)
    return 0;
  if (rc != 0) {
    fprintf(stderr, "sabhad: %s\n", err);
    return 2;
  }
  /* A client that goes away mid-reply must not kill the node: libuv reports
   * EPIPE on the write instead. */
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stderr, NULL, _IOLBF, 0);
  return srv_run(&cfg);
}
