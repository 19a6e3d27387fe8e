/* Unit tests for lib/verify.c: backups written through the manifest
 * decorator into real Maildir stores in a temporary directory, then
 * damaged on purpose. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "manifest.h"
#include "store/store.h"
#include "verify.h"

#include "tmpdir.h"

static char state[300], mdir[320];

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

TestSuite(verify, .init = setup, .fini = tmpdir_teardown);

/* ---------------------------------------------------------------------- */
/* Writing backups                                                         */

static void ok(enum isnap_status rc, const struct isnap_error *err)
{
	cr_assert_eq(rc, ISNAP_OK, "status %d: %s", rc, err->msg);
}

struct run {
	struct manifest *m;
	struct store *s;
	char path[512];  /* the run file */
	char sha[65];
};

static void run_begin(struct run *r)
{
	static const struct manifest_run_info info = { .format = "maildir" };
	struct store *inner = NULL;
	struct isnap_error err = { 0 };

	ok(store_open("maildir", dest, &inner, &err), &err);
	ok(open_in(state, &info, &r->m, &err), &err);
	ok(manifest_wrap(r->m, inner, &r->s, &err), &err);
	snprintf(r->path, sizeof r->path, "%s", manifest_path(r->m));
}

static void run_end(struct run *r)
{
	struct isnap_error err = { 0 };

	ok(r->s->ops->finish(r->s, &err), &err);
	snprintf(r->sha, sizeof r->sha, "%s", manifest_sha256(r->m));
	store_free(r->s);
	manifest_free(r->m);
}

/* Stop as a killed run would: nothing more reaches the disk. */
static void run_kill(struct run *r)
{
	store_free(r->s);
	manifest_free(r->m);
}

static struct store_folder folder(const char *name, uint32_t uidvalidity)
{
	return (struct store_folder){ .name = name,
				      .utf8 = name,
				      .delim = '/',
				      .uidvalidity = uidvalidity };
}

static void put(struct run *r, const char *fname, uint32_t uidvalidity,
		uint32_t uid, const char *body)
{
	struct store_folder f = folder(fname, uidvalidity);
	struct store_message m = { .uid = uid,
				   .keywords = "",
				   .internaldate = STORE_NO_DATE,
				   .rfc822_size = STORE_NO_SIZE,
				   .size = strlen(body) };
	struct uidset present = UIDSET_INIT;
	struct isnap_error err = { 0 };
	struct store *s = r->s;

	ok(s->ops->open_folder(s, &f, &present, &err), &err);
	ok(s->ops->begin_message(s, &m, &err), &err);
	ok(s->ops->write(s, body, m.size, &err), &err);
	ok(s->ops->end_message(s, &m, &err), &err);
	ok(s->ops->close_folder(s, &err), &err);
	uidset_free(&present);
}

/* Two folders, three messages, one run. */
static void simple_backup(struct run *r)
{
	run_begin(r);
	put(r, "INBOX", 7, 1, "Subject: one\r\n\r\nHello\r\n");
	put(r, "INBOX", 7, 2, "Subject: two\r\n\r\nWorld\r\n");
	put(r, "Sent", 8, 5, "Subject: five\r\n\r\n!\r\n");
	run_end(r);
}

/* ---------------------------------------------------------------------- */
/* Collecting findings                                                     */

#define MAX_FINDINGS 32

struct seen {
	enum verify_kind kind;
	char folder[64], location[256], run[64], detail[512];
	uint32_t uidvalidity, uid;
};

static struct seen found[MAX_FINDINGS];
static size_t nfound;

