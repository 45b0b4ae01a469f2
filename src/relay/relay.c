/*
 * `pgmoat relay`: the process beside the database; see relay.h.
 *
 * One event loop on one thread. The relay keeps `tunnels` TLS connections
 * to the gateway logged in and idle; when the gateway opens one for a
 * target, the relay takes a logged-in backend from its pool for that target
 * (upstream/, the same code the gateway uses for direct connections: SCRAM,
 * md5, password, peer over a Unix socket), replays the login's tail to the
 * gateway, and from then on copies bytes both ways until either side closes.
 * A new idle tunnel replaces the one taken at once.
 *
 * Failures to reach or log in to the gateway back off exponentially with
 * jitter (from 200 ms, capped at 30 s), one attempt at a time, and the
 * backoff resets after a login succeeds.
 */
#include "relay/relay.h"
#include "core/buf.h"
#include "doctor/doctor.h"
#include "core/log.h"
#include "core/util.h"
#include "net/conn.h"
#include "net/loop.h"
#include "pgwire/pgwire.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKOFF_START_US 200000ull
#define BACKOFF_CAP_US 30000000ull
#define PIPE_HIGH (1u << 20)      /* stop reading a side while the other has this much unsent */
#define READ_MAX (256u << 10)
#define CTRL_MAX (1u << 20)       /* a control message from the gateway (doctor needs) */

typedef struct relay relay;

typedef struct rtun {
	relay *r;
	gw_conn gw;              /* TLS to the gateway */
	enum { T_CONNECTING, T_HANDSHAKE, T_HELLO, T_IDLE, T_OPENING, T_PIPE, T_DRAIN, T_DOCTOR } st;
	const gw_conn_cfg *target;
	gw_pool *pool;
	gw_server *srv;
	gw_pool_wait *wait;
	gw_conn *db;             /* gw_server_conn(srv) while piping */
	bool db_eof;
	bool closed;             /* tun_close ran: freed after this batch of events */
	uint64_t deadline;
	struct rtun *next, *prev;
} rtun;

struct relay {
	gw_relay_config *cfg;
	gw_loop *loop;
	gw_tls_ctx *tls;
	const char *tls_name;    /* the name the gateway's certificate must carry */
	gw_pool **pools;         /* per target */
	rtun *tuns;
	int nidle, nconnecting, npiped;
	uint64_t backoff_us, next_try_us;
	bool connected_once, announced;
	struct sockaddr_storage gw_addr; /* the gateway's address, resolved once and again after a failure */
	socklen_t gw_addrlen;
	char instance[24];
	char targets[512];
};

static void tun_io(gw_io *io, uint32_t events);
static void db_io(gw_io *io, uint32_t events);
static void top_up(relay *r);

/* ---- tunnels to the gateway ---- */

