/*
 * backup_fetch.c — see backup_fetch.h.
 */
#include "backup_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup_events.h"

/* --- the fetching ------------------------------------------------------- */

static enum isnap_status on_committed(void *ctx, const struct uidset *uids,
				      struct isnap_error *err)
{
	struct folder_fetch *ff = ctx;

	return ledger_committed(ff->lf, uids, err);
}

static void on_message_failed(void *ctx, uint32_t uid, const char *why)
{
	struct folder_fetch *ff = ctx;
	const struct backup_events *ev = ff->c->ev;

	ff->message_failed = true;
	ledger_message_failed(ff->lf, uid);
	if (ff->store && ff->c->manifest)
		manifest_store_skipped(ff->store, NULL, uid, why);
	if (ev->message_failed)
		ev->message_failed(ev->ctx, ff->utf8, uid, why);
}

static void on_message_saved(void *ctx, uint32_t uid, uint64_t bytes)
{
	struct folder_fetch *ff = ctx;
	const struct backup_events *ev = ff->c->ev;

	if (ev->message_saved)
		ev->message_saved(ev->ctx, ff->utf8, uid, bytes);
}

static enum isnap_status on_message_flags(void *ctx, uint32_t uid,
					  unsigned flags, const char *keywords,
					  struct isnap_error *err)
{
	struct folder_fetch *ff = ctx;

	return ledger_message_flags(ff->lf, uid, flags, keywords, err);
}

static void on_throttled(void *ctx, long wait_ms, const char *why,
			 const char *text)
{
	struct folder_fetch *ff = ctx;

	backup_warning(ff->c->ev, "%s: %s (%s); waiting %.1f s before "
		       "asking again", ff->utf8, why, text, wait_ms / 1000.0);
}

/* Asking again is for the unit the session sent last (scheduler.h). */
static bool on_may_send_again(void *ctx)
{
	struct folder_fetch *ff = ctx;

	return ff->u && sched_unit_is_last(ff->u);
}

void folder_fetch_init(struct folder_fetch *ff, struct backup_ctx *c,
		       struct ledger_folder *lf, const struct imap_folder *folder,
		       const char *utf8)
{
	memset(ff, 0, sizeof *ff);
	ff->c = c;
	ff->lf = lf;
	ff->folder = folder;
	ff->utf8 = utf8;
	ff->cb = (struct fetch_callbacks){
		.ctx = ff,
		.committed = on_committed,
		.message_failed = on_message_failed,
		.message_saved = on_message_saved,
		.throttled = on_throttled,
		.may_send_again = on_may_send_again,
	};
	ff->deferred_ms = -1;
}

enum isnap_status folder_fetch_start(struct folder_fetch *ff,
				     struct sched_session *s,
				     struct sched_unit *u,
				     const struct uidset *uids,
				     struct isnap_error *err)
{
	ff->store = backup_store_of(s);
	ff->u = u;
	ff->deferred_ms = -1;
	memset(&ff->stats, 0, sizeof ff->stats);
	ff->discarding = false;
	/* Without CONDSTORE, each message's flags go to the folder's
	 * record; with it, nothing costs more. */
	ff->cb.message_flags =
		ledger_follows_flags(ff->lf) ? on_message_flags : NULL;
	return fetch_start(sched_session_pipe(s), &u->owner, ff->store, uids,
			   &ff->c->o->fetch, &ff->cb, &ff->stats, &ff->f, err);
}

enum isnap_status folder_fetch_untagged(struct folder_fetch *ff,
					const struct imap_response *r,
					struct isnap_error *err)
{
	return ff->f ? fetch_untagged(ff->f, r, err) : ISNAP_OK;
}

enum isnap_status folder_fetch_literal_begin(struct folder_fetch *ff,
					     bool open,
					     const struct imap_response *partial,
					     uint64_t size, bool *stream,
					     struct isnap_error *err)
{
	ff->discarding = !open || !ff->f;
	if (ff->discarding) {
		/* A body before the folder is open: nobody asked for it
		 * yet.  Read it into the void. */
		*stream = true;
		return ISNAP_OK;
	}
	return fetch_literal_begin(ff->f, partial, size, stream, err);
}

