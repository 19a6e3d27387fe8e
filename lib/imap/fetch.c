/* fetch.c — see fetch.h.  RFC 3501 §6.4.5 and §7.4.2, RFC 7162. */
#include "imap/fetch.h"
#include "imap/gmail.h"
#include "imap/throttle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap/pipeline.h"
#include "interrupt.h"

#define MAX_DEPTH 16

/* BODY[] last, so that every other item precedes the body literal. */
static const char fetch_items[] =
	"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])";
static const char fetch_items_modseq[] =
	"(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[])";
/* Gmail: the message's id across folders, its thread and its labels
 * (lib/imap/gmail.h); Gmail has CONDSTORE. */
static const char fetch_items_gmail[] =
	"(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ X-GM-MSGID X-GM-THRID "
	"X-GM-LABELS BODY.PEEK[])";

struct inflight {
	uintptr_t id;
	struct uidset asked;
	/* The server sent something wrong while this command was open: a
	 * UID it asked for and did not get was not necessarily expunged. */
	bool disturbed;
};

/* What one FETCH response told about its message. */
struct item_meta {
	bool has_uid;
	uint32_t uid;
	struct store_message m;
	char keywords[FETCH_KEYWORDS_MAX];
	const struct imap_arg *body; /* the BODY[] value, when complete */
	struct gmail_labels labels;  /* X-GM-LABELS; m.gm_labels points here */
};

enum msg_state { MSG_NONE, MSG_STORING, MSG_DISCARDING };

struct fetch {
	struct imap_pipeline *pipe;
	struct imap_owner *owner;
	struct store *store;
	struct fetch_opts o;
	const struct fetch_callbacks *cb;
	struct fetch_stats *stats;
	const char *items;   /* what each UID FETCH asks for */

	struct uidset uids;  /* all to fetch */
	uint32_t cursor;     /* highest UID already sent in a command */
	bool all_sent;
	struct inflight q[MAX_DEPTH];
	unsigned nq;
	uintptr_t next_id;

	struct uidset received; /* bodies seen in this fetch, saved or not */
	struct uidset pending;  /* ended in the store, not yet committed */
	uint32_t pending_msgs;
	uint64_t pending_bytes;
	struct timespec pending_since; /* when the first of them ended */
	struct uidset accounted; /* committed, failed, skipped or gone */
	struct uidset skip;     /* held by the store already */

	/* The message whose body is being streamed. */
	enum msg_state state;
	uint32_t uid;        /* 0 when the server sent no UID before the body */
	uint64_t size, written;
	bool skipping;       /* a body of `skip`, dropped quietly */
	char why[ISNAP_ERROR_MAX]; /* why it is being discarded */
	struct item_meta begin_meta;
	struct item_meta end_meta;
	unsigned throttles;  /* throttling answers in a row */
	/* Throttled and not asked again (may_send_again), and the wait
	 * the server asked for; -1: none. */
	struct uidset deferred;
	long deferred_ms;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr",
					"May", "Jun", "Jul", "Aug",
					"Sep", "Oct", "Nov", "Dec" };

static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool fetch_parse_internaldate(const char *s, size_t len, int64_t *epoch,
			      int *tz_minutes, bool *leap_second)
{
	/* "dd-Mon-yyyy hh:mm:ss +zzzz", 26 octets; day may be " 7". */
	struct tm tm = { 0 };
	int day, year, hh, mm, ss, zh, zm, mon = -1;
	char d[2];

	if (len != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' ||
	    s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
	    (s[21] != '+' && s[21] != '-'))
		return false;
	d[0] = s[0] == ' ' ? '0' : s[0];
	d[1] = s[1];
	for (int i = 0; i < 12; i++)
		if (!strncasecmp(s + 3, months[i], 3))
			mon = i;
	if (mon < 0 || !digits(d, 2, &day) || !digits(s + 7, 4, &year) ||
	    !digits(s + 12, 2, &hh) || !digits(s + 15, 2, &mm) ||
	    !digits(s + 18, 2, &ss) || !digits(s + 22, 2, &zh) ||
	    !digits(s + 24, 2, &zm))
		return false;
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return false;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	/* POSIX time has no 23:59:60: keep the second that precedes it,
	 * and say so. */
	tm.tm_sec = ss == 60 ? 59 : ss;
	int tz = (zh * 60 + zm) * (s[21] == '-' ? -1 : 1);
	*epoch = (int64_t)timegm(&tm) - (int64_t)tz * 60;
	*tz_minutes = tz;
	if (leap_second)
		*leap_second = ss == 60;
	return true;
}

