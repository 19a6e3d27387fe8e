/* Unit tests for lib/store/archive.c, archive_kind.c and archive_scan.c:
 * volumes and single-file exports in every archive format, read back with
 * libarchive's reader. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <locale.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

#include "tmpdir.h"

TestSuite(archive, .init = tmpdir_setup, .fini = tmpdir_teardown);

static const char *const kinds[] = { "tar", "tar.gz", "tar.zst", "tar.xz",
				     "zip" };

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static struct store *open_at(const char *format, const char *where)
{
	struct store *s = NULL;
	struct isnap_error err = { 0 };

	cr_assert_eq(store_open(format, where, &s, &err), ISNAP_OK, "%s: %s",
		     format, err.msg);
	return s;
}

/* Opens the folder; `present` (may be NULL) gets what earlier volumes
 * hold of it. */
static void open_folder_held(struct store *s, const char *name,
			     uint32_t uidvalidity, struct uidset *held)
{
	struct store_folder f = { .name = name,
				  .utf8 = name,
				  .delim = '/',
				  .uidvalidity = uidvalidity };
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->open_folder(s, &f, &present, &err), ISNAP_OK,
		     "%s", err.msg);
	if (held)
		cr_assert_eq(uidset_add_set(held, &present), 0);
	uidset_free(&present);
}

static void open_folder(struct store *s, const char *name,
			uint32_t uidvalidity)
{
	open_folder_held(s, name, uidvalidity, NULL);
}

/* msg1 holds a NUL: its length is given. */
static size_t len_of(const char *data);

static void save(struct store *s, uint32_t uid, unsigned flags,
		 int64_t date, const char *data, struct store_location *loc)
{
	size_t len = len_of(data);
	struct store_message m = { .uid = uid,
				   .flags = flags,
				   .keywords = "",
				   .internaldate = date,
				   .rfc822_size = len,
				   .size = len };
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	for (size_t off = 0; off < len; off += 5)
		cr_assert_eq(s->ops->write(s, data + off,
					   len - off < 5 ? len - off : 5,
					   &err),
			     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(s->ops->end_message(s, &m, &err), ISNAP_OK, "%s",
		     err.msg);
	if (loc)
		s->ops->locate(s, loc);
}

static void finish(struct store *s)
{
	struct isnap_error err = { 0 };

	cr_assert_eq(s->ops->close_folder(s, &err), ISNAP_OK, "%s", err.msg);
	cr_assert_eq(s->ops->finish(s, &err), ISNAP_OK, "%s", err.msg);
}

/* The names in dest/ (one level), sorted, joined by spaces. */
static void list_dest(char *buf, size_t size)
{
	struct dirent **v;
	int n = scandir(dest, &v, NULL, alphasort);
	size_t used = 0;

	buf[0] = '\0';
	cr_assert_geq(n, 0);
	for (int i = 0; i < n; i++) {
		/* .imapsnap: the state, and the volumes' records. */
		if (strcmp(v[i]->d_name, ".") && strcmp(v[i]->d_name, "..") &&
		    strcmp(v[i]->d_name, ".imapsnap"))
			used += (size_t)snprintf(buf + used, size - used,
						 "%s%s", used ? " " : "",
						 v[i]->d_name);
		free(v[i]);
	}
	free(v);
}

/* The one volume in dest/, which must be named like a volume. */
static void the_volume(const char *ext, char *name, size_t size)
{
	char names[1024], *space;

	list_dest(names, sizeof names);
	space = strchr(names, ' ');
	cr_assert_null(space, "one volume only: %s", names);
	cr_assert_eq(strlen(names), 16 + strlen(ext), "%s", names);
	cr_expect_eq(names[8], 'T');
	cr_expect_eq(names[15], 'Z');
	cr_expect_str_eq(names + 16, ext);
	snprintf(name, size, "%s", names);
}

struct entry {
	char path[512];
	int type;
	long long mtime;
	char data[256];
	size_t len;
};

/* Read every entry of `file` with libarchive. */
static int read_entries(const char *file, struct entry *v, int max)
{
	struct archive *r = archive_read_new();
	struct archive_entry *e;
	int n = 0, rc;
	/* libarchive cannot read UTF-8 zip names in the C locale. */
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t saved = uselocale(utf8);

	archive_read_support_format_all(r);
	archive_read_support_filter_all(r);
	cr_assert_eq(archive_read_open_filename(r, file, 10240), ARCHIVE_OK,
		     "%s: %s", file, archive_error_string(r));
	/* WARN: a UTF-8 name that the C locale cannot show. */
	while ((rc = archive_read_next_header(r, &e)) == ARCHIVE_OK ||
	       rc == ARCHIVE_WARN) {
		const char *p = archive_entry_pathname_utf8(e);
		cr_assert_lt(n, max);
		snprintf(v[n].path, sizeof v[n].path, "%s",
			 p ? p : archive_entry_pathname(e));
		v[n].type = (int)archive_entry_filetype(e);
		v[n].mtime = (long long)archive_entry_mtime(e);
		v[n].len = 0;
		for (;;) {
			la_ssize_t k = archive_read_data(
				r, v[n].data + v[n].len,
				sizeof v[n].data - v[n].len);
			cr_assert_geq(k, 0, "%s", archive_error_string(r));
			if (k == 0)
				break;
			v[n].len += (size_t)k;
		}
		n++;
	}
	cr_assert_eq(rc, ARCHIVE_EOF, "%s: %s", file, archive_error_string(r));
	archive_read_free(r);
	uselocale(saved);
	freelocale(utf8);
	return n;
}

static const struct entry *find_entry(const struct entry *v, int n,
				      const char *path)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].path, path))
			return &v[i];
	return NULL;
}

