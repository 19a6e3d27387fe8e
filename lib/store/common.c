/* common.c — see common.h. */
#include "store/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "fsname.h"

enum isnap_status store_oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

const char *store_space_hint(int errnum)
{
	if (errnum == ENOSPC)
		return "the destination is full: ";
	if (errnum == EDQUOT)
		return "over the disk quota: ";
	return "";
}

enum isnap_status store_path_status(int errnum)
{
	switch (errnum) {
	case ENAMETOOLONG:
	case ENOTDIR:
	case ELOOP:  /* a symbolic link (beneath.h) */
	case ENXIO:  /* a FIFO, socket or device */
	case EISDIR:
	case EINVAL:
	case EEXIST:
		return ISNAP_EFOLDER;
	default:
		return ISNAP_ELOCAL;
	}
}

enum isnap_status store_fail_path(struct isnap_error *err, const char *shown,
				  int at, const char *rel)
{
	int e = errno;
	size_t n = strlen(rel);

	if (e == ELOOP || e == ENXIO || e == ENOTDIR || e == EISDIR)
		n = beneath_culprit(at, rel);
	errno = e;
	return isnap_fail_errno(err, store_path_status(e), "%s%s%s%.*s",
				store_space_hint(e), shown, n ? "/" : "",
				(int)n, rel);
}

const char *store_printable(const char *name, char *buf, size_t size)
{
	size_t o = 0;

	for (const char *p = name; *p && o + 1 < size; p++)
		buf[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	buf[o] = '\0';
	return buf;
}

/* fsname never produces an absolute path or a "." or ".." component; refuse
 * one anyway, since a mistake there would write outside the destination. */
static bool path_is_safe(const char *path)
{
	const char *p = path;

	if (*p == '\0' || *p == '/')
		return false;
	while (*p) {
		size_t len = strcspn(p, "/");
		if (len == 0 || (len == 2 && p[0] == '.' && p[1] == '.') ||
		    (len == 1 && p[0] == '.'))
			return false;
		p += len;
		if (*p == '/')
			p++;
	}
	return true;
}

enum isnap_status store_folder_path(const struct store_folder *f, char **path,
				    struct isnap_error *err)
{
	const char *name = f->utf8 ? f->utf8 : f->name;
	char shown[128];

	*path = NULL;
	if (fsname_folder_path(name, f->delim, path))
		return errno == ENOMEM
			       ? store_oom(err)
			       : isnap_fail_errno(err, ISNAP_EFOLDER,
						  "no path for folder \"%s\"",
						  store_printable(name, shown,
								  sizeof shown));
	if (!path_is_safe(*path)) {
		free(*path);
		*path = NULL;
		return isnap_fail(err, ISNAP_EFOLDER,
				  "refusing an unsafe path for folder \"%s\"",
				  store_printable(name, shown, sizeof shown));
	}
	return ISNAP_OK;
}

static int cmp_dirent(const void *a, const void *b)
{
	const struct store_dirent *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void store_dirents_free(struct store_dirent *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static unsigned char entry_type(int dirfd, const struct dirent *de)
{
	struct stat sb;

	switch (de->d_type) {
	case DT_REG:
	case DT_DIR:
	case DT_LNK:
		return de->d_type;
	case DT_UNKNOWN:
		break;
	default:
		return DT_UNKNOWN;
	}
	/* Some filesystems do not fill d_type. */
	if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return DT_UNKNOWN;
	if (S_ISREG(sb.st_mode))
		return DT_REG;
	if (S_ISDIR(sb.st_mode))
		return DT_DIR;
	if (S_ISLNK(sb.st_mode))
		return DT_LNK;
	return DT_UNKNOWN;
}

int store_list_dir(int at, const char *rel, struct store_dirent **out,
		   size_t *n)
{
	int fd = beneath_open_dir(at, rel, false);
	struct store_dirent *v = NULL;
	size_t count = 0, alloc = 0;
	struct dirent *de;
	DIR *d;
	int saved;

	*out = NULL;
	*n = 0;
	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (!d) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (count == alloc) {
			size_t na = alloc ? 2 * alloc : 64;
			struct store_dirent *nv = realloc(v, na * sizeof *nv);
			if (!nv) {
				errno = ENOMEM;
				break;
			}
			v = nv;
			alloc = na;
		}
		v[count].name = strdup(de->d_name);
		if (!v[count].name) {
			errno = ENOMEM;
			break;
		}
		v[count].type = entry_type(dirfd(d), de);
		count++;
	}
	saved = errno;
	closedir(d);
	if (saved) {
		store_dirents_free(v, count);
		errno = saved;
		return -1;
	}
	if (count)
		qsort(v, count, sizeof *v, cmp_dirent);
	*out = v;
	*n = count;
	return 0;
}

char *store_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (!s)
		return NULL;
	if (la) {
		memcpy(s, a, la);
		s[la++] = '/';
	}
	memcpy(s + la, b, lb + 1);
	return s;
}

int store_open_regular(int dirfd, const char *rel)
{
	return beneath_open_file(dirfd, rel, O_RDONLY, 0);
}

bool store_not_a_file(int errnum)
{
	return errnum == ELOOP || errnum == ENXIO || errnum == EISDIR;
}

void store_feed_start(struct store_feed *f, const struct store_scan_cb *cb)
{
	uint64_t limit = cb->limit ? cb->limit(cb->ctx) : UINT64_MAX;

	f->cb = cb;
	f->left = limit == UINT64_MAX ? UINT64_MAX : limit + 1;
}

enum isnap_status store_feed(struct store_feed *f, const void *p, size_t n,
			     struct isnap_error *err)
{
	if ((uint64_t)n > f->left)
		n = (size_t)f->left;
	if (!n)
		return ISNAP_OK;
	if (f->left != UINT64_MAX)
		f->left -= n;
	return f->cb->data(f->cb->ctx, p, n, err);
}

bool store_feed_full(const struct store_feed *f)
{
	return f->left == 0;
}

enum isnap_status store_feed_file(int fd, const char *what,
				  const struct store_scan_cb *cb,
				  struct isnap_error *err)
{
	char *buf = malloc(STORE_CHUNK);
	enum isnap_status rc = ISNAP_OK;
	struct store_feed f;

	if (!buf)
		return store_oom(err);
	store_feed_start(&f, cb);
	while (!store_feed_full(&f)) {
		ssize_t n = read(fd, buf, STORE_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s",
					      what);
			break;
		}
		if (n == 0)
			break;
		rc = store_feed(&f, buf, (size_t)n, err);
		if (rc)
			break;
	}
	free(buf);
	return rc;
}

