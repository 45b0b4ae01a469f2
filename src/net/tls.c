/*
 * TLS transport and crypto primitives on OpenSSL; see tls.h.
 *
 * Server sessions use SSL_MODE_RELEASE_BUFFERS so an idle TLS client costs
 * ~14 KiB instead of ~46 KiB; minimum protocol TLS 1.2.
 */
#include "net/tls.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct gw_tls_ctx {
	SSL_CTX *ctx;
	int verify;
};

struct gw_tls {
	SSL *ssl;
	int last_want;   /* SSL_ERROR_WANT_READ / _WRITE of the last call */
	char err[160];
};

static void ossl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s%s%s", what, *buf ? ": " : "", buf);
	ERR_clear_error();
}

/* A context with what both sides share: TLS 1.2+, buffers released when idle. */
static SSL_CTX *ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		ossl_err(err, errlen, "cannot create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Read whole records (and what follows) in one read(2), not a 5-byte header and then the body. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		SSL_MODE_ENABLE_PARTIAL_WRITE);
	return ctx;
}

gw_tls_ctx *gw_tls_server_ctx_new(const char *cert_file, const char *key_pem, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), err, errlen);
	if (!ctx)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ossl_err(err, errlen, "cannot load tls.cert");
		SSL_CTX_free(ctx);
		return NULL;
	}
	BIO *bio = BIO_new_mem_buf(key_pem, -1);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!pkey || SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ossl_err(err, errlen, "cannot load tls.key (a PEM private key matching tls.cert)");
		EVP_PKEY_free(pkey);
		SSL_CTX_free(ctx);
		return NULL;
	}
	EVP_PKEY_free(pkey);
	gw_tls_ctx *t = gw_xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	return t;
}

gw_tls_ctx *gw_tls_client_ctx_new(int verify, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_client_method(), err, errlen);
	if (!ctx)
		return NULL;
	if (verify) {
		if (!ca_file || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			ossl_err(err, errlen, "cannot load sslrootcert");
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	gw_tls_ctx *t = gw_xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	t->verify = verify;
	return t;
}

void gw_tls_ctx_free(gw_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ctx);
	free(ctx);
}

gw_tls *gw_tls_new(gw_tls_ctx *ctx, int fd, bool server, const char *host)
{
	SSL *ssl = SSL_new(ctx->ctx);
	if (!ssl)
		return NULL;
	SSL_set_fd(ssl, fd);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (host && *host && *host != '/') {
			SSL_set_tlsext_host_name(ssl, host);
			if (ctx->verify == 2) {
				X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
				X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
				if (!X509_VERIFY_PARAM_set1_ip_asc(param, host))
					X509_VERIFY_PARAM_set1_host(param, host, 0);
			}
		}
	}
	gw_tls *t = gw_xcalloc(1, sizeof(*t));
	t->ssl = ssl;
	return t;
}

/* Map an SSL_get_error() result onto the tls.h contract. */
static ssize_t map_err(gw_tls *t, int ret)
{
	int e = SSL_get_error(t->ssl, ret);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		t->last_want = e;
		return GW_TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		t->last_want = e;
		return GW_TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			/* EOF without close_notify, or a socket error. */
			if (ret == 0 || errno == 0 || errno == ECONNRESET || errno == EPIPE)
				return 0;
			snprintf(t->err, sizeof(t->err), "%s", strerror(errno));
			return GW_TLS_ERR;
		}
		/* fallthrough */
	default:
		ossl_err(t->err, sizeof(t->err), "TLS error");
		return GW_TLS_ERR;
	}
}

int gw_tls_handshake(gw_tls *t)
{
	ERR_clear_error();
	int r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return 1;
	ssize_t m = map_err(t, r);
	if (m == GW_TLS_WANT_READ || m == GW_TLS_WANT_WRITE)
		return 0;
	if (m == 0)
		snprintf(t->err, sizeof(t->err), "peer closed the connection during the TLS handshake");
	long vr = SSL_get_verify_result(t->ssl);
	if (vr != X509_V_OK)
		snprintf(t->err, sizeof(t->err), "certificate verification failed: %s", X509_verify_cert_error_string(vr));
	return -1;
}

