/*
 * access.h — access tokens for IMAP logins, made from a stored refresh
 * token (RFC 6749 §6) and kept until shortly before they expire.  One
 * source serves every connection of a run, from any thread.
 *
 *   struct oauth2_access *a;
 *   oauth2_access_new(&cfg, &a, err);
 *   // as imap_session_opts.token_fn with token_ctx = a:
 *   oauth2_access_token(a, false, &token, &fresh, err);
 *   oauth2_access_free(a);
 *
 * The stored file (store.h) gives the refresh token, the token endpoint
 * and the client; what `cfg` sets overrides the last two (the config file
 * may hold the client secret rather than the token file).  A refresh that
 * brings a new refresh token (Microsoft rotates them) or a new access
 * token is written back, under a lock, so that the next run and other
 * runs use it.
 */
#ifndef IMAPSNAP_OAUTH2_ACCESS_H
#define IMAPSNAP_OAUTH2_ACCESS_H

#include <stdbool.h>

#include "error.h"
#include "oauth2/client.h"

/* A cached access token is used while it has this many seconds left. */
#define OAUTH2_ACCESS_MARGIN 60

struct oauth2_access_config {
	const char *store_path;    /* the token file; required */
	/* Overrides of the stored values; NULL to keep them. */
	const char *token_url;
	const char *client_id;
	const char *client_secret;
	struct oauth2_http http;
	/* What to tell the user to run when the refresh token is gone
	 * ("imapsnap auth work"); NULL for a generic hint. */
	const char *reauth_hint;
};

struct oauth2_access;

/* Copies what `cfg` points to.  Reads nothing yet. */
enum isnap_status oauth2_access_new(const struct oauth2_access_config *cfg,
				    struct oauth2_access **out,
				    struct isnap_error *err);

/* An access token (malloc'd; the caller wipes and frees it): the cached
 * one while it is valid and `renew` is false, else a new one from the
 * token endpoint.  *fresh (may be NULL) says which.  ISNAP_EAUTH when
 * nothing is stored or the refresh token was refused (expired, revoked:
 * the message says to run the hint), ISNAP_ECONN when the endpoint cannot
 * be reached, ISNAP_EPROTO for a malformed answer, ISNAP_ELOCAL when the
 * token file cannot be read or written. */
enum isnap_status oauth2_access_token(struct oauth2_access *a, bool renew,
				      char **token, bool *fresh,
				      struct isnap_error *err);

/* How many times this source asked the token endpoint (for messages and
 * tests). */
unsigned oauth2_access_refreshes(const struct oauth2_access *a);

void oauth2_access_free(struct oauth2_access *a);

#endif
