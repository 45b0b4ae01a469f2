/*
 * Doctor, the database-side core: the catalog read over one libpq connection
 * and turned into findings. Inputs and outputs are JSON (doctor.h) so the
 * relay can run it next to the database; it never sees the gateway's config.
 *
 * Every statement runs in one READ ONLY, REPEATABLE READ transaction that is
 * rolled back. search_path is pinned to pg_catalog, pg_temp for the
 * transaction (set_config(..., true)) before anything else, and every
 * relation and function is written pg_catalog-qualified, so a role whose
 * search_path names a schema of its own cannot put a look-alike table,
 * function or operator in front of the catalog's.
 */
#include "doctor/doctor.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relations checked: tables, partitioned tables, views, materialized views, foreign tables, sequences. */
#define RELKINDS "['r','p','v','m','f','S']"
/* Schemas checked: not pg_catalog, pg_toast, pg_temp_N (names starting pg_ are reserved) nor information_schema. */
#define USER_NSP(n) n ".nspname OPERATOR(pg_catalog.<>) 'information_schema' AND " n ".nspname OPERATOR(pg_catalog.!~) '^pg_'"

typedef struct member {
	char *oid, *name, *quoted;
	char *via_q;             /* the direct membership of the checked role this one is reached through */
	bool super, createrole, createdb, bypassrls;
} member;

typedef struct doc {
	PGconn *conn;
	const json_t *needs;
	json_t *out;
	char *err;
	size_t errlen;
	bool failed;
	int version;
	/* the checked role */
	char oid[16];
	char *role, *role_q;
	bool super, createrole, createdb, replication, bypassrls;
	char *db, *db_q, *boot_q;
	char *client_ip, *server_ip; /* NULL: a Unix socket */
	const char *conn_name;
	member *m;               /* every (role, via) the checked role can become, through pg_auth_members */
	size_t n_m;
	char *set_all;           /* "{0,role,members...}": PUBLIC, the role, and what it can become */
	char *set_roles;         /* "{role,members...}" */
	int listen_class;
} doc;

static void fail(doc *d, const char *fmt, ...)
{
	if (d->failed)
		return;
	d->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err, d->errlen, fmt, ap);
	va_end(ap);
}

/* One statement; NULL (and d->failed) unless it returned rows or completed. Caller PQclears. */
static PGresult *q(doc *d, const char *sql, int n, const char *const *params)
{
	if (d->failed)
		return NULL;
	PGresult *r = PQexecParams(d->conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		char *msg = PQresultErrorMessage(r);
		size_t len = strlen(msg);
		while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			len--;
		fail(d, "catalog query failed: %.*s", (int)len, msg);
		PQclear(r);
		return NULL;
	}
	return r;
}

static char *col(PGresult *r, int row, int c)
{
	return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

static bool colb(PGresult *r, int row, int c)
{
	const char *v = col(r, row, c);
	return v && v[0] == 't';
}

static char *dup0(const char *s)
{
	return s ? gw_xstrdup(s) : NULL;
}

/* Add a finding. fix_sql NULL: fix is the words of a fix that is not SQL. Takes ownership of nothing. */
static void add(doc *d, const char *id, const char *sev, const char *what, const char *why, const char *fix_sql,
	const char *fix)
{
	json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", id, "severity", sev, "role", d->role ? d->role : "",
		"what", what, "why", why);
	json_object_set_new(f, "fix_sql", fix_sql ? json_string(fix_sql) : json_null());
	if (!fix_sql && fix)
		json_object_set_new(f, "fix", json_string(fix));
	json_array_append_new(d->out, f);
}

/* ---- the role and what it can become ---- */

static void read_role(doc *d)
{
	const char *role = json_string_value(json_object_get(d->needs, "role"));
	const char *p[1] = {role};
	PGresult *r = q(d,
		"SELECT r.oid, r.rolname, pg_catalog.quote_ident(r.rolname), r.rolsuper, r.rolcreaterole, r.rolcreatedb,"
		" r.rolreplication, r.rolbypassrls, pg_catalog.current_database(),"
		" pg_catalog.quote_ident(pg_catalog.current_database()),"
		" pg_catalog.host(pg_catalog.inet_client_addr()), pg_catalog.host(pg_catalog.inet_server_addr()),"
		" (SELECT pg_catalog.quote_ident(b.rolname) FROM pg_catalog.pg_roles b WHERE b.oid OPERATOR(pg_catalog.=) 10),"
		" pg_catalog.current_setting('listen_addresses')"
		" FROM pg_catalog.pg_roles r"
		" WHERE r.rolname OPERATOR(pg_catalog.=) COALESCE($1::pg_catalog.name, session_user)", 1, p);
	if (!r)
		return;
	if (PQntuples(r) != 1) {
		fail(d, "role \"%s\" does not exist", role ? role : "(session user)");
		PQclear(r);
		return;
	}
	snprintf(d->oid, sizeof(d->oid), "%s", col(r, 0, 0));
	d->role = dup0(col(r, 0, 1));
	d->role_q = dup0(col(r, 0, 2));
	d->super = colb(r, 0, 3);
	d->createrole = colb(r, 0, 4);
	d->createdb = colb(r, 0, 5);
	d->replication = colb(r, 0, 6);
	d->bypassrls = colb(r, 0, 7);
	d->db = dup0(col(r, 0, 8));
	d->db_q = dup0(col(r, 0, 9));
	d->client_ip = dup0(col(r, 0, 10));
	d->server_ip = dup0(col(r, 0, 11));
	d->boot_q = dup0(col(r, 0, 12));
	d->listen_class = gw_doctor_listen_class(col(r, 0, 13));
	PQclear(r);
}

