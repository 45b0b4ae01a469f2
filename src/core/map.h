/*
 * gw_map — a string-keyed hash map (open addressing, linear probing).
 *
 * Owns: copies of its keys (any bytes, with a length); values are the
 * caller's pointers. Not thread-safe: each user keeps its own (a session's
 * prepared statements, a worker's parse cache).
 */
#ifndef GW_CORE_MAP_H
#define GW_CORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_map_slot {
	char *key;           /* NULL: empty; GW_MAP_TOMB: deleted */
	size_t klen;
	uint64_t hash;
	void *value;
} gw_map_slot;

typedef struct gw_map {
	gw_map_slot *slots;
	size_t cap;          /* power of two, or 0 */
	size_t n;            /* live keys */
	size_t used;         /* live + deleted */
} gw_map;

uint64_t gw_hash(const void *p, size_t n);
void *gw_map_get(const gw_map *m, const void *key, size_t klen);
/* Insert or replace; returns the value it replaced (or NULL). */
void *gw_map_put(gw_map *m, const void *key, size_t klen, void *value);
/* Remove; returns the removed value (or NULL). */
void *gw_map_del(gw_map *m, const void *key, size_t klen);
/* Call fn for every value, then empty the map (keeps no memory). */
void gw_map_clear(gw_map *m, void (*fn)(void *value));
/* fn for each live key, in no particular order; fn returns false to stop. */
void gw_map_each(const gw_map *m, bool (*fn)(const char *key, size_t klen, void *value, void *arg), void *arg);

#endif
