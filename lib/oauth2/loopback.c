/*
 * loopback.c — see loopback.h.  RFC 8252 §7.3 (loopback interface
 * redirection, any port, 127.0.0.1 rather than "localhost"), RFC 7636
 * (S256), RFC 6749 §4.1.1 (authorization request) and §4.1.2 (response).
 */
#include "oauth2/loopback.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "oauth2/pkce.h"
#include "oauth2/redirect.h"

static const char page_ok[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
	"Connection: close\r\n\r\n"
	"<!doctype html><title>imapsnap</title><p>imapsnap is authorised. "
	"You can close this window.</p>\n";
static const char page_refused[] =
	"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=utf-8\r\n"
	"Connection: close\r\n\r\n"
	"<!doctype html><title>imapsnap</title><p>imapsnap was not "
	"authorised; see its terminal.</p>\n";
static const char page_404[] =
	"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000L +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000L;
}

static void reply(int fd, const char *page)
{
	size_t n = strlen(page);
	/* Best effort: the browser's page is a courtesy. */
	if (write(fd, page, n) < 0)
		return;
}

/* Read one request head from `fd` and parse it.  Returns its result, or
 * 0 with err set (malformed, or the browser went away: wait for the next
 * connection in both cases). */
static enum oauth2_redirect_result read_request(int fd,
						const struct timespec *deadline,
						struct oauth2_redirect *r,
						struct isnap_error *err)
{
	char buf[OAUTH2_REDIRECT_MAX];
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = ms_left(deadline);
		enum oauth2_redirect_result res;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left > 10000 ? 10000 : (int)left) <= 0)
			return isnap_fail(err, ISNAP_EPROTO, "the browser sent "
					  "nothing"), 0;
		n = read(fd, buf + len, sizeof buf - len);
		if (n <= 0)
			return isnap_fail(err, ISNAP_EPROTO, "the browser closed "
					  "the connection"), 0;
		len += (size_t)n;
		res = oauth2_parse_redirect(buf, len, "/", r, err);
		if (res != OAUTH2_REDIRECT_MORE)
			return res;
	}
}

static int listen_loopback(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static char *authorize_url(const struct oauth2_client *c, const char *redirect,
			   const char *state, const char *challenge)
{
	struct oauth2_form f = { 0 };
	char *url = NULL;

	oauth2_form_add(&f, "response_type", "code");
	oauth2_form_add(&f, "client_id", c->client_id);
	oauth2_form_add(&f, "redirect_uri", redirect);
	if (c->scope)
		oauth2_form_add(&f, "scope", c->scope);
	oauth2_form_add(&f, "state", state);
	oauth2_form_add(&f, "code_challenge", challenge);
	oauth2_form_add(&f, "code_challenge_method", "S256");
	if (!f.failed &&
	    asprintf(&url, "%s%s%s%s%s", c->authorize_url,
		     strchr(c->authorize_url, '?') ? "&" : "?", f.data,
		     c->authorize_extra ? "&" : "",
		     c->authorize_extra ? c->authorize_extra : "") < 0)
		url = NULL;
	oauth2_form_free(&f);
	return url;
}

/* Wait for the browser's redirect; *code on success (malloc'd). */
static enum isnap_status wait_redirect(int lfd, const char *state,
				       const struct timespec *deadline,
				       char **code, struct isnap_error *err)
{
	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		struct oauth2_redirect r;
		struct isnap_error why = { 0 };
		enum oauth2_redirect_result res;
		long left = ms_left(deadline);
		int fd;

		if (left <= 0)
			return isnap_fail(err, ISNAP_EAUTH, "no answer from the "
					  "browser in time; run again");
		if (poll(&p, 1, left > 60000 ? 60000 : (int)left) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		res = read_request(fd, deadline, &r, &why);
		if (res != OAUTH2_REDIRECT_DONE) {
			reply(fd, res == OAUTH2_REDIRECT_OTHER ? page_404
							       : page_refused);
			close(fd);
			continue;
		}
		if (!r.state || strcmp(r.state, state)) {
			/* Not the answer to our request: someone else's page
			 * (RFC 6749 §10.12).  Keep waiting for ours. */
			reply(fd, page_refused);
			close(fd);
			oauth2_redirect_free(&r);
			continue;
		}
		if (r.error) {
			reply(fd, page_refused);
			close(fd);
			isnap_fail(err, ISNAP_EAUTH, "the provider refused the "
				   "authorisation: %s%s%s", r.error,
				   r.error_description ? ": " : "",
				   r.error_description ? r.error_description
						       : "");
			oauth2_redirect_free(&r);
			return ISNAP_EAUTH;
		}
		reply(fd, page_ok);
		close(fd);
		*code = r.code;
		r.code = NULL;
		oauth2_redirect_free(&r);
		return ISNAP_OK;
	}
}

enum isnap_status oauth2_loopback_flow(const struct oauth2_client *c,
				       oauth2_show_url_fn show, void *ctx,
				       long timeout_sec,
				       struct oauth2_tokens *out,
				       struct isnap_error *err)
{
	char verifier[OAUTH2_PKCE_VERIFIER_LEN + 1];
	char challenge[OAUTH2_PKCE_CHALLENGE_LEN + 1];
	char state[32], redirect[64];
	char *url, *code = NULL;
	struct timespec deadline;
	enum isnap_status st;
	int lfd, port;

	memset(out, 0, sizeof *out);
	if (!c->authorize_url || !c->client_id)
		return isnap_fail(err, ISNAP_EUSAGE, "OAuth2: no authorize "
				  "endpoint or no client id");
	if (oauth2_pkce_verifier(verifier) ||
	    oauth2_pkce_challenge(verifier, challenge) ||
	    oauth2_random_base64url(16, state, sizeof state))
		return isnap_fail(err, ISNAP_ELOCAL, "no random bytes for "
				  "PKCE");
	lfd = listen_loopback(&port);
	if (lfd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "cannot listen on "
					"127.0.0.1 for the browser");
	snprintf(redirect, sizeof redirect, "http://127.0.0.1:%d/", port);
	if (!(url = authorize_url(c, redirect, state, challenge))) {
		close(lfd);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	show(ctx, url);
	free(url);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_sec > 0 ? timeout_sec : 300;
	st = wait_redirect(lfd, state, &deadline, &code, err);
	close(lfd);
	if (!st) {
		st = oauth2_exchange_code(c, code, redirect, verifier, out, err);
		if (st == ISNAP_EAUTH)
			isnap_error_prefix(err, "the token endpoint refused "
					   "the authorisation code");
		explicit_bzero(code, strlen(code));
		free(code);
	}
	explicit_bzero(verifier, sizeof verifier);
	return st;
}
