/*
 * fuzz_mboxrd.c — mboxrd quoting (lib/store/mboxrd.c), checked against a
 * reference unquoter: the round trip gives back the message exactly (with
 * mbox's LF line ends), however the message is cut into chunks.
 *
 * fuzz-sources: lib/store/mboxrd.c
 *
 * The input's first byte seeds the chunking; the rest is the message.
 * Checked:
 *  - no output line is a From line (a reader would see a new message);
 *  - unquote(output) == the message with CRLF turned into LF and a final
 *    LF added when missing (what mboxrd.h promises);
 *  - the output does not depend on where the message was cut;
 *  - a sink that fails stops feed and finish with -1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/mboxrd.h"

struct buf {
	char *p;
	size_t len, cap;
	size_t fail_after; /* fail once this many bytes were taken; 0: never */
	int failed;
};

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mboxrd: %s\n", what);
		abort();
	}
}

static void append(struct buf *b, const char *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static int sink(void *ctx, const char *data, size_t len)
{
	struct buf *b = ctx;
	check(!b->failed, "the sink was called again after it failed");
	check(len > 0, "the sink got an empty piece");
	if (b->fail_after && b->len + len >= b->fail_after) {
		b->failed = 1;
		return -1;
	}
	append(b, data, len);
	return 0;
}

static uint32_t next(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* Quote `msg` fed in chunks chosen by `seed` (0: all at once). */
static int quote(const char *msg, size_t n, uint32_t seed, struct buf *out)
{
	struct mboxrd q;
	size_t pos = 0;
	int rc = 0;

	mboxrd_init(&q, sink, out);
	while (pos < n && rc == 0) {
		size_t k = seed ? 1 + next(&seed) % 17 : n;
		if (k > n - pos)
			k = n - pos;
		rc = mboxrd_feed(&q, msg + pos, k);
		pos += k;
	}
	if (rc == 0)
		rc = mboxrd_finish(&q);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf whole = { 0 }, chunked = { 0 }, norm = { 0 }, back = { 0 };
	struct buf failing = { 0 };
	uint32_t seed;

	if (size < 1)
		return 0;
	seed = data[0] * 2654435761u + 1;
	const char *msg = (const char *)data + 1;
	size_t n = size - 1;

	check(quote(msg, n, 0, &whole) == 0, "quoting failed");
	check(quote(msg, n, seed, &chunked) == 0, "quoting failed");
	check(whole.len == chunked.len &&
		      (whole.len == 0 || !memcmp(whole.p, chunked.p, whole.len)),
	      "the output depends on how the message was cut into chunks");

	/* What the message should come back as. */
	for (size_t i = 0; i < n; i++)
		if (!(msg[i] == '\r' && i + 1 < n && msg[i + 1] == '\n'))
			append(&norm, msg + i, 1);
	if (norm.len && norm.p[norm.len - 1] != '\n')
		append(&norm, "\n", 1);

	/* Unquote, line by line; and no line may start a message. */
	for (size_t i = 0; i < whole.len;) {
		const char *line = whole.p + i;
		const char *lf = memchr(line, '\n', whole.len - i);
		size_t len = lf ? (size_t)(lf - line) + 1 : whole.len - i;
		size_t gt = 0;
		check(!mboxrd_is_from_line(line, len),
		      "an output line is a From line");
		while (gt < len && line[gt] == '>')
			gt++;
		if (gt > 0 && len - gt >= 5 && !memcmp(line + gt, "From ", 5))
			append(&back, line + 1, len - 1);
		else
			append(&back, line, len);
		i += len;
	}
	check(whole.len == 0 || whole.p[whole.len - 1] == '\n',
	      "the output does not end with a line end");
	check(back.len == norm.len &&
		      (back.len == 0 || !memcmp(back.p, norm.p, back.len)),
	      "unquote(quote(m)) != m with LF line ends");

	/* A sink that fails part way. */
	if (whole.len > 1) {
		failing.fail_after = 1 + seed % whole.len;
		check(quote(msg, n, seed, &failing) == -1,
		      "a failing sink did not make quoting fail");
	}
	free(whole.p);
	free(chunked.p);
	free(norm.p);
	free(back.p);
	free(failing.p);
	return 0;
}
