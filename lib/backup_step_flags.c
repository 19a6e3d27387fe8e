/*
 * backup_step_flags.c — planning step: flags changed since the last run on
 * messages already saved, with CONDSTORE (RFC 7162: UID FETCH ...
 * (CHANGEDSINCE <the HIGHESTMODSEQ recorded>)).  Maildir renames each
 * copy's ":2," suffix; stores that cannot change what they wrote keep it,
 * and the manifest records the change either way (docs/decisions.md,
 * "Flag changes and expunges").  On Gmail a label added or removed moves
 * the MODSEQ too: X-GM-LABELS is asked for with the flags, and the
 * manifest records the labels with them (docs/gmail.md).
 */
#include <stdio.h>
#include <string.h>

#include "backup_step.h"
#include "imap/fetch.h"
#include "imap/gmail.h"

struct flags_step {
	uint64_t changed;
};

static bool flags_wanted(struct folder_plan *fp, void *mine)
{
	(void)mine;
	return !fp->dry_run && !fp->unchanged && fp->same_generation &&
	       !uidset_empty(&fp->state.saved) && fp->server.highestmodseq &&
	       fp->state.highestmodseq &&
	       fp->server.highestmodseq != fp->state.highestmodseq;
}

static enum isnap_status flags_send(struct folder_plan *fp, void *mine,
				    struct isnap_error *err)
{
	char cmd[128];

	(void)mine;
	if (imap_client_has_cap(fp->client, "X-GM-EXT-1")) {
		if (fp->state.uidnext <= 1)
			return ISNAP_OK;
		snprintf(cmd, sizeof cmd, "UID FETCH 1:%u (UID FLAGS "
			 "X-GM-LABELS) (CHANGEDSINCE %llu)",
			 fp->state.uidnext - 1,
			 (unsigned long long)fp->state.highestmodseq);
		return plan_send(fp, cmd, NULL, err);
	}
	if (!imap_changed_flags_command(fp->state.uidnext,
					fp->state.highestmodseq, cmd,
					sizeof cmd))
		return ISNAP_OK;
	return plan_send(fp, cmd, NULL, err);
}

struct change_ctx {
	struct folder_plan *fp;
	struct flags_step *fs;
	const struct gmail_labels *labels; /* of this response, or NULL */
};

static enum isnap_status on_changed(void *ctx, uint32_t uid,
				    const struct imap_arg *flags,
				    uint64_t modseq, struct isnap_error *err)
{
	struct change_ctx *cc = ctx;
	struct store *s = cc->fp->store;
	char keywords[4096];
	struct store_message m = {
		.uid = uid,
		.keywords = keywords,
		.internaldate = STORE_NO_DATE,
		.rfc822_size = STORE_NO_SIZE,
		.modseq = modseq,
	};
	enum isnap_status st;

	if (cc->labels) {
		m.has_gm_labels = true;
		m.gm_labels = (const char *const *)cc->labels->v;
		m.gm_nlabels = cc->labels->n;
	}
	if (!uidset_contains(&cc->fp->state.saved, uid))
		return ISNAP_OK; /* not saved yet: the fetch brings it */
	/* A server that ignores CHANGEDSINCE sends every message's flags;
	 * its MODSEQ still says which changed since the last run.  Without
	 * that filter each would count, and each would get a manifest line,
	 * on every run. */
	if (modseq && modseq <= cc->fp->state.highestmodseq)
		return ISNAP_OK;
	fetch_parse_flags(flags, &m.flags, keywords, sizeof keywords);
	cc->fs->changed++;
	if (!s->ops->update_flags)
		return ISNAP_OK;
	st = s->ops->update_flags(s, &m, err);
	if (st == ISNAP_EMSG) {
		/* The copy is not where the store expects it; verify reports
		 * that, and the flags are only a label on it. */
		plan_notice(cc->fp, "%s: UID %u: flags not updated: %s",
			    cc->fp->utf8, uid, err->msg);
		return ISNAP_OK;
	}
	return st;
}

static enum isnap_status flags_untagged(struct folder_plan *fp, void *mine,
					const struct imap_response *r,
					struct isnap_error *err)
{
	struct change_ctx cc = { fp, mine, NULL };
	struct gmail_labels labels = { 0 };
	enum isnap_status st;

	/* X-GM-LABELS of the same FETCH response, when Gmail sent them. */
	if (r->kind == IMAP_RESP_UNTAGGED && !strcmp(r->name, "FETCH") &&
	    r->nargs == 1 && r->args[0].type == IMAP_ARG_LIST) {
		const struct imap_arg *it = &r->args[0];
		for (size_t i = 0; i + 1 < it->count; i += 2)
			if (imap_arg_is_atom(&it->list[i], "X-GM-LABELS") &&
			    gmail_labels_parse(&it->list[i + 1], &labels,
					       NULL) == ISNAP_OK)
				cc.labels = &labels;
	}
	st = imap_changed_flags_response(r, on_changed, &cc, err);
	gmail_labels_free(&labels);
	return st;
}

static enum isnap_status flags_conclude(struct folder_plan *fp, void *mine,
					struct isnap_error *err)
{
	struct flags_step *fs = mine;

	(void)err;
	fp->flags_changed += fs->changed;
	return ISNAP_OK;
}

const struct plan_step backup_step_flags = {
	.name = "flags",
	.size = sizeof(struct flags_step),
	.wanted = flags_wanted,
	.send = flags_send,
	.untagged = flags_untagged,
	.conclude = flags_conclude,
};
