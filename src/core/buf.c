/*
 * gw_buf — growable byte buffer with a read position. See buf.h.
 */
#include "core/buf.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

void gw_buf_reserve(gw_buf *b, size_t n)
{
	if (gw_buf_room(b) >= n)
		return;
	if (b->head > 0) {
		/* Compact: move readable bytes to the front. */
		if (b->len)
			memmove(b->data, b->data + b->head, b->len);
		b->head = 0;
		if (gw_buf_room(b) >= n)
			return;
	}
	size_t want = b->len + n;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < want) {
		if (cap > SIZE_MAX / 2)
			gw_die("buffer size overflow");
		cap *= 2;
	}
	b->data = gw_xrealloc(b->data, cap);
	b->cap = cap;
}

void gw_buf_consume(gw_buf *b, size_t n)
{
	if (n >= b->len) {
		b->head = 0;
		b->len = 0;
		return;
	}
	b->head += n;
	b->len -= n;
}

void gw_buf_append(gw_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	gw_buf_reserve(b, n);
	memcpy(gw_buf_wr(b), p, n);
	b->len += n;
}

void gw_buf_release(gw_buf *b)
{
	if (b->len == 0 && b->data) {
		free(b->data);
		b->data = NULL;
		b->cap = b->head = 0;
	}
}

void gw_buf_free(gw_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->head = b->len = 0;
}

void gw_buf_reset(gw_buf *b)
{
	b->head = b->len = 0;
}

size_t gw_buf_msg_begin(gw_buf *b, char type)
{
	gw_buf_reserve(b, 5);
	size_t start = b->len;
	uint8_t *w = gw_buf_wr(b);
	w[0] = (uint8_t)type;
	memset(w + 1, 0, 4);
	b->len += 5;
	return start;
}

void gw_buf_msg_end(gw_buf *b, size_t start)
{
	gw_put_u32(b->data + b->head + start + 1, (uint32_t)(b->len - start - 1));
}

void gw_buf_put_u8(gw_buf *b, uint8_t v) { gw_buf_append(b, &v, 1); }

void gw_buf_put_i16(gw_buf *b, int16_t v)
{
	uint8_t p[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
	gw_buf_append(b, p, 2);
}

void gw_buf_put_i32(gw_buf *b, int32_t v)
{
	uint8_t p[4];
	gw_put_u32(p, (uint32_t)v);
	gw_buf_append(b, p, 4);
}

void gw_buf_put_str(gw_buf *b, const char *s) { gw_buf_append(b, s, strlen(s) + 1); }

size_t gw_sink_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	gw_sink *s = ud;
	size_t n = size * nmemb;
	if (gw_buf_len(&s->buf) + n > s->max) {
		s->too_big = true;
		return 0;
	}
	gw_buf_reserve(&s->buf, n + 1);
	gw_buf_append(&s->buf, ptr, n);
	gw_buf_wr(&s->buf)[0] = 0; /* after the bytes, not counted */
	return n;
}

void gw_sink_free(gw_sink *s, bool wipe)
{
	if (wipe && s->buf.data)
		explicit_bzero(s->buf.data, s->buf.cap);
	gw_buf_free(&s->buf);
}
