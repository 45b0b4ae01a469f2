/*
 * PostgreSQL v3 wire protocol: constants and pure codecs (no I/O).
 *
 * Owns: message framing, the startup packet, and the builders of every
 * message the gateway writes itself (errors, authentication, parameter
 * status, key data, ready-for-query). Readers take a byte range and never
 * read past it: every length is checked against the bytes present.
 */
#ifndef GW_PGWIRE_PGWIRE_H
#define GW_PGWIRE_PGWIRE_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_PROTO_V3 196608u
#define PG_SSL_REQUEST 80877103u
#define PG_GSSENC_REQUEST 80877104u
#define PG_CANCEL_REQUEST 80877102u

/* Authentication request codes ('R'). */
enum { PG_AUTH_OK = 0, PG_AUTH_CLEARTEXT = 3, PG_AUTH_MD5 = 5, PG_AUTH_SASL = 10,
	PG_AUTH_SASL_CONTINUE = 11, PG_AUTH_SASL_FINAL = 12 };

/*
 * Frame a typed message at p (n bytes present).
 * Returns the whole message length (1 + length field) when complete, 0 when
 * more bytes are needed, -1 when the length field is impossible (< 4 or >
 * max_len). *type and *len (the length field) are set whenever 5 bytes exist.
 */
long gw_pg_frame(const uint8_t *p, size_t n, size_t max_len, uint8_t *type, uint32_t *len);

/* Startup packet parameters (key/value pairs), owned copies. */
typedef struct gw_pg_param {
	char *key;
	char *value;
} gw_pg_param;

typedef struct gw_pg_startup {
	uint32_t code;            /* protocol version or a request code */
	uint32_t cancel_pid, cancel_key;
	gw_pg_param *params;
	size_t nparams;
} gw_pg_startup;

/*
 * Parse an untyped startup-phase packet (length included). Returns 0, or -1
 * with why set (malformed: missing terminators, odd pairs, bad lengths).
 */
int gw_pg_parse_startup(const uint8_t *p, size_t n, gw_pg_startup *out, const char **why);
void gw_pg_startup_free(gw_pg_startup *s);
const char *gw_pg_startup_get(const gw_pg_startup *s, const char *key);

/* Builders (append to b). */
void gw_pg_error(gw_buf *b, const char *severity, const char *sqlstate, const char *msg,
	const char *detail, const char *hint);
void gw_pg_notice(gw_buf *b, const char *msg);
void gw_pg_auth(gw_buf *b, int32_t code, const void *data, size_t n);
void gw_pg_param_status(gw_buf *b, const char *key, const char *value);
void gw_pg_backend_key(gw_buf *b, uint32_t pid, uint32_t key);
void gw_pg_ready(gw_buf *b, char txstatus);
void gw_pg_query(gw_buf *b, const char *sql);
/* Append v as a SQL string literal, E'' form (the same under either standard_conforming_strings). */
void gw_pg_literal(gw_buf *b, const char *v);
void gw_pg_terminate(gw_buf *b);
/* StartupMessage with the given parameters (NULL-terminated key, value list). */
void gw_pg_startup_msg(gw_buf *b, const char *const *kv);
void gw_pg_ssl_request(gw_buf *b);
void gw_pg_cancel_request(gw_buf *b, uint32_t pid, uint32_t key);

/*
 * Read one field of an ErrorResponse/NoticeResponse body (after the length)
 * into out; returns true when found. Fields: 'S' 'V' 'C' 'M' 'D' 'H' ...
 */
bool gw_pg_error_field(const uint8_t *body, size_t n, char field, char *out, size_t outlen);
/*
 * DataRow fields, one at a time: start with *off = 2 (after the count, which
 * the caller reads); each call gives the next value (*v NULL for SQL NULL).
 * Returns 1 for a field, -1 when the body is malformed (a length past its end).
 */
int gw_pg_row_field(const uint8_t *body, size_t n, size_t *off, const uint8_t **v, size_t *len);

#endif
