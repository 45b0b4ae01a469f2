/*
 * Relay: the database side dials out to the gateway (SPEC "Relay").
 *
 * Owns both ends of a tunnel:
 *   - the hub (hub.c), inside `pgmoat serve`: the listen.relay socket, relay
 *     logins (a token of an identity of kind relay), the idle tunnels of each
 *     relay name, and closing them when the token is revoked;
 *   - the relay process (relay.c), `pgmoat relay`: outbound TLS to the
 *     gateway (certificate pinned to a CA file and a name), a few tunnels kept
 *     open and ready, reconnection with backoff, the targets' credentials and
 *     logins, and a logged-in backend or two per target kept warm.
 *
 * A tunnel is one TLS connection carrying one upstream server connection:
 * the gateway's pool (upstream/) takes an idle tunnel where it would open a
 * socket, asks for a target, and from then on the tunnel is a plain byte pipe
 * between the gateway and a backend the relay logged in to. There is no
 * framing on the hot path and a lost tunnel ends only its own session.
 *
 * Tunnel protocol (PostgreSQL framing: type byte, int32 length, body):
 *   relay -> gw  'H'  int32 version (1), name, token, instance, targets ("a,b"), software
 *   gw -> relay  'h'  (empty): logged in; the tunnel is idle until used
 *                'E'  ErrorResponse: refused (then closed)
 *   gw -> relay  'O'  target: open; the relay answers with the backend's
 *                     login tail (AuthenticationOk, ParameterStatus...,
 *                     BackendKeyData, ReadyForQuery) or an ErrorResponse,
 *                     then relays bytes both ways
 *   gw -> relay  'C'  target, int32 pid, int32 key: cancel that backend's query (then closed)
 *   gw -> relay  'D'  target, JSON needs: run the doctor's database checks;
 *                     the relay answers 'd' JSON findings (then closed)
 * A relay never writes on an idle tunnel, so the gateway may treat any byte
 * or EOF on one as its end.
 */
#ifndef GW_RELAY_RELAY_H
#define GW_RELAY_RELAY_H

#include "core/config.h"
#include "net/loop.h"
#include "net/tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_RELAY_PROTO 1

typedef struct gw_hub gw_hub;
typedef struct gw_tunnel gw_tunnel;
typedef struct gw_store gw_store;
typedef struct gw_ratelimit gw_ratelimit;

/* ---- the hub (gateway side) ---- */

/* Listen on cfg->relay_host:relay_port (TLS with ctx) on a thread of its own. NULL and err on failure. */
gw_hub *gw_hub_start(const gw_config *cfg, gw_tls_ctx *ctx, gw_store *store, gw_ratelimit *rl,
	char *err, size_t errlen);
void gw_hub_stop(gw_hub *h);
/*
 * Take a live idle tunnel of relay `name` (thread-safe). On success the
 * caller owns *fd and *tls (an established TLS session) and must call
 * gw_hub_gone() before closing them. NULL and err (naming the relay) when
 * the relay has no live idle tunnel.
 */
gw_tunnel *gw_hub_take(gw_hub *h, const char *name, int *fd, gw_tls **tls, char *err, size_t errlen);
/*
 * The same, but when the relay is connected and only has no tunnel ready yet
 * (all in use; it opens more), register fn(arg) to run on loop when one is
 * parked or at deadline (then try again), set *waiting and return NULL.
 */
gw_tunnel *gw_hub_take_or_wait(gw_hub *h, const char *name, gw_loop *loop, gw_task_fn fn, void *arg,
	uint64_t deadline, int *fd, gw_tls **tls, bool *waiting, char *err, size_t errlen);
/* A pool's waiter went away without taking its wake-up: pass it to the next waiter while a tunnel is ready. */
void gw_hub_kick(gw_hub *h, const char *name);
/* The owner of a taken tunnel is about to close its fd. */
void gw_hub_gone(gw_hub *h, gw_tunnel *t);
/* Close every tunnel of identity (NULL: any) logged in with token_id (NULL: any). Returns how many. */
int gw_hub_revoke(gw_hub *h, const char *identity, const char *token_id);
/* Send a CancelRequest for (pid, key) on target through relay name (blocking; call from a helper thread). */
int gw_hub_cancel(gw_hub *h, const char *name, const char *target, uint32_t pid, uint32_t key);
/* Run the doctor's checks on target through relay name (blocking); *out: the relay's JSON findings. */
int gw_hub_doctor(gw_hub *h, const char *name, const char *target, const char *needs_json,
	char **out, char *err, size_t errlen);

/* One connected relay process, for `pgmoat relays` and GET /v1/relays. */
typedef struct gw_relay_info {
	char name[128];
	char instance[40];
	char addr[64];
	char targets[512];
	char software[64];
	int64_t connected_at, last_seen;   /* unix seconds */
	int idle, busy;                     /* tunnels ready / carrying a server connection */
} gw_relay_info;
/* Snapshot of the connected relay processes; *out is the caller's to free. */
int gw_hub_list(gw_hub *h, gw_relay_info **out);

/* ---- the relay process ---- */

/* `pgmoat relay ...`: returns the process exit code. */
int gw_relay_main(int argc, char **argv);

#endif
