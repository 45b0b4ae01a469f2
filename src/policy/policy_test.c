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

/* ---- gw_sql_mask_columns: which output columns depend on masked columns ---- */

typedef struct fake_rel {
	const char *name;
	const char *const *cols;
	size_t n;
	const char *masked; /* space-separated */
} fake_rel;

static const char *const customers_cols[] = {"id", "name", "email", "ssn", "notes"};
static const char *const orders_cols[] = {"id", "customer_id", "total", "note"};
static const char *const v_customers_cols[] = {"id", "email"};
static const fake_rel fake_rels[] = {
	{"customers", customers_cols, 5, " email ssn "},
	{"orders", orders_cols, 4, " "},
	{"v_customers", v_customers_cols, 2, " email "},
};

static const fake_rel *fake_find(const char *schema, const char *rel)
{
	if (schema && strcmp(schema, "public"))
		return NULL;
	for (size_t i = 0; i < sizeof(fake_rels) / sizeof(fake_rels[0]); i++)
		if (!strcmp(fake_rels[i].name, rel))
			return &fake_rels[i];
	return NULL;
}

static const char *const *fake_columns(void *ud, const char *schema, const char *rel, size_t *n)
{
	(void)ud;
	const fake_rel *r = fake_find(schema, rel);
	if (!r)
		return NULL;
	*n = r->n;
	return r->cols;
}

static bool fake_masked(void *ud, const char *schema, const char *rel, const char *col)
{
	(void)ud;
	const fake_rel *r = fake_find(schema, rel);
	char key[64];
	snprintf(key, sizeof(key), " %s ", col);
	return r && strstr(r->masked, key) != NULL;
}

static const gw_sql_catalog fake_cat = {.columns = fake_columns, .masked = fake_masked};

/*
 * want: one letter per output column, C(lear) M(asked) U(ndecided); "" for a
 * statement without result columns; "!" for -1.
 */
static bool mask_case(const char *sql, const char *want, bool inner)
{
	uint8_t out[64];
	char why[256], got[80];
	int n = inner ? gw_sql_mask_columns_inner(sql, strlen(sql), &fake_cat, out, sizeof(out), why, sizeof(why))
		: gw_sql_mask_columns(sql, strlen(sql), &fake_cat, out, sizeof(out), why, sizeof(why));
	if (n < 0) {
		strcpy(got, "!");
	} else {
		int k = 0;
		for (int i = 0; i < n && i < 64; i++)
			got[k++] = "CMU"[out[i]];
		got[k] = 0;
	}
	if (strcmp(got, want)) {
		fprintf(stderr, "     %s%s\n       got \"%s\" want \"%s\" (%s)\n", inner ? "[inner] " : "", sql, got, want,
			why);
		return false;
	}
	return true;
}

typedef struct mask_tc {
	const char *sql;
	const char *want;
} mask_tc;

