/* Membership helpers the engines share: the initial membership, voter
 * counts and quorums, and a CONFIG entry's bytes built from a change.
 *
 * The public half (encode, decode, find) is declared in
 * include/sabha/engine.h; this header adds what only engines need. */
#ifndef SABHA_CORE_MEMBERSHIP_H
#define SABHA_CORE_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "sabha/engine.h"

/* Every voter of `cfg` (none for a joining node), index 0, no addresses. */
void membership_initial(const struct sabha_config *cfg,
                        struct sabha_membership *out);
uint32_t membership_voters(const struct sabha_membership *m);
/* A majority of the voters (at least 1). */
uint32_t membership_quorum(const struct sabha_membership *m);
bool membership_is_voter(const struct sabha_membership *m, uint32_t id);

/* The membership `cur` becomes under a change, checked (engine.h,
 * sabha_engine_change: SABHA_EINVAL for a change that does not fit).
 * `out->index` is left 0 for the caller to set. */
int membership_apply_change(const struct sabha_membership *cur,
                            enum sabha_change_type type, uint32_t id,
                            const char *addr, struct sabha_membership *out);

#endif
