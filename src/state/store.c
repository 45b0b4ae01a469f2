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

struct gw_store {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *get_identity, *get_token;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS identities ("
	"  name TEXT PRIMARY KEY, kind TEXT NOT NULL, groups TEXT NOT NULL DEFAULT '',"
	"  disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS tokens ("
	"  id TEXT PRIMARY KEY, identity TEXT NOT NULL, hash BLOB NOT NULL,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0,"
	"  revoked_at INTEGER NOT NULL DEFAULT 0, last_used_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS tokens_identity ON tokens(identity);";

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
	if (!st->get_identity || !st->get_token) {
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
