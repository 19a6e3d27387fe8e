/* Unit tests for lib/manifest.c: the store decorator over a real Maildir
 * store (and over a fake archive-like store), in a temporary directory.
 * Every line written is parsed back with jansson. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest.h"
#include "store/store.h"

#include "tmpdir.h"

static char state[128], mdir[160];

/* A destination with its state directory, as a backup run leaves it. */
static void setup(void)
{
	tmpdir_setup();
	snprintf(state, sizeof state, "%s/.imapsnap", dest);
	snprintf(mdir, sizeof mdir, "%s/manifest", state);
	cr_assert_eq(mkdir(dest, 0700), 0);
	cr_assert_eq(mkdir(state, 0700), 0);
}

/* manifest_open with the state directory open, as backup.c calls it;
 * NULL: a single-file export. */
static enum isnap_status open_in(const char *dir,
				 const struct manifest_run_info *info,
				 struct manifest **m, struct isnap_error *err)
{
	int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	enum isnap_status rc;

	if (dir && fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dir);
	rc = manifest_open(fd, dir, info, m, err);
	if (fd >= 0)
		close(fd);
	return rc;
}

TestSuite(manifest, .init = setup, .fini = tmpdir_teardown);

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static const struct manifest_run_info info = {
	.tool_version = "9.9.9",
	.format = "maildir",
	.dest = "/backup/x",
	.host = "imaps://mail.example.org",
	.user = "alice",
};

static struct manifest *open_manifest(const char *dir)
{
	struct manifest *m = NULL;
	struct isnap_error err = { 0 };

	cr_assert_eq(open_in(dir, &info, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_not_null(m);
	return m;
}

static struct store *wrap(struct manifest *m, struct store *inner)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };

	cr_assert_eq(manifest_wrap(m, inner, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	return s;
}

static struct store *maildir(void)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };

	cr_assert_eq(store_open("maildir", dest, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	return s;
}

static struct store_folder folder(const char *name, uint32_t uidvalidity)
{
	return (struct store_folder){ .name = name,
				      .utf8 = name,
				      .delim = '/',
				      .uidvalidity = uidvalidity,
				      .uidnext = 100,
				      .exists = 9,
				      .highestmodseq = 77 };
}

static void ok(enum isnap_status rc, const struct isnap_error *err)
{
	cr_assert_eq(rc, ISNAP_OK, "status %d: %s", rc, err->msg);
}

static void open_folder(struct store *s, const struct store_folder *f)
{
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };

	ok(s->ops->open_folder(s, f, &present, &err), &err);
	uidset_free(&present);
}

/* One message, `data` written in chunks of `chunk` bytes. */
static void save(struct store *s, struct store_message m, const char *data,
		 size_t len, size_t chunk)
{
	struct isnap_error err = { 0 };

	m.size = len;
	ok(s->ops->begin_message(s, &m, &err), &err);
	for (size_t off = 0; off < len; off += chunk)
		ok(s->ops->write(s, data + off,
				 len - off < chunk ? len - off : chunk, &err),
		   &err);
	ok(s->ops->end_message(s, &m, &err), &err);
}

static struct store_message msg(uint32_t uid)
{
	return (struct store_message){ .uid = uid,
				       .keywords = "",
				       .internaldate = STORE_NO_DATE,
				       .rfc822_size = STORE_NO_SIZE };
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* Every line of a run file, parsed; each must be one JSON object and the
 * file must end in a newline. */
static json_t *lines_of_text(const char *text)
{
	json_t *a = json_array();
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		json_error_t jerr;
		json_t *o;
		cr_assert_not_null(nl, "the last line has no newline: %s", p);
		o = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES,
			       &jerr);
		cr_assert_not_null(o, "not JSON (%s): %.*s", jerr.text,
				   (int)(nl - p), p);
		cr_assert(json_is_object(o));
		cr_assert(json_is_string(json_object_get(o, "type")));
		json_array_append_new(a, o);
		p = nl + 1;
	}
	return a;
}

static json_t *lines_of(const char *path)
{
	char *text = slurp(path, NULL);
	json_t *a = lines_of_text(text);

	free(text);
	return a;
}

