/*
 * backup_steps.c — the steps of planning a folder (backup_plan.h), in the
 * order they conclude: flags first (they concern what is saved: with
 * CONDSTORE the changes, without it every saved message's), then the
 * UIDs to fetch, and after that whatever narrows or widens that set
 * (saved messages the store lost, fetched again; Gmail: the copies
 * already saved from another folder; the budget, last, on all of it).
 */
#include "backup_step.h"

extern const struct plan_step backup_step_flags;
extern const struct plan_step backup_step_allflags;
extern const struct plan_step backup_step_uids;
extern const struct plan_step backup_step_heal;
extern const struct plan_step backup_step_gmail;
extern const struct plan_step backup_step_budget;

const struct plan_step *const backup_plan_steps[] = {
	&backup_step_flags,
	&backup_step_allflags,
	&backup_step_uids,
	&backup_step_heal,
	&backup_step_gmail,
	&backup_step_budget,
	NULL,
};
