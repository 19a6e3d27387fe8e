/*
 * archive_scan.c — store_scan for the archive formats: every complete
 * volume of a directory of volumes (DEST/<name><ext>, in name order, which
 * is time order), or the one file of a single-file export.  A message is
 * an entry that is a regular file named
 * ".../cur/<uidvalidity>_<uid>.imapsnap[:2,<flags>]" (or in new/); its
 * location is the entry's name, relative to the volume (cb->volume says
 * which one), as archive.c's locate() gives it.  Directory entries are
 * the store's own; every other entry (meta files under .imapsnap/
 * included: the caller knows its own) is a stray, and so is every file
 * of a directory of volumes that is no volume of this format (a
 * temporary ".<name>.tmp-<pid>" is a leftover of an interrupted run).
 * A volume that cannot be read, or whose stream breaks, is reported
 * unreadable by its name (and so is the message it broke in); the scan
 * goes on with the next volume.
 */
#include "store/store.h"
#include "store/archive_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/archive_kind.h"
#include "beneath.h"
#include "store/common.h"

static bool is_message_entry(const char *path)
{
	const char *name = strrchr(path, '/'), *rest;
	uint32_t uidvalidity, uid;
	size_t dir_len;

	if (!name)
		return false;
	dir_len = (size_t)(name - path);
	name++;
	if (dir_len < 3 || (strncmp(name - 4, "cur", 3) &&
			    strncmp(name - 4, "new", 3)) ||
	    (dir_len > 3 && name[-5] != '/'))
		return false;
	return store_parse_message_name(name, &uidvalidity, &uid, &rest) &&
	       (*rest == '\0' || *rest == ':' || *rest == ',');
}

static void why_broken(struct archive *r, const char *dest,
		       const char *volume, struct isnap_error *err)
{
	const char *why = archive_error_string(r);

	isnap_fail(err, ISNAP_EINTEGRITY, "%s%s%s: %s", dest,
		   strcmp(dest, volume) ? ": " : "",
		   strcmp(dest, volume) ? volume : "",
		   why ? why : "unreadable archive");
}

struct volume_scan {
	struct archive *r;
	const char *dest, *volume;
	const struct store_scan_cb *cb;
	char *buf;
	struct isnap_error *err;
	bool broken;        /* the stream broke: the volume ends here */
};

/* One message entry.  A callback's failure is returned; the stream's
 * own is reported and sets vs->broken. */
static enum isnap_status scan_entry(struct volume_scan *vs, const char *path)
{
	enum isnap_status rc;
	struct store_feed f;
	la_ssize_t got = 0;

	if (strlen(path) >= sizeof ((struct store_location *)0)->location)
		return isnap_fail(vs->err, ISNAP_EINTEGRITY,
				  "%s: %s: entry name too long", vs->dest,
				  vs->volume);
	rc = vs->cb->begin(vs->cb->ctx, path, vs->err);
	if (rc)
		return rc;
	store_feed_start(&f, vs->cb);
	while (!store_feed_full(&f) &&
	       (got = archive_read_data(vs->r, vs->buf, STORE_CHUNK)) > 0) {
		rc = store_feed(&f, vs->buf, (size_t)got, vs->err);
		if (rc)
			return rc;
	}
	/* More than the caller wants: the rest is skipped unread (a zip
	 * entry is passed over by its compressed size when that is
	 * known). */
	if (got >= 0 && store_feed_full(&f) &&
	    archive_read_data_skip(vs->r) != ARCHIVE_OK)
		got = -1;
	if (got < 0) {
		vs->broken = true;
		why_broken(vs->r, vs->dest, vs->volume, vs->err);
		return store_scan_unreadable(vs->cb, path, ISNAP_EINTEGRITY,
					     vs->err);
	}
	return vs->cb->end(vs->cb->ctx, vs->err);
}

static enum isnap_status scan_entries(struct volume_scan *vs,
				      const struct archive_kind *k)
{
	struct archive_entry *e;
	enum isnap_status rc = ISNAP_OK;
	int arc;

	while (!rc && !vs->broken &&
	       (arc = archive_read_next_header(vs->r, &e)) != ARCHIVE_EOF) {
		const char *path;
		mode_t type;
		if (arc != ARCHIVE_OK && arc != ARCHIVE_WARN) {
			vs->broken = true;
			break;
		}
		path = archive_kind_get_path(k, e);
		type = archive_entry_filetype(e);
		if (!path || !*path) {
			rc = store_scan_stray(vs->cb, "(no name)",
					      "an entry without a name", false,
					      vs->err);
			continue;
		}
		if (type == AE_IFDIR)
			continue;
		if (!is_message_entry(path)) {
			rc = store_scan_stray(
				vs->cb, path,
				type == AE_IFREG ? "an entry that is no "
						   "message of imapsnap"
				: type == AE_IFLNK
					? "a symbolic link"
					: "an entry that is neither a file "
					  "nor a directory",
				false, vs->err);
			continue;
		}
		if (type != AE_IFREG ||
		    archive_entry_hardlink(e) != NULL) {
			isnap_fail(vs->err, ISNAP_EINTEGRITY,
				   "%s: %s: %s is a %s where a message "
				   "should be",
				   vs->dest, vs->volume, path,
				   type == AE_IFLNK ? "symbolic link"
						    : "link or special entry");
			rc = store_scan_unreadable(vs->cb, path,
						   ISNAP_EINTEGRITY, vs->err);
			continue;
		}
		rc = scan_entry(vs, path);
	}
	if (!rc && vs->broken && !vs->err->msg[0])
		why_broken(vs->r, vs->dest, vs->volume, vs->err);
	return rc;
}