static const char *type_of(json_t *a, size_t i)
{
	return json_string_value(json_object_get(json_array_get(a, i), "type"));
}

/* The types of all lines, space-separated. */
static void types(json_t *a, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < json_array_size(a) && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? " " : "",
				      type_of(a, i));
}

static json_t *first(json_t *a, const char *type)
{
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!strcmp(type_of(a, i), type))
			return json_array_get(a, i);
	cr_assert_fail("no %s line", type);
	return NULL;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_integer(v), "%s is not an integer", key);
	return json_integer_value(v);
}

static void sha_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void finish(struct store *s)
{
	struct isnap_error err = { 0 };

	ok(s->ops->finish(s, &err), &err);
}

static void commit(struct store *s)
{
	struct isnap_error err = { 0 };

	ok(s->ops->commit(s, &err), &err);
}

static void close_folder(struct store *s)
{
	struct isnap_error err = { 0 };

	ok(s->ops->close_folder(s, &err), &err);
}

/* The chain file's lines: "<sha256>  <name>". */
static size_t chain_lines(char sha[][65], char name[][64], size_t max)
{
	char path[256], *text, *p;
	size_t n = 0;

	snprintf(path, sizeof path, "%s/chain", mdir);
	text = slurp(path, NULL);
	for (p = text; *p && n < max;) {
		char *nl = strchr(p, '\n');
		cr_assert_not_null(nl);
		cr_assert_gt(nl - p, 66);
		cr_assert_eq(p[64], ' ');
		cr_assert_eq(p[65], ' ');
		memcpy(sha[n], p, 64);
		sha[n][64] = '\0';
		snprintf(name[n], 64, "%.*s", (int)(nl - p - 66), p + 66);
		n++;
		p = nl + 1;
	}
	free(text);
	return n;
}

/* ---------------------------------------------------------------------- */
/* A fake store: archive-like when asked, and it looks at the manifest on
 * disk at the moment it commits. */

struct fake {
	struct store base;
	struct store_ops ops;
	struct manifest *m;
	uint32_t last_uid;
	int commits, finishes;
	bool fail_commit;
	bool lines_on_disk_at_commit; /* every message line was there */
	uint64_t messages;            /* ended */
	char *meta;                   /* what add_meta_file read */
	size_t meta_len;
	char meta_name[128];
};

static struct fake *fake_of(struct store *s)
{
	return (struct fake *)s;
}

static enum isnap_status f_open_folder(struct store *s,
				       const struct store_folder *f,
				       struct uidset *present,
				       struct isnap_error *err)
{
	(void)s, (void)f, (void)present, (void)err;
	return ISNAP_OK;
}

static enum isnap_status f_retire(struct store *s,
				  const struct store_folder *f, uint32_t old,
				  struct isnap_error *err)
{
	(void)s, (void)f, (void)old, (void)err;
	return ISNAP_OK;
}

static enum isnap_status f_begin(struct store *s,
				 const struct store_message *m,
				 struct isnap_error *err)
{
	(void)err;
	fake_of(s)->last_uid = m->uid;
	return ISNAP_OK;
}

static enum isnap_status f_write(struct store *s, const void *d, size_t n,
				 struct isnap_error *err)
{
	(void)s, (void)d, (void)n, (void)err;
	return ISNAP_OK;
}

static enum isnap_status f_end(struct store *s, const struct store_message *m,
			       struct isnap_error *err)
{
	(void)m, (void)err;
	fake_of(s)->messages++;
	return ISNAP_OK;
}

static void f_abort(struct store *s)
{
	(void)s;
}

static enum isnap_status f_update_flags(struct store *s,
					const struct store_message *m,
					struct isnap_error *err)
{
	(void)s, (void)m, (void)err;
	return ISNAP_OK;
}

static void f_locate(struct store *s, struct store_location *loc)
{
	memset(loc, 0, sizeof *loc);
	snprintf(loc->location, sizeof loc->location, "vol-1.tar!m/%u",
		 fake_of(s)->last_uid);
}

