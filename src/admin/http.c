/*
 * HTTP API on libmicrohttpd; see http.h.
 *
 * Routes (JSON; "admin" means bearer = admin_token or a token whose identity
 * is in admins:):
 *   GET    /healthz                         no auth
 *   GET    /metrics                         no auth (counts only)
 *   GET    /v1/identities                   admin
 *   POST   /v1/identities                   admin  {name, kind, groups}
 *   POST   /v1/identities/{name}/disable    admin  (also ends its sessions)
 *   POST   /v1/identities/{name}/enable     admin
 *   GET    /v1/tokens                       admin
 *   POST   /v1/tokens                       admin  {identity, ttl}
 *   DELETE /v1/tokens/{id}                  admin  (also ends its sessions)
 *   GET    /v1/sessions                     admin
 *   DELETE /v1/sessions/{id}                admin
 *
 * Just-in-time access ("any" means any identity with a token; the rules are
 * access/'s, the admin_token counts as an admin but names no identity):
 *   POST   /v1/requests                     any    {connection, scope, tables?, duration?, reason}
 *   GET    /v1/requests[?state=&limit=]     any    admins see all, approvers their policies', others their own
 *   GET    /v1/requests/{id}                any    (same visibility)
 *   POST   /v1/requests/{id}/approve|deny   approvers/admins, never the requester, an agent or the admin_token
 *   GET    /v1/grants[?active=true]         any    admins see all, others their own
 *   GET    /v1/grants/{id}                  any    (same visibility)
 *   DELETE /v1/grants/{id}                  admins (admin_token too) or the grant's own identity
 *   GET    /v1/reviews[?state=&limit=]      any    as requests
 *   GET    /v1/reviews/{id}                 any
 *   POST   /v1/reviews/{id}/approve|deny    as requests, under the review's policy
 *
 * The record (audit/read.c):
 *   GET    /v1/audit[?identity=&session=&since=&after=&limit=]
 *                                           any    admins read all of it, others only their own identity's
 *   GET    /v1/audit/verify                 admin  200 the chain holds, 409 broken, 500 unreadable
 * Errors: 400 bad input, 401 no/bad token, 403 not allowed (the reason in
 * "error"), 404, 409 already decided, 503 state store.
 */
#include "admin/http.h"
#include "audit/audit.h"
#include "policy/policy.h"
#include "relay/relay.h"
#include "access/access.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/util.h"
#include "identity/identity.h"
#include "identity/oidc.h"
#include "session/registry.h"
#include "session/session.h"
#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BODY 65536

struct gw_admin {
	gw_gateway *gw;
	struct MHD_Daemon *d;
};

typedef struct req {
	char *body;
	size_t len;
	bool too_big;
} req;

typedef struct reply {
	unsigned status;
	json_t *json;       /* stolen */
	char *text;         /* or plain text, owned */
	const char *ctype;
} reply;

static reply jerr(unsigned status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static reply jerr(unsigned status, const char *fmt, ...)
{
	char msg[1600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return (reply){status, json_pack("{s:s}", "error", msg), NULL, NULL};
}

static reply jok(unsigned status, json_t *j) { return (reply){status, j, NULL, NULL}; }

static json_t *groups_json(const char *groups)
{
	json_t *a = json_array();
	const char *p = groups;
	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l)
			json_array_append_new(a, json_stringn(p, l));
		p = e ? e + 1 : NULL;
	}
	return a;
}

static json_t *ts_json(int64_t unix_s)
{
	if (!unix_s)
		return json_null();
	char b[40];
	gw_format_ts((uint64_t)unix_s * 1000000u, b, sizeof(b));
	return json_string(b);
}

static void identity_row(const gw_identity_rec *r, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:o,s:b,s:o}", "name", r->name, "kind", r->kind,
		"groups", groups_json(r->groups), "disabled", r->disabled, "created_at", ts_json(r->created_at)));
}

static void token_row(const gw_token_rec *r, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:o,s:o,s:o,s:b}", "id", r->id, "identity", r->identity,
		"created_at", ts_json(r->created_at), "expires_at", ts_json(r->expires_at),
		"revoked_at", ts_json(r->revoked_at), "active",
		!r->revoked_at && (!r->expires_at || r->expires_at > (int64_t)time(NULL))));
}

static int kill_matching(gw_gateway *gw, const char *identity, const char *token_id)
{
	char(*ids)[40];
	int n = gw_registry_find(gw->reg, identity, token_id, &ids);
	for (int i = 0; i < n; i++)
		gw_session_kill(gw, ids[i]);
	free(ids);
	return n;
}

static reply identities_post(gw_gateway *gw, json_t *in)
{
	const char *name = NULL, *kind = "agent";
	json_t *groups = NULL;
	if (!in || json_unpack(in, "{s:s,s?s,s?o}", "name", &name, "kind", &kind, "groups", &groups) != 0)
		return jerr(400, "expected {\"name\": ..., \"kind\": \"agent|human|relay\", \"groups\": [...]}");
	if (!gw_identity_name_ok(name))
		return jerr(400, "identity name '%s' may use letters, digits and -_.@: (1-127 characters)", name);
	if (!gw_identity_kind_ok(kind))
		return jerr(400, "kind must be agent, human or relay");
	gw_identity_rec rec;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.name, sizeof(rec.name), "%s", name);
	snprintf(rec.kind, sizeof(rec.kind), "%s", kind);
	if (groups) {
		if (!json_is_array(groups))
			return jerr(400, "groups must be a list of names");
		size_t i;
		json_t *g;
		json_array_foreach(groups, i, g) {
			const char *gs = json_string_value(g);
			if (!gs || !gw_identity_name_ok(gs) || strchr(gs, ','))
				return jerr(400, "group names may use letters, digits and -_.@:");
			if (strlen(rec.groups) + strlen(gs) + 2 >= sizeof(rec.groups))
				return jerr(400, "too many groups");
			if (i)
				strcat(rec.groups, ",");
			strcat(rec.groups, gs);
		}
	}
	rec.created_at = (int64_t)time(NULL);
	char err[256];
	int rc = gw_store_identity_add(gw->store, &rec, err, sizeof(err));
	if (rc == -1)
		return jerr(409, "%s", err);
	if (rc)
		return jerr(503, "%s", err);
	gw_info("identity %s added (kind %s, groups %s)", rec.name, rec.kind, rec.groups);
	json_t *a = json_array();
	identity_row(&rec, a);
	json_t *o = json_incref(json_array_get(a, 0));
	json_decref(a);
	return jok(201, o);
}

