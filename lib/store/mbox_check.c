/* mbox_check.c — see mbox_check.h.  The file is split as mbox_scan.c
 * splits it (a From line is any line that starts with "From "; the line
 * end before it is the blank separator line's), so that what is kept
 * here is what verify reads back. */
#include "store/mbox_check.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "store/common.h"
#include "store/mbox_ident.h"

static const char from_[] = "From ";
#define FROM_LEN 5

/* A message of the file. */
struct msg {
	uint64_t offset;
	uint64_t length;     /* to the next From line, or to the end */
	uint64_t stored;     /* the bytes between From line and blank line */
	unsigned char ident[32], sha[32];
	/* The last message, when the file ends in one LF that may be its
	 * own rather than a blank line's (Python's mailbox writes the last
	 * message without its blank line): the same, with that LF. */
	bool has_alt;
	unsigned char ident_alt[32], sha_alt[32];
	bool complete;       /* its From line ended */
	bool matched;
};

struct splitter {
	struct msg *v;
	size_t n, a;
	struct mbox_ident id;
	EVP_MD_CTX *sha;
	uint64_t pos;        /* offset of the next byte */
	uint64_t line_pos;   /* where the line being decided starts */
	uint64_t preamble;   /* bytes before the first From line */
	bool in_msg, in_from, line_start, held_lf;
	char head[FROM_LEN];
	size_t head_len;
	unsigned char last[2]; /* the last two bytes, last[1] the newest */
	uint64_t seen;
};

