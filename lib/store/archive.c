/*
 * archive.c — the archive stores: tar, tar.gz, tar.zst, tar.xz and zip
 * through libarchive (docs/formats.md).
 *
 * Inside, a volume is a Maildir tree, so that extracting it gives a Maildir
 * that mutt or Dovecot open as it is:
 *
 *   <folder path>/cur/ new/ tmp/                   (directory entries)
 *   <folder path>/cur/<uidvalidity>_<uid>.imapsnap:2,<flags>
 *
 * holding the server's bytes, with mtime = INTERNALDATE.  Entries are
 * streamed: the header goes out at begin_message (the size is known from
 * the literal), the bytes as they come.  So the name carries the flags
 * known at begin_message (the server sends FLAGS before the body when it
 * is asked for them first, as the fetch engine does), and a message
 * without INTERNALDATE by then gets the time of the write.
 *
 * Two ways to run:
 *   - DEST is a directory: each run writes one volume holding what is new,
 *     DEST/<UTC time of the run, 20261125T174501Z><ext>; no message, no
 *     volume.  The state is the caller's, in DEST/.imapsnap/.
 *   - DEST is a file name ending in an archive suffix (single-file
 *     export): one complete export into that file, replaced if it exists.
 * Either way the volume is written as DEST/.<name>.tmp-<pid> and only
 * fsynced and renamed into place by finish(), so a volume that exists is
 * complete; durable_at_finish tells the caller to record nothing before.
 *
 * In a directory of volumes, each volume's record (archive_record.h) says
 * what it holds; open_folder reports the messages of intact volumes as
 * present, so that a run fetches again what a deleted or damaged volume
 * held (docs/formats.md, "Healing").
 *
 * A message aborted after its header went out cannot be taken back out of
 * the stream.  Its entry is padded and remembered, and finish() copies the
 * volume once more without those entries before renaming it: a rare cost
 * that keeps every entry of a volume a complete message.
 */
#include "store/store.h"
#include "store/archive_lib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "beneath.h"
#include "store/archive_kind.h"
#include "store/archive_record.h"
#include "store/common.h"

#define TMP_INFIX ".tmp-"

struct arch {
	struct store base;
	const struct archive_kind *kind;
	bool single;        /* single-file export */
	long pid;
	char *volume;       /* final name, in dest_fd */
	char *tmp;          /* temporary name, in dest_fd */
	int fd;             /* of tmp; -1 until the volume is started */
	struct archive *a;
	struct archive_entry *entry;
	bool failed;        /* libarchive gave up: the volume is lost */
	uint64_t entries;   /* headers written */
	uint64_t messages;  /* messages ended */
	uint64_t *aborted;  /* entry numbers to leave out */
	size_t n_aborted, alloc_aborted;

	/* The open folder; path is NULL when there is none. */
	char *path;
	uint32_t uidvalidity;
	bool dirs_written;
	bool held_any;      /* earlier volumes hold some of it */
	struct uidset have;

	/* A directory of volumes: what the volumes there hold (loaded at
	 * the first open_folder), and what this run's volume holds. */
	bool records_loaded;
	struct volume_records records;
	struct volume_record record;
	/* Folders that no volume holds anything of, and that got no message
	 * in this one: their directories go in at finish, if the volume is
	 * kept, so that extracting it gives the empty folder. */
	char **empty;
	size_t n_empty, alloc_empty;

	/* The message being written. */
	bool in_msg;
	uint32_t uid;
	uint64_t size, written, entry_no;
	char name[4096 + 64];
};

static struct arch *ar_of(struct store *s)
{
	return (struct arch *)s;
}

static enum isnap_status lost(struct arch *ar, struct isnap_error *err)
{
	ar->failed = true;
	return isnap_fail(err, ISNAP_ELOCAL, "writing %s/%s: %s",
			  ar->base.dest, ar->tmp,
			  archive_error_string(ar->a)
				  ? archive_error_string(ar->a)
				  : "libarchive failed");
}

