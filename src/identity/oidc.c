/*
 * Trusted issuers: one key cache each, a fetcher thread for those whose keys
 * come over HTTPS, and the login decision for a JWT; see oidc.h.
 *
 * An issuer's state is guarded by its mutex; a verify holds it only to look
 * the key set up (and take a reference) and, when the kid is unknown, to ask
 * for a refetch and park the login. The fetcher thread sleeps until the
 * cache's max-age runs out or a refetch is asked for, fetches without the
 * lock, then swaps the set in (only a usable one) and wakes what waited.
 */
#include "identity/oidc.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JWKS_MAX_BYTES (1024 * 1024)
#define FETCH_TIMEOUT_S 5
#define HTTP_WAIT_S 15

typedef struct issuer {
	gw_oidc *o;
	const gw_oidc_issuer_cfg *cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* the fetcher's wake-up, and HTTP-thread waiters' */
	pthread_t thread;
	bool has_thread;
	gw_jwks *keys;           /* NULL: none yet (or dropped after GW_JWKS_KEEP_S without a fetch) */
	int64_t fetched_at;      /* last successful fetch or file read (unix s) */
	int64_t next_refresh;    /* when the fetcher goes again on its own */
	int64_t last_kid_fetch;  /* last refetch an unknown kid caused */
	bool want_fetch, fetching;
	uint64_t rounds;         /* fetches finished */
	char jwks_uri[1024];     /* jwks_url, or the discovered one ("" not yet) */
	char last_error[300];
	gw_oidc_waiter *waiters; /* parked logins' loops (one entry per loop/fn/arg) */
	size_t nwaiters, capwaiters;
} issuer;

struct gw_oidc {
	const gw_config *cfg;
	issuer *iss;
	size_t n;
	volatile bool stop;
};

static int64_t now_s(void) { return (int64_t)(gw_wall_us() / 1000000); }

size_t gw_oidc_count(const gw_oidc *o) { return o ? o->n : 0; }

/* Read a jwks_file; 0 (keys swapped in) or -1 with why (the keys stay as they were). */
static int read_file(issuer *is, char *why, size_t whylen)
{
	FILE *f = fopen(is->cfg->jwks_file, "rb");
	if (!f) {
		snprintf(why, whylen, "cannot open %s: %s", is->cfg->jwks_file, strerror(errno));
		return -1;
	}
	char *buf = gw_xmalloc(JWKS_MAX_BYTES + 1);
	size_t n = fread(buf, 1, JWKS_MAX_BYTES + 1, f);
	fclose(f);
	if (n > JWKS_MAX_BYTES) {
		free(buf);
		snprintf(why, whylen, "%s is over %d bytes", is->cfg->jwks_file, JWKS_MAX_BYTES);
		return -1;
	}
	int skipped;
	char pwhy[256];
	gw_jwks *ks = gw_jwks_parse(buf, n, &skipped, pwhy, sizeof(pwhy));
	free(buf);
	if (!ks) {
		snprintf(why, whylen, "%s: %s", is->cfg->jwks_file, pwhy);
		return -1;
	}
	pthread_mutex_lock(&is->lock);
	gw_jwks *old = is->keys;
	is->keys = ks;
	is->fetched_at = now_s();
	pthread_mutex_unlock(&is->lock);
	gw_jwks_unref(old);
	gw_info("issuer %s: %zu keys from %s%s", is->cfg->issuer, gw_jwks_count(ks), is->cfg->jwks_file,
		skipped ? " (some skipped: see debug log)" : "");
	return 0;
}

