/*
 * The built-in detectors on their own: how many MB/s of column values one
 * core scans with every entity enabled.
 *
 *   detect_bench [--mb N] [--reps R]
 *
 * Generates N MB (default 64) of mixed text from a fixed seed: English-like
 * prose with numbers, prices, dates, times, versions, street addresses and
 * order references, and now and then a piece of personal data or a secret
 * (emails, phones, cards, SSNs, IBANs, IPs, JWTs, keys). The text is cut
 * into values of 200 bytes, then of 4 KiB, and gw_detect runs over each
 * value; the best of R runs is printed (MB = 10^6 bytes) with the spans
 * found per entity.
 */
#include "core/util.h"
#include "mask/detect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)((rng >> 16) % n);
}

static const char *const words[] = {"the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as",
	"by", "at", "from", "his", "her", "it", "an", "were", "are", "which", "this", "be", "or", "has", "had", "not",
	"but", "also", "their", "after", "first", "new", "two", "one", "been", "other", "they", "who", "all", "more",
	"when", "into", "its", "time", "during", "between", "where", "customer", "order", "shipped", "invoice", "account",
	"payment", "received", "delivery", "address", "please", "contact", "support", "refund", "requested", "update",
	"status", "pending", "approved", "Monday", "January", "Berlin", "London", "Company", "The", "We", "Our", "A",
	"Please", "Thanks", "Regards", "Dear", "team", "report", "quarter", "revenue", "growth", "meeting", "agenda",
	"project", "deadline", "review", "notes", "about", "would", "could", "should", "there", "because", "through"};

static const char *const streets[] = {"Main Street", "Oak Avenue", "Elm St.", "Hauptstraße", "High Road",
	"Rue de Rivoli", "Park Lane", "5th Avenue"};

/* Valid-looking PII and secrets, as the bench's occasional finds. */
static const char *const pii[] = {"john.doe@example.com", "a.nowak+orders@mail.example.co.uk",
	"+1 202-555-0143", "(415) 555-2671", "+44 20 7946 0958", "4111 1111 1111 1111", "5500-0000-0000-0004",
	"378282246310005", "536-22-1234", "DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "192.168.10.24",
	"2001:db8::8a2e:370:7334", "AKIAIOSFODNN7EXAMPLE", "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",
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"};

__attribute__((format(printf, 4, 5))) static size_t put(char *out, size_t cap, size_t n, const char *fmt, ...)
{
	if (n >= cap)
		return n;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(out + n, cap - n, fmt, ap);
	va_end(ap);
	if (k < 0)
		return n;
	return (size_t)k < cap - n ? n + (size_t)k : cap;
}

/* One sentence of 6-20 words with, now and then, a number, a date, an address, or PII. */
static size_t sentence(char *out, size_t cap, size_t n)
{
	int nw = 6 + (int)rnd(15);
	for (int w = 0; w < nw && n < cap; w++) {
		if (w)
			n = put(out, cap, n, " ");
		uint32_t r = rnd(1000);
		if (r < 880)
			n = put(out, cap, n, "%s", words[rnd(GW_ARRAY_LEN(words))]);
		else if (r < 910)
			n = put(out, cap, n, "%u", rnd(1000));
		else if (r < 925)
			n = put(out, cap, n, "$%u.%02u", rnd(5000), rnd(100));
		else if (r < 940)
			n = put(out, cap, n, "%04u-%02u-%02u", 1990 + rnd(40), 1 + rnd(12), 1 + rnd(28));
		else if (r < 950)
			n = put(out, cap, n, "%02u.%02u.%04u %02u:%02u", 1 + rnd(28), 1 + rnd(12), 1990 + rnd(40), rnd(24), rnd(60));
		else if (r < 960)
			n = put(out, cap, n, "%u %s, Springfield, IL %05u", 1 + rnd(9999), streets[rnd(GW_ARRAY_LEN(streets))],
				rnd(100000));
		else if (r < 970)
			n = put(out, cap, n, "#%c-%06u", 'A' + (int)rnd(26), rnd(1000000));
		else if (r < 978)
			n = put(out, cap, n, "v%u.%u.%u", rnd(10), rnd(30), rnd(100));
		else if (r < 986)
			n = put(out, cap, n, "%u%%", rnd(100));
		else if (r < 992)
			n = put(out, cap, n, "%u,%03u", 1 + rnd(999), rnd(1000));
		else
			n = put(out, cap, n, "%s", pii[rnd(GW_ARRAY_LEN(pii))]);
	}
	return put(out, cap, n, "%s", rnd(10) ? ". " : ".\n");
}

static double scan(const gw_detector *d, const char *text, size_t len, size_t vsize, size_t *found, size_t *per)
{
	struct gw_span sp[256];
	size_t total = 0;
	uint64_t t0 = gw_mono_us();
	for (size_t off = 0; off < len; off += vsize) {
		size_t n = len - off < vsize ? len - off : vsize;
		size_t k = gw_detect(d, text + off, n, sp, GW_ARRAY_LEN(sp));
		total += k;
		if (per)
			for (size_t j = 0; j < k && j < GW_ARRAY_LEN(sp); j++)
				per[sp[j].entity]++;
	}
	uint64_t us = gw_mono_us() - t0;
	*found = total;
	return us ? (double)len / (double)us : 0; /* bytes per microsecond = MB/s */
}

int main(int argc, char **argv)
{
	size_t mb = 64;
	int reps = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = (size_t)atol(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else {
			printf("usage: detect_bench [--mb N] [--reps R]\n");
			return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
		}
	}
	if (mb == 0 || reps < 1)
		return 2;
	size_t len = mb * 1000 * 1000;
	char *text = gw_xmalloc(len + 512);
	size_t n = 0;
	while (n < len)
		n = sentence(text, len + 512, n);
	len = n < len ? n : len;

	char err[128];
	gw_detector *d = gw_detector_new(GW_ENT_ALL, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "detect_bench: %s\n", err);
		return 1;
	}
	static const size_t sizes[] = {200, 4096};
	double best[2] = {0, 0};
	size_t found[2] = {0, 0};
	size_t per[GW_ENT__COUNT] = {0};
	for (size_t s = 0; s < 2; s++)
		for (int r = 0; r < reps; r++) {
			double v = scan(d, text, len, sizes[s], &found[s], s == 1 && r == 0 ? per : NULL);
			if (v > best[s])
				best[s] = v;
		}
	printf("text: %.1f MB, %zu values of 200 B, %zu of 4 KiB\n", (double)len / 1e6, (len + 199) / 200,
		(len + 4095) / 4096);
	printf("detectors: %.0f MB/s (values of 200 B), %.0f MB/s (4 KiB)\n", best[0], best[1]);
	printf("matches: %zu (200 B values), %zu (4 KiB values):", found[0], found[1]);
	for (int e = 0; e < GW_ENT__COUNT; e++)
		printf(" %s %zu", gw_entity_name(e), per[e]);
	printf("\n");
	gw_detector_free(d);
	free(text);
	return 0;
}
