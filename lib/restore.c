/*
 * restore.c — see restore.h; the reasoning is in docs/restore.md.
 * RFC 3501 (STATUS, CREATE, EXAMINE, UID FETCH, APPEND), RFC 4315
 * (APPENDUID).
 */
#include "restore.h"
#include "interrupt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "folder_map.h"
#include "imap/append.h"
#include "imap/commands.h"
#include "imap/fetch_item.h"
#include "msg_norm.h"
#include "restore_labels.h"

#define SYNC_EVERY 256      /* APPENDs answered between state syncs */
#define BODY_BATCH 100      /* UIDs per body-hashing UID FETCH */
#define FLAGS_MAX 8192
#define COMMAND_MAX 8192

/* A target message that matched no pending message byte for byte: maybe
 * one the server rewrote (msg_norm.h). */
struct norm_cand {
	uint32_t uid;
	bool used;
	unsigned char sha[32];
};

struct restore_target_folder {
	struct restore_target_folder *next;
	char *utf8, *raw;
	struct restore_state_folder *sf;
	uint32_t uidvalidity;
	bool usable;          /* exists (or would, in a dry run) and checked */
	uint64_t appended;
	struct norm_cand *nc;
	size_t nnc, nc_left;
	/* Gmail: messages in the folder (appended or found) whose labels
	 * are not set yet, so not recorded as done; `checked` stays below
	 * them (checked_upto).  plan_uidnext is the UIDNEXT before this
	 * run's APPENDs: a message appended without APPENDUID is at or
	 * past it. */
	struct restore_pending **tl;
	size_t ntl, atl;
	uint32_t plan_uidnext;
};

struct token {
	struct restore_target_folder *f;
	struct restore_pending *p;
};

struct restore_target {
	struct imap_client *c;
	struct restore_state *state;
	struct restore_target_opts o;
	struct restore_events ev;
	struct restore_stats *stats;
	struct appender *ap;
	struct imap_folder_list list;
	struct folder_map *map;
	bool gmail;                 /* X-GM-EXT-1: labels are set */
	struct restore_target_folder *folders;
	unsigned since_sync;
	enum isnap_status deferred; /* a state write failed in a callback */
	struct isnap_error deferred_err;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static void describe(struct restore_target *t, const struct restore_pending *p,
		     char *buf, size_t size)
{
	if (t->o.describe)
		t->o.describe(t->o.hash_ctx, p, buf, size);
	else
		snprintf(buf, size, "a message");
}

/* A message is in folder f (appended, or found there): record it, or,
 * when Gmail labels are still to be set on it, keep it for
 * label_folder, which records it once they are. */
static enum isnap_status record(struct restore_target *t,
				struct restore_target_folder *f,
				struct restore_pending *p, uint32_t uid,
				struct isnap_error *err)
{
	if (t->gmail && p->nlabels) {
		if (f->ntl == f->atl) {
			size_t a = f->atl ? 2 * f->atl : 64;
			struct restore_pending **v =
				realloc(f->tl, a * sizeof *v);
			if (!v)
				return oom(err);
			f->tl = v;
			f->atl = a;
		}
		f->tl[f->ntl++] = p;
		return ISNAP_OK;
	}
	return restore_state_done(t->state, f->sf, p->key, uid, err);
}

/* ---------------------------------------------------------------------- */
/* Answers to APPEND                                                      */

static void on_done(void *ctx, const struct append_result *r)
{
	struct restore_target *t = ctx;
	struct token *tok = r->token;
	struct restore_target_folder *f = tok->f;
	struct restore_pending *p = tok->p;
	char what[512];

	free(tok);
	if (!r->ok) {
		t->stats->failed++;
		describe(t, p, what, sizeof what);
		if (t->ev.failed) {
			char why[ISNAP_ERROR_MAX + 16];
			snprintf(why, sizeof why, "the server said %s %s",
				 r->answer, r->text);
			t->ev.failed(t->ev.ctx, f->utf8, what, why);
		}
		return;
	}
	p->done = true;
	p->target_uid = r->has_uid && r->uidvalidity == f->uidvalidity
				? r->uid
				: 0;
	t->stats->appended++;
	t->stats->bytes += p->size;
	f->appended++;
	if (t->ev.appended)
		t->ev.appended(t->ev.ctx, f->utf8, p->size);
	if (t->deferred)
		return;
	t->deferred = record(t, f, p, p->target_uid, &t->deferred_err);
	if (!t->deferred && ++t->since_sync >= SYNC_EVERY) {
		t->since_sync = 0;
		t->deferred = restore_state_sync(t->state, &t->deferred_err);
	}
}

static enum isnap_status take_deferred(struct restore_target *t,
				       struct isnap_error *err)
{
	if (t->deferred && err)
		*err = t->deferred_err;
	return t->deferred;
}

/* ---------------------------------------------------------------------- */

enum isnap_status restore_target_open(struct imap_client *c,
				      struct restore_state *state,
				      const struct restore_target_opts *o,
				      const struct restore_events *ev,
				      struct restore_stats *stats,
				      struct restore_target **out,
				      struct isnap_error *err)
{
	struct restore_target *t = calloc(1, sizeof *t);
	enum isnap_status rc;

