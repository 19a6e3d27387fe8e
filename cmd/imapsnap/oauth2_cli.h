/*
 * oauth2_cli.h — OAuth2 as the commands see it: the settings of one
 * account (from options or the config file), the provider and client they
 * resolve to, where its token file is, and the access-token source that
 * backup, list, run and restore hand to their sessions.
 *
 *   struct oauth2_cli o = { 0 };
 *   oauth2_cli_option(&o, c, optarg) ...          // OAUTH2_OPTIONS
 *   if (oauth2_cli_enabled(&o)) {
 *       rc = oauth2_cli_source(&o, url, user, hint, &session, err);
 *   }
 *
 * Sources live until the process exits (they are freed then).
 */
#ifndef IMAPSNAP_OAUTH2_CLI_H
#define IMAPSNAP_OAUTH2_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "imap/session.h"
#include "oauth2/client.h"
#include "oauth2/provider.h"

struct config_account;

struct oauth2_cli {
	const char *provider;      /* google, microsoft or custom; NULL: off */
	const char *client_id;
	const char *client_secret;
	const char *client_secret_file;
	const char *scope;
	const char *device_url, *authorize_url, *token_url;
	const char *token_file;
	const char *cacert;
	const char *flow;          /* device, loopback; NULL: the provider's */
};

enum {
	OPT_OAUTH2_FIRST = 280,
	OPT_OAUTH2_PROVIDER = OPT_OAUTH2_FIRST, OPT_OAUTH2_CLIENT_ID,
	OPT_OAUTH2_SECRET_FILE, OPT_OAUTH2_SCOPE, OPT_OAUTH2_DEVICE_URL,
	OPT_OAUTH2_AUTHORIZE_URL, OPT_OAUTH2_TOKEN_URL, OPT_OAUTH2_TOKEN_FILE,
	OPT_OAUTH2_CACERT, OPT_OAUTH2_FLOW,
	OPT_OAUTH2_END, /* must stay below OPT_COMMAND_FIRST (300) */
};

#define OAUTH2_OPTIONS                                                       \
	{ "oauth2", required_argument, NULL, OPT_OAUTH2_PROVIDER },           \
	{ "oauth2-client-id", required_argument, NULL, OPT_OAUTH2_CLIENT_ID }, \
	{ "oauth2-client-secret-file", required_argument, NULL,               \
	  OPT_OAUTH2_SECRET_FILE },                                           \
	{ "oauth2-scope", required_argument, NULL, OPT_OAUTH2_SCOPE },        \
	{ "oauth2-device-url", required_argument, NULL,                       \
	  OPT_OAUTH2_DEVICE_URL },                                            \
	{ "oauth2-authorize-url", required_argument, NULL,                    \
	  OPT_OAUTH2_AUTHORIZE_URL },                                         \
	{ "oauth2-token-url", required_argument, NULL, OPT_OAUTH2_TOKEN_URL }, \
	{ "oauth2-token-file", required_argument, NULL,                       \
	  OPT_OAUTH2_TOKEN_FILE },                                            \
	{ "oauth2-cacert", required_argument, NULL, OPT_OAUTH2_CACERT },      \
	{ "oauth2-flow", required_argument, NULL, OPT_OAUTH2_FLOW }

/* 1 when `c` is one of OAUTH2_OPTIONS (applied), else 0. */
int oauth2_cli_option(struct oauth2_cli *o, int c, const char *arg);

/* Take the config account's oauth2* keys (options given later win). */
void oauth2_cli_from_config(struct oauth2_cli *o,
			    const struct config_account *ca);

/* Whether built-in OAuth2 is asked for (--oauth2 or an oauth2_* key). */
bool oauth2_cli_enabled(const struct oauth2_cli *o);

/* Check the settings: a known provider, --oauth2 given when other
 * --oauth2-* options are, a known flow.  ISNAP_EUSAGE with why. */
enum isnap_status oauth2_cli_check(const struct oauth2_cli *o,
				   struct isnap_error *err);

/* The client: the provider's preset with the settings over it.  The
 * secret (from the file when one is named) goes to *secret (malloc'd,
 * the caller wipes it with oauth2_cli_free_secret).  `need` says what the
 * caller needs: 't' token URL (refresh), 'a' a flow (auth). */
enum isnap_status oauth2_cli_client(const struct oauth2_cli *o, int need,
				    struct oauth2_client *c, char **secret,
				    enum oauth2_flow *flow,
				    struct isnap_error *err);
void oauth2_cli_free_secret(char *secret);

/* The user and host of an imap(s):// URL, the user from `user` when not
 * NULL, into the buffers.  false when the URL has no host or no user is
 * known. */
bool oauth2_cli_user_host(const char *url, const char *user, char *ubuf,
			  size_t usize, char *hbuf, size_t hsize);

/* The token file of this account: --oauth2-token-file, else the default
 * for user@host (store.h).  ISNAP_EUSAGE when neither can be had. */
enum isnap_status oauth2_cli_token_path(const struct oauth2_cli *o,
					const char *url, const char *user,
					char *buf, size_t size,
					struct isnap_error *err);

/* Make the access-token source of this account and hook it into
 * `session` (token_fn, token_ctx).  `hint` is the command to run when the
 * refresh token is gone. */
enum isnap_status oauth2_cli_source(const struct oauth2_cli *o,
				    struct imap_session_opts *session,
				    const char *hint, struct isnap_error *err);

#endif
