/*
 * Unit tests of core/clock: the TZif reader and footer rules (cross-checked
 * against glibc's localtime_r; TZ is set here only, the runner being
 * single-threaded, and restored), malformed files, windows, the policy clock.
 */
#include "../../tests/unit/unit.h"
#include "core/clock.h"
#include "core/util.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
	return (int64_t)timegm(&tm);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	*len = (size_t)st.st_size;
	uint8_t *p = malloc(*len ? *len : 1);
	CHECK(p && read(fd, p, *len) == (ssize_t)*len);
	close(fd);
	return p;
}

/* TZ for glibc, saved and restored around a cross-check. */
static char *saved_tz;
static bool saved_tz_set;

static void glibc_tz(const char *tz)
{
	if (!saved_tz_set) {
		const char *o = getenv("TZ");
		saved_tz = o ? strdup(o) : NULL;
		saved_tz_set = true;
	}
	CHECK(setenv("TZ", tz, 1) == 0);
	tzset();
}

static void glibc_tz_restore(void)
{
	if (saved_tz)
		setenv("TZ", saved_tz, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved_tz);
	saved_tz = NULL;
	saved_tz_set = false;
}

static void glibc_local(int64_t t, struct tm *out)
{
	time_t tt = (time_t)t;
	CHECK(localtime_r(&tt, out) != NULL);
}

static bool same_tm(const struct tm *a, const struct tm *b)
{
	return a->tm_sec == b->tm_sec && a->tm_min == b->tm_min && a->tm_hour == b->tm_hour &&
		a->tm_mday == b->tm_mday && a->tm_mon == b->tm_mon && a->tm_year == b->tm_year &&
		a->tm_wday == b->tm_wday && a->tm_yday == b->tm_yday && a->tm_isdst == b->tm_isdst &&
		a->tm_gmtoff == b->tm_gmtoff && a->tm_zone && b->tm_zone && !strcmp(a->tm_zone, b->tm_zone);
}

static void print_tm(const char *who, const struct tm *t)
{
	fprintf(stderr, "       %-6s %04d-%02d-%02d %02d:%02d:%02d wday %d yday %d dst %d off %ld %s\n", who,
		t->tm_year + 1900, t->tm_mon + 1, t->tm_mday, t->tm_hour, t->tm_min, t->tm_sec, t->tm_wday, t->tm_yday,
		t->tm_isdst, t->tm_gmtoff, t->tm_zone ? t->tm_zone : "(null)");
}

/* ours == reference at t; the reference is glibc (ref == NULL) or another zone. */
static int mismatches;
static void check_at(const gw_tz *tz, const gw_tz *ref, int64_t t)
{
	struct tm a, b;
	CHECK(gw_tz_local(tz, t, &a) == 0);
	if (ref)
		CHECK(gw_tz_local(ref, t, &b) == 0);
	else
		glibc_local(t, &b);
	if (same_tm(&a, &b))
		return;
	if (mismatches++ < 5) {
		fprintf(stderr, "     %s at %lld:\n", gw_tz_name(tz), (long long)t);
		print_tm("ours", &a);
		print_tm(ref ? "ref" : "glibc", &b);
	}
}

/* (offset, isdst, abbreviation) changes at t? */
static bool key_eq(const struct tm *a, const struct tm *b)
{
	return a->tm_gmtoff == b->tm_gmtoff && a->tm_isdst == b->tm_isdst && !strcmp(a->tm_zone, b->tm_zone);
}

static void local_of(const gw_tz *tz, const gw_tz *ref, bool use_ref, int64_t t, struct tm *out)
{
	if (!use_ref)
		CHECK(gw_tz_local(tz, t, out) == 0);
	else if (ref)
		CHECK(gw_tz_local(ref, t, out) == 0);
	else
		glibc_local(t, out);
}

/*
 * Compare tz with the reference every step seconds over [from, to); wherever
 * either side changes offset between two samples, bisect to the exact second
 * and compare one second either side. Returns the changes seen.
 */
static int sweep(const gw_tz *tz, const gw_tz *ref, int64_t from, int64_t to, int64_t step)
{
	int changes = 0;
	struct tm prev[2], cur[2];
	local_of(tz, ref, false, from, &prev[0]);
	local_of(tz, ref, true, from, &prev[1]);
	for (int64_t t = from; t < to; t += step) {
		check_at(tz, ref, t);
		int64_t nt = t + step;
		local_of(tz, ref, false, nt, &cur[0]);
		local_of(tz, ref, true, nt, &cur[1]);
		for (int side = 0; side < 2; side++) {
			if (key_eq(&prev[side], &cur[side]))
				continue;
			int64_t lo = t, hi = nt; /* key(lo) == prev, key(hi) != prev */
			while (hi - lo > 1) {
				int64_t mid = lo + (hi - lo) / 2;
				struct tm m;
				local_of(tz, ref, side, mid, &m);
				if (key_eq(&m, &prev[side]))
					lo = mid;
				else
					hi = mid;
			}
			for (int64_t d = -2; d <= 1; d++)
				check_at(tz, ref, hi + d);
			changes++;
		}
		prev[0] = cur[0];
		prev[1] = cur[1];
	}
	return changes;
}

/* ---- a TZif writer, for slim, v1 and broken files ---- */

typedef struct {
	uint8_t b[4096];
	size_t n;
} tzw;

static void put8(tzw *w, uint8_t v)
{
	CHECK(w->n < sizeof(w->b));
	w->b[w->n++] = v;
}

static void put32(tzw *w, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		put8(w, (uint8_t)(v >> (i * 8)));
}

typedef struct {
	int32_t off;
	int dst;
	const char *abbr;
} ut_type;

static void put_block(tzw *w, char version, int tsize, const int64_t *trans, const uint8_t *idx, int n,
	const ut_type *types, int ntypes)
{
	char chars[256];
	size_t cl = 0;
	uint8_t ai[16];
	for (int i = 0; i < ntypes; i++) {
		ai[i] = (uint8_t)cl;
		size_t l = strlen(types[i].abbr) + 1;
		memcpy(chars + cl, types[i].abbr, l);
		cl += l;
	}
	for (const char *m = "TZif"; *m; m++)
		put8(w, (uint8_t)*m);
	put8(w, (uint8_t)version);
	for (int i = 0; i < 15; i++)
		put8(w, 0);
	put32(w, (uint32_t)ntypes); /* isutcnt */
	put32(w, (uint32_t)ntypes); /* isstdcnt */
	put32(w, 0);
	put32(w, (uint32_t)n);
	put32(w, (uint32_t)ntypes);
	put32(w, (uint32_t)cl);
	for (int i = 0; i < n; i++) {
		if (tsize == 8)
			put32(w, (uint32_t)((uint64_t)trans[i] >> 32));
		put32(w, (uint32_t)trans[i]);
	}
	for (int i = 0; i < n; i++)
		put8(w, idx[i]);
	for (int i = 0; i < ntypes; i++) {
		put32(w, (uint32_t)types[i].off);
		put8(w, (uint8_t)types[i].dst);
		put8(w, ai[i]);
	}
	for (size_t i = 0; i < cl; i++)
		put8(w, (uint8_t)chars[i]);
	for (int i = 0; i < 2 * ntypes; i++)
		put8(w, 0);
}

