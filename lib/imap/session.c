/*
 * session.c — see session.h.  libcurl (CURLOPT_CONNECT_ONLY) for connecting
 * and logging in; RFC 3501 §6.2 (LOGIN/AUTHENTICATE), RFC 2595 (STARTTLS)
 * and RFC 7628 (OAUTHBEARER) are libcurl's side of the work.
 */
#include "imap/session.h"
#include "imap/throttle.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curl_init.h"
#include "interrupt.h"

struct imap_session {
	CURL *curl;
	curl_socket_t sock;
	long timeout_ms;
	imap_trace_fn trace;
	void *trace_ctx;
	char greeting[512];
	/* The last answer during connect and login that tells imapsnap to
	 * slow down ([UNAVAILABLE], "Suggested Backoff Time", ...), with
	 * its text: a login refused for that is not a credential refusal. */
	struct imap_throttle throttle;
	char throttle_text[256];
};

/* libcurl reads the server's greeting and the answers to its login
 * commands itself; its debug callback is the only place to see them.
 * Only incoming header data is looked at: outgoing data carries the
 * login.  Kept: the greeting, and the last answer that throttles. */
static int capture_greeting(CURL *c, curl_infotype type, char *data,
			    size_t size, void *ctx)
{
	struct imap_session *s = ctx;
	size_t n;

	(void)c;
	if (type != CURLINFO_HEADER_IN)
		return 0;
	n = 0;
	while (n < size && data[n] != '\r' && data[n] != '\n')
		n++;
	{
		struct imap_throttle t = imap_throttle_parse_line(data, n);
		if (t.kind != IMAP_THROTTLE_NONE) {
			size_t k = n < sizeof s->throttle_text
					   ? n
					   : sizeof s->throttle_text - 1;
			s->throttle = t;
			memcpy(s->throttle_text, data, k);
			s->throttle_text[k] = '\0';
		}
	}
	if (s->greeting[0] || size < 4 ||
	    (strncmp(data, "* OK", 4) && strncmp(data, "* PR", 4)))
		return 0;
	if (n >= sizeof s->greeting)
		n = sizeof s->greeting - 1;
	memcpy(s->greeting, data, n);
	s->greeting[n] = '\0';
	return 0;
}

const char *imap_session_greeting(const struct imap_session *s)
{
	return s->greeting;
}

static enum isnap_status curl_failure(CURLcode rc, const char *detail,
				      const char *url, struct isnap_error *err)
{
	const char *what = detail[0] ? detail : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_LOGIN_DENIED:
		return isnap_fail(err, ISNAP_EAUTH,
				  "%s: the server refused the login (%s)", url,
				  what);
	case CURLE_USE_SSL_FAILED:
		return isnap_fail(err, ISNAP_ECONN,
				  "%s: the server does not offer STARTTLS; "
				  "use imaps:// or, to send the password in "
				  "clear text, --tls none (%s)",
				  url, what);
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return isnap_fail(err, ISNAP_EUSAGE, "%s: bad URL (%s)", url,
				  what);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return isnap_fail(err, ISNAP_ECONN,
				  "%s: TLS certificate not trusted (%s); give "
				  "the server's CA with --cacert",
				  url, what);
	default:
		return isnap_fail(err, ISNAP_ECONN, "%s: cannot connect (%s)",
				  url, what);
	}
}

/* libcurl calls this about once a second while it connects and logs in,
 * and more often while data moves: a signal (interrupt.h) ends a login
 * stalled on a silent server within about a second. */
static int interrupt_login(void *ctx, curl_off_t dltotal, curl_off_t dlnow,
			   curl_off_t ultotal, curl_off_t ulnow)
{
	(void)ctx, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return isnap_interrupted();
}

/* Run the token command; the token is its first line of output. */
static enum isnap_status token_from_command(const char *cmd, char **token,
					    struct isnap_error *err)
{
	char buf[8192] = "";
	FILE *p = popen(cmd, "r");
	int status;