/* ---------------------------------------------------------------------- */
/* The volume                                                              */

/* Remove volumes dead runs left half written: ".<name><ext>.tmp-<pid>".
 * Only in a directory of volumes, where the caller holds the lock, so no
 * live run writes there. */
static void clean_dead_temps(struct arch *ar)
{
	struct store_dirent *v;
	size_t n;

	if (ar->single || store_list_dir(ar->base.dest_fd, "", &v, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *name = v[i].name, *t = strstr(name, TMP_INFIX);
		const char *digits = t ? t + strlen(TMP_INFIX) : NULL;
		size_t stem;
		if (v[i].type != DT_REG || name[0] != '.' || !t || !*digits ||
		    strspn(digits, "0123456789") != strlen(digits))
			continue;
		stem = (size_t)(t - name);
		if (stem > strlen(ar->kind->ext) &&
		    !strncmp(t - strlen(ar->kind->ext), ar->kind->ext,
			     strlen(ar->kind->ext)))
			unlinkat(ar->base.dest_fd, name, 0);
	}
	store_dirents_free(v, n);
}

/* Create dirfd/name anew: whatever has the name (left by a dead run with
 * our pid, or put there by someone else) is removed, never written
 * through or truncated.  The fd, or -1 with errno. */
static int create_fresh(int dirfd, const char *name)
{
	for (int attempt = 0;; attempt++) {
		int fd = beneath_open_file(dirfd, name,
					   O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd >= 0 || errno != EEXIST || attempt == 3)
			return fd;
		if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
			return -1;
	}
}

static enum isnap_status start_volume(struct arch *ar, struct isnap_error *err)
{
	const char *why;

	if (ar->a)
		return ar->failed ? lost(ar, err) : ISNAP_OK;
	clean_dead_temps(ar);
	ar->a = archive_kind_writer(ar->kind, &why);
	if (!ar->a)
		return isnap_fail(err, ISNAP_EUSAGE, "%s: %s",
				  ar->kind->format, why);
	ar->fd = create_fresh(ar->base.dest_fd, ar->tmp);
	if (ar->fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%screating %s/%s",
					store_space_hint(errno), ar->base.dest,
					ar->tmp);
	if (archive_write_open_fd(ar->a, ar->fd) != ARCHIVE_OK)
		return lost(ar, err);
	return ISNAP_OK;
}

static enum isnap_status header(struct arch *ar, const char *path,
				mode_t type, uint64_t size, time_t mtime,
				struct isnap_error *err)
{
	struct archive_entry *e = ar->entry;
	int rc;

	archive_entry_clear(e);
	archive_kind_set_path(ar->kind, e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0700 : 0600);
	/* Zip keeps a date in two fields: the DOS one, which starts in 1980
	 * (an earlier date is written as 1980-01-01), and the extended
	 * timestamp, 32 bits that Info-ZIP's unzip and libarchive read as
	 * unsigned on 64-bit systems, so that a date before 1970 would come
	 * out as one after 2038.  Such a date is left to the DOS field. */
	if (mtime >= 0 || !ar->kind->zip)
		archive_entry_set_mtime(e, mtime, 0);
	if (type == AE_IFREG)
		archive_entry_set_size(e, (la_int64_t)size);
	{
		locale_t saved = archive_kind_utf8_begin();
		rc = archive_write_header(ar->a, e);
		archive_kind_utf8_end(saved);
	}
	if (rc == ARCHIVE_FATAL)
		return lost(ar, err);
	/* ARCHIVE_FAILED: this entry could not be written, and is not in
	 * the volume; the volume itself is fine. */
	if (rc == ARCHIVE_FAILED)
		return isnap_fail(err, ISNAP_EMSG, "%s: %s", path,
				  archive_error_string(ar->a));
	ar->entries++;
	return ISNAP_OK;
}

/* cur/, new/ and tmp/ of folder `path`: a Maildir reader wants all
 * three. */
static enum isnap_status dirs_of(struct arch *ar, const char *path,
				 struct isnap_error *err)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	time_t now = time(NULL);

	for (size_t i = 0; i < 3; i++) {
		char dir[sizeof ar->name];
		enum isnap_status rc;
		snprintf(dir, sizeof dir, "%s/%s/", path, subs[i]);
		rc = header(ar, dir, AE_IFDIR, 0, now, err);
		if (rc)
			return rc == ISNAP_EMSG ? ISNAP_EFOLDER : rc;
	}
	return ISNAP_OK;
}

