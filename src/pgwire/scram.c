/*
 * SCRAM-SHA-256 client; see scram.h.
 */
#include "pgwire/scram.h"
#include "core/util.h"
#include "net/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_scram_client_first(gw_scram_client *s, char *out, size_t outlen)
{
	uint8_t raw[18];
	gw_random_bytes(raw, sizeof(raw));
	gw_b64_encode(raw, sizeof(raw), s->nonce);
	snprintf(s->client_first_bare, sizeof(s->client_first_bare), "n=,r=%s", s->nonce);
	snprintf(out, outlen, "n,,%s", s->client_first_bare);
}

/* Find "k=" attribute in a comma-separated SCRAM message. */
static bool attr(const char *msg, size_t n, char k, const char **val, size_t *vlen)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && msg[j] != ',')
			j++;
		if (j - i >= 2 && msg[i] == k && msg[i + 1] == '=') {
			*val = msg + i + 2;
			*vlen = j - i - 2;
			return true;
		}
		i = j + 1;
	}
	return false;
}

int gw_scram_client_final(gw_scram_client *s, const char *password, const char *server_first, size_t n,
	gw_scram_cache *cache, char **out, const char **why)
{
	const char *r, *salt64, *iter;
	size_t rl, sl, il;
	if (!attr(server_first, n, 'r', &r, &rl) || !attr(server_first, n, 's', &salt64, &sl) ||
		!attr(server_first, n, 'i', &iter, &il)) {
		*why = "malformed SCRAM server-first message";
		return -1;
	}
	size_t nl = strlen(s->nonce);
	if (rl <= nl || memcmp(r, s->nonce, nl) != 0) {
		*why = "SCRAM server nonce does not extend the client nonce";
		return -1;
	}
	uint8_t salt[64];
	long saltlen = gw_b64_decode(salt64, sl, salt, sizeof(salt));
	char itbuf[16];
	if (saltlen <= 0 || il == 0 || il >= sizeof(itbuf)) {
		*why = "malformed SCRAM salt or iteration count";
		return -1;
	}
	memcpy(itbuf, iter, il);
	itbuf[il] = 0;
	int iterations = atoi(itbuf);
	if (iterations < 1 || iterations > 10000000) {
		*why = "SCRAM iteration count out of range";
		return -1;
	}
	uint8_t salted[32];
	if (cache && cache->valid && cache->iterations == iterations && cache->saltlen == (size_t)saltlen &&
		memcmp(cache->salt, salt, (size_t)saltlen) == 0) {
		memcpy(salted, cache->salted, 32);
	} else {
		gw_pbkdf2_sha256(password, strlen(password), salt, (size_t)saltlen, iterations, salted);
		if (cache) {
			memcpy(cache->salt, salt, (size_t)saltlen);
			cache->saltlen = (size_t)saltlen;
			cache->iterations = iterations;
			memcpy(cache->salted, salted, 32);
			cache->valid = true;
		}
	}
	uint8_t client_key[32], stored_key[32], server_key[32], client_sig[32], proof[32];
	gw_hmac_sha256(salted, 32, "Client Key", 10, client_key);
	gw_sha256(client_key, 32, stored_key);
	gw_hmac_sha256(salted, 32, "Server Key", 10, server_key);

	/* client-final-without-proof: c=biws (base64 of "n,,"), r=<full nonce> */
	char *without_proof = gw_xasprintf("c=biws,r=%.*s", (int)rl, r);
	free(s->auth_message);
	s->auth_message = gw_xasprintf("%s,%.*s,%s", s->client_first_bare, (int)n, server_first, without_proof);
	size_t al = strlen(s->auth_message);
	gw_hmac_sha256(stored_key, 32, s->auth_message, al, client_sig);
	for (int i = 0; i < 32; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	gw_hmac_sha256(server_key, 32, s->auth_message, al, s->server_signature);
	char proof64[64];
	gw_b64_encode(proof, 32, proof64);
	*out = gw_xasprintf("%s,p=%s", without_proof, proof64);
	free(without_proof);
	return 0;
}

int gw_scram_client_verify(gw_scram_client *s, const char *server_final, size_t n, const char **why)
{
	const char *v;
	size_t vl;
	if (attr(server_final, n, 'e', &v, &vl)) {
		*why = "the server rejected the SCRAM exchange";
		return -1;
	}
	uint8_t sig[64];
	if (!attr(server_final, n, 'v', &v, &vl) || gw_b64_decode(v, vl, sig, sizeof(sig)) != 32 ||
		!gw_ct_equal(sig, s->server_signature, 32)) {
		*why = "the server's SCRAM signature does not match (is it the real server?)";
		return -1;
	}
	return 0;
}

void gw_scram_client_free(gw_scram_client *s)
{
	free(s->auth_message);
	s->auth_message = NULL;
}
