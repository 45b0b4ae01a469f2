/* Unit tests of policy/sqlparse: statement classes and flags on the real parse tree. */
#include "../../tests/unit/unit.h"
#include "policy/sqlparse.h"

#include <string.h>
#include <time.h>

typedef struct cls_case {
	const char *sql;
	enum gw_sql_class cls;
	unsigned flags;        /* flags that must be set */
} cls_case;

static const cls_case cases[] = {
	{"SELECT 1", GW_SQL_READ, 0},
	{"select * from public.customers c join orders o on o.cid = c.id where c.city = 'Berlin'", GW_SQL_READ, 0},
	{"VALUES (1), (2)", GW_SQL_READ, 0},
	{"TABLE customers", GW_SQL_READ, 0},
	{"SHOW search_path", GW_SQL_READ, 0},
	{"SELECT count(*) FILTER (WHERE x > 1) OVER (PARTITION BY y) FROM t", GW_SQL_READ, 0},
	{"WITH a AS (SELECT 1) SELECT * FROM a", GW_SQL_READ, 0},
	{"SELECT * FROM t FOR UPDATE", GW_SQL_WRITE, 0},
	{"SELECT * FROM t FOR SHARE SKIP LOCKED", GW_SQL_WRITE, 0},
	{"WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d", GW_SQL_WRITE, 0},
	{"SELECT * INTO newt FROM t", GW_SQL_DDL, 0},
	{"CREATE TABLE x AS SELECT 1", GW_SQL_DDL, 0},
	{"INSERT INTO t VALUES (1)", GW_SQL_WRITE, 0},
	{"INSERT INTO t SELECT * FROM s ON CONFLICT (id) DO UPDATE SET v = excluded.v", GW_SQL_WRITE, 0},
	{"UPDATE t SET v = 1 WHERE id = 2", GW_SQL_WRITE, 0},
	{"UPDATE t SET v = 1", GW_SQL_WRITE, GW_SQL_F_UPDATE_NO_WHERE},
	{"DELETE FROM t", GW_SQL_WRITE, GW_SQL_F_DELETE_NO_WHERE},
	{"DELETE FROM t WHERE true", GW_SQL_WRITE, 0},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v", GW_SQL_WRITE, 0},
	{"COPY t TO STDOUT", GW_SQL_READ, 0},
	{"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", GW_SQL_READ, 0},
	{"COPY t FROM STDIN", GW_SQL_WRITE, 0},
	{"COPY t TO '/tmp/x'", GW_SQL_ADMIN, 0},
	{"COPY t FROM PROGRAM 'curl evil'", GW_SQL_ADMIN, GW_SQL_F_COPY_PROGRAM},
	{"EXPLAIN SELECT * FROM t", GW_SQL_READ, 0},
	{"EXPLAIN DELETE FROM t", GW_SQL_READ, 0},
	{"EXPLAIN ANALYZE DELETE FROM t", GW_SQL_WRITE, GW_SQL_F_DELETE_NO_WHERE},
	{"EXPLAIN ANALYZE DELETE FROM t WHERE id = 1", GW_SQL_WRITE, 0},
	{"EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET v = 1 WHERE id = 1", GW_SQL_WRITE, 0},
	{"EXPLAIN (ANALYZE false) UPDATE t SET v = 1 WHERE id = 1", GW_SQL_READ, 0},
	{"BEGIN", GW_SQL_READ, 0},
	{"BEGIN READ WRITE", GW_SQL_READ, GW_SQL_F_READ_WRITE},
	{"COMMIT", GW_SQL_READ, 0},
	{"SAVEPOINT a", GW_SQL_READ, 0},
	{"PREPARE TRANSACTION 'x'", GW_SQL_ADMIN, 0},
	{"SET application_name = 'x'", GW_SQL_READ, 0},
	{"SET statement_timeout TO 5000", GW_SQL_READ, 0},
	{"SET search_path = evil, public", GW_SQL_READ, GW_SQL_F_SEARCH_PATH},
	{"SET default_transaction_read_only = off", GW_SQL_READ, GW_SQL_F_READ_WRITE},
	{"SET transaction_read_only = on", GW_SQL_READ, 0},
	{"SET TRANSACTION READ WRITE", GW_SQL_READ, GW_SQL_F_READ_WRITE},
	{"SET ROLE postgres", GW_SQL_ADMIN, 0},
	{"SET SESSION AUTHORIZATION postgres", GW_SQL_ADMIN, 0},
	{"RESET ALL", GW_SQL_READ, GW_SQL_F_SESSION_RESET},
	{"DISCARD ALL", GW_SQL_READ, GW_SQL_F_SESSION_RESET},
	{"DEALLOCATE ALL", GW_SQL_READ, 0},
	{"SELECT set_config('role', 'postgres', false)", GW_SQL_ADMIN, 0},
	{"SELECT pg_catalog.set_config('x', 'y', true)", GW_SQL_ADMIN, 0},
	{"SELECT pg_terminate_backend(123)", GW_SQL_ADMIN, 0},
	{"SELECT pg_read_file('/etc/passwd')", GW_SQL_ADMIN, 0},
	{"SELECT lo_import('/etc/passwd')", GW_SQL_ADMIN, 0},
	{"SELECT dblink_exec('host=x', 'drop table t')", GW_SQL_ADMIN, 0},
	{"SELECT nextval('s')", GW_SQL_WRITE, 0},
	{"SELECT pg_advisory_lock(1)", GW_SQL_WRITE, 0},
	{"SELECT pg_notify('c', 'x')", GW_SQL_WRITE, 0},
	{"SELECT (SELECT nextval('s')) + 1", GW_SQL_WRITE, 0},
	{"SELECT * FROM t WHERE id IN (SELECT pg_terminate_backend(pid) FROM pg_stat_activity)", GW_SQL_ADMIN, 0},
	{"SELECT CASE WHEN true THEN setval('s', 1) END", GW_SQL_WRITE, 0},
	{"SELECT * FROM generate_series(1, nextval('s'))", GW_SQL_WRITE, 0},
	{"LISTEN ch", GW_SQL_READ, 0},
	{"NOTIFY ch, 'x'", GW_SQL_WRITE, 0},
	{"DECLARE c CURSOR FOR SELECT * FROM t", GW_SQL_READ, 0},
	{"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", GW_SQL_WRITE, 0},
	{"FETCH 10 FROM c", GW_SQL_READ, 0},
	{"PREPARE p AS DELETE FROM t WHERE id = $1", GW_SQL_WRITE, 0},
	{"EXECUTE p(1)", GW_SQL_READ, GW_SQL_F_EXECUTE},
	{"LOCK TABLE t", GW_SQL_WRITE, 0},
	{"TRUNCATE t", GW_SQL_DDL, GW_SQL_F_TRUNCATE},
	{"DROP TABLE t", GW_SQL_DDL, GW_SQL_F_DROP},
	{"CREATE TABLE t (id int)", GW_SQL_DDL, 0},
	{"ALTER TABLE t ADD COLUMN x int", GW_SQL_DDL, 0},
	{"CREATE INDEX ON t (x)", GW_SQL_DDL, 0},
	{"COMMENT ON TABLE t IS 'x'", GW_SQL_DDL, 0},
	{"GRANT SELECT ON t TO x", GW_SQL_DDL, 0},
	{"CREATE VIEW v AS SELECT 1", GW_SQL_DDL, 0},
	{"DO $$ BEGIN PERFORM 1; END $$", GW_SQL_ADMIN, 0},
	{"CALL p()", GW_SQL_ADMIN, 0},
	{"VACUUM t", GW_SQL_ADMIN, 0},
	{"ALTER SYSTEM SET work_mem = '1GB'", GW_SQL_ADMIN, GW_SQL_F_ALTER_SYSTEM},
	{"CREATE ROLE x SUPERUSER", GW_SQL_ADMIN, 0},
	{"CREATE EXTENSION dblink", GW_SQL_ADMIN, 0},
	{"SELECT 1; DELETE FROM t", GW_SQL_WRITE, GW_SQL_F_DELETE_NO_WHERE},
	{"/* DELETE */ SELECT 'DROP TABLE t' -- ; DROP TABLE t", GW_SQL_READ, 0},
	{"SELECT $$; DROP TABLE t; $$", GW_SQL_READ, 0},
	{"SELECT U&'\\0044ROP'", GW_SQL_READ, 0},
};

