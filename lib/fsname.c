/*
 * fsname.c — folder names to path components below the destination.
 *
 * References: RFC 3986 §2.1 (percent-encoding, borrowed here for the
 * notation only), RFC 3629 (UTF-8), FIPS 180-4 (SHA-256).  The user-facing
 * rule, with examples, is docs/layout.md; keep the two in step.
 *
 * Escaping works in units: a single byte (literal or "%XX") or one whole
 * valid UTF-8 character (literal, or each of its bytes as "%XX").  Cutting an
 * over-long name only ever happens between units, so a cut name never ends
 * in half a character or half an escape.
 *
 * Unescaping re-escapes its result and insists on getting the input back.
 * That one check rejects every spelling escape would not produce (lower-case
 * hex, "%41" for 'A', a literal leading '.', a literal "cur", ...) so that
 * each directory name stands for exactly one folder name.
 */
#include "fsname.h"
#include "utf8.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* "%~" and 16 hex digits of SHA-256: 64 bits, so that two different
 * over-long names sharing their first 182 bytes still get different
 * directories (a collision needs ~2^32 such names). */
#define HASH_HEX 16
#define CUT_SUFFIX (2 + HASH_HEX)
#define CUT_PREFIX_MAX (FSNAME_MAX_COMPONENT - CUT_SUFFIX)

static const char upper_hex[] = "0123456789ABCDEF";
static const char lower_hex[] = "0123456789abcdef";

/* A subfolder called "cur", "new" or "tmp" would land inside its parent's
 * Maildir.  Compared without regard to case because the destination may be
 * on a case-insensitive filesystem (macOS, FAT, SMB shares). */
static bool is_maildir_name(const char *s, size_t len)
{
	return len == 3 && (strncasecmp(s, "cur", 3) == 0 ||
			    strncasecmp(s, "new", 3) == 0 ||
			    strncasecmp(s, "tmp", 3) == 0);
}

/* Bytes that are unsafe anywhere in a component.  C1 controls are handled
 * with the UTF-8 characters, since they are two bytes long. */
static bool is_unsafe_byte(unsigned char b)
{
	return b < 0x20 || b == 0x7f || b == '%' || b == '/' || b == '\\';
}

static char *put_escape(char *p, unsigned char b)
{
	*p++ = '%';
	*p++ = upper_hex[b >> 4];
	*p++ = upper_hex[b & 0xf];
	return p;
}

/* Replace the tail of an over-long escaped name: keep its first `keep`
 * bytes and append "%~" and the hash of the original bytes. */
static int cut(char *buf, size_t keep, const char *comp, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(comp, len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen < HASH_HEX / 2) {
		errno = EIO;
		return -1;
	}
	char *p = buf + keep;
	*p++ = '%';
	*p++ = '~';
	for (size_t i = 0; i < HASH_HEX / 2; i++) {
		*p++ = lower_hex[md[i] >> 4];
		*p++ = lower_hex[md[i] & 0xf];
	}
	*p = '\0';
	return 0;
}