static void read_members(doc *d)
{
	const char *p[1] = {d->oid};
	PGresult *r = q(d,
		"WITH RECURSIVE up(roleid, via) AS ("
		" SELECT m.roleid, m.roleid FROM pg_catalog.pg_auth_members m"
		"  WHERE m.member OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
		" UNION"
		" SELECT m.roleid, up.via FROM pg_catalog.pg_auth_members m JOIN up ON m.member OPERATOR(pg_catalog.=) up.roleid)"
		" SELECT g.oid, g.rolname, pg_catalog.quote_ident(g.rolname), pg_catalog.quote_ident(v.rolname),"
		"  g.rolsuper, g.rolcreaterole, g.rolcreatedb, g.rolbypassrls"
		" FROM up JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) up.roleid"
		"  JOIN pg_catalog.pg_roles v ON v.oid OPERATOR(pg_catalog.=) up.via"
		" ORDER BY g.rolname, v.rolname", 1, p);
	if (!r)
		return;
	int n = PQntuples(r);
	d->m = gw_xcalloc((size_t)n + 1, sizeof(member));
	size_t cap = 64 + (size_t)n * 12;
	d->set_roles = gw_xmalloc(cap);
	int w = snprintf(d->set_roles, cap, "{%s", d->oid);
	for (int i = 0; i < n; i++) {
		member *m = &d->m[d->n_m++];
		m->oid = dup0(col(r, i, 0));
		m->name = dup0(col(r, i, 1));
		m->quoted = dup0(col(r, i, 2));
		m->via_q = dup0(col(r, i, 3));
		m->super = colb(r, i, 4);
		m->createrole = colb(r, i, 5);
		m->createdb = colb(r, i, 6);
		m->bypassrls = colb(r, i, 7);
		w += snprintf(d->set_roles + w, cap - (size_t)w, ",%s", m->oid);
	}
	snprintf(d->set_roles + w, cap - (size_t)w, "}");
	d->set_all = gw_xasprintf("{0,%s", d->set_roles + 1);
	PQclear(r);
}

/* "REVOKE via FROM role; " for each distinct via of the members pick() selects, appended to fix. */
static size_t revoke_vias(doc *d, bool (*pick)(const member *, const void *), const void *arg, char **fix,
	char *names, size_t nameslen)
{
	size_t count = 0;
	for (size_t i = 0; i < d->n_m; i++) {
		if (!pick(&d->m[i], arg))
			continue;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = pick(&d->m[j], arg) && !strcmp(d->m[j].via_q, d->m[i].via_q);
		if (seen)
			continue;
		char *nf = gw_xasprintf("%s%sREVOKE %s FROM %s;", *fix ? *fix : "", *fix ? " " : "", d->m[i].via_q,
			d->role_q);
		free(*fix);
		*fix = nf;
		size_t used = strlen(names);
		if (used + strlen(d->m[i].via_q) + 3 < nameslen)
			snprintf(names + used, nameslen - used, "%s%s", used ? ", " : "", d->m[i].via_q);
		count++;
	}
	return count;
}

/* ---- role attributes and predefined roles ---- */

static bool pick_attr(const member *m, const void *arg)
{
	const char *a = arg;
	return (!strcmp(a, "SUPERUSER") && m->super) || (!strcmp(a, "CREATEROLE") && m->createrole) ||
		(!strcmp(a, "CREATEDB") && m->createdb) || (!strcmp(a, "BYPASSRLS") && m->bypassrls);
}

static bool pick_name(const member *m, const void *arg)
{
	return !strcmp(m->name, arg);
}

