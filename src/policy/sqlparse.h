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
	GW_SQL_F_STATEFUL_CALL = 1u << 15,  /* calls a built-in that keeps what it is given for later statements
	                                       (advisory locks, setval, set_config, large objects, pg_notify, ...) */
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
	char **operators;        /* operator names used (the last name of OPERATOR(schema.op)): a user's may run its code */
	size_t noperators;
	char **casts;            /* type names cast to (x::name, CAST(x AS schema.name)): the last name */
	size_t ncasts;
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

/*
 * Output columns and masked columns (the masking layer's question).
 *
 * PostgreSQL's RowDescription names a table OID and attnum only for a plain
 * column reference; a computed column (expression, cast, function, aggregate,
 * whole-row reference, a column of a CTE / subquery / set operation / VALUES,
 * a RETURNING list) comes with table OID 0. gw_sql_mask_columns decides on the
 * raw parse tree which output columns depend on a masked column, resolving
 * names the way PostgreSQL's parse analysis does (FROM items, aliases, join
 * merged columns, LATERAL, outer query levels, CTEs incl. recursive ones).
 * Fail closed: when in doubt a column is MASKED or UNDECIDED, never CLEAR.
 */

/* Where a statement writes a value (gw_sql_mask_writes asks the catalog whether a masked one may go there). */
enum { GW_SQL_INTO_TABLE = 0, GW_SQL_INTO_NEW = 1, GW_SQL_INTO_FILE = 2 };

struct gw_sql_flow {
	uint8_t verdict;          /* GW_SQL_COL_MASKED or GW_SQL_COL_UNDECIDED */
	int into;                 /* GW_SQL_INTO_TABLE: a column of an existing relation (INSERT, UPDATE, MERGE, a rule's
	                             action); _NEW: of a table the statement creates (CREATE TABLE AS, SELECT INTO,
	                             CREATE MATERIALIZED VIEW); _FILE: a file or program on the server (COPY ... TO 'f') */
	const char *schema, *rel; /* the relation written (schema NULL: unqualified); with _FILE rel is the file name */
	const char *col;          /* its column; NULL: which column is not known */
	/* the value is exactly this column's value, as stored (a plain column reference; NULL: derived, or not known) */
	const char *src_schema, *src_rel, *src_col;
	const char *why;          /* with UNDECIDED: why */
};

/* The catalog as the masking layer knows it (callbacks; ud is theirs). */
typedef struct gw_sql_catalog {
	void *ud;
	/* Columns of relation rel as written in SQL ("name" or "schema.name", unquoted/case-folded as the parser gives it),
	   in attnum order (dropped columns left out); NULL when unknown. Tables, views, matviews, foreign tables.
	   The array and its names must stay valid until gw_sql_mask_columns returns. */
	const char *const *(*columns)(void *ud, const char *schema /* NULL if unqualified */, const char *rel, size_t *n);
	/* rel.col is masked (a rule covers it, or for a view column: it derives from a masked column). */
	bool (*masked)(void *ud, const char *schema, const char *rel, const char *col);
	/* gw_sql_mask_writes only (NULL: every masked flow refused, every rename of a relation refused): */
	/* may a masked or undecided value go where f says (see struct gw_sql_flow)? */
	bool (*write_ok)(void *ud, const struct gw_sql_flow *f);
	/* relation rel has a masked column: 1, 0, or -1 when the relation is not known */
	int (*rel_masked)(void *ud, const char *schema, const char *rel);
	/* some relation of schema has a masked column */
	bool (*schema_masked)(void *ud, const char *schema);
	/* code defined in the database runs here: a function (kind 0, its name), an operator (1, its name) or a cast to a
	   type (2, its name) whose function is a user's — what it returns may come from anywhere (NULL: none known) */
	bool (*user_code)(void *ud, int kind, const char *name);
} gw_sql_catalog;

enum { GW_SQL_CODE_FUNCTION = 0, GW_SQL_CODE_OPERATOR = 1, GW_SQL_CODE_CAST = 2 };

enum { GW_SQL_COL_CLEAR = 0, GW_SQL_COL_MASKED = 1, GW_SQL_COL_UNDECIDED = 2 };

/*
 * For statement text[0..len) (ONE statement; the caller passes each statement of a multi-statement Query separately),
 * the verdict of each output column, in output order, into out[0..max): CLEAR, MASKED (depends on a masked column or on
 * a whole row of a relation that has one), UNDECIDED (dependence cannot be decided — the caller masks it and says so).
 * Returns the number of output columns (may exceed max: caller treats the rest as UNDECIDED), 0 for a statement with no
 * result columns, or -1 when the output cannot be mapped at all (the caller masks every column whose table OID is 0);
 * why (may be NULL) gets a one-line reason for -1 / the first UNDECIDED column ("" otherwise).
 *
 * Statements: SELECT / VALUES / TABLE / set operations, INSERT / UPDATE / DELETE ... RETURNING (0 without RETURNING;
 * RETURNING * covers the target and, as in PostgreSQL, the UPDATE FROM / DELETE USING items), EXPLAIN and SHOW (CLEAR
 * columns), statements that return no rows (0: DDL, SET, DECLARE, PREPARE, SELECT INTO, CREATE TABLE AS, MERGE, COPY
 * FROM, ...). -1: COPY ... TO (its rows are CopyData: see _inner), FETCH, EXECUTE, CALL, anything not known.
 * Verdicts follow the output expression's column references (CASE conditions included; a sub-query contributes its
 * output columns, not its WHERE). A user function's body is not seen: f(x) is as masked as x.
 */
