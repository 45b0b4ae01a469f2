/*
 * TLS transport and crypto primitives on OpenSSL; see tls.h.
 *
 * Server sessions use SSL_MODE_RELEASE_BUFFERS so an idle TLS client costs
 * ~14 KiB instead of ~46 KiB; minimum protocol TLS 1.2.
 */
#include "net/tls.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct gw_tls_ctx {
	SSL_CTX *ctx;
	int verify;
	pthread_rwlock_t lock;  /* SSL_new (read) against a reload of the client CAs and CRL (write) */
};

struct gw_tls {
	SSL *ssl;
	int last_want;   /* SSL_ERROR_WANT_READ / _WRITE of the last call */
	int peer_err;    /* the first verification error of the client's certificate (X509_V_*) */
	int peer_depth;  /* and where in its chain */
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
	pthread_rwlock_init(&t->lock, NULL);
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
	pthread_rwlock_init(&t->lock, NULL);
	return t;
}

void gw_tls_ctx_free(gw_tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ctx);
	pthread_rwlock_destroy(&ctx->lock);
	free(ctx);
}

/*
 * Client certificates: keep the first failure and let the handshake finish;
 * the login refuses with the reason (gw_tls_peer_get). Nothing trusts a
 * certificate whose verification failed.
 */
static int peer_verify_cb(int ok, X509_STORE_CTX *xs)
{
	if (!ok) {
		SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
		gw_tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
		if (t && !t->peer_err) {
			t->peer_err = X509_STORE_CTX_get_error(xs);
			if (!t->peer_err)
				t->peer_err = X509_V_ERR_UNSPECIFIED;
			t->peer_depth = X509_STORE_CTX_get_error_depth(xs);
		}
	}
	return 1;
}

int gw_tls_server_ctx_client_ca(gw_tls_ctx *t, const char *ca_file, const char *crl_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = t->ctx;
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		ossl_err(err, errlen, "cannot load tls.client_ca (PEM CA certificates)");
		return -1;
	}
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
	if (!names) {
		ossl_err(err, errlen, "tls.client_ca holds no CA certificate");
		return -1;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	/* with a CRL, client certificates are verified against a store of their own, the one SIGHUP replaces */
	if (crl_file && gw_tls_server_ctx_reload_crl(t, ca_file, crl_file, err, errlen) < 0)
		return -1;
	/*
	 * No session resumption: a resumed session carries a certificate checked
	 * against the CRL of its first handshake, and tls.crl is read again on
	 * SIGHUP. (PostgreSQL clients do not resume sessions anyway.) OpenSSL
	 * still wants an id context once a client certificate is asked for.
	 */
	static const unsigned char sid[] = "pgmoat";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, peer_verify_cb);
	return 0;
}

int gw_tls_server_ctx_reload_crl(gw_tls_ctx *t, const char *ca_file, const char *crl_file, char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	X509_LOOKUP *lk = store ? X509_STORE_add_lookup(store, X509_LOOKUP_file()) : NULL;
	if (!lk || X509_STORE_load_file(store, ca_file) != 1) {
		ossl_err(err, errlen, "cannot load tls.client_ca (PEM CA certificates)");
		X509_STORE_free(store);
		return -1;
	}
	if (X509_load_crl_file(lk, crl_file, X509_FILETYPE_PEM) < 1) {
		ossl_err(err, errlen, "cannot load tls.crl (a PEM file of CRLs)");
		X509_STORE_free(store);
		return -1;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	/* handshakes that began keep the store they started with (each SSL holds a reference) */
	pthread_rwlock_wrlock(&t->lock);
	int ok = SSL_CTX_set1_verify_cert_store(t->ctx, store);
	pthread_rwlock_unlock(&t->lock);
	X509_STORE_free(store);
	if (ok != 1) {
		ossl_err(err, errlen, "cannot install the new tls.crl");
		return -1;
	}
	return 0;
}

static int64_t asn1_time_unix(const ASN1_TIME *at)
{
	struct tm tm;
	if (!at || ASN1_TIME_to_tm(at, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* An ASN1 string as UTF-8 into out; false when it holds a NUL or does not fit. */
static bool asn1_utf8(const ASN1_STRING *as, char *out, size_t outlen)
{
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, as);
	bool ok = n >= 0 && (size_t)n < outlen && !memchr(u, 0, (size_t)n);
	if (ok) {
		memcpy(out, u, (size_t)n);
		out[n] = 0;
	}
	OPENSSL_free(u);
	return ok;
}

void gw_tls_peer_get(const gw_tls *t, gw_tls_peer *out)
{
	memset(out, 0, sizeof(*out));
	X509 *x = SSL_get0_peer_certificate(t->ssl);
	if (!x)
		return;
	out->present = true;
	long vr = SSL_get_verify_result(t->ssl);
	int e = t->peer_err ? t->peer_err : (int)vr;
	out->verified = e == X509_V_OK;
	if (!out->verified)
		snprintf(out->why, sizeof(out->why), "%s%s", X509_verify_cert_error_string(e),
			t->peer_err && t->peer_depth > 0 ? " (in its chain)" : "");
	const X509_NAME *subj = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i >= 0 && X509_NAME_get_index_by_NID(subj, NID_commonName, i) < 0) {
		const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		if (!asn1_utf8(cn, out->cn, sizeof(out->cn)))
			out->cn[0] = 0;
	}
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int k = 0; sans && k < sk_GENERAL_NAME_num(sans); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, k);
		if (g->type != GEN_URI)
			continue;
		if (out->nuri < GW_TLS_PEER_URIS &&
			!asn1_utf8(g->d.uniformResourceIdentifier, out->uri[out->nuri], sizeof(out->uri[0])))
			snprintf(out->uri[out->nuri], sizeof(out->uri[0]), "%s", "");
		out->nuri++;
	}
	GENERAL_NAMES_free(sans);
	out->not_before = asn1_time_unix(X509_get0_notBefore(x));
	out->not_after = asn1_time_unix(X509_get0_notAfter(x));
}

