/*
 * Unit tests of the doctor's pure logic: pg_hba.conf address ranges,
 * listen_addresses, the upstream transport, scopes and table ceilings, and
 * the needs derived from a config.
 */
#include "doctor/doctor.h"
#include "core/config.h"
#include "core/util.h"

#include "../../tests/unit/unit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gw_doc_range R(const char *addr, const char *mask)
{
	gw_doc_range r;
	gw_doctor_range_parse(addr, mask, &r);
	return r;
}

GW_TEST(doctor_hba_ranges)
{
	gw_doc_range r;
	CHECK(gw_doctor_range_parse("127.0.0.1", "255.255.255.255", &r) && r.family == 4 && r.prefix == 32);
	CHECK(r.kind == GW_DOC_ADDR_LOOPBACK);
	CHECK(gw_doctor_range_parse("127.0.0.0/8", NULL, &r) && r.kind == GW_DOC_ADDR_LOOPBACK && r.prefix == 8);
	/* wider than loopback: 0.0.0.0/0, 126.0.0.0/7 */
	CHECK(gw_doctor_range_parse("126.0.0.0/7", NULL, &r) && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(gw_doctor_range_parse("0.0.0.0", "0.0.0.0", &r) && r.prefix == 0 && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(gw_doctor_range_parse("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &r) && r.family == 6 &&
		r.prefix == 128 && r.kind == GW_DOC_ADDR_LOOPBACK);
	CHECK(gw_doctor_range_parse("::1/64", NULL, &r) && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(gw_doctor_range_parse("10.1.0.0", "255.255.0.0", &r) && r.prefix == 16 && r.kind == GW_DOC_ADDR_NETWORK);
	/* keywords and names */
	CHECK(gw_doctor_range_parse("all", NULL, &r) && r.family == 0 && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(gw_doctor_range_parse("samenet", NULL, &r) && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(gw_doctor_range_parse("samehost", NULL, &r) && r.kind == GW_DOC_ADDR_SAMEHOST);
	CHECK(gw_doctor_range_parse("localhost", NULL, &r) && r.kind == GW_DOC_ADDR_LOOPBACK);
	CHECK(gw_doctor_range_parse(".example.com", NULL, &r) && r.family == 0 && r.kind == GW_DOC_ADDR_NETWORK);
	/* malformed: conservative (network), false */
	CHECK(!gw_doctor_range_parse("10.0.0.0/33x", NULL, &r) && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(!gw_doctor_range_parse("10.0.0.0", "255.0.255.0", &r) && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(!gw_doctor_range_parse("10.0.0.0/40", NULL, &r));
	CHECK(!gw_doctor_range_parse("", NULL, &r) && r.kind == GW_DOC_ADDR_NETWORK);
	CHECK(!gw_doctor_range_parse(NULL, NULL, &r));
	char huge[400];
	memset(huge, '1', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = 0;
	CHECK(!gw_doctor_range_parse(huge, NULL, &r) && r.kind == GW_DOC_ADDR_NETWORK);
	/* text form */
	char s[64];
	gw_doc_range t = R("198.51.100.0", "255.255.255.0");
	CHECK(gw_doctor_range_str(&t, s, sizeof(s)) && !strcmp(s, "198.51.100.0/24"));
	t = R("all", NULL);
	CHECK(!gw_doctor_range_str(&t, s, sizeof(s)));
}

GW_TEST(doctor_hba_cover_and_host)
{
	gw_doc_range all = R("all", NULL), n8 = R("10.0.0.0/8", NULL), n24 = R("10.1.2.0/24", NULL);
	gw_doc_range h = R("10.1.2.7/32", NULL), other = R("192.168.0.0/16", NULL), v6 = R("::1/128", NULL);
	gw_doc_range same = R("samehost", NULL);
	CHECK(gw_doctor_range_covers(&all, &n8) && gw_doctor_range_covers(&all, &v6) && gw_doctor_range_covers(&all, &same));
	CHECK(gw_doctor_range_covers(&n8, &n24) && gw_doctor_range_covers(&n8, &h) && gw_doctor_range_covers(&n24, &h));
	CHECK(!gw_doctor_range_covers(&n24, &n8) && !gw_doctor_range_covers(&n8, &other) && !gw_doctor_range_covers(&n8, &v6));
	CHECK(!gw_doctor_range_covers(&same, &h) && !gw_doctor_range_covers(&n8, &all));
	CHECK(gw_doctor_range_is_host(&h, "10.1.2.7") && !gw_doctor_range_is_host(&h, "10.1.2.8"));
	CHECK(!gw_doctor_range_is_host(&n24, "10.1.2.7") && !gw_doctor_range_is_host(&h, NULL));
	CHECK(!gw_doctor_range_is_host(&all, "10.1.2.7") && !gw_doctor_range_is_host(&h, "::1"));
	gw_doc_range l6 = R("::1", NULL);
	CHECK(gw_doctor_range_is_host(&l6, "::1"));
	CHECK(gw_doctor_ip_is_loopback("127.0.0.1") && gw_doctor_ip_is_loopback("127.8.9.10") &&
		gw_doctor_ip_is_loopback("::1") && gw_doctor_ip_is_loopback("LOCALHOST"));
	CHECK(!gw_doctor_ip_is_loopback("10.0.0.1") && !gw_doctor_ip_is_loopback("db.example.com") &&
		!gw_doctor_ip_is_loopback("/var/run/postgresql") && !gw_doctor_ip_is_loopback(NULL) &&
		!gw_doctor_ip_is_loopback("::2"));
}

GW_TEST(doctor_listen_addresses)
{
	CHECK(gw_doctor_listen_class("") == 0 && gw_doctor_listen_class(NULL) == 0 && gw_doctor_listen_class(" , ") == 0);
	CHECK(gw_doctor_listen_class("localhost") == 1);
	CHECK(gw_doctor_listen_class("127.0.0.1, ::1") == 1);
	CHECK(gw_doctor_listen_class("*") == 2 && gw_doctor_listen_class("0.0.0.0") == 2 && gw_doctor_listen_class("::") == 2);
	CHECK(gw_doctor_listen_class("localhost,10.0.0.5") == 2);
	CHECK(gw_doctor_listen_class("db.internal") == 2);
}

static const char *fid(json_t *f)
{
	return json_string_value(json_object_get(f, "id"));
}

static const char *fsev(json_t *f)
{
	return json_string_value(json_object_get(f, "severity"));
}

GW_TEST(doctor_transport)
{
	CHECK(!gw_doctor_transport_finding("/var/run/postgresql", "disable", "r"));
	CHECK(!gw_doctor_transport_finding("127.0.0.1", "disable", "r"));
	CHECK(!gw_doctor_transport_finding("localhost", "prefer", "r"));
	CHECK(!gw_doctor_transport_finding("::1", "disable", "r"));
	CHECK(!gw_doctor_transport_finding("10.0.0.5", "verify-full", "r"));
	CHECK(!gw_doctor_transport_finding(NULL, "disable", "r") && !gw_doctor_transport_finding("10.0.0.5", NULL, "r"));
	const char *modes[] = {"disable", "prefer", "require", "verify-ca"};
	const char *ids[] = {"upstream_plaintext", "upstream_plaintext", "upstream_tls_unverified", "upstream_tls_no_hostname"};
	const char *sev[] = {"high", "high", "medium", "low"};
	for (int i = 0; i < 4; i++) {
		json_t *f = gw_doctor_transport_finding("db.example.com", modes[i], "agent_ro");
		CHECK(f && !strcmp(fid(f), ids[i]) && !strcmp(fsev(f), sev[i]));
		CHECK(!strcmp(json_string_value(json_object_get(f, "role")), "agent_ro"));
		CHECK(json_is_null(json_object_get(f, "fix_sql")) && strstr(json_string_value(json_object_get(f, "fix")), "verify-full"));
		CHECK(strstr(json_string_value(json_object_get(f, "what")), "db.example.com"));
		json_decref(f);
	}
	CHECK(gw_doctor_severity_rank("high") == 3 && gw_doctor_severity_rank("info") == 0 &&
		gw_doctor_severity_rank("bogus") == -1 && gw_doctor_severity_rank(NULL) == -1);
}

GW_TEST(doctor_scopes_and_ceilings)
{
	int s = 99;
	CHECK(gw_doctor_scope_parse("none", &s) && s == GW_DOC_NONE);
	CHECK(gw_doctor_scope_parse("ddl", &s) && s == GW_DOC_DDL);
	CHECK(!gw_doctor_scope_parse("DDL", &s) && !gw_doctor_scope_parse(NULL, &s));
	CHECK(!strcmp(gw_doctor_scope_name(GW_DOC_NONE), "none") && !strcmp(gw_doctor_scope_name(GW_DOC_WRITE), "write"));
	CHECK(gw_doctor_privilege_scope("SELECT", false) == GW_DOC_READ);
	CHECK(gw_doctor_privilege_scope("DELETE", false) == GW_DOC_WRITE);
	CHECK(gw_doctor_privilege_scope("USAGE", true) == GW_DOC_WRITE && gw_doctor_privilege_scope("UPDATE", true) == GW_DOC_WRITE);
	CHECK(gw_doctor_privilege_scope("TRUNCATE", false) == GW_DOC_DDL && gw_doctor_privilege_scope("TRIGGER", false) == GW_DOC_DDL);
	CHECK(gw_doctor_privilege_scope("MAINTAIN", false) == GW_DOC_ADMIN);

	json_t *n = json_loads("{\"max_scope\": \"write\", \"tables\": ["
		"{\"schema\": \"public\", \"table\": \"invoices\", \"scope\": \"read\"},"
		"{\"schema\": \"app\", \"table\": \"*\", \"scope\": \"write\"},"
		"{\"schema\": \"public\", \"table\": \"invoices\", \"scope\": \"write\"}]}", 0, NULL);
	CHECK(n);
	CHECK(gw_doctor_table_ceiling(n, "public", "invoices") == GW_DOC_WRITE); /* the highest of two policies */
	CHECK(gw_doctor_table_ceiling(n, "app", "anything") == GW_DOC_WRITE);
	CHECK(gw_doctor_table_ceiling(n, "public", "customers") == GW_DOC_NONE);
	CHECK(gw_doctor_table_ceiling(n, "Public", "invoices") == GW_DOC_NONE); /* names as the catalog stores them */
	json_object_set_new(n, "all_tables_scope", json_string("read"));
	CHECK(gw_doctor_table_ceiling(n, "public", "customers") == GW_DOC_READ);
	json_decref(n);
	/* nothing said: no policies, every statement allowed */
	n = json_object();
	CHECK(gw_doctor_table_ceiling(n, "public", "t") == GW_DOC_ADMIN);
	json_object_set_new(n, "max_scope", json_string("read"));
	CHECK(gw_doctor_table_ceiling(n, "public", "t") == GW_DOC_READ);
	json_decref(n);
}

static char *write_cfg(const char *text)
{
	char *p = gw_xstrdup("/tmp/pgmoat-doctor-ut-XXXXXX");
	int fd = mkstemp(p);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return p;
}

GW_TEST(doctor_needs_from_config)
{
	setenv("UT_DOC_PW", "secret", 1);
	const char *base = "listen: {postgres: \"127.0.0.1:7000\"}\n"
		"tls: {allow_plaintext_loopback: true}\n"
		"state: \"sqlite:/tmp/x.db\"\n"
		"connections:\n"
		"  - {name: billing, host: 10.0.0.5, database: billing, user: agent_ro, password: env:UT_DOC_PW, sslmode: require}\n"
		"  - {name: other, host: /var/run/postgresql, database: other, user: o}\n";
	char *text = gw_xasprintf("%s"
		"policies:\n"
		"  - {name: r1, who: [group:a], connections: [billing], scope: read, tables: [public.invoices, app.*]}\n"
		"  - {name: w1, who: [group:a], connections: [billing, other], scope: write, tables: [public.customers]}\n"
		"  - {name: x, who: [group:a], connections: [other], scope: ddl}\n"
		"masking:\n"
		"  rules:\n"
		"    - {column: public.customers.email, action: partial}\n"
		"    - {column: orders.card, action: redact}\n"
		"    - {column_name: \"ssn\", action: redact}\n", base);
	char *p = write_cfg(text);
	char *err = NULL;
	gw_config *c = gw_config_load(p, &err);
	if (!c)
		fprintf(stderr, "%s", err);
	CHECK(c);
	json_t *n = gw_doctor_needs(c, gw_config_conn(c, "billing"));
	CHECK(!strcmp(json_string_value(json_object_get(n, "connection")), "billing"));
	CHECK(!strcmp(json_string_value(json_object_get(n, "role")), "agent_ro"));
	CHECK(!strcmp(json_string_value(json_object_get(n, "max_scope")), "write"));
	CHECK(json_is_false(json_object_get(n, "ddl")));
	CHECK(!strcmp(json_string_value(json_object_get(n, "all_tables_scope")), "none"));
	CHECK(json_array_size(json_object_get(n, "tables")) == 3);
	CHECK(gw_doctor_table_ceiling(n, "public", "invoices") == GW_DOC_READ);
	CHECK(gw_doctor_table_ceiling(n, "public", "customers") == GW_DOC_WRITE);
	CHECK(gw_doctor_table_ceiling(n, "app", "x") == GW_DOC_READ);
	CHECK(gw_doctor_table_ceiling(n, "public", "secrets") == GW_DOC_NONE);
	json_t *m = json_object_get(n, "masking");
	CHECK(json_array_size(m) == 2); /* column_name patterns name no column */
	CHECK(!strcmp(json_string_value(json_object_get(json_array_get(m, 0), "schema")), "public"));
	CHECK(json_is_null(json_object_get(json_array_get(m, 1), "schema")));
	CHECK(!strcmp(json_string_value(json_object_get(json_array_get(m, 1), "column")), "card"));
	json_t *up = json_object_get(n, "upstream");
	CHECK(!strcmp(json_string_value(json_object_get(up, "host")), "10.0.0.5"));
	CHECK(!strcmp(json_string_value(json_object_get(up, "sslmode")), "require"));
	CHECK(json_integer_value(json_object_get(up, "port")) == 5432);
	json_decref(n);
	n = gw_doctor_needs(c, gw_config_conn(c, "other"));
	CHECK(!strcmp(json_string_value(json_object_get(n, "max_scope")), "ddl") && json_is_true(json_object_get(n, "ddl")));
	CHECK(!strcmp(json_string_value(json_object_get(n, "all_tables_scope")), "ddl"));
	json_decref(n);
	gw_config_free(c);
	unlink(p);
	free(p);
	free(text);

	/* no policies: every statement is allowed, so nothing is above the policies */
	p = write_cfg(base);
	c = gw_config_load(p, &err);
	CHECK(c);
	n = gw_doctor_needs(c, gw_config_conn(c, "billing"));
	CHECK(!strcmp(json_string_value(json_object_get(n, "max_scope")), "admin") && json_is_true(json_object_get(n, "ddl")));
	CHECK(gw_doctor_table_ceiling(n, "any", "table") == GW_DOC_ADMIN);
	json_decref(n);
	gw_config_free(c);
	unlink(p);
	free(p);
}
