/*
 * status.c — see status.h.  RFC 3501 §6.3.10 and §7.2.4 (STATUS), RFC 5819
 * (LIST-STATUS), RFC 8438 (STATUS=SIZE), RFC 6154 (SPECIAL-USE), RFC 5258
 * (LIST-EXTENDED, which LIST-STATUS rides on).
 */
#include "imap/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* STATUS commands in flight at once (status.h says why this many). */
#define STATUS_WINDOW IMAP_STATUS_BURST
#define COMMAND_MAX 8192

struct run {
	unsigned flags;
	struct imap_folder_list *folders;
	struct imap_status *out;
	size_t hint; /* where the next answer most likely belongs */
	/* Pipelined STATUS: the tags in flight and their folders. */
	char tags[STATUS_WINDOW][16];
	size_t folder_of[STATUS_WINDOW];
	bool busy[STATUS_WINDOW];
	size_t inflight;
	bool answered;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

/* The folder the server means by `name`.  Answers come in the order of
 * the folders almost always, so start looking where the last one was. */
static struct imap_status *lookup(struct run *r, const char *name, size_t len,
				  size_t *index)
{
	size_t n = r->folders->n;

	if (len == 5 && !strncasecmp(name, "INBOX", 5))
		name = "INBOX";
	for (size_t k = 0; k < n; k++) {
		size_t i = (r->hint + k) % n;
		const char *f = r->folders->v[i].name;
		if (strlen(f) == len && !memcmp(f, name, len)) {
			r->hint = i + 1;
			if (index)
				*index = i;
			return &r->out[i];
		}
	}
	return NULL;
}

static enum isnap_status set_error(struct imap_status *s, const char *text,
				   struct isnap_error *err);

/* "* STATUS name (MESSAGES 3 UNSEEN 1 UIDVALIDITY 7 SIZE 4096)" */
static enum isnap_status on_status(struct run *r, const struct imap_response *rsp,
				   struct isnap_error *err)
{
	const struct imap_arg *items;
	struct imap_status *s;
	const char *name;
	size_t len;

	if (rsp->nargs != 2 || rsp->args[1].type != IMAP_ARG_LIST ||
	    !imap_arg_string(&rsp->args[0], false, &name, &len) ||
	    rsp->args[1].count % 2)
		return isnap_fail(err, ISNAP_EPROTO,
				  "malformed STATUS response from the server");
	s = lookup(r, name, len, NULL);
	if (!s)
		return ISNAP_OK; /* created since LIST: not ours to show */
	items = rsp->args[1].list;
	for (size_t i = 0; i < rsp->args[1].count; i += 2) {
		const struct imap_arg *k = &items[i], *v = &items[i + 1];
		bool ok = true;
		if (imap_arg_is_atom(k, "MESSAGES"))
			ok = imap_arg_uint32(v, &s->messages);
		else if (imap_arg_is_atom(k, "UNSEEN"))
			ok = imap_arg_uint32(v, &s->unseen);
		else if (imap_arg_is_atom(k, "UIDVALIDITY"))
			ok = imap_arg_uint32(v, &s->uidvalidity);
		else if (imap_arg_is_atom(k, "UIDNEXT"))
			ok = imap_arg_uint32(v, &s->uidnext);
		else if (imap_arg_is_atom(k, "HIGHESTMODSEQ"))
			ok = imap_arg_uint64(v, &s->highestmodseq);
		else if (imap_arg_is_atom(k, "SIZE"))
			ok = s->has_size = imap_arg_uint64(v, &s->size);
		if (!ok && (r->flags & IMAP_STATUS_SYNC)) {
			/* Only a hint for a backup: it does without. */
			s->known = false;
			return set_error(s, "the server's STATUS answer holds "
					 "a malformed number", err);
		}
		if (!ok)
			return isnap_fail(err, ISNAP_EPROTO,
					  "the server's STATUS answer holds "
					  "a malformed number");
	}
	s->known = true;
	return ISNAP_OK;
}

static const char *const special_uses[] = {
	"\\All", "\\Archive", "\\Drafts", "\\Flagged",
	"\\Junk", "\\Sent", "\\Trash", NULL,
};

/* LIST-STATUS answers with LIST lines too; with RETURN (SPECIAL-USE) they
 * carry roles a plain LIST may have left out. */
static enum isnap_status on_list(struct run *r, const struct imap_response *rsp,
				 struct isnap_error *err)
{
	const struct imap_arg *attrs = &rsp->args[0];
	struct imap_folder *f;
	const char *name;
	size_t len, i;

