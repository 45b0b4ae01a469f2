/*
 * Masking: sensitive values are redacted in the result stream, before the
 * client sees them (SPEC "Config", masking:).
 *
 * Owns: the compiled rules (a column by name, column names by regex), the
 * built-in detectors (detect.h), each connection's catalog snapshot (which
 * relation OID and column number is masked, views included, resolved through
 * the statement lineage of policy/sqlparse.h), a result's plan (one treatment
 * per output column, from RowDescription and the statement's parse tree), and
 * rewriting: DataRow values (text and binary formats, always a valid value of
 * the declared type, or NULL), COPY ... TO STDOUT's CopyData rows (text, CSV
 * and binary), ErrorResponse/NoticeResponse fields and NotificationResponse
 * payloads.
 *
 * Fail closed: a column whose origin cannot be decided is masked whole, and
 * the plan says so (a NOTICE for the client). The session (session/) calls
 * in at RowDescription, DataRow, CopyOutResponse, CopyData, ErrorResponse,
 * NoticeResponse and NotificationResponse; nothing here does I/O.
 */
#ifndef GW_MASK_MASK_H
#define GW_MASK_MASK_H

#include "core/buf.h"
#include "core/config.h"
#include "identity/identity.h"
#include "mask/dlp.h"
#include "policy/sqlparse.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_masker gw_masker;
typedef struct gw_mask_cat gw_mask_cat;
typedef struct gw_mask_plan gw_mask_plan;

/* Compile cfg's masking: section; NULL without error when there is none. */
gw_masker *gw_masker_new(const gw_config *cfg, char *err, size_t errlen);
void gw_masker_free(gw_masker *mk);
/* The identity is in masking.exempt: it sees clear values. */
bool gw_masker_exempt(const gw_masker *mk, const gw_identity *id);

/*
 * The catalog snapshot of one connection (its database). The session runs
 * gw_mask_catalog_sql() as the gateway's own query and feeds each DataRow's
 * text columns to gw_mask_cat_row(); gw_mask_cat_install() makes it current.
 */
const char *gw_mask_catalog_sql(void);
gw_mask_cat *gw_mask_cat_begin(gw_masker *mk);
void gw_mask_cat_row(gw_mask_cat *cat, const uint8_t *body, size_t n);
void gw_mask_cat_abandon(gw_mask_cat *cat);
void gw_mask_cat_install(gw_masker *mk, const char *conn, gw_mask_cat *cat);
/* The current snapshot of conn (a reference), or NULL when there is none yet. */
gw_mask_cat *gw_masker_cat(gw_masker *mk, const char *conn);
void gw_mask_cat_unref(gw_mask_cat *cat);
/* Relation name ("schema.name" or "name": any schema) has a masked column (a view: one derived from one). */
bool gw_mask_cat_rel_masked(gw_mask_cat *cat, const char *name);
/*
 * Statement st reads masked columns, or may (a relation with a masked column,
 * a user-defined function, DO/CALL/EXECUTE whose reads are not in the text).
 */
bool gw_mask_cat_stmt_tainted(gw_mask_cat *cat, const gw_sql_stmt *st);
/*
 * Writes under masking (for an identity that is not exempt): 1 when statement stmt[0..len) (classified as st) would
 * put a masked value where no rule masks it as strongly — another table's column, a new table, a file — or rename
 * what rules name, or when that cannot be decided and the snapshot has masked columns (cat NULL: none loaded, every
 * read column undecided). why gets a one-line reason. 0: it may run. See gw_sql_mask_writes.
 */
int gw_mask_check_write(gw_mask_cat *cat, const char *stmt, size_t len, const gw_sql_stmt *st, char *why,
	size_t whylen);
/* True when conn has no snapshot or it is older than its refresh time or marked stale. */
bool gw_masker_cat_wanted(gw_masker *mk, const char *conn);
/* DDL ran, or a result named a relation the snapshot does not know: load it again before the next statement. */
void gw_masker_cat_stale(gw_masker *mk, const char *conn);

/*
 * The plan of one result, from its RowDescription body: NULL when no column
 * needs work. stmt[0..len) is the statement that produced it and st its
 * classification (NULL when not known: then every column without a table OID
 * is masked whole). notice gets
 * a one-line note for the client when a column was masked whole because its
 * origin could not be decided (empty otherwise).
 */
gw_mask_plan *gw_mask_plan_new(gw_masker *mk, gw_mask_cat *cat, const uint8_t *rowdesc, size_t n,
	const char *stmt, size_t len, const gw_sql_stmt *st, char *notice, size_t noticelen);
