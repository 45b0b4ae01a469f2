/*
 * pgmoat.yaml → gw_config.
 *
 * The YAML document is loaded whole with libyaml (it keeps line numbers), then
 * walked section by section through keyword tables: each table lists the keys a
 * mapping may hold and how to parse each one into the config struct. A key
 * that is in no table is an error, and every error names file:line.
 */
#include "core/config.h"
#include "core/clock.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

typedef struct cfg_ctx {
	yaml_document_t doc;
	const char *file;
	char *errors;
	size_t errlen;
	int nerr;
} cfg_ctx;

typedef void (*kw_fn)(cfg_ctx *, yaml_node_t *, void *dst, const char *key);

typedef struct cfg_kw {
	const char *name;
	kw_fn parse;
	size_t off;
} cfg_kw;

static void cfg_err_v(cfg_ctx *c, unsigned long line, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	char text[700];
	int len = snprintf(text, sizeof(text), "%s:%lu: %s\n", c->file, line, msg);
	if (len < 0)
		return;
	c->errors = gw_xrealloc(c->errors, c->errlen + (size_t)len + 1);
	memcpy(c->errors + c->errlen, text, (size_t)len + 1);
	c->errlen += (size_t)len;
	c->nerr++;
}

__attribute__((format(printf, 3, 4))) static void cfg_err(cfg_ctx *c, yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cfg_err_v(c, n ? (unsigned long)n->start_mark.line + 1 : 0ul, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void cfg_err_at(cfg_ctx *c, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cfg_err_v(c, (unsigned long)line, fmt, ap);
	va_end(ap);
}

static yaml_node_t *node_at(cfg_ctx *c, int idx) { return yaml_document_get_node(&c->doc, idx); }

static const char *scalar(cfg_ctx *c, yaml_node_t *n, const char *key)
{
	if (!n || n->type != YAML_SCALAR_NODE) {
		cfg_err(c, n, "%s: expected a single value", key);
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

/* Walk a mapping against a keyword table. */
static void walk(cfg_ctx *c, yaml_node_t *map, const cfg_kw *kws, size_t nkw, void *dst, const char *section)
{
	if (!map || map->type != YAML_MAPPING_NODE) {
		cfg_err(c, map, "%s: expected a mapping of keys", section);
		return;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
		if (!k || k->type != YAML_SCALAR_NODE) {
			cfg_err(c, k, "%s: keys must be plain names", section);
			continue;
		}
		const char *name = (const char *)k->data.scalar.value;
		bool seen = false;
		for (size_t i = 0; i < nkw; i++) {
			if (!strcmp(kws[i].name, name)) {
				char full[128];
				snprintf(full, sizeof(full), "%s%s%s", section, *section ? "." : "", name);
				kws[i].parse(c, v, (char *)dst + kws[i].off, full);
				seen = true;
				break;
			}
		}
		if (!seen) {
			char known[512] = "";
			for (size_t i = 0; i < nkw; i++) {
				strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
				strncat(known, kws[i].name, sizeof(known) - strlen(known) - 1);
			}
			cfg_err(c, k, "unknown key '%s%s%s' (known here: %s)", section, *section ? "." : "", name, known);
		}
	}
}

static void kw_str(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	char **out = dst;
	free(*out);
	*out = gw_xstrdup(s);
}

static void kw_bool(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	bool *out = dst;
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
		*out = false;
	else
		cfg_err(c, n, "%s: expected true or false, got '%s'", key, s);
}

static void kw_int(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 1000000000) {
		cfg_err(c, n, "%s: expected a whole number, got '%s'", key, s);
		return;
	}
	*(int *)dst = (int)v;
}

static void kw_size(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long mult = 1;
	if (!strcmp(end, "kB") || !strcmp(end, "KiB") || !strcmp(end, "k"))
		mult = 1024;
	else if (!strcmp(end, "MB") || !strcmp(end, "MiB") || !strcmp(end, "M"))
		mult = 1024 * 1024;
	else if (!strcmp(end, "GB") || !strcmp(end, "GiB") || !strcmp(end, "G"))
		mult = 1024ull * 1024 * 1024;
	else if (*end)
		mult = 0;
	if (end == s || mult == 0 || v == 0 || v > (1ull << 40) / mult) {
		cfg_err(c, n, "%s: expected a size such as 16kB, 64MB or 1GB, got '%s'", key, s);
		return;
	}
	*(size_t *)dst = (size_t)(v * mult);
}

static void kw_duration(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!gw_parse_duration(s, dst))
		cfg_err(c, n, "%s: expected a duration such as 30s, 15m, 2h or 7d, got '%s'", key, s);
}

static char *read_small_file(const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = gw_xmalloc(65537);
	size_t n = fread(buf, 1, 65536, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return buf;
}

/* A secret: env:VAR or file:PATH, never inline. */
static void kw_secret(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	char **out = dst;
	if (!strncmp(s, "env:", 4)) {
		const char *v = getenv(s + 4);
		if (!v || !*v) {
			cfg_err(c, n, "%s: environment variable %s is not set", key, s + 4);
			return;
		}
		free(*out);
		*out = gw_xstrdup(v);
	} else if (!strncmp(s, "file:", 5)) {
		char why[300];
		char *v = read_small_file(s + 5, why, sizeof(why));
		if (!v) {
			cfg_err(c, n, "%s: %s", key, why);
			return;
		}
		free(*out);
		*out = v;
	} else {
		cfg_err(c, n, "%s: secrets are never written inline; use env:VARIABLE or file:PATH", key);
	}
}

/* A file that is not secret: file:PATH or a plain path. */
static void kw_path(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!strncmp(s, "file:", 5))
		s += 5;
	else if (!strncmp(s, "env:", 4)) {
		cfg_err(c, n, "%s: expected a path (file:PATH or PATH)", key);
		return;
	}
	char **out = dst;
	free(*out);
	*out = gw_xstrdup(s);
}

typedef struct hostport {
	char host[256];
	int port;
} hostport;

static void parse_hostport(cfg_ctx *c, yaml_node_t *n, char *host, int *port, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!gw_split_hostport(s, host, 256, port))
		cfg_err(c, n, "%s: expected HOST:PORT, got '%s'", key, s);
}

static void kw_listen_pg(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	parse_hostport(c, n, cfg->pg_host, &cfg->pg_port, key);
}

static void kw_listen_http(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	parse_hostport(c, n, cfg->http_host, &cfg->http_port, key);
}

static void kw_listen_relay(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	parse_hostport(c, n, cfg->relay_host, &cfg->relay_port, key);
}

static const cfg_kw listen_kws[] = {
	{"postgres", kw_listen_pg, 0},
	{"http", kw_listen_http, 0},
	{"relay", kw_listen_relay, 0},
};

static void kw_listen(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, listen_kws, GW_ARRAY_LEN(listen_kws), dst, key);
}

static const cfg_kw tls_kws[] = {
	{"cert", kw_path, offsetof(gw_config, tls_cert)},
	{"key", kw_secret, offsetof(gw_config, tls_key)},
	{"client_ca", kw_path, offsetof(gw_config, tls_client_ca)},
	{"crl", kw_path, offsetof(gw_config, tls_crl)},
	{"allow_plaintext_loopback", kw_bool, offsetof(gw_config, allow_plaintext_loopback)},
};

static void kw_tls(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, tls_kws, GW_ARRAY_LEN(tls_kws), dst, key);
}

