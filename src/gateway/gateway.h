/*
 * The running gateway: what `pgmoat serve` builds once and every worker
 * shares read-only (config, TLS context, store, pools, registry).
 *
 * Owns: worker threads and their listening sockets, and start-up/shutdown
 * order. Each worker runs one event loop; a client stays on the worker that
 * accepted it for its whole life.
 */
#ifndef GW_GATEWAY_GATEWAY_H
#define GW_GATEWAY_GATEWAY_H

#include "core/buf.h"
#include "core/config.h"
#include "identity/identity.h"
#include "net/loop.h"
#include "net/tls.h"
#include "state/store.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct gw_pool gw_pool;
typedef struct gw_registry gw_registry;
typedef struct gw_gateway gw_gateway;
typedef struct gw_client gw_client;
typedef struct gw_session gw_session;
typedef struct gw_grants gw_grants;
typedef struct gw_sqlcache gw_sqlcache;
typedef struct gw_catcache gw_catcache;
typedef struct gw_notifier gw_notifier;
typedef struct gw_audit gw_audit;
typedef struct gw_masker gw_masker;
typedef struct gw_dlp gw_dlp;

typedef struct gw_worker {
	gw_gateway *gw;
	gw_loop *loop;
	int index;
	pthread_t thread;
	gw_io listen_io;
	gw_client *clients;     /* logging in */
	gw_session *sessions;   /* logged in */
	bool stopping;          /* shutting down: servers are closed, not pooled */
	atomic_int nconns;      /* client connections this worker owns (read by the acceptor) */
	gw_buf scratch;         /* an empty receive buffer lent to whichever socket reads next */
	gw_sqlcache *sqlcache;  /* classified statements by text (policy/), this worker's own */
	/* the record (session/): this worker's group of events, committed after each batch of socket events */
	struct gw_audit_ev *aud_evs, **aud_tail;
	size_t aud_nevs;
	gw_buf evbuf;           /* where events are built (reused) */
	uint64_t aud_round;     /* groups committed so far */
	bool aud_commit;        /* a statement waits for the group */
	gw_session *aud_waiting;/* sessions holding a statement until their group is committed */
} gw_worker;

struct gw_gateway {
	const gw_config *cfg;
	gw_store *store;
	gw_tls_ctx *tls;        /* NULL: no TLS configured */
	gw_ratelimit *rl;       /* failed logins per source address (PostgreSQL clients, relays) */
	gw_ratelimit *http_rl;  /* failed bearer tokens per source address (the HTTP API) */
	struct gw_oidc *oidc;   /* identity.oidc: trusted issuers and their keys (identity/oidc.h) */
	gw_pool **pools;        /* one per cfg->conns[i] */
	gw_registry *reg;
	gw_grants *grants;      /* grants in force (policy/grants.h) */
	gw_catcache **catcaches;/* per cfg->conns[i]: catalog facts policy decisions share (policy/policy.h) */
	gw_notifier *notifier;  /* webhook for new requests and reviews (access/), or NULL */
	gw_audit *audit;        /* the record (audit/) */
	gw_masker *masker;      /* masking: (mask/), or NULL when not configured */
	gw_dlp *dlp;            /* masking.provider: presidio (mask/dlp.h), or NULL */
	struct gw_hub *hub;     /* listen.relay: relays' tunnels (relay/relay.h), or NULL */
	gw_worker *workers;
	int nworkers;
	atomic_int nclients;
	uint64_t started_wall_us;
	char denied_stmt[48];   /* "pgmoat.denied.<random>": the statement a denial Binds to (never exists) */
};

/* `pgmoat serve -c FILE`: returns the process exit code. */
int gw_serve(const char *config_path);
gw_pool *gw_gateway_pool(gw_gateway *gw, const char *name);

#endif