enum isnap_status folder_fetch_literal_data(struct folder_fetch *ff,
					    const char *data, size_t len,
					    struct isnap_error *err)
{
	if (ff->discarding)
		return ISNAP_OK;
	return fetch_literal_data(ff->f, data, len, err);
}

enum isnap_status folder_fetch_tagged(struct folder_fetch *ff,
				      uintptr_t cookie,
				      const struct imap_response *r,
				      struct isnap_error *err)
{
	if (!ff->f)
		return isnap_fail(err, ISNAP_EPROTO,
				  "an answer nobody waited for");
	return fetch_tagged(ff->f, cookie, r, err);
}

int folder_fetch_skip(struct folder_fetch *ff, const struct uidset *held)
{
	return ff->f ? fetch_skip(ff->f, held) : 0;
}

bool folder_fetch_sent(const struct folder_fetch *ff)
{
	return !ff->f || fetch_all_sent(ff->f);
}

enum isnap_status folder_fetch_end(struct folder_fetch *ff,
				   enum isnap_status st, struct uidset *left,
				   struct isnap_error *err)
{
	if (ff->f) {
		ff->deferred_ms = fetch_deferred_ms(ff->f);
		st = fetch_end(ff->f, st, left, err);
		ff->f = NULL;
	}
	ledger_count(ff->c->ledger, ff->lf, &ff->stats, 0, 0, 0);
	if (ff->stats.unexpected) {
		/* Nothing was lost to it, but a server that sends what nobody
		 * asked for is broken and the run says so. */
		ff->message_failed = true;
		backup_warning(ff->c->ev,
			       "%s: the server sent %llu message bodies that "
			       "were not asked for, repeated, or without a "
			       "valid UID; they were ignored",
			       ff->utf8,
			       (unsigned long long)ff->stats.unexpected);
	}
	memset(&ff->stats, 0, sizeof ff->stats);
	return st;
}

enum isnap_status folder_fetch_defer(struct folder_fetch *ff,
				     uint32_t uidvalidity, struct uidset *left,
				     struct isnap_error *err)
{
	struct sched_unit *again;
	struct timespec now;
	long wait = ff->deferred_ms;

	ff->deferred_ms = -1;
	if (wait < 0 || uidset_empty(left))
		return ISNAP_OK;
	again = backup_fetch_unit(ff->c, ff->lf, ff->folder, ff->utf8,
				  uidvalidity, left);
	if (!again)
		return backup_oom(err);
	clock_gettime(CLOCK_MONOTONIC, &now);
	again->not_before = (double)now.tv_sec + now.tv_nsec / 1e9 +
			    wait / 1000.0;
	ledger_more_units(ff->lf, 1);
	uidset_free(left);
	sched_post(ff->c->sched, again, true);
	return ISNAP_OK;
}

enum isnap_status folder_fetch_outcome(struct folder_fetch *ff,
				       enum isnap_status st,
				       const struct uidset *left,
				       const struct imap_mailbox_info *mi,
				       struct isnap_error *err)
{
	const struct backup_events *ev = ff->c->ev;
	struct isnap_error ignored = { 0 };
	enum isnap_status lst;
	bool done = false;

	if (st == ISNAP_EPROTO)
		st = err->status = ISNAP_EFOLDER;
	lst = ledger_unit_done(ff->lf, left && left->n ? left->r[0].first : 0,
			       &done, st ? &ignored : err);
	if (!st)
		st = lst;
	if (st && st != ISNAP_EMSG)
		isnap_error_prefix(err, "%.200s%s", ff->utf8,
				   strlen(ff->utf8) > 200 ? "..." : "");
	if (st == ISNAP_EFOLDER) {
		struct store_folder sf = {
			.name = ff->folder->name,
			.utf8 = ff->utf8,
			.delim = ff->folder->delim,
			.ns_prefix = ff->c->folders.ns.prefix,
			.role = ff->folder->special_use,
			.uidvalidity = mi ? mi->uidvalidity : 0,
		};
		ledger_count_failed_folder(ff->c->ledger);
		if (ff->store && ff->c->manifest)
			manifest_store_skipped(ff->store, &sf, 0, err->msg);
		if (ev->folder_failed)
			ev->folder_failed(ev->ctx, ff->utf8, err);
	} else if (!st && done && ev->folder_end) {
		struct fetch_stats fs;
		ledger_folder_stats(ff->lf, &fs);
		ev->folder_end(ev->ctx, ff->utf8, &fs);
	}
	if (!st && ff->message_failed)
		st = ISNAP_EMSG;
	return st;
}

