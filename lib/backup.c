/*
 * backup.c — see backup.h.  One run: the destination (its lock, state and
 * store), the manifest, the ledger and the scheduler, then the units do the
 * work: the listing unit (backup_list.c) plans every folder
 * (backup_plan.c), planning queues the fetching (backup_fetch.c), the
 * ledger keeps the account (backup_ledger.c).  docs/decisions.md,
 * "The backup engine", explains the whole.
 *
 * Dependencies run one way:
 *
 *   backup.c -> backup_list.c -> backup_plan.c -> backup_step_*.c
 *                                     |                 |
 *                                     v                 v
 *                               backup_fetch.c    (backup_plan.h)
 *                                     |
 *        backup_ledger.c, backup_events.c, scheduler.c, imap/, store/
 */
#include "backup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_ctx.h"
#include "backup_events.h"
#include "backup_ledger.h"
#include "backup_list.h"
#include "beneath.h"
#include "lock.h"
#include "scheduler.h"
#include "version.h"

/* Another session opens when units worth this many messages wait: fewer
 * take less time (0.06 s at the 4,300 messages/s of docs/performance.md)
 * than a login over TLS through a 20 ms link costs, and the sessions
 * already open reach them soon enough. */
#define SPAWN_WEIGHT 250
/* Units one session keeps going at once; the window of commands and
 * bytes in flight (scheduler.c) is what really bounds them. */
#define BACKUP_UNITS_PER_SESSION 64
/* ... and no more once they are to move this many messages (a share of a
 * split folder, backup_plan.c): the rest is for the other sessions. */
#define WINDOW_WEIGHT 500

struct run {
	struct backup_ctx c;
	struct backup_events_mux events;
	struct imap_session_opts session; /* the caller's, traced in turn */
	char state_dir[4096]; /* DEST/.imapsnap, for messages */
	int state_fd;         /* it, opened (beneath.h); -1 when none */
	bool single_file;     /* one complete export; no state kept */
	/* Record the run once the first session has logged in (not in a
	 * dry run): in manifest_fd (DEST/.imapsnap), or -1 for a single
	 * file.  A run that never logs in saved nothing: no manifest. */
	bool want_manifest;
	int manifest_fd;
	struct store *store;  /* the first, wrapped by the manifest */
	struct backup_summary *sum;
};

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

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- sessions ---------------------------------------------------------------- */

/* A session logged in for the first time: its store.  The first uses the
 * run's; the others get their own on the same destination, recording into
 * the same manifest. */
static enum isnap_status start_manifest(struct run *r, int state_fd,
					struct isnap_error *err);

static enum isnap_status attach(void *ctx, struct sched_session *s,
				struct isnap_error *err)
{
	struct run *r = ctx;
	struct store *inner = NULL, *wrapped = NULL;
	enum isnap_status st;

	if (sched_session_index(s) == 0) {
		struct imap_client *cl = sched_session_client(s);
		if (r->want_manifest && !r->c.manifest) {
			st = start_manifest(r, r->manifest_fd, err);
			if (st)
				return st;
		}
		if (r->c.manifest)
			manifest_server(r->c.manifest, imap_client_greeting(cl),
					imap_client_capabilities(cl));
		sched_session_set_data(s, r->store);
		return ISNAP_OK;
	}
	if (!r->store)
		return ISNAP_OK; /* dry run */
	st = store_open(r->c.format, r->c.o->dest, &inner, err);
	if (!st) {
		st = manifest_wrap_another(r->c.manifest, inner, &wrapped, err);
		if (st)
			store_free(inner);
	}
	if (!st)
		sched_session_set_data(s, wrapped);
	return st;
}

static enum isnap_status detach(void *ctx, struct sched_session *s,
				bool run_ok, struct isnap_error *err)
{
	struct store *store = backup_store_of(s);
	enum isnap_status st = ISNAP_OK;

	(void)ctx;
	(void)run_ok;
	if (sched_session_index(s) == 0 || !store)
		return ISNAP_OK; /* the run finishes the first store itself */
	st = store->ops->finish(store, err);
	store_free(store);
	sched_session_set_data(s, NULL);
	return st;
}

static void sched_warning(void *ctx, const char *text)
{
	struct run *r = ctx;

	backup_warning(&r->events.ev, "%s", text);
}

/* How many sessions: as asked (default BACKUP_CONNECTIONS_DEFAULT), but
 * one for what must be written as one stream, and for a dry run. */
static unsigned connections_for(struct run *r)
{
	const struct backup_opts *o = r->c.o;
	unsigned n = o->connections ? o->connections
				    : BACKUP_CONNECTIONS_DEFAULT;

	if (n > BACKUP_CONNECTIONS_MAX)
		n = BACKUP_CONNECTIONS_MAX;
	if (o->dry_run)
		return 1;
	if (r->store && !(r->c.store_caps & STORE_CAP_PARALLEL)) {
		if (o->connections > 1)
			backup_notice(&r->events.ev,
				      "%s is written as one stream: one "
				      "connection instead of %u",
				      r->c.format, o->connections);
		return 1;
	}
	return n;
}

