/*
 * gw_store — the state store (SQLite in WAL mode).
 *
 * Owns: identities and API tokens on disk, the schema and its migrations.
 * One connection guarded by a mutex; every call is short (an indexed
 * lookup or a single-row write), so workers and the HTTP thread share it.
 * Token secrets are never stored: only SHA-256 of the secret part.
 */
#ifndef GW_STATE_STORE_H
#define GW_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_store gw_store;

typedef struct gw_identity_rec {
	char name[128];
	char kind[16];        /* agent | human | relay */
	char groups[512];     /* comma-separated */
	bool disabled;
	int64_t created_at;   /* unix seconds */
} gw_identity_rec;

typedef struct gw_token_rec {
	char id[32];
	char identity[128];
	uint8_t hash[32];
	int64_t created_at, expires_at, revoked_at, last_used_at; /* 0: none */
} gw_token_rec;

gw_store *gw_store_open(const char *path, char *err, size_t errlen);
void gw_store_close(gw_store *st);

/* 0 ok; -1 exists (identity_add) / not found; -2 store error (err set). */
int gw_store_identity_add(gw_store *st, const gw_identity_rec *rec, char *err, size_t errlen);
int gw_store_identity_get(gw_store *st, const char *name, gw_identity_rec *out);
int gw_store_identity_set_disabled(gw_store *st, const char *name, bool disabled);
/* Calls fn for each identity in name order. Returns count or -2. */
int gw_store_identity_list(gw_store *st, void (*fn)(const gw_identity_rec *, void *), void *arg);

int gw_store_token_add(gw_store *st, const gw_token_rec *rec, char *err, size_t errlen);
int gw_store_token_get(gw_store *st, const char *id, gw_token_rec *out);
int gw_store_token_revoke(gw_store *st, const char *id, int64_t when);
int gw_store_token_list(gw_store *st, void (*fn)(const gw_token_rec *, void *), void *arg);

#endif