int gw_sql_mask_columns(const char *text, size_t len, const gw_sql_catalog *cat, uint8_t *out, size_t max, char *why,
	size_t whylen);
/*
 * The same for the rows a statement's inner query produces: DECLARE c CURSOR FOR q (what FETCH returns), PREPARE p AS q
 * (what EXECUTE returns), COPY (q) TO / COPY table [(cols)] TO (the CopyData rows: the listed columns, or all, of the
 * table), CREATE VIEW v AS q, CREATE TABLE / MATERIALIZED VIEW AS q and SELECT INTO (the new table's columns). COPY
 * ... FROM: 0. Any other statement: as gw_sql_mask_columns. (A view's definition from pg_get_viewdef is a plain SELECT:
 * pass it to gw_sql_mask_columns.)
 */
int gw_sql_mask_columns_inner(const char *text, size_t len, const gw_sql_catalog *cat, uint8_t *out, size_t max,
	char *why, size_t whylen);

/*
 * Writes under masking: does statement text[0..len) (ONE statement) put a masked value, or a name a rule matches,
 * out of the rules' reach? The same lineage as gw_sql_mask_columns decides what each written value derives from;
 * each masked or undecided value written somewhere is put to cat->write_ok. Statements: INSERT (VALUES, SELECT, ON
 * CONFLICT DO UPDATE), UPDATE (SET, FROM), MERGE, data-modifying CTEs of any statement, SELECT INTO, CREATE TABLE AS /
 * MATERIALIZED VIEW, COPY ... TO a file or program, EXPLAIN ANALYZE and PREPARE of those, CREATE RULE (its actions,
 * NEW and OLD being the rule's relation), CREATE TRIGGER on a relation with masked columns (its function sees whole
 * rows); renames: ALTER TABLE / VIEW / MATERIALIZED VIEW / FOREIGN TABLE ... RENAME [COLUMN], SET SCHEMA, ALTER
 * SCHEMA ... RENAME, DETACH PARTITION and NO INHERIT (a rule names a column by its names; a partition takes its
 * parent's rules) of relations with masked columns. A plain view stores no values (its columns are masked through
 * its definition when read): CREATE VIEW is not a write here.
 * Returns 0 (nothing leaves), 1 (why: what would go where), or -1 when it cannot be decided (why): a DO block, CREATE
 * TABLE AS EXECUTE, a statement too large or not understood. A statement that does not parse: 0 (the server does
 * not run it either).
 */
int gw_sql_mask_writes(const char *text, size_t len, const gw_sql_catalog *cat, char *why, size_t whylen);

/*
 * COPY ... TO STDOUT: how its CopyData rows are written (PostgreSQL 15's
 * ProcessCopyOptions and defaults), for the masking layer that rewrites them.
 */
enum { GW_SQL_COPY_TEXT = 0, GW_SQL_COPY_CSV = 1, GW_SQL_COPY_BINARY = 2 };

struct gw_sql_copy {
	int format;              /* GW_SQL_COPY_* */
	char delim;              /* tab (text) or ',' (csv) unless DELIMITER */
	char quote, escape;      /* csv: '"' and the quote unless QUOTE / ESCAPE */
	bool header;             /* text and csv (PostgreSQL 15): the first line names the columns */
	char *null_str;          /* "\N" (text) or "" (csv) unless NULL; malloc'd */
	size_t null_len;
	char *encoding;          /* ENCODING 'x' (one whose multibyte characters hold no ASCII bytes), or NULL */
	bool query;              /* COPY (query) TO */
	char *schema, *rel;      /* COPY table TO: as the parser gives them (schema NULL when unqualified) */
	char **cols;             /* COPY table (cols) TO: the column list; NULL/0: every column */
	size_t ncols;
};

/*
 * The output options of text[0..len), ONE statement that must be COPY ... TO
 * STDOUT. 0 with out filled (free it with gw_sql_copy_free), or -1 with why
 * (may be NULL) saying why: not such a statement, an option PostgreSQL would
 * refuse (it sends no rows then), or an ENCODING whose characters may hold
 * ASCII bytes (SJIS, BIG5, GBK, ...: its rows cannot be split safely).
 */
int gw_sql_copy_options(const char *text, size_t len, struct gw_sql_copy *out, char *why, size_t whylen);
void gw_sql_copy_free(struct gw_sql_copy *c);

#endif
