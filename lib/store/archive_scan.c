/*
 * archive_scan.c — store_scan for the archive formats: every complete
 * volume of a directory of volumes (DEST/<name><ext>, in name order, which
 * is time order; temporary ".<name>.tmp-<pid>" files are not volumes), or
 * the one file of a single-file export.  A message is an entry that is a
 * regular file named ".../cur/<uidvalidity>_<uid>.imapsnap[:2,<flags>]"
 * (or in new/); directories and meta files (.imapsnap/...) are not.  Its
 * location is "<volume file name>!<entry name>", as archive.c's locate()
 * gives it.
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

static enum isnap_status broken(struct archive *r, const char *dest,
				const char *volume, struct isnap_error *err)
{
	const char *why = archive_error_string(r);

	return isnap_fail(err, ISNAP_EINTEGRITY, "%s: %s: %s", dest, volume,
			  why ? why : "unreadable archive");
}

static enum isnap_status scan_entry(struct archive *r, const char *dest,
				    const char *volume, const char *path,
				    const struct store_scan_cb *cb, char *buf,
				    struct isnap_error *err)
{
	char loc[sizeof ((struct store_location *)0)->location];
	enum isnap_status rc;
	int n = snprintf(loc, sizeof loc, "%s!%s", volume, path);
	la_ssize_t got;

	if (n < 0 || (size_t)n >= sizeof loc)
		return isnap_fail(err, ISNAP_EINTEGRITY,
				  "%s: %s: entry name too long", dest, volume);
	rc = cb->begin(cb->ctx, loc, err);
	if (rc)
		return rc;
	while ((got = archive_read_data(r, buf, STORE_CHUNK)) > 0) {
		rc = cb->data(cb->ctx, buf, (size_t)got, err);
		if (rc)
			return rc;
	}
	if (got < 0)
		return broken(r, dest, volume, err);
	return cb->end(cb->ctx, err);
}

/* One volume: dfd/rel, reported as `volume`. */
static enum isnap_status scan_volume(const struct archive_kind *k, int dfd,
				     const char *dest, const char *rel,
				     const char *volume,
				     const struct store_scan_cb *cb,
				     char *buf, struct isnap_error *err)
{
	const char *why;
	struct archive *r = archive_kind_reader(k, &why);
	struct archive_entry *e;
	enum isnap_status rc = ISNAP_OK;
	int fd = store_open_regular(dfd, rel), arc;
	locale_t saved;

	if (!r) {
		if (fd >= 0)
			close(fd);
		return isnap_fail(err, ISNAP_ELOCAL, "%s", why);
	}
	if (fd < 0) {
		archive_read_free(r);
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s: %s",
					dest, volume);
	}
	saved = archive_kind_utf8_begin();
	if (archive_read_open_fd(r, fd, 10240) != ARCHIVE_OK) {
		rc = broken(r, dest, volume, err);
		goto out;
	}
	while ((arc = archive_read_next_header(r, &e)) != ARCHIVE_EOF) {
		const char *path;
		if (arc != ARCHIVE_OK && arc != ARCHIVE_WARN) {
			rc = broken(r, dest, volume, err);
			break;
		}
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		path = archive_kind_get_path(k, e);
		if (!path) {
			rc = isnap_fail(err, ISNAP_EINTEGRITY,
					"%s: %s: an entry without a name",
					dest, volume);
			break;
		}
		if (!is_message_entry(path))
			continue;
		rc = scan_entry(r, dest, volume, path, cb, buf, err);
		if (rc)
			break;
	}
out:
	archive_read_free(r);
	archive_kind_utf8_end(saved);
	close(fd);
	return rc;
}

static bool is_volume_name(const char *name, const char *ext)
{
	size_t ln = strlen(name), le = strlen(ext);

	return name[0] != '.' && ln > le && !strcmp(name + ln - le, ext);
}

enum isnap_status store_archive_scan(const char *format, const char *dest,
				     const struct store_scan_cb *cb,
				     struct isnap_error *err)
{
	const struct archive_kind *k = archive_kind_by_format(format);
	char *buf = malloc(STORE_CHUNK);
	enum isnap_status rc = ISNAP_OK;
	struct store_dirent *v;
	struct stat sb;
	size_t n;
	int dfd;

	if (!k) {
		free(buf);
		return isnap_fail(err, ISNAP_EUSAGE,
				  "unknown archive format \"%s\"", format);
	}
	if (!buf)
		return store_oom(err);
	if (stat(dest, &sb) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	} else if (S_ISREG(sb.st_mode)) {
		const char *slash = strrchr(dest, '/');
		rc = scan_volume(k, AT_FDCWD, dest, dest,
				 slash ? slash + 1 : dest, cb, buf, err);
	} else if ((dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	} else {
		if (store_list_dir(dfd, "", &v, &n) != 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s",
					      dest);
		} else {
			for (size_t i = 0; i < n && !rc; i++)
				if (v[i].type == DT_REG &&
				    is_volume_name(v[i].name, k->ext))
					rc = scan_volume(k, dfd, dest,
							 v[i].name, v[i].name,
							 cb, buf, err);
			store_dirents_free(v, n);
		}
		close(dfd);
	}
	free(buf);
	return rc;
}