/* --- the fetching unit ---------------------------------------------------- */

enum { COOKIE_EXAMINE = 1 };

struct fetch_unit {
	struct sched_unit u;
	struct folder_fetch ff;
	char *utf8;
	uint32_t uidvalidity;
	struct uidset uids;       /* still to fetch */
	struct imap_mailbox_info mi;
	bool examined;            /* EXAMINE answered */
	bool open;                /* the folder is open in the store */
};

static struct fetch_unit *fu_of(struct imap_owner *o)
{
	return (struct fetch_unit *)((char *)o -
				     offsetof(struct fetch_unit, u.owner));
}

/* EXAMINE answered: the same generation as planned, then the folder is
 * opened in the store before the first body arrives. */
static enum isnap_status examined(struct fetch_unit *fu,
				  const struct imap_response *r,
				  struct isnap_error *err)
{
	struct store_folder sf = {
		.name = fu->ff.folder->name,
		.utf8 = fu->utf8,
		.delim = fu->ff.folder->delim,
		.ns_prefix = fu->ff.c->folders.ns.prefix,
		.role = fu->ff.folder->special_use,
	};
	struct uidset held = UIDSET_INIT;
	struct store *store = fu->ff.store;
	enum isnap_status st;

	fu->examined = true;
	if (strcmp(r->name, "OK"))
		return isnap_fail(err,
				  !strcmp(r->name, "NO") ? ISNAP_EFOLDER
							 : ISNAP_EPROTO,
				  "the server said %s %s", r->name,
				  r->text ? r->text : "");
	if (fu->mi.uidvalidity != fu->uidvalidity)
		return isnap_fail(err, ISNAP_EFOLDER,
				  "UIDVALIDITY changed during the run");
	sf.uidvalidity = fu->mi.uidvalidity;
	sf.uidnext = fu->mi.uidnext;
	sf.exists = fu->mi.exists;
	sf.highestmodseq = fu->mi.highestmodseq;
	st = store->ops->open_folder(store, &sf, &held, err);
	if (!st) {
		fu->open = true;
		if (folder_fetch_skip(&fu->ff, &held))
			st = backup_oom(err);
	}
	uidset_free(&held);
	return st;
}

static enum isnap_status fu_untagged(struct imap_owner *o,
				     const struct imap_response *r,
				     struct isnap_error *err)
{
	struct fetch_unit *fu = fu_of(o);

	if (!fu->examined) {
		imap_examine_response(&fu->mi, r);
		return ISNAP_OK;
	}
	return folder_fetch_untagged(&fu->ff, r, err);
}

static enum isnap_status fu_literal_begin(struct imap_owner *o,
					  const struct imap_response *partial,
					  uint64_t size, bool *stream,
					  struct isnap_error *err)
{
	struct fetch_unit *fu = fu_of(o);

	return folder_fetch_literal_begin(&fu->ff, fu->open, partial, size,
					  stream, err);
}

static enum isnap_status fu_literal_data(struct imap_owner *o,
					 const char *data, size_t len,
					 struct isnap_error *err)
{
	return folder_fetch_literal_data(&fu_of(o)->ff, data, len, err);
}

static enum isnap_status fu_tagged(struct imap_owner *o, uintptr_t cookie,
				   const struct imap_response *r,
				   struct isnap_error *err)
{
	struct fetch_unit *fu = fu_of(o);
	enum isnap_status st;

	if (!fetch_cookie(cookie))
		return examined(fu, r, err);
	st = folder_fetch_tagged(&fu->ff, cookie, r, err);
	if (folder_fetch_sent(&fu->ff))
		fu->u.sealed = true;
	return st;
}

