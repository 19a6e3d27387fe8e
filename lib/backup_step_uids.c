/*
 * backup_step_uids.c — planning step: which UIDs to fetch, and which saved
 * messages the server no longer has.
 *
 * The candidates are the UIDs at or above the state's UIDNEXT (every UID
 * below it that existed was saved, or was expunged), minus those saved or
 * held by the store; with --since/--before, those matching the dates.
 * Expunges are found by comparing the saved UIDs with the server's: with
 * CONDSTORE when HIGHESTMODSEQ moved, without it when the message count
 * does not add up.  When both are needed (and no dates), one listing of
 * every UID serves both.  Nothing is ever removed from the backup; the
 * state lists the expunged UIDs.
 *
 * Listing: UID SEARCH with ESEARCH ranges when offered; without ESEARCH,
 * UID FETCH n:* (UID), one small response per message, as a plain SEARCH
 * answers in one line that grows with the folder.
 */
#include <stdio.h>
#include <string.h>

#include "backup_step.h"

struct uids_step {
	bool list_all;          /* a listing of every UID (expunges) */
	bool candidates;        /* a listing from the state's UIDNEXT */
	bool with_dates;        /* the candidates' listing has criteria */
	char all_tag[16], cand_tag[16];
	struct uidset all;      /* every UID on the server */
	struct uidset found;    /* UIDs >= from that match */
};

static uint32_t from_of(const struct folder_plan *fp)
{
	return fp->state.uidnext ? fp->state.uidnext : 1;
}

static bool uids_wanted(struct folder_plan *fp, void *mine)
{
	struct uids_step *us = mine;
	const struct imap_mailbox_info *mi = &fp->server;
	const struct state_folder *sf = &fp->state;
	bool dates = backup_date_filtered(fp->c);

	if (fp->unchanged)
		return false;
	us->candidates = mi->exists != 0 &&
			 (dates || !mi->uidnext || sf->uidnext != mi->uidnext);
	if (fp->same_generation && !fp->dry_run &&
	    !uidset_empty(&sf->saved)) {
		uint64_t live = uidset_count(&sf->saved) -
				uidset_count(&sf->expunged);
		if (mi->highestmodseq && sf->highestmodseq)
			us->list_all = mi->highestmodseq != sf->highestmodseq;
		else
			/* Without MODSEQs, a message count that does not add
			 * up is the cheap sign that something was
			 * expunged. */
			us->list_all = mi->exists != live ||
				       mi->uidnext != sf->uidnext;
	}
	us->with_dates = dates && us->candidates;
	/* One listing of everything also gives the candidates. */
	if (us->list_all && !us->with_dates)
		us->candidates = false;
	return us->list_all || us->candidates;
}

/* The answers the listing command imap_uid_search_command made for these
 * criteria gets: SEARCH or ESEARCH to UID SEARCH, FETCH to UID FETCH. */
static unsigned answers(const struct folder_plan *fp, const char *criteria)
{
	if (imap_client_has_cap(fp->client, "ESEARCH") ||
	    (criteria && *criteria))
		return IMAP_UIDS_SEARCH | IMAP_UIDS_ESEARCH;
	return IMAP_UIDS_FETCH;
}

static enum isnap_status uids_send(struct folder_plan *fp, void *mine,
				   struct isnap_error *err)
{
	struct uids_step *us = mine;
	char cmd[512];
	enum isnap_status st;

	if (us->list_all) {
		uint32_t from = 1;
		/* Without ESEARCH the listing is a UID FETCH too, and the
		 * UIDs a step's FETCH already brings are taken from its
		 * answers (without CONDSTORE: every saved message's
		 * flags). */
		if (answers(fp, NULL) == IMAP_UIDS_FETCH &&
		    fp->fetched_uids_to && fp->fetched_uids_to < UINT32_MAX)
			from = fp->fetched_uids_to + 1;
		imap_uid_search_command(fp->client, from, NULL, cmd,
					sizeof cmd);
		st = plan_send(fp, cmd, us->all_tag, err);
		if (st)
			return st;
	}
	if (us->candidates) {
		imap_uid_search_command(fp->client, from_of(fp),
					fp->c->criteria, cmd, sizeof cmd);
		return plan_send(fp, cmd, us->cand_tag, err);
	}
	return ISNAP_OK;
}

static enum isnap_status uids_untagged(struct folder_plan *fp, void *mine,
				       const struct imap_response *r,
				       struct isnap_error *err)
{
	struct uids_step *us = mine;
	enum isnap_status st;

	/* With both listings in flight, an ESEARCH answer names its
	 * command; a plain SEARCH does not, and a server that sends one
	 * to both is taken at its word for both. */
	if (us->list_all) {
		st = imap_uid_search_response(&us->all, 1, answers(fp, NULL),
					      us->all_tag, r, err);
		if (st)
			return st;
	}
	if (us->candidates)
		return imap_uid_search_response(
			&us->found, from_of(fp),
			answers(fp, fp->c->criteria), us->cand_tag, r, err);
	return ISNAP_OK;
}

static int remove_set(struct uidset *from, const struct uidset *what)
{
	for (size_t i = 0; i < what->n; i++)
		if (uidset_remove_range(from, what->r[i].first,
					what->r[i].last))
			return -1;
	return 0;
}

static enum isnap_status uids_conclude(struct folder_plan *fp, void *mine,
				       struct isnap_error *err)
{
	struct uids_step *us = mine;
	const struct state_folder *sf = &fp->state;
	uint32_t from = from_of(fp);

	if (us->list_all) {
		struct uidset gone = UIDSET_INIT;
		uint64_t n;
		if (uidset_add_set(&gone, &sf->saved) ||
		    remove_set(&gone, &sf->expunged) ||
		    remove_set(&gone, &us->all) ||
		    uidset_add_set(&fp->expunged, &gone)) {
			uidset_free(&gone);
			return backup_oom(err);
		}
		n = uidset_count(&gone);
		uidset_free(&gone);
		if (n)
			plan_notice(fp,
				    "%s: %llu saved messages were expunged on "
				    "the server; their copies are kept",
				    fp->utf8, (unsigned long long)n);
		/* The candidates are in the listing of everything, unless
		 * they were listed on their own (dates). */
		if (!us->candidates && fp->server.exists &&
		    (!fp->server.uidnext || sf->uidnext != fp->server.uidnext)) {
			for (size_t i = 0; i < us->all.n; i++) {
				uint32_t a = us->all.r[i].first,
					 b = us->all.r[i].last;
				if (b < from)
					continue;
				if (uidset_add_range(&fp->todo,
						     a < from ? from : a, b))
					return backup_oom(err);
			}
		}
	}
	if (us->candidates && uidset_add_set(&fp->todo, &us->found))
		return backup_oom(err);
	if (remove_set(&fp->todo, &sf->saved) ||
	    remove_set(&fp->todo, &fp->held))
		return backup_oom(err);
	return ISNAP_OK;
}

static void uids_release(void *mine)
{
	struct uids_step *us = mine;

	uidset_free(&us->all);
	uidset_free(&us->found);
}

const struct plan_step backup_step_uids = {
	.name = "uids",
	.size = sizeof(struct uids_step),
	.wanted = uids_wanted,
	.send = uids_send,
	.untagged = uids_untagged,
	.conclude = uids_conclude,
	.release = uids_release,
};
