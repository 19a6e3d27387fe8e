/*
 * mbox_ident.h — what identifies a message in an mbox file across the
 * changes mail readers make to it (docs/formats.md, "Healing"): the
 * SHA-256 of the message as stored (between its From line and the blank
 * line after it), less the header fields that readers own and rewrite
 * (Status, X-Status, Content-Length, Lines: mutt moves the first two to
 * the end of the header and adds the others when it rewrites a file).
 *
 *   struct mbox_ident id;
 *   if (mbox_ident_init(&id)) ...          // -1: out of memory
 *   mbox_ident_start(&id);                 // for each message
 *   mbox_ident_feed(&id, bytes, n) ...     // the stored bytes, in order
 *   mbox_ident_final(&id, out32);
 *   mbox_ident_free(&id);
 *
 * A field is left out with its continuation lines; the header ends at
 * the first empty line, after which every byte counts.  Streaming: the
 * only bytes held are the start of a header line, until its name is
 * known (at most MBOX_IDENT_NAME_MAX).
 */
#ifndef IMAPSNAP_STORE_MBOX_IDENT_H
#define IMAPSNAP_STORE_MBOX_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#define MBOX_IDENT_NAME_MAX 16

struct mbox_ident {
	void *md;               /* EVP_MD_CTX */
	bool in_header;
	bool line_start;
	bool dropping;          /* the current field is left out */
	bool deciding;          /* collecting a field's name */
	char name[MBOX_IDENT_NAME_MAX];
	size_t name_len;
};

int mbox_ident_init(struct mbox_ident *id);
void mbox_ident_start(struct mbox_ident *id);
/* 0, or -1 when the digest fails. */
int mbox_ident_feed(struct mbox_ident *id, const void *data, size_t len);
int mbox_ident_final(struct mbox_ident *id, unsigned char out[32]);
/* *to becomes a copy of `from`, midway included (to must be initialised). */
int mbox_ident_copy(struct mbox_ident *to, const struct mbox_ident *from);
void mbox_ident_free(struct mbox_ident *id);

#endif
