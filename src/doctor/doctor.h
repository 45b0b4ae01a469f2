/*
 * Doctor: is the floor under the gateway low enough, and is there a route
 * around it? (`pgmoat doctor`, SPEC "Processes and commands", issue 7.)
 *
 * Owns, in two halves that meet only in JSON:
 *
 *  - check.c, the database-side core. Given an open libpq connection and a
 *    JSON object of "needs" (what the connection's policies can ever grant,
 *    the masking columns, the upstream address), it reads the catalog in one
 *    READ ONLY transaction, every name schema-qualified in pg_catalog and
 *    search_path pinned to pg_catalog, and returns a JSON array of findings.
 *    It never reads the gateway's config: a relay runs this same function
 *    next to the database with its own credentials and sends the array back.
 *  - rules.c, the pure logic both halves share: scopes, pg_hba.conf address
 *    ranges, listen_addresses, upstream transport, identifier quoting.
 *  - doctor.c, the gateway side: `pgmoat doctor -c FILE [--json]` reads the
 *    config, derives the needs of each connection, connects with libpq as the
 *    gateway would, runs the core and prints the report.
 *
 * needs (every key optional; what is absent is taken at its widest):
 *   {"connection": "prod-billing",
 *    "role": "agent_ro",              // role to check; default session_user
 *    "max_scope": "read",             // none|read|write|ddl|admin: highest any policy grants (default admin)
 *    "ddl": false,                    // a policy of scope ddl or admin exists (default: max_scope >= ddl)
 *    "all_tables_scope": "none",      // granted on every table by policies without tables: (default max_scope
 *                                     //   when "tables" is absent, else none)
 *    "tables": [{"schema": "public", "table": "invoices", "scope": "read"},
 *               {"schema": "app", "table": "*", "scope": "write"}],
 *    "masking": [{"schema": "public", "table": "customers", "column": "email"},
 *                {"schema": null, "table": "orders", "column": "card"}],   // null schema: any schema
 *    "upstream": {"host": "10.0.0.5", "port": 5432, "sslmode": "require"}}
 *
 * finding:
 *   {"id": "role_superuser", "severity": "high|medium|low|info", "role": "agent_ro",
 *    "what": "...", "why": "...", "fix_sql": "ALTER ROLE ... NOSUPERUSER;" or null,
 *    "fix": "..."}                    // "fix" only when the fix is not SQL (fix_sql null)
 */
#ifndef GW_DOCTOR_DOCTOR_H
#define GW_DOCTOR_DOCTOR_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_config gw_config;
typedef struct gw_conn_cfg gw_conn_cfg;

/* ---- check.c: the database-side core ---- */

/*
 * Run every database-side check over conn (idle, not in a transaction) for
 * needs. Returns a new JSON array of findings (caller decrefs), or NULL with
 * a message in err when needs is malformed or a catalog query failed. The
 * connection is left idle (the transaction is rolled back either way).
 */
json_t *gw_doctor_check(PGconn *conn, const json_t *needs, char *err, size_t errlen);

/* ---- rules.c: pure logic ---- */

/* Scopes: -1 none, 0 read, 1 write, 2 ddl, 3 admin. */
enum { GW_DOC_NONE = -1, GW_DOC_READ = 0, GW_DOC_WRITE = 1, GW_DOC_DDL = 2, GW_DOC_ADMIN = 3 };
const char *gw_doctor_scope_name(int scope);
/* "none".."admin" into -1..3; false when unknown. */
bool gw_doctor_scope_parse(const char *s, int *scope);
/* The highest scope needs grants on schema.table (tables entries and all_tables_scope). */
int gw_doctor_table_ceiling(const json_t *needs, const char *schema, const char *table);
/* The scope a table privilege (SELECT, INSERT, ... as aclexplode names them) belongs to; seq: a sequence. */
int gw_doctor_privilege_scope(const char *privilege, bool seq);

/* An address range of a pg_hba.conf rule (or one address: prefix = full length). */
typedef struct gw_doc_range {
	int family;              /* 4, 6, or 0 for a keyword/hostname (see kind) */
	uint8_t addr[16];
	int prefix;              /* bits */
	int kind;                /* GW_DOC_ADDR_* */
} gw_doc_range;

enum {
	GW_DOC_ADDR_LOOPBACK = 1,  /* only this host's loopback addresses */
	GW_DOC_ADDR_SAMEHOST,      /* samehost: this host's own addresses */
	GW_DOC_ADDR_NETWORK,       /* anything reachable from elsewhere: all, samenet, host names, other ranges */
};

/*
 * Parse pg_hba_file_rules' address and netmask columns (address may be
 * "all", "samehost", "samenet", a host name, or an IP; netmask NULL when the
 * address had a /prefix or is a keyword). Returns false when unparseable
 * (then r->kind is GW_DOC_ADDR_NETWORK: the conservative answer).
 */
bool gw_doctor_range_parse(const char *address, const char *netmask, gw_doc_range *r);
/* Does range a cover every address of range b? (keywords: "all" covers all; others only themselves) */
bool gw_doctor_range_covers(const gw_doc_range *a, const gw_doc_range *b);
/* Is r exactly the one address ip (text)? */
bool gw_doctor_range_is_host(const gw_doc_range *r, const char *ip);
/* "198.51.100.0/24" (or "::1/128") into out; false for keywords and host names (family 0). */
bool gw_doctor_range_str(const gw_doc_range *r, char *out, size_t outlen);
/* Is ip text (or "localhost") a loopback address? */
bool gw_doctor_ip_is_loopback(const char *ip);

/* listen_addresses: 0 none (''), 1 loopback only, 2 some address reachable from elsewhere. */
int gw_doctor_listen_class(const char *setting);

/*
 * The finding for an upstream reached at host with sslmode, or NULL when
 * there is none (a Unix socket, loopback, or verify-full). role names the
 * role in the finding. Caller decrefs.
 */
json_t *gw_doctor_transport_finding(const char *host, const char *sslmode, const char *role);

/* "severity" ranks: high 3, medium 2, low 1, info 0; -1 unknown. */
int gw_doctor_severity_rank(const char *severity);

/* ---- doctor.c: the gateway side ---- */

/* The needs (see above) of one registered connection, from the config. Caller decrefs. */
json_t *gw_doctor_needs(const gw_config *cfg, const gw_conn_cfg *cc);

/* A read-only libpq connection as cc describes it (host, port, database, user, password, sslmode). */
PGconn *gw_doctor_connect(const gw_conn_cfg *cc);
/* The core over pc (or the reason it cannot run: what names where pc was to connect). */
json_t *gw_doctor_run(PGconn *pc, const json_t *needs, const char *what, char *err, size_t errlen);
/*
 * Print a report over entries [{"name", "header", "error"? | "findings"}] (or
 * JSON with --json; "header" is dropped there). Sorts each entry's findings.
 * Returns the exit code: 0 no high finding, 1 a high one, 2 an entry with an error.
 */
int gw_doctor_report(json_t *entries, bool as_json);

/* -c FILE [--json] [--help]: -1 to go on, else the exit code (usage printed). */
int gw_doctor_args(int argc, char **argv, const char *prog, const char *usage, const char **path, bool *json);
/* `pgmoat doctor -c FILE [--json]`: argv[0] is "doctor". Exit 0 clean, 1 a high finding, 2 usage/config/connect. */
int gw_doctor_main(int argc, char **argv);

#endif
