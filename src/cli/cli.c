/*
 * Admin verbs over the HTTP API; see cli.h.
 */
#include "cli/cli.h"
#include "audit/audit.h"
#include "core/config.h"
#include "core/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct api {
	const char *gateway;
	char *token;
	bool json;
	long accept;     /* an error status whose JSON answer the verb reads itself (not printed as an error) */
	long timeout_s;  /* 0: 30 s */
} api;


static char *read_token_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "pgmoat: cannot read token file %s\n", path);
		return NULL;
	}
	char buf[20000];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return gw_xstrdup(buf);
}

/*
 * Parse the options every API verb shares; removes them from argv.
 * Returns 0, or 2 on a usage error.
 */
static int api_init(api *a, int *argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->gateway = getenv("PGMOAT_GATEWAY");
	if (!a->gateway || !*a->gateway)
		a->gateway = "http://127.0.0.1:8080";
	const char *tf = NULL;
	int out = 0;
	for (int i = 0; i < *argc; i++) {
		if ((!strcmp(argv[i], "--gateway") || !strcmp(argv[i], "--token-file")) && i + 1 < *argc) {
			if (argv[i][2] == 'g')
				a->gateway = argv[i + 1];
			else
				tf = argv[i + 1];
			i++;
			continue;
		}
		if (!strncmp(argv[i], "--gateway=", 10)) {
			a->gateway = argv[i] + 10;
			continue;
		}
		if (!strncmp(argv[i], "--token-file=", 13)) {
			tf = argv[i] + 13;
			continue;
		}
		if (!strcmp(argv[i], "--json")) {
			a->json = true;
			continue;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	if (tf) {
		a->token = read_token_file(tf);
		if (!a->token)
			return 1;
	} else if (getenv("PGMOAT_TOKEN") && *getenv("PGMOAT_TOKEN")) {
		a->token = gw_xstrdup(getenv("PGMOAT_TOKEN"));
	} else {
		a->token = gw_cli_login_token();
	}
	return 0;
}

static void api_free(api *a)
{
	if (a->token) {
		memset(a->token, 0, strlen(a->token));
		free(a->token);
	}
}

/* Call the API. Returns the parsed JSON (or NULL on failure, message printed). */
static json_t *call(api *a, const char *method, const char *path, json_t *in, long *status)
{
	CURL *c = curl_easy_init();
	if (!c) {
		fprintf(stderr, "pgmoat: cannot initialise libcurl\n");
		return NULL;
	}
	char *url = gw_xasprintf("%s%s", a->gateway, path);
	gw_sink b = {.max = 64u << 20};
	struct curl_slist *h = NULL;
	char *auth = NULL, *data = NULL;
	if (a->token) {
		auth = gw_xasprintf("Authorization: Bearer %s", a->token);
		h = curl_slist_append(h, auth);
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gw_sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, a->timeout_s ? a->timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (in) {
		data = json_dumps(in, JSON_COMPACT);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
	}
	CURLcode rc = curl_easy_perform(c);
	json_t *out = NULL;
	*status = 0;
	if (rc != CURLE_OK) {
		fprintf(stderr, "pgmoat: cannot reach the gateway at %s: %s\n  (is `pgmoat serve` running? set --gateway or PGMOAT_GATEWAY)\n",
			a->gateway, curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
		json_error_t je;
		out = gw_sink_str(&b) ? json_loads(gw_sink_str(&b), 0, &je) : NULL;
		if (!out)
			fprintf(stderr, "pgmoat: the gateway answered %ld with no JSON\n", *status);
		else if (*status >= 400 && *status != a->accept) {
			const char *e = json_string_value(json_object_get(out, "error"));
			fprintf(stderr, "pgmoat: %s\n", e ? e : "request failed");
			json_decref(out);
			out = NULL;
		}
	}
	if (auth) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	free(data);
	gw_sink_free(&b, false);
	free(url);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return out;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	puts(s);
	free(s);
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_null(v) || !v)
		return "-";
	return json_is_true(v) ? "yes" : json_is_false(v) ? "no" : "?";
}

static int finish(api *a, json_t *j)
{
	api_free(a);
	if (!j)
		return 1;
	json_decref(j);
	return 0;
}

/* --help or -h anywhere after the command (`identity add --help` too). */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

#define COMMON_OPTIONS "common options: --gateway URL (PGMOAT_GATEWAY), --token-file F (PGMOAT_TOKEN; else the\n" \
	"token pgmoat login kept)\n"

static const char identity_usage[] =
	"usage: pgmoat identity add NAME [--kind agent|human|relay] [--group G]...\n"
	"       pgmoat identity list [--json]\n"
	"       pgmoat identity disable NAME | enable NAME\n" COMMON_OPTIONS;

static const char token_usage[] =
	"usage: pgmoat token issue IDENTITY [--ttl 24h]   (prints the token once, on stdout)\n"
	"       pgmoat token list [--json]\n"
	"       pgmoat token revoke ID\n" COMMON_OPTIONS;

/* A verb's usage: on stdout with exit 0 when asked for, else on stderr with exit 2 (a mistake). */
static int usage(const char *text, bool asked)
{
	fputs(text, asked ? stdout : stderr);
	return asked ? 0 : 2;
}

static int usage_identity(void) { return usage(identity_usage, false); }
static int usage_token(void) { return usage(token_usage, false); }

int gw_cli_identity(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (argc < 2 || wants_help(argc, argv)) {
		api_free(&a);
		return usage(identity_usage, argc >= 2);
	}
	long st;
	const char *verb = argv[1];
	if (!strcmp(verb, "list")) {
		json_t *j = call(&a, "GET", "/v1/identities", NULL, &st);
		if (j && a.json)
			print_json(j);
		else if (j) {
			printf("%-32s %-6s %-30s %s\n", "NAME", "KIND", "GROUPS", "DISABLED");
			size_t i;
			json_t *o;
			json_array_foreach(j, i, o) {
				char groups[512] = "";
				size_t k;
				json_t *g;
				json_array_foreach(json_object_get(o, "groups"), k, g) {
					if (k)
						strncat(groups, ",", sizeof(groups) - strlen(groups) - 1);
					strncat(groups, json_string_value(g), sizeof(groups) - strlen(groups) - 1);
				}
				printf("%-32s %-6s %-30s %s\n", jstr(o, "name"), jstr(o, "kind"), *groups ? groups : "-", jstr(o, "disabled"));
			}
		}
		return finish(&a, j);
	}
	if (!strcmp(verb, "add")) {
		if (argc < 3 || argv[2][0] == '-') {
			api_free(&a);
			return usage_identity();
		}
		const char *kind = "agent";
		json_t *groups = json_array();
		for (int i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--kind") && i + 1 < argc)
				kind = argv[++i];
			else if (!strcmp(argv[i], "--group") && i + 1 < argc)
				json_array_append_new(groups, json_string(argv[++i]));
			else {
				json_decref(groups);
				api_free(&a);
				return usage_identity();
			}
		}
		json_t *in = json_pack("{s:s,s:s,s:o}", "name", argv[2], "kind", kind, "groups", groups);
		json_t *j = call(&a, "POST", "/v1/identities", in, &st);
		json_decref(in);
		if (j && a.json)
			print_json(j);
		else if (j)
			printf("identity %s added (kind %s)\n", jstr(j, "name"), jstr(j, "kind"));
		return finish(&a, j);
	}
	if ((!strcmp(verb, "disable") || !strcmp(verb, "enable")) && argc == 3) {
		char *path = gw_xasprintf("/v1/identities/%s/%s", argv[2], verb);
		json_t *j = call(&a, "POST", path, NULL, &st);
		free(path);
		if (j)
			printf("identity %s %sd%s\n", argv[2], verb,
				json_integer_value(json_object_get(j, "sessions_ended")) ? "; its live sessions were ended" : "");
		return finish(&a, j);
	}
	api_free(&a);
	return usage_identity();
}


int gw_cli_token(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (argc < 2 || wants_help(argc, argv)) {
		api_free(&a);
		return usage(token_usage, argc >= 2);
	}
	long st;
	const char *verb = argv[1];
	if (!strcmp(verb, "issue") && argc >= 3) {
		const char *ttl = NULL;
		for (int i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--ttl") && i + 1 < argc)
				ttl = argv[++i];
			else {
				api_free(&a);
				return usage_token();
			}
		}
		json_t *in = json_pack("{s:s,s:s}", "identity", argv[2], "ttl", ttl ? ttl : "");
		json_t *j = call(&a, "POST", "/v1/tokens", in, &st);
		json_decref(in);
		if (j && a.json)
			print_json(j);
		else if (j) {
			printf("%s\n", jstr(j, "token"));
			fprintf(stderr, "token %s for %s issued (expires: %s); it is shown only once\n", jstr(j, "id"),
				jstr(j, "identity"), jstr(j, "expires_at"));
		}
		return finish(&a, j);
	}
	if (!strcmp(verb, "list") && argc == 2) {
		json_t *j = call(&a, "GET", "/v1/tokens", NULL, &st);
		if (j && a.json)
			print_json(j);
		else if (j) {
			printf("%-14s %-28s %-28s %-28s %s\n", "ID", "IDENTITY", "CREATED", "EXPIRES", "ACTIVE");
			size_t i;
			json_t *o;
			json_array_foreach(j, i, o)
				printf("%-14s %-28s %-28s %-28s %s\n", jstr(o, "id"), jstr(o, "identity"), jstr(o, "created_at"),
					jstr(o, "expires_at"), jstr(o, "active"));
		}
		return finish(&a, j);
	}
	if (!strcmp(verb, "revoke") && argc == 3) {
		char *path = gw_xasprintf("/v1/tokens/%s", argv[2]);
		json_t *j = call(&a, "DELETE", path, NULL, &st);
		free(path);
		if (j)
			printf("token %s revoked; %lld live session(s) ended\n", argv[2],
				(long long)json_integer_value(json_object_get(j, "sessions_ended")));
		return finish(&a, j);
	}
	api_free(&a);
	return usage_token();
}

int gw_cli_sessions(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--active"))
			continue; /* every listed session is live */
		api_free(&a);
		bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
		fprintf(help ? stdout : stderr, "usage: pgmoat sessions [--active] [--json] [--gateway URL] [--token-file F]\n");
		return help ? 0 : 2;
	}
	long st;
	json_t *j = call(&a, "GET", "/v1/sessions", NULL, &st);
	if (j && a.json)
		print_json(j);
	else if (j) {
		printf("%-36s %-20s %-16s %-15s %-8s %-7s %10s %s\n", "ID", "IDENTITY", "CONNECTION", "CLIENT", "TLS",
			"STATE", "STATEMENTS", "STARTED");
		size_t i;
		json_t *o;
		json_array_foreach(j, i, o)
			printf("%-36s %-20s %-16s %-15s %-8s %-7s %10lld %s\n", jstr(o, "id"), jstr(o, "identity"),
				jstr(o, "connection"), jstr(o, "client_addr"), jstr(o, "tls"), jstr(o, "state"),
				(long long)json_integer_value(json_object_get(o, "statements")), jstr(o, "started_at"));
	}
	return finish(&a, j);
}

int gw_cli_relays(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (argc != 1) {
		api_free(&a);
		bool help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
		fprintf(help ? stdout : stderr, "usage: pgmoat relays [--json] [--gateway URL] [--token-file F]\n"
			"Relays the connections use or that are connected: their processes, tunnels ready and busy,\n"
			"sessions through them, and when each was last seen.\n");
		return help ? 0 : 2;
	}
	long st;
	json_t *j = call(&a, "GET", "/v1/relays", NULL, &st);
	if (j && a.json)
		print_json(j);
	else if (j) {
		printf("%-16s %-10s %6s %6s %8s  %-20s %s\n", "RELAY", "STATE", "READY", "BUSY", "SESSIONS", "LAST SEEN",
			"PROCESSES (instance address targets)");
		size_t i;
		json_t *o;
		json_array_foreach(j, i, o) {
			printf("%-16s %-10s %6lld %6lld %8lld  %-20s", jstr(o, "name"), jstr(o, "state"),
				(long long)json_integer_value(json_object_get(o, "tunnels_idle")),
				(long long)json_integer_value(json_object_get(o, "tunnels_busy")),
				(long long)json_integer_value(json_object_get(o, "sessions")),
				json_is_string(json_object_get(o, "last_seen")) ? jstr(o, "last_seen") : "never");
			size_t k;
			json_t *in;
			json_array_foreach(json_object_get(o, "instances"), k, in) {
				char targets[256] = "";
				size_t q;
				json_t *t;
				json_array_foreach(json_object_get(in, "targets"), q, t) {
					size_t l = strlen(targets);
					snprintf(targets + l, sizeof(targets) - l, "%s%s", q ? "," : "", json_string_value(t));
				}
				printf("%s%s %s %s", k ? "; " : " ", jstr(in, "instance"), jstr(in, "address"), targets);
			}
			printf("\n");
		}
	}
	return finish(&a, j);
}

int gw_cli_kill(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (argc != 2 || argv[1][0] == '-') {
		api_free(&a);
		bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
		fprintf(help ? stdout : stderr, "usage: pgmoat kill SESSION_ID [--gateway URL] [--token-file F]\n");
		return help ? 0 : 2;
	}
	long st;
	char *path = gw_xasprintf("/v1/sessions/%s", argv[1]);
	json_t *j = call(&a, "DELETE", path, NULL, &st);
	free(path);
	if (j)
		printf("session %s ended\n", argv[1]);
	return finish(&a, j);
}

/* ---- just-in-time access: request, requests, approve, deny, grants, revoke, reviews, review ---- */

static const char request_usage[] =
	"usage: pgmoat request CONNECTION --scope read|write|ddl|admin [--tables schema.t1,schema.t2]\n"
	"                      [--for 30m] --reason TEXT [--json]\n"
	"  Ask for just-in-time access under a jit policy. Prints the request id and its state; when\n"
	"  the policy needs no approval the grant is made at once (its id and expiry are printed).\n"
	"  --for defaults to the policy's max_duration and is capped at it.\n" COMMON_OPTIONS;
static const char requests_usage[] =
	"usage: pgmoat requests [--pending] [--json]\n"
	"  Access requests: admins see all, approvers those of their policies, others their own.\n" COMMON_OPTIONS;
static const char approve_usage[] =
	"usage: pgmoat approve REQUEST_ID [--comment TEXT]\n"
	"  Approve a pending request (admins and the policy's approvers; never your own request).\n" COMMON_OPTIONS;
static const char deny_usage[] =
	"usage: pgmoat deny REQUEST_ID [--comment TEXT]\n"
	"  Deny a pending request; one denial ends it.\n" COMMON_OPTIONS;
static const char grants_usage[] =
	"usage: pgmoat grants [--active] [--json]\n"
	"  Grants made from requests (non-admins see their own). --active: only those in force.\n" COMMON_OPTIONS;
static const char revoke_usage[] =
	"usage: pgmoat revoke GRANT_ID\n"
	"  End a grant now (admins, or the grant's own identity); its sessions end within a second.\n" COMMON_OPTIONS;
static const char reviews_usage[] =
	"usage: pgmoat reviews [--pending] [--json]\n"
	"  Statements waiting for (or given) a per-statement review.\n" COMMON_OPTIONS;
static const char review_usage[] =
	"usage: pgmoat review approve REVIEW_ID [--comment TEXT]\n"
	"       pgmoat review deny REVIEW_ID [--comment TEXT]\n"
	"  An approved statement runs once, when its author sends it again.\n" COMMON_OPTIONS;

/* A positive decimal id; false otherwise. */
static bool id_arg(const char *s)
{
	if (!*s || strlen(s) > 18)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return atoll(s) > 0;
}

static long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* A JSON list of strings as "a,b" (or "-"). */
static void jlist(json_t *o, const char *k, char *out, size_t cap)
{
	out[0] = 0;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(o, k), i, v) {
		if (i)
			strncat(out, ",", cap - strlen(out) - 1);
		strncat(out, json_string_value(v) ? json_string_value(v) : "?", cap - strlen(out) - 1);
	}
	if (!*out)
		snprintf(out, cap, "-");
}

static void fmt_secs(long long s, char *out, size_t cap)
{
	if (s % 86400 == 0 && s)
		snprintf(out, cap, "%lldd", s / 86400);
	else if (s % 3600 == 0 && s)
		snprintf(out, cap, "%lldh", s / 3600);
	else if (s % 60 == 0 && s)
		snprintf(out, cap, "%lldm", s / 60);
	else
		snprintf(out, cap, "%llds", s);
}

/*
 * Text from the record or a client made safe for a terminal: control
 * characters (ESC, and the C1 range, which some terminals obey too) become
 * '?', so a statement cannot drive the reader's terminal. keep_nl keeps
 * newlines and tabs and drops CR (else all three become spaces). Cut at max
 * bytes on a character boundary, with "..." added. true when cut.
 */
static bool clean_text(const char *s, size_t max, bool keep_nl, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	bool cut = false;
	if (max + 4 > cap)
		max = cap - 4;
	while (*p) {
		unsigned char c = *p;
		size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		for (size_t k = 1; k < l; k++)
			if ((p[k] & 0xC0) != 0x80)
				l = 0;
		if (o + (l ? l : 1) > max) {
			cut = true;
			break;
		}
		if (c == '\n' || c == '\t') {
			out[o++] = keep_nl ? (char)c : ' ';
		} else if (c == '\r') {
			if (!keep_nl)
				out[o++] = ' ';
		} else if (c < 0x20 || c == 0x7f || !l || (c == 0xC2 && p[1] < 0xA0)) {
			out[o++] = '?';
		} else {
			memcpy(out + o, p, l);
			o += l;
		}
		p += l ? l : 1;
	}
	if (cut) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
	return cut;
}

/* One line of text: newlines and tabs become spaces, cut at max bytes (with "..."). */
static void one_line(const char *s, size_t max, char *out, size_t cap)
{
	clean_text(s, max, false, out, cap);
}

/* Parse the options of a verb that takes none but --flag (bool) and --comment T. Returns false on a stray argument. */
static bool verb_opts(int argc, char **argv, int from, const char *flag, bool *flag_set, const char **comment)
{
	for (int i = from; i < argc; i++) {
		if (flag && !strcmp(argv[i], flag))
			*flag_set = true;
		else if (comment && !strcmp(argv[i], "--comment") && i + 1 < argc)
			*comment = argv[++i];
		else if (comment && !strncmp(argv[i], "--comment=", 10))
			*comment = argv[i] + 10;
		else
			return false;
	}
	return true;
}

static void print_request_outcome(json_t *j)
{
	const char *state = jstr(j, "state");
	json_t *g = json_object_get(j, "grant");
	if (!strcmp(state, "granted") && json_is_object(g)) {
		printf("request %lld granted: grant %lld, %s on %s until %s (policy %s)\n", jint(j, "id"), jint(g, "id"),
			jstr(g, "scope"), jstr(g, "connection"), jstr(g, "expires_at"), jstr(j, "policy"));
	} else if (!strcmp(state, "pending")) {
		printf("request %lld pending: %zu of %lld approvals (policy %s); an approver runs: pgmoat approve %lld\n",
			jint(j, "id"), json_array_size(json_object_get(j, "approvals")), jint(j, "required"),
			jstr(j, "policy"), jint(j, "id"));
	} else {
		printf("request %lld %s\n", jint(j, "id"), state);
	}
}

int gw_cli_request(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (wants_help(argc, argv) || argc < 2 || argv[1][0] == '-') {
		api_free(&a);
		return usage(request_usage, wants_help(argc, argv));
	}
	const char *scope = NULL, *tables = NULL, *dur = NULL, *reason = NULL;
	for (int i = 2; i < argc; i++) {
		const char **dst = !strcmp(argv[i], "--scope") ? &scope : !strcmp(argv[i], "--tables") ? &tables :
			!strcmp(argv[i], "--for") ? &dur : !strcmp(argv[i], "--reason") ? &reason : NULL;
		if (!dst || i + 1 >= argc) {
			api_free(&a);
			return usage(request_usage, false);
		}
		*dst = argv[++i];
	}
	if (!scope || !reason) {
		fprintf(stderr, "pgmoat request: --scope and --reason are required\n");
		api_free(&a);
		return usage(request_usage, false);
	}
	json_t *in = json_pack("{s:s,s:s,s:s}", "connection", argv[1], "scope", scope, "reason", reason);
	if (dur)
		json_object_set_new(in, "duration", json_string(dur));
	if (tables) {
		json_t *t = json_array();
		char *copy = gw_xstrdup(tables), *save = NULL;
		for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save))
			json_array_append_new(t, json_string(p));
		free(copy);
		json_object_set_new(in, "tables", t);
	}
	long st;
	json_t *j = call(&a, "POST", "/v1/requests", in, &st);
	json_decref(in);
	if (j && a.json)
		print_json(j);
	else if (j) {
		print_request_outcome(j);
		if (json_is_true(json_object_get(j, "duration_capped"))) {
			char d[32];
			fmt_secs(jint(j, "duration_s"), d, sizeof(d));
			printf("note: the duration was capped at the policy's max_duration (%s)\n", d);
		}
	}
	return finish(&a, j);
}