static void check_attributes(doc *d)
{
	const struct {
		const char *attr, *id, *sev;
		bool direct;
		const char *why;
	} attrs[] = {
		{"SUPERUSER", "role_superuser", "high", d->super,
			"a superuser passes every permission check: it reads and changes every table, reads and writes "
			"server files, runs programs as the database's OS user (COPY ... PROGRAM) and can turn off "
			"whatever the gateway relies on; one statement the gateway misjudges is enough"},
		{"CREATEROLE", "role_createrole", d->version < 160000 ? "high" : "medium", d->createrole,
			d->version < 160000
				? "before PostgreSQL 16 a CREATEROLE role can grant itself any non-superuser role, "
				  "pg_execute_server_program and pg_read_all_data included: it is a step away from running "
				  "programs on the database host"
				: "it creates roles and, for those it creates, grants and alters them: a standing path to new "
				  "logins that never pass through the gateway (medium: since PostgreSQL 16 it cannot grant "
				  "itself roles it does not administer)"},
		{"CREATEDB", "role_createdb", "medium", d->createdb,
			"it creates databases it owns, where every policy's table list means nothing and it may do "
			"anything; medium: it does not reach existing data"},
		{"REPLICATION", "role_replication", "high", d->replication,
			"a replication connection streams the whole cluster's WAL, every table's rows in every database, "
			"past every privilege and row-level policy"},
		{"BYPASSRLS", "role_bypassrls", "high", d->bypassrls,
			"row-level security policies do not apply to it: every row of every table it can read is visible, "
			"whatever the database's owners meant to hide"},
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(attrs); i++) {
		char *fix = NULL, names[512] = "";
		if (attrs[i].direct)
			fix = gw_xasprintf("ALTER ROLE %s NO%s;", d->role_q, attrs[i].attr);
		size_t vias = 0;
		if (strcmp(attrs[i].attr, "REPLICATION")) /* only the login role's own attribute counts for replication */
			vias = revoke_vias(d, pick_attr, attrs[i].attr, &fix, names, sizeof(names));
		if (!fix)
			continue;
		char *what;
		if (attrs[i].direct && vias)
			what = gw_xasprintf("role %s has %s, and can also SET ROLE to a role with it (through %s)", d->role_q,
				attrs[i].attr, names);
		else if (attrs[i].direct)
			what = gw_xasprintf("role %s has %s", d->role_q, attrs[i].attr);
		else
			what = gw_xasprintf("role %s can SET ROLE to a role with %s (through its membership in %s)", d->role_q,
				attrs[i].attr, names);
		add(d, attrs[i].id, attrs[i].sev, what, attrs[i].why, fix, NULL);
		free(what);
		free(fix);
	}
	const struct {
		const char *name, *sev, *why;
	} pre[] = {
		{"pg_execute_server_program", "high",
			"COPY ... TO/FROM PROGRAM runs any command as the database's OS user: the host is the role's"},
		{"pg_write_server_files", "high",
			"COPY ... TO a file writes anywhere the database's OS user can: its configuration, pg_hba.conf, "
			"~/.ssh — a way to become superuser or log in to the host"},
		{"pg_read_server_files", "high",
			"COPY FROM a file and pg_read_file read anything the database's OS user can: other databases' "
			"files, keys, the server's private key, pg_hba.conf"},
		{"pg_read_all_data", "high",
			"it reads every table, view and sequence in every database, whatever was granted or revoked; "
			"only row-level security still applies"},
		{"pg_write_all_data", "high",
			"it inserts, updates and deletes in every table in every database, whatever was granted"},
		{"pg_signal_backend", "medium",
			"it cancels and terminates other sessions (not superusers'): any application's queries, "
			"the gateway's other sessions included; medium: it stops work, it reads and changes no data"},
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(pre); i++) {
		char *fix = NULL, names[512] = "";
		if (!revoke_vias(d, pick_name, pre[i].name, &fix, names, sizeof(names)))
			continue;
		char id[64], *what;
		snprintf(id, sizeof(id), "member_%s", pre[i].name);
		if (!strcmp(names, pre[i].name))
			what = gw_xasprintf("role %s is a member of %s", d->role_q, pre[i].name);
		else
			what = gw_xasprintf("role %s is a member of %s (through %s)", d->role_q, pre[i].name, names);
		add(d, id, pre[i].sev, what, pre[i].why, fix, NULL);
		free(what);
		free(fix);
	}
}

/* ---- ownership ---- */

static const char *relkind_word(char k)
{
	switch (k) {
	case 'v':
		return "VIEW";
	case 'm':
		return "MATERIALIZED VIEW";
	case 'f':
		return "FOREIGN TABLE";
	case 'S':
		return "SEQUENCE";
	default:
		return "TABLE";
	}
}

static const char *relkind_noun(char k)
{
	switch (k) {
	case 'v':
		return "view";
	case 'm':
		return "materialized view";
	case 'f':
		return "foreign table";
	case 'S':
		return "sequence";
	default:
		return "table";
	}
}

static bool pick_oid(const member *m, const void *arg)
{
	return !strcmp(m->oid, arg);
}

