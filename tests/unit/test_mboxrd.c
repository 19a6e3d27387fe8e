/* Unit tests for lib/store/mboxrd.c: quoting, line ends, and that any split
 * of the input gives the same output. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "store/mboxrd.h"

struct out {
	char *p;
	size_t len, cap;
	int fail_after; /* calls before the sink fails; <0: never */
	int calls;
};

static int sink(void *ctx, const char *data, size_t len)
{
	struct out *o = ctx;

	cr_assert_gt(len, 0, "the sink is never called with nothing");
	if (o->fail_after >= 0 && o->calls++ >= o->fail_after)
		return -1;
	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2;
		o->p = realloc(o->p, o->cap);
		cr_assert_not_null(o->p);
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
	return 0;
}

/* mboxrd of in[0..len), fed in chunks of `chunk` bytes (0: all at once);
 * malloc'd and NUL-terminated. */
static char *quote_chunked(const char *in, size_t len, size_t chunk,
			   size_t *out_len)
{
	struct out o = { .fail_after = -1 };
	struct mboxrd q;

	mboxrd_init(&q, sink, &o);
	if (!chunk)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		cr_assert_eq(mboxrd_feed(&q, in + off, n), 0);
	}
	cr_assert_eq(mboxrd_finish(&q), 0);
	o.p = realloc(o.p, o.len + 1);
	cr_assert_not_null(o.p);
	o.p[o.len] = '\0';
	if (out_len)
		*out_len = o.len;
	return o.p;
}

static char *quote_str(const char *in)
{
	return quote_chunked(in, strlen(in), 0, NULL);
}

static void expect_quoted(const char *in, const char *want)
{
	char *got = quote_str(in);

	cr_expect_str_eq(got, want, "input \"%s\"", in);
	free(got);
}

