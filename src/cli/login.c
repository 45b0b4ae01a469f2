/*
 * `pgmoat login`: a person signs in at an OpenID provider with the OAuth 2.0
 * device authorization grant (RFC 8628) and keeps the token for the CLI and
 * for psql.
 *
 *   discovery   GET <issuer>/.well-known/openid-configuration: its "issuer"
 *               must be the one asked for; device_authorization_endpoint and
 *               token_endpoint are read from it.
 *   device      POST client_id, scope (and resource) to the device endpoint;
 *               the verification URL and user code are printed on stderr.
 *   polling     POST the device code to the token endpoint every `interval`
 *               seconds (5 when the provider names none): authorization_pending
 *               waits, slow_down adds 5 s to the interval for good, expired_token
 *               and access_denied end it (exit 1). A provider that cannot be
 *               reached is retried with a doubling wait until the code expires.
 *   storage     the access token (or the ID token, --token-type id) is written
 *               to the token file with mode 0600 through a new file renamed into
 *               place; beside it, F.json (0600) says who it names and until when.
 *               The token never goes to a log, to stderr, or on a command line.
 *
 * The token file is $XDG_CONFIG_HOME/pgmoat/token, else ~/.config/pgmoat/token,
 * or --token-file F. The admin verbs read it when neither PGMOAT_TOKEN nor
 * --token-file is given (gw_cli_login_token()). `--print-env` prints the lines
 * psql needs, as `export NAME='value'` for a shell's eval; it signs in first
 * when no stored token is valid for another minute.
 */
#include "cli/cli.h"
#include "core/buf.h"
#include "core/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOGIN_MAX_BODY (1u << 20)
#define LOGIN_MAX_TOKEN 16384
#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"

static const char login_usage[] =
	"usage: pgmoat login [--issuer URL] [--client-id ID] [--ca FILE] [--scope S] [--resource URI]\n"
	"                    [--token-file F] [--token-type access|id]\n"
	"                    [--identity-claim C] [--identity-prefix P]\n"
	"       pgmoat login --print-env [the options above] [--host H] [--port P] [--dbname CONNECTION]\n"
	"                    [--sslrootcert FILE]\n"
	"  Sign in at an OpenID provider with the device flow (RFC 8628): open the URL printed, enter the\n"
	"  code, and the token is kept (mode 0600) for the admin verbs and for psql.\n"
	"  --issuer       the provider (https://...; env PGMOAT_ISSUER)\n"
	"  --client-id    its public client for pgmoat (env PGMOAT_CLIENT_ID; default pgmoat-cli)\n"
	"  --ca           CA file for the provider's HTTPS (default: the system's CAs)\n"
	"  --scope        scopes asked for (default \"openid\")\n"
	"  --resource     RFC 8707 resource indicator, when the provider wants one for the gateway's audience\n"
	"  --token-file   where the token is kept (default $XDG_CONFIG_HOME/pgmoat/token or\n"
	"                 ~/.config/pgmoat/token); F.json beside it says who it names and until when\n"
	"  --token-type   keep the access token (default) or the ID token; the gateway takes a JWT whose\n"
	"                 audience is its identity.oidc audience\n"
	"  --identity-claim, --identity-prefix\n"
	"                 how the gateway maps the token to an identity (its identity.oidc identity_claim,\n"
	"                 default sub, and identity_prefix): PGUSER is the prefix and the claim's value\n"
	"  --print-env    print PGUSER, PGPASSWORD (the token), PGSSLMODE=verify-full (and PGHOST, PGPORT,\n"
	"                 PGDATABASE, PGSSLROOTCERT when given) as export lines: eval \"$(pgmoat login --print-env)\"\n"
	"                 signs in first unless the stored token is valid for at least another minute\n"
	"  Messages go to stderr; stdout carries only --print-env's lines. Exit 0 signed in, 1 refused,\n"
	"  expired or failed, 2 usage.\n";

typedef struct login_opts {
	const char *issuer;
	const char *client_id;
	const char *ca;
	const char *scope;
	const char *resource;
	const char *token_file;
	const char *token_type;
	const char *identity_claim;
	const char *identity_prefix;
	bool identity_given; /* --identity-claim or --identity-prefix: --print-env maps the stored token again */
	bool print_env;
	const char *host;
	const char *port;
	const char *dbname;
	const char *sslrootcert;
} login_opts;


