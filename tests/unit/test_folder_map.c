/*
 * test_folder_map.c — logical folder paths and where they go on a target
 * (lib/folder_map.c): the namespaces of Dovecot ("" and "/"), Cyrus
 * ("INBOX." and ".", or "" and "/") and Courier ("INBOX." and "."),
 * special-use roles, --into.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "folder_map.h"

static void check_path(const char *raw, char delim, const char *prefix,
		       const char *want)
{
	char *got = folder_logical_path(raw, delim, prefix);

	cr_assert_not_null(got);
	cr_expect_str_eq(got, want, "%s under \"%s\"", raw,
			 prefix ? prefix : "(null)");
	free(got);
}

Test(folder_map, logical_paths)
{
	check_path("INBOX", '/', "", "INBOX");
	check_path("inbox", '.', "INBOX.", "INBOX");
	check_path("Archive/2019", '/', "", "Archive/2019");
	check_path("INBOX.Archive.2019", '.', "INBOX.", "Archive/2019");
	check_path("Inbox.Archive", '.', "INBOX.", "Archive");
	check_path("Entw&APw-rfe", '/', NULL, "Entw\xc3\xbcrfe");
	check_path("INBOX.&ZeVnLIqe-.Sub", '.', "INBOX.",
		   "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub");
	/* Outside the prefix: every level kept. */
	check_path("user.bob.x", '.', "INBOX.", "user/bob/x");
	/* Not valid modified UTF-7: as it is. */
	check_path("a&b", '/', "", "a&b");
	/* A '/' inside one level of a "." server stays. */
	check_path("INBOX.a/b", '.', "INBOX.", "a/b");
	/* The prefix alone is no folder below it. */
	check_path("INBOX.", '.', "INBOX.", "INBOX/");
}

Test(folder_map, roles)
{
	cr_expect_str_eq(folder_role("\\sent"), "\\Sent");
	cr_expect_null(folder_role("\\Important"));
	cr_expect_null(folder_role(NULL));
	cr_expect(folder_role_maps("\\Trash"));
	cr_expect(!folder_role_maps("\\All"));
	cr_expect(!folder_role_maps("\\Flagged"));
}

static struct imap_folder_list list_of(const char *prefix, char delim,
				       const char *const *names,
				       const char *const *uses)
{
	struct imap_folder_list l = { 0 };

	l.ns.known = true;
	l.ns.prefix = strdup(prefix);
	l.ns.delim = delim;
	for (l.n = 0; names[l.n]; l.n++)
		;
	l.v = calloc(l.n, sizeof *l.v);
	for (size_t i = 0; i < l.n; i++) {
		l.v[i].name = strdup(names[i]);
		l.v[i].delim = delim;
		l.v[i].special_use = uses[i] ? strdup(uses[i]) : NULL;
	}
	return l;
}

static void check_target(const struct folder_map *m, const char *path,
			 const char *role, const char *raw, bool by_role)
{
	struct folder_target t;
	struct isnap_error err = { 0 };

	cr_assert_eq(folder_map_target(m, path, role, &t, &err), ISNAP_OK,
		     "%s: %s", path, err.msg);
	cr_expect_str_eq(t.raw, raw, "%s", path);
	cr_expect_eq(t.by_role, by_role, "%s", path);
	folder_target_free(&t);
}

Test(folder_map, courier_target)
{
	const char *names[] = { "INBOX", "INBOX.Sent Items", "INBOX.Sent",
				NULL };
	const char *uses[] = { NULL, "\\Sent", NULL, NULL };
	struct imap_folder_list l = list_of("INBOX.", '.', names, uses);
	struct folder_map_opts o = { .map_roles = true };
	struct folder_map *m;
	struct isnap_error err = { 0 };

	cr_assert_eq(folder_map_new(&l, &o, &m, &err), ISNAP_OK);
	imap_folder_list_free(&l);
	cr_expect_eq(folder_map_delim(m), '.');
	check_target(m, "INBOX", NULL, "INBOX", false);
	check_target(m, "Archive/2019", NULL, "INBOX.Archive.2019", false);
	check_target(m, "Entw\xc3\xbcrfe", NULL, "INBOX.Entw&APw-rfe", false);
	check_target(m, "Sent", "\\Sent", "INBOX.Sent Items", true);
	check_target(m, "Trash", "\\Trash", "INBOX.Trash", false);
	/* Dovecot's INBOX/Sub is INBOX.Sub here. */
	check_target(m, "INBOX/Sub", NULL, "INBOX.Sub", false);
	folder_map_free(m);
}

Test(folder_map, roles_off_and_into)
{
	const char *names[] = { "INBOX", "Sent Items", NULL };
	const char *uses[] = { NULL, "\\Sent", NULL };
	struct imap_folder_list l = list_of("", '/', names, uses);
	struct folder_map_opts off = { .map_roles = false };
	struct folder_map_opts into = { .map_roles = true,
					.into = "Old/Restored" };
	struct folder_map *m;
	struct isnap_error err = { 0 };

	cr_assert_eq(folder_map_new(&l, &off, &m, &err), ISNAP_OK);
	check_target(m, "Sent", "\\Sent", "Sent", false);
	check_target(m, "Archive/2019", NULL, "Archive/2019", false);
	folder_map_free(m);
	cr_assert_eq(folder_map_new(&l, &into, &m, &err), ISNAP_OK);
	check_target(m, "Sent", "\\Sent", "Old/Restored/Sent", false);
	check_target(m, "INBOX", NULL, "Old/Restored/INBOX", false);
	folder_map_free(m);
	imap_folder_list_free(&l);
}

Test(folder_map, cyrus_stock_into)
{
	const char *names[] = { "INBOX", NULL };
	const char *uses[] = { NULL, NULL };
	struct imap_folder_list l = list_of("INBOX.", '.', names, uses);
	struct folder_map_opts into = { .into = "Restored" };
	struct folder_map *m;
	struct isnap_error err = { 0 };

	cr_assert_eq(folder_map_new(&l, &into, &m, &err), ISNAP_OK);
	check_target(m, "INBOX", NULL, "INBOX.Restored.INBOX", false);
	check_target(m, "a/b", NULL, "INBOX.Restored.a.b", false);
	folder_map_free(m);
	imap_folder_list_free(&l);
}

Test(folder_map, invalid_utf8_fails_the_folder)
{
	const char *names[] = { "INBOX", NULL };
	const char *uses[] = { NULL, NULL };
	struct imap_folder_list l = list_of("", '/', names, uses);
	struct folder_map_opts o = { 0 };
	struct folder_map *m;
	struct folder_target t;
	struct isnap_error err = { 0 };

	cr_assert_eq(folder_map_new(&l, &o, &m, &err), ISNAP_OK);
	cr_expect_eq(folder_map_target(m, "bad\xff", NULL, &t, &err),
		     ISNAP_EFOLDER);
	cr_expect_null(t.raw);
	folder_map_free(m);
	imap_folder_list_free(&l);
}
