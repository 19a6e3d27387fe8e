/*
 * pipeline.c — see pipeline.h.  RFC 3501 §5.5.
 */
#include "imap/pipeline.h"

#include <stdlib.h>
#include <string.h>

struct imap_pending {
	char tag[16];
	struct imap_owner *owner;
	uintptr_t cookie;
	size_t bytes;
	bool done;
};

void imap_pipeline_init(struct imap_pipeline *p, struct imap_client *c)
{
	memset(p, 0, sizeof *p);
	p->client = c;
}

void imap_pipeline_release(struct imap_pipeline *p)
{
	imap_pipeline_abandon(p);
	free(p->q);
	memset(p, 0, sizeof *p);
}

void imap_pipeline_abandon(struct imap_pipeline *p)
{
	for (size_t i = p->head; i < p->n; i++)
		if (!p->q[i].done && p->q[i].owner->inflight)
			p->q[i].owner->inflight--;
	p->head = p->n = 0;
	p->bytes = 0;
	p->streaming_void = false;
}

void imap_owner_fail(struct imap_owner *o, enum isnap_status st,
		     const struct isnap_error *err)
{
	if (o->failed || !st)
		return;
	o->failed = st;
	if (err && err != &o->err)
		o->err = *err;
	o->err.status = st;
}

size_t imap_pipeline_inflight(const struct imap_pipeline *p)
{
	size_t k = 0;

	for (size_t i = p->head; i < p->n; i++)
		k += !p->q[i].done;
	return k;
}

const char *imap_pipeline_last_tag(const struct imap_pipeline *p)
{
	return p->n ? p->q[p->n - 1].tag : "";
}

size_t imap_pipeline_bytes(const struct imap_pipeline *p)
{
	return p->bytes;
}

enum isnap_status imap_pipeline_send(struct imap_pipeline *p,
				     struct imap_owner *o, uintptr_t cookie,
				     const char *command,
				     struct isnap_error *err)
{
	struct imap_pending *e;
	enum isnap_status st;

	if (p->head == p->n)
		p->head = p->n = 0;
	if (p->n == p->alloc) {
		/* Compact before growing: answered entries before head. */
		if (p->head) {
			memmove(p->q, p->q + p->head,
				(p->n - p->head) * sizeof *p->q);
			p->n -= p->head;
			p->head = 0;
		}
		if (p->n == p->alloc) {
			size_t na = p->alloc ? 2 * p->alloc : 16;
			struct imap_pending *v = realloc(p->q, na * sizeof *v);
			if (!v)
				return isnap_fail(err, ISNAP_ENOMEM,
						  "out of memory");
			p->q = v;
			p->alloc = na;
		}
	}
	e = &p->q[p->n];
	memset(e, 0, sizeof *e);
	st = imap_client_send(p->client, command, e->tag, err);
	if (st) {
		p->send_failed = st == ISNAP_ECONN;
		return st;
	}
	e->owner = o;
	e->cookie = cookie;
	e->bytes = strlen(command) + strlen(e->tag) + 3;
	p->bytes += e->bytes;
	p->n++;
	o->inflight++;
	return ISNAP_OK;
}

/* The owner of the oldest command in flight, or NULL. */
static struct imap_owner *oldest(struct imap_pipeline *p)
{
	while (p->head < p->n && p->q[p->head].done)
		p->head++;
	return p->head < p->n ? p->q[p->head].owner : NULL;
}

/* An owner's callback said `st`: the connection goes on unless the
 * status says it cannot. */
static enum isnap_status owner_result(struct imap_owner *o,
				      enum isnap_status st,
				      struct isnap_error *err)
{
	if (!st)
		return ISNAP_OK;
	imap_owner_fail(o, st, err);
	if (st == ISNAP_ECONN || st == ISNAP_EPROTO)
		return st;
	return ISNAP_OK;
}

