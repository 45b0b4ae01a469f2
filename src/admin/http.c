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
 */
#include "admin/http.h"
#include "core/log.h"
#include "core/util.h"
#include "identity/identity.h"
#include "session/registry.h"
#include "session/session.h"
#include "upstream/upstream.h"

#include <arpa/inet.h>
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
	char msg[400];
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
	gw_buf_put_u8(&b, 0);
	reply r = {200, NULL, gw_xstrdup((const char *)gw_buf_rd(&b)), "text/plain; version=0.0.4"};
	gw_buf_free(&b);
	return r;
}

/* Who is calling? Returns 1 admin, 0 authenticated non-admin, -1 none/bad. */
static int authenticate(gw_gateway *gw, struct MHD_Connection *conn, gw_identity *who)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return -1;
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	memset(who, 0, sizeof(*who));
	const char *at = gw->cfg->admin_token;
	if (at && strlen(at) == strlen(tok) && gw_ct_equal(at, tok, strlen(at))) {
		snprintf(who->name, sizeof(who->name), "admin_token");
		return 1;
	}
	if (gw_identity_verify_token(gw->store, tok, NULL, who) != GW_AUTH_OK)
		return -1;
	return gw_identity_is_admin(who, gw->cfg->admins, gw->cfg->n_admins) ? 1 : 0;
}

static reply route(gw_gateway *gw, struct MHD_Connection *conn, const char *method, const char *url, const req *rq)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
	if (!strcmp(url, "/healthz") && get)
		return jok(200, json_pack("{s:s,s:i}", "status", "ok", "sessions", gw_registry_count(gw->reg)));
	if (!strcmp(url, "/metrics") && get)
		return metrics(gw);
	if (strncmp(url, "/v1/", 4) != 0)
		return jerr(404, "no such route: %s %s", method, url);

	gw_identity who;
	int auth = authenticate(gw, conn, &who);
	if (auth < 0)
		return jerr(401, "missing or invalid bearer token (set PGMOAT_TOKEN, or use --token-file)");
	if (auth == 0)
		return jerr(403, "identity '%s' is not an admin (see admins: in the gateway config)", who.name);
	if (rq->too_big)
		return jerr(413, "request body over %d bytes", MAX_BODY);
	json_t *in = NULL;
	if (rq->len) {
		json_error_t je;
		in = json_loadb(rq->body, rq->len, 0, &je);
		if (!in)
			return jerr(400, "invalid JSON: %s", je.text);
	}
	reply r;
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
					int killed = disable ? kill_matching(gw, name, NULL) : 0;
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
			int killed = kill_matching(gw, NULL, rest);
			gw_info("token %s revoked by %s", rest, who.name);
			r = jok(200, json_pack("{s:s,s:b,s:i}", "id", rest, "revoked", 1, "sessions_ended", killed));
		}
	} else if (!strcmp(url, "/v1/sessions") && get) {
		r = sessions_get(gw);
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
