/*
 * migrate.c — see migrate.h.  RFC 3501 (LIST, EXAMINE, UID FETCH).
 *
 * The source side reuses the backup's fetch engine (fetch.h) with a
 * store of its own: begin_message empties the spool, write fills it,
 * end_message appends it to the destination.  fetch.h keeps several
 * UID FETCH commands in flight on the source while restore.h keeps
 * several APPENDs in flight on the destination.
 */
#include "migrate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "folder_path.h"
#include "imap/commands.h"
#include "imap/fetch.h"
#include "imap/fetch_item.h"
#include "mutf7.h"
#include "restore_backup.h"
#include "restore_spool.h"
#include "restore_state.h"

#define SPOOL_MEM (1u << 20)

struct src_msg {
	uint32_t uid;
	uint64_t size;
};

struct migrator {
	const struct migrate_opts *o;
	const struct restore_events *ev;
	struct migrate_summary *sum;
	struct imap_client *src;
	struct restore_target *target;
	struct restore_spool spool;
	EVP_MD_CTX *md;
	const char *host, *user;
	const struct imap_folder_list *list; /* the source's */

	/* The folder being copied. */
	const char *folder_raw, *folder_utf8;
	uint32_t uidvalidity;
	struct src_msg *msgs;
	size_t n, a;
	struct restore_pending *pending;
	struct restore_target_folder *tf;
	bool cur_ok;          /* the message begun is one to append */
	size_t cur;

	/* Hashing one source body (the target side asks). */
	bool hashing_done, have;
	/* The literal streaming is BODY[] (hashing), and it ended (hashed):
	 * `have` only once its response says it is UID hash_uid's. */
	bool hashing, hashed;
	uint32_t hash_uid;
	char tag[16];
	unsigned char sha[32];
	enum isnap_status hash_result;
};

struct mstore {
	struct store base;
	struct migrator *m;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

/* ---------------------------------------------------------------------- */
/* The source's sizes                                                      */

static enum isnap_status sizes_untagged(void *ctx,
					const struct imap_response *r,
					struct isnap_error *err)
{
	struct migrator *m = ctx;
	const struct imap_arg *l;
	uint32_t uid = 0;
	uint64_t size = 0;
	bool has_size = false;

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH") ||
	    r->nargs < 1 || r->args[0].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	l = &r->args[0];
	for (size_t i = 0; i + 1 < l->count; i += 2) {
		if (imap_arg_is_atom(&l->list[i], "UID"))
			imap_arg_uint32(&l->list[i + 1], &uid);
		else if (imap_arg_is_atom(&l->list[i], "RFC822.SIZE"))
			has_size = imap_arg_uint64(&l->list[i + 1], &size);
	}
	if (!uid || !has_size)
		return ISNAP_OK;
	/* In any order (RFC 3501 orders no FETCH responses): sorted and
	 * rid of repeats by sort_sizes once the listing is complete. */
	if (m->n == m->a) {
		size_t a = m->a ? 2 * m->a : 256;
		struct src_msg *v = realloc(m->msgs, a * sizeof *v);
		if (!v)
			return oom(err);
		m->msgs = v;
		m->a = a;
	}
	m->msgs[m->n++] = (struct src_msg){ .uid = uid, .size = size };
	return ISNAP_OK;
}

static int cmp_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct src_msg *)a)->uid;
	uint32_t y = ((const struct src_msg *)b)->uid;

	return x < y ? -1 : x > y;
}

/* Sort the listing by UID and keep the first of repeated UIDs. */
static void sort_sizes(struct migrator *m)
{
	size_t k = 0;

	if (m->n)
		qsort(m->msgs, m->n, sizeof *m->msgs, cmp_uid);
	for (size_t i = 0; i < m->n; i++)
		if (!k || m->msgs[k - 1].uid != m->msgs[i].uid)
			m->msgs[k++] = m->msgs[i];
	m->n = k;
}

/* ---------------------------------------------------------------------- */
/* Hashing a source body on demand                                         */

static enum isnap_status hash_failed(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM,
			  "computing a SHA-256 failed (libcrypto)");
}

