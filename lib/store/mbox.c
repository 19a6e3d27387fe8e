/*
 * mbox.c — the mbox and mbox.gz stores (docs/formats.md).  One file per
 * folder, mboxrd (mboxrd.h), LF line ends, RFC 4155 From lines:
 *
 *   DEST/<folder path>.mbox             (--format mbox)
 *   DEST/<folder path>.mbox.gz          (--format mbox.gz, mbox_out.h)
 *   DEST/.imapsnap/mbox/<that file>.idx what is committed (mbox_index.h)
 *   old generations: DEST/<dir>/.<name>.uidvalidity-<N>.mbox[.gz], and
 *   their index beside the others under .imapsnap/mbox/
 *
 * Each message is "From <sender> <date>\n", the message in mboxrd form
 * (ending in LF), and one blank line.  Messages are appended; commit()
 * makes the file durable (fdatasync; for gzip, after ending the member)
 * and only then appends one index line per message and fsyncs the index.
 * When a folder is opened, the file is cut back to where the index says
 * the last commit ended: whatever a killed run left after it was never
 * committed, and is fetched again.  The UIDs the index lists are the
 * folder's `present` set, so a re-run never writes a message twice.
 *
 * Healing (docs/formats.md): the index is trusted only while the file is
 * as the last commit left it (its size, and a ctime not newer than the
 * index); otherwise the file is read again (mbox_check.h) against each
 * message's identity (mbox_ident.h, kept in <file>.ids), `present` is
 * what is still there, a torn tail goes to .imapsnap/damaged/, and the
 * index is rewritten at the next commit, the moves reported to the
 * manifest (store_ops.moves).
 *
 * Right after the From line come the Status: and X-Status: lines that
 * mutt writes (status_lines), so that every mbox reader sees the
 * message's flags; they are part of the message as stored, and locate()
 * names them in `added`, so that restore leaves them out again.
 *
 * The From line needs the sender and INTERNALDATE before the message's
 * first byte is written.  The sender comes from the Return-Path header:
 * the store holds back the message's start, up to the end of its header
 * section or MBOX_HEADER_MAX bytes, whichever comes first, looks for the
 * header there, and falls back to MAILER-DAEMON.  INTERNALDATE normally
 * comes with the metadata given to begin_message; when it does not, the
 * store holds back up to MBOX_HEADER_MAX bytes hoping for end_message's,
 * and past that writes the epoch (1970) as the From line's date.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "beneath.h"
#include "store/common.h"
#include "store/mbox_check.h"
#include "store/mbox_ident.h"
#include "store/mbox_index.h"
#include "store/mbox_out.h"
#include "store/mboxrd.h"

/* Most of a message the store holds back to find Return-Path (and wait
 * for the date); the header section of real mail is far smaller. */
#define MBOX_HEADER_MAX (64 * 1024)
#define MBOX_SENDER_MAX 254 /* RFC 5321's path limit, less the brackets */
#define INDEX_DIR ".imapsnap/mbox"
#define DAMAGED_DIR ".imapsnap/damaged"
#define ASIDE_INFIX ".uidvalidity-"

struct mbox {
	struct store base;
	bool gzip;
	const char *ext; /* ".mbox" or ".mbox.gz" */
	char *hdr;       /* MBOX_HEADER_MAX bytes */
	EVP_MD_CTX *sha;
	struct mbox_ident ident;   /* of the message being written */

	/* The open folder; file is NULL when there is none. */
	char *file;      /* "<folder path><ext>", relative to dest */
	char *idx;       /* INDEX_DIR "/<file>.idx" */
	char *ids;       /* INDEX_DIR "/<file>.ids": identities */
	int idx_fd, ids_fd;
	uint64_t idx_len, ids_len;
	struct mbox_out *out;
	uint32_t uidvalidity;
	struct uidset have;        /* committed, or ended since */
	uint64_t data_end;         /* uncompressed bytes, ended messages in */
	uint64_t committed_end;    /* file size at the last commit */
	bool broken;               /* the file's tail is unknown: stop */
	/* The file was changed outside imapsnap and read again: the index
	 * it needs (in file order), written whole at the next commit, and
	 * the messages found at another place, for the manifest. */
	bool rewrite;
	unsigned separator;        /* LFs written before the first message */
	struct mbox_known *rw;
	size_t n_rw;
	struct mbox_move *moves;
	size_t n_moves;

	/* The message being written. */
	bool in_msg;
	uint32_t uid;
	uint64_t size, written;
	int64_t date;
	unsigned flags;            /* for the Status: lines */
	char added[32];            /* the lines written */
	uint64_t msg_start;        /* uncompressed offset of its From line */
	uint64_t from_len;
	size_t hdr_len;
	bool from_written;
	struct mboxrd q;
	uint64_t stored;

	/* The message last ended, for locate. */
	uint64_t last_offset, last_stored;
	char last_added[32];
	unsigned char last_sha[32];

	/* Ended since the last commit, and their identities. */
	struct mbox_index_entry *pending;
	unsigned char (*pending_ident)[32];
	size_t n_pending, alloc_pending;
};

/* A message of the index that a re-read found at another place. */
struct mbox_move {
	uint32_t uid;
	uint64_t from, to, stored_size;
	unsigned char stored_sha[32];
};

static struct mbox *mb_of(struct store *s)
{
	return (struct mbox *)s;
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */

static char *concat(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb);
		memcpy(s + la + lb, c, lc + 1);
	}
	return s;
}

/* "<dir>/.<name>.uidvalidity-<old><ext>" for the folder at `path`: the
 * leading dot keeps it apart from every folder's file, since fsname
 * escapes a leading dot in folder names. */
static char *aside_name(const char *path, uint32_t old, const char *ext)
{
	const char *slash = strrchr(path, '/');
	size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
	char tail[64];
	char *s;

	snprintf(tail, sizeof tail, ASIDE_INFIX "%" PRIu32 "%s", old, ext);
	s = malloc(strlen(path) + strlen(tail) + 2);
	if (s)
		sprintf(s, "%.*s.%s%s", (int)dir_len, path, path + dir_len,
			tail);
	return s;
}

static char *index_name(const char *file)
{
	return concat(INDEX_DIR "/", file, ".idx");
}

static char *ids_name(const char *file)
{
	return concat(INDEX_DIR "/", file, ".ids");
}

/* Every path below is relative to the destination and may have several
 * components ("Lists/a.mbox", ".imapsnap/mbox/Lists/a.mbox.idx"): each is
 * reached through beneath.h, so that a symbolic link at "Lists" or at
 * ".imapsnap" is never followed. */