	*out = NULL;
	if (!t)
		return oom(err);
	t->c = c;
	t->state = state;
	t->o = *o;
	if (ev)
		t->ev = *ev;
	t->stats = stats;
	if (!(t->ap = appender_new(c, o->depth, on_done, t))) {
		free(t);
		return oom(err);
	}
	t->gmail = imap_client_has_cap(c, "X-GM-EXT-1");
	rc = imap_list(c, &t->list, err);
	if (!rc)
		rc = folder_map_new(&t->list, &o->map, &t->map, err);
	if (rc) {
		restore_target_close(t);
		return rc == ISNAP_EFOLDER ? (err->status = ISNAP_EPROTO) : rc;
	}
	*out = t;
	return ISNAP_OK;
}

void restore_target_close(struct restore_target *t)
{
	if (!t)
		return;
	if (t->ap) {
		void *tok;
		/* Commands whose answer never came (the session broke). */
		while ((tok = appender_take_waiting(t->ap)))
			free(tok);
	}
	appender_free(t->ap);
	imap_folder_list_free(&t->list);
	folder_map_free(t->map);
	while (t->folders) {
		struct restore_target_folder *n = t->folders->next;
		free(t->folders->utf8);
		free(t->folders->raw);
		free(t->folders->nc);
		free(t->folders->tl);
		free(t->folders);
		t->folders = n;
	}
	free(t);
}

const struct folder_map *restore_target_map(const struct restore_target *t)
{
	return t->map;
}

bool restore_target_gmail(const struct restore_target *t)
{
	return t->gmail;
}

const char *restore_target_role_folder(const struct restore_target *t,
				       const char *role)
{
	for (size_t i = 0; i < t->list.n; i++) {
		const struct imap_folder *f = &t->list.v[i];
		if (!f->noselect && !f->invalid && f->special_use &&
		    !strcasecmp(f->special_use, role))
			return f->name;
	}
	return NULL;
}

const char *restore_target_folder_name(const struct restore_target_folder *f)
{
	return f->utf8;
}

bool restore_target_folder_wants_norm(const struct restore_target_folder *f)
{
	return f && f->nc_left;
}

bool restore_target_folder_usable(const struct restore_target_folder *f)
{
	return f->usable;
}

/* ---------------------------------------------------------------------- */
/* STATUS, CREATE, EXAMINE                                                 */

static bool quote(const char *name, char *buf, size_t size)
{
	size_t n = 0;

	buf[n++] = '"';
	for (const char *p = name; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch >= 0x7f || n + 4 > size)
			return false;
		if (ch == '"' || ch == '\\')
			buf[n++] = '\\';
		buf[n++] = (char)ch;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return true;
}

struct status_out {
	uint32_t uidvalidity, uidnext;
};

static enum isnap_status status_untagged(void *ctx,
					 const struct imap_response *r,
					 struct isnap_error *err)
{
	struct status_out *s = ctx;
	const struct imap_arg *l;

	(void)err;
	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "STATUS") ||
	    r->nargs < 2 || r->args[r->nargs - 1].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	l = &r->args[r->nargs - 1];
	for (size_t i = 0; i + 1 < l->count; i += 2) {
		if (imap_arg_is_atom(&l->list[i], "UIDVALIDITY"))
			imap_arg_uint32(&l->list[i + 1], &s->uidvalidity);
		else if (imap_arg_is_atom(&l->list[i], "UIDNEXT"))
			imap_arg_uint32(&l->list[i + 1], &s->uidnext);
	}
	return ISNAP_OK;
}

static enum isnap_status status(struct restore_target *t, const char *raw,
				struct status_out *s, struct isnap_error *err)
{
	char cmd[COMMAND_MAX];
	enum isnap_status rc;

	memset(s, 0, sizeof *s);
	memcpy(cmd, "STATUS ", 7);
	if (!quote(raw, cmd + 7, sizeof cmd - 40))
		return isnap_fail(err, ISNAP_EFOLDER, "name too long");
	strcat(cmd, " (UIDVALIDITY UIDNEXT)");
	rc = imap_client_simple_folder(t->c, cmd, status_untagged, s, err);
	if (!rc && (!s->uidvalidity || !s->uidnext))
		rc = isnap_fail(err, ISNAP_EFOLDER,
				"the server's STATUS gave no UIDVALIDITY or "
				"UIDNEXT");
	return rc;
}

static bool listed(const struct restore_target *t, const char *raw)
{
	for (size_t i = 0; i < t->list.n; i++)
		if (!strcmp(t->list.v[i].name, raw))
			return true;
	return false;
}

static enum isnap_status create_one(struct restore_target *t,
				    const char *raw, struct isnap_error *err)
{
	char cmd[COMMAND_MAX];

	memcpy(cmd, "CREATE ", 7);
	if (!quote(raw, cmd + 7, sizeof cmd - 8))
		return isnap_fail(err, ISNAP_EFOLDER, "name too long");
	return imap_client_simple_folder(t->c, cmd, NULL, NULL, err);
}

