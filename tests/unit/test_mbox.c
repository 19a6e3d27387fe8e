/* Unit tests for lib/store/mbox.c (with mbox_out.c, mbox_index.c and
 * mboxrd.c beneath it), in a temporary directory: the file's bytes, commit
 * and recovery, generations, locate, and reading back through store_scan. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "store/store.h"

#include "tmpdir.h"

TestSuite(mbox, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static struct store *open_store(const char *format)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };

	cr_assert_eq(store_open(format, dest, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	return s;
}

static struct store_folder folder(const char *name, uint32_t uidvalidity)
{
	return (struct store_folder){ .name = name,
				      .utf8 = name,
				      .delim = '/',
				      .uidvalidity = uidvalidity };
}

static void open_folder(struct store *s, const char *name,
			uint32_t uidvalidity, struct uidset *present)
{
	struct store_folder f = folder(name, uidvalidity);
	struct isnap_error err = { 0 };
	struct uidset scratch = UIDSET_INIT;

	cr_assert_eq(s->ops->open_folder(s, &f, present ? present : &scratch,
					 &err),
		     ISNAP_OK, "%s", err.msg);
	uidset_free(&scratch);
}

static struct store_message msg(uint32_t uid, int64_t date, size_t size)
{
	return (struct store_message){ .uid = uid,
				       .keywords = "",
				       .internaldate = date,
				       .rfc822_size = size,
				       .size = size };
}

static void save_meta(struct store *s, struct store_message begin,
		      struct store_message end, const char *data, size_t len,
		      size_t chunk, struct store_location *loc)
{
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->begin_message(s, &begin, &err), ISNAP_OK, "%s",
		     err.msg);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		cr_assert_eq(s->ops->write(s, data + off, n, &err), ISNAP_OK,
			     "%s", err.msg);
	}
	cr_assert_eq(s->ops->end_message(s, &end, &err), ISNAP_OK, "%s",
		     err.msg);
	if (loc)
		s->ops->locate(s, loc);
}

static void save(struct store *s, uint32_t uid, int64_t date,
		 const char *data, struct store_location *loc)
{
	size_t len = strlen(data);

	save_meta(s, msg(uid, date, len), msg(uid, date, len), data, len, 7,
		  loc);
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

static bool exists(const char *rel)
{
	char path[512];

	path_of(path, sizeof path, rel);
	return access(path, F_OK) == 0;
}

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
	buf[sb.st_size] = '\0';
	fclose(fp);
	*len = (size_t)sb.st_size;
	return buf;
}

static void append_file(const char *rel, const void *data, size_t len)
{
	char path[512];
	FILE *fp;

	path_of(path, sizeof path, rel);
	fp = fopen(path, "ab");
	cr_assert_not_null(fp, "cannot open %s", path);
	cr_assert_eq(fwrite(data, 1, len, fp), len);
	cr_assert_eq(fclose(fp), 0);
}

static void remove_file(const char *rel)
{
	char path[512];

	path_of(path, sizeof path, rel);
	cr_assert_eq(unlink(path), 0, "%s", path);
}

static off_t size_of(const char *rel)
{
	char path[512];
	struct stat sb;

	path_of(path, sizeof path, rel);
	cr_assert_eq(stat(path, &sb), 0, "%s", path);
	return sb.st_size;
}

/* gunzip of a whole file, members concatenated; fails the test on any
 * error, trailing garbage or a member cut short. */
static char *gunzip(const char *rel, size_t *out_len)
{
	size_t in_len, cap = 1 << 16, len = 0;
	char *in = slurp(rel, &in_len), *out = malloc(cap);
	z_stream z = { 0 };
	int zr = Z_STREAM_END;

	cr_assert_not_null(out);
	cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)in_len;
	while (z.avail_in) {
		if (zr == Z_STREAM_END)
			cr_assert_eq(inflateReset(&z), Z_OK);
		if (len == cap)
			cr_assert_not_null(out = realloc(out, cap *= 2));
		z.next_out = (Bytef *)out + len;
		z.avail_out = (uInt)(cap - len);
		zr = inflate(&z, Z_NO_FLUSH);
		cr_assert(zr == Z_OK || zr == Z_STREAM_END,
			  "inflate: %d at %zu", zr, in_len - z.avail_in);
		len = cap - z.avail_out;
	}
	cr_assert_eq(zr, Z_STREAM_END, "the last member is not complete");
	inflateEnd(&z);
	free(in);
	out = realloc(out, len + 1);
	out[len] = '\0';
	*out_len = len;
	return out;
}