/* mkdir -p of the directory part of `rel`. */
static int mkdirs_for(int dirfd, const char *rel)
{
	const char *base;
	int fd = beneath_open_parent(dirfd, rel, true, &base);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* fsync the directory holding `rel`. */
static int fsync_dir_of(int dirfd, const char *rel)
{
	const char *base;
	int fd = beneath_open_parent(dirfd, rel, false, &base), rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd) != 0 && errno != EINVAL ? -1 : 0;
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* lstat(2) of `rel`: 0, or -1 with errno (ENOENT when it is absent). */
static int stat_at(int dirfd, const char *rel, struct stat *sb)
{
	const char *base;
	int fd = beneath_open_parent(dirfd, rel, false, &base), rc, saved;

	if (fd < 0)
		return -1;
	rc = fstatat(fd, base, sb, AT_SYMLINK_NOFOLLOW);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Whether anything (a symbolic link included) is at `rel`. */
static int exists_at(int dirfd, const char *rel, bool *yes)
{
	struct stat sb;

	*yes = stat_at(dirfd, rel, &sb) == 0;
	return *yes || errno == ENOENT ? 0 : -1;
}

/* rename(2) of `from` to `to`, two names in one directory (an aside name
 * beside the file it keeps). */
static int rename_beside(int dirfd, const char *from, const char *to)
{
	const char *base, *to_base = strrchr(to, '/');
	int fd = beneath_open_parent(dirfd, from, false, &base), rc, saved;

	if (fd < 0)
		return -1;
	to_base = to_base ? to_base + 1 : to;
	if ((size_t)(base - from) != (size_t)(to_base - to) ||
	    strncmp(from, to, (size_t)(base - from)) != 0) {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	rc = renameat(fd, base, fd, to_base);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* ---------------------------------------------------------------------- */
/* The From line                                                           */

/* asctime(3) of `t` in UTC, without the C library's locale or its limits:
 * "Thu Jan  1 00:00:00 1970".  Dates that gmtime cannot place, or whose
 * year has not four digits, become the epoch. */
static void from_date(int64_t t, char buf[32])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed",
					 "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == STORE_NO_DATE || (int64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(buf, 32, "%s %s %2d %02d:%02d:%02d %04d", days[tm.tm_wday],
		 months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, tm.tm_year + 1900);
}

/* Where the header section in hdr[0..len) ends (just past its blank
 * line), or 0 if it does not end there. */
static size_t header_end(const char *hdr, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (hdr[i] != '\n')
			continue;
		if (i + 1 < len && hdr[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && hdr[i + 1] == '\r' && hdr[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* The address in the first Return-Path header of hdr[0..len), into
 * `sender`; false when there is none or it is not fit for a From line
 * (empty, as in "<>", too long, or with spaces or control bytes). */
static bool return_path(const char *hdr, size_t len, char *sender)
{
	static const char name[] = "Return-Path:";
	const size_t nl = sizeof name - 1;
	size_t end = header_end(hdr, len);
	size_t i = 0;

	if (end)
		len = end;
	while (i < len) {
		const char *lf = memchr(hdr + i, '\n', len - i);
		size_t line_end = lf ? (size_t)(lf - hdr) : len;
		if (line_end - i >= nl && !strncasecmp(hdr + i, name, nl)) {
			const char *p = hdr + i + nl, *e = hdr + line_end;
			const char *lt, *gt;
			size_t n;
			while (p < e && (*p == ' ' || *p == '\t'))
				p++;
			while (e > p && (e[-1] == '\r' || e[-1] == ' ' ||
					 e[-1] == '\t'))
				e--;
			lt = memchr(p, '<', (size_t)(e - p));
			if (lt) {
				gt = memchr(lt, '>', (size_t)(e - lt));
				if (!gt)
					return false;
				p = lt + 1;
				e = gt;
			}
			n = (size_t)(e - p);
			if (n == 0 || n > MBOX_SENDER_MAX)
				return false;
			for (size_t k = 0; k < n; k++)
				if (p[k] <= 0x20 || p[k] >= 0x7f || p[k] == '<')
					return false;
			memcpy(sender, p, n);
			sender[n] = '\0';
			return true;
		}
		i = line_end + 1;
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                 */

static enum isnap_status write_failed(struct mbox *mb, struct isnap_error *err)
{
	return isnap_fail_errno(err, ISNAP_ELOCAL, "%swriting %s/%s",
				store_space_hint(errno), mb->base.dest,
				mb->file);
}

/* The mboxrd encoder's output: the message as stored. */
static int body_sink(void *ctx, const char *data, size_t len)
{
	struct mbox *mb = ctx;

	if (EVP_DigestUpdate(mb->sha, data, len) != 1 ||
	    mbox_ident_feed(&mb->ident, data, len) != 0) {
		errno = EIO;
		return -1;
	}
	mb->stored += len;
	return mbox_out_write(mb->out, data, len);
}

static void status_lines(unsigned flags, char buf[32])
{
	size_t n = 0;

	/* mutt: R read, O old (seen by a reader before; an unread message
	 * in a backup is not new mail); X-Status: A answered, F flagged,
	 * and Dovecot's T draft, D deleted. */
	n += (size_t)sprintf(buf, "Status: %s\n",
			     flags & STORE_FLAG_SEEN ? "RO" : "O");
	if (flags & (STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED |
		     STORE_FLAG_DRAFT | STORE_FLAG_DELETED)) {
		n += (size_t)sprintf(buf + n, "X-Status: ");
		if (flags & STORE_FLAG_ANSWERED)
			buf[n++] = 'A';
		if (flags & STORE_FLAG_FLAGGED)
			buf[n++] = 'F';
		if (flags & STORE_FLAG_DRAFT)
			buf[n++] = 'T';
		if (flags & STORE_FLAG_DELETED)
			buf[n++] = 'D';
		buf[n++] = '\n';
	}
	buf[n] = '\0';
}

/* Write the From line and the Status: lines, then what was held back. */
static enum isnap_status start_body(struct mbox *mb, int64_t date,
				    struct isnap_error *err)
{
	char sender[MBOX_SENDER_MAX + 1], when[32], line[MBOX_SENDER_MAX + 64];
	int n;

	if (!return_path(mb->hdr, mb->hdr_len, sender))
		strcpy(sender, "MAILER-DAEMON");
	from_date(date, when);
	n = snprintf(line, sizeof line, "From %s %s\n", sender, when);
	mb->from_written = true;
	mb->from_len = (uint64_t)n;
	status_lines(mb->flags, mb->added);
	if (mbox_out_write(mb->out, line, (size_t)n) ||
	    body_sink(mb, mb->added, strlen(mb->added)) ||
	    mboxrd_feed(&mb->q, mb->hdr, mb->hdr_len))
		return write_failed(mb, err);
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */
/* Folders                                                                 */

/* The entries of an index, as read. */
struct uid_list {
	struct mbox_known *v;
	size_t n, alloc;
};

static int collect_uid(void *ctx, const struct mbox_index_entry *e)
{
	struct uid_list *l = ctx;

	if (l->n == l->alloc) {
		size_t alloc = l->alloc ? 2 * l->alloc : 1024;
		struct mbox_known *v = realloc(l->v, alloc * sizeof *v);
		if (!v) {
			errno = ENOMEM;
			return -1;
		}
		l->v = v;
		l->alloc = alloc;
	}
	memset(&l->v[l->n], 0, sizeof l->v[l->n]);
	l->v[l->n++].e = *e;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static void mb_abort_message(struct store *s)
{
	struct mbox *mb = mb_of(s);

	if (!mb->in_msg)
		return;
	mb->in_msg = false;
	mboxrd_init(&mb->q, body_sink, mb);
	if (mbox_out_rewind(mb->out) != 0)
		mb->broken = true; /* part of it may still be in the file */
	mb->data_end = mb->msg_start;
}

static void release_folder(struct mbox *mb)
{
	bool cut = mb->n_pending > 0 || mb->in_msg || mb->broken;

	mb_abort_message(&mb->base);
	mbox_out_free(mb->out);
	mb->out = NULL;
	/* Not committed: take it out again, as the next open would. */
	if (cut && mb->file) {
		int fd = beneath_open_file(mb->base.dest_fd, mb->file,
					   O_WRONLY, 0);
		if (fd >= 0) {
			if (ftruncate(fd, (off_t)mb->committed_end) != 0) {
				/* the next open cuts it */
			}
			close(fd);
		}
	}
	if (mb->idx_fd >= 0)
		close(mb->idx_fd);
	if (mb->ids_fd >= 0)
		close(mb->ids_fd);
	mb->idx_fd = mb->ids_fd = -1;
	free(mb->file);
	free(mb->idx);
	free(mb->ids);
	mb->file = mb->idx = mb->ids = NULL;
	mb->n_pending = 0;
	mb->broken = false;
	mb->rewrite = false;
	free(mb->rw);
	mb->rw = NULL;
	mb->n_rw = 0;
	free(mb->moves);
	mb->moves = NULL;
	mb->n_moves = 0;
	uidset_free(&mb->have);
}

/* Read the index of `file` (which need not exist).  *fd is -1 when there
 * is none. */
static enum isnap_status read_index(struct mbox *mb, const char *idx,
				    int *fd, struct mbox_index_info *info,
				    struct uid_list *uids,
				    struct isnap_error *err)
{
	*fd = beneath_open_file(mb->base.dest_fd, idx, O_RDWR, 0);
	memset(info, 0, sizeof *info);
	if (*fd < 0)
		return errno == ENOENT ? ISNAP_OK
				       : store_fail_path(err, mb->base.dest,
							 mb->base.dest_fd, idx);
	if (mbox_index_read(*fd, info, uids ? collect_uid : NULL, uids)) {
		enum isnap_status rc =
			errno == ENOMEM
				? store_oom(err)
				: isnap_fail_errno(err, ISNAP_ELOCAL,
						   "reading %s/%s",
						   mb->base.dest, idx);
		close(*fd);
		*fd = -1;
		return rc;
	}
	return ISNAP_OK;
}

/* Move generation `old` of the folder at `path` aside (see the top of the
 * file); nothing to do when the index holds no message of it. */
static enum isnap_status retire(struct mbox *mb, const char *path,
				uint32_t old, struct isnap_error *err)
{
	const char *dest = mb->base.dest;
	int dfd = mb->base.dest_fd, fd = -1;
	char *file = concat(path, mb->ext, ""), *aside = aside_name(path, old,
								  mb->ext);
	char *idx = file ? index_name(file) : NULL;
	char *idx_aside = aside ? index_name(aside) : NULL;
	struct mbox_index_info info;
	bool file_there, aside_there, idx_aside_there;
	enum isnap_status rc;

	if (!file || !aside || !idx || !idx_aside) {
		rc = store_oom(err);
		goto out;
	}
	rc = read_index(mb, idx, &fd, &info, NULL, err);
	if (rc || fd < 0 || info.n == 0 || info.uidvalidity != old)
		goto out; /* nothing of generation `old` is kept here */
	if (exists_at(dfd, file, &file_there) ||
	    exists_at(dfd, aside, &aside_there) ||
	    exists_at(dfd, idx_aside, &idx_aside_there)) {
		rc = store_fail_path(err, dest, dfd, file);
		goto out;
	}
	if (idx_aside_there || (file_there && aside_there)) {
		rc = isnap_fail(err, ISNAP_EFOLDER,
				"%s: both %s and %s hold messages of "
				"UIDVALIDITY %" PRIu32 "; refusing to merge "
				"them, please move one aside by hand",
				dest, file, aside, old);
		goto out;
	}
	if (file_there) {
		/* Cut the uncommitted tail a killed run may have left, so
		 * that the copy kept holds only complete messages. */
		int mfd = beneath_open_file(dfd, file, O_WRONLY, 0);
		struct stat sb;
		if (mfd < 0 || fstat(mfd, &sb) != 0 ||
		    ((uint64_t)sb.st_size > info.file_end &&
		     (ftruncate(mfd, (off_t)info.file_end) != 0 ||
		      fsync(mfd) != 0))) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s", dest,
					      file);
			if (mfd >= 0)
				close(mfd);
			goto out;
		}
		close(mfd);
		if (rename_beside(dfd, file, aside) != 0 ||
		    fsync_dir_of(dfd, file) != 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL,
					      "moving %s/%s to %s", dest, file,
					      aside);
			goto out;
		}
	}
	/* The file first, then its index: an index left behind still names
	 * generation `old`, so a later call finishes the move.  The
	 * identities last: those left behind name generation `old` and are
	 * not taken for the new one's. */
	if (rename_beside(dfd, idx, idx_aside) != 0 ||
	    fsync_dir_of(dfd, idx) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "moving %s/%s to %s",
				      dest, idx, idx_aside);
	} else {
		char *ids = ids_name(file), *ids_aside = ids_name(aside);
		bool there = false;
		if (!ids || !ids_aside)
			rc = store_oom(err);
		else if (exists_at(dfd, ids, &there) == 0 && there &&
			 rename_beside(dfd, ids, ids_aside) != 0)
			rc = isnap_fail_errno(err, ISNAP_ELOCAL,
					      "moving %s/%s to %s", dest, ids,
					      ids_aside);
		free(ids);
		free(ids_aside);
	}
out:
	if (fd >= 0)
		close(fd);
	free(file);
	free(aside);
	free(idx);
	free(idx_aside);
	return rc;
}

/* Create the index (and make its name durable); refuses when the file
 * exists with content but its index does not: cutting it back to "nothing
 * committed" would destroy mail. */
static enum isnap_status create_index(struct mbox *mb, int *fd,
				      struct isnap_error *err)
{
	const char *dest = mb->base.dest;
	struct stat sb;
	bool there = stat_at(mb->base.dest_fd, mb->file, &sb) == 0;

	if (!there && errno != ENOENT)
		return store_fail_path(err, dest, mb->base.dest_fd, mb->file);
	if (there && !S_ISREG(sb.st_mode)) {
		errno = S_ISLNK(sb.st_mode)   ? ELOOP
			: S_ISDIR(sb.st_mode) ? EISDIR
					      : ENXIO;
		return store_fail_path(err, dest, mb->base.dest_fd, mb->file);
	}
	if (there && sb.st_size > 0)
		return isnap_fail(err, ISNAP_EFOLDER,
				  "%s/%s exists, but imapsnap's index of it "
				  "(%s/%s) does not: it was not written by "
				  "imapsnap, or the index was removed; move "
				  "the file away to start afresh",
				  dest, mb->file, dest, mb->idx);
	if (mkdirs_for(mb->base.dest_fd, mb->idx) != 0)
		return store_fail_path(err, dest, mb->base.dest_fd, mb->idx);
	*fd = beneath_open_file(mb->base.dest_fd, mb->idx,
				O_RDWR | O_CREAT | O_EXCL, 0600);
	if (*fd < 0 || fsync_dir_of(mb->base.dest_fd, mb->idx) != 0)
		return isnap_fail_errno(err, store_path_status(errno),
					"%screating %s/%s",
					store_space_hint(errno), dest, mb->idx);
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */
/* Healing: a file changed outside imapsnap (docs/formats.md)              */

static int cmp_known_uid(const void *a, const void *b)
{
	const struct mbox_known *x = a, *y = b;

	return (x->e.uid > y->e.uid) - (x->e.uid < y->e.uid);
}

struct ident_load {
	struct mbox_known *by_uid; /* a copy of the entries, sorted by UID */
	size_t n;
	uint32_t uidvalidity;
};

static int one_ident(void *ctx, uint32_t uidvalidity, uint32_t uid,
		     const unsigned char ident[32])
{
	struct ident_load *l = ctx;
	struct mbox_known key = { .e.uid = uid }, *k;

	if (uidvalidity != l->uidvalidity)
		return 0;
	k = bsearch(&key, l->by_uid, l->n, sizeof key, cmp_known_uid);
	if (k) {
		k->has_ident = true;
		memcpy(k->ident, ident, 32);
	}
	return 0;
}

/* The identities of the entries in `list` from the .ids file, where it
 * has them. */
static enum isnap_status load_idents(struct mbox *mb, struct uid_list *list,
				     struct isnap_error *err)
{
	struct ident_load l = { .n = list->n, .uidvalidity = mb->uidvalidity };
	uint64_t valid;
	int fd = beneath_open_file(mb->base.dest_fd, mb->ids, O_RDONLY, 0);

	if (fd < 0)
		return errno == ENOENT ? ISNAP_OK
				       : store_fail_path(err, mb->base.dest,
							 mb->base.dest_fd,
							 mb->ids);
	l.by_uid = malloc((list->n ? list->n : 1) * sizeof *l.by_uid);
	if (!l.by_uid) {
		close(fd);
		return store_oom(err);
	}
	memcpy(l.by_uid, list->v, list->n * sizeof *l.by_uid);
	qsort(l.by_uid, l.n, sizeof *l.by_uid, cmp_known_uid);
	if (mbox_ids_read(fd, one_ident, &l, &valid) != 0) {
		free(l.by_uid);
		close(fd);
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/%s",
					mb->base.dest, mb->ids);
	}
	close(fd);
	for (size_t i = 0; i < list->n; i++) {
		struct mbox_known *k = bsearch(&list->v[i], l.by_uid, l.n,
					       sizeof *k, cmp_known_uid);
		if (k && k->has_ident) {
			list->v[i].has_ident = true;
			memcpy(list->v[i].ident, k->ident, 32);
		}
	}
	free(l.by_uid);
	return ISNAP_OK;
}

/* Copy bytes [from, to) of the file at `fd` to a new file under
 * DAMAGED_DIR, named after the file and the offset: what is cut from a
 * file is kept, never deleted. */
static enum isnap_status keep_aside(struct mbox *mb, int fd, uint64_t from,
				    uint64_t to, struct isnap_error *err)
{
	const char *dest = mb->base.dest;
	char name[4400], *buf = malloc(STORE_CHUNK);
	int out = -1;
	enum isnap_status rc = ISNAP_OK;

	if (!buf)
		return store_oom(err);
	for (int i = 0; i < 1000 && out < 0; i++) {
		snprintf(name, sizeof name, DAMAGED_DIR "/%s@%" PRIu64 "%s%.0d",
			 mb->file, from, i ? "." : "", i);
		if (i == 0 && mkdirs_for(mb->base.dest_fd, name) != 0)
			break;
		out = beneath_open_file(mb->base.dest_fd, name,
					O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (out < 0 && errno != EEXIST)
			break;
	}
	if (out < 0) {
		free(buf);
		return store_fail_path(err, dest, mb->base.dest_fd, name);
	}
	for (uint64_t at = from; at < to && !rc;) {
		size_t want = to - at < STORE_CHUNK ? (size_t)(to - at)
						    : STORE_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				rc = isnap_fail_errno(err, ISNAP_ELOCAL,
						      "reading %s/%s", dest,
						      mb->file);
			break;
		}
		if (write(out, buf, (size_t)n) != n)
			rc = isnap_fail_errno(err, ISNAP_ELOCAL,
					      "%swriting %s/%s",
					      store_space_hint(errno), dest,
					      name);
		at += (uint64_t)n;
	}
	if (!rc && (fsync(out) != 0 || fsync_dir_of(mb->base.dest_fd, name)))
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s", dest, name);
	close(out);
	free(buf);
	return rc;
}

/* The file does not look as the last commit left it: read it all and
 * find the index's messages in it (mbox_check.h).  `list` becomes the
 * entries found; the index is rewritten at the next commit. */
static enum isnap_status reread(struct mbox *mb, int fd,
				const struct mbox_index_info *info,
				struct uid_list *list, bool *in_place,
				struct isnap_error *err)
{
	const char *dest = mb->base.dest;
	struct mbox_check c;
	enum isnap_status rc;

	rc = load_idents(mb, list, err);
	if (rc)
		return rc;
	if (mbox_check_file(fd, mb->gzip, list->v, list->n, &c) != 0)
		return errno == ENOMEM ? store_oom(err)
				       : isnap_fail_errno(err, ISNAP_ELOCAL,
							  "reading %s/%s",
							  dest, mb->file);
	*in_place = c.in_place && c.file_size >= info->file_end;
	if (*in_place) {
		/* Everything where the index says: what follows the last
		 * commit is what an interrupted run left. */
		mbox_check_free(&c);
		return ISNAP_OK;
	}
	if (c.keep_file < c.file_size) {
		rc = keep_aside(mb, fd, c.keep_file, c.file_size, err);
		if (!rc && (ftruncate(fd, (off_t)c.keep_file) != 0 ||
			    fdatasync(fd) != 0))
			rc = isnap_fail_errno(err, ISNAP_ELOCAL,
					      "cutting %s/%s", dest, mb->file);
	}
	mb->rw = calloc(c.nkept ? c.nkept : 1, sizeof *mb->rw);
	mb->moves = calloc(c.nkept ? c.nkept : 1, sizeof *mb->moves);
	if (!rc && (!mb->rw || !mb->moves))
		rc = store_oom(err);
	for (size_t i = 0; !rc && i < c.nkept; i++) {
		const struct mbox_kept *k = &c.kept[i];
		const struct mbox_known *was = &list->v[k->known];
		struct mbox_known *e = &mb->rw[mb->n_rw++];
		e->e = was->e;
		e->e.offset = k->offset;
		e->e.length = k->length;
		e->e.file_end = c.keep_file;
		e->has_ident = true;
		memcpy(e->ident, k->ident, 32);
		if (k->offset != was->e.offset ||
		    k->length != was->e.length) {
			struct mbox_move *mv = &mb->moves[mb->n_moves++];
			mv->uid = was->e.uid;
			mv->from = was->e.offset;
			mv->to = k->offset;
			mv->stored_size = k->stored_size;
			memcpy(mv->stored_sha, k->stored_sha, 32);
		}
	}
	if (!rc) {
		/* What is held now, for open_folder. */
		memcpy(list->v, mb->rw, mb->n_rw * sizeof *mb->rw);
		list->n = mb->n_rw;
		mb->rewrite = true;
		mb->committed_end = c.keep_file;
		mb->data_end = c.data_end;
		mb->separator = c.separator;
	}
	mbox_check_free(&c);
	return rc;
}

static bool newer(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Open the mbox file, cut back to the last commit, and make sure that
 * what the index lists is there (`list` keeps only what is). */
static enum isnap_status open_file(struct mbox *mb,
				   const struct mbox_index_info *info,
				   struct uid_list *list,
				   struct isnap_error *err)
{
	const char *dest = mb->base.dest;
	struct stat sb, isb;
	bool checked = false, in_place = true;
	enum isnap_status rc;
	int fd;

	if (!mb->gzip && info->file_end < info->data_end)
		return isnap_fail(err, ISNAP_EFOLDER,
				  "%s/%s: the index does not fit a plain mbox "
				  "file (was it written for mbox.gz?)",
				  dest, mb->idx);
	if (mkdirs_for(mb->base.dest_fd, mb->file) != 0)
		return store_fail_path(err, dest, mb->base.dest_fd, mb->file);
	fd = beneath_open_file(mb->base.dest_fd, mb->file,
			       O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd >= 0) {
		/* A new file must survive a crash with its name. */
		if (fsync_dir_of(mb->base.dest_fd, mb->file) != 0) {
			close(fd);
			return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s",
						dest, mb->file);
		}
	} else if (errno == EEXIST) {
		fd = beneath_open_file(mb->base.dest_fd, mb->file, O_RDWR, 0);
	}
	if (fd < 0)
		return store_fail_path(err, dest, mb->base.dest_fd, mb->file);
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return isnap_fail(err, ISNAP_EFOLDER, "%s/%s is not a file",
				  dest, mb->file);
	}
	mb->committed_end = info->file_end;
	mb->data_end = info->data_end;
	mb->separator = 0;
	/* The file as the last commit left it: its size, and no change of
	 * it (ctime) after the index was written.  Otherwise read it. */
	if (info->n && ((uint64_t)sb.st_size != info->file_end ||
			fstat(mb->idx_fd, &isb) != 0 ||
			newer(&sb.st_ctim, &isb.st_mtim))) {
		rc = reread(mb, fd, info, list, &in_place, err);
		if (rc) {
			close(fd);
			return rc;
		}
		checked = true;
	}
	if (in_place && (uint64_t)sb.st_size > info->file_end &&
	    ftruncate(fd, (off_t)info->file_end) != 0) {
		close(fd);
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"cutting %s/%s back to its last commit",
					dest, mb->file);
	}
	/* Found as it was: the next run need not read it again. */
	if (checked && in_place && futimens(mb->idx_fd, NULL) != 0) {
		close(fd);
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s", dest,
					mb->idx);
	}
	if (mbox_out_new(fd, mb->gzip, &mb->out) != 0)
		return errno == ENOMEM ? store_oom(err)
				       : isnap_fail_errno(err, ISNAP_ELOCAL,
							  "%s/%s", dest,
							  mb->file);
	/* A blank line after the last message, before anything is added. */
	if (mb->separator) {
		if (mbox_out_write(mb->out, "\n\n", mb->separator) != 0)
			return write_failed(mb, err);
		mb->data_end += mb->separator;
	}
	return ISNAP_OK;
}

/* Open (creating) the index, moving another generation aside first, and
 * collect the UIDs it lists. */
static enum isnap_status open_index(struct mbox *mb, const char *path,
				    struct mbox_index_info *info,
				    struct uid_list *uids,
				    struct isnap_error *err)
{
	enum isnap_status rc;
	int fd;

	rc = read_index(mb, mb->idx, &fd, info, uids, err);
	if (rc)
		return rc;
	if (fd >= 0 && info->n && info->uidvalidity != mb->uidvalidity) {
		/* A generation nobody retired (the state was lost, or a
		 * retirement was interrupted): keep it, never mix. */
		close(fd);
		uids->n = 0;
		rc = retire(mb, path, info->uidvalidity, err);
		if (!rc)
			rc = read_index(mb, mb->idx, &fd, info, uids, err);
		if (rc)
			return rc;
		if (fd >= 0 && info->n)
			return isnap_fail(err, ISNAP_EFOLDER,
					  "%s/%s: could not move UIDVALIDITY "
					  "%" PRIu32 " aside",
					  mb->base.dest, mb->idx,
					  info->uidvalidity);
	}
	if (fd < 0) {
		rc = create_index(mb, &fd, err);
		if (rc)
			return rc;
		memset(info, 0, sizeof *info);
	}
	mb->idx_fd = fd;
	/* Lines after the valid part were never committed. */
	if (ftruncate(fd, (off_t)info->valid_len) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s",
					mb->base.dest, mb->idx);
	mb->idx_len = info->valid_len;
	return ISNAP_OK;
}

static enum isnap_status mb_open_folder(struct store *s,
					const struct store_folder *f,
					struct uidset *present,
					struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);
	struct mbox_index_info info;
	struct uid_list uids = { 0 };
	uint32_t *sorted = NULL;
	char *path = NULL;
	enum isnap_status rc;

	if (mb->file)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "open_folder: folder %s is still open",
				  mb->file);
	if (f->uidvalidity == 0) {
		char shown[128];
		return isnap_fail(err, ISNAP_EUSAGE,
				  "open_folder: no UIDVALIDITY for \"%s\"",
				  store_printable(f->utf8 ? f->utf8 : f->name,
						  shown, sizeof shown));
	}
	rc = store_folder_path(f, &path, err);
	if (rc)
		return rc;
	mb->uidvalidity = f->uidvalidity;
	mb->file = concat(path, mb->ext, "");
	mb->idx = mb->file ? index_name(mb->file) : NULL;
	mb->ids = mb->file ? ids_name(mb->file) : NULL;
	if (!mb->file || !mb->idx || !mb->ids) {
		rc = store_oom(err);
		goto out;
	}
	rc = open_index(mb, path, &info, &uids, err);
	if (!rc)
		rc = open_file(mb, &info, &uids, err);
	if (rc)
		goto out;
	sorted = malloc((uids.n ? uids.n : 1) * sizeof *sorted);
	if (!sorted) {
		rc = store_oom(err);
		goto out;
	}
	for (size_t i = 0; i < uids.n; i++)
		sorted[i] = uids.v[i].e.uid;
	qsort(sorted, uids.n, sizeof *sorted, cmp_u32);
	for (size_t i = 0; i < uids.n; i++)
		if (uidset_add(present, sorted[i]) ||
		    uidset_add(&mb->have, sorted[i])) {
			rc = store_oom(err);
			goto out;
		}
out:
	if (rc) {
		mb->n_pending = 0;
		release_folder(mb);
	}
	free(sorted);
	free(uids.v);
	free(path);
	return rc;
}

static enum isnap_status mb_retire_generation(struct store *s,
					      const struct store_folder *f,
					      uint32_t old,
					      struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);
	char *path = NULL, *file;
	enum isnap_status rc;

	if (old == 0)
		return ISNAP_OK; /* never examined: nothing to keep */
	rc = store_folder_path(f, &path, err);
	if (rc)
		return rc;
	file = concat(path, mb->ext, "");
	if (!file)
		rc = store_oom(err);
	else if (mb->file && strcmp(mb->file, file) == 0)
		rc = isnap_fail(err, ISNAP_EUSAGE,
				"retire_generation: folder %s is open", file);
	else
		rc = retire(mb, path, old, err);
	free(file);
	free(path);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

static enum isnap_status mb_begin_message(struct store *s,
					  const struct store_message *m,
					  struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);

	if (!mb->file)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "begin_message: no folder is open");
	if (mb->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "begin_message: UID %" PRIu32
				  " is still being written",
				  mb->uid);
	if (mb->broken)
		return isnap_fail(err, ISNAP_ELOCAL,
				  "%s/%s: an earlier write failed",
				  s->dest, mb->file);
	if (m->uid == 0)
		return isnap_fail(err, ISNAP_EMSG, "UID 0 is not a valid UID");
	/* One copy per message, whatever the server repeats. */
	if (uidset_contains(&mb->have, m->uid))
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 " is already saved in %s",
				  m->uid, mb->file);
	if (mbox_out_mark(mb->out) != 0)
		return write_failed(mb, err);
	if (EVP_DigestInit_ex(mb->sha, EVP_sha256(), NULL) != 1)
		return isnap_fail(err, ISNAP_ENOMEM, "SHA-256 unavailable");
	mbox_ident_start(&mb->ident);
	mb->in_msg = true;
	mb->uid = m->uid;
	mb->size = m->size;
	mb->written = 0;
	mb->date = m->internaldate;
	mb->flags = m->flags;
	mb->msg_start = mb->data_end;
	mb->hdr_len = 0;
	mb->from_written = false;
	mb->stored = 0;
	mboxrd_init(&mb->q, body_sink, mb);
	return ISNAP_OK;
}

