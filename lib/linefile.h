/*
 * linefile.h — the small text files imapsnap keeps in DEST/.imapsnap (the
 * state, docs/state.md; the flag records, flag_record.h): one record per
 * line, a "<magic> <version>" first line, `#` comments, quoted strings
 * for names a server chose, UID sets in IMAP's text form, and an `eof`
 * line last so that a truncated copy is never taken for a whole one.
 *
 * Writing needs no memory (a buffer on the stack), so a save cannot fail
 * half-way for lack of it; a file is only ever replaced whole, durably
 * (temporary file, fsync, close, rename, fsync of the directory).
 *
 * Reading is strict: anything that is not exactly the format is an
 * ISNAP_EINTEGRITY error naming the file and the line.
 */
#ifndef IMAPSNAP_LINEFILE_H
#define IMAPSNAP_LINEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "uidset.h"

/* Ranges per line of a UID set, so that a fragmented set stays a file
 * one can read and diff: at most 50 * 22 bytes a line. */
#define LF_RANGES_PER_LINE 50

/* --- writing ------------------------------------------------------------- */

/* The first error sticks in `errnum`; check it after lf_flush. */
struct lf_writer {
	int fd;
	int errnum;
	size_t len;
	char buf[16384];
};

void lf_flush(struct lf_writer *w);
void lf_bytes(struct lf_writer *w, const char *s, size_t len);
void lf_str(struct lf_writer *w, const char *s);
void lf_u64(struct lf_writer *w, uint64_t v);
/* `"..."`: `"` and `\` as `\"` and `\\`, bytes outside printable ASCII as
 * `\xNN`, so that a file stays plain ASCII and one record per line
 * whatever bytes a server sent. */
void lf_quoted(struct lf_writer *w, const char *s, size_t len);
/* `set` as "<keyword>1:5,7" lines of at most LF_RANGES_PER_LINE ranges;
 * nothing at all for the empty set. */
void lf_set(struct lf_writer *w, const char *keyword,
	    const struct uidset *set);

/* Replace dfd/name whole and durably: write dfd/tmp through `fill`
 * (which returns 0 or an errno value, e.g. the writer's), fsync, close,
 * rename over `name`, fsync dfd.  Files are opened without following a
 * symbolic link (beneath.h), mode 0600.  `dir` names dfd in messages.
 * Returns ISNAP_OK or ISNAP_ELOCAL (dfd/name is then as it was). */
enum isnap_status lf_replace(int dfd, const char *dir, const char *name,
			     const char *tmp,
			     int (*fill)(int fd, const void *ctx),
			     const void *ctx, struct isnap_error *err);

/* --- reading ------------------------------------------------------------- */

struct lf_reader {
	const char *path;         /* the file, for messages ("DIR/state") */
	unsigned long lineno;
	const char *p, *end;      /* the rest of the current line */
	struct isnap_error *err;
};

/* ISNAP_EINTEGRITY, "<path>:<line>: <what>". */
enum isnap_status lf_bad(struct lf_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum isnap_status lf_oom(struct lf_reader *r);

void lf_skip_blanks(struct lf_reader *r);
/* A keyword: lower-case letters, digits and '-'.  Its length (0: none). */
size_t lf_word(struct lf_reader *r, const char **word);
bool lf_word_is(const char *word, size_t len, const char *want);
/* The next blank-separated token, whatever it holds. */
size_t lf_token(struct lf_reader *r, const char **tok);
/* Nothing but blanks left on the line. */
enum isnap_status lf_eol(struct lf_reader *r);
bool lf_at_eol(struct lf_reader *r);
/* A decimal number no larger than max, then the end of the line. */
enum isnap_status lf_number_line(struct lf_reader *r, uint64_t max,
				 const char *what, uint64_t *out);
/* A quoted string (lf_quoted's form; \x00 is refused) into *out
 * (malloc'd, NUL-terminated, its length in *len). */
enum isnap_status lf_read_quoted(struct lf_reader *r, char **out,
				 size_t *len);
/* The rest of a line that holds one UID set: added to `set`. */
enum isnap_status lf_set_line(struct lf_reader *r, const char *keyword,
			      struct uidset *set);
/* `len` bytes quoted into buf (size > 0), cut with "..." if it is too
 * small; for messages. */
void lf_quote_into(char *buf, size_t size, const char *s, size_t len);

/* What a kind of file says, for lf_read. */
struct lf_grammar {
	const char *magic;        /* the first line: "<magic> <version>" */
	unsigned version;
	const char *what;         /* "an imapsnap state file", for messages */
	/* Every line after the first that is not blank, a comment or
	 * `eof`, with its first keyword read (wlen 0: none). */
	enum isnap_status (*line)(void *ctx, struct lf_reader *r,
				  const char *word, size_t wlen);
	/* At `eof` (saw_eof): a failure when the file may not end there.
	 * At the end of a file without `eof` (r->lineno is then the line
	 * after the last): a failure that says more than the "truncated:
	 * no eof line" given when this returns ISNAP_OK.  May be NULL. */
	enum isnap_status (*end)(void *ctx, struct lf_reader *r,
				 bool saw_eof);
};

/* Read the file open at fd (taken over and closed) line by line: the
 * header, comments, lines without a newline, NUL bytes and text after
 * `eof` are handled here, the rest by `g`.  r->path and r->err must be
 * set.  Returns ISNAP_OK or the first failure (ISNAP_ELOCAL when the file
 * cannot be read). */
enum isnap_status lf_read(int fd, struct lf_reader *r,
			  const struct lf_grammar *g, void *ctx);

#endif
