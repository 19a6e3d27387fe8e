/* commands.c — see commands.h. */
#include "imap/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A mailbox name quoted for a command, plus the command around it. */
#define COMMAND_MAX 8192
/* Longer names are not backed up (a command could not carry them). */
#define FOLDER_NAME_MAX 4096

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static bool has_flag(const struct imap_arg *flags, const char *flag)
{
	for (size_t i = 0; i < flags->count; i++)
		if (imap_arg_is_atom(&flags->list[i], flag))
			return true;
	return false;
}

static const char *const special_uses[] = {
	"\\All", "\\Archive", "\\Drafts", "\\Flagged",
	"\\Junk", "\\Sent", "\\Trash", NULL,
};

static enum isnap_status list_untagged(void *ctx, const struct imap_response *r,
				       struct isnap_error *err)
{
	struct imap_folder_list *l = ctx;
	const char *name, *delim;
	size_t nlen, dlen;
	struct imap_folder f = { 0 };

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "LIST"))
		return ISNAP_OK;
	/* LIST-EXTENDED may add a list of extended data items. */
	if (r->nargs < 3 || r->nargs > 4 ||
	    (r->nargs == 4 && r->args[3].type != IMAP_ARG_LIST) ||
	    r->args[0].type != IMAP_ARG_LIST ||
	    !imap_arg_string(&r->args[1], true, &delim, &dlen) ||
	    !imap_arg_string(&r->args[2], false, &name, &nlen))
		return isnap_fail(err, ISNAP_EPROTO,
				  "malformed LIST response from the server");
	if (dlen > 1)
		f.invalid = "the server gave a hierarchy delimiter longer than "
			    "one character";
	if (memchr(name, '\0', nlen))
		f.invalid = "the server listed a folder name containing NUL";
	if (nlen > FOLDER_NAME_MAX) {
		/* Keep only enough of it to name it: a server listing many
		 * huge names must not grow memory without bound. */
		f.invalid = "the server listed a folder name too long to "
			    "back up (over 4096 bytes)";
		nlen = 200;
	}
	if (nlen == 5 && !strncasecmp(name, "INBOX", 5))
		name = "INBOX";
	for (size_t i = 0; i < l->n; i++)
		if (!f.invalid && !l->v[i].invalid &&
		    !strcmp(l->v[i].name, name) &&
		    strlen(name) == nlen)
			return ISNAP_OK;

	f.delim = dlen == 1 ? delim[0] : '\0';
	f.noselect = has_flag(&r->args[0], "\\Noselect") ||
		     has_flag(&r->args[0], "\\NonExistent");
	for (const char *const *su = special_uses; *su; su++)
		if (has_flag(&r->args[0], *su) && !f.special_use)
			f.special_use = strdup(*su);
	f.name = strndup(name, nlen);
	if (!f.name)
		return oom(err);
	if (l->n == l->alloc) {
		size_t na = l->alloc ? 2 * l->alloc : 16;
		struct imap_folder *v = realloc(l->v, na * sizeof *v);
		if (!v) {
			free(f.name);
			free(f.special_use);
			return oom(err);
		}
		l->v = v;
		l->alloc = na;
	}
	l->v[l->n++] = f;
	return ISNAP_OK;
}

/* * NAMESPACE (personal) (other users') (shared): the first personal
 * one, a list of (prefix delimiter [extensions]). */
static enum isnap_status namespace_untagged(struct imap_namespace *ns,
					    const struct imap_response *r,
					    struct isnap_error *err)
{
	const struct imap_arg *first;
	const char *prefix, *delim;
	size_t plen, dlen;

	if (ns->known || r->nargs < 1 || r->args[0].type != IMAP_ARG_LIST ||
	    r->args[0].count < 1)
		return ISNAP_OK; /* NIL: no personal namespace; infer one */
	first = &r->args[0].list[0];
	if (first->type != IMAP_ARG_LIST || first->count < 2 ||
	    !imap_arg_string(&first->list[0], false, &prefix, &plen) ||
	    !imap_arg_string(&first->list[1], true, &delim, &dlen) ||
	    dlen > 1 || memchr(prefix, '\0', plen) ||
	    plen > FOLDER_NAME_MAX)
		return ISNAP_OK; /* not usable: infer one */
	if (!(ns->prefix = strndup(prefix, plen)))
		return oom(err);
	ns->delim = dlen == 1 ? delim[0] : '\0';
	ns->known = true;
	return ISNAP_OK;
}

/* Longest ID field or value kept (RFC 2971 allows 1024 octets), and most
 * pairs (it allows 30). */