static enum isnap_status mb_write(struct store *s, const void *data,
				  size_t len, struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);
	const char *p = data;

	if (!mb->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "write: no message is being written");
	if (len > mb->size - mb->written)
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 ": more than the %" PRIu64
				  " bytes announced",
				  mb->uid, mb->size);
	mb->written += len;
	if (!mb->from_written) {
		size_t old = mb->hdr_len, k = MBOX_HEADER_MAX - old;
		if (k > len)
			k = len;
		memcpy(mb->hdr + old, p, k);
		mb->hdr_len += k;
		p += k;
		len -= k;
		/* Without a date, wait for end_message's as long as the
		 * buffer allows. */
		if (mb->hdr_len == MBOX_HEADER_MAX ||
		    (mb->date != STORE_NO_DATE &&
		     header_end(mb->hdr + (old > 2 ? old - 2 : 0),
				mb->hdr_len - (old > 2 ? old - 2 : 0)))) {
			enum isnap_status rc = start_body(mb, mb->date, err);
			if (rc)
				return rc;
		}
	}
	if (len && mboxrd_feed(&mb->q, p, len) != 0)
		return write_failed(mb, err);
	return ISNAP_OK;
}

static int reserve_pending(struct mbox *mb)
{
	if (mb->n_pending == mb->alloc_pending) {
		size_t alloc = mb->alloc_pending ? 2 * mb->alloc_pending : 256;
		struct mbox_index_entry *p =
			realloc(mb->pending, alloc * sizeof *p);
		unsigned char(*q)[32];
		if (!p)
			return -1;
		mb->pending = p;
		q = realloc(mb->pending_ident, alloc * sizeof *q);
		if (!q)
			return -1;
		mb->pending_ident = q;
		mb->alloc_pending = alloc;
	}
	return 0;
}

