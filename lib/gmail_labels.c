/*
 * gmail_labels.c — see gmail_labels.h.  Gmail's system labels are those
 * its IMAP extensions document (\Inbox, \Sent, \Draft, \Important,
 * \Starred, \Trash, \Spam); matched without regard to case, as Gmail
 * matches them.
 */
#include "gmail_labels.h"

#include <strings.h>

static const struct {
	const char *label;
	struct gmail_label_place place;
} SYSTEM[] = {
	{ "\\Inbox", { GMAIL_LABEL_INBOX, NULL } },
	{ "\\Sent", { GMAIL_LABEL_ROLE, "\\Sent" } },
	{ "\\Draft", { GMAIL_LABEL_ROLE, "\\Drafts" } },
	{ "\\Drafts", { GMAIL_LABEL_ROLE, "\\Drafts" } },
	{ "\\Trash", { GMAIL_LABEL_ROLE, "\\Trash" } },
	{ "\\Spam", { GMAIL_LABEL_ROLE, "\\Junk" } },
	{ "\\Junk", { GMAIL_LABEL_ROLE, "\\Junk" } },
	{ "\\Starred", { GMAIL_LABEL_FLAG, NULL } },
	{ "\\Flagged", { GMAIL_LABEL_FLAG, NULL } },
	{ "\\Important", { GMAIL_LABEL_NONE, NULL } },
};

struct gmail_label_place gmail_label_place(const char *label)
{
	if (!label || !*label)
		return (struct gmail_label_place){ GMAIL_LABEL_NONE, NULL };
	for (size_t i = 0; i < sizeof SYSTEM / sizeof SYSTEM[0]; i++)
		if (!strcasecmp(label, SYSTEM[i].label))
			return SYSTEM[i].place;
	if (label[0] == '\\')
		return (struct gmail_label_place){ GMAIL_LABEL_NONE, NULL };
	return (struct gmail_label_place){ GMAIL_LABEL_FOLDER, NULL };
}

const char *gmail_append_role(const char *const *labels, size_t n)
{
	bool sent = false;

	for (size_t i = 0; i < n; i++) {
		struct gmail_label_place p = gmail_label_place(labels[i]);
		if (p.kind != GMAIL_LABEL_ROLE)
			continue;
		if (!strcasecmp(p.role, "\\Drafts"))
			return "\\Drafts";
		sent |= !strcasecmp(p.role, "\\Sent");
	}
	return sent ? "\\Sent" : "\\All";
}

bool gmail_label_storable(const char *label)
{
	struct gmail_label_place p = gmail_label_place(label);

	return p.kind == GMAIL_LABEL_FOLDER || p.kind == GMAIL_LABEL_INBOX ||
	       (label && !strcasecmp(label, "\\Important"));
}
