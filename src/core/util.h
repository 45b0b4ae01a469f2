/*
 * Small helpers every module may use: checked allocation, time, durations,
 * string and address helpers. Owns nothing.
 */
#ifndef GW_CORE_UTIL_H
#define GW_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GW_MUST_CHECK __attribute__((warn_unused_result))

#ifdef GW_DEBUG
#define GW_ASSERT(x) do { if (!(x)) gw_die("assertion failed: %s (%s:%d)", #x, __FILE__, __LINE__); } while (0)
#else
#define GW_ASSERT(x) do { (void)sizeof(x); } while (0)
/* Is item one of the comma-separated names in csv (exact, no spaces)? */
bool gw_csv_has(const char *csv, const char *item);

#endif

__attribute__((noreturn, format(printf, 1, 2))) void gw_die(const char *fmt, ...);
/*
 * For the long-running servers (serve, relay, demo): keep freed memory in
 * the heap up to 32 MiB per arena instead of handing it back at 128 KiB.
 * A connection's receive buffer (up to 64 KiB) is freed whenever the socket
 * is drained, so idle sessions hold none; with glibc's defaults that freeing
 * shrank the heap (madvise) and the next read grew it again (page faults),
 * several times per transaction — measured: 11 us of gateway CPU per
 * prepared pgbench transaction, ~3 us per simple one. Blocks from 1 MiB up
 * still come from mmap.
 */
void gw_malloc_tune(void);
void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t n, size_t m);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s);
char *gw_xstrndup(const char *s, size_t n);
__attribute__((format(printf, 1, 2))) char *gw_xasprintf(const char *fmt, ...);

/* Monotonic microseconds, and wall-clock microseconds since the epoch. */
uint64_t gw_mono_us(void);
uint64_t gw_wall_us(void);
/* "2026-11-24T10:00:00.123456Z" into out (>= 32 bytes). */
void gw_format_ts(uint64_t wall_us, char *out, size_t outlen);

/* "30s 15m 2h 7d 200ms" (one unit) into microseconds; false when malformed. */
bool gw_parse_duration(const char *s, uint64_t *us);
/* "host:port" or "[v6]:port" into parts; false when malformed. */
bool gw_split_hostport(const char *s, char *host, size_t hostlen, int *port);
/* Text form of an address, "1.2.3.4" or "::1" or "unix". */
void gw_addr_str(const struct sockaddr_storage *ss, char *out, size_t outlen);
bool gw_addr_is_loopback(const struct sockaddr_storage *ss);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void gw_hex(const uint8_t *p, size_t n, char *out);
/* n hex digits (n even) into n/2 bytes; false when one is not a hex digit. */
bool gw_unhex(const char *hex, size_t n, uint8_t *out);
/* Constant-time comparison of equal-length byte strings. */
bool gw_ct_equal(const void *a, const void *b, size_t n);
/* Base64url without padding of n bytes into out (needs 4*n/3+4 bytes). */
void gw_b64url(const uint8_t *p, size_t n, char *out);
/* Standard base64 with padding; decode returns length or -1. */
size_t gw_b64_encode(const uint8_t *p, size_t n, char *out);
long gw_b64_decode(const char *s, size_t slen, uint8_t *out, size_t outcap);

/* Is item one of the comma-separated names in csv (exact, no spaces)? */
bool gw_csv_has(const char *csv, const char *item);

#endif