/* end_message's work; on failure the caller discards the message. */
static enum isnap_status finish_message(struct mbox *mb,
					const struct store_message *m,
					struct isnap_error *err)
{
	struct mbox_index_entry *e;
	unsigned int md_len = 0;
	enum isnap_status rc;

	if (m->uid != mb->uid)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "end_message: UID %" PRIu32
				  " for a message begun as UID %" PRIu32,
				  m->uid, mb->uid);
	if (mb->written != m->size || m->size != mb->size)
		return isnap_fail(err, ISNAP_EMSG,
				  "UID %" PRIu32 ": %" PRIu64
				  " bytes received, %" PRIu64 " expected",
				  m->uid, mb->written, m->size);
	if (!mb->from_written) {
		mb->flags = m->flags; /* the final ones, since none went out */
		rc = start_body(mb, mb->date != STORE_NO_DATE
					    ? mb->date
					    : m->internaldate,
				err);
		if (rc)
			return rc;
	}
	if (mboxrd_finish(&mb->q) != 0 || mbox_out_write(mb->out, "\n", 1))
		return write_failed(mb, err);
	if (EVP_DigestFinal_ex(mb->sha, mb->last_sha, &md_len) != 1 ||
	    md_len != sizeof mb->last_sha)
		return isnap_fail(err, ISNAP_ENOMEM, "SHA-256 failed");
	if (reserve_pending(mb) != 0 || uidset_add(&mb->have, m->uid) != 0)
		return store_oom(err);
	if (mbox_ident_final(&mb->ident, mb->pending_ident[mb->n_pending]))
		return isnap_fail(err, ISNAP_ENOMEM, "SHA-256 failed");
	e = &mb->pending[mb->n_pending++];
	e->uidvalidity = mb->uidvalidity;
	e->uid = m->uid;
	e->offset = mb->msg_start;
	e->length = mb->from_len + mb->stored + 1;
	e->file_end = 0; /* known at commit */
	mb->last_offset = mb->msg_start;
	mb->last_stored = mb->stored;
	memcpy(mb->last_added, mb->added, sizeof mb->last_added);
	mb->data_end = e->offset + e->length;
	mb->in_msg = false;
	return ISNAP_OK;
}