static enum isnap_status on_response(void *ctx, const struct imap_response *r,
				     struct isnap_error *err)
{
	struct imap_pipeline *p = ctx;
	struct imap_owner *o;

	if (r->kind == IMAP_RESP_CONTINUATION) {
		o = oldest(p);
		if (o)
			imap_owner_fail(o, ISNAP_EPROTO, NULL);
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server asked for data nobody offered");
	}
	if (r->kind == IMAP_RESP_UNTAGGED) {
		o = oldest(p);
		if (!o || o->failed || !o->ops->untagged)
			return ISNAP_OK;
		return owner_result(o, o->ops->untagged(o, r, err), err);
	}
	for (size_t i = p->head; i < p->n; i++) {
		struct imap_pending *e = &p->q[i];
		if (e->done || strcmp(e->tag, r->tag))
			continue;
		e->done = true;
		p->bytes -= e->bytes;
		p->answered = true;
		o = e->owner;
		o->inflight--;
		if (o->failed || !o->ops->tagged)
			return ISNAP_OK;
		return owner_result(o, o->ops->tagged(o, e->cookie, r, err),
				    err);
	}
	o = oldest(p);
	if (o)
		imap_owner_fail(o, ISNAP_EPROTO, NULL);
	return isnap_fail(err, ISNAP_EPROTO,
			  "the server answered command %s, which was never "
			  "sent",
			  r->tag);
}

static enum isnap_status on_literal_begin(void *ctx,
					  const struct imap_response *partial,
					  uint64_t size, bool *stream,
					  struct isnap_error *err)
{
	struct imap_pipeline *p = ctx;
	struct imap_owner *o = oldest(p);

	*stream = false;
	p->streaming_void = false;
	if (o && !o->failed && o->ops->literal_begin) {
		enum isnap_status st =
			o->ops->literal_begin(o, partial, size, stream, err);
		if (!st)
			return ISNAP_OK;
		if ((st = owner_result(o, st, err)))
			return st;
		/* Failed in the middle: the bytes still have to go. */
		*stream = true;
		p->streaming_void = true;
		return ISNAP_OK;
	}
	if (!o || o->failed) {
		/* Nobody's, or a failed owner's: read it into the void
		 * rather than into memory. */
		*stream = true;
		p->streaming_void = true;
	}
	return ISNAP_OK;
}

static enum isnap_status on_literal_data(void *ctx, const char *data,
					 size_t len, struct isnap_error *err)
{
	struct imap_pipeline *p = ctx;
	struct imap_owner *o;

	if (p->streaming_void)
		return ISNAP_OK;
	o = oldest(p);
	if (!o || o->failed) {
		p->streaming_void = true;
		return ISNAP_OK;
	}
	return owner_result(o, o->ops->literal_data(o, data, len, err), err);
}

static enum isnap_status on_literal_end(void *ctx, struct isnap_error *err)
{
	struct imap_pipeline *p = ctx;
	struct imap_owner *o;

	if (p->streaming_void) {
		p->streaming_void = false;
		return ISNAP_OK;
	}
	o = oldest(p);
	if (!o || o->failed || !o->ops->literal_end)
		return ISNAP_OK;
	return owner_result(o, o->ops->literal_end(o, err), err);
}

enum isnap_status imap_pipeline_pump(struct imap_pipeline *p,
				     struct isnap_error *err)
{
	struct imap_handler h = {
		.ctx = p,
		.response = on_response,
		.literal_begin = on_literal_begin,
		.literal_data = on_literal_data,
		.literal_end = on_literal_end,
	};
	enum isnap_status st;

	if (!oldest(p))
		return ISNAP_OK;
	p->answered = false;
	st = imap_client_pump(p->client, &h, &p->answered, err);
	if (st == ISNAP_EPROTO) {
		/* The parser gave up on a response: it was the oldest
		 * command's. */
		struct imap_owner *o = oldest(p);
		if (o)
			imap_owner_fail(o, ISNAP_EPROTO, err);
	}
	return st;
}