void fetch_parse_flags(const struct imap_arg *list, unsigned *flags,
		       char *keywords, size_t size)
{
	size_t kn = 0;

	*flags = 0;
	if (size)
		keywords[0] = '\0';
	for (size_t i = 0; i < list->count; i++) {
		const struct imap_arg *a = &list->list[i];
		unsigned bit;
		if (a->type != IMAP_ARG_ATOM)
			continue;
		/* An atom holds no NUL (parser.c), so a->str is all of it. */
		bit = store_flag_by_name(a->str);
		*flags |= bit;
		/* \Recent is session state, not a property of the message. */
		if (bit || imap_arg_is_atom(a, "\\Recent"))
			continue;
		if (kn + a->len + 2 > size)
			continue;
		if (kn)
			keywords[kn++] = ' ';
		memcpy(keywords + kn, a->str, a->len);
		kn += a->len;
		keywords[kn] = '\0';
	}
}

/* Read the "name value" pairs of a FETCH response's list (the last name may
 * lack its value while the body literal is still to come). */
static void parse_items(const struct imap_arg *items, size_t count,
			struct item_meta *im)
{
	gmail_labels_free(&im->labels);
	memset(im, 0, sizeof *im);
	im->m.keywords = im->keywords;
	im->m.internaldate = STORE_NO_DATE;
	im->m.rfc822_size = STORE_NO_SIZE;
	for (size_t i = 0; i + 1 < count; i += 2) {
		const struct imap_arg *name = &items[i], *val = &items[i + 1];
		if (imap_arg_is_atom(name, "UID")) {
			im->has_uid = imap_arg_uint32(val, &im->uid) &&
				      im->uid > 0;
		} else if (imap_arg_is_atom(name, "FLAGS") &&
			   val->type == IMAP_ARG_LIST) {
			fetch_parse_flags(val, &im->m.flags, im->keywords,
					  sizeof im->keywords);
		} else if (imap_arg_is_atom(name, "INTERNALDATE") &&
			   val->type == IMAP_ARG_STRING) {
			int64_t t;
			int tz;
			bool leap;
			if (fetch_parse_internaldate(val->str, val->len, &t,
						     &tz, &leap)) {
				im->m.internaldate = t;
				im->m.tz_minutes = tz;
				im->m.leap_second = leap;
			}
		} else if (imap_arg_is_atom(name, "RFC822.SIZE")) {
			uint64_t v;
			if (imap_arg_uint64(val, &v))
				im->m.rfc822_size = v;
		} else if (imap_arg_is_atom(name, "MODSEQ") &&
			   val->type == IMAP_ARG_LIST && val->count == 1) {
			uint64_t v;
			if (imap_arg_uint64(&val->list[0], &v))
				im->m.modseq = v;
		} else if (imap_arg_is_atom(name, "X-GM-MSGID")) {
			imap_arg_uint64(val, &im->m.gm_msgid);
		} else if (imap_arg_is_atom(name, "X-GM-THRID")) {
			imap_arg_uint64(val, &im->m.gm_thrid);
		} else if (imap_arg_is_atom(name, "X-GM-LABELS")) {
			/* Malformed labels are not a lost message: the
			 * message is saved, its labels not recorded. */
			if (gmail_labels_parse(val, &im->labels, NULL) ==
			    ISNAP_OK) {
				im->m.has_gm_labels = true;
				im->m.gm_labels =
					(const char *const *)im->labels.v;
				im->m.gm_nlabels = im->labels.n;
			}
		} else if (imap_arg_is_atom(name, "BODY[]")) {
			im->body = val;
		}
	}
	im->m.uid = im->uid;
}