/* The uncompressed content of folder file `rel` in either format. */
static char *content(const char *format, const char *rel, size_t *len)
{
	return strcmp(format, "mbox.gz") == 0 ? gunzip(rel, len)
					      : slurp(rel, len);
}

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	cr_assert_eq(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
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

/* A message with CRLF, a lone CR, NUL, 8-bit, and From lines to quote. */
static const char body1[] = "Return-Path: <alice@example.org>\r\n"
			    "From: alice@example.org\r\n"
			    "Subject: one\r\n"
			    "\r\n"
			    "From here\r\n>From there\r\n>>From everywhere\r\n"
			    "lone\rcr\r\n";
/* The Status: line mbox writes after the From line (unread: "O"). */
#define ST "Status: O\n"
static const char stored1[] = ST "Return-Path: <alice@example.org>\n"
			      "From: alice@example.org\n"
			      "Subject: one\n"
			      "\n"
			      ">From here\n>>From there\n>>>From everywhere\n"
			      "lone\rcr\n";
/* No Return-Path, no final line end. */
static const char body2[] = "Subject: two\r\n\r\nno end";
static const char stored2[] = ST "Subject: two\n\nno end\n";

/* 1700000000 is Tue Nov 14 22:13:20 2023 UTC. */
#define DATE1 1700000000
#define FROM1 "From alice@example.org Tue Nov 14 22:13:20 2023\n"
#define FROM2 "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"

/* ---------------------------------------------------------------------- */
/* The file                                                                */

static void writes_mboxrd(const char *format, const char *file)
{
	struct store *s = open_store(format);
	size_t len;
	char *got;

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body1, NULL);
	save(s, 2, 0, body2, NULL);
	commit(s);
	close_folder(s);
	store_free(s);
	got = content(format, file, &len);
	cr_expect_str_eq(got, FROM1 ST "Return-Path: <alice@example.org>\n"
			      "From: alice@example.org\n"
			      "Subject: one\n"
			      "\n"
			      ">From here\n>>From there\n>>>From everywhere\n"
			      "lone\rcr\n"
			      "\n" FROM2 ST "Subject: two\n\nno end\n\n");
	cr_expect_eq(len, strlen(got));
	free(got);
}

Test(mbox, writes_from_lines_quoting_and_blank_lines)
{
	writes_mboxrd("mbox", "INBOX.mbox");
	cr_expect(exists(".imapsnap/mbox/INBOX.mbox.idx"));
}

Test(mbox, gzip_holds_the_same_bytes)
{
	writes_mboxrd("mbox.gz", "INBOX.mbox.gz");
	cr_expect(exists(".imapsnap/mbox/INBOX.mbox.gz.idx"));
	cr_expect_not(exists("INBOX.mbox"));
}

/* The flags as mutt writes them: Status: R(ead) O(ld), X-Status:
 * A(nswered) F(lagged), and Dovecot's T (draft) and D (deleted). */
Test(mbox, status_lines_carry_the_flags)
{
	static const struct {
		unsigned flags;
		const char *lines;
	} cases[] = {
		{ 0, "Status: O\n" },
		{ STORE_FLAG_SEEN, "Status: RO\n" },
		{ STORE_FLAG_SEEN | STORE_FLAG_FLAGGED | STORE_FLAG_ANSWERED,
		  "Status: RO\nX-Status: AF\n" },
		{ STORE_FLAG_DRAFT | STORE_FLAG_DELETED | STORE_FLAG_FORWARDED,
		  "Status: O\nX-Status: TD\n" },
	};
	struct store *s = open_store("mbox");
	struct store_location loc;
	size_t len;
	char *got;

	open_folder(s, "INBOX", 7, NULL);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct store_message m = msg((uint32_t)i + 1, DATE1,
					     strlen(body2));
		m.flags = cases[i].flags;
		save_meta(s, m, m, body2, strlen(body2), 7, &loc);
		cr_expect_str_eq(loc.added, cases[i].lines);
		cr_expect_eq(loc.stored_size,
			     strlen(cases[i].lines) + strlen(stored2) -
				     strlen(ST));
	}
	close_folder(s);
	store_free(s);
	got = slurp("INBOX.mbox", &len);
	cr_expect_not_null(strstr(got, "2023\nStatus: RO\nX-Status: AF\n"
				       "Subject: two\n"));
	free(got);
}

