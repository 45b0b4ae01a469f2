/*
 * Reading the record back: gw_audit_list (see audit.h).
 *
 * Each call opens the store read-only on a connection of its own and reads
 * inside one transaction, so a page is one consistent view while the writer
 * goes on (WAL: neither blocks the other). Every value from the caller is a
 * bound parameter; the SQL text is put together from fixed pieces only.
 *
 * Finding a page fast:
 *  - seq is the primary key and ts never goes back along it (the writer keeps
 *    it so), so `since` becomes a lower bound on seq by binary search;
 *  - the writer keeps where each session's and each identity's events lie
 *    (audit_sessions, audit_identities: first and last seq, updated in the
 *    same transaction as the events), so a session or identity filter scans
 *    only that stretch of the record. A store without them is scanned whole.
 *
 * Outcomes are events of their own, written when the statement completes
 * (perhaps much later, in another commit), so they are not listed: each
 * allowed statement of a page looks its outcome up (same session and n, the
 * first after the statement within the session's stretch) and carries its
 * fields. Refused statements never ran and have none.
 */
#include "audit/audit.h"
#include "core/map.h"
#include "core/util.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PAGE_BYTES (8u << 20)  /* a page stops growing past this much record text (a statement may hold 1 MiB) */
#define BUSY_MS 5000

/* The columns every query here returns, in this order. */
#define COLS "a.seq, a.ts, a.event, a.session, a.identity, a.n, a.body, a.prev, a.hash"
enum { C_SEQ, C_TS, C_EVENT, C_SESSION, C_IDENTITY, C_N, C_BODY, C_PREV, C_HASH };

/*
 * The listing queries number their parameters alike: ?1 session and ?2
 * identity (in the SQL only when filtered on), ?3 seq lower bound
 * (exclusive), ?4 upper bound (inclusive), ?5 ts lower bound, ?6 limit.
 */
#define LIST_WHERE " AND a.event <> 'outcome' AND a.ts >= ?5"

typedef struct reader {
	sqlite3 *db;
	const char *path;
	char *err;
	size_t errlen;
	bool ranges;             /* audit_sessions and audit_identities exist */
	sqlite3_stmt *out;       /* a statement's outcome */
	sqlite3_stmt *range_s, *range_i; /* where a session's / an identity's events lie */
	gw_map last_of;          /* session -> its last seq (+1, so that 0 means unknown), for outcome lookups */
	/* the page */
	const gw_audit_query *q;
	json_t *events;
	int limit, count;
	size_t bytes;
	int64_t last_seq;
	bool more;               /* a row beyond the page exists */
} reader;

static int fail(reader *r, const char *what)
{
	snprintf(r->err, r->errlen, "cannot read the record in %s (%s): %s", r->path, what, sqlite3_errmsg(r->db));
	return -1;
}

static int prepare(reader *r, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) != SQLITE_OK)
		return fail(r, "prepare");
	return 0;
}

/* Which audit tables the store has. */
static int tables(reader *r, bool *audit)
{
	sqlite3_stmt *st;
	if (prepare(r, "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
			"('audit', 'audit_sessions', 'audit_identities')", &st))
		return -1;
	int have = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(st, 0);
		have |= !strcmp(n, "audit") ? 1 : !strcmp(n, "audit_sessions") ? 2 : 4;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail(r, "schema");
	*audit = have & 1;
	r->ranges = have == 7;
	return 0;
}

/* Where key's events lie: 1 found (*first, *last), 0 no such key, -1 error. */
static int range_of(reader *r, sqlite3_stmt *q, const char *key, int64_t *first, int64_t *last)
{
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*first = sqlite3_column_int64(q, 0);
		*last = sqlite3_column_int64(q, 1);
	}
	sqlite3_reset(q);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(r, "range");
}

/*
 * The first seq whose ts >= since, into *out (0: none). Binary search on
 * f(x) = ts of the first record with seq >= x, which never decreases;
 * robust to gaps in seq (a damaged record still reads).
 */
static int first_since(reader *r, int64_t since, int64_t *out)
{
	sqlite3_stmt *b, *p;
	*out = 0;
	/* two subqueries: SQLite reads a lone min() or max() off the primary key, but scans for both in one */
	if (prepare(r, "SELECT (SELECT min(seq) FROM audit), (SELECT max(seq) FROM audit)", &b))
		return -1;
	if (sqlite3_step(b) != SQLITE_ROW) {
		sqlite3_finalize(b);
		return fail(r, "bounds");
	}
	bool empty = sqlite3_column_type(b, 0) == SQLITE_NULL;
	int64_t lo = sqlite3_column_int64(b, 0), max = sqlite3_column_int64(b, 1), hi = max + 1;
	sqlite3_finalize(b);
	if (empty)
		return 0;
	if (prepare(r, "SELECT ts FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT 1", &p))
		return -1;
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		sqlite3_reset(p);
		sqlite3_bind_int64(p, 1, mid);
		int rc = sqlite3_step(p);
		if (rc != SQLITE_ROW) {
			sqlite3_finalize(p);
			return fail(r, "since");
		}
		if (sqlite3_column_int64(p, 0) >= since)
			hi = mid;
		else
			lo = mid + 1;
	}
	sqlite3_finalize(p);
	*out = lo <= max ? lo : 0;
	return 0;
}

