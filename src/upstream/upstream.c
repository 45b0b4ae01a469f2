/*
 * Upstream connections and pools; see upstream.h.
 *
 * Life of a server:
 *
 *   CONNECTING -> (SSL_REQUEST -> TLS) -> STARTUP/AUTH -> WAIT_READY
 *        -> lent to a session  -> RESET (ROLLBACK?, DISCARD ALL) -> IDLE -> lent ...
 *
 * Every failure closes the server and frees its slot in the pool, so the
 * next waiter can try a fresh connection.
 */
#include "upstream/upstream.h"
#include "core/log.h"
#include "core/util.h"
#include "pgwire/pgwire.h"
#include "pgwire/scram.h"
#include "relay/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PARAMS 64
#define UPSTREAM_MAX_MSG (64u * 1024 * 1024)

enum srv_state { S_CONNECTING, S_SSL_REQUEST, S_TLS, S_AUTH, S_WAIT_READY, S_ACTIVE, S_RESET, S_IDLE };

typedef struct kv {
	char *k, *v;
} kv;

struct gw_pool_wait {
	gw_loop *loop;
	uint64_t tunnel_deadline; /* through a relay: when waiting for a tunnel gives up */
	gw_server_ready_fn fn;
	void *arg;
	gw_pool *pool;
	bool queued;
	bool cancelled;
	struct gw_pool_wait *next;
};

struct gw_server {
	gw_conn conn;
	gw_tunnel *tunnel;      /* through a relay: the hub's record of this TLS connection */
	gw_pool *pool;
	enum srv_state state;
	gw_pool_wait *w;
	gw_scram_client scram;
	uint32_t pid, key;
	char txstatus;
	kv params[MAX_PARAMS];
	int nparams;
	int reset_pending;
	bool grown;             /* opened by gw_pool_grow: counted in ngrow until ready or failed */
	uint64_t deadline;
	gw_server *next;        /* idle list or in-progress list */
	gw_server *prev;
};

struct gw_pool {
	const gw_conn_cfg *cfg;
	gw_tls_ctx *tls;
	gw_hub *hub;            /* connections through a relay take its tunnels */
	uint64_t connect_timeout_us;
	pthread_mutex_t lock;
	gw_server *idle;
	gw_server *busy;        /* connecting or resetting: checked by gw_pool_tick */
	int total, nidle;
	int nreset;             /* servers being reset: soon idle */
	int ngrow;              /* servers being opened for no waiter (gw_pool_grow) */
	gw_pool_wait *wq_head, *wq_tail;
	int nwait;
	kv cache[MAX_PARAMS];
	int ncache;
	gw_scram_cache scram_cache;
};

static void server_io(gw_io *io, uint32_t events);
static void server_fail(gw_server *srv, const char *why);
static void pool_put_idle(gw_server *srv);
static int open_socket(const gw_conn_cfg *cfg, char *err, size_t errlen);

gw_pool *gw_pool_new(const gw_conn_cfg *cfg, uint64_t connect_timeout_us, gw_hub *hub, char *err, size_t errlen)
{
	gw_pool *p = gw_xcalloc(1, sizeof(*p));
	p->cfg = cfg;
	p->hub = hub;
	p->connect_timeout_us = connect_timeout_us;
	pthread_mutex_init(&p->lock, NULL);
	if (!cfg->relay && cfg->sslmode != GW_SSL_DISABLE) {
		int verify = cfg->sslmode == GW_SSL_VERIFY_FULL ? 2 : cfg->sslmode == GW_SSL_VERIFY_CA ? 1 : 0;
		p->tls = gw_tls_client_ctx_new(verify, cfg->sslrootcert, err, errlen);
		if (!p->tls) {
			gw_pool_free(p);
			return NULL;
		}
	}
	return p;
}

static void kv_clear(kv *a, int *n)
{
	for (int i = 0; i < *n; i++) {
		free(a[i].k);
		free(a[i].v);
	}
	*n = 0;
}

static void kv_set(kv *a, int *n, const char *k, const char *v)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(a[i].k, k)) {
			if (strcmp(a[i].v, v)) {
				free(a[i].v);
				a[i].v = gw_xstrdup(v);
			}
			return;
		}
	if (*n >= MAX_PARAMS)
		return;
	a[*n].k = gw_xstrdup(k);
	a[*n].v = gw_xstrdup(v);
	(*n)++;
}

