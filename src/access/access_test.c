/*
 * Unit tests of access/: the pure rules (which jit policy a request falls under, who may decide),
 * and the review check the session calls, with its webhook.
 */
#include "../../tests/unit/unit.h"
#include "access/access.h"
#include "state/store.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LIST(...) ((gw_strlist){(char *[]){__VA_ARGS__}, sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)})
#define NOLIST ((gw_strlist){NULL, 0})

static gw_identity person(const char *name, const char *kind, const char *groups)
{
	gw_identity id;
	memset(&id, 0, sizeof(id));
	snprintf(id.name, sizeof(id.name), "%s", name);
	snprintf(id.kind, sizeof(id.kind), "%s", kind);
	snprintf(id.groups, sizeof(id.groups), "%s", groups);
	return id;
}

static gw_policy_cfg policy(const char *name, gw_strlist who, gw_strlist conns, int scope, bool jit)
{
	gw_policy_cfg p;
	memset(&p, 0, sizeof(p));
	p.name = (char *)name;
	p.who = who;
	p.connections = conns;
	p.scope = scope;
	p.jit = jit;
	p.max_duration_us = 3600ull * 1000000;
	p.required = 1;
	return p;
}

GW_TEST(access_principals_and_tables)
{
	gw_identity a = person("alice", "human", "dev,oncall");
	CHECK(gw_access_principal_in(&a, &LIST("group:oncall")));
	CHECK(gw_access_principal_in(&a, &LIST("group:x", "identity:alice")));
	CHECK(!gw_access_principal_in(&a, &LIST("group:on", "identity:alic", "alice", "dev")));
	CHECK(!gw_access_principal_in(&a, &NOLIST));

	gw_strlist allow = LIST("public.*", "audit.events");
	char miss[64] = "";
	CHECK(gw_access_tables_covered(&allow, "public.invoices,audit.events", miss, sizeof(miss)));
	CHECK(gw_access_tables_covered(&allow, "", miss, sizeof(miss)));
	CHECK(gw_access_tables_covered(&allow, "public.*", miss, sizeof(miss)));
	CHECK(!gw_access_tables_covered(&allow, "public.invoices,audit.secrets", miss, sizeof(miss)));
	CHECK(!strcmp(miss, "audit.secrets"));
	/* "audit.*" asks for more than audit.events; "publicx.t" is not in public. */
	CHECK(!gw_access_tables_covered(&allow, "audit.*", miss, sizeof(miss)) && !strcmp(miss, "audit.*"));
	CHECK(!gw_access_tables_covered(&allow, "publicx.t", NULL, 0));
	CHECK(!gw_access_tables_covered(&LIST("public.invoices"), "public.invoice", NULL, 0));

	CHECK(gw_access_tables_ok("") && gw_access_tables_ok(NULL));
	CHECK(gw_access_tables_ok("public.invoices,audit.*,s.T_1$"));
	const char *bad[] = {"invoices", "public.", ".t", "a.b.c", "public.in voices", "a.b,", ",a.b", "a.b,,c.d",
		"a.*x", "a;b.c", "public.in'x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!gw_access_tables_ok(bad[i]));
}

GW_TEST(access_match_policy)
{
	gw_policy_cfg pols[5];
	pols[0] = policy("write-approved", LIST("group:dev"), LIST("main"), 1, true);
	pols[0].has_approval = true;
	pols[0].approvers = LIST("group:oncall");
	pols[0].required = 2;
	pols[0].has_tables = true;
	pols[0].tables = LIST("public.*", "audit.events");
	pols[1] = policy("read-now", LIST("group:dev"), LIST("main"), 0, true);
	pols[2] = policy("standing", LIST("group:dev"), LIST("other"), 0, false);
	pols[3] = policy("ops", LIST("identity:olga"), LIST("other", "main"), 3, true);
	pols[3].has_approval = true;
	pols[3].approvers = LIST("identity:bob");
	pols[4] = policy("write-one", LIST("identity:alice"), LIST("main"), 2, true);
	pols[4].has_approval = true;
	pols[4].required = 1;
	gw_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.has_policies = true;
	cfg.policies = pols;
	cfg.n_policies = 4;
	gw_identity alice = person("alice", "human", "dev"), eve = person("eve", "human", "");
	char why[1200];

	/* read: both fit; the one without approval wins */
	CHECK(gw_access_match(&cfg, &alice, "main", 0, "", why, sizeof(why)) == &pols[1]);
	/* write: only the approval policy */
	CHECK(gw_access_match(&cfg, &alice, "main", 1, "public.invoices", why, sizeof(why)) == &pols[0]);
	/* a table outside its list: refused with the table named; read-now is too low */
	CHECK(!gw_access_match(&cfg, &alice, "main", 1, "audit.secrets", why, sizeof(why)));
	CHECK(strstr(why, "'write-approved': table audit.secrets is not in its tables"));
	CHECK(strstr(why, "'read-now': allows read at most, not write"));
	CHECK(strstr(why, "'ops': not for identity 'alice'"));   /* it names main: listed with its reason */
	/* read on "other": only a standing policy, explained */
	CHECK(!gw_access_match(&cfg, &alice, "other", 0, "", why, sizeof(why)));
	CHECK(strstr(why, "'standing': standing access") && strstr(why, "'write-approved': not for connection 'other'"));
	CHECK(strstr(why, "'ops': not for identity 'alice' (who: identity:olga)"));
	/* nobody names eve, but policies name main */
	CHECK(!gw_access_match(&cfg, &eve, "main", 0, "", why, sizeof(why)));
	CHECK(strstr(why, "not for identity 'eve'"));
	CHECK(!gw_access_match(&cfg, &eve, "nowhere", 0, "", why, sizeof(why)));
	CHECK(strstr(why, "no policy names identity 'eve' or connection 'nowhere'"));
	/* with a fifth policy needing 1 approval, write goes to it (fewer approvals) */
	cfg.n_policies = 5;
	CHECK(gw_access_match(&cfg, &alice, "main", 1, "", why, sizeof(why)) == &pols[4]);
	/* ddl: write-one allows it, write-approved does not */
	CHECK(gw_access_match(&cfg, &alice, "main", 2, "", why, sizeof(why)) == &pols[4]);
	/* no tables asked of a policy with tables: fine (the grant gets the policy's list) */
	cfg.n_policies = 4;
	CHECK(gw_access_match(&cfg, &alice, "main", 1, "", why, sizeof(why)) == &pols[0]);
	/* no policies: at all: nothing to request */
	gw_config none;
	memset(&none, 0, sizeof(none));
	CHECK(!gw_access_match(&none, &alice, "main", 0, "", why, sizeof(why)) && strstr(why, "no policies"));
	/* the explanation never overruns its buffer */
	char small[40];
	CHECK(!gw_access_match(&cfg, &alice, "other", 0, "", small, sizeof(small)) && strlen(small) < sizeof(small));
}

GW_TEST(access_who_may_decide)
{
	gw_policy_cfg pol = policy("p", LIST("group:dev"), LIST("main"), 1, true);
	pol.has_approval = true;
	pol.approvers = LIST("group:oncall", "identity:zed");
	gw_policy_cfg admins_only = policy("q", LIST("group:dev"), LIST("main"), 1, true);
	admins_only.has_approval = true;
	gw_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	char *admins[] = {"group:dba"};
	cfg.admins = admins;
	cfg.n_admins = 1;
	gw_identity bob = person("bob", "human", "oncall"), zed = person("zed", "human", ""),
		ada = person("ada", "human", "dba"), robo = person("robo", "agent", "oncall,dba"),
		relay = person("dc1", "relay", "oncall"), eve = person("eve", "human", "dev"),
		dan = person("dan", "human", "oncall,dev");
	char why[400];
	CHECK(gw_access_may_decide(&cfg, &pol, &bob, "alice", why, sizeof(why)) == GW_ACCESS_OK);
	CHECK(gw_access_may_decide(&cfg, &pol, &zed, "alice", why, sizeof(why)) == GW_ACCESS_OK);
	CHECK(gw_access_may_decide(&cfg, &pol, &ada, "alice", why, sizeof(why)) == GW_ACCESS_OK);
	/* never the owner, even an approver or an admin */
	CHECK(gw_access_may_decide(&cfg, &pol, &dan, "dan", why, sizeof(why)) == GW_ACCESS_FORBIDDEN && strstr(why, "own"));
	CHECK(gw_access_may_decide(&cfg, &pol, &ada, "ada", why, sizeof(why)) == GW_ACCESS_FORBIDDEN);
	/* never an agent (nor a relay), even in the approvers' and admins' groups */
	CHECK(gw_access_may_decide(&cfg, &pol, &robo, "alice", why, sizeof(why)) == GW_ACCESS_FORBIDDEN &&
		strstr(why, "agent"));
	CHECK(gw_access_may_decide(&cfg, &pol, &relay, "alice", why, sizeof(why)) == GW_ACCESS_FORBIDDEN);
	/* never the bootstrap admin_token */
	CHECK(gw_access_may_decide(&cfg, &pol, NULL, "alice", why, sizeof(why)) == GW_ACCESS_FORBIDDEN &&
		strstr(why, "attributable"));
	/* a stranger: told who may */
	CHECK(gw_access_may_decide(&cfg, &pol, &eve, "alice", why, sizeof(why)) == GW_ACCESS_FORBIDDEN &&
		strstr(why, "group:oncall, identity:zed"));
	/* approval without approvers: admins only */
	CHECK(gw_access_may_decide(&cfg, &admins_only, &bob, "alice", why, sizeof(why)) == GW_ACCESS_FORBIDDEN);
	CHECK(gw_access_may_decide(&cfg, &admins_only, &ada, "alice", why, sizeof(why)) == GW_ACCESS_OK);
	/* the policy is gone: admins only */
	CHECK(gw_access_may_decide(&cfg, NULL, &bob, "alice", why, sizeof(why)) == GW_ACCESS_FORBIDDEN);
	CHECK(gw_access_may_decide(&cfg, NULL, &ada, "alice", why, sizeof(why)) == GW_ACCESS_OK);

	/* seeing: own, admins (the admin_token too), approvers of the policy */
	CHECK(gw_access_may_view(&cfg, &pol, &eve, "eve"));
	CHECK(!gw_access_may_view(&cfg, &pol, &eve, "alice"));
	CHECK(gw_access_may_view(&cfg, &pol, &bob, "alice"));
	CHECK(!gw_access_may_view(&cfg, &admins_only, &bob, "alice"));
	CHECK(gw_access_may_view(&cfg, &admins_only, &ada, "alice"));
	CHECK(gw_access_may_view(&cfg, NULL, NULL, "alice"));
	CHECK(gw_access_is_admin(&cfg, NULL) && gw_access_is_admin(&cfg, &ada) && !gw_access_is_admin(&cfg, &bob));
}

GW_TEST(access_clean_text_and_scopes)
{
	char out[16];
	CHECK(gw_access_clean_text("abc", 3, out, sizeof(out)) == 3 && !strcmp(out, "abc"));
	/* invalid bytes, a NUL, an overlong form and a surrogate become '?' */
	CHECK(gw_access_clean_text("a\xe9z\0q\xc0\xaf", 7, out, sizeof(out)) == 7 && !strcmp(out, "a?z?q??"));
	CHECK(gw_access_clean_text("\xed\xa0\x80", 3, out, sizeof(out)) == 3 && !strcmp(out, "???"));
	/* a cut never splits a character: "é" is 2 bytes and does not fit after 3 bytes in 5 */
	CHECK(gw_access_clean_text("abc\xc3\xa9", 5, out, 5) == 3 && !strcmp(out, "abc"));
	CHECK(gw_access_clean_text("ab\xc3\xa9", 4, out, 5) == 4 && !strcmp(out, "ab\xc3\xa9"));
	CHECK(gw_access_clean_text("\xf0\x9f\x98\x80!", 5, out, sizeof(out)) == 5);
	CHECK(gw_access_scope_parse("ddl") == 2 && gw_access_scope_parse("root") < 0 && gw_access_scope_parse(NULL) < 0);
	CHECK(!strcmp(gw_access_scope_str(3), "admin") && !strcmp(gw_access_scope_str(9), "?"));
}

/*
 * The session's entry point, end to end below the session: gw_access_review_check against a real
 * store, and the review.pending webhook it posts (to a socket this test listens on).
 */
/* Accept one HTTP request on fd within 5 s, answer 200, return its body (static). */
static const char *receive_post(int fd)
{
	static char buf[65536];
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, 5000) != 1)
		return NULL;
	int c = accept(fd, NULL, NULL);
	size_t n = 0;
	const char *body = NULL;
	long want = -1;
	while (n < sizeof(buf) - 1) {
		struct pollfd q = {c, POLLIN, 0};
		if (poll(&q, 1, 5000) != 1)
			break;
		ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		const char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strcasestr(buf, "Content-Length:");
		if (end && cl)
			want = atol(cl + 15);
		if (end && want >= 0 && (long)(n - (size_t)(end + 4 - buf)) >= want) {
			body = end + 4;
			break;
		}
	}
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	if (write(c, ok, strlen(ok)) < 0)
		body = NULL;
	close(c);
	return body;
}