static void tun_unlink(rtun *t)
{
	relay *r = t->r;
	if (t->prev)
		t->prev->next = t->next;
	else
		r->tuns = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

static void tun_count(rtun *t, int d)
{
	relay *r = t->r;
	switch (t->st) {
	case T_CONNECTING:
	case T_HANDSHAKE:
	case T_HELLO: r->nconnecting += d; break;
	case T_IDLE: r->nidle += d; break;
	default: r->npiped += d; break;
	}
}

static void tun_set(rtun *t, int st)
{
	tun_count(t, -1);
	t->st = st;
	tun_count(t, +1);
}

static void tun_close(rtun *t)
{
	relay *r = t->r;
	if (t->closed)
		return;
	t->closed = true;
	tun_count(t, -1);
	tun_unlink(t);
	if (t->wait)
		gw_pool_cancel(t->wait);
	if (t->srv)
		gw_pool_release(t->srv, r->loop, false);
	gw_conn_close(&t->gw);
	gw_loop_defer_free(r->loop, free, t);
}

/* A tunnel that never got logged in: back off before the next attempt. */
static void tun_fail(rtun *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tun_fail(rtun *t, const char *fmt, ...)
{
	relay *r = t->r;
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	r->gw_addrlen = 0; /* resolve again next time: the gateway may have moved */
	r->backoff_us = r->backoff_us ? r->backoff_us * 2 : BACKOFF_START_US;
	if (r->backoff_us > BACKOFF_CAP_US)
		r->backoff_us = BACKOFF_CAP_US;
	uint32_t rnd;
	gw_random_bytes(&rnd, sizeof(rnd));
	/* Equal jitter: half the backoff, plus up to the other half at random. */
	uint64_t delay = r->backoff_us / 2 + (uint64_t)rnd % (r->backoff_us / 2 + 1);
	r->next_try_us = gw_mono_us() + delay;
	gw_warn("relay %s: gateway %s:%d: %s; retrying in %.1f s", r->cfg->name, r->cfg->gw_host, r->cfg->gw_port, why,
		(double)delay / 1e6);
	r->announced = false;
	tun_close(t);
}

static void tun_watch(rtun *t)
{
	uint32_t ev = 0;
	if (t->st == T_DOCTOR)
		ev = 0; /* the checks' thread answers; the tunnel waits */
	else if (t->st == T_CONNECTING)
		ev = EPOLLOUT;
	else if (t->st == T_OPENING && gw_buf_len(&t->gw.rx) >= PIPE_HIGH)
		ev = EPOLLRDHUP; /* enough held while the backend logs in: notice only the gateway leaving */
	else {
		if (t->st != T_DRAIN && (!t->db || gw_buf_len(&t->db->tx) < PIPE_HIGH))
			ev |= EPOLLIN;
		if (gw_buf_len(&t->gw.tx) || t->gw.want_write)
			ev |= EPOLLOUT;
	}
	gw_loop_watch(t->r->loop, &t->gw.io, ev);
}

static void tun_open_new(relay *r)
{
	char err[300] = "";
	/* DNS only when there is no address yet or the last attempt failed: the loop carries live pipes */
	int fd = -1;
	if (r->gw_addrlen || gw_tcp_resolve(r->cfg->gw_host, r->cfg->gw_port, &r->gw_addr, &r->gw_addrlen, err, sizeof(err)))
		fd = gw_tcp_connect_addr(&r->gw_addr, r->gw_addrlen, err, sizeof(err));
	rtun *t = gw_xcalloc(1, sizeof(*t));
	t->r = r;
	t->st = T_CONNECTING;
	t->next = r->tuns;
	if (r->tuns)
		r->tuns->prev = t;
	r->tuns = t;
	tun_count(t, +1);
	gw_conn_init(&t->gw, fd);
	t->gw.io.cb = tun_io;
	t->gw.io.ud = t;
	if (fd < 0) {
		t->gw.io.fd = -1;
		tun_fail(t, "%s", err);
		return;
	}
	t->deadline = gw_mono_us() + r->cfg->connect_timeout_us;
	tun_watch(t);
}

static void top_up(relay *r)
{
	if (gw_mono_us() < r->next_try_us)
		return;
	int want = r->cfg->tunnels - r->nidle - r->nconnecting;
	if (r->backoff_us && want > 1 - r->nconnecting)
		want = 1 - r->nconnecting; /* while failing: one attempt at a time */
	for (int i = 0; i < want; i++)
		tun_open_new(r);
}

static void send_hello(rtun *t)
{
	relay *r = t->r;
	/* Built aside and wiped once written: the token does not linger in freed buffers. */
	gw_buf b = {0};
	size_t m = gw_buf_msg_begin(&b, 'H');
	gw_buf_put_i32(&b, GW_RELAY_PROTO);
	gw_buf_put_str(&b, r->cfg->name);
	gw_buf_put_str(&b, r->cfg->token);
	gw_buf_put_str(&b, r->instance);
	gw_buf_put_str(&b, r->targets);
	gw_buf_put_str(&b, "pgmoat relay");
	gw_buf_msg_end(&b, m);
	ssize_t w = gw_buf_len(&t->gw.tx) ? 0 : gw_conn_write_direct(&t->gw, gw_buf_rd(&b), gw_buf_len(&b));
	if (w < 0)
		w = 0;
	if ((size_t)w < gw_buf_len(&b)) /* rare on a fresh connection: the rest goes the usual way */
		gw_buf_append(&t->gw.tx, gw_buf_rd(&b) + w, gw_buf_len(&b) - (size_t)w);
	explicit_bzero(b.data, b.cap);
	gw_buf_free(&b);
	tun_set(t, T_HELLO);
}

/* Move what from has into to's send buffer. */
static void move(gw_conn *from, gw_conn *to)
{
	if (gw_buf_len(&from->rx)) {
		gw_buf_append(&to->tx, gw_buf_rd(&from->rx), gw_buf_len(&from->rx));
		gw_buf_free(&from->rx);
	}
}

/* The backend for an opened tunnel is ready (or not). */
static void on_db(void *arg, gw_server *srv, const char *err)
{
	rtun *t = arg;
	relay *r = t->r;
	t->wait = NULL;
	gw_buf *tx = &t->gw.tx;
	if (!srv) {
		gw_warn("relay %s: target %s: %s", r->cfg->name, t->target->name, err ? err : "no connection");
		char msg[500];
		snprintf(msg, sizeof(msg), "relay %s cannot log in to its target %s: %s", r->cfg->name, t->target->name,
			err ? err : "no connection");
		gw_pg_error(tx, "FATAL", "08006", msg, NULL, NULL);
		tun_set(t, T_DRAIN);
		t->db_eof = true;
		tun_io(&t->gw.io, EPOLLOUT);
		return;
	}
	t->srv = srv;
	t->db = gw_server_conn(srv);
	t->db->io.cb = db_io;
	t->db->io.ud = t;
	/* The login's tail, as the backend sent it to the relay. */
	gw_pg_auth(tx, PG_AUTH_OK, NULL, 0);
	gw_server_param_status(srv, tx);
	gw_pg_backend_key(tx, gw_server_pid(srv), gw_server_key(srv));
	gw_pg_ready(tx, 'I');
	move(&t->gw, t->db); /* anything the gateway sent after its Open */
	tun_set(t, T_PIPE);
	gw_debug("relay %s: tunnel opened to target %s (backend pid %u)", r->cfg->name, t->target->name, gw_server_pid(srv));
	gw_loop_watch(r->loop, &t->db->io, EPOLLIN);
	tun_io(&t->gw.io, EPOLLOUT);
}

/* ---- doctor checks for the gateway, on a thread (they take a login and a few catalog queries) ---- */

typedef struct doc_job {
	rtun *t;
	const gw_conn_cfg *target;
	char *needs;
	char *out;               /* JSON findings, or NULL */
	char err[300];
} doc_job;

static void doctor_done(void *arg)
{
	doc_job *j = arg;
	rtun *t = j->t;
	if (j->out) {
		size_t m = gw_buf_msg_begin(&t->gw.tx, 'd');
		gw_buf_put_str(&t->gw.tx, j->out);
		gw_buf_msg_end(&t->gw.tx, m);
	} else {
		gw_pg_error(&t->gw.tx, "ERROR", "58000", j->err, NULL, NULL);
	}
	t->db_eof = true;
	tun_set(t, T_DRAIN);
	free(j->needs);
	free(j->out);
	free(j);
	tun_io(&t->gw.io, EPOLLOUT);
}

static void *doctor_thread(void *arg)
{
	doc_job *j = arg;
	json_error_t je;
	json_t *needs = json_loads(j->needs, 0, &je);
	if (!needs || !json_is_object(needs)) {
		snprintf(j->err, sizeof(j->err), "the doctor's needs are not a JSON object");
	} else {
		/* What the relay knows better than the gateway: how it reaches the target. */
		json_object_set_new(needs, "upstream", json_pack("{s:s,s:i,s:s}", "host", j->target->host, "port",
			j->target->port, "sslmode", gw_sslmode_str(j->target->sslmode)));
		PGconn *c = gw_doctor_connect(j->target);
		if (PQstatus(c) != CONNECTION_OK) {
			snprintf(j->err, sizeof(j->err), "cannot log in to target %s: %s", j->target->name, PQerrorMessage(c));
			j->err[strcspn(j->err, "\n")] = 0;
		} else {
			json_t *f = gw_doctor_check(c, needs, j->err, sizeof(j->err));
			if (f) {
				j->out = json_dumps(f, JSON_COMPACT);
				json_decref(f);
			}
		}
		PQfinish(c);
	}
	json_decref(needs);
	gw_loop_post(j->t->r->loop, doctor_done, j);
	return NULL;
}

static void doctor_start(rtun *t, const gw_conn_cfg *tc, const char *needs)
{
	doc_job *j = gw_xcalloc(1, sizeof(*j));
	j->t = t;
	j->target = tc;
	j->needs = gw_xstrdup(needs);
	tun_set(t, T_DOCTOR);
	gw_loop_unwatch(&t->gw.io);
	gw_info("relay %s: running the doctor's checks on target %s for the gateway", t->r->cfg->name, tc->name);
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, doctor_thread, j) != 0) {
		snprintf(j->err, sizeof(j->err), "the relay cannot start a thread for the checks");
		gw_loop_post(t->r->loop, doctor_done, j);
	}
	pthread_attr_destroy(&attr);
}

