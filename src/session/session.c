/*
 * The per-session message pipeline; see session.h.
 *
 *   client socket --rx--> frame --> client_message() --> upstream tx --> server
 *   server socket --rx--> frame --> server_message() --> client tx   --> client
 *
 * Each direction is framed into whole messages and dispatched on the type
 * byte (one switch per side). A message larger than STREAM_MIN whose type
 * needs no inspection (DataRow, CopyData) is streamed: its header is passed
 * on at once and its body as it arrives, so a 100 MB value never sits in
 * memory whole. When a destination buffer passes HIGH_WATER the source is
 * no longer read until it drains (back-pressure both ways).
 *
 * A server goes back to its pool only at a sync point: every Query/Sync/
 * FunctionCall answered by ReadyForQuery, no extended-protocol message
 * after the last Sync, nothing half-streamed. Otherwise it is closed.
 */
#include "session/session.h"
#include "core/log.h"
#include "core/util.h"
#include "access/access.h"
#include "core/clock.h"
#include "policy/policy.h"
#include "net/tls.h"
#include "session/registry.h"
#include "upstream/upstream.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIGH_WATER (1u << 20)
#define STREAM_MIN (64u * 1024)
#define READ_CHUNK (256u * 1024)
#define UPSTREAM_MAX_MSG (1024u * 1024 * 1024 + 1024)
#define CLOSE_GRACE_US (5u * 1000000u)

typedef struct frame {
	bool streaming;
	bool discard;          /* drop the streamed body (a row over max_rows, a row of the gateway's own query) */
	uint8_t type;
	size_t remaining;
} frame;

struct gw_session {
	gw_worker *wk;
	gw_gateway *gw;
	gw_loop *loop;
	gw_conn cl;
	struct sockaddr_storage addr;
	gw_identity ident;
	gw_pool *pool;
	gw_server *srv;
	gw_conn *up;
	gw_pool_wait *wait;
	uint64_t wait_since;
	gw_reg_entry *reg;
	char **set_kv;         /* startup parameters to apply: k, v, k, v, ..., NULL */
	size_t nset;
	frame cf, sf;
	bool unsynced;
	bool copy_in;          /* the server is in COPY FROM STDIN (it ignores Sync and Flush) */
	char copy_portal[64];  /* the portal last bound to a COPY FROM STDIN statement (policy sessions) */
	bool copy_portal_set;
	bool copy_wait;        /* a Query with COPY FROM STDIN was sent: client input waits until the server
	                          says whether COPY started (CopyInResponse) or not (ReadyForQuery), since
	                          it ignores Sync and Flush only in the first case */
	/*
	 * What the gateway itself put in the server's stream, in send order:
	 *  - OWN: a query of its own (the prelude of startup settings, their
	 *    re-application after RESET ALL / DISCARD ALL, a catalog lookup for a
	 *    policy decision). Its responses start once `at` client
	 *    ReadyForQuery messages have arrived; they are swallowed (a lookup's
	 *    rows go to the policy) up to its own ReadyForQuery.
	 *  - DENY: a denied message, replaced by one that fails at once without
	 *    running anything, so ordering, transaction state and the extended
	 *    protocol's skip-to-Sync are the server's own. Its ErrorResponse, in
	 *    client group `at`, is replaced by the denial.
	 */
	struct gwq_ent {
		uint8_t kind;
		bool fatal_on_error;   /* OWN prelude: an error means the client's settings are invalid */
		bool capture;          /* OWN lookup: rows go to the policy */
		bool ext;              /* DENY in an extended-protocol group */
		uint64_t at;
		gw_decision *deny;     /* DENY: what the client is told */
	} gwq[24];
	int gwq_head, gwq_n;
	uint64_t rfq_sent, rfq_recv; /* client ReadyForQuery messages asked for / received */
	/* policy (cfg->has_policies) */
	bool policy_on;
	gw_pctx pol;
	gw_sqlc *lookup_q;     /* a catalog lookup for this message is in flight: client input waits */
	bool reset_in_group;   /* extended: a reset was bound in this group; re-apply settings at Sync */
	gw_decision *lookup_fail; /* the lookup failed: the message is refused with this */
	char review_pass[64];  /* a prepared statement whose review was used at Parse: one Bind may run it */
	bool review_pass_set;
	bool review_used;      /* the message just decided ran under an approved review */
	/*
	 * Prepared statements sent but not yet confirmed by the server (Parse →
	 * ParseComplete, SQL PREPARE → CommandComplete "PREPARE"), in order. Only
	 * what the server confirmed is remembered, so the gateway's idea of a
	 * name is always the server's.
	 */
	struct pending_prep {
		char *name;        /* NULL: all (DEALLOCATE ALL, DISCARD ALL) */
		gw_sqlc *q;        /* what a PREPARE / Parse prepares */
		uint64_t group;
		uint8_t kind;      /* PEND_* */
	} *pend;
	size_t npend, pend_head, pend_cap;
	long rows;             /* max_rows: rows of the current result passed on */
	bool cut;              /* max_rows: rows of the current result dropped */
	bool login_done;
	bool closing;
	bool ended;
	bool upstream_fatal;   /* a FATAL from the server was passed on: the client knows why it ends */
	bool terminated;       /* the client sent Terminate: what it sent before still runs */
	uint64_t close_deadline;
	char txstatus;
	struct gw_session *prev, *next;
};

static void session_client_io(gw_io *io, uint32_t events);
static void session_server_io(gw_io *io, uint32_t events);
static void run(gw_session *s);

/* ---- lifetime ---- */

static void gwq_clear(gw_session *s)
{
	for (int i = 0; i < s->gwq_n; i++)
		free(s->gwq[(s->gwq_head + i) % (int)GW_ARRAY_LEN(s->gwq)].deny);
	s->gwq_head = s->gwq_n = 0;
}

static void session_free(void *p)
{
	gw_session *s = p;
	gwq_clear(s);
	if (s->lookup_q)
		gw_sqlc_unref(s->lookup_q);
	free(s->lookup_fail);
	for (size_t i = s->pend_head; i < s->npend; i++) {
		free(s->pend[i].name);
		gw_sqlc_unref(s->pend[i].q);
	}
	free(s->pend);
	if (s->policy_on)
		gw_pctx_free(&s->pol);
	for (size_t i = 0; i < 2 * s->nset; i++)
		free(s->set_kv[i]);
	free(s->set_kv);
	free(s);
}

static bool in_sync(const gw_session *s)
{
	return !s->wk->stopping && s->rfq_sent == s->rfq_recv && !s->unsynced && !s->cf.streaming && !s->sf.streaming &&
		s->gwq_n == 0 && (!s->up || gw_buf_len(&s->up->rx) == 0);
}

/*
 * Let go of the upstream side: withdraw a pool wait, and give the server
 * back — pooled when in sync, otherwise closed (and its running statement
 * cancelled, unless the client itself said Terminate after sending it).
 */
static void drop_upstream(gw_session *s)
{
	if (s->wait) {
		gw_pool_cancel(s->wait);
		s->wait = NULL;
	}
	if (!s->srv)
		return;
	bool reusable = in_sync(s);
	if (!reusable && s->rfq_sent > s->rfq_recv && !s->terminated)
		gw_upstream_cancel(gw_pool_cfg(s->pool), gw_server_pid(s->srv), gw_server_key(s->srv));
	gw_loop_unwatch(&s->up->io);
	gw_pool_release(s->srv, s->loop, reusable);
	s->srv = NULL;
	s->up = NULL;
}

/* End the session now: give back or close the server, close the client. */
static void session_end(gw_session *s)
{
	if (s->ended)
		return;
	s->ended = true;
	drop_upstream(s);
	if (s->reg) {
		atomic_store(&s->reg->bytes_in, s->cl.bytes_in);
		atomic_store(&s->reg->bytes_out, s->cl.bytes_out);
		gw_info("session %s closed: identity=%s connection=%s bytes_in=%llu bytes_out=%llu statements=%llu",
			s->reg->id, s->ident.name, gw_pool_cfg(s->pool)->name, (unsigned long long)s->cl.bytes_in,
			(unsigned long long)s->cl.bytes_out, (unsigned long long)atomic_load(&s->reg->statements));
		gw_registry_remove(s->gw->reg, s->reg);
		s->reg = NULL;
	}
	gw_conn_close(&s->cl);
	if (s->prev)
		s->prev->next = s->next;
	else if (s->wk->sessions == s)
		s->wk->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	atomic_fetch_sub(&s->gw->nclients, 1);
	atomic_fetch_sub(&s->wk->nconns, 1);
	gw_loop_defer_free(s->loop, session_free, s);
}

