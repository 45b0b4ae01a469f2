/*
 * The built-in content detectors: one pass over a value that stops only at
 * bytes where an enabled entity can be anchored, and validators in C that
 * look a bounded distance from there.
 *
 *   trigger byte   anchors
 *   0-9            credit card, SSN, phone, IPv4 (at the first digit of a
 *                  number), IBAN (digits right after two capitals)
 *   @              email (local part backwards, domain forwards)
 *   :              IPv6 (from its first colon, backing over <= 4 hex digits)
 *   + (            phone
 *   -              -----BEGIN ... PRIVATE KEY, Slack xox?-, OpenAI sk-
 *   _              GitHub gh?_ and github_pat_, Stripe sk_live_/rk_live_
 *   J              JWT (the J of "eyJ")
 *   A              AWS AKIA/ASIA, Google AIza
 *
 * Why not regular expressions: on bench/detect_bench.c's mixed text (one
 * core of a 2-core AMD EPYC VM, values of 200 B / 4 KiB) one PCRE2-JIT
 * alternation of the patterns ran at 41 MB/s before any validation;
 * Hyperscan with the same patterns at 160-200 MB/s, and with bare anchors
 * ("@\w", "\d{3}", "eyJ", prefixes) as a prefilter at 290-380 MB/s, again
 * before finding starts and validating (3 million anchor hits in 64 MB:
 * digits are everywhere in real text). This scanner, validation included,
 * runs at 600-700 MB/s.
 *
 * Bounded work: every validator either fails within a fixed number of bytes
 * or consumes what it matched (the scan resumes after a found span), and the
 * unbounded walks (an email's local part backwards, a domain, a key's
 * base64) start only at a boundary that cannot recur inside the run they
 * walk, so no byte is walked more than a small constant number of times.
 * Hostile values cost linear time.
 */
#include "mask/detect.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const entity_names[GW_ENT__COUNT] = {
	[GW_ENT_EMAIL_ADDRESS] = "EMAIL_ADDRESS",
	[GW_ENT_CREDIT_CARD] = "CREDIT_CARD",
	[GW_ENT_US_SSN] = "US_SSN",
	[GW_ENT_PHONE_NUMBER] = "PHONE_NUMBER",
	[GW_ENT_IBAN_CODE] = "IBAN_CODE",
	[GW_ENT_IP_ADDRESS] = "IP_ADDRESS",
	[GW_ENT_PRIVATE_KEY] = "PRIVATE_KEY",
	[GW_ENT_JWT] = "JWT",
	[GW_ENT_API_KEY] = "API_KEY",
};

const char *gw_entity_name(enum gw_entity e)
{
	return (unsigned)e < GW_ENT__COUNT ? entity_names[e] : "?";
}

int gw_entity_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < GW_ENT__COUNT; i++)
		if (!strcasecmp(name, entity_names[i]))
			return i;
	return -1;
}

struct gw_detector {
	unsigned mask;
	uint8_t trig[256]; /* nonzero: the scan stops at this byte */
};

gw_detector *gw_detector_new(unsigned entity_mask, char *err, size_t errlen)
{
	if (entity_mask & ~(unsigned)GW_ENT_ALL) {
		if (err && errlen)
			snprintf(err, errlen, "unknown entity bits 0x%x", entity_mask & ~(unsigned)GW_ENT_ALL);
		return NULL;
	}
	gw_detector *d = calloc(1, sizeof(*d));
	if (!d) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->mask = entity_mask;
	unsigned numeric = GW_ENT_BIT(GW_ENT_CREDIT_CARD) | GW_ENT_BIT(GW_ENT_US_SSN) | GW_ENT_BIT(GW_ENT_PHONE_NUMBER) |
		GW_ENT_BIT(GW_ENT_IP_ADDRESS) | GW_ENT_BIT(GW_ENT_IBAN_CODE);
	if (entity_mask & numeric)
		memset(d->trig + '0', 1, 10);
	if (entity_mask & GW_ENT_BIT(GW_ENT_EMAIL_ADDRESS))
		d->trig['@'] = 1;
	if (entity_mask & GW_ENT_BIT(GW_ENT_IP_ADDRESS))
		d->trig[':'] = 1;
	if (entity_mask & GW_ENT_BIT(GW_ENT_PHONE_NUMBER))
		d->trig['+'] = d->trig['('] = 1;
	if (entity_mask & (GW_ENT_BIT(GW_ENT_PRIVATE_KEY) | GW_ENT_BIT(GW_ENT_API_KEY)))
		d->trig['-'] = 1;
	if (entity_mask & GW_ENT_BIT(GW_ENT_API_KEY))
		d->trig['_'] = d->trig['A'] = 1;
	if (entity_mask & GW_ENT_BIT(GW_ENT_JWT))
		d->trig['J'] = 1;
	return d;
}

void gw_detector_free(gw_detector *d)
{
	free(d);
}

/* ---- character classes (ASCII only: bytes >= 0x80 are in no class) ---- */

enum {
	K_DIGIT = 1,  /* 0-9 */
	K_UPPER = 2,  /* A-Z */
	K_LOWER = 4,  /* a-z */
	K_HEX = 8,    /* 0-9 A-F a-f */
	K_WORD = 16,  /* regex \w: alnum and _ */
	K_B64U = 32,  /* base64url: alnum - _ */
	K_LOCAL = 64, /* an email local part: alnum and .!#$%&'*+-/=?^_`{|}~ */
};

