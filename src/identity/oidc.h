/*
 * OIDC / JWT identities: a JWT presented as a password (or an HTTP bearer
 * token) is checked against the trusted issuers of identity.oidc and turned
 * into a gw_identity, or refused with one line saying why.
 *
 * Owns: the JWS compact form and its checks (jwt.c: size, strict base64url,
 * header and claims as JSON without duplicate keys, the algorithm allow-list,
 * refused headers), JWK sets (jwks.c: parsing keys into net/tls.c's
 * gw_pubkey, fetching over verified HTTPS with libcurl), and the issuers
 * (oidc.c: one key cache per issuer, its fetcher thread, discovery,
 * refetch on an unknown kid, the login decision with the state store).
 *
 *   worker: gw_oidc_verify ──kid known──> signature, claims ──> identity (store)
 *              │ kid unknown, refetch allowed
 *              └──> GW_AUTH_PENDING; the issuer's thread fetches and posts
 *                   w->fn(w->arg) to the waiter's loop; the login tries again
 *
 * A worker never waits on the network: a login whose kid is unknown is parked
 * (its socket unwatched) until the issuer's fetch ends, then decided on what
 * the cache holds — at most one refetch per issuer per 30 s, whatever tokens
 * arrive.
 */
#ifndef GW_IDENTITY_OIDC_H
#define GW_IDENTITY_OIDC_H

#include "core/config.h"
#include "identity/identity.h"
#include "net/loop.h"
#include "net/tls.h"
#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_JWT_MAX 16384          /* bytes; a longer token is refused before it is parsed */
#define GW_JWKS_REFETCH_S 30      /* an unknown kid refetches an issuer's keys at most this often */
#define GW_JWKS_MIN_AGE_S 300     /* Cache-Control max-age is held within these bounds */
#define GW_JWKS_MAX_AGE_S 86400
#define GW_JWKS_KEEP_S 86400      /* keys are used this long after the last successful fetch (IdP outage) */

/* ---- jwt.c: the compact form, pure (no I/O, no clock of its own) ---- */

typedef struct gw_jwt {
	enum gw_sig_alg alg;
	char alg_name[8];
	char kid[256];           /* "" when the header has none */
	struct json_t *header, *claims;   /* jansson objects, owned */
	const char *signing_input;        /* header.payload, inside the caller's token */
	size_t signing_len;
	uint8_t *sig;            /* decoded signature, owned */
	size_t sig_len;
} gw_jwt;

/* Is this password meant as a JWT (it holds a dot, which an API token never does)? Decides nothing. */
bool gw_jwt_shape(const char *s, size_t n);
/*
 * Parse a compact JWS: size, parts, strict base64url, header and payload as
 * JSON objects with no duplicate keys, the algorithm allowed, no crit, no key
 * carried in the token (jwk, jku, x5u, x5c). 0 with *out filled (free with
 * gw_jwt_free), or -1 with why set.
 */
int gw_jwt_parse(const char *tok, size_t n, gw_jwt *out, char *why, size_t whylen);
void gw_jwt_free(gw_jwt *j);
/* Does key k fit the token's algorithm (type, RSA >= 2048 bits)? false with why set. */
bool gw_jwt_key_fits(const gw_jwt *j, const gw_pubkey *k, char *why, size_t whylen);
/*
 * The claims of an already verified token: iss was matched by the caller;
 * aud (a string or an array) must hold audience; exp is required; exp, nbf and
 * iat are checked against now with leeway seconds. 0, or -1 with why set.
 * *exp is set.
 */
int gw_jwt_check_claims(const gw_jwt *j, const char *audience, int64_t now, int64_t leeway, int64_t *exp,
	char *why, size_t whylen);
/* The string value of claim name, or NULL. */
const char *gw_jwt_claim_str(const gw_jwt *j, const char *name);
/* Strict base64url (no padding, canonical last character) into out; length or -1. */
long gw_b64url_decode(const char *s, size_t n, uint8_t *out, size_t outcap);

/* ---- jwks.c: JWK sets ---- */

