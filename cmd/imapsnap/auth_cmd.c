/*
 * auth_cmd.c — `imapsnap auth ACCOUNT|URL`: authorise imapsnap once at an
 * OAuth2 provider, by the device flow (RFC 8628) or the loopback redirect
 * with PKCE (RFC 8252, RFC 7636), and store the refresh token that every
 * later run turns into access tokens by itself.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "config.h"
#include "oauth2/device.h"
#include "oauth2/loopback.h"
#include "oauth2/store.h"
#include "output.h"

static const char auth_usage[] =
	"usage: imapsnap auth [options] ACCOUNT|URL\n"
	"\n"
	"Authorise imapsnap at the account's OAuth2 provider, once, and store\n"
	"the refresh token (mode 0600, by default in\n"
	"$XDG_STATE_HOME/imapsnap/oauth2/USER@HOST.json).  Backups then get\n"
	"their access tokens from it by themselves.  ACCOUNT is a section of\n"
	"the config file; a URL is imaps://USER@HOST with the options below.\n"
	"\n"
	"  --oauth2 PROVIDER       google, microsoft, or custom (give the\n"
	"                          endpoints below)\n"
	"  --oauth2-client-id ID   the client id imapsnap is registered under\n"
	"  --oauth2-client-secret-file FILE\n"
	"                          the client secret, when the provider gives\n"
	"                          one (first line of FILE)\n"
	"  --oauth2-flow device|loopback\n"
	"                          device: enter a code on any device's browser;\n"
	"                          loopback: open a URL in this machine's\n"
	"                          browser (default: what the provider needs)\n"
	"  --oauth2-scope SCOPE, --oauth2-device-url URL,\n"
	"  --oauth2-authorize-url URL, --oauth2-token-url URL\n"
	"                          override the provider's\n"
	"  --oauth2-token-file FILE  where to store the token\n"
	"  --oauth2-cacert FILE    CA bundle for the provider's endpoints\n"
	"  --user USER             the user, when not in the URL\n"
	"  --timeout SECONDS       how long to wait for the browser\n"
	"                          (loopback; default 300)\n"
	"  -c, --config FILE       the config file, for ACCOUNT\n"
	"  -q, --quiet             print only the code and URL, and errors\n"
	"\n"
	"Exit status: 0 stored; 2 usage; 3 refused, expired or no refresh\n"
	"token issued; 4 the provider cannot be reached; 6 the token file\n"
	"cannot be written.\n";

static const struct option long_opts[] = {
	OAUTH2_OPTIONS,
	{ "user", required_argument, NULL, OPT_USER },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "config", required_argument, NULL, 'c' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct shown {
	bool quiet;
};

static void show_codes(void *ctx, const struct oauth2_device_codes *d)
{
	struct shown *s = ctx;

	fprintf(stderr, "%s: to authorise imapsnap, open\n    ", progname);
	out_safe(stderr, d->verification_uri);
	fprintf(stderr, "\n  and enter the code\n    ");
	out_safe(stderr, d->user_code);
	fputc('\n', stderr);
	if (d->verification_uri_complete && !s->quiet) {
		fprintf(stderr, "  (or open ");
		out_safe(stderr, d->verification_uri_complete);
		fprintf(stderr, ")\n");
	}
	if (!s->quiet)
		fprintf(stderr, "%s: waiting for the authorisation (the code "
			"expires in %lld s)...\n", progname,
			(long long)d->expires_in);
	fflush(stderr);
}

static void show_url(void *ctx, const char *url)
{
	struct shown *s = ctx;

	fprintf(stderr, "%s: to authorise imapsnap, open this URL in a "
		"browser on this machine:\n    ", progname);
	out_safe(stderr, url);
	fputc('\n', stderr);
	if (!s->quiet)
		fprintf(stderr, "%s: waiting for the browser...\n", progname);
	fflush(stderr);
}

/* The account's URL, user and OAuth2 settings from the config file. */
static int from_config(const char *config_path, const char *name,
		       struct config *cfg, struct account *a)
{
	char default_path[4096];
	struct isnap_error err = { 0 };
	const struct config_account *ca;

