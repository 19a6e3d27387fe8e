/* Unit tests for lib/store/store.c and lib/store/maildir.c, in a temporary
 * directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#include "tmpdir.h"

TestSuite(maildir, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static struct store *open_store(void)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };

	cr_assert_eq(store_open("maildir", dest, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_not_null(s);
	return s;
}

static struct store_folder folder(const char *name, char delim,
				  uint32_t uidvalidity)
{
	return (struct store_folder){ .name = name,
				      .utf8 = name,
				      .delim = delim,
				      .uidvalidity = uidvalidity };
}

static void open_folder(struct store *s, const struct store_folder *f,
			struct uidset *present)
{
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->open_folder(s, f, present, &err), ISNAP_OK, "%s",
		     err.msg);
}

static struct store_message msg(uint32_t uid, unsigned flags, int64_t date,
				size_t size)
{
	return (struct store_message){ .uid = uid,
				       .flags = flags,
				       .keywords = "",
				       .internaldate = date,
				       .rfc822_size = size,
				       .size = size };
}

/* Save one message, written in chunks of `chunk` bytes. */
static void save(struct store *s, uint32_t uid, unsigned flags, int64_t date,
		 const void *data, size_t len, size_t chunk)
{
	struct store_message m = msg(uid, flags, date, len);
	struct isnap_error err = { 0 };
	const char *p = data;

	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		cr_assert_eq(s->ops->write(s, p + off, n, &err), ISNAP_OK,
			     "%s", err.msg);
	}
	cr_assert_eq(s->ops->end_message(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
}

static void commit(struct store *s)
{
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->commit(s, &err), ISNAP_OK, "%s", err.msg);
}

static void close_folder(struct store *s)
{
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->close_folder(s, &err), ISNAP_OK, "%s", err.msg);
}

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", dest, rel);
}

/* Number of entries (other than . and ..) in dest/rel; -1 if missing. */
static int count_entries(const char *rel)
{
	char path[512];
	struct dirent *de;
	int n = 0;
	DIR *d;

	path_of(path, sizeof path, rel);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static bool exists(const char *rel)
{
	char path[512];

	path_of(path, sizeof path, rel);
	return access(path, F_OK) == 0;
}

/* The bytes of dest/rel (malloc'd); fails the test if unreadable. */
static char *slurp(const char *rel, size_t *len)
{
	char path[512], *buf;
	struct stat sb;
	FILE *fp;

	path_of(path, sizeof path, rel);
	fp = fopen(path, "rb");
	cr_assert_not_null(fp, "cannot open %s", path);
	cr_assert_eq(fstat(fileno(fp), &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)sb.st_size, fp),
		     (size_t)sb.st_size);
	fclose(fp);
	*len = (size_t)sb.st_size;
	return buf;
}

static void put_file(const char *rel, const char *text)
{
	char path[512];
	FILE *fp;

	path_of(path, sizeof path, rel);
	fp = fopen(path, "wb");
	cr_assert_not_null(fp, "cannot create %s", path);
	fputs(text, fp);
	cr_assert_eq(fclose(fp), 0);
}

static char *set_text(const struct uidset *u)
{
	char *text;

	cr_assert_eq(uidset_format(u, &text), 0);
	return text;
}

static void expect_set(const struct uidset *u, const char *want)
{
	char *text = set_text(u);

	cr_expect_str_eq(text, want);
	free(text);
}

/* A message with every awkward byte: CRLF, lone CR and LF, NUL, 8-bit,
 * and a "From " line that mbox would mangle. */
static const char body[] = "From: a@example.org\r\n"
			   "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
			   "\r\n"
			   "From here\r\nlone\rcr lone\nlf \0nul "
			   "\xff\xfe\x80 end\r\n";
#define BODY_LEN (sizeof body - 1)

/* ---------------------------------------------------------------------- */
/* store.c                                                                 */

