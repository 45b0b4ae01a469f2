/*
 * The recorder: queue, journal, writer thread, hash chain, checkpoint,
 * jsonl copy, verification. See audit.h.
 *
 * Write-ahead through a journal. A statement's records are numbered,
 * chained and appended to the journal (FILE-journal beside the state store,
 * one JSON line per record) with one write(2) per group of records; that
 * append is the commit a statement waits for. The writer thread moves
 * journaled records into SQLite in large transactions (every 20 ms, or
 * sooner when many are waiting) and truncates the journal once everything in
 * it is in SQLite; at start-up whatever the journal holds beyond SQLite's last
 * record is moved in first. So a crash of the gateway (kill -9) loses no
 * committed record: it is in the file before the statement is forwarded.
 * (audit.fsync: true adds an fdatasync per append: survives power loss too.)
 * Measured on the 2-core test machine: a SQLite commit per group cost ~36 us
 * of syscalls (locks, frames); an append costs one write(2), and SQLite then
 * takes thousands of records per transaction.
 *
 * Fail closed: an append that fails (disk full, I/O error, journal removed)
 * fails its group: the waiting statements are refused (58030). While SQLite
 * cannot take records (file removed or replaced, locked, full) no new group
 * is committed either; the writer retries every 100 ms and recording resumes
 * by itself when the store recovers.
 */
#include "audit/audit.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 1000
#define INGEST_US 20000u         /* journaled records move into SQLite this often */
#define INGEST_SOON 2000         /* ... or as soon as this many wait */
#define RETRY_US 100000u         /* SQLite failing: try again this often */
#define JOURNAL_TRUNCATE (16u << 20) /* the journal is emptied past this size once all of it is in SQLite */
#define LINE_TAIL 149            /* ,"prev":"<64 hex>","hash":"<64 hex>"} */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS audit ("
	"  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, event TEXT NOT NULL, session TEXT NOT NULL,"
	"  identity TEXT NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL);"
	/*
	 * Where each session's and identity's events lie (first and last seq):
	 * readers scan only that range. One row per session or identity, updated
	 * once per transaction — an index entry per event cost as much as the
	 * rest of the record together (measured: 25 us per statement under pgbench).
	 */
	"CREATE TABLE IF NOT EXISTS audit_sessions (session TEXT PRIMARY KEY, identity TEXT NOT NULL,"
	"  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS audit_identities (identity TEXT PRIMARY KEY,"
	"  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS audit_checkpoint ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash BLOB NOT NULL, ts INTEGER NOT NULL,"
	"  mac BLOB);";

struct gw_audit {
	const gw_config *cfg;
	char *path, *jpath;
	pthread_t thread;
	bool started;

	/* waking the writer (mu) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool ingest_soon;         /* many records wait for SQLite */
	bool stopping;

	/* health: the flags are read lock-free; hmu guards why */
	pthread_mutex_t hmu;
	atomic_bool db_ok, jnl_ok, jsonl_ok;
	char why[300];

	/* The chain and the journal: a worker appends its group holding wlock (a few microseconds). */
	pthread_mutex_t wlock;
	int jfd;
	uint64_t jsize;
	int64_t seq, last_ts;    /* the last record appended; ts never goes back (readers binary-search it) */
	uint8_t prev[32];
	gw_buf jbuf;
	gw_audit_ev *ing, **ing_tail; /* appended, not yet in SQLite, in order */
	size_t ning, ning_peak;

	/* SQLite: the writer thread's own */
	sqlite3 *db;
	sqlite3_stmt *ins, *ckpt, *up_sess, *up_ident;
	int64_t db_seq;          /* the last record in SQLite */
	uint64_t retry_at;
	dev_t dev;
	ino_t ino;
	bool need_open;
	gw_buf lines;
	int jsonl_fd;
	uint64_t jsonl_size;
	atomic_bool reopen_jsonl;
	uint64_t last_err_log_us;

	/* stats */
	atomic_ullong st_records, st_batches, st_failed_batches, st_failed_records, st_jsonl_errors, st_commit_us;
};


static const char *const kind_names[] = {"", "session_open", "session_close", "statement", "outcome", "auth_failure"};

/* ---- events ---- */

void gw_audit_ev_begin(gw_buf *b, uint64_t wall_us, const char *event)
{
	/* the date and time to the second are formatted once per second per thread */
	static __thread time_t last_secs = -1;
	static __thread char day[24];
	time_t secs = (time_t)(wall_us / 1000000);
	if (secs != last_secs) {
		struct tm tm;
		gmtime_r(&secs, &tm);
		snprintf(day, sizeof(day), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			tm.tm_hour, tm.tm_min, tm.tm_sec);
		last_secs = secs;
	}
	char frac[8];
	unsigned us = (unsigned)(wall_us % 1000000);
	for (int i = 5; i >= 0; i--) {
		frac[i] = (char)('0' + us % 10);
		us /= 10;
	}
	static const char head[] = "\"ts\":\"";
	gw_buf_append(b, head, sizeof(head) - 1);
	gw_buf_append(b, day, 19);
	gw_buf_append(b, ".", 1);
	gw_buf_append(b, frac, 6);
	static const char mid[] = "Z\",\"event\":\"";
	gw_buf_append(b, mid, sizeof(mid) - 1);
	gw_buf_append(b, event, strlen(event));
	gw_buf_append(b, "\"", 1);
}

static gw_audit_ev *ev_alloc(size_t len)
{
	gw_audit_ev *e = gw_xmalloc(sizeof(*e) + GW_AUDIT_EV_ROOM + len + 2);
	e->next = NULL;
	e->body = NULL;
	e->len = len;
	e->buf[GW_AUDIT_EV_ROOM + len] = 0;
	return e;
}

