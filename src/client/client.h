/*
 * Client: a connection from accept() until it is a logged-in session.
 *
 * Owns: the startup phase — SSLRequest (TLS 1.2+), GSSENCRequest ('N'),
 * CancelRequest (forwarded to the right upstream backend with the real
 * key), the StartupMessage (bounded by limits.max_startup_size), the
 * TLS-required rule, the cleartext password exchange and its verification
 * through identity/, the failed-login rate limit, and the auth timeout.
 * On success the connection is handed to session/ and this object is gone.
 */
#ifndef GW_CLIENT_CLIENT_H
#define GW_CLIENT_CLIENT_H

#include "gateway/gateway.h"

#include <sys/socket.h>

/*
 * Take a freshly accepted non-blocking socket (fd is owned from here on).
 * The caller has already counted it in wk->nconns.
 */
void gw_client_accept(gw_worker *wk, int fd, const struct sockaddr_storage *addr);
/* Close clients whose login is overdue; call from the worker's tick. */
void gw_client_tick(gw_worker *wk);
void gw_client_close_all(gw_worker *wk);

#endif