typedef struct gw_jwks gw_jwks;
/*
 * Parse a JWK set ({"keys":[...]}). Keys that cannot verify a signature here
 * (use other than sig, key_ops without verify, unknown kty or curve, broken
 * parameters) are skipped and counted in *skipped. NULL with why set when the
 * document is not a JWK set or holds no usable key: such an answer never
 * replaces keys that work.
 */
gw_jwks *gw_jwks_parse(const char *json, size_t n, int *skipped, char *why, size_t whylen);
/* The key for kid ("" : the set's only key), also matching alg when the JWK names one. NULL none. */
const gw_pubkey *gw_jwks_find(const gw_jwks *ks, const char *kid, const char *alg);
size_t gw_jwks_count(const gw_jwks *ks);
gw_jwks *gw_jwks_ref(gw_jwks *ks);
void gw_jwks_unref(gw_jwks *ks);

/*
 * GET url over verified HTTPS (ca_file NULL: the system's CAs), at most max
 * bytes, no redirects, within timeout_s; *max_age from Cache-Control (-1
 * none). stop (may be NULL) aborts when it becomes true. Returns the body
 * (caller frees) or NULL with why set.
 */
char *gw_https_get(const char *url, const char *ca_file, size_t max, long timeout_s, const volatile bool *stop,
	size_t *len, long *max_age, char *why, size_t whylen);

/* ---- oidc.c: the issuers ---- */

typedef struct gw_oidc gw_oidc;

/* Where a parked login is woken: fn(arg) posted to loop. */
typedef struct gw_oidc_waiter {
	gw_loop *loop;
	gw_task_fn fn;
	void *arg;
} gw_oidc_waiter;

/*
 * The issuers of cfg->oidc: jwks_file issuers read now (an unreadable or
 * empty file is an error), the others fetched by a thread each, starting now.
 * NULL with err set. With no issuers configured returns an empty gw_oidc.
 */
gw_oidc *gw_oidc_new(const gw_config *cfg, char *err, size_t errlen);
/* Stops the fetchers (an HTTP transfer in progress is aborted) and frees. */
void gw_oidc_free(gw_oidc *o);
/* SIGHUP: read the jwks_file issuers again (a file that fails keeps the keys it had). */
void gw_oidc_reload_files(gw_oidc *o);
size_t gw_oidc_count(const gw_oidc *o);

/* What a verified JWT says. */
typedef struct gw_jwt_identity {
	int issuer;              /* index in cfg->oidc */
	char name[128];          /* identity_prefix + identity_claim */
	char groups[512];        /* from groups_claim (comma-separated), when configured */
	bool has_groups;
	int64_t exp;             /* unix seconds */
} gw_jwt_identity;

/*
 * Check a JWT. GW_AUTH_OK with *out filled; GW_AUTH_BAD_TOKEN / _EXPIRED with
 * why set; GW_AUTH_PENDING when its key is not in the cache and a fetch of the
 * issuer's keys is under way: w (a worker's loop) is woken when it ends, and
 * the caller tries again. w NULL (the HTTP thread): wait for that fetch here,
 * up to 15 s, instead.
 */
enum gw_auth_result gw_oidc_verify(gw_oidc *o, const char *tok, size_t n, const gw_oidc_waiter *w,
	gw_jwt_identity *out, char *why, size_t whylen);

/*
 * The login decision for a JWT (worker or HTTP thread): gw_oidc_verify, then
 * the identity in the store — made (kind from the issuer) when it is unknown
 * and the issuer has auto_create, its groups refreshed from groups_claim when
 * auto_create is on; refused when unknown, disabled, a relay, or not user
 * (user NULL: any). *id filled on GW_AUTH_OK; session_until_us is set from
 * exp when cfg->session_follows_token_expiry. why names the reason; issuer
 * (>= 128 bytes, may be NULL) the issuer when the token named a trusted one.
 */
enum gw_auth_result gw_identity_verify_jwt(gw_oidc *o, gw_store *st, const char *tok, size_t n, const char *user,
	const gw_oidc_waiter *w, gw_identity *id, char *why, size_t whylen, char *issuer);

#endif
