/*
 * Time zones read straight from TZif files, policy time windows, and the
 * policy clock. See clock.h. TZif is RFC 8536; the footer is a POSIX TZ string
 * with the RFC's v3 extensions (rule times from -167 to 167 hours).
 */
#include "core/clock.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_MAX_FILE (256 * 1024)
#define TZ_MAX_NAME 255
#define TZ_MAX_ABBR 31
/* |t| beyond this and the year no longer fits struct tm's int. */
#define TZ_T_LIMIT ((int64_t)1 << 55)
/* The UT offsets RFC 8536 allows: -24:59:59 .. +25:59:59. */
#define TZ_OFF_MIN (-89999)
#define TZ_OFF_MAX 93599

/* One rule of the footer: when DST starts or ends in a year. */
typedef struct {
	char kind;    /* 'J' Jn (1..365, Feb 29 never counted), 'N' n (0..365), 'M' Mm.w.d */
	int n, m, w, d;
	int32_t secs; /* local time of day of the change, -167h .. 167h */
} tz_rule;

/* The footer: the zone after its last transition. */
typedef struct {
	int32_t std_off, dst_off; /* seconds east of UTC */
	bool has_dst;
	tz_rule start, end;       /* std -> dst, dst -> std */
	char std_abbr[TZ_MAX_ABBR + 1], dst_abbr[TZ_MAX_ABBR + 1];
} tz_footer;

typedef struct {
	int32_t utoff;
	bool isdst;
	const char *abbr; /* into gw_tz.chars */
} tz_type;