/* One control message on an idle tunnel. Returns -1 when t is gone. */
static int on_control(rtun *t, uint8_t type, const uint8_t *body, size_t n)
{
	relay *r = t->r;
	const uint8_t *z = memchr(body, 0, n);
	if (!z || (type != 'O' && type != 'C' && type != 'D')) {
		gw_warn("relay %s: unexpected message '%c' from the gateway on an idle tunnel; closing it", r->cfg->name, type);
		tun_close(t);
		return -1;
	}
	const char *target = (const char *)body;
	const gw_conn_cfg *tc = gw_relay_config_target(r->cfg, target);
	if (!tc) {
		gw_warn("relay %s: the gateway asked for target \"%.100s\", which is not one of this relay's targets (%s); refused",
			r->cfg->name, target, r->targets);
		char msg[400];
		snprintf(msg, sizeof(msg), "relay %s has no target \"%.100s\" (its targets: %s)", r->cfg->name, target, r->targets);
		gw_pg_error(&t->gw.tx, "FATAL", "08004", msg, NULL, NULL);
		tun_set(t, T_DRAIN);
		t->db_eof = true;
		return 0;
	}
	size_t ti = (size_t)(tc - r->cfg->targets);
	if (type == 'C') {
		size_t off = (size_t)(z + 1 - body);
		if (n - off < 8) {
			tun_close(t);
			return -1;
		}
		gw_upstream_cancel(tc, NULL, gw_get_u32(body + off), gw_get_u32(body + off + 4));
		gw_debug("relay %s: cancel forwarded to target %s", r->cfg->name, tc->name);
		tun_close(t);
		return -1;
	}
	if (type == 'D') {
		size_t off = (size_t)(z + 1 - body);
		if (!memchr(body + off, 0, n - off)) {
			tun_close(t);
			return -1;
		}
		doctor_start(t, tc, (const char *)body + off);
		return 0;
	}
	t->target = tc;
	t->pool = r->pools[ti];
	tun_set(t, T_OPENING);
	top_up(r); /* a fresh idle tunnel replaces this one now */
	gw_server *srv = gw_pool_acquire(t->pool, r->loop, on_db, t, &t->wait);
	if (srv) {
		t->wait = NULL;
		on_db(t, srv, NULL);
		return -1; /* on_db drove the tunnel */
	}
	/* A connect that failed at once answered inside gw_pool_acquire: on_db drove (and maybe closed) it. */
	return t->st == T_OPENING ? 0 : -1;
}

