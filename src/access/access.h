/*
 * Access: just-in-time requests, their approvals, the grants they produce,
 * per-statement reviews, and the webhook that tells people something waits.
 *
 * Owns the rules (SPEC "Just-in-time, scoped access"):
 *   - which jit policy a request falls under, how long it may last, and the
 *     explanation when none fits;
 *   - who may approve or deny a request or a review: an admin (admins:) or
 *     an approver of the policy (approval.approvers; none listed: admins
 *     only) -- never the identity that asked or whose statement it is, never
 *     an identity of kind agent, never the bootstrap admin_token (decisions
 *     must be attributable to a named identity); each approver counts once;
 *   - who may revoke a grant: an admin (the admin_token too), or the grant's
 *     own identity giving it up;
 *   - the writes of requests, grants and reviews to the store, and mirroring
 *     every committed grant or revocation into gw->grants (sessions watch its
 *     generation);
 *   - the notifier: one thread with a bounded queue that POSTs JSON to
 *     notify.webhook for each new pending request or review, never blocking
 *     the caller.
 *
 * Callers: admin/ (HTTP API, on the HTTP thread) and session/ (reviews, on a
 * worker). Everything here is thread-safe. An actor of NULL means the
 * bootstrap admin_token (no named identity).
 */
#ifndef GW_ACCESS_ACCESS_H
#define GW_ACCESS_ACCESS_H

#include "core/config.h"
#include "gateway/gateway.h"
#include "identity/identity.h"
#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results of the HTTP-facing calls; each maps to one HTTP status. */
enum gw_access_rc {
	GW_ACCESS_OK = 0,
	GW_ACCESS_BAD = -1,        /* 400: malformed input */
	GW_ACCESS_FORBIDDEN = -2,  /* 403: not allowed (err says why) */
	GW_ACCESS_NOT_FOUND = -3,  /* 404 */
	GW_ACCESS_CONFLICT = -4,   /* 409: already decided / revoked / counted */
	GW_ACCESS_STORE = -5,      /* 503: the state store failed */
};

/*
 * Copy s[0..len) into out (capacity cap, always NUL-terminated) as valid
 * UTF-8: invalid bytes and NULs become '?', and a cut never splits a
 * character. Returns the bytes written. (Statements arrive in any client
 * encoding; JSON needs UTF-8.)
 */
size_t gw_access_clean_text(const char *s, size_t len, char *out, size_t cap);

/* "read", "write", "ddl", "admin" (or "?"), and back (-1 when unknown). */
const char *gw_access_scope_str(int scope);
int gw_access_scope_parse(const char *s);

/* ---- pure rules (no store, no gateway; unit-tested) ---- */

/* Does id match one of list's group:G / identity:N entries? */
bool gw_access_principal_in(const gw_identity *id, const gw_strlist *list);

/*
 * Is every table of the comma-separated list tables ("schema.table" or
 * "schema.*") inside the allow-list? "schema.*" in allow covers any table of
 * that schema; an asked "schema.*" needs "schema.*" in allow. On false, the
 * first table not covered is copied into missing (when non-NULL, cap bytes).
 */
bool gw_access_tables_covered(const gw_strlist *allow, const char *tables, char *missing, size_t cap);

/*
 * Is tables a well-formed comma-separated list of schema.table / schema.*
 * names (no spaces, one dot each, at most 1023 bytes)? "" is well-formed.
 */
bool gw_access_tables_ok(const char *tables);

/*
 * The jit policy a request by id for scope on connection (and tables, a
 * comma-separated list, "" for none) falls under: a policy with access: jit
 * whose who: matches id, whose connections: include connection, whose scope
 * is at least scope and whose tables: (when it has any) cover every asked
 * table. Several fit: one without approval first, then the fewest required
 * approvals, then config order. None fits: NULL, and why explains each
 * policy that names the identity or the connection and why it did not fit.
 */
const gw_policy_cfg *gw_access_match(const gw_config *cfg, const gw_identity *id, const char *connection,
	int scope, const char *tables, char *why, size_t whylen);

/*
 * May actor approve or deny something under pol (NULL: the policy is gone;
 * only admins remain) that belongs to owner (the requester, or the identity
 * whose statement it is)? Returns GW_ACCESS_OK, or GW_ACCESS_FORBIDDEN with
 * the reason in why. actor NULL is the bootstrap admin_token: refused.
 */
int gw_access_may_decide(const gw_config *cfg, const gw_policy_cfg *pol, const gw_identity *actor,
	const char *owner, char *why, size_t whylen);

