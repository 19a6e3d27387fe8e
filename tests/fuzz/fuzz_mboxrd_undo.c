/*
 * fuzz_mboxrd_undo.c — how restore rebuilds a message stored in mbox
 * (mboxrd_undo, lib/store/mboxrd.c): quoted by mboxrd_feed as a backup
 * stores it, then undone in chunks, the message must come back in the
 * form the server sends (CRLF line ends).
 *
 * fuzz-sources: lib/store/mboxrd.c
 *
 * The input's first byte seeds the chunking of the rebuild; the rest is
 * the message as the server sent it.  Checked:
 *  - the rebuilt bytes are the message with every bare LF made CRLF
 *    (what an IMAP server sends has only CRLF; mbox keeps LF line ends
 *    and lone CRs), followed by one CRLF when the message was not empty
 *    and did not end in one (the line end mbox adds), and that last
 *    CRLF is then an `eol` call of its own, last of all;
 *  - the data sink never gets an LF, nor an empty piece;
 *  - a sink that fails stops feed with its value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/mboxrd.h"

struct buf {
	char *p;
	size_t len, cap;
	size_t eols;
	bool last_was_eol;
	size_t fail_after; /* fail once this many bytes were taken; 0: never */
};

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mboxrd_undo: %s\n", what);
		abort();
	}
}

static void append(struct buf *b, const char *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		if (!(b->p = realloc(b->p, b->cap)))
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static int quoted(void *ctx, const char *data, size_t len)
{
	append(ctx, data, len);
	return 0;
}

static int on_data(void *ctx, const char *data, size_t len)
{
	struct buf *b = ctx;

	check(len > 0, "an empty piece of data");
	check(memchr(data, '\n', len) == NULL, "an LF in the data");
	if (b->fail_after && b->len >= b->fail_after)
		return 7;
	append(b, data, len);
	b->last_was_eol = false;
	return 0;
}

static int on_eol(void *ctx)
{
	struct buf *b = ctx;

	if (b->fail_after && b->len >= b->fail_after)
		return 7;
	append(b, "\r\n", 2);
	b->eols++;
	b->last_was_eol = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf q = { 0 }, out = { 0 }, want = { 0 }, failing = { 0 };
	struct mboxrd enc;
	struct mboxrd_undo u;
	unsigned seed;
	size_t off = 0;
	int rc = 0;

	if (size < 1)
		return 0;
	seed = data[0];
	data++, size--;

	mboxrd_init(&enc, quoted, &q);
	check(mboxrd_feed(&enc, data, size) == 0 && mboxrd_finish(&enc) == 0,
	      "quoting failed");

	/* What the server would send: LF made CRLF. */
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			append(&want, "\r", 1);
		append(&want, (const char *)data + i, 1);
	}
	if (want.len && (want.len < 2 || want.p[want.len - 2] != '\r' ||
			 want.p[want.len - 1] != '\n'))
		append(&want, "\r\n", 2);

	mboxrd_undo_init(&u, on_data, on_eol, &out);
	while (off < q.len) {
		size_t n = 1 + (seed * 31u + off * 7u) % (seed % 97 + 1);
		if (n > q.len - off)
			n = q.len - off;
		check(mboxrd_undo_feed(&u, q.p + off, n) == 0, "feed failed");
		off += n;
	}
	check(mboxrd_undo_finish(&u) == 0, "finish failed");
	check(out.len == want.len && (!want.len ||
				      !memcmp(out.p, want.p, want.len)),
	      "the rebuilt message differs");
	check(!want.len || out.last_was_eol,
	      "the last line end is not an eol call of its own");

	/* A sink that fails stops the feed with its value. */
	if (out.len > 2) {
		failing.fail_after = out.len / 2;
		mboxrd_undo_init(&u, on_data, on_eol, &failing);
		rc = mboxrd_undo_feed(&u, q.p, q.len);
		if (!rc)
			rc = mboxrd_undo_finish(&u);
		check(rc == 7, "a failing sink did not stop the rebuild");
	}
	free(q.p);
	free(out.p);
	free(want.p);
	free(failing.p);
	return 0;
}