/* A v2/v3 file (or v1 when version is 0: no footer). */
static void build(tzw *w, char version, const int64_t *trans, const uint8_t *idx, int n, const ut_type *types,
	int ntypes, const char *footer)
{
	w->n = 0;
	put_block(w, version, 4, trans, idx, n, types, ntypes);
	if (version == 0)
		return;
	put_block(w, version, 8, trans, idx, n, types, ntypes);
	put8(w, '\n');
	for (const char *f = footer; *f; f++)
		put8(w, (uint8_t)*f);
	put8(w, '\n');
}

/* A slim zone: no transitions at all, only a type and the footer. */
static gw_tz *slim(const char *footer)
{
	tzw w;
	ut_type t0 = {0, 0, "XXX"};
	build(&w, '3', NULL, NULL, 0, &t0, 1, footer);
	char err[256] = "";
	gw_tz *tz = gw_tz_parse(footer, w.b, w.n, err, sizeof(err));
	if (!tz)
		fprintf(stderr, "     %s\n", err);
	CHECK(tz != NULL);
	return tz;
}

/* ---- time zones ---- */

GW_TEST(tz_utc_builtin)
{
	const char *names[] = {"UTC", "Etc/UTC", "Z"};
	for (size_t i = 0; i < 3; i++) {
		char err[256];
		gw_tz *tz = gw_tz_load(names[i], err, sizeof(err));
		CHECK(tz && !strcmp(gw_tz_name(tz), names[i]));
		for (int64_t t = -5000000000LL; t < 5000000000LL; t += 7777777) {
			struct tm a, b;
			time_t tt = (time_t)t;
			CHECK(gw_tz_local(tz, t, &a) == 0 && gmtime_r(&tt, &b));
			CHECK(a.tm_year == b.tm_year && a.tm_yday == b.tm_yday && a.tm_mon == b.tm_mon &&
				a.tm_mday == b.tm_mday && a.tm_wday == b.tm_wday && a.tm_hour == b.tm_hour &&
				a.tm_min == b.tm_min && a.tm_sec == b.tm_sec && a.tm_gmtoff == 0 && !a.tm_isdst);
		}
		struct tm a;
		CHECK(gw_tz_local(tz, INT64_MAX, &a) == -1 && gw_tz_local(tz, INT64_MIN, &a) == -1);
		gw_tz_free(tz);
	}
	gw_tz_free(NULL);
}

/* Every zone the brief names, and the zones with odd footers, 1970..2100. */
GW_TEST(tz_matches_glibc)
{
	static const struct {
		const char *name;
		int min_changes; /* changes seen 1970..2100, by each side, summed */
	} zones[] = {
		{"Europe/Berlin", 480},
		{"America/New_York", 520},
		{"Australia/Lord_Howe", 470},  /* 30-minute DST */
		{"Asia/Kolkata", 0},           /* no change since 1945 */
		{"Pacific/Chatham", 500},      /* +12:45, rules at 2:45 and 3:45 */
		{"America/Sao_Paulo", 130},    /* DST until 2019, none in the footer */
		{"Europe/Dublin", 510},        /* negative DST: winter is "daylight" time */
		{"UTC", 0},
		{"America/Nuuk", 470},         /* footer M3.5.0/-1 (v3 negative time) */
		{"Asia/Jerusalem", 470},       /* footer M3.4.4/26 (v3 time past 24h) */
		{"America/Santiago", 510},     /* footer M9.1.6/24 */
		{"Antarctica/Troll", 380},     /* +00 / +02 */
		{"Africa/Casablanca", 370},    /* Ramadan transitions listed to 2087 */
		{"Australia/Adelaide", 510},
		{"America/St_Johns", 520},     /* -3:30 */
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(zones); i++) {
		char err[256] = "", env[128];
		gw_tz *tz = gw_tz_load(zones[i].name, err, sizeof(err));
		if (!tz)
			fprintf(stderr, "     %s\n", err);
		CHECK(tz != NULL);
		snprintf(env, sizeof(env), ":%s", zones[i].name);
		glibc_tz(env);
		mismatches = 0;
		/* six-hourly samples with a wandering second, then bisection */
		int changes = sweep(tz, NULL, utc(1970, 1, 1, 0, 0, 0), utc(2100, 12, 31, 0, 0, 0), 6 * 3600 + 37);
		/* the wider range, sparsely */
		for (int64_t t = utc(1890, 1, 1, 0, 0, 0); t < utc(2400, 1, 1, 0, 0, 0); t += 86400 * 3 + 4321)
			check_at(tz, NULL, t);
		glibc_tz_restore();
		if (mismatches || changes < zones[i].min_changes)
			fprintf(stderr, "     %s: %d mismatches, %d changes\n", zones[i].name, mismatches, changes);
		CHECK(mismatches == 0);
		CHECK(changes >= zones[i].min_changes);
		gw_tz_free(tz);
	}
}

/* Footer rules alone (a slim file) against glibc reading the same TZ string. */
GW_TEST(tz_footer_forms_match_glibc)
{
	static const char *footers[] = {
		"CET-1CEST,M3.5.0,M10.5.0/3",
		"EST5EDT,M3.2.0,M11.1.0",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"IST-5:30",
		"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
		"<-03>3",
		"IST-1GMT0,M10.5.0,M3.5.0/1",
		"UTC0",
		"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
		"IST-2IDT,M3.4.4/26,M10.5.0",
		"<-04>4<-03>,M9.1.6/24,M4.1.6/24",
		"<+00>0<+02>-2,M3.5.0/1,M10.5.0/3",
		"<+0330>-3:30<+0430>,J79/24,J263/24",
		"XST3XDT,J60/2,J300/2",
		"XST3XDT,59/2,299/2",
		"XST-3XDT-4:30:15,J2/0,J364/23",
		"ABC+4:30DEF,M1.2.0/-20,M12.3.6/100",
		"ABC-14DEF-13,M2.5.2/-167,M11.4.3/167",
		"<-1130>+11:30<+1230>-12:30,M9.5.0/2:45:30,M4.1.0/3",
		"HST10",
		"NZST-12NZDT,M9.5.0,M4.1.0/3",
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(footers); i++) {
		gw_tz *tz = slim(footers[i]);
		glibc_tz(footers[i]);
		mismatches = 0;
		sweep(tz, NULL, utc(1971, 1, 1, 0, 0, 0), utc(2101, 1, 1, 0, 0, 0), 86400 + 3607);
		glibc_tz_restore();
		if (mismatches)
			fprintf(stderr, "     footer %s: %d mismatches\n", footers[i], mismatches);
		CHECK(mismatches == 0);
		gw_tz_free(tz);
	}
}

