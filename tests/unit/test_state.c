/* Unit tests for lib/state.c. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

static char dir[64];

/* state_load and state_save take the directory open; a missing one is
 * no directory at all (-1). */
static int open_dir(const char *d)
{
	return open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static enum isnap_status load_from(const char *d, struct state *st,
				   struct isnap_error *err)
{
	int fd = open_dir(d);
	enum isnap_status rc = state_load(fd, d, st, err);

	if (fd >= 0)
		close(fd);
	return rc;
}

static enum isnap_status save_into(const char *d, const struct state *st,
				   struct isnap_error *err)
{
	int fd = open_dir(d);
	enum isnap_status rc = state_save(fd, d, st, err);

	if (fd >= 0)
		close(fd);
	return rc;
}

static void setup(void)
{
	strcpy(dir, "/tmp/test_state.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char path[128];

	snprintf(path, sizeof path, "%s/state", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/state.tmp", dir);
	unlink(path);
	rmdir(dir);
}

TestSuite(state, .init = setup, .fini = teardown);

static void write_file(const char *text, size_t len)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof path, "%s/state", dir);
	fp = fopen(path, "wb");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(text, 1, len, fp), len);
	cr_assert_eq(fclose(fp), 0);
}

/* The file's bytes (NUL-terminated; *len without the NUL). */
static char *read_file(size_t *len)
{
	char path[128], *buf;
	FILE *fp;
	long size;

	snprintf(path, sizeof path, "%s/state", dir);
	fp = fopen(path, "rb");
	cr_assert_not_null(fp);
	cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
	size = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)size + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
	buf[size] = '\0';
	fclose(fp);
	*len = (size_t)size;
	return buf;
}

static struct state_folder *add_folder(struct state *st, const char *name,
				       char delim, uint32_t uidvalidity)
{
	struct state_folder *f = state_folder(st, name, 1);

	cr_assert_not_null(f);
	f->delim = delim;
	f->uidvalidity = uidvalidity;
	return f;
}

static void expect_same_folder(const struct state_folder *a,
			       const struct state_folder *b)
{
	cr_expect_str_eq(a->name, b->name);
	cr_expect_eq(a->delim, b->delim, "delim of %s", a->name);
	cr_expect_eq(a->uidvalidity, b->uidvalidity);
	cr_expect_eq(a->uidnext, b->uidnext);
	cr_expect_eq(a->highestmodseq, b->highestmodseq);
	cr_assert_eq(a->saved.n, b->saved.n, "saved ranges of %s", a->name);
	for (size_t i = 0; i < a->saved.n; i++) {
		cr_expect_eq(a->saved.r[i].first, b->saved.r[i].first);
		cr_expect_eq(a->saved.r[i].last, b->saved.r[i].last);
	}
	cr_assert_eq(a->n_old, b->n_old);
	for (size_t i = 0; i < a->n_old; i++)
		cr_expect_eq(a->old_uidvalidity[i], b->old_uidvalidity[i]);
}

