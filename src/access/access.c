/*
 * Just-in-time requests, approvals, grants and reviews; see access.h.
 * The webhook notifier lives in notify.c.
 */
#include "access/access.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/util.h"
#include "net/tls.h"
#include "policy/grants.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const scope_names[] = {"read", "write", "ddl", "admin"};

const char *gw_access_scope_str(int scope)
{
	return scope >= 0 && scope < 4 ? scope_names[scope] : "?";
}

int gw_access_scope_parse(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (!strcmp(s, scope_names[i]))
			return i;
	return -1;
}

/* Append printf output to buf (NUL-terminated, capacity cap), silently cutting at the end. */
static void appendf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
	size_t l = strnlen(buf, cap);
	if (l + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + l, cap - l, fmt, ap);
	va_end(ap);
}

size_t gw_access_clean_text(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	if (!cap)
		return 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		bool valid = n > 0 && i + n <= len && c != 0;
		for (size_t k = 1; valid && k < n; k++)
			valid = ((unsigned char)s[i + k] & 0xC0) == 0x80;
		/* Overlong forms and surrogates are not UTF-8 either. */
		if (valid && n == 2)
			valid = c >= 0xC2;
		else if (valid && n == 3) {
			unsigned char d = (unsigned char)s[i + 1];
			valid = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d >= 0xA0);
		} else if (valid && n == 4) {
			unsigned char d = (unsigned char)s[i + 1];
			valid = c <= 0xF4 && !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d >= 0x90);
		}
		if (!valid)
			n = 1;
		if (o + n >= cap)
			break;
		if (valid)
			memcpy(out + o, s + i, n);
		else
			out[o] = '?';
		o += n;
		i += n;
	}
	out[o] = 0;
	return o;
}

/* ---- pure rules ---- */

bool gw_access_principal_in(const gw_identity *id, const gw_strlist *list)
{
	for (size_t i = 0; id && i < list->n; i++) {
		const char *p = list->v[i];
		if (!strncmp(p, "identity:", 9) && !strcmp(p + 9, id->name))
			return true;
		if (!strncmp(p, "group:", 6) && gw_identity_in_group(id, p + 6))
			return true;
	}
	return false;
}

/* Is one name (schema.table or schema.*, len bytes) covered by allow? */
static bool table_covered(const gw_strlist *allow, const char *t, size_t len)
{
	const char *dot = memchr(t, '.', len);
	size_t schema_len = dot ? (size_t)(dot - t) : len;
	for (size_t i = 0; i < allow->n; i++) {
		const char *a = allow->v[i];
		if (strlen(a) == len && !memcmp(a, t, len))
			return true;
		if (dot && !strncmp(a, t, schema_len) && !strcmp(a + schema_len, ".*"))
			return true;
	}
	return false;
}

bool gw_access_tables_covered(const gw_strlist *allow, const char *tables, char *missing, size_t cap)
{
	const char *p = tables ? tables : "";
	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l && !table_covered(allow, p, l)) {
			if (missing && cap)
				snprintf(missing, cap, "%.*s", (int)l, p);
			return false;
		}
		p = e ? e + 1 : p + l;
	}
	return true;
}

/* A name part: letters, digits, '_' and '$' (PostgreSQL identifiers as stored), 1..63 bytes. */
static bool ident_ok(const char *s, size_t n)
{
	if (!n || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '_' &&
			c != '$' && c < 0x80)
			return false;
	}
	return true;
}

bool gw_access_tables_ok(const char *tables)
{
	if (!tables)
		return true;
	if (strlen(tables) >= sizeof(((gw_request_rec *)0)->tables))
		return false;
	const char *p = tables;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		const char *dot = memchr(p, '.', l);
		if (!dot || !ident_ok(p, (size_t)(dot - p)))
			return false;
		size_t rest = l - (size_t)(dot - p) - 1;
		if (!(rest == 1 && dot[1] == '*') && !ident_ok(dot + 1, rest))
			return false;
		if (e && !e[1])
			return false;   /* a trailing comma */
		p = e ? e + 1 : p + l;
	}
	return true;
}

