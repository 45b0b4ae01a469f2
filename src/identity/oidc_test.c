/*
 * Unit tests of identity/'s JWT side: strict base64url, the parser's rules,
 * JWK sets, every allowed algorithm verified and every token of the forged
 * table refused through gw_oidc_verify (keys and tokens from jwt_vectors.h,
 * made by jwt_forge.py with Python's cryptography), the config keys, and
 * the cost of one verification per algorithm.
 */
#include "../../tests/unit/unit.h"
#include "core/config.h"
#include "core/util.h"
#include "identity/oidc.h"
#include "jwt_vectors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

GW_TEST(jwt_b64url_strict)
{
	uint8_t out[16];
	CHECK(gw_b64url_decode("YWJj", 4, out, sizeof(out)) == 3 && !memcmp(out, "abc", 3));
	CHECK(gw_b64url_decode("YWI", 3, out, sizeof(out)) == 2 && !memcmp(out, "ab", 2));
	CHECK(gw_b64url_decode("YQ", 2, out, sizeof(out)) == 1 && out[0] == 'a');
	CHECK(gw_b64url_decode("YR", 2, out, sizeof(out)) == -1);    /* unused bits set: not canonical */
	CHECK(gw_b64url_decode("YWI=", 4, out, sizeof(out)) == -1);  /* padding */
	CHECK(gw_b64url_decode("Y", 1, out, sizeof(out)) == -1);     /* impossible length */
	CHECK(gw_b64url_decode("+/8A", 4, out, sizeof(out)) == -1);  /* the standard alphabet */
	CHECK(gw_b64url_decode("-_8A", 4, out, sizeof(out)) == 3 && out[0] == 0xfb && out[1] == 0xff);
	CHECK(gw_b64url_decode("YWJj", 4, out, 2) == -1);            /* does not fit */
	CHECK(gw_jwt_shape("a.b.c", 5));
	CHECK(gw_jwt_shape("a.b.", 4));
	CHECK(!gw_jwt_shape("pgm_0123456789ab_abc", 20));
	CHECK(gw_jwt_shape("a.b.c.d", 7));
	CHECK(!gw_jwt_shape("pgm_0123456789ab_abcdef", 23));
}

GW_TEST(jwt_parse_rules)
{
	gw_jwt j;
	char why[300];
	/* the header decides first: {"alg":"HS256"} */
	const char *hs = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA";
	CHECK(gw_jwt_parse(hs, strlen(hs), &j, why, sizeof(why)) < 0 && strstr(why, "HMAC"));
	/* {"alg":"none"} */
	const char *none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.AAAA";
	CHECK(gw_jwt_parse(none, strlen(none), &j, why, sizeof(why)) < 0 && strstr(why, "none"));
	/* {"alg":"RS256","kid":"k"} . {"sub":"x"} . sig */
	const char *ok = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJ4In0.AAAA";
	CHECK(gw_jwt_parse(ok, strlen(ok), &j, why, sizeof(why)) == 0);
	CHECK(j.alg == GW_SIG_RS256 && !strcmp(j.kid, "k") && j.sig_len == 3 && !strcmp(gw_jwt_claim_str(&j, "sub"), "x"));
	CHECK(j.signing_len == strlen(ok) - 5);
	gw_jwt_free(&j);
	/* claims: audience as a string or in an array; exp required; leeway */
	const char *cl = "eyJhbGciOiJFUzI1NiJ9.eyJhdWQiOlsiYSIsInBnbW9hdCJdLCJleHAiOjEwMDAsIm5iZiI6OTAwfQ.AAAA";
	CHECK(gw_jwt_parse(cl, strlen(cl), &j, why, sizeof(why)) == 0);
	int64_t exp;
	CHECK(gw_jwt_check_claims(&j, "pgmoat", 950, 0, &exp, why, sizeof(why)) == 0 && exp == 1000);
	CHECK(gw_jwt_check_claims(&j, "other", 950, 0, &exp, why, sizeof(why)) < 0 && strstr(why, "audience"));
	CHECK(gw_jwt_check_claims(&j, "pgmoat", 1000, 0, &exp, why, sizeof(why)) < 0 && strstr(why, "expired"));
	CHECK(gw_jwt_check_claims(&j, "pgmoat", 1050, 60, &exp, why, sizeof(why)) == 0);
	CHECK(gw_jwt_check_claims(&j, "pgmoat", 850, 0, &exp, why, sizeof(why)) < 0 && strstr(why, "not valid yet"));
	CHECK(gw_jwt_check_claims(&j, "pgmoat", 850, 60, &exp, why, sizeof(why)) == 0);
	gw_jwt_free(&j);
	/* over 16 kB: refused by size, before anything is decoded */
	char *big = malloc(GW_JWT_MAX + 2);
	memset(big, 'A', GW_JWT_MAX + 1);
	big[10] = big[20] = '.';
	CHECK(gw_jwt_parse(big, GW_JWT_MAX + 1, &j, why, sizeof(why)) < 0 && strstr(why, "over"));
	free(big);
}