/* Close the socket; a relay tunnel leaves the hub's list first (see gw_hub_gone). */
static void server_close_conn(gw_server *srv)
{
	if (srv->tunnel) {
		gw_hub_gone(srv->pool->hub, srv->tunnel);
		srv->tunnel = NULL;
	}
	gw_conn_close(&srv->conn);
}

static void server_free(gw_server *srv)
{
	server_close_conn(srv);
	gw_scram_client_free(&srv->scram);
	kv_clear(srv->params, &srv->nparams);
	free(srv);
}

void gw_pool_free(gw_pool *p)
{
	if (!p)
		return;
	while (p->idle) {
		gw_server *s = p->idle;
		p->idle = s->next;
		server_free(s);
	}
	while (p->busy) {
		gw_server *s = p->busy;
		p->busy = s->next;
		free(s->w);
		server_free(s);
	}
	while (p->wq_head) {
		gw_pool_wait *w = p->wq_head;
		p->wq_head = w->next;
		free(w);
	}
	kv_clear(p->cache, &p->ncache);
	gw_tls_ctx_free(p->tls);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

const gw_conn_cfg *gw_pool_cfg(const gw_pool *p) { return p->cfg; }

void gw_pool_counts(gw_pool *p, int *total, int *idle, int *waiting)
{
	pthread_mutex_lock(&p->lock);
	*total = p->total;
	*idle = p->nidle;
	*waiting = p->nwait;
	pthread_mutex_unlock(&p->lock);
}

bool gw_pool_param_status(gw_pool *p, gw_buf *out, const char *const *override_kv)
{
	pthread_mutex_lock(&p->lock);
	bool have = p->ncache > 0;
	for (int i = 0; i < p->ncache; i++) {
		const char *v = p->cache[i].v;
		for (size_t j = 0; override_kv && override_kv[j]; j += 2)
			if (!strcasecmp(override_kv[j], p->cache[i].k))
				v = override_kv[j + 1];
		gw_pg_param_status(out, p->cache[i].k, v);
	}
	pthread_mutex_unlock(&p->lock);
	return have;
}

bool gw_pool_has_params(gw_pool *p)
{
	pthread_mutex_lock(&p->lock);
	bool have = p->ncache > 0;
	pthread_mutex_unlock(&p->lock);
	return have;
}

typedef struct cancel_job {
	gw_conn_cfg cfg;     /* host and port only, or relay and target */
	char host[256], relay[128], target[128];
	gw_hub *hub;
	uint32_t pid, key;
} cancel_job;

static void *cancel_thread(void *arg)
{
	cancel_job *j = arg;
	char err[256] = "";
	if (j->hub) {
		gw_hub_cancel(j->hub, j->relay, j->target, j->pid, j->key);
		free(j);
		return NULL;
	}
	int fd = open_socket(&j->cfg, err, sizeof(err));
	if (fd >= 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, 5000) == 1) {
			gw_buf b = {0};
			gw_pg_cancel_request(&b, j->pid, j->key);
			ssize_t w = send(fd, gw_buf_rd(&b), gw_buf_len(&b), MSG_NOSIGNAL);
			(void)w;
			gw_buf_free(&b);
			/* The server closes the connection once it has read the request. */
			pfd.events = POLLIN;
			if (poll(&pfd, 1, 5000) == 1) {
				char c;
				ssize_t r = recv(fd, &c, 1, 0);
				(void)r;
			}
		}
		close(fd);
	} else {
		gw_warn("cancel for connection %s: %s", j->cfg.name ? j->cfg.name : "?", err);
	}
	free(j);
	return NULL;
}

void gw_upstream_cancel(const gw_conn_cfg *cfg, gw_hub *hub, uint32_t pid, uint32_t key)
{
	cancel_job *j = gw_xcalloc(1, sizeof(*j));
	if (cfg->relay) {
		if (!hub) {
			free(j);
			return;
		}
		j->hub = hub;
		snprintf(j->relay, sizeof(j->relay), "%s", cfg->relay);
		snprintf(j->target, sizeof(j->target), "%s", cfg->target);
	} else {
		snprintf(j->host, sizeof(j->host), "%s", cfg->host);
	}
	j->cfg.host = j->host;
	j->cfg.port = cfg->port;
	j->pid = pid;
	j->key = key;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, cancel_thread, j) != 0) {
		gw_warn("cannot start a thread to forward a cancel request");
		free(j);
	}
	pthread_attr_destroy(&attr);
}