Test(maildir, flag_letters_in_ascii_order)
{
	char buf[8];

	store_flag_letters(0, buf);
	cr_expect_str_eq(buf, "");
	store_flag_letters(STORE_FLAG_SEEN | STORE_FLAG_ANSWERED |
				   STORE_FLAG_FLAGGED,
			   buf);
	cr_expect_str_eq(buf, "FRS");
	store_flag_letters(STORE_FLAG_DELETED | STORE_FLAG_DRAFT, buf);
	cr_expect_str_eq(buf, "DT");
	store_flag_letters(STORE_FLAG_FORWARDED, buf);
	cr_expect_str_eq(buf, "P");
	store_flag_letters(~0u, buf);
	cr_expect_str_eq(buf, "DFPRST");
}

Test(maildir, flag_names_both_ways)
{
	unsigned all = 0, n = 0;

	cr_expect_eq(store_flag_by_name("\\Seen"), STORE_FLAG_SEEN);
	cr_expect_eq(store_flag_by_name("\\SEEN"), STORE_FLAG_SEEN);
	cr_expect_eq(store_flag_by_name("$forwarded"), STORE_FLAG_FORWARDED);
	cr_expect_eq(store_flag_by_name("\\Recent"), 0);
	cr_expect_eq(store_flag_by_name("Seen"), 0);
	cr_expect_eq(store_flag_by_name(""), 0);
	cr_expect_str_eq(store_flag_name(STORE_FLAG_DRAFT), "\\Draft");
	cr_expect_null(store_flag_name(0));
	cr_expect_null(store_flag_name(STORE_FLAG_SEEN | STORE_FLAG_DRAFT));
	for (unsigned b = 1; store_flag_name(b); b <<= 1) {
		cr_expect_eq(store_flag_by_name(store_flag_name(b)), b);
		all |= b;
		n++;
	}
	cr_expect_eq(n, 6);
	cr_expect_eq(all, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED |
				  STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |
				  STORE_FLAG_DRAFT | STORE_FLAG_FORWARDED);
}

Test(maildir, open_unknown_format_is_usage_error)
{
	struct store *s = (struct store *)1;
	struct isnap_error err = { 0 };

	cr_expect_eq(store_open("floppy", dest, &s, &err), ISNAP_EUSAGE);
	cr_expect_null(s);
	cr_expect_not_null(strstr(err.msg, "floppy"));
	cr_expect_not_null(strstr(err.msg, "maildir"), "%s", err.msg);
	cr_expect_not(exists("")); /* nothing created */
}

Test(maildir, open_creates_nested_destination)
{
	struct store *s;

	snprintf(dest, sizeof dest, "%s/a/b/c", base);
	s = open_store();
	cr_expect_str_eq(s->dest, dest);
	cr_expect_geq(s->dest_fd, 0);
	cr_expect_eq(count_entries(""), 0);
	store_free(s);
	store_free(NULL);
}

Test(maildir, open_fails_when_destination_is_a_file)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };
	FILE *fp = fopen(dest, "w");

	cr_assert_not_null(fp);
	fclose(fp);
	cr_expect_eq(store_open("maildir", dest, &s, &err), ISNAP_ELOCAL);
	cr_expect_null(s);
}

Test(maildir, mkdirs_nested_existing_and_blocked)
{
	int fd = open(base, O_RDONLY | O_DIRECTORY);
	struct stat sb;
	char path[256];

	cr_assert_geq(fd, 0);
	cr_expect_eq(store_mkdirs(fd, "x/y//z/"), 0);
	cr_expect_eq(store_mkdirs(fd, "x/y/z"), 0); /* already there */
	snprintf(path, sizeof path, "%s/x/y/z", base);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect(S_ISDIR(sb.st_mode));
	cr_expect_eq(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof path, "%s/x/file", base);
	fclose(fopen(path, "w"));
	errno = 0;
	cr_expect_eq(store_mkdirs(fd, "x/file/sub"), -1);
	cr_expect_eq(errno, ENOTDIR);
	cr_expect_eq(store_fsync_dir(fd, "x/y"), 0);
	cr_expect_eq(store_fsync_dir(fd, ""), 0);
	cr_expect_eq(store_fsync_dir(fd, "missing"), -1);
	close(fd);
}

