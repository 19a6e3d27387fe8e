/* Unit tests for lib/beneath.c: nothing below the directory given is
 * followed if it is a symbolic link, nothing is opened if it is a FIFO,
 * and nothing outside it changes. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "error.h"
#include "lock.h"

#include "tmpdir.h"

/* base/dest (the directory under test) and base/outside, which a link
 * points to: it holds "victim", whose content must never change. */
static char outside[128], victim[160];
static int top = -1;

static void setup(void)
{
	FILE *f;

	tmpdir_setup();
	snprintf(outside, sizeof outside, "%s/outside", base);
	snprintf(victim, sizeof victim, "%s/victim", outside);
	cr_assert_eq(mkdir(dest, 0700), 0);
	cr_assert_eq(mkdir(outside, 0700), 0);
	cr_assert_not_null(f = fopen(victim, "w"));
	fputs("precious\n", f);
	fclose(f);
	top = beneath_open_top(dest, false);
	cr_assert_geq(top, 0);
}

static void teardown(void)
{
	if (top >= 0)
		close(top);
	tmpdir_teardown();
}

TestSuite(beneath, .init = setup, .fini = teardown);

static void in_dest(const char *rel, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", dest, rel);
}

static void link_at(const char *rel, const char *target)
{
	char path[256];

	in_dest(rel, path, sizeof path);
	cr_assert_eq(symlink(target, path), 0, "%s", path);
}

static void mkdir_at(const char *rel)
{
	char path[256];

	in_dest(rel, path, sizeof path);
	cr_assert_eq(mkdir(path, 0700), 0, "%s", path);
}

static void fifo_at(const char *rel)
{
	char path[256];

	in_dest(rel, path, sizeof path);
	cr_assert_eq(mkfifo(path, 0600), 0, "%s", path);
}

static void expect_victim_intact(void)
{
	char buf[64] = "";
	FILE *f = fopen(victim, "r");
	DIR *d = opendir(outside);
	struct dirent *de;

	cr_assert_not_null(f);
	cr_expect_not_null(fgets(buf, sizeof buf, f));
	fclose(f);
	cr_expect_str_eq(buf, "precious\n");
	cr_assert_not_null(d);
	while ((de = readdir(d)))
		cr_expect(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
				  !strcmp(de->d_name, "victim"),
			  "%s was created in outside/", de->d_name);
	closedir(d);
}

static void expect_fail(int fd, int errnum, const char *what)
{
	int e = errno;

	if (fd >= 0)
		close(fd);
	cr_expect_lt(fd, 0, "%s: opened", what);
	cr_expect_eq(e, errnum, "%s: errno %d (%s), not %d", what, e,
		     strerror(e), errnum);
}

Test(beneath, a_link_is_refused_at_every_level)
{
	/* a -> outside; b/c -> outside; d/e/f -> outside */
	link_at("a", outside);
	mkdir_at("b");
	link_at("b/c", outside);
	mkdir_at("d");
	mkdir_at("d/e");
	link_at("d/e/f", outside);

	expect_fail(beneath_open_dir(top, "a", false), ELOOP, "dir a");
	expect_fail(beneath_open_dir(top, "a", true), ELOOP, "mkdir a");
	expect_fail(beneath_open_dir(top, "a/x", true), ELOOP, "mkdir a/x");
	expect_fail(beneath_open_dir(top, "b/c/x", true), ELOOP, "b/c/x");
	expect_fail(beneath_open_dir(top, "d/e/f", false), ELOOP, "d/e/f");
	expect_fail(beneath_open_file(top, "a/victim", O_RDWR | O_TRUNC, 0),
		    ELOOP, "file a/victim");
	expect_fail(beneath_open_file(top, "b/c/victim", O_RDONLY, 0), ELOOP,
		    "file b/c/victim");
	expect_fail(beneath_open_file(top, "b/c/new",
				      O_WRONLY | O_CREAT | O_EXCL, 0600),
		    ELOOP, "create b/c/new");
	expect_victim_intact();
}

Test(beneath, a_link_as_the_file_itself_is_never_written_through)
{
	link_at("lock", victim);
	expect_fail(beneath_open_file(top, "lock", O_RDWR | O_CREAT, 0600),
		    ELOOP, "O_CREAT");
	expect_fail(beneath_open_file(top, "lock",
				      O_WRONLY | O_CREAT | O_TRUNC, 0600),
		    ELOOP, "O_TRUNC");
	/* A dangling one, too: O_CREAT must not create its target. */
	link_at("dangling", "../outside/created");
	expect_fail(beneath_open_file(top, "dangling",
				      O_WRONLY | O_CREAT, 0600),
		    ELOOP, "dangling");
	expect_victim_intact();
}

Test(beneath, a_fifo_is_never_opened)
{
	int fd;

	fifo_at("state");
	mkdir_at("d");
	fifo_at("d/chain");
	/* Each of these would block forever if the FIFO were opened. */
	expect_fail(beneath_open_file(top, "state", O_RDONLY, 0), ENXIO,
		    "read");
	expect_fail(beneath_open_file(top, "state", O_WRONLY, 0), ENXIO,
		    "write");
	expect_fail(beneath_open_file(top, "state", O_RDWR | O_CREAT, 0600),
		    ENXIO, "rdwr");
	expect_fail(beneath_open_file(top, "d/chain", O_RDONLY, 0), ENXIO,
		    "below");
	expect_fail(beneath_open_dir(top, "state", false), ENXIO, "as dir");
	/* The name is taken: an exclusive create fails as usual. */
	expect_fail(beneath_open_file(top, "state",
				      O_WRONLY | O_CREAT | O_EXCL, 0600),
		    EEXIST, "excl");
	fd = beneath_open_file(top, "d/fresh", O_WRONLY | O_CREAT | O_EXCL,
			       0600);
	cr_expect_geq(fd, 0, "%s", strerror(errno));
	/* Opened in blocking mode after the check. */
	cr_expect_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
}

