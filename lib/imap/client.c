/*
 * client.c — see client.h.  RFC 3501 (commands and responses), RFC 7888
 * (LITERAL+ / LITERAL- for names that need a literal).
 */
#include "imap/client.h"
#include "imap/throttle.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Large enough that a bulk fetch moves data in big gulps; bodies are
 * streamed straight out of it, so it is the only per-connection buffer that
 * holds message bytes. */
#define CLIENT_READ_BUFFER (256 * 1024)
/* A SEARCH answer (without ESEARCH, a dated listing has to be one) comes
 * in pieces of this many UIDs, whatever the folder's size. */
#define CLIENT_SEARCH_CHUNK 4096
#define CLIENT_MAX_CAPS 4096

struct imap_client {
	struct imap_session *session;
	struct imap_parser *parser;
	char *rbuf;
	size_t rpos, rlen;
	uint64_t literal_left; /* bytes of a streamed literal still to come */
	bool streaming;
	unsigned next_tag;
	bool logging_out;
	char caps[CLIENT_MAX_CAPS]; /* " CAP1 CAP2 ", upper-cased */
	long throttle_ms;        /* imap_client_throttle_asked */
	int64_t throttle_until;
};

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remember a wait the server names, whoever handles the answer. */
static void note_throttle(struct imap_client *c, const struct imap_response *r)
{
	struct imap_throttle t;

	if (r->kind == IMAP_RESP_CONTINUATION || !r->name ||
	    !strcmp(r->name, "OK") ||
	    (strcmp(r->name, "NO") && strcmp(r->name, "BAD") &&
	     strcmp(r->name, "BYE")))
		return;
	t = imap_throttle_response(r);
	if (t.kind == IMAP_THROTTLE_RETRY && t.told) {
		c->throttle_ms = t.wait_ms;
		c->throttle_until = monotonic_ms() + t.wait_ms;
	}
}

long imap_client_throttle_asked(const struct imap_client *c, int64_t *until)
{
	*until = c->throttle_until;
	return c->throttle_ms;
}

static void set_caps(struct imap_client *c, const char *text, size_t len)
{
	size_t n = 0;

	c->caps[n++] = ' ';
	for (size_t i = 0; i < len && n + 2 < sizeof c->caps; i++)
		c->caps[n++] = (char)toupper((unsigned char)text[i]);
	c->caps[n++] = ' ';
	c->caps[n] = '\0';
}

static void caps_from_args(struct imap_client *c, const struct imap_response *r)
{
	char buf[CLIENT_MAX_CAPS];
	size_t n = 0;

	for (size_t i = 0; i < r->nargs; i++) {
		const struct imap_arg *a = &r->args[i];
		if (a->type != IMAP_ARG_ATOM || n + a->len + 2 >= sizeof buf)
			continue;
		memcpy(buf + n, a->str, a->len);
		n += a->len;
		buf[n++] = ' ';
	}
	set_caps(c, buf, n);
}

/* Capabilities arrive as "* CAPABILITY ..." or as a [CAPABILITY ...] code;
 * either replaces what we knew. */
static void note_capabilities(struct imap_client *c,
			      const struct imap_response *r)
{
	if (r->kind == IMAP_RESP_CONTINUATION)
		return;
	if (r->name && !strcmp(r->name, "CAPABILITY"))
		caps_from_args(c, r);
	else if (r->code && !strcmp(r->code, "CAPABILITY") && r->code_args)
		set_caps(c, r->code_args, strlen(r->code_args));
}

const char *imap_client_capabilities(const struct imap_client *c)
{
	/* Stored with a space at each end for has_cap's sake. */
	return c->caps[0] ? c->caps + 1 : "";
}

const char *imap_client_greeting(const struct imap_client *c)
{
	return imap_session_greeting(c->session);
}

bool imap_client_has_cap(const struct imap_client *c, const char *cap)
{
	char want[128];
	size_t n = strlen(cap);

	if (n + 3 > sizeof want)
		return false;
	want[0] = ' ';
	for (size_t i = 0; i < n; i++)
		want[i + 1] = (char)toupper((unsigned char)cap[i]);
	want[n + 1] = ' ';
	want[n + 2] = '\0';
	return strstr(c->caps, want) != NULL;
}

enum isnap_status imap_client_send(struct imap_client *c, const char *command,
				   char tag[16], struct isnap_error *err)
{
	size_t clen = strlen(command);
	char *line;
	int n;
	enum isnap_status st;

	snprintf(tag, 16, "i%u", ++c->next_tag);
	line = malloc(clen + 20);
	if (!line)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	n = snprintf(line, clen + 20, "%s %s\r\n", tag, command);
	st = imap_session_send(c->session, line, (size_t)n, err);
	free(line);
	return st;
}