static struct inflight *asked_in(struct fetch *e, uint32_t uid)
{
	for (unsigned i = 0; i < e->nq; i++)
		if (uidset_contains(&e->q[i].asked, uid))
			return &e->q[i];
	return NULL;
}

/* A body nobody asked for, or one that cannot be placed: ignored, counted,
 * and every command in flight loses the benefit of the doubt. */
static void unexpected_body(struct fetch *e)
{
	e->stats->unexpected++;
	for (unsigned i = 0; i < e->nq; i++)
		e->q[i].disturbed = true;
}

static enum isnap_status account(struct fetch *e, uint32_t uid,
				 struct isnap_error *err)
{
	return uidset_add(&e->accounted, uid) ? oom(err) : ISNAP_OK;
}

static enum isnap_status fail_message(struct fetch *e, uint32_t uid,
				      const char *why, struct isnap_error *err)
{
	e->stats->failed++;
	if (e->cb->message_failed)
		e->cb->message_failed(e->cb->ctx, uid, why);
	return account(e, uid, err);
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000L +
	       (now.tv_nsec - t->tv_nsec) / 1000000L;
}

static enum isnap_status commit(struct fetch *e, struct isnap_error *err)
{
	enum isnap_status st;

	if (uidset_empty(&e->pending))
		return ISNAP_OK;
	st = e->store->ops->commit(e->store, err);
	if (st)
		return st;
	/* Counted as saved only now that they are durable. */
	e->stats->saved += e->pending_msgs;
	e->stats->bytes += e->pending_bytes;
	e->pending_msgs = 0;
	e->pending_bytes = 0;
	if (e->cb->committed) {
		st = e->cb->committed(e->cb->ctx, &e->pending, err);
		if (st)
			return st;
	}
	if (uidset_add_set(&e->accounted, &e->pending))
		return oom(err);
	uidset_clear(&e->pending);
	return ISNAP_OK;
}

/* Time to commit: enough messages or bytes, or the oldest waited long
 * enough.  Only between messages. */
static bool commit_due(const struct fetch *e)
{
	return e->pending_msgs &&
	       (e->pending_msgs >= e->o.commit_messages ||
		e->pending_bytes >= e->o.commit_bytes ||
		ms_since(&e->pending_since) >= (long)e->o.commit_ms);
}

/* A message is complete in the store. */
static enum isnap_status message_ended(struct fetch *e, uint32_t uid,
				       uint64_t bytes,
				       const struct store_message *m,
				       struct isnap_error *err)
{
	if (uidset_add(&e->pending, uid))
		return oom(err);
	if (m->rfc822_size != STORE_NO_SIZE && m->rfc822_size != bytes)
		e->stats->size_mismatch++;
	if (e->cb->message_saved)
		e->cb->message_saved(e->cb->ctx, uid, bytes);
	if (e->cb->message_flags) {
		enum isnap_status st = e->cb->message_flags(
			e->cb->ctx, uid, m->flags,
			m->keywords ? m->keywords : "", err);
		if (st)
			return st;
	}
	if (!e->pending_msgs++)
		clock_gettime(CLOCK_MONOTONIC, &e->pending_since);
	e->pending_bytes += bytes;
	return commit_due(e) ? commit(e, err) : ISNAP_OK;
}

enum isnap_status fetch_tick(struct fetch *e, struct isnap_error *err)
{
	if (e->state != MSG_NONE || !commit_due(e))
		return ISNAP_OK;
	return commit(e, err);
}

/* Whether a body for `uid` is welcome: asked for, and not seen yet. */
static bool wanted(struct fetch *e, uint32_t uid)
{
	return asked_in(e, uid) && !uidset_contains(&e->received, uid);
}

enum isnap_status fetch_literal_begin(struct fetch *e,
				      const struct imap_response *partial,
				      uint64_t size, bool *stream,
				      struct isnap_error *err)
{
	const struct imap_arg *items;
	enum isnap_status st;

