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
	char *relay;             /* reached through this relay (SPEC "Relay"): no host, no password here */
	char *target;            /* the relay's target name */
	int line;
} gw_conn_cfg;

/* A list of strings from the config (names, group:G / identity:N, tables). */
typedef struct gw_strlist {
	char **v;
	size_t n;
} gw_strlist;

/* Guardrails a policy can name (policies[].guardrails). */
enum {
	GW_GR_NO_DELETE_WITHOUT_WHERE = 1u << 0,
	GW_GR_NO_UPDATE_WITHOUT_WHERE = 1u << 1,
	GW_GR_NO_DROP = 1u << 2,
	GW_GR_NO_TRUNCATE = 1u << 3,
	GW_GR_NO_COPY_PROGRAM = 1u << 4,
	GW_GR_NO_ALTER_SYSTEM = 1u << 5,
};

typedef struct gw_window gw_window;   /* core/clock.h */

/* One entry of policies: (SPEC "Config"). */
typedef struct gw_policy_cfg {
	char *name;
	gw_strlist who;          /* group:G / identity:N */
	gw_strlist connections;  /* connection names */
	int scope;               /* 0 read, 1 write, 2 ddl, 3 admin (enum gw_sql_class) */
	bool has_tables;
	gw_strlist tables;       /* "schema.table" or "schema.*" */
	gw_window **windows;     /* any of them; none: always */
	size_t n_windows;
	bool jit;                /* access: jit (else standing) */
	uint64_t max_duration_us;/* jit: longest grant */
	bool has_approval;
	gw_strlist approvers;    /* group:G / identity:N; empty: admins */
	int required;            /* distinct approvals needed */
	unsigned review_mask;    /* 1 << class for each class listed in review: */
	unsigned guardrails;     /* GW_GR_* */
	long max_rows;           /* guardrail max_rows; 0: none */
	int line;
} gw_policy_cfg;

/* Masking actions (masking.rules[].action). */
enum gw_mask_action { GW_MASK_NONE = 0, GW_MASK_REDACT, GW_MASK_PARTIAL, GW_MASK_HASH, GW_MASK_NULL };

/* One entry of masking.rules: a column by name, or column names by regex. */
typedef struct gw_mask_rule_cfg {
	char *schema, *table, *column; /* column: "schema.table.column" (schema may be omitted: any schema) */
	char *column_name;       /* column_name: a regex the whole column name must match (case-insensitive) */
	int action;              /* enum gw_mask_action */
	int line;
} gw_mask_rule_cfg;

/* One trusted OIDC/JWT issuer (identity.oidc[], SPEC "Config"). */
typedef struct gw_oidc_issuer_cfg {
	char *issuer;            /* the exact iss of its tokens */
	char *audience;          /* aud must be it or an array holding it */
	char *jwks_url;          /* https:// URL of its keys, or NULL */
	char *jwks_file;         /* a JWKS file read at start and on SIGHUP, or NULL */
	/* neither: jwks_uri from <issuer>/.well-known/openid-configuration */
	char *identity_claim;    /* claim naming the identity (default sub) */
	char *groups_claim;      /* claim listing groups (string or array of strings), or NULL */
	char *kind;              /* agent | human: the kind of identities auto_create makes (default agent) */
	char *identity_prefix;   /* put before the claim's value ("" none): two issuers' names cannot collide */
	uint64_t leeway_us;      /* clock skew allowed on exp, nbf and iat (default 60s) */
	bool auto_create;        /* make an unknown identity on its first login (else it must exist) */
	char *ca;                /* CA file for the issuer's HTTPS, or NULL: the system's CAs */
	char *client_id;         /* public client for `pgmoat login` (device flow), or NULL */
	int line;
} gw_oidc_issuer_cfg;

enum gw_mtls_from { GW_MTLS_CN = 0, GW_MTLS_SPIFFE };

