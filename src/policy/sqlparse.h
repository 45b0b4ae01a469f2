/*
 * SQL classification on PostgreSQL's own parse tree (libpg_query).
 *
 * Owns: the only use of pg_query.h and of the server's node headers. A
 * statement text is parsed with the raw parser (~1 us for a short SELECT,
 * measured) and its tree walked into our own gw_sql_stmt: the statement
 * class (read < write < ddl < admin, SPEC "Statement classes"), guardrail
 * flags, and the relations and functions it names. Never a regex over text.
 *
 * Fail closed: a node the walker does not know makes the statement admin
 * with GW_SQL_F_UNKNOWN set, so nothing unrecognised passes as a read.
 * Functions outside the built-in deny list are returned by name: whether a
 * user function is STABLE/IMMUTABLE is a catalog question for the caller.
 */
#ifndef GW_POLICY_SQLPARSE_H
#define GW_POLICY_SQLPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_sql_class { GW_SQL_READ = 0, GW_SQL_WRITE = 1, GW_SQL_DDL = 2, GW_SQL_ADMIN = 3 };

enum {
	GW_SQL_F_DELETE_NO_WHERE = 1u << 0,
	GW_SQL_F_UPDATE_NO_WHERE = 1u << 1,
	GW_SQL_F_DROP = 1u << 2,
	GW_SQL_F_TRUNCATE = 1u << 3,
	GW_SQL_F_COPY_PROGRAM = 1u << 4,
	GW_SQL_F_ALTER_SYSTEM = 1u << 5,
	GW_SQL_F_SEARCH_PATH = 1u << 6,     /* changes search_path */
	GW_SQL_F_SESSION_RESET = 1u << 7,   /* DISCARD ALL / RESET ALL: re-apply session settings after */
	GW_SQL_F_READ_WRITE = 1u << 8,      /* tries to lift read-only (SET ... read_only off, READ WRITE) */
	GW_SQL_F_UNKNOWN = 1u << 9,         /* a construct the walker does not know: treated as admin */
	GW_SQL_F_EXECUTE = 1u << 10,        /* EXECUTE of a prepared statement: class is the prepared one's */
	GW_SQL_F_OPAQUE = 1u << 11,         /* acts on objects not listed in relations (a table allow-list refuses it) */
	GW_SQL_F_PARSER_STATE = 1u << 12,   /* changes how the server splits text (standard_conforming_strings off,
	                                       an unsafe client_encoding): the gateway's parse would no longer match */
	GW_SQL_F_COPY_IN = 1u << 13,        /* COPY ... FROM STDIN: the server reads CopyData next */
	GW_SQL_F_DEALLOCATE_ALL = 1u << 14, /* DEALLOCATE ALL (DISCARD ALL: GW_SQL_F_SESSION_RESET) */
};

typedef struct gw_sql_stmt {
	enum gw_sql_class cls;
	uint32_t flags;
	char tag[32];            /* SELECT, INSERT, CREATE TABLE, ... */
	char *execute_name;      /* with GW_SQL_F_EXECUTE */
	char *prepare_name;      /* PREPARE name AS ...: the class is the inner statement's */
	char *deallocate_name;   /* DEALLOCATE name */
	char **relations;        /* "schema.name" or "name", as written (CTE names excluded) */
	size_t nrelations;
	char **functions;        /* called functions not on the built-in lists, as written */
	size_t nfunctions;
	char **fields;           /* field selections (x).name / t.name: a function call when no column matches */
	size_t nfields;
	size_t loc, len;         /* where the statement's text lies in the parsed string (from the last ';') */
} gw_sql_stmt;

typedef struct gw_sql {
	gw_sql_stmt *stmts;
	size_t nstmts;
	char error[256];         /* parse error, when gw_sql_parse returned -1 */
} gw_sql;

/* Parse and classify every statement of sql. 0, or -1 with out->error set. */
int gw_sql_parse(const char *sql, gw_sql *out);
void gw_sql_free(gw_sql *s);
const char *gw_sql_class_str(enum gw_sql_class c);
/* A client_encoding whose multibyte characters hold no ASCII bytes (UTF8, LATIN*, EUC_*, ...). */
bool gw_sql_encoding_safe(const char *enc);
/*
 * text[0..len) with its constants replaced by $n (libpg_query's normalizer):
 * a malloc'd NUL-terminated string, or NULL when the text does not parse.
 */
char *gw_sql_normalize(const char *text, size_t len);
/*
 * A fingerprint of text[0..len): the same for statements that differ only in
 * constants, whitespace, comments or the case of keywords and unquoted names
 * — 16 hex digits (64 bits) of a hash over the text with every literal
 * (numbers, strings of every kind, dollar-quoted bodies) replaced by '?'.
 * A lexical pass, ~20 times cheaper than normalizing on the parse tree;
 * the text is one the parser accepted, so its tokens are well-formed.
 */
void gw_sql_fingerprint(const char *text, size_t len, char out[17]);
/* The highest class of all statements (a multi-statement message is judged whole). */
enum gw_sql_class gw_sql_max_class(const gw_sql *s);

#endif