static reply tokens_post(gw_gateway *gw, json_t *in)
{
	const char *identity = NULL, *ttl = NULL;
	if (!in || json_unpack(in, "{s:s,s?s}", "identity", &identity, "ttl", &ttl) != 0)
		return jerr(400, "expected {\"identity\": NAME, \"ttl\": \"24h\"}");
	uint64_t ttl_us = 0;
	if (ttl && *ttl && !gw_parse_duration(ttl, &ttl_us))
		return jerr(400, "ttl must be a duration such as 30m, 24h or 7d");
	gw_identity_rec ir;
	int rc = gw_store_identity_get(gw->store, identity, &ir);
	if (rc == -1)
		return jerr(404, "identity '%s' does not exist; create it first with: pgmoat identity add %s", identity, identity);
	if (rc)
		return jerr(503, "state store cannot answer");
	char token[80], err[256];
	gw_token_rec rec;
	if (gw_identity_issue_token(gw->store, identity, ttl_us, token, &rec, err, sizeof(err)) != 0)
		return jerr(503, "%s", err);
	gw_info("token %s issued for identity %s", rec.id, identity);
	json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "id", rec.id, "identity", identity, "token", token,
		"expires_at", ts_json(rec.expires_at));
	memset(token, 0, sizeof(token));
	return jok(201, o);
}

static reply sessions_get(gw_gateway *gw)
{
	gw_reg_entry *arr;
	int n = gw_registry_snapshot(gw->reg, &arr);
	json_t *a = json_array();
	static const char *const states[] = {"idle", "active", "waiting"};
	for (int i = 0; i < n; i++) {
		gw_reg_entry *e = &arr[i];
		char ts[40];
		gw_format_ts(e->started_wall_us, ts, sizeof(ts));
		int st = atomic_load(&e->state);
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s}",
			"id", e->id, "identity", e->identity, "connection", e->connection, "client_addr", e->client_addr,
			"application_name", e->application_name, "tls", e->tls, "started_at", ts,
			"bytes_in", (json_int_t)atomic_load(&e->bytes_in), "bytes_out", (json_int_t)atomic_load(&e->bytes_out),
			"statements", (json_int_t)atomic_load(&e->statements), "state", states[st >= 0 && st <= 2 ? st : 0]));
	}
	free(arr);
	return jok(200, a);
}

/*
 * Relays: every relay name the connections use or that is connected, each
 * with its processes (instances), tunnels and the sessions going through it.
 */
static reply relays_get(gw_gateway *gw)
{
	gw_relay_info *inf;
	int n = gw_hub_list(gw->hub, &inf);
	gw_reg_entry *arr;
	int ns = gw_registry_snapshot(gw->reg, &arr);
	json_t *byname = json_object();
	const gw_config *cfg = gw->cfg;
	for (size_t i = 0; i < cfg->n_conns; i++) {
		const gw_conn_cfg *cc = &cfg->conns[i];
		if (!cc->relay)
			continue;
		json_t *r = json_object_get(byname, cc->relay);
		if (!r) {
			r = json_pack("{s:s,s:[],s:[],s:i,s:i,s:i,s:n}", "name", cc->relay, "connections", "instances",
				"tunnels_idle", 0, "tunnels_busy", 0, "sessions", 0, "last_seen");
			json_object_set_new(byname, cc->relay, r);
		}
		json_array_append_new(json_object_get(r, "connections"),
			json_pack("{s:s,s:s}", "name", cc->name, "target", cc->target));
		int sessions = 0;
		for (int k = 0; k < ns; k++)
			if (!strcmp(arr[k].connection, cc->name))
				sessions++;
		json_object_set_new(r, "sessions", json_integer(json_integer_value(json_object_get(r, "sessions")) + sessions));
	}
	free(arr);
	for (int i = 0; i < n; i++) {
		gw_relay_info *x = &inf[i];
		json_t *r = json_object_get(byname, x->name);
		if (!r) {
			r = json_pack("{s:s,s:[],s:[],s:i,s:i,s:i,s:n}", "name", x->name, "connections", "instances",
				"tunnels_idle", 0, "tunnels_busy", 0, "sessions", 0, "last_seen");
			json_object_set_new(byname, x->name, r);
		}
		json_array_append_new(json_object_get(r, "instances"), json_pack("{s:s,s:s,s:o,s:s,s:o,s:o,s:i,s:i}",
			"instance", x->instance, "address", x->addr, "targets", groups_json(x->targets), "software", x->software,
			"connected_at", ts_json(x->connected_at), "last_seen", ts_json(x->last_seen),
			"tunnels_idle", x->idle, "tunnels_busy", x->busy));
		json_object_set_new(r, "tunnels_idle", json_integer(json_integer_value(json_object_get(r, "tunnels_idle")) + x->idle));
		json_object_set_new(r, "tunnels_busy", json_integer(json_integer_value(json_object_get(r, "tunnels_busy")) + x->busy));
		json_t *ls = json_object_get(r, "last_seen");
		char ts[40];
		gw_format_ts((uint64_t)x->last_seen * 1000000u, ts, sizeof(ts));
		if (json_is_null(ls) || strcmp(json_string_value(ls), ts) < 0)
			json_object_set_new(r, "last_seen", json_string(ts));
	}
	free(inf);
	json_t *a = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(byname, k, v) {
		json_object_set_new(v, "state", json_string(json_array_size(json_object_get(v, "instances")) ? "connected" : "no tunnel"));
		json_array_append(a, v);
	}
	json_decref(byname);
	return jok(200, a);
}

/*
 * POST /v1/relays/doctor {"connection": NAME, "needs": {...}}: the doctor's
 * database-side checks for a connection through a relay, run by the relay
 * with its own credentials (pgmoat doctor calls this; see doctor/doctor.h).
 */
static reply relays_doctor(gw_gateway *gw, json_t *in)
{
	const char *name = json_string_value(json_object_get(in, "connection"));
	json_t *needs = json_object_get(in, "needs");
	if (!name || !json_is_object(needs))
		return jerr(400, "expected {\"connection\": NAME, \"needs\": {...}}");
	const gw_conn_cfg *cc = gw_config_conn(gw->cfg, name);
	if (!cc)
		return jerr(404, "connection '%s' does not exist", name);
	if (!cc->relay)
		return jerr(400, "connection '%s' does not go through a relay; pgmoat doctor checks it directly", name);
	char *nj = json_dumps(needs, JSON_COMPACT), *out = NULL, err[400];
	int rc = gw_hub_doctor(gw->hub, cc->relay, cc->target, nj, &out, err, sizeof(err));
	free(nj);
	if (rc < 0)
		return jerr(502, "%s", err);
	json_error_t je;
	json_t *f = json_loads(out, 0, &je);
	free(out);
	if (!json_is_array(f)) {
		json_decref(f);
		return jerr(502, "relay \"%s\" sent findings that are not a JSON array", cc->relay);
	}
	return jok(200, json_pack("{s:s,s:s,s:s,s:o}", "connection", name, "relay", cc->relay, "target", cc->target,
		"findings", f));
}