static const char msg1[] = "From: a@example.org\r\nSubject: one\r\n\r\n"
			   "From here\r\n\0nul\xff";
static const char msg2[] = "Subject: two\r\n\r\nbody\r\n";

static size_t len_of(const char *data)
{
	return data == msg1 ? sizeof msg1 - 1 : strlen(data);
}

/* An empty regular file to add as a meta file. */
static int empty_file(void)
{
	char path[128];
	int fd;

	snprintf(path, sizeof path, "%s/meta.XXXXXX", base);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	return fd;
}

/* ---------------------------------------------------------------------- */
/* Volumes                                                                 */

static void writes_a_maildir_volume(const char *format)
{
	char ext[16], vol[64], path[256];
	struct entry v[16];
	const struct entry *e;
	struct store *s = open_at(format, dest);
	struct store_location loc;
	int n;

	snprintf(ext, sizeof ext, ".%s", format);
	open_folder(s, "INBOX", 7);
	save(s, 1, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED, 1600000000, msg1,
	     &loc);
	save(s, 2, 0, 1600000100, msg2, NULL);
	cr_expect_eq(s->ops->commit(s, NULL), ISNAP_OK);
	s->ops->close_folder(s, NULL);
	open_folder(s, "Entwürfe/Sub", 8);
	save(s, 5, STORE_FLAG_DRAFT, 1600000200, msg2, NULL);
	finish(s);
	store_free(s);

	the_volume(ext, vol, sizeof vol);
	/* Relative to the volume: a renamed volume still matches. */
	cr_expect_str_eq(loc.location, "INBOX/cur/7_1.imapsnap:2,FS");
	cr_expect_eq(loc.stored_size, sizeof msg1 - 1);
	cr_expect_not(loc.has_stored_sha256);
	snprintf(path, sizeof path, "%s/%s", dest, vol);
	n = read_entries(path, v, 16);
	cr_expect_eq(n, 9, "3 directories per folder, 3 messages");
	e = find_entry(v, n, "INBOX/cur/7_1.imapsnap:2,FS");
	cr_assert_not_null(e, "%s", format);
	cr_expect_eq(e->type, AE_IFREG);
	cr_expect_eq(e->mtime, 1600000000);
	cr_assert_eq(e->len, sizeof msg1 - 1);
	cr_expect_eq(memcmp(e->data, msg1, e->len), 0);
	e = find_entry(v, n, "INBOX/cur/7_2.imapsnap:2,");
	cr_assert_not_null(e);
	cr_expect_eq(e->len, strlen(msg2));
	cr_expect_not_null(find_entry(v, n, "Entwürfe/Sub/cur/8_5.imapsnap:2,D"));
	for (const char *d = "cur"; d; d = !strcmp(d, "cur")   ? "new"
					 : !strcmp(d, "new") ? "tmp"
							     : NULL) {
		char dir[64];
		snprintf(dir, sizeof dir, "INBOX/%s/", d);
		e = find_entry(v, n, dir);
		if (!e) {
			dir[strlen(dir) - 1] = '\0';
			e = find_entry(v, n, dir);
		}
		cr_assert_not_null(e, "%s: no %s", format, dir);
		cr_expect_eq(e->type, AE_IFDIR);
	}
}