static void pipe_end(rtun *t, const char *why)
{
	gw_debug("relay %s: tunnel to target %s ends: %s", t->r->cfg->name, t->target ? t->target->name : "?", why);
	tun_close(t);
}

static void db_watch(rtun *t)
{
	if (!t->db || t->db_eof)
		return;
	uint32_t ev = 0;
	if (gw_buf_len(&t->gw.tx) < PIPE_HIGH)
		ev |= EPOLLIN;
	if (gw_buf_len(&t->db->tx))
		ev |= EPOLLOUT;
	gw_loop_watch(t->r->loop, &t->db->io, ev);
}

static void db_io(gw_io *io, uint32_t events);

/* Posted: read what a TLS target already holds (t may have closed meanwhile: then nothing). */
static void db_kick(void *arg)
{
	rtun *t = arg;
	if (!t->closed && t->st == T_PIPE && t->db)
		db_io(&t->db->io, 0);
}

/* The backend's side of a piped tunnel. */
static void db_io(gw_io *io, uint32_t events)
{
	rtun *t = io->ud;
	bool can = gw_buf_len(&t->gw.tx) < PIPE_HIGH;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || (can && gw_conn_has_pending(t->db))) {
		ssize_t r;
		do {
			/* a TLS target may hold decrypted bytes epoll will not announce: take them while there is room */
			r = gw_conn_recv(t->db, READ_MAX);
			move(t->db, &t->gw);
		} while (r > 0 && gw_conn_has_pending(t->db) && gw_buf_len(&t->gw.tx) < PIPE_HIGH);
		if (r < 0) {
			/* The backend went away (a FATAL of its own, or a crash): pass on what it said, then close. */
			t->db_eof = true;
			gw_pool_release(t->srv, t->r->loop, false);
			t->srv = NULL;
			t->db = NULL;
			tun_set(t, T_DRAIN);
		}
	}
	if (t->db && gw_buf_len(&t->db->tx) && gw_conn_flush(t->db) < 0) {
		pipe_end(t, "cannot write to the backend");
		return;
	}
	tun_io(&t->gw.io, EPOLLOUT);
}