static void on_finding(void *ctx, const struct verify_finding *f)
{
	struct seen *s;

	(void)ctx;
	cr_assert_lt(nfound, MAX_FINDINGS);
	s = &found[nfound++];
	s->kind = f->kind;
	snprintf(s->folder, sizeof s->folder, "%s", f->folder ? f->folder : "");
	snprintf(s->location, sizeof s->location, "%s",
		 f->location ? f->location : "");
	snprintf(s->run, sizeof s->run, "%s", f->run ? f->run : "");
	snprintf(s->detail, sizeof s->detail, "%s", f->detail);
	s->uidvalidity = f->uidvalidity;
	s->uid = f->uid;
}

static enum isnap_status check(const char *expect, struct verify_result *res)
{
	struct verify_opts o = { .expect_sha256 = expect };
	struct verify_callbacks cb = { .finding = on_finding };
	struct isnap_error err = { 0 };

	nfound = 0;
	return verify_run(dest, &o, &cb, res, &err);
}

/* The only finding that fails verification; asserts there is one. */
static struct seen *only_failure(void)
{
	struct seen *hit = NULL;

	for (size_t i = 0; i < nfound; i++) {
		if (!verify_kind_fails(found[i].kind))
			continue;
		cr_assert_null(hit, "two failures: \"%s\" and \"%s\"",
			       hit ? hit->detail : "", found[i].detail);
		hit = &found[i];
	}
	cr_assert_not_null(hit, "no failure reported");
	return hit;
}

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", dest, rel);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
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
	*len = (size_t)n;
	return buf;
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

Test(verify, a_fresh_backup_matches)
{
	struct run r = { 0 };
	struct verify_result res;

	simple_backup(&r);
	cr_assert_eq(check(NULL, &res), ISNAP_OK);
	cr_assert_eq(nfound, 0, "unexpected finding: %s",
		     nfound ? found[0].detail : "");
	cr_assert_eq(res.runs, 1);
	cr_assert_eq(res.recorded, 3);
	cr_assert_eq(res.checked, 3);
	cr_assert_eq(res.matched, 3);
	cr_assert_eq(res.bytes, 23 + 23 + 20);
	cr_assert_str_eq(res.head_sha256, r.sha);
	cr_assert_str_eq(res.head_run, strrchr(r.path, '/') + 1);
}

Test(verify, a_flipped_byte_is_named_by_folder_and_uid)
{
	struct run r = { 0 };
	struct verify_result res;
	char path[512], *text;
	size_t len;
	struct seen *f;

	simple_backup(&r);
	path_of(path, sizeof path, "INBOX/cur/7_2.imapsnap:2,");
	text = slurp(path, &len);
	text[20] ^= 0x20;
	write_file(path, text, len);
	free(text);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_ALTERED);
	cr_assert_str_eq(f->folder, "INBOX");
	cr_assert_eq(f->uid, 2);
	cr_assert_eq(f->uidvalidity, 7);
	cr_assert_str_eq(f->location, "INBOX/cur/7_2.imapsnap");
	cr_assert(strstr(f->detail, "SHA-256"), "%s", f->detail);
	cr_assert_eq(res.altered, 1);
	cr_assert_eq(res.matched, 2);
}

Test(verify, a_changed_size_is_reported)
{
	struct run r = { 0 };
	struct verify_result res;
	char path[512];
	struct seen *f;

	simple_backup(&r);
	path_of(path, sizeof path, "Sent/cur/8_5.imapsnap:2,");
	write_file(path, "Subject: five\r\n\r\n!!\r\n", 21);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_ALTERED);
	cr_assert_str_eq(f->folder, "Sent");
	cr_assert_eq(f->uid, 5);
	cr_assert(strstr(f->detail, "longer than the 20 bytes recorded"), "%s",
		  f->detail);
}

Test(verify, a_deleted_message_is_missing)
{
	struct run r = { 0 };
	struct verify_result res;
	char path[512];
	struct seen *f;

	simple_backup(&r);
	path_of(path, sizeof path, "INBOX/cur/7_1.imapsnap:2,");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_MISSING);
	cr_assert_str_eq(f->folder, "INBOX");
	cr_assert_eq(f->uid, 1);
	cr_assert_str_eq(f->run, strrchr(r.path, '/') + 1);
	cr_assert_eq(res.missing, 1);
}

