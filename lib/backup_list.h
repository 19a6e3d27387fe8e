/*
 * backup_list.h — the unit that starts a backup run on its first session:
 * LIST, a ledger entry for every folder (in LIST order), and a planning
 * unit (backup_plan.h) for every folder selected; folders that cannot be
 * backed up at all (a name with NUL, one that would share another's place
 * in the backup) fail here, one by one.
 */
#ifndef IMAPSNAP_BACKUP_LIST_H
#define IMAPSNAP_BACKUP_LIST_H

#include "backup_ctx.h"
#include "scheduler.h"

/* NULL when out of memory. */
struct sched_unit *backup_list_unit(struct backup_ctx *c);

#endif
