/*
 * Doctor, pure logic: scopes and table ceilings, pg_hba.conf address ranges,
 * listen_addresses, the upstream transport. No I/O; see doctor.h.
 */
#include "doctor/doctor.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const scope_names[] = {"read", "write", "ddl", "admin"};

const char *gw_doctor_scope_name(int scope)
{
	if (scope < 0)
		return "none";
	return scope <= GW_DOC_ADMIN ? scope_names[scope] : "admin";
}

bool gw_doctor_scope_parse(const char *s, int *scope)
{
	if (!s)
		return false;
	if (!strcmp(s, "none")) {
		*scope = GW_DOC_NONE;
		return true;
	}
	for (int i = 0; i <= GW_DOC_ADMIN; i++)
		if (!strcmp(s, scope_names[i])) {
			*scope = i;
			return true;
		}
	return false;
}

static int scope_of(const json_t *o, const char *key, int dflt)
{
	int s;
	return gw_doctor_scope_parse(json_string_value(json_object_get(o, key)), &s) ? s : dflt;
}

int gw_doctor_table_ceiling(const json_t *needs, const char *schema, const char *table)
{
	const json_t *tables = json_object_get(needs, "tables");
	int max = scope_of(needs, "max_scope", GW_DOC_ADMIN);
	int c = scope_of(needs, "all_tables_scope", json_is_array(tables) ? GW_DOC_NONE : max);
	size_t i;
	const json_t *t;
	json_array_foreach(tables, i, t) {
		const char *s = json_string_value(json_object_get(t, "schema"));
		const char *n = json_string_value(json_object_get(t, "table"));
		if (!s || !n || strcmp(s, schema) || (strcmp(n, "*") && strcmp(n, table)))
			continue;
		int sc = scope_of(t, "scope", GW_DOC_NONE);
		if (sc > c)
			c = sc;
	}
	return c;
}

int gw_doctor_privilege_scope(const char *p, bool seq)
{
	if (!strcmp(p, "SELECT"))
		return GW_DOC_READ;
	if (!strcmp(p, "INSERT") || !strcmp(p, "UPDATE") || !strcmp(p, "DELETE") || (seq && !strcmp(p, "USAGE")))
		return GW_DOC_WRITE;  /* nextval/setval need USAGE or UPDATE on a sequence: the write class */
	if (!strcmp(p, "TRUNCATE") || !strcmp(p, "REFERENCES") || !strcmp(p, "TRIGGER"))
		return GW_DOC_DDL;
	return GW_DOC_ADMIN;      /* MAINTAIN (PostgreSQL 17) and anything newer: VACUUM, ANALYZE... */
}

/* ---- pg_hba.conf address ranges ---- */

static bool parse_ip(const char *s, int *family, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = 4;
		return true;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = 6;
		return true;
	}
	return false;
}

/* A netmask (255.255.0.0) into its prefix length; -1 when not contiguous. */
static int mask_prefix(const uint8_t *m, int bytes)
{
	int bits = 0;
	bool zero = false;
	for (int i = 0; i < bytes * 8; i++) {
		bool one = m[i / 8] & (0x80 >> (i % 8));
		if (one && zero)
			return -1;
		if (one)
			bits++;
		else
			zero = true;
	}
	return bits;
}

/* First prefix bits of a and b equal? */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, (size_t)full))
		return false;
	if (!rest)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - rest));
	return (a[full] & m) == (b[full] & m);
}

static bool range_is_loopback(const gw_doc_range *r)
{
	static const uint8_t v6_loop[16] = {[15] = 1};
	static const uint8_t v4_loop[4] = {127, 0, 0, 0};
	if (r->family == 4)
		return r->prefix >= 8 && prefix_equal(r->addr, v4_loop, 8);
	if (r->family == 6)
		return r->prefix == 128 && !memcmp(r->addr, v6_loop, 16);
	return false;
}

bool gw_doctor_range_parse(const char *address, const char *netmask, gw_doc_range *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = GW_DOC_ADDR_NETWORK;
	if (!address || !*address)
		return false;
	if (!strcmp(address, "all") || !strcmp(address, "samenet"))
		return true;
	if (!strcmp(address, "samehost")) {
		r->kind = GW_DOC_ADDR_SAMEHOST;
		return true;
	}
	char ip[128];
	size_t n = strlen(address);
	if (n >= sizeof(ip))
		return false;
	memcpy(ip, address, n + 1);
	int prefix = -1;
	char *slash = strchr(ip, '/');
	if (slash) {
		*slash = 0;
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || p < 0 || p > 128)
			return false;
		prefix = (int)p;
	}
	if (!parse_ip(ip, &r->family, r->addr)) {
		/* a host name: matched by reverse DNS, so wherever that name resolves; "localhost" stays local */
		r->family = 0;
		if (!strcasecmp(address, "localhost"))
			r->kind = GW_DOC_ADDR_LOOPBACK;
		return !slash;
	}
	int bytes = r->family == 4 ? 4 : 16;
	if (prefix < 0 && netmask && *netmask) {
		uint8_t m[16];
		int mf;
		if (!parse_ip(netmask, &mf, m) || mf != r->family || (prefix = mask_prefix(m, bytes)) < 0) {
			r->family = 0;
			return false;
		}
	}
	if (prefix < 0)
		prefix = bytes * 8;
	if (prefix > bytes * 8) {
		r->family = 0;
		return false;
	}
	r->prefix = prefix;
	r->kind = range_is_loopback(r) ? GW_DOC_ADDR_LOOPBACK : GW_DOC_ADDR_NETWORK;
	return true;
}

