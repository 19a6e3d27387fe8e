/* What a Gmail label stands for on restore (gmail_labels.h), and the
 * label lists STORE sends (restore_labels.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gmail_labels.h"
#include "restore_labels.h"

Test(gmail_labels, system_labels_are_roles_or_no_folder)
{
	struct gmail_label_place p = gmail_label_place("\\Inbox");
	cr_assert_eq(p.kind, GMAIL_LABEL_INBOX);
	p = gmail_label_place("\\sent");
	cr_assert_eq(p.kind, GMAIL_LABEL_ROLE);
	cr_assert_str_eq(p.role, "\\Sent");
	cr_assert_str_eq(gmail_label_place("\\Draft").role, "\\Drafts");
	cr_assert_str_eq(gmail_label_place("\\Spam").role, "\\Junk");
	cr_assert_eq(gmail_label_place("\\Starred").kind, GMAIL_LABEL_FLAG);
	cr_assert_eq(gmail_label_place("\\Important").kind, GMAIL_LABEL_NONE);
	cr_assert_eq(gmail_label_place("\\Unknown").kind, GMAIL_LABEL_NONE);
	cr_assert_eq(gmail_label_place("").kind, GMAIL_LABEL_NONE);
	cr_assert_eq(gmail_label_place("Work/2024").kind, GMAIL_LABEL_FOLDER);
	cr_assert_eq(gmail_label_place("Entwürfe").kind, GMAIL_LABEL_FOLDER);
}

Test(gmail_labels, append_role)
{
	const char *sent[] = { "Work", "\\Sent" };
	const char *draft[] = { "\\Sent", "\\Draft" };
	const char *inbox[] = { "\\Inbox", "\\Important" };

	cr_assert_str_eq(gmail_append_role(sent, 2), "\\Sent");
	cr_assert_str_eq(gmail_append_role(draft, 2), "\\Drafts");
	cr_assert_str_eq(gmail_append_role(inbox, 2), "\\All");
	cr_assert_str_eq(gmail_append_role(NULL, 0), "\\All");
}

Test(gmail_labels, storable)
{
	cr_assert(gmail_label_storable("\\Inbox"));
	cr_assert(gmail_label_storable("\\Important"));
	cr_assert(gmail_label_storable("Work"));
	cr_assert_not(gmail_label_storable("\\Sent"));
	cr_assert_not(gmail_label_storable("\\Draft"));
	cr_assert_not(gmail_label_storable("\\Starred"));
	cr_assert_not(gmail_label_storable("\\Trash"));
}

Test(restore_labels, list_quotes_and_encodes)
{
	const char *l[] = { "\\Inbox", "Work/2024", "Entwürfe", "a \"b\\c" };
	bool bad;
	char *s = restore_labels_list(l, 4, &bad);

	cr_assert_not_null(s);
	cr_assert_str_eq(s, "(\\Inbox \"Work/2024\" \"Entw&APw-rfe\" "
			    "\"a \\\"b\\\\c\")");
	free(s);
}

Test(restore_labels, unwritable_label_is_refused)
{
	const char *utf[] = { "Work", "\xff\xfe" };
	const char *ctl[] = { "a\r\nb" };
	bool bad = false;
	char *s;

	cr_assert_null(restore_labels_list(utf, 2, &bad));
	cr_assert(bad);
	/* Control characters are written in modified UTF-7, like 8-bit
	 * ones: never raw. */
	s = restore_labels_list(ctl, 1, &bad);
	cr_assert_not_null(s);
	cr_assert_not(bad);
	cr_assert_null(strpbrk(s, "\r\n"));
	free(s);
}
