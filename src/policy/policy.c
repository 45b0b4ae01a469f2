/*
 * Policy decisions; see policy.h.
 */
#include "policy/policy.h"
#include "core/clock.h"
#include "core/util.h"
#include "pgwire/pgwire.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_MAX_TEXT (64u * 1024)   /* longer statements are parsed every time, not kept */

/* ---- parse cache ---- */

#define SAMPLE_MAX_NS 50000u   /* a timed sample longer than this was preempted: not counted */

/* Add one timed sample (since t0) to a counter pair. */
static void sample(atomic_ullong *count, atomic_ullong *total_ns, const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t ns = (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000000000ull + (uint64_t)(t1.tv_nsec - t0->tv_nsec);
	if (ns > SAMPLE_MAX_NS)
		return;
	atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(total_ns, ns, memory_order_relaxed);
}

#define SEEN_SLOTS 8192      /* admission filter: a text is cached the second time it is seen */

struct gw_sqlcache {
	gw_map map;
	size_t max;
	size_t hand;            /* clock hand over map slots */
	uint32_t seen[SEEN_SLOTS]; /* hash tags of texts seen once (direct-mapped; a collision only delays caching) */
	gw_policy_stats stats;
};

gw_sqlcache *gw_sqlcache_new(size_t max_entries)
{
	gw_sqlcache *c = gw_xcalloc(1, sizeof(*c));
	c->max = max_entries ? max_entries : 1;
	return c;
}

gw_policy_stats *gw_sqlcache_stats(gw_sqlcache *c)
{
	return &c->stats;
}

static void drop_cached(void *v)
{
	gw_sqlc *e = v;
	e->cached = false;
	gw_sqlc_unref(e);
}

void gw_sqlcache_free(gw_sqlcache *c)
{
	if (!c)
		return;
	gw_map_clear(&c->map, drop_cached);
	free(c);
}

void gw_sqlc_ref(gw_sqlc *e)
{
	e->refs++;
}

struct gw_sqlc_fp {
	char *normalized;
	char fingerprint[17];
};

size_t gw_sqlc_count(const gw_sqlc *q)
{
	return q->rc == 0 && q->sql.nstmts ? q->sql.nstmts : 1;
}

static void trim(const char **p, size_t *n)
{
	while (*n && isspace((unsigned char)**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)(*p)[*n - 1]))
		(*n)--;
}

static void stmt_text(const gw_sqlc *q, size_t i, const char **t, size_t *n)
{
	*t = q->text;
	*n = q->len;
	if (q->rc == 0 && q->sql.nstmts) {
		*t = q->text + q->sql.stmts[i].loc;
		*n = q->sql.stmts[i].len;
	}
	trim(t, n);
}

void gw_sqlc_view_of(gw_sqlc *q, size_t i, bool normalized, gw_sqlc_view *out)
{
	size_t count = gw_sqlc_count(q);
	if (i >= count)
		i = count - 1;
	if (!q->fps) {
		q->fps = gw_xcalloc(count, sizeof(*q->fps));
		for (size_t k = 0; k < count; k++) {
			const char *kt;
			size_t kn;
			stmt_text(q, k, &kt, &kn);
			gw_sql_fingerprint(kt, kn, q->fps[k].fingerprint);
		}
	}
	stmt_text(q, i, &out->text, &out->len);
	if (normalized && !q->fps[i].normalized) {
		char *norm = q->rc == 0 ? gw_sql_normalize(out->text, out->len) : NULL;
		q->fps[i].normalized = norm ? norm : gw_xstrndup(out->text, out->len);
	}
	out->normalized = q->fps[i].normalized;
	out->fingerprint = q->fps[i].fingerprint;
}

void gw_sqlc_unref(gw_sqlc *e)
{
	if (e && --e->refs == 0) {
		if (e->fps)
			for (size_t k = 0; k < gw_sqlc_count(e); k++)
				free(e->fps[k].normalized);
		free(e->fps);
		gw_sql_free(&e->sql);
		free(e->text);
		free(e);
	}
}

/* Second-chance eviction: the first entry not used since the hand last passed. */
static void evict_one(gw_sqlcache *c)
{
	gw_map *m = &c->map;
	for (size_t tries = 0; tries < 2 * m->cap; tries++) {
		gw_map_slot *s = &m->slots[c->hand];
		c->hand = (c->hand + 1) & (m->cap - 1);
		if (!s->key || !s->value)
			continue;
		gw_sqlc *e = s->value;
		if (e->used) {
			e->used = false;
			continue;
		}
		drop_cached(gw_map_del(m, s->key, s->klen));
		return;
	}
}

gw_sqlc *gw_sqlcache_get(gw_sqlcache *c, const char *text, size_t len)
{
	bool cacheable = len <= CACHE_MAX_TEXT;
	if (cacheable) {
		gw_sqlc *e = gw_map_get(&c->map, text, len);
		if (e) {
			atomic_fetch_add_explicit(&c->stats.hits, 1, memory_order_relaxed);
			e->used = true;
			e->refs++;
			return e;
		}
		/*
		 * A text seen for the first time is not kept: a simple-protocol query
		 * with literals (WHERE id = 4711) rarely comes back, and keeping it
		 * would only evict one that does. The second sighting keeps it.
		 */
		uint64_t h = gw_hash(text, len);
		uint32_t *tag = &c->seen[h & (SEEN_SLOTS - 1)];
		if (*tag != (uint32_t)(h >> 32)) {
			*tag = (uint32_t)(h >> 32);
			cacheable = false;
		}
	}
	uint64_t n = atomic_fetch_add_explicit(&c->stats.misses, 1, memory_order_relaxed);
	struct timespec t0;
	if ((n & 63) == 0)
		clock_gettime(CLOCK_MONOTONIC, &t0);
	gw_sqlc *e = gw_xcalloc(1, sizeof(*e));
	e->rc = gw_sql_parse(text, &e->sql);
	e->text = gw_xstrndup(text, len);
	e->len = len;
	if ((n & 63) == 0)
		sample(&c->stats.parse_timed, &c->stats.parse_ns, &t0);
	e->refs = 1;
	if (cacheable) {
		if (c->map.n >= c->max)
			evict_one(c);
		e->cached = true;
		e->refs++;
		gw_map_put(&c->map, text, len, e);
	}
	return e;
}

