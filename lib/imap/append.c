/*
 * append.c — see append.h.  RFC 3501 §6.3.11, RFC 7888, RFC 4315.
 */
#include "imap/append.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_DEPTH 16
#define MAX_DEPTH 256
#define CHUNK (64 * 1024)
#define LITERAL_MINUS_MAX 4096
#define COMMAND_MAX 16384
#define FIRST_DATE (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define LAST_DATE 253402300799LL    /* 9999-12-31T23:59:59Z */
#define ZONE_MAX ((99 * 60 + 59) * 60LL)  /* -9959 to +9959, in seconds */

struct inflight {
	char tag[16];
	void *token;
};

struct appender {
	struct imap_client *c;
	unsigned depth;
	append_done_fn done;
	void *ctx;
	struct inflight q[MAX_DEPTH];
	unsigned nq;
	/* Waiting for "+" before the body of the command q[nq - 1]. */
	bool want_cont, got_cont, refused;
	bool stop; /* ends one imap_client_pump */
	char *chunk;
};

static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr",
					"May", "Jun", "Jul", "Aug",
					"Sep", "Oct", "Nov", "Dec" };

bool append_format_date(int64_t epoch, int tz_minutes, bool leap_second,
			char out[27])
{
	struct tm tm;
	time_t t;
	int tz = tz_minutes < 0 ? -tz_minutes : tz_minutes;

	if (tz > 99 * 60 + 59)
		return false;
	/* Years 1 to 9999, with room for the widest zone: beyond, the
	 * addition below could overflow (a manifest may hold any number). */
	if (epoch < FIRST_DATE - ZONE_MAX || epoch > LAST_DATE + ZONE_MAX)
		return false;
	t = (time_t)(epoch + (int64_t)tz_minutes * 60);
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1 ||
	    tm.tm_year + 1900 > 9999)
		return false;
	snprintf(out, 27, "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d",
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, leap_second && tm.tm_sec == 59 ? 60 : tm.tm_sec,
		 tz_minutes < 0 ? '-' : '+', tz / 60, tz % 60);
	return true;
}

bool append_flag_ok(const char *flag)
{
	static const char *const system[] = { "\\Seen", "\\Answered",
					      "\\Flagged", "\\Deleted",
					      "\\Draft" };

	if (!*flag)
		return false;
	if (flag[0] == '\\') {
		for (size_t i = 0; i < sizeof system / sizeof system[0]; i++)
			if (!strcasecmp(flag, system[i]))
				return true;
		return false; /* \Recent, \*, or one this server made up */
	}
	for (const char *p = flag; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){\"\\%*]", ch))
			return false;
	}
	return true;
}

bool append_flags_add(char *buf, size_t size, const char *flag)
{
	size_t n = strlen(buf), fl = strlen(flag);

	if (!append_flag_ok(flag))
		return false;
	for (const char *p = buf; *p;) {
		size_t w = strcspn(p, " ");
		if (w == fl && !strncasecmp(p, flag, fl))
			return true; /* there already */
		p += w;
		while (*p == ' ')
			p++;
	}
	if (n + (n ? 1 : 0) + fl + 1 > size)
		return false;
	if (n)
		buf[n++] = ' ';
	memcpy(buf + n, flag, fl + 1);
	return true;
}

size_t append_command(const struct append_msg *m, bool literal_plus,
		      char *buf, size_t size)
{
	size_t n = 0;
	int k;
	char date[27];

	if (size < 16)
		return 0;
	memcpy(buf, "APPEND \"", 8);
	n = 8;
	for (const char *p = m->mailbox; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch >= 0x7f)
			return 0;
		if (n + 3 >= size)
			return 0;
		if (ch == '"' || ch == '\\')
			buf[n++] = '\\';
		buf[n++] = (char)ch;
	}
	k = snprintf(buf + n, size - n, "\" (%s)", m->flags ? m->flags : "");
	if (k < 0 || (size_t)k >= size - n)
		return 0;
	n += (size_t)k;
	if (m->internaldate != INT64_MIN &&
	    append_format_date(m->internaldate, m->tz_minutes, m->leap_second,
			       date)) {
		k = snprintf(buf + n, size - n, " \"%s\"", date);
		if (k < 0 || (size_t)k >= size - n)
			return 0;
		n += (size_t)k;
	}
	k = snprintf(buf + n, size - n, " {%" PRIu64 "%s}", m->size,
		     literal_plus ? "+" : "");
	if (k < 0 || (size_t)k >= size - n)
		return 0;
	return n + (size_t)k;
}

static bool number(const char **p, uint32_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (*s < '1' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
		s++;
	}
	*p = s;
	*out = (uint32_t)v;
	return true;
}

bool append_parse_appenduid(const char *code_args, uint32_t *uidvalidity,
			    uint32_t *uid)
{
	const char *p = code_args;

	if (!p || !number(&p, uidvalidity) || *p++ != ' ' || !number(&p, uid))
		return false;
	return *p == '\0';
}

/* ---------------------------------------------------------------------- */

struct appender *appender_new(struct imap_client *c, unsigned depth,
			      append_done_fn done, void *ctx)
{
	struct appender *ap = calloc(1, sizeof *ap);

	if (!ap || !(ap->chunk = malloc(CHUNK))) {
		free(ap);
		return NULL;
	}
	ap->c = c;
	ap->depth = depth ? depth : DEFAULT_DEPTH;
	if (ap->depth > MAX_DEPTH)
		ap->depth = MAX_DEPTH;
	ap->done = done;
	ap->ctx = ctx;
	return ap;
}

