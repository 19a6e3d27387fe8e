/*
 * backup_fetch.h — fetching a set of UIDs of one folder into the store of
 * the session a unit runs on, and the unit that does only that.
 *
 * struct folder_fetch is the fetching itself (imap/fetch.h, with commits
 * reported to the folder's ledger entry, failures to the user and the
 * manifest), for a unit that has EXAMINEd the folder and opens it in its
 * store when EXAMINE is answered: the planning unit fetches the first
 * share of what it planned with it, on the same selection, and the
 * fetching unit (below) fetches one share.
 *
 * The fetching unit: EXAMINE (checking that UIDVALIDITY is the one
 * planned; if not, the share fails), open the folder in the store, fetch,
 * close.  A lost connection puts it back in the queue with what it did not
 * account for; the rest is committed already.  Several of one folder run
 * at once only on a store with STORE_CAP_SPLIT_FOLDER (planning decides).
 */
#ifndef IMAPSNAP_BACKUP_FETCH_H
#define IMAPSNAP_BACKUP_FETCH_H

#include "backup_ctx.h"
#include "backup_ledger.h"
#include "imap/commands.h"
#include "imap/fetch.h"
#include "scheduler.h"
#include "uidset.h"

struct folder_fetch {
	struct backup_ctx *c;
	struct ledger_folder *lf;
	const struct imap_folder *folder;
	const char *utf8;        /* borrowed from the unit */
	struct store *store;     /* the session's; the folder open in it */
	struct fetch *f;         /* NULL when not fetching */
	struct fetch_callbacks cb;
	struct fetch_stats stats;
	bool message_failed;     /* this attempt or an earlier one */
	bool discarding;         /* a literal the fetch does not get */
	struct sched_unit *u;    /* the unit fetching */
	/* The server throttled a command that could not be sent again
	 * (another unit's commands went out behind this one's): how long
	 * it asked to wait; -1: nothing deferred. */
	long deferred_ms;
};

void folder_fetch_init(struct folder_fetch *ff, struct backup_ctx *c,
		       struct ledger_folder *lf, const struct imap_folder *folder,
		       const char *utf8);

/* Send the UID FETCH commands for `uids` for unit `u` on `s` (right behind
 * its EXAMINE). */
enum isnap_status folder_fetch_start(struct folder_fetch *ff,
				     struct sched_session *s,
				     struct sched_unit *u,
				     const struct uidset *uids,
				     struct isnap_error *err);

/* What the unit's imap_owner gets, once the folder is open in the store
 * (`open` false: bodies are read and dropped). */
enum isnap_status folder_fetch_untagged(struct folder_fetch *ff,
					const struct imap_response *r,
					struct isnap_error *err);
enum isnap_status folder_fetch_literal_begin(struct folder_fetch *ff,
					     bool open,
					     const struct imap_response *partial,
					     uint64_t size, bool *stream,
					     struct isnap_error *err);
enum isnap_status folder_fetch_literal_data(struct folder_fetch *ff,
					    const char *data, size_t len,
					    struct isnap_error *err);
enum isnap_status folder_fetch_tagged(struct folder_fetch *ff,
				      uintptr_t cookie,
				      const struct imap_response *r,
				      struct isnap_error *err);
/* The UIDs the store holds already: not fetched again. */
int folder_fetch_skip(struct folder_fetch *ff, const struct uidset *held);
/* Every command sent. */
bool folder_fetch_sent(const struct folder_fetch *ff);

/* This attempt is over: commit what is complete, count it, and add to
 * `left` what it did not account for. */
enum isnap_status folder_fetch_end(struct folder_fetch *ff,
				   enum isnap_status st, struct uidset *left,
				   struct isnap_error *err);

/* After folder_fetch_end without `retrying`: if the fetch left UIDs for
 * later (a throttled command it could not send again), `left` goes to a
 * new fetching unit that starts once the server's wait is over, under
 * `uidvalidity`, and is emptied.  ISNAP_OK or ISNAP_ENOMEM. */
enum isnap_status folder_fetch_defer(struct folder_fetch *ff,
				     uint32_t uidvalidity, struct uidset *left,
				     struct isnap_error *err);

/* The unit is over for good, with `st` and the UIDs `left` unsaved: the
 * ledger is told, the user too (the folder's end or its failure), and the
 * unit's outcome returned (ISNAP_EMSG when a message failed). */
enum isnap_status folder_fetch_outcome(struct folder_fetch *ff,
				       enum isnap_status st,
				       const struct uidset *left,
				       const struct imap_mailbox_info *mi,
				       struct isnap_error *err);

/* The fetching unit for `uids` (copied) of folder `lf` with ledger entry
 * `f` and decoded name `utf8` (copied), under `uidvalidity`.  The caller
 * has announced it to the ledger (ledger_planned's units).  NULL when out
 * of memory. */
struct sched_unit *backup_fetch_unit(struct backup_ctx *c,
				     struct ledger_folder *f,
				     const struct imap_folder *lf,
				     const char *utf8, uint32_t uidvalidity,
				     const struct uidset *uids);

#endif