static const cfg_kw oidc_kws[] = {
	{"issuer", kw_str, offsetof(gw_oidc_issuer_cfg, issuer)},
	{"audience", kw_str, offsetof(gw_oidc_issuer_cfg, audience)},
	{"jwks_url", kw_str, offsetof(gw_oidc_issuer_cfg, jwks_url)},
	{"jwks_file", kw_path, offsetof(gw_oidc_issuer_cfg, jwks_file)},
	{"identity_claim", kw_str, offsetof(gw_oidc_issuer_cfg, identity_claim)},
	{"groups_claim", kw_str, offsetof(gw_oidc_issuer_cfg, groups_claim)},
	{"kind", kw_str, offsetof(gw_oidc_issuer_cfg, kind)},
	{"identity_prefix", kw_str, offsetof(gw_oidc_issuer_cfg, identity_prefix)},
	{"leeway", kw_duration, offsetof(gw_oidc_issuer_cfg, leeway_us)},
	{"auto_create", kw_bool, offsetof(gw_oidc_issuer_cfg, auto_create)},
	{"ca", kw_path, offsetof(gw_oidc_issuer_cfg, ca)},
	{"client_id", kw_str, offsetof(gw_oidc_issuer_cfg, client_id)},
};

/* A claim name: printable ASCII without quotes or spaces, 1..64 bytes. */
static bool claim_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\\')
			return false;
	return true;
}

static void oidc_issuer_check(cfg_ctx *c, yaml_node_t *v, gw_config *cfg, gw_oidc_issuer_cfg *o, const char *key)
{
	const char *nm = o->issuer ? o->issuer : "?";
	if (!o->issuer || !*o->issuer)
		cfg_err(c, v, "%s: every issuer needs issuer: (the exact iss of its tokens, such as https://login.example.com)", key);
	if (!o->audience || !*o->audience)
		cfg_err(c, v, "%s: issuer '%s' needs audience: (the aud its tokens carry for pgmoat)", key, nm);
	if (o->jwks_url && o->jwks_file)
		cfg_err(c, v, "%s: issuer '%s': jwks_url and jwks_file exclude each other", key, nm);
	if (o->jwks_url && strncmp(o->jwks_url, "https://", 8))
		cfg_err(c, v, "%s: issuer '%s': jwks_url must be an https:// URL (keys are only fetched over verified HTTPS)", key, nm);
	if (!o->jwks_url && !o->jwks_file && o->issuer && strncmp(o->issuer, "https://", 8))
		cfg_err(c, v, "%s: issuer '%s': its keys would be discovered from <issuer>/.well-known/openid-configuration, "
			"which needs an https:// issuer; or set jwks_url or jwks_file", key, nm);
	if (o->ca && o->jwks_file)
		cfg_err(c, v, "%s: issuer '%s': ca is for fetching keys over HTTPS; with jwks_file nothing is fetched", key, nm);
	if (!o->identity_claim)
		o->identity_claim = gw_xstrdup("sub");
	if (!claim_name_ok(o->identity_claim))
		cfg_err(c, v, "%s: issuer '%s': identity_claim '%s' is not a claim name", key, nm, o->identity_claim);
	if (o->groups_claim && !claim_name_ok(o->groups_claim))
		cfg_err(c, v, "%s: issuer '%s': groups_claim '%s' is not a claim name", key, nm, o->groups_claim);
	if (!o->kind)
		o->kind = gw_xstrdup("agent");
	if (strcmp(o->kind, "agent") && strcmp(o->kind, "human"))
		cfg_err(c, v, "%s: issuer '%s': kind must be agent or human, got '%s'", key, nm, o->kind);
	if (!o->identity_prefix)
		o->identity_prefix = gw_xstrdup("");
	for (const char *p = o->identity_prefix; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.@:", *p)) {
			cfg_err(c, v, "%s: issuer '%s': identity_prefix may use letters, digits and -_.@: only", key, nm);
			break;
		}
	if (strlen(o->identity_prefix) > 64)
		cfg_err(c, v, "%s: issuer '%s': identity_prefix is longer than 64", key, nm);
	if (o->leeway_us > 600 * 1000000ull)
		cfg_err(c, v, "%s: issuer '%s': leeway is at most 10m", key, nm);
	for (size_t i = 0; o->issuer && i + 1 < cfg->n_oidc; i++)
		if (cfg->oidc[i].issuer && !strcmp(cfg->oidc[i].issuer, o->issuer))
			cfg_err(c, v, "%s: issuer '%s' is listed twice", key, nm);
}

static void kw_oidc(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list of issuers, such as - {issuer: https://login.example.com, audience: pgmoat}", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		cfg->oidc = gw_xrealloc(cfg->oidc, (cfg->n_oidc + 1) * sizeof(gw_oidc_issuer_cfg));
		gw_oidc_issuer_cfg *o = &cfg->oidc[cfg->n_oidc++];
		memset(o, 0, sizeof(*o));
		o->leeway_us = 60 * 1000000ull;
		o->line = v ? (int)v->start_mark.line + 1 : 0;
		walk(c, v, oidc_kws, GW_ARRAY_LEN(oidc_kws), o, key);
		oidc_issuer_check(c, v, cfg, o, key);
	}
}

static void kw_mtls_from(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!strcmp(s, "cn"))
		*(int *)dst = GW_MTLS_CN;
	else if (!strcmp(s, "spiffe"))
		*(int *)dst = GW_MTLS_SPIFFE;
	else
		cfg_err(c, n, "%s: expected cn or spiffe, got '%s'", key, s);
}

static const cfg_kw mtls_kws[] = {
	{"identity_from", kw_mtls_from, offsetof(gw_config, mtls_from)},
	{"trust_domain", kw_str, offsetof(gw_config, mtls_trust_domain)},
};

static void kw_mtls(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, mtls_kws, GW_ARRAY_LEN(mtls_kws), dst, key);
	gw_config *cfg = dst;
	cfg->mtls_set = true;
	if (cfg->mtls_from == GW_MTLS_SPIFFE) {
		const char *td = cfg->mtls_trust_domain;
		bool ok = td && *td && strlen(td) <= 255;
		for (const char *p = td; ok && *p; p++)
			ok = islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr(".-_", *p);
		if (!ok)
			cfg_err(c, n, "%s: identity_from: spiffe needs trust_domain: (lowercase letters, digits, '.', '-', '_'; "
				"such as example.org)", key);
	} else if (cfg->mtls_trust_domain) {
		cfg_err(c, n, "%s: trust_domain is for identity_from: spiffe", key);
	}
}

static const cfg_kw identity_kws[] = {
	{"tokens", kw_bool, offsetof(gw_config, identity_tokens)},
	{"oidc", kw_oidc, 0},
	{"mtls", kw_mtls, 0},
	{"session_follows_token_expiry", kw_bool, offsetof(gw_config, session_follows_token_expiry)},
};

static void kw_identity(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, identity_kws, GW_ARRAY_LEN(identity_kws), dst, key);
}

static void kw_str_list(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list, such as [group:dba, identity:alice]", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		const char *s = scalar(c, v, key);
		if (!s)
			continue;
		if (strncmp(s, "group:", 6) && strncmp(s, "identity:", 9)) {
			cfg_err(c, v, "%s: '%s' must be group:NAME or identity:NAME", key, s);
			continue;
		}
		cfg->admins = gw_xrealloc(cfg->admins, (cfg->n_admins + 1) * sizeof(char *));
		cfg->admins[cfg->n_admins++] = gw_xstrdup(s);
	}
}

