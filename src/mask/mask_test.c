/* Unit tests: masking plans, value rewriting (text and binary), error text, the catalog snapshot. */
#include "mask/mask.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"
#include "../../tests/unit/unit.h"

#include <stdlib.h>
#include <string.h>

static gw_config *cfg_with_rules(void)
{
	gw_config *cfg = gw_xcalloc(1, sizeof(*cfg));
	cfg->has_masking = true;
	static gw_mask_rule_cfg rules[4];
	memset(rules, 0, sizeof(rules));
	rules[0] = (gw_mask_rule_cfg){.schema = "public", .table = "customers", .column = "email", .action = GW_MASK_PARTIAL};
	rules[1] = (gw_mask_rule_cfg){.table = "customers", .column = "ssn", .action = GW_MASK_REDACT};
	rules[2] = (gw_mask_rule_cfg){.column_name = ".*card.*", .action = GW_MASK_PARTIAL};
	rules[3] = (gw_mask_rule_cfg){.table = "customers", .column = "salary", .action = GW_MASK_HASH};
	cfg->mask_rules = rules;
	cfg->n_mask_rules = 4;
	cfg->mask_hash_key = "0123456789abcdef-key";
	cfg->mask_max_row = 1 << 20;
	return cfg;
}

/* One catalog DataRow body: oid, schema, relname, relkind, attnum, attname, viewdef. */
static void cat_row(gw_mask_cat *c, const char *const v[7])
{
	gw_buf b = {0};
	gw_buf_put_i16(&b, 7);
	for (int i = 0; i < 7; i++) {
		if (!v[i]) {
			gw_buf_put_i32(&b, -1);
			continue;
		}
		gw_buf_put_i32(&b, (int32_t)strlen(v[i]));
		gw_buf_append(&b, v[i], strlen(v[i]));
	}
	gw_mask_cat_row(c, gw_buf_rd(&b), gw_buf_len(&b));
	gw_buf_free(&b);
}

static void add_col(gw_mask_cat *c, const char *oid, const char *rel, const char *kind, const char *num, const char *name)
{
	const char *v[7] = {oid, "public", rel, kind, num, name, NULL};
	cat_row(c, v);
}

/* RowDescription body for columns {name, tableoid, attnum, typoid, format}. */
struct fdesc {
	const char *name;
	uint32_t tab;
	int att;
	uint32_t typ;
	int fmt;
};

static gw_buf rowdesc(const struct fdesc *f, int n)
{
	gw_buf b = {0};
	gw_buf_put_i16(&b, (int16_t)n);
	for (int i = 0; i < n; i++) {
		gw_buf_put_str(&b, f[i].name);
		gw_buf_put_i32(&b, (int32_t)f[i].tab);
		gw_buf_put_i16(&b, (int16_t)f[i].att);
		gw_buf_put_i32(&b, (int32_t)f[i].typ);
		gw_buf_put_i16(&b, -1);
		gw_buf_put_i32(&b, -1);
		gw_buf_put_i16(&b, (int16_t)f[i].fmt);
	}
	return b;
}

static gw_buf datarow(const char *const *v, const int *lens, int n)
{
	gw_buf b = {0};
	gw_buf_put_i16(&b, (int16_t)n);
	for (int i = 0; i < n; i++) {
		if (!v[i]) {
			gw_buf_put_i32(&b, -1);
			continue;
		}
		int len = lens ? lens[i] : (int)strlen(v[i]);
		gw_buf_put_i32(&b, len);
		gw_buf_append(&b, v[i], (size_t)len);
	}
	return b;
}

/* Value i of a whole DataRow message in out: its length (-1 NULL) and bytes. */
static int value_of(const gw_buf *out, int i, const uint8_t **p)
{
	const uint8_t *m = gw_buf_rd(out);
	size_t off = 7;
	for (int k = 0;; k++) {
		int32_t len = (int32_t)gw_get_u32(m + off);
		off += 4;
		if (k == i) {
			*p = m + off;
			return len;
		}
		if (len > 0)
			off += (size_t)len;
	}
}

static bool value_is(const gw_buf *out, int i, const char *want)
{
	const uint8_t *p;
	int len = value_of(out, i, &p);
	if (!want)
		return len == -1;
	if (len != (int)strlen(want) || memcmp(p, want, (size_t)len)) {
		fprintf(stderr, "     value %d is '%.*s', want '%s'\n", i, len < 0 ? 0 : len, (const char *)p, want);
		return false;
	}
	return true;
}

