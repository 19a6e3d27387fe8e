/*
 * mbox_index.h — the mbox store's own record of what each .mbox (or
 * .mbox.gz) file holds: DEST/.imapsnap/mbox/<file>.idx, one line per
 * committed message (docs/formats.md):
 *
 *   <uidvalidity> <uid> <offset> <length> <file end>
 *
 * offset and length place the message (its From line through the blank
 * line after it) in the uncompressed mbox; file end is the size of the
 * file, compressed or not, at the commit that made the message durable.
 * Lines are appended, and the file fsynced, at each commit after the mbox
 * itself is durable; so every complete line names durable bytes, and the
 * last one says where the committed part of the mbox ends.
 *
 * Reading is strict and stops at the first line that is not well formed
 * or does not follow on from the line before (same UIDVALIDITY, offset at
 * or past the previous offset + length, file end not decreasing): after a
 * crash the index may end in a torn or zero-filled tail, which was never
 * committed.  A gap between two messages holds what is not imapsnap's
 * (a message a user or reader put in the file, docs/formats.md).
 *
 * Beside it, DEST/.imapsnap/mbox/<file>.ids holds each message's identity
 * (mbox_ident.h), one line per index line and in the same order:
 *
 *   <uidvalidity> <uid> <identity, 64 hex digits>
 *
 * written at the same commits, before the index lines.  It is read only
 * when the mbox file was changed since the last commit; an older backup
 * has none, or fewer lines than its index (those messages have no
 * identity and are found only where the index puts them).
 */
#ifndef IMAPSNAP_STORE_MBOX_INDEX_H
#define IMAPSNAP_STORE_MBOX_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct mbox_index_entry {
	uint32_t uidvalidity, uid;
	uint64_t offset, length, file_end;
};

/* What the valid part of an index says. */
struct mbox_index_info {
	uint64_t valid_len;   /* bytes of the index up to the first bad line */
	uint64_t n;           /* entries in that part */
	uint32_t uidvalidity; /* theirs; 0 when there are none */
	uint64_t data_end;    /* uncompressed end of the last message */
	uint64_t file_end;    /* file size at the last commit */
};

/* Longest line mbox_index_format writes, with its LF. */
#define MBOX_INDEX_LINE_MAX 96

/* Read the index at `fd` from offset 0.  `each` (may be NULL) is called for
 * every valid entry and may stop the reading by returning -1 (errno set).
 * Returns 0, or -1 with errno from read(2) or `each`. */
int mbox_index_read(int fd, struct mbox_index_info *info,
		    int (*each)(void *ctx, const struct mbox_index_entry *e),
		    void *ctx);

/* The line for `e`, with its LF, into buf (at least MBOX_INDEX_LINE_MAX
 * bytes); returns its length. */
size_t mbox_index_format(const struct mbox_index_entry *e, char *buf);

/* Parse one line (without its LF); returns 0 or -1 when malformed. */
int mbox_index_parse(const char *line, size_t len,
		     struct mbox_index_entry *e);

/* Longest line mbox_ids_format writes, with its LF. */
#define MBOX_IDS_LINE_MAX 96

size_t mbox_ids_format(uint32_t uidvalidity, uint32_t uid,
		       const unsigned char ident[32], char *buf);
/* Read the identities at `fd` from offset 0, calling `each` for each
 * line until the first malformed one; *valid_len is the
 * size of the valid part.  `each` may stop it by returning -1 (errno
 * set).  Returns 0, or -1 with errno. */
int mbox_ids_read(int fd,
		  int (*each)(void *ctx, uint32_t uidvalidity, uint32_t uid,
			      const unsigned char ident[32]),
		  void *ctx, uint64_t *valid_len);

#endif
