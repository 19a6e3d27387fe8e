/* Unit tests for store_scan: the Maildir scanner (maildir_scan.c) against
 * what maildir.c's locate() gives, the mbox splitter on hand-made files,
 * and every scanner on corrupt and hostile content, which must end in an
 * error, never a crash. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "beneath.h"
#include "store/store.h"

#include "tmpdir.h"

TestSuite(scan, .init = tmpdir_setup, .fini = tmpdir_teardown);

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

#define MAX_SEEN 64

struct seen {
	char loc[MAX_SEEN][256];
	char data[MAX_SEEN][256];
	size_t len[MAX_SEEN];
	int n;
	bool open;
};

static enum isnap_status seen_begin(void *ctx, const char *location,
				    struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert_not(v->open, "begin without end");
	cr_assert_lt(v->n, MAX_SEEN);
	snprintf(v->loc[v->n], sizeof v->loc[0], "%s", location);
	v->len[v->n] = 0;
	v->open = true;
	return ISNAP_OK;
}

static enum isnap_status seen_data(void *ctx, const void *data, size_t len,
				   struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert(v->open, "data outside a message");
	cr_assert_gt(len, 0);
	if (v->len[v->n] + len > sizeof v->data[0])
		len = sizeof v->data[0] - v->len[v->n]; /* keep the start */
	memcpy(v->data[v->n] + v->len[v->n], data, len);
	v->len[v->n] += len;
	return ISNAP_OK;
}

static enum isnap_status seen_end(void *ctx, struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert(v->open, "end without begin");
	v->open = false;
	v->n++;
	return ISNAP_OK;
}

static enum isnap_status scan(const char *format, const char *where,
			      struct seen *v, struct isnap_error *err)
{
	struct store_scan_cb cb = { .ctx = v, .begin = seen_begin,
				    .data = seen_data, .end = seen_end };

	memset(v, 0, sizeof *v);
	memset(err, 0, sizeof *err);
	return store_scan(format, where, &cb, err);
}

static void put(const char *rel, const void *data, size_t len)
{
	char path[512], *slash;
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", dest, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	int fd = beneath_open_top(path, true);
	cr_assert_geq(fd, 0, "%s", path);
	close(fd);
	*slash = '/';
	fp = fopen(path, "wb");
	cr_assert_not_null(fp, "%s", path);
	cr_assert_eq(fwrite(data, 1, len, fp), len);
	cr_assert_eq(fclose(fp), 0);
}

static void put_str(const char *rel, const char *text)
{
	put(rel, text, strlen(text));
}

static int find(const struct seen *v, const char *loc)
{
	for (int i = 0; i < v->n; i++)
		if (!strcmp(v->loc[i], loc))
			return i;
	return -1;
}

static void expect_message(const struct seen *v, const char *loc,
			   const char *data)
{
	int i = find(v, loc);

	cr_assert_geq(i, 0, "no message at %s", loc);
	cr_expect_eq(v->len[i], strlen(data), "%s", loc);
	cr_expect_eq(memcmp(v->data[i], data, v->len[i]), 0,
		     "%s: \"%.*s\"", loc, (int)v->len[i], v->data[i]);
}

/* gzip of `text` as one member. */
static size_t gz(const char *text, size_t len, unsigned char *out, size_t cap)
{
	z_stream z = { 0 };

	cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8,
				  Z_DEFAULT_STRATEGY),
		     Z_OK);
	z.next_in = (Bytef *)text;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	len = cap - z.avail_out;
	deflateEnd(&z);
	return len;
}

/* ---------------------------------------------------------------------- */
/* Maildir                                                                 */

