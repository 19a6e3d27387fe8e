/*
 * session.h — one authenticated IMAP connection, opened by libcurl.
 *
 * libcurl does TCP, implicit TLS (imaps://) or STARTTLS (imap://),
 * certificate checks, proxies and SASL login (CURLOPT_CONNECT_ONLY); after
 * that imapsnap speaks IMAP itself over imap_session_send/recv.  libcurl's
 * own IMAP fetches are not used: they SELECT and set \Seen, drop literals in
 * custom requests, and cost one round trip per message (docs/decisions.md).
 *
 * Use:
 *   struct imap_session *s;
 *   if (imap_session_open(&opts, &s, err)) ...;   // logged in
 *   imap_session_send(s, "i1 CAPABILITY\r\n", 15, err);
 *   imap_session_recv(s, buf, sizeof buf, &n, err); // waits up to timeout
 *   imap_session_close(s);
 */
#ifndef IMAPSNAP_IMAP_SESSION_H
#define IMAPSNAP_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum imap_tls {
	IMAP_TLS_REQUIRED = 0, /* imap://: STARTTLS or fail; imaps://: implicit */
	IMAP_TLS_NONE,         /* imap:// in plaintext, by explicit choice */
};

/* Called with every chunk sent or received ('>' or '<'), for --verbose.
 * Credentials never pass through here: login happens inside libcurl. */
typedef void (*imap_trace_fn)(void *ctx, char direction, const char *data,
			      size_t len);

struct imap_session_opts {
	const char *url;           /* imap://host[:port] or imaps://... */
	const char *user;
	const char *password;      /* may be NULL with oauth2_token */
	const char *oauth2_token;  /* XOAUTH2/OAUTHBEARER bearer token */
	/* Or a command (run with /bin/sh) whose first output line is the
	 * token; it runs again at every imap_session_open, so that runs
	 * longer than a token's life keep working. */
	const char *oauth2_token_command;
	/* Or a function asked for the token at every imap_session_open
	 * (lib/oauth2/access.h's oauth2_access_token fits): *token is
	 * malloc'd, and wiped and freed here; *fresh says it was just
	 * issued.  When the server refuses a token that was not fresh, the
	 * function is asked once more with `renew` set. */
	enum isnap_status (*token_fn)(void *ctx, bool renew, char **token,
				      bool *fresh, struct isnap_error *err);
	void *token_ctx;
	enum imap_tls tls;
	const char *cacert;        /* CA bundle file, or NULL for the system's */
	bool insecure;             /* skip certificate verification */
	long timeout_sec;          /* connect and per-read/-write inactivity */
	imap_trace_fn trace;
	void *trace_ctx;
	/* A connection or login the server refuses as throttled
	 * (imap/throttle.h: NO [UNAVAILABLE], "Suggested Backoff Time: N
	 * ms", ...) is tried again after the wait it asks for, at most
	 * throttle_max_wait_ms (0: IMAP_SESSION_MAX_WAIT_MS_DEFAULT) and
	 * throttle_retries times in a row (0: the default); `throttled`
	 * (may be NULL) is told before each wait, with the server's line. */
	long throttle_max_wait_ms;
	unsigned throttle_retries;
	void (*throttled)(void *ctx, long wait_ms, const char *why,
			  const char *text);
	void *throttle_ctx;
};

#define IMAP_SESSION_MAX_WAIT_MS_DEFAULT 600000L
#define IMAP_SESSION_THROTTLE_RETRIES_DEFAULT 5

struct imap_session;

/* Connect and log in.  Returns ISNAP_OK, ISNAP_EUSAGE (bad URL),
 * ISNAP_EAUTH (credentials refused), ISNAP_ECONN (network, TLS,
 * STARTTLS not offered, certificate) or ISNAP_ESTOPPED (the server kept
 * refusing the login as throttled, asked for a longer wait than
 * allowed, or said the account's quota for today is used up). */
enum isnap_status imap_session_open(const struct imap_session_opts *opts,
				    struct imap_session **out,
				    struct isnap_error *err);

/* Send all `len` bytes.  ISNAP_OK or ISNAP_ECONN. */
enum isnap_status imap_session_send(struct imap_session *s, const void *data,
				    size_t len, struct isnap_error *err);

/* Receive at least one byte (at most `len`) into buf, waiting up to the
 * timeout.  End of stream, a reset or a timeout is ISNAP_ECONN. */
enum isnap_status imap_session_recv(struct imap_session *s, void *buf,
				    size_t len, size_t *got,
				    struct isnap_error *err);

/* The server's greeting line ("* OK [CAPABILITY ...] Dovecot ready."), or
 * "" if none was seen. */
const char *imap_session_greeting(const struct imap_session *s);

/* Close the connection (no LOGOUT: the caller sends it if it wants). */
void imap_session_close(struct imap_session *s);

#endif
