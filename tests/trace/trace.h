/* Golden traces of protocol scenarios: the parts trace_run.c puts together.
 *
 * A trace file is a script of commands, each followed by "----" and the
 * output the command must print (README.md beside this file gives the
 * format and every command). trace_host.c runs the commands against engines
 * of one protocol through include/sabha/engine.h only, as an in-memory host:
 * it carries out each ready batch in the order the contract sets, keeps what
 * every node persisted so that a node can restart from it, and delivers a
 * message only when the script says so. trace_run.c reads the files,
 * compares, prints a diff, and rewrites expected outputs on request.
 *
 * Output is deterministic by construction: fixed seeds, no addresses, no
 * wall clock; two runs of one file print the same bytes. */
#ifndef SABHA_TESTS_TRACE_H
#define SABHA_TESTS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer (the driver is a test program: it may allocate). */
struct trace_out {
  char *text; /* NUL-terminated; NULL until the first append */
  size_t len;
  size_t cap;
};

void trace_out_add(struct trace_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void trace_out_free(struct trace_out *o);

struct trace_world;

struct trace_world *trace_world_new(void);
void trace_world_free(struct trace_world *w);

/* Runs one command line and appends what it prints to `o` (nothing printed
 * is left to the caller to show as "ok"). Returns 0, or -1 for a script
 * error (unknown command, bad argument), described in `err`: those stop the
 * file, since an expected output cannot make a typo right. */
int trace_command(struct trace_world *w, const char *line, struct trace_out *o,
                  char *err, size_t err_size);

/* Breaches of the engine contract the host saw (an entry applied before it
 * was persisted, out of order, a ready batch that never empties...). Each
 * is also printed in the output; any of them fails the file even when the
 * expected output is rewritten to match. */
uint32_t trace_violations(const struct trace_world *w);

#endif