/*
 * The list verbs (requests, grants, reviews): one optional flag that narrows
 * the route, --json or a table whose rows print_row writes.
 */
static int list_verb(int argc, char **argv, const char *text, const char *flag, const char *route,
	const char *narrowed, const char *header, void (*print_row)(json_t *))
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	bool on = false;
	if (wants_help(argc, argv) || !verb_opts(argc, argv, 1, flag, &on, NULL)) {
		api_free(&a);
		return usage(text, wants_help(argc, argv));
	}
	long st;
	json_t *j = call(&a, "GET", on ? narrowed : route, NULL, &st);
	if (j && a.json) {
		print_json(j);
	} else if (j) {
		printf("%s\n", header);
		size_t i;
		json_t *o;
		json_array_foreach(j, i, o)
			print_row(o);
	}
	return finish(&a, j);
}

static void request_row(json_t *o)
{
	char d[32], appr[24], reason[80];
	fmt_secs(jint(o, "duration_s"), d, sizeof(d));
	snprintf(appr, sizeof(appr), "%zu/%lld", json_array_size(json_object_get(o, "approvals")), jint(o, "required"));
	one_line(jstr(o, "reason"), 60, reason, sizeof(reason));
	printf("%-6lld %-20s %-16s %-6s %-8s %-8s %-9s %-27s %s\n", jint(o, "id"), jstr(o, "identity"),
		jstr(o, "connection"), jstr(o, "scope"), d, jstr(o, "state"), appr, jstr(o, "created_at"), reason);
}