static void kw_state(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!strncmp(s, "sqlite:", 7) && s[7]) {
		free(cfg->state);
		free(cfg->state_path);
		cfg->state = gw_xstrdup(s);
		cfg->state_path = gw_xstrdup(s + 7);
	} else if (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11)) {
		cfg_err(c, n, "%s: a PostgreSQL state store is not supported by this version; use sqlite:PATH", key);
	} else {
		cfg_err(c, n, "%s: expected sqlite:PATH, got '%s'", key, s);
	}
}

static void kw_sslmode(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	static const char *const modes[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};
	for (int i = 0; i < 5; i++)
		if (!strcmp(s, modes[i])) {
			*(enum gw_sslmode *)dst = (enum gw_sslmode)i;
			return;
		}
	cfg_err(c, n, "%s: expected disable, prefer, require, verify-ca or verify-full, got '%s'", key, s);
}

static const cfg_kw pool_kws[] = {
	{"size", kw_int, offsetof(gw_conn_cfg, pool_size)},
};

static void kw_pool(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, pool_kws, GW_ARRAY_LEN(pool_kws), dst, key);
}

static const cfg_kw conn_kws[] = {
	{"name", kw_str, offsetof(gw_conn_cfg, name)},
	{"host", kw_str, offsetof(gw_conn_cfg, host)},
	{"port", kw_int, offsetof(gw_conn_cfg, port)},
	{"database", kw_str, offsetof(gw_conn_cfg, database)},
	{"user", kw_str, offsetof(gw_conn_cfg, user)},
	{"password", kw_secret, offsetof(gw_conn_cfg, password)},
	{"sslmode", kw_sslmode, offsetof(gw_conn_cfg, sslmode)},
	{"sslrootcert", kw_path, offsetof(gw_conn_cfg, sslrootcert)},
	{"pool", kw_pool, 0},
	/* these two last: a relay's targets take every key above them, not these */
	{"relay", kw_str, offsetof(gw_conn_cfg, relay)},
	{"target", kw_str, offsetof(gw_conn_cfg, target)},
};

static bool name_ok(const char *name)
{
	if (!*name)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

static void conn_defaults(gw_conn_cfg *cc, yaml_node_t *v)
{
	memset(cc, 0, sizeof(*cc));
	cc->port = 5432;
	cc->sslmode = GW_SSL_PREFER;
	cc->pool_size = 20;
	cc->line = v ? (int)v->start_mark.line + 1 : 0;
}

/* What a connection the gateway or a relay logs in to needs. */
static void conn_check_direct(cfg_ctx *c, yaml_node_t *v, const gw_conn_cfg *cc, const char *key)
{
	const char *nm = cc->name ? cc->name : "?";
	if (!cc->host)
		cfg_err(c, v, "%s: '%s' needs a host (an address, or a Unix socket directory such as /var/run/postgresql)", key, nm);
	if (!cc->database)
		cfg_err(c, v, "%s: '%s' needs a database", key, nm);
	if (!cc->user)
		cfg_err(c, v, "%s: '%s' needs a user (the registered upstream role)", key, nm);
	if (cc->port < 1 || cc->port > 65535)
		cfg_err(c, v, "%s: port must be 1-65535", key);
	if (cc->pool_size < 1 || cc->pool_size > 10000)
		cfg_err(c, v, "%s: pool.size must be 1-10000", key);
	if ((cc->sslmode == GW_SSL_VERIFY_CA || cc->sslmode == GW_SSL_VERIFY_FULL) && !cc->sslrootcert)
		cfg_err(c, v, "%s: sslmode %s needs sslrootcert: file:CA.pem", key, gw_sslmode_str(cc->sslmode));
}

static void kw_connections(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list of connections", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		cfg->conns = gw_xrealloc(cfg->conns, (cfg->n_conns + 1) * sizeof(gw_conn_cfg));
		gw_conn_cfg *cc = &cfg->conns[cfg->n_conns++];
		conn_defaults(cc, v);
		walk(c, v, conn_kws, GW_ARRAY_LEN(conn_kws), cc, key);
		if (!cc->name || !*cc->name)
			cfg_err(c, v, "%s: every connection needs a name", key);
		else {
			if (!name_ok(cc->name))
				cfg_err(c, v, "%s: connection name '%s' may use letters, digits, '-', '_' and '.' only", key, cc->name);
			for (size_t i = 0; i + 1 < cfg->n_conns; i++)
				if (cfg->conns[i].name && !strcmp(cfg->conns[i].name, cc->name))
					cfg_err(c, v, "%s: connection '%s' is defined twice", key, cc->name);
		}
		const char *nm = cc->name ? cc->name : "?";
		if (cc->relay || cc->target) {
			/* The relay holds the address and the credentials (SPEC "Relay"). */
			if (!cc->relay || !cc->target)
				cfg_err(c, v, "%s: connection '%s': relay and target go together (relay: dc1, target: billing)", key, nm);
			else if (!name_ok(cc->relay) || !name_ok(cc->target))
				cfg_err(c, v, "%s: connection '%s': relay and target names may use letters, digits, '-', '_' and '.' only", key, nm);
			if (cc->password)
				cfg_err(c, v, "%s: connection '%s' goes through relay '%s', which holds the database password; remove password:",
					key, nm, cc->relay ? cc->relay : "?");
			if (cc->host)
				cfg_err(c, v, "%s: connection '%s' goes through a relay: its host is in the relay's targets, not here; remove host:", key, nm);
			if (cc->pool_size < 1 || cc->pool_size > 10000)
				cfg_err(c, v, "%s: pool.size must be 1-10000", key);
		} else {
			conn_check_direct(c, v, cc, key);
		}
	}
}

static const cfg_kw limits_kws[] = {
	{"max_message_size", kw_size, offsetof(gw_config, max_message_size)},
	{"max_startup_size", kw_size, offsetof(gw_config, max_startup_size)},
	{"auth_timeout", kw_duration, offsetof(gw_config, auth_timeout_us)},
	{"pool_wait_timeout", kw_duration, offsetof(gw_config, pool_wait_timeout_us)},
	{"connect_timeout", kw_duration, offsetof(gw_config, connect_timeout_us)},
	{"max_clients", kw_int, offsetof(gw_config, max_clients)},
	{"auth_failures_per_minute", kw_int, offsetof(gw_config, auth_failures_per_minute)},
	{"workers", kw_int, offsetof(gw_config, workers)},
	{"worker_fill", kw_int, offsetof(gw_config, worker_fill)},
};

static void kw_limits(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, limits_kws, GW_ARRAY_LEN(limits_kws), dst, key);
}

static void kw_log_level(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	int l = -1;
	if (!strcmp(s, "debug")) l = 0;
	else if (!strcmp(s, "info")) l = 1;
	else if (!strcmp(s, "warn")) l = 2;
	else if (!strcmp(s, "error")) l = 3;
	if (l < 0)
		cfg_err(c, n, "%s: expected debug, info, warn or error", key);
	else
		*(int *)dst = l;
}

/* ---- policies ---- */

