/*
 * http.h — one HTTPS POST of a form to an OAuth 2.0 endpoint, with
 * libcurl, and the form it sends (application/x-www-form-urlencoded).
 *
 *   struct oauth2_form f = { 0 };
 *   oauth2_form_add(&f, "grant_type", "refresh_token"); ...
 *   struct oauth2_http_reply r;
 *   if (oauth2_http_post(&ep, url, &f, &r, err)) ...;   // network, TLS
 *   ... r.status, r.body (r.len bytes, NUL-terminated)
 *   oauth2_http_reply_free(&r);
 *   oauth2_form_free(&f);                               // wipes it
 *
 * Only https:// is accepted, and http:// to a loopback address (a token
 * server on the same machine, as in the tests); redirects are not
 * followed.  Bodies beyond OAUTH2_REPLY_MAX fail the request.
 */
#ifndef IMAPSNAP_OAUTH2_HTTP_H
#define IMAPSNAP_OAUTH2_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct oauth2_form {
	char *data; /* "k=v&k=v", malloc'd; NULL when empty */
	size_t len;
	bool failed; /* out of memory along the way */
};

/* Append key=value, both percent-encoded. */
void oauth2_form_add(struct oauth2_form *f, const char *key,
		     const char *value);
void oauth2_form_free(struct oauth2_form *f);

/* How to reach the endpoints. */
struct oauth2_http {
	const char *cacert; /* CA bundle, or NULL for the system's */
	long timeout_sec;   /* whole request; 0: 60 */
};

struct oauth2_http_reply {
	long status;  /* HTTP status */
	char *body;   /* malloc'd, NUL-terminated */
	size_t len;
};

/* ISNAP_OK whatever the HTTP status; ISNAP_EUSAGE for a URL that is not
 * https:// (or http:// to loopback); ISNAP_ECONN for network, TLS and
 * certificate failures and over-long bodies. */
enum isnap_status oauth2_http_post(const struct oauth2_http *h,
				   const char *url, const struct oauth2_form *f,
				   struct oauth2_http_reply *out,
				   struct isnap_error *err);

void oauth2_http_reply_free(struct oauth2_http_reply *r);

/* Whether `url` may be used: https://, or http:// to 127.0.0.0/8,
 * localhost or [::1]. */
bool oauth2_url_allowed(const char *url);

#endif