/* Those of the empty folders (struct arch.empty), before the meta files
 * or at finish: the volume is kept. */
static enum isnap_status empty_dirs(struct arch *ar, struct isnap_error *err)
{
	enum isnap_status rc = ISNAP_OK;

	for (size_t i = 0; !rc && i < ar->n_empty; i++)
		rc = dirs_of(ar, ar->empty[i], err);
	for (size_t i = 0; i < ar->n_empty; i++)
		free(ar->empty[i]);
	ar->n_empty = 0;
	return rc;
}

/* The open folder's, once per volume and folder. */
static enum isnap_status folder_dirs(struct arch *ar, struct isnap_error *err)
{
	enum isnap_status rc;

	if (ar->dirs_written)
		return ISNAP_OK;
	rc = dirs_of(ar, ar->path, err);
	if (!rc)
		ar->dirs_written = true;
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Folders and messages                                                    */

static enum isnap_status ar_open_folder(struct store *s,
					const struct store_folder *f,
					struct uidset *present,
					struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	enum isnap_status rc;

	if (ar->path)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "open_folder: folder %s is still open",
				  ar->path);
	if (f->uidvalidity == 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "open_folder: no UIDVALIDITY");
	ar->uidvalidity = f->uidvalidity;
	ar->dirs_written = false;
	ar->held_any = false;
	rc = store_folder_path(f, &ar->path, err);
	/* What the volumes already there hold of it (archive_record.h):
	 * their records, and each volume's size; nothing is read. */
	if (!rc && !ar->single && !ar->records_loaded) {
		rc = volume_records_load(ar->base.dest_fd, ar->base.dest,
					 ar->kind, &ar->records, err);
		ar->records_loaded = !rc;
	}
	if (!rc && !ar->single) {
		struct uidset held = UIDSET_INIT;
		if (volume_records_held(&ar->records, ar->path,
					f->uidvalidity, &held) ||
		    uidset_add_set(present, &held))
			rc = store_oom(err);
		ar->held_any = !uidset_empty(&held);
		uidset_free(&held);
	}
	if (rc) {
		free(ar->path);
		ar->path = NULL;
	}
	return rc;
}

/* Volumes are never changed once written, and the UIDVALIDITY is part of
 * every entry's name: the old generation stays as it is. */
static enum isnap_status ar_retire_generation(struct store *s,
					      const struct store_folder *f,
					      uint32_t old,
					      struct isnap_error *err)
{
	(void)s;
	(void)f;
	(void)old;
	(void)err;
	return ISNAP_OK;
}

