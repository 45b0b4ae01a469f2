/*
 * gw_detect — the built-in content detectors (masking's "builtin" DLP
 * provider).
 *
 * Owns: finding personal data and secrets inside one value's bytes: the
 * entity names (Presidio's), the compiled detector set, and the scan that
 * returns byte spans. It does not decide what to mask or how (column rules,
 * rewriting rows): that is the rest of mask/.
 *
 * What each entity accepts follows Microsoft Presidio's recognizers, so that
 * operators comparing the two see the same verdicts; where this file is
 * stricter or looser the rule says so in detect.c (look for "Presidio").
 *
 *   EMAIL_ADDRESS  local@domain.tld (top-level label alphabetic, not a file
 *                  extension such as .png)
 *   CREDIT_CARD    13-19 digits, plain or grouped by single spaces/dashes,
 *                  a card network's leading digits, Luhn checksum
 *   US_SSN         AAA-GG-SSSS (or spaces, dots; one delimiter), or 9 plain
 *                  digits; Presidio's invalid and sample values refused
 *   PHONE_NUMBER   +CC international, US/NANP (10 digits, (AAA) forms),
 *                  European/Indian trunk-0 national numbers; not dates, IPs
 *   IBAN_CODE      country + check digits + BBAN, optional space/dash every
 *                  4 characters, the country's length and format, mod 97
 *   IP_ADDRESS     IPv4 dotted quad (no leading zeros), IPv6 in all its forms
 *   PRIVATE_KEY    -----BEGIN ... PRIVATE KEY----- through the END line, or to
 *                  the end of the value
 *   JWT            header.payload[.signature] in base64url, header "eyJ..."
 *   API_KEY        AWS AKIA/ASIA ids, GitHub ghp_/gho_/ghu_/ghs_/ghr_ and
 *                  github_pat_, Slack xox?-, Stripe sk_live_/rk_live_,
 *                  Google AIza, OpenAI-style sk-...
 *
 * The scan is one pass over the value that stops only at bytes that can
 * begin (or sit inside) an entity, then validates there in bounded time: no
 * regular expressions, no allocation, no per-thread state. Input may be any
 * bytes (NULs, invalid UTF-8); offsets are bytes.
 */
#ifndef GW_MASK_DETECT_H
#define GW_MASK_DETECT_H

#include <stddef.h>
#include <stdint.h>

enum gw_entity {
	GW_ENT_EMAIL_ADDRESS,
	GW_ENT_CREDIT_CARD,
	GW_ENT_US_SSN,
	GW_ENT_PHONE_NUMBER,
	GW_ENT_IBAN_CODE,
	GW_ENT_IP_ADDRESS,
	GW_ENT_PRIVATE_KEY,
	GW_ENT_JWT,
	GW_ENT_API_KEY,
	GW_ENT__COUNT
};

#define GW_ENT_BIT(e) (1u << (e))
#define GW_ENT_ALL ((1u << GW_ENT__COUNT) - 1)

/* "EMAIL_ADDRESS", "CREDIT_CARD", ... "API_KEY"; "?" when out of range. */
const char *gw_entity_name(enum gw_entity e);
/* The entity of a name (ASCII case-insensitive), or -1 when unknown. */
int gw_entity_from_name(const char *name);

/*
 * A compiled detector set: immutable once made, so one may be shared by any
 * number of threads scanning at once.
 */
typedef struct gw_detector gw_detector;

/*
 * A detector for the entities whose GW_ENT_BIT()s are set in entity_mask
 * (0 is allowed and finds nothing). Returns NULL with a message in err when
 * the mask names an unknown entity. Free with gw_detector_free (NULL is a
 * no-op).
 */
__attribute__((warn_unused_result)) gw_detector *gw_detector_new(unsigned entity_mask, char *err, size_t errlen);
void gw_detector_free(gw_detector *d);

/* A found entity: bytes [start, end) of the value. */
struct gw_span {
	uint32_t start, end;
	uint8_t entity; /* enum gw_entity */
};

/*
 * Scan val[0..len) once. Writes up to max spans into spans, sorted by start
 * and non-overlapping (overlapping finds are merged into one span that keeps
 * the entity of the widest of them; adjacent spans stay apart), and returns
 * how many there are. A return above max means spans holds only the first
 * max: the caller masks the whole value, or scans again with room for the
 * number returned (beyond max that number is an upper bound, never below
 * the true count). Values longer than UINT32_MAX bytes are not scanned and
 * return SIZE_MAX. Thread-safe; spans may be NULL when max is 0.
 */
__attribute__((warn_unused_result)) size_t gw_detect(const gw_detector *d, const char *val, size_t len,
	struct gw_span *spans, size_t max);

#endif
