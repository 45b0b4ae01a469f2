/*
 * Registry of live sessions, shared by all workers and the HTTP API.
 *
 * Owns: session ids (UUIDv4), the cancel keys minted for clients and what
 * they map to upstream, the counters shown by `pgmoat sessions`, and the
 * routing of a kill to the worker that owns the session. A session is only
 * ever touched by its own worker; other threads see its entry.
 */
#ifndef GW_SESSION_REGISTRY_H
#define GW_SESSION_REGISTRY_H

#include "core/config.h"
#include "net/loop.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct gw_registry gw_registry;
typedef struct gw_session gw_session;

typedef struct gw_reg_entry {
	char id[40];
	char identity[128];
	char connection[128];
	char client_addr[64];
	char application_name[64];
	char tls[16];
	char token_id[32];
	uint64_t started_wall_us;
	uint32_t cancel_pid, cancel_key;     /* minted for the client */
	/* Written by the owning worker: */
	atomic_uint_fast64_t bytes_in, bytes_out, statements;
	atomic_int state;                     /* 0 idle, 1 active, 2 waiting for upstream */
	/* Guarded by the registry lock: */
	const gw_conn_cfg *upstream;
	uint32_t upstream_pid, upstream_key;
	gw_loop *loop;
	gw_session *session;
	struct gw_reg_entry *prev, *next;
} gw_reg_entry;

gw_registry *gw_registry_new(void);
void gw_registry_free(gw_registry *r);
/*
 * Register a session described by tmpl (identity, connection, client_addr,
 * application_name, tls, session, loop). Returns the entry, with its id and
 * the minted cancel key filled in; it lives until gw_registry_remove().
 */
gw_reg_entry *gw_registry_add(gw_registry *r, const gw_reg_entry *tmpl);
void gw_registry_remove(gw_registry *r, gw_reg_entry *e);
void gw_registry_set_upstream(gw_registry *r, gw_reg_entry *e, const gw_conn_cfg *cfg, uint32_t pid, uint32_t key);
/* Where does a client's cancel key point? false when nowhere. */
bool gw_registry_cancel_target(gw_registry *r, uint32_t pid, uint32_t key, const gw_conn_cfg **cfg,
	uint32_t *upid, uint32_t *ukey);
/* Is this session (by pointer) still registered? Call on its own loop. */
bool gw_registry_alive(gw_registry *r, const char *id, gw_session *s);
/* Find a session by id: its loop and pointer (to post to). false when none. */
bool gw_registry_locate(gw_registry *r, const char *id, gw_loop **loop, gw_session **s);
/* Ids of live sessions matching identity and/or token id (NULL: any); count, *out malloc'd. */
int gw_registry_find(gw_registry *r, const char *identity, const char *token_id, char (**out)[40]);
/* Snapshot every entry (copies) for listing; returns count, *out malloc'd. */
int gw_registry_snapshot(gw_registry *r, gw_reg_entry **out);
int gw_registry_count(gw_registry *r);

#endif