int gw_cli_requests(int argc, char **argv)
{
	char header[160];
	snprintf(header, sizeof(header), "%-6s %-20s %-16s %-6s %-8s %-8s %-9s %-27s %s", "ID", "IDENTITY",
		"CONNECTION", "SCOPE", "DURATION", "STATE", "APPROVALS", "CREATED", "REASON");
	return list_verb(argc, argv, requests_usage, "--pending", "/v1/requests", "/v1/requests?state=pending", header,
		request_row);
}

/* POST /v1/WHAT/ID/approve|deny with an optional comment: the answer, or NULL (reported). */
static json_t *post_decision(api *a, const char *what, const char *id, bool approve, const char *comment)
{
	json_t *in = comment ? json_pack("{s:s}", "comment", comment) : NULL;
	char *path = gw_xasprintf("/v1/%s/%s/%s", what, id, approve ? "approve" : "deny");
	long st;
	json_t *j = call(a, "POST", path, in, &st);
	free(path);
	json_decref(in);
	return j;
}

/* approve / deny REQUEST_ID [--comment T]. */
static int decide_request(int argc, char **argv, bool approve)
{
	const char *text = approve ? approve_usage : deny_usage;
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	const char *comment = NULL;
	if (wants_help(argc, argv) || argc < 2 || !id_arg(argv[1]) || !verb_opts(argc, argv, 2, NULL, NULL, &comment)) {
		api_free(&a);
		return usage(text, wants_help(argc, argv));
	}
	json_t *j = post_decision(&a, "requests", argv[1], approve, comment);
	if (j && a.json)
		print_json(j);
	else if (j)
		print_request_outcome(j);
	return finish(&a, j);
}

