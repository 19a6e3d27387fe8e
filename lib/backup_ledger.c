/*
 * backup_ledger.c — see backup_ledger.h.
 */
#include "backup_ledger.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ledger_folder {
	struct ledger *l;
	size_t idx;              /* into l->state.folders */
	bool planned;
	unsigned units_open;
	uint32_t target_uidnext; /* the plan's */
	uint32_t min_failed;     /* lowest UID not saved, 0: none */
	bool counted;
	struct uidset deferred;  /* committed, durable only at finish */
	uint32_t deferred_uidnext; /* to record at finish, 0: none */
	struct fetch_stats stats;
	struct sched_retry retry;
	/* Flags followed without MODSEQs (see backup_ledger.h): the record
	 * while the folder is being worked on, or NULL. */
	struct flag_record *fr;
	bool fr_dirty;           /* it differs from its file */
	bool fr_broken;          /* more sets than it may hold: none kept */
	bool fr_publish;         /* <name>.new written, for ledger_finish */
	bool fr_drop;            /* MODSEQs now: the file goes */
};

struct ledger {
	struct ledger_opts o;
	pthread_mutex_t lock;
	struct state state;
	size_t n_loaded;          /* entries read from the file */
	struct ledger_folder **f; /* parallel to state.folders */
	size_t nf;
	struct state_folder *view; /* scratch for saving */
	size_t view_alloc;
	/* The state differs from its file.  A run with nothing new changes
	 * nothing in it, and writing the same bytes again would cost three
	 * syncs a folder (temporary file, rename, directory). */
	bool dirty;
	int flags_fd;             /* DEST/.imapsnap/flags, -1 until opened */
	char flags_dir[4200];     /* its name, for messages */
	struct backup_summary sum;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

enum isnap_status ledger_new(const struct ledger_opts *o, struct state *loaded,
			     struct ledger **out, struct isnap_error *err)
{
	struct ledger *l = calloc(1, sizeof *l);

	*out = NULL;
	if (!l)
		return oom(err);
	l->o = *o;
	l->flags_fd = -1;
	snprintf(l->flags_dir, sizeof l->flags_dir, "%s/flags",
		 o->state_dir ? o->state_dir : "");
	l->state = *loaded;
	*loaded = (struct state)STATE_INIT;
	l->n_loaded = l->state.n;
	/* No file yet (or an empty one): the first save writes it. */
	l->dirty = l->n_loaded == 0;
	l->f = calloc(l->state.n ? l->state.n : 1, sizeof *l->f);
	if (!l->f) {
		state_free(&l->state);
		free(l);
		return oom(err);
	}
	for (size_t i = 0; i < l->state.n; i++) {
		if (!(l->f[i] = calloc(1, sizeof *l->f[i]))) {
			l->nf = i;
			ledger_free(l);
			return oom(err);
		}
		l->f[i]->l = l;
		l->f[i]->idx = i;
	}
	l->nf = l->state.n;
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return ISNAP_OK;
}

void ledger_free(struct ledger *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nf; i++) {
		if (l->f[i]) {
			uidset_free(&l->f[i]->deferred);
			flag_record_free(l->f[i]->fr);
		}
		free(l->f[i]);
	}
	free(l->f);
	free(l->view);
	if (l->flags_fd >= 0)
		close(l->flags_fd);
	state_free(&l->state);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static struct state_folder *sf_of(const struct ledger_folder *f)
{
	return &f->l->state.folders[f->idx];
}

struct ledger_folder *ledger_add(struct ledger *l, const char *name,
				 char delim)
{
	struct ledger_folder *f = ledger_find(l, name), **v;
	struct state_folder *sf;

	if (f) {
		pthread_mutex_lock(&l->lock);
		l->dirty |= sf_of(f)->delim != delim;
		sf_of(f)->delim = delim;
		pthread_mutex_unlock(&l->lock);
		return f;
	}
	pthread_mutex_lock(&l->lock);
	v = realloc(l->f, (l->nf + 1) * sizeof *v);
	if (v)
		l->f = v;
	f = v ? calloc(1, sizeof *f) : NULL;
	sf = f ? state_folder(&l->state, name, 1) : NULL;
	if (!sf) {
		free(f);
		f = NULL;
	} else {
		sf->delim = delim;
		f->l = l;
		f->idx = l->state.n - 1;
		l->f[l->nf++] = f;
	}
	pthread_mutex_unlock(&l->lock);
	return f;
}

struct ledger_folder *ledger_find(struct ledger *l, const char *name)
{
	struct ledger_folder *found = NULL;

	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nf && !found; i++)
		if (!strcmp(l->state.folders[l->f[i]->idx].name, name))
			found = l->f[i];
	pthread_mutex_unlock(&l->lock);
	return found;
}