/* The mboxrd reader: remove one '>' from every line matching ^>+From . */
static char *unquote(const char *in, size_t len, size_t *out_len)
{
	char *out = malloc(len + 1);
	size_t o = 0, i = 0;

	cr_assert_not_null(out);
	while (i < len) {
		size_t end = i;
		while (end < len && in[end] != '\n')
			end++;
		size_t g = i;
		while (g < end && in[g] == '>')
			g++;
		if (g > i && end - g >= 5 && !memcmp(in + g, "From ", 5))
			i++; /* drop one '>' */
		size_t take = end < len ? end + 1 - i : end - i;
		memcpy(out + o, in + i, take);
		o += take;
		i += take;
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

Test(mboxrd, quotes_from_lines_at_every_depth)
{
	expect_quoted("From a\n>From b\n>>From c\n",
		      ">From a\n>>From b\n>>>From c\n");
	expect_quoted("x\nFrom here on\n", "x\n>From here on\n");
}

Test(mboxrd, leaves_lines_that_only_look_alike)
{
	expect_quoted("From\nFromage\n From x\nfrom y\n>Fro\n>\n>>\n",
		      "From\nFromage\n From x\nfrom y\n>Fro\n>\n>>\n");
	expect_quoted("a From b\n", "a From b\n");
	expect_quoted("From:x@y\n", "From:x@y\n");
}

Test(mboxrd, converts_crlf_keeps_lone_cr)
{
	expect_quoted("a\r\nb\rc\r\n\r\n", "a\nb\rc\n\n");
	expect_quoted("\r\r\n", "\r\n");
	expect_quoted("From x\r\n", ">From x\n");
}

Test(mboxrd, ends_with_a_line_end)
{
	expect_quoted("abc", "abc\n");
	expect_quoted("", "");
	expect_quoted("abc\n", "abc\n");
	expect_quoted(">>Fro", ">>Fro\n");
	expect_quoted("x\n>>", "x\n>>\n");
	/* A CR at the very end is a lone CR. */
	expect_quoted("abc\r", "abc\r\n");
	expect_quoted("From ", ">From \n");
}

Test(mboxrd, keeps_nul_and_8bit)
{
	static const char in[] = "a\0b\xff\r\nFrom \x80\0\n";
	static const char want[] = "a\0b\xff\n>From \x80\0\n";
	size_t len;
	char *got = quote_chunked(in, sizeof in - 1, 0, &len);

	cr_assert_eq(len, sizeof want - 1);
	cr_expect_eq(memcmp(got, want, len), 0);
	free(got);
}

Test(mboxrd, long_quote_runs_cost_no_memory)
{
	size_t n = 200000, len;
	char *in = malloc(n + 8), *got;

	cr_assert_not_null(in);
	memset(in, '>', n);
	memcpy(in + n, "From x\n", 7);
	got = quote_chunked(in, n + 7, 4096, &len);
	cr_assert_eq(len, n + 8);
	for (size_t i = 0; i <= n; i++)
		cr_assert_eq(got[i], '>', "byte %zu", i);
	cr_expect_eq(memcmp(got + n + 1, "From x\n", 7), 0);
	free(in);
	free(got);
}

/* Every way of cutting the input in two, and byte by byte, gives the
 * output of one piece. */
Test(mboxrd, any_split_gives_the_same_output)
{
	static const char in[] = "From a\r\n>From b\r\n\r\n>>Fro\r\nFrom \r"
				 "\nx\r\rFrom y\r\n>\r\n>From";
	size_t len = sizeof in - 1, want_len;
	char *want = quote_chunked(in, len, 0, &want_len);

	for (size_t cut = 0; cut <= len; cut++) {
		struct out o = { .fail_after = -1 };
		struct mboxrd q;
		mboxrd_init(&q, sink, &o);
		cr_assert_eq(mboxrd_feed(&q, in, cut), 0);
		cr_assert_eq(mboxrd_feed(&q, in + cut, len - cut), 0);
		cr_assert_eq(mboxrd_finish(&q), 0);
		cr_assert_eq(o.len, want_len, "cut at %zu", cut);
		cr_assert_eq(memcmp(o.p, want, o.len), 0, "cut at %zu", cut);
		free(o.p);
	}
	for (size_t chunk = 1; chunk < 8; chunk++) {
		size_t got_len;
		char *got = quote_chunked(in, len, chunk, &got_len);
		cr_assert_eq(got_len, want_len, "chunks of %zu", chunk);
		cr_assert_eq(memcmp(got, want, got_len), 0);
		free(got);
	}
	free(want);
}

/* Reading back restores the message (with LF line ends) exactly, for
 * messages made of the awkward pieces in every order. */
Test(mboxrd, round_trips_through_a_reader)
{
	static const char *const pieces[] = { "From ", ">", "\r\n", "\n",
					      "\r",    "x", "F",  "rom",
					      " ",     ">From " };
	unsigned seed = 12345;

	for (int round = 0; round < 3000; round++) {
		char in[256], lf[256];
		size_t len = 0, lf_len = 0, q_len, back_len;
		int n = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 12;
		char *quoted, *back;

		for (int i = 0; i < n; i++) {
			const char *p = pieces[((seed = seed * 1103515245 +
							12345) >>
						16) %
					       10];
			memcpy(in + len, p, strlen(p));
			len += strlen(p);
		}
		/* What the reader must give: LF line ends, ending in LF. */
		for (size_t i = 0; i < len; i++)
			if (!(in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
				lf[lf_len++] = in[i];
		if (lf_len && lf[lf_len - 1] != '\n')
			lf[lf_len++] = '\n';
		quoted = quote_chunked(in, len, 1 + (size_t)round % 5, &q_len);
		back = unquote(quoted, q_len, &back_len);
		cr_assert_eq(back_len, lf_len, "round %d", round);
		cr_assert_eq(memcmp(back, lf, lf_len), 0, "round %d", round);
		/* And no line of the stored form starts a message. */
		for (size_t i = 0; i < q_len; i++)
			if (i == 0 || quoted[i - 1] == '\n')
				cr_assert_not(mboxrd_is_from_line(quoted + i,
								  q_len - i),
					      "round %d", round);
		free(quoted);
		free(back);
	}
}

Test(mboxrd, sink_failure_stops_feeding)
{
	struct out o = { .fail_after = 1 };
	struct mboxrd q;

	mboxrd_init(&q, sink, &o);
	cr_expect_eq(mboxrd_feed(&q, "a\nb\nFrom c\n", 11), -1);
	free(o.p);

	o = (struct out){ .fail_after = 0 };
	mboxrd_init(&q, sink, &o);
	cr_expect_eq(mboxrd_feed(&q, ">>Fr", 4), 0); /* all held back */
	cr_expect_eq(mboxrd_finish(&q), -1);
	free(o.p);
}

Test(mboxrd, from_line_test)
{
	cr_expect(mboxrd_is_from_line("From x", 6));
	cr_expect(mboxrd_is_from_line("From ", 5));
	cr_expect_not(mboxrd_is_from_line("From", 4));
	cr_expect_not(mboxrd_is_from_line(">From ", 6));
	cr_expect_not(mboxrd_is_from_line("from ", 5));
}

/* --- mboxrd_undo: the stored form back to the server's ----------------- */

static int undo_eol(void *ctx)
{
	return sink(ctx, "\r\n", 2);
}

/* mboxrd_undo of in[0..len) in chunks of `chunk` bytes; NUL-terminated. */
static char *undo_chunked(const char *in, size_t chunk)
{
	struct out o = { .fail_after = -1 };
	struct mboxrd_undo u;
	size_t len = strlen(in);

	mboxrd_undo_init(&u, sink, undo_eol, &o);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		cr_assert_eq(mboxrd_undo_feed(&u, in + off, n), 0);
	}
	cr_assert_eq(mboxrd_undo_finish(&u), 0);
	o.p = realloc(o.p, o.len + 1);
	cr_assert_not_null(o.p);
	o.p[o.len] = '\0';
	return o.p;
}

Test(mboxrd_undo, one_quote_off_and_crlf_back, .description =
     "one '>' comes off ^>+From lines only, LF becomes CRLF, lone CRs stay")
{
	static const char stored[] = ">From a\n>>From b\n>Fro\nFrom\n>x\n"
				     ">>>>From deep\ncr\r\n\rend\n";
	static const char want[] = "From a\r\n>From b\r\n>Fro\r\nFrom\r\n>x\r\n"
				   ">>>From deep\r\ncr\r\r\n\rend\r\n";

	for (size_t chunk = 1; chunk <= sizeof stored; chunk++) {
		char *got = undo_chunked(stored, chunk);
		cr_assert_str_eq(got, want, "chunk %zu", chunk);
		free(got);
	}
}

Test(mboxrd_undo, round_trip_of_a_crlf_message)
{
	static const char msg[] = "Subject: x\r\n\r\nFrom here\r\n>From there"
				  "\r\n\r\n>>From far\r\nFrom";
	char *stored = quote_str(msg), *back = undo_chunked(stored, 3);
	size_t n = strlen(msg);

	/* What mbox added: the final line end. */
	cr_assert_eq(strlen(back), n + 2);
	cr_assert(!memcmp(back, msg, n));
	cr_assert_str_eq(back + n, "\r\n");
	free(stored);
	free(back);
}

Test(mboxrd_undo, held_prefix_at_the_end)
{
	char *got = undo_chunked(">>Fro", 1);

	cr_assert_str_eq(got, ">>Fro", "a line start held back is sent at "
				       "finish, unchanged");
	free(got);
}

Test(mboxrd_undo, a_failing_sink_stops_it)
{
	struct out o = { .fail_after = 0 };
	struct mboxrd_undo u;

	mboxrd_undo_init(&u, sink, undo_eol, &o);
	cr_assert_eq(mboxrd_undo_feed(&u, "abc\n", 4), -1);
}