int gw_cli_approve(int argc, char **argv) { return decide_request(argc, argv, true); }
int gw_cli_deny(int argc, char **argv) { return decide_request(argc, argv, false); }

static void grant_row(json_t *o)
{
	char tables[256], reqid[24] = "-";
	jlist(o, "tables", tables, sizeof(tables));
	if (json_is_integer(json_object_get(o, "request_id")))
		snprintf(reqid, sizeof(reqid), "%lld", jint(o, "request_id"));
	printf("%-6lld %-20s %-16s %-6s %-24s %-27s %-8s %s\n", jint(o, "id"), jstr(o, "identity"),
		jstr(o, "connection"), jstr(o, "scope"), tables, jstr(o, "expires_at"), jstr(o, "state"), reqid);
}

int gw_cli_grants(int argc, char **argv)
{
	char header[160];
	snprintf(header, sizeof(header), "%-6s %-20s %-16s %-6s %-24s %-27s %-8s %s", "ID", "IDENTITY", "CONNECTION",
		"SCOPE", "TABLES", "EXPIRES", "STATE", "REQUEST");
	return list_verb(argc, argv, grants_usage, "--active", "/v1/grants", "/v1/grants?active=true", header, grant_row);
}

int gw_cli_revoke(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (wants_help(argc, argv) || argc != 2 || !id_arg(argv[1])) {
		api_free(&a);
		return usage(revoke_usage, wants_help(argc, argv));
	}
	char *path = gw_xasprintf("/v1/grants/%s", argv[1]);
	long st;
	json_t *j = call(&a, "DELETE", path, NULL, &st);
	free(path);
	if (j && a.json)
		print_json(j);
	else if (j)
		printf("grant %lld revoked (%s on %s for %s); its sessions end within a second\n", jint(j, "id"),
			jstr(j, "scope"), jstr(j, "connection"), jstr(j, "identity"));
	return finish(&a, j);
}