/* CREATE the folder.  RFC 3501 asks servers to create the levels above
 * a name themselves, and most do, as \Noselect names that hold no mail;
 * only when the server refuses are the parents the LIST did not show
 * created first (a refusal there is fine: the retry says what counts). */
static enum isnap_status create(struct restore_target *t, const char *raw,
				struct isnap_error *err)
{
	struct isnap_error ignored;
	bool any = false;
	char *name, delim = folder_map_delim(t->map);
	enum isnap_status rc = create_one(t, raw, err);

	if (rc != ISNAP_EFOLDER)
		return rc;
	if (!(name = strdup(raw)))
		return oom(err);
	for (char *p = name; *p; p++) {
		if (*p != delim || p == name)
			continue;
		*p = '\0';
		if (!listed(t, name)) {
			any = true;
			create_one(t, name, &ignored);
		}
		*p = delim;
	}
	free(name);
	return any ? create_one(t, raw, err) : rc;
}

static enum isnap_status examine(struct restore_target *t,
				 struct restore_target_folder *f,
				 struct isnap_error *err)
{
	char cmd[COMMAND_MAX];
	
	memcpy(cmd, "EXAMINE ", 8);
	if (!quote(f->raw, cmd + 8, sizeof cmd - 8))
		return isnap_fail(err, ISNAP_EFOLDER, "name too long");
	/* Its PERMANENTFLAGS say nothing of APPEND: a read-only folder
	 * reports none.  Keywords are sent as they are (docs/restore.md). */
	return imap_client_simple_folder(t->c, cmd, NULL, NULL, err);
}

/* Leave the folder EXAMINE opened: Courier refuses an APPEND into the
 * folder a session has open read-only.  UNSELECT (RFC 3691) where
 * offered, else CLOSE, which expunges nothing after an EXAMINE (RFC 3501
 * 6.4.2). */
static enum isnap_status unselect(struct restore_target *t,
				  struct isnap_error *err)
{
	struct isnap_error ignored;
	enum isnap_status rc = imap_client_simple_folder(
		t->c, imap_client_has_cap(t->c, "UNSELECT") ? "UNSELECT" : "CLOSE",
		NULL, NULL, &ignored);

	/* Refused: the folder stays open, which most servers do not mind. */
	if (rc && rc != ISNAP_EFOLDER)
		*err = ignored;
	return rc == ISNAP_EFOLDER ? ISNAP_OK : rc;
}

/* ---------------------------------------------------------------------- */
/* Finding messages appended before a crash                                */

struct cand {
	uint32_t uid;
	uint64_t size;
	bool hashed;
	unsigned char sha[32];
	unsigned char norm[32];   /* msg_norm.h */
};

struct scan {
	struct cand *v;
	size_t n, a;
	uint32_t from;
	/* Hashing the body being streamed. */
	EVP_MD_CTX *md;
	struct msg_norm norm;
	bool norm_open;
	bool hashing;   /* the literal streaming is a BODY[] */
	bool have;
	unsigned char sha[32], norm_sha[32];
	char tag[16];
	bool done;
	enum isnap_status result;
	struct isnap_error *err;
};

static enum isnap_status hash_failed(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM,
			  "computing a SHA-256 failed (libcrypto)");
}

static enum isnap_status sizes_untagged(void *ctx,
					const struct imap_response *r,
					struct isnap_error *err)
{
	struct scan *s = ctx;
	const struct imap_arg *a;
	uint32_t uid;
	uint64_t size;

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH"))
		return ISNAP_OK;
	if (!(a = imap_fetch_item(r, "UID")) || !imap_arg_uint32(a, &uid) ||
	    !(a = imap_fetch_item(r, "RFC822.SIZE")) || !imap_arg_uint64(a, &size))
		return ISNAP_OK;
	if (uid < s->from)
		return ISNAP_OK; /* "n:*" names the last message too */
	if (s->n == s->a) {
		size_t na = s->a ? 2 * s->a : 256;
		struct cand *v = realloc(s->v, na * sizeof *v);
		if (!v)
			return oom(err);
		s->v = v;
		s->a = na;
	}
	s->v[s->n++] = (struct cand){ .uid = uid, .size = size };
	return ISNAP_OK;
}

static enum isnap_status body_begin(void *ctx,
				    const struct imap_response *partial,
				    uint64_t size, bool *stream,
				    struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)size;
	/* Streamed whatever it is, so that no literal is held in memory;
	 * hashed only when it is the message. */
	*stream = true;
	s->hashing = imap_fetch_literal_is_body(partial);
	if (!s->hashing)
		return ISNAP_OK;
	s->have = false;
	if (!EVP_DigestInit_ex(s->md, EVP_sha256(), NULL))
		return hash_failed(err);
	if (s->norm_open)
		msg_norm_final(&s->norm, s->norm_sha);
	if (!(s->norm_open = msg_norm_init(&s->norm)))
		return oom(err);
	return ISNAP_OK;
}

