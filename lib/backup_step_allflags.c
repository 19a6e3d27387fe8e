/*
 * backup_step_allflags.c — planning step: flags changed on messages
 * already saved, where the folder has no MODSEQs (a server without
 * CONDSTORE, such as Courier).  Nothing but the flags themselves can
 * tell, so every saved message's are asked for, UID FETCH 1:<highest
 * saved> (UID FLAGS), a few dozen bytes a message, as mbsync does; and
 * compared with the folder's flag record (flag_record.h), the flags each
 * had when last seen.
 *
 * A message whose flags differ is updated as with CONDSTORE
 * (backup_step_flags.c): Maildir renames its ":2," suffix, and the
 * manifest records a `flags` line for every format, which verify and
 * restore read; it counts as "with new flags".  A saved message the
 * record does not know (a backup made before records were kept, a record
 * lost or damaged) gets the server's flags written the same way, once,
 * without counting as a change: nothing says whether they changed
 * (docs/state.md, "Flag records").  The record goes to the ledger with
 * the plan, which keeps it up to date for the messages fetched next.
 *
 * Runs in every folder, also those where nothing else changed, when the
 * server has no CONDSTORE (the cost is measured in docs/performance.md);
 * with CONDSTORE it never runs, except once in a folder whose state has
 * no HIGHESTMODSEQ yet (the server gained CONDSTORE since), so that a
 * change made meanwhile is not lost.
 *
 * An answer that is no list of flags fails the folder: its flags could
 * not be followed, and a backup that silently stops following them is
 * what this step exists to prevent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backup_events.h"
#include "backup_step.h"
#include "flag_record.h"
#include "imap/fetch.h"

struct allflags_step {
	struct flag_record *fr;       /* the record, compared and updated */
	/* Answers that may differ from the record: those that do, and
	 * every answer out of UID order (a later answer for a UID wins). */
	struct flag_changes answers;
	uint32_t highest;             /* highest UID answered so far */
};

static bool allflags_always(const struct backup_ctx *c)
{
	return !c->condstore;
}

static bool allflags_wanted(struct folder_plan *fp, void *mine)
{
	(void)mine;
	/* The store need not be open yet: it is by the time answers
	 * come (they follow EXAMINE's). */
	return !fp->dry_run && fp->same_generation &&
	       !uidset_empty(&fp->state.saved) &&
	       (!fp->server.highestmodseq || !fp->state.highestmodseq);
}

static enum isnap_status allflags_send(struct folder_plan *fp, void *mine,
				       struct isnap_error *err)
{
	struct allflags_step *as = mine;
	enum isnap_status st;
	char cmd[64];

	st = ledger_flags_read(fp->lf, fp->server.uidvalidity, &as->fr, err);
	if (st == ISNAP_EINTEGRITY) {
		/* Nothing is lost by starting anew: every saved message's
		 * flags are written to the backup once more. */
		backup_warning(fp->c->ev,
			       "%s; the flags of %s's saved messages are "
			       "recorded anew",
			       err->msg, fp->utf8);
		as->fr = flag_record_new(fp->server.uidvalidity);
		st = as->fr ? ISNAP_OK : backup_oom(err);
	}
	if (st)
		return st;
	snprintf(cmd, sizeof cmd, "UID FETCH 1:%" PRIu32 " (UID FLAGS)",
		 uidset_max(&fp->state.saved));
	st = plan_send(fp, cmd, NULL, err);
	if (!st)
		fp->fetched_uids_to = uidset_max(&fp->state.saved);
	return st;
}