static void set_text(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	json_t *v = s ? json_stringn(s, (size_t)sqlite3_column_bytes(st, col)) : NULL;
	json_object_set_new(o, key, v ? v : json_null());
}

static void set_hex(json_t *o, const char *key, sqlite3_stmt *st, int col)
{
	const void *p = sqlite3_column_blob(st, col);
	char hex[65];
	if (p && sqlite3_column_bytes(st, col) == 32) {
		gw_hex(p, 32, hex);
		json_object_set_new(o, key, json_string(hex));
	} else {
		json_object_set_new(o, key, json_null());
	}
}

/* A record as JSON: its body, with prev and hash in hex. */
static json_t *row_json(sqlite3_stmt *st)
{
	const char *body = (const char *)sqlite3_column_text(st, C_BODY);
	json_t *o = body ? json_loadb(body, (size_t)sqlite3_column_bytes(st, C_BODY), 0, NULL) : NULL;
	if (!json_is_object(o)) {
		/* Not JSON: the row was altered (verify names it). Show what its columns say rather than hide it. */
		json_decref(o);
		o = json_object();
		char ts[40];
		gw_format_ts((uint64_t)sqlite3_column_int64(st, C_TS), ts, sizeof(ts));
		json_object_set_new(o, "seq", json_integer(sqlite3_column_int64(st, C_SEQ)));
		json_object_set_new(o, "ts", json_string(ts));
		set_text(o, "event", st, C_EVENT);
		set_text(o, "session", st, C_SESSION);
		set_text(o, "identity", st, C_IDENTITY);
		if (sqlite3_column_int64(st, C_N))
			json_object_set_new(o, "n", json_integer(sqlite3_column_int64(st, C_N)));
		json_object_set_new(o, "unreadable", json_true());
	}
	set_hex(o, "prev", st, C_PREV);
	set_hex(o, "hash", st, C_HASH);
	return o;
}

/* Copy the outcome (the current row of ost) into the statement object. */
static void merge_outcome(json_t *o, sqlite3_stmt *ost)
{
	static const char *const keys[] = {"status", "rows", "duration_us", "sqlstate", "masked_values"};
	json_t *out = row_json(ost);
	for (size_t i = 0; i < GW_ARRAY_LEN(keys); i++) {
		json_t *v = json_object_get(out, keys[i]);
		if (v)
			json_object_set(o, keys[i], v);
	}
	if (!json_object_get(o, "status"))
		json_object_set_new(o, "status", json_string("unknown"));
	json_object_set_new(o, "outcome_seq", json_integer(sqlite3_column_int64(ost, C_SEQ)));
	json_decref(out);
}

/* Find and merge the outcome of the statement (row st, object o); status "unknown" when there is none. */
static int add_outcome(reader *r, sqlite3_stmt *st, json_t *o)
{
	const char *session = (const char *)sqlite3_column_text(st, C_SESSION);
	size_t slen = (size_t)sqlite3_column_bytes(st, C_SESSION);
	int64_t seq = sqlite3_column_int64(st, C_SEQ), n = sqlite3_column_int64(st, C_N);
	if (!session)
		goto none;
	/* the outcome comes after the statement and no later than the session's last event */
	int64_t last = INT64_MAX;
	if (r->ranges) {
		intptr_t known = (intptr_t)gw_map_get(&r->last_of, session, slen);
		if (known) {
			last = (int64_t)known - 1;
		} else {
			int64_t first;
			int f = range_of(r, r->range_s, session, &first, &last);
			if (f < 0)
				return -1;
			if (!f)
				last = INT64_MAX;
			gw_map_put(&r->last_of, session, slen, (void *)(intptr_t)(last == INT64_MAX ? 0 : last + 1));
		}
	}
	sqlite3_stmt *p = r->out;
	sqlite3_reset(p);
	sqlite3_bind_text(p, 1, session, (int)slen, SQLITE_TRANSIENT);
	sqlite3_bind_int64(p, 2, seq);
	sqlite3_bind_int64(p, 3, n);
	sqlite3_bind_int64(p, 4, last);
	int rc = sqlite3_step(p);
	if (rc == SQLITE_ROW)
		merge_outcome(o, p);
	sqlite3_reset(p);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return fail(r, "outcome");
none:
	json_object_set_new(o, "status", json_string("unknown"));
	return 0;
}

/* One row of a listing: 1 go on, 0 the page is full, -1 error. */
static int take(reader *r, sqlite3_stmt *st)
{
	if (r->count == r->limit || (r->count && r->bytes >= PAGE_BYTES)) {
		r->more = true;
		return 0;
	}
	json_t *o = row_json(st);
	const char *ev = (const char *)sqlite3_column_text(st, C_EVENT);
	const char *decision = json_string_value(json_object_get(o, "decision"));
	if (ev && !strcmp(ev, "statement") && decision && !strcmp(decision, "allow") && add_outcome(r, st, o)) {
		json_decref(o);
		return -1;
	}
	json_array_append_new(r->events, o);
	r->count++;
	r->bytes += (size_t)sqlite3_column_bytes(st, C_BODY);
	r->last_seq = sqlite3_column_int64(st, C_SEQ);
	return 1;
}

