/*
 * maildir.c — the Maildir store.  The layout and the reasons behind it are
 * in docs/maildir.md; the file format is D. J. Bernstein's maildir(5)
 * (https://cr.yp.to/proto/maildir.html) with the ":2," info suffix for
 * flags.
 *
 *   DEST/<folder path>/{cur,new,tmp}/
 *   message: cur/<uidvalidity>_<uid>.imapsnap:2,<flags>
 *   while written: tmp/<uidvalidity>_<uid>.imapsnap.<pid>
 *   old generations: DEST/<folder path>/.uidvalidity-<N>/{cur,new,tmp}/
 *
 * Durability is by group commit: messages are written to tmp/ without any
 * sync; commit() runs one syncfs(2) for all of them, then renames each into
 * cur/, then fsyncs cur/.  A file therefore only ever appears in cur/ once
 * its bytes are on disk, which is what lets open_folder trust every name it
 * finds in cur/ as a complete message.
 *
 * Every path is opened relative to the store's directory fds, following
 * no symbolic link (beneath.h); folder names become paths only through
 * fsname_folder_path.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "fsname.h"
#include "store/common.h"

/* Longest file name we build: "4294967295_4294967295.imapsnap:2,DFPRST"
 * and "4294967295_4294967295.imapsnap.<pid>" are both under 48 bytes. */
#define MD_NAME_MAX 64
#define MD_SUFFIX ".imapsnap"
#define MD_ASIDE ".uidvalidity-"

struct pending {
	char tmp[MD_NAME_MAX]; /* in tmp/ */
	char cur[MD_NAME_MAX]; /* in cur/, with the flags */
};

struct maildir {
	struct store base;
	long pid;

	/* The open folder; dir_fd < 0 when there is none. */
	char *path;          /* relative to dest_fd, from fsname */
	int dir_fd, cur_fd, tmp_fd;
	uint32_t uidvalidity;
	struct uidset have;  /* in cur/ or new/ when opened, or ended since */

	/* The message being written; msg_fd < 0 when there is none. */
	int msg_fd;
	uint32_t msg_uid;
	uint64_t msg_size, msg_written;
	char msg_tmp[MD_NAME_MAX];

	/* Ended since the last commit. */
	struct pending *pending;
	size_t n_pending, alloc_pending;

	/* The message last ended, for locate. */
	uint32_t last_uid;
	uint64_t last_size;

	/* cur/ by UID, read on the first flag update of the open folder. */
	struct cur_entry *cur_names;
	size_t n_cur_names;
	bool cur_renamed; /* cur/ needs an fsync for flag renames */
};

struct cur_entry {
	uint32_t uid;
	char name[MD_NAME_MAX];
};

