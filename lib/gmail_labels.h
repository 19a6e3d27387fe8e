/*
 * gmail_labels.h — what a Gmail label (X-GM-LABELS, as the manifest's
 * gm_labels keep it in UTF-8) stands for when a Gmail backup is restored
 * (docs/gmail.md, "Restoring").  No I/O.
 *
 * Into a server that is not Gmail, each label becomes a folder holding
 * its messages: Gmail's own labels the folder of a special-use role
 * (`\Sent` the target's Sent), a user's label (`Work/2024`) the folder of
 * that path.  `\Starred` is the \Flagged flag the message carries anyway,
 * and `\Important` is Gmail's own guess: neither becomes a folder.
 * Into Gmail, the message is appended once (to the folder
 * gmail_append_role names) and its other labels are set with STORE.
 */
#ifndef IMAPSNAP_GMAIL_LABELS_H
#define IMAPSNAP_GMAIL_LABELS_H

#include <stdbool.h>
#include <stddef.h>

enum gmail_label_kind {
	GMAIL_LABEL_FOLDER, /* a user's label: the folder of its path */
	GMAIL_LABEL_INBOX,  /* \Inbox: INBOX */
	GMAIL_LABEL_ROLE,   /* the folder of a special-use role */
	GMAIL_LABEL_FLAG,   /* \Starred: the \Flagged flag, no folder */
	GMAIL_LABEL_NONE,   /* \Important, or one not known: no folder */
};

struct gmail_label_place {
	enum gmail_label_kind kind;
	const char *role;   /* GMAIL_LABEL_ROLE: "\\Sent", "\\Drafts",
			       "\\Trash", "\\Junk" (static) */
};

struct gmail_label_place gmail_label_place(const char *label);

/* Where a message with these labels is appended on a Gmail target: the
 * special-use role of that folder, "\\Drafts" for a draft, "\\Sent" for
 * sent mail (Gmail gives a message appended there that label, and takes
 * neither by STORE), else "\\All" (All Mail: archived, labels to come). */
const char *gmail_append_role(const char *const *labels, size_t n);

/* Whether STORE +X-GM-LABELS sets the label on a Gmail target after
 * that APPEND: \Inbox, \Important and the user's labels; not \Sent and
 * \Draft (the folder gave them), \Starred (the \Flagged flag did), nor
 * \Trash and \Spam (they would move the message). */
bool gmail_label_storable(const char *label);

#endif