/* Number the event: its body becomes {"seq":N,<fields>}, made in place. */
static void ev_number(gw_audit_ev *e, int64_t seq)
{
	char head[GW_AUDIT_EV_ROOM];
	int hn = snprintf(head, sizeof(head), "{\"seq\":%lld,", (long long)seq);
	e->seq = seq;
	e->body = e->buf + GW_AUDIT_EV_ROOM - hn;
	memcpy(e->body, head, (size_t)hn);
	e->buf[GW_AUDIT_EV_ROOM + e->len] = '}';
	e->buf[GW_AUDIT_EV_ROOM + e->len + 1] = 0;
	e->blen = (size_t)hn + e->len + 1;
}

gw_audit_ev *gw_audit_ev_new(uint8_t kind, uint64_t wall_us, const char *session, const char *identity, uint32_t n,
	const gw_buf *fields)
{
	size_t len = gw_buf_len(fields);
	gw_audit_ev *e = ev_alloc(len);
	e->ts_us = (int64_t)wall_us;
	e->n = n;
	e->kind = kind;
	snprintf(e->session, sizeof(e->session), "%s", session ? session : "");
	snprintf(e->identity, sizeof(e->identity), "%s", identity ? identity : "");
	memcpy(e->buf + GW_AUDIT_EV_ROOM, gw_buf_rd(fields), len);
	return e;
}

gw_audit_ev *gw_audit_ev_auth_failure(gw_buf *b, uint64_t wall_us, const char *client, const char *user,
	const char *method, const char *reason, const char *sqlstate, const char *issuer)
{
	gw_buf_reset(b);
	gw_audit_ev_begin(b, wall_us, "auth_failure");
	gw_json_key(b, "client", false);
	gw_json_cstr(b, client);
	gw_json_key(b, "user", false);
	gw_json_text(b, user ? user : "", user ? strlen(user) : 0);
	gw_json_key(b, "method", false);
	gw_json_cstr(b, method);
	gw_json_key(b, "reason", false);
	gw_json_text(b, reason, strlen(reason));
	gw_json_key(b, "sqlstate", false);
	gw_json_cstr(b, sqlstate);
	if (issuer && *issuer) {
		gw_json_key(b, "issuer", false);
		gw_json_text(b, issuer, strlen(issuer));
	}
	return gw_audit_ev_new(GW_AUD_AUTH_FAILURE, wall_us, NULL, NULL, 0, b);
}

void gw_audit_ev_free(gw_audit_ev *e)
{
	while (e) {
		gw_audit_ev *n = e->next;
		free(e);
		e = n;
	}
}

/* ---- health ---- */

enum { H_DB, H_JOURNAL, H_JSONL };

static void set_health(gw_audit *a, int which, bool ok, const char *why)
{
	atomic_bool *flag = which == H_DB ? &a->db_ok : which == H_JOURNAL ? &a->jnl_ok : &a->jsonl_ok;
	if (ok) {
		atomic_store(flag, true);
		return;
	}
	pthread_mutex_lock(&a->hmu);
	snprintf(a->why, sizeof(a->why), "%s", why);
	pthread_mutex_unlock(&a->hmu);
	atomic_store(flag, false);
}

bool gw_audit_healthy(gw_audit *a, char *why, size_t whylen)
{
	bool ok = atomic_load(&a->db_ok) && atomic_load(&a->jnl_ok) && atomic_load(&a->jsonl_ok);
	if (!ok && why) {
		pthread_mutex_lock(&a->hmu);
		snprintf(why, whylen, "%s", a->why);
		pthread_mutex_unlock(&a->hmu);
	}
	return ok;
}


/* The checkpoint's MAC: HMAC-SHA-256(key, "pgmoat-audit-checkpoint\n" seq "\n" hash). */
static void checkpoint_mac(const char *key, size_t keylen, int64_t seq, const uint8_t hash[32], uint8_t out[32])
{
	uint8_t msg[96];
	int n = snprintf((char *)msg, sizeof(msg), "pgmoat-audit-checkpoint\n%lld\n", (long long)seq);
	memcpy(msg + n, hash, 32);
	gw_hmac_sha256(key, keylen, msg, (size_t)n + 32, out);
}

/* SHA-256(prev ‖ body) */
static void chain_hash(const uint8_t prev[32], const void *body, size_t n, uint8_t out[32])
{
	gw_sha256_2(prev, 32, body, n, out);
}


/* ---- audit.jsonl ---- */

static void jsonl_close(gw_audit *a)
{
	if (a->jsonl_fd >= 0)
		close(a->jsonl_fd);
	a->jsonl_fd = -1;
}