static struct maildir *md_of(struct store *s)
{
	return (struct maildir *)s;
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */

static void tmp_name(char *buf, uint32_t uidvalidity, uint32_t uid, long pid)
{
	snprintf(buf, MD_NAME_MAX, "%" PRIu32 "_%" PRIu32 MD_SUFFIX ".%ld",
		 uidvalidity, uid, pid);
}

static void cur_name(char *buf, uint32_t uidvalidity, uint32_t uid,
		     unsigned flags)
{
	char letters[8];

	store_flag_letters(flags, letters);
	snprintf(buf, MD_NAME_MAX, "%" PRIu32 "_%" PRIu32 MD_SUFFIX ":2,%s",
		 uidvalidity, uid, letters);
}

/* A decimal number without leading zero that fits in 32 bits, at *p. */
static bool parse_u32(const char **p, uint32_t *out)
{
	const char *q = *p;
	uint64_t v = 0;

	if (*q < '1' || *q > '9')
		return false;
	while (*q >= '0' && *q <= '9') {
		v = v * 10 + (uint64_t)(*q++ - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*p = q;
	*out = (uint32_t)v;
	return true;
}

/* A message file in cur/ or new/: what follows ".imapsnap" is nothing, or
 * the info (":2,FS"), or a size field another program added (",S=123"). */
static bool is_message_name(const char *name, uint32_t *uidvalidity,
			    uint32_t *uid)
{
	const char *rest;

	return store_parse_message_name(name, uidvalidity, uid, &rest) &&
	       (*rest == '\0' || *rest == ':' || *rest == ',');
}

/* A file this store leaves in tmp/ while writing: ".<pid>" follows. */
static bool is_tmp_name(const char *name, uint32_t *pid)
{
	uint32_t uidvalidity, uid;
	const char *rest;

	return store_parse_message_name(name, &uidvalidity, &uid, &rest) &&
	       *rest++ == '.' && parse_u32(&rest, pid) && *rest == '\0';
}

/* ---------------------------------------------------------------------- */
/* Directories                                                             */

static DIR *open_dir(int dirfd, const char *sub)
{
	int fd = beneath_open_dir(dirfd, sub, false);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

/* Remove what dead runs left in tmp/: only names this store makes, so that
 * another program's files are never touched, and not those of this process,
 * which another store instance of the same run may be writing (a folder
 * fetched over several sessions: STORE_CAP_SPLIT_FOLDER).  One left by a
 * dead run that had our pid is replaced when its name comes up
 * (begin_message). */
static enum isnap_status clean_tmp(struct maildir *md, struct isnap_error *err)
{
	DIR *d = open_dir(md->tmp_fd, ".");
	struct dirent *de;

	if (!d)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s/tmp",
					md->base.dest, md->path);
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		uint32_t pid;
		if (is_tmp_name(de->d_name, &pid) && pid != md->pid &&
		    unlinkat(md->tmp_fd, de->d_name, 0) != 0 && errno != ENOENT)
			break;
	}
	if (errno) {
		isnap_fail_errno(err, ISNAP_ELOCAL,
				 "cleaning %s/%s/tmp", md->base.dest, md->path);
		closedir(d);
		return ISNAP_ELOCAL;
	}
	closedir(d);
	return ISNAP_OK;
}

struct uid_list {
	uint32_t *v;
	size_t n, alloc;
};

static int uid_list_push(struct uid_list *l, uint32_t uid)
{
	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? 2 * l->alloc : 1024;
		uint32_t *v = realloc(l->v, alloc * sizeof *v);
		if (!v)
			return -1;
		l->v = v;
		l->alloc = alloc;
	}
	l->v[l->n++] = uid;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Collect the UIDs of generation `uidvalidity` found in dir_fd/sub.
 * Returns 0, or -1 with errno (ENOMEM included). */
static int scan_dir(int dir_fd, const char *sub, uint32_t uidvalidity,
		    struct uid_list *out)
{
	DIR *d = open_dir(dir_fd, sub);
	struct dirent *de;
	int saved;

	if (!d)
		return -1;
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		uint32_t uv, uid;
		if (is_message_name(de->d_name, &uv, &uid) &&
		    uv == uidvalidity && uid_list_push(out, uid) != 0) {
			errno = ENOMEM;
			break;
		}
	}
	saved = errno;
	closedir(d);
	errno = saved;
	return saved ? -1 : 0;
}

/* Does dir_fd/sub hold any message of generation `uidvalidity`? */
static int holds_generation(int dir_fd, const char *sub, uint32_t uidvalidity,
			    bool *found)
{
	struct uid_list l = { 0 };
	int rc = scan_dir(dir_fd, sub, uidvalidity, &l);

	*found = l.n > 0;
	free(l.v);
	return rc;
}

static bool is_dir_at(int dirfd, const char *path)
{
	struct stat sb;

	return fstatat(dirfd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(sb.st_mode);
}

/* ---------------------------------------------------------------------- */
/* Folders                                                                 */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void md_abort_message(struct store *s)
{
	struct maildir *md = md_of(s);

	if (md->msg_fd < 0)
		return;
	close_fd(&md->msg_fd);
	unlinkat(md->tmp_fd, md->msg_tmp, 0);
}

/* Forget the messages ended but not committed: they were never durable. */
static void drop_pending(struct maildir *md)
{
	for (size_t i = 0; i < md->n_pending; i++)
		unlinkat(md->tmp_fd, md->pending[i].tmp, 0);
	md->n_pending = 0;
}

static void release_folder(struct maildir *md)
{
	md_abort_message(&md->base);
	drop_pending(md);
	close_fd(&md->cur_fd);
	close_fd(&md->tmp_fd);
	close_fd(&md->dir_fd);
	free(md->path);
	md->path = NULL;
	uidset_free(&md->have);
	free(md->cur_names);
	md->cur_names = NULL;
	md->n_cur_names = 0;
	md->cur_renamed = false;
}

/* Create the folder's directories and open them, following no symbolic
 * link: one at DEST/INBOX or DEST/INBOX/cur fails the folder. */
static enum isnap_status open_dirs(struct maildir *md, struct isnap_error *err)
{
	char shown[4200];

	md->dir_fd = beneath_open_dir(md->base.dest_fd, md->path, true);
	if (md->dir_fd < 0)
		return store_fail_path(err, md->base.dest, md->base.dest_fd,
				       md->path);
	snprintf(shown, sizeof shown, "%s/%s", md->base.dest, md->path);
	md->cur_fd = beneath_open_dir(md->dir_fd, "cur", true);
	if (md->cur_fd < 0)
		return store_fail_path(err, shown, md->dir_fd, "cur");
	if (store_mkdirs(md->dir_fd, "new") != 0)
		return store_fail_path(err, shown, md->dir_fd, "new");
	md->tmp_fd = beneath_open_dir(md->dir_fd, "tmp", true);
	if (md->tmp_fd < 0)
		return store_fail_path(err, shown, md->dir_fd, "tmp");
	return ISNAP_OK;
}

/* Report (in `present` and md->have) the messages of this generation
 * already in cur/ or new/, sorted first so that adding them is linear. */
static enum isnap_status scan_present(struct maildir *md,
				      struct uidset *present,
				      struct isnap_error *err)
{
	struct uid_list l = { 0 };
	enum isnap_status rc = ISNAP_OK;

	if (scan_dir(md->dir_fd, "cur", md->uidvalidity, &l) != 0 ||
	    scan_dir(md->dir_fd, "new", md->uidvalidity, &l) != 0) {
		rc = errno == ENOMEM ? store_oom(err)
				     : isnap_fail_errno(err, ISNAP_ELOCAL,
							"reading %s/%s",
							md->base.dest,
							md->path);
		goto out;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof *l.v, cmp_u32);
	for (size_t i = 0; i < l.n; i++) {
		if (uidset_add(present, l.v[i]) ||
		    uidset_add(&md->have, l.v[i])) {
			rc = store_oom(err);
			goto out;
		}
	}
out:
	free(l.v);
	return rc;
}

static enum isnap_status md_open_folder(struct store *s,
					const struct store_folder *f,
					struct uidset *present,
					struct isnap_error *err)
{
	struct maildir *md = md_of(s);
	enum isnap_status rc;

	if (md->dir_fd >= 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "open_folder: folder %s is still open",
				  md->path);
	if (f->uidvalidity == 0) {
		char shown[128];
		return isnap_fail(err, ISNAP_EUSAGE,
				  "open_folder: no UIDVALIDITY for \"%s\"",
				  store_printable(f->utf8 ? f->utf8 : f->name,
						  shown, sizeof shown));
	}
	rc = store_folder_path(f, &md->path, err);
	if (rc)
		return rc;
	md->uidvalidity = f->uidvalidity;
	rc = open_dirs(md, err);
	if (!rc)
		rc = clean_tmp(md, err);
	if (!rc)
		rc = scan_present(md, present, err);
	if (rc)
		release_folder(md);
	return rc;
}

/* What retire_generation does with one of cur, new, tmp. */
enum retire_action { LEAVE, MOVE };

static enum isnap_status plan_retire(struct maildir *md, int dir_fd,
				     const char *path, const char *aside,
				     const char *sub, uint32_t old,
				     enum retire_action *action,
				     struct isnap_error *err)
{
	char target[2 * MD_NAME_MAX + 2];
	bool found;

	snprintf(target, sizeof target, "%s/%s", aside, sub);
	*action = LEAVE;
	if (!is_dir_at(dir_fd, sub))
		return ISNAP_OK;
	if (!is_dir_at(dir_fd, target)) {
		*action = MOVE;
		return ISNAP_OK;
	}
	/* Both exist: an earlier attempt got this far.  What is left in tmp/
	 * is never a message; cur/ and new/ are left alone only if nothing of
	 * generation `old` remains in them (they then hold a newer one). */
	if (strcmp(sub, "tmp") == 0)
		return ISNAP_OK;
	if (holds_generation(dir_fd, sub, old, &found) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/%s/%s",
					md->base.dest, path, sub);
	if (found)
		return isnap_fail(err, ISNAP_EFOLDER,
				  "%s/%s: both %s/ and %s/ hold messages of "
				  "UIDVALIDITY %" PRIu32 " (an interrupted "
				  "earlier move?); refusing to merge them, "
				  "please move one aside by hand",
				  md->base.dest, path, sub, target, old);
	return ISNAP_OK;
}

static enum isnap_status md_retire_generation(struct store *s,
					      const struct store_folder *f,
					      uint32_t old,
					      struct isnap_error *err)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	struct maildir *md = md_of(s);
	enum retire_action action[3];
	char aside[MD_NAME_MAX];
	char *path = NULL;
	int dir_fd = -1, aside_fd = -1;
	bool any = false;
	enum isnap_status rc;

	if (old == 0)
		return ISNAP_OK; /* never examined: nothing to keep */
	rc = store_folder_path(f, &path, err);
	if (rc)
		return rc;
	if (md->path && strcmp(md->path, path) == 0) {
		rc = isnap_fail(err, ISNAP_EUSAGE,
				"retire_generation: folder %s is open", path);
		goto out;
	}
	dir_fd = beneath_open_dir(s->dest_fd, path, false);
	if (dir_fd < 0) {
		if (errno != ENOENT)
			rc = store_fail_path(err, s->dest, s->dest_fd, path);
		goto out; /* never saved anything: nothing to keep */
	}
	snprintf(aside, sizeof aside, MD_ASIDE "%" PRIu32, old);
	/* Decide for all three before moving any, so that a refusal leaves
	 * the folder as it was. */
	for (size_t i = 0; i < 3; i++) {
		rc = plan_retire(md, dir_fd, path, aside, subs[i], old,
				 &action[i], err);
		if (rc)
			goto out;
		any |= action[i] == MOVE;
	}
	if (!any)
		goto out;
	if ((aside_fd = beneath_open_dir(dir_fd, aside, true)) < 0) {
		rc = isnap_fail_errno(err, store_path_status(errno), "%s%s/%s/%s",
				      store_space_hint(errno), s->dest, path, aside);
		goto out;
	}
	for (size_t i = 0; i < 3; i++) {
		if (action[i] == MOVE &&
		    renameat(dir_fd, subs[i], aside_fd, subs[i]) != 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL,
					      "moving %s/%s/%s to %s/%s",
					      s->dest, path, subs[i], aside,
					      subs[i]);
			goto out;
		}
	}
	/* Both directories changed; the move counts only once both are
	 * durable. */
	if (store_fsync_dir(aside_fd, "") != 0 ||
	    store_fsync_dir(dir_fd, "") != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s/%s",
				      s->dest, path);
out:
	if (aside_fd >= 0)
		close(aside_fd);
	if (dir_fd >= 0)
		close(dir_fd);
	free(path);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

static enum isnap_status md_begin_message(struct store *s,
					  const struct store_message *m,
					  struct isnap_error *err)
{
	struct maildir *md = md_of(s);

