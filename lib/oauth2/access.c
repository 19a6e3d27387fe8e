/*
 * access.c — see access.h.  RFC 6749 §6 (refreshing an access token),
 * §5.1 (expires_in).
 */
#include "oauth2/access.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oauth2/secret.h"
#include "oauth2/store.h"

struct oauth2_access {
	pthread_mutex_t lock;
	char *store_path, *token_url, *client_id, *client_secret, *cacert;
	char *hint;
	long timeout_sec;
	struct oauth2_stored stored;
	bool loaded;
	unsigned refreshes;
};

/* When a server leaves out expires_in, assume an hour (what Google and
 * Microsoft issue); RFC 6749 §5.1 leaves it to the client. */
#define DEFAULT_LIFETIME 3600

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = strdup(s)))
		*failed = true;
	return d;
}

enum isnap_status oauth2_access_new(const struct oauth2_access_config *cfg,
				    struct oauth2_access **out,
				    struct isnap_error *err)
{
	struct oauth2_access *a = calloc(1, sizeof *a);
	bool failed = !a;

	*out = NULL;
	if (!a)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	pthread_mutex_init(&a->lock, NULL);
	a->store_path = dup_or_null(cfg->store_path, &failed);
	a->token_url = dup_or_null(cfg->token_url, &failed);
	a->client_id = dup_or_null(cfg->client_id, &failed);
	a->client_secret = dup_or_null(cfg->client_secret, &failed);
	a->cacert = dup_or_null(cfg->http.cacert, &failed);
	a->hint = dup_or_null(cfg->reauth_hint ? cfg->reauth_hint
					       : "imapsnap auth",
			      &failed);
	a->timeout_sec = cfg->http.timeout_sec;
	if (failed || !a->store_path) {
		oauth2_access_free(a);
		return failed ? isnap_fail(err, ISNAP_ENOMEM, "out of memory")
			      : isnap_fail(err, ISNAP_EUSAGE,
					   "OAuth2: no token file");
	}
	*out = a;
	return ISNAP_OK;
}

void oauth2_access_free(struct oauth2_access *a)
{
	if (!a)
		return;
	oauth2_stored_free(&a->stored);
	free(a->store_path);
	free(a->token_url);
	free(a->client_id);
	oauth2_secret_free(a->client_secret);
	free(a->cacert);
	free(a->hint);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

unsigned oauth2_access_refreshes(const struct oauth2_access *a)
{
	return a->refreshes;
}

static bool cached_valid(const struct oauth2_access *a)
{
	return a->stored.access_token &&
	       a->stored.expires_at - OAUTH2_ACCESS_MARGIN > time(NULL);
}

static enum isnap_status load(struct oauth2_access *a, struct isnap_error *err)
{
	struct oauth2_stored s;
	enum isnap_status st = oauth2_store_load(a->store_path, &s, err);

	if (st == ISNAP_EAUTH)
		return isnap_fail(err, ISNAP_EAUTH, "no OAuth2 authorisation "
				  "is stored in %s; run '%s' first",
				  a->store_path, a->hint);
	if (st)
		return st;
	oauth2_stored_free(&a->stored);
	a->stored = s;
	a->loaded = true;
	return ISNAP_OK;
}

/* Ask the token endpoint; called with a->lock and the file lock held. */
static enum isnap_status refresh(struct oauth2_access *a,
				 struct isnap_error *err)
{
	struct oauth2_client c = {
		.token_url = a->token_url ? a->token_url : a->stored.token_url,
		.client_id = a->client_id ? a->client_id : a->stored.client_id,
		.client_secret = a->client_secret ? a->client_secret
						  : a->stored.client_secret,
		.http = { .cacert = a->cacert, .timeout_sec = a->timeout_sec },
	};
	struct oauth2_tokens t;
	enum isnap_status st;

	a->refreshes++;
	st = oauth2_refresh(&c, a->stored.refresh_token, &t, err);
	if (st == ISNAP_EAUTH) {
		/* invalid_grant is RFC 6749 §5.2's word for a refresh token
		 * that expired or was revoked; other codes are as final. */
		char why[ISNAP_ERROR_MAX];
		snprintf(why, sizeof why, "%s", err->msg);
		oauth2_tokens_free(&t);
		return isnap_fail(err, ISNAP_EAUTH, "the OAuth2 refresh token "
				  "in %s was refused (%s): it has expired or "
				  "was revoked; run '%s' again",
				  a->store_path, why, a->hint);
	}
	if (st) {
		oauth2_tokens_free(&t);
		return isnap_error_prefix(err, "refreshing the OAuth2 access "
					  "token");
	}
	if (t.refresh_token) {
		free(a->stored.refresh_token);
		a->stored.refresh_token = t.refresh_token;
		t.refresh_token = NULL;
	}
	oauth2_secret_free(a->stored.access_token);
	a->stored.access_token = t.access_token;
	t.access_token = NULL;
	a->stored.expires_at = (int64_t)time(NULL) +
			       (t.expires_in > 0 ? t.expires_in
						 : DEFAULT_LIFETIME);
	oauth2_tokens_free(&t);
	return oauth2_store_save(a->store_path, &a->stored, err);
}

enum isnap_status oauth2_access_token(struct oauth2_access *a, bool renew,
				      char **token, bool *fresh,
				      struct isnap_error *err)
{
	enum isnap_status st = ISNAP_OK;
	char *old = NULL;
	int lock = -1;

	*token = NULL;
	if (fresh)
		*fresh = false;
	pthread_mutex_lock(&a->lock);
	if (!a->loaded)
		st = load(a, err);
	if (!st && (renew || !cached_valid(a))) {
		if (renew && a->stored.access_token)
			old = strdup(a->stored.access_token);
		lock = oauth2_store_lock(a->store_path);
		if (lock < 0) {
			st = isnap_fail_errno(err, ISNAP_ELOCAL, "locking %s",
					      a->store_path);
			goto out;
		}
		/* Another run may have refreshed while this one waited. */
		st = load(a, err);
		if (!st && (!cached_valid(a) ||
			    (old && !strcmp(old, a->stored.access_token)))) {
			st = refresh(a, err);
			if (!st && fresh)
				*fresh = true;
		}
	}
	if (!st && !(*token = strdup(a->stored.access_token)))
		st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
out:
	if (lock >= 0)
		close(lock);
	oauth2_secret_free(old);
	pthread_mutex_unlock(&a->lock);
	return st;
}