static int body(struct splitter *sp, const char *p, size_t n)
{
	if (!n)
		return 0;
	if (!sp->in_msg) {
		sp->preamble += n;
		return 0;
	}
	sp->v[sp->n - 1].stored += n;
	if (mbox_ident_feed(&sp->id, p, n) ||
	    EVP_DigestUpdate(sp->sha, p, n) != 1) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int finish_digests(struct splitter *sp, unsigned char ident[32],
			  unsigned char sha[32])
{
	unsigned int len = 0;

	if (mbox_ident_final(&sp->id, ident) ||
	    EVP_DigestFinal_ex(sp->sha, sha, &len) != 1) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int end_msg(struct splitter *sp, uint64_t next)
{
	struct msg *m;

	if (!sp->in_msg)
		return 0;
	sp->in_msg = false;
	m = &sp->v[sp->n - 1];
	m->length = next - m->offset;
	return finish_digests(sp, m->ident, m->sha);
}

static int start_msg(struct splitter *sp, uint64_t offset)
{
	if (sp->n == sp->a) {
		size_t a = sp->a ? 2 * sp->a : 1024;
		struct msg *v = realloc(sp->v, a * sizeof *v);
		if (!v) {
			errno = ENOMEM;
			return -1;
		}
		sp->v = v;
		sp->a = a;
	}
	memset(&sp->v[sp->n], 0, sizeof sp->v[sp->n]);
	sp->v[sp->n++].offset = offset;
	mbox_ident_start(&sp->id);
	if (EVP_DigestInit_ex(sp->sha, EVP_sha256(), NULL) != 1) {
		errno = EIO;
		return -1;
	}
	sp->in_msg = true;
	sp->in_from = true;
	return 0;
}

static void track_last(struct splitter *sp, const char *p, size_t n)
{
	if (n >= 2) {
		sp->last[0] = (unsigned char)p[n - 2];
		sp->last[1] = (unsigned char)p[n - 1];
	} else if (n == 1) {
		sp->last[0] = sp->last[1];
		sp->last[1] = (unsigned char)p[0];
	}
	sp->seen += n;
}

static int feed(struct splitter *sp, const char *p, size_t len)
{
	track_last(sp, p, len);
	while (len) {
		if (sp->in_from) {
			const char *lf = memchr(p, '\n', len);
			size_t k = lf ? (size_t)(lf - p) + 1 : len;
			p += k, len -= k, sp->pos += k;
			if (lf) {
				sp->in_from = false;
				sp->v[sp->n - 1].complete = true;
				sp->line_start = true;
				sp->held_lf = false;
			}
			continue;
		}
		if (sp->line_start) {
			char c = *p;
			if (sp->head_len == 0)
				sp->line_pos = sp->pos;
			sp->head[sp->head_len++] = c;
			p++, len--, sp->pos++;
			if (sp->head_len == FROM_LEN &&
			    !memcmp(sp->head, from_, FROM_LEN)) {
				sp->head_len = 0;
				sp->line_start = false;
				sp->held_lf = false;
				if (end_msg(sp, sp->line_pos) ||
				    start_msg(sp, sp->line_pos))
					return -1;
				continue;
			}
			if (c != '\n' && c == from_[sp->head_len - 1])
				continue; /* may still be a From line */
			/* Not a From line: the LF held was the message's. */
			if (sp->held_lf && body(sp, "\n", 1))
				return -1;
			sp->held_lf = false;
			if (c == '\n') {
				if (body(sp, sp->head, sp->head_len - 1))
					return -1;
				sp->held_lf = true; /* line_start stays */
			} else {
				if (body(sp, sp->head, sp->head_len))
					return -1;
				sp->line_start = false;
			}
			sp->head_len = 0;
			continue;
		}
		{
			const char *lf = memchr(p, '\n', len);
			size_t k = lf ? (size_t)(lf - p) : len;
			if (body(sp, p, k))
				return -1;
			p += k, len -= k, sp->pos += k;
			if (lf) {
				p++, len--, sp->pos++;
				sp->held_lf = true;
				sp->line_start = true;
			}
		}
	}
	return 0;
}

static int split_end(struct splitter *sp)
{
	struct msg *m;
	struct mbox_ident alt = { 0 };
	EVP_MD_CTX *alt_sha = NULL;
	unsigned int len = 0;
	int rc = 0;

	if (sp->line_start && sp->head_len) {
		/* The start of a line that is no From line after all. */
		if (sp->held_lf && body(sp, "\n", 1))
			return -1;
		sp->held_lf = false;
		if (body(sp, sp->head, sp->head_len))
			return -1;
		sp->head_len = 0;
	}
	if (!sp->in_msg)
		return 0;
	m = &sp->v[sp->n - 1];
	m->length = sp->pos - m->offset;
	if (!sp->held_lf || sp->in_from)
		return end_msg(sp, sp->pos);
	/* The last LF: the blank line's, or the message's own. */
	if (mbox_ident_init(&alt) || !(alt_sha = EVP_MD_CTX_new()) ||
	    mbox_ident_copy(&alt, &sp->id) ||
	    EVP_MD_CTX_copy_ex(alt_sha, sp->sha) != 1 ||
	    mbox_ident_feed(&alt, "\n", 1) ||
	    EVP_DigestUpdate(alt_sha, "\n", 1) != 1 ||
	    mbox_ident_final(&alt, m->ident_alt) ||
	    EVP_DigestFinal_ex(alt_sha, m->sha_alt, &len) != 1) {
		errno = EIO;
		rc = -1;
	}
	mbox_ident_free(&alt);
	EVP_MD_CTX_free(alt_sha);
	m->has_alt = !rc;
	return rc ? rc : end_msg(sp, sp->pos);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

static int read_some(int fd, char *buf, size_t size, uint64_t at,
		     size_t *got)
{
	for (;;) {
		ssize_t n = pread(fd, buf, size, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		*got = (size_t)n;
		return 0;
	}
}

static int split_plain(int fd, uint64_t size, struct splitter *sp, char *in)
{
	for (uint64_t at = 0; at < size;) {
		size_t want = size - at < STORE_CHUNK ? (size_t)(size - at)
						      : STORE_CHUNK;
		size_t n;
		if (read_some(fd, in, want, at, &n))
			return -1;
		if (n == 0)
			break; /* shorter than it was: what there is */
		if (feed(sp, in, n))
			return -1;
		at += n;
	}
	return split_end(sp);
}

/* Inflate the gzip members of the first `limit` bytes of the file; with
 * `sp`, split what they hold.  *good is where the last member that
 * inflated whole ends (0: none did). */
static int inflate_members(int fd, uint64_t limit, struct splitter *sp,
			   char *in, char *out, uint64_t *good)
{
	z_stream z = { 0 };
	uint64_t at = 0, consumed = 0;
	bool member_open = false;
	int rc = 0;

	*good = 0;
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		int zr;
		if (z.avail_in == 0) {
			size_t want = limit - at < STORE_CHUNK
					      ? (size_t)(limit - at)
					      : STORE_CHUNK;
			size_t n = 0;
			if (want && read_some(fd, in, want, at, &n)) {
				rc = -1;
				break;
			}
			if (n == 0)
				break; /* the end, or the limit */
			at += n;
			z.next_in = (Bytef *)in;
			z.avail_in = (uInt)n;
		}
		member_open = true;
		z.next_out = (Bytef *)out;
		z.avail_out = STORE_CHUNK;
		{
			uInt before = z.avail_in;
			zr = inflate(&z, Z_NO_FLUSH);
			consumed += before - z.avail_in;
		}
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			break; /* damaged here: keep what came before */
		if (sp && feed(sp, out, STORE_CHUNK - z.avail_out)) {
			rc = -1;
			break;
		}
		if (zr == Z_STREAM_END) {
			member_open = false;
			*good = consumed;
			if (inflateReset(&z) != Z_OK) {
				errno = ENOMEM;
				rc = -1;
				break;
			}
		} else if (zr == Z_BUF_ERROR && z.avail_in != 0) {
			break; /* no progress possible */
		}
	}
	(void)member_open;
	inflateEnd(&z);
	if (!rc && sp)
		rc = split_end(sp);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Matching                                                                */

static int by_ident(const void *a, const void *b, void *base)
{
	const struct msg *v = base;
	const struct msg *x = &v[*(const size_t *)a];
	const struct msg *y = &v[*(const size_t *)b];
	int c = memcmp(x->ident, y->ident, 32);

	if (c)
		return c;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

static int by_offset(const void *a, const void *b)
{
	const struct mbox_kept *x = a, *y = b;

	return (x->offset > y->offset) - (x->offset < y->offset);
}

/* The message of the file that starts at `offset`, or -1. */
static ssize_t at_offset(const struct msg *v, size_t n, uint64_t offset)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo].offset == offset ? (ssize_t)lo : -1;
}

/* Which of its two readings message j matches with `ident`: 1 the
 * usual, 2 the one with the last LF its own, 0 none. */
static int reading(const struct msg *m, const unsigned char ident[32])
{
	if (!memcmp(m->ident, ident, 32))
		return 1;
	if (m->has_alt && !memcmp(m->ident_alt, ident, 32))
		return 2;
	return 0;
}

static void keep(struct mbox_check *c, size_t k, struct msg *m, int how)
{
	struct mbox_kept *kp = &c->kept[c->nkept++];

	m->matched = true;
	kp->known = k;
	kp->offset = m->offset;
	kp->length = m->length + (how == 2);
	kp->stored_size = m->stored + (how == 2);
	memcpy(kp->ident, how == 2 ? m->ident_alt : m->ident, 32);
	memcpy(kp->stored_sha, how == 2 ? m->sha_alt : m->sha, 32);
}

static int match(struct mbox_check *c, struct msg *v, size_t nv,
		 const struct mbox_known *known, size_t n)
{
	size_t *order = malloc((nv ? nv : 1) * sizeof *order);
	struct msg *last = nv ? &v[nv - 1] : NULL;

	c->kept = malloc((n < nv ? n : nv ? nv : 1) * sizeof *c->kept + 1);
	if (!order || !c->kept) {
		free(order);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < nv; i++)
		order[i] = i;
	qsort_r(order, nv, sizeof *order, by_ident, v);
	c->in_place = true;
	for (size_t k = 0; k < n; k++) {
		const struct mbox_known *e = &known[k];
		ssize_t j = at_offset(v, nv, e->e.offset);
		int how = 0;
		struct msg *m = NULL;

		if (j >= 0 && !v[j].matched && v[j].complete) {
			m = &v[j];
			if (e->has_ident)
				how = reading(m, e->ident);
			else if (m->length == e->e.length)
				how = 1;
			else if (m->has_alt && m->length + 1 == e->e.length)
				how = 2;
		}
		if (!how && e->has_ident) {
			/* Elsewhere in the file: the first of that identity
			 * not taken yet. */
			size_t lo = 0, hi = nv;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (memcmp(v[order[mid]].ident, e->ident,
					   32) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (; lo < nv && !memcmp(v[order[lo]].ident,
						  e->ident, 32);
			     lo++)
				if (!v[order[lo]].matched &&
				    v[order[lo]].complete) {
					m = &v[order[lo]];
					how = 1;
					break;
				}
			if (!how && last && !last->matched &&
			    last->complete &&
			    reading(last, e->ident) == 2) {
				m = last;
				how = 2;
			}
		}
		if (!how) {
			c->in_place = false;
			continue;
		}
		keep(c, k, m, how);
		if (m->offset != e->e.offset ||
		    c->kept[c->nkept - 1].length != e->e.length)
			c->in_place = false;
	}
	free(order);
	qsort(c->kept, c->nkept, sizeof *c->kept, by_offset);
	return 0;
}

/* The last message of the file is one of the index's cut short? */
static bool torn(const struct msg *last, const struct mbox_known *known,
		 size_t n)
{
	if (last->matched)
		return false;
	for (size_t k = 0; k < n; k++)
		if (known[k].e.offset == last->offset &&
		    last->length < known[k].e.length)
			return true;
	return false;
}

static unsigned separator_for(const unsigned char last[2], uint64_t len)
{
	if (len == 0)
		return 0;
	if (last[1] != '\n')
		return 2;
	return len >= 2 && last[0] == '\n' ? 0 : 1;
}

int mbox_check_file(int fd, bool gzip, const struct mbox_known *known,
		    size_t n, struct mbox_check *out)
{
	struct splitter sp = { .line_start = true };
	char *in = malloc(STORE_CHUNK), *zout = gzip ? malloc(STORE_CHUNK)
						      : NULL;
	struct stat sb;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (!in || (gzip && !zout) || mbox_ident_init(&sp.id) ||
	    !(sp.sha = EVP_MD_CTX_new())) {
		errno = ENOMEM;
		goto out;
	}
	if (fstat(fd, &sb) != 0)
		goto out;
	out->file_size = (uint64_t)sb.st_size;
	if (gzip) {
		uint64_t good;
		if (inflate_members(fd, out->file_size, NULL, in, zout,
				    &good) ||
		    inflate_members(fd, good, &sp, in, zout, &good))
			goto out;
		out->keep_file = good;
	} else {
		if (split_plain(fd, out->file_size, &sp, in))
			goto out;
		out->keep_file = sp.pos;
	}
	out->data_end = sp.pos;
	if (match(out, sp.v, sp.n, known, n))
		goto out;
	for (size_t i = 0; i < sp.n; i++)
		out->foreign += !sp.v[i].matched;
	out->foreign += sp.preamble > 0;
	if (!gzip && sp.n && torn(&sp.v[sp.n - 1], known, n)) {
		unsigned char two[2] = { 0, 0 };
		uint64_t at = sp.v[sp.n - 1].offset;
		size_t got = 0;
		out->foreign--;
		out->keep_file = out->data_end = at;
		if (at >= 2 && read_some(fd, (char *)two, 2, at - 2, &got))
			goto out;
		if (at == 1 && read_some(fd, (char *)two + 1, 1, 0, &got))
			goto out;
		out->separator = separator_for(two, at);
	} else {
		out->separator = separator_for(sp.last, sp.seen);
	}
	rc = 0;
out:
	if (rc)
		mbox_check_free(out);
	free(sp.v);
	mbox_ident_free(&sp.id);
	EVP_MD_CTX_free(sp.sha);
	free(in);
	free(zout);
	return rc;
}

void mbox_check_free(struct mbox_check *c)
{
	free(c->kept);
	c->kept = NULL;
	c->nkept = 0;
}
