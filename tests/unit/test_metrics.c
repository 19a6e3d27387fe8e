/* Unit tests for the --metrics file (cmd/imapsnap/metrics.c and
 * metrics_file.c: the text format both ways, the merge, the atomic
 * replacement).  The CLI is not
 * part of libimapsnap.a, so its files are compiled in here; the one
 * function of output.c they use is replaced by a plain one. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../../cmd/imapsnap/metrics.c"
#include "../../cmd/imapsnap/metrics_file.c"
#include "tmpdir.h"

const char *progname = "imapsnap";

void out_safe(FILE *f, const char *s)
{
	fputs(s, f);
}

/* --- the text format ----------------------------------------------------- */

Test(metrics, label_values_are_escaped)
{
	char buf[64];

	metrics_escape("plain@host:993", buf, sizeof buf);
	cr_assert_str_eq(buf, "plain@host:993");
	metrics_escape("a\"b\\c\nd", buf, sizeof buf);
	cr_assert_str_eq(buf, "a\\\"b\\\\c\\nd");
	/* Cut short, never in the middle of an escape. */
	metrics_escape("\"\"\"\"", buf, 6);
	cr_assert_str_eq(buf, "\\\"\\\"");
}

Test(metrics, a_line_written_is_read_back)
{
	struct metrics_sample s;
	const char *line = "imapsnap_last_run_messages_skipped{account="
			   "\"we\\\"ird\\\\x\\ny\",reason=\"failed\"} 12";

	cr_assert_eq(metrics_parse_line(line, &s), 1);
	cr_assert_str_eq(metrics_families[s.family].name,
			 "imapsnap_last_run_messages_skipped");
	cr_assert_str_eq(s.account, "we\"ird\\x\ny");
	cr_assert_str_eq(s.labels, "{account=\"we\\\"ird\\\\x\\ny\","
				   "reason=\"failed\"}");
	cr_assert_str_eq(s.value, "12");
	metrics_sample_free(&s);
}

Test(metrics, lines_that_are_not_samples)
{
	struct metrics_sample s;

	cr_assert_eq(metrics_parse_line("", &s), 0);
	cr_assert_eq(metrics_parse_line("# HELP x y", &s), 0);
	/* Not ours, or not an account's: dropped, not an error. */
	cr_assert_eq(metrics_parse_line("node_load1{account=\"a\"} 1", &s), 0);
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders{x=\"a\"} 1",
					&s), 0);
	/* Not the format. */
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders 1", &s), -1);
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders{account="
					"\"a} 1", &s), -1);
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders{account="
					"\"a\"} one", &s), -1);
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders{account="
					"\"a\"} 1 1700000000", &s), -1);
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders{account="
					"\"a\\q\"} 1", &s), -1);
	cr_assert_eq(metrics_parse_line("imapsnap_last_run_folders{account="
					"\"a\",account=\"b\"} 1", &s), -1);
	cr_assert_eq(metrics_parse_line("{account=\"a\"} 1", &s), -1);
}

static struct metrics_account run_of(const char *account, int exit_status,
				     double start)
{
	struct metrics_account m = { 0 };

	m.account = account;
	m.start = start;
	m.end = start + 2.5;
	m.duration = 2.5;
	m.exit_status = exit_status;
	m.counts.folders = 3;
	m.counts.saved = 10;
	m.counts.bytes = 12345;
	m.counts.failed = exit_status ? 1 : 0;
	m.have_size = true;
	m.size_bytes = 409600;
	return m;
}