/* Discovery: jwks_uri from <issuer>/.well-known/openid-configuration, whose issuer must be ours. */
static int discover(issuer *is, char *uri, size_t urilen, char *why, size_t whylen)
{
	const char *iss = is->cfg->issuer;
	size_t il = strlen(iss);
	char *url = gw_xasprintf("%.*s/.well-known/openid-configuration", (int)(il && iss[il - 1] == '/' ? il - 1 : il), iss);
	size_t len;
	long age;
	char *body = gw_https_get(url, is->cfg->ca, JWKS_MAX_BYTES, FETCH_TIMEOUT_S, &is->o->stop, &len, &age, why, whylen);
	free(url);
	if (!body)
		return -1;
	json_error_t je;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	free(body);
	const char *diss = json_string_value(json_object_get(doc, "issuer"));
	const char *ju = json_string_value(json_object_get(doc, "jwks_uri"));
	int rc = -1;
	if (!doc)
		snprintf(why, whylen, "discovery document is not JSON: %s", je.text);
	else if (!diss || strcmp(diss, iss))
		snprintf(why, whylen, "discovery document names issuer \"%s\", not \"%s\"", diss ? diss : "", iss);
	else if (!ju || strncmp(ju, "https://", 8) || strlen(ju) >= urilen)
		snprintf(why, whylen, "discovery document has no https:// jwks_uri");
	else {
		snprintf(uri, urilen, "%s", ju);
		rc = 0;
	}
	json_decref(doc);
	return rc;
}

/* One fetch round, without the lock. 0 with *out (and *max_age), or -1 with why. */
static int fetch_keys(issuer *is, bool rediscover, gw_jwks **out, long *max_age, char *why, size_t whylen)
{
	char uri[1024];
	pthread_mutex_lock(&is->lock);
	snprintf(uri, sizeof(uri), "%s", is->jwks_uri);
	pthread_mutex_unlock(&is->lock);
	if (!is->cfg->jwks_url && (rediscover || !*uri)) {
		if (discover(is, uri, sizeof(uri), why, whylen) < 0)
			return -1;
		pthread_mutex_lock(&is->lock);
		snprintf(is->jwks_uri, sizeof(is->jwks_uri), "%s", uri);
		pthread_mutex_unlock(&is->lock);
	}
	size_t len;
	char *body = gw_https_get(uri, is->cfg->ca, JWKS_MAX_BYTES, FETCH_TIMEOUT_S, &is->o->stop, &len, max_age,
		why, whylen);
	if (!body)
		return -1;
	int skipped;
	char pwhy[256];
	*out = gw_jwks_parse(body, len, &skipped, pwhy, sizeof(pwhy));
	free(body);
	if (!*out) {
		snprintf(why, whylen, "%s: %s", uri, pwhy);
		return -1;
	}
	return 0;
}

static void wake_waiters(issuer *is)
{
	for (size_t i = 0; i < is->nwaiters; i++)
		gw_loop_post(is->waiters[i].loop, is->waiters[i].fn, is->waiters[i].arg);
	is->nwaiters = 0;
	pthread_cond_broadcast(&is->cond);
}

static void *fetcher_main(void *arg)
{
	issuer *is = arg;
	int failures = 0;
	pthread_mutex_lock(&is->lock);
	for (;;) {
		while (!is->o->stop && !is->want_fetch && now_s() < is->next_refresh) {
			struct timespec ts = {.tv_sec = (time_t)is->next_refresh};
			pthread_cond_timedwait(&is->cond, &is->lock, &ts);
		}
		if (is->o->stop)
			break;
		bool scheduled = !is->want_fetch;
		is->want_fetch = false;
		is->fetching = true;
		pthread_mutex_unlock(&is->lock);

		gw_jwks *ks = NULL;
		long age = -1;
		char why[300] = "";
		int rc = fetch_keys(is, scheduled && failures == 0 && is->fetched_at, &ks, &age, why, sizeof(why));

		pthread_mutex_lock(&is->lock);
		int64_t now = now_s();
		gw_jwks *old = NULL;
		if (rc == 0) {
			old = is->keys;
			is->keys = ks;
			is->fetched_at = now;
			if (age < GW_JWKS_MIN_AGE_S)
				age = GW_JWKS_MIN_AGE_S;
			if (age > GW_JWKS_MAX_AGE_S)
				age = GW_JWKS_MAX_AGE_S;
			is->next_refresh = now + age;
			is->last_error[0] = 0;
			failures = 0;
			gw_info("issuer %s: %zu keys fetched from %s; next refresh in %ld s", is->cfg->issuer,
				gw_jwks_count(ks), is->jwks_uri, age);
		} else {
			failures++;
			/* retry 30 s, 60 s, ... up to 5 min; the keys held stay (never replaced by a failure) */
			int64_t backoff = GW_JWKS_REFETCH_S << (failures < 4 ? failures - 1 : 3);
			if (backoff > GW_JWKS_MIN_AGE_S)
				backoff = GW_JWKS_MIN_AGE_S;
			is->next_refresh = now + backoff;
			snprintf(is->last_error, sizeof(is->last_error), "%s", why);
			gw_warn("issuer %s: cannot fetch its keys (%s); %s; retrying in %lld s", is->cfg->issuer, why,
				is->keys ? "the keys fetched before stay in use" : "no keys yet",
				(long long)backoff);
		}
		is->fetching = false;
		is->rounds++;
		wake_waiters(is);
		pthread_mutex_unlock(&is->lock);
		gw_jwks_unref(old);
		pthread_mutex_lock(&is->lock);
	}
	pthread_mutex_unlock(&is->lock);
	return NULL;
}