static reply metrics(gw_gateway *gw)
{
	gw_buf b = {0};
	char line[512];
	int n = snprintf(line, sizeof(line),
		"# HELP pgmoat_sessions Logged-in client sessions.\n# TYPE pgmoat_sessions gauge\npgmoat_sessions %d\n"
		"# HELP pgmoat_clients Client connections, logging in or logged in.\n# TYPE pgmoat_clients gauge\npgmoat_clients %d\n"
		"# HELP pgmoat_pool_connections Upstream connections per registered connection.\n# TYPE pgmoat_pool_connections gauge\n",
		gw_registry_count(gw->reg), atomic_load(&gw->nclients));
	gw_buf_append(&b, line, (size_t)n);
	for (size_t i = 0; i < gw->cfg->n_conns; i++) {
		int total, idle, waiting;
		gw_pool_counts(gw->pools[i], &total, &idle, &waiting);
		const char *nm = gw->cfg->conns[i].name;
		n = snprintf(line, sizeof(line),
			"pgmoat_pool_connections{connection=\"%s\",state=\"total\"} %d\n"
			"pgmoat_pool_connections{connection=\"%s\",state=\"idle\"} %d\n"
			"pgmoat_pool_waiting{connection=\"%s\"} %d\n", nm, total, nm, idle, nm, waiting);
		gw_buf_append(&b, line, (size_t)n);
	}
	unsigned long long hits = 0, misses = 0, decisions = 0, timed = 0, timed_ns = 0, ptimed = 0, ptimed_ns = 0;
	for (int i = 0; i < gw->nworkers; i++) {
		if (!gw->workers[i].sqlcache)
			continue;
		gw_policy_stats *st = gw_sqlcache_stats(gw->workers[i].sqlcache);
		hits += atomic_load(&st->hits);
		misses += atomic_load(&st->misses);
		decisions += atomic_load(&st->decisions);
		timed += atomic_load(&st->timed);
		timed_ns += atomic_load(&st->timed_ns);
		ptimed += atomic_load(&st->parse_timed);
		ptimed_ns += atomic_load(&st->parse_ns);
	}
	char pline[2048];
	n = snprintf(pline, sizeof(pline),
		"# HELP pgmoat_parse_cache_hits_total Statements classified from the parse cache.\n"
		"# TYPE pgmoat_parse_cache_hits_total counter\npgmoat_parse_cache_hits_total %llu\n"
		"# HELP pgmoat_parse_cache_misses_total Statements parsed (not in the cache).\n"
		"# TYPE pgmoat_parse_cache_misses_total counter\npgmoat_parse_cache_misses_total %llu\n"
		"# HELP pgmoat_policy_decisions_total Policy decisions made.\n"
		"# TYPE pgmoat_policy_decisions_total counter\npgmoat_policy_decisions_total %llu\n"
		"# HELP pgmoat_policy_decision_ns Mean time of a policy decision (1 in 64 timed), nanoseconds.\n"
		"# TYPE pgmoat_policy_decision_ns gauge\npgmoat_policy_decision_ns %llu\n"
		"# HELP pgmoat_parse_ns Mean time to parse and classify a statement not in the cache (1 in 64 timed).\n"
		"# TYPE pgmoat_parse_ns gauge\npgmoat_parse_ns %llu\n",
		hits, misses, decisions, timed ? timed_ns / timed : 0ull, ptimed ? ptimed_ns / ptimed : 0ull);
	gw_buf_append(&b, pline, (size_t)n);
	gw_audit_stats as;
	gw_audit_get_stats(gw->audit, &as);
	n = snprintf(pline, sizeof(pline),
		"# HELP pgmoat_audit_records_total Records committed to the audit store.\n"
		"# TYPE pgmoat_audit_records_total counter\npgmoat_audit_records_total %llu\n"
		"# HELP pgmoat_audit_commits_total Audit store commits (group commits).\n"
		"# TYPE pgmoat_audit_commits_total counter\npgmoat_audit_commits_total %llu\n"
		"# HELP pgmoat_audit_failed_records_total Records the audit store could not commit (their statements were refused).\n"
		"# TYPE pgmoat_audit_failed_records_total counter\npgmoat_audit_failed_records_total %llu\n"
		"# HELP pgmoat_audit_commit_us Mean time of one audit commit, microseconds.\n"
		"# TYPE pgmoat_audit_commit_us gauge\npgmoat_audit_commit_us %llu\n"
		"# HELP pgmoat_audit_queue_peak Most records ever waiting for the audit writer.\n"
		"# TYPE pgmoat_audit_queue_peak gauge\npgmoat_audit_queue_peak %llu\n"
		"# HELP pgmoat_audit_jsonl_errors_total Batches audit.jsonl could not take.\n"
		"# TYPE pgmoat_audit_jsonl_errors_total counter\npgmoat_audit_jsonl_errors_total %llu\n",
		(unsigned long long)as.records, (unsigned long long)as.batches, (unsigned long long)as.failed_records,
		(unsigned long long)(as.batches ? as.commit_us_total / as.batches : 0), (unsigned long long)as.queue_peak,
		(unsigned long long)as.jsonl_errors);
	gw_buf_append(&b, pline, (size_t)n);
	gw_buf_put_u8(&b, 0);
	reply r = {200, NULL, gw_xstrdup((const char *)gw_buf_rd(&b)), "text/plain; version=0.0.4"};
	gw_buf_free(&b);
	return r;
}

/* The authenticated caller of a /v1 route. */
typedef struct caller {
	gw_identity id;      /* name "admin_token" for the bootstrap token (for log lines only) */
	bool bootstrap;      /* the admin_token from config: an admin that names no identity */
	bool admin;
} caller;

/* The identity access/ rules see: NULL for the bootstrap admin_token. */
static const gw_identity *actor_of(const caller *c)
{
	return c->bootstrap ? NULL : &c->id;
}