static enum isnap_status body_data(void *ctx, const char *data, size_t len,
				   struct isnap_error *err)
{
	struct scan *s = ctx;

	if (!s->hashing)
		return ISNAP_OK;
	if (!EVP_DigestUpdate(s->md, data, len))
		return hash_failed(err);
	msg_norm_update(&s->norm, data, len);
	return ISNAP_OK;
}

static enum isnap_status body_end(void *ctx, struct isnap_error *err)
{
	struct scan *s = ctx;
	unsigned len = 0;
	bool ok;

	if (!s->hashing)
		return ISNAP_OK;
	s->hashing = false;
	ok = EVP_DigestFinal_ex(s->md, s->sha, &len) && len == 32;
	ok &= msg_norm_final(&s->norm, s->norm_sha);
	s->norm_open = false;
	if (!ok)
		return hash_failed(err);
	s->have = true;
	return ISNAP_OK;
}

static enum isnap_status body_response(void *ctx,
				       const struct imap_response *r,
				       struct isnap_error *err)
{
	struct scan *s = ctx;
	const struct imap_arg *a;
	uint32_t uid;

	if (r->kind == IMAP_RESP_TAGGED) {
		if (strcmp(r->tag, s->tag))
			return isnap_fail(err, ISNAP_EPROTO,
					  "the server answered command %.16s, "
					  "which was never sent",
					  r->tag);
		s->done = true;
		if (strcmp(r->name, "OK"))
			s->result = isnap_fail(err, ISNAP_EFOLDER,
					       "the server said %s %s",
					       r->name, r->text);
		return ISNAP_OK;
	}
	if (r->kind == IMAP_RESP_CONTINUATION)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server asked for data nobody offered");
	if (strcmp(r->name, "FETCH") || !s->have)
		return ISNAP_OK;
	s->have = false;
	if (!(a = imap_fetch_item(r, "UID")) || !imap_arg_uint32(a, &uid))
		return ISNAP_OK;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].uid == uid) {
			memcpy(s->v[i].sha, s->sha, 32);
			memcpy(s->v[i].norm, s->norm_sha, 32);
			s->v[i].hashed = true;
		}
	return ISNAP_OK;
}

static enum isnap_status hash_bodies(struct restore_target *t,
				     struct scan *s, const struct uidset *want,
				     struct isnap_error *err)
{
	struct imap_handler h = { .ctx = s,
				  .response = body_response,
				  .literal_begin = body_begin,
				  .literal_data = body_data,
				  .literal_end = body_end };
	struct uidset batch = UIDSET_INIT;
	uint32_t after = 0;
	enum isnap_status rc = ISNAP_OK;
	long got;

	while (!rc && (got = uidset_next_batch(want, &after, BODY_BATCH,
					       &batch)) > 0) {
		char *set, cmd[COMMAND_MAX];
		if (uidset_format(&batch, &set)) {
			rc = oom(err);
			break;
		}
		snprintf(cmd, sizeof cmd, "UID FETCH %s (UID BODY.PEEK[])",
			 set);
		free(set);
		s->done = false;
		s->result = ISNAP_OK;
		rc = imap_client_send(t->c, cmd, s->tag, err);
		if (!rc)
			rc = imap_client_pump(t->c, &h, &s->done, err);
		if (!rc)
			rc = s->result;
	}
	if (!rc && got < 0)
		rc = oom(err);
	uidset_free(&batch);
	return rc;
}

static int cmp_size(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Whether a target message of `size` bytes may be a copy of a pending
 * message (sorted sizes): the same size, or a little more after a
 * server's rewrite (msg_norm_size_fits). */
static bool size_wanted(const uint64_t *sizes, size_t n, uint64_t size)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* the first size > `size` */
		size_t mid = lo + (hi - lo) / 2;
		if (sizes[mid] <= size)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* The largest size not above it fits best: smaller ones are
	 * further away and allowed less. */
	return lo > 0 && msg_norm_size_fits(sizes[lo - 1], size);
}

/* Keep the target messages hashed but not matched: restore_target_append
 * compares them with each message's canonical digest before sending it. */
static enum isnap_status keep_norm_cands(struct restore_target_folder *f,
					 const struct scan *s,
					 const bool *matched,
					 struct isnap_error *err)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->v[i].hashed && !matched[i];
	if (!n)
		return ISNAP_OK;
	if (!(f->nc = calloc(n, sizeof *f->nc)))
		return oom(err);
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].hashed && !matched[i]) {
			f->nc[f->nnc].uid = s->v[i].uid;
			memcpy(f->nc[f->nnc++].sha, s->v[i].norm, 32);
		}
	f->nc_left = f->nnc;
	return ISNAP_OK;
}

/* Look at the target's UIDs >= from for pending messages that are there
 * already; mark them done and record them. */
static enum isnap_status find_present(struct restore_target *t,
				      struct restore_target_folder *f,
				      struct restore_pending *pending,
				      size_t n, uint32_t from,
				      struct isnap_error *err)
{
	struct scan s = { .from = from, .err = err };
	struct uidset want = UIDSET_INIT;
	bool *matched = NULL, left = false;
	uint64_t *sizes = NULL;
	size_t nsizes = 0;
	char cmd[64];
	enum isnap_status rc;