/* Regular files below base/ (counted by nftw). */
static int n_files;

static int count_file(const char *path, const struct stat *sb, int flag,
		      struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F && S_ISREG(sb->st_mode))
		n_files++;
	return 0;
}

static int files_below(const char *dir)
{
	n_files = 0;
	cr_assert_eq(nftw(dir, count_file, 16, FTW_PHYS), 0);
	return n_files;
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

Test(maildir, messages_keep_exact_bytes_name_flags_and_date)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 1700000000);
	struct uidset present = UIDSET_INIT;
	const int64_t date = 1234567890; /* 2009-02-13 23:31:30 UTC */
	char *got;
	size_t len;
	struct stat sb;
	char path[512];

	open_folder(s, &f, &present);
	cr_expect(uidset_empty(&present));
	cr_expect(exists("INBOX/cur") && exists("INBOX/new") &&
		  exists("INBOX/tmp"));
	save(s, 7, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED, date, body, BODY_LEN,
	     5);
	save(s, 9, 0, STORE_NO_DATE, body, BODY_LEN, BODY_LEN);
	save(s, 11, 0, date, "", 0, 1); /* empty message */
	commit(s);

	/* Before reading it, which may update the atime. */
	path_of(path, sizeof path, "INBOX/cur/1700000000_7.imapsnap:2,FS");
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mtime, date);
	cr_expect_eq(sb.st_atime, date);
	cr_expect_eq(sb.st_mode & 0777, 0600);

	got = slurp("INBOX/cur/1700000000_7.imapsnap:2,FS", &len);
	cr_assert_eq(len, BODY_LEN);
	cr_expect_eq(memcmp(got, body, BODY_LEN), 0);
	free(got);
	got = slurp("INBOX/cur/1700000000_9.imapsnap:2,", &len);
	cr_assert_eq(len, BODY_LEN);
	cr_expect_eq(memcmp(got, body, BODY_LEN), 0);
	free(got);
	got = slurp("INBOX/cur/1700000000_11.imapsnap:2,", &len);
	cr_expect_eq(len, 0);
	free(got);
	cr_expect_eq(count_entries("INBOX/cur"), 3);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	cr_expect_eq(count_entries("INBOX/new"), 0);

	path_of(path, sizeof path, "INBOX/cur/1700000000_9.imapsnap:2,");
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_gt(sb.st_mtime, time(NULL) - 3600, "no date: now");

	close_folder(s);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, flags_are_taken_from_end_message)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 5);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(3, 0, STORE_NO_DATE, 4);
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, "abcd", 4, &err), ISNAP_OK);
	/* FLAGS arrived after the body. */
	m.flags = STORE_FLAG_ANSWERED | STORE_FLAG_DRAFT;
	cr_assert_eq(s->ops->end_message(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	commit(s);
	cr_expect(exists("INBOX/cur/5_3.imapsnap:2,DR"));
	uidset_free(&present);
	store_free(s);
}

Test(maildir, uncommitted_messages_are_only_in_tmp)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	char name[128];

	open_folder(s, &f, &present);
	save(s, 1, STORE_FLAG_SEEN, STORE_NO_DATE, body, BODY_LEN, 64);
	save(s, 2, STORE_FLAG_SEEN, STORE_NO_DATE, body, BODY_LEN, 64);
	cr_expect_eq(count_entries("INBOX/cur"), 0);
	cr_expect_eq(count_entries("INBOX/tmp"), 2);
	snprintf(name, sizeof name, "INBOX/tmp/42_1.imapsnap.%ld",
		 (long)getpid());
	cr_expect(exists(name), "%s missing", name);
	commit(s);
	cr_expect_eq(count_entries("INBOX/cur"), 2);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);

	/* And again: commit only moves what was ended since. */
	save(s, 3, 0, STORE_NO_DATE, body, BODY_LEN, 64);
	cr_expect_eq(count_entries("INBOX/cur"), 2);
	commit(s);
	cr_expect_eq(count_entries("INBOX/cur"), 3);
	commit(s); /* nothing pending: a no-op */
	cr_expect_eq(count_entries("INBOX/cur"), 3);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, store_free_discards_what_was_not_committed)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(5, 0, STORE_NO_DATE, 10);
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, body, BODY_LEN, 64);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, "12345", 5, &err), ISNAP_OK);
	store_free(s);
	cr_expect_eq(count_entries("INBOX/cur"), 0);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	uidset_free(&present);
}

