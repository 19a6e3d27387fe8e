/*
 * backup_list.c — see backup_list.h.
 */
#include "backup_list.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backup_events.h"
#include "backup_plan.h"
#include "imap/status.h"
#include "mutf7.h"

struct list_unit {
	struct sched_unit u;
	struct backup_ctx *c;
	bool folder_failed;
	/* Plans must conclude in the order they are queued: on Gmail (All
	 * Mail claims each message before the label folders look,
	 * backup_step_gmail.c) and with a budget (shared out in folder
	 * order).  Their planning units wait for EXAMINE before they send
	 * more, which keeps one session on one folder until it is planned. */
	bool in_order;
};

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

/* A name that is not valid modified UTF-7 is kept raw; it must not land
 * where another folder's decoded name does ("Entw\xfcrfe" sent as 8-bit
 * beside "Entw&APw-rfe"), or two folders would share one directory. */
static bool raw_name_collides(const struct imap_folder_list *l,
			      const char *raw)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *other = l->v[i].name;
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

/* A folder that cannot be backed up: said, counted and recorded here. */
static void fail_folder(struct list_unit *lu, struct sched_session *s,
			const struct imap_folder *lf, const char *utf8,
			const char *why)
{
	struct backup_ctx *c = lu->c;
	struct store *store = backup_store_of(s);
	struct isnap_error err = { 0 };
	struct store_folder f = { .name = lf->name, .utf8 = utf8,
				  .delim = lf->delim,
				  .ns_prefix = c->folders.ns.prefix,
				  .role = lf->special_use };

	isnap_fail(&err, ISNAP_EFOLDER, "%.200s%s: %s", utf8,
		   strlen(utf8) > 200 ? "..." : "", why);
	lu->folder_failed = true;
	ledger_count_failed_folder(c->ledger);
	if (store)
		manifest_store_skipped(store, &f, 0, err.msg);
	if (c->ev->folder_failed)
		c->ev->folder_failed(c->ev->ctx, utf8, &err);
}

/* What a folder's STATUS tells a plan, if it tells enough: UIDVALIDITY,
 * UIDNEXT, and with CONDSTORE HIGHESTMODSEQ (without it, a state that has
 * one could not tell flag changes; imap_status leaves it 0 then). */
static bool prior_of(const struct backup_ctx *c, const struct imap_status *st,
		     struct imap_mailbox_info *mi)
{
	if (!st || !st->known || !st->uidvalidity || !st->uidnext ||
	    (c->condstore && !st->highestmodseq))
		return false;
	*mi = (struct imap_mailbox_info){
		.uidvalidity = st->uidvalidity,
		.uidnext = st->uidnext,
		.exists = st->messages,
		.highestmodseq = c->condstore ? st->highestmodseq : 0,
	};
	return true;
}

static enum isnap_status queue_folder(struct list_unit *lu,
				      struct sched_session *s,
				      const struct imap_folder *lf,
				      const struct imap_status *status,
				      struct isnap_error *err)
{
	struct backup_ctx *c = lu->c;
	struct ledger_folder *f;
	struct sched_unit *pu;
	struct imap_mailbox_info prior;
	bool has_prior = prior_of(c, status, &prior), skipped = false;
	char *utf8 = NULL;
	const char *name;
	enum isnap_status st;

	if (mutf7_decode(lf->name, strlen(lf->name), &utf8) < 0) {
		if (errno == ENOMEM)
			return backup_oom(err);
		utf8 = NULL; /* not modified UTF-7: keep the raw name */
	}
	name = utf8 ? utf8 : lf->name;
	if (!selected(c->o, name)) {
		free(utf8);
		return ISNAP_OK;
	}
	if (lf->invalid) {
		char why[512];
		snprintf(why, sizeof why, "%s; not backed up", lf->invalid);
		fail_folder(lu, s, lf, name, why);
	} else if (!utf8 && raw_name_collides(&c->folders, lf->name)) {
		fail_folder(lu, s, lf, name,
			    "the name is not valid modified UTF-7 and would "
			    "share its place in the backup with another "
			    "folder; not backed up");
	} else if (!(f = ledger_find(c->ledger, lf->name))) {
		free(utf8);
		return backup_oom(err);
	} else if (has_prior &&
		   (st = backup_plan_skip(c, s, f, lf, name, &prior, &skipped,
					  err))) {
		free(utf8);
		return st;
	} else if (skipped) {
		/* Nothing changed: not even an EXAMINE. */
	} else if (!(pu = backup_plan_unit(c, f, lf, name,
					   has_prior && !lu->in_order ? &prior
								      : NULL))) {
		free(utf8);
		return backup_oom(err);
	} else {
		sched_post(c->sched, pu, false);
	}
	free(utf8);
	return ISNAP_OK;
}