Test(archive, volume_holds_a_maildir_tar)
{
	writes_a_maildir_volume("tar");
}

Test(archive, volume_holds_a_maildir_tar_gz)
{
	writes_a_maildir_volume("tar.gz");
}

Test(archive, volume_holds_a_maildir_tar_zst)
{
	writes_a_maildir_volume("tar.zst");
}

Test(archive, volume_holds_a_maildir_tar_xz)
{
	writes_a_maildir_volume("tar.xz");
}

Test(archive, volume_holds_a_maildir_zip)
{
	writes_a_maildir_volume("zip");
}

/* A folder without messages is in the export as its directories, and a
 * date before 1970 survives in tar (pax) and is never read as one after
 * 2038 in zip. */
static void empty_folders_and_old_dates(const char *format)
{
	char file[256];
	struct entry v[16];
	struct store *s;
	int n;

	snprintf(file, sizeof file, "%s/all.%s", base, format);
	s = open_at(format, file);
	open_folder(s, "Empty", 7);
	s->ops->close_folder(s, NULL);
	open_folder(s, "INBOX", 7);
	save(s, 1, 0, -315619200, msg1, NULL); /* 1960-01-01 00:00 UTC */
	save(s, 2, 0, 1600000000, msg1, NULL);
	s->ops->close_folder(s, NULL);
	finish(s);
	store_free(s);
	n = read_entries(file, v, 16);
	cr_expect_not_null(find_entry(v, n, "Empty/cur/"), "%s", format);
	cr_expect_not_null(find_entry(v, n, "Empty/new/"), "%s", format);
	cr_expect_not_null(find_entry(v, n, "Empty/tmp/"), "%s", format);
	if (strcmp(format, "zip"))
		cr_expect_eq(find_entry(v, n, "INBOX/cur/7_1.imapsnap:2,")->mtime,
			     -315619200, "%s", format);
	else
		cr_expect_lt(find_entry(v, n, "INBOX/cur/7_1.imapsnap:2,")->mtime,
			     (long long)INT32_MAX, "zip: read back after 2038");
	cr_expect_eq(find_entry(v, n, "INBOX/cur/7_2.imapsnap:2,")->mtime,
		     1600000000, "%s", format);
}

Test(archive, empty_folders_and_old_dates_tar)
{
	empty_folders_and_old_dates("tar");
}

Test(archive, empty_folders_and_old_dates_tar_gz)
{
	empty_folders_and_old_dates("tar.gz");
}

Test(archive, empty_folders_and_old_dates_zip)
{
	empty_folders_and_old_dates("zip");
}

Test(archive, nothing_saved_means_no_volume)
{
	struct store *s = open_at("tar.gz", dest);
	char names[256];
	int fd = open("/dev/null", O_RDONLY);

	open_folder(s, "INBOX", 7);
	cr_expect_eq(s->ops->add_meta_file(s, ".imapsnap/manifest.jsonl", fd,
					   NULL),
		     ISNAP_OK);
	finish(s);
	store_free(s);
	close(fd);
	list_dest(names, sizeof names);
	cr_expect_str_eq(names, "");
}