gw_oidc *gw_oidc_new(const gw_config *cfg, char *err, size_t errlen)
{
	gw_oidc *o = gw_xcalloc(1, sizeof(*o));
	o->cfg = cfg;
	o->n = cfg->n_oidc;
	o->iss = gw_xcalloc(o->n + 1, sizeof(issuer));
	for (size_t i = 0; i < o->n; i++) {
		issuer *is = &o->iss[i];
		is->o = o;
		is->cfg = &cfg->oidc[i];
		pthread_mutex_init(&is->lock, NULL);
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_cond_init(&is->cond, &ca); /* CLOCK_REALTIME: deadlines are wall-clock seconds */
		pthread_condattr_destroy(&ca);
		if (is->cfg->jwks_url)
			snprintf(is->jwks_uri, sizeof(is->jwks_uri), "%s", is->cfg->jwks_url);
	}
	for (size_t i = 0; i < o->n; i++) {
		issuer *is = &o->iss[i];
		if (is->cfg->jwks_file) {
			char why[400];
			if (read_file(is, why, sizeof(why)) < 0) {
				snprintf(err, errlen, "identity.oidc issuer %s (line %d): %s", is->cfg->issuer, is->cfg->line, why);
				gw_oidc_free(o);
				return NULL;
			}
			continue;
		}
		is->want_fetch = true; /* the first fetch; logins meanwhile wait for it */
		is->fetching = true;
		if (pthread_create(&is->thread, NULL, fetcher_main, is) != 0) {
			snprintf(err, errlen, "cannot start the key fetcher of issuer %s", is->cfg->issuer);
			gw_oidc_free(o);
			return NULL;
		}
		is->has_thread = true;
	}
	return o;
}

void gw_oidc_free(gw_oidc *o)
{
	if (!o)
		return;
	o->stop = true;
	for (size_t i = 0; i < o->n; i++) {
		issuer *is = &o->iss[i];
		pthread_mutex_lock(&is->lock);
		pthread_cond_broadcast(&is->cond);
		pthread_mutex_unlock(&is->lock);
		if (is->has_thread)
			pthread_join(is->thread, NULL);
	}
	for (size_t i = 0; i < o->n; i++) {
		issuer *is = &o->iss[i];
		gw_jwks_unref(is->keys);
		free(is->waiters);
		pthread_mutex_destroy(&is->lock);
		pthread_cond_destroy(&is->cond);
	}
	free(o->iss);
	free(o);
}

void gw_oidc_reload_files(gw_oidc *o)
{
	for (size_t i = 0; o && i < o->n; i++) {
		issuer *is = &o->iss[i];
		char why[400];
		if (is->cfg->jwks_file && read_file(is, why, sizeof(why)) < 0)
			gw_warn("issuer %s: %s; the keys read before stay in use", is->cfg->issuer, why);
	}
}

