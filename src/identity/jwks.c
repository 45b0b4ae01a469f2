/*
 * JWK sets (RFC 7517/7518/8037) and fetching them over verified HTTPS; see
 * oidc.h.
 *
 * A parsed set is immutable and reference-counted: a worker takes a
 * reference under the issuer's lock, verifies without it, and drops it, while
 * the fetcher may swap in a new set at any time.
 */
#include "identity/oidc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jwk {
	char kid[256];
	char alg[16];            /* "" when the JWK names none */
	gw_pubkey *key;
} jwk;

struct gw_jwks {
	atomic_int refs;
	size_t n;
	jwk *v;
};

/* A base64url member into a fresh buffer; NULL when absent or malformed. */
static uint8_t *member_b64(json_t *o, const char *name, size_t *len)
{
	json_t *m = json_object_get(o, name);
	if (!json_is_string(m))
		return NULL;
	size_t sl = json_string_length(m);
	uint8_t *out = gw_xmalloc(sl + 1);
	long n = gw_b64url_decode(json_string_value(m), sl, out, sl + 1);
	if (n <= 0) {
		free(out);
		return NULL;
	}
	*len = (size_t)n;
	return out;
}

/* One JWK into a key, or NULL (why set) when it cannot verify signatures here. */
static gw_pubkey *jwk_key(json_t *k, char *why, size_t whylen)
{
	const char *kty = json_string_value(json_object_get(k, "kty"));
	const char *use = json_string_value(json_object_get(k, "use"));
	json_t *ops = json_object_get(k, "key_ops");
	if (use && strcmp(use, "sig")) {
		snprintf(why, whylen, "use is \"%s\", not sig", use);
		return NULL;
	}
	if (ops) {
		bool verify = false;
		size_t i;
		json_t *op;
		json_array_foreach(ops, i, op)
			if (json_is_string(op) && !strcmp(json_string_value(op), "verify"))
				verify = true;
		if (!verify) {
			snprintf(why, whylen, "key_ops does not allow verify");
			return NULL;
		}
	}
	if (json_object_get(k, "d") || json_object_get(k, "p")) {
		snprintf(why, whylen, "it holds private key material; only public keys are read");
		return NULL;
	}
	uint8_t *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;
	gw_pubkey *key = NULL;
	if (kty && !strcmp(kty, "RSA")) {
		a = member_b64(k, "n", &al);
		b = member_b64(k, "e", &bl);
		if (a && b)
			key = gw_pubkey_rsa(a, al, b, bl, why, whylen);
		else
			snprintf(why, whylen, "RSA key without n and e");
	} else if (kty && !strcmp(kty, "EC")) {
		const char *crv = json_string_value(json_object_get(k, "crv"));
		enum gw_pk_type t = crv && !strcmp(crv, "P-256") ? GW_PK_P256 : crv && !strcmp(crv, "P-384") ? GW_PK_P384 : 0;
		a = member_b64(k, "x", &al);
		b = member_b64(k, "y", &bl);
		if (!t)
			snprintf(why, whylen, "EC curve %s is not supported (P-256, P-384 are)", crv ? crv : "(none)");
		else if (a && b)
			key = gw_pubkey_ec(t, a, al, b, bl, why, whylen);
		else
			snprintf(why, whylen, "EC key without x and y");
	} else if (kty && !strcmp(kty, "OKP")) {
		const char *crv = json_string_value(json_object_get(k, "crv"));
		a = member_b64(k, "x", &al);
		if (!crv || strcmp(crv, "Ed25519"))
			snprintf(why, whylen, "OKP curve %s is not supported (Ed25519 is)", crv ? crv : "(none)");
		else if (a)
			key = gw_pubkey_ed25519(a, al, why, whylen);
		else
			snprintf(why, whylen, "Ed25519 key without x");
	} else {
		snprintf(why, whylen, "kty %s is not a signature key type here", kty ? kty : "(none)");
	}
	free(a);
	free(b);
	return key;
}