/* Forms glibc reads differently, or not at all: checked by hand. */
GW_TEST(tz_footer_edge_forms)
{
	struct tm tm;
	/* all-year DST (RFC 8536 3.3.1): DST ends as the next year's starts */
	gw_tz *tz = slim("EST5EDT4,0/0,J365/25");
	for (int64_t t = utc(1999, 12, 25, 0, 0, 0); t < utc(2001, 1, 10, 0, 0, 0); t += 1800) {
		CHECK(gw_tz_local(tz, t, &tm) == 0);
		CHECK(tm.tm_isdst == 1 && tm.tm_gmtoff == -4 * 3600 && !strcmp(tm.tm_zone, "EDT"));
	}
	gw_tz_free(tz);
	/*
	 * Zero-based day 365 is Jan 1 of the next year in a common year, so DST
	 * runs past New Year. glibc decides on the rules of t's UTC year alone
	 * and misses that; we look at the year before too.
	 */
	tz = slim("XST3XDT,0/5,365/5");
	CHECK(gw_tz_local(tz, utc(1971, 1, 1, 0, 0, 0), &tm) == 0 && tm.tm_isdst && tm.tm_gmtoff == -7200);
	CHECK(gw_tz_local(tz, utc(1971, 1, 1, 6, 59, 59), &tm) == 0 && tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1971, 1, 1, 7, 0, 0), &tm) == 0 && !tm.tm_isdst && tm.tm_gmtoff == -10800);
	CHECK(gw_tz_local(tz, utc(1971, 1, 1, 7, 59, 59), &tm) == 0 && !tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1971, 1, 1, 8, 0, 0), &tm) == 0 && tm.tm_isdst);
	/* 1972 is a leap year: day 365 is Dec 31 */
	CHECK(gw_tz_local(tz, utc(1972, 12, 31, 6, 59, 59), &tm) == 0 && tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1972, 12, 31, 7, 0, 0), &tm) == 0 && !tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1973, 1, 1, 7, 59, 59), &tm) == 0 && !tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1973, 1, 1, 8, 0, 0), &tm) == 0 && tm.tm_isdst);
	gw_tz_free(tz);
	/* a start before New Year in UTC: year Y's DST begins at Dec 31 21:00 UTC of Y-1 */
	tz = slim("XST-3XDT-4:30:15,J1/0,J365/23");
	CHECK(gw_tz_local(tz, utc(1973, 12, 31, 18, 29, 44), &tm) == 0 && tm.tm_isdst && tm.tm_gmtoff == 16215);
	CHECK(gw_tz_local(tz, utc(1973, 12, 31, 18, 29, 45), &tm) == 0 && !tm.tm_isdst && tm.tm_gmtoff == 10800);
	CHECK(gw_tz_local(tz, utc(1973, 12, 31, 20, 59, 59), &tm) == 0 && !tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1973, 12, 31, 21, 0, 0), &tm) == 0 && tm.tm_isdst);
	CHECK(tm.tm_year == 74 && tm.tm_yday == 0 && tm.tm_hour == 1 && tm.tm_min == 30 && tm.tm_sec == 15);
	gw_tz_free(tz);
	/* 100 hours after the last Saturday of December is in January: DST until then */
	tz = slim("ABC+4:30DEF,M1.1.0/-20,M12.5.6/100");
	CHECK(gw_tz_local(tz, utc(1973, 1, 1, 0, 0, 0), &tm) == 0 && tm.tm_isdst && tm.tm_gmtoff == -12600);
	CHECK(gw_tz_local(tz, utc(1973, 1, 3, 7, 29, 59), &tm) == 0 && tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1973, 1, 3, 7, 30, 0), &tm) == 0 && !tm.tm_isdst && tm.tm_gmtoff == -16200);
	CHECK(gw_tz_local(tz, utc(1973, 1, 6, 8, 29, 59), &tm) == 0 && !tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(1973, 1, 6, 8, 30, 0), &tm) == 0 && tm.tm_isdst); /* Sun Jan 7 minus 20 h */
	gw_tz_free(tz);
	/* DST without rules: the US rules, DST one hour ahead of standard */
	tz = slim("EST5EDT");
	CHECK(gw_tz_local(tz, utc(2026, 3, 8, 6, 59, 59), &tm) == 0 && tm.tm_gmtoff == -5 * 3600);
	CHECK(gw_tz_local(tz, utc(2026, 3, 8, 7, 0, 0), &tm) == 0 && tm.tm_gmtoff == -4 * 3600 && tm.tm_isdst);
	CHECK(gw_tz_local(tz, utc(2026, 11, 1, 5, 59, 59), &tm) == 0 && tm.tm_gmtoff == -4 * 3600);
	CHECK(gw_tz_local(tz, utc(2026, 11, 1, 6, 0, 0), &tm) == 0 && tm.tm_gmtoff == -5 * 3600 && !tm.tm_isdst);
	gw_tz_free(tz);
	/* a quoted name with a + and digits, and a positive offset with a + */
	tz = slim("<+0545>-5:45");
	CHECK(gw_tz_local(tz, 0, &tm) == 0 && tm.tm_gmtoff == 5 * 3600 + 45 * 60 && !strcmp(tm.tm_zone, "+0545"));
	CHECK(tm.tm_hour == 5 && tm.tm_min == 45);
	gw_tz_free(tz);
	tz = slim("ABC+3");
	CHECK(gw_tz_local(tz, 0, &tm) == 0 && tm.tm_gmtoff == -3 * 3600 && tm.tm_hour == 21 && tm.tm_wday == 3);
	gw_tz_free(tz);
	/* far years still work, and the calendar agrees with glibc's gmtime */
	tz = slim("CET-1CEST,M3.5.0,M10.5.0/3");
	CHECK(gw_tz_local(tz, utc(9999, 7, 1, 12, 0, 0), &tm) == 0 && tm.tm_year == 9999 - 1900 && tm.tm_isdst);
	CHECK(gw_tz_local(tz, -62135596800LL, &tm) == 0 && tm.tm_year == 1 - 1900 && tm.tm_mon == 0 && tm.tm_mday == 1);
	CHECK(tm.tm_hour == 1 && tm.tm_wday == 1); /* 0001-01-01 was a Monday (proleptic Gregorian) */
	gw_tz_free(tz);
}

/* Slim files stop listing transitions early: the footer must carry on exactly. */
GW_TEST(tz_slim_matches_fat)
{
	static const struct {
		const char *zone, *footer;
		int from_year;
	} cases[] = {
		{"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3", 1997},
		{"America/New_York", "EST5EDT,M3.2.0,M11.1.0", 2008},
		{"Australia/Lord_Howe", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 2009},
		{"Pacific/Chatham", "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45", 2009},
		{"Europe/Dublin", "IST-1GMT0,M10.5.0,M3.5.0/1", 1997},
		{"America/Sao_Paulo", "<-03>3", 2020},
		{"Asia/Kolkata", "IST-5:30", 1946},
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
		char err[256];
		gw_tz *fat = gw_tz_load(cases[i].zone, err, sizeof(err));
		CHECK(fat != NULL);
		gw_tz *tz = slim(cases[i].footer);
		mismatches = 0;
		int changes = sweep(tz, fat, utc(cases[i].from_year, 1, 1, 0, 0, 0), utc(2100, 1, 1, 0, 0, 0), 6 * 3600 + 11);
		if (mismatches)
			fprintf(stderr, "     slim %s: %d mismatches\n", cases[i].zone, mismatches);
		CHECK(mismatches == 0 && changes >= 0);
		gw_tz_free(tz);
		gw_tz_free(fat);
	}
}

