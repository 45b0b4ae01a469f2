/*
 * Doctor, the gateway side: `pgmoat doctor -c FILE [--json]`. Reads the
 * config, works out what each connection's policies can ever grant (its
 * "needs"), connects as the gateway would, runs the database-side core
 * (check.c) and prints the findings. See doctor.h.
 */
#include "doctor/doctor.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char doctor_usage[] =
	"usage: pgmoat doctor -c pgmoat.yaml [--json]\n"
	"\n"
	"Connects to each registered connection as the gateway does and reports risks under it (a\n"
	"connection through a relay is checked by that relay, with its credentials, asked through the\n"
	"running gateway's HTTP API with the config's admin_token or PGMOAT_TOKEN): an\n"
	"over-privileged upstream role (superuser, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS, membership in\n"
	"pg_read_server_files, pg_write_server_files, pg_execute_server_program, pg_signal_backend,\n"
	"pg_read_all_data, pg_write_all_data, owned objects, privileges above what any policy can grant),\n"
	"plaintext or unverified upstream TLS, masking rules naming missing columns, and routes beside the\n"
	"gateway (listen_addresses, pg_hba.conf where readable). Each finding has a severity, what was\n"
	"found, why it matters and the SQL that fixes it (run as a superuser).\n"
	"\n"
	"  -c, --config FILE   the gateway's config\n"
	"  --json              {\"connections\": [{\"name\", \"error\"?, \"findings\": [...]}], \"summary\"}\n"
	"\n"
	"Exit codes: 0 no high finding, 1 a high finding, 2 usage, config or connection error.\n";

static int max_int(int a, int b)
{
	return a > b ? a : b;
}

json_t *gw_doctor_needs(const gw_config *cfg, const gw_conn_cfg *cc)
{
	int max = GW_DOC_NONE, all = GW_DOC_NONE;
	json_t *tables = json_array();
	if (!cfg->has_policies) {
		max = all = GW_DOC_ADMIN; /* no policies: every statement is allowed */
	} else {
		for (size_t i = 0; i < cfg->n_policies; i++) {
			const gw_policy_cfg *p = &cfg->policies[i];
			if (!gw_strlist_has(&p->connections, cc->name))
				continue;
			max = max_int(max, p->scope);
			if (!p->has_tables) {
				all = max_int(all, p->scope);
				continue;
			}
			for (size_t k = 0; k < p->tables.n; k++) {
				const char *t = p->tables.v[k], *dot = strchr(t, '.');
				if (!dot)
					continue;
				char *schema = gw_xstrndup(t, (size_t)(dot - t));
				json_array_append_new(tables, json_pack("{s:s,s:s,s:s}", "schema", schema, "table", dot + 1,
					"scope", gw_doctor_scope_name(p->scope)));
				free(schema);
			}
		}
	}
	json_t *masking = json_array();
	for (size_t i = 0; i < cfg->n_mask_rules; i++) {
		const gw_mask_rule_cfg *r = &cfg->mask_rules[i];
		if (!r->column)
			continue; /* column_name: a pattern, not a column the catalog must have */
		json_array_append_new(masking, json_pack("{s:o,s:s,s:s}", "schema", r->schema ? json_string(r->schema)
			: json_null(), "table", r->table, "column", r->column));
	}
	return json_pack("{s:s,s:s?,s:s,s:b,s:s,s:o,s:o,s:{s:s?,s:i,s:s}}", "connection", cc->name, "role", cc->user,
		"max_scope", gw_doctor_scope_name(max), "ddl", max >= GW_DOC_DDL, "all_tables_scope",
		gw_doctor_scope_name(all), "tables", tables, "masking", masking, "upstream", "host", cc->host, "port",
		cc->port, "sslmode", gw_sslmode_str(cc->sslmode));
}

PGconn *gw_doctor_connect(const gw_conn_cfg *cc)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", cc->port);
	const char *keys[12], *vals[12];
	int n = 0;
	keys[n] = "host", vals[n++] = cc->host;
	keys[n] = "port", vals[n++] = port;
	keys[n] = "dbname", vals[n++] = cc->database;
	keys[n] = "user", vals[n++] = cc->user;
	if (cc->password)
		keys[n] = "password", vals[n++] = cc->password;
	keys[n] = "sslmode", vals[n++] = gw_sslmode_str(cc->sslmode);
	if (cc->sslrootcert)
		keys[n] = "sslrootcert", vals[n++] = cc->sslrootcert;
	keys[n] = "connect_timeout", vals[n++] = "10";
	keys[n] = "application_name", vals[n++] = "pgmoat doctor";
	keys[n] = "options", vals[n++] = "-c default_transaction_read_only=on";
	keys[n] = NULL, vals[n] = NULL;
	return PQconnectdbParams(keys, vals, 0);
}