Test(mbox, an_empty_gzip_folder_is_a_valid_gzip_file)
{
	struct store *s = open_store("mbox.gz");
	size_t len;
	char *got;

	open_folder(s, "Empty", 7, NULL);
	close_folder(s);
	store_free(s);
	cr_expect_gt(size_of("Empty.mbox.gz"), 0);
	got = gunzip("Empty.mbox.gz", &len);
	cr_expect_eq(len, 0);
	free(got);
	/* Messages added later follow on from it, as one stream. */
	s = open_store("mbox.gz");
	open_folder(s, "Empty", 7, NULL);
	save(s, 1, DATE1, body2, NULL);
	close_folder(s);
	store_free(s);
	got = gunzip("Empty.mbox.gz", &len);
	cr_expect_eq(len, 44 + strlen(stored2) + 1);
	free(got);
}

Test(mbox, nested_folders_are_directories)
{
	struct store *s = open_store("mbox");

	open_folder(s, "Archive/2019", 7, NULL);
	save(s, 1, DATE1, body2, NULL);
	close_folder(s);
	store_free(s);
	cr_expect(exists("Archive/2019.mbox"));
	cr_expect(exists(".imapsnap/mbox/Archive/2019.mbox.idx"));
}

/* The sender: the first Return-Path of the header section, if fit. */
static void expect_sender(const char *message, const char *from_line)
{
	struct store *s = open_store("mbox");
	size_t len;
	char *got;

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, 0, message, NULL);
	close_folder(s);
	store_free(s);
	got = slurp("INBOX.mbox", &len);
	cr_expect_eq(strncmp(got, from_line, strlen(from_line)), 0,
		     "got \"%.60s\" for \"%.40s\"", got, message);
	free(got);
	remove_file("INBOX.mbox");
	remove_file(".imapsnap/mbox/INBOX.mbox.idx");
}

Test(mbox, sender_from_return_path)
{
	expect_sender("return-path:   <b@x.example>  \r\nX: y\r\n\r\nz\r\n",
		      "From b@x.example Thu Jan  1");
	expect_sender("Return-Path: c@x.example\n\nz\n",
		      "From c@x.example Thu");
	expect_sender("Return-Path: <>\r\n\r\nbounce\r\n",
		      "From MAILER-DAEMON Thu");
	expect_sender("Return-Path: <a b@x>\r\n\r\nz\r\n",
		      "From MAILER-DAEMON Thu");
	/* Only the header section counts. */
	expect_sender("X: y\r\n\r\nReturn-Path: <no@x>\r\n",
		      "From MAILER-DAEMON Thu");
	expect_sender("Return-Path: <first@x>\nReturn-Path: <second@x>\n\n",
		      "From first@x Thu");
}

Test(mbox, date_known_only_at_the_end)
{
	struct store *s = open_store("mbox");
	static char big[100000];
	size_t len;
	char *got;

	open_folder(s, "INBOX", 7, NULL);
	/* Small: the From line waits for end_message's date. */
	save_meta(s, msg(1, STORE_NO_DATE, strlen(body2)),
		  msg(1, DATE1, strlen(body2)), body2, strlen(body2), 3, NULL);
	/* Larger than what the store holds back: the epoch. */
	memset(big, 'a', sizeof big);
	big[sizeof big - 1] = '\n';
	save_meta(s, msg(2, STORE_NO_DATE, sizeof big),
		  msg(2, DATE1, sizeof big), big, sizeof big, 4096, NULL);
	close_folder(s);
	store_free(s);
	got = slurp("INBOX.mbox", &len);
	cr_expect_eq(strncmp(got, "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n",
			     44),
		     0, "%.60s", got);
	cr_expect_not_null(strstr(got, "\n\nFrom MAILER-DAEMON Thu Jan  1 "
				       "00:00:00 1970\n" ST "aaaa"));
	cr_expect_eq(len, 44 + strlen(stored2) + 1 + 44 + strlen(ST) +
				  sizeof big + 1);
	free(got);
}

/* ---------------------------------------------------------------------- */
/* Commit, present, recovery                                               */

static void reopen_reports_present(const char *format)
{
	struct store *s = open_store(format);
	struct uidset present = UIDSET_INIT;
	struct store_message m = msg(2, DATE1, 3);
	struct isnap_error err = { 0 };

	open_folder(s, "INBOX", 7, NULL);
	save(s, 2, DATE1, body1, NULL);
	save(s, 3, DATE1, body2, NULL);
	save(s, 9, DATE1, body2, NULL);
	close_folder(s);
	store_free(s);

	s = open_store(format);
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "2:3,9");
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	cr_expect_not_null(strstr(err.msg, "already saved"), "%s", err.msg);
	close_folder(s);
	store_free(s);
	uidset_free(&present);
}

Test(mbox, reopen_reports_committed_uids)
{
	reopen_reports_present("mbox");
}

Test(mbox, reopen_reports_committed_uids_gz)
{
	reopen_reports_present("mbox.gz");
}

