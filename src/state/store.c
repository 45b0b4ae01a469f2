/*
 * SQLite state store; see store.h.
 */
#include "state/store.h"
#include "core/util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prepared statements of just-in-time access, prepared once at open. */
enum {
	Q_REQ_INSERT, Q_REQ_GET, Q_REQ_UPDATE, Q_REQ_DECIDE, Q_REQ_SET_GRANT, Q_REQ_LIST, Q_REQ_LIST_STATE,
	Q_GRANT_INSERT, Q_GRANT_GET, Q_GRANT_REVOKE, Q_GRANT_LIST, Q_GRANT_LIST_ACTIVE,
	Q_REV_FIND, Q_REV_USE, Q_REV_INSERT, Q_REV_GET, Q_REV_UPDATE, Q_REV_DECIDE, Q_REV_LIST, Q_REV_LIST_STATE,
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_COUNT
};

#define REQ_COLS "id, identity, connection, policy, scope, tables, duration_s, reason, state, required, " \
	"approvals, decided_by, comment, created_at, decided_at, grant_id"
#define GRANT_COLS "id, request_id, identity, connection, policy, scope, tables, granted_at, expires_at, " \
	"revoked_at, revoked_by"
#define REV_COLS "id, identity, connection, policy, class, statement, hash, session, state, decided_by, " \
	"comment, created_at, decided_at, used_at"

static const char *const jit_sql[Q_COUNT] = {
	[Q_REQ_INSERT] = "INSERT INTO requests(identity, connection, policy, scope, tables, duration_s, reason, state, "
		"required, approvals, decided_by, comment, created_at, decided_at, grant_id) "
		"VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[Q_REQ_GET] = "SELECT " REQ_COLS " FROM requests WHERE id = ?",
	[Q_REQ_UPDATE] = "UPDATE requests SET state = ?, approvals = ?, decided_by = ?, comment = ?, decided_at = ?, "
		"grant_id = ? WHERE id = ?",
	[Q_REQ_DECIDE] = "UPDATE requests SET state = ?, approvals = ?, decided_by = ?, comment = ?, decided_at = ?, "
		"grant_id = ? WHERE id = ? AND state = 'pending' AND approvals = ?",
	[Q_REQ_SET_GRANT] = "UPDATE requests SET grant_id = ? WHERE id = ?",
	[Q_REQ_LIST] = "SELECT " REQ_COLS " FROM requests ORDER BY id DESC LIMIT ?",
	[Q_REQ_LIST_STATE] = "SELECT " REQ_COLS " FROM requests WHERE state = ? ORDER BY id DESC LIMIT ?",
	[Q_GRANT_INSERT] = "INSERT INTO grants(request_id, identity, connection, policy, scope, tables, granted_at, "
		"expires_at, revoked_at, revoked_by) VALUES (?,?,?,?,?,?,?,?,?,?)",
	[Q_GRANT_GET] = "SELECT " GRANT_COLS " FROM grants WHERE id = ?",
	[Q_GRANT_REVOKE] = "UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0",
	[Q_GRANT_LIST] = "SELECT " GRANT_COLS " FROM grants ORDER BY id DESC",
	[Q_GRANT_LIST_ACTIVE] = "SELECT " GRANT_COLS " FROM grants WHERE revoked_at = 0 AND expires_at > ? "
		"ORDER BY id DESC",
	[Q_REV_FIND] = "SELECT id FROM reviews WHERE identity = ? AND connection = ? AND hash = ? AND state = ? "
		"ORDER BY id LIMIT 1",
	[Q_REV_USE] = "UPDATE reviews SET state = 'used', used_at = ? WHERE id = ? AND state = 'approved'",
	[Q_REV_INSERT] = "INSERT INTO reviews(identity, connection, policy, class, statement, hash, session, state, "
		"created_at) VALUES (?,?,?,?,?,?,?,'pending',?)",
	[Q_REV_GET] = "SELECT " REV_COLS " FROM reviews WHERE id = ?",
	[Q_REV_UPDATE] = "UPDATE reviews SET state = ?, decided_by = ?, comment = ?, decided_at = ?, used_at = ? "
		"WHERE id = ?",
	[Q_REV_DECIDE] = "UPDATE reviews SET state = ?, decided_by = ?, comment = ?, decided_at = ? "
		"WHERE id = ? AND state = 'pending'",
	[Q_REV_LIST] = "SELECT " REV_COLS " FROM reviews ORDER BY id DESC LIMIT ?",
	[Q_REV_LIST_STATE] = "SELECT " REV_COLS " FROM reviews WHERE state = ? ORDER BY id DESC LIMIT ?",
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
};

