/*
 * Masking: rules, catalog snapshots, result plans and value rewriting. See mask.h.
 *
 * A value's treatment is decided once per result (the plan) and applied per
 * row with no allocation beyond the output buffer:
 *   - a column a rule covers (by its table OID and column number, resolved
 *     through the catalog snapshot) gets the rule's action;
 *   - a column derived from a masked one (no table OID; the statement's
 *     lineage says so) or whose origin cannot be decided is redacted whole;
 *   - any other column of a text type is scanned by the detectors and the
 *     spans found are replaced by <ENTITY_TYPE>.
 * Replacement values always parse as the column's type: text types get text,
 * integers and uuids hashed get a number or a uuid, anything else masked
 * becomes NULL.
 */
#include "mask/mask.h"
#include "mask/detect.h"
#include "access/access.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/util.h"
#include "net/tls.h"
#include "pgwire/pgwire.h"
#include "policy/sqlparse.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT_REFRESH_US (300ull * 1000000) /* a snapshot is loaded again after this long */
#define CAT_COLS 9 /* columns of gw_mask_catalog_sql() */
#define MAX_SPANS 64
#define REDACTED "[redacted]"

/* Type OIDs (pg_type.dat) the rewriter knows. */
enum {
	T_CHAR = 18, T_NAME = 19, T_INT8 = 20, T_INT2 = 21, T_INT4 = 23, T_TEXT = 25, T_JSON = 114, T_UNKNOWN = 705,
	T_BPCHAR = 1042, T_VARCHAR = 1043, T_UUID = 2950, T_JSONB = 3802, T_NUMERIC = 1700, T_FLOAT8 = 701
};

struct rule {
	const gw_mask_rule_cfg *cfg;
	pcre2_code *re;
};

struct cat_slot {
	char *conn;
	gw_mask_cat *cat;
	bool stale;
};

struct gw_masker {
	const gw_config *cfg;
	struct rule *rules;
	size_t nrules;
	gw_detector *det;
	unsigned entities;
	pthread_mutex_t mu;
	struct cat_slot *cats;
	size_t ncats;
};

/* ---- the catalog snapshot ---- */

struct mcol {
	char *name;
	int attnum;
	uint32_t typoid;    /* the column's type (a domain's base type, as RowDescription says it); 0 unknown */
	bool generated;     /* GENERATED ALWAYS AS: left out of COPY table TO */
	uint8_t action;     /* enum gw_mask_action */
	char *genexpr;      /* a generated column's expression: masked when it reads a masked column */
};

struct mrel {
	uint32_t oid;
	char *schema, *name;
	char kind;          /* r p v m f */
	struct mcol *cols;
	size_t ncols, cap;
	const char **names; /* column names, for the lineage callbacks */
	char *viewdef;
	uint32_t *parents;  /* pg_inherits: a partition or child takes its parents' rules */
	size_t nparents;
	struct mrel *same_name; /* the next relation of the same name in another schema */
	bool resolved;
};

struct gw_mask_cat {
	atomic_int refs;
	gw_masker *mk;
	gw_map by_oid;      /* 4 bytes → struct mrel* */
	gw_map by_name;     /* "name" → struct mrel* (chained by same_name) */
	gw_map user_fns;    /* names of functions outside the system schemas → (void *)1 */
	gw_map user_ops;    /* names of operators whose function is a user's (SQL, PL/pgSQL...) → (void *)1 */
	gw_map cast_types;  /* names of user types with a cast that runs a user's function (and their arrays) */
	gw_map cast_oids;   /* the same types by OID (4 bytes): a column of one may be cast implicitly */
	bool any_masked;    /* some column is masked */
	struct mrel **rels;
	size_t nrels, cap;
	uint64_t loaded_us;
	bool bad;           /* a row did not parse: not installed */
};

struct gw_mask_plan {
	int ncols;
	bool tainted;
	bool all;           /* mask every value whole */
	struct pcol {
		uint8_t action; /* GW_MASK_*, or SCAN */
		uint8_t binary;
		uint32_t typoid;
	} *cols;
};

#define ACT_SCAN 100

static bool text_type(uint32_t t)
{
	return t == T_TEXT || t == T_VARCHAR || t == T_BPCHAR || t == T_NAME || t == T_UNKNOWN || t == T_CHAR;
}

static bool json_type(uint32_t t)
{
	return t == T_JSON || t == T_JSONB;
}

/*
 * Values of these types are scanned when no rule masks them (user types: their text may hold anything). Numbers:
 * integer and bigint, numeric and double precision hold an SSN (9 digits), a phone number (10 or more) or, from
 * bigint up, a card number as digits; smallint (5 digits), real (7 significant digits) and money (written with a
 * currency sign and separators) cannot hold one that a detector would know.
 */
static bool scan_type(uint32_t t)
{
	/* text, json, numbers; arrays of text and json, records, xml: a find there NULLs the value */
	return text_type(t) || json_type(t) || t == T_INT8 || t == T_INT4 || t == T_NUMERIC || t == T_FLOAT8 ||
		t >= 16384 || t == 1009 || t == 1015 || t == 1014 || t == 1003 || t == 199 || t == 3807 || t == 2249 ||
		t == 142;
}

static void rel_free(struct mrel *r)
{
	for (size_t i = 0; i < r->ncols; i++) {
		free(r->cols[i].name);
		free(r->cols[i].genexpr);
	}
	free(r->cols);
	free(r->names);
	free(r->schema);
	free(r->name);
	free(r->viewdef);
	free(r->parents);
	free(r);
}

static void cat_free(gw_mask_cat *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nrels; i++)
		rel_free(c->rels[i]);
	free(c->rels);
	gw_map_clear(&c->by_oid, NULL);
	gw_map_clear(&c->by_name, NULL);
	gw_map_clear(&c->user_fns, NULL);
	gw_map_clear(&c->user_ops, NULL);
	gw_map_clear(&c->cast_types, NULL);
	gw_map_clear(&c->cast_oids, NULL);
	free(c);
}

void gw_mask_cat_unref(gw_mask_cat *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		cat_free(c);
}

const char *gw_mask_catalog_sql(void)
{
	/*
	 * Every column of every table, view, materialized view and foreign
	 * table, with its type (a domain's base type: what RowDescription and
	 * COPY's binary format carry) and whether it is generated (COPY table TO
	 * leaves those out); the definitions of user views; who inherits from
	 * whom. CAT_COLS columns. Every operator, type and function is named in
	 * pg_catalog: the query runs with the client's search_path, which must
	 * not be able to put its own "=" in the gateway's catalog.
	 */
	return "SELECT c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.relkind::pg_catalog.text, a.attnum::pg_catalog.text, "
		"a.attname::pg_catalog.text, "
		"(CASE WHEN a.attgenerated OPERATOR(pg_catalog.<>) '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
		"END)::pg_catalog.text, "
		"(CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN t.typbasetype ELSE a.atttypid END)::pg_catalog.text, a.attgenerated::pg_catalog.text "
		"FROM pg_catalog.pg_class c "
		"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
		"JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid "
		"LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid "
		"LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid "
		"AND d.adnum OPERATOR(pg_catalog.=) a.attnum "
		"WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[]) AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped "
		"UNION ALL SELECT c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.relkind::pg_catalog.text, '0', '', "
		"pg_catalog.pg_get_viewdef(c.oid), NULL, NULL FROM pg_catalog.pg_class c "
		"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
		"WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog.\"char\"[]) AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) "
		"UNION ALL SELECT i.inhrelid::pg_catalog.text, '', '', 'i', i.inhparent::pg_catalog.text, '', NULL, NULL, NULL "
		"FROM pg_catalog.pg_inherits i "
		/* functions outside the system schemas: what they return may come from anywhere */
		"UNION ALL SELECT p.oid::pg_catalog.text, n.nspname::pg_catalog.text, p.proname::pg_catalog.text, 'F', '0', '', NULL, NULL, NULL "
		"FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
		"WHERE n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) "
		/*
		 * operators and casts that run such a function written in SQL or a PL (a C function needs a superuser to
		 * be made: an extension's operators are not a client's code)
		 */
		"UNION ALL SELECT o.oid::pg_catalog.text, '', o.oprname::pg_catalog.text, 'O', '0', '', NULL, NULL, NULL "
		"FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) o.oprcode::pg_catalog.oid "
		"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
		"JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang "
		"WHERE n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) "
		"AND l.lanname OPERATOR(pg_catalog.<>) ALL ('{internal,c}'::pg_catalog.name[]) "
		"UNION ALL SELECT y.oid::pg_catalog.text, '', y.typname::pg_catalog.text, 'C', '0', '', NULL, NULL, NULL "
		"FROM pg_catalog.pg_cast k JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) k.castfunc "
		"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
		"JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang "
		"JOIN pg_catalog.pg_type y ON y.oid OPERATOR(pg_catalog.=) ANY (ARRAY[k.castsource, k.casttarget]) "
		"OR y.typelem OPERATOR(pg_catalog.=) ANY (ARRAY[k.castsource, k.casttarget]) "
		"JOIN pg_catalog.pg_namespace yn ON yn.oid OPERATOR(pg_catalog.=) y.typnamespace "
		"WHERE n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) "
		"AND l.lanname OPERATOR(pg_catalog.<>) ALL ('{internal,c}'::pg_catalog.name[]) "
		"AND yn.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])";
}

gw_mask_cat *gw_mask_cat_begin(gw_masker *mk)
{
	gw_mask_cat *c = gw_xcalloc(1, sizeof(*c));
	atomic_init(&c->refs, 1);
	c->mk = mk;
	return c;
}

void gw_mask_cat_abandon(gw_mask_cat *c)
{
	gw_mask_cat_unref(c);
}

static struct mrel *rel_by_oid(const gw_mask_cat *c, uint32_t oid)
{
	return gw_map_get(&c->by_oid, &oid, sizeof(oid));
}

static struct mrel *rel_get(gw_mask_cat *c, uint32_t oid, const char *schema, const char *name, char kind)
{
	struct mrel *r = rel_by_oid(c, oid);
	if (r) {
		if (!r->name && name && *name) {
			r->schema = gw_xstrdup(schema);
			r->name = gw_xstrdup(name);
			r->kind = kind;
		}
		return r;
	}
	r = gw_xcalloc(1, sizeof(*r));
	r->oid = oid;
	if (name && *name) {
		r->schema = gw_xstrdup(schema);
		r->name = gw_xstrdup(name);
		r->kind = kind;
	}
	gw_map_put(&c->by_oid, &r->oid, sizeof(r->oid), r);
	if (c->nrels == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->rels = gw_xrealloc(c->rels, c->cap * sizeof(*c->rels));
	}
	c->rels[c->nrels++] = r;
	return r;
}

/* Text columns of a DataRow: up to max, NULL for SQL NULL; false when malformed. */
static bool row_cols(const uint8_t *b, size_t n, const char **v, size_t *lens, int max, int *ncols)
{
	if (n < 2)
		return false;
	int k = gw_get_u16(b);
	if (k > max)
		return false;
	size_t off = 2;
	for (int i = 0; i < k; i++) {
		const uint8_t *f;
		if (gw_pg_row_field(b, n, &off, &f, &lens[i]) < 0)
			return false;
		v[i] = (const char *)f;
	}
	*ncols = k;
	return true;
}

static uint32_t parse_u32(const char *s, size_t n, bool *ok)
{
	uint64_t v = 0;
	if (!s || !n || n > 10)
		*ok = false;
	for (size_t i = 0; *ok && i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			*ok = false;
			break;
		}
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		*ok = false;
	return (uint32_t)v;
}