static void add_waiter(issuer *is, const gw_oidc_waiter *w)
{
	for (size_t i = 0; i < is->nwaiters; i++)
		if (is->waiters[i].loop == w->loop && is->waiters[i].fn == w->fn && is->waiters[i].arg == w->arg)
			return;
	if (is->nwaiters == is->capwaiters) {
		is->capwaiters = is->capwaiters ? 2 * is->capwaiters : 8;
		is->waiters = gw_xrealloc(is->waiters, is->capwaiters * sizeof(*is->waiters));
	}
	is->waiters[is->nwaiters++] = *w;
}

/*
 * The key for j of issuer is: a reference to the set holding it (*ks, to
 * unref) and the key; NULL with why set, or *pending when the caller is to
 * wait for a fetch (w parked, or w NULL: waited for here).
 */
static const gw_pubkey *find_key(issuer *is, const gw_jwt *j, const gw_oidc_waiter *w, gw_jwks **ks, bool *pending,
	char *why, size_t whylen)
{
	*pending = false;
	*ks = NULL;
	pthread_mutex_lock(&is->lock);
	int64_t now = now_s();
	uint64_t waited_round = 0;
	bool waited = false;
	for (;;) {
		if (is->keys && !is->cfg->jwks_file && now - is->fetched_at > GW_JWKS_KEEP_S) {
			gw_warn("issuer %s: its keys were last fetched %lld s ago; they are no longer used", is->cfg->issuer,
				(long long)(now - is->fetched_at));
			gw_jwks_unref(is->keys);
			is->keys = NULL;
		}
		const gw_pubkey *k = gw_jwks_find(is->keys, j->kid, j->alg_name);
		if (k) {
			*ks = gw_jwks_ref(is->keys);
			pthread_mutex_unlock(&is->lock);
			return k;
		}
		if (is->cfg->jwks_file)
			break;
		/* A fetch under way decides; else an unknown kid may cause one, at most every GW_JWKS_REFETCH_S. */
		bool may_fetch = !is->fetching && !waited && now - is->last_kid_fetch >= GW_JWKS_REFETCH_S;
		if (may_fetch) {
			is->last_kid_fetch = now;
			is->want_fetch = true;
			is->fetching = true;
			pthread_cond_broadcast(&is->cond);
		}
		if (!is->fetching || (waited && is->rounds > waited_round))
			break;
		if (w) {
			add_waiter(is, w);
			*pending = true;
			pthread_mutex_unlock(&is->lock);
			return NULL;
		}
		/* the HTTP thread: wait here for the fetch to end */
		waited = true;
		waited_round = is->rounds;
		struct timespec ts = {.tv_sec = (time_t)(now + HTTP_WAIT_S)};
		while (is->fetching && is->rounds == waited_round && !is->o->stop)
			if (pthread_cond_timedwait(&is->cond, &is->lock, &ts) == ETIMEDOUT)
				break;
		if (is->fetching && is->rounds == waited_round)
			break;
		now = now_s();
	}
	if (!is->keys)
		snprintf(why, whylen, "no keys of issuer %s are at hand%s%s", is->cfg->issuer, *is->last_error ? ": " : "",
			is->last_error);
	else if (*j->kid)
		snprintf(why, whylen, "unknown key: kid \"%s\" is not among issuer %s's %zu keys (for %s)", j->kid,
			is->cfg->issuer, gw_jwks_count(is->keys), j->alg_name);
	else
		snprintf(why, whylen, "the token names no key (kid) and issuer %s has %zu", is->cfg->issuer,
			gw_jwks_count(is->keys));
	pthread_mutex_unlock(&is->lock);
	return NULL;
}