/* May actor see a request or review of owner under pol (own, admin, or an approver of pol)? */
bool gw_access_may_view(const gw_config *cfg, const gw_policy_cfg *pol, const gw_identity *actor,
	const char *owner);

/* Is actor an admin (the bootstrap admin_token is)? */
bool gw_access_is_admin(const gw_config *cfg, const gw_identity *actor);

/* ---- requests and grants (store + registry) ---- */

typedef struct gw_access_ask {
	const char *connection;
	int scope;                 /* 0 read .. 3 admin */
	const char *tables;        /* comma-separated, or NULL / "": the policy's allow-list */
	int64_t duration_s;        /* 0: the policy's max_duration */
	const char *reason;
} gw_access_ask;

/*
 * A request by requester (never NULL: the admin_token cannot ask). Without
 * approval: in the policy the grant is made at once (*req state granted,
 * *grant filled, gw->grants updated); else *req is pending. *capped tells
 * whether the duration was cut to max_duration. Returns GW_ACCESS_OK,
 * GW_ACCESS_BAD (input), GW_ACCESS_FORBIDDEN (no policy fits: err explains),
 * GW_ACCESS_STORE.
 */
int gw_access_request(gw_gateway *gw, const gw_identity *requester, const gw_access_ask *ask, int64_t now,
	gw_request_rec *req, gw_grant_rec *grant, bool *capped, char *err, size_t errlen);

/*
 * Approve (approve true) or deny request id as actor. An approval that
 * reaches the policy's required count makes the grant (expires now +
 * duration); any one denial ends the request. *req is the request after the
 * decision; *grant is filled when it was granted now (grant->id 0
 * otherwise). Returns GW_ACCESS_OK, _FORBIDDEN (who-rules), _NOT_FOUND,
 * _CONFLICT (decided already, or this approver already counted), _STORE.
 */
int gw_access_decide(gw_gateway *gw, const gw_identity *actor, int64_t id, bool approve, const char *comment,
	int64_t now, gw_request_rec *req, gw_grant_rec *grant, char *err, size_t errlen);

/*
 * Revoke grant id as actor (an admin, the admin_token, or the grant's own
 * identity). The store records revoked_at/revoked_by first, then gw->grants
 * drops it, so sessions relying on it end within a second. *out is the
 * revoked grant. Returns GW_ACCESS_OK, _FORBIDDEN, _NOT_FOUND, _CONFLICT
 * (already revoked or expired), _STORE.
 */
int gw_access_revoke(gw_gateway *gw, const gw_identity *actor, int64_t id, int64_t now, gw_grant_rec *out,
	char *err, size_t errlen);

/* ---- per-statement reviews ---- */

/*
 * Called by a session when a statement of class cls needs a review under
 * policy. Looks the exact statement (SHA-256 of sql[0..len)) up for id on
 * connection: an approved review is marked used and the statement may run
 * once (returns 0, *review_id set); otherwise the pending review (created
 * now, and then announced on the webhook, unless one already waits) is in
 * *review_id and 1 is returned; -2: the store failed (fail closed).
 */
int gw_access_review_check(gw_gateway *gw, const gw_identity *id, const char *connection, const char *policy,
	int cls, const char *sql, size_t len, const char *session_id, int64_t *review_id);

/*
 * Approve or deny review id as actor (the who-rules of gw_access_decide,
 * under the review's policy). *out is the review after the decision.
 * Returns GW_ACCESS_OK, _FORBIDDEN, _NOT_FOUND, _CONFLICT, _STORE.
 */
int gw_access_review_decide(gw_gateway *gw, const gw_identity *actor, int64_t id, bool approve,
	const char *comment, int64_t now, gw_review_rec *out, char *err, size_t errlen);

/* ---- webhook ---- */

/*
 * Start the notifier when cfg->notify_webhook is set (NULL otherwise, and
 * NULL is then a valid notifier that drops everything). Events are queued
 * (at most 256 waiting; beyond that the newest is dropped with a warning)
 * and POSTed by one thread: 5 s timeout, up to 4 attempts with 1/2/4 s
 * backoff on network errors, 429 and 5xx. The URL is never logged (it may
 * hold a secret); tokens are never sent.
 */
gw_notifier *gw_notifier_start(const gw_config *cfg);
/* Stop the thread (an attempt in flight is abandoned); NULL is a no-op. */
void gw_notifier_stop(gw_notifier *n);
/* Queue the webhook event for a new pending request / review. Never blocks on the network. */
void gw_notify_request(gw_notifier *n, const gw_request_rec *req);
void gw_notify_review(gw_notifier *n, const gw_review_rec *rev);

#endif
