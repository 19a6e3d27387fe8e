/*
 * restore_labels.h — give messages restored into Gmail their labels
 * again: `UID STORE <uids> +X-GM-LABELS (<labels>)` in the folder the
 * session has SELECTed (docs/gmail.md, "Restoring").
 *
 * Messages with the same labels share a command (a set of UIDs), so an
 * account costs one round trip per distinct set of labels and some
 * thousand UIDs, not one per message.  Labels come in UTF-8 as the
 * manifest keeps them (gm_labels): Gmail's own (`\Inbox`, `\Important`)
 * are sent as atoms, the user's (`Work/2024`) as quoted strings in
 * modified UTF-7, as Gmail spells them.
 *
 *   struct restore_label_item it[n];   // uid, labels, nlabels set
 *   restore_labels_store(client, it, n, &fails, why, sizeof why, err);
 *   // it[i].ok: its labels are set; the others failed (`why` says the
 *   // last reason)
 *
 * Nothing here is owned: the labels belong to the caller.
 */
#ifndef IMAPSNAP_RESTORE_LABELS_H
#define IMAPSNAP_RESTORE_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"

struct restore_label_item {
	uint32_t uid;
	const char *const *labels;
	size_t nlabels;
	void *ctx;         /* the caller's */
	bool ok;           /* set by restore_labels_store */
};

/* Store each item's labels.  A refusal (NO, BAD) fails its command's
 * items, counted in *failed, with the server's answer in `why`; labels
 * that cannot be written (invalid UTF-8) fail their items too.  Returns
 * the session's errors (connection, protocol) and ISNAP_ENOMEM. */
enum isnap_status restore_labels_store(struct imap_client *c,
				       struct restore_label_item *items,
				       size_t n, size_t *failed, char *why,
				       size_t why_size,
				       struct isnap_error *err);

/* The list "(\Inbox "Work")" for `labels`, malloc'd; NULL when a label
 * cannot be written (invalid UTF-8: *bad set) or memory ran out (*bad
 * clear).  For tests too. */
char *restore_labels_list(const char *const *labels, size_t n, bool *bad);

#endif
