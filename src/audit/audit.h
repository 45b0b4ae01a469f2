/*
 * The record (SPEC "Record (audit)"): every session and statement, attributed,
 * hash-chained, committed before the statement runs.
 *
 * Owns: the audit tables of the state store's SQLite file, the journal beside
 * it, the writer thread that moves records from the journal into SQLite, the
 * hash chain and the signed checkpoint, the optional audit.jsonl copy
 * (rotation, reopen on SIGHUP), verification, and reading the record back.
 *
 *   session --events--> worker's group --gw_audit_append()--> journal (commit)
 *                                        writer thread: journal --> SQLite (+ jsonl)
 *
 * The session builds events (gw_audit_ev_*); a worker gathers those of one
 * batch of socket events and appends them in one go: numbered (seq), chained
 * (hash = SHA-256(prev ‖ body)) and written to the journal with one write(2).
 * That append is the commit a held statement waits for; when it fails the
 * statements are refused (58030). The writer thread moves appended records
 * into SQLite in large transactions and empties the journal; at start-up it
 * first moves in whatever the journal holds beyond SQLite (a crash).
 *
 * On disk one row per event: seq (1, 2, 3, ... without gaps), ts, event,
 * session, identity, n (statement number in its session), body (the
 * canonical JSON: {"seq":N,...} without prev and hash, byte for byte what was
 * hashed), prev and hash (32 bytes each). A statement's outcome is a later
 * event of its own ("outcome", same session and n); readers merge the two.
 * audit_checkpoint holds the last seq and hash, HMAC-signed with
 * audit.checkpoint_key, updated in the same transaction as every move into
 * SQLite: a cut tail no longer reaches it. audit_sessions and
 * audit_identities say where each session's and identity's events lie (first
 * and last seq), so readers scan only that stretch.
 */
#ifndef GW_AUDIT_AUDIT_H
#define GW_AUDIT_AUDIT_H

#include "core/buf.h"
#include "core/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_audit gw_audit;

enum gw_audit_kind {
	GW_AUD_SESSION_OPEN = 1,
	GW_AUD_SESSION_CLOSE = 2,
	GW_AUD_STATEMENT = 3,
	GW_AUD_OUTCOME = 4,
	GW_AUD_AUTH_FAILURE = 5,  /* a refused login: no session, no identity (the user claimed is in the body) */
};

/*
 * One event on its way: the JSON fields after "seq" (no braces), e.g.
 * "ts":"...","event":"statement",... — kept in buf after room for the
 * {"seq":N, the recorder puts in front when it numbers the event, so the
 * record's body is made in place (one allocation per event).
 */
#define GW_AUDIT_EV_ROOM 32
typedef struct gw_audit_ev {
	struct gw_audit_ev *next;
	int64_t ts_us;
	uint32_t n;
	uint8_t kind;
	char session[40];
	char identity[128];
	/* set when appended (the recorder's) */
	int64_t seq, col_ts;
	uint8_t prev[32], hash[32];
	char *body;              /* {"seq":N,<fields>} inside buf */
	size_t blen;
	size_t len;              /* of the fields */
	char buf[];              /* GW_AUDIT_EV_ROOM bytes, the fields, '}', NUL */
} gw_audit_ev;

/*
 * Open the recorder on cfg->state_path (the tables are created when
 * missing; the journal's records not yet in SQLite are moved in) and start
 * its writer. NULL with err set on failure.
 */
gw_audit *gw_audit_open(const gw_config *cfg, char *err, size_t errlen);
/* Moves what is appended into SQLite, stops the writer, closes. */
void gw_audit_close(gw_audit *a);
/* Rotate/reopen audit.jsonl (SIGHUP); thread-safe. */
void gw_audit_reopen(gw_audit *a);

/*
 * Build an event: gw_audit_ev_begin writes the ts and event fields first into
 * a buffer; the caller adds ,"key":value pairs; gw_audit_ev_new copies them.
 */
void gw_audit_ev_begin(gw_buf *b, uint64_t wall_us, const char *event);
gw_audit_ev *gw_audit_ev_new(uint8_t kind, uint64_t wall_us, const char *session, const char *identity, uint32_t n,
	const gw_buf *fields);
void gw_audit_ev_free(gw_audit_ev *list);
/*
 * An auth_failure event: {"event":"auth_failure","client":ADDR,"user":CLAIMED,
 * "method":"token|jwt|cert","reason":WHY,"sqlstate":S[,"issuer":ISS]} —
 * never the credential. b is scratch space (emptied first).
 */
gw_audit_ev *gw_audit_ev_auth_failure(gw_buf *b, uint64_t wall_us, const char *client, const char *user,
	const char *method, const char *reason, const char *sqlstate, const char *issuer);

/*
 * Commit a group of events (a list linked by next, in order; taken over):
 * appended to the journal in one write while holding the journal lock for a
 * few microseconds (page-cache writes only; with audit.fsync: true also an
 * fdatasync, the price of surviving power loss). 0 committed; -1 refused
 * (why: disk full, I/O error, journal removed, or the state store cannot
 * take records) — nothing of the group counts.
 */
int gw_audit_append(gw_audit *a, gw_audit_ev *list, char *why, size_t whylen);

/* Health: true while records can be committed and stored. why: the last failure, when unhealthy. */
bool gw_audit_healthy(gw_audit *a, char *why, size_t whylen);

typedef struct gw_audit_stats {
	uint64_t records, batches, failed_batches, failed_records, queue_peak, jsonl_errors;
	uint64_t commit_us_total;  /* time inside SQLite transactions (batches of them), summed */
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
