/*
 * The hub: where relays log in to the gateway; see relay.h.
 *
 * A thread of its own runs a loop for the listen.relay socket, the TLS
 * handshakes and the hellos (a relay's token is checked like any other
 * identity's). A tunnel that logged in is parked: no loop watches it, it
 * sits in its relay process's list until a pool takes it (gw_hub_take, on
 * any worker, under the hub's lock). A relay never writes on an idle tunnel,
 * so a peek that finds a byte or EOF means the tunnel is gone; the hub's
 * tick sweeps the parked ones every second and a take checks the one it
 * hands out.
 *
 * Taken tunnels stay listed (busy) until their owner calls gw_hub_gone()
 * just before closing the fd, so revocation can shut them down from another
 * thread without ever touching a reused descriptor.
 */
#include "relay/relay.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "identity/identity.h"
#include "net/conn.h"
#include "net/loop.h"
#include "pgwire/pgwire.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELLO_MAX 16384
#define SWEEP_US 1000000
#define MAX_PENDING 256     /* relay connections logging in at once */
#define REPLY_MAX (4u << 20) /* a relay's answer to a doctor request */

typedef struct rinst rinst;

struct gw_tunnel {
	int fd;
	gw_tls *tls;
	rinst *inst;
	bool idle;
	gw_tunnel *next, *prev;
};

/* One relay process (one instance id), with its tunnels. */
struct rinst {
	gw_relay_info info;
	char token_id[32];
	gw_tunnel *tunnels;
	rinst *next;
};

/* A relay connection still logging in, on the hub's loop. */
typedef struct pend {
	gw_hub *h;
	gw_conn conn;
	char addr[64];
	struct sockaddr_storage ss;
	uint64_t deadline;
	enum { P_HANDSHAKE, P_HELLO, P_REPLY } st;
	bool ok;                 /* the reply is 'h' (else an error, then close) */
	uint64_t gen;            /* the hub's revoked_gen when its token was checked */
	char name[128], instance[40], token_id[32], targets[512], software[64];
	struct pend *next, *prev;
} pend;

/* A pool waiting for a tunnel of a relay whose processes are connected but have none ready yet. */
typedef struct hwait {
	char name[128];
	gw_loop *loop;
	gw_task_fn fn;
	void *arg;
	uint64_t deadline;
	struct hwait *next;
} hwait;

struct gw_hub {
	const gw_config *cfg;
	gw_tls_ctx *tls;
	gw_store *store;
	gw_ratelimit *rl;
	gw_loop *loop;
	pthread_t thread;
	bool running;
	gw_io lio;
	pend *pending;
	uint64_t last_sweep;
	pthread_mutex_t lock;    /* insts and their tunnels, waits */
	rinst *insts;
	hwait *waits, **waits_tail;
	uint64_t revoked_gen;    /* bumped by each revocation: a login checked before one is checked again */
	int npending;            /* relay connections not logged in yet */
};

/* With the lock held: the first wait for name, unlinked. */
static hwait *wait_pop_locked(gw_hub *h, const char *name, uint64_t expired_before)
{
	for (hwait **pp = &h->waits; *pp; pp = &(*pp)->next) {
		hwait *w = *pp;
		if ((name && !strcmp(w->name, name)) || (!name && w->deadline <= expired_before)) {
			*pp = w->next;
			if (!*pp)
				h->waits_tail = pp;
			return w;
		}
	}
	return NULL;
}

static void wait_wake(hwait *w)
{
	gw_loop_post(w->loop, w->fn, w->arg);
	free(w);
}

/* ---- parked tunnels ---- */