const char *ledger_name(const struct ledger_folder *f)
{
	return sf_of(f)->name;
}

struct sched_retry *ledger_retry(struct ledger_folder *f)
{
	return &f->retry;
}

struct ledger *ledger_of(const struct ledger_folder *f)
{
	return f->l;
}

/* --- saving --------------------------------------------------------------- */

/* An entry this run made for a folder it never got to examine: as if
 * absent, and not written, so that the file is the same whichever session
 * reached which folder first. */
static bool never_examined(const struct ledger *l, size_t i)
{
	const struct state_folder *f = &l->state.folders[i];

	return i >= l->n_loaded && !f->uidvalidity && !f->uidnext &&
	       !f->highestmodseq && uidset_empty(&f->saved) &&
	       uidset_empty(&f->expunged) && !f->n_old;
}

/* With the lock held: `set` grew by `what` (0 or -1 as uidset_add_set). */
static int add_set_locked(struct ledger *l, struct uidset *set,
			  const struct uidset *what)
{
	uint64_t before = uidset_count(set);

	if (uidset_add_set(set, what))
		return -1;
	l->dirty |= uidset_count(set) != before;
	return 0;
}

/* With the lock held: the file brought up to date, if it is not. */
static enum isnap_status save_locked(struct ledger *l, struct isnap_error *err)
{
	struct state view;
	enum isnap_status st;

	if (l->o.state_fd < 0 || !l->dirty)
		return ISNAP_OK;
	if (l->view_alloc < l->state.n) {
		struct state_folder *v =
			realloc(l->view, l->state.n * sizeof *v);
		if (!v)
			return oom(err);
		l->view = v;
		l->view_alloc = l->state.n;
	}
	view.folders = l->view;
	view.n = 0;
	for (size_t i = 0; i < l->state.n; i++)
		if (!never_examined(l, i))
			view.folders[view.n++] = l->state.folders[i];
	view.alloc = view.n;
	st = state_save(l->o.state_fd, l->o.state_dir, &view, err);
	if (!st)
		l->dirty = false;
	return st;
}

/* --- flag records ---------------------------------------------------------- */

/* DEST/.imapsnap/flags, opened once (and made when `create`); -1 when
 * there is none, or no state at all. */
static int flags_dir_locked(struct ledger *l, bool create)
{
	if (l->flags_fd < 0 && l->o.state_fd >= 0)
		l->flags_fd = flag_record_open_dir(l->o.state_fd, create);
	return l->flags_fd;
}

/* With the lock held: the record's file brought up to date, when it
 * changed; `pending` for stores durable at finish. */