GW_TEST(jwks_parse_rules)
{
	int skipped;
	char why[300];
	CHECK(!gw_jwks_parse("{}", 2, &skipped, why, sizeof(why)));
	CHECK(!gw_jwks_parse("{\"keys\":[]}", 11, &skipped, why, sizeof(why)) && strstr(why, "no usable"));
	CHECK(!gw_jwks_parse("not json", 8, &skipped, why, sizeof(why)));
	const char *dup = "{\"keys\":[],\"keys\":[]}";
	CHECK(!gw_jwks_parse(dup, strlen(dup), &skipped, why, sizeof(why)));
	gw_jwks *ks = gw_jwks_parse(jwtv_jwks, strlen(jwtv_jwks), &skipped, why, sizeof(why));
	CHECK(ks && gw_jwks_count(ks) == 5 && skipped == 0);
	CHECK(gw_jwks_find(ks, "p256", "ES256") && !gw_jwks_find(ks, "nope", "ES256") && !gw_jwks_find(ks, "", "ES256"));
	CHECK(gw_pubkey_type(gw_jwks_find(ks, "rsa", "RS256")) == GW_PK_RSA);
	CHECK(gw_pubkey_bits(gw_jwks_find(ks, "rsa1024", "RS256")) == 1024);
	gw_jwks_unref(ks);
	/* unusable keys are skipped, not fatal: private material, enc keys, unknown curves, points off the curve */
	json_error_t je;
	json_t *doc = json_loads(jwtv_jwks, 0, &je);
	json_t *keys = json_object_get(doc, "keys");
	json_t *p256 = json_deep_copy(json_array_get(keys, 1));
	json_object_set_new(p256, "kid", json_string("offcurve"));
	const char *x = json_string_value(json_object_get(p256, "x"));
	char *bad = gw_xstrdup(x);
	bad[5] = bad[5] == 'A' ? 'B' : 'A';
	json_object_set_new(p256, "x", json_string(bad));
	free(bad);
	json_array_append_new(keys, p256);
	json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "kid", "k1", "crv", "P-521", "x", "AA", "y", "AA"));
	json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "oct", "kid", "k2", "k", "c2VjcmV0"));
	json_t *enc = json_deep_copy(json_array_get(keys, 0));
	json_object_set_new(enc, "use", json_string("enc"));
	json_object_set_new(enc, "kid", json_string("enc"));
	json_array_append_new(keys, enc);
	json_t *priv = json_deep_copy(json_array_get(keys, 3));
	json_object_set_new(priv, "d", json_string("AAAA"));
	json_object_set_new(priv, "kid", json_string("priv"));
	json_array_append_new(keys, priv);
	json_t *twice = json_deep_copy(json_array_get(keys, 2));
	json_array_append_new(keys, twice); /* kid p384 again */
	char *text = json_dumps(doc, 0);
	ks = gw_jwks_parse(text, strlen(text), &skipped, why, sizeof(why));
	CHECK(ks && gw_jwks_count(ks) == 5 && skipped == 6);
	CHECK(!gw_jwks_find(ks, "offcurve", "ES256") && !gw_jwks_find(ks, "enc", "RS256") && !gw_jwks_find(ks, "priv", "EdDSA"));
	gw_jwks_unref(ks);
	free(text);
	json_decref(doc);
}