static enum isnap_status mb_end_message(struct store *s,
					const struct store_message *m,
					struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);
	enum isnap_status rc;

	if (!mb->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "end_message: no message is being written");
	rc = finish_message(mb, m, err);
	if (rc)
		mb_abort_message(s);
	return rc;
}

static void mb_locate(struct store *s, struct store_location *loc)
{
	struct mbox *mb = mb_of(s);

	memset(loc, 0, sizeof *loc);
	snprintf(loc->location, sizeof loc->location, "%s@%" PRIu64,
		 mb->file ? mb->file : "", mb->last_offset);
	loc->stored_size = mb->last_stored;
	loc->has_stored_sha256 = true;
	memcpy(loc->stored_sha256, mb->last_sha, sizeof loc->stored_sha256);
	memcpy(loc->added, mb->last_added, sizeof loc->added);
}

static void mb_moves(struct store *s,
		     void (*moved)(void *ctx, uint32_t uid, const char *from,
				   const struct store_location *to),
		     void *ctx)
{
	struct mbox *mb = mb_of(s);
	struct store_location loc;
	char from[sizeof loc.location];

	for (size_t i = 0; mb->file && i < mb->n_moves; i++) {
		const struct mbox_move *mv = &mb->moves[i];
		memset(&loc, 0, sizeof loc);
		snprintf(from, sizeof from, "%s@%" PRIu64, mb->file, mv->from);
		snprintf(loc.location, sizeof loc.location, "%s@%" PRIu64,
			 mb->file, mv->to);
		loc.stored_size = mv->stored_size;
		loc.has_stored_sha256 = true;
		memcpy(loc.stored_sha256, mv->stored_sha, 32);
		moved(ctx, mv->uid, from, &loc);
	}
	free(mb->moves);
	mb->moves = NULL;
	mb->n_moves = 0;
}

