/*
 * state.c — read and write DIR/state, the text file described in
 * docs/state.md.
 *
 * The reader is strict on purpose: the state decides which messages a run
 * skips, so a file it does not fully understand (a typo from a hand edit,
 * a newer format, a truncated copy) is refused with its line number rather
 * than half-read.  The writer needs no memory, so saving cannot fail for
 * lack of it half-way through.
 */
#include "state.h"
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_FILE "state"
#define STATE_TMP "state.tmp"
#define STATE_MAGIC "imapsnap-state"
#define STATE_VERSION 1

/* Ranges per `saved` line, so that a fragmented set stays a file one can
 * read and diff: at most 50 * 22 bytes a line. */
#define SAVED_PER_LINE 50

/* ---------------------------------------------------------------------- */
/* Folder entries                                                          */

struct state_folder *state_folder(struct state *st, const char *name,
				  int create)
{
	struct state_folder *f;

	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->folders[i].name, name) == 0)
			return &st->folders[i];
	if (!create)
		return NULL;
	if (st->n == st->alloc) {
		size_t alloc = st->alloc ? 2 * st->alloc : 16;
		if (alloc > SIZE_MAX / sizeof *f) {
			errno = ENOMEM;
			return NULL;
		}
		f = realloc(st->folders, alloc * sizeof *f);
		if (!f)
			return NULL;
		st->folders = f;
		st->alloc = alloc;
	}
	f = &st->folders[st->n];
	*f = (struct state_folder){ .saved = UIDSET_INIT,
				    .expunged = UIDSET_INIT };
	f->name = strdup(name);
	if (!f->name)
		return NULL;
	st->n++;
	return f;
}

int state_folder_retire(struct state_folder *f)
{
	if (f->uidvalidity != 0) {
		uint32_t *old = realloc(f->old_uidvalidity,
					(f->n_old + 1) * sizeof *old);
		if (!old)
			return -1;
		old[f->n_old++] = f->uidvalidity;
		f->old_uidvalidity = old;
	}
	f->uidvalidity = 0;
	f->uidnext = 0;
	f->highestmodseq = 0;
	uidset_free(&f->saved);
	uidset_free(&f->expunged);
	return 0;
}

static void folder_free(struct state_folder *f)
{
	free(f->name);
	uidset_free(&f->saved);
	uidset_free(&f->expunged);
	free(f->old_uidvalidity);
}

void state_free(struct state *st)
{
	for (size_t i = 0; i < st->n; i++)
		folder_free(&st->folders[i]);
	free(st->folders);
	*st = (struct state)STATE_INIT;
}

/* ---------------------------------------------------------------------- */
/* Quoting                                                                 */

/* Does byte c need a \xNN escape?  Everything outside printable ASCII, so
 * that the file stays one record per line and plain ASCII whatever bytes a
 * server puts in a folder name. */
static bool needs_hex(unsigned char c)
{
	return c < 0x20 || c >= 0x7f;
}

/* Quote `len` bytes into buf (size > 0), cutting with "..." if it is too
 * small; for error messages. */
static void quote_into(char *buf, size_t size, const char *s, size_t len)
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

/* A write buffer on the stack; the first error sticks in `errnum`. */
struct writer {
	int fd;
	int errnum;
	size_t len;
	char buf[16384];
};

static void w_flush(struct writer *w)
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

static void w_bytes(struct writer *w, const char *s, size_t len)
{
	while (len) {
		size_t room = sizeof w->buf - w->len;
		size_t n = len < room ? len : room;
		memcpy(w->buf + w->len, s, n);
		w->len += n;
		s += n;
		len -= n;
		if (w->len == sizeof w->buf)
			w_flush(w);
	}
}

static void w_str(struct writer *w, const char *s)
{
	w_bytes(w, s, strlen(s));
}

static void w_u64(struct writer *w, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	w_bytes(w, num, (size_t)n);
}

static void w_quoted(struct writer *w, const char *s, size_t len)
{
	w_str(w, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[5];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			w_bytes(w, esc, 2);
		} else if (needs_hex(c)) {
			snprintf(esc, sizeof esc, "\\x%02x", c);
			w_bytes(w, esc, 4);
		} else {
			w_bytes(w, (const char *)&c, 1);
		}
	}
	w_str(w, "\"");
}

