/* backup.c — see backup.h. */
#include "backup.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "imap/client.h"
#include "imap/commands.h"
#include "lock.h"
#include "manifest.h"
#include "mutf7.h"
#include "state.h"
#include "store/store.h"
#include "version.h"

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

/* A folder is split when it has this many messages to fetch for each
 * session it could use, at least two. */
#define PART_MIN 500

/* A session opens another only when it is about to fetch at least this
 * many messages: fewer take it less time (0.06 s at the 4,300 messages/s
 * of docs/performance.md) than a login over TLS through a 20 ms link
 * costs, and it will reach the next folders soon enough itself. */
#define SPAWN_MIN 250

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
	char state_dir[4096];
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

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static void notice(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(struct run *r, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!r->ev || !r->ev->notice)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	r->ev->notice(r->ev->ctx, buf);
}

static void warning(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warning(struct run *r, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!r->ev || !r->ev->warning)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	r->ev->warning(r->ev->ctx, buf);
}

/* --- the caller's events, one at a time -------------------------------- */

#define EV_BEGIN(ctx)                                    \
	struct run *r = ctx;                             \
	const struct backup_events *u = r->user_ev;      \
	pthread_mutex_lock(&r->ev_lock)
#define EV_END() pthread_mutex_unlock(&r->ev_lock)

static void ev_folder_begin(void *ctx, const char *folder, uint64_t messages,
			    uint64_t already_saved)
{
	EV_BEGIN(ctx);
	u->folder_begin(u->ctx, folder, messages, already_saved);
	EV_END();
}

static void ev_folder_end(void *ctx, const char *folder,
			  const struct fetch_stats *stats)
{
	EV_BEGIN(ctx);
	u->folder_end(u->ctx, folder, stats);
	EV_END();
}

static void ev_folder_failed(void *ctx, const char *folder,
			     const struct isnap_error *err)
{
	EV_BEGIN(ctx);
	u->folder_failed(u->ctx, folder, err);
	EV_END();
}

static void ev_message_failed(void *ctx, const char *folder, uint32_t uid,
			      const char *why)
{
	EV_BEGIN(ctx);
	u->message_failed(u->ctx, folder, uid, why);
	EV_END();
}

static void ev_message_saved(void *ctx, const char *folder, uint32_t uid,
			     uint64_t bytes)
{
	EV_BEGIN(ctx);
	u->message_saved(u->ctx, folder, uid, bytes);
	EV_END();
}

static void ev_folder_planned(void *ctx, const char *folder,
			      uint64_t messages, uint64_t bytes)
{
	EV_BEGIN(ctx);
	u->folder_planned(u->ctx, folder, messages, bytes);
	EV_END();
}

static void ev_warning(void *ctx, const char *text)
{
	EV_BEGIN(ctx);
	u->warning(u->ctx, text);
	EV_END();
}

static void ev_notice(void *ctx, const char *text)
{
	EV_BEGIN(ctx);
	u->notice(u->ctx, text);
	EV_END();
}

/* The events the sessions call: the caller's, never two at once. */
static void serialise_events(struct run *r)
{
	const struct backup_events *u = r->user_ev;

	r->ev = NULL;
	if (!u)
		return;
	r->events = (struct backup_events){
		.ctx = r,
		.folder_begin = u->folder_begin ? ev_folder_begin : NULL,
		.folder_end = u->folder_end ? ev_folder_end : NULL,
		.folder_failed = u->folder_failed ? ev_folder_failed : NULL,
		.message_failed = u->message_failed ? ev_message_failed : NULL,
		.message_saved = u->message_saved ? ev_message_saved : NULL,
		.folder_planned = u->folder_planned ? ev_folder_planned : NULL,
		.warning = u->warning ? ev_warning : NULL,
		.notice = u->notice ? ev_notice : NULL,
	};
	r->ev = &r->events;
}

/* --- the shared state -------------------------------------------------- */

static bool deferred_store(const struct run *r)
{
	return r->store->ops->durable_at_finish;
}

/* An entry this run made for a folder it never got to examine: as if
 * absent, and not written, so that the file is the same whichever
 * session reached which folder first. */
static bool never_examined(const struct run *r, size_t i)
{
	const struct state_folder *f = &r->state.folders[i];

	return i >= r->n_loaded && !f->uidvalidity && !f->uidnext &&
	       !f->highestmodseq && uidset_empty(&f->saved) &&
	       uidset_empty(&f->expunged) && !f->n_old;
}

/* With r->lock held. */
static enum isnap_status save_state_locked(struct run *r,
					   struct isnap_error *err)
{
	struct state view = { r->state.folders, r->state.n, r->state.n };

	if (r->single_file)
		return ISNAP_OK;
	if (r->save_view) { /* room for every entry, made before the run */
		view.folders = r->save_view;
		view.n = 0;
		for (size_t i = 0; i < r->state.n; i++)
			if (!never_examined(r, i))
				view.folders[view.n++] = r->state.folders[i];
		view.alloc = view.n;
	}
	return state_save(r->state_dir, &view, err);
}

/* Make `to` a copy of `from` (the name is borrowed, never freed by a
 * worker's copy).  Returns 0 or -1 (out of memory). */
static int sf_copy(struct state_folder *to, const struct state_folder *from)
{
	uint32_t *old = NULL;

	if (from->n_old) {
		old = malloc(from->n_old * sizeof *old);
		if (!old)
			return -1;
		memcpy(old, from->old_uidvalidity, from->n_old * sizeof *old);
	}
	uidset_clear(&to->saved);
	uidset_clear(&to->expunged);
	if (uidset_add_set(&to->saved, &from->saved) ||
	    uidset_add_set(&to->expunged, &from->expunged)) {
		free(old);
		return -1;
	}
	free(to->old_uidvalidity);
	to->old_uidvalidity = old;
	to->n_old = from->n_old;
	to->name = from->name;
	to->delim = from->delim;
	to->uidvalidity = from->uidvalidity;
	to->uidnext = from->uidnext;
	to->highestmodseq = from->highestmodseq;
	return 0;
}

static void sf_release(struct state_folder *sf)
{
	uidset_free(&sf->saved);
	uidset_free(&sf->expunged);
	free(sf->old_uidvalidity);
	memset(sf, 0, sizeof *sf);
}

/* The worker's copy of its folder's state becomes the run's, and the
 * state file is saved (unless !save: archives, whose state is saved once
 * the volume is complete). */
static enum isnap_status publish_as(struct worker *w, bool save,
				    struct isnap_error *err)
{
	struct run *r = w->r;
	struct state_folder *sf;
	enum isnap_status st;