static void check_ownership(doc *d, bool ddl)
{
	const char *p[1] = {d->set_roles};
	PGresult *r = q(d,
		"SELECT 'r', pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text, c.relowner"
		" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
		" WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY" RELKINDS "::pg_catalog.\"char\"[])"
		"  AND c.relowner OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND " USER_NSP("n")
		/* a sequence owned by a column (serial, identity) changes owner with its table */
		"  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend dp"
		"   WHERE dp.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
		"    AND dp.objid OPERATOR(pg_catalog.=) c.oid AND dp.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a','i']::pg_catalog.\"char\"[]))"
		" UNION ALL"
		" SELECT 'n', pg_catalog.quote_ident(n.nspname), 'n', n.nspowner FROM pg_catalog.pg_namespace n"
		" WHERE n.nspowner OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND " USER_NSP("n")
		" UNION ALL"
		" SELECT 'd', pg_catalog.quote_ident(db.datname), 'd', db.datdba FROM pg_catalog.pg_database db"
		" WHERE db.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
		"  AND db.datdba OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
		" ORDER BY 1, 2", 1, p);
	if (!r)
		return;
	const char *tsev = ddl ? "info" : "medium";
	const char *why_t = ddl
		? "expected with a ddl policy (the ddl class changes objects the role owns); an owner can also drop "
		  "the table, grant it to anyone and switch off its row-level security, so keep owned objects to those "
		  "the ddl policies are for"
		: "no policy on this connection grants ddl, yet an owner can ALTER, DROP and TRUNCATE it, grant it to "
		  "any role and disable its row-level security and triggers; medium: the gateway refuses such "
		  "statements, the floor no longer does";
	const char *why_n = ddl
		? "expected with a ddl policy; the owner of a schema can drop any object in it, whoever owns that"
		: "no policy on this connection grants ddl, yet the owner of a schema creates objects in it and drops "
		  "any object in it, whoever owns that; medium: the gateway refuses DDL, the floor no longer does";
	const char *why_d = "the owner of the database creates schemas, changes the database's settings for every "
		"session and can drop it; low with a ddl policy, medium without";
	int n = PQntuples(r);
	/* owners reached through membership: one finding per owning role */
	for (int i = 0; i < n; i++) {
		char kind = col(r, i, 0)[0];
		const char *obj = col(r, i, 1), *owner = col(r, i, 3);
		char rk = col(r, i, 2)[0];
		if (!strcmp(owner, d->oid)) {
			char *what, *fix;
			if (kind == 'r') {
				what = gw_xasprintf("role %s owns %s %s", d->role_q, relkind_noun(rk), obj);
				fix = gw_xasprintf("ALTER %s %s OWNER TO %s;", relkind_word(rk), obj, d->boot_q);
				add(d, "owns_table", tsev, what, why_t, fix, NULL);
			} else if (kind == 'n') {
				what = gw_xasprintf("role %s owns schema %s", d->role_q, obj);
				fix = gw_xasprintf("ALTER SCHEMA %s OWNER TO %s;", obj, d->boot_q);
				add(d, "owns_schema", tsev, what, why_n, fix, NULL);
			} else {
				what = gw_xasprintf("role %s owns database %s", d->role_q, obj);
				fix = gw_xasprintf("ALTER DATABASE %s OWNER TO %s;", obj, d->boot_q);
				add(d, "owns_database", ddl ? "low" : "medium", what, why_d, fix, NULL);
			}
			free(what);
			free(fix);
			continue;
		}
		bool first = true;
		for (int j = 0; j < i && first; j++)
			first = strcmp(col(r, j, 3), owner) != 0;
		if (!first)
			continue;
		int count = 0;
		char examples[512] = "";
		for (int j = i; j < n; j++) {
			if (strcmp(col(r, j, 3), owner))
				continue;
			size_t used = strlen(examples);
			if (count < 3 && used + strlen(col(r, j, 1)) + 24 < sizeof(examples))
				snprintf(examples + used, sizeof(examples) - used, "%s%s %s", used ? ", " : "",
					col(r, j, 0)[0] == 'r' ? relkind_noun(col(r, j, 2)[0])
					: col(r, j, 0)[0] == 'n' ? "schema" : "database", col(r, j, 1));
			count++;
		}
		char *fix = NULL, names[512] = "";
		revoke_vias(d, pick_oid, owner, &fix, names, sizeof(names));
		const char *oq = "?";
		for (size_t k = 0; k < d->n_m; k++)
			if (!strcmp(d->m[k].oid, owner))
				oq = d->m[k].quoted;
		char *what = gw_xasprintf("role %s can act as %s (through %s), which owns %d object%s: %s%s", d->role_q, oq,
			names, count, count == 1 ? "" : "s", examples, count > 3 ? ", ..." : "");
		add(d, "member_of_owner", tsev, what,
			"a member of the owning role has the owner's rights: ALTER, DROP, TRUNCATE, GRANT, disabling "
			"row-level security; severity as for owning them itself", fix, NULL);
		free(what);
		free(fix);
	}
	PQclear(r);
}

/* ---- privileges above what the policies can grant ---- */

static void privilege_finding(doc *d, PGresult *r, int from, int to)
{
	const char *nsp = col(r, from, 0), *rel = col(r, from, 1), *qname = col(r, from, 2);
	char rk = col(r, from, 3)[0];
	const char *grantee = col(r, from, 4), *attq = col(r, from, 7);
	int ceiling = gw_doctor_table_ceiling(d->needs, nsp, rel);
	char privs[256] = "";
	int top = -1;
	for (int i = from; i < to; i++) {
		const char *pv = col(r, i, 5);
		int s = gw_doctor_privilege_scope(pv, rk == 'S');
		if (s <= ceiling || strstr(privs, pv))
			continue;
		size_t used = strlen(privs);
		snprintf(privs + used, sizeof(privs) - used, "%s%s", used ? ", " : "", pv);
		if (s > top)
			top = s;
	}
	if (top < 0)
		return;
	char from_txt[300];
	if (!strcmp(grantee, "PUBLIC"))
		snprintf(from_txt, sizeof(from_txt), "granted to PUBLIC, so to every role");
	else if (!strcmp(grantee, d->role_q))
		snprintf(from_txt, sizeof(from_txt), "granted to it");
	else
		snprintf(from_txt, sizeof(from_txt), "granted to %s, a role it belongs to", grantee);
	char *what, *fix, *why;
	if (attq) {
		what = gw_xasprintf("role %s holds %s on column %s of %s (%s)", d->role_q, privs, attq, qname, from_txt);
		fix = gw_xasprintf("REVOKE %s (%s) ON TABLE %s FROM %s;", privs, attq, qname, grantee);
	} else {
		what = gw_xasprintf("role %s holds %s on %s %s (%s)", d->role_q, privs, relkind_noun(rk), qname, from_txt);
		fix = gw_xasprintf("REVOKE %s ON %s %s FROM %s;", privs, rk == 'S' ? "SEQUENCE" : "TABLE", qname, grantee);
	}
	if (ceiling < 0)
		why = gw_xasprintf("no policy on connection %s grants anything on %s: the floor is higher than needed; %s",
			d->conn_name, qname,
			top > GW_DOC_READ ? "medium: the gateway refuses these statements, the floor no longer does"
					  : "low: reading beyond the policies' tables needs the gateway to be bypassed");
	else
		why = gw_xasprintf("the policies on connection %s grant at most %s on %s: the floor is higher than needed; "
			"medium: the gateway refuses these statements, the floor no longer does", d->conn_name,
			gw_doctor_scope_name(ceiling), qname);
	add(d, attq ? "column_privilege_above_policy" : "table_privilege_above_policy",
		top > GW_DOC_READ ? "medium" : "low", what, why, fix, NULL);
	free(what);
	free(fix);
	free(why);
}

