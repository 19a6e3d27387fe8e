/* Unit tests for lib/oauth2: PKCE, the endpoint replies, the loopback
 * redirect, the token file and the URL rule. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oauth2/http.h"
#include "oauth2/pkce.h"
#include "oauth2/redirect.h"
#include "oauth2/reply.h"
#include "oauth2/store.h"
#include "tmpdir.h"

Test(pkce, rfc7636_appendix_b)
{
	char c[OAUTH2_PKCE_CHALLENGE_LEN + 1];

	cr_assert_eq(oauth2_pkce_challenge(
			     "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", c),
		     0);
	cr_expect_str_eq(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

Test(pkce, verifiers_are_43_unreserved_characters_and_differ)
{
	char a[OAUTH2_PKCE_VERIFIER_LEN + 1], b[OAUTH2_PKCE_VERIFIER_LEN + 1];

	cr_assert_eq(oauth2_pkce_verifier(a), 0);
	cr_assert_eq(oauth2_pkce_verifier(b), 0);
	cr_expect_eq(strlen(a), 43);
	cr_expect_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
			       "vwxyz0123456789-_"),
		     43);
	cr_expect_str_neq(a, b);
}

Test(pkce, base64url_tails)
{
	char out[16];

	oauth2_base64url((const unsigned char *)"f", 1, out);
	cr_expect_str_eq(out, "Zg");
	oauth2_base64url((const unsigned char *)"fo", 2, out);
	cr_expect_str_eq(out, "Zm8");
	oauth2_base64url((const unsigned char *)"foo", 3, out);
	cr_expect_str_eq(out, "Zm9v");
	oauth2_base64url((const unsigned char *)"\xfb\xff", 2, out);
	cr_expect_str_eq(out, "-_8");
}

static enum isnap_status token(const char *body, struct oauth2_tokens *t)
{
	struct isnap_error err = { 0 };
	enum isnap_status st = oauth2_parse_token_reply(body, strlen(body), t,
							&err);
	if (st)
		cr_assert_neq(err.msg[0], '\0');
	return st;
}

Test(reply, success)
{
	struct oauth2_tokens t;

	cr_assert_eq(token("{\"access_token\":\"ya29.a\",\"expires_in\":3599,"
			   "\"refresh_token\":\"1//r\",\"scope\":\"https://"
			   "mail.google.com/\",\"token_type\":\"Bearer\"}",
			   &t),
		     ISNAP_OK);
	cr_expect_str_eq(t.access_token, "ya29.a");
	cr_expect_str_eq(t.refresh_token, "1//r");
	cr_expect_eq(t.expires_in, 3599);
	cr_expect_null(t.error);
	oauth2_tokens_free(&t);
	cr_expect_null(t.access_token);
}

Test(reply, expires_in_as_a_string_and_no_refresh_token)
{
	struct oauth2_tokens t;

	cr_assert_eq(token("{\"access_token\":\"x\",\"expires_in\":\"3600\","
			   "\"token_type\":\"bearer\",\"scope\":\"\"}",
			   &t),
		     ISNAP_OK);
	cr_expect_eq(t.expires_in, 3600);
	cr_expect_null(t.refresh_token);
	cr_expect_null(t.scope);
	oauth2_tokens_free(&t);
}

Test(reply, error)
{
	struct oauth2_tokens t;

	cr_assert_eq(token("{\"error\":\"invalid_grant\",\"error_description\":"
			   "\"Token has been expired or revoked.\"}",
			   &t),
		     ISNAP_OK);
	cr_expect_str_eq(t.error, "invalid_grant");
	cr_expect_str_eq(t.error_description,
			 "Token has been expired or revoked.");
	cr_expect_null(t.access_token);
	oauth2_tokens_free(&t);
}

Test(reply, malformed)
{
	static const char *const bad[] = {
		"",
		"<html>502</html>",
		"[]",
		"{}",
		"{\"access_token\":3}",
		"{\"access_token\":\"a\\nb\"}",    /* would break SASL */
		"{\"access_token\":\"a\\u0000b\"}",
		"{\"access_token\":\"a\",\"expires_in\":-1}",
		"{\"access_token\":\"a\",\"expires_in\":\"12x\"}",
		"{\"access_token\":\"a\",\"token_type\":\"MAC\"}",
		"{\"access_token\":\"a\",\"access_token\":\"b\"}",
		"{\"error\":7}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct oauth2_tokens t;
		cr_expect_eq(token(bad[i], &t), ISNAP_EPROTO, "%s", bad[i]);
		cr_expect_null(t.access_token);
		cr_expect_null(t.error);
	}
}

