/*
 * test_parser.c — the incremental IMAP response parser (lib/imap/parser.c).
 *
 * Every sample is fed whole, one byte at a time, and in random chunks from
 * several fixed seeds, with its literals both inlined and streamed by the
 * test itself.  Each parsed response is rendered to one canonical line
 * (below) and compared with the expected text, so that all feeding modes
 * must agree byte for byte.
 *
 * Rendering: atoms raw, strings quoted with \" \\ and \xHH for bytes
 * outside printable ASCII, NIL, lists in parentheses with single spaces.
 * A streamed literal is rendered as the string of the bytes the test
 * consumed for it, so inline and streamed runs share their expectations.
 * Status responses: "NAME [CODE|code_args] :text" (brackets only with a
 * code); continuations: "+ :text".
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"

/* ---- a growable byte buffer ------------------------------------------ */

struct buf {
	char *p;
	size_t n, cap;
};

static void b_add(struct buf *b, const void *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		cr_assert_not_null(b->p);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void b_str(struct buf *b, const char *s)
{
	b_add(b, s, strlen(s));
}

static void b_quoted(struct buf *b, const char *s, size_t n)
{
	char hex[8];
	b_str(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			b_add(b, "\\", 1);
			b_add(b, &s[i], 1);
		} else if (c >= 0x20 && c < 0x7f) {
			b_add(b, &s[i], 1);
		} else {
			snprintf(hex, sizeof hex, "\\x%02x", c);
			b_str(b, hex);
		}
	}
	b_str(b, "\"");
}

/* ---- rendering --------------------------------------------------------- */

/* The literals the test streamed for the response being parsed, in order. */
struct streamed {
	struct buf lit[16];
	size_t n, next;
};

static void render_arg(struct buf *b, const struct imap_arg *a,
		       struct streamed *sl)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
		cr_assert_eq(strlen(a->str), a->len, "atom with a NUL");
		b_add(b, a->str, a->len);
		break;
	case IMAP_ARG_STRING:
		cr_assert_eq(a->str[a->len], '\0', "string not NUL-terminated");
		b_quoted(b, a->str, a->len);
		break;
	case IMAP_ARG_NIL:
		b_str(b, "NIL");
		break;
	case IMAP_ARG_LIST:
		cr_assert(a->count == 0 || a->list != NULL);
		b_str(b, "(");
		for (size_t i = 0; i < a->count; i++) {
			if (i)
				b_str(b, " ");
			render_arg(b, &a->list[i], sl);
		}
		b_str(b, ")");
		break;
	case IMAP_ARG_LITERAL_STREAMED:
		cr_assert_lt(sl->next, sl->n, "more streamed args than "
					      "literals streamed");
		cr_assert_eq(a->literal_size, sl->lit[sl->next].n);
		b_quoted(b, sl->lit[sl->next].p, sl->lit[sl->next].n);
		sl->next++;
		break;
	}
}

static bool is_status(const char *name)
{
	return !strcmp(name, "OK") || !strcmp(name, "NO") ||
	       !strcmp(name, "BAD") || !strcmp(name, "BYE") ||
	       !strcmp(name, "PREAUTH");
}

static void render(struct buf *b, const struct imap_response *r,
		   struct streamed *sl)
{
	char num[16];

	cr_assert_not_null(r->name);
	cr_assert_not_null(r->code_args);
	cr_assert_not_null(r->text);
	if (r->kind == IMAP_RESP_CONTINUATION) {
		cr_assert_null(r->tag);
		cr_assert_str_empty(r->name);
		cr_assert_eq(r->nargs, 0);
		b_str(b, "+ :");
		b_str(b, r->text);
		return;
	}
	if (r->kind == IMAP_RESP_TAGGED) {
		cr_assert_not_null(r->tag);
		b_str(b, r->tag);
		b_str(b, " ");
	} else {
		cr_assert_null(r->tag);
		b_str(b, "* ");
	}
	if (r->has_number) {
		snprintf(num, sizeof num, "%" PRIu32 " ", r->number);
		b_str(b, num);
	}
	b_str(b, r->name);
	if (is_status(r->name)) {
		cr_assert_eq(r->nargs, 0);
		if (r->code) {
			b_str(b, " [");
			b_str(b, r->code);
			b_str(b, "|");
			b_str(b, r->code_args);
			b_str(b, "]");
		}
		b_str(b, " :");
		b_str(b, r->text);
		return;
	}
	cr_assert_null(r->code);
	cr_assert_str_empty(r->text);
	cr_assert(r->nargs == 0 || r->args != NULL);
	sl->next = 0;
	for (size_t i = 0; i < r->nargs; i++) {
		b_str(b, " ");
		render_arg(b, &r->args[i], sl);
	}
	cr_assert_eq(sl->next, sl->n, "streamed %zu literals, response "
				      "shows %zu", sl->n, sl->next);
}

/* ---- the driver -------------------------------------------------------- */

enum feed { FEED_WHOLE, FEED_BYTE, FEED_RANDOM };
enum litmode { LIT_INLINE, LIT_STREAM };

static uint64_t rng;

static size_t rnd(size_t max)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return max ? (size_t)(rng % max) : 0;
}

/* How many bytes to hand over next, of `left`. */
static size_t chunk(enum feed f, size_t left)
{
	size_t k;
	switch (f) {
	case FEED_WHOLE:
		return left;
	case FEED_BYTE:
		return left ? 1 : 0;
	case FEED_RANDOM:
	default:
		/* mostly small pieces, sometimes large ones */
		k = rnd(4) ? 1 + rnd(17) : 1 + rnd(3000);
		return k < left ? k : left;
	}
}

/* Feed `in` and render every response into `out`, one line each. */
static size_t run(struct imap_parser *p, const char *in, size_t len,
		  enum feed f, enum litmode lm, uint64_t seed, struct buf *out)
{
	struct streamed sl = { 0 };
	size_t pos = 0, responses = 0;
	enum imap_parse_status last = IMAP_PARSE_RESPONSE;

	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	while (pos < len) {
		size_t k = chunk(f, len - pos), used = (size_t)-1;
		last = imap_parser_parse(p, in + pos, k, &used);
		cr_assert_leq(used, k);
		switch (last) {
		case IMAP_PARSE_MORE:
			cr_assert_eq(used, k, "MORE must consume everything");
			pos += used;
			break;
		case IMAP_PARSE_RESPONSE:
		case IMAP_PARSE_LITERAL:
			cr_assert_gt(used, 0);
			cr_assert_eq(in[pos + used - 1], '\n',
				     "stopped at offset %zu, not at a line end",
				     pos + used - 1);
			if (f == FEED_BYTE)
				cr_assert_eq(used, 1);
			pos += used;
			if (last == IMAP_PARSE_RESPONSE) {
				render(out, imap_parser_response(p), &sl);
				b_str(out, "\n");
				for (size_t i = 0; i < sl.n; i++)
					sl.lit[i].n = 0;
				sl.n = 0;
				responses++;
				break;
			}
			cr_assert_not_null(imap_parser_partial(p));
			uint64_t size = imap_parser_literal_size(p);
			cr_assert_leq(size, len - pos, "literal past the input");
			if (lm == LIT_INLINE) {
				imap_parser_literal_inline(p);
				break;
			}
			cr_assert_lt(sl.n, 16);
			struct buf *lb = &sl.lit[sl.n++];
			for (size_t left = (size_t)size; left;) {
				size_t n = chunk(f, left);
				b_add(lb, in + pos, n);
				pos += n;
				left -= n;
			}
			imap_parser_literal_done(p);
			break;
		case IMAP_PARSE_ERROR:
			cr_assert_fail("unexpected error at offset %zu: %s", pos,
				imap_parser_error(p));
		}
	}
	cr_assert_eq(last, IMAP_PARSE_RESPONSE, "input ended mid-response");
	for (size_t i = 0; i < 16; i++)
		free(sl.lit[i].p);
	return responses;
}