/* Send a FATAL error and end the session once it is written (or after a grace period). */
__attribute__((format(printf, 3, 4))) static void session_fatal(gw_session *s, const char *sqlstate, const char *fmt, ...)
{
	if (s->ended || s->closing)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_info("session %s: FATAL %s %s", s->reg ? s->reg->id : "-", sqlstate, msg);
	/*
	 * No second FATAL after the server's own (noise), and none while a server
	 * message is half passed on (a streamed DataRow or CopyData): it would
	 * land inside that message's body. The client sees the stream end
	 * instead, as when a server dies mid-message.
	 */
	if (!s->upstream_fatal && !s->sf.streaming)
		gw_pg_error(&s->cl.tx, "FATAL", sqlstate, msg, NULL, NULL);
	/* The server is of no more use to this client. */
	drop_upstream(s);
	int r = gw_conn_flush(&s->cl);
	if (r != 1) {
		session_end(s);
		return;
	}
	s->closing = true;
	s->close_deadline = gw_mono_us() + CLOSE_GRACE_US;
	gw_loop_watch(s->loop, &s->cl.io, EPOLLOUT);
}

/* ---- what the gateway puts in the server's stream: its own queries, denials ---- */

enum { GWQ_OWN = 1, GWQ_DENY = 2 };

/* Client statement names may not begin with this (the gateway's stand-in for denials lives there). */
#define RESERVED_PREFIX "pgmoat."

static struct gwq_ent *gwq_head(gw_session *s)
{
	return s->gwq_n ? &s->gwq[s->gwq_head] : NULL;
}

/* The head entry, when the responses arriving now are its. */
static struct gwq_ent *gwq_active(gw_session *s, uint8_t kind)
{
	struct gwq_ent *e = gwq_head(s);
	return e && e->kind == kind && e->at == s->rfq_recv ? e : NULL;
}

static void gwq_pop(gw_session *s)
{
	free(s->gwq[s->gwq_head].deny);
	memset(&s->gwq[s->gwq_head], 0, sizeof(s->gwq[0]));
	s->gwq_head = (s->gwq_head + 1) % (int)GW_ARRAY_LEN(s->gwq);
	s->gwq_n--;
}

static struct gwq_ent *gwq_push(gw_session *s, uint8_t kind)
{
	if (s->gwq_n == (int)GW_ARRAY_LEN(s->gwq))
		return NULL;
	struct gwq_ent *e = &s->gwq[(s->gwq_head + s->gwq_n) % (int)GW_ARRAY_LEN(s->gwq)];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->at = s->rfq_sent;
	s->gwq_n++;
	return e;
}

/* Queue sql to the server after everything the client sent so far. false when the queue is full. */
static bool gwq_send(gw_session *s, const char *sql, bool fatal_on_error)
{
	struct gwq_ent *e = gwq_push(s, GWQ_OWN);
	if (!e)
		return false;
	e->fatal_on_error = fatal_on_error;
	gw_pg_query(&s->up->tx, sql);
	return true;
}

/* A ReadyForQuery arrived: true when it is the gateway's own (swallow it). */
static bool gwq_ready(gw_session *s)
{
	if (gwq_active(s, GWQ_OWN)) {
		struct gwq_ent *e = gwq_head(s);
		if (e->capture && s->lookup_q) {
			if (!s->lookup_fail)
				gw_policy_lookup_done(&s->pol, s->lookup_q);
			gw_sqlc_unref(s->lookup_q);
			s->lookup_q = NULL;
		}
		gwq_pop(s);
		return true;
	}
	/* The client's: it ends group rfq_recv, and every denial in it. */
	while (gwq_active(s, GWQ_DENY))
		gwq_pop(s);
	if (s->rfq_recv < s->rfq_sent)
		s->rfq_recv++;
	return false;
}

/* ---- login tail and attaching a server ---- */

static void send_login_tail(gw_session *s)
{
	gw_pool_param_status(s->pool, &s->cl.tx, (const char *const *)s->set_kv);
	gw_pg_backend_key(&s->cl.tx, s->reg->cancel_pid, s->reg->cancel_key);
	gw_pg_ready(&s->cl.tx, 'I');
	s->login_done = true;
}


/*
 * "SET k = v; ..." for the client's startup settings into sql (NUL-ended);
 * only those the server does not already have when only_changed. Returns
 * false when there is nothing to set.
 */
static bool startup_sets(gw_session *s, gw_buf *sql, bool only_changed)
{
	/*
	 * set_config, not SET: a startup value is a string read as PostgreSQL
	 * reads its configuration (search_path "a, b" is two schemas), which SET
	 * with a quoted literal would take as one name.
	 */
	int n = 0;
	for (size_t i = 0; i < s->nset; i++) {
		const char *k = s->set_kv[2 * i], *v = s->set_kv[2 * i + 1];
		const char *cur = only_changed ? gw_server_param(s->srv, k) : NULL;
		if (cur && !strcmp(cur, v))
			continue;
		if (n++)
			gw_buf_append(sql, ", ", 2);
		else
			gw_buf_append(sql, "SELECT ", 7);
		gw_buf_append(sql, "pg_catalog.set_config(", 22);
		gw_pg_literal(sql, k);
		gw_buf_append(sql, ", ", 2);
		gw_pg_literal(sql, v);
		gw_buf_append(sql, ", false)", 8);
	}
	if (!n)
		return false;
	gw_buf_put_u8(sql, 0);
	return true;
}

static void attach(gw_session *s, gw_server *srv)
{
	s->srv = srv;
	s->up = gw_server_conn(srv);
	s->up->io.cb = session_server_io;
	s->up->io.ud = s;
	s->rfq_sent = s->rfq_recv = 0;
	s->unsynced = false;
	s->copy_in = false;
	s->copy_wait = false;
	memset(&s->sf, 0, sizeof(s->sf));
	gw_registry_set_upstream(s->gw->reg, s->reg, gw_pool_cfg(s->pool), gw_server_pid(srv), gw_server_key(srv));
	gwq_clear(s);
	/* Prelude: apply the client's startup parameters that the server does not already have. */
	gw_buf sql = {0};
	if (startup_sets(s, &sql, true))
		gwq_send(s, (const char *)gw_buf_rd(&sql), true);
	gw_buf_free(&sql);
	gw_loop_watch(s->loop, &s->up->io, EPOLLIN);
	atomic_store(&s->reg->state, 1);
}

static void on_server(void *arg, gw_server *srv, const char *err)
{
	gw_session *s = arg;
	s->wait = NULL;
	if (!srv) {
		session_fatal(s, "08006", "pgmoat: upstream for connection \"%s\" is unreachable: %s",
			gw_pool_cfg(s->pool)->name, err ? err : "unknown error");
		return;
	}
	attach(s, srv);
	if (!s->login_done)
		send_login_tail(s);
	run(s);
}

static void acquire(gw_session *s)
{
	if (s->srv || s->wait)
		return;
	atomic_store(&s->reg->state, 2);
	s->wait_since = gw_mono_us();
	gw_server *srv = gw_pool_acquire(s->pool, s->loop, on_server, s, &s->wait);
	if (srv)
		attach(s, srv);
}

/* ---- streaming of large messages (either direction) ---- */

/* Pass on a large message's header now and stream its body as it comes. */
static void stream_start(frame *f, gw_buf *rx, gw_buf *dst, uint8_t type, uint32_t len, bool discard)
{
	if (!discard)
		gw_buf_append(dst, gw_buf_rd(rx), 5);
	gw_buf_consume(rx, 5);
	f->streaming = true;
	f->discard = discard;
	f->type = type;
	f->remaining = len - 4;
}

/* Pass on as much of the streamed message's body as has arrived. */
static void stream_on(frame *f, gw_buf *rx, gw_buf *dst)
{
	size_t n = gw_buf_len(rx) < f->remaining ? gw_buf_len(rx) : f->remaining;
	if (!f->discard)
		gw_buf_append(dst, gw_buf_rd(rx), n);
	gw_buf_consume(rx, n);
	f->remaining -= n;
	if (!f->remaining)
		f->streaming = false;
}

/* ---- client -> server ---- */

static bool client_streamable(uint8_t type)
{
	return type == 'd';
}

/*
 * SPEC: DISCARD ALL and RESET ALL (client pools send them) put the session's
 * settings back to the server's defaults; the gateway then re-applies the
 * client's startup settings (and, in a read session, read-only mode),
 * pipelined right behind the client's message.
 */
static bool reapply_settings(gw_session *s)
{
	if (!s->nset)
		return true;
	gw_buf sql = {0};
	bool ok = !startup_sets(s, &sql, false) || gwq_send(s, (const char *)gw_buf_rd(&sql), false);
	gw_buf_free(&sql);
	if (!ok) /* the settings (read-only mode among them) could not be put back: the session cannot go on */
		session_fatal(s, "53400", "pgmoat: too many resets pipelined without reading the answers; "
			"the session's settings could not be re-applied");
	return ok;
}

/*
 * Without policies nothing else needs the parse tree, so a Query is parsed
 * here only when its text could hold a reset (keywords have no escaped
 * spellings); the decision itself is made on the parse tree. Only when the
 * reset is the message's last statement (a later SET in the message wins).
 */
static bool reapply_after_reset(gw_session *s, const uint8_t *body, size_t n)
{
	if (!s->nset || n == 0 || body[n - 1] != 0)
		return true;
	if (!strcasestr((const char *)body, "reset") && !strcasestr((const char *)body, "discard"))
		return true;
	gw_sqlc *q = gw_sqlcache_get(s->wk->sqlcache, (const char *)body, n - 1);
	bool ok = true;
	if (q->rc == 0 && q->sql.nstmts > 0 && (q->sql.stmts[q->sql.nstmts - 1].flags & GW_SQL_F_SESSION_RESET))
		ok = reapply_settings(s);
	gw_sqlc_unref(q);
	return ok;
}