Test(mbox, a_uid_is_written_once_per_run)
{
	struct store *s = open_store("mbox");
	struct store_message m = msg(4, DATE1, 1);
	struct isnap_error err = { 0 };

	open_folder(s, "INBOX", 7, NULL);
	save(s, 4, DATE1, "x", NULL);
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	m.uid = 0;
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	close_folder(s);
	store_free(s);
}

/* A run that dies after writing but before commit: the next open cuts the
 * file back and does not report the uncommitted UIDs. */
static void crash_before_commit(const char *format, const char *file,
				const char *idx)
{
	struct store *s = open_store(format);
	struct uidset present = UIDSET_INIT;
	off_t committed, idx_size;
	size_t len, want_len;
	char *got, *want;

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body1, NULL);
	commit(s);
	close_folder(s);
	store_free(s);
	committed = size_of(file);
	idx_size = size_of(idx);
	want = content(format, file, &want_len);

	/* What a killed run leaves: more bytes in the file (a torn
	 * message), and a torn line in the index. */
	append_file(file, "From x Thu Jan  1 00:00:00 1970\nSubject: t", 42);
	append_file(idx, "7 5 999 12", 10);

	s = open_store(format);
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1");
	cr_expect_eq(size_of(file), committed);
	cr_expect_eq(size_of(idx), idx_size);
	save(s, 5, DATE1, body2, NULL);
	close_folder(s);
	store_free(s);

	got = content(format, file, &len);
	cr_assert_eq(len, want_len + 44 + strlen(stored2) + 1);
	cr_expect_eq(memcmp(got, want, want_len), 0);
	cr_expect_str_eq(got + want_len,
			 "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n" ST
			 "Subject: two\n\nno end\n\n");
	free(got);
	free(want);
	uidset_free(&present);
}

Test(mbox, killed_run_is_cut_back_on_open)
{
	crash_before_commit("mbox", "INBOX.mbox",
			    ".imapsnap/mbox/INBOX.mbox.idx");
}

Test(mbox, killed_run_is_cut_back_on_open_gz)
{
	crash_before_commit("mbox.gz", "INBOX.mbox.gz",
			    ".imapsnap/mbox/INBOX.mbox.gz.idx");
}

Test(mbox, free_without_commit_discards)
{
	struct store *s = open_store("mbox");
	struct uidset present = UIDSET_INIT;

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body2, NULL);
	commit(s);
	save(s, 2, DATE1, body1, NULL);
	store_free(s); /* no commit */
	cr_expect_eq(size_of("INBOX.mbox"),
		     (off_t)(44 + strlen(stored2) + 1));
	s = open_store("mbox");
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1");
	close_folder(s);
	store_free(s);
	uidset_free(&present);
}

/* An index line that is complete but does not follow on (a zero-filled
 * block after a crash) ends the valid part too. */
Test(mbox, garbage_in_the_index_tail_is_dropped)
{
	struct store *s = open_store("mbox");
	struct uidset present = UIDSET_INIT;
	static const char zeros[20];

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body2, NULL);
	close_folder(s);
	store_free(s);
	append_file(".imapsnap/mbox/INBOX.mbox.idx", zeros, sizeof zeros);
	append_file(".imapsnap/mbox/INBOX.mbox.idx", "\n7 2 0 10 10\n", 13);
	s = open_store("mbox");
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1");
	save(s, 2, DATE1, body2, NULL);
	close_folder(s);
	store_free(s);
	uidset_free(&present);
	s = open_store("mbox");
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1:2");
	close_folder(s);
	store_free(s);
	uidset_free(&present);
}

Test(mbox, refuses_a_file_without_its_index)
{
	struct store *s = open_store("mbox");
	struct store_folder f = folder("INBOX", 7);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };

	append_file("INBOX.mbox", "From a b\n\nmail\n\n", 16);
	cr_expect_eq(s->ops->open_folder(s, &f, &present, &err),
		     ISNAP_EFOLDER);
	cr_expect_not_null(strstr(err.msg, "index"), "%s", err.msg);
	cr_expect_eq(size_of("INBOX.mbox"), 16, "the file was not touched");
	cr_expect_not(exists(".imapsnap/mbox/INBOX.mbox.idx"));
	store_free(s);
}

static void write_whole(const char *rel, const char *data, size_t len)
{
	char path[512];
	FILE *fp;

	path_of(path, sizeof path, rel);
	fp = fopen(path, "wb");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(data, 1, len, fp), len);
	cr_assert_eq(fclose(fp), 0);
}

/* A file cut in the middle of a message: the messages before it are
 * held, the rest of that message is kept under .imapsnap/damaged/, and
 * the messages saved again follow on as if nothing had happened. */
