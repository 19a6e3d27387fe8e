/*
 * store.h — the file that keeps an account's OAuth2 refresh token between
 * runs, with what is needed to use it (token endpoint, client id) and the
 * last access token until it expires.
 *
 * One JSON object per file (docs/imapsnap.conf.5 names the members), by
 * default $XDG_STATE_HOME/imapsnap/oauth2/<user>@<host>.json (else under
 * ~/.local/state).  The file and its directory are private: the file is
 * written 0600 in a 0700 directory, atomically (temporary file, fsync,
 * rename, fsync of the directory), never through a symlink, and refused
 * on reading when others may read or write it.
 *
 *   struct oauth2_stored s;
 *   st = oauth2_store_load(path, &s, err);   // ISNAP_EAUTH: no file
 *   ... s.refresh_token ...
 *   st = oauth2_store_save(path, &s, err);
 *   oauth2_stored_free(&s);                  // wipes the tokens
 */
#ifndef IMAPSNAP_OAUTH2_STORE_H
#define IMAPSNAP_OAUTH2_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct oauth2_stored {
	char *refresh_token;  /* required */
	char *token_url;      /* where to refresh it; required */
	char *client_id;      /* required */
	char *client_secret;  /* NULL for public clients */
	char *scope;          /* NULL when not known */
	char *access_token;   /* the last one, or NULL */
	int64_t expires_at;   /* of access_token, seconds since the epoch */
};

/* ISNAP_OK; ISNAP_EAUTH when there is no such file (nothing was
 * authorised yet); ISNAP_ELOCAL when it cannot be read, is not private
 * or is not a token file. */
enum isnap_status oauth2_store_load(const char *path, struct oauth2_stored *out,
				    struct isnap_error *err);

/* Write `s` to `path`, creating its directory (0700) if need be.
 * ISNAP_OK or ISNAP_ELOCAL. */
enum isnap_status oauth2_store_save(const char *path,
				    const struct oauth2_stored *s,
				    struct isnap_error *err);

void oauth2_stored_free(struct oauth2_stored *s);

/* The default path of the token of `user` at `host` (getenv()'s answers
 * for the first two).  The name is escaped into one path component.
 * false when neither variable helps or `size` is too small. */
bool oauth2_store_default_path(const char *xdg_state_home, const char *home,
			       const char *user, const char *host, char *buf,
			       size_t size);

/* Take an exclusive lock beside `path` (path + ".lock"), waiting for it;
 * so that two runs do not refresh at once (a provider that rotates
 * refresh tokens would refuse the loser's).  Returns the descriptor to
 * close, or -1 with errno set. */
int oauth2_store_lock(const char *path);

#endif
