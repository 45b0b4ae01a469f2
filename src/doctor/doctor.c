/*
 * Doctor, the gateway side: `pgmoat doctor -c FILE [--json]`. Reads the
 * config, works out what each connection's policies can ever grant (its
 * "needs"), connects as the gateway would, runs the database-side core
 * (check.c) and prints the findings. See doctor.h.
 */
#include "doctor/doctor.h"
#include "core/config.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char doctor_usage[] =
	"usage: pgmoat doctor -c pgmoat.yaml [--json]\n"
	"\n"
	"Connects to each registered connection as the gateway does and reports risks under it: an\n"
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

static PGconn *connect_upstream(const gw_conn_cfg *cc)
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

static void print_connection(const gw_conn_cfg *cc, const json_t *entry)
{
	const char *skipped = json_string_value(json_object_get(entry, "not_checked"));
	if (skipped) {
		printf("connection %s\n  not checked: %s\n\n", cc->name, skipped);
		return;
	}
	printf("connection %s (%s@%s:%d/%s, sslmode %s)\n", cc->name, cc->user, cc->host, cc->port, cc->database,
		gw_sslmode_str(cc->sslmode));
	const char *error = json_string_value(json_object_get(entry, "error"));
	if (error) {
		printf("  not checked: %s\n\n", error);
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

int gw_doctor_main(int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(doctor_usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "pgmoat doctor: unknown argument '%s'\n%s", argv[i], doctor_usage);
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "pgmoat doctor: -c FILE is required\n%s", doctor_usage);
		return 2;
	}
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
	json_t *conns = json_array();
	int counts[4] = {0}, unchecked = 0;
	bool broken = false;
	for (size_t i = 0; i < cfg->n_conns; i++) {
		const gw_conn_cfg *cc = &cfg->conns[i];
		json_t *entry = json_pack("{s:s}", "name", cc->name);
		if (cc->relay) {
			/* the gateway holds no password for it: the relay must run the core with its own */
			char *why = gw_xasprintf("through relay %s (target %s): the relay holds its credentials; run "
				"`pgmoat relay doctor` beside the database", cc->relay, cc->target ? cc->target : cc->name);
			json_object_set_new(entry, "not_checked", json_string(why));
			json_object_set_new(entry, "findings", json_array());
			json_array_append_new(conns, entry);
			free(why);
			unchecked++;
			continue;
		}
		json_t *needs = gw_doctor_needs(cfg, cc);
		PGconn *pc = connect_upstream(cc);
		char err[1024];
		json_t *findings = NULL;
		if (PQstatus(pc) != CONNECTION_OK) {
			char *m = PQerrorMessage(pc);
			size_t len = strlen(m);
			while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
				len--;
			snprintf(err, sizeof(err), "cannot connect to %s:%d as %s: %.*s", cc->host, cc->port, cc->user,
				(int)len, m);
		} else {
			findings = gw_doctor_check(pc, needs, err, sizeof(err));
		}
		PQfinish(pc);
		json_decref(needs);
		if (!findings) {
			broken = true;
			fprintf(stderr, "pgmoat doctor: connection %s: %s\n", cc->name, err);
			json_object_set_new(entry, "error", json_string(err));
			json_object_set_new(entry, "findings", json_array());
		} else {
			json_t *s = sorted(findings);
			json_decref(findings);
			size_t k;
			json_t *f;
			json_array_foreach(s, k, f) {
				int rank = gw_doctor_severity_rank(json_string_value(json_object_get(f, "severity")));
				if (rank >= 0)
					counts[rank]++;
			}
			json_object_set_new(entry, "findings", s);
		}
		json_array_append_new(conns, entry);
	}
	int rc = broken ? 2 : counts[3] ? 1 : 0;
	if (json) {
		json_t *out = json_pack("{s:o,s:{s:i,s:i,s:i,s:i},s:i}", "connections", conns, "summary", "high", counts[3],
			"medium", counts[2], "low", counts[1], "info", counts[0], "exit", rc);
		char *s = json_dumps(out, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(out);
	} else {
		for (size_t i = 0; i < cfg->n_conns; i++)
			print_connection(&cfg->conns[i], json_array_get(conns, i));
		printf("%d high, %d medium, %d low, %d info%s%s\n", counts[3], counts[2], counts[1], counts[0],
			broken ? "; some connections could not be checked" : "",
			unchecked ? "; connections through a relay were not checked" : "");
		json_decref(conns);
	}
	gw_config_free(cfg);
	return rc;
}
