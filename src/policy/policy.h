/*
 * Policy: may this identity run this statement on this connection, now?
 *
 * Owns: the parse cache (statement text → classification, per worker), a
 * session's entitlements (its standing policies and the grants in force for
 * it), the decision for a whole message (SPEC "Statement classes": one
 * denial denies the message), the catalog facts a decision needs (volatility
 * of user functions, the schema an unqualified table name resolves to), and
 * the wording of every denial (42501, DETAIL naming the rule, HINT with the
 * command that would grant access).
 *
 * The session asks; it never decides. Catalog facts are looked up through
 * the session's own upstream connection: when a decision needs one it is not
 * yet known, gw_policy_decide answers GW_DECIDE_LOOKUP and
 * gw_policy_lookup_sql gives the query to run; its rows go to
 * gw_policy_lookup_row and the same message is decided again.
 */
#ifndef GW_POLICY_POLICY_H
#define GW_POLICY_POLICY_H

#include "core/buf.h"
#include "core/config.h"
#include "core/map.h"
#include "policy/grants.h"
#include "policy/sqlparse.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- parse cache ---- */

typedef struct gw_sqlc {
	gw_sql sql;
	char *text;          /* the statement text (reviews match on it) */
	size_t len;
	int rc;              /* gw_sql_parse's: 0, or -1 (sql.error) */
	int refs;
	uint64_t hash;
	bool cached;         /* held by the cache (else freed at the last unref) */
	bool used;           /* clock bit for eviction */
	struct gw_sqlc_fp *fps; /* per statement: normalized text and fingerprint, made when first recorded */
} gw_sqlc;

/*
 * Statement i of q as the record shows it (a text the parser rejects is one
 * statement, as sent): its text trimmed of surrounding blanks, its
 * fingerprint (gw_sql_fingerprint) and, when asked for, the text with
 * constants replaced by $n (the text itself when it does not parse).
 * Computed once per cached text.
 */
typedef struct gw_sqlc_view {
	const char *text;
	size_t len;
	const char *normalized;  /* NULL unless asked for */
	const char *fingerprint;
} gw_sqlc_view;
size_t gw_sqlc_count(const gw_sqlc *q);
void gw_sqlc_view_of(gw_sqlc *q, size_t i, bool normalized, gw_sqlc_view *out);

typedef struct gw_sqlcache gw_sqlcache;

/* Counters, per worker: hits, misses; decisions and the nanoseconds they took (1 in 64 timed). */
typedef struct gw_policy_stats {
	atomic_ullong hits, misses, decisions, timed, timed_ns, parse_timed, parse_ns;
} gw_policy_stats;

gw_sqlcache *gw_sqlcache_new(size_t max_entries);
gw_policy_stats *gw_sqlcache_stats(gw_sqlcache *c);
void gw_sqlcache_free(gw_sqlcache *c);
/* The classification of text[0..len) (NUL-terminated at len); a reference the caller unrefs. */
gw_sqlc *gw_sqlcache_get(gw_sqlcache *c, const char *text, size_t len);
void gw_sqlc_ref(gw_sqlc *e);
void gw_sqlc_unref(gw_sqlc *e);

/*
 * Catalog facts (function volatility, where an unqualified table resolves)
 * shared by the sessions of one connection that still have their startup
 * search_path, kept 60 s: a new session then needs no lookup round trip.
 */
typedef struct gw_catcache gw_catcache;
gw_catcache *gw_catcache_new(void);
void gw_catcache_free(gw_catcache *c);

/* ---- a session's entitlements and decisions ---- */

typedef struct gw_entitlement {
	const gw_policy_cfg *pol;
	int scope;
	const gw_strlist *tables;   /* the policy's, or the grant's (owned below); NULL: no allow-list */
	gw_strlist grant_tables;
	int64_t grant_id;           /* 0: standing */
	int64_t expires_at;
} gw_entitlement;

