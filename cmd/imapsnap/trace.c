/*
 * trace.c — the protocol trace of --verbose.  Login happens inside libcurl
 * before the trace sees anything, but a credential must not show even if
 * that changes (a re-login, a server that asks again): LOGIN arguments,
 * AUTHENTICATE initial responses and every line the client sends during an
 * AUTHENTICATE exchange are replaced by "***".
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "output.h"

/* Bytes of each chunk worth showing: bodies are not. */
#define TRACE_SHOW 160

/* The length of the word at s[0..len) (up to a space). */
static size_t word(const char *s, size_t len)
{
	size_t n = 0;
	while (n < len && s[n] != ' ')
		n++;
	return n;
}

static void append(char *out, size_t size, size_t *n, const char *s,
		   size_t len)
{
	for (size_t i = 0; i < len && *n + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		out[(*n)++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
	}
	out[*n] = '\0';
}

void trace_mask_line(char direction, const char *line, size_t len,
		     bool *in_auth, char *out, size_t size)
{
	size_t n = 0, tag, cmd, rest;

	if (size == 0)
		return;
	out[0] = '\0';
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (direction != '>') {
		/* A tagged answer ends an AUTHENTICATE exchange. */
		if (*in_auth && len && line[0] != '+' && line[0] != '*')
			*in_auth = false;
		append(out, size, &n, line, len);
		return;
	}
	if (*in_auth) {
		append(out, size, &n, "***", 3);
		return;
	}
	tag = word(line, len);
	cmd = tag < len ? word(line + tag + 1, len - tag - 1) : 0;
	rest = tag + 1 + cmd; /* where the command's arguments start */
	if (cmd == 5 && !strncasecmp(line + tag + 1, "LOGIN", 5)) {
		append(out, size, &n, line, rest);
		append(out, size, &n, " ***", 4);
	} else if (cmd == 12 && !strncasecmp(line + tag + 1, "AUTHENTICATE",
					      12)) {
		/* Keep the mechanism's name; hide the initial response. */
		size_t mech = rest < len ? word(line + rest + 1,
						len - rest - 1) : 0;
		append(out, size, &n, line, rest + (mech ? 1 + mech : 0));
		if (rest + 1 + mech < len)
			append(out, size, &n, " ***", 4);
		*in_auth = true;
	} else {
		append(out, size, &n, line, len);
	}
}

void trace_print(struct progress *p, const char *label, bool *in_auth,
		 char dir, const char *data, size_t len)
{
	size_t pos = 0, shown = 0;
	bool first = true;

	progress_clear(p);
	while (pos < len && shown < TRACE_SHOW) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) + 1 : len;
		size_t take = end - pos;
		char text[TRACE_SHOW + 8];
		if (take > TRACE_SHOW - shown && dir != '>')
			take = TRACE_SHOW - shown;
		trace_mask_line(dir, data + pos, take, in_auth, text,
				sizeof text);
		if (first && label)
			fprintf(stderr, "%s ", label);
		fprintf(stderr, "%s%s", first ? (dir == '>' ? "C " : "S ")
					       : "\n  ",
			text);
		first = false;
		shown += take;
		pos = end;
	}
	if (pos < len)
		fprintf(stderr, " [... %zu bytes]", len);
	fputc('\n', stderr);
}

void out_trace(void *ctx, char dir, const char *data, size_t len)
{
	struct output *o = ctx;

	trace_print(&o->progress, NULL, &o->trace_in_auth, dir, data, len);
}
