/*
 * API tokens, identity checks and the failed-login rate limit; see identity.h.
 */
#include "identity/identity.h"
#include "core/util.h"
#include "net/tls.h"

#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *gw_auth_sqlstate(enum gw_auth_result r)
{
	switch (r) {
	case GW_AUTH_OK: return "00000";
	case GW_AUTH_BAD_TOKEN:
	case GW_AUTH_EXPIRED:
	case GW_AUTH_REVOKED: return "28P01";
	case GW_AUTH_UNKNOWN_IDENTITY:
	case GW_AUTH_DISABLED:
	case GW_AUTH_MISMATCH: return "28000";
	case GW_AUTH_STORE_ERROR: return "58030";
	case GW_AUTH_PENDING: return "28P01";
	}
	return "28000";
}

const char *gw_auth_reason(enum gw_auth_result r)
{
	switch (r) {
	case GW_AUTH_OK: return "ok";
	case GW_AUTH_BAD_TOKEN: return "password authentication failed: the token is not valid";
	case GW_AUTH_EXPIRED: return "password authentication failed: the token has expired";
	case GW_AUTH_REVOKED: return "password authentication failed: the token was revoked";
	case GW_AUTH_UNKNOWN_IDENTITY: return "the token's identity does not exist";
	case GW_AUTH_DISABLED: return "the identity is disabled";
	case GW_AUTH_MISMATCH: return "user does not match the token's identity";
	case GW_AUTH_STORE_ERROR: return "the state store cannot answer";
	case GW_AUTH_PENDING: return "the issuer's keys could not be fetched in time";
	}
	return "refused";
}

enum gw_auth_result gw_identity_verify_token(gw_store *st, const char *token, const char *user, gw_identity *out)
{
	/* pgm_<12 hex>_<43 b64url> */
	size_t n = strlen(token);
	if (n != 4 + 12 + 1 + 43 || strncmp(token, "pgm_", 4) != 0 || token[16] != '_')
		return GW_AUTH_BAD_TOKEN;
	char id[13];
	memcpy(id, token + 4, 12);
	id[12] = 0;
	for (int i = 0; i < 12; i++)
		if (!isxdigit((unsigned char)id[i]))
			return GW_AUTH_BAD_TOKEN;
	uint8_t h[32];
	gw_sha256(token + 17, 43, h);
	gw_token_rec rec;
	int rc = gw_store_token_get(st, id, &rec);
	if (rc == -2)
		return GW_AUTH_STORE_ERROR;
	if (rc != 0 || !gw_ct_equal(h, rec.hash, 32))
		return GW_AUTH_BAD_TOKEN;
	if (rec.revoked_at)
		return GW_AUTH_REVOKED;
	int64_t now = (int64_t)time(NULL);
	if (rec.expires_at && rec.expires_at <= now)
		return GW_AUTH_EXPIRED;
	gw_identity_rec ir;
	rc = gw_store_identity_get(st, rec.identity, &ir);
	if (rc == -2)
		return GW_AUTH_STORE_ERROR;
	if (rc != 0)
		return GW_AUTH_UNKNOWN_IDENTITY;
	if (ir.disabled)
		return GW_AUTH_DISABLED;
	if (user && strcmp(user, ir.name) != 0)
		return GW_AUTH_MISMATCH;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", ir.name);
	snprintf(out->kind, sizeof(out->kind), "%s", ir.kind);
	snprintf(out->groups, sizeof(out->groups), "%s", ir.groups);
	snprintf(out->token_id, sizeof(out->token_id), "%s", rec.id);
	out->expires_at = rec.expires_at;
	return GW_AUTH_OK;
}

