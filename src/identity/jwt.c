/*
 * The JWS compact form (RFC 7515) of a JWT (RFC 7519) and its checks; see
 * oidc.h. Pure: no I/O, and the clock is the caller's.
 *
 * Everything here reads bytes from an unauthenticated client, so the order is
 * cheapest first: the size (16 kB) before anything, the shape, strict
 * base64url, then JSON (jansson, duplicate keys refused: two "sub" or two
 * "alg" members could be read differently by two parsers), then the header's
 * rules. The signature is checked by the caller with the issuer's key
 * (net/tls.c) before any claim is believed.
 */
#include "identity/oidc.h"
#include "core/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long gw_b64url_decode(const char *s, size_t n, uint8_t *out, size_t outcap)
{
	if (n % 4 == 1)
		return -1;
	size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (need > outcap)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_val((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* The bits left over must be zero: one encoding per value. */
	if (bits && (acc & ((1u << bits) - 1)))
		return -1;
	return (long)o;
}

bool gw_jwt_shape(const char *s, size_t n)
{
	/* An API token (pgm_<hex>_<base64url>) never holds a dot; anything else with one is taken as a JWT
	 * attempt, so that a malformed one is refused with a JWT's reason. */
	return n > 0 && memchr(s, '.', n) != NULL;
}

static const struct {
	const char *name;
	enum gw_sig_alg alg;
} algs[] = {
	{"RS256", GW_SIG_RS256}, {"RS384", GW_SIG_RS384}, {"RS512", GW_SIG_RS512},
	{"PS256", GW_SIG_PS256}, {"PS384", GW_SIG_PS384}, {"PS512", GW_SIG_PS512},
	{"ES256", GW_SIG_ES256}, {"ES384", GW_SIG_ES384}, {"EdDSA", GW_SIG_EDDSA},
};

/* A part decoded and parsed as a JSON object; NULL with why set. */
static json_t *part_json(const char *p, size_t n, const char *what, char *why, size_t whylen)
{
	uint8_t *raw = gw_xmalloc(n);
	long rl = gw_b64url_decode(p, n, raw, n);
	if (rl < 0) {
		free(raw);
		snprintf(why, whylen, "the %s is not base64url", what);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb((const char *)raw, (size_t)rl, JSON_REJECT_DUPLICATES, &je);
	free(raw);
	if (!j) {
		snprintf(why, whylen, "the %s is not JSON%s (%s)", what,
			strstr(je.text, "duplicate") ? " without duplicate members" : "", je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(why, whylen, "the %s is not a JSON object", what);
		return NULL;
	}
	return j;
}

void gw_jwt_free(gw_jwt *j)
{
	json_decref(j->header);
	json_decref(j->claims);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}

int gw_jwt_parse(const char *tok, size_t n, gw_jwt *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (n > GW_JWT_MAX) {
		snprintf(why, whylen, "the token is over %d bytes", GW_JWT_MAX);
		return -1;
	}
	const char *d1 = memchr(tok, '.', n);
	const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok))) {
		snprintf(why, whylen, "the token is not three dot-separated parts");
		return -1;
	}
	size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = n - (size_t)(d2 + 1 - tok);
	if (!hl || !pl) {
		snprintf(why, whylen, "the token has an empty header or payload");
		return -1;
	}
	if (!sl) {
		snprintf(why, whylen, "the token is not signed (no signature part)");
		return -1;
	}
	out->header = part_json(tok, hl, "header", why, whylen);
	if (!out->header)
		goto fail;
	/* The header first: what it says decides whether the rest is worth reading. */
	json_t *alg = json_object_get(out->header, "alg");
	if (!json_is_string(alg)) {
		snprintf(why, whylen, "the header names no algorithm (alg)");
		goto fail;
	}
	const char *an = json_string_value(alg);
	for (size_t i = 0; i < GW_ARRAY_LEN(algs); i++)
		if (!strcmp(an, algs[i].name)) {
			out->alg = algs[i].alg;
			snprintf(out->alg_name, sizeof(out->alg_name), "%s", an);
		}
	if (!out->alg) {
		char shown[24];
		snprintf(shown, sizeof(shown), "%s", an);
		for (char *p = shown; *p; p++)
			if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
				*p = '?';
		if (!strcasecmp(an, "none"))
			snprintf(why, whylen, "algorithm \"none\" is not allowed: tokens must be signed");
		else if (!strncmp(an, "HS", 2))
			snprintf(why, whylen, "algorithm %s (HMAC) is not allowed: only an issuer's public keys are trusted", shown);
		else
			snprintf(why, whylen, "algorithm \"%s\" is not allowed (RS/PS 256-512, ES256, ES384, EdDSA are)", shown);
		goto fail;
	}
	static const char *const refused[] = {"jwk", "jku", "x5u", "x5c"};
	for (size_t i = 0; i < GW_ARRAY_LEN(refused); i++)
		if (json_object_get(out->header, refused[i])) {
			snprintf(why, whylen, "the header carries a key or a key location (%s): only the issuer's configured "
				"keys are trusted", refused[i]);
			goto fail;
		}
	if (json_object_get(out->header, "crit")) {
		snprintf(why, whylen, "the header has crit: no critical extension is understood");
		goto fail;
	}
	json_t *kid = json_object_get(out->header, "kid");
	if (kid) {
		if (!json_is_string(kid) || !*json_string_value(kid) || strlen(json_string_value(kid)) >= sizeof(out->kid)) {
			snprintf(why, whylen, "the header's kid is not a short string");
			goto fail;
		}
		snprintf(out->kid, sizeof(out->kid), "%s", json_string_value(kid));
	}
	out->claims = part_json(d1 + 1, pl, "payload", why, whylen);
	if (!out->claims)
		goto fail;
	out->sig = gw_xmalloc(sl);
	long sgl = gw_b64url_decode(d2 + 1, sl, out->sig, sl);
	if (sgl <= 0) {
		snprintf(why, whylen, "the signature is not base64url");
		goto fail;
	}
	out->sig_len = (size_t)sgl;
	out->signing_input = tok;
	out->signing_len = (size_t)(d2 - tok);
	return 0;
fail:
	gw_jwt_free(out);
	return -1;
}

bool gw_jwt_key_fits(const gw_jwt *j, const gw_pubkey *k, char *why, size_t whylen)
{
	enum gw_pk_type t = gw_pubkey_type(k);
	bool rsa_alg = j->alg >= GW_SIG_RS256 && j->alg <= GW_SIG_PS512;
	bool fits = (rsa_alg && t == GW_PK_RSA) || (j->alg == GW_SIG_ES256 && t == GW_PK_P256) ||
		(j->alg == GW_SIG_ES384 && t == GW_PK_P384) || (j->alg == GW_SIG_EDDSA && t == GW_PK_ED25519);
	if (!fits) {
		static const char *const tn[] = {"?", "RSA", "EC P-256", "EC P-384", "Ed25519"};
		snprintf(why, whylen, "algorithm %s does not fit key \"%s\" (%s)", j->alg_name, j->kid,
			tn[t <= GW_PK_ED25519 ? t : 0]);
		return false;
	}
	if (t == GW_PK_RSA && gw_pubkey_bits(k) < 2048) {
		snprintf(why, whylen, "key \"%s\" is RSA of %d bits; at least 2048 are required", j->kid, gw_pubkey_bits(k));
		return false;
	}
	return true;
}

/* A NumericDate claim: absent (0, *present false), or a finite number; false when malformed. */
static bool num_claim(const json_t *claims, const char *name, int64_t *v, bool *present)
{
	json_t *c = json_object_get(claims, name);
	*present = c != NULL;
	*v = 0;
	if (!c)
		return true;
	if (json_is_integer(c)) {
		*v = (int64_t)json_integer_value(c);
		return true;
	}
	if (json_is_real(c)) {
		double d = json_real_value(c);
		if (!isfinite(d) || d < -1e15 || d > 1e15)
			return false;
		*v = (int64_t)floor(d);
		return true;
	}
	return false;
}

int gw_jwt_check_claims(const gw_jwt *j, const char *audience, int64_t now, int64_t leeway, int64_t *exp,
	char *why, size_t whylen)
{
	json_t *aud = json_object_get(j->claims, "aud");
	bool aud_ok = false;
	if (json_is_string(aud)) {
		aud_ok = !strcmp(json_string_value(aud), audience);
	} else if (json_is_array(aud)) {
		size_t i;
		json_t *a;
		json_array_foreach(aud, i, a)
			if (json_is_string(a) && !strcmp(json_string_value(a), audience))
				aud_ok = true;
	}
	if (!aud_ok) {
		snprintf(why, whylen, "wrong audience: aud does not name \"%s\"", audience);
		return -1;
	}
	int64_t e, nbf, iat;
	bool has_e, has_nbf, has_iat;
	if (!num_claim(j->claims, "exp", &e, &has_e) || !num_claim(j->claims, "nbf", &nbf, &has_nbf) ||
		!num_claim(j->claims, "iat", &iat, &has_iat)) {
		snprintf(why, whylen, "exp, nbf or iat is not a number of seconds");
		return -1;
	}
	if (!has_e) {
		snprintf(why, whylen, "the token has no expiry (exp)");
		return -1;
	}
	if (e + leeway <= now) {
		snprintf(why, whylen, "the token expired %lld s ago", (long long)(now - e));
		return -1;
	}
	if (has_nbf && nbf - leeway > now) {
		snprintf(why, whylen, "the token is not valid yet (nbf is %lld s ahead)", (long long)(nbf - now));
		return -1;
	}
	if (has_iat && iat - leeway > now) {
		snprintf(why, whylen, "the token was issued in the future (iat is %lld s ahead)", (long long)(iat - now));
		return -1;
	}
	*exp = e;
	return 0;
}

const char *gw_jwt_claim_str(const gw_jwt *j, const char *name)
{
	json_t *c = json_object_get(j->claims, name);
	return json_is_string(c) ? json_string_value(c) : NULL;
}