struct gw_store {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *get_identity, *get_token;
	sqlite3_stmt *q[Q_COUNT];
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS identities ("
	"  name TEXT PRIMARY KEY, kind TEXT NOT NULL, groups TEXT NOT NULL DEFAULT '',"
	"  disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS tokens ("
	"  id TEXT PRIMARY KEY, identity TEXT NOT NULL, hash BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0,"
	"  revoked_at INTEGER NOT NULL DEFAULT 0, last_used_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS tokens_identity ON tokens(identity);"
	/* Just-in-time access. AUTOINCREMENT: an id is never reused, so a revoked grant's id stays revoked. */
	"CREATE TABLE IF NOT EXISTS requests ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, identity TEXT NOT NULL, connection TEXT NOT NULL,"
	"  policy TEXT NOT NULL, scope INTEGER NOT NULL, tables TEXT NOT NULL DEFAULT '',"
	"  duration_s INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,"
	"  required INTEGER NOT NULL DEFAULT 0, approvals TEXT NOT NULL DEFAULT '',"
	"  decided_by TEXT NOT NULL DEFAULT '', comment TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL,"
	"  decided_at INTEGER NOT NULL DEFAULT 0, grant_id INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS requests_state ON requests(state, id);"
	"CREATE TABLE IF NOT EXISTS grants ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL DEFAULT 0, identity TEXT NOT NULL,"
	"  connection TEXT NOT NULL, policy TEXT NOT NULL, scope INTEGER NOT NULL, tables TEXT NOT NULL DEFAULT '',"
	"  granted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0,"
	"  revoked_by TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS grants_expiry ON grants(expires_at);"
	"CREATE TABLE IF NOT EXISTS reviews ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, identity TEXT NOT NULL, connection TEXT NOT NULL,"
	"  policy TEXT NOT NULL, class INTEGER NOT NULL, statement TEXT NOT NULL, hash BLOB NOT NULL,"
	"  session TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, decided_by TEXT NOT NULL DEFAULT '',"
	"  comment TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, decided_at INTEGER NOT NULL DEFAULT 0,"
	"  used_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS reviews_match ON reviews(identity, connection, hash, state);"
	"CREATE INDEX IF NOT EXISTS reviews_state ON reviews(state, id);";

gw_store *gw_store_open(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open state store %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) != SQLITE_OK ||
		sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot set up state store %s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db);
		return NULL;
	}
	gw_store *st = gw_xcalloc(1, sizeof(*st));
	st->db = db;
	pthread_mutex_init(&st->lock, NULL);
	sqlite3_prepare_v2(db, "SELECT name, kind, groups, disabled, created_at FROM identities WHERE name = ?", -1,
		&st->get_identity, NULL);
	sqlite3_prepare_v2(db, "SELECT id, identity, hash, created_at, expires_at, revoked_at, last_used_at "
		"FROM tokens WHERE id = ?", -1, &st->get_token, NULL);
	bool prepared = st->get_identity && st->get_token;
	for (int i = 0; prepared && i < Q_COUNT; i++)
		prepared = sqlite3_prepare_v2(db, jit_sql[i], -1, &st->q[i], NULL) == SQLITE_OK;
	if (!prepared) {
		snprintf(err, errlen, "cannot prepare state store queries: %s", sqlite3_errmsg(db));
		gw_store_close(st);
		return NULL;
	}
	return st;
}