	snprintf(cmd, sizeof cmd, "UID FETCH %" PRIu32 ":* (UID RFC822.SIZE)",
		 from);
	rc = imap_client_simple_folder(t->c, cmd, sizes_untagged, &s, err);
	if (rc || !s.n)
		goto out;
	if (!(sizes = malloc(n * sizeof *sizes))) {
		rc = oom(err);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!pending[i].done)
			sizes[nsizes++] = pending[i].size;
	qsort(sizes, nsizes, sizeof *sizes, cmp_size);
	for (size_t i = 0; i < s.n; i++)
		if (size_wanted(sizes, nsizes, s.v[i].size) &&
		    uidset_add(&want, s.v[i].uid)) {
			rc = oom(err);
			goto out;
		}
	if (uidset_empty(&want))
		goto out;
	if (!(s.md = EVP_MD_CTX_new())) {
		rc = oom(err);
		goto out;
	}
	rc = hash_bodies(t, &s, &want, err);
	if (!rc && !(matched = calloc(s.n, sizeof *matched)))
		rc = oom(err);
	for (size_t i = 0; i < s.n && !rc; i++) {
		struct cand *c = &s.v[i];
		if (!c->hashed)
			continue;
		for (size_t j = 0; j < n && !rc; j++) {
			struct restore_pending *p = &pending[j];
			if (p->done || p->size != c->size)
				continue;
			if (!p->has_sha && t->o.hash)
				rc = t->o.hash(t->o.hash_ctx, p, err);
			if (rc || !p->has_sha || memcmp(p->sha, c->sha, 32))
				continue;
			p->done = p->found = true;
			p->target_uid = c->uid;
			t->stats->found++;
			matched[i] = true;
			rc = record(t, f, p, c->uid, err);
			break;
		}
	}
	for (size_t j = 0; j < n; j++)
		left |= !pending[j].done;
	if (!rc && left)
		rc = keep_norm_cands(f, &s, matched, err);
out:
	if (s.norm_open)
		msg_norm_final(&s.norm, s.norm_sha);
	free(matched);
	EVP_MD_CTX_free(s.md);
	free(s.v);
	free(sizes);
	uidset_free(&want);
	return rc;
}

/* ---------------------------------------------------------------------- */

static enum isnap_status folder_failed(struct restore_target *t,
				       struct restore_target_folder *f,
				       struct isnap_error *err)
{
	t->stats->folders_failed++;
	if (t->ev.folder_failed)
		t->ev.folder_failed(t->ev.ctx, f->utf8, err->msg);
	return ISNAP_EFOLDER;
}

/* How far `checked` may go: to `uidnext`, but not past a target message
 * kept as a possibly rewritten copy that nothing has matched yet, nor
 * past one whose Gmail labels are not set (not recorded yet).  A run
 * interrupted before it sent that copy's message, or set those labels,
 * must look at it again. */
static uint32_t checked_upto(const struct restore_target_folder *f,
			     uint32_t uidnext)
{
	uint32_t upto = uidnext;

	for (size_t i = 0; i < f->nnc; i++)
		if (!f->nc[i].used && f->nc[i].uid < upto)
			upto = f->nc[i].uid;
	for (size_t i = 0; i < f->ntl; i++) {
		uint32_t uid = f->tl[i]->target_uid ? f->tl[i]->target_uid
						    : f->plan_uidnext;
		if (uid && uid < upto)
			upto = uid;
	}
	return upto;
}

/* A dry run asks the server whether it takes the name: it creates the
 * folder and deletes it again at once (no command tells without
 * creating; a guess would miss Courier's refusal of names outside the
 * BMP, or a server's own rules). */
static enum isnap_status probe(struct restore_target *t,
			       struct restore_target_folder *f,
			       struct isnap_error *err)
{
	char cmd[COMMAND_MAX];
	struct isnap_error derr = { 0 };
	enum isnap_status rc = create(t, f->raw, err);

	if (rc)
		return rc;
	memcpy(cmd, "DELETE ", 7);
	if (!quote(f->raw, cmd + 7, sizeof cmd - 8))
		return isnap_fail(err, ISNAP_EFOLDER, "name too long");
	rc = imap_client_simple_folder(t->c, cmd, NULL, NULL, &derr);
	if (rc == ISNAP_EFOLDER && t->ev.warning) {
		char text[ISNAP_ERROR_MAX + 600];
		snprintf(text, sizeof text, "%.500s: created to ask the server "
			 "whether it takes the name, not deleted again: %s",
			 f->utf8, derr.msg);
		t->ev.warning(t->ev.ctx, text);
	} else if (rc) {
		*err = derr;
		return rc;
	}
	return ISNAP_OK;
}

enum isnap_status restore_target_folder(struct restore_target *t,
					const char *raw, const char *utf8,
					struct restore_pending *pending,
					size_t n,
					struct restore_target_folder **out,
					struct isnap_error *err)
{
	struct restore_target_folder *f = calloc(1, sizeof *f);
	struct status_out so;
	bool created = false;
	uint64_t left = 0;
	uint32_t from;
	enum isnap_status rc;