Test(maildir, close_folder_aborts_open_message_and_commits_ended_ones)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(5, 0, STORE_NO_DATE, 10);
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, body, BODY_LEN, 64);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	close_folder(s);
	cr_expect_eq(count_entries("INBOX/cur"), 1);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	cr_expect_eq(s->ops->finish(s, &err), ISNAP_OK);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, wrong_length_fails_and_leaves_nothing)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(1, 0, STORE_NO_DATE, 10);
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	/* Short. */
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, "123456789", 9, &err), ISNAP_OK);
	cr_expect_eq(s->ops->end_message(s, &m, &err), ISNAP_EMSG);
	cr_expect_not_null(strstr(err.msg, "9 bytes"), "%s", err.msg);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	s->ops->abort_message(s); /* harmless after a failed end */
	/* Long: refused at write, before it reaches the disk. */
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(s->ops->write(s, "123456789", 9, &err), ISNAP_OK);
	cr_expect_eq(s->ops->write(s, "ab", 2, &err), ISNAP_EMSG);
	s->ops->abort_message(s);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	/* end_message claiming a size other than begin's. */
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, "123456789", 9, &err), ISNAP_OK);
	m.size = 9;
	cr_expect_eq(s->ops->end_message(s, &m, &err), ISNAP_EMSG);
	commit(s);
	cr_expect_eq(count_entries("INBOX/cur"), 0);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	/* The UID can still be saved properly. */
	save(s, 1, 0, STORE_NO_DATE, "0123456789", 10, 3);
	commit(s);
	cr_expect(exists("INBOX/cur/42_1.imapsnap:2,"));
	uidset_free(&present);
	store_free(s);
}

Test(maildir, misuse_is_a_usage_error)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(1, 0, STORE_NO_DATE, 1);
	struct isnap_error err = { 0 };

	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EUSAGE);
	cr_expect_eq(s->ops->write(s, "x", 1, &err), ISNAP_EUSAGE);
	cr_expect_eq(s->ops->end_message(s, &m, &err), ISNAP_EUSAGE);
	s->ops->abort_message(s);
	f.uidvalidity = 0;
	cr_expect_eq(s->ops->open_folder(s, &f, &present, &err), ISNAP_EUSAGE);
	f.uidvalidity = 42;
	open_folder(s, &f, &present);
	cr_expect_eq(s->ops->open_folder(s, &f, &present, &err), ISNAP_EUSAGE);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EUSAGE);
	m.uid = 2;
	cr_expect_eq(s->ops->end_message(s, &m, &err), ISNAP_EUSAGE);
	m.uid = 0;
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, a_uid_is_never_saved_twice)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(1, 0, STORE_NO_DATE, 1);
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, "a", 1, 1);
	/* Pending, then committed: both refused. */
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	commit(s);
	m.flags = STORE_FLAG_SEEN;
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	close_folder(s);
	/* Found on disk by a later open. */
	open_folder(s, &f, &present);
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	cr_expect_eq(count_entries("INBOX/cur"), 1);
	uidset_free(&present);
	store_free(s);
}

/* A file the size limit cuts short: the write loop sees the short write,
 * then EFBIG, which is this message's problem, not the destination's. */