Test(archive, unfinished_volume_is_never_in_place)
{
	struct store *s = open_at("tar", dest);
	char names[256];

	open_folder(s, "INBOX", 7);
	save(s, 1, 0, 1600000000, msg2, NULL);
	list_dest(names, sizeof names);
	cr_expect_eq(names[0], '.', "only a temporary file: %s", names);
	cr_expect_not_null(strstr(names, ".tar.tmp-"), "%s", names);
	store_free(s); /* a run that dies before finish */
	list_dest(names, sizeof names);
	cr_expect_str_eq(names, "");
}

Test(archive, dead_runs_temporary_volumes_are_removed)
{
	struct store *s = open_at("tar", dest);
	char path[256], names[256];

	snprintf(path, sizeof path, "%s/.20200101T000000Z.tar.tmp-99999",
		 dest);
	fclose(fopen(path, "w"));
	snprintf(path, sizeof path, "%s/.other-file", dest);
	fclose(fopen(path, "w"));
	open_folder(s, "INBOX", 7);
	save(s, 1, 0, 1600000000, msg2, NULL);
	finish(s);
	store_free(s);
	list_dest(names, sizeof names);
	cr_expect_null(strstr(names, "20200101T000000Z"), "%s", names);
	cr_expect_not_null(strstr(names, ".other-file"), "%s", names);
}

Test(archive, second_run_writes_a_second_volume)
{
	char names[256];

	for (uint32_t uid = 1; uid <= 2; uid++) {
		struct store *s = open_at("zip", dest);
		struct uidset held = UIDSET_INIT;
		open_folder_held(s, "INBOX", 7, &held);
		/* The first volume's message, from its record. */
		cr_expect_eq(uidset_count(&held), uid - 1);
		cr_expect_eq(uidset_contains(&held, 1), uid == 2);
		uidset_free(&held);
		save(s, uid, 0, 1600000000, msg2, NULL);
		finish(s);
		store_free(s);
	}
	list_dest(names, sizeof names);
	cr_assert_not_null(strchr(names, ' '), "two volumes: %s", names);
}

Test(archive, meta_files_go_into_the_volume)
{
	struct store *s = open_at("tar.xz", dest);
	char meta[128], vol[64], path[256];
	struct entry v[16];
	const struct entry *e;
	int fd, n;

	snprintf(meta, sizeof meta, "%s/manifest", base);
	fd = open(meta, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "{\"a\":1}\n", 8), 8);
	open_folder(s, "INBOX", 7);
	save(s, 1, 0, 1600000000, msg2, NULL);
	s->ops->close_folder(s, NULL);
	cr_expect_eq(s->ops->add_meta_file(s, "../x", fd, NULL), ISNAP_EUSAGE);
	cr_assert_eq(s->ops->add_meta_file(s, ".imapsnap/manifest.jsonl", fd,
					   NULL),
		     ISNAP_OK);
	finish(s);
	store_free(s);
	close(fd);
	the_volume(".tar.xz", vol, sizeof vol);
	snprintf(path, sizeof path, "%s/%s", dest, vol);
	n = read_entries(path, v, 16);
	e = find_entry(v, n, ".imapsnap/manifest.jsonl");
	cr_assert_not_null(e);
	cr_expect_eq(e->len, 8);
	cr_expect_eq(memcmp(e->data, "{\"a\":1}\n", 8), 0);
}

/* An aborted message leaves no entry behind in the finished volume. */
static void abort_is_left_out(const char *format)
{
	struct store *s = open_at(format, dest);
	struct store_message m = { .uid = 3, .keywords = "", .size = 100,
				   .internaldate = 1600000000 };
	struct isnap_error err = { 0 };
	char ext[16], vol[64], path[256];
	struct entry v[16];
	int n;

	snprintf(ext, sizeof ext, ".%s", format);
	open_folder(s, "INBOX", 7);
	save(s, 1, 0, 1600000000, msg1, NULL);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	cr_assert_eq(s->ops->write(s, "partial", 7, &err), ISNAP_OK);
	s->ops->abort_message(s);
	save(s, 2, 0, 1600000000, msg2, NULL);
	finish(s);
	store_free(s);
	the_volume(ext, vol, sizeof vol);
	snprintf(path, sizeof path, "%s/%s", dest, vol);
	n = read_entries(path, v, 16);
	cr_expect_eq(n, 5, "%s: 3 directories and 2 messages", format);
	cr_expect_null(find_entry(v, n, "INBOX/cur/7_3.imapsnap:2,"));
	cr_expect_not_null(find_entry(v, n, "INBOX/cur/7_2.imapsnap:2,"));
	cr_expect_eq(find_entry(v, n, "INBOX/cur/7_1.imapsnap:2,")->len,
		     sizeof msg1 - 1);
}