static enum isnap_status h_begin(void *ctx, const struct imap_response *p,
				 uint64_t size, bool *stream,
				 struct isnap_error *err)
{
	struct migrator *m = ctx;

	(void)size;
	/* Streamed whatever it is, so that no literal is held in memory;
	 * hashed only when it is the message. */
	*stream = true;
	m->hashing = imap_fetch_literal_is_body(p);
	if (!m->hashing)
		return ISNAP_OK;
	m->hashed = false;
	if (!EVP_DigestInit_ex(m->md, EVP_sha256(), NULL))
		return hash_failed(err);
	return ISNAP_OK;
}

static enum isnap_status h_data(void *ctx, const char *d, size_t len,
				struct isnap_error *err)
{
	struct migrator *m = ctx;

	if (m->hashing && !EVP_DigestUpdate(m->md, d, len))
		return hash_failed(err);
	return ISNAP_OK;
}

static enum isnap_status h_end(void *ctx, struct isnap_error *err)
{
	struct migrator *m = ctx;
	unsigned len = 0;

	if (!m->hashing)
		return ISNAP_OK;
	m->hashing = false;
	if (!EVP_DigestFinal_ex(m->md, m->sha, &len) || len != 32)
		return hash_failed(err);
	m->hashed = true;
	return ISNAP_OK;
}

static enum isnap_status h_response(void *ctx, const struct imap_response *r,
				    struct isnap_error *err)
{
	struct migrator *m = ctx;

	if (r->kind == IMAP_RESP_TAGGED) {
		if (strcmp(r->tag, m->tag))
			return isnap_fail(err, ISNAP_EPROTO,
					  "the server answered command %.16s, "
					  "which was never sent",
					  r->tag);
		m->hashing_done = true;
		return ISNAP_OK;
	}
	if (r->kind == IMAP_RESP_CONTINUATION)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server asked for data nobody offered");
	if (m->hashed && r->name && !strcmp(r->name, "FETCH")) {
		const struct imap_arg *a = imap_fetch_item(r, "UID");
		uint32_t uid;
		m->hashed = false;
		if (a && imap_arg_uint32(a, &uid) && uid == m->hash_uid)
			m->have = true;
	}
	return ISNAP_OK;
}

static enum isnap_status hash_source(void *ctx, struct restore_pending *p,
				     struct isnap_error *err)
{
	struct migrator *m = ctx;
	const struct src_msg *s = p->src;
	struct imap_handler h = { .ctx = m,
				  .response = h_response,
				  .literal_begin = h_begin,
				  .literal_data = h_data,
				  .literal_end = h_end };
	char cmd[64];
	enum isnap_status rc;

	snprintf(cmd, sizeof cmd, "UID FETCH %" PRIu32 " (UID BODY.PEEK[])",
		 s->uid);
	m->hashing_done = m->have = m->hashing = m->hashed = false;
	m->hash_uid = s->uid;
	rc = imap_client_send(m->src, cmd, m->tag, err);
	if (!rc)
		rc = imap_client_pump(m->src, &h, &m->hashing_done, err);
	if (!rc && m->have) {
		memcpy(p->sha, m->sha, 32);
		p->has_sha = true;
	}
	return rc;
}

static void describe(void *ctx, const struct restore_pending *p, char *buf,
		     size_t size)
{
	struct migrator *m = ctx;
	const struct src_msg *s = p->src;

	snprintf(buf, size, "%s UID %" PRIu32 " (UIDVALIDITY %" PRIu32 ")",
		 m->folder_utf8, s ? s->uid : 0, m->uidvalidity);
}

/* ---------------------------------------------------------------------- */
/* The store fetch.h writes into                                           */

static struct migrator *mig(struct store *s)
{
	return ((struct mstore *)s)->m;
}

static size_t find_uid(const struct migrator *m, uint32_t uid)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->n && m->msgs[lo].uid == uid ? lo : SIZE_MAX;
}

static enum isnap_status s_begin(struct store *s, const struct store_message *msg,
				 struct isnap_error *err)
{
	struct migrator *m = mig(s);

	(void)err;
	m->cur = find_uid(m, msg->uid);
	m->cur_ok = m->cur != SIZE_MAX && !m->pending[m->cur].done;
	restore_spool_reset(&m->spool);
	return ISNAP_OK;
}

