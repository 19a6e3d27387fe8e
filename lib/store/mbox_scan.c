/*
 * mbox_scan.c — store_scan for mbox and mbox.gz: every *.mbox (*.mbox.gz)
 * file below the destination, old generations included, split at its From
 * lines.  Each message is reported with the location mbox.c's locate()
 * gives, "<file>@<offset of its From line>" (offsets in the uncompressed
 * stream), and with the bytes between its From line and the blank line
 * that ends it: the message as stored, still in mboxrd form.
 *
 * A From line is any line that starts with "From " (mboxrd quotes every
 * other such line); the line end before it belongs to the blank separator
 * line, not to the message.  The splitter holds back at most that line
 * end and the five bytes of "From ", so memory does not depend on the
 * file.  Everything else below the destination (outside .imapsnap/) is
 * reported as a stray: files of other names, symlinks, directories whose
 * names start with '.' that hold anything (fsname never gives a folder
 * such a name).  A file that cannot be read, or whose compressed stream
 * breaks, is reported unreadable (the message it broke in, or the file)
 * and the scan goes on with the next file.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "beneath.h"
#include "store/common.h"

#define MAX_DEPTH 512

static const char from_[] = "From ";
#define FROM_LEN 5

enum split_state { AT_START, IN_FROM_LINE, IN_BODY };

struct splitter {
	const struct store_scan_cb *cb;
	struct store_feed feed;
	const char *file;
	bool cb_failed;        /* a callback, not the file, stopped it */
	char loc[sizeof ((struct store_location *)0)->location];
	uint64_t pos;          /* offset of the next byte */
	enum split_state state;
	unsigned matched;      /* bytes of "From " held at a line start */
	uint64_t matched_at;   /* where they start */
	bool line_start;
	bool nl_held;          /* the LF before this line, held back */
	bool in_msg;
};

/* A callback's failure stops the whole scan; the file's own does not. */
static enum isnap_status by_cb(struct splitter *sp, enum isnap_status rc)
{
	if (rc)
		sp->cb_failed = true;
	return rc;
}

static enum isnap_status begin(struct splitter *sp, struct isnap_error *err)
{
	int n = snprintf(sp->loc, sizeof sp->loc, "%s@%" PRIu64, sp->file,
			 sp->matched_at);
	enum isnap_status rc;

	if (n < 0 || (size_t)n >= sizeof sp->loc)
		return isnap_fail(err, ISNAP_EINTEGRITY,
				  "%s: path too long for a location", sp->file);
	sp->in_msg = true;
	rc = by_cb(sp, sp->cb->begin(sp->cb->ctx, sp->loc, err));
	if (!rc)
		store_feed_start(&sp->feed, sp->cb);
	return rc;
}

static enum isnap_status end(struct splitter *sp, struct isnap_error *err)
{
	sp->in_msg = false;
	return by_cb(sp, sp->cb->end(sp->cb->ctx, err));
}

/* The message's bytes, as far as the caller wants them (store_feed). */
static enum isnap_status data(struct splitter *sp, const char *p, size_t n,
			      struct isnap_error *err)
{
	return by_cb(sp, store_feed(&sp->feed, p, n, err));
}

/* The line start held back is no From line after all. */
static enum isnap_status release(struct splitter *sp, struct isnap_error *err)
{
	enum isnap_status rc = ISNAP_OK;

	if (sp->nl_held)
		rc = data(sp, "\n", 1, err);
	if (!rc)
		rc = data(sp, from_, sp->matched, err);
	sp->nl_held = false;
	sp->matched = 0;
	sp->line_start = false;
	return rc;
}

static enum isnap_status body(struct splitter *sp, const char *p, size_t n,
			      struct isnap_error *err)
{
	enum isnap_status rc;