/* Groups from the claim: a string (comma- or space-separated) or an array of strings; invalid names skipped. */
static void claim_groups(const gw_jwt *j, const char *claim, char *out, size_t outlen)
{
	out[0] = 0;
	json_t *c = json_object_get(j->claims, claim);
	const char *items[64];
	size_t n = 0;
	char *copy = NULL;
	if (json_is_array(c)) {
		size_t i;
		json_t *g;
		json_array_foreach(c, i, g)
			if (json_is_string(g) && n < GW_ARRAY_LEN(items))
				items[n++] = json_string_value(g);
	} else if (json_is_string(c)) {
		copy = gw_xstrdup(json_string_value(c));
		for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t && n < GW_ARRAY_LEN(items);
			t = strtok_r(NULL, ", ", &save))
			items[n++] = t;
	}
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(items[i]);
		if (!gw_identity_name_ok(items[i]) || used + l + 2 > outlen)
			continue;
		char probe[130];
		snprintf(probe, sizeof(probe), "%s", items[i]);
		if (gw_csv_has(out, probe))
			continue;
		if (used)
			out[used++] = ',';
		memcpy(out + used, items[i], l + 1);
		used += l;
	}
	free(copy);
}

enum gw_auth_result gw_oidc_verify(gw_oidc *o, const char *tok, size_t n, const gw_oidc_waiter *w,
	gw_jwt_identity *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	out->issuer = -1;
	if (!o || !o->n) {
		snprintf(why, whylen, "no identity.oidc issuer is configured to accept a JWT");
		return GW_AUTH_BAD_TOKEN;
	}
	gw_jwt j;
	if (gw_jwt_parse(tok, n, &j, why, whylen) < 0)
		return GW_AUTH_BAD_TOKEN;
	enum gw_auth_result r = GW_AUTH_BAD_TOKEN;
	const char *iss = gw_jwt_claim_str(&j, "iss");
	issuer *is = NULL;
	for (size_t i = 0; iss && i < o->n; i++)
		if (!strcmp(o->iss[i].cfg->issuer, iss)) {
			is = &o->iss[i];
			out->issuer = (int)i;
		}
	if (!is) {
		snprintf(why, whylen, "the token's issuer (iss) is not a trusted issuer");
		goto done;
	}
	gw_jwks *ks;
	bool pending;
	const gw_pubkey *k = find_key(is, &j, w, &ks, &pending, why, whylen);
	if (!k) {
		if (pending)
			r = GW_AUTH_PENDING;
		goto done;
	}
	bool fits = gw_jwt_key_fits(&j, k, why, whylen);
	bool sig_ok = fits && gw_pubkey_verify(k, j.alg, j.signing_input, j.signing_len, j.sig, j.sig_len);
	gw_jwks_unref(ks);
	if (!fits)
		goto done;
	if (!sig_ok) {
		snprintf(why, whylen, "bad signature (%s, key \"%s\")", j.alg_name, j.kid);
		goto done;
	}
	const gw_oidc_issuer_cfg *ic = is->cfg;
	if (gw_jwt_check_claims(&j, ic->audience, now_s(), (int64_t)(ic->leeway_us / 1000000u), &out->exp, why,
			whylen) < 0) {
		if (strstr(why, "expired"))
			r = GW_AUTH_EXPIRED;
		goto done;
	}
	const char *who = gw_jwt_claim_str(&j, ic->identity_claim);
	if (!who || !*who) {
		snprintf(why, whylen, "the token has no %s claim (identity_claim) as a string", ic->identity_claim);
		goto done;
	}
	if (snprintf(out->name, sizeof(out->name), "%s%s", ic->identity_prefix, who) >= (int)sizeof(out->name) ||
		!gw_identity_name_ok(out->name)) {
		snprintf(why, whylen, "the %s claim does not make an identity name (letters, digits, -_.@: up to 127)",
			ic->identity_claim);
		goto done;
	}
	if (ic->groups_claim) {
		out->has_groups = true;
		claim_groups(&j, ic->groups_claim, out->groups, sizeof(out->groups));
	}
	r = GW_AUTH_OK;
done:
	gw_jwt_free(&j);
	return r;
}

