/*
 * mutf7.c — IMAP's modified UTF-7 for mailbox names.
 *
 * References: RFC 3501 §5.1.3 (modified UTF-7), RFC 2152 (UTF-7),
 * RFC 3629 (UTF-8), RFC 2781 (UTF-16).
 *
 * Strictness is the point: a folder name is part of a backup's identity,
 * so exactly one spelling must decode to each name and decoding must be
 * undone exactly by encoding.  Everything a canonical encoder would not
 * produce is therefore rejected, including two shifts in a row
 * ("&AOQ-&AOQ-"), which RFC 3501 forbids encoders to write; the canonical
 * form of that name is "&AOQA5A-".  A caller that meets such a name keeps
 * the server's raw bytes instead (see fsname.h).
 */
#include "mutf7.h"
#include "utf8.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* The value of modified-base64 digit `c`, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* Characters that stand for themselves, and so must never appear inside
 * a shift. */
static bool is_direct(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

static int fail(char *buf, int err, char **out)
{
	free(buf);
	*out = NULL;
	errno = err;
	return -1;
}

static size_t put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xe0 | cp >> 12);
		p[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		p[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | cp >> 18);
	p[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	p[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	p[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decode the base64 of one shift, in[0..n) (between '&' and '-'), appending
 * UTF-8 at *op.  Returns false on anything a canonical encoder would not
 * have written.
 */
static bool decode_shift(const unsigned char *in, size_t n, char **op)
{
	uint32_t bits = 0; /* at most 15 pending bits + 6 new ones */
	unsigned nbits = 0;
	uint32_t high = 0; /* pending high surrogate, or 0 */

	for (size_t i = 0; i < n; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return false;
		bits = bits << 6 | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = bits >> nbits & 0xffff;
		bits &= (1u << nbits) - 1;

		if (high) {
			if (u < 0xdc00 || u > 0xdfff)
				return false;
			u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
			continue;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return false;
		} else if (u == 0 || is_direct(u)) {
			return false;
		}
		*op += put_utf8(*op, u);
	}
	/* A canonical encoder pads the last unit with 0, 2 or 4 zero bits;
	 * six or more left over is a digit too many, which would make a
	 * second spelling of the same name. */
	return high == 0 && nbits < 6 && bits == 0;
}

int mutf7_decode(const char *in, size_t len, char **out)
{
	const unsigned char *s = (const unsigned char *)in;

	/* Each direct byte yields one byte; each base64 digit carries 6 bits
	 * and at most 3 UTF-8 bytes come from 16 bits (4 from a 32-bit
	 * surrogate pair), so 2 bytes per input byte is ample. */
	if (len > (SIZE_MAX - 1) / 2)
		return fail(NULL, ENOMEM, out);
	char *buf = malloc(2 * len + 1);
	if (!buf)
		return fail(NULL, ENOMEM, out);
	char *op = buf;
	bool after_shift = false; /* the previous token was a non-empty shift */

	for (size_t i = 0; i < len;) {
		if (s[i] != '&') {
			if (!is_direct(s[i]))
				return fail(buf, EINVAL, out);
			*op++ = (char)s[i++];
			after_shift = false;
			continue;
		}
		size_t start = ++i;
		while (i < len && s[i] != '-')
			i++;
		if (i == len)
			return fail(buf, EINVAL, out);
		if (i == start) {
			*op++ = '&';
			after_shift = false;
		} else {
			if (after_shift ||
			    !decode_shift(s + start, i - start, &op))
				return fail(buf, EINVAL, out);
			after_shift = true;
		}
		i++; /* the '-' */
	}
	*op = '\0';
	*out = buf;
	return 0;
}


/* Append the base64 of UTF-16 unit `u` through the bit accumulator. */
static void put_unit(char **op, uint32_t *bits, unsigned *nbits, uint32_t u)
{
	*bits = *bits << 16 | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		*(*op)++ = b64_alphabet[*bits >> *nbits & 0x3f];
	}
	*bits &= (1u << *nbits) - 1;
}

/* Close a shift: flush the 0, 2 or 4 bits left over, padded with zero bits
 * to a whole digit, and write the '-' (always, even before a character that
 * is not a base64 digit, so that the one spelling is the canonical one). */
static void end_shift(char **op, uint32_t bits, unsigned nbits)
{
	if (nbits)
		*(*op)++ = b64_alphabet[bits << (6 - nbits) & 0x3f];
	*(*op)++ = '-';
}

int mutf7_encode(const char *in, size_t len, char **out)
{
	const unsigned char *s = (const unsigned char *)in;

	/* Worst case is a lone non-direct byte between direct ones: "&AAE-",
	 * five bytes for one. */
	if (len > (SIZE_MAX - 1) / 5)
		return fail(NULL, ENOMEM, out);
	char *buf = malloc(5 * len + 1);
	if (!buf)
		return fail(NULL, ENOMEM, out);
	char *op = buf;
	bool shifted = false;
	uint32_t bits = 0;
	unsigned nbits = 0;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (n == 0 || cp == 0)
			return fail(buf, EINVAL, out);
		i += n;

		if (is_direct(cp)) {
			if (shifted) {
				end_shift(&op, bits, nbits);
				shifted = false;
				bits = nbits = 0;
			}
			*op++ = (char)cp;
			if (cp == '&')
				*op++ = '-';
			continue;
		}
		if (!shifted) {
			*op++ = '&';
			shifted = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			put_unit(&op, &bits, &nbits, 0xd800 + (cp >> 10));
			put_unit(&op, &bits, &nbits, 0xdc00 + (cp & 0x3ff));
		} else {
			put_unit(&op, &bits, &nbits, cp);
		}
	}
	if (shifted)
		end_shift(&op, bits, nbits);
	*op = '\0';
	*out = buf;
	return 0;
}
