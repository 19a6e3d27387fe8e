/*
 * backup_plan.h — planning one folder: the unit that does it, and the
 * steps it is made of.
 *
 * The planning unit of a folder sends EXAMINE; when it is answered, it
 * starts a new generation if UIDVALIDITY changed (the store moves the old
 * copy aside, the ledger keeps it), opens the folder in the store (which
 * says what it already holds), and asks each step whether it has work in
 * this folder.  The steps that do send their commands at once, all in one
 * burst after EXAMINE; every untagged answer goes to every such step (each
 * takes what it understands).  When the last answer is in, each step
 * concludes, in the order of the table, adjusting the plan (what to
 * fetch, what was expunged); then the folder is closed in the store, the
 * plan goes to the ledger, and the UIDs to fetch become fetching units
 * (backup_fetch.h): one, or one per share of a big folder when the store
 * can take several writers on one folder (STORE_CAP_SPLIT_FOLDER).
 *
 * A folder where nothing changed since the last run (same UIDVALIDITY and
 * UIDNEXT, and the same HIGHESTMODSEQ or, without CONDSTORE, the same
 * number of messages) costs its EXAMINE and nothing else: no step runs,
 * unless one asks to run even then (`always`).  When the folder's STATUS
 * says so before (backup_plan_skip), it costs nothing at all.
 *
 * The steps are described in backup_step.h.
 */
#ifndef IMAPSNAP_BACKUP_PLAN_H
#define IMAPSNAP_BACKUP_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "backup_ctx.h"
#include "backup_ledger.h"
#include "imap/commands.h"
#include "scheduler.h"

/* The unit planning folder `lf` (a LIST entry of c->folders) with its
 * ledger entry `f` and decoded name `utf8` (copied).  `prior`, when not
 * NULL, is what the folder's STATUS said (uidvalidity, uidnext, exists:
 * MESSAGES, highestmodseq with CONDSTORE): the unit then sends its
 * steps' commands together with EXAMINE, and replans the folder if
 * EXAMINE says otherwise.  NULL when out of memory. */
struct sched_unit *backup_plan_unit(struct backup_ctx *c,
				    struct ledger_folder *f,
				    const struct imap_folder *lf,
				    const char *utf8,
				    const struct imap_mailbox_info *prior);

/* Before any unit runs, with the store of session `s` free: is there
 * nothing to do in folder `lf` given its STATUS `prior` (nothing changed
 * since the last run, and no step with `always` has work there, e.g. no
 * saved message missing from the store)?  Then it is accounted for as a
 * folder where nothing changed (counted, recorded in the manifest, told
 * to the caller) and *skipped is set: it needs no unit and no round
 * trip.  Never in a dry run. */
enum isnap_status backup_plan_skip(struct backup_ctx *c,
				   struct sched_session *s,
				   struct ledger_folder *f,
				   const struct imap_folder *lf,
				   const char *utf8,
				   const struct imap_mailbox_info *prior,
				   bool *skipped, struct isnap_error *err);

#endif