Test(verify, an_added_message_is_unexpected)
{
	struct run r = { 0 };
	struct verify_result res;
	char path[512];
	struct seen *f;

	simple_backup(&r);
	path_of(path, sizeof path, "INBOX/cur/7_9.imapsnap:2,S");
	write_file(path, "Subject: forged\r\n\r\n", 19);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_UNEXPECTED);
	cr_assert_str_eq(f->location, "INBOX/cur/7_9.imapsnap");
	cr_assert_str_eq(f->folder, "INBOX");
	cr_assert_eq(f->uid, 9);
	cr_assert_eq(f->uidvalidity, 7);
	cr_assert_eq(res.unexpected, 1);
}

Test(verify, a_copy_of_a_recorded_message_is_unexpected)
{
	struct run r = { 0 };
	struct verify_result res;
	char from[512], to[512], *text;
	size_t len;
	struct seen *f;

	simple_backup(&r);
	path_of(from, sizeof from, "INBOX/cur/7_1.imapsnap:2,");
	path_of(to, sizeof to, "Sent/cur/8_6.imapsnap:2,");
	text = slurp(from, &len);
	write_file(to, text, len);
	free(text);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_UNEXPECTED);
	cr_assert_str_eq(f->folder, "Sent");
	cr_assert_eq(f->uid, 6);
}

Test(verify, a_message_moved_to_another_folder_is_missing_from_its_place)
{
	struct run r = { 0 };
	struct verify_result res;
	char from[512], to[512];
	struct seen *f;

	simple_backup(&r);
	path_of(from, sizeof from, "INBOX/cur/7_1.imapsnap:2,");
	path_of(to, sizeof to, "Sent/cur/7_1.imapsnap:2,");
	cr_assert_eq(rename(from, to), 0);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_MISSING);
	cr_assert_str_eq(f->folder, "INBOX");
	cr_assert_eq(f->uid, 1);
	cr_assert(strstr(f->detail, "Sent/cur/7_1.imapsnap"), "%s", f->detail);
}

Test(verify, a_retired_generation_still_matches)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct store_folder f = folder("INBOX", 9);
	struct isnap_error err = { 0 };
	struct verify_result res;

	run_begin(&r1);
	put(&r1, "INBOX", 7, 1, "old generation\r\n");
	run_end(&r1);
	/* UIDVALIDITY went from 7 to 9: the old copy is kept aside. */
	run_begin(&r2);
	ok(r2.s->ops->retire_generation(r2.s, &f, 7, &err), &err);
	put(&r2, "INBOX", 9, 1, "new generation\r\n");
	run_end(&r2);
	cr_assert_eq(check(NULL, &res), ISNAP_OK, "%zu findings: %s", nfound,
		     nfound ? found[0].detail : "");
	cr_assert_eq(res.recorded, 2);
	cr_assert_eq(res.matched, 2);
	cr_assert_eq(res.moved, 1);
}