	*out = NULL;
	if (!f || !(f->utf8 = strdup(utf8)) || !(f->raw = strdup(raw))) {
		if (f)
			free(f->utf8);
		free(f);
		return oom(err);
	}
	f->next = t->folders;
	t->folders = f;
	*out = f;
	t->stats->folders++;
	t->stats->planned += n;
	if (!(f->sf = restore_state_folder(t->state, f->raw, true)))
		return oom(err);
	rc = status(t, f->raw, &so, err);
	if (rc == ISNAP_EFOLDER) {
		created = true;
		if (t->o.dry_run && !(rc = probe(t, f, err))) {
			/* Would be created: nothing in it yet. */
			for (size_t i = 0; i < n; i++)
				if (!pending[i].done)
					left++;
			if (t->ev.folder)
				t->ev.folder(t->ev.ctx, f->utf8, true, n, left);
			f->usable = true;
			return ISNAP_OK;
		}
		if (!t->o.dry_run)
			rc = create(t, f->raw, err);
		if (!rc)
			rc = status(t, f->raw, &so, err);
		if (!rc)
			t->stats->folders_created++;
	}
	if (rc) {
		isnap_error_prefix(err, "%s", f->utf8);
		return rc == ISNAP_EFOLDER ? folder_failed(t, f, err) : rc;
	}
	f->uidvalidity = so.uidvalidity;
	if (f->sf->uidvalidity != so.uidvalidity) {
		/* New folder, or recreated: what the state knew is void. */
		rc = restore_state_set(t->state, f->sf, so.uidvalidity, 0, err);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (restore_state_has(t->state, f->sf, pending[i].key)) {
			pending[i].done = true;
			t->stats->present++;
		} else {
			left++;
		}
	}
	from = f->sf->checked ? f->sf->checked : 1;
	f->plan_uidnext = so.uidnext;
	if (left && so.uidnext > from) {
		rc = examine(t, f, err);
		if (!rc)
			rc = find_present(t, f, pending, n, from, err);
		if (!rc)
			rc = unselect(t, err);
		if (rc) {
			isnap_error_prefix(err, "%s", f->utf8);
			return rc == ISNAP_EFOLDER ? folder_failed(t, f, err)
						   : rc;
		}
		left = 0;
		for (size_t i = 0; i < n; i++)
			left += !pending[i].done;
	}
	/* Everything below UIDNEXT as STATUS saw it is accounted for now:
	 * recorded, found, or not ours; except the copies a server may have
	 * rewritten, known only when their message comes to be sent. */
	rc = restore_state_set(t->state, f->sf, so.uidvalidity,
			       checked_upto(f, so.uidnext), err);
	if (!rc)
		rc = restore_state_sync(t->state, err);
	if (rc)
		return rc;
	f->usable = true;
	if (t->ev.folder)
		t->ev.folder(t->ev.ctx, f->utf8, created, n, left);
	return ISNAP_OK;
}

static void build_flags(struct restore_target *t,
			struct restore_target_folder *f,
			const struct store_message *m, char *buf, size_t size)
{
	const char *k = m->keywords ? m->keywords : "";

	buf[0] = '\0';
	(void)f;
	for (unsigned bit = 1; store_flag_name(bit); bit <<= 1)
		if (m->flags & bit)
			append_flags_add(buf, size, store_flag_name(bit));
	while (*k) {
		char one[1024];
		size_t w = strcspn(k, " ");
		if (w && w < sizeof one) {
			memcpy(one, k, w);
			one[w] = '\0';
			/* Not an atom (or \Recent, or a flag of the
			 * source server's own): it cannot be sent, and
			 * the message matters more. */
			if (!append_flags_add(buf, size, one))
				t->stats->keywords_dropped++;
		} else if (w) {
			t->stats->keywords_dropped++;
		}
		k += w;
		while (*k == ' ')
			k++;
	}
}