static uint64_t message_lines_on_disk(struct manifest *m)
{
	const char *path = manifest_path(m);
	uint64_t n = 0;
	char *text;

	if (!path)
		return 0;
	text = slurp(path, NULL);
	for (char *p = text; (p = strstr(p, "\"type\":\"message\"")); p++)
		n++;
	free(text);
	return n;
}

static enum isnap_status f_commit(struct store *s, struct isnap_error *err)
{
	struct fake *f = fake_of(s);

	f->commits++;
	if (message_lines_on_disk(f->m) != f->messages)
		f->lines_on_disk_at_commit = false;
	if (f->fail_commit)
		return isnap_fail(err, ISNAP_ELOCAL, "disk on fire");
	return ISNAP_OK;
}

static enum isnap_status f_close_folder(struct store *s,
					struct isnap_error *err)
{
	return f_commit(s, err);
}

static enum isnap_status f_add_meta_file(struct store *s, const char *name,
					 int fd, struct isnap_error *err)
{
	struct fake *f = fake_of(s);
	char buf[4096];
	ssize_t n;

	(void)err;
	snprintf(f->meta_name, sizeof f->meta_name, "%s", name);
	/* Read from offset 0, as an archive store does. */
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		f->meta = realloc(f->meta, f->meta_len + (size_t)n + 1);
		memcpy(f->meta + f->meta_len, buf, (size_t)n);
		f->meta_len += (size_t)n;
		f->meta[f->meta_len] = '\0';
	}
	cr_assert_eq(n, 0);
	return ISNAP_OK;
}

static enum isnap_status f_finish(struct store *s, struct isnap_error *err)
{
	(void)err;
	fake_of(s)->finishes++;
	return ISNAP_OK;
}

static void f_destroy(struct store *s)
{
	free(fake_of(s)->meta);
	free(s);
}

/* The fake's meta bytes survive the store (tests read them after). */
static char *last_meta;
static size_t last_meta_len;

static void f_destroy_keep(struct store *s)
{
	free(last_meta);
	last_meta = fake_of(s)->meta;
	last_meta_len = fake_of(s)->meta_len;
	free(s);
}

static struct fake *fake_new(bool archive)
{
	struct fake *f = calloc(1, sizeof *f);

	f->base.dest = strdup(dest);
	f->base.dest_fd = -1;
	f->ops = (struct store_ops){
		.format = archive ? "tar" : "fake",
		.durable_at_finish = archive,
		.open_folder = f_open_folder,
		.retire_generation = f_retire,
		.begin_message = f_begin,
		.write = f_write,
		.end_message = f_end,
		.abort_message = f_abort,
		.update_flags = f_update_flags,
		.locate = f_locate,
		.commit = f_commit,
		.close_folder = f_close_folder,
		.add_meta_file = archive ? f_add_meta_file : NULL,
		.finish = f_finish,
		.destroy = archive ? f_destroy_keep : f_destroy,
	};
	f->base.ops = &f->ops;
	f->lines_on_disk_at_commit = true;
	return f;
}

/* ---------------------------------------------------------------------- */
/* The record of a message                                                 */

