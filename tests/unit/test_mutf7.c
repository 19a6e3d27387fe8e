/*
 * test_mutf7.c — modified UTF-7 (RFC 3501 §5.1.3), both directions.
 *
 * Known vectors come from the RFC and from an independent encoder (base64 of
 * UTF-16BE, '/' -> ',', no '='); the property tests check the header's
 * promises on many generated strings: decode(encode(x)) == x for valid
 * UTF-8, and encode(decode(y)) == y for every y that decodes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"

struct vector {
	const char *mutf7;
	const char *utf8;
};

static const struct vector vectors[] = {
	{"", ""},
	{"INBOX", "INBOX"},
	{"Entw&APw-rfe", "Entw\xc3\xbcrfe"},
	{"&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
	{"a&-b", "a&b"},
	{"&-", "&"},
	{"&-&-", "&&"},
	{"~peter/mail/&U,BTFw-/&ZeVnLIqe-",
	 "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	 "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
	{"&AOQA5A-", "\xc3\xa4\xc3\xa4"},
	{"&AOQ-&-", "\xc3\xa4&"},
	{"&-&AOQ-", "&\xc3\xa4"},
	{"&AOQ--", "\xc3\xa4-"},
	{"&2D3eAA-", "\xf0\x9f\x98\x80"},               /* U+1F600 */
	{"Smile &2D3eAA- now", "Smile \xf0\x9f\x98\x80 now"},
	{"&2ADcAA-", "\xf0\x90\x80\x80"},               /* U+10000 */
	{"&2,,f,w-", "\xf4\x8f\xbf\xbf"},               /* U+10FFFF */
	{"&AAk-", "\t"},
	{"&AH8-", "\x7f"},
	{"&AIA-", "\xc2\x80"},
	{"a-b~c", "a-b~c"},
};

static char *decode_ok(const char *in)
{
	char *out = (char *)0x1;
	int rc = mutf7_decode(in, strlen(in), &out);
	cr_assert_eq(rc, 0, "decode(\"%s\") failed: %s", in, strerror(errno));
	cr_assert_not_null(out);
	return out;
}

static char *encode_ok(const char *in, size_t len)
{
	char *out = (char *)0x1;
	int rc = mutf7_encode(in, len, &out);
	cr_assert_eq(rc, 0, "encode failed: %s", strerror(errno));
	cr_assert_not_null(out);
	return out;
}

Test(mutf7, known_vectors_decode)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		char *out = decode_ok(vectors[i].mutf7);
		cr_expect_str_eq(out, vectors[i].utf8, "decode(\"%s\")",
				 vectors[i].mutf7);
		free(out);
	}
}

Test(mutf7, known_vectors_encode)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		char *out = encode_ok(vectors[i].utf8, strlen(vectors[i].utf8));
		cr_expect_str_eq(out, vectors[i].mutf7, "encode of vector %zu",
				 i);
		free(out);
	}
}

Test(mutf7, decode_respects_len)
{
	/* Bytes after `len` must not be read: "&-" cut to one byte is an
	 * unterminated shift, and "ab" cut to one byte is "a". */
	char *out = (char *)0x1;
	errno = 0;
	cr_expect_eq(mutf7_decode("&-", 1, &out), -1);
	cr_expect_eq(errno, EINVAL);
	cr_expect_null(out);
	cr_assert_eq(mutf7_decode("ab", 1, &out), 0);
	cr_expect_str_eq(out, "a");
	free(out);
}

static void expect_decode_einval(const char *in, size_t len)
{
	char *out = (char *)0x1;
	errno = 0;
	int rc = mutf7_decode(in, len, &out);
	cr_expect_eq(rc, -1, "decode accepted invalid input #%.*s#", (int)len,
		     in);
	cr_expect_eq(errno, EINVAL, "errno for #%.*s#", (int)len, in);
	cr_expect_null(out);
	if (rc == 0)
		free(out);
}

