/* Unit tests of mask/detect: each entity's positives and negatives, merging, offsets, hostile input. */
#include "../../tests/unit/unit.h"
#include "core/util.h"
#include "mask/detect.h"

#include <string.h>

static gw_detector *detector(unsigned mask)
{
	char err[128];
	gw_detector *d = gw_detector_new(mask, err, sizeof(err));
	CHECK(d);
	return d;
}

/* Spans are in bounds, non-empty, sorted and apart. */
static void check_spans(const struct gw_span *sp, size_t n, size_t len)
{
	for (size_t k = 0; k < n; k++) {
		CHECK(sp[k].start < sp[k].end);
		CHECK(sp[k].end <= len);
		CHECK(sp[k].entity < GW_ENT__COUNT);
		if (k)
			CHECK(sp[k - 1].end <= sp[k].start);
	}
}

static void dump(const char *text, size_t len, const struct gw_span *sp, size_t n)
{
	fprintf(stderr, "     in \"%.*s\": %zu span(s)", (int)len, text, n);
	for (size_t k = 0; k < n && k < 8; k++)
		fprintf(stderr, " %s[%u,%u)=\"%.*s\"", gw_entity_name(sp[k].entity), sp[k].start, sp[k].end,
			(int)(sp[k].end - sp[k].start), text + sp[k].start);
	fprintf(stderr, "\n");
}

/* text holds exactly one span, of entity ent, covering the first occurrence of what. */
static void one_at(const gw_detector *d, const char *text, int ent, const char *what, int line)
{
	struct gw_span sp[8];
	size_t len = strlen(text), n = gw_detect(d, text, len, sp, 8);
	const char *w = strstr(text, what);
	if (!w || n != 1 || sp[0].entity != ent || sp[0].start != (uint32_t)(w - text) ||
		sp[0].end != (uint32_t)(w - text + strlen(what))) {
		fprintf(stderr, "     line %d: want %s \"%s\"\n", line, gw_entity_name(ent), what);
		dump(text, len, sp, n);
		CHECK(!"one span as expected");
	}
	check_spans(sp, n, len);
}

static void none_at(const gw_detector *d, const char *text, int line)
{
	struct gw_span sp[8];
	size_t len = strlen(text), n = gw_detect(d, text, len, sp, 8);
	if (n) {
		fprintf(stderr, "     line %d: want nothing\n", line);
		dump(text, len, sp, n);
		CHECK(!"no span");
	}
}

#define ONE(d, text, ent, what) one_at(d, text, ent, what, __LINE__)
#define SAME(d, text, ent) one_at(d, text, ent, text, __LINE__)
#define NONE(d, text) none_at(d, text, __LINE__)

GW_TEST(detect_names_and_masks)
{
	CHECK(!strcmp(gw_entity_name(GW_ENT_EMAIL_ADDRESS), "EMAIL_ADDRESS"));
	CHECK(!strcmp(gw_entity_name(GW_ENT_API_KEY), "API_KEY"));
	CHECK(!strcmp(gw_entity_name(GW_ENT__COUNT), "?"));
	for (int e = 0; e < GW_ENT__COUNT; e++)
		CHECK(gw_entity_from_name(gw_entity_name(e)) == e);
	CHECK(gw_entity_from_name("iban_code") == GW_ENT_IBAN_CODE);
	CHECK(gw_entity_from_name("PERSON") == -1);
	CHECK(gw_entity_from_name("") == -1);
	CHECK(gw_entity_from_name(NULL) == -1);
	char err[64] = "";
	CHECK(!gw_detector_new(1u << GW_ENT__COUNT, err, sizeof(err)));
	CHECK(strstr(err, "unknown"));
	gw_detector_free(NULL);

	/* Only the entities asked for are found. */
	const char *text = "mail john@example.com card 4111 1111 1111 1111 ip 10.1.2.3";
	gw_detector *email = detector(GW_ENT_BIT(GW_ENT_EMAIL_ADDRESS));
	ONE(email, text, GW_ENT_EMAIL_ADDRESS, "john@example.com");
	gw_detector *card = detector(GW_ENT_BIT(GW_ENT_CREDIT_CARD));
	ONE(card, text, GW_ENT_CREDIT_CARD, "4111 1111 1111 1111");
	gw_detector *nothing = detector(0);
	NONE(nothing, text);
	gw_detector *all = detector(GW_ENT_ALL);
	struct gw_span sp[4];
	CHECK(gw_detect(all, text, strlen(text), sp, 4) == 3);
	CHECK(sp[0].entity == GW_ENT_EMAIL_ADDRESS && sp[1].entity == GW_ENT_CREDIT_CARD && sp[2].entity == GW_ENT_IP_ADDRESS);
	CHECK(gw_detect(all, "", 0, sp, 4) == 0);
	CHECK(gw_detect(all, NULL, 0, sp, 4) == 0);
	gw_detector_free(email);
	gw_detector_free(card);
	gw_detector_free(nothing);
	gw_detector_free(all);
}

