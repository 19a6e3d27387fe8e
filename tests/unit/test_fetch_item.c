/* Unit tests for lib/imap/fetch_item.c: which literal of a FETCH response
 * is the message, as restore and migrate must tell before they hash it. */
#include <criterion/criterion.h>
#include <string.h>

#include "imap/fetch_item.h"
#include "imap/parser.h"

/* Whether the first literal of `in` (a response, up to its first literal
 * and a little beyond) is BODY[]; with `skip`, the literals before the one
 * asked about are consumed as streamed. */
static bool is_body(const char *in, int skip)
{
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used, pos = 0;
	bool r;

	cr_assert_not_null(p);
	for (int i = 0;; i++) {
		cr_assert_eq(imap_parser_parse(p, in + pos, strlen(in) - pos,
					       &used),
			     IMAP_PARSE_LITERAL, "%s: %s", in,
			     imap_parser_error(p));
		pos += used;
		if (i == skip)
			break;
		pos += imap_parser_literal_size(p);
		imap_parser_literal_done(p);
	}
	r = imap_fetch_literal_is_body(imap_parser_partial(p));
	imap_parser_free(p);
	return r;
}

Test(fetch_item, only_the_value_of_body_is_the_message)
{
	cr_expect(is_body("* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\n", 0));
	cr_expect(is_body("* 1 FETCH (BODY[] {3}\r\nabc UID 5)\r\n", 0));
	cr_expect(is_body("* 1 fetch (uid 5 body[] {3}\r\nabc)\r\n", 0));
	/* A part, the header, a string item: not the message. */
	cr_expect(!is_body("* 1 FETCH (UID 5 BODY[HEADER] {3}\r\nabc)\r\n", 0));
	cr_expect(!is_body("* 1 FETCH (UID 5 BODY[1] {3}\r\nabc)\r\n", 0));
	cr_expect(!is_body("* 1 FETCH (UID 5 RFC822.HEADER {3}\r\nabc)\r\n",
			   0));
	/* A literal inside another item (ENVELOPE's subject). */
	cr_expect(!is_body("* 1 FETCH (ENVELOPE (NIL {3}\r\nabc NIL))\r\n", 0));
	/* In a name's place, not a value's. */
	cr_expect(!is_body("* 1 FETCH (UID 5 {6}\r\nBODY[] {3}\r\nabc)\r\n", 0));
	/* A second BODY[] in one response. */
	cr_expect(!is_body("* 1 FETCH (BODY[] {3}\r\nabc BODY[] {3}\r\nxyz)\r\n",
			   1));
	/* Not a FETCH at all. */
	cr_expect(!is_body("* 1 EXISTS {3}\r\nabc\r\n", 0));
	cr_expect(!is_body("* SEARCH (BODY[] {3}\r\nabc)\r\n", 0));
}

Test(fetch_item, items_by_name)
{
	static const char in[] = "* 3 FETCH (UID 7 RFC822.SIZE 120 FLAGS ())\r\n";
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_arg *a;
	uint32_t uid;
	size_t used;

	cr_assert_eq(imap_parser_parse(p, in, strlen(in), &used),
		     IMAP_PARSE_RESPONSE);
	a = imap_fetch_item(imap_parser_response(p), "uid");
	cr_assert_not_null(a);
	cr_expect(imap_arg_uint32(a, &uid) && uid == 7);
	cr_expect_null(imap_fetch_item(imap_parser_response(p), "BODY[]"));
	imap_parser_free(p);
}