GW_TEST(sql_classes_and_flags)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_sql s;
		int rc = gw_sql_parse(cases[i].sql, &s);
		if (rc != 0)
			fprintf(stderr, "     parse error for %s: %s\n", cases[i].sql, s.error);
		CHECK(rc == 0);
		enum gw_sql_class c = gw_sql_max_class(&s);
		unsigned flags = 0;
		for (size_t j = 0; j < s.nstmts; j++)
			flags |= s.stmts[j].flags;
		if (c != cases[i].cls || (flags & cases[i].flags) != cases[i].flags || (flags & GW_SQL_F_UNKNOWN)) {
			fprintf(stderr, "     %s: got %s flags 0x%x, want %s flags 0x%x\n", cases[i].sql, gw_sql_class_str(c),
				flags, gw_sql_class_str(cases[i].cls), cases[i].flags);
			CHECK(0);
		}
		gw_sql_free(&s);
	}
}

GW_TEST(sql_relations_functions_and_errors)
{
	gw_sql s;
	CHECK(gw_sql_parse("SELECT myfn(c.x), lower(c.y) FROM public.customers c JOIN orders o ON true "
		"WHERE c.id IN (SELECT cid FROM audit.log)", &s) == 0);
	CHECK(s.nstmts == 1 && s.stmts[0].nrelations == 3);
	CHECK(!strcmp(s.stmts[0].relations[0], "public.customers"));
	CHECK(!strcmp(s.stmts[0].relations[1], "orders"));
	CHECK(!strcmp(s.stmts[0].relations[2], "audit.log"));
	CHECK(s.stmts[0].nfunctions == 2 && !strcmp(s.stmts[0].functions[0], "myfn"));
	gw_sql_free(&s);
	CHECK(gw_sql_parse("EXECUTE plan_a(1, 2)", &s) == 0 && !strcmp(s.stmts[0].execute_name, "plan_a"));
	gw_sql_free(&s);
	CHECK(gw_sql_parse("SELEC 1", &s) == -1 && strstr(s.error, "syntax error") != NULL);
	gw_sql_free(&s);
	CHECK(gw_sql_parse("", &s) == 0 && s.nstmts == 0);
	gw_sql_free(&s);
	/* A statement nested absurdly deep is refused, not recursed into without bound. */
	char deep[20000] = "SELECT ";
	for (int i = 0; i < 2000; i++)
		strcat(deep, "(");
	strcat(deep, "1");
	for (int i = 0; i < 2000; i++)
		strcat(deep, ")");
	int rc = gw_sql_parse(deep, &s);
	CHECK(rc == -1 || gw_sql_max_class(&s) == GW_SQL_READ || (s.stmts[0].flags & GW_SQL_F_UNKNOWN));
	gw_sql_free(&s);
}

