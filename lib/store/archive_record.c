/* archive_record.c — see archive_record.h. */
#include "store/archive_record.h"
#include "store/archive_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "store/common.h"

#define MAGIC "imapsnap-volume 1\n"
/* A record is small (UID sets are ranges); one this big is not ours. */
#define RECORD_MAX (64u << 20)

/* ---------------------------------------------------------------------- */
/* One record                                                              */

static struct volume_folder *folder_of(struct volume_record *r,
				       const char *path, uint32_t uidvalidity,
				       bool create)
{
	struct volume_folder *f;

	/* The folder last added first: messages come folder by folder. */
	for (size_t i = r->n; i-- > 0;)
		if (r->f[i].uidvalidity == uidvalidity &&
		    !strcmp(r->f[i].path, path))
			return &r->f[i];
	if (!create)
		return NULL;
	if (r->n == r->alloc) {
		size_t a = r->alloc ? 2 * r->alloc : 8;
		struct volume_folder *v = realloc(r->f, a * sizeof *v);
		if (!v)
			return NULL;
		r->f = v;
		r->alloc = a;
	}
	f = &r->f[r->n];
	memset(f, 0, sizeof *f);
	f->uids = (struct uidset)UIDSET_INIT;
	f->uidvalidity = uidvalidity;
	if (!(f->path = strdup(path)))
		return NULL;
	r->n++;
	return f;
}

int volume_record_add(struct volume_record *r, const char *path,
		      uint32_t uidvalidity, uint32_t uid)
{
	struct volume_folder *f = folder_of(r, path, uidvalidity, true);

	return f && uidset_add(&f->uids, uid) == 0 ? 0 : -1;
}

void volume_record_free(struct volume_record *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].path);
		uidset_free(&r->f[i].uids);
	}
	free(r->f);
	memset(r, 0, sizeof *r);
}

static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 4096;
		char *b;
		while (c < *len + n + 1)
			c *= 2;
		if (!(b = realloc(*buf, c)))
			return -1;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	return 0;
}

static char *format_record(const struct volume_record *r, uint64_t size,
			   size_t *len)
{
	char *buf = NULL, line[64];
	size_t cap = 0;
	int bad;

	*len = 0;
	snprintf(line, sizeof line, "size %" PRIu64 "\n", size);
	bad = put(&buf, len, &cap, MAGIC, strlen(MAGIC)) ||
	      put(&buf, len, &cap, line, strlen(line));
	for (size_t i = 0; !bad && i < r->n; i++) {
		char *set = NULL;
		if (uidset_empty(&r->f[i].uids))
			continue;
		snprintf(line, sizeof line, "folder %" PRIu32 " ",
			 r->f[i].uidvalidity);
		bad = put(&buf, len, &cap, line, strlen(line)) ||
		      put(&buf, len, &cap, r->f[i].path,
			  strlen(r->f[i].path)) ||
		      put(&buf, len, &cap, "\nsaved ", 7) ||
		      uidset_format(&r->f[i].uids, &set) != 0 ||
		      put(&buf, len, &cap, set, strlen(set)) ||
		      put(&buf, len, &cap, "\n", 1);
		free(set);
	}
	if (!bad)
		bad = put(&buf, len, &cap, "end\n", 4);
	if (bad) {
		free(buf);
		return NULL;
	}
	return buf;
}

enum isnap_status volume_record_write(int dest_fd, const char *dest,
				      const char *volume, uint64_t size,
				      const struct volume_record *r,
				      struct isnap_error *err)
{
	size_t len, done = 0;
	char *text = format_record(r, size, &len);
	char tmp[4200];
	int dir = -1, fd = -1;
	enum isnap_status rc = ISNAP_OK;

