/* JSON text writer; see json.h. */
#include "core/json.h"

#include <stdio.h>
#include <string.h>

bool gw_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		/* ASCII runs, eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
			(cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

void gw_json_hex(gw_buf *b, const void *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	const uint8_t *s = p;
	gw_buf_reserve(b, 2 * n + 6);
	char *w = (char *)gw_buf_wr(b);
	size_t k = 0;
	w[k++] = '"';
	w[k++] = '\\';
	w[k++] = '\\';
	w[k++] = 'x';
	for (size_t i = 0; i < n; i++) {
		w[k++] = hx[s[i] >> 4];
		w[k++] = hx[s[i] & 15];
	}
	w[k++] = '"';
	gw_buf_commit(b, k);
}

void gw_json_text(gw_buf *b, const void *p, size_t n)
{
	const uint8_t *s = p;
	if (!gw_utf8_valid(s, n)) {
		gw_json_hex(b, p, n);
		return;
	}
	static const char hx[] = "0123456789abcdef";
	gw_buf_reserve(b, 6 * n + 2); /* worst case: every byte \u00XX */
	char *w = (char *)gw_buf_wr(b);
	size_t k = 0;
	w[k++] = '"';
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			w[k++] = (char)c;
			continue;
		}
		w[k++] = '\\';
		switch (c) {
		case '"': w[k++] = '"'; break;
		case '\\': w[k++] = '\\'; break;
		case '\n': w[k++] = 'n'; break;
		case '\r': w[k++] = 'r'; break;
		case '\t': w[k++] = 't'; break;
		default:
			w[k++] = 'u';
			w[k++] = '0';
			w[k++] = '0';
			w[k++] = hx[c >> 4];
			w[k++] = hx[c & 15];
		}
	}
	w[k++] = '"';
	gw_buf_commit(b, k);
}

void gw_json_key(gw_buf *b, const char *key, bool first)
{
	size_t n = strlen(key);
	gw_buf_reserve(b, n + 4);
	char *w = (char *)gw_buf_wr(b);
	size_t k = 0;
	if (!first)
		w[k++] = ',';
	w[k++] = '"';
	memcpy(w + k, key, n);
	k += n;
	w[k++] = '"';
	w[k++] = ':';
	gw_buf_commit(b, k);
}

void gw_json_int(gw_buf *b, int64_t v)
{
	char t[24];
	size_t k = sizeof(t);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		t[--k] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		t[--k] = '-';
	gw_buf_append(b, t + k, sizeof(t) - k);
}

void gw_json_raw(gw_buf *b, const char *s)
{
	gw_buf_append(b, s, strlen(s));
}

void gw_json_cstr(gw_buf *b, const char *s)
{
	if (s)
		gw_json_text(b, s, strlen(s));
	else
		gw_json_raw(b, "null");
}