static const mask_tc mask_cases[] = {
	/* plain columns, aliases, stars */
	{"SELECT id, name FROM customers", "CC"},
	{"SELECT email FROM customers", "M"},
	{"SELECT c.email AS e, c.id FROM customers c", "MC"},
	{"SELECT public.customers.email, customers.id FROM public.customers", "MC"},
	{"SELECT * FROM customers", "CCMMC"},
	{"TABLE customers", "CCMMC"},
	{"SELECT c.*, o.total FROM customers c JOIN orders o ON o.customer_id = c.id", "CCMMCC"},
	{"SELECT o.*, 1, c.* FROM customers c, orders o", "CCCCCCCMMC"},
	{"SELECT * FROM customers c, orders o", "CCMMCCCCC"},
	{"SELECT ctid, xmin FROM customers", "CC"},
	{"SELECT id FROM customers WHERE ssn = '1' ORDER BY email", "C"},
	{"SELECT DISTINCT ON (email) id FROM customers", "C"},
	/* expressions, casts, concatenation, functions */
	{"SELECT upper(name), lower(email), length(ssn) > 3 FROM customers", "CMM"},
	{"SELECT email::text, id::text, CAST(ssn AS varchar) FROM customers", "MCM"},
	{"SELECT name || ' <' || email || '>', name || '!' FROM customers", "MC"},
	{"SELECT ARRAY[name, email], ROW(id, name), greatest(id, 2) FROM customers", "MCC"},
	{"SELECT CASE WHEN ssn LIKE '1%' THEN 'a' ELSE 'b' END, CASE WHEN id > 1 THEN name END FROM customers", "MC"},
	{"SELECT coalesce(email, name), coalesce(notes, name), nullif(ssn, '') FROM customers", "MCM"},
	{"SELECT email IS NULL, id = 1 AND name = 'x' FROM customers", "MC"},
	{"SELECT query_to_xml('select ssn from customers', true, true, '')", "U"},
	/* aggregates and windows */
	{"SELECT count(*), count(email), count(DISTINCT name), max(total) FROM customers, orders", "CMCC"},
	{"SELECT count(*) FILTER (WHERE ssn IS NULL), string_agg(name, ',' ORDER BY email) FROM customers", "MM"},
	{"SELECT json_agg(c), json_agg(o) FROM customers c, orders o", "MC"},
	{"SELECT name, count(*) FROM customers GROUP BY name", "CC"},
	{"SELECT row_number() OVER (ORDER BY email), count(*) OVER (), sum(id) OVER w FROM customers "
		"WINDOW w AS (PARTITION BY ssn)", "MCM"},
	{"SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ssn) FROM customers", "M"},
	/* whole-row references */
	{"SELECT row_to_json(c), c::text, to_jsonb(c), c, c.* IS NULL FROM customers c", "MMMMM"},
	{"SELECT row_to_json(o), o FROM orders o", "CC"},
	{"SELECT (c).email, (c).id, (c.*).name FROM customers c", "MCC"},
	{"SELECT (c).* FROM customers c", "CCMMC"},
	{"SELECT c.fullname FROM customers c", "M"}, /* fullname(c): a function of the whole row */
	{"SELECT customers FROM customers", "M"},
	/* sub-queries */
	{"SELECT (SELECT email FROM customers LIMIT 1), (SELECT count(*) FROM customers)", "MC"},
	{"SELECT o.id, (SELECT c.ssn FROM customers c WHERE c.id = o.customer_id), "
		"(SELECT name FROM customers c WHERE c.id = o.customer_id) FROM orders o", "CMC"},
	{"SELECT (SELECT max(o.total) || c.email FROM orders o WHERE o.customer_id = c.id) FROM customers c", "M"},
	{"SELECT (SELECT email FROM orders LIMIT 1), (SELECT note FROM orders LIMIT 1) FROM customers", "MC"},
	{"SELECT EXISTS (SELECT 1 FROM customers WHERE ssn = 'x'), EXISTS (SELECT ssn FROM customers)", "CM"},
	{"SELECT id IN (SELECT customer_id FROM orders), ARRAY(SELECT ssn FROM customers) FROM customers", "CM"},
	{"SELECT s.x, s.y FROM (SELECT ssn, name FROM customers) AS s(x, y)", "MC"},
	{"SELECT y, email FROM (SELECT name, email FROM customers) s(y)", "CM"},
	{"SELECT x.name, x.ssn, x.* FROM (SELECT * FROM customers) x", "CMCCMMC"},
	{"SELECT q FROM (SELECT email AS q FROM customers) s, (SELECT 1 AS q2) t", "M"},
	/* CTEs */
	{"WITH x(a, b) AS (SELECT email, id FROM customers) SELECT b, a FROM x", "CM"},
	{"WITH x AS (SELECT id, ssn FROM customers) SELECT * FROM x", "CM"},
	{"WITH x AS (SELECT id, ssn FROM customers), y AS (SELECT ssn || 'a' AS z, id FROM x) SELECT y.* FROM y", "MC"},
	{"WITH customers AS (SELECT 1 AS email) SELECT email FROM customers", "C"},
	{"WITH RECURSIVE r(n, e) AS (SELECT 1, ''::text UNION ALL SELECT n + 1, (SELECT email FROM customers LIMIT 1) "
		"FROM r WHERE n < 3) SELECT n, e FROM r", "CM"},
	{"WITH RECURSIVE r(a, b, c) AS (SELECT 1, 'x'::text, email FROM customers UNION ALL "
		"SELECT a + 1, c, b FROM r WHERE a < 5) SELECT a, b, c FROM r", "CMM"},
	{"WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) "
		"SEARCH DEPTH FIRST BY n SET ord SELECT * FROM t", "CC"},
	{"WITH d AS (DELETE FROM customers WHERE id = 1 RETURNING *) SELECT email, id FROM d", "MC"},
	/* LATERAL, joins */
	{"SELECT c.id, l.e FROM customers c, LATERAL (SELECT c.email AS e) l", "CM"},
	{"SELECT l.* FROM customers c CROSS JOIN LATERAL (SELECT c.name, c.ssn) l", "CM"},
	{"SELECT * FROM customers JOIN orders USING (id)", "CCMMCCCC"},
	{"SELECT * FROM customers NATURAL JOIN orders", "CCMMCCCC"},
	{"SELECT id, email FROM customers JOIN orders USING (id)", "CM"},
	{"SELECT j.email, j.total FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j", "MC"},
	{"SELECT u.id FROM customers JOIN orders USING (id) AS u", "C"},
	{"SELECT * FROM (customers c JOIN orders o ON true) AS j(a, b, c)", "CCMMCCCCC"},
	{"SELECT j.c, j.a FROM (customers c JOIN orders o ON true) AS j(a, b, c)", "MC"},
	/* set operations, VALUES */
	{"SELECT name, id FROM customers UNION SELECT email, id FROM customers", "MC"},
	{"SELECT 1, 'a' UNION ALL SELECT 2, 'b' UNION ALL SELECT id, ssn FROM customers", "CM"},
	{"SELECT id FROM customers EXCEPT SELECT id FROM orders", "C"},
	{"VALUES (1, 'a'), (2, 'b')", "CC"},
	{"SELECT * FROM (VALUES (1, 'x')) v(a, b)", "CC"},
	{"SELECT v.b, v.a FROM customers c, LATERAL (VALUES (c.id, c.email)) v(a, b)", "MC"},
	/* functions in FROM */
	{"SELECT j.key, j.value FROM customers c, json_each(row_to_json(c)) j", "MM"},
	{"SELECT key FROM orders o, json_each(row_to_json(o))", "C"},
	{"SELECT g FROM generate_series(1, 3) g", "C"},
	{"SELECT e FROM customers c, unnest(ARRAY[c.email]) AS u(e)", "M"},
	{"SELECT * FROM generate_series(1, 3)", "!"},
	{"SELECT c.*, g.* FROM customers c, generate_series(1, 3) g", "!"},
	{"SELECT c.id, g.* FROM customers c, generate_series(1, 3) g", "!"},
	{"SELECT * FROM customers c, jsonb_to_record('{}') AS r(a int, b text)", "CCMMCCC"},
	{"SELECT r.* FROM customers c, jsonb_to_record(to_jsonb(c)) AS r(a int, b text)", "MM"},
	{"SELECT * FROM customers c, ROWS FROM (jsonb_to_record(to_jsonb(c)) AS (x text)) WITH ORDINALITY", "CCMMCMC"},
	/* DML ... RETURNING */
	{"INSERT INTO customers (name) VALUES ('x') RETURNING id, email", "CM"},
	{"INSERT INTO customers VALUES (1) RETURNING *", "CCMMC"},
	{"INSERT INTO orders AS o (total) SELECT 1 RETURNING o.note, o.*", "CCCCC"},
	{"UPDATE customers SET name = 'x' WHERE id = 1 RETURNING *", "CCMMC"},
	{"UPDATE orders o SET total = 0 FROM customers c WHERE c.id = o.customer_id RETURNING *", "CCCCCCMMC"},
	{"DELETE FROM customers c WHERE id = 1 RETURNING c.ssn, upper(c.name)", "MC"},
	{"DELETE FROM orders o USING customers c WHERE c.id = o.customer_id RETURNING *", "CCCCCCMMC"},
	{"DELETE FROM orders o USING customers c WHERE c.id = o.customer_id RETURNING o.*, c.ssn", "CCCCM"},
	/* RETURNING shows what was written */
	{"INSERT INTO orders (note) SELECT ssn FROM customers RETURNING id, note", "CM"},
	{"INSERT INTO orders VALUES (1, 2, 3, 'x') RETURNING *", "CCCC"},
	{"INSERT INTO orders (total, note) VALUES (1, 'a'), (2, (SELECT email FROM customers LIMIT 1)) RETURNING *",
		"CCCM"},
	{"INSERT INTO orders SELECT id, id, id, name || ssn FROM customers RETURNING *", "CCCM"},
	{"INSERT INTO orders SELECT * FROM mystery RETURNING id", "U"},
	{"WITH x AS (SELECT ssn FROM customers) INSERT INTO orders (note) SELECT ssn FROM x RETURNING note", "M"},
	{"INSERT INTO orders (id, note) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET note = "
		"(SELECT ssn FROM customers LIMIT 1) RETURNING note, total", "MC"},
	{"INSERT INTO orders (id, note) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET total = excluded.total "
		"RETURNING note, total", "CC"},
	{"UPDATE orders o SET note = c.ssn FROM customers c WHERE c.id = o.customer_id RETURNING o.id, o.note", "CM"},
	{"UPDATE orders SET (note, total) = (SELECT ssn, 1 FROM customers LIMIT 1) RETURNING note, id", "MC"},
	{"DELETE FROM orders", ""},
	{"UPDATE orders SET total = 1 WHERE id = 2", ""},
	{"MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN DELETE", ""},
	/* views, unknown relations */
	{"SELECT id, email FROM v_customers", "CM"},
	{"SELECT * FROM public.v_customers", "CM"},
	{"SELECT a FROM mystery", "U"},
	{"SELECT * FROM mystery", "!"},
	{"SELECT c.name, m.x FROM customers c, mystery m", "CU"},
	{"SELECT name FROM customers c, mystery m", "C"},
	{"SELECT email || m.x FROM customers c, mystery m", "M"},
	{"SELECT nope FROM customers", "U"},
	/* other statements */
	{"EXPLAIN SELECT ssn FROM customers", "C"},
	{"EXPLAIN (ANALYZE, FORMAT JSON) SELECT ssn FROM customers", "C"},
	{"SHOW search_path", "C"},
	{"SHOW ALL", "CCC"},
	{"SELECT * INTO t2 FROM customers", ""},
	{"CREATE TABLE t3 AS SELECT email FROM customers", ""},
	{"DECLARE cur CURSOR FOR SELECT id, ssn FROM customers", ""},
	{"PREPARE p AS SELECT ssn FROM customers WHERE id = $1", ""},
	{"COPY customers FROM STDIN", ""},
	{"COPY customers TO STDOUT", "!"},
	{"FETCH 10 FROM cur", "!"},
	{"MOVE 10 IN cur", ""},
	{"EXECUTE p(1)", "!"},
	{"CALL proc()", "!"},
	{"SET search_path = public", ""},
	{"BEGIN", ""},
	{"CREATE TABLE z (a int)", ""},
	{"", ""},
	{"SELEC 1", "!"},
	{"SELECT 1; SELECT 2", "!"},
};