Test(mutf7, decode_rejects_invalid)
{
	static const char *bad[] = {
		"&",          /* '&' followed by nothing */
		"a&",         /* ... at the end */
		"&abc",       /* unterminated shift */
		"&AOQ",       /* unterminated after a whole unit */
		"&-&",        /* "&-" then a bare '&' */
		"&&-",        /* '&' is not a base64 digit */
		"&AGE-",      /* 'a' encoded: printable ASCII */
		"&ACY-",      /* '&' encoded */
		"&ACA-",      /* space encoded */
		"&AC0-",      /* '-' encoded */
		"&AH4-",      /* '~' encoded */
		"&AOQAYQ-",   /* 'a' hidden after a real character */
		"&AO*-",      /* bad base64 digit */
		"&AO=-",      /* padding is not modified base64 */
		"&AO/-",      /* '/' is plain base64, not modified */
		"&AO -",      /* space inside a shift */
		"&AOR-",      /* non-zero leftover bits */
		"&AOQA5B-",   /* non-zero leftover bits after two units */
		"&AOQA-",     /* one digit too many (8 spare bits) */
		"&AOQA5AA-",  /* one digit too many after two units */
		"&A-",        /* 6 bits: not even one unit */
		"&AO-",       /* 12 bits: not even one unit */
		"&2D0-",      /* lone high surrogate */
		"&2D0-x",     /* lone high surrogate, then ASCII */
		"&3gA-",      /* lone low surrogate */
		"&2D3YPQ-",   /* high surrogate followed by high */
		"&AOTeAA-",   /* low surrogate after a BMP character */
		"&2D3eAA-&3gA-", /* surrogate pair split over two shifts */
		"&AAA-",      /* U+0000 */
		"&AOQ-&AOQ-", /* adjacent shifts: canonical is &AOQA5A- */
		"&2D3eAA-&AOQ-",
		"\t",         /* raw control character */
		"a\nb",
		"\x7f",       /* raw DEL */
		"\xc3\xa4",   /* raw 8-bit (UTF-8 ä) */
		"Entw\xfcrfe", /* raw 8-bit (Latin-1 ü) */
		"\x80",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_decode_einval(bad[i], strlen(bad[i]));
	/* NUL can only be seen with an explicit length. */
	expect_decode_einval("a\0b", 3);
	expect_decode_einval("\0", 1);
}

static void expect_encode_einval(const char *in, size_t len)
{
	char *out = (char *)0x1;
	errno = 0;
	int rc = mutf7_encode(in, len, &out);
	cr_expect_eq(rc, -1, "encode accepted invalid UTF-8 (len %zu)", len);
	cr_expect_eq(errno, EINVAL);
	cr_expect_null(out);
	if (rc == 0)
		free(out);
}

Test(mutf7, encode_rejects_invalid_utf8)
{
	static const char *bad[] = {
		"\xc0\xaf",             /* overlong '/' */
		"\xc1\xbf",             /* overlong */
		"\xe0\x80\xaf",         /* overlong, 3 bytes */
		"\xe0\x9f\xbf",         /* overlong U+07FF */
		"\xf0\x80\x80\xaf",     /* overlong, 4 bytes */
		"\xf0\x8f\xbf\xbf",     /* overlong U+FFFF */
		"\xc0\x80",             /* overlong NUL */
		"\xed\xa0\x80",         /* U+D800 */
		"\xed\xbf\xbf",         /* U+DFFF */
		"\xed\xa0\xbd\xed\xb8\x80", /* CESU-8 surrogate pair */
		"\xf4\x90\x80\x80",     /* U+110000 */
		"\xf5\x80\x80\x80",
		"\xf8\x88\x80\x80\x80", /* 5-byte form */
		"\xff",
		"\xfe",
		"\xc3",                 /* truncated */
		"a\xc3",
		"\xe6\x97",
		"\xf0\x9f\x98",
		"\x80",                 /* stray continuation */
		"\xbf",
		"\xc3\x28",             /* bad continuation */
		"\xe6\x28\xa5",
		"\xf0\x9f\x28\x80",
		"ok\xe6\x97 then more", /* truncated in the middle */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_encode_einval(bad[i], strlen(bad[i]));
	expect_encode_einval("a\0b", 3);
	expect_encode_einval("\0", 1);
}

Test(mutf7, encode_respects_len)
{
	/* The byte after `len` would complete the character; it must not be
	 * looked at. */
	expect_encode_einval("\xc3\xbc", 1);
	expect_encode_einval("x\xe6\x97\xa5", 3);
	expect_encode_einval("\xf0\x9f\x98\x80", 3);
	char *out = encode_ok("ab", 1);
	cr_expect_str_eq(out, "a");
	free(out);
}

/* An independent UTF-8 writer, so that the generators below do not rely on
 * the code under test. */
static size_t test_utf8(char *p, uint32_t cp)
{
	unsigned char *u = (unsigned char *)p;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		return 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	u[0] = (unsigned char)(0xf0 | (cp >> 18));
	u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	u[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Check encode output is printable ASCII, decodes back to `in`, and is the
 * only spelling (encode(decode) gives it again). */
static void check_round_trip(const char *in, size_t len)
{
	char *enc = encode_ok(in, len);
	for (const char *p = enc; *p; p++)
		cr_assert(*p >= 0x20 && *p <= 0x7e, "non-printable in \"%s\"",
			  enc);
	char *dec = decode_ok(enc);
	cr_assert_eq(strlen(dec), len, "length differs for \"%s\"", enc);
	cr_assert(memcmp(dec, in, len) == 0, "round trip differs for \"%s\"",
		  enc);
	char *again = encode_ok(dec, strlen(dec));
	cr_assert_str_eq(again, enc);
	free(again);
	free(dec);
	free(enc);
}

Test(mutf7, every_bmp_character)
{
	char buf[8];
	for (uint32_t cp = 1; cp < 0x10000; cp++) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		check_round_trip(buf, test_utf8(buf, cp));
	}
}

Test(mutf7, every_astral_character)
{
	/* Each is one surrogate pair: 32 bits, six digits. */
	char buf[8];
	for (uint32_t cp = 0x10000; cp <= 0x10ffff; cp++) {
		size_t n = test_utf8(buf, cp);
		char *enc = encode_ok(buf, n);
		cr_assert_eq(strlen(enc), 8, "U+%X -> \"%s\"", cp, enc);
		char *dec = decode_ok(enc);
		cr_assert(strlen(dec) == n && memcmp(dec, buf, n) == 0,
			  "U+%X did not round-trip", cp);
		free(dec);
		free(enc);
	}
}

/* A random code point, weighted toward the interesting places: ASCII
 * (including '&' and '-'), control characters, Latin, CJK, astral. */
static uint32_t random_code_point(void)
{
	switch (rand() % 6) {
	case 0:
		return 0x20 + (uint32_t)(rand() % 0x5f);
	case 1:
		return "&-&-,+/~"[rand() % 8];
	case 2:
		return 1 + (uint32_t)(rand() % 0x9f);
	case 3:
		return 0xa0 + (uint32_t)(rand() % 0x700);
	case 4: {
		uint32_t cp;
		do
			cp = 0x800 + (uint32_t)(rand() % 0xf800);
		while (cp >= 0xd800 && cp <= 0xdfff);
		return cp;
	}
	default:
		return 0x10000 + (uint32_t)(rand() % 0x100000);
	}
}

Test(mutf7, random_unicode_round_trips)
{
	srand(20240501);
	char buf[64 * 4];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = 0, n = (size_t)(rand() % 64);
		for (size_t i = 0; i < n; i++)
			len += test_utf8(buf + len, random_code_point());
		check_round_trip(buf, len);
	}
}

Test(mutf7, random_mutf7_is_canonical_when_it_decodes)
{
	/* Random strings over the characters that matter; whatever decodes
	 * must encode back to exactly itself (one spelling per name). */
	static const char alphabet[] = "&&&&----AAAAOQ2D3eg,+/=aZ09 ~\t";
	srand(7);
	char buf[32];
	int decoded = 0, shifts = 0;
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = (size_t)(rand() % (int)sizeof buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
		char *dec = NULL;
		if (mutf7_decode(buf, len, &dec) != 0) {
			cr_assert_eq(errno, EINVAL);
			cr_assert_null(dec);
			continue;
		}
		decoded++;
		char *enc = encode_ok(dec, strlen(dec));
		cr_assert(strlen(enc) == len && memcmp(enc, buf, len) == 0,
			  "#%.*s# decoded but re-encodes as #%s#", (int)len,
			  buf, enc);
		for (const unsigned char *p = (unsigned char *)dec; *p; p++)
			if (*p >= 0x80 || *p < 0x20) {
				shifts++;
				break;
			}
		free(enc);
		free(dec);
	}
	/* The generator must actually reach both outcomes, with shifts. */
	cr_expect_gt(decoded, 1000);
	cr_expect_gt(shifts, 100);
}

Test(mutf7, failure_leaves_out_null)
{
	char *out = (char *)0x1;
	cr_expect_eq(mutf7_decode("&AGE-", 5, &out), -1);
	cr_expect_null(out);
	out = (char *)0x1;
	cr_expect_eq(mutf7_encode("\xff", 1, &out), -1);
	cr_expect_null(out);
}