void gw_store_close(gw_store *st)
{
	if (!st)
		return;
	sqlite3_finalize(st->get_identity);
	sqlite3_finalize(st->get_token);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(st->q[i]);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void read_identity(sqlite3_stmt *s, gw_identity_rec *out)
{
	memset(out, 0, sizeof(*out));
	copy_text(out->name, sizeof(out->name), s, 0);
	copy_text(out->kind, sizeof(out->kind), s, 1);
	copy_text(out->groups, sizeof(out->groups), s, 2);
	out->disabled = sqlite3_column_int(s, 3) != 0;
	out->created_at = sqlite3_column_int64(s, 4);
}

static void read_token(sqlite3_stmt *s, gw_token_rec *out)
{
	memset(out, 0, sizeof(*out));
	copy_text(out->id, sizeof(out->id), s, 0);
	copy_text(out->identity, sizeof(out->identity), s, 1);
	if (sqlite3_column_bytes(s, 2) == 32)
		memcpy(out->hash, sqlite3_column_blob(s, 2), 32);
	out->created_at = sqlite3_column_int64(s, 3);
	out->expires_at = sqlite3_column_int64(s, 4);
	out->revoked_at = sqlite3_column_int64(s, 5);
	out->last_used_at = sqlite3_column_int64(s, 6);
}

int gw_store_identity_add(gw_store *st, const gw_identity_rec *rec, char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db,
		"INSERT INTO identities(name, kind, groups, disabled, created_at) VALUES (?,?,?,?,?)", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, rec->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, rec->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, rec->groups, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 4, rec->disabled);
		sqlite3_bind_int64(s, 5, rec->created_at);
		rc = sqlite3_step(s);
	}
	int out = 0;
	if (rc == SQLITE_CONSTRAINT) {
		snprintf(err, errlen, "identity '%s' exists already", rec->name);
		out = -1;
	} else if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "state store: %s", sqlite3_errmsg(st->db));
		out = -2;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return out;
}

/* One row by primary key through a prepared statement: 0 found, -1 none, -2 store error. */
static int get_row(gw_store *st, sqlite3_stmt *s, const char *key, void (*read)(sqlite3_stmt *, void *), void *out)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int ret = -2;
	if (rc == SQLITE_ROW) {
		read(s, out);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = -1;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

static void read_identity_v(sqlite3_stmt *s, void *out) { read_identity(s, out); }
static void read_token_v(sqlite3_stmt *s, void *out) { read_token(s, out); }

int gw_store_identity_get(gw_store *st, const char *name, gw_identity_rec *out)
{
	return get_row(st, st->get_identity, name, read_identity_v, out);
}

/* Run one parameterised write; returns rows changed or -2. */
static int exec_write(gw_store *st, const char *sql, const char *text, int64_t num, bool has_num)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	int ret = -2;
	if (rc == SQLITE_OK) {
		int i = 1;
		if (has_num)
			sqlite3_bind_int64(s, i++, num);
		sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_DONE)
			ret = sqlite3_changes(st->db);
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int gw_store_identity_set_disabled(gw_store *st, const char *name, bool disabled)
{
	int n = exec_write(st, "UPDATE identities SET disabled = ? WHERE name = ?", name, disabled, true);
	return n < 0 ? n : (n == 0 ? -1 : 0);
}

int gw_store_identity_set_groups(gw_store *st, const char *name, const char *groups)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = NULL;
	int ret = -2;
	if (sqlite3_prepare_v2(st->db, "UPDATE identities SET groups = ? WHERE name = ?", -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, groups, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_DONE)
			ret = sqlite3_changes(st->db) ? 0 : -1;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

static int list_rows(gw_store *st, const char *sql, void (*row)(sqlite3_stmt *, void *), void *arg)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = NULL;
	int n = 0, rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		row(s, arg);
		n++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_DONE ? n : -2;
}

typedef struct list_ctx {
	void (*id_fn)(const gw_identity_rec *, void *);
	void (*tok_fn)(const gw_token_rec *, void *);
	void *arg;
} list_ctx;

static void identity_row(sqlite3_stmt *s, void *arg)
{
	list_ctx *c = arg;
	gw_identity_rec r;
	read_identity(s, &r);
	c->id_fn(&r, c->arg);
}

static void token_row(sqlite3_stmt *s, void *arg)
{
	list_ctx *c = arg;
	gw_token_rec r;
	read_token(s, &r);
	c->tok_fn(&r, c->arg);
}

int gw_store_identity_list(gw_store *st, void (*fn)(const gw_identity_rec *, void *), void *arg)
{
	list_ctx c = {.id_fn = fn, .arg = arg};
	return list_rows(st, "SELECT name, kind, groups, disabled, created_at FROM identities ORDER BY name",
		identity_row, &c);
}

int gw_store_token_add(gw_store *st, const gw_token_rec *rec, char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db,
		"INSERT INTO tokens(id, identity, hash, created_at, expires_at) VALUES (?,?,?,?,?)", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, rec->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, rec->identity, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, rec->hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, rec->created_at);
		sqlite3_bind_int64(s, 5, rec->expires_at);
		rc = sqlite3_step(s);
	}
	int out = 0;
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "state store: %s", sqlite3_errmsg(st->db));
		out = -2;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&st->lock);
	return out;
}