static const mask_tc mask_inner_cases[] = {
	{"DECLARE cur CURSOR FOR SELECT id, ssn FROM customers", "CM"},
	{"PREPARE p AS SELECT ssn, id FROM customers WHERE id = $1", "MC"},
	{"PREPARE p AS UPDATE customers SET name = $1 RETURNING email", "M"},
	{"COPY customers TO STDOUT", "CCMMC"},
	{"COPY customers (id, email) TO STDOUT", "CM"},
	{"COPY (SELECT email, total FROM customers, orders) TO STDOUT WITH (FORMAT csv)", "MC"},
	{"COPY mystery TO STDOUT", "!"},
	{"COPY customers FROM STDIN", ""},
	{"CREATE VIEW vv AS SELECT name, ssn FROM customers", "CM"},
	{"CREATE TABLE t3 AS SELECT email FROM customers", "M"},
	{"SELECT id, email INTO t2 FROM customers", "CM"},
	{"CREATE TABLE t4 AS EXECUTE p", "!"},
	{"SELECT ssn FROM customers", "M"},
};

GW_TEST(sql_mask_columns)
{
	int bad = 0;
	for (size_t i = 0; i < sizeof(mask_cases) / sizeof(mask_cases[0]); i++)
		bad += !mask_case(mask_cases[i].sql, mask_cases[i].want, false);
	for (size_t i = 0; i < sizeof(mask_inner_cases) / sizeof(mask_inner_cases[0]); i++)
		bad += !mask_case(mask_inner_cases[i].sql, mask_inner_cases[i].want, true);
	CHECK(bad == 0);

	/* the reasons */
	uint8_t out[8];
	char why[256];
	const char *q = "SELECT id, a FROM customers, mystery";
	CHECK(gw_sql_mask_columns(q, strlen(q), &fake_cat, out, 8, why, sizeof(why)) == 2);
	CHECK(out[0] == GW_SQL_COL_CLEAR && out[1] == GW_SQL_COL_UNDECIDED && strstr(why, "mystery"));
	q = "SELECT * FROM generate_series(1, 3)";
	CHECK(gw_sql_mask_columns(q, strlen(q), &fake_cat, out, 8, why, sizeof(why)) == -1 &&
		strstr(why, "generate_series"));
	q = "SELECT id FROM customers";
	CHECK(gw_sql_mask_columns(q, strlen(q), &fake_cat, out, 8, why, sizeof(why)) == 1 && why[0] == 0);
	CHECK(gw_sql_mask_columns(q, strlen(q), &fake_cat, NULL, 0, NULL, 0) == 1);
	/* text is used up to len only */
	q = "SELECT email FROM customers; DROP TABLE x";
	CHECK(gw_sql_mask_columns(q, 27, &fake_cat, out, 8, why, sizeof(why)) == 1 && out[0] == GW_SQL_COL_MASKED);
	/* without a catalog every relation is unknown */
	gw_sql_catalog none = {0};
	q = "SELECT id FROM customers";
	CHECK(gw_sql_mask_columns(q, strlen(q), &none, out, 8, why, sizeof(why)) == 1 &&
		out[0] == GW_SQL_COL_UNDECIDED);
}