enum gw_auth_result gw_identity_verify_jwt(gw_oidc *o, gw_store *st, const char *tok, size_t n, const char *user,
	const gw_oidc_waiter *w, gw_identity *id, char *why, size_t whylen, char *issuer_out)
{
	gw_jwt_identity ji;
	if (issuer_out)
		issuer_out[0] = 0;
	enum gw_auth_result r = gw_oidc_verify(o, tok, n, w, &ji, why, whylen);
	if (issuer_out && ji.issuer >= 0)
		snprintf(issuer_out, 128, "%s", o->iss[ji.issuer].cfg->issuer);
	if (r != GW_AUTH_OK)
		return r;
	const gw_oidc_issuer_cfg *ic = o->iss[ji.issuer].cfg;
	gw_identity_rec ir;
	int rc = gw_store_identity_get(st, ji.name, &ir);
	if (rc == -2) {
		snprintf(why, whylen, "the state store cannot answer");
		return GW_AUTH_STORE_ERROR;
	}
	if (rc != 0) {
		if (!ic->auto_create) {
			snprintf(why, whylen, "identity \"%s\" does not exist (issuer %s does not create identities: auto_create "
				"is off)", ji.name, ic->issuer);
			return GW_AUTH_UNKNOWN_IDENTITY;
		}
		memset(&ir, 0, sizeof(ir));
		snprintf(ir.name, sizeof(ir.name), "%s", ji.name);
		snprintf(ir.kind, sizeof(ir.kind), "%s", ic->kind);
		snprintf(ir.groups, sizeof(ir.groups), "%s", ji.has_groups ? ji.groups : "");
		ir.created_at = now_s();
		char err[256];
		int arc = gw_store_identity_add(st, &ir, err, sizeof(err));
		if (arc == -1)
			rc = gw_store_identity_get(st, ji.name, &ir); /* made meanwhile by another login */
		else if (arc != 0) {
			snprintf(why, whylen, "the state store cannot answer");
			return GW_AUTH_STORE_ERROR;
		} else {
			gw_info("identity %s (%s) created on its first login with a token of %s", ir.name, ir.kind, ic->issuer);
		}
		if (arc == -1 && rc != 0) {
			snprintf(why, whylen, "the state store cannot answer");
			return GW_AUTH_STORE_ERROR;
		}
	}
	if (ir.disabled) {
		snprintf(why, whylen, "identity \"%s\" is disabled", ir.name);
		return GW_AUTH_DISABLED;
	}
	if (!strcmp(ir.kind, "relay")) {
		snprintf(why, whylen, "identity \"%s\" is a relay; relays do not log in with a JWT", ir.name);
		return GW_AUTH_DISABLED;
	}
	if (user && strcmp(user, ir.name)) {
		snprintf(why, whylen, "user \"%s\" does not match the token's identity \"%s\"", user, ir.name);
		return GW_AUTH_MISMATCH;
	}
	if (ic->auto_create && ji.has_groups && strcmp(ir.groups, ji.groups)) {
		if (gw_store_identity_set_groups(st, ir.name, ji.groups) != 0) {
			snprintf(why, whylen, "the state store cannot answer");
			return GW_AUTH_STORE_ERROR;
		}
		gw_info("identity %s: groups from %s's %s claim: [%s] (were [%s])", ir.name, ic->issuer, ic->groups_claim,
			ji.groups, ir.groups);
		snprintf(ir.groups, sizeof(ir.groups), "%s", ji.groups);
	}
	memset(id, 0, sizeof(*id));
	snprintf(id->name, sizeof(id->name), "%s", ir.name);
	snprintf(id->kind, sizeof(id->kind), "%s", ir.kind);
	snprintf(id->groups, sizeof(id->groups), "%s", ir.groups);
	id->expires_at = ji.exp;
	if (o->cfg->session_follows_token_expiry)
		id->session_until_us = ji.exp > 0 ? (uint64_t)ji.exp * 1000000u : 1;
	return GW_AUTH_OK;
}