/* A UID set as "<keyword>1:5,7" lines of at most SAVED_PER_LINE ranges;
 * nothing at all for the empty set. */
static void w_set(struct writer *w, const char *keyword,
		  const struct uidset *set)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct uid_range *r = &set->r[i];
		w_str(w, i % SAVED_PER_LINE ? "," : keyword);
		w_u64(w, r->first);
		if (r->last != r->first) {
			w_str(w, ":");
			w_u64(w, r->last);
		}
		if (i % SAVED_PER_LINE == SAVED_PER_LINE - 1 ||
		    i + 1 == set->n)
			w_str(w, "\n");
	}
}

static void w_folder(struct writer *w, const struct state_folder *f)
{
	w_str(w, "\nfolder ");
	w_quoted(w, f->name, strlen(f->name));
	w_str(w, " delim ");
	if (f->delim)
		w_quoted(w, &f->delim, 1);
	else
		w_str(w, "nil");
	w_str(w, "\nuidvalidity ");
	w_u64(w, f->uidvalidity);
	w_str(w, "\nuidnext ");
	w_u64(w, f->uidnext);
	w_str(w, "\nhighestmodseq ");
	w_u64(w, f->highestmodseq);
	w_str(w, "\n");
	w_set(w, "saved ", &f->saved);
	w_set(w, "expunged ", &f->expunged);
	for (size_t i = 0; i < f->n_old; i++) {
		w_str(w, "old-uidvalidity ");
		w_u64(w, f->old_uidvalidity[i]);
		w_str(w, "\n");
	}
	w_str(w, "end\n");
}

/* Write the whole file to fd; returns 0 or an errno value. */
static int write_state(int fd, const struct state *st)
{
	struct writer w = { .fd = fd };

	w_str(&w, STATE_MAGIC " 1\n"
		  "# What imapsnap has saved, per folder; see docs/state.md.\n"
		  "# Each run replaces this file: edit it only while no run "
		  "is going.\n");
	for (size_t i = 0; i < st->n; i++)
		w_folder(&w, &st->folders[i]);
	w_str(&w, "\neof\n");
	w_flush(&w);
	return w.errnum;
}

enum isnap_status state_save(int dfd, const char *dir, const struct state *st,
			     struct isnap_error *err)
{
	int fd, e;