/* One volume: dfd/rel, reported as `volume`. */
static enum isnap_status scan_volume(const struct archive_kind *k, int dfd,
				     const char *dest, const char *rel,
				     const char *volume,
				     const struct store_scan_cb *cb,
				     char *buf, struct isnap_error *err)
{
	const char *why;
	struct volume_scan vs = { .dest = dest, .volume = volume, .cb = cb,
				  .buf = buf, .err = err };
	enum isnap_status rc = ISNAP_OK;
	int fd;
	locale_t saved;

	vs.r = archive_kind_reader(k, &why);
	if (!vs.r)
		return isnap_fail(err, ISNAP_ELOCAL, "%s", why);
	/* AT_FDCWD: a single-file export, its path as the user gave it. */
	fd = dfd == AT_FDCWD ? beneath_open_top_file(rel)
			     : store_open_regular(dfd, rel);
	if (fd < 0) {
		archive_read_free(vs.r);
		isnap_fail_errno(err, store_not_a_file(errno)
					      ? ISNAP_EINTEGRITY
					      : ISNAP_ELOCAL,
				 "reading %s%s%s", dest,
				 strcmp(dest, volume) ? ": " : "",
				 strcmp(dest, volume) ? volume : "");
		return store_scan_unreadable(cb, volume, err->status, err);
	}
	saved = archive_kind_utf8_begin();
	isnap_error_clear(err);
	if (cb->volume)
		cb->volume(cb->ctx, volume);
	if (archive_read_open_fd(vs.r, fd, 10240) != ARCHIVE_OK)
		vs.broken = true;
	else
		rc = scan_entries(&vs, k);
	if (vs.broken && !err->msg[0])
		why_broken(vs.r, dest, volume, err);
	if (cb->volume)
		cb->volume(cb->ctx, NULL);
	archive_read_free(vs.r);
	archive_kind_utf8_end(saved);
	close(fd);
	if (!rc && vs.broken)
		rc = store_scan_unreadable(cb, volume, ISNAP_EINTEGRITY, err);
	return rc;
}

static bool is_volume_name(const char *name, const char *ext)
{
	size_t ln = strlen(name), le = strlen(ext);

	return name[0] != '.' && ln > le && !strcmp(name + ln - le, ext);
}

/* ".<volume><ext>.tmp-<pid>": a volume an interrupted run did not
 * finish (archive.c). */
static bool is_temp_volume(const char *name, const char *ext)
{
	const char *t = strstr(name, ".tmp-");
	const char *digits = t ? t + 5 : NULL;
	size_t le = strlen(ext);

	return name[0] == '.' && t && *digits &&
	       strspn(digits, "0123456789") == strlen(digits) &&
	       (size_t)(t - name) > le && !strncmp(t - le, ext, le);
}

static enum isnap_status scan_dir_of_volumes(const struct archive_kind *k,
					     const char *dest,
					     const struct store_scan_cb *cb,
					     char *buf,
					     struct isnap_error *err)
{
	enum isnap_status rc = ISNAP_OK;
	struct store_dirent *v;
	size_t n;
	int dfd = beneath_open_top(dest, false);

	if (dfd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	if (store_list_dir(dfd, "", &v, &n) != 0) {
		rc = errno == ENOMEM ? store_oom(err)
				     : isnap_fail_errno(err, ISNAP_ELOCAL,
							"reading %s", dest);
		close(dfd);
		return rc;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const char *name = v[i].name;
		bool dir = v[i].type == DT_DIR;
		if (dir && !strcmp(name, ".imapsnap"))
			continue;
		if (!dir && is_volume_name(name, k->ext))
			rc = scan_volume(k, dfd, dest, name, name, cb, buf,
					 err);
		else if (v[i].type == DT_REG && is_temp_volume(name, k->ext))
			rc = store_scan_stray(cb, name,
					      "a volume an interrupted run "
					      "did not finish",
					      true, err);
		else if (!dir || store_dir_has_entries(dfd, name))
			rc = store_scan_stray(
				cb, name,
				dir ? "a directory imapsnap does not write"
				: v[i].type == DT_REG
					? "a file that is no volume of "
					  "imapsnap"
					: store_type_name(dfd, name,
							  v[i].type),
				false, err);
	}
	store_dirents_free(v, n);
	close(dfd);
	return rc;
}

enum isnap_status store_archive_scan(const char *format, const char *dest,
				     const struct store_scan_cb *cb,
				     struct isnap_error *err)
{
	const struct archive_kind *k = archive_kind_by_format(format);
	char *buf;
	enum isnap_status rc;
	struct stat sb;

	if (!k)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "unknown archive format \"%s\"", format);
	if (stat(dest, &sb) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	if (!(buf = malloc(STORE_CHUNK)))
		return store_oom(err);
	if (S_ISREG(sb.st_mode)) {
		const char *slash = strrchr(dest, '/');
		rc = scan_volume(k, AT_FDCWD, dest, dest,
				 slash ? slash + 1 : dest, cb, buf, err);
	} else {
		rc = scan_dir_of_volumes(k, dest, cb, buf, err);
	}
	free(buf);
	return rc;
}