/* A few transitions, then the footer: the hand-over at the last transition. */
GW_TEST(tz_table_then_footer)
{
	const ut_type types[] = {{3600, 0, "CET"}, {7200, 1, "CEST"}};
	const int64_t trans[] = {utc(2020, 3, 29, 1, 0, 0), utc(2020, 10, 25, 1, 0, 0)};
	const uint8_t idx[] = {1, 0};
	tzw w;
	char err[256];
	build(&w, '2', trans, idx, 2, types, 2, "CET-1CEST,M3.5.0,M10.5.0/3");
	gw_tz *tz = gw_tz_parse("test/Berlin", w.b, w.n, err, sizeof(err));
	gw_tz *fat = gw_tz_load("Europe/Berlin", err, sizeof(err));
	CHECK(tz && fat && !strcmp(gw_tz_name(tz), "test/Berlin"));
	mismatches = 0;
	CHECK(sweep(tz, fat, utc(2020, 1, 1, 0, 0, 0), utc(2100, 1, 1, 0, 0, 0), 3 * 3600 + 1) >= 300);
	CHECK(mismatches == 0);
	gw_tz_free(tz);

	/* empty footer: the last type holds for ever; before the first, type 0 */
	const ut_type t3[] = {{-3600, 0, "AAA"}, {7200, 1, "BBB"}, {0, 0, "CCC"}};
	build(&w, '2', trans, (const uint8_t[]){1, 2}, 2, t3, 3, "");
	tz = gw_tz_parse("x", w.b, w.n, err, sizeof(err));
	CHECK(tz != NULL);
	struct tm tm;
	CHECK(gw_tz_local(tz, trans[0] - 1, &tm) == 0 && tm.tm_gmtoff == -3600 && !strcmp(tm.tm_zone, "AAA"));
	CHECK(gw_tz_local(tz, trans[0], &tm) == 0 && tm.tm_gmtoff == 7200 && tm.tm_isdst);
	CHECK(gw_tz_local(tz, trans[1] - 1, &tm) == 0 && tm.tm_gmtoff == 7200);
	CHECK(gw_tz_local(tz, trans[1], &tm) == 0 && tm.tm_gmtoff == 0 && !strcmp(tm.tm_zone, "CCC"));
	CHECK(gw_tz_local(tz, utc(2090, 6, 1, 0, 0, 0), &tm) == 0 && tm.tm_gmtoff == 0);
	gw_tz_free(tz);

	/* version 1: 32-bit data only, no footer */
	build(&w, 0, trans, idx, 2, types, 2, NULL);
	tz = gw_tz_parse("v1", w.b, w.n, err, sizeof(err));
	CHECK(tz != NULL);
	CHECK(gw_tz_local(tz, trans[0] - 1, &tm) == 0 && tm.tm_gmtoff == 3600 && !tm.tm_isdst);
	CHECK(gw_tz_local(tz, trans[0], &tm) == 0 && tm.tm_gmtoff == 7200 && !strcmp(tm.tm_zone, "CEST"));
	CHECK(gw_tz_local(tz, utc(2031, 7, 1, 0, 0, 0), &tm) == 0 && tm.tm_gmtoff == 3600);
	gw_tz_free(tz);
	gw_tz_free(fat);
}

static bool parse_fails(const void *p, size_t n, const char *want)
{
	char err[256] = "";
	gw_tz *tz = gw_tz_parse("bad", p, n, err, sizeof(err));
	if (tz) {
		gw_tz_free(tz);
		return false;
	}
	if (want && !strstr(err, want)) {
		fprintf(stderr, "     got \"%s\", want \"%s\"\n", err, want);
		return false;
	}
	return true;
}

/* Hand-broken files: each is refused with a reason, never read past its end. */
GW_TEST(tz_malformed_refused)
{
	const ut_type types[] = {{3600, 0, "CET"}, {7200, 1, "CEST"}};
	const int64_t trans[] = {utc(2020, 3, 29, 1, 0, 0), utc(2020, 10, 25, 1, 0, 0)};
	const uint8_t idx[] = {1, 0};
	tzw w, good;
	build(&good, '2', trans, idx, 2, types, 2, "CET-1CEST,M3.5.0,M10.5.0/3");
	size_t v2 = good.n - (44 + 2 * 9 + 2 * 6 + 9 + 4) - 28; /* offset of the second header */
	CHECK(!memcmp(good.b + v2, "TZif2", 5));
	/* the 64-bit block's counts: +20 isut +24 isstd +28 leap +32 time +36 type +40 char */
#define PATCH32(off, v) do { w = good; w.b[(off)] = (uint8_t)((v) >> 24); w.b[(off) + 1] = (uint8_t)((v) >> 16); \
		w.b[(off) + 2] = (uint8_t)((v) >> 8); w.b[(off) + 3] = (uint8_t)(v); } while (0)
	CHECK(parse_fails("", 0, "not a TZif file"));
	CHECK(parse_fails("TZif2", 5, "not a TZif file"));
	w = good;
	w.b[0] = 'X';
	CHECK(parse_fails(w.b, w.n, "not a TZif file"));
	w = good;
	w.b[4] = '9';
	CHECK(parse_fails(w.b, w.n, "unsupported TZif version"));
	PATCH32(v2 + 36, 0u);
	CHECK(parse_fails(w.b, w.n, "inconsistent counts"));
	PATCH32(v2 + 20, 1u);
	CHECK(parse_fails(w.b, w.n, "inconsistent counts"));
	PATCH32(v2 + 28, 1u);
	CHECK(parse_fails(w.b, w.n, "leap seconds"));
	PATCH32(v2 + 32, 0xffffffffu);
	CHECK(parse_fails(w.b, w.n, "truncated"));
	PATCH32(v2 + 40, 0xfffffff0u);
	CHECK(parse_fails(w.b, w.n, "truncated"));
	PATCH32(20, 0xffffffffu); /* the v1 block's isutcnt */
	CHECK(parse_fails(w.b, w.n, "truncated"));
	/* transitions out of order; a type index past the types; a bad offset; a bad designation index */
	const int64_t back[] = {trans[1], trans[0]};
	build(&w, '2', back, idx, 2, types, 2, "");
	CHECK(parse_fails(w.b, w.n, "out of order"));
	build(&w, '2', trans, (const uint8_t[]){1, 2}, 2, types, 2, "");
	CHECK(parse_fails(w.b, w.n, "missing local time type"));
	const ut_type far[] = {{3600, 0, "CET"}, {26 * 3600, 0, "BIG"}};
	build(&w, '2', trans, idx, 2, far, 2, "");
	CHECK(parse_fails(w.b, w.n, "bad local time type"));
	size_t types_at = v2 + 44 + 2 * 9; /* ttinfo of the 64-bit block */
	w = good;
	w.b[types_at + 5] = 200;
	CHECK(parse_fails(w.b, w.n, "bad local time type"));
	w = good;
	w.b[types_at + 4] = 2;
	CHECK(parse_fails(w.b, w.n, "bad local time type"));
	/* footers */
	static const char *bad_footers[] = {
		"CET", "CE-1", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.6.0,M10.5.0",
		"CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,J0,J365", "CET-1CEST,J1,J366", "CET-1CEST,0,366",
		"CET-1CEST,M3.5.0/168,M10.5.0", "CET-25", "CET-1:60", "<+03-3", "<+3>-3", "CET-1CEST,M3.5.0,M10.5.0 ",
		"CET-1CEST,M3.5.0,M10.5.0,", "CET-1:00:00:00", "CET-1CEST,M3.5.0/1:2:3:4,M10.5.0",
		"AVERYLONGNAMEOVERTHIRTYTWOCHARACTERSX-1",
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(bad_footers); i++) {
		build(&w, '2', trans, idx, 2, types, 2, bad_footers[i]);
		if (!parse_fails(w.b, w.n, "bad TZ string footer"))
			fprintf(stderr, "     footer accepted: %s\n", bad_footers[i]);
		CHECK(parse_fails(w.b, w.n, "bad TZ string footer"));
	}
	w = good;
	w.n--; /* no closing newline */
	CHECK(parse_fails(w.b, w.n, "unterminated TZ string footer"));
	w = good;
	w.n = w.n - strlen("CET-1CEST,M3.5.0,M10.5.0/3") - 2; /* no footer at all */
	CHECK(parse_fails(w.b, w.n, "missing TZ string footer"));
	char longf[200];
	memset(longf, 'A', sizeof(longf) - 1);
	longf[sizeof(longf) - 1] = '\0';
	build(&w, '2', trans, idx, 2, types, 2, longf);
	CHECK(parse_fails(w.b, w.n, "too long"));
	/* and the good one parses */
	char err[256];
	gw_tz *tz = gw_tz_parse("good", good.b, good.n, err, sizeof(err));
	CHECK(tz != NULL);
	gw_tz_free(tz);