/* The same columns with other result formats (a Bind's): formats as in Bind (0, 1 or n codes); ncodes < 0: a copy. */
gw_mask_plan *gw_mask_plan_formats(const gw_mask_plan *p, const uint8_t *codes, int ncodes);
void gw_mask_plan_free(gw_mask_plan *p);
/* A plan that masks every value whole (rows whose description is unknown). */
gw_mask_plan *gw_mask_plan_all(void);
/* The same, shared and immutable (never freed). */
const gw_mask_plan *gw_mask_plan_withhold(void);

/*
 * Rewrite one DataRow (body without type and length) into out as a whole
 * message. *masked counts the values changed. -1 when the row is malformed
 * (the caller ends the session: the server sent garbage).
 */
int gw_mask_row(gw_masker *mk, const gw_mask_plan *p, const uint8_t *body, size_t n, gw_buf *out, uint64_t *masked);

/*
 * The external DLP provider (dlp.h): a plan whose scanned text columns go to
 * it; the values of one row it must read (in column order, NULLs left out),
 * given to add(); the row written with its answer, found[*fi...] taken in the
 * same order (found NULL: the built-in detectors, as gw_mask_row). -1: the
 * row is malformed.
 */
bool gw_mask_plan_external(const gw_mask_plan *p);
/* The plan scans some column's content (with a detector or the provider). */
bool gw_mask_plan_scans(const gw_mask_plan *p);
int gw_mask_row_values(const gw_mask_plan *p, const uint8_t *body, size_t n,
	void (*add)(void *ud, const uint8_t *v, size_t len), void *ud);
int gw_mask_row_found(gw_masker *mk, const gw_mask_plan *p, const uint8_t *body, size_t n,
	const struct gw_dlp_found *found, size_t *fi, gw_buf *out, uint64_t *masked);

/*
 * ErrorResponse / NoticeResponse (type 'E' / 'N'): every text field scanned
 * by the detectors; when stmt (what the client sent) touched masked columns
 * (tainted), quoted values in message and detail that the client did not send
 * itself are withheld too (a failed cast or a key violation echoing a value).
 * Writes the whole message to out.
 */
void gw_mask_error(gw_masker *mk, uint8_t type, const uint8_t *body, size_t n, const char *stmt, size_t len,
	bool tainted, gw_buf *out, uint64_t *masked);
/*
 * NotificationResponse: the payload scanned; withheld whole when it comes from
 * another backend than own_pid (a trigger's payload can carry whole rows), or
 * when tainted (this session's transaction read masked columns). Writes the
 * whole message to out.
 */
void gw_mask_notification(gw_masker *mk, const uint8_t *body, size_t n, bool tainted, uint32_t own_pid, gw_buf *out,
	uint64_t *masked);
/* The plan masks a column derived from a masked one (its statement is "tainted" for error text). */
bool gw_mask_plan_tainted(const gw_mask_plan *p);

/*
 * COPY ... TO STDOUT: its rows come as CopyData in text, CSV or binary
 * format (opt: gw_sql_copy_options of the statement), not as DataRows.
 *
 * gw_mask_copy_plan: the plan of its ncols columns (CopyOutResponse's count).
 * COPY table [(cols)]: each column's rule action and type from the snapshot
 * (a name several schemas hold: the strongest action of them per column).
 * COPY (query): the query's lineage; COPY does not say the types, so a masked
 * column is NULL and a scanned value with a find is NULL too. Whatever cannot
 * be decided (no snapshot, a user-defined function, the counts differ, an
 * unknown relation) is NULL, with a one-line note in notice. NULL when no
 * column needs work (the rows may pass as they are).
 */
gw_mask_plan *gw_mask_copy_plan(gw_masker *mk, gw_mask_cat *cat, const char *stmt, size_t len, const gw_sql_stmt *st,
	const struct gw_sql_copy *opt, int ncols, char *notice, size_t noticelen);

/*
 * The rewriter of one COPY's CopyData stream (state kept across messages: a
 * row may span several, the binary header comes first and the trailer last).
 * gw_mask_copy_data writes the rows that end in data[0..n) to out as one
 * CopyData message (none when no row ended); rows are at most
 * masking.max_row. Returns 0, -1 when the data is malformed, -2 when a row
 * is longer than masking.max_row (the caller ends the session; out is left
 * as it was). gw_mask_copy_end: 0 when the stream ended where a row ends
 * (binary: after its trailer), -1 otherwise.
 */
typedef struct gw_mask_copy_state gw_mask_copy_state;
gw_mask_copy_state *gw_mask_copy_begin(const gw_masker *mk, const struct gw_sql_copy *opt);
int gw_mask_copy_data(gw_masker *mk, const gw_mask_plan *p, gw_mask_copy_state *st, const uint8_t *data, size_t n,
	gw_buf *out, uint64_t *masked);
int gw_mask_copy_end(const gw_mask_copy_state *st);
void gw_mask_copy_free(gw_mask_copy_state *st);

#endif