	if (!text)
		return store_oom(err);
	snprintf(tmp, sizeof tmp, ".%s.tmp", volume);
	dir = beneath_open_dir(dest_fd, VOLUME_RECORD_DIR, true);
	if (dir >= 0)
		fd = beneath_open_file(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC,
				       0600);
	while (fd >= 0 && done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (fd < 0 || done < len || fsync(fd) != 0 ||
	    renameat(dir, tmp, dir, volume) != 0 || fsync(dir) != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%swriting %s/%s/%s",
				      store_space_hint(errno), dest,
				      VOLUME_RECORD_DIR, volume);
	if (rc && dir >= 0)
		unlinkat(dir, tmp, 0);
	if (fd >= 0)
		close(fd);
	if (dir >= 0)
		close(dir);
	free(text);
	return rc;
}

void volume_record_remove(int dest_fd, const char *volume)
{
	int dir = beneath_open_dir(dest_fd, VOLUME_RECORD_DIR, false);

	if (dir >= 0) {
		unlinkat(dir, volume, 0);
		close(dir);
	}
}

/* Parse a whole record; -1 when it is not one. */
static int parse_record(char *text, size_t len, struct volume_record *r)
{
	char *p = text, *end = text + len;
	struct volume_folder *cur = NULL;
	bool ended = false, sized = false;

	if (len < strlen(MAGIC) || memcmp(text, MAGIC, strlen(MAGIC)))
		return -1;
	p += strlen(MAGIC);
	while (p < end && !ended) {
		char *lf = memchr(p, '\n', (size_t)(end - p));
		uint64_t v;
		char *q;
		if (!lf)
			return -1;
		*lf = '\0';
		if (!strncmp(p, "size ", 5)) {
			errno = 0;
			v = strtoull(p + 5, &q, 10);
			if (errno || *q || q == p + 5)
				return -1;
			r->size = v;
			sized = true;
		} else if (!strncmp(p, "folder ", 7)) {
			errno = 0;
			v = strtoull(p + 7, &q, 10);
			if (errno || *q != ' ' || !v || v > UINT32_MAX ||
			    !q[1])
				return -1;
			cur = folder_of(r, q + 1, (uint32_t)v, true);
			if (!cur)
				return -1;
		} else if (!strncmp(p, "saved ", 6) && cur) {
			if (uidset_parse(&cur->uids, p + 6, strlen(p + 6)))
				return -1;
		} else if (!strcmp(p, "end")) {
			ended = true;
		} else {
			return -1;
		}
		p = lf + 1;
	}
	return ended && sized && p == end ? 0 : -1;
}

static int read_record(int dir, const char *name, struct volume_record *r)
{
	int fd = beneath_open_file(dir, name, O_RDONLY, 0);
	struct stat sb;
	char *text;
	size_t done = 0;
	int rc = -1;

	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) != 0 || sb.st_size > RECORD_MAX ||
	    !(text = malloc((size_t)sb.st_size + 1))) {
		close(fd);
		return -1;
	}
	while (done < (size_t)sb.st_size) {
		ssize_t n = read(fd, text + done, (size_t)sb.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done == (size_t)sb.st_size)
		rc = parse_record(text, done, r);
	free(text);
	close(fd);
	if (rc)
		volume_record_free(r);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Every volume                                                            */

/* Move dest_fd/name to DAMAGED_DIR/<name><suffix> (another name when
 * that one is taken): kept, out of the way. */
static int move_aside(int dest_fd, int from_dir, const char *name,
		      const char *suffix)
{
	int dir = beneath_open_dir(dest_fd, DAMAGED_DIR, true), rc = -1;
	char to[4300];

	if (dir < 0)
		return -1;
	for (int i = 0; i < 1000 && rc != 0; i++) {
		snprintf(to, sizeof to, "%s%s%s%.0d", name, suffix,
			 i ? "." : "", i);
		rc = renameat2(from_dir, name, dir, to, RENAME_NOREPLACE);
		if (rc != 0 && errno != EEXIST)
			break;
	}
	if (rc == 0 && (fsync(dir) != 0 || fsync(from_dir) != 0))
		rc = -1;
	close(dir);
	return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls > lx && !strcmp(s + ls - lx, suffix);
}

/* A volume written before records were kept: its entries' names tell
 * what it holds.  0, or -1 when it cannot be read whole. */
static int record_from_volume(int dest_fd, const char *name,
			      const struct archive_kind *kind,
			      struct volume_record *r)
{
	const char *why;
	struct archive *a = archive_kind_reader(kind, &why);
	struct archive_entry *e;
	locale_t saved;
	int fd, arc, rc = 0;

	if (!a)
		return -1;
	fd = store_open_regular(dest_fd, name);
	if (fd < 0) {
		archive_read_free(a);
		return -1;
	}
	saved = archive_kind_utf8_begin();
	if (archive_read_open_fd(a, fd, 10240) != ARCHIVE_OK)
		rc = -1;
	while (!rc && (arc = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
		const char *path, *cur, *rest;
		uint32_t uv, uid;
		if (arc != ARCHIVE_OK && arc != ARCHIVE_WARN) {
			rc = -1;
			break;
		}
		path = archive_kind_get_path(kind, e);
		cur = path ? strstr(path, "/cur/") : NULL;
		while (cur && strstr(cur + 1, "/cur/"))
			cur = strstr(cur + 1, "/cur/");
		if (cur && archive_entry_filetype(e) == AE_IFREG &&
		    store_parse_message_name(cur + 5, &uv, &uid, &rest) &&
		    (*rest == '\0' || *rest == ':')) {
			char *folder = strndup(path, (size_t)(cur - path));
			if (!folder || volume_record_add(r, folder, uv, uid))
				rc = -1;
			free(folder);
		}
		if (!rc && archive_read_data_skip(a) != ARCHIVE_OK)
			rc = -1;
	}
	archive_read_free(a);
	archive_kind_utf8_end(saved);
	close(fd);
	return rc;
}

static int push(struct volume_records *rs, size_t *alloc,
		struct volume_record *r)
{
	if (rs->n == *alloc) {
		size_t a = *alloc ? 2 * *alloc : 16;
		struct volume_record *v = realloc(rs->v, a * sizeof *v);
		if (!v)
			return -1;
		rs->v = v;
		*alloc = a;
	}
	rs->v[rs->n++] = *r;
	return 0;
}

static bool listed(const struct store_dirent *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return true;
	return false;
}

enum isnap_status volume_records_load(int dest_fd, const char *dest,
				      const struct archive_kind *kind,
				      struct volume_records *out,
				      struct isnap_error *err)
{
	struct store_dirent *recs = NULL, *top = NULL;
	size_t nrecs = 0, ntop = 0, alloc = 0;
	enum isnap_status rc = ISNAP_OK;
	int dir = beneath_open_dir(dest_fd, VOLUME_RECORD_DIR, false);

	memset(out, 0, sizeof *out);
	if (dir < 0 && errno != ENOENT)
		return store_fail_path(err, dest, dest_fd, VOLUME_RECORD_DIR);
	if (dir >= 0 && store_list_dir(dir, "", &recs, &nrecs) != 0) {
		close(dir);
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/%s",
					dest, VOLUME_RECORD_DIR);
	}
	if (store_list_dir(dest_fd, "", &top, &ntop) != 0) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s", dest);
		goto out;
	}
	for (size_t i = 0; !rc && i < nrecs; i++) {
		struct volume_record r = { 0 };
		struct stat sb;
		const char *name = recs[i].name;
		if (name[0] == '.' || recs[i].type != DT_REG ||
		    read_record(dir, name, &r) != 0)
			continue; /* not a record: the volume is read again */
		if (fstatat(dest_fd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno != ENOENT) {
				volume_record_free(&r);
				rc = store_fail_path(err, dest, dest_fd, name);
				break;
			}
			out->gone++;
		} else if (S_ISREG(sb.st_mode) &&
			   (uint64_t)sb.st_size == r.size) {
			r.intact = true;
		} else {
			/* Damaged: kept aside with its record, its
			 * messages fetched again into a new volume. */
			if (move_aside(dest_fd, dest_fd, name, "") != 0 ||
			    move_aside(dest_fd, dir, name, ".record") != 0) {
				volume_record_free(&r);
				rc = isnap_fail_errno(err, ISNAP_ELOCAL,
						      "moving the damaged "
						      "volume %s/%s to %s",
						      dest, name, DAMAGED_DIR);
				break;
			}
			out->damaged++;
			volume_record_free(&r);
			continue;
		}
		if (push(out, &alloc, &r)) {
			volume_record_free(&r);
			rc = store_oom(err);
		}
	}
	/* Volumes without a record. */
	for (size_t i = 0; !rc && i < ntop; i++) {
		struct volume_record r = { 0 };
		struct stat sb;
		const char *name = top[i].name;
		if (name[0] == '.' || top[i].type != DT_REG ||
		    !ends_with(name, kind->ext) || listed(recs, nrecs, name))
			continue;
		if (fstatat(dest_fd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (record_from_volume(dest_fd, name, kind, &r) != 0) {
			volume_record_free(&r);
			if (move_aside(dest_fd, dest_fd, name, "") != 0) {
				rc = isnap_fail_errno(err, ISNAP_ELOCAL,
						      "moving the damaged "
						      "volume %s/%s to %s",
						      dest, name, DAMAGED_DIR);
				break;
			}
			out->damaged++;
			continue;
		}
		r.size = (uint64_t)sb.st_size;
		r.intact = true;
		rc = volume_record_write(dest_fd, dest, name, r.size, &r, err);
		if (!rc && push(out, &alloc, &r))
			rc = store_oom(err);
		if (rc)
			volume_record_free(&r);
	}
out:
	store_dirents_free(recs, nrecs);
	store_dirents_free(top, ntop);
	if (dir >= 0)
		close(dir);
	if (rc)
		volume_records_free(out);
	return rc;
}

int volume_records_held(const struct volume_records *rs, const char *path,
			uint32_t uidvalidity, struct uidset *held)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct volume_folder *f;
		if (!rs->v[i].intact)
			continue;
		f = folder_of(&rs->v[i], path, uidvalidity, false);
		if (f && uidset_add_set(held, &f->uids))
			return -1;
	}
	return 0;
}

void volume_records_free(struct volume_records *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		volume_record_free(&rs->v[i]);
	free(rs->v);
	memset(rs, 0, sizeof *rs);
}
