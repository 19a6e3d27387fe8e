/* Unit tests for lib/manifest_read.c: cutting a manifest into lines, and
 * reading every manifest of a backup back. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest_read.h"

#include "tmpdir.h"

TestSuite(manifest_read, .init = tmpdir_setup, .fini = tmpdir_teardown);

struct got {
	char text[16][64];
	size_t len[16];
	bool null[16];
	size_t n;
};

static int keep(void *ctx, const char *text, size_t len)
{
	struct got *g = ctx;

	if (g->n == 16)
		return 1;
	g->null[g->n] = text == NULL;
	g->len[g->n] = len;
	if (text)
		snprintf(g->text[g->n], sizeof g->text[0], "%.*s", (int)len,
			 text);
	g->n++;
	return 0;
}

/* An empty line is an empty line, never "overlong" (NULL), also as the
 * very first thing fed, before any memory is allocated; and whatever the
 * input is cut into, the lines are the same. */
Test(manifest_read, empty_lines_are_empty_not_overlong)
{
	static const char input[] = "\n\n{}\n\nx\n";
	for (size_t cut = 0; cut <= sizeof input - 1; cut++) {
		struct manifest_lines ml = { 0 };
		struct got g = { .n = 0 };

		cr_assert_eq(manifest_lines_feed(&ml, input, cut, keep, &g), 0);
		cr_assert_eq(manifest_lines_feed(&ml, input + cut,
						 sizeof input - 1 - cut, keep,
						 &g),
			     0);
		cr_expect_eq(g.n, 5, "cut %zu", cut);
		for (size_t i = 0; i < g.n; i++)
			cr_expect(!g.null[i], "cut %zu: line %zu overlong", cut,
				  i + 1);
		cr_expect_str_eq(g.text[0], "");
		cr_expect_str_eq(g.text[2], "{}");
		cr_expect_str_eq(g.text[4], "x");
		cr_expect(!manifest_lines_pending(&ml));
		manifest_lines_free(&ml);
	}
}

Test(manifest_read, an_overlong_line_is_null_then_reading_goes_on)
{
	struct manifest_lines ml = { 0 };
	struct got g = { .n = 0 };
	size_t big = MANIFEST_LINE_LIMIT + 10;
	char *buf = malloc(big + 4);

	cr_assert_not_null(buf);
	memset(buf, 'a', big);
	memcpy(buf + big, "\nok\n", 4);
	cr_assert_eq(manifest_lines_feed(&ml, buf, big + 4, keep, &g), 0);
	cr_expect_eq(g.n, 2);
	cr_expect(g.null[0]);
	cr_expect_str_eq(g.text[1], "ok");
	free(buf);
	manifest_lines_free(&ml);
}

struct seen {
	unsigned long lines, parsed;
	char why[8][128];
};

static enum isnap_status on_line(void *ctx, const char *file,
				 unsigned long line_no, json_t *o,
				 const char *why, struct isnap_error *err)
{
	struct seen *s = ctx;

	(void)file;
	(void)line_no;
	(void)err;
	if (o)
		s->parsed++;
	else if (s->lines < 8)
		snprintf(s->why[s->lines], sizeof s->why[0], "%s",
			 why ? why : "(none)");
	s->lines++;
	return ISNAP_OK;
}

/* A run file whose first line is empty: the reader reports a line that
 * is not JSON, not one that is too long. */
Test(manifest_read, empty_first_line_of_a_run_file)
{
	char path[512];
	struct seen s = { 0 };
	struct manifest_read_cb cb = { .ctx = &s, .line = on_line };
	struct isnap_error err = { 0 };
	FILE *f;

	snprintf(path, sizeof path, "%s/.imapsnap/manifest", dest);
	cr_assert_eq(mkdir(dest, 0700), 0);
	snprintf(path, sizeof path, "%s/.imapsnap", dest);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/.imapsnap/manifest", dest);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path,
		 "%s/.imapsnap/manifest/20240101T000000.000000Z.jsonl", dest);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("\n{\"type\":\"run\"}\n", f);
	fclose(f);
	cr_assert_eq(manifest_read_all(dest, &cb, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_eq(s.lines, 2);
	cr_expect_eq(s.parsed, 1);
	cr_expect(strstr(s.why[0], "too long") == NULL, "%s", s.why[0]);
}