static void review_row(json_t *o)
{
	char stmt[96];
	one_line(jstr(o, "statement"), 80, stmt, sizeof(stmt));
	printf("%-6lld %-20s %-16s %-6s %-8s %-27s %s\n", jint(o, "id"), jstr(o, "identity"), jstr(o, "connection"),
		jstr(o, "class"), jstr(o, "state"), jstr(o, "created_at"), stmt);
}

int gw_cli_reviews(int argc, char **argv)
{
	char header[160];
	snprintf(header, sizeof(header), "%-6s %-20s %-16s %-6s %-8s %-27s %s", "ID", "IDENTITY", "CONNECTION", "CLASS",
		"STATE", "CREATED", "STATEMENT");
	return list_verb(argc, argv, reviews_usage, "--pending", "/v1/reviews", "/v1/reviews?state=pending", header,
		review_row);
}

int gw_cli_review(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	const char *comment = NULL;
	bool approve = argc >= 2 && !strcmp(argv[1], "approve");
	if (wants_help(argc, argv) || argc < 3 || (!approve && strcmp(argv[1], "deny")) || !id_arg(argv[2]) ||
		!verb_opts(argc, argv, 3, NULL, NULL, &comment)) {
		api_free(&a);
		return usage(review_usage, wants_help(argc, argv));
	}
	json_t *j = post_decision(&a, "reviews", argv[2], approve, comment);
	if (j && a.json)
		print_json(j);
	else if (j)
		printf("review %lld %s%s\n", jint(j, "id"), jstr(j, "state"),
			approve ? ": the statement runs once when its author sends it again" : "");
	return finish(&a, j);
}

/* ---- the record: audit, audit verify ---- */

static const char audit_usage[] =
	"usage: pgmoat audit [--identity I] [--session S] [--since T] [--limit N] [--json]\n"
	"       pgmoat audit verify [--json]                   through the gateway (admins)\n"
	"       pgmoat audit verify -c pgmoat.yaml [--json]    offline, from the state file (the gateway may be down)\n"
	"  Reads the record oldest first: one line per session event and statement, each statement with its\n"
	"  decision and outcome. With --session S (and no --json): the session's timeline as a transcript.\n"
	"  --since T     2026-11-24T10:00:00Z (RFC 3339), unix seconds, or back from now: 15m, 2h, 7d\n"
	"  --limit N     stop after N events (default: all that match)\n"
	"  --json        one JSON object per line (JSON Lines), as GET /v1/audit returns them\n"
	"  Non-admins read only their own identity's record. verify walks the hash chain and the checkpoint:\n"
	"  exit 0 when it holds, 1 when it is broken (the first bad seq and what is wrong are printed).\n"
	COMMON_OPTIONS;

