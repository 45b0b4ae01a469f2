/*
 * Plain and TLS connections behind one ops table; see conn.h.
 */
#include "net/conn.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct gw_conn_ops {
	ssize_t (*read)(gw_conn *c, void *buf, size_t n);   /* >0, 0 eof, -2 again, -1 err */
	ssize_t (*write)(gw_conn *c, const void *buf, size_t n);
};

static ssize_t plain_read(gw_conn *c, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = recv(c->io.fd, buf, n, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		if (errno == ECONNRESET)
			return 0;
		snprintf(c->err, sizeof(c->err), "read: %s", strerror(errno));
		return -1;
	}
}

static ssize_t plain_write(gw_conn *c, const void *buf, size_t n)
{
	for (;;) {
		ssize_t r = send(c->io.fd, buf, n, MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		snprintf(c->err, sizeof(c->err), "write: %s", strerror(errno));
		return -1;
	}
}

static ssize_t tls_read(gw_conn *c, void *buf, size_t n)
{
	ssize_t r = gw_tls_read(c->tls, buf, n);
	c->want_write = false;
	if (r >= 0)
		return r;
	if (r == GW_TLS_WANT_READ)
		return -2;
	if (r == GW_TLS_WANT_WRITE) {
		c->want_write = true;
		return -2;
	}
	snprintf(c->err, sizeof(c->err), "%s", gw_tls_error(c->tls));
	return -1;
}

static ssize_t tls_write(gw_conn *c, const void *buf, size_t n)
{
	ssize_t r = gw_tls_write(c->tls, buf, n);
	if (r > 0)
		return r;
	if (r == GW_TLS_WANT_READ || r == GW_TLS_WANT_WRITE)
		return -2;
	snprintf(c->err, sizeof(c->err), "%s", gw_tls_error(c->tls));
	return -1;
}

static const gw_conn_ops plain_ops = {plain_read, plain_write};
static const gw_conn_ops tls_ops = {tls_read, tls_write};

void gw_tcp_keepalive(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 3;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

int gw_tcp_connect(const char *host, int port, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	*err = 0;
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		gw_tcp_keepalive(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
			break;
		snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0 && !*err)
		snprintf(err, errlen, "cannot connect to %s:%d", host, port);
	return fd;
}

bool gw_tcp_resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0 || !res || res->ai_addrlen > sizeof(*ss)) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, rc ? gai_strerror(rc) : "no address");
		if (res)
			freeaddrinfo(res);
		return false;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

int gw_tcp_connect_addr(const struct sockaddr_storage *ss, socklen_t len, char *err, size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	gw_tcp_keepalive(fd);
	if (connect(fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "cannot connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int gw_tcp_accept(int lfd, struct sockaddr_storage *ss, const char *what)
{
	for (;;) {
		socklen_t sl = sizeof(*ss);
		int fd = accept4(lfd, (struct sockaddr *)ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			gw_warn("%s: accept: %s", what, strerror(errno));
		return -1;
	}
}

int gw_tcp_listen(const char *host, int port, bool reuseport, int backlog, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	}
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

void gw_conn_init(gw_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->io.fd = fd;
	c->ops = &plain_ops;
}

int gw_conn_start_tls(gw_conn *c, gw_tls_ctx *ctx, bool server, const char *host)
{
	c->tls = gw_tls_new(ctx, c->io.fd, server, host);
	if (!c->tls) {
		snprintf(c->err, sizeof(c->err), "cannot start TLS");
		return -1;
	}
	c->ops = &tls_ops;
	return 0;
}

void gw_conn_adopt_tls(gw_conn *c, int fd, gw_tls *t)
{
	gw_conn_init(c, fd);
	c->tls = t;
	c->ops = &tls_ops;
}

int gw_conn_handshake(gw_conn *c)
{
	int r = gw_tls_handshake(c->tls);
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "%s", gw_tls_error(c->tls));
	c->want_write = r == 0 && gw_tls_wants_write(c->tls);
	return r;
}

ssize_t gw_conn_recv(gw_conn *c, size_t max)
{
	size_t total = 0;
	while (total < max) {
		size_t want = max - total;
		if (want > 65536)
			want = 65536;
		gw_buf_reserve(&c->rx, want);
		ssize_t r = c->ops->read(c, gw_buf_wr(&c->rx), want);
		if (r > 0) {
			gw_buf_commit(&c->rx, (size_t)r);
			total += (size_t)r;
			c->bytes_in += (uint64_t)r;
			if ((size_t)r < want && !gw_conn_has_pending(c))
				break; /* short read: the socket is drained */
			continue;
		}
		if (r == -2)
			break;
		if (r == 0)
			c->err[0] = 0;
		if (total)
			break; /* report the data now; the close shows on the next call */
		gw_buf_release(&c->rx);
		return -1;
	}
	if (!total)
		gw_buf_release(&c->rx);
	return (ssize_t)total;
}

bool gw_conn_has_pending(const gw_conn *c)
{
	return c->tls && gw_tls_pending(c->tls) > 0;
}

int gw_conn_flush(gw_conn *c)
{
	while (gw_buf_len(&c->tx)) {
		size_t n = gw_buf_len(&c->tx);
		if (n > 1u << 20)
			n = 1u << 20;
		ssize_t r = c->ops->write(c, gw_buf_rd(&c->tx), n);
		if (r > 0) {
			gw_buf_consume(&c->tx, (size_t)r);
			c->bytes_out += (uint64_t)r;
			continue;
		}
		if (r == -2)
			return 1;
		return -1;
	}
	gw_buf_release(&c->tx);
	return 0;
}

ssize_t gw_conn_write_direct(gw_conn *c, const void *p, size_t n)
{
	ssize_t r = c->ops->write(c, p, n);
	if (r > 0)
		c->bytes_out += (uint64_t)r;
	return r;
}

void gw_conn_close(gw_conn *c)
{
	gw_loop_unwatch(&c->io);
	if (c->tls) {
		gw_tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->io.fd >= 0) {
		close(c->io.fd);
		c->io.fd = -1;
	}
	gw_buf_free(&c->rx);
	gw_buf_free(&c->tx);
}