Test(manifest, message_line_has_hash_of_bytes_and_metadata)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7);
	struct store_message mm = msg(5);
	json_t *a, *line, *flags;
	char path[512];

	mm.flags = STORE_FLAG_SEEN | STORE_FLAG_FLAGGED;
	mm.keywords = "$Label1 Custom";
	mm.internaldate = 1700000000; /* 2023-11-14T22:13:20Z */
	mm.tz_minutes = 120;
	mm.rfc822_size = 3;
	mm.modseq = 42;
	open_folder(s, &f);
	save(s, mm, "abc", 3, 1);
	commit(s);
	close_folder(s);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);

	a = lines_of(path);
	line = first(a, "message");
	/* FIPS 180-2's test vector for "abc". */
	cr_assert_str_eq(str(line, "sha256"),
			 "ba7816bf8f01cfea414140de5dae2223"
			 "b00361a396177a9cb410ff61f20015ad");
	cr_assert_str_eq(str(line, "folder"), "INBOX");
	cr_assert_str_eq(str(line, "folder_raw"), "INBOX");
	cr_assert_eq(num(line, "uidvalidity"), 7);
	cr_assert_eq(num(line, "uid"), 5);
	cr_assert_eq(num(line, "received"), 3);
	cr_assert_eq(num(line, "rfc822_size"), 3);
	cr_assert_eq(num(line, "modseq"), 42);
	cr_assert_str_eq(str(line, "internaldate"), "2023-11-15T00:13:20+02:00");
	cr_assert_null(json_object_get(line, "size_mismatch"));
	flags = json_object_get(line, "flags");
	cr_assert_eq(json_array_size(flags), 4);
	cr_assert_str_eq(json_string_value(json_array_get(flags, 0)), "\\Seen");
	cr_assert_str_eq(json_string_value(json_array_get(flags, 1)),
			 "\\Flagged");
	cr_assert_str_eq(json_string_value(json_array_get(flags, 2)),
			 "$Label1");
	cr_assert_str_eq(json_string_value(json_array_get(flags, 3)), "Custom");
	/* Maildir's locate: the name without flags, and the file is there
	 * (with its flags). */
	cr_assert_str_eq(str(line, "location"), "INBOX/cur/7_5.imapsnap");
	snprintf(path, sizeof path, "%s/INBOX/cur/7_5.imapsnap:2,FS", dest);
	cr_assert_eq(access(path, F_OK), 0);
	json_decref(a);
}

Test(manifest, hash_of_a_large_message_in_odd_chunks)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7);
	size_t len = 300001;
	char *data = malloc(len), want[65], path[512];
	json_t *a;

	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 131 + (i >> 9));
	sha_hex(data, len, want);
	open_folder(s, &f);
	save(s, msg(1), data, len, 7001);
	close_folder(s);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	cr_assert_str_eq(str(first(a, "message"), "sha256"), want);
	cr_assert_eq(num(first(a, "message"), "received"), (long long)len);
	cr_assert_eq(num(first(a, "end"), "recorded_bytes"), (long long)len);
	json_decref(a);
	free(data);
}

Test(manifest, size_mismatch_is_recorded_with_both_numbers)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7);
	struct store_message mm = msg(2);
	char path[512];
	json_t *a, *line;

	mm.rfc822_size = 10;
	open_folder(s, &f);
	save(s, mm, "abc", 3, 3);
	close_folder(s);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	line = first(a, "message");
	cr_assert_eq(json_object_get(line, "size_mismatch"), json_true());
	cr_assert_eq(num(line, "rfc822_size"), 10);
	cr_assert_eq(num(line, "received"), 3);
	json_decref(a);
}