/* Run one listing query over seq in (lo, hi]; stops when the page is full. */
static int run(reader *r, const char *sql, int64_t lo, int64_t hi)
{
	const gw_audit_query *q = r->q;
	sqlite3_stmt *st;
	if (prepare(r, sql, &st))
		return -1;
	if (q->session)
		sqlite3_bind_text(st, 1, q->session, -1, SQLITE_STATIC);
	if (q->identity)
		sqlite3_bind_text(st, 2, q->identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, lo);
	sqlite3_bind_int64(st, 4, hi);
	sqlite3_bind_int64(st, 5, q->since_us > 0 ? q->since_us : INT64_MIN);
	sqlite3_bind_int64(st, 6, (int64_t)r->limit + 1);
	int rc = SQLITE_DONE, t = 1;
	while (t > 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		t = take(r, st);
	if (t > 0 && rc != SQLITE_DONE)
		t = fail(r, "list");
	sqlite3_finalize(st);
	return t < 0 ? -1 : 0;
}

/*
 * The page: one scan by primary key, narrowed to where the session's and the
 * identity's events lie when the writer's range tables say so.
 */
static int list(reader *r, int64_t after)
{
	const gw_audit_query *q = r->q;
	int64_t hi = INT64_MAX;
	if (r->ranges) {
		struct {
			const char *key;
			sqlite3_stmt *q;
		} f[2] = {{q->session, r->range_s}, {q->identity, r->range_i}};
		for (int k = 0; k < 2; k++) {
			int64_t first, last;
			if (!f[k].key)
				continue;
			int found = range_of(r, f[k].q, f[k].key, &first, &last);
			if (found < 0)
				return -1;
			if (!found)
				return 0; /* no such session or identity in the record */
			if (first - 1 > after)
				after = first - 1;
			if (last < hi)
				hi = last;
		}
		if (after >= hi)
			return 0;
	}
	char sql[768];
	snprintf(sql, sizeof(sql), "SELECT " COLS " FROM audit a WHERE a.seq > ?3 AND a.seq <= ?4" LIST_WHERE "%s%s "
		"ORDER BY a.seq LIMIT ?6", q->session ? " AND a.session = ?1" : "", q->identity ? " AND a.identity = ?2" : "");
	return run(r, sql, after, hi);
}

static int prepare_lookups(reader *r)
{
	if (prepare(r, "SELECT " COLS " FROM audit a WHERE a.seq > ?2 AND a.seq <= ?4 AND a.session = ?1 AND a.n = ?3 "
			"AND a.event = 'outcome' ORDER BY a.seq LIMIT 1", &r->out))
		return -1;
	if (!r->ranges)
		return 0;
	return prepare(r, "SELECT first_seq, last_seq FROM audit_sessions WHERE session = ?1", &r->range_s) ||
		prepare(r, "SELECT first_seq, last_seq FROM audit_identities WHERE identity = ?1", &r->range_i);
}

static void reader_close(reader *r)
{
	sqlite3_finalize(r->out);
	sqlite3_finalize(r->range_s);
	sqlite3_finalize(r->range_i);
	gw_map_clear(&r->last_of, NULL);
	if (r->db && !sqlite3_get_autocommit(r->db))
		sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(r->db);
}

struct json_t *gw_audit_list(const char *path, const gw_audit_query *q, int64_t *next, char *err, size_t errlen)
{
	*next = 0;
	gw_audit_query qq = *q;
	if (qq.identity && !*qq.identity)
		qq.identity = NULL;
	if (qq.session && !*qq.session)
		qq.session = NULL;
	reader r = {.path = path, .err = err, .errlen = errlen, .q = &qq};
	r.limit = q->limit < 1 ? 1 : q->limit > 1000 ? 1000 : q->limit;
	if (sqlite3_open_v2(path, &r.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the state store %s: %s", path, r.db ? sqlite3_errmsg(r.db) : "out of memory");
		sqlite3_close(r.db);
		return NULL;
	}
	sqlite3_busy_timeout(r.db, BUSY_MS);
	bool have = false;
	int64_t after = q->after_seq > 0 ? q->after_seq : 0, from;
	if (sqlite3_exec(r.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		fail(&r, "begin");
		goto bad;
	}
	if (tables(&r, &have))
		goto bad;
	r.events = json_array();
	if (!have)
		goto done; /* no record yet: the writer has not run on this store */
	if (qq.since_us > 0) {
		if (first_since(&r, qq.since_us, &from))
			goto bad;
		if (!from)
			goto done; /* nothing that recent */
		if (from - 1 > after)
			after = from - 1;
	}
	if (prepare_lookups(&r) || list(&r, after))
		goto bad;
done:
	if (r.more)
		*next = r.last_seq;
	reader_close(&r);
	return r.events;
bad:
	json_decref(r.events);
	reader_close(&r);
	return NULL;
}
