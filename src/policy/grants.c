/*
 * In-memory grants; see grants.h.
 */
#include "policy/grants.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct gw_grants {
	pthread_mutex_t lock;
	gw_grant_rec *v;
	size_t n, cap;
	atomic_uint_fast64_t gen;
};

gw_grants *gw_grants_new(void)
{
	gw_grants *g = gw_xcalloc(1, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	atomic_init(&g->gen, 1);
	return g;
}

void gw_grants_free(gw_grants *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g->v);
	free(g);
}

static void put_locked(gw_grants *g, const gw_grant_rec *rec)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].id == rec->id) {
			if (rec->revoked_at)
				g->v[i] = g->v[--g->n];
			else
				g->v[i] = *rec;
			return;
		}
	if (rec->revoked_at)
		return;
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 16;
		g->v = gw_xrealloc(g->v, g->cap * sizeof(*g->v));
	}
	g->v[g->n++] = *rec;
}

void gw_grants_put(gw_grants *g, const gw_grant_rec *rec)
{
	pthread_mutex_lock(&g->lock);
	put_locked(g, rec);
	/* Expired grants are dropped here too, so the list stays small. */
	int64_t now = (int64_t)(gw_wall_us() / 1000000);
	for (size_t i = 0; i < g->n;)
		if (g->v[i].expires_at <= now - 3600)
			g->v[i] = g->v[--g->n];
		else
			i++;
	atomic_fetch_add(&g->gen, 1);
	pthread_mutex_unlock(&g->lock);
}

static void load_row(const gw_grant_rec *rec, void *arg)
{
	put_locked(arg, rec);
}

int gw_grants_load(gw_grants *g, gw_store *st, int64_t now)
{
	pthread_mutex_lock(&g->lock);
	int n = gw_store_grant_list(st, now, load_row, g);
	atomic_fetch_add(&g->gen, 1);
	pthread_mutex_unlock(&g->lock);
	return n;
}

uint64_t gw_grants_gen(gw_grants *g)
{
	return atomic_load(&g->gen);
}

size_t gw_grants_for(gw_grants *g, const char *identity, const char *connection, int64_t now,
	gw_grant_rec *out, size_t max)
{
	size_t k = 0;
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n && k < max; i++) {
		const gw_grant_rec *r = &g->v[i];
		if (!r->revoked_at && r->expires_at > now && !strcmp(r->identity, identity) &&
			!strcmp(r->connection, connection))
			out[k++] = *r;
	}
	pthread_mutex_unlock(&g->lock);
	return k;
}

bool gw_grants_active(gw_grants *g, int64_t id, int64_t now)
{
	bool ok = false;
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].id == id) {
			ok = !g->v[i].revoked_at && g->v[i].expires_at > now;
			break;
		}
	pthread_mutex_unlock(&g->lock);
	return ok;
}
