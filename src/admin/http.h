/*
 * Admin: the HTTP API (libmicrohttpd, its own thread) that the CLI verbs and
 * the web UI use.
 *
 * Owns: routing, bearer-token authentication (admin_token from config, or an
 * API token of an identity listed in admins:), JSON bodies, and the
 * translation of API calls into store/registry/session operations. Nothing
 * includes this module except gateway/.
 */
#ifndef GW_ADMIN_HTTP_H
#define GW_ADMIN_HTTP_H

#include "gateway/gateway.h"

#include <stddef.h>

typedef struct gw_admin gw_admin;

gw_admin *gw_admin_start(gw_gateway *gw, char *err, size_t errlen);
void gw_admin_stop(gw_admin *a);

#endif
