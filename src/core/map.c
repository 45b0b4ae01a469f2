/*
 * String-keyed hash map; see map.h.
 */
#include "core/map.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static char tomb;
#define GW_MAP_TOMB (&tomb)

uint64_t gw_hash(const void *p, size_t n)
{
	/* FNV-1a, 64-bit, 8 bytes at a time folded in: keys are statement texts and names. */
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * 1099511628211ull;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	while (n--)
		h = (h ^ *s++) * 1099511628211ull;
	h ^= h >> 32;
	return h ? h : 1;
}

static gw_map_slot *find(const gw_map *m, const void *key, size_t klen, uint64_t h)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		gw_map_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != GW_MAP_TOMB && s->hash == h && s->klen == klen && !memcmp(s->key, key, klen))
			return s;
	}
}

void *gw_map_get(const gw_map *m, const void *key, size_t klen)
{
	gw_map_slot *s = find(m, key, klen, gw_hash(key, klen));
	return s ? s->value : NULL;
}

static void grow(gw_map *m)
{
	gw_map old = *m;
	m->cap = old.cap ? old.cap * 2 : 16;
	if (old.n * 2 < old.cap)
		m->cap = old.cap; /* at most half live, the rest tombstones: rehash at the same size */
	m->slots = gw_xcalloc(m->cap, sizeof(gw_map_slot));
	m->n = m->used = 0;
	for (size_t i = 0; i < old.cap; i++) {
		gw_map_slot *s = &old.slots[i];
		if (!s->key || s->key == GW_MAP_TOMB)
			continue;
		size_t mask = m->cap - 1, j = s->hash & mask;
		while (m->slots[j].key)
			j = (j + 1) & mask;
		m->slots[j] = *s;
		m->n++;
		m->used++;
	}
	free(old.slots);
}

void *gw_map_put(gw_map *m, const void *key, size_t klen, void *value)
{
	uint64_t h = gw_hash(key, klen);
	gw_map_slot *s = find(m, key, klen, h);
	if (s) {
		void *old = s->value;
		s->value = value;
		return old;
	}
	if ((m->used + 1) * 4 > m->cap * 3)
		grow(m);
	size_t mask = m->cap - 1, i = h & mask;
	while (m->slots[i].key && m->slots[i].key != GW_MAP_TOMB)
		i = (i + 1) & mask;
	if (!m->slots[i].key)
		m->used++;
	char *k = gw_xmalloc(klen + 1);
	memcpy(k, key, klen);
	k[klen] = 0;
	m->slots[i] = (gw_map_slot){k, klen, h, value};
	m->n++;
	return NULL;
}

void *gw_map_del(gw_map *m, const void *key, size_t klen)
{
	gw_map_slot *s = find(m, key, klen, gw_hash(key, klen));
	if (!s)
		return NULL;
	void *v = s->value;
	free(s->key);
	s->key = GW_MAP_TOMB;
	s->value = NULL;
	m->n--;
	return v;
}

void gw_map_clear(gw_map *m, void (*fn)(void *value))
{
	for (size_t i = 0; i < m->cap; i++) {
		gw_map_slot *s = &m->slots[i];
		if (!s->key || s->key == GW_MAP_TOMB)
			continue;
		if (fn)
			fn(s->value);
		free(s->key);
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

void gw_map_each(const gw_map *m, bool (*fn)(const char *key, size_t klen, void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++) {
		const gw_map_slot *s = &m->slots[i];
		if (s->key && s->key != GW_MAP_TOMB && !fn(s->key, s->klen, s->value, arg))
			return;
	}
}