/* ---------------------------------------------------------------------- */
/* Commit                                                                  */

static int write_at(int fd, const char *p, size_t len, uint64_t at)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		at += (uint64_t)n;
	}
	return 0;
}

/* The identities of the messages ended since the last commit, appended
 * to the .ids file (created when needed). */
static enum isnap_status write_ids(struct mbox *mb, struct isnap_error *err)
{
	char *buf = malloc(mb->n_pending * MBOX_IDS_LINE_MAX + 1);
	size_t len = 0;
	struct stat sb;

	if (!buf)
		return store_oom(err);
	if (mb->ids_fd < 0) {
		mb->ids_fd = beneath_open_file(mb->base.dest_fd, mb->ids,
					       O_RDWR | O_CREAT, 0600);
		if (mb->ids_fd < 0 || fstat(mb->ids_fd, &sb) != 0)
			goto fail;
		mb->ids_len = (uint64_t)sb.st_size;
	}
	for (size_t i = 0; i < mb->n_pending; i++)
		len += mbox_ids_format(mb->uidvalidity, mb->pending[i].uid,
				       mb->pending_ident[i], buf + len);
	if (write_at(mb->ids_fd, buf, len, mb->ids_len) ||
	    fdatasync(mb->ids_fd) != 0)
		goto fail;
	mb->ids_len += len;
	free(buf);
	return ISNAP_OK;
fail:
	isnap_fail_errno(err, ISNAP_ELOCAL, "%swriting %s/%s",
			 store_space_hint(errno), mb->base.dest, mb->ids);
	free(buf);
	return ISNAP_ELOCAL;
}

