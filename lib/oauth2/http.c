/*
 * http.c — see http.h.  libcurl does HTTP, TLS and certificate checks;
 * RFC 6749 §2.3.1/§3.2 say the parameters go in a form-encoded POST body.
 */
#include "oauth2/http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "curl_init.h"
#include "oauth2/reply.h"

void oauth2_form_add(struct oauth2_form *f, const char *key,
		     const char *value)
{
	char *k, *v, *d;
	size_t n;

	if (f->failed)
		return;
	k = curl_easy_escape(NULL, key, 0);
	v = curl_easy_escape(NULL, value, 0);
	n = (k ? strlen(k) : 0) + (v ? strlen(v) : 0) + 2;
	d = k && v ? realloc(f->data, f->len + n + 1) : NULL;
	if (!d) {
		f->failed = true;
	} else {
		f->data = d;
		f->len += (size_t)snprintf(d + f->len, n + 1, "%s%s=%s",
					   f->len ? "&" : "", k, v);
	}
	if (v)
		explicit_bzero(v, strlen(v));
	curl_free(k);
	curl_free(v);
}

void oauth2_form_free(struct oauth2_form *f)
{
	if (f->data)
		explicit_bzero(f->data, f->len);
	free(f->data);
	memset(f, 0, sizeof *f);
}

void oauth2_http_reply_free(struct oauth2_http_reply *r)
{
	if (r->body)
		explicit_bzero(r->body, r->len);
	free(r->body);
	memset(r, 0, sizeof *r);
}

bool oauth2_url_allowed(const char *url)
{
	static const char *const loopback[] = { "127.", "localhost:",
						"localhost/", "[::1]" };
	const char *host;

	if (!strncasecmp(url, "https://", 8))
		return url[8] != '\0';
	if (strncasecmp(url, "http://", 7))
		return false;
	host = url + 7;
	/* "http://localhost:80@elsewhere/" goes elsewhere. */
	if (memchr(host, '@', strcspn(host, "/?#")))
		return false;
	if (!strcasecmp(host, "localhost"))
		return true;
	for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++)
		if (!strncasecmp(host, loopback[i], strlen(loopback[i])))
			/* "127.evil.example" is a name, not an address */
			return i != 0 || strspn(host + 4, "0123456789.") ==
						 strcspn(host + 4, ":/");
	return false;
}

struct sink {
	struct oauth2_http_reply *r;
	bool too_long;
};

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct sink *s = ctx;
	struct oauth2_http_reply *r = s->r;
	size_t add = size * n;
	char *b;

	if (r->len + add > OAUTH2_REPLY_MAX) {
		s->too_long = true;
		return 0;
	}
	if (!(b = realloc(r->body, r->len + add + 1)))
		return 0;
	memcpy(b + r->len, data, add);
	r->len += add;
	b[r->len] = '\0';
	r->body = b;
	return add;
}

enum isnap_status oauth2_http_post(const struct oauth2_http *h,
				   const char *url, const struct oauth2_form *f,
				   struct oauth2_http_reply *out,
				   struct isnap_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	struct sink sink = { .r = out };
	CURL *c;
	CURLcode rc;

	memset(out, 0, sizeof *out);
	if (!oauth2_url_allowed(url))
		return isnap_fail(err, ISNAP_EUSAGE, "%s: an OAuth2 endpoint "
				  "must be https:// (http:// only to this "
				  "machine)", url);
	if (f->failed)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	isnap_curl_init();
	if (!(c = curl_easy_init()))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	hdr = curl_slist_append(hdr, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, h->timeout_sec > 0 ?
						     h->timeout_sec : 60L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, f->data ? f->data : "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)f->len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "imapsnap");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	if (h->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (rc == CURLE_OK && !out->body && !(out->body = strdup("")))
		rc = CURLE_OUT_OF_MEMORY;
	if (rc != CURLE_OK) {
		oauth2_http_reply_free(out);
		if (sink.too_long)
			return isnap_fail(err, ISNAP_ECONN, "%s: the answer is "
					  "longer than %d bytes", url,
					  OAUTH2_REPLY_MAX);
		return isnap_fail(err, ISNAP_ECONN, "%s: %s", url,
				  errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	return ISNAP_OK;
}
