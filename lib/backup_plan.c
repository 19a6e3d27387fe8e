/*
 * backup_plan.c — the unit that plans one folder (see backup_plan.h):
 * EXAMINE, a new generation when UIDVALIDITY changed, the steps, and the
 * fetching units it leaves behind.
 */
#include "backup_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_events.h"
#include "backup_fetch.h"
#include "backup_step.h"

/* A folder is split when it has this many messages to fetch for each
 * session it could use, at least two. */
#define PART_MIN 500
/* What a planning unit weighs at most (see backup_plan_unit). */
#define PLAN_WEIGHT_MAX (PART_MIN / 4)

enum {
	COOKIE_EXAMINE = 1,
	COOKIE_SIZE,            /* dry run: RFC822.SIZE of what to fetch */
};

enum phase { PH_EXAMINE, PH_STEPS, PH_SIZES, PH_FETCH, PH_DONE };

struct plan_unit {
	struct sched_unit u;
	struct folder_plan fp;
	struct folder_fetch ff;       /* the first share, on this selection */
	char *utf8;
	enum phase phase;
	/* The plan is in the ledger, and this unit fetches `left` of it
	 * (after a lost connection: EXAMINE and fetch, nothing else). */
	bool planned;
	bool inline_share;            /* one of the plan's units is this */
	bool replan;                  /* UIDVALIDITY moved under the fetch */
	uint32_t planned_uidvalidity;
	struct uidset left;
	bool counted;                 /* in the folder count */
	bool open;                    /* the folder is open in the store */
	bool began;                   /* folder_begin was told */
	/* The folder's STATUS, from the listing, when known: with it the
	 * steps' commands go out right behind EXAMINE (`early`), and the
	 * unit is sealed at once so that the session goes on with other
	 * folders; EXAMINE's answer (`seen`) must then confirm it, or the
	 * folder is planned again the usual way (`stale`). */
	bool has_prior, early, stale;
	struct imap_mailbox_info prior, seen;
	unsigned units_out;           /* fetching units it left behind */
	bool wanted[16];              /* steps running here */
	void *mine[16];               /* their private data */
	uint64_t dry_bytes;
};

static struct plan_unit *pu_of(struct imap_owner *o)
{
	return (struct plan_unit *)((char *)o -
				    offsetof(struct plan_unit, u.owner));
}

static size_t nsteps(void)
{
	size_t n = 0;

	while (backup_plan_steps[n])
		n++;
	return n;
}

/* --- the folder ------------------------------------------------------------ */

static void store_folder_of(const struct folder_plan *fp,
			    struct store_folder *sf)
{
	*sf = (struct store_folder){
		.name = fp->folder->name,
		.utf8 = fp->utf8,
		.delim = fp->folder->delim,
		.ns_prefix = fp->c->folders.ns.prefix,
		.role = fp->folder->special_use,
		.uidvalidity = fp->server.uidvalidity,
		.uidnext = fp->server.uidnext,
		.exists = fp->server.exists,
		.highestmodseq = fp->server.highestmodseq,
	};
}

/* Nothing changed since the last run: no store access and no further
 * round trip. */
static bool unchanged(const struct folder_plan *fp)
{
	const struct imap_mailbox_info *mi = &fp->server;
	const struct state_folder *sf = &fp->state;

	/* A server that gained CONDSTORE since: once more by every
	 * message's flags (backup_step_allflags.c), then by MODSEQ. */
	if (mi->highestmodseq && !sf->highestmodseq &&
	    !uidset_empty(&sf->saved))
		return false;
	return sf->uidvalidity == mi->uidvalidity && mi->uidnext &&
	       sf->uidnext == mi->uidnext &&
	       (mi->highestmodseq && sf->highestmodseq
			? mi->highestmodseq == sf->highestmodseq
			: mi->exists == uidset_count(&sf->saved) -
						uidset_count(&sf->expunged));
}

/* A folder whose UIDVALIDITY changed: keep the old copy, start anew. */
static enum isnap_status new_generation(struct plan_unit *pu,
					struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct store_folder sf;
	uint32_t old = fp->state.uidvalidity;
	enum isnap_status st;

	store_folder_of(fp, &sf);
	st = fp->store->ops->retire_generation(fp->store, &sf, old, err);
	if (!st)
		st = ledger_new_generation(fp->lf, err);
	if (st)
		return st;
	ledger_release(&fp->state);
	st = ledger_read(fp->lf, &fp->state, err);
	if (st)
		return st;
	backup_notice(fp->c->ev,
		      "%s: UIDVALIDITY changed from %u to %u; the old copy is "
		      "kept as generation %u and the folder is fetched again",
		      fp->utf8, old, fp->server.uidvalidity, old);
	return ISNAP_OK;
}