#define K_AL (K_WORD | K_B64U | K_LOCAL)
static const uint8_t kind[256] = {
	['0' ... '9'] = K_DIGIT | K_HEX | K_AL,
	['A' ... 'F'] = K_UPPER | K_HEX | K_AL,
	['G' ... 'Z'] = K_UPPER | K_AL,
	['a' ... 'f'] = K_LOWER | K_HEX | K_AL,
	['g' ... 'z'] = K_LOWER | K_AL,
	['_'] = K_WORD | K_B64U | K_LOCAL,
	['-'] = K_B64U | K_LOCAL,
	['.'] = K_LOCAL, ['!'] = K_LOCAL, ['#'] = K_LOCAL, ['$'] = K_LOCAL, ['%'] = K_LOCAL, ['&'] = K_LOCAL,
	['\''] = K_LOCAL, ['*'] = K_LOCAL, ['+'] = K_LOCAL, ['/'] = K_LOCAL, ['='] = K_LOCAL, ['?'] = K_LOCAL,
	['^'] = K_LOCAL, ['`'] = K_LOCAL, ['{'] = K_LOCAL, ['|'] = K_LOCAL, ['}'] = K_LOCAL, ['~'] = K_LOCAL,
};

static inline bool is_digit(uint8_t c) { return kind[c] & K_DIGIT; }
static inline bool is_upper(uint8_t c) { return kind[c] & K_UPPER; }
static inline bool is_hex(uint8_t c) { return kind[c] & K_HEX; }
static inline bool is_word(uint8_t c) { return kind[c] & K_WORD; }
static inline bool is_alnum(uint8_t c) { return kind[c] & (K_DIGIT | K_UPPER | K_LOWER); }
static inline bool is_b64u(uint8_t c) { return kind[c] & K_B64U; }
static inline bool is_local(uint8_t c) { return kind[c] & K_LOCAL; }
static inline bool is_updig(uint8_t c) { return kind[c] & (K_DIGIT | K_UPPER); }

/* Length of the run of bytes with one of the kinds k from i, at most cap. */
static inline size_t run(const uint8_t *p, size_t len, size_t i, uint8_t k, size_t cap)
{
	size_t n = 0;
	while (i + n < len && n < cap && (kind[p[i + n]] & k))
		n++;
	return n;
}

static inline bool has(const uint8_t *p, size_t len, size_t i, const char *lit, size_t n)
{
	return i + n <= len && !memcmp(p + i, lit, n);
}

/* ---- the result list: sorted, overlaps merged as they arrive ---- */

struct out {
	struct gw_span *v;
	size_t max, n;
	size_t found;       /* spans found, stored or not */
	bool overflow;      /* a span did not fit */
	size_t drop_end;    /* end of the last span that did not fit */
};

/*
 * Every new span ends after every stored one (the scan only moves forward
 * and a span contains its trigger byte), so it overlaps exactly the stored
 * spans at the tail whose end is past its start.
 */
static void add(struct out *o, size_t s, size_t e, int ent)
{
	if (o->overflow) {
		/* Past max the count is an upper bound: overlaps are merged with the last dropped span only. */
		if (s < o->drop_end) {
			if (e > o->drop_end)
				o->drop_end = e;
		} else {
			o->found++;
			o->drop_end = e;
		}
		return;
	}
	size_t k = o->n;
	while (k > 0 && o->v[k - 1].end > s)
		k--;
	if (k < o->n) {
		size_t ns = s, ne = e, best = e - s;
		for (size_t j = k; j < o->n; j++) {
			size_t w = o->v[j].end - o->v[j].start;
			if (o->v[j].start < ns)
				ns = o->v[j].start;
			if (o->v[j].end > ne)
				ne = o->v[j].end;
			if (w > best) {
				best = w;
				ent = o->v[j].entity;
			}
		}
		o->found -= o->n - k - 1;
		o->n = k + 1;
		o->v[k] = (struct gw_span){(uint32_t)ns, (uint32_t)ne, (uint8_t)ent};
		return;
	}
	o->found++;
	if (o->n < o->max) {
		o->v[o->n++] = (struct gw_span){(uint32_t)s, (uint32_t)e, (uint8_t)ent};
		return;
	}
	o->overflow = true;
	o->drop_end = e;
}

/* ---- numbers ---- */

/*
 * A number may start here: not inside a word, not the decimals of "3.14";
 * when strict, nor the later fields of "2024-03-15", "10:30" or "12/25"
 * (an address may follow "-" in a range "10.0.0.1-10.0.0.9").
 */
static bool num_left_ok(const uint8_t *p, size_t i, bool strict)
{
	if (i == 0)
		return true;
	uint8_t c = p[i - 1];
	if (is_word(c))
		return false;
	if (i < 2 || !is_digit(p[i - 2]))
		return true;
	return !(c == '.' || (strict && (c == '-' || c == ':' || c == '/')));
}

/* A number may end here: no word character or ".5" follows. */
static bool num_right_ok(const uint8_t *p, size_t len, size_t e)
{
	if (e >= len)
		return true;
	if (is_word(p[e]))
		return false;
	return !(p[e] == '.' && e + 1 < len && is_digit(p[e + 1]));
}