	if (md->dir_fd < 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "begin_message: no folder is open");
	if (md->msg_fd >= 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "begin_message: UID %" PRIu32
				  " is still being written",
				  md->msg_uid);
	if (m->uid == 0)
		return isnap_fail(err, ISNAP_EMSG, "UID 0 is not a valid UID");
	/* A second copy would be a second file: the store must hold each
	 * message once whatever the server repeats. */
	if (uidset_contains(&md->have, m->uid))
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 " is already saved in %s",
				  m->uid, md->path);
	tmp_name(md->msg_tmp, md->uidvalidity, m->uid, md->pid);
	for (int attempt = 0;; attempt++) {
		md->msg_fd = openat(md->tmp_fd, md->msg_tmp,
				    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
					    O_NOFOLLOW,
				    0600);
		if (md->msg_fd >= 0)
			break;
		/* Left by a dead run whose pid we now have: it is ours to
		 * remove, since nothing else uses our names. */
		if (errno == EEXIST && attempt < 3 &&
		    (unlinkat(md->tmp_fd, md->msg_tmp, 0) == 0 ||
		     errno == ENOENT))
			continue;
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"%screating %s/%s/tmp/%s",
					store_space_hint(errno), s->dest, md->path,
					md->msg_tmp);
	}
	md->msg_uid = m->uid;
	md->msg_size = m->size;
	md->msg_written = 0;
	return ISNAP_OK;
}