/*
 * Writes under masking, against a fake catalog: customers.ssn is masked by a rule that shows nothing (a redact
 * target takes any value), customers.email by one that shows part (only email's own value may go there); a new
 * table's column named ssn is covered by a rule too; leak(), === and ::leaky run a user's code.
 */
static bool fake_write_ok(void *ud, const struct gw_sql_flow *f)
{
	(void)ud;
	if (f->into == GW_SQL_INTO_FILE || !f->col)
		return false;
	if (f->into == GW_SQL_INTO_NEW)
		return !strcmp(f->col, "ssn");
	if (strcmp(f->rel, "customers"))
		return false;
	if (!strcmp(f->col, "ssn"))
		return true;
	return !strcmp(f->col, "email") && f->src_col && !strcmp(f->src_rel, "customers") &&
		!strcmp(f->src_col, "email");
}

static int fake_rel_masked(void *ud, const char *schema, const char *rel)
{
	(void)ud;
	const fake_rel *r = fake_find(schema, rel);
	return !r ? -1 : strcmp(r->masked, " ") != 0;
}

static bool fake_schema_masked(void *ud, const char *schema)
{
	(void)ud;
	return !strcmp(schema, "public");
}

static bool fake_user_code(void *ud, int kind, const char *name)
{
	(void)ud;
	return (kind == GW_SQL_CODE_FUNCTION && !strcmp(name, "leak")) ||
		(kind == GW_SQL_CODE_OPERATOR && !strcmp(name, "===")) || (kind == GW_SQL_CODE_CAST && !strcmp(name, "leaky"));
}

static const gw_sql_catalog fake_wcat = {.columns = fake_columns, .masked = fake_masked, .write_ok = fake_write_ok,
	.rel_masked = fake_rel_masked, .schema_masked = fake_schema_masked, .user_code = fake_user_code};