static enum isnap_status allflags_untagged(struct folder_plan *fp, void *mine,
					   const struct imap_response *r,
					   struct isnap_error *err)
{
	struct allflags_step *as = mine;
	const struct imap_arg *items, *flags = NULL;
	char keywords[FETCH_KEYWORDS_MAX];
	unsigned bits;
	uint32_t uid = 0, id, old;

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH") ||
	    r->nargs != 1 || r->args[0].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	items = &r->args[0];
	for (size_t i = 0; i + 1 < items->count; i += 2) {
		if (imap_arg_is_atom(&items->list[i], "UID"))
			imap_arg_uint32(&items->list[i + 1], &uid);
		else if (imap_arg_is_atom(&items->list[i], "FLAGS"))
			flags = &items->list[i + 1];
	}
	/* Without a UID it names no message we can tell (an unsolicited
	 * update); without FLAGS it is another step's answer. */
	if (!uid || !flags)
		return ISNAP_OK;
	if (flags->type != IMAP_ARG_LIST)
		return isnap_fail(err, ISNAP_EFOLDER,
				  "the server's FLAGS of UID %" PRIu32
				  " are not a list; its flags cannot be "
				  "followed",
				  uid);
	for (size_t i = 0; i < flags->count; i++)
		if (flags->list[i].type != IMAP_ARG_ATOM)
			return isnap_fail(err, ISNAP_EFOLDER,
					  "the server's FLAGS of UID %" PRIu32
					  " hold something that is no flag; "
					  "its flags cannot be followed",
					  uid);
	if (!uidset_contains(&fp->state.saved, uid))
		return ISNAP_OK; /* not saved yet: the fetch brings it */
	fetch_parse_flags(flags, &bits, keywords, sizeof keywords);
	id = flag_record_intern(as->fr, bits, keywords);
	if (id == FLAG_RECORD_NONE)
		return errno == E2BIG
			       ? isnap_fail(err, ISNAP_EFOLDER,
					    "the server gives its messages "
					    "more than %d different sets of "
					    "flags; they cannot be followed",
					    FLAG_RECORD_SETS_MAX)
			       : backup_oom(err);
	old = flag_record_get(as->fr, uid);
	if (uid > as->highest) {
		as->highest = uid;
		if (old == id)
			return ISNAP_OK; /* the usual answer: costs nothing */
	}
	return flag_changes_add(&as->answers, uid, id) ? backup_oom(err)
						       : ISNAP_OK;
}

/* The store's copy of `uid` gets set `id`'s flags (and the manifest its
 * `flags` line). */
static enum isnap_status update(struct folder_plan *fp,
				const struct flag_record *fr, uint32_t uid,
				uint32_t id, struct isnap_error *err)
{
	struct store *s = fp->store;
	struct store_message m = {
		.uid = uid,
		.internaldate = STORE_NO_DATE,
		.rfc822_size = STORE_NO_SIZE,
	};
	enum isnap_status st;

	m.flags = flag_record_flags(fr, id, &m.keywords);
	st = s->ops->update_flags(s, &m, err);
	if (st == ISNAP_EMSG) {
		/* The copy is not where the store expects it; verify says
		 * so, and healing fetches it again with these flags. */
		plan_notice(fp, "%s: UID %" PRIu32 ": flags not updated: %s",
			    fp->utf8, uid, err->msg);
		return ISNAP_OK;
	}
	return st;
}

static enum isnap_status allflags_conclude(struct folder_plan *fp, void *mine,
					   struct isnap_error *err)
{
	struct allflags_step *as = mine;
	struct flag_changes *a = &as->answers;
	uint64_t changed = 0, recorded = 0;
	size_t n = 0;
	enum isnap_status st;

	flag_changes_sort(a);
	for (size_t i = 0; i < a->n; i++) {
		uint32_t uid = a->v[i].uid, id = a->v[i].set;
		uint32_t old = flag_record_get(as->fr, uid);
		if (old == id)
			continue; /* changed back, or answered twice */
		if (old == FLAG_RECORD_NONE)
			recorded++;
		else
			changed++;
		if ((st = update(fp, as->fr, uid, id, err)))
			return st;
		a->v[n++] = a->v[i];
	}
	a->n = n;
	if (flag_record_apply(as->fr, a))
		return backup_oom(err);
	fp->flags_changed += changed;
	fp->flags_recorded += recorded;
	if (recorded)
		plan_notice(fp,
			    "%s: the flags of %" PRIu64 " saved message%s "
			    "recorded for the first time (written to the "
			    "backup, not counted as changed)",
			    fp->utf8, recorded, recorded == 1 ? "" : "s");
	flag_record_free(fp->flag_record);
	fp->flag_record = as->fr;
	fp->flag_record_dirty = changed || recorded;
	as->fr = NULL;
	return ISNAP_OK;
}

static void allflags_release(void *mine)
{
	struct allflags_step *as = mine;

	flag_record_free(as->fr);
	flag_changes_free(&as->answers);
}

const struct plan_step backup_step_allflags = {
	.name = "allflags",
	.size = sizeof(struct allflags_step),
	.always = allflags_always,
	.wanted = allflags_wanted,
	.send = allflags_send,
	.untagged = allflags_untagged,
	.conclude = allflags_conclude,
	.release = allflags_release,
};
