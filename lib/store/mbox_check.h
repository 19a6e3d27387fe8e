/*
 * mbox_check.h — is every message the index names still in the mbox file,
 * and where?  The mbox store's slow path (docs/formats.md, "Healing"),
 * taken only when the file changed since the last commit (its size is
 * not the index's, or its ctime is newer than the index): the file is
 * read once, split at its From lines, and each message's identity
 * (mbox_ident.h) compared with the identities the index recorded.
 *
 * A message found at the place the index says, or anywhere else in the
 * file (a mail reader rewrote it: Python's mailbox, mutt), is kept; an
 * index entry without a recorded identity (an older backup) is found only
 * at its own offset with its own length.  What is none of the index's
 * messages stays where it is.  The last message of the file, if it is
 * one of the index's cut short (the file was truncated), is `torn`.
 *
 * For mbox.gz only complete gzip members count: the file is kept up to
 * the end of the last member that inflates whole.
 *
 * Memory: one record per message of the file.  Reads only.
 */
#ifndef IMAPSNAP_STORE_MBOX_CHECK_H
#define IMAPSNAP_STORE_MBOX_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/mbox_index.h"

/* One entry of the index as open_folder read it. */
struct mbox_known {
	struct mbox_index_entry e;
	bool has_ident;
	unsigned char ident[32];
};

/* An entry of the index, found in the file. */
struct mbox_kept {
	size_t known;              /* index into the known entries */
	uint64_t offset, length;   /* where it is now, blank line included */
	unsigned char ident[32];
	uint64_t stored_size;      /* the message as stored, now */
	unsigned char stored_sha[32];
};

struct mbox_check {
	struct mbox_kept *kept;    /* in file order */
	size_t nkept;
	uint64_t file_size;        /* the file as it was read */
	uint64_t keep_file;        /* bytes of the file to keep: what follows
				      is a torn message or gzip member */
	uint64_t data_end;         /* uncompressed bytes in what is kept */
	unsigned separator;        /* LFs to add so that the kept part ends
				      in a blank line (0, 1 or 2) */
	uint64_t foreign;          /* messages that are none of the index's */
	bool in_place;             /* every entry found at its own place */
};

/* Read the file at `fd` (plain or gzip) against the `n` entries of
 * `known` (in index order).  Returns 0, or -1 with errno (EIO: a read
 * failed; ENOMEM). */
int mbox_check_file(int fd, bool gzip, const struct mbox_known *known,
		    size_t n, struct mbox_check *out);
void mbox_check_free(struct mbox_check *c);

#endif