static enum isnap_status md_write(struct store *s, const void *data,
				  size_t len, struct isnap_error *err)
{
	struct maildir *md = md_of(s);
	const char *p = data;

	if (md->msg_fd < 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "write: no message is being written");
	if (len > md->msg_size - md->msg_written)
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 ": more than the %" PRIu64
				  " bytes announced",
				  md->msg_uid, md->msg_size);
	while (len) {
		ssize_t n = write(md->msg_fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			/* Too big for this filesystem is this message's
			 * problem; anything else is the destination's. */
			return isnap_fail_errno(
				err, errno == EFBIG ? ISNAP_EMSG : ISNAP_ELOCAL,
				"%swriting %s/%s/tmp/%s", store_space_hint(errno),
				s->dest, md->path, md->msg_tmp);
		}
		p += n;
		len -= (size_t)n;
		md->msg_written += (uint64_t)n;
	}
	return ISNAP_OK;
}

static int reserve_pending(struct maildir *md)
{
	if (md->n_pending == md->alloc_pending) {
		size_t alloc = md->alloc_pending ? 2 * md->alloc_pending : 256;
		struct pending *p = realloc(md->pending, alloc * sizeof *p);
		if (!p)
			return -1;
		md->pending = p;
		md->alloc_pending = alloc;
	}
	return 0;
}