void gw_mask_cat_row(gw_mask_cat *c, const uint8_t *body, size_t n)
{
	const char *v[CAT_COLS];
	size_t l[CAT_COLS];
	int k;
	if (c->bad || !row_cols(body, n, v, l, CAT_COLS, &k) || k != CAT_COLS || !v[0] || !v[3] || !v[4] || !v[1] ||
		!v[2]) {
		c->bad = true;
		return;
	}
	bool ok = true;
	uint32_t oid = parse_u32(v[0], l[0], &ok);
	uint32_t num = parse_u32(v[4], l[4], &ok);
	if (!ok || l[3] != 1 || num > 32767) {
		c->bad = true;
		return;
	}
	char kind = v[3][0];
	if (kind == 'F' || kind == 'O') {
		if (l[2] && l[2] < 128)
			gw_map_put(kind == 'F' ? &c->user_fns : &c->user_ops, v[2], l[2], (void *)1);
		return;
	}
	if (kind == 'C') {
		/* a user type with a cast that runs a user's function: by name (x::name) and by OID (a column of it) */
		if (l[2] && l[2] < 128)
			gw_map_put(&c->cast_types, v[2], l[2], (void *)1);
		gw_map_put(&c->cast_oids, &oid, sizeof(oid), (void *)1);
		return;
	}
	if (kind == 'i') {
		/* oid inherits from num */
		struct mrel *r = rel_get(c, oid, NULL, NULL, 0);
		r->parents = gw_xrealloc(r->parents, (r->nparents + 1) * sizeof(uint32_t));
		r->parents[r->nparents++] = num;
		return;
	}
	char *schema = gw_xstrndup(v[1], l[1]), *name = gw_xstrndup(v[2], l[2]);
	struct mrel *r = rel_get(c, oid, schema, name, kind);
	free(schema);
	free(name);
	if (num == 0) {
		if (v[6] && !r->viewdef)
			r->viewdef = gw_xstrndup(v[6], l[6]);
		return;
	}
	uint32_t typ = v[7] ? parse_u32(v[7], l[7], &ok) : 0;
	if (!v[5] || !ok) {
		c->bad = true;
		return;
	}
	if (r->ncols == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->cols = gw_xrealloc(r->cols, r->cap * sizeof(*r->cols));
	}
	r->cols[r->ncols++] = (struct mcol){.name = gw_xstrndup(v[5], l[5]), .attnum = (int)num, .typoid = typ,
		.generated = v[8] && l[8] > 0, .genexpr = v[6] ? gw_xstrndup(v[6], l[6]) : NULL};
}

static int col_cmp(const void *a, const void *b)
{
	return ((const struct mcol *)a)->attnum - ((const struct mcol *)b)->attnum;
}

static struct mcol *rel_col(const struct mrel *r, int attnum)
{
	size_t lo = 0, hi = r->ncols;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->cols[mid].attnum == attnum)
			return &r->cols[mid];
		if (r->cols[mid].attnum < attnum)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct mcol *rel_col_named(const struct mrel *r, const char *name)
{
	for (size_t i = 0; i < r->ncols; i++)
		if (!strcmp(r->cols[i].name, name))
			return &r->cols[i];
	return NULL;
}

/* The strongest of two actions (a value masked two ways is masked the stronger way). */
static uint8_t stronger(uint8_t a, uint8_t b)
{
	static const int rank[] = {[GW_MASK_NONE] = 0, [GW_MASK_PARTIAL] = 1, [GW_MASK_HASH] = 2, [GW_MASK_REDACT] = 3,
		[GW_MASK_NULL] = 4};
	return rank[a] >= rank[b] ? a : b;
}