/* ---- decisions (policy.c) on a config loaded from YAML ---- */

#include "core/config.h"
#include "policy/policy.h"

#include <stdlib.h>
#include <unistd.h>

static gw_config *load_yaml(const char *text)
{
	char path[] = "/tmp/pgmoat-ut-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	char *err = NULL;
	gw_config *c = gw_config_load(path, &err);
	if (!c)
		fprintf(stderr, "%s", err);
	free(err);
	unlink(path);
	return c;
}

static const char base_yaml[] =
	"tls: {allow_plaintext_loopback: true}\n"
	"state: \"sqlite:/tmp/x.db\"\n"
	"connections:\n"
	"  - {name: app, host: h, database: d, user: u}\n"
	"  - {name: other, host: h, database: d, user: u}\n"
	"policies:\n"
	"  - {name: ro, who: [group:agents], connections: [app], scope: read,\n"
	"     tables: [public.invoices, sales.*]}\n"
	"  - {name: rw, who: [identity:bob], connections: [app], scope: write,\n"
	"     guardrails: [no_delete_without_where, {max_rows: 50}], review: [write]}\n"
	"  - {name: jit-ddl, who: [group:agents], connections: [app], scope: ddl, access: jit, max_duration: 2h,\n"
	"     approval: {approvers: [group:dba], required: 2}}\n";

static enum gw_verdict decide_sql(gw_pctx *p, const char *sql, gw_decision *d)
{
	gw_sqlc *q = calloc(1, sizeof(*q));
	q->rc = gw_sql_parse(sql, &q->sql);
	q->refs = 1;
	p->no_lookup = true; /* unknown functions fail closed; relations below are qualified */
	gw_policy_decide(p, q, 1764072000, d);
	gw_sqlc_unref(q);
	return d->verdict;
}

