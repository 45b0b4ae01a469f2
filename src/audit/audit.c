/*
 * The recorder: queue, writer thread, hash chain, checkpoint, jsonl copy,
 * verification. See audit.h.
 *
 * Durability: the writer commits with synchronous=NORMAL in WAL mode: a
 * committed record survives a crash of the gateway (kill -9) because it is in
 * the WAL file before the statement is forwarded; audit.fsync: true adds an
 * fsync per commit (survives power loss; every statement then waits for the
 * disk). Group commit keeps either cheap per statement: whatever queued while
 * the previous commit ran goes into the next one.
 */
#include "audit/audit.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 4096
#define FAIL_RING 256
#define FAIL_KEEP_US (60u * 1000000u)
#define BUSY_TIMEOUT_MS 1000
#define LAZY_US 20000            /* events nothing waits for (outcomes, session events) are written within this */
#define INDEX_EVERY_US 500000u   /* the by-session / by-identity indexes catch up this often */
#define INDEX_CHUNK 50000        /* rows indexed per step at most */
#define WAL_CHECKPOINT_PAGES 4000 /* the writer moves the WAL into the file past this many pages */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS audit ("
	"  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, event TEXT NOT NULL, session TEXT NOT NULL,"
	"  identity TEXT NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL);"
	/* indexes kept behind the record (see index_step) */
	"CREATE TABLE IF NOT EXISTS audit_by_session (session TEXT NOT NULL, seq INTEGER NOT NULL,"
	"  PRIMARY KEY (session, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS audit_by_identity (identity TEXT NOT NULL, seq INTEGER NOT NULL,"
	"  PRIMARY KEY (identity, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS audit_indexed (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS audit_checkpoint ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash BLOB NOT NULL, ts INTEGER NOT NULL,"
	"  mac BLOB);";

typedef struct waker {
	gw_loop *loop;
	void (*wake)(void *);
	void *arg;
	atomic_int waiting;
	atomic_bool posted;
} waker;

struct fail_range {
	uint64_t first, last, at_us;
};

struct gw_audit {
	const gw_config *cfg;
	char *path;
	pthread_t thread;
	bool started;

	/* the queue (mu) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	gw_audit_ev *head, **tail;
	size_t queued, queue_peak;
	bool urgent;              /* something queued is waited for: commit now (else within LAZY_US) */
	uint64_t next_ticket;
	bool stopping;

	/* what is decided (published by the writer) */
	atomic_ullong resolved;           /* every ticket <= resolved is committed or failed */
	atomic_uint nfail;                /* failed ranges held below (fast path when 0) */
	pthread_mutex_t fmu;
	struct fail_range fail[FAIL_RING];
	size_t fail_head, fail_n;
	uint64_t fail_floor;              /* tickets <= this may have failed and are no longer known: refused */
	waker *wakers;
	int nwakers;

	/* health (hmu) */
	pthread_mutex_t hmu;
	bool db_ok, jsonl_ok;
	char why[300];

	/* the writer's own */
	sqlite3 *db;
	sqlite3_stmt *ins, *ckpt;
	int64_t last_ts;         /* the ts column never goes back, so readers can binary-search it */
	int64_t indexed;         /* audit_by_* cover seq <= indexed */
	uint64_t index_at;       /* when index_step last ran */
	dev_t dev;
	ino_t ino;
	bool need_open;
	int64_t seq;
	uint8_t prev[32];
	gw_buf body, lines, scratch;
	int jfd;
	uint64_t jsize;
	atomic_bool reopen_jsonl;
	uint64_t last_err_log_us;

	/* stats */
	atomic_ullong st_records, st_batches, st_failed_batches, st_failed_records, st_jsonl_errors, st_commit_us;
};

static const char *const kind_names[] = {"", "session_open", "session_close", "statement", "outcome"};

/* ---- events ---- */

void gw_audit_ev_begin(gw_buf *b, uint64_t wall_us, const char *event)
{
	time_t secs = (time_t)(wall_us / 1000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char t[96];
	int n = snprintf(t, sizeof(t), "\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06uZ\",\"event\":\"%s\"", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_us % 1000000), event);
	gw_buf_append(b, t, (size_t)n);
}

