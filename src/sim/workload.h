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
/* The client's application op succeeded with this reply. */
void workload_on_reply(struct sim *s, struct client *c,
                       const struct client_msg *cm);

/* node.c */
void workload_node_init(struct sim *s, struct node *n);
void workload_node_reset(struct sim *s, struct node *n); /* empty machine */
void workload_node_free(struct node *n);
/* The command of op_id stamped with the proposer's clock now_ms and the op
 * as its tag, into buf; returns its size (0: no such op). */
size_t workload_command(const struct sim *s, uint64_t op_id, uint64_t now_ms,
                        uint8_t *buf, size_t cap);
/* Applies the committed app command at (index, pos) on node n, lets the
 * checkers see it and answers the client waiting on n. */
void workload_apply(struct sim *s, struct node *n, uint64_t index,
                    uint32_t pos, const uint8_t *data, size_t size);
/* A snapshot of node n's KV then app machine into s->snap_buf (grown as
 * needed); returns its size. */
size_t workload_snapshot(struct sim *s, struct node *n);
/* Restores what workload_snapshot() wrote. 0 or a SABHA_E* code. */
int workload_restore(struct sim *s, struct node *n, const uint8_t *data,
                     size_t size);

/* checks.c: the end checks, once every node applied everything. */
void workload_final(struct sim *s);

#endif
