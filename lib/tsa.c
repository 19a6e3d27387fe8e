/*
 * tsa.c — see tsa.h.  RFC 3161 (Time-Stamp Protocol), with the TS API of
 * OpenSSL's libcrypto; HTTP through libcurl.
 */
#include "tsa.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "beneath.h"
#include "curl_init.h"

/* A TSA's answer is a few KB; anything past this is not one. */
#define TSA_RESPONSE_MAX (1u << 20)
#define TSA_TIMEOUT 30L

struct buf {
	unsigned char *p;
	size_t n, cap;
	bool too_big;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;
	size_t len = size * nmemb;

	if (b->n + len > TSA_RESPONSE_MAX) {
		b->too_big = true;
		return 0;
	}
	if (b->n + len > b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 8192;
		unsigned char *p;
		while (cap < b->n + len)
			cap *= 2;
		if (!(p = realloc(b->p, cap)))
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, data, len);
	b->n += len;
	return len;
}

/* OpenSSL's reason for the last failure, or `fallback`. */
static const char *ssl_why(const char *fallback)
{
	static _Thread_local char text[256];
	unsigned long e = ERR_get_error();

	if (!e)
		return fallback;
	ERR_error_string_n(e, text, sizeof text);
	ERR_clear_error();
	return text;
}

static TS_REQ *make_request(const unsigned char sha256[32])
{
	TS_REQ *req = TS_REQ_new();
	TS_MSG_IMPRINT *imprint = TS_MSG_IMPRINT_new();
	X509_ALGOR *algo = X509_ALGOR_new();
	ASN1_INTEGER *nonce = NULL;
	unsigned char rnd[8];
	BIGNUM *bn = NULL;
	bool ok = req && imprint && algo;

	ok = ok && TS_REQ_set_version(req, 1) &&
	     X509_ALGOR_set0(algo, OBJ_nid2obj(NID_sha256), V_ASN1_NULL,
			     NULL) &&
	     TS_MSG_IMPRINT_set_algo(imprint, algo) &&
	     TS_MSG_IMPRINT_set_msg(imprint, (unsigned char *)sha256, 32) &&
	     TS_REQ_set_msg_imprint(req, imprint) &&
	     RAND_bytes(rnd, sizeof rnd) == 1 &&
	     (bn = BN_bin2bn(rnd, sizeof rnd, NULL)) &&
	     (nonce = BN_to_ASN1_INTEGER(bn, NULL)) &&
	     TS_REQ_set_nonce(req, nonce) && TS_REQ_set_cert_req(req, 1);
	BN_free(bn);
	ASN1_INTEGER_free(nonce);
	X509_ALGOR_free(algo);
	TS_MSG_IMPRINT_free(imprint);
	if (!ok) {
		TS_REQ_free(req);
		return NULL;
	}
	return req;
}

static X509_STORE *load_store(const char *cafile)
{
	X509_STORE *st = X509_STORE_new();

	if (st && X509_STORE_load_file(st, cafile) == 1)
		return st;
	X509_STORE_free(st);
	return NULL;
}

/* Check `resp` with `ctx` (which holds the imprint, and the nonce for a
 * fresh request), adding the signature check when a CA is given. */
static enum isnap_status check_response(TS_RESP *resp, TS_VERIFY_CTX *ctx,
					const char *cafile,
					struct isnap_error *err)
{
	int flags = TS_VERIFY_CTX_add_flags(ctx, 0);

	flags &= ~(TS_VFY_SIGNATURE | TS_VFY_TSA_NAME | TS_VFY_POLICY);
	if (cafile) {
		X509_STORE *st = load_store(cafile);
		if (!st)
			return isnap_fail(err, ISNAP_ELOCAL,
					  "%s: not a certificate file (%s)",
					  cafile, ssl_why("unreadable"));
		TS_VERIFY_CTX_set_store(ctx, st);
		flags |= TS_VFY_SIGNATURE;
	}
	TS_VERIFY_CTX_set_flags(ctx, flags);
	if (TS_RESP_verify_response(ctx, resp) != 1)
		return isnap_fail(err, ISNAP_EINTEGRITY,
				  "the timestamp does not match: %s",
				  ssl_why("verification failed"));
	return ISNAP_OK;
}

/* dirfd/name, durably: a temporary name created afresh (whatever was
 * left there unlinked, never written through), fsync, rename. */
static enum isnap_status write_file(int dirfd, const char *name,
				    const void *data, size_t len,
				    struct isnap_error *err)
{
	char tmp[4300];
	int fd;
	const char *p = data;

	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	if (unlinkat(dirfd, tmp, 0) != 0 && errno != ENOENT)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", tmp);
	fd = beneath_open_file(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", tmp);
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			isnap_fail_errno(err, ISNAP_ELOCAL, "writing %s", tmp);
			close(fd);
			unlinkat(dirfd, tmp, 0);
			return ISNAP_ELOCAL;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0 ||
	    renameat(dirfd, tmp, dirfd, name) != 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "writing %s", name);
		unlinkat(dirfd, tmp, 0);
		return ISNAP_ELOCAL;
	}
	return ISNAP_OK;
}

/* A token is a few KB; a file far larger is not one. */
#define TOKEN_MAX (1024 * 1024)

/* dirfd/name whole into memory, opened without following a link and
 * only if it is a regular file (a FIFO must not make verify wait). */
