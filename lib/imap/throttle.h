/*
 * throttle.h — recognise a provider telling imapsnap to slow down or to
 * stop, in a response's condition and text, and say what to do: wait and
 * retry, or stop for today.  No I/O, no state; the text comes from the
 * server (tests/fuzz/fuzz_throttle.c).
 *
 *   struct imap_throttle t = imap_throttle_parse_line(line, len);
 *   if (t.kind == IMAP_THROTTLE_RETRY) ... wait t.wait_ms (bounded by
 *       the caller), then retry ...
 *   else if (t.kind == IMAP_THROTTLE_STOP) ... keep what was saved, stop
 *       asking this account for messages until the next run ...
 *
 * What is recognised (docs/reliability.md lists it too):
 *   RFC 5530 [UNAVAILABLE], [LIMIT], [INUSE]   retry after a wait
 *   RFC 5530 [OVERQUOTA]                        stop (Gmail's download cap:
 *                                               "[OVERQUOTA] Account
 *                                               exceeded command or
 *                                               bandwidth limits")
 *   "Account exceeded ... bandwidth limits"     stop, whatever the code
 *   "Suggested Backoff Time: N milliseconds"    retry after N ms
 *                                               (Microsoft 365, NO or BAD)
 *   "Server error - Please try again later"     retry (Yahoo)
 * on NO, BAD and BYE.  An OK is never throttling: the command was done.
 */
#ifndef IMAPSNAP_IMAP_THROTTLE_H
#define IMAPSNAP_IMAP_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>

enum imap_throttle_kind {
	IMAP_THROTTLE_NONE = 0, /* an ordinary answer */
	IMAP_THROTTLE_RETRY,    /* wait wait_ms, then try again */
	IMAP_THROTTLE_STOP,     /* a quota for today: stop, keep what is saved */
};

/* Waits when the server names none, by what it said. */
#define IMAP_THROTTLE_WAIT_UNAVAILABLE_MS 60000L
#define IMAP_THROTTLE_WAIT_LIMIT_MS 60000L
#define IMAP_THROTTLE_WAIT_INUSE_MS 10000L
#define IMAP_THROTTLE_WAIT_TRY_LATER_MS 30000L
/* A suggested wait longer than this is taken as this (a day). */
#define IMAP_THROTTLE_WAIT_MAX_MS 86400000L

struct imap_throttle {
	enum imap_throttle_kind kind;
	long wait_ms;     /* RETRY: what the server asked for, or a default */
	bool told;        /* wait_ms is the server's (else a default) */
	const char *why;  /* a short static description, "" for NONE */
};

/* The condition ("NO", "BAD", "BYE", "OK"; any case) and the resp-text
 * after it (`len` bytes, "[CODE ...] text" or just text; need not be
 * NUL-terminated). */
struct imap_throttle imap_throttle_classify(const char *condition,
					    const char *text, size_t len);

/* A parsed status response (its code, code arguments and text). */
struct imap_response;
struct imap_throttle imap_throttle_response(const struct imap_response *r);

/* A whole response line without its CRLF: "i5 NO [UNAVAILABLE] ...",
 * "* BYE ...", "* NO ...".  Lines that are not status responses are
 * IMAP_THROTTLE_NONE. */
struct imap_throttle imap_throttle_parse_line(const char *line, size_t len);

#endif