static void strlist_add(gw_strlist *l, const char *s)
{
	l->v = gw_xrealloc(l->v, (l->n + 1) * sizeof(char *));
	l->v[l->n++] = gw_xstrdup(s);
}

static void strlist_free(gw_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

bool gw_strlist_has(const gw_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

/* A list of scalars (a single scalar is taken as a one-item list). */
static void kw_list(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_strlist *l = dst;
	if (n && n->type == YAML_SCALAR_NODE) {
		strlist_add(l, (const char *)n->data.scalar.value);
		return;
	}
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list, such as [a, b]", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		const char *v = scalar(c, node_at(c, *it), key);
		if (v)
			strlist_add(l, v);
	}
}

static void kw_principals(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_strlist *l = dst;
	size_t before = l->n;
	kw_list(c, n, dst, key);
	for (size_t i = before; i < l->n; i++)
		if (strncmp(l->v[i], "group:", 6) && strncmp(l->v[i], "identity:", 9))
			cfg_err(c, n, "%s: '%s' must be group:NAME or identity:NAME", key, l->v[i]);
}

static int class_from(const char *s)
{
	static const char *const names[] = {"read", "write", "ddl", "admin"};
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static void kw_scope(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	int v = class_from(s);
	if (v < 0) {
		cfg_err(c, n, "%s: expected read, write, ddl or admin, got '%s'", key, s);
		*(int *)dst = -2; /* present but wrong: said once */
	} else {
		*(int *)dst = v;
	}
}

static void kw_tables(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_policy_cfg *p = dst;
	p->has_tables = true;
	size_t before = p->tables.n;
	kw_list(c, n, &p->tables, key);
	for (size_t i = before; i < p->tables.n; i++) {
		char *t = p->tables.v[i];
		const char *dot = strchr(t, '.');
		if (!dot || dot == t || !dot[1] || strchr(dot + 1, '.'))
			cfg_err(c, n, "%s: '%s' must be schema.table or schema.* (names are matched as PostgreSQL "
				"stores them: lower case unless created quoted)", key, t);
	}
}

static void kw_windows(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_policy_cfg *p = dst;
	gw_strlist specs = {0};
	kw_list(c, n, &specs, key);
	for (size_t i = 0; i < specs.n; i++) {
		char why[256];
		gw_window *w = gw_window_parse(specs.v[i], why, sizeof(why));
		if (!w) {
			cfg_err(c, n, "%s: \"%s\": %s", key, specs.v[i], why);
			continue;
		}
		p->windows = gw_xrealloc(p->windows, (p->n_windows + 1) * sizeof(gw_window *));
		p->windows[p->n_windows++] = w;
	}
	strlist_free(&specs);
}

static void kw_access(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!strcmp(s, "jit"))
		*(bool *)dst = true;
	else if (!strcmp(s, "standing"))
		*(bool *)dst = false;
	else
		cfg_err(c, n, "%s: expected standing or jit, got '%s'", key, s);
}

static const cfg_kw approval_kws[] = {
	{"approvers", kw_principals, offsetof(gw_policy_cfg, approvers)},
	{"required", kw_int, offsetof(gw_policy_cfg, required)},
};

static void kw_approval(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_policy_cfg *p = dst;
	p->has_approval = true;
	walk(c, n, approval_kws, GW_ARRAY_LEN(approval_kws), dst, key);
	if (p->required < 1 || p->required > 10)
		cfg_err(c, n, "%s: required must be 1-10", key);
}

static void kw_review(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_strlist l = {0};
	kw_list(c, n, &l, key);
	for (size_t i = 0; i < l.n; i++) {
		int v = class_from(l.v[i]);
		if (v < 0)
			cfg_err(c, n, "%s: '%s' is not a statement class (read, write, ddl, admin)", key, l.v[i]);
		else
			*(unsigned *)dst |= 1u << v;
	}
	strlist_free(&l);
}

static const struct {
	const char *name;
	unsigned bit;
} guardrail_names[] = {
	{"no_delete_without_where", GW_GR_NO_DELETE_WITHOUT_WHERE},
	{"no_update_without_where", GW_GR_NO_UPDATE_WITHOUT_WHERE},
	{"no_drop", GW_GR_NO_DROP},
	{"no_truncate", GW_GR_NO_TRUNCATE},
	{"no_copy_program", GW_GR_NO_COPY_PROGRAM},
	{"no_alter_system", GW_GR_NO_ALTER_SYSTEM},
};

const char *gw_guardrail_name(unsigned bit)
{
	for (size_t i = 0; i < GW_ARRAY_LEN(guardrail_names); i++)
		if (guardrail_names[i].bit == bit)
			return guardrail_names[i].name;
	return "?";
}

/* guardrails: [no_drop, {max_rows: 1000}, ...] */
static void kw_guardrails(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_policy_cfg *p = dst;
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list, such as [no_drop, {max_rows: 1000}]", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		if (v && v->type == YAML_MAPPING_NODE) {
			for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top; pr++) {
				yaml_node_t *k = node_at(c, pr->key), *val = node_at(c, pr->value);
				const char *kn = scalar(c, k, key);
				if (!kn)
					continue;
				if (strcmp(kn, "max_rows")) {
					cfg_err(c, k, "%s: unknown guardrail '%s' with a value (known: max_rows)", key, kn);
					continue;
				}
				int rows = 0;
				kw_int(c, val, &rows, "guardrails.max_rows");
				if (rows < 1)
					cfg_err(c, val, "%s: max_rows must be at least 1", key);
				p->max_rows = rows;
			}
			continue;
		}
		const char *s = scalar(c, v, key);
		if (!s)
			continue;
		bool found = false;
		for (size_t i = 0; i < GW_ARRAY_LEN(guardrail_names); i++)
			if (!strcmp(s, guardrail_names[i].name)) {
				p->guardrails |= guardrail_names[i].bit;
				found = true;
			}
		if (!found)
			cfg_err(c, v, "%s: unknown guardrail '%s' (known: no_delete_without_where, no_update_without_where, "
				"no_drop, no_truncate, no_copy_program, no_alter_system, {max_rows: N})", key, s);
	}
}

static const cfg_kw policy_kws[] = {
	{"name", kw_str, offsetof(gw_policy_cfg, name)},
	{"who", kw_principals, offsetof(gw_policy_cfg, who)},
	{"connections", kw_list, offsetof(gw_policy_cfg, connections)},
	{"scope", kw_scope, offsetof(gw_policy_cfg, scope)},
	{"tables", kw_tables, 0},
	{"window", kw_windows, 0},
	{"access", kw_access, offsetof(gw_policy_cfg, jit)},
	{"max_duration", kw_duration, offsetof(gw_policy_cfg, max_duration_us)},
	{"approval", kw_approval, 0},
	{"review", kw_review, offsetof(gw_policy_cfg, review_mask)},
	{"guardrails", kw_guardrails, 0},
};

