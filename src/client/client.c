/*
 * The login phase of a client connection; see client.h.
 *
 *   STARTUP --SSLRequest--> TLS --> STARTUP --StartupMessage--> PASSWORD --ok--> session
 *      |--GSSENCRequest: 'N', stay      |--CancelRequest: forward, close
 *
 * Every byte here comes from an unauthenticated peer: lengths are checked
 * before anything is buffered, and any violation is FATAL 08P01 and a close.
 */
#include "client/client.h"
#include "core/log.h"
#include "core/util.h"
#include "identity/identity.h"
#include "net/conn.h"
#include "pgwire/pgwire.h"
#include "session/registry.h"
#include "session/session.h"
#include "upstream/upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PASSWORD_MSG 20000

enum client_state { C_STARTUP, C_TLS, C_PASSWORD, C_CLOSING };

struct gw_client {
	gw_worker *wk;
	gw_conn conn;
	struct sockaddr_storage addr;
	char addr_str[64];
	enum client_state state;
	bool tls_done;
	bool closed;
	gw_pg_startup startup;
	bool have_startup;
	uint64_t deadline;
	struct gw_client *prev, *next;
};

static void client_io(gw_io *io, uint32_t events);

static void client_free(void *p)
{
	gw_client *c = p;
	if (c->have_startup)
		gw_pg_startup_free(&c->startup);
	free(c);
}