int gw_store_token_get(gw_store *st, const char *id, gw_token_rec *out)
{
	return get_row(st, st->get_token, id, read_token_v, out);
}

int gw_store_token_revoke(gw_store *st, const char *id, int64_t when)
{
	int n = exec_write(st, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0", id, when, true);
	return n < 0 ? n : (n == 0 ? -1 : 0);
}

int gw_store_token_list(gw_store *st, void (*fn)(const gw_token_rec *, void *), void *arg)
{
	list_ctx c = {.tok_fn = fn, .arg = arg};
	return list_rows(st, "SELECT id, identity, hash, created_at, expires_at, revoked_at, last_used_at "
		"FROM tokens ORDER BY created_at, id", token_row, &c);
}

/* ---- just-in-time access: requests, grants, reviews ---- */

/* Reset a cached statement for its next use. */
static void q_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Step a cached write to completion; returns SQLite's code. */
static int q_exec(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	q_done(s);
	return rc;
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

static bool tx_begin(gw_store *st) { return q_exec(st->q[Q_BEGIN]) == SQLITE_DONE; }

/* COMMIT, or ROLLBACK when ok is false or the commit fails. Returns whether it committed. */
static bool tx_end(gw_store *st, bool ok)
{
	if (ok && q_exec(st->q[Q_COMMIT]) == SQLITE_DONE)
		return true;
	q_exec(st->q[Q_ROLLBACK]);
	return false;
}

static void read_request(sqlite3_stmt *s, gw_request_rec *out)
{
	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(s, 0);
	copy_text(out->identity, sizeof(out->identity), s, 1);
	copy_text(out->connection, sizeof(out->connection), s, 2);
	copy_text(out->policy, sizeof(out->policy), s, 3);
	out->scope = sqlite3_column_int(s, 4);
	copy_text(out->tables, sizeof(out->tables), s, 5);
	out->duration_s = sqlite3_column_int64(s, 6);
	copy_text(out->reason, sizeof(out->reason), s, 7);
	copy_text(out->state, sizeof(out->state), s, 8);
	out->required = sqlite3_column_int(s, 9);
	copy_text(out->approvals, sizeof(out->approvals), s, 10);
	copy_text(out->decided_by, sizeof(out->decided_by), s, 11);
	copy_text(out->comment, sizeof(out->comment), s, 12);
	out->created_at = sqlite3_column_int64(s, 13);
	out->decided_at = sqlite3_column_int64(s, 14);
	out->grant_id = sqlite3_column_int64(s, 15);
}

static void read_grant(sqlite3_stmt *s, gw_grant_rec *out)
{
	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(s, 0);
	out->request_id = sqlite3_column_int64(s, 1);
	copy_text(out->identity, sizeof(out->identity), s, 2);
	copy_text(out->connection, sizeof(out->connection), s, 3);
	copy_text(out->policy, sizeof(out->policy), s, 4);
	out->scope = sqlite3_column_int(s, 5);
	copy_text(out->tables, sizeof(out->tables), s, 6);
	out->granted_at = sqlite3_column_int64(s, 7);
	out->expires_at = sqlite3_column_int64(s, 8);
	out->revoked_at = sqlite3_column_int64(s, 9);
	copy_text(out->revoked_by, sizeof(out->revoked_by), s, 10);
}

static void read_review(sqlite3_stmt *s, gw_review_rec *out)
{
	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(s, 0);
	copy_text(out->identity, sizeof(out->identity), s, 1);
	copy_text(out->connection, sizeof(out->connection), s, 2);
	copy_text(out->policy, sizeof(out->policy), s, 3);
	out->cls = sqlite3_column_int(s, 4);
	copy_text(out->statement, sizeof(out->statement), s, 5);
	if (sqlite3_column_bytes(s, 6) == 32)
		memcpy(out->hash, sqlite3_column_blob(s, 6), 32);
	copy_text(out->session, sizeof(out->session), s, 7);
	copy_text(out->state, sizeof(out->state), s, 8);
	copy_text(out->decided_by, sizeof(out->decided_by), s, 9);
	copy_text(out->comment, sizeof(out->comment), s, 10);
	out->created_at = sqlite3_column_int64(s, 11);
	out->decided_at = sqlite3_column_int64(s, 12);
	out->used_at = sqlite3_column_int64(s, 13);
}

/* One row by integer id through cached statement q: 0 found, -1 none, -2 store error. Lock held. */
static int get_by_id_locked(gw_store *st, int q, int64_t id, void (*read)(sqlite3_stmt *, void *), void *out)
{
	sqlite3_stmt *s = st->q[q];
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	int ret = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -1 : -2;
	if (rc == SQLITE_ROW)
		read(s, out);
	q_done(s);
	return ret;
}

static int get_by_id(gw_store *st, int q, int64_t id, void (*read)(sqlite3_stmt *, void *), void *out)
{
	pthread_mutex_lock(&st->lock);
	int ret = get_by_id_locked(st, q, id, read, out);
	pthread_mutex_unlock(&st->lock);
	return ret;
}

static void read_request_v(sqlite3_stmt *s, void *out) { read_request(s, out); }
static void read_grant_v(sqlite3_stmt *s, void *out) { read_grant(s, out); }
static void read_review_v(sqlite3_stmt *s, void *out) { read_review(s, out); }

/* Run a cached list query (bindings done by the caller), one callback per row. Lock held. */
static int list_cached_locked(sqlite3_stmt *s, void (*row)(sqlite3_stmt *, void *), void *arg)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row(s, arg);
		n++;
	}
	q_done(s);
	return rc == SQLITE_DONE ? n : -2;
}