	*token = NULL;
	if (!p)
		return isnap_fail_errno(err, ISNAP_EAUTH,
					"cannot run the OAuth2 token command");
	if (!fgets(buf, sizeof buf, p))
		buf[0] = '\0';
	while (fgetc(p) != EOF)
		;
	status = pclose(p);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (status != 0 || !buf[0]) {
		explicit_bzero(buf, sizeof buf);
		return isnap_fail(err, ISNAP_EAUTH,
				  "the OAuth2 token command failed or printed "
				  "nothing");
	}
	*token = strdup(buf);
	explicit_bzero(buf, sizeof buf);
	return *token ? ISNAP_OK : isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static void wipe_token(char *token)
{
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
}

/* Connect and log in once, with `token` when not NULL.  On failure,
 * *thr and thr_text say whether the server throttled (else kind NONE). */
static enum isnap_status connect_once(const struct imap_session_opts *o,
				      const char *token, bool implicit,
				      struct imap_session **out,
				      struct imap_throttle *thr,
				      char thr_text[256],
				      struct isnap_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct imap_session *s;
	CURLcode rc;

	s = calloc(1, sizeof *s);
	if (!s || !(s->curl = curl_easy_init())) {
		free(s);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	s->timeout_ms = (o->timeout_sec > 0 ? o->timeout_sec : 60) * 1000L;
	s->trace = o->trace;
	s->trace_ctx = o->trace_ctx;

	CURL *c = s->curl;
	curl_easy_setopt(c, CURLOPT_URL, o->url);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, capture_greeting);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, s);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, interrupt_login);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
	/* Login is a handful of round trips; a server that stalls during it
	 * must not hang a cron job for ever. */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 4 * s->timeout_ms);
	if (o->user)
		curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
	if (o->password)
		curl_easy_setopt(c, CURLOPT_PASSWORD, o->password);
	if (token)
		/* libcurl picks OAUTHBEARER or XOAUTH2, whichever the server
		 * offers. */
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
	if (!implicit)
		curl_easy_setopt(c, CURLOPT_USE_SSL,
				 o->tls == IMAP_TLS_NONE ? (long)CURLUSESSL_NONE
							 : (long)CURLUSESSL_ALL);
	if (o->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
	if (o->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}

	rc = curl_easy_perform(c);
	if (token)
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, NULL);
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &s->sock);
	if (rc == CURLE_OK && s->sock == CURL_SOCKET_BAD)
		rc = CURLE_COULDNT_CONNECT;
	if (rc != CURLE_OK) {
		enum isnap_status st = isnap_interrupted()
					       ? isnap_interrupt_fail(err)
					       : curl_failure(rc, errbuf, o->url,
							      err);
		*thr = s->throttle;
		memcpy(thr_text, s->throttle_text, sizeof s->throttle_text);
		curl_easy_cleanup(c);
		free(s);
		return st;
	}
	/* Logged in: libcurl's copy of the password is not needed any more
	 * (a reconnection makes a new handle); it is freed, and so wiped
	 * (curl_init.h). */
	curl_easy_setopt(c, CURLOPT_PASSWORD, NULL);
	/* The error buffer lives on this stack frame. */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 1L);
	*out = s;
	return ISNAP_OK;
}

/* connect_once, and again after the wait the server asks for while it
 * refuses the connection or the login as throttled (a provider under
 * load says NO [UNAVAILABLE] or "Suggested Backoff Time" to LOGIN or
 * AUTHENTICATE: that is no verdict on the credentials).  Bounded like a
 * throttled fetch: at most max_wait at a time, a few times in a row;
 * beyond that, or for a quota for today, ISNAP_ESTOPPED. */
static enum isnap_status connect_waiting(const struct imap_session_opts *o,
					 const char *token, bool implicit,
					 struct imap_session **out,
					 struct isnap_error *err)
{
	long max = o->throttle_max_wait_ms > 0
			   ? o->throttle_max_wait_ms
			   : IMAP_SESSION_MAX_WAIT_MS_DEFAULT;
	unsigned limit = o->throttle_retries
				 ? o->throttle_retries
				 : IMAP_SESSION_THROTTLE_RETRIES_DEFAULT;

	for (unsigned waits = 0;; waits++) {
		struct imap_throttle t = { 0 };
		char text[256] = "";
		enum isnap_status st =
			connect_once(o, token, implicit, out, &t, text, err);
		long wait;

		if (!st || t.kind == IMAP_THROTTLE_NONE)
			return st;
		if (t.kind == IMAP_THROTTLE_STOP)
			return isnap_fail(err, ISNAP_ESTOPPED,
					  "%s: %s; the server refused the "
					  "login: %s",
					  o->url, t.why, text);
		wait = t.told || t.wait_ms <= max ? t.wait_ms : max;
		if (wait > max)
			return isnap_fail(err, ISNAP_ESTOPPED,
					  "%s: %s at login and asks to wait "
					  "%ld s, more than the %ld s allowed "
					  "(--max-wait): %s",
					  o->url, t.why, t.wait_ms / 1000,
					  max / 1000, text);
		if (waits >= limit)
			return isnap_fail(err, ISNAP_ESTOPPED,
					  "%s: %s at login, still after %u "
					  "waits: %s",
					  o->url, t.why, waits, text);
		if (o->throttled)
			o->throttled(o->throttle_ctx, wait, t.why, text);
		if ((st = isnap_interrupt_sleep(wait, err)))
			return st;
	}
}

enum isnap_status imap_session_open(const struct imap_session_opts *o,
				    struct imap_session **out,
				    struct isnap_error *err)
{
	enum isnap_status st = ISNAP_OK;
	char *token = NULL;
	bool implicit, fresh = true;