/* The caller's address (for the failed-token limit); false when MHD does not say. */
static bool client_addr(struct MHD_Connection *conn, struct sockaddr_storage *ss)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	memset(ss, 0, sizeof(*ss));
	if (!ci || !ci->client_addr)
		return false;
	size_t n = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
		ci->client_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : 0;
	memcpy(ss, ci->client_addr, n);
	return n > 0;
}

/*
 * Who is calling? Returns 0 (who filled), -1 none/bad, -2 refused unseen: the
 * address presented auth_failures_per_minute bad tokens within the minute
 * (counted apart from PostgreSQL logins, so a script with a stale token does
 * not lock agents out of the database).
 */
static int authenticate(gw_gateway *gw, struct MHD_Connection *conn, caller *who)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return -1;
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	struct sockaddr_storage ss;
	bool have_addr = client_addr(conn, &ss);
	if (have_addr && gw_ratelimit_blocked(gw->http_rl, &ss))
		return -2;
	memset(who, 0, sizeof(*who));
	const char *at = gw->cfg->admin_token;
	if (at && strlen(at) == strlen(tok) && gw_ct_equal(at, tok, strlen(at))) {
		snprintf(who->id.name, sizeof(who->id.name), "admin_token");
		who->bootstrap = who->admin = true;
		return 0;
	}
	bool ok = true;
	if (gw_jwt_shape(tok, strlen(tok))) {
		/* a JWT of a trusted issuer; an unknown kid may wait here (this thread) for one refetch */
		char why[400];
		if (gw_identity_verify_jwt(gw->oidc, gw->store, tok, strlen(tok), NULL, NULL, &who->id, why, sizeof(why),
				NULL) != GW_AUTH_OK) {
			gw_info("HTTP API: bearer JWT refused: %s", why);
			ok = false;
		}
	} else if (!gw->cfg->identity_tokens || gw_identity_verify_token(gw->store, tok, NULL, &who->id) != GW_AUTH_OK) {
		ok = false;
	}
	if (ok && !strcmp(who->id.kind, "relay"))
		ok = false; /* a relay's token opens tunnels, nothing else */
	if (!ok) {
		if (have_addr)
			gw_ratelimit_fail(gw->http_rl, &ss);
		return -1;
	}
	who->admin = gw_identity_is_admin(&who->id, gw->cfg->admins, gw->cfg->n_admins);
	return 0;
}

/* ---- just-in-time access routes ---- */

static unsigned access_status(int rc)
{
	switch (rc) {
	case GW_ACCESS_OK: return 200;
	case GW_ACCESS_BAD: return 400;
	case GW_ACCESS_FORBIDDEN: return 403;
	case GW_ACCESS_NOT_FOUND: return 404;
	case GW_ACCESS_CONFLICT: return 409;
	default: return 503;
	}
}

/* "created_at": RFC 3339 UTC (null when 0) and "created_at_unix": seconds (null when 0). */
static void set_time(json_t *o, const char *key, int64_t unix_s)
{
	char k[64];
	json_object_set_new(o, key, ts_json(unix_s));
	snprintf(k, sizeof(k), "%s_unix", key);
	json_object_set_new(o, k, unix_s ? json_integer(unix_s) : json_null());
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *request_json(const gw_request_rec *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "identity", json_string(r->identity));
	json_object_set_new(o, "connection", json_string(r->connection));
	json_object_set_new(o, "policy", json_string(r->policy));
	json_object_set_new(o, "scope", json_string(gw_access_scope_str(r->scope)));
	json_object_set_new(o, "tables", groups_json(r->tables));
	json_object_set_new(o, "duration_s", json_integer(r->duration_s));
	json_object_set_new(o, "reason", json_string(r->reason));
	json_object_set_new(o, "state", json_string(r->state));
	json_object_set_new(o, "required", json_integer(r->required));
	json_object_set_new(o, "approvals", groups_json(r->approvals));
	json_object_set_new(o, "decided_by", str_or_null(r->decided_by));
	json_object_set_new(o, "comment", str_or_null(r->comment));
	set_time(o, "created_at", r->created_at);
	set_time(o, "decided_at", r->decided_at);
	json_object_set_new(o, "grant_id", r->grant_id ? json_integer(r->grant_id) : json_null());
	return o;
}

static json_t *grant_json(const gw_grant_rec *g, int64_t now)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(g->id));
	json_object_set_new(o, "request_id", g->request_id ? json_integer(g->request_id) : json_null());
	json_object_set_new(o, "identity", json_string(g->identity));
	json_object_set_new(o, "connection", json_string(g->connection));
	json_object_set_new(o, "policy", json_string(g->policy));
	json_object_set_new(o, "scope", json_string(gw_access_scope_str(g->scope)));
	json_object_set_new(o, "tables", groups_json(g->tables));
	set_time(o, "granted_at", g->granted_at);
	set_time(o, "expires_at", g->expires_at);
	set_time(o, "revoked_at", g->revoked_at);
	json_object_set_new(o, "revoked_by", str_or_null(g->revoked_by));
	const char *state = g->revoked_at ? "revoked" : g->expires_at <= now ? "expired" : "active";
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "active", json_boolean(!strcmp(state, "active")));
	return o;
}

static json_t *review_json(const gw_review_rec *r)
{
	char hex[65];
	gw_hex(r->hash, 32, hex);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "identity", json_string(r->identity));
	json_object_set_new(o, "connection", json_string(r->connection));
	json_object_set_new(o, "policy", json_string(r->policy));
	json_object_set_new(o, "class", json_string(gw_access_scope_str(r->cls)));
	/* Stored as UTF-8 by access/, but a row written by anything else must not break the answer. */
	char *stmt = gw_xmalloc(sizeof(r->statement));
	gw_access_clean_text(r->statement, strlen(r->statement), stmt, sizeof(r->statement));
	json_object_set_new(o, "statement", json_string(stmt));
	free(stmt);
	json_object_set_new(o, "hash", json_string(hex));
	json_object_set_new(o, "session", str_or_null(r->session));
	json_object_set_new(o, "state", json_string(r->state));
	json_object_set_new(o, "decided_by", str_or_null(r->decided_by));
	json_object_set_new(o, "comment", str_or_null(r->comment));
	set_time(o, "created_at", r->created_at);
	set_time(o, "decided_at", r->decided_at);
	set_time(o, "used_at", r->used_at);
	return o;
}