Test(maildir, file_too_large_is_a_message_error)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(1, 0, STORE_NO_DATE, 8192);
	struct isnap_error err = { 0 };
	struct rlimit rl = { 4096, 4096 };
	static char big[8192];

	open_folder(s, &f, &present);
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_expect_eq(s->ops->write(s, big, sizeof big, &err), ISNAP_EMSG);
	cr_expect_not_null(strstr(err.msg, "INBOX/tmp/42_1.imapsnap."), "%s",
			   err.msg);
	s->ops->abort_message(s);
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	uidset_free(&present);
	store_free(s);
}

/* ---------------------------------------------------------------------- */
/* Opening folders                                                         */

Test(maildir, open_folder_reports_present_uids_of_this_generation)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 100);
	struct uidset present = UIDSET_INIT;

	open_folder(s, &f, &present);
	/* Written in decreasing order; readdir order is anyone's guess. */
	for (uint32_t uid = 300; uid >= 1; uid--)
		if (uid % 7)
			save(s, uid, uid % 2 ? STORE_FLAG_SEEN : 0,
			     STORE_NO_DATE, "x", 1, 1);
	close_folder(s);
	store_free(s);

	/* What other programs may leave: renamed flags, a size field, a
	 * message in new/, another generation, foreign files. */
	put_file("INBOX/cur/100_7.imapsnap,S=1:2,RS", "x");
	put_file("INBOX/new/100_14.imapsnap", "x");
	put_file("INBOX/cur/99_21.imapsnap:2,S", "x");
	put_file("INBOX/cur/100_28.other:2,S", "x");
	put_file("INBOX/cur/0100_35.imapsnap:2,S", "x");
	put_file("INBOX/cur/100_4294967296.imapsnap:2,", "x");
	put_file("INBOX/cur/1234567890.M1P2.host:2,S", "x");

	s = open_store();
	open_folder(s, &f, &present);
	cr_expect_eq(uidset_count(&present), 300 - 42 + 2);
	cr_expect(uidset_contains(&present, 7));
	cr_expect(uidset_contains(&present, 14));
	cr_expect_not(uidset_contains(&present, 21));
	cr_expect_not(uidset_contains(&present, 28));
	cr_expect_not(uidset_contains(&present, 35));
	cr_expect(uidset_contains(&present, 300));
	uidset_free(&present);

	/* Under another UIDVALIDITY, none of them is present. */
	close_folder(s);
	f.uidvalidity = 99;
	open_folder(s, &f, &present);
	expect_set(&present, "21");
	uidset_free(&present);
	store_free(s);
}

Test(maildir, open_folder_adds_to_present_without_clearing_it)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 100);
	struct uidset present = UIDSET_INIT;

	open_folder(s, &f, &present);
	save(s, 5, 0, STORE_NO_DATE, "x", 1, 1);
	close_folder(s);
	cr_assert_eq(uidset_add(&present, 1000), 0);
	open_folder(s, &f, &present);
	expect_set(&present, "5,1000");
	uidset_free(&present);
	store_free(s);
}

Test(maildir, stale_tmp_files_are_removed_foreign_ones_kept)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 100);
	struct uidset present = UIDSET_INIT;

	open_folder(s, &f, &present);
	close_folder(s);
	put_file("INBOX/tmp/100_1.imapsnap.99999", "half a mess");
	put_file("INBOX/tmp/7_2.imapsnap.12", "older generation");
	put_file("INBOX/tmp/1234567890.M1P2.host", "another program's");
	open_folder(s, &f, &present);
	cr_expect(uidset_empty(&present), "tmp/ is never present");
	cr_expect_not(exists("INBOX/tmp/100_1.imapsnap.99999"));
	cr_expect_not(exists("INBOX/tmp/7_2.imapsnap.12"));
	cr_expect(exists("INBOX/tmp/1234567890.M1P2.host"));
	uidset_free(&present);
	store_free(s);
}