Test(verify, an_interrupted_run_is_told_but_does_not_fail_its_messages)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	bool note = false;

	simple_backup(&r1);
	/* A second run saves one message, then dies before committing it:
	 * its line is there, unconfirmed, and the message is not. */
	run_begin(&r2);
	{
		struct store_folder f = folder("INBOX", 7);
		struct store_message m = { .uid = 3, .keywords = "",
					   .internaldate = STORE_NO_DATE,
					   .rfc822_size = STORE_NO_SIZE,
					   .size = 4 };
		struct uidset present = UIDSET_INIT;
		struct isnap_error err = { 0 };
		ok(r2.s->ops->open_folder(r2.s, &f, &present, &err), &err);
		ok(r2.s->ops->begin_message(r2.s, &m, &err), &err);
		ok(r2.s->ops->write(r2.s, "lost", 4, &err), &err);
		ok(r2.s->ops->end_message(r2.s, &m, &err), &err);
		uidset_free(&present);
	}
	run_kill(&r2);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	/* Failing only because the last run is not chained yet... */
	cr_assert_eq(only_failure()->kind, VERIFY_CHAIN);
	cr_assert_str_eq(only_failure()->run, strrchr(r2.path, '/') + 1);
	for (size_t i = 0; i < nfound; i++)
		if (found[i].kind == VERIFY_NOTE && found[i].uid == 3)
			note = true;
	cr_assert(note, "the unconfirmed message is not mentioned");
	cr_assert_eq(res.runs_interrupted, 1);
	/* ...which the next run does. */
	run_begin(&r1);
	put(&r1, "INBOX", 7, 4, "four\r\n");
	run_end(&r1);
	cr_assert_eq(check(NULL, &res), ISNAP_OK, "%s",
		     nfound ? found[0].detail : "");
	cr_assert_eq(res.chain_errors, 0);
	cr_assert_eq(res.runs, 3);
	cr_assert_eq(res.matched, 4);
}

/* ---------------------------------------------------------------------- */
/* The chain                                                               */

/* Change the first occurrence of `from` in `path` to `to` (same length). */
static void edit(const char *path, const char *from, const char *to)
{
	size_t len;
	char *text = slurp(path, &len), *p = strstr(text, from);

	cr_assert_not_null(p, "%s not in %s", from, path);
	cr_assert_eq(strlen(from), strlen(to));
	memcpy(p, to, strlen(to));
	write_file(path, text, len);
	free(text);
}

static void two_runs(struct run *r1, struct run *r2)
{
	run_begin(r1);
	put(r1, "INBOX", 7, 1, "one\r\n");
	run_end(r1);
	run_begin(r2);
	put(r2, "INBOX", 7, 2, "two\r\n");
	run_end(r2);
}

Test(verify, an_edited_old_manifest_breaks_the_chain)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	struct seen *f;

	two_runs(&r1, &r2);
	cr_assert_eq(check(NULL, &res), ISNAP_OK);
	/* Hide the message's real hash... */
	edit(r1.path, "\"received\":5", "\"received\":6");
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	/* ...the size no longer matches either, but the chain says why. */
	cr_assert_eq(res.chain_errors, 1);
	for (f = found; f < found + nfound && f->kind != VERIFY_CHAIN; f++)
		;
	cr_assert_lt(f, found + nfound);
	cr_assert_str_eq(f->run, strrchr(r1.path, '/') + 1);
	cr_assert(strstr(f->detail, "changed since it was chained"), "%s",
		  f->detail);
}

/* The SHA-256 verify computed for a run file it found changed. */
static void changed_sha(char out[65])
{
	struct seen *f;

	for (f = found; f < found + nfound; f++)
		if (f->kind == VERIFY_CHAIN &&
		    sscanf(f->detail,
			   "changed since it was chained: its SHA-256 is %64s",
			   out) == 1)
			return;
	cr_assert_fail("no \"changed since it was chained\" finding");
}

Test(verify, an_edited_chain_line_shows_in_the_next_run)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	char chain[512], now[65];
	struct seen *f;

	two_runs(&r1, &r2);
	edit(r1.path, "\"received\":5", "\"received\":6");
	check(NULL, &res);
	changed_sha(now);
	/* The forger also fixes the chain's line for the file... */
	snprintf(chain, sizeof chain, "%s/chain", mdir);
	edit(chain, r1.sha, now);
	/* ...but the run after it names the original. */
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(res.chain_errors, 1);
	for (f = found; f < found + nfound && f->kind != VERIFY_CHAIN; f++)
		;
	cr_assert_lt(f, found + nfound);
	cr_assert_str_eq(f->run, strrchr(r2.path, '/') + 1);
	cr_assert(strstr(f->detail, "as the run before it"), "%s", f->detail);
}