static void tun_io(gw_io *io, uint32_t events)
{
	rtun *t = io->ud;
	relay *r = t->r;
	if (t->st == T_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			tun_fail(t, "cannot connect: %s", strerror(soerr));
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (gw_conn_start_tls(&t->gw, r->tls, false, r->tls_name) < 0) {
			tun_fail(t, "cannot start TLS: %s", t->gw.err);
			return;
		}
		tun_set(t, T_HANDSHAKE);
	}
	if (t->st == T_HANDSHAKE) {
		int h = gw_conn_handshake(&t->gw);
		if (h < 0) {
			/* Nothing of ours was sent: the hello goes only over a verified connection. */
			tun_fail(t, "TLS handshake failed (is gateway.ca the CA of the gateway's certificate, and server_name "
				"a name in it?): %s", t->gw.err);
			return;
		}
		if (h == 1)
			send_hello(t);
	}
	if (t->st == T_HELLO || t->st == T_IDLE) {
		ssize_t rr = gw_conn_recv(&t->gw, CTRL_MAX + 5);
		while (gw_buf_len(&t->gw.rx)) {
			uint8_t type;
			uint32_t len;
			long m = gw_pg_frame(gw_buf_rd(&t->gw.rx), gw_buf_len(&t->gw.rx), CTRL_MAX, &type, &len);
			if (m < 0) {
				gw_warn("relay %s: malformed message from the gateway; closing the tunnel", r->cfg->name);
				tun_close(t);
				return;
			}
			if (m == 0)
				break;
			uint8_t *body = gw_xmalloc(len - 4 + 1);
			memcpy(body, gw_buf_rd(&t->gw.rx) + 5, len - 4);
			gw_buf_consume(&t->gw.rx, (size_t)m);
			if (t->st == T_HELLO) {
				if (type == 'h') {
					tun_set(t, T_IDLE);
					if (!r->announced)
						gw_info("relay %s: logged in to gateway %s:%d as instance %s (targets %s)", r->cfg->name,
							r->cfg->gw_host, r->cfg->gw_port, r->instance, r->targets);
					r->announced = r->connected_once = true;
					r->backoff_us = 0;
					r->next_try_us = 0;
					free(body);
					top_up(r);
					continue;
				}
				char msg[300] = "the gateway refused the tunnel", code[8] = "";
				if (type == 'E') {
					gw_pg_error_field(body, len - 4, 'M', msg, sizeof(msg));
					gw_pg_error_field(body, len - 4, 'C', code, sizeof(code));
				}
				free(body);
				tun_fail(t, "%s%s%s%s", msg, *code ? " (SQLSTATE " : "", code, *code ? ")" : "");
				return;
			}
			int cr = on_control(t, type, body, len - 4);
			free(body);
			if (cr < 0)
				return;
			if (t->st != T_IDLE)
				break;
		}
		if (rr < 0 && (t->st == T_HELLO || t->st == T_IDLE)) {
			if (t->st == T_HELLO)
				tun_fail(t, "the gateway closed the connection during login%s%s", t->gw.err[0] ? ": " : "", t->gw.err);
			else {
				gw_debug("relay %s: the gateway closed an idle tunnel", r->cfg->name);
				if (r->nidle == 1)
					r->announced = false;
				tun_close(t);
				top_up(r);
			}
			return;
		}
	} else if (t->st == T_OPENING) {
		/* Waiting for the backend: keep what arrives, notice the gateway leaving. */
		if (gw_conn_recv(&t->gw, READ_MAX) < 0) {
			pipe_end(t, "the gateway closed it before the backend was ready");
			return;
		}
	} else if (t->st == T_PIPE && (events & (EPOLLIN | EPOLLHUP | EPOLLERR) || t->gw.want_write ||
			(gw_conn_has_pending(&t->gw) && gw_buf_len(&t->db->tx) < PIPE_HIGH))) {
		for (;;) {
			ssize_t rr = gw_conn_recv(&t->gw, READ_MAX);
			move(&t->gw, t->db);
			if (rr < 0) {
				pipe_end(t, "the gateway closed it");
				return;
			}
			if (rr == 0 || !gw_conn_has_pending(&t->gw) || gw_buf_len(&t->db->tx) >= PIPE_HIGH)
				break;
		}
		if (gw_buf_len(&t->db->tx) && gw_conn_flush(t->db) < 0) {
			pipe_end(t, "cannot write to the backend");
			return;
		}
	}
	if (gw_buf_len(&t->gw.tx) && gw_conn_flush(&t->gw) < 0) {
		pipe_end(t, "cannot write to the gateway");
		return;
	}
	if (t->st == T_DRAIN && !gw_buf_len(&t->gw.tx)) {
		pipe_end(t, "the backend closed it");
		return;
	}
	tun_watch(t);
	db_watch(t);
	/* room again on the gateway side while the target's TLS holds bytes: read them now */
	if (t->st == T_PIPE && t->db && gw_conn_has_pending(t->db) && gw_buf_len(&t->gw.tx) < PIPE_HIGH)
		gw_loop_post(t->r->loop, db_kick, t);
}

