/*
 * client.c — see client.h.  RFC 6749 §4.1.3, §5, §6; RFC 7636 §4.5;
 * RFC 8628 §3.1, §3.4, §3.5.
 */
#include "oauth2/client.h"

#include <string.h>

/* RFC 6749 §2.3.1 allows client credentials in the body; every provider
 * accepts them there, and public clients have no secret at all. */
static void add_client(struct oauth2_form *f, const struct oauth2_client *c)
{
	oauth2_form_add(f, "client_id", c->client_id);
	if (c->client_secret)
		oauth2_form_add(f, "client_secret", c->client_secret);
}

static enum isnap_status token_request(const struct oauth2_client *c,
				       struct oauth2_form *f,
				       struct oauth2_tokens *out,
				       struct isnap_error *err)
{
	struct oauth2_http_reply r;
	enum isnap_status st;

	memset(out, 0, sizeof *out);
	if (!c->token_url || !c->client_id) {
		oauth2_form_free(f);
		return isnap_fail(err, ISNAP_EUSAGE, "OAuth2: no token "
				  "endpoint or no client id");
	}
	st = oauth2_http_post(&c->http, c->token_url, f, &r, err);
	oauth2_form_free(f);
	if (st)
		return st;
	st = oauth2_parse_token_reply(r.body, r.len, out, err);
	if (st) {
		/* A proxy's or a server's error page is not malformed OAuth2:
		 * say what the HTTP status was. */
		if (r.status != 200)
			st = isnap_fail(err, ISNAP_ECONN, "%s: HTTP %ld",
					c->token_url, r.status);
		else
			isnap_error_prefix(err, "%s", c->token_url);
	} else if (out->error) {
		st = isnap_fail(err, ISNAP_EAUTH, "%s%s%s", out->error,
				out->error_description ? ": " : "",
				out->error_description ? out->error_description
						       : "");
	} else if (r.status != 200) {
		oauth2_tokens_free(out);
		st = isnap_fail(err, ISNAP_EPROTO, "%s: HTTP %ld with a token",
				c->token_url, r.status);
	}
	oauth2_http_reply_free(&r);
	return st;
}

enum isnap_status oauth2_refresh(const struct oauth2_client *c,
				 const char *refresh_token,
				 struct oauth2_tokens *out,
				 struct isnap_error *err)
{
	struct oauth2_form f = { 0 };

	oauth2_form_add(&f, "grant_type", "refresh_token");
	oauth2_form_add(&f, "refresh_token", refresh_token);
	add_client(&f, c);
	return token_request(c, &f, out, err);
}

enum isnap_status oauth2_exchange_code(const struct oauth2_client *c,
				       const char *code,
				       const char *redirect_uri,
				       const char *verifier,
				       struct oauth2_tokens *out,
				       struct isnap_error *err)
{
	struct oauth2_form f = { 0 };

	oauth2_form_add(&f, "grant_type", "authorization_code");
	oauth2_form_add(&f, "code", code);
	oauth2_form_add(&f, "redirect_uri", redirect_uri);
	oauth2_form_add(&f, "code_verifier", verifier);
	add_client(&f, c);
	return token_request(c, &f, out, err);
}

enum isnap_status oauth2_device_poll(const struct oauth2_client *c,
				     const char *device_code,
				     struct oauth2_tokens *out,
				     struct isnap_error *err)
{
	struct oauth2_form f = { 0 };

	oauth2_form_add(&f, "grant_type",
			"urn:ietf:params:oauth:grant-type:device_code");
	oauth2_form_add(&f, "device_code", device_code);
	add_client(&f, c);
	return token_request(c, &f, out, err);
}

enum isnap_status oauth2_device_start(const struct oauth2_client *c,
				      struct oauth2_device_codes *out,
				      struct isnap_error *err)
{
	struct oauth2_form f = { 0 };
	struct oauth2_http_reply r;
	enum isnap_status st;

	memset(out, 0, sizeof *out);
	if (!c->device_url || !c->client_id)
		return isnap_fail(err, ISNAP_EUSAGE, "OAuth2: no device "
				  "authorization endpoint or no client id");
	add_client(&f, c);
	if (c->scope)
		oauth2_form_add(&f, "scope", c->scope);
	st = oauth2_http_post(&c->http, c->device_url, &f, &r, err);
	oauth2_form_free(&f);
	if (st)
		return st;
	st = oauth2_parse_device_reply(r.body, r.len, out, err);
	if (st == ISNAP_EPROTO && r.status != 200)
		st = isnap_fail(err, ISNAP_ECONN, "%s: HTTP %ld", c->device_url,
				r.status);
	else if (st)
		isnap_error_prefix(err, "%s", c->device_url);
	oauth2_http_reply_free(&r);
	return st;
}