/*
 * GET (form NULL) or POST an urlencoded form to url over verified HTTPS.
 * Returns the answer's JSON object (any status), or NULL when the provider
 * could not be reached or did not answer JSON: *why says which (static text
 * or curl's), *status the HTTP status (0 when unreached).
 */
static json_t *login_http(const login_opts *o, const char *url, const char *form, long *status, const char **why)
{
	*status = 0;
	*why = NULL;
	CURL *c = curl_easy_init();
	if (!c) {
		*why = "cannot initialise libcurl";
		return NULL;
	}
	gw_sink b = {.max = LOGIN_MAX_BODY};
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, gw_sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca);
	if (form)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	CURLcode rc = curl_easy_perform(c);
	json_t *out = NULL;
	if (rc != CURLE_OK) {
		*why = curl_easy_strerror(rc);
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
		json_error_t je;
		out = gw_sink_str(&b) ? json_loads(gw_sink_str(&b), 0, &je) : NULL;
		if (!json_is_object(out)) {
			json_decref(out);
			out = NULL;
			*why = "the answer is not a JSON object";
		}
	}
	gw_sink_free(&b, true); /* it may hold a token */
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return out;
}

/* Append key=value (urlencoded) to a form string. */
static void form_add(char **form, const char *key, const char *val)
{
	char *enc = curl_easy_escape(NULL, val, 0);
	char *n = gw_xasprintf("%s%s%s=%s", *form ? *form : "", *form ? "&" : "", key, enc ? enc : "");
	curl_free(enc);
	free(*form);
	*form = n;
}

static const char *jget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* mkdir -p with mode 0700 for what it creates. Returns 0, or -1 (message printed). */
static int mkdir_private(const char *dir)
{
	char *p = gw_xstrdup(dir);
	int rc = 0;
	for (char *s = p + 1; rc == 0; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "pgmoat login: cannot create %s: %s\n", p, strerror(errno));
			rc = -1;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

/* The token file's default path, or NULL (message printed) when there is no home. */
static char *default_token_path(bool make_dir)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	char *base;
	if (xdg && *xdg == '/') {
		base = gw_xasprintf("%s/pgmoat", xdg);
	} else {
		const char *home = getenv("HOME");
		if (!home || *home != '/') {
			fprintf(stderr, "pgmoat login: neither XDG_CONFIG_HOME nor HOME is set; pass --token-file F\n");
			return NULL;
		}
		base = gw_xasprintf("%s/.config/pgmoat", home);
	}
	if (make_dir && mkdir_private(base) < 0) {
		free(base);
		return NULL;
	}
	char *path = gw_xasprintf("%s/token", base);
	free(base);
	return path;
}