static const struct imap_owner_ops fu_owner = {
	.untagged = fu_untagged,
	.literal_begin = fu_literal_begin,
	.literal_data = fu_literal_data,
	.tagged = fu_tagged,
};

static enum isnap_status fu_start(struct sched_unit *u,
				  struct sched_session *s,
				  struct isnap_error *err)
{
	struct fetch_unit *fu = (struct fetch_unit *)u;
	char cmd[8192];
	enum isnap_status st;

	memset(&fu->mi, 0, sizeof fu->mi);
	fu->examined = fu->open = false;
	fu->ff.store = backup_store_of(s);
	if (!imap_examine_command(sched_session_client(s),
				  fu->ff.folder->name, cmd, sizeof cmd))
		return isnap_fail(err, ISNAP_EFOLDER,
				  "the folder name cannot be sent back to "
				  "this server");
	st = sched_send(s, u, COOKIE_EXAMINE, cmd, err);
	if (!st)
		st = folder_fetch_start(&fu->ff, s, u, &fu->uids, err);
	if (folder_fetch_sent(&fu->ff))
		u->sealed = true;
	return st;
}

static enum isnap_status fu_end(struct sched_unit *u, struct sched_session *s,
				enum isnap_status st, struct isnap_error *err,
				bool retrying)
{
	struct fetch_unit *fu = (struct fetch_unit *)u;
	struct uidset left = UIDSET_INIT;

	(void)s;
	if (fu->ff.f) {
		st = folder_fetch_end(&fu->ff, st, &left, err);
	} else if (uidset_add_set(&left, &fu->uids) && !st) {
		st = backup_oom(err);
	}
	if (fu->open) {
		struct isnap_error cerr = { 0 };
		enum isnap_status cst =
			fu->ff.store->ops->close_folder(fu->ff.store, &cerr);
		fu->open = false;
		if (!st && cst) {
			st = cst;
			*err = cerr;
		}
	}
	/* Again on a new connection, with what is left; or over. */
	uidset_free(&fu->uids);
	fu->uids = left;
	if (retrying)
		return ISNAP_OK;
	if (!st && (st = folder_fetch_defer(&fu->ff, fu->uidvalidity,
					    &fu->uids, err)))
		return st;
	return folder_fetch_outcome(&fu->ff, st, &fu->uids, &fu->mi, err);
}

static void fu_free(struct sched_unit *u)
{
	struct fetch_unit *fu = (struct fetch_unit *)u;

	uidset_free(&fu->uids);
	free(fu->utf8);
	free(fu);
}

static void fu_drop(struct sched_unit *u)
{
	struct fetch_unit *fu = (struct fetch_unit *)u;
	struct isnap_error ignored = { 0 };

	/* Never fetched: the folder's UIDNEXT stays below it. */
	ledger_unit_done(fu->ff.lf, fu->uids.n ? fu->uids.r[0].first : 0, NULL,
			 &ignored);
	fu_free(u);
}

static const struct sched_unit_ops fetch_unit_ops = {
	.start = fu_start,
	.end = fu_end,
	.drop = fu_drop,
	.free = fu_free,
};

struct sched_unit *backup_fetch_unit(struct backup_ctx *c,
				     struct ledger_folder *f,
				     const struct imap_folder *lf,
				     const char *utf8, uint32_t uidvalidity,
				     const struct uidset *uids)
{
	struct fetch_unit *fu = calloc(1, sizeof *fu);

	if (!fu)
		return NULL;
	fu->u.ops = &fetch_unit_ops;
	fu->u.owner.ops = &fu_owner;
	fu->u.weight = uidset_count(uids);
	fu->u.retry = ledger_retry(f);
	fu->uidvalidity = uidvalidity;
	fu->utf8 = strdup(utf8);
	if (!fu->utf8 || uidset_add_set(&fu->uids, uids)) {
		fu_free(&fu->u);
		return NULL;
	}
	folder_fetch_init(&fu->ff, c, f, lf, fu->utf8);
	return &fu->u;
}