Test(manifest, lines_in_order_header_and_folder_figures)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7), g = folder("Sent", 8);
	struct manifest_summary sum = { .listed = 3, .saved = 2, .failed = 1,
					.folders = 2 };
	char path[512], t[512];
	json_t *a, *o, *caps;

	manifest_server(m, "* OK [CAPABILITY IMAP4rev1] ready",
			"IMAP4REV1 CONDSTORE UIDPLUS");
	manifest_examined(m, &g); /* nothing new there: never opened */
	manifest_examined(m, &f);
	open_folder(s, &f); /* examined just before: no second line */
	save(s, msg(1), "x", 1, 1);
	save(s, msg(2), "y", 1, 1);
	manifest_skipped(m, NULL, 3, "the server said NO");
	close_folder(s);
	manifest_end(m, &sum);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	cr_assert_eq(manifest_recorded(m), 2);
	cr_assert_eq(manifest_skipped_count(m), 1);
	store_free(s);
	manifest_free(m);

	a = lines_of(path);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run server folder folder message message skipped "
			    "commit end");
	o = first(a, "run");
	cr_assert_eq(num(o, "manifest"), 3);
	cr_assert_str_eq(str(o, "tool"), "imapsnap");
	cr_assert_str_eq(str(o, "version"), "9.9.9");
	cr_assert_str_eq(str(o, "format"), "maildir");
	cr_assert_str_eq(str(o, "host"), "imaps://mail.example.org");
	cr_assert_str_eq(str(o, "user"), "alice");
	cr_assert(json_is_null(json_object_get(o, "prev")));
	cr_assert_str_eq(str(o, "file"), strrchr(path, '/') + 1);
	cr_assert_not_null(str(o, "started"));
	o = first(a, "server");
	cr_assert_str_eq(str(o, "greeting"), "* OK [CAPABILITY IMAP4rev1] ready");
	caps = json_object_get(o, "capabilities");
	cr_assert_eq(json_array_size(caps), 3);
	cr_assert_str_eq(json_string_value(json_array_get(caps, 1)),
			 "CONDSTORE");
	o = first(a, "folder");
	cr_assert_str_eq(str(o, "folder"), "Sent");
	cr_assert_eq(num(o, "uidvalidity"), 8);
	cr_assert_eq(num(o, "uidnext"), 100);
	cr_assert_eq(num(o, "exists"), 9);
	cr_assert_eq(num(o, "highestmodseq"), 77);
	cr_assert_str_eq(str(o, "delim"), "/");
	o = first(a, "skipped");
	cr_assert_eq(num(o, "uid"), 3);
	cr_assert_str_eq(str(o, "folder"), "INBOX");
	cr_assert_str_eq(str(o, "reason"), "the server said NO");
	o = first(a, "commit");
	cr_assert_eq(num(o, "messages"), 2);
	o = first(a, "end");
	cr_assert_eq(num(o, "listed"), 3);
	cr_assert_eq(num(o, "saved"), 2);
	cr_assert_eq(num(o, "failed"), 1);
	cr_assert_eq(num(o, "recorded"), 2);
	cr_assert_eq(num(o, "skipped"), 1);
	cr_assert_str_eq(str(o, "status"), "ok");
	cr_assert_eq(json_object_get(o, "accounted"), json_true());
	json_decref(a);
}

Test(manifest, accounting_that_does_not_add_up_is_recorded)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct manifest_summary sum = { .listed = 5, .saved = 2,
					.status = ISNAP_EMSG };
	char path[512];
	json_t *a;

	manifest_end(m, &sum);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	/* Two saved but none recorded, and 5 != 2 + 0 + 0. */
	cr_assert_eq(json_object_get(first(a, "end"), "accounted"),
		     json_false());
	cr_assert_str_eq(str(first(a, "end"), "status"),
			 isnap_status_name(ISNAP_EMSG));
	json_decref(a);
}

Test(manifest, names_that_are_not_utf8_keep_their_bytes)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("Entw\xfc" "rfe", 7);
	struct store_message mm = msg(1);
	char path[512];
	json_t *a, *line, *kw;

	mm.keywords = "ok \xff\xfe";
	open_folder(s, &f);
	save(s, mm, "x", 1, 1);
	close_folder(s);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	line = first(a, "message");
	cr_assert_null(json_object_get(line, "folder"));
	cr_assert_str_eq(str(line, "folder_hex"), "456e7477fc726665");
	cr_assert_str_eq(str(line, "folder_raw_hex"), "456e7477fc726665");
	kw = json_object_get(line, "flags");
	cr_assert_eq(json_array_size(kw), 2);
	cr_assert_str_eq(json_string_value(json_array_get(kw, 0)), "ok");
	cr_assert_str_eq(str(json_array_get(kw, 1), "hex"), "fffe");
	json_decref(a);
}

/* ---------------------------------------------------------------------- */
/* Durability: lines before the store commits; confirmation after          */

Test(manifest, lines_are_on_disk_before_the_store_commits)
{
	struct manifest *m = open_manifest(state);
	struct fake *fk = fake_new(false);
	struct store *s = wrap(m, &fk->base);
	struct store_folder f = folder("INBOX", 7);
	char path[512], t[512];
	json_t *a;

	fk->m = m;
	open_folder(s, &f);
	save(s, msg(1), "x", 1, 1);
	save(s, msg(2), "y", 1, 1);
	commit(s);
	save(s, msg(3), "z", 1, 1);
	close_folder(s);
	cr_assert_eq(fk->commits, 2);
	cr_assert(fk->lines_on_disk_at_commit,
		  "a store commit ran before the manifest lines were written");
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run folder message message commit message commit "
			    "end");
	cr_assert_eq(num(json_array_get(a, 4), "messages"), 2);
	cr_assert_eq(num(json_array_get(a, 6), "messages"), 1);
	json_decref(a);
}