	if (!config_path) {
		if (!config_default_path(getenv("XDG_CONFIG_HOME"),
					 getenv("HOME"), default_path,
					 sizeof default_path))
			return account_usage_error(a, "no config file: give "
						   "--config FILE or a URL");
		config_path = default_path;
	}
	if (config_load(config_path, getenv("HOME"), getuid(), cfg, &err)) {
		fprintf(stderr, "%s: ", progname);
		out_safe(stderr, err.msg);
		fputc('\n', stderr);
		return EXIT_USAGE;
	}
	if (!(ca = config_find(cfg, name)))
		return account_usage_error(a, "no account [%s] in %s", name,
					   config_path);
	if (!ca->oauth2)
		return account_usage_error(a, "[%s] does not use OAuth2: add "
					   "oauth2 = google, microsoft or "
					   "custom", name);
	a->session.url = ca->url;
	if (!a->session.user)
		a->session.user = ca->user;
	oauth2_cli_from_config(&a->oauth2, ca);
	return 0;
}

static int fail(enum isnap_status st, const struct isnap_error *err)
{
	fprintf(stderr, "%s: auth: ", progname);
	out_safe(stderr, err->msg);
	fputc('\n', stderr);
	return exit_status_for(st);
}

int cmd_auth(int argc, char **argv)
{
	struct account a;
	struct config cfg = { 0 };
	struct isnap_error err = { 0 };
	struct oauth2_client client;
	struct oauth2_tokens t = { 0 };
	struct oauth2_stored s = { 0 };
	struct shown shown = { 0 };
	enum oauth2_flow flow;
	enum isnap_status st;
	const char *config_path = NULL;
	char path[4096], *secret = NULL;
	long timeout = 300;
	int c, rc;

	account_init(&a, "auth");
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", long_opts, NULL)) != -1) {
		if (oauth2_cli_option(&a.oauth2, c, optarg))
			continue;
		switch (c) {
		case OPT_USER: a.session.user = optarg; break;
		case OPT_TIMEOUT:
			if (account_option(&a, c, optarg) < 0)
				return EXIT_USAGE;
			timeout = a.session.timeout_sec;
			break;
		case 'c': config_path = optarg; break;
		case 'q': shown.quiet = true; break;
		case 'h': fputs(auth_usage, stdout); return EXIT_OK;
		default:
			fputs(auth_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return account_usage_error(&a, "expected ACCOUNT or URL");
	if (strstr(argv[optind], "://")) {
		a.session.url = argv[optind];
		if (!a.oauth2.provider)
			return account_usage_error(&a, "a URL needs --oauth2 "
						   "PROVIDER (%s or custom)",
						   oauth2_provider_names());
	} else if ((rc = from_config(config_path, argv[optind], &cfg, &a))) {
		goto out;
	}
	rc = EXIT_USAGE;
	if ((st = oauth2_cli_check(&a.oauth2, &err)) ||
	    (st = oauth2_cli_token_path(&a.oauth2, a.session.url,
					a.session.user, path, sizeof path,
					&err)) ||
	    (st = oauth2_cli_client(&a.oauth2, 'a', &client, &secret, &flow,
				    &err))) {
		rc = account_usage_error(&a, "%s", err.msg);
		goto out;
	}
	client.http.timeout_sec = 60;
	if (flow == OAUTH2_FLOW_DEVICE)
		st = oauth2_device_flow(&client, show_codes, &shown, &t, &err);
	else
		st = oauth2_loopback_flow(&client, show_url, &shown, timeout,
					  &t, &err);
	if (!st && !t.refresh_token)
		st = isnap_fail(&err, ISNAP_EAUTH, "the provider issued an "
				"access token but no refresh token, so backups "
				"could not renew it%s",
				client.scope &&
						strstr(client.scope,
						       "offline_access")
					? ""
					: " (some providers want "
					  "offline_access in the scope)");
	if (st) {
		rc = fail(st, &err);
		goto out;
	}
	s.refresh_token = t.refresh_token;
	s.access_token = t.access_token;
	s.expires_at = (int64_t)time(NULL) +
		       (t.expires_in > 0 ? t.expires_in : 3600);
	s.token_url = (char *)client.token_url;
	s.client_id = (char *)client.client_id;
	s.client_secret = (char *)client.client_secret;
	s.scope = t.scope ? t.scope : (char *)client.scope;
	st = oauth2_store_save(path, &s, &err);
	if (st) {
		rc = fail(st, &err);
		goto out;
	}
	if (!shown.quiet) {
		fprintf(stderr, "%s: authorised; the refresh token is in ",
			progname);
		out_safe(stderr, path);
		fputc('\n', stderr);
	}
	rc = EXIT_OK;
out:
	oauth2_tokens_free(&t);
	oauth2_cli_free_secret(secret);
	config_free(&cfg);
	return rc;
}