static enum isnap_status save_record_locked(struct ledger_folder *f,
					    bool pending,
					    struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st;
	int dfd;

	if (!f->fr || f->fr_broken || !f->fr_dirty || l->o.state_fd < 0)
		return ISNAP_OK;
	if ((dfd = flags_dir_locked(l, true)) < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", l->flags_dir);
	st = flag_record_save(dfd, l->flags_dir, sf_of(f)->name, f->fr,
			      pending, err);
	if (!st) {
		f->fr_dirty = false;
		f->fr_publish |= pending;
	}
	return st;
}

/* With the lock held: the folder is done, its record leaves memory. */
static enum isnap_status settle_record_locked(struct ledger_folder *f,
					      struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st = ISNAP_OK;

	if (f->fr && f->fr_broken)
		flag_record_remove(flags_dir_locked(l, false), sf_of(f)->name);
	else if (f->fr)
		st = save_record_locked(f, l->o.durable_at_finish, err);
	flag_record_free(f->fr);
	f->fr = NULL;
	f->fr_dirty = f->fr_broken = false;
	return st;
}

enum isnap_status ledger_flags_read(struct ledger_folder *f,
				    uint32_t uidvalidity,
				    struct flag_record **out,
				    struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st;
	bool found;

	pthread_mutex_lock(&l->lock);
	st = flag_record_load(flags_dir_locked(l, false), l->flags_dir,
			      sf_of(f)->name, uidvalidity, out, &found, err);
	pthread_mutex_unlock(&l->lock);
	return st;
}

bool ledger_follows_flags(struct ledger_folder *f)
{
	bool yes;

	pthread_mutex_lock(&f->l->lock);
	yes = f->fr != NULL && !f->fr_broken;
	pthread_mutex_unlock(&f->l->lock);
	return yes;
}

enum isnap_status ledger_message_flags(struct ledger_folder *f, uint32_t uid,
				       unsigned flags, const char *keywords,
				       struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st = ISNAP_OK;

	pthread_mutex_lock(&l->lock);
	if (f->fr && !f->fr_broken) {
		uint32_t id = flag_record_intern(f->fr, flags, keywords);
		if (id == FLAG_RECORD_NONE && errno == E2BIG)
			/* The next run's comparison fails the folder and
			 * says why; until then no record beats a wrong
			 * one. */
			f->fr_broken = true;
		else if (id == FLAG_RECORD_NONE ||
			 flag_record_stage(f->fr, uid, id))
			st = oom(err);
	}
	pthread_mutex_unlock(&l->lock);
	return st;
}

/* With the lock held: the plan's record becomes the folder's (or, with
 * MODSEQs, goes). */
static enum isnap_status take_record_locked(struct ledger_folder *f,
					    const struct ledger_plan *p,
					    struct isnap_error *err)
{
	struct ledger *l = f->l;
	struct flag_record *fr = p->flags;
	enum isnap_status st = ISNAP_OK;
	bool found;

	flag_record_free(f->fr);
	f->fr = NULL;
	f->fr_dirty = f->fr_broken = false;
	if (p->highestmodseq || l->o.state_fd < 0) {
		/* CONDSTORE follows the flags; a record read in the run
		 * that found it is not kept up to date any more. */
		f->fr_drop = fr != NULL;
		flag_record_free(fr);
		return ISNAP_OK;
	}
	f->fr_drop = false;
	if (!fr) {
		/* Nothing to compare in this plan (a first run, a new
		 * generation): the file's record, if any, goes on.  A
		 * damaged one starts anew, as the planning would. */
		st = flag_record_load(flags_dir_locked(l, false), l->flags_dir,
				      sf_of(f)->name, p->uidvalidity, &fr,
				      &found, err);
		if (st == ISNAP_EINTEGRITY) {
			fr = flag_record_new(p->uidvalidity);
			st = fr ? ISNAP_OK : oom(err);
		}
		if (st)
			return st;
	}
	f->fr = fr;
	f->fr_dirty = p->flags_dirty;
	return l->o.durable_at_finish ? ISNAP_OK
				      : save_record_locked(f, false, err);
}

/* --- planning ------------------------------------------------------------- */

enum isnap_status ledger_read(struct ledger_folder *f,
			      struct state_folder *copy,
			      struct isnap_error *err)
{
	struct ledger *l = f->l;
	const struct state_folder *sf;
	enum isnap_status st = ISNAP_OK;

	pthread_mutex_lock(&l->lock);
	sf = sf_of(f);
	copy->name = sf->name;
	copy->delim = sf->delim;
	copy->uidvalidity = sf->uidvalidity;
	copy->uidnext = sf->uidnext;
	copy->highestmodseq = sf->highestmodseq;
	if (uidset_add_set(&copy->saved, &sf->saved) ||
	    uidset_add_set(&copy->saved, &f->deferred) ||
	    uidset_add_set(&copy->expunged, &sf->expunged))
		st = oom(err);
	if (!st && sf->n_old) {
		copy->old_uidvalidity =
			malloc(sf->n_old * sizeof *copy->old_uidvalidity);
		if (!copy->old_uidvalidity)
			st = oom(err);
		else {
			memcpy(copy->old_uidvalidity, sf->old_uidvalidity,
			       sf->n_old * sizeof *copy->old_uidvalidity);
			copy->n_old = sf->n_old;
		}
	}
	pthread_mutex_unlock(&l->lock);
	if (st)
		ledger_release(copy);
	return st;
}

void ledger_release(struct state_folder *copy)
{
	uidset_free(&copy->saved);
	uidset_free(&copy->expunged);
	free(copy->old_uidvalidity);
	memset(copy, 0, sizeof *copy);
}

enum isnap_status ledger_new_generation(struct ledger_folder *f,
					struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st;

	pthread_mutex_lock(&l->lock);
	if (state_folder_retire(sf_of(f))) {
		st = oom(err);
	} else {
		l->dirty = true;
		uidset_free(&f->deferred);
		f->deferred_uidnext = 0;
		flag_record_free(f->fr);
		f->fr = NULL;
		f->fr_dirty = f->fr_broken = false;
		st = save_locked(l, err);
	}
	pthread_mutex_unlock(&l->lock);
	return st;
}

/* With the lock held: the folder's last unit is done. */
static enum isnap_status folder_done_locked(struct ledger_folder *f,
					    struct isnap_error *err)
{
	struct ledger *l = f->l;
	struct state_folder *sf = sf_of(f);
	uint32_t next = f->target_uidnext;
	enum isnap_status st;

	if (next < sf->uidnext)
		next = sf->uidnext;
	if (f->min_failed && f->min_failed < next)
		next = f->min_failed;
	if (l->o.keep_uidnext)
		next = sf->uidnext;
	f->planned = false;
	st = settle_record_locked(f, err);
	if (st)
		return st;
	if (l->o.durable_at_finish) {
		f->deferred_uidnext = next;
		return ISNAP_OK;
	}
	l->dirty |= sf->uidnext != next;
	sf->uidnext = next;
	st = save_locked(l, err);
	if (!st && f->fr_drop) {
		flag_record_remove(flags_dir_locked(l, false), sf->name);
		f->fr_drop = false;
	}
	return st;
}

enum isnap_status ledger_planned(struct ledger_folder *f,
				 const struct ledger_plan *p,
				 struct isnap_error *err)
{
	struct ledger *l = f->l;
	struct state_folder *sf;
	enum isnap_status st = ISNAP_OK;

	pthread_mutex_lock(&l->lock);
	sf = sf_of(f);
	l->dirty |= sf->uidvalidity != p->uidvalidity ||
		    sf->highestmodseq != p->highestmodseq;
	sf->uidvalidity = p->uidvalidity;
	sf->highestmodseq = p->highestmodseq;
	/* The record first: it is saved before the state says more. */
	st = take_record_locked(f, p, err);
	if (!st && ((p->held && add_set_locked(l, &sf->saved, p->held)) ||
		    (p->expunged &&
		     add_set_locked(l, &sf->expunged, p->expunged))))
		st = oom(err);
	if (!st) {
		f->planned = true;
		f->target_uidnext = p->uidnext;
		f->min_failed = 0;
		f->units_open += p->units;
		if (!f->units_open)
			st = folder_done_locked(f, err);
		else if ((p->held && !uidset_empty(p->held)) ||
			 (p->expunged && !uidset_empty(p->expunged)))
			st = l->o.durable_at_finish ? ISNAP_OK
						    : save_locked(l, err);
	}
	pthread_mutex_unlock(&l->lock);
	return st;
}

void ledger_more_units(struct ledger_folder *f, unsigned n)
{
	pthread_mutex_lock(&f->l->lock);
	f->units_open += n;
	pthread_mutex_unlock(&f->l->lock);
}

enum isnap_status ledger_committed(struct ledger_folder *f,
				   const struct uidset *uids,
				   struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st;

	pthread_mutex_lock(&l->lock);
	if (f->fr && !f->fr_broken) {
		long n = flag_record_commit(f->fr, uids);
		if (n < 0) {
			pthread_mutex_unlock(&l->lock);
			return oom(err);
		}
		f->fr_dirty |= n > 0;
	}
	if (l->o.durable_at_finish)
		st = uidset_add_set(&f->deferred, uids) ? oom(err) : ISNAP_OK;
	else if (add_set_locked(l, &sf_of(f)->saved, uids))
		st = oom(err);
	else if (!(st = save_record_locked(f, false, err)))
		st = save_locked(l, err);
	pthread_mutex_unlock(&l->lock);
	return st;
}

void ledger_message_failed(struct ledger_folder *f, uint32_t uid)
{
	pthread_mutex_lock(&f->l->lock);
	if (!f->min_failed || uid < f->min_failed)
		f->min_failed = uid;
	pthread_mutex_unlock(&f->l->lock);
}

enum isnap_status ledger_unit_done(struct ledger_folder *f,
				   uint32_t lowest_left, bool *folder_done,
				   struct isnap_error *err)
{
	struct ledger *l = f->l;
	enum isnap_status st = ISNAP_OK;
	bool done = false;

	pthread_mutex_lock(&l->lock);
	if (lowest_left && (!f->min_failed || lowest_left < f->min_failed))
		f->min_failed = lowest_left;
	if (f->units_open && !--f->units_open && f->planned) {
		done = true;
		st = folder_done_locked(f, err);
	}
	pthread_mutex_unlock(&l->lock);
	if (folder_done)
		*folder_done = done;
	return st;
}

/* With the lock held: every <name>.new of this run over its record, and
 * the directory synced once. */
static enum isnap_status publish_records_locked(struct ledger *l,
						struct isnap_error *err)
{
	enum isnap_status st = ISNAP_OK;
	bool any = false;
	int dfd = -1;

	for (size_t i = 0; i < l->nf && !st; i++) {
		struct ledger_folder *f = l->f[i];
		/* A folder stopped before it was done: what it committed
		 * is durable now too. */
		if (f->fr && !(st = save_record_locked(f, true, err))) {
			flag_record_free(f->fr);
			f->fr = NULL;
		}
		if (st || !f->fr_publish)
			continue;
		if ((dfd = flags_dir_locked(l, false)) < 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL, "%s",
						l->flags_dir);
		st = flag_record_publish(dfd, l->flags_dir, sf_of(f)->name,
					 err);
		f->fr_publish = false;
		any = true;
	}
	if (!st && any && fsync(dfd) != 0)
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s",
				      l->flags_dir);
	return st;
}