Test(manifest, a_failed_store_commit_is_not_confirmed)
{
	struct manifest *m = open_manifest(state);
	struct fake *fk = fake_new(false);
	struct store *s = wrap(m, &fk->base);
	struct store_folder f = folder("INBOX", 7);
	struct isnap_error err = { 0 };
	char path[512], t[512];
	json_t *a;

	fk->m = m;
	fk->fail_commit = true;
	open_folder(s, &f);
	save(s, msg(1), "x", 1, 1);
	cr_assert_eq(s->ops->commit(s, &err), ISNAP_ELOCAL);
	cr_assert_str_eq(err.msg, "disk on fire");
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run folder message commit_failed");
	cr_assert_eq(num(json_array_get(a, 3), "messages"), 1);
	cr_assert_str_eq(str(json_array_get(a, 3), "error"), "disk on fire");
	json_decref(a);
}

Test(manifest, a_message_never_committed_has_no_commit_line)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7);
	char path[512], t[512], cur[512];
	json_t *a;

	open_folder(s, &f);
	save(s, msg(1), "x", 1, 1);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	/* A crash now: the store discards what it did not commit. */
	store_free(s);
	manifest_free(m);
	snprintf(cur, sizeof cur, "%s/INBOX/cur/7_1.imapsnap:2,", dest);
	cr_assert_neq(access(cur, F_OK), 0);
	a = lines_of(path);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run folder message");
	json_decref(a);
}

static void fsize_limit(rlim_t bytes)
{
	struct rlimit rl;

	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = bytes;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

Test(manifest, when_the_manifest_cannot_be_written_nothing_is_committed)
{
	struct manifest *m;
	struct store *s;
	struct store_folder f = folder("INBOX", 7);
	struct store_message mm = msg(1);
	struct isnap_error err = { 0 };
	struct stat sb;
	char cur[512], kw[2048];

	signal(SIGXFSZ, SIG_IGN);
	m = open_manifest(state);
	s = wrap(m, maildir());
	open_folder(s, &f);
	cr_assert_eq(stat(manifest_path(m), &sb), 0);
	/* Room for the message (1 byte), not for its manifest line. */
	memset(kw, 'k', sizeof kw - 1);
	kw[sizeof kw - 1] = '\0';
	mm.keywords = kw;
	fsize_limit((rlim_t)sb.st_size + 600);
	save(s, mm, "x", 1, 1);
	cr_assert_eq(s->ops->commit(s, &err), ISNAP_ELOCAL);
	cr_assert(strstr(err.msg, "manifest"), "%s", err.msg);
	/* It sticks: closing and finishing commit nothing either. */
	cr_assert_eq(s->ops->close_folder(s, &err), ISNAP_ELOCAL);
	cr_assert_eq(s->ops->finish(s, &err), ISNAP_ELOCAL);
	fsize_limit(RLIM_INFINITY);
	snprintf(cur, sizeof cur, "%s/INBOX/cur/7_1.imapsnap:2,", dest);
	cr_assert_neq(access(cur, F_OK), 0,
		      "a message was committed without its manifest line");
	cr_assert_null(manifest_sha256(m));
	store_free(s);
	manifest_free(m);
}

/* ---------------------------------------------------------------------- */
/* Archives and single-file exports                                        */

Test(manifest, archive_volume_carries_the_manifest_up_to_its_end_line)
{
	struct manifest *m = open_manifest(state);
	struct fake *fk = fake_new(true);
	struct store *s = wrap(m, &fk->base);
	struct store_folder f = folder("INBOX", 7);
	char path[512], t[512], *disk;
	size_t disk_len;
	json_t *a;

	fk->m = m;
	cr_assert(s->ops->durable_at_finish);
	cr_assert_not_null(s->ops->add_meta_file);
	open_folder(s, &f);
	save(s, msg(1), "x", 1, 1);
	commit(s); /* not durable yet: no commit line */
	save(s, msg(2), "y", 1, 1);
	close_folder(s);
	finish(s);
	cr_assert_eq(fk->finishes, 1);
	cr_assert_str_eq(fk->meta_name, MANIFEST_META_NAME);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);

	disk = slurp(path, &disk_len);
	a = lines_of_text(last_meta);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run folder message message end");
	json_decref(a);
	/* The run file is the volume's copy plus the commit line. */
	cr_assert_gt(disk_len, last_meta_len);
	cr_assert_eq(memcmp(disk, last_meta, last_meta_len), 0);
	a = lines_of_text(disk + last_meta_len);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "commit");
	cr_assert_eq(num(json_array_get(a, 0), "messages"), 2);
	json_decref(a);
	a = lines_of_text(last_meta);
	cr_assert_str_eq(str(first(a, "message"), "location"), "vol-1.tar!m/1");
	json_decref(a);
	free(disk);
}