	pthread_mutex_lock(&r->lock);
	sf = state_folder(&r->state, w->sf.name, 0);
	if (!sf) {
		st = isnap_fail(err, ISNAP_ELOCAL, "state: %s vanished",
				w->sf.name);
	} else {
		char *name = sf->name;
		/* What other sessions committed of this folder's parts. */
		if (w->fr && uidset_add_set(&w->sf.saved, &w->fr->part_saved)) {
			st = oom(err);
		} else if (sf_copy(sf, &w->sf)) {
			st = oom(err);
		} else {
			sf->name = name;
			st = save ? save_state_locked(r, err) : ISNAP_OK;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return st;
}

static enum isnap_status publish(struct worker *w, struct isnap_error *err)
{
	return publish_as(w, true, err);
}

static void add_stats(struct fetch_stats *to, const struct fetch_stats *s);

/* Add to the run's totals. */
static void count(struct run *r, const struct fetch_stats *s,
		  uint64_t planned, uint64_t flags_changed, uint64_t expunged)
{
	pthread_mutex_lock(&r->lock);
	if (s)
		add_stats(&r->sum->fetch, s);
	r->sum->planned += planned;
	r->sum->flags_changed += flags_changed;
	r->sum->expunged += expunged;
	pthread_mutex_unlock(&r->lock);
}

/* fetch callbacks */

/* A session fetching a part: its commits go straight into the run's state
 * (the owner's copy takes them in at its next publish). */
static enum isnap_status part_committed(struct worker *w,
					const struct uidset *uids,
					struct isnap_error *err)
{
	struct run *r = w->r;
	struct state_folder *sf;
	enum isnap_status st;

	pthread_mutex_lock(&r->lock);
	sf = state_folder(&r->state, w->part->lf->name, 0);
	if (!sf)
		st = isnap_fail(err, ISNAP_ELOCAL, "state: %s vanished",
				w->part->lf->name);
	else if (uidset_add_set(&w->fr->part_saved, uids) ||
		 uidset_add_set(&sf->saved, uids))
		st = oom(err);
	else
		st = save_state_locked(r, err);
	pthread_mutex_unlock(&r->lock);
	return st;
}

static enum isnap_status on_committed(void *ctx, const struct uidset *uids,
				      struct isnap_error *err)
{
	struct worker *w = ctx;
	struct run *r = w->r;

	if (w->part)
		return part_committed(w, uids, err);
	if (deferred_store(r)) {
		int rc;
		pthread_mutex_lock(&r->lock);
		rc = uidset_add_set(&w->fr->deferred, uids);
		pthread_mutex_unlock(&r->lock);
		return rc ? oom(err) : ISNAP_OK;
	}
	if (uidset_add_set(&w->sf.saved, uids))
		return oom(err);
	return publish(w, err);
}

static void on_message_failed(void *ctx, uint32_t uid, const char *why)
{
	struct worker *w = ctx;
	struct run *r = w->r;

	if (w->part) {
		pthread_mutex_lock(&r->lock);
		w->fr->part_message_failed = true;
		if (!w->fr->part_min_failed || uid < w->fr->part_min_failed)
			w->fr->part_min_failed = uid;
		pthread_mutex_unlock(&r->lock);
	} else {
		w->any_message_failed = true;
		if (!w->min_failed || uid < w->min_failed)
			w->min_failed = uid;
	}
	if (w->store && r->manifest)
		manifest_store_skipped(w->store, NULL, uid, why);
	if (r->ev && r->ev->message_failed)
		r->ev->message_failed(r->ev->ctx, w->folder_utf8, uid, why);
}

static void on_message_saved(void *ctx, uint32_t uid, uint64_t bytes)
{
	struct worker *w = ctx;
	struct run *r = w->r;

	if (r->ev && r->ev->message_saved)
		r->ev->message_saved(r->ev->ctx, w->folder_utf8, uid, bytes);
}

static void add_stats(struct fetch_stats *to, const struct fetch_stats *s)
{
	to->saved += s->saved;
	to->bytes += s->bytes;
	to->failed += s->failed;
	to->vanished += s->vanished;
	to->unexpected += s->unexpected;
	to->size_mismatch += s->size_mismatch;
}

/* The run's record for folder `name`, created on first use (a folder
 * retried after a lost connection keeps its record). */
static struct folder_run *folder_run(struct run *r, const char *name)
{
	struct folder_run *v;

	for (size_t i = 0; i < r->nruns; i++)
		if (!strcmp(r->runs[i].name, name))
			return &r->runs[i];
	v = realloc(r->runs, (r->nruns + 1) * sizeof *r->runs);
	if (!v)
		return NULL;
	r->runs = v;
	v = &r->runs[r->nruns];
	memset(v, 0, sizeof *v);
	if (!(v->name = strdup(name)))
		return NULL;
	r->nruns++;
	return v;
}

static bool date_filtered(const struct run *r)
{
	return r->o->since || r->o->before;
}

static bool glob_any(const char *const *globs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(globs[i], name, 0) == 0)
			return true;
	return false;
}

static bool selected(const struct backup_opts *o, const char *name)
{
	if (glob_any(o->exclude, o->n_exclude, name))
		return false;
	return o->n_include == 0 || glob_any(o->include, o->n_include, name);
}

/* "SINCE 1-Feb-2024 BEFORE 1-Mar-2024": IMAP compares dates, not times. */
static void date_criteria(const struct backup_opts *o, char *buf, size_t size)
{
	static const char *const mon[12] = { "Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec" };
	size_t n = 0;
	struct tm tm;

	buf[0] = '\0';
	if (o->since) {
		time_t t = (time_t)o->since;
		gmtime_r(&t, &tm);
		n += (size_t)snprintf(buf + n, size - n, "SINCE %d-%s-%d",
				      tm.tm_mday, mon[tm.tm_mon],
				      tm.tm_year + 1900);
	}
	if (o->before && n < size) {
		time_t t = (time_t)o->before;
		gmtime_r(&t, &tm);
		snprintf(buf + n, size - n, "%sBEFORE %d-%s-%d", n ? " " : "",
			 tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900);
	}
}

static int remove_set(struct uidset *from, const struct uidset *what)
{
	for (size_t i = 0; i < what->n; i++)
		if (uidset_remove_range(from, what->r[i].first,
					what->r[i].last))
			return -1;
	return 0;
}

/* A name that is not valid modified UTF-7 is kept raw; it must not land
 * where another folder's decoded name does ("Entw\xfcrfe" sent as 8-bit
 * beside "Entw&APw-rfe"), or two folders would share one directory. */
static bool raw_name_collides(const struct run *r, const char *raw)
{
	for (size_t i = 0; i < r->folders->n; i++) {
		const char *other = r->folders->v[i].name;
		char *dec;
		bool same;
		if (!strcmp(other, raw) ||
		    mutf7_decode(other, strlen(other), &dec) < 0)
			continue;
		same = !strcmp(dec, raw);
		free(dec);
		if (same)
			return true;
	}
	return false;
}

/* The UIDs of `f` to fetch: those at or above the scanned-up-to point that
 * are not saved.  Empty without a round trip when nothing changed. */
static enum isnap_status plan(struct worker *w,
			      const struct imap_mailbox_info *mi,
			      struct state_folder *sf, struct uidset *todo,
			      struct isnap_error *err)
{
	struct run *r = w->r;
	enum isnap_status st;

