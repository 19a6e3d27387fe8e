/*
 * pkce.c — see pkce.h.  RFC 7636 (PKCE, S256), RFC 4648 §5 (base64url).
 * Random bytes and SHA-256 come from OpenSSL's libcrypto.
 */
#include "oauth2/pkce.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

size_t oauth2_base64url(const unsigned char *in, size_t len, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 |
			     in[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)in[i] << 16;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

int oauth2_random_base64url(size_t n, char *out, size_t size)
{
	unsigned char buf[64];

	if (n > sizeof buf || size < (n * 4 + 2) / 3 + 1)
		return -1;
	if (RAND_bytes(buf, (int)n) != 1)
		return -1;
	oauth2_base64url(buf, n, out);
	OPENSSL_cleanse(buf, sizeof buf);
	return 0;
}

int oauth2_pkce_verifier(char out[OAUTH2_PKCE_VERIFIER_LEN + 1])
{
	return oauth2_random_base64url(32, out, OAUTH2_PKCE_VERIFIER_LEN + 1);
}

int oauth2_pkce_challenge(const char *verifier,
			  char out[OAUTH2_PKCE_CHALLENGE_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(verifier, strlen(verifier), md, &n, EVP_sha256(),
			NULL) ||
	    n != 32)
		return -1;
	oauth2_base64url(md, n, out);
	return 0;
}