static void check_privileges(doc *d)
{
	const char *p[1] = {d->set_all};
	PGresult *r = q(d,
		"SELECT n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text,"
		"  CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END AS gq,"
		"  a.privilege_type, NULL::pg_catalog.name AS att, NULL::pg_catalog.text"
		" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
		"  CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a"
		"  LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee"
		" WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY" RELKINDS "::pg_catalog.\"char\"[])"
		"  AND a.grantee OPERATOR(pg_catalog.<>) c.relowner AND a.grantee OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
		"  AND " USER_NSP("n") " "
		"UNION ALL "
		"SELECT n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text,"
		"  CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END,"
		"  a.privilege_type, t.attname, pg_catalog.quote_ident(t.attname)"
		" FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
		"  JOIN pg_catalog.pg_attribute t ON t.attrelid OPERATOR(pg_catalog.=) c.oid"
		"   AND t.attnum OPERATOR(pg_catalog.>) 0 AND NOT t.attisdropped"
		"  CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) a"
		"  LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee"
		" WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY" RELKINDS "::pg_catalog.\"char\"[])"
		"  AND a.grantee OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND " USER_NSP("n")
		" ORDER BY 1, 2, 5, 7 NULLS FIRST, 6", 1, p);
	if (!r)
		return;
	int n = PQntuples(r);
	for (int i = 0; i < n;) {
		int j = i + 1;
		while (j < n && !strcmp(col(r, j, 0), col(r, i, 0)) && !strcmp(col(r, j, 1), col(r, i, 1)) &&
			!strcmp(col(r, j, 4), col(r, i, 4)) && (col(r, i, 6) == NULL) == (col(r, j, 6) == NULL) &&
			(!col(r, i, 6) || !strcmp(col(r, j, 6), col(r, i, 6))))
			j++;
		privilege_finding(d, r, i, j);
		i = j;
	}
	PQclear(r);
}

static void check_create(doc *d)
{
	const char *p[1] = {d->set_all};
	PGresult *r = q(d,
		"SELECT 'n', pg_catalog.quote_ident(n.nspname),"
		"  CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END"
		" FROM pg_catalog.pg_namespace n CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a"
		"  LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee"
		" WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE' AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner"
		"  AND a.grantee OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) AND " USER_NSP("n") " "
		"UNION ALL "
		"SELECT 'd', pg_catalog.quote_ident(db.datname),"
		"  CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END"
		" FROM pg_catalog.pg_database db"
		"  CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(db.datacl, pg_catalog.acldefault('d', db.datdba))) a"
		"  LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee"
		" WHERE db.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
		"  AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE' AND a.grantee OPERATOR(pg_catalog.<>) db.datdba"
		"  AND a.grantee OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
		" ORDER BY 1, 2, 3", 1, p);
	if (!r)
		return;
	for (int i = 0; i < PQntuples(r); i++) {
		bool schema = col(r, i, 0)[0] == 'n';
		const char *obj = col(r, i, 1), *grantee = col(r, i, 2);
		char via[300] = "";
		if (!strcmp(grantee, "PUBLIC"))
			snprintf(via, sizeof(via), " (granted to PUBLIC, so to every role)");
		else if (strcmp(grantee, d->role_q))
			snprintf(via, sizeof(via), " (granted to %s, a role it belongs to)", grantee);
		char *what = gw_xasprintf("role %s may CREATE in %s %s%s", d->role_q, schema ? "schema" : "database", obj, via);
		char *fix = gw_xasprintf("REVOKE CREATE ON %s %s FROM %s;", schema ? "SCHEMA" : "DATABASE", obj, grantee);
		char *why = gw_xasprintf("no policy on connection %s grants ddl: the floor is higher than needed; %s "
			"medium: the gateway refuses DDL, the floor no longer does", d->conn_name,
			schema ? "an object it creates is its own, to alter, grant and drop, and a function or operator put in "
				 "a schema on others' search_path runs with their rights;"
			       : "CREATE on a database makes schemas, which it owns;");
		add(d, schema ? "schema_create_without_ddl" : "database_create_without_ddl", "medium", what, why, fix, NULL);
		free(what);
		free(fix);
		free(why);
	}
	PQclear(r);
}

/* ---- masking rules naming columns the catalog does not have ---- */