	if (mi->exists == 0)
		return ISNAP_OK;
	if (!date_filtered(r) && mi->uidnext && sf->uidnext == mi->uidnext)
		return ISNAP_OK;
	st = imap_uid_search(w->client, sf->uidnext, r->criteria, todo, err);
	if (st)
		return st;
	for (size_t i = 0; i < sf->saved.n; i++)
		if (uidset_remove_range(todo, sf->saved.r[i].first,
					sf->saved.r[i].last))
			return oom(err);
	/* Archives: saved earlier in this run, durable at finish.  (One
	 * session: nobody else changes `deferred`.) */
	if (w->fr)
		for (size_t i = 0; i < w->fr->deferred.n; i++)
			if (uidset_remove_range(todo,
						w->fr->deferred.r[i].first,
						w->fr->deferred.r[i].last))
				return oom(err);
	return ISNAP_OK;
}

struct flag_sync {
	struct worker *w;
	struct state_folder *sf;
	uint64_t changed;
};

static enum isnap_status on_flags_changed(void *ctx, uint32_t uid,
					  const struct imap_arg *flags,
					  uint64_t modseq,
					  struct isnap_error *err)
{
	struct flag_sync *fs = ctx;
	struct store *s = fs->w->store;
	char keywords[4096];
	struct store_message m = {
		.uid = uid,
		.keywords = keywords,
		.internaldate = STORE_NO_DATE,
		.rfc822_size = STORE_NO_SIZE,
		.modseq = modseq,
	};
	enum isnap_status st;

	if (!uidset_contains(&fs->sf->saved, uid))
		return ISNAP_OK; /* not saved yet: the fetch brings it */
	fetch_parse_flags(flags, &m.flags, keywords, sizeof keywords);
	fs->changed++;
	if (!s->ops->update_flags)
		return ISNAP_OK;
	st = s->ops->update_flags(s, &m, err);
	if (st == ISNAP_EMSG) {
		/* The copy is not where the store expects it; verify reports
		 * that, and the flags are only a label on it. */
		notice(fs->w->r, "%s: UID %u: flags not updated: %s",
		       fs->w->folder_utf8, uid, err->msg);
		return ISNAP_OK;
	}
	return st;
}

/* What happened since the last run to messages already saved: new flags
 * (CONDSTORE CHANGEDSINCE) and expunges (a UID set comparison).  Nothing is
 * ever removed from the backup; expunges are recorded in the state. */
static enum isnap_status sync_changes(struct worker *w,
				      const struct imap_mailbox_info *mi,
				      struct state_folder *sf,
				      struct isnap_error *err)
{
	struct run *r = w->r;
	uint64_t live = uidset_count(&sf->saved) - uidset_count(&sf->expunged);
	bool condstore = mi->highestmodseq && sf->highestmodseq;
	bool look_for_expunges;
	enum isnap_status st;

	if (uidset_empty(&sf->saved))
		return ISNAP_OK;
	if (condstore) {
		struct flag_sync fs = { w, sf, 0 };
		if (mi->highestmodseq == sf->highestmodseq)
			return ISNAP_OK;
		st = imap_uid_changed_flags(w->client, sf->uidnext,
					    sf->highestmodseq,
					    on_flags_changed, &fs, err);
		if (st)
			return st;
		count(r, NULL, 0, fs.changed, 0);
		look_for_expunges = true;
	} else {
		/* Without MODSEQs, a message count that does not add up is
		 * the cheap sign that something was expunged. */
		look_for_expunges = mi->exists != live ||
				    mi->uidnext != sf->uidnext;
	}
	if (look_for_expunges) {
		struct uidset on_server = UIDSET_INIT, gone = UIDSET_INIT;
		uint64_t n;
		st = imap_uid_search(w->client, 1, NULL, &on_server, err);
		if (!st && (uidset_add_set(&gone, &sf->saved) ||
			    remove_set(&gone, &sf->expunged) ||
			    remove_set(&gone, &on_server) ||
			    uidset_add_set(&sf->expunged, &gone)))
			st = oom(err);
		n = uidset_count(&gone);
		if (!st && n) {
			count(r, NULL, 0, 0, n);
			notice(r,
			       "%s: %llu saved messages were expunged on the "
			       "server; their copies are kept",
			       w->folder_utf8, (unsigned long long)n);
		}
		uidset_free(&on_server);
		uidset_free(&gone);
		if (st)
			return st;
	}
	return ISNAP_OK;
}

/* A folder whose UIDVALIDITY changed: keep the old copy, start anew. */
static enum isnap_status new_generation(struct worker *w,
					const struct store_folder *f,
					struct state_folder *sf,
					struct isnap_error *err)
{
	uint32_t old = sf->uidvalidity;
	enum isnap_status st;

	st = w->store->ops->retire_generation(w->store, f, old, err);
	if (st)
		return st;
	if (state_folder_retire(sf))
		return oom(err);
	notice(w->r,
	       "%s: UIDVALIDITY changed from %u to %u; the old copy is kept "
	       "as generation %u and the folder is fetched again",
	       f->utf8, old, f->uidvalidity, old);
	return ISNAP_OK;
}

/* --dry-run: what backup_folder would fetch, and nothing written. */
static enum isnap_status dry_run_folder(struct worker *w,
					const struct store_folder *f,
					const struct imap_mailbox_info *mi,
					struct state_folder *sf,
					struct isnap_error *err)
{
	struct run *r = w->r;
	struct state_folder fresh = { .name = sf->name };
	struct uidset todo = UIDSET_INIT;
	uint64_t bytes = 0;
	enum isnap_status st;