#define ID_STRING_MAX 1024
#define ID_PAIRS_MAX 30

/* * ID NIL, or * ID ("name" "Dovecot" "version" NIL ...). */
static enum isnap_status id_untagged(struct imap_server_id *id,
				     const struct imap_response *r,
				     struct isnap_error *err)
{
	const struct imap_arg *l;
	size_t pairs;

	if (id->answered || r->nargs != 1)
		return ISNAP_OK;
	id->answered = true;
	l = &r->args[0];
	if (l->type != IMAP_ARG_LIST)
		return ISNAP_OK; /* NIL: the server tells nothing */
	pairs = l->count / 2;
	if (pairs > ID_PAIRS_MAX)
		pairs = ID_PAIRS_MAX;
	id->field = calloc(pairs ? pairs : 1, sizeof *id->field);
	id->value = calloc(pairs ? pairs : 1, sizeof *id->value);
	if (!id->field || !id->value)
		return oom(err);
	for (size_t i = 0; i < pairs; i++) {
		const char *f, *v;
		size_t fl, vl;
		if (!imap_arg_string(&l->list[2 * i], false, &f, &fl) ||
		    !imap_arg_string(&l->list[2 * i + 1], true, &v, &vl))
			continue; /* not a pair of strings: left out */
		if (fl > ID_STRING_MAX)
			fl = ID_STRING_MAX;
		if (vl > ID_STRING_MAX)
			vl = ID_STRING_MAX;
		if (!(id->field[id->n] = strndup(f, fl)))
			return oom(err);
		if (l->list[2 * i + 1].type != IMAP_ARG_NIL &&
		    !(id->value[id->n] = strndup(v, vl))) {
			free(id->field[id->n]);
			return oom(err);
		}
		id->n++;
	}
	return ISNAP_OK;
}

struct list_run {
	struct imap_folder_list *l;
	char id_tag[16], ns_tag[16], list_tag[16];
	unsigned waiting;
	bool done;
	enum isnap_status list_result;
};

static enum isnap_status list_response(void *ctx, const struct imap_response *r,
				       struct isnap_error *err)
{
	struct list_run *run = ctx;

	if (r->kind == IMAP_RESP_UNTAGGED) {
		if (!strcmp(r->name, "NAMESPACE"))
			return namespace_untagged(&run->l->ns, r, err);
		if (!strcmp(r->name, "ID"))
			return id_untagged(&run->l->id, r, err);
		return list_untagged(run->l, r, err);
	}
	if (r->kind == IMAP_RESP_CONTINUATION)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server asked for data nobody offered");
	if (!strcmp(r->tag, run->list_tag)) {
		/* LIST itself refused: nothing can be done with the account. */
		if (strcmp(r->name, "OK"))
			run->list_result = isnap_fail(
				err, ISNAP_EPROTO, "the server said %s %s",
				r->name, r->text ? r->text : "");
	} else if ((strcmp(r->tag, run->ns_tag) || !run->ns_tag[0]) &&
		   (strcmp(r->tag, run->id_tag) || !run->id_tag[0])) {
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server answered command %.16s, which "
				  "was never sent",
				  r->tag);
	}
	/* A NAMESPACE refused is a namespace inferred; an ID refused is
	 * only not recorded. */
	run->done = --run->waiting == 0;
	return ISNAP_OK;
}

/* No personal namespace from the server: guess it from the LIST. */
static enum isnap_status infer_namespace(struct imap_folder_list *l,
					 struct isnap_error *err)
{
	char delim = '\0';
	bool below_inbox = false, others = false;

	for (size_t i = 0; i < l->n; i++) {
		const struct imap_folder *f = &l->v[i];
		if (f->invalid)
			continue;
		if (!strcmp(f->name, "INBOX")) {
			if (f->delim)
				delim = f->delim;
			continue;
		}
		if (!delim)
			delim = f->delim;
	}
	for (size_t i = 0; i < l->n && delim; i++) {
		const struct imap_folder *f = &l->v[i];
		if (f->invalid || !strcmp(f->name, "INBOX"))
			continue;
		if (!strncasecmp(f->name, "INBOX", 5) && f->name[5] == delim)
			below_inbox = true;
		else
			others = true;
	}
	l->ns.inferred = true;
	l->ns.delim = delim;
	if (below_inbox && !others) {
		char p[7] = "INBOX";
		p[5] = delim;
		l->ns.prefix = strdup(p);
	} else {
		l->ns.prefix = strdup("");
	}
	return l->ns.prefix ? ISNAP_OK : oom(err);
}