static enum isnap_status write_index(struct mbox *mb, uint64_t file_end,
				     struct isnap_error *err)
{
	size_t cap = mb->n_pending * MBOX_INDEX_LINE_MAX, len = 0;
	char *buf;
	enum isnap_status rc;

	/* Identities first: one without its index line is ignored. */
	rc = write_ids(mb, err);
	if (rc)
		return rc;
	buf = malloc(cap ? cap : 1);
	if (!buf)
		return store_oom(err);
	for (size_t i = 0; i < mb->n_pending; i++) {
		mb->pending[i].file_end = file_end;
		len += mbox_index_format(&mb->pending[i], buf + len);
	}
	if (write_at(mb->idx_fd, buf, len, mb->idx_len) ||
	    fdatasync(mb->idx_fd) != 0)
		goto fail;
	free(buf);
	mb->idx_len += len;
	return ISNAP_OK;
fail:
	isnap_fail_errno(err, ISNAP_ELOCAL, "%swriting %s/%s",
			 store_space_hint(errno), mb->base.dest, mb->idx);
	free(buf);
	/* A torn line would end the index's valid part for good. */
	if (ftruncate(mb->idx_fd, (off_t)mb->idx_len) != 0)
		mb->broken = true;
	return ISNAP_ELOCAL;
}

/* Write `len` bytes to a new file `name`.tmp, sync it, rename it over
 * `name` and return it open (O_RDWR), or -1 with errno. */
static int replace_file(struct mbox *mb, const char *name, const char *buf,
			size_t len)
{
	char *tmp = concat(name, ".tmp", "");
	int fd = -1, saved;

	if (!tmp) {
		errno = ENOMEM;
		return -1;
	}
	fd = beneath_open_file(mb->base.dest_fd, tmp,
			       O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write_at(fd, buf, len, 0) || fdatasync(fd) != 0 ||
	    rename_beside(mb->base.dest_fd, tmp, name) != 0 ||
	    fsync_dir_of(mb->base.dest_fd, name) != 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		free(tmp);
		errno = saved;
		return -1;
	}
	free(tmp);
	return fd;
}

/* After the file was read again: the whole index (and identities) as
 * the file is now, with what was ended since, replaced in one step each:
 * identities first, then the index, so that an index never names a
 * message whose identity is out of date. */
