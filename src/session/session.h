/*
 * Session: one logged-in client and the upstream server lent to it.
 *
 * Owns: the message pipeline after login. Client messages are framed and
 * dispatched one by one (so policy, audit and masking can hold, refuse,
 * rewrite or inject messages later in the same place), upstream messages
 * likewise; large DataRow/CopyData messages stream through in pieces without
 * being buffered whole. It also owns the minted cancel key, the prelude that
 * applies the client's startup parameters to a pooled server, back-pressure
 * between the two sockets, and returning the server to its pool.
 */
#ifndef GW_SESSION_SESSION_H
#define GW_SESSION_SESSION_H

#include "gateway/gateway.h"
#include "identity/identity.h"
#include "net/conn.h"
#include "pgwire/pgwire.h"

#include <sys/socket.h>

/*
 * Start a session for a client that has just authenticated. Takes over conn
 * (its io must be unwatched by the caller) and startup (moved: the caller's
 * copy is emptied). Sends AuthenticationOk and, as soon as the server's
 * parameters are known, ParameterStatus/BackendKeyData/ReadyForQuery.
 */
void gw_session_start(gw_worker *wk, gw_conn *conn, const struct sockaddr_storage *addr,
	const gw_identity *ident, gw_pool *pool, gw_pg_startup *startup, const char *auth_method);
/* Timeouts of this worker's sessions; call from its tick. */
void gw_session_tick(gw_worker *wk);
/* End a session from any thread (57P01 to the client). -1 when no such session. */
int gw_session_kill(gw_gateway *gw, const char *id);
/* Commit this worker's group of records and release (or refuse) the statements held for it. */
void gw_session_audit_flush(gw_worker *wk);
/* After each batch of socket events: the group is committed when a statement waits for it. */
void gw_session_after_batch(void *worker);
/* Close every session of this worker (shutdown). */
void gw_session_close_all(gw_worker *wk);

#endif
