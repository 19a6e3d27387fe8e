/* manifest_read.c — see manifest_read.h. */
#include "manifest_read.h"
#include "store/archive_lib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "manifest.h"
#include "manifest_chain.h"
#include "store/archive_kind.h"
#include "store/store.h"

int manifest_lines_feed(struct manifest_lines *ml, const char *data,
			size_t len, manifest_line_fn fn, void *ctx)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;
		int rc;

		if (!ml->overlong && ml->len + n > MANIFEST_LINE_LIMIT) {
			ml->overlong = true;
			ml->len = 0;
		}
		if (!ml->overlong) {
			if (ml->len + n > ml->cap) {
				size_t cap = ml->cap ? ml->cap : 4096;
				char *p;
				while (cap < ml->len + n)
					cap *= 2;
				if (!(p = realloc(ml->line, cap)))
					return -1;
				ml->line = p;
				ml->cap = cap;
			}
			/* An empty line before any other has no buffer yet:
			 * nothing to copy, and it is "", not overlong. */
			if (n) {
				memcpy(ml->line + ml->len, data, n);
				ml->len += n;
			}
		}
		if (!nl)
			return 0;
		rc = fn(ctx, ml->overlong ? NULL : ml->line ? ml->line : "",
			ml->overlong ? 0 : ml->len);
		ml->len = 0;
		ml->overlong = false;
		if (rc)
			return rc;
		data += n + 1;
		len -= n + 1;
	}
	return 0;
}

bool manifest_lines_pending(const struct manifest_lines *ml)
{
	return ml->len || ml->overlong;
}

void manifest_lines_reset(struct manifest_lines *ml)
{
	ml->len = 0;
	ml->overlong = false;
}

void manifest_lines_free(struct manifest_lines *ml)
{
	free(ml->line);
	memset(ml, 0, sizeof *ml);
}

/* ---------------------------------------------------------------------- */

struct reading {
	const struct manifest_read_cb *cb;
	const char *file;
	unsigned long line_no;
	struct isnap_error *err;
	enum isnap_status rc;
	struct manifest_lines ml;
};

