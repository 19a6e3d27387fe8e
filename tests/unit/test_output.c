/* Unit tests for what the CLI prints: cmd/imapsnap/output.c (safe text,
 * widths, sizes), progress.c (the live line) and trace.c (credentials
 * masked).  The CLI is not part of libimapsnap.a, so its files are
 * compiled in here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../cmd/imapsnap/output.c"
#include "../../cmd/imapsnap/progress.c"
#include "../../cmd/imapsnap/trace.c"

const char *progname = "imapsnap";

int exit_status_for(enum isnap_status st)
{
	return st ? 1 : 0;
}

static void safe_is(const char *in, const char *want)
{
	char *got = out_safe_dup(in);
	cr_assert_not_null(got);
	cr_assert_str_eq(got, want, "out_safe_dup(\"%s\")", in);
	free(got);
}

Test(output, safe_text_passes_utf8)
{
	safe_is("INBOX", "INBOX");
	safe_is("Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe");
	safe_is("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub",
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub");
	safe_is("\xf0\x9f\x93\xa7 mail", "\xf0\x9f\x93\xa7 mail");
	safe_is("", "");
}

Test(output, safe_text_neutralises_controls)
{
	/* An escape sequence in a folder name must not reach the terminal. */
	safe_is("a\x1b]0;owned\x07z", "a?]0;owned?z");
	safe_is("tab\there\r\n", "tab?here??");
	safe_is("del\x7f", "del?");
	safe_is("c1\xc2\x9b" "31m", "c1?31m"); /* U+009B, CSI */
}

Test(output, safe_text_replaces_invalid_utf8)
{
	static const char fffd[] = "\xef\xbf\xbd";
	char want[64];

	snprintf(want, sizeof want, "Entw%srfe", fffd);
	safe_is("Entw\xfcrfe", want); /* Latin-1 */
	snprintf(want, sizeof want, "%s%s", fffd, fffd);
	safe_is("\xc0\xaf", want);    /* overlong '/' */
	snprintf(want, sizeof want, "%s%s%s", fffd, fffd, fffd);
	safe_is("\xed\xa0\x80", want); /* a surrogate */
	/* One replacement per byte that is not part of a valid sequence. */
	snprintf(want, sizeof want, "x%s%s", fffd, fffd);
	safe_is("x\xe6\x97", want);   /* cut short at the end */
}

Test(output, widths)
{
	cr_assert_eq(out_width("INBOX"), 5);
	cr_assert_eq(out_width("Entw\xc3\xbcrfe"), 8);
	cr_assert_eq(out_width("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub"),
		     10, "CJK is two columns wide");
	cr_assert_eq(out_width("e\xcc\x81"), 1, "a combining accent is 0");
	cr_assert_eq(out_width("a\x1b" "b"), 3, "a control shows as '?'");
	cr_assert_eq(out_width("\xfc"), 1, "U+FFFD is one column");
	cr_assert_eq(out_width(""), 0);
}

