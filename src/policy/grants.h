/*
 * The grants in force, in memory (part of the policy module).
 *
 * Owns: the live copy of the store's grants that sessions consult on every
 * decision and every tick. Writers (the access module, on approval and on
 * revocation; start-up, from the store) put grants here after the store has
 * committed them; readers take a short mutex. A generation number changes on
 * every put, so a session notices a new or revoked grant without a scan.
 */
#ifndef GW_POLICY_GRANTS_H
#define GW_POLICY_GRANTS_H

#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_grants gw_grants;

gw_grants *gw_grants_new(void);
void gw_grants_free(gw_grants *g);
/* Load every grant still in force from the store. Returns the count or -2. */
int gw_grants_load(gw_grants *g, gw_store *st, int64_t now);
/* Add or replace (by id) a grant; a revoked or expired one is dropped. */
void gw_grants_put(gw_grants *g, const gw_grant_rec *rec);
uint64_t gw_grants_gen(gw_grants *g);
/* Grants of identity on connection in force at now, copied into out (at most max). */
size_t gw_grants_for(gw_grants *g, const char *identity, const char *connection, int64_t now,
	gw_grant_rec *out, size_t max);
/* Is grant id still in force at now? */
bool gw_grants_active(gw_grants *g, int64_t id, int64_t now);

#endif
