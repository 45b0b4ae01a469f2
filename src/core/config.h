/*
 * Configuration: pgmoat.yaml parsed once into an immutable gw_config.
 *
 * Owns: the keyword tables of every section, secret resolution (env:/file:),
 * and the error list with file:line. Nothing else reads YAML. A loaded config
 * is never modified; a reload builds a new one.
 */
#ifndef GW_CORE_CONFIG_H
#define GW_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_sslmode { GW_SSL_DISABLE, GW_SSL_PREFER, GW_SSL_REQUIRE, GW_SSL_VERIFY_CA, GW_SSL_VERIFY_FULL };

typedef struct gw_conn_cfg {
	char *name;
	char *host;              /* hostname, address, or a Unix socket directory ("/...") */
	int port;
	char *database;
	char *user;
	char *password;          /* resolved secret, or NULL */
	enum gw_sslmode sslmode;
	char *sslrootcert;       /* CA file for verify-ca / verify-full */
	int pool_size;           /* upstream connections kept, at most */
	int line;
} gw_conn_cfg;

typedef struct gw_config {
	char *path;
	/* listen */
	char pg_host[256];
	int pg_port;
	char http_host[256];
	int http_port;           /* 0: no HTTP API */
	/* tls */
	char *tls_cert, *tls_key, *tls_client_ca, *tls_crl;
	bool allow_plaintext_loopback;
	/* state */
	char *state;             /* "sqlite:PATH" */
	char *state_path;        /* PATH */
	char *admin_token;       /* resolved secret, or NULL */
	char **admins;           /* "group:x" / "identity:y" */
	size_t n_admins;
	bool identity_tokens;
	gw_conn_cfg *conns;
	size_t n_conns;
	/* limits (pgmoat extension, see README) */
	size_t max_message_size;
	size_t max_startup_size;
	uint64_t auth_timeout_us;
	uint64_t pool_wait_timeout_us;
	uint64_t connect_timeout_us;
	int max_clients;
	int auth_failures_per_minute;
	int workers;             /* 0: one per core */
	int worker_fill;         /* a worker takes new clients up to this many before the next one does; 0: spread */
	int log_level;
} gw_config;

/*
 * Load and validate FILE. On success returns a config and sets *errors to
 * NULL. On failure returns NULL and *errors holds one "file:line: message"
 * per line (caller frees). check_only skips nothing; it exists so `pgmoat
 * check` and `serve` report the same errors.
 */
gw_config *gw_config_load(const char *file, char **errors);
void gw_config_free(gw_config *cfg);
const gw_conn_cfg *gw_config_conn(const gw_config *cfg, const char *name);
const char *gw_sslmode_str(enum gw_sslmode m);

#endif
