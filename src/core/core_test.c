/* Unit tests of core/: buffer, durations, addresses, base64, config. */
#include "../../tests/unit/unit.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"

#include <string.h>
#include <unistd.h>

GW_TEST(buf_grow_consume)
{
	gw_buf b = {0};
	for (int i = 0; i < 10000; i++)
		gw_buf_append(&b, "abcdefgh", 8);
	CHECK(gw_buf_len(&b) == 80000);
	gw_buf_consume(&b, 79990);
	CHECK(gw_buf_len(&b) == 10);
	CHECK(memcmp(gw_buf_rd(&b), "ghabcdefgh", 10) == 0);
	gw_buf_reserve(&b, b.cap); /* forces compaction and growth */
	CHECK(b.head == 0 && memcmp(gw_buf_rd(&b), "ghabcdefgh", 10) == 0);
	gw_buf_consume(&b, 10);
	gw_buf_release(&b);
	CHECK(b.data == NULL);
	gw_buf_free(&b);
}

GW_TEST(buf_msg_builder)
{
	gw_buf b = {0};
	size_t m = gw_buf_msg_begin(&b, 'Q');
	gw_buf_put_str(&b, "select 1");
	gw_buf_msg_end(&b, m);
	CHECK(gw_buf_len(&b) == 1 + 4 + 9);
	CHECK(gw_buf_rd(&b)[0] == 'Q');
	CHECK(gw_get_u32(gw_buf_rd(&b) + 1) == 13);
	gw_buf_free(&b);
}

GW_TEST(util_duration)
{
	uint64_t us;
	CHECK(gw_parse_duration("30s", &us) && us == 30000000ull);
	CHECK(gw_parse_duration("15m", &us) && us == 900000000ull);
	CHECK(gw_parse_duration("2h", &us) && us == 7200000000ull);
	CHECK(gw_parse_duration("7d", &us) && us == 604800000000ull);
	CHECK(gw_parse_duration("200ms", &us) && us == 200000ull);
	CHECK(!gw_parse_duration("10", &us));
	CHECK(!gw_parse_duration("-1s", &us));
	CHECK(!gw_parse_duration("1w", &us));
	CHECK(!gw_parse_duration("", &us));
}

GW_TEST(util_hostport)
{
	char h[64];
	int p;
	CHECK(gw_split_hostport("0.0.0.0:6432", h, sizeof(h), &p) && !strcmp(h, "0.0.0.0") && p == 6432);
	CHECK(gw_split_hostport("[::1]:80", h, sizeof(h), &p) && !strcmp(h, "::1") && p == 80);
	CHECK(!gw_split_hostport("nohost", h, sizeof(h), &p));
	CHECK(!gw_split_hostport("h:99999", h, sizeof(h), &p));
	CHECK(!gw_split_hostport(":5", h, sizeof(h), &p));
}

GW_TEST(util_base64)
{
	char out[64];
	gw_b64_encode((const uint8_t *)"n,,", 3, out);
	CHECK(!strcmp(out, "biws"));
	uint8_t dec[16];
	CHECK(gw_b64_decode("aGVsbG8=", 8, dec, sizeof(dec)) == 5 && !memcmp(dec, "hello", 5));
	CHECK(gw_b64_decode("a$", 2, dec, sizeof(dec)) == -1);
	CHECK(gw_ct_equal("abc", "abc", 3) && !gw_ct_equal("abc", "abd", 3));
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/pgmoat-cfg-XXXXXX");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

GW_TEST(config_minimal_ok)
{
	setenv("UT_PW", "secret", 1);
	char *p = write_tmp("listen: {postgres: \"127.0.0.1:7000\"}\n"
		"tls: {allow_plaintext_loopback: true}\n"
		"state: \"sqlite:/tmp/x.db\"\n"
		"connections:\n"
		"  - {name: prod, host: 10.0.0.5, port: 5433, database: billing, user: ro, password: env:UT_PW,\n"
		"     sslmode: require, pool: {size: 7}}\n");
	char *err = NULL;
	gw_config *c = gw_config_load(p, &err);
	CHECK(c != NULL);
	CHECK(c->pg_port == 7000 && c->n_conns == 1);
	const gw_conn_cfg *cc = gw_config_conn(c, "prod");
	CHECK(cc && cc->port == 5433 && cc->pool_size == 7 && cc->sslmode == GW_SSL_REQUIRE);
	CHECK(!strcmp(cc->password, "secret"));
	gw_config_free(c);
	unlink(p);
	free(p);
}

GW_TEST(config_errors_have_lines)
{
	char *p = write_tmp("state: \"sqlite:/tmp/x.db\"\n"
		"tls: {allow_plaintext_loopback: true}\n"
		"bogus: 1\n"
		"connections:\n"
		"  - name: a\n"
		"    host: h\n"
		"    database: d\n"
		"    user: u\n"
		"    pool: {size: nope}\n");
	char *err = NULL;
	gw_config *c = gw_config_load(p, &err);
	CHECK(c == NULL && err != NULL);
	CHECK(strstr(err, ":3: unknown key 'bogus'") != NULL);
	CHECK(strstr(err, ":9: connections.pool.size") != NULL);
	free(err);
	unlink(p);
	free(p);
}

GW_TEST(config_secret_inline_refused)
{
	char *p = write_tmp("state: \"sqlite:/tmp/x.db\"\n"
		"tls: {allow_plaintext_loopback: true}\n"
		"admin_token: hunter2\n");
	char *err = NULL;
	gw_config *c = gw_config_load(p, &err);
	CHECK(c == NULL && strstr(err, ":3: admin_token: secrets are never written inline") != NULL);
	CHECK(strstr(err, "hunter2") == NULL);
	free(err);
	unlink(p);
	free(p);
}

#include "core/map.h"

GW_TEST(map_put_get_del_grow)
{
	gw_map m = {0};
	char key[32];
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		CHECK(gw_map_put(&m, key, strlen(key), (void *)(i + 1)) == NULL);
	}
	CHECK(m.n == 5000);
	for (long i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "k%ld", i);
		CHECK(gw_map_del(&m, key, strlen(key)) == (void *)(i + 1));
	}
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		CHECK(gw_map_get(&m, key, strlen(key)) == (i % 2 ? (void *)(i + 1) : NULL));
	}
	/* Churn through deletes and inserts: tombstones are reused or rehashed away. */
	for (long r = 0; r < 20000; r++) {
		snprintf(key, sizeof(key), "c%ld", r);
		gw_map_put(&m, key, strlen(key), (void *)1);
		CHECK(gw_map_del(&m, key, strlen(key)) == (void *)1);
	}
	CHECK(m.n == 2500 && m.cap <= 8192);
	CHECK(gw_map_put(&m, "k1", 2, (void *)7) == (void *)2);
	/* Keys are bytes with a length: "" and embedded NULs are fine. */
	CHECK(gw_map_put(&m, "", 0, (void *)9) == NULL && gw_map_get(&m, "", 0) == (void *)9);
	CHECK(gw_map_put(&m, "a\0b", 3, (void *)3) == NULL && gw_map_get(&m, "a\0c", 3) == NULL);
	gw_map_clear(&m, NULL);
	CHECK(m.n == 0 && m.cap == 0);
}
