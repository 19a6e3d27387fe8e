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
	struct { uint32_t uid; uint64_t msgid; } *v;
	size_t n, cap;
	bool oom;
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
	const struct imap_arg *items;
	uint32_t uid = 0;
	uint64_t msgid = 0;

	(void)fp;
	(void)err;
	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH") ||
	    r->nargs != 1 || r->args[0].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	items = &r->args[0];
	for (size_t i = 0; i + 1 < items->count; i += 2) {
		if (imap_arg_is_atom(&items->list[i], "UID"))
			imap_arg_uint32(&items->list[i + 1], &uid);
		else if (imap_arg_is_atom(&items->list[i], "X-GM-MSGID"))
			imap_arg_uint64(&items->list[i + 1], &msgid);
	}
	if (!uid || !msgid)
		return ISNAP_OK; /* another step's answer, or no id: fetch */
	if (gs->n == gs->cap) {
		size_t cap = gs->cap ? gs->cap * 2 : 256;
		void *v = realloc(gs->v, cap * sizeof *gs->v);
		if (!v) {
			gs->oom = true;
			return ISNAP_OK;
		}
		gs->v = v;
		gs->cap = cap;
	}
	gs->v[gs->n].uid = uid;
	gs->v[gs->n].msgid = msgid;
	gs->n++;
	return ISNAP_OK;
}

static enum isnap_status gmail_conclude(struct folder_plan *fp, void *mine,
					struct isnap_error *err)
{
	struct gmail_step *gs = mine;
	uint64_t skipped = 0;
	enum isnap_status st;

	if (gs->oom)
		return backup_oom(err);
	st = gmail_index_load(fp->c->gmail, fp->c->o->dest, err);
	if (st)
		return st;
	for (size_t i = 0; i < gs->n; i++) {
		uint32_t uid = gs->v[i].uid;
		if (!uidset_contains(&fp->todo, uid) ||
		    gmail_index_claim(fp->c->gmail, gs->v[i].msgid))
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

	free(gs->v);
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