/* Rule ru covers column col of relation schema.name (schema NULL: any schema, a name written unqualified). */
static bool rule_covers(const struct rule *ru, const char *schema, const char *name, const char *col)
{
	const gw_mask_rule_cfg *rc = ru->cfg;
	if (rc->column)
		return !strcmp(rc->column, col) && !strcmp(rc->table, name) && (!rc->schema || !schema ||
			!strcmp(rc->schema, schema));
	if (!ru->re)
		return false;
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(ru->re, NULL);
	int rc2 = pcre2_match(ru->re, (PCRE2_SPTR)col, strlen(col), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc2 >= 0;
}

/* The rules' action for column col of relation schema.name (schema NULL: any schema, a name written unqualified). */
static uint8_t rule_action_named(const gw_masker *mk, const char *schema, const char *name, const char *col)
{
	uint8_t a = GW_MASK_NONE;
	for (size_t i = 0; i < mk->nrules; i++)
		if (rule_covers(&mk->rules[i], schema, name, col))
			a = stronger(a, (uint8_t)mk->rules[i].cfg->action);
	return a;
}

static uint8_t rule_action(const gw_masker *mk, const struct mrel *r, const char *col)
{
	return rule_action_named(mk, r->schema, r->name, col);
}

/* Lineage callbacks over a snapshot (names as the parser gives them). */
static const struct mrel *find_rel(void *ud, const char *schema, const char *rel)
{
	gw_mask_cat *c = ud;
	const struct mrel *r = gw_map_get(&c->by_name, rel, strlen(rel));
	if (!schema) {
		/* unqualified: the first of that name (search_path is the session's); the lineage asks masked() for each */
		return r;
	}
	for (; r; r = r->same_name)
		if (!strcmp(r->schema, schema))
			return r;
	return NULL;
}

static const char *const *cb_columns(void *ud, const char *schema, const char *rel, size_t *n)
{
	const struct mrel *r = find_rel(ud, schema, rel);
	if (!r) {
		*n = 0;
		return NULL;
	}
	if (!schema && r->same_name) {
		/* the same name in several schemas: only when they all have the same columns can the star be expanded */
		for (const struct mrel *o = r->same_name; o; o = o->same_name) {
			if (o->ncols != r->ncols)
				return NULL;
			for (size_t i = 0; i < r->ncols; i++)
				if (strcmp(o->cols[i].name, r->cols[i].name))
					return NULL;
		}
	}
	*n = r->ncols;
	return r->names;
}

static bool cb_masked(void *ud, const char *schema, const char *rel, const char *col)
{
	const struct mrel *r = find_rel(ud, schema, rel);
	for (; r; r = schema ? NULL : r->same_name) {
		const struct mcol *mc = rel_col_named(r, col);
		if (mc && mc->action != GW_MASK_NONE)
			return true;
	}
	return false;
}

static bool cb_user_code(void *ud, int kind, const char *name)
{
	const gw_mask_cat *c = ud;
	const gw_map *m = kind == GW_SQL_CODE_FUNCTION ? &c->user_fns : kind == GW_SQL_CODE_OPERATOR ? &c->user_ops
		: &c->cast_types;
	return gw_map_get(m, name, strlen(name)) != NULL;
}

static bool rel_has_masked(const struct mrel *r)
{
	for (size_t i = 0; i < r->ncols; i++)
		if (r->cols[i].action != GW_MASK_NONE)
			return true;
	return false;
}

static int cb_rel_masked(void *ud, const char *schema, const char *rel)
{
	const struct mrel *r = find_rel(ud, schema, rel);
	if (!r)
		return -1;
	for (; r; r = schema ? NULL : r->same_name)
		if (rel_has_masked(r))
			return 1;
	return 0;
}

static bool cb_schema_masked(void *ud, const char *schema)
{
	const gw_mask_cat *c = ud;
	for (size_t i = 0; i < c->nrels; i++)
		if (c->rels[i]->name && !strcmp(c->rels[i]->schema, schema) && rel_has_masked(c->rels[i]))
			return true;
	return false;
}

/*
 * The rules' action for a column of a table a statement creates: a rule naming a schema counts only when the
 * statement names that schema (an unqualified table goes where search_path says).
 */
static uint8_t rule_action_new(const gw_masker *mk, const char *schema, const char *name, const char *col)
{
	uint8_t a = GW_MASK_NONE;
	for (size_t i = 0; i < mk->nrules; i++) {
		const gw_mask_rule_cfg *rc = mk->rules[i].cfg;
		if (rc->column && rc->schema && (!schema || strcmp(rc->schema, schema)))
			continue;
		if (rule_covers(&mk->rules[i], schema, name, col))
			a = stronger(a, (uint8_t)rc->action);
	}
	return a;
}

/*
 * May a masked (or undecided) value be written where f says? Only into a column of a table whose rule shows
 * nothing of any value (redact, null) — or, for a column's own value as it is, into a column of the same type
 * masked by the same action (UPDATE t SET email = email; INSERT INTO copy SELECT card FROM t). Never into a file,
 * a view (it writes elsewhere), a foreign table, a column not known, or a relation the snapshot does not know.
 */
static bool cb_write_ok(void *ud, const struct gw_sql_flow *f)
{
	gw_mask_cat *c = ud;
	if (f->into == GW_SQL_INTO_FILE || !f->col || !f->rel)
		return false;
	int ta = -1;
	uint32_t tt = 0;
	if (f->into == GW_SQL_INTO_NEW) {
		ta = rule_action_new(c->mk, f->schema, f->rel, f->col); /* its type is not known here */
	} else {
		const struct mrel *r = find_rel(c, f->schema, f->rel);
		if (!r)
			return false;
		/* an unqualified name: every relation it may be must take the value alike */
		for (; r; r = f->schema ? NULL : r->same_name) {
			const struct mcol *mc = rel_col_named(r, f->col);
			if ((r->kind != 'r' && r->kind != 'p') || !mc || (ta >= 0 && (mc->action != ta || mc->typoid != tt)))
				return false;
			ta = mc->action;
			tt = mc->typoid;
		}
	}
	if (ta == GW_MASK_REDACT || ta == GW_MASK_NULL)
		return true;
	if (f->verdict != GW_SQL_COL_MASKED || !f->src_col || ta <= GW_MASK_NONE || !tt)
		return false;
	bool any = false;
	for (const struct mrel *s = find_rel(c, f->src_schema, f->src_rel); s; s = f->src_schema ? NULL : s->same_name) {
		const struct mcol *mc = rel_col_named(s, f->src_col);
		if (!mc)
			continue; /* a relation of that name without the column is not the one read */
		/* as stored means a table's own column: a view's or a generated column is computed from others */
		if ((s->kind != 'r' && s->kind != 'p') || mc->genexpr || mc->action != ta || mc->typoid != tt)
			return false;
		any = true;
	}
	return any;
}

static bool resolve_rel(gw_mask_cat *c, struct mrel *r, int depth);
static bool calls_user_function(const gw_mask_cat *cat, const gw_sql_stmt *st);
static bool reads_cast_typed(const gw_mask_cat *cat, const gw_sql_stmt *st);

/*
 * A view's columns: masked where its definition derives them from masked
 * columns (or cannot be decided). Returns true when a column changed.
 */
static bool resolve_view(gw_mask_cat *c, struct mrel *r, bool all)
{
	bool changed = false;
	uint8_t *v = gw_xcalloc(r->ncols ? r->ncols : 1, 1);
	int k = -1;
	gw_sql parsed;
	/* a view that calls a function defined in the database: what it returns may come from anywhere */
	bool user_fn = gw_sql_parse(r->viewdef, &parsed) != 0;
	for (size_t i = 0; !user_fn && i < parsed.nstmts; i++)
		user_fn = calls_user_function(c, &parsed.stmts[i]);
	gw_sql_free(&parsed);
	if (!all && !user_fn) {
		gw_sql_catalog cat = {.ud = c, .columns = cb_columns, .masked = cb_masked, .user_code = cb_user_code};
		k = gw_sql_mask_columns(r->viewdef, strlen(r->viewdef), &cat, v, r->ncols, NULL, 0);
	}
	for (size_t i = 0; i < r->ncols; i++) {
		uint8_t verdict = k < 0 || (size_t)k != r->ncols ? GW_SQL_COL_UNDECIDED : v[i];
		/*
		 * Derived from masked columns: hidden whole, even where a rule on the view column's own name would
		 * show part of it (a partial or hash of an expression can show what the source's rule hides).
		 */
		if (verdict != GW_SQL_COL_CLEAR && stronger(r->cols[i].action, GW_MASK_REDACT) != r->cols[i].action) {
			r->cols[i].action = stronger(r->cols[i].action, GW_MASK_REDACT);
			changed = true;
		}
	}
	free(v);
	return changed;
}

/*
 * The planner's statistics hold samples of every column's values (most common
 * values, histogram bounds): under masking they are masked, except the
 * columns that name what they describe.
 */
static bool statistics_sample(const struct mrel *r, const char *col)
{
	static const char *const rels[] = {"pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic",
		"pg_statistic_ext_data"};
	static const char *const names[] = {"schemaname", "tablename", "attname", "inherited", "null_frac",
		"avg_width", "n_distinct", "correlation", "statistics_schemaname", "statistics_name", "statistics_owner",
		"attnames", "exprs", "kinds", "expr", "starelid", "staattnum", "stainherit", "stanullfrac", "stawidth",
		"stadistinct", "stxoid", "stxdinherit"};
	if (strcmp(r->schema, "pg_catalog"))
		return false;
	bool stats = false;
	for (size_t i = 0; i < GW_ARRAY_LEN(rels); i++)
		stats |= !strcmp(r->name, rels[i]);
	if (!stats)
		return false;
	for (size_t i = 0; i < GW_ARRAY_LEN(names); i++)
		if (!strcmp(col, names[i]))
			return false;
	return true;
}

/* "name" quoted as an SQL identifier into out (bounded; false when it does not fit). */
static bool quote_ident(gw_buf *out, const char *name)
{
	if (strlen(name) > 256)
		return false;
	gw_buf_append(out, "\"", 1);
	for (const char *q = name; *q; q++) {
		gw_buf_append(out, q, 1);
		if (*q == '"')
			gw_buf_append(out, q, 1); /* "" inside a quoted identifier */
	}
	gw_buf_append(out, "\"", 1);
	return true;
}

/*
 * Generated columns (GENERATED ALWAYS AS (right(ssn, 4))) have their own
 * origin in RowDescription: masked when their expression reads a masked
 * column of the same table (or cannot be decided).
 */
static void resolve_generated(gw_mask_cat *c, struct mrel *r)
{
	for (size_t i = 0; i < r->ncols; i++) {
		struct mcol *col = &r->cols[i];
		if (!col->genexpr || stronger(col->action, GW_MASK_REDACT) == col->action)
			continue; /* a generated column already hidden whole; one shown in part is decided below */
		gw_buf q = {0};
		gw_buf_append(&q, "SELECT ", 7);
		gw_buf_append(&q, col->genexpr, strlen(col->genexpr));
		gw_buf_append(&q, " FROM ", 6);
		bool ok = quote_ident(&q, r->schema);
		gw_buf_append(&q, ".", 1);
		ok = ok && quote_ident(&q, r->name);
		uint8_t v = GW_SQL_COL_UNDECIDED;
		gw_sql_catalog cat = {.ud = c, .columns = cb_columns, .masked = cb_masked, .user_code = cb_user_code};
		if (ok && gw_sql_mask_columns((const char *)gw_buf_rd(&q), gw_buf_len(&q), &cat, &v, 1, NULL, 0) != 1)
			v = GW_SQL_COL_UNDECIDED;
		if (v != GW_SQL_COL_CLEAR)
			col->action = stronger(col->action, GW_MASK_REDACT);
		gw_buf_free(&q);
	}
}

static bool resolve_rel(gw_mask_cat *c, struct mrel *r, int depth)
{
	if (r->resolved || depth > 32)
		return r->resolved;
	r->resolved = true;
	for (size_t i = 0; i < r->ncols; i++)
		r->cols[i].action = statistics_sample(r, r->cols[i].name) ? GW_MASK_REDACT :
			rule_action(c->mk, r, r->cols[i].name);
	for (size_t p = 0; p < r->nparents; p++) {
		struct mrel *par = rel_by_oid(c, r->parents[p]);
		if (!par || !par->name)
			continue;
		resolve_rel(c, par, depth + 1);
		for (size_t i = 0; i < r->ncols; i++) {
			const struct mcol *pc = rel_col_named(par, r->cols[i].name);
			if (pc)
				r->cols[i].action = stronger(r->cols[i].action, pc->action);
		}
	}
	resolve_generated(c, r);
	return true;
}

void gw_mask_cat_install(gw_masker *mk, const char *conn, gw_mask_cat *c)
{
	if (c->bad) {
		gw_warn("masking: the catalog of connection %s could not be read; results there are masked whole until "
			"it can be", conn);
		gw_mask_cat_unref(c);
		return;
	}
	/* index, sort, rules, inheritance, then views (which read the others, and each other: a few rounds) */
	for (size_t i = 0; i < c->nrels; i++) {
		struct mrel *r = c->rels[i];
		if (!r->name)
			continue;
		qsort(r->cols, r->ncols, sizeof(*r->cols), col_cmp);
		r->names = gw_xcalloc(r->ncols + 1, sizeof(char *));
		for (size_t j = 0; j < r->ncols; j++)
			r->names[j] = r->cols[j].name;
		struct mrel *first = gw_map_get(&c->by_name, r->name, strlen(r->name));
		r->same_name = first;
		gw_map_put(&c->by_name, r->name, strlen(r->name), r);
	}
	for (size_t i = 0; i < c->nrels; i++)
		if (c->rels[i]->name)
			resolve_rel(c, c->rels[i], 0);
	/*
	 * Upward too: a rule on a partition or child table covers the parent's
	 * column of that name (selecting from the parent returns the child's rows
	 * under the parent's OID). And back down: every partition or child of that
	 * parent gets it as well, since rows move between siblings (an UPDATE of
	 * the partition key, an INSERT through the parent) without any masked
	 * value being written. Levels of partitioning: until nothing changes.
	 */
	for (int round = 0, moved = 1; moved && round < 32; round++) {
		moved = 0;
		for (size_t i = 0; i < c->nrels; i++) {
			struct mrel *r = c->rels[i];
			for (size_t p = 0; r->name && p < r->nparents; p++) {
				struct mrel *par = rel_by_oid(c, r->parents[p]);
				if (!par || !par->name)
					continue;
				for (size_t j = 0; j < r->ncols; j++) {
					struct mcol *pc = r->cols[j].action ? rel_col_named(par, r->cols[j].name) : NULL;
					if (pc && stronger(pc->action, r->cols[j].action) != pc->action) {
						pc->action = stronger(pc->action, r->cols[j].action);
						moved = 1;
					}
				}
				for (size_t j = 0; j < par->ncols; j++) {
					struct mcol *cc = par->cols[j].action ? rel_col_named(r, par->cols[j].name) : NULL;
					if (cc && stronger(cc->action, par->cols[j].action) != cc->action) {
						cc->action = stronger(cc->action, par->cols[j].action);
						moved = 1;
					}
				}
			}
		}
	}
	/* views read tables and other views: again until nothing changes (bounded; then fail closed) */
	bool changed = true;
	for (int round = 0; changed && round <= 64; round++) {
		changed = false;
		for (size_t i = 0; i < c->nrels; i++)
			if (c->rels[i]->name && c->rels[i]->viewdef)
				changed |= resolve_view(c, c->rels[i], round == 64);
	}
	for (size_t i = 0; i < c->nrels && !c->any_masked; i++)
		c->any_masked = c->rels[i]->name && rel_has_masked(c->rels[i]);
	c->loaded_us = gw_mono_us();
	pthread_mutex_lock(&mk->mu);
	struct cat_slot *slot = NULL;
	for (size_t i = 0; i < mk->ncats; i++)
		if (!strcmp(mk->cats[i].conn, conn))
			slot = &mk->cats[i];
	if (!slot) {
		mk->cats = gw_xrealloc(mk->cats, (mk->ncats + 1) * sizeof(*mk->cats));
		slot = &mk->cats[mk->ncats++];
		slot->conn = gw_xstrdup(conn);
		slot->cat = NULL;
	}
	gw_mask_cat *old = slot->cat;
	slot->cat = c;
	slot->stale = false;
	pthread_mutex_unlock(&mk->mu);
	gw_mask_cat_unref(old);
}

gw_mask_cat *gw_masker_cat(gw_masker *mk, const char *conn)
{
	gw_mask_cat *c = NULL;
	pthread_mutex_lock(&mk->mu);
	for (size_t i = 0; i < mk->ncats; i++)
		if (!strcmp(mk->cats[i].conn, conn) && mk->cats[i].cat) {
			c = mk->cats[i].cat;
			atomic_fetch_add(&c->refs, 1);
		}
	pthread_mutex_unlock(&mk->mu);
	return c;
}

bool gw_masker_cat_wanted(gw_masker *mk, const char *conn)
{
	bool want = true;
	pthread_mutex_lock(&mk->mu);
	for (size_t i = 0; i < mk->ncats; i++)
		if (!strcmp(mk->cats[i].conn, conn) && mk->cats[i].cat)
			want = mk->cats[i].stale || gw_mono_us() - mk->cats[i].cat->loaded_us > CAT_REFRESH_US;
	pthread_mutex_unlock(&mk->mu);
	return want;
}

void gw_masker_cat_stale(gw_masker *mk, const char *conn)
{
	pthread_mutex_lock(&mk->mu);
	for (size_t i = 0; i < mk->ncats; i++)
		if (!strcmp(mk->cats[i].conn, conn))
			mk->cats[i].stale = true;
	pthread_mutex_unlock(&mk->mu);
}

bool gw_mask_cat_rel_masked(gw_mask_cat *c, const char *name)
{
	const char *dot = strchr(name, '.');
	char schema[128] = "";
	if (dot && (size_t)(dot - name) < sizeof(schema))
		memcpy(schema, name, (size_t)(dot - name));
	const struct mrel *r = find_rel(c, dot ? schema : NULL, dot ? dot + 1 : name);
	for (; r; r = dot ? NULL : r->same_name) {
		if (dot && strcmp(r->schema, schema))
			continue;
		for (size_t i = 0; i < r->ncols; i++)
			if (r->cols[i].action != GW_MASK_NONE)
				return true;
	}
	return !r && false;
}

bool gw_mask_cat_stmt_tainted(gw_mask_cat *c, const gw_sql_stmt *st)
{
	if (st->cls == GW_SQL_ADMIN || (st->flags & (GW_SQL_F_EXECUTE | GW_SQL_F_UNKNOWN | GW_SQL_F_OPAQUE)))
		return true; /* DO, CALL, EXECUTE, ...: what they read is not in the text */
	for (size_t k = 0; k < st->nrelations; k++)
		if (gw_mask_cat_rel_masked(c, st->relations[k]))
			return true;
	return calls_user_function(c, st);
}

int gw_mask_check_write(gw_mask_cat *cat, const char *stmt, size_t len, const gw_sql_stmt *st, char *why,
	size_t whylen)
{
	why[0] = 0;
	if (st && st->cls < GW_SQL_WRITE && !(st->flags & GW_SQL_F_UNKNOWN))
		return 0; /* a read writes nothing (and a data-modifying CTE makes a statement a write) */
	gw_sql_catalog cb = {0};
	if (cat)
		cb = (gw_sql_catalog){.ud = cat, .columns = cb_columns, .masked = cb_masked, .write_ok = cb_write_ok,
			.rel_masked = cb_rel_masked, .schema_masked = cb_schema_masked, .user_code = cb_user_code};
	if (cat && st && (st->flags & GW_SQL_F_STATEFUL_CALL) && gw_mask_cat_stmt_tainted(cat, st)) {
		/* advisory locks, setval, set_config, large objects...: a later statement reads back what they were given */
		snprintf(why, whylen, "the statement reads masked columns and calls a function that keeps what it is given "
			"where a later statement can read it (an advisory lock, a sequence, a setting, a large object, ...)");
		return 1;
	}
	if (cat && st && !strcmp(st->tag, "CALL") && cat->any_masked) {
		snprintf(why, whylen, "a procedure defined in the database may read masked columns and put their values "
			"anywhere; it is not decided");
		return 1;
	}
	int rc = gw_sql_mask_writes(stmt, len, &cb, why, whylen);
	if (rc == 0 && cat && reads_cast_typed(cat, st)) {
		/* a value of such a type may be cast by the user's function where the text does not say (an assignment) */
		snprintf(why, whylen, "the statement reads a column of a type whose cast runs a function defined in the "
			"database, which may return anything");
		rc = -1;
	}
	if (rc < 0 && cat && !cat->any_masked)
		return 0; /* not decided, but nothing is masked that it could take */
	return rc != 0;
}

/* ---- the masker ---- */

gw_masker *gw_masker_new(const gw_config *cfg, char *err, size_t errlen)
{
	if (!cfg->has_masking)
		return NULL;
	gw_masker *mk = gw_xcalloc(1, sizeof(*mk));
	mk->cfg = cfg;
	pthread_mutex_init(&mk->mu, NULL);
	mk->rules = gw_xcalloc(cfg->n_mask_rules ? cfg->n_mask_rules : 1, sizeof(*mk->rules));
	for (size_t i = 0; i < cfg->n_mask_rules; i++) {
		const gw_mask_rule_cfg *rc = &cfg->mask_rules[i];
		mk->rules[mk->nrules].cfg = rc;
		if (rc->column_name) {
			int code;
			PCRE2_SIZE off;
			mk->rules[mk->nrules].re = pcre2_compile((PCRE2_SPTR)rc->column_name, PCRE2_ZERO_TERMINATED,
				PCRE2_CASELESS | PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
			if (!mk->rules[mk->nrules].re) {
				snprintf(err, errlen, "masking.rules: column_name '%s' does not compile", rc->column_name);
				mk->nrules++;
				gw_masker_free(mk);
				return NULL;
			}
		}
		mk->nrules++;
	}
	mk->entities = GW_ENT_ALL;
	if (cfg->mask_detectors_set) {
		mk->entities = 0;
		for (size_t i = 0; i < cfg->mask_detectors.n; i++) {
			int e = gw_entity_from_name(cfg->mask_detectors.v[i]);
			if (e < 0 && cfg->mask_presidio)
				continue; /* one of Presidio's own entities */
			if (e < 0) {
				snprintf(err, errlen, "masking.detectors: unknown detector '%s'", cfg->mask_detectors.v[i]);
				gw_masker_free(mk);
				return NULL;
			}
			mk->entities |= GW_ENT_BIT(e);
		}
	}
	mk->det = gw_detector_new(mk->entities, err, errlen);
	if (!mk->det) {
		gw_masker_free(mk);
		return NULL;
	}
	return mk;
}

void gw_masker_free(gw_masker *mk)
{
	if (!mk)
		return;
	for (size_t i = 0; i < mk->nrules; i++)
		pcre2_code_free(mk->rules[i].re);
	free(mk->rules);
	for (size_t i = 0; i < mk->ncats; i++) {
		free(mk->cats[i].conn);
		gw_mask_cat_unref(mk->cats[i].cat);
	}
	free(mk->cats);
	gw_detector_free(mk->det);
	pthread_mutex_destroy(&mk->mu);
	free(mk);
}

bool gw_masker_exempt(const gw_masker *mk, const gw_identity *id)
{
	return mk && mk->cfg->mask_exempt.n && gw_access_principal_in(id, &mk->cfg->mask_exempt);
}

/* ---- plans ---- */

static struct gw_mask_plan *plan_alloc(int ncols)
{
	struct gw_mask_plan *p = gw_xcalloc(1, sizeof(*p));
	p->ncols = ncols;
	p->cols = gw_xcalloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*p->cols));
	return p;
}