GW_TEST(policy_decisions)
{
	gw_config *c = load_yaml(base_yaml);
	CHECK(c && c->n_policies == 3 && c->policies[1].max_rows == 50);
	gw_pctx p;
	gw_decision d;
	gw_pctx_init(&p, c, NULL, "agent-1", "agents,ops", "app");
	CHECK(p.nents == 1 && p.read_only && p.has_tables);
	gw_map_put(&p.fn_read, ".id", 3, (void *)1); /* as the catalog lookup would say: no function id(x) */
	CHECK(decide_sql(&p, "SELECT * FROM public.invoices i JOIN sales.q1 q ON q.id = i.id", &d) == GW_DECIDE_ALLOW);
	CHECK(decide_sql(&p, "SELECT * FROM public.secrets", &d) == GW_DECIDE_DENY);
	CHECK(strstr(d.message, "public.secrets") && !strcmp(d.sqlstate, "42501"));
	CHECK(decide_sql(&p, "SELECT 1; DELETE FROM public.invoices WHERE id = 1", &d) == GW_DECIDE_DENY);
	CHECK(strstr(d.detail, "statement 2 of 2"));
	CHECK(strstr(d.hint, "pgmoat request app --scope write")); /* jit-ddl covers write */
	CHECK(decide_sql(&p, "CREATE TABLE public.x (a int)", &d) == GW_DECIDE_DENY);
	CHECK(strstr(d.hint, "pgmoat request app --scope ddl") && strstr(d.hint, "--for 2h"));
	CHECK(decide_sql(&p, "SET search_path = evil", &d) == GW_DECIDE_DENY);
	CHECK(decide_sql(&p, "SET default_transaction_read_only = off", &d) == GW_DECIDE_DENY);
	CHECK(!strcmp(d.rule, "read_only"));
	CHECK(decide_sql(&p, "DISCARD ALL; SELECT 1", &d) == GW_DECIDE_DENY);
	CHECK(decide_sql(&p, "SELECT lower('x') FROM public.invoices", &d) == GW_DECIDE_DENY); /* unknown fn: closed */
	gw_pctx_free(&p);

	gw_pctx_init(&p, c, NULL, "bob", "", "app");
	CHECK(p.nents == 1 && !p.read_only && p.max_rows == 50);
	CHECK(decide_sql(&p, "SELECT 1", &d) == GW_DECIDE_ALLOW);
	CHECK(decide_sql(&p, "UPDATE t SET a = 1 WHERE id = 2", &d) == GW_DECIDE_REVIEW);
	CHECK(decide_sql(&p, "DELETE FROM t", &d) == GW_DECIDE_DENY && !strcmp(d.rule, "no_delete_without_where"));
	CHECK(decide_sql(&p, "SELEC 1", &d) == GW_DECIDE_DENY && !strcmp(d.sqlstate, "42601"));
	gw_pctx_free(&p);

	gw_pctx_init(&p, c, NULL, "carol", "", "app");
	CHECK(p.nents == 0);
	CHECK(decide_sql(&p, "SELECT 1", &d) == GW_DECIDE_DENY && strstr(d.message, "no policy"));
	gw_pctx_free(&p);
	gw_pctx_init(&p, c, NULL, "agent-1", "agents", "other");
	CHECK(p.nents == 0);
	gw_pctx_free(&p);
	gw_config_free(c);
}

GW_TEST(policy_config_errors)
{
	static const char *const bad[] = {
		"  - {name: a, who: [bob], connections: [app], scope: read}\n",
		"  - {name: a, who: [group:x], connections: [nope], scope: read}\n",
		"  - {name: a, who: [group:x], connections: [app], scope: everything}\n",
		"  - {name: a, who: [group:x], connections: [app], scope: read, tables: [invoices]}\n",
		"  - {name: a, who: [group:x], connections: [app], scope: read, window: \"Mnday 08:00-09:00\"}\n",
		"  - {name: a, who: [group:x], connections: [app], scope: read, guardrails: [no_fun]}\n",
		"  - {name: a, who: [group:x], connections: [app], scope: read, approval: {required: 1}}\n",
		"  - {name: a, who: [group:x], connections: [app], scope: read, review: [reads]}\n",
		"  - {who: [group:x], connections: [app], scope: read}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text), "tls: {allow_plaintext_loopback: true}\nstate: \"sqlite:/tmp/x.db\"\n"
			"connections:\n  - {name: app, host: h, database: d, user: u}\npolicies:\n%s", bad[i]);
		char path[] = "/tmp/pgmoat-ut-XXXXXX";
		int fd = mkstemp(path);
		CHECK(fd >= 0);
		CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
		close(fd);
		char *err = NULL;
		gw_config *cfg = gw_config_load(path, &err);
		unlink(path);
		if (cfg)
			fprintf(stderr, "     accepted: %s", bad[i]);
		CHECK(cfg == NULL && err && strstr(err, ":6: ") != NULL);
		free(err);
	}
}