/* The ledger and the scheduler, the listing unit, and the work. */
static enum isnap_status run_units(struct run *r, struct state *loaded,
				   struct isnap_error *err)
{
	struct backup_ctx *c = &r->c;
	struct ledger_opts lo = {
		.state_fd = r->single_file || c->o->dry_run ? -1
							    : r->state_fd,
		.state_dir = r->state_dir,
		.durable_at_finish = r->store &&
				     r->store->ops->durable_at_finish,
		.keep_uidnext = backup_date_filtered(c),
	};
	struct sched_opts so = {
		.session = &r->session,
		.max_sessions = c->sessions,
		.spawn_weight = SPAWN_WEIGHT,
		.retries = c->o->retries,
		.max_wait_ms = c->o->fetch.max_wait_ms,
		/* As many as the window lets in (scheduler.c): a unit that
		 * has sent everything it will send leaves the session to
		 * the next (the pipelining rules, docs/decisions.md). */
		.max_units = BACKUP_UNITS_PER_SESSION,
		.window_weight = WINDOW_WEIGHT,
		.ctx = r,
		.attach = attach,
		.detach = detach,
		.warning = sched_warning,
	};
	struct sched_unit *lu;
	enum isnap_status st;

	st = ledger_new(&lo, loaded, &c->ledger, err);
	if (!st)
		st = sched_new(&so, &c->sched, err);
	if (st)
		return st;
	if (!(lu = backup_list_unit(c)))
		return backup_oom(err);
	sched_post(c->sched, lu, false);
	return sched_run(c->sched, err);
}

/* Every message the store sees from now on is hashed and recorded. */
static enum isnap_status start_manifest(struct run *r, int state_fd,
					struct isnap_error *err)
{
	struct manifest_run_info info = {
		.tool_version = IMAPSNAP_VERSION,
		.format = r->c.format,
		.dest = r->c.o->dest,
		.host = r->c.o->session.url,
		.user = r->c.o->session.user,
	};
	struct store *wrapped;
	enum isnap_status st;

	st = manifest_open(state_fd, r->state_dir, &info, &r->c.manifest, err);
	if (st)
		return st;
	st = manifest_wrap(r->c.manifest, r->store, &wrapped, err);
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
		.uncommitted = sum->fetch.uncommitted,
		.failed = sum->fetch.failed,
		.vanished = sum->fetch.vanished,
		.unexpected = sum->fetch.unexpected,
		.size_mismatch = sum->fetch.size_mismatch,
		.folders = sum->folders,
		.folders_failed = sum->folders_failed,
		.status = st,
	};

	manifest_end(r->c.manifest, &ms);
}

/* The store, and the manifest around it; a single-file export keeps no
 * state and carries its manifest inside. */
static enum isnap_status open_store(struct run *r, struct isnap_error *err)
{
	const struct backup_opts *o = r->c.o;
	const char *single = store_single_file_format(o->dest);
	enum isnap_status st;

	if (single) {
		if (o->format && strcmp(o->format, single))
			return isnap_fail(err, ISNAP_EUSAGE,
					  "%s: the name says %s, but --format "
					  "says %s",
					  o->dest, single, o->format);
		r->c.format = single;
		r->single_file = true;
	}
	st = store_open(r->c.format, o->dest, &r->store, err);
	if (st)
		return st;
	r->c.store_caps = r->store->ops->caps;
	return ISNAP_OK;
}

/* After the units: the manifest's end, the first store's finish (which
 * makes an archive durable), and what that made durable in the state. */
static enum isnap_status finish(struct run *r, enum isnap_status st,
				struct isnap_error *err)
{
	struct isnap_error scratch = { 0 };
	struct isnap_error *e2 = backup_is_fatal(st) ? &scratch : err;
	enum isnap_status fst;

	if (r->c.ledger)
		ledger_summary(r->c.ledger, r->sum);
	end_manifest(r, st);
	/* Even after a fatal error, finish what is complete; the first
	 * error is the one to report. */
	fst = r->store->ops->finish(r->store, e2);
	if (fst && r->store->ops->durable_at_finish) {
		/* The volume is lost: nothing this run wrote is saved. */
		struct fetch_stats *f = &r->sum->fetch;
		f->uncommitted += f->saved;
		f->uncommitted_bytes += f->bytes;
		f->saved = f->bytes = 0;
	}
	if (!fst && r->store->ops->durable_at_finish && r->c.ledger)
		fst = ledger_finish(r->c.ledger, e2);
	if (fst && !backup_is_fatal(st))
		st = fst;
	if (!fst && manifest_sha256(r->c.manifest))
		snprintf(r->sum->manifest_sha256, sizeof r->sum->manifest_sha256,
			 "%s", manifest_sha256(r->c.manifest));
	if (!fst && manifest_sha256(r->c.manifest) &&
	    manifest_path(r->c.manifest))
		snprintf(r->sum->manifest_file, sizeof r->sum->manifest_file,
			 "%s", manifest_path(r->c.manifest));
	return st;
}

