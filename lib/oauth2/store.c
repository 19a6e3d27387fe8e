/*
 * store.c — see store.h.
 */
#include "oauth2/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsname.h"
#include "oauth2/secret.h"

#define STORE_MAX (64 * 1024)

void oauth2_stored_free(struct oauth2_stored *s)
{
	oauth2_secret_free(s->refresh_token);
	free(s->token_url);
	free(s->client_id);
	oauth2_secret_free(s->client_secret);
	free(s->scope);
	oauth2_secret_free(s->access_token);
	memset(s, 0, sizeof *s);
}

static int take(json_t *o, const char *key, bool required, char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return required ? -1 : 0;
	if (!json_is_string(v) || !json_string_length(v) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	return (*out = strdup(json_string_value(v))) ? 0 : -1;
}

enum isnap_status oauth2_store_load(const char *path, struct oauth2_stored *out,
				    struct isnap_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	char *buf = NULL;
	struct stat sb;
	json_error_t je;
	json_t *o = NULL, *v;
	ssize_t n;
	enum isnap_status rc = ISNAP_ELOCAL;

	memset(out, 0, sizeof *out);
	if (fd < 0 && errno == ENOENT)
		return isnap_fail(err, ISNAP_EAUTH, "no OAuth2 token is "
				  "stored in %s", path);
	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", path);
	if (fstat(fd, &sb) != 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "%s", path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > STORE_MAX) {
		isnap_fail(err, ISNAP_ELOCAL, "%s: not a token file", path);
		goto out;
	}
	if (sb.st_mode & 077) {
		isnap_fail(err, ISNAP_ELOCAL, "%s: others may read or write "
			   "this token file (mode %03o); chmod 600 it",
			   path, (unsigned)(sb.st_mode & 0777));
		goto out;
	}
	if (!(buf = malloc((size_t)sb.st_size + 1))) {
		rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	n = read(fd, buf, (size_t)sb.st_size);
	if (n != sb.st_size) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s", path);
		goto out;
	}
	o = json_loadb(buf, (size_t)n, 0, &je);
	if (!o || !json_is_object(o) ||
	    take(o, "refresh_token", true, &out->refresh_token) ||
	    take(o, "token_url", true, &out->token_url) ||
	    take(o, "client_id", true, &out->client_id) ||
	    take(o, "client_secret", false, &out->client_secret) ||
	    take(o, "scope", false, &out->scope) ||
	    take(o, "access_token", false, &out->access_token)) {
		isnap_fail(err, ISNAP_ELOCAL, "%s: not a token file "
			   "imapsnap wrote (run 'imapsnap auth' again)", path);
		oauth2_stored_free(out);
		goto out;
	}
	v = json_object_get(o, "expires_at");
	if (json_is_integer(v))
		out->expires_at = json_integer_value(v);
	rc = ISNAP_OK;
out:
	if (buf) {
		explicit_bzero(buf, (size_t)sb.st_size);
		free(buf);
	}
	json_decref(o);
	close(fd);
	return rc;
}

static int mkdirs(char *path)
{
	for (char *s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			*s = '/';
			return -1;
		}
		*s = '/';
	}
	return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static int set(json_t *o, const char *key, const char *v)
{
	return v ? json_object_set_new(o, key, json_string(v)) : 0;
}

enum isnap_status oauth2_store_save(const char *path,
				    const struct oauth2_stored *s,
				    struct isnap_error *err)
{
	char dir[4096], tmp[4200];
	char *text = NULL, *slash;
	json_t *o = json_object();
	enum isnap_status rc = ISNAP_OK;
	int fd = -1, dfd = -1;
	size_t len;

	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir ||
	    !(slash = strrchr(dir, '/')) || slash == dir)
		return json_decref(o),
		       isnap_fail(err, ISNAP_ELOCAL, "%s: give an absolute "
				  "path for the token file", path);
	*slash = '\0';
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if (!o || set(o, "refresh_token", s->refresh_token) ||
	    set(o, "token_url", s->token_url) ||
	    set(o, "client_id", s->client_id) ||
	    set(o, "client_secret", s->client_secret) ||
	    set(o, "scope", s->scope) ||
	    set(o, "access_token", s->access_token) ||
	    (s->access_token &&
	     json_object_set_new(o, "expires_at",
				 json_integer(s->expires_at))) ||
	    !(text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS))) {
		json_decref(o);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	json_decref(o);
	len = strlen(text);
	if (mkdirs(dir) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dir);
		goto out;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
	    write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "writing %s", tmp);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "writing %s", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "renaming %s", tmp);
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s", dir);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (rc)
		unlink(tmp);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

bool oauth2_store_default_path(const char *xdg_state_home, const char *home,
			       const char *user, const char *host, char *buf,
			       size_t size)
{
	char *who, *name = NULL;
	int n;

	if (asprintf(&who, "%s@%s", user, host) < 0)
		return false;
	if (fsname_escape_component(who, strlen(who), &name) != 0) {
		free(who);
		return false;
	}
	free(who);
	if (xdg_state_home && xdg_state_home[0] == '/')
		n = snprintf(buf, size, "%s/imapsnap/oauth2/%s.json",
			     xdg_state_home, name);
	else if (home && home[0] == '/')
		n = snprintf(buf, size, "%s/.local/state/imapsnap/oauth2/%s.json",
			     home, name);
	else
		n = -1;
	free(name);
	return n >= 0 && (size_t)n < size;
}

int oauth2_store_lock(const char *path)
{
	char lock[4200];
	int fd;

	if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
	}
	return fd;
}
