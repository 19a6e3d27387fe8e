/*
 * maildir_scan.c — store_scan for Maildir (docs/maildir.md): every file
 * named like imapsnap's messages ("<uidvalidity>_<uid>.imapsnap", then
 * nothing, ":2,<flags>" or ",<field>") in a cur/ or new/ directory below
 * the destination, old generations in .uidvalidity-<N>/ included, and
 * everything else below the destination (outside .imapsnap/) as a stray:
 * a mail reader shows a file planted in cur/ or new/ whatever its name,
 * so verify must hear of it.
 *
 * The location is the one maildir.c's locate() gives, the name without
 * its flags: "<folder path>/cur/<uidvalidity>_<uid>.imapsnap" (new/ for a
 * file found in new/), so that a mail reader changing the flags does not
 * make a message look lost.  What the store itself writes beside the
 * messages is no stray: the cur/, new/ and tmp/ directories, the
 * .uidvalidity-<N> generations, and the files of a run that was
 * interrupted (tmp/<uidvalidity>_<uid>.imapsnap.<pid>, reported as
 * leftovers).  An empty directory holds nothing to account for.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beneath.h"
#include "store/common.h"

#define MAX_DEPTH 512
#define ASIDE ".uidvalidity-"
#define STATE_DIR ".imapsnap"

struct walk {
	int dfd;
	const char *dest;
	const struct store_scan_cb *cb;
	struct isnap_error *err;
};

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

/* "<uidvalidity>_<uid>.imapsnap.<pid>": maildir.c's file while writing. */
static bool is_tmp_name(const char *name)
{
	uint32_t uidvalidity, uid;
	const char *rest;

	if (!store_parse_message_name(name, &uidvalidity, &uid, &rest) ||
	    *rest++ != '.' || *rest < '1' || *rest > '9')
		return false;
	return strspn(rest, "0123456789") == strlen(rest) &&
	       strlen(rest) <= 10;
}

/* dfd/path, no message of ours: a stray, unless it is an empty
 * directory. */
static enum isnap_status stray(struct walk *w, const char *path,
			       unsigned char type, bool leftover)
{
	if (type == DT_DIR && !store_dir_has_entries(w->dfd, path))
		return ISNAP_OK;
	return store_scan_stray(w->cb, path,
				leftover ? "a message an interrupted run left "
					   "half written"
				: type == DT_DIR
					? "a directory imapsnap does not write"
					: store_type_name(w->dfd, path, type),
				leftover, w->err);
}

static enum isnap_status read_message(struct walk *w, const char *path,
				      const char *loc, unsigned char type)
{
	enum isnap_status rc;
	int fd;

	if (type != DT_REG && type != DT_UNKNOWN) {
		/* A symlink or a directory under our name is no message of
		 * ours: say so, do not follow it. */
		isnap_fail(w->err, ISNAP_EINTEGRITY,
			   "%s/%s is %s where a message should be", w->dest,
			   path, store_type_name(w->dfd, path, type));
		return store_scan_unreadable(w->cb, loc, ISNAP_EINTEGRITY,
					     w->err);
	}
	fd = store_open_regular(w->dfd, path);
	if (fd < 0) {
		bool foreign = store_not_a_file(errno);
		if (foreign && errno != ELOOP)
			isnap_fail(w->err, ISNAP_EINTEGRITY,
				   "%s/%s is %s where a message should be",
				   w->dest, path,
				   store_type_name(w->dfd, path, DT_UNKNOWN));
		else
			isnap_fail_errno(w->err, foreign ? ISNAP_EINTEGRITY
							 : ISNAP_ELOCAL,
					 "reading %s/%s", w->dest, path);
		return store_scan_unreadable(w->cb, loc, w->err->status,
					     w->err);
	}
	rc = w->cb->begin(w->cb->ctx, loc, w->err);
	if (!rc) {
		rc = store_feed_file(fd, path, w->cb, w->err);
		if (rc == ISNAP_ELOCAL)
			rc = store_scan_unreadable(w->cb, loc, rc, w->err);
		else if (!rc)
			rc = w->cb->end(w->cb->ctx, w->err);
	}
	close(fd);
	return rc;
}

/* The entries of a cur/ or new/ directory at `rel`. */
static enum isnap_status scan_messages(struct walk *w, const char *rel)
{
	struct store_dirent *v;
	enum isnap_status rc = ISNAP_OK;
	size_t n;

