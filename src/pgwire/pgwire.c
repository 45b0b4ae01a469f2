/*
 * Pure codecs for the PostgreSQL v3 protocol; see pgwire.h.
 */
#include "pgwire/pgwire.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long gw_pg_frame(const uint8_t *p, size_t n, size_t max_len, uint8_t *type, uint32_t *len)
{
	if (n < 5)
		return 0;
	*type = p[0];
	*len = gw_get_u32(p + 1);
	if (*len < 4 || *len > max_len)
		return -1;
	if (n < (size_t)*len + 1)
		return 0;
	return (long)*len + 1;
}

static void free_params(gw_pg_startup *out)
{
	for (size_t i = 0; i < out->nparams; i++) {
		free(out->params[i].key);
		free(out->params[i].value);
	}
	free(out->params);
	out->params = NULL;
	out->nparams = 0;
}

int gw_pg_parse_startup(const uint8_t *p, size_t n, gw_pg_startup *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (n < 8 || gw_get_u32(p) != n) {
		*why = "invalid length of startup packet";
		return -1;
	}
	out->code = gw_get_u32(p + 4);
	if (out->code == PG_SSL_REQUEST || out->code == PG_GSSENC_REQUEST) {
		if (n != 8) {
			*why = "invalid length of encryption request";
			return -1;
		}
		return 0;
	}
	if (out->code == PG_CANCEL_REQUEST) {
		if (n != 16) {
			*why = "invalid length of cancel request";
			return -1;
		}
		out->cancel_pid = gw_get_u32(p + 8);
		out->cancel_key = gw_get_u32(p + 12);
		return 0;
	}
	if ((out->code >> 16) != 3) {
		*why = "unsupported frontend protocol: pgmoat speaks protocol 3.0";
		return -1;
	}
	size_t i = 8;
	for (;;) {
		if (i >= n) {
			*why = "startup packet has no terminator";
			goto bad;
		}
		if (p[i] == 0) {
			if (i + 1 != n) {
				*why = "invalid startup packet layout: bytes after the terminator";
				goto bad;
			}
			break;
		}
		const uint8_t *k = p + i;
		const uint8_t *kend = memchr(k, 0, n - i);
		if (!kend) {
			*why = "invalid startup packet layout: unterminated parameter name";
			goto bad;
		}
		i = (size_t)(kend - p) + 1;
		if (i >= n) {
			*why = "invalid startup packet layout: parameter without a value";
			goto bad;
		}
		const uint8_t *v = p + i;
		const uint8_t *vend = memchr(v, 0, n - i);
		if (!vend) {
			*why = "invalid startup packet layout: unterminated parameter value";
			goto bad;
		}
		i = (size_t)(vend - p) + 1;
		if (out->nparams >= 64) {
			*why = "too many startup parameters";
			goto bad;
		}
		out->params = gw_xrealloc(out->params, (out->nparams + 1) * sizeof(gw_pg_param));
		out->params[out->nparams].key = gw_xstrndup((const char *)k, (size_t)(kend - k));
		out->params[out->nparams].value = gw_xstrndup((const char *)v, (size_t)(vend - v));
		out->nparams++;
	}
	return 0;
bad:
	free_params(out);
	return -1;
}

void gw_pg_startup_free(gw_pg_startup *s) { free_params(s); }

const char *gw_pg_startup_get(const gw_pg_startup *s, const char *key)
{
	for (size_t i = 0; i < s->nparams; i++)
		if (!strcmp(s->params[i].key, key))
			return s->params[i].value;
	return NULL;
}

void gw_pg_error(gw_buf *b, const char *severity, const char *sqlstate, const char *msg,
	const char *detail, const char *hint)
{
	size_t m = gw_buf_msg_begin(b, 'E');
	gw_buf_put_u8(b, 'S');
	gw_buf_put_str(b, severity);
	gw_buf_put_u8(b, 'V');
	gw_buf_put_str(b, severity);
	gw_buf_put_u8(b, 'C');
	gw_buf_put_str(b, sqlstate);
	gw_buf_put_u8(b, 'M');
	gw_buf_put_str(b, msg);
	if (detail) {
		gw_buf_put_u8(b, 'D');
		gw_buf_put_str(b, detail);
	}
	if (hint) {
		gw_buf_put_u8(b, 'H');
		gw_buf_put_str(b, hint);
	}
	gw_buf_put_u8(b, 0);
	gw_buf_msg_end(b, m);
}

