/*
 * reply.h — what an OAuth 2.0 endpoint answers, parsed from its JSON body:
 * the token endpoint (RFC 6749 §5.1 success, §5.2 error; RFC 8628 §3.5
 * device polling errors) and the device authorization endpoint (RFC 8628
 * §3.2).  No I/O here; the bodies come from a server and are not trusted
 * (tests/fuzz/fuzz_oauth2_reply.c).
 *
 *   struct oauth2_tokens t;
 *   if (oauth2_parse_token_reply(body, len, &t, err)) ...;  // malformed
 *   if (t.error) ... "authorization_pending", "invalid_grant", ...
 *   else ... t.access_token (always set), t.refresh_token (may be NULL)
 *   oauth2_tokens_free(&t);
 *
 * Every string kept is NUL-free printable ASCII (tokens travel inside SASL
 * and a file; error texts are printed): anything else is refused as
 * malformed.  Strings are malloc'd and owned by the struct.
 */
#ifndef IMAPSNAP_OAUTH2_REPLY_H
#define IMAPSNAP_OAUTH2_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Bodies longer than this are refused before parsing. */
#define OAUTH2_REPLY_MAX (64 * 1024)
/* Longest token kept (Microsoft's access tokens run to a few KB). */
#define OAUTH2_TOKEN_MAX 16384

struct oauth2_tokens {
	char *access_token;      /* set when error is NULL */
	char *refresh_token;     /* NULL when none was issued */
	char *token_type;        /* "Bearer", or NULL */
	char *scope;             /* NULL when not said */
	int64_t expires_in;      /* seconds; 0 when not said */
	char *error;             /* RFC 6749 §5.2 code, or NULL */
	char *error_description; /* NULL when not said */
};

/* A token endpoint's body.  ISNAP_OK when it is either a success (with an
 * access_token) or an error (with an error code); ISNAP_EPROTO with a
 * message otherwise.  *out is filled or emptied in every case. */
enum isnap_status oauth2_parse_token_reply(const char *body, size_t len,
					   struct oauth2_tokens *out,
					   struct isnap_error *err);

void oauth2_tokens_free(struct oauth2_tokens *t);

struct oauth2_device_codes {
	char *device_code;
	char *user_code;
	char *verification_uri;          /* Google says verification_url */
	char *verification_uri_complete; /* NULL when not given */
	int64_t expires_in;              /* seconds, > 0 */
	int64_t interval;                /* seconds between polls; 5 if unsaid */
};

/* A device authorization endpoint's body.  ISNAP_OK with every required
 * member present; an error body (RFC 6749 §5.2 shape) is ISNAP_EAUTH
 * with its code and description in the message; anything else
 * ISNAP_EPROTO. */
enum isnap_status oauth2_parse_device_reply(const char *body, size_t len,
					    struct oauth2_device_codes *out,
					    struct isnap_error *err);

void oauth2_device_codes_free(struct oauth2_device_codes *d);

#endif
