/*
 * mboxrd.h — turn one message into its mboxrd form, streamed.
 *
 * mboxrd (the "mbox" variant of mutt, mblaze, Python's mailbox and
 * Dovecot's mbox importer) quotes every line that matches ^>*From  with
 * one more '>', so that a reader restores the message exactly by removing
 * one '>' from every such line.  mbox also wants LF line ends: CRLF
 * becomes LF (a CR not followed by LF stays), and the message always ends
 * with a line end, so that the blank separator line that follows it is a
 * line of its own.  The From line and the blank separator are the caller's.
 *
 * The transformation needs no look-ahead beyond the current line's prefix:
 * memory stays constant whatever the message or line length, and any split
 * of the input into chunks gives the same output.
 *
 *   struct mboxrd q;
 *   mboxrd_init(&q, sink, ctx);
 *   mboxrd_feed(&q, chunk, len) ...   // the message's bytes, as received
 *   mboxrd_finish(&q);                // pending bytes, final line end
 *
 * The sink receives the output in pieces (possibly of a single byte) and
 * returns 0, or -1 to stop: feed and finish then return -1 at once.
 */
#ifndef IMAPSNAP_STORE_MBOXRD_H
#define IMAPSNAP_STORE_MBOXRD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int (*mboxrd_sink)(void *ctx, const char *data, size_t len);

struct mboxrd {
	mboxrd_sink sink;
	void *ctx;
	bool cr;          /* a CR was the last byte fed: LF may follow */
	bool line_start;  /* still matching ^>*From  on this line */
	uint64_t gt;      /* '>' seen at the start of this line, not sent */
	unsigned matched; /* bytes of "From " matched after them */
	bool any;         /* output so far is not empty */
	bool ends_in_lf;  /* the last byte sent was LF */
};

void mboxrd_init(struct mboxrd *q, mboxrd_sink sink, void *ctx);
int mboxrd_feed(struct mboxrd *q, const void *data, size_t len);
/* Send what is held back, and an LF if the output does not end with one
 * (an empty message stays empty).  The state is then as after init. */
int mboxrd_finish(struct mboxrd *q);

/* The reverse, for restore: a message as mbox.c stored it (its bytes
 * between the From line and the blank separator line, mboxrd-quoted, LF
 * line ends) back into the form the server sent.  One '>' comes off
 * every line that matches ^>+From , and every LF is handed to `eol`,
 * which writes it as CRLF (mbox turned each CRLF into LF and kept lone
 * CRs).  The data sink never sees an LF; nothing else changes.  Whether
 * the last line end was the server's or one mbox added to a message
 * that ended without one, only the caller can tell (restore compares
 * both against the manifest's SHA-256): so `eol` is a call of its own.
 *
 *   struct mboxrd_undo u;
 *   mboxrd_undo_init(&u, data, eol, ctx);
 *   mboxrd_undo_feed(&u, chunk, len) ...    // the stored bytes
 *   mboxrd_undo_finish(&u);                 // what is held back
 *
 * Memory stays constant whatever the line (a prefix of '>'s is counted,
 * and sent in runs); any split of the input gives the same calls' bytes.
 * Sinks return 0, or non-zero to stop: feed and finish then return that
 * value at once. */
typedef int (*mboxrd_eol_sink)(void *ctx);

struct mboxrd_undo {
	mboxrd_sink data;
	mboxrd_eol_sink eol;
	void *ctx;
	bool line_start;  /* still matching ^>*From  on this line */
	uint64_t gt;      /* '>' seen at the start of this line, not sent */
	unsigned matched; /* bytes of "From " matched after them */
};

void mboxrd_undo_init(struct mboxrd_undo *u, mboxrd_sink data,
		      mboxrd_eol_sink eol, void *ctx);
int mboxrd_undo_feed(struct mboxrd_undo *u, const void *data, size_t len);
/* Send what is held back (a line start that may have been a From line);
 * the state is then as after init. */
int mboxrd_undo_finish(struct mboxrd_undo *u);

/* Whether the line at `line` (len bytes, no line end needed) is a From
 * line, one that starts a message: it begins with "From ". */
bool mboxrd_is_from_line(const char *line, size_t len);

#endif
