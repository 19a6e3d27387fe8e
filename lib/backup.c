/*
 * backup.c — see backup.h.  The run: the state directory and its lock,
 * the manifest, the folder list and the plan made before the sessions
 * start, and the first session on the caller's thread.  The rest is in
 * backup_folder.c, backup_sessions.c and backup_parts.c
 * (backup_internal.h).
 */
#include "backup.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_internal.h"
#include "beneath.h"
#include "lock.h"
#include "version.h"

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

struct folder_run *backup_find_run(struct run *r, const char *name)
{
	for (size_t i = 0; i < r->nruns; i++)
		if (!strcmp(r->runs[i].name, name))
			return &r->runs[i];
	return NULL;
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
	return backup_save_state_locked(r, err);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
		if (!backup_find_run(r, lf->name) && !folder_run(r, lf->name))
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
	backup_work(w0);
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
	backup_sf_release(&w0->sf);
	r->folders = NULL;
	imap_folder_list_free(&folders);
	return st;
}

/* Every message the store sees from now on is hashed and recorded. */
static enum isnap_status start_manifest(struct run *r, int state_fd,
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

	st = manifest_open(state_fd, r->state_dir, &info, &r->manifest, err);
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

/* DEST/.imapsnap into r->state_fd, opened without following a symbolic
 * link (beneath.h): one planted there must not take the state, the lock
 * and the manifests elsewhere.  Without `create`, a missing DEST or
 * .imapsnap leaves r->state_fd at -1 (nothing saved yet). */
static enum isnap_status open_state_dir(struct run *r, bool create,
					struct isnap_error *err)
{
	int dest_fd = beneath_open_top(r->o->dest, false);

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
				dest_fd < 0 ? r->o->dest : r->state_dir);
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
			backup_notice(r,
				      "%s is written as one stream: one "
				      "connection instead of %u",
				      r->format, r->o->connections);
		return 1;
	}
	return n;
}

enum isnap_status backup_run(const struct backup_opts *o,
			     const struct backup_events *ev,
			     struct backup_summary *sum,
			     struct isnap_error *err)
{
	struct run r = { .o = o, .user_ev = ev, .sum = sum, .state_fd = -1 };
	double start = now_seconds();
	int lock_fd = -1;
	enum isnap_status st, fst;

	memset(sum, 0, sizeof *sum);
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.ev_lock, NULL);
	pthread_cond_init(&r.changed, NULL);
	backup_serialise_events(&r);
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
		st = open_state_dir(&r, false, err);
		if (!st)
			st = state_load(r.state_fd, r.state_dir, &r.state, err);
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
		st = start_manifest(&r, -1, r.format, err);
		if (st)
			goto out;
		st = backup_account(&r, err);
		goto finish;
	}
	st = open_state_dir(&r, true, err);
	if (!st)
		st = lock_acquire(r.state_fd, r.state_dir, &lock_fd, err);
	if (!st)
		st = state_load(r.state_fd, r.state_dir, &r.state, err);
	if (st == ISNAP_EINTEGRITY)
		st = err->status = ISNAP_ELOCAL;
	if (st)
		goto out;

	st = start_manifest(&r, r.state_fd, r.format, err);
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
		if (!fst && manifest_sha256(r.manifest) &&
		    manifest_path(r.manifest))
			snprintf(sum->manifest_file, sizeof sum->manifest_file,
				 "%s", manifest_path(r.manifest));
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
	if (r.state_fd >= 0)
		close(r.state_fd);
	pthread_mutex_destroy(&r.lock);
	pthread_mutex_destroy(&r.ev_lock);
	pthread_cond_destroy(&r.changed);
	return st;
}