int gw_identity_issue_token(gw_store *st, const char *identity, uint64_t ttl_us, char *token_out,
	gw_token_rec *rec, char *err, size_t errlen)
{
	uint8_t idraw[6], secret[32];
	gw_random_bytes(idraw, sizeof(idraw));
	gw_random_bytes(secret, sizeof(secret));
	memset(rec, 0, sizeof(*rec));
	gw_hex(idraw, sizeof(idraw), rec->id);
	char sec64[64];
	gw_b64url(secret, sizeof(secret), sec64);
	snprintf(token_out, 80, "pgm_%.12s_%.43s", rec->id, sec64);
	gw_sha256(sec64, strlen(sec64), rec->hash);
	snprintf(rec->identity, sizeof(rec->identity), "%s", identity);
	rec->created_at = (int64_t)time(NULL);
	rec->expires_at = ttl_us ? rec->created_at + (int64_t)(ttl_us / 1000000u) : 0;
	memset(secret, 0, sizeof(secret));
	int rc = gw_store_token_add(st, rec, err, errlen);
	if (rc)
		memset(token_out, 0, 80);
	return rc;
}

enum gw_auth_result gw_identity_from_cert(const gw_config *cfg, gw_store *st, const gw_tls_peer *peer,
	const char *user, int64_t now, gw_identity *out, char *why, size_t whylen)
{
	if (!peer->verified) {
		snprintf(why, whylen, "client certificate refused: %s", peer->why);
		return GW_AUTH_BAD_TOKEN;
	}
	/* OpenSSL checked the dates at the handshake; a resumed TLS session did not, so again here. */
	if (peer->not_after && peer->not_after <= now) {
		snprintf(why, whylen, "client certificate refused: certificate has expired");
		return GW_AUTH_EXPIRED;
	}
	if (peer->not_before > now) {
		snprintf(why, whylen, "client certificate refused: certificate is not yet valid");
		return GW_AUTH_BAD_TOKEN;
	}
	char name[256];
	if (cfg->mtls_from == GW_MTLS_SPIFFE) {
		/* A SPIFFE X.509-SVID has exactly one URI SAN: spiffe://<trust domain>/<path>. */
		const char *td = cfg->mtls_trust_domain;
		size_t tdl = strlen(td);
		if (peer->nuri != 1 || strncmp(peer->uri[0], "spiffe://", 9) || strncmp(peer->uri[0] + 9, td, tdl) ||
			peer->uri[0][9 + tdl] != '/' || !peer->uri[0][10 + tdl]) {
			snprintf(why, whylen, "client certificate refused: it has no single SPIFFE ID of trust domain %s "
				"(a URI SAN spiffe://%s/...)", td, td);
			return GW_AUTH_BAD_TOKEN;
		}
		/*
		 * The path names the workload (the trust domain was checked and is the same for every
		 * identity). Its segments (letters, digits, '.', '-', '_' in SPIFFE) are joined with ':'
		 * instead of '/', which an identity name cannot hold (it is a URL path segment of the API):
		 * spiffe://example.org/ns/prod/sa/etl is identity ns:prod:sa:etl.
		 */
		const char *path = peer->uri[0] + 10 + tdl;
		snprintf(name, sizeof(name), "%s", path);
		bool seg_ok = true;
		for (char *p = name, *seg = name;; p++) {
			if (*p == '/' || !*p) {
				size_t sl = (size_t)(p - seg);
				if (!sl || (sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.') ||
					memchr(seg, ':', sl))
					seg_ok = false;
				if (!*p)
					break;
				*p = ':';
				seg = p + 1;
			}
		}
		if (!seg_ok) {
			snprintf(why, whylen, "client certificate refused: SPIFFE ID path \"%.100s\" has an empty, '.' or "
				"'..' segment or a ':'", path);
			return GW_AUTH_BAD_TOKEN;
		}
	} else {
		if (!peer->cn[0]) {
			snprintf(why, whylen, "client certificate refused: its subject has no single common name (CN)");
			return GW_AUTH_BAD_TOKEN;
		}
		snprintf(name, sizeof(name), "%s", peer->cn);
	}
	if (!gw_identity_name_ok(name)) {
		snprintf(why, whylen, "client certificate refused: \"%.100s\" is not an identity name "
			"(letters, digits, -_.@: up to 127)", name);
		return GW_AUTH_BAD_TOKEN;
	}
	gw_identity_rec ir;
	int rc = gw_store_identity_get(st, name, &ir);
	if (rc == -2) {
		snprintf(why, whylen, "the state store cannot answer");
		return GW_AUTH_STORE_ERROR;
	}
	if (rc != 0) {
		snprintf(why, whylen, "the certificate's identity \"%s\" does not exist", name);
		return GW_AUTH_UNKNOWN_IDENTITY;
	}
	if (ir.disabled) {
		snprintf(why, whylen, "identity \"%s\" is disabled", name);
		return GW_AUTH_DISABLED;
	}
	if (!strcmp(ir.kind, "relay")) {
		snprintf(why, whylen, "identity \"%s\" is a relay; relays do not log in as clients", name);
		return GW_AUTH_DISABLED;
	}
	if (user && strcmp(user, name)) {
		snprintf(why, whylen, "user \"%s\" does not match the certificate's identity \"%s\"", user, name);
		return GW_AUTH_MISMATCH;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", ir.name);
	snprintf(out->kind, sizeof(out->kind), "%s", ir.kind);
	snprintf(out->groups, sizeof(out->groups), "%s", ir.groups);
	out->expires_at = peer->not_after;
	if (cfg->session_follows_token_expiry && peer->not_after > 0)
		out->session_until_us = (uint64_t)peer->not_after * 1000000u;
	return GW_AUTH_OK;
}

bool gw_identity_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 127)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && !strchr("-_.@:", c))
			return false;
	}
	return true;
}

