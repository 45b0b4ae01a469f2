/*
 * libpq pipeline mode through the gateway: usage `pipeline CONNINFO`.
 *
 * Sends several batches of extended-protocol messages without waiting
 * (PQsendQueryParams / PQsendPrepare / PQsendQueryPrepared / PQsendDescribe*),
 * binary parameters and binary results, a Flush request, an error in the
 * middle of a batch (the rest of the batch comes back PGRES_PIPELINE_ABORTED
 * and its implicit transaction is rolled back), then recovery after the Sync,
 * and a batch of a few thousand queries. Every value is checked; each check
 * is printed; the exit status is non-zero on any mismatch.
 */
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static int checks;

__attribute__((format(printf, 2, 3))) static void check(int ok, const char *fmt, ...)
{
	va_list ap;
	checks++;
	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failures++;
}

static void die(PGconn *c, const char *what)
{
	fprintf(stderr, "pipeline: %s: %s\n", what, c ? PQerrorMessage(c) : "");
	printf("FAIL %s\n", what);
	exit(2);
}

static uint32_t get_u32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
}

static uint64_t get_u64(const char *p)
{
	return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

static void put_u32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

/*
 * The next result of the pipeline must have status want; for a query result
 * the NULL that ends it is consumed too. The caller PQclears the result.
 */
static PGresult *next(PGconn *c, ExecStatusType want, const char *label)
{
	PGresult *r = PQgetResult(c);
	if (!r) {
		check(0, "%s: expected %s, got no result (%s)", label, PQresStatus(want), PQerrorMessage(c));
		exit(1);
	}
	ExecStatusType st = PQresultStatus(r);
	check(st == want, "%s: status %s (want %s)%s%s", label, PQresStatus(st), PQresStatus(want),
		st == PGRES_FATAL_ERROR ? ": " : "", st == PGRES_FATAL_ERROR ? PQresultErrorMessage(r) : "");
	if (st != want) {
		printf("pipeline: stopping after an unexpected status\n");
		exit(1);
	}
	if (st != PGRES_PIPELINE_SYNC) {
		PGresult *end = PQgetResult(c);
		if (end) {
			check(0, "%s: expected the end of the result, got %s", label, PQresStatus(PQresultStatus(end)));
			PQclear(end);
		}
	}
	return r;
}

static void check_row_count(PGresult *r, int rows, int cols, const char *label)
{
	check(PQntuples(r) == rows && PQnfields(r) == cols, "%s: %d rows x %d columns (want %d x %d)", label,
		PQntuples(r), PQnfields(r), rows, cols);
}

static void check_int4(PGresult *r, int row, int col, int32_t want, const char *label)
{
	int ok = !PQgetisnull(r, row, col) && PQfformat(r, col) == 1 && PQgetlength(r, row, col) == 4;
	int32_t got = ok ? (int32_t)get_u32(PQgetvalue(r, row, col)) : 0;
	check(ok && got == want, "%s: binary int4 %d (want %d)", label, got, want);
}

static void check_int8(PGresult *r, int row, int col, int64_t want, const char *label)
{
	int ok = !PQgetisnull(r, row, col) && PQfformat(r, col) == 1 && PQgetlength(r, row, col) == 8;
	int64_t got = ok ? (int64_t)get_u64(PQgetvalue(r, row, col)) : 0;
	check(ok && got == want, "%s: binary int8 %lld (want %lld)", label, (long long)got, (long long)want);
}

static void check_bytes(PGresult *r, int row, int col, const char *want, int wantlen, const char *label)
{
	int len = PQgetlength(r, row, col);
	int ok = !PQgetisnull(r, row, col) && PQfformat(r, col) == 1 && len == wantlen &&
		memcmp(PQgetvalue(r, row, col), want, (size_t)wantlen) == 0;
	check(ok, "%s: binary value of %d bytes (want %d bytes, identical)", label, len, wantlen);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pipeline CONNINFO\n");
		return 2;
	}
	PGconn *c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK)
		die(c, "connect");
	check(PQsslInUse(c), "connection uses TLS (%s)", PQsslInUse(c) ? PQsslAttribute(c, "protocol") : "none");

	PGresult *r = PQexec(c, "DROP TABLE IF EXISTS pipeline_t; "
				"CREATE TABLE pipeline_t (id int4 PRIMARY KEY, name text NOT NULL, data bytea)");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die(c, "create table");
	PQclear(r);

	/* Every byte value, zeros included: binary parameters must pass untouched. */
	char allbytes[256];
	for (int i = 0; i < 256; i++)
		allbytes[i] = (char)i;

	if (PQenterPipelineMode(c) != 1)
		die(c, "PQenterPipelineMode");
	check(PQpipelineStatus(c) == PQ_PIPELINE_ON, "pipeline mode is on");

	/* ---- batch 1: params and results in binary, a prepared insert run three times ---- */
	{
		char p1[4];
		put_u32(p1, 41);
		const char *vals[3] = {p1, "h\xc3\xa9llo", allbytes};
		int lens[3] = {4, 6, 256};
		int fmts[3] = {1, 1, 1};
		Oid types[3] = {23, 25, 17};
		if (!PQsendQueryParams(c, "SELECT $1::int4 + 1, $2::text, $3::bytea, length($3)", 3, types, vals, lens,
			    fmts, 1))
			die(c, "send q1");
	}
	{
		Oid types[3] = {23, 25, 17};
		if (!PQsendPrepare(c, "ins", "INSERT INTO pipeline_t VALUES ($1, $2, $3) RETURNING id, name, data", 3,
			    types))
			die(c, "send prepare");
	}
	for (int i = 1; i <= 3; i++) {
		char id[4], name[32];
		put_u32(id, (uint32_t)i);
		snprintf(name, sizeof(name), "row-%d", i);
		const char *vals[3] = {id, name, allbytes};
		int lens[3] = {4, (int)strlen(name), 64 * i};
		int fmts[3] = {1, 1, 1};
		if (!PQsendQueryPrepared(c, "ins", 3, vals, lens, fmts, 1))
			die(c, "send exec ins");
	}
	if (!PQsendDescribePrepared(c, "ins"))
		die(c, "send describe");
	if (!PQpipelineSync(c))
		die(c, "sync 1");

	/* ---- batch 2: more binary types, then an error in the middle ---- */
	if (!PQsendQueryParams(c, "SELECT 1.5::float8, 12345678901234::int8, true, NULL::int4, -7::int2", 0, NULL, NULL,
		    NULL, NULL, 1))
		die(c, "send q types");
	{
		char id[4];
		put_u32(id, 4);
		const char *vals[3] = {id, "row-4", NULL};
		int lens[3] = {4, 5, 0};
		int fmts[3] = {1, 1, 1};
		if (!PQsendQueryPrepared(c, "ins", 3, vals, lens, fmts, 1))
			die(c, "send ins 4");
	}
	{
		char id[4];
		put_u32(id, 2); /* duplicate key: 23505 */
		const char *vals[3] = {id, "dup", NULL};
		int lens[3] = {4, 3, 0};
		int fmts[3] = {1, 1, 1};
		if (!PQsendQueryPrepared(c, "ins", 3, vals, lens, fmts, 1))
			die(c, "send dup");
	}
	if (!PQsendQueryParams(c, "SELECT 42", 0, NULL, NULL, NULL, NULL, 1))
		die(c, "send after error");
	{
		char id[4];
		put_u32(id, 99);
		const char *vals[3] = {id, "row-99", NULL};
		int lens[3] = {4, 6, 0};
		int fmts[3] = {1, 1, 1};
		if (!PQsendQueryPrepared(c, "ins", 3, vals, lens, fmts, 1))
			die(c, "send ins 99");
	}
	if (!PQpipelineSync(c))
		die(c, "sync 2");

	/* ---- batch 3: recovery ---- */
	if (!PQsendQueryParams(c, "SELECT count(*), coalesce(sum(id), 0)::int8, string_agg(name, ',' ORDER BY id) "
				  "FROM pipeline_t",
		    0, NULL, NULL, NULL, NULL, 1))
		die(c, "send recovery");
	if (!PQpipelineSync(c))
		die(c, "sync 3");

	/* ---- read batch 1 ---- */
	r = next(c, PGRES_TUPLES_OK, "q1 binary params");
	check_row_count(r, 1, 4, "q1");
	check_int4(r, 0, 0, 42, "q1 $1::int4 + 1");
	check_bytes(r, 0, 1, "h\xc3\xa9llo", 6, "q1 text in binary");
	check_bytes(r, 0, 2, allbytes, 256, "q1 bytea with all 256 byte values");
	check_int4(r, 0, 3, 256, "q1 length($3)");
	check(PQftype(r, 0) == 23 && PQftype(r, 1) == 25 && PQftype(r, 2) == 17, "q1 column types int4, text, bytea");
	PQclear(r);
	r = next(c, PGRES_COMMAND_OK, "prepare ins");
	PQclear(r);
	for (int i = 1; i <= 3; i++) {
		char label[32], name[32];
		snprintf(label, sizeof(label), "ins %d", i);
		snprintf(name, sizeof(name), "row-%d", i);
		r = next(c, PGRES_TUPLES_OK, label);
		check_row_count(r, 1, 3, label);
		check_int4(r, 0, 0, i, label);
		check_bytes(r, 0, 1, name, (int)strlen(name), label);
		check_bytes(r, 0, 2, allbytes, 64 * i, label);
		check(!strcmp(PQcmdStatus(r), "INSERT 0 1"), "%s: command tag %s", label, PQcmdStatus(r));
		PQclear(r);
	}
	r = next(c, PGRES_COMMAND_OK, "describe ins");
	check(PQnparams(r) == 3 && PQparamtype(r, 0) == 23 && PQparamtype(r, 1) == 25 && PQparamtype(r, 2) == 17,
		"describe ins: 3 parameters int4, text, bytea");
	check(PQnfields(r) == 3 && !strcmp(PQfname(r, 0), "id") && !strcmp(PQfname(r, 1), "name") &&
			!strcmp(PQfname(r, 2), "data"),
		"describe ins: result columns id, name, data");
	PQclear(r);
	r = next(c, PGRES_PIPELINE_SYNC, "sync 1");
	PQclear(r);

	/* ---- read batch 2 ---- */
	r = next(c, PGRES_TUPLES_OK, "types");
	check_row_count(r, 1, 5, "types");
	{
		uint64_t bits = get_u64(PQgetvalue(r, 0, 0));
		double d;
		memcpy(&d, &bits, sizeof(d));
		check(PQgetlength(r, 0, 0) == 8 && d == 1.5, "types: binary float8 %g", d);
	}
	check_int8(r, 0, 1, 12345678901234LL, "types int8");
	check(PQgetlength(r, 0, 2) == 1 && PQgetvalue(r, 0, 2)[0] == 1, "types: binary bool true");
	check(PQgetisnull(r, 0, 3), "types: NULL int4 is null");
	check(PQgetlength(r, 0, 4) == 2 && (int16_t)((((unsigned char)PQgetvalue(r, 0, 4)[0]) << 8) |
						     (unsigned char)PQgetvalue(r, 0, 4)[1]) == -7,
		"types: binary int2 -7");
	PQclear(r);
	r = next(c, PGRES_TUPLES_OK, "ins 4 (before the error)");
	check_int4(r, 0, 0, 4, "ins 4");
	check(PQgetisnull(r, 0, 2), "ins 4: NULL bytea");
	PQclear(r);
	r = next(c, PGRES_FATAL_ERROR, "duplicate key");
	{
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		check(state && !strcmp(state, "23505"), "duplicate key: SQLSTATE %s (want 23505)", state ? state : "-");
	}
	PQclear(r);
	check(PQpipelineStatus(c) == PQ_PIPELINE_ABORTED, "pipeline status is aborted after the error");
	r = next(c, PGRES_PIPELINE_ABORTED, "SELECT 42 after the error");
	PQclear(r);
	r = next(c, PGRES_PIPELINE_ABORTED, "ins 99 after the error");
	PQclear(r);
	r = next(c, PGRES_PIPELINE_SYNC, "sync 2");
	PQclear(r);
	check(PQpipelineStatus(c) == PQ_PIPELINE_ON, "pipeline status is on again after the sync");

	/* ---- read batch 3: ins 4 was rolled back with its batch, ins 99 never ran ---- */
	r = next(c, PGRES_TUPLES_OK, "recovery");
	check_row_count(r, 1, 3, "recovery");
	check_int8(r, 0, 0, 3, "recovery count(*)");
	check_int8(r, 0, 1, 6, "recovery sum(id)");
	check_bytes(r, 0, 2, "row-1,row-2,row-3", 17, "recovery names");
	PQclear(r);
	r = next(c, PGRES_PIPELINE_SYNC, "sync 3");
	PQclear(r);

	/* ---- a Flush request: the result arrives before any Sync ---- */
	if (!PQsendQueryParams(c, "SELECT 'flushed'::text", 0, NULL, NULL, NULL, NULL, 0) || !PQsendFlushRequest(c) ||
		PQflush(c) != 0)
		die(c, "send flush request");
	r = next(c, PGRES_TUPLES_OK, "flush request");
	check(PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "flushed"), "flush request: text result 'flushed'");
	PQclear(r);
	if (!PQpipelineSync(c))
		die(c, "sync 4");
	r = next(c, PGRES_PIPELINE_SYNC, "sync 4");
	PQclear(r);

	/* ---- a long pipeline: N prepared executions, then one Sync ---- */
	enum { N = 3000 };
	for (int i = 0; i < N; i++) {
		char a[4];
		put_u32(a, (uint32_t)i);
		const char *vals[1] = {a};
		int lens[1] = {4};
		int fmts[1] = {1};
		if (i == 0) {
			Oid t = 23;
			if (!PQsendPrepare(c, "sq", "SELECT $1::int4 * 2, repeat('x', $1::int4 % 50)", 1, &t))
				die(c, "send prepare sq");
		}
		if (!PQsendQueryPrepared(c, "sq", 1, vals, lens, fmts, 1))
			die(c, "send sq");
	}
	if (!PQpipelineSync(c))
		die(c, "sync 5");
	r = next(c, PGRES_COMMAND_OK, "prepare sq");
	PQclear(r);
	int bad = 0;
	for (int i = 0; i < N; i++) {
		r = PQgetResult(c);
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetlength(r, 0, 0) != 4 ||
			(int32_t)get_u32(PQgetvalue(r, 0, 0)) != 2 * i || PQgetlength(r, 0, 1) != i % 50)
			bad++;
		if (r) {
			PQclear(r);
			r = PQgetResult(c);
			if (r) {
				bad++;
				PQclear(r);
			}
		}
	}
	check(bad == 0, "long pipeline: %d prepared executions, %d wrong results", N, bad);
	r = next(c, PGRES_PIPELINE_SYNC, "sync 5");
	PQclear(r);

	if (PQexitPipelineMode(c) != 1)
		die(c, "PQexitPipelineMode");
	check(PQpipelineStatus(c) == PQ_PIPELINE_OFF, "pipeline mode is off");

	r = PQexec(c, "SELECT count(*) FROM pipeline_t WHERE id IN (4, 99)");
	check(PQresultStatus(r) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(r, 0, 0), "0"),
		"rows of the aborted batch are absent");
	PQclear(r);
	r = PQexec(c, "DROP TABLE pipeline_t");
	check(PQresultStatus(r) == PGRES_COMMAND_OK, "drop table");
	PQclear(r);
	check(PQtransactionStatus(c) == PQTRANS_IDLE, "transaction status idle at the end");
	PQfinish(c);

	printf("pipeline: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