struct gw_tz {
	char *name;
	uint32_t ntrans;
	int64_t *trans;      /* strictly ascending */
	uint8_t *trans_type; /* < ntypes */
	uint32_t ntypes;     /* >= 1 */
	tz_type *types;
	char *chars;         /* the designations, NUL-terminated */
	bool has_footer;
	tz_footer footer;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- calendar (proleptic Gregorian, 64-bit; H. Hinnant's algorithms) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_len(int64_t y, int m)
{
	static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Days since 1970-01-01 of y-m-d (m 1..12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday, as tm_wday. */
static int weekday(int64_t days)
{
	return (int)(days - floor_div(days + 4, 7) * 7 + 4) % 7;
}

/* ---- the POSIX TZ footer ---- */

/* A zone designation: letters, or <...> with letters, digits, + and -. */
static const char *parse_abbr(const char *s, char *out)
{
	size_t n = 0;
	if (*s == '<') {
		s++;
		while (isalnum((unsigned char)*s) || *s == '+' || *s == '-') {
			if (n == TZ_MAX_ABBR)
				return NULL;
			out[n++] = *s++;
		}
		if (*s++ != '>')
			return NULL;
	} else {
		while (isalpha((unsigned char)*s)) {
			if (n == TZ_MAX_ABBR)
				return NULL;
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	return n >= 3 ? s : NULL;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, into seconds (the sign applied). */
static const char *parse_hms(const char *s, int maxh, int32_t *out)
{
	int sign = 1;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	int part[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++) {
		if (i > 0) {
			if (*s != ':')
				break;
			s++;
		}
		if (!isdigit((unsigned char)*s))
			return NULL;
		int v = 0, digits = 0;
		while (isdigit((unsigned char)*s) && digits < 3) {
			v = v * 10 + (*s++ - '0');
			digits++;
		}
		if (isdigit((unsigned char)*s) || v > (i == 0 ? maxh : 59))
			return NULL;
		part[i] = v;
	}
	*out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
	return s;
}

static const char *parse_num(const char *s, int lo, int hi, int *out)
{
	if (!isdigit((unsigned char)*s))
		return NULL;
	int v = 0;
	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (*s++ - '0');
		if (v > hi)
			return NULL;
	}
	if (v < lo)
		return NULL;
	*out = v;
	return s;
}

static const char *parse_rule(const char *s, tz_rule *r)
{
	memset(r, 0, sizeof(*r));
	if (*s == 'J') {
		r->kind = 'J';
		s = parse_num(s + 1, 1, 365, &r->n);
	} else if (*s == 'M') {
		r->kind = 'M';
		if (!(s = parse_num(s + 1, 1, 12, &r->m)) || *s++ != '.' || !(s = parse_num(s, 1, 5, &r->w)) ||
			*s++ != '.')
			return NULL;
		s = parse_num(s, 0, 6, &r->d);
	} else {
		r->kind = 'N';
		s = parse_num(s, 0, 365, &r->n);
	}
	if (!s)
		return NULL;
	r->secs = 2 * 3600;
	if (*s == '/')
		s = parse_hms(s + 1, 167, &r->secs);
	return s;
}

/* std offset [dst [offset] [,start[/time],end[/time]]]; false when malformed. */
static bool parse_footer(const char *s, tz_footer *f)
{
	memset(f, 0, sizeof(*f));
	int32_t off;
	if (!(s = parse_abbr(s, f->std_abbr)) || !(s = parse_hms(s, 24, &off)))
		return false;
	f->std_off = -off; /* POSIX counts west */
	if (!*s)
		return true;
	f->has_dst = true;
	if (!(s = parse_abbr(s, f->dst_abbr)))
		return false;
	f->dst_off = f->std_off + 3600;
	if (*s && *s != ',') {
		if (!(s = parse_hms(s, 24, &off)))
			return false;
		f->dst_off = -off;
	}
	if (!*s) /* no rules: the US rules, as glibc */
		s = ",M3.2.0,M11.1.0";
	if (*s++ != ',' || !(s = parse_rule(s, &f->start)) || *s++ != ',' || !(s = parse_rule(s, &f->end)))
		return false;
	return *s == '\0';
}

/* The day (since the epoch) a rule falls on in year y. */
static int64_t rule_day(const tz_rule *r, int64_t y)
{
	int64_t jan1 = days_from_civil(y, 1, 1);
	switch (r->kind) {
	case 'J':
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	case 'N':
		return jan1 + r->n;
	default: {
		int64_t first = days_from_civil(y, r->m, 1);
		int day = (r->d - weekday(first) + 7) % 7 + 7 * (r->w - 1);
		while (day >= month_len(y, r->m))
			day -= 7;
		return first + day;
	}
	}
}

/* Is t daylight time under the footer's rules? */
static bool footer_isdst(const tz_footer *f, int64_t t)
{
	if (!f->has_dst)
		return false;
	int64_t y;
	int m, d;
	civil_from_days(floor_div(t, 86400), &y, &m, &d);
	/* The latest change at or before t among the years around it; on a tie
	 * (a year's end meeting the next year's start: all-year DST) DST wins. */
	int64_t best = INT64_MIN;
	bool dst = false;
	for (int64_t yy = y - 1; yy <= y + 1; yy++) {
		int64_t on = rule_day(&f->start, yy) * 86400 + f->start.secs - f->std_off;
		int64_t off = rule_day(&f->end, yy) * 86400 + f->end.secs - f->dst_off;
		if (off <= t && off > best) {
			best = off;
			dst = false;
		}
		if (on <= t && on >= best) {
			best = on;
			dst = true;
		}
	}
	return dst;
}

/* ---- TZif ---- */

typedef struct {
	const uint8_t *p;
	size_t len, off;
} rd;

static bool rd_need(const rd *r, uint64_t n)
{
	return n <= r->len - r->off;
}

static uint32_t rd_u32(rd *r)
{
	const uint8_t *p = r->p + r->off;
	r->off += 4;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t rd_i64(rd *r)
{
	uint64_t hi = rd_u32(r);
	uint64_t lo = rd_u32(r);
	return (int64_t)(hi << 32 | lo);
}

typedef struct {
	uint8_t version;
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_hdr;

static bool read_hdr(rd *r, tzif_hdr *h, const char **why)
{
	if (!rd_need(r, 44) || memcmp(r->p + r->off, "TZif", 4) != 0) {
		*why = "not a TZif file";
		return false;
	}
	h->version = r->p[r->off + 4];
	r->off += 20;
	h->isutcnt = rd_u32(r);
	h->isstdcnt = rd_u32(r);
	h->leapcnt = rd_u32(r);
	h->timecnt = rd_u32(r);
	h->typecnt = rd_u32(r);
	h->charcnt = rd_u32(r);
	return true;
}

static uint64_t block_size(const tzif_hdr *h, int tsize)
{
	return (uint64_t)h->timecnt * (uint64_t)(tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
		(uint64_t)h->leapcnt * (uint64_t)(tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* The data block after h, with tsize-byte times, into tz. */
static bool read_block(rd *r, const tzif_hdr *h, int tsize, gw_tz *tz, const char **why)
{
	if (!rd_need(r, block_size(h, tsize))) {
		*why = "truncated";
		return false;
	}
	if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 || (h->isutcnt && h->isutcnt != h->typecnt) ||
		(h->isstdcnt && h->isstdcnt != h->typecnt)) {
		*why = "inconsistent counts in the header";
		return false;
	}
	if (h->leapcnt) {
		*why = "has leap seconds (right/ zones are not supported)";
		return false;
	}
	tz->ntrans = h->timecnt;
	tz->trans = gw_xcalloc(h->timecnt, sizeof(int64_t));
	tz->trans_type = gw_xcalloc(h->timecnt, 1);
	for (uint32_t i = 0; i < h->timecnt; i++) {
		tz->trans[i] = tsize == 8 ? rd_i64(r) : (int64_t)(int32_t)rd_u32(r);
		if (i > 0 && tz->trans[i] <= tz->trans[i - 1]) {
			*why = "transition times out of order";
			return false;
		}
	}
	for (uint32_t i = 0; i < h->timecnt; i++) {
		tz->trans_type[i] = r->p[r->off++];
		if (tz->trans_type[i] >= h->typecnt) {
			*why = "transition names a missing local time type";
			return false;
		}
	}
	tz->ntypes = h->typecnt;
	tz->types = gw_xcalloc(h->typecnt, sizeof(tz_type));
	uint32_t idx[256];
	for (uint32_t i = 0; i < h->typecnt; i++) {
		int32_t utoff = (int32_t)rd_u32(r);
		uint8_t isdst = r->p[r->off++];
		idx[i] = r->p[r->off++];
		if (utoff < TZ_OFF_MIN || utoff > TZ_OFF_MAX || isdst > 1 || idx[i] >= h->charcnt) {
			*why = "bad local time type";
			return false;
		}
		tz->types[i].utoff = utoff;
		tz->types[i].isdst = isdst;
	}
	tz->chars = gw_xcalloc(h->charcnt + 1, 1);
	memcpy(tz->chars, r->p + r->off, h->charcnt);
	r->off += h->charcnt;
	for (uint32_t i = 0; i < h->typecnt; i++)
		tz->types[i].abbr = tz->chars + idx[i];
	r->off += h->isstdcnt + h->isutcnt; /* only zic needs them */
	return true;
}

static bool tzif_parse(gw_tz *tz, const uint8_t *p, size_t len, const char **why)
{
	rd r = {p, len, 0};
	tzif_hdr h;
	if (!read_hdr(&r, &h, why))
		return false;
	if (h.version != 0 && (h.version < '2' || h.version > '4')) {
		*why = "unsupported TZif version";
		return false;
	}
	if (h.version == 0)
		return read_block(&r, &h, 4, tz, why);
	/* v2+: skip the 32-bit block, read the 64-bit one and the footer. */
	if (!rd_need(&r, block_size(&h, 4))) {
		*why = "truncated";
		return false;
	}
	r.off += block_size(&h, 4);
	tzif_hdr h2;
	if (!read_hdr(&r, &h2, why) || !read_block(&r, &h2, 8, tz, why))
		return false;
	if (!rd_need(&r, 2) || p[r.off] != '\n') {
		*why = "missing TZ string footer";
		return false;
	}
	const uint8_t *start = p + r.off + 1;
	const uint8_t *nl = memchr(start, '\n', len - r.off - 1);
	if (!nl) {
		*why = "unterminated TZ string footer";
		return false;
	}
	size_t flen = (size_t)(nl - start);
	if (flen == 0)
		return true; /* no rule after the last transition */
	char buf[128];
	if (flen >= sizeof(buf)) {
		*why = "TZ string footer too long";
		return false;
	}
	memcpy(buf, start, flen);
	buf[flen] = '\0';
	if (memchr(buf, '\0', flen) || !parse_footer(buf, &tz->footer)) {
		*why = "bad TZ string footer";
		return false;
	}
	tz->has_footer = true;
	return true;
}

static gw_tz *tz_new(const char *name)
{
	gw_tz *tz = gw_xcalloc(1, sizeof(*tz));
	tz->name = gw_xstrdup(name);
	return tz;
}

void gw_tz_free(gw_tz *tz)
{
	if (!tz)
		return;
	free(tz->name);
	free(tz->trans);
	free(tz->trans_type);
	free(tz->types);
	free(tz->chars);
	free(tz);
}

gw_tz *gw_tz_parse(const char *name, const void *data, size_t len, char *err, size_t errlen)
{
	gw_tz *tz = tz_new(name);
	const char *why = "";
	if (!tzif_parse(tz, data, len, &why)) {
		set_err(err, errlen, "time zone \"%s\": %s", name, why);
		gw_tz_free(tz);
		return NULL;
	}
	return tz;
}

static gw_tz *tz_utc(const char *name)
{
	gw_tz *tz = tz_new(name);
	tz->ntypes = 1;
	tz->types = gw_xcalloc(1, sizeof(tz_type));
	tz->chars = gw_xstrdup("UTC");
	tz->types[0].abbr = tz->chars;
	return tz;
}

static bool tz_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > TZ_MAX_NAME || name[0] == '/' || strstr(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!isalnum((unsigned char)c) && c != '/' && c != '_' && c != '+' && c != '-')
			return false;
	}
	return true;
}

gw_tz *gw_tz_load(const char *name, char *err, size_t errlen)
{
	if (!strcmp(name, "UTC") || !strcmp(name, "Etc/UTC") || !strcmp(name, "Z"))
		return tz_utc(name);
	if (!tz_name_ok(name)) {
		set_err(err, errlen, "invalid time zone name \"%.*s\" (letters, digits and / _ + - only)",
			TZ_MAX_NAME, name);
		return NULL;
	}
	if (!strncmp(name, "right/", 6)) {
		set_err(err, errlen, "time zone \"%s\": right/ zones count leap seconds, which unix time does not", name);
		return NULL;
	}
	char path[sizeof(GW_TZ_DIR) + TZ_MAX_NAME + 2];
	snprintf(path, sizeof(path), "%s/%s", GW_TZ_DIR, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			set_err(err, errlen, "unknown time zone \"%s\" (no file %s)", name, path);
		else
			set_err(err, errlen, "time zone \"%s\": %s: %s", name, path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_MAX_FILE) {
		set_err(err, errlen, "unknown time zone \"%s\" (%s is not a time zone file)", name, path);
		close(fd);
		return NULL;
	}
	size_t len = (size_t)st.st_size, got = 0;
	uint8_t *data = gw_xmalloc(len ? len : 1);
	while (got < len) {
		ssize_t n = read(fd, data + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	gw_tz *tz = tz_new(name);
	const char *why = "short read";
	if (got != len || !tzif_parse(tz, data, len, &why)) {
		set_err(err, errlen, "time zone \"%s\": %s: %s", name, path, why);
		gw_tz_free(tz);
		tz = NULL;
	}
	free(data);
	return tz;
}

const char *gw_tz_name(const gw_tz *tz)
{
	return tz->name;
}

int gw_tz_local(const gw_tz *tz, int64_t t, struct tm *out)
{
	memset(out, 0, sizeof(*out));
	if (t < -TZ_T_LIMIT || t > TZ_T_LIMIT)
		return -1;
	int32_t off;
	bool isdst;
	const char *abbr;
	if (tz->has_footer && (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1])) {
		isdst = footer_isdst(&tz->footer, t);
		off = isdst ? tz->footer.dst_off : tz->footer.std_off;
		abbr = isdst ? tz->footer.dst_abbr : tz->footer.std_abbr;
	} else {
		/* Type 0 before the first transition (RFC 8536 3.2). */
		const tz_type *ty = &tz->types[0];
		if (tz->ntrans > 0 && t >= tz->trans[0]) {
			uint32_t lo = 0, hi = tz->ntrans; /* last transition <= t is in [lo, hi) */
			while (hi - lo > 1) {
				uint32_t mid = lo + (hi - lo) / 2;
				if (tz->trans[mid] <= t)
					lo = mid;
				else
					hi = mid;
			}
			ty = &tz->types[tz->trans_type[lo]];
		}
		off = ty->utoff;
		isdst = ty->isdst;
		abbr = ty->abbr;
	}
	int64_t local = t + off;
	int64_t days = floor_div(local, 86400);
	int64_t sod = local - days * 86400;
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	out->tm_sec = (int)(sod % 60);
	out->tm_min = (int)(sod / 60 % 60);
	out->tm_hour = (int)(sod / 3600);
	out->tm_mday = d;
	out->tm_mon = m - 1;
	out->tm_year = (int)(y - 1900);
	out->tm_wday = weekday(days);
	out->tm_yday = (int)(days - days_from_civil(y, 1, 1));
	out->tm_isdst = isdst;
	out->tm_gmtoff = off;
	out->tm_zone = abbr;
	return 0;
}

/* ---- windows ---- */

struct gw_window {
	uint8_t days;   /* bit tm_wday: 0 = Sunday .. 6 = Saturday */
	int start, end; /* minutes after local midnight; end may be 1440; start != end */
	gw_tz *tz;
	char *text;     /* normalised spec */
};

static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

#define WIN_EXAMPLE "e.g. \"Mon-Fri 08:00-20:00 Europe/Berlin\""

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* The run of characters from s up to whitespace, end or one of stop. */
static size_t token_len(const char *s, const char *stop)
{
	size_t n = 0;
	while (s[n] && s[n] != ' ' && s[n] != '\t' && !strchr(stop, s[n]))
		n++;
	return n;
}

static int day_lookup(const char *s, size_t n)
{
	if (n != 3)
		return -1;
	for (int i = 0; i < 7; i++)
		if (!strncasecmp(s, day_names[i], 3))
			return i;
	return -1;
}

/*
 * One day name at *s (advanced past it); -1 with err set when not one. missing
 * is the message for no name at all (end, comma, or a time where a day goes).
 */
static int parse_day(const char **s, const char *missing, char *err, size_t errlen)
{
	size_t n = token_len(*s, ",-");
	if (n == 0 || isdigit((unsigned char)**s)) {
		set_err(err, errlen, "%s", missing);
		return -1;
	}
	int d = day_lookup(*s, n);
	if (d < 0) {
		set_err(err, errlen, "unknown day \"%.*s\" (expected Mon Tue Wed Thu Fri Sat Sun, or daily)",
			(int)(n > 40 ? 40 : n), *s);
		return -1;
	}
	*s += n;
	return d;
}

/* The days part into w->days and its normalised text; false with err set. */
static bool parse_days(const char **sp, gw_window *w, char *text, size_t textlen, char *err, size_t errlen)
{
	const char *s = *sp;
	size_t n = token_len(s, ",-"), tl = 0;
	if (n == 5 && !strncasecmp(s, "daily", 5)) {
		s = skip_ws(s + 5);
		if (*s == ',' || *s == '-') {
			set_err(err, errlen, "\"daily\" cannot be combined with other days");
			return false;
		}
		w->days = 0x7f;
		snprintf(text, textlen, "daily");
		*sp = s;
		return true;
	}
	const char *missing = "missing days before the time range (\"daily\", or days such as \"Mon-Fri\")";
	char msg[64];
	for (;;) {
		int a = parse_day(&s, missing, err, errlen);
		if (a < 0)
			return false;
		int b = a;
		s = skip_ws(s);
		if (*s == '-') {
			s = skip_ws(s + 1);
			snprintf(msg, sizeof(msg), "incomplete day range \"%s-\"", day_names[a]);
			if ((b = parse_day(&s, msg, err, errlen)) < 0)
				return false;
		}
		for (int d = a;; d = (d + 1) % 7) {
			w->days |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		if (tl + 16 > textlen) {
			set_err(err, errlen, "too many days listed");
			return false;
		}
		tl += (size_t)snprintf(text + tl, textlen - tl, "%s%s%s%s", tl ? "," : "", day_names[a],
			a == b ? "" : "-", a == b ? "" : day_names[b]);
		s = skip_ws(s);
		if (*s != ',')
			break;
		s = skip_ws(s + 1);
		snprintf(msg, sizeof(msg), "missing day after \"%s,\"", day_names[b]);
		missing = msg;
	}
	*sp = s;
	return true;
}

/* HH:MM (H:MM allowed) at *s into minutes, *s advanced; -1 when malformed. */
static int parse_clock(const char **s)
{
	const char *p = *s;
	int h = 0, digits = 0;
	while (isdigit((unsigned char)*p) && digits < 3) {
		h = h * 10 + (*p++ - '0');
		digits++;
	}
	if (digits < 1 || digits > 2 || *p++ != ':' || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	int m = (p[0] - '0') * 10 + (p[1] - '0');
	p += 2;
	if (isdigit((unsigned char)*p) || h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	*s = p;
	return h * 60 + m;
}

/* HH:MM-HH:MM (spaces allowed around the dash) into w->start, w->end. */
static bool parse_time_range(const char **sp, gw_window *w, char *err, size_t errlen)
{
	const char *s = *sp, *p = s, *stop;
	if (!*s) {
		set_err(err, errlen, "missing time range after the days (expected HH:MM-HH:MM, " WIN_EXAMPLE ")");
		return false;
	}
	int a = parse_clock(&p), b = -1;
	const char *dash = skip_ws(p);
	if (a < 0) {
		stop = p;
	} else if (*dash != '-') {
		set_err(err, errlen, "time range \"%.*s\" has no end (expected HH:MM-HH:MM)", (int)(p - s), s);
		return false;
	} else {
		p = skip_ws(dash + 1);
		b = parse_clock(&p);
		stop = p;
		if (b >= 0 && *p && *p != ' ' && *p != '\t')
			b = -1;
	}
	int ln = (int)(stop + token_len(stop, "") - s);
	ln = ln > 40 ? 40 : ln;
	if (a < 0 || b < 0) {
		set_err(err, errlen, "bad time range \"%.*s\" (expected HH:MM-HH:MM, from 00:00 to 24:00)", ln, s);
		return false;
	}
	if (a == 24 * 60) {
		set_err(err, errlen, "bad time range \"%.*s\" (24:00 is only allowed as an end)", ln, s);
		return false;
	}
	if (a == b) {
		set_err(err, errlen, "empty time range \"%.*s\" (start equals end; 00:00-24:00 is a whole day)", ln, s);
		return false;
	}
	w->start = a;
	w->end = b;
	*sp = p;
	return true;
}

gw_window *gw_window_parse(const char *spec, char *err, size_t errlen)
{
	gw_window *w = gw_xcalloc(1, sizeof(*w));
	char days[128];
	const char *s = skip_ws(spec);
	if (!*s) {
		set_err(err, errlen, "empty window (" WIN_EXAMPLE ")");
		goto fail;
	}
	if (!parse_days(&s, w, days, sizeof(days), err, errlen))
		goto fail;
	s = skip_ws(s);
	if (!parse_time_range(&s, w, err, errlen))
		goto fail;
	s = skip_ws(s);
	size_t zl = token_len(s, "");
	char zone[TZ_MAX_NAME + 1] = "UTC";
	if (zl) {
		if (zl > TZ_MAX_NAME) {
			set_err(err, errlen, "time zone name too long (%zu characters)", zl);
			goto fail;
		}
		memcpy(zone, s, zl);
		zone[zl] = '\0';
		s = skip_ws(s + zl);
		if (*s) {
			size_t tl = token_len(s, "");
			set_err(err, errlen, "unexpected \"%.*s\" after the time zone (" WIN_EXAMPLE ")",
				(int)(tl > 40 ? 40 : tl), s);
			goto fail;
		}
	}
	if (!(w->tz = gw_tz_load(zone, err, errlen)))
		goto fail;
	w->text = gw_xasprintf("%s %02d:%02d-%02d:%02d %s", days, w->start / 60, w->start % 60, w->end / 60,
		w->end % 60, zone);
	return w;
fail:
	gw_window_free(w);
	return NULL;
}

void gw_window_free(gw_window *w)
{
	if (!w)
		return;
	gw_tz_free(w->tz);
	free(w->text);
	free(w);
}

const char *gw_window_str(const gw_window *w)
{
	return w->text;
}

bool gw_window_contains(const gw_window *w, int64_t t)
{
	struct tm tm;
	if (gw_tz_local(w->tz, t, &tm) != 0)
		return false;
	int sec = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
	int start = w->start * 60, end = w->end * 60;
	bool today = w->days & (1u << tm.tm_wday);
	if (start < end)
		return today && sec >= start && sec < end;
	/* Crosses midnight: the evening of a listed day, or the morning after one. */
	bool yesterday = w->days & (1u << ((tm.tm_wday + 6) % 7));
	return (today && sec >= start) || (yesterday && sec < end);
}

/* ---- the policy clock ---- */

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;
static int64_t clock_offset; /* written once under clock_once */
static int clock_init_rc;

int gw_clock_parse_instant(const char *s, int64_t *out)
{
	if (!s || !*s)
		return -1;
	const char *p = s;
	if (*p == '-')
		p++;
	if (*p && strspn(p, "0123456789") == strlen(p)) {
		if (strlen(p) > 18)
			return -1;
		*out = strtoll(s, NULL, 10);
		return 0;
	}
	int y, mo, d, h, mi, se, n = 0;
	if (strlen(s) != 20 || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 20)
		return -1;
	for (int i = 0; i < 20; i++)
		if (!isdigit((unsigned char)s[i]) && i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19)
			return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > month_len(y, mo) || h > 23 || mi > 59 || se > 59)
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return 0;
}

static int64_t wall_seconds(void)
{
	return (int64_t)(gw_wall_us() / 1000000);
}

static void clock_setup(void)
{
	const char *v = getenv("PGMOAT_TEST_NOW");
	int64_t given;
	if (!v || !*v)
		return;
	if (gw_clock_parse_instant(v, &given) != 0) {
		clock_init_rc = -1;
		return;
	}
	clock_offset = given - wall_seconds();
}

int gw_clock_init(void)
{
	pthread_once(&clock_once, clock_setup);
	return clock_init_rc;
}

int64_t gw_policy_now(void)
{
	pthread_once(&clock_once, clock_setup);
	return wall_seconds() + clock_offset;
}
