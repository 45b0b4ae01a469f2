/*
 * gw_conn — one socket, plain or TLS, with a receive and a send buffer.
 *
 * Owns: the fd, its TLS session and both buffers. Plain and TLS transports
 * sit behind one small ops table, so nothing above this file knows which one
 * a connection uses. Buffers are allocated on demand and released when
 * empty, so an idle connection holds no buffer memory.
 */
#ifndef GW_NET_CONN_H
#define GW_NET_CONN_H

#include "core/buf.h"
#include "net/loop.h"
#include "net/tls.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct gw_conn_ops gw_conn_ops;

typedef struct gw_conn {
	gw_io io;
	gw_tls *tls;
	const gw_conn_ops *ops;
	gw_buf rx, tx;
	uint64_t bytes_in, bytes_out;
	bool want_write;     /* the transport needs writability to progress a read */
	char err[160];
} gw_conn;

/*
 * A non-blocking TCP socket connecting to host:port (TCP_NODELAY, keepalive);
 * the connect may still be in progress (wait for EPOLLOUT, then SO_ERROR).
 * -1 and err when no address could be tried.
 */
int gw_tcp_connect(const char *host, int port, char *err, size_t errlen);
/* The same to an address already resolved (gw_tcp_resolve), so a loop does not wait on DNS each time. */
int gw_tcp_connect_addr(const struct sockaddr_storage *ss, socklen_t len, char *err, size_t errlen);
/* Resolve host:port to its first address; false and err when it cannot. Blocks on DNS. */
bool gw_tcp_resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);
/*
 * TCP_NODELAY, and keepalive probes after 60 s idle, every 10 s, 3 unanswered:
 * a peer gone silently (a NAT or firewall dropped the flow) is noticed in ~90 s.
 */
void gw_tcp_keepalive(int fd);
/*
 * The next connection waiting on listening socket lfd (non-blocking,
 * close-on-exec), its peer in *ss; -1 when none waits (an error other than
 * "try again" is logged, naming what listens).
 */
int gw_tcp_accept(int lfd, struct sockaddr_storage *ss, const char *what);
/* A non-blocking listening socket on host:port (SO_REUSEADDR; reuseport: SO_REUSEPORT). -1 and err. */
int gw_tcp_listen(const char *host, int port, bool reuseport, int backlog, char *err, size_t errlen);

/* Set up c on a connected non-blocking fd (plain transport). */
void gw_conn_init(gw_conn *c, int fd);
/* Switch c to TLS (after SSLRequest was answered 'S' / by the server). */
int gw_conn_start_tls(gw_conn *c, gw_tls_ctx *ctx, bool server, const char *host);
/* Set up c on fd with an established TLS session t (a tunnel handed over by the relay hub). */
void gw_conn_adopt_tls(gw_conn *c, int fd, gw_tls *t);
/* Drive the TLS handshake: 1 done, 0 in progress, -1 failed (c->err). */
int gw_conn_handshake(gw_conn *c);

/*
 * Read what the socket has, up to max bytes, into c->rx.
 * Returns > 0 bytes read, 0 nothing available now, -1 closed or failed
 * (c->err says which; empty on a clean close).
 */
ssize_t gw_conn_recv(gw_conn *c, size_t max);
/* True when the transport holds decrypted bytes epoll cannot see. */
bool gw_conn_has_pending(const gw_conn *c);
/*
 * Write c->tx out. Returns 0 when all of it went, 1 when the socket is full
 * (wait for EPOLLOUT), -1 on failure.
 */
int gw_conn_flush(gw_conn *c);
/* Close the fd, free TLS and buffers; the gw_conn itself is the caller's. */
void gw_conn_close(gw_conn *c);
/* Bytes written directly (bypassing tx), only when tx is empty; like write(2). */
ssize_t gw_conn_write_direct(gw_conn *c, const void *p, size_t n);

#endif
