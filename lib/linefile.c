/*
 * linefile.c — see linefile.h.
 */
#include "linefile.h"
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does byte c need a \xNN escape?  Everything outside printable ASCII. */
static bool needs_hex(unsigned char c)
{
	return c < 0x20 || c >= 0x7f;
}

void lf_quote_into(char *buf, size_t size, const char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 8 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
		else if (needs_hex(c))
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
		if (i + 1 < len && o + 8 >= size)
			o += (size_t)snprintf(buf + o, size - o, "...");
	}
	buf[o < size ? o : size - 1] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                 */

void lf_flush(struct lf_writer *w)
{
	const char *p = w->buf;

	while (w->len && !w->errnum) {
		ssize_t n = write(w->fd, p, w->len);
		if (n < 0) {
			if (errno != EINTR)
				w->errnum = errno;
			continue;
		}
		p += n;
		w->len -= (size_t)n;
	}
	w->len = 0;
}

void lf_bytes(struct lf_writer *w, const char *s, size_t len)
{
	while (len) {
		size_t room = sizeof w->buf - w->len;
		size_t n = len < room ? len : room;
		memcpy(w->buf + w->len, s, n);
		w->len += n;
		s += n;
		len -= n;
		if (w->len == sizeof w->buf)
			lf_flush(w);
	}
}

void lf_str(struct lf_writer *w, const char *s)
{
	lf_bytes(w, s, strlen(s));
}

void lf_u64(struct lf_writer *w, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	lf_bytes(w, num, (size_t)n);
}

void lf_quoted(struct lf_writer *w, const char *s, size_t len)
{
	lf_str(w, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[5];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			lf_bytes(w, esc, 2);
		} else if (needs_hex(c)) {
			snprintf(esc, sizeof esc, "\\x%02x", c);
			lf_bytes(w, esc, 4);
		} else {
			lf_bytes(w, (const char *)&c, 1);
		}
	}
	lf_str(w, "\"");
}

void lf_set(struct lf_writer *w, const char *keyword, const struct uidset *set)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct uid_range *r = &set->r[i];
		lf_str(w, i % LF_RANGES_PER_LINE ? "," : keyword);
		lf_u64(w, r->first);
		if (r->last != r->first) {
			lf_str(w, ":");
			lf_u64(w, r->last);
		}
		if (i % LF_RANGES_PER_LINE == LF_RANGES_PER_LINE - 1 ||
		    i + 1 == set->n)
			lf_str(w, "\n");
	}
}