static int finding_order(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int rx = gw_doctor_severity_rank(json_string_value(json_object_get(x, "severity")));
	int ry = gw_doctor_severity_rank(json_string_value(json_object_get(y, "severity")));
	return ry - rx;
}

/* The findings sorted high first (stable for equal severities: the core's order). */
static json_t *sorted(json_t *findings)
{
	size_t n = json_array_size(findings);
	json_t **v = gw_xcalloc(n + 1, sizeof(json_t *));
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(findings, i);
	/* insertion sort: stable, and the lists are short */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && finding_order(&v[j - 1], &v[j]) > 0; j--) {
			json_t *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	return out;
}

static void print_wrapped(const char *label, const char *text)
{
	/* one paragraph, indented under the finding, cut at about 100 columns */
	const int indent = 10, width = 100, start = indent + (int)strlen(label);
	printf("%*s%s", indent, "", label);
	int col = start;
	const char *p = text ? text : "";
	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = p;
		while (*w && *w != ' ')
			w++;
		int len = (int)(w - p);
		if (!len)
			break;
		if (col > start && col + 1 + len > width) {
			printf("\n%*s", start, "");
			col = start;
		} else if (col > start) {
			putchar(' ');
			col++;
		}
		printf("%.*s", len, p);
		col += len;
		p = w;
	}
	putchar('\n');
}

static void print_entry(const json_t *entry)
{
	printf("%s\n", json_string_value(json_object_get(entry, "header")));
	const char *skipped = json_string_value(json_object_get(entry, "not_checked"));
	const char *error = json_string_value(json_object_get(entry, "error"));
	if (skipped || error) {
		printf("  not checked: %s\n\n", skipped ? skipped : error);
		return;
	}
	const json_t *findings = json_object_get(entry, "findings");
	if (!json_array_size(findings)) {
		printf("  no findings\n\n");
		return;
	}
	size_t i;
	const json_t *f;
	json_array_foreach(findings, i, f) {
		char sev[16];
		snprintf(sev, sizeof(sev), "%s", json_string_value(json_object_get(f, "severity")));
		for (char *c = sev; *c; c++)
			*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
		printf("  %-7s %s: %s\n", sev, json_string_value(json_object_get(f, "id")),
			json_string_value(json_object_get(f, "what")));
		print_wrapped("why: ", json_string_value(json_object_get(f, "why")));
		const char *sql = json_string_value(json_object_get(f, "fix_sql"));
		if (sql)
			print_wrapped("fix (SQL, as a superuser): ", sql);
		else
			print_wrapped("fix: ", json_string_value(json_object_get(f, "fix")));
	}
	putchar('\n');
}

/* Sort an entry's findings (high first) and count them; an entry with "error" makes the run broken. */
static void tally(json_t *entry, int counts[4], bool *broken)
{
	if (json_object_get(entry, "error"))
		*broken = true;
	json_t *s = sorted(json_object_get(entry, "findings"));
	size_t k;
	json_t *f;
	json_array_foreach(s, k, f) {
		int rank = gw_doctor_severity_rank(json_string_value(json_object_get(f, "severity")));
		if (rank >= 0)
			counts[rank]++;
	}
	json_object_set_new(entry, "findings", s);
}

int gw_doctor_report(json_t *entries, bool as_json)
{
	int counts[4] = {0};
	bool broken = false;
	size_t i;
	json_t *e;
	json_array_foreach(entries, i, e) {
		if (!json_object_get(e, "findings"))
			json_object_set_new(e, "findings", json_array());
		tally(e, counts, &broken);
	}
	int rc = broken ? 2 : counts[3] ? 1 : 0;
	if (as_json) {
		json_array_foreach(entries, i, e)
			json_object_del(e, "header");
		json_t *out = json_pack("{s:O,s:{s:i,s:i,s:i,s:i},s:i}", "connections", entries, "summary", "high",
			counts[3], "medium", counts[2], "low", counts[1], "info", counts[0], "exit", rc);
		char *str = json_dumps(out, JSON_INDENT(2));
		puts(str);
		free(str);
		json_decref(out);
	} else {
		json_array_foreach(entries, i, e)
			print_entry(e);
		printf("%d high, %d medium, %d low, %d info%s\n", counts[3], counts[2], counts[1], counts[0],
			broken ? "; some connections could not be checked" : "");
	}
	return rc;
}

/* Run the core over a libpq connection made by connect; the findings, or NULL with err. */
json_t *gw_doctor_run(PGconn *pc, const json_t *needs, const char *what, char *err, size_t errlen)
{
	if (PQstatus(pc) != CONNECTION_OK) {
		const char *m = PQerrorMessage(pc);
		size_t len = strlen(m);
		while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
			len--;
		snprintf(err, errlen, "cannot connect to %s: %.*s", what, (int)len, m);
		return NULL;
	}
	return gw_doctor_check(pc, needs, err, errlen);
}


