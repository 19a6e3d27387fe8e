/*
 * fuzz_oauth2_reply.c — what an OAuth2 token endpoint or device
 * authorization endpoint may answer (lib/oauth2/reply.c), from a server
 * that is wrong, hostile or not an OAuth2 server at all.
 *
 * fuzz-sources: lib/oauth2/reply.c lib/error.c
 * fuzz-packages: jansson
 *
 * Checked beyond "no crash, no leak, no undefined behaviour": a token
 * reply parses to exactly one of a token or an error; a failure is
 * ISNAP_EPROTO with a message and leaves nothing behind; every string
 * kept is printable ASCII (it goes into SASL, a file and messages);
 * device codes come with a positive expiry and interval.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth2/reply.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_oauth2_reply: %s\n", what);
		abort();
	}
}

static void printable(const char *s)
{
	if (!s)
		return;
	check(*s != '\0', "an empty string kept");
	for (; *s; s++)
		check((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f,
		      "a control or non-ASCII byte kept");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isnap_error err = { 0 };
	struct oauth2_tokens t;
	struct oauth2_device_codes d;
	enum isnap_status st;

	memset(&t, 0xa5, sizeof t);
	st = oauth2_parse_token_reply((const char *)data, size, &t, &err);
	if (st) {
		check(st == ISNAP_EPROTO, "token: failure is not EPROTO");
		check(err.msg[0] != '\0', "token: failure without a message");
		check(!t.access_token && !t.error && !t.refresh_token,
		      "token: failure left strings behind");
	} else {
		check(!t.access_token != !t.error,
		      "token: not exactly one of access_token and error");
		check(t.expires_in >= 0, "token: negative expires_in");
		printable(t.access_token);
		printable(t.refresh_token);
		printable(t.token_type);
		printable(t.scope);
		printable(t.error);
		printable(t.error_description);
		oauth2_tokens_free(&t);
	}

	memset(&d, 0xa5, sizeof d);
	err.msg[0] = '\0';
	st = oauth2_parse_device_reply((const char *)data, size, &d, &err);
	if (st) {
		check(st == ISNAP_EPROTO || st == ISNAP_EAUTH,
		      "device: failure is not EPROTO or EAUTH");
		check(err.msg[0] != '\0', "device: failure without a message");
		check(!d.device_code && !d.user_code && !d.verification_uri,
		      "device: failure left strings behind");
	} else {
		check(d.device_code && d.user_code && d.verification_uri,
		      "device: a required member missing");
		check(d.expires_in > 0 && d.interval > 0,
		      "device: expiry or interval not positive");
		printable(d.device_code);
		printable(d.user_code);
		printable(d.verification_uri);
		printable(d.verification_uri_complete);
		oauth2_device_codes_free(&d);
	}
	return 0;
}
