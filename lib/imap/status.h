/*
 * status.h — what `imapsnap list` shows of each folder: message and unseen
 * counts, size and UIDVALIDITY.  RFC 3501 §6.3.10 (STATUS), RFC 5819
 * (LIST-STATUS), RFC 8438 (STATUS=SIZE), RFC 6154 (SPECIAL-USE).
 *
 * Nothing is opened for writing and no flag changes: STATUS does not
 * select a folder, and the exact-size fallback uses EXAMINE.
 *
 * Use:
 *   struct imap_folder_list l = { 0 };
 *   imap_list(c, &l, err);
 *   struct imap_status *st = calloc(l.n, sizeof *st);
 *   imap_status_all(c, &l, st, 0, err);
 *   ... st[i] describes l.v[i] ...
 *   imap_status_free(st, l.n);
 */
#ifndef IMAPSNAP_IMAP_STATUS_H
#define IMAPSNAP_IMAP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"
#include "imap/commands.h"

struct imap_status {
	bool known;           /* the server answered; false for \Noselect */
	uint32_t messages;
	uint32_t unseen;
	uint32_t uidvalidity; /* 0 if the server did not say */
	uint32_t uidnext;     /* with IMAP_STATUS_SYNC; 0 if not said */
	uint64_t highestmodseq; /* with IMAP_STATUS_SYNC; 0 if not said */
	bool has_size;
	uint64_t size;        /* octets (STATUS SIZE, or the sum of sizes) */
	char *error;          /* the server refused STATUS: its words */
};

enum imap_status_flags {
	/* Sum RFC822.SIZE over every message (EXAMINE, FETCH 1:*) when the
	 * server does not report SIZE itself.  Slow on large folders. */
	IMAP_STATUS_COUNT_SIZES = 1 << 0,
	/* What a backup compares with its state instead of the display
	 * items: (UIDVALIDITY UIDNEXT MESSAGES), and HIGHESTMODSEQ with
	 * CONDSTORE (RFC 7162 §3.1.6).  Roles are not taken from the
	 * answer.  Without LIST-STATUS every STATUS goes out in one burst
	 * of up to IMAP_STATUS_BURST commands. */
	IMAP_STATUS_SYNC = 1 << 1,
};

/* STATUS commands in flight at once.  Each answer is well under 200
 * bytes and each command under 1 KiB for all but absurd names, so a
 * burst stays far below the socket buffers on both sides (Linux: 128 KiB
 * to receive by default): neither side can block sending while the
 * other does too.  Enough that a no-op of a few hundred folders costs one
 * round trip for all their STATUS. */
#define IMAP_STATUS_BURST 256

/* How the answers were obtained, for --verbose. */
enum imap_status_method {
	IMAP_STATUS_BY_LIST_STATUS, /* one LIST ... RETURN (STATUS ...) */
	IMAP_STATUS_BY_STATUS,      /* one STATUS per folder, pipelined */
};

/* Fill out[i] for every folder in `folders` (out holds folders->n zeroed
 * entries).  A folder the server refuses gets `error` and the others go
 * on.  Special-use roles the LIST-STATUS answer reveals are added to
 * folders->v[i].special_use where LIST gave none.  Returns ISNAP_OK, or
 * the connection/protocol failure that stopped it. */
enum isnap_status imap_status_all(struct imap_client *c,
				  struct imap_folder_list *folders,
				  struct imap_status *out, unsigned flags,
				  enum imap_status_method *method,
				  struct isnap_error *err);

void imap_status_free(struct imap_status *v, size_t n);

#endif
