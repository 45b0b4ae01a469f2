/*
 * gw_json — writing JSON text into a gw_buf, fast and allocation-free.
 *
 * Owns: string escaping (RFC 8259) and UTF-8 validation for the record and
 * the API. Text that is not valid UTF-8 cannot be a JSON string as it is:
 * gw_json_text writes it as "\\x" followed by its bytes in hex (the form
 * PostgreSQL uses for bytea), so nothing is dropped or replaced.
 * Reading JSON is jansson's job, not this file's.
 */
#ifndef GW_CORE_JSON_H
#define GW_CORE_JSON_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool gw_utf8_valid(const uint8_t *p, size_t n);
/* A JSON string of p[0..n): escaped when valid UTF-8, else "\\x<hex>". */
void gw_json_text(gw_buf *b, const void *p, size_t n);
/* A JSON string of p[0..n) as "\\x<hex>" (binary values). */
void gw_json_hex(gw_buf *b, const void *p, size_t n);
/* ,"key": — keys are the caller's literals (never escaped). first: no comma. */
void gw_json_key(gw_buf *b, const char *key, bool first);
void gw_json_int(gw_buf *b, int64_t v);
void gw_json_raw(gw_buf *b, const char *s);
/* A NUL-terminated string, or null when s is NULL. */
void gw_json_cstr(gw_buf *b, const char *s);

#endif