	fd = beneath_open_file(dfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC,
			       0600);
	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/" STATE_TMP,
					dir);
	e = write_state(fd, st);
	if (!e && fsync(fd) != 0)
		e = errno;
	/* close can report a deferred write error (NFS): it counts too. */
	if (close(fd) != 0 && !e)
		e = errno;
	if (e) {
		unlinkat(dfd, STATE_TMP, 0);
		errno = e;
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"writing %s/" STATE_TMP, dir);
	}
	if (renameat(dfd, STATE_TMP, dfd, STATE_FILE) != 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL,
				 "renaming %s/" STATE_TMP " to " STATE_FILE,
				 dir);
		unlinkat(dfd, STATE_TMP, 0);
		return ISNAP_ELOCAL;
	}
	/* The rename is durable only once the directory is. */
	if (fsync(dfd) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s", dir);
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

struct reader {
	const char *dir;
	unsigned long lineno;
	const char *p, *end; /* the rest of the current line */
	struct isnap_error *err;
};

static enum isnap_status bad(struct reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum isnap_status bad(struct reader *r, const char *fmt, ...)
{
	char what[ISNAP_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return isnap_fail(r->err, ISNAP_EINTEGRITY, "%s/" STATE_FILE ":%lu: %s",
			  r->dir, r->lineno, what);
}

static void skip_blanks(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t'))
		r->p++;
}

/* A keyword: letters, digits and '-'.  Returns its length (0: none). */
static size_t read_word(struct reader *r, const char **word)
{
	const char *start;

	skip_blanks(r);
	start = r->p;
	while (r->p < r->end &&
	       ((*r->p >= 'a' && *r->p <= 'z') ||
		(*r->p >= '0' && *r->p <= '9') || *r->p == '-'))
		r->p++;
	*word = start;
	return (size_t)(r->p - start);
}

static bool word_is(const char *word, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(word, want, len) == 0;
}

/* The next blank-separated token, whatever it holds; for `saved`. */
static size_t read_token(struct reader *r, const char **tok)
{
	const char *start;

	skip_blanks(r);
	start = r->p;
	while (r->p < r->end && *r->p != ' ' && *r->p != '\t')
		r->p++;
	*tok = start;
	return (size_t)(r->p - start);
}

static enum isnap_status expect_eol(struct reader *r)
{
	skip_blanks(r);
	if (r->p != r->end)
		return bad(r, "unexpected text at the end of the line");
	return ISNAP_OK;
}

/* A decimal number no larger than max, then the end of the line. */
static enum isnap_status read_number_line(struct reader *r, uint64_t max,
					  const char *what, uint64_t *out)
{
	uint64_t v = 0;
	const char *start;

	skip_blanks(r);
	start = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		unsigned d = (unsigned)(*r->p - '0');
		if (v > (max - d) / 10)
			return bad(r, "%s is too large (at most %llu)", what,
				   (unsigned long long)max);
		v = v * 10 + d;
		r->p++;
	}
	if (r->p == start)
		return bad(r, "%s is not a number", what);
	*out = v;
	return expect_eol(r);
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

/* A quoted string into *out (malloc'd, NUL-terminated, length *len). */
static enum isnap_status read_quoted(struct reader *r, char **out,
				     size_t *len)
{
	char *buf, *o;

	skip_blanks(r);
	if (r->p == r->end || *r->p != '"')
		return bad(r, "expected a quoted string");
	r->p++;
	/* The unescaped text is never longer than the line. */
	buf = malloc((size_t)(r->end - r->p) + 1);
	if (!buf)
		return isnap_fail(r->err, ISNAP_ENOMEM, "out of memory");
	o = buf;
	for (;;) {
		unsigned char c;
		if (r->p == r->end) {
			free(buf);
			return bad(r, "unterminated quoted string");
		}
		c = (unsigned char)*r->p++;
		if (c == '"')
			break;
		if (needs_hex(c)) {
			free(buf);
			return bad(r, "raw byte 0x%02x in a quoted string "
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
				return bad(r, "bad escape in a quoted string "
					      "(only \\\", \\\\ and \\xNN)");
			}
			if (hi == 0 && lo == 0) {
				free(buf);
				return bad(r, "\\x00 in a quoted string");
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

/* `folder "NAME" delim "D"|nil`, after the keyword. */
static enum isnap_status read_folder_line(struct reader *r, struct state *st,
					  struct state_folder **out)
{
	enum isnap_status rc;
	struct state_folder *f;
	char *name, *delim = NULL;
	size_t len, dlen = 0;
	const char *word;
	size_t wlen;

	rc = read_quoted(r, &name, &len);
	if (rc)
		return rc;
	wlen = read_word(r, &word);
	if (!word_is(word, wlen, "delim")) {
		rc = bad(r, "expected delim after the folder name");
		goto out;
	}
	skip_blanks(r);
	if (r->p < r->end && *r->p == '"') {
		rc = read_quoted(r, &delim, &dlen);
		if (rc)
			goto out;
		if (dlen != 1) {
			rc = bad(r, "the delimiter must be one byte");
			goto out;
		}
	} else {
		wlen = read_word(r, &word);
		if (!word_is(word, wlen, "nil")) {
			rc = bad(r, "expected a quoted delimiter or nil");
			goto out;
		}
	}
	rc = expect_eol(r);
	if (rc)
		goto out;
	if (state_folder(st, name, 0)) {
		char q[128];
		quote_into(q, sizeof q, name, len);
		rc = bad(r, "folder \"%s\" appears twice", q);
		goto out;
	}
	f = state_folder(st, name, 1);
	if (!f) {
		rc = isnap_fail(r->err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	f->delim = delim ? delim[0] : '\0';
	*out = f;
out:
	free(name);
	free(delim);
	return rc;
}

/* Which of a folder block's single-valued fields have been seen. */
enum {
	SEEN_UIDVALIDITY = 1,
	SEEN_UIDNEXT = 2,
	SEEN_MODSEQ = 4,
	SEEN_ALL = 7,
};

/* One line inside a folder block (the keyword already read); *done is set
 * by `end`. */
/* The rest of a "saved" or "expunged" line: one UID set, added to `set`. */
static enum isnap_status read_set_line(struct reader *r, const char *keyword,
				       struct uidset *set)
{
	struct uidset part = UIDSET_INIT;
	enum isnap_status rc;
	const char *tok;
	size_t tlen = read_token(r, &tok);

	if (tlen == 0)
		return bad(r, "%s needs a UID set", keyword);
	if (uidset_parse(&part, tok, tlen) != 0) {
		int e = errno;
		uidset_free(&part);
		if (e == ENOMEM)
			return isnap_fail(r->err, ISNAP_ENOMEM,
					  "out of memory");
		return bad(r, "%s: not a UID set", keyword);
	}
	rc = expect_eol(r);
	if (!rc && uidset_add_set(set, &part) != 0)
		rc = isnap_fail(r->err, ISNAP_ENOMEM, "out of memory");
	uidset_free(&part);
	return rc;
}

static enum isnap_status read_block_line(struct reader *r,
					 struct state_folder *f,
					 const char *word, size_t wlen,
					 unsigned *seen, bool *done)
{
	enum isnap_status rc;
	uint64_t v;

	if (word_is(word, wlen, "uidvalidity") ||
	    word_is(word, wlen, "uidnext") ||
	    word_is(word, wlen, "highestmodseq")) {
		unsigned bit = word_is(word, wlen, "uidvalidity")
				       ? SEEN_UIDVALIDITY
			       : word_is(word, wlen, "uidnext") ? SEEN_UIDNEXT
								 : SEEN_MODSEQ;
		char name[16];
		snprintf(name, sizeof name, "%.*s", (int)wlen, word);
		if (*seen & bit)
			return bad(r, "%s given twice", name);
		*seen |= bit;
		rc = read_number_line(r,
				      bit == SEEN_MODSEQ ? UINT64_MAX
							 : UINT32_MAX,
				      name, &v);
		if (rc)
			return rc;
		if (bit == SEEN_MODSEQ)
			f->highestmodseq = v;
		else if (bit == SEEN_UIDVALIDITY)
			f->uidvalidity = (uint32_t)v;
		else
			f->uidnext = (uint32_t)v;
		return ISNAP_OK;
	}
	if (word_is(word, wlen, "saved"))
		return read_set_line(r, "saved", &f->saved);
	if (word_is(word, wlen, "expunged"))
		return read_set_line(r, "expunged", &f->expunged);
	if (word_is(word, wlen, "old-uidvalidity")) {
		uint32_t *old;
		rc = read_number_line(r, UINT32_MAX, "old-uidvalidity", &v);
		if (rc)
			return rc;
		if (v == 0)
			return bad(r, "old-uidvalidity 0 is not a generation");
		old = realloc(f->old_uidvalidity,
			      (f->n_old + 1) * sizeof *old);
		if (!old)
			return isnap_fail(r->err, ISNAP_ENOMEM,
					  "out of memory");
		old[f->n_old++] = (uint32_t)v;
		f->old_uidvalidity = old;
		return ISNAP_OK;
	}
	if (word_is(word, wlen, "end")) {
		rc = expect_eol(r);
		if (rc)
			return rc;
		if (!(*seen & SEEN_UIDVALIDITY))
			return bad(r, "folder block lacks uidvalidity");
		if (!(*seen & SEEN_UIDNEXT))
			return bad(r, "folder block lacks uidnext");
		if (!(*seen & SEEN_MODSEQ))
			return bad(r, "folder block lacks highestmodseq");
		if (f->uidvalidity == 0 && !uidset_empty(&f->saved))
			return bad(r, "UIDs saved under uidvalidity 0");
		*done = true;
		return ISNAP_OK;
	}
	if (word_is(word, wlen, "folder") || word_is(word, wlen, "eof"))
		return bad(r, "%.*s before the folder block's end", (int)wlen,
			   word);
	if (wlen == 0)
		return bad(r, "expected a keyword");
	return bad(r, "unknown keyword \"%.*s\"", (int)wlen, word);
}

/* The header line: "imapsnap-state 1". */
static enum isnap_status read_header(struct reader *r)
{
	const char *start = r->p, *word;
	size_t wlen = read_word(r, &word);
	uint64_t version;
	enum isnap_status rc;

	if (word != start || !word_is(word, wlen, STATE_MAGIC))
		return bad(r, "not an imapsnap state file (no \""
			      STATE_MAGIC "\" header line)");
	rc = read_number_line(r, UINT32_MAX, "the format version", &version);
	if (rc)
		return rc;
	if (version != STATE_VERSION)
		return bad(r, "format version %llu is not supported (this "
			      "imapsnap reads version %d)",
			   (unsigned long long)version, STATE_VERSION);
	return ISNAP_OK;
}

enum { OUTSIDE, IN_FOLDER, AFTER_EOF };

/* Parse every line of `fp` into st. */
static enum isnap_status read_state(struct reader *r, FILE *fp,
				    struct state *st)
{
	struct state_folder *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned seen = 0;
	int where = OUTSIDE;
	enum isnap_status rc = ISNAP_OK;

	errno = 0;
	while (!rc && (n = getline(&line, &cap, fp)) >= 0) {
		const char *word;
		size_t wlen;
		bool done = false;

		r->lineno++;
		r->p = line;
		r->end = line + n;
		if (n == 0 || line[n - 1] != '\n') {
			rc = bad(r, "truncated: the last line has no newline");
			break;
		}
		r->end--;
		if (memchr(line, '\0', (size_t)(r->end - line))) {
			rc = bad(r, "NUL byte");
			break;
		}
		if (r->lineno == 1) {
			rc = read_header(r);
			continue;
		}
		skip_blanks(r);
		if (where == AFTER_EOF) {
			rc = bad(r, "text after the eof line");
			break;
		}
		if (r->p == r->end || *r->p == '#')
			continue; /* blank or comment */
		wlen = read_word(r, &word);
		if (where == IN_FOLDER) {
			rc = read_block_line(r, f, word, wlen, &seen, &done);
			if (done)
				where = OUTSIDE;
		} else if (word_is(word, wlen, "folder")) {
			rc = read_folder_line(r, st, &f);
			seen = 0;
			where = IN_FOLDER;
		} else if (word_is(word, wlen, "eof")) {
			rc = expect_eol(r);
			where = AFTER_EOF;
		} else {
			rc = bad(r, "expected folder or eof");
		}
	}
	if (!rc && ferror(fp))
		rc = isnap_fail_errno(r->err, errno == ENOMEM ? ISNAP_ENOMEM
							      : ISNAP_ELOCAL,
				      "reading %s/" STATE_FILE, r->dir);
	if (!rc && where != AFTER_EOF) {
		r->lineno++;
		if (r->lineno == 1)
			rc = bad(r, "not an imapsnap state file (empty)");
		else if (where == IN_FOLDER)
			rc = bad(r, "truncated: the last folder has no end");
		else
			rc = bad(r, "truncated: no eof line");
	}
	free(line);
	return rc;
}

enum isnap_status state_load(int dfd, const char *dir, struct state *st,
			     struct isnap_error *err)
{
	struct reader r = { .dir = dir, .err = err };
	enum isnap_status rc;
	FILE *fp;
	int fd;

	if (dfd < 0)
		return ISNAP_OK;
	fd = beneath_open_file(dfd, STATE_FILE, O_RDONLY, 0);
	if (fd < 0) {
		if (errno == ENOENT)
			return ISNAP_OK;
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/" STATE_FILE,
					dir);
	}
	fp = fdopen(fd, "r");
	if (!fp) {
		close(fd);
		return isnap_fail_errno(err, ISNAP_ENOMEM, "%s/" STATE_FILE,
					dir);
	}
	rc = read_state(&r, fp, st);
	fclose(fp);
	if (rc)
		state_free(st);
	return rc;
}