/* A config with one issuer whose keys are jwtv_jwks in a file. */
static gw_config *vec_config(char *path, size_t pathlen)
{
	snprintf(path, pathlen, "/tmp/pgmoat-jwks-XXXXXX");
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, jwtv_jwks, strlen(jwtv_jwks)) == (ssize_t)strlen(jwtv_jwks));
	close(fd);
	gw_config *cfg = gw_xcalloc(1, sizeof(*cfg));
	cfg->session_follows_token_expiry = true;
	cfg->n_oidc = 1;
	cfg->oidc = gw_xcalloc(1, sizeof(gw_oidc_issuer_cfg));
	gw_oidc_issuer_cfg *o = cfg->oidc;
	o->issuer = gw_xstrdup(JWTV_ISSUER);
	o->audience = gw_xstrdup(JWTV_AUDIENCE);
	o->jwks_file = gw_xstrdup(path);
	o->identity_claim = gw_xstrdup("sub");
	o->kind = gw_xstrdup("agent");
	o->identity_prefix = gw_xstrdup("");
	o->leeway_us = 60 * 1000000ull;
	return cfg;
}

GW_TEST(jwt_valid_and_forged_tokens)
{
	char path[64], why[400];
	gw_config *cfg = vec_config(path, sizeof(path));
	gw_oidc *o = gw_oidc_new(cfg, why, sizeof(why));
	CHECK(o);
	gw_jwt_identity ji;
	for (size_t i = 0; i < GW_ARRAY_LEN(jwtv_valid); i++) {
		enum gw_auth_result r = gw_oidc_verify(o, jwtv_valid[i].token, strlen(jwtv_valid[i].token), NULL, &ji, why,
			sizeof(why));
		if (r != GW_AUTH_OK)
			fprintf(stderr, "     %s refused: %s\n", jwtv_valid[i].alg, why);
		CHECK(r == GW_AUTH_OK && !strcmp(ji.name, JWTV_SUB) && ji.exp == 4102444800);
	}
	for (size_t i = 0; i < GW_ARRAY_LEN(jwtv_forged); i++) {
		why[0] = 0;
		enum gw_auth_result r = gw_oidc_verify(o, jwtv_forged[i].token, strlen(jwtv_forged[i].token), NULL, &ji, why,
			sizeof(why));
		printf("     %-32s -> %s\n", jwtv_forged[i].name, why);
		if (r == GW_AUTH_OK || r == GW_AUTH_PENDING || !*why || strchr(why, '\n'))
			fprintf(stderr, "     forged token \"%s\" not refused properly (%d: %s)\n", jwtv_forged[i].name, r, why);
		CHECK(r == GW_AUTH_BAD_TOKEN || r == GW_AUTH_EXPIRED);
		CHECK(*why && !strchr(why, '\n'));
	}
	CHECK(GW_ARRAY_LEN(jwtv_forged) >= 25);
	/* 1 MB: refused by size */
	size_t n = 1024 * 1024;
	char *big = malloc(n + 1);
	memset(big, 'A', n);
	big[100] = big[n - 100] = '.';
	big[n] = 0;
	CHECK(gw_oidc_verify(o, big, n, NULL, &ji, why, sizeof(why)) == GW_AUTH_BAD_TOKEN && strstr(why, "over 16384"));
	free(big);
	/* the file read again (SIGHUP); an empty set in its place keeps the keys that work */
	FILE *f = fopen(path, "w");
	fputs("{\"keys\":[]}", f);
	fclose(f);
	gw_oidc_reload_files(o);
	CHECK(gw_oidc_verify(o, jwtv_valid[0].token, strlen(jwtv_valid[0].token), NULL, &ji, why, sizeof(why)) == GW_AUTH_OK);
	gw_oidc_free(o);
	/* a file that holds no key is an error at start */
	o = gw_oidc_new(cfg, why, sizeof(why));
	CHECK(!o && strstr(why, "no usable"));
	unlink(path);
	o = gw_oidc_new(cfg, why, sizeof(why));
	CHECK(!o && strstr(why, "cannot open"));
	gw_config_free(cfg);
}