static bool policy_name_ok(const char *s)
{
	if (!*s || strlen(s) > 100)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static void kw_policies(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	cfg->has_policies = true;
	if (n && n->type == YAML_SCALAR_NODE && !*(const char *)n->data.scalar.value)
		return; /* "policies:" with nothing: deny everything */
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list of policies", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		cfg->policies = gw_xrealloc(cfg->policies, (cfg->n_policies + 1) * sizeof(gw_policy_cfg));
		gw_policy_cfg *p = &cfg->policies[cfg->n_policies++];
		memset(p, 0, sizeof(*p));
		p->scope = -1;
		p->required = 1;
		p->max_duration_us = 3600ull * 1000000;
		p->line = v ? (int)v->start_mark.line + 1 : 0;
		walk(c, v, policy_kws, GW_ARRAY_LEN(policy_kws), p, key);
		const char *nm = p->name ? p->name : "?";
		if (!p->name || !policy_name_ok(p->name))
			cfg_err(c, v, "%s: every policy needs a name (letters, digits, '-', '_', '.')", key);
		for (size_t i = 0; p->name && i + 1 < cfg->n_policies; i++)
			if (cfg->policies[i].name && !strcmp(cfg->policies[i].name, p->name))
				cfg_err(c, v, "%s: policy '%s' is defined twice", key, p->name);
		if (!p->who.n)
			cfg_err(c, v, "%s: policy '%s' needs who: [group:NAME or identity:NAME, ...]", key, nm);
		if (!p->connections.n)
			cfg_err(c, v, "%s: policy '%s' needs connections: [NAME, ...]", key, nm);
		if (p->scope == -1)
			cfg_err(c, v, "%s: policy '%s' needs scope: read, write, ddl or admin", key, nm);
		if (p->has_approval && !p->jit)
			cfg_err(c, v, "%s: policy '%s': approval: applies to access: jit only", key, nm);
		if (p->max_duration_us < 1000000 || p->max_duration_us > 366ull * 86400 * 1000000)
			cfg_err(c, v, "%s: policy '%s': max_duration must be between 1s and 366d", key, nm);
	}
}

/* ---- masking: ---- */

static const char *const detector_names[] = {"EMAIL_ADDRESS", "CREDIT_CARD", "US_SSN", "PHONE_NUMBER", "IBAN_CODE",
	"IP_ADDRESS", "PRIVATE_KEY", "JWT", "API_KEY"};

static void kw_mask_column(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_mask_rule_cfg *r = dst;
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	/* schema.table.column or table.column; names as PostgreSQL folds them (lower case unless quoted there) */
	const char *d1 = strchr(s, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || (d2 && strchr(d2 + 1, '.')) || d1 == s || !d1[1] || (d2 && (d2 == d1 + 1 || !d2[1]))) {
		cfg_err(c, n, "%s: expected schema.table.column or table.column, got '%s'", key, s);
		return;
	}
	if (d2) {
		r->schema = gw_xstrndup(s, (size_t)(d1 - s));
		r->table = gw_xstrndup(d1 + 1, (size_t)(d2 - d1 - 1));
		r->column = gw_xstrdup(d2 + 1);
	} else {
		r->table = gw_xstrndup(s, (size_t)(d1 - s));
		r->column = gw_xstrdup(d1 + 1);
	}
}

static void kw_mask_column_name(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	char **out = dst;
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_UTF, &code, &off,
		NULL);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof(msg));
		cfg_err(c, n, "%s: not a valid regular expression at offset %zu: %s", key, (size_t)off, (char *)msg);
		return;
	}
	pcre2_code_free(re);
	free(*out);
	*out = gw_xstrdup(s);
}

static void kw_mask_action(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	static const char *const names[] = {"", "redact", "partial", "hash", "null"};
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	for (int i = 1; i < (int)GW_ARRAY_LEN(names); i++)
		if (!strcmp(s, names[i])) {
			*(int *)dst = i;
			return;
		}
	cfg_err(c, n, "%s: expected redact, partial, hash or null, got '%s'", key, s);
}

static const cfg_kw mask_rule_kws[] = {
	{"column", kw_mask_column, 0},
	{"column_name", kw_mask_column_name, offsetof(gw_mask_rule_cfg, column_name)},
	{"action", kw_mask_action, offsetof(gw_mask_rule_cfg, action)},
};

static void kw_mask_rules(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list of rules such as {column: public.customers.email, action: partial}", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		cfg->mask_rules = gw_xrealloc(cfg->mask_rules, (cfg->n_mask_rules + 1) * sizeof(gw_mask_rule_cfg));
		gw_mask_rule_cfg *r = &cfg->mask_rules[cfg->n_mask_rules++];
		memset(r, 0, sizeof(*r));
		r->line = v ? (int)v->start_mark.line + 1 : 0;
		walk(c, v, mask_rule_kws, GW_ARRAY_LEN(mask_rule_kws), r, key);
		if (!r->column == !r->column_name)
			cfg_err(c, v, "%s: each rule names either column: schema.table.column or column_name: REGEX", key);
		if (!r->action)
			cfg_err(c, v, "%s: each rule needs action: redact, partial, hash or null", key);
	}
}

static void kw_mask_detectors(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	cfg->mask_detectors_set = true;
	if (n && n->type == YAML_SEQUENCE_NODE && n->data.sequence.items.start == n->data.sequence.items.top)
		return; /* [] : no content detection */
	kw_list(c, n, &cfg->mask_detectors, key); /* checked once the provider is known (kw_masking) */
}

/* Detector names: the built-in ones, or with Presidio any of its entity names (upper case and '_'). */
static void check_detectors(cfg_ctx *c, yaml_node_t *n, const gw_config *cfg)
{
	for (size_t i = 0; i < cfg->mask_detectors.n; i++) {
		const char *d = cfg->mask_detectors.v[i];
		bool known = false;
		for (size_t j = 0; j < GW_ARRAY_LEN(detector_names); j++)
			known |= !strcmp(detector_names[j], d);
		bool name_ok = *d && strlen(d) < 64;
		for (const char *q = d; *q; q++)
			name_ok &= (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_';
		if (!known && !(cfg->mask_presidio && name_ok))
			cfg_err(c, n, "masking.detectors: unknown detector '%s' (built in: EMAIL_ADDRESS, CREDIT_CARD, US_SSN, "
				"PHONE_NUMBER, IBAN_CODE, IP_ADDRESS, PRIVATE_KEY, JWT, API_KEY; with provider: presidio, any of "
				"its entity names)", d);
	}
}

static void kw_on_error(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (!strcmp(s, "block"))
		*(bool *)dst = false;
	else if (!strcmp(s, "builtin"))
		*(bool *)dst = true;
	else
		cfg_err(c, n, "%s: expected block (refuse the result) or builtin (fall back to the built-in detectors); "
			"there is no setting that lets values through unscanned", key);
}

static void kw_score(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || v < 0 || v > 1)
		cfg_err(c, n, "%s: expected a number from 0 to 1, got '%s'", key, s);
	else
		*(double *)dst = v;
}

static const cfg_kw presidio_kws[] = {
	{"presidio", kw_str, offsetof(gw_config, mask_presidio)},
	{"timeout", kw_duration, offsetof(gw_config, mask_presidio_timeout_us)},
	{"on_error", kw_on_error, offsetof(gw_config, mask_presidio_fallback)},
	{"score_threshold", kw_score, offsetof(gw_config, mask_presidio_score)},
	{"ca", kw_path, offsetof(gw_config, mask_presidio_ca)},
};