/* Does this Query hold a COPY ... FROM STDIN (decided on the parse tree)? */
static bool copy_from_stdin(gw_session *s, const uint8_t *body, size_t n, gw_sqlc *q)
{
	if (!q) {
		if (n == 0 || body[n - 1] != 0 || !strcasestr((const char *)body, "copy"))
			return false; /* no COPY without the keyword (keywords have no escaped spellings) */
		q = gw_sqlcache_get(s->wk->sqlcache, (const char *)body, n - 1);
	} else {
		gw_sqlc_ref(q);
	}
	bool in = false;
	for (size_t i = 0; q->rc == 0 && i < q->sql.nstmts; i++)
		if (q->sql.stmts[i].flags & GW_SQL_F_COPY_IN)
			in = true;
	gw_sqlc_unref(q);
	return in;
}

/* ---- policy: decisions on the client's messages ---- */

/* A NUL-terminated string at *p within [*p, end); advances past it. NULL when malformed. */
static const char *take_str(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *z = *p < end ? memchr(*p, 0, (size_t)(end - *p)) : NULL;
	if (!z)
		return NULL;
	const char *r = (const char *)*p;
	*p = z + 1;
	return r;
}

/* A refusal the session makes itself (the protocol, a name, the catalog): ERROR sqlstate, rule, message. */
__attribute__((format(printf, 4, 5))) static void refusal(gw_decision *d, const char *sqlstate, const char *rule,
	const char *fmt, ...)
{
	memset(d, 0, sizeof(*d));
	d->verdict = GW_DECIDE_DENY;
	d->cls = GW_SQL_ADMIN;
	snprintf(d->sqlstate, sizeof(d->sqlstate), "%s", sqlstate);
	snprintf(d->rule, sizeof(d->rule), "%s", rule);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
}

static void log_denial(gw_session *s, const gw_decision *d)
{
	gw_info("session %s: denied identity=%s connection=%s class=%s rule=%s: %s", s->reg->id, s->ident.name,
		s->pol.connection, gw_sql_class_str((enum gw_sql_class)d->cls), d->rule, d->message);
}

/*
 * Refuse the message being handled: queue the denial and put in its place a
 * message that fails at once on the server without running anything — a
 * Query that does not parse (simple protocol, FunctionCall), or a Bind to a
 * statement that does not exist (extended protocol: the server then skips to
 * Sync, as for any error). Returns false when the queue is full.
 */
static bool deny(gw_session *s, const gw_decision *d, bool ext)
{
	struct gwq_ent *e = gwq_push(s, GWQ_DENY);
	if (!e) {
		session_fatal(s, "53400", "pgmoat: too many denied messages pipelined without reading the answers");
		return false;
	}
	e->ext = ext;
	e->deny = gw_xmalloc(sizeof(*d));
	*e->deny = *d;
	log_denial(s, d);
	if (ext) {
		size_t m = gw_buf_msg_begin(&s->up->tx, 'B');
		gw_buf_put_str(&s->up->tx, "");
		gw_buf_put_str(&s->up->tx, s->gw->denied_stmt);
		gw_buf_put_i16(&s->up->tx, 0);
		gw_buf_put_i16(&s->up->tx, 0);
		gw_buf_put_i16(&s->up->tx, 0);
		gw_buf_msg_end(&s->up->tx, m);
	} else {
		gw_pg_query(&s->up->tx, "pgmoat denied");
	}
	return true;
}

/* A statement in review: run it when its review was approved, else a denial naming the review. */
static bool review_passes(gw_session *s, const uint8_t *text, size_t len, gw_decision *d)
{
	int64_t id = 0;
	int r = gw_access_review_check(s->gw, &s->ident, s->pol.connection, d->by->pol->name, d->cls,
		(const char *)text, len, s->reg->id, &id);
	if (r == 0) {
		gw_info("session %s: statement runs under approved review #%lld", s->reg->id, (long long)id);
		return true;
	}
	d->verdict = GW_DECIDE_DENY;
	memcpy(d->sqlstate, "42501", 6);
	if (r < 0) {
		snprintf(d->message, sizeof(d->message), "pgmoat: the review store cannot answer, so the statement was not run");
		snprintf(d->detail, sizeof(d->detail), "rule: %s review (%s statements need a review).", d->by->pol->name,
			gw_sql_class_str((enum gw_sql_class)d->cls));
		snprintf(d->hint, sizeof(d->hint), "Retry later; see the gateway's log.");
		memcpy(d->sqlstate, "58030", 6);
		return false;
	}
	snprintf(d->message, sizeof(d->message), "pgmoat: statement requires review #%lld", (long long)id);
	snprintf(d->detail, sizeof(d->detail), "rule: policy %s review: %s statements need an approver's review. "
		"An approver runs: pgmoat review approve %lld", d->by->pol->name, gw_sql_class_str((enum gw_sql_class)d->cls),
		(long long)id);
	snprintf(d->hint, sizeof(d->hint), "Once review #%lld is approved, send the identical statement again on "
		"connection \"%s\": it runs once.", (long long)id, s->pol.connection);
	return false;
}

/* At the start of a group: take up grant changes; a change of read-only mode is applied upstream. */
static void policy_refresh(gw_session *s)
{
	if (!gw_pctx_refresh(&s->pol, gw_policy_now()))
		return;
	const char *v = s->pol.read_only ? "on" : "off";
	for (size_t i = 0; i < s->nset; i++)
		if (!strcmp(s->set_kv[2 * i], "default_transaction_read_only")) {
			free(s->set_kv[2 * i + 1]);
			s->set_kv[2 * i + 1] = gw_xstrdup(v);
		}
	char sql[80];
	snprintf(sql, sizeof(sql), "SET default_transaction_read_only = %s", v);
	gwq_send(s, sql, false);
}

enum { MSG_DONE = 0, MSG_ENDED = -1, MSG_WAIT = 1 };

/*
 * The gateway parses text as PostgreSQL does with standard_conforming_strings
 * on and an ASCII-safe client encoding. The server reports both; should a
 * server (its configuration, a role setting) say otherwise, nothing is run.
 */
static bool parser_state_ok(gw_session *s, gw_decision *d)
{
	const char *scs = gw_server_param(s->srv, "standard_conforming_strings");
	const char *enc = gw_server_param(s->srv, "client_encoding");
	if ((!scs || !strcmp(scs, "on")) && (!enc || gw_sql_encoding_safe(enc)))
		return true;
	refusal(d, "42501", "parser_safety", "pgmoat: the upstream session reads statement text differently from "
		"the gateway (standard_conforming_strings=%s, client_encoding=%s)", scs ? scs : "?", enc ? enc : "?");
	snprintf(d->detail, sizeof(d->detail), "rule: parser_safety. Policies are decided on the gateway's parse; "
		"it must match the server's.");
	snprintf(d->hint, sizeof(d->hint), "Keep standard_conforming_strings on and an ASCII-safe client_encoding "
		"such as UTF8 (check the server's and the role's settings).");
	return false;
}

/*
 * Decide q for the message being handled. MSG_DONE with *allow set, or
 * MSG_WAIT when a catalog lookup went out first (the message stays unread and
 * is decided again when the answer is in), or MSG_ENDED.
 */
static int policy_gate(gw_session *s, gw_sqlc *q, const uint8_t *text, size_t len, bool ext, bool *allow)
{
	gw_decision d;
	*allow = false;
	s->review_used = false;
	/* A failed lookup belongs to this message (it waited for it): used below or dropped. */
	gw_decision *failed = s->lookup_fail;
	s->lookup_fail = NULL;
	if (!parser_state_ok(s, &d)) {
		free(failed);
		return deny(s, &d, ext) ? MSG_DONE : MSG_ENDED;
	}
	gw_policy_decide(&s->pol, q, gw_policy_now(), &d);
	if (failed) {
		/* The lookup failed (e.g. the transaction is aborted): refuse with the server's reason. */
		bool ok = d.verdict != GW_DECIDE_LOOKUP || deny(s, failed, ext);
		free(failed);
		if (d.verdict == GW_DECIDE_LOOKUP)
			return ok ? MSG_DONE : MSG_ENDED;
	}
	if (d.verdict == GW_DECIDE_LOOKUP) {
		if (!s->unsynced) {
			gw_buf sql = {0};
			gw_policy_lookup_sql(&s->pol, q, &sql);
			bool sent = gwq_send(s, (const char *)gw_buf_rd(&sql), false);
			gw_buf_free(&sql);
			if (sent) {
				s->gwq[(s->gwq_head + s->gwq_n - 1) % (int)GW_ARRAY_LEN(s->gwq)].capture = true;
				gw_sqlc_ref(q);
				s->lookup_q = q;
				return MSG_WAIT;
			}
		}
		/* Mid-pipeline (or the queue is full): no lookup can go out now; decide on what is known (fail closed). */
		s->pol.no_lookup = true;
		gw_policy_decide(&s->pol, q, gw_policy_now(), &d);
		s->pol.no_lookup = false;
	}
	if (d.verdict == GW_DECIDE_REVIEW && review_passes(s, text, len, &d)) {
		d.verdict = GW_DECIDE_ALLOW;
		s->review_used = true;
	}
	if (d.verdict == GW_DECIDE_ALLOW) {
		*allow = true;
		return MSG_DONE;
	}
	return deny(s, &d, ext) ? MSG_DONE : MSG_ENDED;
}