/* A positive decimal id at the start of s; *rest points past it. */
static bool parse_id(const char *s, int64_t *id, const char **rest)
{
	if (!isdigit((unsigned char)*s))
		return false;
	int64_t v = 0;
	while (isdigit((unsigned char)*s)) {
		if (v > (INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (*s++ - '0');
	}
	*id = v;
	*rest = s;
	return v > 0;
}

/* ?limit=N (1..10000, default 500); false when malformed. */
static bool list_limit(struct MHD_Connection *conn, int *limit)
{
	const char *l = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	*limit = 500;
	if (!l)
		return true;
	char *end;
	long v = strtol(l, &end, 10);
	if (*end || v < 1 || v > 10000)
		return false;
	*limit = (int)v;
	return true;
}

typedef struct list_ctx {
	gw_gateway *gw;
	const caller *who;
	json_t *a;
	int64_t now;
} list_ctx;

static void request_row(const gw_request_rec *r, void *arg)
{
	list_ctx *c = arg;
	if (gw_access_may_view(c->gw->cfg, gw_config_policy(c->gw->cfg, r->policy), actor_of(c->who), r->identity))
		json_array_append_new(c->a, request_json(r));
}

static void grant_row(const gw_grant_rec *g, void *arg)
{
	list_ctx *c = arg;
	if (c->who->admin || !strcmp(g->identity, c->who->id.name))
		json_array_append_new(c->a, grant_json(g, c->now));
}

static void review_row(const gw_review_rec *r, void *arg)
{
	list_ctx *c = arg;
	if (gw_access_may_view(c->gw->cfg, gw_config_policy(c->gw->cfg, r->policy), actor_of(c->who), r->identity))
		json_array_append_new(c->a, review_json(r));
}

/* Seconds from "30m" / "2h" / "1800" / 1800; 0 when absent; -1 when malformed. */
static int64_t duration_arg(json_t *d)
{
	if (!d || json_is_null(d))
		return 0;
	if (json_is_integer(d))
		return json_integer_value(d) > 0 ? json_integer_value(d) : -1;
	const char *s = json_string_value(d);
	if (!s || !*s)
		return -1;
	bool digits = true;
	for (const char *p = s; *p; p++)
		digits = digits && isdigit((unsigned char)*p);
	if (digits)
		return strlen(s) <= 9 && atol(s) > 0 ? atol(s) : -1;
	uint64_t us;
	if (!gw_parse_duration(s, &us) || us < 1000000)
		return -1;
	return (int64_t)(us / 1000000);
}

/* tables: ["a.b", ...] or "a.b,c.d" into a comma-separated list (spaces dropped); false when malformed. */
static bool tables_arg(json_t *t, char *out, size_t cap)
{
	out[0] = 0;
	if (!t || json_is_null(t))
		return true;
	gw_buf b = {0};
	bool ok = true;
	if (json_is_string(t)) {
		gw_buf_append(&b, json_string_value(t), strlen(json_string_value(t)));
	} else if (json_is_array(t)) {
		size_t i;
		json_t *v;
		json_array_foreach(t, i, v) {
			const char *s = json_string_value(v);
			if (!s || strchr(s, ',')) {
				ok = false;
				break;
			}
			if (i)
				gw_buf_put_u8(&b, ',');
			gw_buf_append(&b, s, strlen(s));
		}
	} else {
		ok = false;
	}
	size_t o = 0;
	const uint8_t *p = gw_buf_rd(&b);
	for (size_t i = 0; ok && i < b.len; i++) {
		if (p[i] == ' ' || p[i] == '\t')
			continue;
		if (o + 1 >= cap)
			ok = false;
		else
			out[o++] = (char)p[i];
	}
	out[ok ? o : 0] = 0;
	gw_buf_free(&b);
	return ok && gw_access_tables_ok(out);
}

static reply requests_post(gw_gateway *gw, const caller *who, json_t *in, int64_t now)
{
	const char *connection = NULL, *scope = NULL, *reason = NULL;
	json_t *tables = NULL, *duration = NULL;
	if (!in || json_unpack(in, "{s:s,s:s,s?o,s?o,s?s}", "connection", &connection, "scope", &scope,
			"tables", &tables, "duration", &duration, "reason", &reason) != 0)
		return jerr(400, "expected {\"connection\": NAME, \"scope\": \"read|write|ddl|admin\", \"tables\": "
			"[\"schema.table\", ...], \"duration\": \"30m\", \"reason\": TEXT}");
	gw_access_ask ask = {.connection = connection, .scope = gw_access_scope_parse(scope), .reason = reason};
	if (ask.scope < 0)
		return jerr(400, "scope must be read, write, ddl or admin");
	char tl[sizeof(((gw_request_rec *)0)->tables)];
	if (!tables_arg(tables, tl, sizeof(tl)))
		return jerr(400, "tables must be schema.table or schema.* names (as PostgreSQL stores them)");
	ask.tables = tl;
	ask.duration_s = duration_arg(duration);
	if (ask.duration_s < 0)
		return jerr(400, "duration must be such as 30m, 2h or 1d, or a number of seconds");
	gw_request_rec rec;
	gw_grant_rec grant;
	bool capped;
	char err[1400];
	int rc = gw_access_request(gw, actor_of(who), &ask, now, &rec, &grant, &capped, err, sizeof(err));
	if (rc)
		return jerr(access_status(rc), "%s", err);
	json_t *o = request_json(&rec);
	json_object_set_new(o, "grant", grant.id ? grant_json(&grant, now) : json_null());
	json_object_set_new(o, "duration_capped", json_boolean(capped));
	return jok(201, o);
}

/* /v1/requests, /v1/grants and /v1/reviews; *matched false when url is none of them. */
static reply access_route(gw_gateway *gw, struct MHD_Connection *conn, const char *method, const char *url,
	const caller *who, json_t *in, bool *matched)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
	int64_t now = gw_policy_now(), id = 0;
	const char *rest = NULL;
	int kind = !strncmp(url, "/v1/requests", 12) ? 1 : !strncmp(url, "/v1/grants", 10) ? 2 :
		!strncmp(url, "/v1/reviews", 11) ? 3 : 0;
	const char *tail = kind == 1 ? url + 12 : kind == 2 ? url + 10 : kind == 3 ? url + 11 : NULL;
	*matched = kind && (!*tail || *tail == '/');
	if (!*matched)
		return jerr(404, "no such route");
	char err[1400];
	int limit;
	list_ctx lc = {.gw = gw, .who = who, .now = now};

	if (!*tail || !strcmp(tail, "/")) {
		if (kind == 1 && post)
			return requests_post(gw, who, in, now);
		if (!get)
			return jerr(405, "%s is not allowed on %s", method, url);
		if (!list_limit(conn, &limit))
			return jerr(400, "limit must be 1-10000");
		const char *state = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state");
		lc.a = json_array();
		int n;
		if (kind == 1) {
			if (state && strcmp(state, "pending") && strcmp(state, "granted") && strcmp(state, "denied")) {
				json_decref(lc.a);
				return jerr(400, "state must be pending, granted or denied");
			}
			n = gw_store_request_list(gw->store, state, limit, request_row, &lc);
		} else if (kind == 3) {
			if (state && strcmp(state, "pending") && strcmp(state, "approved") && strcmp(state, "denied") &&
				strcmp(state, "used")) {
				json_decref(lc.a);
				return jerr(400, "state must be pending, approved, denied or used");
			}
			n = gw_store_review_list(gw->store, state, limit, review_row, &lc);
		} else {
			const char *active = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "active");
			bool only_active = active && (!strcmp(active, "true") || !strcmp(active, "1"));
			if (active && !only_active && strcmp(active, "false") && strcmp(active, "0")) {
				json_decref(lc.a);
				return jerr(400, "active must be true or false");
			}
			n = gw_store_grant_list(gw->store, only_active ? now : 0, grant_row, &lc);
		}
		if (n < 0) {
			json_decref(lc.a);
			return jerr(503, "state store cannot answer");
		}
		return jok(200, lc.a);
	}
	if (!parse_id(tail + 1, &id, &rest))
		return jerr(404, "expected %.*s/ID with a numeric id", (int)(tail - url), url);
	const gw_identity *actor = actor_of(who);
	if (!*rest && get) {
		int rc;
		if (kind == 1) {
			gw_request_rec r;
			rc = gw_store_request_get(gw->store, id, &r);
			if (!rc && !gw_access_may_view(gw->cfg, gw_config_policy(gw->cfg, r.policy), actor, r.identity))
				return jerr(403, "request #%lld is not yours, and you are neither an admin nor an approver of "
					"its policy", (long long)id);
			if (!rc) {
				json_t *o = request_json(&r);
				gw_grant_rec g;
				if (r.grant_id && gw_store_grant_get(gw->store, r.grant_id, &g) == 0)
					json_object_set_new(o, "grant", grant_json(&g, now));
				return jok(200, o);
			}
		} else if (kind == 2) {
			gw_grant_rec g;
			rc = gw_store_grant_get(gw->store, id, &g);
			if (!rc && !who->admin && strcmp(g.identity, who->id.name))
				return jerr(403, "grant #%lld is not yours", (long long)id);
			if (!rc)
				return jok(200, grant_json(&g, now));
		} else {
			gw_review_rec *r = gw_xmalloc(sizeof(*r));
			rc = gw_store_review_get(gw->store, id, r);
			reply out = jerr(403, "review #%lld is not of your statement, and you are neither an admin nor an "
				"approver of its policy", (long long)id);
			if (!rc && gw_access_may_view(gw->cfg, gw_config_policy(gw->cfg, r->policy), actor, r->identity)) {
				json_decref(out.json);
				out = jok(200, review_json(r));
			}
			free(r);
			if (!rc)
				return out;
			json_decref(out.json);
		}
		static const char *const names[] = {"", "request", "grant", "review"};
		if (rc == -1)
			return jerr(404, "no %s #%lld", names[kind], (long long)id);
		return jerr(503, "state store cannot answer");
	}
	if (kind == 2 && del && !*rest) {
		gw_grant_rec g;
		int rc = gw_access_revoke(gw, actor, id, now, &g, err, sizeof(err));
		if (rc)
			return jerr(access_status(rc), "%s", err);
		return jok(200, grant_json(&g, now));
	}
	bool approve = !strcmp(rest, "/approve");
	if ((kind == 1 || kind == 3) && post && (approve || !strcmp(rest, "/deny"))) {
		json_t *cj = in && json_is_object(in) ? json_object_get(in, "comment") : NULL;
		if ((in && !json_is_object(in)) || (cj && !json_is_null(cj) && !json_is_string(cj)))
			return jerr(400, "expected {\"comment\": TEXT} or no body");
		const char *comment = json_string_value(cj);
		if (comment && strlen(comment) > 500)
			return jerr(400, "comment is limited to 500 bytes");
		if (kind == 1) {
			gw_request_rec r;
			gw_grant_rec g;
			int rc = gw_access_decide(gw, actor, id, approve, comment, now, &r, &g, err, sizeof(err));
			if (rc)
				return jerr(access_status(rc), "%s", err);
			json_t *o = request_json(&r);
			json_object_set_new(o, "grant", g.id ? grant_json(&g, now) : json_null());
			return jok(200, o);
		}
		gw_review_rec *r = gw_xmalloc(sizeof(*r));
		int rc = gw_access_review_decide(gw, actor, id, approve, comment, now, r, err, sizeof(err));
		reply out = rc ? jerr(access_status(rc), "%s", err) : jok(200, review_json(r));
		free(r);
		return out;
	}
	return jerr(404, "no such route: %s %s", method, url);
}