/* end_message's work; on failure the caller discards the message. */
static enum isnap_status finish_file(struct maildir *md,
				     const struct store_message *m,
				     struct isnap_error *err)
{
	const char *dest = md->base.dest;
	int fd;

	if (m->uid != md->msg_uid)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "end_message: UID %" PRIu32
				  " for a message begun as UID %" PRIu32,
				  m->uid, md->msg_uid);
	if (md->msg_written != m->size || m->size != md->msg_size)
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 ": %" PRIu64
				  " bytes received, %" PRIu64 " expected",
				  m->uid, md->msg_written, m->size);
	if (m->internaldate != STORE_NO_DATE) {
		struct timespec ts[2] = {
			{ .tv_sec = (time_t)m->internaldate },
			{ .tv_sec = (time_t)m->internaldate },
		};
		if (futimens(md->msg_fd, ts) != 0)
			return isnap_fail_errno(
				err,
				errno == EINVAL || errno == EOVERFLOW
					? ISNAP_EMSG
					: ISNAP_ELOCAL,
				"setting the date of %s/%s/tmp/%s", dest,
				md->path, md->msg_tmp);
	}
	if (reserve_pending(md) != 0)
		return store_oom(err);
	fd = md->msg_fd;
	md->msg_fd = -1;
	/* A deferred write error (NFS, quotas) may only show here. */
	if (close(fd) != 0) {
		int e = errno;
		unlinkat(md->tmp_fd, md->msg_tmp, 0);
		errno = e;
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"%swriting %s/%s/tmp/%s",
					store_space_hint(errno), dest, md->path,
					md->msg_tmp);
	}
	if (uidset_add(&md->have, m->uid) != 0) {
		unlinkat(md->tmp_fd, md->msg_tmp, 0);
		return store_oom(err);
	}
	memcpy(md->pending[md->n_pending].tmp, md->msg_tmp, MD_NAME_MAX);
	cur_name(md->pending[md->n_pending].cur, md->uidvalidity, m->uid,
		 m->flags);
	md->n_pending++;
	md->last_uid = m->uid;
	md->last_size = m->size;
	return ISNAP_OK;
}