Test(mbox, a_file_cut_short_keeps_what_is_whole)
{
	struct store *s = open_store("mbox");
	struct uidset present = UIDSET_INIT;
	size_t len, want_len, one = strlen(FROM1) + strlen(stored1) + 1;
	char path[512], aside[128], *got, *want;

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body1, NULL);
	save(s, 2, DATE1, body2, NULL);
	close_folder(s);
	want = slurp("INBOX.mbox", &want_len);
	path_of(path, sizeof path, "INBOX.mbox");
	cr_assert_eq(truncate(path, (off_t)(one + 10)), 0);
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1");
	cr_expect_eq(size_of("INBOX.mbox"), (off_t)one);
	snprintf(aside, sizeof aside, ".imapsnap/damaged/INBOX.mbox@%zu",
		 one);
	got = slurp(aside, &len);
	cr_expect_eq(len, 10);
	cr_expect_eq(memcmp(got, want + one, 10), 0);
	free(got);
	save(s, 2, DATE1, body2, NULL);
	close_folder(s);
	got = slurp("INBOX.mbox", &len);
	cr_expect_eq(len, want_len);
	cr_expect_eq(memcmp(got, want, len), 0);
	free(got);
	uidset_free(&present);
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1:2");
	close_folder(s);
	free(want);
	uidset_free(&present);
	store_free(s);
}

struct moved_seen {
	uint32_t uid[4];
	char from[4][64], to[4][64];
	int n;
};

static void on_moved(void *ctx, uint32_t uid, const char *from,
		     const struct store_location *to)
{
	struct moved_seen *m = ctx;

	cr_assert_lt(m->n, 4);
	m->uid[m->n] = uid;
	snprintf(m->from[m->n], 64, "%.60s", from);
	snprintf(m->to[m->n], 64, "%.60s", to->location);
	m->n++;
}

/* What Python's mailbox does when it removes a message: the others move
 * up, and the last loses its blank line.  The file is read again: the
 * messages still in it are held where they are now and reported moved,
 * the blank line comes back, and the next open trusts the new index. */
Test(mbox, a_file_rewritten_by_a_reader_is_read_again)
{
	struct store *s = open_store("mbox");
	struct uidset present = UIDSET_INIT;
	struct moved_seen m = { .n = 0 };
	size_t len, one = strlen(FROM1) + strlen(stored1) + 1;
	size_t two = strlen(FROM2) + strlen(stored2) + 1;
	char *got, *rewritten, want_from[64], want_to[64];

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body1, NULL);
	save(s, 2, 0, body2, NULL);
	save(s, 3, DATE1, body1, NULL);
	close_folder(s);
	got = slurp("INBOX.mbox", &len);
	cr_assert_eq(len, 2 * one + two);
	rewritten = malloc(len);
	memcpy(rewritten, got, one);
	memcpy(rewritten + one, got + one + two, one - 1);
	write_whole("INBOX.mbox", rewritten, 2 * one - 1);
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1,3");
	s->ops->moves(s, on_moved, &m);
	cr_assert_eq(m.n, 1);
	cr_expect_eq(m.uid[0], 3);
	snprintf(want_from, sizeof want_from, "INBOX.mbox@%zu", one + two);
	snprintf(want_to, sizeof want_to, "INBOX.mbox@%zu", one);
	cr_expect_str_eq(m.from[0], want_from);
	cr_expect_str_eq(m.to[0], want_to);
	close_folder(s);
	free(got);
	got = slurp("INBOX.mbox", &len);
	cr_expect_eq(len, 2 * one, "the blank line is back");
	free(got);
	uidset_free(&present);
	m.n = 0;
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1,3");
	s->ops->moves(s, on_moved, &m);
	cr_expect_eq(m.n, 0);
	close_folder(s);
	free(rewritten);
	uidset_free(&present);
	store_free(s);
}

/* The largest UIDVALIDITY and UID: their identity lines fit, and the
 * identities are found again when the file must be read. */
Test(mbox, identities_of_the_largest_uids)
{
	struct store *s = open_store("mbox");
	struct uidset present = UIDSET_INIT;
	size_t len;
	char *ids, path[512];

	open_folder(s, "INBOX", 4294967295u, NULL);
	save(s, 4294967294u, DATE1, body1, NULL);
	save(s, 4294967295u, DATE1, body2, NULL);
	close_folder(s);
	ids = slurp(".imapsnap/mbox/INBOX.mbox.ids", &len);
	cr_expect_eq(len, 2 * (10 + 1 + 10 + 1 + 64 + 1));
	cr_expect_eq(strncmp(ids, "4294967295 4294967294 ", 22), 0);
	free(ids);
	/* Changed since the commit (ctime): read again, both there. */
	path_of(path, sizeof path, "INBOX.mbox");
	cr_assert_eq(utimes(path, NULL), 0);
	open_folder(s, "INBOX", 4294967295u, &present);
	expect_set(&present, "4294967294:4294967295");
	close_folder(s);
	uidset_free(&present);
	store_free(s);
}

