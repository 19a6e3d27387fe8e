/*
 * oauth2_cli.c — see oauth2_cli.h.
 */
#include "oauth2_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "oauth2/access.h"
#include "oauth2/store.h"

int oauth2_cli_option(struct oauth2_cli *o, int c, const char *arg)
{
	switch (c) {
	case OPT_OAUTH2_PROVIDER: o->provider = arg; return 1;
	case OPT_OAUTH2_CLIENT_ID: o->client_id = arg; return 1;
	case OPT_OAUTH2_SECRET_FILE: o->client_secret_file = arg; return 1;
	case OPT_OAUTH2_SCOPE: o->scope = arg; return 1;
	case OPT_OAUTH2_DEVICE_URL: o->device_url = arg; return 1;
	case OPT_OAUTH2_AUTHORIZE_URL: o->authorize_url = arg; return 1;
	case OPT_OAUTH2_TOKEN_URL: o->token_url = arg; return 1;
	case OPT_OAUTH2_TOKEN_FILE: o->token_file = arg; return 1;
	case OPT_OAUTH2_CACERT: o->cacert = arg; return 1;
	case OPT_OAUTH2_FLOW: o->flow = arg; return 1;
	}
	return 0;
}

void oauth2_cli_from_config(struct oauth2_cli *o,
			    const struct config_account *ca)
{
#define TAKE(field, key) \
	if (!o->field)   \
		o->field = ca->key
	TAKE(provider, oauth2);
	TAKE(client_id, oauth2_client_id);
	TAKE(client_secret, oauth2_client_secret);
	TAKE(scope, oauth2_scope);
	TAKE(device_url, oauth2_device_url);
	TAKE(authorize_url, oauth2_authorize_url);
	TAKE(token_url, oauth2_token_url);
	TAKE(token_file, oauth2_token_file);
	TAKE(cacert, oauth2_cacert);
	TAKE(flow, oauth2_flow);
#undef TAKE
}

static bool any_detail(const struct oauth2_cli *o)
{
	return o->client_id || o->client_secret || o->client_secret_file ||
	       o->scope || o->device_url || o->authorize_url ||
	       o->token_url || o->token_file || o->cacert || o->flow;
}

bool oauth2_cli_enabled(const struct oauth2_cli *o)
{
	return o->provider || any_detail(o);
}

enum isnap_status oauth2_cli_check(const struct oauth2_cli *o,
				   struct isnap_error *err)
{
	if (!o->provider)
		return any_detail(o)
			       ? isnap_fail(err, ISNAP_EUSAGE,
					    "the --oauth2-* options need "
					    "--oauth2 PROVIDER (%s or "
					    "custom)",
					    oauth2_provider_names())
			       : ISNAP_OK;
	if (strcmp(o->provider, "custom") && !oauth2_provider_find(o->provider))
		return isnap_fail(err, ISNAP_EUSAGE, "--oauth2 %s: expected "
				  "%s or custom", o->provider,
				  oauth2_provider_names());
	if (o->flow && strcmp(o->flow, "device") && strcmp(o->flow, "loopback"))
		return isnap_fail(err, ISNAP_EUSAGE, "--oauth2-flow %s: "
				  "expected device or loopback", o->flow);
	if (o->client_secret && o->client_secret_file)
		return isnap_fail(err, ISNAP_EUSAGE, "give the OAuth2 client "
				  "secret once: in the config or with "
				  "--oauth2-client-secret-file");
	return ISNAP_OK;
}

