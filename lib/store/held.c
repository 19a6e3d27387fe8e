/*
 * held.c — store_held (store.h): which of a folder's messages the backup
 * still holds, read-only and cheaply, so that a run can fetch again what
 * its state says is saved but the store has lost.
 *
 *   maildir       the names in the folder's cur/ and new/ (one readdir
 *                 each; no file is opened)
 *   mbox, mbox.gz the folder's index, less the messages that end past
 *                 the file as it is now (a file cut short, or gone)
 *   archives      not known: only reading every volume would tell
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "store/common.h"
#include "store/mbox_index.h"

struct uids {
	uint32_t *v;
	size_t n, a;
};

static int push(struct uids *u, uint32_t uid)
{
	if (u->n == u->a) {
		size_t a = u->a ? 2 * u->a : 1024;
		uint32_t *v = realloc(u->v, a * sizeof *v);
		if (!v)
			return -1;
		u->v = v;
		u->a = a;
	}
	u->v[u->n++] = uid;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorted first: the set grows at its end, one range at a time. */
static int add_all(struct uids *u, struct uidset *held)
{
	if (u->n)
		qsort(u->v, u->n, sizeof *u->v, cmp_u32);
	for (size_t i = 0; i < u->n; i++)
		if (uidset_add(held, u->v[i]))
			return -1;
	return 0;
}

/* The messages of generation `uidvalidity` in dfd/rel (cur/ or new/). */
static int list_messages(int dfd, const char *rel, uint32_t uidvalidity,
			 struct uids *u)
{
	int fd = beneath_open_dir(dfd, rel, false);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -1;
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		uint32_t uv, uid;
		const char *rest;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (store_parse_message_name(de->d_name, &uv, &uid, &rest) &&
		    (*rest == '\0' || *rest == ':' || *rest == ',') &&
		    uv == uidvalidity && push(u, uid)) {
			closedir(d);
			errno = ENOMEM;
			return -1;
		}
	}
	{
		int saved = errno;
		closedir(d);
		errno = saved;
	}
	return errno ? -1 : 0;
}

static enum isnap_status maildir_held(int dfd, const char *dest,
				      const char *path, uint32_t uidvalidity,
				      struct uidset *held,
				      struct isnap_error *err)
{
	static const char *const subs[] = { "cur", "new" };
	struct uids u = { 0 };
	enum isnap_status rc = ISNAP_OK;

	for (size_t i = 0; i < 2 && !rc; i++) {
		char *rel = store_join(path, subs[i]);
		if (!rel)
			rc = store_oom(err);
		else if (list_messages(dfd, rel, uidvalidity, &u))
			rc = errno == ENOMEM ? store_oom(err)
					     : store_fail_path(err, dest, dfd,
							       rel);
		free(rel);
	}
	if (!rc && add_all(&u, held))
		rc = store_oom(err);
	free(u.v);
	return rc;
}

struct mbox_check {
	uint32_t uidvalidity;
	uint64_t reach;     /* how far the file goes now */
	bool gzip;
	struct uids u;
};

static int each_entry(void *ctx, const struct mbox_index_entry *e)
{
	struct mbox_check *c = ctx;
	/* Plain: the message's bytes must all be there.  gzip: offsets are
	 * in the uncompressed stream; the file must reach the end of the
	 * commit that made the message durable. */
	uint64_t end = c->gzip ? e->file_end : e->offset + e->length;

	if (e->uidvalidity != c->uidvalidity || end > c->reach)
		return 0;
	if (push(&c->u, e->uid)) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static enum isnap_status mbox_held(int dfd, const char *dest,
				   const char *path, bool gzip,
				   uint32_t uidvalidity, struct uidset *held,
				   struct isnap_error *err)
{
	const char *ext = gzip ? ".mbox.gz" : ".mbox";
	struct mbox_check c = { .uidvalidity = uidvalidity, .gzip = gzip };
	struct mbox_index_info info;
	enum isnap_status rc = ISNAP_OK;
	char file[4200], idx[4300];
	struct stat sb;
	const char *base;
	int fd, pfd, r;

	snprintf(file, sizeof file, "%s%s", path, ext);
	snprintf(idx, sizeof idx, ".imapsnap/mbox/%s.idx", file);
	/* The directories above it are not followed if they are links. */
	pfd = beneath_open_parent(dfd, file, false, &base);
	r = pfd < 0 ? -1 : fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW);
	if (r != 0) {
		int e = errno;
		if (pfd >= 0)
			close(pfd);
		errno = e;
		if (e != ENOENT)
			return store_fail_path(err, dest, dfd, file);
		return ISNAP_OK; /* gone: nothing is held */
	}
	close(pfd);
	if (!S_ISREG(sb.st_mode))
		return ISNAP_OK;
	c.reach = (uint64_t)sb.st_size;
	fd = beneath_open_file(dfd, idx, O_RDONLY, 0);
	if (fd < 0)
		return errno == ENOENT ? ISNAP_OK
				       : store_fail_path(err, dest, dfd, idx);
	if (mbox_index_read(fd, &info, each_entry, &c) != 0)
		rc = errno == ENOMEM ? store_oom(err)
				     : isnap_fail_errno(err, ISNAP_ELOCAL,
							"reading %s/%s", dest,
							idx);
	close(fd);
	if (!rc && add_all(&c.u, held))
		rc = store_oom(err);
	free(c.u.v);
	return rc;
}

enum isnap_status store_held(const char *format, const char *dest,
			     const struct store_folder *f,
			     struct uidset *held, bool *known,
			     struct isnap_error *err)
{
	bool maildir = !strcmp(format, "maildir");
	bool mbox = !strcmp(format, "mbox"), gz = !strcmp(format, "mbox.gz");
	enum isnap_status rc;
	char *path = NULL;
	int dfd;

	*known = false;
	if (!maildir && !mbox && !gz)
		return ISNAP_OK;
	rc = store_folder_path(f, &path, err);
	if (rc)
		return rc;
	dfd = beneath_open_top(dest, false);
	if (dfd < 0) {
		free(path);
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	}
	rc = maildir ? maildir_held(dfd, dest, path, f->uidvalidity, held, err)
		     : mbox_held(dfd, dest, path, gz, f->uidvalidity, held,
				 err);
	*known = !rc;
	close(dfd);
	free(path);
	return rc;
}