#undef PATCH32
}

/* Every prefix of real files, and many byte flips: no crash, no overread. */
GW_TEST(tz_truncated_and_mutated)
{
	const char *paths[] = {GW_TZ_DIR "/Europe/Berlin", GW_TZ_DIR "/Pacific/Chatham", GW_TZ_DIR "/Etc/UTC"};
	uint32_t seed = 12345;
	for (size_t f = 0; f < GW_ARRAY_LEN(paths); f++) {
		size_t len;
		uint8_t *full = read_all(paths[f], &len);
		char err[256];
		for (size_t n = 0; n < len; n++) {
			/* an exact-size copy, so ASan sees any read past n */
			uint8_t *p = malloc(n ? n : 1);
			memcpy(p, full, n);
			gw_tz *tz = gw_tz_parse("t", p, n, err, sizeof(err));
			CHECK(tz == NULL); /* the footer's newline is the last byte */
			free(p);
		}
		uint8_t *p = malloc(len);
		for (int iter = 0; iter < 4000; iter++) {
			memcpy(p, full, len);
			for (int k = 0; k < 1 + iter % 4; k++) {
				seed = seed * 1103515245u + 12345u;
				size_t at = (seed >> 8) % len;
				seed = seed * 1103515245u + 12345u;
				p[at] = (uint8_t)(iter % 3 == 0 ? p[at] ^ (1u << (seed >> 29)) : seed >> 16);
			}
			gw_tz *tz = gw_tz_parse("t", p, len, err, sizeof(err));
			if (tz) {
				struct tm tm;
				for (int64_t t = -4000000000LL; t < 8000000000LL; t += 97654321)
					CHECK(gw_tz_local(tz, t, &tm) == 0 && tm.tm_zone != NULL);
				gw_tz_free(tz);
			}
		}
		free(p);
		free(full);
	}
}

GW_TEST(tz_load_names)
{
	char err[512];
	static const char *bad[] = {"../etc/passwd", "/etc/passwd", "Europe/../../etc/passwd", "Europe/Berlin;id",
		"Europe/Berlin.", "Europe Berlin", "", "Europe/Berlin\n", "~root"};
	for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		CHECK(gw_tz_load(bad[i], err, sizeof(err)) == NULL);
		CHECK(strstr(err, "invalid time zone name") != NULL);
	}
	char longname[400];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(gw_tz_load(longname, err, sizeof(err)) == NULL && strstr(err, "invalid time zone name"));
	CHECK(gw_tz_load("Europe/Berln", err, sizeof(err)) == NULL);
	CHECK(!strcmp(err, "unknown time zone \"Europe/Berln\" (no file /usr/share/zoneinfo/Europe/Berln)"));
	CHECK(gw_tz_load("Europe/Berlin/x", err, sizeof(err)) == NULL && strstr(err, "unknown time zone"));
	CHECK(gw_tz_load("Europe", err, sizeof(err)) == NULL && strstr(err, "is not a time zone file"));
	CHECK(gw_tz_load("right/Europe/Berlin", err, sizeof(err)) == NULL && strstr(err, "leap seconds"));
	gw_tz *tz = gw_tz_load("Europe/Berlin", NULL, 0);
	CHECK(tz != NULL);
	gw_tz_free(tz);
	CHECK(gw_tz_load("nope/nope", NULL, 0) == NULL); /* a NULL err is allowed */
	/* a right/ file's bytes are refused on their own too (leap second records) */
	if (access(GW_TZ_DIR "/right/Europe/Berlin", R_OK) == 0) {
		size_t len;
		uint8_t *p = read_all(GW_TZ_DIR "/right/Europe/Berlin", &len);
		CHECK(parse_fails(p, len, "leap seconds"));
		free(p);
	}
	/* other names of the same zone */
	tz = gw_tz_load("posix/Europe/Berlin", err, sizeof(err));
	if (access(GW_TZ_DIR "/posix/Europe/Berlin", R_OK) == 0)
		CHECK(tz != NULL);
	gw_tz_free(tz);
	tz = gw_tz_load("Etc/GMT+5", err, sizeof(err));
	struct tm tm;
	CHECK(tz && gw_tz_local(tz, 0, &tm) == 0 && tm.tm_gmtoff == -5 * 3600 && !strcmp(tm.tm_zone, "-05"));
	gw_tz_free(tz);
}

/* ---- windows ---- */

static gw_window *win(const char *spec)
{
	char err[512] = "";
	gw_window *w = gw_window_parse(spec, err, sizeof(err));
	if (!w)
		fprintf(stderr, "     %s: %s\n", spec, err);
	CHECK(w != NULL);
	return w;
}

static void parse_ok(const char *spec, const char *norm)
{
	gw_window *w = win(spec);
	if (strcmp(gw_window_str(w), norm))
		fprintf(stderr, "     \"%s\" -> \"%s\", want \"%s\"\n", spec, gw_window_str(w), norm);
	CHECK(!strcmp(gw_window_str(w), norm));
	gw_window_free(w);
}