Test(manifest, single_file_export_keeps_the_manifest_only_inside)
{
	struct manifest *m = open_manifest(NULL);
	struct fake *fk = fake_new(true);
	struct store *s = wrap(m, &fk->base);
	struct store_folder f = folder("INBOX", 7);
	char want[65], t[512];
	json_t *a;

	cr_assert_null(manifest_path(m));
	open_folder(s, &f);
	save(s, msg(1), "x", 1, 1);
	close_folder(s);
	cr_assert_null(manifest_sha256(m));
	finish(s);
	store_free(s); /* hands over what the fake archive received */
	sha_hex(last_meta, last_meta_len, want);
	cr_assert_str_eq(manifest_sha256(m), want);
	manifest_free(m);
	a = lines_of_text(last_meta);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run folder message end");
	cr_assert_null(json_object_get(first(a, "run"), "file"));
	json_decref(a);
	/* No state directory was made for it. */
	cr_assert_neq(access(mdir, F_OK), 0);
}

/* ---------------------------------------------------------------------- */
/* The chain                                                               */

static void one_run(char path[512], char sha[65])
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());

	finish(s);
	snprintf(path, 512, "%s", manifest_path(m));
	snprintf(sha, 65, "%s", manifest_sha256(m));
	store_free(s);
	manifest_free(m);
}

Test(manifest, each_run_names_the_one_before_and_the_chain_lists_all)
{
	char p1[512], p2[512], s1[65], s2[65], csha[4][65], cname[4][64];
	char want[65], *text;
	size_t len;
	json_t *a, *prev;

	one_run(p1, s1);
	one_run(p2, s2);
	cr_assert_str_neq(p1, p2);
	cr_assert_eq(chain_lines(csha, cname, 4), 2);
	cr_assert_str_eq(cname[0], strrchr(p1, '/') + 1);
	cr_assert_str_eq(cname[1], strrchr(p2, '/') + 1);
	cr_assert_str_eq(csha[0], s1);
	cr_assert_str_eq(csha[1], s2);
	text = slurp(p2, &len);
	sha_hex(text, len, want);
	cr_assert_str_eq(s2, want);
	free(text);
	a = lines_of(p2);
	prev = json_object_get(first(a, "run"), "prev");
	cr_assert_str_eq(str(prev, "file"), cname[0]);
	cr_assert_str_eq(str(prev, "sha256"), s1);
	json_decref(a);
}

Test(manifest, an_interrupted_run_is_chained_by_the_next)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7);
	char p1[512], p2[512], s2[65], want[65], csha[4][65], cname[4][64];
	char *text, t[256];
	size_t len;
	json_t *a, *prev;

	open_folder(s, &f);
	save(s, msg(1), "x", 1, 1);
	commit(s);
	snprintf(p1, sizeof p1, "%s", manifest_path(m));
	store_free(s); /* killed: no finish, no chain line */
	manifest_free(m);
	text = slurp(p1, &len);
	sha_hex(text, len, want);
	free(text);

	one_run(p2, s2);
	cr_assert_eq(chain_lines(csha, cname, 4), 2);
	cr_assert_str_eq(cname[0], strrchr(p1, '/') + 1);
	cr_assert_str_eq(csha[0], want);
	a = lines_of(p2);
	prev = json_object_get(first(a, "run"), "prev");
	cr_assert_str_eq(str(prev, "file"), cname[0]);
	cr_assert_str_eq(str(prev, "sha256"), want);
	json_decref(a);
	/* The interrupted run's own record is left as it was. */
	a = lines_of(p1);
	types(a, t, sizeof t);
	cr_assert_str_eq(t, "run folder message commit");
	json_decref(a);
}