/* The file gone: nothing is held, a new one is started. */
Test(mbox, a_file_deleted_holds_nothing)
{
	struct store *s = open_store("mbox.gz");
	struct uidset present = UIDSET_INIT;
	char path[512];

	open_folder(s, "INBOX", 7, NULL);
	save(s, 1, DATE1, body1, NULL);
	close_folder(s);
	path_of(path, sizeof path, "INBOX.mbox.gz");
	cr_assert_eq(unlink(path), 0);
	open_folder(s, "INBOX", 7, &present);
	cr_expect(uidset_empty(&present));
	save(s, 1, DATE1, body1, NULL);
	close_folder(s);
	uidset_free(&present);
	open_folder(s, "INBOX", 7, &present);
	expect_set(&present, "1");
	close_folder(s);
	uidset_free(&present);
	store_free(s);
}

/* ---------------------------------------------------------------------- */
/* Abort                                                                   */

static void abort_leaves_nothing(const char *format, const char *file)
{
	struct store *s = open_store(format);
	struct store_message m = msg(2, DATE1, strlen(body1));
	struct isnap_error err = { 0 };
	size_t len;
	char *got;

	open_folder(s, "INBOX", 7, NULL);
	/* Aborted as the first message of a gzip member, and in the middle
	 * of one; and once more after more than the buffer was written. */
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, body1, 40, &err), ISNAP_OK);
	s->ops->abort_message(s);
	save(s, 1, DATE1, body2, NULL);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, body1, strlen(body1) - 1, &err),
		     ISNAP_OK);
	s->ops->abort_message(s);
	{
		static char big[300000];
		struct store_message b = msg(4, DATE1, sizeof big);
		memset(big, 'b', sizeof big);
		cr_assert_eq(s->ops->begin_message(s, &b, &err), ISNAP_OK);
		cr_assert_eq(s->ops->write(s, big, sizeof big - 1, &err),
			     ISNAP_OK);
		/* One byte short: end_message discards it. */
		b.size = sizeof big;
		cr_expect_eq(s->ops->end_message(s, &b, &err), ISNAP_EMSG);
		s->ops->abort_message(s); /* harmless now */
	}
	save(s, 3, DATE1, body1, NULL);
	commit(s);
	/* And aborted right after a commit, then nothing more. */
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, body1, 10, &err), ISNAP_OK);
	close_folder(s);
	store_free(s);
	got = content(format, file, &len);
	cr_expect_str_eq(got, "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n" ST
			      "Subject: two\n\nno end\n\n" FROM1 ST
			      "Return-Path: <alice@example.org>\n"
			      "From: alice@example.org\n"
			      "Subject: one\n"
			      "\n"
			      ">From here\n>>From there\n>>>From everywhere\n"
			      "lone\rcr\n\n");
	free(got);
}

Test(mbox, abort_leaves_nothing)
{
	abort_leaves_nothing("mbox", "INBOX.mbox");
}

Test(mbox, abort_leaves_nothing_gz)
{
	abort_leaves_nothing("mbox.gz", "INBOX.mbox.gz");
}

/* ---------------------------------------------------------------------- */
/* Generations                                                             */

