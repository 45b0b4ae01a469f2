/*
 * gw_store — the state store (SQLite in WAL mode).
 *
 * Owns: identities, API tokens, access requests, grants and statement
 * reviews on disk, the schema and its migrations.
 * One connection guarded by a mutex; every call is short (an indexed
 * lookup or a single-row write), so workers and the HTTP thread share it.
 * Token secrets are never stored: only SHA-256 of the secret part.
 */
#ifndef GW_STATE_STORE_H
#define GW_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_store gw_store;

typedef struct gw_identity_rec {
	char name[128];
	char kind[16];        /* agent | human | relay */
	char groups[512];     /* comma-separated */
	bool disabled;
	int64_t created_at;   /* unix seconds */
} gw_identity_rec;

typedef struct gw_token_rec {
	char id[32];
	char identity[128];
	uint8_t hash[32];
	int64_t created_at, expires_at, revoked_at, last_used_at; /* 0: none */
} gw_token_rec;

gw_store *gw_store_open(const char *path, char *err, size_t errlen);
void gw_store_close(gw_store *st);

/* 0 ok; -1 exists (identity_add) / not found; -2 store error (err set). */
int gw_store_identity_add(gw_store *st, const gw_identity_rec *rec, char *err, size_t errlen);
int gw_store_identity_get(gw_store *st, const char *name, gw_identity_rec *out);
int gw_store_identity_set_disabled(gw_store *st, const char *name, bool disabled);
/* Replace an identity's groups (comma-separated): an issuer's groups claim on each login. 0, -1, -2. */
int gw_store_identity_set_groups(gw_store *st, const char *name, const char *groups);
/* Calls fn for each identity in name order. Returns count or -2. */
int gw_store_identity_list(gw_store *st, void (*fn)(const gw_identity_rec *, void *), void *arg);

int gw_store_token_add(gw_store *st, const gw_token_rec *rec, char *err, size_t errlen);
int gw_store_token_get(gw_store *st, const char *id, gw_token_rec *out);
int gw_store_token_revoke(gw_store *st, const char *id, int64_t when);
int gw_store_token_list(gw_store *st, void (*fn)(const gw_token_rec *, void *), void *arg);

/* ---- just-in-time access (issue 3) ---- */

typedef struct gw_request_rec {
	int64_t id;
	char identity[128];      /* who asked */
	char connection[128];
	char policy[128];        /* the jit policy the request was matched to */
	int scope;               /* 0 read .. 3 admin */
	char tables[1024];       /* comma-separated allow-list asked for; "": the policy's */
	int64_t duration_s;      /* asked for, already capped at the policy's max_duration */
	char reason[512];
	char state[16];          /* pending | granted | denied */
	int required;            /* approvals needed (0: granted automatically) */
	char approvals[1024];    /* comma-separated identities that approved, in order */
	char decided_by[128];    /* who denied (state denied) */
	char comment[512];
	int64_t created_at, decided_at;
	int64_t grant_id;        /* state granted */
} gw_request_rec;

typedef struct gw_grant_rec {
	int64_t id;
	int64_t request_id;
	char identity[128];
	char connection[128];
	char policy[128];
	int scope;
	char tables[1024];       /* "": the policy's */
	int64_t granted_at, expires_at, revoked_at;   /* unix seconds; revoked_at 0: not revoked */
	char revoked_by[128];
} gw_grant_rec;

typedef struct gw_review_rec {
	int64_t id;
	char identity[128];
	char connection[128];
	char policy[128];
	int cls;                 /* statement class */
	char statement[4096];    /* the text, cut at 4095 bytes for display; matching uses the hash */
	uint8_t hash[32];        /* SHA-256 of the whole statement text */
	char session[40];
	char state[16];          /* pending | approved | denied | used */
	char decided_by[128];
	char comment[512];
	int64_t created_at, decided_at, used_at;
} gw_review_rec;

/* Requests. add sets rec->id. get/update: 0 ok, -1 not found, -2 store error. */
int gw_store_request_add(gw_store *st, gw_request_rec *rec, char *err, size_t errlen);
int gw_store_request_get(gw_store *st, int64_t id, gw_request_rec *out);
int gw_store_request_update(gw_store *st, const gw_request_rec *rec);
/*
 * A request granted at once (its policy needs no approval): the request and
 * its grant are inserted in one transaction; rec->id, rec->grant_id,
 * grant->id and grant->request_id are set. Returns 0 or -2 (err set).
 */
int gw_store_request_add_granted(gw_store *st, gw_request_rec *rec, gw_grant_rec *grant, char *err, size_t errlen);
/*
 * Record a decision on a pending request, in one transaction. rec is the
 * request as it should be after the decision (state, approvals, decided_by,
 * comment, decided_at). It is written only while the stored row is still
 * pending with the approvals seen_approvals (what the caller read before
 * deciding), so two concurrent decisions never overwrite each other.
 * grant non-NULL: inserted in the same transaction (grant->id,
 * grant->request_id and rec->grant_id set). Returns 0; -1 not found; -3 the
 * row changed meanwhile (read it again); -2 store error.
 */
int gw_store_request_decide(gw_store *st, gw_request_rec *rec, const char *seen_approvals, gw_grant_rec *grant);
/* state NULL: all; newest first; at most limit rows. Returns count or -2. */
int gw_store_request_list(gw_store *st, const char *state, int limit, void (*fn)(const gw_request_rec *, void *), void *arg);

/* Grants. add sets rec->id. */
int gw_store_grant_add(gw_store *st, gw_grant_rec *rec, char *err, size_t errlen);
int gw_store_grant_get(gw_store *st, int64_t id, gw_grant_rec *out);
int gw_store_grant_revoke(gw_store *st, int64_t id, int64_t when, const char *by);
/* active_at > 0: only grants not revoked and expiring after active_at. Returns count or -2. */
int gw_store_grant_list(gw_store *st, int64_t active_at, void (*fn)(const gw_grant_rec *, void *), void *arg);

/*
 * Reviews. gw_store_review_check: is this exact statement (by hash) from this
 * identity on this connection approved? 0: an approved review was found and
 * is now used (run the statement once; *id set); 1: not approved: *id is the
 * pending review (created now unless one is already pending for the same
 * statement; *created tells); -2 store error.
 */
int gw_store_review_check(gw_store *st, const gw_review_rec *tmpl, int64_t *id, bool *created);
/* (tmpl: identity, connection, policy, cls, statement, hash, session, and created_at = now, also used_at of a used review.) */
int gw_store_review_get(gw_store *st, int64_t id, gw_review_rec *out);
int gw_store_review_update(gw_store *st, const gw_review_rec *rec);
/* Record a decision (state, decided_by, comment, decided_at) only while the review is still pending: 0; -1 not found; -3 not pending; -2. */
int gw_store_review_decide(gw_store *st, const gw_review_rec *rec);
int gw_store_review_list(gw_store *st, const char *state, int limit, void (*fn)(const gw_review_rec *, void *), void *arg);

#endif