/* ---- busy list (connecting / resetting servers, checked on tick) ---- */

static void busy_add(gw_server *srv, uint64_t timeout_us)
{
	gw_pool *p = srv->pool;
	srv->deadline = gw_mono_us() + timeout_us;
	pthread_mutex_lock(&p->lock);
	srv->prev = NULL;
	srv->next = p->busy;
	if (p->busy)
		p->busy->prev = srv;
	p->busy = srv;
	pthread_mutex_unlock(&p->lock);
}

static void busy_remove(gw_server *srv)
{
	gw_pool *p = srv->pool;
	pthread_mutex_lock(&p->lock);
	if (srv->prev)
		srv->prev->next = srv->next;
	else if (p->busy == srv)
		p->busy = srv->next;
	if (srv->next)
		srv->next->prev = srv->prev;
	srv->next = srv->prev = NULL;
	pthread_mutex_unlock(&p->lock);
}

void gw_pool_tick(gw_pool *p, gw_loop *loop)
{
	uint64_t now = gw_mono_us();
	for (;;) {
		gw_server *expired = NULL;
		pthread_mutex_lock(&p->lock);
		for (gw_server *s = p->busy; s; s = s->next)
			if (s->conn.io.loop == loop && s->deadline && s->deadline <= now) {
				expired = s;
				break;
			}
		pthread_mutex_unlock(&p->lock);
		if (!expired)
			return;
		expired->deadline = 0;
		server_fail(expired, expired->state == S_RESET ? "the reset of a pooled connection timed out"
			: "timed out connecting to the upstream server");
	}
}

/* ---- waiters ---- */

static void wait_deliver(gw_pool_wait *w, gw_server *srv, const char *err)
{
	if (w->cancelled) {
		if (srv)
			pool_put_idle(srv);
	} else {
		w->fn(w->arg, srv, err);
	}
	free(w);
}

static void start_connect(gw_pool *p, gw_loop *loop, gw_pool_wait *w);

static void task_connect(void *arg)
{
	gw_pool_wait *w = arg;
	start_connect(w->pool, w->loop, w);
}

typedef struct handoff {
	gw_pool_wait *w;
	gw_server *srv;
} handoff;

static void task_handoff(void *arg)
{
	handoff *h = arg;
	wait_deliver(h->w, h->srv, NULL);
	free(h);
}

/* With the lock held: a slot opened; let the first waiter connect. */
static gw_pool_wait *pool_kick_locked(gw_pool *p)
{
	if (!p->wq_head || p->total >= p->cfg->pool_size)
		return NULL;
	gw_pool_wait *w = p->wq_head;
	p->wq_head = w->next;
	if (!p->wq_head)
		p->wq_tail = NULL;
	p->nwait--;
	w->queued = false;
	p->total++;
	return w;
}

static void pool_slot_freed(gw_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->total--;
	gw_pool_wait *w = pool_kick_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (w)
		gw_loop_post(w->loop, task_connect, w);
}

