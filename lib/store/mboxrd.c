/*
 * mboxrd.c — see mboxrd.h.  The format: "mboxrd" in
 * https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml and
 * RFC 4155 (LF line ends, the From line).
 *
 * Two stages, each one state machine: CRLF to LF, then the quoting of
 * From lines.  Bytes in the middle of a line go to the sink in runs, not
 * byte by byte, so the cost is a memchr per line.
 */
#include "store/mboxrd.h"

#include <string.h>

static const char from_[] = "From ";
#define FROM_LEN 5

void mboxrd_init(struct mboxrd *q, mboxrd_sink sink, void *ctx)
{
	memset(q, 0, sizeof *q);
	q->sink = sink;
	q->ctx = ctx;
	q->line_start = true;
}

static int emit(struct mboxrd *q, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	q->any = true;
	q->ends_in_lf = p[n - 1] == '\n';
	return q->sink(q->ctx, p, n);
}

/* `n` '>' characters, in runs from a constant buffer: a hostile line may
 * start with millions of them. */
static int emit_gt(struct mboxrd *q, uint64_t n)
{
	static const char gts[64] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>"
				    ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";

	while (n) {
		size_t k = n < sizeof gts ? (size_t)n : sizeof gts;
		if (emit(q, gts, k))
			return -1;
		n -= k;
	}
	return 0;
}

/* The line prefix held back turned out not to be a From line. */
static int release_prefix(struct mboxrd *q)
{
	if (emit_gt(q, q->gt) || emit(q, from_, q->matched))
		return -1;
	q->gt = 0;
	q->matched = 0;
	q->line_start = false;
	return 0;
}

/* Stage 2: quoting, on bytes whose line ends are already LF. */
static int quote(struct mboxrd *q, const char *p, size_t n)
{
	while (n) {
		if (q->line_start) {
			char c = *p;
			if (q->matched == 0 && c == '>') {
				q->gt++;
				p++;
				n--;
				continue;
			}
			if (c == from_[q->matched]) {
				p++;
				n--;
				if (++q->matched < FROM_LEN)
					continue;
				/* ^>*From : one more '>' in front. */
				if (emit_gt(q, q->gt + 1) ||
				    emit(q, from_, FROM_LEN))
					return -1;
				q->gt = 0;
				q->matched = 0;
				q->line_start = false;
				continue;
			}
			if (release_prefix(q))
				return -1;
			/* `c` is looked at again as part of the line. */
		}
		const char *lf = memchr(p, '\n', n);
		size_t run = lf ? (size_t)(lf - p) + 1 : n;
		if (emit(q, p, run))
			return -1;
		p += run;
		n -= run;
		if (lf)
			q->line_start = true;
	}
	return 0;
}

/* Stage 1: CRLF to LF, across chunk boundaries. */
int mboxrd_feed(struct mboxrd *q, const void *data, size_t len)
{
	const char *p = data;

	if (len && q->cr) {
		q->cr = false;
		/* A CR before LF goes; any other CR stays. */
		if (*p != '\n' && quote(q, "\r", 1))
			return -1;
	}
	while (len) {
		const char *cr = memchr(p, '\r', len);
		size_t run = cr ? (size_t)(cr - p) : len;
		if (quote(q, p, run))
			return -1;
		p += run;
		len -= run;
		if (!cr)
			break;
		/* At the CR. */
		if (len == 1) {
			q->cr = true;
			break;
		}
		if (p[1] != '\n' && quote(q, "\r", 1))
			return -1;
		p++;
		len--;
	}
	return 0;
}

int mboxrd_finish(struct mboxrd *q)
{
	mboxrd_sink sink = q->sink;
	void *ctx = q->ctx;
	int rc = 0;

	if (q->cr && quote(q, "\r", 1))
		rc = -1;
	if (!rc && q->line_start && (q->gt || q->matched) &&
	    release_prefix(q))
		rc = -1;
	if (!rc && q->any && !q->ends_in_lf && emit(q, "\n", 1))
		rc = -1;
	mboxrd_init(q, sink, ctx);
	return rc;
}

bool mboxrd_is_from_line(const char *line, size_t len)
{
	return len >= FROM_LEN && memcmp(line, from_, FROM_LEN) == 0;
}

/* ---------------------------------------------------------------------- */
/* The reverse                                                             */

void mboxrd_undo_init(struct mboxrd_undo *u, mboxrd_sink data,
		      mboxrd_eol_sink eol, void *ctx)
{
	memset(u, 0, sizeof *u);
	u->data = data;
	u->eol = eol;
	u->ctx = ctx;
	u->line_start = true;
}

static int undo_data(struct mboxrd_undo *u, const char *p, size_t n)
{
	return n ? u->data(u->ctx, p, n) : 0;
}

/* The '>'s and the part of "From " held at a line start, as they were. */
static int undo_release(struct mboxrd_undo *u)
{
	static const char gts[64] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>"
				    ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";
	int rc = 0;

	while (u->gt && !rc) {
		size_t k = u->gt < sizeof gts ? (size_t)u->gt : sizeof gts;
		rc = undo_data(u, gts, k);
		u->gt -= k;
	}
	if (!rc)
		rc = undo_data(u, from_, u->matched);
	u->gt = 0;
	u->matched = 0;
	u->line_start = false;
	return rc;
}

int mboxrd_undo_feed(struct mboxrd_undo *u, const void *data, size_t len)
{
	const char *d = data;
	size_t i = 0, start = 0; /* d[start..i) is plain, not sent yet */
	int rc = 0;

	while (i < len && !rc) {
		char c = d[i];
		if (u->line_start) {
			if (!u->matched && c == '>') {
				u->gt++;
				start = ++i;
				continue;
			}
			if (c == from_[u->matched]) {
				if (++u->matched == FROM_LEN) {
					if (u->gt)
						u->gt--; /* the quote */
					rc = undo_release(u);
				}
				start = ++i;
				continue;
			}
			rc = undo_release(u);
			start = i;
			if (rc)
				break;
		}
		if (c == '\n') {
			rc = undo_data(u, d + start, i - start);
			if (!rc)
				rc = u->eol(u->ctx);
			u->line_start = true;
			start = ++i;
			continue;
		}
		i++;
	}
	if (!rc && !u->line_start)
		rc = undo_data(u, d + start, i - start);
	return rc;
}

int mboxrd_undo_finish(struct mboxrd_undo *u)
{
	int rc = u->line_start ? undo_release(u) : 0;

	u->line_start = true;
	return rc;
}