Test(reply, device_codes)
{
	struct isnap_error err = { 0 };
	struct oauth2_device_codes d;
	const char *google = "{\"device_code\":\"AH-1\",\"user_code\":"
			     "\"GQVQ-JKEC\",\"verification_url\":\"https://"
			     "www.google.com/device\",\"expires_in\":1800}";
	const char *refused = "{\"error\":\"invalid_client\"}";

	cr_assert_eq(oauth2_parse_device_reply(google, strlen(google), &d,
					       &err),
		     ISNAP_OK);
	cr_expect_str_eq(d.verification_uri, "https://www.google.com/device");
	cr_expect_eq(d.interval, 5);
	cr_expect_null(d.verification_uri_complete);
	oauth2_device_codes_free(&d);
	cr_expect_eq(oauth2_parse_device_reply(refused, strlen(refused), &d,
					       &err),
		     ISNAP_EAUTH);
	cr_expect(strstr(err.msg, "invalid_client"));
	cr_expect_eq(oauth2_parse_device_reply("{\"user_code\":\"x\"}", 17, &d,
					       &err),
		     ISNAP_EPROTO);
}

static enum oauth2_redirect_result redirect(const char *req,
					    struct oauth2_redirect *r)
{
	struct isnap_error err = { 0 };
	return oauth2_parse_redirect(req, strlen(req), "/", r, &err);
}

Test(redirect, code_and_state)
{
	struct oauth2_redirect r;

	cr_assert_eq(redirect("GET /?state=a%2Bb+c&code=4%2F0Ad&scope=x "
			      "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
			      &r),
		     OAUTH2_REDIRECT_DONE);
	cr_expect_str_eq(r.code, "4/0Ad");
	cr_expect_str_eq(r.state, "a+b c");
	cr_expect_null(r.error);
	oauth2_redirect_free(&r);
}

Test(redirect, error_from_the_provider)
{
	struct oauth2_redirect r;

	cr_assert_eq(redirect("GET /?error=access_denied&state=s HTTP/1.1\r\n",
			      &r),
		     OAUTH2_REDIRECT_DONE);
	cr_expect_str_eq(r.error, "access_denied");
	cr_expect_null(r.code);
	oauth2_redirect_free(&r);
}

Test(redirect, byte_by_byte_needs_more_until_the_line_ends)
{
	const char *req = "GET /?code=c&state=s HTTP/1.1\r\n";
	struct isnap_error err = { 0 };
	struct oauth2_redirect r;
	size_t n = strlen(req);

	for (size_t i = 0; i + 1 < n; i++)
		cr_assert_eq(oauth2_parse_redirect(req, i, "/", &r, &err),
			     OAUTH2_REDIRECT_MORE, "at %zu", i);
	cr_assert_eq(oauth2_parse_redirect(req, n, "/", &r, &err),
		     OAUTH2_REDIRECT_DONE);
	oauth2_redirect_free(&r);
}

Test(redirect, other_requests_and_malformed_ones)
{
	struct oauth2_redirect r;

	cr_expect_eq(redirect("GET /favicon.ico HTTP/1.1\r\n", &r),
		     OAUTH2_REDIRECT_OTHER);
	cr_expect_eq(redirect("POST /?code=c HTTP/1.1\r\n", &r),
		     OAUTH2_REDIRECT_OTHER);
	cr_expect_eq(redirect("GET /?code=c&code=d HTTP/1.1\r\n", &r), 0);
	cr_expect_eq(redirect("GET /?code=%0a HTTP/1.1\r\n", &r), 0);
	cr_expect_eq(redirect("GET /?code=%00x HTTP/1.1\r\n", &r), 0);
	cr_expect_eq(redirect("GET /?code=%4 HTTP/1.1\r\n", &r), 0);
	cr_expect_eq(redirect("GET /?state=s HTTP/1.1\r\n", &r), 0);
	cr_expect_eq(redirect("GET /?code=c\r\n", &r), 0);
	cr_expect_null(r.code);
}