static enum isnap_status s_write(struct store *s, const void *d, size_t len,
				 struct isnap_error *err)
{
	struct migrator *m = mig(s);

	if (!m->cur_ok)
		return ISNAP_OK;
	return restore_spool_write(&m->spool, d, len, err);
}

static enum isnap_status s_end(struct store *s, const struct store_message *msg,
			       struct isnap_error *err)
{
	struct migrator *m = mig(s);
	struct restore_pending *p;
	enum isnap_status rc;

	if (!m->cur_ok)
		return ISNAP_OK;
	m->cur_ok = false;
	p = &m->pending[m->cur];
	p->size = m->spool.size; /* what was received, whatever was said */
	if (restore_target_folder_wants_norm(m->tf)) {
		rc = restore_spool_norm(&m->spool, p->norm, err);
		if (rc)
			return rc;
		p->has_norm = true;
	}
	restore_spool_rewind(&m->spool);
	rc = restore_target_append(m->target, m->tf, p, msg,
				   restore_spool_read, &m->spool, err);
	/* A failure of the destination is not this message's: stop. */
	if (rc == ISNAP_EMSG || rc == ISNAP_EFOLDER)
		rc = ISNAP_EPROTO;
	return rc;
}

static void s_abort(struct store *s)
{
	mig(s)->cur_ok = false;
}

static enum isnap_status s_commit(struct store *s, struct isnap_error *err)
{
	(void)s;
	(void)err;
	return ISNAP_OK;
}

static const struct store_ops migrate_ops = {
	.format = "migrate",
	.begin_message = s_begin,
	.write = s_write,
	.end_message = s_end,
	.abort_message = s_abort,
	.commit = s_commit,
};

static enum isnap_status on_committed(void *ctx, const struct uidset *uids,
				      struct isnap_error *err)
{
	(void)ctx;
	(void)uids;
	(void)err;
	return ISNAP_OK;
}

static void on_message_failed(void *ctx, uint32_t uid, const char *why)
{
	struct migrator *m = ctx;
	char what[600];

	snprintf(what, sizeof what, "%s UID %" PRIu32 " (UIDVALIDITY %" PRIu32
		 ")", m->folder_utf8, uid, m->uidvalidity);
	restore_target_failed(m->target, m->tf, what, why);
}

/* ---------------------------------------------------------------------- */

/* After a folder's fetch: every planned message must be appended, failed
 * (counted) or gone from the source (vanished).  Any other is a failure
 * too, so that the run never ends well with a message left behind. */
static void account_for_all(struct migrator *m, uint64_t failed0,
			    uint64_t vanished)
{
	uint64_t left = 0, told = m->sum->t.failed - failed0 + vanished;

	for (size_t i = 0; i < m->n; i++)
		left += !m->pending[i].done;
	for (; left > told; left--)
		restore_target_failed(m->target, m->tf, NULL,
				      "the source sent neither the message "
				      "nor an error");
}

static enum isnap_status copy_folder(struct migrator *m,
				     const struct imap_folder *f,
				     struct isnap_error *err)
{
	struct imap_mailbox_info info;
	struct uidset todo = UIDSET_INIT;
	struct mstore ms = { .base = { .ops = &migrate_ops }, .m = m };
	struct fetch_callbacks fcb = { .ctx = m,
				       .committed = on_committed,
				       .message_failed = on_message_failed };
	struct fetch_stats fs = { 0 };
	struct folder_target target = { 0 };
	char *utf8 = NULL, *path = NULL;
	uint64_t failed0;
	enum isnap_status rc;