const gw_mask_plan *gw_mask_plan_withhold(void)
{
	static const struct gw_mask_plan withhold = {.all = true, .tainted = true};
	return &withhold;
}

gw_mask_plan *gw_mask_plan_all(void)
{
	struct gw_mask_plan *p = plan_alloc(0);
	p->all = true;
	p->tainted = true;
	return p;
}

void gw_mask_plan_free(gw_mask_plan *p)
{
	if (!p)
		return;
	free(p->cols);
	free(p);
}

bool gw_mask_plan_tainted(const gw_mask_plan *p)
{
	return p && p->tainted;
}

gw_mask_plan *gw_mask_plan_formats(const gw_mask_plan *p, const uint8_t *codes, int ncodes)
{
	struct gw_mask_plan *q = plan_alloc(p->ncols);
	q->tainted = p->tainted;
	q->all = p->all;
	for (int i = 0; i < p->ncols; i++) {
		q->cols[i] = p->cols[i];
		if (ncodes < 0)
			continue;
		int f = ncodes == 0 ? 0 : ncodes == 1 ? (int)gw_get_u16(codes) : i < ncodes ? (int)gw_get_u16(codes + 2 * i) : 0;
		q->cols[i].binary = f == 1;
	}
	return q;
}

/* A relation the snapshot does not know was named: read the catalog again before the next statement. */
static void cat_mark_stale(gw_masker *mk, const gw_mask_cat *cat)
{
	pthread_mutex_lock(&mk->mu);
	for (size_t i = 0; i < mk->ncats; i++)
		if (mk->cats[i].cat == cat)
			mk->cats[i].stale = true;
	pthread_mutex_unlock(&mk->mu);
}

/* A relation the statement names has a column of a type with a cast that runs a user's function. */
static bool reads_cast_typed(const gw_mask_cat *cat, const gw_sql_stmt *st)
{
	for (size_t k = 0; st && cat->cast_oids.n && k < st->nrelations; k++) {
		const char *name = st->relations[k], *dot = strchr(name, '.');
		char schema[128] = "";
		if (dot && (size_t)(dot - name) < sizeof(schema))
			memcpy(schema, name, (size_t)(dot - name));
		for (const struct mrel *r = find_rel((void *)cat, dot ? schema : NULL, dot ? dot + 1 : name); r;
			r = dot ? NULL : r->same_name)
			for (size_t i = 0; i < r->ncols; i++)
				if (gw_map_get(&cat->cast_oids, &r->cols[i].typoid, sizeof(r->cols[i].typoid)))
					return true;
	}
	return false;
}

/*
 * The statement runs code defined in the database (its result, or a message it raises, may hold anything): a
 * function outside the system schemas, an operator or a cast whose function is a user's, or a column of a type
 * with such a cast (the cast may run where the text does not say, in an assignment or a function's argument).
 */
static bool calls_user_function(const gw_mask_cat *cat, const gw_sql_stmt *st)
{
	for (size_t i = 0; st && i < st->nfunctions; i++) {
		const char *f = st->functions[i], *dot = strrchr(f, '.');
		const char *name = dot ? dot + 1 : f;
		if (gw_map_get(&cat->user_fns, name, strlen(name)))
			return true;
	}
	for (size_t i = 0; st && cat->user_ops.n && i < st->noperators; i++)
		if (gw_map_get(&cat->user_ops, st->operators[i], strlen(st->operators[i])))
			return true;
	for (size_t i = 0; st && cat->cast_types.n && i < st->ncasts; i++)
		if (gw_map_get(&cat->cast_types, st->casts[i], strlen(st->casts[i])))
			return true;
	return reads_cast_typed(cat, st);
}

gw_mask_plan *gw_mask_plan_new(gw_masker *mk, gw_mask_cat *cat, const uint8_t *b, size_t n, const char *stmt,
	size_t len, const gw_sql_stmt *st, char *notice, size_t noticelen)
{
	notice[0] = 0;
	if (n < 2)
		return NULL;
	int k = gw_get_u16(b);
	struct gw_mask_plan *p = plan_alloc(k);
	uint8_t *verdict = NULL;
	int nverdict = -2; /* not computed */
	char why[200] = "";
	bool undecided = false, work = false, unknown_rel = false;
	size_t off = 2;
	for (int i = 0; i < k; i++) {
		const uint8_t *name = b + off;
		const uint8_t *z = memchr(b + off, 0, n - off);
		if (!z || (size_t)(z + 1 - b) + 18 > n) {
			gw_mask_plan_free(p);
			free(verdict);
			return gw_mask_plan_all();
		}
		off = (size_t)(z + 1 - b);
		uint32_t tab = gw_get_u32(b + off);
		int att = (int16_t)gw_get_u16(b + off + 4);
		uint32_t typ = gw_get_u32(b + off + 6);
		int fmt = (int16_t)gw_get_u16(b + off + 16);
		off += 18;
		struct pcol *c = &p->cols[i];
		c->typoid = typ;
		c->binary = fmt == 1;
		uint8_t act = GW_MASK_NONE;
		bool decided = false;
		if (tab && cat) {
			const struct mrel *r = rel_by_oid(cat, tab);
			const struct mcol *mc = r ? rel_col(r, att) : NULL;
			if (mc) {
				act = mc->action;
				decided = true;
			}
		}
		if (!decided && tab) {
			/* a relation the snapshot does not know (created since): mask whole, load the catalog again */
			act = GW_MASK_REDACT;
			undecided = true;
			unknown_rel = cat != NULL;
			if (!why[0])
				snprintf(why, sizeof(why), "column \"%.60s\" comes from a relation the gateway has not seen in the "
					"catalog yet", (const char *)name);
		} else if (!decided) {
			if (nverdict == -2) {
				verdict = gw_xcalloc(k > 0 ? (size_t)k : 1, 1);
				if (!stmt || !cat) {
					nverdict = -1;
					snprintf(why, sizeof(why), "%s", !cat ? "the catalog is not loaded" : "the statement is not known");
				} else if (calls_user_function(cat, st)) {
					nverdict = -1;
					snprintf(why, sizeof(why), "the statement runs code defined in the database (a function, "
						"operator or cast), whose result may come from masked columns");
				} else {
					gw_sql_catalog cb = {.ud = cat, .columns = cb_columns, .masked = cb_masked, .user_code = cb_user_code};
					nverdict = gw_sql_mask_columns(stmt, len, &cb, verdict, (size_t)k, why, sizeof(why));
				}
			}
			uint8_t v = nverdict < 0 || nverdict != k ? GW_SQL_COL_UNDECIDED : verdict[i];
			if (v == GW_SQL_COL_MASKED) {
				act = GW_MASK_REDACT;
				p->tainted = true;
			} else if (v == GW_SQL_COL_UNDECIDED) {
				act = GW_MASK_REDACT;
				undecided = true;
			}
		}
		if (typ == 2277 && act == GW_MASK_NONE)
			act = GW_MASK_NULL; /* anyarray: only the statistics views have it, holding sampled values */
		if (act != GW_MASK_NONE)
			p->tainted = true;
		if (act == GW_MASK_NONE && (mk->entities || mk->cfg->mask_presidio) && scan_type(typ))
			act = ACT_SCAN;
		c->action = act;
		work |= act != GW_MASK_NONE;
	}
	free(verdict);
	if (unknown_rel)
		cat_mark_stale(mk, cat); /* a relation created since the snapshot: read the catalog again */
	if (undecided) {
		p->tainted = true;
		snprintf(notice, noticelen, "pgmoat: some result columns were masked whole because their origin could not "
			"be decided (%s)", why[0] ? why : "unknown");
	}
	if (!work) {
		gw_mask_plan_free(p);
		return NULL;
	}
	return p;
}

/* ---- values ---- */

/*
 * One value is masked into raw bytes appended to a buffer; the caller frames
 * them: a DataRow or binary COPY field (int32 length, -1 NULL), or a text or
 * CSV COPY field (escaped or quoted, the NULL string).
 */
enum { V_SAME, V_BYTES, V_NULL }; /* the value unchanged (nothing appended) / bytes appended / NULL */