GW_TEST(detect_email)
{
	gw_detector *d = detector(GW_ENT_ALL);
	SAME(d, "john.doe@example.com", GW_ENT_EMAIL_ADDRESS);
	ONE(d, "Contact jane+tag@mail.example.co.uk.", GW_ENT_EMAIL_ADDRESS, "jane+tag@mail.example.co.uk");
	ONE(d, "<a.b-c_d@sub-domain.example.org>", GW_ENT_EMAIL_ADDRESS, "a.b-c_d@sub-domain.example.org");
	ONE(d, "write to x@y.io, or call", GW_ENT_EMAIL_ADDRESS, "x@y.io");
	ONE(d, "(first.o'brien@example.ie)", GW_ENT_EMAIL_ADDRESS, "first.o'brien@example.ie");
	ONE(d, "user@xn--80ak6aa92e.com", GW_ENT_EMAIL_ADDRESS, "user@xn--80ak6aa92e.com");
	SAME(d, "USER@EXAMPLE.COM", GW_ENT_EMAIL_ADDRESS);
	ONE(d, "\"+.john@example.com\"", GW_ENT_EMAIL_ADDRESS, "john@example.com");
	ONE(d, "mailto:ops@example.com?subject=x", GW_ENT_EMAIL_ADDRESS, "ops@example.com");
	ONE(d, "\xe2\x80\x9cjohn@example.com\xe2\x80\x9d", GW_ENT_EMAIL_ADDRESS, "john@example.com");
	ONE(d, "a@b@example.com", GW_ENT_EMAIL_ADDRESS, "b@example.com");
	NONE(d, "john@localhost");
	NONE(d, "icon@2x.png and logo@3x.jpeg");
	NONE(d, "john.@example.com");
	NONE(d, "@example.com");
	NONE(d, "john@example");
	NONE(d, "john@example.c");
	NONE(d, "a@b.123");
	NONE(d, "foo@bar..com");
	NONE(d, "5 @ 3 o'clock, twitter @handle");
	NONE(d, "user@-example.com");
	gw_detector_free(d);
}

GW_TEST(detect_credit_card)
{
	gw_detector *d = detector(GW_ENT_ALL);
	static const char *const good[] = {"4111111111111111", "5500000000000004", "340000000000009", "378282246310005",
		"6011111111111117", "3530111333300000", "5105105105105100", "4012888888881881", "2223000048400011",
		"2221000000000009", "4222222222222", "6011000000000000001", "4111111111111111110", "4111 1111 1111 1111",
		"4111-1111-1111-1111", "3782 822463 10005", "6011 0000 0000 0000 001", "5555-5555 5555-4444"};
	for (size_t k = 0; k < GW_ARRAY_LEN(good); k++)
		SAME(d, good[k], GW_ENT_CREDIT_CARD);
	ONE(d, "paid with 4111 1111 1111 1111.", GW_ENT_CREDIT_CARD, "4111 1111 1111 1111");
	ONE(d, "card=4111111111111111&exp=12", GW_ENT_CREDIT_CARD, "4111111111111111");
	ONE(d, "12,4111111111111111,visa", GW_ENT_CREDIT_CARD, "4111111111111111");
	ONE(d, "order 12 4111 1111 1111 1111", GW_ENT_CREDIT_CARD, "4111 1111 1111 1111");
	ONE(d, "4111 1111 1111 1111 5 items", GW_ENT_CREDIT_CARD, "4111 1111 1111 1111");
	NONE(d, "4111111111111112");          /* Luhn */
	NONE(d, "4111 1111 1111 1112");
	NONE(d, "1234567812345678");
	NONE(d, "7111111111111114");          /* Luhn-valid, no network starts with 7 */
	NONE(d, "1234567890128");             /* 13 digits from 1: Presidio's exclusion */
	NONE(d, "2024000000000002");          /* 2-series outside 2221-2720 */
	NONE(d, "94111111111111111");         /* inside a longer digit run */
	NONE(d, "41111111111111111110");      /* 20 digits */
	NONE(d, "x4111111111111111");
	NONE(d, "4111111111111111x");
	NONE(d, "3.4111111111111111");        /* decimals */
	NONE(d, "4111  1111  1111  1111");    /* double spaces */
	NONE(d, "41 11 11 11 11 11 11 11");   /* first group must be 4 */
	NONE(d, "411111111111");              /* 12 digits */
	gw_detector_free(d);
}