/* "--name VALUE" or "--name=VALUE" at argv[*i] (advancing *i past VALUE); false when argv[*i] is not it. */
static bool opt_val(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n))
		return false;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return true;
	}
	if (argv[*i][n] || *i + 1 >= argc)
		return false;
	*val = argv[++*i];
	return true;
}

/* &key=VALUE (percent-encoded) onto the query string in out; false when it does not fit. */
static bool query_add(char *out, size_t cap, const char *key, const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = strlen(out);
	int n = snprintf(out + o, cap - o, "&%s=", key);
	if (n < 0 || (size_t)n >= cap - o)
		return false;
	o += (size_t)n;
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (o + 4 > cap)
			return false;
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = 0;
	return true;
}

/* "2026-11-24T10:00:00.123456Z" into unix microseconds; 0 when it is not one. */
static int64_t ts_us(const char *iso)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	unsigned us = 0;
	if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d.%6uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			&tm.tm_sec, &us) != 7)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000000 + us;
}

/* 812 us, 0.8 ms, 1.25 s, 3m07s, 2h05m */
static void fmt_us(long long us, char *out, size_t cap)
{
	if (us < 1000)
		snprintf(out, cap, "%lld us", us);
	else if (us < 1000000)
		snprintf(out, cap, "%.1f ms", us / 1e3);
	else if (us < 60000000)
		snprintf(out, cap, "%.2f s", us / 1e6);
	else if (us < 3600000000ll)
		snprintf(out, cap, "%lldm%02llds", us / 60000000, us / 1000000 % 60);
	else
		snprintf(out, cap, "%lldh%02lldm", us / 3600000000ll, us / 60000000 % 60);
}

static void fmt_bytes(long long n, char *out, size_t cap)
{
	if (n < 10000)
		snprintf(out, cap, "%lld B", n);
	else if (n < 10000000)
		snprintf(out, cap, "%.1f kB", n / 1e3);
	else if (n < 10000000000ll)
		snprintf(out, cap, "%.1f MB", n / 1e6);
	else
		snprintf(out, cap, "%.1f GB", n / 1e9);
}

/*
 * What became of a statement: "ok, 10 rows, 0.8 ms", "error 22012, 1.5 ms",
 * "denied 42501 by rule no_drop", "review #4", "skipped", "outcome unknown".
 * decision: prefix allowed ones with "allow/" (the list; the timeline says it by the outcome).
 */
static void result_text(json_t *o, bool decision, char *out, size_t cap)
{
	const char *dec = jstr(o, "decision"), *status = jstr(o, "status");
	char rule[160], dur[32] = "", rows[40] = "";
	one_line(jstr(o, "rule"), 120, rule, sizeof(rule));
	if (!strcmp(dec, "deny")) {
		snprintf(out, cap, "denied %s by rule %s", jstr(o, "sqlstate"), rule);
		return;
	}
	if (!strcmp(dec, "review")) {
		snprintf(out, cap, "review #%lld (%s)", jint(o, "review"), jstr(o, "sqlstate"));
		return;
	}
	json_t *r = json_object_get(o, "rows"), *d = json_object_get(o, "duration_us");
	if (json_is_integer(r))
		snprintf(rows, sizeof(rows), ", %lld row%s", (long long)json_integer_value(r), json_integer_value(r) == 1 ? "" : "s");
	if (json_is_integer(d)) {
		char t[24];
		fmt_us((long long)json_integer_value(d), t, sizeof(t));
		snprintf(dur, sizeof(dur), ", %s", t);
	}
	const char *pre = decision ? "allow/" : "";
	if (!strcmp(status, "ok") || !strcmp(status, "suspended"))
		snprintf(out, cap, "%s%s%s%s", pre, status, rows, dur);
	else if (!strcmp(status, "error"))
		snprintf(out, cap, "%serror %s%s", pre, jstr(o, "sqlstate"), dur);
	else if (!strcmp(status, "unknown") || !strcmp(status, "-"))
		snprintf(out, cap, "%s%s", pre, decision ? "unknown" : "outcome unknown");
	else
		snprintf(out, cap, "%s%s", pre, status);
}

static void session_open_text(json_t *o, char *out, size_t cap)
{
	char app[96];
	one_line(jstr(o, "application_name"), 60, app, sizeof(app));
	snprintf(out, cap, "connection %s, client %s, %s, auth %s, application %s", jstr(o, "connection"),
		jstr(o, "client"), json_is_string(json_object_get(o, "tls")) ? jstr(o, "tls") : "no TLS", jstr(o, "auth"),
		*app ? app : "-");
}

static void session_close_text(json_t *o, char *out, size_t cap)
{
	char in[24], outb[24], dur[24], reason[120];
	fmt_bytes(jint(o, "bytes_in"), in, sizeof(in));
	fmt_bytes(jint(o, "bytes_out"), outb, sizeof(outb));
	fmt_us(jint(o, "duration_us"), dur, sizeof(dur));
	one_line(jstr(o, "reason"), 100, reason, sizeof(reason));
	snprintf(out, cap, "%lld statement%s, %s in, %s out, after %s (%s)", jint(o, "statements"),
		jint(o, "statements") == 1 ? "" : "s", in, outb, dur, reason);
}