	if (rsp->nargs < 3 || attrs->type != IMAP_ARG_LIST ||
	    !imap_arg_string(&rsp->args[2], false, &name, &len))
		return isnap_fail(err, ISNAP_EPROTO,
				  "malformed LIST response from the server");
	if (!lookup(r, name, len, &i))
		return ISNAP_OK;
	f = &r->folders->v[i];
	for (size_t a = 0; a < attrs->count && !f->special_use; a++)
		for (const char *const *su = special_uses; *su; su++)
			if (imap_arg_is_atom(&attrs->list[a], *su) &&
			    !(f->special_use = strdup(*su)))
				return oom(err);
	return ISNAP_OK;
}

static enum isnap_status untagged(void *ctx, const struct imap_response *rsp,
				  struct isnap_error *err)
{
	struct run *r = ctx;

	if (rsp->kind != IMAP_RESP_UNTAGGED)
		return ISNAP_OK;
	if (!strcmp(rsp->name, "STATUS"))
		return on_status(r, rsp, err);
	if (!strcmp(rsp->name, "LIST") && !(r->flags & IMAP_STATUS_SYNC))
		return on_list(r, rsp, err);
	return ISNAP_OK;
}

static const char *items(const struct imap_client *c, unsigned flags)
{
	if (flags & IMAP_STATUS_SYNC)
		return imap_client_has_cap(c, "CONDSTORE")
			       ? "(UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"
			       : "(UIDVALIDITY UIDNEXT MESSAGES)";
	return imap_client_has_cap(c, "STATUS=SIZE")
		       ? "(MESSAGES UNSEEN UIDVALIDITY SIZE)"
		       : "(MESSAGES UNSEEN UIDVALIDITY)";
}

static enum isnap_status by_list_status(struct imap_client *c, struct run *r,
					struct isnap_error *err)
{
	char cmd[256];
	enum isnap_status st;

	snprintf(cmd, sizeof cmd, "LIST \"\" \"*\" RETURN (%sSTATUS %s)",
		 imap_client_has_cap(c, "SPECIAL-USE") &&
				 !(r->flags & IMAP_STATUS_SYNC)
			 ? "SPECIAL-USE "
			 : "",
		 items(c, r->flags));
	st = imap_client_simple(c, cmd, untagged, r, err);
	if (st == ISNAP_EFOLDER)
		err->status = st = ISNAP_EPROTO; /* LIST itself refused */
	return st;
}

static enum isnap_status set_error(struct imap_status *s, const char *text,
				   struct isnap_error *err)
{
	free(s->error);
	s->error = strdup(text);
	return s->error ? ISNAP_OK : oom(err);
}

static enum isnap_status pipe_response(void *ctx,
				       const struct imap_response *rsp,
				       struct isnap_error *err)
{
	struct run *r = ctx;
	size_t slot;

	if (rsp->kind == IMAP_RESP_CONTINUATION)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server asked for data nobody offered");
	if (rsp->kind == IMAP_RESP_UNTAGGED)
		return untagged(r, rsp, err);
	for (slot = 0; slot < STATUS_WINDOW; slot++)
		if (r->busy[slot] && !strcmp(r->tags[slot], rsp->tag))
			break;
	if (slot == STATUS_WINDOW)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server answered command %s, which was "
				  "never sent",
				  rsp->tag);
	r->busy[slot] = false;
	r->inflight--;
	r->answered = true;
	if (strcmp(rsp->name, "OK")) {
		char text[512];
		struct imap_status *s = &r->out[r->folder_of[slot]];
		snprintf(text, sizeof text, "the server said %s %s", rsp->name,
			 rsp->text ? rsp->text : "");
		s->known = false;
		return set_error(s, text, err);
	}
	return ISNAP_OK;
}