/*
 * A message whose strings are malformed: refused as PostgreSQL refuses it
 * (ERROR 08P01, the session goes on), never passed on undecided.
 */
static int refuse_malformed(gw_session *s, const char *what, bool ext)
{
	gw_decision d;
	refusal(&d, "08P01", "protocol", "pgmoat: invalid %s message: its strings are not NUL-terminated "
		"within the message", what);
	return deny(s, &d, ext) ? MSG_DONE : MSG_ENDED;
}

/* ---- prepared statements, as the server knows them ---- */

#define MAX_PREPARED 10000

enum {
	PEND_PARSE,        /* Parse: ParseComplete */
	PEND_PREPARE,      /* SQL PREPARE: CommandComplete "PREPARE" */
	PEND_DEALLOCATE,   /* SQL DEALLOCATE [ALL]: CommandComplete "DEALLOCATE..." */
	PEND_DISCARD,      /* DISCARD ALL: CommandComplete "DISCARD ALL" */
	PEND_CLOSE,        /* Close of a statement (name) or a portal (no name effect): CloseComplete */
};

static void pend_add(gw_session *s, uint8_t kind, const char *name, gw_sqlc *q)
{
	if (s->pend_head > 0 && s->pend_head == s->npend)
		s->pend_head = s->npend = 0;
	if (s->npend == s->pend_cap) {
		if (s->pend_head > 0) {
			memmove(s->pend, s->pend + s->pend_head, (s->npend - s->pend_head) * sizeof(*s->pend));
			s->npend -= s->pend_head;
			s->pend_head = 0;
		} else {
			s->pend_cap = s->pend_cap ? 2 * s->pend_cap : 8;
			s->pend = gw_xrealloc(s->pend, s->pend_cap * sizeof(*s->pend));
		}
	}
	if (q)
		gw_sqlc_ref(q);
	s->pend[s->npend++] = (struct pending_prep){name ? gw_xstrdup(name) : NULL, q, s->rfq_sent, kind};
}

static void pend_pop(gw_session *s, bool apply)
{
	struct pending_prep *e = &s->pend[s->pend_head++];
	if (apply) {
		switch (e->kind) {
		case PEND_PARSE:
		case PEND_PREPARE:
			gw_pctx_prepare(&s->pol, e->name, e->q);
			break;
		case PEND_DEALLOCATE:
		case PEND_DISCARD:
		case PEND_CLOSE:
			if (e->name)
				gw_pctx_deallocate(&s->pol, e->name);
			else if (e->kind != PEND_CLOSE)
				gw_pctx_deallocate_all(&s->pol);
			break;
		}
	}
	free(e->name);
	gw_sqlc_unref(e->q);
}

/*
 * The server confirmed the oldest change of this kind: apply it. Changes to
 * statement names take effect in the gateway exactly when and in the order
 * they take effect on the server.
 */
static void pend_confirm(gw_session *s, uint8_t kind)
{
	if (s->pend_head < s->npend && s->pend[s->pend_head].kind == kind)
		pend_pop(s, true);
}

/* A group ended (ReadyForQuery): what it changed and the server did not confirm failed. */
static void pend_group_done(gw_session *s, uint64_t group)
{
	while (s->pend_head < s->npend && s->pend[s->pend_head].group <= group)
		pend_pop(s, false);
}

/* What name means now: a statement of this name waiting for confirmation (newest), or the confirmed one. */
static gw_sqlc *prepared_lookup(gw_session *s, const char *name)
{
	for (size_t i = s->npend; i > s->pend_head; i--) {
		const struct pending_prep *e = &s->pend[i - 1];
		if ((e->kind == PEND_PARSE || e->kind == PEND_PREPARE) && !strcmp(e->name, name))
			return e->q;
	}
	return gw_pctx_prepared(&s->pol, name);
}

static gw_sqlc *named_hook(void *ud, const char *name)
{
	return prepared_lookup(ud, name);
}

static bool name_reserved(const char *name)
{
	return !strncmp(name, RESERVED_PREFIX, strlen(RESERVED_PREFIX));
}

/* A refusal for a statement name the client may not use, or one too many. */
static bool refuse_name(gw_session *s, const char *name, bool ext)
{
	gw_decision d;
	if (name_reserved(name))
		refusal(&d, "42501", "reserved-name", "pgmoat: prepared statement names beginning with \"%s\" are "
			"reserved for the gateway", RESERVED_PREFIX);
	else
		refusal(&d, "54000", "limit", "pgmoat: too many prepared statements on this session (%d); "
			"DEALLOCATE some first", MAX_PREPARED);
	return deny(s, &d, ext);
}

/* Statement names an allowed Query prepares or drops; false when one of them must be refused first. */
static bool query_names_ok(gw_session *s, const gw_sqlc *q)
{
	size_t count = s->pol.prepared.n + (s->npend - s->pend_head);
	for (size_t i = 0; i < q->sql.nstmts; i++) {
		const char *n = q->sql.stmts[i].prepare_name;
		if (n && (name_reserved(n) || ++count > MAX_PREPARED))
			return refuse_name(s, n, false), false;
	}
	return true;
}

/* After an allowed Query or Bind is sent: its PREPARE / DEALLOCATE / DISCARD ALL wait for the server. */
static void note_names(gw_session *s, gw_sqlc *q)
{
	for (size_t i = 0; i < q->sql.nstmts; i++) {
		const gw_sql_stmt *st = &q->sql.stmts[i];
		if (st->prepare_name)
			pend_add(s, PEND_PREPARE, st->prepare_name, q);
		if (st->deallocate_name)
			pend_add(s, PEND_DEALLOCATE, st->deallocate_name, NULL);
		if (st->flags & GW_SQL_F_DEALLOCATE_ALL)
			pend_add(s, PEND_DEALLOCATE, NULL, NULL);
		if (st->flags & GW_SQL_F_SESSION_RESET && !strcmp(st->tag, "DISCARD"))
			pend_add(s, PEND_DISCARD, NULL, NULL);
	}
}

/* A simple Query under policy. */
static int policy_query(gw_session *s, const uint8_t *msg, size_t m)
{
	const uint8_t *body = msg + 5;
	size_t n = m - 5;
	if (n == 0 || body[n - 1] != 0 || memchr(body, 0, n) != body + n - 1) {
		int r = refuse_malformed(s, "Query", false);
		if (r == MSG_DONE)
			s->rfq_sent++;
		return r;
	}
	if (!s->unsynced)
		policy_refresh(s);
	gw_sqlc *q = gw_sqlcache_get(s->wk->sqlcache, (const char *)body, n - 1);
	bool allow = false;
	int r = MSG_DONE;
	if (q->rc == 0 && !query_names_ok(s, q)) {
		if (s->ended || s->closing)
			r = MSG_ENDED;
	} else {
		r = policy_gate(s, q, body, n - 1, false, &allow);
	}
	if (r == MSG_DONE) {
		if (allow) {
			gw_buf_append(&s->up->tx, msg, m);
			note_names(s, q);
			s->copy_wait = copy_from_stdin(s, body, n, q);
		}
		s->rfq_sent++;
		atomic_fetch_add(&s->reg->statements, 1);
		if (allow) {
			gw_pctx_ran(&s->pol, q);
			if (q->sql.nstmts && (q->sql.stmts[q->sql.nstmts - 1].flags & GW_SQL_F_SESSION_RESET) &&
				!reapply_settings(s))
				r = MSG_ENDED;
		}
	}
	gw_sqlc_unref(q);
	return r;
}

/* Parse under policy: decided here, remembered under the statement's name. */
static int policy_parse(gw_session *s, const uint8_t *msg, size_t m)
{
	const uint8_t *p = msg + 5, *end = msg + m;
	const char *name = take_str(&p, end), *text = name ? take_str(&p, end) : NULL;
	if (!text) {
		s->unsynced = true;
		return refuse_malformed(s, "Parse", true);
	}
	if (!s->unsynced)
		policy_refresh(s);
	if (name_reserved(name) || (*name && s->pol.prepared.n + (s->npend - s->pend_head) >= MAX_PREPARED)) {
		s->unsynced = true;
		return refuse_name(s, name, true) ? MSG_DONE : MSG_ENDED;
	}
	gw_sqlc *q = gw_sqlcache_get(s->wk->sqlcache, text, strlen(text));
	bool allow;
	/* (still "in sync" here at a group's first Parse: a catalog lookup may go out before it) */
	int r = policy_gate(s, q, (const uint8_t *)text, strlen(text), true, &allow);
	if (r == MSG_DONE) {
		s->unsynced = true;
		/*
		 * Remembered once the server confirms it (ParseComplete). A denied
		 * Parse never reaches the server: its name keeps whatever it meant.
		 * PostgreSQL drops the unnamed statement at every Parse, so does this.
		 */
		s->review_pass_set = false;
		if (allow) {
			if (!*name)
				gw_pctx_deallocate(&s->pol, ""); /* dropped by the server at every Parse */
			pend_add(s, PEND_PARSE, name, q); /* (a name in use: the server refuses it, 42P05, no ParseComplete) */
			gw_buf_append(&s->up->tx, msg, m);
			if (s->review_used) {
				snprintf(s->review_pass, sizeof(s->review_pass), "%s", name);
				s->review_pass_set = strlen(name) < sizeof(s->review_pass);
			}
		}
	}
	gw_sqlc_unref(q);
	return r;
}

