/*
 * TLS transport and the cryptographic primitives the gateway needs.
 *
 * Owns: every use of OpenSSL. This is the only file in the tree that includes
 * an OpenSSL header; other modules see opaque handles and plain byte arrays.
 *
 * Return contract of the I/O calls: > 0 bytes moved; 0 the peer closed;
 * GW_TLS_WANT_READ / GW_TLS_WANT_WRITE: try again when the socket is readable
 * / writable; GW_TLS_ERR: the connection is broken (see gw_tls_error()).
 */
#ifndef GW_NET_TLS_H
#define GW_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GW_TLS_ERR (-1)
#define GW_TLS_WANT_READ (-2)
#define GW_TLS_WANT_WRITE (-3)

typedef struct gw_tls_ctx gw_tls_ctx;
typedef struct gw_tls gw_tls;

/* Server context from a PEM certificate chain file and a PEM key (bytes). */
gw_tls_ctx *gw_tls_server_ctx_new(const char *cert_file, const char *key_pem, char *err, size_t errlen);
/* Client context for upstream connections; verify: 0 none, 1 chain, 2 chain+name. */
gw_tls_ctx *gw_tls_client_ctx_new(int verify, const char *ca_file, char *err, size_t errlen);
void gw_tls_ctx_free(gw_tls_ctx *ctx);

/* A TLS session on a connected non-blocking socket. host: for SNI and name checks. */
gw_tls *gw_tls_new(gw_tls_ctx *ctx, int fd, bool server, const char *host);
/* 1 done, 0 in progress (wants read or write: see gw_tls_wants_write), -1 failed. */
int gw_tls_handshake(gw_tls *t);
bool gw_tls_wants_write(const gw_tls *t);
ssize_t gw_tls_read(gw_tls *t, void *buf, size_t n);
ssize_t gw_tls_write(gw_tls *t, const void *buf, size_t n);
size_t gw_tls_pending(const gw_tls *t);
const char *gw_tls_version(const gw_tls *t);
const char *gw_tls_error(const gw_tls *t);
void gw_tls_free(gw_tls *t);

/* Crypto primitives. */
void gw_random_bytes(void *buf, size_t n);
void gw_sha256(const void *data, size_t n, uint8_t out[32]);
void gw_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, uint8_t out[32]);
void gw_pbkdf2_sha256(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
	int iterations, uint8_t out[32]);
void gw_md5_hex(const void *data, size_t n, char out[33]);

/*
 * Write a fresh CA (ca.crt/ca.key) and a server certificate signed by it
 * (server.crt/server.key, SAN localhost and 127.0.0.1) into dir, for the
 * demo. Returns 0, or -1 with err set.
 */
int gw_tls_make_demo_certs(const char *dir, char *err, size_t errlen);

#endif