static void check_masking(doc *d)
{
	size_t i;
	const json_t *m;
	json_array_foreach(json_object_get(d->needs, "masking"), i, m) {
		const char *s = json_string_value(json_object_get(m, "schema"));
		const char *t = json_string_value(json_object_get(m, "table"));
		const char *c = json_string_value(json_object_get(m, "column"));
		if (!t || !c) {
			fail(d, "needs.masking[%zu]: table and column must be strings", i);
			return;
		}
		const char *p[3] = {s, t, c};
		PGresult *r = q(d,
			"SELECT"
			" (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class k"
			"   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace"
			"   WHERE ($1::pg_catalog.name IS NULL OR n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name)"
			"    AND k.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name"
			"    AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r','p','v','m','f']::pg_catalog.\"char\"[])),"
			" (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute a"
			"   JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) a.attrelid"
			"   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace"
			"   WHERE ($1::pg_catalog.name IS NULL OR n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name)"
			"    AND k.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name"
			"    AND a.attname OPERATOR(pg_catalog.=) $3::pg_catalog.name"
			"    AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r','p','v','m','f']::pg_catalog.\"char\"[])"
			"    AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)", 3, p);
		if (!r)
			return;
		bool table = strcmp(col(r, 0, 0), "0") != 0, column = strcmp(col(r, 0, 1), "0") != 0;
		PQclear(r);
		if (column)
			continue;
		char name[600];
		snprintf(name, sizeof(name), "%s%s%s.%s", s ? s : "", s ? "." : "", t, c);
		char *what = gw_xasprintf("masking rule column %s names a %s that database %s does not have", name,
			table ? "column" : "table", d->db_q);
		add(d, "mask_column_missing", "medium", what,
			"the rule masks nothing here: a misspelt or renamed column goes out in clear unless a detector "
			"happens to recognise its values; medium: the built-in detectors still scan unruled text columns",
			NULL, "correct the rule's column: in masking.rules of the gateway's config (names as the catalog "
			"stores them, lower case unless created quoted), or remove the rule");
		free(what);
	}
}

/* ---- direct routes beside the gateway ---- */

static bool route_is_local(const doc *d)
{
	return !d->client_ip || gw_doctor_ip_is_loopback(d->client_ip);
}

static void check_listen(doc *d)
{
	if (d->listen_class < 2 || !route_is_local(d))
		return; /* the gateway itself comes over the network: the listener is needed, pg_hba.conf decides */
	char *fix = gw_xasprintf("ALTER SYSTEM SET listen_addresses = '%s';", d->server_ip ? d->server_ip : "");
	char *what = gw_xasprintf("the server listens on addresses other hosts can reach, while the gateway reaches it "
		"%s", d->client_ip ? "over loopback" : "over a Unix socket");
	add(d, "listen_network", "medium", what,
		"a listener the gateway does not use is a door beside it: whoever reaches it tries the database's own "
		"logins, without identity, policy, record or masking; medium, not high: pg_hba.conf still decides "
		"who gets in (takes effect at the next restart of the server)", fix, NULL);
	free(what);
	free(fix);
}

typedef struct hba_line {
	int line;
	char type[16];
	bool replication_only, all_db;
	json_t *users;           /* array of names: "all", a role, "+group" */
	gw_doc_range range;
	char address[200];
	char method[32];
} hba_line;

static bool member_named(const doc *d, const char *name)
{
	for (size_t i = 0; i < d->n_m; i++)
		if (!strcmp(d->m[i].name, name))
			return true;
	return false;
}

static bool hba_matches_role(const doc *d, const hba_line *h)
{
	size_t i;
	json_t *u;
	json_array_foreach(h->users, i, u) {
		const char *s = json_string_value(u);
		if (!s)
			continue;
		if (!strcmp(s, "all") || !strcmp(s, d->role) || (s[0] == '+' && member_named(d, s + 1)))
			return true;
	}
	return false;
}

static bool hba_type_covers(const char *a, const char *b)
{
	return !strcmp(a, "host") || !strcmp(a, b);
}

/* Login roles other than the checked one a line admits: their count, and a few names. */
static int hba_other_logins(doc *d, const hba_line *h, char *names, size_t len)
{
	char *users = json_dumps(h->users, JSON_COMPACT);
	const char *p[2] = {d->oid, users};
	PGresult *r = q(d,
		"SELECT pg_catalog.quote_ident(r.rolname) FROM pg_catalog.pg_roles r"
		" WHERE r.rolcanlogin AND r.oid OPERATOR(pg_catalog.<>) $1::pg_catalog.oid AND EXISTS ("
		"  SELECT 1 FROM pg_catalog.json_array_elements_text($2::pg_catalog.json) u(name)"
		"  WHERE u.name OPERATOR(pg_catalog.=) 'all' OR u.name OPERATOR(pg_catalog.=) r.rolname::pg_catalog.text"
		"   OR (pg_catalog.left(u.name, 1) OPERATOR(pg_catalog.=) '+' AND EXISTS ("
		"    SELECT 1 FROM pg_catalog.pg_roles g WHERE g.rolname::pg_catalog.text OPERATOR(pg_catalog.=)"
		"     pg_catalog.substr(u.name, 2) AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER'))))"
		" ORDER BY r.rolname", 2, p);
	free(users);
	if (!r)
		return 0;
	int n = PQntuples(r);
	names[0] = 0;
	for (int i = 0; i < n && i < 5; i++) {
		size_t used = strlen(names);
		snprintf(names + used, len - used, "%s%s", used ? ", " : "", col(r, i, 0));
	}
	if (n > 5) {
		size_t used = strlen(names);
		snprintf(names + used, len - used, ", ...");
	}
	PQclear(r);
	return n;
}

