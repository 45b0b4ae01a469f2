/*
 * Upstream: authenticated connections to PostgreSQL, and their pools.
 *
 * Owns: connecting (TCP, Unix socket, or a relay's tunnel taken from the
 * hub: relay/relay.h), SSLRequest/TLS per sslmode, the
 * upstream login (SCRAM-SHA-256, md5, password), the cache of the server's
 * ParameterStatus values per registered connection, and resetting a
 * connection (ROLLBACK if needed, DISCARD ALL) before it is pooled again.
 *
 * A server is either idle in its pool (watched by no loop), being set up or
 * reset by this module (on one loop), or lent to a session: then the session
 * reads and writes it through gw_server_conn() and nothing here touches it
 * until gw_pool_release().
 */
#ifndef GW_UPSTREAM_UPSTREAM_H
#define GW_UPSTREAM_UPSTREAM_H

#include "core/buf.h"
#include "core/config.h"
#include "net/conn.h"
#include "net/loop.h"
#include "net/tls.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct gw_server gw_server;
typedef struct gw_pool gw_pool;
typedef struct gw_pool_wait gw_pool_wait;

/* Called on the acquiring loop with a ready server, or NULL and a reason. */
typedef void (*gw_server_ready_fn)(void *arg, gw_server *srv, const char *err);

typedef struct gw_hub gw_hub;

/* hub: where a connection with relay: takes its tunnels (relay/), or NULL. */
gw_pool *gw_pool_new(const gw_conn_cfg *cfg, uint64_t connect_timeout_us, gw_hub *hub, char *err, size_t errlen);
void gw_pool_free(gw_pool *pool);
const gw_conn_cfg *gw_pool_cfg(const gw_pool *pool);

/*
 * Take a server. Returns a ready one at once when one is idle. Otherwise
 * returns NULL and, later, on this loop, calls fn(arg, srv or NULL, err);
 * *wait is set so the caller can gw_pool_cancel() it first.
 */
gw_server *gw_pool_acquire(gw_pool *pool, gw_loop *loop, gw_server_ready_fn fn, void *arg, gw_pool_wait **wait);
/* Open one more server for the idle list (no waiter), on loop; false when the pool is full. */
bool gw_pool_grow(gw_pool *pool, gw_loop *loop);
/* Servers being opened by gw_pool_grow. */
int gw_pool_growing(gw_pool *pool);
/* Withdraw a wait (on the loop that made it); fn will not be called. */
void gw_pool_cancel(gw_pool_wait *w);
/*
 * Give a server back. reusable: the protocol is at a sync point, so it is
 * reset and pooled; otherwise it is closed.
 */
void gw_pool_release(gw_server *srv, gw_loop *loop, bool reusable);
/* Close servers whose connect or reset is overdue (call from each loop's tick). */
void gw_pool_tick(gw_pool *pool, gw_loop *loop);
/* Append the cached ParameterStatus values as messages; false when none yet. */
bool gw_pool_param_status(gw_pool *pool, gw_buf *out, const char *const *override_kv);
/* True once some server of this pool has logged in (its parameters are cached). */
bool gw_pool_has_params(gw_pool *pool);
/*
 * Send a CancelRequest for backend (pid, key) of this connection, from a
 * short-lived helper thread (connect + 16 bytes), so no loop ever blocks.
 */
void gw_upstream_cancel(const gw_conn_cfg *cfg, gw_hub *hub, uint32_t pid, uint32_t key);
/* Pool counters for /metrics and `sessions`. */
void gw_pool_counts(gw_pool *pool, int *total, int *idle, int *waiting);

gw_conn *gw_server_conn(gw_server *srv);
uint32_t gw_server_pid(const gw_server *srv);
uint32_t gw_server_key(const gw_server *srv);
/* Append the server's ParameterStatus values as messages (a relay replays its login). */
void gw_server_param_status(const gw_server *srv, gw_buf *out);
const char *gw_server_param(const gw_server *srv, const char *key);
/* Record a ParameterStatus the session saw (also refreshes the pool cache). */
void gw_server_set_param(gw_server *srv, const char *key, const char *value);
/* Record the transaction status of the session's last ReadyForQuery ('I', 'T' or 'E'): release rolls back unless 'I'. */
void gw_server_set_txstatus(gw_server *srv, char txstatus);

#endif