/* Bind under policy: the prepared statement's decision is made again (grants and windows change). */
static int policy_bind(gw_session *s, const uint8_t *msg, size_t m)
{
	const uint8_t *p = msg + 5, *end = msg + m;
	const char *portal = take_str(&p, end), *name = portal ? take_str(&p, end) : NULL;
	if (!name) {
		s->unsynced = true;
		return refuse_malformed(s, "Bind", true);
	}
	s->unsynced = true;
	gw_sqlc *q = prepared_lookup(s, name);
	gw_decision d;
	if (!q) {
		refusal(&d, "26000", "unknown-statement", "pgmoat: prepared statement \"%.60s\" does not exist", name);
		snprintf(d.detail, sizeof(d.detail), "rule: unknown-statement. The gateway decides statements when they "
			"are prepared; this name was never prepared on this session.");
		return deny(s, &d, true) ? MSG_DONE : MSG_ENDED;
	}
	gw_policy_decide(&s->pol, q, gw_policy_now(), &d);
	if (d.verdict == GW_DECIDE_LOOKUP) {
		s->pol.no_lookup = true;
		gw_policy_decide(&s->pol, q, gw_policy_now(), &d);
		s->pol.no_lookup = false;
	}
	if (d.verdict == GW_DECIDE_REVIEW && s->review_pass_set && !strcmp(s->review_pass, name)) {
		s->review_pass_set = false;
		d.verdict = GW_DECIDE_ALLOW;
	}
	bool reset = q->sql.nstmts && (q->sql.stmts[q->sql.nstmts - 1].flags & GW_SQL_F_SESSION_RESET);
	if (d.verdict == GW_DECIDE_ALLOW && s->reset_in_group && s->pol.read_only && !reset) {
		d.verdict = GW_DECIDE_DENY;
		memcpy(d.sqlstate, "42501", 6);
		snprintf(d.rule, sizeof(d.rule), "read_only");
		snprintf(d.message, sizeof(d.message), "pgmoat: a read session runs nothing between a reset and the next Sync");
		snprintf(d.detail, sizeof(d.detail), "rule: read_only. Read-only mode is re-applied at the Sync that "
			"follows DISCARD ALL / RESET ALL.");
		snprintf(d.hint, sizeof(d.hint), "Send Sync right after the reset.");
	}
	if (d.verdict == GW_DECIDE_REVIEW && review_passes(s, (const uint8_t *)q->text, q->len, &d))
		d.verdict = GW_DECIDE_ALLOW; /* approved since its Parse: runs once */
	if (d.verdict != GW_DECIDE_ALLOW)
		return deny(s, &d, true) ? MSG_DONE : MSG_ENDED;
	if (reset)
		s->reset_in_group = true;
	s->copy_portal_set = false;
	for (size_t i = 0; i < q->sql.nstmts; i++)
		if ((q->sql.stmts[i].flags & GW_SQL_F_COPY_IN) && strlen(portal) < sizeof(s->copy_portal)) {
			snprintf(s->copy_portal, sizeof(s->copy_portal), "%s", portal);
			s->copy_portal_set = true;
		}
	gw_pctx_ran(&s->pol, q);
	note_names(s, q);
	gw_buf_append(&s->up->tx, msg, m);
	return MSG_DONE;
}

/* One whole client message. MSG_DONE, MSG_WAIT (leave it unread), or MSG_ENDED. */
static int client_message(gw_session *s, uint8_t type, const uint8_t *msg, size_t m)
{
	switch (type) {
	case 'X':
		/*
		 * Terminate. As with PostgreSQL, what the client sent before it
		 * still runs: pass it on now and do not cancel it. The server is
		 * closed unless in sync; its backend finishes that work, then exits.
		 */
		s->terminated = true;
		if (gw_buf_len(&s->up->tx))
			gw_conn_flush(s->up);
		session_end(s);
		return MSG_ENDED;
	case 'Q':
	case 'F':
		if (s->unsynced) {
			/*
			 * A Query or FunctionCall between extended-protocol messages and
			 * their Sync: PostgreSQL runs it, or skips it when the sequence
			 * already failed, so whether a ReadyForQuery follows is unknowable
			 * here. Refused as part of the sequence (ERROR 08P01; the server
			 * then skips to Sync), which keeps every response's owner certain.
			 */
			gw_decision d;
			refusal(&d, "08P01", "protocol", "pgmoat: a %s message inside an unfinished extended-protocol "
				"sequence is not supported; send Sync first", type == 'Q' ? "Query" : "FunctionCall");
			return deny(s, &d, true) ? MSG_DONE : MSG_ENDED;
		}
		if (type == 'F')
			break;
		if (s->policy_on)
			return policy_query(s, msg, m);
		s->rfq_sent++;
		atomic_fetch_add(&s->reg->statements, 1);
		gw_buf_append(&s->up->tx, msg, m);
		s->copy_wait = copy_from_stdin(s, msg + 5, m - 5, NULL);
		return reapply_after_reset(s, msg + 5, m - 5) ? MSG_DONE : MSG_ENDED;
	default:
		break;
	}
	switch (type) {
	case 'F':
		atomic_fetch_add(&s->reg->statements, 1);
		if (s->policy_on) {
			gw_decision d;
			gw_policy_decide(&s->pol, NULL, gw_policy_now(), &d);
			if (d.verdict != GW_DECIDE_ALLOW) {
				if (!deny(s, &d, false))
					return MSG_ENDED;
				s->rfq_sent++;
				return MSG_DONE;
			}
		}
		s->rfq_sent++;
		break;
	case 'S':
		/*
		 * PostgreSQL ignores Sync during COPY FROM STDIN, unless the COPY has
		 * just failed, when it answers it: not knowable here, so the gateway
		 * does not forward it (what PostgreSQL does while the COPY runs).
		 */
		if (s->copy_in)
			return MSG_DONE;
		s->rfq_sent++;
		s->unsynced = false;
		gw_buf_append(&s->up->tx, msg, m);
		if (s->reset_in_group) {
			s->reset_in_group = false;
			if (!reapply_settings(s))
				return MSG_ENDED;
		}
		return MSG_DONE;
	case 'E':
		atomic_fetch_add(&s->reg->statements, 1);
		s->unsynced = true;
		if (s->copy_portal_set && m > 5 && msg[m - 5] == 0 && !strcmp((const char *)msg + 5, s->copy_portal)) {
			/* Execute of a COPY FROM STDIN: read on once the server says whether it started */
			s->copy_portal_set = false;
			gw_buf_append(&s->up->tx, msg, m);
			s->copy_wait = true;
			return MSG_DONE;
		}
		break;
	case 'P':
		if (s->policy_on)
			return policy_parse(s, msg, m);
		s->unsynced = true;
		break;
	case 'B':
		if (s->policy_on)
			return policy_bind(s, msg, m);
		s->unsynced = true;
		break;
	case 'C':
		if (s->policy_on && m > 6 && msg[m - 1] == 0 && (msg[5] == 'S' || msg[5] == 'P'))
			pend_add(s, PEND_CLOSE, msg[5] == 'S' ? (const char *)msg + 6 : NULL, NULL);
		s->unsynced = true;
		break;
	case 'D':
		s->unsynced = true;
		break;
	case 'H':
		break; /* Flush neither opens a sequence nor can fail */
	case 'c':
	case 'f':
		s->copy_in = false;
		break;
	case 'd':
		break;
	default:
		session_fatal(s, "08P01", "pgmoat: invalid frontend message type %d", type);
		return MSG_ENDED;
	}
	gw_buf_append(&s->up->tx, msg, m);
	return MSG_DONE;
}