/* ---- the record ---- */

/* n decimal digits at *p into *v (advancing p); false when one is not a digit. */
static bool fixed_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return false;
		*v = *v * 10 + (**p - '0');
	}
	return true;
}

/* RFC 3339: a date, or a date and time with an optional fraction and a Z or +hh:mm offset. */
static bool rfc3339_us(const char *s, int64_t *us)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0, oh, om;
	int64_t frac = 0, off = 0;
	if (!fixed_digits(&p, 4, &y) || *p++ != '-' || !fixed_digits(&p, 2, &mo) || *p++ != '-' ||
		!fixed_digits(&p, 2, &d))
		return false;
	if (*p) {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return false;
		p++;
		if (!fixed_digits(&p, 2, &h) || *p++ != ':' || !fixed_digits(&p, 2, &mi) || *p++ != ':' ||
			!fixed_digits(&p, 2, &sec))
			return false;
		if (*p == '.') {
			int k = 0;
			for (p++; isdigit((unsigned char)*p); p++, k++)
				if (k < 6)
					frac = frac * 10 + (*p - '0');
			if (!k)
				return false;
			for (; k < 6; k++)
				frac *= 10;
		}
		/* the zone is required: a bare time would be read as UTC by some and as local time by others */
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1;
			if (!fixed_digits(&p, 2, &oh) || *p++ != ':' || !fixed_digits(&p, 2, &om) || oh > 23 || om > 59)
				return false;
			off = sign * (oh * 3600 + om * 60);
		} else {
			return false;
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
	*us = ((int64_t)timegm(&tm) - off) * 1000000 + frac;
	return true;
}

