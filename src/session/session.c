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
#include "audit/audit.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "access/access.h"
#include "core/clock.h"
#include "mask/mask.h"
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
		bool mcat;             /* OWN: the masking catalog; rows go to s->mcat_new */
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

	/*
	 * The record (audit/). Every statement gets an event before it is
	 * forwarded: the client message that carries it (Query, Execute,
	 * FunctionCall) is held back — with whatever the gateway queued right
	 * behind it — until the writer says its events are committed; then it
	 * goes on, or, when the store could not commit, is refused (58030).
	 * Client input is not read meanwhile, so order is kept.
	 */
	uint32_t stmt_n;       /* statements recorded so far (the record's n) */
	uint64_t opened_wall, opened_mono;
	char auth_method[24];
	char end_reason[200];
	gw_audit_ev *evs, **evs_tail; /* events of the message being handled */
	size_t nevs;
	/* what the message being handled is, for its refusal's record */
	bool cur_set;
	gw_sqlc *cur_q;
	const char *cur_proto;
	const char *cur_params;  /* JSON array or NULL */
	/* the decision that allowed it (policy) */
	int dec_cls;
	const char *dec_rule;
	int64_t dec_grant, dec_review;
	/* the held message */
	bool hold_set;         /* the message being handled forwarded a recorded message */
	size_t hold_off, hold_len;
	int hold_gwq;
	uint64_t hold_at;
	bool hold_ext;
	size_t hold_infl;
	bool aud_wait;         /* held until the worker's group holding its events is committed */
	uint64_t aud_round;    /* ... the group of this round (gw_worker.aud_round) */
	gw_buf held;
	struct gw_session *aud_prev, *aud_next; /* the worker's waiting sessions */
	/* statements forwarded and not yet answered, in order: their outcome is recorded when it comes */
	struct inflight {
		uint32_t n;
		uint64_t group;
		uint64_t start_us;
		/* masking: what the statement is and how its rows are masked */
		gw_sqlc *q;        /* a reference, or NULL (FunctionCall, unknown portal) */
		uint32_t i;        /* statement i of q */
		bool simple;       /* its RowDescription comes in its own response (simple Query) */
		bool plan_known;   /* plan was decided (NULL: nothing to mask) */
		gw_mask_plan *plan;
		char *portal;      /* Execute: rows follow the portal's plan as the server confirmed it */
		uint64_t masked;   /* values masked in its result */
	} *infl;
	size_t infl_head, infl_n, infl_cap;
	uint64_t res_rows;     /* DataRows of the current result */
	/* portals: a Bind's statement and parameters, for its Execute's record */
	struct pbind {
		char *portal;
		gw_sqlc *q;        /* NULL: the Bind was refused */
		char *params;      /* JSON array */
		uint64_t group;
		char *stmt;        /* masking: the statement bound, and the result formats asked for */
		uint8_t *fmts;
		int nfmts;
		bool plan_known;
		gw_mask_plan *plan;
		bool described;    /* a Describe of this portal was sent in group described_at */
		uint64_t described_at;
	} *pb;
	size_t pb_head, pb_n, pb_cap;  /* sent, not yet confirmed by BindComplete */
	gw_map portals;        /* confirmed: name → struct pbind* */

	/*
	 * Masking (mask/): NULL when off for this session (no masking:, or the
	 * identity is exempt). Rows are rewritten by the plan of the statement
	 * they answer; a result whose description the gateway does not know is
	 * masked whole.
	 */
	gw_masker *mk;
	gw_mask_cat *mcat_new; /* a catalog snapshot being read (OWN query) */
	bool mask_wait;        /* a write waits for that snapshot before it is decided (client input waits) */
	struct mdesc {         /* Describes sent, in order: their RowDescription / NoData answers them */
		uint8_t kind;      /* 'S' or 'P' */
		char *name;
		uint64_t group;
		bool own;          /* the gateway's, before an Execute of a portal nobody described: swallowed */
		gw_sqlc *q;        /* Describe S: the statement the name meant when it was sent (a reference) */
	} *md;
	size_t md_head, md_n, md_cap;
	gw_map splans;         /* prepared statement name → struct splan* (from Describe S) */
	/*
	 * COPY ... TO STDOUT under masking: from CopyOutResponse to its
	 * CommandComplete / ErrorResponse, its CopyData rows are rewritten by
	 * copy_st following copy_plan (NULL: they pass as they are). When its
	 * options cannot be known (copy_withheld) no row passes.
	 */
	gw_mask_plan *copy_plan;
	gw_mask_copy_state *copy_st;
	bool copy_withheld;
	char copy_why[160];    /* why it was withheld */
	bool txn_tainted;      /* a statement of the current transaction read masked columns (notifications) */
	/*
	 * The external DLP provider (masking.provider: presidio): rows whose text
	 * it must read wait here, whole, in order; while a job is out the
	 * server's messages wait unread behind them.
	 */
	gw_buf dlp_rows;
	size_t dlp_nrows, dlp_nvals, dlp_bytes; /* rows held, and the values and bytes of text they give the provider */
	gw_dlp_job *dlp_job;
	bool dlp_refused;      /* the provider failed (on_error: block): the rest of this result is dropped */
	char dlp_why[240];
};

struct splan {
	gw_mask_plan *plan;    /* NULL: nothing to mask */
};

static void session_client_io(gw_io *io, uint32_t events);
static void session_server_io(gw_io *io, uint32_t events);
static void run(gw_session *s);
static void pbind_free(struct pbind *b);
static void portal_free_v(void *v);
static bool submit_events(gw_session *s);
static void outcome_session_end(gw_session *s);
static void waiting_remove(gw_session *s);
static void rec_session_close(gw_session *s);
static void splan_free_v(void *v);
static void mask_cat_load(gw_session *s);
static const struct pbind *portal_lookup(gw_session *s, const char *portal);
static gw_sqlc *prepared_lookup(gw_session *s, const char *name);
static bool stmt_tainted(gw_session *s, const struct inflight *f);

/*
 * Room for one more entry at the end of a FIFO kept as an array with a head
 * index (pending names, pending Binds): reset when drained, slid down when
 * the front is free, else grown. Returns the (possibly moved) array.
 */
static void *fifo_room(void *v, size_t *head, size_t *n, size_t *cap, size_t elem)
{
	if (*head > 0 && *head == *n)
		*head = *n = 0;
	if (*n < *cap)
		return v;
	if (*head > 0) {
		memmove(v, (char *)v + *head * elem, (*n - *head) * elem);
		*n -= *head;
		*head = 0;
		return v;
	}
	*cap = *cap ? 2 * *cap : 8;
	return gw_xrealloc(v, *cap * elem);
}

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
	gw_pctx_free(&s->pol);
	for (gw_audit_ev *e = s->evs, *n; e; e = n) {
		n = e->next;
		free(e);
	}
	gw_buf_free(&s->held);
	for (size_t i = 0; i < s->infl_n; i++) {
		struct inflight *f = &s->infl[(s->infl_head + i) % s->infl_cap];
		gw_sqlc_unref(f->q);
		gw_mask_plan_free(f->plan);
		free(f->portal);
	}
	free(s->infl);
	for (size_t i = s->md_head; i < s->md_n; i++) {
		free(s->md[i].name);
		gw_sqlc_unref(s->md[i].q);
	}
	free(s->md);
	gw_map_clear(&s->splans, splan_free_v);
	gw_mask_plan_free(s->copy_plan);
	gw_mask_copy_free(s->copy_st);
	if (s->mcat_new)
		gw_mask_cat_abandon(s->mcat_new);
	if (s->dlp_job)
		gw_dlp_orphan(s->gw->dlp, s->dlp_job); /* its answer frees it */
	gw_buf_free(&s->dlp_rows);
	for (size_t i = s->pb_head; i < s->pb_n; i++)
		pbind_free(&s->pb[i]);
	free(s->pb);
	gw_map_clear(&s->portals, portal_free_v);
	for (size_t i = 0; i < 2 * s->nset; i++)
		free(s->set_kv[i]);
	free(s->set_kv);
	free(s);
}

