/*
 * reply.c — see reply.h.  RFC 6749 §5.1/§5.2, RFC 8628 §3.2/§3.5.
 * JSON is jansson's; the checks on top are ours.
 */
#include "oauth2/reply.h"
#include "oauth2/secret.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void oauth2_tokens_free(struct oauth2_tokens *t)
{
	oauth2_secret_free(t->access_token);
	oauth2_secret_free(t->refresh_token);
	free(t->token_type);
	free(t->scope);
	free(t->error);
	free(t->error_description);
	memset(t, 0, sizeof *t);
}

void oauth2_device_codes_free(struct oauth2_device_codes *d)
{
	oauth2_secret_free(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	memset(d, 0, sizeof *d);
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* The string member `key` of `o` into *out (left NULL when absent or
 * empty: servers send "scope": "" for no scope).  -1 when present but not
 * a printable string of at most `max` bytes. */
static int get_string(json_t *o, const char *key, size_t max, char **out)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	size_t n;

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return 0;
	if (n > max || !printable(s, n))
		return -1;
	if (!(*out = strndup(s, n)))
		return -1;
	return 0;
}

/* An integer member, also given as a string of digits by some servers
 * (Azure AD's v1 endpoint said "expires_in": "3599").  0 when absent; -1
 * when present but not a number from 0 to 10 years. */
static int get_seconds(json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);
	const int64_t max = 10LL * 366 * 86400;
	long long n;

	*out = 0;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		if (json_string_length(v) == 0 || json_string_length(v) > 12 ||
		    strspn(s, "0123456789") != json_string_length(v))
			return -1;
		n = strtoll(s, &end, 10);
	} else {
		return -1;
	}
	if (n < 0 || n > max)
		return -1;
	*out = n;
	return 0;
}

static json_t *load_object(const char *body, size_t len, const char *what,
			   struct isnap_error *err)
{
	json_error_t je;
	json_t *o;

	if (len > OAUTH2_REPLY_MAX) {
		isnap_fail(err, ISNAP_EPROTO, "the %s sent %zu bytes, more "
			   "than an answer can be", what, len);
		return NULL;
	}
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		isnap_fail(err, ISNAP_EPROTO, "the %s did not answer in JSON "
			   "(%s)", what, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		isnap_fail(err, ISNAP_EPROTO, "the %s did not answer with a "
			   "JSON object", what);
		return NULL;
	}
	return o;
}

/* error and error_description (RFC 6749 §5.2).  -1 when malformed. */
static int get_error(json_t *o, char **error, char **description)
{
	if (get_string(o, "error", 128, error))
		return -1;
	if (get_string(o, "error_description", 1024, description))
		return -1;
	return 0;
}

enum isnap_status oauth2_parse_token_reply(const char *body, size_t len,
					   struct oauth2_tokens *out,
					   struct isnap_error *err)
{
	const char *what = "token endpoint";
	json_t *o;

	memset(out, 0, sizeof *out);
	if (!(o = load_object(body, len, what, err)))
		return ISNAP_EPROTO;
	if (get_error(o, &out->error, &out->error_description))
		goto malformed;
	if (out->error) {
		json_decref(o);
		return ISNAP_OK;
	}
	if (get_string(o, "access_token", OAUTH2_TOKEN_MAX,
		       &out->access_token) ||
	    get_string(o, "refresh_token", OAUTH2_TOKEN_MAX,
		       &out->refresh_token) ||
	    get_string(o, "token_type", 64, &out->token_type) ||
	    get_string(o, "scope", 4096, &out->scope) ||
	    get_seconds(o, "expires_in", &out->expires_in))
		goto malformed;
	if (!out->access_token) {
		json_decref(o);
		oauth2_tokens_free(out);
		return isnap_fail(err, ISNAP_EPROTO, "the %s answered with "
				  "neither an access_token nor an error",
				  what);
	}
	/* RFC 6749 §7.1: the client must understand the type; IMAP's SASL
	 * mechanisms take bearer tokens only. */
	if (out->token_type && strcasecmp(out->token_type, "bearer")) {
		isnap_fail(err, ISNAP_EPROTO, "the %s issued a token of type "
			   "%s; IMAP needs a Bearer token", what,
			   out->token_type);
		json_decref(o);
		oauth2_tokens_free(out);
		return ISNAP_EPROTO;
	}
	json_decref(o);
	return ISNAP_OK;

malformed:
	json_decref(o);
	oauth2_tokens_free(out);
	return isnap_fail(err, ISNAP_EPROTO, "the %s sent a malformed answer "
			  "(a member of the wrong type, empty, too long or "
			  "with control characters)", what);
}

enum isnap_status oauth2_parse_device_reply(const char *body, size_t len,
					    struct oauth2_device_codes *out,
					    struct isnap_error *err)
{
	const char *what = "device authorization endpoint";
	char *error = NULL, *desc = NULL;
	json_t *o;

	memset(out, 0, sizeof *out);
	if (!(o = load_object(body, len, what, err)))
		return ISNAP_EPROTO;
	if (get_error(o, &error, &desc))
		goto malformed;
	if (error) {
		isnap_fail(err, ISNAP_EAUTH, "the %s refused: %s%s%s", what,
			   error, desc ? ": " : "", desc ? desc : "");
		free(error);
		free(desc);
		json_decref(o);
		return ISNAP_EAUTH;
	}
	free(desc);
	if (get_string(o, "device_code", OAUTH2_TOKEN_MAX, &out->device_code) ||
	    get_string(o, "user_code", 128, &out->user_code) ||
	    get_string(o, "verification_uri", 2048,
		       &out->verification_uri) ||
	    get_string(o, "verification_uri_complete", 2048,
		       &out->verification_uri_complete) ||
	    get_seconds(o, "expires_in", &out->expires_in) ||
	    get_seconds(o, "interval", &out->interval))
		goto malformed;
	if (!out->verification_uri &&
	    get_string(o, "verification_url", 2048, &out->verification_uri))
		goto malformed;
	if (!out->device_code || !out->user_code || !out->verification_uri ||
	    out->expires_in <= 0) {
		json_decref(o);
		oauth2_device_codes_free(out);
		return isnap_fail(err, ISNAP_EPROTO, "the %s left out "
				  "device_code, user_code, verification_uri "
				  "or expires_in", what);
	}
	if (out->interval <= 0)
		out->interval = 5; /* RFC 8628 §3.2 */
	json_decref(o);
	return ISNAP_OK;

malformed:
	free(error);
	json_decref(o);
	oauth2_device_codes_free(out);
	return isnap_fail(err, ISNAP_EPROTO, "the %s sent a malformed answer",
			  what);
}