Test(scan, maildir_locations_match_locate)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };
	struct store_folder f = { .name = "INBOX", .utf8 = "INBOX",
				  .delim = '/', .uidvalidity = 5 };
	struct store_message m = { .uid = 3, .flags = STORE_FLAG_SEEN,
				   .keywords = "", .internaldate = 1600000000,
				   .size = 5 };
	struct uidset present = UIDSET_INIT;
	struct store_location loc;
	struct seen v;

	cr_assert_eq(store_open("maildir", dest, &s, &err), ISNAP_OK);
	cr_assert_eq(s->ops->open_folder(s, &f, &present, &err), ISNAP_OK);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, "hello", 5, &err), ISNAP_OK);
	cr_assert_eq(s->ops->end_message(s, &m, &err), ISNAP_OK);
	s->ops->locate(s, &loc);
	cr_assert_eq(s->ops->close_folder(s, &err), ISNAP_OK);
	store_free(s);
	uidset_free(&present);

	cr_expect_str_eq(loc.location, "INBOX/cur/5_3.imapsnap");
	cr_expect_eq(loc.stored_size, 5);
	cr_expect_not(loc.has_stored_sha256);
	cr_assert_eq(scan("maildir", dest, &v, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_eq(v.n, 1);
	expect_message(&v, loc.location, "hello");
}

Test(scan, maildir_finds_every_generation_and_skips_the_rest)
{
	struct isnap_error err;
	struct seen v;

	put_str("INBOX/cur/5_1.imapsnap:2,S", "one");
	put_str("INBOX/cur/5_2.imapsnap,S=3:2,RS", "two"); /* Dovecot's */
	put_str("INBOX/new/5_4.imapsnap", "four");
	put_str("INBOX/tmp/5_9.imapsnap.123", "uncommitted");
	put_str("INBOX/cur/1234.M1P2.host:2,S", "a reader's own file");
	put_str("INBOX/cur/05_1.imapsnap", "not ours: leading zero");
	put_str("INBOX/.uidvalidity-4/cur/4_1.imapsnap:2,", "old");
	put_str("INBOX/.other/cur/4_7.imapsnap", "hidden");
	put_str("INBOX/Sub/cur/5_1.imapsnap:2,", "child");
	put_str(".imapsnap/cur/1_1.imapsnap", "state dir");
	put_str("cur/1_1.imapsnap", "not in a folder");
	cr_assert_eq(scan("maildir", dest, &v, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_eq(v.n, 5);
	expect_message(&v, "INBOX/cur/5_1.imapsnap", "one");
	expect_message(&v, "INBOX/cur/5_2.imapsnap", "two");
	expect_message(&v, "INBOX/new/5_4.imapsnap", "four");
	expect_message(&v, "INBOX/.uidvalidity-4/cur/4_1.imapsnap", "old");
	expect_message(&v, "INBOX/Sub/cur/5_1.imapsnap", "child");
}

/* What a full scan reports besides the messages: strays, unreadable
 * messages, and how much of each message it hands over. */
struct full {
	struct seen v;
	char stray[MAX_SEEN][256];
	bool leftover[MAX_SEEN];
	int nstray;
	char bad[MAX_SEEN][256];
	int nbad;
	uint64_t limit;
};

static enum isnap_status full_stray(void *ctx, const char *path,
				    const char *what, bool leftover,
				    struct isnap_error *err)
{
	struct full *f = ctx;

	(void)err;
	cr_assert_not(f->v.open, "a stray inside a message");
	cr_assert_lt(f->nstray, MAX_SEEN);
	cr_assert(what && *what);
	snprintf(f->stray[f->nstray], sizeof f->stray[0], "%s", path);
	f->leftover[f->nstray++] = leftover;
	return ISNAP_OK;
}

static enum isnap_status full_unreadable(void *ctx, const char *location,
					 const char *why,
					 struct isnap_error *err)
{
	struct full *f = ctx;

	(void)err;
	cr_assert(why && *why);
	cr_assert_lt(f->nbad, MAX_SEEN);
	snprintf(f->bad[f->nbad++], sizeof f->bad[0], "%s", location);
	f->v.open = false;
	return ISNAP_OK;
}

static uint64_t full_limit(void *ctx)
{
	return ((struct full *)ctx)->limit;
}

static enum isnap_status full_scan(const char *format, struct full *f,
				   uint64_t limit)
{
	struct store_scan_cb cb = { .ctx = f, .begin = seen_begin,
				    .data = seen_data, .end = seen_end,
				    .stray = full_stray,
				    .unreadable = full_unreadable,
				    .limit = full_limit };
	struct isnap_error err = { 0 };
	enum isnap_status rc;

	memset(f, 0, sizeof *f);
	f->limit = limit;
	rc = store_scan(format, dest, &cb, &err);
	cr_assert_eq(rc, ISNAP_OK, "%s", err.msg);
	return rc;
}

static int find_str(char (*v)[256], int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return i;
	return -1;
}

Test(scan, maildir_reports_everything_that_is_no_message)
{
	struct full f;
	char path[512];

	put_str("INBOX/cur/5_1.imapsnap:2,S", "one");
	put_str("INBOX/tmp/5_9.imapsnap.123", "uncommitted");
	put_str("INBOX/tmp/other", "another program's");
	put_str("INBOX/cur/1234.M1P2.host:2,S", "a reader's own file");
	put_str("INBOX/new/notes", "planted");
	put_str("INBOX/.other/cur/4_7.imapsnap", "hidden");
	put_str("INBOX/stray", "beside cur");
	put_str("README", "at the top");
	put_str("cur/1_1.imapsnap", "not in a folder");
	put_str(".imapsnap/state", "ours");
	snprintf(path, sizeof path, "%s/INBOX/empty", dest);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/INBOX/cur/fifo", dest);
	cr_assert_eq(mkfifo(path, 0600), 0);
	full_scan("maildir", &f, UINT64_MAX);
	cr_expect_eq(f.v.n, 1);
	expect_message(&f.v, "INBOX/cur/5_1.imapsnap", "one");
	cr_expect_eq(f.nstray, 9);
	for (int i = 0; i < f.nstray; i++)
		cr_expect_eq(f.leftover[i],
			     !strcmp(f.stray[i], "INBOX/tmp/5_9.imapsnap.123"),
			     "%s", f.stray[i]);
	const char *want[] = { "INBOX/tmp/5_9.imapsnap.123", "INBOX/tmp/other",
			       "INBOX/cur/1234.M1P2.host:2,S", "INBOX/new/notes",
			       "INBOX/.other", "INBOX/stray", "README", "cur",
			       "INBOX/cur/fifo" };
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		cr_expect_geq(find_str(f.stray, f.nstray, want[i]), 0,
			      "%s not reported", want[i]);
}

Test(scan, maildir_symlinked_message_fails_alone)
{
	struct full f;
	char path[512];

	put_str("INBOX/cur/5_1.imapsnap:2,S", "one");
	put_str("INBOX/cur/5_3.imapsnap:2,S", "three");
	snprintf(path, sizeof path, "%s/INBOX/cur/5_2.imapsnap:2,S", dest);
	cr_assert_eq(symlink("/etc/passwd", path), 0);
	full_scan("maildir", &f, UINT64_MAX);
	cr_expect_eq(f.v.n, 2);
	expect_message(&f.v, "INBOX/cur/5_1.imapsnap", "one");
	expect_message(&f.v, "INBOX/cur/5_3.imapsnap", "three");
	cr_expect_eq(f.nbad, 1);
	cr_expect_str_eq(f.bad[0], "INBOX/cur/5_2.imapsnap");
}

Test(scan, reading_stops_one_byte_past_the_limit)
{
	static const char mbox[] = "From a Thu Jan  1 00:00:00 1970\n"
				   "Subject: one\n\nlong body\n\n"
				   "From b Thu Jan  1 00:00:00 1970\n"
				   "short\n\n";
	struct full f;

	put_str("INBOX/cur/5_1.imapsnap:2,S", "0123456789");
	full_scan("maildir", &f, 4);
	cr_expect_eq(f.v.n, 1);
	cr_expect_eq(f.v.len[0], 5);
	tmpdir_teardown();
	tmpdir_setup();
	put_str("INBOX.mbox", mbox);
	full_scan("mbox", &f, 3);
	cr_expect_eq(f.v.n, 2, "the next message is still found");
	cr_expect_eq(f.v.len[0], 4);
	cr_expect_eq(f.v.len[1], 4);
	expect_message(&f.v, "INBOX.mbox@0", "Subj");
}

Test(scan, mbox_reports_strays_and_goes_on_after_a_bad_file)
{
	struct full f;

	put_str("A.mbox", "not an mbox at all");
	put_str("B.mbox", "From x Thu Jan  1 00:00:00 1970\nok\n\n");
	put_str("notes.txt", "planted");
	put_str("INBOX/cur/1_1.imapsnap", "a maildir here");
	put_str(".imapsnap/state", "ours");
	full_scan("mbox", &f, UINT64_MAX);
	cr_expect_eq(f.v.n, 1);
	expect_message(&f.v, "B.mbox@0", "ok\n");
	cr_expect_eq(f.nbad, 1);
	cr_expect_str_eq(f.bad[0], "A.mbox");
	cr_expect_eq(f.nstray, 2);
	cr_expect_geq(find_str(f.stray, f.nstray, "notes.txt"), 0);
	cr_expect_geq(find_str(f.stray, f.nstray, "INBOX/cur/1_1.imapsnap"),
		      0);
}

Test(scan, maildir_refuses_what_is_not_a_file)
{
	struct isnap_error err;
	struct seen v;
	char target[256], link[256];

	put_str("INBOX/cur/5_1.imapsnap:2,", "one");
	snprintf(target, sizeof target, "%s/secret", base);
	put_str("../secret", "outside");
	snprintf(link, sizeof link, "%s/INBOX/cur/5_2.imapsnap:2,", dest);
	cr_assert_eq(symlink(target, link), 0);
	cr_expect_eq(scan("maildir", dest, &v, &err), ISNAP_EINTEGRITY);
	cr_expect_not_null(strstr(err.msg, "5_2"), "%s", err.msg);
	cr_expect_lt(find(&v, "INBOX/cur/5_2.imapsnap"), 0);
}

Test(scan, missing_destination_is_an_error)
{
	static const char *const formats[] = { "maildir", "mbox", "mbox.gz",
					       "tar", "zip" };
	struct isnap_error err;
	struct seen v;

	for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
		cr_expect_eq(scan(formats[i], dest, &v, &err), ISNAP_ELOCAL,
			     "%s", formats[i]);
	cr_expect_eq(scan("floppy", dest, &v, &err), ISNAP_EUSAGE);
}

/* ---------------------------------------------------------------------- */
/* mbox                                                                    */

Test(scan, mbox_splits_at_from_lines_only)
{
	static const char text[] = "From a Thu Jan  1 00:00:00 1970\n"
				   "Subject: 1\n\n>From quoted\nFrom\n"
				   "Fromage\n\n\n"
				   "From b Thu Jan  1 00:00:00 1970\n"
				   "\n"
				   "From c\n"
				   "last\n\n";
	struct isnap_error err;
	struct seen v;
	size_t second = strlen("From a Thu Jan  1 00:00:00 1970\n"
			       "Subject: 1\n\n>From quoted\nFrom\n"
			       "Fromage\n\n\n");

	put_str("INBOX.mbox", text);
	put_str("Archive/.2019.uidvalidity-3.mbox", "From x\nold\n\n");
	put_str("INBOX.mbox.gz", "not for this format");
	put_str(".imapsnap/mbox/INBOX.mbox", "From x\nstate dir\n\n");
	cr_assert_eq(scan("mbox", dest, &v, &err), ISNAP_OK, "%s", err.msg);
	cr_expect_eq(v.n, 4);
	expect_message(&v, "INBOX.mbox@0",
		       "Subject: 1\n\n>From quoted\nFrom\nFromage\n\n");
	{
		char loc[64];
		snprintf(loc, sizeof loc, "INBOX.mbox@%zu", second);
		expect_message(&v, loc, "");
		snprintf(loc, sizeof loc, "INBOX.mbox@%zu",
			 second + strlen("From b Thu Jan  1 00:00:00 1970\n\n"));
		expect_message(&v, loc, "last\n");
	}
	expect_message(&v, "Archive/.2019.uidvalidity-3.mbox@0", "old\n");
}

Test(scan, mbox_torn_tail_is_reported_as_it_is)
{
	struct isnap_error err;
	struct seen v;

	put_str("a.mbox", "From x\nfull\n\nFrom y\nhalf a mess");
	cr_assert_eq(scan("mbox", dest, &v, &err), ISNAP_OK, "%s", err.msg);
	cr_expect_eq(v.n, 2);
	expect_message(&v, "a.mbox@0", "full\n");
	expect_message(&v, "a.mbox@13", "half a mess");
	put_str("a.mbox", "From x\nfull\n\nFrom y");
	cr_assert_eq(scan("mbox", dest, &v, &err), ISNAP_OK, "%s", err.msg);
	cr_expect_eq(v.n, 2);
	expect_message(&v, "a.mbox@13", "");
	put_str("a.mbox", "From x\nfull\n\nFro");
	cr_assert_eq(scan("mbox", dest, &v, &err), ISNAP_OK, "%s", err.msg);
	expect_message(&v, "a.mbox@0", "full\n\nFro");
}

Test(scan, not_an_mbox_is_an_integrity_error)
{
	struct isnap_error err;
	struct seen v;

	put_str("a.mbox", "Subject: no From line\n\n");
	cr_expect_eq(scan("mbox", dest, &v, &err), ISNAP_EINTEGRITY);
	cr_expect_not_null(strstr(err.msg, "a.mbox"), "%s", err.msg);
	put_str("a.mbox", "Fro");
	cr_expect_eq(scan("mbox", dest, &v, &err), ISNAP_EINTEGRITY);
	put_str("a.mbox", "");
	cr_expect_eq(scan("mbox", dest, &v, &err), ISNAP_OK);
	cr_expect_eq(v.n, 0);
}

Test(scan, mbox_gz_members_are_one_stream)
{
	static const char one[] = "From x\nfirst\n\nFrom y\nsec";
	static const char two[] = "ond\n\n";
	unsigned char buf[512];
	size_t n = gz(one, strlen(one), buf, sizeof buf);
	struct isnap_error err;
	struct seen v;

	n += gz(two, strlen(two), buf + n, sizeof buf - n);
	put("INBOX.mbox.gz", buf, n);
	cr_assert_eq(scan("mbox.gz", dest, &v, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_eq(v.n, 2);
	expect_message(&v, "INBOX.mbox.gz@0", "first\n");
	expect_message(&v, "INBOX.mbox.gz@14", "second\n");

	/* Cut in the middle of the second member. */
	put("INBOX.mbox.gz", buf, n - 3);
	cr_expect_eq(scan("mbox.gz", dest, &v, &err), ISNAP_EINTEGRITY);
	cr_expect_not_null(strstr(err.msg, "INBOX.mbox.gz"), "%s", err.msg);
	/* Garbage after the members. */
	memcpy(buf + n, "junk", 4);
	put("INBOX.mbox.gz", buf, n + 4);
	cr_expect_eq(scan("mbox.gz", dest, &v, &err), ISNAP_EINTEGRITY);
	/* A flipped bit. */
	buf[20] ^= 0x10;
	put("INBOX.mbox.gz", buf, n);
	cr_expect_eq(scan("mbox.gz", dest, &v, &err), ISNAP_EINTEGRITY);
}

/* ---------------------------------------------------------------------- */
/* Hostile content                                                         */

static unsigned rnd_state = 1;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 16;
}

/* Random bytes, random cuts and flips of a valid file: the scanner may
 * fail, but with an error, and never reports a message half-open. */
static void survive(const char *format, const char *rel,
		    const unsigned char *valid, size_t len)
{
	unsigned char *buf = malloc(len + 64);
	struct isnap_error err;
	struct seen *v = malloc(sizeof *v);

	cr_assert_not_null(buf);
	cr_assert_not_null(v);
	for (int round = 0; round < 200; round++) {
		size_t n = len;
		enum isnap_status rc;
		memcpy(buf, valid, len);
		switch (round % 4) {
		case 0:
			n = rnd() % (len + 1);
			break;
		case 1:
			for (int k = 0; k < 1 + round % 7; k++)
				buf[rnd() % len] ^= (unsigned char)(1u << (rnd() % 8));
			break;
		case 2:
			for (size_t k = 0; k < len; k++)
				buf[k] = (unsigned char)rnd();
			break;
		default:
			n = rnd() % (len + 1);
			buf[rnd() % len] = (unsigned char)rnd();
			break;
		}
		put(rel, buf, n);
		rc = scan(format, dest, v, &err);
		cr_assert(rc == ISNAP_OK || rc == ISNAP_EINTEGRITY,
			  "%s round %d: %d %s", format, round, rc, err.msg);
		if (rc == ISNAP_OK)
			cr_assert_not(v->open, "%s round %d", format, round);
		else
			cr_assert_neq(err.msg[0], '\0');
	}
	free(buf);
	free(v);
}

Test(scan, mbox_gz_survives_hostile_content)
{
	static const char text[] = "From x\nfirst\n\nFrom y\nsecond\n\n";
	unsigned char buf[256];
	size_t n = gz(text, strlen(text), buf, sizeof buf);

	survive("mbox.gz", "a.mbox.gz", buf, n);
	survive("mbox", "a.mbox", (const unsigned char *)text, strlen(text));
}

/* A real volume of each kind, written by the store, then damaged. */
static void archive_survives(const char *format)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };
	struct store_folder f = { .name = "INBOX", .utf8 = "INBOX",
				  .delim = '/', .uidvalidity = 5 };
	struct store_message m = { .uid = 1, .keywords = "", .size = 300 };
	struct uidset present = UIDSET_INIT;
	char file[256], rel[64];
	unsigned char *data;
	char body[300];
	struct stat sb;
	FILE *fp;

	snprintf(file, sizeof file, "%s/v.%s", base, format);
	cr_assert_eq(store_open(format, file, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(s->ops->open_folder(s, &f, &present, &err), ISNAP_OK);
	memset(body, 'm', sizeof body);
	for (uint32_t uid = 1; uid <= 3; uid++) {
		m.uid = uid;
		cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
		cr_assert_eq(s->ops->write(s, body, sizeof body, &err),
			     ISNAP_OK);
		cr_assert_eq(s->ops->end_message(s, &m, &err), ISNAP_OK);
	}
	cr_assert_eq(s->ops->close_folder(s, &err), ISNAP_OK);
	cr_assert_eq(s->ops->finish(s, &err), ISNAP_OK, "%s", err.msg);
	store_free(s);
	uidset_free(&present);

	cr_assert_eq(stat(file, &sb), 0);
	data = malloc((size_t)sb.st_size);
	fp = fopen(file, "rb");
	cr_assert_eq(fread(data, 1, (size_t)sb.st_size, fp),
		     (size_t)sb.st_size);
	fclose(fp);
	snprintf(rel, sizeof rel, "20200101T000000Z.%s", format);
	survive(format, rel, data, (size_t)sb.st_size);
	free(data);
}

Test(scan, archives_survive_hostile_content)
{
	archive_survives("tar");
	archive_survives("tar.gz");
	archive_survives("tar.zst");
	archive_survives("tar.xz");
	archive_survives("zip");
}
