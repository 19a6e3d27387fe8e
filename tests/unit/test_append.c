/* APPEND pieces (RFC 3501 §6.3.11, §9; RFC 4315 APPENDUID), the restore
 * state log, the spool and the target-name mapping. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imap/append.h"
#include "imap/fetch.h"
#include "restore_backup.h"
#include "restore_spool.h"
#include "restore_state.h"
#include "tmpdir.h"

Test(append, date_round_trips_through_the_parser)
{
	char out[27];
	int64_t t;
	int tz;

	bool leap;

	cr_assert(append_format_date(837596665, -420, false, out));
	cr_assert_str_eq(out, "17-Jul-1996 02:44:25 -0700");
	cr_assert(fetch_parse_internaldate(out, strlen(out), &t, &tz, &leap));
	cr_assert_eq(t, 837596665);
	cr_assert_eq(tz, -420);
	cr_assert_not(leap);
	cr_assert(append_format_date(1704063600, 90, false, out));
	cr_assert_str_eq(out, "01-Jan-2024 00:30:00 +0130");
	cr_assert_not(append_format_date(0, 100 * 60, false, out));
	/* A leap second goes back as it came, on its own day. */
	cr_assert(fetch_parse_internaldate("01-Jul-2015 01:59:60 +0200", 26,
					   &t, &tz, &leap));
	cr_assert(append_format_date(t, tz, leap, out));
	cr_assert_str_eq(out, "01-Jul-2015 01:59:60 +0200");
}

/* Dates far outside years 1 to 9999 are refused, not computed with an
 * overflowing addition (a manifest may say anything). */
Test(append, date_far_out_of_range_is_refused)
{
	char out[27];

	cr_assert_not(append_format_date(INT64_MIN, -420, false, out));
	cr_assert_not(append_format_date(INT64_MAX, 420, false, out));
	cr_assert_not(append_format_date(INT64_MAX - 60, 99 * 60, true, out));
	cr_assert_not(append_format_date(-62135596800 - 1, 0, false, out));
	cr_assert(append_format_date(-62135596800, 0, false, out));
	cr_assert_str_eq(out, "01-Jan-0001 00:00:00 +0000");
	cr_assert(append_format_date(253402300799, 0, false, out));
	cr_assert_str_eq(out, "31-Dec-9999 23:59:59 +0000");
	cr_assert_not(append_format_date(253402300800, 0, false, out));
	/* Past the end in UTC, within it in the zone it is written in. */
	cr_assert(append_format_date(253402300799 + 2 * 86400, -99 * 60, false,
				     out));
	cr_assert_str_eq(out, "29-Dec-9999 20:59:59 -9900");
	cr_assert(append_format_date(-62135596800 - 2 * 86400, 99 * 60, false,
				     out));
	cr_assert_str_eq(out, "03-Jan-0001 03:00:00 +9900");
}

Test(append, flags_only_what_append_may_carry)
{
	char buf[64] = "";

	cr_assert(append_flags_add(buf, sizeof buf, "\\Seen"));
	cr_assert(append_flags_add(buf, sizeof buf, "$Forwarded"));
	cr_assert(append_flags_add(buf, sizeof buf, "\\seen")); /* there */
	cr_assert_not(append_flags_add(buf, sizeof buf, "\\Recent"));
	cr_assert_not(append_flags_add(buf, sizeof buf, "\\*"));
	cr_assert_not(append_flags_add(buf, sizeof buf, "a b"));
	cr_assert_not(append_flags_add(buf, sizeof buf, "x(y"));
	cr_assert_not(append_flags_add(buf, sizeof buf, "W\xc3\xbcrk"));
	cr_assert_not(append_flags_add(buf, sizeof buf, ""));
	cr_assert_str_eq(buf, "\\Seen $Forwarded");
	cr_assert_not(append_flags_add(buf, 20, "LongerKeyword"));
}

Test(append, command_line)
{
	struct append_msg m = { .mailbox = "Entw&APw-rfe",
				.flags = "\\Seen Work",
				.internaldate = 837596665,
				.tz_minutes = -420,
				.size = 310 };
	char buf[256];

	cr_assert(append_command(&m, true, buf, sizeof buf));
	cr_assert_str_eq(buf, "APPEND \"Entw&APw-rfe\" (\\Seen Work) "
			      "\"17-Jul-1996 02:44:25 -0700\" {310+}");
	m.mailbox = "a\"b\\c";
	m.flags = "";
	m.internaldate = INT64_MIN;
	cr_assert(append_command(&m, false, buf, sizeof buf));
	cr_assert_str_eq(buf, "APPEND \"a\\\"b\\\\c\" () {310}");
	m.mailbox = "8bit\xc3\xbc";
	cr_assert_eq(append_command(&m, false, buf, sizeof buf), 0);
	m.mailbox = "INBOX";
	cr_assert_eq(append_command(&m, false, buf, 20), 0);
}

