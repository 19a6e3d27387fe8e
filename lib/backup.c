/* backup.c — see backup.h. */
#include "backup.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "imap/client.h"
#include "imap/commands.h"
#include "lock.h"
#include "manifest.h"
#include "mutf7.h"
#include "state.h"
#include "store/store.h"
#include "version.h"

/* Per-folder bookkeeping that must wait for the store to make it durable. */
struct folder_run {
	char *name;             /* server name, the state key */
	struct uidset deferred; /* saved, durable only at store finish */
	uint32_t uidnext;       /* to record once `deferred` is durable */
	bool counted;           /* in backup_summary.folders already */
};

struct run {
	const struct backup_opts *o;
	const struct backup_events *ev;
	struct backup_summary *sum;
	struct imap_client *client;
	struct store *store;    /* the real store, wrapped by the manifest */
	struct manifest *manifest; /* NULL in a dry run */
	struct state state;
	char state_dir[4096];
	bool single_file; /* one complete export; no state kept */
	bool session_broken; /* the server broke the protocol: reconnect */
	struct folder_run *runs;
	size_t nruns;
	const struct imap_folder_list *folders;
	char criteria[128]; /* SEARCH date criteria, "" for none */

	/* The folder being fetched. */
	const char *folder_utf8;
	struct state_folder *sf;
	struct folder_run *fr;
	uint32_t min_failed;
	bool any_message_failed;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static void notice(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(struct run *r, const char *fmt, ...)
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

static void warning(struct run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warning(struct run *r, const char *fmt, ...)
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

static bool deferred_store(const struct run *r)
{
	return r->store->ops->durable_at_finish;
}

static enum isnap_status save_state(struct run *r, struct isnap_error *err)
{
	if (r->single_file)
		return ISNAP_OK;
	return state_save(r->state_dir, &r->state, err);
}

/* fetch callbacks */

static enum isnap_status on_committed(void *ctx, const struct uidset *uids,
				      struct isnap_error *err)
{
	struct run *r = ctx;

	if (deferred_store(r))
		return uidset_add_set(&r->fr->deferred, uids) ? oom(err)
							       : ISNAP_OK;
	if (uidset_add_set(&r->sf->saved, uids))
		return oom(err);
	return save_state(r, err);
}

static void on_message_failed(void *ctx, uint32_t uid, const char *why)
{
	struct run *r = ctx;

	r->any_message_failed = true;
	if (!r->min_failed || uid < r->min_failed)
		r->min_failed = uid;
	if (r->manifest)
		manifest_skipped(r->manifest, NULL, uid, why);
	if (r->ev && r->ev->message_failed)
		r->ev->message_failed(r->ev->ctx, r->folder_utf8, uid, why);
}

static void on_message_saved(void *ctx, uint32_t uid, uint64_t bytes)
{
	struct run *r = ctx;

	if (r->ev && r->ev->message_saved)
		r->ev->message_saved(r->ev->ctx, r->folder_utf8, uid, bytes);
}

static void add_stats(struct fetch_stats *to, const struct fetch_stats *s)
{
	to->saved += s->saved;
	to->bytes += s->bytes;
	to->failed += s->failed;
	to->vanished += s->vanished;
	to->unexpected += s->unexpected;
	to->size_mismatch += s->size_mismatch;
}

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

static int remove_set(struct uidset *from, const struct uidset *what)
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
static enum isnap_status plan(struct run *r, const struct imap_mailbox_info *mi,
			      struct state_folder *sf, struct uidset *todo,
			      struct isnap_error *err)
{
	enum isnap_status st;

	if (mi->exists == 0)
		return ISNAP_OK;
	if (!date_filtered(r) && mi->uidnext && sf->uidnext == mi->uidnext)
		return ISNAP_OK;
	st = imap_uid_search(r->client, sf->uidnext, r->criteria, todo, err);
	if (st)
		return st;
	for (size_t i = 0; i < sf->saved.n; i++)
		if (uidset_remove_range(todo, sf->saved.r[i].first,
					sf->saved.r[i].last))
			return oom(err);
	/* Archives: saved earlier in this run, durable at finish. */
	if (r->fr)
		for (size_t i = 0; i < r->fr->deferred.n; i++)
			if (uidset_remove_range(todo, r->fr->deferred.r[i].first,
						r->fr->deferred.r[i].last))
				return oom(err);
	return ISNAP_OK;
}

struct flag_sync {
	struct run *r;
	struct state_folder *sf;
	uint64_t changed;
};

static enum isnap_status on_flags_changed(void *ctx, uint32_t uid,
					  const struct imap_arg *flags,
					  uint64_t modseq,
					  struct isnap_error *err)
{
	struct flag_sync *fs = ctx;
	struct store *s = fs->r->store;
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
		notice(fs->r, "%s: UID %u: flags not updated: %s",
		       fs->r->folder_utf8, uid, err->msg);
		return ISNAP_OK;
	}
	return st;
}

/* What happened since the last run to messages already saved: new flags
 * (CONDSTORE CHANGEDSINCE) and expunges (a UID set comparison).  Nothing is
 * ever removed from the backup; expunges are recorded in the state. */
static enum isnap_status sync_changes(struct run *r,
				      const struct imap_mailbox_info *mi,
				      struct state_folder *sf,
				      struct isnap_error *err)
{
	uint64_t live = uidset_count(&sf->saved) - uidset_count(&sf->expunged);
	bool condstore = mi->highestmodseq && sf->highestmodseq;
	bool look_for_expunges;
	enum isnap_status st;

	if (uidset_empty(&sf->saved))
		return ISNAP_OK;
	if (condstore) {
		struct flag_sync fs = { r, sf, 0 };
		if (mi->highestmodseq == sf->highestmodseq)
			return ISNAP_OK;
		st = imap_uid_changed_flags(r->client, sf->uidnext,
					    sf->highestmodseq,
					    on_flags_changed, &fs, err);
		if (st)
			return st;
		r->sum->flags_changed += fs.changed;
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
		st = imap_uid_search(r->client, 1, NULL, &on_server, err);
		if (!st && (uidset_add_set(&gone, &sf->saved) ||
			    remove_set(&gone, &sf->expunged) ||
			    remove_set(&gone, &on_server) ||
			    uidset_add_set(&sf->expunged, &gone)))
			st = oom(err);
		n = uidset_count(&gone);
		if (!st && n) {
			r->sum->expunged += n;
			notice(r,
			       "%s: %llu saved messages were expunged on the "
			       "server; their copies are kept",
			       r->folder_utf8, (unsigned long long)n);
		}
		uidset_free(&on_server);
		uidset_free(&gone);
		if (st)
			return st;
	}
	return ISNAP_OK;
}

/* A folder whose UIDVALIDITY changed: keep the old copy, start anew. */
static enum isnap_status new_generation(struct run *r,
					const struct store_folder *f,
					struct state_folder *sf,
					struct isnap_error *err)
{
	uint32_t old = sf->uidvalidity;
	enum isnap_status st;

	st = r->store->ops->retire_generation(r->store, f, old, err);
	if (st)
		return st;
	if (state_folder_retire(sf))
		return oom(err);
	notice(r,
	       "%s: UIDVALIDITY changed from %u to %u; the old copy is kept "
	       "as generation %u and the folder is fetched again",
	       f->utf8, old, f->uidvalidity, old);
	return ISNAP_OK;
}

/* --dry-run: what backup_folder would fetch, and nothing written. */
static enum isnap_status dry_run_folder(struct run *r,
					const struct store_folder *f,
					const struct imap_mailbox_info *mi,
					struct state_folder *sf,
					struct isnap_error *err)
{
	struct state_folder fresh = { .name = sf->name };
	struct uidset todo = UIDSET_INIT;
	uint64_t bytes = 0;
	enum isnap_status st;

	if (sf->uidvalidity && sf->uidvalidity != mi->uidvalidity)
		notice(r,
		       "%s: UIDVALIDITY changed from %u to %u; the old copy "
		       "would be kept aside and the folder fetched again",
		       f->utf8, sf->uidvalidity, mi->uidvalidity);
	if (sf->uidvalidity != mi->uidvalidity)
		sf = &fresh;
	st = plan(r, mi, sf, &todo, err);
	if (!st && !uidset_empty(&todo))
		st = imap_uid_total_size(r->client, &todo, &bytes, err);
	if (!st) {
		r->sum->planned += uidset_count(&todo);
		if (r->ev && r->ev->folder_planned)
			r->ev->folder_planned(r->ev->ctx, f->utf8,
					      uidset_count(&todo), bytes);
	}
	uidset_free(&todo);
	return st;
}

static enum isnap_status backup_folder(struct run *r,
				       const struct imap_folder *lf,
				       struct isnap_error *err)
{
	struct imap_mailbox_info mi;
	struct store_folder f = { .name = lf->name, .delim = lf->delim };
	struct uidset todo = UIDSET_INIT, present = UIDSET_INIT;
	struct fetch_stats stats = { 0 };
	struct fetch_callbacks cb = {
		.ctx = r,
		.committed = on_committed,
		.message_failed = on_message_failed,
		.message_saved = on_message_saved,
	};
	char *utf8 = NULL;
	struct state_folder *sf;
	enum isnap_status st = ISNAP_OK;

	if (mutf7_decode(lf->name, strlen(lf->name), &utf8) < 0) {
		if (errno == ENOMEM)
			return oom(err);
		utf8 = NULL; /* not modified UTF-7: keep the raw name */
	}
	f.utf8 = utf8 ? utf8 : lf->name;
	r->folder_utf8 = f.utf8;
	r->min_failed = 0;
	r->any_message_failed = false;
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

	st = imap_examine(r->client, lf->name, &mi, err);
	if (!st && mi.uidvalidity == 0)
		st = isnap_fail(err, ISNAP_EFOLDER,
				"the server reported no UIDVALIDITY");
	if (st)
		goto out;
	f.uidvalidity = mi.uidvalidity;
	f.uidnext = mi.uidnext;
	f.exists = mi.exists;
	f.highestmodseq = mi.highestmodseq;
	if (r->manifest)
		manifest_examined(r->manifest, &f);

	sf = state_folder(&r->state, lf->name, 1);
	r->fr = folder_run(r, lf->name);
	if (!sf || !r->fr) {
		st = oom(err);
		goto out;
	}
	/* A folder tried again after a lost connection counts once. */
	if (!r->fr->counted) {
		r->fr->counted = true;
		r->sum->folders++;
	}
	r->sf = sf;
	sf->delim = lf->delim;
	if (r->o->dry_run) {
		st = dry_run_folder(r, &f, &mi, sf, err);
		goto out;
	}
	if (sf->uidvalidity && sf->uidvalidity != mi.uidvalidity) {
		st = new_generation(r, &f, sf, err);
		if (!st)
			st = save_state(r, err);
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
	st = r->store->ops->open_folder(r->store, &f, &present, err);
	if (st)
		goto out;
	if (sf->uidvalidity == mi.uidvalidity) {
		st = sync_changes(r, &mi, sf, err);
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
	st = plan(r, &mi, sf, &todo, err);
	if (st)
		goto close;
	r->sum->planned += uidset_count(&todo);
	if (r->ev && r->ev->folder_begin)
		r->ev->folder_begin(r->ev->ctx, f.utf8, uidset_count(&todo),
				    uidset_count(&sf->saved));
	if (!uidset_empty(&todo)) {
		st = fetch_messages(r->client, r->store, &todo, &r->o->fetch,
				    &cb, &stats, err);
		add_stats(&r->sum->fetch, &stats);
		if (stats.unexpected) {
			/* Nothing was lost to it, but a server that sends what
			 * nobody asked for is broken and the run says so. */
			r->any_message_failed = true;
			warning(r,
				"%s: the server sent %llu message bodies that "
				"were not asked for, repeated, or without a "
				"valid UID; they were ignored",
				f.utf8, (unsigned long long)stats.unexpected);
		}
		if (st)
			goto close;
	}
	/* Everything below the new UIDNEXT is now saved or gone — except
	 * failed messages, which the next run must try again. */
	{
		uint32_t next = mi.uidnext ? mi.uidnext
					   : uidset_max(&todo) + 1;
		if (next < sf->uidnext)
			next = sf->uidnext;
		if (r->min_failed && r->min_failed < next)
			next = r->min_failed;
		/* A date filter left older messages out on purpose; a later
		 * run without it must still find them. */
		if (date_filtered(r))
			next = sf->uidnext;
		if (deferred_store(r))
			r->fr->uidnext = next;
		else
			sf->uidnext = next;
	}
close:
	{
		enum isnap_status cst = r->store->ops->close_folder(r->store,
								    err);
		if (!st)
			st = cst;
	}
	if (!st && !deferred_store(r))
		st = save_state(r, err);
done:
	if (!st && r->ev && r->ev->folder_end)
		r->ev->folder_end(r->ev->ctx, f.utf8, &stats);
	if (!st && r->any_message_failed)
		st = ISNAP_EMSG;
out:
	if (st == ISNAP_EPROTO) {
		/* It would break the same way again: the folder fails, the
		 * others go on over a new connection. */
		r->session_broken = true;
		st = err->status = ISNAP_EFOLDER;
	}
	if (st && st != ISNAP_EMSG)
		isnap_error_prefix(err, "%.200s%s", f.utf8,
				   strlen(f.utf8) > 200 ? "..." : "");
	if (st == ISNAP_EFOLDER) {
		r->sum->folders_failed++;
		if (r->manifest)
			manifest_skipped(r->manifest, &f, 0, err->msg);
		if (r->ev && r->ev->folder_failed)
			r->ev->folder_failed(r->ev->ctx, f.utf8, err);
	}
	r->folder_utf8 = NULL;
	uidset_free(&todo);
	uidset_free(&present);
	free(utf8);
	return st;
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
	return save_state(r, err);
}

static bool is_fatal(enum isnap_status st)
{
	return st != ISNAP_OK && st != ISNAP_EMSG && st != ISNAP_EFOLDER;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Connect again, up to the retries left, waiting longer each time. */
static enum isnap_status reopen(struct run *r, unsigned *attempt, long *delay,
				struct isnap_error *err)
{
	enum isnap_status st;

	do {
		if (*attempt >= r->o->retries) {
			char why[ISNAP_ERROR_MAX];
			snprintf(why, sizeof why, "%s", err->msg);
			return isnap_fail(err, ISNAP_ECONN,
					  "%.900s (gave up after %u retries)",
					  why, r->o->retries);
		}
		++*attempt;
		sleep_ms(*delay);
		/* 0.25 s, 1 s, 4 s, 16 s, then once a minute: --retries
		 * counts attempts, it should not mean hours of waiting. */
		*delay = *delay * 4 > 60000 ? 60000 : *delay * 4;
		st = imap_client_open(&r->o->session, &r->client, err);
	} while (st == ISNAP_ECONN);
	return st;
}

/* backup_folder, reconnecting when the connection is lost: the folder is
 * examined again and goes on after what was committed. */
static enum isnap_status backup_folder_retrying(struct run *r,
						const struct imap_folder *lf,
						struct isnap_error *err)
{
	enum isnap_status st;
	unsigned attempt = 0;
	long delay = 250;

	for (;;) {
		st = backup_folder(r, lf, err);
		if (r->session_broken) {
			/* The folder failed because the server broke the
			 * protocol; the session cannot be trusted after that,
			 * so the next folder gets a new one. */
			struct isnap_error rerr = { 0 };
			r->session_broken = false;
			imap_client_close(r->client, false);
			r->client = NULL;
			/* One new session per such folder, whatever --retries
			 * says: those are for connections that drop.  If even
			 * that fails, the run ends with what it has. */
			if (imap_client_open(&r->o->session, &r->client, &rerr))
				warning(r, "cannot reconnect for the other "
					   "folders: %s", rerr.msg);
			return st;
		}
		if (st != ISNAP_ECONN)
			return st;
		if (attempt < r->o->retries)
			warning(r, "%s; reconnecting (retry %u of %u)", err->msg,
				attempt + 1, r->o->retries);
		imap_client_close(r->client, false);
		r->client = NULL;
		st = reopen(r, &attempt, &delay, err);
		if (st)
			return st;
	}
}

static enum isnap_status backup_account(struct run *r, struct isnap_error *err)
{
	struct imap_folder_list folders = { 0 };
	enum isnap_status st, worst = ISNAP_OK;

	st = imap_client_open(&r->o->session, &r->client, err);
	if (st)
		return st;
	if (r->manifest)
		manifest_server(r->manifest,
				imap_client_greeting(r->client),
				imap_client_capabilities(r->client));
	st = imap_list(r->client, &folders, err);
	if (st)
		goto out;
	r->folders = &folders;
	for (size_t i = 0; i < folders.n; i++) {
		struct isnap_error ferr = { 0 };
		if (folders.v[i].noselect)
			continue;
		if (!r->client) {
			/* Lost for good after a folder failed; the failure
			 * was reported, the remaining folders are not done. */
			worst = ISNAP_EFOLDER;
			break;
		}
		st = backup_folder_retrying(r, &folders.v[i], &ferr);
		if (is_fatal(st)) {
			*err = ferr;
			goto out;
		}
		if (st == ISNAP_EFOLDER || (st == ISNAP_EMSG && !worst))
			worst = st;
	}
	st = worst;
out:
	imap_folder_list_free(&folders);
	return st;
}

/* Every message the store sees from now on is hashed and recorded. */
static enum isnap_status start_manifest(struct run *r, const char *state_dir,
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

	st = manifest_open(state_dir, &info, &r->manifest, err);
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

enum isnap_status backup_run(const struct backup_opts *o,
			     const struct backup_events *ev,
			     struct backup_summary *sum,
			     struct isnap_error *err)
{
	struct run r = { .o = o, .ev = ev, .sum = sum };
	double start = now_seconds();
	int lock_fd = -1;
	const char *format;
	enum isnap_status st, fst;

	memset(sum, 0, sizeof *sum);
	date_criteria(o, r.criteria, sizeof r.criteria);
	snprintf(r.state_dir, sizeof r.state_dir, "%s/.imapsnap", o->dest);
	if (o->dry_run) {
		/* Read what earlier runs saved, if anything; touch nothing. */
		st = state_load(r.state_dir, &r.state, err);
		if (st == ISNAP_EINTEGRITY)
			st = err->status = ISNAP_ELOCAL;
		if (!st)
			st = backup_account(&r, err);
		imap_client_close(r.client, !is_fatal(st));
		goto out;
	}
	format = o->format ? o->format : "maildir";
	{
		const char *single = store_single_file_format(o->dest);
		if (single) {
			if (o->format && strcmp(o->format, single))
				return isnap_fail(err, ISNAP_EUSAGE,
						  "%s: the name says %s, but "
						  "--format says %s",
						  o->dest, single, o->format);
			format = single;
			r.single_file = true;
		}
		st = store_open(format, o->dest, &r.store, err);
		if (st)
			return st;
	}
	if (r.single_file) {
		/* A complete export every time: nothing to remember, and the
		 * manifest goes inside the archive. */
		st = start_manifest(&r, NULL, format, err);
		if (st)
			goto out;
		st = backup_account(&r, err);
		goto finish;
	}
	if (mkdir(r.state_dir, 0700) < 0 && errno != EEXIST) {
		st = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", r.state_dir);
		goto out;
	}
	st = lock_acquire(r.state_dir, &lock_fd, err);
	if (!st)
		st = state_load(r.state_dir, &r.state, err);
	if (st == ISNAP_EINTEGRITY)
		st = err->status = ISNAP_ELOCAL;
	if (st)
		goto out;

	st = start_manifest(&r, r.state_dir, format, err);
	if (st)
		goto out;
	st = backup_account(&r, err);
finish:
	imap_client_close(r.client, !is_fatal(st));
	r.client = NULL;
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
	}
out:
	sum->seconds = now_seconds() - start;
	for (size_t i = 0; i < r.nruns; i++) {
		free(r.runs[i].name);
		uidset_free(&r.runs[i].deferred);
	}
	free(r.runs);
	state_free(&r.state);
	store_free(r.store);
	manifest_free(r.manifest);
	lock_release(lock_fd);
	return st;
}