static void list_str(const gw_strlist *l, char *out, size_t cap)
{
	out[0] = 0;
	for (size_t i = 0; i < l->n; i++)
		appendf(out, cap, "%s%s", i ? ", " : "", l->v[i]);
}

const gw_policy_cfg *gw_access_match(const gw_config *cfg, const gw_identity *id, const char *connection,
	int scope, const char *tables, char *why, size_t whylen)
{
	const gw_policy_cfg *best = NULL;
	char reasons[1200] = "";
	int considered = 0;
	for (size_t i = 0; i < cfg->n_policies; i++) {
		const gw_policy_cfg *p = &cfg->policies[i];
		bool who = gw_access_principal_in(id, &p->who), conn = gw_strlist_has(&p->connections, connection);
		if (!who && !conn)
			continue;
		char reason[300] = "", missing[200];
		if (!who) {
			char l[200];
			list_str(&p->who, l, sizeof(l));
			snprintf(reason, sizeof(reason), "not for identity '%s' (who: %s)", id->name, l);
		} else if (!conn) {
			snprintf(reason, sizeof(reason), "not for connection '%s'", connection);
		} else if (!p->jit) {
			snprintf(reason, sizeof(reason), "standing access: already in force (within its window), nothing to request");
		} else if (p->scope < scope) {
			snprintf(reason, sizeof(reason), "allows %s at most, not %s", gw_access_scope_str(p->scope),
				gw_access_scope_str(scope));
		} else if (p->has_tables && !gw_access_tables_covered(&p->tables, tables, missing, sizeof(missing))) {
			char l[200];
			list_str(&p->tables, l, sizeof(l));
			snprintf(reason, sizeof(reason), "table %s is not in its tables (%s)", missing, l);
		}
		if (*reason) {
			appendf(reasons, sizeof(reasons), "%s policy '%s': %s", considered++ ? ";" : "", p->name, reason);
			continue;
		}
		int req = p->has_approval ? p->required : 0, best_req = best && best->has_approval ? best->required : 0;
		if (!best || req < best_req)
			best = p;
	}
	if (best)
		return best;
	if (!cfg->has_policies)
		snprintf(why, whylen, "the gateway has no policies: every identity may already run every statement, "
			"so there is nothing to request");
	else if (!considered)
		snprintf(why, whylen, "no policy names identity '%s' or connection '%s'; ask an administrator to add a "
			"policy with access: jit to the gateway's policies:", id->name, connection);
	else
		snprintf(why, whylen, "no jit policy lets identity '%s' request %s access to connection '%s'%s%s:%s",
			id->name, gw_access_scope_str(scope), connection, tables && *tables ? " on " : "",
			tables && *tables ? tables : "", reasons);
	return NULL;
}

bool gw_access_is_admin(const gw_config *cfg, const gw_identity *actor)
{
	return !actor || gw_identity_is_admin(actor, cfg->admins, cfg->n_admins);
}

/* Is actor an approver of pol (its approval.approvers; none listed means admins only)? */
static bool is_approver(const gw_policy_cfg *pol, const gw_identity *actor)
{
	return actor && pol && pol->has_approval && gw_access_principal_in(actor, &pol->approvers);
}

int gw_access_may_decide(const gw_config *cfg, const gw_policy_cfg *pol, const gw_identity *actor,
	const char *owner, char *why, size_t whylen)
{
	if (!actor) {
		snprintf(why, whylen, "the bootstrap admin_token cannot approve or deny: decisions must be attributable "
			"to a named identity; use the token of an admin or approver identity");
		return GW_ACCESS_FORBIDDEN;
	}
	if (strcmp(actor->kind, "human")) {
		snprintf(why, whylen, "identity '%s' is of kind %s; only people (kind human) approve or deny, "
			"agents never do", actor->name, *actor->kind ? actor->kind : "unknown");
		return GW_ACCESS_FORBIDDEN;
	}
	if (owner && !strcmp(owner, actor->name)) {
		snprintf(why, whylen, "identity '%s' cannot approve or deny its own request or statement; another "
			"approver must", actor->name);
		return GW_ACCESS_FORBIDDEN;
	}
	if (gw_access_is_admin(cfg, actor) || is_approver(pol, actor))
		return GW_ACCESS_OK;
	char l[300] = "admins only";
	if (pol && pol->has_approval && pol->approvers.n)
		list_str(&pol->approvers, l, sizeof(l));
	if (pol)
		snprintf(why, whylen, "identity '%s' is neither an admin nor an approver of policy '%s' (approvers: %s)",
			actor->name, pol->name, l);
	else
		snprintf(why, whylen, "identity '%s' is not an admin, and the policy this was made under is no longer "
			"configured (only admins decide)", actor->name);
	return GW_ACCESS_FORBIDDEN;
}