/* ---- warm backends, timeouts ---- */

/* Per target, keep `warm` logged-in backends idle, opening new ones (never cycling an idle one). */
static void warm_up(relay *r)
{
	for (size_t i = 0; i < r->cfg->n_targets; i++) {
		int total, idle, waiting;
		gw_pool_counts(r->pools[i], &total, &idle, &waiting);
		if (!waiting && idle + gw_pool_growing(r->pools[i]) < r->cfg->warm)
			gw_pool_grow(r->pools[i], r->loop);
	}
}

static void on_tick(void *arg)
{
	relay *r = arg;
	uint64_t now = gw_mono_us();
	for (rtun *t = r->tuns, *nt; t; t = nt) {
		nt = t->next;
		if ((t->st == T_CONNECTING || t->st == T_HANDSHAKE || t->st == T_HELLO) && t->deadline && t->deadline <= now)
			tun_fail(t, "no answer within connect_timeout");
	}
	top_up(r);
	warm_up(r);
	for (size_t i = 0; i < r->cfg->n_targets; i++)
		gw_pool_tick(r->pools[i], r->loop);
}

static void *loop_main(void *arg)
{
	relay *r = arg;
	gw_loop_run(r->loop);
	return NULL;
}

/* ---- command line ---- */

static const char relay_usage[] =
	"usage: pgmoat relay -c relay.yaml\n"
	"       pgmoat relay --gateway HOST:PORT --name NAME --token-file FILE --ca FILE\n"
	"       pgmoat relay doctor -c relay.yaml [--json]   (the database-side checks alone)\n"
	"                    [--server-name NAME] --target 'name=T host=H port=P dbname=D user=U [password=env:V]' ...\n"
	"\n"
	"Run beside the database: dial out to the gateway's listen.relay over TLS (the gateway's\n"
	"certificate must chain to --ca and carry --server-name, default the gateway host), log in\n"
	"with the relay identity's token (`pgmoat identity add NAME --kind relay`, `pgmoat token\n"
	"issue NAME`), keep `tunnels` connections ready, and log in to the targets on the\n"
	"gateway's behalf. The gateway never learns a target's password and reaches nothing else.\n"
	"Flags override relay.yaml. Stop with Ctrl-C (SIGINT) or SIGTERM.\n"
	"\n"
	"  -c, --config FILE      relay.yaml (see README, \"Relay\")\n"
	"  --gateway HOST:PORT    the gateway's listen.relay\n"
	"  --ca FILE              CA file the gateway's certificate must chain to\n"
	"  --server-name NAME     name the gateway's certificate must carry\n"
	"  --name NAME            the relay identity\n"
	"  --token-file FILE      the relay identity's token\n"
	"  --target WORDS         a target, in libpq keyword=value words (repeatable)\n"
	"  --tunnels N            idle tunnels kept ready (default 4)\n";