int fsname_escape_component(const char *comp, size_t len, char **out)
{
	const unsigned char *s = (const unsigned char *)comp;

	*out = NULL;
	/* Every input byte becomes at most three ("%XX"); a cut name is
	 * never longer than the escaped one it replaces. */
	if (len > (SIZE_MAX - 2) / 3) {
		errno = ENOMEM;
		return -1;
	}
	char *buf = malloc(3 * len + 2);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	if (len == 0) {
		/* '%' is otherwise always followed by two hex digits or '~',
		 * so a lone "%" can stand for the empty name. */
		strcpy(buf, "%");
		*out = buf;
		return 0;
	}

	bool maildir = is_maildir_name(comp, len);
	char *p = buf;
	size_t boundary = 0; /* end of the last unit that fits a cut name */

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n;

		if (i == 0 && (s[0] == '.' || maildir)) {
			p = put_escape(p, s[i++]);
		} else if (s[i] < 0x80) {
			if (is_unsafe_byte(s[i]))
				p = put_escape(p, s[i]);
			else
				*p++ = (char)s[i];
			i++;
		} else if ((n = utf8_decode(s + i, len - i, &cp)) == 0) {
			/* Not UTF-8: escape this byte alone and look at the
			 * next one afresh. */
			p = put_escape(p, s[i++]);
		} else if (cp <= 0x9f) {
			/* C1 controls (U+0080..U+009F): invisible, and a
			 * terminal may act on them (U+009B is CSI). */
			for (size_t k = 0; k < n; k++)
				p = put_escape(p, s[i + k]);
			i += n;
		} else {
			memcpy(p, s + i, n);
			p += n;
			i += n;
		}
		if ((size_t)(p - buf) <= CUT_PREFIX_MAX)
			boundary = (size_t)(p - buf);
	}
	*p = '\0';

	if ((size_t)(p - buf) > FSNAME_MAX_COMPONENT &&
	    cut(buf, boundary, comp, len) != 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

static int hex_digit(char c)
{
	/* Upper case only: lower-case hex would be a second spelling. */
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int fsname_unescape_component(const char *comp, char **out, size_t *len)
{
	size_t clen = strlen(comp);

	*out = NULL;
	*len = 0;
	char *buf = malloc(clen + 1);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	size_t n = 0;
	if (strcmp(comp, "%") != 0) {
		for (size_t i = 0; i < clen;) {
			if (comp[i] != '%') {
				buf[n++] = comp[i++];
				continue;
			}
			int hi = i + 1 < clen ? hex_digit(comp[i + 1]) : -1;
			int lo = i + 2 < clen ? hex_digit(comp[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				/* Includes "%~": a cut name has lost bytes. */
				free(buf);
				errno = EINVAL;
				return -1;
			}
			buf[n++] = (char)(hi << 4 | lo);
			i += 3;
		}
	}
	buf[n] = '\0';

	char *again;
	if (fsname_escape_component(buf, n, &again) != 0) {
		int e = errno;
		free(buf);
		errno = e;
		return -1;
	}
	bool same = strcmp(again, comp) == 0;
	free(again);
	if (!same) {
		free(buf);
		errno = EINVAL;
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Append s[0..n) to the growing *buf of *used bytes; false on ENOMEM. */
static bool append(char **buf, size_t *used, size_t *cap, const char *s,
		   size_t n)
{
	if (n + 1 > *cap - *used) {
		size_t want = *cap * 2;
		if (want < *used + n + 1)
			want = *used + n + 1;
		char *nb = realloc(*buf, want);
		if (!nb) {
			errno = ENOMEM;
			return false;
		}
		*buf = nb;
		*cap = want;
	}
	memcpy(*buf + *used, s, n);
	*used += n;
	(*buf)[*used] = '\0';
	return true;
}

int fsname_folder_path(const char *name, char delim, char **relpath)
{
	size_t nlen = strlen(name), used = 0, cap = nlen + 16;
	char *buf = malloc(cap);

	*relpath = NULL;
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	buf[0] = '\0';
	const char *start = name, *end = name + nlen;
	for (;;) {
		const char *stop = NULL;
		if (delim)
			stop = memchr(start, delim, (size_t)(end - start));
		if (!stop)
			stop = end;
		char *comp;
		if (fsname_escape_component(start, (size_t)(stop - start),
					    &comp) != 0) {
			int e = errno;
			free(buf);
			errno = e;
			return -1;
		}
		bool ok = (used == 0 || append(&buf, &used, &cap, "/", 1)) &&
			  append(&buf, &used, &cap, comp, strlen(comp));
		free(comp);
		if (!ok) {
			free(buf);
			return -1;
		}
		if (stop == end)
			break;
		start = stop + 1;
	}
	*relpath = buf;
	return 0;
}