void oauth2_cli_free_secret(char *secret)
{
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

static enum isnap_status read_secret(const char *path, char **out,
				     struct isnap_error *err)
{
	char buf[4096] = "";
	FILE *f = fopen(path, "r");

	*out = NULL;
	if (!f)
		return isnap_fail_errno(err, ISNAP_EUSAGE,
					"--oauth2-client-secret-file %s", path);
	if (!fgets(buf, sizeof buf, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0])
		return isnap_fail(err, ISNAP_EUSAGE, "%s: no client secret on "
				  "its first line", path);
	*out = strdup(buf);
	explicit_bzero(buf, sizeof buf);
	return *out ? ISNAP_OK : isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

enum isnap_status oauth2_cli_client(const struct oauth2_cli *o, int need,
				    struct oauth2_client *c, char **secret,
				    enum oauth2_flow *flow,
				    struct isnap_error *err)
{
	const struct oauth2_provider *p =
		o->provider ? oauth2_provider_find(o->provider) : NULL;
	enum isnap_status st;

	memset(c, 0, sizeof *c);
	*secret = NULL;
	if (p) {
		c->device_url = p->device_url;
		c->authorize_url = p->authorize_url;
		c->token_url = p->token_url;
		c->scope = p->scope;
		c->authorize_extra = p->authorize_extra;
	}
#define OVER(field) \
	if (o->field)   \
		c->field = o->field
	OVER(device_url);
	OVER(authorize_url);
	OVER(token_url);
	OVER(scope);
	OVER(client_id);
	OVER(client_secret);
#undef OVER
	c->http.cacert = o->cacert;
	*flow = o->flow ? (!strcmp(o->flow, "loopback") ? OAUTH2_FLOW_LOOPBACK
							: OAUTH2_FLOW_DEVICE)
		: p	? p->flow
			: (c->device_url ? OAUTH2_FLOW_DEVICE
					 : OAUTH2_FLOW_LOOPBACK);
	if (o->client_secret_file) {
		st = read_secret(o->client_secret_file, secret, err);
		if (st)
			return st;
		c->client_secret = *secret;
	}
	if (need == 'a') {
		if (!c->client_id)
			return isnap_fail(err, ISNAP_EUSAGE, "OAuth2 needs the "
					  "client id imapsnap is registered "
					  "under at the provider: "
					  "--oauth2-client-id or "
					  "oauth2_client_id");
		if (!c->token_url)
			return isnap_fail(err, ISNAP_EUSAGE, "OAuth2: no token "
					  "endpoint: --oauth2-token-url");
		if (*flow == OAUTH2_FLOW_DEVICE && !c->device_url)
			return isnap_fail(err, ISNAP_EUSAGE, "OAuth2: the device "
					  "flow needs --oauth2-device-url");
		if (*flow == OAUTH2_FLOW_LOOPBACK && !c->authorize_url)
			return isnap_fail(err, ISNAP_EUSAGE, "OAuth2: the "
					  "loopback flow needs "
					  "--oauth2-authorize-url");
	}
	return ISNAP_OK;
}

static void percent_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < size; i++) {
		unsigned v;
		if (s[i] == '%' && i + 2 < n &&
		    sscanf(s + i + 1, "%2x", &v) == 1) {
			out[o++] = (char)v;
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

bool oauth2_cli_user_host(const char *url, const char *user, char *ubuf,
			  size_t usize, char *hbuf, size_t hsize)
{
	const char *rest = strstr(url, "://"), *at, *end;
	size_t hlen;

	if (!rest)
		return false;
	rest += 3;
	end = rest + strcspn(rest, "/?#");
	at = memchr(rest, '@', (size_t)(end - rest));
	if (user)
		snprintf(ubuf, usize, "%s", user);
	else if (at)
		percent_decode(rest, (size_t)(at - rest), ubuf, usize);
	else
		return false;
	if (at)
		rest = at + 1;
	hlen = strcspn(rest, ":/?#");
	if (rest[0] == '[')
		hlen = strcspn(rest, "]") + 1;
	if (!hlen || hlen >= hsize || !ubuf[0])
		return false;
	memcpy(hbuf, rest, hlen);
	hbuf[hlen] = '\0';
	return true;
}

enum isnap_status oauth2_cli_token_path(const struct oauth2_cli *o,
					const char *url, const char *user,
					char *buf, size_t size,
					struct isnap_error *err)
{
	char u[512], h[512];

	if (o->token_file) {
		if (o->token_file[0] != '/')
			return isnap_fail(err, ISNAP_EUSAGE, "--oauth2-token-"
					  "file %s: give an absolute path",
					  o->token_file);
		if ((size_t)snprintf(buf, size, "%s", o->token_file) >= size)
			return isnap_fail(err, ISNAP_EUSAGE, "--oauth2-token-"
					  "file: too long");
		return ISNAP_OK;
	}
	if (!oauth2_cli_user_host(url, user, u, sizeof u, h, sizeof h))
		return isnap_fail(err, ISNAP_EUSAGE, "%s: OAuth2 needs the "
				  "user name (user@ in the URL, or --user)",
				  url);
	if (!oauth2_store_default_path(getenv("XDG_STATE_HOME"),
				       getenv("HOME"), u, h, buf, size))
		return isnap_fail(err, ISNAP_EUSAGE, "no HOME or "
				  "XDG_STATE_HOME for the OAuth2 token file: "
				  "give --oauth2-token-file");
	return ISNAP_OK;
}

static enum isnap_status token_fn(void *ctx, bool renew, char **token,
				  bool *fresh, struct isnap_error *err)
{
	return oauth2_access_token(ctx, renew, token, fresh, err);
}

/* Every source made, freed at exit (one per account of a run). */
static struct oauth2_access **sources;
static size_t n_sources;

static void free_sources(void)
{
	for (size_t i = 0; i < n_sources; i++)
		oauth2_access_free(sources[i]);
	free(sources);
	sources = NULL;
	n_sources = 0;
}

enum isnap_status oauth2_cli_source(const struct oauth2_cli *o,
				    struct imap_session_opts *session,
				    const char *hint, struct isnap_error *err)
{
	struct oauth2_access_config cfg = { 0 };
	struct oauth2_access **v, *a;
	struct oauth2_client c;
	enum oauth2_flow flow;
	enum isnap_status st;
	char path[4096], *secret = NULL;

	st = oauth2_cli_token_path(o, session->url, session->user, path,
				   sizeof path, err);
	if (st)
		return st;
	st = oauth2_cli_client(o, 't', &c, &secret, &flow, err);
	if (st)
		return st;
	cfg.store_path = path;
	/* What the options or the config name wins over the file; a
	 * preset's token URL does not (the file knows where it came
	 * from). */
	cfg.token_url = o->token_url;
	cfg.client_id = o->client_id;
	cfg.client_secret = c.client_secret;
	cfg.http.cacert = o->cacert;
	cfg.http.timeout_sec = session->timeout_sec;
	cfg.reauth_hint = hint;
	st = oauth2_access_new(&cfg, &a, err);
	oauth2_cli_free_secret(secret);
	if (st)
		return st;
	if (!(v = realloc(sources, (n_sources + 1) * sizeof *v))) {
		oauth2_access_free(a);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	if (!sources)
		atexit(free_sources);
	sources = v;
	sources[n_sources++] = a;
	session->token_fn = token_fn;
	session->token_ctx = a;
	return ISNAP_OK;
}