Test(metrics, every_family_has_help_and_type_and_samples_are_ordered)
{
	struct metrics_sample *v = NULL;
	size_t n = 0;
	struct metrics_account b = run_of("b", 0, 100), a = run_of("a", 1, 50);
	char *text, *pa, *pb;

	cr_assert_eq(metrics_account_samples(&b, 102.5, &v, &n), 0);
	cr_assert_eq(metrics_account_samples(&a, 0, &v, &n), 0);
	text = metrics_render(v, n);
	cr_assert_not_null(text);
	for (size_t i = 0; i < metrics_n_families; i++) {
		char help[256], type[256];
		snprintf(help, sizeof help, "# HELP %s ",
			 metrics_families[i].name);
		snprintf(type, sizeof type, "# TYPE %s gauge\n",
			 metrics_families[i].name);
		cr_assert_not_null(strstr(text, help), "%s", help);
		cr_assert_not_null(strstr(text, type), "%s", type);
	}
	pa = strstr(text, "imapsnap_last_run_exit_status{account=\"a\"} 1\n");
	pb = strstr(text, "imapsnap_last_run_exit_status{account=\"b\"} 0\n");
	cr_assert(pa && pb && pa < pb, "%s", text);
	cr_assert_not_null(strstr(text, "imapsnap_last_success_timestamp_"
					"seconds{account=\"a\"} 0.000\n"));
	cr_assert_not_null(strstr(text, "imapsnap_last_success_timestamp_"
					"seconds{account=\"b\"} 102.500\n"));
	cr_assert_not_null(strstr(text, "imapsnap_last_run_messages_skipped{"
					"account=\"a\",reason=\"failed\"} 1\n"));
	cr_assert_not_null(strstr(text, "imapsnap_backup_size_bytes{account="
					"\"b\"} 409600\n"));
	for (size_t i = 0; i < n; i++)
		metrics_sample_free(&v[i]);
	free(v);
	free(text);
}

/* --- the file ------------------------------------------------------------ */

TestSuite(metrics_file, .init = tmpdir_setup, .fini = tmpdir_teardown);

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);
	cr_assert_not_null(f, "%s", path);
	fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	return buf;
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

Test(metrics_file, merge_keeps_others_and_the_last_success)
{
	char path[128], *text;
	struct metrics_account both[2] = { run_of("a", 0, 1000),
					   run_of("b", 0, 1000) };
	struct metrics_account again = run_of("a", 3, 2000);
	struct isnap_error err = { 0 };
	struct stat st;

	snprintf(path, sizeof path, "%s/imapsnap.prom", base);
	cr_assert_eq(metrics_write(path, both, 2, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(metrics_write(path, &again, 1, &err), ISNAP_OK, "%s",
		     err.msg);
	text = slurp(path);
	/* a ran again and failed: its last success is still the first
	 * run's end; b is untouched. */
	cr_assert_not_null(strstr(text, "imapsnap_last_run_exit_status{"
					"account=\"a\"} 3\n"), "%s", text);
	cr_assert_not_null(strstr(text, "imapsnap_last_success_timestamp_"
					"seconds{account=\"a\"} 1002.500\n"),
			   "%s", text);
	cr_assert_not_null(strstr(text, "imapsnap_last_run_start_timestamp_"
					"seconds{account=\"a\"} 2000.000\n"));
	cr_assert_not_null(strstr(text, "imapsnap_last_run_start_timestamp_"
					"seconds{account=\"b\"} 1000.000\n"));
	cr_assert_null(strstr(text, "{account=\"a\"} 1000.000\n"),
		       "a's old samples are gone: %s", text);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	/* The file and its lock, no temporary file. */
	cr_assert_eq(entries(base), 2);
	free(text);
}

Test(metrics_file, refuses_what_is_not_a_file)
{
	char path[128];
	struct metrics_account a = run_of("a", 0, 1);
	struct isnap_error err = { 0 };

	snprintf(path, sizeof path, "%s/dir.prom", base);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(metrics_write(path, &a, 1, &err), ISNAP_ELOCAL);
	cr_assert_eq(metrics_check_path(path, &err), ISNAP_EUSAGE);
	snprintf(path, sizeof path, "%s/none/x.prom", base);
	cr_assert_eq(metrics_check_path(path, &err), ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "/none"), "%s", err.msg);
	cr_assert_eq(metrics_check_path("", &err), ISNAP_EUSAGE);
	cr_assert_eq(metrics_check_path("x.prom", &err), ISNAP_OK);
}

Test(metrics_file, disk_usage_counts_allocated_blocks)
{
	char path[128];
	uint64_t bytes;
	FILE *f;

	cr_assert_not(metrics_disk_usage(dest, &bytes), "no destination yet");
	cr_assert_eq(mkdir(dest, 0700), 0);
	snprintf(path, sizeof path, "%s/m", dest);
	f = fopen(path, "w");
	for (int i = 0; i < 100000; i++)
		fputc('x', f);
	fclose(f);
	cr_assert(metrics_disk_usage(dest, &bytes));
	cr_assert_geq(bytes, 100000);
	cr_assert_lt(bytes, 100000 + 64 * 1024);
}