	m->n = 0;
	m->folder_raw = f->name;
	if (mutf7_decode(f->name, strlen(f->name), &utf8) != 0 &&
	    !(utf8 = strdup(f->name)))
		return oom(err);
	m->folder_utf8 = utf8;
	if (!(path = folder_logical_path(f->name, f->delim,
					 m->list->ns.prefix))) {
		free(utf8);
		return oom(err);
	}
	if (!restore_selected(&m->o->common, path)) {
		free(utf8);
		free(path);
		return ISNAP_OK;
	}
	m->sum->src_folders++;
	rc = imap_examine(m->src, f->name, &info, err);
	if (!rc) {
		char cmd[] = "UID FETCH 1:* (UID RFC822.SIZE)";
		m->uidvalidity = info.uidvalidity;
		if (info.exists)
			rc = imap_client_simple(m->src, cmd, sizes_untagged, m,
						err);
		if (!rc)
			sort_sizes(m);
	}
	if (rc == ISNAP_EFOLDER) {
		/* The source refused the folder: report it, go on. */
		m->sum->t.folders_failed++;
		if (m->ev && m->ev->folder_failed)
			m->ev->folder_failed(m->ev->ctx, utf8, err->msg);
		free(utf8);
		free(path);
		return ISNAP_OK;
	}
	if (rc)
		goto out;
	free(m->pending);
	if (!(m->pending = calloc(m->n ? m->n : 1, sizeof *m->pending))) {
		rc = oom(err);
		goto out;
	}
	for (size_t i = 0; i < m->n; i++) {
		struct restore_pending *p = &m->pending[i];
		restore_state_key(m->host, m->user, f->name, m->uidvalidity,
				  m->msgs[i].uid, p->key);
		p->size = m->msgs[i].size;
		p->src = &m->msgs[i];
	}
	rc = folder_map_target(restore_target_map(m->target), path,
			       f->special_use, &target, err);
	if (rc == ISNAP_EFOLDER) {
		m->sum->t.folders_failed++;
		m->sum->t.planned += m->n;
		m->sum->t.failed += m->n;
		if (m->ev && m->ev->folder_failed)
			m->ev->folder_failed(m->ev->ctx, path, err->msg);
		rc = ISNAP_OK;
		goto out;
	}
	if (rc)
		goto out;
	if (m->ev && m->ev->mapped)
		m->ev->mapped(m->ev->ctx, path, target.utf8,
			      folder_role(f->special_use), target.by_role);
	rc = restore_target_folder(m->target, target.raw, target.utf8,
				   m->pending, m->n, &m->tf, err);
	if (rc == ISNAP_EFOLDER) {
		rc = ISNAP_OK; /* reported */
		goto out;
	}
	if (rc)
		goto out;
	for (size_t i = 0; i < m->n; i++)
		if (!m->pending[i].done && uidset_add(&todo, m->msgs[i].uid)) {
			rc = oom(err);
			goto out;
		}
	if (m->o->common.dry_run) {
		for (size_t i = 0; i < m->n; i++)
			if (!m->pending[i].done) {
				m->sum->t.appended++;
				m->sum->t.bytes += m->pending[i].size;
			}
		goto out;
	}
	failed0 = m->sum->t.failed;
	if (!uidset_empty(&todo))
		rc = fetch_messages(m->src, &ms.base, &todo, NULL, &fcb, &fs,
				    err);
	m->sum->vanished += fs.vanished;
	if (!rc)
		rc = restore_target_drain(m->target, err);
	if (!rc)
		account_for_all(m, failed0, fs.vanished);
	if (!rc)
		rc = restore_target_folder_end(m->target, m->tf, err);
out:
	uidset_free(&todo);
	folder_target_free(&target);
	free(path);
	free(utf8);
	m->folder_utf8 = NULL;
	return rc;
}

/* One pair of connections' worth: both sides log in, then every
 * folder.  *logged_in tells whether both logins worked (only then is a
 * lost connection retried). */