static enum isnap_status ar_begin_message(struct store *s,
					  const struct store_message *m,
					  struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	char flags[8];
	enum isnap_status rc;
	time_t mtime;

	if (!ar->path)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "begin_message: no folder is open");
	if (ar->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "begin_message: UID %" PRIu32
				  " is still being written",
				  ar->uid);
	if (m->uid == 0)
		return isnap_fail(err, ISNAP_EMSG, "UID 0 is not a valid UID");
	if (uidset_contains(&ar->have, m->uid))
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 " is already saved in %s",
				  m->uid, ar->path);
	rc = start_volume(ar, err);
	if (!rc)
		rc = folder_dirs(ar, err);
	if (rc)
		return rc;
	store_flag_letters(m->flags, flags);
	if ((size_t)snprintf(ar->name, sizeof ar->name,
			     "%s/cur/%" PRIu32 "_%" PRIu32 ".imapsnap:2,%s",
			     ar->path, ar->uidvalidity, m->uid,
			     flags) >= sizeof ar->name)
		/* Not the path itself: it would crowd out the reason. */
		return isnap_fail(err, ISNAP_EFOLDER,
				  "path too long for the archive: its messages' "
				  "names would exceed %zu bytes",
				  sizeof ar->name - 1);
	mtime = m->internaldate != STORE_NO_DATE &&
				(int64_t)(time_t)m->internaldate ==
					m->internaldate
			? (time_t)m->internaldate
			: time(NULL);
	ar->entry_no = ar->entries;
	rc = header(ar, ar->name, AE_IFREG, m->size, mtime, err);
	if (rc)
		return rc;
	ar->in_msg = true;
	ar->uid = m->uid;
	ar->size = m->size;
	ar->written = 0;
	return ISNAP_OK;
}

static enum isnap_status ar_write(struct store *s, const void *data,
				  size_t len, struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	const char *p = data;

	if (!ar->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "write: no message is being written");
	if (len > ar->size - ar->written)
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 ": more than the %" PRIu64
				  " bytes announced",
				  ar->uid, ar->size);
	while (len) {
		la_ssize_t n = archive_write_data(ar->a, p, len);
		if (n <= 0)
			return lost(ar, err);
		p += n;
		len -= (size_t)n;
		ar->written += (uint64_t)n;
	}
	return ISNAP_OK;
}

static void ar_abort_message(struct store *s)
{
	struct arch *ar = ar_of(s);

	if (!ar->in_msg)
		return;
	ar->in_msg = false;
	/* Pads the entry to its announced size; finish() leaves it out. */
	if (archive_write_finish_entry(ar->a) != ARCHIVE_OK)
		ar->failed = true;
	if (ar->n_aborted == ar->alloc_aborted) {
		size_t alloc = ar->alloc_aborted ? 2 * ar->alloc_aborted : 8;
		uint64_t *v = realloc(ar->aborted, alloc * sizeof *v);
		if (!v) {
			ar->failed = true; /* cannot leave it out: give up */
			return;
		}
		ar->aborted = v;
		ar->alloc_aborted = alloc;
	}
	ar->aborted[ar->n_aborted++] = ar->entry_no;
}

static enum isnap_status ar_end_message(struct store *s,
					const struct store_message *m,
					struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	enum isnap_status rc = ISNAP_OK;

	if (!ar->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "end_message: no message is being written");
	if (m->uid != ar->uid)
		rc = isnap_fail(err, ISNAP_EUSAGE,
				"end_message: UID %" PRIu32
				" for a message begun as UID %" PRIu32,
				m->uid, ar->uid);
	else if (ar->written != m->size || m->size != ar->size)
		rc = isnap_fail(err, ISNAP_EMSG,
				"UID %" PRIu32 ": %" PRIu64
				" bytes received, %" PRIu64 " expected",
				m->uid, ar->written, m->size);
	else if (uidset_add(&ar->have, m->uid) != 0 ||
		 (!ar->single && volume_record_add(&ar->record, ar->path,
						   ar->uidvalidity,
						   m->uid) != 0))
		rc = store_oom(err);
	if (rc) {
		ar_abort_message(s);
		return rc;
	}
	ar->in_msg = false;
	if (archive_write_finish_entry(ar->a) != ARCHIVE_OK)
		return lost(ar, err);
	ar->messages++;
	return ISNAP_OK;
}

static void ar_locate(struct store *s, struct store_location *loc)
{
	struct arch *ar = ar_of(s);

	memset(loc, 0, sizeof *loc);
	/* Relative to the volume: a volume or export renamed or moved still
	 * matches its manifest. */
	snprintf(loc->location, sizeof loc->location, "%s", ar->name);
	loc->stored_size = ar->size;
}