enum isnap_status store_scan_unreadable(const struct store_scan_cb *cb,
					const char *location,
					enum isnap_status rc,
					struct isnap_error *err)
{
	char why[ISNAP_ERROR_MAX];

	if (!cb->unreadable || rc == ISNAP_ENOMEM)
		return rc;
	snprintf(why, sizeof why, "%s", err->msg);
	isnap_error_clear(err);
	return cb->unreadable(cb->ctx, location, why, err);
}

enum isnap_status store_scan_stray(const struct store_scan_cb *cb,
				   const char *path, const char *what,
				   bool leftover, struct isnap_error *err)
{
	return cb->stray ? cb->stray(cb->ctx, path, what, leftover, err)
			 : ISNAP_OK;
}

const char *store_type_name(int dirfd, const char *rel, unsigned char type)
{
	struct stat sb;

	switch (type) {
	case DT_REG: return "a file";
	case DT_DIR: return "a directory";
	case DT_LNK: return "a symbolic link";
	default: break;
	}
	if (fstatat(dirfd, rel, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return "something that cannot be examined";
	if (S_ISFIFO(sb.st_mode))
		return "a FIFO";
	if (S_ISSOCK(sb.st_mode))
		return "a socket";
	if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode))
		return "a device";
	return "neither a file nor a directory";
}

bool store_dir_has_entries(int dirfd, const char *rel)
{
	int fd = beneath_open_dir(dirfd, rel, false);
	struct dirent *de;
	bool any = false;
	DIR *d;

	if (fd < 0)
		return true;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return true;
	}
	while (!any && (de = readdir(d)) != NULL)
		any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return any;
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

bool store_parse_message_name(const char *name, uint32_t *uidvalidity,
			      uint32_t *uid, const char **rest)
{
	static const char suffix[] = ".imapsnap";
	const char *p = name;

	if (!parse_u32(&p, uidvalidity) || *p++ != '_' || !parse_u32(&p, uid))
		return false;
	if (strncmp(p, suffix, sizeof suffix - 1) != 0)
		return false;
	*rest = p + sizeof suffix - 1;
	return true;
}
