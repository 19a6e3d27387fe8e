/*
 * backup_step_gmail.c — planning step on Gmail (X-GM-EXT-1): a message
 * shows in [Gmail]/All Mail and once more in the folder of each of its
 * labels, with one X-GM-MSGID; it is fetched and stored once, by the
 * first folder that plans it (All Mail is planned first), and skipped in
 * every other (docs/gmail.md).
 *
 * It asks for the ids of the candidates, UID FETCH <UIDNEXT>:* (UID
 * X-GM-MSGID), in the same burst as the listing of step "uids", and
 * concludes after it: of fp->todo, every UID whose id the backup holds
 * (committed in an earlier run) or another folder claimed in this run is
 * taken out.  Skipped UIDs are below the folder's new UIDNEXT, so no later
 * run looks at them again; a message that gets a new label later shows in
 * that label's folder with a new UID, is planned there, and is skipped by
 * its id.  Its labels are followed on the copy that was saved (step
 * "flags" asks for X-GM-LABELS on Gmail).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_step.h"
#include "gmail_index.h"

struct gmail_step {
	struct uid_values ids; /* UID, X-GM-MSGID */
};

static bool gmail_wanted(struct folder_plan *fp, void *mine)
{
	(void)mine;
	return fp->c->gmail && !fp->unchanged && fp->server.exists &&
	       imap_client_has_cap(fp->client, "X-GM-EXT-1");
}

static enum isnap_status gmail_send(struct folder_plan *fp, void *mine,
				    struct isnap_error *err)
{
	char cmd[96];

	(void)mine;
	snprintf(cmd, sizeof cmd, "UID FETCH %u:* (UID X-GM-MSGID)",
		 fp->state.uidnext ? fp->state.uidnext : 1u);
	return plan_send(fp, cmd, NULL, err);
}

static enum isnap_status gmail_untagged(struct folder_plan *fp, void *mine,
					const struct imap_response *r,
					struct isnap_error *err)
{
	struct gmail_step *gs = mine;

	(void)fp;
	(void)err;
	/* Without an id a message is fetched: nothing to compare. */
	uid_values_take(&gs->ids, r, "X-GM-MSGID");
	return ISNAP_OK;
}

static enum isnap_status gmail_conclude(struct folder_plan *fp, void *mine,
					struct isnap_error *err)
{
	struct gmail_step *gs = mine;
	uint64_t skipped = 0;
	enum isnap_status st;

	if (gs->ids.oom)
		return backup_oom(err);
	st = gmail_index_load(fp->c->gmail, fp->c->o->dest, err);
	if (st)
		return st;
	for (size_t i = 0; i < gs->ids.n; i++) {
		uint32_t uid = gs->ids.v[i].uid;
		if (!uidset_contains(&fp->todo, uid) ||
		    gmail_index_claim(fp->c->gmail, gs->ids.v[i].value))
			continue;
		if (uidset_remove_range(&fp->todo, uid, uid))
			return backup_oom(err);
		skipped++;
	}
	fp->copies_skipped += skipped;
	if (skipped)
		plan_notice(fp, "%s: %llu messages are saved already from "
			    "another folder (same X-GM-MSGID); not fetched "
			    "again", fp->utf8, (unsigned long long)skipped);
	return ISNAP_OK;
}

static void gmail_release(void *mine)
{
	struct gmail_step *gs = mine;

	uid_values_free(&gs->ids);
}

const struct plan_step backup_step_gmail = {
	.name = "gmail",
	.size = sizeof(struct gmail_step),
	.wanted = gmail_wanted,
	.send = gmail_send,
	.untagged = gmail_untagged,
	.conclude = gmail_conclude,
	.release = gmail_release,
};
