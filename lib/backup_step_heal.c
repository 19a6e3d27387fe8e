/*
 * backup_step_heal.c — planning step: messages the state says are saved
 * but the store no longer holds (a file deleted from the backup) are
 * fetched again while the server still has them.
 *
 * Only with a store whose open_folder reports everything the folder holds
 * (STORE_CAP_REPORTS_HELD: Maildir lists cur/ and new/), and then in
 * every folder, also those where nothing changed on the server: that
 * costs a directory listing per folder and no round trip (measured in
 * docs/performance.md).  A message the server expunged meanwhile is
 * counted as vanished by the fetch, as any other.
 */
#include "backup_step.h"

#include <inttypes.h>

#include "backup_ledger.h"

struct heal_step {
	uint64_t missing;
};

static bool heal_always(const struct backup_ctx *c)
{
	return (c->store_caps & STORE_CAP_REPORTS_HELD) != 0;
}

static bool heal_wanted(struct folder_plan *fp, void *mine)
{
	(void)mine;
	return fp->store && heal_always(fp->c) && fp->same_generation &&
	       !uidset_empty(&fp->state.saved);
}

/* Some saved message, neither expunged nor held, is missing. */
static bool heal_has_work(struct folder_plan *fp, void *mine)
{
	const struct uidset *saved = &fp->state.saved;

	(void)mine;
	for (size_t i = 0; i < saved->n; i++)
		for (uint64_t u = saved->r[i].first; u <= saved->r[i].last;
		     u++)
			if (!uidset_contains(&fp->state.expunged, (uint32_t)u) &&
			    !uidset_contains(&fp->held, (uint32_t)u))
				return true;
	return false;
}

static enum isnap_status heal_conclude(struct folder_plan *fp, void *mine,
				       struct isnap_error *err)
{
	struct heal_step *hs = mine;
	struct uidset lost = UIDSET_INIT;
	enum isnap_status st = ISNAP_OK;

	if (uidset_add_set(&lost, &fp->state.saved))
		st = backup_oom(err);
	for (size_t i = 0; !st && i < fp->state.expunged.n; i++)
		if (uidset_remove_range(&lost, fp->state.expunged.r[i].first,
					fp->state.expunged.r[i].last))
			st = backup_oom(err);
	for (size_t i = 0; !st && i < fp->expunged.n; i++)
		if (uidset_remove_range(&lost, fp->expunged.r[i].first,
					fp->expunged.r[i].last))
			st = backup_oom(err);
	for (size_t i = 0; !st && i < fp->held.n; i++)
		if (uidset_remove_range(&lost, fp->held.r[i].first,
					fp->held.r[i].last))
			st = backup_oom(err);
	if (!st && !uidset_empty(&lost)) {
		hs->missing = uidset_count(&lost);
		if (uidset_add_set(&fp->todo, &lost)) {
			st = backup_oom(err);
		} else {
			ledger_count_healed(fp->c->ledger, hs->missing);
			plan_notice(fp,
				    "%s: %" PRIu64 " saved message%s missing "
				    "from the backup; fetching %s again",
				    fp->utf8, hs->missing,
				    hs->missing == 1 ? " is" : "s are",
				    hs->missing == 1 ? "it" : "them");
		}
	}
	uidset_free(&lost);
	return st;
}

const struct plan_step backup_step_heal = {
	.name = "heal",
	.size = sizeof(struct heal_step),
	.always = heal_always,
	.wanted = heal_wanted,
	.has_work = heal_has_work,
	.conclude = heal_conclude,
};
