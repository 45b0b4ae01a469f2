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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT_REFRESH_US (300ull * 1000000) /* a snapshot is loaded again after this long */
#define MAX_SPANS 64
#define REDACTED "[redacted]"

/* Type OIDs (pg_type.dat) the rewriter knows. */
enum {
	T_CHAR = 18, T_NAME = 19, T_INT8 = 20, T_INT2 = 21, T_INT4 = 23, T_TEXT = 25, T_JSON = 114, T_UNKNOWN = 705,
	T_BPCHAR = 1042, T_VARCHAR = 1043, T_UUID = 2950, T_JSONB = 3802, T_NUMERIC = 1700
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
	uint8_t action;     /* enum gw_mask_action */
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

static void rel_free(struct mrel *r)
{
	for (size_t i = 0; i < r->ncols; i++)
		free(r->cols[i].name);
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
	 * table; the definitions of user views; who inherits from whom.
	 */
	return "SELECT c.oid::text, n.nspname::text, c.relname::text, c.relkind::text, a.attnum::text, "
		"a.attname::text, NULL::text FROM pg_catalog.pg_class c "
		"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
		"JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
		"WHERE c.relkind IN ('r','p','v','m','f') AND a.attnum > 0 AND NOT a.attisdropped "
		"UNION ALL SELECT c.oid::text, n.nspname::text, c.relname::text, c.relkind::text, '0', '', "
		"pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c "
		"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
		"WHERE c.relkind IN ('v','m') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
		"UNION ALL SELECT i.inhrelid::text, '', '', 'i', i.inhparent::text, '', NULL FROM pg_catalog.pg_inherits i "
		/* functions outside the system schemas: what they return may come from anywhere */
		"UNION ALL SELECT p.oid::text, n.nspname::text, p.proname::text, 'F', '0', '', NULL "
		"FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
		"WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";
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
		if (off + 4 > n)
			return false;
		int32_t len = (int32_t)gw_get_u32(b + off);
		off += 4;
		if (len < 0) {
			v[i] = NULL;
			lens[i] = 0;
			continue;
		}
		if ((size_t)len > n - off)
			return false;
		v[i] = (const char *)b + off;
		lens[i] = (size_t)len;
		off += (size_t)len;
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
	const char *v[7];
	size_t l[7];
	int k;
	if (c->bad || !row_cols(body, n, v, l, 7, &k) || k != 7 || !v[0] || !v[3] || !v[4] || !v[1] || !v[2]) {
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
	if (kind == 'F') {
		if (l[2] && l[2] < 128)
			gw_map_put(&c->user_fns, v[2], l[2], (void *)1);
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
	if (!v[5]) {
		c->bad = true;
		return;
	}
	if (r->ncols == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->cols = gw_xrealloc(r->cols, r->cap * sizeof(*r->cols));
	}
	r->cols[r->ncols++] = (struct mcol){.name = gw_xstrndup(v[5], l[5]), .attnum = (int)num};
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

static uint8_t rule_action(const gw_masker *mk, const struct mrel *r, const char *col)
{
	uint8_t a = GW_MASK_NONE;
	for (size_t i = 0; i < mk->nrules; i++) {
		const gw_mask_rule_cfg *rc = mk->rules[i].cfg;
		if (rc->column) {
			if (!strcmp(rc->column, col) && !strcmp(rc->table, r->name) && (!rc->schema || !strcmp(rc->schema, r->schema)))
				a = stronger(a, (uint8_t)rc->action);
		} else if (mk->rules[i].re) {
			pcre2_match_data *md = pcre2_match_data_create_from_pattern(mk->rules[i].re, NULL);
			int rc2 = pcre2_match(mk->rules[i].re, (PCRE2_SPTR)col, strlen(col), 0, 0, md, NULL);
			pcre2_match_data_free(md);
			if (rc2 >= 0)
				a = stronger(a, (uint8_t)rc->action);
		}
	}
	return a;
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

static bool resolve_rel(gw_mask_cat *c, struct mrel *r, int depth);
static bool calls_user_function(const gw_mask_cat *cat, const gw_sql_stmt *st);

/*
 * A view's columns: masked where its definition derives them from masked
 * columns (or cannot be decided). Returns true when a column changed.
 */
static bool resolve_view(gw_mask_cat *c, struct mrel *r, bool all)
{
	bool changed = false;
	uint8_t *v = gw_xcalloc(r->ncols ? r->ncols : 1, 1);
	int k = -1;
	if (!all) {
		gw_sql_catalog cat = {.ud = c, .columns = cb_columns, .masked = cb_masked};
		k = gw_sql_mask_columns(r->viewdef, strlen(r->viewdef), &cat, v, r->ncols, NULL, 0);
	}
	for (size_t i = 0; i < r->ncols; i++) {
		uint8_t verdict = k < 0 || (size_t)k != r->ncols ? GW_SQL_COL_UNDECIDED : v[i];
		if (verdict != GW_SQL_COL_CLEAR && r->cols[i].action == GW_MASK_NONE) {
			r->cols[i].action = GW_MASK_REDACT;
			changed = true;
		}
	}
	free(v);
	return changed;
}

static bool resolve_rel(gw_mask_cat *c, struct mrel *r, int depth)
{
	if (r->resolved || depth > 32)
		return r->resolved;
	r->resolved = true;
	for (size_t i = 0; i < r->ncols; i++)
		r->cols[i].action = rule_action(c->mk, r, r->cols[i].name);
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
	/* views read tables and other views: again until nothing changes (bounded; then fail closed) */
	bool changed = true;
	for (int round = 0; changed && round <= 64; round++) {
		changed = false;
		for (size_t i = 0; i < c->nrels; i++)
			if (c->rels[i]->name && c->rels[i]->viewdef)
				changed |= resolve_view(c, c->rels[i], round == 64);
	}
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

/* The statement calls a function defined outside the system schemas (its result may hold anything). */
static bool calls_user_function(const gw_mask_cat *cat, const gw_sql_stmt *st)
{
	for (size_t i = 0; st && i < st->nfunctions; i++) {
		const char *f = st->functions[i], *dot = strrchr(f, '.');
		const char *name = dot ? dot + 1 : f;
		if (gw_map_get(&cat->user_fns, name, strlen(name)))
			return true;
	}
	return false;
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
					snprintf(why, sizeof(why), "the statement calls a user-defined function, whose result may come "
						"from masked columns");
				} else {
					gw_sql_catalog cb = {.ud = cat, .columns = cb_columns, .masked = cb_masked};
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
		if (act != GW_MASK_NONE)
			p->tainted = true;
		if (act == GW_MASK_NONE && mk->entities && (text_type(typ) || json_type(typ) || typ == T_INT8 ||
				typ == T_NUMERIC || typ >= 16384))
			act = ACT_SCAN;
		c->action = act;
		work |= act != GW_MASK_NONE;
	}
	free(verdict);
	if (unknown_rel) {
		/* a relation created since the snapshot: read the catalog again before the next statement */
		pthread_mutex_lock(&mk->mu);
		for (size_t i = 0; i < mk->ncats; i++)
			if (mk->cats[i].cat == cat)
				mk->cats[i].stale = true;
		pthread_mutex_unlock(&mk->mu);
	}
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

static void put_null(gw_buf *out)
{
	gw_buf_put_i32(out, -1);
}

static void put_bytes(gw_buf *out, const void *p, size_t n)
{
	gw_buf_put_i32(out, (int32_t)n);
	gw_buf_append(out, p, n);
}

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
		size_t k = 0;
		for (int i = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				t[k++] = '-';
			k += (size_t)snprintf(t + k, 3, "%02x", v[i]);
		}
		*tn = k;
		return true;
	}
	return false;
}

static void put_hash(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out)
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
			put_bytes(out, bb, (size_t)w);
		} else {
			char t[24];
			int k = snprintf(t, sizeof(t), "%lld", (long long)val);
			put_bytes(out, t, (size_t)k);
		}
		return;
	}
	if (c->typoid == T_UUID) {
		if (c->binary) {
			put_bytes(out, mac, 16);
		} else {
			char t[40];
			int k = 0;
			for (int i = 0; i < 16; i++) {
				if (i == 4 || i == 6 || i == 8 || i == 10)
					t[k++] = '-';
				k += snprintf(t + k, sizeof(t) - (size_t)k, "%02x", mac[i]);
			}
			put_bytes(out, t, (size_t)k);
		}
		return;
	}
	if (!text_type(c->typoid)) {
		put_null(out);
		return;
	}
	char t[33];
	for (int i = 0; i < 16; i++)
		snprintf(t + 2 * i, 3, "%02x", mac[i]);
	put_bytes(out, t, 32);
}

/* A whole value masked by a rule action (or a derived column: redact). */
static void put_masked(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out)
{
	switch (c->action) {
	case GW_MASK_HASH:
		put_hash(mk, c, v, n, out);
		return;
	case GW_MASK_PARTIAL:
		if (text_type(c->typoid)) {
			char t[80];
			size_t k = text_partial(v, n, t, sizeof(t));
			put_bytes(out, t, k);
			return;
		}
		put_null(out);
		return;
	case GW_MASK_REDACT:
		if (text_type(c->typoid)) {
			put_bytes(out, REDACTED, strlen(REDACTED));
			return;
		}
		if (json_type(c->typoid)) {
			if (c->binary && c->typoid == T_JSONB)
				put_bytes(out, "\001\"[redacted]\"", 13);
			else
				put_bytes(out, "\"[redacted]\"", 12);
			return;
		}
		put_null(out);
		return;
	default:
		put_null(out);
		return;
	}
}

/*
 * Scan a value; write it with every span replaced by <ENTITY>. json keeps
 * valid JSON (a span touching a quote or backslash redacts the value whole);
 * a type other than text/json with a find becomes NULL. Returns finds.
 */
static size_t scan_value(gw_masker *mk, const struct pcol *c, const uint8_t *v, size_t n, gw_buf *out)
{
	struct gw_span sp[MAX_SPANS];
	const uint8_t *t = v;
	size_t tn = n;
	char num[32];
	if (c->binary && c->typoid == T_INT8 && n == 8) {
		uint64_t x = 0;
		for (int i = 0; i < 8; i++)
			x = x << 8 | v[i];
		tn = (size_t)snprintf(num, sizeof(num), "%lld", (long long)(int64_t)x);
		t = (const uint8_t *)num;
	} else if (c->binary && c->typoid == T_JSONB && n > 0) {
		t = v + 1; /* version byte, then the text */
		tn = n - 1;
	}
	size_t k = gw_detect(mk->det, (const char *)t, tn, sp, MAX_SPANS);
	if (k == 0) {
		put_bytes(out, v, n);
		return 0;
	}
	bool whole = k > MAX_SPANS || k == SIZE_MAX || !(text_type(c->typoid) || json_type(c->typoid));
	if (!whole && json_type(c->typoid))
		for (size_t i = 0; i < k && !whole; i++)
			for (uint32_t j = sp[i].start; j < sp[i].end; j++)
				if (t[j] == '"' || t[j] == '\\') {
					whole = true;
					break;
				}
	if (whole) {
		struct pcol r = *c;
		r.action = GW_MASK_REDACT;
		put_masked(mk, &r, v, n, out);
		return k == SIZE_MAX ? 1 : k;
	}
	size_t lenpos = gw_buf_len(out);
	gw_buf_put_i32(out, 0);
	size_t start = gw_buf_len(out), at = 0;
	if (c->binary && c->typoid == T_JSONB)
		gw_buf_append(out, v, 1); /* jsonb's version byte */
	for (size_t i = 0; i < k; i++) {
		gw_buf_append(out, t + at, sp[i].start - at);
		gw_buf_append(out, "<", 1);
		const char *name = gw_entity_name((enum gw_entity)sp[i].entity);
		gw_buf_append(out, name, strlen(name));
		gw_buf_append(out, ">", 1);
		at = sp[i].end;
	}
	gw_buf_append(out, t + at, tn - at);
	gw_put_u32(gw_buf_rd(out) + lenpos, (uint32_t)(gw_buf_len(out) - start));
	return k;
}

int gw_mask_row(gw_masker *mk, const gw_mask_plan *p, const uint8_t *b, size_t n, gw_buf *out, uint64_t *masked)
{
	if (n < 2)
		return -1;
	int k = gw_get_u16(b);
	if (!p->all && k != p->ncols)
		return -1;
	size_t m = gw_buf_msg_begin(out, 'D');
	gw_buf_put_i16(out, (int16_t)k);
	size_t off = 2;
	for (int i = 0; i < k; i++) {
		if (off + 4 > n)
			return -1;
		int32_t len = (int32_t)gw_get_u32(b + off);
		off += 4;
		if (len < 0) {
			put_null(out);
			continue;
		}
		if ((size_t)len > n - off)
			return -1;
		const uint8_t *v = b + off;
		off += (size_t)len;
		if (p->all) {
			put_null(out);
			(*masked)++;
			continue;
		}
		const struct pcol *c = &p->cols[i];
		if (c->action == GW_MASK_NONE) {
			put_bytes(out, v, (size_t)len);
		} else if (c->action == ACT_SCAN) {
			*masked += scan_value(mk, c, v, (size_t)len, out);
		} else {
			put_masked(mk, c, v, (size_t)len, out);
			(*masked)++;
		}
	}
	if (off != n)
		return -1;
	gw_buf_msg_end(out, m);
	return 0;
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
	/* a message a function raised itself (RAISE ... '%', value) while masked columns were read: withheld */
	char where[256] = "";
	bool raised = tainted && gw_pg_error_field(b, n, 'W', where, sizeof(where)) && strstr(where, "at RAISE");
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
		if (raised && (code == 'M' || code == 'D' || code == 'H')) {
			static const char w[] = "[withheld: raised by a function while the statement read masked columns]";
			gw_buf_append(out, w, sizeof(w) - 1);
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

void gw_mask_notification(gw_masker *mk, const uint8_t *b, size_t n, bool tainted, gw_buf *out, uint64_t *masked)
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
	if (tainted && pn) {
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