GW_TEST(detect_us_ssn)
{
	gw_detector *d = detector(GW_ENT_ALL);
	gw_detector *ssn = detector(GW_ENT_BIT(GW_ENT_US_SSN));
	SAME(d, "536-22-1234", GW_ENT_US_SSN);
	SAME(d, "219-09-9999", GW_ENT_US_SSN);
	SAME(d, "536 22 1234", GW_ENT_US_SSN);
	SAME(d, "536.22.1234", GW_ENT_US_SSN);
	SAME(d, "536221234", GW_ENT_US_SSN);
	SAME(d, "901-23-4567", GW_ENT_US_SSN); /* 9xx: Presidio accepts (ITIN range) */
	ONE(d, "SSN: 457-55-5462, DOB 1980-01-01", GW_ENT_US_SSN, "457-55-5462");
	ONE(d, "ssn=219099999&x=1", GW_ENT_US_SSN, "219099999");
	ONE(d, "(772-12-3456)", GW_ENT_US_SSN, "772-12-3456");
	ONE(d, "her SSN is 536 22 1234.", GW_ENT_US_SSN, "536 22 1234");
	NONE(ssn, "123-45-6789");                 /* Presidio's sample values */
	NONE(ssn, "123456789");
	NONE(ssn, "078-05-1120");
	NONE(ssn, "987-65-4320");
	NONE(ssn, "000-12-3456");                 /* area 000 */
	NONE(ssn, "666-12-3456");                 /* area 666 */
	NONE(ssn, "536-00-1234");                 /* group 00 */
	NONE(ssn, "536-22-0000");                 /* serial 0000 */
	NONE(ssn, "111-11-1111");                 /* one digit */
	NONE(ssn, "536-22.1234");                 /* mixed delimiters */
	NONE(ssn, "53622-1234");                  /* ZIP+4 shape */
	NONE(ssn, "536-22-12345");
	NONE(ssn, "5536-22-1234");
	NONE(ssn, "5362212340");                  /* 10 digits */
	NONE(ssn, "id536221234");
	gw_detector_free(ssn);
	gw_detector_free(d);
}

