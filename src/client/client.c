/*
 * The login phase of a client connection; see client.h.
 *
 *   STARTUP --SSLRequest--> TLS --> STARTUP --StartupMessage--> PASSWORD --ok--> session
 *      |--GSSENCRequest: 'N', stay      |--CancelRequest: forward, close   |
 *                                       |--client certificate --ok--> session
 *                                                          JWT, kid unknown |
 *                                                  JWKS_WAIT <-------------+
 *                                (unwatched; the issuer's fetch ends: decided again)
 *
 * The password is an API token (pgm_...) or a JWT (three base64url parts,
 * identity/oidc.h). With tls.client_ca a verified client certificate logs in
 * without one. Every refusal counts against the source's rate limit (except
 * a store failure) and is recorded as an auth_failure event.
 *
 * Every byte here comes from an unauthenticated peer: lengths are checked
 * before anything is buffered, and any violation is FATAL 08P01 and a close.
 */
#include "client/client.h"
#include "core/log.h"
#include "core/util.h"
#include "audit/audit.h"
#include "identity/identity.h"
#include "identity/oidc.h"
#include "net/conn.h"
#include "pgwire/pgwire.h"
#include "session/registry.h"
#include "session/session.h"
#include "upstream/upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PASSWORD_MSG 20000

enum client_state { C_STARTUP, C_TLS, C_PASSWORD, C_JWKS_WAIT, C_DISCARD, C_CLOSING };

/* An oversized JWT up to this long is refused (28P01) and read to its end; longer ones end the connection. */
#define MAX_DISCARD (4u * 1024 * 1024)

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
	uint8_t *pw;            /* a JWT kept while its issuer's keys are fetched (scrubbed when freed) */
	size_t discard;         /* C_DISCARD: bytes of an oversized password still to come */
	size_t pwlen;
	struct gw_client *prev, *next;
};

static void client_io(gw_io *io, uint32_t events);

