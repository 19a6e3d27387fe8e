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
#include "mutf7.h"

struct list_unit {
	struct sched_unit u;
	struct backup_ctx *c;
	bool folder_failed;
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

static enum isnap_status queue_folder(struct list_unit *lu,
				      struct sched_session *s,
				      const struct imap_folder *lf,
				      struct isnap_error *err)
{
	struct backup_ctx *c = lu->c;
	struct ledger_folder *f;
	struct sched_unit *pu;
	char *utf8 = NULL;
	const char *name;

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
	} else if (!(f = ledger_find(c->ledger, lf->name)) ||
		   !(pu = backup_plan_unit(c, f, lf, name))) {
		free(utf8);
		return backup_oom(err);
	} else {
		sched_post(c->sched, pu, false);
	}
	free(utf8);
	return ISNAP_OK;
}

static enum isnap_status lu_start(struct sched_unit *u, struct sched_session *s,
				  struct isnap_error *err)
{
	struct list_unit *lu = (struct list_unit *)u;
	struct backup_ctx *c = lu->c;
	enum isnap_status st;

	u->sealed = true;
	c->condstore = imap_client_has_cap(sched_session_client(s),
					   "CONDSTORE");
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
	/* Gmail's All Mail (\All) first: it holds every message once, so
	 * that is where each is fetched, and the label folders' copies are
	 * skipped (backup_step_gmail.c).  Elsewhere, LIST order. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < c->folders.n; i++) {
			const struct imap_folder *lf = &c->folders.v[i];
			bool all = lf->special_use &&
				   !strcasecmp(lf->special_use, "\\All");
			if (lf->noselect || all != (pass == 0))
				continue;
			if ((st = queue_folder(lu, s, lf, err)))
				return st;
		}
	}
	return ISNAP_OK;
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