/* ---- catalog facts shared per connection ---- */

#define CATCACHE_TTL_US (60ull * 1000000)
#define CATCACHE_MAX 20000

struct gw_catcache {
	pthread_mutex_t lock;
	gw_map map;             /* path_key \1 kind name → entry */
};

typedef struct cat_entry {
	uint64_t at;            /* gw_mono_us() when learnt */
	char value[];           /* "1"/"2" (function read-only / not), or a schema ("" unknown) */
} cat_entry;

gw_catcache *gw_catcache_new(void)
{
	gw_catcache *c = gw_xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void gw_catcache_free(gw_catcache *c)
{
	if (!c)
		return;
	gw_map_clear(&c->map, free);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static size_t cat_key(const gw_pctx *p, char kind, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s\1%c%s", p->path_key, kind, name);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* The shared fact, copied out; false when unknown or stale. */
static bool cat_get(gw_pctx *p, char kind, const char *name, char *val, size_t cap)
{
	if (!p->shared || p->path_changed)
		return false;
	char key[600];
	size_t kl = cat_key(p, kind, name, key, sizeof(key));
	if (!kl)
		return false; /* a key over 600 bytes is never shared */
	bool found = false;
	pthread_mutex_lock(&p->shared->lock);
	cat_entry *e = gw_map_get(&p->shared->map, key, kl);
	if (e && gw_mono_us() - e->at < CATCACHE_TTL_US) {
		snprintf(val, cap, "%s", e->value);
		found = true;
	}
	pthread_mutex_unlock(&p->shared->lock);
	return found;
}

static void cat_put(gw_pctx *p, char kind, const char *name, const char *val)
{
	if (!p->shared || p->path_changed)
		return;
	char key[600];
	size_t kl = cat_key(p, kind, name, key, sizeof(key));
	if (!kl)
		return;
	size_t vl = strlen(val);
	cat_entry *e = gw_xmalloc(sizeof(*e) + vl + 1);
	e->at = gw_mono_us();
	memcpy(e->value, val, vl + 1);
	pthread_mutex_lock(&p->shared->lock);
	if (p->shared->map.n >= CATCACHE_MAX)
		gw_map_clear(&p->shared->map, free); /* rare: start over rather than grow without bound */
	free(gw_map_put(&p->shared->map, key, kl, e));
	pthread_mutex_unlock(&p->shared->lock);
}

void gw_pctx_share(gw_pctx *p, gw_catcache *shared, const char *search_path)
{
	p->shared = shared;
	free(p->path_key);
	p->path_key = gw_xstrdup(search_path ? search_path : "");
}

void gw_pctx_ran(gw_pctx *p, const gw_sqlc *q)
{
	uint32_t f = 0;
	for (size_t i = 0; i < q->sql.nstmts; i++)
		f |= q->sql.stmts[i].flags;
	if (!(f & (GW_SQL_F_SEARCH_PATH | GW_SQL_F_SESSION_RESET)))
		return;
	/* Names may now resolve elsewhere: forget what this session learnt. */
	gw_map_clear(&p->fn_read, NULL);
	gw_map_clear(&p->rel_schema, free);
	const gw_sql_stmt *last = q->sql.nstmts ? &q->sql.stmts[q->sql.nstmts - 1] : NULL;
	if (f & GW_SQL_F_SEARCH_PATH)
		p->path_changed = true;
	if (last && (last->flags & GW_SQL_F_SESSION_RESET) && !(last->flags & GW_SQL_F_SEARCH_PATH))
		p->path_changed = false; /* back to the startup search_path */
}

/* ---- entitlements ---- */


static bool who_matches(const gw_policy_cfg *pol, const char *identity, const char *groups)
{
	for (size_t i = 0; i < pol->who.n; i++) {
		const char *w = pol->who.v[i];
		if (!strncmp(w, "identity:", 9) && !strcmp(w + 9, identity))
			return true;
		if (!strncmp(w, "group:", 6) && gw_csv_has(groups, w + 6))
			return true;
	}
	return false;
}

static bool applies(const gw_pctx *p, const gw_policy_cfg *pol)
{
	return gw_strlist_has(&pol->connections, p->connection) && who_matches(pol, p->identity, p->groups);
}

static void free_ents(gw_pctx *p)
{
	for (size_t i = 0; i < p->nents; i++) {
		gw_strlist *t = &p->ents[i].grant_tables;
		for (size_t j = 0; j < t->n; j++)
			free(t->v[j]);
		free(t->v);
	}
	free(p->ents);
	p->ents = NULL;
	p->nents = 0;
}

static void split_tables(gw_strlist *l, const char *csv)
{
	for (const char *s = csv; *s;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		if (n) {
			l->v = gw_xrealloc(l->v, (l->n + 1) * sizeof(char *));
			l->v[l->n++] = gw_xstrndup(s, n);
		}
		if (!comma)
			break;
		s = comma + 1;
	}
}

static void build(gw_pctx *p, int64_t now)
{
	free_ents(p);
	p->gen = p->grants ? gw_grants_gen(p->grants) : 0;
	gw_grant_rec grants[32];
	size_t ngrants = p->grants ? gw_grants_for(p->grants, p->identity, p->connection, now, grants, 32) : 0;
	size_t cap = p->cfg->n_policies + ngrants;
	p->ents = gw_xcalloc(cap ? cap : 1, sizeof(gw_entitlement));
	for (size_t i = 0; i < p->cfg->n_policies; i++) {
		const gw_policy_cfg *pol = &p->cfg->policies[i];
		if (!applies(p, pol))
			continue;
		if (!pol->jit) {
			gw_entitlement *e = &p->ents[p->nents++];
			e->pol = pol;
			e->scope = pol->scope;
			e->tables = pol->has_tables ? &pol->tables : NULL;
			continue;
		}
		for (size_t g = 0; g < ngrants; g++) {
			if (strcmp(grants[g].policy, pol->name))
				continue;
			gw_entitlement *e = &p->ents[p->nents++];
			e->pol = pol;
			e->scope = grants[g].scope < pol->scope ? grants[g].scope : pol->scope;
			e->grant_id = grants[g].id;
			e->expires_at = grants[g].expires_at;
			if (grants[g].tables[0]) {
				split_tables(&e->grant_tables, grants[g].tables);
				e->tables = &e->grant_tables;
			} else {
				e->tables = pol->has_tables ? &pol->tables : NULL;
			}
		}
	}
	p->read_only = true;
	p->has_tables = false;
	p->max_rows = 0;
	for (size_t i = 0; i < p->nents; i++) {
		const gw_entitlement *e = &p->ents[i];
		if (e->scope > GW_SQL_READ)
			p->read_only = false;
		if (e->tables)
			p->has_tables = true;
		if (e->pol->max_rows && (!p->max_rows || e->pol->max_rows < p->max_rows))
			p->max_rows = e->pol->max_rows;
	}
}

void gw_pctx_init(gw_pctx *p, const gw_config *cfg, gw_grants *grants, const char *identity,
	const char *groups, const char *connection)
{
	memset(p, 0, sizeof(*p));
	p->cfg = cfg;
	p->grants = grants;
	snprintf(p->identity, sizeof(p->identity), "%s", identity);
	snprintf(p->groups, sizeof(p->groups), "%s", groups);
	snprintf(p->connection, sizeof(p->connection), "%s", connection);
	build(p, gw_policy_now());
}

static void unref_v(void *v)
{
	gw_sqlc_unref(v);
}

void gw_pctx_free(gw_pctx *p)
{
	free_ents(p);
	free(p->path_key);
	gw_map_clear(&p->fn_read, NULL);
	gw_map_clear(&p->rel_schema, free);
	gw_map_clear(&p->prepared, unref_v);
}

bool gw_pctx_refresh(gw_pctx *p, int64_t now)
{
	if (!p->grants || gw_grants_gen(p->grants) == p->gen)
		return false;
	bool ro = p->read_only;
	build(p, now);
	return ro != p->read_only;
}

int64_t gw_pctx_lost_grant(gw_pctx *p, int64_t now, bool *expired)
{
	bool changed = p->grants && gw_grants_gen(p->grants) != p->gen;
	for (size_t i = 0; i < p->nents; i++) {
		const gw_entitlement *e = &p->ents[i];
		if (!e->grant_id)
			continue;
		if (e->expires_at <= now) {
			*expired = true;
			return e->grant_id;
		}
		if (changed && !gw_grants_active(p->grants, e->grant_id, now)) {
			*expired = false;
			return e->grant_id;
		}
	}
	return 0;
}

/* ---- prepared statements ---- */

void gw_pctx_prepare(gw_pctx *p, const char *name, gw_sqlc *q)
{
	gw_sqlc_ref(q);
	gw_sqlc_unref(gw_map_put(&p->prepared, name, strlen(name), q));
}

gw_sqlc *gw_pctx_prepared(gw_pctx *p, const char *name)
{
	return gw_map_get(&p->prepared, name, strlen(name));
}

void gw_pctx_deallocate(gw_pctx *p, const char *name)
{
	gw_sqlc_unref(gw_map_del(&p->prepared, name, strlen(name)));
}

void gw_pctx_deallocate_all(gw_pctx *p)
{
	gw_map_clear(&p->prepared, unref_v);
}

/* ---- decisions ---- */

enum fail_kind { F_NONE, F_SCOPE, F_WINDOW, F_READ_ONLY, F_SEARCH_PATH, F_TABLES, F_GUARDRAIL, F_PARSER };

static int fail_rank(enum fail_kind k)
{
	switch (k) {
	case F_PARSER: return 6;
	case F_GUARDRAIL: return 5;
	case F_TABLES: return 4;
	case F_READ_ONLY: case F_SEARCH_PATH: return 3;
	case F_WINDOW: return 2;
	case F_SCOPE: return 1;
	default: return 0;
	}
}

typedef struct stmt_view {
	const gw_sql_stmt *st;
	int cls;
	uint32_t flags;
	const char *tag;
	int index, count;
} stmt_view;

typedef struct failure {
	enum fail_kind kind;
	const gw_entitlement *e;
	unsigned guardrail;
	char table[200];
} failure;

static const struct {
	uint32_t flag;
	unsigned gr;
} gr_map[] = {
	{GW_SQL_F_DELETE_NO_WHERE, GW_GR_NO_DELETE_WITHOUT_WHERE},
	{GW_SQL_F_UPDATE_NO_WHERE, GW_GR_NO_UPDATE_WITHOUT_WHERE},
	{GW_SQL_F_DROP, GW_GR_NO_DROP},
	{GW_SQL_F_TRUNCATE, GW_GR_NO_TRUNCATE},
	{GW_SQL_F_COPY_PROGRAM, GW_GR_NO_COPY_PROGRAM},
	{GW_SQL_F_ALTER_SYSTEM, GW_GR_NO_ALTER_SYSTEM},
};

static bool table_allowed(const gw_strlist *tables, const char *schema, const char *name)
{
	size_t sl = strlen(schema);
	for (size_t i = 0; i < tables->n; i++) {
		const char *t = tables->v[i];
		if (strncmp(t, schema, sl) || t[sl] != '.')
			continue;
		if (!strcmp(t + sl + 1, "*") || !strcmp(t + sl + 1, name))
			return true;
	}
	return false;
}

static bool window_open(const gw_policy_cfg *pol, int64_t now)
{
	if (!pol->n_windows)
		return true;
	for (size_t i = 0; i < pol->n_windows; i++)
		if (gw_window_contains(pol->windows[i], now))
			return true;
	return false;
}

/* Check one statement against one entitlement; false with *f filled when it fails. */
static bool check(gw_pctx *p, const gw_entitlement *e, const stmt_view *v, int64_t now, failure *f)
{
	memset(f, 0, sizeof(*f));
	f->e = e;
	if (v->flags & GW_SQL_F_PARSER_STATE) {
		f->kind = F_PARSER;
		return false;
	}
	for (size_t i = 0; i < GW_ARRAY_LEN(gr_map); i++)
		if ((v->flags & gr_map[i].flag) && (e->pol->guardrails & gr_map[i].gr)) {
			f->kind = F_GUARDRAIL;
			f->guardrail = gr_map[i].gr;
			return false;
		}
	if (v->cls > e->scope) {
		f->kind = F_SCOPE;
		return false;
	}
	if ((v->flags & GW_SQL_F_READ_WRITE) && e->scope == GW_SQL_READ) {
		f->kind = F_READ_ONLY;
		return false;
	}
	if (e->tables) {
		if (v->flags & GW_SQL_F_SEARCH_PATH) {
			f->kind = F_SEARCH_PATH;
			return false;
		}
		if (v->flags & GW_SQL_F_OPAQUE) {
			f->kind = F_TABLES;
			snprintf(f->table, sizeof(f->table), "(objects of %s)", v->tag);
			return false;
		}
		for (size_t i = 0; i < v->st->nrelations; i++) {
			const char *r = v->st->relations[i];
			const char *dot = strchr(r, '.');
			char schema[128];
			const char *name;
			if (dot) {
				snprintf(schema, sizeof(schema), "%.*s", (int)(dot - r), r);
				name = dot + 1;
			} else {
				const char *sch = gw_map_get(&p->rel_schema, r, strlen(r));
				snprintf(schema, sizeof(schema), "%s", sch ? sch : "");
				name = r;
			}
			if (!schema[0] || !table_allowed(e->tables, schema, name)) {
				f->kind = F_TABLES;
				if (schema[0])
					snprintf(f->table, sizeof(f->table), "%s.%s", schema, name);
				else
					snprintf(f->table, sizeof(f->table), "%s", name);
				return false;
			}
		}
	}
	if (!window_open(e->pol, now)) {
		f->kind = F_WINDOW;
		return false;
	}
	return true;
}

static void fmt_duration(uint64_t us, char *out, size_t n)
{
	uint64_t s = us / 1000000;
	if (s % 86400 == 0)
		snprintf(out, n, "%llud", (unsigned long long)(s / 86400));
	else if (s % 3600 == 0)
		snprintf(out, n, "%lluh", (unsigned long long)(s / 3600));
	else if (s % 60 == 0)
		snprintf(out, n, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(out, n, "%llus", (unsigned long long)s);
}

/* A jit policy this identity could request for cls (and table), or NULL. */
static const gw_policy_cfg *requestable(const gw_pctx *p, int cls, const char *table)
{
	for (size_t i = 0; i < p->cfg->n_policies; i++) {
		const gw_policy_cfg *pol = &p->cfg->policies[i];
		if (!pol->jit || pol->scope < cls || !applies(p, pol))
			continue;
		if (table && pol->has_tables) {
			const char *dot = strchr(table, '.');
			if (!dot)
				continue;
			char schema[128];
			snprintf(schema, sizeof(schema), "%.*s", (int)(dot - table), table);
			if (!table_allowed(&pol->tables, schema, dot + 1))
				continue;
		}
		return pol;
	}
	return NULL;
}

static void hint_request(const gw_pctx *p, int cls, const char *table, gw_decision *d)
{
	const gw_policy_cfg *pol = requestable(p, cls, table);
	if (!pol) {
		snprintf(d->hint, sizeof(d->hint), "No policy lets identity \"%s\" request %s access to \"%s\"; ask an "
			"administrator to add one to the gateway's policies:.", p->identity, gw_sql_class_str(cls), p->connection);
		return;
	}
	char dur[32];
	fmt_duration(pol->max_duration_us, dur, sizeof(dur));
	bool tables = table && pol->has_tables && strchr(table, '.');
	snprintf(d->hint, sizeof(d->hint), "Request access (policy \"%s\"%s): pgmoat request %s --scope %s%s%s --for %s "
		"--reason \"...\"", pol->name, pol->has_approval ? ", needs approval" : ", granted at once",
		p->connection, gw_sql_class_str(cls), tables ? " --tables " : "", tables ? table : "", dur);
}

static void deny_text(gw_pctx *p, const stmt_view *v, const failure *f, int64_t now, gw_decision *d)
{
	d->verdict = GW_DECIDE_DENY;
	memcpy(d->sqlstate, "42501", 6);
	const char *cls = gw_sql_class_str((enum gw_sql_class)v->cls);
	const char *pol = f->e ? f->e->pol->name : "";
	char where[64] = "";
	if (v->count > 1)
		snprintf(where, sizeof(where), " (statement %d of %d; nothing in the message was run)", v->index + 1, v->count);
	switch (f->kind) {
	case F_NONE:
		snprintf(d->rule, sizeof(d->rule), "no-policy");
		snprintf(d->message, sizeof(d->message), "pgmoat: no policy allows identity \"%s\" on connection \"%s\"",
			p->identity, p->connection);
		snprintf(d->detail, sizeof(d->detail), "rule: no-policy. %s is a %s statement%s; no standing policy and no "
			"grant in force gives this identity access to this connection.", v->tag, cls, where);
		hint_request(p, v->cls, NULL, d);
		return;
	case F_SCOPE:
		snprintf(d->rule, sizeof(d->rule), "%s", pol);
		snprintf(d->message, sizeof(d->message), "pgmoat: %s statement denied: policy \"%s\" allows %s only", cls,
			pol, gw_sql_class_str((enum gw_sql_class)f->e->scope));
		snprintf(d->detail, sizeof(d->detail), "rule: policy %s (scope %s%s). %s is classified %s%s.", pol,
			gw_sql_class_str((enum gw_sql_class)f->e->scope), f->e->grant_id ? ", through a grant" : "", v->tag, cls,
			where);
		hint_request(p, v->cls, NULL, d);
		return;
	case F_WINDOW: {
		char ts[40];
		gw_format_ts((uint64_t)now * 1000000, ts, sizeof(ts));
		char wins[300] = "";
		for (size_t i = 0; i < f->e->pol->n_windows; i++) {
			strncat(wins, i ? "; " : "", sizeof(wins) - strlen(wins) - 1);
			strncat(wins, gw_window_str(f->e->pol->windows[i]), sizeof(wins) - strlen(wins) - 1);
		}
		snprintf(d->rule, sizeof(d->rule), "%s", pol);
		snprintf(d->message, sizeof(d->message), "pgmoat: outside the access window of policy \"%s\"", pol);
		snprintf(d->detail, sizeof(d->detail), "rule: policy %s window. Allowed: %s. Now: %s%s.", pol, wins, ts, where);
		snprintf(d->hint, sizeof(d->hint), "Retry within the window, or ask an administrator for access outside it.");
		return;
	}
	case F_READ_ONLY:
		snprintf(d->rule, sizeof(d->rule), "read_only");
		snprintf(d->message, sizeof(d->message), "pgmoat: a read session cannot turn off read-only mode");
		snprintf(d->detail, sizeof(d->detail), "rule: read_only (policy %s allows read). %s would let later "
			"statements write%s.", pol, v->tag, where);
		hint_request(p, GW_SQL_WRITE, NULL, d);
		return;
	case F_SEARCH_PATH:
		snprintf(d->rule, sizeof(d->rule), "%s", pol);
		snprintf(d->message, sizeof(d->message), "pgmoat: search_path cannot change while a table allow-list applies");
		snprintf(d->detail, sizeof(d->detail), "rule: policy %s tables. Unqualified table names are checked "
			"against the session's search_path%s.", pol, where);
		snprintf(d->hint, sizeof(d->hint), "Write schema-qualified names (schema.table) instead.");
		return;
	case F_TABLES: {
		char list[300] = "";
		for (size_t i = 0; f->e->tables && i < f->e->tables->n; i++) {
			strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
			strncat(list, f->e->tables->v[i], sizeof(list) - strlen(list) - 1);
		}
		snprintf(d->rule, sizeof(d->rule), "%s", pol);
		snprintf(d->message, sizeof(d->message), "pgmoat: table %s is not in the allow-list of policy \"%s\"",
			f->table, pol);
		snprintf(d->detail, sizeof(d->detail), "rule: policy %s tables. Allowed: %s%s.", pol, list, where);
		hint_request(p, v->cls, f->table, d);
		return;
	}
	case F_PARSER:
		snprintf(d->rule, sizeof(d->rule), "parser_safety");
		snprintf(d->message, sizeof(d->message), "pgmoat: %s would change how statement text is read", v->tag);
		snprintf(d->detail, sizeof(d->detail), "rule: parser_safety. With standard_conforming_strings off or a "
			"client_encoding such as SJIS or BIG5, PostgreSQL would split later statements differently from the "
			"gateway's parser, so policies could no longer be enforced%s.", where);
		snprintf(d->hint, sizeof(d->hint), "Keep standard_conforming_strings on and use UTF8 (or another "
			"ASCII-safe encoding) as client_encoding.");
		return;
	case F_GUARDRAIL: {
		const char *g = gw_guardrail_name(f->guardrail);
		static const struct {
			unsigned gr;
			const char *why, *fix;
		} text[] = {
			{GW_GR_NO_DELETE_WITHOUT_WHERE, "DELETE without WHERE removes every row", "Add a WHERE clause."},
			{GW_GR_NO_UPDATE_WITHOUT_WHERE, "UPDATE without WHERE changes every row", "Add a WHERE clause."},
			{GW_GR_NO_DROP, "DROP removes objects and their data", "Ask an administrator to run it."},
			{GW_GR_NO_TRUNCATE, "TRUNCATE removes every row", "Use DELETE ... WHERE, or ask an administrator."},
			{GW_GR_NO_COPY_PROGRAM, "COPY ... PROGRAM runs a shell command on the database host",
				"Use COPY ... TO STDOUT / FROM STDIN."},
			{GW_GR_NO_ALTER_SYSTEM, "ALTER SYSTEM changes the server's configuration", "Ask an administrator."},
		};
		const char *why = "", *fix = "";
		for (size_t i = 0; i < GW_ARRAY_LEN(text); i++)
			if (text[i].gr == f->guardrail) {
				why = text[i].why;
				fix = text[i].fix;
			}
		snprintf(d->rule, sizeof(d->rule), "%s", g);
		snprintf(d->message, sizeof(d->message), "pgmoat: statement denied by guardrail %s", g);
		snprintf(d->detail, sizeof(d->detail), "rule: guardrail %s of policy %s: %s%s.", g, pol, why, where);
		snprintf(d->hint, sizeof(d->hint), "%s", fix);
		return;
	}
	}
}

/* Functions and relations the decision needs from the catalog but does not know yet. */
static bool needs_lookup(gw_pctx *p, const gw_sql *sql)
{
	if (p->no_lookup)
		return false;
	for (size_t i = 0; i < sql->nstmts; i++) {
		const gw_sql_stmt *st = &sql->stmts[i];
		for (size_t j = 0; j < st->nfunctions; j++) {
			const char *fn = st->functions[j];
			if (gw_map_get(&p->fn_read, fn, strlen(fn)))
				continue;
			char v[8];
			if (!cat_get(p, 'f', fn, v, sizeof(v)))
				return true;
			gw_map_put(&p->fn_read, fn, strlen(fn), v[0] == '1' ? (void *)1 : (void *)2);
		}
		for (size_t j = 0; j < st->nfields; j++) {
			char key[200];
			int kl = snprintf(key, sizeof(key), ".%s", st->fields[j]);
			if (kl < 0 || (size_t)kl >= sizeof(key) || gw_map_get(&p->fn_read, key, (size_t)kl))
				continue;
			char v[8];
			if (!cat_get(p, 'm', st->fields[j], v, sizeof(v)))
				return true;
			gw_map_put(&p->fn_read, key, (size_t)kl, v[0] == '1' ? (void *)1 : (void *)2);
		}
		if (p->has_tables)
			for (size_t j = 0; j < st->nrelations; j++) {
				const char *rel = st->relations[j];
				if (strchr(rel, '.') || gw_map_get(&p->rel_schema, rel, strlen(rel)))
					continue;
				char v[128];
				if (!cat_get(p, 'r', rel, v, sizeof(v)))
					return true;
				gw_map_put(&p->rel_schema, rel, strlen(rel), gw_xstrdup(v));
			}
	}
	return false;
}

static void timed_end(gw_pctx *p, const struct timespec *t0)
{
	if (t0 && p->stats)
		sample(&p->stats->timed, &p->stats->timed_ns, t0);
}

typedef struct judged {
	int max_cls;
	const gw_entitlement *by, *review_by;
} judged;

/* One statement against every entitlement. false: denied (d filled). */
static bool judge(gw_pctx *p, stmt_view *v, int64_t now, gw_decision *d, judged *j)
{
	for (size_t k = 0; k < v->st->nfunctions; k++) {
		void *r = gw_map_get(&p->fn_read, v->st->functions[k], strlen(v->st->functions[k]));
		if (r != (void *)1)
			v->cls = GW_SQL_ADMIN; /* a user function the catalog does not call STABLE/IMMUTABLE runs any code */
	}
	for (size_t k = 0; k < v->st->nfields; k++) {
		char key[200];
		int kl = snprintf(key, sizeof(key), ".%s", v->st->fields[k]);
		void *r = kl > 0 && (size_t)kl < sizeof(key) ? gw_map_get(&p->fn_read, key, (size_t)kl) : NULL;
		if (r != (void *)1)
			v->cls = GW_SQL_ADMIN; /* (x).f may call a VOLATILE f(x) */
	}
	failure best = {0}, f;
	const gw_entitlement *ok = NULL, *ok_review = NULL;
	for (size_t k = 0; k < p->nents && !ok; k++) {
		const gw_entitlement *e = &p->ents[k];
		if (!check(p, e, v, now, &f)) {
			if (fail_rank(f.kind) > fail_rank(best.kind))
				best = f;
			continue;
		}
		if (e->pol->review_mask & (1u << v->cls)) {
			if (!ok_review)
				ok_review = e;
		} else {
			ok = e;
		}
	}
	if (!ok && !ok_review) {
		d->cls = v->cls;
		deny_text(p, v, &best, now, d);
		return false;
	}
	if (!ok && !j->review_by)
		j->review_by = ok_review;
	if (v->cls >= j->max_cls || !j->by) {
		j->max_cls = v->cls > j->max_cls ? v->cls : j->max_cls;
		j->by = ok ? ok : ok_review;
	}
	return true;
}

static void decide(gw_pctx *p, const gw_sqlc *q, int64_t now, gw_decision *d);

void gw_policy_decide(gw_pctx *p, const gw_sqlc *q, int64_t now, gw_decision *d)
{
	struct timespec t0, *tp = NULL;
	uint64_t n = p->stats ? atomic_fetch_add_explicit(&p->stats->decisions, 1, memory_order_relaxed) : 1;
	if ((n & 63) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		tp = &t0;
	}
	decide(p, q, now, d);
	timed_end(p, tp);
}

static void decide(gw_pctx *p, const gw_sqlc *q, int64_t now, gw_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->verdict = GW_DECIDE_ALLOW;
	if (!q) {
		/* FunctionCall: a function by OID, no statement text: admin. */
		gw_sql_stmt fc = {.cls = GW_SQL_ADMIN, .flags = GW_SQL_F_OPAQUE};
		stmt_view v = {.st = &fc, .cls = GW_SQL_ADMIN, .flags = fc.flags, .tag = "fast-path function call", .count = 1};
		failure best = {0}, f;
		for (size_t i = 0; i < p->nents; i++) {
			if (check(p, &p->ents[i], &v, now, &f)) {
				d->by = &p->ents[i];
				d->cls = GW_SQL_ADMIN;
				return;
			}
			if (fail_rank(f.kind) > fail_rank(best.kind))
				best = f;
		}
		d->cls = GW_SQL_ADMIN;
		deny_text(p, &v, &best, now, d);
		return;
	}
	if (q->rc < 0) {
		d->verdict = GW_DECIDE_DENY;
		memcpy(d->sqlstate, "42601", 6);
		d->cls = GW_SQL_ADMIN;
		snprintf(d->rule, sizeof(d->rule), "parse");
		snprintf(d->message, sizeof(d->message), "pgmoat: the statement could not be parsed, so it was not run");
		snprintf(d->detail, sizeof(d->detail), "rule: parse. PostgreSQL's parser says: %s", q->sql.error);
		snprintf(d->hint, sizeof(d->hint), "Fix the syntax; the gateway only runs statements it can classify.");
		return;
	}
	const gw_sql *sql = &q->sql;
	if (needs_lookup(p, sql)) {
		d->verdict = GW_DECIDE_LOOKUP;
		return;
	}
	judged j = {.max_cls = GW_SQL_READ};
	for (size_t i = 0; i < sql->nstmts; i++) {
		const gw_sql_stmt *st = &sql->stmts[i];
		stmt_view v = {.st = st, .cls = st->cls, .flags = st->flags, .tag = st->tag[0] ? st->tag : "statement",
			.index = (int)i, .count = (int)sql->nstmts};
		/* In a read session, nothing may run between a reset and the re-applied read-only setting. */
		if (p->read_only && (st->flags & GW_SQL_F_SESSION_RESET) && i + 1 < sql->nstmts) {
			failure f = {.kind = F_READ_ONLY, .e = p->nents ? &p->ents[0] : NULL};
			d->cls = v.cls;
			deny_text(p, &v, &f, now, d);
			snprintf(d->rule, sizeof(d->rule), "read_only");
			snprintf(d->detail, sizeof(d->detail), "rule: read_only. In a read session %s must be the last "
				"statement of its message (read-only mode is re-applied right after it).", v.tag);
			return;
		}
		if (st->flags & GW_SQL_F_EXECUTE) {
			/* EXECUTE: judged as what was prepared under that name (unknown: fail closed). */
			const gw_sqlc *prep = !st->execute_name ? NULL
				: p->named ? p->named(p->named_ud, st->execute_name) : gw_pctx_prepared(p, st->execute_name);
			/* PREPARE earlier in this same message wins over an older statement of that name. */
			const gw_sql_stmt *same = NULL;
			for (size_t k = 0; st->execute_name && k < i; k++)
				if (sql->stmts[k].prepare_name && !strcmp(sql->stmts[k].prepare_name, st->execute_name))
					same = &sql->stmts[k];
			if (same) {
				stmt_view pv = {.st = same, .cls = same->cls, .flags = same->flags & ~(uint32_t)GW_SQL_F_SESSION_RESET,
					.tag = "EXECUTE", .index = (int)i, .count = (int)sql->nstmts};
				if (!judge(p, &pv, now, d, &j))
					return;
				continue;
			}
			if (!prep || prep->rc < 0 || !prep->sql.nstmts) {
				v.cls = GW_SQL_ADMIN;
				v.flags |= GW_SQL_F_OPAQUE;
				if (!judge(p, &v, now, d, &j))
					return;
				continue;
			}
			for (size_t k = 0; k < prep->sql.nstmts; k++) {
				const gw_sql_stmt *ps = &prep->sql.stmts[k];
				stmt_view pv = {.st = ps, .cls = ps->cls, .flags = ps->flags & ~(uint32_t)GW_SQL_F_SESSION_RESET,
					.tag = "EXECUTE", .index = (int)i, .count = (int)sql->nstmts};
				if (!judge(p, &pv, now, d, &j))
					return;
			}
			continue;
		}
		if (!judge(p, &v, now, d, &j))
			return;
	}
	d->cls = j.max_cls;
	d->by = j.by;
	if (j.review_by) {
		d->verdict = GW_DECIDE_REVIEW;
		d->by = j.review_by;
		memcpy(d->sqlstate, "42501", 6);
		snprintf(d->rule, sizeof(d->rule), "%s", j.review_by->pol->name);
	}
}

/* ---- catalog lookups ---- */


static void puts_b(gw_buf *b, const char *s)
{
	gw_buf_append(b, s, strlen(s));
}

void gw_policy_lookup_sql(gw_pctx *p, const gw_sqlc *q, gw_buf *out)
{
	gw_map seen = {0};
	int nf = 0, nr = 0, nm = 0;
	gw_buf f = {0}, r = {0}, fm = {0};
	for (size_t i = 0; i < q->sql.nstmts; i++) {
		const gw_sql_stmt *st = &q->sql.stmts[i];
		for (size_t j = 0; j < st->nfields; j++) {
			char key[200];
			int kl = snprintf(key, sizeof(key), ".%s", st->fields[j]);
			if (kl < 0 || (size_t)kl >= sizeof(key) || gw_map_get(&p->fn_read, key, (size_t)kl) ||
				gw_map_put(&seen, key, (size_t)kl, (void *)1))
				continue;
			puts_b(&fm, nm++ ? ", (" : "(");
			gw_pg_literal(&fm, st->fields[j]);
			puts_b(&fm, ")");
		}
		for (size_t j = 0; j < st->nfunctions; j++) {
			const char *fn = st->functions[j];
			if (gw_map_get(&p->fn_read, fn, strlen(fn)) || gw_map_put(&seen, fn, strlen(fn), (void *)1))
				continue;
			const char *dot = strchr(fn, '.');
			puts_b(&f, nf++ ? ", (" : "(");
			gw_pg_literal(&f, fn);
			puts_b(&f, ", ");
			if (dot) {
				char *schema = gw_xstrndup(fn, (size_t)(dot - fn));
				gw_pg_literal(&f, schema);
				free(schema);
				puts_b(&f, ", ");
				gw_pg_literal(&f, dot + 1);
			} else {
				puts_b(&f, "NULL, ");
				gw_pg_literal(&f, fn);
			}
			puts_b(&f, ")");
		}
		if (!p->has_tables)
			continue;
		for (size_t j = 0; j < st->nrelations; j++) {
			const char *rel = st->relations[j];
			if (strchr(rel, '.') || gw_map_get(&p->rel_schema, rel, strlen(rel)))
				continue;
			char key[300];
			snprintf(key, sizeof(key), "rel:%s", rel);
			if (gw_map_put(&seen, key, strlen(key), (void *)1))
				continue;
			puts_b(&r, nr++ ? ", (" : "(");
			gw_pg_literal(&r, rel);
			puts_b(&r, ")");
		}
	}
	gw_map_clear(&seen, NULL);
	/* One query, two kinds of rows: ('f', name, read-only?) and ('r', name, schema). */
	if (nf) {
		puts_b(out, "SELECT 'f', f.k, (coalesce(bool_and(p.pronamespace = 'pg_catalog'::regnamespace "
			"OR p.provolatile IN ('s', 'i')), false) AND count(p.oid) > 0)::text, ");
		gw_pg_literal(out, p->nonce);
		puts_b(out, " FROM (VALUES ");
		gw_buf_append(out, gw_buf_rd(&f), gw_buf_len(&f));
		puts_b(out, ") AS f(k, s, n) LEFT JOIN pg_catalog.pg_proc p ON p.proname = f.n AND CASE WHEN f.s IS NULL "
			"THEN pg_catalog.pg_function_is_visible(p.oid) ELSE p.pronamespace = (SELECT oid FROM "
			"pg_catalog.pg_namespace WHERE nspname = f.s) END GROUP BY f.k");
	}
	if (nr) {
		if (nf)
			puts_b(out, " UNION ALL ");
		puts_b(out, "SELECT 'r', r.n, ns.nspname::text, ");
		gw_pg_literal(out, p->nonce);
		puts_b(out, " FROM (VALUES ");
		gw_buf_append(out, gw_buf_rd(&r), gw_buf_len(&r));
		puts_b(out, ") AS r(n) LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass("
			"pg_catalog.quote_ident(r.n)) LEFT JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace");
	}
	if (nm) {
		if (nf || nr)
			puts_b(out, " UNION ALL ");
		/* A field name with no one-argument function behind it is a column: fine. */
		puts_b(out, "SELECT 'm', m.k, coalesce(bool_and(p.pronamespace = 'pg_catalog'::regnamespace "
			"OR p.provolatile IN ('s', 'i')), true)::text, ");
		gw_pg_literal(out, p->nonce);
		puts_b(out, " FROM (VALUES ");
		gw_buf_append(out, gw_buf_rd(&fm), gw_buf_len(&fm));
		puts_b(out, ") AS m(k) LEFT JOIN pg_catalog.pg_proc p ON p.proname = m.k AND p.pronargs - p.pronargdefaults <= 1 "
			"AND p.pronargs >= 1 "
			"AND pg_catalog.pg_function_is_visible(p.oid) GROUP BY m.k");
	}
	if (!nf && !nr && !nm)
		puts_b(out, "SELECT NULL WHERE false");
	gw_buf_put_u8(out, 0);
	gw_buf_free(&f);
	gw_buf_free(&r);
	gw_buf_free(&fm);
}

void gw_policy_lookup_row(gw_pctx *p, char *const *cols, int ncols)
{
	/* Only rows of our own lookup count: they carry the session's nonce (anything else fails closed). */
	if (ncols != 4 || !cols[0] || !cols[1] || !cols[3] || !p->nonce[0] || strcmp(cols[3], p->nonce))
		return;
	if (!strcmp(cols[0], "f")) {
		bool ro = cols[2] && !strcmp(cols[2], "true");
		gw_map_put(&p->fn_read, cols[1], strlen(cols[1]), ro ? (void *)1 : (void *)2);
		cat_put(p, 'f', cols[1], ro ? "1" : "2");
	} else if (!strcmp(cols[0], "m")) {
		bool ro = cols[2] && !strcmp(cols[2], "true");
		char key[200];
		int kl = snprintf(key, sizeof(key), ".%s", cols[1]);
		if (kl > 0 && (size_t)kl < sizeof(key))
			gw_map_put(&p->fn_read, key, (size_t)kl, ro ? (void *)1 : (void *)2);
		cat_put(p, 'm', cols[1], ro ? "1" : "2");
	} else if (!strcmp(cols[0], "r")) {
		free(gw_map_put(&p->rel_schema, cols[1], strlen(cols[1]), gw_xstrdup(cols[2] ? cols[2] : "")));
		cat_put(p, 'r', cols[1], cols[2] ? cols[2] : "");
	}
}

void gw_policy_lookup_done(gw_pctx *p, const gw_sqlc *q)
{
	for (size_t i = 0; i < q->sql.nstmts; i++) {
		const gw_sql_stmt *st = &q->sql.stmts[i];
		for (size_t j = 0; j < st->nfunctions; j++)
			if (!gw_map_get(&p->fn_read, st->functions[j], strlen(st->functions[j])))
				gw_map_put(&p->fn_read, st->functions[j], strlen(st->functions[j]), (void *)2);
		for (size_t j = 0; j < st->nfields; j++) {
			char key[200];
			int kl = snprintf(key, sizeof(key), ".%s", st->fields[j]);
			if (kl > 0 && (size_t)kl < sizeof(key) && !gw_map_get(&p->fn_read, key, (size_t)kl))
				gw_map_put(&p->fn_read, key, (size_t)kl, (void *)2);
		}
		for (size_t j = 0; p->has_tables && j < st->nrelations; j++)
			if (!strchr(st->relations[j], '.') &&
				!gw_map_get(&p->rel_schema, st->relations[j], strlen(st->relations[j])))
				gw_map_put(&p->rel_schema, st->relations[j], strlen(st->relations[j]), gw_xstrdup(""));
	}
}
