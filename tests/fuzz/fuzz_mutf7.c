/*
 * fuzz_mutf7.c — modified UTF-7 (lib/mutf7.c) both ways.
 *
 * fuzz-sources: lib/mutf7.c lib/utf8.c
 *
 * mutf7.h promises strictness in both directions, hence exact round
 * trips: encode(decode(y)) == y for every y that decodes, and
 * decode(encode(x)) == x for every x that encodes.  Also checked: encoding
 * succeeds exactly for valid UTF-8 without NUL (against a reference
 * validator written here), an encoding is printable ASCII, and a decoding
 * is valid UTF-8 without NUL.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mutf7: %s\n", what);
		abort();
	}
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, at most U+10FFFF;
 * and no NUL, which a folder name cannot hold. */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t k;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += k + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *dec = NULL, *enc = NULL, *back = NULL;

	/* Decode, then encode back: the very same bytes. */
	if (mutf7_decode(in, size, &dec) == 0) {
		size_t n = strlen(dec);
		check(valid_utf8((const unsigned char *)dec, n),
		      "decode gave invalid UTF-8");
		check(mutf7_encode(dec, n, &back) == 0,
		      "what decode gave does not encode");
		check(strlen(back) == size && memcmp(back, in, size) == 0,
		      "encode(decode(y)) != y");
		free(back);
		back = NULL;
	} else {
		check(dec == NULL, "decode failed but left *out set");
		check(errno == EINVAL || errno == ENOMEM,
		      "decode failed with an undocumented errno");
	}
	free(dec);

	/* Encode, then decode back. */
	int ok = mutf7_encode(in, size, &enc) == 0;
	check(ok == valid_utf8(data, size),
	      ok ? "encode accepted invalid UTF-8 or NUL"
		 : "encode refused valid UTF-8");
	if (ok) {
		size_t n = strlen(enc);
		for (size_t i = 0; i < n; i++)
			check(enc[i] >= 0x20 && enc[i] < 0x7f,
			      "encoding is not printable ASCII");
		check(mutf7_decode(enc, n, &back) == 0,
		      "what encode gave does not decode");
		check(strlen(back) == size && memcmp(back, in, size) == 0,
		      "decode(encode(x)) != x");
		free(back);
	} else {
		check(enc == NULL, "encode failed but left *out set");
	}
	free(enc);
	return 0;
}