enum isnap_status restore_target_append(struct restore_target *t,
					struct restore_target_folder *f,
					struct restore_pending *p,
					const struct store_message *m,
					enum isnap_status (*read)(
						void *ctx, void *buf,
						size_t len, size_t *got,
						struct isnap_error *err),
					void *rctx, struct isnap_error *err)
{
	char flags[FLAGS_MAX];
	struct append_msg am;
	struct token *tok;
	enum isnap_status rc;

	if (!f->usable || p->done)
		return ISNAP_OK;
	if (p->has_norm && f->nc_left)
		for (size_t i = 0; i < f->nnc; i++) {
			struct norm_cand *c = &f->nc[i];
			if (c->used || memcmp(c->sha, p->norm, 32))
				continue;
			/* Appended by an interrupted run, stored rewritten. */
			c->used = true;
			f->nc_left--;
			p->done = p->found = true;
			p->target_uid = c->uid;
			t->stats->found++;
			rc = record(t, f, p, c->uid, err);
			return rc ? rc : take_deferred(t, err);
		}
	if (t->o.dry_run) {
		t->stats->appended++;
		t->stats->bytes += p->size;
		return ISNAP_OK;
	}
	build_flags(t, f, m, flags, sizeof flags);
	am = (struct append_msg){ .mailbox = f->raw,
				  .flags = flags,
				  .internaldate = m->internaldate == STORE_NO_DATE
							  ? INT64_MIN
							  : m->internaldate,
				  .tz_minutes = m->tz_minutes,
				  .leap_second = m->leap_second,
				  .size = p->size };
	if (!(tok = malloc(sizeof *tok)))
		return oom(err);
	tok->f = f;
	tok->p = p;
	rc = appender_add(t->ap, &am, read, rctx, tok, err);
	if (rc) {
		/* Not queued (refused before it was sent, or the session
		 * failed or was interrupted first): the token is still ours.
		 * Queued, restore_target_close takes it back. */
		if (!appender_holds(t->ap, tok))
			free(tok);
		if (rc == ISNAP_EUSAGE) {
			restore_target_failed(t, f, NULL, err->msg);
			return ISNAP_OK;
		}
		return rc;
	}
	return take_deferred(t, err);
}

void restore_target_failed(struct restore_target *t,
			   struct restore_target_folder *f, const char *what,
			   const char *why)
{
	t->stats->failed++;
	if (t->ev.failed)
		t->ev.failed(t->ev.ctx, f->utf8, what ? what : "a message",
			     why);
}

enum isnap_status restore_target_drain(struct restore_target *t,
				       struct isnap_error *err)
{
	enum isnap_status rc = appender_drain(t->ap, err);

	if (!rc)
		rc = take_deferred(t, err);
	if (!rc)
		rc = restore_state_sync(t->state, err);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Gmail: labels                                                           */

static enum isnap_status select_folder(struct restore_target *t,
				       struct restore_target_folder *f,
				       const char *verb,
				       struct isnap_error *err)
{
	char cmd[COMMAND_MAX];
	size_t n = strlen(verb);

	memcpy(cmd, verb, n);
	cmd[n++] = ' ';
	if (!quote(f->raw, cmd + n, sizeof cmd - n))
		return isnap_fail(err, ISNAP_EFOLDER, "name too long");
	return imap_client_simple_folder(t->c, cmd, NULL, NULL, err);
}

/* Leave a folder opened read-write without expunging anything: UNSELECT,
 * or else EXAMINE it (read-only from then on) and CLOSE. */
static enum isnap_status deselect(struct restore_target *t,
				  struct restore_target_folder *f,
				  struct isnap_error *err)
{
	struct isnap_error ignored;
	enum isnap_status rc;

	if (imap_client_has_cap(t->c, "UNSELECT"))
		return unselect(t, err);
	rc = select_folder(t, f, "EXAMINE", &ignored);
	if (rc && rc != ISNAP_EFOLDER) {
		*err = ignored;
		return rc;
	}
	return rc ? ISNAP_OK : unselect(t, err);
}

/* Messages appended without APPENDUID: their UIDs, found by content
 * among those at or past the UIDNEXT before the APPENDs. */
static enum isnap_status find_uids(struct restore_target *t,
				   struct restore_target_folder *f,
				   struct isnap_error *err)
{
	struct scan s = { .from = f->plan_uidnext ? f->plan_uidnext : 1,
			  .err = err };
	struct uidset want = UIDSET_INIT;
	bool *used = NULL;
	char cmd[64];
	enum isnap_status rc;

	snprintf(cmd, sizeof cmd, "UID FETCH %" PRIu32 ":* (UID RFC822.SIZE)",
		 s.from);
	rc = imap_client_simple_folder(t->c, cmd, sizes_untagged, &s, err);
	if (rc || !s.n)
		goto out;
	for (size_t i = 0; i < s.n && !rc; i++)
		for (size_t j = 0; j < f->ntl; j++)
			if (!f->tl[j]->target_uid &&
			    f->tl[j]->size == s.v[i].size) {
				if (uidset_add(&want, s.v[i].uid))
					rc = oom(err);
				break;
			}
	if (rc || uidset_empty(&want))
		goto out;
	if (!(s.md = EVP_MD_CTX_new()) || !(used = calloc(s.n, 1))) {
		rc = oom(err);
		goto out;
	}
	rc = hash_bodies(t, &s, &want, err);
	for (size_t j = 0; j < f->ntl && !rc; j++) {
		struct restore_pending *p = f->tl[j];
		if (p->target_uid)
			continue;
		if (!p->has_sha && t->o.hash)
			rc = t->o.hash(t->o.hash_ctx, p, err);
		for (size_t i = 0; i < s.n && !rc && p->has_sha; i++)
			if (s.v[i].hashed && !used[i] &&
			    s.v[i].size == p->size &&
			    !memcmp(s.v[i].sha, p->sha, 32)) {
				used[i] = true;
				p->target_uid = s.v[i].uid;
				break;
			}
	}
out:
	if (s.norm_open)
		msg_norm_final(&s.norm, s.norm_sha);
	free(used);
	EVP_MD_CTX_free(s.md);
	free(s.v);
	uidset_free(&want);
	return rc;
}

/* Set the labels of the folder's messages that wait for them, and record
 * those that have them.  The others are counted as failed and stay in
 * f->tl, which keeps `checked` below them. */
static enum isnap_status label_folder(struct restore_target *t,
				      struct restore_target_folder *f,
				      struct isnap_error *err)
{
	struct restore_label_item *items = NULL;
	struct isnap_error ferr = { 0 };
	char why[ISNAP_ERROR_MAX + 64] = "";
	size_t n = 0, failed = 0, kept = 0;
	enum isnap_status rc;