GW_TEST(detect_phone)
{
	gw_detector *d = detector(GW_ENT_ALL);
	gw_detector *ph = detector(GW_ENT_BIT(GW_ENT_PHONE_NUMBER));
	static const char *const good[] = {"+1 202-555-0143", "+44 20 7946 0958", "+49 30 1234567", "(202) 555-0143",
		"(202)555-0143", "202-555-0143", "202.555.0143", "202 555 0143", "1-202-555-0143", "1 (202) 555-0143",
		"+1 (202) 555-0143", "+33 1 23 45 67 89", "020 7946 0958", "(020) 7946 0958", "01.23.45.67.89",
		"+91 98765 43210", "2025550143", "+14155552671", "030 12345678", "+44 (0)20 7946 0958",
		"+44 (0) 20 7946 0958", "+1.202.555.0143"};
	for (size_t k = 0; k < GW_ARRAY_LEN(good); k++)
		SAME(d, good[k], GW_ENT_PHONE_NUMBER);
	ONE(d, "Call me at 202-555-0143.", GW_ENT_PHONE_NUMBER, "202-555-0143");
	ONE(d, "tel:+442079460958;ext=1", GW_ENT_PHONE_NUMBER, "+442079460958");
	/* Where a phone number stops when another number follows. */
	ONE(d, "call +1 202-555-0143 425 times", GW_ENT_PHONE_NUMBER, "+1 202-555-0143");
	ONE(d, "call +44 20 7946 0958 3 times", GW_ENT_PHONE_NUMBER, "+44 20 7946 0958");
	ONE(d, "call 202-555-0143 2001 times", GW_ENT_PHONE_NUMBER, "202-555-0143");
	ONE(d, "+49 30 1234567 on 2024-01-15", GW_ENT_PHONE_NUMBER, "+49 30 1234567");
	NONE(ph, "2024-01-15");
	NONE(ph, "15.01.2024");
	NONE(ph, "01.02.2024 10:30");
	NONE(ph, "on 2024-01-15 10:30:00 UTC");
	NONE(ph, "12/25/2024");
	NONE(ph, "192.168.1.1");
	NONE(ph, "4111 1111 1111 1111");
	NONE(ph, "555-0143");                     /* no area code */
	NONE(ph, "123-456-7890");                 /* area code from 1 */
	NONE(ph, "202-055-0143");                 /* exchange from 0 */
	NONE(ph, "911-555-0143");                 /* N11 */
	NONE(ph, "+1 5");
	NONE(ph, "v1.2.3 build 45");
	NONE(ph, "1700000000");                   /* a Unix time */
	NONE(ph, "202-555-0143-12");
	NONE(ph, "box 09 2028-04-27");            /* a number, then a date */
	NONE(ph, "+49 2024-01-15");
	NONE(ph, "on 2023-03-23 708 201");
	NONE(ph, "#K-081825 6269 Main Street");
	NONE(ph, "1.202.555.0143.7");
	NONE(ph, "x2025550143");
	gw_detector_free(ph);
	gw_detector_free(d);
}

GW_TEST(detect_iban)
{
	gw_detector *d = detector(GW_ENT_ALL);
	static const char *const good[] = {"DE89370400440532013000", "DE89 3704 0044 0532 0130 00",
		"GB29NWBK60161331926819", "GB29 NWBK 6016 1331 9268 19", "FR1420041010050500013M02606",
		"NL91 ABNA 0417 1643 00", "ES9121000418450200051332", "IT60X0542811101000000123456",
		"CH9300762011623852957", "BE68-5390-0754-7034", "PL61109010140000071219812874", "NO9386011117947",
		"MT84MALT011000012345MTLCAST001S", "UA213223130000026007233566001", "BR1800360305000010009795493C1",
		"MU17BOMM0101101030300200000MUR"};
	for (size_t k = 0; k < GW_ARRAY_LEN(good); k++)
		SAME(d, good[k], GW_ENT_IBAN_CODE);
	ONE(d, "IBAN: DE89370400440532013000 in 2 days", GW_ENT_IBAN_CODE, "DE89370400440532013000");
	ONE(d, "iban=GB29NWBK60161331926819;", GW_ENT_IBAN_CODE, "GB29NWBK60161331926819");
	gw_detector *iban = detector(GW_ENT_BIT(GW_ENT_IBAN_CODE));
	NONE(iban, "DE89370400440532013001");     /* checksum */
	NONE(iban, "GB29NWBK60161331926818");
	NONE(iban, "DE8937040044053201300");      /* 21: DE is 22 */
	NONE(iban, "DE893704004405320130000");    /* 23 */
	NONE(iban, "XX89370400440532013000");     /* no such country */
	NONE(iban, "de89370400440532013000");     /* lower case (Presidio: upper only) */
	NONE(iban, "ADE89370400440532013000");
	NONE(iban, "GB29NWBK6016133192681X");     /* GB's BBAN ends in digits */
	NONE(iban, "DE89 3704 0044 0532 0130 00X");
	NONE(iban, "DE89 37 04 0044 0532 0130 00"); /* separators only between groups of 4 */
	NONE(iban, "GB95BARC10201530093459");     /* mod 97 */
	SAME(iban, "GB98NWBK60161331920048", GW_ENT_IBAN_CODE);
	NONE(iban, "GB01NWBK60161331920048");     /* same remainder as 98, but check digits are 02-98 */
	gw_detector_free(iban);
	gw_detector_free(d);
}