/* DEST/.imapsnap into r->state_fd, opened without following a symbolic
 * link (beneath.h): one planted there must not take the state, the lock
 * and the manifests elsewhere.  Without `create`, a missing DEST or
 * .imapsnap leaves r->state_fd at -1 (nothing saved yet). */
static enum isnap_status open_state_dir(struct run *r, bool create,
					struct isnap_error *err)
{
	int dest_fd = beneath_open_top(r->c.o->dest, false);

	if (dest_fd >= 0) {
		r->state_fd = beneath_open_dir(dest_fd, ".imapsnap", create);
		int saved = errno;
		close(dest_fd);
		errno = saved;
	}
	if (dest_fd >= 0 && r->state_fd >= 0)
		return ISNAP_OK;
	if (errno == ENOENT && !create)
		return ISNAP_OK;
	return isnap_fail_errno(err, ISNAP_ELOCAL, "%s",
				dest_fd < 0 ? r->c.o->dest : r->state_dir);
}

static enum isnap_status run_backup(struct run *r, struct isnap_error *err,
				    int *lock_fd)
{
	const struct backup_opts *o = r->c.o;
	struct state loaded = STATE_INIT;
	enum isnap_status st;

	if (o->dry_run) {
		/* Read what earlier runs saved, if anything; touch nothing. */
		r->c.sessions = connections_for(r);
		st = open_state_dir(r, false, err);
		if (!st)
			st = state_load(r->state_fd, r->state_dir, &loaded,
					err);
		if (st == ISNAP_EINTEGRITY)
			st = err->status = ISNAP_ELOCAL;
		if (!st)
			st = run_units(r, &loaded, err);
		if (r->c.ledger)
			ledger_summary(r->c.ledger, r->sum);
		state_free(&loaded);
		return st;
	}
	st = open_store(r, err);
	if (st)
		return st;
	r->c.sessions = connections_for(r);
	if (!r->single_file) {
		st = open_state_dir(r, true, err);
		if (!st)
			st = lock_acquire(r->state_fd, r->state_dir, lock_fd,
					  err);
		if (!st)
			st = state_load(r->state_fd, r->state_dir, &loaded,
					err);
		if (st == ISNAP_EINTEGRITY)
			st = err->status = ISNAP_ELOCAL;
		if (st)
			return st;
	}
	r->want_manifest = true;
	r->manifest_fd = r->single_file ? -1 : r->state_fd;
	st = run_units(r, &loaded, err);
	state_free(&loaded);
	/* Without a manifest (never logged in) nothing is finished either:
	 * a single-file export is not replaced by an empty one. */
	if (r->c.manifest)
		st = finish(r, st, err);
	return st;
}

enum isnap_status backup_run(const struct backup_opts *o,
			     const struct backup_events *ev,
			     struct backup_summary *sum,
			     struct isnap_error *err)
{
	struct run r = { .c = { .o = o }, .sum = sum, .state_fd = -1 };
	double start = now_seconds();
	int lock_fd = -1;
	enum isnap_status st;

	memset(sum, 0, sizeof *sum);
	backup_events_init(&r.events, ev);
	r.c.ev = &r.events.ev;
	r.session = o->session;
	backup_events_trace(&r.events, &r.session);
	date_criteria(o, r.c.criteria, sizeof r.c.criteria);
	snprintf(r.state_dir, sizeof r.state_dir, "%s/.imapsnap", o->dest);
	r.c.format = o->format ? o->format : "maildir";
	if (!(r.c.gmail = gmail_index_new()))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	if ((o->max_messages || o->max_bytes) && !o->dry_run &&
	    !(r.c.budget = budget_new(o->max_messages, o->max_bytes))) {
		gmail_index_free(r.c.gmail);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}

	st = run_backup(&r, err, &lock_fd);
	if (r.c.budget && budget_exhausted(r.c.budget) &&
	    (st == ISNAP_OK || st == ISNAP_EMSG || st == ISNAP_EFOLDER)) {
		uint64_t n, bytes;
		budget_used(r.c.budget, &n, &bytes);
		st = isnap_fail(err, ISNAP_ESTOPPED,
				"stopped at the run's budget (%llu messages, "
				"%llu bytes); %llu messages are left for the "
				"next run", (unsigned long long)n,
				(unsigned long long)bytes,
				(unsigned long long)budget_deferred(r.c.budget));
	}

	sum->seconds = now_seconds() - start;
	sum->interrupted = st == ISNAP_EINTERRUPTED;
	sched_free(r.c.sched);
	ledger_free(r.c.ledger);
	imap_folder_list_free(&r.c.folders);
	gmail_index_free(r.c.gmail);
	budget_free(r.c.budget);
	store_free(r.store);
	manifest_free(r.c.manifest);
	lock_release(lock_fd);
	if (r.state_fd >= 0)
		close(r.state_fd);
	backup_events_release(&r.events);
	return st;
}