bool gw_access_may_view(const gw_config *cfg, const gw_policy_cfg *pol, const gw_identity *actor,
	const char *owner)
{
	if (gw_access_is_admin(cfg, actor))
		return true;
	return (owner && !strcmp(owner, actor->name)) || is_approver(pol, actor);
}

/* ---- requests and grants ---- */


static int csv_count(const char *list)
{
	if (!*list)
		return 0;
	int n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

int gw_access_request(gw_gateway *gw, const gw_identity *requester, const gw_access_ask *ask, int64_t now,
	gw_request_rec *req, gw_grant_rec *grant, bool *capped, char *err, size_t errlen)
{
	const gw_config *cfg = gw->cfg;
	memset(req, 0, sizeof(*req));
	memset(grant, 0, sizeof(*grant));
	*capped = false;
	if (!requester) {
		snprintf(err, errlen, "the bootstrap admin_token names no identity and cannot request access; use the "
			"token of the identity that needs it");
		return GW_ACCESS_FORBIDDEN;
	}
	if (!ask->connection || !*ask->connection) {
		snprintf(err, errlen, "name the connection to request access to");
		return GW_ACCESS_BAD;
	}
	if (!gw_config_conn(cfg, ask->connection)) {
		snprintf(err, errlen, "unknown connection '%.128s'", ask->connection);
		return GW_ACCESS_BAD;
	}
	if (ask->scope < 0 || ask->scope > 3) {
		snprintf(err, errlen, "scope must be read, write, ddl or admin");
		return GW_ACCESS_BAD;
	}
	const char *tables = ask->tables ? ask->tables : "";
	if (!gw_access_tables_ok(tables)) {
		snprintf(err, errlen, "tables must be a list of schema.table or schema.* names");
		return GW_ACCESS_BAD;
	}
	if (!ask->reason || !*ask->reason || strlen(ask->reason) >= sizeof(req->reason)) {
		snprintf(err, errlen, "give a reason (1-%zu bytes): approvers and the record need it", sizeof(req->reason) - 1);
		return GW_ACCESS_BAD;
	}
	if (ask->duration_s < 0) {
		snprintf(err, errlen, "the duration must be positive, such as 30m or 2h");
		return GW_ACCESS_BAD;
	}
	const gw_policy_cfg *pol = gw_access_match(cfg, requester, ask->connection, ask->scope, tables, err, errlen);
	if (!pol)
		return GW_ACCESS_FORBIDDEN;
	int64_t max_s = (int64_t)(pol->max_duration_us / 1000000);
	int64_t dur = ask->duration_s ? ask->duration_s : max_s;
	if (dur > max_s) {
		dur = max_s;
		*capped = true;
	}
	snprintf(req->identity, sizeof(req->identity), "%s", requester->name);
	snprintf(req->connection, sizeof(req->connection), "%s", ask->connection);
	snprintf(req->policy, sizeof(req->policy), "%s", pol->name);
	req->scope = ask->scope;
	snprintf(req->tables, sizeof(req->tables), "%s", tables);
	req->duration_s = dur;
	snprintf(req->reason, sizeof(req->reason), "%s", ask->reason);
	req->created_at = now;
	char serr[256];
	if (pol->has_approval) {
		snprintf(req->state, sizeof(req->state), "pending");
		req->required = pol->required;
		if (gw_store_request_add(gw->store, req, serr, sizeof(serr)) != 0) {
			snprintf(err, errlen, "the state store cannot record the request");
			gw_error("access: request by %s not recorded: %s", requester->name, serr);
			return GW_ACCESS_STORE;
		}
		gw_info("access: request #%lld by %s: %s on %s for %llds (policy %s), pending %d approval(s)",
			(long long)req->id, req->identity, gw_access_scope_str(req->scope), req->connection,
			(long long)dur, pol->name, req->required);
		gw_notify_request(gw->notifier, req);
		return GW_ACCESS_OK;
	}
	snprintf(req->state, sizeof(req->state), "granted");
	req->decided_at = now;
	snprintf(grant->identity, sizeof(grant->identity), "%s", req->identity);
	snprintf(grant->connection, sizeof(grant->connection), "%s", req->connection);
	snprintf(grant->policy, sizeof(grant->policy), "%s", req->policy);
	grant->scope = req->scope;
	snprintf(grant->tables, sizeof(grant->tables), "%s", req->tables);
	grant->granted_at = now;
	grant->expires_at = now + dur;
	if (gw_store_request_add_granted(gw->store, req, grant, serr, sizeof(serr)) != 0) {
		snprintf(err, errlen, "the state store cannot record the grant");
		gw_error("access: request by %s not recorded: %s", requester->name, serr);
		return GW_ACCESS_STORE;
	}
	if (gw->grants)
		gw_grants_put(gw->grants, grant);
	gw_info("access: request #%lld by %s granted at once (policy %s): grant #%lld, %s on %s for %llds",
		(long long)req->id, req->identity, pol->name, (long long)grant->id, gw_access_scope_str(grant->scope),
		grant->connection, (long long)dur);
	return GW_ACCESS_OK;
}

/* Append "who: comment" to the request's comment field. */
static void add_comment(char *field, size_t cap, const char *who, const char *comment)
{
	if (!comment || !*comment)
		return;
	char clean[512];
	gw_access_clean_text(comment, strlen(comment), clean, sizeof(clean));
	appendf(field, cap, "%s%s: %s", *field ? "; " : "", who, clean);
}

int gw_access_decide(gw_gateway *gw, const gw_identity *actor, int64_t id, bool approve, const char *comment,
	int64_t now, gw_request_rec *req, gw_grant_rec *grant, char *err, size_t errlen)
{
	const gw_config *cfg = gw->cfg;
	memset(grant, 0, sizeof(*grant));
	int rc = gw_store_request_get(gw->store, id, req);
	if (rc == -1) {
		snprintf(err, errlen, "no request #%lld", (long long)id);
		return GW_ACCESS_NOT_FOUND;
	}
	if (rc) {
		snprintf(err, errlen, "the state store cannot answer");
		return GW_ACCESS_STORE;
	}
	const gw_policy_cfg *pol = gw_config_policy(cfg, req->policy);
	/* Who first: a stranger learns nothing more about the request than that it exists. */
	rc = gw_access_may_decide(cfg, pol, actor, req->identity, err, errlen);
	if (rc)
		return rc;
	if (strcmp(req->state, "pending")) {
		snprintf(err, errlen, "request #%lld was already %s%s%s", (long long)id, req->state,
			*req->decided_by ? " by " : "", req->decided_by);
		return GW_ACCESS_CONFLICT;
	}
	char seen[sizeof(req->approvals)];
	memcpy(seen, req->approvals, sizeof(seen));
	if (!approve) {
		snprintf(req->state, sizeof(req->state), "denied");
		snprintf(req->decided_by, sizeof(req->decided_by), "%s", actor->name);
		req->decided_at = now;
		add_comment(req->comment, sizeof(req->comment), actor->name, comment);
	} else {
		if (gw_csv_has(req->approvals, actor->name)) {
			snprintf(err, errlen, "identity '%s' has already approved request #%lld (%d of %d approvals); each "
				"approver counts once", actor->name, (long long)id, csv_count(req->approvals), req->required);
			return GW_ACCESS_CONFLICT;
		}
		if (!pol || !pol->jit) {
			snprintf(err, errlen, "policy '%s' is no longer a jit policy in the configuration; request #%lld can "
				"only be denied", req->policy, (long long)id);
			return GW_ACCESS_CONFLICT;
		}
		if (pol->scope < req->scope || (pol->has_tables && !gw_access_tables_covered(&pol->tables, req->tables, NULL, 0))) {
			snprintf(err, errlen, "policy '%s' no longer allows what request #%lld asks for; it can only be denied",
				pol->name, (long long)id);
			return GW_ACCESS_CONFLICT;
		}
		if (strlen(req->approvals) + strlen(actor->name) + 2 > sizeof(req->approvals)) {
			snprintf(err, errlen, "request #%lld cannot record more approvals", (long long)id);
			return GW_ACCESS_CONFLICT;
		}
		appendf(req->approvals, sizeof(req->approvals), "%s%s", *req->approvals ? "," : "", actor->name);
		add_comment(req->comment, sizeof(req->comment), actor->name, comment);
		if (csv_count(req->approvals) >= req->required) {
			int64_t dur = req->duration_s, max_s = (int64_t)(pol->max_duration_us / 1000000);
			if (dur > max_s)
				dur = max_s;
			snprintf(req->state, sizeof(req->state), "granted");
			req->decided_at = now;
			snprintf(grant->identity, sizeof(grant->identity), "%s", req->identity);
			snprintf(grant->connection, sizeof(grant->connection), "%s", req->connection);
			snprintf(grant->policy, sizeof(grant->policy), "%s", req->policy);
			grant->scope = req->scope;
			snprintf(grant->tables, sizeof(grant->tables), "%s", req->tables);
			grant->granted_at = now;
			grant->expires_at = now + dur;
		}
	}
	bool granting = !strcmp(req->state, "granted");
	rc = gw_store_request_decide(gw->store, req, seen, granting ? grant : NULL);
	if (rc == -1) {
		snprintf(err, errlen, "no request #%lld", (long long)id);
		return GW_ACCESS_NOT_FOUND;
	}
	if (rc == -3) {
		snprintf(err, errlen, "request #%lld changed while this decision was made (another approver came first); "
			"look at it again", (long long)id);
		return GW_ACCESS_CONFLICT;
	}
	if (rc) {
		snprintf(err, errlen, "the state store cannot record the decision");
		return GW_ACCESS_STORE;
	}
	if (granting) {
		if (gw->grants)
			gw_grants_put(gw->grants, grant);
		char until[40];
		gw_format_ts((uint64_t)grant->expires_at * 1000000u, until, sizeof(until));
		gw_info("access: request #%lld granted (approvals %s): grant #%lld for %s, %s on %s until %s",
			(long long)id, req->approvals, (long long)grant->id, grant->identity,
			gw_access_scope_str(grant->scope), grant->connection, until);
	} else {
		gw_info("access: request #%lld %s by %s (%d of %d approvals)", (long long)id,
			approve ? "approved" : "denied", actor->name, csv_count(req->approvals), req->required);
	}
	return GW_ACCESS_OK;
}

int gw_access_revoke(gw_gateway *gw, const gw_identity *actor, int64_t id, int64_t now, gw_grant_rec *out,
	char *err, size_t errlen)
{
	int rc = gw_store_grant_get(gw->store, id, out);
	if (rc == -1) {
		snprintf(err, errlen, "no grant #%lld", (long long)id);
		return GW_ACCESS_NOT_FOUND;
	}
	if (rc) {
		snprintf(err, errlen, "the state store cannot answer");
		return GW_ACCESS_STORE;
	}
	if (!gw_access_is_admin(gw->cfg, actor) && strcmp(actor->name, out->identity)) {
		snprintf(err, errlen, "only an admin, or identity '%s' itself, may revoke grant #%lld", out->identity,
			(long long)id);
		return GW_ACCESS_FORBIDDEN;
	}
	if (out->revoked_at) {
		snprintf(err, errlen, "grant #%lld was already revoked%s%s", (long long)id, *out->revoked_by ? " by " : "",
			out->revoked_by);
		return GW_ACCESS_CONFLICT;
	}
	if (out->expires_at <= now) {
		snprintf(err, errlen, "grant #%lld has already expired", (long long)id);
		return GW_ACCESS_CONFLICT;
	}
	const char *by = actor ? actor->name : "admin_token";
	rc = gw_store_grant_revoke(gw->store, id, now, by);
	if (rc == -1) {
		snprintf(err, errlen, "grant #%lld was already revoked", (long long)id);
		return GW_ACCESS_CONFLICT;
	}
	if (rc) {
		snprintf(err, errlen, "the state store cannot record the revocation");
		return GW_ACCESS_STORE;
	}
	out->revoked_at = now;
	snprintf(out->revoked_by, sizeof(out->revoked_by), "%s", by);
	if (gw->grants)
		gw_grants_put(gw->grants, out);
	gw_info("access: grant #%lld (%s on %s) revoked by %s", (long long)id, out->identity, out->connection, by);
	return GW_ACCESS_OK;
}

/* ---- reviews ---- */

int gw_access_review_check(gw_gateway *gw, const gw_identity *id, const char *connection, const char *policy,
	int cls, const char *sql, size_t len, const char *session_id, int64_t *review_id)
{
	gw_review_rec *t = gw_xcalloc(1, sizeof(*t));
	snprintf(t->identity, sizeof(t->identity), "%s", id->name);
	snprintf(t->connection, sizeof(t->connection), "%s", connection);
	snprintf(t->policy, sizeof(t->policy), "%s", policy ? policy : "");
	t->cls = cls;
	gw_access_clean_text(sql, len, t->statement, sizeof(t->statement));
	gw_sha256(sql, len, t->hash);
	snprintf(t->session, sizeof(t->session), "%s", session_id ? session_id : "");
	snprintf(t->state, sizeof(t->state), "pending");
	t->created_at = gw_policy_now();
	bool created = false;
	int rc = gw_store_review_check(gw->store, t, review_id, &created);
	if (rc == 0) {
		gw_info("access: review #%lld used: %s runs the approved statement once on %s", (long long)*review_id,
			t->identity, t->connection);
	} else if (rc == 1 && created) {
		t->id = *review_id;
		gw_info("access: review #%lld created: a %s statement by %s on %s (policy %s) waits for approval",
			(long long)t->id, gw_access_scope_str(cls), t->identity, t->connection, t->policy);
		gw_notify_review(gw->notifier, t);
	} else if (rc < 0) {
		gw_error("access: the state store cannot check a review for %s", t->identity);
		rc = -2;
	}
	free(t);
	return rc;
}

int gw_access_review_decide(gw_gateway *gw, const gw_identity *actor, int64_t id, bool approve,
	const char *comment, int64_t now, gw_review_rec *out, char *err, size_t errlen)
{
	int rc = gw_store_review_get(gw->store, id, out);
	if (rc == -1) {
		snprintf(err, errlen, "no review #%lld", (long long)id);
		return GW_ACCESS_NOT_FOUND;
	}
	if (rc) {
		snprintf(err, errlen, "the state store cannot answer");
		return GW_ACCESS_STORE;
	}
	rc = gw_access_may_decide(gw->cfg, gw_config_policy(gw->cfg, out->policy), actor, out->identity, err, errlen);
	if (rc)
		return rc;
	if (strcmp(out->state, "pending")) {
		snprintf(err, errlen, "review #%lld was already %s%s%s", (long long)id, out->state,
			*out->decided_by ? " by " : "", out->decided_by);
		return GW_ACCESS_CONFLICT;
	}
	snprintf(out->state, sizeof(out->state), "%s", approve ? "approved" : "denied");
	snprintf(out->decided_by, sizeof(out->decided_by), "%s", actor->name);
	out->comment[0] = 0;
	if (comment)
		gw_access_clean_text(comment, strlen(comment), out->comment, sizeof(out->comment));
	out->decided_at = now;
	rc = gw_store_review_decide(gw->store, out);
	if (rc == -1) {
		snprintf(err, errlen, "no review #%lld", (long long)id);
		return GW_ACCESS_NOT_FOUND;
	}
	if (rc == -3) {
		snprintf(err, errlen, "review #%lld was decided by someone else meanwhile", (long long)id);
		return GW_ACCESS_CONFLICT;
	}
	if (rc) {
		snprintf(err, errlen, "the state store cannot record the decision");
		return GW_ACCESS_STORE;
	}
	gw_info("access: review #%lld %s by %s", (long long)id, out->state, actor->name);
	return GW_ACCESS_OK;
}