/*
 * A connection through a relay: the running gateway asks the relay to run the
 * core with its own credentials (POST /v1/relays/doctor). Findings, or NULL and err.
 */
static json_t *through_relay(const gw_config *cfg, const gw_conn_cfg *cc, const json_t *needs, char *err, size_t errlen)
{
	const char *token = getenv("PGMOAT_TOKEN");
	if (!token || !*token)
		token = cfg->admin_token;
	if (!cfg->http_port || !token) {
		snprintf(err, errlen, "through relay %s: the checks run on the relay, asked through the gateway's HTTP API, "
			"which needs listen.http and an admin token (admin_token in the config, or PGMOAT_TOKEN)", cc->relay);
		return NULL;
	}
	char url[400];
	snprintf(url, sizeof(url), "http://%s:%d/v1/relays/doctor", strcmp(cfg->http_host, "0.0.0.0") ? cfg->http_host
		: "127.0.0.1", cfg->http_port);
	json_t *body = json_pack("{s:s,s:O}", "connection", cc->name, "needs", needs);
	char *bs = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	char *auth = gw_xasprintf("Authorization: Bearer %s", token);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	gw_sink resp = {.max = 4u << 20};
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, bs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gw_sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode cr = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	explicit_bzero(auth, strlen(auth));
	free(auth);
	free(bs);
	json_t *out = NULL;
	if (cr != CURLE_OK) {
		snprintf(err, errlen, "through relay %s: the gateway at %s does not answer (%s); the relay's checks are asked "
			"through the running gateway", cc->relay, url, curl_easy_strerror(cr));
	} else {
		json_error_t je;
		json_t *j = gw_sink_str(&resp) ? json_loads(gw_sink_str(&resp), 0, &je) : NULL;
		if (status == 200 && json_is_array(json_object_get(j, "findings"))) {
			out = json_incref(json_object_get(j, "findings"));
		} else {
			const char *e = json_string_value(json_object_get(j, "error"));
			snprintf(err, errlen, "through relay %s: the gateway answered %ld: %s", cc->relay, status,
				e ? e : "no reason given");
		}
		json_decref(j);
	}
	gw_sink_free(&resp, false);
	return out;
}

int gw_doctor_args(int argc, char **argv, const char *prog, const char *usage, const char **path, bool *json)
{
	*path = NULL;
	*json = false;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
			*path = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			*json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n%s", prog, argv[i], usage);
			return 2;
		}
	}
	if (!*path) {
		fprintf(stderr, "%s: -c FILE is required\n%s", prog, usage);
		return 2;
	}
	return -1;
}

int gw_doctor_main(int argc, char **argv)
{
	const char *path;
	bool json;
	int arc = gw_doctor_args(argc, argv, "pgmoat doctor", doctor_usage, &path, &json);
	if (arc >= 0)
		return arc;
	char *errors = NULL;
	gw_config *cfg = gw_config_load(path, &errors);
	if (!cfg) {
		fputs(errors, stderr);
		free(errors);
		return 2;
	}
	if (!cfg->n_conns) {
		fprintf(stderr, "pgmoat doctor: %s registers no connections: nothing to check\n", path);
		gw_config_free(cfg);
		return 2;
	}
	json_t *entries = json_array();
	for (size_t i = 0; i < cfg->n_conns; i++) {
		const gw_conn_cfg *cc = &cfg->conns[i];
		json_t *needs = gw_doctor_needs(cfg, cc);
		char err[1024], header[600];
		json_t *findings;
		if (cc->relay) {
			snprintf(header, sizeof(header), "connection %s (through relay %s, target %s: checked by the relay)",
				cc->name, cc->relay, cc->target);
			findings = through_relay(cfg, cc, needs, err, sizeof(err));
		} else {
			snprintf(header, sizeof(header), "connection %s (%s@%s:%d/%s, sslmode %s)", cc->name, cc->user, cc->host,
				cc->port, cc->database, gw_sslmode_str(cc->sslmode));
			PGconn *pc = gw_doctor_connect(cc);
			char what[400];
			snprintf(what, sizeof(what), "%s:%d as %s", cc->host, cc->port, cc->user);
			findings = gw_doctor_run(pc, needs, what, err, sizeof(err));
			PQfinish(pc);
		}
		json_decref(needs);
		json_t *entry = json_pack("{s:s,s:s}", "name", cc->name, "header", header);
		if (cc->relay)
			json_object_set_new(entry, "relay", json_string(cc->relay));
		if (!findings) {
			fprintf(stderr, "pgmoat doctor: connection %s: %s\n", cc->name, err);
			json_object_set_new(entry, "error", json_string(err));
		} else {
			json_object_set_new(entry, "findings", findings);
		}
		json_array_append_new(entries, entry);
	}
	int rc = gw_doctor_report(entries, json);
	json_decref(entries);
	gw_config_free(cfg);
	return rc;
}
