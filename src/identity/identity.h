/*
 * Identity: who is this client? Turns a presented credential into a named
 * gw_identity, or a refusal with the SQLSTATE SPEC.md gives it.
 *
 * Owns: the API token format and its verification, the identity kinds, the
 * per-source rate limit of failed logins, and the admin test. Tokens look
 * like  pgm_<id>_<secret>  : the id (12 hex) tells tokens apart in lists,
 * the secret (43 base64url chars, 256 bits) is only ever stored hashed and
 * compared in constant time. JWTs of trusted issuers are identity/oidc.h's;
 * client certificates (mutual TLS) are mapped to an identity here.
 */
#ifndef GW_IDENTITY_IDENTITY_H
#define GW_IDENTITY_IDENTITY_H

#include "core/config.h"
#include "net/tls.h"
#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct gw_identity {
	char name[128];
	char kind[16];
	char groups[512];
	char token_id[32];
	int64_t expires_at;   /* credential expiry, unix seconds; 0 none */
	uint64_t session_until_us; /* the session ends (57P01) at this wall-clock time: the JWT's exp or the
	                            * certificate's notAfter under session_follows_token_expiry; 0 never */
} gw_identity;

enum gw_auth_result {
	GW_AUTH_OK = 0,
	GW_AUTH_BAD_TOKEN,      /* 28P01: malformed, unknown, wrong secret */
	GW_AUTH_EXPIRED,        /* 28P01 */
	GW_AUTH_REVOKED,        /* 28P01 */
	GW_AUTH_UNKNOWN_IDENTITY, /* 28000 */
	GW_AUTH_DISABLED,       /* 28000 */
	GW_AUTH_MISMATCH,       /* 28000: user differs from the token's identity */
	GW_AUTH_STORE_ERROR,    /* 58030 */
	GW_AUTH_PENDING,        /* not decided yet: the issuer's keys are being fetched (oidc.h) */
};

/* SQLSTATE and a one-line reason for a refusal (never naming a secret). */
const char *gw_auth_sqlstate(enum gw_auth_result r);
const char *gw_auth_reason(enum gw_auth_result r);

/*
 * Verify a presented password as an API token for user (NULL: any user).
 * Fills *out on GW_AUTH_OK.
 */
enum gw_auth_result gw_identity_verify_token(gw_store *st, const char *token, const char *user, gw_identity *out);

/*
 * Make a new token for identity; writes the full token (shown once) into
 * token_out (>= 80 bytes) and the record into *rec. Returns 0 or -2.
 */
int gw_identity_issue_token(gw_store *st, const char *identity, uint64_t ttl_us, char *token_out,
	gw_token_rec *rec, char *err, size_t errlen);

/*
 * A client certificate (mutual TLS) as an identity: the certificate must be
 * verified (tls.client_ca, tls.crl) and within its validity at now; the name
 * is its CN, or with identity.mtls.identity_from: spiffe the path of its one
 * spiffe://<trust_domain>/<path> URI SAN with '/' written ':'
 * (spiffe://example.org/ns/prod/sa/etl: ns:prod:sa:etl). The identity must exist, be enabled,
 * not be a relay, and equal user. why says what failed (one line).
 */
enum gw_auth_result gw_identity_from_cert(const gw_config *cfg, gw_store *st, const gw_tls_peer *peer,
	const char *user, int64_t now, gw_identity *out, char *why, size_t whylen);

/* True when name has letters, digits and -_.@: only, 1..127 long. */
bool gw_identity_name_ok(const char *name);
bool gw_identity_kind_ok(const char *kind);
/* Is this identity listed in admins (group:G / identity:N)? */
bool gw_identity_is_admin(const gw_identity *id, char *const *admins, size_t n);
bool gw_identity_in_group(const gw_identity *id, const char *group);

/* Failed-login rate limit per source address (thread-safe). */
typedef struct gw_ratelimit gw_ratelimit;
gw_ratelimit *gw_ratelimit_new(int per_minute);
void gw_ratelimit_free(gw_ratelimit *rl);
bool gw_ratelimit_blocked(gw_ratelimit *rl, const struct sockaddr_storage *addr);
void gw_ratelimit_fail(gw_ratelimit *rl, const struct sockaddr_storage *addr);

#endif