static const char relay_doctor_usage[] =
	"usage: pgmoat relay doctor -c relay.yaml [--json]\n"
	"\n"
	"The doctor's database-side checks, run beside the database with the relay's own credentials,\n"
	"before any gateway exists: for each target, its role's attributes and memberships, what it owns,\n"
	"listen_addresses and pg_hba.conf routes beside the relay (where readable), and the relay's own\n"
	"transport to it. Without the gateway's policies every privilege counts as needed; `pgmoat doctor`\n"
	"on the gateway adds that comparison. Exit 0 no high finding, 1 a high one, 2 a target not checked.\n";

/* `pgmoat relay doctor`: the checks of doctor/ for each target, no gateway involved. */
static int relay_doctor(int argc, char **argv)
{
	const char *path;
	bool json;
	int arc = gw_doctor_args(argc, argv, "pgmoat relay doctor", relay_doctor_usage, &path, &json);
	if (arc >= 0)
		return arc;
	char *errors = NULL;
	gw_relay_config *cfg = gw_relay_config_load(path, &errors);
	if (!cfg) {
		fputs(errors, stderr);
		free(errors);
		return 2;
	}
	if (!cfg->n_targets) {
		fprintf(stderr, "pgmoat relay doctor: %s lists no targets: nothing to check\n", path);
		gw_relay_config_free(cfg);
		return 2;
	}
	json_t *entries = json_array();
	for (size_t i = 0; i < cfg->n_targets; i++) {
		const gw_conn_cfg *tc = &cfg->targets[i];
		json_t *needs = json_pack("{s:s,s:s,s:{s:s,s:i,s:s}}", "connection", tc->name, "role", tc->user, "upstream",
			"host", tc->host, "port", tc->port, "sslmode", gw_sslmode_str(tc->sslmode));
		char err[1024], header[600], what[400];
		snprintf(header, sizeof(header), "target %s (%s@%s:%d/%s, sslmode %s)", tc->name, tc->user, tc->host, tc->port,
			tc->database, gw_sslmode_str(tc->sslmode));
		snprintf(what, sizeof(what), "%s:%d as %s", tc->host, tc->port, tc->user);
		PGconn *pc = gw_doctor_connect(tc);
		json_t *findings = gw_doctor_run(pc, needs, what, err, sizeof(err));
		PQfinish(pc);
		json_decref(needs);
		json_t *entry = json_pack("{s:s,s:s}", "name", tc->name, "header", header);
		if (findings)
			json_object_set_new(entry, "findings", findings);
		else {
			fprintf(stderr, "pgmoat relay doctor: target %s: %s\n", tc->name, err);
			json_object_set_new(entry, "error", json_string(err));
		}
		json_array_append_new(entries, entry);
	}
	int rc = gw_doctor_report(entries, json);
	json_decref(entries);
	gw_relay_config_free(cfg);
	return rc;
}