enum isnap_status imap_list(struct imap_client *c, struct imap_folder_list *out,
			    struct isnap_error *err)
{
	struct list_run run = { .l = out };
	struct imap_handler h = { .ctx = &run, .response = list_response };
	const char *cmd = imap_client_has_cap(c, "SPECIAL-USE")
				  ? "LIST \"\" \"*\" RETURN (SPECIAL-USE)"
				  : "LIST \"\" \"*\"";
	enum isnap_status st = ISNAP_OK;

	/* In the same burst as LIST: no round trip of its own. */
	if (imap_client_has_cap(c, "ID")) {
		st = imap_client_send(c, "ID NIL", run.id_tag, err);
		out->id.asked = !st;
		run.waiting++;
	}
	if (!st && imap_client_has_cap(c, "NAMESPACE")) {
		st = imap_client_send(c, "NAMESPACE", run.ns_tag, err);
		run.waiting++;
	}
	if (!st)
		st = imap_client_send(c, cmd, run.list_tag, err);
	run.waiting++;
	if (!st)
		st = imap_client_pump(c, &h, &run.done, err);
	if (!st)
		st = run.list_result;
	if (!st && !out->ns.known) {
		free(out->ns.prefix);
		out->ns.prefix = NULL;
		st = infer_namespace(out, err);
	}
	return st;
}

void imap_folder_list_free(struct imap_folder_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].special_use);
	}
	free(l->v);
	free(l->ns.prefix);
	for (size_t i = 0; i < l->id.n; i++) {
		free(l->id.field[i]);
		free(l->id.value[i]);
	}
	free(l->id.field);
	free(l->id.value);
	memset(l, 0, sizeof *l);
}

static bool parse_u32(const char *s, uint32_t *out)
{
	struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = s };
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	a.len = n;
	return n > 0 && imap_arg_uint32(&a, out);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	struct imap_arg a = { .type = IMAP_ARG_ATOM, .str = s };
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	a.len = n;
	return n > 0 && imap_arg_uint64(&a, out);
}

void imap_examine_response(struct imap_mailbox_info *mi,
			   const struct imap_response *r)
{
	if (r->kind != IMAP_RESP_UNTAGGED)
		return;
	if (r->has_number && !strcmp(r->name, "EXISTS")) {
		mi->exists = r->number;
	} else if (!strcmp(r->name, "OK") && r->code && r->code_args) {
		if (!strcmp(r->code, "UIDVALIDITY"))
			parse_u32(r->code_args, &mi->uidvalidity);
		else if (!strcmp(r->code, "UIDNEXT"))
			parse_u32(r->code_args, &mi->uidnext);
		else if (!strcmp(r->code, "HIGHESTMODSEQ"))
			parse_u64(r->code_args, &mi->highestmodseq);
	}
}

static enum isnap_status examine_untagged(void *ctx,
					  const struct imap_response *r,
					  struct isnap_error *err)
{
	(void)err;
	imap_examine_response(ctx, r);
	return ISNAP_OK;
}

size_t imap_examine_command(const struct imap_client *c, const char *name,
			    char *buf, size_t size)
{
	size_t n;

	if (size < 40)
		return 0;
	memcpy(buf, "EXAMINE ", 8);
	n = imap_client_quote(c, name, buf + 8, size - 40);
	if (!n)
		return 0;
	n += 8;
	if (imap_client_has_cap(c, "CONDSTORE")) {
		strcpy(buf + n, " (CONDSTORE)");
		n += 12;
	}
	return n;
}

enum isnap_status imap_examine(struct imap_client *c, const char *name,
			       struct imap_mailbox_info *out,
			       struct isnap_error *err)
{
	char cmd[COMMAND_MAX];

	memset(out, 0, sizeof *out);
	if (!imap_examine_command(c, name, cmd, sizeof cmd))
		return isnap_fail(err, ISNAP_EFOLDER,
				  "the folder name cannot be sent back to "
				  "this server");
	return imap_client_simple(c, cmd, examine_untagged, out, err);
}

/* The TAG correlator of an ESEARCH answer, RFC 4731 §3.1:
 * "* ESEARCH (TAG "i7") UID ALL 1:5". */
static bool esearch_tag_is(const struct imap_response *r, const char *tag)
{
	const struct imap_arg *c;
	const char *t;
	size_t len;

	/* Without a correlator it cannot be told apart: take it. */
	if (!r->nargs || r->args[0].type != IMAP_ARG_LIST)
		return true;
	c = &r->args[0];
	if (c->count != 2 || !imap_arg_is_atom(&c->list[0], "TAG") ||
	    !imap_arg_string(&c->list[1], false, &t, &len))
		return true;
	return len == strlen(tag) && !memcmp(t, tag, len);
}