typedef struct gw_pctx {
	const gw_config *cfg;
	gw_grants *grants;
	char identity[128];
	char groups[512];
	char connection[128];
	gw_entitlement *ents;
	size_t nents;
	uint64_t gen;               /* grants generation the entitlements were built from */
	bool read_only;             /* no entitlement above read: default_transaction_read_only = on */
	bool has_tables;            /* some entitlement has an allow-list: search_path may not change */
	long max_rows;              /* strictest max_rows guardrail; 0: none */
	gw_map fn_read;             /* function name → (void*)1 read-only, (void*)2 not */
	gw_map rel_schema;          /* unqualified relation → strdup'd schema ("" unknown) */
	gw_map prepared;            /* statement name → gw_sqlc* (protocol and SQL PREPARE) */
	gw_policy_stats *stats;     /* the worker's */
	gw_catcache *shared;        /* the connection's, or NULL */
	char *path_key;             /* the startup search_path: the shared cache's key prefix */
	bool path_changed;          /* search_path was set in this session: the shared cache no longer applies */
	bool no_lookup;             /* decide on what is known: unknown functions/relations fail closed */
	char nonce[24];             /* a random tag every row of a lookup answer carries (set by the session) */
	/* What a statement name means now, including names the server has not confirmed yet (the session's). */
	gw_sqlc *(*named)(void *ud, const char *name);
	void *named_ud;
} gw_pctx;

enum gw_verdict { GW_DECIDE_ALLOW, GW_DECIDE_DENY, GW_DECIDE_REVIEW, GW_DECIDE_LOOKUP };

typedef struct gw_decision {
	enum gw_verdict verdict;
	int cls;                    /* the message's highest class */
	const gw_entitlement *by;   /* ALLOW / REVIEW: the entitlement that allows it */
	int64_t review;             /* a refusal naming review #review (0: none) */
	char sqlstate[6];
	char rule[128];             /* policy or guardrail name */
	char message[300];
	char detail[600];
	char hint[400];
} gw_decision;

void gw_pctx_init(gw_pctx *p, const gw_config *cfg, gw_grants *grants, const char *identity,
	const char *groups, const char *connection);
/* Share catalog facts with the connection's other sessions (search_path: the startup value, or NULL). */
void gw_pctx_share(gw_pctx *p, gw_catcache *shared, const char *search_path);
/* An allowed message ran: a search_path change or a reset makes the known catalog facts stale. */
void gw_pctx_ran(gw_pctx *p, const gw_sqlc *q);
void gw_pctx_free(gw_pctx *p);
/* Rebuild the entitlements when the grants changed. True when read_only changed. */
bool gw_pctx_refresh(gw_pctx *p, int64_t now);
/* A grant this session relies on that is no longer in force: its id, else 0. */
int64_t gw_pctx_lost_grant(gw_pctx *p, int64_t now, bool *expired);

/*
 * Decide one message: a simple Query's text (q may hold several statements),
 * a Parse's text, or (q == NULL) a FunctionCall. prepared lookups (EXECUTE,
 * Bind) go through p->prepared.
 */
void gw_policy_decide(gw_pctx *p, const gw_sqlc *q, int64_t now, gw_decision *d);
/* The catalog query answering what the last LOOKUP needs, NUL-terminated into out. */
void gw_policy_lookup_sql(gw_pctx *p, const gw_sqlc *q, gw_buf *out);
/* One row of that query's answer (text columns; NULL for SQL NULL). */
void gw_policy_lookup_row(gw_pctx *p, char *const *cols, int ncols);
/* After the lookup query finished: names still unanswered are settled as unknown. */
void gw_policy_lookup_done(gw_pctx *p, const gw_sqlc *q);

/* Remember / forget a prepared statement (protocol Parse or SQL PREPARE). */
void gw_pctx_prepare(gw_pctx *p, const char *name, gw_sqlc *q);
gw_sqlc *gw_pctx_prepared(gw_pctx *p, const char *name);
void gw_pctx_deallocate(gw_pctx *p, const char *name);
void gw_pctx_deallocate_all(gw_pctx *p);

#endif
