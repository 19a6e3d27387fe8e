/*
 * state.c — read and write DIR/state, the text file described in
 * docs/state.md.
 *
 * The reader is strict on purpose: the state decides which messages a run
 * skips, so a file it does not fully understand (a typo from a hand edit,
 * a newer format, a truncated copy) is refused with its line number rather
 * than half-read.  The writer needs no memory, so saving cannot fail for
 * lack of it half-way through.  The line format itself (quoting, UID
 * sets, the header and `eof`, replacing the file) is linefile.c's.
 */
#include "state.h"
#include "beneath.h"
#include "linefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_FILE "state"
#define STATE_TMP "state.tmp"
#define STATE_MAGIC "imapsnap-state"
#define STATE_VERSION 1

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
/* Writing                                                                 */

static void w_folder(struct lf_writer *w, const struct state_folder *f)
{
	lf_str(w, "\nfolder ");
	lf_quoted(w, f->name, strlen(f->name));
	lf_str(w, " delim ");
	if (f->delim)
		lf_quoted(w, &f->delim, 1);
	else
		lf_str(w, "nil");
	lf_str(w, "\nuidvalidity ");
	lf_u64(w, f->uidvalidity);
	lf_str(w, "\nuidnext ");
	lf_u64(w, f->uidnext);
	lf_str(w, "\nhighestmodseq ");
	lf_u64(w, f->highestmodseq);
	lf_str(w, "\n");
	lf_set(w, "saved ", &f->saved);
	lf_set(w, "expunged ", &f->expunged);
	for (size_t i = 0; i < f->n_old; i++) {
		lf_str(w, "old-uidvalidity ");
		lf_u64(w, f->old_uidvalidity[i]);
		lf_str(w, "\n");
	}
	lf_str(w, "end\n");
}

/* Write the whole file to fd; returns 0 or an errno value. */
static int write_state(int fd, const void *ctx)
{
	const struct state *st = ctx;
	struct lf_writer w = { .fd = fd };

	lf_str(&w, STATE_MAGIC " 1\n"
		   "# What imapsnap has saved, per folder; see docs/state.md.\n"
		   "# Each run replaces this file: edit it only while no run "
		   "is going.\n");
	for (size_t i = 0; i < st->n; i++)
		w_folder(&w, &st->folders[i]);
	lf_str(&w, "\neof\n");
	lf_flush(&w);
	return w.errnum;
}

enum isnap_status state_save(int dfd, const char *dir, const struct state *st,
			     struct isnap_error *err)
{
	return lf_replace(dfd, dir, STATE_FILE, STATE_TMP, write_state, st,
			  err);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

/* `folder "NAME" delim "D"|nil`, after the keyword. */
static enum isnap_status read_folder_line(struct lf_reader *r, struct state *st,
					  struct state_folder **out)
{
	enum isnap_status rc;
	struct state_folder *f;
	char *name, *delim = NULL;
	size_t len, dlen = 0;
	const char *word;
	size_t wlen;

