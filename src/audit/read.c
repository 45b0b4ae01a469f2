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
 *  - the writer keeps its by-session and by-identity indexes as side tables
 *    (audit_by_session, audit_by_identity) that trail the record: they cover
 *    seq <= audit_indexed.seq, and the short tail after that is scanned. A
 *    store without them (made by an older writer, or by hand) is read with
 *    plain WHERE clauses, which SQLite answers from whatever indexes it has.
 *
 * Outcomes are events of their own, written when the statement completes
 * (perhaps much later, in another commit), so they are not listed: each
 * allowed statement of a page looks its outcome up (same session and n) and
 * carries its fields. Refused statements never ran and have none.
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
	bool side;               /* the writer's side indexes exist */
	int64_t indexed;         /* ... and cover seq <= indexed */
	sqlite3_stmt *out_idx;   /* a statement's outcome (or its session's close) in the side index */
	sqlite3_stmt *out_plain; /* a statement's outcome without side indexes */
	sqlite3_stmt *by_seq;
	bool tail_loaded;
	gw_map tail;             /* side mode, records after indexed: outcome (session, n) / close (session, -1) -> seq */
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
			"('audit', 'audit_by_session', 'audit_by_identity', 'audit_indexed')", &st))
		return -1;
	int have = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(st, 0);
		have |= !strcmp(n, "audit") ? 1 : !strcmp(n, "audit_by_session") ? 2 : !strcmp(n, "audit_by_identity") ? 4 : 8;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail(r, "schema");
	*audit = have & 1;
	r->side = have == 15;
	if (!r->side)
		return 0;
	if (prepare(r, "SELECT seq FROM audit_indexed WHERE id = 1", &st))
		return -1;
	rc = sqlite3_step(st);
	r->indexed = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(r, "audit_indexed");
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

/* Key of the tail map: the session's bytes, a NUL, then n (-1: its close). */
static size_t tail_key(const char *session, size_t slen, int64_t n, char *key, size_t cap)
{
	if (slen + 9 > cap)
		slen = cap - 9;
	memcpy(key, session, slen);
	key[slen] = 0;
	memcpy(key + slen + 1, &n, 8);
	return slen + 9;
}