GW_TEST(window_parse_ok)
{
	parse_ok("Mon-Fri 08:00-20:00 Europe/Berlin", "Mon-Fri 08:00-20:00 Europe/Berlin");
	parse_ok("Sat,Sun 10:00-14:00 UTC", "Sat,Sun 10:00-14:00 UTC");
	parse_ok("Mon,Wed-Fri 22:00-06:00 America/New_York", "Mon,Wed-Fri 22:00-06:00 America/New_York");
	parse_ok("daily 09:00-17:00 Asia/Kolkata", "daily 09:00-17:00 Asia/Kolkata");
	parse_ok("Mon-Sun 00:00-24:00", "Mon-Sun 00:00-24:00 UTC");
	parse_ok("  mon - fri   8:00 - 20:00   Europe/Berlin  ", "Mon-Fri 08:00-20:00 Europe/Berlin");
	parse_ok("FRI-MON 23:30-00:30 Z", "Fri-Mon 23:30-00:30 Z");
	parse_ok("Sat , sun 10:00-14:00", "Sat,Sun 10:00-14:00 UTC");
	parse_ok("DAILY 22:00-00:00 Etc/UTC", "daily 22:00-00:00 Etc/UTC");
	parse_ok("Tue\t12:00-13:00\tPacific/Chatham", "Tue 12:00-13:00 Pacific/Chatham");
	gw_window_free(NULL);
}

static void parse_err(const char *spec, const char *want)
{
	char err[512] = "";
	gw_window *w = gw_window_parse(spec, err, sizeof(err));
	if (w || !strstr(err, want) || strchr(err, '\n'))
		fprintf(stderr, "     \"%s\": got \"%s\", want \"%s\"\n", spec, w ? "(parsed)" : err, want);
	CHECK(w == NULL && strstr(err, want) && !strchr(err, '\n'));
}

