/* Unit tests for lib/imap/gmail.c: X-GM-LABELS as Gmail sends them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/gmail.h"
#include "imap/parser.h"

/* Parse "* 1 FETCH (X-GM-LABELS <value>)" and return the value's arg. */
static struct imap_parser *P;

static const struct imap_arg *value(const char *labels)
{
	char line[2048];
	size_t used = 0, n;
	const struct imap_response *r;

	if (P)
		imap_parser_free(P);
	P = imap_parser_new(NULL);
	n = (size_t)snprintf(line, sizeof line,
			     "* 1 FETCH (UID 5 X-GM-LABELS %s)\r\n", labels);
	cr_assert_eq(imap_parser_parse(P, line, n, &used), IMAP_PARSE_RESPONSE,
		     "%s", line);
	r = imap_parser_response(P);
	cr_assert_eq(r->nargs, 1);
	cr_assert_eq(r->args[0].count, 4);
	return &r->args[0].list[3];
}

static void fini(void)
{
	imap_parser_free(P);
	P = NULL;
}

TestSuite(gmail, .fini = fini);

Test(gmail, system_and_user_labels_sorted_once)
{
	struct gmail_labels l;
	struct isnap_error err = { 0 };

	cr_assert_eq(gmail_labels_parse(value("(\"\\\\Inbox\" Work \\Important "
					      "\"Work\" \"R&AOk-sum&AOk-\")"),
					&l, &err),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(l.n, 4);
	cr_expect_str_eq(l.v[0], "R\xc3\xa9sum\xc3\xa9");
	cr_expect_str_eq(l.v[1], "Work");
	cr_expect_str_eq(l.v[2], "\\Important");
	cr_expect_str_eq(l.v[3], "\\Inbox");
	gmail_labels_free(&l);
	cr_assert_eq(gmail_labels_parse(value("()"), &l, &err), ISNAP_OK);
	cr_expect_eq(l.n, 0);
}

Test(gmail, malformed)
{
	static const char *const bad[] = {
		"NIL", "Work", "((Work))", "(\"\")", "(\"a&AAk-b\")",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct gmail_labels l;
		struct isnap_error err = { 0 };
		cr_expect_eq(gmail_labels_parse(value(bad[i]), &l, &err),
			     ISNAP_EPROTO, "%s", bad[i]);
		cr_expect_eq(l.n, 0);
	}
}

Test(gmail, store_list_round_trip)
{
	const char *names[] = { "\\Inbox", "Work/2024", "say \"hi\"",
				"a\\b", "R\xc3\xa9sum\xc3\xa9", "A&B" };
	struct gmail_labels l, back;
	struct isnap_error err = { 0 };
	char *text;

	cr_assert_eq(gmail_labels_from(names, 6, &l, &err), ISNAP_OK);
	cr_assert_eq(gmail_labels_store_list(&l, &text, &err), ISNAP_OK);
	cr_expect_str_eq(text, "(\"A&-B\" \"R&AOk-sum&AOk-\" \"Work/2024\" "
			       "\\Inbox \"a\\\\b\" \"say \\\"hi\\\"\")");
	cr_assert_eq(gmail_labels_parse(value(text), &back, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_expect(gmail_labels_equal(&l, &back));
	free(text);
	gmail_labels_free(&l);
	gmail_labels_free(&back);
}

Test(gmail, targets_on_other_servers)
{
	cr_expect_eq(gmail_label_target("\\Inbox").kind, GMAIL_TARGET_INBOX);
	cr_expect_str_eq(gmail_label_target("\\Sent").role, "\\Sent");
	cr_expect_str_eq(gmail_label_target("\\Draft").role, "\\Drafts");
	cr_expect_eq(gmail_label_target("\\Important").kind, GMAIL_TARGET_NONE);
	cr_expect_eq(gmail_label_target("\\Starred").kind, GMAIL_TARGET_NONE);
	cr_expect_str_eq(gmail_label_target("Work/2024").folder, "Work/2024");
}