/* ---- samples ----------------------------------------------------------- */

struct sample {
	const char *name;
	const char *in;
	size_t len;         /* 0: strlen(in) */
	const char *expect; /* one line per response */
};

static const struct sample samples[] = {
	{ "fetch zero-length literal",
	  "* 12 FETCH (UID 5 FLAGS (\\Seen $Forwarded) INTERNALDATE "
	  "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 0 BODY[] {0}\r\n)\r\n",
	  0,
	  "* 12 FETCH (UID 5 FLAGS (\\Seen $Forwarded) INTERNALDATE "
	  "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 0 BODY[] \"\")\n" },
	{ "list quoted", "* LIST (\\HasNoChildren \\Noselect) \"/\" "
	  "\"Entw&APw-rfe\"\r\n", 0,
	  "* LIST (\\HasNoChildren \\Noselect) \"/\" \"Entw&APw-rfe\"\n" },
	{ "list NIL", "* LIST () NIL INBOX\r\n", 0, "* LIST () NIL INBOX\n" },
	{ "list literal name", "* LIST () \"/\" {5}\r\nhello\r\n", 0,
	  "* LIST () \"/\" \"hello\"\n" },
	{ "list literal+ name", "* LIST () \"/\" {3+}\r\nabc\r\n", 0,
	  "* LIST () \"/\" \"abc\"\n" },
	{ "list escapes", "* LIST (\\Noselect) \"\\\\\" \"a \\\"q\\\" b\"\r\n",
	  0, "* LIST (\\Noselect) \"\\\\\" \"a \\\"q\\\" b\"\n" },
	{ "list utf8", "* LIST () \"/\" \"Entw\xc3\xbcrfe\"\r\n", 0,
	  "* LIST () \"/\" \"Entw\\xc3\\xbcrfe\"\n" },
	{ "list wildcards", "* LIST (\\HasChildren) \".\" INBOX.*%\r\n", 0,
	  "* LIST (\\HasChildren) \".\" INBOX.*%\n" },
	{ "search", "* SEARCH 1 2 3\r\n", 0, "* SEARCH 1 2 3\n" },
	{ "search empty", "* SEARCH\r\n", 0, "* SEARCH\n" },
	{ "search trailing space", "* SEARCH 4 5 \r\n", 0, "* SEARCH 4 5\n" },
	{ "capability",
	  "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	  "LITERAL+ AUTH=PLAIN\r\n", 0,
	  "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	  "LITERAL+ AUTH=PLAIN\n" },
	{ "flags", "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
	  "$Forwarded)\r\n", 0,
	  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
	  "$Forwarded)\n" },
	{ "esearch", "* ESEARCH (TAG \"x\") UID ALL 1:5\r\n", 0,
	  "* ESEARCH (TAG \"x\") UID ALL 1:5\n" },
	{ "exists", "* 3 EXISTS\r\n", 0, "* 3 EXISTS\n" },
	{ "expunge lowercase", "* 2 expunge\r\n", 0, "* 2 EXPUNGE\n" },
	{ "number limit", "* 4294967295 EXISTS\r\n", 0,
	  "* 4294967295 EXISTS\n" },
	{ "namespace", "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n", 0,
	  "* NAMESPACE ((\"\" \"/\")) NIL NIL\n" },
	{ "status", "* STATUS \"INBOX\" (MESSAGES 231 UIDNEXT 44292)\r\n", 0,
	  "* STATUS \"INBOX\" (MESSAGES 231 UIDNEXT 44292)\n" },
	{ "ok uidvalidity", "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n", 0,
	  "* OK [UIDVALIDITY|3857529045] :UIDs valid\n" },
	{ "ok capability", "* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot "
	  "ready.\r\n", 0,
	  "* OK [CAPABILITY|IMAP4rev1 LITERAL+] :Dovecot ready.\n" },
	{ "ok permanentflags", "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] "
	  "Limited\r\n", 0,
	  "* OK [PERMANENTFLAGS|(\\Deleted \\Seen \\*)] :Limited\n" },
	{ "tagged no", "a1 NO [AUTHENTICATIONFAILED] Authentication "
	  "failed.\r\n", 0,
	  "a1 NO [AUTHENTICATIONFAILED|] :Authentication failed.\n" },
	{ "tagged ok", "isnap.7 OK Fetch completed (0.001 + 0.000 secs).\r\n",
	  0, "isnap.7 OK :Fetch completed (0.001 + 0.000 secs).\n" },
	{ "bye", "* BYE Logging out\r\n", 0, "* BYE :Logging out\n" },
	{ "preauth LF only", "* preauth [capability IMAP4rev1] hi\n", 0,
	  "* PREAUTH [CAPABILITY|IMAP4rev1] :hi\n" },
	{ "ok bare", "* OK\r\n", 0, "* OK :\n" },
	{ "continuation", "+ Ready for literal data\r\n", 0,
	  "+ :Ready for literal data\n" },
	{ "continuation bare", "+\r\n", 0, "+ :\n" },
	{ "fetch sections",
	  "* 7 FETCH (BODY[HEADER.FIELDS (FROM TO)] {18}\r\n"
	  "From: a\r\nTo: b\r\n\r\n BODY[]<0> {3}\r\nabc UID 9)\r\n",
	  0,
	  "* 7 FETCH (BODY[HEADER.FIELDS (FROM TO)] "
	  "\"From: a\\x0d\\x0aTo: b\\x0d\\x0a\\x0d\\x0a\" BODY[]<0> \"abc\" "
	  "UID 9)\n" },
	{ "fetch literal that looks like responses",
	  "* 2 FETCH (BODY[] {29}\r\n)\r\n* 3 FETCH (\r\nA1 OK {5}\r\n\r\n"
	  " UID 3)\r\n", 0,
	  "* 2 FETCH (BODY[] \")\\x0d\\x0a* 3 FETCH (\\x0d\\x0aA1 OK "
	  "{5}\\x0d\\x0a\\x0d\\x0a\" UID 3)\n" },
	{ "bodystructure",
	  "* 1 FETCH (UID 1 BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" "
	  "\"us-ascii\") NIL NIL \"7BIT\" 3 1 NIL NIL NIL NIL)(\"APPLICATION\" "
	  "\"OCTET-STREAM\" (\"NAME\" {5}\r\na b c) NIL NIL \"BASE64\" 4 NIL "
	  "NIL NIL NIL) \"MIXED\" (\"BOUNDARY\" \"x\") NIL NIL NIL))\r\n",
	  0,
	  "* 1 FETCH (UID 1 BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" "
	  "\"us-ascii\") NIL NIL \"7BIT\" 3 1 NIL NIL NIL NIL) (\"APPLICATION\" "
	  "\"OCTET-STREAM\" (\"NAME\" \"a b c\") NIL NIL \"BASE64\" 4 NIL "
	  "NIL NIL NIL) \"MIXED\" (\"BOUNDARY\" \"x\") NIL NIL NIL))\n" },
	{ "binary literal with NUL",
	  "* 4 FETCH (BINARY[1] ~{4}\r\n\0\1\r\n)\r\n", 34,
	  "* 4 FETCH (BINARY[1] \"\\x00\\x01\\x0d\\x0a\")\n" },
	{ "literals first in a list", "* ID ({4}\r\nname {7}\r\nDovecot)\r\n",
	  0, "* ID (\"name\" \"Dovecot\")\n" },
	{ "literal LF only", "* LIST () \"/\" {2}\nab\n", 0,
	  "* LIST () \"/\" \"ab\"\n" },
	{ "nested empty lists", "* X (() (()) ((a) b))\r\n", 0,
	  "* X (() (()) ((a) b))\n" },
};

#define NSAMPLES (sizeof samples / sizeof *samples)

static size_t sample_len(const struct sample *s)
{
	return s->len ? s->len : strlen(s->in);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The FETCH shape of a bulk backup, with a 4286-byte body whose bytes
 * include CRLFs, parentheses, a fake literal header and NUL. */
static void big_fetch(struct buf *in, struct buf *expect)
{
	static const char head[] =
		"* 12 FETCH (UID 5 FLAGS (\\Seen $Forwarded) INTERNALDATE "
		"\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 BODY[] ";
	char body[4286];
	static const char piece[] = "Subject: ) ( {12}\r\n\"x\"\\\0\xff\r\n";

	for (size_t i = 0; i < sizeof body; i++)
		body[i] = piece[i % (sizeof piece - 1)];
	b_str(in, head);
	b_str(in, "{4286}\r\n");
	b_add(in, body, sizeof body);
	b_str(in, ")\r\n");
	b_str(expect, head);
	b_quoted(expect, body, sizeof body);
	b_str(expect, ")\n");
}

static const uint64_t seeds[] = { 1, 2, 3, 42, 1234, 99991, 0xdeadbeef };

static void check_one(const char *name, const char *in, size_t len,
		      const char *expect, enum feed f, enum litmode lm)
{
	size_t nseeds = f == FEED_RANDOM ? sizeof seeds / sizeof *seeds : 1;

	for (size_t i = 0; i < nseeds; i++) {
		struct imap_parser *p = imap_parser_new(NULL);
		struct buf out = { 0 };
		size_t n;

		cr_assert_not_null(p);
		n = run(p, in, len, f, lm, seeds[i], &out);
		cr_assert_eq(n, count_lines(expect), "%s: %zu responses",
			     name, n);
		cr_assert_str_eq(out.p ? out.p : "", expect,
				 "%s (seed %" PRIu64 "):\n%s", name, seeds[i],
				 out.p ? out.p : "");
		free(out.p);
		imap_parser_free(p);
	}
}

/* Each sample alone, then all of them back to back in one buffer. */
static void check_samples(enum feed f, enum litmode lm)
{
	struct buf all = { 0 }, all_expect = { 0 };
	struct buf big = { 0 }, big_expect = { 0 };

	big_fetch(&big, &big_expect);
	check_one("big fetch", big.p, big.n, big_expect.p, f, lm);
	b_add(&all, big.p, big.n);
	b_str(&all_expect, big_expect.p);
	for (size_t i = 0; i < NSAMPLES; i++) {
		const struct sample *s = &samples[i];
		check_one(s->name, s->in, sample_len(s), s->expect, f, lm);
		b_add(&all, s->in, sample_len(s));
		b_str(&all_expect, s->expect);
	}
	b_add(&all, big.p, big.n);
	b_str(&all_expect, big_expect.p);
	check_one("all back to back", all.p, all.n, all_expect.p, f, lm);
	free(all.p);
	free(all_expect.p);
	free(big.p);
	free(big_expect.p);
}

Test(samples, whole_inline) { check_samples(FEED_WHOLE, LIT_INLINE); }
Test(samples, whole_streamed) { check_samples(FEED_WHOLE, LIT_STREAM); }
Test(samples, bytewise_inline) { check_samples(FEED_BYTE, LIT_INLINE); }
Test(samples, bytewise_streamed) { check_samples(FEED_BYTE, LIT_STREAM); }
Test(samples, random_inline) { check_samples(FEED_RANDOM, LIT_INLINE); }
Test(samples, random_streamed) { check_samples(FEED_RANDOM, LIT_STREAM); }

/* Whole-buffer feeding must stop right after each response and leave the
 * rest for the next call. */
Test(samples, used_stops_at_response_end)
{
	static const char in[] = "* 1 EXISTS\r\n* 2 EXISTS\r\n* 3 EX";
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used;

	cr_assert_eq(imap_parser_parse(p, in, sizeof in - 1, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_eq(used, 12);
	cr_assert_eq(imap_parser_response(p)->number, 1);
	cr_assert_eq(imap_parser_parse(p, in + 12, sizeof in - 13, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_eq(used, 12);
	cr_assert_eq(imap_parser_response(p)->number, 2);
	cr_assert_eq(imap_parser_parse(p, in + 24, sizeof in - 25, &used),
		     IMAP_PARSE_MORE);
	cr_assert_eq(used, 6);
	cr_assert_null(imap_parser_response(p));
	imap_parser_free(p);
}

/* ---- literals: the partial response and both answers -------------------- */

static struct imap_parser *feed_to_literal(const char *in, size_t *used)
{
	struct imap_parser *p = imap_parser_new(NULL);
	cr_assert_eq(imap_parser_parse(p, in, strlen(in), used),
		     IMAP_PARSE_LITERAL, "%s", imap_parser_error(p));
	return p;
}

Test(literal, partial_shows_item_before_literal)
{
	const char *in = "* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc)\r\n";
	size_t used;
	struct imap_parser *p = feed_to_literal(in, &used);
	const struct imap_response *r;
	const struct imap_arg *items;

	cr_assert_eq(used, strlen("* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] "
				  "{3}\r\n"));
	cr_assert_eq(imap_parser_literal_size(p), 3);
	r = imap_parser_partial(p);
	cr_assert_not_null(r);
	cr_assert_eq(r->kind, IMAP_RESP_UNTAGGED);
	cr_assert(r->has_number);
	cr_assert_eq(r->number, 12);
	cr_assert_str_eq(r->name, "FETCH");
	cr_assert_eq(r->nargs, 1);
	items = &r->args[0];
	cr_assert_eq(items->type, IMAP_ARG_LIST);
	cr_assert_eq(items->count, 5);
	cr_assert(imap_arg_is_atom(&items->list[0], "UID"));
	cr_assert(imap_arg_is_atom(&items->list[2], "FLAGS"));
	cr_assert_eq(items->list[3].type, IMAP_ARG_LIST);
	cr_assert_eq(items->list[3].count, 1);
	cr_assert(imap_arg_is_atom(&items->list[3].list[0], "\\Seen"));
	cr_assert(imap_arg_is_atom(&items->list[4], "BODY[]"));

	/* stream it: the body becomes a LITERAL_STREAMED arg */
	imap_parser_literal_done(p);
	cr_assert_eq(imap_parser_parse(p, in + used + 3, strlen(in) - used - 3,
				       &used),
		     IMAP_PARSE_RESPONSE);
	r = imap_parser_response(p);
	cr_assert_eq(r->args[0].count, 6);
	cr_assert_eq(r->args[0].list[5].type, IMAP_ARG_LITERAL_STREAMED);
	cr_assert_eq(r->args[0].list[5].literal_size, 3);
	imap_parser_free(p);
}

Test(literal, partial_nested_open_lists)
{
	const char *in = "* 1 FETCH (X (a (b {1}\r\nc)))\r\n";
	size_t used;
	struct imap_parser *p = feed_to_literal(in, &used);
	const struct imap_response *r = imap_parser_partial(p);
	const struct imap_arg *l1, *l2, *l3;

	cr_assert_eq(r->nargs, 1);
	l1 = &r->args[0];
	cr_assert_eq(l1->count, 2);
	l2 = &l1->list[1];
	cr_assert_eq(l2->type, IMAP_ARG_LIST);
	cr_assert_eq(l2->count, 2);
	cr_assert(imap_arg_is_atom(&l2->list[0], "a"));
	l3 = &l2->list[1];
	cr_assert_eq(l3->type, IMAP_ARG_LIST);
	cr_assert_eq(l3->count, 1);
	cr_assert(imap_arg_is_atom(&l3->list[0], "b"));

	imap_parser_literal_inline(p);
	cr_assert_eq(imap_parser_parse(p, in + used, strlen(in) - used, &used),
		     IMAP_PARSE_RESPONSE);
	r = imap_parser_response(p);
	l3 = &r->args[0].list[1].list[1];
	cr_assert_eq(l3->count, 2);
	cr_assert_eq(l3->list[1].type, IMAP_ARG_STRING);
	cr_assert_str_eq(l3->list[1].str, "c");
	imap_parser_free(p);
}

Test(literal, partial_at_top_level)
{
	size_t used;
	struct imap_parser *p = feed_to_literal("* LIST () \"/\" {5}\r\n", &used);
	const struct imap_response *r = imap_parser_partial(p);

	cr_assert_str_eq(r->name, "LIST");
	cr_assert_eq(r->nargs, 2);
	cr_assert_eq(r->args[0].type, IMAP_ARG_LIST);
	cr_assert_eq(r->args[0].count, 0);
	cr_assert_eq(r->args[1].type, IMAP_ARG_STRING);
	cr_assert_str_eq(r->args[1].str, "/");
	imap_parser_free(p);
}

/* The second literal's partial response holds the first, streamed one. */
Test(literal, second_partial_holds_first_literal)
{
	const char *in = "* 3 FETCH (BODY[1] {2}\r\nxy BODY[2] {1}\r\nz)\r\n";
	size_t used, pos;
	struct imap_parser *p = feed_to_literal(in, &used);
	const struct imap_response *r;

	imap_parser_literal_done(p);
	pos = used + 2;
	cr_assert_eq(imap_parser_parse(p, in + pos, strlen(in) - pos, &used),
		     IMAP_PARSE_LITERAL);
	pos += used;
	r = imap_parser_partial(p);
	cr_assert_eq(r->args[0].count, 3);
	cr_assert_eq(r->args[0].list[1].type, IMAP_ARG_LITERAL_STREAMED);
	cr_assert_eq(r->args[0].list[1].literal_size, 2);
	cr_assert(imap_arg_is_atom(&r->args[0].list[2], "BODY[2]"));
	imap_parser_literal_inline(p);
	cr_assert_eq(imap_parser_parse(p, in + pos, strlen(in) - pos, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_eq(pos + used, strlen(in));
	r = imap_parser_response(p);
	cr_assert_eq(r->args[0].count, 4);
	cr_assert_str_eq(r->args[0].list[3].str, "z");
	imap_parser_free(p);
}

Test(literal, zero_length_both_ways)
{
	const char *in = "* LIST () \"/\" {0}\r\n\r\n";
	for (int mode = 0; mode < 2; mode++) {
		size_t used;
		struct imap_parser *p = feed_to_literal(in, &used);
		const struct imap_response *r;

		cr_assert_eq(imap_parser_literal_size(p), 0);
		if (mode)
			imap_parser_literal_done(p);
		else
			imap_parser_literal_inline(p);
		cr_assert_eq(imap_parser_parse(p, in + used, strlen(in) - used,
					       &used),
			     IMAP_PARSE_RESPONSE);
		r = imap_parser_response(p);
		cr_assert_eq(r->nargs, 3);
		cr_assert_eq(r->args[2].type, mode ? IMAP_ARG_LITERAL_STREAMED
						   : IMAP_ARG_STRING);
		cr_assert_eq(r->args[2].len, 0);
		cr_assert_eq(r->args[2].literal_size, 0);
		imap_parser_free(p);
	}
}

Test(literal, unanswered_literal_is_an_error)
{
	size_t used;
	struct imap_parser *p = feed_to_literal("* LIST () \"/\" {5}\r\n", &used);

	cr_assert_eq(imap_parser_parse(p, "hello\r\n", 7, &used),
		     IMAP_PARSE_ERROR);
	cr_assert_eq(used, 0);
	cr_assert(strstr(imap_parser_error(p), "literal"));
	imap_parser_free(p);
}

Test(literal, answer_without_literal_is_an_error)
{
	struct imap_parser *p = imap_parser_new(NULL);
	size_t used;

	imap_parser_literal_done(p);
	cr_assert_eq(imap_parser_parse(p, "* 1 EXISTS\r\n", 12, &used),
		     IMAP_PARSE_ERROR);
	imap_parser_free(p);
}

/* ---- status responses ---------------------------------------------------- */

static const struct imap_response *parse_one(struct imap_parser *p,
					     const char *in)
{
	size_t used;
	enum imap_parse_status st = imap_parser_parse(p, in, strlen(in), &used);
	cr_assert_eq(st, IMAP_PARSE_RESPONSE, "%s: %s", in,
		     imap_parser_error(p));
	cr_assert_eq(used, strlen(in));
	return imap_parser_response(p);
}

static void check_status(const char *in, enum imap_response_kind kind,
			 const char *tag, const char *name, const char *code,
			 const char *code_args, const char *text)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r = parse_one(p, in);

	cr_assert_eq(r->kind, kind, "%s", in);
	if (tag)
		cr_assert_str_eq(r->tag, tag, "%s", in);
	else
		cr_assert_null(r->tag, "%s", in);
	cr_assert_str_eq(r->name, name, "%s", in);
	if (code)
		cr_assert_str_eq(r->code, code, "%s", in);
	else
		cr_assert_null(r->code, "%s: code %s", in, r->code);
	cr_assert_str_eq(r->code_args, code_args, "%s", in);
	cr_assert_str_eq(r->text, text, "%s", in);
	cr_assert_eq(r->nargs, 0, "%s", in);
	imap_parser_free(p);
}

Test(status, splitting)
{
	check_status("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
		     IMAP_RESP_UNTAGGED, NULL, "OK", "UIDVALIDITY",
		     "3857529045", "UIDs valid");
	check_status("a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
		     IMAP_RESP_TAGGED, "a1", "NO", "AUTHENTICATIONFAILED", "",
		     "Authentication failed.");
	check_status("* OK Dovecot ready.\r\n", IMAP_RESP_UNTAGGED, NULL, "OK",
		     NULL, "", "Dovecot ready.");
	check_status("* OK [ALERT]\r\n", IMAP_RESP_UNTAGGED, NULL, "OK",
		     "ALERT", "", "");
	check_status("* ok [read-write] done\r\n", IMAP_RESP_UNTAGGED, NULL,
		     "OK", "READ-WRITE", "", "done");
	check_status("* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n",
		     IMAP_RESP_UNTAGGED, NULL, "OK", "CAPABILITY",
		     "IMAP4rev1 LITERAL+", "hi");
	check_status("* OK [PERMANENTFLAGS (\\Seen \\Flagged)] x\r\n",
		     IMAP_RESP_UNTAGGED, NULL, "OK", "PERMANENTFLAGS",
		     "(\\Seen \\Flagged)", "x");
	check_status("t2 NO [BADCHARSET (\"a]b\" UTF-8)] no\r\n",
		     IMAP_RESP_TAGGED, "t2", "NO", "BADCHARSET",
		     "(\"a]b\" UTF-8)", "no");
	check_status("* BAD [unclosed text\r\n", IMAP_RESP_UNTAGGED, NULL,
		     "BAD", NULL, "", "[unclosed text");
	check_status("* BYE\r\n", IMAP_RESP_UNTAGGED, NULL, "BYE", NULL, "",
		     "");
	check_status("* OK [HIGHESTMODSEQ 715194045007]\r\n",
		     IMAP_RESP_UNTAGGED, NULL, "OK", "HIGHESTMODSEQ",
		     "715194045007", "");
	check_status("A] BAD [] empty code\r\n", IMAP_RESP_TAGGED, "A]", "BAD",
		     NULL, "", "[] empty code");
}

Test(status, data_and_continuation_fields)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r = parse_one(p, "* 3 EXISTS\r\n");

	cr_assert(r->has_number);
	cr_assert_eq(r->number, 3);
	cr_assert_str_eq(r->name, "EXISTS");
	cr_assert_null(r->code);
	cr_assert_str_empty(r->code_args);
	cr_assert_str_empty(r->text);
	cr_assert_eq(r->nargs, 0);

	r = parse_one(p, "* CAPABILITY IMAP4rev1 IDLE\r\n");
	cr_assert_not(r->has_number);
	cr_assert_eq(r->nargs, 2);

	r = parse_one(p, "+ idling\r\n");
	cr_assert_eq(r->kind, IMAP_RESP_CONTINUATION);
	cr_assert_str_empty(r->name);
	cr_assert_str_eq(r->text, "idling");
	imap_parser_free(p);
}

/* ---- errors --------------------------------------------------------------- */

/* Feed `in` (len bytes) in one go, answering literals by inlining; expect an
 * error whose text contains `want`. */
static void expect_error_l(const struct imap_parser_limits *lim,
			   const char *in, size_t len, const char *want)
{
	struct imap_parser *p = imap_parser_new(lim);
	enum imap_parse_status st;
	size_t pos = 0, used;

	do {
		st = imap_parser_parse(p, in + pos, len - pos, &used);
		pos += used;
		if (st == IMAP_PARSE_LITERAL)
			imap_parser_literal_inline(p);
	} while ((st == IMAP_PARSE_LITERAL || st == IMAP_PARSE_RESPONSE) &&
		 pos < len);
	if (st != IMAP_PARSE_ERROR && st != IMAP_PARSE_LITERAL)
		st = imap_parser_parse(p, "", 0, &used);
	cr_assert_eq(st, IMAP_PARSE_ERROR, "no error for \"%.*s\"", (int)len,
		     in);
	cr_assert(strstr(imap_parser_error(p), want),
		  "error \"%s\" lacks \"%s\"", imap_parser_error(p), want);
	/* errors are sticky */
	cr_assert_eq(imap_parser_parse(p, "* 1 EXISTS\r\n", 12, &used),
		     IMAP_PARSE_ERROR);
	cr_assert_eq(used, 0);
	/* and reset makes the parser usable again */
	imap_parser_reset(p);
	cr_assert_str_empty(imap_parser_error(p));
	cr_assert_eq(imap_parser_parse(p, "* 1 EXISTS\r\n", 12, &used),
		     IMAP_PARSE_RESPONSE);
	imap_parser_free(p);
}

static void expect_error(const char *in, const char *want)
{
	expect_error_l(NULL, in, strlen(in), want);
}

Test(errors, unbalanced_parentheses)
{
	expect_error("* X (a))\r\n", "unbalanced");
	expect_error("* X )\r\n", "unbalanced");
	expect_error("* X ((a)\r\n", "unbalanced");
	expect_error("* X (a {1}\r\nb\r\n", "unbalanced");
}

Test(errors, nul_outside_literal)
{
	static const char *const in[] = { "* X a\0b\r\n", "* X \"a\0b\"\r\n",
					  "* OK a\0b\r\n", "a\0 OK\r\n",
					  "* X BODY[a\0]\r\n", "+ a\0\r\n" };
	static const size_t len[] = { 9, 11, 10, 7, 15, 7 };
	expect_error_l(NULL, in[0], len[0], "NUL");
	expect_error_l(NULL, in[1], len[1], "NUL");
	expect_error_l(NULL, in[2], len[2], "NUL");
	expect_error_l(NULL, in[3], len[3], "tag");
	expect_error_l(NULL, in[4], len[4], "NUL");
	expect_error_l(NULL, in[5], len[5], "NUL");
}

Test(errors, bare_cr)
{
	expect_error("* X a\rb\r\n", "CR");
	expect_error("* OK a\rb\r\n", "CR");
	expect_error("* X \"a\rb\"\r\n", "CR");
	expect_error("* X a\r\r\n", "CR");
}

Test(errors, bad_quoted_strings)
{
	expect_error("* X \"a\\nb\"\r\n", "escape");
	expect_error("* X \"\\a\"\r\n", "escape");
	expect_error("* X \"abc\\\"\r\n", "not closed");
	expect_error("* X \"abc\\\r\n", "escape");
	expect_error("* X \"abc\r\n", "not closed");
}

Test(errors, bad_tags_and_names)
{
	expect_error("a(1 OK x\r\n", "tag");
	expect_error("a*b OK x\r\n", "tag");
	expect_error("a+ OK x\r\n", "tag");
	expect_error(" OK x\r\n", "tag");
	expect_error("\"a\" OK x\r\n", "tag");
	expect_error("{3} OK x\r\n", "tag");
	expect_error("a1\r\n", "tag");
	expect_error("a1 FETCH (x)\r\n", "not OK, NO or BAD");
	expect_error("*OK\r\n", "space after '*'");
	expect_error("*  OK\r\n", "name");
	expect_error("* {3}\r\nabc\r\n", "name");
	expect_error("* 3\r\n", "name");
	expect_error("* 4294967296 EXISTS\r\n", "4294967295");
	expect_error("* 99999999999999999999999 EXISTS\r\n", "4294967295");
	expect_error("\r\n", "empty");
	expect_error("\n", "empty");
}

Test(errors, malformed_args)
{
	expect_error("* X {3} a\r\n", "not at the end");
	expect_error("* X {}\r\n", "without a size");
	expect_error("* X {a}\r\n", "without a size");
	expect_error("* X {3\r\n", "malformed literal");
	expect_error("* X {3+-}\r\n", "malformed literal");
	expect_error("* X \"a\"\"b\"\r\n", "missing space");
	expect_error("* X a(b)\r\n", "missing space");
	expect_error("* X (a){1}\r\nb\r\n", "missing space");
	expect_error("* X BODY[HEADER\r\n", "not closed by ']'");
	expect_error("* X a\tb\r\n", "0x09");
}

/* ---- limits ---------------------------------------------------------------- */

static const char hostile_prefix[] = "* 1 FETCH (BODY[] ";

static void expect_literal_error(const struct imap_parser_limits *lim,
				 const char *size, const char *want)
{
	char in[128];
	int n = snprintf(in, sizeof in, "%s{%s}\r\n", hostile_prefix, size);
	struct imap_parser *p = imap_parser_new(lim);
	size_t used;

	cr_assert_eq(imap_parser_parse(p, in, (size_t)n, &used),
		     IMAP_PARSE_ERROR, "size %s accepted", size);
	cr_assert(strstr(imap_parser_error(p), want), "%s: \"%s\"", size,
		  imap_parser_error(p));
	cr_assert_lt(imap_parser_memory(p), 16384);
	imap_parser_free(p);
}

Test(limits, literal_sizes)
{
	expect_literal_error(NULL, "9223372036854775808", "larger than the limit");
	expect_literal_error(NULL, "18446744073709551615", "larger than the limit");
	expect_literal_error(NULL, "18446744073709551616", "overflows");
	expect_literal_error(NULL, "99999999999999999999", "overflows");
	expect_literal_error(NULL, "1099511627777", "larger than the limit");

	struct imap_parser_limits lim = { .max_literal = 100 };
	expect_literal_error(&lim, "101", "limit of 100 bytes");
	expect_literal_error(&lim, "00000000000000000000000101", "limit of 100");

	/* exactly at the limit is fine */
	struct imap_parser *p = imap_parser_new(&lim);
	size_t used;
	cr_assert_eq(imap_parser_parse(p, "* X {100}\r\n", 11, &used),
		     IMAP_PARSE_LITERAL);
	cr_assert_eq(imap_parser_literal_size(p), 100);
	imap_parser_free(p);

	p = imap_parser_new(NULL);
	cr_assert_eq(imap_parser_parse(p, "* X {1099511627776}\r\n", 21, &used),
		     IMAP_PARSE_LITERAL);
	cr_assert_eq(imap_parser_literal_size(p), (uint64_t)1 << 40);
	imap_parser_free(p);
}

/* A line with no end, fed in `step`-byte pieces: must fail as soon as it
 * passes max_response, holding no more than that. */
static void endless_line(size_t max, size_t step)
{
	struct imap_parser_limits lim = { .max_response = max };
	struct imap_parser *p = imap_parser_new(max ? &lim : NULL);
	size_t limit = max ? max : IMAP_PARSER_DEFAULT_MAX_RESPONSE;
	char *chunk = malloc(step);
	enum imap_parse_status st;
	size_t fed = 0, used;
	char want[64];

	for (size_t i = 0; i < step; i++)
		chunk[i] = "1 "[i % 2];
	st = imap_parser_parse(p, "* SEARCH ", 9, &used);
	cr_assert_eq(st, IMAP_PARSE_MORE);
	fed = 9;
	while ((st = imap_parser_parse(p, chunk, step, &used)) ==
	       IMAP_PARSE_MORE) {
		cr_assert_eq(used, step);
		fed += step;
		cr_assert_leq(fed, limit, "fed %zu bytes without an error", fed);
	}
	cr_assert_eq(st, IMAP_PARSE_ERROR);
	cr_assert_gt(fed + step, limit);
	snprintf(want, sizeof want, "response line longer than %zu bytes",
		 limit);
	cr_assert_str_eq(imap_parser_error(p), want);
	cr_assert_leq(imap_parser_memory(p), limit + 4096,
		      "holds %zu bytes", imap_parser_memory(p));
	free(chunk);
	imap_parser_free(p);
}

Test(limits, endless_line)
{
	endless_line(4096, 1);
	endless_line(4096, 7);
	endless_line(4096, 1000);
	endless_line(0, 65536); /* the default 1 MiB */
}

Test(limits, response_exactly_at_limit)
{
	struct imap_parser_limits lim = { .max_response = 64 };
	char line[80];

	/* "* SEARCH " + digits + CRLF: 64 bytes accepted, 65 refused */
	for (size_t total = 64; total <= 65; total++) {
		struct imap_parser *p = imap_parser_new(&lim);
		enum imap_parse_status st = IMAP_PARSE_MORE;
		size_t used;

		memset(line, '7', sizeof line);
		memcpy(line, "* SEARCH ", 9);
		memcpy(line + total - 2, "\r\n", 2);
		for (size_t i = 0; i < total; i++) {
			st = imap_parser_parse(p, line + i, 1, &used);
			if (i + 1 < total && total == 64)
				cr_assert_eq(st, IMAP_PARSE_MORE);
			if (st != IMAP_PARSE_MORE)
				break;
		}
		cr_assert_eq(st, total == 64 ? IMAP_PARSE_RESPONSE
					     : IMAP_PARSE_ERROR,
			     "%zu bytes: %s", total, imap_parser_error(p));
		imap_parser_free(p);
	}
}

Test(limits, depth)
{
	char in[2100];
	size_t n;

	/* 1000 '(' against the default of 32 */
	n = (size_t)snprintf(in, sizeof in, "* X ");
	memset(in + n, '(', 1000);
	memset(in + n + 1000, ')', 1000);
	memcpy(in + n + 2000, "\r\n", 2);
	expect_error_l(NULL, in, n + 2002, "nested deeper than 32 levels");

	struct imap_parser *p = imap_parser_new(NULL);
	size_t used;
	cr_assert_eq(imap_parser_parse(p, in, n + 2002, &used),
		     IMAP_PARSE_ERROR);
	cr_assert_lt(imap_parser_memory(p), 16384);
	imap_parser_free(p);

	/* exactly 32 levels parse */
	n = (size_t)snprintf(in, sizeof in, "* X ");
	memset(in + n, '(', 32);
	memset(in + n + 32, ')', 32);
	memcpy(in + n + 64, "\r\n", 2);
	p = imap_parser_new(NULL);
	cr_assert_eq(imap_parser_parse(p, in, n + 66, &used),
		     IMAP_PARSE_RESPONSE);
	imap_parser_free(p);

	struct imap_parser_limits lim = { .max_depth = 2 };
	expect_error_l(&lim, "* X ((()))\r\n", 12, "deeper than 2 levels");
	p = imap_parser_new(&lim);
	cr_assert_eq(imap_parser_parse(p, "* X (()) (())\r\n", 15, &used),
		     IMAP_PARSE_RESPONSE);
	imap_parser_free(p);
}

Test(limits, args)
{
	struct imap_parser_limits lim = { .max_args = 10 };
	struct imap_parser *p = imap_parser_new(&lim);
	size_t used;

	cr_assert_eq(imap_parser_parse(p, "* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n",
				       31, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_eq(imap_parser_response(p)->nargs, 10);
	/* a list counts as an arg too: 10 */
	cr_assert_eq(imap_parser_parse(p, "* X (1 2 3 4 5 6 7 8 9)\r\n", 25,
				       &used),
		     IMAP_PARSE_RESPONSE);
	imap_parser_free(p);

	expect_error_l(&lim, "* SEARCH 1 2 3 4 5 6 7 8 9 10 11\r\n", 34,
		       "more than 10 arguments");
	expect_error_l(&lim, "* X (1 2 3 4 5 6 7 8 9 10)\r\n", 28,
		       "more than 10 arguments");
	/* refused at the literal header, before the body is streamed */
	expect_error_l(&lim, "* X 1 2 3 4 5 6 7 8 9 10 {3}\r\n", 30,
		       "more than 10 arguments");

	/* 100000 args against a limit of 1000: memory stays small */
	struct imap_parser_limits lim2 = { .max_args = 1000 };
	struct buf in = { 0 };
	b_str(&in, "* SEARCH");
	for (int i = 0; i < 100000; i++)
		b_str(&in, " 1");
	b_str(&in, "\r\n");
	p = imap_parser_new(&lim2);
	cr_assert_eq(imap_parser_parse(p, in.p, in.n, &used), IMAP_PARSE_ERROR);
	cr_assert_str_eq(imap_parser_error(p),
			 "more than 1000 arguments in one response");
	cr_assert_lt(imap_parser_memory(p), 2 * in.n + 1000 * 200,
		     "holds %zu bytes", imap_parser_memory(p));
	imap_parser_free(p);
	free(in.p);
}

Test(limits, inline_literal)
{
	struct imap_parser_limits lim = { .max_inline_literal = 100 };
	const char *in = "* X {101}\r\n";
	struct imap_parser *p = imap_parser_new(&lim);
	char body[101];
	size_t used;

	memset(body, 'b', sizeof body);
	cr_assert_eq(imap_parser_parse(p, in, strlen(in), &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_inline(p);
	cr_assert_eq(imap_parser_parse(p, body, sizeof body, &used),
		     IMAP_PARSE_ERROR);
	cr_assert(strstr(imap_parser_error(p), "too large to keep in memory"),
		  "%s", imap_parser_error(p));
	cr_assert_lt(imap_parser_memory(p), 16384);

	/* the same literal streamed is fine */
	imap_parser_reset(p);
	cr_assert_eq(imap_parser_parse(p, in, strlen(in), &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_done(p);
	cr_assert_eq(imap_parser_parse(p, "\r\n", 2, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_eq(imap_parser_response(p)->args[0].literal_size, 101);

	/* and 100 bytes inline too */
	cr_assert_eq(imap_parser_parse(p, "* X {100}\r\n", 11, &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_inline(p);
	cr_assert_eq(imap_parser_parse(p, body, 100, &used), IMAP_PARSE_MORE);
	cr_assert_eq(used, 100);
	cr_assert_eq(imap_parser_parse(p, "\r\n", 2, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_eq(imap_parser_response(p)->args[0].len, 100);
	imap_parser_free(p);
}

/* Inlined literals count against max_response; streamed ones do not. */
Test(limits, response_counts_inline_not_streamed)
{
	struct imap_parser_limits lim = { .max_response = 200 };
	char *body = malloc(1 << 20);
	struct imap_parser *p = imap_parser_new(&lim);
	size_t used;

	memset(body, 'x', 1 << 20);
	cr_assert_eq(imap_parser_parse(p, "* X a {150}\r\n", 13, &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_inline(p);
	cr_assert_eq(imap_parser_parse(p, body, 150, &used), IMAP_PARSE_MORE);
	/* 13 + 150 bytes so far; 40 more would pass 200 */
	cr_assert_eq(imap_parser_parse(p, " bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n",
				       38, &used),
		     IMAP_PARSE_ERROR);
	cr_assert(strstr(imap_parser_error(p), "longer than 200 bytes"));

	imap_parser_reset(p);
	cr_assert_eq(imap_parser_parse(p, "* X a b c {190}\r\n", 17, &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_inline(p);
	cr_assert_eq(imap_parser_parse(p, body, 190, &used), IMAP_PARSE_ERROR);
	cr_assert(strstr(imap_parser_error(p), "longer than 200 bytes"));

	imap_parser_reset(p);
	cr_assert_eq(imap_parser_parse(p, "* X {1048576}\r\n", 15, &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_done(p); /* the test "streams" 1 MiB */
	cr_assert_eq(imap_parser_parse(p, "\r\n", 2, &used),
		     IMAP_PARSE_RESPONSE);
	cr_assert_lt(imap_parser_memory(p), 16384);
	free(body);
	imap_parser_free(p);
}

/* ---- steady state ------------------------------------------------------------ */

/* A long run of FETCH responses must not keep allocating. */
Test(steady, memory_stays_flat)
{
	struct buf one = { 0 }, expect = { 0 };
	struct imap_parser *p = imap_parser_new(NULL);
	size_t mem_after_warmup = 0;

	big_fetch(&one, &expect);
	for (int i = 0; i < 2000; i++) {
		size_t pos = 0, used;
		enum imap_parse_status st;
		while ((st = imap_parser_parse(p, one.p + pos, one.n - pos,
					       &used)) != IMAP_PARSE_RESPONSE) {
			cr_assert_eq(st, IMAP_PARSE_LITERAL);
			pos += used;
			if (i % 2) {
				imap_parser_literal_inline(p);
			} else {
				pos += imap_parser_literal_size(p);
				imap_parser_literal_done(p);
			}
		}
		cr_assert_eq(pos + used, one.n);
		if (i == 10)
			mem_after_warmup = imap_parser_memory(p);
	}
	cr_assert_eq(imap_parser_memory(p), mem_after_warmup);
	free(one.p);
	free(expect.p);
	imap_parser_free(p);
}

Test(steady, reset_forgets_partial_response)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	size_t used;

	cr_assert_eq(imap_parser_parse(p, "* 5 FETCH (UID ", 15, &used),
		     IMAP_PARSE_MORE);
	imap_parser_reset(p);
	r = parse_one(p, "* 6 EXISTS\r\n");
	cr_assert_eq(r->number, 6);
	cr_assert_str_eq(r->name, "EXISTS");

	cr_assert_eq(imap_parser_parse(p, "* X (a {3}\r\n", 12, &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_reset(p);
	r = parse_one(p, "* SEARCH 1\r\n");
	cr_assert_eq(r->nargs, 1);
	imap_parser_free(p);
}

/* ---- arg helpers ------------------------------------------------------------- */

static struct imap_arg atom(const char *s)
{
	return (struct imap_arg){ .type = IMAP_ARG_ATOM, .str = s,
				  .len = strlen(s) };
}

Test(args, uint32)
{
	static const struct {
		const char *s;
		bool ok;
		uint32_t v;
	} cases[] = {
		{ "0", true, 0 },
		{ "7", true, 7 },
		{ "4294967295", true, 4294967295u },
		{ "0004294967295", true, 4294967295u },
		{ "", false, 0 },
		{ "4294967296", false, 0 },
		{ "99999999999999999999999", false, 0 },
		{ "+1", false, 0 },
		{ "-1", false, 0 },
		{ "1a", false, 0 },
		{ " 1", false, 0 },
		{ "1 ", false, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct imap_arg a = atom(cases[i].s);
		uint32_t v = 12345;
		cr_assert_eq(imap_arg_uint32(&a, &v), cases[i].ok, "\"%s\"",
			     cases[i].s);
		if (cases[i].ok)
			cr_assert_eq(v, cases[i].v, "\"%s\"", cases[i].s);
		else
			cr_assert_eq(v, 12345, "\"%s\" wrote", cases[i].s);
	}
	/* only `len` bytes count */
	struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = "12345", .len = 2 };
	uint32_t v;
	cr_assert(imap_arg_uint32(&a, &v));
	cr_assert_eq(v, 12);
	/* not an atom */
	a = atom("5");
	a.type = IMAP_ARG_STRING;
	cr_assert_not(imap_arg_uint32(&a, &v));
	a.type = IMAP_ARG_NIL;
	cr_assert_not(imap_arg_uint32(&a, &v));
}

Test(args, uint64)
{
	struct imap_arg a = atom("18446744073709551615");
	uint64_t v;

	cr_assert(imap_arg_uint64(&a, &v));
	cr_assert_eq(v, UINT64_MAX);
	a = atom("18446744073709551616");
	cr_assert_not(imap_arg_uint64(&a, &v));
	a = atom("715194045007");
	cr_assert(imap_arg_uint64(&a, &v));
	cr_assert_eq(v, 715194045007ull);
	a = atom("-0");
	cr_assert_not(imap_arg_uint64(&a, &v));
	a = atom("");
	cr_assert_not(imap_arg_uint64(&a, &v));
}

Test(args, is_atom)
{
	struct imap_arg a = atom("body[]");

	cr_assert(imap_arg_is_atom(&a, "BODY[]"));
	cr_assert_not(imap_arg_is_atom(&a, "BODY"));
	cr_assert_not(imap_arg_is_atom(&a, "BODY[]<0>"));
	a.type = IMAP_ARG_STRING;
	cr_assert_not(imap_arg_is_atom(&a, "BODY[]"));
	a = (struct imap_arg){ .type = IMAP_ARG_ATOM, .str = "UIDNEXT",
			       .len = 3 };
	cr_assert(imap_arg_is_atom(&a, "uid"));
}

Test(args, string)
{
	struct imap_parser *p = imap_parser_new(NULL);
	const struct imap_response *r;
	size_t used;
	const char *in = "* X abc \"q s\" NIL () {2}\r\n";
	cr_assert_eq(imap_parser_parse(p, in, strlen(in), &used),
		     IMAP_PARSE_LITERAL);
	imap_parser_literal_done(p);
	cr_assert_eq(imap_parser_parse(p, "\r\n", 2, &used),
		     IMAP_PARSE_RESPONSE);
	r = imap_parser_response(p);
	cr_assert_eq(r->nargs, 5);

	const char *s = "unset";
	size_t n = 99;
	cr_assert(imap_arg_string(&r->args[0], false, &s, &n));
	cr_assert_eq(n, 3);
	cr_assert_str_eq(s, "abc");
	cr_assert(imap_arg_string(&r->args[1], false, &s, &n));
	cr_assert_eq(n, 3);
	cr_assert_str_eq(s, "q s");
	cr_assert_not(imap_arg_string(&r->args[2], false, &s, &n));
	cr_assert(imap_arg_string(&r->args[2], true, &s, &n));
	cr_assert_null(s);
	cr_assert_eq(n, 0);
	cr_assert_not(imap_arg_string(&r->args[3], true, &s, &n));
	cr_assert_not(imap_arg_string(&r->args[4], true, &s, &n));
	imap_parser_free(p);
}

/* ---- a streamed SEARCH (limits.search_chunk) ------------------------- */

struct search_seen {
	size_t responses, numbers, empty;
	uint64_t sum;
	uint32_t last;
	bool ordered;
	size_t max_memory;
	struct buf tagged; /* other responses, rendered */
};

/* Feed `in` in pieces of `f`; every SEARCH response's numbers are added
 * up; any other response is rendered into seen->tagged. */
static void feed_search(struct imap_parser *p, const char *in, size_t len,
			enum feed f, uint64_t seed, struct search_seen *seen)
{
	size_t pos = 0;

	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	seen->ordered = true;
	while (pos < len) {
		size_t k = chunk(f, len - pos), used = (size_t)-1;
		enum imap_parse_status st = imap_parser_parse(p, in + pos, k,
							      &used);
		const struct imap_response *r;

		cr_assert_leq(used, k);
		pos += used;
		if (imap_parser_memory(p) > seen->max_memory)
			seen->max_memory = imap_parser_memory(p);
		if (st == IMAP_PARSE_MORE) {
			cr_assert_eq(used, k, "MORE must consume everything");
			continue;
		}
		cr_assert_eq(st, IMAP_PARSE_RESPONSE, "at %zu: %s", pos,
			     imap_parser_error(p));
		r = imap_parser_response(p);
		cr_assert_not_null(r);
		if (strcmp(r->name, "SEARCH")) {
			render(&seen->tagged, r, NULL);
			b_str(&seen->tagged, "\n");
			continue;
		}
		cr_assert_eq(r->kind, IMAP_RESP_UNTAGGED);
		seen->responses++;
		seen->empty += r->nargs == 0;
		for (size_t i = 0; i < r->nargs; i++) {
			uint32_t v;
			cr_assert(imap_arg_uint32(&r->args[i], &v),
				  "arg %zu is %s", i, r->args[i].str);
			if (v <= seen->last)
				seen->ordered = false;
			seen->last = v;
			seen->sum += v;
			seen->numbers++;
		}
	}
}

Test(search, streamed_in_chunks_every_way)
{
	const struct imap_parser_limits lim = { .search_chunk = 2 };
	const char *in = "* SEARCH 1 2 3 4 5\r\n* search  7 8 \r\n"
			 "* SEARCH\r\na1 OK done\r\n";
	enum feed feeds[] = { FEED_WHOLE, FEED_BYTE, FEED_RANDOM };

	for (size_t i = 0; i < sizeof feeds / sizeof *feeds; i++) {
		struct imap_parser *p = imap_parser_new(&lim);
		struct search_seen seen = { 0 };

		feed_search(p, in, strlen(in), feeds[i], 7, &seen);
		cr_assert_eq(seen.numbers, 7);
		cr_assert_eq(seen.sum, 1 + 2 + 3 + 4 + 5 + 7 + 8);
		cr_assert(seen.ordered);
		/* 1 2 | 3 4 | 5, then 7 8 | (the line end), then none */
		cr_assert_eq(seen.responses, 3 + 2 + 1, "feed %zu: %zu", i,
			     seen.responses);
		cr_assert_eq(seen.empty, 2);
		cr_assert_str_eq(seen.tagged.p, "a1 OK :done\n");
		free(seen.tagged.p);
		imap_parser_free(p);
	}
}

Test(search, answer_beyond_line_and_arg_limits)
{
	/* 300,000 UIDs, about 2 MB on one line: past max_response (1 MiB)
	 * and max_args (100,000), in memory bounded by the chunk. */
	const struct imap_parser_limits lim = { .search_chunk = 4096 };
	struct imap_parser *p = imap_parser_new(&lim);
	struct search_seen seen = { 0 };
	struct buf in = { 0 };
	uint64_t sum = 0;
	char num[16];

	b_str(&in, "* SEARCH");
	for (uint32_t u = 1; u <= 300000; u++) {
		snprintf(num, sizeof num, " %u", u * 3);
		b_str(&in, num);
		sum += u * 3;
	}
	b_str(&in, "\r\nt1 OK SEARCH done\r\n");
	cr_assert_gt(in.n, IMAP_PARSER_DEFAULT_MAX_RESPONSE);
	feed_search(p, in.p, in.n, FEED_RANDOM, 42, &seen);
	cr_assert_eq(seen.numbers, 300000);
	cr_assert_eq(seen.sum, sum);
	cr_assert(seen.ordered);
	cr_assert_leq(seen.max_memory, 512 * 1024, "held %zu bytes",
		      seen.max_memory);
	cr_assert_str_eq(seen.tagged.p, "t1 OK :SEARCH done\n");
	free(seen.tagged.p);
	imap_parser_free(p);

	/* Without search_chunk it is a line like any other: too long. */
	expect_error_l(NULL, in.p, in.n, "longer than");
	free(in.p);
}

Test(search, what_a_streamed_search_refuses)
{
	const struct imap_parser_limits lim = { .search_chunk = 16 };

	expect_error_l(&lim, "* SEARCH 1 2 (MODSEQ 5)\r\n", 25, "MODSEQ");
	expect_error_l(&lim,
		       "* SEARCH 1 "
		       "12345678901234567890123456789012345678901234567890"
		       "123456789012345\r\n", 78, "more than 64 bytes");
	expect_error_l(&lim, "* SEARCH 1 2\r3\r\n", 16, "CR not followed");
	expect_error_l(&lim, "* SEARCH 1 \"2\"\r\n", 16,
		       "unexpected character");
	expect_error_l(&lim, "* SEARCH 1 {2}\r\n", 16,
		       "unexpected character");
}

Test(search, what_is_not_a_search)
{
	const struct imap_parser_limits lim = { .search_chunk = 1 };
	struct imap_parser *p = imap_parser_new(&lim);
	const struct imap_response *r;

	/* What is not a number is handed out for the caller to judge;
	 * SEARCHES is another response; ESEARCH is parsed as ever. */
	r = parse_one(p, "* SEARCH -1\r\n");
	cr_assert_eq(r->nargs, 1);
	cr_assert_str_eq(r->args[0].str, "-1");
	cr_assert_eq(r->args[0].type, IMAP_ARG_ATOM);
	r = parse_one(p, "* SEARCH 18446744073709551617\r\n");
	cr_assert_str_eq(r->args[0].str, "18446744073709551617");
	r = parse_one(p, "* SEARCHES 1 2 3\r\n");
	cr_assert_str_eq(r->name, "SEARCHES");
	cr_assert_eq(r->nargs, 3);
	r = parse_one(p, "* ESEARCH (TAG \"a\") UID ALL 1:5\r\n");
	cr_assert_str_eq(r->name, "ESEARCH");
	cr_assert_eq(r->nargs, 4);
	r = parse_one(p, "* 3 EXISTS\r\n");
	cr_assert_str_eq(r->name, "EXISTS");
	imap_parser_free(p);
}