GW_TEST(access_review_check_and_webhook)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	CHECK(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 4) == 0);
	CHECK(getsockname(ls, (struct sockaddr *)&sa, &sl) == 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", ntohs(sa.sin_port));

	char path[] = "/tmp/pgmoat-store-XXXXXX";
	close(mkstemp(path));
	char err[256];
	gw_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.notify_webhook = url;
	gw_gateway gw;
	memset(&gw, 0, sizeof(gw));
	gw.cfg = &cfg;
	gw.store = gw_store_open(path, err, sizeof(err));
	CHECK(gw.store);
	gw.notifier = gw_notifier_start(&cfg);
	CHECK(gw.notifier);
	gw_identity alice = person("alice", "agent", "dev");

	/* a long statement with a byte that is not UTF-8: stored and sent cleaned, the hash over the original */
	char sql[5000];
	memset(sql, 'x', sizeof(sql));
	memcpy(sql, "DROP TABLE caf\xe9 ", 16);
	int64_t id = 0, id2 = 0;
	CHECK(gw_access_review_check(&gw, &alice, "main", "dev-write", 2, sql, sizeof(sql), "sess-1", &id) == 1 && id > 0);
	const char *body = receive_post(ls);
	CHECK(body);
	CHECK(strstr(body, "\"event\":\"review.pending\"") && strstr(body, "\"class\":\"ddl\""));
	CHECK(strstr(body, "\"identity\":\"alice\"") && strstr(body, "\"statement_truncated\":true"));
	CHECK(strstr(body, "DROP TABLE caf? xxx") && strstr(body, "pgmoat review approve"));
	/* at most 1 kB of statement text */
	const char *st = strstr(body, "\"statement\":\"");
	CHECK(st && strchr(st + 13, '"') - (st + 13) <= 1024);

	/* the same statement again: the same review, no second webhook */
	CHECK(gw_access_review_check(&gw, &alice, "main", "dev-write", 2, sql, sizeof(sql), "sess-2", &id2) == 1 && id2 == id);
	gw_review_rec *r = calloc(1, sizeof(*r));
	CHECK(gw_store_review_get(gw.store, id, r) == 0 && !strncmp(r->statement, "DROP TABLE caf? ", 16));
	CHECK(strlen(r->statement) == sizeof(r->statement) - 1 && !strcmp(r->session, "sess-1"));
	/* a person approves it: the next check runs it once, the one after needs a new review */
	strcpy(r->state, "approved");
	strcpy(r->decided_by, "bob");
	CHECK(gw_store_review_decide(gw.store, r) == 0);
	CHECK(gw_access_review_check(&gw, &alice, "main", "dev-write", 2, sql, sizeof(sql), "sess-2", &id2) == 0 && id2 == id);
	CHECK(gw_access_review_check(&gw, &alice, "main", "dev-write", 2, sql, sizeof(sql), "sess-2", &id2) == 1 && id2 > id);
	body = receive_post(ls);
	CHECK(body && strstr(body, "review.pending"));
	free(r);
	gw_notifier_stop(gw.notifier);
	gw_store_close(gw.store);
	unlink(path);
	close(ls);
	curl_global_cleanup();
}
