/* Unit tests for store_held (held.c): what a backup still holds of a
 * folder, as a backup run would ask before planning it, so that messages
 * its state says are saved but the store lost are fetched again. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

#include "tmpdir.h"

TestSuite(held, .init = tmpdir_setup, .fini = tmpdir_teardown);

static const struct store_folder inbox = { .name = "INBOX", .utf8 = "INBOX",
					   .delim = '/', .uidvalidity = 7 };

/* Saves UIDs 1..n in `format` at dest, committed. */
static void save_all(const char *format, uint32_t n)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };
	struct uidset present = UIDSET_INIT;
	static const char body[] = "Subject: x\r\n\r\nbody\r\n";

	cr_assert_eq(store_open(format, dest, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(s->ops->open_folder(s, &inbox, &present, &err), ISNAP_OK,
		     "%s", err.msg);
	for (uint32_t uid = 1; uid <= n; uid++) {
		struct store_message m = { .uid = uid, .keywords = "",
					   .internaldate = 1600000000,
					   .rfc822_size = sizeof body - 1,
					   .size = sizeof body - 1 };
		cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
		cr_assert_eq(s->ops->write(s, body, sizeof body - 1, &err),
			     ISNAP_OK);
		cr_assert_eq(s->ops->end_message(s, &m, &err), ISNAP_OK);
	}
	cr_assert_eq(s->ops->close_folder(s, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(s->ops->finish(s, &err), ISNAP_OK, "%s", err.msg);
	store_free(s);
	uidset_free(&present);
}

static char *held_text(const char *format, bool *known)
{
	struct uidset held = UIDSET_INIT;
	struct isnap_error err = { 0 };
	char *text = NULL;

	cr_assert_eq(store_held(format, dest, &inbox, &held, known, &err),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(uidset_format(&held, &text), 0);
	uidset_free(&held);
	return text;
}

static void expect_held(const char *format, const char *want)
{
	bool known;
	char *text = held_text(format, &known);

	cr_expect(known, "%s", format);
	cr_expect_str_eq(text, want, "%s", format);
	free(text);
}

Test(held, maildir_lists_cur_and_new)
{
	char path[512], newpath[512];

	save_all("maildir", 5);
	expect_held("maildir", "1:5");
	snprintf(path, sizeof path, "%s/INBOX/cur/7_3.imapsnap:2,", dest);
	cr_assert_eq(unlink(path), 0);
	/* Moved to new/ by a reader, with Dovecot's size field: still
	 * there. */
	snprintf(path, sizeof path, "%s/INBOX/cur/7_4.imapsnap:2,", dest);
	snprintf(newpath, sizeof newpath, "%s/INBOX/new/7_4.imapsnap,S=20",
		 dest);
	cr_assert_eq(rename(path, newpath), 0);
	/* Another generation's file is not this one's. */
	snprintf(path, sizeof path, "%s/INBOX/cur/6_3.imapsnap:2,", dest);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	expect_held("maildir", "1:2,4:5");
}

Test(held, maildir_folder_gone_holds_nothing)
{
	struct store_folder other = inbox;

	other.name = other.utf8 = "Never";
	save_all("maildir", 2);
	{
		struct uidset held = UIDSET_INIT;
		struct isnap_error err = { 0 };
		bool known;
		cr_assert_eq(store_held("maildir", dest, &other, &held, &known,
					&err),
			     ISNAP_OK, "%s", err.msg);
		cr_expect(known);
		cr_expect(uidset_empty(&held));
		uidset_free(&held);
	}
}

static void mbox_cut_short(const char *format, const char *file)
{
	char path[512];
	struct stat sb;

	save_all(format, 4);
	expect_held(format, "1:4");
	snprintf(path, sizeof path, "%s/%s", dest, file);
	cr_assert_eq(stat(path, &sb), 0);
	/* Cut inside the last message (mbox) or the last member (gzip). */
	cr_assert_eq(truncate(path, sb.st_size - 5), 0);
	expect_held(format, strcmp(format, "mbox") ? "" : "1:3");
	cr_assert_eq(unlink(path), 0);
	expect_held(format, "");
}

Test(held, mbox_index_against_the_file)
{
	mbox_cut_short("mbox", "INBOX.mbox");
}

Test(held, mbox_gz_index_against_the_file)
{
	mbox_cut_short("mbox.gz", "INBOX.mbox.gz");
}

Test(held, archives_cannot_tell)
{
	bool known = true;
	char *text;

	save_all("tar.gz", 2);
	text = held_text("tar.gz", &known);
	cr_expect_not(known);
	cr_expect_str_eq(text, "");
	free(text);
}

/* A backup moved out of DEST and a link left in its place holds nothing
 * here: store_held says so instead of reading through the link. */
Test(held, a_link_is_not_followed)
{
	static const char *const formats[] = { "maildir", "mbox" };
	char from[512], to[512];

	for (size_t i = 0; i < 2; i++) {
		struct uidset held = UIDSET_INIT;
		struct isnap_error err = { 0 };
		bool known = true;
		bool maildir = i == 0;

		tmpdir_teardown();
		tmpdir_setup();
		save_all(formats[i], 3);
		/* Maildir: INBOX itself; mbox: the index directory above
		 * INBOX.mbox.idx. */
		snprintf(from, sizeof from, "%s/%s", dest,
			 maildir ? "INBOX" : ".imapsnap/mbox");
		snprintf(to, sizeof to, "%s/elsewhere", base);
		cr_assert_eq(rename(from, to), 0);
		cr_assert_eq(symlink(to, from), 0);
		cr_expect_eq(store_held(formats[i], dest, &inbox, &held, &known,
					&err),
			     ISNAP_EFOLDER, "%s", formats[i]);
		cr_expect(!known, "%s", formats[i]);
		cr_expect_not_null(strstr(err.msg, "symbolic link"), "%s: %s",
				   formats[i], err.msg);
		cr_expect(!uidset_contains(&held, 1), "%s", formats[i]);
		uidset_free(&held);
	}
}