static void kw_mask_provider(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	const char *s = n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
	if (s && !strcmp(s, "builtin"))
		return;
	if (!n || n->type != YAML_MAPPING_NODE) {
		cfg_err(c, n, "%s: expected builtin or {presidio: URL, timeout: 2s, on_error: block}", key);
		return;
	}
	walk(c, n, presidio_kws, GW_ARRAY_LEN(presidio_kws), dst, key);
	if (!cfg->mask_presidio)
		cfg_err(c, n, "%s: presidio: the analyzer's URL, e.g. http://127.0.0.1:5002/analyze", key);
	else if (strncmp(cfg->mask_presidio, "http://", 7) && strncmp(cfg->mask_presidio, "https://", 8))
		cfg_err(c, n, "%s.presidio: expected an http:// or https:// URL", key);
	if (cfg->mask_presidio_timeout_us && (cfg->mask_presidio_timeout_us < 1000 ||
			cfg->mask_presidio_timeout_us > 60000000))
		cfg_err(c, n, "%s.timeout: between 1ms and 60s", key);
}

static const cfg_kw mask_kws[] = {
	{"provider", kw_mask_provider, 0},
	{"rules", kw_mask_rules, 0},
	{"detectors", kw_mask_detectors, 0},
	{"exempt", kw_principals, offsetof(gw_config, mask_exempt)},
	{"hash_key", kw_secret, offsetof(gw_config, mask_hash_key)},
	{"max_row", kw_size, offsetof(gw_config, mask_max_row)},
};

static void kw_masking(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	cfg->has_masking = true;
	if (n && n->type == YAML_SCALAR_NODE && !*(const char *)n->data.scalar.value)
		return; /* "masking:" alone: every built-in detector, no column rules */
	walk(c, n, mask_kws, GW_ARRAY_LEN(mask_kws), dst, key);
	check_detectors(c, n, cfg);
	bool hash = false;
	for (size_t i = 0; i < cfg->n_mask_rules; i++)
		hash |= cfg->mask_rules[i].action == GW_MASK_HASH;
	if (hash && !cfg->mask_hash_key)
		cfg_err(c, n, "%s: a rule uses action: hash, which needs hash_key: env:VAR or file:PATH (a secret of 16 "
			"bytes or more, kept stable so hashed values stay joinable)", key);
	if (cfg->mask_hash_key && strlen(cfg->mask_hash_key) < 16)
		cfg_err(c, n, "%s.hash_key: needs at least 16 bytes", key);
}

static const cfg_kw notify_kws[] = {
	{"webhook", kw_str, offsetof(gw_config, notify_webhook)},
};

static void kw_notify(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	walk(c, n, notify_kws, GW_ARRAY_LEN(notify_kws), dst, key);
	if (cfg->notify_webhook && strncmp(cfg->notify_webhook, "http://", 7) && strncmp(cfg->notify_webhook, "https://", 8))
		cfg_err(c, n, "%s.webhook: expected an http:// or https:// URL", key);
}

static void kw_statement_text(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	const char *s = scalar(c, n, key);
	if (!s)
		return;
	if (strcmp(s, "full") && strcmp(s, "normalized"))
		cfg_err(c, n, "%s: expected full or normalized, got '%s'", key, s);
	*(bool *)dst = !strcmp(s, "normalized");
}

static const cfg_kw audit_kws[] = {
	{"jsonl", kw_path, offsetof(gw_config, audit_jsonl)},
	{"jsonl_max_size", kw_size, offsetof(gw_config, audit_jsonl_max_size)},
	{"jsonl_keep", kw_int, offsetof(gw_config, audit_jsonl_keep)},
	{"statement_text", kw_statement_text, offsetof(gw_config, audit_normalized)},
	{"checkpoint_key", kw_secret, offsetof(gw_config, audit_checkpoint_key)},
	{"fsync", kw_bool, offsetof(gw_config, audit_fsync)},
	{"queue_max", kw_int, offsetof(gw_config, audit_queue_max)},
};

static void kw_audit(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_config *cfg = dst;
	walk(c, n, audit_kws, GW_ARRAY_LEN(audit_kws), dst, key);
	if (cfg->audit_checkpoint_key && strlen(cfg->audit_checkpoint_key) < 16)
		cfg_err(c, n, "%s.checkpoint_key: the key must be at least 16 bytes (for example: openssl rand -hex 32)", key);
	if (cfg->audit_jsonl_keep > 1000)
		cfg_err(c, n, "%s.jsonl_keep: at most 1000 rotated files", key);
}

static void policy_free(gw_policy_cfg *p)
{
	free(p->name);
	strlist_free(&p->who);
	strlist_free(&p->connections);
	strlist_free(&p->tables);
	strlist_free(&p->approvers);
	for (size_t i = 0; i < p->n_windows; i++)
		gw_window_free(p->windows[i]);
	free(p->windows);
}

const gw_policy_cfg *gw_config_policy(const gw_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_policies; i++)
		if (!strcmp(cfg->policies[i].name, name))
			return &cfg->policies[i];
	return NULL;
}

static const cfg_kw top_kws[] = {
	{"listen", kw_listen, 0},
	{"tls", kw_tls, 0},
	{"state", kw_state, 0},
	{"admin_token", kw_secret, offsetof(gw_config, admin_token)},
	{"admins", kw_str_list, 0},
	{"identity", kw_identity, 0},
	{"connections", kw_connections, 0},
	{"limits", kw_limits, 0},
	{"log_level", kw_log_level, offsetof(gw_config, log_level)},
	{"policies", kw_policies, 0},
	{"masking", kw_masking, 0},
	{"audit", kw_audit, 0},
	{"notify", kw_notify, 0},
};

const char *gw_sslmode_str(enum gw_sslmode m)
{
	static const char *const modes[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};
	return modes[m];
}