GW_TEST(jwt_identity_in_store)
{
	char path[64], why[400], db[] = "/tmp/pgmoat-store-XXXXXX";
	gw_config *cfg = vec_config(path, sizeof(path));
	cfg->oidc[0].identity_prefix[0] = 0;
	free(cfg->oidc[0].identity_prefix);
	cfg->oidc[0].identity_prefix = gw_xstrdup("t:");
	gw_oidc *o = gw_oidc_new(cfg, why, sizeof(why));
	CHECK(o);
	int fd = mkstemp(db);
	close(fd);
	gw_store *st = gw_store_open(db, why, sizeof(why));
	CHECK(st);
	const char *tok = jwtv_valid[0].token;
	gw_identity id;
	/* unknown, no auto_create: 28000 */
	CHECK(gw_identity_verify_jwt(o, st, tok, strlen(tok), "t:alice", NULL, &id, why, sizeof(why), NULL) ==
		GW_AUTH_UNKNOWN_IDENTITY && strstr(why, "auto_create"));
	cfg->oidc[0].auto_create = true;
	cfg->oidc[0].groups_claim = gw_xstrdup("groups");
	CHECK(gw_identity_verify_jwt(o, st, tok, strlen(tok), "t:alice", NULL, &id, why, sizeof(why), NULL) == GW_AUTH_OK);
	CHECK(!strcmp(id.name, "t:alice") && !strcmp(id.kind, "agent") && id.session_until_us == 4102444800ull * 1000000u);
	gw_identity_rec ir;
	CHECK(gw_store_identity_get(st, "t:alice", &ir) == 0 && !strcmp(ir.kind, "agent"));
	CHECK(gw_identity_verify_jwt(o, st, tok, strlen(tok), "bob", NULL, &id, why, sizeof(why), NULL) == GW_AUTH_MISMATCH);
	CHECK(gw_store_identity_set_disabled(st, "t:alice", true) == 0);
	CHECK(gw_identity_verify_jwt(o, st, tok, strlen(tok), "t:alice", NULL, &id, why, sizeof(why), NULL) == GW_AUTH_DISABLED);
	cfg->session_follows_token_expiry = false;
	CHECK(gw_store_identity_set_disabled(st, "t:alice", false) == 0);
	CHECK(gw_identity_verify_jwt(o, st, tok, strlen(tok), NULL, NULL, &id, why, sizeof(why), NULL) == GW_AUTH_OK);
	CHECK(id.session_until_us == 0);
	gw_store_close(st);
	gw_oidc_free(o);
	gw_config_free(cfg);
	unlink(path);
	unlink(db);
}

/* The cost of one verification per algorithm (parse, key lookup, signature, claims). */
GW_TEST(jwt_verify_cost)
{
	char path[64], why[400];
	gw_config *cfg = vec_config(path, sizeof(path));
	gw_oidc *o = gw_oidc_new(cfg, why, sizeof(why));
	CHECK(o);
	for (size_t i = 0; i < GW_ARRAY_LEN(jwtv_valid); i++) {
		gw_jwt_identity ji;
		const char *t = jwtv_valid[i].token;
		int rounds = 300;
		uint64_t t0 = gw_mono_us();
		for (int k = 0; k < rounds; k++)
			CHECK(gw_oidc_verify(o, t, strlen(t), NULL, &ji, why, sizeof(why)) == GW_AUTH_OK);
		double us = (double)(gw_mono_us() - t0) / rounds;
		printf("     verify %-6s %7.1f us\n", jwtv_valid[i].alg, us);
		CHECK(us < 5000);
	}
	gw_oidc_free(o);
	gw_config_free(cfg);
	unlink(path);
}