static const struct {
	const char *sql;
	int want; /* 0 may run, 1 refused, -1 not decided */
} write_cases[] = {
	/* INSERT ... SELECT / VALUES */
	{"INSERT INTO orders (id, note) SELECT id, ssn FROM customers", 1},
	{"INSERT INTO orders (id, note) SELECT id, name FROM customers", 0},
	{"INSERT INTO orders SELECT id, 1, 2, email FROM customers", 1},
	{"INSERT INTO orders SELECT 1, id, 2, name FROM customers", 0},
	{"INSERT INTO orders VALUES (1, 1, 2, (SELECT ssn FROM customers LIMIT 1))", 1},
	{"INSERT INTO orders (note) VALUES ('x'), ($1)", 0},
	{"INSERT INTO orders DEFAULT VALUES", 0},
	{"INSERT INTO orders (id, note) SELECT id, email FROM mystery", 1},
	{"INSERT INTO customers (id, email) SELECT 99, email FROM customers", 0},   /* its own value, masked alike */
	{"INSERT INTO customers (id, email) SELECT 99, lower(email) FROM customers", 1},
	{"INSERT INTO customers (id, ssn) SELECT 99, email || notes FROM customers", 0}, /* shows nothing */
	{"INSERT INTO orders (id, note) SELECT id, s FROM (SELECT id, ssn AS s FROM customers) x", 1},
	{"INSERT INTO orders (note) SELECT email FROM customers UNION SELECT 'x'", 1},
	/* ON CONFLICT DO UPDATE: EXCLUDED is the row proposed */
	{"INSERT INTO orders (id, note) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET note = "
		"(SELECT ssn FROM customers LIMIT 1)", 1},
	{"INSERT INTO customers (id, ssn) SELECT 1, email FROM customers ON CONFLICT (id) DO UPDATE SET notes = "
		"excluded.ssn", 1},
	{"INSERT INTO customers (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET notes = excluded.name", 0},
	{"INSERT INTO customers (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET notes = customers.ssn", 1},
	/* UPDATE */
	{"UPDATE orders o SET note = c.ssn FROM customers c WHERE c.id = o.customer_id", 1},
	{"UPDATE orders SET note = (SELECT email FROM customers LIMIT 1)", 1},
	{"UPDATE orders SET note = (SELECT name FROM customers LIMIT 1) WHERE note = (SELECT ssn FROM customers)", 0},
	{"UPDATE customers SET ssn = ssn", 0},
	{"UPDATE customers SET email = email", 0},
	{"UPDATE customers SET email = lower(email)", 1},
	{"UPDATE customers SET notes = email", 1},
	{"UPDATE customers SET notes = name || id", 0},
	{"UPDATE customers SET ssn = email || notes", 0},
	{"UPDATE orders SET (note, total) = (SELECT ssn, 1 FROM customers LIMIT 1)", 1},
	{"UPDATE customers SET (ssn, notes) = (SELECT email, name FROM customers LIMIT 1)", 0},
	{"UPDATE customers SET (ssn, name) = (email, name)", 0},
	{"UPDATE customers SET (name, ssn) = (email, name)", 1},
	/* MERGE */
	{"MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET note = c.ssn", 1},
	{"MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN NOT MATCHED THEN INSERT (id, note) "
		"VALUES (c.id, c.email)", 1},
	{"MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED AND c.ssn = 'x' THEN UPDATE SET "
		"note = c.name WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.id, 1, c.name)", 0},
	{"MERGE INTO orders o USING (SELECT id, ssn FROM customers) c ON o.id = c.id WHEN NOT MATCHED THEN INSERT "
		"VALUES (c.id, c.id, 1, c.ssn)", 1},
	/* CTEs */
	{"WITH x AS (SELECT ssn FROM customers) INSERT INTO orders (note) SELECT ssn FROM x", 1},
	{"WITH w AS (INSERT INTO orders (note) SELECT email FROM customers RETURNING id) SELECT * FROM w", 1},
	{"WITH w AS (UPDATE orders SET note = 'x' RETURNING id) SELECT * FROM w", 0},
	{"WITH x AS (SELECT ssn FROM customers), w AS (DELETE FROM orders RETURNING id) SELECT * FROM w, x", 0},
	{"WITH x AS (SELECT email FROM customers), w AS (INSERT INTO orders (note) SELECT * FROM x RETURNING 1) "
		"DELETE FROM orders", 1},
	/* new tables: CREATE TABLE AS, SELECT INTO, materialized views; a view stores nothing */
	{"CREATE TABLE x AS SELECT id, email FROM customers", 1},
	{"CREATE TABLE x AS SELECT id, name FROM customers", 0},
	{"CREATE TABLE x AS SELECT id, email AS ssn FROM customers", 0},
	{"CREATE TABLE x (a, ssn) AS SELECT id, email FROM customers", 0},
	{"CREATE TABLE x AS SELECT id, email FROM customers WITH NO DATA", 0},
	{"CREATE TABLE x AS EXECUTE p", -1},
	{"SELECT email INTO x FROM customers", 1},
	{"SELECT name INTO x FROM customers", 0},
	{"CREATE MATERIALIZED VIEW mv AS SELECT upper(email) FROM customers", 1},
	{"CREATE MATERIALIZED VIEW mv AS SELECT upper(email) FROM customers WITH NO DATA", 1},
	{"CREATE VIEW v AS SELECT email FROM customers", 0},
	/* COPY to a file or program; TO STDOUT is masked on its way */
	{"COPY (SELECT ssn FROM customers) TO '/tmp/x'", 1},
	{"COPY customers TO '/tmp/x'", 1},
	{"COPY customers (id, name) TO '/tmp/x'", 0},
	{"COPY orders TO PROGRAM 'cat'", 0},
	{"COPY customers TO STDOUT", 0},
	{"COPY (INSERT INTO orders (note) SELECT ssn FROM customers RETURNING id) TO STDOUT", 1},
	/* EXPLAIN ANALYZE runs it; plain EXPLAIN does not; PREPARE decides its statement */
	{"EXPLAIN ANALYZE INSERT INTO orders (note) SELECT ssn FROM customers", 1},
	{"EXPLAIN INSERT INTO orders (note) SELECT ssn FROM customers", 0},
	{"PREPARE p AS INSERT INTO orders (note) SELECT ssn FROM customers", 1},
	{"PREPARE p AS INSERT INTO orders (note) VALUES ($1)", 0},
	/* code defined in the database: what it returns is not decided */
	{"INSERT INTO orders (id, note) SELECT id, leak(name) FROM customers", 1},
	{"INSERT INTO orders (id, note) SELECT id, name === 'x' FROM customers", 1},
	{"INSERT INTO orders (note) SELECT 'a'::leaky", 1},
	{"INSERT INTO orders (note) SELECT name FROM customers WHERE leak(name) = 'x'", 0},
	{"UPDATE customers SET ssn = leak(name)", 0},
	{"DO $$ BEGIN NULL; END $$", -1},
	/* rules and triggers */
	{"CREATE RULE r AS ON UPDATE TO customers DO ALSO INSERT INTO orders (note) VALUES (new.ssn)", 1},
	{"CREATE RULE r AS ON UPDATE TO customers DO ALSO INSERT INTO orders (note) VALUES (old.name)", 0},
	{"CREATE RULE r AS ON INSERT TO orders DO INSTEAD NOTHING", 0},
	{"CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION f()", 1},
	{"CREATE TRIGGER t AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f()", 0},
	{"CREATE TRIGGER t AFTER UPDATE ON mystery FOR EACH ROW EXECUTE FUNCTION f()", -1},
	/* renames of what rules name */
	{"ALTER TABLE customers RENAME TO c2", 1},
	{"ALTER TABLE public.customers RENAME TO c2", 1},
	{"ALTER TABLE orders RENAME TO o2", 0},
	{"ALTER TABLE customers RENAME COLUMN ssn TO x", 1},
	{"ALTER TABLE customers RENAME COLUMN name TO n", 0},
	{"ALTER VIEW v_customers RENAME TO v2", 1},
	{"ALTER MATERIALIZED VIEW v_customers RENAME TO v2", 1},
	{"ALTER TABLE customers SET SCHEMA s2", 1},
	{"ALTER VIEW v_customers SET SCHEMA s2", 1},
	{"ALTER TABLE orders SET SCHEMA s2", 0},
	{"ALTER SCHEMA public RENAME TO p2", 1},
	{"ALTER SCHEMA other RENAME TO p2", 0},
	{"ALTER TABLE mystery RENAME TO y", -1},
	{"ALTER TABLE customers DETACH PARTITION customers_1", 1},
	{"ALTER TABLE orders NO INHERIT customers", 1},
	{"ALTER TABLE orders ADD COLUMN x text, DROP COLUMN note", 0},
	/* reads and the rest */
	{"SELECT ssn FROM customers", 0},
	{"DELETE FROM customers WHERE ssn = 'x'", 0},
	{"CREATE TABLE t (a text)", 0},
	{"not sql at all", 0},
};