static enum isnap_status add_uid(struct uidset *out, uint32_t from,
				 const struct imap_arg *a, const char *what,
				 struct isnap_error *err)
{
	uint32_t uid;

	if (!imap_arg_uint32(a, &uid) || uid == 0)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server's %s answer holds an invalid UID",
				  what);
	if (uid >= from && uidset_add(out, uid))
		return oom(err);
	return ISNAP_OK;
}

enum isnap_status imap_uid_search_response(struct uidset *out, uint32_t from,
					   unsigned kinds, const char *tag,
					   const struct imap_response *r,
					   struct isnap_error *err)
{
	enum isnap_status st;

	if (r->kind != IMAP_RESP_UNTAGGED)
		return ISNAP_OK;
	if ((kinds & IMAP_UIDS_SEARCH) && !strcmp(r->name, "SEARCH")) {
		for (size_t i = 0; i < r->nargs; i++)
			if ((st = add_uid(out, from, &r->args[i], "SEARCH",
					  err)))
				return st;
	} else if ((kinds & IMAP_UIDS_ESEARCH) &&
		   !strcmp(r->name, "ESEARCH")) {
		if (tag && *tag && !esearch_tag_is(r, tag))
			return ISNAP_OK;
		/* ESEARCH (TAG "i7") UID ALL 1:5,9 — or no ALL when none. */
		for (size_t i = 0; i + 1 < r->nargs; i++) {
			const char *set;
			size_t len;
			struct uidset part = UIDSET_INIT;
			int rc;
			if (!imap_arg_is_atom(&r->args[i], "ALL"))
				continue;
			if (!imap_arg_string(&r->args[i + 1], false, &set,
					     &len) ||
			    uidset_parse(&part, set, len)) {
				/* A failed parse empties the set but keeps its
				 * memory. */
				uidset_free(&part);
				return isnap_fail(err, ISNAP_EPROTO,
						  "the server's ESEARCH answer "
						  "holds an invalid UID set");
			}
			if (from > 1 && uidset_remove_range(&part, 1, from - 1))
				rc = -1;
			else
				rc = uidset_add_set(out, &part);
			uidset_free(&part);
			if (rc)
				return oom(err);
		}
	} else if ((kinds & IMAP_UIDS_FETCH) && !strcmp(r->name, "FETCH") &&
		   r->nargs == 1 && r->args[0].type == IMAP_ARG_LIST) {
		const struct imap_arg *items = &r->args[0];
		for (size_t i = 0; i + 1 < items->count; i += 2)
			if (imap_arg_is_atom(&items->list[i], "UID"))
				return add_uid(out, from, &items->list[i + 1],
					       "FETCH", err);
	}
	return ISNAP_OK;
}

struct search_ctx {
	struct uidset *out;
	uint32_t from;
	unsigned kinds;
};

static enum isnap_status search_untagged(void *vctx,
					 const struct imap_response *r,
					 struct isnap_error *err)
{
	struct search_ctx *sc = vctx;

	return imap_uid_search_response(sc->out, sc->from, sc->kinds, NULL, r,
					err);
}

void imap_uid_search_command(const struct imap_client *c, uint32_t from,
			     const char *criteria, char *buf, size_t size)
{
	bool esearch = imap_client_has_cap(c, "ESEARCH");

	if (from == 0)
		from = 1;
	if (!esearch && !(criteria && *criteria))
		/* A plain SEARCH answers in one line, which for a large
		 * folder outgrows any sane response limit; one small FETCH
		 * response per message does not. */
		snprintf(buf, size, "UID FETCH %u:* (UID)", from);
	else
		snprintf(buf, size, "UID SEARCH %sUID %u:*%s%s",
			 esearch ? "RETURN (ALL) " : "", from,
			 criteria && *criteria ? " " : "",
			 criteria ? criteria : "");
}

enum isnap_status imap_uid_search_from(struct imap_client *c, uint32_t from,
				       struct uidset *out,
				       struct isnap_error *err)
{
	return imap_uid_search(c, from, NULL, out, err);
}

enum isnap_status imap_uid_search(struct imap_client *c, uint32_t from,
				  const char *criteria, struct uidset *out,
				  struct isnap_error *err)
{
	char cmd[512];
	struct uidset found = UIDSET_INIT;
	struct search_ctx sc = { &found, from ? from : 1,
				 IMAP_UIDS_SEARCH | IMAP_UIDS_ESEARCH |
					 IMAP_UIDS_FETCH };
	enum isnap_status st;