static enum isnap_status rewrite_index(struct mbox *mb, uint64_t file_end,
				       struct isnap_error *err)
{
	size_t n = mb->n_rw + mb->n_pending;
	char *idx = malloc(n * MBOX_INDEX_LINE_MAX + 1);
	char *ids = malloc(n * MBOX_IDS_LINE_MAX + 1);
	size_t il = 0, dl = 0;
	int ifd = -1, dfd = -1;

	if (!idx || !ids) {
		free(idx);
		free(ids);
		return store_oom(err);
	}
	for (size_t i = 0; i < mb->n_rw; i++) {
		mb->rw[i].e.file_end = file_end;
		il += mbox_index_format(&mb->rw[i].e, idx + il);
		dl += mbox_ids_format(mb->uidvalidity, mb->rw[i].e.uid,
				      mb->rw[i].ident, ids + dl);
	}
	for (size_t i = 0; i < mb->n_pending; i++) {
		mb->pending[i].file_end = file_end;
		il += mbox_index_format(&mb->pending[i], idx + il);
		dl += mbox_ids_format(mb->uidvalidity, mb->pending[i].uid,
				      mb->pending_ident[i], ids + dl);
	}
	dfd = replace_file(mb, mb->ids, ids, dl);
	if (dfd >= 0)
		ifd = replace_file(mb, mb->idx, idx, il);
	free(idx);
	free(ids);
	if (dfd < 0 || ifd < 0) {
		if (dfd >= 0)
			close(dfd);
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"%srewriting the index %s/%s",
					store_space_hint(errno),
					mb->base.dest, mb->idx);
	}
	if (mb->ids_fd >= 0)
		close(mb->ids_fd);
	close(mb->idx_fd);
	mb->ids_fd = dfd;
	mb->idx_fd = ifd;
	mb->ids_len = dl;
	mb->idx_len = il;
	mb->rewrite = false;
	free(mb->rw);
	mb->rw = NULL;
	mb->n_rw = 0;
	return ISNAP_OK;
}

static enum isnap_status mb_commit(struct store *s, struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);
	uint64_t file_end;
	enum isnap_status rc;

	if (!mb->file || (mb->n_pending == 0 && !mb->rewrite))
		return ISNAP_OK;
	if (mb->in_msg)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "commit: UID %" PRIu32
				  " is still being written",
				  mb->uid);
	if (mb->broken)
		return isnap_fail(err, ISNAP_ELOCAL,
				  "%s/%s: an earlier write failed", s->dest,
				  mb->file);
	/* The messages first, then the index lines that name them. */
	if (mbox_out_commit(mb->out, &file_end) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%ssyncing %s/%s",
					store_space_hint(errno), s->dest,
					mb->file);
	rc = mb->rewrite ? rewrite_index(mb, file_end, err)
			 : write_index(mb, file_end, err);
	if (rc)
		return rc;
	mb->committed_end = file_end;
	mb->n_pending = 0;
	return ISNAP_OK;
}

static enum isnap_status mb_close_folder(struct store *s,
					 struct isnap_error *err)
{
	struct mbox *mb = mb_of(s);
	enum isnap_status rc;

	if (!mb->file)
		return ISNAP_OK;
	mb_abort_message(s);
	rc = mb_commit(s, err);
	/* A folder without a message still gets a valid gzip file (one
	 * empty member), which gzip -t and zcat accept; the index names no
	 * commit, so the next run that adds messages cuts it away first. */
	if (!rc && mb->gzip && mb->committed_end == 0 &&
	    mbox_out_empty_member(mb->out) != 0)
		rc = write_failed(mb, err);
	release_folder(mb);
	return rc;
}

static enum isnap_status mb_finish(struct store *s, struct isnap_error *err)
{
	mb_abort_message(s);
	return mb_commit(s, err);
}

static void mb_destroy(struct store *s)
{
	struct mbox *mb = mb_of(s);

	release_folder(mb);
	EVP_MD_CTX_free(mb->sha);
	mbox_ident_free(&mb->ident);
	free(mb->hdr);
	free(mb->pending);
	free(mb->pending_ident);
	free(mb);
}

static const struct store_ops mbox_ops = {
	.format = "mbox",
	.caps = STORE_CAP_PARALLEL | STORE_CAP_REPORTS_HELD,
	.durable_at_finish = false,
	.open_folder = mb_open_folder,
	.retire_generation = mb_retire_generation,
	.begin_message = mb_begin_message,
	.write = mb_write,
	.end_message = mb_end_message,
	.abort_message = mb_abort_message,
	.locate = mb_locate,
	.moves = mb_moves,
	.commit = mb_commit,
	.close_folder = mb_close_folder,
	.finish = mb_finish,
	.destroy = mb_destroy,
};

static const struct store_ops mbox_gz_ops = {
	.format = "mbox.gz",
	.caps = STORE_CAP_PARALLEL | STORE_CAP_REPORTS_HELD,
	.durable_at_finish = false,
	.open_folder = mb_open_folder,
	.retire_generation = mb_retire_generation,
	.begin_message = mb_begin_message,
	.write = mb_write,
	.end_message = mb_end_message,
	.abort_message = mb_abort_message,
	.locate = mb_locate,
	.moves = mb_moves,
	.commit = mb_commit,
	.close_folder = mb_close_folder,
	.finish = mb_finish,
	.destroy = mb_destroy,
};

static enum isnap_status create(const char *dest, bool gzip,
				struct store **out, struct isnap_error *err)
{
	struct mbox *mb;

	*out = NULL;
	mb = calloc(1, sizeof *mb);
	if (!mb)
		return store_oom(err);
	mb->base.ops = gzip ? &mbox_gz_ops : &mbox_ops;
	mb->base.dest = strdup(dest);
	mb->base.dest_fd = beneath_open_top(dest, true);
	mb->gzip = gzip;
	mb->ext = gzip ? ".mbox.gz" : ".mbox";
	mb->idx_fd = mb->ids_fd = -1;
	mb->have = (struct uidset)UIDSET_INIT;
	mb->hdr = malloc(MBOX_HEADER_MAX);
	mb->sha = EVP_MD_CTX_new();
	if (mbox_ident_init(&mb->ident) != 0)
		mb->ident.md = NULL;
	if (!mb->base.dest || !mb->hdr || !mb->sha || !mb->ident.md ||
	    mb->base.dest_fd < 0) {
		enum isnap_status rc =
			mb->base.dest_fd >= 0 || !mb->base.dest
				? store_oom(err)
				: isnap_fail_errno(err, ISNAP_ELOCAL, "%s%s",
						   store_space_hint(errno),
						   dest);
		store_free(&mb->base);
		return rc;
	}
	*out = &mb->base;
	return ISNAP_OK;
}

enum isnap_status store_mbox_new(const char *dest, struct store **out,
				 struct isnap_error *err)
{
	return create(dest, false, out, err);
}

enum isnap_status store_mbox_gz_new(const char *dest, struct store **out,
				    struct isnap_error *err)
{
	return create(dest, true, out, err);
}