	while (n) {
		if (sp->state == AT_START) {
			if (*p != from_[sp->matched])
				return isnap_fail(err, ISNAP_EINTEGRITY,
						  "%s: not an mbox file (it "
						  "does not start with a From "
						  "line)",
						  sp->file);
			p++, n--, sp->pos++;
			if (++sp->matched == FROM_LEN) {
				sp->matched = 0;
				sp->state = IN_FROM_LINE;
			}
			continue;
		}
		if (sp->state == IN_FROM_LINE) {
			const char *lf = memchr(p, '\n', n);
			size_t k = lf ? (size_t)(lf - p) + 1 : n;
			p += k, n -= k, sp->pos += k;
			if (!lf)
				continue;
			rc = begin(sp, err);
			if (rc)
				return rc;
			sp->state = IN_BODY;
			sp->line_start = true;
			sp->nl_held = false;
			continue;
		}
		if (sp->line_start) {
			if (sp->matched == 0 && *p == '\n') {
				/* An empty line: the LF held before it is
				 * the message's, this one may be the end. */
				if (sp->nl_held && (rc = data(sp, "\n", 1, err)))
					return rc;
				sp->nl_held = true;
				p++, n--, sp->pos++;
				continue;
			}
			if (*p == from_[sp->matched]) {
				if (sp->matched == 0)
					sp->matched_at = sp->pos;
				p++, n--, sp->pos++;
				if (++sp->matched < FROM_LEN)
					continue;
				/* The next message: the held LF was the
				 * blank separator line. */
				sp->nl_held = false;
				sp->matched = 0;
				sp->line_start = false;
				rc = end(sp, err);
				if (rc)
					return rc;
				sp->state = IN_FROM_LINE;
				continue;
			}
			if ((rc = release(sp, err)))
				return rc;
		}
		{
			const char *lf = memchr(p, '\n', n);
			size_t k = lf ? (size_t)(lf - p) : n;
			if ((rc = data(sp, p, k, err)))
				return rc;
			p += k, n -= k, sp->pos += k;
			if (lf) {
				/* Hold the LF: it may end the message. */
				p++, n--, sp->pos++;
				sp->nl_held = true;
				sp->line_start = true;
			}
		}
	}
	return ISNAP_OK;
}

static enum isnap_status split_end(struct splitter *sp, struct isnap_error *err)
{
	enum isnap_status rc;

	if (sp->state == AT_START) {
		if (sp->matched)
			return isnap_fail(err, ISNAP_EINTEGRITY,
					  "%s: not an mbox file", sp->file);
		return ISNAP_OK; /* empty */
	}
	if (sp->state == IN_FROM_LINE) {
		/* A From line cut short: a message begun, nothing of it. */
		rc = begin(sp, err);
		if (!rc)
			rc = end(sp, err);
		return rc;
	}
	/* The last LF is the blank separator line; a partial "From" after
	 * it is the message's. */
	if (sp->matched) {
		rc = release(sp, err);
		if (rc)
			return rc;
	}
	return end(sp, err);
}

/* ---------------------------------------------------------------------- */
/* Files                                                                   */

static enum isnap_status read_failed(const char *dest, const char *rel,
				     struct isnap_error *err)
{
	return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/%s", dest, rel);
}

static enum isnap_status scan_plain(int fd, const char *dest, const char *rel,
				    struct splitter *sp, char *in,
				    struct isnap_error *err)
{
	for (;;) {
		ssize_t n = read(fd, in, STORE_CHUNK);
		enum isnap_status rc;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return read_failed(dest, rel, err);
		if (n == 0)
			return split_end(sp, err);
		rc = body(sp, in, (size_t)n, err);
		if (rc)
			return rc;
	}
}

/* Concatenated gzip members are one stream (RFC 1952 2.2). */
static enum isnap_status scan_gz(int fd, const char *dest, const char *rel,
				 struct splitter *sp, char *in, char *out,
				 struct isnap_error *err)
{
	z_stream z = { 0 };
	enum isnap_status rc = ISNAP_OK;
	bool member_open = false, eof = false;

	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return store_oom(err);
	for (;;) {
		int zr;
		if (z.avail_in == 0 && !eof) {
			ssize_t n = read(fd, in, STORE_CHUNK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = read_failed(dest, rel, err);
				break;
			}
			eof = n == 0;
			z.next_in = (Bytef *)in;
			z.avail_in = (uInt)n;
		}
		if (z.avail_in == 0 && eof) {
			if (member_open)
				rc = isnap_fail(err, ISNAP_EINTEGRITY,
						"%s/%s: the gzip data ends "
						"in the middle of a member",
						dest, rel);
			else
				rc = split_end(sp, err);
			break;
		}
		member_open = true;
		z.next_out = (Bytef *)out;
		z.avail_out = STORE_CHUNK;
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			rc = zr == Z_MEM_ERROR
				     ? store_oom(err)
				     : isnap_fail(err, ISNAP_EINTEGRITY,
						  "%s/%s: corrupt gzip data "
						  "at offset %" PRIu64 "%s%s",
						  dest, rel,
						  (uint64_t)z.total_in,
						  z.msg ? ": " : "",
						  z.msg ? z.msg : "");
			break;
		}
		rc = body(sp, out, STORE_CHUNK - z.avail_out, err);
		if (rc)
			break;
		if (zr == Z_STREAM_END) {
			member_open = false;
			if (inflateReset(&z) != Z_OK) {
				rc = store_oom(err);
				break;
			}
		}
	}
	inflateEnd(&z);
	return rc;
}