/* Durable at finish only (durable_at_finish). */
static enum isnap_status ar_commit(struct store *s, struct isnap_error *err)
{
	(void)s;
	(void)err;
	return ISNAP_OK;
}

static enum isnap_status ar_close_folder(struct store *s,
					 struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	enum isnap_status rc = ISNAP_OK;

	ar_abort_message(s);
	/* A folder that no volume holds anything of gets its directories
	 * at finish (a volume that ends up without messages is not kept at
	 * all, and a run with nothing new starts none).  The others have
	 * them where their messages are. */
	if (ar->path && !ar->held_any && !ar->dirs_written) {
		if (ar->n_empty == ar->alloc_empty) {
			size_t a = ar->alloc_empty ? 2 * ar->alloc_empty : 8;
			char **v = realloc(ar->empty, a * sizeof *v);
			if (!v)
				rc = store_oom(err);
			else {
				ar->empty = v;
				ar->alloc_empty = a;
			}
		}
		if (!rc) {
			ar->empty[ar->n_empty++] = ar->path;
			ar->path = NULL;
		}
	}
	free(ar->path);
	ar->path = NULL;
	uidset_free(&ar->have);
	return rc;
}

/* A meta file's name must stay inside the archive. */
static bool meta_name_ok(const char *name)
{
	const char *p = name;

	if (!*p || *p == '/')
		return false;
	while (*p) {
		size_t len = strcspn(p, "/");
		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += len;
		if (*p)
			p++;
	}
	return true;
}

static enum isnap_status ar_add_meta_file(struct store *s, const char *name,
					  int fd, struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	enum isnap_status rc;
	struct stat sb;
	char *buf;
	uint64_t off = 0;

	if (!meta_name_ok(name))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "add_meta_file: bad name \"%s\"", name);
	if (ar->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "add_meta_file: a message is open");
	/* A run that saved nothing writes no volume: nothing to describe. */
	if (ar->messages == 0 && !ar->single)
		return ISNAP_OK;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"add_meta_file %s: not a file", name);
	rc = start_volume(ar, err);
	if (!rc)
		rc = empty_dirs(ar, err);
	if (!rc)
		rc = header(ar, name, AE_IFREG, (uint64_t)sb.st_size,
			    time(NULL), err);
	if (rc)
		return rc == ISNAP_EMSG ? ISNAP_ELOCAL : rc;
	buf = malloc(STORE_CHUNK);
	if (!buf) {
		ar->failed = true; /* the entry cannot be completed */
		return store_oom(err);
	}
	while (off < (uint64_t)sb.st_size) {
		size_t want = (uint64_t)sb.st_size - off < STORE_CHUNK
				      ? (size_t)((uint64_t)sb.st_size - off)
				      : STORE_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO; /* shrank while read */
			isnap_fail_errno(err, ISNAP_ELOCAL,
					 "reading meta file %s", name);
			ar->failed = true;
			free(buf);
			return ISNAP_ELOCAL;
		}
		if (archive_write_data(ar->a, buf, (size_t)n) != n) {
			free(buf);
			return lost(ar, err);
		}
		off += (uint64_t)n;
	}
	free(buf);
	if (archive_write_finish_entry(ar->a) != ARCHIVE_OK)
		return lost(ar, err);
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */
/* Finish                                                                  */

static bool is_aborted(const struct arch *ar, uint64_t no)
{
	for (size_t i = 0; i < ar->n_aborted; i++)
		if (ar->aborted[i] == no)
			return true;
	return false;
}

/* Copy the volume at ar->tmp into a second temporary file without the
 * aborted entries, and put it in ar->tmp's place. */