Test(verify, a_removed_run_file_is_reported)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	struct seen *f;

	two_runs(&r1, &r2);
	cr_assert_eq(unlink(r1.path), 0);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(res.chain_errors, 1);
	for (f = found; f < found + nfound && f->kind != VERIFY_CHAIN; f++)
		;
	cr_assert_str_eq(f->run, strrchr(r1.path, '/') + 1);
	cr_assert(strstr(f->detail, "gone"), "%s", f->detail);
	/* Its message is now recorded nowhere. */
	cr_assert_eq(res.unexpected, 1);
}

Test(verify, an_added_run_file_is_reported)
{
	static const char forged[] =
		"{\"type\":\"run\",\"manifest\":1,\"format\":\"maildir\","
		"\"prev\":null}\n{\"type\":\"end\"}\n";
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	char extra[512];
	bool named = false;

	two_runs(&r1, &r2);
	snprintf(extra, sizeof extra, "%s/20991231T000000.000000Z.jsonl",
		 mdir);
	write_file(extra, forged, sizeof forged - 1);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	for (size_t i = 0; i < nfound; i++)
		if (found[i].kind == VERIFY_CHAIN &&
		    !strcmp(found[i].run, "20991231T000000.000000Z.jsonl"))
			named = true;
	cr_assert(named);
	/* It names no run before it, and one is there. */
	cr_assert_eq(res.chain_errors, 2);
}

Test(verify, a_malformed_chain_line_is_reported_by_number)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	char chain[512];
	FILE *f;

	two_runs(&r1, &r2);
	snprintf(chain, sizeof chain, "%s/chain", mdir);
	f = fopen(chain, "a");
	fputs("not a hash  ../../etc/passwd\n", f);
	fclose(f);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(only_failure()->kind, VERIFY_CHAIN);
	cr_assert(strstr(only_failure()->detail, "line 3 "), "%s",
		  only_failure()->detail);
	/* A later backup keeps the line (it is evidence) and goes on. */
	run_begin(&r1);
	put(&r1, "INBOX", 7, 3, "three\r\n");
	run_end(&r1);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(res.chain_errors, 1, "only the malformed line: the new "
					  "run follows the last good one");
	cr_assert_eq(res.runs, 3);
}

Test(verify, the_kept_hash_must_be_in_the_chain)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;
	char forged[65];

	two_runs(&r1, &r2);
	cr_assert_eq(check(r1.sha, &res), ISNAP_OK);
	cr_assert_eq(check(r2.sha, &res), ISNAP_OK);
	memcpy(forged, r2.sha, sizeof forged);
	forged[0] = forged[0] == '0' ? '1' : '0';
	cr_assert_eq(check(forged, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(only_failure()->kind, VERIFY_CHAIN);
	cr_assert_eq(check("not-a-hash", &res), ISNAP_EUSAGE);
}

Test(verify, a_malformed_manifest_line_is_reported)
{
	struct run r1 = { 0 }, r2 = { 0 };
	struct verify_result res;

	two_runs(&r1, &r2);
	edit(r1.path, "{\"type\":\"message\"", "{\"type\":\"messag!\"");
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(res.manifest_errors, 1);
}

/* ---------------------------------------------------------------------- */
/* Not a backup                                                            */

Test(verify, a_directory_that_is_no_backup_is_a_local_error)
{
	struct verify_result res;

	rmdir(state);
	cr_assert_eq(check(NULL, &res), ISNAP_ELOCAL);
	snprintf(dest, sizeof dest, "%s/nonexistent", base);
	cr_assert_eq(check(NULL, &res), ISNAP_ELOCAL);
}

Test(verify, a_backup_whose_manifests_are_gone_fails)
{
	struct verify_result res;

	/* .imapsnap is there (the state), the manifests are not. */
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY);
	cr_assert_eq(only_failure()->kind, VERIFY_CHAIN);
}