static enum isnap_status scan_file(int dfd, const char *dest, const char *rel,
				   bool gzip, const struct store_scan_cb *cb,
				   char *in, char *out,
				   struct isnap_error *err)
{
	struct splitter sp = { .cb = cb, .file = rel, .state = AT_START };
	enum isnap_status rc;
	int fd = store_open_regular(dfd, rel);

	if (fd < 0) {
		if (store_not_a_file(errno))
			isnap_fail(err, ISNAP_EINTEGRITY,
				   "%s/%s is %s, not an mbox file", dest, rel,
				   store_type_name(dfd, rel, DT_UNKNOWN));
		else
			read_failed(dest, rel, err);
		return store_scan_unreadable(cb, rel, err->status, err);
	}
	rc = gzip ? scan_gz(fd, dest, rel, &sp, in, out, err)
		  : scan_plain(fd, dest, rel, &sp, in, err);
	close(fd);
	/* The file broke (not a callback): the message it broke in, or
	 * the file itself, is unreadable; the other files go on. */
	if (rc && rc != ISNAP_ENOMEM && !sp.cb_failed)
		rc = store_scan_unreadable(cb, sp.in_msg ? sp.loc : rel, rc,
					   err);
	return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls > lx && strcmp(s + ls - lx, suffix) == 0;
}

static enum isnap_status scan_dir(int dfd, const char *dest, const char *rel,
				  bool gzip, int depth,
				  const struct store_scan_cb *cb, char *in,
				  char *out, struct isnap_error *err)
{
	const char *ext = gzip ? ".mbox.gz" : ".mbox";
	struct store_dirent *v;
	enum isnap_status rc = ISNAP_OK;
	size_t n;

	if (depth > MAX_DEPTH)
		return isnap_fail(err, ISNAP_EINTEGRITY,
				  "%s/%s: folders nested too deep", dest, rel);
	if (store_list_dir(dfd, rel, &v, &n) != 0) {
		if (errno == ENOMEM)
			return store_oom(err);
		isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s%s%s", dest,
				 *rel ? "/" : "", rel);
		return *rel ? store_scan_unreadable(cb, rel, ISNAP_ELOCAL, err)
			    : ISNAP_ELOCAL;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const char *name = v[i].name;
		char *sub;
		bool dir = v[i].type == DT_DIR && name[0] != '.';
		bool file = v[i].type != DT_DIR && ends_with(name, ext);
		bool state = !*rel && v[i].type == DT_DIR &&
			     !strcmp(name, ".imapsnap");
		if (state)
			continue;
		sub = store_join(rel, name);
		if (!sub) {
			rc = store_oom(err);
			break;
		}
		if (dir)
			rc = scan_dir(dfd, dest, sub, gzip, depth + 1, cb, in,
				      out, err);
		else if (file)
			rc = scan_file(dfd, dest, sub, gzip, cb, in, out, err);
		else if (v[i].type != DT_DIR || store_dir_has_entries(dfd, sub))
			rc = store_scan_stray(
				cb, sub,
				v[i].type == DT_DIR
					? "a directory imapsnap does not write"
				: v[i].type == DT_REG
					? "a file that is no mbox of imapsnap"
					: store_type_name(dfd, sub, v[i].type),
				false, err);
		free(sub);
	}
	store_dirents_free(v, n);
	return rc;
}

enum isnap_status store_mbox_scan(const char *dest, bool gzip,
				  const struct store_scan_cb *cb,
				  struct isnap_error *err)
{
	int dfd = beneath_open_top(dest, false);
	char *in = malloc(STORE_CHUNK), *out = malloc(STORE_CHUNK);
	enum isnap_status rc;

	if (dfd < 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	else if (!in || !out)
		rc = store_oom(err);
	else
		rc = scan_dir(dfd, dest, "", gzip, 0, cb, in, out, err);
	if (dfd >= 0)
		close(dfd);
	free(in);
	free(out);
	return rc;
}