Test(manifest, an_edited_old_manifest_no_longer_matches_the_chain)
{
	char p1[512], p2[512], s1[65], s2[65], csha[4][65], cname[4][64];
	char now[65], *text;
	size_t len;
	FILE *fp;

	one_run(p1, s1);
	one_run(p2, s2);
	text = slurp(p1, &len);
	text[10] ^= 1;
	fp = fopen(p1, "wb");
	fwrite(text, 1, len, fp);
	fclose(fp);
	sha_hex(text, len, now);
	free(text);
	/* A third run does not "repair" the chain. */
	one_run(p2, s2);
	cr_assert_eq(chain_lines(csha, cname, 4), 3);
	cr_assert_str_eq(csha[0], s1);
	cr_assert_str_neq(csha[0], now);
}

/* ---------------------------------------------------------------------- */
/* The decorator's table                                                   */

Test(manifest, ops_the_inner_store_lacks_stay_absent)
{
	struct manifest *m = open_manifest(state);
	struct store *inner = maildir();
	struct store *s = wrap(m, inner);

	cr_assert_str_eq(s->ops->format, "maildir");
	cr_assert_eq(s->ops->durable_at_finish, false);
	cr_assert_null(s->ops->add_meta_file);
	cr_assert_eq(s->ops->update_flags == NULL,
		     inner->ops->update_flags == NULL);
	cr_assert_str_eq(s->dest, dest);
	store_free(s);
	manifest_free(m);
}

Test(manifest, retire_and_flag_changes_are_recorded)
{
	struct manifest *m = open_manifest(state);
	struct fake *fk = fake_new(false);
	struct store *s = wrap(m, &fk->base);
	struct store_folder f = folder("INBOX", 9);
	struct store_message mm = msg(4);
	struct isnap_error err = { 0 };
	char path[512];
	json_t *a, *o;

	ok(s->ops->retire_generation(s, &f, 7, &err), &err);
	open_folder(s, &f);
	mm.flags = STORE_FLAG_ANSWERED;
	mm.modseq = 12;
	ok(s->ops->update_flags(s, &mm, &err), &err);
	close_folder(s);
	finish(s);
	snprintf(path, sizeof path, "%s", manifest_path(m));
	store_free(s);
	manifest_free(m);
	a = lines_of(path);
	o = first(a, "retire");
	cr_assert_str_eq(str(o, "folder"), "INBOX");
	cr_assert_eq(num(o, "uidvalidity_old"), 7);
	cr_assert_eq(num(o, "uidvalidity"), 9);
	o = first(a, "flags");
	cr_assert_eq(num(o, "uid"), 4);
	cr_assert_eq(num(o, "modseq"), 12);
	cr_assert_str_eq(json_string_value(
				 json_array_get(json_object_get(o, "flags"), 0)),
			 "\\Answered");
	json_decref(a);
}

Test(manifest, freeing_the_manifest_first_leaves_a_store_that_refuses)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir());
	struct store_folder f = folder("INBOX", 7);
	struct isnap_error err = { 0 };
	struct uidset present = UIDSET_INIT;

	manifest_free(m);
	cr_assert_eq(s->ops->open_folder(s, &f, &present, &err), ISNAP_EUSAGE);
	cr_assert_eq(s->ops->commit(s, &err), ISNAP_EUSAGE);
	cr_assert_eq(s->ops->finish(s, &err), ISNAP_EUSAGE);
	store_free(s);
}

Test(manifest, a_manifest_wraps_one_store)
{
	struct manifest *m = open_manifest(state);
	struct store *s = wrap(m, maildir()), *inner = maildir(), *s2;
	struct isnap_error err = { 0 };

	cr_assert_eq(manifest_wrap(m, inner, &s2, &err), ISNAP_EUSAGE);
	store_free(inner);
	store_free(s);
	manifest_free(m);
}
