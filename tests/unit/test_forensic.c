/* Unit tests for the forensic records (forensic.c): read from a run file
 * written by hand, TSV fields escaped, one row per message and per
 * skipped item, and nothing left behind but the three records. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forensic.h"

#include "tmpdir.h"

TestSuite(forensic, .init = tmpdir_setup, .fini = tmpdir_teardown);

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* The test's directory, opened as the manifest directory is. */
static int base_fd(void)
{
	int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	return fd;
}

Test(forensic, records_from_a_run_file)
{
	static const char run[] =
		"{\"type\":\"run\",\"manifest\":2,\"tool\":\"imapsnap\","
		"\"version\":\"9.9\",\"format\":\"maildir\",\"dest\":\"/b\","
		"\"started\":\"2024-05-01T02:00:00.000000Z\",\"prev\":null}\n"
		"{\"type\":\"server\",\"greeting\":\"* OK hi\",\"capabilities\":"
		"[\"IMAP4REV1\",\"CONDSTORE\"]}\n"
		"{\"type\":\"folder\",\"folder\":\"A\\tB\",\"folder_raw\":\"A\\tB\","
		"\"uidvalidity\":5,\"uidnext\":9,\"exists\":2,"
		"\"highestmodseq\":77}\n"
		"{\"type\":\"message\",\"folder\":\"A\\tB\",\"uidvalidity\":5,"
		"\"uid\":7,\"received\":12,\"sha256\":\"ab\",\"location\":"
		"\"A\\tB/cur/5_7.imapsnap\"}\n"
		"{\"type\":\"skipped\",\"folder\":\"A\\tB\",\"uidvalidity\":5,"
		"\"uid\":8,\"reason\":\"the server said NO\\n(twice)\"}\n"
		"{\"type\":\"commit\",\"messages\":1}\n"
		"{\"type\":\"end\",\"ended\":\"2024-05-01T02:00:01.000000Z\","
		"\"listed\":2,\"saved\":1,\"failed\":1,\"accounted\":true}\n";
	struct forensic_info info = { .time_zone = "CET, UTC+0100",
				      .run_sha256 = "cafe" };
	struct isnap_error err = { 0 };
	char path[512], *text;
	FILE *f;

	snprintf(path, sizeof path, "%s/r.jsonl", base);
	f = fopen(path, "wb");
	fputs(run, f);
	fclose(f);
	cr_assert_eq(forensic_write(base_fd(), "r.jsonl", &info, &err),
		     ISNAP_OK, "%s", err.msg);
	snprintf(path, sizeof path, "%s/r.items.tsv", base);
	text = slurp(path);
	cr_expect_str_eq(text, "folder\tuidvalidity\tuid\tsha256\tsize\tpath\n"
			       "A\\tB\t5\t7\tab\t12\tA\\tB/cur/5_7.imapsnap\n");
	free(text);
	snprintf(path, sizeof path, "%s/r.exceptions.tsv", base);
	text = slurp(path);
	cr_expect_str_eq(text, "folder\tuidvalidity\tuid\twhat\treason\n"
			       "A\\tB\t5\t8\tmessage\tthe server said "
			       "NO\\n(twice)\n");
	free(text);
	snprintf(path, sizeof path, "%s/r.acquisition.txt", base);
	text = slurp(path);
	cr_expect(strstr(text, "* OK hi"));
	cr_expect(strstr(text, "IMAP4REV1 CONDSTORE"));
	cr_expect(strstr(text, "CET, UTC+0100"));
	cr_expect(strstr(text, "2024-05-01T02:00:01.000000Z"));
	cr_expect(strstr(text, "5            2          9          77  "
			       "             1        1        A\\tB\n"),
		  "%s", text);
	free(text);
	snprintf(path, sizeof path, "%s/r.items.tsv.tmp", base);
	cr_expect_neq(access(path, F_OK), 0, "a temporary file stayed");
}

Test(forensic, record_path_needs_a_run_file)
{
	char *p = forensic_record_path("/m/20240501T020000.1Z.jsonl", ".tsr");

	cr_expect_str_eq(p, "/m/20240501T020000.1Z.tsr");
	free(p);
	cr_expect_null(forensic_record_path("/m/chain", ".tsr"));
}

/* The records' temporary names may be taken by someone who can write the
 * manifest directory: a FIFO there must not block, a hard link must not
 * truncate the file it shares, a symbolic link must not be followed. */
Test(forensic, planted_temporary_names_are_replaced, .timeout = 20)
{
	static const char run[] =
		"{\"type\":\"run\",\"manifest\":3,\"format\":\"maildir\"}\n";
	struct forensic_info info = { 0 };
	struct isnap_error err = { 0 };
	char path[512], victim[512], other[512], *text;
	FILE *f;

	snprintf(path, sizeof path, "%s/r.jsonl", base);
	f = fopen(path, "wb");
	fputs(run, f);
	fclose(f);
	snprintf(victim, sizeof victim, "%s/victim", base);
	f = fopen(victim, "wb");
	fputs("precious\n", f);
	fclose(f);
	snprintf(other, sizeof other, "%s/other", base);
	f = fopen(other, "wb");
	fputs("also precious\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/r.items.tsv.tmp", base);
	cr_assert_eq(mkfifo(path, 0600), 0);
	snprintf(path, sizeof path, "%s/r.exceptions.tsv.tmp", base);
	cr_assert_eq(link(victim, path), 0);
	snprintf(path, sizeof path, "%s/r.acquisition.txt.tmp", base);
	cr_assert_eq(symlink(other, path), 0);

	cr_assert_eq(forensic_write(base_fd(), "r.jsonl", &info, &err),
		     ISNAP_OK, "%s", err.msg);
	text = slurp(victim);
	cr_expect_str_eq(text, "precious\n", "written through a hard link");
	free(text);
	text = slurp(other);
	cr_expect_str_eq(text, "also precious\n",
			 "written through a symbolic link");
	free(text);
	snprintf(path, sizeof path, "%s/r.exceptions.tsv", base);
	text = slurp(path);
	cr_expect(!strncmp(text, "folder\t", 7));
	free(text);
}
