/*
 * store.c — what all stores share: opening or scanning one by format name,
 * freeing it, telling single-file exports by their name, and the directory
 * helpers their durability rests on.  (Flag names and letters: flags.c.)
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "store/archive_kind.h"

static enum isnap_status open_maildir(const char *format, const char *dest,
				      struct store **out,
				      struct isnap_error *err)
{
	(void)format;
	return store_maildir_new(dest, out, err);
}

static enum isnap_status open_mbox(const char *format, const char *dest,
				   struct store **out, struct isnap_error *err)
{
	return strcmp(format, "mbox.gz") == 0
		       ? store_mbox_gz_new(dest, out, err)
		       : store_mbox_new(dest, out, err);
}

static enum isnap_status scan_maildir(const char *format, const char *dest,
				      const struct store_scan_cb *cb,
				      struct isnap_error *err)
{
	(void)format;
	return store_maildir_scan(dest, cb, err);
}

static enum isnap_status scan_mbox(const char *format, const char *dest,
				   const struct store_scan_cb *cb,
				   struct isnap_error *err)
{
	return store_mbox_scan(dest, strcmp(format, "mbox.gz") == 0, cb, err);
}

/* One line per output format; store_open and store_scan look the name up
 * here. */
static const struct {
	const char *name;
	enum isnap_status (*create)(const char *format, const char *dest,
				    struct store **out,
				    struct isnap_error *err);
	enum isnap_status (*scan)(const char *format, const char *dest,
				  const struct store_scan_cb *cb,
				  struct isnap_error *err);
} formats[] = {
	{ "maildir", open_maildir, scan_maildir },
	{ "mbox", open_mbox, scan_mbox },
	{ "mbox.gz", open_mbox, scan_mbox },
	{ "tar", store_archive_new, store_archive_scan },
	{ "tar.gz", store_archive_new, store_archive_scan },
	{ "tar.zst", store_archive_new, store_archive_scan },
	{ "tar.xz", store_archive_new, store_archive_scan },
	{ "zip", store_archive_new, store_archive_scan },
};

#define N_FORMATS (sizeof formats / sizeof *formats)

static enum isnap_status unknown(const char *format, struct isnap_error *err)
{
	char known[256] = "";
	size_t used = 0;

	for (size_t i = 0; i < N_FORMATS && used < sizeof known; i++)
		used += (size_t)snprintf(known + used, sizeof known - used,
					 "%s%s", i ? ", " : "",
					 formats[i].name);
	return isnap_fail(err, ISNAP_EUSAGE,
			  "unknown output format \"%s\" (known: %s)", format,
			  known);
}

enum isnap_status store_open(const char *format, const char *dest,
			     struct store **out, struct isnap_error *err)
{
	*out = NULL;
	for (size_t i = 0; i < N_FORMATS; i++)
		if (strcmp(format, formats[i].name) == 0)
			return formats[i].create(format, dest, out, err);
	return unknown(format, err);
}

enum isnap_status store_scan(const char *format, const char *dest,
			     const struct store_scan_cb *cb,
			     struct isnap_error *err)
{
	for (size_t i = 0; i < N_FORMATS; i++)
		if (strcmp(format, formats[i].name) == 0)
			return formats[i].scan(format, dest, cb, err);
	return unknown(format, err);
}

const char *store_single_file_format(const char *dest)
{
	const struct archive_kind *k = archive_kind_by_suffix(dest);
	struct stat sb;

	if (!k || (stat(dest, &sb) == 0 && S_ISDIR(sb.st_mode)))
		return NULL;
	return k->format;
}

void store_free(struct store *s)
{
	char *dest;
	int fd;

	if (!s)
		return;
	/* destroy frees `s` itself; it may still use dest and dest_fd. */
	dest = s->dest;
	fd = s->dest_fd;
	s->ops->destroy(s);
	free(dest);
	if (fd >= 0)
		close(fd);
}

/* fsync an open directory; EINVAL means the filesystem cannot sync
 * directories at all (some FUSE and network filesystems), where there is
 * nothing more we could do. */
static int fsync_dirfd(int fd)
{
	if (fsync(fd) != 0 && errno != EINVAL)
		return -1;
	return 0;
}

int store_mkdirs(int dirfd, const char *relpath)
{
	int fd = beneath_open_dir(dirfd, relpath, true);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int store_fsync_dir(int dirfd, const char *relpath)
{
	int fd, rc, saved;

	fd = beneath_open_dir(dirfd, relpath, false);
	if (fd < 0)
		return -1;
	rc = fsync_dirfd(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}