/* A text value masked by action: the replacement text into t (bounded), its length returned. */
static size_t text_partial(const uint8_t *v, size_t n, char *t, size_t tmax)
{
	/* digits with separators (a card, a phone, an SSN): every digit but the last 4 starred, layout kept */
	size_t digits = 0, other = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] >= '0' && v[i] <= '9')
			digits++;
		else if (!strchr(" -.()+/", v[i]))
			other++;
	}
	if (digits >= 8 && !other && n < tmax) {
		size_t seen = 0;
		for (size_t i = 0; i < n; i++) {
			bool d = v[i] >= '0' && v[i] <= '9';
			if (d)
				seen++;
			t[i] = d && seen + 4 <= digits ? '*' : (char)v[i];
		}
		return n;
	}
	/* other text: "****" and, for 8 characters or more, the last 4 characters (whole UTF-8 characters) */
	size_t chars = 0;
	for (size_t i = 0; i < n; i++)
		chars += (v[i] & 0xC0) != 0x80;
	memcpy(t, "****", 4);
	if (chars < 8)
		return 4;
	size_t start = n, kept = 0;
	while (start > 0 && kept < 4) {
		start--;
		if ((v[start] & 0xC0) != 0x80)
			kept++;
	}
	size_t k = n - start < tmax - 4 ? n - start : tmax - 4;
	memcpy(t + 4, v + start, k);
	return 4 + k;
}

/* 16 bytes as a uuid's text (8-4-4-4-12 hex digits) into t[37]; returns 36. */
static size_t uuid_text(const uint8_t b[16], char *t)
{
	static const int groups[] = {4, 2, 2, 2, 6};
	size_t k = 0, at = 0;
	for (size_t g = 0; g < GW_ARRAY_LEN(groups); g++) {
		if (g)
			t[k++] = '-';
		gw_hex(b + at, (size_t)groups[g], t + k);
		k += 2 * (size_t)groups[g];
		at += (size_t)groups[g];
	}
	return k;
}

/*
 * The text form of a binary integer or uuid (what hash keys on, so that a
 * value hashes the same in either format); false when v is not one.
 */
static bool canonical_text(const struct pcol *c, const uint8_t *v, size_t n, char *t, size_t *tn)
{
	if (!c->binary)
		return false;
	if ((c->typoid == T_INT2 && n == 2) || (c->typoid == T_INT4 && n == 4) || (c->typoid == T_INT8 && n == 8)) {
		uint64_t x = 0;
		for (size_t i = 0; i < n; i++)
			x = x << 8 | v[i];
		int64_t val = n == 2 ? (int64_t)(int16_t)x : n == 4 ? (int64_t)(int32_t)x : (int64_t)x;
		*tn = (size_t)snprintf(t, 24, "%lld", (long long)val);
		return true;
	}
	if (c->typoid == T_UUID && n == 16) {
		*tn = uuid_text(v, t);
		return true;
	}
	return false;
}

/* action hash: a value of the column's type (integers, uuids, text), or NULL (false) for any other type. */
static bool hash_into(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out)
{
	uint8_t mac[32];
	const char *key = mk->cfg->mask_hash_key ? mk->cfg->mask_hash_key : "";
	char canon[48];
	size_t cn;
	if (canonical_text(c, v, n, canon, &cn))
		gw_hmac_sha256(key, strlen(key), canon, cn, mac);
	else
		gw_hmac_sha256(key, strlen(key), v, n, mac);
	if (c->typoid == T_INT8 || c->typoid == T_INT4 || c->typoid == T_INT2) {
		uint64_t x = 0;
		for (int i = 0; i < 8; i++)
			x = x << 8 | mac[i];
		int64_t val = c->typoid == T_INT8 ? (int64_t)(x >> 1) : c->typoid == T_INT4 ? (int64_t)(x >> 33) :
			(int64_t)(x >> 49);
		if (c->binary) {
			uint8_t bb[8];
			int w = c->typoid == T_INT8 ? 8 : c->typoid == T_INT4 ? 4 : 2;
			for (int i = 0; i < w; i++)
				bb[i] = (uint8_t)((uint64_t)val >> (8 * (w - 1 - i)));
			gw_buf_append(out, bb, (size_t)w);
		} else {
			char t[24];
			int k = snprintf(t, sizeof(t), "%lld", (long long)val);
			gw_buf_append(out, t, (size_t)k);
		}
		return true;
	}
	if (c->typoid == T_UUID) {
		if (c->binary) {
			gw_buf_append(out, mac, 16);
		} else {
			char t[40];
			gw_buf_append(out, t, uuid_text(mac, t));
		}
		return true;
	}
	if (!text_type(c->typoid))
		return false;
	char t[33];
	gw_hex(mac, 16, t);
	gw_buf_append(out, t, 32);
	return true;
}

/* A whole value masked by a rule action (or a derived column: redact); false: NULL. */
static bool masked_into(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out)
{
	switch (c->action) {
	case GW_MASK_HASH:
		return hash_into(mk, c, v, n, out);
	case GW_MASK_PARTIAL:
		if (text_type(c->typoid)) {
			char t[80];
			size_t k = text_partial(v, n, t, sizeof(t));
			gw_buf_append(out, t, k);
			return true;
		}
		return false;
	case GW_MASK_REDACT:
		if (text_type(c->typoid)) {
			gw_buf_append(out, REDACTED, strlen(REDACTED));
			return true;
		}
		if (json_type(c->typoid)) {
			if (c->binary && c->typoid == T_JSONB)
				gw_buf_append(out, "\001\"[redacted]\"", 13);
			else
				gw_buf_append(out, "\"[redacted]\"", 12);
			return true;
		}
		return false;
	default:
		return false;
	}
}

#define NUM_TEXT_MAX 1200

/*
 * A double precision value's digits when it is integral (up to 9 * 10^18): PostgreSQL writes 4111111111111111 as
 * 4.111111111111111e+15, where no detector would see a card number. 0 when it is not integral (its text is
 * scanned as it is).
 */
static size_t float8_digits(const uint8_t *v, size_t n, bool binary, char *t, size_t cap)
{
	double d;
	if (binary) {
		uint64_t x = 0;
		for (size_t i = 0; i < 8; i++)
			x = x << 8 | v[i];
		memcpy(&d, &x, sizeof(d));
	} else {
		char buf[64];
		memcpy(buf, v, n);
		buf[n] = 0;
		char *end;
		d = strtod(buf, &end);
		if (*end)
			return 0;
	}
	if (!(d == d) || d > 9e18 || d < -9e18 || d != (double)(long long)d)
		return 0;
	int k = snprintf(t, cap, "%.0f", d);
	return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}

/*
 * numeric's binary form (numeric_send: ndigits, weight, sign, dscale, then
 * base-10000 digits) as decimal text, for the detectors. Returns its length,
 * or SIZE_MAX when v is not a well-formed numeric or its text is longer
 * than cap. NaN and infinities give "" (nothing to find).
 */
static size_t numeric_text(const uint8_t *v, size_t n, char *t, size_t cap)
{
	if (n < 8 || cap < 16)
		return SIZE_MAX;
	int nd = (int16_t)gw_get_u16(v), weight = (int16_t)gw_get_u16(v + 2);
	unsigned sign = gw_get_u16(v + 4), dscale = gw_get_u16(v + 6);
	if (nd < 0 || (size_t)nd * 2 + 8 != n || (dscale & 0xC000))
		return SIZE_MAX;
	if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000)
		return nd == 0 ? 0 : SIZE_MAX;
	if (sign != 0 && sign != 0x4000)
		return SIZE_MAX;
	for (int d = 0; d < nd; d++)
		if (gw_get_u16(v + 8 + 2 * d) > 9999)
			return SIZE_MAX;
	size_t k = 0;
	if (sign == 0x4000)
		t[k++] = '-';
	if (weight < 0) {
		t[k++] = '0';
	} else {
		if ((size_t)weight * 4 + 8 > cap - k)
			return SIZE_MAX;
		for (int d = 0; d <= weight; d++) {
			unsigned dig = d < nd ? gw_get_u16(v + 8 + 2 * d) : 0;
			k += (size_t)snprintf(t + k, cap - k, d == 0 ? "%u" : "%04u", dig);
		}
	}
	if (dscale > 0) {
		if (dscale + 8 > cap - k)
			return SIZE_MAX;
		t[k++] = '.';
		unsigned done = 0;
		for (int d = weight + 1; done < dscale; d++) {
			unsigned dig = d >= 0 && d < nd ? gw_get_u16(v + 8 + 2 * d) : 0;
			char g[8];
			snprintf(g, sizeof(g), "%04u", dig);
			for (int j = 0; j < 4 && done < dscale; j++, done++)
				t[k++] = g[j];
		}
	}
	return k;
}

/*
 * Scan a value; write it with every span replaced by <ENTITY>. json keeps
 * valid JSON (a span touching a quote or backslash redacts the value whole);
 * a type other than text/json with a find becomes NULL (a type the plan does
 * not know, too: typoid 0). *finds counts what was found.
 */
static int scan_into(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out, uint64_t *finds)
{
	struct gw_span sp[MAX_SPANS];
	const uint8_t *t = v;
	size_t tn = n;
	char num[NUM_TEXT_MAX];
	size_t k;
	if (c->binary && (c->typoid == T_INT8 || c->typoid == T_INT4) && n == (c->typoid == T_INT8 ? 8u : 4u)) {
		uint64_t x = 0;
		for (size_t i = 0; i < n; i++)
			x = x << 8 | v[i];
		long long val = n == 8 ? (long long)(int64_t)x : (long long)(int32_t)(uint32_t)x;
		tn = (size_t)snprintf(num, sizeof(num), "%lld", val);
		t = (const uint8_t *)num;
	} else if (c->typoid == T_FLOAT8 && (c->binary ? n == 8 : n > 0 && n < 64)) {
		tn = float8_digits(v, n, c->binary, num, sizeof(num));
		if (tn == 0) {
			t = v; /* not an integral number (or NaN, Infinity): its text as it is */
			tn = c->binary ? 0 : n;
		} else {
			t = (const uint8_t *)num;
		}
	} else if (c->binary && c->typoid == T_NUMERIC) {
		tn = numeric_text(v, n, num, sizeof(num));
		t = (const uint8_t *)num;
	} else if (c->binary && c->typoid == T_JSONB && n > 0) {
		t = v + 1; /* version byte, then the text */
		tn = n - 1;
	}
	if (tn == SIZE_MAX) {
		k = SIZE_MAX; /* a numeric that cannot be read as decimal text: fail closed */
	} else {
		k = gw_detect(mk->det, (const char *)t, tn, sp, MAX_SPANS);
		if (k == 0 && c->binary && c->typoid == 0) {
			/*
			 * A binary value of a type the plan does not know (COPY (query) TO
			 * ... BINARY): text types were scanned as they are; bigint and
			 * numeric hold card numbers, SSNs and phone numbers as digits.
			 */
			size_t dn = SIZE_MAX;
			if (n == 8) {
				uint64_t x = 0;
				for (int i = 0; i < 8; i++)
					x = x << 8 | v[i];
				dn = (size_t)snprintf(num, sizeof(num), "%lld", (long long)(int64_t)x);
				k = gw_detect(mk->det, num, dn, NULL, 0);
			}
			if (k == 0 && (dn = numeric_text(v, n, num, sizeof(num))) != SIZE_MAX)
				k = gw_detect(mk->det, num, dn, NULL, 0);
			if (k)
				k = SIZE_MAX; /* found in a rendering: the value goes whole */
		}
	}
	if (k == 0)
		return V_SAME;
	bool whole = k > MAX_SPANS || !(text_type(c->typoid) || json_type(c->typoid));
	if (!whole && json_type(c->typoid))
		for (size_t i = 0; i < k && !whole; i++)
			for (uint32_t j = sp[i].start; j < sp[i].end; j++)
				if (t[j] == '"' || t[j] == '\\') {
					whole = true;
					break;
				}
	*finds += k == SIZE_MAX ? 1 : k;
	if (whole) {
		struct pcol r = *c;
		r.action = GW_MASK_REDACT;
		return masked_into(mk, &r, v, n, out) ? V_BYTES : V_NULL;
	}
	if (c->binary && c->typoid == T_JSONB)
		gw_buf_append(out, v, 1); /* jsonb's version byte */
	size_t at = 0;
	for (size_t i = 0; i < k; i++) {
		gw_buf_append(out, t + at, sp[i].start - at);
		gw_buf_append(out, "<", 1);
		const char *name = gw_entity_name((enum gw_entity)sp[i].entity);
		gw_buf_append(out, name, strlen(name));
		gw_buf_append(out, ">", 1);
		at = sp[i].end;
	}
	gw_buf_append(out, t + at, tn - at);
	return V_BYTES;
}