static bool any_always(const struct backup_ctx *c)
{
	for (size_t i = 0; backup_plan_steps[i]; i++)
		if (backup_plan_steps[i]->always &&
		    backup_plan_steps[i]->always(c))
			return true;
	return false;
}

/* Ask each step; those with work send their commands. */
static enum isnap_status start_steps(struct plan_unit *pu,
				     struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	enum isnap_status st;

	for (size_t i = 0; backup_plan_steps[i]; i++) {
		const struct plan_step *ps = backup_plan_steps[i];
		if (fp->unchanged && !(ps->always && ps->always(fp->c)))
			continue;
		if (ps->size && !(pu->mine[i] = calloc(1, ps->size)))
			return backup_oom(err);
		if (ps->wanted && !ps->wanted(fp, pu->mine[i]))
			continue;
		pu->wanted[i] = true;
		fp->step = (unsigned)i;
		if (ps->send && (st = ps->send(fp, pu->mine[i], err)))
			return st;
	}
	return ISNAP_OK;
}

static enum isnap_status conclude_steps(struct plan_unit *pu,
					struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	enum isnap_status st;

	for (size_t i = 0; backup_plan_steps[i]; i++) {
		const struct plan_step *ps = backup_plan_steps[i];
		if (!pu->wanted[i] || !ps->conclude)
			continue;
		fp->step = (unsigned)i;
		if ((st = ps->conclude(fp, pu->mine[i], err)))
			return st;
	}
	return ISNAP_OK;
}

/* Dry run: the sizes of what would be fetched, in commands of 500. */
static enum isnap_status send_sizes(struct plan_unit *pu,
				    struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct uidset batch = UIDSET_INIT;
	uint32_t after = 0;
	enum isnap_status st = ISNAP_OK;
	char cmd[8192];

	pu->phase = PH_SIZES;
	for (;;) {
		char *set;
		long n = uidset_next_batch(&fp->todo, &after, 500, &batch);
		if (n <= 0) {
			if (n < 0)
				st = backup_oom(err);
			break;
		}
		if (uidset_format(&batch, &set)) {
			st = backup_oom(err);
			break;
		}
		snprintf(cmd, sizeof cmd, "UID FETCH %s (RFC822.SIZE)", set);
		free(set);
		if ((st = sched_send(fp->s, fp->u, COOKIE_SIZE, cmd, err)))
			break;
	}
	uidset_free(&batch);
	return st;
}

/* Cut `from` into shares by UID: add to `out` the UIDs at positions
 * [skip, skip + n), in ascending order.  Returns 0 or -1 (out of memory). */