Test(archive, aborted_message_is_left_out_tar_gz)
{
	abort_is_left_out("tar.gz");
}

Test(archive, aborted_message_is_left_out_zip)
{
	abort_is_left_out("zip");
}

Test(archive, all_aborted_means_no_volume)
{
	struct store *s = open_at("tar", dest);
	struct store_message m = { .uid = 3, .keywords = "", .size = 100 };
	struct isnap_error err = { 0 };
	char names[256];

	open_folder(s, "INBOX", 7);
	cr_assert_eq(s->ops->begin_message(s, &m, &err), ISNAP_OK);
	s->ops->abort_message(s);
	finish(s);
	store_free(s);
	list_dest(names, sizeof names);
	cr_expect_str_eq(names, "");
}

Test(archive, a_uid_once_per_folder)
{
	struct store *s = open_at("tar", dest);
	struct store_message m = { .uid = 1, .keywords = "", .size = 1 };
	struct isnap_error err = { 0 };

	open_folder(s, "INBOX", 7);
	save(s, 1, 0, 1600000000, msg2, NULL);
	cr_expect_eq(s->ops->begin_message(s, &m, &err), ISNAP_EMSG);
	store_free(s);
}

/* ---------------------------------------------------------------------- */
/* Single-file exports                                                     */

Test(archive, single_file_format_follows_the_name)
{
	char path[256];

	cr_expect_str_eq(store_single_file_format("x.tar"), "tar");
	cr_expect_str_eq(store_single_file_format("a/x.tar.gz"), "tar.gz");
	cr_expect_str_eq(store_single_file_format("x.tgz"), "tar.gz");
	cr_expect_str_eq(store_single_file_format("x.TAR.ZST"), "tar.zst");
	cr_expect_str_eq(store_single_file_format("x.tar.xz"), "tar.xz");
	cr_expect_str_eq(store_single_file_format("x.zip"), "zip");
	cr_expect_null(store_single_file_format("x.gz"));
	cr_expect_null(store_single_file_format("x.mbox"));
	cr_expect_null(store_single_file_format("backup"));
	cr_expect_null(store_single_file_format(".tar"));
	cr_expect_null(store_single_file_format("a/.zip"));
	/* An existing directory is a directory of volumes. */
	snprintf(path, sizeof path, "%s/d.tar", base);
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_expect_null(store_single_file_format(path));
}

static void single_file(const char *format, const char *name)
{
	char file[256];
	struct store *s;
	struct store_location loc;
	struct entry v[16];
	int n;

	snprintf(file, sizeof file, "%s/%s", base, name);
	for (int run = 0; run < 2; run++) {
		s = open_at(format, file);
		open_folder(s, "INBOX", 7);
		save(s, 1, 0, 1600000000, run ? msg2 : msg1, &loc);
		finish(s);
		store_free(s);
	}
	cr_expect_str_eq(loc.location, "INBOX/cur/7_1.imapsnap:2,");
	n = read_entries(file, v, 16);
	cr_expect_eq(n, 4);
	cr_expect_eq(find_entry(v, n, "INBOX/cur/7_1.imapsnap:2,")->len,
		     strlen(msg2), "the second export replaced the first");
	{
		DIR *d = opendir(base);
		struct dirent *de;
		while ((de = readdir(d)))
			cr_expect_null(strstr(de->d_name, ".tmp-"), "%s left",
				       de->d_name);
		closedir(d);
	}
}

Test(archive, single_file_tar_gz)
{
	single_file("tar.gz", "export.tar.gz");
}