static enum isnap_status rebuild(struct arch *ar, struct isnap_error *err)
{
	char tmp2[PATH_MAX];
	const char *why;
	struct archive *r = archive_kind_reader(ar->kind, &why), *w = NULL;
	struct archive_entry *e;
	char *buf = malloc(STORE_CHUNK);
	int in = -1, out = -1;
	uint64_t no = 0;
	enum isnap_status rc = ISNAP_OK;
	int ar_rc;

	snprintf(tmp2, sizeof tmp2, "%s.2", ar->tmp);
	if (!r) {
		rc = isnap_fail(err, ISNAP_ELOCAL, "%s", why);
		goto out;
	}
	if (!buf) {
		rc = store_oom(err);
		goto out;
	}
	w = archive_kind_writer(ar->kind, &why);
	in = beneath_open_file(ar->base.dest_fd, ar->tmp, O_RDONLY, 0);
	out = create_fresh(ar->base.dest_fd, tmp2);
	if (!w || in < 0 || out < 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "rewriting %s/%s",
				      ar->base.dest, ar->tmp);
		goto out;
	}
	if (archive_read_open_fd(r, in, 10240) != ARCHIVE_OK ||
	    archive_write_open_fd(w, out) != ARCHIVE_OK)
		goto fail;
	while ((ar_rc = archive_read_next_header(r, &e)) == ARCHIVE_OK ||
	       ar_rc == ARCHIVE_WARN) {
		la_ssize_t n;
		if (is_aborted(ar, no++))
			continue; /* the reader skips its data */
		if (archive_write_header(w, e) < ARCHIVE_WARN)
			goto fail;
		while ((n = archive_read_data(r, buf, STORE_CHUNK)) > 0)
			if (archive_write_data(w, buf, (size_t)n) != n)
				goto fail;
		if (n < 0 || archive_write_finish_entry(w) != ARCHIVE_OK)
			goto fail;
	}
	if (ar_rc != ARCHIVE_EOF || archive_write_close(w) != ARCHIVE_OK)
		goto fail;
	if (fsync(out) != 0 ||
	    renameat(ar->base.dest_fd, tmp2, ar->base.dest_fd, ar->tmp) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "rewriting %s/%s",
				      ar->base.dest, ar->tmp);
		goto out;
	}
	goto out;
fail:
	rc = isnap_fail(err, ISNAP_ELOCAL, "rewriting %s/%s: %s",
			ar->base.dest, ar->tmp,
			archive_error_string(r)	  ? archive_error_string(r)
			: w && archive_error_string(w) ? archive_error_string(w)
						  : "libarchive failed");
out:
	if (r)
		archive_read_free(r);
	if (w)
		archive_write_free(w);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc)
		unlinkat(ar->base.dest_fd, tmp2, 0);
	free(buf);
	return rc;
}

/* Put the finished volume in place: never over another volume in a
 * directory of volumes; over the old export for a single file. */
