/*
 * backup_ctx.h — what the units of one backup run share: the options, the
 * ledger, the scheduler, the caller's events and what the store can do.
 * Set up by backup.c before the first unit runs and read-only after that
 * (the ledger and the scheduler lock themselves; the folder list is
 * written once, by the listing unit, before any folder's unit exists).
 *
 * Each session's store (wrapped by the manifest; NULL in a dry run) is
 * its sched_session_data.
 */
#ifndef IMAPSNAP_BACKUP_CTX_H
#define IMAPSNAP_BACKUP_CTX_H

#include <stdbool.h>

#include "backup.h"
#include "backup_ledger.h"
#include "budget.h"
#include "gmail_index.h"
#include "imap/commands.h"
#include "manifest.h"
#include "scheduler.h"
#include "store/store.h"

struct backup_ctx {
	const struct backup_opts *o;
	const struct backup_events *ev; /* serialised; fields may be NULL */
	struct ledger *ledger;
	struct sched *sched;
	struct manifest *manifest;      /* NULL in a dry run */
	const char *format;
	unsigned store_caps;            /* STORE_CAP_* */
	unsigned sessions;              /* at most */
	char criteria[128];             /* SEARCH date criteria, "" if none */
	struct imap_folder_list folders; /* the listing unit's */
	/* The server offers CONDSTORE (the listing unit's, from the first
	 * session's capabilities): without it, flags are followed by
	 * fetching every saved message's (backup_step_allflags.c). */
	bool condstore;
	/* Gmail messages held or claimed, by X-GM-MSGID (gmail_index.h);
	 * NULL for single-file exports and dry runs' ... see backup.c. */
	struct gmail_index *gmail;
	struct budget *budget;          /* NULL: no --max-messages/-bytes */
};

static inline bool backup_date_filtered(const struct backup_ctx *c)
{
	return c->o->since || c->o->before;
}

static inline struct store *backup_store_of(const struct sched_session *s)
{
	return (struct store *)sched_session_data(s);
}

static inline enum isnap_status backup_oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static inline bool backup_is_fatal(enum isnap_status st)
{
	return st != ISNAP_OK && st != ISNAP_EMSG && st != ISNAP_EFOLDER;
}

#endif