static enum isnap_status md_end_message(struct store *s,
					const struct store_message *m,
					struct isnap_error *err)
{
	struct maildir *md = md_of(s);
	enum isnap_status rc;

	if (md->msg_fd < 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "end_message: no message is being written");
	rc = finish_file(md, m, err);
	if (rc)
		md_abort_message(s); /* no-op once the file is closed */
	return rc;
}

/* The name without flags: a mail reader may change those, and the file
 * is found again by "<uidvalidity>_<uid>.imapsnap" alone. */
static void md_locate(struct store *s, struct store_location *loc)
{
	struct maildir *md = md_of(s);

	memset(loc, 0, sizeof *loc);
	snprintf(loc->location, sizeof loc->location,
		 "%s/cur/%" PRIu32 "_%" PRIu32 MD_SUFFIX,
		 md->path ? md->path : "", md->uidvalidity, md->last_uid);
	loc->stored_size = md->last_size;
}

/* ---------------------------------------------------------------------- */
/* Commit                                                                  */

/* A message that will not reach cur/ may be written again. */
static void forget_uid(struct maildir *md, const char *name)
{
	uint32_t uidvalidity, uid;
	const char *rest;

	/* Removing one UID can need memory to split a range; without it the
	 * UID merely stays refused until the folder is opened again. */
	if (store_parse_message_name(name, &uidvalidity, &uid, &rest))
		uidset_remove_range(&md->have, uid, uid);
}

static enum isnap_status md_commit(struct store *s, struct isnap_error *err)
{
	struct maildir *md = md_of(s);
	size_t i;

	if (md->n_pending == 0 && md->cur_renamed) {
		md->cur_renamed = false;
		if (store_fsync_dir(md->cur_fd, "") != 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"syncing %s/%s/cur", s->dest,
						md->path);
	}
	if (md->n_pending == 0)
		return ISNAP_OK;
	/* One sync for the whole batch instead of one fsync per message
	 * (docs/maildir.md).  syncfs reports writeback errors since Linux
	 * 5.8. */
	if (syncfs(md->tmp_fd) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s",
					s->dest);
	for (i = 0; i < md->n_pending; i++) {
		struct pending *p = &md->pending[i];
		if (renameat(md->tmp_fd, p->tmp, md->cur_fd, p->cur) != 0) {
			enum isnap_status rc = isnap_fail_errno(
				err, ISNAP_ELOCAL,
				"moving %s/%s/tmp/%s to cur/", s->dest,
				md->path, p->tmp);
			/* Drop the one that failed (it may be gone) and keep
			 * the rest for the next commit. */
			unlinkat(md->tmp_fd, p->tmp, 0);
			forget_uid(md, p->tmp);
			md->n_pending -= i + 1;
			memmove(md->pending, p + 1,
				md->n_pending * sizeof *md->pending);
			return rc;
		}
	}
	md->n_pending = 0;
	md->cur_renamed = false;
	if (store_fsync_dir(md->cur_fd, "") != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s/%s/cur",
					s->dest, md->path);
	return ISNAP_OK;
}

static enum isnap_status md_close_folder(struct store *s,
					 struct isnap_error *err)
{
	struct maildir *md = md_of(s);
	enum isnap_status rc = ISNAP_OK;

	if (md->dir_fd < 0)
		return ISNAP_OK;
	md_abort_message(s);
	rc = md_commit(s, err);
	release_folder(md);
	return rc;
}

static enum isnap_status md_finish(struct store *s, struct isnap_error *err)
{
	struct maildir *md = md_of(s);

	md_abort_message(s);
	return md->dir_fd >= 0 ? md_commit(s, err) : ISNAP_OK;
}

static void md_destroy(struct store *s)
{
	struct maildir *md = md_of(s);

	release_folder(md);
	free(md->pending);
	free(md);
}

static int cmp_cur_entry(const void *a, const void *b)
{
	uint32_t x = ((const struct cur_entry *)a)->uid;
	uint32_t y = ((const struct cur_entry *)b)->uid;
	return x < y ? -1 : x > y;
}