static void client_free(void *p)
{
	gw_client *c = p;
	if (c->have_startup)
		gw_pg_startup_free(&c->startup);
	if (c->pw) {
		explicit_bzero(c->pw, c->pwlen);
		free(c->pw);
	}
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

/*
 * A refused login: counted for the rate limit (unless the store failed) and
 * recorded as an auth_failure event with the worker's next group. Returns
 * the SQLSTATE to answer with.
 */
static const char *refusal_note(gw_client *c, enum gw_auth_result r, const char *method, const char *why,
	const char *issuer)
{
	gw_worker *wk = c->wk;
	const char *sqlstate = gw_auth_sqlstate(r);
	if (r != GW_AUTH_STORE_ERROR)
		gw_ratelimit_fail(wk->gw->rl, &c->addr);
	const char *user = c->have_startup ? gw_pg_startup_get(&c->startup, "user") : NULL;
	gw_audit_ev *e = gw_audit_ev_auth_failure(&wk->evbuf, gw_wall_us(), c->addr_str, user, method, why, sqlstate,
		issuer);
	*wk->aud_tail = e;
	wk->aud_tail = &e->next;
	wk->aud_nevs++;
	return sqlstate;
}

/* Refuse a login: noted (above), answered with FATAL, closed. */
static void refuse(gw_client *c, enum gw_auth_result r, const char *method, const char *why, const char *issuer)
{
	client_fatal(c, refusal_note(c, r, method, why, issuer), "pgmoat: %s", why);
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

/* The identity is decided: hand the connection to a session. c ends here. */
static void hand_over(gw_client *c, const gw_identity *ident, const char *method)
{
	gw_gateway *gw = c->wk->gw;
	const char *user = gw_pg_startup_get(&c->startup, "user");
	const char *db = gw_pg_startup_get(&c->startup, "database");
	if (!db || !*db)
		db = user;
	gw_pool *pool = gw_gateway_pool(gw, db);
	if (!pool) {
		client_fatal(c, "3D000", "pgmoat: connection \"%s\" does not exist; dbname must name a registered connection", db);
		return;
	}
	gw_loop_unwatch(&c->conn.io);
	unlink_client(c);
	c->closed = true;
	gw_pg_startup st = c->startup;
	c->have_startup = false;
	gw_conn conn = c->conn;
	memset(&c->conn, 0, sizeof(c->conn));
	gw_loop_defer_free(c->wk->loop, client_free, c);
	gw_session_start(c->wk, &conn, &c->addr, ident, pool, &st, method);
	gw_pg_startup_free(&st);
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
	if (gw->cfg->tls_client_ca && c->conn.tls) {
		gw_tls_peer peer;
		gw_tls_peer_get(c->conn.tls, &peer);
		if (peer.present) {
			/* a certificate was sent: it decides, whether it is good or not */
			gw_identity ident;
			char cwhy[400];
			enum gw_auth_result r = gw_identity_from_cert(gw->cfg, gw->store, &peer, user, (int64_t)time(NULL), &ident,
				cwhy, sizeof(cwhy));
			if (r != GW_AUTH_OK) {
				refuse(c, r, "cert", cwhy, NULL);
				return -1;
			}
			hand_over(c, &ident, "cert");
			return -1;
		}
	}
	gw_pg_auth(&c->conn.tx, PG_AUTH_CLEARTEXT, NULL, 0);
	c->state = C_PASSWORD;
	return 0;
}

static void jwks_wake(void *arg);

/*
 * A password message longer than MAX_PASSWORD_MSG whose first bytes are
 * those of a JWT ("eyJ", base64url of '{"'): a token too long, refused as a
 * credential (28P01). Anything else that long is a protocol error (08P01).
 */
static bool oversized_jwt(const gw_buf *rx)
{
	size_t n = gw_buf_len(rx);
	if (n < 6 || gw_buf_rd(rx)[0] != 'p')
		return false;
	uint32_t len = gw_get_u32(gw_buf_rd(rx) + 1);
	size_t body = n - 5 < 3 ? n - 5 : 3;
	return len > MAX_PASSWORD_MSG && len <= MAX_DISCARD && !memcmp(gw_buf_rd(rx) + 5, "eyJ", body);
}

/* A JWT as the password: decided now, or parked until its issuer's keys are fetched. -1 when c is gone. */
static int login_jwt(gw_client *c, const char *tok, size_t n)
{
	gw_gateway *gw = c->wk->gw;
	const char *user = gw_pg_startup_get(&c->startup, "user");
	gw_identity ident;
	char why[400], issuer[128];
	gw_oidc_waiter w = {c->wk->loop, jwks_wake, c->wk};
	enum gw_auth_result r = gw_identity_verify_jwt(gw->oidc, gw->store, tok, n, user, &w, &ident, why, sizeof(why), issuer);
	if (r == GW_AUTH_PENDING) {
		if (!c->pw) {
			c->pw = gw_xmalloc(n + 1);
			memcpy(c->pw, tok, n);
			c->pw[n] = 0;
			c->pwlen = n;
		}
		c->state = C_JWKS_WAIT;
		gw_loop_watch(c->wk->loop, &c->conn.io, 0);
		gw_debug("login from %s waits for the keys of issuer %s", c->addr_str, issuer);
		return 0;
	}
	if (r != GW_AUTH_OK) {
		refuse(c, r, "jwt", why, issuer);
		return -1;
	}
	hand_over(c, &ident, "jwt");
	return -1;
}

/* An issuer's fetch ended: decide the logins of this worker that waited for keys. */
static void jwks_wake(void *arg)
{
	gw_worker *wk = arg;
	/* login_jwt may unlink c (refused, handed over), never another client: next stays valid */
	for (gw_client *c = wk->clients, *next; c; c = next) {
		next = c->next;
		if (!c->closed && c->state == C_JWKS_WAIT)
			login_jwt(c, (const char *)c->pw, c->pwlen);
	}
}

static int on_password(gw_client *c, const uint8_t *body, size_t n)
{
	gw_gateway *gw = c->wk->gw;
	if (n == 0 || body[n - 1] != 0 || memchr(body, 0, n) != body + n - 1) {
		client_fatal(c, "08P01", "pgmoat: malformed password message");
		return -1;
	}
	const char *user = gw_pg_startup_get(&c->startup, "user");
	if (gw_jwt_shape((const char *)body, n - 1))
		return login_jwt(c, (const char *)body, n - 1);
	gw_identity ident;
	if (!gw->cfg->identity_tokens) {
		refuse(c, GW_AUTH_BAD_TOKEN, "token", "API tokens are turned off here (identity.tokens: false); log in with a "
			"JWT or a client certificate", NULL);
		return -1;
	}
	enum gw_auth_result r = gw_identity_verify_token(gw->store, (const char *)body, user, &ident);
	if (r != GW_AUTH_OK) {
		char why[300];
		if (r == GW_AUTH_UNKNOWN_IDENTITY || r == GW_AUTH_DISABLED || r == GW_AUTH_MISMATCH)
			snprintf(why, sizeof(why), "%s (user \"%s\")", gw_auth_reason(r), user);
		else
			snprintf(why, sizeof(why), "%s for user \"%s\"", gw_auth_reason(r), user);
		refuse(c, r, "token", why, NULL);
		return -1;
	}
	if (!strcmp(ident.kind, "relay")) {
		char why[300];
		snprintf(why, sizeof(why), "identity \"%s\" is a relay; relays connect to listen.relay with `pgmoat relay`, "
			"not as PostgreSQL clients", ident.name);
		refuse(c, GW_AUTH_DISABLED, "token", why, NULL);
		return -1;
	}
	/* a token issued with a ttl ends its sessions when it expires, as a JWT's exp does */
	if (gw->cfg->session_follows_token_expiry && ident.expires_at > 0)
		ident.session_until_us = (uint64_t)ident.expires_at * 1000000u;
	hand_over(c, &ident, "token");
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
			if (m < 0 && oversized_jwt(rx)) {
				/*
				 * A JWT too long to be one (at most 16 kB): refused at once, then read to its end
				 * and thrown away, so the refusal reaches a client still sending it (closing on
				 * unread bytes would reset the connection and lose the message).
				 */
				static const char why[] = "the password is over 20000 bytes: a JWT is at most 16 kB";
				const char *sqlstate = refusal_note(c, GW_AUTH_BAD_TOKEN, "jwt", why, NULL);
				gw_info("login refused: client=%s sqlstate=%s %s", c->addr_str, sqlstate, why);
				gw_pg_error(&c->conn.tx, "FATAL", sqlstate, "pgmoat: the password is over 20000 bytes: a JWT is at "
					"most 16 kB", NULL, NULL);
				c->discard = (size_t)gw_get_u32(gw_buf_rd(rx) + 1) + 1;
				c->state = C_DISCARD;
				continue;
			}
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
		} else if (c->state == C_DISCARD) {
			size_t k = gw_buf_len(rx) < c->discard ? gw_buf_len(rx) : c->discard;
			gw_buf_consume(rx, k);
			c->discard -= k;
			if (c->discard)
				return 0;
			/* all of it read: close once the refusal is written */
			if (gw_conn_flush(&c->conn) == 1) {
				c->state = C_CLOSING;
				gw_loop_watch(c->wk->loop, &c->conn.io, EPOLLOUT);
			} else {
				client_close(c);
			}
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
	if (c->state == C_JWKS_WAIT)
		return; /* unwatched until the issuer's keys are fetched (jwks_wake) */
	gw_loop_watch(c->wk->loop, &c->conn.io, (f == 1 || c->conn.want_write) ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
}

void gw_client_tick(gw_worker *wk)
{
	uint64_t now = gw_mono_us();
	for (gw_client *c = wk->clients, *next; c; c = next) {
		next = c->next;
		if (now >= c->deadline && c->state == C_JWKS_WAIT) {
			refuse(c, GW_AUTH_PENDING, "jwt", "the token's key is unknown and the issuer's keys could not be fetched "
				"within limits.auth_timeout", NULL);
		} else if (now >= c->deadline) {
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
