/*
 * backup_folder.c — one folder, by one session: EXAMINE, plan the UIDs
 * not saved yet, sync flags and expunges, start a new generation when
 * UIDVALIDITY changed, fetch (or, in a dry run, only plan), and publish
 * the session's copy of the folder's state into the run's.
 */
#include "backup_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"

/* A session opens another only when it is about to fetch at least this
 * many messages: fewer take it less time (0.06 s at the 4,300 messages/s
 * of docs/performance.md) than a login over TLS through a 20 ms link
 * costs, and it will reach the next folders soon enough itself. */
#define SPAWN_MIN 250

/* --- the shared state -------------------------------------------------- */

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
enum isnap_status backup_save_state_locked(struct run *r,
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
	return state_save(r->state_fd, r->state_dir, &view, err);
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

void backup_sf_release(struct state_folder *sf)
{
	uidset_free(&sf->saved);
	uidset_free(&sf->expunged);
	free(sf->old_uidvalidity);
	memset(sf, 0, sizeof *sf);
}

/* The worker's copy of its folder's state becomes the run's, and the
 * state file is saved (unless !save: archives, whose state is saved once
 * the volume is complete). */
enum isnap_status backup_publish_as(struct worker *w, bool save,
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
			st = save ? backup_save_state_locked(r, err) : ISNAP_OK;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return st;
}

static enum isnap_status publish(struct worker *w, struct isnap_error *err)
{
	return backup_publish_as(w, true, err);
}

/* Add to the run's totals. */
void backup_count(struct run *r, const struct fetch_stats *s,
		  uint64_t planned, uint64_t flags_changed, uint64_t expunged)
{
	pthread_mutex_lock(&r->lock);
	if (s)
		backup_add_stats(&r->sum->fetch, s);
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
		st = backup_save_state_locked(r, err);
	pthread_mutex_unlock(&r->lock);
	return st;
}

enum isnap_status backup_on_committed(void *ctx, const struct uidset *uids,
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

void backup_on_message_failed(void *ctx, uint32_t uid, const char *why)
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

void backup_on_message_saved(void *ctx, uint32_t uid, uint64_t bytes)
{
	struct worker *w = ctx;
	struct run *r = w->r;

	if (r->ev && r->ev->message_saved)
		r->ev->message_saved(r->ev->ctx, w->folder_utf8, uid, bytes);
}

void backup_add_stats(struct fetch_stats *to, const struct fetch_stats *s)
{
	to->saved += s->saved;
	to->bytes += s->bytes;
	to->failed += s->failed;
	to->vanished += s->vanished;
	to->unexpected += s->unexpected;
	to->size_mismatch += s->size_mismatch;
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

int backup_remove_set(struct uidset *from, const struct uidset *what)
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
		backup_notice(fs->w->r, "%s: UID %u: flags not updated: %s",
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
		backup_count(r, NULL, 0, fs.changed, 0);
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
			    backup_remove_set(&gone, &sf->expunged) ||
			    backup_remove_set(&gone, &on_server) ||
			    uidset_add_set(&sf->expunged, &gone)))
			st = oom(err);
		n = uidset_count(&gone);
		if (!st && n) {
			backup_count(r, NULL, 0, 0, n);
			backup_notice(r,
				      "%s: %llu saved messages were expunged "
				      "on the server; their copies are kept",
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
	backup_notice(w->r,
		      "%s: UIDVALIDITY changed from %u to %u; the old copy is "
		      "kept as generation %u and the folder is fetched again",
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
		backup_notice(r,
			      "%s: UIDVALIDITY changed from %u to %u; the old "
			      "copy would be kept aside and the folder "
			      "fetched again",
			      f->utf8, sf->uidvalidity, mi->uidvalidity);
	if (sf->uidvalidity != mi->uidvalidity)
		sf = &fresh;
	st = plan(w, mi, sf, &todo, err);
	if (!st && !uidset_empty(&todo))
		st = imap_uid_total_size(w->client, &todo, &bytes, err);
	if (!st) {
		backup_count(r, NULL, uidset_count(&todo), 0, 0);
		if (r->ev && r->ev->folder_planned)
			r->ev->folder_planned(r->ev->ctx, f->utf8,
					      uidset_count(&todo), bytes);
	}
	uidset_free(&todo);
	return st;
}

enum isnap_status backup_folder(struct worker *w, const struct imap_folder *lf,
				struct isnap_error *err)
{
	struct run *r = w->r;
	struct imap_mailbox_info mi;
	struct store_folder f = { .name = lf->name, .delim = lf->delim,
				  .ns_prefix = r->folders->ns.prefix,
				  .role = lf->special_use };
	struct uidset todo = UIDSET_INIT, present = UIDSET_INIT;
	uint32_t todo_max = 0;
	struct fetch_stats stats = { 0 };
	struct fetch_callbacks cb = {
		.ctx = w,
		.committed = backup_on_committed,
		.message_failed = backup_on_message_failed,
		.message_saved = backup_on_message_saved,
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
		w->fr = backup_find_run(r, lf->name);
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
	backup_count(r, NULL, uidset_count(&todo), 0, 0);
	if (r->ev && r->ev->folder_begin)
		r->ev->folder_begin(r->ev->ctx, f.utf8, uidset_count(&todo),
				    uidset_count(&sf->saved));
	if (!uidset_empty(&todo)) {
		bool split;
		todo_max = uidset_max(&todo);
		/* Enough work found that the folders not examined yet may go
		 * to one more session meanwhile. */
		if (uidset_count(&todo) >= SPAWN_MIN)
			backup_spawn_worker(r);
		st = backup_post_parts(w, lf, &f, &todo, &split, err);
		if (st)
			goto close;
		st = fetch_messages(w->client, store, &todo, &r->o->fetch,
				    &cb, &stats, err);
		backup_count(r, &stats, 0, 0, 0);
		if (split)
			st = backup_end_parts(w, &cb, &stats, st, err);
		if (stats.unexpected) {
			/* Nothing was lost to it, but a server that sends what
			 * nobody asked for is broken and the run says so. */
			w->any_message_failed = true;
			backup_warning(r,
				       "%s: the server sent %llu message "
				       "bodies that were not asked for, "
				       "repeated, or without a valid UID; "
				       "they were ignored",
				       f.utf8,
				       (unsigned long long)stats.unexpected);
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
		st = backup_publish_as(w, !deferred_store(r), err);
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