GW_TEST(detect_ip)
{
	gw_detector *d = detector(GW_ENT_ALL);
	static const char *const good[] = {"192.168.1.1", "10.0.0.255", "0.0.0.0", "255.255.255.255", "2001:db8::1",
		"::1", "1::", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::ffff:192.0.2.128",
		"64:ff9b::192.0.2.33", "1:2:3:4:5:6:1.2.3.4", "2001:DB8:0:0:8:800:200C:417A", "1:2:3:4:5:6:7::"};
	for (size_t k = 0; k < GW_ARRAY_LEN(good); k++)
		SAME(d, good[k], GW_ENT_IP_ADDRESS);
	ONE(d, "from 8.8.8.8.", GW_ENT_IP_ADDRESS, "8.8.8.8");
	ONE(d, "host=10.0.0.1:5432", GW_ENT_IP_ADDRESS, "10.0.0.1");
	ONE(d, "allow 10.0.0.0/8;", GW_ENT_IP_ADDRESS, "10.0.0.0");
	ONE(d, "[2001:db8::1]:5432", GW_ENT_IP_ADDRESS, "2001:db8::1");
	ONE(d, "peer fe80::1, up", GW_ENT_IP_ADDRESS, "fe80::1");
	struct gw_span sp[4];
	const char *range = "10.0.0.1-10.0.0.9";
	CHECK(gw_detect(d, range, strlen(range), sp, 4) == 2);
	CHECK(sp[0].start == 0 && sp[0].end == 8 && sp[1].start == 9 && sp[1].end == 17);
	gw_detector *ip = detector(GW_ENT_BIT(GW_ENT_IP_ADDRESS));
	NONE(ip, "256.1.1.1");
	NONE(ip, "1.2.3");
	NONE(ip, "01.02.03.04");
	NONE(ip, "1.2.3.4.5");
	NONE(ip, "OID 1.3.6.1.4.1.311");
	NONE(ip, "x1.2.3.4");
	NONE(ip, "at 10:30:00");
	NONE(ip, "std::vector<int> x::y");
	NONE(ip, "a :: b");
	NONE(ip, "1:2:3:4:5:6:7");
	NONE(ip, "1::2::3");
	NONE(ip, "12345::1");
	NONE(ip, "1:2:3:4:5:6:7:8:9");
	NONE(ip, "00:1A:2B:3C:4D:5E");
	NONE(ip, "gfe80::1");
	gw_detector_free(ip);
	gw_detector_free(d);
}

#define RSA_BODY "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi+Z1+4bfaFZn1Y2r+Xq5k1\nrB8wBBkN2cTjVvJrC1aZm1g=\n"