typedef struct gw_config {
	char *path;
	/* listen */
	char pg_host[256];
	int pg_port;
	char http_host[256];
	int http_port;           /* 0: no HTTP API */
	char relay_host[256];
	int relay_port;          /* 0: no relay listener */
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
	gw_oidc_issuer_cfg *oidc;    /* identity.oidc: trusted issuers */
	size_t n_oidc;
	bool session_follows_token_expiry; /* a session ends (57P01) when its JWT or client certificate expires */
	bool mtls_set;               /* identity.mtls given (it needs tls.client_ca) */
	int mtls_from;               /* identity.mtls.identity_from (enum gw_mtls_from); cn by default */
	char *mtls_trust_domain;     /* identity.mtls.trust_domain (spiffe) */
	gw_conn_cfg *conns;
	size_t n_conns;
	bool has_policies;       /* policies: present (even empty): whatever none allows is denied */
	gw_policy_cfg *policies;
	size_t n_policies;
	char *notify_webhook;    /* notify.webhook URL, or NULL */
	/* masking: (SPEC "Config"); has_masking when the section is present */
	bool has_masking;
	gw_mask_rule_cfg *mask_rules;
	size_t n_mask_rules;
	bool mask_detectors_set;
	gw_strlist mask_detectors;   /* entity names; not set: every built-in detector */
	gw_strlist mask_exempt;      /* group:G / identity:N who see clear values */
	char *mask_hash_key;         /* resolved secret for action hash (HMAC-SHA-256) */
	size_t mask_max_row;         /* a row larger than this in a masked result is withheld (default 64MB) */
	char *mask_presidio;         /* provider: {presidio: URL}: a Presidio analyzer's /analyze, or NULL (builtin) */
	uint64_t mask_presidio_timeout_us; /* per request (default 2s) */
	bool mask_presidio_fallback; /* on_error: builtin (the built-in detectors), else block (the result is refused) */
	double mask_presidio_score;  /* score_threshold sent with each request (default 0.5) */
	char *mask_presidio_ca;      /* ca: a CA file for an https:// analyzer */
	/* audit: (the record is always on; these shape it) */
	char *audit_jsonl;       /* audit.jsonl: a copy of every record as JSON Lines, or NULL */
	size_t audit_jsonl_max_size; /* rotate the file past this size (default 100MB) */
	int audit_jsonl_keep;    /* rotated files kept: FILE.1 .. FILE.N (default 5) */
	bool audit_normalized;   /* statement_text: normalized (constants replaced by $n) */
	char *audit_checkpoint_key; /* resolved secret for the signed checkpoint, or NULL */
	size_t audit_checkpoint_key_len;
	bool audit_fsync;        /* fsync every commit (survives power loss), else a process crash only */
	int audit_queue_max;     /* events waiting for the writer before statements are refused (58030) */
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

/* relay.yaml (SPEC "Relay"): what `pgmoat relay` runs with. */
typedef struct gw_relay_config {
	char *path;
	char gw_host[256];       /* gateway.address: the gateway's listen.relay */
	int gw_port;
	char *gw_ca;             /* gateway.ca: the CA file its certificate must chain to */
	char *gw_server_name;    /* gateway.server_name: the name it must carry (default: the host) */
	char *name;              /* the relay identity's name */
	char *token;             /* resolved secret: the relay identity's token */
	gw_conn_cfg *targets;    /* the only databases the gateway may reach through this relay */
	size_t n_targets;
	int tunnels;             /* idle tunnels kept open and ready (default 4) */
	int warm;                /* per target, logged-in backends kept ready (default 1) */
	uint64_t connect_timeout_us;
	int log_level;
} gw_relay_config;

/*
 * Load relay.yaml (file may be NULL: flags only, applied by the caller before
 * gw_relay_config_check). Errors as for gw_config_load.
 */
gw_relay_config *gw_relay_config_load(const char *file, char **errors);
/* Add a target from libpq-style "name=… host=… port=… dbname=… user=… password=env:…" words. */
int gw_relay_config_add_target(gw_relay_config *rc, const char *words, char *err, size_t errlen);
/* Final checks (a name, a token, a gateway, targets); NULL, or the errors (caller frees). */
char *gw_relay_config_check(const gw_relay_config *rc);
void gw_relay_config_free(gw_relay_config *rc);
const gw_conn_cfg *gw_relay_config_target(const gw_relay_config *rc, const char *name);

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
const gw_policy_cfg *gw_config_policy(const gw_config *cfg, const char *name);
bool gw_strlist_has(const gw_strlist *l, const char *s);
/* "no_drop", ... for one GW_GR_* bit. */
const char *gw_guardrail_name(unsigned bit);

#endif