Test(state, missing_file_is_empty_state)
{
	struct state st = STATE_INIT;
	struct isnap_error err = { 0 };

	cr_assert_eq(load_from(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	cr_expect_eq(st.n, 0);
	cr_assert_eq(load_from("/nonexistent/imapsnap-test", &st, &err),
		     ISNAP_OK, "%s", err.msg);
	cr_expect_eq(st.n, 0);
	state_free(&st);
}

Test(state, folder_create_and_lookup)
{
	struct state st = STATE_INIT;
	struct state_folder *a, *b;

	cr_expect_null(state_folder(&st, "INBOX", 0));
	a = state_folder(&st, "INBOX", 1);
	cr_assert_not_null(a);
	cr_expect_str_eq(a->name, "INBOX");
	cr_expect_eq(a->uidvalidity, 0);
	cr_expect(uidset_empty(&a->saved));
	a->uidvalidity = 7;
	/* Enough creations to move the array. */
	for (int i = 0; i < 100; i++) {
		char name[16];
		snprintf(name, sizeof name, "f%d", i);
		cr_assert_not_null(state_folder(&st, name, 1));
	}
	b = state_folder(&st, "INBOX", 0);
	cr_assert_not_null(b);
	cr_expect_eq(b->uidvalidity, 7);
	cr_expect_eq(state_folder(&st, "INBOX", 1), b); /* no duplicate */
	cr_expect_eq(st.n, 101);
	cr_expect_null(state_folder(&st, "inbox", 0)); /* exact bytes */
	state_free(&st);
	cr_expect_eq(st.n, 0);
	cr_expect_null(st.folders);
}

Test(state, retire_keeps_generation_and_resets)
{
	struct state st = STATE_INIT;
	struct state_folder *f = add_folder(&st, "INBOX", '/', 1000);

	f->uidnext = 50;
	f->highestmodseq = 99;
	cr_assert_eq(uidset_add_range(&f->saved, 1, 49), 0);
	cr_assert_eq(state_folder_retire(f), 0);
	cr_expect_eq(f->uidvalidity, 0);
	cr_expect_eq(f->uidnext, 0);
	cr_expect_eq(f->highestmodseq, 0);
	cr_expect(uidset_empty(&f->saved));
	cr_assert_eq(f->n_old, 1);
	cr_expect_eq(f->old_uidvalidity[0], 1000);
	cr_expect_eq(f->delim, '/');

	/* Never examined since: nothing to keep. */
	cr_assert_eq(state_folder_retire(f), 0);
	cr_expect_eq(f->n_old, 1);

	f->uidvalidity = 2000;
	cr_assert_eq(state_folder_retire(f), 0);
	cr_assert_eq(f->n_old, 2);
	cr_expect_eq(f->old_uidvalidity[0], 1000); /* oldest first */
	cr_expect_eq(f->old_uidvalidity[1], 2000);
	state_free(&st);
}

Test(state, round_trip_with_hostile_names)
{
	static const struct {
		const char *name;
		char delim;
	} names[] = {
		{ "INBOX", '/' },
		{ "quote\"d", '.' },
		{ "back\\slash\\", '\\' },
		{ "\\x41 not an escape", '"' },
		{ "new\nline\r\n", '\n' },
		{ "ctl\x01\x1f\x7f end", '\0' },
		{ "8bit \xc3\xa9\xff\x80", '\x80' },
		{ "tab\there", '\t' },
		{ "", '/' },
		{ " leading and trailing ", ' ' },
		{ "end", '/' },
		{ "#not a comment", '#' },
	};
	size_t n = sizeof names / sizeof *names;
	struct state st = STATE_INIT, back = STATE_INIT;
	struct isnap_error err = { 0 };
	size_t len, lines = 0, folder_lines = 0;
	char *text;

	for (size_t i = 0; i < n; i++) {
		struct state_folder *f =
			add_folder(&st, names[i].name, names[i].delim,
				   (uint32_t)(i + 1) * 1000000u);
		f->uidnext = (uint32_t)(i * 10 + 1);
		f->highestmodseq = i == 0 ? UINT64_MAX : i;
		for (uint32_t u = 1; u < f->uidnext; u += 2)
			cr_assert_eq(uidset_add(&f->saved, u), 0);
		if (i % 3 == 0) {
			f->old_uidvalidity = malloc(2 * sizeof(uint32_t));
			f->old_uidvalidity[0] = 1;
			f->old_uidvalidity[1] = UINT32_MAX;
			f->n_old = 2;
		}
	}
	add_folder(&st, "max", '/', UINT32_MAX)->uidnext = UINT32_MAX;
	cr_assert_eq(uidset_add_range(&st.folders[n].saved, 1, UINT32_MAX),
		     0);

	cr_assert_eq(save_into(dir, &st, &err), ISNAP_OK, "%s", err.msg);

	/* Plain ASCII, one record per line. */
	text = read_file(&len);
	cr_assert_eq(strlen(text), len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		cr_assert(c == '\n' || (c >= 0x20 && c < 0x7f),
			  "byte 0x%02x at %zu", c, i);
		if (c == '\n') {
			lines++;
			if (strncmp(text + i + 1, "folder ", 7) == 0)
				folder_lines++;
		}
	}
	cr_expect_eq(folder_lines, n + 1);
	cr_expect_gt(lines, 5 * (n + 1));
	free(text);

	cr_assert_eq(load_from(dir, &back, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(back.n, st.n);
	for (size_t i = 0; i < st.n; i++)
		expect_same_folder(&st.folders[i], &back.folders[i]);
	state_free(&st);
	state_free(&back);
}

Test(state, fragmented_saved_set_spans_lines_and_round_trips)
{
	struct state st = STATE_INIT, back = STATE_INIT;
	struct isnap_error err = { 0 };
	struct state_folder *f = add_folder(&st, "INBOX", '/', 42);
	size_t len, saved_lines = 0;
	char *text, *p;

	for (uint32_t u = 1; u <= 30001; u += 3)
		cr_assert_eq(uidset_add_range(&f->saved, u, u + 1), 0);
	cr_assert_eq(save_into(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	text = read_file(&len);
	for (p = text; (p = strstr(p, "\nsaved ")) != NULL; p++)
		saved_lines++;
	cr_expect_gt(saved_lines, 1);
	for (p = strtok(text, "\n"); p; p = strtok(NULL, "\n"))
		cr_expect_leq(strlen(p), 1200, "a line of %zu bytes",
			      strlen(p));
	free(text);
	cr_assert_eq(load_from(dir, &back, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(back.n, 1);
	expect_same_folder(f, &back.folders[0]);
	state_free(&st);
	state_free(&back);
}

Test(state, save_replaces_and_leaves_no_temporary)
{
	struct state st = STATE_INIT, back = STATE_INIT;
	struct isnap_error err = { 0 };
	char path[128];
	struct stat sb;

	add_folder(&st, "A", '/', 1);
	cr_assert_eq(save_into(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	st.folders[0].uidvalidity = 2;
	add_folder(&st, "B", '/', 3);
	cr_assert_eq(save_into(dir, &st, &err), ISNAP_OK, "%s", err.msg);

	snprintf(path, sizeof path, "%s/state.tmp", dir);
	cr_expect_neq(access(path, F_OK), 0);
	snprintf(path, sizeof path, "%s/state", dir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0600);

	cr_assert_eq(load_from(dir, &back, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(back.n, 2);
	cr_expect_eq(back.folders[0].uidvalidity, 2);
	cr_expect_str_eq(back.folders[1].name, "B");
	state_free(&st);
	state_free(&back);
}

Test(state, save_into_missing_directory_fails)
{
	struct state st = STATE_INIT;
	struct isnap_error err = { 0 };

	add_folder(&st, "A", '/', 1);
	cr_expect_eq(save_into("/nonexistent/imapsnap-test", &st, &err),
		     ISNAP_ELOCAL);
	cr_expect_neq(err.msg[0], '\0');
	state_free(&st);
}

Test(state, hand_written_file_with_comments_and_blanks)
{
	static const char text[] =
		"imapsnap-state 1\n"
		"# a comment\n"
		"\n"
		"folder \"Sent\" delim nil\n"
		"  uidvalidity 5\n"
		"\tuidnext 10\n"
		"highestmodseq 0   \n"
		"# inside a block\n"
		"saved 1:3\n"
		"saved 9,5\n"
		"old-uidvalidity 4\n"
		"end\n"
		"\n"
		"eof\n";
	struct state st = STATE_INIT;
	struct isnap_error err = { 0 };
	struct state_folder *f;
	char *saved;

	write_file(text, sizeof text - 1);
	cr_assert_eq(load_from(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(st.n, 1);
	f = &st.folders[0];
	cr_expect_str_eq(f->name, "Sent");
	cr_expect_eq(f->delim, '\0');
	cr_expect_eq(f->uidvalidity, 5);
	cr_expect_eq(f->uidnext, 10);
	cr_assert_eq(uidset_format(&f->saved, &saved), 0);
	cr_expect_str_eq(saved, "1:3,5,9");
	free(saved);
	cr_assert_eq(f->n_old, 1);
	cr_expect_eq(f->old_uidvalidity[0], 4);
	state_free(&st);
}

Test(state, empty_state_round_trips)
{
	struct state st = STATE_INIT;
	struct isnap_error err = { 0 };

	cr_assert_eq(save_into(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(load_from(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	cr_expect_eq(st.n, 0);
}

/* A valid block, to build malformed files from. */
#define HDR "imapsnap-state 1\n"
#define OPEN "folder \"INBOX\" delim \"/\"\n"
#define NUMS "uidvalidity 1\nuidnext 2\nhighestmodseq 3\n"
#define GOOD HDR OPEN NUMS "saved 1\nend\n"

static const struct malformed {
	const char *what;
	const char *text;
	unsigned line;
	const char *why; /* words the message must hold */
} malformed[] = {
	{ "empty file", "", 1, "empty" },
	{ "missing header", OPEN NUMS "end\neof\n", 1, "header" },
	{ "indented header", " " HDR "eof\n", 1, "header" },
	{ "newer version", "imapsnap-state 2\neof\n", 1, "version 2" },
	{ "header version overflow", "imapsnap-state 99999999999\neof\n", 1,
	  "too large" },
	{ "bad number", HDR OPEN "uidvalidity 12a\n", 3, "end of the line" },
	{ "missing number", HDR OPEN "uidvalidity\n", 3, "not a number" },
	{ "negative number", HDR OPEN "uidvalidity -1\n", 3, "not a number" },
	{ "uidvalidity >= 2^32", HDR OPEN "uidvalidity 4294967296\n", 3,
	  "too large" },
	{ "uidnext >= 2^32", HDR OPEN "uidvalidity 1\nuidnext 4294967296\n",
	  4, "too large" },
	{ "modseq >= 2^64", HDR OPEN "highestmodseq 18446744073709551616\n",
	  3, "too large" },
	{ "huge number", HDR OPEN "uidnext 99999999999999999999999\n", 3,
	  "too large" },
	{ "UID >= 2^32 in saved", HDR OPEN NUMS "saved 1:4294967296\n", 6,
	  "UID set" },
	{ "empty element in saved", HDR OPEN NUMS "saved 1,,2\n", 6,
	  "UID set" },
	{ "saved without a set", HDR OPEN NUMS "saved\n", 6, "UID set" },
	{ "saved with two sets", HDR OPEN NUMS "saved 1 2\n", 6,
	  "end of the line" },
	{ "UID 0 in saved", HDR OPEN NUMS "saved 0\n", 6, "UID set" },
	{ "unterminated quote", HDR "folder \"INBOX delim nil\n", 2,
	  "unterminated" },
	{ "unquoted name", HDR "folder INBOX delim nil\n", 2, "quoted" },
	{ "bad escape", HDR "folder \"a\\nb\" delim nil\n", 2, "escape" },
	{ "short hex escape", HDR "folder \"a\\x4\" delim nil\n", 2,
	  "escape" },
	{ "NUL escape", HDR "folder \"a\\x00\" delim nil\n", 2, "x00" },
	{ "raw 8-bit byte", HDR "folder \"\xc3\xa9\" delim nil\n", 2,
	  "0xc3" },
	{ "raw control byte", HDR "folder \"a\x01\" delim nil\n", 2,
	  "0x01" },
	{ "raw NUL", HDR "folder \"a\0b\" delim nil\n", 2, "NUL" },
	{ "no delim", HDR "folder \"a\"\n", 2, "delim" },
	{ "two-byte delim", HDR "folder \"a\" delim \"ab\"\n", 2, "one byte" },
	{ "empty delim", HDR "folder \"a\" delim \"\"\n", 2, "one byte" },
	{ "text after folder line", HDR "folder \"a\" delim nil x\n", 2,
	  "end of the line" },
	{ "trailing text", HDR OPEN "uidnext 5 6\n", 3, "end of the line" },
	{ "unknown keyword", HDR OPEN NUMS "colour red\n", 6, "colour" },
	{ "unknown top-level keyword", HDR "colour red\neof\n", 2,
	  "expected folder" },
	{ "keyword in upper case", HDR OPEN "UIDVALIDITY 1\n", 3,
	  "expected a keyword" },
	{ "uidvalidity twice", HDR OPEN NUMS "uidvalidity 1\n", 6, "twice" },
	{ "missing uidnext", HDR OPEN "uidvalidity 1\nhighestmodseq 3\nend\n",
	  5, "lacks uidnext" },
	{ "saved under uidvalidity 0",
	  HDR OPEN "uidvalidity 0\nuidnext 2\nhighestmodseq 0\nsaved 1\nend\n",
	  7, "uidvalidity 0" },
	{ "old-uidvalidity 0", HDR OPEN NUMS "old-uidvalidity 0\n", 6,
	  "not a generation" },
	{ "folder inside a block", HDR OPEN NUMS OPEN, 6, "block's end" },
	{ "eof inside a block", HDR OPEN NUMS "eof\n", 6, "block's end" },
	{ "duplicate folder", GOOD OPEN, 8, "twice" },
	{ "truncated without end", HDR OPEN NUMS "saved 1\n", 7, "no end" },
	{ "truncated without eof", GOOD, 8, "no eof" },
	{ "truncated mid-line", GOOD "eo", 8, "no newline" },
	{ "text after eof", GOOD "eof\n\n", 9, "after the eof" },
	{ "carriage return", HDR "eof\r\n", 2, "end of the line" },
};

Test(state, malformed_files_are_integrity_errors_with_line_numbers)
{
	for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
		const struct malformed *m = &malformed[i];
		struct state st = STATE_INIT;
		struct isnap_error err = { 0 };
		char want[32];
		/* Sizes from the array, since one case holds a NUL. */
		size_t len = strlen(m->text);

		if (strcmp(m->what, "raw NUL") == 0)
			len = sizeof(HDR "folder \"a\0b\" delim nil\n") - 1;
		write_file(m->text, len);
		cr_expect_eq(load_from(dir, &st, &err), ISNAP_EINTEGRITY,
			     "%s: accepted (%s)", m->what, err.msg);
		snprintf(want, sizeof want, "/state:%u: ", m->line);
		cr_expect_not_null(strstr(err.msg, want),
				   "%s: want line %u, got \"%s\"", m->what,
				   m->line, err.msg);
		cr_expect_not_null(strstr(err.msg, m->why),
				   "%s: \"%s\" lacks \"%s\"", m->what,
				   err.msg, m->why);
		cr_expect_eq(st.n, 0, "%s: state not emptied", m->what);
		cr_expect_null(st.folders);
	}
}

Test(state, limits_are_accepted)
{
	static const char text[] =
		HDR "folder \"a\" delim \"\\x2f\"\n"
		"uidvalidity 4294967295\nuidnext 4294967295\n"
		"highestmodseq 18446744073709551615\n"
		"saved 4294967295\nold-uidvalidity 4294967295\nend\neof\n";
	struct state st = STATE_INIT;
	struct isnap_error err = { 0 };

	write_file(text, sizeof text - 1);
	cr_assert_eq(load_from(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(st.n, 1);
	cr_expect_eq(st.folders[0].delim, '/');
	cr_expect_eq(st.folders[0].uidvalidity, UINT32_MAX);
	cr_expect_eq(st.folders[0].highestmodseq, UINT64_MAX);
	cr_expect(uidset_contains(&st.folders[0].saved, UINT32_MAX));
	state_free(&st);
}

Test(state, expunged_set_round_trips_apart_from_saved)
{
	struct state st = STATE_INIT, back = STATE_INIT;
	struct isnap_error err = { 0 };
	struct state_folder *f = add_folder(&st, "INBOX", '/', 7);
	char *text;
	size_t len;

	f->uidnext = 200;
	cr_assert_eq(uidset_add_range(&f->saved, 1, 150), 0);
	cr_assert_eq(uidset_add_range(&f->expunged, 3, 9), 0);
	cr_assert_eq(uidset_add(&f->expunged, 120), 0);
	cr_assert_eq(save_into(dir, &st, &err), ISNAP_OK, "%s", err.msg);
	text = read_file(&len);
	cr_assert(strstr(text, "\nexpunged 3:9,120\n"), "%s", text);
	cr_assert(strstr(text, "\nsaved 1:150\n"), "%s", text);
	free(text);

	cr_assert_eq(load_from(dir, &back, &err), ISNAP_OK, "%s", err.msg);
	f = state_folder(&back, "INBOX", 0);
	cr_assert_not_null(f);
	cr_assert_eq(uidset_count(&f->expunged), 8);
	cr_assert(uidset_contains(&f->expunged, 120));
	cr_assert_not(uidset_contains(&f->expunged, 10));
	cr_assert_eq(uidset_count(&f->saved), 150);

	cr_assert_eq(state_folder_retire(f), 0);
	cr_assert(uidset_empty(&f->expunged));
	state_free(&st);
	state_free(&back);
}