/* Parse FILE into c->doc; false (and *errors set) when it cannot be read or is not YAML. */
static bool load_doc(cfg_ctx *c, const char *file, char **errors)
{
	*errors = NULL;
	c->file = file;
	FILE *f = fopen(file, "rb");
	if (!f) {
		*errors = gw_xasprintf("%s: cannot open: %s\n", file, strerror(errno));
		return false;
	}
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &c->doc)) {
		*errors = gw_xasprintf("%s:%lu: YAML syntax error: %s\n", file,
			(unsigned long)parser.problem_mark.line + 1, parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		fclose(f);
		return false;
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return true;
}

gw_config *gw_config_load(const char *file, char **errors)
{
	cfg_ctx c = {0};
	if (!load_doc(&c, file, errors))
		return NULL;

	gw_config *cfg = gw_xcalloc(1, sizeof(*cfg));
	cfg->path = gw_xstrdup(file);
	snprintf(cfg->pg_host, sizeof(cfg->pg_host), "0.0.0.0");
	cfg->pg_port = 6432;
	snprintf(cfg->http_host, sizeof(cfg->http_host), "127.0.0.1");
	cfg->http_port = 8080;
	cfg->identity_tokens = true;
	cfg->session_follows_token_expiry = true;
	cfg->max_message_size = 1024ul * 1024 * 1024;
	cfg->max_startup_size = 10000;
	cfg->auth_timeout_us = 10 * 1000000ull;
	cfg->pool_wait_timeout_us = 30 * 1000000ull;
	cfg->connect_timeout_us = 10 * 1000000ull;
	cfg->max_clients = 10000;
	cfg->auth_failures_per_minute = 20;
	cfg->log_level = 1;
	cfg->worker_fill = 16;
	cfg->audit_jsonl_max_size = 100ul * 1024 * 1024;
	cfg->audit_jsonl_keep = 5;
	cfg->mask_max_row = 64ul * 1024 * 1024;
	cfg->mask_presidio_score = 0.5;

	yaml_node_t *root = yaml_document_get_root_node(&c.doc);
	if (!root)
		cfg_err(&c, NULL, "the file is empty; see README for a minimal pgmoat.yaml");
	else
		walk(&c, root, top_kws, GW_ARRAY_LEN(top_kws), cfg, "");
	if (root && !cfg->state_path)
		cfg_err(&c, root, "state: missing; for example  state: \"sqlite:/var/lib/pgmoat/state.db\"");
	if (root && (!cfg->tls_cert) != (!cfg->tls_key))
		cfg_err(&c, root, "tls: cert and key go together");
	if (root && cfg->tls_client_ca && !cfg->tls_cert)
		cfg_err(&c, root, "tls.client_ca: client certificates come over TLS; set tls.cert and tls.key");
	if (root && cfg->tls_crl && !cfg->tls_client_ca)
		cfg_err(&c, root, "tls.crl: revocation lists are checked for client certificates; set tls.client_ca");
	if (root && cfg->mtls_set && !cfg->tls_client_ca)
		cfg_err(&c, root, "identity.mtls: client certificates need tls.client_ca (the CA that signs them)");
	for (size_t i = 0; i < cfg->n_policies; i++) {
		const gw_policy_cfg *p = &cfg->policies[i];
		for (size_t j = 0; j < p->connections.n; j++)
			if (!gw_config_conn(cfg, p->connections.v[j]))
				cfg_err_at(&c, p->line, "policies: policy '%s' names connection '%s', which is not in connections:",
					p->name ? p->name : "?", p->connections.v[j]);
	}
	if (root && cfg->relay_port && !cfg->tls_cert)
		cfg_err(&c, root, "listen.relay: relays connect over TLS only; set tls.cert and tls.key");
	for (size_t i = 0; i < cfg->n_conns; i++)
		if (cfg->conns[i].relay && !cfg->relay_port)
			cfg_err_at(&c, cfg->conns[i].line, "connections: '%s' goes through relay '%s' but listen.relay is not set",
				cfg->conns[i].name ? cfg->conns[i].name : "?", cfg->conns[i].relay);
	if (root && !cfg->tls_cert && !cfg->allow_plaintext_loopback)
		cfg_err(&c, root, "tls: no cert/key and allow_plaintext_loopback is off, so no client could log in");
	if (cfg->audit_checkpoint_key)
		cfg->audit_checkpoint_key_len = strlen(cfg->audit_checkpoint_key);
	if (cfg->mask_presidio && !cfg->mask_presidio_timeout_us)
		cfg->mask_presidio_timeout_us = 2000000;
	if (!cfg->audit_queue_max)
		cfg->audit_queue_max = 100000;
	yaml_document_delete(&c.doc);
	if (c.nerr) {
		*errors = c.errors;
		gw_config_free(cfg);
		return NULL;
	}
	free(c.errors);
	return cfg;
}

static void conn_free(gw_conn_cfg *cc)
{
	free(cc->name);
	free(cc->host);
	free(cc->database);
	free(cc->user);
	if (cc->password)
		explicit_bzero(cc->password, strlen(cc->password));
	free(cc->password);
	free(cc->sslrootcert);
	free(cc->relay);
	free(cc->target);
}

void gw_config_free(gw_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_client_ca);
	free(cfg->tls_crl);
	for (size_t i = 0; i < cfg->n_oidc; i++) {
		gw_oidc_issuer_cfg *o = &cfg->oidc[i];
		free(o->issuer);
		free(o->audience);
		free(o->jwks_url);
		free(o->jwks_file);
		free(o->identity_claim);
		free(o->groups_claim);
		free(o->kind);
		free(o->identity_prefix);
		free(o->ca);
		free(o->client_id);
	}
	free(cfg->oidc);
	free(cfg->mtls_trust_domain);
	free(cfg->state);
	free(cfg->state_path);
	free(cfg->admin_token);
	for (size_t i = 0; i < cfg->n_admins; i++)
		free(cfg->admins[i]);
	free(cfg->admins);
	for (size_t i = 0; i < cfg->n_conns; i++)
		conn_free(&cfg->conns[i]);
	free(cfg->conns);
	for (size_t i = 0; i < cfg->n_policies; i++)
		policy_free(&cfg->policies[i]);
	free(cfg->policies);
	free(cfg->notify_webhook);
	free(cfg->audit_jsonl);
	if (cfg->audit_checkpoint_key)
		explicit_bzero(cfg->audit_checkpoint_key, strlen(cfg->audit_checkpoint_key));
	free(cfg->audit_checkpoint_key);
	for (size_t i = 0; i < cfg->n_mask_rules; i++) {
		gw_mask_rule_cfg *r = &cfg->mask_rules[i];
		free(r->schema);
		free(r->table);
		free(r->column);
		free(r->column_name);
	}
	free(cfg->mask_rules);
	strlist_free(&cfg->mask_detectors);
	strlist_free(&cfg->mask_exempt);
	if (cfg->mask_hash_key)
		explicit_bzero(cfg->mask_hash_key, strlen(cfg->mask_hash_key));
	free(cfg->mask_hash_key);
	free(cfg->mask_presidio);
	free(cfg->mask_presidio_ca);
	free(cfg);
}

const gw_conn_cfg *gw_config_conn(const gw_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_conns; i++)
		if (!strcmp(cfg->conns[i].name, name))
			return &cfg->conns[i];
	return NULL;
}

/* ---- relay.yaml ---- */

static void kw_gw_address(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_relay_config *rc = dst;
	parse_hostport(c, n, rc->gw_host, &rc->gw_port, key);
}

static const cfg_kw relay_gw_kws[] = {
	{"address", kw_gw_address, 0},
	{"ca", kw_path, offsetof(gw_relay_config, gw_ca)},
	{"server_name", kw_str, offsetof(gw_relay_config, gw_server_name)},
};

static void kw_relay_gateway(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	walk(c, n, relay_gw_kws, GW_ARRAY_LEN(relay_gw_kws), dst, key);
}

static void target_check_name(cfg_ctx *c, yaml_node_t *v, gw_relay_config *rc, const char *key)
{
	gw_conn_cfg *t = &rc->targets[rc->n_targets - 1];
	if (!t->name || !name_ok(t->name))
		cfg_err(c, v, "%s: every target needs a name of letters, digits, '-', '_' and '.'", key);
	else
		for (size_t i = 0; i + 1 < rc->n_targets; i++)
			if (!strcmp(rc->targets[i].name, t->name))
				cfg_err(c, v, "%s: target '%s' is defined twice", key, t->name);
}

static void kw_targets(cfg_ctx *c, yaml_node_t *n, void *dst, const char *key)
{
	gw_relay_config *rc = dst;
	if (!n || n->type != YAML_SEQUENCE_NODE) {
		cfg_err(c, n, "%s: expected a list of targets", key);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *v = node_at(c, *it);
		rc->targets = gw_xrealloc(rc->targets, (rc->n_targets + 1) * sizeof(gw_conn_cfg));
		gw_conn_cfg *t = &rc->targets[rc->n_targets++];
		conn_defaults(t, v);
		t->pool_size = 100;
		/* a target takes the keys of a direct connection: conn_kws without its last two (relay, target) */
		walk(c, v, conn_kws, GW_ARRAY_LEN(conn_kws) - 2, t, key);
		target_check_name(c, v, rc, key);
		conn_check_direct(c, v, t, key);
	}
}

