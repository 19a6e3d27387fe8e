/*
 * backup_parts.c — folders split across sessions (struct part,
 * docs/decisions.md "Parallel sessions"): cutting a big folder's new
 * messages into shares, posting them, fetching another session's share,
 * giving a share back, and the owner's end of a split folder.
 */
#include "backup_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A folder is split when it has this many messages to fetch for each
 * session it could use, at least two. */
#define PART_MIN 500

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
struct part *backup_waiting_part(struct run *r, const struct folder_run *fr,
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
enum isnap_status backup_post_parts(struct worker *w,
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
	st = backup_publish_as(w, false, err);
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
		backup_spawn_worker(r);
	return ISNAP_OK;
}

/* The owner's end of a split folder, after its own share: fetch the parts
 * no session took (unless `st` says this session already failed, or the
 * run stops), wait for the others, and take over what they did not save.
 * Returns `st` or the failure of a part fetched here. */
enum isnap_status backup_end_parts(struct worker *w,
				   const struct fetch_callbacks *cb,
				   struct fetch_stats *stats, enum isnap_status st,
				   struct isnap_error *err)
{
	struct run *r = w->r;
	struct folder_run *fr = w->fr;
	size_t kept = 0;

	pthread_mutex_lock(&r->lock);
	while (fr->parts_open) {
		struct part *p = backup_waiting_part(r, fr, true);
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
			backup_count(r, &ps, 0, 0, 0);
			backup_add_stats(stats, &ps);
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
	backup_add_stats(stats, &fr->part_stats);
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
				  .delim = p->lf->delim,
				  .ns_prefix = r->folders->ns.prefix,
				  .role = p->lf->special_use };
	struct uidset present = UIDSET_INIT;
	struct fetch_stats stats = { 0 };
	struct fetch_callbacks cb = {
		.ctx = w,
		.committed = backup_on_committed,
		.message_failed = backup_on_message_failed,
		.message_saved = backup_on_message_saved,
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
	backup_count(r, &stats, 0, 0, 0);
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
	backup_add_stats(&p->fr->part_stats, &stats);
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
	if (st && backup_remove_set(&p->uids, &p->fr->part_saved) == 0) {
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

/* A part, and a new connection when this one failed under it. */
void backup_work_on_part(struct worker *w, struct part *p)
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
		backup_stop_run(r, st, &perr);
		pthread_mutex_unlock(&r->lock);
	} else if (st == ISNAP_ECONN || st == ISNAP_EPROTO ||
		   w->session_broken) {
		/* The owner takes the part back; this session starts over,
		 * once, for whatever comes next. */
		struct isnap_error rerr = { 0 };
		backup_warning(r,
			       "%s; the rest of this share of %s goes back "
			       "to the folder's first connection",
			       perr.msg, folder);
		w->session_broken = false;
		imap_client_close(w->client, false);
		w->client = NULL;
		if (imap_client_open(&r->o->session, &w->client, &rerr))
			backup_warning(r, "cannot reconnect: %s", rerr.msg);
	}
}