static int place(struct arch *ar)
{
	int dfd = ar->base.dest_fd;

	if (ar->single)
		return renameat(ar->base.dest_fd, ar->tmp, dfd, ar->volume);
	if (renameat2(dfd, ar->tmp, dfd, ar->volume, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* The filesystem cannot refuse to replace: link, then unlink. */
	if (linkat(dfd, ar->tmp, dfd, ar->volume, 0) != 0)
		return -1;
	unlinkat(dfd, ar->tmp, 0);
	return 0;
}

static void discard_volume(struct arch *ar)
{
	if (ar->a) {
		archive_write_free(ar->a); /* closes the stream; we drop it */
		ar->a = NULL;
	}
	if (ar->fd >= 0) {
		close(ar->fd);
		ar->fd = -1;
		unlinkat(ar->base.dest_fd, ar->tmp, 0);
	}
}

static enum isnap_status ar_finish(struct store *s, struct isnap_error *err)
{
	struct arch *ar = ar_of(s);
	enum isnap_status rc;
	int fd;

	ar_abort_message(s);
	if (ar->messages == 0 && !ar->single) {
		discard_volume(ar); /* nothing new: no volume */
		return ISNAP_OK;
	}
	rc = start_volume(ar, err); /* an empty single-file export */
	if (rc) {
		discard_volume(ar);
		return rc;
	}
	rc = empty_dirs(ar, err);
	if (rc) {
		discard_volume(ar);
		return rc;
	}
	if (ar->failed) {
		rc = lost(ar, err);
		discard_volume(ar);
		return rc;
	}
	if (archive_write_close(ar->a) != ARCHIVE_OK) {
		rc = lost(ar, err);
		discard_volume(ar);
		return rc;
	}
	archive_write_free(ar->a);
	ar->a = NULL;
	fd = ar->fd;
	ar->fd = -1;
	if (fsync(fd) != 0 || close(fd) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%swriting %s/%s",
				      store_space_hint(errno), s->dest,
				      ar->tmp);
		unlinkat(s->dest_fd, ar->tmp, 0);
		return rc;
	}
	if (ar->n_aborted) {
		locale_t saved = archive_kind_utf8_begin();
		rc = rebuild(ar, err);
		archive_kind_utf8_end(saved);
		if (rc) {
			unlinkat(s->dest_fd, ar->tmp, 0);
			return rc;
		}
	}
	/* What the volume holds, before it counts as there. */
	if (!ar->single) {
		struct stat sb;
		if (fstatat(s->dest_fd, ar->tmp, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s",
					      s->dest, ar->tmp);
		else
			rc = volume_record_write(s->dest_fd, s->dest,
						 ar->volume,
						 (uint64_t)sb.st_size,
						 &ar->record, err);
		if (rc) {
			unlinkat(s->dest_fd, ar->tmp, 0);
			return rc;
		}
	}
	if (place(ar) != 0 || store_fsync_dir(s->dest_fd, "") != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "renaming %s/%s to %s",
				      s->dest, ar->tmp, ar->volume);
		unlinkat(s->dest_fd, ar->tmp, 0);
		if (!ar->single)
			volume_record_remove(s->dest_fd, ar->volume);
		return rc;
	}
	ar->messages = 0;
	ar->n_aborted = 0;
	return ISNAP_OK;
}

static void ar_destroy(struct store *s)
{
	struct arch *ar = ar_of(s);

	discard_volume(ar);
	if (ar->entry)
		archive_entry_free(ar->entry);
	free(ar->path);
	uidset_free(&ar->have);
	volume_records_free(&ar->records);
	volume_record_free(&ar->record);
	for (size_t i = 0; i < ar->n_empty; i++)
		free(ar->empty[i]);
	free(ar->empty);
	free(ar->aborted);
	free(ar->volume);
	free(ar->tmp);
	free(ar);
}

/* ---------------------------------------------------------------------- */
/* Opening                                                                 */

#define ARCHIVE_OPS(name)                                                     \
	{                                                                     \
		.format = name, .durable_at_finish = true,                    \
		.caps = STORE_CAP_REPORTS_HELD,                               \
		.open_folder = ar_open_folder,                                \
		.retire_generation = ar_retire_generation,                    \
		.begin_message = ar_begin_message, .write = ar_write,         \
		.end_message = ar_end_message,                                \
		.abort_message = ar_abort_message, .locate = ar_locate,       \
		.commit = ar_commit, .close_folder = ar_close_folder,         \
		.add_meta_file = ar_add_meta_file, .finish = ar_finish,       \
		.destroy = ar_destroy,                                        \
	}

static const struct store_ops ops_tar = ARCHIVE_OPS("tar");
static const struct store_ops ops_tar_gz = ARCHIVE_OPS("tar.gz");
static const struct store_ops ops_tar_zst = ARCHIVE_OPS("tar.zst");
static const struct store_ops ops_tar_xz = ARCHIVE_OPS("tar.xz");
static const struct store_ops ops_zip = ARCHIVE_OPS("zip");

static const struct store_ops *ops_for(const char *format)
{
	static const struct store_ops *const all[] = {
		&ops_tar, &ops_tar_gz, &ops_tar_zst, &ops_tar_xz, &ops_zip,
	};

	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		if (!strcmp(all[i]->format, format))
			return all[i];
	return NULL;
}

/* "<UTC time><ext>", one second later while that name is taken. */
static char *volume_name(int dfd, const char *ext)
{
	time_t t = time(NULL);

	for (int i = 0; i < 3600; i++, t++) {
		char stamp[32], *name;
		struct tm tm;
		struct stat sb;
		gmtime_r(&t, &tm);
		strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
		name = malloc(strlen(stamp) + strlen(ext) + 1);
		if (!name)
			return NULL;
		sprintf(name, "%s%s", stamp, ext);
		if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 &&
		    errno == ENOENT)
			return name;
		free(name);
	}
	errno = EEXIST;
	return NULL;
}