gw_audit_ev *gw_audit_ev_new(uint8_t kind, uint64_t wall_us, const char *session, const char *identity, uint32_t n,
	const gw_buf *fields)
{
	size_t len = gw_buf_len(fields);
	gw_audit_ev *e = gw_xmalloc(sizeof(*e) + len + 1);
	e->next = NULL;
	e->ticket = 0;
	e->ts_us = (int64_t)wall_us;
	e->n = n;
	e->kind = kind;
	snprintf(e->session, sizeof(e->session), "%s", session ? session : "");
	snprintf(e->identity, sizeof(e->identity), "%s", identity ? identity : "");
	e->len = len;
	memcpy(e->fields, gw_buf_rd(fields), len);
	e->fields[len] = 0;
	return e;
}

static void ev_free_list(gw_audit_ev *e)
{
	while (e) {
		gw_audit_ev *n = e->next;
		free(e);
		e = n;
	}
}

/* ---- health ---- */

static void set_health(gw_audit *a, bool db, bool ok, const char *why)
{
	pthread_mutex_lock(&a->hmu);
	if (db)
		a->db_ok = ok;
	else
		a->jsonl_ok = ok;
	if (!ok)
		snprintf(a->why, sizeof(a->why), "%s", why);
	pthread_mutex_unlock(&a->hmu);
}

bool gw_audit_healthy(gw_audit *a, char *why, size_t whylen)
{
	pthread_mutex_lock(&a->hmu);
	bool ok = a->db_ok && a->jsonl_ok;
	if (!ok && why)
		snprintf(why, whylen, "%s", a->why);
	pthread_mutex_unlock(&a->hmu);
	return ok;
}

/* ---- the store ---- */

/*
 * The by-session and by-identity indexes follow the record in bulk, twice a
 * second, rather than in every commit: an index entry per record per commit
 * dirtied a page per session and per identity in each commit, which is most
 * of a commit's cost. Readers use them up to audit_indexed.seq and scan the
 * short tail after it. They are conveniences, not part of the chain.
 */
static void index_step(gw_audit *a)
{
	a->index_at = gw_mono_us();
	if (!a->db || a->indexed >= a->seq)
		return;
	int64_t to = a->seq - a->indexed > INDEX_CHUNK ? a->indexed + INDEX_CHUNK : a->seq;
	char sql[640];
	snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;"
		"INSERT OR IGNORE INTO audit_by_session SELECT session, seq FROM audit WHERE seq > %lld AND seq <= %lld "
		"AND session <> '';"
		"INSERT OR IGNORE INTO audit_by_identity SELECT identity, seq FROM audit WHERE seq > %lld AND seq <= %lld;"
		"INSERT INTO audit_indexed(id, seq) VALUES (1, %lld) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq;"
		"COMMIT;", (long long)a->indexed, (long long)to, (long long)a->indexed, (long long)to, (long long)to);
	if (sqlite3_exec(a->db, sql, NULL, NULL, NULL) == SQLITE_OK) {
		a->indexed = to;
	} else {
		if (!sqlite3_get_autocommit(a->db))
			sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
		gw_warn("audit: updating the record's indexes failed: %s (reading by session is slower meanwhile)",
			sqlite3_errmsg(a->db));
	}
}

static void db_close(gw_audit *a)
{
	sqlite3_finalize(a->ins);
	sqlite3_finalize(a->ckpt);
	sqlite3_close(a->db);
	a->ins = a->ckpt = NULL;
	a->db = NULL;
}

/*
 * Open the store file, which must exist (the state store made it; after it
 * vanished the recorder waits for it to come back rather than start an
 * empty record), and continue the chain from its last record.
 */
