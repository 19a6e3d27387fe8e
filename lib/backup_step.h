/*
 * backup_step.h — what a step of planning a folder sees and may do
 * (backup_plan.h has the planning unit that runs the steps).
 *
 * Adding a step: one file with a `const struct plan_step`, listed in
 * backup_steps.c (the order there is the order of `conclude`).  What a
 * step may rely on and do:
 *
 *   wanted    after EXAMINE (or before it, from the folder's STATUS,
 *             which EXAMINE then confirms): fp->server, fp->state (the
 *             state's copy, empty after a new generation),
 *             fp->unchanged; decide whether to run here.  Nothing sent
 *             yet, and fp->held is not known yet.
 *   has_work  see below (steps with `always` only).
 *   send      plan_send() the commands it needs.  A command may depend on
 *             the state and on EXAMINE's answer, never on another
 *             command's answer: that would cost a round trip per folder.
 *             Use ranges (UID FETCH 1:* ...) instead.
 *   untagged  every untagged answer to the plan's commands, its own and
 *             the other steps' (EXISTS, FETCH, ESEARCH, ...).  The folder
 *             is open in the store (fp->store, NULL in a dry run).
 *   tagged    its own commands' tagged answers (NULL: anything but OK
 *             fails the folder with the server's words).
 *   conclude  all answers in, in table order: add to or take from
 *             fp->todo, add to fp->expunged, count, tell the user.
 *   release   free what the step allocated in its private data.
 *
 * Private data: `size` bytes, zeroed, per folder, passed as `mine`.
 */
#ifndef IMAPSNAP_BACKUP_STEP_H
#define IMAPSNAP_BACKUP_STEP_H

#include <stdbool.h>
#include <stdint.h>

#include "backup_ctx.h"
#include "backup_ledger.h"
#include "flag_record.h"
#include "imap/commands.h"
#include "scheduler.h"
#include "state.h"
#include "store/store.h"
#include "uidset.h"

struct folder_plan {
	struct backup_ctx *c;
	struct ledger_folder *lf;
	const struct imap_folder *folder; /* name, delimiter, special use */
	const char *utf8;                 /* decoded name, for messages */
	struct imap_client *client;       /* capabilities, quoting */
	struct store *store;              /* folder open; NULL: dry run */
	bool dry_run;

	struct imap_mailbox_info server;  /* EXAMINE's answer */
	struct state_folder state;        /* what the state says */
	bool same_generation;             /* state's UIDVALIDITY is server's */
	bool unchanged;                   /* nothing changed since */
	struct uidset held;               /* complete in the store already */

	/* What the steps work out: */
	struct uidset todo;               /* UIDs to fetch */
	struct uidset expunged;           /* saved, now gone from the server */
	uint64_t flags_changed;           /* saved messages whose flags moved */
	/* Saved messages whose flags were recorded for the first time
	 * (written to the store, not counted as changed). */
	uint64_t flags_recorded;
	/* The folder's flag record a step compared and brought up to date,
	 * for the ledger (ledger_plan.flags); freed with the plan. */
	struct flag_record *flag_record;
	bool flag_record_dirty;
	uint64_t copies_skipped;          /* Gmail: saved from another folder */
	/* Every UID up to this one that the server has comes back in a
	 * FETCH answer to a step's command (UID FETCH 1:N (UID FLAGS)), so
	 * that a listing by UID FETCH need not ask for those again; 0 for
	 * none.  Set in `send`, read by the steps after. */
	uint32_t fetched_uids_to;
	/* The lowest UID left for a later run (budget), 0 for none: the
	 * folder's UIDNEXT does not move past it. */
	uint32_t uidnext_cap;

	/* The planning unit's: */
	struct sched_session *s;
	struct sched_unit *u;
	unsigned step;                    /* the step sending, for plan_send */
	unsigned step_cmds;               /* steps' commands not answered */
};

/* The cookies of the steps' commands: PLAN_STEP_COOKIE + the step's
 * index in backup_plan_steps. */
#define PLAN_STEP_COOKIE 16

struct plan_step {
	const char *name;
	size_t size;
	/* Also in folders where nothing changed (fp->unchanged), when the
	 * run's options ask for it. */
	bool (*always)(const struct backup_ctx *c);
	bool (*wanted)(struct folder_plan *fp, void *mine);
	/* For a step with `always`, in a folder where nothing changed on
	 * the server (known from STATUS, before any EXAMINE), wanted, with
	 * the folder open in the store (fp->held) and nothing sent: whether
	 * it has work there after all.  No side effects.  NULL: it has
	 * whenever wanted (the folder is then planned as usual). */
	bool (*has_work)(struct folder_plan *fp, void *mine);
	enum isnap_status (*send)(struct folder_plan *fp, void *mine,
				  struct isnap_error *err);
	enum isnap_status (*untagged)(struct folder_plan *fp, void *mine,
				      const struct imap_response *r,
				      struct isnap_error *err);
	enum isnap_status (*tagged)(struct folder_plan *fp, void *mine,
				    const struct imap_response *r,
				    struct isnap_error *err);
	enum isnap_status (*conclude)(struct folder_plan *fp, void *mine,
				      struct isnap_error *err);
	void (*release)(void *mine);
};

/* The steps, in the order they conclude (backup_steps.c). */
extern const struct plan_step *const backup_plan_steps[];

/* For steps: send `command` now, for the step being asked to send; its
 * tag (for an ESEARCH correlator) into `tag` when not NULL. */
enum isnap_status plan_send(struct folder_plan *fp, const char *command,
			    char tag[16], struct isnap_error *err);

/* For steps that ask UID FETCH <range> (UID <item>) in the planning
 * burst: the (UID, value) pairs of the answers, in the order they came.
 * uid_values_take ignores responses that are not FETCH, or lack the UID
 * or a number for `item` (another step's answers); when memory runs out
 * it sets `oom` (check it in conclude). */
struct uid_value {
	uint32_t uid;
	uint64_t value;
};
struct uid_values {
	struct uid_value *v;
	size_t n, cap;
	bool oom;
};
void uid_values_take(struct uid_values *uv, const struct imap_response *r,
		     const char *item);
void uid_values_free(struct uid_values *uv);

/* For steps: a line for the user that is not a failure. */
void plan_notice(struct folder_plan *fp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