/* Open the directory that will hold the volume: DEST itself, or its
 * parent for a single-file export. */
static enum isnap_status open_place(struct arch *ar, const char *dest,
				    struct isnap_error *err)
{
	if (ar->single) {
		char *copy = strdup(dest), *copy2 = strdup(dest);
		if (!copy || !copy2) {
			free(copy);
			free(copy2);
			return store_oom(err);
		}
		ar->base.dest_fd = open(dirname(copy),
					O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ar->volume = strdup(basename(copy2));
		free(copy);
		free(copy2);
		if (ar->base.dest_fd < 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"the directory of %s", dest);
		if (!ar->volume)
			return store_oom(err);
		return ISNAP_OK;
	}
	ar->base.dest_fd = beneath_open_top(dest, true);
	if (ar->base.dest_fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s%s",
					store_space_hint(errno), dest);
	ar->volume = volume_name(ar->base.dest_fd, ar->kind->ext);
	if (!ar->volume)
		return errno == ENOMEM
			       ? store_oom(err)
			       : isnap_fail(err, ISNAP_ELOCAL,
					    "%s: no free volume name", dest);
	return ISNAP_OK;
}

enum isnap_status store_archive_new(const char *format, const char *dest,
				    struct store **out,
				    struct isnap_error *err)
{
	const struct archive_kind *kind = archive_kind_by_format(format);
	const char *single = store_single_file_format(dest);
	struct arch *ar;
	enum isnap_status rc;
	const char *why;
	struct archive *probe;

	*out = NULL;
	if (!kind || !ops_for(format))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "unknown archive format \"%s\"", format);
	if (single && strcmp(single, format) != 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s names a %s file, not %s", dest, single,
				  format);
	/* Fail now, not after a whole fetch, if libarchive lacks the
	 * compression. */
	probe = archive_kind_writer(kind, &why);
	if (!probe)
		return isnap_fail(err, ISNAP_EUSAGE, "%s: %s", format, why);
	archive_write_free(probe);
	ar = calloc(1, sizeof *ar);
	if (!ar)
		return store_oom(err);
	ar->base.ops = ops_for(format);
	ar->base.dest = strdup(dest);
	ar->base.dest_fd = -1;
	ar->kind = kind;
	ar->single = single != NULL;
	ar->pid = (long)getpid();
	ar->fd = -1;
	ar->have = (struct uidset)UIDSET_INIT;
	ar->entry = archive_entry_new();
	if (!ar->base.dest || !ar->entry) {
		rc = store_oom(err);
		goto fail;
	}
	rc = open_place(ar, dest, err);
	if (rc)
		goto fail;
	ar->tmp = malloc(strlen(ar->volume) + 32);
	if (!ar->tmp) {
		rc = store_oom(err);
		goto fail;
	}
	sprintf(ar->tmp, ".%s" TMP_INFIX "%ld", ar->volume, ar->pid);
	*out = &ar->base;
	return ISNAP_OK;
fail:
	store_free(&ar->base);
	return rc;
}
