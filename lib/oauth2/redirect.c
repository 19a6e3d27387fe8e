/*
 * redirect.c — see redirect.h.  RFC 7230 §3.1.1 (request line), RFC 3986
 * §2.1 (percent-encoding), application/x-www-form-urlencoded ('+' is a
 * space) for the query, RFC 6749 §4.1.2 for its parameters.
 */
#include "oauth2/redirect.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void oauth2_redirect_free(struct oauth2_redirect *r)
{
	if (r->code)
		explicit_bzero(r->code, strlen(r->code));
	free(r->code);
	free(r->state);
	free(r->error);
	free(r->error_description);
	memset(r, 0, sizeof *r);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode `n` bytes of a query component into a new string; NULL when
 * the encoding is bad or the result holds a control character. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				goto bad;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			goto bad;
		*w++ = (char)c;
	}
	*w = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static enum oauth2_redirect_result malformed(struct oauth2_redirect *r,
					     struct isnap_error *err,
					     const char *why)
{
	oauth2_redirect_free(r);
	isnap_fail(err, ISNAP_EPROTO, "the browser's redirect was malformed "
		   "(%s)", why);
	return 0;
}

enum oauth2_redirect_result oauth2_parse_redirect(const char *head,
						  size_t len, const char *path,
						  struct oauth2_redirect *out,
						  struct isnap_error *err)
{
	const char *eol, *target, *sp, *q, *end;
	size_t plen = strlen(path);

	memset(out, 0, sizeof *out);
	eol = memchr(head, '\n', len);
	if (!eol)
		return len >= OAUTH2_REDIRECT_MAX
			       ? malformed(out, err, "no end of line")
			       : OAUTH2_REDIRECT_MORE;
	if (memchr(head, '\0', (size_t)(eol - head)))
		return malformed(out, err, "NUL in the request line");
	if ((size_t)(eol - head) < 4 || memcmp(head, "GET ", 4))
		return OAUTH2_REDIRECT_OTHER;
	target = head + 4;
	sp = memchr(target, ' ', (size_t)(eol - target));
	if (!sp || (size_t)(eol - sp) < 9 || memcmp(sp + 1, "HTTP/1.", 7))
		return malformed(out, err, "not an HTTP/1 request line");
	q = memchr(target, '?', (size_t)(sp - target));
	if ((size_t)((q ? q : sp) - target) != plen ||
	    memcmp(target, path, plen))
		return OAUTH2_REDIRECT_OTHER;
	if (!q)
		return malformed(out, err, "no query");
	for (const char *p = q + 1; p < sp; p = end + 1) {
		const char *eq;
		char **slot = NULL, *v;
		size_t klen;

		end = memchr(p, '&', (size_t)(sp - p));
		if (!end)
			end = sp;
		eq = memchr(p, '=', (size_t)(end - p));
		klen = (size_t)((eq ? eq : end) - p);
#define KEY(name, field)                                              \
	if (klen == sizeof name - 1 && !memcmp(p, name, klen))        \
		slot = &out->field;
		KEY("code", code)
		KEY("state", state)
		KEY("error", error)
		KEY("error_description", error_description)
#undef KEY
		if (!slot)
			continue; /* iss, scope, session_state, ... */
		if (*slot)
			return malformed(out, err, "a parameter given twice");
		v = eq ? decode(eq + 1, (size_t)(end - eq - 1)) : strdup("");
		if (!v)
			return malformed(out, err, "bad percent-encoding or a "
					 "control character");
		*slot = v;
		if (end == sp)
			break;
	}
	if ((!out->code || !*out->code) && (!out->error || !*out->error))
		return malformed(out, err, "neither code nor error");
	return OAUTH2_REDIRECT_DONE;
}
