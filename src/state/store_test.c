/* Unit tests of state/: requests, grants and reviews against a real SQLite file. */
#include "../../tests/unit/unit.h"
#include "state/store.h"

#include <string.h>
#include <unistd.h>

static gw_store *temp_store(char *path)
{
	int fd = mkstemp(path);
	close(fd);
	char err[256];
	gw_store *st = gw_store_open(path, err, sizeof(err));
	if (!st)
		fprintf(stderr, "%s\n", err);
	return st;
}

static void count_grant(const gw_grant_rec *g, void *arg) { (*(int *)arg)++; }
static void count_request(const gw_request_rec *r, void *arg) { (*(int *)arg)++; }

GW_TEST(store_requests_and_grants)
{
	char path[] = "/tmp/pgmoat-store-XXXXXX";
	gw_store *st = temp_store(path);
	CHECK(st);
	char err[256];
	gw_request_rec r = {0};
	strcpy(r.identity, "alice");
	strcpy(r.connection, "main");
	strcpy(r.policy, "p");
	strcpy(r.state, "pending");
	strcpy(r.reason, "why");
	r.scope = 1;
	r.required = 2;
	r.duration_s = 600;
	r.created_at = 1000;
	CHECK(gw_store_request_add(st, &r, err, sizeof(err)) == 0 && r.id > 0);
	gw_request_rec got;
	CHECK(gw_store_request_get(st, r.id, &got) == 0 && !strcmp(got.reason, "why") && got.required == 2);
	CHECK(gw_store_request_get(st, r.id + 100, &got) == -1);

	/* first approval, as read before deciding */
	gw_request_rec d = got;
	strcpy(d.approvals, "bob");
	CHECK(gw_store_request_decide(st, &d, "", NULL) == 0);
	/* a second decision made on the stale read loses: -3 */
	gw_request_rec stale = got;
	strcpy(stale.approvals, "carol");
	CHECK(gw_store_request_decide(st, &stale, "", NULL) == -3);
	CHECK(gw_store_request_get(st, r.id, &got) == 0 && !strcmp(got.approvals, "bob"));
	/* the second approval grants: request and grant in one transaction */
	gw_grant_rec g = {0};
	strcpy(g.identity, "alice");
	strcpy(g.connection, "main");
	strcpy(g.policy, "p");
	g.scope = 1;
	g.granted_at = 2000;
	g.expires_at = 2600;
	d = got;
	strcpy(d.approvals, "bob,carol");
	strcpy(d.state, "granted");
	d.decided_at = 2000;
	CHECK(gw_store_request_decide(st, &d, "bob", &g) == 0 && g.id > 0 && d.grant_id == g.id && g.request_id == r.id);
	CHECK(gw_store_request_get(st, r.id, &got) == 0 && !strcmp(got.state, "granted") && got.grant_id == g.id);
	/* decided: nothing more applies, and a failed decision inserts no grant */
	gw_grant_rec g2 = g;
	d = got;
	strcpy(d.state, "denied");
	CHECK(gw_store_request_decide(st, &d, "bob,carol", &g2) == -3 && g2.id == 0);
	gw_request_rec ghost = got;
	ghost.id = 999;
	CHECK(gw_store_request_decide(st, &ghost, "", NULL) == -1);

	/* granted at once */
	gw_request_rec r2 = r;
	strcpy(r2.state, "granted");
	gw_grant_rec g3 = g;
	g3.expires_at = 1500;   /* already expired at 2000 */
	CHECK(gw_store_request_add_granted(st, &r2, &g3, err, sizeof(err)) == 0);
	CHECK(r2.id > r.id && g3.id > g.id && r2.grant_id == g3.id && g3.request_id == r2.id);
	CHECK(gw_store_request_get(st, r2.id, &got) == 0 && got.grant_id == g3.id);

	int n = 0;
	CHECK(gw_store_grant_list(st, 0, count_grant, &n) == 2 && n == 2);
	n = 0;
	CHECK(gw_store_grant_list(st, 2000, count_grant, &n) == 1 && n == 1);
	n = 0;
	CHECK(gw_store_request_list(st, "pending", 10, count_request, &n) == 0 && n == 0);
	CHECK(gw_store_request_list(st, NULL, 1, count_request, &n) == 1 && n == 1);

	CHECK(gw_store_grant_revoke(st, g.id, 2100, "ada") == 0);
	CHECK(gw_store_grant_revoke(st, g.id, 2200, "ada") == -1);
	CHECK(gw_store_grant_revoke(st, 999, 2200, "ada") == -1);
	gw_grant_rec gg;
	CHECK(gw_store_grant_get(st, g.id, &gg) == 0 && gg.revoked_at == 2100 && !strcmp(gg.revoked_by, "ada"));
	n = 0;
	CHECK(gw_store_grant_list(st, 2000, count_grant, &n) == 0 && n == 0);
	gw_store_close(st);

	/* everything is still there after reopening */
	char err2[256];
	st = gw_store_open(path, err2, sizeof(err2));
	CHECK(st && gw_store_grant_get(st, g3.id, &gg) == 0 && gg.expires_at == 1500);
	gw_store_close(st);
	unlink(path);
}

GW_TEST(store_review_check)
{
	char path[] = "/tmp/pgmoat-store-XXXXXX";
	gw_store *st = temp_store(path);
	CHECK(st);
	static gw_review_rec t, other, got;
	strcpy(t.identity, "alice");
	strcpy(t.connection, "main");
	strcpy(t.policy, "p");
	strcpy(t.statement, "DROP TABLE x");
	memset(t.hash, 7, 32);
	t.cls = 2;
	t.created_at = 100;
	int64_t id, id2;
	bool created;
	CHECK(gw_store_review_check(st, &t, &id, &created) == 1 && created && id > 0);
	/* the same statement again: the same pending review */
	CHECK(gw_store_review_check(st, &t, &id2, &created) == 1 && !created && id2 == id);
	/* another identity, or another statement: its own review */
	other = t;
	strcpy(other.identity, "bob");
	CHECK(gw_store_review_check(st, &other, &id2, &created) == 1 && created && id2 != id);
	CHECK(gw_store_review_get(st, id, &got) == 0 && !strcmp(got.state, "pending") && !memcmp(got.hash, t.hash, 32));
	CHECK(!strcmp(got.statement, "DROP TABLE x") && got.cls == 2);
	/* approve: decided only while pending */
	strcpy(got.state, "approved");
	strcpy(got.decided_by, "carol");
	got.decided_at = 150;
	CHECK(gw_store_review_decide(st, &got) == 0);
	CHECK(gw_store_review_decide(st, &got) == -3);
	got.id = 999;
	CHECK(gw_store_review_decide(st, &got) == -1);
	/* approved: runs once (used), then a new review is needed */
	t.created_at = 200;
	CHECK(gw_store_review_check(st, &t, &id2, &created) == 0 && id2 == id && !created);
	CHECK(gw_store_review_get(st, id, &got) == 0 && !strcmp(got.state, "used") && got.used_at == 200);
	CHECK(gw_store_review_check(st, &t, &id2, &created) == 1 && created && id2 > id);
	gw_store_close(st);
	unlink(path);
}
