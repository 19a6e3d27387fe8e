/* beneath.c — see beneath.h. */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* errno for what is at dir/name, which could not be opened as the kind
 * asked for: ELOOP, ENXIO, ENOTDIR or EISDIR as beneath.h says; `fallback`
 * when it cannot be told (it vanished meanwhile, say). */
static int why_not(int dir, const char *name, bool want_dir, int fallback)
{
	struct stat sb;

	if (fstatat(dir, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return fallback;
	if (S_ISLNK(sb.st_mode))
		return ELOOP;
	if (S_ISDIR(sb.st_mode))
		return want_dir ? fallback : EISDIR;
	if (S_ISREG(sb.st_mode))
		return want_dir ? ENOTDIR : fallback;
	return ENXIO;
}

static int fail(int fd, int errnum)
{
	if (fd >= 0)
		close(fd);
	errno = errnum;
	return -1;
}

/* fsync a directory; EINVAL means the filesystem cannot sync directories
 * (some FUSE and network filesystems), where nothing more can be done. */
static int sync_dir(int fd)
{
	return fsync(fd) != 0 && errno != EINVAL ? -1 : 0;
}

/* The next component of *p into comp (NUL-terminated), skipping empty
 * and "." ones, refusing ".." unless `dotdot` (a path the user gave);
 * 0 at the end, 1 for a component, -1 with errno. */
static int next_component(const char **p, char comp[NAME_MAX + 1],
			  bool dotdot)
{
	for (;;) {
		const char *s = *p;
		size_t len;

		while (*s == '/')
			s++;
		if (!*s) {
			*p = s;
			return 0;
		}
		len = strcspn(s, "/");
		*p = s + len;
		if (len == 1 && s[0] == '.')
			continue;
		if (len == 2 && s[0] == '.' && s[1] == '.' && !dotdot) {
			errno = EINVAL;
			return -1;
		}
		if (len > NAME_MAX) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, s, len);
		comp[len] = '\0';
		return 1;
	}
}

/* One directory below `dir`: made first when `create`, then opened,
 * following a symbolic link only when `follow`. */
static int step(int dir, const char *name, bool create, bool follow)
{
	int fd;

	if (create) {
		if (mkdirat(dir, name, 0700) == 0) {
			/* The new entry is durable once its parent is. */
			if (sync_dir(dir) != 0)
				return -1;
		} else if (errno != EEXIST) {
			return -1;
		}
	}
	fd = openat(dir, name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC |
			    (follow ? 0 : O_NOFOLLOW));
	if (fd < 0 && !follow && (errno == ENOTDIR || errno == ELOOP))
		errno = why_not(dir, name, true, errno);
	return fd;
}

/* Walk `rel` from `at` (or from "/" for an absolute path when `follow`),
 * stopping before the last component when `stop_before_last`, in which
 * case *last receives it.  Returns the directory reached. */
static int walk(int at, const char *rel, bool create, bool follow,
		bool stop_before_last, char *last)
{
	char comp[NAME_MAX + 1], next[NAME_MAX + 1];
	const char *p = rel;
	int cur, r;

	if (*rel == '/' && !follow) {
		errno = EINVAL;
		return -1;
	}
	cur = openat(*rel == '/' ? AT_FDCWD : at, *rel == '/' ? "/" : ".",
		     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return -1;
	r = next_component(&p, comp, follow);
	while (r > 0) {
		int fd;
		r = next_component(&p, next, follow);
		if (r < 0)
			break;
		if (r == 0 && stop_before_last) {
			memcpy(last, comp, strlen(comp) + 1);
			return cur;
		}
		fd = step(cur, comp, create, follow);
		if (fd < 0)
			return fail(cur, errno);
		close(cur);
		cur = fd;
		if (r > 0)
			memcpy(comp, next, strlen(next) + 1);
	}
	if (r < 0)
		return fail(cur, errno);
	if (stop_before_last)
		return fail(cur, EINVAL); /* no last component */
	return cur;
}

int beneath_open_top(const char *path, bool create)
{
	if (!create)
		return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return walk(AT_FDCWD, path, true, true, false, NULL);
}

/* fd when it is a regular file, now in blocking mode; else closed, -1. */
static int regular_or_close(int fd)
{
	struct stat sb;
	int fl;

	if (fstat(fd, &sb) != 0)
		return fail(fd, errno);
	if (!S_ISREG(sb.st_mode))
		return fail(fd, S_ISDIR(sb.st_mode) ? EISDIR : ENXIO);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
		return fail(fd, errno);
	return fd;
}

int beneath_open_top_file(const char *path)
{
	struct stat sb;
	int fd;

	/* Not even opened when it is plainly no file (a device's open may
	 * do something). */
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		errno = S_ISDIR(sb.st_mode) ? EISDIR : ENXIO;
		return -1;
	}
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	return fd < 0 ? -1 : regular_or_close(fd);
}

int beneath_open_dir(int at, const char *rel, bool create)
{
	return walk(at, rel, create, false, false, NULL);
}

int beneath_open_parent(int at, const char *rel, bool create,
			const char **base)
{
	char last[NAME_MAX + 1];
	const char *slash = strrchr(rel, '/');
	int fd = walk(at, rel, create, false, true, last);

	if (fd < 0)
		return -1;
	*base = slash ? slash + 1 : rel;
	/* "a/b/" or "a/b/.": no name to give renameat and the like. */
	if (strcmp(*base, last) != 0)
		return fail(fd, EINVAL);
	return fd;
}

int beneath_open_file(int at, const char *rel, int flags, mode_t mode)
{
	const char *base = rel;
	int dir = at, fd;
	bool own_dir = strchr(rel, '/') != NULL;
	struct stat sb;

	if (own_dir) {
		dir = beneath_open_parent(at, rel, false, &base);
		if (dir < 0)
			return -1;
	} else if (!*rel || !strcmp(rel, ".") || !strcmp(rel, "..")) {
		errno = EINVAL;
		return -1;
	}
	/* Refuse what is no regular file before opening it, so that a
	 * device's open has no effect; the fstat below closes the race.  An
	 * exclusive create opens nothing that exists: EEXIST, as usual. */
	if ((flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL) &&
	    fstatat(dir, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !S_ISREG(sb.st_mode)) {
		errno = why_not(dir, base, false, EINVAL);
		goto out_fail;
	}
	fd = openat(dir, base,
		    (flags & ~O_TRUNC) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
			    O_CLOEXEC,
		    mode);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENXIO || errno == EISDIR)
			errno = why_not(dir, base, false, errno);
		goto out_fail;
	}
	fd = regular_or_close(fd);
	if (fd < 0)
		goto out_fail;
	/* Truncated only now that it is known to be a regular file. */
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY &&
	    ftruncate(fd, 0) != 0) {
		fail(fd, errno);
		goto out_fail;
	}
	if (own_dir)
		close(dir);
	return fd;
out_fail:
	if (own_dir)
		fail(dir, errno);
	return -1;
}

size_t beneath_culprit(int at, const char *rel)
{
	size_t n = strlen(rel), end = 0;
	char *prefix = strndup(rel, n);

	if (!prefix)
		return n;
	while (end < n) {
		struct stat sb;
		end += strspn(rel + end, "/");
		end += strcspn(rel + end, "/");
		prefix[end] = '\0';
		/* Every component before this one is a directory, so fstatat
		 * follows nothing but what it was asked about. */
		if (fstatat(at, prefix, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(sb.st_mode))
			break;
		prefix[end] = rel[end];
	}
	free(prefix);
	return end;
}
