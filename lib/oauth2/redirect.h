/*
 * redirect.h — the request a browser makes to imapsnap's loopback
 * listener at the end of the authorization code flow (RFC 8252 §7.3,
 * RFC 6749 §4.1.2): "GET /?code=...&state=... HTTP/1.1".  No I/O here; the
 * bytes come from whatever connects to the port and are not trusted
 * (tests/fuzz/fuzz_oauth2_redirect.c).
 *
 *   struct oauth2_redirect r;
 *   switch (oauth2_parse_redirect(head, len, "/", &r, err)) ...
 *   oauth2_redirect_free(&r);
 */
#ifndef IMAPSNAP_OAUTH2_REDIRECT_H
#define IMAPSNAP_OAUTH2_REDIRECT_H

#include <stddef.h>

#include "error.h"

/* Longest request head read from the listener. */
#define OAUTH2_REDIRECT_MAX 8192

struct oauth2_redirect {
	/* Percent-decoded query parameters, malloc'd; NULL when absent. */
	char *code;
	char *state;
	char *error;             /* RFC 6749 §4.1.2.1 */
	char *error_description;
};

enum oauth2_redirect_result {
	OAUTH2_REDIRECT_MORE = 1,  /* the request line is not complete yet */
	OAUTH2_REDIRECT_OTHER,     /* a request, but not the redirect (another
				    * path, /favicon.ico, another method) */
	OAUTH2_REDIRECT_DONE,      /* the redirect: code or error is set */
};

/* Parse the start of the request in `head` (`len` bytes; need not be
 * NUL-terminated) whose path must be `path`.  Returns one of the results
 * above, or 0 with ISNAP_EPROTO in err when the request is malformed (a
 * bad request line, bad percent-encoding, a NUL or control character
 * once decoded, a parameter given twice, neither code nor error).  *out
 * is filled only for OAUTH2_REDIRECT_DONE; emptied otherwise. */
enum oauth2_redirect_result oauth2_parse_redirect(const char *head,
						  size_t len, const char *path,
						  struct oauth2_redirect *out,
						  struct isnap_error *err);

void oauth2_redirect_free(struct oauth2_redirect *r);

#endif