enum isnap_status ledger_finish(struct ledger *l, struct isnap_error *err)
{
	enum isnap_status st = ISNAP_OK;

	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nf && !st; i++) {
		struct ledger_folder *f = l->f[i];
		struct state_folder *sf = sf_of(f);
		if (add_set_locked(l, &sf->saved, &f->deferred))
			st = oom(err);
		else if (f->deferred_uidnext) {
			l->dirty |= sf->uidnext != f->deferred_uidnext;
			sf->uidnext = f->deferred_uidnext;
		}
		uidset_free(&f->deferred);
		f->deferred_uidnext = 0;
	}
	/* What the flag records name is durable now: in place with them,
	 * and the state after. */
	st = st ? st : publish_records_locked(l, err);
	if (!st)
		st = save_locked(l, err);
	for (size_t i = 0; i < l->nf && !st; i++)
		if (l->f[i]->fr_drop) {
			flag_record_remove(flags_dir_locked(l, false),
					   sf_of(l->f[i])->name);
			l->f[i]->fr_drop = false;
		}
	pthread_mutex_unlock(&l->lock);
	return st;
}

/* --- totals --------------------------------------------------------------- */

static void add_stats(struct fetch_stats *to, const struct fetch_stats *s)
{
	to->saved += s->saved;
	to->bytes += s->bytes;
	to->uncommitted += s->uncommitted;
	to->uncommitted_bytes += s->uncommitted_bytes;
	to->failed += s->failed;
	to->vanished += s->vanished;
	to->unexpected += s->unexpected;
	to->size_mismatch += s->size_mismatch;
}