/* Returns 1 when it moved bytes, 0 when not, -1 when the session ended. */
static int process_client(gw_session *s)
{
	gw_buf *rx = &s->cl.rx;
	if (!gw_buf_len(rx))
		return 0;
	if (!s->srv) {
		/* A client that only says goodbye (health checks) needs no server. */
		if (!s->wait && gw_buf_len(rx) >= 5 && gw_buf_rd(rx)[0] == 'X' && gw_get_u32(gw_buf_rd(rx) + 1) == 4) {
			session_end(s);
			return -1;
		}
		acquire(s);
		if (!s->srv)
			return 0;
	}
	int moved = 0;
	size_t max = s->gw->cfg->max_message_size;
	while (gw_buf_len(rx) && gw_buf_len(&s->up->tx) < HIGH_WATER && !s->lookup_q && !s->copy_wait) {
		moved = 1;
		if (s->cf.streaming) {
			stream_on(&s->cf, rx, &s->up->tx);
			continue;
		}
		uint8_t type;
		uint32_t len;
		long m = gw_pg_frame(gw_buf_rd(rx), gw_buf_len(rx), max, &type, &len);
		if (m < 0) {
			session_fatal(s, "08P01", "pgmoat: invalid message length %u (type %d); the limit is %zu bytes",
				len, type, max);
			return -1;
		}
		if (m == 0) {
			if (gw_buf_len(rx) >= 5 && (size_t)len + 1 > STREAM_MIN && client_streamable(type)) {
				stream_start(&s->cf, rx, &s->up->tx, type, len, false);
				continue;
			}
			break;
		}
		int r = client_message(s, type, gw_buf_rd(rx), (size_t)m);
		if (r == MSG_ENDED)
			return -1;
		if (r == MSG_WAIT)
			break;
		gw_buf_consume(rx, (size_t)m);
	}
	return moved;
}

/* ---- server -> client ---- */

static bool server_streamable(uint8_t type)
{
	return type == 'D' || type == 'd';
}

/* A lookup's DataRow (text columns) to the policy. */
static void capture_row(gw_session *s, const uint8_t *body, size_t n)
{
	if (n < 2)
		return;
	int ncols = gw_get_u16(body);
	if (ncols > 8)
		return;
	char *cols[8] = {0};
	size_t off = 2;
	for (int i = 0; i < ncols; i++) {
		if (off + 4 > n)
			goto out;
		int32_t len = (int32_t)gw_get_u32(body + off);
		off += 4;
		if (len < 0)
			continue;
		if ((size_t)len > n - off)
			goto out;
		cols[i] = gw_xstrndup((const char *)body + off, (size_t)len);
		off += (size_t)len;
	}
	gw_policy_lookup_row(&s->pol, cols, ncols);
out:
	for (int i = 0; i < 8; i++)
		free(cols[i]);
}

/* A response to the gateway's own query: swallowed, except what belongs to the client anyway. */
static int own_message(gw_session *s, struct gwq_ent *e, uint8_t type, const uint8_t *msg, size_t m)
{
	const uint8_t *body = msg + 5;
	size_t n = m - 5;
	switch (type) {
	case 'E': {
		char text[300] = "", code[8] = "08P01";
		gw_pg_error_field(body, n, 'M', text, sizeof(text));
		gw_pg_error_field(body, n, 'C', code, sizeof(code));
		if (e->fatal_on_error) {
			session_fatal(s, code, "%s", text);
			return -1;
		}
		if (e->capture) {
			gw_decision *d = gw_xmalloc(sizeof(*d));
			refusal(d, code, "catalog", "pgmoat: the statement was not run: looking up what it calls failed: %s",
				text);
			snprintf(d->detail, sizeof(d->detail), "rule: catalog. The policy needs the catalog's answer "
				"(function volatility, table schemas) to decide.");
			free(s->lookup_fail);
			s->lookup_fail = d;
			return 0;
		}
		gw_warn("session %s: re-applying session settings failed: %s (%s)", s->reg->id, text, code);
		return 0;
	}
	case 'D':
		if (e->capture)
			capture_row(s, body, n);
		return 0;
	case 'S':
	case 'A':
		gw_buf_append(&s->cl.tx, msg, m);
		return 0;
	default:
		return 0;
	}
}

/* max_rows: the row about to pass is one too many. */
static bool over_max_rows(gw_session *s)
{
	if (!s->pol.max_rows || gwq_active(s, GWQ_OWN))
		return false;
	if (s->rows < s->pol.max_rows) {
		s->rows++;
		return false;
	}
	s->cut = true;
	return true;
}

/* The end of a result that max_rows cut: say so, and report the rows that were passed on. */
static void finish_cut(gw_session *s, const uint8_t *msg, size_t m)
{
	char tag[64] = "";
	size_t n = m - 5 < sizeof(tag) - 1 ? m - 5 : sizeof(tag) - 1;
	memcpy(tag, msg + 5, n);
	tag[n] = 0;
	char note[200];
	snprintf(note, sizeof(note), "pgmoat: result cut to %ld rows by guardrail max_rows (the statement's own "
		"count was \"%s\")", s->pol.max_rows, tag);
	gw_pg_notice(&s->cl.tx, note);
	const char *verb = NULL;
	if (!strncmp(tag, "SELECT ", 7))
		verb = "SELECT";
	else if (!strncmp(tag, "COPY ", 5))
		verb = "COPY";
	else if (!strncmp(tag, "FETCH ", 6))
		verb = "FETCH";
	if (verb) {
		char out[64];
		snprintf(out, sizeof(out), "%s %ld", verb, s->pol.max_rows);
		size_t k = gw_buf_msg_begin(&s->cl.tx, 'C');
		gw_buf_put_str(&s->cl.tx, out);
		gw_buf_msg_end(&s->cl.tx, k);
	} else {
		gw_buf_append(&s->cl.tx, msg, m);
	}
}