static char *write_cfg(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/pgmoat-cfg-XXXXXX");
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

GW_TEST(config_identity_providers)
{
	char *errors = NULL;
	char *p = write_cfg(
		"state: \"sqlite:/tmp/x.db\"\n"
		"tls: {allow_plaintext_loopback: true}\n"
		"identity:\n"
		"  session_follows_token_expiry: false\n"
		"  oidc:\n"
		"    - {issuer: https://login.example.com, audience: pgmoat, kind: human, groups_claim: groups,\n"
		"       identity_claim: email, auto_create: true, leeway: 30s, client_id: pgmoat-cli, ca: /etc/ca.crt}\n"
		"    - {issuer: https://k8s.example, audience: pgmoat, identity_prefix: \"k8s:\", jwks_file: /etc/k.json}\n");
	gw_config *cfg = gw_config_load(p, &errors);
	if (!cfg)
		fprintf(stderr, "%s", errors);
	CHECK(cfg && cfg->n_oidc == 2 && !cfg->session_follows_token_expiry);
	CHECK(!strcmp(cfg->oidc[0].identity_claim, "email") && cfg->oidc[0].auto_create && cfg->oidc[0].leeway_us == 30000000);
	CHECK(!strcmp(cfg->oidc[0].kind, "human") && !strcmp(cfg->oidc[0].ca, "/etc/ca.crt") && !cfg->oidc[0].jwks_url);
	CHECK(!strcmp(cfg->oidc[1].identity_claim, "sub") && !strcmp(cfg->oidc[1].kind, "agent") &&
		cfg->oidc[1].leeway_us == 60000000 && !strcmp(cfg->oidc[1].identity_prefix, "k8s:"));
	gw_config_free(cfg);
	unlink(p);
	p = write_cfg(
		"state: \"sqlite:/tmp/x.db\"\n"
		"tls: {allow_plaintext_loopback: true, crl: /etc/crl.pem}\n"
		"identity:\n"
		"  mtls: {identity_from: spiffe}\n"
		"  oidc:\n"
		"    - {issuer: https://a.example}\n"
		"    - {issuer: https://b.example, audience: x, jwks_url: http://b.example/jwks}\n"
		"    - {issuer: plain-name, audience: x}\n"
		"    - {issuer: https://c.example, audience: x, kind: relay, identity_prefix: \"a b\", colour: blue}\n");
	cfg = gw_config_load(p, &errors);
	CHECK(!cfg && errors);
	fprintf(stderr, "%s", errors);
	CHECK(strstr(errors, ":6: identity.oidc: issuer 'https://a.example' needs audience"));
	CHECK(strstr(errors, ":7: identity.oidc: issuer 'https://b.example': jwks_url must be an https:// URL"));
	CHECK(strstr(errors, ":8: identity.oidc: issuer 'plain-name': its keys would be discovered"));
	CHECK(strstr(errors, ":9: unknown key 'identity.oidc.colour'"));
	CHECK(strstr(errors, "kind must be agent or human") && strstr(errors, "identity_prefix may use"));
	CHECK(strstr(errors, ":4: identity.mtls: identity_from: spiffe needs trust_domain"));
	CHECK(strstr(errors, "tls.crl: revocation lists are checked for client certificates; set tls.client_ca"));
	CHECK(strstr(errors, "identity.mtls: client certificates need tls.client_ca"));
	free(errors);
	unlink(p);
}
