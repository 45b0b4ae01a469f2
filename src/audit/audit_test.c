/* Unit tests of audit/: the chain, the journal after a crash, verification, and the JSON writer it uses. */
#include "../../tests/unit/unit.h"
#include "audit/audit.h"
#include "core/json.h"
#include "core/util.h"
#include "policy/sqlparse.h"
#include "state/store.h"

#include <sqlite3.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY "unit-test-checkpoint-key-0123"

static void setup(char *dir, char *path, size_t n, gw_config *cfg, gw_store **st)
{
	CHECK(mkdtemp(dir));
	snprintf(path, n, "%s/state.db", dir);
	char err[256];
	*st = gw_store_open(path, err, sizeof(err));
	CHECK(*st);
	memset(cfg, 0, sizeof(*cfg));
	cfg->state_path = path;
	cfg->audit_queue_max = 100000;
	cfg->audit_checkpoint_key = (char *)KEY;
	cfg->audit_checkpoint_key_len = strlen(KEY);
}

static gw_audit_ev *event(int i, const char *text)
{
	gw_buf b = {0};
	gw_audit_ev_begin(&b, 1700000000000000ull + (uint64_t)i, "statement");
	gw_json_key(&b, "session", false);
	gw_json_cstr(&b, "s-1");
	gw_json_key(&b, "n", false);
	gw_json_int(&b, i);
	gw_json_key(&b, "statement", false);
	gw_json_cstr(&b, text);
	gw_audit_ev *e = gw_audit_ev_new(GW_AUD_STATEMENT, 1700000000000000ull + (uint64_t)i, "s-1", "agent", (uint32_t)i, &b);
	gw_buf_free(&b);
	return e;
}

static void append_n(gw_audit *a, int from, int count)
{
	for (int i = from; i < from + count; i++) {
		char why[256];
		char text[64];
		snprintf(text, sizeof(text), "SELECT %d", i);
		CHECK(gw_audit_append(a, event(i, text), why, sizeof(why)) == 0);
	}
}

static void exec(const char *path, const char *sql)
{
	sqlite3 *db;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fprintf(stderr, "     %s: %s\n", sql, msg);
	CHECK(!msg);
	sqlite3_close(db);
}

static int64_t verify_bad(const char *path, const char *key)
{
	gw_audit_verify_result r;
	char err[256];
	CHECK(gw_audit_verify(path, key, key ? strlen(key) : 0, &r, NULL, NULL, err, sizeof(err)) == 0);
	return r.ok ? 0 : r.bad_seq;
}

