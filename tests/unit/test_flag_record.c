/* Unit tests for lib/flag_record.c and lib/flag_record_file.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flag_record.h"
#include "store/store.h"
#include "tmpdir.h"

TestSuite(flag_record, .init = tmpdir_setup, .fini = tmpdir_teardown);

static struct flag_record *fresh(void)
{
	struct flag_record *fr = flag_record_new(77);

	cr_assert_not_null(fr);
	return fr;
}

static void apply(struct flag_record *fr, const uint32_t *uids, size_t n,
		  uint32_t set)
{
	struct flag_changes c = { 0 };

	for (size_t i = 0; i < n; i++)
		cr_assert_eq(flag_changes_add(&c, uids[i], set), 0);
	flag_changes_sort(&c);
	cr_assert_eq(flag_record_apply(fr, &c), 0);
	flag_changes_free(&c);
}

static void apply_range(struct flag_record *fr, uint32_t a, uint32_t b,
			uint32_t set)
{
	struct flag_changes c = { 0 };

	for (uint64_t u = a; u <= b; u++)
		cr_assert_eq(flag_changes_add(&c, (uint32_t)u, set), 0);
	cr_assert_eq(flag_record_apply(fr, &c), 0);
	flag_changes_free(&c);
}

Test(flag_record, sets_are_the_same_whatever_the_order_case_and_repeats)
{
	struct flag_record *fr = fresh();
	uint32_t a = flag_record_intern(fr, STORE_FLAG_SEEN, "$Work Later");
	uint32_t b = flag_record_intern(fr, STORE_FLAG_SEEN,
					"later  $work Later");
	uint32_t c = flag_record_intern(fr, STORE_FLAG_SEEN, "$Work");
	uint32_t d = flag_record_intern(fr, STORE_FLAG_FLAGGED, "$Work Later");
	const char *kw;

	cr_assert_neq(a, FLAG_RECORD_NONE);
	cr_expect_eq(a, b);
	cr_expect_neq(a, c);
	cr_expect_neq(a, d);
	cr_expect_eq(flag_record_flags(fr, a, &kw), STORE_FLAG_SEEN);
	/* Sorted, case ignored; the spelling given first stays. */
	cr_expect_str_eq(kw, "$Work Later");
	cr_expect_eq(flag_record_intern(fr, 0, ""),
		     flag_record_intern(fr, 0, NULL));
	cr_expect_eq(flag_record_sets(fr), 4);
	flag_record_free(fr);
}

Test(flag_record, too_many_sets_are_refused)
{
	struct flag_record *fr = fresh();
	char kw[32];
	uint32_t id = 0;

	for (unsigned i = 0; i < FLAG_RECORD_SETS_MAX; i++) {
		snprintf(kw, sizeof kw, "k%u", i);
		id = flag_record_intern(fr, 0, kw);
		cr_assert_neq(id, FLAG_RECORD_NONE, "set %u", i);
	}
	errno = 0;
	cr_expect_eq(flag_record_intern(fr, 0, "one more"), FLAG_RECORD_NONE);
	cr_expect_eq(errno, E2BIG);
	/* A set already known is still found. */
	cr_expect_eq(flag_record_intern(fr, 0, "k5"), 5);
	flag_record_free(fr);
}

Test(flag_record, changes_split_and_join_runs)
{
	struct flag_record *fr = fresh();
	uint32_t seen = flag_record_intern(fr, STORE_FLAG_SEEN, "");
	uint32_t flagged = flag_record_intern(fr, STORE_FLAG_FLAGGED, "");
	static const uint32_t mid[] = { 5 }, ends[] = { 1, 10 };

	apply_range(fr, 1, 10, seen);
	cr_expect_eq(flag_record_runs(fr), 1);
	cr_expect_eq(flag_record_count(fr), 10);
	apply(fr, mid, 1, flagged);
	cr_expect_eq(flag_record_runs(fr), 3);
	cr_expect_eq(flag_record_get(fr, 4), seen);
	cr_expect_eq(flag_record_get(fr, 5), flagged);
	cr_expect_eq(flag_record_get(fr, 6), seen);
	apply(fr, ends, 2, flagged);
	cr_expect_eq(flag_record_runs(fr), 5);
	apply(fr, mid, 1, seen);
	cr_expect_eq(flag_record_runs(fr), 3);
	cr_expect_eq(flag_record_get(fr, 1), flagged);
	cr_expect_eq(flag_record_get(fr, 10), flagged);
	cr_expect_eq(flag_record_get(fr, 11), FLAG_RECORD_NONE);
	cr_expect_eq(flag_record_get(fr, 0), FLAG_RECORD_NONE);
	cr_expect_eq(flag_record_count(fr), 10);
	flag_record_free(fr);
}