	*stream = false;
	if (partial->kind != IMAP_RESP_UNTAGGED || !partial->name ||
	    strcmp(partial->name, "FETCH") || partial->nargs != 1 ||
	    partial->args[0].type != IMAP_ARG_LIST)
		return ISNAP_OK;
	items = &partial->args[0];
	if (items->count == 0 ||
	    !imap_arg_is_atom(&items->list[items->count - 1], "BODY[]"))
		return ISNAP_OK;

	*stream = true;
	if (e->state != MSG_NONE) {
		/* A second body in the same FETCH response: neither can be
		 * trusted to be the message. */
		if (e->state == MSG_STORING)
			e->store->ops->abort_message(e->store);
		e->state = MSG_DISCARDING;
		e->skipping = false;
		snprintf(e->why, sizeof e->why,
			 "the server sent two bodies for one message");
		return ISNAP_OK;
	}
	/* Between two messages: the moment to commit by time. */
	if (commit_due(e) && (st = commit(e, err)))
		return st;
	parse_items(items->list, items->count, &e->begin_meta);
	e->size = size;
	e->written = 0;
	e->uid = e->begin_meta.has_uid ? e->begin_meta.uid : 0;
	e->state = MSG_DISCARDING;
	e->skipping = false;
	if (!e->uid) {
		snprintf(e->why, sizeof e->why,
			 "the server sent the body before the UID");
		return ISNAP_OK;
	}
	if (!wanted(e, e->uid)) {
		e->why[0] = '\0';
		return ISNAP_OK;
	}
	if (uidset_contains(&e->skip, e->uid)) {
		e->skipping = true;
		return ISNAP_OK;
	}
	e->begin_meta.m.size = size;
	st = e->store->ops->begin_message(e->store, &e->begin_meta.m, err);
	if (st == ISNAP_EMSG) {
		snprintf(e->why, sizeof e->why, "%s", err->msg);
		return ISNAP_OK;
	}
	if (st)
		return st;
	e->state = MSG_STORING;
	return ISNAP_OK;
}

enum isnap_status fetch_literal_data(struct fetch *e, const char *data,
				     size_t len, struct isnap_error *err)
{
	enum isnap_status st;

	e->written += len;
	if (e->state != MSG_STORING)
		return ISNAP_OK;
	st = e->store->ops->write(e->store, data, len, err);
	if (st == ISNAP_EMSG) {
		e->store->ops->abort_message(e->store);
		e->state = MSG_DISCARDING;
		snprintf(e->why, sizeof e->why, "%s", err->msg);
		return ISNAP_OK;
	}
	if (st) {
		/* Nothing more goes into this message, whatever the caller
		 * does with the rest of the literal. */
		e->store->ops->abort_message(e->store);
		e->state = MSG_DISCARDING;
		e->why[0] = '\0';
	}
	return st;
}

/* The FETCH response that carried a streamed body is complete. */
static enum isnap_status finish_streamed(struct fetch *e,
					 const struct imap_arg *items,
					 struct isnap_error *err)
{
	struct item_meta *im = &e->end_meta;
	enum isnap_status st;
	enum msg_state state = e->state;

	e->state = MSG_NONE;
	parse_items(items->list, items->count, im);
	im->m.size = e->size;
	if (!e->uid && im->has_uid && wanted(e, im->uid)) {
		if (uidset_add(&e->received, im->uid))
			return oom(err);
		return fail_message(e, im->uid, e->why, err);
	}
	if (!e->uid) {
		unexpected_body(e);
		return ISNAP_OK;
	}
	if (e->skipping) {
		if (uidset_add(&e->received, e->uid))
			return oom(err);
		return account(e, e->uid, err);
	}
	if (state == MSG_DISCARDING && !e->why[0]) {
		unexpected_body(e); /* not asked for, or a repeat */
		return ISNAP_OK;
	}
	if (uidset_add(&e->received, e->uid))
		return oom(err);
	if (state == MSG_DISCARDING)
		return fail_message(e, e->uid, e->why, err);
	if (im->has_uid && im->uid != e->uid) {
		e->store->ops->abort_message(e->store);
		return fail_message(e, e->uid,
				    "the server gave two different UIDs for "
				    "one message",
				    err);
	}
	im->m.uid = e->uid;
	st = e->store->ops->end_message(e->store, &im->m, err);
	if (st == ISNAP_EMSG)
		return fail_message(e, e->uid, err->msg, err);
	if (st)
		return st;
	return message_ended(e, e->uid, e->size, &im->m, err);
}

