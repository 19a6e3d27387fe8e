/*
 * throttle.c — see throttle.h.  RFC 3501 §7.1 (status responses and
 * resp-text-code), RFC 5530 (UNAVAILABLE, LIMIT, INUSE, OVERQUOTA), and
 * what Microsoft 365, Gmail and Yahoo are seen to send.
 */
#include "imap/throttle.h"
#include "imap/parser.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive search for `needle` in `len` bytes of `hay`. */
static const char *find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (!strncasecmp(hay + i, needle, n))
			return hay + i;
	return NULL;
}

static bool is_code(const char *text, size_t len, const char *code)
{
	size_t n = strlen(code);

	/* "[CODE]" or "[CODE arguments]" */
	return len >= n + 2 && text[0] == '[' &&
	       !strncasecmp(text + 1, code, n) &&
	       (text[n + 1] == ']' || text[n + 1] == ' ');
}

/* "Suggested Backoff Time: 299961 milliseconds" → 299961; -1 if absent. */
static long backoff_ms(const char *text, size_t len)
{
	static const char key[] = "suggested backoff time:";
	const char *p = find(text, len, key), *end = text + len;
	long v = 0;
	int digits = 0;

	if (!p)
		return -1;
	p += sizeof key - 1;
	while (p < end && *p == ' ')
		p++;
	for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
		if (v <= IMAP_THROTTLE_WAIT_MAX_MS)
			v = v * 10 + (*p - '0');
	if (!digits)
		return -1;
	while (p < end && *p == ' ')
		p++;
	/* The unit is milliseconds; a bare "s" would be seconds. */
	if (end - p >= 1 && (*p == 's' || *p == 'S') &&
	    (end - p == 1 || p[1] == ' ' || p[1] == '.'))
		v = v > IMAP_THROTTLE_WAIT_MAX_MS / 1000
			    ? IMAP_THROTTLE_WAIT_MAX_MS
			    : v * 1000;
	return v > IMAP_THROTTLE_WAIT_MAX_MS ? IMAP_THROTTLE_WAIT_MAX_MS : v;
}

static struct imap_throttle verdict(enum imap_throttle_kind kind,
				    long wait_ms, const char *why)
{
	struct imap_throttle t = { kind, wait_ms, false, why };
	return t;
}

struct imap_throttle imap_throttle_classify(const char *condition,
					    const char *text, size_t len)
{
	long ms;

	if (strcasecmp(condition, "NO") && strcasecmp(condition, "BAD") &&
	    strcasecmp(condition, "BYE"))
		return verdict(IMAP_THROTTLE_NONE, 0, "");
	if (is_code(text, len, "OVERQUOTA") ||
	    find(text, len, "exceeded command or bandwidth limits") ||
	    find(text, len, "bandwidth limit exceeded"))
		return verdict(IMAP_THROTTLE_STOP, 0,
			       "the account's quota for today is used up");
	if ((ms = backoff_ms(text, len)) >= 0) {
		struct imap_throttle t = verdict(IMAP_THROTTLE_RETRY, ms,
						 "the server throttles "
						 "requests");
		t.told = true;
		return t;
	}
	if (is_code(text, len, "UNAVAILABLE"))
		return verdict(IMAP_THROTTLE_RETRY,
			       IMAP_THROTTLE_WAIT_UNAVAILABLE_MS,
			       "the server is unavailable for now");
	if (is_code(text, len, "LIMIT"))
		return verdict(IMAP_THROTTLE_RETRY, IMAP_THROTTLE_WAIT_LIMIT_MS,
			       "a server limit was reached");
	if (is_code(text, len, "INUSE"))
		return verdict(IMAP_THROTTLE_RETRY, IMAP_THROTTLE_WAIT_INUSE_MS,
			       "the folder is in use");
	if (find(text, len, "please try again later") ||
	    find(text, len, "request is throttled"))
		return verdict(IMAP_THROTTLE_RETRY,
			       IMAP_THROTTLE_WAIT_TRY_LATER_MS,
			       "the server asks to try again later");
	return verdict(IMAP_THROTTLE_NONE, 0, "");
}

struct imap_throttle imap_throttle_response(const struct imap_response *r)
{
	char text[1024];
	int n;

	if (!r->name)
		return verdict(IMAP_THROTTLE_NONE, 0, "");
	n = snprintf(text, sizeof text, "%s%s%s%s%s%s", r->code ? "[" : "",
		     r->code ? r->code : "",
		     r->code && r->code_args && *r->code_args ? " " : "",
		     r->code && r->code_args ? r->code_args : "",
		     r->code ? "] " : "", r->text ? r->text : "");
	if (n < 0)
		return verdict(IMAP_THROTTLE_NONE, 0, "");
	return imap_throttle_classify(r->name, text,
				      (size_t)n < sizeof text ? (size_t)n
							      : sizeof text - 1);
}

struct imap_throttle imap_throttle_parse_line(const char *line, size_t len)
{
	char cond[4];
	const char *sp, *end = line + len, *c;
	size_t n;

	/* tag (or "*") SP condition SP text */
	sp = memchr(line, ' ', len);
	if (!sp || sp == line)
		return verdict(IMAP_THROTTLE_NONE, 0, "");
	c = sp + 1;
	sp = memchr(c, ' ', (size_t)(end - c));
	n = (size_t)((sp ? sp : end) - c);
	if (n < 2 || n > 3)
		return verdict(IMAP_THROTTLE_NONE, 0, "");
	for (size_t i = 0; i < n; i++)
		if ((c[i] < 'A' || c[i] > 'Z') && (c[i] < 'a' || c[i] > 'z'))
			return verdict(IMAP_THROTTLE_NONE, 0, "");
	memcpy(cond, c, n);
	cond[n] = '\0';
	c = sp ? sp + 1 : end;
	return imap_throttle_classify(cond, c, (size_t)(end - c));
}