Test(flag_record, gaps_stay_out_and_the_last_uid_works)
{
	struct flag_record *fr = fresh();
	uint32_t seen = flag_record_intern(fr, STORE_FLAG_SEEN, "");
	static const uint32_t some[] = { 3, 1, 7, UINT32_MAX, UINT32_MAX - 1 };

	apply(fr, some, 5, seen);
	/* 1, 3, 7 and the last two: gaps are no part of the record. */
	cr_expect_eq(flag_record_runs(fr), 4);
	cr_expect_eq(flag_record_get(fr, 2), FLAG_RECORD_NONE);
	cr_expect_eq(flag_record_get(fr, UINT32_MAX), seen);
	cr_expect_eq(flag_record_count(fr), 5);
	flag_record_free(fr);
}

Test(flag_record, the_last_change_of_a_uid_wins)
{
	struct flag_record *fr = fresh();
	uint32_t a = flag_record_intern(fr, STORE_FLAG_SEEN, "");
	uint32_t b = flag_record_intern(fr, 0, "");
	struct flag_changes c = { 0 };

	flag_changes_add(&c, 9, a);
	flag_changes_add(&c, 2, a);
	flag_changes_add(&c, 9, b);
	flag_changes_add(&c, 2, b);
	flag_changes_add(&c, 2, a);
	flag_changes_sort(&c);
	cr_assert_eq(c.n, 2);
	cr_expect_eq(c.v[0].uid, 2);
	cr_expect_eq(c.v[0].set, a);
	cr_expect_eq(c.v[1].uid, 9);
	cr_expect_eq(c.v[1].set, b);
	flag_changes_free(&c);
	flag_record_free(fr);
}

Test(flag_record, staged_uids_count_once_committed)
{
	struct flag_record *fr = fresh();
	uint32_t a = flag_record_intern(fr, STORE_FLAG_SEEN, "");
	struct uidset done = UIDSET_INIT;

	for (uint32_t u = 1; u <= 6; u++)
		cr_assert_eq(flag_record_stage(fr, u, a), 0);
	cr_expect_eq(flag_record_get(fr, 1), FLAG_RECORD_NONE);
	uidset_add_range(&done, 2, 4);
	uidset_add(&done, 9);
	cr_expect_eq(flag_record_commit(fr, &done), 3);
	cr_expect_eq(flag_record_get(fr, 1), FLAG_RECORD_NONE);
	cr_expect_eq(flag_record_get(fr, 3), a);
	cr_expect_eq(flag_record_count(fr), 3);
	/* Committed once: not again. */
	cr_expect_eq(flag_record_commit(fr, &done), 0);
	uidset_clear(&done);
	uidset_add_range(&done, 1, 6);
	cr_expect_eq(flag_record_commit(fr, &done), 3);
	cr_expect_eq(flag_record_runs(fr), 1);
	uidset_free(&done);
	flag_record_free(fr);
}

/* --- files ---------------------------------------------------------------- */