/* A FETCH response whose body (if any) came as a quoted string or NIL. */
static enum isnap_status finish_inline(struct fetch *e,
				       const struct imap_arg *items,
				       struct isnap_error *err)
{
	struct item_meta *im = &e->end_meta;
	struct store *s = e->store;
	enum isnap_status st;

	parse_items(items->list, items->count, im);
	if (!im->body)
		return ISNAP_OK; /* a flag update, nothing to save */
	if (!im->has_uid || !wanted(e, im->uid)) {
		unexpected_body(e);
		return ISNAP_OK;
	}
	if (uidset_add(&e->received, im->uid))
		return oom(err);
	if (uidset_contains(&e->skip, im->uid))
		return account(e, im->uid, err);
	if (im->body->type != IMAP_ARG_STRING)
		return fail_message(e, im->uid,
				    "the server returned no body (NIL)", err);
	if (commit_due(e) && (st = commit(e, err)))
		return st;
	im->m.size = im->body->len;
	st = s->ops->begin_message(s, &im->m, err);
	if (!st)
		st = s->ops->write(s, im->body->str, im->body->len, err);
	if (!st)
		st = s->ops->end_message(s, &im->m, err);
	else
		s->ops->abort_message(s);
	if (st == ISNAP_EMSG)
		return fail_message(e, im->uid, err->msg, err);
	if (st)
		return st;
	return message_ended(e, im->uid, im->body->len, &im->m, err);
}

static enum isnap_status send_more(struct fetch *e, struct isnap_error *err)
{
	char cmd[8192];

	while (!e->all_sent && e->nq < e->o.depth) {
		struct inflight *f = &e->q[e->nq];
		long n = uidset_next_batch(&e->uids, &e->cursor, e->o.batch,
					   &f->asked);
		char *set;
		enum isnap_status st;

		if (n < 0)
			return oom(err);
		if (n == 0) {
			e->all_sent = true;
			break;
		}
		if (uidset_format(&f->asked, &set))
			return oom(err);
		snprintf(cmd, sizeof cmd, "UID FETCH %s %s", set, e->items);
		free(set);
		f->id = e->next_id++;
		f->disturbed = false;
		st = imap_pipeline_send(e->pipe, e->owner, FETCH_COOKIE | f->id,
					cmd, err);
		if (st)
			return st;
		e->nq++;
	}
	return ISNAP_OK;
}

/* The server throttled command q[i]: wait as it asks (bounded), then ask
 * again for what it did not send.  *asked_again false: nothing was left
 * to ask for. */
