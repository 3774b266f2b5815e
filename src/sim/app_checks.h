/* The invariant checkers of the application workloads (ledger, seats,
 * locks, orders): a model of each application, kept apart from the state
 * machine's code (src/sm/app*.c), fed the committed command stream once per
 * log position with the reply of the node that applied it first.
 *
 * State machine safety (checks.c) already makes every node apply the same
 * commands in the same order, so one pass over the stream is the history of
 * every replica. The model replays that stream by its own rules and judges
 * each reply against them:
 *
 *   ledger  money is never made or lost (a node's audit total equals the
 *           sum the model opened accounts with) and no balance goes below
 *           zero; a txid moves money at most once; a transfer refused for
 *           funds really lacked them; at the end every node's balances are
 *           the model's, and every transfer a client saw succeed moved money
 *           exactly once, every one it saw refused or fail not at all;
 *   seats   a seat is never held by two PNRs; a request id books at most
 *           once, and once it has booked is never answered refused; at the
 *           end every PNR a client received is held on every node unless a
 *           cancel of it was applied, no booking a client saw refused or
 *           fail holds a seat, and held + free = seats;
 *   locks   at most one unexpired holder per lock at any log position (the
 *           command's clock is the highest stamp so far, as the contract in
 *           sm/app.h says), and no expired grant renewed or re-acquired
 *           under its old token; only the holder of the current unexpired
 *           grant releases it; tokens strictly increase per lock; no fenced
 *           write is applied with a token other than the newest granted;
 *   orders  no order is created twice; every applied state change is a
 *           valid transition; at the end every change a client saw
 *           acknowledged is reflected in the final state.
 *
 * The checker knows nothing of the simulator, so the tests can feed it
 * deliberately wrong streams (tests/sim/test_app_checks.c). Each function
 * returns how many violations it found and describes the first in `why`
 * (naming the invariant, the ids and the log index). */
#ifndef SABHA_SIM_APP_CHECKS_H
#define SABHA_SIM_APP_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sm/app.h"

struct appck;

/* Returns 0 and sets *out, or SABHA_ENOMEM. */
int appck_new(struct appck **out);
void appck_free(struct appck *ck);

/* One committed app command at log position (index, pos) (an entry may
 * carry several: pos counts them from 0; call in log order), with the reply
 * of the node that applied it and, when not NULL, that node's machine just
 * after the apply (used to see that a refused or idempotent command changed
 * nothing). The model advances whatever the verdict. */
uint32_t appck_observe(struct appck *ck, uint64_t index, uint32_t pos,
                       const uint8_t *cmd, size_t len,
                       const struct app_reply *reply, const struct app *after,
                       char *why, size_t why_size);

/* The log's clock moved to now_ms without an application command (a clock
 * entry, kvstore's CLOCK, which the machine applies too): the model's clock
 * follows, as the machine's does. */
void appck_observe_clock(struct appck *ck, uint64_t now_ms);

/* Money in node `node`'s machine, after it applied the command at (index,
 * pos), which the checker must have observed: its balances, added up here,
 * and its own running total both equal what the stream opened accounts with
 * up to there, and no balance is below zero. */
uint32_t appck_ledger_audit(const struct appck *ck, const struct app *a,
                            uint32_t node, uint64_t index, uint32_t pos,
                            char *why, size_t why_size);

/* At the end, once every node applied everything: node `node`'s balances,
 * seats, lock tokens and order states equal the model's. */
uint32_t appck_final_node(const struct appck *ck, const struct app *a,
                          uint32_t node, char *why, size_t why_size);

/* What a client was told about one command. */
enum appck_outcome {
  APPCK_REPLIED = 0, /* a reply: see code and integer */
  APPCK_NOT_APPLIED, /* definitely not applied (refused before the log) */
  APPCK_UNKNOWN,     /* gave up not knowing: nothing to judge */
};

/* At the end: a client's view of one command against the model and the
 * final machines of every node (nodes[0, n_nodes)). */
uint32_t appck_client_saw(const struct appck *ck, const uint8_t *cmd,
                          size_t len, enum appck_outcome outcome, uint16_t code,
                          int64_t integer, const struct app *const *nodes,
                          uint32_t n_nodes, char *why, size_t why_size);

/* Commands observed, for the tests. */
uint64_t appck_observed(const struct appck *ck);

#endif