static enum isnap_status send_status(struct imap_client *c, struct run *r,
				     size_t i, struct isnap_error *err)
{
	char cmd[COMMAND_MAX];
	size_t n, slot;

	memcpy(cmd, "STATUS ", 7);
	n = imap_client_quote(c, r->folders->v[i].name, cmd + 7,
			      sizeof cmd - 64);
	if (!n)
		return set_error(&r->out[i],
				 "the folder name cannot be sent back to this "
				 "server",
				 err);
	snprintf(cmd + 7 + n, sizeof cmd - 7 - n, " %s", items(c, r->flags));
	for (slot = 0; r->busy[slot]; slot++)
		;
	r->busy[slot] = true;
	r->folder_of[slot] = i;
	r->inflight++;
	return imap_client_send(c, cmd, r->tags[slot], err);
}

static enum isnap_status by_status(struct imap_client *c, struct run *r,
				   struct isnap_error *err)
{
	struct imap_handler h = { .ctx = r, .response = pipe_response };
	size_t next = 0, n = r->folders->n;
	enum isnap_status st;

	while (next < n || r->inflight) {
		while (r->inflight < STATUS_WINDOW && next < n) {
			size_t i = next++;
			if (r->folders->v[i].noselect)
				continue;
			st = send_status(c, r, i, err);
			if (st)
				return st;
		}
		if (!r->inflight)
			break;
		r->answered = false;
		st = imap_client_pump(c, &h, &r->answered, err);
		if (st)
			return st;
	}
	return ISNAP_OK;
}

static enum isnap_status size_untagged(void *ctx,
				       const struct imap_response *rsp,
				       struct isnap_error *err)
{
	uint64_t *total = ctx, v;
	const struct imap_arg *list;

	(void)err;
	if (rsp->kind != IMAP_RESP_UNTAGGED || strcmp(rsp->name, "FETCH") ||
	    rsp->nargs != 1 || rsp->args[0].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	list = &rsp->args[0];
	for (size_t i = 0; i + 1 < list->count; i += 2)
		if (imap_arg_is_atom(&list->list[i], "RFC822.SIZE") &&
		    imap_arg_uint64(&list->list[i + 1], &v))
			*total += v;
	return ISNAP_OK;
}

/* EXAMINE and add up RFC822.SIZE: the size of a folder on a server that
 * does not report it. */
static enum isnap_status count_size(struct imap_client *c,
				    const struct imap_folder *f,
				    struct imap_status *s,
				    struct isnap_error *err)
{
	struct imap_mailbox_info mi;
	struct isnap_error ferr = { 0 };
	uint64_t total = 0;
	enum isnap_status st;

	st = imap_examine(c, f->name, &mi, &ferr);
	if (!st && mi.exists)
		st = imap_client_simple(c, "FETCH 1:* (RFC822.SIZE)",
					size_untagged, &total, &ferr);
	if (st == ISNAP_EFOLDER)
		return set_error(s, ferr.msg, err);
	if (st) {
		*err = ferr;
		return st;
	}
	s->size = total;
	s->has_size = true;
	return ISNAP_OK;
}

enum isnap_status imap_status_all(struct imap_client *c,
				  struct imap_folder_list *folders,
				  struct imap_status *out, unsigned flags,
				  enum imap_status_method *method,
				  struct isnap_error *err)
{
	struct run r = { .flags = flags, .folders = folders, .out = out };
	enum isnap_status st;
	bool list_status = imap_client_has_cap(c, "LIST-STATUS");

	if (method)
		*method = list_status ? IMAP_STATUS_BY_LIST_STATUS
				      : IMAP_STATUS_BY_STATUS;
	if (folders->n == 0)
		return ISNAP_OK;
	st = list_status ? by_list_status(c, &r, err) : by_status(c, &r, err);
	if (st)
		return st;
	for (size_t i = 0; i < folders->n; i++) {
		struct imap_status *s = &out[i];
		if (folders->v[i].noselect)
			continue;
		/* LIST-STATUS leaves out folders it could not STATUS. */
		if (!s->known && !s->error &&
		    (st = set_error(s, "the server gave no status", err)))
			return st;
		if ((flags & IMAP_STATUS_COUNT_SIZES) && s->known &&
		    !s->has_size &&
		    (st = count_size(c, &folders->v[i], s, err)))
			return st;
	}
	return ISNAP_OK;
}

void imap_status_free(struct imap_status *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].error);
	free(v);
}