GW_TEST(window_parse_errors)
{
	parse_err("", "empty window");
	parse_err("   ", "empty window");
	parse_err("Mnday 08:00-20:00", "unknown day \"Mnday\"");
	parse_err("Mon-Fry 08:00-20:00", "unknown day \"Fry\"");
	parse_err("Monday 08:00-20:00", "unknown day \"Monday\"");
	parse_err("Mon- 08:00-20:00", "incomplete day range \"Mon-\"");
	parse_err("Mon-", "incomplete day range \"Mon-\"");
	parse_err("Mon, 08:00-20:00", "missing day after \"Mon,\"");
	parse_err("Mon,,Tue 08:00-20:00", "missing day after \"Mon,\"");
	parse_err("Mon-Wed,", "missing day after \"Wed,\"");
	parse_err("08:00-20:00 UTC", "missing days before the time range");
	parse_err("-Fri 08:00-20:00", "missing days before the time range");
	parse_err("daily,Mon 08:00-20:00", "\"daily\" cannot be combined with other days");
	parse_err("daily-Fri 08:00-20:00", "\"daily\" cannot be combined with other days");
	parse_err("Mon-Fri", "missing time range after the days");
	parse_err("Mon-Fri 08:00", "time range \"08:00\" has no end");
	parse_err("Mon-Fri 08:00 Europe/Berlin", "time range \"08:00\" has no end");
	parse_err("Mon-Fri 25:00-26:00", "bad time range \"25:00-26:00\"");
	parse_err("Mon-Fri 08:60-09:00", "bad time range \"08:60-09:00\"");
	parse_err("Mon-Fri 08:00-24:01", "bad time range \"08:00-24:01\"");
	parse_err("Mon-Fri 8-20", "bad time range \"8-20\"");
	parse_err("Mon-Fri 8:0-20:00", "bad time range \"8:0-20:00\"");
	parse_err("Mon-Fri 008:00-20:00", "bad time range \"008:00-20:00\"");
	parse_err("Mon-Fri 08:00-20:000", "bad time range \"08:00-20:000\"");
	parse_err("Mon-Fri 08:00-20:00x", "bad time range \"08:00-20:00x\"");
	parse_err("Mon-Fri 08:00 - x", "bad time range \"08:00 - x\"");
	parse_err("Mon-Fri 24:00-08:00", "24:00 is only allowed as an end");
	parse_err("Mon-Fri 08:00-08:00", "empty time range \"08:00-08:00\" (start equals end");
	parse_err("Mon-Fri 00:00-00:00", "empty time range");
	parse_err("Mon-Fri 08:00-20:00 Europe/Berln",
		"unknown time zone \"Europe/Berln\" (no file /usr/share/zoneinfo/Europe/Berln)");
	parse_err("Mon-Fri 08:00-20:00 ../etc/passwd", "invalid time zone name \"../etc/passwd\"");
	parse_err("Mon-Fri 08:00-20:00 /etc/localtime", "invalid time zone name");
	parse_err("Mon-Fri 08:00-20:00 Europe/Berlin extra", "unexpected \"extra\" after the time zone");
	parse_err("Mon-Fri 08:00-20:00 Europe", "is not a time zone file");
	char huge[600];
	memset(huge, 'a', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	char spec[700];
	snprintf(spec, sizeof(spec), "Mon 08:00-09:00 %s", huge);
	parse_err(spec, "time zone name too long");
	snprintf(spec, sizeof(spec), "%s 08:00-09:00", huge);
	parse_err(spec, "unknown day \"aaaa");
	char many[400];
	size_t ml = 0;
	for (int i = 0; i < 30; i++)
		ml += (size_t)snprintf(many + ml, sizeof(many) - ml, "Mon,");
	snprintf(many + ml, sizeof(many) - ml, "Tue 08:00-09:00");
	parse_err(many, "too many days");
	/* a truncated error buffer still ends in a NUL */
	char small[16];
	CHECK(gw_window_parse("Mnday 08:00-20:00", small, sizeof(small)) == NULL && strlen(small) == 15);
	CHECK(gw_window_parse("Mnday 08:00-20:00", NULL, 0) == NULL);
}

static bool in(const gw_window *w, int64_t t)
{
	return gw_window_contains(w, t);
}

GW_TEST(window_contains)
{
	/* 2026-01-05 is a Monday; winter in Berlin is UTC+1, summer UTC+2 */
	gw_window *w = win("Mon-Fri 08:00-20:00 Europe/Berlin");
	CHECK(!in(w, utc(2026, 1, 5, 6, 59, 59)));
	CHECK(in(w, utc(2026, 1, 5, 7, 0, 0)));       /* 08:00 local: start inclusive */
	CHECK(in(w, utc(2026, 1, 5, 18, 59, 59)));
	CHECK(!in(w, utc(2026, 1, 5, 19, 0, 0)));     /* 20:00 local: end exclusive */
	CHECK(in(w, utc(2026, 1, 9, 12, 0, 0)));      /* Friday */
	CHECK(!in(w, utc(2026, 1, 10, 12, 0, 0)));    /* Saturday */
	CHECK(!in(w, utc(2026, 1, 11, 12, 0, 0)));    /* Sunday */
	CHECK(in(w, utc(2026, 7, 6, 6, 0, 0)));       /* Monday 08:00 CEST */
	CHECK(!in(w, utc(2026, 7, 6, 5, 59, 59)));
	CHECK(!in(w, utc(2026, 7, 6, 18, 0, 0)));     /* 20:00 CEST */
	/* the Monday after spring-forward (2026-03-29) and after fall-back (2026-10-25) */
	CHECK(!in(w, utc(2026, 3, 30, 5, 59, 59)) && in(w, utc(2026, 3, 30, 6, 0, 0)));
	CHECK(!in(w, utc(2026, 10, 26, 6, 59, 59)) && in(w, utc(2026, 10, 26, 7, 0, 0)));
	/* Sunday 23:30 UTC is Monday 00:30 local: still outside, not yet 08:00 */
	CHECK(!in(w, utc(2026, 1, 4, 23, 30, 0)));
	/* Friday 19:30 UTC in winter is 20:30 local: outside */
	CHECK(!in(w, utc(2026, 1, 9, 19, 30, 0)));
	gw_window_free(w);

	/* crossing midnight belongs to the start day */
	w = win("Fri 22:00-06:00 UTC");
	CHECK(!in(w, utc(2026, 1, 9, 21, 59, 59)));
	CHECK(in(w, utc(2026, 1, 9, 22, 0, 0)));
	CHECK(in(w, utc(2026, 1, 9, 23, 59, 59)));
	CHECK(in(w, utc(2026, 1, 10, 0, 0, 0)));
	CHECK(in(w, utc(2026, 1, 10, 3, 0, 0)));      /* Sat 03:00 */
	CHECK(in(w, utc(2026, 1, 10, 5, 59, 59)));
	CHECK(!in(w, utc(2026, 1, 10, 6, 0, 0)));
	CHECK(!in(w, utc(2026, 1, 9, 3, 0, 0)));      /* Fri 03:00 belongs to Thursday */
	CHECK(!in(w, utc(2026, 1, 10, 22, 30, 0)));   /* Sat evening */
	gw_window_free(w);

	w = win("Mon,Wed-Fri 22:00-06:00 America/New_York");
	/* 2026-01-06 Tue 03:00 EST = 08:00 UTC */
	CHECK(in(w, utc(2026, 1, 6, 8, 0, 0)));       /* Tue morning, from Mon */
	CHECK(!in(w, utc(2026, 1, 7, 8, 0, 0)));      /* Wed morning: Tue is not listed */
	CHECK(in(w, utc(2026, 1, 8, 8, 0, 0)));       /* Thu morning */
	CHECK(in(w, utc(2026, 1, 10, 8, 0, 0)));      /* Sat morning, from Fri */
	CHECK(!in(w, utc(2026, 1, 11, 8, 0, 0)));     /* Sun morning */
	CHECK(in(w, utc(2026, 1, 6, 3, 0, 0)));       /* Mon 22:00 EST */
	CHECK(!in(w, utc(2026, 1, 7, 3, 0, 0)));      /* Tue 22:00 EST */
	CHECK(!in(w, utc(2026, 1, 6, 11, 0, 0)));     /* Tue 06:00 EST: end exclusive */
	CHECK(in(w, utc(2026, 1, 6, 10, 59, 59)));
	gw_window_free(w);
	/* the night of the change to EDT: Sat 2026-03-07 22:00 EST .. Sun 06:00 EDT, 7 hours */
	w = win("Sat 22:00-06:00 America/New_York");
	CHECK(!in(w, utc(2026, 3, 8, 2, 59, 59)));
	CHECK(in(w, utc(2026, 3, 8, 3, 0, 0)));
	CHECK(in(w, utc(2026, 3, 8, 9, 59, 59)));     /* 05:59:59 EDT */
	CHECK(!in(w, utc(2026, 3, 8, 10, 0, 0)));     /* 06:00 EDT */
	gw_window_free(w);

	/* day ranges that wrap: Fri, Sat, Sun, Mon */
	w = win("Fri-Mon 10:00-11:00");
	static const bool want[7] = {true, false, false, false, true, true, true}; /* Mon..Sun from Jan 5 */
	for (int d = 0; d < 7; d++) {
		CHECK(in(w, utc(2026, 1, 5 + d, 10, 30, 0)) == want[d]);
		CHECK(!in(w, utc(2026, 1, 5 + d, 11, 0, 0)));
		CHECK(!in(w, utc(2026, 1, 5 + d, 9, 59, 59)));
	}
	gw_window_free(w);

	/* Sunday night into Monday, over the week's end */
	w = win("Sun 23:00-01:00");
	CHECK(in(w, utc(2026, 1, 11, 23, 0, 0)) && in(w, utc(2026, 1, 12, 0, 59, 59)));
	CHECK(!in(w, utc(2026, 1, 12, 1, 0, 0)) && !in(w, utc(2026, 1, 11, 0, 30, 0)));
	gw_window_free(w);

	w = win("Sat,Sun 10:00-14:00 UTC");
	CHECK(in(w, utc(2026, 1, 10, 10, 0, 0)) && in(w, utc(2026, 1, 11, 13, 59, 59)));
	CHECK(!in(w, utc(2026, 1, 9, 12, 0, 0)) && !in(w, utc(2026, 1, 12, 12, 0, 0)));
	gw_window_free(w);

	w = win("daily 09:00-17:00 Asia/Kolkata");
	for (int d = 0; d < 7; d++) {
		CHECK(!in(w, utc(2026, 1, 5 + d, 3, 29, 59)));
		CHECK(in(w, utc(2026, 1, 5 + d, 3, 30, 0)));   /* 09:00 IST */
		CHECK(in(w, utc(2026, 1, 5 + d, 11, 29, 59)));
		CHECK(!in(w, utc(2026, 1, 5 + d, 11, 30, 0)));
	}
	gw_window_free(w);

	w = win("Mon-Sun 00:00-24:00");
	for (int64_t t = 0; t < 4102444800LL; t += 86400 * 7 + 3613)
		CHECK(in(w, t));
	gw_window_free(w);

	/* 24:00 and 00:00 as ends both mean midnight */
	gw_window *a = win("Mon 20:00-24:00"), *b = win("Mon 20:00-00:00");
	for (int64_t t = utc(2026, 1, 4, 0, 0, 0); t < utc(2026, 1, 8, 0, 0, 0); t += 599)
		CHECK(in(a, t) == in(b, t));
	CHECK(in(a, utc(2026, 1, 5, 23, 59, 59)) && !in(a, utc(2026, 1, 6, 0, 0, 0)));
	gw_window_free(a);
	gw_window_free(b);

	/* DST days in Berlin: 02:00-03:00 local is skipped in March, doubled in October */
	w = win("daily 02:00-03:00 Europe/Berlin");
	for (int64_t t = utc(2026, 3, 28, 22, 0, 0); t < utc(2026, 3, 29, 22, 0, 0); t += 60)
		CHECK(!in(w, t));
	CHECK(in(w, utc(2026, 10, 25, 0, 0, 0)));     /* 02:00 CEST */
	CHECK(in(w, utc(2026, 10, 25, 0, 59, 59)));
	CHECK(in(w, utc(2026, 10, 25, 1, 0, 0)));     /* 02:00 CET, again */
	CHECK(in(w, utc(2026, 10, 25, 1, 59, 59)));
	CHECK(!in(w, utc(2026, 10, 25, 2, 0, 0)));
	CHECK(!in(w, utc(2026, 10, 24, 23, 59, 59)));
	gw_window_free(w);

	/* Lord Howe's 30-minute change: 02:00 -> 02:30 on 2026-10-04 */
	w = win("Sun 02:00-02:30 Australia/Lord_Howe");
	for (int64_t t = utc(2026, 10, 3, 12, 0, 0); t < utc(2026, 10, 4, 12, 0, 0); t += 30)
		CHECK(!in(w, t));
	CHECK(in(w, utc(2026, 10, 10, 15, 0, 0)));    /* the next Sunday 02:00 (+11) */
	gw_window_free(w);

	/* far instants are outside, not a crash */
	w = win("daily 00:00-24:00");
	CHECK(!in(w, INT64_MAX) && !in(w, INT64_MIN));
	gw_window_free(w);
}

/* A window agrees with a brute-force reading of glibc's local time. */
GW_TEST(window_matches_glibc)
{
	static const struct {
		const char *spec, *zone;
		uint8_t days; /* bit tm_wday */
		int start, end; /* seconds after midnight */
	} cases[] = {
		{"Mon-Fri 08:00-20:00 Europe/Berlin", ":Europe/Berlin", 0x3e, 8 * 3600, 20 * 3600},
		{"Mon,Wed-Fri 22:00-06:00 America/New_York", ":America/New_York", 0x3a, 22 * 3600, 6 * 3600},
		{"Fri-Mon 01:30-02:30 Europe/Dublin", ":Europe/Dublin", 0x63, 5400, 9000},
		{"Sat 23:15-00:45 Pacific/Chatham", ":Pacific/Chatham", 0x40, 23 * 3600 + 900, 2700},
		{"daily 02:00-03:00 America/Santiago", ":America/Santiago", 0x7f, 7200, 10800},
		{"Sun 00:00-24:00 Australia/Lord_Howe", ":Australia/Lord_Howe", 0x01, 0, 86400},
		{"Tue,Thu 23:00-24:00 Asia/Jerusalem", ":Asia/Jerusalem", 0x14, 23 * 3600, 86400},
	};
	for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
		gw_window *w = win(cases[i].spec);
		int s = cases[i].start, e = cases[i].end;
		glibc_tz(cases[i].zone);
		int inside = 0;
		for (int64_t t = utc(2024, 1, 1, 0, 0, 0); t < utc(2027, 1, 1, 0, 0, 0); t += 900 + 7) {
			struct tm tm;
			glibc_local(t, &tm);
			int sec = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
			bool today = cases[i].days & (1u << tm.tm_wday);
			bool yesterday = cases[i].days & (1u << ((tm.tm_wday + 6) % 7));
			bool want = s < e ? today && sec >= s && sec < e : (today && sec >= s) || (yesterday && sec < e);
			if (want != in(w, t))
				fprintf(stderr, "     %s at %lld: want %d\n", cases[i].spec, (long long)t, want);
			CHECK(want == in(w, t));
			inside += want;
		}
		glibc_tz_restore();
		CHECK(inside > 500);
		gw_window_free(w);
	}
}

