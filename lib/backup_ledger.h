/*
 * backup_ledger.h — what a backup run knows of each folder's progress, and
 * the only way into the state (state.h, docs/state.md).
 *
 * One entry per folder, made before any unit runs, in LIST order (so that
 * the state file lists folders in the order one session reaches them,
 * whichever session reaches which first).  The units of a folder report
 * into it:
 *
 *   ledger_read          what the state says, to plan from
 *   ledger_new_generation  UIDVALIDITY changed: the old generation is kept
 *   ledger_planned       the plan: UIDVALIDITY, HIGHESTMODSEQ, the
 *                        UIDNEXT to reach, what the store already holds,
 *                        what was expunged, and how many units will fetch
 *   ledger_committed     UIDs now durable in the store (saved in the state
 *                        at once, unless the store is durable at finish)
 *   ledger_message_failed  a message not saved: UIDNEXT stays below it
 *   ledger_unit_done     a fetching unit is over, with the lowest UID it
 *                        leaves unsaved (0: none)
 *
 * A folder without MODSEQs (no CONDSTORE) also has a flag record
 * (flag_record.h): the flags each saved message had when last seen.
 * The planning reads it (ledger_flags_read), brings it up to date and
 * gives it back with the plan; from then on each message saved reports
 * its flags (ledger_message_flags), and they join the record when the
 * message is committed.  The record's file is replaced right before the
 * state each time, so it names only committed messages too; for stores
 * durable at finish it is written beside (<name>.new) when the folder is
 * done and put in place by ledger_finish.  It is in memory only while
 * the folder is being worked on.
 *
 * When the last unit of a planned folder is done, the ledger moves the
 * folder's UIDNEXT on: to the planned value, or to the lowest UID that was
 * not saved, so that the next run tries it again.  Nobody waits for anyone.
 * The state file only ever names UIDs whose messages are durable.
 *
 * The run's totals (backup_summary) are kept here too.  Thread-safe: one
 * lock for everything; the state is saved under it.
 */
#ifndef IMAPSNAP_BACKUP_LEDGER_H
#define IMAPSNAP_BACKUP_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "backup.h"
#include "error.h"
#include "flag_record.h"
#include "scheduler.h"
#include "state.h"
#include "uidset.h"

struct ledger;
struct ledger_folder;

struct ledger_opts {
	/* Where the state is saved: DEST/.imapsnap opened (beneath.h), and
	 * its name for messages; state_fd -1: never (single-file exports,
	 * dry runs). */
	int state_fd;
	const char *state_dir;
	/* The store makes commits durable only when it finishes
	 * (archives): until ledger_finish, commits are held back. */
	bool durable_at_finish;
	/* UIDNEXT never moves (a date filter left messages out on purpose;
	 * a later run without it must still find them). */
	bool keep_uidnext;
};

/* A ledger over `loaded` (what state_load read; taken over, and left
 * empty). */
enum isnap_status ledger_new(const struct ledger_opts *o, struct state *loaded,
			     struct ledger **out, struct isnap_error *err);
void ledger_free(struct ledger *l);

/* The entry of folder `name` (server name, modified UTF-7), made if the
 * state has none.  Call for every folder before the units run, in LIST
 * order.  NULL when out of memory. */
struct ledger_folder *ledger_add(struct ledger *l, const char *name,
				 char delim);
struct ledger_folder *ledger_find(struct ledger *l, const char *name);

/* A copy of the folder's state to plan from, with what this run committed
 * that is durable only at finish counted as saved.  `copy` must be empty
 * (zeroed); its name is borrowed.  Release it with ledger_release. */
enum isnap_status ledger_read(struct ledger_folder *f,
			      struct state_folder *copy,
			      struct isnap_error *err);
void ledger_release(struct state_folder *copy);

/* The folder's UIDVALIDITY changed: its current generation is kept aside
 * (the store has moved it), and the state saved. */
enum isnap_status ledger_new_generation(struct ledger_folder *f,
					struct isnap_error *err);

