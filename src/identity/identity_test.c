/* Unit tests of identity/: tokens against a real SQLite store, admin groups. */
#include "../../tests/unit/unit.h"
#include "identity/identity.h"
#include "state/store.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

GW_TEST(identity_token_roundtrip)
{
	char path[] = "/tmp/pgmoat-store-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	char err[256];
	gw_store *st = gw_store_open(path, err, sizeof(err));
	CHECK(st);
	gw_identity_rec r = {0};
	strcpy(r.name, "agent-42");
	strcpy(r.kind, "agent");
	strcpy(r.groups, "agents,readers");
	r.created_at = time(NULL);
	CHECK(gw_store_identity_add(st, &r, err, sizeof(err)) == 0);
	CHECK(gw_store_identity_add(st, &r, err, sizeof(err)) == -1);
	char tok[80];
	gw_token_rec tr;
	CHECK(gw_identity_issue_token(st, "agent-42", 0, tok, &tr, err, sizeof(err)) == 0);
	CHECK(strlen(tok) == 60 && !strncmp(tok, "pgm_", 4));
	gw_identity id;
	CHECK(gw_identity_verify_token(st, tok, "agent-42", &id) == GW_AUTH_OK);
	CHECK(!strcmp(id.name, "agent-42") && gw_identity_in_group(&id, "readers"));
	CHECK(gw_identity_verify_token(st, tok, "someone-else", &id) == GW_AUTH_MISMATCH);
	char bad[80];
	strcpy(bad, tok);
	bad[30] = bad[30] == 'A' ? 'B' : 'A';
	CHECK(gw_identity_verify_token(st, bad, NULL, &id) == GW_AUTH_BAD_TOKEN);
	CHECK(gw_identity_verify_token(st, "pgm_short", NULL, &id) == GW_AUTH_BAD_TOKEN);
	CHECK(gw_identity_verify_token(st, "", NULL, &id) == GW_AUTH_BAD_TOKEN);
	CHECK(gw_store_identity_set_disabled(st, "agent-42", true) == 0);
	CHECK(gw_identity_verify_token(st, tok, NULL, &id) == GW_AUTH_DISABLED);
	CHECK(gw_store_identity_set_disabled(st, "agent-42", false) == 0);
	CHECK(gw_store_token_revoke(st, tr.id, time(NULL)) == 0);
	CHECK(gw_identity_verify_token(st, tok, NULL, &id) == GW_AUTH_REVOKED);
	/* An already-expired token. */
	CHECK(gw_identity_issue_token(st, "agent-42", 1, tok, &tr, err, sizeof(err)) == 0);
	sleep(1);
	CHECK(gw_identity_verify_token(st, tok, NULL, &id) == GW_AUTH_EXPIRED);
	gw_store_close(st);
	unlink(path);
}

GW_TEST(identity_admin_groups)
{
	gw_identity id = {0};
	strcpy(id.name, "alice");
	strcpy(id.groups, "dev,dba");
	char *admins1[] = {"group:dba"};
	char *admins2[] = {"identity:bob", "group:db"};
	char *admins3[] = {"identity:alice"};
	CHECK(gw_identity_is_admin(&id, admins1, 1));
	CHECK(!gw_identity_is_admin(&id, admins2, 2));
	CHECK(gw_identity_is_admin(&id, admins3, 1));
	CHECK(!gw_identity_in_group(&id, "de"));
}
