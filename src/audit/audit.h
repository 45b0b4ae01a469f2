/*
 * The record (SPEC "Record (audit)"): every session and statement, attributed,
 * hash-chained, committed before the statement runs.
 *
 * Owns: the audit tables of the state store's SQLite file (its own
 * connections, WAL), the writer thread and its group commit, the hash chain
 * and the signed checkpoint, the optional audit.jsonl copy (rotation, reopen
 * on SIGHUP), verification, and reading the record back.
 *
 *   worker threads --gw_audit_submit()--> queue --writer thread--> SQLite (+ jsonl)
 *                  <--gw_loop_post(wake)-- resolved tickets
 *
 * Events are built by the session (gw_audit_ev_*). Each submission gets a
 * ticket; the writer takes whatever is queued, numbers it (seq), chains it
 * (hash = SHA-256(prev ‖ body)), inserts it and commits once for all of it,
 * then publishes which tickets are committed or failed and wakes the workers
 * that wait. A session holds back a statement until its ticket is committed
 * (write-ahead); a failed commit refuses the statement (58030), and the next
 * batch tries again, so recording resumes by itself when the store recovers.
 *
 * On disk one row per event: seq (1, 2, 3, ... without gaps), ts, event,
 * session, identity, n (statement number in its session), body (the
 * canonical JSON: {"seq":N,...} without prev and hash, byte for byte what was
 * hashed), prev and hash (32 bytes each). A statement's outcome is a later
 * event of its own ("outcome", same session and n); readers merge the two.
 * audit_checkpoint holds the last seq and hash, HMAC-signed with
 * audit.checkpoint_key, updated in the same transaction as every batch: a
 * cut tail no longer reaches it.
 */
#ifndef GW_AUDIT_AUDIT_H
#define GW_AUDIT_AUDIT_H

#include "core/buf.h"
#include "core/config.h"
#include "net/loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_audit gw_audit;

enum gw_audit_kind {
	GW_AUD_SESSION_OPEN = 1,
	GW_AUD_SESSION_CLOSE = 2,
	GW_AUD_STATEMENT = 3,
	GW_AUD_OUTCOME = 4,
};

/* One event on its way to the writer: the JSON fields after "seq" (no braces), e.g. "ts":"...","event":"statement",... */
typedef struct gw_audit_ev {
	struct gw_audit_ev *next;
	uint64_t ticket;
	int64_t ts_us;
	uint32_t n;
	uint8_t kind;
	char session[40];
	char identity[128];
	size_t len;
	char fields[];
} gw_audit_ev;

/*
 * Open the recorder on cfg->state_path (the tables are created when
 * missing) and start its writer. nworkers: how many worker loops may wait on
 * tickets (gw_audit_attach). NULL with err set on failure.
 */
gw_audit *gw_audit_open(const gw_config *cfg, int nworkers, char *err, size_t errlen);
/* Writes what is queued, stops the writer, closes. */
void gw_audit_close(gw_audit *a);
/* Worker `index` runs loop: after each batch the writer posts wake(arg) there while the worker has waiters. */
void gw_audit_attach(gw_audit *a, int index, gw_loop *loop, void (*wake)(void *), void *arg);
/* The worker has this many sessions waiting on tickets (the writer wakes it only then). */
void gw_audit_waiting(gw_audit *a, int index, int delta);
/* Rotate/reopen audit.jsonl (SIGHUP); thread-safe. */
void gw_audit_reopen(gw_audit *a);

/*
 * Build an event: kind, session id, identity, statement number, and the
 * JSON fields (a gw_buf holding them; copied). The ts field is written by
 * gw_audit_ev_begin into the buffer as the first field.
 */
void gw_audit_ev_begin(gw_buf *b, uint64_t wall_us, const char *event);
gw_audit_ev *gw_audit_ev_new(uint8_t kind, uint64_t wall_us, const char *session, const char *identity, uint32_t n,
	const gw_buf *fields);

/*
 * Queue events (a list linked by next, in order; all taken over). Returns
 * the ticket of the last one, 0 when the queue is over its bound (the
 * store is not keeping up: refuse, fail closed). Tickets are consecutive
 * for one call. urgent: a statement waits for them, commit at once; else
 * they go with the next commit, within 20 ms (outcomes, session events).
 */
uint64_t gw_audit_submit(gw_audit *a, gw_audit_ev *list, bool urgent);
/* Tickets [first, last]: 1 all committed, 0 not yet decided, -1 at least one failed. */
int gw_audit_state(gw_audit *a, uint64_t first, uint64_t last);

/* Health: true while the last commit succeeded. why: the last failure, when unhealthy. */
bool gw_audit_healthy(gw_audit *a, char *why, size_t whylen);

typedef struct gw_audit_stats {
	uint64_t records, batches, failed_batches, failed_records, queue_peak, jsonl_errors;
	uint64_t commit_us_total;  /* time inside BEGIN..COMMIT, summed */
} gw_audit_stats;
void gw_audit_get_stats(gw_audit *a, gw_audit_stats *out);

/* ---- reading (any thread; own read-only connection per call) ---- */

typedef struct gw_audit_verify_result {
	bool ok;
	int64_t records;          /* rows walked */
	int64_t last_seq;
	int64_t bad_seq;          /* the first record found wrong (0: none) */
	char problem[512];        /* what is wrong, naming the record */
	bool signed_checkpoint;   /* a checkpoint_key was configured and the checkpoint's MAC checked */
	char note[256];           /* e.g. no checkpoint_key configured */
} gw_audit_verify_result;

/*
 * Walk the whole chain of the store at path (key: audit.checkpoint_key, or
 * NULL). progress (may be NULL) is called every 100,000 records. 0 when the
 * walk ran (res->ok says whether the chain holds), -1 when the store could
 * not be read (err).
 */
int gw_audit_verify(const char *path, const char *key, size_t keylen, gw_audit_verify_result *res,
	void (*progress)(int64_t done, void *arg), void *arg, char *err, size_t errlen);

/*
 * Events of the store at path, oldest first, as a JSON array (jansson).
 * Statement events carry their outcome merged in (rows, duration_us,
 * sqlstate, masked_values, status, outcome_seq; status "unknown" when no
 * outcome was recorded); outcome events themselves are not listed.
 * *next: the after_seq of the next page, 0 when there is none.
 * NULL with err set when the store cannot be read.
 */
typedef struct gw_audit_query {
	const char *identity;     /* NULL: any */
	const char *session;      /* NULL: any */
	int64_t since_us;         /* 0: any (unix microseconds) */
	int64_t after_seq;        /* paging: only seq > after_seq */
	int limit;                /* 1..1000 */
} gw_audit_query;
struct json_t *gw_audit_list(const char *path, const gw_audit_query *q, int64_t *next, char *err, size_t errlen);

#endif