struct ledger_plan {
	uint32_t uidvalidity;
	uint64_t highestmodseq;    /* 0: none */
	uint32_t uidnext;          /* to record once every unit is done */
	const struct uidset *held; /* complete in the store (may be NULL) */
	const struct uidset *expunged; /* saved, gone from the server */
	unsigned units;            /* fetching units that will report */
	/* The flag record the planning brought up to date, or NULL; taken
	 * over whatever ledger_planned returns.  Without MODSEQs
	 * (highestmodseq 0) the folder keeps a record from now on: this
	 * one, or the one its file holds; with them a record read here is
	 * no longer kept, and its file goes once the state is saved. */
	struct flag_record *flags;
	bool flags_dirty;          /* it differs from its file */
};

/* The folder was planned (again, after a reconnection: a plan replaces
 * the one before, and units already open stay counted).  With no unit to
 * come, the folder is done at once. */
enum isnap_status ledger_planned(struct ledger_folder *f,
				 const struct ledger_plan *p,
				 struct isnap_error *err);

/* Units announced after the plan (a unit that gives part of its work to
 * a new one, e.g. to fetch it again). */
void ledger_more_units(struct ledger_folder *f, unsigned n);

enum isnap_status ledger_committed(struct ledger_folder *f,
				   const struct uidset *uids,
				   struct isnap_error *err);

/* The folder's flag record of generation `uidvalidity` (empty when it
 * has none), read from its file, for the planning to compare with what
 * the server says and give back with the plan.  ISNAP_EINTEGRITY when
 * the file is damaged (the message says where), ISNAP_ELOCAL,
 * ISNAP_ENOMEM. */
enum isnap_status ledger_flags_read(struct ledger_folder *f,
				    uint32_t uidvalidity,
				    struct flag_record **out,
				    struct isnap_error *err);
/* Whether the folder keeps a flag record in this run (known once it is
 * planned): its fetching then reports every message's flags. */
bool ledger_follows_flags(struct ledger_folder *f);
/* Message `uid` was saved (not committed yet) with these flags
 * (STORE_FLAG_* bits and keywords); nothing unless the folder keeps a
 * flag record.  ISNAP_OK or ISNAP_ENOMEM.  A folder whose messages come
 * with more sets of flags than a record may hold keeps none: the next
 * run says so. */
enum isnap_status ledger_message_flags(struct ledger_folder *f, uint32_t uid,
				       unsigned flags, const char *keywords,
				       struct isnap_error *err);
void ledger_message_failed(struct ledger_folder *f, uint32_t uid);

/* One fetching unit is over; `lowest_left` is the lowest UID it did not
 * save (0: it saved or accounted for everything).  *folder_done tells
 * whether it was the folder's last (may be NULL). */
enum isnap_status ledger_unit_done(struct ledger_folder *f,
				   uint32_t lowest_left, bool *folder_done,
				   struct isnap_error *err);

/* The store finished: what it made durable is saved now (stores durable
 * only at finish), and the state written. */
enum isnap_status ledger_finish(struct ledger *l, struct isnap_error *err);

/* Reconnections of this folder's units (scheduler.h). */
struct sched_retry *ledger_retry(struct ledger_folder *f);

/* The folder's name as the server has it. */
const char *ledger_name(const struct ledger_folder *f);

/* --- the run's totals ---------------------------------------------------- */

/* The first time for this folder (a folder examined again after a lost
 * connection is one folder): counts it, returns true. */
bool ledger_count_folder(struct ledger_folder *f);
void ledger_count_failed_folder(struct ledger *l);
/* Add to the run's totals (and, with `f`, to the folder's fetch totals);
 * `fetched` may be NULL. */
/* Saved messages found missing from the store and planned again. */
void ledger_count_healed(struct ledger *l, uint64_t n);
void ledger_count(struct ledger *l, struct ledger_folder *f,
		  const struct fetch_stats *fetched, uint64_t planned,
		  uint64_t flags_changed, uint64_t expunged);
/* The fetch totals of one folder so far (for its folder_end event). */
void ledger_folder_stats(struct ledger_folder *f, struct fetch_stats *out);
void ledger_summary(struct ledger *l, struct backup_summary *sum);
struct ledger *ledger_of(const struct ledger_folder *f);

#endif