gw_jwks *gw_jwks_parse(const char *json, size_t n, int *skipped, char *why, size_t whylen)
{
	*skipped = 0;
	json_error_t je;
	json_t *doc = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
	json_t *keys = json_object_get(doc, "keys");
	if (!doc || !json_is_array(keys)) {
		snprintf(why, whylen, "not a JWK set (%s)", doc ? "no \"keys\" array" : je.text);
		json_decref(doc);
		return NULL;
	}
	gw_jwks *ks = gw_xcalloc(1, sizeof(*ks));
	atomic_init(&ks->refs, 1);
	ks->v = gw_xcalloc(json_array_size(keys) + 1, sizeof(jwk));
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k) {
		char kwhy[200] = "";
		const char *kid = json_string_value(json_object_get(k, "kid"));
		const char *alg = json_string_value(json_object_get(k, "alg"));
		gw_pubkey *key = json_is_object(k) ? jwk_key(k, kwhy, sizeof(kwhy)) : NULL;
		if (key && ((kid && strlen(kid) >= sizeof(ks->v[0].kid)) || (alg && strlen(alg) >= sizeof(ks->v[0].alg)))) {
			snprintf(kwhy, sizeof(kwhy), "kid or alg too long");
			gw_pubkey_free(key);
			key = NULL;
		}
		for (size_t j = 0; key && kid && j < ks->n; j++)
			if (!strcmp(ks->v[j].kid, kid)) {
				/* two keys under one kid: which one a token means is not decided by the token */
				snprintf(kwhy, sizeof(kwhy), "kid \"%s\" is used twice", kid);
				gw_pubkey_free(key);
				key = NULL;
			}
		if (!key) {
			gw_debug("JWK #%zu (kid %s) skipped: %s", i, kid ? kid : "-", kwhy);
			(*skipped)++;
			continue;
		}
		jwk *e = &ks->v[ks->n++];
		snprintf(e->kid, sizeof(e->kid), "%s", kid ? kid : "");
		snprintf(e->alg, sizeof(e->alg), "%s", alg ? alg : "");
		e->key = key;
	}
	json_decref(doc);
	if (!ks->n) {
		snprintf(why, whylen, "the JWK set holds no usable signature key (%d skipped)", *skipped);
		gw_jwks_unref(ks);
		return NULL;
	}
	return ks;
}

const gw_pubkey *gw_jwks_find(const gw_jwks *ks, const char *kid, const char *alg)
{
	if (!ks)
		return NULL;
	const jwk *hit = NULL;
	if (!*kid) {
		if (ks->n == 1)
			hit = &ks->v[0];
	} else {
		for (size_t i = 0; i < ks->n && !hit; i++)
			if (!strcmp(ks->v[i].kid, kid))
				hit = &ks->v[i];
	}
	if (!hit || (*hit->alg && strcmp(hit->alg, alg)))
		return NULL;
	return hit->key;
}

size_t gw_jwks_count(const gw_jwks *ks) { return ks ? ks->n : 0; }

gw_jwks *gw_jwks_ref(gw_jwks *ks)
{
	if (ks)
		atomic_fetch_add(&ks->refs, 1);
	return ks;
}

void gw_jwks_unref(gw_jwks *ks)
{
	if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
		return;
	for (size_t i = 0; i < ks->n; i++)
		gw_pubkey_free(ks->v[i].key);
	free(ks->v);
	free(ks);
}

/* ---- HTTPS ---- */

typedef struct fetch {
	gw_buf body;
	size_t max;
	bool too_big;
	long max_age;
	const volatile bool *stop;
} fetch;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	fetch *f = ud;
	size_t n = sz * nm;
	if (gw_buf_len(&f->body) + n > f->max) {
		f->too_big = true;
		return 0;
	}
	gw_buf_append(&f->body, p, n);
	return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	fetch *f = ud;
	size_t n = sz * nm;
	if (n > 14 && !strncasecmp(p, "cache-control:", 14)) {
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(n - 14), p + 14);
		for (char *q = line; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		const char *m = strstr(line, "max-age=");
		if (strstr(line, "no-store") || strstr(line, "no-cache"))
			f->max_age = 0;
		else if (m)
			f->max_age = strtol(m + 8, NULL, 10);
	}
	return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	fetch *f = ud;
	return f->stop && *f->stop ? 1 : 0;
}

char *gw_https_get(const char *url, const char *ca_file, size_t max, long timeout_s, const volatile bool *stop,
	size_t *len, long *max_age, char *why, size_t whylen)
{
	if (strncmp(url, "https://", 8)) {
		snprintf(why, whylen, "%s is not an https:// URL", url);
		return NULL;
	}
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(why, whylen, "cannot initialise libcurl");
		return NULL;
	}
	fetch f = {.max = max, .max_age = -1, .stop = stop};
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json, application/jwk-set+json");
	h = curl_slist_append(h, "User-Agent: pgmoat");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &f);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &f);
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (f.too_big)
		snprintf(why, whylen, "%s: the answer is over %zu bytes", url, max);
	else if (rc != CURLE_OK)
		snprintf(why, whylen, "%s: %s", url, *ebuf ? ebuf : curl_easy_strerror(rc));
	else if (status != 200)
		snprintf(why, whylen, "%s: HTTP status %ld", url, status);
	if (f.too_big || rc != CURLE_OK || status != 200) {
		gw_buf_free(&f.body);
		return NULL;
	}
	*len = gw_buf_len(&f.body);
	char *out = gw_xmalloc(*len + 1);
	memcpy(out, gw_buf_rd(&f.body), *len);
	out[*len] = 0;
	gw_buf_free(&f.body);
	*max_age = f.max_age;
	return out;
}
