/*
 * backup_internal.h — internal to backup*.c; not an interface.  What
 * the files of one backup run share: the run, its sessions, the
 * folders' records and the parts of split folders.  backup.h is the
 * interface.
 *
 *   backup.c           backup_run: state, lock, manifest, the folder
 *                      list and the first session
 *   backup_folder.c    one folder: examine, plan, flag sync, fetch, and
 *                      its state published into the run's
 *   backup_sessions.c  the caller's events, one at a time; the queue,
 *                      the sessions, reconnecting
 *   backup_parts.c     a big folder split across sessions
 */
#ifndef IMAPSNAP_BACKUP_INTERNAL_H
#define IMAPSNAP_BACKUP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backup.h"
#include "error.h"
#include "imap/client.h"
#include "imap/commands.h"
#include "imap/fetch.h"
#include "manifest.h"
#include "state.h"
#include "store/store.h"
#include "uidset.h"

/* Per-folder bookkeeping that must wait for the store to make it durable. */
struct folder_run {
	char *name;             /* server name, the state key */
	struct uidset deferred; /* saved, durable only at store finish */
	uint32_t uidnext;       /* to record once `deferred` is durable */
	bool counted;           /* in backup_summary.folders already */

	/* A folder split across sessions (struct part), guarded by
	 * run.lock: */
	unsigned parts_open;       /* parts posted and not done */
	struct uidset part_saved;  /* committed by the other sessions */
	uint32_t part_min_failed;  /* lowest UID a part did not save */
	bool part_message_failed;  /* a message of a part failed */
	struct fetch_stats part_stats; /* the other sessions' fetches */
};

struct worker;

/*
 * A share of a big folder's new messages, fetched by another session
 * while the session that examined the folder (its owner) fetches the
 * first share.  Only for Maildir, whose file names do not depend on the
 * order in which messages arrive, so that the result is the same as with
 * one session.  The owner posts the parts, takes back any no session took,
 * waits for the others, and only then moves the folder's UIDNEXT on.
 */
enum part_status { PART_WAITING, PART_TAKEN, PART_DONE };

struct part {
	const struct imap_folder *lf;
	struct folder_run *fr;
	const char *utf8;       /* the owner's, valid until the folder ends */
	uint32_t uidvalidity;
	struct uidset uids;     /* still to fetch */
	enum part_status status;
	bool owner_only;        /* given back by a session that lost it */
};

/*
 * What the sessions of a run share.  Folders are handed out from one
 * queue; each session (struct worker) examines and fetches its folder with
 * its own IMAP connection and its own store instance, on a private copy of
 * the folder's state, which it publishes into `state` (and saves) under
 * `lock` each time its store committed.  Everything below `lock` is
 * guarded by it; the caller's events are called under `ev_lock`, one at a
 * time (docs/performance.md, "Parallel sessions").
 */
struct run {
	const struct backup_opts *o;
	const struct backup_events *user_ev;
	struct backup_events events; /* user_ev's, serialised */
	const struct backup_events *ev;
	pthread_mutex_t ev_lock;
	char state_dir[4096]; /* DEST/.imapsnap, for messages */
	int state_fd;         /* it, opened (beneath.h); -1 when none */
	bool single_file; /* one complete export; no state kept */
	const char *format;
	struct manifest *manifest; /* NULL in a dry run */
	struct store *store;    /* the first store, wrapped by the manifest */
	const struct imap_folder_list *folders;
	char criteria[128]; /* SEARCH date criteria, "" for none */
	unsigned connections;   /* sessions at most */

	pthread_mutex_t lock;
	struct backup_summary *sum;
	struct state state;
	size_t n_loaded;        /* state entries read from the file */
	struct state_folder *save_view; /* scratch for save_state */
	struct folder_run *runs;
	size_t nruns;
	size_t *queue;          /* indexes into folders, in order */
	size_t nqueue, next;
	struct worker *workers; /* [connections]; [0] is the caller's thread */
	unsigned started;
	bool stop;              /* a fatal error: take no more folders */
	struct part **parts;    /* posted, not yet done */
	size_t nparts, parts_alloc;
	unsigned busy;          /* folders being backed up right now */
	pthread_cond_t changed; /* parts posted or done, a folder ended */
	enum isnap_status fatal;
	struct isnap_error fatal_err;
	enum isnap_status worst; /* ISNAP_EMSG or ISNAP_EFOLDER seen */
};

/* One session: a connection, a store, and the folder being fetched. */
struct worker {
	struct run *r;
	unsigned id;
	pthread_t thread;
	bool running;           /* a thread was started for it */
	struct imap_client *client;
	struct store *store;    /* wrapped; NULL in a dry run */
	bool session_broken; /* the server broke the protocol: reconnect */

	/* The folder being fetched. */
	const char *folder_utf8;
	struct state_folder sf; /* private copy of the folder's state */
	struct folder_run *fr;
	struct part *part;      /* when fetching another session's share */
	uint32_t min_failed;
	bool any_message_failed;
};

static inline enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static inline bool deferred_store(const struct run *r)
{
	return r->store->ops->durable_at_finish;
}

static inline bool is_fatal(enum isnap_status st)
{
	return st != ISNAP_OK && st != ISNAP_EMSG && st != ISNAP_EFOLDER;
}

/* backup.c */

/* The run's record for folder `name` (made by prepare), or NULL. */
struct folder_run *backup_find_run(struct run *r, const char *name);

/* backup_folder.c */

/* Back up one folder with w's connection and store; a connection lost
 * (ISNAP_ECONN) is for the caller to retry. */
enum isnap_status backup_folder(struct worker *w, const struct imap_folder *lf,
				struct isnap_error *err);
enum isnap_status backup_save_state_locked(struct run *r,
					   struct isnap_error *err);
void backup_sf_release(struct state_folder *sf);
enum isnap_status backup_publish_as(struct worker *w, bool save,
				    struct isnap_error *err);
void backup_count(struct run *r, const struct fetch_stats *s,
		  uint64_t planned, uint64_t flags_changed, uint64_t expunged);
void backup_add_stats(struct fetch_stats *to, const struct fetch_stats *s);
int backup_remove_set(struct uidset *from, const struct uidset *what);
/* The fetch callbacks; ctx is the worker. */
enum isnap_status backup_on_committed(void *ctx, const struct uidset *uids,
				      struct isnap_error *err);
void backup_on_message_failed(void *ctx, uint32_t uid, const char *why);
void backup_on_message_saved(void *ctx, uint32_t uid, uint64_t bytes);

/* backup_sessions.c */

void backup_notice(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void backup_warning(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void backup_serialise_events(struct run *r);
void backup_work(struct worker *w);
void backup_spawn_worker(struct run *r);
void backup_stop_run(struct run *r, enum isnap_status st,
		     const struct isnap_error *e);

/* backup_parts.c */

struct part *backup_waiting_part(struct run *r, const struct folder_run *fr,
				 bool owner);
enum isnap_status backup_post_parts(struct worker *w,
				    const struct imap_folder *lf,
				    const struct store_folder *f,
				    struct uidset *todo, bool *posted,
				    struct isnap_error *err);
enum isnap_status backup_end_parts(struct worker *w,
				   const struct fetch_callbacks *cb,
				   struct fetch_stats *stats,
				   enum isnap_status st,
				   struct isnap_error *err);
void backup_work_on_part(struct worker *w, struct part *p);

#endif
