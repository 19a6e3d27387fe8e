/*
 * msg_norm.h — the SHA-256 of a message in a canonical form that the
 * usual server rewrites on APPEND do not change (docs/restore.md), so
 * that a copy a server stored, rewritten, is still recognised as the
 * message sent.  No I/O.
 *
 * The canonical form of a message:
 *   - every LF not preceded by CR becomes CRLF (Dovecot and Courier
 *     store bare LF as CRLF);
 *   - in the header (up to the first empty line), every byte with the
 *     high bit set becomes "X" (stock Cyrus, munge8bit);
 *   - a message that does not end with CRLF gets one (Courier).
 * Each rewrite above, applied to a message, leaves its canonical form as
 * it was; so a stored copy has the canonical form of what was sent.
 *
 *   struct msg_norm n;
 *   msg_norm_init(&n);                  // false when out of memory
 *   msg_norm_update(&n, data, len) ...;
 *   if (!msg_norm_final(&n, sha))       // frees what init took
 *           ... libcrypto failed: `sha` means nothing
 */
#ifndef IMAPSNAP_MSG_NORM_H
#define IMAPSNAP_MSG_NORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg_norm {
	void *md;           /* EVP_MD_CTX */
	bool in_header;
	bool line_empty;    /* nothing on the current line yet */
	bool cr;            /* the last byte in was CR */
	char last[2];       /* the last two bytes out */
	uint64_t size;      /* bytes out */
	unsigned char buf[512];
	size_t n;
	bool failed;        /* libcrypto refused a step: no hash */
};

bool msg_norm_init(struct msg_norm *m);
void msg_norm_update(struct msg_norm *m, const void *data, size_t len);
bool msg_norm_final(struct msg_norm *m, unsigned char sha[32]);

/* Whether a server's stored copy of `sent` bytes could be `stored`
 * bytes long: the rewrites only add bytes (one CR per bare LF, a final
 * CRLF), and here at most one per 16 bytes and 2. */
bool msg_norm_size_fits(uint64_t sent, uint64_t stored);

#endif
