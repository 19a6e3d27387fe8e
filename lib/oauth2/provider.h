/*
 * provider.h — what imapsnap knows about the big providers' OAuth2
 * endpoints, so that a user gives only a client id (and secret).
 *
 *   const struct oauth2_provider *p = oauth2_provider_find("google");
 *
 * Presets hold no client id: each user registers imapsnap (an "installed"
 * or "public client" application) with the provider and gives its id.
 */
#ifndef IMAPSNAP_OAUTH2_PROVIDER_H
#define IMAPSNAP_OAUTH2_PROVIDER_H

enum oauth2_flow {
	OAUTH2_FLOW_DEFAULT = 0, /* the provider's, else device */
	OAUTH2_FLOW_DEVICE,      /* RFC 8628 */
	OAUTH2_FLOW_LOOPBACK,    /* RFC 8252 + RFC 7636 */
};

struct oauth2_provider {
	const char *name;          /* "google", "microsoft" */
	const char *device_url;
	const char *authorize_url;
	const char *token_url;
	const char *scope;
	const char *authorize_extra; /* encoded extra authorize parameters */
	enum oauth2_flow flow;       /* the one that works for IMAP there */
};

/* The preset called `name`, or NULL. */
const struct oauth2_provider *oauth2_provider_find(const char *name);

/* "google, microsoft", for messages. */
const char *oauth2_provider_names(void);

#endif