GW_TEST(sql_mask_writes)
{
	int bad = 0;
	char why[256];
	for (size_t i = 0; i < sizeof(write_cases) / sizeof(write_cases[0]); i++) {
		const char *q = write_cases[i].sql;
		int rc = gw_sql_mask_writes(q, strlen(q), &fake_wcat, why, sizeof(why));
		if (rc != write_cases[i].want || (rc != 0) != (why[0] != 0)) {
			fprintf(stderr, "     %s\n       got %d want %d (%s)\n", q, rc, write_cases[i].want, why);
			bad++;
		}
	}
	CHECK(bad == 0);
	/* the reasons name what would go where */
	const char *q = "INSERT INTO orders (id, note) SELECT id, ssn FROM customers";
	CHECK(gw_sql_mask_writes(q, strlen(q), &fake_wcat, why, sizeof(why)) == 1);
	CHECK(strstr(why, "customers.ssn") && strstr(why, "column note of orders"));
	q = "COPY (SELECT upper(email) FROM customers) TO '/tmp/out.csv'";
	CHECK(gw_sql_mask_writes(q, strlen(q), &fake_wcat, why, sizeof(why)) == 1);
	CHECK(strstr(why, "computed from a masked column") && strstr(why, "/tmp/out.csv"));
	q = "ALTER TABLE customers RENAME COLUMN ssn TO x";
	CHECK(gw_sql_mask_writes(q, strlen(q), &fake_wcat, why, sizeof(why)) == 1 && strstr(why, "ssn"));
	/* without a catalog: whatever is read is undecided, a rename not known */
	gw_sql_catalog none = {0};
	q = "INSERT INTO orders (note) SELECT name FROM customers";
	CHECK(gw_sql_mask_writes(q, strlen(q), &none, why, sizeof(why)) == 1 && strstr(why, "cannot be decided"));
	q = "INSERT INTO orders (note) VALUES ('plain')";
	CHECK(gw_sql_mask_writes(q, strlen(q), &none, why, sizeof(why)) == 0 && why[0] == 0);
	q = "ALTER TABLE orders RENAME TO o2";
	CHECK(gw_sql_mask_writes(q, strlen(q), &none, why, sizeof(why)) == -1);
	/* several statements: each is looked at */
	q = "SELECT 1; UPDATE orders SET note = (SELECT ssn FROM customers)";
	CHECK(gw_sql_mask_writes(q, strlen(q), &fake_wcat, why, sizeof(why)) == 1);
}