static bool in_sync(const gw_session *s)
{
	return !s->wk->stopping && s->rfq_sent == s->rfq_recv && !s->unsynced && !s->cf.streaming && !s->sf.streaming &&
		s->gwq_n == 0 && !s->aud_wait && (!s->up || gw_buf_len(&s->up->rx) == 0);
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
		gw_upstream_cancel(gw_pool_cfg(s->pool), s->wk->gw->hub, gw_server_pid(s->srv), gw_server_key(s->srv));
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
		/* the record: events of a message cut short, outcomes never answered, the close */
		if (s->evs) {
			s->hold_set = false;
			submit_events(s);
		}
		outcome_session_end(s);
		waiting_remove(s);
		rec_session_close(s);
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
	snprintf(s->end_reason, sizeof(s->end_reason), "FATAL %s %s", sqlstate, msg);
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
		if (e->mcat && s->mcat_new) {
			gw_mask_cat_install(s->mk, gw_pool_cfg(s->pool)->name, s->mcat_new);
			s->mcat_new = NULL;
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
	s->txstatus = 'I';
	mask_cat_load(s);
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

/* Does this Query hold a COPY ... FROM STDIN (decided on the parse tree)? */
static bool copy_from_stdin(const gw_sqlc *q)
{
	for (size_t i = 0; q->rc == 0 && i < q->sql.nstmts; i++)
		if (q->sql.stmts[i].flags & GW_SQL_F_COPY_IN)
			return true;
	return false;
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
static void rec_refusal(gw_session *s, const gw_decision *d);

static bool deny(gw_session *s, const gw_decision *d, bool ext)
{
	rec_refusal(s, d);
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
		s->dec_review = id;
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
	d->review = id;
	snprintf(d->message, sizeof(d->message), "pgmoat: statement requires review #%lld", (long long)id);
	snprintf(d->detail, sizeof(d->detail), "rule: policy %s review: %s statements need an approver's review. "
		"An approver runs: pgmoat review approve %lld", d->by->pol->name, gw_sql_class_str((enum gw_sql_class)d->cls),
		(long long)id);
	snprintf(d->hint, sizeof(d->hint), "Once review #%lld is approved, send the identical statement again on "
		"connection \"%s\": it runs once.", (long long)id, s->pol.connection);
	return false;
}

/* ---- the record: events, write-ahead hold, outcomes ---- */

#define REC_TEXT_MAX (1u << 20)  /* statement text recorded whole up to 1 MiB; beyond, cut, with its length and SHA-256 */
#define REC_PARAM_MAX 4096u       /* a parameter recorded whole up to this; beyond, its head, length and SHA-256 */
#define MAX_PORTALS 10000

/* The worker's buffer for building an event (its memory is reused: no allocation per event). */
static gw_buf ev_buf(gw_session *s)
{
	gw_buf b = s->wk->evbuf;
	s->wk->evbuf = (gw_buf){0};
	gw_buf_reset(&b);
	return b;
}

static void ev_buf_done(gw_session *s, gw_buf *b)
{
	gw_buf_free(&s->wk->evbuf);
	s->wk->evbuf = *b;
}

/* "ts","event","session",["n",]"identity","connection" */
static void ev_head(gw_session *s, gw_buf *b, uint64_t wall, const char *event, uint32_t n)
{
	gw_audit_ev_begin(b, wall, event);
	gw_json_key(b, "session", false);
	gw_json_cstr(b, s->reg->id);
	if (n) {
		gw_json_key(b, "n", false);
		gw_json_int(b, n);
	}
	gw_json_key(b, "identity", false);
	gw_json_cstr(b, s->ident.name);
	gw_json_key(b, "connection", false);
	gw_json_cstr(b, gw_pool_cfg(s->pool)->name);
}

/* Add events to the worker's next group, in order. */
static void worker_add(gw_worker *wk, gw_audit_ev *list, size_t k)
{
	if (!list)
		return;
	*wk->aud_tail = list;
	while (list->next)
		list = list->next;
	wk->aud_tail = &list->next;
	wk->aud_nevs += k;
}

/* An event nothing waits for (session, outcome): it goes with the worker's next group. */
static void ev_submit_now(gw_session *s, uint8_t kind, uint64_t wall, uint32_t n, const gw_buf *b)
{
	worker_add(s->wk, gw_audit_ev_new(kind, wall, s->reg->id, s->ident.name, n, b), 1);
}

/* An event of the message being handled: submitted after it, before anything it forwards. */
static void ev_add(gw_session *s, uint8_t kind, uint64_t wall, uint32_t n, const gw_buf *b)
{
	gw_audit_ev *e = gw_audit_ev_new(kind, wall, s->reg->id, s->ident.name, n, b);
	*s->evs_tail = e;
	s->evs_tail = &e->next;
	s->nevs++;
}

/* Text as a JSON string, cut at max bytes (on a character boundary); true when cut. */
static bool json_text_capped(gw_buf *b, const char *t, size_t n, size_t max)
{
	if (n <= max) {
		gw_json_text(b, t, n);
		return false;
	}
	size_t k = max;
	while (k > 0 && ((unsigned char)t[k] & 0xC0) == 0x80)
		k--;
	gw_json_text(b, t, k);
	return true;
}

static void json_sha256(gw_buf *b, const void *p, size_t n)
{
	uint8_t h[32];
	char hex[65];
	gw_sha256(p, n, h);
	gw_hex(h, 32, hex);
	gw_json_cstr(b, hex);
}

/*
 * Bound parameters (Bind, FunctionCall), p at the format-code count, as a
 * JSON array: text values as text, binary ones as "\\x<hex>", NULL as null;
 * a long value as {"bytes","sha256","head"}. NULL when malformed (the
 * server refuses such a message).
 */
static char *params_json(const uint8_t *p, const uint8_t *end)
{
	gw_buf b = {0};
	if (end - p < 2)
		return NULL;
	size_t nfmt = gw_get_u16(p);
	p += 2;
	if ((size_t)(end - p) < 2 * nfmt + 2)
		return NULL;
	const uint8_t *fmts = p;
	p += 2 * nfmt;
	size_t np = gw_get_u16(p);
	p += 2;
	if (nfmt > 1 && nfmt != np)
		return NULL;
	gw_buf_append(&b, "[", 1);
	for (size_t i = 0; i < np; i++) {
		if (end - p < 4)
			goto bad;
		int32_t len = (int32_t)gw_get_u32(p);
		p += 4;
		if (i)
			gw_buf_append(&b, ",", 1);
		if (len == -1) {
			gw_json_raw(&b, "null");
			continue;
		}
		if (len < 0 || len > end - p)
			goto bad;
		bool binary = nfmt == 1 ? gw_get_u16(fmts) == 1 : nfmt > 1 && gw_get_u16(fmts + 2 * i) == 1;
		size_t show = (size_t)len <= REC_PARAM_MAX ? (size_t)len : 1024;
		if (show < (size_t)len) {
			gw_json_raw(&b, "{\"bytes\":");
			gw_json_int(&b, len);
			gw_json_key(&b, "sha256", false);
			json_sha256(&b, p, (size_t)len);
			gw_json_key(&b, "head", false);
		}
		if (binary)
			gw_json_hex(&b, p, show);
		else
			json_text_capped(&b, (const char *)p, (size_t)len, show);
		if (show < (size_t)len)
			gw_buf_append(&b, "}", 1);
		p += len;
	}
	gw_buf_append(&b, "]", 2); /* with its NUL */
	char *out = gw_xstrdup((const char *)gw_buf_rd(&b));
	gw_buf_free(&b);
	return out;
bad:
	gw_buf_free(&b);
	return NULL;
}

/*
 * A statement event: statement i of q (or text, for a FunctionCall), how it
 * came (protocol, params), and the decision — d for a refusal, else the
 * allowing decision the session noted (dec_*).
 */
static void rec_statement(gw_session *s, gw_sqlc *q, size_t i, const char *text, const char *proto,
	const char *params, const gw_decision *d)
{
	const gw_config *cfg = s->gw->cfg;
	uint32_t n = ++s->stmt_n;
	uint64_t wall = gw_wall_us();
	gw_buf b = ev_buf(s);
	ev_head(s, &b, wall, "statement", n);
	int64_t grant = d ? (d->by ? d->by->grant_id : 0) : s->dec_grant;
	gw_json_key(&b, "grant", false);
	if (grant)
		gw_json_int(&b, grant);
	else
		gw_json_raw(&b, "null");
	gw_json_key(&b, "protocol", false);
	gw_json_cstr(&b, proto);
	char fp[17];
	gw_sqlc_view v = {text ? text : "", text ? strlen(text) : 0, NULL, fp};
	if (q)
		gw_sqlc_view_of(q, i, cfg->audit_normalized, &v); /* its fingerprint made once per cached text */
	else
		gw_sql_fingerprint(v.text, v.len, fp);
	const char *st = v.text;
	size_t stn = v.len;
	if (q && cfg->audit_normalized) {
		st = v.normalized;
		stn = strlen(st);
	}
	gw_json_key(&b, "statement", false);
	if (json_text_capped(&b, st, stn, REC_TEXT_MAX)) {
		gw_json_key(&b, "statement_bytes", false);
		gw_json_int(&b, (int64_t)stn);
		gw_json_key(&b, "statement_sha256", false);
		json_sha256(&b, st, stn);
	}
	if (params && !cfg->audit_normalized) {
		gw_json_key(&b, "params", false);
		gw_json_raw(&b, params);
	}
	gw_json_key(&b, "fingerprint", false);
	gw_json_cstr(&b, v.fingerprint);
	int cls = d ? d->cls : (q && q->rc == 0 && i < q->sql.nstmts ? (int)q->sql.stmts[i].cls : s->dec_cls);
	gw_json_key(&b, "class", false);
	gw_json_cstr(&b, gw_sql_class_str((enum gw_sql_class)cls));
	gw_json_key(&b, "decision", false);
	gw_json_cstr(&b, !d ? "allow" : d->review ? "review" : "deny");
	gw_json_key(&b, "rule", false);
	gw_json_cstr(&b, d ? (d->rule[0] ? d->rule : NULL) : s->dec_rule);
	int64_t review = d ? d->review : s->dec_review;
	if (review) {
		gw_json_key(&b, "review", false);
		gw_json_int(&b, review);
	}
	if (d) {
		gw_json_key(&b, "sqlstate", false);
		gw_json_cstr(&b, d->sqlstate);
		gw_json_key(&b, "message", false);
		gw_json_cstr(&b, d->message);
	}
	ev_add(s, GW_AUD_STATEMENT, wall, n, &b);
	ev_buf_done(s, &b);
}

/* A refusal of the message being handled: each of its statements is recorded as refused. */
static void rec_refusal(gw_session *s, const gw_decision *d)
{
	if (!s->cur_set)
		return;
	gw_sqlc *q = s->cur_q;
	size_t count = q ? gw_sqlc_count(q) : 1;
	for (size_t i = 0; i < count; i++)
		rec_statement(s, q, i, q ? NULL : "", s->cur_proto, s->cur_params, d);
}

/* The message being handled is this (its refusals are recorded with it). */
static void cur_begin(gw_session *s, gw_sqlc *q, const char *proto, const char *params)
{
	s->cur_set = true;
	s->cur_q = q;
	s->cur_proto = proto;
	s->cur_params = params;
	s->dec_cls = GW_SQL_READ;
	s->dec_rule = NULL;
	s->dec_grant = s->dec_review = 0;
}

static void cur_end(gw_session *s)
{
	s->cur_set = false;
	s->cur_q = NULL;
	s->cur_params = NULL;
}

static void infl_push(gw_session *s, uint32_t n)
{
	if (s->infl_n == s->infl_cap) {
		size_t cap = s->infl_cap ? 2 * s->infl_cap : 8;
		struct inflight *v = gw_xmalloc(cap * sizeof(*v));
		for (size_t i = 0; i < s->infl_n; i++)
			v[i] = s->infl[(s->infl_head + i) % s->infl_cap];
		free(s->infl);
		s->infl = v;
		s->infl_cap = cap;
		s->infl_head = 0;
	}
	s->infl[(s->infl_head + s->infl_n) % s->infl_cap] = (struct inflight){.n = n, .group = s->rfq_sent,
		.start_us = gw_mono_us()};
	s->infl_n++;
}

static struct inflight *infl_front(gw_session *s)
{
	return s->infl_n ? &s->infl[s->infl_head] : NULL;
}

static void infl_pop(gw_session *s)
{
	struct inflight *f = &s->infl[s->infl_head];
	gw_sqlc_unref(f->q);
	gw_mask_plan_free(f->plan);
	free(f->portal);
	s->infl_head = (s->infl_head + 1) % s->infl_cap;
	s->infl_n--;
}

/* rows: from a CommandComplete tag ("SELECT 10", "INSERT 0 5", "COPY 100000"); -1 when it has none. */
static int64_t tag_rows(const uint8_t *tag, size_t n)
{
	size_t end = n && tag[n - 1] == 0 ? n - 1 : n, i = end;
	while (i > 0 && isdigit(tag[i - 1]))
		i--;
	if (i == end || i == 0 || tag[i - 1] != ' ' || end - i > 18)
		return -1;
	static const char *const counted[] = {"SELECT ", "INSERT ", "UPDATE ", "DELETE ", "MERGE ", "COPY ", "FETCH ",
		"MOVE "};
	bool ok = false;
	for (size_t k = 0; k < GW_ARRAY_LEN(counted); k++)
		if (end >= strlen(counted[k]) && !memcmp(tag, counted[k], strlen(counted[k])))
			ok = true;
	if (!ok)
		return -1;
	int64_t v = 0;
	for (; i < end; i++)
		v = v * 10 + (tag[i] - '0');
	return v;
}

static void rec_outcome(gw_session *s, const struct inflight *f, const char *status, int64_t rows, const char *sqlstate)
{
	uint64_t wall = gw_wall_us();
	gw_buf b = ev_buf(s);
	ev_head(s, &b, wall, "outcome", f->n);
	gw_json_key(&b, "status", false);
	gw_json_cstr(&b, status);
	gw_json_key(&b, "rows", false);
	if (rows >= 0)
		gw_json_int(&b, rows);
	else
		gw_json_raw(&b, "null");
	gw_json_key(&b, "duration_us", false);
	gw_json_int(&b, (int64_t)(gw_mono_us() - f->start_us));
	gw_json_key(&b, "sqlstate", false);
	gw_json_cstr(&b, sqlstate);
	gw_json_key(&b, "masked_values", false);
	gw_json_int(&b, (int64_t)f->masked);
	ev_submit_now(s, GW_AUD_OUTCOME, wall, f->n, &b);
	ev_buf_done(s, &b);
}

/* A statement's result ended (CommandComplete, EmptyQueryResponse, PortalSuspended, ErrorResponse). */
static void outcome_from_server(gw_session *s, uint8_t type, const uint8_t *body, size_t n)
{
	uint64_t rows_seen = s->res_rows;
	s->res_rows = 0;
	struct inflight *f = infl_front(s);
	if (!f || f->group != s->rfq_recv)
		return;
	if (s->mk && !s->txn_tainted && stmt_tainted(s, f))
		s->txn_tainted = true;
	if (type == 'E') {
		char code[8] = "XX000";
		gw_pg_error_field(body, n, 'C', code, sizeof(code));
		rec_outcome(s, f, "error", -1, code);
	} else {
		int64_t rows = type == 'C' ? tag_rows(body, n) : type == 's' ? (int64_t)rows_seen : 0;
		rec_outcome(s, f, type == 's' ? "suspended" : "ok", rows, "00000");
	}
	infl_pop(s);
}

/* A group ended: its statements the server never answered did not run. */
static void outcome_group_done(gw_session *s, uint64_t group)
{
	struct inflight *f;
	while ((f = infl_front(s)) && f->group <= group) {
		rec_outcome(s, f, "skipped", -1, NULL);
		infl_pop(s);
	}
}

/* The session ends: what is still in flight has no known outcome. */
static void outcome_session_end(gw_session *s)
{
	struct inflight *f;
	while ((f = infl_front(s))) {
		rec_outcome(s, f, s->aud_wait ? "skipped" : "unknown", -1, NULL);
		infl_pop(s);
	}
}

static void rec_session_open(gw_session *s, const char *kind, const char *client, const char *tls, const char *app)
{
	gw_buf b = {0};
	ev_head(s, &b, s->opened_wall, "session_open", 0);
	gw_json_key(&b, "kind", false);
	gw_json_cstr(&b, kind);
	gw_json_key(&b, "client", false);
	gw_json_cstr(&b, client);
	gw_json_key(&b, "tls", false);
	gw_json_cstr(&b, strcmp(tls, "none") ? tls : NULL);
	gw_json_key(&b, "auth", false);
	gw_json_cstr(&b, s->auth_method);
	gw_json_key(&b, "application_name", false);
	gw_json_cstr(&b, app);
	ev_submit_now(s, GW_AUD_SESSION_OPEN, s->opened_wall, 0, &b);
	gw_buf_free(&b);
}

static void rec_session_close(gw_session *s)
{
	uint64_t wall = gw_wall_us();
	gw_buf b = {0};
	ev_head(s, &b, wall, "session_close", 0);
	gw_json_key(&b, "bytes_in", false);
	gw_json_int(&b, (int64_t)s->cl.bytes_in);
	gw_json_key(&b, "bytes_out", false);
	gw_json_int(&b, (int64_t)s->cl.bytes_out);
	gw_json_key(&b, "statements", false);
	gw_json_int(&b, s->stmt_n);
	gw_json_key(&b, "duration_us", false);
	gw_json_int(&b, (int64_t)(gw_mono_us() - s->opened_mono));
	gw_json_key(&b, "reason", false);
	gw_json_cstr(&b, s->end_reason[0] ? s->end_reason : s->terminated ? "client terminated" : "connection closed");
	ev_submit_now(s, GW_AUD_SESSION_CLOSE, wall, 0, &b);
	gw_buf_free(&b);
}

/* ---- portals: what an Execute runs ---- */

static void pbind_free(struct pbind *b)
{
	free(b->stmt);
	free(b->fmts);
	gw_mask_plan_free(b->plan);
	free(b->portal);
	gw_sqlc_unref(b->q);
	free(b->params);
}

static void portal_free_v(void *v)
{
	if (!v)
		return;
	pbind_free(v);
	free(v);
}

static void pbind_add(gw_session *s, const char *portal, gw_sqlc *q, char *params)
{
	s->pb = fifo_room(s->pb, &s->pb_head, &s->pb_n, &s->pb_cap, sizeof(*s->pb));
	if (q)
		gw_sqlc_ref(q);
	s->pb[s->pb_n++] = (struct pbind){.portal = gw_xstrdup(portal), .q = q, .params = params, .group = s->rfq_sent};
}

/* BindComplete: the oldest Bind sent took effect. */
static void pbind_confirm(gw_session *s)
{
	if (s->pb_head == s->pb_n)
		return;
	struct pbind *b = &s->pb[s->pb_head++];
	if (!b->q) {
		pbind_free(b);
		return;
	}
	if (s->mk && b->stmt) {
		struct splan *sp = gw_map_get(&s->splans, b->stmt, strlen(b->stmt));
		if (sp) {
			b->plan_known = true;
			b->plan = sp->plan ? gw_mask_plan_formats(sp->plan, b->fmts, b->nfmts) : NULL;
		}
	}
	struct pbind *keep = gw_xmalloc(sizeof(*keep));
	*keep = *b;
	struct pbind *old = gw_map_put(&s->portals, keep->portal, strlen(keep->portal), keep);
	if (old)
		portal_free_v(old);
}

/* A group ended: Binds it did not confirm failed; at the end of a transaction every portal is gone. */
static void pbind_group_done(gw_session *s, uint64_t group, char txstatus)
{
	while (s->pb_head < s->pb_n && s->pb[s->pb_head].group <= group)
		pbind_free(&s->pb[s->pb_head++]);
	if (txstatus == 'I' && s->portals.n)
		gw_map_clear(&s->portals, portal_free_v);
}

/* What portal means now: the newest Bind of it not yet confirmed, or the confirmed one; NULL: unknown. */
static const struct pbind *portal_lookup(gw_session *s, const char *portal)
{
	for (size_t i = s->pb_n; i > s->pb_head; i--)
		if (!strcmp(s->pb[i - 1].portal, portal))
			return &s->pb[i - 1];
	return gw_map_get(&s->portals, portal, strlen(portal));
}

/* ---- masking ---- */

static void splan_free_v(void *v)
{
	struct splan *sp = v;
	if (sp) {
		gw_mask_plan_free(sp->plan);
		free(sp);
	}
}

/* Bind: remember the statement and result formats (its plan is made when the server confirms the Bind). */
static void mask_bind(gw_session *s, struct pbind *b, const char *stmt, const uint8_t *p, const uint8_t *end)
{
	/* p: parameter formats, parameters, result formats (already checked by params_json's walk) */
	if (end - p < 2)
		return;
	int nf = gw_get_u16(p);
	p += 2 + 2 * nf;
	if (end - p < 2)
		return;
	int np = gw_get_u16(p);
	p += 2;
	for (int i = 0; i < np; i++) {
		if (end - p < 4)
			return;
		int32_t len = (int32_t)gw_get_u32(p);
		p += 4;
		if (len > 0) {
			if ((size_t)len > (size_t)(end - p))
				return;
			p += len;
		}
	}
	if (end - p < 2)
		return;
	int nr = gw_get_u16(p);
	p += 2;
	if ((size_t)(end - p) < 2 * (size_t)nr)
		return;
	b->stmt = gw_xstrdup(stmt);
	b->nfmts = nr;
	b->fmts = nr ? gw_xmalloc(2 * (size_t)nr) : NULL;
	if (nr)
		memcpy(b->fmts, p, 2 * (size_t)nr);
}

/* Before a client message goes on: read the catalog again when it is missing or stale (in sync only). */
static void mask_cat_load(gw_session *s)
{
	if (!s->mk || s->mcat_new || s->unsynced || s->txstatus == 'E' || !s->srv ||
		!gw_masker_cat_wanted(s->mk, gw_pool_cfg(s->pool)->name))
		return;
	if (!gwq_send(s, gw_mask_catalog_sql(), false))
		return;
	s->gwq[(s->gwq_head + s->gwq_n - 1) % (int)GW_ARRAY_LEN(s->gwq)].mcat = true;
	s->mcat_new = gw_mask_cat_begin(s->mk);
}

static void mask_describe(gw_session *s, const uint8_t *msg, size_t m)
{
	if (!s->mk || m < 7 || msg[m - 1] != 0 || (msg[5] != 'S' && msg[5] != 'P'))
		return;
	s->md = fifo_room(s->md, &s->md_head, &s->md_n, &s->md_cap, sizeof(*s->md));
	gw_sqlc *q = msg[5] == 'S' ? prepared_lookup(s, (const char *)msg + 6) : NULL;
	if (q)
		gw_sqlc_ref(q);
	s->md[s->md_n++] = (struct mdesc){msg[5], gw_xstrdup((const char *)msg + 6), s->rfq_sent, false, q};
	if (msg[5] == 'P') {
		struct pbind *b = (struct pbind *)portal_lookup(s, (const char *)msg + 6);
		if (b) {
			b->described = true;
			b->described_at = s->rfq_sent;
		}
	}
}

/*
 * Before an Execute: unless the client described the portal in this same
 * group, describe it for the gateway (its answer is swallowed), so the rows
 * are masked by the columns the server says the portal has now — never by a
 * description kept from before (a portal name can be closed and reused, by
 * the protocol or by SQL cursors).
 */
static void mask_describe_for(gw_session *s, const char *portal)
{
	const struct pbind *b = portal ? portal_lookup(s, portal) : NULL;
	if (!s->mk || !portal || !b || !b->q || (b->described && b->described_at == s->rfq_sent) ||
		strlen(portal) > 1000)
		return;
	size_t k = gw_buf_msg_begin(&s->up->tx, 'D');
	gw_buf_put_u8(&s->up->tx, 'P');
	gw_buf_put_str(&s->up->tx, portal);
	gw_buf_msg_end(&s->up->tx, k);
	s->md = fifo_room(s->md, &s->md_head, &s->md_n, &s->md_cap, sizeof(*s->md));
	s->md[s->md_n++] = (struct mdesc){'P', gw_xstrdup(portal), s->rfq_sent, true, NULL};
	((struct pbind *)b)->described = true;
	((struct pbind *)b)->described_at = s->rfq_sent;
}

static void md_pop(gw_session *s)
{
	free(s->md[s->md_head].name);
	gw_sqlc_unref(s->md[s->md_head].q);
	s->md_head++;
}

/* A group ended: Describes the server skipped get no answer. */
static void md_group_done(gw_session *s, uint64_t group)
{
	while (s->md_head < s->md_n && s->md[s->md_head].group <= group)
		md_pop(s);
}

/* The text of statement i of q (NULL when q is NULL). */
static const char *stmt_text(const gw_sqlc *q, uint32_t i, size_t *len)
{
	if (!q) {
		*len = 0;
		return NULL;
	}
	if (q->rc == 0 && i < q->sql.nstmts) {
		*len = q->sql.stmts[i].len;
		return q->text + q->sql.stmts[i].loc;
	}
	*len = q->len;
	return q->text;
}

static gw_mask_plan *mask_plan(gw_session *s, const uint8_t *body, size_t n, const gw_sqlc *q, uint32_t i)
{
	size_t len;
	const char *text = stmt_text(q, i, &len);
	gw_mask_cat *cat = gw_masker_cat(s->mk, gw_pool_cfg(s->pool)->name);
	char notice[300];
	const gw_sql_stmt *st = q && q->rc == 0 && i < q->sql.nstmts ? &q->sql.stmts[i] : NULL;
	gw_mask_plan *p = gw_mask_plan_new(s->mk, cat, body, n, text, len, st, notice, sizeof(notice));
	gw_mask_cat_unref(cat);
	if (notice[0])
		gw_pg_notice(&s->cl.tx, notice);
	return p;
}

/* RowDescription: the plan of the result it describes (simple Query) or of a Describe's statement/portal. */
/* Returns true when the message answered the gateway's own Describe (it is not passed on). */
static bool mask_rowdesc(gw_session *s, uint8_t type, const uint8_t *body, size_t n)
{
	struct inflight *f = infl_front(s);
	if (s->md_head < s->md_n && s->md[s->md_head].group == s->rfq_recv && !(f && f->simple && f->group == s->rfq_recv)) {
		struct mdesc *d = &s->md[s->md_head];
		bool own = d->own;
		if (type == 'T' && d->kind == 'S') {
			struct splan *sp = gw_xcalloc(1, sizeof(*sp));
			sp->plan = mask_plan(s, body, n, d->q, 0);
			splan_free_v(gw_map_put(&s->splans, d->name, strlen(d->name), sp));
		} else if (type == 'T') {
			struct pbind *b = gw_map_get(&s->portals, d->name, strlen(d->name));
			if (b) {
				gw_mask_plan_free(b->plan);
				b->plan = mask_plan(s, body, n, b->q, 0);
				b->plan_known = true;
			}
		} else if (d->kind == 'S') {
			splan_free_v(gw_map_del(&s->splans, d->name, strlen(d->name)));
		} else {
			/* NoData: the portal returns no rows */
			struct pbind *b = gw_map_get(&s->portals, d->name, strlen(d->name));
			if (b) {
				gw_mask_plan_free(b->plan);
				b->plan = NULL;
				b->plan_known = true;
			}
		}
		md_pop(s);
		return own;
	}
	if (type == 'T' && f && f->group == s->rfq_recv) {
		gw_mask_plan_free(f->plan);
		f->plan = mask_plan(s, body, n, f->q, f->i);
		f->plan_known = true;
	}
	return false;
}

/* The plan rows of the current result follow; NULL: pass them as they are. */
static const gw_mask_plan *row_plan(gw_session *s, struct inflight **fp)
{
	struct inflight *f = infl_front(s);
	*fp = f;
	if (f && f->group == s->rfq_recv) {
		if (!f->plan_known && f->portal) {
			const struct pbind *b = gw_map_get(&s->portals, f->portal, strlen(f->portal));
			if (b && b->plan_known) {
				f->plan = b->plan ? gw_mask_plan_formats(b->plan, NULL, -1) : NULL; /* a copy */
				f->plan_known = true;
			}
		}
		if (f->plan_known)
			return f->plan;
	}
	/* rows whose description the gateway never saw: every value withheld */
	if (f && f->group == s->rfq_recv) {
		f->plan = gw_mask_plan_all();
		f->plan_known = true;
		gw_pg_notice(&s->cl.tx, "pgmoat: the values of this result were withheld because the gateway did not see "
			"its description; send Describe for the portal (as libpq does) to get masked values instead");
		return f->plan;
	}
	return gw_mask_plan_withhold();
}

/* Does statement i of q name a relation with a masked column (for error text)? */
static bool stmt_tainted(gw_session *s, const struct inflight *f)
{
	if (!f || !f->q)
		return true;
	if (f->plan && gw_mask_plan_tainted(f->plan))
		return true;
	if (f->q->rc != 0 || f->i >= f->q->sql.nstmts)
		return true;
	gw_mask_cat *cat = gw_masker_cat(s->mk, gw_pool_cfg(s->pool)->name);
	bool t = !cat || gw_mask_cat_stmt_tainted(cat, &f->q->sql.stmts[f->i]);
	gw_mask_cat_unref(cat);
	return t;
}

/* A COPY TO STDOUT ended (or the session's state was reset). */
static void mask_copy_reset(gw_session *s)
{
	gw_mask_plan_free(s->copy_plan);
	gw_mask_copy_free(s->copy_st);
	s->copy_plan = NULL;
	s->copy_st = NULL;
	s->copy_withheld = false;
}

/*
 * CopyOutResponse (body: format, column count, per-column formats): the plan
 * of the COPY's rows, from the statement it answers. 1: swallowed (the rows
 * will be withheld, the statement's options are not known), 0: pass on.
 */
static int mask_copy_out(gw_session *s, const uint8_t *body, size_t n)
{
	mask_copy_reset(s);
	struct inflight *f = infl_front(s);
	bool cur = f && f->group == s->rfq_recv;
	size_t len = 0;
	const char *text = cur ? stmt_text(f->q, f->i, &len) : NULL;
	const gw_sql_stmt *st = cur && f->q && f->q->rc == 0 && f->i < f->q->sql.nstmts ? &f->q->sql.stmts[f->i] : NULL;
	int ncols = n >= 3 ? (int16_t)gw_get_u16(body + 1) : -1;
	struct gw_sql_copy opt;
	char why[200] = "the statement it answers is not known";
	if (ncols < 0 || n != 3 + 2 * (size_t)ncols) {
		snprintf(why, sizeof(why), "a malformed CopyOutResponse");
	} else if (text && gw_sql_copy_options(text, len, &opt, why, sizeof(why)) == 0) {
		if ((body[0] == 1) == (opt.format == GW_SQL_COPY_BINARY)) {
			gw_mask_cat *cat = gw_masker_cat(s->mk, gw_pool_cfg(s->pool)->name);
			char notice[300];
			s->copy_plan = gw_mask_copy_plan(s->mk, cat, text, len, st, &opt, ncols, notice, sizeof(notice));
			gw_mask_cat_unref(cat);
			if (s->gw->dlp && gw_mask_plan_scans(s->copy_plan)) {
				/* the provider reads SELECT results; COPY's rows would get the built-in detectors only */
				gw_mask_plan_free(s->copy_plan);
				s->copy_plan = NULL;
				gw_sql_copy_free(&opt);
				s->copy_withheld = true;
				snprintf(s->copy_why, sizeof(s->copy_why), "with masking.provider: presidio, COPY's rows are not "
					"sent to the DLP provider in this version");
				return 1;
			}
			if (notice[0])
				gw_pg_notice(&s->cl.tx, notice);
			s->copy_st = gw_mask_copy_begin(s->mk, &opt);
			gw_sql_copy_free(&opt);
			return 0;
		}
		snprintf(why, sizeof(why), "the server's COPY format is not the statement's");
		gw_sql_copy_free(&opt);
	}
	s->copy_withheld = true;
	snprintf(s->copy_why, sizeof(s->copy_why), "%s", why);
	return 1;
}

/* CopyData of a COPY TO STDOUT: 1 written (masked or withheld), 0 pass on, -1 ended. */
static int mask_copy_data(gw_session *s, const uint8_t *body, size_t n)
{
	if (!s->copy_st)
		return 1; /* withheld, or CopyData outside a COPY TO STDOUT the gateway saw begin */
	if (!s->copy_plan)
		return 0; /* no column needs work */
	uint64_t k = 0;
	int rc = gw_mask_copy_data(s->mk, s->copy_plan, s->copy_st, body, n, &s->cl.tx, &k);
	if (rc == -2) {
		session_fatal(s, "54000", "pgmoat: a COPY row larger than masking.max_row (%zu) cannot be masked, so the "
			"session ends; copy fewer or smaller columns", s->gw->cfg->mask_max_row);
		return -1;
	}
	if (rc < 0) {
		session_fatal(s, "08006", "pgmoat: COPY data from the upstream server does not match its format");
		return -1;
	}
	struct inflight *f = infl_front(s);
	if (f && f->group == s->rfq_recv)
		f->masked += k;
	return 1;
}

#define DLP_BATCH_BYTES (256u * 1024)
#define DLP_BATCH_ROWS 2000

static void count_value(void *ud, const uint8_t *v, size_t len)
{
	(void)v;
	*(size_t *)ud += len;
}

static void job_value(void *ud, const uint8_t *v, size_t len)
{
	gw_dlp_job_add(ud, v, len);
}

static void dlp_done(void *arg);

/* Send the held rows' text to the provider; the server's messages wait until it answers. */
static void dlp_flush(gw_session *s)
{
	if (!s->dlp_nrows || s->dlp_job)
		return;
	/* values in row order, columns in order (counted when the rows were held) */
	const uint8_t *p = gw_buf_rd(&s->dlp_rows), *end = p + gw_buf_len(&s->dlp_rows);
	struct inflight *f = infl_front(s);
	const gw_mask_plan *plan = f ? f->plan : NULL;
	gw_dlp_job *job = gw_dlp_job_new(s->dlp_nvals, s->dlp_bytes);
	for (const uint8_t *q = p; q < end; q += 1 + gw_get_u32(q + 1))
		gw_mask_row_values(plan, q + 5, gw_get_u32(q + 1) - 4, job_value, job);
	job->loop = s->loop;
	job->done = dlp_done;
	job->owner = s;
	s->dlp_job = job;
	gw_dlp_submit(s->gw->dlp, job);
}

/* The provider answered (on the session's loop): the held rows go on, masked, or the result is refused. */
static void dlp_done(void *arg)
{
	gw_dlp_job *job = arg;
	gw_session *s = job->owner;
	if (!s || s->ended) {
		if (s)
			s->dlp_job = NULL;
		gw_dlp_job_free(job); /* the session ended meanwhile */
		return;
	}
	s->dlp_job = NULL;
	struct inflight *f = infl_front(s);
	const gw_mask_plan *plan = f ? f->plan : NULL;
	bool refuse = job->failed && !s->gw->cfg->mask_presidio_fallback;
	if (job->failed) {
		gw_warn("session %s: %s%s", s->reg->id, job->error,
			refuse ? "; the result is refused (masking.provider.on_error: block)" :
			"; the built-in detectors scan it instead (on_error: builtin)");
		snprintf(s->dlp_why, sizeof(s->dlp_why), "%s", job->error);
	}
	if (refuse) {
		s->dlp_refused = true;
	} else {
		const uint8_t *p = gw_buf_rd(&s->dlp_rows), *end = p + gw_buf_len(&s->dlp_rows);
		size_t fi = 0;
		uint64_t k = 0;
		for (const uint8_t *q = p; q < end && plan; q += 1 + gw_get_u32(q + 1))
			gw_mask_row_found(s->mk, plan, q + 5, gw_get_u32(q + 1) - 4, job->failed ? NULL : job->found, &fi,
				&s->cl.tx, &k);
		if (f)
			f->masked += k;
	}
	gw_buf_reset(&s->dlp_rows);
	s->dlp_nrows = s->dlp_nvals = s->dlp_bytes = 0;
	gw_dlp_job_free(job);
	run(s);
}

/* The end of a result whose rows the provider could not scan: the client gets an error instead. */
static bool dlp_refusal(gw_session *s)
{
	if (!s->dlp_refused)
		return false;
	s->dlp_refused = false;
	char msg[400];
	snprintf(msg, sizeof(msg), "pgmoat: the result was withheld: %s", s->dlp_why);
	gw_pg_error(&s->cl.tx, "ERROR", "58000", msg, "The statement ran; its rows were not sent because masking could "
		"not scan them.", "masking.provider.on_error: block keeps unscanned values from reaching you; try again "
		"when the DLP provider is back, or ask the operator.");
	return true;
}

/* One server message under masking: 1 when it was written (masked) to the client, 0 pass on, -1 ended. */
static int mask_server(gw_session *s, uint8_t type, const uint8_t *msg, size_t m)
{
	const uint8_t *body = msg + 5;
	size_t n = m - 5;
	switch (type) {
	case 'T':
	case 'n':
		return mask_rowdesc(s, type, body, n) ? 1 : 0;
	case 'D': {
		struct inflight *f;
		const gw_mask_plan *p = row_plan(s, &f);
		if (!p)
			return 0;
		if (s->gw->dlp && gw_mask_plan_external(p)) {
			/* held for the provider (the whole message; the row's text is copied into the job at flush) */
			if (s->dlp_refused)
				return 1;
			size_t b = 0;
			int k = gw_mask_row_values(p, body, n, count_value, &b);
			if (k < 0) {
				session_fatal(s, "08006", "pgmoat: a row from the upstream server does not match its description");
				return -1;
			}
			gw_buf_append(&s->dlp_rows, msg, m);
			s->dlp_nrows++;
			s->dlp_nvals += (size_t)k;
			s->dlp_bytes += b;
			if (s->dlp_bytes >= DLP_BATCH_BYTES || s->dlp_nrows >= DLP_BATCH_ROWS)
				dlp_flush(s);
			return 1;
		}
		uint64_t k = 0;
		if (gw_mask_row(s->mk, p, body, n, &s->cl.tx, &k) < 0) {
			session_fatal(s, "08006", "pgmoat: a row from the upstream server does not match its description");
			return -1;
		}
		if (f)
			f->masked += k;
		return 1;
	}
	case 'H':
		return mask_copy_out(s, body, n);
	case 'd':
		return mask_copy_data(s, body, n);
	case 'c':
		if (s->copy_withheld)
			return 1;
		if (s->copy_plan && !s->cut && gw_mask_copy_end(s->copy_st) < 0) {
			session_fatal(s, "08006", "pgmoat: COPY data from the upstream server ended inside a row");
			return -1;
		}
		return 0;
	case 'C':
		if (s->copy_withheld) {
			char msg2[300];
			snprintf(msg2, sizeof(msg2), "pgmoat: the rows of this COPY ... TO STDOUT were withheld because they "
				"cannot be masked (%s); the statement ran", s->copy_why);
			mask_copy_reset(s);
			gw_pg_error(&s->cl.tx, "ERROR", "0A000", msg2, NULL, "Read the same rows with SELECT, or COPY without "
				"that option: its values are masked.");
			return 1;
		}
		mask_copy_reset(s);
		return 0;
	case 'E':
	case 'N': {
		struct inflight *f = infl_front(s);
		bool cur = f && f->group == s->rfq_recv;
		size_t len = 0;
		const char *text = cur ? stmt_text(f->q, f->i, &len) : NULL;
		uint64_t k = 0;
		/*
		 * The transaction's taint too: a deferred constraint fails at COMMIT (or the end of an implicit
		 * transaction), a statement that names no relation, with the key of a row written earlier.
		 */
		gw_mask_error(s->mk, type, body, n, text, len, s->txn_tainted || stmt_tainted(s, cur ? f : NULL), &s->cl.tx,
			&k);
		if (cur)
			f->masked += k;
		if (type == 'E')
			mask_copy_reset(s);
		return 1;
	}
	case 'A': {
		uint64_t k = 0;
		gw_mask_notification(s->mk, body, n, s->txn_tainted, s->srv ? gw_server_pid(s->srv) : 0, &s->cl.tx, &k);
		return 1;
	}
	default:
		return 0;
	}
}

/* ---- holding a recorded message until its record is committed ---- */

/*
 * Forward a client message whose last k statement events (just made) are
 * being recorded: a Query, Execute or FunctionCall. Held until committed.
 */
static void forward_recorded(gw_session *s, const uint8_t *msg, size_t m, bool ext, size_t k, gw_sqlc *q,
	const char *portal)
{
	for (size_t i = 0; i < k; i++) {
		infl_push(s, s->stmt_n - (uint32_t)(k - 1 - i));
		struct inflight *f = &s->infl[(s->infl_head + s->infl_n - 1) % s->infl_cap];
		if (q)
			gw_sqlc_ref(q);
		f->q = q;
		f->i = (uint32_t)i;
		f->simple = !ext && msg[0] == 'Q';
		f->portal = portal ? gw_xstrdup(portal) : NULL;
	}
	if (s->mk && s->dec_cls >= GW_SQL_DDL)
		gw_masker_cat_stale(s->mk, gw_pool_cfg(s->pool)->name); /* read again before the next statement */
	s->hold_infl = k;
	s->hold_set = true;
	s->hold_off = gw_buf_len(&s->up->tx);
	s->hold_len = m;
	s->hold_gwq = s->gwq_n;
	s->hold_at = s->rfq_sent;
	s->hold_ext = ext;
	gw_buf_append(&s->up->tx, msg, m);
}

static void waiting_add(gw_session *s)
{
	s->aud_wait = true;
	s->aud_round = s->wk->aud_round;
	s->aud_prev = NULL;
	s->aud_next = s->wk->aud_waiting;
	if (s->aud_next)
		s->aud_next->aud_prev = s;
	s->wk->aud_waiting = s;
}

static void waiting_remove(gw_session *s)
{
	if (!s->aud_wait)
		return;
	s->aud_wait = false;
	if (s->aud_prev)
		s->aud_prev->aud_next = s->aud_next;
	else
		s->wk->aud_waiting = s->aud_next;
	if (s->aud_next)
		s->aud_next->aud_prev = s->aud_prev;
	s->aud_prev = s->aud_next = NULL;
}

/*
 * The held message's record is settled: committed — send it on; failed —
 * refuse it (58030) in its place, keeping what the gateway queued behind it.
 */
static void hold_settle(gw_session *s, bool committed, const char *why)
{
	waiting_remove(s);
	const uint8_t *h = gw_buf_rd(&s->held);
	size_t hn = gw_buf_len(&s->held);
	if (!s->up || s->closing || s->ended) {
		gw_buf_reset(&s->held); /* the session is ending (its server is gone): nothing is sent */
		return;
	}
	if (committed) {
		gw_buf_append(&s->up->tx, h, hn);
		gw_buf_reset(&s->held);
		return;
	}
	gw_decision d;
	refusal(&d, "58030", "audit", "pgmoat: the statement was not run: the audit store cannot record it");
	snprintf(d.detail, sizeof(d.detail), "rule: audit. Every statement is recorded before it runs; the record "
		"could not be committed%s%s.", why[0] ? ": " : "", why);
	snprintf(d.hint, sizeof(d.hint), "The session stays usable; retry once the store recovers (GET /healthz "
		"says ok again). An operator should check the state store's disk.");
	/* the gateway's entries behind the message go back behind its refusal */
	int after = s->gwq_n - s->hold_gwq;
	struct gwq_ent saved[GW_ARRAY_LEN(s->gwq)];
	for (int i = 0; i < after; i++)
		saved[i] = s->gwq[(s->gwq_head + s->hold_gwq + i) % (int)GW_ARRAY_LEN(s->gwq)];
	s->gwq_n = s->hold_gwq;
	uint64_t sent = s->rfq_sent;
	s->rfq_sent = s->hold_at;
	bool queued = deny(s, &d, s->hold_ext);
	s->rfq_sent = sent;
	if (!queued || s->gwq_n + after > (int)GW_ARRAY_LEN(s->gwq)) {
		/* no room to put them back: the session has ended (53400) */
		for (int i = 0; i < after; i++)
			free(saved[i].deny);
		gw_buf_reset(&s->held);
		if (queued)
			session_fatal(s, "53400", "pgmoat: too many denied messages pipelined without reading the answers");
		return;
	}
	for (int i = 0; i < after; i++) {
		struct gwq_ent *e = gwq_push(s, saved[i].kind);
		*e = saved[i];
	}
	gw_buf_append(&s->up->tx, h + s->hold_len, hn - s->hold_len);
	gw_buf_reset(&s->held);
	/* its statements never reach the server: no outcome will come (they are the newest in flight) */
	for (size_t k = s->hold_infl <= s->infl_n ? s->hold_infl : s->infl_n; k > 0; k--) {
		struct inflight *f = &s->infl[(s->infl_head + s->infl_n - 1) % s->infl_cap];
		gw_sqlc_unref(f->q);
		gw_mask_plan_free(f->plan);
		free(f->portal);
		s->infl_n--;
	}
	s->hold_infl = 0;
}

/*
 * After a client message was handled: its events join the worker's group.
 * A recorded message's bytes leave the server's buffer for `held`; false
 * when the session now waits for the group's commit (read no further client
 * input until then).
 */
static bool submit_events(gw_session *s)
{
	worker_add(s->wk, s->evs, s->nevs);
	s->evs = NULL;
	s->evs_tail = &s->evs;
	s->nevs = 0;
	if (!s->hold_set)
		return true;
	s->hold_set = false;
	gw_buf *tx = &s->up->tx;
	gw_buf_reset(&s->held);
	gw_buf_append(&s->held, gw_buf_rd(tx) + s->hold_off, gw_buf_len(tx) - s->hold_off);
	tx->len = s->hold_off;
	waiting_add(s);
	s->wk->aud_commit = true;
	return false;
}

/*
 * Commit the worker's group: the events its sessions made in this batch of
 * socket events, in one append, then release (or refuse) the statements
 * that waited for it — in the same pass, with no thread hand-off. Sessions
 * that hold a new statement meanwhile wait for the next round.
 */
void gw_session_audit_flush(gw_worker *wk)
{
	while (wk->aud_evs) {
		gw_audit_ev *list = wk->aud_evs;
		wk->aud_evs = NULL;
		wk->aud_tail = &wk->aud_evs;
		wk->aud_nevs = 0;
		wk->aud_commit = false;
		uint64_t round = wk->aud_round++;
		char why[400] = "";
		bool ok = gw_audit_append(wk->gw->audit, list, why, sizeof(why)) == 0;
		for (gw_session *s = wk->aud_waiting, *next; s; s = next) {
			next = s->aud_next;
			if (s->aud_round > round)
				continue;
			hold_settle(s, ok, why);
			run(s);
		}
	}
}

void gw_session_after_batch(void *arg)
{
	gw_worker *wk = arg;
	if (wk->aud_commit || wk->aud_nevs >= 256)
		gw_session_audit_flush(wk);
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
	if (!s->policy_on) {
		/* no policies: everything is allowed (and recorded) */
		*allow = true;
		s->dec_cls = q->rc == 0 ? (int)gw_sql_max_class(&q->sql) : GW_SQL_ADMIN;
		return MSG_DONE;
	}
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
		s->dec_cls = d.cls;
		s->dec_rule = d.by ? d.by->pol->name : NULL;
		s->dec_grant = d.by ? d.by->grant_id : 0;
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
	s->pend = fifo_room(s->pend, &s->pend_head, &s->npend, &s->pend_cap, sizeof(*s->pend));
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
			splan_free_v(gw_map_del(&s->splans, e->name, strlen(e->name)));
			break;
		case PEND_DEALLOCATE:
		case PEND_DISCARD:
		case PEND_CLOSE:
			if (e->name)
				gw_pctx_deallocate(&s->pol, e->name);
			else if (e->kind != PEND_CLOSE)
				gw_pctx_deallocate_all(&s->pol);
			if (e->name)
				splan_free_v(gw_map_del(&s->splans, e->name, strlen(e->name)));
			else if (e->kind != PEND_CLOSE)
				gw_map_clear(&s->splans, splan_free_v);
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

/*
 * Masking (an identity not exempt): a statement that would carry masked values out of the rules' reach — into
 * another table's column, a new table, a file — or rename what the rules name, is refused before it reaches the
 * database; so is one whose flow cannot be decided (gw_mask_check_write). True with d filled when q is refused.
 */
static bool mask_refuses(gw_session *s, const gw_sqlc *q, gw_decision *d)
{
	if (!s->mk || q->rc != 0)
		return false; /* a text the gateway cannot parse: the server does not run it either */
	gw_mask_cat *cat = gw_masker_cat(s->mk, gw_pool_cfg(s->pool)->name);
	char why[256] = "";
	bool refused = false;
	bool ddl_before = false;
	for (size_t i = 0; i < q->sql.nstmts && !refused; i++) {
		size_t len;
		const char *text = stmt_text(q, (uint32_t)i, &len);
		const gw_sql_stmt *st = &q->sql.stmts[i];
		if (ddl_before && (!cat || gw_mask_cat_stmt_tainted(cat, st))) {
			/* decided on the catalog as it was before this message, which its own DDL changes first */
			snprintf(why, sizeof(why), "statement %zu moves values after DDL in the same message; send the DDL on "
				"its own first, so the write is decided on the catalog it makes", i + 1);
			refused = true;
			break;
		}
		if (st->flags & GW_SQL_F_EXECUTE) {
			/* decided as what the name means now, on the current catalog (not as it was at PREPARE) */
			bool here = false;
			for (size_t k = 0; k < i && st->execute_name; k++)
				here |= q->sql.stmts[k].prepare_name && !strcmp(q->sql.stmts[k].prepare_name, st->execute_name);
			const gw_sqlc *prep = here || !st->execute_name ? NULL : prepared_lookup(s, st->execute_name);
			if (!here && (!prep || prep->rc != 0)) {
				snprintf(why, sizeof(why), "EXECUTE of a statement the gateway did not see prepared");
				refused = true;
			}
			for (size_t k = 0; prep && prep->rc == 0 && k < prep->sql.nstmts && !refused; k++) {
				size_t plen;
				const char *ptext = stmt_text(prep, (uint32_t)k, &plen);
				refused = gw_mask_check_write(cat, ptext, plen, &prep->sql.stmts[k], why, sizeof(why)) != 0;
			}
			continue;
		}
		refused = gw_mask_check_write(cat, text, len, st, why, sizeof(why)) != 0;
		ddl_before |= st->cls >= GW_SQL_DDL;
	}
	gw_mask_cat_unref(cat);
	if (!refused)
		return false;
	refusal(d, "42501", "masking", "pgmoat: refused by masking: %s", why[0] ? why : "its effect cannot be decided");
	d->cls = (int)gw_sql_max_class(&q->sql);
	snprintf(d->detail, sizeof(d->detail), "rule: masking. A statement may not put masked values where no rule masks "
		"them as strongly (another table's column, a new table, a file on the server), nor rename the relations, "
		"columns or schemas the rules name; when that cannot be decided (a DO block, code it cannot see), it is "
		"refused.");
	snprintf(d->hint, sizeof(d->hint), "Write masked values only into columns whose rule hides them whole (redact, "
		"null), or as they are into a column of the same type masked by the same action; or have an identity in "
		"masking.exempt run it.");
	return true;
}

/*
 * Before the policy decides a message that writes: the masking refusal. MSG_WAIT when the catalog snapshot is
 * being read (the message waits for it, unread), MSG_DONE with *refused when a denial took its place, MSG_ENDED.
 */
static int mask_gate(gw_session *s, gw_sqlc *q, bool ext, bool *refused)
{
	*refused = false;
	if (!s->mk || q->rc != 0)
		return MSG_DONE;
	bool writes = false;
	for (size_t i = 0; i < q->sql.nstmts; i++)
		writes |= q->sql.stmts[i].cls >= GW_SQL_WRITE ||
			(q->sql.stmts[i].flags & (GW_SQL_F_UNKNOWN | GW_SQL_F_EXECUTE));
	if (!writes)
		return MSG_DONE;
	if (s->mcat_new) {
		s->mask_wait = true; /* decided on the snapshot being read, not on the one it replaces */
		return MSG_WAIT;
	}
	s->mask_wait = false;
	gw_decision d;
	if (!mask_refuses(s, q, &d))
		return MSG_DONE;
	*refused = true;
	return deny(s, &d, ext) ? MSG_DONE : MSG_ENDED;
}

/* A simple Query: decided (under policy), recorded statement by statement, then forwarded. */
static int handle_query(gw_session *s, const uint8_t *msg, size_t m)
{
	const uint8_t *body = msg + 5;
	size_t n = m - 5;
	if (n == 0 || body[n - 1] != 0 || memchr(body, 0, n) != body + n - 1) {
		cur_begin(s, NULL, "simple", NULL);
		int r = refuse_malformed(s, "Query", false);
		if (r == MSG_DONE)
			s->rfq_sent++;
		return r;
	}
	if (s->policy_on && !s->unsynced)
		policy_refresh(s);
	mask_cat_load(s);
	gw_sqlc *q = gw_sqlcache_get(s->wk->sqlcache, (const char *)body, n - 1);
	cur_begin(s, q, "simple", NULL);
	bool allow = false, refused = false;
	int r = MSG_DONE;
	if (q->rc == 0 && !query_names_ok(s, q)) {
		if (s->ended || s->closing)
			r = MSG_ENDED;
	} else {
		r = mask_gate(s, q, false, &refused);
		if (r == MSG_DONE && !refused)
			r = policy_gate(s, q, body, n - 1, false, &allow);
	}
	if (r == MSG_DONE) {
		if (allow) {
			/* an empty query string holds no statement: nothing to record, the server answers EmptyQueryResponse */
			size_t k = q->rc == 0 && q->sql.nstmts == 0 ? 0 : gw_sqlc_count(q);
			for (size_t i = 0; i < k; i++)
				rec_statement(s, q, i, NULL, "simple", NULL, NULL);
			if (k)
				forward_recorded(s, msg, m, false, k, q, NULL);
			else
				gw_buf_append(&s->up->tx, msg, m);
			note_names(s, q);
			s->copy_wait = copy_from_stdin(q);
		}
		s->rfq_sent++;
		atomic_fetch_add(&s->reg->statements, 1);
		if (allow) {
			gw_pctx_ran(&s->pol, q);
			if (q->rc == 0 && q->sql.nstmts && (q->sql.stmts[q->sql.nstmts - 1].flags & GW_SQL_F_SESSION_RESET) &&
				!reapply_settings(s))
				r = MSG_ENDED;
		}
	}
	gw_sqlc_unref(q);
	return r;
}

/* Parse: decided here (under policy), remembered under the statement's name. */
static int handle_parse(gw_session *s, const uint8_t *msg, size_t m)
{
	const uint8_t *p = msg + 5, *end = msg + m;
	const char *name = take_str(&p, end), *text = name ? take_str(&p, end) : NULL;
	cur_begin(s, NULL, "extended", NULL);
	if (!text) {
		s->unsynced = true;
		return refuse_malformed(s, "Parse", true);
	}
	if (s->policy_on && !s->unsynced)
		policy_refresh(s);
	mask_cat_load(s);
	if (name_reserved(name) || (*name && s->pol.prepared.n + (s->npend - s->pend_head) >= MAX_PREPARED)) {
		s->unsynced = true;
		return refuse_name(s, name, true) ? MSG_DONE : MSG_ENDED;
	}
	gw_sqlc *q = gw_sqlcache_get(s->wk->sqlcache, text, strlen(text));
	s->cur_q = q;
	bool allow = false, refused = false;
	/* (still "in sync" here at a group's first Parse: a catalog lookup may go out before it) */
	int r = mask_gate(s, q, true, &refused);
	if (r == MSG_DONE && !refused)
		r = policy_gate(s, q, (const uint8_t *)text, strlen(text), true, &allow);
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

/* The decision on a Bind of q (statement name): true when allowed, else d says why. */
static bool bind_allowed(gw_session *s, gw_sqlc *q, const char *name, bool reset, gw_decision *d)
{
	if (!s->policy_on) {
		s->dec_cls = q->rc == 0 ? (int)gw_sql_max_class(&q->sql) : GW_SQL_ADMIN;
		return true;
	}
	gw_policy_decide(&s->pol, q, gw_policy_now(), d);
	if (d->verdict == GW_DECIDE_LOOKUP) {
		s->pol.no_lookup = true;
		gw_policy_decide(&s->pol, q, gw_policy_now(), d);
		s->pol.no_lookup = false;
	}
	if (d->verdict == GW_DECIDE_REVIEW && s->review_pass_set && !strcmp(s->review_pass, name)) {
		s->review_pass_set = false;
		d->verdict = GW_DECIDE_ALLOW;
	}
	if (d->verdict == GW_DECIDE_ALLOW && s->reset_in_group && s->pol.read_only && !reset) {
		d->verdict = GW_DECIDE_DENY;
		memcpy(d->sqlstate, "42501", 6);
		snprintf(d->rule, sizeof(d->rule), "read_only");
		snprintf(d->message, sizeof(d->message), "pgmoat: a read session runs nothing between a reset and the next Sync");
		snprintf(d->detail, sizeof(d->detail), "rule: read_only. Read-only mode is re-applied at the Sync that "
			"follows DISCARD ALL / RESET ALL.");
		snprintf(d->hint, sizeof(d->hint), "Send Sync right after the reset.");
	}
	if (d->verdict == GW_DECIDE_REVIEW && review_passes(s, (const uint8_t *)q->text, q->len, d))
		d->verdict = GW_DECIDE_ALLOW; /* approved since its Parse: runs once */
	if (d->verdict != GW_DECIDE_ALLOW)
		return false;
	s->dec_cls = d->cls;
	s->dec_rule = d->by ? d->by->pol->name : NULL;
	s->dec_grant = d->by ? d->by->grant_id : 0;
	return true;
}

/*
 * Bind: under policy the prepared statement's decision is made again (grants
 * and windows change). The portal keeps the statement and its parameters for
 * the record its Execute makes.
 */
static int handle_bind(gw_session *s, const uint8_t *msg, size_t m)
{
	const uint8_t *p = msg + 5, *end = msg + m;
	const char *portal = take_str(&p, end), *name = portal ? take_str(&p, end) : NULL;
	cur_begin(s, NULL, "extended", NULL);
	s->unsynced = true;
	if (!name)
		return refuse_malformed(s, "Bind", true);
	gw_sqlc *q = prepared_lookup(s, name);
	gw_decision d;
	char *params = NULL;
	bool allow = false, reset = false;
	if (!q) {
		refusal(&d, "26000", "unknown-statement", "pgmoat: prepared statement \"%.60s\" does not exist", name);
		snprintf(d.detail, sizeof(d.detail), "rule: unknown-statement. The gateway decides statements when they "
			"are prepared; this name was never prepared on this session.");
	} else {
		params = params_json(p, end);
		s->cur_q = q;
		s->cur_params = params;
		reset = q->rc == 0 && q->sql.nstmts && (q->sql.stmts[q->sql.nstmts - 1].flags & GW_SQL_F_SESSION_RESET);
		allow = bind_allowed(s, q, name, reset, &d);
		if (allow && mask_refuses(s, q, &d))
			allow = false; /* the snapshot may have changed since its Parse */
		if (allow && *portal && !gw_map_get(&s->portals, portal, strlen(portal)) && s->portals.n >= MAX_PORTALS) {
			allow = false;
			refusal(&d, "54000", "limit", "pgmoat: too many open portals on this session (%d); close some first",
				MAX_PORTALS);
		}
	}
	if (!allow) {
		pbind_add(s, portal, NULL, NULL); /* the server skips its Execute: nothing to record then */
		bool ok = deny(s, &d, true);
		free(params);
		return ok ? MSG_DONE : MSG_ENDED;
	}
	if (reset)
		s->reset_in_group = true;
	s->copy_portal_set = false;
	for (size_t i = 0; q->rc == 0 && i < q->sql.nstmts; i++)
		if ((q->sql.stmts[i].flags & GW_SQL_F_COPY_IN) && strlen(portal) < sizeof(s->copy_portal)) {
			snprintf(s->copy_portal, sizeof(s->copy_portal), "%s", portal);
			s->copy_portal_set = true;
		}
	gw_pctx_ran(&s->pol, q);
	note_names(s, q);
	pbind_add(s, portal, q, params ? params : gw_xstrdup("null"));
	if (s->mk)
		mask_bind(s, &s->pb[s->pb_n - 1], name, p, end);
	gw_buf_append(&s->up->tx, msg, m);
	return MSG_DONE;
}

/* Execute: recorded (the portal's statement and parameters) and held until committed. */
static void handle_execute(gw_session *s, const uint8_t *msg, size_t m)
{
	atomic_fetch_add(&s->reg->statements, 1);
	s->unsynced = true;
	const char *portal = m > 5 && msg[m - 5] == 0 ? (const char *)msg + 5 : NULL;
	const struct pbind *b = portal ? portal_lookup(s, portal) : NULL;
	if (portal && s->copy_portal_set && !strcmp(portal, s->copy_portal)) {
		/* Execute of a COPY FROM STDIN: read on once the server says whether it started */
		s->copy_portal_set = false;
		s->copy_wait = true;
	}
	if (b && !b->q) {
		/* its Bind was refused: the server skips this Execute (the refusal is recorded) */
		gw_buf_append(&s->up->tx, msg, m);
		return;
	}
	s->dec_cls = b && b->q->rc == 0 ? (int)gw_sql_max_class(&b->q->sql) : GW_SQL_ADMIN;
	size_t k = b ? gw_sqlc_count(b->q) : 1;
	char unknown[120];
	snprintf(unknown, sizeof(unknown), "(portal \"%.60s\", not bound through the gateway)", portal ? portal : "?");
	for (size_t i = 0; i < k; i++)
		rec_statement(s, b ? b->q : NULL, i, b ? NULL : unknown, "extended", b ? b->params : NULL, NULL);
	mask_describe_for(s, portal);
	forward_recorded(s, msg, m, true, k, b ? b->q : NULL, portal);
}

/* FunctionCall: recorded as "function call OID" with its arguments, held until committed. */
static void handle_function_call(gw_session *s, const uint8_t *msg, size_t m)
{
	char text[64];
	uint32_t oid = m >= 9 ? gw_get_u32(msg + 5) : 0;
	snprintf(text, sizeof(text), "function call (oid %u)", oid);
	char *args = m >= 9 ? params_json(msg + 9, msg + m) : NULL;
	s->dec_cls = GW_SQL_ADMIN;
	rec_statement(s, NULL, 0, text, "function", args, NULL);
	free(args);
	forward_recorded(s, msg, m, false, 1, NULL, NULL);
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
			gw_sqlc *q = type == 'Q' && msg[m - 1] == 0 ?
				gw_sqlcache_get(s->wk->sqlcache, (const char *)msg + 5, strnlen((const char *)msg + 5, m - 5)) : NULL;
			cur_begin(s, q, type == 'Q' ? "simple" : "function", NULL);
			bool ok = deny(s, &d, true);
			gw_sqlc_unref(q);
			return ok ? MSG_DONE : MSG_ENDED;
		}
		if (type == 'Q')
			return handle_query(s, msg, m);
		atomic_fetch_add(&s->reg->statements, 1);
		if (s->policy_on) {
			gw_decision d;
			gw_policy_decide(&s->pol, NULL, gw_policy_now(), &d);
			if (d.verdict != GW_DECIDE_ALLOW) {
				char text[64];
				snprintf(text, sizeof(text), "function call (oid %u)", m >= 9 ? gw_get_u32(msg + 5) : 0);
				rec_statement(s, NULL, 0, text, "function", NULL, &d);
				if (!deny(s, &d, false))
					return MSG_ENDED;
				s->rfq_sent++;
				return MSG_DONE;
			}
		}
		handle_function_call(s, msg, m);
		s->rfq_sent++;
		return MSG_DONE;
	default:
		break;
	}
	switch (type) {
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
		handle_execute(s, msg, m);
		return MSG_DONE;
	case 'P':
		return handle_parse(s, msg, m);
	case 'B':
		return handle_bind(s, msg, m);
	case 'C':
		if (m > 6 && msg[m - 1] == 0 && (msg[5] == 'S' || msg[5] == 'P'))
			pend_add(s, PEND_CLOSE, msg[5] == 'S' ? (const char *)msg + 6 : NULL, NULL);
		if (m > 6 && msg[m - 1] == 0 && msg[5] == 'P')
			portal_free_v(gw_map_del(&s->portals, msg + 6, strlen((const char *)msg + 6)));
		s->unsynced = true;
		break;
	case 'D':
		s->unsynced = true;
		mask_describe(s, msg, m);
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
	while (gw_buf_len(rx) && gw_buf_len(&s->up->tx) < HIGH_WATER && !s->lookup_q && !s->copy_wait && !s->aud_wait &&
		!(s->mask_wait && s->mcat_new)) {
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
		cur_end(s);
		if (r == MSG_ENDED)
			return -1;
		if (r == MSG_WAIT)
			break;
		gw_buf_consume(rx, (size_t)m);
		if ((s->evs || s->hold_set) && !submit_events(s))
			break; /* held until its record is committed */
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
		const uint8_t *v;
		size_t len;
		if (gw_pg_row_field(body, n, &off, &v, &len) < 0)
			goto out;
		if (v)
			cols[i] = gw_xstrndup((const char *)v, len);
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
		if (e->mcat) {
			gw_warn("session %s: reading the catalog for masking failed: %s (%s); results are masked whole until it "
				"can be read", s->reg->id, text, code);
			if (s->mcat_new)
				gw_mask_cat_abandon(s->mcat_new);
			s->mcat_new = NULL;
			return 0;
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
		if (e->mcat && s->mcat_new)
			gw_mask_cat_row(s->mcat_new, body, n);
		return 0;
	case 'A':
		if (s->mk) {
			uint64_t k = 0;
			gw_mask_notification(s->mk, body, n, s->txn_tainted, s->srv ? gw_server_pid(s->srv) : 0, &s->cl.tx, &k);
			return 0;
		}
		gw_buf_append(&s->cl.tx, msg, m);
		return 0;
	case 'S':
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
		pend_group_done(s, s->rfq_recv);
		pbind_group_done(s, s->rfq_recv, s->txstatus);
		outcome_group_done(s, s->rfq_recv);
		md_group_done(s, s->rfq_recv);
		if (s->mk)
			mask_copy_reset(s);
		if (s->txstatus == 'I')
			s->txn_tainted = false;
		gwq_ready(s);
		break;
	case '1':
		pend_confirm(s, PEND_PARSE);
		break;
	case '2':
		pbind_confirm(s);
		break;
	case '3':
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
		s->dlp_refused = false; /* the server's own error ends the result: it is what the client needs to see */
		/* masked before the outcome is recorded (it counts the values masked in the error) */
		bool masked = s->mk && mask_server(s, type, msg, m) == 1;
		outcome_from_server(s, type, body, n);
		char sev[16] = "";
		if (!gw_pg_error_field(body, n, 'V', sev, sizeof(sev)))
			gw_pg_error_field(body, n, 'S', sev, sizeof(sev));
		if (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"))
			s->upstream_fatal = true;
		if (masked)
			return 0;
		break;
	}
	case 'D':
	case 'd':
		if (type == 'D')
			s->res_rows++;
		if (over_max_rows(s))
			return 0;
		if (s->mk) {
			int r = mask_server(s, type, msg, m);
			if (r != 0)
				return r < 0 ? -1 : 0;
		}
		break;
	case 'T':
	case 'n':
	case 'H':
	case 'c':
	case 'N':
	case 'A':
		if (s->mk) {
			int r = mask_server(s, type, msg, m);
			if (r != 0)
				return r < 0 ? -1 : 0;
		}
		break;
	case 'V':
		if (s->mk && n >= 4 && (int32_t)gw_get_u32(body) >= 0) {
			/*
			 * FunctionCallResponse: a value of a type the gateway does not know,
			 * from a function it cannot see into: withheld under masking.
			 */
			struct inflight *f = infl_front(s);
			if (f && f->group == s->rfq_recv)
				f->masked++;
			gw_pg_notice(&s->cl.tx, "pgmoat: the result of a function call (fast-path) was withheld because "
				"masking is on; call the function in a SELECT instead");
			size_t k = gw_buf_msg_begin(&s->cl.tx, 'V');
			gw_buf_put_i32(&s->cl.tx, -1);
			gw_buf_msg_end(&s->cl.tx, k);
			return 0;
		}
		break;
	case 's':
		outcome_from_server(s, type, body, n);
		if (dlp_refusal(s))
			return 0;
		break;
	case 'C':
		outcome_from_server(s, type, body, n);
		if (dlp_refusal(s)) {
			s->rows = 0;
			s->cut = false;
			return 0;
		}
		if (n >= 8 && !memcmp(body, "PREPARE", 8))
			pend_confirm(s, PEND_PREPARE);
		if (n >= 11 && !memcmp(body, "DEALLOCATE", 10) && (body[10] == 0 || body[10] == ' '))
			pend_confirm(s, PEND_DEALLOCATE);
		if (n >= 12 && !memcmp(body, "DISCARD ALL", 12))
			pend_confirm(s, PEND_DISCARD);
		if (s->mk && (s->copy_withheld || s->copy_st) && mask_server(s, type, msg, m) == 1) {
			s->rows = 0;
			s->cut = false;
			return 0;
		}
		if (s->cut) {
			finish_cut(s, msg, m);
			s->rows = 0;
			s->cut = false;
			return 0;
		}
		s->rows = 0;
		break;
	case 'I':
		outcome_from_server(s, type, body, n);
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
	while (gw_buf_len(rx) && gw_buf_len(&s->cl.tx) < HIGH_WATER && !s->dlp_job) {
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
		if (m > 0 && s->dlp_nrows && type != 'D' && !gwq_active(s, GWQ_OWN)) {
			/* rows wait for the DLP provider: what follows them waits too, in order */
			dlp_flush(s);
			break;
		}
		if (m == 0) {
			if (gw_buf_len(rx) >= 5 && (size_t)len + 1 > STREAM_MIN && server_streamable(type) &&
				s->mk && (type == 'D' || (type == 'd' && s->copy_plan)) &&
				!(gwq_active(s, GWQ_OWN) && !gwq_active(s, GWQ_OWN)->mcat)) {
				/* masking rewrites whole rows, COPY's too (and the catalog's rows are read whole): wait for all of it */
				if ((size_t)len + 1 > s->gw->cfg->mask_max_row && !gwq_active(s, GWQ_OWN)) {
					session_fatal(s, "54000", "pgmoat: a result row of %u bytes is larger than masking.max_row (%zu): "
						"it cannot be masked, so the session ends; select fewer or smaller columns", len + 1,
						s->gw->cfg->mask_max_row);
					return -1;
				}
				break;
			}
			if (gw_buf_len(rx) >= 5 && (size_t)len + 1 > STREAM_MIN && server_streamable(type)) {
				if (type == 'D' && !gwq_active(s, GWQ_OWN))
					s->res_rows++;
				stream_start(&s->sf, rx, &s->cl.tx, type, len, gwq_active(s, GWQ_OWN) ||
					(s->mk && type == 'd' && !s->copy_st) || over_max_rows(s));
				continue;
			}
			break;
		}
		if (server_message(s, type, gw_buf_rd(rx), (size_t)m) < 0)
			return -1;
		if (s->srv)
			gw_buf_consume(rx, (size_t)m);
	}
	if (s->dlp_nrows && !s->dlp_job && s->srv)
		dlp_flush(s); /* nothing more to read now: what is held goes to the provider */
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
		const gw_conn_cfg *ucfg = gw_pool_cfg(s->pool);
		if (ucfg->relay)
			session_fatal(s, "08006", "pgmoat: the tunnel through relay \"%s\" was lost (the relay stopped, or lost its "
				"connection to the gateway or the database)", ucfg->relay);
		else
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
	s->mk = s->gw->masker && !gw_masker_exempt(s->gw->masker, ident) ? s->gw->masker : NULL;
	s->pool = pool;
	s->txstatus = 'I';
	s->evs_tail = &s->evs;
	s->opened_wall = gw_wall_us();
	s->opened_mono = gw_mono_us();
	snprintf(s->auth_method, sizeof(s->auth_method), "%s", auth_method);
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

	rec_session_open(s, ident->kind, tmpl.client_addr, tmpl.tls, tmpl.application_name);

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
	} else {
		/* no decisions; the statement names are still followed, for the record of each Execute */
		gw_pctx_init(&s->pol, s->gw->cfg, NULL, ident->name, ident->groups, tmpl.connection);
		s->pol.named = named_hook;
		s->pol.named_ud = s;
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
	gw_session_audit_flush(wk); /* events nothing waited for go within a tick */
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
		/* session_follows_token_expiry: a JWT's exp, a client certificate's notAfter, an API token's ttl */
		if (s->ident.session_until_us && !s->closing && gw_wall_us() >= s->ident.session_until_us) {
			session_fatal(s, "57P01", "pgmoat: the %s that opened this session expired",
				!strcmp(s->auth_method, "cert") ? "client certificate" :
				!strcmp(s->auth_method, "jwt") ? "token (JWT)" : "API token");
			continue;
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