static int db_open(gw_audit *a, char *err, size_t errlen)
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
	char sync_sql[64];
	snprintf(sync_sql, sizeof(sync_sql), "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
		"PRAGMA wal_autocheckpoint=%d;", a->cfg->audit_fsync ? "FULL" : "NORMAL", WAL_CHECKPOINT_PAGES);
	char *msg = NULL;
	if (sqlite3_exec(a->db, sync_sql, NULL, NULL, &msg) != SQLITE_OK ||
		sqlite3_exec(a->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot set up the audit tables in %s: %s", a->path, msg ? msg : sqlite3_errmsg(a->db));
		sqlite3_free(msg);
		db_close(a);
		return -1;
	}
	sqlite3_stmt *last = NULL;
	a->indexed = 0;
	if (sqlite3_prepare_v2(a->db, "SELECT seq FROM audit_indexed WHERE id = 1", -1, &last, NULL) == SQLITE_OK &&
		sqlite3_step(last) == SQLITE_ROW)
		a->indexed = sqlite3_column_int64(last, 0);
	sqlite3_finalize(last);
	last = NULL;
	int rc = sqlite3_prepare_v2(a->db, "SELECT seq, hash, ts FROM audit ORDER BY seq DESC LIMIT 1", -1, &last, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(last);
	if (rc == SQLITE_ROW) {
		a->seq = sqlite3_column_int64(last, 0);
		a->last_ts = sqlite3_column_int64(last, 2);
		const void *h = sqlite3_column_blob(last, 1);
		if (h && sqlite3_column_bytes(last, 1) == 32)
			memcpy(a->prev, h, 32);
		else
			memset(a->prev, 0, 32);
	} else if (rc == SQLITE_DONE) {
		a->seq = 0;
		memset(a->prev, 0, 32);
	}
	sqlite3_finalize(last);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read the end of the record in %s: %s", a->path, sqlite3_errmsg(a->db));
		db_close(a);
		return -1;
	}
	if (sqlite3_prepare_v2(a->db, "INSERT INTO audit(seq, ts, event, session, identity, n, body, prev, hash) "
			"VALUES (?,?,?,?,?,?,?,?,?)", -1, &a->ins, NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(a->db, "INSERT INTO audit_checkpoint(id, seq, hash, ts, mac) VALUES (1,?,?,?,?) "
			"ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts, "
			"mac = excluded.mac", -1, &a->ckpt, NULL) != SQLITE_OK) {
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

/* The checkpoint's MAC: HMAC-SHA-256(key, "pgmoat-audit-checkpoint\n" seq "\n" hash). */
static void checkpoint_mac(const char *key, size_t keylen, int64_t seq, const uint8_t hash[32], uint8_t out[32])
{
	uint8_t msg[96];
	int n = snprintf((char *)msg, sizeof(msg), "pgmoat-audit-checkpoint\n%lld\n", (long long)seq);
	memcpy(msg + n, hash, 32);
	gw_hmac_sha256(key, keylen, msg, (size_t)n + 32, out);
}

/* SHA-256(prev ‖ body) */
static void chain_hash(const uint8_t prev[32], const void *body, size_t n, gw_buf *scratch, uint8_t out[32])
{
	gw_buf_reset(scratch);
	gw_buf_append(scratch, prev, 32);
	gw_buf_append(scratch, body, n);
	gw_sha256(gw_buf_rd(scratch), gw_buf_len(scratch), out);
}

/* ---- audit.jsonl ---- */

static void jsonl_close(gw_audit *a)
{
	if (a->jfd >= 0)
		close(a->jfd);
	a->jfd = -1;
}

static int jsonl_open(gw_audit *a)
{
	jsonl_close(a);
	a->jfd = open(a->cfg->audit_jsonl, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->jfd < 0) {
		char why[300];
		snprintf(why, sizeof(why), "audit.jsonl: cannot open %s: %s", a->cfg->audit_jsonl, strerror(errno));
		gw_error("%s", why);
		set_health(a, false, false, why);
		return -1;
	}
	struct stat st;
	a->jsize = fstat(a->jfd, &st) == 0 ? (uint64_t)st.st_size : 0;
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
	gw_info("audit.jsonl rotated at %llu bytes", (unsigned long long)a->jsize);
	jsonl_open(a);
}

static void jsonl_write(gw_audit *a)
{
	if (!a->cfg->audit_jsonl)
		return;
	if (atomic_exchange(&a->reopen_jsonl, false) || a->jfd < 0)
		jsonl_open(a);
	if (a->jfd >= 0 && a->jsize + gw_buf_len(&a->lines) > a->cfg->audit_jsonl_max_size && a->jsize > 0)
		jsonl_rotate(a);
	if (a->jfd < 0) {
		atomic_fetch_add(&a->st_jsonl_errors, 1);
		return;
	}
	const uint8_t *p = gw_buf_rd(&a->lines);
	size_t n = gw_buf_len(&a->lines);
	while (n) {
		ssize_t w = write(a->jfd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			char why[300];
			snprintf(why, sizeof(why), "audit.jsonl: write to %s failed: %s (the SQLite record is complete)",
				a->cfg->audit_jsonl, w < 0 ? strerror(errno) : "short write");
			atomic_fetch_add(&a->st_jsonl_errors, 1);
			gw_error("%s", why);
			set_health(a, false, false, why);
			return;
		}
		p += w;
		n -= (size_t)w;
		a->jsize += (uint64_t)w;
	}
	set_health(a, false, true, NULL);
}

/* ---- publishing results ---- */

static void wake_workers(gw_audit *a)
{
	for (int i = 0; i < a->nwakers; i++) {
		waker *w = &a->wakers[i];
		if (w->loop && atomic_load(&w->waiting) > 0 && !atomic_exchange(&w->posted, true))
			gw_loop_post(w->loop, w->wake, w->arg);
	}
}

static void publish(gw_audit *a, uint64_t first, uint64_t last, bool ok)
{
	if (!ok) {
		uint64_t now = gw_mono_us();
		pthread_mutex_lock(&a->fmu);
		/* forget ranges nobody can still be waiting on (old), or the oldest when full: refused if asked */
		while (a->fail_n && (a->fail_n == FAIL_RING || now - a->fail[a->fail_head].at_us > FAIL_KEEP_US)) {
			if (a->fail[a->fail_head].last > a->fail_floor)
				a->fail_floor = a->fail[a->fail_head].last;
			a->fail_head = (a->fail_head + 1) % FAIL_RING;
			a->fail_n--;
		}
		a->fail[(a->fail_head + a->fail_n) % FAIL_RING] = (struct fail_range){first, last, now};
		a->fail_n++;
		atomic_store(&a->nfail, (unsigned)a->fail_n);
		pthread_mutex_unlock(&a->fmu);
	}
	atomic_store(&a->resolved, last);
	wake_workers(a);
}

int gw_audit_state(gw_audit *a, uint64_t first, uint64_t last)
{
	if (last > atomic_load(&a->resolved))
		return 0;
	if (atomic_load(&a->nfail) == 0) {
		pthread_mutex_lock(&a->fmu);
		bool floor_hit = first <= a->fail_floor;
		pthread_mutex_unlock(&a->fmu);
		return floor_hit ? -1 : 1;
	}
	int r = 1;
	pthread_mutex_lock(&a->fmu);
	if (first <= a->fail_floor)
		r = -1;
	for (size_t i = 0; r == 1 && i < a->fail_n; i++) {
		const struct fail_range *f = &a->fail[(a->fail_head + i) % FAIL_RING];
		if (f->first <= last && first <= f->last)
			r = -1;
	}
	pthread_mutex_unlock(&a->fmu);
	return r;
}

/* ---- the writer ---- */

static bool bind_ok(int rc)
{
	return rc == SQLITE_OK;
}

/* Insert one event as record a->seq + 1; the chain advances. */
static int insert_one(gw_audit *a, const gw_audit_ev *e)
{
	int64_t seq = a->seq + 1;
	gw_buf *b = &a->body;
	gw_buf_reset(b);
	char head[40];
	int hn = snprintf(head, sizeof(head), "{\"seq\":%lld,", (long long)seq);
	gw_buf_append(b, head, (size_t)hn);
	gw_buf_append(b, e->fields, e->len);
	gw_buf_append(b, "}", 1);
	uint8_t hash[32];
	chain_hash(a->prev, gw_buf_rd(b), gw_buf_len(b), &a->scratch, hash);
	sqlite3_stmt *q = a->ins;
	sqlite3_reset(q);
	int64_t ts = e->ts_us > a->last_ts ? e->ts_us : a->last_ts;
	bool ok = bind_ok(sqlite3_bind_int64(q, 1, seq)) && bind_ok(sqlite3_bind_int64(q, 2, ts)) &&
		bind_ok(sqlite3_bind_text(q, 3, kind_names[e->kind], -1, SQLITE_STATIC)) &&
		bind_ok(sqlite3_bind_text(q, 4, e->session, -1, SQLITE_STATIC)) &&
		bind_ok(sqlite3_bind_text(q, 5, e->identity, -1, SQLITE_STATIC)) &&
		bind_ok(sqlite3_bind_int64(q, 6, e->n)) &&
		bind_ok(sqlite3_bind_text(q, 7, (const char *)gw_buf_rd(b), (int)gw_buf_len(b), SQLITE_STATIC)) &&
		bind_ok(sqlite3_bind_blob(q, 8, a->prev, 32, SQLITE_STATIC)) &&
		bind_ok(sqlite3_bind_blob(q, 9, hash, 32, SQLITE_STATIC));
	if (!ok || sqlite3_step(q) != SQLITE_DONE)
		return -1;
	a->seq = seq;
	a->last_ts = ts;
	memcpy(a->prev, hash, 32);
	return 0;
}

static void fail_batch(gw_audit *a, uint64_t first, uint64_t last, size_t count, const char *why)
{
	atomic_fetch_add(&a->st_failed_batches, 1);
	atomic_fetch_add(&a->st_failed_records, count);
	set_health(a, true, false, why);
	uint64_t now = gw_mono_us();
	if (now - a->last_err_log_us > 1000000) {
		a->last_err_log_us = now;
		gw_error("audit: cannot commit %zu record(s): %s; statements are refused (58030) until the store recovers",
			count, why);
	}
	publish(a, first, last, false);
}

/* jsonl line for the record just inserted: body minus its '}' + prev + hash. */
static void add_line(gw_buf *lines, const gw_buf *body, const uint8_t prev[32], const uint8_t hash[32])
{
	char hp[65], hh[65];
	gw_hex(prev, 32, hp);
	gw_hex(hash, 32, hh);
	gw_buf_append(lines, gw_buf_rd(body), gw_buf_len(body) - 1);
	gw_buf_append(lines, ",\"prev\":\"", 9);
	gw_buf_append(lines, hp, 64);
	gw_buf_append(lines, "\",\"hash\":\"", 10);
	gw_buf_append(lines, hh, 64);
	gw_buf_append(lines, "\"}\n", 3);
}

static void write_batch(gw_audit *a, gw_audit_ev *list, size_t count)
{
	uint64_t first = list->ticket, last = first + count - 1;
	char why[400] = "";
	if (a->need_open && db_open(a, why, sizeof(why)) < 0) {
		fail_batch(a, first, last, count, why);
		return;
	}
	if (!file_same(a, why, sizeof(why))) {
		db_close(a);
		a->need_open = true;
		fail_batch(a, first, last, count, why);
		return;
	}
	uint64_t t0 = gw_mono_us();
	int64_t seq0 = a->seq, ts0 = a->last_ts;
	uint8_t prev0[32];
	memcpy(prev0, a->prev, 32);
	bool jsonl = a->cfg->audit_jsonl != NULL;
	gw_buf jl = {0};
	int rc = sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	bool ok = rc == SQLITE_OK;
	for (gw_audit_ev *e = list; ok && e; e = e->next) {
		uint8_t p[32];
		memcpy(p, a->prev, 32);
		ok = insert_one(a, e) == 0;
		if (ok && jsonl)
			add_line(&jl, &a->body, p, a->prev);
	}
	if (ok) {
		uint8_t mac[32];
		sqlite3_stmt *q = a->ckpt;
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, a->seq);
		sqlite3_bind_blob(q, 2, a->prev, 32, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (int64_t)gw_wall_us());
		if (a->cfg->audit_checkpoint_key) {
			checkpoint_mac(a->cfg->audit_checkpoint_key, a->cfg->audit_checkpoint_key_len, a->seq, a->prev, mac);
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
		snprintf(why, sizeof(why), "%s (%s)", sqlite3_errmsg(a->db), sqlite3_errstr(code));
		if (!sqlite3_get_autocommit(a->db))
			sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
		a->seq = seq0;
		a->last_ts = ts0;
		memcpy(a->prev, prev0, 32);
		int primary = code & 0xff;
		/* the file itself is in doubt: open it afresh next time */
		if (primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_CANTOPEN ||
			primary == SQLITE_READONLY || primary == SQLITE_NOTADB) {
			db_close(a);
			a->need_open = true;
		}
		gw_buf_free(&jl);
		fail_batch(a, first, last, count, why);
		return;
	}
	atomic_fetch_add(&a->st_commit_us, gw_mono_us() - t0);
	atomic_fetch_add(&a->st_records, count);
	atomic_fetch_add(&a->st_batches, 1);
	set_health(a, true, true, NULL);
	publish(a, first, last, true);
	if (jsonl) {
		gw_buf_free(&a->lines);
		a->lines = jl;
		jsonl_write(a);
		gw_buf_reset(&a->lines);
	}
	if (gw_mono_us() - a->index_at > INDEX_EVERY_US)
		index_step(a);
}

static void *writer_main(void *arg)
{
	gw_audit *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while ((!a->head || !a->urgent) && !a->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (a->head ? LAZY_US * 1000ull : 1000000000ull);
			ts.tv_sec += (time_t)(ns / 1000000000ull);
			ts.tv_nsec = (long)(ns % 1000000000ull);
			if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) != 0 && a->head)
				break; /* lazy events waited long enough */
			if (!a->head && a->db && a->indexed < a->seq) {
				pthread_mutex_unlock(&a->mu);
				index_step(a);
				pthread_mutex_lock(&a->mu);
			}
			if (!a->head && a->cfg->audit_jsonl && atomic_load(&a->reopen_jsonl)) {
				pthread_mutex_unlock(&a->mu);
				atomic_store(&a->reopen_jsonl, false);
				jsonl_open(a);
				pthread_mutex_lock(&a->mu);
			}
		}
		if (!a->head)
			break; /* stopping, all written */
		gw_audit_ev *list = a->head, *e = list;
		size_t k = 1;
		while (e->next && k < BATCH_MAX) {
			e = e->next;
			k++;
		}
		a->head = e->next;
		if (!a->head) {
			a->tail = &a->head;
			a->urgent = false;
		}
		e->next = NULL;
		a->queued -= k;
		pthread_mutex_unlock(&a->mu);
		write_batch(a, list, k);
		ev_free_list(list);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- public ---- */

gw_audit *gw_audit_open(const gw_config *cfg, int nworkers, char *err, size_t errlen)
{
	gw_audit *a = gw_xcalloc(1, sizeof(*a));
	a->cfg = cfg;
	a->path = gw_xstrdup(cfg->state_path);
	a->tail = &a->head;
	a->next_ticket = 1;
	a->jfd = -1;
	a->db_ok = a->jsonl_ok = true;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_mutex_init(&a->fmu, NULL);
	pthread_mutex_init(&a->hmu, NULL);
	a->nwakers = nworkers;
	a->wakers = gw_xcalloc((size_t)(nworkers > 0 ? nworkers : 1), sizeof(waker));
	if (db_open(a, err, errlen) < 0 || (cfg->audit_jsonl && jsonl_open(a) < 0)) {
		if (!*err)
			snprintf(err, errlen, "cannot open audit.jsonl %s: %s", cfg->audit_jsonl, strerror(errno));
		gw_audit_close(a);
		return NULL;
	}
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
		while (a->db && a->indexed < a->seq) {
			int64_t before = a->indexed;
			index_step(a);
			if (a->indexed == before)
				break;
		}
	}
	ev_free_list(a->head);
	db_close(a);
	jsonl_close(a);
	gw_buf_free(&a->body);
	gw_buf_free(&a->lines);
	gw_buf_free(&a->scratch);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->fmu);
	pthread_mutex_destroy(&a->hmu);
	free(a->wakers);
	free(a->path);
	free(a);
}

