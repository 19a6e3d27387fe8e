/*
 * fuzz_oauth2_redirect.c — what anything connecting to imapsnap's
 * loopback port during `imapsnap auth` may send (lib/oauth2/redirect.c):
 * the browser's redirect, or any bytes from another local program.
 *
 * fuzz-sources: lib/oauth2/redirect.c lib/error.c
 *
 * Checked beyond "no crash, no leak, no undefined behaviour": "more"
 * only while no line end has been seen; a malformed request is
 * ISNAP_EPROTO with a message and leaves nothing behind; a redirect has
 * a code or an error, and no value kept holds a control character; and
 * feeding the same bytes in two pieces gives the same answer as in one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth2/redirect.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_oauth2_redirect: %s\n", what);
		abort();
	}
}

static void clean(const char *s)
{
	for (; s && *s; s++)
		check((unsigned char)*s >= 0x20 && *s != 0x7f,
		      "a control character kept");
}

static enum oauth2_redirect_result parse(const uint8_t *data, size_t size)
{
	struct isnap_error err = { 0 };
	struct oauth2_redirect r;
	enum oauth2_redirect_result res;

	memset(&r, 0xa5, sizeof r);
	res = oauth2_parse_redirect((const char *)data, size, "/", &r, &err);
	switch (res) {
	case OAUTH2_REDIRECT_MORE:
		check(!memchr(data, '\n', size), "more after a line end");
		/* fall through */
	case OAUTH2_REDIRECT_OTHER:
		check(!r.code && !r.state && !r.error,
		      "strings without a redirect");
		break;
	case OAUTH2_REDIRECT_DONE:
		check((r.code && *r.code) || (r.error && *r.error),
		      "a redirect with neither code nor error");
		clean(r.code);
		clean(r.state);
		clean(r.error);
		clean(r.error_description);
		oauth2_redirect_free(&r);
		break;
	default:
		check(res == 0, "an unknown result");
		check(err.status == ISNAP_EPROTO && err.msg[0],
		      "malformed without EPROTO and a message");
		check(!r.code && !r.state && !r.error,
		      "malformed left strings behind");
	}
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum oauth2_redirect_result whole = parse(data, size);
	const uint8_t *nl = memchr(data, '\n', size);

	/* Everything up to the line end decides: a prefix that holds it
	 * answers alike. */
	if (nl && (size_t)(nl - data) + 1 < size)
		check(parse(data, (size_t)(nl - data) + 1) == whole,
		      "the bytes after the line end changed the answer");
	return 0;
}