/* Side mode: the outcomes and closes after the indexed part, read once per call (the tail is short). */
static int load_tail(reader *r)
{
	sqlite3_stmt *st;
	r->tail_loaded = true;
	if (prepare(r, "SELECT seq, session, n, event FROM audit WHERE seq > ?1 AND event IN ('outcome', 'session_close') "
			"ORDER BY seq", &st))
		return -1;
	sqlite3_bind_int64(st, 1, r->indexed);
	int rc;
	char key[256];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 1);
		const char *ev = (const char *)sqlite3_column_text(st, 3);
		if (!s || !ev)
			continue;
		int64_t n = strcmp(ev, "outcome") ? -1 : sqlite3_column_int64(st, 2);
		size_t kl = tail_key(s, (size_t)sqlite3_column_bytes(st, 1), n, key, sizeof(key));
		if (!gw_map_get(&r->tail, key, kl)) /* the first one counts */
			gw_map_put(&r->tail, key, kl, (void *)(intptr_t)sqlite3_column_int64(st, 0));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(r, "outcomes");
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
	int64_t seq = sqlite3_column_int64(st, C_SEQ), n = sqlite3_column_int64(st, C_N), found = 0;
	int rc;
	if (!session)
		goto none;
	if (!r->side) {
		sqlite3_stmt *p = r->out_plain;
		sqlite3_reset(p);
		sqlite3_bind_text(p, 1, session, (int)slen, SQLITE_TRANSIENT);
		sqlite3_bind_int64(p, 2, seq);
		sqlite3_bind_int64(p, 3, n);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW)
			merge_outcome(o, p);
		sqlite3_reset(p);
		if (rc == SQLITE_ROW)
			return 0;
		if (rc != SQLITE_DONE)
			return fail(r, "outcome");
		goto none;
	}
	if (seq < r->indexed) {
		/* the session's next outcome of n, or its close (then there is none): a short walk of its index */
		sqlite3_stmt *p = r->out_idx;
		sqlite3_reset(p);
		sqlite3_bind_text(p, 1, session, (int)slen, SQLITE_TRANSIENT);
		sqlite3_bind_int64(p, 2, seq);
		sqlite3_bind_int64(p, 3, r->indexed);
		sqlite3_bind_int64(p, 4, n);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW) {
			const char *ev = (const char *)sqlite3_column_text(p, C_EVENT);
			bool close = ev && !strcmp(ev, "session_close");
			if (!close)
				merge_outcome(o, p);
			sqlite3_reset(p);
			if (close)
				goto none;
			return 0;
		}
		sqlite3_reset(p);
		if (rc != SQLITE_DONE)
			return fail(r, "outcome");
	}
	if (!r->tail_loaded && load_tail(r))
		return -1;
	char key[256];
	size_t kl = tail_key(session, slen, n, key, sizeof(key));
	found = (int64_t)(intptr_t)gw_map_get(&r->tail, key, kl);
	kl = tail_key(session, slen, -1, key, sizeof(key));
	int64_t close = (int64_t)(intptr_t)gw_map_get(&r->tail, key, kl);
	if (found > seq && (!close || found < close)) {
		sqlite3_stmt *p = r->by_seq;
		sqlite3_reset(p);
		sqlite3_bind_int64(p, 1, found);
		rc = sqlite3_step(p);
		if (rc == SQLITE_ROW)
			merge_outcome(o, p);
		sqlite3_reset(p);
		if (rc == SQLITE_ROW)
			return 0;
		if (rc != SQLITE_DONE)
			return fail(r, "outcome");
	}
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
 * The page: in side mode with a session or identity filter, first the part
 * the side index covers (seq <= indexed), then the tail by scan; otherwise
 * one scan (by primary key, or by the store's own indexes).
 */
static int list(reader *r, int64_t after)
{
	const gw_audit_query *q = r->q;
	char sql[768];
	if (r->side && (q->session || q->identity) && after < r->indexed) {
		if (q->session)
			snprintf(sql, sizeof(sql), "SELECT " COLS " FROM audit_by_session x CROSS JOIN audit a ON a.seq = x.seq "
				"WHERE x.session = ?1 AND x.seq > ?3 AND x.seq <= ?4" LIST_WHERE "%s ORDER BY x.seq LIMIT ?6",
				q->identity ? " AND a.identity = ?2" : "");
		else
			snprintf(sql, sizeof(sql), "SELECT " COLS " FROM audit_by_identity x CROSS JOIN audit a ON a.seq = x.seq "
				"WHERE x.identity = ?2 AND x.seq > ?3 AND x.seq <= ?4" LIST_WHERE " ORDER BY x.seq LIMIT ?6");
		if (run(r, sql, after, r->indexed))
			return -1;
		if (r->more)
			return 0;
		after = r->indexed;
	}
	snprintf(sql, sizeof(sql), "SELECT " COLS " FROM audit a WHERE a.seq > ?3 AND a.seq <= ?4" LIST_WHERE "%s%s "
		"ORDER BY a.seq LIMIT ?6", q->session ? " AND a.session = ?1" : "", q->identity ? " AND a.identity = ?2" : "");
	return run(r, sql, after, INT64_MAX);
}

static int prepare_lookups(reader *r)
{
	if (!r->side)
		return prepare(r, "SELECT " COLS " FROM audit a WHERE a.session = ?1 AND a.n = ?3 AND a.event = 'outcome' "
			"AND a.seq > ?2 ORDER BY a.seq LIMIT 1", &r->out_plain);
	return prepare(r, "SELECT " COLS " FROM audit_by_session x CROSS JOIN audit a ON a.seq = x.seq "
			"WHERE x.session = ?1 AND x.seq > ?2 AND x.seq <= ?3 "
			"AND ((a.event = 'outcome' AND a.n = ?4) OR a.event = 'session_close') ORDER BY x.seq LIMIT 1",
			&r->out_idx) ||
		prepare(r, "SELECT " COLS " FROM audit a WHERE a.seq = ?1", &r->by_seq);
}

static void reader_close(reader *r)
{
	sqlite3_finalize(r->out_idx);
	sqlite3_finalize(r->out_plain);
	sqlite3_finalize(r->by_seq);
	gw_map_clear(&r->tail, NULL);
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