static int server_message(gw_session *s, uint8_t type, const uint8_t *msg, size_t m)
{
	const uint8_t *body = msg + 5;
	size_t n = m - 5;
	if (type == 'S') {
		const uint8_t *kend = memchr(body, 0, n);
		if (kend && memchr(kend + 1, 0, n - (size_t)(kend + 1 - body)))
			gw_server_set_param(s->srv, (const char *)body, (const char *)kend + 1);
	}
	if (type == 'Z') {
		s->txstatus = n ? (char)body[0] : 'I';
		gw_server_set_txstatus(s->srv, s->txstatus);
	}
	struct gwq_ent *own = gwq_active(s, GWQ_OWN);
	if (own) {
		if (type == 'Z') {
			gwq_ready(s);
			return 0;
		}
		return own_message(s, own, type, msg, m);
	}
	switch (type) {
	case 'G':
		s->copy_in = true;
		s->copy_wait = false;
		break;
	case 'Z':
		s->rows = 0;
		s->cut = false;
		s->copy_in = false;
		s->copy_wait = false;
		if (s->policy_on)
			pend_group_done(s, s->rfq_recv);
		gwq_ready(s);
		break;
	case '1':
		if (s->policy_on)
			pend_confirm(s, PEND_PARSE);
		break;
	case '3':
		if (s->policy_on)
			pend_confirm(s, PEND_CLOSE);
		break;
	case 'E': {
		s->rows = 0;
		s->cut = false;
		s->copy_in = false;
		s->copy_wait = false;
		struct gwq_ent *d = gwq_active(s, GWQ_DENY);
		if (d) {
			char text[200] = "";
			gw_pg_error_field(body, n, 'M', text, sizeof(text));
			if (!d->ext || strstr(text, s->gw->denied_stmt)) {
				gw_pg_error(&s->cl.tx, "ERROR", d->deny->sqlstate, d->deny->message,
					d->deny->detail[0] ? d->deny->detail : NULL, d->deny->hint[0] ? d->deny->hint : NULL);
				return 0;
			}
		}
		char sev[16] = "";
		if (!gw_pg_error_field(body, n, 'V', sev, sizeof(sev)))
			gw_pg_error_field(body, n, 'S', sev, sizeof(sev));
		if (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"))
			s->upstream_fatal = true;
		break;
	}
	case 'D':
	case 'd':
		if (over_max_rows(s))
			return 0;
		break;
	case 'C':
		if (s->policy_on && n >= 8 && !memcmp(body, "PREPARE", 8))
			pend_confirm(s, PEND_PREPARE);
		if (s->policy_on && n >= 11 && !memcmp(body, "DEALLOCATE", 10) && (body[10] == 0 || body[10] == ' '))
			pend_confirm(s, PEND_DEALLOCATE);
		if (s->policy_on && n >= 12 && !memcmp(body, "DISCARD ALL", 12))
			pend_confirm(s, PEND_DISCARD);
		if (s->cut) {
			finish_cut(s, msg, m);
			s->rows = 0;
			s->cut = false;
			return 0;
		}
		s->rows = 0;
		break;
	case 'I':
		s->rows = 0;
		break;
	case 'K':
	case 'R':
		session_fatal(s, "08006", "pgmoat: unexpected message '%c' from the upstream server", type);
		return -1;
	default:
		break;
	}
	gw_buf_append(&s->cl.tx, msg, m);
	return 0;
}

static int process_server(gw_session *s)
{
	if (!s->srv)
		return 0;
	gw_buf *rx = &s->up->rx;
	int moved = 0;
	while (gw_buf_len(rx) && gw_buf_len(&s->cl.tx) < HIGH_WATER) {
		moved = 1;
		if (s->sf.streaming) {
			stream_on(&s->sf, rx, &s->cl.tx);
			continue;
		}
		uint8_t type;
		uint32_t len;
		long m = gw_pg_frame(gw_buf_rd(rx), gw_buf_len(rx), UPSTREAM_MAX_MSG, &type, &len);
		if (m < 0) {
			session_fatal(s, "08006", "pgmoat: malformed message from the upstream server");
			return -1;
		}
		if (m == 0) {
			if (gw_buf_len(rx) >= 5 && (size_t)len + 1 > STREAM_MIN && server_streamable(type)) {
				stream_start(&s->sf, rx, &s->cl.tx, type, len, gwq_active(s, GWQ_OWN) || over_max_rows(s));
				continue;
			}
			break;
		}
		if (server_message(s, type, gw_buf_rd(rx), (size_t)m) < 0)
			return -1;
		if (s->srv)
			gw_buf_consume(rx, (size_t)m);
	}
	return moved;
}

/* ---- I/O ---- */

/*
 * True when rx starts with an incomplete message that is not being streamed
 * (a Query, Bind, ErrorResponse... larger than HIGH_WATER): only reading on
 * completes it, so the rx limit must not stop the read. Its size is bounded
 * by the frame limit checked when it is framed.
 */
static bool rx_partial(const gw_buf *rx, const frame *f)
{
	return !f->streaming && gw_buf_len(rx) >= 5 && (size_t)gw_get_u32(gw_buf_rd(rx) + 1) + 1 > gw_buf_len(rx);
}

static bool may_read_client(const gw_session *s)
{
	if (s->srv)
		return gw_buf_len(&s->up->tx) < HIGH_WATER &&
			(gw_buf_len(&s->cl.rx) < HIGH_WATER || rx_partial(&s->cl.rx, &s->cf));
	return gw_buf_len(&s->cl.rx) < HIGH_WATER;
}

static bool may_read_server(const gw_session *s)
{
	return s->srv && gw_buf_len(&s->cl.tx) < HIGH_WATER &&
		(gw_buf_len(&s->up->rx) < HIGH_WATER || rx_partial(&s->up->rx, &s->sf));
}

/*
 * Receive buffers are lent: an empty one goes back to the worker after each
 * pass and the next socket to read borrows it, so a busy worker allocates
 * none per query and an idle session holds none.
 */
static void rx_borrow(gw_session *s, gw_buf *rx)
{
	if (!rx->data && s->wk->scratch.data) {
		*rx = s->wk->scratch;
		memset(&s->wk->scratch, 0, sizeof(s->wk->scratch));
	}
}

static void rx_return(gw_session *s, gw_buf *rx)
{
	if (!rx->data || gw_buf_len(rx))
		return;
	if (!s->wk->scratch.data && rx->cap <= 4 * READ_CHUNK) {
		s->wk->scratch = *rx;
		gw_buf_reset(&s->wk->scratch);
		memset(rx, 0, sizeof(*rx));
	} else {
		gw_buf_release(rx);
	}
}

/* Read the client; -1 when the client is gone (session ended). */
static int read_client(gw_session *s)
{
	rx_borrow(s, &s->cl.rx);
	ssize_t r = gw_conn_recv(&s->cl, READ_CHUNK);
	if (r < 0) {
		if (s->cl.err[0])
			gw_debug("session %s: client: %s", s->reg->id, s->cl.err);
		session_end(s);
		return -1;
	}
	return r > 0;
}

static int read_server(gw_session *s)
{
	rx_borrow(s, &s->up->rx);
	ssize_t r = gw_conn_recv(s->up, READ_CHUNK);
	if (r < 0) {
		/* Pass on what the server said last (often a FATAL of its own). */
		process_server(s);
		if (s->ended || s->closing)
			return -1;
		session_fatal(s, "08006", "pgmoat: the upstream connection was lost%s%s",
			s->up && s->up->err[0] ? ": " : "", s->up ? s->up->err : "");
		return -1;
	}
	return r > 0;
}

static void update_watch(gw_session *s)
{
	uint32_t ev = 0;
	if (may_read_client(s))
		ev |= EPOLLIN;
	if (gw_buf_len(&s->cl.tx) || s->cl.want_write)
		ev |= EPOLLOUT;
	/*
	 * Nothing to read or write (back-pressure): watch errors only. EPOLLIN on
	 * a socket holding data we may not read yet would fire at once, every
	 * time (level-triggered), and spin the worker until the other side drains.
	 */
	gw_loop_watch(s->loop, &s->cl.io, ev ? ev : EPOLLERR);
	if (s->srv) {
		ev = 0;
		if (may_read_server(s))
			ev |= EPOLLIN;
		if (gw_buf_len(&s->up->tx) || s->up->want_write)
			ev |= EPOLLOUT;
		gw_loop_watch(s->loop, &s->up->io, ev ? ev : EPOLLERR);
	}
	if (s->reg) {
		atomic_store(&s->reg->bytes_in, s->cl.bytes_in);
		atomic_store(&s->reg->bytes_out, s->cl.bytes_out);
	}
	/* Idle sessions keep no buffer memory. */
	rx_return(s, &s->cl.rx);
	if (s->up)
		rx_return(s, &s->up->rx);
}

/* Move everything that can move, then flush both sides. */
static void run(gw_session *s)
{
	for (int round = 0; round < 64; round++) {
		int progress = 0, r;
		if ((r = process_client(s)) < 0)
			return;
		progress |= r;
		if ((r = process_server(s)) < 0)
			return;
		progress |= r;
		if (may_read_client(s) && gw_conn_has_pending(&s->cl)) {
			if ((r = read_client(s)) < 0)
				return;
			progress |= r;
		}
		if (may_read_server(s) && gw_conn_has_pending(s->up)) {
			if ((r = read_server(s)) < 0)
				return;
			progress |= r;
		}
		if (s->srv && gw_buf_len(&s->up->tx) && gw_conn_flush(s->up) < 0) {
			session_fatal(s, "08006", "pgmoat: cannot write to the upstream server: %s", s->up->err);
			return;
		}
		if (gw_buf_len(&s->cl.tx) && gw_conn_flush(&s->cl) < 0) {
			session_end(s);
			return;
		}
		if (!progress)
			break;
	}
	update_watch(s);
}

static void closing_io(gw_session *s)
{
	int r = gw_conn_flush(&s->cl);
	if (r != 1)
		session_end(s);
}

static void session_client_io(gw_io *io, uint32_t events)
{
	gw_session *s = io->ud;
	if (s->ended)
		return;
	if (s->closing) {
		closing_io(s);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && may_read_client(s) && read_client(s) < 0)
		return;
	if ((events & EPOLLOUT) && gw_conn_flush(&s->cl) < 0) {
		session_end(s);
		return;
	}
	run(s);
}

static void session_server_io(gw_io *io, uint32_t events)
{
	gw_session *s = io->ud;
	if (s->ended || s->closing || !s->srv)
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && may_read_server(s) && read_server(s) < 0)
		return;
	if ((events & EPOLLOUT) && gw_conn_flush(s->up) < 0) {
		session_fatal(s, "08006", "pgmoat: cannot write to the upstream server: %s", s->up->err);
		return;
	}
	run(s);
}

/* ---- start, tick, kill ---- */

static bool guc_name_ok(const char *k)
{
	if (!*k || strlen(k) > 63)
		return false;
	bool start = true;
	for (const char *p = k; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.' && !start) {
			start = true;
			continue;
		}
		if (!(isalpha(c) || c == '_' || (!start && (isdigit(c) || c == '$'))))
			return false;
		start = false;
	}
	return !start;
}

/*
 * Startup parameters a client may set on the server. Everything else is
 * refused: role, session_authorization and default_transaction_read_only
 * would change who the session runs as or lift a read-only floor, and an
 * unknown name could be any setting at all.
 */
static bool startup_param_allowed(const char *k)
{
	static const char *const allowed[] = {
		"application_name", "client_encoding", "datestyle", "intervalstyle", "timezone",
		"extra_float_digits", "search_path", "statement_timeout", "lock_timeout",
		"idle_in_transaction_session_timeout", "idle_session_timeout", "standard_conforming_strings",
		"bytea_output", "default_transaction_isolation", "geqo", "jit", "work_mem",
		"client_min_messages", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "timezone_abbreviations",
		"default_text_search_config", "xmlbinary", "xmloption", "row_security", "enable_seqscan",
		"plan_cache_mode", "join_collapse_limit", "from_collapse_limit", "temp_buffers", "maintenance_work_mem",
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(allowed); i++)
		if (!strcasecmp(k, allowed[i]))
			return true;
	return false;
}