	imap_uid_search_command(c, from, criteria, cmd, sizeof cmd);
	st = imap_client_simple(c, cmd, search_untagged, &sc, err);
	if (!st && uidset_add_set(out, &found))
		st = oom(err);
	uidset_free(&found);
	return st;
}

void imap_size_response(uint64_t *total, const struct imap_response *r)
{
	const struct imap_arg *items;

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH") ||
	    r->nargs != 1 || r->args[0].type != IMAP_ARG_LIST)
		return;
	items = &r->args[0];
	for (size_t i = 0; i + 1 < items->count; i += 2) {
		uint64_t v;
		if (imap_arg_is_atom(&items->list[i], "RFC822.SIZE") &&
		    imap_arg_uint64(&items->list[i + 1], &v))
			*total += v;
	}
}

static enum isnap_status size_untagged(void *ctx, const struct imap_response *r,
				       struct isnap_error *err)
{
	(void)err;
	imap_size_response(ctx, r);
	return ISNAP_OK;
}

enum isnap_status imap_uid_total_size(struct imap_client *c,
				      const struct uidset *uids,
				      uint64_t *total, struct isnap_error *err)
{
	struct uidset batch = UIDSET_INIT;
	uint32_t after = 0;
	enum isnap_status st = ISNAP_OK;
	char cmd[8192];

	*total = 0;
	for (;;) {
		char *set;
		long n = uidset_next_batch(uids, &after, 500, &batch);
		if (n <= 0) {
			if (n < 0)
				st = oom(err);
			break;
		}
		if (uidset_format(&batch, &set)) {
			st = oom(err);
			break;
		}
		snprintf(cmd, sizeof cmd, "UID FETCH %s (RFC822.SIZE)", set);
		free(set);
		st = imap_client_simple(c, cmd, size_untagged, total, err);
		if (st)
			break;
	}
	uidset_free(&batch);
	return st;
}

enum isnap_status imap_changed_flags_response(
	const struct imap_response *r,
	enum isnap_status (*changed)(void *ctx, uint32_t uid,
				     const struct imap_arg *flags,
				     uint64_t modseq, struct isnap_error *err),
	void *ctx, struct isnap_error *err)
{
	const struct imap_arg *items, *flags = NULL;
	uint32_t uid = 0;
	uint64_t modseq = 0;

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH") ||
	    r->nargs != 1 || r->args[0].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	items = &r->args[0];
	for (size_t i = 0; i + 1 < items->count; i += 2) {
		const struct imap_arg *n = &items->list[i], *v = n + 1;
		if (imap_arg_is_atom(n, "UID"))
			imap_arg_uint32(v, &uid);
		else if (imap_arg_is_atom(n, "FLAGS") &&
			 v->type == IMAP_ARG_LIST)
			flags = v;
		else if (imap_arg_is_atom(n, "MODSEQ") &&
			 v->type == IMAP_ARG_LIST && v->count == 1)
			imap_arg_uint64(&v->list[0], &modseq);
	}
	if (!uid || !flags)
		return ISNAP_OK; /* not about a message we can name */
	return changed(ctx, uid, flags, modseq, err);
}

size_t imap_changed_flags_command(uint32_t below, uint64_t modseq, char *buf,
				  size_t size)
{
	int n;

	if (below <= 1)
		return 0;
	n = snprintf(buf, size,
		     "UID FETCH 1:%u (UID FLAGS) (CHANGEDSINCE %llu)",
		     below - 1, (unsigned long long)modseq);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

struct changed_ctx {
	enum isnap_status (*changed)(void *, uint32_t, const struct imap_arg *,
				     uint64_t, struct isnap_error *);
	void *ctx;
};

static enum isnap_status changed_untagged(void *vctx,
					  const struct imap_response *r,
					  struct isnap_error *err)
{
	struct changed_ctx *cc = vctx;

	return imap_changed_flags_response(r, cc->changed, cc->ctx, err);
}

enum isnap_status imap_uid_changed_flags(
	struct imap_client *c, uint32_t below, uint64_t modseq,
	enum isnap_status (*changed)(void *ctx, uint32_t uid,
				     const struct imap_arg *flags,
				     uint64_t modseq, struct isnap_error *err),
	void *ctx, struct isnap_error *err)
{
	struct changed_ctx cc = { changed, ctx };
	char cmd[128];

	if (!imap_changed_flags_command(below, modseq, cmd, sizeof cmd))
		return ISNAP_OK;
	return imap_client_simple(c, cmd, changed_untagged, &cc, err);
}
