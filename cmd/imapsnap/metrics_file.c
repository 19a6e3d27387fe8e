/*
 * metrics_file.c — read the --metrics file back, merge this run into it
 * and replace it atomically (see metrics.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "metrics.h"
#include "output.h"

/* The metric the merge carries over; its index in metrics_families. */
#define LAST_SUCCESS "imapsnap_last_success_timestamp_seconds"

/* The directory part of `path` ("." when it has none), malloc'd. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

enum isnap_status metrics_check_path(const char *path,
				     struct isnap_error *err)
{
	struct stat st;
	char *dir;
	bool ok;

	if (!*path)
		return isnap_fail(err, ISNAP_EUSAGE, "--metrics: empty path");
	if (path[strlen(path) - 1] == '/')
		return isnap_fail(err, ISNAP_EUSAGE,
				  "--metrics %s: give a file, not a directory",
				  path);
	if (!(dir = dir_of(path)))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	ok = !stat(dir, &st) && S_ISDIR(st.st_mode);
	if (!ok) {
		isnap_fail_errno(err, ISNAP_EUSAGE,
				 "--metrics %s: the directory %s is not there",
				 path, dir);
		free(dir);
		return ISNAP_EUSAGE;
	}
	free(dir);
	if (!lstat(path, &st) && !S_ISREG(st.st_mode))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "--metrics %s: not a regular file", path);
	return ISNAP_OK;
}

/* The previous file, NUL-terminated; *text stays NULL when there is none. */
static enum isnap_status read_old(const char *path, char **text,
				  struct isnap_error *err)
{
	struct stat st;
	size_t got = 0;
	int fd;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return ISNAP_OK;
		return isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s", path);
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return isnap_fail(err, ISNAP_ELOCAL,
				  "metrics: %s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > METRICS_MAX_FILE) {
		close(fd);
		return isnap_fail(err, ISNAP_ELOCAL,
				  "metrics: %s: larger than %u bytes; not a "
				  "file imapsnap wrote?", path,
				  METRICS_MAX_FILE);
	}
	if (!(*text = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, *text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s",
					 path);
			close(fd);
			free(*text);
			*text = NULL;
			return ISNAP_ELOCAL;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	(*text)[got] = '\0';
	close(fd);
	return ISNAP_OK;
}

static const struct metrics_account *in_run(const struct metrics_account *a,
					    size_t n, const char *account)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(a[i].account, account))
			return &a[i];
	return NULL;
}

struct merge {
	struct metrics_sample *v;
	size_t n;
	double *last_success; /* per account of the run: from the file */
};

static void merge_free(struct merge *m)
{
	for (size_t i = 0; i < m->n; i++)
		metrics_sample_free(&m->v[i]);
	free(m->v);
	free(m->last_success);
}

/* Keep the samples of the accounts not in this run; of those in it,
 * only the last success time.  Lines that are not the format are
 * dropped: the file is rewritten from what could be read. */
static int take_old(struct merge *m, char *text,
		    const struct metrics_account *accts, size_t n)
{
	int last = metrics_family_find(LAST_SUCCESS, strlen(LAST_SUCCESS));

	for (char *line = text, *next; line && *line; line = next) {
		struct metrics_sample s;
		const struct metrics_account *a;
		struct metrics_sample *v;
		int r;

		if ((next = strchr(line, '\n')))
			*next++ = '\0';
		if (strlen(line) > METRICS_MAX_LINE)
			continue;
		if ((r = metrics_parse_line(line, &s)) <= 0)
			continue;
		if ((a = in_run(accts, n, s.account))) {
			if (s.family == last)
				m->last_success[a - accts] =
					strtod(s.value, NULL);
			metrics_sample_free(&s);
			continue;
		}
		if (!(v = realloc(m->v, (m->n + 1) * sizeof *v))) {
			metrics_sample_free(&s);
			return -1;
		}
		m->v = v;
		m->v[m->n++] = s;
	}
	return 0;
}

/* Write `text` to a new file beside `path` and rename it over `path`. */
static enum isnap_status replace(const char *path, const char *text,
				 struct isnap_error *err)
{
	const char *base = strrchr(path, '/');
	char *dir = dir_of(path), *tmp = NULL;
	size_t len = strlen(text), off = 0;
	enum isnap_status st = ISNAP_OK;
	int fd = -1, dfd;

	base = base ? base + 1 : path;
	if (!dir || asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
		tmp = NULL;
		st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s", tmp);
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			st = isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s",
					      tmp);
			goto out;
		}
		off += (size_t)w;
	}
	/* node_exporter runs as its own user and must read the file; it
	 * holds account names and counts, no secrets. */
	if (fchmod(fd, 0644) || fsync(fd)) {
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s", tmp);
		goto out;
	}
	if (close(fd)) {
		fd = -1;
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path)) {
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s", path);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dir);
	return st;
}

enum isnap_status metrics_write(const char *path,
				const struct metrics_account *accts, size_t n,
				struct isnap_error *err)
{
	struct merge m = { 0 };
	enum isnap_status st;
	char *lockpath = NULL, *old = NULL, *text = NULL;
	int lfd = -1;

	if (asprintf(&lockpath, "%s.lock", path) < 0)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lfd < 0 || flock(lfd, LOCK_EX)) {
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "metrics: %s",
				      lockpath);
		goto out;
	}
	if ((st = read_old(path, &old, err)))
		goto out;
	if (!(m.last_success = calloc(n ? n : 1, sizeof *m.last_success)) ||
	    (old && take_old(&m, old, accts, n))) {
		st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		double last = accts[i].exit_status == 0 ? accts[i].end
							: m.last_success[i];
		if (metrics_account_samples(&accts[i], last, &m.v, &m.n)) {
			st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (!(text = metrics_render(m.v, m.n))) {
		st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	st = replace(path, text, err);
out:
	if (lfd >= 0)
		close(lfd); /* releases the lock */
	merge_free(&m);
	free(text);
	free(old);
	free(lockpath);
	return st;
}

int metrics_write_or_complain(const char *path,
			      const struct metrics_account *accts, size_t n,
			      int exit_status)
{
	struct isnap_error err = { 0 };

	if (!metrics_write(path, accts, n, &err))
		return exit_status;
	fprintf(stderr, "%s: error: ", progname);
	out_safe(stderr, err.msg);
	fputc('\n', stderr);
	return exit_status ? exit_status : EXIT_LOCAL;
}