static int one_line(void *ctx, const char *text, size_t len)
{
	struct reading *r = ctx;
	json_error_t jerr;
	json_t *o = NULL;
	const char *why = NULL;

	r->line_no++;
	if (text && r->cb->raw) {
		bool taken = false;
		r->rc = r->cb->raw(r->cb->ctx, r->file, text, len, &taken,
				   r->err);
		if (r->rc || taken)
			return r->rc ? 1 : 0;
	}
	if (!text)
		why = "the line is too long";
	else if (!(o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
		why = jerr.text;
	r->rc = r->cb->line(r->cb->ctx, r->file, r->line_no, o, why, r->err);
	json_decref(o);
	return r->rc ? 1 : 0;
}

static enum isnap_status feed(struct reading *r, const char *data, size_t len)
{
	int rc = manifest_lines_feed(&r->ml, data, len, one_line, r);

	if (rc < 0)
		return isnap_fail(r->err, ISNAP_ENOMEM, "out of memory");
	return r->rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dest/.imapsnap/manifest, opened without following a symbolic link at
 * .imapsnap or manifest (beneath.h); -1 with the reason in err. */
static int open_manifest_dir(const char *dest, struct isnap_error *err)
{
	static const char rel[] = ".imapsnap/" MANIFEST_DIR;
	int top = beneath_open_top(dest, false), fd;

	if (top < 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
		return -1;
	}
	fd = beneath_open_dir(top, rel, false);
	if (fd < 0 && errno == ENOENT)
		isnap_fail(err, ISNAP_ELOCAL, "%s holds no manifest (%s/%s)",
			   dest, dest, rel);
	else if (fd < 0)
		isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%.*s", dest,
				 (int)beneath_culprit(top, rel), rel);
	close(top);
	return fd;
}

static enum isnap_status read_dir(struct reading *r, const char *dest)
{
	char path[4200], buf[65536];
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, a = 0;
	enum isnap_status rc = ISNAP_OK;
	int dfd;

	snprintf(path, sizeof path, "%s/.imapsnap/%s", dest, MANIFEST_DIR);
	dfd = open_manifest_dir(dest, r->err);
	if (dfd < 0)
		return ISNAP_ELOCAL;
	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return isnap_fail_errno(r->err, ISNAP_ELOCAL, "%s", path);
	}
	/* fdopendir owns dfd now; the run files are opened beside it. */
	dfd = dirfd(d);
	while ((e = readdir(d))) {
		if (!manifest_is_run_name(e->d_name))
			continue;
		if (n == a) {
			char **v = realloc(names, (a = a ? 2 * a : 64) *
							  sizeof *v);
			if (!v)
				break;
			names = v;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	if (e) {
		rc = isnap_fail(r->err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n && !rc; i++) {
		int fd;
		char file[4300];
		snprintf(file, sizeof file, "%s/%s", path, names[i]);
		/* A FIFO named like a run file must not block restore. */
		fd = beneath_open_file(dfd, names[i], O_RDONLY, 0);
		if (fd < 0) {
			rc = isnap_fail_errno(r->err, ISNAP_ELOCAL, "%s", file);
			break;
		}
		r->file = names[i];
		r->line_no = 0;
		manifest_lines_reset(&r->ml);
		for (;;) {
			ssize_t got = read(fd, buf, sizeof buf);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				rc = isnap_fail_errno(r->err, ISNAP_ELOCAL,
						      "reading %s", file);
				break;
			}
			if (got == 0 || (rc = feed(r, buf, (size_t)got)))
				break;
		}
		close(fd);
	}
out:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static enum isnap_status read_archive(struct reading *r, const char *dest)
{
	struct manifest_archive *ma = manifest_archive_open(dest, r->err);
	enum isnap_status rc = ISNAP_OK;
	bool found = false;
	int st;

	if (!ma)
		return ISNAP_ELOCAL;
	if (!manifest_archive_start(ma)) {
		rc = isnap_fail(r->err, ISNAP_ELOCAL, "%s: %s", dest,
				manifest_archive_error(ma));
		goto out;
	}
	while (!rc && !found && (st = manifest_archive_next(ma)) != 0) {
		char buf[65536];
		long got;
		if (st < 0) {
			rc = isnap_fail(r->err, ISNAP_ELOCAL, "reading %s: %s",
					dest, manifest_archive_error(ma));
			break;
		}
		found = true;
		r->file = MANIFEST_META_NAME;
		while (!rc &&
		       (got = manifest_archive_read(ma, buf, sizeof buf)) > 0)
			rc = feed(r, buf, (size_t)got);
		if (!rc && got < 0)
			rc = isnap_fail(r->err, ISNAP_ELOCAL,
					"reading the manifest in %s: %s", dest,
					manifest_archive_error(ma));
	}
	if (!rc && !found)
		rc = isnap_fail(r->err, ISNAP_ELOCAL, "%s holds no manifest (%s)",
				dest, MANIFEST_META_NAME);
out:
	manifest_archive_close(ma);
	return rc;
}

enum isnap_status manifest_read_all(const char *dest,
				    const struct manifest_read_cb *cb,
				    struct isnap_error *err)
{
	struct reading r = { .cb = cb, .err = err };
	enum isnap_status rc;
	struct stat sb;

	if (store_single_file_format(dest)) {
		rc = read_archive(&r, dest);
	} else if (stat(dest, &sb) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dest);
	} else if (!S_ISDIR(sb.st_mode)) {
		rc = isnap_fail(err, ISNAP_ELOCAL,
				"%s is neither a directory nor a single-file "
				"export",
				dest);
	} else {
		rc = read_dir(&r, dest);
	}
	manifest_lines_free(&r.ml);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* A single-file export's manifest entry                                   */

struct manifest_archive {
	const struct archive_kind *kind;
	struct archive *a;
	locale_t saved;
	int fd;
};

struct manifest_archive *manifest_archive_open(const char *path,
					       struct isnap_error *err)
{
	struct manifest_archive *ma;
	const char *why;
	int fd;

	fd = beneath_open_top_file(path);
	if (fd < 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "%s", path);
		return NULL;
	}
	if (!(ma = calloc(1, sizeof *ma))) {
		close(fd);
		isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		return NULL;
	}
	ma->fd = fd;
	if (!(ma->kind = archive_kind_by_suffix(path)))
		why = "not an archive imapsnap writes";
	if (!ma->kind || !(ma->a = archive_kind_reader(ma->kind, &why))) {
		close(fd);
		free(ma);
		isnap_fail(err, ISNAP_ELOCAL, "%s: %s", path, why);
		return NULL;
	}
	ma->saved = archive_kind_utf8_begin();
	return ma;
}

bool manifest_archive_start(struct manifest_archive *ma)
{
	return archive_read_open_fd(ma->a, ma->fd, 65536) == ARCHIVE_OK;
}

const char *manifest_location_key(const char *format, uint64_t version,
				  const char *location)
{
	char volume[4096];

	if (version >= 2 || !format || !archive_kind_by_format(format))
		return location;
	/* "<volume>!<entry>": the volume's name ends in its format's suffix
	 * and may itself hold a '!' (a single-file export's name is the
	 * user's), as may a folder's name in the entry. */
	for (const char *bang = strchr(location, '!'); bang;
	     bang = strchr(bang + 1, '!')) {
		size_t n = (size_t)(bang - location);
		if (n >= sizeof volume)
			break;
		memcpy(volume, location, n);
		volume[n] = '\0';
		if (archive_kind_by_suffix(volume))
			return bang + 1;
	}
	return location;
}

bool manifest_is_meta_entry(const char *name)
{
	if (name[0] == '.' && name[1] == '/')
		name += 2;
	return strcmp(name, MANIFEST_META_NAME) == 0;
}

int manifest_archive_next(struct manifest_archive *ma)
{
	struct archive_entry *ent;
	int st;

	while ((st = archive_read_next_header(ma->a, &ent)) != ARCHIVE_EOF) {
		const char *name;
		if (st != ARCHIVE_OK && st != ARCHIVE_WARN)
			return -1;
		name = archive_kind_get_path(ma->kind, ent);
		if (archive_entry_filetype(ent) == AE_IFREG && name &&
		    manifest_is_meta_entry(name))
			return 1;
	}
	return 0;
}

long manifest_archive_read(struct manifest_archive *ma, void *buf,
			   size_t size)
{
	la_ssize_t n = archive_read_data(ma->a, buf, size);

	return n < 0 ? -1 : (long)n;
}

const char *manifest_archive_error(struct manifest_archive *ma)
{
	return archive_error_string(ma->a);
}

void manifest_archive_close(struct manifest_archive *ma)
{
	if (!ma)
		return;
	archive_read_free(ma->a);
	archive_kind_utf8_end(ma->saved);
	close(ma->fd);
	free(ma);
}

/* ---------------------------------------------------------------------- */
/* Fields                                                                  */

bool manifest_get_u64(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		*out = strtoull(s, &end, 10);
		return *s >= '0' && *s <= '9' && !*end && !errno;
	}
	return false;
}

bool manifest_get_u32(const json_t *o, const char *key, uint32_t *out)
{
	uint64_t v;

	if (!manifest_get_u64(o, key, &v) || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

const char *manifest_get_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool manifest_parse_sha(const char *s, unsigned char out[32])
{
	if (!s || strlen(s) != 64)
		return false;
	for (int i = 0; i < 32; i++) {
		int hi = unhex_digit(s[2 * i]), lo = unhex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

void manifest_sha_hex(const unsigned char sha[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[sha[i] >> 4];
		out[2 * i + 1] = digits[sha[i] & 15];
	}
	out[64] = '\0';
}