Test(http, allowed_urls)
{
	cr_expect(oauth2_url_allowed("https://oauth2.googleapis.com/token"));
	cr_expect(oauth2_url_allowed("http://127.0.0.1:8080/token"));
	cr_expect(oauth2_url_allowed("http://localhost/token"));
	cr_expect(oauth2_url_allowed("http://[::1]:99/t"));
	cr_expect_not(oauth2_url_allowed("http://example.org/token"));
	cr_expect_not(oauth2_url_allowed("http://127.evil.example/token"));
	cr_expect_not(oauth2_url_allowed("http://localhost:80@evil.example/"));
	cr_expect_not(oauth2_url_allowed("http://localhost.evil.example/"));
	cr_expect_not(oauth2_url_allowed("ftp://127.0.0.1/"));
	cr_expect_not(oauth2_url_allowed("https://"));
}

TestSuite(store, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(store, save_load_private)
{
	char path[256];
	struct oauth2_stored s = { .refresh_token = "r1", .token_url = "u",
				   .client_id = "c", .access_token = "a1",
				   .expires_at = 1234 };
	struct oauth2_stored got;
	struct isnap_error err = { 0 };
	struct stat sb;

	snprintf(path, sizeof path, "%s/a/b/tok.json", base);
	cr_assert_eq(oauth2_store_save(path, &s, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof path, "%s/a/b", base);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof path, "%s/a/b/tok.json", base);
	cr_assert_eq(oauth2_store_load(path, &got, &err), ISNAP_OK, "%s",
		     err.msg);
	cr_expect_str_eq(got.refresh_token, "r1");
	cr_expect_str_eq(got.access_token, "a1");
	cr_expect_eq(got.expires_at, 1234);
	cr_expect_null(got.client_secret);
	oauth2_stored_free(&got);

	chmod(path, 0640);
	cr_expect_eq(oauth2_store_load(path, &got, &err), ISNAP_ELOCAL);
	cr_expect(strstr(err.msg, "chmod 600"));
}

Test(store, missing_symlink_and_foreign_files)
{
	char path[256], link[256];
	struct oauth2_stored got;
	struct isnap_error err = { 0 };
	int fd;

	snprintf(path, sizeof path, "%s/none.json", base);
	cr_expect_eq(oauth2_store_load(path, &got, &err), ISNAP_EAUTH);
	snprintf(path, sizeof path, "%s/other.json", base);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "{\"refresh_token\":1}", 19), 19);
	close(fd);
	cr_expect_eq(oauth2_store_load(path, &got, &err), ISNAP_ELOCAL);
	snprintf(link, sizeof link, "%s/link.json", base);
	cr_assert_eq(symlink(path, link), 0);
	cr_expect_eq(oauth2_store_load(link, &got, &err), ISNAP_ELOCAL);
}

Test(store, default_path)
{
	char buf[256];

	cr_assert(oauth2_store_default_path("/st", "/home/u", "me@x.org",
					    "imap.x.org", buf, sizeof buf));
	cr_expect_str_eq(buf, "/st/imapsnap/oauth2/me@x.org@imap.x.org.json");
	cr_assert(oauth2_store_default_path("rel", "/home/u", "a/../b", "h",
					    buf, sizeof buf));
	cr_expect_str_eq(buf, "/home/u/.local/state/imapsnap/oauth2/"
			      "a%2F..%2Fb@h.json");
	cr_expect_not(oauth2_store_default_path(NULL, NULL, "u", "h", buf,
						sizeof buf));
}