Test(beneath, a_fifo_as_the_destination_file)
{
	char path[256];

	in_dest("export.tar", path, sizeof path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	expect_fail(beneath_open_top_file(path), ENXIO, "fifo");
	expect_fail(beneath_open_top_file(dest), EISDIR, "dir");
	link_at("v.tar", victim);
	in_dest("v.tar", path, sizeof path);
	/* The destination's own name may be a link: the user gave it. */
	int fd = beneath_open_top_file(path);
	cr_expect_geq(fd, 0);
	close(fd);
}

Test(beneath, wrong_kinds_and_escapes)
{
	FILE *f;
	char path[256];

	in_dest("file", path, sizeof path);
	cr_assert_not_null(f = fopen(path, "w"));
	fclose(f);
	mkdir_at("dir");
	expect_fail(beneath_open_dir(top, "file", false), ENOTDIR, "file");
	expect_fail(beneath_open_dir(top, "file/x", true), ENOTDIR, "file/x");
	expect_fail(beneath_open_file(top, "dir", O_RDONLY, 0), EISDIR, "dir");
	expect_fail(beneath_open_dir(top, "..", false), EINVAL, "..");
	expect_fail(beneath_open_dir(top, "dir/../..", false), EINVAL,
		    "dir/../..");
	expect_fail(beneath_open_dir(top, "/etc", false), EINVAL, "/etc");
	expect_fail(beneath_open_file(top, "/etc/passwd", O_RDONLY, 0),
		    EINVAL, "/etc/passwd");
	expect_fail(beneath_open_file(top, "", O_RDONLY, 0), EINVAL, "''");
	expect_fail(beneath_open_file(top, "dir/.", O_RDONLY, 0), EINVAL,
		    "dir/.");
}

Test(beneath, creates_durably_and_privately)
{
	struct stat sb;
	char path[256];
	const char *b;
	int fd;

	fd = beneath_open_dir(top, "a/b//c/", true);
	cr_assert_geq(fd, 0, "%s", strerror(errno));
	close(fd);
	in_dest("a/b/c", path, sizeof path);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect(S_ISDIR(sb.st_mode));
	cr_expect_eq(sb.st_mode & 0777, 0700);
	fd = beneath_open_parent(top, "x/y/z.idx", true, &b);
	cr_assert_geq(fd, 0);
	cr_expect_str_eq(b, "z.idx");
	close(fd);
	in_dest("x/y", path, sizeof path);
	cr_expect_eq(stat(path, &sb), 0);
	fd = beneath_open_dir(top, "", false);
	cr_expect_geq(fd, 0);
	close(fd);
}

Test(beneath, the_top_may_be_a_link)
{
	char link[256], inside[300];
	struct stat sb;
	int fd;

	snprintf(link, sizeof link, "%s/link", base);
	cr_assert_eq(symlink(dest, link), 0);
	fd = beneath_open_top(link, false);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(inside, sizeof inside, "%s/new/deeper", link);
	fd = beneath_open_top(inside, true);
	cr_assert_geq(fd, 0, "%s", strerror(errno));
	close(fd);
	in_dest("new/deeper", inside, sizeof inside);
	cr_expect_eq(stat(inside, &sb), 0);
}

Test(beneath, culprit_names_the_first_odd_component)
{
	mkdir_at("a");
	link_at("a/b", outside);
	fifo_at("f");
	cr_expect_eq(beneath_culprit(top, "a/b/cur/x"), strlen("a/b"));
	cr_expect_eq(beneath_culprit(top, "f/x"), strlen("f"));
	cr_expect_eq(beneath_culprit(top, "a"), strlen("a"));
}

Test(beneath, error_text_says_what_was_refused)
{
	cr_expect_not_null(strstr(isnap_strerror(ELOOP), "symbolic link"));
	cr_expect_not_null(strstr(isnap_strerror(ENXIO), "FIFO"));
	cr_expect_str_eq(isnap_strerror(ENOENT), strerror(ENOENT));
}

Test(beneath, lock_through_a_link_or_a_hard_link)
{
	struct isnap_error err = { 0 };
	char path[256];
	int fd = -1;

	link_at("lock", victim);
	cr_expect_eq(lock_acquire(top, dest, &fd, &err), ISNAP_ELOCAL);
	cr_expect_eq(fd, -1);
	cr_expect_not_null(strstr(err.msg, "symbolic link"), "%s", err.msg);
	in_dest("lock", path, sizeof path);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(link(victim, path), 0);
	cr_expect_eq(lock_acquire(top, dest, &fd, &err), ISNAP_ELOCAL);
	cr_expect_not_null(strstr(err.msg, "hard link"), "%s", err.msg);
	expect_victim_intact();
	cr_assert_eq(unlink(path), 0);
	cr_expect_eq(lock_acquire(top, dest, &fd, &err), ISNAP_OK, "%s",
		     err.msg);
	lock_release(fd);
}