/* Two stores of one process on one folder (a folder fetched over several
 * connections): the second one's open_folder leaves the first one's
 * message in the making alone, and both end up in cur/. */
Test(maildir, sibling_store_keeps_our_tmp_files)
{
	struct store *a = open_store(), *b = open_store();
	struct store_folder f = folder("INBOX", '/', 100);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(1, 0, STORE_NO_DATE, 3);
	struct isnap_error err = { 0 };

	open_folder(a, &f, &present);
	cr_assert_eq(a->ops->begin_message(a, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(a->ops->write(a, "one", 3, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_eq(count_entries("INBOX/tmp"), 1);
	open_folder(b, &f, &present);
	cr_expect_eq(count_entries("INBOX/tmp"), 1, "a's file was removed");
	save(b, 2, 0, STORE_NO_DATE, "two", 3, 3);
	commit(b);
	cr_assert_eq(a->ops->end_message(a, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	commit(a);
	cr_expect(exists("INBOX/cur/100_1.imapsnap:2,"));
	cr_expect(exists("INBOX/cur/100_2.imapsnap:2,"));
	cr_expect_eq(count_entries("INBOX/tmp"), 0);
	close_folder(a);
	close_folder(b);
	uidset_free(&present);
	store_free(a);
	store_free(b);
}

Test(maildir, leftover_with_our_own_tmp_name_is_replaced)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 100);
	struct uidset present = UIDSET_INIT;
	char name[128];
	size_t len;
	char *got;

	open_folder(s, &f, &present);
	/* A dead run with our pid left it after open_folder's cleaning. */
	snprintf(name, sizeof name, "INBOX/tmp/100_1.imapsnap.%ld",
		 (long)getpid());
	put_file(name, "stale and longer than the message");
	save(s, 1, 0, STORE_NO_DATE, "new", 3, 3);
	commit(s);
	got = slurp("INBOX/cur/100_1.imapsnap:2,", &len);
	cr_expect_eq(len, 3);
	cr_expect_eq(memcmp(got, "new", 3), 0);
	free(got);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, hierarchy_and_hostile_names_stay_inside_dest)
{
	static const struct {
		const char *name;
		char delim;
	} names[] = {
		{ "../../etc", '/' }, { "..", '/' },	  { "/abs/path", '/' },
		{ "a/../../b", '/' }, { "..\\..", '\\' }, { "../x", '\0' },
		{ "cur", '/' },	      { ".hidden", '.' }, { "x\ny", '/' },
	};
	struct store *s = open_store();
	struct uidset present = UIDSET_INIT;
	struct store_folder f = folder("Archive/2019", '/', 9);
	char path[512];
	int n_base;

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, "x", 1, 1);
	close_folder(s);
	cr_expect(exists("Archive/2019/cur/9_1.imapsnap:2,"));
	cr_expect(exists("Archive/cur") == false, "a parent is only a path");

	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		f = folder(names[i].name, names[i].delim, 9);
		open_folder(s, &f, &present);
		save(s, (uint32_t)i + 10, 0, STORE_NO_DATE, "x", 1, 1);
		close_folder(s);
	}
	store_free(s);
	uidset_free(&present);

	/* base/ holds dest/ and nothing else; nothing reached / or /etc. */
	n_base = 0;
	{
		DIR *d = opendir(base);
		struct dirent *de;
		cr_assert_not_null(d);
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				n_base++;
		closedir(d);
	}
	cr_expect_eq(n_base, 1);
	cr_expect_eq(files_below(dest),
		     1 + (int)(sizeof names / sizeof *names));
	cr_expect_neq(access("/abs", F_OK), 0);
	cr_expect_neq(access("/etc/cur", F_OK), 0);
	snprintf(path, sizeof path, "%s/etc", base);
	cr_expect_neq(access(path, F_OK), 0);
	/* Every message is somewhere below dest/, and the Maildir names of
	 * the top folder were not taken over by a folder called "cur". */
	cr_expect_eq(count_entries("cur"), -1);
}

/* ---------------------------------------------------------------------- */
/* Generations                                                             */

Test(maildir, retire_generation_moves_old_copy_aside_untouched)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 1000);
	struct store_folder child = folder("INBOX/Sub", '/', 3);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };
	struct stat before, after;
	char path[512];
	size_t len;
	char *got;

	open_folder(s, &child, &present);
	save(s, 1, 0, STORE_NO_DATE, "child", 5, 5);
	close_folder(s);
	open_folder(s, &f, &present);
	save(s, 1, STORE_FLAG_SEEN, 1000000000, body, BODY_LEN, 7);
	save(s, 2, 0, STORE_NO_DATE, "second", 6, 6);
	close_folder(s);
	path_of(path, sizeof path, "INBOX/cur/1000_1.imapsnap:2,S");
	cr_assert_eq(stat(path, &before), 0);

	cr_assert_eq(s->ops->retire_generation(s, &f, 1000, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect_not(exists("INBOX/cur"));
	cr_expect_not(exists("INBOX/new"));
	cr_expect_not(exists("INBOX/tmp"));
	/* The old copy is a Maildir of its own, byte for byte. */
	cr_expect(exists("INBOX/.uidvalidity-1000/new"));
	cr_expect(exists("INBOX/.uidvalidity-1000/tmp"));
	got = slurp("INBOX/.uidvalidity-1000/cur/1000_1.imapsnap:2,S", &len);
	cr_assert_eq(len, BODY_LEN);
	cr_expect_eq(memcmp(got, body, BODY_LEN), 0);
	free(got);
	path_of(path, sizeof path,
		"INBOX/.uidvalidity-1000/cur/1000_1.imapsnap:2,S");
	cr_assert_eq(stat(path, &after), 0);
	cr_expect_eq(after.st_ino, before.st_ino);
	cr_expect_eq(after.st_mtime, 1000000000);
	cr_expect_eq(count_entries("INBOX/.uidvalidity-1000/cur"), 2);
	/* The child folder stays where it is. */
	cr_expect(exists("INBOX/Sub/cur/3_1.imapsnap:2,"));

	/* The new generation starts empty. */
	f.uidvalidity = 2000;
	open_folder(s, &f, &present);
	cr_expect(uidset_empty(&present));
	save(s, 1, 0, STORE_NO_DATE, "new one", 7, 7);
	close_folder(s);
	cr_expect_eq(count_entries("INBOX/cur"), 1);
	cr_expect_eq(count_entries("INBOX/.uidvalidity-1000/cur"), 2);

	/* Opening the old generation number again finds nothing in the
	 * live folder: its files were moved. */
	f.uidvalidity = 1000;
	open_folder(s, &f, &present);
	cr_expect(uidset_empty(&present));
	close_folder(s);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, retire_without_anything_saved_does_nothing)
{
	struct store *s = open_store();
	struct store_folder f = folder("Never", '/', 5);
	struct isnap_error err = { 0 };

	cr_expect_eq(s->ops->retire_generation(s, &f, 4, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect_not(exists("Never"));
	cr_expect_eq(s->ops->retire_generation(s, &f, 0, &err), ISNAP_OK);
	store_free(s);
}

Test(maildir, retire_twice_is_harmless)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 10);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, "x", 1, 1);
	close_folder(s);
	cr_assert_eq(s->ops->retire_generation(s, &f, 10, &err), ISNAP_OK);
	/* A crash before the state recorded it: the next run retires the
	 * same generation again. */
	cr_expect_eq(s->ops->retire_generation(s, &f, 10, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect_eq(count_entries("INBOX/.uidvalidity-10/cur"), 1);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, retire_finishes_an_interrupted_move)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 10);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };
	char from[512], to[512];

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, "x", 1, 1);
	close_folder(s);
	/* An earlier attempt moved cur/ only; then a newer generation's
	 * message went into a fresh cur/. */
	path_of(from, sizeof from, "INBOX/cur");
	path_of(to, sizeof to, "INBOX/.uidvalidity-10");
	cr_assert_eq(mkdir(to, 0700), 0);
	path_of(to, sizeof to, "INBOX/.uidvalidity-10/cur");
	cr_assert_eq(rename(from, to), 0);
	cr_assert_eq(mkdir(from, 0700), 0);
	put_file("INBOX/cur/20_1.imapsnap:2,", "newer");

	cr_expect_eq(s->ops->retire_generation(s, &f, 10, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect(exists("INBOX/.uidvalidity-10/cur/10_1.imapsnap:2,"));
	cr_expect(exists("INBOX/.uidvalidity-10/new"));
	cr_expect(exists("INBOX/.uidvalidity-10/tmp"));
	cr_expect(exists("INBOX/cur/20_1.imapsnap:2,"), "newer one left");
	uidset_free(&present);
	store_free(s);
}

Test(maildir, retire_refuses_to_merge)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 10);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	save(s, 1, 0, STORE_NO_DATE, "x", 1, 1);
	close_folder(s);
	cr_assert_eq(mkdir(strcat(strcpy((char[512]){ 0 }, dest),
				  "/INBOX/.uidvalidity-10"),
			   0700),
		     0);
	cr_assert_eq(mkdir(strcat(strcpy((char[512]){ 0 }, dest),
				  "/INBOX/.uidvalidity-10/cur"),
			   0700),
		     0);
	put_file("INBOX/.uidvalidity-10/cur/10_2.imapsnap:2,", "y");

	cr_expect_eq(s->ops->retire_generation(s, &f, 10, &err),
		     ISNAP_EFOLDER);
	cr_expect_not_null(strstr(err.msg, "merge"), "%s", err.msg);
	/* Nothing moved, not even new/ and tmp/. */
	cr_expect(exists("INBOX/cur/10_1.imapsnap:2,"));
	cr_expect(exists("INBOX/new"));
	cr_expect(exists("INBOX/tmp"));
	cr_expect_eq(count_entries("INBOX/.uidvalidity-10"), 1);
	uidset_free(&present);
	store_free(s);
}