	if (sf->uidvalidity && sf->uidvalidity != mi->uidvalidity)
		notice(r,
		       "%s: UIDVALIDITY changed from %u to %u; the old copy "
		       "would be kept aside and the folder fetched again",
		       f->utf8, sf->uidvalidity, mi->uidvalidity);
	if (sf->uidvalidity != mi->uidvalidity)
		sf = &fresh;
	st = plan(w, mi, sf, &todo, err);
	if (!st && !uidset_empty(&todo))
		st = imap_uid_total_size(w->client, &todo, &bytes, err);
	if (!st) {
		count(r, NULL, uidset_count(&todo), 0, 0);
		if (r->ev && r->ev->folder_planned)
			r->ev->folder_planned(r->ev->ctx, f->utf8,
					      uidset_count(&todo), bytes);
	}
	uidset_free(&todo);
	return st;
}

static struct folder_run *find_run(struct run *r, const char *name)
{
	for (size_t i = 0; i < r->nruns; i++)
		if (!strcmp(r->runs[i].name, name))
			return &r->runs[i];
	return NULL;
}

static void spawn_worker(struct run *r);

/* ---------------------------------------------------------------------- */
/* Folders split across sessions (struct part)                             */

/* Add to `out` the UIDs of `from` at positions [skip, skip + n), in
 * ascending order.  Returns 0 or -1 (out of memory). */
static int uidset_slice(const struct uidset *from, uint64_t skip, uint64_t n,
			struct uidset *out)
{
	for (size_t i = 0; i < from->n && n; i++) {
		uint64_t len = (uint64_t)from->r[i].last - from->r[i].first + 1;
		uint64_t take;
		uint32_t first;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		first = from->r[i].first + (uint32_t)skip;
		take = len - skip < n ? len - skip : n;
		if (uidset_add_range(out, first, first + (uint32_t)(take - 1)))
			return -1;
		n -= take;
		skip = 0;
	}
	return 0;
}

/* With r->lock held: a part of `fr` waiting for a session (owner_only ones
 * too when `owner`), or NULL. */
static struct part *waiting_part(struct run *r, const struct folder_run *fr,
				 bool owner)
{
	for (size_t i = 0; i < r->nparts; i++) {
		struct part *p = r->parts[i];
		if (p->status == PART_WAITING && (!fr || p->fr == fr) &&
		    (owner || !p->owner_only))
			return p;
	}
	return NULL;
}

/* When `todo` is big enough, leave its first share in it and post the
 * others as parts of the folder for other sessions (and start those). */
static enum isnap_status post_parts(struct worker *w,
				    const struct imap_folder *lf,
				    const struct store_folder *f,
				    struct uidset *todo, bool *posted,
				    struct isnap_error *err)
{
	struct run *r = w->r;
	uint64_t n = uidset_count(todo), share;
	unsigned k = r->connections;
	struct part *p[BACKUP_CONNECTIONS_MAX] = { NULL };
	struct uidset mine = UIDSET_INIT;
	enum isnap_status st;

	*posted = false;
	if (k < 2 || strcmp(r->format, "maildir") || r->o->dry_run ||
	    n < 2 * PART_MIN)
		return ISNAP_OK;
	if (n / PART_MIN < k)
		k = (unsigned)(n / PART_MIN);
	share = (n + k - 1) / k;
	/* Other sessions record UIDs in the run's state directly: it must
	 * name this UIDVALIDITY (and what this session knows) first. */
	st = publish_as(w, false, err);
	if (st)
		return st;
	st = uidset_slice(todo, 0, share, &mine) ? oom(err) : ISNAP_OK;
	for (unsigned i = 1; i < k && !st; i++) {
		if (!(p[i] = calloc(1, sizeof *p[i])) ||
		    uidset_slice(todo, i * share, share, &p[i]->uids))
			st = oom(err);
		else {
			p[i]->lf = lf;
			p[i]->fr = w->fr;
			p[i]->utf8 = f->utf8;
			p[i]->uidvalidity = f->uidvalidity;
		}
	}
	pthread_mutex_lock(&r->lock);
	if (!st && r->nparts + k > r->parts_alloc) {
		size_t alloc = r->nparts + k + 8;
		struct part **v = realloc(r->parts, alloc * sizeof *v);
		if (v) {
			r->parts = v;
			r->parts_alloc = alloc;
		} else {
			st = oom(err);
		}
	}
	for (unsigned i = 1; i < k && !st; i++) {
		if (uidset_empty(&p[i]->uids))
			continue;
		r->parts[r->nparts++] = p[i];
		w->fr->parts_open++;
		p[i] = NULL;
		*posted = true;
	}
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 1; i < k; i++)
		if (p[i]) {
			uidset_free(&p[i]->uids);
			free(p[i]);
		}
	if (st) {
		uidset_free(&mine);
		return st;
	}
	uidset_free(todo);
	*todo = mine;
	for (unsigned i = 1; i < k; i++)
		spawn_worker(r);
	return ISNAP_OK;
}

/* The owner's end of a split folder, after its own share: fetch the parts
 * no session took (unless `st` says this session already failed, or the
 * run stops), wait for the others, and take over what they did not save.
 * Returns `st` or the failure of a part fetched here. */
static enum isnap_status end_parts(struct worker *w,
				   const struct fetch_callbacks *cb,
				   struct fetch_stats *stats, enum isnap_status st,
				   struct isnap_error *err)
{
	struct run *r = w->r;
	struct folder_run *fr = w->fr;
	size_t kept = 0;

	pthread_mutex_lock(&r->lock);
	while (fr->parts_open) {
		struct part *p = waiting_part(r, fr, true);
		bool go;

		if (!p) {
			pthread_cond_wait(&r->changed, &r->lock);
			continue;
		}
		p->status = PART_TAKEN;
		go = !st && !r->stop;
		if (!go && p->uids.n &&
		    (!fr->part_min_failed ||
		     p->uids.r[0].first < fr->part_min_failed))
			fr->part_min_failed = p->uids.r[0].first;
		pthread_mutex_unlock(&r->lock);
		if (go) {
			struct fetch_stats ps = { 0 };
			st = fetch_messages(w->client, w->store, &p->uids,
					    &r->o->fetch, cb, &ps, err);
			count(r, &ps, 0, 0, 0);
			add_stats(stats, &ps);
		}
		pthread_mutex_lock(&r->lock);
		p->status = PART_DONE;
		fr->parts_open--;
	}
	/* What the other sessions failed to save keeps UIDNEXT back, so that
	 * the next run tries it again, as for this session's own failures. */
	if (fr->part_min_failed &&
	    (!w->min_failed || fr->part_min_failed < w->min_failed))
		w->min_failed = fr->part_min_failed;
	if (fr->part_message_failed)
		w->any_message_failed = true;
	add_stats(stats, &fr->part_stats);
	for (size_t i = 0; i < r->nparts; i++) {
		struct part *p = r->parts[i];
		if (p->fr == fr && p->status == PART_DONE) {
			uidset_free(&p->uids);
			free(p);
		} else {
			r->parts[kept++] = p;
		}
	}
	r->nparts = kept;
	pthread_mutex_unlock(&r->lock);
	return st;
}

/* Another session's share of a folder: examine the folder on this
 * session, open it in this session's store, and fetch. */