GW_TEST(sql_operators_and_casts_named)
{
	gw_sql s;
	CHECK(gw_sql_parse("SELECT a === b, x::leaky, CAST(y AS public.other), z BETWEEN 1 AND 2, "
		"w = ANY (SELECT 1), v OPERATOR(public.<<>) 3 FROM t", &s) == 0);
	const gw_sql_stmt *st = &s.stmts[0];
	bool eq3 = false, lt = false, ge = false, any = false;
	for (size_t i = 0; i < st->noperators; i++) {
		eq3 |= !strcmp(st->operators[i], "===");
		lt |= !strcmp(st->operators[i], "<<>");
		ge |= !strcmp(st->operators[i], ">=");
		any |= !strcmp(st->operators[i], "=");
	}
	CHECK(eq3 && lt && ge && any);
	CHECK(st->ncasts == 2 && !strcmp(st->casts[0], "leaky") && !strcmp(st->casts[1], "other"));
	gw_sql_free(&s);
}

GW_TEST(sql_mask_columns_bounded)
{
	uint8_t out[8];
	char why[256];
	/* deep nesting: -1, no crash */
	size_t cap = 64 + 2000 * 8;
	char *deep = malloc(cap);
	CHECK(deep);
	for (int depth = 150; depth <= 2000; depth *= 2) {
		strcpy(deep, "SELECT ");
		for (int i = 0; i < depth; i++)
			strcat(deep, "abs(");
		strcat(deep, "id");
		for (int i = 0; i < depth; i++)
			strcat(deep, ")");
		strcat(deep, " FROM orders");
		int n = gw_sql_mask_columns(deep, strlen(deep), &fake_cat, out, 8, why, sizeof(why));
		CHECK(depth < 200 ? n == 1 && out[0] == GW_SQL_COL_CLEAR : n == -1);
	}
	/* nested sub-queries */
	strcpy(deep, "SELECT ");
	for (int i = 0; i < 300; i++)
		strcat(deep, "(SELECT ");
	strcat(deep, "email FROM customers");
	for (int i = 0; i < 300; i++)
		strcat(deep, ")");
	CHECK(gw_sql_mask_columns(deep, strlen(deep), &fake_cat, out, 8, why, sizeof(why)) == -1 && why[0]);
	free(deep);

	/* a huge target list: the count exceeds max, out holds the first max */
	size_t n = 5000;
	char *wide = malloc(16 + n * 7);
	CHECK(wide);
	strcpy(wide, "SELECT ssn");
	for (size_t i = 1; i < n; i++)
		strcat(wide, ", id");
	strcat(wide, " FROM customers");
	CHECK(gw_sql_mask_columns(wide, strlen(wide), &fake_cat, out, 8, why, sizeof(why)) == (int)n);
	CHECK(out[0] == GW_SQL_COL_MASKED && out[7] == GW_SQL_COL_CLEAR);
	free(wide);

	/* a long UNION ALL chain is read without recursion */
	size_t arms = 50000, len = 32 + arms * 24;
	char *chain = malloc(len);
	CHECK(chain);
	strcpy(chain, "SELECT 1");
	char *p = chain + strlen(chain);
	for (size_t i = 0; i < arms; i++) {
		memcpy(p, " UNION ALL SELECT 2", 19);
		p += 19;
	}
	strcpy(p, " UNION ALL SELECT ssn FROM customers");
	CHECK(gw_sql_mask_columns(chain, strlen(chain), &fake_cat, out, 8, why, sizeof(why)) == 1 &&
		out[0] == GW_SQL_COL_MASKED);
	free(chain);

	/* stars over self-joins doubling at every CTE: refused by the size budget, not run out of memory */
	char big[4096] = "WITH a0 AS (SELECT * FROM customers x, customers y)";
	for (int i = 1; i < 24; i++) {
		char part[128];
		snprintf(part, sizeof(part), ", a%d AS (SELECT * FROM a%d x, a%d y)", i, i - 1, i - 1);
		strcat(big, part);
	}
	strcat(big, " SELECT * FROM a23");
	CHECK(gw_sql_mask_columns(big, strlen(big), &fake_cat, out, 8, why, sizeof(why)) == -1 && why[0]);

	/* recursive CTEs nested in each other: bounded work */
	char rec[8192] = "SELECT * FROM ";
	for (int i = 0; i < 12; i++) {
		char part[256];
		snprintf(part, sizeof(part), "(WITH RECURSIVE r%d(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r%d, ", i, i);
		strcat(rec, part);
	}
	strcat(rec, "customers");
	for (int i = 11; i >= 0; i--) {
		char part[128];
		snprintf(part, sizeof(part), " x%d WHERE n < 3) SELECT * FROM r%d) s%d", i, i, i);
		strcat(rec, part);
	}
	int rc = gw_sql_mask_columns(rec, strlen(rec), &fake_cat, out, 8, why, sizeof(why));
	CHECK(rc == -1 || rc == 1);

	/* hostile bytes: never a crash */
	static const char *const junk[] = {
		"SELECT (((((", "SELECT * FROM (SELECT", "SELECT \"\"\"", "WITH RECURSIVE x AS (SELECT * FROM x) SELECT * FROM x",
		"WITH x AS (SELECT * FROM x) SELECT * FROM x", "SELECT a.b.c.d.e FROM customers",
		"SELECT (SELECT *) FROM customers", "SELECT * FROM customers NATURAL JOIN mystery",
		"SELECT * FROM customers JOIN orders USING (nope)", "SELECT (x).* FROM customers",
		"SELECT * FROM (VALUES (1), (1, 2)) v", "SELECT 1 UNION SELECT 1, 2", "SELECT f(*) FROM customers",
		"SELECT x.* FROM customers", "SELECT * FROM customers AS c(a, b, c, d, e, f, g)",
		"INSERT INTO mystery VALUES (1) RETURNING *", "SELECT * FROM ROWS FROM (f(), g()) AS x(a, b, c)",
		"SELECT * FROM XMLTABLE('/r' PASSING '<r/>' COLUMNS a int PATH 'a', o FOR ORDINALITY)",
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		rc = gw_sql_mask_columns(junk[i], strlen(junk[i]), &fake_cat, out, 8, why, sizeof(why));
		CHECK(rc >= -1);
		rc = gw_sql_mask_columns_inner(junk[i], strlen(junk[i]), &fake_cat, out, 8, why, sizeof(why));
		CHECK(rc >= -1);
	}
}