GW_TEST(detect_private_key)
{
	gw_detector *d = detector(GW_ENT_ALL);
	const char *rsa = "-----BEGIN RSA PRIVATE KEY-----\n" RSA_BODY "-----END RSA PRIVATE KEY-----";
	SAME(d, rsa, GW_ENT_PRIVATE_KEY);
	char text[512];
	snprintf(text, sizeof(text), "key:\n%s\ntrailing 4111111111111111", rsa);
	struct gw_span sp[4];
	CHECK(gw_detect(d, text, strlen(text), sp, 4) == 2);
	CHECK(sp[0].entity == GW_ENT_PRIVATE_KEY && sp[0].start == 5 && sp[0].end == 5 + strlen(rsa));
	CHECK(sp[1].entity == GW_ENT_CREDIT_CARD);
	SAME(d, "-----BEGIN PRIVATE KEY-----\n" RSA_BODY "-----END PRIVATE KEY-----", GW_ENT_PRIVATE_KEY);
	SAME(d, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
		GW_ENT_PRIVATE_KEY);
	SAME(d, "-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0BBQ0w\\n-----END ENCRYPTED PRIVATE KEY-----",
		GW_ENT_PRIVATE_KEY);
	SAME(d, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", GW_ENT_PRIVATE_KEY);
	/* No END: to the end of the value (the key's body is hidden even when the value was cut). */
	ONE(d, "x -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg john@example.com", GW_ENT_PRIVATE_KEY,
		"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg john@example.com");
	ONE(d, "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- ok", GW_ENT_PRIVATE_KEY,
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----");
	NONE(d, "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----");
	NONE(d, "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n-----END PUBLIC KEY-----");
	NONE(d, "----- BEGIN RSA PRIVATE KEY -----");
	NONE(d, "-----BEGIN RSA PRIVATE KEY");
	NONE(d, "-------------------- section --------------------");
	gw_detector_free(d);
}

#define JWT_IO "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

GW_TEST(detect_jwt)
{
	gw_detector *d = detector(GW_ENT_ALL);
	SAME(d, JWT_IO, GW_ENT_JWT);
	ONE(d, "Authorization: Bearer " JWT_IO "\r\n", GW_ENT_JWT, JWT_IO);
	ONE(d, "{\"token\":\"" JWT_IO "\"}", GW_ENT_JWT, JWT_IO);
	SAME(d, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", GW_ENT_JWT); /* alg none: empty signature */
	SAME(d, "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe"
		".48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji.XFBoMYUZodetZdvTiFvSkQ",
		GW_ENT_JWT); /* JWE: five segments */
	ONE(d, "jwt=" JWT_IO "&next=1", GW_ENT_JWT, JWT_IO);
	ONE(d, "a." JWT_IO ".", GW_ENT_JWT, JWT_IO);
	NONE(d, "eyJhbGciOiJIUzI1NiJ9");
	NONE(d, "eyJhbGciOiJIUzI1NiJ9.e");
	NONE(d, "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig");
	NONE(d, "eyJ.eyJzdWIiOiIxIn0.sig");
	NONE(d, "hey John, eyJ is how it starts.");
	NONE(d, "eyJhbGciOiJIUzI1NiJ9. eyJzdWIiOiIxIn0.sig");   /* a space is no base64url */
	NONE(d, "JJJ eyJJJJJJJJJJJJ");
	gw_detector_free(d);
}

GW_TEST(detect_api_keys)
{
	gw_detector *d = detector(GW_ENT_ALL);
	static const char *const good[] = {"AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A",
		"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", "gho_16C7e42F292c6912E7710c838347Ae178B4a",
		"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV",
		"xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxp-1234567890-abcdefghij",
		"sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_live_51H8x2YFz0Abc9XyZq",
		"AIzaSyA-1234567890abcdefghijklmnopqrstu", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6",
		"sk-T3BlbkFJabcdefghijklmnopqrstuvwxyz0123456789AB"};
	for (size_t k = 0; k < GW_ARRAY_LEN(good); k++)
		SAME(d, good[k], GW_ENT_API_KEY);
	ONE(d, "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n", GW_ENT_API_KEY, "AKIAIOSFODNN7EXAMPLE");
	ONE(d, "token: \"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\"", GW_ENT_API_KEY,
		"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");
	NONE(d, "AKIA1234");
	NONE(d, "AKIAIOSFODNN7EXAMPLEX");
	NONE(d, "xAKIAIOSFODNN7EXAMPLE");
	NONE(d, "ghp_short");
	NONE(d, "sk_test_4eC39HqLyjWDarjtT1zdp7dc");
	NONE(d, "xoxb-short");
	NONE(d, "sk-short-and-sweet");
	NONE(d, "task-force risk-based disk_live_thing Ask A question AIza");
	NONE(d, "AIzaSyA-1234567890abcdefghijklmnopqrst");  /* 34 after the prefix */
	gw_detector_free(d);
}

GW_TEST(detect_merge_and_offsets)
{
	gw_detector *d = detector(GW_ENT_ALL);
	struct gw_span sp[8];
	/* A card as an email's local part: one span, the email's (widest). */
	const char *t1 = "x 4111111111111111@example.com y";
	CHECK(gw_detect(d, t1, strlen(t1), sp, 8) == 1);
	CHECK(sp[0].start == 2 && sp[0].end == 30 && sp[0].entity == GW_ENT_EMAIL_ADDRESS);
	/* An IPv4 inside an IPv6 address is one IPv6 span. */
	const char *t2 = "::ffff:10.1.2.3";
	CHECK(gw_detect(d, t2, strlen(t2), sp, 8) == 1);
	CHECK(sp[0].start == 0 && sp[0].end == 15);
	/* Several, in order, with exact offsets; adjacent spans stay apart. */
	const char *t3 = "a@b.com 536-22-1234 +44 20 7946 0958 10.0.0.1,10.0.0.2";
	size_t n = gw_detect(d, t3, strlen(t3), sp, 8);
	if (n != 5)
		dump(t3, strlen(t3), sp, n);
	CHECK(n == 5);
	check_spans(sp, n, strlen(t3));
	static const struct { uint32_t s, e; int ent; } want[] = {{0, 7, GW_ENT_EMAIL_ADDRESS}, {8, 19, GW_ENT_US_SSN},
		{20, 36, GW_ENT_PHONE_NUMBER}, {37, 45, GW_ENT_IP_ADDRESS}, {46, 54, GW_ENT_IP_ADDRESS}};
	for (size_t k = 0; k < 5; k++)
		CHECK(sp[k].start == want[k].s && sp[k].end == want[k].e && sp[k].entity == want[k].ent);
	/* Email local part reaching back over an earlier span merges them. */
	const char *t4 = "536-22-1234.x@example.com";
	CHECK(gw_detect(d, t4, strlen(t4), sp, 8) == 1);
	CHECK(sp[0].start == 0 && sp[0].end == strlen(t4) && sp[0].entity == GW_ENT_EMAIL_ADDRESS);
	/* A JWT whose payload holds an AWS-looking id stays one JWT. */
	ONE(d, "t=" JWT_IO, GW_ENT_JWT, JWT_IO);
	gw_detector_free(d);
}

GW_TEST(detect_max_overflow)
{
	gw_detector *d = detector(GW_ENT_ALL);
	char text[1024] = "";
	for (int k = 0; k < 10; k++) {
		char one[64];
		snprintf(one, sizeof(one), "u%d@example.com, ", k);
		strcat(text, one);
	}
	struct gw_span sp[16];
	memset(sp, 0xee, sizeof(sp));
	CHECK(gw_detect(d, text, strlen(text), sp, 3) == 10);
	check_spans(sp, 3, strlen(text));
	CHECK(sp[0].start == 0 && sp[0].end == 14);
	CHECK(sp[3].start == 0xeeeeeeee); /* nothing written past max */
	CHECK(gw_detect(d, text, strlen(text), NULL, 0) == 10);
	CHECK(gw_detect(d, text, strlen(text), sp, 0) == 10);
	/* Rescanning with room for the number returned gives everything. */
	CHECK(gw_detect(d, text, strlen(text), sp, 10) == 10);
	check_spans(sp, 10, strlen(text));
	CHECK(sp[9].start == 9 * 16);
	/* Overlaps after the array filled up are not counted twice. */
	const char *t = "a@b.com c@d.com 4111111111111111@example.com";
	CHECK(gw_detect(d, t, strlen(t), sp, 2) == 3);
	CHECK(gw_detect(d, t, strlen(t), sp, 1) == 3);
	gw_detector_free(d);
}

static size_t scan_timed(const gw_detector *d, const char *buf, size_t len, struct gw_span *sp, size_t max)
{
	uint64_t t0 = gw_mono_us();
	size_t n = gw_detect(d, buf, len, sp, max);
	uint64_t us = gw_mono_us() - t0;
	if (us > 2000000)
		fprintf(stderr, "     %zu bytes took %llu us\n", len, (unsigned long long)us);
	CHECK(us < 2000000); /* linear: a quadratic walk of 1 MB takes minutes */
	check_spans(sp, n < max ? n : max, len);
	return n;
}

static void fill(char *buf, size_t len, const char *pat)
{
	size_t m = strlen(pat);
	for (size_t k = 0; k < len; k++)
		buf[k] = pat[k % m];
}

GW_TEST(detect_hostile_input)
{
	gw_detector *d = detector(GW_ENT_ALL);
	struct gw_span sp[64];
	/* NULs, invalid UTF-8 and high bytes around real finds: offsets are bytes. */
	static const char mixed[] = "\xff\xfe\x00john@example.com\x00\xc3\x28 4111111111111111\xe2\x82";
	size_t n = gw_detect(d, mixed, sizeof(mixed) - 1, sp, 64);
	CHECK(n == 2);
	CHECK(sp[0].start == 3 && sp[0].end == 19 && sp[0].entity == GW_ENT_EMAIL_ADDRESS);
	CHECK(sp[1].start == 23 && sp[1].end == 39 && sp[1].entity == GW_ENT_CREDIT_CARD);

	size_t len = 1 << 20;
	char *buf = gw_xmalloc(len);
	/* Runs that start a walk at every byte if the walks are not bounded. */
	static const char *const nothing[] = {"7", "eyJ", "a@", "a.", "-", "--", "::", "1:", "a:", "1.", "1 ", "1-",
		"(1", "+1", "_", "ghp_", "AKIA", "AIza", "DE89", "-----BEGIN ", "-----BEGIN RSA", "@a.", ".@", "a-",
		"1.1.1.", "f:", "(202)", "A", "4111111111111112 "};
	for (size_t k = 0; k < GW_ARRAY_LEN(nothing); k++) {
		fill(buf, len, nothing[k]);
		n = scan_timed(d, buf, len, sp, 64);
		if (n)
			fprintf(stderr, "     pattern \"%s\": %zu\n", nothing[k], n);
		CHECK(n == 0);
	}
	/* Runs of finds, or one find as long as the value. */
	static const char *const some[] = {"xoxb-", "eyJhbGciOiJIUzI1NiJ9.", "4111111111111111-", "a@b.cd ", "1.2.3.4 ",
		"::1 ", "536-22-1234 ", "DE89370400440532013000 "};
	for (size_t k = 0; k < GW_ARRAY_LEN(some); k++) {
		fill(buf, len, some[k]);
		CHECK(scan_timed(d, buf, len, sp, 64) >= 1);
	}
	fill(buf, len, "a");
	memcpy(buf + len - 12, "@example.com", 12);
	CHECK(scan_timed(d, buf, len, sp, 64) == 1 && sp[0].start == 0 && sp[0].end == len);
	memcpy(buf, "sk-", 3);
	memset(buf + 3, 'x', len - 3);
	CHECK(scan_timed(d, buf, len, sp, 64) == 1 && sp[0].end == len && sp[0].entity == GW_ENT_API_KEY);
	fill(buf, len, "-----BEGIN RSA PRIVATE KEY-----\n");
	CHECK(scan_timed(d, buf, len, sp, 64) == 1 && sp[0].start == 0 && sp[0].end == len);
	/* Many finds: counted past max, all found with room. */
	fill(buf, len, "4111111111111111 ");
	size_t cards = len / 17 + (len % 17 >= 16);
	CHECK(scan_timed(d, buf, len, sp, 64) == cards);
	struct gw_span *all = gw_xcalloc(cards, sizeof(*all));
	CHECK(gw_detect(d, buf, len, all, cards) == cards);
	check_spans(all, cards, len);
	free(all);
	/* Pseudo-random bytes, then random bytes drawn from the trigger alphabet. */
	uint64_t x = 88172645463325252ull;
	for (size_t k = 0; k < len; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[k] = (char)(x >> 24);
	}
	scan_timed(d, buf, len, sp, 64);
	static const char alpha[] = "0123456789 -.:@_+()AJeykxoKIS/abcdef";
	for (size_t k = 0; k < len; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[k] = alpha[(x >> 24) % (sizeof(alpha) - 1)];
	}
	scan_timed(d, buf, len, sp, 64);
	/* Every prefix of a find-rich text: no read past len (ASan) and no span past it. */
	const char *rich = "a@b.com 536-22-1234 +44 20 7946 0958 DE89 3704 0044 0532 0130 00 2001:db8::1 " JWT_IO
		" AKIAIOSFODNN7EXAMPLE -----BEGIN RSA PRIVATE KEY-----\nAB\n-----END RSA PRIVATE KEY-----";
	for (size_t k = 0; k <= strlen(rich); k++) {
		char *cut = gw_xmalloc(k ? k : 1);
		memcpy(cut, rich, k);
		n = gw_detect(d, cut, k, sp, 64);
		check_spans(sp, n, k);
		free(cut);
	}
	free(buf);
	gw_detector_free(d);
}