	if (store_list_dir(w->dfd, rel, &v, &n) != 0) {
		if (errno == ENOMEM)
			return store_oom(w->err);
		isnap_fail_errno(w->err, ISNAP_ELOCAL, "reading %s/%s",
				 w->dest, rel);
		return store_scan_unreadable(w->cb, rel, ISNAP_ELOCAL, w->err);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		char loc[sizeof ((struct store_location *)0)->location];
		uint32_t uidvalidity, uid;
		char *path = store_join(rel, v[i].name);
		int len;

		if (!path) {
			rc = store_oom(w->err);
			break;
		}
		if (!is_message_name(v[i].name, &uidvalidity, &uid)) {
			rc = stray(w, path, v[i].type, false);
			free(path);
			continue;
		}
		len = snprintf(loc, sizeof loc,
			       "%s/%" PRIu32 "_%" PRIu32 ".imapsnap", rel,
			       uidvalidity, uid);
		if (len < 0 || (size_t)len >= sizeof loc)
			rc = isnap_fail(w->err, ISNAP_EINTEGRITY,
					"%s/%s: path too long for a location",
					w->dest, rel);
		else
			rc = read_message(w, path, loc, v[i].type);
		free(path);
	}
	store_dirents_free(v, n);
	return rc;
}

/* tmp/: nothing there is committed; imapsnap's own files are what a run
 * left when it was interrupted (the next run removes them). */
static enum isnap_status scan_tmp(struct walk *w, const char *rel)
{
	struct store_dirent *v;
	enum isnap_status rc = ISNAP_OK;
	size_t n;

	if (store_list_dir(w->dfd, rel, &v, &n) != 0) {
		if (errno == ENOMEM)
			return store_oom(w->err);
		isnap_fail_errno(w->err, ISNAP_ELOCAL, "reading %s/%s",
				 w->dest, rel);
		return store_scan_unreadable(w->cb, rel, ISNAP_ELOCAL, w->err);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		char *path = store_join(rel, v[i].name);
		if (!path) {
			rc = store_oom(w->err);
			break;
		}
		rc = stray(w, path, v[i].type,
			   v[i].type == DT_REG && is_tmp_name(v[i].name));
		free(path);
	}
	store_dirents_free(v, n);
	return rc;
}

/* The destination (rel "") or a folder's directory, or a generation kept
 * aside. */
static enum isnap_status scan_dir(struct walk *w, const char *rel, int depth)
{
	struct store_dirent *v;
	enum isnap_status rc = ISNAP_OK;
	size_t n;

	if (depth > MAX_DEPTH)
		return isnap_fail(w->err, ISNAP_EINTEGRITY,
				  "%s/%s: folders nested too deep", w->dest,
				  rel);
	if (store_list_dir(w->dfd, rel, &v, &n) != 0) {
		if (errno == ENOMEM)
			return store_oom(w->err);
		isnap_fail_errno(w->err, ISNAP_ELOCAL, "reading %s%s%s",
				 w->dest, *rel ? "/" : "", rel);
		/* The destination itself: nothing can be read at all. */
		return *rel ? store_scan_unreadable(w->cb, rel, ISNAP_ELOCAL,
						    w->err)
			    : ISNAP_ELOCAL;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const char *name = v[i].name;
		bool dir = v[i].type == DT_DIR;
		char *sub;

		/* imapsnap's own state. */
		if (!*rel && dir && !strcmp(name, STATE_DIR))
			continue;
		sub = store_join(rel, name);
		if (!sub) {
			rc = store_oom(w->err);
			break;
		}
		/* The destination itself is no folder: a cur/ there is not
		 * ours (fsname escapes folders named cur). */
		if (!dir || (!*rel && (!strcmp(name, "cur") ||
				       !strcmp(name, "new") ||
				       !strcmp(name, "tmp"))))
			rc = stray(w, sub, v[i].type, false);
		else if (!strcmp(name, "cur") || !strcmp(name, "new"))
			rc = scan_messages(w, sub);
		else if (!strcmp(name, "tmp"))
			rc = scan_tmp(w, sub);
		else if (name[0] != '.' || is_generation_dir(name))
			rc = scan_dir(w, sub, depth + 1);
		else
			rc = stray(w, sub, v[i].type, false);
		free(sub);
	}
	store_dirents_free(v, n);
	return rc;
}

enum isnap_status store_maildir_scan(const char *dest,
				     const struct store_scan_cb *cb,
				     struct isnap_error *err)
{
	struct walk w = { .dest = dest, .cb = cb, .err = err };
	enum isnap_status rc;

	w.dfd = beneath_open_top(dest, false);
	if (w.dfd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	rc = scan_dir(&w, "", 0);
	close(w.dfd);
	return rc;
}