/* Nothing to read and no EOF: the relay's end is still there. */
static bool tunnel_alive(const gw_tunnel *t)
{
	char c;
	ssize_t r = recv(t->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void tunnel_unlink_locked(gw_hub *h, gw_tunnel *t)
{
	rinst *in = t->inst;
	if (t->prev)
		t->prev->next = t->next;
	else
		in->tunnels = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (t->idle)
		in->info.idle--;
	else
		in->info.busy--;
	if (!in->tunnels) {
		for (rinst **pp = &h->insts; *pp; pp = &(*pp)->next)
			if (*pp == in) {
				*pp = in->next;
				break;
			}
		gw_info("relay %s (instance %s, %s): no tunnel left", in->info.name, in->info.instance, in->info.addr);
		free(in);
	}
}

static void tunnel_close_parked_locked(gw_hub *h, gw_tunnel *t)
{
	int fd = t->fd;
	gw_tls *tls = t->tls;
	tunnel_unlink_locked(h, t);
	gw_tls_free(tls);
	close(fd);
	free(t);
}

/* Park a logged-in tunnel; false when a revocation came between its login and now (the caller closes it). */
static bool park(gw_hub *h, pend *p)
{
	int64_t now = (int64_t)time(NULL);
	pthread_mutex_lock(&h->lock);
	if (h->revoked_gen != p->gen) {
		pthread_mutex_unlock(&h->lock);
		return false; /* the relay logs in again, and its token is checked again */
	}
	gw_tunnel *t = gw_xcalloc(1, sizeof(*t));
	t->fd = p->conn.io.fd;
	t->tls = p->conn.tls;
	t->idle = true;
	rinst *in = h->insts;
	while (in && (strcmp(in->info.instance, p->instance) || strcmp(in->info.name, p->name)))
		in = in->next;
	if (!in) {
		in = gw_xcalloc(1, sizeof(*in));
		snprintf(in->info.name, sizeof(in->info.name), "%s", p->name);
		snprintf(in->info.instance, sizeof(in->info.instance), "%s", p->instance);
		snprintf(in->info.addr, sizeof(in->info.addr), "%s", p->addr);
		snprintf(in->info.targets, sizeof(in->info.targets), "%s", p->targets);
		snprintf(in->info.software, sizeof(in->info.software), "%s", p->software);
		snprintf(in->token_id, sizeof(in->token_id), "%s", p->token_id);
		in->info.connected_at = now;
		in->next = h->insts;
		h->insts = in;
		gw_info("relay %s connected (instance %s from %s, targets %s)", p->name, p->instance, p->addr, p->targets);
	}
	in->info.last_seen = now;
	t->inst = in;
	t->next = in->tunnels;
	if (in->tunnels)
		in->tunnels->prev = t;
	in->tunnels = t;
	in->info.idle++;
	hwait *w = wait_pop_locked(h, in->info.name, 0);
	pthread_mutex_unlock(&h->lock);
	if (w)
		wait_wake(w); /* its take may lose to another; it then waits again, until its deadline */
	return true;
}

void gw_hub_kick(gw_hub *h, const char *name)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	bool idle = false;
	for (rinst *in = h->insts; in && !idle; in = in->next)
		idle = !strcmp(in->info.name, name) && in->info.idle > 0;
	hwait *w = idle ? wait_pop_locked(h, name, 0) : NULL;
	pthread_mutex_unlock(&h->lock);
	if (w)
		wait_wake(w);
}

static void sweep(gw_hub *h)
{
	int64_t now = (int64_t)time(NULL);
	pthread_mutex_lock(&h->lock);
	for (rinst *in = h->insts, *nin; in; in = nin) {
		nin = in->next;
		bool any = false;
		for (gw_tunnel *t = in->tunnels, *nt; t; t = nt) {
			nt = t->next;
			if (!t->idle) {
				any = true;
				continue;
			}
			if (tunnel_alive(t)) {
				any = true;
				continue;
			}
			bool last = !in->tunnels->next;
			tunnel_close_parked_locked(h, t);
			if (last)
				break; /* in was freed with its last tunnel */
		}
		if (any)
			in->info.last_seen = now;
	}
	pthread_mutex_unlock(&h->lock);
}

static gw_tunnel *take(gw_hub *h, const char *name, int *fd, gw_tls **tls, gw_loop *loop, gw_task_fn fn,
	void *arg, uint64_t deadline, bool *waiting, char *err, size_t errlen)
{
	*waiting = false;
	if (!h) {
		snprintf(err, errlen, "relay \"%s\": this gateway has no listen.relay", name);
		return NULL;
	}
	pthread_mutex_lock(&h->lock);
	for (;;) {
		/* The process with the most tunnels ready takes the session: load spreads over relays of one name. */
		rinst *best = NULL;
		for (rinst *in = h->insts; in; in = in->next)
			if (!strcmp(in->info.name, name) && in->info.idle > 0 && (!best || in->info.idle > best->info.idle))
				best = in;
		if (!best)
			break;
		/* the oldest idle one (the list's tail side): every tunnel gets used, none goes stale unseen */
		gw_tunnel *t = NULL;
		for (gw_tunnel *x = best->tunnels; x; x = x->next)
			if (x->idle)
				t = x;
		if (!t)
			break; /* counts out of step with the list: cannot happen */
		if (!tunnel_alive(t)) {
			tunnel_close_parked_locked(h, t);
			continue;
		}
		t->idle = false;
		best->info.idle--;
		best->info.busy++;
		best->info.last_seen = (int64_t)time(NULL);
		*fd = t->fd;
		*tls = t->tls;
		pthread_mutex_unlock(&h->lock);
		return t;
	}
	/* Connected but all busy: the relay is opening more (it keeps some ready); wait for one. */
	bool connected = false;
	for (rinst *in = h->insts; in && !connected; in = in->next)
		connected = !strcmp(in->info.name, name);
	if (connected && fn && gw_mono_us() < deadline) {
		hwait *w = gw_xcalloc(1, sizeof(*w));
		snprintf(w->name, sizeof(w->name), "%s", name);
		w->loop = loop;
		w->fn = fn;
		w->arg = arg;
		w->deadline = deadline;
		*h->waits_tail = w;
		h->waits_tail = &w->next;
		*waiting = true;
		pthread_mutex_unlock(&h->lock);
		return NULL;
	}
	pthread_mutex_unlock(&h->lock);
	if (connected)
		snprintf(err, errlen, "relay \"%s\" had no tunnel ready in time (every one is in use; raise the relay's "
			"tunnels:, or the connection's pool.size is above what it can open)", name);
	else
		snprintf(err, errlen, "relay \"%s\" has no tunnel open to this gateway (is `pgmoat relay --name %s` "
			"running, and can it reach listen.relay?)", name, name);
	return NULL;
}

gw_tunnel *gw_hub_take(gw_hub *h, const char *name, int *fd, gw_tls **tls, char *err, size_t errlen)
{
	bool waiting;
	return take(h, name, fd, tls, NULL, NULL, NULL, 0, &waiting, err, errlen);
}

gw_tunnel *gw_hub_take_or_wait(gw_hub *h, const char *name, gw_loop *loop, gw_task_fn fn, void *arg,
	uint64_t deadline, int *fd, gw_tls **tls, bool *waiting, char *err, size_t errlen)
{
	return take(h, name, fd, tls, loop, fn, arg, deadline, waiting, err, errlen);
}

void gw_hub_gone(gw_hub *h, gw_tunnel *t)
{
	pthread_mutex_lock(&h->lock);
	tunnel_unlink_locked(h, t);
	pthread_mutex_unlock(&h->lock);
	free(t);
}

int gw_hub_revoke(gw_hub *h, const char *identity, const char *token_id)
{
	if (!h)
		return 0;
	int n = 0;
	pthread_mutex_lock(&h->lock);
	h->revoked_gen++;
	for (rinst *in = h->insts, *nin; in; in = nin) {
		nin = in->next;
		if ((identity && strcmp(in->info.name, identity)) || (token_id && strcmp(in->token_id, token_id)))
			continue;
		gw_info("relay %s (instance %s): closing its %d tunnel(s): %s", in->info.name, in->info.instance,
			in->info.idle + in->info.busy, token_id ? "its token was revoked" : "its identity was disabled");
		for (gw_tunnel *t = in->tunnels, *nt; t; t = nt) {
			nt = t->next;
			n++;
			if (t->idle) {
				bool last = !in->tunnels->next;
				tunnel_close_parked_locked(h, t);
				if (last)
					break;
			} else {
				/*
				 * Its owner (a pool or session on a worker) reads EOF and closes it. Reading side
				 * only: a session that is not reading (its client is slow) is not woken by a hang-up
				 * it cannot act on yet, and the relay sees the close when the owner closes.
				 */
				shutdown(t->fd, SHUT_RD);
			}
		}
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

int gw_hub_list(gw_hub *h, gw_relay_info **out)
{
	*out = NULL;
	if (!h)
		return 0;
	sweep(h);
	pthread_mutex_lock(&h->lock);
	int n = 0;
	for (rinst *in = h->insts; in; in = in->next)
		n++;
	*out = gw_xcalloc((size_t)n + 1, sizeof(gw_relay_info));
	int i = 0;
	for (rinst *in = h->insts; in; in = in->next)
		(*out)[i++] = in->info;
	pthread_mutex_unlock(&h->lock);
	return n;
}

/* ---- one request on a tunnel of its own (cancel, doctor), blocking ---- */

static int tls_write_all(gw_tls *tls, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = gw_tls_write(tls, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Wait until fd is readable or the deadline (mono us) passes: false on timeout. */
static bool wait_readable(int fd, gw_tls *tls, uint64_t deadline)
{
	if (gw_tls_pending(tls))
		return true;
	uint64_t now = gw_mono_us();
	if (now >= deadline)
		return false;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	return poll(&pfd, 1, (int)((deadline - now + 999) / 1000)) > 0;
}

/*
 * Send msg on a tunnel of its own; with reply, read one message of type want
 * into *reply (its body), all within timeout_s in total. A relay that has
 * every tunnel in use gets a few moments to open another.
 */
static int exchange(gw_hub *h, const char *name, gw_buf *msg, int timeout_s, char want, gw_buf *reply,
	char *err, size_t errlen)
{
	int fd = -1;
	gw_tls *tls = NULL;
	uint64_t deadline = gw_mono_us() + (uint64_t)timeout_s * 1000000u;
	gw_tunnel *t = NULL;
	for (int i = 0; i < 20 && !t; i++) {
		t = gw_hub_take(h, name, &fd, &tls, err, errlen);
		if (!t) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	if (!t)
		return -1;
	int rc = -1;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	struct timeval tv = {.tv_sec = timeout_s};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (tls_write_all(tls, gw_buf_rd(msg), gw_buf_len(msg)) < 0) {
		snprintf(err, errlen, "relay \"%s\": cannot write on its tunnel: %s", name, gw_tls_error(tls));
		goto out;
	}
	if (!reply) {
		/* The relay closes the tunnel once it has acted; wait for that, briefly. */
		uint8_t c;
		if (wait_readable(fd, tls, deadline))
			(void)gw_tls_read(tls, &c, 1);
		rc = 0;
		goto out;
	}
	for (;;) {
		uint8_t type;
		uint32_t len;
		long m = gw_pg_frame(gw_buf_rd(reply), gw_buf_len(reply), REPLY_MAX, &type, &len);
		if (m < 0) {
			snprintf(err, errlen, "relay \"%s\" sent a malformed or oversized answer", name);
			goto out;
		}
		if (m > 0) {
			if (type == 'E') {
				char msgt[300] = "";
				gw_pg_error_field(gw_buf_rd(reply) + 5, len - 4, 'M', msgt, sizeof(msgt));
				snprintf(err, errlen, "relay \"%s\": %s", name, msgt);
				goto out;
			}
			if (type != (uint8_t)want) {
				snprintf(err, errlen, "relay \"%s\" answered '%c', expected '%c'", name, type, want);
				goto out;
			}
			gw_buf_consume(reply, 5);
			reply->len = len - 4; /* just the body */
			rc = 0;
			goto out;
		}
		if (!wait_readable(fd, tls, deadline)) {
			snprintf(err, errlen, "relay \"%s\" did not answer within %d s", name, timeout_s);
			goto out;
		}
		gw_buf_reserve(reply, 65536);
		ssize_t r = gw_tls_read(tls, gw_buf_wr(reply), 65536);
		if (r == GW_TLS_WANT_READ)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "relay \"%s\" closed the tunnel before answering", name);
			goto out;
		}
		gw_buf_commit(reply, (size_t)r);
	}
out:
	gw_hub_gone(h, t);
	gw_tls_free(tls);
	close(fd);
	return rc;
}

int gw_hub_cancel(gw_hub *h, const char *name, const char *target, uint32_t pid, uint32_t key)
{
	gw_buf b = {0};
	size_t m = gw_buf_msg_begin(&b, 'C');
	gw_buf_put_str(&b, target);
	gw_buf_put_i32(&b, (int32_t)pid);
	gw_buf_put_i32(&b, (int32_t)key);
	gw_buf_msg_end(&b, m);
	char err[300];
	int rc = exchange(h, name, &b, 5, 0, NULL, err, sizeof(err));
	if (rc < 0)
		gw_warn("cancel through %s", err);
	gw_buf_free(&b);
	return rc;
}

int gw_hub_doctor(gw_hub *h, const char *name, const char *target, const char *needs_json,
	char **out, char *err, size_t errlen)
{
	*out = NULL;
	gw_buf b = {0}, reply = {0};
	size_t m = gw_buf_msg_begin(&b, 'D');
	gw_buf_put_str(&b, target);
	gw_buf_put_str(&b, needs_json);
	gw_buf_msg_end(&b, m);
	int rc = exchange(h, name, &b, 30, 'd', &reply, err, errlen);
	if (rc == 0) {
		*out = gw_xstrndup((const char *)gw_buf_rd(&reply), gw_buf_len(&reply));
	}
	gw_buf_free(&b);
	gw_buf_free(&reply);
	return rc;
}

/* ---- logging in (on the hub's loop) ---- */

static void pend_free(pend *p, bool close_conn)
{
	gw_hub *h = p->h;
	h->npending--;
	if (p->prev)
		p->prev->next = p->next;
	else
		h->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (close_conn)
		gw_conn_close(&p->conn);
	else
		gw_loop_unwatch(&p->conn.io);
	gw_loop_defer_free(h->loop, free, p);
}

static void pend_refuse(pend *p, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pend_refuse(pend *p, const char *code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_warn("relay login from %s refused: %s", p->addr, msg);
	if (p->conn.rx.data)
		explicit_bzero(p->conn.rx.data, p->conn.rx.cap);
	gw_buf_reset(&p->conn.rx);
	gw_pg_error(&p->conn.tx, "FATAL", code, msg, NULL, NULL);
	p->ok = false;
	p->st = P_REPLY;
}

static const char *take_str(const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *z = memchr(*pp, 0, (size_t)(end - *pp));
	if (!z)
		return NULL;
	const char *s = (const char *)*pp;
	*pp = z + 1;
	return s;
}

static void on_hello(pend *p, const uint8_t *body, size_t n)
{
	gw_hub *h = p->h;
	const uint8_t *q = body, *end = body + n;
	if (n < 4) {
		pend_refuse(p, "08P01", "malformed relay hello");
		return;
	}
	uint32_t ver = gw_get_u32(q);
	q += 4;
	const char *name = take_str(&q, end), *token = take_str(&q, end), *inst = take_str(&q, end);
	const char *targets = take_str(&q, end), *software = take_str(&q, end);
	if (!software) {
		pend_refuse(p, "08P01", "malformed relay hello");
		return;
	}
	if (ver != GW_RELAY_PROTO) {
		pend_refuse(p, "08P01", "relay protocol %u is not spoken here (this gateway speaks %d); run the same pgmoat version on both sides",
			ver, GW_RELAY_PROTO);
		return;
	}
	if (gw_ratelimit_blocked(h->rl, &p->ss)) {
		pend_refuse(p, "28000", "too many failed logins from %s; wait a minute", p->addr);
		return;
	}
	gw_identity id;
	pthread_mutex_lock(&h->lock);
	p->gen = h->revoked_gen;
	pthread_mutex_unlock(&h->lock);
	enum gw_auth_result ar = gw_identity_verify_token(h->store, token, name, &id);
	if (ar != GW_AUTH_OK) {
		if (ar != GW_AUTH_STORE_ERROR)
			gw_ratelimit_fail(h->rl, &p->ss);
		pend_refuse(p, gw_auth_sqlstate(ar), "relay \"%.100s\": %s", name, gw_auth_reason(ar));
		return;
	}
	if (strcmp(id.kind, "relay")) {
		pend_refuse(p, "28000", "identity \"%s\" is of kind %s, not relay; a relay logs in with a token of an identity "
			"made with `pgmoat identity add NAME --kind relay`", id.name, id.kind);
		return;
	}
	snprintf(p->name, sizeof(p->name), "%s", id.name);
	snprintf(p->instance, sizeof(p->instance), "%.32s", inst);
	snprintf(p->targets, sizeof(p->targets), "%s", targets);
	snprintf(p->software, sizeof(p->software), "%s", software);
	snprintf(p->token_id, sizeof(p->token_id), "%s", id.token_id);
	size_t m = gw_buf_msg_begin(&p->conn.tx, 'h');
	gw_buf_msg_end(&p->conn.tx, m);
	p->ok = true;
	p->st = P_REPLY;
}

static void pend_io(gw_io *io, uint32_t events)
{
	pend *p = io->ud;
	if (p->st == P_HANDSHAKE) {
		int r = gw_conn_handshake(&p->conn);
		if (r < 0) {
			gw_warn("relay connection from %s: TLS handshake failed: %s", p->addr, p->conn.err);
			pend_free(p, true);
			return;
		}
		if (r == 1)
			p->st = P_HELLO;
	}
	if (p->st == P_HELLO) {
		ssize_t r = gw_conn_recv(&p->conn, HELLO_MAX + 5);
		uint8_t type;
		uint32_t len;
		long m = gw_pg_frame(gw_buf_rd(&p->conn.rx), gw_buf_len(&p->conn.rx), HELLO_MAX, &type, &len);
		if (m < 0 || (m > 0 && type != 'H')) {
			pend_refuse(p, "08P01", "expected a relay hello (is this a relay? PostgreSQL clients connect to listen.postgres)");
		} else if (m > 0) {
			if ((size_t)m != gw_buf_len(&p->conn.rx) || gw_conn_has_pending(&p->conn))
				pend_refuse(p, "08P01", "a relay sends nothing after its hello until asked");
			else
				on_hello(p, gw_buf_rd(&p->conn.rx) + 5, len - 4);
			explicit_bzero(p->conn.rx.data, p->conn.rx.cap); /* the token */
			gw_buf_free(&p->conn.rx);
		} else if (r < 0) {
			gw_debug("relay connection from %s closed before its hello", p->addr);
			pend_free(p, true);
			return;
		}
	}
	if (p->st == P_REPLY) {
		int f = gw_conn_flush(&p->conn);
		if (f < 0 || (f == 0 && !p->ok)) {
			pend_free(p, true);
			return;
		}
		if (f == 0) {
			gw_buf_free(&p->conn.tx);
			if (!park(p->h, p)) {
				gw_info("relay login from %s: a revocation came meanwhile; closed (it logs in again)", p->addr);
				pend_free(p, true);
				return;
			}
			pend_free(p, false);
			return;
		}
	}
	uint32_t ev = EPOLLIN;
	if (gw_buf_len(&p->conn.tx) || p->conn.want_write)
		ev |= EPOLLOUT;
	gw_loop_watch(p->h->loop, &p->conn.io, ev);
}

static void on_accept(gw_io *io, uint32_t events)
{
	gw_hub *h = io->ud;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		int fd = gw_tcp_accept(io->fd, &ss, "listen.relay");
		if (fd < 0)
			return;
		if (h->npending >= MAX_PENDING) {
			/* a flood of connections that never log in must not exhaust the process's descriptors */
			gw_warn("relay listener: %d connections are logging in already; refusing more for now", h->npending);
			close(fd);
			continue;
		}
		gw_tcp_keepalive(fd);
		pend *p = gw_xcalloc(1, sizeof(*p));
		p->h = h;
		p->ss = ss;
		gw_addr_str(&ss, p->addr, sizeof(p->addr));
		gw_conn_init(&p->conn, fd);
		p->conn.io.cb = pend_io;
		p->conn.io.ud = p;
		p->deadline = gw_mono_us() + h->cfg->auth_timeout_us;
		if (gw_conn_start_tls(&p->conn, h->tls, true, NULL) < 0) {
			close(fd);
			free(p);
			continue;
		}
		p->next = h->pending;
		if (h->pending)
			h->pending->prev = p;
		h->pending = p;
		h->npending++;
		gw_loop_watch(h->loop, &p->conn.io, EPOLLIN);
	}
}

static void on_tick(void *arg)
{
	gw_hub *h = arg;
	uint64_t now = gw_mono_us();
	for (pend *p = h->pending, *np; p; p = np) {
		np = p->next;
		if (p->deadline <= now) {
			gw_warn("relay connection from %s: no login within limits.auth_timeout; closed", p->addr);
			pend_free(p, true);
		}
	}
	if (now - h->last_sweep >= SWEEP_US) {
		h->last_sweep = now;
		sweep(h);
	}
	for (;;) {
		pthread_mutex_lock(&h->lock);
		hwait *w = wait_pop_locked(h, NULL, now);
		pthread_mutex_unlock(&h->lock);
		if (!w)
			break;
		wait_wake(w); /* past its deadline: its take fails with the reason */
	}
}

static void *hub_main(void *arg)
{
	gw_hub *h = arg;
	gw_loop_run(h->loop);
	while (h->pending)
		pend_free(h->pending, true);
	return NULL;
}

gw_hub *gw_hub_start(const gw_config *cfg, gw_tls_ctx *ctx, gw_store *store, gw_ratelimit *rl,
	char *err, size_t errlen)
{
	char why[300];
	int fd = gw_tcp_listen(cfg->relay_host, cfg->relay_port, false, 1024, why, sizeof(why));
	if (fd < 0) {
		snprintf(err, errlen, "listen.relay: %s", why);
		return NULL;
	}
	gw_hub *h = gw_xcalloc(1, sizeof(*h));
	h->cfg = cfg;
	h->tls = ctx;
	h->store = store;
	h->rl = rl;
	pthread_mutex_init(&h->lock, NULL);
	h->waits_tail = &h->waits;
	h->loop = gw_loop_new(-1);
	h->lio.fd = fd;
	h->lio.cb = on_accept;
	h->lio.ud = h;
	gw_loop_watch(h->loop, &h->lio, EPOLLIN);
	gw_loop_set_tick(h->loop, 100000, on_tick, h);
	if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
		snprintf(err, errlen, "cannot start the relay listener's thread");
		gw_loop_free(h->loop);
		close(fd);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	h->running = true;
	return h;
}

void gw_hub_stop(gw_hub *h)
{
	if (!h)
		return;
	gw_loop_stop(h->loop);
	pthread_join(h->thread, NULL);
	gw_loop_unwatch(&h->lio);
	close(h->lio.fd);
	gw_loop_free(h->loop);
	pthread_mutex_lock(&h->lock);
	while (h->insts) {
		rinst *in = h->insts;
		gw_tunnel *t = in->tunnels;
		while (t && !t->idle)
			t = t->next;
		if (!t) {
			/* Busy tunnels belong to pools, closed with them; forget the rest. */
			for (gw_tunnel *b = in->tunnels, *nb; b; b = nb) {
				nb = b->next;
				free(b);
			}
			h->insts = in->next;
			free(in);
			continue;
		}
		tunnel_close_parked_locked(h, t);
	}
	while (h->waits) {
		hwait *w = h->waits;
		h->waits = w->next;
		free(w);
	}
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