static enum isnap_status throttled(struct fetch *e, unsigned i,
				   const struct imap_throttle *t,
				   const struct imap_response *r,
				   bool *asked_again, struct isnap_error *err)
{
	struct inflight *f = &e->q[i];
	long max = e->o.max_wait_ms > 0 ? e->o.max_wait_ms
					 : FETCH_MAX_WAIT_MS_DEFAULT;
	unsigned limit = e->o.throttle_retries ? e->o.throttle_retries
					       : FETCH_THROTTLE_RETRIES_DEFAULT;
	struct uidset again = UIDSET_INIT;
	enum isnap_status st;
	char *set, cmd[8192];

	long wait = t->told || t->wait_ms <= max ? t->wait_ms : max;

	/* A wait the server names and that is longer than allowed stops
	 * the run; a wait of our own choosing is only shortened. */
	if (wait > max)
		return isnap_fail(err, ISNAP_ESTOPPED,
				  "%s and asks to wait %ld s, more than the "
				  "%ld s allowed (--max-wait): %s",
				  t->why, t->wait_ms / 1000, max / 1000,
				  r->text ? r->text : "");
	if (e->throttles >= limit)
		return isnap_fail(err, ISNAP_ESTOPPED,
				  "%s, still after %u waits: %s", t->why,
				  e->throttles, r->text ? r->text : "");
	for (size_t k = 0; k < f->asked.n; k++)
		for (uint32_t u = f->asked.r[k].first;; u++) {
			if (!uidset_contains(&e->received, u) &&
			    uidset_add(&again, u)) {
				uidset_free(&again);
				return oom(err);
			}
			if (u == f->asked.r[k].last)
				break;
		}
	if (uidset_empty(&again))
		return ISNAP_OK;
	e->throttles++;
	if (e->cb->may_send_again && !e->cb->may_send_again(e->cb->ctx)) {
		/* Not here, not now: left for a later attempt. */
		st = uidset_add_set(&e->deferred, &again) ? oom(err)
							   : ISNAP_OK;
		uidset_free(&again);
		if (wait > e->deferred_ms)
			e->deferred_ms = wait;
		if (!st && e->cb->throttled)
			e->cb->throttled(e->cb->ctx, wait, t->why,
					 r->text ? r->text : "");
		return st;
	}
	if (e->cb->throttled)
		e->cb->throttled(e->cb->ctx, wait, t->why,
				 r->text ? r->text : "");
	/* What came before is not to wait with us: a kill during a wait of
	 * minutes would lose it. */
	if (e->state == MSG_NONE && (st = commit(e, err))) {
		uidset_free(&again);
		return st;
	}
	if ((st = isnap_interrupt_sleep(wait, err))) {
		uidset_free(&again);
		return st;
	}
	if (uidset_format(&again, &set)) {
		uidset_free(&again);
		return oom(err);
	}
	snprintf(cmd, sizeof cmd, "UID FETCH %s %s", set, e->items);
	free(set);
	uidset_free(&f->asked);
	f->asked = again;
	f->id = e->next_id++;
	f->disturbed = false;
	st = imap_pipeline_send(e->pipe, e->owner, FETCH_COOKIE | f->id, cmd,
				err);
	*asked_again = !st;
	return st;
}

enum isnap_status fetch_tagged(struct fetch *e, uintptr_t cookie,
			       const struct imap_response *r,
			       struct isnap_error *err)
{
	uintptr_t id = cookie & ~FETCH_COOKIE;
	unsigned i;
	struct inflight done;
	enum isnap_status st = ISNAP_OK;
	bool throttle_only = false;

	for (i = 0; i < e->nq; i++)
		if (e->q[i].id == id)
			break;
	if (i == e->nq)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server answered command %s, which was "
				  "never sent",
				  r->tag);
	if (strcmp(r->name, "OK")) {
		struct imap_throttle t = imap_throttle_response(r);
		if (t.kind == IMAP_THROTTLE_STOP)
			return isnap_fail(err, ISNAP_ESTOPPED, "%s: %s", t.why,
					  r->text ? r->text : "");
		if (t.kind == IMAP_THROTTLE_RETRY) {
			bool asked_again = false;
			st = throttled(e, i, &t, r, &asked_again, err);
			if (st || asked_again)
				return st;
			/* Everything had arrived before the answer. */
			throttle_only = true;
		}
	} else {
		e->throttles = 0;
	}
	if (!strcmp(r->name, "BAD") && !throttle_only)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server rejected UID FETCH: %s",
				  r->text ? r->text : "");
	done = e->q[i];
	memmove(&e->q[i], &e->q[i + 1], (e->nq - i - 1) * sizeof e->q[0]);
	e->nq--;
	/* The vacated slot still points at memory that now belongs to
	 * `done` or to the entry moved down; send_more fills it next. */
	e->q[e->nq] = (struct inflight){ .asked = UIDSET_INIT };

	for (size_t k = 0; k < done.asked.n && !st; k++) {
		for (uint32_t u = done.asked.r[k].first;; u++) {
			if (!uidset_contains(&e->received, u) &&
			    uidset_contains(&e->skip, u)) {
				st = account(e, u, err);
			} else if (uidset_contains(&e->deferred, u)) {
				/* To be asked again later. */
			} else if (!uidset_contains(&e->received, u)) {
				if (!strcmp(r->name, "OK") && done.disturbed) {
					st = fail_message(
						e, u,
						"the server did not send it, "
						"and sent malformed or "
						"unrequested data instead",
						err);
				} else if (!strcmp(r->name, "OK")) {
					e->stats->vanished++;
					st = account(e, u, err);
				} else {
					char why[300];
					snprintf(why, sizeof why,
						 "the server refused it: %s",
						 r->text ? r->text : "");
					st = fail_message(e, u, why, err);
				}
			}
			if (st || u == done.asked.r[k].last)
				break;
		}
	}
	/* The UIDs of this command can no longer arrive legitimately:
	 * wanted() now rejects them because no command in flight asks for
	 * them, so `received` need not remember them. */
	for (size_t k = 0; k < done.asked.n && !st; k++)
		if (uidset_remove_range(&e->received, done.asked.r[k].first,
					done.asked.r[k].last))
			st = oom(err);
	uidset_free(&done.asked);
	if (st)
		return st;
	return send_more(e, err);
}