static void generations(const char *format, const char *ext)
{
	struct store *s = open_store(format);
	struct store_folder f = folder("Archive/2019", 5);
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };
	char file[64], aside[64], idx[96], idx_aside[96];
	size_t before_len, after_len;
	char *before, *after;

	snprintf(file, sizeof file, "Archive/2019%s", ext);
	snprintf(aside, sizeof aside, "Archive/.2019.uidvalidity-5%s", ext);
	snprintf(idx, sizeof idx, ".imapsnap/mbox/%s.idx", file);
	snprintf(idx_aside, sizeof idx_aside, ".imapsnap/mbox/%s.idx", aside);
	open_folder(s, "Archive/2019", 5, NULL);
	save(s, 1, DATE1, body1, NULL);
	close_folder(s);
	before = slurp(file, &before_len);

	f.uidvalidity = 6;
	cr_assert_eq(s->ops->retire_generation(s, &f, 5, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect_not(exists(file));
	cr_expect(exists(aside));
	cr_expect(exists(idx_aside));
	cr_expect_not(exists(idx));
	after = slurp(aside, &after_len);
	cr_expect_eq(after_len, before_len);
	cr_expect_eq(memcmp(before, after, before_len), 0, "kept as it was");
	/* Again (an interrupted run): nothing more to do. */
	cr_assert_eq(s->ops->retire_generation(s, &f, 5, &err), ISNAP_OK,
		     "%s", err.msg);

	open_folder(s, "Archive/2019", 6, &present);
	cr_expect(uidset_empty(&present));
	save(s, 1, DATE1, body2, NULL);
	close_folder(s);
	cr_expect(exists(file));
	cr_assert_eq(s->ops->retire_generation(s, &f, 5, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect(exists(file), "a newer generation stays");
	store_free(s);
	free(before);
	free(after);
	uidset_free(&present);
}

Test(mbox, retire_moves_the_generation_aside)
{
	generations("mbox", ".mbox");
}

Test(mbox, retire_moves_the_generation_aside_gz)
{
	generations("mbox.gz", ".mbox.gz");
}

/* The index says another UIDVALIDITY and no one retired it (the state was
 * lost): open_folder keeps the old file aside instead of mixing. */
Test(mbox, open_with_another_uidvalidity_keeps_the_old_file)
{
	struct store *s = open_store("mbox");
	struct uidset present = UIDSET_INIT;

	open_folder(s, "INBOX", 5, NULL);
	save(s, 1, DATE1, body1, NULL);
	close_folder(s);
	open_folder(s, "INBOX", 8, &present);
	cr_expect(uidset_empty(&present));
	close_folder(s);
	store_free(s);
	cr_expect(exists(".INBOX.uidvalidity-5.mbox"));
	cr_expect(exists(".imapsnap/mbox/.INBOX.uidvalidity-5.mbox.idx"));
}

Test(mbox, retire_refuses_to_overwrite_a_kept_generation)
{
	struct store *s = open_store("mbox");
	struct store_folder f = folder("INBOX", 6);
	struct isnap_error err = { 0 };

	open_folder(s, "INBOX", 5, NULL);
	save(s, 1, DATE1, body1, NULL);
	close_folder(s);
	append_file(".INBOX.uidvalidity-5.mbox", "x", 1);
	cr_expect_eq(s->ops->retire_generation(s, &f, 5, &err),
		     ISNAP_EFOLDER);
	cr_expect(exists("INBOX.mbox"));
	cr_expect_eq(size_of(".INBOX.uidvalidity-5.mbox"), 1);
	store_free(s);
}

/* ---------------------------------------------------------------------- */
/* locate and store_scan                                                   */

struct seen {
	char loc[16][4200];
	unsigned char sha[16][32];
	size_t size[16];
	EVP_MD_CTX *md;
	int n;
	bool open;
};

static enum isnap_status seen_begin(void *ctx, const char *location,
				    struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert_lt(v->n, 16);
	cr_assert_not(v->open, "begin twice");
	strcpy(v->loc[v->n], location);
	v->size[v->n] = 0;
	v->open = true;
	cr_assert_eq(EVP_DigestInit_ex(v->md, EVP_sha256(), NULL), 1);
	return ISNAP_OK;
}

static enum isnap_status seen_data(void *ctx, const void *data, size_t len,
				   struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert(v->open);
	v->size[v->n] += len;
	cr_assert_eq(EVP_DigestUpdate(v->md, data, len), 1);
	return ISNAP_OK;
}

static enum isnap_status seen_end(void *ctx, struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert(v->open);
	cr_assert_eq(EVP_DigestFinal_ex(v->md, v->sha[v->n], NULL), 1);
	v->open = false;
	v->n++;
	return ISNAP_OK;
}

static void scan(const char *format, struct seen *v)
{
	struct store_scan_cb cb = { .ctx = v, .begin = seen_begin,
				    .data = seen_data, .end = seen_end };
	struct isnap_error err = { 0 };

	memset(v, 0, sizeof *v);
	v->md = EVP_MD_CTX_new();
	cr_assert_eq(store_scan(format, dest, &cb, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_not(v->open);
	EVP_MD_CTX_free(v->md);
}

static int find(const struct seen *v, const char *loc)
{
	for (int i = 0; i < v->n; i++)
		if (!strcmp(v->loc[i], loc))
			return i;
	return -1;
}

static void locate_matches_scan(const char *format, const char *ext)
{
	struct store *s = open_store(format);
	struct store_folder f = folder("INBOX", 6);
	struct isnap_error err = { 0 };
	struct store_location loc[4];
	unsigned char want[32];
	struct seen *v = malloc(sizeof *v);
	char name[64];

	cr_assert_not_null(v);
	open_folder(s, "INBOX", 5, NULL);
	save(s, 1, DATE1, body1, &loc[0]);
	save(s, 2, DATE1, body2, &loc[1]);
	close_folder(s);
	cr_assert_eq(s->ops->retire_generation(s, &f, 5, &err), ISNAP_OK);
	open_folder(s, "INBOX", 6, NULL);
	save(s, 1, DATE1, body2, &loc[2]);
	close_folder(s);
	open_folder(s, "a/b", 6, NULL);
	save(s, 3, DATE1, "", &loc[3]);
	close_folder(s);
	store_free(s);

	snprintf(name, sizeof name, "INBOX%s@0", ext);
	cr_expect_str_eq(loc[0].location, name);
	snprintf(name, sizeof name, "INBOX%s@%zu", ext,
		 strlen(FROM1) + strlen(stored1) + 1);
	cr_expect_str_eq(loc[1].location, name);
	cr_expect_eq(loc[0].stored_size, strlen(stored1));
	cr_expect(loc[0].has_stored_sha256);
	sha256(stored1, strlen(stored1), want);
	cr_expect_eq(memcmp(loc[0].stored_sha256, want, 32), 0);
	sha256(stored2, strlen(stored2), want);
	cr_expect_eq(memcmp(loc[1].stored_sha256, want, 32), 0);
	cr_expect_eq(loc[3].stored_size, strlen(ST),
		     "an empty message is its Status: line");
	cr_expect_str_eq(loc[3].added, ST);

	scan(format, v);
	cr_expect_eq(v->n, 4);
	/* The retired generation under its new name, same offsets. */
	snprintf(name, sizeof name, ".INBOX.uidvalidity-5%s@0", ext);
	cr_expect_geq(find(v, name), 0, "%s", name);
	snprintf(name, sizeof name, ".INBOX.uidvalidity-5%s@%zu", ext,
		 strlen(FROM1) + strlen(stored1) + 1);
	cr_expect_geq(find(v, name), 0, "%s", name);
	for (int i = 2; i < 4; i++) {
		int k = find(v, loc[i].location);
		cr_assert_geq(k, 0, "%s not found by scan", loc[i].location);
		cr_expect_eq(v->size[k], loc[i].stored_size);
		cr_expect_eq(memcmp(v->sha[k], loc[i].stored_sha256, 32), 0,
			     "%s", loc[i].location);
	}
	for (int i = 0; i < v->n; i++)
		if (strstr(v->loc[i], "uidvalidity-5") &&
		    strstr(v->loc[i], "@0")) {
			cr_expect_eq(v->size[i], loc[0].stored_size);
			cr_expect_eq(memcmp(v->sha[i], loc[0].stored_sha256,
					    32),
				     0);
		}
	free(v);
}

Test(mbox, locate_matches_scan)
{
	locate_matches_scan("mbox", ".mbox");
}

Test(mbox, locate_matches_scan_gz)
{
	locate_matches_scan("mbox.gz", ".mbox.gz");
}

/* Several runs append one gzip member each (at least). */
Test(mbox, gzip_runs_append_members)
{
	size_t len;
	char *got;

	for (uint32_t run = 1; run <= 3; run++) {
		struct store *s = open_store("mbox.gz");
		open_folder(s, "INBOX", 7, NULL);
		save(s, run, DATE1, body2, NULL);
		close_folder(s);
		store_free(s);
	}
	got = gunzip("INBOX.mbox.gz", &len);
	cr_expect_eq(len, 3 * (44 + strlen(stored2) + 1));
	free(got);
}

Test(mbox, large_message_streams_through)
{
	struct store *s = open_store("mbox.gz");
	size_t n = 3000000, len; /* whole lines */
	char *big = malloc(n), *got;
	struct store_location loc;
	unsigned char want[32];

	cr_assert_not_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = "From abc\r\n"[i % 10];
	open_folder(s, "INBOX", 7, NULL);
	save_meta(s, msg(1, DATE1, n), msg(1, DATE1, n), big, n, 65536, &loc);
	close_folder(s);
	store_free(s);
	got = gunzip("INBOX.mbox.gz", &len);
	/* Every "From abc\r\n" line becomes ">From abc\n". */
	cr_expect_eq(loc.stored_size, strlen(ST) + n);
	cr_expect_eq(len, 44 + strlen(ST) + n + 1);
	sha256(got + 44, strlen(ST) + n, want);
	cr_expect_eq(memcmp(loc.stored_sha256, want, 32), 0);
	free(big);
	free(got);
}
