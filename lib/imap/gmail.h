/*
 * gmail.h — Gmail's IMAP extensions (X-GM-EXT-1): X-GM-MSGID, the id of a
 * message that is the same in every folder it shows in, X-GM-THRID, its
 * thread, and X-GM-LABELS, its labels.  On Gmail a label is a folder: a
 * message with the labels \Inbox and Work shows in INBOX, in Work and in
 * [Gmail]/All Mail, so a backup that keys messages by X-GM-MSGID keeps
 * one copy and records the labels (docs/gmail.md).
 *
 *   struct gmail_labels l;
 *   if (gmail_labels_parse(value_of_X_GM_LABELS, &l, err)) ...;
 *   ... l.v[0] .. l.v[l.n - 1]: UTF-8 names; "\Inbox", "\Sent", ...
 *   gmail_labels_store_list(&l, &text, err);   // for STORE +X-GM-LABELS
 *   gmail_labels_free(&l);
 *
 * The labels come from the server and are not trusted
 * (tests/fuzz/fuzz_gmail.c).
 */
#ifndef IMAPSNAP_IMAP_GMAIL_H
#define IMAPSNAP_IMAP_GMAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "imap/parser.h"

/* More labels on one message, or a longer label, is malformed. */
#define GMAIL_LABELS_MAX 1000
#define GMAIL_LABEL_MAX 1024

struct gmail_labels {
	size_t n;
	char **v;  /* malloc'd UTF-8 names, sorted, each once */
};

/* The value of X-GM-LABELS: a list of atoms ("\Inbox", "\Sent", system
 * labels keep their backslash) and strings (user labels, in modified
 * UTF-7 as folder names are, or UTF-8 after ENABLE UTF8=ACCEPT).
 * ISNAP_OK; ISNAP_EPROTO when it is not a list of such, a label is empty,
 * too long, has a control character once decoded, or there are too many.
 * *out is emptied on failure. */
enum isnap_status gmail_labels_parse(const struct imap_arg *list,
				     struct gmail_labels *out,
				     struct isnap_error *err);

/* From UTF-8 names (a manifest's); sorted and made unique.  Same checks. */
enum isnap_status gmail_labels_from(const char *const *names, size_t n,
				    struct gmail_labels *out,
				    struct isnap_error *err);

void gmail_labels_free(struct gmail_labels *l);

bool gmail_labels_equal(const struct gmail_labels *a,
			const struct gmail_labels *b);

/* "(\Inbox "Work/2024" "R&AOk-sum&AOk-")": the list as STORE
 * +X-GM-LABELS takes it, system labels as atoms, the others quoted and in
 * modified UTF-7.  *out is malloc'd. */
enum isnap_status gmail_labels_store_list(const struct gmail_labels *l,
					  char **out, struct isnap_error *err);

/* Where a label's messages go on a server without labels. */
enum gmail_target_kind {
	GMAIL_TARGET_NONE = 0, /* nowhere of its own (\Important, \Starred:
				* Gmail's views; \Starred is \Flagged) */
	GMAIL_TARGET_INBOX,
	GMAIL_TARGET_ROLE,     /* the target's folder with special-use `role` */
	GMAIL_TARGET_FOLDER,   /* the folder of that name ('/' separates
				* levels) */
};

struct gmail_target {
	enum gmail_target_kind kind;
	const char *role;   /* ROLE: "\Sent", "\Drafts" */
	const char *folder; /* FOLDER: the label itself; ROLE: a name to use
			     * when the target has no such folder */
};

struct gmail_target gmail_label_target(const char *label);

/* Messages with no label that maps to a folder (archived mail) go to the
 * target's \Archive folder, or one of this name. */
#define GMAIL_UNLABELLED_FOLDER "Archive"

#endif