static void add_set(gw_session *s, const char *k, const char *v)
{
	for (size_t i = 0; i < s->nset; i++)
		if (!strcasecmp(s->set_kv[2 * i], k)) {
			free(s->set_kv[2 * i + 1]);
			s->set_kv[2 * i + 1] = gw_xstrdup(v);
			return;
		}
	s->set_kv = gw_xrealloc(s->set_kv, (2 * s->nset + 3) * sizeof(char *));
	char *lk = gw_xstrdup(k);
	for (char *p = lk; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	s->set_kv[2 * s->nset] = lk;
	s->set_kv[2 * s->nset + 1] = gw_xstrdup(v);
	s->nset++;
	s->set_kv[2 * s->nset] = NULL;
}

/*
 * Split libpq's "options" (-c name=value, --name=value; backslash escapes a
 * space) into parameters. Returns NULL, or the offending word.
 */
static const char *parse_options(gw_session *s, const char *opts, char *bad, size_t badlen)
{
	const char *p = opts;
	bool want_c_arg = false;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char word[1024];
		size_t wl = 0;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			if (wl + 1 < sizeof(word))
				word[wl++] = *p;
			p++;
		}
		word[wl] = 0;
		const char *assign = NULL;
		if (want_c_arg) {
			assign = word;
			want_c_arg = false;
		} else if (!strcmp(word, "-c")) {
			want_c_arg = true;
			continue;
		} else if (!strncmp(word, "-c", 2)) {
			assign = word + 2;
		} else if (!strncmp(word, "--", 2)) {
			assign = word + 2;
		} else {
			snprintf(bad, badlen, "%s", word);
			return bad;
		}
		char *eq = strchr(assign, '=');
		if (!eq) {
			snprintf(bad, badlen, "%s", word);
			return bad;
		}
		*eq = 0;
		char name[128];
		snprintf(name, sizeof(name), "%s", assign);
		for (char *q = name; *q; q++)
			if (*q == '-')
				*q = '_';
		if (!guc_name_ok(name) || !startup_param_allowed(name)) {
			snprintf(bad, badlen, "%s", name);
			return bad;
		}
		add_set(s, name, eq + 1);
	}
	if (want_c_arg) {
		snprintf(bad, badlen, "-c");
		return bad;
	}
	return NULL;
}

void gw_session_start(gw_worker *wk, gw_conn *conn, const struct sockaddr_storage *addr,
	const gw_identity *ident, gw_pool *pool, gw_pg_startup *startup, const char *auth_method)
{
	gw_session *s = gw_xcalloc(1, sizeof(*s));
	s->wk = wk;
	s->gw = wk->gw;
	s->loop = wk->loop;
	s->cl = *conn;
	memset(conn, 0, sizeof(*conn));
	conn->io.fd = -1;
	s->cl.io.cb = session_client_io;
	s->cl.io.ud = s;
	s->cl.io.events = 0;
	s->addr = *addr;
	s->ident = *ident;
	s->pool = pool;
	s->txstatus = 'I';
	s->next = wk->sessions;
	if (wk->sessions)
		wk->sessions->prev = s;
	wk->sessions = s;

	gw_reg_entry tmpl;
	memset(&tmpl, 0, sizeof(tmpl));
	snprintf(tmpl.identity, sizeof(tmpl.identity), "%s", ident->name);
	snprintf(tmpl.connection, sizeof(tmpl.connection), "%s", gw_pool_cfg(pool)->name);
	gw_addr_str(addr, tmpl.client_addr, sizeof(tmpl.client_addr));
	const char *app = gw_pg_startup_get(startup, "application_name");
	snprintf(tmpl.application_name, sizeof(tmpl.application_name), "%s", app ? app : "");
	snprintf(tmpl.tls, sizeof(tmpl.tls), "%s", s->cl.tls ? gw_tls_version(s->cl.tls) : "none");
	snprintf(tmpl.token_id, sizeof(tmpl.token_id), "%s", ident->token_id);
	tmpl.session = s;
	tmpl.loop = s->loop;
	s->reg = gw_registry_add(s->gw->reg, &tmpl);

	gw_info("session %s opened: identity=%s kind=%s connection=%s client=%s tls=%s auth=%s application_name=%s",
		s->reg->id, ident->name, ident->kind, tmpl.connection, tmpl.client_addr, tmpl.tls, auth_method,
		tmpl.application_name);

	gw_pg_auth(&s->cl.tx, PG_AUTH_OK, NULL, 0);
	for (size_t i = 0; i < startup->nparams; i++) {
		const char *k = startup->params[i].key, *v = startup->params[i].value;
		if (!strcmp(k, "user") || !strcmp(k, "database"))
			continue;
		if (!strcmp(k, "options")) {
			char bad[128];
			if (parse_options(s, v, bad, sizeof(bad))) {
				session_fatal(s, "0A000", "pgmoat: unsupported startup option \"%s\": only -c name=value "
					"for session settings such as statement_timeout is passed on", bad);
				return;
			}
			continue;
		}
		if (!strcmp(k, "replication")) {
			session_fatal(s, "0A000", "pgmoat: replication connections are not supported through the gateway");
			return;
		}
		if (!strncmp(k, "_pq_.", 5))
			continue;
		if (!guc_name_ok(k) || !startup_param_allowed(k)) {
			session_fatal(s, "42501", "pgmoat: startup parameter \"%s\" cannot be set through the gateway", k);
			return;
		}
		add_set(s, k, v);
	}
	for (size_t i = 0; s->gw->cfg->has_policies && i < s->nset; i++) {
		const char *k = s->set_kv[2 * i], *v = s->set_kv[2 * i + 1];
		if ((!strcmp(k, "client_encoding") && !gw_sql_encoding_safe(v)) ||
			(!strcmp(k, "standard_conforming_strings") && strcasecmp(v, "on"))) {
			session_fatal(s, "42501", "pgmoat: startup parameter %s=%s would make PostgreSQL read statements "
				"differently from the gateway's policy parser; use UTF8 and standard_conforming_strings=on", k, v);
			return;
		}
	}
	if (s->gw->cfg->has_policies) {
		s->policy_on = true;
		gw_pctx_init(&s->pol, s->gw->cfg, s->gw->grants, ident->name, ident->groups, tmpl.connection);
		s->pol.stats = gw_sqlcache_stats(wk->sqlcache);
		s->pol.named = named_hook;
		s->pol.named_ud = s;
		uint8_t rnd[8];
		gw_random_bytes(rnd, sizeof(rnd));
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(s->pol.nonce + 2 * i, 3, "%02x", rnd[i]);
		const char *sp = NULL;
		for (size_t i = 0; i < s->nset; i++)
			if (!strcmp(s->set_kv[2 * i], "search_path"))
				sp = s->set_kv[2 * i + 1];
		gw_pctx_share(&s->pol, s->gw->catcaches[gw_pool_cfg(pool) - s->gw->cfg->conns], sp);
		/* A read session runs read-only upstream; the client cannot set this itself (startup_param_allowed). */
		add_set(s, "default_transaction_read_only", s->pol.read_only ? "on" : "off");
		if (!s->pol.nents)
			gw_info("session %s: no policy or grant allows identity %s on %s: every statement will be denied",
				s->reg->id, ident->name, tmpl.connection);
	}
	if (gw_pool_has_params(s->pool)) {
		/* Known parameters: finish the login now, take a server at the first query. */
		send_login_tail(s);
	} else {
		acquire(s);
		if (s->srv)
			send_login_tail(s);
	}
	run(s);
}

void gw_session_tick(gw_worker *wk)
{
	uint64_t now = gw_mono_us();
	uint64_t wait_max = wk->gw->cfg->pool_wait_timeout_us;
	for (gw_session *s = wk->sessions, *next; s; s = next) {
		next = s->next;
		if (s->closing && now >= s->close_deadline) {
			session_end(s);
			continue;
		}
		if (s->policy_on && !s->closing) {
			bool expired = false;
			int64_t g = gw_pctx_lost_grant(&s->pol, gw_policy_now(), &expired);
			if (g) {
				session_fatal(s, "57P01", "pgmoat: grant #%lld %s; the session relied on it", (long long)g,
					expired ? "expired" : "was revoked");
				continue;
			}
		}
		if (s->wait && now - s->wait_since > wait_max) {
			const gw_conn_cfg *cc = gw_pool_cfg(s->pool);
			session_fatal(s, "53300", "pgmoat: no upstream connection for \"%s\" became free in time "
				"(pool size %d is in use); try again later or raise pool.size", cc->name, cc->pool_size);
		}
	}
}

typedef struct kill_task {
	gw_gateway *gw;
	gw_session *s;
	char id[40];
} kill_task;

static void do_kill(void *arg)
{
	kill_task *k = arg;
	if (gw_registry_alive(k->gw->reg, k->id, k->s))
		session_fatal(k->s, "57P01", "pgmoat: session terminated by an administrator");
	free(k);
}

int gw_session_kill(gw_gateway *gw, const char *id)
{
	gw_loop *loop;
	gw_session *s;
	if (!gw_registry_locate(gw->reg, id, &loop, &s))
		return -1;
	kill_task *k = gw_xcalloc(1, sizeof(*k));
	k->gw = gw;
	k->s = s;
	snprintf(k->id, sizeof(k->id), "%s", id);
	gw_loop_post(loop, do_kill, k);
	return 0;
}

void gw_session_close_all(gw_worker *wk)
{
	while (wk->sessions) {
		gw_session *s = wk->sessions;
		if (!s->sf.streaming) /* not inside a half-passed server message */
			gw_pg_error(&s->cl.tx, "FATAL", "57P01", "pgmoat: the gateway is shutting down", NULL, NULL);
		gw_conn_flush(&s->cl);
		session_end(s);
	}
}