/* Every folder's STATUS at once (LIST-STATUS, or one burst of STATUS), so
 * that folders where nothing changed need no round trip of their own.
 * NULL in *out when out of memory or when there is nothing to ask. */
static enum isnap_status folder_status(struct list_unit *lu,
				       struct sched_session *s,
				       struct imap_status **out,
				       struct isnap_error *err)
{
	struct backup_ctx *c = lu->c;
	struct imap_status *v;
	enum isnap_status st;

	*out = NULL;
	if (!c->folders.n)
		return ISNAP_OK;
	if (!(v = calloc(c->folders.n, sizeof *v)))
		return backup_oom(err);
	st = imap_status_all(sched_session_client(s), &c->folders, v,
			     IMAP_STATUS_SYNC, NULL, err);
	if (st) {
		imap_status_free(v, c->folders.n);
		return st;
	}
	*out = v;
	return ISNAP_OK;
}

static enum isnap_status lu_start(struct sched_unit *u, struct sched_session *s,
				  struct isnap_error *err)
{
	struct list_unit *lu = (struct list_unit *)u;
	struct backup_ctx *c = lu->c;
	struct imap_status *status = NULL;
	enum isnap_status st;

	u->sealed = true;
	c->condstore = imap_client_has_cap(sched_session_client(s),
					   "CONDSTORE");
	lu->in_order = c->budget ||
		       imap_client_has_cap(sched_session_client(s),
					   "X-GM-EXT-1");
	imap_folder_list_free(&c->folders);
	st = imap_list(sched_session_client(s), &c->folders, err);
	if (st)
		return st;
	if (c->folders.id.asked)
		manifest_server_id(c->manifest, c->folders.id.answered,
				   c->folders.id.field, c->folders.id.value,
				   c->folders.id.n);
	/* Every folder's entry first, in LIST order: the state file lists
	 * them so, whichever session reaches which folder first. */
	for (size_t i = 0; i < c->folders.n; i++) {
		const struct imap_folder *lf = &c->folders.v[i];
		if (lf->noselect || lf->invalid)
			continue;
		if (!ledger_add(c->ledger, lf->name, lf->delim))
			return backup_oom(err);
	}
	if ((st = folder_status(lu, s, &status, err)))
		return st;
	/* Gmail's All Mail (\\All) first: it holds every message once, so
	 * that is where each is fetched, and the label folders' copies are
	 * skipped (backup_step_gmail.c).  Elsewhere, LIST order. */
	for (int pass = 0; pass < 2 && !st; pass++) {
		for (size_t i = 0; i < c->folders.n && !st; i++) {
			const struct imap_folder *lf = &c->folders.v[i];
			bool all = lf->special_use &&
				   !strcasecmp(lf->special_use, "\\All");
			if (lf->noselect || all != (pass == 0))
				continue;
			st = queue_folder(lu, s, lf, status ? &status[i] : NULL,
					  err);
		}
	}
	imap_status_free(status, c->folders.n);
	return st;
}

static enum isnap_status lu_end(struct sched_unit *u, struct sched_session *s,
				enum isnap_status st, struct isnap_error *err,
				bool retrying)
{
	struct list_unit *lu = (struct list_unit *)u;

	(void)s;
	(void)err;
	if (retrying)
		return ISNAP_OK;
	/* LIST itself refused is the server's failure, not a folder's. */
	if (st == ISNAP_EFOLDER)
		st = err->status = ISNAP_EPROTO;
	if (!st && lu->folder_failed)
		st = ISNAP_EFOLDER;
	return st;
}

static void lu_free(struct sched_unit *u)
{
	free(u);
}

static const struct sched_unit_ops list_unit_ops = {
	.start = lu_start,
	.end = lu_end,
	.drop = lu_free,
	.free = lu_free,
};

static const struct imap_owner_ops no_answers = { 0 };

struct sched_unit *backup_list_unit(struct backup_ctx *c)
{
	struct list_unit *lu = calloc(1, sizeof *lu);

	if (!lu)
		return NULL;
	lu->u.ops = &list_unit_ops;
	lu->u.owner.ops = &no_answers;
	lu->u.exclusive = true;
	lu->c = c;
	return &lu->u;
}