static enum isnap_status backup_part(struct worker *w, struct part *p,
				     struct isnap_error *err)
{
	struct run *r = w->r;
	struct imap_mailbox_info mi;
	struct store_folder f = { .name = p->lf->name, .utf8 = p->utf8,
				  .delim = p->lf->delim };
	struct uidset present = UIDSET_INIT;
	struct fetch_stats stats = { 0 };
	struct fetch_callbacks cb = {
		.ctx = w,
		.committed = on_committed,
		.message_failed = on_message_failed,
		.message_saved = on_message_saved,
	};
	enum isnap_status st;

	w->part = p;
	w->fr = p->fr;
	w->folder_utf8 = p->utf8;
	st = imap_examine(w->client, f.name, &mi, err);
	if (!st && mi.uidvalidity != p->uidvalidity)
		st = isnap_fail(err, ISNAP_EFOLDER,
				"UIDVALIDITY changed during the run");
	if (st)
		goto out;
	f.uidvalidity = mi.uidvalidity;
	f.uidnext = mi.uidnext;
	f.exists = mi.exists;
	f.highestmodseq = mi.highestmodseq;
	st = w->store->ops->open_folder(w->store, &f, &present, err);
	if (st)
		goto out;
	st = fetch_messages(w->client, w->store, &p->uids, &r->o->fetch, &cb,
			    &stats, err);
	count(r, &stats, 0, 0, 0);
	{
		struct isnap_error cerr = { 0 };
		enum isnap_status cst = w->store->ops->close_folder(w->store,
								    &cerr);
		if (!st && cst) {
			st = cst;
			*err = cerr;
		}
	}
	pthread_mutex_lock(&r->lock);
	add_stats(&p->fr->part_stats, &stats);
	pthread_mutex_unlock(&r->lock);
out:
	w->part = NULL;
	w->fr = NULL;
	w->folder_utf8 = NULL;
	uidset_free(&present);
	return st;
}

/* A part is over for this session: done, or (when `st` failed) given back
 * to its owner with what was not committed. */
static void return_part(struct run *r, struct part *p, enum isnap_status st)
{
	pthread_mutex_lock(&r->lock);
	if (st && remove_set(&p->uids, &p->fr->part_saved) == 0) {
		p->status = PART_WAITING;
		p->owner_only = true;
	} else {
		if (st && p->uids.n &&
		    (!p->fr->part_min_failed ||
		     p->uids.r[0].first < p->fr->part_min_failed))
			p->fr->part_min_failed = p->uids.r[0].first;
		p->status = PART_DONE;
		p->fr->parts_open--;
	}
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
}

static enum isnap_status backup_folder(struct worker *w,
				       const struct imap_folder *lf,
				       struct isnap_error *err)
{
	struct run *r = w->r;
	struct imap_mailbox_info mi;
	struct store_folder f = { .name = lf->name, .delim = lf->delim };
	struct uidset todo = UIDSET_INIT, present = UIDSET_INIT;
	uint32_t todo_max = 0;
	struct fetch_stats stats = { 0 };
	struct fetch_callbacks cb = {
		.ctx = w,
		.committed = on_committed,
		.message_failed = on_message_failed,
		.message_saved = on_message_saved,
	};
	char *utf8 = NULL;
	struct state_folder *sf = &w->sf;
	struct store *store = w->store;
	enum isnap_status st = ISNAP_OK;

	if (mutf7_decode(lf->name, strlen(lf->name), &utf8) < 0) {
		if (errno == ENOMEM)
			return oom(err);
		utf8 = NULL; /* not modified UTF-7: keep the raw name */
	}
	f.utf8 = utf8 ? utf8 : lf->name;
	w->folder_utf8 = f.utf8;
	w->min_failed = 0;
	w->any_message_failed = false;
	if (!selected(r->o, f.utf8))
		goto out;
	if (lf->invalid) {
		st = isnap_fail(err, ISNAP_EFOLDER, "%s; not backed up",
				lf->invalid);
		goto out;
	}
	if (!utf8 && raw_name_collides(r, lf->name)) {
		st = isnap_fail(err, ISNAP_EFOLDER,
				"the name is not valid modified UTF-7 and "
				"would share its place in the backup with "
				"another folder; not backed up");
		goto out;
	}

	st = imap_examine(w->client, lf->name, &mi, err);
	if (!st && mi.uidvalidity == 0)
		st = isnap_fail(err, ISNAP_EFOLDER,
				"the server reported no UIDVALIDITY");
	if (st)
		goto out;
	f.uidvalidity = mi.uidvalidity;
	f.uidnext = mi.uidnext;
	f.exists = mi.exists;
	f.highestmodseq = mi.highestmodseq;
	if (store)
		manifest_store_examined(store, &f);

