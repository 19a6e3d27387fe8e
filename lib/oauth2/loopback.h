/*
 * loopback.h — the authorization code flow for native apps (RFC 8252)
 * with PKCE (RFC 7636): listen on a loopback port, send the user's
 * browser to the provider's authorize URL with that port as redirect_uri,
 * take the code the browser brings back, and exchange it.
 *
 *   st = oauth2_loopback_flow(&client, show, ctx, 300, &tokens, err);
 *
 * `show` gets the authorize URL (the caller prints it, or opens a
 * browser).  The call then waits up to `timeout_sec` for the browser.
 * Requests to other paths (a favicon) are answered 404 and waited past;
 * a redirect whose state does not match is refused (RFC 6749 §10.12).
 * ISNAP_OK with tokens in *out; ISNAP_EAUTH when the user refused, the
 * code was refused, or time ran out; ISNAP_ELOCAL when no port could be
 * opened.
 */
#ifndef IMAPSNAP_OAUTH2_LOOPBACK_H
#define IMAPSNAP_OAUTH2_LOOPBACK_H

#include "error.h"
#include "oauth2/client.h"
#include "oauth2/reply.h"

typedef void (*oauth2_show_url_fn)(void *ctx, const char *url);

enum isnap_status oauth2_loopback_flow(const struct oauth2_client *c,
				       oauth2_show_url_fn show, void *ctx,
				       long timeout_sec,
				       struct oauth2_tokens *out,
				       struct isnap_error *err);

#endif
