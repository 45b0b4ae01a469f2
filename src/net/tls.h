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
/*
 * Ask clients of a server context for a certificate (optional: a client that
 * sends none still completes the handshake and logs in with a password)
 * signed by the CAs in ca_file; crl_file (NULL: none) is a PEM file of CRLs
 * checked for the client's certificate. A certificate that fails
 * verification does not fail the handshake: the login reads why from
 * gw_tls_peer_get() and refuses with that reason, which a client sees as a
 * PostgreSQL error instead of a TLS alert. 0, or -1 with err set.
 */
int gw_tls_server_ctx_client_ca(gw_tls_ctx *ctx, const char *ca_file, const char *crl_file, char *err, size_t errlen);
/*
 * Read ca_file and crl_file again (SIGHUP) for the handshakes that start from
 * now on; on failure (err set, -1) the ones in force stay. Thread-safe
 * against gw_tls_new.
 */
int gw_tls_server_ctx_reload_crl(gw_tls_ctx *ctx, const char *ca_file, const char *crl_file, char *err,
	size_t errlen);
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

/* The client certificate of a server-side session (after the handshake). */
#define GW_TLS_PEER_URIS 4
typedef struct gw_tls_peer {
	bool present;            /* a certificate was sent */
	bool verified;           /* it chains to tls.client_ca, is in its validity period and not revoked */
	char why[160];           /* when not verified: OpenSSL's reason, such as "certificate has expired" */
	char cn[256];            /* the subject's single CN, UTF-8 ("" none, or several, or an embedded NUL) */
	char uri[GW_TLS_PEER_URIS][256]; /* URI subjectAltNames (SPIFFE IDs) */
	int nuri;                /* how many there are (may exceed GW_TLS_PEER_URIS: then only those are kept) */
	int64_t not_before, not_after; /* unix seconds */
} gw_tls_peer;
void gw_tls_peer_get(const gw_tls *t, gw_tls_peer *out);

/*
 * Public keys for signature checks (JWS, RFC 7515/7518/8037), made from a
 * JWK's members as raw big-endian bytes. Immutable once made, so one key may
 * verify on several threads at once.
 */
typedef struct gw_pubkey gw_pubkey;
enum gw_pk_type { GW_PK_RSA = 1, GW_PK_P256, GW_PK_P384, GW_PK_ED25519 };
enum gw_sig_alg {
	GW_SIG_RS256 = 1, GW_SIG_RS384, GW_SIG_RS512, GW_SIG_PS256, GW_SIG_PS384, GW_SIG_PS512,
	GW_SIG_ES256, GW_SIG_ES384, GW_SIG_EDDSA,
};
/* n, e: the modulus and exponent. NULL with err set when they make no RSA key. */
gw_pubkey *gw_pubkey_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen, char *err, size_t errlen);
/* type GW_PK_P256 / GW_PK_P384; x, y exactly the field size; the point must be on the curve. */
gw_pubkey *gw_pubkey_ec(enum gw_pk_type type, const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen,
	char *err, size_t errlen);
/* x: the 32-byte Ed25519 public key. */
gw_pubkey *gw_pubkey_ed25519(const uint8_t *x, size_t xlen, char *err, size_t errlen);
enum gw_pk_type gw_pubkey_type(const gw_pubkey *k);
int gw_pubkey_bits(const gw_pubkey *k);
void gw_pubkey_free(gw_pubkey *k);
/*
 * Check a JWS signature over data. ES256/ES384 take the raw r||s form JWS
 * uses (64 / 96 bytes; r or s zero or not below the group order is refused
 * before OpenSSL sees it). The caller has matched the algorithm to the key
 * type; a mismatch is refused here too. True only for a valid signature.
 */
bool gw_pubkey_verify(const gw_pubkey *k, enum gw_sig_alg alg, const void *data, size_t n, const uint8_t *sig,
	size_t siglen);

/* Crypto primitives. */
void gw_random_bytes(void *buf, size_t n);
void gw_sha256(const void *data, size_t n, uint8_t out[32]);
/* SHA-256(a ‖ b) without joining them first. */
void gw_sha256_2(const void *a, size_t na, const void *b, size_t nb, uint8_t out[32]);
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