GW_TEST(sql_copy_options)
{
	struct gw_sql_copy c;
	char why[200];
#define OPT(sql) gw_sql_copy_options(sql, strlen(sql), &c, why, sizeof(why))
	/* defaults: text, tab, \N */
	CHECK(OPT("COPY customers TO STDOUT") == 0);
	CHECK(c.format == GW_SQL_COPY_TEXT && c.delim == '\t' && c.null_len == 2 && !strcmp(c.null_str, "\\N"));
	CHECK(!c.header && !c.query && !c.schema && !strcmp(c.rel, "customers") && c.ncols == 0 && !c.encoding);
	gw_sql_copy_free(&c);
	/* csv: ',', "", '"', escape = quote; a schema and a column list as the parser gives them */
	CHECK(OPT("copy Public.\"Customers\" (Name, \"E\") to stdout with (format csv, header)") == 0);
	CHECK(c.format == GW_SQL_COPY_CSV && c.delim == ',' && c.null_len == 0 && c.quote == '"' && c.escape == '"');
	CHECK(c.header && !strcmp(c.schema, "public") && !strcmp(c.rel, "Customers") && c.ncols == 2);
	CHECK(!strcmp(c.cols[0], "name") && !strcmp(c.cols[1], "E"));
	gw_sql_copy_free(&c);
	/* the old syntax and the options of another form */
	CHECK(OPT("COPY t TO STDOUT WITH CSV HEADER DELIMITER AS ';' NULL AS 'NULL' QUOTE AS '''' ESCAPE AS '\\'") == 0);
	CHECK(c.format == GW_SQL_COPY_CSV && c.header && c.delim == ';' && !strcmp(c.null_str, "NULL"));
	CHECK(c.quote == '\'' && c.escape == '\\');
	gw_sql_copy_free(&c);
	CHECK(OPT("COPY BINARY t TO STDOUT") == 0 && c.format == GW_SQL_COPY_BINARY);
	gw_sql_copy_free(&c);
	CHECK(OPT("COPY t TO STDOUT (FORMAT binary, HEADER false)") == 0 && c.format == GW_SQL_COPY_BINARY);
	gw_sql_copy_free(&c);
	/* PostgreSQL 15: HEADER in text format; 0/1/on/off */
	CHECK(OPT("COPY t TO STDOUT (HEADER on, DELIMITER '|')") == 0 && c.header && c.delim == '|');
	gw_sql_copy_free(&c);
	CHECK(OPT("COPY t TO STDOUT (HEADER 0, FORMAT csv, FORCE_QUOTE *)") == 0 && !c.header);
	gw_sql_copy_free(&c);
	CHECK(OPT("COPY (SELECT upper(email) FROM customers) TO STDOUT (FORMAT csv)") == 0 && c.query && !c.rel);
	gw_sql_copy_free(&c);
	CHECK(OPT("COPY t TO STDOUT (ENCODING 'LATIN1')") == 0 && !strcmp(c.encoding, "LATIN1"));
	gw_sql_copy_free(&c);
	/* refused: not COPY TO STDOUT, options PostgreSQL refuses, an encoding that embeds ASCII */
	static const char *const bad[] = {
		"COPY t FROM STDIN", "COPY t TO '/tmp/x'", "COPY t TO PROGRAM 'cat'", "SELECT 1", "COPY t TO STDOUT; SELECT 1",
		"COPY t TO STDOUT (FORMAT 'CSV')", "COPY t TO STDOUT (FORMAT binary, DELIMITER ',')",
		"COPY t TO STDOUT (QUOTE '''')", "COPY t TO STDOUT (DELIMITER 'ab')", "COPY t TO STDOUT (DELIMITER 'x')",
		"COPY t TO STDOUT (DELIMITER E'\\n')", "COPY t TO STDOUT (NULL E'a\\nb')", "COPY t TO STDOUT (NULL 'a\tb')",
		"COPY t TO STDOUT (FORMAT csv, QUOTE ',')", "COPY t TO STDOUT (FORMAT csv, NULL '\"')",
		"COPY t TO STDOUT (HEADER match)", "COPY t TO STDOUT (FORMAT binary, HEADER)",
		"COPY t TO STDOUT (FORMAT csv, FORMAT text)", "COPY t TO STDOUT (ENCODING 'SJIS')",
		"COPY t TO STDOUT (FORCE_NOT_NULL (a))", "COPY t TO STDOUT (bogus 1)", "COPY (SELECT", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = OPT(bad[i]);
		if (rc != -1 || !why[0])
			fprintf(stderr, "     accepted: %s\n", bad[i]);
		CHECK(rc == -1 && why[0] && !c.null_str && !c.rel);
	}
#undef OPT
}