/* Does an idle server still look alive? Any byte or EOF means no. */
static bool idle_alive(gw_server *srv)
{
	char c;
	ssize_t r = recv(srv->conn.io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

gw_server *gw_pool_acquire(gw_pool *p, gw_loop *loop, gw_server_ready_fn fn, void *arg, gw_pool_wait **wait)
{
	*wait = NULL;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		gw_server *srv = p->idle;
		if (srv) {
			p->idle = srv->next;
			p->nidle--;
			srv->next = NULL;
			pthread_mutex_unlock(&p->lock);
			if (!idle_alive(srv)) {
				gw_debug("pool %s: dropping a dead idle connection", p->cfg->name);
				server_free(srv);
				pool_slot_freed(p);
				continue;
			}
			srv->state = S_ACTIVE;
			return srv;
		}
		gw_pool_wait *w = gw_xcalloc(1, sizeof(*w));
		w->loop = loop;
		w->fn = fn;
		w->arg = arg;
		w->pool = p;
		*wait = w;
		/* A server being reset is ready in ~0.1 ms, a new one in ~2 ms: wait for it. */
		if (p->total < p->cfg->pool_size && p->nreset <= p->nwait) {
			p->total++;
			pthread_mutex_unlock(&p->lock);
			start_connect(p, loop, w);
			return NULL;
		}
		w->queued = true;
		if (p->wq_tail)
			p->wq_tail->next = w;
		else
			p->wq_head = w;
		p->wq_tail = w;
		p->nwait++;
		pthread_mutex_unlock(&p->lock);
		return NULL;
	}
}

bool gw_pool_grow(gw_pool *p, gw_loop *loop)
{
	pthread_mutex_lock(&p->lock);
	if (p->cfg->relay || p->total >= p->cfg->pool_size) {
		pthread_mutex_unlock(&p->lock);
		return false;
	}
	p->total++;
	p->ngrow++;
	pthread_mutex_unlock(&p->lock);
	start_connect(p, loop, NULL);
	return true;
}

int gw_pool_growing(gw_pool *p)
{
	pthread_mutex_lock(&p->lock);
	int n = p->ngrow;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void gw_pool_cancel(gw_pool_wait *w)
{
	gw_pool *p = w->pool;
	pthread_mutex_lock(&p->lock);
	if (w->queued) {
		gw_pool_wait **pp = &p->wq_head, *prev = NULL;
		while (*pp && *pp != w) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = w->next;
			if (p->wq_tail == w)
				p->wq_tail = prev;
			p->nwait--;
		}
		pthread_mutex_unlock(&p->lock);
		free(w);
		return;
	}
	w->cancelled = true;
	pthread_mutex_unlock(&p->lock);
}

static void pool_put_idle(gw_server *srv)
{
	gw_pool *p = srv->pool;
	gw_loop_unwatch(&srv->conn.io);
	srv->conn.io.loop = NULL;
	srv->state = S_IDLE;
	gw_buf_release(&srv->conn.rx);
	gw_buf_release(&srv->conn.tx);
	pthread_mutex_lock(&p->lock);
	gw_pool_wait *w = p->wq_head;
	if (w) {
		p->wq_head = w->next;
		if (!p->wq_head)
			p->wq_tail = NULL;
		p->nwait--;
		w->queued = false;
		pthread_mutex_unlock(&p->lock);
		srv->state = S_ACTIVE;
		handoff *h = gw_xmalloc(sizeof(*h));
		h->w = w;
		h->srv = srv;
		gw_loop_post(w->loop, task_handoff, h);
		return;
	}
	srv->next = p->idle;
	p->idle = srv;
	p->nidle++;
	pthread_mutex_unlock(&p->lock);
}

/* ---- connecting and logging in ---- */

static int open_socket(const gw_conn_cfg *cfg, char *err, size_t errlen)
{
	if (cfg->host[0] == '/') {
		struct sockaddr_un su = {.sun_family = AF_UNIX};
		int n = snprintf(su.sun_path, sizeof(su.sun_path), "%s/.s.PGSQL.%d", cfg->host, cfg->port);
		if (n < 0 || (size_t)n >= sizeof(su.sun_path)) {
			snprintf(err, errlen, "Unix socket path too long");
			return -1;
		}
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || (connect(fd, (struct sockaddr *)&su, sizeof(su)) < 0 && errno != EINPROGRESS && errno != EAGAIN)) {
			snprintf(err, errlen, "cannot connect to %s: %s", su.sun_path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		return fd;
	}
	return gw_tcp_connect(cfg->host, cfg->port, err, errlen);
}

static void send_startup(gw_server *srv)
{
	const gw_conn_cfg *cfg = srv->pool->cfg;
	const char *kvs[] = {"user", cfg->user, "database", cfg->database, NULL};
	gw_pg_startup_msg(&srv->conn.tx, kvs);
	srv->state = S_AUTH;
}

static void start_tunnel(gw_pool *p, gw_loop *loop, gw_pool_wait *w);

/* A tunnel was parked (or the wait timed out): try again, unless the wait was withdrawn meanwhile. */
static void task_tunnel_retry(void *arg)
{
	gw_pool_wait *w = arg;
	if (w->cancelled) {
		gw_pool *p = w->pool;
		pool_slot_freed(p);
		free(w);
		gw_hub_kick(p->hub, p->cfg->relay); /* its wake-up may have been for a tunnel now ready: pass it on */
		return;
	}
	start_tunnel(w->pool, w->loop, w);
}

/* Through a relay: a ready tunnel instead of a socket, and an Open instead of a StartupMessage. */
static void start_tunnel(gw_pool *p, gw_loop *loop, gw_pool_wait *w)
{
	char err[300] = "";
	int fd = -1;
	gw_tls *tls = NULL;
	bool waiting = false;
	if (!w->tunnel_deadline)
		w->tunnel_deadline = gw_mono_us() + p->connect_timeout_us;
	gw_tunnel *t = gw_hub_take_or_wait(p->hub, p->cfg->relay, loop, task_tunnel_retry, w, w->tunnel_deadline,
		&fd, &tls, &waiting, err, sizeof(err));
	if (!t && waiting)
		return;
	if (!t) {
		gw_warn("connection %s: %s", p->cfg->name, err);
		pool_slot_freed(p);
		wait_deliver(w, NULL, err);
		return;
	}
	gw_server *srv = gw_xcalloc(1, sizeof(*srv));
	gw_conn_adopt_tls(&srv->conn, fd, tls);
	srv->tunnel = t;
	srv->pool = p;
	srv->w = w;
	srv->txstatus = 'I';
	srv->conn.io.cb = server_io;
	srv->conn.io.ud = srv;
	size_t m = gw_buf_msg_begin(&srv->conn.tx, 'O');
	gw_buf_put_str(&srv->conn.tx, p->cfg->target);
	gw_buf_msg_end(&srv->conn.tx, m);
	srv->state = S_AUTH;
	busy_add(srv, p->connect_timeout_us);
	gw_loop_watch(loop, &srv->conn.io, EPOLLIN | EPOLLOUT);
}

static void start_connect(gw_pool *p, gw_loop *loop, gw_pool_wait *w)
{
	if (p->cfg->relay) {
		start_tunnel(p, loop, w);
		return;
	}
	char err[256] = "";
	int fd = open_socket(p->cfg, err, sizeof(err));
	if (fd < 0) {
		gw_warn("connection %s: %s", p->cfg->name, err);
		if (!w) {
			pthread_mutex_lock(&p->lock);
			p->ngrow--;
			pthread_mutex_unlock(&p->lock);
		}
		pool_slot_freed(p);
		if (w)
			wait_deliver(w, NULL, err);
		return;
	}
	gw_server *srv = gw_xcalloc(1, sizeof(*srv));
	srv->grown = !w;
	gw_conn_init(&srv->conn, fd);
	srv->pool = p;
	srv->w = w;
	srv->txstatus = 'I';
	srv->conn.io.cb = server_io;
	srv->conn.io.ud = srv;
	srv->state = S_CONNECTING;
	busy_add(srv, p->connect_timeout_us);
	gw_loop_watch(loop, &srv->conn.io, EPOLLOUT);
}

static void grown_done(gw_server *srv)
{
	if (!srv->grown)
		return;
	srv->grown = false;
	pthread_mutex_lock(&srv->pool->lock);
	srv->pool->ngrow--;
	pthread_mutex_unlock(&srv->pool->lock);
}

static void server_fail(gw_server *srv, const char *why)
{
	gw_pool *p = srv->pool;
	gw_pool_wait *w = srv->w;
	enum srv_state st = srv->state;
	srv->w = NULL;
	grown_done(srv);
	busy_remove(srv);
	if (st == S_RESET) {
		pthread_mutex_lock(&p->lock);
		p->nreset--;
		pthread_mutex_unlock(&p->lock);
	}
	if (st == S_RESET)
		gw_debug("connection %s: dropping a pooled connection: %s", p->cfg->name, why);
	else
		gw_warn("connection %s: %s", p->cfg->name, why);
	gw_loop *loop = srv->conn.io.loop;
	server_close_conn(srv);
	if (loop)
		gw_loop_defer_free(loop, (void (*)(void *))server_free, srv);
	else
		server_free(srv);
	pool_slot_freed(p);
	if (w)
		wait_deliver(w, NULL, why);
}

static void server_ready(gw_server *srv)
{
	gw_pool *p = srv->pool;
	grown_done(srv);
	busy_remove(srv);
	gw_scram_client_free(&srv->scram);
	/* Refresh the pool's cache of ParameterStatus values. */
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < srv->nparams; i++)
		kv_set(p->cache, &p->ncache, srv->params[i].k, srv->params[i].v);
	pthread_mutex_unlock(&p->lock);
	gw_pool_wait *w = srv->w;
	srv->w = NULL;
	srv->state = S_ACTIVE;
	gw_loop_unwatch(&srv->conn.io);
	if (w)
		wait_deliver(w, srv, NULL);
	else
		pool_put_idle(srv);
}

/* Handle one complete message during login or reset. Returns -1 when srv failed. */
static int server_handle(gw_server *srv, uint8_t type, const uint8_t *body, size_t n)
{
	const gw_conn_cfg *cfg = srv->pool->cfg;
	char why[300];
	if (type == 'E') {
		char msg[200] = "", code[8] = "";
		gw_pg_error_field(body, n, 'M', msg, sizeof(msg));
		gw_pg_error_field(body, n, 'C', code, sizeof(code));
		snprintf(why, sizeof(why), "upstream %s said: %s (SQLSTATE %s)",
			srv->state == S_RESET ? "reset" : "login", msg, code);
		server_fail(srv, why);
		return -1;
	}
	if (type == 'N')
		return 0;
	if (srv->state == S_RESET) {
		if (type == 'Z') {
			srv->txstatus = n ? (char)body[0] : 'I';
			if (--srv->reset_pending == 0) {
				busy_remove(srv);
				pthread_mutex_lock(&srv->pool->lock);
				srv->pool->nreset--;
				pthread_mutex_unlock(&srv->pool->lock);
				pool_put_idle(srv);
				return -1; /* srv now belongs to the pool */
			}
		} else if (type == 'S') {
			const char *k = (const char *)body;
			const char *kend = memchr(body, 0, n);
			if (kend && memchr(kend + 1, 0, n - (size_t)(kend + 1 - (const char *)body)))
				kv_set(srv->params, &srv->nparams, k, kend + 1);
		}
		return 0;
	}
	switch (type) {
	case 'R': {
		if (n < 4) {
			server_fail(srv, "malformed authentication request from upstream");
			return -1;
		}
		uint32_t code = gw_get_u32(body);
		const char *pw = cfg->password;
		if (code == PG_AUTH_OK)
			return 0;
		if ((code == PG_AUTH_CLEARTEXT || code == PG_AUTH_MD5 || code == PG_AUTH_SASL) && !pw) {
			server_fail(srv, "the upstream server asks for a password and the connection has none");
			return -1;
		}
		if (code == PG_AUTH_CLEARTEXT) {
			size_t m = gw_buf_msg_begin(&srv->conn.tx, 'p');
			gw_buf_put_str(&srv->conn.tx, pw);
			gw_buf_msg_end(&srv->conn.tx, m);
			return 0;
		}
		if (code == PG_AUTH_MD5) {
			if (n < 8) {
				server_fail(srv, "malformed md5 request from upstream");
				return -1;
			}
			char inner[33], outer[33];
			char *tmp = gw_xasprintf("%s%s", pw, cfg->user);
			gw_md5_hex(tmp, strlen(tmp), inner);
			free(tmp);
			uint8_t salted[36];
			memcpy(salted, inner, 32);
			memcpy(salted + 32, body + 4, 4);
			gw_md5_hex(salted, 36, outer);
			size_t m = gw_buf_msg_begin(&srv->conn.tx, 'p');
			gw_buf_append(&srv->conn.tx, "md5", 3);
			gw_buf_put_str(&srv->conn.tx, outer);
			gw_buf_msg_end(&srv->conn.tx, m);
			return 0;
		}
		if (code == PG_AUTH_SASL) {
			bool scram = false;
			for (size_t i = 4; i < n;) {
				const uint8_t *e = memchr(body + i, 0, n - i);
				if (!e || e == body + i)
					break;
				if (!strcmp((const char *)body + i, "SCRAM-SHA-256"))
					scram = true;
				i = (size_t)(e - body) + 1;
			}
			if (!scram) {
				server_fail(srv, "the upstream server offers no SASL mechanism pgmoat knows");
				return -1;
			}
			char first[96];
			gw_scram_client_first(&srv->scram, first, sizeof(first));
			size_t m = gw_buf_msg_begin(&srv->conn.tx, 'p');
			gw_buf_put_str(&srv->conn.tx, "SCRAM-SHA-256");
			gw_buf_put_i32(&srv->conn.tx, (int32_t)strlen(first));
			gw_buf_append(&srv->conn.tx, first, strlen(first));
			gw_buf_msg_end(&srv->conn.tx, m);
			return 0;
		}
		if (code == PG_AUTH_SASL_CONTINUE) {
			char *final = NULL;
			const char *e = NULL;
			pthread_mutex_lock(&srv->pool->lock);
			gw_scram_cache cache = srv->pool->scram_cache;
			pthread_mutex_unlock(&srv->pool->lock);
			if (gw_scram_client_final(&srv->scram, pw, (const char *)body + 4, n - 4, &cache, &final, &e) != 0) {
				server_fail(srv, e);
				return -1;
			}
			pthread_mutex_lock(&srv->pool->lock);
			srv->pool->scram_cache = cache;
			pthread_mutex_unlock(&srv->pool->lock);
			size_t m = gw_buf_msg_begin(&srv->conn.tx, 'p');
			gw_buf_append(&srv->conn.tx, final, strlen(final));
			gw_buf_msg_end(&srv->conn.tx, m);
			free(final);
			return 0;
		}
		if (code == PG_AUTH_SASL_FINAL) {
			const char *e = NULL;
			if (gw_scram_client_verify(&srv->scram, (const char *)body + 4, n - 4, &e) != 0) {
				server_fail(srv, e);
				return -1;
			}
			return 0;
		}
		snprintf(why, sizeof(why), "the upstream server asks for an authentication method pgmoat does not support (%u)", code);
		server_fail(srv, why);
		return -1;
	}
	case 'S': {
		const uint8_t *kend = memchr(body, 0, n);
		if (kend && memchr(kend + 1, 0, n - (size_t)(kend + 1 - body)))
			kv_set(srv->params, &srv->nparams, (const char *)body, (const char *)kend + 1);
		return 0;
	}
	case 'K':
		if (n >= 8) {
			srv->pid = gw_get_u32(body);
			srv->key = gw_get_u32(body + 4);
		}
		return 0;
	case 'Z':
		srv->txstatus = n ? (char)body[0] : 'I';
		server_ready(srv);
		return -1; /* handed on */
	case 'v':
		return 0; /* NegotiateProtocolVersion: we asked for nothing optional */
	default:
		snprintf(why, sizeof(why), "unexpected message '%c' from upstream during login", type);
		server_fail(srv, why);
		return -1;
	}
}

static void server_watch(gw_server *srv)
{
	uint32_t ev = EPOLLIN;
	if (gw_buf_len(&srv->conn.tx) || srv->conn.want_write || srv->state == S_CONNECTING)
		ev |= EPOLLOUT;
	gw_loop_watch(srv->conn.io.loop, &srv->conn.io, ev);
}

static void server_io(gw_io *io, uint32_t events)
{
	gw_server *srv = io->ud;
	char why[300];
	if (srv->state == S_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			snprintf(why, sizeof(why), "cannot connect to %s:%d: %s", srv->pool->cfg->host, srv->pool->cfg->port, strerror(soerr));
			server_fail(srv, why);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		bool unix_sock = srv->pool->cfg->host[0] == '/';
		if (srv->pool->tls && !unix_sock) {
			gw_pg_ssl_request(&srv->conn.tx);
			srv->state = S_SSL_REQUEST;
		} else {
			send_startup(srv);
		}
	}
	if (srv->state == S_SSL_REQUEST && gw_buf_len(&srv->conn.tx) == 0) {
		char c;
		ssize_t r = recv(io->fd, &c, 1, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			server_fail(srv, "the upstream server closed the connection after SSLRequest");
			return;
		}
		if (r == 1) {
			if (c == 'S') {
				gw_conn_start_tls(&srv->conn, srv->pool->tls, false, srv->pool->cfg->host);
				srv->state = S_TLS;
			} else if (c == 'N' && srv->pool->cfg->sslmode == GW_SSL_PREFER) {
				send_startup(srv);
			} else {
				snprintf(why, sizeof(why), "the upstream server does not support TLS, and sslmode is %s",
					gw_sslmode_str(srv->pool->cfg->sslmode));
				server_fail(srv, why);
				return;
			}
		}
	}
	if (srv->state == S_TLS) {
		int h = gw_conn_handshake(&srv->conn);
		if (h < 0) {
			snprintf(why, sizeof(why), "TLS to the upstream server failed: %s", srv->conn.err);
			server_fail(srv, why);
			return;
		}
		if (h == 1)
			send_startup(srv);
	}
	if (srv->state >= S_AUTH && srv->state != S_IDLE && srv->state != S_ACTIVE) {
		ssize_t r = gw_conn_recv(&srv->conn, 1u << 20);
		while (gw_buf_len(&srv->conn.rx)) {
			uint8_t type;
			uint32_t len;
			long m = gw_pg_frame(gw_buf_rd(&srv->conn.rx), gw_buf_len(&srv->conn.rx), UPSTREAM_MAX_MSG, &type, &len);
			if (m < 0) {
				server_fail(srv, "malformed message from the upstream server");
				return;
			}
			if (m == 0)
				break;
			const uint8_t *body = gw_buf_rd(&srv->conn.rx) + 5;
			/* Copy out: the handler may hand srv over. */
			uint8_t small[512];
			uint8_t *copy = (size_t)len - 4 <= sizeof(small) ? small : gw_xmalloc(len - 4);
			memcpy(copy, body, len - 4);
			gw_buf_consume(&srv->conn.rx, (size_t)m);
			int hr = server_handle(srv, type, copy, len - 4);
			if (copy != small)
				free(copy);
			if (hr < 0)
				return;
		}
		if (r < 0) {
			snprintf(why, sizeof(why), "the upstream server closed the connection%s%s",
				srv->conn.err[0] ? ": " : "", srv->conn.err);
			server_fail(srv, why);
			return;
		}
	}
	if (gw_buf_len(&srv->conn.tx) && gw_conn_flush(&srv->conn) < 0) {
		snprintf(why, sizeof(why), "cannot write to the upstream server: %s", srv->conn.err);
		server_fail(srv, why);
		return;
	}
	server_watch(srv);
}

/* ---- release and reset ---- */

void gw_pool_release(gw_server *srv, gw_loop *loop, bool reusable)
{
	gw_pool *p = srv->pool;
	if (!reusable || gw_buf_len(&srv->conn.rx)) {
		server_close_conn(srv);
		gw_loop_defer_free(loop, (void (*)(void *))server_free, srv);
		pool_slot_freed(p);
		return;
	}
	srv->state = S_RESET;
	pthread_mutex_lock(&p->lock);
	p->nreset++;
	pthread_mutex_unlock(&p->lock);
	srv->conn.io.cb = server_io;
	srv->conn.io.ud = srv;
	srv->reset_pending = 0;
	if (srv->txstatus != 'I') {
		gw_pg_query(&srv->conn.tx, "ROLLBACK");
		srv->reset_pending++;
	}
	gw_pg_query(&srv->conn.tx, "DISCARD ALL");
	srv->reset_pending++;
	busy_add(srv, p->connect_timeout_us);
	srv->conn.io.loop = loop;
	if (gw_conn_flush(&srv->conn) < 0) {
		server_fail(srv, "cannot write the reset to the upstream server");
		return;
	}
	server_watch(srv);
}

void gw_server_param_status(const gw_server *srv, gw_buf *out)
{
	for (int i = 0; i < srv->nparams; i++)
		gw_pg_param_status(out, srv->params[i].k, srv->params[i].v);
}

gw_conn *gw_server_conn(gw_server *srv) { return &srv->conn; }
uint32_t gw_server_pid(const gw_server *srv) { return srv->pid; }
uint32_t gw_server_key(const gw_server *srv) { return srv->key; }

const char *gw_server_param(const gw_server *srv, const char *key)
{
	for (int i = 0; i < srv->nparams; i++)
		if (!strcasecmp(srv->params[i].k, key))
			return srv->params[i].v;
	return NULL;
}

void gw_server_set_param(gw_server *srv, const char *key, const char *value)
{
	kv_set(srv->params, &srv->nparams, key, value);
}

void gw_server_set_txstatus(gw_server *srv, char txstatus)
{
	srv->txstatus = txstatus;
}