static int jsonl_open(gw_audit *a)
{
	jsonl_close(a);
	a->jsonl_fd = open(a->cfg->audit_jsonl, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->jsonl_fd < 0) {
		char why[300];
		snprintf(why, sizeof(why), "audit.jsonl: cannot open %s: %s", a->cfg->audit_jsonl, strerror(errno));
		gw_error("%s", why);
		set_health(a, H_JSONL, false, why);
		return -1;
	}
	struct stat st;
	a->jsonl_size = fstat(a->jsonl_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

/* FILE → FILE.1 → FILE.2 ... → FILE.keep (dropped beyond). */
static void jsonl_rotate(gw_audit *a)
{
	const char *p = a->cfg->audit_jsonl;
	char from[4200], to[4200];
	int keep = a->cfg->audit_jsonl_keep;
	jsonl_close(a);
	if (keep <= 0) {
		unlink(p);
	} else {
		for (int i = keep - 1; i >= 1; i--) {
			snprintf(from, sizeof(from), "%s.%d", p, i);
			snprintf(to, sizeof(to), "%s.%d", p, i + 1);
			rename(from, to);
		}
		snprintf(to, sizeof(to), "%s.1", p);
		rename(p, to);
	}
	gw_info("audit.jsonl rotated at %llu bytes", (unsigned long long)a->jsonl_size);
	jsonl_open(a);
}

/* All of p[0..n) to fd: 0, or the errno that stopped it (ENOSPC for a write that took nothing). */
static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : ENOSPC;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void jsonl_write(gw_audit *a)
{
	if (!a->cfg->audit_jsonl)
		return;
	if (atomic_exchange(&a->reopen_jsonl, false) || a->jsonl_fd < 0)
		jsonl_open(a);
	if (a->jsonl_fd >= 0 && a->jsonl_size + gw_buf_len(&a->lines) > a->cfg->audit_jsonl_max_size && a->jsonl_size > 0)
		jsonl_rotate(a);
	if (a->jsonl_fd < 0) {
		atomic_fetch_add(&a->st_jsonl_errors, 1);
		return;
	}
	int err = write_all(a->jsonl_fd, gw_buf_rd(&a->lines), gw_buf_len(&a->lines));
	if (err) {
		char why[300];
		snprintf(why, sizeof(why), "audit.jsonl: write to %s failed: %s (the SQLite record is complete)",
			a->cfg->audit_jsonl, strerror(err));
		atomic_fetch_add(&a->st_jsonl_errors, 1);
		gw_error("%s", why);
		set_health(a, H_JSONL, false, why);
		return;
	}
	a->jsonl_size += gw_buf_len(&a->lines);
	set_health(a, H_JSONL, true, NULL);
}


/* ---- SQLite: the writer thread's ---- */

static void db_close(gw_audit *a)
{
	sqlite3_finalize(a->ins);
	sqlite3_finalize(a->ckpt);
	sqlite3_finalize(a->up_sess);
	sqlite3_finalize(a->up_ident);
	sqlite3_close(a->db);
	a->ins = a->ckpt = a->up_sess = a->up_ident = NULL;
	a->db = NULL;
}

/*
 * Open the store file, which must exist (the state store made it; after it
 * vanished the recorder waits for it to come back rather than start an
 * empty record). Sets db_seq and, with end non-NULL, the last record's hash
 * and ts there.
 */
static int db_open(gw_audit *a, uint8_t end_hash[32], int64_t *end_ts, char *err, size_t errlen)
{
	db_close(a);
	struct stat st;
	if (stat(a->path, &st) < 0) {
		snprintf(err, errlen, "the store file %s is missing: %s", a->path, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(a->path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", a->path, a->db ? sqlite3_errmsg(a->db) : "out of memory");
		db_close(a);
		return -1;
	}
	sqlite3_busy_timeout(a->db, BUSY_TIMEOUT_MS);
	char *msg = NULL;
	/*
	 * The journal is emptied once its records are in SQLite: with
	 * audit.fsync (records survive power loss) SQLite's commits must be
	 * durable too, else the last ones could vanish with the journal already cut.
	 */
	if (sqlite3_exec(a->db, a->cfg->audit_fsync ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" :
			"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &msg) != SQLITE_OK ||
		sqlite3_exec(a->db, "PRAGMA mmap_size=268435456; PRAGMA cache_size=-16384;", NULL, NULL, &msg) != SQLITE_OK ||
		sqlite3_exec(a->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot set up the audit tables in %s: %s", a->path, msg ? msg : sqlite3_errmsg(a->db));
		sqlite3_free(msg);
		db_close(a);
		return -1;
	}
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(a->db, "SELECT seq, hash, ts FROM audit ORDER BY seq DESC LIMIT 1", -1, &q, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(q);
	a->db_seq = 0;
	if (end_hash)
		memset(end_hash, 0, 32);
	if (end_ts)
		*end_ts = 0;
	if (rc == SQLITE_ROW) {
		a->db_seq = sqlite3_column_int64(q, 0);
		const void *h = sqlite3_column_blob(q, 1);
		if (end_hash && h && sqlite3_column_bytes(q, 1) == 32)
			memcpy(end_hash, h, 32);
		if (end_ts)
			*end_ts = sqlite3_column_int64(q, 2);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read the end of the record in %s: %s", a->path, sqlite3_errmsg(a->db));
		db_close(a);
		return -1;
	}
	if (sqlite3_prepare_v2(a->db, "INSERT INTO audit(seq, ts, event, session, identity, n, body, prev, hash) "
			"VALUES (?,?,?,?,?,?,?,?,?)", -1, &a->ins, NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(a->db, "INSERT INTO audit_checkpoint(id, seq, hash, ts, mac) VALUES (1,?,?,?,?) "
			"ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts, "
			"mac = excluded.mac", -1, &a->ckpt, NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(a->db, "INSERT INTO audit_sessions(session, identity, first_seq, last_seq) VALUES (?,?,?,?) "
			"ON CONFLICT(session) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)", -1, &a->up_sess,
			NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(a->db, "INSERT INTO audit_identities(identity, first_seq, last_seq) VALUES (?,?,?) "
			"ON CONFLICT(identity) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)", -1, &a->up_ident,
			NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot prepare the audit statements: %s", sqlite3_errmsg(a->db));
		db_close(a);
		return -1;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->need_open = false;
	return 0;
}

/* The file at path is still the one open (not removed or replaced). */
static bool file_same(gw_audit *a, char *err, size_t errlen)
{
	struct stat st;
	if (stat(a->path, &st) < 0) {
		snprintf(err, errlen, "the store file %s is gone: %s", a->path, strerror(errno));
		return false;
	}
	if (st.st_dev != a->dev || st.st_ino != a->ino) {
		snprintf(err, errlen, "the store file %s was replaced", a->path);
		return false;
	}
	return true;
}

static bool insert_one(gw_audit *a, const gw_audit_ev *e)
{
	const gw_audit_ev *r = e;
	sqlite3_stmt *q = a->ins;
	sqlite3_reset(q);
	return sqlite3_bind_int64(q, 1, r->seq) == SQLITE_OK && sqlite3_bind_int64(q, 2, r->col_ts) == SQLITE_OK &&
		sqlite3_bind_text(q, 3, kind_names[e->kind], -1, SQLITE_STATIC) == SQLITE_OK &&
		sqlite3_bind_text(q, 4, e->session, -1, SQLITE_STATIC) == SQLITE_OK &&
		sqlite3_bind_text(q, 5, e->identity, -1, SQLITE_STATIC) == SQLITE_OK &&
		sqlite3_bind_int64(q, 6, e->n) == SQLITE_OK &&
		sqlite3_bind_text(q, 7, r->body, (int)r->blen, SQLITE_STATIC) == SQLITE_OK &&
		sqlite3_bind_blob(q, 8, r->prev, 32, SQLITE_STATIC) == SQLITE_OK &&
		sqlite3_bind_blob(q, 9, r->hash, 32, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(q) == SQLITE_DONE;
}

/* Where the sessions and identities of list lie now (one upsert each per transaction). */
struct range {
	const gw_audit_ev *first, *last;
};

static void range_note(gw_map *m, const char *key, const gw_audit_ev *e)
{
	if (!*key)
		return;
	struct range *r = gw_map_get(m, key, strlen(key));
	if (!r) {
		r = gw_xmalloc(sizeof(*r));
		r->first = e;
		gw_map_put(m, key, strlen(key), r);
	}
	r->last = e;
}

struct upsert {
	sqlite3_stmt *q;
	bool session;
	bool ok;
};

static bool range_store(const char *key, size_t klen, void *value, void *arg)
{
	const struct range *r = value;
	struct upsert *u = arg;
	int c = 1;
	sqlite3_reset(u->q);
	sqlite3_bind_text(u->q, c++, key, (int)klen, SQLITE_STATIC);
	if (u->session)
		sqlite3_bind_text(u->q, c++, r->first->identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(u->q, c++, r->first->seq);
	sqlite3_bind_int64(u->q, c, r->last->seq);
	u->ok = sqlite3_step(u->q) == SQLITE_DONE;
	return u->ok;
}

static bool note_ranges(gw_audit *a, const gw_audit_ev *list)
{
	gw_map by_session = {0}, by_identity = {0};
	for (const gw_audit_ev *e = list; e; e = e->next) {
		range_note(&by_session, e->session, e);
		range_note(&by_identity, e->identity, e);
	}
	struct upsert us = {a->up_sess, true, true}, ui = {a->up_ident, false, true};
	gw_map_each(&by_session, range_store, &us);
	if (us.ok)
		gw_map_each(&by_identity, range_store, &ui);
	gw_map_clear(&by_session, free);
	gw_map_clear(&by_identity, free);
	return us.ok && ui.ok;
}

/* The JSON line of a record (journal and audit.jsonl): its body with prev and hash added. */
static void add_line(gw_buf *out, const gw_audit_ev *r)
{
	char hp[65], hh[65];
	gw_hex(r->prev, 32, hp);
	gw_hex(r->hash, 32, hh);
	gw_buf_append(out, r->body, r->blen - 1);
	gw_buf_append(out, ",\"prev\":\"", 9);
	gw_buf_append(out, hp, 64);
	gw_buf_append(out, "\",\"hash\":\"", 10);
	gw_buf_append(out, hh, 64);
	gw_buf_append(out, "\"}\n", 3);
}

/*
 * Move appended records into SQLite in one transaction, with the signed
 * checkpoint naming the last of them. 0, or -1 (the list stays the caller's).
 */
static int ingest(gw_audit *a, gw_audit_ev *list)
{
	char why[400] = "";
	if (a->need_open && db_open(a, NULL, NULL, why, sizeof(why)) < 0)
		goto fail;
	if (!file_same(a, why, sizeof(why))) {
		db_close(a);
		a->need_open = true;
		goto fail;
	}
	if (list->seq != a->db_seq + 1)
		gw_error("audit: the store's record ends at seq %lld but the next record to store is %lld (the store file "
			"was replaced by another copy?); storing it anyway, `pgmoat audit verify` will show the gap",
			(long long)a->db_seq, (long long)list->seq);
	uint64_t t0 = gw_mono_us();
	bool ok = sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	const gw_audit_ev *last = list;
	for (const gw_audit_ev *e = list; ok && e; e = e->next) {
		ok = insert_one(a, e);
		last = e;
	}
	if (ok)
		ok = note_ranges(a, list);
	if (ok) {
		sqlite3_stmt *q = a->ckpt;
		uint8_t mac[32];
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, last->seq);
		sqlite3_bind_blob(q, 2, last->hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (int64_t)gw_wall_us());
		if (a->cfg->audit_checkpoint_key) {
			checkpoint_mac(a->cfg->audit_checkpoint_key, a->cfg->audit_checkpoint_key_len, last->seq,
				last->hash, mac);
			sqlite3_bind_blob(q, 4, mac, 32, SQLITE_STATIC);
		} else {
			sqlite3_bind_null(q, 4);
		}
		ok = sqlite3_step(q) == SQLITE_DONE;
	}
	if (ok)
		ok = sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	if (!ok) {
		int code = sqlite3_extended_errcode(a->db);
		snprintf(why, sizeof(why), "the state store cannot take records: %s (%s)", sqlite3_errmsg(a->db),
			sqlite3_errstr(code));
		if (!sqlite3_get_autocommit(a->db))
			sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
		int primary = code & 0xff;
		if (primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_CANTOPEN ||
			primary == SQLITE_READONLY || primary == SQLITE_NOTADB) {
			db_close(a);
			a->need_open = true;
		}
		goto fail;
	}
	a->db_seq = last->seq;
	atomic_fetch_add(&a->st_commit_us, gw_mono_us() - t0);
	atomic_fetch_add(&a->st_batches, 1);
	if (!atomic_load(&a->db_ok))
		gw_info("audit: the state store takes records again (up to seq %lld)", (long long)a->db_seq);
	set_health(a, H_DB, true, NULL);
	if (a->cfg->audit_jsonl) {
		gw_buf_reset(&a->lines);
		for (const gw_audit_ev *e = list; e; e = e->next)
			add_line(&a->lines, e);
		jsonl_write(a);
	}
	return 0;
fail:
	set_health(a, H_DB, false, why);
	uint64_t now = gw_mono_us();
	if (now - a->last_err_log_us > 1000000) {
		a->last_err_log_us = now;
		gw_error("audit: %s; statements are refused (58030) until it recovers (retrying every %u ms)", why,
			RETRY_US / 1000);
	}
	return -1;
}

/* ---- the journal and the chain (wlock held) ---- */

static int journal_open(gw_audit *a, char *err, size_t errlen)
{
	if (a->jfd >= 0)
		close(a->jfd);
	a->jfd = open(a->jpath, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->jfd < 0) {
		snprintf(err, errlen, "cannot open the audit journal %s: %s", a->jpath, strerror(errno));
		return -1;
	}
	struct stat st;
	a->jsize = fstat(a->jfd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

static void fail_batch(gw_audit *a, size_t count, const char *why)
{
	atomic_fetch_add(&a->st_failed_batches, 1);
	atomic_fetch_add(&a->st_failed_records, count);
	uint64_t now = gw_mono_us();
	if (now - a->last_err_log_us > 1000000) {
		a->last_err_log_us = now;
		gw_error("audit: cannot commit %zu record(s): %s; statements are refused (58030) until the store recovers",
			count, why);
	}
}

/*
 * Commit a group (wlock held): number and chain the events, append them to
 * the journal in one write. The records then wait for the writer to move
 * them into SQLite. 0, or -1 with why set (the list is freed).
 */
static int append_batch(gw_audit *a, gw_audit_ev *list, size_t count, char *why, size_t whylen)
{
	if (!atomic_load(&a->db_ok) || a->ning > (size_t)a->cfg->audit_queue_max) {
		gw_audit_healthy(a, why, whylen);
		if (!why[0])
			snprintf(why, whylen, "the state store is not keeping up (%zu records waiting)", a->ning);
		fail_batch(a, count, why);
		gw_audit_ev_free(list);
		return -1;
	}
	if (a->jfd < 0 && journal_open(a, why, whylen) < 0) {
		set_health(a, H_JOURNAL, false, why);
		fail_batch(a, count, why);
		gw_audit_ev_free(list);
		return -1;
	}
	int64_t seq0 = a->seq, ts0 = a->last_ts;
	uint8_t prev0[32];
	memcpy(prev0, a->prev, 32);
	gw_buf_reset(&a->jbuf);
	gw_audit_ev *end = list;
	for (gw_audit_ev *e = list; e; e = e->next) {
		ev_number(e, ++a->seq);
		e->col_ts = e->ts_us > a->last_ts ? e->ts_us : a->last_ts;
		a->last_ts = e->col_ts;
		memcpy(e->prev, a->prev, 32);
		chain_hash(e->prev, e->body, e->blen, e->hash);
		memcpy(a->prev, e->hash, 32);
		add_line(&a->jbuf, e);
		end = e;
	}
	int err = write_all(a->jfd, gw_buf_rd(&a->jbuf), gw_buf_len(&a->jbuf));
	struct stat st;
	bool removed = false;
	if (err)
		snprintf(why, whylen, "cannot append to the audit journal %s: %s", a->jpath, strerror(err));
	else if (a->cfg->audit_fsync && fdatasync(a->jfd) < 0)
		snprintf(why, whylen, "cannot flush the audit journal %s: %s", a->jpath, strerror(errno));
	else if (fstat(a->jfd, &st) == 0 && st.st_nlink == 0)
		removed = snprintf(why, whylen, "the audit journal %s was removed", a->jpath) > 0;
	if (why[0]) {
		/*
		 * Nothing of the group counts: cut what part of it reached the file
		 * (the next append starts clean), and open the journal afresh next
		 * time when it was removed.
		 */
		if (ftruncate(a->jfd, (off_t)a->jsize) < 0 || removed) {
			close(a->jfd);
			a->jfd = -1;
		}
		a->seq = seq0;
		a->last_ts = ts0;
		memcpy(a->prev, prev0, 32);
		set_health(a, H_JOURNAL, false, why);
		fail_batch(a, count, why);
		gw_audit_ev_free(list);
		return -1;
	}
	a->jsize += gw_buf_len(&a->jbuf);
	set_health(a, H_JOURNAL, true, NULL);
	*a->ing_tail = list;
	a->ing_tail = &end->next;
	a->ning += count;
	atomic_fetch_add(&a->st_records, count);
	if (a->ning > a->ning_peak)
		a->ning_peak = a->ning;
	return 0;
}

/* The writer: appended records into SQLite; an empty journal once all of it is there. */
static void ingest_pending(gw_audit *a)
{
	pthread_mutex_lock(&a->wlock);
	gw_audit_ev *list = a->ing;
	size_t k = a->ning;
	a->ing = NULL;
	a->ing_tail = &a->ing;
	a->ning = 0;
	pthread_mutex_unlock(&a->wlock);
	if (!list)
		return;
	if (ingest(a, list) < 0) {
		/* back in front of whatever was appended meanwhile, for the next try */
		pthread_mutex_lock(&a->wlock);
		gw_audit_ev *e = list;
		while (e->next)
			e = e->next;
		e->next = a->ing;
		if (!a->ing)
			a->ing_tail = &e->next;
		a->ing = list;
		a->ning += k;
		pthread_mutex_unlock(&a->wlock);
		a->retry_at = gw_mono_us() + RETRY_US;
		return;
	}
	gw_audit_ev_free(list);
	pthread_mutex_lock(&a->wlock);
	if (!a->ing && a->jsize > JOURNAL_TRUNCATE && a->jfd >= 0 && ftruncate(a->jfd, 0) == 0)
		a->jsize = 0;
	pthread_mutex_unlock(&a->wlock);
}

static void *writer_main(void *arg)
{
	gw_audit *a = arg;
	uint64_t next_ingest = gw_mono_us() + INGEST_US;
	for (;;) {
		pthread_mutex_lock(&a->mu);
		for (;;) {
			uint64_t now = gw_mono_us();
			if (a->ingest_soon || a->stopping || now >= next_ingest)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (next_ingest - now) * 1000ull;
			ts.tv_sec += (time_t)(ns / 1000000000ull);
			ts.tv_nsec = (long)(ns % 1000000000ull);
			pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		}
		bool soon = a->ingest_soon, stop = a->stopping;
		a->ingest_soon = false;
		pthread_mutex_unlock(&a->mu);
		uint64_t now = gw_mono_us();
		if ((soon || stop || now >= next_ingest) && now >= a->retry_at) {
			next_ingest = now + INGEST_US;
			ingest_pending(a);
		}
		if (a->cfg->audit_jsonl && atomic_exchange(&a->reopen_jsonl, false))
			jsonl_open(a);
		if (stop) {
			/* all in SQLite — or the store is down: what is journaled is moved in at the next start */
			pthread_mutex_lock(&a->wlock);
			bool done = !a->ing || !atomic_load(&a->db_ok);
			pthread_mutex_unlock(&a->wlock);
			if (done)
				break;
			a->retry_at = 0;
		}
	}
	return NULL;
}

int gw_audit_append(gw_audit *a, gw_audit_ev *list, char *why, size_t whylen)
{
	size_t k = 0;
	for (gw_audit_ev *e = list; e; e = e->next)
		k++;
	if (!k)
		return 0;
	why[0] = 0;
	pthread_mutex_lock(&a->wlock);
	int r = append_batch(a, list, k, why, whylen);
	bool soon = a->ning >= INGEST_SOON;
	pthread_mutex_unlock(&a->wlock);
	if (soon) {
		pthread_mutex_lock(&a->mu);
		a->ingest_soon = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	return r;
}

/* ---- start-up: what the journal holds beyond SQLite ---- */

static int64_t parse_ts(const char *iso)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	unsigned us = 0;
	if (!iso || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d.%6uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
			&tm.tm_min, &tm.tm_sec, &us) != 7)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000000 + us;
}

/* One journal line back into a numbered event; NULL when it is not one of ours. */
static gw_audit_ev *line_event(const char *line, size_t n)
{
	if (n < LINE_TAIL + 10 || memcmp(line, "{\"seq\":", 7) != 0 || memcmp(line + n - LINE_TAIL, ",\"prev\":\"", 9) ||
		memcmp(line + n - LINE_TAIL + 73, "\",\"hash\":\"", 10) != 0 || memcmp(line + n - 2, "\"}", 2) != 0)
		return NULL;
	const char *comma = memchr(line, ',', n - LINE_TAIL);
	if (!comma)
		return NULL;
	size_t flen = (size_t)(line + n - LINE_TAIL - (comma + 1));
	gw_audit_ev *e = ev_alloc(flen);
	memcpy(e->buf + GW_AUDIT_EV_ROOM, comma + 1, flen);
	bool hex_ok = gw_unhex(line + n - LINE_TAIL + 9, 64, e->prev) && gw_unhex(line + n - 66, 64, e->hash);
	json_t *j = NULL;
	if (hex_ok) {
		ev_number(e, strtoll(line + 7, NULL, 10));
		j = json_loadb(e->body, e->blen, 0, NULL);
	}
	const char *ev = j ? json_string_value(json_object_get(j, "event")) : NULL;
	int kind = 0;
	for (int i = 1; ev && i < (int)GW_ARRAY_LEN(kind_names); i++)
		if (!strcmp(ev, kind_names[i]))
			kind = i;
	if (!kind || (size_t)(comma - line) + 1 > GW_AUDIT_EV_ROOM || json_integer_value(json_object_get(j, "seq")) != e->seq) {
		json_decref(j);
		free(e);
		return NULL;
	}
	e->kind = (uint8_t)kind;
	e->col_ts = e->ts_us = parse_ts(json_string_value(json_object_get(j, "ts")));
	e->n = (uint32_t)json_integer_value(json_object_get(j, "n"));
	const char *sv = json_string_value(json_object_get(j, "session")), *iv = json_string_value(json_object_get(j,
		"identity"));
	snprintf(e->session, sizeof(e->session), "%s", sv ? sv : "");
	snprintf(e->identity, sizeof(e->identity), "%s", iv ? iv : "");
	json_decref(j);
	return e;
}

/*
 * Records in the journal after SQLite's last one (the gateway stopped before
 * moving them in) go in now, checked link by link. Returns how many, -1 on
 * a store error (err).
 */
static long recover_journal(gw_audit *a, bool *broken, char *err, size_t errlen)
{
	*broken = false;
	struct stat st;
	if (fstat(a->jfd, &st) < 0 || st.st_size == 0)
		return 0;
	char *buf = gw_xmalloc((size_t)st.st_size + 1);
	ssize_t got = pread(a->jfd, buf, (size_t)st.st_size, 0);
	if (got < 0) {
		snprintf(err, errlen, "cannot read the audit journal %s: %s", a->jpath, strerror(errno));
		free(buf);
		return -1;
	}
	gw_audit_ev *list = NULL, **tail = &list;
	long count = 0;
	uint8_t h[32];
	char *p = buf, *end = buf + got;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* a line cut short: its group was never acknowledged */
		gw_audit_ev *e = line_event(p, (size_t)(nl - p));
		p = nl + 1;
		if (!e)
			continue;
		if (e->seq <= a->seq) {
			gw_audit_ev_free(e);
			continue;
		}
		chain_hash(e->prev, e->body, e->blen, h);
		if (e->seq != a->seq + 1 || memcmp(e->prev, a->prev, 32) != 0 || memcmp(h, e->hash, 32)) {
			if (e->seq == a->seq + 1)
				gw_error("audit: the journal %s does not continue the record at seq %lld (its line for that seq does "
					"not hash to what it claims or does not link to the record before); the rest of it is not moved "
					"into the store", a->jpath, (long long)e->seq);
			else
				gw_error("audit: the journal %s does not continue the record at seq %lld (found seq %lld); the rest "
					"of it is not moved into the store", a->jpath, (long long)a->seq + 1, (long long)e->seq);
			*broken = true;
			gw_audit_ev_free(e);
			break;
		}
		a->seq = e->seq;
		/* stored ts never goes back (readers binary-search it), as when it was appended */
		if (e->col_ts < a->last_ts)
			e->col_ts = a->last_ts;
		a->last_ts = e->col_ts;
		memcpy(a->prev, e->hash, 32);
		*tail = e;
		tail = &e->next;
		count++;
	}
	free(buf);
	if (list && ingest(a, list) < 0) {
		gw_audit_healthy(a, err, errlen);
		gw_audit_ev_free(list);
		return -1;
	}
	gw_audit_ev_free(list);
	return count;
}

/* ---- public ---- */

gw_audit *gw_audit_open(const gw_config *cfg, char *err, size_t errlen)
{
	gw_audit *a = gw_xcalloc(1, sizeof(*a));
	a->cfg = cfg;
	a->path = gw_xstrdup(cfg->state_path);
	a->jpath = gw_xasprintf("%s-audit-journal", cfg->state_path);
	a->ing_tail = &a->ing;
	a->jfd = a->jsonl_fd = -1;
	a->db_ok = a->jnl_ok = a->jsonl_ok = true;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_mutex_init(&a->hmu, NULL);
	pthread_mutex_init(&a->wlock, NULL);
	*err = 0;
	if (db_open(a, a->prev, &a->last_ts, err, errlen) < 0 || journal_open(a, err, errlen) < 0 ||
		(cfg->audit_jsonl && jsonl_open(a) < 0)) {
		if (!*err)
			snprintf(err, errlen, "cannot open audit.jsonl %s: %s", cfg->audit_jsonl, strerror(errno));
		gw_audit_close(a);
		return NULL;
	}
	a->seq = a->db_seq;
	bool broken;
	long moved = recover_journal(a, &broken, err, errlen);
	if (moved < 0) {
		gw_audit_close(a);
		return NULL;
	}
	if (moved)
		gw_info("audit: %ld record(s) from the journal moved into the store (the gateway had stopped before)", moved);
	if (broken) {
		/* what did not link is kept aside for inspection, never emptied */
		char *keep = gw_xasprintf("%s.broken-%lld", a->jpath, (long long)time(NULL));
		int rc = rename(a->jpath, keep);
		if (rc == 0)
			gw_error("audit: the journal is kept as %s for inspection; a new one is started", keep);
		else
			snprintf(err, errlen, "cannot set the audit journal %s aside as %s: %s (it holds lines that do not "
				"continue the record; move it away to start)", a->jpath, keep, strerror(errno));
		free(keep);
		if (rc != 0 || journal_open(a, err, errlen) < 0) {
			gw_audit_close(a);
			return NULL;
		}
	}
	if (ftruncate(a->jfd, 0) == 0)
		a->jsize = 0;
	/* The checkpoint should name the last record; when it does not, the record was altered while stopped. */
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(a->db, "SELECT seq FROM audit_checkpoint WHERE id = 1", -1, &q, NULL) == SQLITE_OK &&
		sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) != a->seq)
		gw_error("audit: the record ends at seq %lld but its checkpoint names seq %lld; run `pgmoat audit verify`",
			(long long)a->seq, (long long)sqlite3_column_int64(q, 0));
	sqlite3_finalize(q);
	if (!cfg->audit_checkpoint_key)
		gw_warn("audit.checkpoint_key is not set: the record's hash chain shows changes, but a cut tail cannot be "
			"told apart from a record that ended there");
	if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		snprintf(err, errlen, "cannot start the audit writer thread");
		gw_audit_close(a);
		return NULL;
	}
	a->started = true;
	return a;
}

void gw_audit_close(gw_audit *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->mu);
		a->stopping = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	gw_audit_ev_free(a->ing);
	db_close(a);
	jsonl_close(a);
	if (a->jfd >= 0)
		close(a->jfd);
	gw_buf_free(&a->jbuf);
	gw_buf_free(&a->lines);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->hmu);
	pthread_mutex_destroy(&a->wlock);
	free(a->path);
	free(a->jpath);
	free(a);
}

void gw_audit_reopen(gw_audit *a)
{
	atomic_store(&a->reopen_jsonl, true);
	pthread_mutex_lock(&a->mu);
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void gw_audit_get_stats(gw_audit *a, gw_audit_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->records = atomic_load(&a->st_records);
	out->batches = atomic_load(&a->st_batches);
	out->failed_batches = atomic_load(&a->st_failed_batches);
	out->failed_records = atomic_load(&a->st_failed_records);
	out->jsonl_errors = atomic_load(&a->st_jsonl_errors);
	out->commit_us_total = atomic_load(&a->st_commit_us);
	pthread_mutex_lock(&a->wlock);
	out->queue_peak = a->ning_peak;
	pthread_mutex_unlock(&a->wlock);
}


/* ---- verification ---- */

static bool body_seq(const unsigned char *body, int n, int64_t *seq)
{
	if (n < 9 || memcmp(body, "{\"seq\":", 7) != 0)
		return false;
	char *end;
	char tmp[24];
	int k = n - 7 < 23 ? n - 7 : 23;
	memcpy(tmp, body + 7, (size_t)k);
	tmp[k] = 0;
	long long v = strtoll(tmp, &end, 10);
	if (end == tmp || *end != ',')
		return false;
	*seq = v;
	return true;
}

int gw_audit_verify(const char *path, const char *key, size_t keylen, gw_audit_verify_result *res,
	void (*progress)(int64_t done, void *arg), void *arg, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *q = NULL, *c = NULL;
	/* one read transaction: the walk sees one consistent state while the writer goes on */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(db, "SELECT seq, body, prev, hash FROM audit ORDER BY seq", -1, &q, NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(db, "SELECT seq, hash, mac FROM audit_checkpoint WHERE id = 1", -1, &c, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot read the record in %s: %s", path, sqlite3_errmsg(db));
		sqlite3_finalize(q);
		sqlite3_finalize(c);
		sqlite3_close(db);
		return -1;
	}
	uint8_t prev[32] = {0}, h[32];
	int64_t expect = 1;
	int rc;
	res->ok = true;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(q, 0);
		const unsigned char *body = sqlite3_column_text(q, 1);
		int bn = sqlite3_column_bytes(q, 1);
		const void *sp = sqlite3_column_blob(q, 2), *sh = sqlite3_column_blob(q, 3);
		bool shapes = sp && sh && sqlite3_column_bytes(q, 2) == 32 && sqlite3_column_bytes(q, 3) == 32;
		int64_t bseq = 0;
		res->records++;
		if (!shapes || !body || !body_seq(body, bn, &bseq)) {
			res->bad_seq = seq;
			snprintf(res->problem, sizeof(res->problem), "record %lld is malformed (its body or hashes were "
				"altered)", (long long)seq);
			break;
		}
		if (seq != expect) {
			res->bad_seq = seq < expect ? seq : expect;
			snprintf(res->problem, sizeof(res->problem), seq > expect ?
				"record %lld is missing (removed); the next record present is %lld" :
				"record %lld appears out of order (inserted or renumbered); expected %lld", (long long)
				(seq > expect ? expect : seq), (long long)(seq > expect ? seq : expect));
			break;
		}
		if (bseq != seq) {
			res->bad_seq = seq;
			snprintf(res->problem, sizeof(res->problem), "record %lld holds the body of record %lld (records "
				"were swapped or moved)", (long long)seq, (long long)bseq);
			break;
		}
		if (memcmp(sp, prev, 32) != 0) {
			res->bad_seq = seq;
			snprintf(res->problem, sizeof(res->problem), "record %lld does not follow record %lld (its prev "
				"hash differs: a record before it was removed, inserted or changed)", (long long)seq,
				(long long)(seq - 1));
			break;
		}
		chain_hash(prev, body, (size_t)bn, h);
		if (memcmp(h, sh, 32) != 0) {
			res->bad_seq = seq;
			snprintf(res->problem, sizeof(res->problem), "record %lld was changed (its content does not match "
				"its hash)", (long long)seq);
			break;
		}
		memcpy(prev, h, 32);
		res->last_seq = seq;
		expect = seq + 1;
		if (progress && res->records % 100000 == 0)
			progress(res->records, arg);
	}
	if (!res->bad_seq && rc != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read the record in %s: %s", path, sqlite3_errmsg(db));
		res->ok = false;
		sqlite3_finalize(q);
		sqlite3_finalize(c);
		sqlite3_close(db);
		return -1;
	}
	if (res->bad_seq) {
		res->ok = false;
	} else {
		/* the tail: the checkpoint must name the last record exactly */
		rc = sqlite3_step(c);
		if (rc != SQLITE_ROW) {
			if (res->records) {
				res->ok = false;
				res->bad_seq = res->last_seq;
				snprintf(res->problem, sizeof(res->problem), "the checkpoint is missing (removed): the end of "
					"the record cannot be confirmed");
			}
		} else {
			int64_t cseq = sqlite3_column_int64(c, 0);
			const void *ch = sqlite3_column_blob(c, 1), *cm = sqlite3_column_blob(c, 2);
			bool ch_ok = ch && sqlite3_column_bytes(c, 1) == 32;
			if (key && keylen) {
				uint8_t mac[32];
				if (ch_ok)
					checkpoint_mac(key, keylen, cseq, ch, mac);
				if (!ch_ok || !cm || sqlite3_column_bytes(c, 2) != 32 || !gw_ct_equal(mac, cm, 32)) {
					res->ok = false;
					res->bad_seq = cseq > 0 ? cseq : 1;
					snprintf(res->problem, sizeof(res->problem), "the checkpoint (seq %lld) is not signed with "
						"this audit.checkpoint_key: it was forged, or the key changed", (long long)cseq);
				} else {
					res->signed_checkpoint = true;
				}
			} else {
				snprintf(res->note, sizeof(res->note), "no audit.checkpoint_key configured: the checkpoint is "
					"not signed, so a cut tail that also rewrote it would go unnoticed");
			}
			if (res->ok && cseq > res->last_seq) {
				res->ok = false;
				res->bad_seq = res->last_seq + 1;
				snprintf(res->problem, sizeof(res->problem), "the record ends at seq %lld but the checkpoint "
					"names seq %lld: records %lld..%lld were cut from the tail", (long long)res->last_seq,
					(long long)cseq, (long long)res->last_seq + 1, (long long)cseq);
			} else if (res->ok && cseq < res->last_seq) {
				res->ok = false;
				res->bad_seq = cseq + 1;
				snprintf(res->problem, sizeof(res->problem), "records %lld..%lld follow the checkpoint (seq "
					"%lld): they were appended by something other than the gateway", (long long)cseq + 1,
					(long long)res->last_seq, (long long)cseq);
			} else if (res->ok && (!ch_ok || memcmp(ch, prev, 32) != 0)) {
				res->ok = false;
				res->bad_seq = cseq;
				snprintf(res->problem, sizeof(res->problem), "the checkpoint's hash differs from record %lld's: "
					"the record was rewritten from some point on", (long long)cseq);
			}
		}
	}
	sqlite3_finalize(q);
	sqlite3_finalize(c);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return 0;
}
