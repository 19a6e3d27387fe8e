/*
 * fuzz_gmail.c — X-GM-LABELS as any server may send them
 * (lib/imap/gmail.c), behind the real response parser.
 *
 * fuzz-sources: lib/imap/gmail.c lib/imap/parser.c lib/mutf7.c lib/utf8.c lib/error.c
 *
 * The input is the value of X-GM-LABELS; it is wrapped into a FETCH
 * response and parsed.  Checked beyond "no crash, no leak, no undefined
 * behaviour": a failure is ISNAP_EPROTO with a message and no labels; a
 * success has at most GMAIL_LABELS_MAX labels, sorted, each once, none
 * empty or with a control character; and the list STORE would send parses
 * back to the very same labels.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/gmail.h"
#include "imap/parser.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_gmail: %s\n", what);
		abort();
	}
}

/* The X-GM-LABELS value of "* 1 FETCH (X-GM-LABELS <value>)", or NULL. */
static const struct imap_arg *parse(struct imap_parser *p, const char *value,
				    size_t len)
{
	static const char head[] = "* 1 FETCH (X-GM-LABELS ";
	size_t n = sizeof head - 1 + len + 3, used = 0;
	char *line = malloc(n);
	const struct imap_response *r;
	enum imap_parse_status st;

	if (!line)
		return NULL;
	memcpy(line, head, sizeof head - 1);
	memcpy(line + sizeof head - 1, value, len);
	memcpy(line + n - 3, ")\r\n", 3);
	st = imap_parser_parse(p, line, n, &used);
	free(line);
	if (st != IMAP_PARSE_RESPONSE || used != n)
		return NULL;
	r = imap_parser_response(p);
	if (strcmp(r->name, "FETCH") || r->nargs != 1 ||
	    r->args[0].type != IMAP_ARG_LIST || r->args[0].count != 2)
		return NULL;
	return &r->args[0].list[1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits lim = { .max_response = 65536 };
	struct imap_parser *p = imap_parser_new(&lim), *q;
	const struct imap_arg *v;
	struct gmail_labels l, back;
	struct isnap_error err = { 0 };
	char *text;

	if (!p)
		return 0;
	if (!memchr(data, '\n', size) && !memchr(data, '{', size) &&
	    (v = parse(p, (const char *)data, size))) {
		enum isnap_status st = gmail_labels_parse(v, &l, &err);
		if (st) {
			check(st == ISNAP_EPROTO && err.msg[0],
			      "failure without EPROTO and a message");
			check(l.n == 0 && !l.v, "failure left labels");
		} else {
			check(l.n <= GMAIL_LABELS_MAX, "too many labels");
			for (size_t i = 0; i < l.n; i++) {
				check(l.v[i][0] != '\0', "an empty label");
				for (const char *c = l.v[i]; *c; c++)
					check((unsigned char)*c >= 0x20 &&
						      *c != 0x7f,
					      "a control character");
				check(!i || strcmp(l.v[i - 1], l.v[i]) < 0,
				      "not sorted, or twice");
			}
			if (gmail_labels_store_list(&l, &text, &err) ==
			    ISNAP_OK) {
				/* Encoding may lengthen it past
				 * the first parser's limit. */
				struct imap_parser_limits big = {
					.max_response = 1 << 20
				};
				q = imap_parser_new(&big);
				v = q ? parse(q, text, strlen(text)) : NULL;
				check(!q || v != NULL,
				      "the STORE list does not parse");
				if (v) {
					check(gmail_labels_parse(v, &back,
								 &err) ==
						      ISNAP_OK,
					      "the STORE list is refused");
					check(gmail_labels_equal(&l, &back),
					      "the STORE list changes labels");
					gmail_labels_free(&back);
				}
				imap_parser_free(q);
				free(text);
			}
			gmail_labels_free(&l);
		}
	}
	imap_parser_free(p);
	return 0;
}