void appender_free(struct appender *ap)
{
	if (!ap)
		return;
	free(ap->chunk);
	free(ap);
}

void *appender_take_waiting(struct appender *ap)
{
	if (!ap->nq)
		return NULL;
	return ap->q[--ap->nq].token;
}

bool appender_holds(const struct appender *ap, const void *token)
{
	for (unsigned i = 0; i < ap->nq; i++)
		if (ap->q[i].token == token)
			return true;
	return false;
}

unsigned appender_in_flight(const struct appender *ap)
{
	return ap->nq;
}

static enum isnap_status on_response(void *vctx, const struct imap_response *r,
				     struct isnap_error *err)
{
	struct appender *ap = vctx;
	struct append_result res = { 0 };
	char text[ISNAP_ERROR_MAX];
	unsigned i;

	if (r->kind == IMAP_RESP_CONTINUATION) {
		if (!ap->want_cont)
			return isnap_fail(err, ISNAP_EPROTO,
					  "the server asked for data nobody "
					  "offered");
		ap->got_cont = true;
		ap->stop = true;
		return ISNAP_OK;
	}
	if (r->kind != IMAP_RESP_TAGGED)
		return ISNAP_OK; /* EXISTS and the like: not ours to track */
	for (i = 0; i < ap->nq; i++)
		if (!strcmp(ap->q[i].tag, r->tag))
			break;
	if (i == ap->nq)
		return isnap_fail(err, ISNAP_EPROTO,
				  "the server answered command %.16s, which "
				  "was never sent",
				  r->tag);
	res.token = ap->q[i].token;
	res.ok = !strcmp(r->name, "OK");
	res.answer = r->name;
	snprintf(text, sizeof text, "%s%s%s%s%s%s", r->code ? "[" : "",
		 r->code ? r->code : "",
		 r->code && r->code_args && *r->code_args ? " " : "",
		 r->code && r->code_args ? r->code_args : "",
		 r->code ? "] " : "", r->text ? r->text : "");
	res.text = text;
	if (res.ok && r->code && !strcmp(r->code, "APPENDUID"))
		res.has_uid = append_parse_appenduid(
			r->code_args, &res.uidvalidity, &res.uid);
	/* The command waiting for "+" was refused instead: no body. */
	if (ap->want_cont && i == ap->nq - 1)
		ap->refused = true;
	memmove(&ap->q[i], &ap->q[i + 1], (ap->nq - i - 1) * sizeof ap->q[0]);
	ap->nq--;
	ap->stop = true;
	if (ap->done)
		ap->done(ap->ctx, &res);
	return ISNAP_OK;
}

/* Pump until `*flag` or fewer than `below` commands are waiting.  The
 * handler stops the pump after each answer or "+", so that the condition
 * is looked at again. */
static enum isnap_status pump_until(struct appender *ap, unsigned below,
				    bool *flag, struct isnap_error *err)
{
	struct imap_handler h = { .ctx = ap, .response = on_response };
	enum isnap_status st;

	while (!(flag && *flag) && ap->nq >= below && ap->nq > 0) {
		ap->stop = false;
		st = imap_client_pump(ap->c, &h, &ap->stop, err);
		if (st)
			return st;
	}
	return ISNAP_OK;
}

enum isnap_status appender_drain(struct appender *ap, struct isnap_error *err)
{
	return pump_until(ap, 1, NULL, err);
}

static enum isnap_status send_body(struct appender *ap, uint64_t size,
				   append_read_fn read, void *rctx,
				   struct isnap_error *err)
{
	uint64_t left = size;
	enum isnap_status st;

	while (left) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK, got = 0;
		st = read(rctx, ap->chunk, want, &got, err);
		if (st)
			return st;
		if (got == 0 || got > want)
			return isnap_fail(err, ISNAP_ELOCAL,
					  "a message ended %" PRIu64
					  " bytes short of its size",
					  left);
		st = imap_client_write(ap->c, ap->chunk, got, err);
		if (st)
			return st;
		left -= got;
	}
	return imap_client_write(ap->c, "\r\n", 2, err);
}

enum isnap_status appender_add(struct appender *ap,
			       const struct append_msg *m,
			       append_read_fn read, void *rctx, void *token,
			       struct isnap_error *err)
{
	char cmd[COMMAND_MAX];
	bool plus = imap_client_has_cap(ap->c, "LITERAL+") ||
		    (imap_client_has_cap(ap->c, "LITERAL-") &&
		     m->size <= LITERAL_MINUS_MAX);
	struct inflight *slot;
	enum isnap_status st;

	st = pump_until(ap, ap->depth, NULL, err);
	if (st)
		return st;
	if (!append_command(m, plus, cmd, sizeof cmd))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "cannot write an APPEND for folder %.200s",
				  m->mailbox);
	slot = &ap->q[ap->nq];
	slot->token = token;
	st = imap_client_send(ap->c, cmd, slot->tag, err);
	if (st)
		return st;
	ap->nq++;
	if (!plus) {
		ap->want_cont = true;
		ap->got_cont = ap->refused = false;
		while (!ap->got_cont && !ap->refused) {
			st = pump_until(ap, 1, &ap->got_cont, err);
			if (st)
				break;
		}
		ap->want_cont = false;
		if (st || ap->refused)
			return st;
	}
	return send_body(ap, m->size, read, rctx, err);
}
