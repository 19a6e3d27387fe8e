/*
 * maildir_scan.c — store_scan for Maildir (docs/maildir.md): every file
 * named like imapsnap's messages ("<uidvalidity>_<uid>.imapsnap", then
 * nothing, ":2,<flags>" or ",<field>") in a cur/ or new/ directory below
 * the destination, old generations in .uidvalidity-<N>/ included.
 *
 * The location is the one maildir.c's locate() gives, the name without
 * its flags: "<folder path>/cur/<uidvalidity>_<uid>.imapsnap" (new/ for a
 * file found in new/), so that a mail reader changing the flags does not
 * make a message look lost.  tmp/ is never read (nothing there is
 * committed), nor are other directories starting with '.', except the
 * .uidvalidity-<N> generations.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/common.h"

#define MAX_DEPTH 512
#define ASIDE ".uidvalidity-"

/* ".uidvalidity-<digits>" */
static bool is_generation_dir(const char *name)
{
	const char *p = name + strlen(ASIDE);

	if (strncmp(name, ASIDE, strlen(ASIDE)) != 0 || !*p)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static bool is_message_name(const char *name, uint32_t *uidvalidity,
			    uint32_t *uid)
{
	const char *rest;

	return store_parse_message_name(name, uidvalidity, uid, &rest) &&
	       (*rest == '\0' || *rest == ':' || *rest == ',');
}

/* The messages in dfd/rel (a cur/ or new/ directory). */
static enum isnap_status scan_messages(int dfd, const char *dest,
				       const char *rel,
				       const struct store_scan_cb *cb,
				       struct isnap_error *err)
{
	struct store_dirent *v;
	enum isnap_status rc = ISNAP_OK;
	size_t n;

	if (store_list_dir(dfd, rel, &v, &n) != 0)
		return errno == ENOMEM
			       ? store_oom(err)
			       : isnap_fail_errno(err, ISNAP_ELOCAL,
						  "reading %s/%s", dest, rel);
	for (size_t i = 0; i < n && !rc; i++) {
		char loc[sizeof ((struct store_location *)0)->location];
		uint32_t uidvalidity, uid;
		char *path;
		int fd, len;

		if (!is_message_name(v[i].name, &uidvalidity, &uid))
			continue;
		len = snprintf(loc, sizeof loc,
			       "%s/%" PRIu32 "_%" PRIu32 ".imapsnap", rel,
			       uidvalidity, uid);
		if (len < 0 || (size_t)len >= sizeof loc) {
			rc = isnap_fail(err, ISNAP_EINTEGRITY,
					"%s/%s: path too long for a location",
					dest, rel);
			break;
		}
		path = store_join(rel, v[i].name);
		if (!path) {
			rc = store_oom(err);
			break;
		}
		fd = store_open_regular(dfd, path);
		if (fd < 0) {
			/* A symlink or device under our name is no message
			 * of ours: say so, do not follow it. */
			bool foreign = errno == EINVAL || errno == ELOOP;
			rc = isnap_fail_errno(err, foreign ? ISNAP_EINTEGRITY
							   : ISNAP_ELOCAL,
					      "reading %s/%s", dest, path);
		} else {
			rc = cb->begin(cb->ctx, loc, err);
			if (!rc)
				rc = store_feed_file(fd, path, cb, err);
			if (!rc)
				rc = cb->end(cb->ctx, err);
			close(fd);
		}
		free(path);
	}
	store_dirents_free(v, n);
	return rc;
}

static enum isnap_status scan_dir(int dfd, const char *dest, const char *rel,
				  int depth, const struct store_scan_cb *cb,
				  struct isnap_error *err)
{
	struct store_dirent *v;
	enum isnap_status rc = ISNAP_OK;
	size_t n;

	if (depth > MAX_DEPTH)
		return isnap_fail(err, ISNAP_EINTEGRITY,
				  "%s/%s: folders nested too deep", dest, rel);
	if (store_list_dir(dfd, rel, &v, &n) != 0)
		return errno == ENOMEM
			       ? store_oom(err)
			       : isnap_fail_errno(err, ISNAP_ELOCAL,
						  "reading %s%s%s", dest,
						  *rel ? "/" : "", rel);
	for (size_t i = 0; i < n && !rc; i++) {
		const char *name = v[i].name;
		bool messages = !strcmp(name, "cur") || !strcmp(name, "new");
		char *sub;

		if (v[i].type != DT_DIR || !strcmp(name, "tmp") ||
		    (name[0] == '.' && !is_generation_dir(name)))
			continue;
		/* The destination itself is no folder: a cur/ there is not
		 * ours (fsname escapes folders named cur). */
		if (messages && !*rel)
			continue;
		sub = store_join(rel, name);
		if (!sub) {
			rc = store_oom(err);
			break;
		}
		rc = messages ? scan_messages(dfd, dest, sub, cb, err)
			      : scan_dir(dfd, dest, sub, depth + 1, cb, err);
		free(sub);
	}
	store_dirents_free(v, n);
	return rc;
}

enum isnap_status store_maildir_scan(const char *dest,
				     const struct store_scan_cb *cb,
				     struct isnap_error *err)
{
	int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	enum isnap_status rc;

	if (dfd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	rc = scan_dir(dfd, dest, "", 0, cb, err);
	close(dfd);
	return rc;
}