void gw_pg_notice(gw_buf *b, const char *msg)
{
	size_t m = gw_buf_msg_begin(b, 'N');
	gw_buf_put_u8(b, 'S');
	gw_buf_put_str(b, "NOTICE");
	gw_buf_put_u8(b, 'V');
	gw_buf_put_str(b, "NOTICE");
	gw_buf_put_u8(b, 'C');
	gw_buf_put_str(b, "00000");
	gw_buf_put_u8(b, 'M');
	gw_buf_put_str(b, msg);
	gw_buf_put_u8(b, 0);
	gw_buf_msg_end(b, m);
}

void gw_pg_auth(gw_buf *b, int32_t code, const void *data, size_t n)
{
	size_t m = gw_buf_msg_begin(b, 'R');
	gw_buf_put_i32(b, code);
	gw_buf_append(b, data, n);
	gw_buf_msg_end(b, m);
}

void gw_pg_param_status(gw_buf *b, const char *key, const char *value)
{
	size_t m = gw_buf_msg_begin(b, 'S');
	gw_buf_put_str(b, key);
	gw_buf_put_str(b, value);
	gw_buf_msg_end(b, m);
}

void gw_pg_backend_key(gw_buf *b, uint32_t pid, uint32_t key)
{
	size_t m = gw_buf_msg_begin(b, 'K');
	gw_buf_put_i32(b, (int32_t)pid);
	gw_buf_put_i32(b, (int32_t)key);
	gw_buf_msg_end(b, m);
}

void gw_pg_ready(gw_buf *b, char txstatus)
{
	size_t m = gw_buf_msg_begin(b, 'Z');
	gw_buf_put_u8(b, (uint8_t)txstatus);
	gw_buf_msg_end(b, m);
}

void gw_pg_query(gw_buf *b, const char *sql)
{
	size_t m = gw_buf_msg_begin(b, 'Q');
	gw_buf_put_str(b, sql);
	gw_buf_msg_end(b, m);
}

void gw_pg_terminate(gw_buf *b)
{
	size_t m = gw_buf_msg_begin(b, 'X');
	gw_buf_msg_end(b, m);
}

static void untyped_end(gw_buf *b, size_t start)
{
	gw_put_u32(gw_buf_rd(b) + start, (uint32_t)(gw_buf_len(b) - start));
}

void gw_pg_startup_msg(gw_buf *b, const char *const *kv)
{
	size_t start = gw_buf_len(b);
	gw_buf_put_i32(b, 0);
	gw_buf_put_i32(b, (int32_t)PG_PROTO_V3);
	for (size_t i = 0; kv[i] && kv[i + 1]; i += 2) {
		gw_buf_put_str(b, kv[i]);
		gw_buf_put_str(b, kv[i + 1]);
	}
	gw_buf_put_u8(b, 0);
	untyped_end(b, start);
}

void gw_pg_ssl_request(gw_buf *b)
{
	gw_buf_put_i32(b, 8);
	gw_buf_put_i32(b, (int32_t)PG_SSL_REQUEST);
}

void gw_pg_cancel_request(gw_buf *b, uint32_t pid, uint32_t key)
{
	gw_buf_put_i32(b, 16);
	gw_buf_put_i32(b, (int32_t)PG_CANCEL_REQUEST);
	gw_buf_put_i32(b, (int32_t)pid);
	gw_buf_put_i32(b, (int32_t)key);
}

int gw_pg_row_field(const uint8_t *body, size_t n, size_t *off, const uint8_t **v, size_t *len)
{
	if (*off > n || n - *off < 4)
		return -1;
	int32_t l = (int32_t)gw_get_u32(body + *off);
	*off += 4;
	if (l < 0) {
		*v = NULL;
		*len = 0;
		return 1;
	}
	if ((size_t)l > n - *off)
		return -1;
	*v = body + *off;
	*len = (size_t)l;
	*off += (size_t)l;
	return 1;
}

bool gw_pg_error_field(const uint8_t *body, size_t n, char field, char *out, size_t outlen)
{
	size_t i = 0;
	while (i < n && body[i]) {
		char f = (char)body[i++];
		const uint8_t *end = memchr(body + i, 0, n - i);
		if (!end)
			return false;
		size_t len = (size_t)(end - (body + i));
		if (f == field) {
			if (len >= outlen)
				len = outlen - 1;
			memcpy(out, body + i, len);
			out[len] = 0;
			return true;
		}
		i += (size_t)(end - (body + i)) + 1;
	}
	return false;
}

void gw_pg_literal(gw_buf *b, const char *v)
{
	gw_buf_append(b, "E'", 2);
	for (const char *p = v; *p; p++) {
		if (*p == '\'' || *p == '\\')
			gw_buf_append(b, p, 1);
		gw_buf_append(b, p, 1);
	}
	gw_buf_append(b, "'", 1);
}