static int dir_fd(void)
{
	int sfd, fd;

	mkdir(dest, 0700);
	sfd = open(dest, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(sfd, 0);
	fd = flag_record_open_dir(sfd, true);
	cr_assert_geq(fd, 0, "%s", strerror(errno));
	close(sfd);
	return fd;
}

static char *slurp(int dfd, const char *name)
{
	static char buf[65536];
	int fd = openat(dfd, name, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	return buf;
}

static void put(int dfd, const char *folder, const char *text)
{
	char name[33];
	int fd;

	flag_record_file_name(folder, name);
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

Test(flag_record, a_file_is_each_set_once_with_its_uids)
{
	int dfd = dir_fd();
	struct flag_record *fr = fresh(), *back;
	uint32_t seen = flag_record_intern(fr, STORE_FLAG_SEEN, "");
	uint32_t work = flag_record_intern(
		fr, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED, "$Work \"q\"");
	uint32_t none = flag_record_intern(fr, 0, "");
	struct isnap_error err = { 0 };
	char name[33];
	bool found;
	const char *text;

	apply_range(fr, 1, 480, seen);
	apply_range(fr, 482, 490, seen);
	apply_range(fr, 491, 500, work);
	apply_range(fr, 481, 481, none);
	cr_assert_eq(flag_record_save(dfd, dest, "INBOX.Entw&APw-rfe", fr,
				      false, &err),
		     ISNAP_OK, "%s", err.msg);
	flag_record_file_name("INBOX.Entw&APw-rfe", name);
	cr_expect_eq(strlen(name), 32);
	text = slurp(dfd, name);
	cr_expect(strstr(text, "folder \"INBOX.Entw&APw-rfe\"\n"
			       "uidvalidity 77\n"
			       "flags \"\\\\Seen\"\n"
			       "uids 1:480,482:490\n"
			       "flags\n"
			       "uids 481\n"
			       "flags \"\\\\Seen\" \"\\\\Answered\" \"\\\"q\\\"\" "
			       "\"$Work\"\n"
			       "uids 491:500\n"
			       "eof\n"),
		  "%s", text);
	cr_assert_eq(flag_record_load(dfd, dest, "INBOX.Entw&APw-rfe", 77,
				      &back, &found, &err),
		     ISNAP_OK, "%s", err.msg);
	cr_expect(found);
	cr_expect_eq(flag_record_count(back), 500);
	cr_expect_eq(flag_record_runs(back), 4);
	{
		const char *kw;
		unsigned f = flag_record_flags(back, flag_record_get(back, 495),
					       &kw);
		cr_expect_eq(f, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED);
		cr_expect_str_eq(kw, "\"q\" $Work");
		cr_expect_eq(flag_record_flags(back, flag_record_get(back, 481),
					       &kw),
			     0);
	}
	flag_record_free(back);
	/* Another generation, or another folder: nothing of it. */
	cr_assert_eq(flag_record_load(dfd, dest, "INBOX.Entw&APw-rfe", 78,
				      &back, &found, &err),
		     ISNAP_OK);
	cr_expect_not(found);
	cr_expect_eq(flag_record_count(back), 0);
	cr_expect_eq(flag_record_uidvalidity(back), 78);
	flag_record_free(back);
	cr_assert_eq(flag_record_load(dfd, dest, "Other", 77, &back, &found,
				      &err),
		     ISNAP_OK);
	cr_expect_not(found);
	flag_record_free(back);
	flag_record_free(fr);
	close(dfd);
}

Test(flag_record, pending_files_count_only_once_published)
{
	int dfd = dir_fd();
	struct flag_record *fr = fresh(), *back;
	struct isnap_error err = { 0 };
	uint32_t seen = flag_record_intern(fr, STORE_FLAG_SEEN, "");
	bool found;

	apply_range(fr, 1, 3, seen);
	cr_assert_eq(flag_record_save(dfd, dest, "A", fr, true, &err),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(flag_record_load(dfd, dest, "A", 77, &back, &found, &err),
		     ISNAP_OK);
	cr_expect_not(found, "a pending record was read");
	flag_record_free(back);
	/* ... and the load removed it, as a run that did not finish left
	 * it: publishing now finds nothing, and that is no error. */
	cr_expect_eq(flag_record_publish(dfd, dest, "A", &err), ISNAP_OK);
	cr_assert_eq(flag_record_save(dfd, dest, "A", fr, true, &err),
		     ISNAP_OK);
	cr_assert_eq(flag_record_publish(dfd, dest, "A", &err), ISNAP_OK,
		     "%s", err.msg);
	cr_assert_eq(flag_record_load(dfd, dest, "A", 77, &back, &found, &err),
		     ISNAP_OK);
	cr_expect(found);
	cr_expect_eq(flag_record_count(back), 3);
	flag_record_free(back);
	flag_record_remove(dfd, "A");
	cr_assert_eq(flag_record_load(dfd, dest, "A", 77, &back, &found, &err),
		     ISNAP_OK);
	cr_expect_not(found);
	flag_record_free(back);
	flag_record_free(fr);
	close(dfd);
}

#define HDR "imapsnap-flags 1\n"
#define TOP HDR "folder \"F\"\nuidvalidity 77\n"

static const struct {
	const char *what, *text;
	unsigned line;
	const char *why;
} malformed[] = {
	{ "empty", "", 1, "empty" },
	{ "other magic", "imapsnap-state 1\n", 1, "header" },
	{ "version 2", "imapsnap-flags 2\n", 1, "version 2" },
	{ "no folder", HDR "uidvalidity 1\neof\n", 2, "expected folder" },
	{ "no uidvalidity", HDR "folder \"F\"\neof\n", 3, "eof before" },
	{ "uidvalidity 0", HDR "folder \"F\"\nuidvalidity 0\n", 3,
	  "no generation" },
	{ "folder twice", TOP "folder \"G\"\n", 4, "twice" },
	{ "uids first", TOP "uids 1\neof\n", 4, "before any flags" },
	{ "flags without uids", TOP "flags\nflags \"a\"\nuids 1\neof\n", 5,
	  "no uids" },
	{ "last flags without uids", TOP "flags\neof\n", 5, "no uids" },
	{ "same set twice", TOP "flags \"a\"\nuids 1\nflags \"A\"\nuids 2\n", 6,
	  "same flags twice" },
	{ "keyword twice", TOP "flags \"a\" \"A\"\n", 4, "twice" },
	{ "system flag twice", TOP "flags \"\\\\Seen\" \"\\\\seen\"\n", 4,
	  "twice" },
	{ "a flag with a space", TOP "flags \"a b\"\n", 4, "one word" },
	{ "an empty flag", TOP "flags \"\"\n", 4, "one word" },
	{ "unquoted flag", TOP "flags Seen\n", 4, "quoted" },
	{ "bad set", TOP "flags\nuids 0\n", 5, "not a UID set" },
	{ "unknown keyword", TOP "colour red\n", 4, "colour" },
	{ "no eof", TOP "flags\nuids 1\n", 6, "no eof" },
	{ "text after eof", TOP "eof\nflags\n", 5, "after the eof" },
	{ "carriage return", TOP "eof\r\n", 4, "end of the line" },
};

Test(flag_record, malformed_files_are_refused_with_their_line)
{
	int dfd = dir_fd();

	for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
		struct flag_record *fr;
		struct isnap_error err = { 0 };
		char want[32];
		bool found;

		put(dfd, "F", malformed[i].text);
		cr_expect_eq(flag_record_load(dfd, dest, "F", 77, &fr, &found,
					      &err),
			     ISNAP_EINTEGRITY, "%s: accepted (%s)",
			     malformed[i].what, err.msg);
		cr_expect_null(fr);
		snprintf(want, sizeof want, ":%u: ", malformed[i].line);
		cr_expect_not_null(strstr(err.msg, want), "%s: want line %u: %s",
				   malformed[i].what, malformed[i].line,
				   err.msg);
		cr_expect_not_null(strstr(err.msg, malformed[i].why),
				   "%s: \"%s\" lacks \"%s\"",
				   malformed[i].what, err.msg,
				   malformed[i].why);
	}
	close(dfd);
}

Test(flag_record, a_uid_in_two_sets_is_refused)
{
	int dfd = dir_fd();
	struct flag_record *fr;
	struct isnap_error err = { 0 };
	bool found;

	put(dfd, "F", TOP "flags\nuids 1:10\nflags \"a\"\nuids 10:12\neof\n");
	cr_expect_eq(flag_record_load(dfd, dest, "F", 77, &fr, &found, &err),
		     ISNAP_EINTEGRITY);
	cr_expect_not_null(strstr(err.msg, "UID 10 has two sets"), "%s",
			   err.msg);
	close(dfd);
}

Test(flag_record, a_symbolic_link_is_not_followed)
{
	int dfd = dir_fd();
	struct flag_record *fr;
	struct isnap_error err = { 0 };
	char name[33];
	bool found;

	flag_record_file_name("F", name);
	cr_assert_eq(symlinkat("/etc/passwd", dfd, name), 0);
	cr_expect_eq(flag_record_load(dfd, dest, "F", 77, &fr, &found, &err),
		     ISNAP_ELOCAL);
	cr_expect_null(fr);
	close(dfd);
}