	*out = NULL;
	if (strncmp(o->url, "imap://", 7) && strncmp(o->url, "imaps://", 8))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s: the URL must start with imap:// or "
				  "imaps://",
				  o->url);
	implicit = o->url[4] == 's';
	if (isnap_interrupted())
		return isnap_interrupt_fail(err);
	isnap_curl_init();
	if (o->oauth2_token_command)
		st = token_from_command(o->oauth2_token_command, &token, err);
	else if (o->token_fn)
		st = o->token_fn(o->token_ctx, false, &token, &fresh, err);
	if (st)
		return st;
	st = connect_waiting(o, token ? token : o->oauth2_token, implicit,
			     out, err);
	if (st == ISNAP_EAUTH && o->token_fn && !o->oauth2_token_command &&
	    !fresh) {
		/* A cached token the server no longer takes (revoked, or the
		 * server's clock runs ahead): one new one, one more try. */
		struct isnap_error why = *err;
		wipe_token(token);
		token = NULL;
		st = o->token_fn(o->token_ctx, true, &token, &fresh, err);
		if (!st)
			st = connect_waiting(o, token, implicit, out, err);
		else if (st != ISNAP_EAUTH)
			*err = why, st = ISNAP_EAUTH;
	}
	wipe_token(token);
	return st;
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000L +
	       (now.tv_nsec - since->tv_nsec) / 1000000L;
}

/* Wait until the socket is ready for `events`; the timeout counts from
 * `since`, the last moment data moved.  A signal (interrupt.h) ends the
 * wait at once, however long the timeout. */
static enum isnap_status wait_socket(struct imap_session *s, short events,
				     const struct timespec *since,
				     struct isnap_error *err)
{
	for (;;) {
		long left = s->timeout_ms - elapsed_ms(since);
		struct pollfd pfd[2] = {
			{ .fd = s->sock, .events = events },
			{ .fd = isnap_interrupt_fd(), .events = POLLIN },
		};
		int n;

		if (isnap_interrupted())
			return isnap_interrupt_fail(err);
		if (left <= 0)
			return isnap_fail(err, ISNAP_ECONN,
					  "the server sent nothing for %ld s",
					  s->timeout_ms / 1000);
		n = poll(pfd, 2, (int)left);
		if (n > 0 && isnap_interrupted())
			return isnap_interrupt_fail(err);
		if (n > 0)
			return ISNAP_OK;
		if (n < 0 && errno != EINTR)
			return isnap_fail_errno(err, ISNAP_ECONN, "poll");
	}
}

enum isnap_status imap_session_send(struct imap_session *s, const void *data,
				    size_t len, struct isnap_error *err)
{
	const char *p = data;
	struct timespec since;

	if (isnap_interrupted())
		return isnap_interrupt_fail(err);
	if (s->trace)
		s->trace(s->trace_ctx, '>', data, len);
	clock_gettime(CLOCK_MONOTONIC, &since);
	while (len > 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(s->curl, p, len, &n);
		if (rc == CURLE_AGAIN) {
			enum isnap_status st =
				wait_socket(s, POLLOUT, &since, err);
			if (st)
				return st;
			continue;
		}
		if (rc != CURLE_OK)
			return isnap_fail(err, ISNAP_ECONN,
					  "sending to the server: %s",
					  curl_easy_strerror(rc));
		p += n;
		len -= n;
		clock_gettime(CLOCK_MONOTONIC, &since);
	}
	return ISNAP_OK;
}

enum isnap_status imap_session_recv(struct imap_session *s, void *buf,
				    size_t len, size_t *got,
				    struct isnap_error *err)
{
	struct timespec since;

	*got = 0;
	/* Checked before every read, not only when one would wait: on a
	 * fast link data never stops. */
	if (isnap_interrupted())
		return isnap_interrupt_fail(err);
	clock_gettime(CLOCK_MONOTONIC, &since);
	for (;;) {
		size_t n = 0;
		/* Always try to read first: TLS may hold decrypted bytes that
		 * poll(2) on the socket cannot see. */
		CURLcode rc = curl_easy_recv(s->curl, buf, len, &n);
		if (rc == CURLE_AGAIN) {
			enum isnap_status st =
				wait_socket(s, POLLIN, &since, err);
			if (st)
				return st;
			continue;
		}
		if (rc != CURLE_OK)
			return isnap_fail(err, ISNAP_ECONN,
					  "receiving from the server: %s",
					  curl_easy_strerror(rc));
		if (n == 0)
			return isnap_fail(err, ISNAP_ECONN,
					  "the server closed the connection");
		if (s->trace)
			s->trace(s->trace_ctx, '<', buf, n);
		*got = n;
		return ISNAP_OK;
	}
}

void imap_session_close(struct imap_session *s)
{
	if (!s)
		return;
	curl_easy_cleanup(s->curl);
	free(s);
}
