/* The application workloads of the simulator (workload.c): what the clients
 * ask of the ledger, seats, locks and orders machine (sm/app.h), how a node
 * proposes, applies and snapshots it, and how the invariant checkers
 * (app_checks.h) see the committed stream. Only used when
 * sim_options.workload is not kv: then s->wl is NULL and none of this runs,
 * so kv runs are what they were, event for event. */
#ifndef SABHA_SIM_WORKLOAD_H
#define SABHA_SIM_WORKLOAD_H

#include "sim/sim_internal.h"

/* sim.c: before the nodes are made (they need s->wl), and at the end. */
void workload_setup(struct sim *s);
void workload_teardown(struct sim *s);
/* Hands the application history (result->app_history) over; NULL for kv. */
struct sim_app_op *workload_take_history(struct sim *s);
/* Folds node n's application state into a state hash. */
uint64_t workload_state_hash(const struct sim *s, const struct node *n,
                             uint64_t h);

/* client.c: draws the client's next operation into h. Returns false when
 * the workload chose a kv operation (mixed), which the caller draws as
 * usual; true for an application op (h->kind SIM_HIST_APP). */
bool workload_begin(struct sim *s, struct client *c, uint64_t op_id,
                    struct hist_op *h);
/* The client's application op op_id was answered: the reply's kind, the
 * application's code (APP_DONE unless an error) and its integer (a token,
 * a PNR's number). */
void workload_on_reply(struct sim *s, struct client *c, uint64_t op_id,
                       uint8_t kind, uint16_t code, int64_t integer);
/* The op's command, as the workload built it. */
const struct sim_app_op *workload_op(const struct sim *s, uint64_t op_id);

/* sim.c: node n applied an application command at (index, pos), with this
 * reply; `first` when no node applied that position before (the checkers'
 * model sees each position once). */
void workload_observe(struct sim *s, struct node *n, uint64_t index,
                      uint32_t pos, const uint8_t *data, size_t size,
                      const struct app_reply *r, bool first);

/* sim.c: a clock entry at a log position no node applied before. */
void workload_observe_clock(struct sim *s, uint64_t now_ms);

/* checks.c: the end checks, once every node applied everything. */
void workload_final(struct sim *s);

#endif