/*
 * ?since=: RFC 3339 ("2026-11-24T10:00:00Z"), unix seconds ("1795600000"),
 * or a duration back from now ("15m", "2h", "7d"). Unix microseconds into
 * *us; false when malformed.
 */
static bool since_arg(const char *s, int64_t *us)
{
	size_t len = strlen(s), ndig = strspn(s, "0123456789");
	if (!len || len > 64)
		return false;
	if (ndig == len) {
		if (len > 11)
			return false;
		*us = atoll(s) * 1000000;
		return true;
	}
	uint64_t back;
	if (gw_parse_duration(s, &back)) {
		uint64_t now = gw_wall_us(); /* the record's clock (PGMOAT_TEST_NOW moves only the policy clock) */
		*us = back < now ? (int64_t)(now - back) : 1;
		return true;
	}
	return rfc3339_us(s, us);
}

/* GET /v1/audit: a page of the record, oldest first; "next" is the after= of the next page. */
static reply audit_list(gw_gateway *gw, struct MHD_Connection *conn, const caller *who)
{
	const char *identity = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "identity");
	const char *session = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "session");
	const char *since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
	const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
	const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	gw_audit_query q = {.identity = identity && *identity ? identity : NULL,
		.session = session && *session ? session : NULL, .limit = 100};
	if (q.identity && strlen(q.identity) >= sizeof(who->id.name))
		return jerr(400, "identity is at most %zu characters", sizeof(who->id.name) - 1);
	if (q.session && strlen(q.session) > 64)
		return jerr(400, "session is a session id (at most 64 characters)");
	if (!who->admin) {
		if (q.identity && strcmp(q.identity, who->id.name))
			return jerr(403, "identity '%s' may read only its own record, not identity '%s's (reading others' "
				"needs an admin, see admins: in the gateway config)", who->id.name, q.identity);
		q.identity = who->id.name;
	}
	if (since && *since && !since_arg(since, &q.since_us))
		return jerr(400, "since must be a time such as 2026-11-24T10:00:00Z (RFC 3339, with Z or an offset), "
			"unix seconds, or a duration back from now such as 15m, 2h or 7d");
	if (after && *after) {
		if (strspn(after, "0123456789") != strlen(after) || strlen(after) > 18)
			return jerr(400, "after must be a seq number (the \"next\" of the previous page)");
		q.after_seq = atoll(after);
	}
	if (limit && *limit) {
		char *end;
		long v = strtol(limit, &end, 10);
		if (*end || v < 1 || v > 1000)
			return jerr(400, "limit must be 1-1000");
		q.limit = (int)v;
	}
	char err[600];
	int64_t next;
	json_t *events = gw_audit_list(gw->cfg->state_path, &q, &next, err, sizeof(err));
	if (!events) {
		gw_warn("reading the record for %s: %s", who->id.name, err);
		return jerr(503, "the record cannot be read now%s%s", who->admin ? ": " : " (the gateway's log says why)",
			who->admin ? err : "");
	}
	return jok(200, json_pack("{s:o,s:o}", "events", events, "next", next ? json_integer(next) : json_null()));
}

/* GET /v1/audit/verify: walk the whole chain (admins; the same check as `pgmoat audit verify -c`). */
static reply audit_verify(gw_gateway *gw, const caller *who)
{
	if (!who->admin)
		return jerr(403, "identity '%s' is not an admin (see admins: in the gateway config); verifying the record "
			"is for admins", who->id.name);
	const gw_config *cfg = gw->cfg;
	gw_audit_verify_result res;
	char err[600];
	if (gw_audit_verify(cfg->state_path, cfg->audit_checkpoint_key, cfg->audit_checkpoint_key_len, &res, NULL, NULL,
			err, sizeof(err)) != 0)
		return jerr(500, "the record cannot be verified: %s", err);
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_boolean(res.ok));
	json_object_set_new(o, "records", json_integer(res.records));
	json_object_set_new(o, "last_seq", json_integer(res.last_seq));
	json_object_set_new(o, "bad_seq", res.bad_seq ? json_integer(res.bad_seq) : json_null());
	json_object_set_new(o, "problem", str_or_null(res.problem));
	json_object_set_new(o, "signed_checkpoint", json_boolean(res.signed_checkpoint));
	json_object_set_new(o, "note", str_or_null(res.note));
	if (!res.ok) {
		/* "error" as on every refusal, so a generic client shows the reason */
		char msg[700];
		snprintf(msg, sizeof(msg), "audit chain broken at seq %lld: %s", (long long)res.bad_seq, res.problem);
		json_object_set_new(o, "error", json_string(msg));
		gw_warn("%s (verify asked by %s)", msg, who->id.name);
	}
	return jok(res.ok ? 200 : 409, o);
}

/* /v1/audit and /v1/audit/verify; *matched false when url is neither. */
static reply audit_route(gw_gateway *gw, struct MHD_Connection *conn, const char *method, const char *url,
	const caller *who, bool *matched)
{
	bool list = !strcmp(url, "/v1/audit") || !strcmp(url, "/v1/audit/"), verify = !strcmp(url, "/v1/audit/verify");
	*matched = list || verify || !strncmp(url, "/v1/audit/", 10);
	if (!*matched)
		return jerr(404, "no such route");
	if (!list && !verify)
		return jerr(404, "no such route: %s %s (the record is at /v1/audit and /v1/audit/verify)", method, url);
	if (strcmp(method, "GET"))
		return jerr(405, "%s is not allowed on %s (the record is read-only)", method, url);
	return list ? audit_list(gw, conn, who) : audit_verify(gw, who);
}