GW_TEST(sql_cte_scope_and_prepare)
{
	gw_sql q;
	CHECK(gw_sql_parse("WITH secrets AS (SELECT 1) SELECT * FROM secrets", &q) == 0);
	CHECK(q.stmts[0].nrelations == 0);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT * FROM secrets, (WITH secrets AS (SELECT 1) SELECT * FROM secrets) s", &q) == 0);
	CHECK(q.stmts[0].nrelations == 1 && !strcmp(q.stmts[0].relations[0], "secrets"));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", &q) == 0);
	CHECK(q.stmts[0].nrelations == 1 && !strcmp(q.stmts[0].relations[0], "b"));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", &q) == 0);
	CHECK(q.stmts[0].nrelations == 0);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("PREPARE p1 AS DELETE FROM t WHERE id = $1", &q) == 0);
	CHECK(q.stmts[0].cls == GW_SQL_WRITE && q.stmts[0].prepare_name && !strcmp(q.stmts[0].prepare_name, "p1"));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT public.dblink_exec('x')", &q) == 0 && q.stmts[0].cls == GW_SQL_ADMIN);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT table_to_xml('secrets', true, true, '')", &q) == 0 && q.stmts[0].cls == GW_SQL_ADMIN);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("DROP TABLE public.a, b", &q) == 0 && q.stmts[0].nrelations == 2);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("COMMENT ON TABLE x IS 'y'", &q) == 0 && (q.stmts[0].flags & GW_SQL_F_OPAQUE));
	gw_sql_free(&q);
	/* red-team findings: each must be seen */
	CHECK(gw_sql_parse("INSERT INTO t (a[f(1)]) VALUES (1)", &q) == 0 && q.stmts[0].nfunctions == 1 &&
		!strcmp(q.stmts[0].functions[0], "f"));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT (1::bigint).pg_advisory_lock", &q) == 0 && q.stmts[0].cls == GW_SQL_WRITE);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT ('x').ts_stat", &q) == 0 && q.stmts[0].cls == GW_SQL_ADMIN);
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT i.purge FROM invoices i", &q) == 0 && q.stmts[0].nfields == 1 &&
		!strcmp(q.stmts[0].fields[0], "purge"));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("WITH secrets AS (SELECT 1) UPDATE secrets SET v = 1 WHERE id = 1", &q) == 0 &&
		q.stmts[0].nrelations == 1 && !strcmp(q.stmts[0].relations[0], "secrets"));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("SELECT * FROM \"public.secrets\"", &q) == 0 && (q.stmts[0].flags & GW_SQL_F_OPAQUE));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("COPY t FROM STDIN", &q) == 0 && (q.stmts[0].flags & GW_SQL_F_COPY_IN));
	gw_sql_free(&q);
	CHECK(gw_sql_parse("DEALLOCATE ALL; DEALLOCATE p1", &q) == 0 && (q.stmts[0].flags & GW_SQL_F_DEALLOCATE_ALL) &&
		q.stmts[1].deallocate_name && !strcmp(q.stmts[1].deallocate_name, "p1"));
	gw_sql_free(&q);
	/* a chain of 200,000 UNION ALLs: refused (admin, unknown), not a stack overflow */
	size_t n = 200000, len = 8 + n * 19 + 1;
	char *big = malloc(len);
	CHECK(big);
	strcpy(big, "SELECT 1");
	for (size_t i = 0; i < n; i++)
		memcpy(big + 8 + i * 19, " UNION ALL SELECT 1", 19);
	big[8 + n * 19] = 0;
	CHECK(gw_sql_parse(big, &q) == 0 && q.stmts[0].cls == GW_SQL_ADMIN && (q.stmts[0].flags & GW_SQL_F_UNKNOWN));
	gw_sql_free(&q);
	free(big);
}