static gw_masker *masker_with_catalog(gw_config *cfg)
{
	char err[200] = "";
	gw_masker *mk = gw_masker_new(cfg, err, sizeof(err));
	CHECK(mk);
	gw_mask_cat *c = gw_mask_cat_begin(mk);
	add_col(c, "16400", "customers", "r", "1", "id");
	add_col(c, "16400", "customers", "r", "2", "email");
	add_col(c, "16400", "customers", "r", "3", "ssn");
	add_col(c, "16400", "customers", "r", "4", "card_number");
	add_col(c, "16400", "customers", "r", "5", "salary");
	add_col(c, "16400", "customers", "r", "6", "name");
	add_col(c, "16500", "other", "r", "1", "email");      /* not masked: another table */
	add_col(c, "16600", "customers_2026", "r", "2", "ssn"); /* a partition of customers */
	const char *inh[7] = {"16600", "", "", "i", "16400", "", NULL};
	cat_row(c, inh);
	gw_mask_cat_install(mk, "main", c);
	return mk;
}

GW_TEST(mask_rules_by_oid_and_actions)
{
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	CHECK(cat);
	CHECK(!gw_masker_cat_wanted(mk, "main"));
	CHECK(gw_masker_cat_wanted(mk, "other-connection"));
	struct fdesc f[] = {{"email", 16400, 2, 25, 0}, {"ssn", 16400, 3, 25, 0}, {"card_number", 16400, 4, 1043, 0},
		{"salary", 16400, 5, 23, 0}, {"name", 16400, 6, 25, 0}, {"email", 16500, 1, 25, 0},
		{"ssn", 16600, 2, 25, 0}, {"salary", 16400, 5, 23, 1}};
	gw_buf rd = rowdesc(f, 8);
	char notice[300];
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p);
	CHECK(notice[0] == 0);
	CHECK(gw_mask_plan_tainted(p));
	uint8_t sal[4] = {0, 0x0f, 0x12, 0x06};
	const char *v[] = {"alice.jones@example.com", "536-22-1847", "4111-1111-1111-1111", "987654", "Alice Jones",
		"bob@example.org", "412-87-3321", (const char *)sal};
	int lens[] = {23, 11, 19, 6, 11, 15, 11, 4};
	gw_buf row = datarow(v, lens, 8), out = {0};
	uint64_t k = 0;
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&row), gw_buf_len(&row), &out, &k) == 0);
	CHECK(value_is(&out, 0, "****.com"));
	CHECK(value_is(&out, 1, "[redacted]"));
	CHECK(value_is(&out, 2, "****-****-****-1111"));
	CHECK(value_is(&out, 4, "Alice Jones"));
	/* the other table's email is not masked by a rule, but the detector finds it in the text */
	CHECK(value_is(&out, 5, "<EMAIL_ADDRESS>"));
	/* the partition inherits its parent's rule */
	CHECK(value_is(&out, 6, "[redacted]"));
	/* hash of an int4: a number, the same in text and binary, never the value */
	const uint8_t *h;
	CHECK(value_of(&out, 3, &h) > 0);
	char num[32] = "";
	int hl = value_of(&out, 3, &h);
	CHECK(hl > 0 && hl < (int)sizeof(num));
	memcpy(num, h, (size_t)hl);
	long text_hash = strtol(num, NULL, 10);
	CHECK(text_hash != 987654 && text_hash >= 0);
	CHECK(value_of(&out, 7, &h) == 4);
	CHECK(k == 7);
	/* stable: the same input hashes the same in another plan */
	gw_buf out2 = {0};
	uint64_t k2 = 0;
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&row), gw_buf_len(&row), &out2, &k2) == 0);
	CHECK(gw_buf_len(&out) == gw_buf_len(&out2) && !memcmp(gw_buf_rd(&out), gw_buf_rd(&out2), gw_buf_len(&out)));
	/* a malformed row is refused, not half-written */
	gw_buf bad = datarow(v, lens, 7);
	gw_buf out3 = {0};
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&bad), gw_buf_len(&bad), &out3, &k) < 0);
	gw_buf_free(&rd);
	gw_buf_free(&row);
	gw_buf_free(&out);
	gw_buf_free(&out2);
	gw_buf_free(&out3);
	gw_buf_free(&bad);
	gw_mask_plan_free(p);
	gw_mask_cat_unref(cat);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_undecided_and_types)
{
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	/* no table OID and no statement: every such column masked whole, with a notice; values stay of their type */
	struct fdesc f[] = {{"a", 0, 0, 25, 0}, {"b", 0, 0, 23, 0}, {"c", 0, 0, 3802, 1}, {"d", 0, 0, 114, 0},
		{"e", 99999, 1, 25, 0}};
	gw_buf rd = rowdesc(f, 5);
	char notice[300];
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p && notice[0]);
	const char *v[] = {"x", "42", "\001{\"k\": 1}", "{\"k\": 1}", "secret"};
	int lens[] = {1, 2, 9, 8, 6};
	gw_buf row = datarow(v, lens, 5), out = {0};
	uint64_t k = 0;
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&row), gw_buf_len(&row), &out, &k) == 0);
	CHECK(value_is(&out, 0, "[redacted]"));
	CHECK(value_is(&out, 1, NULL));
	CHECK(value_is(&out, 2, "\001\"[redacted]\""));
	CHECK(value_is(&out, 3, "\"[redacted]\""));
	CHECK(value_is(&out, 4, "[redacted]")); /* a relation the snapshot does not know */
	gw_mask_plan *all = gw_mask_plan_all();
	gw_buf out2 = {0};
	CHECK(gw_mask_row(mk, all, gw_buf_rd(&row), gw_buf_len(&row), &out2, &k) == 0);
	for (int i = 0; i < 5; i++)
		CHECK(value_is(&out2, i, NULL));
	gw_mask_plan_free(all);
	/* result formats from a Bind */
	uint8_t codes[2] = {0, 1};
	gw_mask_plan *q = gw_mask_plan_formats(p, codes, 1);
	CHECK(q);
	gw_mask_plan_free(q);
	gw_buf_free(&rd);
	gw_buf_free(&row);
	gw_buf_free(&out);
	gw_buf_free(&out2);
	gw_mask_plan_free(p);
	gw_mask_cat_unref(cat);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_detectors_in_text_and_json)
{
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	struct fdesc f[] = {{"name", 16400, 6, 25, 0}, {"name", 16400, 6, 25, 1}, {"j", 16400, 6, 114, 0},
		{"j", 16400, 6, 3802, 1}, {"n", 16400, 6, 20, 1}};
	gw_buf rd = rowdesc(f, 5);
	char notice[300];
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p);
	uint8_t card[8] = {0x00, 0x0e, 0x9b, 0x08, 0xa5, 0x68, 0xf1, 0xc7}; /* 4111111111111111 as int8 */
	const char *v[] = {"mail carol.white@example.net now", "ip 203.0.113.77 now", "{\"e\": \"carol.white@example.net\"}",
		"\001{\"e\": \"carol.white@example.net\"}", (const char *)card};
	int lens[] = {32, 19, 32, 33, 8};
	gw_buf row = datarow(v, lens, 5), out = {0};
	uint64_t k = 0;
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&row), gw_buf_len(&row), &out, &k) == 0);
	CHECK(value_is(&out, 0, "mail <EMAIL_ADDRESS> now"));
	CHECK(value_is(&out, 1, "ip <IP_ADDRESS> now"));
	CHECK(value_is(&out, 2, "{\"e\": \"<EMAIL_ADDRESS>\"}"));
	CHECK(value_is(&out, 3, "\001{\"e\": \"<EMAIL_ADDRESS>\"}"));
	CHECK(value_is(&out, 4, NULL)); /* a card number stored as bigint: NULL, a valid bigint is not possible */
	CHECK(k == 5);
	gw_buf_free(&rd);
	gw_buf_free(&row);
	gw_buf_free(&out);
	gw_mask_plan_free(p);
	gw_mask_cat_unref(cat);
	gw_masker_free(mk);
	free(cfg);
}