static reply route(gw_gateway *gw, struct MHD_Connection *conn, const char *method, const char *url, const req *rq)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
	if (!strcmp(url, "/healthz") && get) {
		char why[300] = "";
		if (!gw_audit_healthy(gw->audit, why, sizeof(why)))
			return jok(503, json_pack("{s:s,s:s,s:i}", "status", "degraded", "audit", why, "sessions",
				gw_registry_count(gw->reg)));
		return jok(200, json_pack("{s:s,s:s,s:i}", "status", "ok", "audit", "ok", "sessions",
			gw_registry_count(gw->reg)));
	}
	if (!strcmp(url, "/metrics") && get)
		return metrics(gw);
	if (strncmp(url, "/v1/", 4) != 0)
		return jerr(404, "no such route: %s %s", method, url);

	caller who_c;
	int auth = authenticate(gw, conn, &who_c);
	if (auth == -2)
		return jerr(429, "too many invalid bearer tokens from this address within a minute "
			"(limits.auth_failures_per_minute); wait a minute and check the token");
	if (auth < 0)
		return jerr(401, "missing or invalid bearer token (set PGMOAT_TOKEN, or use --token-file)");
	const gw_identity who = who_c.id;
	if (rq->too_big)
		return jerr(413, "request body over %d bytes", MAX_BODY);
	json_t *in = NULL;
	if (rq->len) {
		json_error_t je;
		in = json_loadb(rq->body, rq->len, 0, &je);
		if (!in)
			return jerr(400, "invalid JSON: %s", je.text);
	}
	bool matched;
	reply r = access_route(gw, conn, method, url, &who_c, in, &matched);
	if (matched) {
		json_decref(in);
		return r;
	}
	json_decref(r.json);
	r = audit_route(gw, conn, method, url, &who_c, &matched);
	if (matched) {
		json_decref(in);
		return r;
	}
	json_decref(r.json);
	if (!who_c.admin) {
		json_decref(in);
		return jerr(403, "identity '%s' is not an admin (see admins: in the gateway config)", who.name);
	}
	const char *rest;
	if (!strcmp(url, "/v1/identities") && get) {
		json_t *a = json_array();
		if (gw_store_identity_list(gw->store, identity_row, a) < 0) {
			json_decref(a);
			r = jerr(503, "state store cannot answer");
		} else {
			r = jok(200, a);
		}
	} else if (!strcmp(url, "/v1/identities") && post) {
		r = identities_post(gw, in);
	} else if (!strncmp(url, "/v1/identities/", 15) && post) {
		rest = url + 15;
		const char *slash = strrchr(rest, '/');
		char name[128];
		if (!slash || (size_t)(slash - rest) >= sizeof(name)) {
			r = jerr(404, "no such route");
		} else {
			memcpy(name, rest, (size_t)(slash - rest));
			name[slash - rest] = 0;
			bool disable = !strcmp(slash, "/disable");
			if (!disable && strcmp(slash, "/enable")) {
				r = jerr(404, "expected /v1/identities/NAME/disable or /enable");
			} else {
				int rc = gw_store_identity_set_disabled(gw->store, name, disable);
				if (rc == -1) {
					r = jerr(404, "identity '%s' does not exist", name);
				} else if (rc) {
					r = jerr(503, "state store cannot answer");
				} else {
					int killed = disable ? kill_matching(gw, name, NULL) + gw_hub_revoke(gw->hub, name, NULL) : 0;
					gw_info("identity %s %s by %s", name, disable ? "disabled" : "enabled", who.name);
					r = jok(200, json_pack("{s:s,s:b,s:i}", "name", name, "disabled", disable, "sessions_ended", killed));
				}
			}
		}
	} else if (!strcmp(url, "/v1/tokens") && get) {
		json_t *a = json_array();
		if (gw_store_token_list(gw->store, token_row, a) < 0) {
			json_decref(a);
			r = jerr(503, "state store cannot answer");
		} else {
			r = jok(200, a);
		}
	} else if (!strcmp(url, "/v1/tokens") && post) {
		r = tokens_post(gw, in);
	} else if (!strncmp(url, "/v1/tokens/", 11) && del) {
		rest = url + 11;
		int rc = gw_store_token_revoke(gw->store, rest, (int64_t)time(NULL));
		if (rc == -1) {
			r = jerr(404, "no active token with id '%s'", rest);
		} else if (rc) {
			r = jerr(503, "state store cannot answer");
		} else {
			int killed = kill_matching(gw, NULL, rest) + gw_hub_revoke(gw->hub, NULL, rest);
			gw_info("token %s revoked by %s", rest, who.name);
			r = jok(200, json_pack("{s:s,s:b,s:i}", "id", rest, "revoked", 1, "sessions_ended", killed));
		}
	} else if (!strcmp(url, "/v1/sessions") && get) {
		r = sessions_get(gw);
	} else if (!strcmp(url, "/v1/relays") && get) {
		r = relays_get(gw);
	} else if (!strcmp(url, "/v1/relays/doctor") && post) {
		r = relays_doctor(gw, in);
	} else if (!strncmp(url, "/v1/sessions/", 13) && del) {
		rest = url + 13;
		if (gw_session_kill(gw, rest) != 0) {
			r = jerr(404, "no live session with id '%s'", rest);
		} else {
			gw_info("session %s killed by %s", rest, who.name);
			r = jok(200, json_pack("{s:s,s:b}", "id", rest, "killed", 1));
		}
	} else {
		r = jerr(404, "no such route: %s %s", method, url);
	}
	json_decref(in);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	gw_admin *a = cls;
	req *rq = *con_cls;
	if (!rq) {
		rq = gw_xcalloc(1, sizeof(*rq));
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		if (rq->len + *upload_size > MAX_BODY) {
			rq->too_big = true;
		} else {
			rq->body = gw_xrealloc(rq->body, rq->len + *upload_size + 1);
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	reply r = route(a->gw, conn, method, url, rq);
	char *text = r.text;
	if (!text) {
		text = json_dumps(r.json, JSON_COMPACT);
		json_decref(r.json);
		size_t l = strlen(text);
		text = realloc(text, l + 2);
		text[l] = '\n';
		text[l + 1] = 0;
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", r.ctype ? r.ctype : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(conn, r.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	req *rq = *con_cls;
	if (rq) {
		if (rq->body)
			memset(rq->body, 0, rq->len);
		free(rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

gw_admin *gw_admin_start(gw_gateway *gw, char *err, size_t errlen)
{
	const gw_config *cfg = gw->cfg;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, cfg->http_host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)cfg->http_port);
	} else if (inet_pton(AF_INET6, cfg->http_host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)cfg->http_port);
		flags |= MHD_USE_IPv6;
	} else if (!strcmp(cfg->http_host, "localhost")) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)cfg->http_port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		snprintf(err, errlen, "listen.http: give an IP address, not '%s'", cfg->http_host);
		return NULL;
	}
	gw_admin *a = gw_xcalloc(1, sizeof(*a));
	a->gw = gw;
	a->d = MHD_start_daemon(flags, (uint16_t)cfg->http_port, NULL, NULL, on_request, a,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
		/* a few threads: a long request (verifying a large record) does not hold /healthz or the others */
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
		MHD_OPTION_END);
	if (!a->d) {
		snprintf(err, errlen, "cannot start the HTTP API on %s:%d (is the port in use?)", cfg->http_host, cfg->http_port);
		free(a);
		return NULL;
	}
	return a;
}

void gw_admin_stop(gw_admin *a)
{
	if (!a)
		return;
	MHD_stop_daemon(a->d);
	free(a);
}