bool gw_tls_wants_write(const gw_tls *t) { return t->last_want == SSL_ERROR_WANT_WRITE; }

ssize_t gw_tls_read(gw_tls *t, void *buf, size_t n)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_read(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0) {
		t->last_want = 0;
		return r;
	}
	return map_err(t, r);
}

ssize_t gw_tls_write(gw_tls *t, const void *buf, size_t n)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	if (r > 0) {
		t->last_want = 0;
		return r;
	}
	ssize_t m = map_err(t, r);
	return m == 0 ? GW_TLS_ERR : m;
}

/* Decrypted bytes, or (read ahead) raw bytes not yet processed: either way epoll will not say so. */
size_t gw_tls_pending(const gw_tls *t)
{
	int n = SSL_pending(t->ssl);
	return n > 0 ? (size_t)n : SSL_has_pending(t->ssl) ? 1 : 0;
}
const char *gw_tls_version(const gw_tls *t) { return SSL_get_version(t->ssl); }
const char *gw_tls_error(const gw_tls *t) { return t->err[0] ? t->err : "TLS failure"; }

void gw_tls_free(gw_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

void gw_random_bytes(void *buf, size_t n)
{
	if (RAND_bytes(buf, (int)n) != 1)
		gw_die("the system random generator failed");
}

void gw_sha256(const void *data, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	if (!EVP_Digest(data, n, out, &len, EVP_sha256(), NULL))
		gw_die("SHA-256 failed");
}

void gw_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	if (!HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len))
		gw_die("HMAC-SHA-256 failed");
}

void gw_pbkdf2_sha256(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
	int iterations, uint8_t out[32])
{
	if (!PKCS5_PBKDF2_HMAC(pass, (int)passlen, salt, (int)saltlen, iterations, EVP_sha256(), 32, out))
		gw_die("PBKDF2 failed");
}

void gw_md5_hex(const void *data, size_t n, char out[33])
{
	uint8_t d[16];
	unsigned int len = 16;
	if (!EVP_Digest(data, n, d, &len, EVP_md5(), NULL))
		gw_die("MD5 failed");
	gw_hex(d, 16, out);
}

static EVP_PKEY *make_key(void)
{
	return EVP_EC_gen("P-256");
}

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
	fclose(f);
	return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
	X509 *x = X509_new();
	uint8_t serial[16];
	gw_random_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	const char *exts[][2] = {
		{"basicConstraints", ca ? "critical,CA:TRUE" : "CA:FALSE"},
		{"keyUsage", ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment"},
		{"subjectAltName", ca ? NULL : "DNS:localhost,IP:127.0.0.1,IP:::1"},
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(exts); i++) {
		if (!exts[i][1])
			continue;
		X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
		if (e) {
			X509_add_ext(x, e, -1);
			X509_EXTENSION_free(e);
		}
	}
	if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int gw_tls_make_demo_certs(const char *dir, char *err, size_t errlen)
{
	EVP_PKEY *cakey = make_key(), *key = make_key();
	X509 *ca = cakey ? make_cert(cakey, "pgmoat demo CA", NULL, NULL, true) : NULL;
	X509 *cert = (ca && key) ? make_cert(key, "localhost", ca, cakey, false) : NULL;
	int rc = -1;
	if (cert) {
		char p[4][512];
		snprintf(p[0], sizeof(p[0]), "%s/ca.crt", dir);
		snprintf(p[1], sizeof(p[1]), "%s/ca.key", dir);
		snprintf(p[2], sizeof(p[2]), "%s/server.crt", dir);
		snprintf(p[3], sizeof(p[3]), "%s/server.key", dir);
		rc = write_pem(p[0], NULL, ca) | write_pem(p[1], cakey, NULL) |
			write_pem(p[2], NULL, cert) | write_pem(p[3], key, NULL);
	}
	if (rc)
		ossl_err(err, errlen, "cannot make demo certificates");
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	return rc ? -1 : 0;
}