static gw_buf error_msg(const char *sqlstate, const char *msg, const char *detail, const char *where)
{
	gw_buf b = {0};
	gw_buf_put_u8(&b, 'S');
	gw_buf_put_str(&b, "ERROR");
	gw_buf_put_u8(&b, 'C');
	gw_buf_put_str(&b, sqlstate);
	gw_buf_put_u8(&b, 'M');
	gw_buf_put_str(&b, msg);
	if (detail) {
		gw_buf_put_u8(&b, 'D');
		gw_buf_put_str(&b, detail);
	}
	if (where) {
		gw_buf_put_u8(&b, 'W');
		gw_buf_put_str(&b, where);
	}
	gw_buf_put_u8(&b, 0);
	return b;
}

static bool out_has(const gw_buf *b, const char *s)
{
	return memmem(gw_buf_rd(b), gw_buf_len(b), s, strlen(s)) != NULL;
}

GW_TEST(mask_error_text)
{
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	const char *stmt = "SELECT ssn::int, emial FROM customers";
	gw_buf e = error_msg("22P02", "invalid input syntax for type integer: \"Diagnosis: flu 7731\"", NULL, NULL);
	gw_buf out = {0};
	uint64_t k = 0;
	gw_mask_error(mk, 'E', gw_buf_rd(&e), gw_buf_len(&e), stmt, strlen(stmt), true, &out, &k);
	CHECK(!out_has(&out, "Diagnosis") && out_has(&out, "[withheld]") && k == 1);
	CHECK(out_has(&out, "22P02") && out_has(&out, "ERROR"));
	/* what the client wrote itself stays */
	gw_buf e2 = error_msg("42703", "column \"emial\" does not exist", NULL, NULL);
	gw_buf out2 = {0};
	gw_mask_error(mk, 'E', gw_buf_rd(&e2), gw_buf_len(&e2), stmt, strlen(stmt), true, &out2, &k);
	CHECK(out_has(&out2, "\"emial\""));
	/* a key violation: the key's value withheld, the column named */
	gw_buf e3 = error_msg("23505", "duplicate key value violates unique constraint \"customers_email_key\"",
		"Key (email)=(alice (home)@example.com) already exists.", NULL);
	gw_buf out3 = {0};
	gw_mask_error(mk, 'E', gw_buf_rd(&e3), gw_buf_len(&e3), stmt, strlen(stmt), true, &out3, &k);
	CHECK(!out_has(&out3, "alice") && out_has(&out3, "Key (email)=([withheld]) already exists."));
	/* not tainted: only the detectors */
	gw_buf out4 = {0};
	gw_mask_error(mk, 'E', gw_buf_rd(&e3), gw_buf_len(&e3), "SELECT 1", 8, false, &out4, &k);
	CHECK(out_has(&out4, "alice (home)@example.com") || out_has(&out4, "<EMAIL_ADDRESS>"));
	/* RAISE from a function while masked columns are read: withheld whole */
	gw_buf e5 = error_msg("00000", "Diagnosis: flu 7731", NULL, "PL/pgSQL function say(text) line 1 at RAISE");
	gw_buf out5 = {0};
	gw_mask_error(mk, 'N', gw_buf_rd(&e5), gw_buf_len(&e5), stmt, strlen(stmt), true, &out5, &k);
	CHECK(!out_has(&out5, "Diagnosis") && gw_buf_rd(&out5)[0] == 'N');
	/* a notification payload */
	gw_buf a = {0};
	gw_buf_put_i32(&a, 4242);
	gw_buf_put_str(&a, "ch");
	gw_buf_put_str(&a, "to carol.white@example.net");
	gw_buf out6 = {0}, out7 = {0};
	gw_mask_notification(mk, gw_buf_rd(&a), gw_buf_len(&a), false, &out6, &k);
	CHECK(out_has(&out6, "to <EMAIL_ADDRESS>") && out_has(&out6, "ch"));
	gw_mask_notification(mk, gw_buf_rd(&a), gw_buf_len(&a), true, &out7, &k);
	CHECK(!out_has(&out7, "to ") && out_has(&out7, "withheld"));
	gw_buf *bufs[] = {&e, &out, &e2, &out2, &e3, &out3, &out4, &e5, &out5, &a, &out6, &out7};
	for (size_t i = 0; i < GW_ARRAY_LEN(bufs); i++)
		gw_buf_free(bufs[i]);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_catalog_rows_hostile)
{
	gw_config *cfg = cfg_with_rules();
	char err[200];
	gw_masker *mk = gw_masker_new(cfg, err, sizeof(err));
	CHECK(mk);
	/* a row that does not parse marks the snapshot bad: it is not installed (results then masked whole) */
	gw_mask_cat *c = gw_mask_cat_begin(mk);
	add_col(c, "16400", "customers", "r", "1", "id");
	const char *bad[7] = {"x16400", "public", "customers", "r", "2", "email", NULL};
	cat_row(c, bad);
	gw_mask_cat_install(mk, "main", c);
	CHECK(!gw_masker_cat(mk, "main"));
	uint8_t junk[] = {0, 7, 0xff, 0xff, 0xff, 0x00};
	c = gw_mask_cat_begin(mk);
	gw_mask_cat_row(c, junk, sizeof(junk));
	gw_mask_cat_install(mk, "main", c);
	CHECK(!gw_masker_cat(mk, "main"));
	/* a RowDescription that does not parse: masked whole */
	char notice[300];
	uint8_t rd[] = {0, 3, 'a', 0, 1};
	gw_mask_plan *p = gw_mask_plan_new(mk, NULL, rd, sizeof(rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p);
	gw_mask_plan_free(p);
	gw_masker_free(mk);
	free(cfg);
}