/* ---------------------------------------------------------------------- */
/* Every format                                                            */

/* A backup in `format` at `target` (a directory, or a single-file
 * export's file name): two folders, three messages with a marker each. */
static void backup_in(const char *format, const char *target, bool single)
{
	/* Not ASCII: archive names must come back whatever the locale. */
	static const char *const folders[] = { "INBOX", "INBOX",
					       "Entw\xc3\xbcrfe" };
	const struct manifest_run_info info = { .format = format };
	struct store *inner = NULL, *s = NULL;
	struct manifest *m = NULL;
	struct isnap_error err = { 0 };

	ok(store_open(format, target, &inner, &err), &err);
	ok(open_in(single ? NULL : state, &info, &m, &err), &err);
	ok(manifest_wrap(m, inner, &s, &err), &err);
	for (uint32_t uid = 1; uid <= 3; uid++) {
		struct store_folder f = folder(folders[uid - 1], 7);
		struct uidset present = UIDSET_INIT;
		char body[20000];
		int n = snprintf(body, sizeof body,
				 "From: a@example.org\r\nSubject: %u\r\n\r\n"
				 "MARK-%u\r\n",
				 uid, uid);
		/* Enough text that the compressed formats compress. */
		while (n < 15000)
			n += snprintf(body + n, sizeof body - (size_t)n,
				      "line %d of message %u\r\n", n, uid);
		struct store_message msg = { .uid = uid, .keywords = "",
					     .internaldate = 1600000000,
					     .rfc822_size = (uint64_t)n,
					     .size = (uint64_t)n };
		ok(s->ops->open_folder(s, &f, &present, &err), &err);
		ok(s->ops->begin_message(s, &msg, &err), &err);
		ok(s->ops->write(s, body, (size_t)n, &err), &err);
		ok(s->ops->end_message(s, &msg, &err), &err);
		ok(s->ops->close_folder(s, &err), &err);
		uidset_free(&present);
	}
	ok(s->ops->finish(s, &err), &err);
	store_free(s);
	manifest_free(m);
}

/* The one file below `top` (outside .imapsnap) whose name ends in
 * `suffix`: a volume, an mbox, a single-file export. */
static char hit[600];
static const char *hit_suffix;

static int find_one(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	size_t n = strlen(path), k = strlen(hit_suffix);

	(void)sb;
	(void)ftw;
	if (flag != FTW_F || strstr(path, "/.imapsnap/") || n < k ||
	    strcmp(path + n - k, hit_suffix) != 0)
		return 0;
	snprintf(hit, sizeof hit, "%s", path);
	return 1;
}

static const char *file_ending(const char *top, const char *suffix)
{
	hit[0] = '\0';
	hit_suffix = suffix;
	nftw(top, find_one, 16, FTW_PHYS);
	cr_assert(hit[0], "no *%s below %s", suffix, top);
	return hit;
}

/* Flip the last byte of `marker` where it first occurs in `path`. */
static void flip_marker(const char *path, const char *marker)
{
	size_t len;
	char *text = slurp(path, &len);
	char *p = memmem(text, len, marker, strlen(marker));

	cr_assert_not_null(p, "%s not in %s", marker, path);
	p[strlen(marker) - 1] ^= 1;
	write_file(path, text, len);
	free(text);
}

/* Rewrite a gzip file with `marker` altered in its uncompressed bytes. */
static void gz_flip_marker(const char *path, const char *marker)
{
	gzFile in = gzopen(path, "rb"), out;
	char *data = NULL, tmp[700], *p;
	size_t len = 0, cap = 0;
	int n;

	cr_assert_not_null(in);
	do {
		if (len + 65536 > cap)
			data = realloc(data, cap = 2 * cap + 65536);
		n = gzread(in, data + len, 65536);
		cr_assert_geq(n, 0);
		len += (size_t)n;
	} while (n > 0);
	gzclose(in);
	p = memmem(data, len, marker, strlen(marker));
	cr_assert_not_null(p);
	p[strlen(marker) - 1] ^= 1;
	snprintf(tmp, sizeof tmp, "%s.new", path);
	out = gzopen(tmp, "wb");
	cr_assert_eq(gzwrite(out, data, (unsigned)len), (int)len);
	cr_assert_eq(gzclose(out), Z_OK);
	cr_assert_eq(rename(tmp, path), 0);
	free(data);
}