gw_tls *gw_tls_new(gw_tls_ctx *ctx, int fd, bool server, const char *host)
{
	pthread_rwlock_rdlock(&ctx->lock);
	SSL *ssl = SSL_new(ctx->ctx);
	pthread_rwlock_unlock(&ctx->lock);
	if (!ssl)
		return NULL;
	gw_tls *t = gw_xcalloc(1, sizeof(*t));
	SSL_set_app_data(ssl, t);
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

/*
 * SHA-256 on the record's hot path (two hashes per statement): the digest is
 * fetched once and each thread keeps one context, so a hash costs no
 * provider lookup, lock or allocation (EVP_Digest with EVP_sha256() pays all
 * three every call).
 */
static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_drop(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_init(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md || pthread_key_create(&sha256_key, sha256_ctx_drop) != 0)
		gw_die("SHA-256 is not available");
}

void gw_sha256_2(const void *a, size_t na, const void *b, size_t nb, uint8_t out[32])
{
	pthread_once(&sha256_once, sha256_init);
	EVP_MD_CTX *ctx = pthread_getspecific(sha256_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (!ctx || pthread_setspecific(sha256_key, ctx) != 0)
			gw_die("out of memory");
	}
	unsigned int len = 32;
	if (!EVP_DigestInit_ex2(ctx, sha256_md, NULL) || (na && !EVP_DigestUpdate(ctx, a, na)) ||
		(nb && !EVP_DigestUpdate(ctx, b, nb)) || !EVP_DigestFinal_ex(ctx, out, &len))
		gw_die("SHA-256 failed");
}

void gw_sha256(const void *data, size_t n, uint8_t out[32])
{
	gw_sha256_2(data, n, NULL, 0, out);
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

/* ---- public keys and JWS signatures ---- */

struct gw_pubkey {
	EVP_PKEY *pkey;
	enum gw_pk_type type;
	int bits;
};

static gw_pubkey *pubkey_wrap(EVP_PKEY *pkey, enum gw_pk_type type)
{
	gw_pubkey *k = gw_xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->type = type;
	k->bits = EVP_PKEY_get_bits(pkey);
	return k;
}

static EVP_PKEY *pkey_fromdata(const char *name, OSSL_PARAM *params)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
	if (!pc || EVP_PKEY_fromdata_init(pc) != 1 || EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(pc);
	if (!pkey)
		return NULL;
	/* The point is on the curve, the modulus is odd and not tiny, ... */
	EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok = chk && EVP_PKEY_public_check(chk) == 1;
	EVP_PKEY_CTX_free(chk);
	if (!ok) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

gw_pubkey *gw_pubkey_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen, char *err, size_t errlen)
{
	if (!nlen || !elen || nlen > 2048 || elen > 16) {
		snprintf(err, errlen, "RSA key: n or e of an impossible length");
		return NULL;
	}
	BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;
	if (bn && be && b && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) &&
		OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) && (params = OSSL_PARAM_BLD_to_param(b)))
		pkey = pkey_fromdata("RSA", params);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(bn);
	BN_free(be);
	if (!pkey) {
		ossl_err(err, errlen, "RSA key: not a valid public key");
		return NULL;
	}
	return pubkey_wrap(pkey, GW_PK_RSA);
}

gw_pubkey *gw_pubkey_ec(enum gw_pk_type type, const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen,
	char *err, size_t errlen)
{
	size_t fl = type == GW_PK_P256 ? 32 : type == GW_PK_P384 ? 48 : 0;
	if (!fl || xlen != fl || ylen != fl) {
		snprintf(err, errlen, "EC key: x and y must be %zu bytes each for this curve", fl);
		return NULL;
	}
	uint8_t pt[1 + 2 * 48];
	pt[0] = 0x04;
	memcpy(pt + 1, x, fl);
	memcpy(pt + 1 + fl, y, fl);
	char group[8];
	snprintf(group, sizeof(group), "%s", type == GW_PK_P256 ? "P-256" : "P-384");
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * fl),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY *pkey = pkey_fromdata("EC", params);
	if (!pkey) {
		ossl_err(err, errlen, "EC key: not a point of the curve");
		return NULL;
	}
	return pubkey_wrap(pkey, type);
}