/* ---- the policy clock ---- */

GW_TEST(clock_parse_instant)
{
	int64_t t;
	CHECK(gw_clock_parse_instant("0", &t) == 0 && t == 0);
	CHECK(gw_clock_parse_instant("1767225600", &t) == 0 && t == 1767225600);
	CHECK(gw_clock_parse_instant("-86400", &t) == 0 && t == -86400);
	CHECK(gw_clock_parse_instant("2026-01-01T00:00:00Z", &t) == 0 && t == 1767225600);
	CHECK(gw_clock_parse_instant("2024-02-29T23:59:59Z", &t) == 0 && t == utc(2024, 2, 29, 23, 59, 59));
	CHECK(gw_clock_parse_instant("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
	CHECK(gw_clock_parse_instant("1969-12-31T23:59:59Z", &t) == 0 && t == -1);
	static const char *bad[] = {"", "-", "12a", "1e9", " 5", "5 ", "1234567890123456789", "2026-01-01",
		"2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
		"2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z", "2026-01-01 00:00:00Z",
		"+026-01-01T00:00:00Z", "2026-1-01T00:00:00Z", "2026-01-01T00:00:00Zx", "2026-00-10T00:00:00Z"};
	for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
		if (gw_clock_parse_instant(bad[i], &t) == 0)
			fprintf(stderr, "     accepted \"%s\"\n", bad[i]);
		CHECK(gw_clock_parse_instant(bad[i], &t) == -1);
	}
	CHECK(gw_clock_parse_instant(NULL, &t) == -1);
}

GW_TEST(clock_test_now)
{
	/* each test runs in a fresh child, so the once-only set-up is ours */
	setenv("PGMOAT_TEST_NOW", "2026-01-05T07:59:58Z", 1);
	CHECK(gw_clock_init() == 0);
	CHECK(gw_clock_init() == 0); /* again: a no-op */
	int64_t t0 = gw_policy_now();
	CHECK(t0 >= utc(2026, 1, 5, 7, 59, 58) && t0 <= utc(2026, 1, 5, 7, 59, 59));
	gw_window *w = win("Mon-Fri 09:00-20:00 Europe/Berlin");
	CHECK(!in(w, t0));
	/* the clock still advances from the given instant */
	sleep(2);
	int64_t t1 = gw_policy_now();
	CHECK(t1 >= t0 + 1 && t1 <= t0 + 4);
	CHECK(in(w, t1));
	gw_window_free(w);
	unsetenv("PGMOAT_TEST_NOW");
}

GW_TEST(clock_test_now_malformed)
{
	setenv("PGMOAT_TEST_NOW", "yesterday", 1);
	CHECK(gw_clock_init() == -1);
	int64_t now = (int64_t)time(NULL);
	CHECK(gw_policy_now() >= now - 1 && gw_policy_now() <= now + 1);
	unsetenv("PGMOAT_TEST_NOW");
}

GW_TEST(clock_real_by_default)
{
	unsetenv("PGMOAT_TEST_NOW");
	int64_t now = (int64_t)time(NULL);
	int64_t t = gw_policy_now(); /* without gw_clock_init: set up on first use */
	CHECK(t >= now - 1 && t <= now + 1);
	CHECK(gw_clock_init() == 0);
	setenv("PGMOAT_TEST_NOW", "0", 1); /* read once only: a later change is ignored */
	CHECK(gw_clock_init() == 0 && gw_policy_now() >= now - 1);
	unsetenv("PGMOAT_TEST_NOW");
}