enum isnap_status imap_client_write(struct imap_client *c, const void *data,
				    size_t len, struct isnap_error *err)
{
	return imap_session_send(c->session, data, len, err);
}

static enum isnap_status on_literal(struct imap_client *c,
				    const struct imap_handler *h,
				    struct isnap_error *err)
{
	uint64_t size = imap_parser_literal_size(c->parser);
	bool stream = false;
	enum isnap_status st;

	if (h->literal_begin) {
		st = h->literal_begin(h->ctx, imap_parser_partial(c->parser),
				      size, &stream, err);
		if (st)
			return st;
	}
	if (!stream) {
		imap_parser_literal_inline(c->parser);
		return ISNAP_OK;
	}
	c->literal_left = size;
	c->streaming = true;
	return ISNAP_OK;
}

/* Hand the caller as much of a streamed literal as the buffer holds. */
static enum isnap_status stream_literal(struct imap_client *c,
					const struct imap_handler *h,
					struct isnap_error *err)
{
	size_t avail = c->rlen - c->rpos;
	size_t n = c->literal_left < avail ? (size_t)c->literal_left : avail;
	enum isnap_status st;

	if (n > 0) {
		st = h->literal_data(h->ctx, c->rbuf + c->rpos, n, err);
		if (st)
			return st;
		c->rpos += n;
		c->literal_left -= n;
	}
	if (c->literal_left == 0) {
		c->streaming = false;
		imap_parser_literal_done(c->parser);
		return h->literal_end ? h->literal_end(h->ctx, err) : ISNAP_OK;
	}
	return ISNAP_OK;
}

enum isnap_status imap_client_pump(struct imap_client *c,
				   const struct imap_handler *h, bool *done,
				   struct isnap_error *err)
{
	enum isnap_status st;

	while (!*done) {
		if (c->rpos == c->rlen) {
			size_t got;
			c->rpos = c->rlen = 0;
			st = imap_session_recv(c->session, c->rbuf,
					       CLIENT_READ_BUFFER, &got, err);
			if (st)
				return st;
			c->rlen = got;
		}
		if (c->streaming) {
			st = stream_literal(c, h, err);
			if (st)
				return st;
			continue;
		}

		size_t used = 0;
		enum imap_parse_status ps = imap_parser_parse(
			c->parser, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
		c->rpos += used;
		switch (ps) {
		case IMAP_PARSE_MORE:
			break;
		case IMAP_PARSE_LITERAL:
			st = on_literal(c, h, err);
			if (st)
				return st;
			if (c->streaming && c->literal_left == 0) {
				st = stream_literal(c, h, err);
				if (st)
					return st;
			}
			break;
		case IMAP_PARSE_RESPONSE: {
			const struct imap_response *r =
				imap_parser_response(c->parser);
			note_capabilities(c, r);
			note_throttle(c, r);
			if (r->kind == IMAP_RESP_UNTAGGED && r->name &&
			    !strcmp(r->name, "BYE") && !c->logging_out) {
				struct imap_throttle t = imap_throttle_response(r);
				/* A quota for today (Gmail's download cap):
				 * reconnecting would only be refused. */
				if (t.kind == IMAP_THROTTLE_STOP)
					return isnap_fail(err, ISNAP_ESTOPPED,
							  "%s; the server "
							  "closed the session: "
							  "%s", t.why,
							  r->text ? r->text
								  : "");
				return isnap_fail(err, ISNAP_ECONN,
						  "the server closed the "
						  "session: %s",
						  r->text ? r->text : "");
			}
			if (h->response) {
				st = h->response(h->ctx, r, err);
				if (st)
					return st;
			}
			break;
		}
		case IMAP_PARSE_ERROR:
			return isnap_fail(err, ISNAP_EPROTO,
					  "malformed response from the server: "
					  "%s",
					  imap_parser_error(c->parser));
		}
	}
	return ISNAP_OK;
}

struct simple_ctx {
	const char *tag;
	enum isnap_status (*untagged)(void *, const struct imap_response *,
				      struct isnap_error *);
	void *ctx;
	bool done;
	bool bad_is_folder;
	enum isnap_status result;
};

static enum isnap_status simple_response(void *vctx,
					 const struct imap_response *r,
					 struct isnap_error *err)
{
	struct simple_ctx *s = vctx;