enum rewrite { ALTER, DROP, ADD };

/* Rewrite an archive in its own format and compression: the entry that
 * holds `marker` altered or left out, or one forged entry added. */
static void rewrite_archive(const char *path, const char *marker,
			    enum rewrite what)
{
	struct archive *r = archive_read_new(), *w = archive_write_new();
	struct archive_entry *e;
	char tmp[700];
	bool first = true;
	/* libarchive converts names through the thread's locale. */
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t saved = uselocale(utf8);

	snprintf(tmp, sizeof tmp, "%s.new", path);
	archive_read_support_filter_all(r);
	archive_read_support_format_all(r);
	cr_assert_eq(archive_read_open_filename(r, path, 65536), ARCHIVE_OK);
	while (archive_read_next_header(r, &e) == ARCHIVE_OK) {
		size_t size = (size_t)archive_entry_size(e), got = 0;
		char *data = malloc(size + 1);
		la_ssize_t n;
		char *p;

		if (first) {
			cr_assert_eq(archive_write_set_format(w, archive_format(r)),
				     ARCHIVE_OK);
			for (int i = archive_filter_count(r) - 1; i >= 0; i--)
				if (archive_filter_code(r, i) != ARCHIVE_FILTER_NONE)
					cr_assert_eq(archive_write_add_filter(
							     w, archive_filter_code(r, i)),
						     ARCHIVE_OK);
			cr_assert_eq(archive_write_open_filename(w, tmp), ARCHIVE_OK);
			first = false;
		}
		while (got < size &&
		       (n = archive_read_data(r, data + got, size - got)) > 0)
			got += (size_t)n;
		cr_assert_eq(got, size);
		p = size ? memmem(data, size, marker, strlen(marker)) : NULL;
		if (p && what == DROP) {
			free(data);
			continue;
		}
		if (p && what == ALTER)
			p[strlen(marker) - 1] ^= 1;
		cr_assert_eq(archive_write_header(w, e), ARCHIVE_OK);
		if (size)
			cr_assert_eq(archive_write_data(w, data, size),
				     (la_ssize_t)size);
		free(data);
	}
	if (what == ADD) {
		static const char forged[] = "Subject: forged\r\n\r\n";
		e = archive_entry_new();
		archive_entry_set_pathname(e, "INBOX/cur/7_9.imapsnap:2,");
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0600);
		archive_entry_set_size(e, sizeof forged - 1);
		cr_assert_eq(archive_write_header(w, e), ARCHIVE_OK);
		archive_write_data(w, forged, sizeof forged - 1);
		archive_entry_free(e);
	}
	cr_assert_eq(archive_write_close(w), ARCHIVE_OK);
	archive_write_free(w);
	archive_read_free(r);
	uselocale(saved);
	freelocale(utf8);
	cr_assert_eq(rename(tmp, path), 0);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *text = slurp(from, &len);

	write_file(to, text, len);
	free(text);
}

static bool is_archive(const char *format)
{
	return !strncmp(format, "tar", 3) || !strcmp(format, "zip");
}

static const char *suffix_of(const char *format)
{
	if (!strcmp(format, "maildir"))
		return "7_2.imapsnap:2,";
	if (!strcmp(format, "mbox"))
		return "INBOX.mbox";
	if (!strcmp(format, "mbox.gz"))
		return "INBOX.mbox.gz";
	return format; /* "...tar.gz" */
}