gw_pubkey *gw_pubkey_ed25519(const uint8_t *x, size_t xlen, char *err, size_t errlen)
{
	EVP_PKEY *pkey = xlen == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen) : NULL;
	if (!pkey) {
		ossl_err(err, errlen, "Ed25519 key: x must be 32 bytes");
		return NULL;
	}
	return pubkey_wrap(pkey, GW_PK_ED25519);
}

enum gw_pk_type gw_pubkey_type(const gw_pubkey *k) { return k->type; }
int gw_pubkey_bits(const gw_pubkey *k) { return k->bits; }

void gw_pubkey_free(gw_pubkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

/*
 * Digests fetched once: EVP_sha256() and friends make every init look the
 * implementation up again in the provider store.
 */
static EVP_MD *jws_md[3];
static const BIGNUM *ec_order[2];
static pthread_once_t jws_once = PTHREAD_ONCE_INIT;

static void jws_init(void)
{
	jws_md[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	jws_md[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	jws_md[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
	EC_GROUP *g256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_GROUP *g384 = EC_GROUP_new_by_curve_name(NID_secp384r1);
	if (!jws_md[0] || !jws_md[1] || !jws_md[2] || !g256 || !g384)
		gw_die("OpenSSL lacks SHA-2 or the P-256/P-384 curves");
	ec_order[0] = BN_dup(EC_GROUP_get0_order(g256));
	ec_order[1] = BN_dup(EC_GROUP_get0_order(g384));
	EC_GROUP_free(g256);
	EC_GROUP_free(g384);
}

static const EVP_MD *md_of(enum gw_sig_alg alg)
{
	switch (alg) {
	case GW_SIG_RS256: case GW_SIG_PS256: case GW_SIG_ES256: return jws_md[0];
	case GW_SIG_RS384: case GW_SIG_PS384: case GW_SIG_ES384: return jws_md[1];
	case GW_SIG_RS512: case GW_SIG_PS512: return jws_md[2];
	case GW_SIG_EDDSA: return NULL;
	}
	return NULL;
}

/* Raw r||s (JWS) to the DER ECDSA-Sig-Value OpenSSL checks; false when r or s is 0 or >= n. */
static bool ec_sig_der(const uint8_t *sig, size_t siglen, size_t fl, const BIGNUM *order, uint8_t **der, int *derlen)
{
	if (siglen != 2 * fl)
		return false;
	BIGNUM *r = BN_bin2bn(sig, (int)fl, NULL), *s = BN_bin2bn(sig + fl, (int)fl, NULL);
	bool ok = r && s && !BN_is_zero(r) && !BN_is_zero(s) && BN_cmp(r, order) < 0 && BN_cmp(s, order) < 0;
	ECDSA_SIG *es = ok ? ECDSA_SIG_new() : NULL;
	if (es && ECDSA_SIG_set0(es, r, s) == 1) {
		r = s = NULL; /* owned by es now */
		*der = NULL;
		*derlen = i2d_ECDSA_SIG(es, der);
		ok = *derlen > 0;
	} else {
		ok = false;
	}
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(s);
	return ok;
}

bool gw_pubkey_verify(const gw_pubkey *k, enum gw_sig_alg alg, const void *data, size_t n, const uint8_t *sig,
	size_t siglen)
{
	pthread_once(&jws_once, jws_init);
	bool rsa = alg >= GW_SIG_RS256 && alg <= GW_SIG_PS512;
	bool pss = alg >= GW_SIG_PS256 && alg <= GW_SIG_PS512;
	if ((rsa && k->type != GW_PK_RSA) || (alg == GW_SIG_ES256 && k->type != GW_PK_P256) ||
		(alg == GW_SIG_ES384 && k->type != GW_PK_P384) || (alg == GW_SIG_EDDSA && k->type != GW_PK_ED25519) ||
		alg < GW_SIG_RS256 || alg > GW_SIG_EDDSA)
		return false;
	uint8_t *der = NULL;
	int derlen = 0;
	if (alg == GW_SIG_ES256 || alg == GW_SIG_ES384) {
		size_t fl = alg == GW_SIG_ES256 ? 32 : 48;
		if (!ec_sig_der(sig, siglen, fl, ec_order[alg == GW_SIG_ES256 ? 0 : 1], &der, &derlen))
			return false;
		sig = der;
		siglen = (size_t)derlen;
	} else if (rsa && siglen != (size_t)((k->bits + 7) / 8)) {
		return false;
	}
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	bool ok = mc && EVP_DigestVerifyInit(mc, &pc, md_of(alg), NULL, k->pkey) == 1;
	if (ok && pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1 &&
			EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md_of(alg)) == 1;
	else if (ok && rsa)
		ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1;
	ok = ok && EVP_DigestVerify(mc, sig, siglen, data, n) == 1;
	EVP_MD_CTX_free(mc);
	OPENSSL_free(der);
	ERR_clear_error();
	return ok;
}