/* One line per event: time, identity, session (first 8), event, details. */
static void audit_line(json_t *o)
{
	const char *ev = jstr(o, "event");
	char ident[64], raw[9], sess[16], det[512], text[160];
	one_line(jstr(o, "identity"), 40, ident, sizeof(ident));
	snprintf(raw, sizeof(raw), "%s", jstr(o, "session"));
	one_line(raw, 8, sess, sizeof(sess));
	text[0] = 0;
	if (!strcmp(ev, "statement")) {
		char res[300];
		result_text(o, true, res, sizeof(res));
		snprintf(det, sizeof(det), "#%-4lld %-36s", jint(o, "n"), res);
		one_line(jstr(o, "statement"), 120, text, sizeof(text));
	} else if (!strcmp(ev, "session_open")) {
		session_open_text(o, det, sizeof(det));
	} else if (!strcmp(ev, "session_close")) {
		session_close_text(o, det, sizeof(det));
	} else {
		snprintf(det, sizeof(det), "%s", json_is_true(json_object_get(o, "unreadable")) ?
			"(this record's body is not JSON: run pgmoat audit verify)" : "");
	}
	printf("%-27s %-20s %-8s %-13s %s%s%s\n", jstr(o, "ts"), ident, sess, ev, det, *text ? " " : "", text);
}

/* The per-session transcript, printed as the pages come. */
typedef struct timeline {
	const char *session;
	int64_t start_us;
	bool header;
	long long statements;
} timeline;

#define TL_TEXT_MAX 4000 /* bytes of one statement shown in the timeline (--json has all of it) */

static void tl_header(timeline *t, json_t *o)
{
	char sid[80];
	one_line(t->session, 64, sid, sizeof(sid));
	t->header = true;
	t->start_us = ts_us(jstr(o, "ts"));
	if (strcmp(jstr(o, "event"), "session_open")) {
		printf("session %s (its opening is not in what was read)\n  identity     %s\n\n", sid, jstr(o, "identity"));
		return;
	}
	char app[96], client[80];
	one_line(jstr(o, "application_name"), 80, app, sizeof(app));
	one_line(jstr(o, "client"), 70, client, sizeof(client));
	printf("session %s\n", sid);
	printf("  identity     %s (%s)\n", jstr(o, "identity"), jstr(o, "kind"));
	printf("  connection   %s\n", jstr(o, "connection"));
	printf("  client       %s\n", client);
	printf("  tls          %s\n", json_is_string(json_object_get(o, "tls")) ? jstr(o, "tls") : "none");
	printf("  auth         %s\n", jstr(o, "auth"));
	printf("  application  %s\n", *app ? app : "-");
	printf("  opened       %s\n\n", jstr(o, "ts"));
}

/* Text with its lines after the first indented by ind columns. */
static void put_indented(const char *text, int ind)
{
	for (const char *p = text; *p; p++) {
		putchar(*p);
		if (*p == '\n')
			printf("%*s", ind, "");
	}
}

/* $1 = '42', $2 = NULL, $3 = <5000 bytes, sha256 ab12...> */
static void tl_params(json_t *params, int ind)
{
	size_t i;
	json_t *v;
	printf("%*sparams:", ind, "");
	json_array_foreach(params, i, v) {
		char val[240];
		if (json_is_string(v)) {
			one_line(json_string_value(v), 200, val, sizeof(val));
			printf("%s $%zu = '%s'", i ? "," : "", i + 1, val);
		} else if (json_is_object(v)) {
			one_line(jstr(v, "sha256"), 16, val, sizeof(val));
			printf("%s $%zu = <%lld bytes, sha256 %s>", i ? "," : "", i + 1, jint(v, "bytes"), val);
		} else {
			printf("%s $%zu = NULL", i ? "," : "", i + 1);
		}
	}
	putchar('\n');
}

static void tl_event(timeline *t, json_t *o)
{
	const char *ev = jstr(o, "event");
	if (!t->header)
		tl_header(t, o);
	if (!strcmp(ev, "session_open"))
		return;
	int64_t at = ts_us(jstr(o, "ts"));
	char off[32], prefix[64];
	snprintf(off, sizeof(off), "+%.3fs", (double)(at - t->start_us) / 1e6);
	if (!strcmp(ev, "session_close")) {
		char det[400];
		session_close_text(o, det, sizeof(det));
		printf("  %-10s closed: %s\n", off, det);
		return;
	}
	if (strcmp(ev, "statement")) {
		printf("  %-10s %s\n", off, ev);
		return;
	}
	t->statements++;
	char *text = gw_xmalloc(TL_TEXT_MAX + 8), res[300];
	const char *st = jstr(o, "statement");
	size_t len = strlen(st);
	while (len && (st[len - 1] == '\n' || st[len - 1] == ' ' || st[len - 1] == '\t' || st[len - 1] == '\r'))
		len--;
	char *trimmed = gw_xstrndup(st, len);
	bool cut = clean_text(trimmed, TL_TEXT_MAX, true, text, TL_TEXT_MAX + 8);
	free(trimmed);
	result_text(o, false, res, sizeof(res));
	int n = snprintf(prefix, sizeof(prefix), "  %-10s #%-4lld ", off, jint(o, "n"));
	fputs(prefix, stdout);
	put_indented(text, n);
	printf("  => %s\n", res);
	if (cut || json_is_integer(json_object_get(o, "statement_bytes")))
		printf("%*s(%lld bytes in all; --json shows what the record holds)\n", n,  "",
			json_is_integer(json_object_get(o, "statement_bytes")) ? jint(o, "statement_bytes") : (long long)len);
	if (json_is_array(json_object_get(o, "params")) && json_array_size(json_object_get(o, "params")))
		tl_params(json_object_get(o, "params"), n);
	free(text);
}