enum isnap_status fetch_untagged(struct fetch *e, const struct imap_response *r,
				 struct isnap_error *err)
{
	if (strcmp(r->name, "FETCH")) {
		/* EXISTS, EXPUNGE, FLAGS, OK [...]: nothing to do for a
		 * read-only fetch by UID. */
		return ISNAP_OK;
	}
	if (r->nargs != 1 || r->args[0].type != IMAP_ARG_LIST) {
		if (e->state == MSG_STORING)
			e->store->ops->abort_message(e->store);
		e->state = MSG_NONE;
		return isnap_fail(err, ISNAP_EPROTO,
				  "malformed FETCH response from the server");
	}
	if (e->state != MSG_NONE)
		return finish_streamed(e, &r->args[0], err);
	return finish_inline(e, &r->args[0], err);
}

long fetch_deferred_ms(const struct fetch *e)
{
	return uidset_empty(&e->deferred) ? -1 : e->deferred_ms;
}

bool fetch_all_sent(const struct fetch *e)
{
	return e->all_sent;
}

bool fetch_finished(const struct fetch *e)
{
	return e->all_sent && e->nq == 0;
}

int fetch_skip(struct fetch *e, const struct uidset *held)
{
	return uidset_add_set(&e->skip, held);
}

enum isnap_status fetch_start(struct imap_pipeline *pipe,
			      struct imap_owner *owner, struct store *s,
			      const struct uidset *uids,
			      const struct fetch_opts *opts,
			      const struct fetch_callbacks *cb,
			      struct fetch_stats *stats, struct fetch **out,
			      struct isnap_error *err)
{
	struct fetch *e = calloc(1, sizeof *e);
	enum isnap_status st;

	*out = NULL;
	if (!e)
		return oom(err);
	e->pipe = pipe;
	e->owner = owner;
	e->store = s;
	e->cb = cb;
	e->stats = stats;
	e->items = imap_client_has_cap(pipe->client, "X-GM-EXT-1")
			   ? fetch_items_gmail
		   : imap_client_has_cap(pipe->client, "CONDSTORE")
			   ? fetch_items_modseq
			   : fetch_items;
	e->o.batch = opts && opts->batch ? opts->batch : 500;
	e->o.depth = opts && opts->depth ? opts->depth : 3;
	if (e->o.depth > MAX_DEPTH)
		e->o.depth = MAX_DEPTH;
	e->o.commit_messages =
		opts && opts->commit_messages ? opts->commit_messages : 1000;
	e->o.commit_bytes =
		opts && opts->commit_bytes ? opts->commit_bytes : 64u << 20;
	e->o.commit_ms = opts && opts->commit_ms ? opts->commit_ms
						 : FETCH_COMMIT_MS_DEFAULT;
	e->o.max_wait_ms = opts ? opts->max_wait_ms : 0;
	e->o.throttle_retries = opts ? opts->throttle_retries : 0;
	if (uidset_add_set(&e->uids, uids)) {
		free(e);
		return oom(err);
	}
	*out = e;
	st = send_more(e, err);
	if (!st && e->all_sent && e->nq == 0)
		e->all_sent = true; /* nothing to fetch at all */
	return st;
}