	if (r->kind == IMAP_RESP_TAGGED) {
		if (strcmp(r->tag, s->tag))
			return isnap_fail(err, ISNAP_EPROTO,
					  "the server answered command %s, "
					  "which was never sent",
					  r->tag);
		s->done = true;
		if (!strcmp(r->name, "OK"))
			s->result = ISNAP_OK;
		else
			s->result = isnap_fail(
				err,
				!strcmp(r->name, "NO") || s->bad_is_folder
					? ISNAP_EFOLDER
					: ISNAP_EPROTO,
				"the server said %s%s%s%s %s", r->name,
				r->code ? " [" : "", r->code ? r->code : "",
				r->code ? "]" : "", r->text ? r->text : "");
		return ISNAP_OK;
	}
	if (r->kind == IMAP_RESP_CONTINUATION)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server asked for data nobody offered");
	return s->untagged ? s->untagged(s->ctx, r, err) : ISNAP_OK;
}

static enum isnap_status simple(
	struct imap_client *c, const char *command, bool bad_is_folder,
	enum isnap_status (*untagged)(void *ctx, const struct imap_response *r,
				      struct isnap_error *err),
	void *ctx, struct isnap_error *err)
{
	char tag[16];
	struct simple_ctx s = { .tag = tag, .untagged = untagged, .ctx = ctx,
				.bad_is_folder = bad_is_folder };
	struct imap_handler h = { .ctx = &s, .response = simple_response };
	enum isnap_status st;

	st = imap_client_send(c, command, tag, err);
	if (st)
		return st;
	st = imap_client_pump(c, &h, &s.done, err);
	return st ? st : s.result;
}

enum isnap_status imap_client_simple(
	struct imap_client *c, const char *command,
	enum isnap_status (*untagged)(void *ctx, const struct imap_response *r,
				      struct isnap_error *err),
	void *ctx, struct isnap_error *err)
{
	return simple(c, command, false, untagged, ctx, err);
}

enum isnap_status imap_client_simple_folder(
	struct imap_client *c, const char *command,
	enum isnap_status (*untagged)(void *ctx, const struct imap_response *r,
				      struct isnap_error *err),
	void *ctx, struct isnap_error *err)
{
	return simple(c, command, true, untagged, ctx, err);
}

enum isnap_status imap_client_open(const struct imap_session_opts *opts,
				   struct imap_client **out,
				   struct isnap_error *err)
{
	struct imap_client *c = calloc(1, sizeof *c);
	const struct imap_parser_limits lim = {
		.search_chunk = CLIENT_SEARCH_CHUNK,
	};
	enum isnap_status st;

	*out = NULL;
	if (!c || !(c->rbuf = malloc(CLIENT_READ_BUFFER)) ||
	    !(c->parser = imap_parser_new(&lim))) {
		if (c)
			free(c->rbuf);
		free(c);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	st = imap_session_open(opts, &c->session, err);
	if (!st)
		st = imap_client_simple(c, "CAPABILITY", NULL, NULL, err);
	if (st) {
		if (st == ISNAP_EFOLDER)
			st = err ? (err->status = ISNAP_EPROTO) : ISNAP_EPROTO;
		imap_client_close(c, false);
		return st;
	}
	*out = c;
	return ISNAP_OK;
}

void imap_client_close(struct imap_client *c, bool logout)
{
	if (!c)
		return;
	if (logout && c->session && !c->streaming) {
		c->logging_out = true;
		imap_client_simple(c, "LOGOUT", NULL, NULL, NULL);
	}
	imap_session_close(c->session);
	imap_parser_free(c->parser);
	free(c->rbuf);
	free(c);
}

size_t imap_client_quote(const struct imap_client *c, const char *name,
			 char *buf, size_t size)
{
	size_t len = strlen(name), n = 0;
	bool needs_literal = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch < 0x20 || ch >= 0x7f)
			needs_literal = true;
	}
	if (needs_literal) {
		if (!imap_client_has_cap(c, "LITERAL+") &&
		    !imap_client_has_cap(c, "LITERAL-"))
			return 0;
		int k = snprintf(buf, size, "{%zu+}\r\n", len);
		if (k < 0 || (size_t)k + len + 1 > size)
			return 0;
		memcpy(buf + k, name, len);
		buf[k + len] = '\0';
		return (size_t)k + len;
	}
	if (size < 3)
		return 0;
	buf[n++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (n + 4 > size)
			return 0;
		if (name[i] == '"' || name[i] == '\\')
			buf[n++] = '\\';
		buf[n++] = name[i];
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return n;
}
