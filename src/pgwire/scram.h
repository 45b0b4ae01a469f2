/*
 * SCRAM-SHA-256 (RFC 5802/7677), client side, as PostgreSQL speaks it.
 *
 * Owns: the client's nonce, the messages of one exchange and the check of
 * the server's signature. The salted password (4096 PBKDF2 rounds, ~1 ms)
 * can be cached by the caller per (salt, iterations): the exchange returns it
 * and accepts it back.
 */
#ifndef GW_PGWIRE_SCRAM_H
#define GW_PGWIRE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_scram_cache {
	uint8_t salt[64];
	size_t saltlen;
	int iterations;
	uint8_t salted[32];
	bool valid;
} gw_scram_cache;

typedef struct gw_scram_client {
	char client_first_bare[64];
	char nonce[32];
	char *auth_message;
	uint8_t server_signature[32];
} gw_scram_client;

/* The client-first message ("n,,n=,r=NONCE") into out (>= 64 bytes). */
void gw_scram_client_first(gw_scram_client *s, char *out, size_t outlen);
/*
 * Given the server-first message, build the client-final message (malloc'd
 * into *out). cache may be NULL; when its salt/iterations match it is used,
 * else it is filled. Returns 0, or -1 with *why set.
 */
int gw_scram_client_final(gw_scram_client *s, const char *password, const char *server_first, size_t n,
	gw_scram_cache *cache, char **out, const char **why);
/* Check the server-final message ("v=..."). Returns 0 when the server proved itself. */
int gw_scram_client_verify(gw_scram_client *s, const char *server_final, size_t n, const char **why);
void gw_scram_client_free(gw_scram_client *s);

#endif