/* SQL that comments out line n of pg_hba.conf (as a superuser) and reloads the server's configuration. */
static char *hba_fix(int line)
{
	/* the file is read whole before COPY opens (and truncates) it; lines keep their numbers */
	return gw_xasprintf(
		"DO $pgmoat$ DECLARE f pg_catalog.text := pg_catalog.current_setting('hba_file'); "
		"c pg_catalog.text := pg_catalog.pg_read_file(f); BEGIN "
		"EXECUTE pg_catalog.format($f$COPY (SELECT CASE WHEN n = %d AND l !~ E'^\\\\s*#' "
		"THEN '# disabled by pgmoat doctor: ' || l ELSE NULLIF(l, '') END "
		"FROM pg_catalog.regexp_split_to_table(pg_catalog.rtrim(%%L, E'\\r\\n'), E'\\r?\\n') "
		"WITH ORDINALITY AS t(l, n) ORDER BY n) TO %%L WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')$f$, "
		"c, f); PERFORM pg_catalog.pg_reload_conf(); END $pgmoat$;", line);
}

static void hba_finding(doc *d, const hba_line *h, bool role_match)
{
	bool trust = !strcmp(h->method, "trust");
	bool network = h->range.kind == GW_DOC_ADDR_NETWORK;
	bool dormant = network && d->listen_class < 2;
	char others[400] = "";
	int n_others = network || trust ? hba_other_logins(d, h, others, sizeof(others)) : 0;
	if (d->failed || (!role_match && !n_others))
		return;
	const char *sev;
	const char *why;
	if (trust && !dormant) {
		sev = "high";
		why = "trust asks for no password: anyone who reaches the server from there is that role, with no "
		      "identity, policy, record or masking";
	} else if (dormant) {
		sev = "low";
		why = "the server listens on loopback only, so the rule admits nobody today; it opens as soon as "
		      "listen_addresses does";
	} else if (role_match && network) {
		sev = "medium";
		why = "the upstream role's password works from there too: whoever holds it (a leaked config, a "
		      "backup, a debugging session) reaches the database beside the gateway, with the role's whole "
		      "floor and nothing recorded; medium: it still takes the password";
	} else if (role_match) {
		sev = "low";
		why = "the gateway does not come this way, yet the upstream role's password works here for any "
		      "process on the database host; low: it takes a foothold on that host first";
	} else {
		sev = "low";
		why = "these logins reach the database without going through the gateway: no identity, policy, "
		      "record or masking applies to them; low, as such access is often deliberate (DBAs, migrations), "
		      "but it should be known and narrow";
	}
	char gw[160];
	if (!d->client_ip)
		snprintf(gw, sizeof(gw), "the gateway comes over a Unix socket");
	else
		snprintf(gw, sizeof(gw), "the gateway comes from %s", d->client_ip);
	char *what;
	if (role_match)
		what = gw_xasprintf("pg_hba.conf line %d (%s, %s, %s) admits role %s%s%s%s; %s", h->line, h->type,
			h->address, h->method, d->role_q, n_others ? " and other login roles (" : "", n_others ? others : "",
			n_others ? ")" : "", gw);
	else
		what = gw_xasprintf("pg_hba.conf line %d (%s, %s, %s) admits login roles from the network: %s", h->line,
			h->type, h->address, h->method, others);
	char *fix = hba_fix(h->line);
	add(d, role_match ? "hba_role_route" : "hba_network_route", sev, what, why, fix, NULL);
	free(what);
	free(fix);
}

static void check_hba(doc *d)
{
	PGresult *r = q(d,
		"SELECT pg_catalog.has_table_privilege('pg_catalog.pg_hba_file_rules', 'SELECT')"
		" AND pg_catalog.has_function_privilege('pg_catalog.pg_hba_file_rules()', 'EXECUTE')", 0, NULL);
	if (!r)
		return;
	bool readable = colb(r, 0, 0);
	PQclear(r);
	if (!readable) {
		add(d, "hba_not_readable", "info",
			"pg_hba.conf could not be checked: this role cannot read pg_catalog.pg_hba_file_rules",
			"which addresses may log in as which role is decided there; the gateway's least-privilege role "
			"rightly cannot read it, so routes beside the gateway were not looked for",
			NULL, "review pg_hba.conf by hand, or run `pgmoat relay doctor` (or this check) with a role that "
			"may read pg_hba_file_rules — not the gateway's own role");
		return;
	}
	r = q(d,
		"SELECT h.line_number, h.type, pg_catalog.array_to_json(h.database)::pg_catalog.text,"
		" pg_catalog.array_to_json(h.user_name)::pg_catalog.text, h.address, h.netmask, h.auth_method"
		" FROM pg_catalog.pg_hba_file_rules h WHERE h.error IS NULL ORDER BY h.line_number", 0, NULL);
	if (!r)
		return;
	int n = PQntuples(r);
	hba_line *lines = gw_xcalloc((size_t)n + 1, sizeof(hba_line));
	int nl = 0;
	for (int i = 0; i < n; i++) {
		const char *type = col(r, i, 1);
		if (!type || strncmp(type, "host", 4))
			continue; /* local: the Unix socket */
		hba_line *h = &lines[nl++];
		h->line = atoi(col(r, i, 0));
		snprintf(h->type, sizeof(h->type), "%s", type);
		json_t *dbs = json_loads(col(r, i, 2) ? col(r, i, 2) : "[]", 0, NULL);
		size_t k;
		json_t *v;
		h->replication_only = json_array_size(dbs) > 0;
		json_array_foreach(dbs, k, v) {
			const char *s = json_string_value(v);
			if (!s || strcmp(s, "replication"))
				h->replication_only = false;
			if (s && !strcmp(s, "all"))
				h->all_db = true;
		}
		json_decref(dbs);
		h->users = json_loads(col(r, i, 3) ? col(r, i, 3) : "[]", 0, NULL);
		if (!h->users)
			h->users = json_array();
		const char *addr = col(r, i, 4), *mask = col(r, i, 5);
		gw_doctor_range_parse(addr ? addr : "all", mask, &h->range);
		if (!gw_doctor_range_str(&h->range, h->address, sizeof(h->address)))
			snprintf(h->address, sizeof(h->address), "%s", addr ? addr : "all");
		snprintf(h->method, sizeof(h->method), "%s", col(r, i, 6) ? col(r, i, 6) : "?");
	}
	PQclear(r);
	for (int i = 0; i < nl && !d->failed; i++) {
		hba_line *h = &lines[i];
		if (!strcmp(h->method, "reject") || h->replication_only)
			continue; /* replication lines serve the REPLICATION attribute, reported on its own */
		bool role_match = hba_matches_role(d, h);
		if (role_match) {
			/* an earlier line that decides every connection of this role from these addresses shadows it */
			for (int j = 0; j < i && role_match; j++) {
				const hba_line *e = &lines[j];
				if (e->all_db && !e->replication_only && hba_type_covers(e->type, h->type) &&
					hba_matches_role(d, e) && gw_doctor_range_covers(&e->range, &h->range))
					role_match = false;
			}
			/* the gateway's own way in */
			if (role_match && d->client_ip &&
				(gw_doctor_range_is_host(&h->range, d->client_ip) ||
				 (h->range.kind == GW_DOC_ADDR_LOOPBACK && gw_doctor_ip_is_loopback(d->client_ip))))
				role_match = false;
		}
		if (role_match || h->range.kind == GW_DOC_ADDR_NETWORK || !strcmp(h->method, "trust"))
			hba_finding(d, h, role_match);
	}
	for (int i = 0; i < nl; i++)
		json_decref(lines[i].users);
	free(lines);
}