int gw_relay_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "doctor"))
		return relay_doctor(argc - 1, argv + 1);
	const char *cfg_path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(relay_usage, stdout);
			return 0;
		}
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
			cfg_path = argv[++i];
	}
	char *errors = NULL;
	gw_relay_config *cfg = gw_relay_config_load(cfg_path, &errors);
	if (!cfg) {
		fputs(errors, stderr);
		fprintf(stderr, "pgmoat relay: the configuration has errors; nothing was started\n");
		free(errors);
		return 1;
	}
	char err[512] = "";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			i++;
			continue;
		}
		if (!v) {
			fprintf(stderr, "pgmoat relay: %s needs a value\n%s", a, relay_usage);
			gw_relay_config_free(cfg);
			return 2;
		}
		i++;
		if (!strcmp(a, "--gateway")) {
			if (!gw_split_hostport(v, cfg->gw_host, sizeof(cfg->gw_host), &cfg->gw_port)) {
				fprintf(stderr, "pgmoat relay: --gateway expects HOST:PORT, got '%s'\n", v);
				gw_relay_config_free(cfg);
				return 2;
			}
		} else if (!strcmp(a, "--ca")) {
			free(cfg->gw_ca);
			cfg->gw_ca = gw_xstrdup(v);
		} else if (!strcmp(a, "--server-name")) {
			free(cfg->gw_server_name);
			cfg->gw_server_name = gw_xstrdup(v);
		} else if (!strcmp(a, "--name")) {
			free(cfg->name);
			cfg->name = gw_xstrdup(v);
		} else if (!strcmp(a, "--token-file")) {
			FILE *f = fopen(v, "rb");
			char tok[512] = "";
			size_t n = f ? fread(tok, 1, sizeof(tok) - 1, f) : 0;
			if (f)
				fclose(f);
			while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
				tok[--n] = 0;
			if (!n) {
				fprintf(stderr, "pgmoat relay: --token-file %s: %s\n", v, f ? "empty" : strerror(errno));
				gw_relay_config_free(cfg);
				return 2;
			}
			free(cfg->token);
			cfg->token = gw_xstrdup(tok);
			explicit_bzero(tok, sizeof(tok));
		} else if (!strcmp(a, "--target")) {
			if (gw_relay_config_add_target(cfg, v, err, sizeof(err)) < 0) {
				fprintf(stderr, "pgmoat relay: %s\n", err);
				gw_relay_config_free(cfg);
				return 2;
			}
		} else if (!strcmp(a, "--tunnels")) {
			cfg->tunnels = atoi(v);
			if (cfg->tunnels < 1 || cfg->tunnels > 1000) {
				fprintf(stderr, "pgmoat relay: --tunnels expects 1-1000\n");
				gw_relay_config_free(cfg);
				return 2;
			}
		} else {
			fprintf(stderr, "pgmoat relay: unknown argument '%s'\n%s", a, relay_usage);
			gw_relay_config_free(cfg);
			return 2;
		}
	}
	char *problems = gw_relay_config_check(cfg);
	if (problems) {
		fputs(problems, stderr);
		fprintf(stderr, "pgmoat relay: nothing was started (pgmoat relay --help)\n");
		free(problems);
		gw_relay_config_free(cfg);
		return 2;
	}
	gw_log_set_level((enum gw_log_level)cfg->log_level);
	signal(SIGPIPE, SIG_IGN);

	relay rs;
	memset(&rs, 0, sizeof(rs));
	relay *r = &rs;
	r->cfg = cfg;
	r->tls_name = cfg->gw_server_name ? cfg->gw_server_name : cfg->gw_host;
	int rc = 1;
	r->tls = gw_tls_client_ctx_new(2, cfg->gw_ca, err, sizeof(err));
	if (!r->tls)
		goto out;
	uint8_t rnd[8];
	gw_random_bytes(rnd, sizeof(rnd));
	gw_hex(rnd, sizeof(rnd), r->instance);
	r->pools = gw_xcalloc(cfg->n_targets, sizeof(gw_pool *));
	for (size_t i = 0; i < cfg->n_targets; i++) {
		size_t l = strlen(r->targets);
		snprintf(r->targets + l, sizeof(r->targets) - l, "%s%s", i ? "," : "", cfg->targets[i].name);
		r->pools[i] = gw_pool_new(&cfg->targets[i], cfg->connect_timeout_us, NULL, err, sizeof(err));
		if (!r->pools[i])
			goto out;
	}
	r->loop = gw_loop_new(0);
	gw_loop_set_tick(r->loop, 100000, on_tick, r);
	gw_info("relay %s: dialing gateway %s:%d (certificate name %s), %d tunnels, targets %s", cfg->name, cfg->gw_host,
		cfg->gw_port, r->tls_name, cfg->tunnels, r->targets);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	gw_loop_post(r->loop, (gw_task_fn)top_up, r);
	pthread_t th;
	pthread_create(&th, NULL, loop_main, r);
	for (;;) {
		int sig = 0;
		sigwait(&set, &sig);
		if (sig != SIGHUP)
			break;
	}
	gw_info("relay %s: shutting down", cfg->name);
	gw_loop_stop(r->loop);
	pthread_join(th, NULL);
	while (r->tuns)
		tun_close(r->tuns);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "pgmoat relay: %s\n", err);
	for (size_t i = 0; r->pools && i < cfg->n_targets; i++)
		gw_pool_free(r->pools[i]);
	free(r->pools);
	if (r->loop)
		gw_loop_free(r->loop);
	gw_tls_ctx_free(r->tls);
	gw_relay_config_free(cfg);
	return rc;
}