static enum isnap_status attempt(struct migrator *m,
				 struct restore_state *state,
				 const struct restore_target_opts *to,
				 bool *logged_in, struct isnap_error *err)
{
	const struct migrate_opts *o = m->o;
	struct migrate_summary *sum = m->sum;
	const struct restore_events *ev = m->ev;
	struct imap_folder_list list = { 0 };
	struct imap_client *dst = NULL;
	enum isnap_status rc;

	rc = imap_client_open(&o->src, &m->src, err);
	if (rc) {
		isnap_error_prefix(err, "source");
		return rc;
	}
	rc = imap_client_open(&o->dst, &dst, err);
	if (!rc) {
		*logged_in = true;
		rc = restore_target_open(dst, state, to, ev, &sum->t,
					 &m->target, err);
	}
	if (rc) {
		isnap_error_prefix(err, "destination");
		goto out;
	}
	if (imap_client_has_cap(m->src, "X-GM-EXT-1") && ev && ev->warning)
		/* Gmail shows each message once per label and again in
		 * All Mail; migrate copies folders as they are.  A backup
		 * keeps each message once with its labels, and its restore
		 * puts them back per label (docs/gmail.md). */
		ev->warning(ev->ctx,
			    "the source is Gmail: migrate copies each of its "
			    "folders as they are, so a message comes once per "
			    "label and once more from [Gmail]/All Mail; for one "
			    "copy per label, back up and restore instead");
	rc = imap_list(m->src, &list, err);
	m->list = &list;
	if (rc == ISNAP_EFOLDER)
		rc = err->status = ISNAP_EPROTO;
	for (size_t i = 0; i < list.n && !rc; i++) {
		const struct imap_folder *f = &list.v[i];
		if (f->noselect)
			continue;
		if (f->invalid) {
			sum->t.folders_failed++;
			if (ev && ev->folder_failed)
				ev->folder_failed(ev->ctx, f->name, f->invalid);
			continue;
		}
		rc = copy_folder(m, f, err);
	}
out:
	m->list = NULL;
	imap_folder_list_free(&list);
	restore_target_close(m->target);
	m->target = NULL;
	m->tf = NULL;
	if (dst)
		imap_client_close(dst, rc != ISNAP_ECONN && rc != ISNAP_EPROTO);
	imap_client_close(m->src, rc != ISNAP_ECONN && rc != ISNAP_EPROTO);
	m->src = NULL;
	return rc;
}

enum isnap_status migrate_run(const struct migrate_opts *o,
			      const struct restore_events *ev,
			      struct migrate_summary *sum,
			      struct isnap_error *err)
{
	struct migrator m = { .o = o, .ev = ev, .sum = sum,
			      .host = o->src.url,
			      .user = o->src.user ? o->src.user : "" };
	struct restore_target_opts to = {
		.depth = o->common.depth,
		.dry_run = o->common.dry_run,
		.map = { .into = o->common.into,
			 .map_roles = !o->common.keep_roles },
		.hash = hash_source,
		.hash_ctx = &m,
		.describe = describe,
	};
	struct restore_state *state = NULL;
	struct restore_stats before = { 0 };
	uint64_t vanished = 0;
	long delay = 250;
	enum isnap_status rc;

	memset(sum, 0, sizeof *sum);
	restore_spool_init(&m.spool, SPOOL_MEM);
	if (!(m.md = EVP_MD_CTX_new())) {
		rc = oom(err);
		goto out;
	}
	rc = restore_state_open(o->common.state_dir, o->common.dry_run,
				&state, err);
	if (rc)
		goto out;
	for (unsigned n = 0;; n++) {
		bool logged_in = false;
		rc = attempt(&m, state, &to, &logged_in, err);
		if ((rc != ISNAP_ECONN && rc != ISNAP_EPROTO) || !logged_in ||
		    n >= o->common.retries)
			break;
		if (ev && ev->warning) {
			char text[ISNAP_ERROR_MAX + 64];
			snprintf(text, sizeof text,
				 "%s; reconnecting (retry %u of %u)", err->msg,
				 n + 1, o->common.retries);
			ev->warning(ev->ctx, text);
		}
		restore_stats_keep(&before, &sum->t);
		vanished += sum->vanished;
		memset(sum, 0, sizeof *sum);
		restore_sleep_backoff(&delay);
	}
	restore_stats_carry(&sum->t, &before);
	sum->vanished += vanished;
	if (!rc && (sum->t.failed || sum->t.folders_failed))
		rc = isnap_fail(err, ISNAP_EMSG,
				"%" PRIu64 " message%s and %" PRIu64
				" folder%s not transferred",
				sum->t.failed, sum->t.failed == 1 ? "" : "s",
				sum->t.folders_failed,
				sum->t.folders_failed == 1 ? "" : "s");
out:
	restore_state_close(state);
	restore_spool_free(&m.spool);
	EVP_MD_CTX_free(m.md);
	free(m.msgs);
	free(m.pending);
	return rc;
}
