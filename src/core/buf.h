/*
 * gw_buf — the one byte buffer.
 *
 * Owns: a growable byte array with a read position.
 *
 *     data                data+head          data+head+len      data+cap
 *     |---- consumed -----|---- readable ----|---- writable -----|
 *
 * Readers look at gw_buf_rd(b) for gw_buf_len(b) bytes and call
 * gw_buf_consume(); writers ask gw_buf_reserve() for room, write at
 * gw_buf_wr(b) and call gw_buf_commit(). An empty buffer may give its memory
 * back with gw_buf_release() (idle sessions keep no buffers).
 *
 * Message builders write PostgreSQL protocol messages: gw_buf_msg_begin()
 * writes the type byte and a length placeholder, gw_buf_msg_end() fills the
 * length in. Allocation failure aborts (the gateway cannot serve without
 * memory, and a half-built message is worse than a restart).
 */
#ifndef GW_CORE_BUF_H
#define GW_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_buf {
	uint8_t *data;
	size_t cap;
	size_t head;
	size_t len;
} gw_buf;

static inline uint8_t *gw_buf_rd(const gw_buf *b) { return b->data + b->head; }
static inline size_t gw_buf_len(const gw_buf *b) { return b->len; }
static inline uint8_t *gw_buf_wr(const gw_buf *b) { return b->data + b->head + b->len; }
static inline size_t gw_buf_room(const gw_buf *b) { return b->cap - b->head - b->len; }

/* Make at least n writable bytes available (compacting, then growing). */
void gw_buf_reserve(gw_buf *b, size_t n);
static inline void gw_buf_commit(gw_buf *b, size_t n) { b->len += n; }
void gw_buf_consume(gw_buf *b, size_t n);
void gw_buf_append(gw_buf *b, const void *p, size_t n);
/* Free the memory when the buffer holds nothing. */
void gw_buf_release(gw_buf *b);
void gw_buf_free(gw_buf *b);
void gw_buf_reset(gw_buf *b);

/* Protocol message builders (big-endian, as the wire wants). */
size_t gw_buf_msg_begin(gw_buf *b, char type);
void gw_buf_msg_end(gw_buf *b, size_t start);
void gw_buf_put_u8(gw_buf *b, uint8_t v);
void gw_buf_put_i16(gw_buf *b, int16_t v);
void gw_buf_put_i32(gw_buf *b, int32_t v);
void gw_buf_put_str(gw_buf *b, const char *s); /* with its NUL */

/*
 * A response body collected by libcurl (CURLOPT_WRITEFUNCTION gw_sink_write,
 * CURLOPT_WRITEDATA a gw_sink): at most max bytes, kept NUL-terminated; past
 * max, too_big is set and the transfer is aborted.
 */
typedef struct gw_sink {
	gw_buf buf;
	size_t max;
	bool too_big;
} gw_sink;
size_t gw_sink_write(char *ptr, size_t size, size_t nmemb, void *ud);
/* The body as a string, or NULL when nothing came. */
static inline const char *gw_sink_str(const gw_sink *s) { return s->buf.len ? (const char *)gw_buf_rd(&s->buf) : NULL; }
/* Free it; wipe: zero the bytes first (a body that may hold a token). */
void gw_sink_free(gw_sink *s, bool wipe);

static inline uint32_t gw_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t gw_get_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline void gw_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#endif