enum isnap_status lf_replace(int dfd, const char *dir, const char *name,
			     const char *tmp,
			     int (*fill)(int fd, const void *ctx),
			     const void *ctx, struct isnap_error *err)
{
	int fd, e;

	fd = beneath_open_file(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s", dir, tmp);
	e = fill(fd, ctx);
	if (!e && fsync(fd) != 0)
		e = errno;
	/* close can report a deferred write error (NFS): it counts too. */
	if (close(fd) != 0 && !e)
		e = errno;
	if (e) {
		unlinkat(dfd, tmp, 0);
		errno = e;
		return isnap_fail_errno(err, ISNAP_ELOCAL, "writing %s/%s", dir,
					tmp);
	}
	if (renameat(dfd, tmp, dfd, name) != 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "renaming %s/%s to %s", dir,
				 tmp, name);
		unlinkat(dfd, tmp, 0);
		return ISNAP_ELOCAL;
	}
	/* The rename is durable only once the directory is. */
	if (fsync(dfd) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s", dir);
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

enum isnap_status lf_bad(struct lf_reader *r, const char *fmt, ...)
{
	char what[ISNAP_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return isnap_fail(r->err, ISNAP_EINTEGRITY, "%s:%lu: %s", r->path,
			  r->lineno, what);
}

enum isnap_status lf_oom(struct lf_reader *r)
{
	return isnap_fail(r->err, ISNAP_ENOMEM, "out of memory");
}

void lf_skip_blanks(struct lf_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t'))
		r->p++;
}

size_t lf_word(struct lf_reader *r, const char **word)
{
	const char *start;

	lf_skip_blanks(r);
	start = r->p;
	while (r->p < r->end &&
	       ((*r->p >= 'a' && *r->p <= 'z') ||
		(*r->p >= '0' && *r->p <= '9') || *r->p == '-'))
		r->p++;
	*word = start;
	return (size_t)(r->p - start);
}

bool lf_word_is(const char *word, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(word, want, len) == 0;
}

size_t lf_token(struct lf_reader *r, const char **tok)
{
	const char *start;

	lf_skip_blanks(r);
	start = r->p;
	while (r->p < r->end && *r->p != ' ' && *r->p != '\t')
		r->p++;
	*tok = start;
	return (size_t)(r->p - start);
}

bool lf_at_eol(struct lf_reader *r)
{
	lf_skip_blanks(r);
	return r->p == r->end;
}

enum isnap_status lf_eol(struct lf_reader *r)
{
	if (!lf_at_eol(r))
		return lf_bad(r, "unexpected text at the end of the line");
	return ISNAP_OK;
}

enum isnap_status lf_number_line(struct lf_reader *r, uint64_t max,
				 const char *what, uint64_t *out)
{
	uint64_t v = 0;
	const char *start;

	lf_skip_blanks(r);
	start = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		unsigned d = (unsigned)(*r->p - '0');
		if (v > (max - d) / 10)
			return lf_bad(r, "%s is too large (at most %llu)", what,
				      (unsigned long long)max);
		v = v * 10 + d;
		r->p++;
	}
	if (r->p == start)
		return lf_bad(r, "%s is not a number", what);
	*out = v;
	return lf_eol(r);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum isnap_status lf_read_quoted(struct lf_reader *r, char **out, size_t *len)
{
	char *buf, *o;

	lf_skip_blanks(r);
	if (r->p == r->end || *r->p != '"')
		return lf_bad(r, "expected a quoted string");
	r->p++;
	/* The unescaped text is never longer than the line. */
	buf = malloc((size_t)(r->end - r->p) + 1);
	if (!buf)
		return lf_oom(r);
	o = buf;
	for (;;) {
		unsigned char c;
		if (r->p == r->end) {
			free(buf);
			return lf_bad(r, "unterminated quoted string");
		}
		c = (unsigned char)*r->p++;
		if (c == '"')
			break;
		if (needs_hex(c)) {
			free(buf);
			return lf_bad(r, "raw byte 0x%02x in a quoted string "
					 "(write it as \\x%02x)", c, c);
		}
		if (c == '\\') {
			int hi, lo;
			if (r->p < r->end && (*r->p == '"' || *r->p == '\\')) {
				*o++ = *r->p++;
				continue;
			}
			if (r->end - r->p < 3 || r->p[0] != 'x' ||
			    (hi = hexval(r->p[1])) < 0 ||
			    (lo = hexval(r->p[2])) < 0) {
				free(buf);
				return lf_bad(r, "bad escape in a quoted string "
						 "(only \\\", \\\\ and \\xNN)");
			}
			if (hi == 0 && lo == 0) {
				free(buf);
				return lf_bad(r, "\\x00 in a quoted string");
			}
			*o++ = (char)(hi * 16 + lo);
			r->p += 3;
			continue;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	*out = buf;
	*len = (size_t)(o - buf);
	return ISNAP_OK;
}

enum isnap_status lf_set_line(struct lf_reader *r, const char *keyword,
			      struct uidset *set)
{
	struct uidset part = UIDSET_INIT;
	enum isnap_status rc;
	const char *tok;
	size_t tlen = lf_token(r, &tok);

	if (tlen == 0)
		return lf_bad(r, "%s needs a UID set", keyword);
	if (uidset_parse(&part, tok, tlen) != 0) {
		int e = errno;
		uidset_free(&part);
		if (e == ENOMEM)
			return lf_oom(r);
		return lf_bad(r, "%s: not a UID set", keyword);
	}
	rc = lf_eol(r);
	if (!rc && uidset_add_set(set, &part) != 0)
		rc = lf_oom(r);
	uidset_free(&part);
	return rc;
}

/* The first line: "<magic> <version>", nothing before the magic word. */
static enum isnap_status read_header(struct lf_reader *r,
				     const struct lf_grammar *g)
{
	const char *start = r->p, *word;
	size_t wlen = lf_word(r, &word);
	uint64_t version;
	enum isnap_status rc;

	if (word != start || !lf_word_is(word, wlen, g->magic))
		return lf_bad(r, "not %s (no \"%s\" header line)", g->what,
			      g->magic);
	rc = lf_number_line(r, UINT32_MAX, "the format version", &version);
	if (rc)
		return rc;
	if (version != g->version)
		return lf_bad(r, "format version %llu is not supported (this "
				 "imapsnap reads version %u)",
			      (unsigned long long)version, g->version);
	return ISNAP_OK;
}

enum isnap_status lf_read(int fd, struct lf_reader *r,
			  const struct lf_grammar *g, void *ctx)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool after_eof = false;
	enum isnap_status rc = ISNAP_OK;
	FILE *fp = fdopen(fd, "r");

	if (!fp) {
		close(fd);
		return isnap_fail_errno(r->err, ISNAP_ENOMEM, "%s", r->path);
	}
	r->lineno = 0;
	errno = 0;
	while (!rc && (n = getline(&line, &cap, fp)) >= 0) {
		const char *word;
		size_t wlen;

		r->lineno++;
		r->p = line;
		r->end = line + n;
		if (n == 0 || line[n - 1] != '\n') {
			rc = lf_bad(r, "truncated: the last line has no newline");
			break;
		}
		r->end--;
		if (memchr(line, '\0', (size_t)(r->end - line))) {
			rc = lf_bad(r, "NUL byte");
			break;
		}
		if (r->lineno == 1) {
			rc = read_header(r, g);
			continue;
		}
		lf_skip_blanks(r);
		if (after_eof) {
			rc = lf_bad(r, "text after the eof line");
			break;
		}
		if (r->p == r->end || *r->p == '#')
			continue; /* blank or comment */
		wlen = lf_word(r, &word);
		if (lf_word_is(word, wlen, "eof")) {
			rc = g->end ? g->end(ctx, r, true) : ISNAP_OK;
			if (!rc)
				rc = lf_eol(r);
			after_eof = true;
		} else {
			rc = g->line(ctx, r, word, wlen);
		}
	}
	if (!rc && ferror(fp))
		rc = isnap_fail_errno(r->err, errno == ENOMEM ? ISNAP_ENOMEM
							      : ISNAP_ELOCAL,
				      "reading %s", r->path);
	if (!rc && !after_eof) {
		r->lineno++;
		if (r->lineno == 1)
			rc = lf_bad(r, "not %s (empty)", g->what);
		else if (!g->end || !(rc = g->end(ctx, r, false)))
			rc = lf_bad(r, "truncated: no eof line");
	}
	free(line);
	fclose(fp);
	return rc;
}
