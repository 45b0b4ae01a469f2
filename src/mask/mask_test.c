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

/* One catalog DataRow body: oid, schema, relname, relkind, attnum, attname, viewdef, type, generated. */
static void cat_row(gw_mask_cat *c, const char *const v[9])
{
	gw_buf b = {0};
	gw_buf_put_i16(&b, 9);
	for (int i = 0; i < 9; i++) {
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

static void add_col_t(gw_mask_cat *c, const char *oid, const char *schema, const char *rel, const char *num,
	const char *name, const char *typ, const char *gen)
{
	const char *v[9] = {oid, schema, rel, "r", num, name, NULL, typ, gen};
	cat_row(c, v);
}

static void add_col(gw_mask_cat *c, const char *oid, const char *rel, const char *kind, const char *num, const char *name)
{
	const char *v[9] = {oid, "public", rel, kind, num, name, NULL, "25", ""};
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
	const char *inh[9] = {"16600", "", "", "i", "16400", "", NULL, NULL, NULL};
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

static void add_v(void *ud, const uint8_t *v, size_t len)
{
	gw_dlp_job_add(ud, v, len);
}

/* The external provider's answer applied to a row: spans with its types, json kept valid, bad spans fail closed. */
GW_TEST(mask_row_with_provider_finds)
{
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	struct fdesc f[] = {{"name", 16400, 6, 25, 0}, {"email", 16400, 2, 25, 0}, {"j", 16400, 6, 3802, 1},
		{"t", 16400, 6, 25, 1}, {"u", 16400, 6, 25, 0}};
	gw_buf rd = rowdesc(f, 5);
	char notice[300];
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p && gw_mask_plan_external(p) && gw_mask_plan_scans(p));
	const char *v[] = {"Alice Jones in Berlin", "alice@example.com", "\001{\"n\": \"Bob\"}", "Carol", "x"};
	int lens[] = {21, 17, 13, 5, 1};
	gw_buf row = datarow(v, lens, 5), out = {0};
	/* the values the provider reads: the scanned text columns, not the rule's (email), jsonb without its version */
	gw_dlp_job *job = gw_dlp_job_new(8, 64);
	CHECK(gw_mask_row_values(p, gw_buf_rd(&row), gw_buf_len(&row), add_v, job) == 4);
	CHECK(job->n == 4 && job->lens[1] == 12 && job->vals[1][0] == '{');
	struct gw_dlp_found found[4] = {0};
	struct gw_dlp_span s0[2] = {{0, 11, "PERSON"}, {15, 21, "LOCATION"}};
	struct gw_dlp_span s1[1] = {{7, 11, "PERSON"}};   /* covers the closing quote: the json value goes whole */
	struct gw_dlp_span s2[1] = {{0, 99, "PERSON"}};   /* past the end: fails closed */
	found[0] = (struct gw_dlp_found){.spans = s0, .nspans = 2};
	found[1] = (struct gw_dlp_found){.spans = s1, .nspans = 1};
	found[2] = (struct gw_dlp_found){.spans = s2, .nspans = 1};
	found[3] = (struct gw_dlp_found){.whole = true};
	size_t fi = 0;
	uint64_t k = 0;
	CHECK(gw_mask_row_found(mk, p, gw_buf_rd(&row), gw_buf_len(&row), found, &fi, &out, &k) == 0);
	CHECK(fi == 4);
	CHECK(value_is(&out, 0, "<PERSON> in <LOCATION>"));
	CHECK(value_is(&out, 1, "****.com"));
	CHECK(value_is(&out, 2, "\001\"[redacted]\""));
	CHECK(value_is(&out, 3, "[redacted]"));
	CHECK(value_is(&out, 4, "[redacted]"));
	gw_dlp_job_free(job);
	gw_buf_free(&rd);
	gw_buf_free(&row);
	gw_buf_free(&out);
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
	/* a bad value's error (class 22) in a statement that reads masked columns: replaced by what kind it was */
	CHECK(!out_has(&out, "Diagnosis") && out_has(&out, "was withheld") && k == 1);
	CHECK(out_has(&out, "22P02") && out_has(&out, "ERROR"));
	/* an error naming what the client wrote (class 42) keeps its text; a quoted value it did not write goes */
	gw_buf e0 = error_msg("42804", "column \"x\" is of type integer but \"Diagnosis\" is not", NULL, NULL);
	gw_buf out0 = {0};
	gw_mask_error(mk, 'E', gw_buf_rd(&e0), gw_buf_len(&e0), stmt, strlen(stmt), true, &out0, &k);
	CHECK(out_has(&out0, "is of type integer but \"[withheld]\"") && !out_has(&out0, "Diagnosis"));
	gw_buf_free(&e0);
	gw_buf_free(&out0);
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
	CHECK(!out_has(&out3, "alice") && out_has(&out3, "SQLSTATE 23505") && out_has(&out3, "23505"));
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
	gw_mask_notification(mk, gw_buf_rd(&a), gw_buf_len(&a), false, 4242, &out6, &k);
	CHECK(out_has(&out6, "to <EMAIL_ADDRESS>") && out_has(&out6, "ch"));
	gw_mask_notification(mk, gw_buf_rd(&a), gw_buf_len(&a), true, 4242, &out7, &k);
	gw_buf out8 = {0};
	gw_mask_notification(mk, gw_buf_rd(&a), gw_buf_len(&a), false, 7, &out8, &k);
	CHECK(!out_has(&out8, "to ") && out_has(&out8, "withheld"));
	gw_buf_free(&out8);
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
	const char *bad[9] = {"x16400", "public", "customers", "r", "2", "email", NULL, "25", ""};
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

/* ---- COPY ... TO STDOUT ---- */

/*
 * public.customers (id int4, name, email, ssn, notes, salary int4, ref uuid, total numeric, search generated),
 * other.customers (id, email, label): email is masked in public only.
 */
static gw_masker *copy_masker(gw_config *cfg)
{
	char err[200] = "";
	gw_masker *mk = gw_masker_new(cfg, err, sizeof(err));
	CHECK(mk);
	gw_mask_cat *c = gw_mask_cat_begin(mk);
	add_col_t(c, "16400", "public", "customers", "1", "id", "23", "");
	add_col_t(c, "16400", "public", "customers", "2", "name", "25", "");
	add_col_t(c, "16400", "public", "customers", "3", "email", "25", "");
	add_col_t(c, "16400", "public", "customers", "4", "ssn", "1043", "");
	add_col_t(c, "16400", "public", "customers", "5", "notes", "25", "");
	add_col_t(c, "16400", "public", "customers", "6", "salary", "23", "");
	add_col_t(c, "16400", "public", "customers", "7", "search", "25", "s");
	add_col_t(c, "16400", "public", "customers", "8", "total", "1700", "");
	add_col_t(c, "16700", "other", "customers", "1", "id", "23", "");
	add_col_t(c, "16700", "other", "customers", "2", "email", "25", "");
	add_col_t(c, "16700", "other", "customers", "3", "label", "25", "");
	const char *fn[9] = {"17000", "public", "secret_fn", "F", "0", "", NULL, NULL, NULL};
	cat_row(c, fn);
	gw_mask_cat_install(mk, "main", c);
	return mk;
}

struct copy_run {
	gw_masker *mk;
	gw_mask_cat *cat;
	struct gw_sql_copy opt;
	gw_mask_plan *p;
	gw_mask_copy_state *st;
	char notice[300];
	gw_buf out;
	uint64_t masked;
};

static void copy_open(struct copy_run *r, gw_masker *mk, const char *sql, int ncols)
{
	memset(r, 0, sizeof(*r));
	r->mk = mk;
	r->cat = gw_masker_cat(mk, "main");
	char why[200];
	if (gw_sql_copy_options(sql, strlen(sql), &r->opt, why, sizeof(why)) != 0)
		fprintf(stderr, "     %s: %s\n", sql, why);
	CHECK(r->opt.null_str);
	gw_sql sq;
	CHECK(gw_sql_parse(sql, &sq) == 0);
	r->p = gw_mask_copy_plan(mk, r->cat, sql, strlen(sql), &sq.stmts[0], &r->opt, ncols, r->notice,
		sizeof(r->notice));
	gw_sql_free(&sq);
	CHECK(r->p);
	r->st = gw_mask_copy_begin(mk, &r->opt);
}

static int copy_feed(struct copy_run *r, const void *data, size_t n)
{
	return gw_mask_copy_data(r->mk, r->p, r->st, data, n, &r->out, &r->masked);
}

/* Feed data in pieces of at most step bytes; every piece must be accepted. */
static void copy_feed_steps(struct copy_run *r, const void *data, size_t n, size_t step)
{
	for (size_t i = 0; i < n; i += step)
		CHECK(copy_feed(r, (const uint8_t *)data + i, n - i < step ? n - i : step) == 0);
}

/* The payloads of the CopyData messages in out, concatenated (each message checked). */
static gw_buf copy_payload(const gw_buf *out)
{
	gw_buf b = {0};
	const uint8_t *m = gw_buf_rd(out);
	size_t n = gw_buf_len(out), off = 0;
	while (off < n) {
		CHECK(n - off >= 5 && m[off] == 'd');
		uint32_t len = gw_get_u32(m + off + 1);
		CHECK(len >= 5 && len - 4 <= n - off - 5); /* never an empty CopyData */
		gw_buf_append(&b, m + off + 5, len - 4);
		off += 1 + len;
	}
	return b;
}

static bool payload_is(const gw_buf *out, const char *want)
{
	gw_buf b = copy_payload(out);
	bool ok = gw_buf_len(&b) == strlen(want) && !memcmp(gw_buf_rd(&b), want, strlen(want));
	if (!ok)
		fprintf(stderr, "     got  '%.*s'\n     want '%s'\n", (int)gw_buf_len(&b), (const char *)gw_buf_rd(&b), want);
	gw_buf_free(&b);
	return ok;
}

static void copy_close(struct copy_run *r)
{
	gw_mask_copy_free(r->st);
	gw_mask_plan_free(r->p);
	gw_sql_copy_free(&r->opt);
	gw_mask_cat_unref(r->cat);
	gw_buf_free(&r->out);
}

static gw_config *copy_cfg(void)
{
	gw_config *cfg = cfg_with_rules();
	cfg->mask_max_row = 4096;
	return cfg;
}

GW_TEST(mask_copy_text)
{
	gw_config *cfg = copy_cfg();
	gw_masker *mk = copy_masker(cfg);
	struct copy_run r;
	/* every column but the generated one; escapes undone before masking, the replacement escaped again */
	copy_open(&r, mk, "COPY customers TO STDOUT", 7);
	CHECK(!r.notice[0]);
	static const char rows[] =
		"1\tAlice Jones\talice.jones@example.com\t536-22-1847\tmail carol.white@example.net\\nthen\\\\x\t987654\t12.5\n"
		"2\tB\\tob\t\\N\t\\N\tplain \\\\ text\t\\N\t4111111111111111\n";
	CHECK(copy_feed(&r, rows, sizeof(rows) - 1) == 0);
	gw_buf pl = copy_payload(&r.out);
	gw_buf_put_u8(&pl, 0);
	const char *got = (const char *)gw_buf_rd(&pl);
	CHECK(!strncmp(got, "1\tAlice Jones\t****.com\t[redacted]\tmail <EMAIL_ADDRESS>\\nthen\\\\x\t", 63));
	CHECK(!strstr(got, "987654") && !strstr(got, "alice"));
	/* NULLs stay NULL, clear values pass byte for byte, a card in a numeric column: NULL */
	if (!strstr(got, "\t12.5\n2\tB\\tob\t\\N\t\\N\tplain \\\\ text\t\\N\t\\N\n"))
		fprintf(stderr, "     got '%s'\n", got);
	CHECK(strstr(got, "\t12.5\n2\tB\\tob\t\\N\t\\N\tplain \\\\ text\t\\N\t\\N\n"));
	CHECK(r.masked == 5);
	CHECK(gw_mask_copy_end(r.st) == 0);
	gw_buf_free(&pl);
	copy_close(&r);

	/* a replacement holding the delimiter or a backslash is escaped; the NULL string is the statement's */
	copy_open(&r, mk, "COPY customers (email, notes, ssn) TO STDOUT (DELIMITER '*', NULL 'nil')", 3);
	static const char star[] = "bob.smith@corp.example.org*to carol.white@example.net*nil\n";
	CHECK(copy_feed(&r, star, sizeof(star) - 1) == 0);
	CHECK(payload_is(&r.out, "\\*\\*\\*\\*.org*to <EMAIL_ADDRESS>*nil\n"));
	copy_close(&r);
	copy_open(&r, mk, "COPY customers (notes, name) TO STDOUT (DELIMITER '<')", 2);
	static const char lt[] = "x carol.white@example.net y<Al\\<ice\n";
	CHECK(copy_feed(&r, lt, sizeof(lt) - 1) == 0);
	CHECK(payload_is(&r.out, "x \\<EMAIL_ADDRESS> y<Al\\<ice\n"));
	copy_close(&r);

	/* rows split anywhere across messages: the same rows out, sent as each one ends */
	copy_open(&r, mk, "COPY customers TO STDOUT", 7);
	copy_feed_steps(&r, rows, sizeof(rows) - 1, 3);
	CHECK(gw_mask_copy_end(r.st) == 0);
	gw_buf whole = {0};
	struct copy_run r2;
	copy_open(&r2, mk, "COPY customers TO STDOUT", 7);
	CHECK(copy_feed(&r2, rows, sizeof(rows) - 1) == 0);
	gw_buf a = copy_payload(&r.out), b = copy_payload(&r2.out);
	CHECK(gw_buf_len(&a) == gw_buf_len(&b) && !memcmp(gw_buf_rd(&a), gw_buf_rd(&b), gw_buf_len(&a)));
	gw_buf_free(&a);
	gw_buf_free(&b);
	gw_buf_free(&whole);
	copy_close(&r2);
	copy_close(&r);

	/* HEADER (text, PostgreSQL 15): passed as it is */
	copy_open(&r, mk, "COPY customers (name, email) TO STDOUT (HEADER)", 2);
	static const char hdr[] = "name\temail\nAlice\talice.jones@example.com\n";
	CHECK(copy_feed(&r, hdr, 11) == 0 && copy_feed(&r, hdr + 11, sizeof(hdr) - 12) == 0);
	CHECK(payload_is(&r.out, "name\temail\nAlice\t****.com\n"));
	copy_close(&r);

	/* malformed: a field too many or too few, a dangling escape; an unfinished row at the end; over max_row */
	static const char *const bad[] = {"a\tb\tc\n", "a\n", "a\tb\\\n"};
	for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
		copy_open(&r, mk, "COPY customers (name, email) TO STDOUT", 2);
		CHECK(copy_feed(&r, bad[i], strlen(bad[i])) == -1 && gw_buf_len(&r.out) == 0);
		copy_close(&r);
	}
	copy_open(&r, mk, "COPY customers (name, email) TO STDOUT", 2);
	CHECK(copy_feed(&r, "a\tb\nc\td", 7) == 0 && gw_mask_copy_end(r.st) == -1);
	char big[5000];
	memset(big, 'x', sizeof(big));
	CHECK(copy_feed(&r, big, sizeof(big)) == -2);
	copy_close(&r);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_copy_csv)
{
	gw_config *cfg = copy_cfg();
	gw_masker *mk = copy_masker(cfg);
	struct copy_run r;
	copy_open(&r, mk, "COPY customers (id, name, email, notes, ssn) TO STDOUT (FORMAT csv, HEADER)", 5);
	/* the header; a quoted newline; a doubled quote; NULL (unquoted empty) vs empty string (quoted) */
	static const char rows[] =
		"id,name,email,notes,ssn\n"
		"1,\"Jones, Alice\",alice.jones@example.com,\"line 1\nmail carol.white@example.net, \"\"ok\"\"\",536-22-1847\n"
		"2,Bob,,\"\",\"\"\n";
	CHECK(copy_feed(&r, rows, sizeof(rows) - 1) == 0);
	CHECK(payload_is(&r.out, "id,name,email,notes,ssn\n"
		"1,\"Jones, Alice\",****.com,\"line 1\nmail <EMAIL_ADDRESS>, \"\"ok\"\"\",[redacted]\n"
		"2,Bob,,\"\",\"[redacted]\"\n"));
	CHECK(gw_mask_copy_end(r.st) == 0);
	copy_close(&r);
	/* byte by byte: the quote state carries over */
	copy_open(&r, mk, "COPY customers (id, name, email, notes, ssn) TO STDOUT (FORMAT csv, HEADER)", 5);
	copy_feed_steps(&r, rows, sizeof(rows) - 1, 1);
	CHECK(payload_is(&r.out, "id,name,email,notes,ssn\n"
		"1,\"Jones, Alice\",****.com,\"line 1\nmail <EMAIL_ADDRESS>, \"\"ok\"\"\",[redacted]\n"
		"2,Bob,,\"\",\"[redacted]\"\n"));
	copy_close(&r);

	/* a replacement that needs quoting is quoted; another quote and escape; a NULL string */
	copy_open(&r, mk, "COPY customers (email, notes, name) TO STDOUT (FORMAT csv, DELIMITER '*', QUOTE '''', "
		"ESCAPE '\\', NULL 'N/A')", 3);
	static const char q2[] = "alice.jones@example.com*'it\\'s \\\\ carol.white@example.net'*N/A\n";
	CHECK(copy_feed(&r, q2, sizeof(q2) - 1) == 0);
	CHECK(payload_is(&r.out, "'****.com'*'it\\'s \\\\ <EMAIL_ADDRESS>'*N/A\n"));
	copy_close(&r);
	/* a masked value equal to the NULL string is quoted so that it is not read as NULL */
	copy_open(&r, mk, "COPY customers (ssn) TO STDOUT (FORMAT csv, NULL '[redacted]')", 1);
	CHECK(copy_feed(&r, "536-22-1847\n[redacted]\n", 23) == 0);
	CHECK(payload_is(&r.out, "\"[redacted]\"\n[redacted]\n"));
	copy_close(&r);

	/* malformed: text after a closing quote, a quote inside an unquoted field, a field too many */
	static const char *const bad[] = {"\"a\"b,c\n", "a\"b\",c\n", "a,b,c\n"};
	for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
		copy_open(&r, mk, "COPY customers (name, email) TO STDOUT (FORMAT csv)", 2);
		CHECK(copy_feed(&r, bad[i], strlen(bad[i])) == -1 && gw_buf_len(&r.out) == 0);
		copy_close(&r);
	}
	/* a quote left open: the row has not ended (a newline in quotes is data); at the end of COPY: malformed */
	copy_open(&r, mk, "COPY customers (name, email) TO STDOUT (FORMAT csv)", 2);
	CHECK(copy_feed(&r, "a,\"b\n", 5) == 0 && gw_buf_len(&r.out) == 0 && gw_mask_copy_end(r.st) == -1);
	copy_close(&r);
	gw_masker_free(mk);
	free(cfg);
}

static void bin_field(gw_buf *b, const void *v, int len)
{
	gw_buf_put_i32(b, len);
	if (len > 0)
		gw_buf_append(b, v, (size_t)len);
}

GW_TEST(mask_copy_binary)
{
	gw_config *cfg = copy_cfg();
	gw_masker *mk = copy_masker(cfg);
	/* signature, flags, a 3-byte header extension (dropped), two tuples, the trailer */
	gw_buf in = {0};
	gw_buf_append(&in, "PGCOPY\n\377\r\n\0", 11);
	gw_buf_put_i32(&in, 0);
	gw_buf_put_i32(&in, 3);
	gw_buf_append(&in, "ext", 3);
	size_t hdr = gw_buf_len(&in);
	uint8_t sal[4] = {0, 0x0f, 0x12, 0x06};
	uint8_t num[12] = {0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0x0c, 0x0b, 0x2d}; /* numeric 1036.2861 (ndigits 2, weight 1) */
	uint8_t card[16] = {0, 4, 0, 3, 0, 0, 0, 0, 0x10, 0x0f, 0x04, 0x57, 0x04, 0x57, 0x04, 0x57}; /* 4111111111111111 */
	gw_buf_put_i16(&in, 5);
	bin_field(&in, "Alice Jones", 11);
	bin_field(&in, "alice.jones@example.com", 23);
	bin_field(&in, sal, 4);
	bin_field(&in, num, 12);
	bin_field(&in, "reach carol.white@example.net", 29);
	size_t t1 = gw_buf_len(&in);
	gw_buf_put_i16(&in, 5);
	bin_field(&in, NULL, -1);
	bin_field(&in, NULL, -1);
	bin_field(&in, NULL, -1);
	bin_field(&in, card, 16);
	bin_field(&in, "", 0);
	gw_buf_put_i16(&in, -1);
	const char *sql = "COPY customers (name, email, salary, total, notes) TO STDOUT (FORMAT binary)";
	struct copy_run r;
	for (size_t step = 1; step <= gw_buf_len(&in); step = step < 8 ? step + 1 : step * 3) {
		copy_open(&r, mk, sql, 5);
		copy_feed_steps(&r, gw_buf_rd(&in), gw_buf_len(&in), step);
		CHECK(gw_mask_copy_end(r.st) == 0);
		gw_buf pl = copy_payload(&r.out);
		const uint8_t *o = gw_buf_rd(&pl);
		size_t on = gw_buf_len(&pl);
		CHECK(on > 19 && !memcmp(o, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19)); /* the extension dropped */
		size_t off = 19;
		CHECK(gw_get_u16(o + off) == 5);
		off += 2;
		CHECK(gw_get_u32(o + off) == 11 && !memcmp(o + off + 4, "Alice Jones", 11));
		off += 15;
		CHECK(gw_get_u32(o + off) == 8 && !memcmp(o + off + 4, "****.com", 8));
		off += 12;
		CHECK(gw_get_u32(o + off) == 4 && memcmp(o + off + 4, sal, 4)); /* hashed, still an int4 */
		off += 8;
		CHECK(gw_get_u32(o + off) == 12 && !memcmp(o + off + 4, num, 12)); /* a numeric with nothing in it */
		off += 16;
		CHECK(gw_get_u32(o + off) == 21 && !memcmp(o + off + 4, "reach <EMAIL_ADDRESS>", 21));
		off += 25;
		CHECK(gw_get_u16(o + off) == 5);
		off += 2;
		for (int i = 0; i < 4; i++, off += 4) /* NULLs stay, a card in a numeric becomes NULL */
			CHECK(gw_get_u32(o + off) == UINT32_MAX);
		CHECK(gw_get_u32(o + off) == 0);
		off += 4;
		CHECK(off + 2 == on && gw_get_u16(o + off) == 0xffff);
		CHECK(r.masked == 4);
		gw_buf_free(&pl);
		copy_close(&r);
	}
	/* header only, then the trailer: the first message sends the header when it is whole */
	copy_open(&r, mk, sql, 5);
	CHECK(copy_feed(&r, gw_buf_rd(&in), 10) == 0 && gw_buf_len(&r.out) == 0);
	CHECK(copy_feed(&r, gw_buf_rd(&in) + 10, hdr - 10) == 0 && gw_buf_len(&r.out) == 5 + 19);
	CHECK(gw_mask_copy_end(r.st) == -1); /* no trailer yet */
	CHECK(copy_feed(&r, "\377\377", 2) == 0 && gw_mask_copy_end(r.st) == 0);
	CHECK(copy_feed(&r, "\0", 1) == -1); /* nothing may follow the trailer */
	copy_close(&r);
	/* malformed: the signature, a critical flag, the field count, a length below -1; over max_row */
	for (int k = 0; k < 5; k++) {
		gw_buf x = {0};
		gw_buf_append(&x, gw_buf_rd(&in), t1);
		uint8_t *w = gw_buf_rd(&x);
		if (k == 0)
			w[3] = 'X';
		else if (k == 1)
			w[14] = 1;
		else if (k == 2)
			w[hdr + 1] = 4;
		else if (k == 3)
			gw_put_u32(w + hdr + 2, (uint32_t)-2);
		else
			gw_put_u32(w + hdr + 2, 5000);
		copy_open(&r, mk, sql, 5);
		CHECK(copy_feed(&r, gw_buf_rd(&x), gw_buf_len(&x)) == (k == 4 ? -2 : -1) && gw_buf_len(&r.out) == 0);
		copy_close(&r);
		gw_buf_free(&x);
	}
	gw_buf_free(&in);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_copy_plans)
{
	gw_config *cfg = copy_cfg();
	gw_masker *mk = copy_masker(cfg);
	struct copy_run r;
	/* COPY (query): masked columns NULL (their type is not known), a find in a clear one: NULL too */
	copy_open(&r, mk, "COPY (SELECT upper(email), name, notes FROM public.customers) TO STDOUT", 3);
	CHECK(gw_mask_plan_tainted(r.p) && !r.notice[0]);
	static const char q[] = "ALICE.JONES@EXAMPLE.COM\tAlice\tnothing here\nX\tBob\tmail carol.white@example.net\n";
	CHECK(copy_feed(&r, q, sizeof(q) - 1) == 0);
	CHECK(payload_is(&r.out, "\\N\tAlice\tnothing here\n\\N\tBob\t\\N\n"));
	copy_close(&r);
	/* ... in binary too: a bigint holding a card number is found */
	copy_open(&r, mk, "COPY (SELECT id::bigint * 0 + 4111111111111111, name FROM public.customers) TO STDOUT "
		"(FORMAT binary)", 2);
	gw_buf in = {0};
	gw_buf_append(&in, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
	gw_buf_put_i16(&in, 2);
	uint8_t card[8] = {0x00, 0x0e, 0x9b, 0x08, 0xa5, 0x68, 0xf1, 0xc7};
	bin_field(&in, card, 8);
	bin_field(&in, "Alice", 5);
	gw_buf_put_i16(&in, -1);
	CHECK(copy_feed(&r, gw_buf_rd(&in), gw_buf_len(&in)) == 0);
	gw_buf pl = copy_payload(&r.out);
	CHECK(gw_buf_len(&pl) == 19 + 2 + 4 + 4 + 5 + 2 && gw_get_u32(gw_buf_rd(&pl) + 21) == UINT32_MAX);
	gw_buf_free(&pl);
	gw_buf_free(&in);
	copy_close(&r);
	/* a user-defined function, or a count that differs from CopyOutResponse's: every column NULL, with a note */
	copy_open(&r, mk, "COPY customers TO STDOUT", 5);
	CHECK(r.notice[0] && strstr(r.notice, "masked whole"));
	CHECK(copy_feed(&r, "1\tAlice\tx\ty\tz\n", 14) == 0);
	CHECK(payload_is(&r.out, "\\N\t\\N\t\\N\t\\N\t\\N\n"));
	copy_close(&r);
	copy_open(&r, mk, "COPY customers (name, nope) TO STDOUT", 2);
	CHECK(r.notice[0]);
	copy_close(&r);
	copy_open(&r, mk, "COPY (SELECT secret_fn(id), name FROM public.customers) TO STDOUT (FORMAT csv)", 2);
	CHECK(r.notice[0] && strstr(r.notice, "code defined in the database"));
	CHECK(copy_feed(&r, "x,Alice\n", 8) == 0 && payload_is(&r.out, ",\n"));
	copy_close(&r);
	copy_open(&r, mk, "COPY (SELECT name, email) TO STDOUT", 3);
	CHECK(r.notice[0]);
	copy_close(&r);
	/* an unqualified name in two schemas: the strongest action per column; qualified: that table's */
	copy_open(&r, mk, "COPY customers (email) TO STDOUT", 1);
	CHECK(copy_feed(&r, "alice.jones@example.com\n", 24) == 0 && payload_is(&r.out, "****.com\n"));
	copy_close(&r);
	copy_open(&r, mk, "COPY other.customers (email, label) TO STDOUT", 2);
	CHECK(copy_feed(&r, "alice.jones@example.com\tx\n", 26) == 0 && payload_is(&r.out, "<EMAIL_ADDRESS>\tx\n"));
	copy_close(&r);
	/*
	 * other.customers has 3 columns: only it fits; the rules for the name as written apply too (public.customers.email
	 * covers "customers" unqualified: a table the snapshot has not seen could be the one read)
	 */
	copy_open(&r, mk, "COPY customers TO STDOUT", 3);
	CHECK(!r.notice[0]);
	CHECK(copy_feed(&r, "1\talice.jones@example.com\tx\n", 28) == 0 && payload_is(&r.out, "1\t****.com\tx\n"));
	copy_close(&r);
	/* a relation the snapshot does not know: NULL, and the snapshot is read again */
	copy_open(&r, mk, "COPY newer TO STDOUT", 2);
	CHECK(r.notice[0] && gw_masker_cat_wanted(mk, "main"));
	copy_close(&r);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_binary_numeric_scanned)
{
	/* a card number in a numeric column read in binary: its digits are scanned as in text, and it becomes NULL */
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	struct fdesc f[] = {{"n", 16400, 6, 1700, 1}, {"n", 16400, 6, 1700, 1}, {"n", 16400, 6, 1700, 0},
		{"n", 16400, 6, 1700, 1}, {"n", 16400, 6, 1700, 1}};
	gw_buf rd = rowdesc(f, 5);
	char notice[300];
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p);
	uint8_t card[16] = {0, 4, 0, 3, 0, 0, 0, 0, 0x10, 0x0f, 0x04, 0x57, 0x04, 0x57, 0x04, 0x57}; /* 4111111111111111 */
	uint8_t small[12] = {0, 2, 0xff, 0xff, 0x40, 0, 0, 6, 0x00, 0x0c, 0x04, 0xd2}; /* -0.001212 (weight -1, dscale 6) */
	uint8_t nan[8] = {0, 0, 0, 0, 0xc0, 0, 0, 0};
	uint8_t bad[10] = {0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10}; /* a digit of 10000: not a numeric */
	const char *v[] = {(const char *)card, (const char *)small, "4111111111111111", (const char *)nan,
		(const char *)bad};
	int lens[] = {16, 12, 16, 8, 10};
	gw_buf row = datarow(v, lens, 5), out = {0};
	uint64_t k = 0;
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&row), gw_buf_len(&row), &out, &k) == 0);
	CHECK(value_is(&out, 0, NULL));
	const uint8_t *o;
	CHECK(value_of(&out, 1, &o) == 12 && !memcmp(o, small, 12));
	CHECK(value_is(&out, 2, NULL));
	CHECK(value_of(&out, 3, &o) == 8 && !memcmp(o, nan, 8));
	CHECK(value_is(&out, 4, NULL)); /* cannot be read: fail closed */
	CHECK(k == 3);
	gw_buf_free(&rd);
	gw_buf_free(&row);
	gw_buf_free(&out);
	gw_mask_plan_free(p);
	gw_mask_cat_unref(cat);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_copy_hostile)
{
	/* valid streams cut and mutated at random, fed in random pieces: never a crash, 0/-1/-2, whole messages */
	gw_config *cfg = copy_cfg();
	gw_masker *mk = copy_masker(cfg);
	static const char *const sqls[] = {
		"COPY customers (name, email, notes) TO STDOUT",
		"COPY customers (name, email, notes) TO STDOUT (FORMAT csv, HEADER)",
		"COPY customers (name, email, notes) TO STDOUT (FORMAT csv, QUOTE '''', ESCAPE '\\')",
		"COPY customers (name, email, total) TO STDOUT (FORMAT binary)",
	};
	gw_buf bin = {0};
	gw_buf_append(&bin, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
	for (int i = 0; i < 3; i++) {
		gw_buf_put_i16(&bin, 3);
		bin_field(&bin, "Alice", 5);
		bin_field(&bin, "alice.jones@example.com", 23);
		uint8_t num[12] = {0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0x0c, 0x0b, 0x2d};
		bin_field(&bin, num, 12);
	}
	gw_buf_put_i16(&bin, -1);
	static const char text[] = "Al\\\\ice\talice.jones@example.com\tsee \\n carol.white@example.net\nB\t\\N\tx\n";
	static const char csv[] = "name,email,notes\n\"A,l\"\"ice\",alice.jones@example.com,\"x\ny\"\nB,,\"\"\n";
	static const char csv2[] = "'A''l\\'ice',alice.jones@example.com,'x\\\\y'\nB,,''\n";
	const struct {
		const uint8_t *p;
		size_t n;
	} in[] = {{(const uint8_t *)text, sizeof(text) - 1}, {(const uint8_t *)csv, sizeof(csv) - 1},
		{(const uint8_t *)csv2, sizeof(csv2) - 1}, {gw_buf_rd(&bin), gw_buf_len(&bin)}};
	uint32_t seed = 12345;
	uint8_t buf[512];
	for (int iter = 0; iter < 4000; iter++) {
		int w = iter % 4;
		size_t n = in[w].n;
		memcpy(buf, in[w].p, n);
		int muts = iter % 7;
		for (int k = 0; k < muts; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % n;
			seed = seed * 1103515245u + 12345u;
			static const uint8_t pick[] = {'\\', '\n', '\t', ',', '"', '\'', 0, 0xff, 'N', '@', '.'};
			buf[at] = (seed >> 16) & 1 ? pick[(seed >> 8) % sizeof(pick)] : (uint8_t)(seed >> 8);
		}
		seed = seed * 1103515245u + 12345u;
		if (iter % 5 == 0)
			n = (seed >> 8) % (n + 1);
		struct copy_run r;
		copy_open(&r, mk, sqls[w], 3);
		size_t off = 0;
		int rc = 0;
		while (off < n && rc == 0) {
			seed = seed * 1103515245u + 12345u;
			size_t step = 1 + (seed >> 8) % 40;
			if (step > n - off)
				step = n - off;
			size_t before = gw_buf_len(&r.out);
			rc = copy_feed(&r, buf + off, step);
			CHECK(rc == 0 || rc == -1 || rc == -2);
			if (rc)
				CHECK(gw_buf_len(&r.out) == before);
			off += step;
		}
		gw_buf pl = copy_payload(&r.out); /* every message whole */
		gw_buf_free(&pl);
		(void)gw_mask_copy_end(r.st);
		copy_close(&r);
	}
	gw_buf_free(&bin);
	gw_masker_free(mk);
	free(cfg);
}

/* One statement's refusal under masking (gw_mask_check_write), with the real rules and snapshot. */
static int write_check(gw_mask_cat *cat, const char *sql)
{
	gw_sql s;
	CHECK(gw_sql_parse(sql, &s) == 0 && s.nstmts == 1);
	char why[256];
	int rc = gw_mask_check_write(cat, sql, strlen(sql), &s.stmts[0], why, sizeof(why));
	CHECK((rc != 0) == (why[0] != 0));
	gw_sql_free(&s);
	return rc;
}

GW_TEST(mask_writes_and_user_code)
{
	gw_config *cfg = cfg_with_rules();
	char err[200] = "";
	gw_masker *mk = gw_masker_new(cfg, err, sizeof(err));
	CHECK(mk);
	gw_mask_cat *c = gw_mask_cat_begin(mk);
	add_col(c, "16400", "customers", "r", "1", "id");
	add_col(c, "16400", "customers", "r", "2", "email");
	add_col(c, "16400", "customers", "r", "3", "ssn");
	add_col(c, "16400", "customers", "r", "4", "card_number");
	add_col(c, "16400", "customers", "r", "5", "name");
	add_col(c, "16500", "other", "r", "1", "email");
	add_col(c, "16600", "customers_2026", "r", "1", "ssn");
	const char *inh[9] = {"16600", "", "", "i", "16400", "", NULL, NULL, NULL};
	cat_row(c, inh);
	add_col(c, "16800", "v_other", "v", "1", "email"); /* a view: values written there go elsewhere */
	add_col_t(c, "16700", "public", "leaky_tab", "1", "v", "17000", "");
	const char *op[9] = {"17100", "", "<<~>>", "O", "0", "", NULL, NULL, NULL};
	const char *cast[9] = {"17000", "", "leaky", "C", "0", "", NULL, NULL, NULL};
	cat_row(c, op);
	cat_row(c, cast);
	gw_mask_cat_install(mk, "main", c);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	CHECK(cat);

	/* into another table's column: refused; into a column whose rule shows nothing: runs */
	CHECK(write_check(cat, "INSERT INTO other (email) SELECT ssn FROM customers") == 1);
	CHECK(write_check(cat, "INSERT INTO other (email) SELECT name FROM customers") == 0);
	CHECK(write_check(cat, "UPDATE customers SET ssn = name || email") == 0);
	CHECK(write_check(cat, "UPDATE customers_2026 SET ssn = (SELECT email FROM customers LIMIT 1)") == 0);
	/* a partial rule: only a column's own value as it is, from a column masked alike (same action and type) */
	CHECK(write_check(cat, "UPDATE customers SET email = email") == 0);
	CHECK(write_check(cat, "UPDATE customers SET email = card_number") == 0);
	CHECK(write_check(cat, "UPDATE customers SET email = upper(email)") == 1);
	CHECK(write_check(cat, "UPDATE customers SET email = ssn") == 1);
	CHECK(write_check(cat, "UPDATE other SET email = c.email FROM customers c") == 1);
	CHECK(write_check(cat, "INSERT INTO v_other (email) SELECT ssn FROM customers") == 1);
	CHECK(write_check(cat, "INSERT INTO nowhere (email) SELECT ssn FROM customers") == 1);
	/* new tables: a rule must cover the new column by name (a rule naming a schema: only where it is named) */
	CHECK(write_check(cat, "CREATE TABLE x AS SELECT ssn FROM customers") == 1);
	CHECK(write_check(cat, "CREATE TABLE x AS SELECT email AS card_copy FROM customers") == 1); /* partial */
	CHECK(write_check(cat, "CREATE TABLE customers AS SELECT ssn FROM other, customers") == 0);
	CHECK(write_check(cat, "CREATE TABLE x AS SELECT name FROM customers") == 0);
	/* not decided: refused (the snapshot has masked columns) */
	CHECK(write_check(cat, "DO $$ BEGIN NULL; END $$") == 1);
	CHECK(write_check(cat, "INSERT INTO other (email) SELECT v::text FROM leaky_tab") == 1);
	CHECK(write_check(cat, "INSERT INTO other (email) SELECT 'a' <<~>> 'b'") == 1);
	/* renames of what rules name; a partition takes its parent's rules */
	CHECK(write_check(cat, "ALTER TABLE customers RENAME TO c2") == 1);
	CHECK(write_check(cat, "ALTER TABLE customers_2026 RENAME TO c3") == 1);
	CHECK(write_check(cat, "ALTER TABLE other RENAME TO o2") == 0);
	CHECK(write_check(cat, "ALTER TABLE customers RENAME COLUMN name TO full_name") == 0);
	CHECK(write_check(cat, "ALTER TABLE customers RENAME COLUMN card_number TO cn") == 1);
	CHECK(write_check(cat, "ALTER SCHEMA public RENAME TO p") == 1);
	CHECK(write_check(cat, "ALTER TABLE customers DETACH PARTITION customers_2026") == 1);
	/* reads are not looked at here */
	CHECK(write_check(cat, "SELECT ssn FROM customers") == 0);
	/* no snapshot: what is read cannot be decided */
	CHECK(write_check(NULL, "INSERT INTO other (email) SELECT name FROM customers") == 1);
	CHECK(write_check(NULL, "INSERT INTO other (email) VALUES ('plain')") == 0);

	/* a user's operator or cast: the result columns masked whole (with a note), its messages withheld */
	struct fdesc f[] = {{"x", 0, 0, 25, 0}};
	gw_buf rd = rowdesc(f, 1);
	char notice[300];
	const char *sqls[] = {"SELECT name <<~>> 'x' FROM customers", "SELECT 'a'::leaky::text",
		"SELECT v::text FROM leaky_tab"};
	for (size_t i = 0; i < 3; i++) {
		gw_sql s;
		CHECK(gw_sql_parse(sqls[i], &s) == 0);
		gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), sqls[i], strlen(sqls[i]),
			&s.stmts[0], notice, sizeof(notice));
		CHECK(p && strstr(notice, "code defined in the database") && gw_mask_plan_tainted(p));
		CHECK(gw_mask_cat_stmt_tainted(cat, &s.stmts[0]));
		gw_mask_plan_free(p);
		gw_sql_free(&s);
	}
	gw_sql s;
	CHECK(gw_sql_parse("SELECT name || 'x' FROM other, customers", &s) == 0);
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), "SELECT name || 'x' FROM other, "
		"customers", 40, &s.stmts[0], notice, sizeof(notice));
	CHECK(notice[0] == 0); /* a built-in operator over a clear column: scanned, not masked whole */
	gw_mask_plan_free(p);
	gw_sql_free(&s);
	gw_buf_free(&rd);
	gw_mask_cat_unref(cat);
	gw_masker_free(mk);
	free(cfg);
}