static const cfg_kw relay_top_kws[] = {
	{"gateway", kw_relay_gateway, 0},
	{"name", kw_str, offsetof(gw_relay_config, name)},
	{"token", kw_secret, offsetof(gw_relay_config, token)},
	{"targets", kw_targets, 0},
	{"tunnels", kw_int, offsetof(gw_relay_config, tunnels)},
	{"warm", kw_int, offsetof(gw_relay_config, warm)},
	{"connect_timeout", kw_duration, offsetof(gw_relay_config, connect_timeout_us)},
	{"log_level", kw_log_level, offsetof(gw_relay_config, log_level)},
};

static gw_relay_config *relay_config_new(void)
{
	gw_relay_config *rc = gw_xcalloc(1, sizeof(*rc));
	rc->tunnels = 4;
	rc->warm = 1;
	rc->connect_timeout_us = 10 * 1000000ull;
	rc->log_level = 1;
	return rc;
}

gw_relay_config *gw_relay_config_load(const char *file, char **errors)
{
	*errors = NULL;
	if (!file)
		return relay_config_new();
	cfg_ctx c = {0};
	if (!load_doc(&c, file, errors))
		return NULL;
	gw_relay_config *rc = relay_config_new();
	rc->path = gw_xstrdup(file);
	yaml_node_t *root = yaml_document_get_root_node(&c.doc);
	if (!root)
		cfg_err(&c, NULL, "the file is empty; see README (\"Relay\") for a relay.yaml");
	else
		walk(&c, root, relay_top_kws, GW_ARRAY_LEN(relay_top_kws), rc, "");
	if (rc->tunnels < 1 || rc->tunnels > 1000)
		cfg_err(&c, root, "tunnels: expected 1-1000");
	if (rc->warm > 100)
		cfg_err(&c, root, "warm: expected 0-100");
	yaml_document_delete(&c.doc);
	if (c.nerr) {
		*errors = c.errors;
		gw_relay_config_free(rc);
		return NULL;
	}
	free(c.errors);
	return rc;
}

int gw_relay_config_add_target(gw_relay_config *rc, const char *words, char *err, size_t errlen)
{
	gw_conn_cfg t;
	conn_defaults(&t, NULL);
	t.pool_size = 100;
	char *copy = gw_xstrdup(words), *save = NULL;
	int rc_ = 0;
	for (char *w = strtok_r(copy, " \t", &save); w && !rc_; w = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(w, '=');
		if (!eq || eq == w) {
			snprintf(err, errlen, "--target: expected key=value words, got '%s'", w);
			rc_ = -1;
			break;
		}
		*eq = 0;
		const char *k = w, *v = eq + 1;
		char **slot = !strcmp(k, "name") ? &t.name : !strcmp(k, "host") ? &t.host
			: !strcmp(k, "dbname") || !strcmp(k, "database") ? &t.database : !strcmp(k, "user") ? &t.user
			: !strcmp(k, "sslrootcert") ? &t.sslrootcert : NULL;
		if (slot) {
			free(*slot);
			*slot = gw_xstrdup(v);
		} else if (!strcmp(k, "port")) {
			t.port = atoi(v);
		} else if (!strcmp(k, "sslmode")) {
			static const char *const modes[] = {"disable", "prefer", "require", "verify-ca", "verify-full"};
			int m = -1;
			for (int i = 0; i < 5; i++)
				if (!strcmp(v, modes[i]))
					m = i;
			if (m < 0) {
				snprintf(err, errlen, "--target: sslmode '%s' is not one of disable, prefer, require, verify-ca, verify-full", v);
				rc_ = -1;
			}
			t.sslmode = (enum gw_sslmode)(m < 0 ? 0 : m);
		} else if (!strcmp(k, "password")) {
			const char *sec = NULL;
			char *owned = NULL;
			if (!strncmp(v, "env:", 4))
				sec = getenv(v + 4);
			else if (!strncmp(v, "file:", 5))
				sec = owned = read_small_file(v + 5, err, errlen);
			else
				snprintf(err, errlen, "--target: a password is never given inline; use password=env:VAR or password=file:PATH");
			if (!sec || !*sec) {
				if (!*err)
					snprintf(err, errlen, "--target: %s is not set", v);
				rc_ = -1;
			} else {
				free(t.password);
				t.password = gw_xstrdup(sec);
			}
			if (owned)
				explicit_bzero(owned, strlen(owned));
			free(owned);
		} else {
			snprintf(err, errlen, "--target: unknown key '%s' (known: name, host, port, dbname, user, password, sslmode, sslrootcert)", k);
			rc_ = -1;
		}
	}
	free(copy);
	if (!rc_ && (!t.name || !name_ok(t.name) || !t.host || !t.database || !t.user || t.port < 1 || t.port > 65535)) {
		snprintf(err, errlen, "--target needs name=, host=, dbname= and user= (and port= 1-65535)");
		rc_ = -1;
	}
	if (!rc_ && gw_relay_config_target(rc, t.name)) {
		snprintf(err, errlen, "--target: target '%s' is defined twice", t.name);
		rc_ = -1;
	}
	if (rc_) {
		conn_free(&t);
		return -1;
	}
	rc->targets = gw_xrealloc(rc->targets, (rc->n_targets + 1) * sizeof(gw_conn_cfg));
	rc->targets[rc->n_targets++] = t;
	return 0;
}

char *gw_relay_config_check(const gw_relay_config *rc)
{
	char *out = NULL;
	const char *src = rc->path ? rc->path : "relay";
#define RC_ERR(...) do { char *m_ = gw_xasprintf(__VA_ARGS__); char *o_ = gw_xasprintf("%s%s: %s\n", out ? out : "", src, m_); \
	free(m_); free(out); out = o_; } while (0)
	if (!rc->gw_host[0] || !rc->gw_port)
		RC_ERR("gateway.address missing: the gateway's listen.relay, such as gw.example.com:8443 (--gateway)");
	if (!rc->gw_ca)
		RC_ERR("gateway.ca missing: the CA file the gateway's certificate must chain to (--ca)");
	if (!rc->name || !name_ok(rc->name))
		RC_ERR("name missing or not a valid identity name: the relay identity, such as dc1 (--name)");
	if (!rc->token || !*rc->token)
		RC_ERR("token missing: the relay identity's token from `pgmoat token issue`, as file:PATH or env:VAR (--token-file)");
	if (!rc->n_targets)
		RC_ERR("targets: none; the relay would have nothing to reach (see README, \"Relay\")");
#undef RC_ERR
	return out;
}

void gw_relay_config_free(gw_relay_config *rc)
{
	if (!rc)
		return;
	free(rc->path);
	free(rc->gw_ca);
	free(rc->gw_server_name);
	free(rc->name);
	if (rc->token)
		explicit_bzero(rc->token, strlen(rc->token));
	free(rc->token);
	for (size_t i = 0; i < rc->n_targets; i++)
		conn_free(&rc->targets[i]);
	free(rc->targets);
	free(rc);
}

const gw_conn_cfg *gw_relay_config_target(const gw_relay_config *rc, const char *name)
{
	for (size_t i = 0; i < rc->n_targets; i++)
		if (!strcmp(rc->targets[i].name, name))
			return &rc->targets[i];
	return NULL;
}