enum isnap_status fetch_end(struct fetch *e, enum isnap_status st,
			    struct uidset *left, struct isnap_error *err)
{
	enum isnap_status cst;

	if (e->state == MSG_STORING)
		e->store->ops->abort_message(e->store);
	e->state = MSG_NONE;
	if (!st) {
		st = commit(e, err);
	} else {
		/* Keep what is complete even though the fetch failed. */
		struct isnap_error ignored = { 0 };
		cst = commit(e, &ignored);
		(void)cst;
	}
	/* What the store could not commit is lost with the run. */
	e->stats->uncommitted += e->pending_msgs;
	e->stats->uncommitted_bytes += e->pending_bytes;
	if (left) {
		for (size_t i = 0; i < e->uids.n; i++)
			if (uidset_add_range(left, e->uids.r[i].first,
					     e->uids.r[i].last) && !st)
				st = oom(err);
		for (size_t i = 0; i < e->accounted.n; i++)
			if (uidset_remove_range(left, e->accounted.r[i].first,
						e->accounted.r[i].last) &&
			    !st)
				st = oom(err);
	}
	for (unsigned i = 0; i < e->nq; i++)
		uidset_free(&e->q[i].asked);
	uidset_free(&e->uids);
	uidset_free(&e->deferred);
	uidset_free(&e->received);
	uidset_free(&e->pending);
	uidset_free(&e->accounted);
	uidset_free(&e->skip);
	gmail_labels_free(&e->begin_meta.labels);
	gmail_labels_free(&e->end_meta.labels);
	free(e);
	return st;
}

/* --- on its own: one owner, the fetch, nothing else in flight ---------- */

struct alone {
	struct imap_owner owner;
	struct fetch *f;
};

static enum isnap_status alone_untagged(struct imap_owner *o,
					const struct imap_response *r,
					struct isnap_error *err)
{
	return fetch_untagged(((struct alone *)o)->f, r, err);
}

static enum isnap_status alone_literal_begin(struct imap_owner *o,
					     const struct imap_response *p,
					     uint64_t size, bool *stream,
					     struct isnap_error *err)
{
	return fetch_literal_begin(((struct alone *)o)->f, p, size, stream,
				   err);
}

static enum isnap_status alone_literal_data(struct imap_owner *o,
					    const char *data, size_t len,
					    struct isnap_error *err)
{
	return fetch_literal_data(((struct alone *)o)->f, data, len, err);
}

static enum isnap_status alone_tagged(struct imap_owner *o, uintptr_t cookie,
				      const struct imap_response *r,
				      struct isnap_error *err)
{
	return fetch_tagged(((struct alone *)o)->f, cookie, r, err);
}

static const struct imap_owner_ops alone_ops = {
	.untagged = alone_untagged,
	.literal_begin = alone_literal_begin,
	.literal_data = alone_literal_data,
	.tagged = alone_tagged,
};

enum isnap_status fetch_messages(struct imap_client *c, struct store *s,
				 const struct uidset *uids,
				 const struct fetch_opts *opts,
				 const struct fetch_callbacks *cb,
				 struct fetch_stats *stats,
				 struct isnap_error *err)
{
	struct imap_pipeline pipe;
	struct alone a = { .owner = { .ops = &alone_ops } };
	enum isnap_status st;

	imap_pipeline_init(&pipe, c);
	st = fetch_start(&pipe, &a.owner, s, uids, opts, cb, stats, &a.f,
			 err);
	/* Until every command is answered, also after a failure in one of
	 * the callbacks (the rest of its answers is read and dropped), so
	 * that the connection is left clean for the next command. */
	while (!st && a.owner.inflight)
		st = imap_pipeline_pump(&pipe, err);
	if (!st && a.owner.failed) {
		st = a.owner.failed;
		*err = a.owner.err;
	}
	if (a.f)
		st = fetch_end(a.f, st, NULL, err);
	imap_pipeline_release(&pipe);
	return st;
}