bool ledger_count_folder(struct ledger_folder *f)
{
	bool first;

	pthread_mutex_lock(&f->l->lock);
	first = !f->counted;
	if (first) {
		f->counted = true;
		f->l->sum.folders++;
	}
	pthread_mutex_unlock(&f->l->lock);
	return first;
}

void ledger_count_failed_folder(struct ledger *l)
{
	pthread_mutex_lock(&l->lock);
	l->sum.folders_failed++;
	pthread_mutex_unlock(&l->lock);
}

void ledger_count_healed(struct ledger *l, uint64_t n)
{
	pthread_mutex_lock(&l->lock);
	l->sum.healed += n;
	pthread_mutex_unlock(&l->lock);
}

void ledger_count(struct ledger *l, struct ledger_folder *f,
		  const struct fetch_stats *fetched, uint64_t planned,
		  uint64_t flags_changed, uint64_t expunged)
{
	pthread_mutex_lock(&l->lock);
	if (fetched) {
		add_stats(&l->sum.fetch, fetched);
		if (f)
			add_stats(&f->stats, fetched);
	}
	l->sum.planned += planned;
	l->sum.flags_changed += flags_changed;
	l->sum.expunged += expunged;
	pthread_mutex_unlock(&l->lock);
}

void ledger_folder_stats(struct ledger_folder *f, struct fetch_stats *out)
{
	pthread_mutex_lock(&f->l->lock);
	*out = f->stats;
	pthread_mutex_unlock(&f->l->lock);
}

void ledger_summary(struct ledger *l, struct backup_summary *sum)
{
	pthread_mutex_lock(&l->lock);
	sum->folders = l->sum.folders;
	sum->folders_failed = l->sum.folders_failed;
	sum->planned = l->sum.planned;
	sum->fetch = l->sum.fetch;
	sum->flags_changed = l->sum.flags_changed;
	sum->expunged = l->sum.expunged;
	sum->healed = l->sum.healed;
	pthread_mutex_unlock(&l->lock);
}