	rc = select_folder(t, f, "SELECT", &ferr);
	if (!rc) {
		bool uidless = false;
		for (size_t i = 0; i < f->ntl; i++)
			uidless |= !f->tl[i]->target_uid;
		if (uidless)
			rc = find_uids(t, f, &ferr);
	}
	if (!rc && !(items = calloc(f->ntl, sizeof *items)))
		rc = oom(&ferr);
	for (size_t i = 0; !rc && i < f->ntl; i++) {
		struct restore_pending *p = f->tl[i];
		if (!p->target_uid)
			continue;
		items[n++] = (struct restore_label_item){
			.uid = p->target_uid, .labels = p->labels,
			.nlabels = p->nlabels, .ctx = p };
	}
	if (!rc)
		rc = restore_labels_store(t->c, items, n, &failed, why,
					  sizeof why, &ferr);
	if (!rc)
		rc = deselect(t, f, &ferr);
	if (rc && rc != ISNAP_EFOLDER) {
		free(items);
		*err = ferr;
		return rc;
	}
	if (rc)
		snprintf(why, sizeof why, "%s", ferr.msg);
	/* Record what has its labels; keep the rest. */
	for (size_t i = 0; i < n && !rc; i++) {
		struct restore_pending *p = items[i].ctx;
		if (!items[i].ok)
			continue;
		if ((rc = restore_state_done(t->state, f->sf, p->key,
					     p->target_uid, err))) {
			free(items);
			return rc;
		}
		p->labelled = true; /* out of f->tl below */
	}
	free(items);
	for (size_t i = 0; i < f->ntl; i++) {
		struct restore_pending *p = f->tl[i];
		char what[512], text[ISNAP_ERROR_MAX + 200];
		if (p->labelled)
			continue;
		f->tl[kept++] = p;
		t->stats->failed++;
		describe(t, p, what, sizeof what);
		snprintf(text, sizeof text,
			 "in the target, but its labels could not be set: %s",
			 rc || p->target_uid ? why
					     : "it was not found again (no "
					       "APPENDUID)");
		if (t->ev.failed)
			t->ev.failed(t->ev.ctx, f->utf8, what, text);
	}
	f->ntl = kept;
	return restore_state_sync(t->state, err);
}

enum isnap_status restore_target_folder_end(struct restore_target *t,
					    struct restore_target_folder *f,
					    struct isnap_error *err)
{
	struct status_out so;
	enum isnap_status rc;

	if (t->o.dry_run || !f->usable)
		return ISNAP_OK;
	if (f->ntl && (rc = label_folder(t, f, err)))
		return rc;
	if (!f->appended && !f->nnc && !f->ntl)
		return ISNAP_OK;
	rc = restore_state_sync(t->state, err);
	if (rc)
		return rc;
	/* Every APPEND to the folder is answered and recorded: what is
	 * below UIDNEXT now needs no second look. */
	rc = status(t, f->raw, &so, err);
	if (rc == ISNAP_EFOLDER)
		return ISNAP_OK; /* the next run looks again; no harm */
	if (rc)
		return rc;
	if (so.uidvalidity != f->uidvalidity)
		return ISNAP_OK;
	rc = restore_state_set(t->state, f->sf, so.uidvalidity,
			       checked_upto(f, so.uidnext), err);
	if (!rc)
		rc = restore_state_sync(t->state, err);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Runs that reconnected                                                   */

void restore_stats_keep(struct restore_stats *before,
			const struct restore_stats *t)
{
	before->appended += t->appended;
	before->bytes += t->bytes;
	before->keywords_dropped += t->keywords_dropped;
	before->folders_created += t->folders_created;
}

void restore_stats_carry(struct restore_stats *total,
			 const struct restore_stats *before)
{
	uint64_t again = before->appended;

	/* What an earlier attempt appended, this one saw as there. */
	while (again && total->present) {
		total->present--;
		again--;
	}
	while (again && total->found) {
		total->found--;
		again--;
	}
	total->appended += before->appended;
	total->bytes += before->bytes;
	total->keywords_dropped += before->keywords_dropped;
	total->folders_created += before->folders_created;
}

void restore_sleep_backoff(long *delay_ms)
{
	/* Cut short by a signal: the next attempt stops at once. */
	isnap_interrupt_sleep(*delay_ms, NULL);
	*delay_ms = *delay_ms * 4 > 60000 ? 60000 : *delay_ms * 4;
}