/* Insert rec (id ignored); sets rec->id. 0 or -2. Lock held. */
static int request_insert_locked(gw_store *st, gw_request_rec *rec)
{
	sqlite3_stmt *s = st->q[Q_REQ_INSERT];
	bind_str(s, 1, rec->identity);
	bind_str(s, 2, rec->connection);
	bind_str(s, 3, rec->policy);
	sqlite3_bind_int(s, 4, rec->scope);
	bind_str(s, 5, rec->tables);
	sqlite3_bind_int64(s, 6, rec->duration_s);
	bind_str(s, 7, rec->reason);
	bind_str(s, 8, rec->state);
	sqlite3_bind_int(s, 9, rec->required);
	bind_str(s, 10, rec->approvals);
	bind_str(s, 11, rec->decided_by);
	bind_str(s, 12, rec->comment);
	sqlite3_bind_int64(s, 13, rec->created_at);
	sqlite3_bind_int64(s, 14, rec->decided_at);
	sqlite3_bind_int64(s, 15, rec->grant_id);
	if (q_exec(s) != SQLITE_DONE)
		return -2;
	rec->id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

/* Insert grant (id ignored); sets grant->id. 0 or -2. Lock held. */
static int grant_insert_locked(gw_store *st, gw_grant_rec *g)
{
	sqlite3_stmt *s = st->q[Q_GRANT_INSERT];
	sqlite3_bind_int64(s, 1, g->request_id);
	bind_str(s, 2, g->identity);
	bind_str(s, 3, g->connection);
	bind_str(s, 4, g->policy);
	sqlite3_bind_int(s, 5, g->scope);
	bind_str(s, 6, g->tables);
	sqlite3_bind_int64(s, 7, g->granted_at);
	sqlite3_bind_int64(s, 8, g->expires_at);
	sqlite3_bind_int64(s, 9, g->revoked_at);
	bind_str(s, 10, g->revoked_by);
	if (q_exec(s) != SQLITE_DONE)
		return -2;
	g->id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

/* Bind the decision columns of a request (state .. grant_id, then id) for Q_REQ_UPDATE / Q_REQ_DECIDE. */
static void bind_request_decision(sqlite3_stmt *s, const gw_request_rec *rec)
{
	bind_str(s, 1, rec->state);
	bind_str(s, 2, rec->approvals);
	bind_str(s, 3, rec->decided_by);
	bind_str(s, 4, rec->comment);
	sqlite3_bind_int64(s, 5, rec->decided_at);
	sqlite3_bind_int64(s, 6, rec->grant_id);
	sqlite3_bind_int64(s, 7, rec->id);
}

int gw_store_request_add(gw_store *st, gw_request_rec *rec, char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	int rc = request_insert_locked(st, rec);
	if (rc)
		snprintf(err, errlen, "state store: %s", sqlite3_errmsg(st->db));
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int gw_store_request_add_granted(gw_store *st, gw_request_rec *rec, gw_grant_rec *grant, char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	rec->grant_id = 0;
	bool ok = tx_begin(st) && request_insert_locked(st, rec) == 0;
	if (ok) {
		grant->request_id = rec->id;
		ok = grant_insert_locked(st, grant) == 0;
	}
	if (ok) {
		rec->grant_id = grant->id;
		sqlite3_stmt *s = st->q[Q_REQ_SET_GRANT];
		sqlite3_bind_int64(s, 1, grant->id);
		sqlite3_bind_int64(s, 2, rec->id);
		ok = q_exec(s) == SQLITE_DONE;
	}
	if (!ok)
		snprintf(err, errlen, "state store: %s", sqlite3_errmsg(st->db));
	ok = tx_end(st, ok);
	if (!ok)
		rec->id = rec->grant_id = grant->id = 0;
	pthread_mutex_unlock(&st->lock);
	return ok ? 0 : -2;
}

int gw_store_request_get(gw_store *st, int64_t id, gw_request_rec *out)
{
	return get_by_id(st, Q_REQ_GET, id, read_request_v, out);
}

int gw_store_request_update(gw_store *st, const gw_request_rec *rec)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[Q_REQ_UPDATE];
	bind_request_decision(s, rec);
	int rc = q_exec(s);
	int ret = rc != SQLITE_DONE ? -2 : sqlite3_changes(st->db) ? 0 : -1;
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int gw_store_request_decide(gw_store *st, gw_request_rec *rec, const char *seen_approvals, gw_grant_rec *grant)
{
	pthread_mutex_lock(&st->lock);
	int ret = -2;
	bool ok = tx_begin(st);
	if (ok && grant) {
		grant->request_id = rec->id;
		ok = grant_insert_locked(st, grant) == 0;
		rec->grant_id = ok ? grant->id : 0;
	}
	if (ok) {
		sqlite3_stmt *s = st->q[Q_REQ_DECIDE];
		bind_request_decision(s, rec);
		bind_str(s, 8, seen_approvals);
		ok = q_exec(s) == SQLITE_DONE;
		if (ok && sqlite3_changes(st->db) == 1) {
			ret = 0;
		} else if (ok) {
			/* Nothing matched: gone, or decided/approved by someone else meanwhile. */
			gw_request_rec cur;
			int g = get_by_id_locked(st, Q_REQ_GET, rec->id, read_request_v, &cur);
			ret = g == 0 ? -3 : g;
			ok = false;
		}
	}
	if (!tx_end(st, ok) && ret == 0)
		ret = -2;
	if (ret != 0 && grant) {
		grant->id = 0;
		rec->grant_id = 0;
	}
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int gw_store_request_list(gw_store *st, const char *state, int limit, void (*fn)(const gw_request_rec *, void *), void *arg)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[state ? Q_REQ_LIST_STATE : Q_REQ_LIST];
	int i = 1;
	if (state)
		bind_str(s, i++, state);
	sqlite3_bind_int(s, i, limit > 0 ? limit : -1);
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		gw_request_rec r;
		read_request(s, &r);
		fn(&r, arg);
		n++;
	}
	q_done(s);
	pthread_mutex_unlock(&st->lock);
	return rc == SQLITE_DONE ? n : -2;
}

int gw_store_grant_add(gw_store *st, gw_grant_rec *rec, char *err, size_t errlen)
{
	pthread_mutex_lock(&st->lock);
	int rc = grant_insert_locked(st, rec);
	if (rc)
		snprintf(err, errlen, "state store: %s", sqlite3_errmsg(st->db));
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int gw_store_grant_get(gw_store *st, int64_t id, gw_grant_rec *out)
{
	return get_by_id(st, Q_GRANT_GET, id, read_grant_v, out);
}

int gw_store_grant_revoke(gw_store *st, int64_t id, int64_t when, const char *by)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[Q_GRANT_REVOKE];
	sqlite3_bind_int64(s, 1, when);
	bind_str(s, 2, by);
	sqlite3_bind_int64(s, 3, id);
	int rc = q_exec(s);
	int ret = rc != SQLITE_DONE ? -2 : sqlite3_changes(st->db) ? 0 : -1;
	pthread_mutex_unlock(&st->lock);
	return ret;
}

typedef struct jit_list_ctx {
	void (*grant_fn)(const gw_grant_rec *, void *);
	void (*review_fn)(const gw_review_rec *, void *);
	void *arg;
} jit_list_ctx;

static void grant_row(sqlite3_stmt *s, void *arg)
{
	jit_list_ctx *c = arg;
	gw_grant_rec r;
	read_grant(s, &r);
	c->grant_fn(&r, c->arg);
}

static void review_row(sqlite3_stmt *s, void *arg)
{
	jit_list_ctx *c = arg;
	gw_review_rec *r = gw_xmalloc(sizeof(*r));   /* ~5 KB: not on a worker's stack */
	read_review(s, r);
	c->review_fn(r, c->arg);
	free(r);
}

int gw_store_grant_list(gw_store *st, int64_t active_at, void (*fn)(const gw_grant_rec *, void *), void *arg)
{
	jit_list_ctx c = {.grant_fn = fn, .arg = arg};
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[active_at > 0 ? Q_GRANT_LIST_ACTIVE : Q_GRANT_LIST];
	if (active_at > 0)
		sqlite3_bind_int64(s, 1, active_at);
	int n = list_cached_locked(s, grant_row, &c);
	pthread_mutex_unlock(&st->lock);
	return n;
}

/* The id of the oldest review of this statement in state, 0 when none, -1 on error. Lock held. */
static int64_t review_find_locked(gw_store *st, const gw_review_rec *t, const char *state)
{
	sqlite3_stmt *s = st->q[Q_REV_FIND];
	bind_str(s, 1, t->identity);
	bind_str(s, 2, t->connection);
	sqlite3_bind_blob(s, 3, t->hash, 32, SQLITE_STATIC);
	bind_str(s, 4, state);
	int rc = sqlite3_step(s);
	int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : rc == SQLITE_DONE ? 0 : -1;
	q_done(s);
	return id;
}

int gw_store_review_check(gw_store *st, const gw_review_rec *tmpl, int64_t *id, bool *created)
{
	*id = 0;
	*created = false;
	pthread_mutex_lock(&st->lock);
	int ret = -2;
	bool ok = tx_begin(st);
	int64_t found = ok ? review_find_locked(st, tmpl, "approved") : -1;
	if (found > 0) {
		sqlite3_stmt *s = st->q[Q_REV_USE];
		sqlite3_bind_int64(s, 1, tmpl->created_at);
		sqlite3_bind_int64(s, 2, found);
		ok = q_exec(s) == SQLITE_DONE && sqlite3_changes(st->db) == 1;
		ret = 0;
	} else if (found == 0) {
		found = review_find_locked(st, tmpl, "pending");
		ret = 1;
		if (found == 0) {
			sqlite3_stmt *s = st->q[Q_REV_INSERT];
			bind_str(s, 1, tmpl->identity);
			bind_str(s, 2, tmpl->connection);
			bind_str(s, 3, tmpl->policy);
			sqlite3_bind_int(s, 4, tmpl->cls);
			bind_str(s, 5, tmpl->statement);
			sqlite3_bind_blob(s, 6, tmpl->hash, 32, SQLITE_STATIC);
			bind_str(s, 7, tmpl->session);
			sqlite3_bind_int64(s, 8, tmpl->created_at);
			ok = q_exec(s) == SQLITE_DONE;
			found = ok ? sqlite3_last_insert_rowid(st->db) : -1;
			*created = ok;
		}
	}
	ok = ok && found > 0;
	if (!tx_end(st, ok))
		ret = -2;
	if (ret >= 0)
		*id = found;
	else
		*created = false;
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int gw_store_review_get(gw_store *st, int64_t id, gw_review_rec *out)
{
	return get_by_id(st, Q_REV_GET, id, read_review_v, out);
}

int gw_store_review_update(gw_store *st, const gw_review_rec *rec)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[Q_REV_UPDATE];
	bind_str(s, 1, rec->state);
	bind_str(s, 2, rec->decided_by);
	bind_str(s, 3, rec->comment);
	sqlite3_bind_int64(s, 4, rec->decided_at);
	sqlite3_bind_int64(s, 5, rec->used_at);
	sqlite3_bind_int64(s, 6, rec->id);
	int rc = q_exec(s);
	int ret = rc != SQLITE_DONE ? -2 : sqlite3_changes(st->db) ? 0 : -1;
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int gw_store_review_decide(gw_store *st, const gw_review_rec *rec)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[Q_REV_DECIDE];
	bind_str(s, 1, rec->state);
	bind_str(s, 2, rec->decided_by);
	bind_str(s, 3, rec->comment);
	sqlite3_bind_int64(s, 4, rec->decided_at);
	sqlite3_bind_int64(s, 5, rec->id);
	int rc = q_exec(s);
	int ret = -2;
	if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 1) {
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		gw_review_rec *cur = gw_xmalloc(sizeof(*cur));
		int g = get_by_id_locked(st, Q_REV_GET, rec->id, read_review_v, cur);
		free(cur);
		ret = g == 0 ? -3 : g;
	}
	pthread_mutex_unlock(&st->lock);
	return ret;
}

int gw_store_review_list(gw_store *st, const char *state, int limit, void (*fn)(const gw_review_rec *, void *), void *arg)
{
	jit_list_ctx c = {.review_fn = fn, .arg = arg};
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = st->q[state ? Q_REV_LIST_STATE : Q_REV_LIST];
	int i = 1;
	if (state)
		bind_str(s, i++, state);
	sqlite3_bind_int(s, i, limit > 0 ? limit : -1);
	int n = list_cached_locked(s, review_row, &c);
	pthread_mutex_unlock(&st->lock);
	return n;
}
