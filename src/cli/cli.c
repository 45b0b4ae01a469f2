/*
 * Admin verbs over the HTTP API; see cli.h.
 */
#include "cli/cli.h"
#include "core/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct api {
	const char *gateway;
	char *token;
	bool json;
} api;

typedef struct body {
	char *p;
	size_t n;
} body;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	body *b = ud;
	size_t n = size * nmemb;
	if (b->n + n > (64u << 20))
		return 0;
	b->p = gw_xrealloc(b->p, b->n + n + 1);
	memcpy(b->p + b->n, ptr, n);
	b->n += n;
	b->p[b->n] = 0;
	return n;
}

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
	body b = {0};
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
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
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
		out = b.p ? json_loads(b.p, 0, &je) : NULL;
		if (!out)
			fprintf(stderr, "pgmoat: the gateway answered %ld with no JSON\n", *status);
		else if (*status >= 400) {
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
	free(b.p);
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

#define COMMON_OPTIONS "common options: --gateway URL (PGMOAT_GATEWAY), --token-file F (PGMOAT_TOKEN)\n"

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

/* One line of text: newlines and tabs become spaces, cut at max bytes (with "..."). */
static void one_line(const char *s, size_t max, char *out, size_t cap)
{
	size_t o = 0;
	for (; *s && o + 4 < cap; s++) {
		if (o >= max) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
	}
	out[o] = 0;
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
	json_t *in = comment ? json_pack("{s:s}", "comment", comment) : NULL;
	char *path = gw_xasprintf("/v1/requests/%s/%s", argv[1], approve ? "approve" : "deny");
	long st;
	json_t *j = call(&a, "POST", path, in, &st);
	free(path);
	json_decref(in);
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
	json_t *in = comment ? json_pack("{s:s}", "comment", comment) : NULL;
	char *path = gw_xasprintf("/v1/reviews/%s/%s", argv[2], approve ? "approve" : "deny");
	long st;
	json_t *j = call(&a, "POST", path, in, &st);
	free(path);
	json_decref(in);
	if (j && a.json)
		print_json(j);
	else if (j)
		printf("review %lld %s%s\n", jint(j, "id"), jstr(j, "state"),
			approve ? ": the statement runs once when its author sends it again" : "");
	return finish(&a, j);
}