	/* This session's copy of the folder's state (made before the
	 * sessions started: found, never created, here). */
	pthread_mutex_lock(&r->lock);
	{
		struct state_folder *shared = state_folder(&r->state,
							   lf->name, 0);
		w->fr = find_run(r, lf->name);
		if (!shared || !w->fr || sf_copy(sf, shared))
			st = oom(err);
		/* Parts of an earlier attempt are in `shared` already. */
		if (!st) {
			uidset_clear(&w->fr->part_saved);
			w->fr->part_min_failed = 0;
			w->fr->part_message_failed = false;
			memset(&w->fr->part_stats, 0,
			       sizeof w->fr->part_stats);
		}
		/* A folder tried again after a lost connection counts
		 * once. */
		if (!st && !w->fr->counted) {
			w->fr->counted = true;
			r->sum->folders++;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (st)
		goto out;
	sf->delim = lf->delim;
	if (r->o->dry_run) {
		st = dry_run_folder(w, &f, &mi, sf, err);
		goto out;
	}
	if (sf->uidvalidity && sf->uidvalidity != mi.uidvalidity) {
		st = new_generation(w, &f, sf, err);
		if (!st)
			st = publish(w, err);
		if (st)
			goto out;
	}
	if (sf->uidvalidity == mi.uidvalidity && mi.uidnext &&
	    sf->uidnext == mi.uidnext &&
	    (mi.highestmodseq && sf->highestmodseq
		     ? mi.highestmodseq == sf->highestmodseq
		     : mi.exists == uidset_count(&sf->saved) -
					    uidset_count(&sf->expunged))) {
		/* Nothing new: no store access, no further round trip. */
		if (r->ev && r->ev->folder_begin)
			r->ev->folder_begin(r->ev->ctx, f.utf8, 0,
					    uidset_count(&sf->saved));
		goto done;
	}
	st = store->ops->open_folder(store, &f, &present, err);
	if (st)
		goto out;
	if (sf->uidvalidity == mi.uidvalidity) {
		st = sync_changes(w, &mi, sf, err);
		if (st)
			goto close;
	}
	sf->uidvalidity = mi.uidvalidity;
	sf->highestmodseq = mi.highestmodseq;
	/* Messages the store holds but the state does not know of (a crash
	 * after the store's commit, before the state's) are saved. */
	if (uidset_add_set(&sf->saved, &present)) {
		st = oom(err);
		goto out;
	}
	st = plan(w, &mi, sf, &todo, err);
	if (st)
		goto close;
	count(r, NULL, uidset_count(&todo), 0, 0);
	if (r->ev && r->ev->folder_begin)
		r->ev->folder_begin(r->ev->ctx, f.utf8, uidset_count(&todo),
				    uidset_count(&sf->saved));
	if (!uidset_empty(&todo)) {
		bool split;
		todo_max = uidset_max(&todo);
		/* Enough work found that the folders not examined yet may go
		 * to one more session meanwhile. */
		if (uidset_count(&todo) >= SPAWN_MIN)
			spawn_worker(r);
		st = post_parts(w, lf, &f, &todo, &split, err);
		if (st)
			goto close;
		st = fetch_messages(w->client, store, &todo, &r->o->fetch,
				    &cb, &stats, err);
		count(r, &stats, 0, 0, 0);
		if (split)
			st = end_parts(w, &cb, &stats, st, err);
		if (stats.unexpected) {
			/* Nothing was lost to it, but a server that sends what
			 * nobody asked for is broken and the run says so. */
			w->any_message_failed = true;
			warning(r,
				"%s: the server sent %llu message bodies that "
				"were not asked for, repeated, or without a "
				"valid UID; they were ignored",
				f.utf8, (unsigned long long)stats.unexpected);
		}
		if (st)
			goto close;
	}
	/* Everything below the new UIDNEXT is now saved or gone — except
	 * failed messages, which the next run must try again. */
	{
		uint32_t next = mi.uidnext ? mi.uidnext
					   : todo_max + 1;
		if (next < sf->uidnext)
			next = sf->uidnext;
		if (w->min_failed && w->min_failed < next)
			next = w->min_failed;
		/* A date filter left older messages out on purpose; a later
		 * run without it must still find them. */
		if (date_filtered(r))
			next = sf->uidnext;
		if (deferred_store(r))
			w->fr->uidnext = next;
		else
			sf->uidnext = next;
	}
close:
	{
		enum isnap_status cst = store->ops->close_folder(store, err);
		if (!st)
			st = cst;
	}
	if (!st)
		st = publish_as(w, !deferred_store(r), err);
done:
	if (!st && r->ev && r->ev->folder_end)
		r->ev->folder_end(r->ev->ctx, f.utf8, &stats);
	if (!st && w->any_message_failed)
		st = ISNAP_EMSG;
out:
	if (st == ISNAP_EPROTO) {
		/* It would break the same way again: the folder fails, the
		 * others go on over a new connection. */
		w->session_broken = true;
		st = err->status = ISNAP_EFOLDER;
	}
	if (st && st != ISNAP_EMSG)
		isnap_error_prefix(err, "%.200s%s", f.utf8,
				   strlen(f.utf8) > 200 ? "..." : "");
	if (st == ISNAP_EFOLDER) {
		pthread_mutex_lock(&r->lock);
		r->sum->folders_failed++;
		pthread_mutex_unlock(&r->lock);
		if (store)
			manifest_store_skipped(store, &f, 0, err->msg);
		if (r->ev && r->ev->folder_failed)
			r->ev->folder_failed(r->ev->ctx, f.utf8, err);
	}
	w->folder_utf8 = NULL;
	w->fr = NULL;
	uidset_free(&todo);
	uidset_free(&present);
	free(utf8);
	return st;
}

/* Archives: what was fetched becomes durable only now. */
static enum isnap_status apply_deferred(struct run *r, struct isnap_error *err)
{
	for (size_t i = 0; i < r->nruns; i++) {
		struct folder_run *fr = &r->runs[i];
		struct state_folder *sf = state_folder(&r->state, fr->name, 0);
		if (!sf)
			continue;
		if (uidset_add_set(&sf->saved, &fr->deferred))
			return oom(err);
		if (fr->uidnext)
			sf->uidnext = fr->uidnext;
	}
	return save_state_locked(r, err);
}

static bool is_fatal(enum isnap_status st)
{
	return st != ISNAP_OK && st != ISNAP_EMSG && st != ISNAP_EFOLDER;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Connect again, up to the retries left, waiting longer each time. */
static enum isnap_status reopen(struct worker *w, unsigned *attempt,
				long *delay, struct isnap_error *err)
{
	const struct backup_opts *o = w->r->o;
	enum isnap_status st;

	do {
		if (*attempt >= o->retries) {
			char why[ISNAP_ERROR_MAX];
			snprintf(why, sizeof why, "%s", err->msg);
			return isnap_fail(err, ISNAP_ECONN,
					  "%.900s (gave up after %u retries)",
					  why, o->retries);
		}
		++*attempt;
		sleep_ms(*delay);
		/* 0.25 s, 1 s, 4 s, 16 s, then once a minute: --retries
		 * counts attempts, it should not mean hours of waiting. */
		*delay = *delay * 4 > 60000 ? 60000 : *delay * 4;
		st = imap_client_open(&o->session, &w->client, err);
	} while (st == ISNAP_ECONN);
	return st;
}

/* backup_folder, reconnecting when the connection is lost: the folder is
 * examined again and goes on after what was committed. */
static enum isnap_status backup_folder_retrying(struct worker *w,
						const struct imap_folder *lf,
						struct isnap_error *err)
{
	struct run *r = w->r;
	enum isnap_status st;
	unsigned attempt = 0;
	long delay = 250;

	for (;;) {
		st = backup_folder(w, lf, err);
		if (w->session_broken) {
			/* The folder failed because the server broke the
			 * protocol; the session cannot be trusted after that,
			 * so the next folder gets a new one. */
			struct isnap_error rerr = { 0 };
			w->session_broken = false;
			imap_client_close(w->client, false);
			w->client = NULL;
			/* One new session per such folder, whatever --retries
			 * says: those are for connections that drop.  If even
			 * that fails, the session ends with what it has. */
			if (imap_client_open(&r->o->session, &w->client, &rerr))
				warning(r, "cannot reconnect for the other "
					   "folders: %s", rerr.msg);
			return st;
		}
		if (st != ISNAP_ECONN)
			return st;
		if (attempt < r->o->retries)
			warning(r, "%s; reconnecting (retry %u of %u)", err->msg,
				attempt + 1, r->o->retries);
		imap_client_close(w->client, false);
		w->client = NULL;
		st = reopen(w, &attempt, &delay, err);
		if (st)
			return st;
	}
}

/* The next thing to do: a part of a split folder first (its owner waits
 * for it), else the next folder.  With neither, wait while folders are
 * being backed up (they may be split yet).  False when there is nothing
 * more, or the run stops. */
static bool take_work(struct run *r, const struct imap_folder **lf,
		      struct part **part)
{
	bool got = false;

	*lf = NULL;
	*part = NULL;
	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		if ((*part = waiting_part(r, NULL, false)) != NULL) {
			(*part)->status = PART_TAKEN;
			got = true;
			break;
		}
		if (r->next < r->nqueue) {
			*lf = &r->folders->v[r->queue[r->next++]];
			r->busy++;
			got = true;
			break;
		}
		if (!r->busy)
			break;
		pthread_cond_wait(&r->changed, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return got;
}

/* With r->lock held: remember the first fatal error and stop the run. */
static void stop_run(struct run *r, enum isnap_status st,
		     const struct isnap_error *e)
{
	if (!r->fatal) {
		r->fatal = st;
		r->fatal_err = *e;
	}
	r->stop = true;
	pthread_cond_broadcast(&r->changed);
}

/* A part, and a new connection when this one failed under it. */
static void work_on_part(struct worker *w, struct part *p)
{
	struct run *r = w->r;
	struct isnap_error perr = { 0 };
	enum isnap_status st = backup_part(w, p, &perr);
	char folder[256];

	/* Once given back, the part and the name belong to the owner. */
	snprintf(folder, sizeof folder, "%s", p->utf8);
	return_part(r, p, st);
	if (is_fatal(st) && st != ISNAP_ECONN && st != ISNAP_EPROTO) {
		pthread_mutex_lock(&r->lock);
		stop_run(r, st, &perr);
		pthread_mutex_unlock(&r->lock);
	} else if (st == ISNAP_ECONN || st == ISNAP_EPROTO ||
		   w->session_broken) {
		/* The owner takes the part back; this session starts over,
		 * once, for whatever comes next. */
		struct isnap_error rerr = { 0 };
		warning(r, "%s; the rest of this share of %s goes back to "
			   "the folder's first connection", perr.msg, folder);
		w->session_broken = false;
		imap_client_close(w->client, false);
		w->client = NULL;
		if (imap_client_open(&r->o->session, &w->client, &rerr))
			warning(r, "cannot reconnect: %s", rerr.msg);
	}
}

/* Folders and parts until there are none left, a fatal error stops the
 * run, or the session is lost for good. */
static void work(struct worker *w)
{
	struct run *r = w->r;
	const struct imap_folder *lf;
	struct part *p;

	while (w->client && take_work(r, &lf, &p)) {
		struct isnap_error ferr = { 0 };
		enum isnap_status st;

		if (p) {
			work_on_part(w, p);
			continue;
		}
		st = backup_folder_retrying(w, lf, &ferr);
		pthread_mutex_lock(&r->lock);
		r->busy--;
		if (is_fatal(st))
			stop_run(r, st, &ferr);
		else if (st == ISNAP_EFOLDER ||
			 (st == ISNAP_EMSG && !r->worst))
			r->worst = st;
		pthread_cond_broadcast(&r->changed);
		pthread_mutex_unlock(&r->lock);
	}
}

/* A session of its own: connect, make a store, do folders, finish. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	struct isnap_error err = { 0 };
	struct store *inner = NULL;
	enum isnap_status st;

	st = imap_client_open(&r->o->session, &w->client, &err);
	if (!st)
		st = store_open(r->format, r->o->dest, &inner, &err);
	if (!st) {
		st = manifest_wrap_another(r->manifest, inner, &w->store, &err);
		if (st)
			store_free(inner);
	}
	if (st) {
		/* The sessions already open go on without this one (a
		 * server may limit connections per account). */
		warning(r, "connection %u of %u: %s; going on with fewer",
			w->id + 1, r->connections, err.msg);
	} else {
		work(w);
	}
	imap_client_close(w->client, true);
	w->client = NULL;
	if (w->store) {
		struct isnap_error ferr = { 0 };
		st = w->store->ops->finish(w->store, &ferr);
		pthread_mutex_lock(&r->lock);
		if (st)
			stop_run(r, st, &ferr);
		pthread_mutex_unlock(&r->lock);
		store_free(w->store);
		w->store = NULL;
	}
	sf_release(&w->sf);
	return NULL;
}

/* One more session, if the run may have one and folders wait. */
static void spawn_worker(struct run *r)
{
	struct worker *w = NULL;

	pthread_mutex_lock(&r->lock);
	if (!r->stop && r->started < r->connections &&
	    (r->next < r->nqueue || waiting_part(r, NULL, false))) {
		w = &r->workers[r->started];
		w->r = r;
		w->id = r->started;
		if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
			w->running = true;
			r->started++;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* Plans before the sessions start: the order of the folders, and the
 * state entries and records they need (made here, so that sessions only
 * ever find them, and so that the state file lists folders in the order
 * one session would have reached them). */
static enum isnap_status prepare(struct run *r,
				 const struct imap_folder_list *folders,
				 struct isnap_error *err)
{
	r->folders = folders;
	r->queue = calloc(folders->n ? folders->n : 1, sizeof *r->queue);
	if (!r->queue)
		return oom(err);
	r->n_loaded = r->state.n;
	for (size_t i = 0; i < folders->n; i++) {
		const struct imap_folder *lf = &folders->v[i];
		if (lf->noselect)
			continue;
		r->queue[r->nqueue++] = i;
		if (lf->invalid)
			continue;
		if (!state_folder(&r->state, lf->name, 1))
			return oom(err);
		if (!find_run(r, lf->name) && !folder_run(r, lf->name))
			return oom(err);
	}
	r->save_view = calloc(r->state.n ? r->state.n : 1,
			      sizeof *r->save_view);
	return r->save_view ? ISNAP_OK : oom(err);
}

static enum isnap_status backup_account(struct run *r, struct isnap_error *err)
{
	struct imap_folder_list folders = { 0 };
	struct worker *w0 = &r->workers[0];
	enum isnap_status st;

	w0->r = r;
	w0->store = r->store;
	r->started = 1;
	st = imap_client_open(&r->o->session, &w0->client, err);
	if (st)
		return st;
	if (r->manifest)
		manifest_server(r->manifest,
				imap_client_greeting(w0->client),
				imap_client_capabilities(w0->client));
	st = imap_list(w0->client, &folders, err);
	if (!st)
		st = prepare(r, &folders, err);
	if (st)
		goto out;
	work(w0);
	/* The other sessions finish what they took. */
	for (unsigned i = 1; i < r->connections; i++)
		if (r->workers[i].running) {
			pthread_join(r->workers[i].thread, NULL);
			r->workers[i].running = false;
		}
	if (r->fatal) {
		*err = r->fatal_err;
		st = r->fatal;
	} else if (r->next < r->nqueue) {
		/* Every session was lost for good after a folder failed; the
		 * failure was reported, the remaining folders are not
		 * done. */
		st = ISNAP_EFOLDER;
	} else {
		st = r->worst;
	}
out:
	sf_release(&w0->sf);
	r->folders = NULL;
	imap_folder_list_free(&folders);
	return st;
}

/* Every message the store sees from now on is hashed and recorded. */
static enum isnap_status start_manifest(struct run *r, const char *state_dir,
					const char *format,
					struct isnap_error *err)
{
	struct manifest_run_info info = {
		.tool_version = IMAPSNAP_VERSION,
		.format = format,
		.dest = r->o->dest,
		.host = r->o->session.url,
		.user = r->o->session.user,
	};
	struct store *wrapped;
	enum isnap_status st;

	st = manifest_open(state_dir, &info, &r->manifest, err);
	if (st)
		return st;
	st = manifest_wrap(r->manifest, r->store, &wrapped, err);
	if (st)
		return st;
	r->store = wrapped;
	return ISNAP_OK;
}

/* The run's totals, as the manifest's last line. */
static void end_manifest(struct run *r, enum isnap_status st)
{
	const struct backup_summary *sum = r->sum;
	struct manifest_summary ms = {
		.listed = sum->planned,
		.saved = sum->fetch.saved,
		.failed = sum->fetch.failed,
		.vanished = sum->fetch.vanished,
		.unexpected = sum->fetch.unexpected,
		.size_mismatch = sum->fetch.size_mismatch,
		.folders = sum->folders,
		.folders_failed = sum->folders_failed,
		.status = st,
	};

	manifest_end(r->manifest, &ms);
}

/* How many sessions: as asked (default BACKUP_CONNECTIONS_DEFAULT), but
 * one for what must be written as one stream. */
static unsigned connections_for(struct run *r)
{
	unsigned n = r->o->connections ? r->o->connections
				       : BACKUP_CONNECTIONS_DEFAULT;

	if (n > BACKUP_CONNECTIONS_MAX)
		n = BACKUP_CONNECTIONS_MAX;
	if (r->o->dry_run)
		return 1;
	if (r->store && deferred_store(r)) {
		if (r->o->connections > 1)
			notice(r, "%s is written as one stream: one connection "
				  "instead of %u", r->format,
			       r->o->connections);
		return 1;
	}
	return n;
}

enum isnap_status backup_run(const struct backup_opts *o,
			     const struct backup_events *ev,
			     struct backup_summary *sum,
			     struct isnap_error *err)
{
	struct run r = { .o = o, .user_ev = ev, .sum = sum };
	double start = now_seconds();
	int lock_fd = -1;
	enum isnap_status st, fst;

	memset(sum, 0, sizeof *sum);
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.ev_lock, NULL);
	pthread_cond_init(&r.changed, NULL);
	serialise_events(&r);
	date_criteria(o, r.criteria, sizeof r.criteria);
	snprintf(r.state_dir, sizeof r.state_dir, "%s/.imapsnap", o->dest);
	r.format = o->format ? o->format : "maildir";
	if (o->dry_run) {
		/* Read what earlier runs saved, if anything; touch nothing. */
		r.connections = connections_for(&r);
		if (!(r.workers = calloc(1, sizeof *r.workers))) {
			st = oom(err);
			goto out;
		}
		st = state_load(r.state_dir, &r.state, err);
		if (st == ISNAP_EINTEGRITY)
			st = err->status = ISNAP_ELOCAL;
		if (!st)
			st = backup_account(&r, err);
		imap_client_close(r.workers[0].client, !is_fatal(st));
		r.workers[0].client = NULL;
		goto out;
	}
	{
		const char *single = store_single_file_format(o->dest);
		if (single) {
			if (o->format && strcmp(o->format, single)) {
				st = isnap_fail(err, ISNAP_EUSAGE,
						"%s: the name says %s, but "
						"--format says %s",
						o->dest, single, o->format);
				goto out;
			}
			r.format = single;
			r.single_file = true;
		}
		st = store_open(r.format, o->dest, &r.store, err);
		if (st)
			goto out;
	}
	r.connections = connections_for(&r);
	if (!(r.workers = calloc(r.connections, sizeof *r.workers))) {
		st = oom(err);
		goto out;
	}
	if (r.single_file) {
		/* A complete export every time: nothing to remember, and the
		 * manifest goes inside the archive. */
		st = start_manifest(&r, NULL, r.format, err);
		if (st)
			goto out;
		st = backup_account(&r, err);
		goto finish;
	}
	if (mkdir(r.state_dir, 0700) < 0 && errno != EEXIST) {
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", r.state_dir);
		goto out;
	}
	st = lock_acquire(r.state_dir, &lock_fd, err);
	if (!st)
		st = state_load(r.state_dir, &r.state, err);
	if (st == ISNAP_EINTEGRITY)
		st = err->status = ISNAP_ELOCAL;
	if (st)
		goto out;

	st = start_manifest(&r, r.state_dir, r.format, err);
	if (st)
		goto out;
	st = backup_account(&r, err);
finish:
	imap_client_close(r.workers[0].client, !is_fatal(st));
	r.workers[0].client = NULL;
	end_manifest(&r, st);
	/* Even after a fatal error, finish what is complete; the first
	 * error is the one to report. */
	{
		struct isnap_error scratch = { 0 };
		struct isnap_error *e2 = is_fatal(st) ? &scratch : err;
		fst = r.store->ops->finish(r.store, e2);
		if (!fst && deferred_store(&r))
			fst = apply_deferred(&r, e2);
		if (fst && !is_fatal(st))
			st = fst;
		if (!fst && manifest_sha256(r.manifest))
			snprintf(sum->manifest_sha256,
				 sizeof sum->manifest_sha256, "%s",
				 manifest_sha256(r.manifest));
	}
out:
	sum->seconds = now_seconds() - start;
	for (size_t i = 0; i < r.nruns; i++) {
		free(r.runs[i].name);
		uidset_free(&r.runs[i].deferred);
		uidset_free(&r.runs[i].part_saved);
	}
	free(r.runs);
	free(r.parts); /* each part is freed by its folder's owner */
	free(r.queue);
	free(r.save_view);
	free(r.workers);
	state_free(&r.state);
	store_free(r.store);
	manifest_free(r.manifest);
	lock_release(lock_fd);
	pthread_mutex_destroy(&r.lock);
	pthread_mutex_destroy(&r.ev_lock);
	pthread_cond_destroy(&r.changed);
	return st;
}
