/*
 * test_gmail_index.c — which X-GM-MSGIDs a backup holds, read back from
 * its manifests (lib/gmail_index.c): a message counts once a commit line
 * of the same run file confirms it, read from the text imapsnap writes
 * without parsing it, and from any other JSON the same way by parsing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "gmail_index.h"

#include "tmpdir.h"

TestSuite(gmail_index, .init = tmpdir_setup, .fini = tmpdir_teardown);

static void write_run(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/.imapsnap/manifest/%s", dest, name);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void make_dest(void)
{
	char path[256];

	cr_assert_eq(mkdir(dest, 0700), 0);
	snprintf(path, sizeof path, "%s/.imapsnap", dest);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/.imapsnap/manifest", dest);
	cr_assert_eq(mkdir(path, 0700), 0);
}

/* Whether the index says `id` is held (a claim that finds it there). */
static bool held(struct gmail_index *gi, uint64_t id)
{
	return !gmail_index_claim(gi, id);
}

Test(gmail_index, committed_copies_only)
{
	struct gmail_index *gi = gmail_index_new();
	struct isnap_error err = { 0 };

	make_dest();
	write_run("20240101T000000.000000Z.jsonl",
		  "{\"type\":\"run\",\"manifest\":3}\n"
		  "{\"type\":\"folder\",\"folder\":\"a \\\"gm_msgid\\\":\\\"77\"}\n"
		  "{\"type\":\"message\",\"folder\":\"INBOX\",\"uid\":1,"
		  "\"gm_msgid\":\"1001\",\"sha256\":\"00\"}\n"
		  "{\"type\":\"message\",\"folder\":\"INBOX\",\"uid\":2,"
		  "\"gm_msgid\":\"1002\"}\n"
		  "{\"type\":\"commit\",\"messages\":2}\n"
		  /* not confirmed: the commit failed */
		  "{\"type\":\"message\",\"uid\":3,\"gm_msgid\":\"1003\"}\n"
		  "{\"type\":\"commit_failed\",\"messages\":1}\n"
		  /* written otherwise: parsed */
		  "{ \"type\": \"message\", \"gm_msgid\": \"1004\" }\n"
		  "{\"gm_msgid\":\"1005\",\"type\":\"message\"}\n"
		  "{\"type\":\"commit\"}\n"
		  /* not an id */
		  "{\"type\":\"message\",\"gm_msgid\":\"12x\"}\n"
		  "{\"type\":\"message\",\"gm_msgid\":1006}\n"
		  "{\"type\":\"commit\",\"messages\":2}\n"
		  /* never confirmed in this file: the run was killed */
		  "{\"type\":\"message\",\"gm_msgid\":\"1007\"}\n");
	write_run("20240102T000000.000000Z.jsonl",
		  "{\"type\":\"commit\",\"messages\":1}\n"
		  "{\"type\":\"message\",\"gm_msgid\":\"1008\"}\n"
		  "{\"type\":\"flags\",\"gm_msgid\":\"1009\"}\n"
		  "{\"type\":\"commit\",\"messages\":1}\n"
		  "{ \"type\": \"message\", \"gm_msgid\": \"1010\" }\n"
		  "{ \"type\": \"commit_failed\" }\n"
		  "{ \"type\": \"commit\" }\n");
	cr_assert_eq(gmail_index_load(gi, dest, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect(held(gi, 1001));
	cr_expect(held(gi, 1002));
	cr_expect(!held(gi, 1003), "a failed commit confirmed it");
	cr_expect(held(gi, 1004), "a line with spaces was not read");
	cr_expect(held(gi, 1005), "a line with other key order was not read");
	cr_expect(!held(gi, 77), "a folder name's text was taken for an id");
	cr_expect(!held(gi, 12));
	cr_expect(!held(gi, 1006));
	cr_expect(!held(gi, 1007), "the next file's commit confirmed it");
	cr_expect(held(gi, 1008));
	cr_expect(!held(gi, 1009), "a flags line is no copy");
	cr_expect(!held(gi, 1010), "a failed commit (parsed) confirmed it");
	gmail_index_free(gi);
}

Test(gmail_index, no_backup_yet)
{
	struct gmail_index *gi = gmail_index_new();
	struct isnap_error err = { 0 };

	cr_assert_eq(gmail_index_load(gi, dest, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_eq(gmail_index_count(gi), 0);
	gmail_index_free(gi);
}