static void every_format(const char *format, bool single)
{
	struct verify_result res;
	char target[sizeof dest], pristine[600];
	const char *file;
	struct seen *f;

	if (single) {
		snprintf(target, sizeof target, "%.60s/backup.%.20s", base,
			 format);
		snprintf(dest, sizeof dest, "%s", target);
	} else {
		snprintf(target, sizeof target, "%s", dest);
	}
	backup_in(format, target, single);
	cr_assert_eq(check(NULL, &res), ISNAP_OK, "%s: %zu findings: %s %s",
		     format, nfound, nfound ? found[0].detail : "",
		     nfound ? found[0].location : "");
	cr_assert_eq(res.recorded, 3, "%s", format);
	cr_assert_eq(res.matched, 3, "%s", format);

	/* One byte of message 2's stored bytes changes. */
	file = file_ending(single ? base : dest, suffix_of(format));
	snprintf(pristine, sizeof pristine, "%s/pristine", base);
	copy_file(file, pristine);
	if (is_archive(format))
		rewrite_archive(file, "MARK-2", ALTER);
	else if (!strcmp(format, "mbox.gz"))
		gz_flip_marker(file, "MARK-2");
	else
		flip_marker(file, "MARK-2");
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY, "%s", format);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_ALTERED, "%s: %s", format, f->detail);
	cr_assert_str_eq(f->folder, "INBOX", "%s", format);
	cr_assert_eq(f->uid, 2, "%s", format);
	copy_file(pristine, file);
	cr_assert_eq(check(NULL, &res), ISNAP_OK, "%s", format);
	if (!is_archive(format))
		return;

	/* Message 3 (Entwürfe) left out of the archive. */
	rewrite_archive(file, "MARK-3", DROP);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY, "%s", format);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_MISSING, "%s: %s", format, f->detail);
	cr_assert_str_eq(f->folder, "Entw\xc3\xbcrfe", "%s", format);
	cr_assert_eq(f->uid, 3, "%s", format);
	copy_file(pristine, file);

	/* One message more. */
	rewrite_archive(file, "", ADD);
	cr_assert_eq(check(NULL, &res), ISNAP_EINTEGRITY, "%s", format);
	f = only_failure();
	cr_assert_eq(f->kind, VERIFY_UNEXPECTED, "%s: %s", format, f->detail);
	cr_assert_str_eq(f->folder, "INBOX", "%s", format);
	cr_assert_eq(f->uid, 9, "%s", format);

	/* Cut in half: what cannot be read is said. */
	copy_file(pristine, file);
	{
		size_t len;
		char *text = slurp(file, &len);
		write_file(file, text, len / 2);
		free(text);
	}
	{ enum isnap_status st = check(NULL, &res); cr_assert_eq(st, ISNAP_EINTEGRITY, "%s: %d %zu %s", format, st, nfound, nfound ? found[0].detail : ""); }
	cr_assert_gt(res.unreadable + res.missing, 0, "%s", format);
}

Test(verify, every_format_maildir) { every_format("maildir", false); }
Test(verify, every_format_mbox) { every_format("mbox", false); }
Test(verify, every_format_mbox_gz) { every_format("mbox.gz", false); }
Test(verify, every_format_tar) { every_format("tar", false); }
Test(verify, every_format_tar_gz) { every_format("tar.gz", false); }
Test(verify, every_format_tar_zst) { every_format("tar.zst", false); }
Test(verify, every_format_tar_xz) { every_format("tar.xz", false); }
Test(verify, every_format_zip) { every_format("zip", false); }
Test(verify, every_format_single_tar) { every_format("tar", true); }
Test(verify, every_format_single_tar_gz) { every_format("tar.gz", true); }
Test(verify, every_format_single_tar_zst) { every_format("tar.zst", true); }
Test(verify, every_format_single_zip) { every_format("zip", true); }