/* DataRow and binary COPY framing: int32 length and the bytes, -1 for NULL. */
static void put_null(gw_buf *out)
{
	gw_buf_put_i32(out, -1);
}

static void put_bytes(gw_buf *out, const void *p, size_t n)
{
	gw_buf_put_i32(out, (int32_t)n);
	gw_buf_append(out, p, n);
}

/* One value of a row, framed: passed, scanned or masked as the plan's column says. */
static void put_value(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out, uint64_t *masked)
{
	if (c->action == GW_MASK_NONE) {
		put_bytes(out, v, n);
		return;
	}
	size_t lenpos = gw_buf_len(out);
	gw_buf_put_i32(out, 0);
	int r;
	if (c->action == ACT_SCAN) {
		r = scan_into(mk, c, v, n, out, masked);
		if (r == V_SAME)
			gw_buf_append(out, v, n);
	} else {
		r = masked_into(mk, c, v, n, out) ? V_BYTES : V_NULL;
		(*masked)++;
	}
	gw_put_u32(gw_buf_rd(out) + lenpos, r == V_NULL ? UINT32_MAX : (uint32_t)(gw_buf_len(out) - lenpos - 4));
}

/* A column whose values the external provider scans (text: what Presidio reads). */
static bool external_col(const struct pcol *c)
{
	return c->action == ACT_SCAN && (text_type(c->typoid) || json_type(c->typoid));
}

/* The text the provider reads of a value of an external column (jsonb binary: without its version byte). */
static void external_text(const struct pcol *c, const uint8_t **v, size_t *n)
{
	if (c->binary && c->typoid == T_JSONB && *n > 0) {
		(*v)++;
		(*n)--;
	}
}