Test(output, human_sizes)
{
	char b[32];
	static const struct { uint64_t n; const char *s; } cases[] = {
		{ 0, "0 B" },
		{ 1023, "1023 B" },
		{ 1024, "1.0 KiB" },
		{ 1536, "1.5 KiB" },
		{ 10 * 1024, "10 KiB" },
		{ 5 * 1024 * 1024 + 200 * 1024, "5.2 MiB" },
		{ 3ULL << 40, "3.0 TiB" },
		{ UINT64_MAX, "16384 PiB" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		out_human_size(cases[i].n, b, sizeof b);
		cr_assert_str_eq(b, cases[i].s, "%llu",
				 (unsigned long long)cases[i].n);
	}
}

/* --- progress ----------------------------------------------------------- */

static struct progress at(const char *folder, uint64_t done, uint64_t total,
			  uint64_t bytes)
{
	struct progress p = { .enabled = true, .done = done, .total = total,
			      .bytes = bytes, .folder_start = 100.0,
			      .run_start = 100.0, .run_done = done,
			      .run_bytes = bytes };
	snprintf(p.folder, sizeof p.folder, "%s", folder);
	return p;
}

Test(progress, line_with_rate_and_eta)
{
	char buf[256];
	/* 100 of 400 messages, 10 MiB, in 10 s: 1 MiB/s, 30 s to go. */
	struct progress p = at("INBOX", 100, 400, 10 << 20);
	progress_format(&p, 110.0, 0, buf, sizeof buf);
	cr_assert_str_eq(buf, "INBOX: 100/400 messages, 10 MiB, 1.0 MiB/s, "
			      "ETA 0:30");
}

Test(progress, no_rate_too_early)
{
	char buf[256];
	struct progress p = at("INBOX", 3, 400, 3000);
	progress_format(&p, 100.2, 0, buf, sizeof buf);
	cr_assert_str_eq(buf, "INBOX: 3/400 messages, 2.9 KiB, -/s");
}

Test(progress, short_folder_uses_the_run_rate)
{
	char buf[256];
	/* The folder began a moment ago; the run has gone on for 10 s. */
	struct progress p = at("Sent", 1, 21, 1024);
	p.folder_start = 109.9;
	p.run_done = 1000;
	p.run_bytes = 10 << 20;
	progress_format(&p, 110.0, 0, buf, sizeof buf);
	/* 10 ms a message over the run: 20 messages left, 0.2 s. */
	cr_assert_str_eq(buf, "Sent: 1/21 messages, 1.0 KiB, 1.0 MiB/s, "
			      "ETA 0:00");
}

Test(progress, long_eta)
{
	char buf[256];
	/* One message a second, 7384 to go: 2:03:04. */
	struct progress p = at("Archive", 16, 7400, 1 << 20);
	progress_format(&p, 116.0, 0, buf, sizeof buf);
	cr_assert_not_null(strstr(buf, "ETA 2:03:04"), "%s", buf);
	p = at("Archive", 1, 1000000, 1);
	progress_format(&p, 101.0, 0, buf, sizeof buf);
	cr_assert_not_null(strstr(buf, "ETA >99 h"), "%s", buf);
}

Test(progress, done_folder_has_no_eta)
{
	char buf[256];
	struct progress p = at("INBOX", 400, 400, 10 << 20);
	progress_format(&p, 110.0, 0, buf, sizeof buf);
	cr_assert_null(strstr(buf, "ETA"), "%s", buf);
}

Test(progress, cut_to_the_terminal)
{
	char buf[256];
	struct progress p = at("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub", 1,
			       2, 10);
	progress_format(&p, 100.0, 5, buf, sizeof buf);
	/* Two wide characters fill four columns; the third would not fit. */
	cr_assert_str_eq(buf, "\xe6\x97\xa5\xe6\x9c\xac");
	progress_format(&p, 100.0, 11, buf, sizeof buf);
	cr_assert_str_eq(buf, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub:");
}

Test(progress, hostile_folder_name)
{
	char buf[256];
	struct progress p = at("x\x1b[2Jy", 1, 2, 10);
	progress_format(&p, 100.0, 0, buf, sizeof buf);
	cr_assert_null(strchr(buf, '\x1b'), "%s", buf);
	cr_assert_eq(strncmp(buf, "x?[2Jy: ", 8), 0, "%s", buf);
}

/* --- trace -------------------------------------------------------------- */

static void mask_is(char dir, const char *line, bool *in_auth,
		    const char *want)
{
	char out[256];
	trace_mask_line(dir, line, strlen(line), in_auth, out, sizeof out);
	cr_assert_str_eq(out, want, "%c %s", dir, line);
}

Test(trace, login_is_masked)
{
	bool a = false;
	mask_is('>', "A001 LOGIN alice \"s3cret pw\"\r\n", &a, "A001 LOGIN ***");
	mask_is('>', "x login alice pw\r\n", &a, "x login ***");
	cr_assert_not(a);
}

Test(trace, authenticate_exchange_is_masked)
{
	bool a = false;
	mask_is('>', "A002 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n", &a,
		"A002 AUTHENTICATE PLAIN ***");
	cr_assert(a);
	mask_is('<', "A002 OK done\r\n", &a, "A002 OK done");
	cr_assert_not(a);

	mask_is('>', "A003 AUTHENTICATE XOAUTH2\r\n", &a,
		"A003 AUTHENTICATE XOAUTH2");
	cr_assert(a);
	mask_is('<', "+ \r\n", &a, "+ ");
	cr_assert(a, "a challenge does not end the exchange");
	mask_is('>', "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2tlbgEB\r\n", &a,
		"***");
	mask_is('<', "* CAPABILITY IMAP4rev1\r\n", &a, "* CAPABILITY IMAP4rev1");
	cr_assert(a);
	mask_is('<', "A003 NO [AUTHENTICATIONFAILED] no\r\n", &a,
		"A003 NO [AUTHENTICATIONFAILED] no");
	cr_assert_not(a);
	mask_is('>', "i1 CAPABILITY\r\n", &a, "i1 CAPABILITY");
}

Test(trace, other_commands_pass)
{
	bool a = false;
	mask_is('>', "i4 EXAMINE \"INBOX\" (CONDSTORE)\r\n", &a,
		"i4 EXAMINE \"INBOX\" (CONDSTORE)");
	/* A folder called LOGIN is not a LOGIN command. */
	mask_is('>', "i5 STATUS LOGIN (MESSAGES)\r\n", &a,
		"i5 STATUS LOGIN (MESSAGES)");
	mask_is('<', "* OK [UIDVALIDITY 7]\r\n", &a, "* OK [UIDVALIDITY 7]");
	mask_is('<', "bin\x01\x02\r\n", &a, "bin..");
	cr_assert_not(a);
}