/* ---- entry ---- */

static int needs_scope(doc *d, const char *key, int dflt)
{
	json_t *v = json_object_get(d->needs, key);
	int s;
	if (!v || json_is_null(v))
		return dflt;
	if (!gw_doctor_scope_parse(json_string_value(v), &s)) {
		fail(d, "needs.%s: expected none, read, write, ddl or admin", key);
		return dflt;
	}
	return s;
}

static void doc_free(doc *d)
{
	free(d->role);
	free(d->role_q);
	free(d->db);
	free(d->db_q);
	free(d->boot_q);
	free(d->client_ip);
	free(d->server_ip);
	for (size_t i = 0; i < d->n_m; i++) {
		free(d->m[i].oid);
		free(d->m[i].name);
		free(d->m[i].quoted);
		free(d->m[i].via_q);
	}
	free(d->m);
	free(d->set_all);
	free(d->set_roles);
}

json_t *gw_doctor_check(PGconn *conn, const json_t *needs, char *err, size_t errlen)
{
	doc d = {.conn = conn, .needs = needs, .err = err, .errlen = errlen};
	if (errlen)
		err[0] = 0;
	if (!json_is_object(needs)) {
		snprintf(err, errlen, "needs must be a JSON object");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
		snprintf(err, errlen, "the connection is not idle");
		return NULL;
	}
	const json_t *tables = json_object_get(needs, "tables");
	const json_t *masking = json_object_get(needs, "masking");
	if ((tables && !json_is_array(tables)) || (masking && !json_is_array(masking))) {
		snprintf(err, errlen, "needs.tables and needs.masking must be arrays");
		return NULL;
	}
	int max = needs_scope(&d, "max_scope", GW_DOC_ADMIN);
	needs_scope(&d, "all_tables_scope", GW_DOC_NONE);
	size_t ti;
	const json_t *t;
	json_array_foreach(tables, ti, t) {
		int s;
		if (!json_is_string(json_object_get(t, "schema")) || !json_is_string(json_object_get(t, "table")) ||
			!gw_doctor_scope_parse(json_string_value(json_object_get(t, "scope")), &s))
			fail(&d, "needs.tables[%zu]: expected {schema, table, scope}", ti);
	}
	json_t *ddl_v = json_object_get(needs, "ddl");
	bool ddl = ddl_v ? json_is_true(ddl_v) : max >= GW_DOC_DDL;
	d.conn_name = json_string_value(json_object_get(needs, "connection"));
	if (!d.conn_name)
		d.conn_name = "(unnamed)";
	if (d.failed)
		return NULL;
	d.version = PQserverVersion(conn);
	d.out = json_array();

	PGresult *r = q(&d, "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL);
	PQclear(r);
	r = q(&d, "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),"
		  " pg_catalog.set_config('statement_timeout', '30s', true)", 0, NULL);
	PQclear(r);
	read_role(&d);
	read_members(&d);
	if (!d.failed) {
		check_attributes(&d);
		check_ownership(&d, ddl);
		check_privileges(&d);
		if (!ddl)
			check_create(&d);
		check_masking(&d);
		check_listen(&d);
		check_hba(&d);
	}
	PQclear(PQexec(conn, "ROLLBACK"));
	const json_t *up = json_object_get(needs, "upstream");
	if (!d.failed && up) {
		json_t *f = gw_doctor_transport_finding(json_string_value(json_object_get(up, "host")),
			json_string_value(json_object_get(up, "sslmode")), d.role);
		if (f)
			json_array_append_new(d.out, f);
	}
	doc_free(&d);
	if (d.failed) {
		json_decref(d.out);
		return NULL;
	}
	return d.out;
}