/* A value of an external column written with the provider's finds. */
static int found_into(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, const struct gw_dlp_found *f,
	gw_buf *out, uint64_t *finds)
{
	const uint8_t *t = v;
	size_t tn = n;
	external_text(c, &t, &tn);
	if (!f->whole && f->nspans == 0)
		return V_SAME;
	bool whole = f->whole;
	for (size_t i = 0; i < f->nspans && !whole; i++) {
		if (f->spans[i].end > tn || f->spans[i].start >= f->spans[i].end)
			whole = true; /* does not fit the value: fail closed */
		for (uint32_t j = f->spans[i].start; json_type(c->typoid) && !whole && j < f->spans[i].end; j++)
			whole = t[j] == '"' || t[j] == '\\';
	}
	*finds += f->whole ? 1 : f->nspans;
	if (whole) {
		struct pcol r = *c;
		r.action = GW_MASK_REDACT;
		return masked_into(mk, &r, v, n, out) ? V_BYTES : V_NULL;
	}
	if (t != v)
		gw_buf_append(out, v, 1); /* jsonb's version byte */
	size_t at = 0;
	for (size_t i = 0; i < f->nspans; i++) {
		gw_buf_append(out, t + at, f->spans[i].start - at);
		gw_buf_append(out, "<", 1);
		/* Presidio's entity names are [A-Z_]; anything else is not written into the value */
		for (const char *q = f->spans[i].type; *q; q++)
			if ((*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_')
				gw_buf_append(out, q, 1);
		gw_buf_append(out, ">", 1);
		at = f->spans[i].end;
	}
	gw_buf_append(out, t + at, tn - at);
	return V_BYTES;
}

bool gw_mask_plan_scans(const gw_mask_plan *p)
{
	for (int i = 0; p && !p->all && i < p->ncols; i++)
		if (p->cols[i].action == ACT_SCAN)
			return true;
	return false;
}

bool gw_mask_plan_external(const gw_mask_plan *p)
{
	for (int i = 0; p && !p->all && i < p->ncols; i++)
		if (external_col(&p->cols[i]))
			return true;
	return false;
}

int gw_mask_row_values(const gw_mask_plan *p, const uint8_t *b, size_t n,
	void (*add)(void *ud, const uint8_t *v, size_t len), void *ud)
{
	if (n < 2 || p->all)
		return n < 2 ? -1 : 0;
	int k = gw_get_u16(b);
	if (k != p->ncols)
		return -1;
	size_t off = 2;
	int count = 0;
	for (int i = 0; i < k; i++) {
		const uint8_t *v;
		size_t vn;
		if (gw_pg_row_field(b, n, &off, &v, &vn) < 0)
			return -1;
		if (v && external_col(&p->cols[i])) {
			external_text(&p->cols[i], &v, &vn);
			add(ud, v, vn);
			count++;
		}
	}
	return off == n ? count : -1;
}

int gw_mask_row(gw_masker *mk, const gw_mask_plan *p, const uint8_t *b, size_t n, gw_buf *out, uint64_t *masked)
{
	return gw_mask_row_found(mk, p, b, n, NULL, NULL, out, masked);
}

int gw_mask_row_found(gw_masker *mk, const gw_mask_plan *p, const uint8_t *b, size_t n,
	const struct gw_dlp_found *found, size_t *fi, gw_buf *out, uint64_t *masked)
{
	if (n < 2)
		return -1;
	int k = gw_get_u16(b);
	if (!p->all && k != p->ncols)
		return -1;
	size_t mark = gw_buf_len(out);
	size_t m = gw_buf_msg_begin(out, 'D');
	gw_buf_put_i16(out, (int16_t)k);
	size_t off = 2;
	for (int i = 0; i < k; i++) {
		const uint8_t *v;
		size_t vlen;
		if (gw_pg_row_field(b, n, &off, &v, &vlen) < 0)
			goto bad;
		if (!v) {
			put_null(out);
			continue;
		}
		int32_t len = (int32_t)vlen;
		if (p->all) {
			put_null(out);
			(*masked)++;
			continue;
		}
		if (found && external_col(&p->cols[i])) {
			size_t lenpos = gw_buf_len(out);
			gw_buf_put_i32(out, 0);
			int r = found_into(mk, &p->cols[i], v, (size_t)len, &found[(*fi)++], out, masked);
			if (r == V_SAME)
				gw_buf_append(out, v, (size_t)len);
			gw_put_u32(gw_buf_rd(out) + lenpos, r == V_NULL ? UINT32_MAX : (uint32_t)(gw_buf_len(out) - lenpos - 4));
			continue;
		}
		put_value(mk, &p->cols[i], v, (size_t)len, out, masked);
	}
	if (off != n)
		goto bad;
	gw_buf_msg_end(out, m);
	return 0;
bad:
	out->len = mark; /* nothing of a malformed row is written */
	return -1;
}

/* ---- error and notice text, notification payloads ---- */

/* Append s[0..n) to out with every detector find replaced; returns finds. */
static size_t scan_text(gw_masker *mk, const char *s, size_t n, gw_buf *out)
{
	struct gw_span sp[MAX_SPANS];
	size_t k = gw_detect(mk->det, s, n, sp, MAX_SPANS);
	if (k == 0) {
		gw_buf_append(out, s, n);
		return 0;
	}
	if (k > MAX_SPANS) {
		gw_buf_append(out, REDACTED, strlen(REDACTED));
		return k == SIZE_MAX ? 1 : k;
	}
	size_t at = 0;
	for (size_t i = 0; i < k; i++) {
		gw_buf_append(out, s + at, sp[i].start - at);
		const char *name = gw_entity_name((enum gw_entity)sp[i].entity);
		gw_buf_append(out, "<", 1);
		gw_buf_append(out, name, strlen(name));
		gw_buf_append(out, ">", 1);
		at = sp[i].end;
	}
	gw_buf_append(out, s + at, n - at);
	return k;
}

static bool in_stmt(const char *stmt, size_t len, const char *v, size_t n)
{
	return stmt && n && n <= len && memmem(stmt, len, v, n);
}

/*
 * A tainted statement's message or detail: a value quoted "..." or inside
 * =(...) that the client did not write itself is withheld.
 */
static size_t withhold_values(const char *s, size_t n, const char *stmt, size_t len, gw_buf *out)
{
	size_t k = 0, i = 0;
	while (i < n) {
		char open = s[i], close = 0;
		if (open == '"')
			close = '"';
		else if (open == '(' && i > 0 && s[i - 1] == '=')
			close = ')';
		if (!close) {
			gw_buf_append(out, s + i, 1);
			i++;
			continue;
		}
		const char *e = memchr(s + i + 1, close, n - i - 1);
		if (close == ')') {
			/* the value list of a key runs to the last ')' of the line: values may hold parentheses */
			const char *nl = memchr(s + i + 1, '\n', n - i - 1);
			const char *lim = nl ? nl : s + n;
			for (const char *q = lim - 1; q > s + i; q--)
				if (*q == ')') {
					e = q;
					break;
				}
		}
		if (!e) {
			gw_buf_append(out, s + i, 1);
			i++;
			continue;
		}
		size_t vn = (size_t)(e - (s + i + 1));
		gw_buf_append(out, s + i, 1);
		if (in_stmt(stmt, len, s + i + 1, vn)) {
			gw_buf_append(out, s + i + 1, vn);
		} else {
			gw_buf_append(out, "[withheld]", 10);
			k++;
		}
		gw_buf_append(out, e, 1);
		i = (size_t)(e - s) + 1;
	}
	return k;
}

void gw_mask_error(gw_masker *mk, uint8_t type, const uint8_t *b, size_t n, const char *stmt, size_t len,
	bool tainted, gw_buf *out, uint64_t *masked)
{
	size_t m = gw_buf_msg_begin(out, (char)type);
	size_t off = 0;
	gw_buf tmp = {0};
	/*
	 * A statement that reads masked columns: only errors whose text names what
	 * the client wrote (syntax, names, privileges, the transaction, limits)
	 * keep it, with quoted values the client did not write withheld; any other
	 * (a bad value, a key violation, a failing row, a RAISE, XML/JSON context
	 * lines...) is replaced whole by what kind of error it was.
	 */
	char code5[8] = "";
	gw_pg_error_field(b, n, 'C', code5, sizeof(code5));
	static const char *const keep[] = {"42", "0A", "25", "26", "34", "3D", "3F", "40", "53", "54", "55", "57", "08"};
	bool kept = false;
	for (size_t i = 0; i < GW_ARRAY_LEN(keep); i++)
		kept |= !strncmp(code5, keep[i], 2);
	bool raised = tainted && !kept;
	while (off < n && b[off]) {
		uint8_t code = b[off++];
		const uint8_t *z = memchr(b + off, 0, n - off);
		if (!z)
			break;
		const char *v = (const char *)b + off;
		size_t vn = (size_t)(z - (b + off));
		off = (size_t)(z - b) + 1;
		gw_buf_put_u8(out, code);
		/* codes that hold text a value could be echoed in; severity, SQLSTATE, positions, names pass */
		bool text = code == 'M' || code == 'D' || code == 'H' || code == 'W' || code == 'q' || code == 'c' ||
			code == 'd' || code == 't' || code == 's' || code == 'n';
		if (!text) {
			gw_buf_append(out, v, vn);
			gw_buf_put_u8(out, 0);
			continue;
		}
		gw_buf_reset(&tmp);
		if (raised && (code == 'D' || code == 'H' || code == 'W' || code == 'q')) {
			out->len -= 1; /* the field is left out */
			(*masked)++;
			continue;
		}
		if (raised && code == 'M') {
			char w[200];
			int k = snprintf(w, sizeof(w), "pgmoat: the server's message (SQLSTATE %s) was withheld because the "
				"statement reads masked columns, and such messages can quote their values", code5);
			gw_buf_append(out, w, (size_t)k);
			gw_buf_put_u8(out, 0);
			(*masked)++;
			continue;
		}
		if (tainted && (code == 'M' || code == 'D' || code == 'W' || code == 'H'))
			*masked += withhold_values(v, vn, stmt, len, &tmp);
		else
			gw_buf_append(&tmp, v, vn);
		*masked += scan_text(mk, (const char *)gw_buf_rd(&tmp), gw_buf_len(&tmp), out);
		gw_buf_put_u8(out, 0);
	}
	gw_buf_free(&tmp);
	gw_buf_put_u8(out, 0);
	gw_buf_msg_end(out, m);
}

void gw_mask_notification(gw_masker *mk, const uint8_t *b, size_t n, bool tainted, uint32_t own_pid, gw_buf *out,
	uint64_t *masked)
{
	size_t m = gw_buf_msg_begin(out, 'A');
	if (n < 4) {
		gw_buf_msg_end(out, m);
		return;
	}
	gw_buf_append(out, b, 4); /* pid */
	size_t off = 4;
	const uint8_t *z = memchr(b + off, 0, n - off);
	if (!z) {
		gw_buf_msg_end(out, m);
		return;
	}
	gw_buf_append(out, b + off, (size_t)(z - (b + off)) + 1); /* channel */
	off = (size_t)(z - b) + 1;
	const uint8_t *z2 = off < n ? memchr(b + off, 0, n - off) : NULL;
	size_t pn = z2 ? (size_t)(z2 - (b + off)) : 0;
	/* another backend's payload (a trigger's pg_notify(row_to_json(NEW))...) may carry anything */
	if (pn && (tainted || gw_get_u32(b) != own_pid)) {
		/* sent while this session's transaction read masked columns: its payload may carry them */
		static const char w[] = "[withheld: sent while masked columns were read]";
		gw_buf_append(out, w, sizeof(w) - 1);
		(*masked)++;
	} else {
		*masked += scan_text(mk, (const char *)b + off, pn, out);
	}
	gw_buf_put_u8(out, 0);
	gw_buf_msg_end(out, m);
}

/* ---- COPY ... TO STDOUT ---- */

/*
 * The columns COPY table [(cols)] TO sends, from the snapshot: each one's rule
 * action and type. An unqualified name that several schemas hold (the
 * session's search_path picks one): every relation of that name that could be
 * the one copied counts, the strongest action per column, the type only when
 * they agree. False when no relation fits (why says so).
 */
static bool copy_table_cols(gw_masker *mk, gw_mask_cat *cat, const struct gw_sql_copy *opt, struct gw_mask_plan *p,
	char *why, size_t whylen)
{
	if (opt->ncols && opt->ncols != (size_t)p->ncols) {
		snprintf(why, whylen, "COPY names %zu columns, the server sends %d", opt->ncols, p->ncols);
		return false;
	}
	int fits = 0;
	const struct mcol **cols = gw_xcalloc(p->ncols > 0 ? (size_t)p->ncols : 1, sizeof(*cols));
	const struct mrel *r = gw_map_get(&cat->by_name, opt->rel, strlen(opt->rel));
	for (; r; r = r->same_name) {
		if (opt->schema && strcmp(r->schema, opt->schema))
			continue;
		/* the columns this relation would send: the list's, or every column but generated ones */
		bool ok = true;
		if (opt->ncols) {
			for (size_t i = 0; i < opt->ncols && ok; i++) {
				cols[i] = rel_col_named(r, opt->cols[i]);
				ok = cols[i] && !cols[i]->generated;
			}
		} else {
			int k = 0;
			for (size_t i = 0; i < r->ncols && ok; i++) {
				if (r->cols[i].generated)
					continue;
				if (k < p->ncols)
					cols[k] = &r->cols[i];
				k++;
			}
			ok = k == p->ncols;
		}
		if (!ok)
			continue;
		for (int i = 0; i < p->ncols; i++) {
			struct pcol *c = &p->cols[i];
			/*
			 * the snapshot's action, and the rules' for the name as written (should the table COPY reads be
			 * one the snapshot has not seen yet, shadowing this one on the search_path)
			 */
			uint8_t a = stronger(cols[i]->action, rule_action_named(mk, opt->schema, opt->rel, cols[i]->name));
			c->action = fits ? stronger(c->action, a) : a;
			c->typoid = !fits || c->typoid == cols[i]->typoid ? cols[i]->typoid : 0;
		}
		fits++;
	}
	free(cols);
	if (!fits) {
		snprintf(why, whylen, "the gateway's catalog has no relation \"%.60s\" with those %d columns", opt->rel,
			p->ncols);
		cat_mark_stale(mk, cat);
		return false;
	}
	return true;
}

gw_mask_plan *gw_mask_copy_plan(gw_masker *mk, gw_mask_cat *cat, const char *stmt, size_t len, const gw_sql_stmt *st,
	const struct gw_sql_copy *opt, int ncols, char *notice, size_t noticelen)
{
	notice[0] = 0;
	if (ncols < 0)
		ncols = 0;
	struct gw_mask_plan *p = plan_alloc(ncols);
	char why[200] = "";
	bool undecided = false; /* a column (all: every column) is masked whole for want of an answer */
	bool all = false, work = false;
	if (!cat) {
		all = true;
		snprintf(why, sizeof(why), "the catalog is not loaded");
	} else if (!opt->query) {
		all = !copy_table_cols(mk, cat, opt, p, why, sizeof(why));
	} else if (!stmt || !st) {
		all = true;
		snprintf(why, sizeof(why), "the statement is not known");
	} else if (calls_user_function(cat, st)) {
		all = true;
		snprintf(why, sizeof(why), "the statement runs code defined in the database (a function, operator or cast), "
			"whose result may come from masked columns");
	} else {
		/* the query's columns, of types COPY does not say (typoid 0): a masked one can only be NULL */
		uint8_t *v = gw_xcalloc(ncols ? (size_t)ncols : 1, 1);
		gw_sql_catalog cb = {.ud = cat, .columns = cb_columns, .masked = cb_masked, .user_code = cb_user_code};
		int k = gw_sql_mask_columns_inner(stmt, len, &cb, v, (size_t)ncols, why, sizeof(why));
		if (k != ncols) {
			all = true;
			if (k >= 0)
				snprintf(why, sizeof(why), "the query has %d columns, the server sends %d", k, ncols);
		} else {
			for (int i = 0; i < ncols; i++) {
				p->cols[i].action = v[i] == GW_SQL_COL_CLEAR ? GW_MASK_NONE : GW_MASK_REDACT;
				undecided |= v[i] == GW_SQL_COL_UNDECIDED;
			}
		}
		free(v);
	}
	for (int i = 0; i < ncols; i++) {
		struct pcol *c = &p->cols[i];
		if (all)
			*c = (struct pcol){.action = GW_MASK_REDACT, .typoid = 0};
		c->binary = opt->format == GW_SQL_COPY_BINARY;
		if (c->action != GW_MASK_NONE)
			p->tainted = true;
		if (c->action == GW_MASK_NONE && (mk->entities || mk->cfg->mask_presidio) &&
			(c->typoid == 0 || scan_type(c->typoid)))
			c->action = ACT_SCAN;
		work |= c->action != GW_MASK_NONE;
	}
	if (all || undecided) {
		p->tainted = true;
		snprintf(notice, noticelen, "pgmoat: %s COPY columns were masked whole because their origin could not be "
			"decided (%s)", all ? "the" : "some", why[0] ? why : "unknown");
	}
	if (!work) {
		gw_mask_plan_free(p);
		return NULL;
	}
	return p;
}

/*
 * The CopyData rewriter. PostgreSQL sends one row per CopyData (the binary
 * header rides with the first row, the trailer comes alone), but nothing
 * here counts on it: a row may span messages (kept in pend, up to max_row)
 * and a message may hold several rows.
 */
struct gw_mask_copy_state {
	int format;             /* GW_SQL_COPY_* */
	char delim, quote, escape;
	char *null_str;
	size_t null_len;
	int phase;              /* 0 the header (binary signature, or a HEADER line) is next, 1 rows, 2 after the trailer */
	gw_buf pend;            /* the start of a row (or of the binary header) that has not ended yet */
	size_t scanned;         /* text/csv: bytes of pend already searched for the row's end */
	bool inq, esc;          /* csv: inside quotes / after the escape character, at pend[scanned] */
	size_t need;            /* binary: the unit at pend needs at least this many bytes */
	gw_buf val, mv;         /* scratch: a value with its escapes undone; a masked value */
	size_t max_row;
};

static const uint8_t copy_sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

gw_mask_copy_state *gw_mask_copy_begin(const gw_masker *mk, const struct gw_sql_copy *opt)
{
	gw_mask_copy_state *st = gw_xcalloc(1, sizeof(*st));
	st->format = opt->format;
	st->delim = opt->delim;
	st->quote = opt->quote;
	st->escape = opt->escape;
	st->null_len = opt->null_str ? opt->null_len : 0;
	st->null_str = gw_xmalloc(st->null_len + 1);
	if (st->null_len)
		memcpy(st->null_str, opt->null_str, st->null_len);
	st->null_str[st->null_len] = 0;
	st->phase = opt->format == GW_SQL_COPY_BINARY || opt->header ? 0 : 1;
	st->max_row = mk && mk->cfg->mask_max_row ? mk->cfg->mask_max_row : 64ul * 1024 * 1024;
	return st;
}

void gw_mask_copy_free(gw_mask_copy_state *st)
{
	if (!st)
		return;
	free(st->null_str);
	gw_buf_free(&st->pend);
	gw_buf_free(&st->val);
	gw_buf_free(&st->mv);
	free(st);
}

int gw_mask_copy_end(const gw_mask_copy_state *st)
{
	if (gw_buf_len(&st->pend))
		return -1; /* a row that never ended */
	return st->format == GW_SQL_COPY_BINARY && st->phase != 2 ? -1 : 0;
}

/* PostgreSQL's text-format escapes undone (CopyReadAttributesText): s[0..n) into out. */
static void copy_text_decode(const uint8_t *s, size_t n, gw_buf *out)
{
	gw_buf_reset(out);
	gw_buf_reserve(out, n + 1);
	uint8_t *w = gw_buf_wr(out);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c != '\\' || i + 1 >= n) {
			w[k++] = c;
			continue;
		}
		c = s[++i];
		switch (c) {
		case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
			unsigned val = (unsigned)(c - '0');
			for (int d = 0; d < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; d++)
				val = (val << 3) + (unsigned)(s[++i] - '0');
			c = (uint8_t)(val & 0377);
			break;
		}
		case 'x': {
			unsigned val = 0;
			int d = 0;
			for (; d < 2 && i + 1 < n && isxdigit(s[i + 1]); d++) {
				uint8_t h = s[++i];
				val = (val << 4) + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
			}
			if (d)
				c = (uint8_t)val;
			break;
		}
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'v': c = '\v'; break;
		default: break; /* the character itself (\\, the delimiter, ...) */
		}
		w[k++] = c;
	}
	gw_buf_commit(out, k);
}

/* A value in text format, escaped as PostgreSQL's CopyAttributeOutText does it. */
static void copy_text_encode(const uint8_t *v, size_t n, char delim, gw_buf *out)
{
	gw_buf_reserve(out, 2 * n + 1);
	uint8_t *w = gw_buf_wr(out);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = v[i], e = 0;
		if (c < 0x20) {
			switch (c) {
			case '\b': e = 'b'; break;
			case '\f': e = 'f'; break;
			case '\n': e = 'n'; break;
			case '\r': e = 'r'; break;
			case '\t': e = 't'; break;
			case '\v': e = 'v'; break;
			default: e = c == (uint8_t)delim ? c : 0; break;
			}
		} else if (c == '\\' || c == (uint8_t)delim) {
			e = c;
		}
		if (e) {
			w[k++] = '\\';
			w[k++] = e;
		} else {
			w[k++] = c;
		}
	}
	gw_buf_commit(out, k);
}