/* Page through /v1/audit and print: JSON Lines, the timeline (--session), or one line per event. */
static int audit_read(api *a, const char *identity, const char *session, const char *since, long long max)
{
	timeline tl = {.session = session};
	bool as_timeline = session && !a->json;
	long long shown = 0, after = 0;
	for (;;) {
		long long page = max > 0 && max - shown < 1000 ? max - shown : 1000;
		char path[2048];
		snprintf(path, sizeof(path), "/v1/audit?limit=%lld", page);
		if (after)
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "&after=%lld", after);
		/* since only on the first page: after= then implies it (ts never goes back along seq) */
		if ((identity && !query_add(path, sizeof(path), "identity", identity)) ||
			(session && !query_add(path, sizeof(path), "session", session)) ||
			(since && !after && !query_add(path, sizeof(path), "since", since))) {
			fprintf(stderr, "pgmoat audit: an argument is too long\n");
			return 1;
		}
		long st;
		json_t *j = call(a, "GET", path, NULL, &st);
		if (!j)
			return 1;
		json_t *events = json_object_get(j, "events"), *o;
		size_t i;
		if (!shown && !a->json && !as_timeline)
			printf("%-27s %-20s %-8s %-13s %s\n", "TIME", "IDENTITY", "SESSION", "EVENT", "DETAILS");
		json_array_foreach(events, i, o) {
			if (a->json) {
				char *s = json_dumps(o, JSON_COMPACT);
				puts(s);
				free(s);
			} else if (as_timeline) {
				tl_event(&tl, o);
			} else {
				audit_line(o);
			}
		}
		shown += (long long)json_array_size(events);
		json_t *next = json_object_get(j, "next");
		after = json_is_integer(next) ? (long long)json_integer_value(next) : 0;
		bool done = !after || !json_array_size(events) || (max > 0 && shown >= max);
		json_decref(j);
		if (done)
			break;
	}
	if (as_timeline && !shown) {
		fprintf(stderr, "pgmoat: no record of session %s%s (give its whole id, as in --json or pgmoat sessions)\n",
			session, since ? " in that time" : "");
		return 1;
	}
	if (as_timeline)
		printf("\n%lld statement%s shown\n", tl.statements, tl.statements == 1 ? "" : "s");
	return 0;
}

static void verify_progress(int64_t done, void *arg)
{
	fprintf(stderr, "verified %lld records...\n", (long long)done);
}

/* audit verify: through the API, or with -c straight from the state file. */
static int audit_verify(api *a, const char *config)
{
	json_t *res;
	if (config) {
		char *errors = NULL, err[600];
		gw_config *cfg = gw_config_load(config, &errors);
		if (!cfg) {
			fputs(errors, stderr);
			free(errors);
			return 1;
		}
		gw_audit_verify_result r;
		int rc = gw_audit_verify(cfg->state_path, cfg->audit_checkpoint_key, cfg->audit_checkpoint_key_len, &r,
			verify_progress, NULL, err, sizeof(err));
		gw_config_free(cfg);
		if (rc) {
			fprintf(stderr, "pgmoat: the record cannot be verified: %s\n", err);
			return 1;
		}
		res = json_pack("{s:b,s:I,s:I,s:o,s:o,s:b,s:o}", "ok", r.ok, "records", (json_int_t)r.records,
			"last_seq", (json_int_t)r.last_seq, "bad_seq", r.bad_seq ? json_integer(r.bad_seq) : json_null(),
			"problem", r.problem[0] ? json_string(r.problem) : json_null(), "signed_checkpoint", r.signed_checkpoint,
			"note", r.note[0] ? json_string(r.note) : json_null());
	} else {
		long st;
		a->accept = 409;      /* broken: the answer says where */
		a->timeout_s = 3600;  /* the walk reads every record */
		res = call(a, "GET", "/v1/audit/verify", NULL, &st);
		if (!res)
			return 1;
	}
	bool ok = json_is_true(json_object_get(res, "ok"));
	if (a->json) {
		print_json(res);
	} else if (ok) {
		printf("audit chain OK: %lld records, last seq %lld%s\n", jint(res, "records"), jint(res, "last_seq"),
			json_is_true(json_object_get(res, "signed_checkpoint")) ? " (signed checkpoint verified)" : "");
		if (json_is_string(json_object_get(res, "note")))
			printf("note: %s\n", jstr(res, "note"));
	} else {
		printf("audit chain BROKEN at seq %lld: %s\n", jint(res, "bad_seq"), jstr(res, "problem"));
	}
	json_decref(res);
	return ok ? 0 : 1;
}

int gw_cli_audit(int argc, char **argv)
{
	api a;
	int rc = api_init(&a, &argc, argv);
	if (rc)
		return rc;
	if (wants_help(argc, argv)) {
		api_free(&a);
		return usage(audit_usage, true);
	}
	if (argc >= 2 && !strcmp(argv[1], "verify")) {
		const char *config = NULL;
		for (int i = 2; i < argc; i++) {
			if (!opt_val(argc, argv, &i, "-c", &config) && !opt_val(argc, argv, &i, "--config", &config)) {
				api_free(&a);
				return usage(audit_usage, false);
			}
		}
		rc = audit_verify(&a, config);
		api_free(&a);
		return rc;
	}
	const char *identity = NULL, *session = NULL, *since = NULL, *limit = NULL;
	for (int i = 1; i < argc; i++) {
		if (!opt_val(argc, argv, &i, "--identity", &identity) && !opt_val(argc, argv, &i, "--session", &session) &&
			!opt_val(argc, argv, &i, "--since", &since) && !opt_val(argc, argv, &i, "--limit", &limit)) {
			fprintf(stderr, "pgmoat audit: unexpected argument '%s'\n", argv[i]);
			api_free(&a);
			return usage(audit_usage, false);
		}
	}
	long long max = 0;
	if (limit) {
		char *end;
		max = strtoll(limit, &end, 10);
		if (*end || max < 1) {
			fprintf(stderr, "pgmoat audit: --limit takes a positive number\n");
			api_free(&a);
			return 2;
		}
	}
	rc = audit_read(&a, identity && *identity ? identity : NULL, session && *session ? session : NULL,
		since && *since ? since : NULL, max);
	api_free(&a);
	return rc;
}