static int slice(const struct uidset *from, uint64_t skip, uint64_t n,
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

/* Cut fp->todo into shares: one, or, when the store takes several
 * writers on a folder, from 2 * PART_MIN messages on one per session, of
 * PART_MIN / 2 messages at least.  The first stays in `first` for this unit (with `inline_ok`: the folder
 * is still selected for it); the others become fetching units in
 * `units`. */
static enum isnap_status share_out(struct plan_unit *pu, struct uidset *first,
				   bool inline_ok, struct sched_unit **units,
				   unsigned *n, struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct backup_ctx *c = fp->c;
	uint64_t count = uidset_count(&fp->todo), share;
	unsigned k = 1;

	*n = 0;
	if (!count)
		return ISNAP_OK;
	if ((c->store_caps & STORE_CAP_SPLIT_FOLDER) && c->sessions >= 2 &&
	    count >= 2 * PART_MIN) {
		k = c->sessions;
		/* As many shares as sessions, of 250 messages at least:
		 * fewer, larger shares leave the last one fetching alone
		 * while the other sessions have nothing left. */
		if (count / (PART_MIN / 2) < k)
			k = (unsigned)(count / (PART_MIN / 2));
	}
	share = (count + k - 1) / k;
	if (inline_ok && slice(&fp->todo, 0, share, first))
		return backup_oom(err);
	for (unsigned i = inline_ok; i < k; i++) {
		struct uidset part = UIDSET_INIT;
		if (slice(&fp->todo, i * share, share, &part)) {
			uidset_free(&part);
			return backup_oom(err);
		}
		if (uidset_empty(&part))
			continue;
		units[*n] = backup_fetch_unit(c, fp->lf, fp->folder, fp->utf8,
					      fp->server.uidvalidity, &part);
		uidset_free(&part);
		if (!units[*n])
			return backup_oom(err);
		++*n;
	}
	return ISNAP_OK;
}

/* Every answer in: the steps conclude, the plan goes to the ledger, the
 * other shares to the queue, and this unit fetches the first on the
 * folder it has selected. */
static enum isnap_status plan_done(struct plan_unit *pu,
				   struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct backup_ctx *c = fp->c;
	const struct backup_events *ev = c->ev;
	struct sched_unit *units[BACKUP_CONNECTIONS_MAX];
	struct uidset first = UIDSET_INIT, all = UIDSET_INIT;
	struct ledger_plan lp = {
		.uidvalidity = fp->server.uidvalidity,
		.highestmodseq = fp->server.highestmodseq,
		.held = &fp->held,
		.expunged = &fp->expunged,
	};
	unsigned n = 0;
	uint64_t saved = 0;
	enum isnap_status st;

	/* Early, other units may have selected other folders since. */
	bool inline_ok = !pu->early || sched_unit_is_last(&pu->u);

	st = conclude_steps(pu, err);
	if (!st)
		st = share_out(pu, &first, inline_ok, units, &n, err);
	/* Flags renamed in the store are durable before the state says
	 * they were seen (HIGHESTMODSEQ), or the flag record does. */
	if (!st && (fp->flags_changed || fp->flags_recorded))
		st = fp->store->ops->commit(fp->store, err);
	if (st)
		goto fail;
	pu->inline_share = !uidset_empty(&first);
	lp.units = n + pu->inline_share;
	lp.uidnext = fp->server.uidnext ? fp->server.uidnext
					: uidset_max(&fp->todo) + 1;
	if (fp->uidnext_cap && fp->uidnext_cap < lp.uidnext)
		lp.uidnext = fp->uidnext_cap;
	ledger_count(c->ledger, fp->lf, NULL, uidset_count(&fp->todo),
		     fp->flags_changed, uidset_count(&fp->expunged));
	if (!uidset_add_set(&all, &fp->state.saved) &&
	    !uidset_add_set(&all, &fp->held))
		saved = uidset_count(&all);
	uidset_free(&all);
	if (ev->folder_begin)
		ev->folder_begin(ev->ctx, fp->utf8, uidset_count(&fp->todo),
				 saved);
	/* The ledger takes the record over, whatever it answers. */
	lp.flags = fp->flag_record;
	lp.flags_dirty = fp->flag_record_dirty;
	fp->flag_record = NULL;
	st = ledger_planned(fp->lf, &lp, err);
	if (st)
		goto fail;
	pu->planned = true;
	pu->planned_uidvalidity = fp->server.uidvalidity;
	pu->units_out = n;
	/* Behind what is going on, in UID order. */
	for (unsigned i = n; i-- > 0;)
		sched_post(c->sched, units[i], true);
	pu->phase = PH_FETCH;
	uidset_free(&pu->left);
	pu->left = first;
	/* Enough to do here that what waits may go to one more session. */
	sched_expect(fp->s, uidset_count(&first));
	if (!pu->inline_share) {
		pu->u.sealed = true;
		return ISNAP_OK;
	}
	pu->u.sealed = false; /* the last unit started: it may send */
	st = folder_fetch_start(&pu->ff, fp->s, &pu->u, &pu->left, err);
	if (folder_fetch_sent(&pu->ff))
		pu->u.sealed = true;
	return st;
fail:
	uidset_free(&first);
	for (unsigned i = 0; i < n; i++)
		units[i]->ops->free(units[i]);
	return st;
}

/* EXAMINE is answered after the steps' commands went out with it, on the
 * STATUS's word: it must say the same, or those commands may have asked
 * the wrong things. */
static enum isnap_status examined_early(struct plan_unit *pu,
					struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	const struct backup_events *ev = fp->c->ev;
	const struct imap_mailbox_info *a = &pu->seen, *b = &pu->prior;
	struct store_folder sf;
	enum isnap_status st;

	if (a->uidvalidity != b->uidvalidity || a->uidnext != b->uidnext ||
	    a->exists != b->exists || a->highestmodseq != b->highestmodseq) {
		pu->stale = true;
		return isnap_fail(err, ISNAP_EFOLDER,
				  "the folder changed between STATUS and "
				  "EXAMINE");
	}
	pu->phase = PH_STEPS;
	if (!pu->counted) {
		pu->counted = true;
		ledger_count_folder(fp->lf);
	}
	store_folder_of(fp, &sf);
	manifest_store_examined(fp->store, &sf);
	if (fp->unchanged && !any_always(fp->c)) {
		if (ev->folder_begin)
			ev->folder_begin(ev->ctx, fp->utf8, 0,
					 uidset_count(&fp->state.saved));
		pu->phase = PH_DONE;
		return ISNAP_OK;
	}
	st = fp->store->ops->open_folder(fp->store, &sf, &fp->held, err);
	if (st)
		return st;
	pu->open = true;
	if (fp->step_cmds)
		return ISNAP_OK;
	return plan_done(pu, err);
}

/* With the folder's STATUS: the steps decide now, from it, and send their
 * commands right behind EXAMINE; nothing more is sent until the plan is
 * made. */
static enum isnap_status start_early(struct plan_unit *pu,
				     struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	enum isnap_status st;

	pu->early = true;
	fp->server = pu->prior;
	fp->unchanged = unchanged(fp);
	fp->same_generation = fp->state.uidvalidity == fp->server.uidvalidity;
	st = start_steps(pu, err);
	pu->u.sealed = true;
	return st;
}

/* EXAMINE is answered: decide what this folder needs. */
static enum isnap_status examined(struct plan_unit *pu,
				  const struct imap_response *r,
				  struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	const struct backup_events *ev = fp->c->ev;
	struct store_folder sf;
	enum isnap_status st;

	if (strcmp(r->name, "OK"))
		return isnap_fail(err,
				  !strcmp(r->name, "NO") ? ISNAP_EFOLDER
							 : ISNAP_EPROTO,
				  "the server said %s%s%s%s %s", r->name,
				  r->code ? " [" : "", r->code ? r->code : "",
				  r->code ? "]" : "", r->text ? r->text : "");
	if (pu->early)
		return examined_early(pu, err);
	if (!fp->server.uidvalidity)
		return isnap_fail(err, ISNAP_EFOLDER,
				  "the server reported no UIDVALIDITY");
	store_folder_of(fp, &sf);
	if (pu->planned) {
		/* Back after a lost connection, to fetch what is left. */
		if (fp->server.uidvalidity != pu->planned_uidvalidity) {
			pu->replan = true;
			return isnap_fail(err, ISNAP_EFOLDER,
					  "UIDVALIDITY changed during the run");
		}
		pu->phase = PH_FETCH;
		st = fp->store->ops->open_folder(fp->store, &sf, &fp->held,
						 err);
		if (st)
			return st;
		pu->open = true;
		return folder_fetch_skip(&pu->ff, &fp->held) ? backup_oom(err)
							      : ISNAP_OK;
	}
	pu->phase = PH_STEPS;
	/* A folder tried again after a lost connection counts once. */
	if (!pu->counted) {
		pu->counted = true;
		ledger_count_folder(fp->lf);
	}
	if (fp->store)
		manifest_store_examined(fp->store, &sf);
	fp->unchanged = unchanged(fp);
	/* A dry run reports every folder, unchanged ones with nothing. */
	if (fp->unchanged && !any_always(fp->c) && !fp->dry_run) {
		if (ev->folder_begin)
			ev->folder_begin(ev->ctx, fp->utf8, 0,
					 uidset_count(&fp->state.saved));
		pu->phase = PH_DONE;
		pu->u.sealed = true;
		return ISNAP_OK;
	}
	if (fp->dry_run) {
		if (fp->state.uidvalidity &&
		    fp->state.uidvalidity != fp->server.uidvalidity)
			backup_notice(ev,
				      "%s: UIDVALIDITY changed from %u to %u; "
				      "the old copy would be kept aside and "
				      "the folder fetched again",
				      fp->utf8, fp->state.uidvalidity,
				      fp->server.uidvalidity);
		if (fp->state.uidvalidity != fp->server.uidvalidity) {
			/* Planned as a new generation would be. */
			char *name = fp->state.name;
			ledger_release(&fp->state);
			fp->state.name = name;
		}
	} else {
		if (fp->state.uidvalidity &&
		    fp->state.uidvalidity != fp->server.uidvalidity &&
		    (st = new_generation(pu, err)))
			return st;
		st = fp->store->ops->open_folder(fp->store, &sf, &fp->held,
						 err);
		if (st)
			return st;
		pu->open = true;
	}
	fp->same_generation = fp->state.uidvalidity == fp->server.uidvalidity;
	st = start_steps(pu, err);
	if (st || pu->fp.step_cmds)
		return st;
	/* No step needed the server: planned already. */
	if (fp->dry_run) {
		pu->u.sealed = true;
		return conclude_steps(pu, err);
	}
	return plan_done(pu, err);
}

static enum isnap_status pu_untagged(struct imap_owner *o,
				     const struct imap_response *r,
				     struct isnap_error *err)
{
	struct plan_unit *pu = pu_of(o);
	struct folder_plan *fp = &pu->fp;
	enum isnap_status st;

	switch (pu->phase) {
	case PH_EXAMINE:
		imap_examine_response(pu->early ? &pu->seen : &fp->server, r);
		return ISNAP_OK;
	case PH_STEPS:
		for (size_t i = 0; backup_plan_steps[i]; i++) {
			const struct plan_step *ps = backup_plan_steps[i];
			if (!pu->wanted[i] || !ps->untagged)
				continue;
			fp->step = (unsigned)i;
			if ((st = ps->untagged(fp, pu->mine[i], r, err)))
				return st;
		}
		return ISNAP_OK;
	case PH_SIZES:
		imap_size_response(&pu->dry_bytes, r);
		return ISNAP_OK;
	case PH_FETCH:
		return folder_fetch_untagged(&pu->ff, r, err);
	case PH_DONE:
		break;
	}
	return ISNAP_OK;
}

static enum isnap_status pu_literal_begin(struct imap_owner *o,
					  const struct imap_response *partial,
					  uint64_t size, bool *stream,
					  struct isnap_error *err)
{
	struct plan_unit *pu = pu_of(o);

	return folder_fetch_literal_begin(&pu->ff,
					  pu->phase == PH_FETCH && pu->open,
					  partial, size, stream, err);
}

static enum isnap_status pu_literal_data(struct imap_owner *o,
					 const char *data, size_t len,
					 struct isnap_error *err)
{
	return folder_fetch_literal_data(&pu_of(o)->ff, data, len, err);
}

/* The tagged answer of a step's command. */
static enum isnap_status step_answered(struct plan_unit *pu, size_t i,
				       const struct imap_response *r,
				       struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	const struct plan_step *ps = backup_plan_steps[i];
	enum isnap_status st;

	pu->fp.step_cmds--;
	fp->step = (unsigned)i;
	if (ps->tagged)
		st = ps->tagged(fp, pu->mine[i], r, err);
	else if (strcmp(r->name, "OK"))
		st = isnap_fail(err,
				!strcmp(r->name, "NO") ? ISNAP_EFOLDER
						       : ISNAP_EPROTO,
				"the server said %s%s%s%s %s", r->name,
				r->code ? " [" : "", r->code ? r->code : "",
				r->code ? "]" : "", r->text ? r->text : "");
	else
		st = ISNAP_OK;
	if (st || pu->fp.step_cmds)
		return st;
	if (!fp->dry_run)
		return plan_done(pu, err);
	/* Dry run: the sizes of what would be fetched, then done. */
	if ((st = conclude_steps(pu, err)))
		return st;
	pu->u.sealed = true;
	return uidset_empty(&fp->todo) ? ISNAP_OK : send_sizes(pu, err);
}

static enum isnap_status pu_tagged(struct imap_owner *o, uintptr_t cookie,
				   const struct imap_response *r,
				   struct isnap_error *err)
{
	struct plan_unit *pu = pu_of(o);
	enum isnap_status st;

	if (fetch_cookie(cookie)) {
		st = folder_fetch_tagged(&pu->ff, cookie, r, err);
		if (folder_fetch_sent(&pu->ff))
			pu->u.sealed = true;
		return st;
	}
	if (cookie == COOKIE_EXAMINE)
		return examined(pu, r, err);
	if (cookie == COOKIE_SIZE) {
		if (strcmp(r->name, "OK"))
			return isnap_fail(err, ISNAP_EFOLDER,
					  "the server said %s %s", r->name,
					  r->text ? r->text : "");
		return ISNAP_OK;
	}
	if (cookie >= PLAN_STEP_COOKIE && cookie - PLAN_STEP_COOKIE < nsteps())
		return step_answered(pu, cookie - PLAN_STEP_COOKIE, r, err);
	return isnap_fail(err, ISNAP_EPROTO, "an answer nobody waited for");
}

static const struct imap_owner_ops pu_owner = {
	.untagged = pu_untagged,
	.literal_begin = pu_literal_begin,
	.literal_data = pu_literal_data,
	.tagged = pu_tagged,
};

/* --- the unit ---------------------------------------------------------------- */

static void release_steps(struct plan_unit *pu)
{
	for (size_t i = 0; backup_plan_steps[i]; i++) {
		const struct plan_step *ps = backup_plan_steps[i];
		if (pu->mine[i] && ps->release)
			ps->release(pu->mine[i]);
		free(pu->mine[i]);
		pu->mine[i] = NULL;
		pu->wanted[i] = false;
	}
}

/* Forget what one attempt found out (the plan itself stays). */
static void reset(struct plan_unit *pu)
{
	struct folder_plan *fp = &pu->fp;

	release_steps(pu);
	ledger_release(&fp->state);
	uidset_free(&fp->held);
	uidset_free(&fp->todo);
	uidset_free(&fp->expunged);
	memset(&fp->server, 0, sizeof fp->server);
	memset(&pu->seen, 0, sizeof pu->seen);
	pu->early = pu->stale = false;
	fp->flags_changed = fp->flags_recorded = 0;
	fp->fetched_uids_to = 0;
	flag_record_free(fp->flag_record);
	fp->flag_record = NULL;
	fp->flag_record_dirty = false;
	fp->unchanged = fp->same_generation = false;
	pu->fp.step_cmds = 0;
	pu->dry_bytes = 0;
	pu->phase = PH_EXAMINE;
}

static enum isnap_status pu_start(struct sched_unit *u, struct sched_session *s,
				  struct isnap_error *err)
{
	struct plan_unit *pu = (struct plan_unit *)u;
	struct folder_plan *fp = &pu->fp;
	char cmd[8192];
	enum isnap_status st;

	reset(pu);
	pu->replan = false;
	fp->s = s;
	fp->client = sched_session_client(s);
	fp->store = backup_store_of(s);
	st = ledger_read(fp->lf, &fp->state, err);
	if (st)
		return st;
	if (!imap_examine_command(fp->client, fp->folder->name, cmd,
				  sizeof cmd))
		return isnap_fail(err, ISNAP_EFOLDER,
				  "the folder name cannot be sent back to "
				  "this server");
	st = sched_send(s, u, COOKIE_EXAMINE, cmd, err);
	if (st)
		return st;
	if (!pu->planned) {
		if (pu->has_prior && !fp->dry_run &&
		    (!fp->state.uidvalidity ||
		     fp->state.uidvalidity == pu->prior.uidvalidity))
			return start_early(pu, err);
		return ISNAP_OK;
	}
	/* Resuming: the rest of the first share right behind EXAMINE. */
	st = folder_fetch_start(&pu->ff, s, u, &pu->left, err);
	if (folder_fetch_sent(&pu->ff))
		u->sealed = true;
	return st;
}

/* The folder changed between its STATUS and EXAMINE: planned again, from
 * EXAMINE. */
static enum isnap_status plan_again(struct plan_unit *pu,
				    struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct sched_unit *again;

	again = backup_plan_unit(fp->c, fp->lf, fp->folder, fp->utf8, NULL);
	if (!again)
		return backup_oom(err);
	((struct plan_unit *)again)->counted = pu->counted;
	sched_post(fp->c->sched, again, true);
	return ISNAP_OK;
}

/* The folder changed generation under a resumed fetch: a new plan. */
static enum isnap_status replan(struct plan_unit *pu, struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct sched_unit *again;
	struct isnap_error ignored = { 0 };

	ledger_unit_done(fp->lf, pu->left.n ? pu->left.r[0].first : 0, NULL,
			 &ignored);
	again = backup_plan_unit(fp->c, fp->lf, fp->folder, fp->utf8, NULL);
	if (!again)
		return backup_oom(err);
	((struct plan_unit *)again)->counted = pu->counted;
	sched_post(fp->c->sched, again, true);
	return ISNAP_OK;
}

static enum isnap_status pu_end(struct sched_unit *u, struct sched_session *s,
				enum isnap_status st, struct isnap_error *err,
				bool retrying)
{
	struct plan_unit *pu = (struct plan_unit *)u;
	struct folder_plan *fp = &pu->fp;
	const struct backup_events *ev = fp->c->ev;
	struct uidset left = UIDSET_INIT;
	bool fetched = pu->ff.f != NULL;

	(void)s;
	if (fetched)
		st = folder_fetch_end(&pu->ff, st, &left, err);
	if (pu->open) {
		struct isnap_error cerr = { 0 };
		enum isnap_status cst =
			fp->store->ops->close_folder(fp->store, &cerr);
		pu->open = false;
		if (!st && cst) {
			st = cst;
			*err = cerr;
		}
	}
	if (fetched) {
		uidset_free(&pu->left);
		pu->left = left;
	}
	if (retrying) {
		reset(pu);
		return ISNAP_OK;
	}
	if (pu->replan)
		return replan(pu, err);
	if (pu->stale)
		return plan_again(pu, err);
	if (!st && pu->phase == PH_DONE) {
		/* Nothing new. */
		struct fetch_stats none = { 0 };
		if (ev->folder_end)
			ev->folder_end(ev->ctx, fp->utf8, &none);
		return ISNAP_OK;
	}
	if (!st && fp->dry_run) {
		ledger_count(fp->c->ledger, NULL, NULL,
			     uidset_count(&fp->todo), 0, 0);
		if (ev->folder_planned)
			ev->folder_planned(ev->ctx, fp->utf8,
					   uidset_count(&fp->todo),
					   pu->dry_bytes);
		return ISNAP_OK;
	}
	if (pu->planned && pu->inline_share) {
		if (!st && (st = folder_fetch_defer(&pu->ff,
						    pu->planned_uidvalidity,
						    &pu->left, err)))
			return st;
		return folder_fetch_outcome(&pu->ff, st, &pu->left,
					    &fp->server, err);
	}
	if (pu->planned && !st && pu->units_out) {
		/* Planned; the fetching units end the folder. */
		return ISNAP_OK;
	}
	if (pu->planned && !st) {
		/* Planned, nothing for this unit to fetch. */
		struct fetch_stats fs;
		ledger_folder_stats(fp->lf, &fs);
		if (ev->folder_end && !pu->ff.message_failed)
			ev->folder_end(ev->ctx, fp->utf8, &fs);
		return ISNAP_OK;
	}
	if (st == ISNAP_EPROTO)
		st = err->status = ISNAP_EFOLDER;
	if (st && st != ISNAP_EMSG)
		isnap_error_prefix(err, "%.200s%s", fp->utf8,
				   strlen(fp->utf8) > 200 ? "..." : "");
	if (st == ISNAP_EFOLDER) {
		struct store_folder sf;
		store_folder_of(fp, &sf);
		ledger_count_failed_folder(fp->c->ledger);
		if (fp->store)
			manifest_store_skipped(fp->store, &sf, 0, err->msg);
		if (ev->folder_failed)
			ev->folder_failed(ev->ctx, fp->utf8, err);
	}
	return st;
}

static void pu_free(struct sched_unit *u)
{
	struct plan_unit *pu = (struct plan_unit *)u;

	reset(pu);
	uidset_free(&pu->left);
	free(pu->utf8);
	free(pu);
}

static void pu_drop(struct sched_unit *u)
{
	struct plan_unit *pu = (struct plan_unit *)u;
	struct isnap_error ignored = { 0 };

	/* A share planned and never fetched keeps UIDNEXT below it. */
	if (pu->planned && pu->inline_share)
		ledger_unit_done(pu->fp.lf,
				 pu->left.n ? pu->left.r[0].first : 0, NULL,
				 &ignored);
	pu_free(u);
}

static const struct sched_unit_ops plan_unit_ops = {
	.start = pu_start,
	.end = pu_end,
	.drop = pu_drop,
	.free = pu_free,
};

struct sched_unit *backup_plan_unit(struct backup_ctx *c,
				    struct ledger_folder *f,
				    const struct imap_folder *lf,
				    const char *utf8,
				    const struct imap_mailbox_info *prior)
{
	struct plan_unit *pu;

	if (nsteps() > sizeof pu->wanted / sizeof pu->wanted[0])
		return NULL;
	pu = calloc(1, sizeof *pu);
	if (!pu || !(pu->utf8 = strdup(utf8))) {
		free(pu);
		return NULL;
	}
	pu->u.ops = &plan_unit_ops;
	pu->u.owner.ops = &pu_owner;
	pu->u.retry = ledger_retry(f);
	pu->fp.c = c;
	pu->fp.lf = f;
	pu->fp.folder = lf;
	pu->fp.utf8 = pu->utf8;
	pu->fp.u = &pu->u;
	pu->fp.dry_run = c->o->dry_run;
	if (prior) {
		struct state_folder sf = { 0 };
		struct isnap_error ignored = { 0 };
		pu->has_prior = true;
		pu->prior = *prior;
		/* About what it will fetch, for opening more sessions. */
		pu->u.weight = prior->exists;
		if (!ledger_read(f, &sf, &ignored) &&
		    sf.uidvalidity == prior->uidvalidity && sf.uidnext)
			pu->u.weight = prior->uidnext > sf.uidnext
					       ? prior->uidnext - sf.uidnext
					       : 0;
		ledger_release(&sf);
		/* Capped: most of a big folder goes to fetching units, and
		 * in the session's window (BACKUP_UNITS_PER_SESSION's
		 * weight) the plan must not keep the next folders' plans
		 * out.  A few folders waiting still open sessions; a big
		 * one does when its shares are queued (sched_expect). */
		if (pu->u.weight > PLAN_WEIGHT_MAX)
			pu->u.weight = PLAN_WEIGHT_MAX;
	}
	folder_fetch_init(&pu->ff, c, f, lf, pu->utf8);
	return &pu->u;
}

/* From the STATUS alone, before anything is sent: nothing to do here?
 * The store is free (backup_plan_skip). */
static enum isnap_status quiet(struct plan_unit *pu, bool *skip,
			       struct isnap_error *err)
{
	struct folder_plan *fp = &pu->fp;
	struct store_folder sf;
	bool open = false, busy = false;
	enum isnap_status st;

	*skip = false;
	fp->server = pu->prior;
	if (!unchanged(fp))
		return ISNAP_OK;
	fp->unchanged = fp->same_generation = true;
	for (size_t i = 0; backup_plan_steps[i]; i++) {
		const struct plan_step *ps = backup_plan_steps[i];
		if (!(ps->always && ps->always(fp->c)))
			continue;
		if (ps->size && !(pu->mine[i] = calloc(1, ps->size)))
			return backup_oom(err);
		if (ps->wanted && !ps->wanted(fp, pu->mine[i]))
			continue;
		if (!ps->has_work)
			return ISNAP_OK; /* work with the server */
		pu->wanted[i] = open = true;
	}
	if (open) {
		store_folder_of(fp, &sf);
		st = fp->store->ops->open_folder(fp->store, &sf, &fp->held,
						 err);
		if (st)
			return st;
		for (size_t i = 0; backup_plan_steps[i] && !busy; i++)
			if (pu->wanted[i])
				busy = backup_plan_steps[i]->has_work(
					fp, pu->mine[i]);
		st = fp->store->ops->close_folder(fp->store, err);
		if (st)
			return st;
	}
	*skip = !busy;
	return ISNAP_OK;
}

enum isnap_status backup_plan_skip(struct backup_ctx *c,
				   struct sched_session *s,
				   struct ledger_folder *f,
				   const struct imap_folder *lf,
				   const char *utf8,
				   const struct imap_mailbox_info *prior,
				   bool *skipped, struct isnap_error *err)
{
	const struct backup_events *ev = c->ev;
	struct sched_unit *u;
	struct plan_unit *pu;
	struct folder_plan *fp;
	enum isnap_status st;

	*skipped = false;
	if (c->o->dry_run || !backup_store_of(s))
		return ISNAP_OK;
	if (!(u = backup_plan_unit(c, f, lf, utf8, prior)))
		return backup_oom(err);
	pu = (struct plan_unit *)u;
	fp = &pu->fp;
	fp->s = s;
	fp->client = sched_session_client(s);
	fp->store = backup_store_of(s);
	st = ledger_read(f, &fp->state, err);
	if (!st)
		st = quiet(pu, skipped, err);
	if (!st && *skipped) {
		/* As a folder whose EXAMINE showed nothing new. */
		struct store_folder sf;
		struct fetch_stats none = { 0 };
		store_folder_of(fp, &sf);
		ledger_count_folder(f);
		manifest_store_examined(fp->store, &sf);
		if (ev->folder_begin)
			ev->folder_begin(ev->ctx, fp->utf8, 0,
					 uidset_count(&fp->state.saved));
		if (ev->folder_end)
			ev->folder_end(ev->ctx, fp->utf8, &none);
	}
	u->ops->free(u);
	return st;
}