bool gw_doctor_range_covers(const gw_doc_range *a, const gw_doc_range *b)
{
	if (a->family == 0)
		return a->kind == GW_DOC_ADDR_NETWORK; /* "all" (or an unknown keyword, taken as all) */
	if (b->family != a->family)
		return false;
	return a->prefix <= b->prefix && prefix_equal(a->addr, b->addr, a->prefix);
}

bool gw_doctor_range_is_host(const gw_doc_range *r, const char *ip)
{
	gw_doc_range h;
	if (!ip || !r->family || !gw_doctor_range_parse(ip, NULL, &h) || h.family != r->family)
		return false;
	return r->prefix == (r->family == 4 ? 32 : 128) && !memcmp(r->addr, h.addr, 16);
}

bool gw_doctor_range_str(const gw_doc_range *r, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	if (!r->family || !inet_ntop(r->family == 4 ? AF_INET : AF_INET6, r->addr, ip, sizeof(ip)))
		return false;
	snprintf(out, outlen, "%s/%d", ip, r->prefix);
	return true;
}

bool gw_doctor_ip_is_loopback(const char *ip)
{
	if (!ip)
		return false;
	if (!strcasecmp(ip, "localhost"))
		return true;
	gw_doc_range r;
	return gw_doctor_range_parse(ip, NULL, &r) && r.family && r.kind == GW_DOC_ADDR_LOOPBACK;
}

int gw_doctor_listen_class(const char *setting)
{
	int cls = 0;
	const char *p = setting ? setting : "";
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end == start)
			continue;
		char item[256];
		size_t n = (size_t)(end - start);
		if (n >= sizeof(item))
			return 2;
		memcpy(item, start, n);
		item[n] = 0;
		int c = gw_doctor_ip_is_loopback(item) ? 1 : 2;
		if (c > cls)
			cls = c;
	}
	return cls;
}

/* ---- the upstream transport ---- */

static json_t *finding(const char *id, const char *sev, const char *role, const char *what, const char *why,
	const char *fix)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:n,s:s}", "id", id, "severity", sev, "role", role ? role : "",
		"what", what, "why", why, "fix_sql", "fix", fix);
}

json_t *gw_doctor_transport_finding(const char *host, const char *sslmode, const char *role)
{
	if (!host || !*host || host[0] == '/' || gw_doctor_ip_is_loopback(host) || !sslmode)
		return NULL; /* a Unix socket or loopback: the traffic never leaves this host */
	char what[512];
	if (!strcmp(sslmode, "disable") || !strcmp(sslmode, "prefer")) {
		snprintf(what, sizeof(what), "the upstream connection to %s uses sslmode %s: it can travel in plaintext",
			host, sslmode);
		return finding("upstream_plaintext", "high", role, what,
			!strcmp(sslmode, "prefer")
				? "sslmode prefer falls back to plaintext whenever TLS fails, and anyone on the path can make it "
				  "fail; every result crosses the network unmasked (masking happens at the gateway) and a "
				  "password method weaker than SCRAM gives the password away"
				: "every result crosses the network unmasked (masking happens at the gateway), readable and "
				  "changeable by anyone on the path; a password method weaker than SCRAM gives the password away",
			"turn TLS on in the server (ssl = on, with a certificate) and set sslmode: verify-full with "
			"sslrootcert: file:CA.pem on this connection in the gateway's config");
	}
	if (!strcmp(sslmode, "require")) {
		snprintf(what, sizeof(what), "the upstream connection to %s uses sslmode require: encrypted, but the "
			"server's certificate is not verified", host);
		return finding("upstream_tls_unverified", "medium", role, what,
			"medium, not high: a passive listener learns nothing, but whoever can redirect the traffic can pose "
			"as the database with any certificate and read every result",
			"set sslmode: verify-full with sslrootcert: file:CA.pem on this connection in the gateway's config");
	}
	if (!strcmp(sslmode, "verify-ca")) {
		snprintf(what, sizeof(what), "the upstream connection to %s uses sslmode verify-ca: the certificate's "
			"name is not checked", host);
		return finding("upstream_tls_no_hostname", "low", role, what,
			"any server holding a certificate from the same CA passes as the database; low when that CA "
			"signs only database servers",
			"set sslmode: verify-full on this connection in the gateway's config");
	}
	return NULL;
}

int gw_doctor_severity_rank(const char *s)
{
	if (!s)
		return -1;
	if (!strcmp(s, "high"))
		return 3;
	if (!strcmp(s, "medium"))
		return 2;
	if (!strcmp(s, "low"))
		return 1;
	if (!strcmp(s, "info"))
		return 0;
	return -1;
}
