/*
 * backup_sessions.c — the sessions of a run (docs/decisions.md,
 * "Parallel sessions"): the caller's events one at a time, the queue of
 * folders and parts, the worker threads, starting one more, stopping the
 * run on a fatal error, and reconnecting when a connection is lost.
 */
#include "backup_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void backup_notice(struct run *r, const char *fmt, ...)
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

void backup_warning(struct run *r, const char *fmt, ...)
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
void backup_serialise_events(struct run *r)
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
				backup_warning(r,
					       "cannot reconnect for the "
					       "other folders: %s",
					       rerr.msg);
			return st;
		}
		if (st != ISNAP_ECONN)
			return st;
		if (attempt < r->o->retries)
			backup_warning(r,
				       "%s; reconnecting (retry %u of %u)",
				       err->msg, attempt + 1, r->o->retries);
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
		if ((*part = backup_waiting_part(r, NULL, false)) != NULL) {
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
void backup_stop_run(struct run *r, enum isnap_status st,
		     const struct isnap_error *e)
{
	if (!r->fatal) {
		r->fatal = st;
		r->fatal_err = *e;
	}
	r->stop = true;
	pthread_cond_broadcast(&r->changed);
}

/* Folders and parts until there are none left, a fatal error stops the
 * run, or the session is lost for good. */
void backup_work(struct worker *w)
{
	struct run *r = w->r;
	const struct imap_folder *lf;
	struct part *p;

	while (w->client && take_work(r, &lf, &p)) {
		struct isnap_error ferr = { 0 };
		enum isnap_status st;

		if (p) {
			backup_work_on_part(w, p);
			continue;
		}
		st = backup_folder_retrying(w, lf, &ferr);
		pthread_mutex_lock(&r->lock);
		r->busy--;
		if (is_fatal(st))
			backup_stop_run(r, st, &ferr);
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
		backup_warning(r,
			       "connection %u of %u: %s; going on with fewer",
			       w->id + 1, r->connections, err.msg);
	} else {
		backup_work(w);
	}
	imap_client_close(w->client, true);
	w->client = NULL;
	if (w->store) {
		struct isnap_error ferr = { 0 };
		st = w->store->ops->finish(w->store, &ferr);
		pthread_mutex_lock(&r->lock);
		if (st)
			backup_stop_run(r, st, &ferr);
		pthread_mutex_unlock(&r->lock);
		store_free(w->store);
		w->store = NULL;
	}
	backup_sf_release(&w->sf);
	return NULL;
}

/* One more session, if the run may have one and folders wait. */
void backup_spawn_worker(struct run *r)
{
	struct worker *w = NULL;

	pthread_mutex_lock(&r->lock);
	if (!r->stop && r->started < r->connections &&
	    (r->next < r->nqueue || backup_waiting_part(r, NULL, false))) {
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
