/*
 * client.h — an OAuth 2.0 client of one provider: its endpoints and
 * credentials, and the token requests made to them (RFC 6749, RFC 8628).
 *
 *   struct oauth2_client c = { .token_url = ..., .client_id = ... };
 *   struct oauth2_tokens t;
 *   st = oauth2_refresh(&c, refresh_token, &t, err);    // RFC 6749 §6
 *   ... t.access_token ...
 *   oauth2_tokens_free(&t);
 *
 * All strings belong to the caller.  Statuses: ISNAP_OK (tokens in *out);
 * ISNAP_EAUTH when the endpoint refused the grant (out->error says why:
 * "invalid_grant" for a refresh token that expired or was revoked, and
 * for device polling "authorization_pending", "slow_down", ...);
 * ISNAP_ECONN for network and TLS failures and HTTP errors without an
 * OAuth2 error body; ISNAP_EPROTO for an answer that is not one.
 */
#ifndef IMAPSNAP_OAUTH2_CLIENT_H
#define IMAPSNAP_OAUTH2_CLIENT_H

#include "error.h"
#include "oauth2/http.h"
#include "oauth2/reply.h"

struct oauth2_client {
	const char *device_url;    /* RFC 8628 §3.1; NULL: no device flow */
	const char *authorize_url; /* RFC 6749 §3.1; NULL: no redirect flow */
	const char *token_url;     /* RFC 6749 §3.2; required */
	const char *scope;         /* space-separated, or NULL */
	const char *client_id;     /* required */
	const char *client_secret; /* NULL for a public client */
	/* Extra authorize-URL parameters, already encoded ("a=b&c=d"), such
	 * as Google's access_type=offline; NULL for none. */
	const char *authorize_extra;
	struct oauth2_http http;
};

/* Refresh: grant_type=refresh_token (RFC 6749 §6). */
enum isnap_status oauth2_refresh(const struct oauth2_client *c,
				 const char *refresh_token,
				 struct oauth2_tokens *out,
				 struct isnap_error *err);

/* Exchange an authorization code (RFC 6749 §4.1.3, with the PKCE
 * verifier of RFC 7636 §4.5). */
enum isnap_status oauth2_exchange_code(const struct oauth2_client *c,
				       const char *code,
				       const char *redirect_uri,
				       const char *verifier,
				       struct oauth2_tokens *out,
				       struct isnap_error *err);

/* Ask for device and user codes (RFC 8628 §3.1). */
enum isnap_status oauth2_device_start(const struct oauth2_client *c,
				      struct oauth2_device_codes *out,
				      struct isnap_error *err);

/* Poll once with the device code (RFC 8628 §3.4). */
enum isnap_status oauth2_device_poll(const struct oauth2_client *c,
				     const char *device_code,
				     struct oauth2_tokens *out,
				     struct isnap_error *err);

#endif