Test(maildir, retire_of_the_open_folder_is_refused)
{
	struct store *s = open_store();
	struct store_folder f = folder("INBOX", '/', 10);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };

	open_folder(s, &f, &present);
	cr_expect_eq(s->ops->retire_generation(s, &f, 9, &err), ISNAP_EUSAGE);
	cr_expect(exists("INBOX/cur"));
	uidset_free(&present);
	store_free(s);
}

Test(maildir, update_flags_renames_a_message_saved_earlier)
{
	struct store_folder f = folder("INBOX", '/', 42);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };
	struct store *s = open_store();
	struct store_message m;
	size_t len;
	char *text;

	open_folder(s, &f, &present);
	save(s, 5, STORE_FLAG_SEEN, 1000, body, strlen(body), 7);
	save(s, 6, 0, 1000, body, strlen(body), 7);
	close_folder(s);
	store_free(s);

	s = open_store();
	open_folder(s, &f, &present);
	m = msg(5, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED,
		STORE_NO_DATE, 0);
	cr_assert_eq(s->ops->update_flags(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	m = msg(9, STORE_FLAG_SEEN, STORE_NO_DATE, 0);
	cr_assert_eq(s->ops->update_flags(s, &m, &err), ISNAP_EMSG,
		     "a UID the store does not hold must be reported");
	close_folder(s);
	store_free(s);
	uidset_free(&present);

	cr_assert_not(exists("INBOX/cur/42_5.imapsnap:2,S"));
	text = slurp("INBOX/cur/42_5.imapsnap:2,FRS", &len);
	cr_assert_eq(len, strlen(body));
	cr_assert_eq(memcmp(text, body, len), 0);
	free(text);
	cr_assert(exists("INBOX/cur/42_6.imapsnap:2,"));
	cr_assert_eq(count_entries("INBOX/cur"), 2);
}