/* A quoted CSV field (its quotes included, as the row parser checked it) without its quoting. */
static void copy_csv_decode(const gw_mask_copy_state *st, const uint8_t *s, size_t n, gw_buf *out)
{
	gw_buf_reset(out);
	gw_buf_reserve(out, n + 1);
	uint8_t *w = gw_buf_wr(out);
	size_t k = 0;
	for (size_t i = 1; i < n; i++) {
		uint8_t c = s[i];
		if (c == (uint8_t)st->escape && i + 1 < n &&
			(s[i + 1] == (uint8_t)st->quote || s[i + 1] == (uint8_t)st->escape)) {
			w[k++] = s[++i];
			continue;
		}
		if (c == (uint8_t)st->quote)
			break;
		w[k++] = c;
	}
	gw_buf_commit(out, k);
}

/* A value in CSV, quoted as PostgreSQL's CopyAttributeOutCSV does it (force: it was quoted, FORCE_QUOTE). */
static void copy_csv_encode(const gw_mask_copy_state *st, const uint8_t *v, size_t n, bool force, bool single,
	gw_buf *out)
{
	bool q = force || (n == st->null_len && !memcmp(v, st->null_str, n)) || (single && n == 2 && v[0] == '\\' &&
		v[1] == '.');
	for (size_t i = 0; i < n && !q; i++)
		q = v[i] == (uint8_t)st->delim || v[i] == (uint8_t)st->quote || v[i] == '\n' || v[i] == '\r';
	if (!q) {
		gw_buf_append(out, v, n);
		return;
	}
	gw_buf_reserve(out, 2 * n + 2);
	uint8_t *w = gw_buf_wr(out);
	size_t k = 0;
	w[k++] = (uint8_t)st->quote;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == (uint8_t)st->quote || v[i] == (uint8_t)st->escape)
			w[k++] = (uint8_t)st->escape;
		w[k++] = v[i];
	}
	w[k++] = (uint8_t)st->quote;
	gw_buf_commit(out, k);
}

/* One text or CSV field raw[0..n) (quoted: a CSV field in quotes) to out, as it is or masked. */
static void copy_field(gw_masker *mk, const struct pcol *c, gw_mask_copy_state *st, const uint8_t *raw, size_t n,
	bool quoted, bool single, gw_buf *out, uint64_t *masked)
{
	bool csv = st->format == GW_SQL_COPY_CSV;
	if (c->action == GW_MASK_NONE || (!quoted && n == st->null_len && !memcmp(raw, st->null_str, n))) {
		gw_buf_append(out, raw, n); /* a NULL stays NULL */
		return;
	}
	const uint8_t *v = raw;
	size_t vn = n;
	if (quoted) {
		copy_csv_decode(st, raw, n, &st->val);
		v = gw_buf_rd(&st->val);
		vn = gw_buf_len(&st->val);
	} else if (!csv && memchr(raw, '\\', n)) {
		copy_text_decode(raw, n, &st->val);
		v = gw_buf_rd(&st->val);
		vn = gw_buf_len(&st->val);
	}
	gw_buf_reset(&st->mv);
	int r;
	if (c->action == ACT_SCAN) {
		r = scan_into(mk, c, v, vn, &st->mv, masked);
	} else {
		r = masked_into(mk, c, v, vn, &st->mv) ? V_BYTES : V_NULL;
		(*masked)++;
	}
	if (r == V_SAME)
		gw_buf_append(out, raw, n);
	else if (r == V_NULL)
		gw_buf_append(out, st->null_str, st->null_len);
	else if (csv)
		copy_csv_encode(st, gw_buf_rd(&st->mv), gw_buf_len(&st->mv), quoted, single, out);
	else
		copy_text_encode(gw_buf_rd(&st->mv), gw_buf_len(&st->mv), st->delim, out);
}

/* One row row[0..len) (its newline not included) rewritten to out, with its newline. -1: malformed. */
static int copy_row(gw_masker *mk, const gw_mask_plan *p, gw_mask_copy_state *st, const uint8_t *row, size_t len,
	gw_buf *out, uint64_t *masked)
{
	const uint8_t delim = (uint8_t)st->delim, quote = (uint8_t)st->quote, esc = (uint8_t)st->escape;
	bool csv = st->format == GW_SQL_COPY_CSV;
	if (p->ncols == 0) {
		if (len)
			return -1;
		gw_buf_put_u8(out, '\n');
		return 0;
	}
	int i = 0;
	size_t pos = 0;
	for (;;) {
		size_t fs = pos;
		bool quoted = false;
		if (csv && pos < len && row[pos] == quote) {
			quoted = true;
			for (pos++;; ) {
				if (pos >= len)
					return -1; /* a quote that is not closed on its row */
				uint8_t c = row[pos];
				if (c == esc && pos + 1 < len && (row[pos + 1] == quote || row[pos + 1] == esc)) {
					pos += 2;
					continue;
				}
				pos++;
				if (c == quote)
					break;
			}
			if (pos < len && row[pos] != delim)
				return -1; /* text after the closing quote: PostgreSQL does not write that */
		} else if (csv) {
			while (pos < len && row[pos] != delim) {
				if (row[pos] == quote)
					return -1;
				pos++;
			}
		} else {
			while (pos < len && row[pos] != delim) {
				if (row[pos] == '\\') {
					if (pos + 1 >= len)
						return -1; /* an escape with nothing to escape */
					pos++;
				}
				pos++;
			}
		}
		if (i >= p->ncols)
			return -1;
		if (i > 0)
			gw_buf_put_u8(out, delim);
		copy_field(mk, &p->cols[i], st, row + fs, pos - fs, quoted, p->ncols == 1, out, masked);
		i++;
		if (pos >= len)
			break;
		pos++; /* the delimiter */
	}
	if (i != p->ncols)
		return -1;
	gw_buf_put_u8(out, '\n');
	return 0;
}

/* Where the row starting at u ends (its newline), searching on from st->scanned; false: not in u[0..n) yet. */
static bool copy_row_end(gw_mask_copy_state *st, const uint8_t *u, size_t n, size_t *end)
{
	size_t i = st->scanned;
	if (st->format != GW_SQL_COPY_CSV) {
		const uint8_t *nl = i < n ? memchr(u + i, '\n', n - i) : NULL;
		if (!nl) {
			st->scanned = n;
			return false;
		}
		*end = (size_t)(nl - u);
		return true;
	}
	/* csv: a newline inside quotes is data */
	const uint8_t quote = (uint8_t)st->quote, esc = (uint8_t)st->escape;
	bool inq = st->inq, e = st->esc;
	for (; i < n; i++) {
		uint8_t c = u[i];
		if (!inq) {
			if (c == '\n') {
				*end = i;
				return true;
			}
			inq = c == quote;
		} else if (e) {
			e = false; /* the escaped character (or, when it is neither quote nor escape, an ordinary one) */
		} else if (esc != quote && c == esc) {
			e = true;
		} else if (c == quote) {
			inq = false; /* closes, or the first of a doubled quote (which opens again) */
		}
	}
	st->scanned = n;
	st->inq = inq;
	st->esc = e;
	return false;
}

/* Text and CSV: the rows that end in b[0..n) rewritten; *used: bytes consumed (the rest is an unfinished row). */
static int copy_text_units(gw_masker *mk, const gw_mask_plan *p, gw_mask_copy_state *st, const uint8_t *b, size_t n,
	gw_buf *out, uint64_t *masked, size_t *used)
{
	size_t pos = 0;
	while (pos < n) {
		size_t end;
		if (!copy_row_end(st, b + pos, n - pos, &end))
			break;
		if (st->phase == 0) {
			gw_buf_append(out, b + pos, end + 1); /* the HEADER line: column names */
			st->phase = 1;
		} else if (copy_row(mk, p, st, b + pos, end, out, masked) < 0) {
			return -1;
		}
		pos += end + 1;
		st->scanned = 0;
		st->inq = st->esc = false;
	}
	*used = pos;
	return 0;
}

/* Binary: the header, tuples and trailer complete in b[0..n) rewritten; *used as above. -2: over max_row. */
static int copy_bin_units(gw_masker *mk, const gw_mask_plan *p, gw_mask_copy_state *st, const uint8_t *b, size_t n,
	gw_buf *out, uint64_t *masked, size_t *used)
{
	size_t pos = 0;
	*used = 0;
	while (pos < n) {
		const uint8_t *u = b + pos;
		size_t un = n - pos;
		if (st->need > un)
			break;
		if (st->phase == 2)
			return -1; /* bytes after the trailer */
		if (st->phase == 0) {
			/* signature, flags, header extension length and the extension (dropped: nothing of ours) */
			if (un < 19) {
				st->need = 19;
				break;
			}
			uint32_t flags = gw_get_u32(u + 11), ext = gw_get_u32(u + 15);
			if (memcmp(u, copy_sig, sizeof(copy_sig)) || (flags & 0x1ffffu) || ext > INT32_MAX)
				return -1; /* a critical flag, or OIDs in the tuples: not what COPY TO writes */
			if (ext > st->max_row)
				return -2;
			if (un < 19 + (size_t)ext) {
				st->need = 19 + (size_t)ext;
				break;
			}
			gw_buf_append(out, u, 15);
			gw_buf_put_i32(out, 0);
			pos += 19 + (size_t)ext;
			st->phase = 1;
			st->need = 0;
			continue;
		}
		if (un < 2) {
			st->need = 2;
			break;
		}
		int k = (int16_t)gw_get_u16(u);
		if (k == -1) {
			gw_buf_put_i16(out, -1);
			pos += 2;
			st->phase = 2;
			st->need = 0;
			continue;
		}
		if (k != p->ncols)
			return -1;
		/* is the tuple all here? */
		size_t off = 2;
		bool whole = true;
		for (int i = 0; i < k; i++) {
			if (un - off < 4) {
				st->need = off + 4;
				whole = false;
				break;
			}
			int32_t len = (int32_t)gw_get_u32(u + off);
			off += 4;
			if (len < -1)
				return -1;
			if (len <= 0)
				continue;
			if ((size_t)len > st->max_row)
				return -2;
			if (un - off < (size_t)len) {
				st->need = off + (size_t)len;
				whole = false;
				break;
			}
			off += (size_t)len;
		}
		if (!whole)
			break;
		gw_buf_put_i16(out, (int16_t)k);
		off = 2;
		for (int i = 0; i < k; i++) {
			int32_t len = (int32_t)gw_get_u32(u + off);
			off += 4;
			if (len < 0) {
				put_null(out);
				continue;
			}
			put_value(mk, &p->cols[i], u + off, (size_t)len, out, masked);
			off += (size_t)len;
		}
		pos += off;
		st->need = 0;
	}
	*used = pos;
	return 0;
}

int gw_mask_copy_data(gw_masker *mk, const gw_mask_plan *p, gw_mask_copy_state *st, const uint8_t *data, size_t n,
	gw_buf *out, uint64_t *masked)
{
	size_t mark = gw_buf_len(out);
	size_t m = gw_buf_msg_begin(out, 'd');
	size_t body = gw_buf_len(out);
	const uint8_t *b = data;
	size_t bn = n, used = 0;
	bool from_pend = gw_buf_len(&st->pend) > 0;
	if (from_pend) {
		gw_buf_append(&st->pend, data, n);
		b = gw_buf_rd(&st->pend);
		bn = gw_buf_len(&st->pend);
	}
	int rc = st->format == GW_SQL_COPY_BINARY ? copy_bin_units(mk, p, st, b, bn, out, masked, &used) :
		copy_text_units(mk, p, st, b, bn, out, masked, &used);
	if (rc == 0 && bn - used > st->max_row)
		rc = -2; /* a row longer than masking.max_row */
	if (rc < 0) {
		out->len = mark;
		return rc;
	}
	if (from_pend) {
		gw_buf_consume(&st->pend, used);
	} else if (used < bn) {
		gw_buf_append(&st->pend, b + used, bn - used);
	}
	if (!gw_buf_len(&st->pend))
		gw_buf_release(&st->pend);
	if (gw_buf_len(out) == body)
		out->len = mark; /* no row ended here: nothing to send yet */
	else
		gw_buf_msg_end(out, m);
	return 0;
}