Test(append, appenduid)
{
	uint32_t uv, uid;

	/* From RFC 4315's example: "A003 OK [APPENDUID 38505 3955]". */
	cr_assert(append_parse_appenduid("38505 3955", &uv, &uid));
	cr_assert_eq(uv, 38505);
	cr_assert_eq(uid, 3955);
	cr_assert_not(append_parse_appenduid("38505 3955:3957", &uv, &uid));
	cr_assert_not(append_parse_appenduid("38505", &uv, &uid));
	cr_assert_not(append_parse_appenduid("0 5", &uv, &uid));
	cr_assert_not(append_parse_appenduid("4294967296 5", &uv, &uid));
	cr_assert_not(append_parse_appenduid(NULL, &uv, &uid));
}

Test(restore, state_log_survives_a_torn_line_and_a_new_uidvalidity,
     .init = tmpdir_setup, .fini = tmpdir_teardown)
{
	const char *dir = dest;
	struct restore_state *st;
	struct restore_state_folder *f;
	struct isnap_error err = { 0 };
	unsigned char k1[RESTORE_KEY_LEN], k2[RESTORE_KEY_LEN];
	char path[4200];
	FILE *fp;

	restore_state_key("imap://h", "u", "INBOX", 7, 1, k1);
	restore_state_key("imap://h", "u", "INBOX", 7, 2, k2);
	cr_assert(memcmp(k1, k2, RESTORE_KEY_LEN));
	cr_assert_eq(restore_state_open(dir, false, &st, &err), ISNAP_OK,
		     "%s", err.msg);
	f = restore_state_folder(st, "INBOX", true);
	cr_assert_eq(restore_state_set(st, f, 100, 1, &err), ISNAP_OK);
	cr_assert_eq(restore_state_done(st, f, k1, 5, &err), ISNAP_OK);
	cr_assert_eq(restore_state_sync(st, &err), ISNAP_OK);
	restore_state_close(st);

	/* A crash cut a line short. */
	snprintf(path, sizeof path, "%s/restore.jsonl", dir);
	fp = fopen(path, "a");
	fputs("{\"type\":\"done\",\"fol", fp);
	fclose(fp);
	cr_assert_eq(restore_state_open(dir, false, &st, &err), ISNAP_OK,
		     "%s", err.msg);
	f = restore_state_folder(st, "INBOX", false);
	cr_assert_not_null(f);
	cr_assert(restore_state_has(st, f, k1));
	cr_assert_not(restore_state_has(st, f, k2));
	cr_assert_eq(f->uidvalidity, 100);
	/* The folder was recreated: what was done there is void. */
	cr_assert_eq(restore_state_set(st, f, 200, 1, &err), ISNAP_OK);
	cr_assert_not(restore_state_has(st, f, k1));
	cr_assert_eq(restore_state_sync(st, &err), ISNAP_OK);
	restore_state_close(st);
	cr_assert_eq(restore_state_open(dir, false, &st, &err), ISNAP_OK);
	f = restore_state_folder(st, "INBOX", false);
	cr_assert_not(restore_state_has(st, f, k1));
	restore_state_close(st);

	/* A malformed line in the middle refuses the file. */
	fp = fopen(path, "a");
	fputs("garbage\n{\"type\":\"folder\"}\n", fp);
	fclose(fp);
	cr_assert_eq(restore_state_open(dir, false, &st, &err), ISNAP_ELOCAL);
	cr_assert(strstr(err.msg, "line"));
}

Test(restore, spool_moves_to_a_file_past_its_bound)
{
	struct restore_spool sp;
	struct isnap_error err = { 0 };
	char buf[64], big[100];
	size_t got, total = 0;

	memset(big, 'x', sizeof big);
	restore_spool_init(&sp, 16);
	restore_spool_reset(&sp);
	cr_assert_eq(restore_spool_write(&sp, "0123456789", 10, &err), 0);
	cr_assert_eq(restore_spool_write(&sp, big, sizeof big, &err), 0);
	cr_assert(sp.in_file);
	restore_spool_rewind(&sp);
	do {
		cr_assert_eq(restore_spool_read(&sp, buf, sizeof buf, &got,
						&err), 0);
		if (total == 0)
			cr_assert(!memcmp(buf, "0123456789x", 11));
		total += got;
	} while (got);
	cr_assert_eq(total, 110);
	restore_spool_reset(&sp);
	cr_assert_eq(restore_spool_write(&sp, "ab", 2, &err), 0);
	cr_assert_not(sp.in_file);
	restore_spool_rewind(&sp);
	cr_assert_eq(restore_spool_read(&sp, buf, sizeof buf, &got, &err), 0);
	cr_assert_eq(got, 2);
	restore_spool_free(&sp);
}