static enum isnap_status read_token(int dirfd, const char *name,
				    struct buf *out, struct isnap_error *err)
{
	int fd = beneath_open_file(dirfd, name, O_RDONLY, 0);
	enum isnap_status rc = ISNAP_OK;

	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", name);
	if (!(out->p = malloc(TOKEN_MAX + 1))) {
		close(fd);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	for (;;) {
		ssize_t n = read(fd, out->p + out->n, TOKEN_MAX + 1 - out->n);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s",
					      name);
			break;
		}
		if (n == 0)
			break;
		out->n += (size_t)n;
		if (out->n > TOKEN_MAX) {
			rc = isnap_fail(err, ISNAP_EINTEGRITY,
					"%s is no timestamp response (larger "
					"than %d bytes)",
					name, TOKEN_MAX);
			break;
		}
	}
	close(fd);
	return rc;
}

static enum isnap_status post(const char *url, const char *cafile,
			      const unsigned char *der, long len,
			      struct buf *out, struct isnap_error *err)
{
	CURL *c;
	struct curl_slist *hdr = NULL;
	char why[CURL_ERROR_SIZE] = "";
	enum isnap_status rc = ISNAP_OK;
	long status = 0;
	CURLcode cr;

	isnap_curl_init();
	c = curl_easy_init();

	if (!c)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	hdr = curl_slist_append(hdr, "Content-Type: application/timestamp-query");
	hdr = hdr ? curl_slist_append(hdr, "Accept: application/timestamp-reply")
		  : NULL;
	if (!hdr) {
		curl_easy_cleanup(c);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)der);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, TSA_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (cafile)
		curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
	cr = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out->too_big)
		rc = isnap_fail(err, ISNAP_EPROTO,
				"%s: the answer is larger than %u bytes: no "
				"timestamp response",
				url, TSA_RESPONSE_MAX);
	else if (cr != CURLE_OK)
		rc = isnap_fail(err, ISNAP_ECONN, "%s: %s", url,
				why[0] ? why : curl_easy_strerror(cr));
	else if (status != 200)
		rc = isnap_fail(err, ISNAP_ECONN, "%s: HTTP status %ld", url,
				status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}

enum isnap_status tsa_request(const char *url, const char *cafile,
			      const unsigned char sha256[32], int dirfd,
			      const char *out_name, struct isnap_error *err)
{
	TS_REQ *req = make_request(sha256);
	TS_RESP *resp = NULL;
	TS_VERIFY_CTX *ctx = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	struct buf body = { 0 };
	enum isnap_status rc;
	int len;

	if (!req)
		return isnap_fail(err, ISNAP_ENOMEM,
				  "building the timestamp request: %s",
				  ssl_why("out of memory"));
	len = i2d_TS_REQ(req, &der);
	if (len <= 0) {
		rc = isnap_fail(err, ISNAP_ENOMEM, "encoding the request: %s",
				ssl_why("out of memory"));
		goto out;
	}
	rc = post(url, cafile, der, len, &body, err);
	if (rc)
		goto out;
	p = body.p;
	resp = body.n ? d2i_TS_RESP(NULL, &p, (long)body.n) : NULL;
	if (!resp) {
		rc = isnap_fail(err, ISNAP_EPROTO,
				"%s: not a timestamp response (%zu bytes)", url,
				body.n);
		goto out;
	}
	/* Granted, same imprint, same nonce (TS_REQ_to_TS_VERIFY_CTX). */
	if (!(ctx = TS_REQ_to_TS_VERIFY_CTX(req, NULL))) {
		rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	rc = check_response(resp, ctx, cafile, err);
	if (rc) {
		isnap_error_prefix(err, "%s", url);
		if (rc == ISNAP_EINTEGRITY)
			rc = err->status = ISNAP_EPROTO;
		goto out;
	}
	rc = write_file(dirfd, out_name, body.p, body.n, err);
out:
	TS_VERIFY_CTX_free(ctx);
	TS_RESP_free(resp);
	TS_REQ_free(req);
	OPENSSL_free(der);
	free(body.p);
	return rc;
}

enum isnap_status tsa_check(int dirfd, const char *name,
			    const unsigned char sha256[32],
			    const char *cafile, bool *signed_r, char *when,
			    size_t when_size, struct isnap_error *err)
{
	struct buf token = { 0 };
	enum isnap_status rc = read_token(dirfd, name, &token, err);
	BIO *in = !rc ? BIO_new_mem_buf(token.p, (int)token.n) : NULL;
	TS_RESP *resp = in ? d2i_TS_RESP_bio(in, NULL) : NULL;
	TS_VERIFY_CTX *ctx = TS_VERIFY_CTX_new();
	unsigned char *imprint = OPENSSL_malloc(32);

	*signed_r = false;
	if (when_size)
		when[0] = '\0';
	if (rc)
		goto out;
	if (!in) {
		rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	if (!resp) {
		rc = isnap_fail(err, ISNAP_EINTEGRITY,
				"%s is no timestamp response", name);
		goto out;
	}
	if (!ctx || !imprint) {
		rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(imprint, sha256, 32);
	TS_VERIFY_CTX_set_imprint(ctx, imprint, 32);
	imprint = NULL; /* the context owns it */
	TS_VERIFY_CTX_set_flags(ctx, TS_VFY_VERSION | TS_VFY_IMPRINT);
	rc = check_response(resp, ctx, cafile, err);
	if (!rc) {
		TS_TST_INFO *info = TS_RESP_get_tst_info(resp);
		const ASN1_GENERALIZEDTIME *t =
			info ? TS_TST_INFO_get_time(info) : NULL;
		*signed_r = cafile != NULL;
		if (t && when_size)
			snprintf(when, when_size, "%.*s", t->length,
				 (const char *)t->data);
	}
out:
	OPENSSL_free(imprint);
	TS_VERIFY_CTX_free(ctx);
	TS_RESP_free(resp);
	BIO_free(in);
	free(token.p);
	return rc;
}