GW_TEST(mask_int4_float8_scanned)
{
	/* an SSN kept as an integer, a card number as a double (written 4.111111111111111e+15): found, NULL */
	gw_config *cfg = cfg_with_rules();
	gw_masker *mk = masker_with_catalog(cfg);
	gw_mask_cat *cat = gw_masker_cat(mk, "main");
	struct fdesc f[] = {{"a", 16400, 6, 23, 0}, {"b", 16400, 6, 23, 1}, {"c", 16400, 6, 701, 0},
		{"d", 16400, 6, 701, 1}, {"e", 16400, 6, 701, 0}, {"f", 16400, 6, 23, 0}, {"g", 16400, 6, 21, 0}};
	gw_buf rd = rowdesc(f, 7);
	char notice[300];
	gw_mask_plan *p = gw_mask_plan_new(mk, cat, gw_buf_rd(&rd), gw_buf_len(&rd), NULL, 0, NULL, notice, sizeof(notice));
	CHECK(p);
	uint8_t ssn[4] = {0x1f, 0xf6, 0xa5, 0x97}; /* 536221847 */
	double card = 4111111111111111.0;
	uint64_t x;
	memcpy(&x, &card, 8);
	uint8_t cardb[8];
	for (int i = 0; i < 8; i++)
		cardb[i] = (uint8_t)(x >> (56 - 8 * i));
	const char *v[] = {"536221847", (const char *)ssn, "4.111111111111111e+15", (const char *)cardb, "12.5", "42",
		"31234"};
	int lens[] = {9, 4, 21, 8, 4, 2, 5};
	gw_buf row = datarow(v, lens, 7), out = {0};
	uint64_t k = 0;
	CHECK(gw_mask_row(mk, p, gw_buf_rd(&row), gw_buf_len(&row), &out, &k) == 0);
	CHECK(value_is(&out, 0, NULL));
	CHECK(value_is(&out, 1, NULL));
	CHECK(value_is(&out, 2, NULL));
	CHECK(value_is(&out, 3, NULL));
	CHECK(value_is(&out, 4, "12.5"));
	CHECK(value_is(&out, 5, "42"));
	CHECK(value_is(&out, 6, "31234"));
	CHECK(k == 4);
	gw_buf_free(&rd);
	gw_buf_free(&row);
	gw_buf_free(&out);
	gw_mask_plan_free(p);
	gw_mask_cat_unref(cat);
	gw_masker_free(mk);
	free(cfg);
}