/* Read cur/ once into a table by UID, so that a run that learns of many
 * flag changes does not read the directory for each. */
static int load_cur_names(struct maildir *md)
{
	int fd = dup(md->cur_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t alloc = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		uint32_t uidvalidity, uid;
		if (!is_message_name(de->d_name, &uidvalidity, &uid) ||
		    uidvalidity != md->uidvalidity ||
		    strlen(de->d_name) >= MD_NAME_MAX)
			continue;
		if (md->n_cur_names == alloc) {
			size_t na = alloc ? 2 * alloc : 256;
			struct cur_entry *v =
				realloc(md->cur_names, na * sizeof *v);
			if (!v) {
				closedir(d);
				return -1;
			}
			md->cur_names = v;
			alloc = na;
		}
		md->cur_names[md->n_cur_names].uid = uid;
		strcpy(md->cur_names[md->n_cur_names].name, de->d_name);
		md->n_cur_names++;
	}
	closedir(d);
	qsort(md->cur_names, md->n_cur_names, sizeof *md->cur_names,
	      cmp_cur_entry);
	return 0;
}

/* The server's flags changed: rename the file's ":2," suffix to match.
 * The directory is synced at the next commit; a crash before that leaves
 * the old flags, which the next run's CHANGEDSINCE brings back anyway. */
static enum isnap_status md_update_flags(struct store *s,
					 const struct store_message *m,
					 struct isnap_error *err)
{
	struct maildir *md = md_of(s);
	struct cur_entry key = { .uid = m->uid }, *e;
	char name[MD_NAME_MAX];

	if (md->dir_fd < 0)
		return isnap_fail(err, ISNAP_EUSAGE, "no folder is open");
	if (!md->cur_names && load_cur_names(md) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/%s/cur",
					s->dest, md->path);
	e = bsearch(&key, md->cur_names, md->n_cur_names, sizeof key,
		    cmp_cur_entry);
	if (!e)
		return isnap_fail(err, ISNAP_EMSG, "no copy in %s/%s/cur",
				  s->dest, md->path);
	cur_name(name, md->uidvalidity, m->uid, m->flags);
	if (!strcmp(name, e->name))
		return ISNAP_OK;
	if (renameat(md->cur_fd, e->name, md->cur_fd, name) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "renaming %s/%s/cur/%s",
					s->dest, md->path, e->name);
	strcpy(e->name, name);
	md->cur_renamed = true;
	return ISNAP_OK;
}

static const struct store_ops maildir_ops = {
	.format = "maildir",
	.caps = STORE_CAP_PARALLEL | STORE_CAP_SPLIT_FOLDER |
		STORE_CAP_REPORTS_HELD,
	.durable_at_finish = false,
	.open_folder = md_open_folder,
	.retire_generation = md_retire_generation,
	.begin_message = md_begin_message,
	.write = md_write,
	.end_message = md_end_message,
	.abort_message = md_abort_message,
	.locate = md_locate,
	.update_flags = md_update_flags,
	.commit = md_commit,
	.close_folder = md_close_folder,
	.finish = md_finish,
	.destroy = md_destroy,
};

enum isnap_status store_maildir_new(const char *dest, struct store **out,
				    struct isnap_error *err)
{
	struct maildir *md;

	*out = NULL;
	md = calloc(1, sizeof *md);
	if (!md)
		return store_oom(err);
	md->base.ops = &maildir_ops;
	md->base.dest = strdup(dest);
	md->base.dest_fd = beneath_open_top(dest, true);
	md->pid = (long)getpid();
	md->dir_fd = md->cur_fd = md->tmp_fd = md->msg_fd = -1;
	md->have = (struct uidset)UIDSET_INIT;
	if (!md->base.dest || md->base.dest_fd < 0) {
		enum isnap_status rc =
			!md->base.dest ? store_oom(err)
				       : isnap_fail_errno(err, ISNAP_ELOCAL,
							  "%s%s",
							  store_space_hint(errno),
							  dest);
		store_free(&md->base);
		return rc;
	}
	*out = &md->base;
	return ISNAP_OK;
}