Test(archive, single_file_zip)
{
	single_file("zip", "export.zip");
}

Test(archive, single_file_empty_export_is_a_valid_archive)
{
	char file[256];
	struct store *s;
	struct entry v[2];

	snprintf(file, sizeof file, "%s/empty.tar.zst", base);
	s = open_at("tar.zst", file);
	finish(s);
	store_free(s);
	cr_expect_eq(read_entries(file, v, 2), 0);
}

Test(archive, single_file_of_another_format_is_refused)
{
	struct store *s;
	struct isnap_error err = { 0 };
	char file[256];

	snprintf(file, sizeof file, "%s/x.zip", base);
	cr_expect_eq(store_open("tar.gz", file, &s, &err), ISNAP_EUSAGE);
	cr_expect_null(s);
	cr_expect_eq(access(file, F_OK), -1);
}

/* ---------------------------------------------------------------------- */
/* store_scan                                                              */

struct seen {
	char loc[16][600];
	char data[16][256];
	size_t len[16];
	int n;
};

static enum isnap_status seen_begin(void *ctx, const char *location,
				    struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert_lt(v->n, 16);
	snprintf(v->loc[v->n], sizeof v->loc[v->n], "%s", location);
	v->len[v->n] = 0;
	return ISNAP_OK;
}

static enum isnap_status seen_data(void *ctx, const void *data, size_t len,
				   struct isnap_error *err)
{
	struct seen *v = ctx;

	(void)err;
	cr_assert_leq(v->len[v->n] + len, sizeof v->data[0]);
	memcpy(v->data[v->n] + v->len[v->n], data, len);
	v->len[v->n] += len;
	return ISNAP_OK;
}

static enum isnap_status seen_end(void *ctx, struct isnap_error *err)
{
	(void)err;
	((struct seen *)ctx)->n++;
	return ISNAP_OK;
}

static void scan_matches_locate(const char *format, bool single)
{
	char where[256];
	struct store_location loc[3];
	struct seen v = { 0 };
	struct store_scan_cb cb = { .ctx = &v, .begin = seen_begin,
				    .data = seen_data, .end = seen_end };
	struct isnap_error err = { 0 };
	const char *data[3] = { msg1, msg2, msg2 };
	size_t lens[3] = { sizeof msg1 - 1, strlen(msg2), strlen(msg2) };

	if (single)
		snprintf(where, sizeof where, "%s/all.%s", base, format);
	else
		snprintf(where, sizeof where, "%s", dest);
	for (int run = 0; run < (single ? 1 : 2); run++) {
		struct store *s = open_at(format, where);
		int fd = empty_file();
		open_folder(s, "INBOX", 7);
		if (run == 0) {
			save(s, 1, STORE_FLAG_SEEN, 1600000000, msg1, &loc[0]);
			save(s, 2, 0, 1600000000, msg2, &loc[1]);
		} else {
			save(s, 3, 0, 1600000000, msg2, &loc[2]);
		}
		s->ops->close_folder(s, NULL);
		cr_assert_eq(s->ops->add_meta_file(s, ".imapsnap/manifest", fd,
						   NULL),
			     ISNAP_OK);
		close(fd);
		finish(s);
		store_free(s);
	}
	cr_assert_eq(store_scan(format, where, &cb, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(v.n, single ? 2 : 3, "%s: messages only", format);
	for (int i = 0; i < v.n; i++) {
		int k = -1;
		for (int j = 0; j < v.n; j++)
			if (!strcmp(v.loc[j], loc[i].location))
				k = j;
		cr_assert_geq(k, 0, "%s not found", loc[i].location);
		cr_expect_eq(v.len[k], lens[i]);
		cr_expect_eq(memcmp(v.data[k], data[i], lens[i]), 0);
	}
}

Test(archive, scan_matches_locate)
{
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
		scan_matches_locate(kinds[i], false);
		tmpdir_teardown();
		tmpdir_setup();
	}
}

Test(archive, scan_matches_locate_single_file)
{
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		scan_matches_locate(kinds[i], true);
}