/* Write data to path with mode 0600: a new file beside it, synced, renamed over it. Returns 0 or -1. */
static int write_private(const char *path, const char *data)
{
	char *tmp = gw_xasprintf("%s.%ld.tmp", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "pgmoat login: cannot create %s: %s\n", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	size_t n = strlen(data), off = 0;
	int rc = fchmod(fd, 0600);
	while (rc == 0 && off < n) {
		ssize_t w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = -1;
		else
			off += (size_t)w;
	}
	if (rc == 0)
		rc = fsync(fd);
	if (close(fd) < 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -1;
	if (rc < 0) {
		fprintf(stderr, "pgmoat login: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

/* The JSON payload of a JWT (not verified: only read, to say who it names), or NULL. */
static json_t *jwt_payload(const char *jwt)
{
	const char *d1 = strchr(jwt, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return NULL;
	size_t n = (size_t)(d2 - d1 - 1);
	uint8_t *buf = gw_xmalloc(n + 1);
	long len = gw_b64_decode(d1 + 1, n, buf, n + 1);
	json_t *j = NULL;
	if (len > 0) {
		json_error_t je;
		j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(j)) {
			json_decref(j);
			j = NULL;
		}
	}
	free(buf);
	return j;
}

/*
 * The identity the gateway maps a token to: identity_prefix and the identity
 * claim's value (a string, or an integer written in decimal). NULL when the
 * token holds no such claim.
 */
static char *identity_of(json_t *claims, const login_opts *o)
{
	json_t *v = json_object_get(claims, o->identity_claim);
	const char *prefix = o->identity_prefix ? o->identity_prefix : "";
	if (json_is_string(v) && json_string_length(v) > 0)
		return gw_xasprintf("%s%s", prefix, json_string_value(v));
	if (json_is_integer(v))
		return gw_xasprintf("%s%lld", prefix, (long long)json_integer_value(v));
	return NULL;
}

static void fmt_unix(long long t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The discovery document's endpoints. Returns 0, or 1 (message printed). */
static int discover(const login_opts *o, char **device_ep, char **token_ep)
{
	size_t il = strlen(o->issuer);
	char *url = gw_xasprintf("%.*s/.well-known/openid-configuration", (int)(il && o->issuer[il - 1] == '/' ? il - 1 : il),
		o->issuer);
	long st;
	const char *why;
	json_t *d = login_http(o, url, NULL, &st, &why);
	int rc = 1;
	if (!d) {
		fprintf(stderr, "pgmoat login: cannot read %s: %s\n", url, why);
	} else if (st != 200) {
		fprintf(stderr, "pgmoat login: %s answered %ld\n", url, st);
	} else if (!jget(d, "issuer") || strcmp(jget(d, "issuer"), o->issuer)) {
		fprintf(stderr, "pgmoat login: the discovery document at %s names issuer \"%s\", not \"%s\"\n", url,
			jget(d, "issuer") ? jget(d, "issuer") : "", o->issuer);
	} else if (!jget(d, "device_authorization_endpoint")) {
		fprintf(stderr, "pgmoat login: %s offers no device authorization endpoint (RFC 8628): "
			"enable the device flow for the client there\n", o->issuer);
	} else if (!jget(d, "token_endpoint")) {
		fprintf(stderr, "pgmoat login: %s names no token endpoint\n", o->issuer);
	} else {
		*device_ep = gw_xstrdup(jget(d, "device_authorization_endpoint"));
		*token_ep = gw_xstrdup(jget(d, "token_endpoint"));
		rc = 0;
	}
	json_decref(d);
	free(url);
	return rc;
}

/* An OAuth error answer, as one line on stderr. */
static void print_oauth_error(const char *what, json_t *j, long st)
{
	const char *e = j ? jget(j, "error") : NULL;
	const char *desc = j ? jget(j, "error_description") : NULL;
	fprintf(stderr, "pgmoat login: %s: %s%s%s (HTTP %ld)\n", what, e ? e : "failed", desc ? ": " : "", desc ? desc : "",
		st);
}

/*
 * Poll the token endpoint until the person has signed in (RFC 8628 section 3.4
 * and 3.5). Returns the token answer, or NULL (message printed).
 */
static json_t *poll_token(const login_opts *o, const char *token_ep, const char *device_code, long interval,
	long expires_in)
{
	char *form = NULL;
	form_add(&form, "grant_type", DEVICE_GRANT);
	form_add(&form, "device_code", device_code);
	form_add(&form, "client_id", o->client_id);
	uint64_t deadline = gw_mono_us() + (uint64_t)expires_in * 1000000u;
	double backoff = 0;
	json_t *out = NULL;
	for (;;) {
		sleep_s(backoff > interval ? backoff : (double)interval);
		if (gw_mono_us() > deadline) {
			fprintf(stderr, "pgmoat login: the code expired before the sign-in was completed; run pgmoat login again\n");
			break;
		}
		long st;
		const char *why;
		json_t *j = login_http(o, token_ep, form, &st, &why);
		if (!j) {
			/* Unreached, or not JSON (a proxy's page): wait longer, up to the code's life. */
			backoff = backoff ? backoff * 2 : (double)interval * 2;
			if (backoff > 60)
				backoff = 60;
			fprintf(stderr, "pgmoat login: the token endpoint did not answer (%s); trying again in %.0f s\n",
				why ? why : "no answer", backoff);
			continue;
		}
		backoff = 0;
		if (st == 200 && jget(j, "access_token")) {
			out = j;
			break;
		}
		const char *e = jget(j, "error");
		if (e && !strcmp(e, "authorization_pending")) {
			json_decref(j);
			continue;
		}
		if (e && !strcmp(e, "slow_down")) {
			interval += 5;
			json_decref(j);
			continue;
		}
		if (e && !strcmp(e, "expired_token"))
			fprintf(stderr, "pgmoat login: the code expired before the sign-in was completed; run pgmoat login again\n");
		else if (e && !strcmp(e, "access_denied"))
			fprintf(stderr, "pgmoat login: the sign-in was denied at %s\n", o->issuer);
		else
			print_oauth_error("the provider refused the token request", j, st);
		json_decref(j);
		break;
	}
	memset(form, 0, strlen(form));
	free(form);
	return out;
}

/* What the token file's F.json says: issuer, identity, expiry. */
typedef struct stored {
	char *token;
	char *issuer;
	char *identity;
	long long expires_at; /* unix seconds; 0: unknown */
} stored;

static void stored_free(stored *s)
{
	if (s->token) {
		memset(s->token, 0, strlen(s->token));
		free(s->token);
	}
	free(s->issuer);
	free(s->identity);
	memset(s, 0, sizeof(*s));
}

static char *meta_path(const char *token_path)
{
	return gw_xasprintf("%s.json", token_path);
}

/* Read a stored token and what is known of it. Returns 0, or -1 when there is none (quiet). */
static int stored_load(const char *token_path, stored *s)
{
	memset(s, 0, sizeof(*s));
	FILE *f = fopen(token_path, "r");
	if (!f)
		return -1;
	char *buf = gw_xmalloc(LOGIN_MAX_TOKEN + 1);
	size_t n = fread(buf, 1, LOGIN_MAX_TOKEN, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	if (!n) {
		free(buf);
		return -1;
	}
	s->token = buf;
	char *mp = meta_path(token_path);
	json_error_t je;
	json_t *m = json_load_file(mp, 0, &je);
	free(mp);
	if (json_is_object(m)) {
		if (jget(m, "issuer"))
			s->issuer = gw_xstrdup(jget(m, "issuer"));
		if (jget(m, "identity"))
			s->identity = gw_xstrdup(jget(m, "identity"));
		s->expires_at = (long long)json_integer_value(json_object_get(m, "expires_at"));
	}
	json_decref(m);
	if (!s->expires_at) {
		json_t *c = jwt_payload(s->token);
		s->expires_at = (long long)json_integer_value(json_object_get(c, "exp"));
		json_decref(c);
	}
	return 0;
}

char *gw_cli_login_token(void)
{
	char *path = default_token_path(false);
	if (!path)
		return NULL;
	stored s;
	char *tok = NULL;
	if (stored_load(path, &s) == 0) {
		long long now = (long long)time(NULL);
		if (s.expires_at && s.expires_at <= now) {
			char when[32];
			fmt_unix(s.expires_at, when, sizeof(when));
			fprintf(stderr, "pgmoat: the token from `pgmoat login` (%s) expired at %s; run pgmoat login again\n",
				path, when);
		} else {
			tok = s.token;
			s.token = NULL;
		}
		stored_free(&s);
	}
	free(path);
	return tok;
}

/* Print one `export NAME='value'` line, the value quoted for a POSIX shell. */
static void print_export(const char *name, const char *val)
{
	printf("export %s='", name);
	for (const char *p = val; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	}
	printf("'\n");
}

static int print_env(const login_opts *o, stored *s)
{
	if (o->identity_given) {
		json_t *claims = jwt_payload(s->token);
		free(s->identity);
		s->identity = claims ? identity_of(claims, o) : NULL;
		json_decref(claims);
	}
	if (!s->identity) {
		fprintf(stderr, "pgmoat login: the stored token names no identity (claim \"%s\"); sign in again with "
			"--identity-claim C as the gateway's identity.oidc says\n", o->identity_claim);
		return 1;
	}
	if (o->host)
		print_export("PGHOST", o->host);
	if (o->port)
		print_export("PGPORT", o->port);
	if (o->dbname)
		print_export("PGDATABASE", o->dbname);
	print_export("PGUSER", s->identity);
	print_export("PGPASSWORD", s->token);
	print_export("PGSSLMODE", "verify-full");
	if (o->sslrootcert)
		print_export("PGSSLROOTCERT", o->sslrootcert);
	fflush(stdout);
	return ferror(stdout) ? 1 : 0;
}

/* The device flow from start to a stored token. Returns 0, or 1 (message printed). */
static int device_flow(const login_opts *o, const char *token_path, stored *out)
{
	char *device_ep = NULL, *token_ep = NULL;
	if (discover(o, &device_ep, &token_ep)) {
		return 1;
	}
	int rc = 1;
	char *form = NULL;
	form_add(&form, "client_id", o->client_id);
	form_add(&form, "scope", o->scope);
	if (o->resource)
		form_add(&form, "resource", o->resource);
	long st;
	const char *why;
	json_t *tok = NULL, *claims = NULL;
	json_t *d = login_http(o, device_ep, form, &st, &why);
	if (!d) {
		fprintf(stderr, "pgmoat login: cannot reach %s: %s\n", device_ep, why);
		goto out;
	}
	if (st != 200 || !jget(d, "device_code") || !jget(d, "user_code")) {
		print_oauth_error("the device authorization request was refused", d, st);
		goto out;
	}
	const char *uri = jget(d, "verification_uri");
	if (!uri)
		uri = jget(d, "verification_url"); /* an older draft's name, still sent by some providers */
	if (!uri) {
		fprintf(stderr, "pgmoat login: the provider named no verification URI\n");
		goto out;
	}
	json_t *jiv = json_object_get(d, "interval"), *jex = json_object_get(d, "expires_in");
	long interval = json_is_integer(jiv) && json_integer_value(jiv) > 0 ? (long)json_integer_value(jiv) : 5;
	long expires_in = json_is_integer(jex) && json_integer_value(jex) > 0 ? (long)json_integer_value(jex) : 600;
	fprintf(stderr, "To sign in, open %s\nand enter the code: %s\n", uri, jget(d, "user_code"));
	if (jget(d, "verification_uri_complete"))
		fprintf(stderr, "(or open %s)\n", jget(d, "verification_uri_complete"));
	fprintf(stderr, "Waiting for the sign-in at %s (the code expires in %ld min)...\n", o->issuer,
		(expires_in + 59) / 60);
	fflush(stderr);

	tok = poll_token(o, token_ep, jget(d, "device_code"), interval, expires_in);
	if (!tok)
		goto out;
	bool want_id = !strcmp(o->token_type, "id");
	const char *token = jget(tok, want_id ? "id_token" : "access_token");
	if (!token) {
		fprintf(stderr, "pgmoat login: the provider sent no %s token (ask for scope openid for an ID token)\n",
			want_id ? "ID" : "access");
		goto out;
	}
	claims = jwt_payload(token);
	if (!claims) {
		fprintf(stderr, "pgmoat login: the %s token is not a JWT, which the gateway cannot verify; have the provider "
			"issue JWT access tokens for the gateway's audience (--resource), or keep the ID token (--token-type id)\n",
			want_id ? "ID" : "access");
		goto out;
	}
	if (strlen(token) > LOGIN_MAX_TOKEN) {
		fprintf(stderr, "pgmoat login: the token is larger than %d bytes\n", LOGIN_MAX_TOKEN);
		goto out;
	}
	char *identity = identity_of(claims, o);
	long long exp = (long long)json_integer_value(json_object_get(claims, "exp"));
	if (!exp && json_is_integer(json_object_get(tok, "expires_in")))
		exp = (long long)time(NULL) + (long long)json_integer_value(json_object_get(tok, "expires_in"));
	char *line = gw_xasprintf("%s\n", token);
	char *ca_abs = o->ca ? realpath(o->ca, NULL) : NULL; /* kept for the next sign-in, from anywhere */
	json_t *meta = json_pack("{s:s,s:s,s:s,s:s?,s:I,s:s,s:s,s:s?,s:s?,s:s?}", "issuer", o->issuer, "client_id",
		o->client_id, "token_type", want_id ? "id" : "access", "identity", identity, "expires_at", (json_int_t)exp,
		"identity_claim", o->identity_claim, "scope", o->scope, "identity_prefix", o->identity_prefix, "ca", o->ca,
		"resource", o->resource);
	if (ca_abs)
		json_object_set_new(meta, "ca", json_string(ca_abs));
	free(ca_abs);
	char *meta_s = json_dumps(meta, JSON_COMPACT);
	char *mp = meta_path(token_path);
	int w = write_private(token_path, line);
	if (w == 0)
		w = write_private(mp, meta_s);
	memset(line, 0, strlen(line));
	free(line);
	free(mp);
	free(meta_s);
	json_decref(meta);
	if (w == 0) {
		char when[32] = "unknown";
		if (exp)
			fmt_unix(exp, when, sizeof(when));
		if (identity)
			fprintf(stderr, "Signed in as %s (token valid until %s), kept in %s\n", identity, when, token_path);
		else
			fprintf(stderr, "Signed in (token valid until %s), kept in %s; it has no claim \"%s\" to name an identity\n",
				when, token_path, o->identity_claim);
		out->token = gw_xstrdup(token);
		out->issuer = gw_xstrdup(o->issuer);
		out->identity = identity;
		out->expires_at = exp;
		identity = NULL;
		rc = 0;
	}
	free(identity);
out:
	json_decref(claims);
	json_decref(tok);
	json_decref(d);
	if (form) {
		memset(form, 0, strlen(form));
		free(form);
	}
	free(device_ep);
	free(token_ep);
	return rc;
}

static bool opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);
	if (!strcmp(argv[*i], name)) {
		if (*i + 1 >= argc)
			return false;
		*val = argv[++*i];
		return true;
	}
	if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return true;
	}
	return false;
}

static int login_run(login_opts *op, const char *path);

int gw_cli_login(int argc, char **argv)
{
	login_opts o = {0};
	o.issuer = getenv("PGMOAT_ISSUER");
	o.client_id = getenv("PGMOAT_CLIENT_ID");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(login_usage, stdout);
			return 0;
		}
		if (!strcmp(a, "--print-env"))
			o.print_env = true;
		else if (opt(argc, argv, &i, "--issuer", &o.issuer) || opt(argc, argv, &i, "--client-id", &o.client_id) ||
			 opt(argc, argv, &i, "--ca", &o.ca) || opt(argc, argv, &i, "--scope", &o.scope) ||
			 opt(argc, argv, &i, "--resource", &o.resource) || opt(argc, argv, &i, "--token-file", &o.token_file) ||
			 opt(argc, argv, &i, "--token-type", &o.token_type) ||
			 opt(argc, argv, &i, "--identity-claim", &o.identity_claim) ||
			 opt(argc, argv, &i, "--identity-prefix", &o.identity_prefix) || opt(argc, argv, &i, "--host", &o.host) ||
			 opt(argc, argv, &i, "--port", &o.port) || opt(argc, argv, &i, "--dbname", &o.dbname) ||
			 opt(argc, argv, &i, "--sslrootcert", &o.sslrootcert))
			continue;
		else {
			fprintf(stderr, "pgmoat login: unknown argument '%s'\n%s", a, login_usage);
			return 2;
		}
	}
	if (o.issuer && !*o.issuer)
		o.issuer = NULL;
	if (o.client_id && !*o.client_id)
		o.client_id = NULL;
	char *path = o.token_file ? gw_xstrdup(o.token_file) : default_token_path(true);
	if (!path)
		return 1;
	/* Signing in again at the same provider takes the settings of the last sign-in that were not given. */
	char *mp = meta_path(path);
	json_error_t je;
	json_t *last = json_load_file(mp, 0, &je);
	free(mp);
	if (!o.issuer && json_is_object(last))
		o.issuer = jget(last, "issuer");
	if (o.issuer && json_is_object(last) && jget(last, "issuer") && !strcmp(o.issuer, jget(last, "issuer"))) {
		if (!o.client_id)
			o.client_id = jget(last, "client_id");
		if (!o.ca)
			o.ca = jget(last, "ca");
		if (!o.scope)
			o.scope = jget(last, "scope");
		if (!o.resource)
			o.resource = jget(last, "resource");
		if (!o.token_type)
			o.token_type = jget(last, "token_type");
		if (!o.identity_claim && !o.identity_prefix) {
			o.identity_claim = jget(last, "identity_claim");
			o.identity_prefix = jget(last, "identity_prefix");
		}
	}
	int rc = login_run(&o, path);
	json_decref(last);
	free(path);
	return rc;
}

/* gw_cli_login once its options and their defaults are known. */
static int login_run(login_opts *op, const char *path)
{
	login_opts o = *op;
	if (!o.client_id)
		o.client_id = "pgmoat-cli";
	if (!o.scope)
		o.scope = "openid";
	if (!o.token_type)
		o.token_type = "access";
	o.identity_given = o.identity_claim || o.identity_prefix;
	if (!o.identity_claim)
		o.identity_claim = "sub";
	if (strcmp(o.token_type, "access") && strcmp(o.token_type, "id")) {
		fprintf(stderr, "pgmoat login: --token-type is access or id\n%s", login_usage);
		return 2;
	}
	if (o.issuer && strncmp(o.issuer, "https://", 8)) {
		fprintf(stderr, "pgmoat login: the issuer must be an https:// URL (OpenID Connect Discovery)\n");
		return 2;
	}
	stored s = {0};
	int rc;
	if (o.print_env && stored_load(path, &s) == 0 && s.expires_at > (long long)time(NULL) + 60 &&
		(!o.issuer || (s.issuer && !strcmp(s.issuer, o.issuer)))) {
		rc = print_env(&o, &s);
	} else {
		stored_free(&s);
		if (!o.issuer) {
			fprintf(stderr, "pgmoat login: which provider? pass --issuer URL or set PGMOAT_ISSUER\n%s", login_usage);
			return 2;
		}
		rc = device_flow(&o, path, &s);
		if (rc == 0 && o.print_env)
			rc = print_env(&o, &s);
	}
	stored_free(&s);
	return rc;
}