static void unlink_client(gw_client *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (c->wk->clients == c)
		c->wk->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void client_close(gw_client *c)
{
	if (c->closed)
		return;
	c->closed = true;
	unlink_client(c);
	gw_conn_close(&c->conn);
	atomic_fetch_sub(&c->wk->gw->nclients, 1);
	atomic_fetch_sub(&c->wk->nconns, 1);
	gw_loop_defer_free(c->wk->loop, client_free, c);
}

/* Send FATAL and close once written (bounded by the auth deadline). */
__attribute__((format(printf, 3, 4))) static void client_fatal(gw_client *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_info("login refused: client=%s sqlstate=%s %s", c->addr_str, sqlstate, msg);
	gw_pg_error(&c->conn.tx, "FATAL", sqlstate, msg, NULL, NULL);
	if (gw_conn_flush(&c->conn) == 1) {
		c->state = C_CLOSING;
		gw_loop_watch(c->wk->loop, &c->conn.io, EPOLLOUT);
		return;
	}
	client_close(c);
}

void gw_client_accept(gw_worker *wk, int fd, const struct sockaddr_storage *addr)
{
	gw_gateway *gw = wk->gw;
	gw_client *c = gw_xcalloc(1, sizeof(*c));
	c->wk = wk;
	gw_conn_init(&c->conn, fd);
	c->conn.io.cb = client_io;
	c->conn.io.ud = c;
	c->addr = *addr;
	gw_addr_str(addr, c->addr_str, sizeof(c->addr_str));
	c->deadline = gw_mono_us() + gw->cfg->auth_timeout_us;
	c->next = wk->clients;
	if (wk->clients)
		wk->clients->prev = c;
	wk->clients = c;
	if (atomic_fetch_add(&gw->nclients, 1) >= gw->cfg->max_clients) {
		client_fatal(c, "53300", "pgmoat: sorry, too many clients already (limits.max_clients = %d)", gw->cfg->max_clients);
		return;
	}
	gw_loop_watch(wk->loop, &c->conn.io, EPOLLIN);
}

static void handle_cancel(gw_client *c, uint32_t pid, uint32_t key)
{
	const gw_conn_cfg *cfg;
	uint32_t upid, ukey;
	if (gw_registry_cancel_target(c->wk->gw->reg, pid, key, &cfg, &upid, &ukey)) {
		gw_debug("cancel request from %s forwarded to connection %s", c->addr_str, cfg->name);
		gw_upstream_cancel(cfg, c->wk->gw->hub, upid, ukey);
	} else {
		gw_debug("cancel request from %s matches no session", c->addr_str);
	}
	client_close(c);
}

/* Returns -1 when c was closed or handed over. */
static int on_startup_packet(gw_client *c, const uint8_t *p, size_t n)
{
	gw_gateway *gw = c->wk->gw;
	const char *why = NULL;
	gw_pg_startup st;
	if (gw_pg_parse_startup(p, n, &st, &why) != 0) {
		client_fatal(c, "08P01", "pgmoat: %s", why);
		return -1;
	}
	if (st.code == PG_SSL_REQUEST || st.code == PG_GSSENC_REQUEST) {
		/* Anything sent after the request but before our answer would be injected plaintext. */
		if (gw_buf_len(&c->conn.rx) != n) {
			client_fatal(c, "08P01", "pgmoat: unexpected data after an encryption request");
			return -1;
		}
		if (c->tls_done) {
			client_fatal(c, "08P01", "pgmoat: encryption requested twice");
			return -1;
		}
		gw_buf_consume(&c->conn.rx, n);
		char answer = (st.code == PG_SSL_REQUEST && gw->tls) ? 'S' : 'N';
		if (gw_conn_write_direct(&c->conn, &answer, 1) != 1) {
			client_close(c);
			return -1;
		}
		if (answer == 'S') {
			gw_conn_start_tls(&c->conn, gw->tls, true, NULL);
			c->state = C_TLS;
		}
		return 0;
	}
	if (st.code == PG_CANCEL_REQUEST) {
		handle_cancel(c, st.cancel_pid, st.cancel_key);
		return -1;
	}
	gw_buf_consume(&c->conn.rx, n);
	c->startup = st;
	c->have_startup = true;
	const char *user = gw_pg_startup_get(&st, "user");
	const char *db = gw_pg_startup_get(&st, "database");
	if (!c->tls_done && !(gw->cfg->allow_plaintext_loopback && gw_addr_is_loopback(&c->addr))) {
		client_fatal(c, "28000", "pgmoat: TLS required: connect with sslmode=require");
		return -1;
	}
	if (!user || !*user) {
		client_fatal(c, "28000", "pgmoat: no user name given: set user to your identity");
		return -1;
	}
	if (!db || !*db)
		db = user;
	(void)db;
	if (gw_ratelimit_blocked(gw->rl, &c->addr)) {
		client_fatal(c, "28P01", "pgmoat: too many failed logins from %s; wait a minute and try again", c->addr_str);
		return -1;
	}
	gw_pg_auth(&c->conn.tx, PG_AUTH_CLEARTEXT, NULL, 0);
	c->state = C_PASSWORD;
	return 0;
}

static int on_password(gw_client *c, const uint8_t *body, size_t n)
{
	gw_gateway *gw = c->wk->gw;
	if (n == 0 || body[n - 1] != 0 || memchr(body, 0, n) != body + n - 1) {
		client_fatal(c, "08P01", "pgmoat: malformed password message");
		return -1;
	}
	const char *user = gw_pg_startup_get(&c->startup, "user");
	const char *db = gw_pg_startup_get(&c->startup, "database");
	if (!db || !*db)
		db = user;
	gw_identity ident;
	enum gw_auth_result r = gw_identity_verify_token(gw->store, (const char *)body, user, &ident);
	if (r != GW_AUTH_OK) {
		if (r != GW_AUTH_STORE_ERROR)
			gw_ratelimit_fail(gw->rl, &c->addr);
		if (r == GW_AUTH_UNKNOWN_IDENTITY || r == GW_AUTH_DISABLED || r == GW_AUTH_MISMATCH)
			client_fatal(c, gw_auth_sqlstate(r), "pgmoat: %s (user \"%s\")", gw_auth_reason(r), user);
		else
			client_fatal(c, gw_auth_sqlstate(r), "pgmoat: %s for user \"%s\"", gw_auth_reason(r), user);
		return -1;
	}
	if (!strcmp(ident.kind, "relay")) {
		gw_ratelimit_fail(gw->rl, &c->addr);
		client_fatal(c, "28000", "pgmoat: identity \"%s\" is a relay; relays connect to listen.relay with `pgmoat relay`, "
			"not as PostgreSQL clients", ident.name);
		return -1;
	}
	gw_pool *pool = gw_gateway_pool(gw, db);
	if (!pool) {
		client_fatal(c, "3D000", "pgmoat: connection \"%s\" does not exist; dbname must name a registered connection", db);
		return -1;
	}
	/* Hand over to the session; this client object ends here. */
	gw_loop_unwatch(&c->conn.io);
	unlink_client(c);
	c->closed = true;
	gw_pg_startup st = c->startup;
	c->have_startup = false;
	gw_conn conn = c->conn;
	memset(&c->conn, 0, sizeof(c->conn));
	gw_loop_defer_free(c->wk->loop, client_free, c);
	gw_session_start(c->wk, &conn, &c->addr, &ident, pool, &st, "token");
	gw_pg_startup_free(&st);
	return -1;
}

/* Process what is buffered. Returns -1 when c is gone. */
static int client_process(gw_client *c)
{
	gw_gateway *gw = c->wk->gw;
	gw_buf *rx = &c->conn.rx;
	while (gw_buf_len(rx)) {
		if (c->state == C_STARTUP) {
			if (gw_buf_len(rx) < 4)
				return 0;
			uint32_t len = gw_get_u32(gw_buf_rd(rx));
			if (len < 8 || len > gw->cfg->max_startup_size) {
				client_fatal(c, "08P01", "pgmoat: invalid length of startup packet (%u bytes)", len);
				return -1;
			}
			if (gw_buf_len(rx) < len)
				return 0;
			if (on_startup_packet(c, gw_buf_rd(rx), len) < 0)
				return -1;
			if (c->state == C_TLS)
				return 0;
		} else if (c->state == C_PASSWORD) {
			uint8_t type;
			uint32_t len;
			long m = gw_pg_frame(gw_buf_rd(rx), gw_buf_len(rx), MAX_PASSWORD_MSG, &type, &len);
			if (m < 0 || (gw_buf_len(rx) >= 1 && gw_buf_rd(rx)[0] != 'p')) {
				client_fatal(c, "08P01", "pgmoat: expected a password message");
				return -1;
			}
			if (m == 0)
				return 0;
			/* Take the secret out of the buffer (and scrub it) before acting on it. */
			size_t bl = len - 4;
			uint8_t *pw = gw_xmalloc(bl);
			memcpy(pw, gw_buf_rd(rx) + 5, bl);
			memset(gw_buf_rd(rx) + 5, 0, bl);
			gw_buf_consume(rx, (size_t)m);
			int r = on_password(c, pw, bl);
			memset(pw, 0, bl);
			free(pw);
			if (r < 0)
				return -1;
		} else {
			return 0;
		}
	}
	return 0;
}

static void client_io(gw_io *io, uint32_t events)
{
	gw_client *c = io->ud;
	if (c->closed)
		return;
	if (c->state == C_CLOSING) {
		if (gw_conn_flush(&c->conn) != 1)
			client_close(c);
		return;
	}
	if (c->state == C_TLS) {
		int h = gw_conn_handshake(&c->conn);
		if (h < 0) {
			gw_info("TLS handshake with %s failed: %s", c->addr_str, c->conn.err);
			client_close(c);
			return;
		}
		if (h == 0) {
			gw_loop_watch(c->wk->loop, &c->conn.io, c->conn.want_write ? EPOLLOUT : EPOLLIN);
			return;
		}
		c->tls_done = true;
		c->state = C_STARTUP;
	}
	ssize_t r = gw_conn_recv(&c->conn, 32768);
	if (r < 0) {
		client_close(c);
		return;
	}
	if (client_process(c) < 0)
		return;
	/* TLS may hold a whole record already decrypted. */
	while (gw_conn_has_pending(&c->conn) && gw_buf_len(&c->conn.rx) < 65536) {
		ssize_t rr = gw_conn_recv(&c->conn, 32768);
		if (rr < 0) {
			client_close(c);
			return;
		}
		if (rr == 0)
			break; /* only part of a record is buffered: the socket says when the rest comes */
		if (client_process(c) < 0)
			return;
	}
	if (gw_buf_len(&c->conn.rx) > c->wk->gw->cfg->max_startup_size + MAX_PASSWORD_MSG) {
		client_fatal(c, "08P01", "pgmoat: too much data during login");
		return;
	}
	int f = gw_conn_flush(&c->conn);
	if (f < 0) {
		client_close(c);
		return;
	}
	gw_loop_watch(c->wk->loop, &c->conn.io, (f == 1 || c->conn.want_write) ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
}

void gw_client_tick(gw_worker *wk)
{
	uint64_t now = gw_mono_us();
	for (gw_client *c = wk->clients, *next; c; c = next) {
		next = c->next;
		if (now >= c->deadline) {
			gw_info("login from %s timed out (limits.auth_timeout)", c->addr_str);
			client_close(c);
		}
	}
}

void gw_client_close_all(gw_worker *wk)
{
	while (wk->clients)
		client_close(wk->clients);
}