static int64_t count_records(const char *path)
{
	sqlite3 *db;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_stmt *q;
	CHECK(sqlite3_prepare_v2(db, "SELECT count(*) FROM audit", -1, &q, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(q) == SQLITE_ROW);
	int64_t n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return n;
}

GW_TEST(audit_chain_and_tampering)
{
	char dir[] = "/tmp/pgmoat-audit-XXXXXX", path[256], err[256];
	gw_config cfg;
	gw_store *st;
	setup(dir, path, sizeof(path), &cfg, &st);
	gw_audit *a = gw_audit_open(&cfg, err, sizeof(err));
	CHECK(a);
	append_n(a, 1, 20);
	gw_audit_close(a);
	CHECK(verify_bad(path, KEY) == 0);
	/* the wrong key: the checkpoint is not ours */
	CHECK(verify_bad(path, "another-key-of-16-bytes") != 0);
	char copy[300], sql[600];
	snprintf(copy, sizeof(copy), "%s/copy.db", dir);
	struct { const char *tamper; int64_t bad; } cases[] = {
		{"UPDATE audit SET body = replace(body, 'SELECT 7', 'SELECT 8') WHERE seq = 7", 7},
		{"DELETE FROM audit WHERE seq = 5", 5},
		{"UPDATE audit SET seq = -1 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; "
		 "UPDATE audit SET seq = 4 WHERE seq = -1", 3},
		{"DELETE FROM audit WHERE seq > 17", 18},
		{"INSERT INTO audit SELECT 21, ts, event, session, identity, n, replace(body, '\"seq\":20', '\"seq\":21'), "
		 "hash, hash FROM audit WHERE seq = 20", 21},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(sql, sizeof(sql), "cp %s %s && cp %s-wal %s-wal && rm -f %s-shm", path, copy, path, copy, copy);
		CHECK(system(sql) == 0);
		exec(copy, cases[i].tamper);
		int64_t bad = verify_bad(copy, KEY);
		if (bad != cases[i].bad)
			fprintf(stderr, "     case %zu: bad_seq %lld, expected %lld\n", i, (long long)bad, (long long)cases[i].bad);
		CHECK(bad == cases[i].bad);
	}
	gw_store_close(st);
	snprintf(sql, sizeof(sql), "rm -rf %s", dir);
	CHECK(system(sql) == 0);
}

/*
 * A gateway (a child process) that records 10, stops cleanly, then records 5
 * more and dies at once, as with kill -9: the writer had no time to move
 * those (it does every 20 ms), they are only in the journal.
 */
static void record_then_die(const gw_config *cfg)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char err[256];
		gw_store *st = gw_store_open(cfg->state_path, err, sizeof(err));
		gw_audit *a = st ? gw_audit_open(cfg, err, sizeof(err)) : NULL;
		if (!a)
			_exit(2);
		append_n(a, 1, 10);
		gw_audit_close(a);
		a = gw_audit_open(cfg, err, sizeof(err));
		if (!a)
			_exit(3);
		append_n(a, 11, 5);
		_exit(0);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

GW_TEST(audit_journal_recovered_after_crash)
{
	char dir[] = "/tmp/pgmoat-audit-XXXXXX", path[256], err[256];
	gw_config cfg;
	CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.db", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.state_path = path;
	cfg.audit_queue_max = 100000;
	cfg.audit_checkpoint_key = (char *)KEY;
	cfg.audit_checkpoint_key_len = strlen(KEY);
	record_then_die(&cfg);
	gw_store *st = gw_store_open(path, err, sizeof(err));
	CHECK(st);
	gw_audit *a = gw_audit_open(&cfg, err, sizeof(err));
	CHECK(a);
	gw_audit_close(a);
	sqlite3 *db;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_stmt *q;
	CHECK(sqlite3_prepare_v2(db, "SELECT count(*), max(seq) FROM audit", -1, &q, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(q) == SQLITE_ROW);
	if (sqlite3_column_int(q, 0) != 15 || sqlite3_column_int(q, 1) != 15)
		fprintf(stderr, "     %d records, last seq %d\n", sqlite3_column_int(q, 0), sqlite3_column_int(q, 1));
	CHECK(sqlite3_column_int(q, 0) == 15 && sqlite3_column_int(q, 1) == 15);
	sqlite3_finalize(q);
	sqlite3_close(db);
	CHECK(verify_bad(path, KEY) == 0);
	gw_store_close(st);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* A journal whose lines stop linking: what links is moved in, the file is set aside (not emptied). */
GW_TEST(audit_journal_break_is_kept_aside)
{
	char dir[] = "/tmp/pgmoat-audit-XXXXXX", path[256], jpath[300], err[256];
	gw_config cfg;
	gw_store *st;
	setup(dir, path, sizeof(path), &cfg, &st);
	gw_store_close(st);
	snprintf(jpath, sizeof(jpath), "%s-audit-journal", path);
	record_then_die(&cfg);
	/* change the text of seq 13 in the journal: 11 and 12 still link, 13 does not */
	FILE *f = fopen(jpath, "r+");
	CHECK(f);
	char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	char *at = strstr(buf, "SELECT 13");
	CHECK(at);
	at[7] = '9';
	CHECK(fseek(f, 0, SEEK_SET) == 0 && fwrite(buf, 1, n, f) == n);
	fclose(f);
	st = gw_store_open(path, err, sizeof(err));
	CHECK(st);
	gw_audit *a = gw_audit_open(&cfg, err, sizeof(err));
	CHECK(a);
	append_n(a, 13, 1);
	gw_audit_close(a);
	CHECK(count_records(path) == 13);
	CHECK(verify_bad(path, KEY) == 0);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "grep -q 'SELECT 93' %s.broken-*", jpath);
	CHECK(system(cmd) == 0);
	gw_store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

GW_TEST(json_text_and_utf8)
{
	gw_buf b = {0};
	gw_json_text(&b, "a\"b\\c\n\x01", 7);
	gw_buf_put_u8(&b, 0);
	CHECK(!strcmp((const char *)gw_buf_rd(&b), "\"a\\\"b\\\\c\\n\\u0001\""));
	gw_buf_reset(&b);
	gw_json_text(&b, "h\xc3\xa9llo", 6); /* valid UTF-8 stays as it is */
	gw_buf_put_u8(&b, 0);
	CHECK(!strcmp((const char *)gw_buf_rd(&b), "\"h\xc3\xa9llo\""));
	gw_buf_reset(&b);
	gw_json_text(&b, "\xff\x00z", 3); /* not UTF-8: hex, nothing dropped */
	gw_buf_put_u8(&b, 0);
	CHECK(!strcmp((const char *)gw_buf_rd(&b), "\"\\\\xff007a\""));
	CHECK(!gw_utf8_valid((const uint8_t *)"\xc0\x80", 2));        /* overlong */
	CHECK(!gw_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));    /* surrogate */
	CHECK(!gw_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* beyond U+10FFFF */
	CHECK(gw_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80 plain ascii text", 21));
	gw_buf_free(&b);
}

static bool same_fp(const char *a, const char *b)
{
	char fa[17], fb[17];
	gw_sql_fingerprint(a, strlen(a), fa);
	gw_sql_fingerprint(b, strlen(b), fb);
	return !strcmp(fa, fb);
}

GW_TEST(sql_fingerprint)
{
	CHECK(same_fp("SELECT abalance FROM pgbench_accounts WHERE aid = 1", "select abalance from pgbench_accounts where aid=77"
		" -- comment"));
	CHECK(same_fp("SELECT 'it''s', E'a\\'b', $$x$$, $q$y'$q$, 1.5e-3, x'ff' FROM t",
		"SELECT 'other', E'z', $$w$$, $q$v$q$, 2, X'00' /* c /* nested */ */ FROM t"));
	CHECK(same_fp("SELECT 'a' 'b'", "SELECT 'c'"));                    /* continued string: one literal */
	CHECK(!same_fp("SELECT a FROM t", "SELECT b FROM t"));
	CHECK(!same_fp("SELECT \"A\" FROM t", "SELECT \"a\" FROM t"));  /* quoted names as written */
	CHECK(!same_fp("SELECT $1", "SELECT $2"));
	CHECK(!same_fp("SELECT t1.x FROM t1", "SELECT t2.x FROM t2"));    /* digits in names are names */
	CHECK(same_fp("DELETE FROM t WHERE id IN (1, 2)", "DELETE FROM t WHERE id IN (3, 4)"));
	char fp[17];
	gw_sql_fingerprint("'unterminated", 13, fp); /* never reads past the end */
	CHECK(strlen(fp) == 16);
}