static bool luhn(const uint8_t *d, size_t n)
{
	unsigned sum = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned v = d[n - 1 - k];
		if (k & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/*
 * Leading digits of a card network. Presidio accepts 1 (not with 13
 * digits), 3, 4, 5[0-5] and 6; we add Mastercard's 2221-2720 range (issued
 * since 2017) and Maestro's 56-58, which Presidio misses.
 */
static bool card_prefix_ok(const uint8_t *d, size_t n)
{
	switch (d[0]) {
	case 1:
		return n != 13;
	case 2: {
		unsigned v = d[0] * 1000u + d[1] * 100u + d[2] * 10u + d[3];
		return v >= 2221 && v <= 2720;
	}
	case 3:
	case 4:
	case 6:
		return true;
	case 5:
		return d[1] <= 8;
	default:
		return false;
	}
}

/*
 * CREDIT_CARD at s: 13-19 digits, either one run or a first group of 4 then
 * groups of 3-6 separated by single spaces or dashes (4-4-4-4, 4-6-5,
 * 4-4-4-4-3 ...). When more groups follow than fit, the longest valid
 * prefix wins, as Presidio's regex would find it. Returns the end or 0.
 */
static size_t card_at(const uint8_t *p, size_t len, size_t s)
{
	size_t ge[7];
	uint8_t gl[7];
	int ng = 0;
	size_t pos = s;
	for (;;) {
		size_t n = run(p, len, pos, K_DIGIT, 20);
		if (n > 19)
			break;
		gl[ng] = (uint8_t)n;
		ge[ng++] = pos + n;
		pos += n;
		if (ng == 7 || pos + 1 >= len || (p[pos] != ' ' && p[pos] != '-') || !is_digit(p[pos + 1]))
			break;
		pos++;
	}
	if (ng == 0)
		return 0;
	for (int j = ng - 1; j >= 0; j--) {
		if (j == 0 ? (gl[0] < 13) : (gl[0] != 4))
			continue;
		size_t total = 0;
		bool ok = true;
		for (int g = 0; g <= j; g++) {
			if (g > 0 && (gl[g] < 3 || gl[g] > 6))
				ok = false;
			total += gl[g];
		}
		if (!ok || total < 13 || total > 19 || !num_right_ok(p, len, ge[j]))
			continue;
		uint8_t d[19];
		size_t n = 0;
		for (size_t q = s; q < ge[j]; q++)
			if (is_digit(p[q]))
				d[n++] = (uint8_t)(p[q] - '0');
		if (card_prefix_ok(d, n) && luhn(d, n))
			return ge[j];
	}
	return 0;
}

/*
 * Presidio's UsSsnRecognizer.invalidate_result: all one digit, group 00,
 * serial 0000, area 000 or 666, and its sample values.
 */
static bool ssn_valid(const uint8_t *d)
{
	bool same = true;
	for (int k = 1; k < 9; k++)
		same &= d[k] == d[0];
	if (same)
		return false;
	if (!memcmp(d + 3, "00", 2) || !memcmp(d + 5, "0000", 4))
		return false;
	static const char *const samples[] = {"000", "666", "123456789", "98765432", "078051120"};
	for (size_t k = 0; k < sizeof(samples) / sizeof(samples[0]); k++)
		if (!memcmp(d, samples[k], strlen(samples[k])))
			return false;
	return true;
}

/*
 * US_SSN at s: AAA-GG-SSSS with one delimiter out of "- ." used twice, or
 * nine plain digits (Presidio's weak "SSN4"). Presidio's 5-4 and 3-6 forms
 * are left out: they are mostly ZIP+4 codes and other references. Area 9xx
 * is accepted as Presidio does (those are ITINs, as sensitive).
 */
static size_t ssn_at(const uint8_t *p, size_t len, size_t s)
{
	uint8_t d[9];
	size_t n = run(p, len, s, K_DIGIT, 10);
	size_t e;
	if (n == 9) {
		memcpy(d, p + s, 9);
		e = s + 9;
	} else if (n == 3) {
		uint8_t sep = s + 3 < len ? p[s + 3] : 0;
		if ((sep != '-' && sep != ' ' && sep != '.') || run(p, len, s + 4, K_DIGIT, 3) != 2 || s + 6 >= len ||
			p[s + 6] != sep || run(p, len, s + 7, K_DIGIT, 5) != 4)
			return 0;
		memcpy(d, p + s, 3);
		memcpy(d + 3, p + s + 4, 2);
		memcpy(d + 5, p + s + 7, 4);
		e = s + 11;
	} else
		return 0;
	return num_right_ok(p, len, e) && ssn_valid(d) ? e : 0;
}

/* IPv4 dotted quad at s, octets <= 255 without leading zeros (Python's ipaddress refuses them). */
static size_t ipv4_parse(const uint8_t *p, size_t len, size_t s)
{
	size_t pos = s;
	for (int k = 0; k < 4; k++) {
		if (k) {
			if (pos >= len || p[pos] != '.')
				return 0;
			pos++;
		}
		size_t n = run(p, len, pos, K_DIGIT, 4);
		if (n == 0 || n > 3 || (n > 1 && p[pos] == '0'))
			return 0;
		unsigned v = 0;
		for (size_t q = 0; q < n; q++)
			v = v * 10 + (p[pos + q] - '0');
		if (v > 255)
			return 0;
		pos += n;
	}
	return pos;
}

/*
 * IP_ADDRESS, IPv4 at s. Presidio's \b...\b also takes the first four
 * numbers of "1.3.6.1.4.1" or a version "1.2.3.4.5"; a fifth ".digit" makes
 * this a longer dotted number, not an address.
 */
static size_t ipv4_at(const uint8_t *p, size_t len, size_t s)
{
	size_t e = ipv4_parse(p, len, s);
	return e && num_right_ok(p, len, e) ? e : 0;
}

/* NANP: area and exchange codes start with 2-9; N11 is no area code. */
static bool nanp(const uint8_t *d)
{
	return d[0] >= 2 && d[3] >= 2 && !(d[1] == 1 && d[2] == 1);
}

/* A phone number may end here: not before a word character, nor where ".", "-", "/" or ":" goes on. */
static bool phone_right_ok(const uint8_t *p, size_t len, size_t e)
{
	if (e >= len)
		return true;
	if (is_word(p[e]))
		return false;
	if (e + 1 >= len)
		return true;
	if (p[e] == ':')
		return !is_alnum(p[e + 1]);
	return !((p[e] == '.' || p[e] == '/' || p[e] == '-') && is_digit(p[e + 1]));
}

/*
 * Country calling codes are prefix-free: 1 and 7 alone, these two-digit
 * ones, and three digits otherwise. National number lengths (from
 * libphonenumber's metadata, rounded) for Presidio's regions and a few
 * large countries keep "+1 202-555-0143 425" from taking the 425.
 */
static const uint8_t cc2[] = {20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
	55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98};
static const struct {
	uint16_t cc;
	uint8_t min, max;
} cc_nsn[] = {
	{1, 10, 10}, {7, 10, 10}, {31, 9, 9}, {33, 9, 9}, {34, 9, 9}, {39, 6, 11}, {41, 9, 9}, {43, 4, 13},
	{44, 7, 10}, {45, 8, 8}, {46, 7, 10}, {47, 8, 8}, {48, 9, 9}, {49, 6, 13}, {55, 10, 11}, {61, 9, 9},
	{81, 9, 10}, {82, 8, 10}, {86, 10, 11}, {90, 10, 10}, {91, 10, 10}, {351, 9, 9}, {353, 7, 9}, {972, 8, 9},
};

static bool plus_ok(const uint8_t *d, int nd)
{
	unsigned cc = d[0];
	int ccl = 1;
	if (cc != 1 && cc != 7) {
		cc = cc * 10 + d[1];
		ccl = 2;
		if (!memchr(cc2, (int)cc, sizeof(cc2))) {
			cc = cc * 10 + d[2];
			ccl = 3;
		}
	}
	int nsn = nd - ccl, min = 4, max = 15 - ccl;
	for (size_t k = 0; k < sizeof(cc_nsn) / sizeof(cc_nsn[0]); k++)
		if (cc_nsn[k].cc == cc) {
			min = cc_nsn[k].min;
			max = cc_nsn[k].max;
		}
	if (nsn < min || nsn > max)
		return false;
	return cc != 1 || nanp(d + 1);
}

#define PHONE_GROUPS 8

struct phone {
	size_t end[PHONE_GROUPS];
	uint8_t len[PHONE_GROUPS];
	uint8_t sep[PHONE_GROUPS]; /* separator before the group, 0 when none */
	bool paren[PHONE_GROUPS];
	uint8_t digit[16];
	int ng, nd;
};

static unsigned group_val(const struct phone *ph, int g)
{
	int at = 0;
	for (int k = 0; k < g; k++)
		at += ph->len[k];
	unsigned v = 0;
	for (int k = 0; k < ph->len[g]; k++)
		v = v * 10 + ph->digit[at + k];
	return v;
}

/* "1990-03-15" or "15.03.1990" (one separator, not a space) as groups g..g+2. */
static bool date_at(const struct phone *ph, int g)
{
	const uint8_t *l = ph->len + g, *sp = ph->sep + g;
	if (sp[1] != sp[2] || sp[1] == ' ' || sp[1] == 0)
		return false;
	int y;
	if (l[0] == 4 && l[1] <= 2 && l[2] <= 2)
		y = 0;
	else if (l[0] <= 2 && l[1] <= 2 && l[2] == 4)
		y = 2;
	else
		return false;
	unsigned year = group_val(ph, g + y), a = group_val(ph, g + (y ? 0 : 1)), b = group_val(ph, g + (y ? 1 : 2));
	return year >= 1900 && year <= 2099 && a >= 1 && a <= 31 && b >= 1 && b <= 31 && (a <= 12 || b <= 12);
}

static bool phone_ok(const struct phone *ph, int k, bool plus)
{
	int nd = 0;
	for (int g = 0; g < k; g++)
		nd += ph->len[g];
	const uint8_t *d = ph->digit;
	for (int g = 0; g + 2 < k; g++)
		if (date_at(ph, g))
			return false;
	/* A last group after a space, where the groups before it were joined by "-" or ".", is another number. */
	if (k >= 3 && ph->sep[k - 1] == ' ')
		for (int g = 2; g < k - 1; g++)
			if (ph->sep[g] == '-' || ph->sep[g] == '.')
				return false;
	if (plus) {
		/* E.164: a country code and at most 15 digits; "+44 (0)20 ..." shows a trunk 0 that is not dialled */
		if (k > 1 && ph->paren[1] && ph->len[1] == 1 && d[ph->len[0]] == 0)
			nd--;
		return nd >= 8 && nd <= 15 && d[0] != 0 && !ph->paren[0] && plus_ok(d, nd);
	}
	for (int g = 1; g < k; g++)
		if (ph->paren[g] && !(g == 1 && ph->len[0] == 1))
			return false;
	/* US/NANP: 10 digits, an optional leading 1, grouped 3-3-4 when grouped */
	if (k == 1 && nd == 10 && nanp(d))
		return true;
	if (k == 1 && nd == 11 && d[0] == 1 && nanp(d + 1))
		return true;
	int off = (k == 4 && ph->len[0] == 1 && d[0] == 1 && !ph->paren[0]) ? 1 : 0;
	if (k - off == 3 && ph->len[off] == 3 && ph->len[off + 1] == 3 && ph->len[off + 2] == 4 && nanp(d + off))
		return true;
	/*
	 * National numbers with trunk 0 (UK, DE, FR, IL, IN, BR): 10-11 digits,
	 * an area code of 2-5 digits when grouped, one separator after it.
	 */
	if (nd < 10 || nd > 11 || d[0] != 0 || d[1] == 0)
		return false;
	if (k == 1)
		return true;
	if (ph->len[0] < 2 || ph->len[0] > 5)
		return false;
	for (int g = 2; g < k; g++)
		if (ph->sep[g] != ph->sep[1] && !(g == 2 && ph->paren[0]))
			return false;
	return true;
}

/*
 * PHONE_NUMBER at s ('+', '(' or a digit): groups of digits separated by a
 * single space, dash or dot, a group may sit in parentheses. Presidio asks
 * libphonenumber (regions US, UK, DE, FR, IL, IN, CA, BR); without its
 * metadata this takes +CC numbers of 8-15 digits whose national part has
 * the country's length, NANP numbers, and trunk-0 national numbers of 10-11
 * digits; never a date among the groups. The longest grouping that
 * qualifies wins.
 */
static size_t phone_at(const uint8_t *p, size_t len, size_t s)
{
	struct phone ph;
	bool plus = p[s] == '+';
	size_t pos = s + plus;
	ph.ng = ph.nd = 0;
	uint8_t sep = 0;
	while (ph.ng < PHONE_GROUPS) {
		bool paren = pos < len && p[pos] == '(';
		size_t n = run(p, len, pos + paren, K_DIGIT, 16);
		if (n == 0 || ph.nd + (int)n > 15)
			break;
		size_t a = pos + paren;
		pos = a + n;
		if (paren) {
			if (pos >= len || p[pos] != ')')
				break;
			pos++;
		}
		for (size_t q = 0; q < n; q++)
			ph.digit[ph.nd++] = (uint8_t)(p[a + q] - '0');
		ph.end[ph.ng] = pos;
		ph.len[ph.ng] = (uint8_t)n;
		ph.paren[ph.ng] = paren;
		ph.sep[ph.ng++] = sep;
		if (pos + 1 < len && (p[pos] == ' ' || p[pos] == '-' || p[pos] == '.') &&
			(is_digit(p[pos + 1]) || p[pos + 1] == '(')) {
			sep = p[pos++];
		} else if (paren && pos < len && is_digit(p[pos])) {
			sep = 0; /* "(202)555-0143" */
		} else
			break;
	}
	for (int k = ph.ng; k >= 1; k--)
		if (phone_right_ok(p, len, ph.end[k - 1]) && phone_ok(&ph, k, plus))
			return ph.end[k - 1];
	return 0;
}

/* ---- IBAN ---- */

/*
 * BBAN formats in SWIFT notation (n digits, a capitals, c either), from
 * Presidio's iban_patterns.py (which follows Wikipedia's list), plus the
 * registry's newer countries Presidio lacks (UA, EG, IQ, LC, SC, ST, SV,
 * LY, SD, RU, MN). Presidio checks the format as a prefix; we check the
 * exact length.
 */
static const struct {
	char cc[3];
	const char *fmt;
} iban_countries[] = {
	{"AD", "8n12c"}, {"AE", "19n"}, {"AL", "8n16c"}, {"AT", "16n"}, {"AZ", "4c20n"}, {"BA", "16n"},
	{"BE", "12n"}, {"BG", "4a6n8c"}, {"BH", "4a14c"}, {"BR", "23n1a1c"}, {"BY", "4c4n16c"}, {"CH", "5n12c"},
	{"CR", "18n"}, {"CY", "8n16c"}, {"CZ", "20n"}, {"DE", "18n"}, {"DK", "14n"}, {"DO", "4a20n"},
	{"EE", "16n"}, {"EG", "25n"}, {"ES", "20n"}, {"FI", "14n"}, {"FO", "14n"}, {"FR", "10n11c2n"},
	{"GB", "4a14n"}, {"GE", "2c16n"}, {"GI", "4a15c"}, {"GL", "14n"}, {"GR", "7n16c"}, {"GT", "24c"},
	{"HR", "17n"}, {"HU", "24n"}, {"IE", "4c14n"}, {"IL", "19n"}, {"IQ", "4a15n"}, {"IS", "22n"},
	{"IT", "1a10n12c"}, {"JO", "4a22n"}, {"KW", "4a22c"}, {"KZ", "3n13c"}, {"LB", "4n20c"}, {"LC", "4a24c"},
	{"LI", "5n12c"}, {"LT", "16n"}, {"LU", "3n13c"}, {"LV", "4a13c"}, {"LY", "21n"}, {"MC", "10n11c2n"},
	{"MD", "20c"}, {"ME", "18n"}, {"MK", "3n10c2n"}, {"MN", "16n"}, {"MR", "23n"}, {"MT", "4a5n18c"},
	{"MU", "4a19n3a"}, {"NL", "4a10n"}, {"NO", "11n"}, {"PK", "4c16n"}, {"PL", "24n"}, {"PS", "4c21n"},
	{"PT", "21n"}, {"QA", "4a21c"}, {"RO", "4a16c"}, {"RS", "18n"}, {"RU", "14n15c"}, {"SA", "2n18c"},
	{"SC", "4a20n3a"}, {"SD", "14n"}, {"SE", "20n"}, {"SI", "15n"}, {"SK", "20n"}, {"SM", "1a10n12c"},
	{"ST", "21n"}, {"SV", "4a20n"}, {"TL", "19n"}, {"TN", "20n"}, {"TR", "5n17c"}, {"UA", "6n19c"},
	{"VA", "18n"}, {"VG", "4c16n"}, {"XK", "16n"},
};

static const char *iban_format(uint8_t a, uint8_t b)
{
	for (size_t k = 0; k < sizeof(iban_countries) / sizeof(iban_countries[0]); k++)
		if (iban_countries[k].cc[0] == a && iban_countries[k].cc[1] == b)
			return iban_countries[k].fmt;
	return NULL;
}

static unsigned iban_val(uint8_t c)
{
	return is_digit(c) ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

/*
 * IBAN_CODE at s (its two capitals; the caller saw digits at s+2): check
 * digits 02-98, the country's BBAN format and length, a single space or
 * dash allowed between groups of four, ISO 7064 mod 97-10. Upper case only,
 * not touching other capitals or digits, as Presidio's pattern.
 */
static size_t iban_at(const uint8_t *p, size_t len, size_t s)
{
	if (s > 0 && is_updig(p[s - 1]))
		return 0;
	const char *fmt = iban_format(p[s], p[s + 1]);
	if (!fmt || s + 4 > len || !is_digit(p[s + 2]) || !is_digit(p[s + 3]))
		return 0;
	unsigned ck = (p[s + 2] - '0') * 10u + (p[s + 3] - '0');
	if (ck < 2 || ck > 98)
		return 0;
	size_t pos = s + 4, count = 4;
	unsigned rem = 0;
	for (const char *f = fmt; *f;) {
		unsigned n = 0;
		while (*f >= '0' && *f <= '9')
			n = n * 10 + (unsigned)(*f++ - '0');
		char cls = *f++;
		for (unsigned k = 0; k < n; k++, count++) {
			if (count % 4 == 0 && pos + 1 < len && (p[pos] == ' ' || p[pos] == '-') && is_updig(p[pos + 1]))
				pos++;
			if (pos >= len)
				return 0;
			uint8_t c = p[pos++];
			if (cls == 'n' ? !is_digit(c) : cls == 'a' ? !is_upper(c) : !is_updig(c))
				return 0;
			unsigned v = iban_val(c);
			rem = (rem * (v > 9 ? 100 : 10) + v) % 97;
		}
	}
	if (pos < len && is_updig(p[pos]))
		return 0;
	rem = (rem * 100 + iban_val(p[s])) % 97;
	rem = (rem * 100 + iban_val(p[s + 1])) % 97;
	rem = (rem * 100 + ck) % 97;
	return rem == 1 ? pos : 0;
}

/* ---- IPv6 ---- */

/*
 * IPv6 from q (a hex digit or the first ':' of "::"): eight groups, or
 * fewer with one "::", the last two may be a dotted quad. Not after a word
 * character or ':' (the caller checks), not before one, nor before ':' or
 * ".digit" (Presidio's lookarounds). Bare "::" is not taken: Presidio
 * reports it at score 0.1 and it names no host.
 */
static size_t ipv6_at(const uint8_t *p, size_t len, size_t q)
{
	size_t pos = q;
	int groups = 0, dcolon = -1;
	if (p[pos] == ':') {
		if (pos + 1 >= len || p[pos + 1] != ':')
			return 0;
		dcolon = 0;
		pos += 2;
		if (pos >= len || !is_hex(p[pos]))
			return 0;
	}
	for (;;) {
		size_t n = run(p, len, pos, K_HEX, 5);
		if (n == 0 || n > 4)
			return 0;
		size_t v4 = groups <= 6 && pos + n < len && p[pos + n] == '.' ? ipv4_parse(p, len, pos) : 0;
		if (v4) {
			groups += 2;
			pos = v4;
			break;
		}
		groups++;
		pos += n;
		if (groups > 8 || pos + 1 >= len || p[pos] != ':')
			break;
		if (p[pos + 1] == ':') {
			if (dcolon >= 0)
				return 0;
			dcolon = groups;
			pos += 2;
			if (pos >= len || !is_hex(p[pos]))
				break;
		} else if (is_hex(p[pos + 1]))
			pos++;
		else
			break;
	}
	if (dcolon < 0 ? groups != 8 : groups > 7)
		return 0;
	if (pos < len && (is_word(p[pos]) || p[pos] == ':' || (p[pos] == '.' && pos + 1 < len && is_hex(p[pos + 1]))))
		return 0;
	return pos;
}

/* ---- email ---- */

static bool tld_ok(const uint8_t *t, size_t n)
{
	if (n < 2 || n > 63)
		return false;
	char low[8];
	for (size_t k = 0; k < n; k++) {
		if (!(kind[t[k]] & (K_UPPER | K_LOWER)))
			return false;
		if (k < sizeof(low))
			low[k] = (char)(t[k] | 0x20);
	}
	if (n > 5)
		return true;
	/* File names such as "icon@2x.png": tldextract finds no public suffix there. */
	static const char *const ext[] = {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff",
		"pdf", "txt", "htm", "html", "css", "js", "ts", "json", "xml", "csv", "tsv", "log", "php", "exe", "dll",
		"tar", "tgz", "yaml", "yml", "sql", "bak", "tmp"};
	for (size_t k = 0; k < sizeof(ext) / sizeof(ext[0]); k++)
		if (strlen(ext[k]) == n && !memcmp(low, ext[k], n))
			return false;
	return true;
}

/*
 * EMAIL_ADDRESS around the '@' at i: Presidio's pattern (a local part of
 * \w and !#$%&'*+-/=?^_`{|}~ with inner dots, starting at a word boundary;
 * a domain of at least two \w labels with inner hyphens) and, for
 * tldextract's public-suffix check, an alphabetic last label that is not a
 * file extension. ASCII only. The local walk stops at the previous '@', so
 * no byte is walked back twice.
 */
static bool email_at(const uint8_t *p, size_t len, size_t i, size_t *start, size_t *end)
{
	size_t b = i;
	while (b > 0 && is_local(p[b - 1]))
		b--;
	if (b == i || p[i - 1] == '.')
		return false;
	while (b < i && !is_word(p[b]))
		b++;
	if (b == i)
		return false;
	size_t pos = i + 1, last = 0, dom_end = 0;
	int labels = 0;
	while (pos < len && is_word(p[pos])) {
		size_t ls = pos;
		for (;;) {
			pos += run(p, len, pos, K_WORD, SIZE_MAX);
			size_t h = pos;
			while (h < len && p[h] == '-')
				h++;
			if (h == pos || h >= len || !is_word(p[h]))
				break;
			pos = h;
		}
		labels++;
		last = ls;
		dom_end = pos;
		if (pos + 1 < len && p[pos] == '.' && is_word(p[pos + 1]))
			pos++;
		else
			break;
	}
	if (labels < 2 || !tld_ok(p + last, dom_end - last))
		return false;
	*start = b;
	*end = dom_end;
	return true;
}

/* ---- secrets ---- */

/* A secret's prefix may start here: at the value's start or after a non-word byte. */
static inline bool word_start(const uint8_t *p, size_t i)
{
	return i == 0 || !is_word(p[i - 1]);
}

/*
 * PRIVATE_KEY at the '-' at i: "-----BEGIN <label>-----" where the label (capitals,
 * digits, spaces) holds "PRIVATE KEY" (RSA, EC, DSA, OPENSSH, ENCRYPTED,
 * PGP ... BLOCK), through the end of the next "-----END ...-----" line, or
 * to the end of the value when there is none (a truncated key is still a
 * key).
 */
static size_t private_key_at(const uint8_t *p, size_t len, size_t i)
{
	if (!has(p, len, i, "-----BEGIN ", 11))
		return 0;
	size_t pos = i + 11;
	size_t n = 0;
	while (pos + n < len && n < 64 && (is_upper(p[pos + n]) || is_digit(p[pos + n]) || p[pos + n] == ' '))
		n++;
	if (!has(p, len, pos + n, "-----", 5) || !memmem(p + pos, n, "PRIVATE KEY", 11))
		return 0;
	pos += n + 5;
	const uint8_t *end = memmem(p + pos, len - pos, "-----END ", 9);
	if (!end)
		return len;
	pos = (size_t)(end - p) + 9;
	n = 0;
	while (pos + n < len && n < 64 && (is_upper(p[pos + n]) || is_digit(p[pos + n]) || p[pos + n] == ' '))
		n++;
	return has(p, len, pos + n, "-----", 5) ? pos + n + 5 : pos + n;
}

/* Slack "xox[baprs]-" and OpenAI-style "sk-" keys, at the '-' at i. Returns the end, *start set. */
static size_t dash_key_at(const uint8_t *p, size_t len, size_t i, size_t *start)
{
	if (i >= 4 && !memcmp(p + i - 4, "xox", 3) && memchr("baprs", p[i - 1], 5) && word_start(p, i - 4)) {
		size_t n = run(p, len, i + 1, K_DIGIT | K_UPPER | K_LOWER, SIZE_MAX);
		size_t e = i + 1;
		/* xoxb-123-456-abc: alnum runs joined by dashes */
		while (n > 0) {
			e += n;
			if (e + 1 < len && p[e] == '-' && is_alnum(p[e + 1]))
				n = run(p, len, e + 1, K_DIGIT | K_UPPER | K_LOWER, SIZE_MAX) + 1;
			else
				break;
		}
		if (e - (i + 1) >= 10) {
			*start = i - 4;
			return e;
		}
		return 0;
	}
	if (i >= 2 && p[i - 2] == 's' && p[i - 1] == 'k' && word_start(p, i - 2)) {
		size_t n = run(p, len, i + 1, K_B64U, SIZE_MAX);
		if (n >= 32) {
			*start = i - 2;
			return i + 1 + n;
		}
	}
	return 0;
}

static const char *const gh_prefixes[] = {"ghp", "gho", "ghu", "ghs", "ghr"};

/* GitHub "gh?_" (36 alnum) and "github_pat_", Stripe "sk_live_"/"rk_live_", at the '_' at i. */
static size_t underscore_key_at(const uint8_t *p, size_t len, size_t i, size_t *start)
{
	if (i >= 3 && word_start(p, i - 3)) {
		for (size_t k = 0; k < sizeof(gh_prefixes) / sizeof(gh_prefixes[0]); k++) {
			if (memcmp(p + i - 3, gh_prefixes[k], 3))
				continue;
			size_t n = run(p, len, i + 1, K_DIGIT | K_UPPER | K_LOWER, SIZE_MAX);
			if (n >= 36) {
				*start = i - 3;
				return i + 1 + n;
			}
			return 0;
		}
	}
	if (i >= 6 && !memcmp(p + i - 6, "github", 6) && has(p, len, i + 1, "pat_", 4) && word_start(p, i - 6)) {
		size_t n = run(p, len, i + 5, K_WORD, SIZE_MAX);
		if (n >= 22) {
			*start = i - 6;
			return i + 5 + n;
		}
		return 0;
	}
	if (i >= 2 && (p[i - 2] == 's' || p[i - 2] == 'r') && p[i - 1] == 'k' && has(p, len, i + 1, "live_", 5) &&
		word_start(p, i - 2)) {
		size_t n = run(p, len, i + 6, K_DIGIT | K_UPPER | K_LOWER, SIZE_MAX);
		if (n >= 10) {
			*start = i - 2;
			return i + 6 + n;
		}
	}
	return 0;
}

/* AWS "AKIA"/"ASIA" + 16 capitals or digits, Google "AIza" + 35 base64url, at the 'A' at i. */
static size_t a_key_at(const uint8_t *p, size_t len, size_t i)
{
	if (!word_start(p, i) || i + 20 > len)
		return 0;
	if (has(p, len, i, "AKIA", 4) || has(p, len, i, "ASIA", 4)) {
		if (run(p, len, i + 4, K_DIGIT | K_UPPER, 16) == 16 && (i + 20 == len || !is_alnum(p[i + 20])))
			return i + 20;
		return 0;
	}
	if (has(p, len, i, "AIza", 4) && run(p, len, i + 4, K_B64U, 36) == 35)
		return i + 39;
	return 0;
}

/*
 * JWT at the 'J' of "eyJ" at i: header (>= 10 base64url, '{"' encoded),
 * '.', payload (>= 2), '.', signature (may be empty: alg "none"); a JWE's
 * two further segments are taken too.
 */
static size_t jwt_at(const uint8_t *p, size_t len, size_t i, size_t *start)
{
	if (i < 2 || p[i - 2] != 'e' || p[i - 1] != 'y' || (i >= 3 && is_b64u(p[i - 3])))
		return 0;
	size_t s = i - 2;
	size_t pos = s + run(p, len, s, K_B64U, SIZE_MAX);
	if (pos - s < 10 || pos >= len || p[pos] != '.')
		return 0;
	size_t n = run(p, len, pos + 1, K_B64U, SIZE_MAX);
	if (n < 2 || pos + 1 + n >= len || p[pos + 1 + n] != '.')
		return 0;
	pos += 1 + n + 1;
	pos += run(p, len, pos, K_B64U, SIZE_MAX);
	for (int k = 0; k < 2 && pos + 1 < len && p[pos] == '.' && is_b64u(p[pos + 1]); k++)
		pos += 1 + run(p, len, pos + 1, K_B64U, SIZE_MAX);
	*start = s;
	return pos;
}

/* ---- the scan ---- */

struct hit {
	size_t start, end;
	int ent;
};

static inline void take(struct hit *h, size_t s, size_t e, int ent)
{
	if (e > s && e - s > h->end - h->start) {
		h->start = s;
		h->end = e;
		h->ent = ent;
	}
}

/* The first digit of a digit run at i: every numeric entity; the longest find wins. */
static void at_digit(unsigned mask, const uint8_t *p, size_t len, size_t i, struct hit *h)
{
	if ((mask & GW_ENT_BIT(GW_ENT_IBAN_CODE)) && i >= 2 && is_upper(p[i - 2]) && is_upper(p[i - 1])) {
		size_t e = iban_at(p, len, i - 2);
		if (e) {
			take(h, i - 2, e, GW_ENT_IBAN_CODE);
			return;
		}
	}
	if (!num_left_ok(p, i, false))
		return;
	/* Most numbers in text are short and stand alone: nothing numeric is under 9 digits unless grouped. */
	size_t n = run(p, len, i, K_DIGIT, 20);
	if (n < 9 && !(i + n + 1 < len && (p[i + n] == ' ' || p[i + n] == '-' || p[i + n] == '.') &&
			(is_digit(p[i + n + 1]) || p[i + n + 1] == '(')))
		return;
	if (mask & GW_ENT_BIT(GW_ENT_IP_ADDRESS))
		take(h, i, ipv4_at(p, len, i), GW_ENT_IP_ADDRESS);
	if (!num_left_ok(p, i, true))
		return;
	if (mask & GW_ENT_BIT(GW_ENT_CREDIT_CARD))
		take(h, i, card_at(p, len, i), GW_ENT_CREDIT_CARD);
	if (mask & GW_ENT_BIT(GW_ENT_US_SSN))
		take(h, i, ssn_at(p, len, i), GW_ENT_US_SSN);
	if (mask & GW_ENT_BIT(GW_ENT_PHONE_NUMBER))
		take(h, i, phone_at(p, len, i), GW_ENT_PHONE_NUMBER);
}

/* The ':' at i: the first colon of an IPv6 address? */
static void at_colon(const uint8_t *p, size_t len, size_t i, struct hit *h)
{
	size_t q;
	if (i + 1 < len && p[i + 1] == ':' && (i == 0 || !(is_word(p[i - 1]) || p[i - 1] == ':')))
		q = i;
	else {
		q = i;
		while (q > 0 && i - q < 5 && is_hex(p[q - 1]))
			q--;
		if (q == i || i - q > 4 || (q > 0 && (is_word(p[q - 1]) || p[q - 1] == ':')))
			return;
	}
	take(h, q, ipv6_at(p, len, q), GW_ENT_IP_ADDRESS);
}

size_t gw_detect(const gw_detector *d, const char *val, size_t len, struct gw_span *spans, size_t max)
{
	if (len > UINT32_MAX)
		return SIZE_MAX;
	if (!d || !val || len == 0)
		return 0;
	const uint8_t *p = (const uint8_t *)val;
	const uint8_t *trig = d->trig;
	unsigned mask = d->mask;
	struct out o = {.v = spans, .max = spans ? max : 0};
	size_t i = 0;
	for (;;) {
		/* Eight bytes per test while nothing triggers: most of a value is skipped here. */
		while (i + 8 <= len && !(trig[p[i]] | trig[p[i + 1]] | trig[p[i + 2]] | trig[p[i + 3]] | trig[p[i + 4]] |
			trig[p[i + 5]] | trig[p[i + 6]] | trig[p[i + 7]]))
			i += 8;
		while (i < len && !trig[p[i]])
			i++;
		if (i >= len)
			break;
		struct hit h = {0, 0, 0};
		size_t next = i + 1, s = 0, e = 0;
		switch (p[i]) {
		case '0' ... '9':
			at_digit(mask, p, len, i, &h);
			next = i + run(p, len, i, K_DIGIT, SIZE_MAX);
			break;
		case '@':
			if (email_at(p, len, i, &s, &e))
				take(&h, s, e, GW_ENT_EMAIL_ADDRESS);
			break;
		case ':':
			at_colon(p, len, i, &h);
			break;
		case '+':
		case '(':
			if (word_start(p, i) && i + 1 < len && is_digit(p[i + 1]))
				take(&h, i, phone_at(p, len, i), GW_ENT_PHONE_NUMBER);
			break;
		case '-':
			if (mask & GW_ENT_BIT(GW_ENT_PRIVATE_KEY))
				take(&h, i, private_key_at(p, len, i), GW_ENT_PRIVATE_KEY);
			if (!h.end && (mask & GW_ENT_BIT(GW_ENT_API_KEY)) && (e = dash_key_at(p, len, i, &s)))
				take(&h, s, e, GW_ENT_API_KEY);
			break;
		case '_':
			if ((e = underscore_key_at(p, len, i, &s)))
				take(&h, s, e, GW_ENT_API_KEY);
			break;
		case 'A':
			take(&h, i, a_key_at(p, len, i), GW_ENT_API_KEY);
			break;
		case 'J':
			if ((e = jwt_at(p, len, i, &s)))
				take(&h, s, e, GW_ENT_JWT);
			break;
		}
		if (h.end) {
			add(&o, h.start, h.end, h.ent);
			if (h.end > next)
				next = h.end;
		}
		i = next;
	}
	return o.found;
}