void gw_audit_attach(gw_audit *a, int index, gw_loop *loop, void (*wake)(void *), void *arg)
{
	if (index < 0 || index >= a->nwakers)
		return;
	a->wakers[index].loop = loop;
	a->wakers[index].wake = wake;
	a->wakers[index].arg = arg;
}

void gw_audit_waiting(gw_audit *a, int index, int delta)
{
	if (index < 0 || index >= a->nwakers)
		return;
	waker *w = &a->wakers[index];
	if (delta == 0) {
		atomic_store(&w->posted, false); /* the wake task runs: the next batch may post again */
		return;
	}
	atomic_fetch_add(&w->waiting, delta);
}

void gw_audit_reopen(gw_audit *a)
{
	atomic_store(&a->reopen_jsonl, true);
	pthread_mutex_lock(&a->mu);
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

uint64_t gw_audit_submit(gw_audit *a, gw_audit_ev *list, bool urgent)
{
	size_t k = 0;
	gw_audit_ev *last = NULL;
	for (gw_audit_ev *e = list; e; e = e->next) {
		k++;
		last = e;
	}
	if (!k)
		return 0;
	pthread_mutex_lock(&a->mu);
	if (a->stopping || a->queued + k > (size_t)a->cfg->audit_queue_max) {
		pthread_mutex_unlock(&a->mu);
		ev_free_list(list);
		return 0;
	}
	for (gw_audit_ev *e = list; e; e = e->next)
		e->ticket = a->next_ticket++;
	uint64_t t = last->ticket;
	*a->tail = list;
	a->tail = &last->next;
	a->queued += k;
	if (a->queued > a->queue_peak)
		a->queue_peak = a->queued;
	if (urgent && !a->urgent) {
		a->urgent = true;
		pthread_cond_signal(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	return t;
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
	pthread_mutex_lock(&a->mu);
	out->queue_peak = a->queue_peak;
	pthread_mutex_unlock(&a->mu);
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
	gw_buf scratch = {0};
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
		chain_hash(prev, body, (size_t)bn, &scratch, h);
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
		gw_buf_free(&scratch);
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
	gw_buf_free(&scratch);
	return 0;
}