bool gw_identity_kind_ok(const char *kind)
{
	return !strcmp(kind, "agent") || !strcmp(kind, "human") || !strcmp(kind, "relay");
}

bool gw_identity_in_group(const gw_identity *id, const char *group)
{
	return gw_csv_has(id->groups, group);
}

bool gw_identity_is_admin(const gw_identity *id, char *const *admins, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(admins[i], "identity:", 9) && !strcmp(admins[i] + 9, id->name))
			return true;
		if (!strncmp(admins[i], "group:", 6) && gw_identity_in_group(id, admins[i] + 6))
			return true;
	}
	return false;
}

/* A small open-addressed table of (address, window start, failures). */
#define RL_SLOTS 4096

typedef struct rl_slot {
	uint8_t addr[16];
	uint64_t window_start;
	int failures;
} rl_slot;

struct gw_ratelimit {
	pthread_mutex_t lock;
	int per_minute;
	rl_slot slots[RL_SLOTS];
};

gw_ratelimit *gw_ratelimit_new(int per_minute)
{
	gw_ratelimit *rl = gw_xcalloc(1, sizeof(*rl));
	pthread_mutex_init(&rl->lock, NULL);
	rl->per_minute = per_minute;
	return rl;
}

void gw_ratelimit_free(gw_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

static void addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET)
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static rl_slot *rl_find(gw_ratelimit *rl, const uint8_t key[16], uint64_t now)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	rl_slot *s = &rl->slots[h % RL_SLOTS];
	/* One slot per hash: a collision shares a budget, never frees one. */
	if (memcmp(s->addr, key, 16) != 0 && now - s->window_start > 60000000ull) {
		memcpy(s->addr, key, 16);
		s->window_start = now;
		s->failures = 0;
	}
	if (now - s->window_start > 60000000ull) {
		s->window_start = now;
		s->failures = 0;
	}
	return s;
}

bool gw_ratelimit_blocked(gw_ratelimit *rl, const struct sockaddr_storage *addr)
{
	if (rl->per_minute <= 0)
		return false;
	uint8_t key[16];
	addr_key(addr, key);
	pthread_mutex_lock(&rl->lock);
	rl_slot *s = rl_find(rl, key, gw_mono_us());
	bool blocked = s->failures >= rl->per_minute;
	pthread_mutex_unlock(&rl->lock);
	return blocked;
}

void gw_ratelimit_fail(gw_ratelimit *rl, const struct sockaddr_storage *addr)
{
	uint8_t key[16];
	addr_key(addr, key);
	pthread_mutex_lock(&rl->lock);
	rl_slot *s = rl_find(rl, key, gw_mono_us());
	s->failures++;
	pthread_mutex_unlock(&rl->lock);
}