	rc = lf_read_quoted(r, &name, &len);
	if (rc)
		return rc;
	wlen = lf_word(r, &word);
	if (!lf_word_is(word, wlen, "delim")) {
		rc = lf_bad(r, "expected delim after the folder name");
		goto out;
	}
	lf_skip_blanks(r);
	if (r->p < r->end && *r->p == '"') {
		rc = lf_read_quoted(r, &delim, &dlen);
		if (rc)
			goto out;
		if (dlen != 1) {
			rc = lf_bad(r, "the delimiter must be one byte");
			goto out;
		}
	} else {
		wlen = lf_word(r, &word);
		if (!lf_word_is(word, wlen, "nil")) {
			rc = lf_bad(r, "expected a quoted delimiter or nil");
			goto out;
		}
	}
	rc = lf_eol(r);
	if (rc)
		goto out;
	if (state_folder(st, name, 0)) {
		char q[128];
		lf_quote_into(q, sizeof q, name, len);
		rc = lf_bad(r, "folder \"%s\" appears twice", q);
		goto out;
	}
	f = state_folder(st, name, 1);
	if (!f) {
		rc = lf_oom(r);
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

/* Where the reader is. */
struct loading {
	struct state *st;
	struct state_folder *f; /* the open folder block, or NULL */
	unsigned seen;          /* SEEN_* of that block */
};

/* One line inside a folder block (the keyword already read). */
static enum isnap_status read_block_line(struct lf_reader *r,
					 struct loading *ld, const char *word,
					 size_t wlen)
{
	struct state_folder *f = ld->f;
	enum isnap_status rc;
	uint64_t v;

	if (lf_word_is(word, wlen, "uidvalidity") ||
	    lf_word_is(word, wlen, "uidnext") ||
	    lf_word_is(word, wlen, "highestmodseq")) {
		unsigned bit = lf_word_is(word, wlen, "uidvalidity")
				       ? SEEN_UIDVALIDITY
			       : lf_word_is(word, wlen, "uidnext")
				       ? SEEN_UIDNEXT
				       : SEEN_MODSEQ;
		char name[16];
		snprintf(name, sizeof name, "%.*s", (int)wlen, word);
		if (ld->seen & bit)
			return lf_bad(r, "%s given twice", name);
		ld->seen |= bit;
		rc = lf_number_line(r,
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
	if (lf_word_is(word, wlen, "saved"))
		return lf_set_line(r, "saved", &f->saved);
	if (lf_word_is(word, wlen, "expunged"))
		return lf_set_line(r, "expunged", &f->expunged);
	if (lf_word_is(word, wlen, "old-uidvalidity")) {
		uint32_t *old;
		rc = lf_number_line(r, UINT32_MAX, "old-uidvalidity", &v);
		if (rc)
			return rc;
		if (v == 0)
			return lf_bad(r, "old-uidvalidity 0 is not a "
					 "generation");
		old = realloc(f->old_uidvalidity,
			      (f->n_old + 1) * sizeof *old);
		if (!old)
			return lf_oom(r);
		old[f->n_old++] = (uint32_t)v;
		f->old_uidvalidity = old;
		return ISNAP_OK;
	}
	if (lf_word_is(word, wlen, "end")) {
		rc = lf_eol(r);
		if (rc)
			return rc;
		if (!(ld->seen & SEEN_UIDVALIDITY))
			return lf_bad(r, "folder block lacks uidvalidity");
		if (!(ld->seen & SEEN_UIDNEXT))
			return lf_bad(r, "folder block lacks uidnext");
		if (!(ld->seen & SEEN_MODSEQ))
			return lf_bad(r, "folder block lacks highestmodseq");
		if (f->uidvalidity == 0 && !uidset_empty(&f->saved))
			return lf_bad(r, "UIDs saved under uidvalidity 0");
		ld->f = NULL;
		return ISNAP_OK;
	}
	if (lf_word_is(word, wlen, "folder"))
		return lf_bad(r, "folder before the folder block's end");
	if (wlen == 0)
		return lf_bad(r, "expected a keyword");
	return lf_bad(r, "unknown keyword \"%.*s\"", (int)wlen, word);
}

static enum isnap_status on_line(void *ctx, struct lf_reader *r,
				 const char *word, size_t wlen)
{
	struct loading *ld = ctx;

	if (ld->f)
		return read_block_line(r, ld, word, wlen);
	if (lf_word_is(word, wlen, "folder")) {
		ld->seen = 0;
		return read_folder_line(r, ld->st, &ld->f);
	}
	return lf_bad(r, "expected folder or eof");
}

static enum isnap_status on_end(void *ctx, struct lf_reader *r, bool saw_eof)
{
	struct loading *ld = ctx;

	if (!ld->f)
		return ISNAP_OK;
	return lf_bad(r, saw_eof ? "eof before the folder block's end"
				 : "truncated: the last folder has no end");
}

static const struct lf_grammar state_grammar = {
	.magic = STATE_MAGIC,
	.version = STATE_VERSION,
	.what = "an imapsnap state file",
	.line = on_line,
	.end = on_end,
};

enum isnap_status state_load(int dfd, const char *dir, struct state *st,
			     struct isnap_error *err)
{
	char path[4200];
	struct lf_reader r = { .path = path, .err = err };
	struct loading ld = { .st = st };
	enum isnap_status rc;
	int fd;

	if (dfd < 0)
		return ISNAP_OK;
	snprintf(path, sizeof path, "%s/" STATE_FILE, dir);
	fd = beneath_open_file(dfd, STATE_FILE, O_RDONLY, 0);
	if (fd < 0) {
		if (errno == ENOENT)
			return ISNAP_OK;
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", path);
	}
	rc = lf_read(fd, &r, &state_grammar, &ld);
	if (rc)
		state_free(st);
	return rc;
}
